/*
 * tests/hub/test_hub_pool.c: a fieldsync-hub process serving from a small
 * pool of threads. Hundreds of longpolls are held open (their heartbeats
 * flow) while ordinary requests are answered quickly, and the hub's
 * thread count stays at the pool size plus a constant; failed logins wait
 * out their delay without threads; one client address cannot take more
 * than its share of connections; and SIGTERM ends the hub cleanly while
 * requests are parked. Clients come from several loopback addresses
 * (127.0.0.x), as devices would.
 */
#include <dirent.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "hub_proc.h"
#include <curl/curl.h>

#include "hub.h"

#define POOL      4   /* threads = in hub.conf */
#define EXTRA     4   /* main, timer, two Argon2id workers */
#define PER_ADDR  120 /* max_connections_per_addr in hub.conf */
#define LONGPOLLS 400
#define QUICK_S   2.0 /* "answered quickly", with room for a loaded machine */
#define BODY_MAX  4096

static char tmp[256], dir[300], ca[320], token[FS_HUB_TOKEN_MAX], auth_hdr[200];
static pid_t hub_pid;
static unsigned port;

typedef struct conn {
	CURL *e;
	struct curl_slist *h;
	char body[BODY_MAX];
	size_t len;
	int done;
	CURLcode cc;
	long status;
} conn;

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The hub's threads now, from /proc. */
static int hub_threads(void)
{
	char path[64];
	DIR *d;
	struct dirent *e;
	int n = 0;
	snprintf(path, sizeof(path), "/proc/%d/task", (int)hub_pid);
	d = opendir(path);
	assert_non_null(d);
	while ((e = readdir(d)) != NULL)
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

static void hub_spawn(void)
{
	hub_pid = hub_proc_spawn(FS_HUB_BIN, dir, &port);
}

static int setup(void **state)
{
	(void)state;
	char pin[FS_HUB_PIN_MAX], path[400];
	struct rlimit rl;
	FILE *f;

	/* This process holds hundreds of connections too. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (hub_proc_folder("hub-pool", tmp, dir, ca, pin, token) != 0)
		return -1;
	snprintf(auth_hdr, sizeof(auth_hdr), "Authorization: Bearer %s", token);
	snprintf(path, sizeof(path), "%s/hub.conf", dir);
	if ((f = fopen(path, "a")) == NULL)
		return -1;
	fprintf(f,
	        "threads = %d\nmax_connections = 1000\nmax_connections_per_addr = %d\n"
	        "auth_delay_max_ms = 3000\n",
	        POOL, PER_ADDR);
	fclose(f);
	hub_spawn();
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	return hub_proc_stop(hub_pid, tmp);
}

static size_t on_data(char *p, size_t sz, size_t n, void *ctx)
{
	conn *k = ctx;
	size_t m = sz * n, room = BODY_MAX - 1 - k->len;
	memcpy(k->body + k->len, p, m < room ? m : room);
	k->len += m < room ? m : room;
	k->body[k->len] = '\0';
	return m;
}

/* A request on k from source address 127.0.0.<src>; authz: 0 none, 1 token, 2 a bad one. */
static void conn_init(conn *k, const char *method, const char *path, int src, int authz)
{
	char url[256], iface[64];
	memset(k, 0, sizeof(*k));
	k->e = curl_easy_init();
	assert_non_null(k->e);
	snprintf(url, sizeof(url), "https://127.0.0.1:%u%s", port, path);
	snprintf(iface, sizeof(iface), "host!127.0.0.%d", src);
	if (authz == 1)
		k->h = curl_slist_append(k->h, auth_hdr);
	else if (authz == 2)
		k->h = curl_slist_append(k->h, "Authorization: Bearer 0123456789abcdef.wrong");
	k->h = curl_slist_append(k->h, "Content-Type: application/json");
	curl_easy_setopt(k->e, CURLOPT_URL, url);
	curl_easy_setopt(k->e, CURLOPT_INTERFACE, iface);
	curl_easy_setopt(k->e, CURLOPT_CAINFO, ca);
	curl_easy_setopt(k->e, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(k->e, CURLOPT_HTTPHEADER, k->h);
	curl_easy_setopt(k->e, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(k->e, CURLOPT_WRITEDATA, k);
	curl_easy_setopt(k->e, CURLOPT_PRIVATE, k);
	curl_easy_setopt(k->e, CURLOPT_TIMEOUT, 120L);
	if (strcmp(method, "PUT") == 0)
		curl_easy_setopt(k->e, CURLOPT_POSTFIELDS, "{\"c\":1}");
}

static void conn_free(conn *k)
{
	curl_easy_cleanup(k->e);
	curl_slist_free_all(k->h);
}

/* One request, alone; its seconds. */
static double one(const char *method, const char *path, int src, int authz, long *status)
{
	conn k;
	double t0 = now();
	conn_init(&k, method, path, src, authz);
	k.cc = curl_easy_perform(k.e);
	*status = 0;
	if (k.cc == CURLE_OK)
		curl_easy_getinfo(k.e, CURLINFO_RESPONSE_CODE, status);
	conn_free(&k);
	return now() - t0;
}

enum { UNTIL_ALL_BYTES, UNTIL_ALL_DONE };

/* Drives m until every one of v[n] got a byte (or ended), or ended; false on timeout. */
static int drive(CURLM *m, conn *v, size_t n, int until, double timeout_s)
{
	double t_end = now() + timeout_s;
	while (now() < t_end) {
		int running = 0, left;
		size_t ok = 0;
		CURLMsg *msg;
		curl_multi_perform(m, &running);
		while ((msg = curl_multi_info_read(m, &left)) != NULL) {
			conn *k = NULL;
			if (msg->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&k);
			k->done = 1;
			k->cc = msg->data.result;
			curl_easy_getinfo(k->e, CURLINFO_RESPONSE_CODE, &k->status);
		}
		for (size_t i = 0; i < n; i++)
			ok += v[i].done || (until == UNTIL_ALL_BYTES && v[i].len > 0);
		if (ok == n)
			return 1;
		curl_multi_poll(m, NULL, 0, 100, NULL);
	}
	return 0;
}

static void drop_all(CURLM *m, conn *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		curl_multi_remove_handle(m, v[i].e);
		conn_free(&v[i]);
	}
}

/* Longpolls on v[n] from 127.0.0.<src0 + i / per_src>, since now, with heartbeats. */
static void longpolls(CURLM *m, conn *v, size_t n, int src0, size_t per_src)
{
	for (size_t i = 0; i < n; i++) {
		conn_init(&v[i], "GET",
		          "/team/_changes?feed=longpoll&since=now&heartbeat=1000&timeout=60000",
		          src0 + (int)(i / per_src), 1);
		assert_int_equal(curl_multi_add_handle(m, v[i].e), CURLM_OK);
	}
}

static void test_longpolls_hold_no_threads(void **state)
{
	(void)state;
	CURLM *m = curl_multi_init();
	conn *v = calloc(LONGPOLLS, sizeof(*v));
	double worst = 0;
	long st;
	int threads;

	assert_non_null(v);
	longpolls(m, v, LONGPOLLS, 2, 100);
	/* Every longpoll answered headers and a first heartbeat: all are open. */
	assert_true(drive(m, v, LONGPOLLS, UNTIL_ALL_BYTES, 90));
	for (size_t i = 0; i < LONGPOLLS; i++)
		assert_false(v[i].done);
	threads = hub_threads();
	print_message("%d longpolls open; the hub has %d threads (pool %d)\n", LONGPOLLS, threads,
	              POOL);
	assert_true(threads <= POOL + EXTRA);

	/* Ordinary requests meanwhile, each on a new connection. */
	for (int i = 0; i < 20; i++) {
		char path[64];
		double s;
		snprintf(path, sizeof(path), "/team/busy-%d", i);
		s = one(i % 2 ? "GET" : "PUT", i % 2 ? "/team" : path, 1, 1, &st);
		assert_int_equal(st, i % 2 ? 200 : 201);
		worst = s > worst ? s : worst;
		/* Heartbeats keep flowing: keep the longpolls' side moving. */
		(void)drive(m, v, LONGPOLLS, UNTIL_ALL_DONE, 0.01);
	}
	print_message("20 requests while they wait: the slowest took %.0f ms\n", worst * 1e3);
	assert_true(worst < QUICK_S);
	assert_true(hub_threads() <= POOL + EXTRA);

	/* Those writes woke them all, each with the changes since it began. */
	assert_true(drive(m, v, LONGPOLLS, UNTIL_ALL_DONE, 60));
	for (size_t i = 0; i < LONGPOLLS; i++) {
		assert_int_equal(v[i].cc, CURLE_OK);
		assert_int_equal(v[i].status, 200);
		assert_non_null(strstr(v[i].body, "\"id\":\"busy-0\""));
	}
	drop_all(m, v, LONGPOLLS);
	curl_multi_cleanup(m);
	free(v);
}

static void test_per_address_limit(void **state)
{
	(void)state;
	CURLM *m = curl_multi_init();
	conn *v = calloc(PER_ADDR, sizeof(*v));
	long st;

	assert_non_null(v);
	longpolls(m, v, PER_ADDR, 9, PER_ADDR); /* all from 127.0.0.9 */
	assert_true(drive(m, v, PER_ADDR, UNTIL_ALL_BYTES, 60));
	/* One more from the same address is turned away; another address is served. */
	(void)one("GET", "/team", 9, 1, &st);
	assert_int_equal(st, 0);
	(void)one("GET", "/team", 10, 1, &st);
	assert_int_equal(st, 200);
	(void)one("PUT", "/team/limit-wake", 10, 1, &st);
	assert_int_equal(st, 201);
	assert_true(drive(m, v, PER_ADDR, UNTIL_ALL_DONE, 60));
	for (size_t i = 0; i < PER_ADDR; i++)
		assert_int_equal(v[i].status, 200);
	drop_all(m, v, PER_ADDR);
	curl_multi_cleanup(m);
	free(v);
	/* The address is welcome again once the hub saw its connections close. */
	for (double t0 = now(); now() - t0 < 10;) {
		(void)one("GET", "/team", 9, 1, &st);
		if (st == 200)
			break;
		usleep(100 * 1000);
	}
	assert_int_equal(st, 200);
}

static void test_failed_logins_wait_without_threads(void **state)
{
	(void)state;
	enum { BAD = 60 };
	CURLM *m = curl_multi_init();
	conn v[BAD];
	double t0 = now(), s, last;
	long st;

	for (int i = 0; i < BAD; i++) {
		conn_init(&v[i], "GET", "/team", 11, 2);
		assert_int_equal(curl_multi_add_handle(m, v[i].e), CURLM_OK);
	}
	(void)drive(m, v, BAD, UNTIL_ALL_DONE, 1.0); /* in, verified, waiting out delays */
	assert_true(hub_threads() <= POOL + EXTRA);
	s = one("GET", "/team", 12, 1, &st);
	assert_int_equal(st, 200);
	print_message("a good request while %d failed logins wait: %.0f ms\n", BAD, s * 1e3);
	assert_true(s < QUICK_S);
	assert_true(drive(m, v, BAD, UNTIL_ALL_DONE, 60));
	last = now() - t0;
	for (int i = 0; i < BAD; i++)
		assert_int_equal(v[i].status, 401);
	/* Delays double per failure of the address up to 3 s: the last waited. */
	print_message("the %d failed logins were answered within %.1f s\n", BAD, last);
	assert_true(last >= 2.5);
	drop_all(m, v, BAD);
	curl_multi_cleanup(m);
}

static void test_sigterm_with_parked_requests(void **state)
{
	(void)state;
	enum { N = 50 };
	CURLM *m = curl_multi_init();
	conn v[N];
	int status = 0;
	double t0;

	longpolls(m, v, N, 20, 25);
	assert_true(drive(m, v, N, UNTIL_ALL_BYTES, 60));
	assert_int_equal(kill(hub_pid, SIGTERM), 0);
	t0 = now();
	while (waitpid(hub_pid, &status, WNOHANG) == 0 && now() - t0 < 20) {
		(void)drive(m, v, N, UNTIL_ALL_DONE, 0.05);
	}
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	hub_pid = 0;
	print_message("SIGTERM with %d parked longpolls: exited in %.2f s\n", N, now() - t0);
	assert_true(drive(m, v, N, UNTIL_ALL_DONE, 10)); /* their connections closed */
	drop_all(m, v, N);
	curl_multi_cleanup(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_longpolls_hold_no_threads),
	    cmocka_unit_test(test_per_address_limit),
	    cmocka_unit_test(test_failed_logins_wait_without_threads),
	    cmocka_unit_test(test_sigterm_with_parked_requests),
	};
	curl_global_init(CURL_GLOBAL_DEFAULT);
	int rc = cmocka_run_group_tests(tests, setup, teardown);
	curl_global_cleanup();
	return rc;
}
