/*
 * tests/hub/test_hub_auth.c: the hub's credential checks without a
 * network. A wrong password for a known user, an unknown user and an
 * unknown or revoked token each cost one Argon2id run (an unknown name is
 * checked against a dummy hash), so the time of a refusal does not tell
 * which names exist; a remembered credential costs none.
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
#include <sodium.h>

#include "hub_int.h"

static char tmp[256], dir[300];
static hub_auth *auth;
static char token[FS_HUB_TOKEN_MAX], revoked[FS_HUB_TOKEN_MAX];

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int setup(void **state)
{
	(void)state;
	char pin[FS_HUB_PIN_MAX], id[FS_HUB_TOKEN_ID_LEN + 1];
	const char *dbs[] = {"team"};
	fs_errbuf eb;
	snprintf(tmp, sizeof(tmp), "%s/fs-hub-auth-XXXXXX",
	         getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (mkdtemp(tmp) == NULL)
		return -1;
	snprintf(dir, sizeof(dir), "%s/hub", tmp);
	if (fs_hub_init(dir, NULL, 0, pin, &eb) != FS_OK ||
	    fs_hub_user_add(dir, "maria", "correct horse", dbs, 1, 0, &eb) != FS_OK ||
	    fs_hub_token_add(dir, "tablet", dbs, 1, 0, token, &eb) != FS_OK ||
	    fs_hub_token_add(dir, "lost", dbs, 1, 0, revoked, &eb) != FS_OK)
		return -1;
	snprintf(id, sizeof(id), "%.*s", FS_HUB_TOKEN_ID_LEN, revoked);
	if (fs_hub_token_revoke(dir, id, &eb) != FS_OK)
		return -1;
	if (hub_auth_open(dir, 0, &auth, &eb) != FS_OK)
		return -1;
	hub_auth_warm(auth);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[400];
	hub_auth_close(auth);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
	return system(cmd) == 0 ? 0 : -1;
}

static void basic(char *out, size_t n, const char *user, const char *pw)
{
	char raw[128], b64[200];
	snprintf(raw, sizeof(raw), "%s:%s", user, pw);
	sodium_bin2base64(b64, sizeof(b64), (const unsigned char *)raw, strlen(raw),
	                  sodium_base64_VARIANT_ORIGINAL);
	snprintf(out, n, "Basic %s", b64);
}

/* One check: its result, the Argon2id runs it cost, and its seconds. */
static int check(const char *authz, uint64_t *runs, double *secs)
{
	hub_who who;
	fs_errbuf eb;
	uint64_t v0 = hub_auth_verified(auth);
	double t0 = now();
	int rc = hub_auth_check(auth, authz, &who, &eb);
	*secs = now() - t0;
	*runs = hub_auth_verified(auth) - v0;
	hub_who_clear(&who);
	return rc;
}

static void test_each_refusal_costs_one_argon2id(void **state)
{
	(void)state;
	char good[256], wrong[256], nobody[256], bearer[200];
	uint64_t runs;
	double s;
	basic(good, sizeof(good), "maria", "correct horse");
	basic(wrong, sizeof(wrong), "maria", "wrong horse");
	basic(nobody, sizeof(nobody), "nobody", "wrong horse");

	assert_int_equal(check(good, &runs, &s), FS_OK);
	assert_int_equal(runs, 1);
	assert_int_equal(check(good, &runs, &s), FS_OK); /* remembered */
	assert_int_equal(runs, 0);
	assert_int_equal(check(wrong, &runs, &s), FS_E_INPUT);
	assert_int_equal(runs, 1);
	assert_int_equal(check(nobody, &runs, &s), FS_E_INPUT);
	assert_int_equal(runs, 1);

	snprintf(bearer, sizeof(bearer), "Bearer %s", token);
	assert_int_equal(check(bearer, &runs, &s), FS_OK);
	assert_int_equal(runs, 1);
	snprintf(bearer, sizeof(bearer), "Bearer %s", revoked);
	assert_int_equal(check(bearer, &runs, &s), FS_E_INPUT);
	assert_int_equal(runs, 1);
	assert_int_equal(check("Bearer 0123456789abcdef.nope", &runs, &s), FS_E_INPUT);
	assert_int_equal(runs, 1);
	/* Malformed: refused before any name is looked up, at no cost. */
	assert_int_equal(check("Bearer nonsense", &runs, &s), FS_E_INPUT);
	assert_int_equal(runs, 0);
	assert_int_equal(check(NULL, &runs, &s), FS_E_NOTFOUND);
	assert_int_equal(runs, 0);
}

/* The same in time: the fastest of five refusals of an unknown user is
 * not much faster than the fastest of five of a known one (wall time on
 * a shared machine only ever adds, so the minimum is the honest one). */
static void test_unknown_user_takes_as_long(void **state)
{
	(void)state;
	char wrong[256], nobody[256];
	double best_known = 1e9, best_unknown = 1e9, s;
	uint64_t runs;
	basic(wrong, sizeof(wrong), "maria", "wrong horse");
	basic(nobody, sizeof(nobody), "nobody", "wrong horse");
	for (int i = 0; i < 5; i++) {
		assert_int_equal(check(wrong, &runs, &s), FS_E_INPUT);
		best_known = s < best_known ? s : best_known;
		assert_int_equal(check(nobody, &runs, &s), FS_E_INPUT);
		best_unknown = s < best_unknown ? s : best_unknown;
	}
	print_message("refusal: known user %.1f ms, unknown user %.1f ms\n", best_known * 1e3,
	              best_unknown * 1e3);
	assert_true(best_unknown > 0.6 * best_known);
	assert_true(best_known > 0.6 * best_unknown);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_each_refusal_costs_one_argon2id),
	    cmocka_unit_test(test_unknown_user_takes_as_long),
	};
	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, setup, teardown);
}
