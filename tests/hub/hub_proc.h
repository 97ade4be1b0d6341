/*
 * tests/hub/hub_proc.h: what the hub's process tests share: starting the
 * real fieldsync-hub on a port it picks itself and reading that port from
 * its "listening on https://ADDR:PORT" line. Include after cmocka.h.
 */
#ifndef FS_TEST_HUB_PROC_H
#define FS_TEST_HUB_PROC_H

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

#endif
