/*
 * tests/sync/test_sync_tls.c: the TLS policy against nginx in front of
 * pouchdb-server, with a test CA made at run time by tests/interop/harness.sh
 * --tls: the good certificate works; a wrong host, an untrusted CA, an
 * expired certificate and a wrong pin are each refused with their named
 * error; pins allow rotation; redirects are not followed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <curl/curl.h>

#include "sync_test.h"

#define env tsync_env

/* A remote for the database behind url (env name) + path with the given CA
 * and pins. */
static fs_sync_remote *remote(const char *url_env, const char *path, const char *ca,
                              const char *pins)
{
	const fs_sync_remote_opts o = {.ca_file = ca, .pins = pins, .connect_timeout_ms = 5000};
	fs_sync_remote *r = tsync_remote(env(url_env), path, &o, 0);
	if (r == NULL)
		fail_msg("no remote for %s", url_env);
	return r;
}

static int check(const char *url_env, const char *path, const char *ca, const char *pins)
{
	fs_sync_remote *r = remote(url_env, path, ca, pins);
	fs_errbuf eb;
	int rc = fs_sync_remote_check(r, &eb);
	fs_sync_remote_free(r);
	return rc;
}

static int setup(void **state)
{
	(void)state;
	const char *base = getenv("FS_TEST_COUCH_URL");
	fs_sync_remote *r = base ? tsync_remote(base, "db", NULL, 1) : NULL;
	fs_sync_remote_free(r);
	return r && tsync_dir_new("tls") == 0 ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	tsync_dir_remove();
	return 0;
}

static void test_good_certificate(void **state)
{
	(void)state;
	const char *ca = env("FS_TEST_TLS_CA");
	assert_int_equal(check("FS_TEST_TLS_URL_GOOD", "/db", ca, NULL), FS_OK);
	assert_int_equal(check("FS_TEST_TLS_URL_GOOD", "/nodb", ca, NULL), FS_E_SYNC_NODB);
	/* Without our CA the system store does not know the test CA. */
	assert_int_equal(check("FS_TEST_TLS_URL_GOOD", "/db", NULL, NULL), FS_E_SYNC_TLS_CERT);
}

static void test_bad_certificates(void **state)
{
	(void)state;
	const char *ca = env("FS_TEST_TLS_CA");
	assert_int_equal(check("FS_TEST_TLS_URL_WRONGHOST", "/db", ca, NULL), FS_E_SYNC_TLS_CERT);
	assert_int_equal(check("FS_TEST_TLS_URL_UNTRUSTED", "/db", ca, NULL), FS_E_SYNC_TLS_CERT);
	assert_int_equal(check("FS_TEST_TLS_URL_EXPIRED", "/db", ca, NULL), FS_E_SYNC_TLS_CERT);
}

static void test_pins(void **state)
{
	(void)state;
	const char *ca = env("FS_TEST_TLS_CA");
	const char *good = env("FS_TEST_TLS_PIN_GOOD");
	const char *other = env("FS_TEST_TLS_PIN_OTHER");
	char both[256];

	assert_int_equal(check("FS_TEST_TLS_URL_GOOD", "/db", ca, good), FS_OK);
	snprintf(both, sizeof(both), "%s;%s", other, good);
	assert_int_equal(check("FS_TEST_TLS_URL_GOOD", "/db", ca, both), FS_OK);
	assert_int_equal(check("FS_TEST_TLS_URL_GOOD", "/db", ca, other), FS_E_SYNC_TLS_PIN);
	/* A pin never replaces verification: an untrusted chain stays refused. */
	assert_int_equal(check("FS_TEST_TLS_URL_UNTRUSTED", "/db", ca, other), FS_E_SYNC_TLS_CERT);
}

static void test_no_redirects(void **state)
{
	(void)state;
	assert_int_equal(check("FS_TEST_TLS_URL_GOOD", "/redirect/db", env("FS_TEST_TLS_CA"), NULL),
	                 FS_E_SYNC_REDIRECT);
}

static int push_to(fs_store *st, const char *url_env, const char *pins)
{
	fs_sync_remote *r = remote(url_env, "db", env("FS_TEST_TLS_CA"), pins);
	fs_sync_opts so = {
	    .remote_name = "office", .max_retries = 2, .backoff_min_ms = 10, .backoff_max_ms = 20};
	fs_errbuf eb;
	int rc;

	rc = fs_sync_push(st, r, &so, NULL, &eb);
	fs_sync_remote_free(r);
	return rc;
}

static void assert_queue(fs_store *st, uint64_t queued)
{
	assert_int_equal(tsync_queued(st, 0), queued);
}

/* A refused connection changes nothing in the outbox; the good one drains it. */
static void test_outbox_unchanged_after_refusal(void **state)
{
	(void)state;
	char rev[FS_REV_MAX], id[16];
	fs_store *st = tsync_store("s");

	for (int i = 0; i < 5; i++) {
		snprintf(id, sizeof(id), "tls-%d", i);
		tsync_put(st, id, NULL, "{\"fs\":1}", 0, rev);
	}
	assert_int_equal(push_to(st, "FS_TEST_TLS_URL_WRONGHOST", NULL), FS_E_SYNC_TLS_CERT);
	assert_queue(st, 5);
	assert_int_equal(push_to(st, "FS_TEST_TLS_URL_UNTRUSTED", NULL), FS_E_SYNC_TLS_CERT);
	assert_queue(st, 5);
	assert_int_equal(push_to(st, "FS_TEST_TLS_URL_EXPIRED", NULL), FS_E_SYNC_TLS_CERT);
	assert_queue(st, 5);
	assert_int_equal(push_to(st, "FS_TEST_TLS_URL_GOOD", env("FS_TEST_TLS_PIN_OTHER")),
	                 FS_E_SYNC_TLS_PIN);
	assert_queue(st, 5);
	assert_int_equal(push_to(st, "FS_TEST_TLS_URL_GOOD", env("FS_TEST_TLS_PIN_GOOD")), FS_OK);
	assert_queue(st, 0);
	fs_store_close(st);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_good_certificate),
	    cmocka_unit_test(test_bad_certificates),
	    cmocka_unit_test(test_pins),
	    cmocka_unit_test(test_no_redirects),
	    cmocka_unit_test(test_outbox_unchanged_after_refusal),
	};
	curl_global_init(CURL_GLOBAL_DEFAULT);
	int rc = cmocka_run_group_tests(tests, setup, teardown);
	curl_global_cleanup();
	return rc;
}
