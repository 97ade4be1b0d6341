/*
 * tests/store: faults the store must survive: a full or failing disk
 * (through the injecting VFS), and damaged or foreign files, which must be
 * refused with a clear error and left byte for byte as they were.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* cmocka needs the four headers above first. */
#include <cmocka.h>

#include <sodium.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "faultvfs.h"
#include "store.h"
#include "util.h"

#define BATCH 20
#define BODY  2000

static int doc_exists(fs_store *st, const char *id)
{
	fs_store_doc *d = NULL;
	fs_errbuf eb;
	int r = fs_store_get(st, id, NULL, &d, &eb);

	fs_store_doc_free(d);
	assert_true(r == FS_OK || r == FS_E_NOTFOUND);
	return r == FS_OK;
}

static void put_batch(fs_store *st, const char *tag, int *ok, int *code, fs_errbuf *eb)
{
	static uint8_t body[BODY];
	char ids[BATCH][32], hashes[BATCH][40];
	const char *hp[BATCH];
	fs_store_rev_in in[BATCH];

	randombytes_buf(body, sizeof(body));
	for (int i = 0; i < BATCH; i++) {
		snprintf(ids[i], sizeof(ids[i]), "%s-%d", tag, i);
		snprintf(hashes[i], sizeof(hashes[i]), "h%d", i);
		hp[i] = hashes[i];
		in[i] = (fs_store_rev_in){.id = ids[i],
		                          .start = 1,
		                          .hashes = &hp[i],
		                          .n_hashes = 1,
		                          .body = body,
		                          .body_len = sizeof(body)};
	}
	*code = fs_store_put_remote(st, in, BATCH, "srv", tag, eb);
	*ok = *code == FS_OK;
}

static void run_faults(int sqlite_rc, int want)
{
	char *dir = tdir_new(), *p = tpath(dir, "s.db");
	fs_store_opts o = {.vfs = FAULTVFS_NAME};
	fs_store *st = NULL;
	fs_errbuf eb;
	char rev[FS_REV_MAX], tag[16], id[48];
	int ok, code, failures = 0;

	assert_int_equal(faultvfs_register(), SQLITE_OK);
	assert_int_equal(fs_store_open(p, &o, &st, &eb), FS_OK);
	assert_int_equal(
	    fs_store_put_local(st, "before", NULL, (const uint8_t *)"x", 1, 0, rev, &eb), FS_OK);

	for (int after = 0; after < 40; after++) {
		fs_store_info i0, i1;
		fs_store_outbox_stats s0, s1;
		char *seq = NULL;
		assert_int_equal(fs_store_info_get(st, &i0, &eb), FS_OK);
		assert_int_equal(fs_store_outbox_stats_get(st, &s0, &eb), FS_OK);
		snprintf(tag, sizeof(tag), "b%d", after);

		faultvfs_set(sqlite_rc, after);
		put_batch(st, tag, &ok, &code, &eb);
		faultvfs_set(0, 0);
		if (ok) {
			for (int i = 0; i < BATCH; i++) {
				snprintf(id, sizeof(id), "%s-%d", tag, i);
				assert_true(doc_exists(st, id));
			}
		} else {
			/* All or nothing: no document, no checkpoint, no sequence. */
			failures++;
			assert_int_equal(code, want);
			assert_int_equal(eb.code, want);
			assert_true(strlen(eb.msg) > 0);
			for (int i = 0; i < BATCH; i++) {
				snprintf(id, sizeof(id), "%s-%d", tag, i);
				assert_false(doc_exists(st, id));
			}
			assert_int_equal(fs_store_info_get(st, &i1, &eb), FS_OK);
			assert_int_equal(i1.update_seq, i0.update_seq);
			assert_int_equal(i1.doc_count, i0.doc_count);
			if (fs_store_checkpoint_get(st, "srv", FS_STORE_PULL, &seq, &eb) == FS_OK)
				assert_string_not_equal(seq, tag);
			free(seq);
		}
		/* A local edit under the fault fails cleanly too... */
		snprintf(id, sizeof(id), "local-%d", after);
		faultvfs_set(sqlite_rc, 0);
		assert_int_equal(
		    fs_store_put_local(st, id, NULL, (const uint8_t *)"y", 1, 0, rev, &eb), want);
		assert_string_equal(rev, "");
		faultvfs_set(0, 0);
		assert_false(doc_exists(st, id));
		assert_int_equal(fs_store_outbox_stats_get(st, &s1, &eb), FS_OK);
		assert_int_equal(s1.queued, s0.queued);
		/* ...and works once the space is back. */
		assert_int_equal(
		    fs_store_put_local(st, id, NULL, (const uint8_t *)"y", 1, 0, rev, &eb), FS_OK);
		assert_true(doc_exists(st, id));
		assert_int_equal(fs_store_info_get(st, &i1, &eb), FS_OK);
		assert_int_equal(i1.update_seq, i0.update_seq + (ok ? BATCH : 0) + 1);
	}
	assert_true(failures > 5); /* the faults did hit the batches */
	assert_int_equal(fs_store_check(st, &eb), FS_OK);
	fs_store_close(st);

	/* Reopened through the ordinary VFS, everything acknowledged is there. */
	assert_int_equal(fs_store_open(p, NULL, &st, &eb), FS_OK);
	assert_true(doc_exists(st, "before"));
	assert_true(doc_exists(st, "local-39"));
	assert_int_equal(fs_store_check(st, &eb), FS_OK);
	fs_store_close(st);
	free(p);
	tdir_free(dir);
}

static void test_disk_full(void **state)
{
	(void)state;
	run_faults(SQLITE_FULL, FS_E_STORE_FULL);
}

static void test_io_error(void **state)
{
	(void)state;
	run_faults(SQLITE_IOERR_WRITE, FS_E_IO);
}

/* Opening path must fail with want and leave the file exactly as it was. */
static void refused(const char *path, int want, const char *words)
{
	size_t n1, n2;
	unsigned char *b1 = slurp(path, &n1), *b2;
	fs_store *st = NULL;
	fs_errbuf eb;

	assert_non_null(b1);
	assert_int_equal(fs_store_open(path, NULL, &st, &eb), want);
	assert_null(st);
	assert_non_null(strstr(eb.msg, words));
	b2 = slurp(path, &n2);
	assert_non_null(b2);
	assert_int_equal(n1, n2);
	assert_memory_equal(b1, b2, n1);
	free(b1);
	free(b2);
}

static char *make_store(const char *dir, const char *name, int docs)
{
	char *p = tpath(dir, name);
	fs_store *st = NULL;
	fs_errbuf eb;
	char rev[FS_REV_MAX], id[32], body[600];

	memset(body, 'b', sizeof(body));
	assert_int_equal(fs_store_open(p, NULL, &st, &eb), FS_OK);
	for (int i = 0; i < docs; i++) {
		snprintf(id, sizeof(id), "doc-%d", i);
		assert_int_equal(fs_store_put(st, id, NULL, (const uint8_t *)body, sizeof(body), 0,
		                              FS_STORE_PUT_NO_OUTBOX, rev, &eb),
		                 FS_OK);
	}
	fs_store_close(st);
	return p;
}

static void test_foreign_files(void **state)
{
	(void)state;
	char *dir = tdir_new(), *p;
	unsigned char rnd[8192];
	sqlite3 *db = NULL;

	/* Random bytes. */
	p = tpath(dir, "random.db");
	randombytes_buf(rnd, sizeof(rnd));
	assert_int_equal(spit(p, rnd, sizeof(rnd)), 0);
	refused(p, FS_E_STORE_FOREIGN, "not an SQLite database");
	free(p);

	/* Text that is not even a page. */
	p = tpath(dir, "notes.txt");
	assert_int_equal(spit(p, "hello\n", 6), 0);
	refused(p, FS_E_STORE_FOREIGN, "not an SQLite database");
	free(p);

	/* Another program's SQLite database. */
	p = tpath(dir, "other.db");
	assert_int_equal(sqlite3_open(p, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "CREATE TABLE docs(x); INSERT INTO docs VALUES (1);",
	                              NULL, NULL, NULL),
	                 SQLITE_OK);
	sqlite3_close(db);
	refused(p, FS_E_STORE_FOREIGN, "another program");
	free(p);
	tdir_free(dir);
}

static void test_damaged_files(void **state)
{
	(void)state;
	char *dir = tdir_new(), *p;
	size_t n;
	unsigned char *b;
	fs_store *st = NULL;
	fs_errbuf eb;

	/* Truncated to half its pages. */
	p = make_store(dir, "half.db", 200);
	b = slurp(p, &n);
	assert_true(n > 8 * 4096);
	assert_int_equal(spit(p, b, (n / 2) & ~(size_t)4095), 0);
	refused(p, FS_E_STORE_CORRUPT, "truncated");
	/* Cut inside a page. */
	assert_int_equal(spit(p, b, n - 1000), 0);
	refused(p, FS_E_STORE_CORRUPT, "damaged");
	/* Cut inside the header. */
	assert_int_equal(spit(p, b, 50), 0);
	refused(p, FS_E_STORE_CORRUPT, "truncated");
	free(b);
	free(p);

	/* A page in the middle overwritten: opening may work, the check must not pass. */
	p = make_store(dir, "smashed.db", 200);
	b = slurp(p, &n);
	for (size_t i = 3 * 4096; i < 5 * 4096 && i < n; i++)
		b[i] = (unsigned char)(i * 7);
	assert_int_equal(spit(p, b, n), 0);
	free(b);
	int r = fs_store_open(p, NULL, &st, &eb);
	if (r == FS_OK) {
		assert_int_equal(fs_store_check(st, &eb), FS_E_STORE_CORRUPT);
		assert_non_null(strstr(eb.msg, "integrity"));
		fs_store_close(st);
	} else {
		assert_int_equal(r, FS_E_STORE_CORRUPT);
	}
	free(p);
	tdir_free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_disk_full),
	    cmocka_unit_test(test_io_error),
	    cmocka_unit_test(test_foreign_files),
	    cmocka_unit_test(test_damaged_files),
	};
	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
