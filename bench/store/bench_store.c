/*
 * bench/store/bench_store.c: store/ side by side with its floor, raw SQLite
 * with the same pragmas (WAL, synchronous=FULL, foreign_keys=ON) writing
 * the same bytes, in one run, with ratios: a durable local edit (p50,
 * p99; with SQLite's checkpoints inside commits, and as the daemon runs
 * the store, checkpoints in quiet moments for both), 10,000 pulled revisions in batches, and
 * opening a store of 100,000 documents (time and resident memory, measured in a fresh process).
 * Usage: bench_store [DIR]   (default $TMPDIR or /tmp)
 */
#include <sodium.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "store.h"

#define EDITS          2000
#define EDIT_DOCS      100
#define ENVELOPE       600  /* bytes of a short visit-note envelope */
#define ENVELOPE_BIG   2000 /* a longer note */
#define PULL           10000
#define PULL_BATCH     100 /* PouchDB's default batch_size */
#define PULL_BATCH_BIG 1000
#define BIG_DOCS       100000
#define BIG_BATCH      1000

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, const char *msg)
{
	fprintf(stderr, "bench_store: %s: %s\n", what, msg);
	exit(1);
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double pct(double *v, size_t n, double p)
{
	qsort(v, n, sizeof(*v), cmp_d);
	return v[(size_t)(p * (double)(n - 1))];
}

static sqlite3 *raw_open(const char *path)
{
	sqlite3 *db = NULL;

	if (sqlite3_open(path, &db) != SQLITE_OK ||
	    sqlite3_exec(
	        db,
	        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;"
	        " PRAGMA foreign_keys = ON;"
	        " CREATE TABLE IF NOT EXISTS t(id TEXT NOT NULL, rev TEXT NOT NULL, body BLOB);",
	        NULL, NULL, NULL) != SQLITE_OK)
		die("raw open", db ? sqlite3_errmsg(db) : path);
	return db;
}

static void raw_insert(sqlite3_stmt *s, const char *id, const char *rev, const uint8_t *b, size_t n)
{
	sqlite3_reset(s);
	sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, rev, -1, SQLITE_STATIC);
	sqlite3_bind_blob(s, 3, b, (int)n, SQLITE_STATIC);
	if (sqlite3_step(s) != SQLITE_DONE)
		die("raw insert", "step");
}

static void exec(sqlite3 *db, const char *sql)
{
	if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK)
		die(sql, sqlite3_errmsg(db));
}

#define QUIET_MIN_PAGES 256u  /* the daemon's CKPT_MIN_PAGES */
#define QUIET_MAX_PAGES 4096u /* and CKPT_MAX_PAGES */

static int raw_wal_hook(void *ctx, sqlite3 *db, const char *name, int pages)
{
	(void)db;
	(void)name;
	*(int *)ctx = pages;
	return SQLITE_OK;
}

/*
 * quiet: both sides as fieldsyncd runs its store: no checkpoint inside a
 * commit; one between edits (untimed, the daemon's quiet moment) once the
 * log holds QUIET_MIN_PAGES.
 */
static void bench_edits(const char *dir, int quiet)
{
	fs_store_opts so = {.checkpoint_pages = QUIET_MAX_PAGES};
	int raw_pages = 0;
	char sp[4200], rp[4200], id[40], revs[EDIT_DOCS][FS_REV_MAX], rev[FS_REV_MAX];
	static double ts[EDITS], tr[EDITS];
	uint8_t body[ENVELOPE];
	fs_store *st = NULL;
	sqlite3 *db;
	sqlite3_stmt *ins = NULL;
	fs_errbuf eb;

	snprintf(sp, sizeof(sp), "%s/edits%s-store.db", dir, quiet ? "-quiet" : "");
	snprintf(rp, sizeof(rp), "%s/edits%s-raw.db", dir, quiet ? "-quiet" : "");
	if (fs_store_open(sp, quiet ? &so : NULL, &st, &eb) != FS_OK)
		die("open", eb.msg);
	db = raw_open(rp);
	if (quiet) {
		exec(db, "PRAGMA wal_autocheckpoint = 0");
		sqlite3_wal_hook(db, raw_wal_hook, &raw_pages);
	}
	if (sqlite3_prepare_v2(db, "INSERT INTO t(id, rev, body) VALUES (?1, ?2, ?3)", -1, &ins,
	                       NULL) != SQLITE_OK)
		die("prepare", sqlite3_errmsg(db));
	for (int i = 0; i < EDIT_DOCS; i++) {
		snprintf(id, sizeof(id), "%032x", i);
		randombytes_buf(body, sizeof(body));
		if (fs_store_put_local(st, id, NULL, body, sizeof(body), 0, revs[i], &eb) != FS_OK)
			die("put", eb.msg);
		raw_insert(ins, id, revs[i], body, sizeof(body));
	}
	/* Interleaved, so both see the same disk weather. */
	for (int i = 0; i < EDITS; i++) {
		int d = i % EDIT_DOCS;
		double t0, t1, t2;
		snprintf(id, sizeof(id), "%032x", d);
		randombytes_buf(body, sizeof(body));
		if (i %
		    2) { /* the floor first every other time: neither always follows the other */
			t0 = now();
			raw_insert(ins, id, revs[d], body, sizeof(body));
			t1 = now();
			tr[i] = (t1 - t0) * 1e3;
		}
		t0 = now();
		if (fs_store_put_local(st, id, revs[d], body, sizeof(body), 0, rev, &eb) != FS_OK)
			die("put", eb.msg);
		t1 = now();
		ts[i] = (t1 - t0) * 1e3;
		if (i % 2 == 0) {
			raw_insert(ins, id, rev, body, sizeof(body));
			t2 = now();
			tr[i] = (t2 - t1) * 1e3;
		}
		memcpy(revs[d], rev, FS_REV_MAX);
		if (quiet && fs_store_wal_pages(st) >= QUIET_MIN_PAGES &&
		    fs_store_checkpoint(st, &eb) != FS_OK)
			die("checkpoint", eb.msg);
		if (quiet && raw_pages >= (int)QUIET_MIN_PAGES) {
			if (sqlite3_wal_checkpoint_v2(db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL,
			                              NULL) != SQLITE_OK)
				die("raw checkpoint", sqlite3_errmsg(db));
			raw_pages = 0;
		}
	}
	double s50 = pct(ts, EDITS, 0.5), s99 = pct(ts, EDITS, 0.99);
	double r50 = pct(tr, EDITS, 0.5), r99 = pct(tr, EDITS, 0.99);
	printf("local edit, %d durable commits of %d B%s:\n", EDITS, ENVELOPE,
	       quiet ? ", checkpoints in quiet moments (fieldsyncd)" : ", checkpoints in commits");
	printf("  store  p50 %.3f ms  p99 %.3f ms\n", s50, s99);
	printf("  raw    p50 %.3f ms  p99 %.3f ms\n", r50, r99);
	printf("  ratio  p50 %.2fx  p99 %.2fx   (target <= 1.3x)\n", s50 / r50, s99 / r99);
	sqlite3_finalize(ins);
	sqlite3_close(db);
	fs_store_close(st);
}

/* Pulled revisions: gen-1 new documents, or gen-3 with a 3-entry history. */
static void bench_pull(const char *dir, int hist, size_t size, int batch)
{
	char sp[4200], rp[4200];
	static char ids[PULL][40], h[PULL][3][40];
	static const char *hp[PULL][3];
	static fs_store_rev_in in[PULL];
	static uint8_t bodies[PULL][ENVELOPE_BIG];
	fs_store *st = NULL;
	sqlite3 *db;
	sqlite3_stmt *ins = NULL;
	fs_errbuf eb;
	char rev[FS_REV_MAX];
	double t0, ts, tr;

	snprintf(sp, sizeof(sp), "%s/pull%d-%zu-%d-store.db", dir, hist, size, batch);
	snprintf(rp, sizeof(rp), "%s/pull%d-%zu-%d-raw.db", dir, hist, size, batch);
	randombytes_buf(bodies, sizeof(bodies));
	for (int i = 0; i < PULL; i++) {
		snprintf(ids[i], sizeof(ids[i]), "%032x", i);
		for (int k = 0; k < 3; k++) {
			snprintf(h[i][k], sizeof(h[i][k]), "%08x%024x", k, i);
			hp[i][k] = h[i][k];
		}
		in[i] = (fs_store_rev_in){.id = ids[i],
		                          .start = hist ? 3 : 1,
		                          .hashes = hp[i],
		                          .n_hashes = hist ? 3 : 1,
		                          .body = bodies[i],
		                          .body_len = size};
	}
	if (fs_store_open(sp, NULL, &st, &eb) != FS_OK)
		die("open", eb.msg);
	db = raw_open(rp);
	if (sqlite3_prepare_v2(db, "INSERT INTO t(id, rev, body) VALUES (?1, ?2, ?3)", -1, &ins,
	                       NULL) != SQLITE_OK)
		die("prepare", sqlite3_errmsg(db));
	ts = tr = 0;
	for (int b = 0; b < PULL / batch; b++) {
		char seq[32];
		snprintf(seq, sizeof(seq), "%d-g1AAAA", (b + 1) * batch);
		t0 = now();
		if (fs_store_put_remote(st, in + b * batch, (size_t)batch, "srv", seq, &eb) !=
		    FS_OK)
			die("put_remote", eb.msg);
		ts += now() - t0;
		t0 = now();
		exec(db, "BEGIN IMMEDIATE");
		for (int i = b * batch; i < (b + 1) * batch; i++) {
			snprintf(rev, sizeof(rev), "%d-%.39s", hist ? 3 : 1, h[i][0]);
			raw_insert(ins, ids[i], rev, bodies[i], size);
		}
		exec(db, "COMMIT");
		tr += now() - t0;
	}
	printf("pull %d revisions of %zu B in batches of %d%s:\n", PULL, size, batch,
	       hist ? ", each with a 3-entry _revisions history" : "");
	printf("  store %.3f s (%.0f rev/s)  raw %.3f s (%.0f rev/s)  ratio %.2fx%s\n", ts,
	       PULL / ts, tr, PULL / tr, ts / tr, "   (target <= 1.5x)");
	sqlite3_finalize(ins);
	sqlite3_close(db);
	fs_store_close(st);
}

static long rss_kb(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char l[256];
	long kb = -1;

	if (f == NULL)
		return -1;
	while (fgets(l, sizeof(l), f))
		if (sscanf(l, "VmRSS: %ld", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

static int count_cb(void *ctx, const fs_store_change *c)
{
	(void)c;
	++*(long *)ctx;
	return 0;
}

/* Runs in a fresh process: open the big store, read a little, report. */
static int probe(const char *path)
{
	fs_store *st = NULL;
	fs_store_doc *d = NULL;
	fs_store_info info;
	fs_errbuf eb;
	long before = rss_kb(), n = 0;
	uint64_t last;
	double t0 = now(), t_open;

	if (fs_store_open(path, NULL, &st, &eb) != FS_OK)
		die("open", eb.msg);
	t_open = now() - t0;
	long after_open = rss_kb();
	if (fs_store_get(st, "00000000000000000000000000001234", NULL, &d, &eb) != FS_OK)
		die("get", eb.msg);
	fs_store_doc_free(d);
	double t1 = now();
	if (fs_store_changes(st, 50000, 1000, count_cb, &n, &last, &eb) != FS_OK)
		die("read", eb.msg);
	double t_changes = now() - t1;
	t1 = now();
	if (fs_store_info_get(st, &info, &eb) != FS_OK)
		die("read", eb.msg);
	double t_info = now() - t1;
	long after_read = rss_kb();
	fs_store_close(st);
	printf("store of %llu documents:\n", (unsigned long long)info.doc_count);
	printf("  open %.2f ms   (target < 50 ms)\n", t_open * 1e3);
	printf("  1000 changes %.2f ms, info (counts all documents) %.2f ms\n", t_changes * 1e3,
	       t_info * 1e3);
	printf("  RSS  %.1f MB after open, %.1f MB after a get and 1000 changes"
	       " (process before open: %.1f MB)   (target < 16 MB)\n",
	       after_open / 1024.0, after_read / 1024.0, before / 1024.0);
	return 0;
}

static void bench_big(const char *dir, const char *self)
{
	char sp[4200];
	static char ids[BIG_BATCH][40], h[BIG_BATCH][40];
	static const char *hp[BIG_BATCH];
	static fs_store_rev_in in[BIG_BATCH];
	static uint8_t body[BIG_BATCH][ENVELOPE];
	fs_store *st = NULL;
	fs_errbuf eb;
	double t0 = now();
	pid_t pid;
	int status;

	snprintf(sp, sizeof(sp), "%s/big-store.db", dir);
	if (fs_store_open(sp, NULL, &st, &eb) != FS_OK)
		die("open", eb.msg);
	randombytes_buf(body, sizeof(body));
	for (int b = 0; b < BIG_DOCS / BIG_BATCH; b++) {
		for (int i = 0; i < BIG_BATCH; i++) {
			snprintf(ids[i], sizeof(ids[i]), "%032x", b * BIG_BATCH + i);
			snprintf(h[i], sizeof(h[i]), "%032x", i);
			hp[i] = h[i];
			in[i] = (fs_store_rev_in){.id = ids[i],
			                          .start = 1,
			                          .hashes = &hp[i],
			                          .n_hashes = 1,
			                          .body = body[i],
			                          .body_len = ENVELOPE};
		}
		if (fs_store_put_remote(st, in, BIG_BATCH, NULL, NULL, &eb) != FS_OK)
			die("put_remote", eb.msg);
	}
	fs_store_close(st);
	printf("(built a store of %d documents in %.1f s)\n", BIG_DOCS, now() - t0);
	fflush(stdout);
	if ((pid = fork()) == 0) {
		execl(self, self, "--probe", sp, (char *)NULL);
		_exit(127);
	}
	if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
	    WEXITSTATUS(status) != 0)
		die("probe", "failed");
}

static void rm_store(const char *dir, const char *name)
{
	static const char *const sfx[] = {"", "-wal", "-shm", ".lock"};
	char p[4200];

	for (size_t i = 0; i < sizeof(sfx) / sizeof(sfx[0]); i++) {
		snprintf(p, sizeof(p), "%s/%s%s", dir, name, sfx[i]);
		unlink(p);
	}
}

int main(int argc, char **argv)
{
	const char *base = argc > 1 ? argv[1] : getenv("TMPDIR");
	char dir[4096], self[4096];
	ssize_t n;

	if (argc == 3 && strcmp(argv[1], "--probe") == 0)
		return probe(argv[2]);
	if (sodium_init() < 0)
		die("sodium", "init");
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0)
		die("readlink", "/proc/self/exe");
	self[n] = '\0';
	snprintf(dir, sizeof(dir), "%s/bench-store-XXXXXX", base && *base ? base : "/tmp");
	if (mkdtemp(dir) == NULL)
		die("mkdtemp", dir);
	printf("bench_store: store/ against raw SQLite %s (WAL, synchronous=FULL) in %s\n",
	       sqlite3_libversion(), dir);
	bench_edits(dir, 0);
	bench_edits(dir, 1);
	bench_pull(dir, 0, ENVELOPE, PULL_BATCH);
	bench_pull(dir, 0, ENVELOPE_BIG, PULL_BATCH);
	bench_pull(dir, 0, ENVELOPE, PULL_BATCH_BIG);
	bench_pull(dir, 1, ENVELOPE, PULL_BATCH);
	bench_big(dir, self);
	rm_store(dir, "edits-store.db");
	rm_store(dir, "edits-raw.db");
	static const char *const pulls[] = {"pull0-600-100", "pull0-2000-100", "pull0-600-1000",
	                                    "pull1-600-100"};
	for (size_t i = 0; i < sizeof(pulls) / sizeof(pulls[0]); i++) {
		char name[64];
		snprintf(name, sizeof(name), "%s-store.db", pulls[i]);
		rm_store(dir, name);
		snprintf(name, sizeof(name), "%s-raw.db", pulls[i]);
		rm_store(dir, name);
	}
	rm_store(dir, "big-store.db");
	rmdir(dir);
	return 0;
}
