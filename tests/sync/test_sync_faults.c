/*
 * tests/sync/test_sync_faults.c: push and pull through tests/faultproxy
 * (harness.sh --proxy) while it resets, truncates, garbles, floods, drips
 * or fails answers. For each fault: a lasting fault gives its named error
 * after a bounded number of retries and leaves the outbox as it was; a
 * passing fault is retried through; when the fault ends the queue drains.
 * At the end the server holds every revision exactly once and a second
 * store pulled through faults holds the same documents.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <cmocka.h>
#include <curl/curl.h>

#include "sync_test.h"

static fs_store *sa, *sb;
static fs_sync_remote *via_proxy, *direct;
static int ndocs;

#define MAX_RETRIES 2

static const fs_sync_opts opts = {.remote_name = "office",
                                  .batch_docs = 10,
                                  .max_retries = MAX_RETRIES,
                                  .backoff_min_ms = 10,
                                  .backoff_max_ms = 40};

static void ctl(const char *line)
{
	const char *path = getenv("FS_TEST_PROXY_CTL");
	char tmp[512];
	FILE *f;
	assert_non_null(path);
	snprintf(tmp, sizeof(tmp), "%s.t", path);
	f = fopen(tmp, "w");
	assert_non_null(f);
	fprintf(f, "%s\n", line);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(rename(tmp, path), 0);
}

static int setup(void **state)
{
	(void)state;
	const char *proxy = getenv("FS_TEST_PROXY_URL"), *couch = getenv("FS_TEST_COUCH_URL");
	/* Tight limits so that floods and drips end within a second. */
	const fs_sync_remote_opts po = {.allow_http_loopback = 1,
	                                .max_response = 1u << 20,
	                                .low_speed_time_s = 1,
	                                .low_speed_limit = 100};

	if (proxy == NULL || couch == NULL || tsync_dir_new("faults") != 0)
		return -1;
	if ((via_proxy = tsync_remote(proxy, "faults", &po, 0)) == NULL ||
	    (direct = tsync_remote(couch, "faults", NULL, 1)) == NULL)
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
	fs_sync_remote_free(via_proxy);
	fs_sync_remote_free(direct);
	tsync_dir_remove();
	return 0;
}

static uint64_t queued(void)
{
	return tsync_queued(sa, 0);
}

static void add_docs(int n)
{
	char id[32], body[128], rev[FS_REV_MAX];
	fs_errbuf eb;
	for (int i = 0; i < n; i++, ndocs++) {
		snprintf(id, sizeof(id), "f-%04d", ndocs);
		snprintf(body, sizeof(body), "{\"fs\":1,\"c\":\"fault test %d\"}", ndocs);
		assert_int_equal(fs_store_put_local(sa, id, NULL, (const uint8_t *)body,
		                                    strlen(body), 0, rev, &eb),
		                 FS_OK);
	}
}

struct fault {
	const char *mode;
	int code; /* the named error a lasting fault gives */
};

static const struct fault faults[] = {
    {"reset", FS_E_SYNC_CONNLOST},    {"truncate", FS_E_SYNC_MALFORMED},
    {"garbage", FS_E_SYNC_MALFORMED}, {"oversize", FS_E_TOOBIG},
    {"slow", FS_E_SYNC_TIMEOUT},      {"500", FS_E_SYNC_SERVER},
    {"503", FS_E_SYNC_SERVER},        {"429", FS_E_SYNC_RATE},
};

static void test_push_through_faults(void **state)
{
	(void)state;
	fs_sync_progress p;
	fs_errbuf eb;
	char line[64];

	for (size_t i = 0; i < sizeof(faults) / sizeof(faults[0]); i++) {
		const struct fault *f = &faults[i];
		uint64_t before;
		add_docs(15);
		before = queued();

		/* A lasting fault: bounded retries, the named error, nothing lost. */
		snprintf(line, sizeof(line), "%s", f->mode);
		ctl(line);
		int rc = fs_sync_push(sa, via_proxy, &opts, &p, &eb);
		if (rc != f->code)
			fail_msg("%s: got %s (%s)", f->mode, fs_errname(rc), eb.msg);
		assert_int_equal(p.retries, MAX_RETRIES);
		assert_int_equal(queued(), before);

		/* A fault on the next upload only: after the server stored the
		 * batch for reset/slow, so the retry must not duplicate it. */
		snprintf(line, sizeof(line), "%s 1 _bulk_docs", f->mode);
		ctl(line);
		rc = fs_sync_push(sa, via_proxy, &opts, &p, &eb);
		if (rc != FS_OK)
			fail_msg("%s once: %s (%s)", f->mode, fs_errname(rc), eb.msg);
		if (p.retries != 1)
			fail_msg("%s once: %u retries", f->mode, p.retries);
		assert_int_equal(queued(), 0);
	}
	ctl("pass");
}

static void test_pull_through_faults(void **state)
{
	(void)state;
	fs_sync_progress p;
	fs_errbuf eb;
	char line[64];
	int rc;

	for (size_t i = 0; i < sizeof(faults) / sizeof(faults[0]); i++) {
		snprintf(line, sizeof(line), "%s 1", faults[i].mode);
		ctl(line);
		rc = fs_sync_pull(sb, via_proxy, &opts, &p, &eb);
		if (rc != FS_OK)
			fail_msg("pull %s: %s (%s)", faults[i].mode, fs_errname(rc), eb.msg);
	}
	ctl("pass");
	assert_int_equal(fs_sync_pull(sb, via_proxy, &opts, &p, &eb), FS_OK);
	for (int i = 0; i < ndocs; i++) {
		char id[32];
		fs_store_doc *a = NULL, *b = NULL;
		snprintf(id, sizeof(id), "f-%04d", i);
		assert_int_equal(fs_store_get(sa, id, NULL, &a, &eb), FS_OK);
		assert_int_equal(fs_store_get(sb, id, NULL, &b, &eb), FS_OK);
		assert_string_equal(a->rev, b->rev);
		assert_int_equal(a->body_len, b->body_len);
		assert_memory_equal(a->body, b->body, a->body_len);
		fs_store_doc_free(a);
		fs_store_doc_free(b);
	}
}

/* The server holds each document once, with exactly one revision. */
static void test_no_duplicates_on_server(void **state)
{
	(void)state;
	fs_sync_resp resp;
	fs_sync_changes *ch = NULL;
	fs_sync_db_info *info = NULL;
	fs_errbuf eb;

	assert_int_equal(fs_sync_req_perform(direct, FS_SYNC_GET, "_changes?style=all_docs", NULL,
	                                     0, &resp, &eb),
	                 FS_OK);
	assert_int_equal(fs_sync_parse_changes(resp.body, resp.len, 0, &ch, &eb), FS_OK);
	assert_int_equal(ch->n, (size_t)ndocs);
	for (size_t i = 0; i < ch->n; i++) {
		assert_int_equal(ch->v[i].nrevs, 1);
		assert_int_equal(strncmp(ch->v[i].revs[0], "1-", 2), 0);
	}
	fs_sync_changes_free(ch);
	assert_int_equal(fs_sync_req_perform(direct, FS_SYNC_GET, "", NULL, 0, &resp, &eb), FS_OK);
	assert_int_equal(fs_sync_parse_db_info(resp.body, resp.len, 0, &info, &eb), FS_OK);
	assert_int_equal(info->doc_count, ndocs);
	fs_sync_db_info_free(info);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_push_through_faults),
	    cmocka_unit_test(test_pull_through_faults),
	    cmocka_unit_test(test_no_duplicates_on_server),
	};
	curl_global_init(CURL_GLOBAL_DEFAULT);
	int rc = cmocka_run_group_tests(tests, setup, teardown);
	curl_global_cleanup();
	return rc;
}
