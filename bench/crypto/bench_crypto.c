/*
 * bench/crypto: the record envelope (seal + open) against the floor, raw
 * XChaCha20-Poly1305-IETF encrypt + decrypt of the same bytes, side by side
 * in one run; the parts of the envelope's cost (base64, JSON) so the ratio
 * can be explained; and the time to unlock a key file at the default
 * Argon2id cost. --quick runs a few iterations with the minimum cost (smoke
 * test under ctest).
 */
#include <cjson/cJSON.h>
#include <modp_b64.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crypto.h"

#define SPACE "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
#define DOC   "8f1c4b2e9a7d6c5b4a3928171615f4e3"

static int quick;

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void die(const char *what, int r)
{
	fprintf(stderr, "bench_crypto: %s: %s\n", what, fs_errname(r));
	exit(1);
}

/* Iterations for about 0.4 s of work at an assumed 400 MB/s. */
static int iters(size_t size)
{
	long n;
	if (quick)
		return 2;
	n = (long)(160e6 / (double)size);
	return n < 20 ? 20 : n > 200000 ? 200000 : (int)n;
}

/* Seconds per seal+open of size bytes through the envelope. */
static double run_env(const fs_space_key *k, const fs_keyring *ring, const uint8_t *plain,
                      size_t size, int n)
{
	double t = now();
	for (int i = 0; i < n; i++) {
		char *env = NULL;
		uint8_t *out = NULL;
		size_t el = 0, ol = 0;
		int r;
		if ((r = fs_crypto_env_seal(k, DOC, plain, size, &env, &el, NULL)) != FS_OK)
			die("seal", r);
		if ((r = fs_crypto_env_open(ring, SPACE, DOC, env, el, &out, &ol, NULL)) != FS_OK)
			die("open", r);
		if (ol != size)
			die("open length", FS_E_INTERNAL);
		fs_crypto_plain_free(out, ol);
		free(env);
	}
	return (now() - t) / n;
}

/* The floor: raw AEAD encrypt + decrypt into buffers allocated once. */
static double run_floor(const uint8_t *key, const uint8_t *plain, size_t size, int n)
{
	uint8_t *ct = malloc(size + 16), *pt = malloc(size + 1), nonce[24], ad[80];
	unsigned long long cl = 0, pl = 0;
	double t;

	memset(ad, 7, sizeof(ad));
	randombytes_buf(nonce, sizeof(nonce));
	t = now();
	for (int i = 0; i < n; i++) {
		crypto_aead_xchacha20poly1305_ietf_encrypt(ct, &cl, plain, size, ad, sizeof(ad),
		                                           NULL, nonce, key);
		if (crypto_aead_xchacha20poly1305_ietf_decrypt(pt, &pl, NULL, ct, cl, ad,
		                                               sizeof(ad), nonce, key) != 0)
			die("floor decrypt", FS_E_INTERNAL);
	}
	t = (now() - t) / n;
	free(ct);
	free(pt);
	return t;
}

/* What the format adds: base64 both ways (modp_b64, as the envelope uses)
 * and, for comparison, what a cJSON parse of the envelope would cost (the
 * envelope scans its usual shape without one). */
static void parts(size_t size, int n, double *b64, double *json)
{
	size_t cl = size + 16, bl = modp_b64_encode_len(cl);
	uint8_t *ct = malloc(cl + 2);
	char *b = malloc(bl), *js = malloc(bl + 16);
	double t;

	randombytes_buf(ct, cl);
	t = now();
	for (int i = 0; i < n; i++) {
		modp_b64_encode(b, (const char *)ct, cl);
		if (modp_b64_decode((char *)ct, b, bl - 1) != cl)
			die("base64", FS_E_BASE64);
	}
	*b64 = (now() - t) / n;
	snprintf(js, bl + 16, "{\"c\":\"%s\"}", b);
	t = now();
	for (int i = 0; i < n; i++) {
		cJSON *j = NULL;
		if (fs_json_parse(js, strlen(js), bl + 16, 4, &j, NULL) != FS_OK)
			die("json", FS_E_INPUT);
		cJSON_Delete(j);
	}
	*json = (now() - t) / n;
	free(ct);
	free(b);
	free(js);
}

static int bench_env(void)
{
	static const struct {
		size_t size;
		const char *name;
		double target; /* issue 2 sets none for 64 KB */
	} cases[] = {{1024, "1 KB", 0.5}, {64 << 10, "64 KB", 0}, {1 << 20, "1 MB", 0.8}};
	fs_space_key *k = NULL;
	fs_keyring *ring = NULL;
	uint8_t key[32];
	int r, missed = 0;

	if ((r = fs_crypto_spacekey_new(SPACE, 1, &k, NULL)) != FS_OK ||
	    (r = fs_crypto_keyring_new(&ring, NULL)) != FS_OK ||
	    (r = fs_crypto_keyring_add(ring, k, NULL)) != FS_OK)
		die("space key", r);
	randombytes_buf(key, sizeof(key));
	printf("envelope seal+open vs raw XChaCha20-Poly1305 encrypt+decrypt (floor)\n");
	printf("%-6s %12s %12s %7s %7s   %s\n", "record", "floor MB/s", "env MB/s", "ratio",
	       "target", "base64 / rest of envelope time; a cJSON parse would add");
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		size_t size = cases[c].size;
		int n = iters(size);
		uint8_t *plain = malloc(size);
		double tf, te, tb, tj, ratio;

		randombytes_buf(plain, size);
		/* Warm up both, then measure each twice and keep the best. */
		run_floor(key, plain, size, n / 10 + 1);
		run_env(k, ring, plain, size, n / 10 + 1);
		tf = run_floor(key, plain, size, n);
		te = run_env(k, ring, plain, size, n);
		double tf2 = run_floor(key, plain, size, n), te2 = run_env(k, ring, plain, size, n);
		tf = tf2 < tf ? tf2 : tf;
		te = te2 < te ? te2 : te;
		parts(size, n, &tb, &tj);
		ratio = tf / te;
		/* The parts are timed apart from the whole: noise can make them
		 * add up to a little more than it. */
		double rest = te - tb > 0 ? te - tb : 0;
		char tg[16] = "      -";
		if (cases[c].target > 0)
			snprintf(tg, sizeof(tg), "%6.2fx", cases[c].target);
		printf("%-6s %12.1f %12.1f %6.2fx %s   %.0f%% / %.0f%%; +%.0f%%%s\n", cases[c].name,
		       (double)size / tf / 1e6, (double)size / te / 1e6, ratio, tg, 100 * tb / te,
		       100 * rest / te, 100 * tj / te,
		       ratio >= cases[c].target ? "" : "   (target missed)");
		if (ratio < cases[c].target)
			missed++;
		free(plain);
	}
	fs_crypto_keyring_free(ring);
	fs_crypto_spacekey_free(k);
	return missed;
}

static void bench_unlock(void)
{
	fs_kdf_params p = {FS_CRYPTO_KDF_OPS_DEFAULT, FS_CRYPTO_KDF_MEM_DEFAULT};
	uint8_t blob[FS_CRYPTO_KEYFILE_BYTES];
	const char pass[] = "bench passphrase";
	fs_key *m = NULL;
	double best = 1e9, t;
	int r, n = quick ? 1 : 3;

	if (quick)
		p = fs_crypto_kdf_params_min();
	if ((r = fs_crypto_keyfile_create(pass, strlen(pass), &p, blob, NULL, NULL)) != FS_OK)
		die("keyfile", r);
	for (int i = 0; i < n; i++) {
		t = now();
		if ((r = fs_crypto_keyfile_unlock(blob, sizeof(blob), pass, strlen(pass), &m,
		                                  NULL)) != FS_OK)
			die("unlock", r);
		t = now() - t;
		best = t < best ? t : best;
		fs_crypto_key_free(m);
	}
	printf("key file unlock, Argon2id ops=%llu mem=%llu MiB: %.3f s (best of %d; target "
	       "0.3-1 s)%s\n",
	       (unsigned long long)p.opslimit, (unsigned long long)(p.memlimit >> 20), best, n,
	       quick || (best >= 0.3 && best <= 1.0) ? "" : "   (target missed)");
}

int main(int argc, char **argv)
{
	quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
	if (fs_crypto_init() != FS_OK)
		die("init", FS_E_CRYPTO_INIT);
	bench_env();
	bench_unlock();
	return 0;
}
