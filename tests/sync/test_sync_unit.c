/*
 * tests/sync/test_sync_unit.c: sync/'s pure parts without a network: the
 * backoff schedule, Retry-After, the error mappings, the URL and pin policy,
 * and the answer parsers on known server answers (CouchDB's and PouchDB's).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <curl/curl.h>

#include "sync_int.h"

#define PARSE(fn, s, out) fn(s, strlen(s), 0, out, &eb)

static void test_backoff_schedule(void **state)
{
	(void)state;
	fs_sync_backoff b;
	fs_sync_backoff_init(&b, 0, 0);
	assert_int_equal(b.min_ms, 1000);
	assert_int_equal(b.max_ms, 300000);
	/* rnd 0 gives the floor, rnd max the ceiling, which doubles per failure. */
	assert_int_equal(fs_sync_backoff_fail(&b, UINT32_MAX, 0), 2000);
	assert_int_equal(fs_sync_backoff_fail(&b, UINT32_MAX, 0), 4000);
	assert_int_equal(fs_sync_backoff_fail(&b, 0, 0), 1000);
	for (int i = 0; i < 100; i++) {
		uint32_t d = fs_sync_backoff_fail(&b, UINT32_MAX, 0);
		assert_true(d >= 1000 && d <= 300000);
	}
	assert_int_equal(fs_sync_backoff_fail(&b, UINT32_MAX, 0), 300000);
	assert_int_equal(fs_sync_backoff_fail(&b, UINT32_MAX / 2, 0), 1000 + 299001 / 2);
	/* A network change starts over. */
	fs_sync_backoff_reset(&b);
	assert_int_equal(fs_sync_backoff_fail(&b, UINT32_MAX, 0), 2000);
	/* Retry-After raises the delay, bounded. */
	assert_int_equal(fs_sync_backoff_fail(&b, 0, 120), 120000);
	assert_int_equal(fs_sync_backoff_fail(&b, 0, 999999), FS_SYNC_RETRY_AFTER_MAX_S * 1000);
	/* Huge failure counts do not overflow. */
	b.failures = UINT32_MAX - 1;
	assert_int_equal(fs_sync_backoff_fail(&b, UINT32_MAX, 0), 300000);
	assert_int_equal(fs_sync_backoff_fail(&b, UINT32_MAX, 0), 300000);
}

static void test_backoff_jitter_spread(void **state)
{
	(void)state;
	fs_sync_backoff b;
	uint32_t lo = UINT32_MAX, hi = 0;
	for (uint32_t r = 0; r < 1000; r++) {
		fs_sync_backoff_init(&b, 1000, 300000);
		b.failures = 20;
		uint32_t d = fs_sync_backoff_fail(&b, r * 4294967u, 0);
		lo = d < lo ? d : lo;
		hi = d > hi ? d : hi;
	}
	assert_true(lo < 5000);
	assert_true(hi > 295000);
}

static void test_retry_after(void **state)
{
	(void)state;
	time_t now = 1700000000;
	assert_int_equal(fs_sync_parse_retry_after(" 7\r\n", 4, now), 7);
	assert_int_equal(fs_sync_parse_retry_after("0", 1, now), 0);
	assert_int_equal(fs_sync_parse_retry_after("99999999999999999999", 20, now),
	                 FS_SYNC_RETRY_AFTER_MAX_S);
	assert_int_equal(fs_sync_parse_retry_after("12x", 3, now), 0);
	assert_int_equal(fs_sync_parse_retry_after("", 0, now), 0);
	const char *d = " Tue, 14 Nov 2023 22:13:40 GMT\r\n"; /* now + 20 s */
	assert_int_equal(fs_sync_parse_retry_after(d, strlen(d), now), 20);
	const char *past = "Tue, 14 Nov 2000 22:14:20 GMT";
	assert_int_equal(fs_sync_parse_retry_after(past, strlen(past), now), 0);
	assert_int_equal(fs_sync_parse_retry_after("garbage", 7, now), 0);
}

static void test_error_maps(void **state)
{
	(void)state;
	fs_errbuf eb;
	assert_int_equal(fs_sync_map_curl(CURLE_COULDNT_CONNECT, "", &eb), FS_E_SYNC_OFFLINE);
	assert_int_equal(fs_sync_map_curl(CURLE_COULDNT_RESOLVE_HOST, "", &eb), FS_E_SYNC_DNS);
	assert_int_equal(fs_sync_map_curl(CURLE_PEER_FAILED_VERIFICATION, "", &eb),
	                 FS_E_SYNC_TLS_CERT);
	assert_int_equal(fs_sync_map_curl(CURLE_SSL_PINNEDPUBKEYNOTMATCH, "", &eb),
	                 FS_E_SYNC_TLS_PIN);
	assert_int_equal(fs_sync_map_curl(CURLE_SSL_CONNECT_ERROR, "", &eb), FS_E_SYNC_TLS);
	assert_int_equal(fs_sync_map_curl(CURLE_SSL_CONNECT_ERROR, "wrong version number", &eb),
	                 FS_E_SYNC_TLS);
	/* What libcurl says when a server dies during the handshake. */
	assert_int_equal(fs_sync_map_curl(CURLE_SSL_CONNECT_ERROR,
	                                  "Recv failure: Connection reset by peer", &eb),
	                 FS_E_SYNC_CONNLOST);
	assert_int_equal(fs_sync_map_curl(CURLE_SSL_CONNECT_ERROR,
	                                  "OpenSSL SSL_connect: SSL_ERROR_SYSCALL in connection",
	                                  &eb),
	                 FS_E_SYNC_CONNLOST);
	assert_int_equal(fs_sync_map_curl(CURLE_OPERATION_TIMEDOUT, "", &eb), FS_E_SYNC_TIMEOUT);
	assert_int_equal(fs_sync_map_curl(CURLE_RECV_ERROR, "", &eb), FS_E_SYNC_CONNLOST);
	assert_int_equal(fs_sync_map_curl(CURLE_PARTIAL_FILE, "", &eb), FS_E_SYNC_CONNLOST);
	assert_int_equal(fs_sync_map_status(200, &eb), FS_OK);
	assert_int_equal(fs_sync_map_status(201, &eb), FS_OK);
	assert_int_equal(fs_sync_map_status(301, &eb), FS_E_SYNC_REDIRECT);
	assert_int_equal(fs_sync_map_status(401, &eb), FS_E_SYNC_AUTH);
	assert_int_equal(fs_sync_map_status(403, &eb), FS_E_SYNC_AUTH);
	assert_int_equal(fs_sync_map_status(404, &eb), FS_E_NOTFOUND);
	assert_int_equal(fs_sync_map_status(429, &eb), FS_E_SYNC_RATE);
	assert_int_equal(fs_sync_map_status(500, &eb), FS_E_SYNC_SERVER);
	assert_int_equal(fs_sync_map_status(503, &eb), FS_E_SYNC_SERVER);
	assert_int_equal(fs_sync_map_status(400, &eb), FS_E_SYNC_REFUSED);
	assert_int_equal(fs_sync_map_status(99, &eb), FS_E_SYNC_MALFORMED);
	assert_true(fs_sync_err_transient(FS_E_SYNC_RATE));
	assert_true(fs_sync_err_transient(FS_E_SYNC_CONNLOST));
	assert_false(fs_sync_err_transient(FS_E_SYNC_TLS_PIN));
	assert_false(fs_sync_err_transient(FS_E_SYNC_AUTH));
	assert_false(fs_sync_err_transient(FS_OK));
	assert_string_not_equal(fs_errname(FS_E_SYNC_CONNLOST), "FS_E_UNKNOWN");
	assert_string_not_equal(fs_errname(FS_E_SYNC_REDIRECT), "FS_E_UNKNOWN");
}

static int try_url(const char *url, int allow, const char *pins)
{
	fs_sync_remote_opts o = {.url = url, .allow_http_loopback = allow, .pins = pins};
	fs_sync_remote *r = (fs_sync_remote *)1;
	fs_errbuf eb;
	int rc = fs_sync_remote_new(&o, &r, &eb);
	if (rc == FS_OK)
		assert_non_null(r);
	else
		assert_null(r);
	fs_sync_remote_free(r);
	return rc;
}

#define PIN_A "sha256//sowek4vSfqUm5upbH6stoAXFzegRXylBxAHoXLrwksI="
#define PIN_B "sha256//hQG1pwOpLJEyRz2lmefHL4bJjM1v/vfi72hem+XPYzk="

static void test_url_policy(void **state)
{
	(void)state;
	fs_errbuf eb;
	assert_int_equal(try_url("https://couch.example.org/team", 0, NULL), FS_OK);
	assert_int_equal(try_url("https://couch.example.org:6984/a/b/", 0, NULL), FS_OK);
	assert_int_equal(try_url("http://couch.example.org/team", 0, NULL), FS_E_SYNC_INSECURE);
	assert_int_equal(try_url("http://couch.example.org/team", 1, NULL), FS_E_SYNC_INSECURE);
	assert_int_equal(try_url("http://10.0.0.1/team", 1, NULL), FS_E_SYNC_INSECURE);
	assert_int_equal(try_url("http://127.0.0.1:5984/team", 0, NULL), FS_E_SYNC_INSECURE);
	assert_int_equal(try_url("http://127.0.0.1:5984/team", 1, NULL), FS_OK);
	assert_int_equal(try_url("http://127.9.9.9/team", 1, NULL), FS_OK);
	assert_int_equal(try_url("http://[::1]:5984/team", 1, NULL), FS_OK);
	assert_int_equal(try_url("http://localhost:5984/team", 1, NULL), FS_OK);
	assert_int_equal(try_url("ftp://couch.example.org/team", 1, NULL), FS_E_SYNC_INSECURE);
	assert_int_equal(try_url("https://couch.example.org", 0, NULL), FS_E_ARG);
	assert_int_equal(try_url("https://couch.example.org/team?x=1", 0, NULL), FS_E_ARG);
	assert_int_equal(try_url("not a url", 0, NULL), FS_E_ARG);
	assert_int_equal(try_url(PIN_A, 0, NULL), FS_E_ARG);

	/* Credentials in the URL are refused without echoing them. */
	fs_sync_remote_opts o = {.url = "https://bob:hunter2@couch.example.org/team"};
	fs_sync_remote *r = NULL;
	assert_int_equal(fs_sync_remote_new(&o, &r, &eb), FS_E_ARG);
	assert_null(strstr(eb.msg, "hunter2"));
	assert_null(strstr(eb.msg, "bob"));

	assert_int_equal(try_url("https://h.example/db", 0, PIN_A), FS_OK);
	assert_int_equal(try_url("https://h.example/db", 0, PIN_A ";" PIN_B), FS_OK);
	assert_int_equal(try_url("https://h.example/db", 0, PIN_A ";"), FS_E_ARG);
	assert_int_equal(try_url("https://h.example/db", 0, "sha256//short"), FS_E_ARG);
	assert_int_equal(try_url("https://h.example/db", 0, "md5//abc"), FS_E_ARG);
	assert_int_equal(try_url("https://h.example/db", 0, PIN_A "," PIN_B), FS_E_ARG);
	assert_int_equal(try_url("https://h.example/db", 0,
	                         PIN_A ";" PIN_A ";" PIN_A ";" PIN_A ";" PIN_A ";" PIN_A ";" PIN_A
	                               ";" PIN_A ";" PIN_A),
	                 FS_E_ARG);
}

static void test_credentials(void **state)
{
	(void)state;
	fs_sync_remote_opts o = {.url = "https://h.example/db"};
	fs_sync_remote *r = NULL;
	fs_errbuf eb;
	assert_int_equal(fs_sync_remote_new(&o, &r, &eb), FS_OK);
	assert_int_equal(fs_sync_remote_set_basic(r, "u:x", "p", &eb), FS_E_ARG);
	assert_int_equal(fs_sync_remote_set_basic(r, "user", "pass", &eb), FS_OK);
	assert_int_equal(fs_sync_remote_set_bearer(r, "tok\r\nX-Evil: 1", &eb), FS_E_ARG);
	assert_int_equal(fs_sync_remote_set_bearer(r, "tok", &eb), FS_OK);
	assert_int_equal(fs_sync_remote_set_basic(r, "user", "pass", &eb), FS_OK);
	fs_sync_remote_free(r);
	fs_sync_remote_free(NULL);
}

static void test_parse_changes(void **state)
{
	(void)state;
	fs_errbuf eb;
	fs_sync_changes *c = NULL;
	/* CouchDB 3: opaque string seqs. */
	const char *couch =
	    "{\"results\":[{\"seq\":\"1-g1AAAA\",\"id\":\"a\",\"changes\":[{\"rev\":\"1-aa\"}]},"
	    "{\"seq\":\"3-g1AAAB\",\"id\":\"b\",\"changes\":[{\"rev\":\"2-bb\"},{\"rev\":\"2-cc\"}]"
	    ","
	    "\"deleted\":true}],\"last_seq\":\"3-g1AAAB\",\"pending\":0}";
	assert_int_equal(PARSE(fs_sync_parse_changes, couch, &c), FS_OK);
	assert_int_equal(c->n, 2);
	assert_string_equal(c->v[0].id, "a");
	assert_string_equal(c->v[0].seq, "1-g1AAAA");
	assert_int_equal(c->v[0].nrevs, 1);
	assert_false(c->v[0].deleted);
	assert_int_equal(c->v[1].nrevs, 2);
	assert_string_equal(c->v[1].revs[1], "2-cc");
	assert_true(c->v[1].deleted);
	assert_string_equal(c->last_seq, "3-g1AAAB");
	assert_int_equal(c->pending, 0);
	fs_sync_changes_free(c);
	/* PouchDB: numbers; longpoll answers start with heartbeat newlines. */
	const char *pouch = "{\"results\":[\n\n{\"id\":\"a\",\"changes\":[{\"rev\":\"2-bb\"}],"
	                    "\"seq\":2}],\"last_seq\":2}";
	assert_int_equal(PARSE(fs_sync_parse_changes, pouch, &c), FS_OK);
	assert_string_equal(c->v[0].seq, "2");
	assert_string_equal(c->last_seq, "2");
	assert_int_equal(c->pending, -1);
	fs_sync_changes_free(c);
	const char *bad[] = {
	    "",
	    "[]",
	    "{}",
	    "{\"results\":{}}",
	    "{\"results\":[{\"id\":\"a\"}]}",
	    "{\"results\":[{\"id\":\"a\",\"seq\":1,\"changes\":[]}]}",
	    "{\"results\":[{\"id\":\"a\",\"seq\":1,\"changes\":[{\"rev\":\"x\"}]}]}",
	    "{\"results\":[{\"id\":\"a\",\"seq\":-1,\"changes\":[{\"rev\":\"1-a\"}]}]}",
	    "{\"results\":[{\"id\":\"a\",\"seq\":1.5,\"changes\":[{\"rev\":\"1-a\"}]}]}",
	    "{\"results\":[{\"id\":\"\",\"seq\":1,\"changes\":[{\"rev\":\"1-a\"}]}]}",
	    "{\"results\":[{\"id\":\"a\",\"seq\":1,\"changes\":[{\"rev\":\"1-a\"}],\"deleted\":1}]"
	    "}",
	    "{\"results\":[{\"id\":\"a\",\"seq\":true,\"changes\":[{\"rev\":\"1-a\"}]}]}",
	    "{\"results\":[],\"last_seq\":{}}",
	    "{\"results\":[]} x",
	    "{\"results\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]"
	    "}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		c = (fs_sync_changes *)1;
		assert_int_equal(PARSE(fs_sync_parse_changes, bad[i], &c), FS_E_SYNC_MALFORMED);
		assert_null(c);
	}
}

static void test_parse_revs_diff(void **state)
{
	(void)state;
	fs_errbuf eb;
	fs_sync_revs_diff *d = NULL;
	const char *ok = "{\"a\":{\"missing\":[\"2-dd\"],\"possible_ancestors\":[\"1-aa\"]},"
	                 "\"b\":{\"missing\":[\"1-x\",\"2-y\"]}}";
	assert_int_equal(PARSE(fs_sync_parse_revs_diff, ok, &d), FS_OK);
	assert_int_equal(d->n, 2);
	assert_string_equal(d->v[0].id, "a");
	assert_int_equal(d->v[0].nrevs, 1);
	assert_string_equal(d->v[1].revs[1], "2-y");
	fs_sync_revs_diff_free(d);
	assert_int_equal(PARSE(fs_sync_parse_revs_diff, "{}", &d), FS_OK);
	assert_int_equal(d->n, 0);
	fs_sync_revs_diff_free(d);
	assert_int_equal(PARSE(fs_sync_parse_revs_diff, "[]", &d), FS_E_SYNC_MALFORMED);
	assert_int_equal(PARSE(fs_sync_parse_revs_diff, "{\"a\":{}}", &d), FS_E_SYNC_MALFORMED);
	assert_int_equal(PARSE(fs_sync_parse_revs_diff, "{\"a\":{\"missing\":[1]}}", &d),
	                 FS_E_SYNC_MALFORMED);
}

static void test_parse_bulk_docs(void **state)
{
	(void)state;
	fs_errbuf eb;
	fs_sync_bulk_result *b = NULL;
	const char *ok = "[{\"ok\":true,\"id\":\"a\",\"rev\":\"1-aa\"},"
	                 "{\"id\":\"b\",\"error\":\"forbidden\",\"reason\":\"no\"},"
	                 "{\"id\":\"c\",\"rev\":\"1-cc\",\"error\":\"unknown_error\"}]";
	assert_int_equal(PARSE(fs_sync_parse_bulk_docs, ok, &b), FS_OK);
	assert_int_equal(b->n, 3);
	assert_int_equal(b->v[0].cls, FS_SYNC_DOC_OK);
	assert_null(b->v[0].error);
	assert_int_equal(b->v[1].cls, FS_SYNC_DOC_REFUSED);
	assert_string_equal(b->v[1].reason, "no");
	assert_null(b->v[1].rev);
	assert_int_equal(b->v[2].cls, FS_SYNC_DOC_RETRY);
	fs_sync_bulk_result_free(b);
	assert_int_equal(PARSE(fs_sync_parse_bulk_docs, "[]", &b), FS_OK);
	assert_int_equal(b->n, 0);
	fs_sync_bulk_result_free(b);
	assert_int_equal(PARSE(fs_sync_parse_bulk_docs, "{\"error\":\"x\"}", &b),
	                 FS_E_SYNC_MALFORMED);
	assert_int_equal(PARSE(fs_sync_parse_bulk_docs, "[{\"id\":\"a\"}]", &b),
	                 FS_E_SYNC_MALFORMED);
	assert_int_equal(fs_sync_doc_error_class("conflict"), FS_SYNC_DOC_RETRY);
	assert_int_equal(fs_sync_doc_error_class("unauthorized"), FS_SYNC_DOC_REFUSED);
}

static void test_parse_bulk_get(void **state)
{
	(void)state;
	fs_errbuf eb;
	fs_sync_revs *r = NULL;
	const char *ok =
	    "{\"results\":[{\"id\":\"a\",\"docs\":[{\"ok\":{\"fs\":1,\"_id\":\"a\",\"_rev\":\"3-"
	    "cc\","
	    "\"c\":\"xyz\",\"_revisions\":{\"start\":3,\"ids\":[\"cc\",\"bb\",\"aa\"]}}}]},"
	    "{\"id\":\"d\",\"docs\":[{\"ok\":{\"_id\":\"d\",\"_rev\":\"1-dd\",\"_deleted\":true}}]}"
	    ","
	    "{\"id\":\"zz\",\"docs\":[{\"missing\":\"1-a\"}]},"
	    "{\"id\":\"y\",\"docs\":[{\"error\":{\"id\":\"y\",\"rev\":\"undefined\","
	    "\"error\":\"not_found\",\"reason\":\"missing\"}}]}]}";
	assert_int_equal(PARSE(fs_sync_parse_bulk_get, ok, &r), FS_OK);
	assert_int_equal(r->n, 2);
	assert_int_equal(r->nerr, 2);
	assert_string_equal(r->v[0].rev, "3-cc");
	assert_int_equal(r->v[0].nhistory, 3);
	assert_string_equal(r->v[0].history[2], "1-aa");
	assert_string_equal(r->v[0].body, "{\"fs\":1,\"c\":\"xyz\"}");
	assert_int_equal(r->v[0].body_len, strlen(r->v[0].body));
	assert_true(r->v[1].deleted);
	assert_string_equal(r->v[1].body, "{}");
	assert_string_equal(r->err[0].rev, "1-a");
	assert_string_equal(r->err[1].error, "not_found");
	assert_null(r->err[1].rev);
	fs_sync_revs_free(r);
	/* The scanner's reading: docs before id are read once id is known; a
	 * body is its members as they came, whitespace between tokens dropped;
	 * the first of a repeated special member counts. */
	const char *order = "{\"results\":[{\"docs\":[{\"ok\":{\"_id\":\"a\",\"_rev\":\"1-aa\","
	                    "\"_rev\":\"x\",\"k\" : [ 1.50 , \"\\u00e9 \\\\\" ] , \"n\":{ }}}],"
	                    "\"id\":\"a\"}], \"x\":1}";
	assert_int_equal(PARSE(fs_sync_parse_bulk_get, order, &r), FS_OK);
	assert_int_equal(r->n, 1);
	assert_string_equal(r->v[0].rev, "1-aa");
	assert_string_equal(r->v[0].body, "{\"k\":[1.50,\"\\u00e9 \\\\\"],\"n\":{}}");
	fs_sync_revs_free(r);
	/* U+0000 in a special member's name keeps it special (dropped), as cJSON read it */
	const char *nul = "{\"results\":[{\"id\":\"a\",\"docs\":[{\"ok\":{\"_id\":\"a\","
	                  "\"_rev\":\"1-aa\",\"_\\u0000x\":1,\"b\":2}}]}]}";
	assert_int_equal(PARSE(fs_sync_parse_bulk_get, nul, &r), FS_OK);
	assert_int_equal(r->n, 1);
	assert_string_equal(r->v[0].body, "{\"b\":2}");
	fs_sync_revs_free(r);
	const char *bad[] = {
	    /* _revisions that does not match _rev */
	    "{\"results\":[{\"id\":\"a\",\"docs\":[{\"ok\":{\"_id\":\"a\",\"_rev\":\"3-cc\","
	    "\"_revisions\":{\"start\":2,\"ids\":[\"cc\"]}}}]}]}",
	    "{\"results\":[{\"id\":\"a\",\"docs\":[{\"ok\":{\"_id\":\"a\",\"_rev\":\"3-cc\","
	    "\"_revisions\":{\"start\":3,\"ids\":[\"dd\"]}}}]}]}",
	    /* more history than generations */
	    "{\"results\":[{\"id\":\"a\",\"docs\":[{\"ok\":{\"_id\":\"a\",\"_rev\":\"1-cc\","
	    "\"_revisions\":{\"start\":1,\"ids\":[\"cc\",\"bb\"]}}}]}]}",
	    /* a document under another id than asked */
	    "{\"results\":[{\"id\":\"a\",\"docs\":[{\"ok\":{\"_id\":\"b\",\"_rev\":\"1-cc\"}}]}]}",
	    "{\"results\":[{\"id\":\"a\",\"docs\":[{}]}]}",
	    "{\"results\":[{\"docs\":[]}]}",
	    "{\"results\":[{\"id\":\"a\"}]}",
	    /* not JSON: a raw control character in a string, trailing bytes */
	    "{\"results\":[{\"id\":\"a\x01\",\"docs\":[]}]}",
	    "{\"results\":[]} x",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		r = (fs_sync_revs *)1;
		assert_int_equal(PARSE(fs_sync_parse_bulk_get, bad[i], &r), FS_E_SYNC_MALFORMED);
		assert_null(r);
	}
}

static void test_parse_open_revs(void **state)
{
	(void)state;
	fs_errbuf eb;
	fs_sync_revs *r = NULL;
	const char *ok = "[{\"ok\":{\"x\":1,\"_id\":\"a\",\"_rev\":\"2-bb\",\"_revisions\":"
	                 "{\"start\":2,\"ids\":[\"bb\",\"aa\"]}}},{\"missing\":\"3-zz\"}]";
	assert_int_equal(fs_sync_parse_open_revs(ok, strlen(ok), 0, "a", &r, &eb), FS_OK);
	assert_int_equal(r->n, 1);
	assert_int_equal(r->nerr, 1);
	assert_string_equal(r->v[0].history[1], "1-aa");
	assert_string_equal(r->err[0].id, "a");
	fs_sync_revs_free(r);
	assert_int_equal(fs_sync_parse_open_revs(ok, strlen(ok), 0, "b", &r, &eb),
	                 FS_E_SYNC_MALFORMED);
}

static void test_parse_info(void **state)
{
	(void)state;
	fs_errbuf eb;
	fs_sync_server_info *s = NULL;
	fs_sync_db_info *d = NULL;
	const char *couch = "{\"couchdb\":\"Welcome\",\"version\":\"3.3.3\",\"vendor\":{}}";
	assert_int_equal(PARSE(fs_sync_parse_server_info, couch, &s), FS_OK);
	assert_string_equal(s->vendor, "CouchDB");
	assert_string_equal(s->version, "3.3.3");
	fs_sync_server_info_free(s);
	const char *pouch = "{\"express-pouchdb\":\"Welcome!\",\"version\":\"4.2.0\","
	                    "\"vendor\":{\"name\":\"PouchDB authors\",\"version\":\"4.2.0\"}}";
	assert_int_equal(PARSE(fs_sync_parse_server_info, pouch, &s), FS_OK);
	assert_string_equal(s->vendor, "PouchDB authors");
	fs_sync_server_info_free(s);
	const char *db = "{\"doc_count\":1,\"update_seq\":2,\"db_name\":\"db\"}";
	assert_int_equal(PARSE(fs_sync_parse_db_info, db, &d), FS_OK);
	assert_string_equal(d->db_name, "db");
	assert_string_equal(d->update_seq, "2");
	assert_int_equal(d->doc_count, 1);
	fs_sync_db_info_free(d);
	assert_int_equal(PARSE(fs_sync_parse_db_info, "{\"doc_count\":1}", &d),
	                 FS_E_SYNC_MALFORMED);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_backoff_schedule), cmocka_unit_test(test_backoff_jitter_spread),
	    cmocka_unit_test(test_retry_after),      cmocka_unit_test(test_error_maps),
	    cmocka_unit_test(test_url_policy),       cmocka_unit_test(test_credentials),
	    cmocka_unit_test(test_parse_changes),    cmocka_unit_test(test_parse_revs_diff),
	    cmocka_unit_test(test_parse_bulk_docs),  cmocka_unit_test(test_parse_bulk_get),
	    cmocka_unit_test(test_parse_open_revs),  cmocka_unit_test(test_parse_info),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	curl_global_cleanup();
	return rc;
}
