/*
 * tests/crypto/gen_vectors.c: writes the known-answer vectors of
 * vectors/crypto.txt from fixed keys, salts and nonces. Run once when a
 * format is introduced; the checked-in file is what the tests trust, so a
 * change in output is a format change that needs a new version.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto_int.h"

static void hex(const char *name, const uint8_t *b, size_t n)
{
	printf("%s = ", name);
	for (size_t i = 0; i < n; i++)
		printf("%02x", b[i]);
	printf("\n");
}

static void fill(uint8_t *b, size_t n, uint8_t start)
{
	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)(start + i);
}

static void die(const char *what, int r)
{
	fprintf(stderr, "gen_vectors: %s: %s\n", what, fs_errname(r));
	exit(1);
}

int main(void)
{
	uint8_t key[32], env_nonce[24], salt[16], nonce[24], master_b[32], box_sk[32], seed[32];
	uint8_t blob[FS_CRYPTO_KEYFILE_BYTES], wid[FS_CRYPTO_IDENTITY_WRAPPED_BYTES];
	uint8_t wsk[FS_CRYPTO_SPACEKEY_WRAPPED_MAX], sig[64], bpk[32], spk[32];
	char fp[FS_CRYPTO_FINGERPRINT_MAX], *env = NULL;
	const char *space = "0f1e2d3c4b5a69788796a5b4c3d2e1f0", *kid = "1-0011223344556677";
	const char *doc = "8f1c000000000000000000000000beef";
	const char *plain = "{\"type\":\"visit\",\"note\":\"Met client at home.\"}";
	const char *pass = "correct horse battery staple";
	const char *msg = "visit 8f1c finalized";
	fs_kdf_params kp = fs_crypto_kdf_params_min();
	fs_space_key *sk = NULL;
	fs_identity *id = NULL;
	fs_key *master = NULL;
	size_t n;
	int r;

	if (fs_crypto_init() != FS_OK)
		die("init", FS_E_CRYPTO_INIT);
	printf("# fieldsync crypto known-answer vectors (tests/crypto/gen_vectors.c)\n");
	printf("# hex unless noted; formats in docs/envelope.md and docs/keys.md\n");

	fill(key, 32, 0x00);
	fill(env_nonce, 24, 0xa0);
	if ((r = fs_crypto_spacekey_from_bytes(space, kid, key, &sk, NULL)) != FS_OK)
		die("space key", r);
	printf("env.space = %s\nenv.kid = %s\nenv.id = %s\nenv.plain = %s\n", space, kid, doc,
	       plain);
	hex("env.key", key, 32);
	hex("env.nonce", env_nonce, 24);
	if ((r = fs_crypto_env_seal_fixed(sk, doc, (const uint8_t *)plain, strlen(plain), env_nonce,
	                                  &env, &n, NULL)) != FS_OK)
		die("seal", r);
	printf("env.envelope = %s\n", env);
	free(env);
	if ((r = fs_crypto_env_seal_fixed(sk, doc, NULL, 0, env_nonce, &env, &n, NULL)) != FS_OK)
		die("seal empty", r);
	printf("env.envelope_empty = %s\n", env);
	free(env);

	printf("kf.pass = %s\nkf.ops = %llu\nkf.mem = %llu\n", pass,
	       (unsigned long long)kp.opslimit, (unsigned long long)kp.memlimit);
	fill(salt, 16, 0x10);
	fill(nonce, 24, 0x40);
	fill(master_b, 32, 0x80);
	hex("kf.salt", salt, 16);
	hex("kf.nonce", nonce, 24);
	hex("kf.master", master_b, 32);
	if ((r = fs_crypto_keyfile_create_fixed(pass, strlen(pass), &kp, salt, nonce, master_b,
	                                        blob, NULL)) != FS_OK)
		die("keyfile", r);
	hex("kf.blob", blob, sizeof(blob));
	if ((r = fs_crypto_keyfile_unlock(blob, sizeof(blob), pass, strlen(pass), &master, NULL)) !=
	    FS_OK)
		die("unlock", r);

	fill(box_sk, 32, 0x20);
	fill(seed, 32, 0x60);
	fill(nonce, 24, 0xc0);
	hex("id.box_sk", box_sk, 32);
	hex("id.sign_seed", seed, 32);
	hex("id.nonce", nonce, 24);
	if ((r = fs_crypto_identity_from_seeds(box_sk, seed, &id, NULL)) != FS_OK)
		die("identity", r);
	fs_crypto_identity_public(id, bpk, spk);
	hex("id.box_pk", bpk, 32);
	hex("id.sign_pk", spk, 32);
	if ((r = fs_crypto_fingerprint(bpk, spk, fp)) != FS_OK)
		die("fingerprint", r);
	printf("id.fingerprint = %s\n", fp);
	printf("id.context = visit\nid.msg = %s\n", msg);
	if ((r = fs_crypto_sign(id, "visit", (const uint8_t *)msg, strlen(msg), sig, NULL)) !=
	    FS_OK)
		die("sign", r);
	hex("id.sig", sig, 64);
	if ((r = fs_crypto_identity_wrap_fixed(id, master, nonce, wid, NULL)) != FS_OK)
		die("wrap identity", r);
	hex("id.wrapped", wid, sizeof(wid));

	fill(nonce, 24, 0xe0);
	hex("sk.nonce", nonce, 24);
	if ((r = fs_crypto_spacekey_wrap_fixed(sk, master, nonce, wsk, &n, NULL)) != FS_OK)
		die("wrap space key", r);
	hex("sk.wrapped", wsk, n);

	fs_crypto_spacekey_free(sk);
	fs_crypto_identity_free(id);
	fs_crypto_key_free(master);
	return 0;
}
