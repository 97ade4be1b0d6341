/*
 * tests/daemon/test_secret.c: crypto/secret.c, the wrapping of sync
 * credentials under the master key: round trip, context binding, wrong key,
 * tampering, bounds.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "crypto.h"

static fs_key *master(const char *pass)
{
	uint8_t kf[FS_CRYPTO_KEYFILE_BYTES];
	fs_kdf_params p = fs_crypto_kdf_params_min();
	fs_key *k = NULL;

	assert_int_equal(fs_crypto_keyfile_create(pass, strlen(pass), &p, kf, &k, NULL), FS_OK);
	return k;
}

static void round_trip(void **state)
{
	(void)state;
	fs_key *m = master("a"), *other = master("b");
	fs_secret *s = NULL, *back = NULL;
	uint8_t blob[FS_CRYPTO_SECRET_WRAPPED_MAX];
	size_t n = 0;
	fs_errbuf eb;
	const char *pw = "s3cret-token";

	assert_int_equal(fs_crypto_secret_new((const uint8_t *)pw, strlen(pw), &s, &eb), FS_OK);
	assert_int_equal(fs_crypto_secret_wrap(s, m, "cred:office", blob, &n, &eb), FS_OK);
	assert_int_equal(n, 4 + 1 + 24 + strlen(pw) + 16);
	assert_null(memmem(blob, n, pw, strlen(pw)));
	assert_int_equal(fs_crypto_secret_unwrap(blob, n, m, "cred:office", &back, &eb), FS_OK);
	assert_int_equal(fs_crypto_secret_len(back), strlen(pw));
	assert_string_equal(fs_crypto_secret_data(back), pw);
	fs_crypto_secret_free(back);
	back = NULL;

	/* Another meta key, another master key, a flipped bit: refused. */
	assert_int_equal(fs_crypto_secret_unwrap(blob, n, m, "cred:home", &back, &eb),
	                 FS_E_TAMPERED);
	assert_null(back);
	assert_int_equal(fs_crypto_secret_unwrap(blob, n, other, "cred:office", &back, &eb),
	                 FS_E_TAMPERED);
	blob[n - 1] ^= 1;
	assert_int_equal(fs_crypto_secret_unwrap(blob, n, m, "cred:office", &back, &eb),
	                 FS_E_TAMPERED);
	blob[n - 1] ^= 1;
	/* Malformed blobs. */
	assert_int_equal(fs_crypto_secret_unwrap(blob, 10, m, "cred:office", &back, &eb),
	                 FS_E_KEYFILE);
	blob[4] = 9;
	assert_int_equal(fs_crypto_secret_unwrap(blob, n, m, "cred:office", &back, &eb),
	                 FS_E_KEYFILE_VERSION);
	blob[0] = 'X';
	assert_int_equal(fs_crypto_secret_unwrap(blob, n, m, "cred:office", &back, &eb),
	                 FS_E_KEYFILE);
	fs_crypto_secret_free(s);
	fs_crypto_key_free(m);
	fs_crypto_key_free(other);
}

static void bounds(void **state)
{
	(void)state;
	static uint8_t big[FS_CRYPTO_SECRET_MAX + 1];
	fs_key *m = master("a");
	fs_secret *s = NULL;
	uint8_t blob[FS_CRYPTO_SECRET_WRAPPED_MAX];
	size_t n = 0;

	assert_int_equal(fs_crypto_secret_new(big, 0, &s, NULL), FS_E_ARG);
	assert_int_equal(fs_crypto_secret_new(big, sizeof(big), &s, NULL), FS_E_ARG);
	assert_null(s);
	assert_int_equal(fs_crypto_secret_new(big, FS_CRYPTO_SECRET_MAX, &s, NULL), FS_OK);
	assert_int_equal(fs_crypto_secret_wrap(s, m, "", blob, &n, NULL), FS_E_ARG);
	assert_int_equal(fs_crypto_secret_wrap(s, m, "c", blob, &n, NULL), FS_OK);
	assert_int_equal(n, FS_CRYPTO_SECRET_WRAPPED_MAX);
	fs_crypto_secret_free(s);
	fs_crypto_secret_free(NULL);
	fs_crypto_key_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(round_trip),
	    cmocka_unit_test(bounds),
	};
	if (fs_crypto_init() != FS_OK)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
