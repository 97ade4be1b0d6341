/*
 * tests/sync/sync_test.h: the set-up every sync test repeated: a temporary
 * folder holding the test's stores, remotes on the servers harness.sh
 * started (with their database created), and the outbox checks. Failures
 * end the test through cmocka; set-up functions return NULL or -1 instead,
 * so a group set-up can report them.
 */
#ifndef FS_SYNC_TEST_H
#define FS_SYNC_TEST_H

#include <stdint.h>

#include "store.h"
#include "sync_int.h"

/* The environment variable name, or the test fails (not run by harness.sh). */
const char *tsync_env(const char *name);

/* Makes a fresh temporary folder /tmp/fs-<prefix>-XXXXXX (TMPDIR honoured);
 * 0 or -1. tsync_dir_remove deletes it with everything in it. */
int tsync_dir_new(const char *prefix);
void tsync_dir_remove(void);
const char *tsync_dir(void);

/* Opens (creating) the store <dir>/<name>.db, or fails the test. */
fs_store *tsync_store(const char *name);

/*
 * A remote for base/db (base: a URL, e.g. tsync_env("FS_TEST_COUCH_URL");
 * db may be NULL, or a path that starts with '/'),
 * with the options of tmpl (NULL: plain http to loopback allowed) and its
 * url replaced. create: PUT the database first (an existing one is fine).
 * NULL on failure. Caller frees with fs_sync_remote_free.
 */
fs_sync_remote *tsync_remote(const char *base, const char *db, const fs_sync_remote_opts *tmpl,
                             int create);

/* fs_store_put_local of a text body (NULL: none), or the test fails. */
void tsync_put(fs_store *st, const char *id, const char *parent, const char *body, int deleted,
               char rev[FS_REV_MAX]);

/* Rows waiting in the outbox; the test fails if any is quarantined and
 * quarantine_ok is 0. */
uint64_t tsync_queued(fs_store *st, int quarantine_ok);

#endif
