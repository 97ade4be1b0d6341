/* tests/common: error table, bounded JSON parsing, revision ids. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

#include "crypto.h"
#include "fs.h"

static void test_errors_named(void **state)
{
	(void)state;
	assert_string_equal(fs_errname(FS_E_PASSPHRASE), "FS_E_PASSPHRASE");
	assert_string_equal(fs_strerror(FS_E_PASSPHRASE), "wrong passphrase");
	assert_string_equal(fs_errname(987654), "FS_E_UNKNOWN");
	fs_errbuf eb;
	assert_int_equal(fs_err_set(&eb, FS_E_IO, "open %s", "x.db"), FS_E_IO);
	assert_int_equal(eb.code, FS_E_IO);
	assert_string_equal(eb.msg, "open x.db");
	/* Codes went to disk and the wire: they must keep their numbers. */
	assert_int_equal(FS_E_STORE_CONFLICT, 200);
	assert_int_equal(FS_E_SYNC_OFFLINE, 300);
}

static void test_json_bounds(void **state)
{
	(void)state;
	cJSON *j = NULL;
	fs_errbuf eb;
	const char ok[] = "{\"a\":[1,2,{\"b\":\"[[[[\"}]}";

	assert_int_equal(fs_json_parse(ok, strlen(ok), 1024, 3, &j, &eb), FS_OK);
	assert_non_null(j);
	cJSON_Delete(j);

	assert_int_equal(fs_json_parse(ok, strlen(ok), 1024, 2, &j, &eb), FS_E_TOOBIG);
	assert_null(j);
	assert_int_equal(fs_json_parse(ok, strlen(ok), 10, 32, &j, &eb), FS_E_TOOBIG);

	char deep[4001];
	memset(deep, '[', 2000);
	memset(deep + 2000, ']', 2000);
	deep[4000] = '\0';
	assert_int_equal(fs_json_parse(deep, 4000, 8192, 32, &j, &eb), FS_E_TOOBIG);

	const char bad[] = "{\"a\":1,}";
	assert_int_equal(fs_json_parse(bad, strlen(bad), 1024, 8, &j, &eb), FS_E_INPUT);
	const char trail[] = "{\"a\":1} x";
	assert_int_equal(fs_json_parse(trail, strlen(trail), 1024, 8, &j, &eb), FS_E_INPUT);
	/* Length-bounded: bytes after len are never read. */
	const char part[] = "[1]garbage";
	assert_int_equal(fs_json_parse(part, 3, 1024, 8, &j, &eb), FS_OK);
	cJSON_Delete(j);
}

static void test_rev_id(void **state)
{
	(void)state;
	char r1[FS_REV_MAX], r1b[FS_REV_MAX], r2[FS_REV_MAX], rd[FS_REV_MAX];
	const uint8_t body[] = "{\"fs\":1}";
	unsigned long gen;
	const char *hash;

	assert_int_equal(fs_crypto_init(), FS_OK);
	assert_int_equal(fs_crypto_rev_id(NULL, 0, body, sizeof(body) - 1, r1), FS_OK);
	assert_int_equal(fs_crypto_rev_id("", 0, body, sizeof(body) - 1, r1b), FS_OK);
	assert_string_equal(r1, r1b);
	assert_int_equal(strncmp(r1, "1-", 2), 0);
	assert_int_equal(strlen(r1), 2 + 2 * FS_REV_HASH_BYTES);

	assert_int_equal(fs_crypto_rev_id(r1, 0, body, sizeof(body) - 1, r2), FS_OK);
	assert_int_equal(fs_crypto_rev_parse(r2, &gen, &hash), FS_OK);
	assert_int_equal(gen, 2);
	assert_int_equal(fs_crypto_rev_id(r1, 1, body, sizeof(body) - 1, rd), FS_OK);
	assert_string_not_equal(r2, rd);

	assert_int_equal(fs_crypto_rev_id("x-1", 0, body, 1, r2), FS_E_ARG);
	assert_int_equal(fs_crypto_rev_parse("0-abc", &gen, &hash), FS_E_INPUT);
	assert_int_equal(fs_crypto_rev_parse("3-", &gen, &hash), FS_E_INPUT);
	assert_int_equal(fs_crypto_rev_parse("3-a b", &gen, &hash), FS_E_INPUT);
	assert_int_equal(fs_crypto_rev_parse("99999999999999999999999-a", &gen, &hash), FS_E_INPUT);
}

/* The string list copies what it is given and keeps it in order. */
static void test_strv(void **state)
{
	(void)state;
	fs_strv l = {0};
	char buf[16];

	for (int i = 0; i < 100; i++) {
		snprintf(buf, sizeof(buf), "k%03d", i);
		assert_int_equal(fs_strv_push(&l, buf), FS_OK);
	}
	buf[0] = 'x'; /* the list holds copies */
	assert_int_equal(l.n, 100);
	assert_string_equal(l.v[0], "k000");
	assert_string_equal(l.v[99], "k099");
	fs_strv_free(&l);
	assert_null(l.v);
	assert_int_equal(l.n, 0);
	fs_strv_free(&l); /* twice is harmless */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_errors_named),
		cmocka_unit_test(test_json_bounds),
		cmocka_unit_test(test_rev_id),
		cmocka_unit_test(test_strv),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
