/*
 * tests/sync/sync_test.c: the shared set-up of the sync tests
 * (sync_test.h): temporary folders, stores, remotes and outbox checks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "sync_test.h"

static char dir[512];

const char *tsync_env(const char *name)
{
	const char *v = getenv(name);
	if (v == NULL)
		fail_msg("%s is not set (run through tests/interop/harness.sh)", name);
	return v;
}

int tsync_dir_new(const char *prefix)
{
	const char *t = getenv("TMPDIR");
	snprintf(dir, sizeof(dir), "%s/fs-%s-XXXXXX", t && *t ? t : "/tmp", prefix);
	return mkdtemp(dir) ? 0 : -1;
}

const char *tsync_dir(void)
{
	return dir;
}

void tsync_dir_remove(void)
{
	pid_t pid;
	int st = 0;

	if (dir[0] == '\0')
		return;
	/* rm without a shell, so no quoting of the path can go wrong. */
	if ((pid = fork()) == 0) {
		execlp("rm", "rm", "-rf", "--", dir, (char *)NULL);
		_exit(127);
	}
	if (pid > 0)
		waitpid(pid, &st, 0);
	dir[0] = '\0';
}

fs_store *tsync_store(const char *name)
{
	char path[600];
	fs_store *st = NULL;
	fs_errbuf eb;

	snprintf(path, sizeof(path), "%s/%s.db", dir, name);
	if (fs_store_open(path, NULL, &st, &eb) != FS_OK)
		fail_msg("fs_store_open %s: %s", name, eb.msg);
	return st;
}

fs_sync_remote *tsync_remote(const char *base, const char *db, const fs_sync_remote_opts *tmpl,
                             int create)
{
	char url[512];
	fs_sync_remote_opts o = {.allow_http_loopback = 1};
	fs_sync_remote *r = NULL;
	fs_sync_resp resp;
	fs_errbuf eb;

	if (tmpl)
		o = *tmpl;
	snprintf(url, sizeof(url), "%s%s%s", base, db && *db && *db != '/' ? "/" : "",
	         db ? db : "");
	o.url = url;
	if (fs_sync_remote_new(&o, &r, &eb) != FS_OK)
		return NULL;
	if (create) {
		int rc = fs_sync_req_perform(r, FS_SYNC_PUT, "", "{}", 2, &resp, &eb);
		if (rc != FS_OK && resp.status != 412) {
			fs_sync_remote_free(r);
			return NULL;
		}
	}
	return r;
}

void tsync_put(fs_store *st, const char *id, const char *parent, const char *body, int deleted,
               char rev[FS_REV_MAX])
{
	fs_errbuf eb;
	if (fs_store_put_local(st, id, parent, (const uint8_t *)body, body ? strlen(body) : 0,
	                       deleted, rev, &eb) != FS_OK)
		fail_msg("put %s: %s", id, eb.msg);
}

uint64_t tsync_queued(fs_store *st, int quarantine_ok)
{
	fs_store_outbox_stats s;
	fs_errbuf eb;
	assert_int_equal(fs_store_outbox_stats_get(st, &s, &eb), FS_OK);
	if (!quarantine_ok)
		assert_int_equal(s.quarantined, 0);
	return s.queued;
}
