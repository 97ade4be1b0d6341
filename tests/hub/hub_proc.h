/*
 * tests/hub/hub_proc.h: what the hub's process tests share: starting the
 * real fieldsync-hub on a port it picks itself and reading that port from
 * its "listening on https://ADDR:PORT" line, and the folder it serves.
 * Include after cmocka.h.
 */
#ifndef FS_TEST_HUB_PROC_H
#define FS_TEST_HUB_PROC_H

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hub.h"

/* Runs "BIN serve DIR --port 0 --quiet"; returns its pid, sets *port. */
static inline pid_t hub_proc_spawn(const char *bin, const char *dir, unsigned *port)
{
	int fd[2];
	char line[256];
	size_t len = 0;
	pid_t pid;

	assert_int_equal(pipe(fd), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(fd[1], 1);
		close(fd[0]);
		close(fd[1]);
		execl(bin, bin, "serve", dir, "--port", "0", "--quiet", (char *)NULL);
		_exit(127);
	}
	close(fd[1]);
	while (len < sizeof(line) - 1) {
		ssize_t n = read(fd[0], line + len, 1);
		if (n <= 0 || line[len] == '\n')
			break;
		len++;
	}
	line[len] = '\0';
	close(fd[0]);
	const char *p = strrchr(line, ':');
	assert_non_null(p);
	*port = (unsigned)atoi(p + 1);
	assert_true(*port > 0);
	return pid;
}

/*
 * A fresh hub folder under a new temporary folder tmp (TMPDIR honoured,
 * named fs-<name>-XXXXXX): dir = tmp/hub, made by fs_hub_init (its pin in
 * pin), with database "team" and a token for device "tablet" on it; ca is
 * its certificate. 0, or -1 on failure (for a group set-up to report).
 */
static inline int hub_proc_folder(const char *name, char tmp[256], char dir[300], char ca[320],
                                  char pin[FS_HUB_PIN_MAX], char token[FS_HUB_TOKEN_MAX])
{
	fs_errbuf eb;

	snprintf(tmp, 256, "%s/fs-%s-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", name);
	if (mkdtemp(tmp) == NULL)
		return -1;
	snprintf(dir, 300, "%s/hub", tmp);
	snprintf(ca, 320, "%s/cert.pem", dir);
	if (fs_hub_init(dir, NULL, 0, pin, &eb) != FS_OK ||
	    fs_hub_token_add(dir, "tablet", (const char *const[]){"team"}, 1, 0, token, &eb) !=
	        FS_OK ||
	    fs_hub_db_create(dir, "team", &eb) != FS_OK)
		return -1;
	return 0;
}

/* Stops the hub process pid (if any) and removes the folder tmp: 0 or -1. */
static inline int hub_proc_stop(pid_t pid, const char *tmp)
{
	char cmd[300];

	if (pid > 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
	return system(cmd) == 0 ? 0 : -1;
}

#endif
