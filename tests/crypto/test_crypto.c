/*
 * tests/crypto: known-answer vectors, round trips, every single-bit flip of
 * an envelope, key file errors, passphrase change, identity and space key
 * wrapping and sealing, a marker that must never leak, process hardening.
 * Argument: an optional cmocka test-name filter ("kat_*"), so ctest can run
 * groups in parallel.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
/* cmocka needs the four headers above first. */
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "crypto_int.h"

#include <modp_b64.h>

#define SPACE "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
#define DOC   "8f1c000000000000000000000000beef"
#define PASS  "correct horse battery staple"

/* ---- vectors file ---- */

static char *vec_text;

static const char *vec(const char *name)
{
	static char val[4096];
	size_t nl = strlen(name);
	const char *p = vec_text;

	while (p && *p) {
		const char *e = strchr(p, '\n');
		size_t ll = e ? (size_t)(e - p) : strlen(p);
		if (ll > nl + 3 && strncmp(p, name, nl) == 0 && strncmp(p + nl, " = ", 3) == 0) {
			size_t vl = ll - nl - 3;
			assert_true(vl < sizeof(val));
			memcpy(val, p + nl + 3, vl);
			val[vl] = '\0';
			return val;
		}
		p = e ? e + 1 : NULL;
	}
	fail_msg("vector %s missing", name);
	return NULL;
}

static size_t vec_hex(const char *name, uint8_t *out, size_t max)
{
	size_t n = 0;
	const char *h = vec(name);
	assert_int_equal(sodium_hex2bin(out, max, h, strlen(h), NULL, &n, NULL), 0);
	return n;
}

static int load_vectors(void **state)
{
	FILE *f = fopen(FS_VECTORS, "rb");
	long n;

	(void)state;
	if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET))
		return -1;
	vec_text = calloc(1, (size_t)n + 1);
	if (vec_text == NULL || fread(vec_text, 1, (size_t)n, f) != (size_t)n)
		return -1;
	fclose(f);
	return fs_crypto_init() == FS_OK ? 0 : -1;
}

static int free_vectors(void **state)
{
	(void)state;
	free(vec_text);
	return 0;
}

/* ---- helpers ---- */

static fs_space_key *fixed_key(const char *space, const char *kid)
{
	uint8_t k[32];
	fs_space_key *sk = NULL;
	for (int i = 0; i < 32; i++)
		k[i] = (uint8_t)i;
	assert_int_equal(fs_crypto_spacekey_from_bytes(space, kid, k, &sk, NULL), FS_OK);
	return sk;
}

static fs_keyring *ring_of(const fs_space_key *a, const fs_space_key *b)
{
	fs_keyring *ring = NULL;
	assert_int_equal(fs_crypto_keyring_new(&ring, NULL), FS_OK);
	if (a)
		assert_int_equal(fs_crypto_keyring_add(ring, a, NULL), FS_OK);
	if (b)
		assert_int_equal(fs_crypto_keyring_add(ring, b, NULL), FS_OK);
	return ring;
}

static int open_env(const fs_keyring *ring, const char *space, const char *doc, const char *env,
                    size_t len)
{
	uint8_t *p = NULL;
	size_t pl = 0;
	fs_errbuf eb;
	int r = fs_crypto_env_open(ring, space, doc, env, len, &p, &pl, &eb);
	if (r == FS_OK)
		fs_crypto_plain_free(p, pl);
	else
		assert_null(p);
	assert_true(r == FS_OK || eb.code == r);
	return r;
}

/* Splits an envelope into kid, nonce and ciphertext (all caller's). */
static void split_env(const char *env, char kid[FS_CRYPTO_KID_MAX], uint8_t nonce[24], uint8_t **ct,
                      size_t *ct_len)
{
	cJSON *j = cJSON_Parse(env);
	const char *n, *c;
	size_t nl = 0;

	assert_non_null(j);
	snprintf(kid, FS_CRYPTO_KID_MAX, "%s", cJSON_GetObjectItem(j, "k")->valuestring);
	n = cJSON_GetObjectItem(j, "n")->valuestring;
	c = cJSON_GetObjectItem(j, "c")->valuestring;
	assert_int_equal(sodium_base642bin(nonce, 24, n, strlen(n), NULL, &nl, NULL,
	                                   sodium_base64_VARIANT_ORIGINAL),
	                 0);
	assert_int_equal(nl, 24);
	*ct = malloc(strlen(c));
	assert_int_equal(sodium_base642bin(*ct, strlen(c), c, strlen(c), NULL, ct_len, NULL,
	                                   sodium_base64_VARIANT_ORIGINAL),
	                 0);
	cJSON_Delete(j);
}

/* Builds an envelope from parts, as the format says. Caller frees. */
static char *make_env(const char *fs, const char *kid, const uint8_t *nonce, size_t nl,
                      const uint8_t *ct, size_t cl)
{
	size_t nb = sodium_base64_ENCODED_LEN(nl, sodium_base64_VARIANT_ORIGINAL);
	size_t cb = sodium_base64_ENCODED_LEN(cl, sodium_base64_VARIANT_ORIGINAL);
	char *n64 = malloc(nb), *c64 = malloc(cb), *out = malloc(nb + cb + 128);

	sodium_bin2base64(n64, nb, nonce, nl, sodium_base64_VARIANT_ORIGINAL);
	sodium_bin2base64(c64, cb, ct, cl, sodium_base64_VARIANT_ORIGINAL);
	sprintf(out, "{\"fs\":%s,\"k\":\"%s\",\"n\":\"%s\",\"c\":\"%s\"}", fs, kid, n64, c64);
	free(n64);
	free(c64);
	return out;
}

static char *seal(const fs_space_key *k, const char *doc, const char *plain)
{
	char *env = NULL;
	size_t n = 0;
	assert_int_equal(
	    fs_crypto_env_seal(k, doc, (const uint8_t *)plain, strlen(plain), &env, &n, NULL),
	    FS_OK);
	assert_int_equal(strlen(env), n);
	return env;
}

/* ---- known answers ---- */

/* The associated data built byte by byte from docs/envelope.md. */
static size_t doc_ad(const char *space, const char *kid, const char *doc, uint8_t *ad)
{
	const char *parts[3] = {space, kid, doc};
	size_t o = 0;
	ad[o++] = 1;
	for (int i = 0; i < 3; i++) {
		uint32_t l = (uint32_t)strlen(parts[i]);
		ad[o++] = (uint8_t)l;
		ad[o++] = (uint8_t)(l >> 8);
		ad[o++] = (uint8_t)(l >> 16);
		ad[o++] = (uint8_t)(l >> 24);
		memcpy(ad + o, parts[i], l);
		o += l;
	}
	return o;
}

static void kat_envelope(void **state)
{
	uint8_t key[32], want_nonce[24], nonce[24], ad[256], *ct, *pt;
	char space[80], kid[80], doc[80], plain[256], kid2[FS_CRYPTO_KID_MAX], *env = NULL;
	fs_space_key *sk = NULL;
	size_t n, cl, adl;
	unsigned long long pl;

	(void)state;
	snprintf(space, sizeof(space), "%s", vec("env.space"));
	snprintf(kid, sizeof(kid), "%s", vec("env.kid"));
	snprintf(doc, sizeof(doc), "%s", vec("env.id"));
	snprintf(plain, sizeof(plain), "%s", vec("env.plain"));
	assert_int_equal(vec_hex("env.key", key, 32), 32);
	assert_int_equal(vec_hex("env.nonce", want_nonce, 24), 24);
	assert_int_equal(fs_crypto_spacekey_from_bytes(space, kid, key, &sk, NULL), FS_OK);

	assert_int_equal(fs_crypto_env_seal_fixed(sk, doc, (uint8_t *)plain, strlen(plain),
	                                          want_nonce, &env, &n, NULL),
	                 FS_OK);
	assert_string_equal(env, vec("env.envelope"));
	free(env);
	assert_int_equal(fs_crypto_env_seal_fixed(sk, doc, NULL, 0, want_nonce, &env, &n, NULL),
	                 FS_OK);
	assert_string_equal(env, vec("env.envelope_empty"));
	free(env);

	/* Independent of crypto/: the documented nonce, AD and AEAD. */
	split_env(vec("env.envelope"), kid2, nonce, &ct, &cl);
	assert_string_equal(kid2, kid);
	assert_memory_equal(nonce, want_nonce, 24);
	adl = doc_ad(space, kid, doc, ad);
	pt = malloc(cl);
	assert_int_equal(
	    crypto_aead_xchacha20poly1305_ietf_decrypt(pt, &pl, NULL, ct, cl, ad, adl, nonce, key),
	    0);
	assert_int_equal(pl, strlen(plain));
	assert_memory_equal(pt, plain, pl);
	free(pt);
	free(ct);

	fs_keyring *ring = ring_of(sk, NULL);
	const char *e = vec("env.envelope");
	assert_int_equal(open_env(ring, space, doc, e, strlen(e)), FS_OK);
	fs_crypto_keyring_free(ring);
	fs_crypto_spacekey_free(sk);
}

static void kat_keyfile(void **state)
{
	uint8_t salt[16], nonce[24], master[32], want[128], blob[128];
	fs_kdf_params kp;
	fs_key *mk = NULL;
	const char *pass;

	(void)state;
	kp.opslimit = strtoull(vec("kf.ops"), NULL, 10);
	kp.memlimit = strtoull(vec("kf.mem"), NULL, 10);
	vec_hex("kf.salt", salt, 16);
	vec_hex("kf.nonce", nonce, 24);
	vec_hex("kf.master", master, 32);
	assert_int_equal(vec_hex("kf.blob", want, 128), 128);
	pass = vec("kf.pass");
	assert_int_equal(fs_crypto_keyfile_create_fixed(pass, strlen(pass), &kp, salt, nonce,
	                                                master, blob, NULL),
	                 FS_OK);
	assert_memory_equal(blob, want, 128);
	pass = vec("kf.pass");
	assert_int_equal(fs_crypto_keyfile_unlock(want, 128, pass, strlen(pass), &mk, NULL), FS_OK);
	assert_memory_equal(fs_crypto_key_bytes(mk), master, 32);
	fs_crypto_key_free(mk);
}

static fs_key *vec_master(void)
{
	uint8_t blob[128];
	fs_key *mk = NULL;
	vec_hex("kf.blob", blob, 128);
	assert_int_equal(fs_crypto_keyfile_unlock(blob, 128, PASS, strlen(PASS), &mk, NULL), FS_OK);
	return mk;
}

static void kat_identity(void **state)
{
	uint8_t bsk[32], seed[32], nonce[24], bpk[32], spk[32], wbpk[32], wspk[32], sig[64];
	uint8_t want[FS_CRYPTO_IDENTITY_WRAPPED_BYTES], wid[FS_CRYPTO_IDENTITY_WRAPPED_BYTES];
	char fp[FS_CRYPTO_FINGERPRINT_MAX], msg[128];
	fs_identity *id = NULL, *id2 = NULL;
	fs_key *mk = vec_master();

	(void)state;
	vec_hex("id.box_sk", bsk, 32);
	vec_hex("id.sign_seed", seed, 32);
	vec_hex("id.nonce", nonce, 24);
	assert_int_equal(fs_crypto_identity_from_seeds(bsk, seed, &id, NULL), FS_OK);
	fs_crypto_identity_public(id, bpk, spk);
	vec_hex("id.box_pk", wbpk, 32);
	vec_hex("id.sign_pk", wspk, 32);
	assert_memory_equal(bpk, wbpk, 32);
	assert_memory_equal(spk, wspk, 32);
	assert_int_equal(fs_crypto_fingerprint(bpk, spk, fp), FS_OK);
	assert_string_equal(fp, vec("id.fingerprint"));

	snprintf(msg, sizeof(msg), "%s", vec("id.msg"));
	assert_int_equal(fs_crypto_sign(id, "visit", (uint8_t *)msg, strlen(msg), sig, NULL),
	                 FS_OK);
	uint8_t wsig[64];
	vec_hex("id.sig", wsig, 64);
	assert_memory_equal(sig, wsig, 64);
	assert_int_equal(fs_crypto_verify(spk, "visit", (uint8_t *)msg, strlen(msg), sig, NULL),
	                 FS_OK);

	assert_int_equal(fs_crypto_identity_wrap_fixed(id, mk, nonce, wid, NULL), FS_OK);
	assert_int_equal(vec_hex("id.wrapped", want, sizeof(want)), sizeof(want));
	assert_memory_equal(wid, want, sizeof(want));
	assert_int_equal(fs_crypto_identity_unwrap(want, sizeof(want), mk, &id2, NULL), FS_OK);
	assert_memory_equal(id2->sign_sk, id->sign_sk, sizeof(id->sign_sk));
	assert_memory_equal(id2->box_sk, id->box_sk, sizeof(id->box_sk));
	fs_crypto_identity_free(id);
	fs_crypto_identity_free(id2);
	fs_crypto_key_free(mk);
}

static void kat_spacekey(void **state)
{
	uint8_t nonce[24], want[FS_CRYPTO_SPACEKEY_WRAPPED_MAX],
	    got[FS_CRYPTO_SPACEKEY_WRAPPED_MAX];
	fs_space_key *sk = fixed_key(SPACE, "1-0011223344556677"), *sk2 = NULL;
	fs_key *mk = vec_master();
	size_t n = 0, wn;

	(void)state;
	vec_hex("sk.nonce", nonce, 24);
	wn = vec_hex("sk.wrapped", want, sizeof(want));
	assert_int_equal(fs_crypto_spacekey_wrap_fixed(sk, mk, nonce, got, &n, NULL), FS_OK);
	assert_int_equal(n, wn);
	assert_memory_equal(got, want, n);
	assert_int_equal(fs_crypto_spacekey_unwrap(want, wn, mk, &sk2, NULL), FS_OK);
	assert_string_equal(fs_crypto_spacekey_kid(sk2), "1-0011223344556677");
	assert_string_equal(fs_crypto_spacekey_space(sk2), SPACE);
	assert_memory_equal(sk2->key, sk->key, 32);
	fs_crypto_spacekey_free(sk);
	fs_crypto_spacekey_free(sk2);
	fs_crypto_key_free(mk);
}

/* ---- envelope ---- */

/*
 * The envelope's base64 against stringencoders' table codec, which it uses
 * for tails and on CPUs without AVX2: the same text for every length, the
 * same bytes back, and the same verdict on every byte value at positions
 * inside the vector steps and in the tail.
 */
static void env_base64(void **state)
{
	(void)state;
	enum { BIG = 100003 };
	uint8_t *bin = malloc(BIG), *got = malloc(BIG + 2), *ref = malloc(BIG + 2);
	char *txt = malloc(BIG / 3 * 4 + 8), *mtxt = malloc(BIG / 3 * 4 + 8);
	size_t lens[700], nl = 0;

	assert_non_null(bin);
	assert_non_null(got);
	assert_non_null(ref);
	assert_non_null(txt);
	assert_non_null(mtxt);
	for (size_t n = 0; n < 600; n++)
		lens[nl++] = n;
	for (size_t n = 4090; n < 4100; n++)
		lens[nl++] = n;
	lens[nl++] = 65536;
	lens[nl++] = BIG;
	randombytes_buf(bin, BIG);
	for (size_t k = 0; k < nl; k++) {
		size_t n = lens[k], t = fs_crypto_b64_encode(txt, bin, n);
		assert_int_equal(t, modp_b64_encode(mtxt, (const char *)bin, n));
		assert_int_equal(txt[t], '\0');
		assert_memory_equal(txt, mtxt, t);
		assert_int_equal(fs_crypto_b64_decode(got, txt, t), n);
		if (n)
			assert_memory_equal(got, bin, n);
	}
	/* every byte value at positions in the first vector steps, at their
	 * edges, and in the last block (with its padding) */
	size_t n = 1000, t = fs_crypto_b64_encode(txt, bin, n);
	size_t pos[] = {0,   1,    5,      15,     16,     17,     31,    32,    33,    63,   64,
	                100, 1290, t - 45, t - 44, t - 13, t - 12, t - 5, t - 3, t - 2, t - 1};
	for (size_t p = 0; p < sizeof(pos) / sizeof(pos[0]); p++) {
		for (int c = 0; c < 256; c++) {
			char keep = txt[pos[p]];
			size_t a, b;
			txt[pos[p]] = (char)c;
			a = fs_crypto_b64_decode(got, txt, t);
			b = modp_b64_decode((char *)ref, txt, t);
			txt[pos[p]] = keep;
			if (b == (size_t)-1) {
				assert_int_equal(a, SIZE_MAX);
			} else {
				assert_int_equal(a, b);
				assert_memory_equal(got, ref, b);
			}
		}
	}
	/* the portable path agrees with itself on the same text */
	fs_crypto_b64_force_portable(1);
	assert_int_equal(fs_crypto_b64_encode(mtxt, bin, BIG), BIG / 3 * 4 + 4);
	fs_crypto_b64_force_portable(0);
	assert_int_equal(fs_crypto_b64_encode(txt, bin, BIG), BIG / 3 * 4 + 4);
	assert_memory_equal(txt, mtxt, BIG / 3 * 4 + 4);
	free(bin);
	free(got);
	free(ref);
	free(txt);
	free(mtxt);
}

static void env_roundtrip(void **state)
{
	static const size_t sizes[] = {0, 1, 15, 16, 17, 1000, 65537, 300000};
	fs_space_key *k1 = NULL, *k2 = NULL;
	fs_keyring *ring;
	char *e1, *e2;

	(void)state;
	assert_int_equal(fs_crypto_spacekey_new(SPACE, 1, &k1, NULL), FS_OK);
	assert_int_equal(fs_crypto_spacekey_new(SPACE, 2, &k2, NULL), FS_OK);
	assert_int_equal(strncmp(fs_crypto_spacekey_kid(k2), "2-", 2), 0);
	assert_int_equal(strlen(fs_crypto_spacekey_kid(k2)), 18);
	ring = ring_of(k1, k2);
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		uint8_t *in = malloc(sizes[i] + 1), *out = NULL;
		size_t n = 0, ol = 0;
		char *env = NULL;
		randombytes_buf(in, sizes[i] + 1);
		/* Records sealed under either key version open through the ring. */
		assert_int_equal(
		    fs_crypto_env_seal(i % 2 ? k1 : k2, DOC, in, sizes[i], &env, &n, NULL), FS_OK);
		assert_int_equal(fs_crypto_env_open(ring, SPACE, DOC, env, n, &out, &ol, NULL),
		                 FS_OK);
		assert_int_equal(ol, sizes[i]);
		if (ol)
			assert_memory_equal(out, in, ol);
		assert_int_equal(out[ol], 0);
		fs_crypto_plain_free(out, ol);
		free(env);
		free(in);
	}
	/* Random nonces: the same record twice gives two envelopes. */
	e1 = seal(k1, DOC, "same");
	e2 = seal(k1, DOC, "same");
	assert_string_not_equal(e1, e2);
	free(e1);
	free(e2);
	/* Members added on the wire are accepted and ignored. */
	{
		char *e = seal(k1, DOC, "{}"), *w = malloc(strlen(e) + 200);
		sprintf(w,
		        "{\"_id\":\"%s\",\"_rev\":\"2-abc\",\"_revisions\":{\"start\":2,"
		        "\"ids\":[\"abc\",\"def\"]},%s",
		        DOC, e + 1);
		assert_int_equal(open_env(ring, SPACE, DOC, w, strlen(w)), FS_OK);
		sprintf(w, "{\"_id\":\"other\",%s", e + 1);
		assert_int_equal(open_env(ring, SPACE, DOC, w, strlen(w)), FS_E_MISBOUND);
		/* Whitespace, member order and the wire's members in any place. */
		sprintf(w, " {\n\t\"_rev\" : \"1-x\" ,\"_id\":\"%s\", %s \r\n", DOC, e + 1);
		assert_int_equal(open_env(ring, SPACE, DOC, w, strlen(w)), FS_OK);
		/* An escaped _id is compared after unescaping. */
		sprintf(w, "{\"_id\":\"\\u0038%s\",%s", DOC + 1, e + 1);
		assert_int_equal(open_env(ring, SPACE, DOC, w, strlen(w)), FS_OK);
		free(w);
		free(e);
	}
	fs_crypto_keyring_free(ring);
	fs_crypto_spacekey_free(k1);
	fs_crypto_spacekey_free(k2);
}

static void env_bitflips(void **state)
{
	fs_space_key *k = fixed_key(SPACE, "1-0011223344556677");
	fs_keyring *ring = ring_of(k, NULL);
	char *env = seal(k, DOC, "{\"note\":\"short\"}"), kid[FS_CRYPTO_KID_MAX], *e;
	uint8_t nonce[24], *ct;
	size_t cl;
	int tampered = 0;

	(void)state;
	split_env(env, kid, nonce, &ct, &cl);
	e = make_env("1", kid, nonce, 24, ct, cl);
	assert_string_equal(e, env);
	assert_int_equal(open_env(ring, SPACE, DOC, e, strlen(e)), FS_OK);
	free(e);

	/* Ciphertext and tag: every bit. */
	for (size_t bit = 0; bit < cl * 8; bit++) {
		ct[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		e = make_env("1", kid, nonce, 24, ct, cl);
		assert_int_equal(open_env(ring, SPACE, DOC, e, strlen(e)), FS_E_TAMPERED);
		free(e);
		ct[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		tampered++;
	}
	/* Nonce: every bit. */
	for (size_t bit = 0; bit < 24 * 8; bit++) {
		uint8_t nn[24];
		memcpy(nn, nonce, 24);
		nn[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		e = make_env("1", kid, nn, 24, ct, cl);
		assert_int_equal(open_env(ring, SPACE, DOC, e, strlen(e)), FS_E_TAMPERED);
		free(e);
		tampered++;
	}
	/* Space id and _id: every bit that leaves a valid id. The associated
	 * data binds both, so an envelope moved as is does not authenticate. */
	const char *names[2] = {SPACE, DOC};
	for (int w = 0; w < 2; w++) {
		for (size_t bit = 0; bit < strlen(names[w]) * 8; bit++) {
			char v[64];
			snprintf(v, sizeof(v), "%s", names[w]);
			v[bit / 8] ^= (char)(1u << (bit % 8));
			if (v[bit / 8] == 0 ||
			    (w == 0 && !fs_crypto_label_ok(v, FS_CRYPTO_SPACE_ID_MAX)))
				continue;
			const char *sp = w == 0 ? v : SPACE, *dc = w == 1 ? v : DOC;
			assert_int_equal(open_env(ring, sp, dc, env, strlen(env)), FS_E_TAMPERED);
			tampered++;
		}
	}
	/* kid: every bit that leaves a valid kid, with the same key filed under
	 * the altered kid so that only the associated data differs. */
	for (size_t bit = 0; bit < strlen(kid) * 8; bit++) {
		char v[FS_CRYPTO_KID_MAX];
		snprintf(v, sizeof(v), "%s", kid);
		v[bit / 8] ^= (char)(1u << (bit % 8));
		if (!fs_crypto_label_ok(v, FS_CRYPTO_KID_MAX))
			continue;
		fs_space_key *k2 = fixed_key(SPACE, v);
		fs_keyring *r2 = ring_of(k2, NULL);
		e = make_env("1", v, nonce, 24, ct, cl);
		assert_int_equal(open_env(r2, SPACE, DOC, e, strlen(e)), FS_E_TAMPERED);
		assert_int_equal(open_env(ring, SPACE, DOC, e, strlen(e)), FS_E_UNKNOWN_KID);
		free(e);
		fs_crypto_keyring_free(r2);
		fs_crypto_spacekey_free(k2);
		tampered++;
	}
	/* The associated data, every bit, including version and lengths. */
	{
		uint8_t ad[FS_CRYPTO_ENV_AD_MAX], *pt = malloc(cl);
		size_t adl = fs_crypto_env_ad(SPACE, kid, DOC, ad);
		assert_int_equal(crypto_aead_xchacha20poly1305_ietf_decrypt(pt, NULL, NULL, ct, cl,
		                                                            ad, adl, nonce, k->key),
		                 0);
		for (size_t bit = 0; bit < adl * 8; bit++) {
			ad[bit / 8] ^= (uint8_t)(1u << (bit % 8));
			assert_int_equal(crypto_aead_xchacha20poly1305_ietf_decrypt(
			                     pt, NULL, NULL, ct, cl, ad, adl, nonce, k->key),
			                 -1);
			ad[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		}
		free(pt);
	}
	/* Version: any other value is refused before decryption. */
	e = make_env("2", kid, nonce, 24, ct, cl);
	assert_int_equal(open_env(ring, SPACE, DOC, e, strlen(e)), FS_E_ENV_VERSION);
	free(e);
	e = make_env("0", kid, nonce, 24, ct, cl);
	assert_int_equal(open_env(ring, SPACE, DOC, e, strlen(e)), FS_E_ENV_VERSION);
	free(e);
	assert_true(tampered > 400);
	free(ct);
	free(env);
	fs_crypto_keyring_free(ring);
	fs_crypto_spacekey_free(k);
}

/* Copies tmpl to buf with its one "%s" replaced by kid. */
static void subst(char *buf, size_t size, const char *tmpl, const char *kid)
{
	const char *p = strstr(tmpl, "%s");
	assert_non_null(p);
	assert_true(strlen(tmpl) + strlen(kid) < size);
	memcpy(buf, tmpl, (size_t)(p - tmpl));
	strcpy(buf + (p - tmpl), kid);
	strcat(buf, p + 2);
}

static void env_bad_input(void **state)
{
	fs_space_key *k = fixed_key(SPACE, "1-0011223344556677");
	fs_keyring *ring = ring_of(k, NULL);
	char *env = seal(k, DOC, "{\"note\":\"a record of some length\"}"), kid[FS_CRYPTO_KID_MAX];
	char *e, buf[1024];
	uint8_t nonce[24], *ct;
	size_t cl, len = strlen(env);

	(void)state;
	split_env(env, kid, nonce, &ct, &cl);
	/* Every prefix is truncated. */
	for (size_t i = 0; i < len; i++)
		assert_int_equal(open_env(ring, SPACE, DOC, env, i), FS_E_TRUNCATED);
	assert_int_equal(open_env(ring, SPACE, DOC, NULL, 0), FS_E_TRUNCATED);
	e = make_env("1", kid, nonce, 16, ct, cl);
	assert_int_equal(open_env(ring, SPACE, DOC, e, strlen(e)), FS_E_TRUNCATED);
	free(e);
	e = make_env("1", kid, nonce, 24, ct, 15);
	assert_int_equal(open_env(ring, SPACE, DOC, e, strlen(e)), FS_E_TRUNCATED);
	free(e);
	e = make_env("1", kid, nonce, 24, ct, 0);
	assert_int_equal(open_env(ring, SPACE, DOC, e, strlen(e)), FS_E_TRUNCATED);
	free(e);
	/* Ciphertext cut short but long enough for a tag: not authentic. */
	e = make_env("1", kid, nonce, 24, ct, cl - 1);
	assert_int_equal(open_env(ring, SPACE, DOC, e, strlen(e)), FS_E_TAMPERED);
	free(e);

	/* Bad base64 in n and c; unpadded and embedded junk too. */
	const char *bad[] = {
	    "{\"fs\":1,\"k\":\"%s\",\"n\":\"!!!!\",\"c\":\"AAAA\"}",
	    "{\"fs\":1,\"k\":\"%s\",\"n\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\",\"c\":\"AAAA\"}",
	    "{\"fs\":1,\"k\":\"%s\",\"n\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAA AAAA\",\"c\":\"AAAA\"}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		subst(buf, sizeof(buf), bad[i], kid);
		assert_int_equal(open_env(ring, SPACE, DOC, buf, strlen(buf)), FS_E_BASE64);
	}
	/* Bad base64 in c behind a valid nonce and kid. */
	{
		char n64[64], *good = make_env("1", kid, nonce, 24, ct, cl);
		/* Set bits under the padding ("AB==", "AAB=") are not canonical. */
		const char *cbad[] = {"AA*A", "AAAAA", "AAA",   "AAAA=AAA", "AB==",  "AAB=",
		                      "A===", "====",  " AAAA", "AAAA ",    "AA\\nA"};
		sodium_bin2base64(n64, sizeof(n64), nonce, 24, sodium_base64_VARIANT_ORIGINAL);
		for (size_t i = 0; i < sizeof(cbad) / sizeof(cbad[0]); i++) {
			snprintf(buf, sizeof(buf),
			         "{\"fs\":1,\"k\":\"%s\",\"n\":\"%s\",\"c\":\"%s\"}", kid, n64,
			         cbad[i]);
			assert_int_equal(open_env(ring, SPACE, DOC, buf, strlen(buf)), FS_E_BASE64);
		}
		free(good);
	}
	/* A nonce that is too long is not an envelope of this version. */
	{
		uint8_t longn[25] = {0};
		e = make_env("1", kid, longn, 25, ct, cl);
		assert_int_equal(open_env(ring, SPACE, DOC, e, strlen(e)), FS_E_INPUT);
		free(e);
	}
	/* Members: unknown, missing, repeated, wrong type, not an object. */
	const char *shape[] = {
	    "{\"fs\":1,\"k\":\"%s\",\"n\":\"AAAA\",\"c\":\"AAAA\",\"x\":1}",
	    "{\"fs\":1,\"k\":\"%s\",\"n\":\"AAAA\"}",
	    "{\"fs\":1,\"k\":\"%s\",\"k\":\"x\",\"n\":\"AAAA\",\"c\":\"AAAA\"}",
	    "{\"fs\":1,\"k\":\"%s\",\"n\":1,\"c\":\"AAAA\"}",
	    "{\"fs\":\"1\",\"k\":\"%s\",\"n\":\"AAAA\",\"c\":\"AAAA\"}",
	    "{\"k\":\"%s\",\"n\":\"AAAA\",\"c\":\"AAAA\"}",
	    "{\"fs\":1,\"k\":\"%s\",\"n\":\"AAAA\",\"c\":\"AAAA\",\"_rev\":3}",
	    "{\"fs\":1,\"k\":\"%s\",\"n\":\"AAAA\",\"c\":\"AAAA\",\"_revisions\":[]}",
	    "{\"fs\":1,\"k\":\"%s/\",\"n\":\"AAAA\",\"c\":\"AAAA\"}",
	    "[\"%s\"]",
	    "\"%s\"",
	};
	for (size_t i = 0; i < sizeof(shape) / sizeof(shape[0]); i++) {
		subst(buf, sizeof(buf), shape[i], kid);
		assert_int_equal(open_env(ring, SPACE, DOC, buf, strlen(buf)), FS_E_INPUT);
	}
	/* Unknown version and unknown kid. */
	snprintf(buf, sizeof(buf), "{\"fs\":7,\"z\":1}");
	assert_int_equal(open_env(ring, SPACE, DOC, buf, strlen(buf)), FS_E_ENV_VERSION);
	e = make_env("1", "9-ffffffffffffffff", nonce, 24, ct, cl);
	assert_int_equal(open_env(ring, SPACE, DOC, e, strlen(e)), FS_E_UNKNOWN_KID);
	free(e);
	/* Deeply nested input is refused before cJSON recurses. */
	memset(buf, '[', 200);
	memset(buf + 200, ']', 200);
	assert_int_equal(open_env(ring, SPACE, DOC, buf, 400), FS_E_TOOBIG);
	/* Bad arguments. */
	assert_int_equal(open_env(ring, "bad space", DOC, env, len), FS_E_ARG);
	assert_int_equal(open_env(ring, SPACE, "", env, len), FS_E_ARG);
	free(ct);
	free(env);
	fs_crypto_keyring_free(ring);
	fs_crypto_spacekey_free(k);
}

/* Every one-byte change of an envelope, in JSON-significant ways, goes
 * through the direct scan or the cJSON parser without a crash (ASan) and
 * ends in a documented error; whitespace where JSON allows it still opens. */
static void env_mutations(void **state)
{
	static const char subs[] = {' ', '"', '\\', '}', '{', ',', ':', 'A', '=', '\n', 1, 0};
	fs_space_key *k = fixed_key(SPACE, "1-0011223344556677");
	fs_keyring *ring = ring_of(k, NULL);
	char *env = seal(k, DOC, "{\"note\":\"mutate me\"}");
	size_t len = strlen(env);
	char *e = malloc(len + 2);
	int opened = 0;

	(void)state;
	for (size_t i = 0; i < len; i++) {
		for (size_t s = 0; s < sizeof(subs); s++) {
			for (int insert = 0; insert < 2; insert++) {
				memcpy(e, env, i);
				e[i] = subs[s];
				memcpy(e + i + insert, env + i + (insert ? 0 : 1),
				       len - i - (insert ? 0 : 1));
				int r = open_env(ring, SPACE, DOC, e, len + (size_t)insert);
				assert_true(r == FS_OK || r == FS_E_INPUT || r == FS_E_TRUNCATED ||
				            r == FS_E_BASE64 || r == FS_E_TAMPERED ||
				            r == FS_E_UNKNOWN_KID || r == FS_E_ENV_VERSION);
				opened += r == FS_OK;
			}
		}
	}
	/* At least the spaces inserted between tokens opened. */
	assert_true(opened >= 8);
	free(e);
	free(env);
	fs_crypto_keyring_free(ring);
	fs_crypto_spacekey_free(k);
}

/* Nonces from the pool never repeat, across refills and across fork: a
 * child must not hand out the nonces its parent is about to use. */
static void env_nonces(void **state)
{
	enum { N = 600 }; /* more than three refills of the pool */
	static uint8_t seen[N][24];
	uint8_t child[24], next[24];
	int fds[2], st = 0;
	pid_t pid;

	(void)state;
	for (int i = 0; i < N; i++) {
		fs_crypto_nonce(seen[i]);
		for (int j = 0; j < i; j++)
			assert_memory_not_equal(seen[i], seen[j], 24);
	}
	assert_int_equal(pipe(fds), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		fs_crypto_nonce(child);
		_exit(write(fds[1], child, 24) == 24 ? 0 : 1);
	}
	close(fds[1]);
	assert_int_equal(read(fds[0], child, 24), 24);
	close(fds[0]);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	fs_crypto_nonce(next);
	assert_memory_not_equal(child, next, 24);
	for (int j = 0; j < N; j++)
		assert_memory_not_equal(child, seen[j], 24);
}

static void env_size_limits(void **state)
{
	fs_space_key *k = fixed_key(SPACE, "1-0011223344556677");
	fs_keyring *ring = ring_of(k, NULL);
	uint8_t *big = calloc(1, FS_CRYPTO_RECORD_MAX + 1), *out = NULL;
	char *env = NULL, *huge;
	size_t n = 0, ol = 0;
	fs_errbuf eb;

	(void)state;
	assert_int_equal(fs_crypto_env_seal(k, DOC, big, FS_CRYPTO_RECORD_MAX + 1, &env, &n, &eb),
	                 FS_E_TOOBIG);
	assert_null(env);
	assert_int_equal(fs_crypto_env_seal(k, DOC, big, FS_CRYPTO_RECORD_MAX, &env, &n, &eb),
	                 FS_OK);
	assert_true(n <= FS_CRYPTO_ENV_MAX);
	assert_int_equal(fs_crypto_env_open(ring, SPACE, DOC, env, n, &out, &ol, &eb), FS_OK);
	assert_int_equal(ol, FS_CRYPTO_RECORD_MAX);
	fs_crypto_plain_free(out, ol);
	free(env);
	huge = malloc(FS_CRYPTO_ENV_MAX + 1);
	memset(huge, ' ', FS_CRYPTO_ENV_MAX + 1);
	huge[0] = '{';
	assert_int_equal(
	    fs_crypto_env_open(ring, SPACE, DOC, huge, FS_CRYPTO_ENV_MAX + 1, &out, &ol, &eb),
	    FS_E_TOOBIG);
	free(huge);
	/* An envelope within the size limit whose ciphertext decodes to more
	 * than a record. */
	{
		size_t cl = FS_CRYPTO_RECORD_MAX + 16 + 64;
		uint8_t nonce[24] = {0}, *ct = calloc(1, cl);
		char *e = make_env("1", "1-0011223344556677", nonce, 24, ct, cl);
		assert_int_equal(open_env(ring, SPACE, DOC, e, strlen(e)), FS_E_TOOBIG);
		free(e);
		free(ct);
	}
	char longid[FS_CRYPTO_DOC_ID_MAX + 2];
	memset(longid, 'a', sizeof(longid) - 1);
	longid[sizeof(longid) - 1] = '\0';
	assert_int_equal(fs_crypto_env_seal(k, longid, big, 1, &env, &n, &eb), FS_E_ARG);
	free(big);
	fs_crypto_keyring_free(ring);
	fs_crypto_spacekey_free(k);
}

/* ---- key file ---- */

static void keys_file_errors(void **state)
{
	fs_kdf_params kp = fs_crypto_kdf_params_min(), got;
	uint8_t blob[128], bad[129];
	fs_key *m1 = NULL, *m2 = NULL;
	fs_errbuf eb;

	(void)state;
	assert_int_equal(fs_crypto_keyfile_create(PASS, strlen(PASS), &kp, blob, &m1, &eb), FS_OK);
	assert_int_equal(fs_crypto_keyfile_params(blob, 128, &got, &eb), FS_OK);
	assert_int_equal(got.opslimit, kp.opslimit);
	assert_int_equal(got.memlimit, kp.memlimit);
	assert_int_equal(fs_crypto_keyfile_unlock(blob, 128, PASS, strlen(PASS), &m2, &eb), FS_OK);
	assert_memory_equal(fs_crypto_key_bytes(m1), fs_crypto_key_bytes(m2), 32);
	fs_crypto_key_free(m2);
	m2 = NULL;

	assert_int_equal(fs_crypto_keyfile_unlock(blob, 128, "wrong", 5, &m2, &eb),
	                 FS_E_PASSPHRASE);
	assert_null(m2);
	assert_int_equal(eb.code, FS_E_PASSPHRASE);
	assert_int_equal(fs_crypto_keyfile_unlock(blob, 128, PASS, strlen(PASS) - 1, &m2, &eb),
	                 FS_E_PASSPHRASE);
	assert_int_equal(fs_crypto_keyfile_unlock(blob, 128, "", 0, &m2, &eb), FS_E_PASSPHRASE);

	/* Damage anywhere is "damaged", never "wrong passphrase". */
	for (size_t bit = 0; bit < 128 * 8; bit++) {
		memcpy(bad, blob, 128);
		bad[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		int r = fs_crypto_keyfile_unlock(bad, 128, PASS, strlen(PASS), &m2, &eb);
		assert_true(r == FS_E_KEYFILE || (bit / 8 == 4 && r == FS_E_KEYFILE_VERSION));
		assert_null(m2);
	}
	for (size_t len = 0; len < 128; len++)
		assert_int_equal(fs_crypto_keyfile_unlock(blob, len, PASS, strlen(PASS), &m2, &eb),
		                 FS_E_KEYFILE);
	memcpy(bad, blob, 128);
	bad[128] = 0;
	assert_int_equal(fs_crypto_keyfile_unlock(bad, 129, PASS, strlen(PASS), &m2, &eb),
	                 FS_E_KEYFILE);
	assert_int_equal(fs_crypto_keyfile_unlock(NULL, 128, PASS, strlen(PASS), &m2, &eb),
	                 FS_E_KEYFILE);

	/* A newer format with a valid checksum. */
	memcpy(bad, blob, 128);
	bad[4] = 2;
	crypto_generichash(bad + 112, 16, bad, 112, NULL, 0);
	assert_int_equal(fs_crypto_keyfile_unlock(bad, 128, PASS, strlen(PASS), &m2, &eb),
	                 FS_E_KEYFILE_VERSION);
	assert_int_equal(fs_crypto_keyfile_unlock(bad, 100, PASS, strlen(PASS), &m2, &eb),
	                 FS_E_KEYFILE_VERSION);
	/* Parameters out of bounds with a valid checksum: refused before
	 * Argon2id would try to allocate them. */
	memcpy(bad, blob, 128);
	bad[16 + 6] = 1; /* memlimit 2^48 */
	crypto_generichash(bad + 112, 16, bad, 112, NULL, 0);
	assert_int_equal(fs_crypto_keyfile_unlock(bad, 128, PASS, strlen(PASS), &m2, &eb),
	                 FS_E_KEYFILE);
	/* Someone who rewrites the parameters and the checksum on purpose gets
	 * a key that does not unwrap: the AEAD binds the header. */
	memcpy(bad, blob, 128);
	bad[8] = 2; /* opslimit */
	crypto_generichash(bad + 112, 16, bad, 112, NULL, 0);
	assert_int_equal(fs_crypto_keyfile_unlock(bad, 128, PASS, strlen(PASS), &m2, &eb),
	                 FS_E_PASSPHRASE);

	kp.memlimit = 1;
	assert_int_equal(fs_crypto_keyfile_create(PASS, strlen(PASS), &kp, blob, &m2, &eb),
	                 FS_E_ARG);
	kp = fs_crypto_kdf_params_min();
	assert_int_equal(fs_crypto_keyfile_create("", 0, &kp, blob, &m2, &eb), FS_E_ARG);
	assert_null(m2);
	fs_crypto_key_free(m1);
	fs_crypto_key_free(NULL);
}

/* Saved and loaded through a real folder; atomic replace leaves no
 * temporary files; sizes are bounded. */
static void keys_file_disk(void **state)
{
	char dir[] = "/tmp/fs-crypto-test-XXXXXX", path[256], big[300];
	fs_kdf_params kp = fs_crypto_kdf_params_min();
	uint8_t blob[128], blob2[128], buf[FS_CRYPTO_KEYFILE_MAX];
	fs_key *m = NULL, *m2 = NULL;
	struct stat st;
	size_t len = 0;
	FILE *f;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/device.key", dir);
	assert_int_equal(fs_crypto_keyfile_load(path, buf, &len, NULL), FS_E_NOTFOUND);
	assert_int_equal(fs_crypto_keyfile_create(PASS, strlen(PASS), &kp, blob, &m, NULL), FS_OK);
	assert_int_equal(fs_crypto_keyfile_save(path, blob, NULL), FS_OK);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(fs_crypto_keyfile_load(path, buf, &len, NULL), FS_OK);
	assert_int_equal(len, 128);
	assert_memory_equal(buf, blob, 128);

	/* Replace with a new passphrase; the folder holds only the key file. */
	assert_int_equal(
	    fs_crypto_keyfile_rekey(buf, len, PASS, strlen(PASS), "second", 6, &kp, blob2, NULL),
	    FS_OK);
	assert_int_equal(fs_crypto_keyfile_save(path, blob2, NULL), FS_OK);
	assert_int_equal(fs_crypto_keyfile_load(path, buf, &len, NULL), FS_OK);
	assert_int_equal(fs_crypto_keyfile_unlock(buf, len, "second", 6, &m2, NULL), FS_OK);
	assert_memory_equal(fs_crypto_key_bytes(m), fs_crypto_key_bytes(m2), 32);
	DIR *d = opendir(dir);
	struct dirent *de;
	int files = 0;
	assert_non_null(d);
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			files++;
	closedir(d);
	assert_int_equal(files, 1);

	/* A file cut short on disk is damaged, not a wrong passphrase. */
	assert_int_equal(truncate(path, 100), 0);
	assert_int_equal(fs_crypto_keyfile_load(path, buf, &len, NULL), FS_OK);
	assert_int_equal(len, 100);
	fs_crypto_key_free(m2);
	m2 = NULL;
	assert_int_equal(fs_crypto_keyfile_unlock(buf, len, "second", 6, &m2, NULL), FS_E_KEYFILE);
	/* Oversized files are refused while reading. */
	f = fopen(path, "wb");
	assert_non_null(f);
	memset(big, 'x', sizeof(big));
	for (int i = 0; i < 14; i++)
		assert_int_equal(fwrite(big, 1, sizeof(big), f), sizeof(big));
	fclose(f);
	assert_int_equal(fs_crypto_keyfile_load(path, buf, &len, NULL), FS_E_KEYFILE);
	/* A folder that does not exist. */
	snprintf(path, sizeof(path), "%s/no/such/device.key", dir);
	assert_int_equal(fs_crypto_keyfile_save(path, blob, NULL), FS_E_IO);

	snprintf(path, sizeof(path), "%s/device.key", dir);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(rmdir(dir), 0);
	fs_crypto_key_free(m);
}

static void keys_rekey(void **state)
{
	fs_kdf_params kp = fs_crypto_kdf_params_min(), kp2 = kp;
	uint8_t blob[128], blob2[128], wsk[FS_CRYPTO_SPACEKEY_WRAPPED_MAX];
	uint8_t wid[FS_CRYPTO_IDENTITY_WRAPPED_BYTES];
	fs_key *m1 = NULL, *m2 = NULL;
	fs_space_key *sk = NULL, *sk2 = NULL;
	fs_identity *id = NULL, *id2 = NULL;
	fs_keyring *ring;
	char *envs[5];
	size_t wn;

	(void)state;
	assert_int_equal(fs_crypto_keyfile_create(PASS, strlen(PASS), &kp, blob, &m1, NULL), FS_OK);
	assert_int_equal(fs_crypto_spacekey_new(SPACE, 1, &sk, NULL), FS_OK);
	assert_int_equal(fs_crypto_spacekey_wrap(sk, m1, wsk, &wn, NULL), FS_OK);
	assert_int_equal(fs_crypto_identity_new(&id, NULL), FS_OK);
	assert_int_equal(fs_crypto_identity_wrap(id, m1, wid, NULL), FS_OK);
	for (int i = 0; i < 5; i++) {
		char note[64];
		snprintf(note, sizeof(note), "{\"note\":%d}", i);
		envs[i] = seal(sk, DOC, note);
	}

	/* Wrong old passphrase: nothing written. */
	memset(blob2, 0xaa, sizeof(blob2));
	assert_int_equal(
	    fs_crypto_keyfile_rekey(blob, 128, "nope", 4, "new pass", 8, &kp, blob2, NULL),
	    FS_E_PASSPHRASE);
	assert_int_equal(blob2[0], 0xaa);
	/* Rekey in place, raising the cost. */
	memcpy(blob2, blob, 128);
	kp2.opslimit = kp.opslimit + 1;
	assert_int_equal(fs_crypto_keyfile_rekey(blob2, 128, PASS, strlen(PASS), "new pass", 8,
	                                         &kp2, blob2, NULL),
	                 FS_OK);
	assert_memory_not_equal(blob2 + 24, blob + 24, 16); /* fresh salt */
	assert_int_equal(fs_crypto_keyfile_unlock(blob2, 128, PASS, strlen(PASS), &m2, NULL),
	                 FS_E_PASSPHRASE);
	assert_int_equal(fs_crypto_keyfile_unlock(blob2, 128, "new pass", 8, &m2, NULL), FS_OK);
	assert_memory_equal(fs_crypto_key_bytes(m1), fs_crypto_key_bytes(m2), 32);
	fs_kdf_params got;
	assert_int_equal(fs_crypto_keyfile_params(blob2, 128, &got, NULL), FS_OK);
	assert_int_equal(got.opslimit, kp2.opslimit);

	/* Everything under the master key is still readable. */
	assert_int_equal(fs_crypto_spacekey_unwrap(wsk, wn, m2, &sk2, NULL), FS_OK);
	assert_int_equal(fs_crypto_identity_unwrap(wid, sizeof(wid), m2, &id2, NULL), FS_OK);
	ring = ring_of(sk2, NULL);
	for (int i = 0; i < 5; i++) {
		assert_int_equal(open_env(ring, SPACE, DOC, envs[i], strlen(envs[i])), FS_OK);
		free(envs[i]);
	}
	fs_crypto_keyring_free(ring);
	fs_crypto_spacekey_free(sk);
	fs_crypto_spacekey_free(sk2);
	fs_crypto_identity_free(id);
	fs_crypto_identity_free(id2);
	fs_crypto_key_free(m1);
	fs_crypto_key_free(m2);
}

/* ---- identity and space keys ---- */

static void keys_identity(void **state)
{
	uint8_t wid[FS_CRYPTO_IDENTITY_WRAPPED_BYTES], bad[FS_CRYPTO_IDENTITY_WRAPPED_BYTES];
	uint8_t bpk[32], spk[32], bpk2[32], spk2[32], sig[64];
	char fp[FS_CRYPTO_FINGERPRINT_MAX], fp2[FS_CRYPTO_FINGERPRINT_MAX];
	fs_identity *id = NULL, *id2 = NULL, *other = NULL;
	fs_key *m = NULL, *m2 = NULL;
	fs_kdf_params kp = fs_crypto_kdf_params_min();
	uint8_t blob[128];
	const uint8_t msg[] = "visit body";

	(void)state;
	assert_int_equal(fs_crypto_keyfile_create(PASS, strlen(PASS), &kp, blob, &m, NULL), FS_OK);
	assert_int_equal(fs_crypto_keyfile_create(PASS, strlen(PASS), &kp, blob, &m2, NULL), FS_OK);
	assert_int_equal(fs_crypto_identity_new(&id, NULL), FS_OK);
	assert_int_equal(fs_crypto_identity_new(&other, NULL), FS_OK);
	assert_int_equal(fs_crypto_identity_wrap(id, m, wid, NULL), FS_OK);
	assert_int_equal(fs_crypto_identity_unwrap(wid, sizeof(wid), m, &id2, NULL), FS_OK);
	fs_crypto_identity_public(id, bpk, spk);
	fs_crypto_identity_public(id2, bpk2, spk2);
	assert_memory_equal(bpk, bpk2, 32);
	assert_memory_equal(spk, spk2, 32);
	assert_int_equal(fs_crypto_identity_wrapped_public(wid, sizeof(wid), bpk2, spk2, NULL),
	                 FS_OK);
	assert_memory_equal(spk, spk2, 32);

	/* The unwrapped identity signs what the original's public key verifies. */
	assert_int_equal(fs_crypto_sign(id2, "visit", msg, sizeof(msg), sig, NULL), FS_OK);
	assert_int_equal(fs_crypto_verify(spk, "visit", msg, sizeof(msg), sig, NULL), FS_OK);
	assert_int_equal(fs_crypto_verify(spk, "device", msg, sizeof(msg), sig, NULL),
	                 FS_E_SIGNATURE);
	assert_int_equal(fs_crypto_verify(spk, "visit", msg, sizeof(msg) - 1, sig, NULL),
	                 FS_E_SIGNATURE);
	fs_crypto_identity_public(other, NULL, spk2);
	assert_int_equal(fs_crypto_verify(spk2, "visit", msg, sizeof(msg), sig, NULL),
	                 FS_E_SIGNATURE);
	sig[10] ^= 1;
	assert_int_equal(fs_crypto_verify(spk, "visit", msg, sizeof(msg), sig, NULL),
	                 FS_E_SIGNATURE);
	assert_int_equal(fs_crypto_sign(id, "bad context!", msg, 1, sig, NULL), FS_E_ARG);
	assert_int_equal(fs_crypto_sign(id, "", msg, 1, sig, NULL), FS_E_ARG);

	/* Fingerprint: six groups of five digits, different per identity. */
	assert_int_equal(fs_crypto_fingerprint(bpk, spk, fp), FS_OK);
	assert_int_equal(strlen(fp), 35);
	for (int i = 0; i < 35; i++)
		assert_true(i % 6 == 5 ? fp[i] == ' ' : (fp[i] >= '0' && fp[i] <= '9'));
	fs_crypto_identity_public(other, bpk2, spk2);
	assert_int_equal(fs_crypto_fingerprint(bpk2, spk2, fp2), FS_OK);
	assert_string_not_equal(fp, fp2);

	/* Another master key, every bit flip, truncation: all refused. */
	fs_crypto_identity_free(id2);
	id2 = NULL;
	assert_int_equal(fs_crypto_identity_unwrap(wid, sizeof(wid), m2, &id2, NULL),
	                 FS_E_TAMPERED);
	for (size_t bit = 0; bit < sizeof(wid) * 8; bit++) {
		memcpy(bad, wid, sizeof(wid));
		bad[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		int r = fs_crypto_identity_unwrap(bad, sizeof(bad), m, &id2, NULL);
		assert_true(r == FS_E_TAMPERED || r == FS_E_KEYFILE || r == FS_E_KEYFILE_VERSION);
		assert_null(id2);
	}
	assert_int_equal(fs_crypto_identity_unwrap(wid, sizeof(wid) - 1, m, &id2, NULL),
	                 FS_E_KEYFILE);
	fs_crypto_identity_free(id);
	fs_crypto_identity_free(other);
	fs_crypto_identity_free(NULL);
	fs_crypto_key_free(m);
	fs_crypto_key_free(m2);
}

static void keys_space(void **state)
{
	uint8_t sealed[FS_CRYPTO_SPACEKEY_SEALED_MAX], bpk[32], w[FS_CRYPTO_SPACEKEY_WRAPPED_MAX];
	fs_identity *b = NULL, *c = NULL;
	fs_space_key *k = NULL, *kb = NULL, *kc = NULL, *k2 = NULL;
	fs_key *m = NULL, *m2 = NULL;
	fs_kdf_params kp = fs_crypto_kdf_params_min();
	uint8_t blob[128];
	fs_keyring *ring;
	size_t n = 0, wn = 0;
	char *env, other[FS_CRYPTO_SPACE_ID_MAX];

	(void)state;
	assert_int_equal(fs_crypto_identity_new(&b, NULL), FS_OK);
	assert_int_equal(fs_crypto_identity_new(&c, NULL), FS_OK);
	assert_int_equal(fs_crypto_spacekey_new(SPACE, 3, &k, NULL), FS_OK);
	fs_crypto_identity_public(b, bpk, NULL);
	assert_int_equal(fs_crypto_spacekey_seal(k, bpk, sealed, &n, NULL), FS_OK);

	assert_int_equal(fs_crypto_spacekey_open(sealed, n, b, SPACE, &kb, NULL), FS_OK);
	assert_string_equal(fs_crypto_spacekey_kid(kb), fs_crypto_spacekey_kid(k));
	assert_memory_equal(kb->key, k->key, 32);
	assert_int_equal(fs_crypto_spacekey_open(sealed, n, c, SPACE, &kc, NULL), FS_E_TAMPERED);
	assert_null(kc);
	fs_crypto_space_id_new(other);
	assert_int_equal(strlen(other), 32);
	assert_int_equal(fs_crypto_spacekey_open(sealed, n, b, other, &kc, NULL), FS_E_MISBOUND);
	assert_int_equal(fs_crypto_spacekey_open(sealed, 20, b, SPACE, &kc, NULL), FS_E_TRUNCATED);
	sealed[n - 1] ^= 1;
	assert_int_equal(fs_crypto_spacekey_open(sealed, n, b, SPACE, &kc, NULL), FS_E_TAMPERED);

	/* A record sealed by A opens at B with the opened key. */
	env = seal(k, DOC, "{\"note\":\"team\"}");
	ring = ring_of(kb, NULL);
	assert_int_equal(open_env(ring, SPACE, DOC, env, strlen(env)), FS_OK);
	/* Adding the same key again is fine; another key under its kid is not. */
	assert_int_equal(fs_crypto_keyring_add(ring, k, NULL), FS_OK);
	fs_space_key *imp = fixed_key(SPACE, fs_crypto_spacekey_kid(k));
	assert_int_equal(fs_crypto_keyring_add(ring, imp, NULL), FS_E_EXISTS);
	fs_crypto_spacekey_free(imp);
	fs_crypto_keyring_free(ring);
	free(env);

	/* The ring is bounded. */
	ring = ring_of(NULL, NULL);
	for (int i = 0; i <= FS_CRYPTO_KEYRING_MAX; i++) {
		fs_space_key *ki = NULL;
		assert_int_equal(fs_crypto_spacekey_new(SPACE, (uint32_t)i + 1, &ki, NULL), FS_OK);
		assert_int_equal(fs_crypto_keyring_add(ring, ki, NULL),
		                 i < FS_CRYPTO_KEYRING_MAX ? FS_OK : FS_E_TOOBIG);
		fs_crypto_spacekey_free(ki);
	}
	assert_null(fs_crypto_keyring_find(ring, "1-0000000000000000"));
	fs_crypto_keyring_free(ring);

	/* Wrapped under the master key: round trip, other master refused. */
	assert_int_equal(fs_crypto_keyfile_create(PASS, strlen(PASS), &kp, blob, &m, NULL), FS_OK);
	assert_int_equal(fs_crypto_keyfile_create(PASS, strlen(PASS), &kp, blob, &m2, NULL), FS_OK);
	assert_int_equal(fs_crypto_spacekey_wrap(k, m, w, &wn, NULL), FS_OK);
	assert_int_equal(fs_crypto_spacekey_unwrap(w, wn, m, &k2, NULL), FS_OK);
	assert_memory_equal(k2->key, k->key, 32);
	assert_string_equal(fs_crypto_spacekey_space(k2), SPACE);
	fs_crypto_spacekey_free(k2);
	k2 = NULL;
	assert_int_equal(fs_crypto_spacekey_unwrap(w, wn, m2, &k2, NULL), FS_E_TAMPERED);
	w[10] ^= 1; /* inside the space id: bound as associated data */
	assert_int_equal(fs_crypto_spacekey_unwrap(w, wn, m, &k2, NULL), FS_E_TAMPERED);
	assert_int_equal(fs_crypto_spacekey_unwrap(w, wn - 1, m, &k2, NULL), FS_E_KEYFILE);
	assert_null(k2);

	assert_int_equal(fs_crypto_spacekey_new("bad id", 1, &k2, NULL), FS_E_ARG);
	assert_int_equal(fs_crypto_spacekey_new(SPACE, 0, &k2, NULL), FS_E_ARG);
	fs_crypto_spacekey_free(NULL);
	fs_crypto_keyring_free(NULL);
	fs_crypto_spacekey_free(k);
	fs_crypto_spacekey_free(kb);
	fs_crypto_identity_free(b);
	fs_crypto_identity_free(c);
	fs_crypto_key_free(m);
	fs_crypto_key_free(m2);
}

/* ---- secrets never leak ---- */

#define MARKER "ZQX-MARKER-Marie-Curie-1867"

static void no_marker(const void *p, size_t n)
{
	assert_null(memmem(p, n, MARKER, strlen(MARKER)));
	assert_null(memmem(p, n, "Marie", 5));
}

static void secrets_marker(void **state)
{
	fs_kdf_params kp = fs_crypto_kdf_params_min();
	uint8_t blob[128], wid[FS_CRYPTO_IDENTITY_WRAPPED_BYTES], bpk[32], sig[64];
	uint8_t wsk[FS_CRYPTO_SPACEKEY_WRAPPED_MAX], sealed[FS_CRYPTO_SPACEKEY_SEALED_MAX];
	fs_key *m = NULL;
	fs_identity *id = NULL;
	fs_space_key *k = NULL;
	fs_keyring *ring;
	fs_errbuf eb;
	size_t n;

	(void)state;
	/* The marker as passphrase: it must not end up in the key file. */
	assert_int_equal(fs_crypto_keyfile_create(MARKER, strlen(MARKER), &kp, blob, &m, &eb),
	                 FS_OK);
	no_marker(blob, sizeof(blob));
	assert_int_equal(fs_crypto_keyfile_rekey(blob, 128, MARKER, strlen(MARKER), MARKER "2",
	                                         strlen(MARKER) + 1, &kp, blob, &eb),
	                 FS_OK);
	no_marker(blob, sizeof(blob));
	assert_int_equal(fs_crypto_keyfile_unlock(blob, 128, MARKER, strlen(MARKER), &m, &eb),
	                 FS_E_PASSPHRASE);
	no_marker(eb.msg, strlen(eb.msg));
	fs_crypto_key_free(m);
	assert_int_equal(
	    fs_crypto_keyfile_unlock(blob, 128, MARKER "2", strlen(MARKER) + 1, &m, &eb), FS_OK);

	assert_int_equal(fs_crypto_identity_new(&id, NULL), FS_OK);
	assert_int_equal(fs_crypto_identity_wrap(id, m, wid, NULL), FS_OK);
	no_marker(wid, sizeof(wid));
	assert_int_equal(fs_crypto_spacekey_new(SPACE, 1, &k, NULL), FS_OK);
	assert_int_equal(fs_crypto_spacekey_wrap(k, m, wsk, &n, NULL), FS_OK);
	no_marker(wsk, n);
	fs_crypto_identity_public(id, bpk, NULL);
	assert_int_equal(fs_crypto_spacekey_seal(k, bpk, sealed, &n, NULL), FS_OK);
	no_marker(sealed, n);
	assert_int_equal(
	    fs_crypto_sign(id, "visit", (const uint8_t *)MARKER, strlen(MARKER), sig, NULL), FS_OK);
	no_marker(sig, sizeof(sig));

	/* Records with the marker at the start, the end and repeated. */
	ring = ring_of(k, NULL);
	for (int i = 0; i < 4; i++) {
		size_t len = (size_t)1 << (6 + 4 * i);
		char *plain = malloc(len + 1), *env = NULL;
		for (size_t o = 0; o < len; o += strlen(MARKER) + 3)
			memcpy(plain + o, MARKER " x ",
			       len - o < strlen(MARKER) + 3 ? len - o : strlen(MARKER) + 3);
		plain[len] = '\0';
		assert_int_equal(fs_crypto_env_seal(k, DOC, (uint8_t *)plain, len, &env, &n, &eb),
		                 FS_OK);
		no_marker(env, n);
		/* Failing opens say nothing about the content either. */
		env[n - 5] = env[n - 5] == 'A' ? 'B' : 'A';
		assert_int_equal(open_env(ring, SPACE, DOC, env, n), FS_E_TAMPERED);
		uint8_t *out = NULL;
		size_t ol = 0;
		assert_int_equal(fs_crypto_env_open(ring, SPACE, DOC, env, n, &out, &ol, &eb),
		                 FS_E_TAMPERED);
		no_marker(eb.msg, strlen(eb.msg));
		free(env);
		free(plain);
	}
	fs_crypto_keyring_free(ring);
	fs_crypto_spacekey_free(k);
	fs_crypto_identity_free(id);
	fs_crypto_key_free(m);
}

/* ---- process hardening ---- */

static void secrets_harden(void **state)
{
	pid_t pid;
	int st = 0;

	(void)state;
	/* In a child, so the test runner (and LeakSanitizer) keep their own
	 * settings. */
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct rlimit rl;
		int ok = prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) == 1 &&
		         fs_crypto_harden(NULL) == FS_OK &&
		         prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) == 0 &&
		         getrlimit(RLIMIT_CORE, &rl) == 0 && rl.rlim_cur == 0 && rl.rlim_max == 0;
		_exit(ok ? 0 : 1);
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
}

int main(int argc, char **argv)
{
	/* One test per line; the name prefix is the ctest group. */
	// clang-format off
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(kat_envelope),
		cmocka_unit_test(kat_keyfile),
		cmocka_unit_test(kat_identity),
		cmocka_unit_test(kat_spacekey),
		cmocka_unit_test(env_base64),
		cmocka_unit_test(env_roundtrip),
		cmocka_unit_test(env_bitflips),
		cmocka_unit_test(env_bad_input),
		cmocka_unit_test(env_size_limits),
		cmocka_unit_test(env_nonces),
		cmocka_unit_test(env_mutations),
		cmocka_unit_test(keys_file_errors),
		cmocka_unit_test(keys_file_disk),
		cmocka_unit_test(keys_rekey),
		cmocka_unit_test(keys_identity),
		cmocka_unit_test(keys_space),
		cmocka_unit_test(secrets_marker),
		cmocka_unit_test(secrets_harden),
	};
	// clang-format on
	if (argc > 1)
		cmocka_set_test_filter(argv[1]);
	return cmocka_run_group_tests(tests, load_vectors, free_vectors);
}
