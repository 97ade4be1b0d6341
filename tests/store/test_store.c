/* tests/store: every public function of store/ against a real SQLite file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* cmocka needs the four headers above first. */
#include <cmocka.h>

#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "store.h"
#include "store_int.h"
#include "util.h"

struct fx {
	char *dir;
	char *path;
	fs_store *st;
};

static int setup_opts(void **state, unsigned revs_limit)
{
	struct fx *f = calloc(1, sizeof(*f));
	fs_store_opts o = {.revs_limit = revs_limit};
	fs_errbuf eb;

	assert_non_null(f);
	assert_non_null(f->dir = tdir_new());
	assert_non_null(f->path = tpath(f->dir, "store.db"));
	assert_int_equal(fs_store_open(f->path, &o, &f->st, &eb), FS_OK);
	*state = f;
	return 0;
}

static int setup(void **state)
{
	return setup_opts(state, 0);
}

static int setup_stem(void **state)
{
	return setup_opts(state, 5);
}

static int teardown(void **state)
{
	struct fx *f = *state;

	fs_store_close(f->st);
	free(f->path);
	tdir_free(f->dir);
	free(f);
	return 0;
}

#define B(s) ((const uint8_t *)(s)), strlen(s)

static void put_ok(fs_store *st, const char *id, const char *base, const char *body, int del,
                   char rev[FS_REV_MAX])
{
	fs_errbuf eb;
	int r = fs_store_put_local(st, id, base, B(body), del, rev, &eb);
	if (r != FS_OK)
		fail_msg("put %s: %s", id, eb.msg);
}

/* Inserts a remote revision given as "gen" and hashes newest first. */
static int remote(fs_store *st, const char *id, unsigned long start, int del, const char *body,
                  size_t nh, ...)
{
	const char *h[16];
	va_list ap;
	fs_errbuf eb;
	fs_store_rev_in in = {.id = id,
	                      .start = start,
	                      .hashes = h,
	                      .n_hashes = nh,
	                      .deleted = del,
	                      .body = (const uint8_t *)body,
	                      .body_len = strlen(body)};

	va_start(ap, nh);
	for (size_t i = 0; i < nh; i++)
		h[i] = va_arg(ap, const char *);
	va_end(ap);
	return fs_store_put_remote(st, &in, 1, NULL, NULL, &eb);
}

static void assert_winner(fs_store *st, const char *id, const char *rev, int deleted)
{
	fs_store_doc *d = NULL;
	fs_errbuf eb;

	assert_int_equal(fs_store_get(st, id, NULL, &d, &eb), FS_OK);
	assert_string_equal(d->rev, rev);
	assert_int_equal(d->deleted, deleted);
	fs_store_doc_free(d);
}

static void test_put_get(void **state)
{
	struct fx *f = *state;
	char r1[FS_REV_MAX], r2[FS_REV_MAX], want[FS_REV_MAX];
	fs_store_doc *d = NULL;
	fs_errbuf eb;
	fs_store_info info;

	put_ok(f->st, "a", NULL, "one", 0, r1);
	assert_int_equal(fs_crypto_rev_id(NULL, 0, B("one"), want), FS_OK);
	assert_string_equal(r1, want);
	put_ok(f->st, "a", r1, "two", 0, r2);
	assert_int_equal(fs_crypto_rev_id(r1, 0, B("two"), want), FS_OK);
	assert_string_equal(r2, want);
	assert_int_equal(strncmp(r2, "2-", 2), 0);

	assert_int_equal(fs_store_get(f->st, "a", NULL, &d, &eb), FS_OK);
	assert_string_equal(d->id, "a");
	assert_string_equal(d->rev, r2);
	assert_int_equal(d->body_len, 3);
	assert_memory_equal(d->body, "two", 3);
	assert_int_equal(d->seq, 2);
	fs_store_doc_free(d);
	assert_int_equal(fs_store_get(f->st, "a", r1, &d, &eb), FS_OK);
	assert_memory_equal(d->body, "one", 3);
	assert_int_equal(d->seq, 1);
	fs_store_doc_free(d);

	assert_int_equal(fs_store_get(f->st, "nope", NULL, &d, &eb), FS_E_NOTFOUND);
	assert_null(d);
	assert_int_equal(fs_store_get(f->st, "a", "9-abc", &d, &eb), FS_E_NOTFOUND);
	assert_int_equal(fs_store_get(f->st, "a", "garbage", &d, &eb), FS_E_NOTFOUND);

	/* An empty body is a body. */
	put_ok(f->st, "empty", NULL, "", 0, r1);
	assert_int_equal(fs_store_get(f->st, "empty", NULL, &d, &eb), FS_OK);
	assert_int_equal(d->body_len, 0);
	assert_non_null(d->body);
	fs_store_doc_free(d);

	assert_int_equal(fs_store_info_get(f->st, &info, &eb), FS_OK);
	assert_int_equal(info.doc_count, 2);
	assert_int_equal(info.doc_del_count, 0);
	assert_int_equal(info.update_seq, 3);
	fs_store_doc_free(NULL);
}

static void test_conflicts_409(void **state)
{
	struct fx *f = *state;
	char r1[FS_REV_MAX], r2[FS_REV_MAX], r3[FS_REV_MAX], r4[FS_REV_MAX];
	fs_errbuf eb;

	put_ok(f->st, "a", NULL, "one", 0, r1);
	/* A second "new document" over a live one is a conflict. */
	assert_int_equal(fs_store_put_local(f->st, "a", NULL, B("x"), 0, r3, &eb),
	                 FS_E_STORE_CONFLICT);
	assert_string_equal(r3, "");
	put_ok(f->st, "a", r1, "two", 0, r2);
	/* The stale base r1 is no longer a leaf. */
	assert_int_equal(fs_store_put_local(f->st, "a", r1, B("other"), 0, r3, &eb),
	                 FS_E_STORE_CONFLICT);
	assert_int_equal(eb.code, FS_E_STORE_CONFLICT);
	/* Unknown base, unknown document with a base, malformed base. */
	assert_int_equal(fs_store_put_local(f->st, "a", "2-ffff", B("x"), 0, r3, &eb),
	                 FS_E_STORE_CONFLICT);
	assert_int_equal(fs_store_put_local(f->st, "zz", r1, B("x"), 0, r3, &eb),
	                 FS_E_STORE_CONFLICT);
	assert_int_equal(fs_store_put_local(f->st, "a", "bad", B("x"), 0, r3, &eb), FS_E_ARG);
	assert_int_equal(fs_store_put_local(f->st, "", NULL, B("x"), 0, r3, &eb), FS_E_ARG);

	/* Delete, then re-create without a base: extends the tombstone. */
	put_ok(f->st, "a", r2, "", 1, r3);
	assert_int_equal(strncmp(r3, "3-", 2), 0);
	assert_winner(f->st, "a", r3, 1);
	put_ok(f->st, "a", NULL, "again", 0, r4);
	assert_int_equal(strncmp(r4, "4-", 2), 0);
	assert_winner(f->st, "a", r4, 0);

	/* A tombstone for a document never seen. */
	put_ok(f->st, "ghost", NULL, "", 1, r1);
	assert_winner(f->st, "ghost", r1, 1);
	fs_store_info info;
	assert_int_equal(fs_store_info_get(f->st, &info, &eb), FS_OK);
	assert_int_equal(info.doc_count, 1);
	assert_int_equal(info.doc_del_count, 1);
}

static void test_winner_rule(void **state)
{
	struct fx *f = *state;
	fs_store_leaves *l = NULL;
	fs_errbuf eb;

	/* Same generation: the lexicographically highest hash wins. */
	assert_int_equal(remote(f->st, "w", 2, 0, "b", 2, "bbbb", "aaaa"), FS_OK);
	assert_int_equal(remote(f->st, "w", 2, 0, "c", 2, "cccc", "aaaa"), FS_OK);
	assert_winner(f->st, "w", "2-cccc", 0);
	/* A longer branch wins over a higher hash. */
	assert_int_equal(remote(f->st, "w", 3, 0, "d", 3, "0000", "bbbb", "aaaa"), FS_OK);
	assert_winner(f->st, "w", "3-0000", 0);
	/* A deleted leaf loses to any live one, whatever its generation. */
	assert_int_equal(remote(f->st, "w", 4, 1, "", 2, "ffff", "0000"), FS_OK);
	assert_winner(f->st, "w", "2-cccc", 0);
	assert_int_equal(fs_store_leaves_get(f->st, "w", &l, &eb), FS_OK);
	assert_int_equal(l->n, 2);
	assert_string_equal(l->v[0].rev, "2-cccc");
	assert_int_equal(l->v[0].deleted, 0);
	assert_string_equal(l->v[1].rev, "4-ffff");
	assert_int_equal(l->v[1].deleted, 1);
	fs_store_leaves_free(l);
	/* All deleted: the highest tombstone wins. */
	assert_int_equal(remote(f->st, "w", 3, 1, "", 2, "1111", "cccc"), FS_OK);
	assert_winner(f->st, "w", "4-ffff", 1);
	assert_int_equal(fs_store_leaves_get(f->st, "nope", &l, &eb), FS_E_NOTFOUND);
	assert_null(l);
	fs_store_leaves_free(NULL);

	/* Generation compares as a number, not as text: 10 beats 9. */
	const char *h10[10] = {"a10", "a9", "a8", "a7", "a6", "a5", "a4", "a3", "a2", "a1"};
	fs_store_rev_in in = {.id = "n",
	                      .start = 10,
	                      .hashes = h10,
	                      .n_hashes = 10,
	                      .body = (const uint8_t *)"x",
	                      .body_len = 1};
	assert_int_equal(fs_store_put_remote(f->st, &in, 1, NULL, NULL, &eb), FS_OK);
	assert_int_equal(remote(f->st, "n", 9, 0, "y", 2, "zzzz", "a8"), FS_OK);
	assert_winner(f->st, "n", "10-a10", 0);
}

static void test_remote_merge(void **state)
{
	struct fx *f = *state;
	fs_store_doc *d = NULL;
	fs_store_history *h = NULL;
	fs_store_info i1, i2;
	fs_errbuf eb;
	char r[FS_REV_MAX];

	/* The newest revision first; its ancestors are known without bodies. */
	assert_int_equal(remote(f->st, "m", 3, 0, "three", 3, "c", "b", "a"), FS_OK);
	assert_winner(f->st, "m", "3-c", 0);
	assert_int_equal(fs_store_get(f->st, "m", "2-b", &d, &eb), FS_E_NOTFOUND);
	assert_int_equal(fs_store_history_get(f->st, "m", "3-c", 0, &h, &eb), FS_OK);
	assert_int_equal(h->start, 3);
	assert_int_equal(h->n, 3);
	assert_string_equal(h->hashes[0], "c");
	assert_string_equal(h->hashes[2], "a");
	fs_store_history_free(h);
	assert_int_equal(fs_store_history_get(f->st, "m", "3-c", 2, &h, &eb), FS_OK);
	assert_int_equal(h->n, 2);
	fs_store_history_free(h);
	assert_int_equal(fs_store_history_get(f->st, "m", "7-x", 0, &h, &eb), FS_E_NOTFOUND);
	assert_null(h);

	/* An older revision arriving later gives a known revision its body and changes no leaf. */
	assert_int_equal(fs_store_info_get(f->st, &i1, &eb), FS_OK);
	assert_int_equal(remote(f->st, "m", 2, 0, "two", 2, "b", "a"), FS_OK);
	assert_int_equal(fs_store_get(f->st, "m", "2-b", &d, &eb), FS_OK);
	assert_memory_equal(d->body, "two", 3);
	fs_store_doc_free(d);
	assert_winner(f->st, "m", "3-c", 0);
	/* Replays change nothing, not even the sequence. */
	assert_int_equal(remote(f->st, "m", 3, 0, "three", 3, "c", "b", "a"), FS_OK);
	assert_int_equal(remote(f->st, "m", 2, 0, "two", 2, "b", "a"), FS_OK);
	assert_int_equal(fs_store_info_get(f->st, &i2, &eb), FS_OK);
	assert_int_equal(i1.update_seq, i2.update_seq);

	/* A history that starts above a known root links onto it later. */
	assert_int_equal(remote(f->st, "o", 5, 0, "five", 2, "e", "d"), FS_OK);
	assert_int_equal(remote(f->st, "o", 3, 0, "three", 3, "c", "b", "a"), FS_OK);
	fs_store_leaves *l = NULL;
	assert_int_equal(fs_store_leaves_get(f->st, "o", &l, &eb), FS_OK);
	assert_int_equal(l->n, 2); /* not yet known to be related */
	fs_store_leaves_free(l);
	assert_int_equal(remote(f->st, "o", 4, 0, "four", 2, "d", "c"), FS_OK);
	assert_int_equal(fs_store_leaves_get(f->st, "o", &l, &eb), FS_OK);
	assert_int_equal(l->n, 1);
	assert_string_equal(l->v[0].rev, "5-e");
	fs_store_leaves_free(l);
	assert_int_equal(fs_store_history_get(f->st, "o", "5-e", 0, &h, &eb), FS_OK);
	assert_int_equal(h->n, 5);
	fs_store_history_free(h);

	/* A local edit on a pulled leaf. */
	put_ok(f->st, "o", "5-e", "six", 0, r);
	assert_int_equal(strncmp(r, "6-", 2), 0);

	/* Malformed input refuses the whole batch. */
	const char *bad[] = {"ok", "has space"};
	fs_store_rev_in in[2] = {
	    {.id = "p", .start = 1, .hashes = bad, .n_hashes = 1},
	    {.id = "q", .start = 2, .hashes = bad, .n_hashes = 2},
	};
	assert_int_equal(fs_store_put_remote(f->st, in, 2, NULL, NULL, &eb), FS_E_INPUT);
	assert_int_equal(fs_store_get(f->st, "p", NULL, &d, &eb), FS_E_NOTFOUND);
	in[1].n_hashes = 3; /* more history than generations */
	assert_int_equal(fs_store_put_remote(f->st, in + 1, 1, NULL, NULL, &eb), FS_E_INPUT);
	in[0].id = "";
	assert_int_equal(fs_store_put_remote(f->st, in, 1, NULL, NULL, &eb), FS_E_INPUT);
}

static void test_stemming(void **state)
{
	struct fx *f = *state; /* revs_limit 5 */
	char rev[FS_REV_MAX], prev[FS_REV_MAX] = "";
	fs_store_history *h = NULL;
	fs_errbuf eb;
	char body[16];

	for (int i = 0; i < 12; i++) {
		snprintf(body, sizeof(body), "b%d", i);
		put_ok(f->st, "s", i ? prev : NULL, body, 0, rev);
		memcpy(prev, rev, sizeof(prev));
	}
	/* Rows queued for push are kept, so confirm them first. */
	fs_store_outbox *o = NULL;
	assert_int_equal(fs_store_outbox_read(f->st, 100, SIZE_MAX, &o, &eb), FS_OK);
	assert_int_equal(o->n, 1); /* each edit replaced the previous row */
	assert_string_equal(o->v[0].rev, rev);
	fs_store_outbox_free(o);
	put_ok(f->st, "s", prev, "last", 0, rev);
	assert_int_equal(fs_store_history_get(f->st, "s", rev, 0, &h, &eb), FS_OK);
	assert_int_equal(h->start, 13);
	assert_int_equal(h->n, 5);
	fs_store_history_free(h);

	/* A long incoming history is stemmed too. */
	const char *hs[10] = {"j", "i", "h", "g", "f", "e", "d", "c", "b", "a"};
	fs_store_rev_in in = {.id = "r",
	                      .start = 10,
	                      .hashes = hs,
	                      .n_hashes = 10,
	                      .body = (const uint8_t *)"x",
	                      .body_len = 1};
	assert_int_equal(fs_store_put_remote(f->st, &in, 1, NULL, NULL, &eb), FS_OK);
	assert_int_equal(fs_store_history_get(f->st, "r", "10-j", 0, &h, &eb), FS_OK);
	assert_int_equal(h->n, 5);
	assert_string_equal(h->hashes[4], "f");
	fs_store_history_free(h);
	/* Replaying it is idempotent: the stemmed part does not come back. */
	fs_store_info i1, i2;
	assert_int_equal(fs_store_info_get(f->st, &i1, &eb), FS_OK);
	assert_int_equal(fs_store_put_remote(f->st, &in, 1, NULL, NULL, &eb), FS_OK);
	assert_int_equal(fs_store_info_get(f->st, &i2, &eb), FS_OK);
	assert_int_equal(fs_store_history_get(f->st, "r", "10-j", 0, &h, &eb), FS_OK);
	assert_int_equal(h->n, 5);
	fs_store_history_free(h);
	assert_int_equal(i1.update_seq, i2.update_seq);
	/* A jump of more generations than revs_limit still connects to the tree. */
	const char *hq[12] = {"q12", "q11", "q10", "q9", "q8", "q7",
	                      "q6",  "q5",  "q4",  "q3", "q2", "q1"};
	fs_store_rev_in jq = {.id = "j",
	                      .start = 3,
	                      .hashes = hq + 9,
	                      .n_hashes = 3,
	                      .body = (const uint8_t *)"x",
	                      .body_len = 1};
	assert_int_equal(fs_store_put_remote(f->st, &jq, 1, NULL, NULL, &eb), FS_OK);
	jq.start = 12;
	jq.hashes = hq;
	jq.n_hashes = 12;
	assert_int_equal(fs_store_put_remote(f->st, &jq, 1, NULL, NULL, &eb), FS_OK);
	fs_store_leaves *l = NULL;
	assert_int_equal(fs_store_leaves_get(f->st, "j", &l, &eb), FS_OK);
	assert_int_equal(l->n, 1);
	assert_string_equal(l->v[0].rev, "12-q12");
	fs_store_leaves_free(l);
	assert_int_equal(fs_store_history_get(f->st, "j", "12-q12", 0, &h, &eb), FS_OK);
	assert_int_equal(h->n, 5);
	fs_store_history_free(h);
	assert_int_equal(fs_store_info_get(f->st, &i1, &eb), FS_OK);
	assert_int_equal(fs_store_put_remote(f->st, &jq, 1, NULL, NULL, &eb), FS_OK);
	assert_int_equal(fs_store_info_get(f->st, &i2, &eb), FS_OK);
	assert_int_equal(i1.update_seq, i2.update_seq);
	assert_int_equal(fs_store_check(f->st, &eb), FS_OK);
}

static void test_revs_diff(void **state)
{
	struct fx *f = *state;
	fs_store_diff *d = NULL;
	fs_errbuf eb;

	assert_int_equal(remote(f->st, "a", 2, 0, "x", 2, "b", "a"), FS_OK);
	const char *qa[] = {"1-a", "2-b", "3-c", "3-c", "2-z"};
	const char *qb[] = {"1-q"};
	const char *qc[] = {"1-a"};
	fs_store_diff_query q[] = {
	    {.id = "a", .revs = qa, .n = 5},
	    {.id = "b", .revs = qb, .n = 1},
	    {.id = "a2", .revs = NULL, .n = 0},
	    {.id = "a", .revs = qc, .n = 1},
	};
	assert_int_equal(fs_store_revs_diff(f->st, q, 4, &d, &eb), FS_OK);
	assert_int_equal(d->n, 2);
	assert_string_equal(d->v[0].id, "a");
	assert_int_equal(d->v[0].n_missing, 2); /* 1-a is known without a body */
	assert_string_equal(d->v[0].missing[0], "3-c");
	assert_string_equal(d->v[0].missing[1], "2-z");
	assert_int_equal(d->v[0].n_ancestors, 1);
	assert_string_equal(d->v[0].possible_ancestors[0], "2-b");
	assert_string_equal(d->v[1].id, "b");
	assert_int_equal(d->v[1].n_missing, 1);
	assert_int_equal(d->v[1].n_ancestors, 0);
	fs_store_diff_free(d);
	const char *bad[] = {"nonsense"};
	fs_store_diff_query qbad = {.id = "a", .revs = bad, .n = 1};
	assert_int_equal(fs_store_revs_diff(f->st, &qbad, 1, &d, &eb), FS_E_INPUT);
	assert_null(d);
	fs_store_diff_free(NULL);
}

struct seen {
	int n;
	char ids[16][16];
	uint64_t seqs[16];
	size_t leaves[16];
	int deleted[16];
	char winners[16][FS_REV_MAX];
};

static int collect(void *ctx, const fs_store_change *c)
{
	struct seen *s = ctx;

	if (s->n >= 16)
		return 1;
	snprintf(s->ids[s->n], sizeof(s->ids[0]), "%s", c->id);
	s->seqs[s->n] = c->seq;
	s->leaves[s->n] = c->n_leaves;
	s->deleted[s->n] = c->deleted;
	snprintf(s->winners[s->n], FS_REV_MAX, "%s", c->winner);
	assert_string_equal(c->winner, c->leaves[0].rev);
	s->n++;
	return 0;
}

static int stop_at_one(void *ctx, const fs_store_change *c)
{
	(void)c;
	return ++*(int *)ctx == 1 ? 42 : 0;
}

static void test_changes(void **state)
{
	struct fx *f = *state;
	char ra[FS_REV_MAX], rb[FS_REV_MAX], rc[FS_REV_MAX];
	struct seen s = {0};
	uint64_t last = 99;
	fs_errbuf eb;

	put_ok(f->st, "a", NULL, "1", 0, ra);                                    /* seq 1 */
	put_ok(f->st, "b", NULL, "1", 0, rb);                                    /* seq 2 */
	put_ok(f->st, "a", ra, "2", 0, ra);                                      /* seq 3 */
	put_ok(f->st, "c", NULL, "1", 0, rc);                                    /* seq 4 */
	put_ok(f->st, "c", rc, "", 1, rc);                                       /* seq 5 */
	assert_int_equal(remote(f->st, "b", 2, 0, "x", 2, "zz", rb + 2), FS_OK); /* seq 6 */
	assert_int_equal(remote(f->st, "b", 2, 0, "y", 2, "00", rb + 2), FS_OK); /* seq 7 */

	assert_int_equal(fs_store_changes(f->st, 0, 0, collect, &s, &last, &eb), FS_OK);
	assert_int_equal(s.n, 3); /* each document once, at its latest sequence */
	assert_string_equal(s.ids[0], "a");
	assert_int_equal(s.seqs[0], 3);
	assert_string_equal(s.ids[1], "c");
	assert_int_equal(s.deleted[1], 1);
	assert_string_equal(s.ids[2], "b");
	assert_int_equal(s.seqs[2], 7);
	assert_int_equal(s.leaves[2], 2);
	assert_string_equal(s.winners[2], "2-zz");
	assert_int_equal(last, 7);

	memset(&s, 0, sizeof(s));
	assert_int_equal(fs_store_changes(f->st, 3, 1, collect, &s, &last, &eb), FS_OK);
	assert_int_equal(s.n, 1);
	assert_string_equal(s.ids[0], "c");
	assert_int_equal(last, 5);
	memset(&s, 0, sizeof(s));
	assert_int_equal(fs_store_changes(f->st, 7, 10, collect, &s, &last, &eb), FS_OK);
	assert_int_equal(s.n, 0);
	assert_int_equal(last, 7);

	int calls = 0;
	assert_int_equal(fs_store_changes(f->st, 0, 0, stop_at_one, &calls, NULL, &eb), 42);

	memset(&s, 0, sizeof(s));
	assert_int_equal(fs_store_conflicts(f->st, collect, &s, &eb), FS_OK);
	assert_int_equal(s.n, 1);
	assert_string_equal(s.ids[0], "b");
	assert_int_equal(s.leaves[0], 2);
}

static void test_outbox(void **state)
{
	struct fx *f = *state;
	char r[8][FS_REV_MAX], big[200];
	fs_store_outbox *o = NULL;
	fs_store_outbox_stats stt;
	fs_errbuf eb;
	int64_t oids[8], noid;

	assert_int_equal(fs_store_outbox_stats_get(f->st, &stt, &eb), FS_OK);
	assert_int_equal(stt.queued, 0);
	assert_int_equal(stt.oldest_at, 0);
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	put_ok(f->st, "d0", NULL, big, 0, r[0]);
	put_ok(f->st, "d1", NULL, "small", 0, r[1]);
	put_ok(f->st, "d2", NULL, "small", 0, r[2]);
	put_ok(f->st, "d3", NULL, "small", 0, r[3]);

	/* Bounded by bytes, but the first row always comes. */
	assert_int_equal(fs_store_outbox_read(f->st, 10, 10, &o, &eb), FS_OK);
	assert_int_equal(o->n, 1);
	assert_string_equal(o->v[0].id, "d0");
	assert_string_equal(o->v[0].rev, r[0]);
	assert_int_equal(o->v[0].body_len, 199);
	assert_null(o->v[0].reason);
	fs_store_outbox_free(o);
	assert_int_equal(fs_store_outbox_read(f->st, 10, 200 + 2 + 7, &o, &eb), FS_OK);
	assert_int_equal(o->n, 2);
	fs_store_outbox_free(o);
	/* Bounded by count, in order. */
	assert_int_equal(fs_store_outbox_read(f->st, 3, SIZE_MAX, &o, &eb), FS_OK);
	assert_int_equal(o->n, 3);
	assert_string_equal(o->v[2].id, "d2");
	for (int i = 0; i < 3; i++)
		oids[i] = o->v[i].oid;
	assert_true(oids[0] < oids[1] && oids[1] < oids[2]);
	fs_store_outbox_free(o);
	/* The streaming pusher's read: after an oid, sizes without bodies,
	 * the same byte bound; the bodies come from fs_store_get. */
	assert_int_equal(fs_store_outbox_next(f->st, oids[0], 10, 5 + 2 + 5, &o, &eb), FS_OK);
	assert_int_equal(o->n, 1);
	assert_string_equal(o->v[0].id, "d1");
	assert_int_equal(o->v[0].size, 5);
	assert_int_equal(o->v[0].body_len, 0);
	assert_non_null(o->v[0].body);
	assert_non_null(o->v[0].history);
	assert_int_equal(o->v[0].history->start, 1);
	assert_int_equal(o->v[0].history->n, 1);
	assert_string_equal(o->v[0].history->hashes[0], strchr(r[1], '-') + 1);
	fs_store_outbox_free(o);
	/* Its history counts against the bound too: ids and bodies of d1 and
	 * d2 (14 bytes) are not enough for two rows, with their histories they are. */
	size_t hb = strlen(strchr(r[1], '-') + 1) + 3 + sizeof(char *);
	assert_int_equal(fs_store_outbox_next(f->st, oids[0], 10, 14, &o, &eb), FS_OK);
	assert_int_equal(o->n, 1);
	fs_store_outbox_free(o);
	assert_int_equal(fs_store_outbox_next(f->st, oids[0], 10, 14 + 2 * hb, &o, &eb), FS_OK);
	assert_int_equal(o->n, 2);
	fs_store_outbox_free(o);
	assert_int_equal(fs_store_outbox_next(f->st, 0, 10, SIZE_MAX, &o, &eb), FS_OK);
	assert_int_equal(o->n, 4);
	assert_int_equal(o->v[0].size, 199);
	fs_store_outbox_free(o);
	assert_int_equal(fs_store_outbox_next(f->st, oids[2] + 1000, 10, SIZE_MAX, &o, &eb), FS_OK);
	assert_int_equal(o->n, 0);
	fs_store_outbox_free(o);
	assert_int_equal(fs_store_outbox_read(f->st, 1, SIZE_MAX, &o, &eb), FS_OK);
	assert_int_equal(o->v[0].size, o->v[0].body_len);
	assert_null(o->v[0].history);
	fs_store_outbox_free(o);

	assert_int_equal(fs_store_outbox_stats_get(f->st, &stt, &eb), FS_OK);
	assert_int_equal(stt.queued, 4);
	assert_true(stt.oldest_at > 1600000000000LL);

	/* Quarantine d1 so it stops blocking; confirm d0. */
	assert_int_equal(
	    fs_store_outbox_quarantine(f->st, oids[1], 403, "forbidden by server", &eb), FS_OK);
	assert_int_equal(fs_store_outbox_quarantine(f->st, oids[1], 403, "again", &eb),
	                 FS_E_NOTFOUND);
	int queued = 0;
	assert_int_equal(fs_store_outbox_queued(f->st, oids[0], &queued, &eb), FS_OK);
	assert_int_equal(queued, 1);
	assert_int_equal(fs_store_outbox_confirm(f->st, oids, 1, &eb), FS_OK);
	assert_int_equal(fs_store_outbox_queued(f->st, oids[0], &queued, &eb), FS_OK);
	assert_int_equal(queued, 0);
	assert_int_equal(fs_store_outbox_queued(f->st, oids[1], &queued, &eb), FS_OK);
	assert_int_equal(queued, 0); /* quarantined */
	assert_int_equal(fs_store_outbox_read(f->st, 10, SIZE_MAX, &o, &eb), FS_OK);
	assert_int_equal(o->n, 2);
	assert_string_equal(o->v[0].id, "d2");
	assert_string_equal(o->v[1].id, "d3");
	fs_store_outbox_free(o);
	assert_int_equal(fs_store_quarantine_list(f->st, &o, &eb), FS_OK);
	assert_int_equal(o->n, 1);
	assert_string_equal(o->v[0].id, "d1");
	assert_int_equal(o->v[0].status, 403);
	assert_string_equal(o->v[0].reason, "forbidden by server");
	fs_store_outbox_free(o);
	assert_int_equal(fs_store_outbox_stats_get(f->st, &stt, &eb), FS_OK);
	assert_int_equal(stt.queued, 2);
	assert_int_equal(stt.quarantined, 1);
	/* A confirm of a quarantined row does not remove it. */
	assert_int_equal(fs_store_outbox_confirm(f->st, &oids[1], 1, &eb), FS_OK);
	assert_int_equal(fs_store_outbox_stats_get(f->st, &stt, &eb), FS_OK);
	assert_int_equal(stt.quarantined, 1);

	/* Retry puts it at the end of the queue with a new oid. */
	assert_int_equal(fs_store_quarantine_retry(f->st, oids[1], &noid, &eb), FS_OK);
	assert_true(noid > oids[1]);
	assert_int_equal(fs_store_quarantine_retry(f->st, oids[1], &noid, &eb), FS_E_NOTFOUND);
	assert_int_equal(noid, 0);
	assert_int_equal(fs_store_outbox_read(f->st, 10, SIZE_MAX, &o, &eb), FS_OK);
	assert_int_equal(o->n, 3);
	assert_string_equal(o->v[2].id, "d1");
	fs_store_outbox_free(o);

	/* A newer edit replaces its ancestor's row; a confirm of the old oid is harmless. */
	assert_int_equal(fs_store_outbox_read(f->st, 1, SIZE_MAX, &o, &eb), FS_OK);
	int64_t old = o->v[0].oid; /* d2 */
	fs_store_outbox_free(o);
	put_ok(f->st, "d2", r[2], "newer", 0, r[4]);
	assert_int_equal(fs_store_outbox_confirm(f->st, &old, 1, &eb), FS_OK);
	assert_int_equal(fs_store_outbox_read(f->st, 10, SIZE_MAX, &o, &eb), FS_OK);
	assert_int_equal(o->n, 3);
	assert_string_equal(o->v[0].id, "d3");
	assert_string_equal(o->v[2].id, "d2");
	assert_string_equal(o->v[2].rev, r[4]);
	assert_memory_equal(o->v[2].body, "newer", 5);
	fs_store_outbox_free(o);
	fs_store_history *h = NULL;
	assert_int_equal(fs_store_history_get(f->st, "d2", r[4], 0, &h, &eb), FS_OK);
	assert_int_equal(h->n, 2); /* the replaced revision travels as history */
	fs_store_history_free(h);

	/* An edit on another branch leaves the other branch's row alone. */
	char lv[FS_REV_MAX];
	assert_int_equal(remote(f->st, "d3", 2, 0, "theirs", 2, "ffff", r[3] + 2), FS_OK);
	put_ok(f->st, "d3", "2-ffff", "mine on theirs", 0, lv);
	assert_int_equal(fs_store_outbox_read(f->st, 10, SIZE_MAX, &o, &eb), FS_OK);
	assert_int_equal(o->n, 3); /* d3's row for r[3] went: 3-... descends from it */
	fs_store_outbox_free(o);
	assert_int_equal(fs_store_put_local(f->st, "d3", r[3], B("branch"), 0, r[5], &eb),
	                 FS_E_STORE_CONFLICT); /* r[3] is no leaf any more */
}

static void test_outbox_branches(void **state)
{
	struct fx *f = *state;
	char r1[FS_REV_MAX], a[FS_REV_MAX], b[FS_REV_MAX];
	fs_store_outbox *o = NULL;
	fs_errbuf eb;

	put_ok(f->st, "x", NULL, "root", 0, r1);
	int64_t oid;
	assert_int_equal(fs_store_outbox_read(f->st, 1, SIZE_MAX, &o, &eb), FS_OK);
	oid = o->v[0].oid;
	fs_store_outbox_free(o);
	assert_int_equal(fs_store_outbox_confirm(f->st, &oid, 1, &eb), FS_OK);
	/* A pulled sibling makes two leaves; editing each queues each. */
	assert_int_equal(remote(f->st, "x", 2, 0, "theirs", 2, "ffff", r1 + 2), FS_OK);
	put_ok(f->st, "x", "2-ffff", "on theirs", 0, a);
	assert_int_equal(fs_store_put_local(f->st, "x", r1, B("stale"), 0, b, &eb),
	                 FS_E_STORE_CONFLICT);
	put_ok(f->st, "x", a, "", 1, b); /* delete our branch head */
	assert_int_equal(fs_store_outbox_read(f->st, 10, SIZE_MAX, &o, &eb), FS_OK);
	assert_int_equal(o->n, 1);
	assert_string_equal(o->v[0].rev, b);
	assert_int_equal(o->v[0].deleted, 1);
	fs_store_outbox_free(o);
	assert_int_equal(fs_store_outbox_read(f->st, 0, SIZE_MAX, &o, &eb), FS_E_ARG);
}

static void test_hub_put(void **state)
{
	struct fx *f = *state;
	char r1[FS_REV_MAX];
	fs_store_outbox_stats stt;
	fs_errbuf eb;

	assert_int_equal(
	    fs_store_put(f->st, "h", NULL, B("{}"), 0, FS_STORE_PUT_NO_OUTBOX, r1, &eb), FS_OK);
	assert_int_equal(fs_store_outbox_stats_get(f->st, &stt, &eb), FS_OK);
	assert_int_equal(stt.queued, 0);
	assert_winner(f->st, "h", r1, 0);
	assert_int_equal(fs_store_put(f->st, "h", NULL, B("{}"), 0, 0x80, r1, &eb), FS_E_ARG);
}

static void test_checkpoints(void **state)
{
	struct fx *f = *state;
	char *seq = NULL;
	fs_errbuf eb;

	assert_int_equal(fs_store_checkpoint_get(f->st, "srv", FS_STORE_PULL, &seq, &eb),
	                 FS_E_NOTFOUND);
	assert_int_equal(fs_store_checkpoint_set(f->st, "srv", FS_STORE_PUSH, "12-g1", &eb), FS_OK);
	assert_int_equal(fs_store_checkpoint_get(f->st, "srv", FS_STORE_PUSH, &seq, &eb), FS_OK);
	assert_string_equal(seq, "12-g1");
	free(seq);

	/* Saved with the revisions it covers. */
	const char *h[] = {"aa"};
	fs_store_rev_in in = {.id = "p",
	                      .start = 1,
	                      .hashes = h,
	                      .n_hashes = 1,
	                      .body = (const uint8_t *)"x",
	                      .body_len = 1};
	assert_int_equal(fs_store_put_remote(f->st, &in, 1, "srv", "5-abc", &eb), FS_OK);
	assert_int_equal(fs_store_checkpoint_get(f->st, "srv", FS_STORE_PULL, &seq, &eb), FS_OK);
	assert_string_equal(seq, "5-abc");
	free(seq);
	/* A refused batch moves no checkpoint. */
	const char *bad[] = {"b b"};
	in.hashes = bad;
	assert_int_equal(fs_store_put_remote(f->st, &in, 1, "srv", "6-def", &eb), FS_E_INPUT);
	assert_int_equal(fs_store_checkpoint_get(f->st, "srv", FS_STORE_PULL, &seq, &eb), FS_OK);
	assert_string_equal(seq, "5-abc");
	free(seq);
	/* An empty batch may still move the checkpoint (a changes page of known revisions). */
	assert_int_equal(fs_store_put_remote(f->st, NULL, 0, "srv", "7-x", &eb), FS_OK);
	assert_int_equal(fs_store_checkpoint_get(f->st, "srv", FS_STORE_PULL, &seq, &eb), FS_OK);
	assert_string_equal(seq, "7-x");
	free(seq);
	assert_int_equal(fs_store_checkpoint_get(f->st, "other", FS_STORE_PULL, &seq, &eb),
	                 FS_E_NOTFOUND);
	assert_int_equal(fs_store_checkpoint_set(f->st, "srv", (fs_store_dir)7, "1", &eb),
	                 FS_E_ARG);
}

static void test_local_docs(void **state)
{
	struct fx *f = *state;
	char rev[FS_REV_MAX];
	uint8_t *b = NULL;
	size_t n = 0;
	fs_errbuf eb;

	assert_int_equal(fs_store_local_get(f->st, "ck", rev, &b, &n, &eb), FS_E_NOTFOUND);
	assert_int_equal(fs_store_local_put(f->st, "ck", NULL, B("{\"s\":1}"), rev, &eb), FS_OK);
	assert_string_equal(rev, "0-1");
	assert_int_equal(fs_store_local_put(f->st, "ck", NULL, B("x"), rev, &eb),
	                 FS_E_STORE_CONFLICT);
	assert_int_equal(fs_store_local_put(f->st, "ck", "0-7", B("x"), rev, &eb),
	                 FS_E_STORE_CONFLICT);
	assert_int_equal(fs_store_local_put(f->st, "ck", "0-1", B("{\"s\":2}"), rev, &eb), FS_OK);
	assert_string_equal(rev, "0-2");
	assert_int_equal(fs_store_local_get(f->st, "ck", rev, &b, &n, &eb), FS_OK);
	assert_string_equal(rev, "0-2");
	assert_int_equal(n, 7);
	assert_memory_equal(b, "{\"s\":2}", 7);
	free(b);
	/* Not replicated: no changes, no outbox. */
	struct seen s = {0};
	assert_int_equal(fs_store_changes(f->st, 0, 0, collect, &s, NULL, &eb), FS_OK);
	assert_int_equal(s.n, 0);
	assert_int_equal(fs_store_local_delete(f->st, "ck", "0-1", &eb), FS_E_STORE_CONFLICT);
	assert_int_equal(fs_store_local_delete(f->st, "ck", "0-2", &eb), FS_OK);
	assert_int_equal(fs_store_local_delete(f->st, "ck", "0-2", &eb), FS_E_NOTFOUND);
	assert_int_equal(fs_store_local_get(f->st, "ck", rev, &b, &n, &eb), FS_E_NOTFOUND);
	assert_null(b);
}

static void test_meta(void **state)
{
	struct fx *f = *state;
	uint8_t *v = NULL;
	size_t n = 0;
	fs_errbuf eb;
	const uint8_t blob[] = {0, 1, 2, 0xff};

	assert_int_equal(fs_store_meta_get(f->st, "mk", &v, &n, &eb), FS_E_NOTFOUND);
	assert_int_equal(fs_store_meta_set(f->st, "mk", blob, sizeof(blob), &eb), FS_OK);
	assert_int_equal(fs_store_meta_get(f->st, "mk", &v, &n, &eb), FS_OK);
	assert_int_equal(n, 4);
	assert_memory_equal(v, blob, 4);
	free(v);
	assert_int_equal(fs_store_meta_set(f->st, "mk", NULL, 0, &eb), FS_OK);
	assert_int_equal(fs_store_meta_get(f->st, "mk", &v, &n, &eb), FS_OK);
	assert_int_equal(n, 0);
	free(v);
	assert_int_equal(fs_store_meta_delete(f->st, "mk", &eb), FS_OK);
	assert_int_equal(fs_store_meta_delete(f->st, "mk", &eb), FS_OK);
	assert_int_equal(fs_store_meta_get(f->st, "mk", &v, &n, &eb), FS_E_NOTFOUND);
}

struct pseen {
	char ids[8][64];
	size_t n;
};

static int seen_doc(void *ctx, const fs_store_change *c)
{
	struct pseen *s = ctx;
	if (s->n < 8)
		snprintf(s->ids[s->n], sizeof(s->ids[0]), "%s%s", c->id, c->deleted ? "(del)" : "");
	s->n++;
	return 0;
}

static int seen_meta(void *ctx, const char *key, const uint8_t *val, size_t len)
{
	struct pseen *s = ctx;
	if (s->n < 8)
		snprintf(s->ids[s->n], sizeof(s->ids[0]), "%s=%.*s", key, (int)len,
		         (const char *)val);
	s->n++;
	return s->n == 3 ? 42 : 0; /* a non-zero answer stops the walk */
}

struct leaves_seen {
	size_t n, bodies, stop_at;
};

static int leaf_cb(void *ctx, const char *id, const char *rev, uint64_t seq, const uint8_t *body,
                   size_t len)
{
	struct leaves_seen *l = ctx;
	(void)id;
	(void)rev;
	assert_true(seq > 0);
	(void)body;
	l->n++;
	l->bodies += len;
	return l->stop_at && l->n == l->stop_at ? 99 : FS_OK;
}

/* Prefix walks: exactly the ids (and meta keys) that start with the prefix,
 * in byte order, tombstones included; '_' and '%' are plain bytes. */
static void test_prefix(void **state)
{
	struct fx *f = *state;
	const char *ids[] = {"fs:", "fs:b", "fs:a", "fs;", "fr:z", "fs:a:1", "ff00", "fs%x"};
	char rev[FS_REV_MAX], r2[FS_REV_MAX];
	struct pseen s = {0};
	fs_errbuf eb;

	for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++)
		assert_int_equal(
		    fs_store_put_local(f->st, ids[i], NULL, (const uint8_t *)"{}", 2, 0, rev, &eb),
		    FS_OK);
	/* Every first revision of "{}" has the same id: rev is fs:b's too. */
	assert_int_equal(fs_store_put_local(f->st, "fs:b", rev, NULL, 0, 1, r2, &eb), FS_OK);
	assert_int_equal(fs_store_docs_prefix(f->st, "fs:", seen_doc, &s, &eb), FS_OK);
	assert_int_equal(s.n, 4);
	assert_string_equal(s.ids[0], "fs:");
	assert_string_equal(s.ids[1], "fs:a");
	assert_string_equal(s.ids[2], "fs:a:1");
	assert_string_equal(s.ids[3], "fs:b(del)");
	memset(&s, 0, sizeof(s));
	assert_int_equal(fs_store_docs_prefix(f->st, "fs%", seen_doc, &s, &eb), FS_OK);
	assert_int_equal(s.n, 1);
	assert_int_equal(fs_store_docs_prefix(f->st, "", seen_doc, &s, &eb), FS_E_ARG);
	assert_int_equal(fs_store_docs_prefix(f->st, "a\xff", seen_doc, &s, &eb), FS_E_ARG);

	/* Live leaves with bodies: a conflicting leaf of fs:a is read beside
	 * the first; fs:b (deleted) gives none; fs:z's body-less ancestors are no leaves. */
	assert_int_equal(remote(f->st, "fs:a", 1, 0, "{\"x\":2}", 1, "f00d"), FS_OK);
	assert_int_equal(remote(f->st, "fs:z", 3, 0, "{}", 2, "c", "b"), FS_OK);
	fs_store_prefix_stats ps;
	struct leaves_seen ls = {0};
	assert_int_equal(fs_store_leaves_prefix(f->st, "fs:", leaf_cb, &ls, &ps, &eb), FS_OK);
	assert_int_equal(ps.docs, 5);
	assert_int_equal(ps.max_seq, fs_store_seq(f->st));
	assert_int_equal(ls.n, 5); /* fs:, fs:a twice, fs:a:1, fs:z */
	assert_int_equal(ls.bodies, 2 * 4 + 7);
	assert_int_equal(fs_store_leaves_prefix(f->st, "fs:", NULL, NULL, &ps, &eb), FS_OK);
	assert_int_equal(ps.docs, 5);
	ls.stop_at = 2;
	ls.n = 0;
	assert_int_equal(fs_store_leaves_prefix(f->st, "fs:", leaf_cb, &ls, NULL, &eb), 99);

	const char *keys[] = {"team.a", "team.b", "team_c", "tea", "team.c", "teamz"};
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		assert_int_equal(fs_store_meta_set(f->st, keys[i], (const uint8_t *)"v", 1, &eb),
		                 FS_OK);
	memset(&s, 0, sizeof(s));
	assert_int_equal(fs_store_meta_list(f->st, "team.", seen_meta, &s, &eb), 42);
	assert_int_equal(s.n, 3);
	assert_string_equal(s.ids[0], "team.a=v");
	assert_string_equal(s.ids[2], "team.c=v");
	memset(&s, 0, sizeof(s));
	assert_int_equal(fs_store_meta_list(f->st, "team_", seen_meta, &s, &eb), FS_OK);
	assert_int_equal(s.n, 1);
	assert_string_equal(s.ids[0], "team_c=v");
}

static void test_reopen_and_lock(void **state)
{
	struct fx *f = *state;
	char r1[FS_REV_MAX];
	fs_store *two = NULL;
	fs_errbuf eb;
	char want[64];

	put_ok(f->st, "a", NULL, "one", 0, r1);
	assert_int_equal(fs_store_open(f->path, NULL, &two, &eb), FS_E_STORE_LOCKED);
	assert_null(two);
	snprintf(want, sizeof(want), "process %ld", (long)getpid());
	assert_non_null(strstr(eb.msg, want));
	fs_store_close(f->st);
	f->st = NULL;
	assert_int_equal(fs_store_open(f->path, NULL, &f->st, &eb), FS_OK);
	assert_winner(f->st, "a", r1, 0);
	fs_store_info info;
	assert_int_equal(fs_store_info_get(f->st, &info, &eb), FS_OK);
	assert_int_equal(info.update_seq, 1);
	put_ok(f->st, "b", NULL, "one", 0, r1);
	assert_int_equal(fs_store_info_get(f->st, &info, &eb), FS_OK);
	assert_int_equal(info.update_seq, 2);
	fs_store_close(NULL);
	assert_int_equal(fs_store_check(f->st, &eb), FS_OK);
}

/* checkpoint_pages: a low one keeps the log short after every commit; a
 * high one leaves it to fs_store_checkpoint, which empties it, and the
 * data reads the same after a reopen. */
static void test_checkpoint_pages(void **state)
{
	struct fx *f = *state;
	char body[2048], id[32], rev[FS_REV_MAX];
	fs_store *st = NULL;
	fs_store_opts o = {.checkpoint_pages = 8};
	fs_store_info info;
	fs_errbuf eb;
	char *path;

	memset(body, 'x', sizeof(body) - 1);
	body[sizeof(body) - 1] = '\0';
	fs_store_close(f->st);
	f->st = NULL;
	assert_int_equal(fs_store_open(f->path, &o, &st, &eb), FS_OK);
	for (int i = 0; i < 40; i++) {
		snprintf(id, sizeof(id), "low-%d", i);
		put_ok(st, id, NULL, body, 0, rev);
		assert_true(fs_store_wal_pages(st) < 8);
	}
	fs_store_close(st);

	assert_non_null(path = tpath(f->dir, "deferred.db"));
	o.checkpoint_pages = 1000000;
	assert_int_equal(fs_store_open(path, &o, &st, &eb), FS_OK);
	for (int i = 0; i < 40; i++) {
		snprintf(id, sizeof(id), "high-%d", i);
		put_ok(st, id, NULL, body, 0, rev);
	}
	assert_true(fs_store_wal_pages(st) >= 40); /* a page of body each, at least */
	assert_int_equal(fs_store_checkpoint(st, &eb), FS_OK);
	assert_int_equal(fs_store_wal_pages(st), 0);
	put_ok(st, "after", NULL, body, 0, rev);
	assert_true(fs_store_wal_pages(st) > 0);
	fs_store_close(st);
	assert_int_equal(fs_store_open(path, NULL, &st, &eb), FS_OK);
	assert_int_equal(fs_store_info_get(st, &info, &eb), FS_OK);
	assert_int_equal(info.doc_count, 41);
	assert_winner(st, "after", rev, 0);
	fs_store_close(st);
	free(path);
	assert_int_equal(fs_store_checkpoint(NULL, &eb), FS_E_ARG);
}

/* Another process holds the store: refused, and the message names that process. */
static void test_lock_other_process(void **state)
{
	struct fx *f = *state;
	int up[2], down[2];
	pid_t pid;
	char c = 0, want[64];
	fs_store *two = NULL;
	fs_errbuf eb;

	fs_store_close(f->st);
	f->st = NULL;
	assert_int_equal(pipe(up), 0);
	assert_int_equal(pipe(down), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		fs_store *mine = NULL;
		fs_errbuf ceb;
		char k = fs_store_open(f->path, NULL, &mine, &ceb) == FS_OK ? 'y' : 'n';
		if (write(up[1], &k, 1) != 1 || read(down[0], &k, 1) < 0)
			_exit(1);
		fs_store_close(mine);
		_exit(0);
	}
	assert_int_equal(read(up[0], &c, 1), 1);
	assert_int_equal(c, 'y');
	assert_int_equal(fs_store_open(f->path, NULL, &two, &eb), FS_E_STORE_LOCKED);
	assert_null(two);
	snprintf(want, sizeof(want), "in use by process %ld", (long)pid);
	assert_non_null(strstr(eb.msg, want));
	/* Once it is gone (even without closing), the store opens again. */
	kill(pid, SIGKILL);
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	close(up[0]);
	close(up[1]);
	close(down[0]);
	close(down[1]);
	assert_int_equal(fs_store_open(f->path, NULL, &f->st, &eb), FS_OK);
}

struct reenter {
	fs_store *st;
	int n;
};

/* A changes callback may read the same handle. */
static int reenter_cb(void *ctx, const fs_store_change *c)
{
	struct reenter *r = ctx;
	fs_store_doc *d = NULL;
	fs_store_leaves *l = NULL;
	fs_store_history *h = NULL;
	fs_errbuf eb;

	assert_int_equal(fs_store_get(r->st, c->id, NULL, &d, &eb), FS_OK);
	assert_string_equal(d->rev, c->winner);
	assert_int_equal(fs_store_leaves_get(r->st, c->id, &l, &eb), FS_OK);
	assert_int_equal(l->n, c->n_leaves);
	assert_int_equal(fs_store_history_get(r->st, c->id, c->winner, 0, &h, &eb), FS_OK);
	fs_store_doc_free(d);
	fs_store_leaves_free(l);
	fs_store_history_free(h);
	r->n++;
	return 0;
}

static void test_changes_reentrant(void **state)
{
	struct fx *f = *state;
	char rev[FS_REV_MAX], id[16];
	struct reenter r = {.st = f->st};
	fs_errbuf eb;

	for (int i = 0; i < 30; i++) {
		snprintf(id, sizeof(id), "r%d", i);
		put_ok(f->st, id, NULL, "x", 0, rev);
	}
	assert_int_equal(fs_store_changes(f->st, 0, 0, reenter_cb, &r, NULL, &eb), FS_OK);
	assert_int_equal(r.n, 30);
}

/* Oids keep growing across a reopen, even when the newest came from a retry. */
static void test_oids_after_reopen(void **state)
{
	struct fx *f = *state;
	char rev[FS_REV_MAX];
	fs_store_outbox *o = NULL;
	fs_errbuf eb;
	int64_t first, retried;

	put_ok(f->st, "a", NULL, "x", 0, rev);
	assert_int_equal(fs_store_outbox_read(f->st, 1, SIZE_MAX, &o, &eb), FS_OK);
	first = o->v[0].oid;
	fs_store_outbox_free(o);
	assert_int_equal(fs_store_outbox_quarantine(f->st, first, 400, "bad request", &eb), FS_OK);
	assert_int_equal(fs_store_quarantine_retry(f->st, first, &retried, &eb), FS_OK);
	assert_true(retried > first);
	fs_store_close(f->st);
	f->st = NULL;
	assert_int_equal(fs_store_open(f->path, NULL, &f->st, &eb), FS_OK);
	put_ok(f->st, "b", NULL, "y", 0, rev);
	assert_int_equal(fs_store_outbox_read(f->st, 10, SIZE_MAX, &o, &eb), FS_OK);
	assert_int_equal(o->n, 2);
	assert_int_equal(o->v[0].oid, retried);
	assert_true(o->v[1].oid > retried);
	fs_store_outbox_free(o);
}

static int64_t pragma(const char *path, const char *sql)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *s = NULL;
	int64_t v = -1;

	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
	if (sqlite3_step(s) == SQLITE_ROW)
		v = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	sqlite3_close(db);
	return v;
}

/* Every older schema version migrates forward to the latest, keeping its data. */
static void test_migrations(void **state)
{
	(void)state;
	fs_errbuf eb;

	assert_true(store_n_migrations >= 5);
	for (int v = 0; v < store_n_migrations; v++) {
		char *dir = tdir_new(), *p = tpath(dir, "old.db");
		fs_store *st = NULL;
		char rev[FS_REV_MAX];
		assert_int_equal(store_create_at(p, v, &eb), FS_OK);
		assert_int_equal(pragma(p, "PRAGMA user_version"), v);
		assert_int_equal(pragma(p, "PRAGMA application_id"), STORE_APP_ID);
		if (v >= 1) { /* data written by the old version */
			sqlite3 *db = NULL;
			assert_int_equal(sqlite3_open(p, &db), SQLITE_OK);
			/* Version 4 keeps the leaves in the docs row (winner_rid, others). */
			assert_int_equal(
			    sqlite3_exec(
			        db,
			        v >= 4 ? "INSERT INTO docs VALUES (1, 'old', 1, 'bb', 0, 1, 2,"
			                 " 2, '1 1 0 aa');"
			                 "INSERT INTO docs VALUES (2, 'two', 2, 'ee', 0, 0, 4,"
			                 " 4, NULL);"
			               : "INSERT INTO docs VALUES (1, 'old', 1, 'bb', 0, 1, 2);"
			                 "INSERT INTO docs VALUES (2, 'two', 2, 'ee', 0, 0, 4);",
			        NULL, NULL, NULL),
			    SQLITE_OK);
			/* Two conflicting roots; a body-less revision with its child; a queued
			 * edit. */
			assert_int_equal(
			    sqlite3_exec(
			        db,
			        "INSERT INTO revs VALUES (1, 1, 1, 'aa', NULL, 1, 0, 1, x'00');"
			        "INSERT INTO revs VALUES (2, 1, 1, 'bb', NULL, 1, 0, 2, x'01');"
			        "INSERT INTO revs VALUES (3, 2, 1, 'dd', NULL, 0, 0, NULL, NULL);"
			        "INSERT INTO revs VALUES (4, 2, 2, 'ee', 3, 1, 0, 4, x'02');"
			        "INSERT INTO outbox VALUES (5, 2, 4, 0, 1234, 0, NULL);",
			        NULL, NULL, NULL),
			    SQLITE_OK);
			sqlite3_close(db);
		}
		assert_int_equal(fs_store_open(p, NULL, &st, &eb), FS_OK);
		if (v >= 1) { /* a body-less revision, its child and the queued row survive every
			         layout */
			fs_store_history *h = NULL;
			fs_store_outbox *o = NULL;
			fs_store_doc *d = NULL;
			assert_int_equal(fs_store_get(st, "two", "1-dd", &d, &eb), FS_E_NOTFOUND);
			assert_int_equal(fs_store_get(st, "two", NULL, &d, &eb), FS_OK);
			assert_string_equal(d->rev, "2-ee");
			assert_int_equal(d->body_len, 1);
			assert_int_equal(d->body[0], 2);
			assert_int_equal(d->seq, 4);
			fs_store_doc_free(d);
			assert_int_equal(fs_store_history_get(st, "two", "2-ee", 0, &h, &eb),
			                 FS_OK);
			assert_int_equal(h->n, 2);
			assert_string_equal(h->hashes[1], "dd");
			fs_store_history_free(h);
			assert_int_equal(fs_store_outbox_read(st, 10, SIZE_MAX, &o, &eb), FS_OK);
			assert_int_equal(o->n, 1);
			assert_int_equal(o->v[0].oid, 5);
			assert_string_equal(o->v[0].id, "two");
			assert_string_equal(o->v[0].rev, "2-ee");
			assert_int_equal(o->v[0].queued_at, 1234);
			assert_int_equal(o->v[0].body_len, 1);
			assert_int_equal(o->v[0].body[0], 2);
			fs_store_outbox_free(o);
		}
		if (v >= 1) { /* both old leaves survive the move into the docs row (version 4) */
			fs_store_leaves *l = NULL;
			fs_store_doc *d = NULL;
			assert_int_equal(fs_store_get(st, "old", NULL, &d, &eb), FS_OK);
			assert_string_equal(d->rev, "1-bb");
			assert_int_equal(d->body_len, 1);
			assert_int_equal(d->body[0], 1);
			fs_store_doc_free(d);
			put_ok(st, "old", "1-aa", "new", 0, rev);
			assert_int_equal(strncmp(rev, "2-", 2), 0);
			assert_int_equal(fs_store_leaves_get(st, "old", &l, &eb), FS_OK);
			assert_int_equal(l->n, 2);
			assert_string_equal(l->v[0].rev, rev);
			assert_string_equal(l->v[1].rev, "1-bb");
			fs_store_leaves_free(l);
			put_ok(st, "old", "1-bb", "newer", 1, rev);
			assert_int_equal(fs_store_leaves_get(st, "old", &l, &eb), FS_OK);
			assert_int_equal(l->n, 2);
			assert_int_equal(l->v[1].deleted, 1);
			fs_store_leaves_free(l);
		}
		put_ok(st, "fresh", NULL, "x", 0, rev);
		if (v >= 1) { /* sequences go on after the old ones (oid 5 was the largest) */
			fs_store_doc *d = NULL;
			assert_int_equal(fs_store_get(st, "fresh", NULL, &d, &eb), FS_OK);
			assert_true(d->seq > 5);
			fs_store_doc_free(d);
		}
		fs_store_close(st);
		assert_int_equal(pragma(p, "PRAGMA user_version"), store_n_migrations);
		assert_int_equal(pragma(p, "SELECT count(*) FROM sqlite_master WHERE name = "
		                           "'docs_conflicted'"),
		                 1);
		assert_int_equal(pragma(p, "SELECT count(*) FROM sqlite_master WHERE name = "
		                           "'docs_deleted'"),
		                 1);
		assert_int_equal(pragma(p, "SELECT count(*) FROM sqlite_master WHERE name = "
		                           "'revs_leaves'"),
		                 0);
		/* Version 5: no table per revision any more, nothing left of the old layout. */
		assert_int_equal(
		    pragma(p, "SELECT count(*) FROM sqlite_master WHERE name = 'revs'"), 0);
		assert_int_equal(
		    pragma(p, "SELECT count(*) FROM sqlite_master WHERE name LIKE '%5'"), 0);
		free(p);
		tdir_free(dir);
	}
	/* A store from a newer program is refused and left alone. */
	char *dir = tdir_new(), *p = tpath(dir, "new.db");
	fs_store *st = NULL;
	sqlite3 *db = NULL;
	size_t n1, n2;
	assert_int_equal(store_create_at(p, store_n_migrations, &eb), FS_OK);
	assert_int_equal(sqlite3_open(p, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	unsigned char *b1 = slurp(p, &n1);
	assert_int_equal(fs_store_open(p, NULL, &st, &eb), FS_E_STORE_TOO_NEW);
	assert_null(st);
	unsigned char *b2 = slurp(p, &n2);
	assert_int_equal(n1, n2);
	assert_memory_equal(b1, b2, n1);
	free(b1);
	free(b2);
	free(p);
	tdir_free(dir);
}

static void test_bad_args(void **state)
{
	struct fx *f = *state;
	char rev[FS_REV_MAX], longid[FS_STORE_ID_MAX + 2];
	fs_errbuf eb;

	memset(longid, 'i', sizeof(longid) - 1);
	longid[sizeof(longid) - 1] = '\0';
	assert_int_equal(fs_store_put_local(f->st, longid, NULL, B("x"), 0, rev, &eb), FS_E_ARG);
	assert_int_equal(fs_store_put_local(f->st, "a", NULL, NULL, 3, 0, rev, &eb), FS_E_ARG);
	assert_int_equal(fs_store_put_local(f->st, NULL, NULL, B("x"), 0, rev, &eb), FS_E_ARG);
	assert_int_equal(fs_store_put_local(NULL, "a", NULL, B("x"), 0, rev, &eb), FS_E_ARG);
	assert_int_equal(fs_store_put_local(f->st, "a", NULL, NULL, 0, 0, rev, &eb), FS_OK);
	/* eb is optional everywhere. */
	assert_int_equal(fs_store_put_local(f->st, "b", NULL, B("x"), 0, rev, NULL), FS_OK);
	assert_int_equal(fs_store_put_local(f->st, "b", NULL, B("x"), 0, rev, NULL),
	                 FS_E_STORE_CONFLICT);
	fs_store_doc *d = NULL;
	assert_int_equal(fs_store_get(f->st, "zz", NULL, &d, NULL), FS_E_NOTFOUND);
	fs_store *st = (fs_store *)1;
	assert_int_equal(fs_store_open(NULL, NULL, &st, &eb), FS_E_ARG);
	assert_null(st);
}

/* A local edit whose revision id the tree already knows (here as a separate root) is a 409. */
static void test_rev_exists(void **state)
{
	struct fx *f = *state;
	char r1[FS_REV_MAX], r2[FS_REV_MAX], r3[FS_REV_MAX];
	fs_store_leaves *l = NULL;
	fs_errbuf eb;

	put_ok(f->st, "u", NULL, "x", 0, r1);
	assert_int_equal(fs_crypto_rev_id(r1, 0, B("y"), r2), FS_OK);
	assert_int_equal(remote(f->st, "u", 2, 0, "z", 1, strchr(r2, '-') + 1), FS_OK);
	assert_int_equal(fs_store_put_local(f->st, "u", r1, B("y"), 0, r3, &eb),
	                 FS_E_STORE_CONFLICT);
	assert_string_equal(r3, "");
	assert_int_equal(fs_store_leaves_get(f->st, "u", &l, &eb), FS_OK);
	assert_int_equal(l->n, 2);
	fs_store_leaves_free(l);
	put_ok(f->st, "u", r1, "w", 0, r3);
	assert_int_equal(fs_store_check(f->st, &eb), FS_OK);
}

static int noop_cb(void *ctx, const fs_store_change *c)
{
	(void)ctx;
	(void)c;
	return 0;
}

/* A damaged revision tree in a docs row is reported as corruption, never trusted or "repaired". */
static void test_damaged_leaves(void **state)
{
	struct fx *f = *state;
	char r1[FS_REV_MAX], r2[FS_REV_MAX];
	fs_store_leaves *l = NULL;
	sqlite3 *db = NULL;
	fs_errbuf eb;

	put_ok(f->st, "a", NULL, "x", 0, r1);
	assert_int_equal(remote(f->st, "a", 1, 0, "y", 1, "ff"), FS_OK);
	assert_int_equal(fs_store_leaves_get(f->st, "a", &l, &eb), FS_OK);
	assert_int_equal(l->n, 2);
	fs_store_leaves_free(l);
	fs_store_close(f->st);
	f->st = NULL;
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db,
	                              "UPDATE docs SET tree = substr(tree, 1, length(tree) - 3)"
	                              " WHERE id = 'a'",
	                              NULL, NULL, NULL),
	                 SQLITE_OK);
	sqlite3_close(db);
	assert_int_equal(fs_store_open(f->path, NULL, &f->st, &eb), FS_OK);
	assert_int_equal(fs_store_leaves_get(f->st, "a", &l, &eb), FS_E_STORE_CORRUPT);
	assert_null(l);
	assert_int_equal(fs_store_put_local(f->st, "a", r1, B("z"), 0, r2, &eb),
	                 FS_E_STORE_CORRUPT);
	assert_int_equal(fs_store_changes(f->st, 0, 0, noop_cb, NULL, NULL, &eb),
	                 FS_E_STORE_CORRUPT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_put_get, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_conflicts_409, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_winner_rule, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_remote_merge, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_stemming, setup_stem, teardown),
	    cmocka_unit_test_setup_teardown(test_revs_diff, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_changes, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_outbox, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_outbox_branches, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_hub_put, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_checkpoints, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_local_docs, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_meta, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_prefix, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_reopen_and_lock, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_checkpoint_pages, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bad_args, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_lock_other_process, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_changes_reentrant, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_oids_after_reopen, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rev_exists, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_damaged_leaves, setup, teardown),
	    cmocka_unit_test(test_migrations),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
