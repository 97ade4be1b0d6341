/*
 * tests/hub/test_hub_api.c: the hub in this process, driven over real HTTPS
 * with libcurl (trusting the certificate fs_hub_init made): every endpoint
 * with CouchDB's shapes and codes, authentication and membership, and the
 * list of bad requests, each refused with a CouchDB-style error and
 * leaving the database unchanged.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <cmocka.h>
#include <curl/curl.h>

#include "hub.h"

static char dir[256], base[128], cafile[300];
static char admin_auth[160], dev_auth[160], other_auth[160], revoked_auth[160];
static fs_hub *hub;

typedef struct resp {
	long status;
	char *body;
	size_t len;
	cJSON *json;
	double secs;
} resp;

static size_t on_data(char *p, size_t sz, size_t n, void *ctx)
{
	resp *r = ctx;
	char *nb = realloc(r->body, r->len + sz * n + 1);
	if (nb == NULL)
		return 0;
	r->body = nb;
	memcpy(r->body + r->len, p, sz * n);
	r->len += sz * n;
	r->body[r->len] = '\0';
	return sz * n;
}

static size_t discard(char *p, size_t sz, size_t n, void *ctx)
{
	(void)p;
	(void)ctx;
	return sz * n;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void resp_free(resp *r)
{
	free(r->body);
	cJSON_Delete(r->json);
	memset(r, 0, sizeof(*r));
}

/* One request; the answer's JSON (if any) in r->json. authz: a full header value or NULL. */
static long req(const char *method, const char *path, const char *authz, const char *body,
                size_t blen, resp *r)
{
	CURL *c = curl_easy_init();
	struct curl_slist *h = NULL;
	char url[4096], hdr[256];
	CURLcode cc;

	memset(r, 0, sizeof(*r));
	assert_non_null(c);
	snprintf(url, sizeof(url), "%s%s", base, path);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CAINFO, cafile);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
	h = curl_slist_append(h, "Content-Type: application/json");
	/* Large bodies keep curl's "Expect: 100-continue", so a refusal
	 * (413, 401) arrives before the body is sent, as HTTP intends. */
	if (blen < (1u << 20))
		h = curl_slist_append(h, "Expect:");
	if (authz) {
		snprintf(hdr, sizeof(hdr), "Authorization: %s", authz);
		h = curl_slist_append(h, hdr);
	}
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	if (body) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)blen);
	}
	cc = curl_easy_perform(c);
	if (cc != CURLE_OK)
		fail_msg("%s %s: %s", method, path, curl_easy_strerror(cc));
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
	curl_easy_getinfo(c, CURLINFO_TOTAL_TIME, &r->secs);
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	if (r->body)
		r->json = cJSON_Parse(r->body);
	return r->status;
}

static long reqs(const char *method, const char *path, const char *authz, const char *body, resp *r)
{
	return req(method, path, authz, body, body ? strlen(body) : 0, r);
}

static const char *jstr(const cJSON *j, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, k);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static double jnum(const cJSON *j, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, k);
	return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

/* A CouchDB error answer: status and error name. */
static void expect_err(const char *method, const char *path, const char *authz, const char *body,
                       long status, const char *error)
{
	resp r;
	reqs(method, path, authz, body, &r);
	if (r.status != status)
		fail_msg("%s %s: %ld, want %ld (%s)", method, path, r.status, status,
		         r.body ? r.body : "");
	assert_non_null(r.json);
	assert_string_equal(jstr(r.json, "error"), error);
	assert_non_null(jstr(r.json, "reason"));
	resp_free(&r);
}

static double update_seq(const char *db)
{
	resp r;
	char path[128];
	double s;
	snprintf(path, sizeof(path), "/%s", db);
	assert_int_equal(reqs("GET", path, admin_auth, NULL, &r), 200);
	s = jnum(r.json, "update_seq");
	resp_free(&r);
	return s;
}

static void token(const char *name, const char *db, int admin, char *auth)
{
	char tok[FS_HUB_TOKEN_MAX];
	fs_errbuf eb;
	const char *dbs[] = {db};
	assert_int_equal(fs_hub_token_add(dir, name, dbs, db ? 1 : 0, admin, tok, &eb), FS_OK);
	snprintf(auth, 160, "Bearer %s", tok);
}

static int setup(void **state)
{
	(void)state;
	char pin[FS_HUB_PIN_MAX], tok[FS_HUB_TOKEN_MAX];
	fs_errbuf eb;
	fs_hub_opts o = {.port = 0, .quiet = 1};
	snprintf(dir, sizeof(dir), "%s/fs-hub-api-XXXXXX",
	         getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (mkdtemp(dir) == NULL)
		return -1;
	strcat(dir, "/hub");
	if (fs_hub_init(dir, NULL, 0, pin, &eb) != FS_OK)
		return -1;
	if (strncmp(pin, "sha256//", 8) != 0)
		return -1;
	snprintf(cafile, sizeof(cafile), "%s/cert.pem", dir);
	token("admin", NULL, 1, admin_auth);
	token("tablet", "team", 0, dev_auth);
	token("other", "elsewhere", 0, other_auth);
	{
		const char *dbs[] = {"team"};
		if (fs_hub_token_add(dir, "lost", dbs, 1, 0, tok, &eb) != FS_OK)
			return -1;
		snprintf(revoked_auth, sizeof(revoked_auth), "Bearer %s", tok);
		tok[FS_HUB_TOKEN_ID_LEN] = '\0';
		if (fs_hub_token_revoke(dir, tok, &eb) != FS_OK)
			return -1;
	}
	o.dir = dir;
	if (fs_hub_new(&o, &hub, &eb) != FS_OK || fs_hub_start(hub, &eb) != FS_OK) {
		fprintf(stderr, "hub: %s\n", eb.msg);
		return -1;
	}
	snprintf(base, sizeof(base), "https://localhost:%u", fs_hub_port(hub));
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[400];
	fs_hub_free(hub);
	dir[strlen(dir) - 4] = '\0';
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void test_server_and_databases(void **state)
{
	(void)state;
	resp r;
	assert_int_equal(reqs("GET", "/", NULL, NULL, &r), 200);
	assert_string_equal(jstr(r.json, "couchdb"), "Welcome");
	assert_non_null(jstr(r.json, "uuid"));
	resp_free(&r);

	expect_err("PUT", "/team", NULL, NULL, 401, "unauthorized");
	expect_err("PUT", "/team", dev_auth, NULL, 403, "forbidden");
	assert_int_equal(reqs("PUT", "/team", admin_auth, NULL, &r), 201);
	assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r.json, "ok")));
	resp_free(&r);
	expect_err("PUT", "/team", admin_auth, NULL, 412, "file_exists");
	expect_err("PUT", "/Bad%20Name", admin_auth, NULL, 400, "illegal_database_name");

	assert_int_equal(reqs("GET", "/team", dev_auth, NULL, &r), 200);
	assert_string_equal(jstr(r.json, "db_name"), "team");
	assert_true(jnum(r.json, "doc_count") == 0);
	resp_free(&r);
	expect_err("GET", "/team", other_auth, NULL, 403, "forbidden");
	expect_err("GET", "/nope", admin_auth, NULL, 404, "not_found");
	expect_err("GET", "/team/_changes", revoked_auth, NULL, 401, "unauthorized");

	/* A database made by the CLI while the hub runs is found. */
	fs_errbuf eb;
	assert_int_equal(fs_hub_db_create(dir, "elsewhere", &eb), FS_OK);
	assert_int_equal(fs_hub_db_create(dir, "elsewhere", &eb), FS_E_EXISTS);
	assert_int_equal(reqs("GET", "/elsewhere", other_auth, NULL, &r), 200);
	resp_free(&r);
	assert_int_equal(reqs("GET", "/_all_dbs", admin_auth, NULL, &r), 200);
	assert_int_equal(cJSON_GetArraySize(r.json), 2);
	resp_free(&r);
}

static void test_documents(void **state)
{
	(void)state;
	resp r;
	char rev1[80], rev2[80], path[256], body[256];

	assert_int_equal(reqs("PUT", "/team/note-1", dev_auth, "{\"fs\":1,\"c\":\"one\"}", &r),
	                 201);
	snprintf(rev1, sizeof(rev1), "%s", jstr(r.json, "rev"));
	assert_string_equal(jstr(r.json, "id"), "note-1");
	resp_free(&r);
	assert_int_equal(reqs("GET", "/team/note-1", dev_auth, NULL, &r), 200);
	assert_string_equal(jstr(r.json, "_rev"), rev1);
	assert_string_equal(jstr(r.json, "c"), "one");
	resp_free(&r);

	/* Creating again without a revision, or editing a stale one: 409. */
	expect_err("PUT", "/team/note-1", dev_auth, "{\"c\":\"x\"}", 409, "conflict");
	snprintf(body, sizeof(body), "{\"_rev\":\"%s\",\"c\":\"two\"}", rev1);
	assert_int_equal(reqs("PUT", "/team/note-1", dev_auth, body, &r), 201);
	snprintf(rev2, sizeof(rev2), "%s", jstr(r.json, "rev"));
	assert_int_equal(rev2[0], '2');
	resp_free(&r);
	expect_err("PUT", "/team/note-1", dev_auth, body, 409, "conflict");

	assert_int_equal(reqs("GET", "/team/note-1?revs=true", dev_auth, NULL, &r), 200);
	const cJSON *revs = cJSON_GetObjectItemCaseSensitive(r.json, "_revisions");
	assert_true(jnum(revs, "start") == 2);
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(revs, "ids")), 2);
	resp_free(&r);
	snprintf(path, sizeof(path), "/team/note-1?rev=%s", rev1);
	assert_int_equal(reqs("GET", path, dev_auth, NULL, &r), 200);
	assert_string_equal(jstr(r.json, "c"), "one");
	resp_free(&r);

	/* POST /db makes an id. */
	assert_int_equal(reqs("POST", "/team", dev_auth, "{\"c\":\"posted\"}", &r), 201);
	assert_int_equal(strlen(jstr(r.json, "id")), 32);
	resp_free(&r);

	/* Delete: 200, then reads say deleted; the tombstone is still readable by rev. */
	snprintf(path, sizeof(path), "/team/note-1?rev=%s", rev2);
	assert_int_equal(reqs("DELETE", path, dev_auth, NULL, &r), 200);
	char rev3[80];
	snprintf(rev3, sizeof(rev3), "%s", jstr(r.json, "rev"));
	resp_free(&r);
	expect_err("GET", "/team/note-1", dev_auth, NULL, 404, "not_found");
	snprintf(path, sizeof(path), "/team/note-1?rev=%s", rev3);
	assert_int_equal(reqs("GET", path, dev_auth, NULL, &r), 200);
	assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r.json, "_deleted")));
	resp_free(&r);
	expect_err("GET", "/team/never", dev_auth, NULL, 404, "not_found");

	/* _local: 0-N revisions, not in _changes. */
	assert_int_equal(reqs("PUT", "/team/_local/ckpt", dev_auth, "{\"seq\":5}", &r), 201);
	char lrev[40];
	snprintf(lrev, sizeof(lrev), "%s", jstr(r.json, "rev"));
	assert_string_equal(lrev, "0-1");
	resp_free(&r);
	expect_err("PUT", "/team/_local/ckpt", dev_auth, "{\"seq\":6}", 409, "conflict");
	assert_int_equal(
	    reqs("PUT", "/team/_local/ckpt", dev_auth, "{\"_rev\":\"0-1\",\"seq\":6}", &r), 201);
	resp_free(&r);
	assert_int_equal(reqs("GET", "/team/_local/ckpt", dev_auth, NULL, &r), 200);
	assert_string_equal(jstr(r.json, "_id"), "_local/ckpt");
	assert_true(jnum(r.json, "seq") == 6);
	resp_free(&r);
	assert_int_equal(reqs("DELETE", "/team/_local/ckpt?rev=0-2", dev_auth, NULL, &r), 200);
	assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r.json, "ok")));
	assert_string_equal(jstr(r.json, "id"), "_local/ckpt"); /* as CouchDB answers */
	assert_string_equal(jstr(r.json, "rev"), "0-0");
	resp_free(&r);
	expect_err("GET", "/team/_local/ckpt", dev_auth, NULL, 404, "not_found");

	assert_int_equal(reqs("GET", "/team/_all_docs", dev_auth, NULL, &r), 200);
	assert_true(jnum(r.json, "total_rows") == 1); /* the posted one */
	resp_free(&r);
}

static void test_replication_endpoints(void **state)
{
	(void)state;
	resp r;
	const cJSON *e;
	static const char bulk[] = "{\"new_edits\":false,\"docs\":["
	                           "{\"_id\":\"r1\",\"_rev\":\"2-bbbb\",\"_revisions\":{\"start\":"
	                           "2,\"ids\":[\"bbbb\",\"aaaa\"]},"
	                           "\"fs\":1,\"c\":\"x\"},"
	                           "{\"_id\":\"r1\",\"_rev\":\"2-cccc\",\"_revisions\":{\"start\":"
	                           "2,\"ids\":[\"cccc\",\"aaaa\"]},"
	                           "\"fs\":1,\"c\":\"y\"},"
	                           "{\"_id\":\"r2\",\"_rev\":\"1-dddd\",\"_deleted\":true}]}";

	assert_int_equal(reqs("POST", "/team/_revs_diff", dev_auth,
	                      "{\"r1\":[\"2-bbbb\",\"2-cccc\"],\"r2\":[\"1-dddd\"]}", &r),
	                 200);
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(
	                     cJSON_GetObjectItemCaseSensitive(r.json, "r1"), "missing")),
	                 2);
	resp_free(&r);
	double s0 = update_seq("team");
	assert_int_equal(reqs("POST", "/team/_bulk_docs", dev_auth, bulk, &r), 201);
	assert_true(cJSON_IsArray(r.json));
	resp_free(&r);
	/* The same batch again changes nothing (idempotent). */
	double s1 = update_seq("team");
	assert_true(s1 > s0);
	assert_int_equal(reqs("POST", "/team/_bulk_docs", dev_auth, bulk, &r), 201);
	resp_free(&r);
	assert_true(update_seq("team") == s1);
	assert_int_equal(
	    reqs("POST", "/team/_revs_diff", dev_auth, "{\"r1\":[\"2-bbbb\",\"3-eeee\"]}", &r),
	    200);
	e = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(r.json, "r1"),
	                                     "missing");
	assert_int_equal(cJSON_GetArraySize(e), 1);
	assert_string_equal(cJSON_GetArrayItem(e, 0)->valuestring, "3-eeee");
	resp_free(&r);

	/* Winner: 2-cccc (higher hash); both leaves in all_docs style. */
	assert_int_equal(reqs("GET", "/team/r1?conflicts=true", dev_auth, NULL, &r), 200);
	assert_string_equal(jstr(r.json, "_rev"), "2-cccc");
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(r.json, "_conflicts")),
	                 1);
	resp_free(&r);
	assert_int_equal(reqs("GET", "/team/_changes?style=all_docs", dev_auth, NULL, &r), 200);
	int found = 0;
	cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(r.json, "results"))
	{
		const char *id = jstr(e, "id");
		if (strcmp(id, "r1") == 0) {
			found++;
			assert_int_equal(
			    cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(e, "changes")), 2);
		}
		if (strcmp(id, "r2") == 0) {
			found++;
			assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "deleted")));
		}
	}
	assert_int_equal(found, 2);
	double last = jnum(r.json, "last_seq");
	resp_free(&r);
	assert_int_equal(reqs("GET", "/team/_changes?limit=1&since=0", dev_auth, NULL, &r), 200);
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(r.json, "results")),
	                 1);
	/* More to come is said (a replicator stops at pending 0). */
	assert_true(jnum(r.json, "pending") >= 1);
	resp_free(&r);
	char path[128];
	snprintf(path, sizeof(path), "/team/_changes?since=%.0f", last);
	assert_int_equal(reqs("GET", path, dev_auth, NULL, &r), 200);
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(r.json, "results")),
	                 0);
	assert_true(jnum(r.json, "last_seq") == last);
	resp_free(&r);

	/* _bulk_get with revs, including one missing revision. */
	assert_int_equal(
	    reqs("POST", "/team/_bulk_get?revs=true", dev_auth,
	         "{\"docs\":[{\"id\":\"r1\",\"rev\":\"2-bbbb\"},{\"id\":\"r1\",\"rev\":"
	         "\"9-ffff\"},{\"id\":\"r2\"}]}",
	         &r),
	    200);
	e = cJSON_GetObjectItemCaseSensitive(r.json, "results");
	assert_int_equal(cJSON_GetArraySize(e), 3);
	const cJSON *ok = cJSON_GetObjectItemCaseSensitive(
	    cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(e, 0), "docs"),
	                       0),
	    "ok");
	assert_string_equal(jstr(ok, "c"), "x");
	assert_true(jnum(cJSON_GetObjectItemCaseSensitive(ok, "_revisions"), "start") == 2);
	const cJSON *miss = cJSON_GetObjectItemCaseSensitive(
	    cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(e, 1), "docs"),
	                       0),
	    "error");
	assert_string_equal(jstr(miss, "error"), "not_found");
	resp_free(&r);

	/* open_revs=all and a list; latest=true maps an inner revision to its leaves. */
	assert_int_equal(reqs("GET", "/team/r1?open_revs=all&revs=true", dev_auth, NULL, &r), 200);
	assert_int_equal(cJSON_GetArraySize(r.json), 2);
	resp_free(&r);
	assert_int_equal(
	    reqs("GET", "/team/r1?open_revs=%5B%222-bbbb%22,%223-zzzz%22%5D", dev_auth, NULL, &r),
	    200);
	assert_int_equal(cJSON_GetArraySize(r.json), 2);
	assert_non_null(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(r.json, 0), "ok"));
	assert_string_equal(jstr(cJSON_GetArrayItem(r.json, 1), "missing"), "3-zzzz");
	resp_free(&r);
	assert_int_equal(reqs("POST", "/team/_bulk_get?latest=true", dev_auth,
	                      "{\"docs\":[{\"id\":\"r1\",\"rev\":\"1-aaaa\"}]}", &r),
	                 200);
	assert_int_equal(
	    cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(
	        cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(r.json, "results"), 0),
	        "docs")),
	    2);
	resp_free(&r);

	/* new_edits true in _bulk_docs: per-document results, conflicts named. */
	assert_int_equal(reqs("POST", "/team/_bulk_docs", dev_auth,
	                      "{\"docs\":[{\"_id\":\"n1\",\"a\":1},{\"_id\":\"r1\",\"a\":2}]}", &r),
	                 201);
	assert_true(
	    cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(r.json, 0), "ok")));
	assert_string_equal(jstr(cJSON_GetArrayItem(r.json, 1), "error"), "conflict");
	resp_free(&r);
	assert_int_equal(reqs("POST", "/team/_ensure_full_commit", dev_auth, "", &r), 201);
	resp_free(&r);

	/* The served-revision cache: 2-cccc is served (and cached) as a leaf;
	 * a child arrives; latest=true must now give the child, not the cache. */
	static const char q[] = "{\"docs\":[{\"id\":\"r1\",\"rev\":\"2-cccc\"}]}";
	assert_int_equal(reqs("POST", "/team/_bulk_get?revs=true&latest=true", dev_auth, q, &r),
	                 200);
	assert_non_null(strstr(r.body, "\"_rev\":\"2-cccc\""));
	resp_free(&r);
	assert_int_equal(
	    reqs("POST", "/team/_bulk_docs", dev_auth,
	         "{\"new_edits\":false,\"docs\":[{\"_id\":\"r1\",\"_rev\":\"3-gggg\","
	         "\"_revisions\":{\"start\":3,\"ids\":[\"gggg\",\"cccc\"]},\"c\":\"z\"}]}",
	         &r),
	    201);
	resp_free(&r);
	assert_int_equal(reqs("POST", "/team/_bulk_get?revs=true&latest=true", dev_auth, q, &r),
	                 200);
	assert_non_null(strstr(r.body, "\"_rev\":\"3-gggg\""));
	assert_null(strstr(r.body, "\"_rev\":\"2-cccc\""));
	resp_free(&r);
	/* Without latest the inner revision itself, with its history. */
	assert_int_equal(reqs("POST", "/team/_bulk_get?revs=true", dev_auth, q, &r), 200);
	assert_non_null(strstr(r.body, "\"_rev\":\"2-cccc\""));
	resp_free(&r);
}

/* Many conflicting leaves: every one is named (_conflicts, latest=true,
 * open_revs=all), none cut off silently. */
static void test_many_conflicts(void **state)
{
	(void)state;
	enum { LEAVES = 150 };
	size_t cap = LEAVES * 128 + 64, len = 0;
	char *bulk = malloc(cap);
	resp r;
	assert_non_null(bulk);
	len += (size_t)snprintf(bulk, cap, "{\"new_edits\":false,\"docs\":[");
	for (int i = 0; i < LEAVES; i++)
		len += (size_t)snprintf(bulk + len, cap - len,
		                        "%s{\"_id\":\"many\",\"_rev\":\"2-h%03d\",\"_revisions\":"
		                        "{\"start\":2,\"ids\":[\"h%03d\",\"root\"]},\"c\":%d}",
		                        i ? "," : "", i, i, i);
	snprintf(bulk + len, cap - len, "]}");
	assert_int_equal(reqs("POST", "/team/_bulk_docs", dev_auth, bulk, &r), 201);
	resp_free(&r);
	free(bulk);

	assert_int_equal(reqs("GET", "/team/many?conflicts=true", dev_auth, NULL, &r), 200);
	assert_string_equal(jstr(r.json, "_rev"), "2-h149"); /* highest rev id wins */
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(r.json, "_conflicts")),
	                 LEAVES - 1);
	resp_free(&r);
	assert_int_equal(reqs("GET", "/team/many?open_revs=all", dev_auth, NULL, &r), 200);
	assert_int_equal(cJSON_GetArraySize(r.json), LEAVES);
	resp_free(&r);
	/* The root stands for every leaf that descends from it. */
	assert_int_equal(reqs("POST", "/team/_bulk_get?latest=true&revs=true", dev_auth,
	                      "{\"docs\":[{\"id\":\"many\",\"rev\":\"1-root\"}]}", &r),
	                 200);
	assert_int_equal(
	    cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(
	        cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(r.json, "results"), 0),
	        "docs")),
	    LEAVES);
	resp_free(&r);
	assert_int_equal(
	    reqs("GET", "/team/many?open_revs=%5B%221-root%22%5D&latest=true", dev_auth, NULL, &r),
	    200);
	assert_int_equal(cJSON_GetArraySize(r.json), LEAVES);
	resp_free(&r);
}

/* A request from a helper thread: no cmocka asserts there. Status or -1. */
static long status_of(const char *method, const char *path, const char *authz)
{
	CURL *c = curl_easy_init();
	struct curl_slist *h = NULL;
	char url[512], hdr[256];
	long status = -1;
	if (c == NULL)
		return -1;
	snprintf(url, sizeof(url), "%s%s", base, path);
	snprintf(hdr, sizeof(hdr), "Authorization: %s", authz);
	h = curl_slist_append(h, hdr);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CAINFO, cafile);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_NOBODY, strcmp(method, "HEAD") == 0 ? 1L : 0L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
	if (curl_easy_perform(c) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	return status;
}

struct opener {
	pthread_t t;
	const char *method, *path;
	long status;
};

static void *opener_run(void *arg)
{
	struct opener *o = arg;
	o->status = status_of(o->method, o->path, admin_auth);
	return NULL;
}

/* Many requests open one database file at once: it is opened once (a
 * second open of the file would fail on the store's writer lock) and a
 * creation race has one winner. */
static void test_concurrent_open(void **state)
{
	(void)state;
	enum { N = 8 };
	struct opener o[N];
	fs_errbuf eb;
	int created = 0, exists = 0;
	assert_int_equal(fs_hub_db_create(dir, "race-a", &eb), FS_OK);
	for (int i = 0; i < N; i++) {
		o[i] = (struct opener){.method = "GET", .path = "/race-a"};
		assert_int_equal(pthread_create(&o[i].t, NULL, opener_run, &o[i]), 0);
	}
	for (int i = 0; i < N; i++) {
		pthread_join(o[i].t, NULL);
		assert_int_equal(o[i].status, 200);
	}
	for (int i = 0; i < N; i++) {
		o[i] = (struct opener){.method = "PUT", .path = "/race-b"};
		assert_int_equal(pthread_create(&o[i].t, NULL, opener_run, &o[i]), 0);
	}
	for (int i = 0; i < N; i++) {
		pthread_join(o[i].t, NULL);
		created += o[i].status == 201;
		exists += o[i].status == 412;
	}
	assert_int_equal(created, 1);
	assert_int_equal(exists, N - 1);
}

/* ---- long reads under bounded holds of the database's mutex ---- */

#define SLICED_DOCS 8000
#define SLICED_BODY 1024 /* bytes of each document's "c" */

struct reader {
	pthread_t t;
	const char *method, *path;
	char *body;
	long status;
	double secs;
	int done; /* read with __atomic_load_n */
};

static void *reader_run(void *arg)
{
	struct reader *x = arg;
	struct timespec t0, t1;
	CURL *c = curl_easy_init();
	struct curl_slist *h = NULL;
	char url[512], hdr[256];
	clock_gettime(CLOCK_MONOTONIC, &t0);
	x->status = -1;
	if (c != NULL) {
		snprintf(url, sizeof(url), "%s%s", base, x->path);
		snprintf(hdr, sizeof(hdr), "Authorization: %s", dev_auth);
		h = curl_slist_append(h, hdr);
		h = curl_slist_append(h, "Content-Type: application/json");
		h = curl_slist_append(h, "Expect:");
		curl_easy_setopt(c, CURLOPT_URL, url);
		curl_easy_setopt(c, CURLOPT_CAINFO, cafile);
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, x->method);
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
		curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
		curl_easy_setopt(c, CURLOPT_TIMEOUT, 120L);
		if (x->body)
			curl_easy_setopt(c, CURLOPT_POSTFIELDS, x->body);
		if (curl_easy_perform(c) == CURLE_OK)
			curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &x->status);
		curl_slist_free_all(h);
		curl_easy_cleanup(c);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	x->secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	__atomic_store_n(&x->done, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

/*
 * While one request reads the whole database (path, body), single writes
 * go on: several are answered during it and none waits for most of it.
 * Holding the database's mutex for the whole read would make the first
 * write wait for the read's end, and let no other one through.
 */
static void writes_during(const char *what, const char *method, const char *path, char *body)
{
	struct reader x = {.method = method, .path = path, .body = body};
	double worst = 0;
	int n = 0;
	resp r;
	char doc[64];
	assert_int_equal(pthread_create(&x.t, NULL, reader_run, &x), 0);
	usleep(20 * 1000); /* let the read begin */
	while (!__atomic_load_n(&x.done, __ATOMIC_SEQ_CST)) {
		snprintf(doc, sizeof(doc), "/team/during-%d-%d", (int)strlen(what), n);
		assert_int_equal(reqs("PUT", doc, dev_auth, "{\"c\":1}", &r), 201);
		worst = r.secs > worst ? r.secs : worst;
		resp_free(&r);
		if (!__atomic_load_n(&x.done, __ATOMIC_SEQ_CST))
			n++;
	}
	pthread_join(x.t, NULL);
	print_message("%s: %.0f ms; %d writes during it, the slowest %.0f ms\n", what, x.secs * 1e3,
	              n, worst * 1e3);
	assert_int_equal(x.status, 200);
	assert_true(n >= 3);
	assert_true(worst < 0.5 * x.secs);
}

static void test_long_reads_in_slices(void **state)
{
	(void)state;
	/* Bodies big enough that a whole read takes several writes' time even in
	 * a release build (64 bytes sufficed while the store read a row per
	 * revision). */
	size_t cap = 2000 * (SLICED_BODY + 96) + 64, len;
	char *bulk = malloc(cap), *get = malloc((size_t)SLICED_DOCS * 48 + 64);
	resp r;
	double s0 = update_seq("team"), docs0;
	char path[128];

	assert_non_null(bulk);
	assert_non_null(get);
	assert_int_equal(reqs("GET", "/team", dev_auth, NULL, &r), 200);
	docs0 = jnum(r.json, "doc_count");
	resp_free(&r);
	for (int k = 0; k < SLICED_DOCS; k += 2000) {
		len = (size_t)snprintf(bulk, cap, "{\"new_edits\":false,\"docs\":[");
		for (int i = k; i < k + 2000; i++)
			len +=
			    (size_t)snprintf(bulk + len, cap - len,
			                     "%s{\"_id\":\"s%05d\",\"_rev\":\"1-a%05d\",\"fs\":1,"
			                     "\"c\":\"%0*d\"}",
			                     i > k ? "," : "", i, i, SLICED_BODY, i);
		snprintf(bulk + len, cap - len, "]}");
		assert_int_equal(reqs("POST", "/team/_bulk_docs", dev_auth, bulk, &r), 201);
		resp_free(&r);
	}
	free(bulk);

	/* Sliced reads still give every document once, in order. */
	snprintf(path, sizeof(path), "/team/_changes?since=%.0f", s0);
	assert_int_equal(reqs("GET", path, dev_auth, NULL, &r), 200);
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(r.json, "results")),
	                 SLICED_DOCS);
	assert_true(jnum(r.json, "last_seq") == s0 + SLICED_DOCS);
	assert_true(jnum(r.json, "pending") == 0);
	resp_free(&r);
	snprintf(path, sizeof(path), "/team/_changes?since=%.0f&limit=1234", s0);
	assert_int_equal(reqs("GET", path, dev_auth, NULL, &r), 200);
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(r.json, "results")),
	                 1234);
	assert_true(jnum(r.json, "pending") == SLICED_DOCS - 1234);
	resp_free(&r);
	assert_int_equal(reqs("GET", "/team/_all_docs", dev_auth, NULL, &r), 200);
	assert_true(jnum(r.json, "total_rows") == docs0 + SLICED_DOCS);
	{
		const cJSON *row, *rows = cJSON_GetObjectItemCaseSensitive(r.json, "rows");
		const char *prev = "";
		assert_int_equal(cJSON_GetArraySize(rows), (int)(docs0 + SLICED_DOCS));
		cJSON_ArrayForEach(row, rows)
		{
			assert_true(strcmp(prev, jstr(row, "id")) < 0); /* sorted, each once */
			prev = jstr(row, "id");
		}
	}
	resp_free(&r);

	len = (size_t)sprintf(get, "{\"docs\":[");
	for (int i = 0; i < SLICED_DOCS; i++)
		len += (size_t)sprintf(get + len, "%s{\"id\":\"s%05d\",\"rev\":\"1-a%05d\"}",
		                       i ? "," : "", i, i);
	sprintf(get + len, "]}");
	writes_during("_all_docs?include_docs=true", "GET", "/team/_all_docs?include_docs=true",
	              NULL);
	writes_during("_bulk_get (8,000, not cached)", "POST", "/team/_bulk_get", get);
	free(get);
}

static long long file_size(const char *db, const char *suffix)
{
	char path[512];
	struct stat sb;
	snprintf(path, sizeof(path), "%s/dbs/%s.db%s", dir, db, suffix);
	return stat(path, &sb) == 0 ? (long long)sb.st_size : -1;
}

/*
 * A burst of writes is not slowed by copying the WAL into the database
 * file every 4 MiB: the copy waits until the database is quiet, then the
 * file holds the data.
 */
static void test_checkpoint_when_quiet(void **state)
{
	(void)state;
	enum { BATCHES = 4, PER = 1500, BODY = 1024 };
	size_t cap = (size_t)PER * (BODY + 128) + 64, len;
	char *bulk = malloc(cap);
	long long data = (long long)BATCHES * PER * BODY, db0, wal0;
	double t_last;
	resp r;

	assert_non_null(bulk);
	assert_int_equal(reqs("PUT", "/quiet", admin_auth, NULL, &r), 201);
	resp_free(&r);
	for (int k = 0; k < BATCHES; k++) {
		len = (size_t)snprintf(bulk, cap, "{\"new_edits\":false,\"docs\":[");
		for (int i = k * PER; i < (k + 1) * PER; i++) {
			len +=
			    (size_t)snprintf(bulk + len, cap - len,
			                     "%s{\"_id\":\"q%05d\",\"_rev\":\"1-a%05d\",\"c\":\"",
			                     i > k * PER ? "," : "", i, i);
			memset(bulk + len, 'A' + i % 26, BODY);
			len += BODY;
			len += (size_t)snprintf(bulk + len, cap - len, "\"}");
		}
		snprintf(bulk + len, cap - len, "]}");
		assert_int_equal(reqs("POST", "/quiet/_bulk_docs", admin_auth, bulk, &r), 201);
		resp_free(&r);
	}
	free(bulk);
	t_last = now_s();
	db0 = file_size("quiet", "");
	wal0 = file_size("quiet", "-wal");
	print_message("after the burst (%.0f ms later): db %lld bytes, WAL %lld bytes\n",
	              (now_s() - t_last) * 1e3, db0, wal0);
	assert_true(wal0 >= data); /* every write went to the WAL */
	if (now_s() - t_last < 0.2)
		assert_true(db0 < data / 4); /* and none was copied inside the burst */
	for (double t0 = now_s(); now_s() - t0 < 10 && file_size("quiet", "") < data;)
		usleep(50 * 1000);
	print_message("quiet: db %lld bytes\n", file_size("quiet", ""));
	assert_true(file_size("quiet", "") >= data);
	assert_int_equal(reqs("GET", "/quiet", admin_auth, NULL, &r), 200);
	assert_true(jnum(r.json, "doc_count") == BATCHES * PER);
	resp_free(&r);
}

struct lp {
	resp r;
	char auth[160];
};

static void *longpoll_thread(void *arg)
{
	struct lp *l = arg;
	char path[160];
	snprintf(path, sizeof(path), "/team/_changes?feed=longpoll&heartbeat=200&since=now");
	reqs("GET", path, l->auth, NULL, &l->r);
	return NULL;
}

static void test_longpoll(void **state)
{
	(void)state;
	pthread_t t;
	struct lp l;
	resp r;
	memset(&l, 0, sizeof(l));
	snprintf(l.auth, sizeof(l.auth), "%s", dev_auth);
	assert_int_equal(pthread_create(&t, NULL, longpoll_thread, &l), 0);
	usleep(700 * 1000);
	assert_int_equal(reqs("PUT", "/team/wake-up", dev_auth, "{\"c\":1}", &r), 201);
	resp_free(&r);
	pthread_join(t, NULL);
	assert_int_equal(l.r.status, 200);
	assert_non_null(l.r.json);
	assert_true(l.r.body[0] == '\n'); /* heartbeats came while it waited */
	assert_true(l.r.secs < 3.0);
	const cJSON *res = cJSON_GetObjectItemCaseSensitive(l.r.json, "results");
	assert_int_equal(cJSON_GetArraySize(res), 1);
	assert_string_equal(jstr(cJSON_GetArrayItem(res, 0), "id"), "wake-up");
	resp_free(&l.r);

	/* Nothing happens: the longpoll ends at its timeout with no results. */
	assert_int_equal(
	    reqs("GET", "/team/_changes?feed=longpoll&timeout=300&since=now", dev_auth, NULL, &r),
	    200);
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(r.json, "results")),
	                 0);
	resp_free(&r);
}

static void test_basic_auth_user(void **state)
{
	(void)state;
	fs_errbuf eb;
	const char *dbs[] = {"team"};
	char hdr[128];
	resp r;
	assert_int_equal(fs_hub_user_add(dir, "maria", "correct horse", dbs, 1, 0, &eb), FS_OK);
	snprintf(hdr, sizeof(hdr), "Basic %s",
	         "bWFyaWE6Y29ycmVjdCBob3JzZQ=="); /* maria:correct horse */
	assert_int_equal(reqs("GET", "/team", hdr, NULL, &r), 200);
	resp_free(&r);
	assert_int_equal(reqs("GET", "/team", hdr, NULL, &r), 200); /* cached */
	resp_free(&r);
	expect_err("GET", "/team", "Basic bWFyaWE6d3Jvbmc=", NULL, 401, "unauthorized");
	expect_err("GET", "/elsewhere", hdr, NULL, 403, "forbidden");
}

static void test_failures_slowed_down(void **state)
{
	(void)state;
	resp r;
	double t[4];
	for (int i = 0; i < 4; i++) {
		assert_int_equal(reqs("GET", "/team", "Bearer 0123456789abcdef.nope", NULL, &r),
		                 401);
		t[i] = r.secs;
		resp_free(&r);
	}
	assert_true(t[3] >= 0.7); /* 100, 200, 400, 800 ms */
	assert_true(t[3] > t[0]);
	/* A good credential from the same address resets the count. */
	assert_int_equal(reqs("GET", "/team", dev_auth, NULL, &r), 200);
	resp_free(&r);
	assert_int_equal(reqs("GET", "/team", "Bearer garbage", NULL, &r), 401);
	assert_true(r.secs < 0.5);
	resp_free(&r);
}

/* Revisions cached as they are written are served byte for byte as the
 * store serves them after a restart (empty cache). */
static void test_warm_cache_matches_store(void **state)
{
	(void)state;
	resp r;
	fs_errbuf eb;
	char *warm;
	static const char q[] = "{\"docs\":[{\"id\":\"w1\",\"rev\":\"2-b2\"},{\"id\":\"w2\","
	                        "\"rev\":\"1-c1\"},{\"id\":\"w3\",\"rev\":\"3-d3\"}]}";
	assert_int_equal(
	    reqs("POST", "/team/_bulk_docs", dev_auth,
	         "{\"new_edits\":false,\"docs\":["
	         "{\"_id\":\"w1\",\"_rev\":\"2-b2\",\"_revisions\":{\"start\":2,"
	         "\"ids\":[\"b2\",\"b1\"]},\"fs\":1,\"c\":\"\\u00e9\\n\",\"x\":[1.5,null]},"
	         "{\"_id\":\"w2\",\"_rev\":\"1-c1\",\"_deleted\":true},"
	         "{\"_id\":\"w3\",\"_rev\":\"3-d3\",\"_revisions\":{\"start\":3,"
	         "\"ids\":[\"d3\",\"d2\",\"d1\"]},\"k\":{}}]}",
	         &r),
	    201);
	resp_free(&r);
	assert_int_equal(reqs("POST", "/team/_bulk_get?revs=true&latest=true", dev_auth, q, &r),
	                 200);
	warm = strdup(r.body);
	resp_free(&r);
	fs_hub_free(hub);
	fs_hub_opts o = {.dir = dir, .port = 0, .quiet = 1};
	assert_int_equal(fs_hub_new(&o, &hub, &eb), FS_OK);
	assert_int_equal(fs_hub_start(hub, &eb), FS_OK);
	snprintf(base, sizeof(base), "https://localhost:%u", fs_hub_port(hub));
	assert_int_equal(reqs("POST", "/team/_bulk_get?revs=true&latest=true", dev_auth, q, &r),
	                 200);
	assert_string_equal(r.body, warm);
	assert_non_null(strstr(warm, "\"_deleted\":true"));
	resp_free(&r);
	free(warm);

	/* The same revision again with another body changes nothing, and the
	 * cache does not take the new body either. */
	assert_int_equal(
	    reqs("POST", "/team/_bulk_docs", dev_auth,
	         "{\"new_edits\":false,\"docs\":[{\"_id\":\"w3\",\"_rev\":\"3-d3\","
	         "\"_revisions\":{\"start\":3,\"ids\":[\"d3\",\"d2\",\"d1\"]},\"k\":\"forged\"}]}",
	         &r),
	    201);
	resp_free(&r);
	assert_int_equal(reqs("POST", "/team/_bulk_get?revs=true", dev_auth,
	                      "{\"docs\":[{\"id\":\"w3\",\"rev\":\"3-d3\"}]}", &r),
	                 200);
	assert_null(strstr(r.body, "forged"));
	assert_non_null(strstr(r.body, "\"k\":{}"));
	resp_free(&r);
	/* Same for a first revision, alone in its batch (the quick path). */
	assert_int_equal(reqs("POST", "/team/_bulk_docs", dev_auth,
	                      "{\"new_edits\":false,\"docs\":[{\"_id\":\"w2\",\"_rev\":\"1-c1\","
	                      "\"k\":\"forged\"}]}",
	                      &r),
	                 201);
	resp_free(&r);
	assert_int_equal(reqs("POST", "/team/_bulk_get?revs=true", dev_auth,
	                      "{\"docs\":[{\"id\":\"w2\",\"rev\":\"1-c1\"}]}", &r),
	                 200);
	assert_null(strstr(r.body, "forged"));
	assert_non_null(strstr(r.body, "\"_deleted\":true"));
	resp_free(&r);
}

static void test_bad_requests(void **state)
{
	(void)state;
	double s0 = update_seq("team");
	char *deep, *huge, *many;
	resp r;

	expect_err("POST", "/team/_bulk_docs", dev_auth, "{\"docs\":[{\"_id\":", 400,
	           "bad_request");
	expect_err("POST", "/team/_bulk_docs", dev_auth, "not json", 400, "bad_request");
	expect_err("POST", "/team/_bulk_docs", dev_auth, "{\"docs\":{}}", 400, "bad_request");
	expect_err("POST", "/team/_bulk_docs", dev_auth, "{\"docs\":[1]}", 400, "bad_request");
	expect_err("POST", "/team/_bulk_docs", dev_auth, "{\"docs\":[],\"new_edits\":\"no\"}", 400,
	           "bad_request");
	expect_err("POST", "/team/_bulk_docs", dev_auth,
	           "{\"new_edits\":false,\"docs\":[{\"_id\":\"a\",\"_rev\":5}]}", 400,
	           "bad_request");
	expect_err("POST", "/team/_bulk_docs", dev_auth,
	           "{\"new_edits\":false,\"docs\":[{\"_id\":\"a\",\"_rev\":\"x\"}]}", 400,
	           "bad_request");
	expect_err("POST", "/team/_bulk_docs", dev_auth,
	           "{\"new_edits\":false,\"docs\":[{\"_id\":\"a\"}]}", 400, "bad_request");
	expect_err("POST", "/team/_bulk_docs", dev_auth,
	           "{\"new_edits\":false,\"docs\":[{\"_id\":\"a\",\"_rev\":\"2-b\","
	           "\"_revisions\":{\"start\":2,\"ids\":[\"c\",\"a\"]}}]}",
	           400, "bad_request");
	expect_err("POST", "/team/_bulk_docs", dev_auth,
	           "{\"docs\":[{\"_id\":\"ok\"},{\"_id\":\"_bad\"}]}", 400, "bad_request");
	expect_err("POST", "/team/_bulk_docs", dev_auth, "{\"docs\":[{\"_foo\":1}]}", 400,
	           "bad_request");
	/* U+0000 inside a special member's name does not make it an ordinary one */
	expect_err("POST", "/team/_bulk_docs", dev_auth, "{\"docs\":[{\"_\\u0000x\":1}]}", 400,
	           "bad_request");
	expect_err("POST", "/team/_revs_diff", dev_auth, "{\"a\":\"1-x\"}", 400, "bad_request");
	expect_err("POST", "/team/_revs_diff", dev_auth, "[]", 400, "bad_request");
	expect_err("POST", "/team/_bulk_get", dev_auth, "{\"docs\":[{\"id\":5}]}", 400,
	           "bad_request");
	expect_err("POST", "/team/_bulk_get", dev_auth, "{}", 400, "bad_request");
	expect_err("PUT", "/team/x", dev_auth, "[1,2]", 400, "bad_request");
	expect_err("PUT", "/team/_design/x", dev_auth, "{}", 400, "illegal_docid");
	expect_err("PUT", "/team/x?rev=nonsense", dev_auth, "{}", 400, "bad_request");
	expect_err("GET", "/team/_changes?since=abc", dev_auth, NULL, 400, "bad_request");
	expect_err("GET", "/team/_changes?feed=continuous", dev_auth, NULL, 400, "bad_request");
	expect_err("GET", "/team/_changes?limit=-1", dev_auth, NULL, 400, "bad_request");
	/* strtoull alone would read these as 2^64-1 and 5. */
	expect_err("GET", "/team/_changes?limit=%20-1", dev_auth, NULL, 400, "bad_request");
	expect_err("GET", "/team/_changes?heartbeat=+5", dev_auth, NULL, 400, "bad_request");
	expect_err("GET", "/team/_changes?since=%20-1", dev_auth, NULL, 400, "bad_request");
	expect_err("GET", "/team/x?open_revs=%5B1%5D", dev_auth, NULL, 400, "bad_request");
	expect_err("GET", "/team/_bulk_docs", dev_auth, NULL, 405, "method_not_allowed");
	expect_err("POST", "/nope/_bulk_docs", dev_auth, "{\"docs\":[]}", 403, "forbidden");
	expect_err("POST", "/nope/_bulk_docs", admin_auth, "{\"docs\":[]}", 404, "not_found");
	expect_err("GET", "/team", "Bearer nonsense", NULL, 401, "unauthorized");
	expect_err("GET", "/team", "Digest x", NULL, 401, "unauthorized");

	/* 200 levels of nesting: refused before cJSON recurses. */
	deep = malloc(600);
	assert_non_null(deep);
	strcpy(deep, "{\"docs\":[{\"_id\":\"d\",\"x\":");
	for (int i = 0; i < 200; i++)
		strcat(deep, "[");
	for (int i = 0; i < 200; i++)
		strcat(deep, "]");
	strcat(deep, "}]}");
	expect_err("POST", "/team/_bulk_docs", dev_auth, deep, 400, "bad_request");
	free(deep);

	/* Over 32 MiB: 413 without reading it all. */
	size_t hn = (33u << 20);
	huge = malloc(hn);
	assert_non_null(huge);
	memset(huge, ' ', hn);
	huge[0] = '{';
	huge[hn - 1] = '}';
	assert_int_equal(req("POST", "/team/_bulk_docs", dev_auth, huge, hn, &r), 413);
	assert_string_equal(jstr(r.json, "error"), "too_large");
	resp_free(&r);
	free(huge);

	/* 10,001 documents in one batch: 413. */
	size_t mn = 10001 * 3 + 64;
	many = malloc(mn);
	assert_non_null(many);
	strcpy(many, "{\"docs\":[");
	size_t len = strlen(many);
	for (int i = 0; i < 10001; i++) {
		memcpy(many + len, i ? ",{}" : "{}", i ? 3 : 2);
		len += i ? 3 : 2;
	}
	memcpy(many + len, "]}", 3);
	assert_int_equal(req("POST", "/team/_bulk_docs", dev_auth, many, strlen(many), &r), 413);
	resp_free(&r);
	free(many);

	/* None of it changed the database. */
	assert_true(update_seq("team") == s0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_server_and_databases),
	    cmocka_unit_test(test_documents),
	    cmocka_unit_test(test_replication_endpoints),
	    cmocka_unit_test(test_many_conflicts),
	    cmocka_unit_test(test_concurrent_open),
	    cmocka_unit_test(test_long_reads_in_slices),
	    cmocka_unit_test(test_checkpoint_when_quiet),
	    cmocka_unit_test(test_longpoll),
	    cmocka_unit_test(test_basic_auth_user),
	    cmocka_unit_test(test_failures_slowed_down),
	    cmocka_unit_test(test_warm_cache_matches_store),
	    cmocka_unit_test(test_bad_requests),
	};
	curl_global_init(CURL_GLOBAL_DEFAULT);
	int rc = cmocka_run_group_tests(tests, setup, teardown);
	curl_global_cleanup();
	return rc;
}
