/*
 * tests/sync/test_sync_http.c: the HTTP layer against a real pouchdb-server
 * (started by tests/interop/harness.sh, URL in FS_TEST_COUCH_URL): every
 * request the replicator makes, parsed from the real server's answers, and
 * the named errors for a missing database, a closed port, an unknown host,
 * an oversized answer and refused credentials.
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

static const char *base(void)
{
	return tsync_env("FS_TEST_COUCH_URL");
}

static fs_sync_remote *remote_at(const char *url, size_t max_response)
{
	const fs_sync_remote_opts o = {
	    .allow_http_loopback = 1, .max_response = max_response, .connect_timeout_ms = 3000};
	fs_sync_remote *r = tsync_remote(url, NULL, &o, 0);
	if (r == NULL)
		fail_msg("no remote for %s", url);
	return r;
}

static fs_sync_remote *remote_db(const char *db, size_t max_response)
{
	char url[512];
	snprintf(url, sizeof(url), "%s/%s", base(), db);
	return remote_at(url, max_response);
}

static void test_db_lifecycle(void **state)
{
	(void)state;
	fs_sync_remote *r = remote_db("lifecycle", 0);
	fs_sync_resp resp;
	fs_errbuf eb;
	fs_sync_server_info *si = NULL;

	assert_int_equal(fs_sync_remote_check(r, &eb), FS_E_SYNC_NODB);
	assert_int_equal(fs_sync_req_perform(r, FS_SYNC_PUT, "", "{}", 2, &resp, &eb), FS_OK);
	assert_int_equal(resp.status, 201);
	assert_int_equal(fs_sync_remote_check(r, &eb), FS_OK);
	assert_int_equal(fs_sync_req_perform(r, FS_SYNC_GET, "/", NULL, 0, &resp, &eb), FS_OK);
	assert_int_equal(fs_sync_parse_server_info(resp.body, resp.len, 0, &si, &eb), FS_OK);
	assert_string_equal(si->vendor, "PouchDB authors");
	fs_sync_server_info_free(si);
	fs_sync_remote_free(r);
}

#define DOCS                                                                                       \
	"{\"new_edits\":false,\"docs\":["                                                          \
	"{\"_id\":\"a\",\"_rev\":\"2-bb\",\"fs\":1,\"c\":\"x1\","                                  \
	"\"_revisions\":{\"start\":2,\"ids\":[\"bb\",\"aa\"]}},"                                   \
	"{\"_id\":\"a\",\"_rev\":\"2-cc\",\"fs\":1,\"c\":\"x2\","                                  \
	"\"_revisions\":{\"start\":2,\"ids\":[\"cc\",\"aa\"]}},"                                   \
	"{\"_id\":\"t\",\"_rev\":\"1-dd\",\"_deleted\":true,"                                      \
	"\"_revisions\":{\"start\":1,\"ids\":[\"dd\"]}}]}"

static void test_replication_requests(void **state)
{
	(void)state;
	fs_sync_remote *r = remote_db("requests", 0);
	fs_sync_resp resp;
	fs_errbuf eb;
	fs_sync_bulk_result *br = NULL;
	fs_sync_revs_diff *rd = NULL;
	fs_sync_changes *ch = NULL;
	fs_sync_revs *rv = NULL;
	uint64_t sent, recv;

	assert_int_equal(fs_sync_req_perform(r, FS_SYNC_PUT, "", "{}", 2, &resp, &eb), FS_OK);
	assert_int_equal(
	    fs_sync_req_perform(r, FS_SYNC_POST, "_bulk_docs", DOCS, strlen(DOCS), &resp, &eb),
	    FS_OK);
	assert_int_equal(fs_sync_parse_bulk_docs(resp.body, resp.len, 0, &br, &eb), FS_OK);
	assert_int_equal(br->n, 0); /* new_edits:false lists only failures */
	fs_sync_bulk_result_free(br);

	/* Sending the same batch again creates nothing new. */
	assert_int_equal(
	    fs_sync_req_perform(r, FS_SYNC_POST, "_bulk_docs", DOCS, strlen(DOCS), &resp, &eb),
	    FS_OK);

	const char *diff = "{\"a\":[\"2-bb\",\"3-ee\"],\"t\":[\"1-dd\"],\"n\":[\"1-ff\"]}";
	assert_int_equal(
	    fs_sync_req_perform(r, FS_SYNC_POST, "_revs_diff", diff, strlen(diff), &resp, &eb),
	    FS_OK);
	assert_int_equal(fs_sync_parse_revs_diff(resp.body, resp.len, 0, &rd, &eb), FS_OK);
	assert_int_equal(rd->n, 2);
	for (size_t i = 0; i < rd->n; i++) {
		assert_int_equal(rd->v[i].nrevs, 1);
		if (strcmp(rd->v[i].id, "a") == 0)
			assert_string_equal(rd->v[i].revs[0], "3-ee");
		else
			assert_string_equal(rd->v[i].revs[0], "1-ff");
	}
	fs_sync_revs_diff_free(rd);

	assert_int_equal(fs_sync_req_perform(r, FS_SYNC_GET, "_changes?style=all_docs&since=0",
	                                     NULL, 0, &resp, &eb),
	                 FS_OK);
	assert_int_equal(fs_sync_parse_changes(resp.body, resp.len, 0, &ch, &eb), FS_OK);
	assert_int_equal(ch->n, 2);
	assert_non_null(ch->last_seq);
	for (size_t i = 0; i < ch->n; i++) {
		if (strcmp(ch->v[i].id, "a") == 0) {
			assert_int_equal(ch->v[i].nrevs, 2);
			assert_false(ch->v[i].deleted);
		} else {
			assert_string_equal(ch->v[i].id, "t");
			assert_true(ch->v[i].deleted);
		}
	}
	/* The sequence goes back as it came: nothing newer since last_seq. */
	char path[256];
	snprintf(path, sizeof(path), "_changes?style=all_docs&since=%s", ch->last_seq);
	fs_sync_changes_free(ch);
	assert_int_equal(fs_sync_req_perform(r, FS_SYNC_GET, path, NULL, 0, &resp, &eb), FS_OK);
	assert_int_equal(fs_sync_parse_changes(resp.body, resp.len, 0, &ch, &eb), FS_OK);
	assert_int_equal(ch->n, 0);
	fs_sync_changes_free(ch);

	const char *get =
	    "{\"docs\":[{\"id\":\"a\",\"rev\":\"2-bb\"},{\"id\":\"a\",\"rev\":\"2-cc\"},"
	    "{\"id\":\"t\",\"rev\":\"1-dd\"},{\"id\":\"zz\",\"rev\":\"1-aa\"}]}";
	assert_int_equal(fs_sync_req_perform(r, FS_SYNC_POST, "_bulk_get?revs=true", get,
	                                     strlen(get), &resp, &eb),
	                 FS_OK);
	assert_int_equal(fs_sync_parse_bulk_get(resp.body, resp.len, 0, &rv, &eb), FS_OK);
	assert_int_equal(rv->n, 3);
	assert_int_equal(rv->nerr, 1);
	assert_string_equal(rv->err[0].id, "zz");
	for (size_t i = 0; i < rv->n; i++) {
		if (strcmp(rv->v[i].rev, "2-bb") == 0) {
			assert_string_equal(rv->v[i].body, "{\"fs\":1,\"c\":\"x1\"}");
			assert_int_equal(rv->v[i].nhistory, 2);
			assert_string_equal(rv->v[i].history[1], "1-aa");
		}
		if (strcmp(rv->v[i].id, "t") == 0)
			assert_true(rv->v[i].deleted);
	}
	fs_sync_revs_free(rv);

	assert_int_equal(fs_sync_req_perform(r, FS_SYNC_GET,
	                                     "a?revs=true&open_revs=%5B%222-cc%22,%223-zz%22%5D",
	                                     NULL, 0, &resp, &eb),
	                 FS_OK);
	assert_int_equal(fs_sync_parse_open_revs(resp.body, resp.len, 0, "a", &rv, &eb), FS_OK);
	assert_int_equal(rv->n, 1);
	assert_string_equal(rv->v[0].body, "{\"fs\":1,\"c\":\"x2\"}");
	assert_int_equal(rv->nerr, 1);
	fs_sync_revs_free(rv);

	/* A checkpoint document round-trips. */
	const char *cp = "{\"last_seq\":\"2\"}";
	assert_int_equal(
	    fs_sync_req_perform(r, FS_SYNC_PUT, "_local/fs-test", cp, strlen(cp), &resp, &eb),
	    FS_OK);
	assert_int_equal(fs_sync_req_perform(r, FS_SYNC_GET, "_local/fs-test", NULL, 0, &resp, &eb),
	                 FS_OK);
	assert_non_null(strstr(resp.body, "\"last_seq\":\"2\""));

	/* A refused batch (pouchdb-server refuses it whole) is a named error. */
	const char *bad = "{\"new_edits\":false,\"docs\":[{\"_id\":\"_bad\",\"_rev\":\"1-aa\"}]}";
	assert_int_equal(
	    fs_sync_req_perform(r, FS_SYNC_POST, "_bulk_docs", bad, strlen(bad), &resp, &eb),
	    FS_E_SYNC_REFUSED);
	assert_int_equal(resp.status, 400);

	fs_sync_remote_bytes(r, &sent, &recv);
	assert_true(sent > strlen(DOCS) * 2);
	assert_true(recv > 100);
	fs_sync_remote_free(r);
}

static void test_transport_errors(void **state)
{
	(void)state;
	fs_sync_remote *r;
	fs_sync_resp resp;
	fs_errbuf eb;

	/* A cap smaller than the answer aborts the transfer. */
	r = remote_db("requests", 64);
	assert_int_equal(
	    fs_sync_req_perform(r, FS_SYNC_GET, "_changes?style=all_docs", NULL, 0, &resp, &eb),
	    FS_E_TOOBIG);
	/* The handle stays usable for small answers. */
	assert_int_equal(fs_sync_req_perform(r, FS_SYNC_GET, "_local/fs-test", NULL, 0, &resp, &eb),
	                 FS_OK);
	fs_sync_remote_free(r);

	/* Port 1 on loopback: nobody listens. */
	r = remote_at("http://127.0.0.1:1/db", 0);
	assert_int_equal(fs_sync_remote_check(r, &eb), FS_E_SYNC_OFFLINE);
	fs_sync_remote_free(r);

	fs_sync_remote_opts o = {.url = "https://nonexistent.invalid/db",
	                         .connect_timeout_ms = 3000};
	assert_int_equal(fs_sync_remote_new(&o, &r, &eb), FS_OK);
	assert_int_equal(fs_sync_remote_check(r, &eb), FS_E_SYNC_DNS);
	fs_sync_remote_free(r);
}

static void test_auth(void **state)
{
	(void)state;
	fs_sync_remote *r = remote_db("requests", 0);
	fs_sync_resp resp;
	fs_errbuf eb;
	const char *secret = "s3cret-Pa55";

	/* Leaves the admin party: from now on credentials are checked. */
	assert_int_equal(fs_sync_req_perform(r, FS_SYNC_PUT, "/_config/admins/admin",
	                                     "\"s3cret-Pa55\"", 13, &resp, &eb),
	                 FS_OK);
	assert_int_equal(fs_sync_remote_set_basic(r, "admin", "wrong-pass", &eb), FS_OK);
	assert_int_equal(fs_sync_remote_check(r, &eb), FS_E_SYNC_AUTH);
	assert_null(strstr(eb.msg, "wrong-pass"));
	assert_int_equal(fs_sync_remote_set_basic(r, "admin", secret, &eb), FS_OK);
	assert_int_equal(fs_sync_remote_check(r, &eb), FS_OK);
	fs_sync_remote_free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_db_lifecycle),
	    cmocka_unit_test(test_replication_requests),
	    cmocka_unit_test(test_transport_errors),
	    cmocka_unit_test(test_auth),
	};
	curl_global_init(CURL_GLOBAL_DEFAULT);
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	curl_global_cleanup();
	return rc;
}
