/*
 * tests/sync/test_sync_live.c: continuous replication as the daemon will
 * drive it, against a real pouchdb-server (harness.sh): a local edit is
 * pushed after the debounce delay and not before; the other device's
 * longpoll, run through a curl multi handle, wakes on the server's change
 * and its next step pulls it; a dead server schedules retries with backoff
 * and a network change brings the retry forward. On a caller's multi
 * handle a step never waits: the sync goes on as the caller hands back its
 * finished transfers, and after a network change a probe goes first.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <curl/curl.h>

#include "sync_test.h"

static fs_store *sa, *sb;
static fs_sync_remote *ra, *rb;

static fs_sync_remote *remote(const char *base, const char *db, int create)
{
	const fs_sync_remote_opts o = {.allow_http_loopback = 1, .connect_timeout_ms = 2000};
	fs_sync_remote *r = tsync_remote(base, db, &o, create);
	if (r == NULL)
		fail_msg("no remote for %s/%s", base, db);
	return r;
}

static int setup(void **state)
{
	(void)state;
	const char *base = getenv("FS_TEST_COUCH_URL");
	if (base == NULL || tsync_dir_new("live") != 0)
		return -1;
	ra = remote(base, "live", 1);
	rb = remote(base, "live", 0);
	sa = tsync_store("a");
	sb = tsync_store("b");
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	fs_store_close(sa);
	fs_store_close(sb);
	fs_sync_remote_free(ra);
	fs_sync_remote_free(rb);
	tsync_dir_remove();
	return 0;
}

/* Runs the multi handle until h completes or ms pass; returns its result or -1. */
static int pump(CURLM *m, CURL *h, int ms)
{
	struct timespec t0, t;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		int running, left;
		CURLMsg *msg;
		assert_int_equal(curl_multi_perform(m, &running), CURLM_OK);
		while ((msg = curl_multi_info_read(m, &left)) != NULL)
			if (msg->msg == CURLMSG_DONE && msg->easy_handle == h)
				return (int)msg->data.result;
		clock_gettime(CLOCK_MONOTONIC, &t);
		if ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 > ms)
			return -1;
		assert_int_equal(curl_multi_poll(m, NULL, 0, 100, NULL), CURLM_OK);
	}
}

static void test_edit_pushed_and_longpoll_pulls(void **state)
{
	(void)state;
	fs_sync_opts o = {.remote_name = "office"};
	fs_sync_live *la = NULL, *lb = NULL;
	fs_store_doc *d = NULL;
	fs_errbuf eb;
	uint32_t wait;
	char rev[FS_REV_MAX];
	CURLM *m = curl_multi_init();
	CURL *lp;

	assert_non_null(m);
	assert_int_equal(fs_sync_live_new(sa, ra, &o, 1000, &la, &eb), FS_OK);
	assert_int_equal(fs_sync_live_new(sb, rb, &o, 1000, &lb, &eb), FS_OK);
	/* The first steps sync and start listening. */
	assert_int_equal(fs_sync_live_step(la, 0, &wait, NULL, &eb), FS_OK);
	assert_int_equal(fs_sync_live_step(lb, 0, &wait, NULL, &eb), FS_OK);
	assert_int_equal(wait, FS_SYNC_LONGPOLL_MS);
	lp = fs_sync_live_longpoll(lb);
	assert_non_null(lp);
	assert_null(fs_sync_live_longpoll(lb)); /* handed out once */
	assert_int_equal(curl_multi_add_handle(m, lp), CURLM_OK);
	assert_int_equal(pump(m, lp, 300), -1); /* nothing to report yet */

	/* A local edit waits for the debounce delay. */
	assert_int_equal(
	    fs_store_put_local(sa, "live-1", NULL, (const uint8_t *)"{\"fs\":1}", 8, 0, rev, &eb),
	    FS_OK);
	fs_sync_live_changed(la, 10000);
	assert_int_equal(fs_sync_live_step(la, 10100, &wait, NULL, &eb), FS_OK);
	assert_int_equal(wait, 900);
	assert_int_equal(tsync_queued(sa, 0), 1);
	fs_sync_progress p;
	assert_int_equal(fs_sync_live_step(la, 11000, &wait, &p, &eb), FS_OK);
	assert_int_equal(tsync_queued(sa, 0), 0);
	assert_int_equal(p.docs_pushed, 1);

	/* B's longpoll wakes on the change; its next step pulls. */
	int cc = pump(m, lp, 10000);
	assert_int_equal(cc, CURLE_OK);
	assert_int_equal(curl_multi_remove_handle(m, lp), CURLM_OK);
	assert_int_equal(fs_sync_live_longpoll_done(lb, (CURLcode)cc, 11000, &eb), FS_OK);
	assert_int_equal(fs_sync_live_step(lb, 11001, &wait, &p, &eb), FS_OK);
	assert_int_equal(p.docs_pulled, 1);
	assert_int_equal(fs_store_get(sb, "live-1", NULL, &d, &eb), FS_OK);
	assert_string_equal(d->rev, rev);
	fs_store_doc_free(d);
	/* ...and listens again. */
	assert_non_null(fs_sync_live_longpoll(lb));

	fs_sync_live_free(la);
	fs_sync_live_free(lb);
	curl_multi_cleanup(m);
}

static void test_backoff_and_network_change(void **state)
{
	(void)state;
	fs_sync_remote *dead = remote("http://127.0.0.1:1", "live", 0);
	fs_sync_opts o = {.remote_name = "dead", .backoff_min_ms = 1000, .backoff_max_ms = 300000};
	fs_sync_live *l = NULL;
	fs_errbuf eb;
	uint32_t wait;

	assert_int_equal(fs_sync_live_new(sa, dead, &o, 0, &l, &eb), FS_OK);
	assert_int_equal(fs_sync_live_step(l, 0, &wait, NULL, &eb), FS_E_SYNC_OFFLINE);
	assert_true(wait >= 1000 && wait <= 2000);
	assert_null(fs_sync_live_longpoll(l)); /* no listening while failing */
	/* Before the retry time nothing is tried. */
	assert_int_equal(fs_sync_live_step(l, 500, &wait, NULL, &eb), FS_OK);
	/* Failures push the retry further out... */
	assert_int_equal(fs_sync_live_step(l, 2000, &wait, NULL, &eb), FS_E_SYNC_OFFLINE);
	assert_int_equal(fs_sync_live_step(l, 6000, &wait, NULL, &eb), FS_E_SYNC_OFFLINE);
	assert_true(wait >= 1000 && wait <= 8000);
	/* ...until the network changes: then it tries at once, from the start. */
	fs_sync_live_network_changed(l);
	assert_int_equal(fs_sync_live_step(l, 6001, &wait, NULL, &eb), FS_E_SYNC_OFFLINE);
	assert_true(wait >= 1000 && wait <= 2000);
	fs_sync_live_free(l);
	fs_sync_remote_free(dead);
}

/* Runs m until one of l's transfers ends and hands it back; returns how
 * many of l's ended (0 after ms without one). */
static int pump_live(CURLM *m, fs_sync_live *l, int ms)
{
	struct timespec t0, t;
	int ended = 0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (ended == 0) {
		int running, left;
		CURLMsg *msg;
		assert_int_equal(curl_multi_perform(m, &running), CURLM_OK);
		while ((msg = curl_multi_info_read(m, &left)) != NULL)
			if (msg->msg == CURLMSG_DONE)
				ended += fs_sync_live_transfer_done(l, msg->easy_handle,
				                                    msg->data.result);
		clock_gettime(CLOCK_MONOTONIC, &t);
		if ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 > ms)
			break;
		if (ended == 0)
			assert_int_equal(curl_multi_poll(m, NULL, 0, 100, NULL), CURLM_OK);
	}
	return ended;
}

/* Steps l until a sync ends; returns its result, *transfers counts the
 * requests it took (probe included). */
static int step_until_synced(CURLM *m, fs_sync_live *l, uint64_t now, fs_sync_progress *sum,
                             int *transfers)
{
	fs_sync_progress p;
	fs_errbuf eb;
	uint32_t wait;
	int rc;

	memset(sum, 0, sizeof(*sum));
	*transfers = 0;
	for (int i = 0; i < 50; i++) {
		rc = fs_sync_live_step(l, now, &wait, &p, &eb);
		sum->docs_pushed += p.docs_pushed;
		sum->docs_pulled += p.docs_pulled;
		if (rc != FS_OK || fs_sync_live_synced(l))
			return rc;
		int n = pump_live(m, l, 5000);
		assert_true(n > 0);
		*transfers += n;
	}
	fail_msg("no sync ended in 50 steps");
	return -1;
}

static void test_steps_on_a_multi_handle(void **state)
{
	(void)state;
	fs_sync_opts o = {.remote_name = "multi"};
	fs_sync_live *l = NULL;
	fs_sync_progress sum, p;
	fs_errbuf eb;
	uint32_t wait;
	char rev[FS_REV_MAX];
	int transfers;
	CURLM *m = curl_multi_init();

	assert_non_null(m);
	assert_int_equal(
	    fs_store_put_local(sa, "multi-1", NULL, (const uint8_t *)"{\"fs\":1}", 8, 0, rev, &eb),
	    FS_OK);
	assert_int_equal(fs_sync_live_new(sa, ra, &o, 1000, &l, &eb), FS_OK);
	assert_int_equal(fs_sync_live_set_multi(l, m, &eb), FS_OK);

	/* The first step puts the push on the wire and returns: nothing is
	 * confirmed until the caller hands the answer back. */
	assert_int_equal(fs_sync_live_step(l, 0, &wait, &p, &eb), FS_OK);
	assert_false(fs_sync_live_synced(l));
	assert_int_equal(tsync_queued(sa, 0), 1);
	assert_int_equal(step_until_synced(m, l, 0, &sum, &transfers), FS_OK);
	assert_int_equal(sum.docs_pushed + p.docs_pushed, 1);
	assert_int_equal(tsync_queued(sa, 0), 0);
	/* _revs_diff, _bulk_docs, then the pull's _changes (live-1 from the
	 * other test, and this one coming back, are fetched too). */
	assert_true(transfers >= 3);

	/* Asked to sync now: no probe, the sync itself (_changes only). */
	fs_sync_live_sync_now(l);
	assert_int_equal(step_until_synced(m, l, 1, &sum, &transfers), FS_OK);
	assert_int_equal(transfers, 1);

	/* After a network change a probe (GET /{db}) goes first, then the sync. */
	fs_sync_live_network_changed(l);
	assert_int_equal(step_until_synced(m, l, 2, &sum, &transfers), FS_OK);
	assert_int_equal(transfers, 2);

	fs_sync_live_free(l); /* nothing left on m */
	curl_multi_cleanup(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_edit_pushed_and_longpoll_pulls),
	    cmocka_unit_test(test_backoff_and_network_change),
	    cmocka_unit_test(test_steps_on_a_multi_handle),
	};
	curl_global_init(CURL_GLOBAL_DEFAULT);
	int rc = cmocka_run_group_tests(tests, setup, teardown);
	curl_global_cleanup();
	return rc;
}
