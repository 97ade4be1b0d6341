/*
 * tests/hub/test_hub_kill.c: the fieldsync-hub process is killed with
 * SIGKILL in the middle of a _bulk_docs (once with half the body sent,
 * then at several moments of a running push) and restarted; the device's
 * retries then leave every document on the hub exactly once: one leaf per
 * document, the device's revision, doc_count equal to what was written.
 */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
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

#include "hub_proc.h"
#include <curl/curl.h>
#include <sodium.h>

#include "hub.h"
#include "store.h"
#include "sync.h"

#define NDOCS    3000
#define CT_BYTES 1024

static char tmp[256], dir[300], ca[320], pin[FS_HUB_PIN_MAX], token[FS_HUB_TOKEN_MAX];
static pid_t hub_pid;
static unsigned port;
static fs_store *st;

static void hub_spawn(void)
{
	hub_pid = hub_proc_spawn(FS_HUB_BIN, dir, &port);
}

static void hub_kill(void)
{
	int status;
	assert_int_equal(kill(hub_pid, SIGKILL), 0);
	assert_int_equal(waitpid(hub_pid, &status, 0), hub_pid);
	assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	hub_pid = 0;
}

static fs_sync_remote *remote(void)
{
	char url[128];
	fs_sync_remote *r = NULL;
	fs_errbuf eb;
	snprintf(url, sizeof(url), "https://localhost:%u/team", port);
	fs_sync_remote_opts o = {.url = url, .ca_file = ca, .pins = pin};
	assert_int_equal(fs_sync_remote_new(&o, &r, &eb), FS_OK);
	assert_int_equal(fs_sync_remote_set_bearer(r, token, &eb), FS_OK);
	return r;
}

static int setup(void **state)
{
	(void)state;
	fs_errbuf eb;
	char rev[FS_REV_MAX], id[40], body[CT_BYTES * 2 + 200], ctb64[CT_BYTES * 2];
	unsigned char ct[CT_BYTES];

	if (sodium_init() < 0)
		return -1;
	if (hub_proc_folder("hub-kill", tmp, dir, ca, pin, token) != 0)
		return -1;
	snprintf(body, sizeof(body), "%s/device.db", tmp);
	if (fs_store_open(body, NULL, &st, &eb) != FS_OK)
		return -1;
	for (int i = 0; i < NDOCS; i++) {
		randombytes_buf(ct, sizeof(ct));
		sodium_bin2base64(ctb64, sizeof(ctb64), ct, sizeof(ct),
		                  sodium_base64_VARIANT_ORIGINAL);
		snprintf(id, sizeof(id), "doc-%05d", i);
		snprintf(body, sizeof(body), "{\"fs\":1,\"k\":\"k1\",\"n\":\"n%d\",\"c\":\"%s\"}",
		         i, ctb64);
		if (fs_store_put_local(st, id, NULL, (const uint8_t *)body, strlen(body), 0, rev,
		                       &eb) != FS_OK)
			return -1;
	}
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	fs_store_close(st);
	return hub_proc_stop(hub_pid, tmp);
}

/* ---- a raw _bulk_docs whose body stops half way until the hub is dead ---- */

struct halfway {
	const char *body;
	size_t len, off;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int half_sent, killed;
	CURLcode cc;
};

static size_t feed(char *buf, size_t sz, size_t n, void *ctx)
{
	struct halfway *h = ctx;
	size_t want = sz * n, stop = h->len / 2;
	if (h->off >= stop && !h->killed) {
		pthread_mutex_lock(&h->mu);
		h->half_sent = 1;
		pthread_cond_broadcast(&h->cv);
		while (!h->killed)
			pthread_cond_wait(&h->cv, &h->mu);
		pthread_mutex_unlock(&h->mu);
	}
	if (!h->killed && h->off + want > stop)
		want = stop - h->off;
	if (want > h->len - h->off)
		want = h->len - h->off;
	memcpy(buf, h->body + h->off, want);
	h->off += want;
	return want;
}

static void *halfway_thread(void *arg)
{
	struct halfway *h = arg;
	char url[128], auth[160];
	struct curl_slist *hd = NULL;
	CURL *c = curl_easy_init();
	snprintf(url, sizeof(url), "https://localhost:%u/team/_bulk_docs", port);
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
	hd = curl_slist_append(hd, "Content-Type: application/json");
	hd = curl_slist_append(hd, "Expect:");
	hd = curl_slist_append(hd, auth);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CAINFO, ca);
	curl_easy_setopt(c, CURLOPT_POST, 1L);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hd);
	curl_easy_setopt(c, CURLOPT_READFUNCTION, feed);
	curl_easy_setopt(c, CURLOPT_READDATA, h);
	curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)h->len);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
	h->cc = curl_easy_perform(c);
	curl_slist_free_all(hd);
	curl_easy_cleanup(c);
	return NULL;
}

/* The first 500 queued rows as a replication _bulk_docs body. */
static char *bulk_body(size_t *len)
{
	fs_store_outbox *o = NULL;
	fs_errbuf eb;
	size_t cap = 64, n = 0;
	char *b;
	assert_int_equal(fs_store_outbox_read(st, 500, 64u << 20, &o, &eb), FS_OK);
	for (size_t i = 0; i < o->n; i++)
		cap += o->v[i].body_len + 200;
	b = malloc(cap);
	assert_non_null(b);
	n += (size_t)sprintf(b, "{\"new_edits\":false,\"docs\":[");
	for (size_t i = 0; i < o->n; i++) {
		const char *h = strchr(o->v[i].rev, '-') + 1;
		n +=
		    (size_t)sprintf(b + n,
		                    "%s{\"_id\":\"%s\",\"_rev\":\"%s\",\"_revisions\":{\"start\":1,"
		                    "\"ids\":[\"%s\"]},",
		                    i ? "," : "", o->v[i].id, o->v[i].rev, h);
		memcpy(b + n, o->v[i].body + 1, o->v[i].body_len - 1);
		n += o->v[i].body_len - 1;
	}
	n += (size_t)sprintf(b + n, "]}");
	fs_store_outbox_free(o);
	*len = n;
	return b;
}

static void test_kill_mid_body(void **state)
{
	(void)state;
	struct halfway h = {0};
	pthread_t t;
	size_t len;
	char *body = bulk_body(&len);

	hub_spawn();
	h.body = body;
	h.len = len;
	pthread_mutex_init(&h.mu, NULL);
	pthread_cond_init(&h.cv, NULL);
	assert_int_equal(pthread_create(&t, NULL, halfway_thread, &h), 0);
	pthread_mutex_lock(&h.mu);
	while (!h.half_sent)
		pthread_cond_wait(&h.cv, &h.mu);
	pthread_mutex_unlock(&h.mu);
	usleep(100 * 1000); /* let the hub take in what was sent */
	hub_kill();
	pthread_mutex_lock(&h.mu);
	h.killed = 1;
	pthread_cond_broadcast(&h.cv);
	pthread_mutex_unlock(&h.mu);
	pthread_join(t, NULL);
	assert_true(h.cc != CURLE_OK); /* the request died with the hub */
	pthread_mutex_destroy(&h.mu);
	pthread_cond_destroy(&h.cv);
	free(body);
}

struct pusher {
	fs_sync_remote *r;
	int rc;
	fs_sync_progress p;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int batches;
};

/* After each confirmed batch: the connection is up, the next batch follows at once. */
static void on_batch(void *ctx, const fs_sync_progress *p)
{
	struct pusher *x = ctx;
	(void)p;
	pthread_mutex_lock(&x->mu);
	x->batches++;
	pthread_cond_broadcast(&x->cv);
	pthread_mutex_unlock(&x->mu);
}

static void *push_thread(void *arg)
{
	struct pusher *x = arg;
	fs_errbuf eb;
	fs_sync_opts o = {
	    .batch_docs = 400, .remote_name = "hub", .progress = on_batch, .progress_ctx = x};
	x->rc = fs_sync_push(st, x->r, &o, &x->p, &eb);
	on_batch(x, NULL); /* also when it ended without a batch */
	return NULL;
}

static uint64_t queued(void)
{
	fs_store_outbox_stats s;
	fs_errbuf eb;
	assert_int_equal(fs_store_outbox_stats_get(st, &s, &eb), FS_OK);
	return s.queued;
}

static void test_kill_during_push_then_retry(void **state)
{
	(void)state;
	/* After the first confirmed batch, the next _bulk_docs is on its way:
	 * kill while it is uploaded, parsed or written. */
	static const unsigned delays_ms[] = {2, 15, 40};
	int killed_mid = 0;

	for (size_t k = 0; k < sizeof(delays_ms) / sizeof(delays_ms[0]); k++) {
		struct pusher x = {0};
		pthread_t t;
		uint64_t before = queued();
		if (before == 0)
			break;
		pthread_mutex_init(&x.mu, NULL);
		pthread_cond_init(&x.cv, NULL);
		hub_spawn();
		x.r = remote();
		assert_int_equal(pthread_create(&t, NULL, push_thread, &x), 0);
		pthread_mutex_lock(&x.mu);
		while (x.batches == 0)
			pthread_cond_wait(&x.cv, &x.mu);
		pthread_mutex_unlock(&x.mu);
		usleep(delays_ms[k] * 1000);
		hub_kill();
		pthread_join(t, NULL);
		fs_sync_remote_free(x.r);
		pthread_mutex_destroy(&x.mu);
		pthread_cond_destroy(&x.cv);
		if (x.rc != FS_OK) {
			killed_mid++;
			/* A retry must be the answer, also when the hub died during a
			 * new connection's TLS handshake. */
			if (!fs_sync_err_transient(x.rc))
				fail_msg("kill gave %s, not a transient error", fs_errname(x.rc));
		}
		printf("kill %u ms after a batch: push %s, %llu of %llu rows confirmed\n",
		       delays_ms[k], x.rc == FS_OK ? "finished" : fs_errname(x.rc),
		       (unsigned long long)(before - queued()), (unsigned long long)before);
	}
	assert_true(killed_mid >= 1);

	/* The retry after the last restart empties the outbox. */
	hub_spawn();
	fs_sync_remote *r = remote();
	fs_errbuf eb;
	fs_sync_opts o = {.remote_name = "hub"};
	assert_int_equal(fs_sync_push(st, r, &o, NULL, &eb), FS_OK);
	assert_int_equal(queued(), 0);
	fs_sync_remote_free(r);

	/* Every document exactly once: one leaf, the device's revision. */
	CURL *c = curl_easy_init();
	char url[160], auth[160];
	struct curl_slist *hd = NULL;
	FILE *mem;
	char *buf = NULL;
	size_t blen = 0;
	snprintf(url, sizeof(url), "https://localhost:%u/team/_changes?style=all_docs", port);
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
	hd = curl_slist_append(hd, auth);
	mem = open_memstream(&buf, &blen);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CAINFO, ca);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hd);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, mem);
	assert_int_equal(curl_easy_perform(c), CURLE_OK);
	fclose(mem);
	curl_slist_free_all(hd);
	curl_easy_cleanup(c);
	cJSON *j = cJSON_Parse(buf);
	free(buf);
	assert_non_null(j);
	const cJSON *res = cJSON_GetObjectItemCaseSensitive(j, "results"), *e;
	assert_int_equal(cJSON_GetArraySize(res), NDOCS);
	cJSON_ArrayForEach(e, res)
	{
		const cJSON *ch = cJSON_GetObjectItemCaseSensitive(e, "changes");
		const char *id = cJSON_GetObjectItemCaseSensitive(e, "id")->valuestring;
		fs_store_doc *d = NULL;
		assert_int_equal(cJSON_GetArraySize(ch), 1);
		assert_int_equal(fs_store_get(st, id, NULL, &d, &eb), FS_OK);
		assert_string_equal(
		    cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(ch, 0), "rev")->valuestring,
		    d->rev);
		fs_store_doc_free(d);
	}
	cJSON_Delete(j);
	hub_kill();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_kill_mid_body),
	    cmocka_unit_test(test_kill_during_push_then_retry),
	};
	curl_global_init(CURL_GLOBAL_DEFAULT);
	int rc = cmocka_run_group_tests(tests, setup, teardown);
	curl_global_cleanup();
	return rc;
}
