/*
 * crypto/crypto_int.h: what the files of crypto/ share and the test-only
 * entry points that take fixed nonces, salts and keys, so known-answer tests
 * can recompute vectors. Nothing outside crypto/ and tests/crypto includes it.
 */
#ifndef FS_CRYPTO_INT_H
#define FS_CRYPTO_INT_H

#include "crypto.h"

#include <sodium.h>

#define FS_CRYPTO_NONCE_BYTES crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define FS_CRYPTO_TAG_BYTES   crypto_aead_xchacha20poly1305_ietf_ABYTES
#define FS_CRYPTO_SALT_BYTES  crypto_pwhash_SALTBYTES

struct fs_key {
	uint8_t k[FS_CRYPTO_KEY_BYTES];
};

struct fs_identity {
	uint8_t box_pk[crypto_box_PUBLICKEYBYTES];
	uint8_t box_sk[crypto_box_SECRETKEYBYTES];
	uint8_t sign_pk[crypto_sign_PUBLICKEYBYTES];
	uint8_t sign_sk[crypto_sign_SECRETKEYBYTES];
};

struct fs_space_key {
	char space[FS_CRYPTO_SPACE_ID_MAX];
	char kid[FS_CRYPTO_KID_MAX];
	uint8_t key[FS_CRYPTO_KEY_BYTES];
};

/* 1 if s is 1..max-1 characters of [A-Za-z0-9._-] (space ids and kids). */
int fs_crypto_label_ok(const char *s, size_t max);

/* Writes n as 4 bytes little-endian at p; returns 4. */
size_t fs_crypto_put_u32(uint8_t *p, uint32_t n);

/* Writes a 4-byte little-endian length and then the bytes; returns 4 + n. */
size_t fs_crypto_put_lp(uint8_t *p, const void *s, size_t n);

/* A fresh random 24-byte nonce for an envelope (from a fork-safe pool of
 * getrandom output; thread-safe). */
void fs_crypto_nonce(uint8_t out[FS_CRYPTO_NONCE_BYTES]);

/* AEAD-wraps plain under key with associated data ad; nonce NULL means a
 * random one. out receives nonce || ciphertext || tag. */
void fs_crypto_wrap(const uint8_t key[FS_CRYPTO_KEY_BYTES], const uint8_t *ad, size_t ad_len,
                    const uint8_t *plain, size_t plain_len,
                    const uint8_t nonce[FS_CRYPTO_NONCE_BYTES], uint8_t *out);

/* Reverse of fs_crypto_wrap: in is nonce || ciphertext || tag, plain gets
 * in_len - nonce - tag bytes. Returns 0, or -1 if it does not authenticate. */
int fs_crypto_unwrap(const uint8_t key[FS_CRYPTO_KEY_BYTES], const uint8_t *ad, size_t ad_len,
                     const uint8_t *in, size_t in_len, uint8_t *plain) FS_WUR;

/* Test-only: the public functions with their randomness given. */
int fs_crypto_keyfile_create_fixed(const char *pass, size_t pass_len, const fs_kdf_params *params,
                                   const uint8_t salt[FS_CRYPTO_SALT_BYTES],
                                   const uint8_t nonce[FS_CRYPTO_NONCE_BYTES],
                                   const uint8_t master[FS_CRYPTO_KEY_BYTES],
                                   uint8_t blob[FS_CRYPTO_KEYFILE_BYTES], fs_errbuf *eb) FS_WUR;

/* The master key's bytes (tests compare two unlocks). */
const uint8_t *fs_crypto_key_bytes(const fs_key *k);

int fs_crypto_identity_from_seeds(const uint8_t box_sk[crypto_box_SECRETKEYBYTES],
                                  const uint8_t sign_seed[crypto_sign_SEEDBYTES], fs_identity **out,
                                  fs_errbuf *eb) FS_WUR;

int fs_crypto_identity_wrap_fixed(const fs_identity *id, const fs_key *master,
                                  const uint8_t nonce[FS_CRYPTO_NONCE_BYTES],
                                  uint8_t out[FS_CRYPTO_IDENTITY_WRAPPED_BYTES],
                                  fs_errbuf *eb) FS_WUR;

int fs_crypto_spacekey_from_bytes(const char *space_id, const char *kid,
                                  const uint8_t key[FS_CRYPTO_KEY_BYTES], fs_space_key **out,
                                  fs_errbuf *eb) FS_WUR;

int fs_crypto_spacekey_wrap_fixed(const fs_space_key *k, const fs_key *master,
                                  const uint8_t nonce[FS_CRYPTO_NONCE_BYTES],
                                  uint8_t out[FS_CRYPTO_SPACEKEY_WRAPPED_MAX], size_t *out_len,
                                  fs_errbuf *eb) FS_WUR;

int fs_crypto_env_seal_fixed(const fs_space_key *k, const char *doc_id, const uint8_t *plain,
                             size_t plain_len, const uint8_t nonce[FS_CRYPTO_NONCE_BYTES],
                             char **out, size_t *out_len, fs_errbuf *eb) FS_WUR;

/* The associated data of an envelope (docs/envelope.md),
 * exposed so tests can check them against an independent construction. */
size_t fs_crypto_env_ad(const char *space_id, const char *kid, const char *doc_id, uint8_t *out);
#define FS_CRYPTO_ENV_AD_MAX                                                                       \
	(1 + 4 + FS_CRYPTO_SPACE_ID_MAX + 4 + FS_CRYPTO_KID_MAX + 4 + FS_CRYPTO_DOC_ID_MAX)

/*
 * crypto/b64.c: padded base64 of public bytes (not constant-time), AVX2
 * where the CPU has it. encode writes B64 text of n bytes and a NUL (as
 * modp_b64 does) and returns the text's length; src and dst may share a
 * buffer when the text ends before the bytes it has not read begin.
 * decode needs len / 4 * 3 + 2 bytes at dst and returns the bytes, or
 * SIZE_MAX for text that is not base64 (alphabet, length, padding).
 * force_portable(1) keeps to the table codec (tests compare the two).
 */
size_t fs_crypto_b64_encode(char *dst, const uint8_t *src, size_t n);
size_t fs_crypto_b64_decode(uint8_t *dst, const char *src, size_t len);
void fs_crypto_b64_force_portable(int on);

#endif
