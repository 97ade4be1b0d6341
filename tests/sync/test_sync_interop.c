/*
 * tests/sync/test_sync_interop.c: replication between real stores and a
 * real pouchdb-server (harness.sh), checked from three sides: both stores
 * and PouchDB 9 as an independent client (tests/interop/pouch_client.js).
 * Push N and pull them elsewhere; concurrent edits converge to the same
 * winner and conflicts everywhere; tombstones travel; PouchDB sees exactly
 * our revisions and we read what PouchDB wrote; a refused document goes to
 * the quarantine while the rest goes through; open_revs fallback.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <cmocka.h>
#include <curl/curl.h>

#include "sync_test.h"

#define NDOCS   120
#define OUT_MAX (8u << 20)

static fs_store *sa, *sb;
static fs_sync_remote *rem;
static char dburl[512];

static int setup(void **state)
{
	(void)state;
	const char *base = getenv("FS_TEST_COUCH_URL");
	if (base == NULL || tsync_dir_new("interop") != 0)
		return -1;
	snprintf(dburl, sizeof(dburl), "%s/interop", base);
	if ((rem = tsync_remote(base, "interop", NULL, 1)) == NULL)
		return -1;
	sa = tsync_store("a");
	sb = tsync_store("b");
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	fs_store_close(sa);
	fs_store_close(sb);
	fs_sync_remote_free(rem);
	tsync_dir_remove();
	return 0;
}

/* Runs the PouchDB client without a shell; returns its stdout as JSON. */
static cJSON *pouch(const char *cmd, const char *arg)
{
	int fd[2];
	pid_t pid;
	char *out = malloc(OUT_MAX + 1);
	size_t len = 0;
	ssize_t n;
	int status;
	cJSON *j = NULL;

	assert_non_null(out);
	assert_int_equal(pipe(fd), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(fd[1], 1);
		close(fd[0]);
		close(fd[1]);
		execl(FS_NODE, FS_NODE, FS_POUCH_CLIENT, cmd, dburl, arg, (char *)NULL);
		_exit(127);
	}
	close(fd[1]);
	while (len < OUT_MAX && (n = read(fd[0], out + len, OUT_MAX - len)) > 0)
		len += (size_t)n;
	close(fd[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	out[len] = '\0';
	j = cJSON_Parse(out);
	free(out);
	assert_non_null(j);
	return j;
}

static void sync_ok(int (*fn)(fs_store *, fs_sync_remote *, const fs_sync_opts *,
                              fs_sync_progress *, fs_errbuf *),
                    fs_store *st, const fs_sync_opts *o, fs_sync_progress *p)
{
	fs_errbuf eb = {0};
	int rc = fn(st, rem, o, p, &eb);
	if (rc != FS_OK)
		fail_msg("sync: %s (%s)", eb.msg, fs_errname(rc));
}

static void assert_same_doc(fs_store *x, fs_store *y, const char *id)
{
	fs_store_doc *a = NULL, *b = NULL;
	fs_errbuf eb;
	assert_int_equal(fs_store_get(x, id, NULL, &a, &eb), FS_OK);
	assert_int_equal(fs_store_get(y, id, NULL, &b, &eb), FS_OK);
	assert_string_equal(a->rev, b->rev);
	assert_int_equal(a->deleted, b->deleted);
	if (!a->deleted) {
		assert_int_equal(a->body_len, b->body_len);
		assert_memory_equal(a->body, b->body, a->body_len);
	}
	fs_store_doc_free(a);
	fs_store_doc_free(b);
}

/* The server, as PouchDB sees it, holds exactly the store's leaves and winner. */
static void assert_server_has(const cJSON *dump, fs_store *st, const char *id)
{
	fs_store_leaves *l = NULL;
	fs_errbuf eb;
	const cJSON *d = cJSON_GetObjectItemCaseSensitive(dump, id);
	const cJSON *leaves = cJSON_GetObjectItemCaseSensitive(d, "leaves");
	const cJSON *winner = cJSON_GetObjectItemCaseSensitive(d, "winner");

	assert_non_null(d);
	assert_int_equal(fs_store_leaves_get(st, id, &l, &eb), FS_OK);
	assert_int_equal(cJSON_GetArraySize(leaves), (int)l->n);
	for (size_t i = 0; i < l->n; i++) {
		const cJSON *e;
		int found = 0;
		cJSON_ArrayForEach(e, leaves)
		{
			const cJSON *rev = cJSON_GetObjectItemCaseSensitive(e, "rev");
			if (strcmp(rev->valuestring, l->v[i].rev) != 0)
				continue;
			found = 1;
			assert_int_equal(
			    cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "deleted")),
			    l->v[i].deleted);
			if (!l->v[i].deleted) { /* bodies match member for member */
				fs_store_doc *doc = NULL;
				cJSON *mine;
				assert_int_equal(fs_store_get(st, id, l->v[i].rev, &doc, &eb),
				                 FS_OK);
				mine =
				    cJSON_ParseWithLength((const char *)doc->body, doc->body_len);
				assert_non_null(mine);
				assert_true(cJSON_Compare(
				    mine, cJSON_GetObjectItemCaseSensitive(e, "body"), 1));
				cJSON_Delete(mine);
				fs_store_doc_free(doc);
			}
		}
		assert_true(found);
	}
	if (l->v[0].deleted)
		assert_true(cJSON_IsNull(winner));
	else
		assert_string_equal(winner->valuestring, l->v[0].rev);
	fs_store_leaves_free(l);
}

static void doc_id(char *id, size_t n, int i)
{
	snprintf(id, n, "doc-%04d", i);
}

static void test_push_and_pull(void **state)
{
	(void)state;
	char id[32], body[256], rev[FS_REV_MAX];
	fs_sync_opts o = {.batch_docs = 25, .remote_name = "office"};
	fs_sync_progress p;
	cJSON *dump;

	for (int i = 0; i < NDOCS; i++) {
		doc_id(id, sizeof(id), i);
		snprintf(body, sizeof(body),
		         "{\"fs\":1,\"k\":\"k1\",\"n\":\"nonce%d\",\"c\":\"ct%d\"}", i, i);
		tsync_put(sa, id, NULL, body, 0, rev);
		if (i % 10 == 0) { /* a second edit: pushed with its history */
			char rev2[FS_REV_MAX];
			snprintf(body, sizeof(body), "{\"fs\":1,\"k\":\"k1\",\"c\":\"edit%d\"}", i);
			tsync_put(sa, id, rev, body, 0, rev2);
		}
	}
	assert_int_equal(tsync_queued(sa, 1), NDOCS);
	sync_ok(fs_sync_push, sa, &o, &p);
	assert_int_equal(tsync_queued(sa, 1), 0);
	assert_int_equal(p.docs_pushed, NDOCS);
	assert_true(p.bytes_sent > NDOCS * 40);

	/* Pushing again sends nothing: the outbox is empty. */
	sync_ok(fs_sync_push, sa, &o, &p);
	assert_int_equal(p.docs_pushed, 0);
	assert_int_equal(p.bytes_sent, 0);

	sync_ok(fs_sync_pull, sb, &o, &p);
	assert_int_equal(p.docs_pulled, NDOCS);
	for (int i = 0; i < NDOCS; i++) {
		doc_id(id, sizeof(id), i);
		assert_same_doc(sa, sb, id);
	}
	/* Pulled documents are not queued back, and a second pull finds nothing. */
	assert_int_equal(tsync_queued(sb, 1), 0);
	sync_ok(fs_sync_pull, sb, &o, &p);
	assert_int_equal(p.docs_pulled, 0);

	dump = pouch("dump", NULL);
	assert_int_equal(cJSON_GetArraySize(dump), NDOCS);
	for (int i = 0; i < NDOCS; i++) {
		doc_id(id, sizeof(id), i);
		assert_server_has(dump, sa, id);
	}
	cJSON_Delete(dump);
}

static void test_conflicts_converge(void **state)
{
	(void)state;
	char ra[FS_REV_MAX], rb[FS_REV_MAX];
	fs_store_doc *d = NULL;
	fs_store_leaves *la = NULL, *lb = NULL;
	fs_errbuf eb;
	fs_sync_opts o = {.remote_name = "office"};
	cJSON *dump;

	/* Both edit doc-0001 offline, on top of the same revision. */
	assert_int_equal(fs_store_get(sa, "doc-0001", NULL, &d, &eb), FS_OK);
	tsync_put(sa, "doc-0001", d->rev, "{\"fs\":1,\"c\":\"from-a\"}", 0, ra);
	tsync_put(sb, "doc-0001", d->rev, "{\"fs\":1,\"c\":\"from-b\"}", 0, rb);
	fs_store_doc_free(d);
	assert_string_not_equal(ra, rb);

	sync_ok(fs_sync_once, sa, &o, NULL);
	sync_ok(fs_sync_once, sb, &o, NULL);
	sync_ok(fs_sync_once, sa, &o, NULL);

	assert_int_equal(fs_store_leaves_get(sa, "doc-0001", &la, &eb), FS_OK);
	assert_int_equal(fs_store_leaves_get(sb, "doc-0001", &lb, &eb), FS_OK);
	assert_int_equal(la->n, 2);
	assert_int_equal(lb->n, 2);
	for (size_t i = 0; i < 2; i++)
		assert_string_equal(la->v[i].rev, lb->v[i].rev); /* winner first, same order */
	fs_store_leaves_free(la);
	fs_store_leaves_free(lb);
	assert_same_doc(sa, sb, "doc-0001");
	dump = pouch("dump", NULL);
	assert_server_has(dump, sa, "doc-0001");
	assert_server_has(dump, sb, "doc-0001");
	cJSON_Delete(dump);
}

static void test_tombstones(void **state)
{
	(void)state;
	char rev[FS_REV_MAX];
	fs_store_doc *d = NULL;
	fs_errbuf eb;
	fs_sync_opts o = {.remote_name = "office"};
	cJSON *dump;

	assert_int_equal(fs_store_get(sa, "doc-0003", NULL, &d, &eb), FS_OK);
	tsync_put(sa, "doc-0003", d->rev, NULL, 1, rev);
	fs_store_doc_free(d);
	sync_ok(fs_sync_push, sa, &o, NULL);
	sync_ok(fs_sync_pull, sb, &o, NULL);
	assert_int_equal(fs_store_get(sb, "doc-0003", NULL, &d, &eb), FS_OK);
	assert_true(d->deleted);
	assert_string_equal(d->rev, rev);
	fs_store_doc_free(d);
	dump = pouch("dump", NULL);
	assert_server_has(dump, sa, "doc-0003");
	assert_server_has(dump, sb, "doc-0003");
	cJSON_Delete(dump);
}

static void test_pouchdb_writes(void **state)
{
	(void)state;
	fs_store_doc *d = NULL;
	fs_errbuf eb;
	fs_sync_opts o = {.remote_name = "office"};
	char arg[256], rev[FS_REV_MAX];
	cJSON *res, *dump;

	res = pouch("put", "{\"_id\":\"from-pouch\",\"fs\":1,\"c\":\"written by PouchDB\"}");
	cJSON_Delete(res);
	/* PouchDB also edits one of ours. */
	assert_int_equal(fs_store_get(sb, "doc-0004", NULL, &d, &eb), FS_OK);
	snprintf(arg, sizeof(arg),
	         "{\"_id\":\"doc-0004\",\"_rev\":\"%s\",\"fs\":1,\"c\":\"pouch\"}", d->rev);
	fs_store_doc_free(d);
	res = pouch("put", arg);
	const char *prev = cJSON_GetObjectItemCaseSensitive(res, "rev")->valuestring;

	sync_ok(fs_sync_pull, sb, &o, NULL);
	assert_int_equal(fs_store_get(sb, "from-pouch", NULL, &d, &eb), FS_OK);
	static const char want[] = "{\"fs\":1,\"c\":\"written by PouchDB\"}";
	assert_int_equal(d->body_len, strlen(want));
	assert_memory_equal(d->body, want, strlen(want));
	fs_store_doc_free(d);
	assert_int_equal(fs_store_get(sb, "doc-0004", NULL, &d, &eb), FS_OK);
	assert_string_equal(d->rev, prev);
	/* We edit on top of PouchDB's revision; PouchDB sees it win. */
	tsync_put(sb, "doc-0004", d->rev, "{\"fs\":1,\"c\":\"after pouch\"}", 0, rev);
	fs_store_doc_free(d);
	cJSON_Delete(res);
	sync_ok(fs_sync_push, sb, &o, NULL);
	dump = pouch("dump", NULL);
	assert_server_has(dump, sb, "doc-0004");
	assert_server_has(dump, sb, "from-pouch");
	cJSON_Delete(dump);
}

static void test_quarantine(void **state)
{
	(void)state;
	char rev[FS_REV_MAX];
	fs_store_outbox *q = NULL;
	fs_errbuf eb;
	fs_sync_opts o = {.remote_name = "office"};
	fs_sync_progress p;

	/* pouchdb-server refuses a batch holding this id as a whole (400):
	 * the batch is split until the culprit is alone. */
	tsync_put(sa, "ok-1", NULL, "{\"fs\":1}", 0, rev);
	tsync_put(sa, "_bad", NULL, "{\"fs\":1}", 0, rev);
	tsync_put(sa, "ok-2", NULL, "{\"fs\":1}", 0, rev);
	tsync_put(sa, "ok-3", NULL, "{\"fs\":1}", 0, rev);
	/* A body that is not a JSON object is never sent. */
	tsync_put(sa, "not-an-object", NULL, "[1,2]", 0, rev);
	sync_ok(fs_sync_push, sa, &o, &p);
	assert_int_equal(p.docs_refused, 2);
	assert_int_equal(p.docs_pushed, 3);
	assert_int_equal(tsync_queued(sa, 1), 0);
	assert_int_equal(fs_store_quarantine_list(sa, &q, &eb), FS_OK);
	assert_int_equal(q->n, 2);
	for (size_t i = 0; i < 2; i++) {
		if (strcmp(q->v[i].id, "_bad") == 0) {
			assert_int_equal(q->v[i].status, 400);
		} else {
			assert_string_equal(q->v[i].id, "not-an-object");
			assert_int_equal(q->v[i].status, 0);
		}
		assert_non_null(q->v[i].reason);
	}
	fs_store_outbox_free(q);
}

/*
 * A push states its length before reading any body (it streams them): a
 * body with spaces inside its braces is sent with whitespace where the
 * spaces were, and arrives as the same JSON.
 */
static void test_spaced_bodies(void **state)
{
	(void)state;
	static const char *const bodies[] = {"{ \"fs\" : 1 ,\n \"n\" : [ 1, 2 ] }", "{ }", "{}",
	                                     "{\"fs\":2}  "};
	char rev[FS_REV_MAX], id[32];
	fs_sync_opts o = {.remote_name = "spaced"};
	fs_sync_progress p;
	fs_errbuf eb;
	fs_sync_remote *r = tsync_remote(tsync_env("FS_TEST_COUCH_URL"), "spaced", NULL, 1);
	fs_store *se = tsync_store("e"), *sf = tsync_store("f");

	assert_non_null(r);
	for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		snprintf(id, sizeof(id), "spaced-%zu", i);
		tsync_put(se, id, NULL, bodies[i], 0, rev);
	}
	assert_int_equal(fs_sync_push(se, r, &o, &p, &eb), FS_OK);
	assert_int_equal(p.docs_pushed, 4);
	assert_int_equal(tsync_queued(se, 0), 0);
	assert_int_equal(fs_sync_pull(sf, r, &o, &p, &eb), FS_OK);
	assert_int_equal(p.docs_pulled, 4);
	for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		fs_store_doc *d = NULL;
		cJSON *want = cJSON_Parse(bodies[i]), *got;
		snprintf(id, sizeof(id), "spaced-%zu", i);
		assert_int_equal(fs_store_get(sf, id, NULL, &d, &eb), FS_OK);
		got = cJSON_ParseWithLength((const char *)d->body, d->body_len);
		assert_non_null(want);
		assert_non_null(got);
		assert_true(cJSON_Compare(want, got, 1));
		cJSON_Delete(want);
		cJSON_Delete(got);
		fs_store_doc_free(d);
	}
	fs_store_close(se);
	fs_store_close(sf);
	fs_sync_remote_free(r);
}

/* A validate_doc_update refusal comes per document: that one is quarantined
 * with 403 and the server's reason, the others go through. */
static void test_per_document_refusal(void **state)
{
	(void)state;
	char rev[FS_REV_MAX];
	/* fieldsync-hub runs no JavaScript: no validate_doc_update there. */
	if (getenv("FS_TEST_SERVER") && strcmp(getenv("FS_TEST_SERVER"), "hub") == 0)
		skip();
	fs_sync_remote *r = tsync_remote(tsync_env("FS_TEST_COUCH_URL"), "rules", NULL, 1);
	fs_sync_resp resp;
	fs_sync_opts o = {.remote_name = "rules"};
	fs_sync_progress p;
	fs_store_outbox *q = NULL;
	fs_errbuf eb;
	const char *ddoc = "{\"validate_doc_update\":\"function(n) { if (n.bad) "
	                   "throw({forbidden: 'no bad documents'}); }\"}";

	assert_non_null(r);
	assert_int_equal(
	    fs_sync_req_perform(r, FS_SYNC_PUT, "_design/rules", ddoc, strlen(ddoc), &resp, &eb),
	    FS_OK);
	tsync_put(sa, "rule-ok-1", NULL, "{\"fs\":1}", 0, rev);
	tsync_put(sa, "rule-bad", NULL, "{\"fs\":1,\"bad\":true}", 0, rev);
	tsync_put(sa, "rule-ok-2", NULL, "{\"fs\":1}", 0, rev);
	assert_int_equal(fs_sync_push(sa, r, &o, &p, &eb), FS_OK);
	assert_int_equal(p.docs_pushed, 2);
	assert_int_equal(p.docs_refused, 1);
	assert_int_equal(tsync_queued(sa, 1), 0);
	assert_int_equal(fs_store_quarantine_list(sa, &q, &eb), FS_OK);
	assert_int_equal(q->n, 3); /* with the two from test_quarantine */
	assert_string_equal(q->v[2].id, "rule-bad");
	assert_int_equal(q->v[2].status, 403);
	assert_non_null(strstr(q->v[2].reason, "no bad documents"));
	fs_store_outbox_free(q);
	/* Pulling that database brings the documents, not its design document. */
	fs_store *sd = tsync_store("d");
	fs_store_doc *d = NULL;
	assert_int_equal(fs_sync_pull(sd, r, &o, &p, &eb), FS_OK);
	assert_int_equal(p.docs_pulled, 2);
	assert_int_equal(fs_store_get(sd, "rule-ok-2", NULL, &d, &eb), FS_OK);
	fs_store_doc_free(d);
	assert_int_equal(fs_store_get(sd, "_design/rules", NULL, &d, &eb), FS_E_NOTFOUND);
	fs_store_close(sd);
	fs_sync_remote_free(r);
}

/* A missing database is named, and nothing leaves the outbox. */
static void test_missing_database(void **state)
{
	(void)state;
	char rev[FS_REV_MAX];
	fs_sync_remote *r = tsync_remote(tsync_env("FS_TEST_COUCH_URL"), "no-such-db", NULL, 0);
	fs_sync_opts o = {.remote_name = "gone"};
	fs_errbuf eb;

	assert_non_null(r);
	tsync_put(sa, "queued-1", NULL, "{\"fs\":1}", 0, rev);
	assert_int_equal(fs_sync_push(sa, r, &o, NULL, &eb), FS_E_SYNC_NODB);
	assert_int_equal(tsync_queued(sa, 1), 1);
	assert_int_equal(fs_sync_pull(sa, r, &o, NULL, &eb), FS_E_SYNC_NODB);
	fs_sync_remote_free(r);
}

/* Compressed answers: pouchdb-server gzips what is worth it when asked;
 * a store pulled that way holds the same documents as one pulled plain. */
static void test_compressed_answers(void **state)
{
	(void)state;
	const fs_sync_remote_opts ro = {.allow_http_loopback = 1, .compress = 1};
	fs_sync_remote *r = tsync_remote(tsync_env("FS_TEST_COUCH_URL"), "interop", &ro, 0);
	fs_store *sz = tsync_store("z");
	fs_sync_opts o = {.remote_name = "gz", .batch_docs = 40};
	fs_sync_progress p;
	fs_errbuf eb;
	char id[32];

	assert_non_null(r);
	assert_int_equal(fs_sync_pull(sz, r, &o, &p, &eb), FS_OK);
	assert_true(p.docs_pulled >= NDOCS);
	assert_true(fs_sync_remote_encoded(r) > 0);
	for (int i = 0; i < NDOCS; i++) {
		doc_id(id, sizeof(id), i);
		assert_same_doc(sb, sz, id);
	}
	fs_sync_remote_free(r);
	/* Without asking, nothing comes compressed from a loopback peer. */
	r = tsync_remote(tsync_env("FS_TEST_COUCH_URL"), "interop", NULL, 0);
	assert_non_null(r);
	assert_int_equal(fs_sync_pull(sz, r, &o, &p, &eb), FS_OK);
	assert_int_equal(fs_sync_remote_encoded(r), 0);
	fs_sync_remote_free(r);
	fs_store_close(sz);
}

/*
 * _revs_diff is asked for every batch: a second device holding the same
 * revisions (a copy of the store) pushes in several batches and sends no
 * body at all, since the server has every revision already.
 */
static void test_revs_diff_every_batch(void **state)
{
	(void)state;
	char src[600], dst[600], id[32], body[2100], rev[FS_REV_MAX];
	fs_sync_opts o = {.remote_name = "office", .batch_docs = 10};
	fs_sync_progress p;
	fs_store *s1 = tsync_store("copy1"), *s2;
	fs_errbuf eb;

	memset(body, 0, sizeof(body));
	for (int i = 0; i < 30; i++) {
		snprintf(id, sizeof(id), "rd-%02d", i);
		snprintf(body, sizeof(body), "{\"fs\":1,\"c\":\"%02d%02000d\"}", i, 0);
		tsync_put(s1, id, NULL, body, 0, rev);
	}
	fs_store_close(s1);
	snprintf(src, sizeof(src), "%s/copy1.db", tsync_dir());
	snprintf(dst, sizeof(dst), "%s/copy2.db", tsync_dir());
	{
		FILE *in = fopen(src, "rb"), *out = fopen(dst, "wb");
		char chunk[65536];
		size_t n;
		assert_non_null(in);
		assert_non_null(out);
		while ((n = fread(chunk, 1, sizeof(chunk), in)) > 0)
			assert_int_equal(fwrite(chunk, 1, n, out), n);
		fclose(in);
		assert_int_equal(fclose(out), 0);
	}
	s1 = tsync_store("copy1");
	s2 = tsync_store("copy2");
	assert_int_equal(fs_sync_push(s1, rem, &o, &p, &eb), FS_OK);
	assert_int_equal(p.docs_pushed, 30);
	assert_true(p.bytes_sent > 30 * 2000);
	assert_int_equal(tsync_queued(s2, 0), 30);
	assert_int_equal(fs_sync_push(s2, rem, &o, &p, &eb), FS_OK);
	assert_int_equal(p.docs_pushed, 30);
	assert_int_equal(tsync_queued(s2, 0), 0);
	/* Three _revs_diff questions of ten short lines each, no bodies. */
	assert_true(p.bytes_sent < 3000);
	fs_store_close(s1);
	fs_store_close(s2);
}

static void test_open_revs_fallback(void **state)
{
	(void)state;
	fs_store *sc = tsync_store("c");
	fs_sync_opts o = {.remote_name = "office", .no_bulk_get = 1, .batch_docs = 40};
	fs_sync_progress p;
	char id[32];

	sync_ok(fs_sync_pull, sc, &o, &p);
	assert_true(p.docs_pulled >= NDOCS);
	for (int i = 0; i < NDOCS; i++) {
		doc_id(id, sizeof(id), i);
		assert_same_doc(sb, sc, id);
	}
	assert_same_doc(sb, sc, "from-pouch");
	fs_store_close(sc);
}

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/*
 * A local edit supersedes a row of a push batch under way, and stemming
 * (revs_limit 1) takes the superseded revision's body before the batch's
 * _bulk_docs is sent: that row is skipped, the rest go, and the next push
 * sends the new revision. (The push failed with FS_E_NOTFOUND.)
 */
static void test_superseded_mid_push(void **state)
{
	(void)state;
	char path[600], id[32], rev[FS_REV_MAX], rev2[FS_REV_MAX], tmp[FS_REV_MAX];
	fs_store_opts so = {.revs_limit = 1};
	fs_sync_opts o = {.remote_name = "office"};
	fs_sync_job *j = NULL;
	fs_store *st = NULL, *back = tsync_store("stem-back");
	fs_store_doc *d = NULL;
	CURLM *multi = curl_multi_init();
	uint32_t wait = 0;
	fs_errbuf eb;
	int rc, rounds = 0;

	assert_non_null(multi);
	snprintf(path, sizeof(path), "%s/stem.db", tsync_dir());
	assert_int_equal(fs_store_open(path, &so, &st, &eb), FS_OK);
	for (int i = 0; i < 5; i++) {
		snprintf(id, sizeof(id), "sm-%d", i);
		tsync_put(st, id, NULL, "{\"fs\":1,\"c\":\"one\"}", 0, i == 2 ? rev : tmp);
	}
	assert_int_equal(fs_sync_job_new(st, rem, &o, FS_SYNC_JOB_PUSH, multi, &j, &eb), FS_OK);
	/* The first run reads the batch and asks _revs_diff; the edit lands
	 * before the answer, so before any body is sent. */
	assert_int_equal(fs_sync_job_run(j, mono_ms(), &wait, &eb), FS_SYNC_PENDING);
	tsync_put(st, "sm-2", rev, "{\"fs\":1,\"c\":\"two\"}", 0, rev2);
	assert_int_equal(fs_store_get(st, "sm-2", rev, &d, &eb), FS_E_NOTFOUND);
	do {
		CURLMsg *m;
		int running, left;
		assert_true(rounds++ < 2000);
		assert_int_equal(curl_multi_poll(multi, NULL, 0, 50, NULL), CURLM_OK);
		assert_int_equal(curl_multi_perform(multi, &running), CURLM_OK);
		while ((m = curl_multi_info_read(multi, &left)) != NULL)
			if (m->msg == CURLMSG_DONE)
				fs_sync_job_transfer_done(j, m->easy_handle, m->data.result);
		rc = fs_sync_job_run(j, mono_ms(), &wait, &eb);
	} while (rc == FS_SYNC_PENDING);
	if (rc != FS_OK)
		fail_msg("push: %s (%s)", eb.msg, fs_errname(rc));
	fs_sync_job_free(j);
	curl_multi_cleanup(multi);
	/* The job pushes what was queued when it started: the edit is the one
	 * row left, for the next push (the daemon's comes after its debounce). */
	assert_int_equal(tsync_queued(st, 0), 1);
	sync_ok(fs_sync_push, st, &o, NULL);
	assert_int_equal(tsync_queued(st, 0), 0);
	/* The server holds the edit; a fresh store pulls it as the winner. */
	sync_ok(fs_sync_pull, back, &o, NULL);
	assert_int_equal(fs_store_get(back, "sm-2", NULL, &d, &eb), FS_OK);
	assert_string_equal(d->rev, rev2);
	fs_store_doc_free(d);
	assert_int_equal(fs_store_get(back, "sm-4", NULL, &d, &eb), FS_OK);
	fs_store_doc_free(d);
	fs_store_close(st);
	fs_store_close(back);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_push_and_pull),      cmocka_unit_test(test_conflicts_converge),
	    cmocka_unit_test(test_tombstones),         cmocka_unit_test(test_pouchdb_writes),
	    cmocka_unit_test(test_quarantine),         cmocka_unit_test(test_per_document_refusal),
	    cmocka_unit_test(test_missing_database),   cmocka_unit_test(test_open_revs_fallback),
	    cmocka_unit_test(test_compressed_answers), cmocka_unit_test(test_revs_diff_every_batch),
	    cmocka_unit_test(test_spaced_bodies),      cmocka_unit_test(test_superseded_mid_push),
	};
	curl_global_init(CURL_GLOBAL_DEFAULT);
	int rc = cmocka_run_group_tests(tests, setup, teardown);
	curl_global_cleanup();
	return rc;
}
