/*
 * crypto/spacekey.c: space keys (one per space and version), their wrapped
 * form under the master key, sealing them to another device's X25519 key,
 * and the key ring that finds a key by kid for the envelope.
 */
#include "crypto_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SK_MAGIC       "FSSK"
#define SK_MAGIC_LEN   4
#define SK_VERSION     1
#define SEAL_VERSION   1
#define KID_RAND_BYTES 8

void fs_crypto_space_id_new(char out[FS_CRYPTO_SPACE_ID_MAX])
{
	uint8_t r[16];

	randombytes_buf(r, sizeof(r));
	sodium_bin2hex(out, FS_CRYPTO_SPACE_ID_MAX, r, sizeof(r));
}

static fs_space_key *key_make(const char *space_id, const char *kid, const uint8_t *key)
{
	fs_space_key *k = sodium_malloc(sizeof(*k));

	if (k == NULL)
		return NULL;
	memset(k, 0, sizeof(*k));
	memcpy(k->space, space_id, strlen(space_id) + 1);
	memcpy(k->kid, kid, strlen(kid) + 1);
	if (key)
		memcpy(k->key, key, FS_CRYPTO_KEY_BYTES);
	else
		randombytes_buf(k->key, FS_CRYPTO_KEY_BYTES);
	return k;
}

void fs_crypto_spacekey_free(fs_space_key *k)
{
	if (k)
		sodium_free(k);
}

const char *fs_crypto_spacekey_kid(const fs_space_key *k)
{
	return k->kid;
}

const char *fs_crypto_spacekey_space(const fs_space_key *k)
{
	return k->space;
}

int fs_crypto_spacekey_from_bytes(const char *space_id, const char *kid,
                                  const uint8_t key[FS_CRYPTO_KEY_BYTES], fs_space_key **out,
                                  fs_errbuf *eb)
{
	if (out == NULL || key == NULL)
		return fs_err_set(eb, FS_E_ARG, "key and output are required");
	*out = NULL;
	if (!fs_crypto_label_ok(space_id, FS_CRYPTO_SPACE_ID_MAX) ||
	    !fs_crypto_label_ok(kid, FS_CRYPTO_KID_MAX))
		return fs_err_set(eb, FS_E_ARG, "invalid space id or kid");
	if ((*out = key_make(space_id, kid, key)) == NULL)
		return fs_err_set(eb, FS_E_NOMEM, "no memory for a space key");
	return FS_OK;
}

int fs_crypto_spacekey_new(const char *space_id, uint32_t version, fs_space_key **out,
                           fs_errbuf *eb)
{
	uint8_t r[KID_RAND_BYTES];
	char hex[2 * KID_RAND_BYTES + 1];
	char kid[FS_CRYPTO_KID_MAX];

	if (out == NULL)
		return fs_err_set(eb, FS_E_ARG, "no output for the space key");
	*out = NULL;
	if (!fs_crypto_label_ok(space_id, FS_CRYPTO_SPACE_ID_MAX))
		return fs_err_set(eb, FS_E_ARG, "a space id is 1 to %d of [A-Za-z0-9._-]",
		                  FS_CRYPTO_SPACE_ID_MAX - 1);
	if (version == 0)
		return fs_err_set(eb, FS_E_ARG, "space key versions start at 1");
	randombytes_buf(r, sizeof(r));
	sodium_bin2hex(hex, sizeof(hex), r, sizeof(r));
	snprintf(kid, sizeof(kid), "%lu-%s", (unsigned long)version, hex);
	if ((*out = key_make(space_id, kid, NULL)) == NULL)
		return fs_err_set(eb, FS_E_NOMEM, "no memory for a space key");
	return FS_OK;
}

/* version, then space id and kid each with a one-byte length. */
static size_t put_names(uint8_t *p, uint8_t version, const fs_space_key *k)
{
	size_t sl = strlen(k->space), kl = strlen(k->kid), o = 0;

	p[o++] = version;
	p[o++] = (uint8_t)sl;
	memcpy(p + o, k->space, sl);
	o += sl;
	p[o++] = (uint8_t)kl;
	memcpy(p + o, k->kid, kl);
	return o + kl;
}

/* Reads what put_names wrote into space and kid; returns the bytes used or
 * 0 when malformed. */
static size_t get_names(const uint8_t *p, size_t len, char space[FS_CRYPTO_SPACE_ID_MAX],
                        char kid[FS_CRYPTO_KID_MAX])
{
	size_t o = 1, sl, kl;

	if (len < o + 1)
		return 0;
	sl = p[o++];
	if (sl == 0 || sl >= FS_CRYPTO_SPACE_ID_MAX || len < o + sl + 1)
		return 0;
	memcpy(space, p + o, sl);
	space[sl] = '\0';
	o += sl;
	kl = p[o++];
	if (kl == 0 || kl >= FS_CRYPTO_KID_MAX || len < o + kl)
		return 0;
	memcpy(kid, p + o, kl);
	kid[kl] = '\0';
	o += kl;
	if (!fs_crypto_label_ok(space, FS_CRYPTO_SPACE_ID_MAX) ||
	    !fs_crypto_label_ok(kid, FS_CRYPTO_KID_MAX))
		return 0;
	return o;
}

int fs_crypto_spacekey_wrap_fixed(const fs_space_key *k, const fs_key *master,
                                  const uint8_t nonce[FS_CRYPTO_NONCE_BYTES],
                                  uint8_t out[FS_CRYPTO_SPACEKEY_WRAPPED_MAX], size_t *out_len,
                                  fs_errbuf *eb)
{
	size_t o;

	if (out_len)
		*out_len = 0;
	if (k == NULL || master == NULL || out == NULL || out_len == NULL)
		return fs_err_set(eb, FS_E_ARG, "space key, master key and output are required");
	memcpy(out, SK_MAGIC, SK_MAGIC_LEN);
	o = SK_MAGIC_LEN + put_names(out + SK_MAGIC_LEN, SK_VERSION, k);
	fs_crypto_wrap(master->k, out, o, k->key, FS_CRYPTO_KEY_BYTES, nonce, out + o);
	*out_len = o + FS_CRYPTO_NONCE_BYTES + FS_CRYPTO_KEY_BYTES + FS_CRYPTO_TAG_BYTES;
	return FS_OK;
}

int fs_crypto_spacekey_wrap(const fs_space_key *k, const fs_key *master,
                            uint8_t out[FS_CRYPTO_SPACEKEY_WRAPPED_MAX], size_t *out_len,
                            fs_errbuf *eb)
{
	return fs_crypto_spacekey_wrap_fixed(k, master, NULL, out, out_len, eb);
}

int fs_crypto_spacekey_unwrap(const uint8_t *blob, size_t blob_len, const fs_key *master,
                              fs_space_key **out, fs_errbuf *eb)
{
	char space[FS_CRYPTO_SPACE_ID_MAX], kid[FS_CRYPTO_KID_MAX];
	fs_space_key *k = NULL;
	size_t o;
	int r;

	if (out == NULL || master == NULL)
		return fs_err_set(eb, FS_E_ARG, "master key and output are required");
	*out = NULL;
	if (blob == NULL || blob_len < SK_MAGIC_LEN + 1 || memcmp(blob, SK_MAGIC, SK_MAGIC_LEN))
		return fs_err_set(eb, FS_E_KEYFILE, "not a wrapped fieldsync space key");
	if (blob[SK_MAGIC_LEN] > SK_VERSION)
		return fs_err_set(eb, FS_E_KEYFILE_VERSION, "wrapped space key format %u is newer",
		                  (unsigned)blob[SK_MAGIC_LEN]);
	o = get_names(blob + SK_MAGIC_LEN, blob_len - SK_MAGIC_LEN, space, kid);
	if (blob[SK_MAGIC_LEN] != SK_VERSION || o == 0 ||
	    blob_len != SK_MAGIC_LEN + o + FS_CRYPTO_NONCE_BYTES + FS_CRYPTO_KEY_BYTES +
	                    FS_CRYPTO_TAG_BYTES)
		return fs_err_set(eb, FS_E_KEYFILE, "malformed wrapped space key");
	o += SK_MAGIC_LEN;
	if ((k = key_make(space, kid, NULL)) == NULL) {
		r = fs_err_set(eb, FS_E_NOMEM, "no memory for a space key");
		goto out;
	}
	if (fs_crypto_unwrap(master->k, blob, o, blob + o, blob_len - o, k->key) != 0) {
		r = fs_err_set(eb, FS_E_TAMPERED,
		               "wrapped space key %s does not authenticate under "
		               "this master key",
		               kid);
		goto out;
	}
	*out = k;
	k = NULL;
	r = FS_OK;
out:
	fs_crypto_spacekey_free(k);
	return r;
}

int fs_crypto_spacekey_seal(const fs_space_key *k, const uint8_t box_pk[FS_CRYPTO_BOX_PK_BYTES],
                            uint8_t out[FS_CRYPTO_SPACEKEY_SEALED_MAX], size_t *out_len,
                            fs_errbuf *eb)
{
	uint8_t *m;
	size_t n;
	int r = FS_OK;

	if (out_len)
		*out_len = 0;
	if (k == NULL || box_pk == NULL || out == NULL || out_len == NULL)
		return fs_err_set(eb, FS_E_ARG, "space key, public key and output are required");
	if ((m = sodium_malloc(FS_CRYPTO_SPACEKEY_SEALED_MAX)) == NULL)
		return fs_err_set(eb, FS_E_NOMEM, "no memory to seal a space key");
	n = put_names(m, SEAL_VERSION, k);
	memcpy(m + n, k->key, FS_CRYPTO_KEY_BYTES);
	n += FS_CRYPTO_KEY_BYTES;
	if (crypto_box_seal(out, m, n, box_pk) != 0)
		r = fs_err_set(eb, FS_E_ARG, "not a usable X25519 public key");
	else
		*out_len = n + crypto_box_SEALBYTES;
	sodium_free(m);
	return r;
}

int fs_crypto_spacekey_open(const uint8_t *sealed, size_t sealed_len, const fs_identity *id,
                            const char *space_id, fs_space_key **out, fs_errbuf *eb)
{
	char space[FS_CRYPTO_SPACE_ID_MAX], kid[FS_CRYPTO_KID_MAX];
	uint8_t *m = NULL;
	size_t n, o;
	int r;

	if (out == NULL || id == NULL || space_id == NULL)
		return fs_err_set(eb, FS_E_ARG, "identity, space id and output are required");
	*out = NULL;
	if (sealed == NULL || sealed_len < crypto_box_SEALBYTES + 1 + 2 + 2 + FS_CRYPTO_KEY_BYTES)
		return fs_err_set(eb, FS_E_TRUNCATED, "sealed space key is truncated");
	if (sealed_len > FS_CRYPTO_SPACEKEY_SEALED_MAX)
		return fs_err_set(eb, FS_E_TOOBIG, "sealed space key of %zu bytes is too long",
		                  sealed_len);
	n = sealed_len - crypto_box_SEALBYTES;
	if ((m = sodium_malloc(n)) == NULL)
		return fs_err_set(eb, FS_E_NOMEM, "no memory to open a space key");
	if (crypto_box_seal_open(m, sealed, sealed_len, id->box_pk, id->box_sk) != 0) {
		r = fs_err_set(eb, FS_E_TAMPERED,
		               "the space key was not sealed to this device, "
		               "or was damaged");
		goto out;
	}
	if (m[0] > SEAL_VERSION) {
		r = fs_err_set(eb, FS_E_KEYFILE_VERSION, "sealed space key format %u is newer",
		               (unsigned)m[0]);
		goto out;
	}
	o = get_names(m, n, space, kid);
	if (m[0] != SEAL_VERSION || o == 0 || n != o + FS_CRYPTO_KEY_BYTES) {
		r = fs_err_set(eb, FS_E_INPUT, "malformed sealed space key");
		goto out;
	}
	if (strcmp(space, space_id) != 0) {
		r = fs_err_set(eb, FS_E_MISBOUND, "the sealed key %s is for space %s, not %s", kid,
		               space, space_id);
		goto out;
	}
	if ((*out = key_make(space, kid, m + o)) == NULL) {
		r = fs_err_set(eb, FS_E_NOMEM, "no memory for a space key");
		goto out;
	}
	r = FS_OK;
out:
	sodium_free(m);
	return r;
}

struct fs_keyring {
	size_t n;
	fs_space_key *keys[FS_CRYPTO_KEYRING_MAX];
};

int fs_crypto_keyring_new(fs_keyring **out, fs_errbuf *eb)
{
	if (out == NULL)
		return fs_err_set(eb, FS_E_ARG, "no output for the key ring");
	if ((*out = calloc(1, sizeof(fs_keyring))) == NULL)
		return fs_err_set(eb, FS_E_NOMEM, "no memory for a key ring");
	return FS_OK;
}

void fs_crypto_keyring_free(fs_keyring *ring)
{
	if (ring == NULL)
		return;
	for (size_t i = 0; i < ring->n; i++)
		fs_crypto_spacekey_free(ring->keys[i]);
	free(ring);
}

const fs_space_key *fs_crypto_keyring_find(const fs_keyring *ring, const char *kid)
{
	if (ring == NULL || kid == NULL)
		return NULL;
	for (size_t i = 0; i < ring->n; i++)
		if (strcmp(ring->keys[i]->kid, kid) == 0)
			return ring->keys[i];
	return NULL;
}

int fs_crypto_keyring_add(fs_keyring *ring, const fs_space_key *k, fs_errbuf *eb)
{
	const fs_space_key *have;

	if (ring == NULL || k == NULL)
		return fs_err_set(eb, FS_E_ARG, "key ring and key are required");
	if ((have = fs_crypto_keyring_find(ring, k->kid)) != NULL) {
		if (strcmp(have->space, k->space) == 0 &&
		    sodium_memcmp(have->key, k->key, FS_CRYPTO_KEY_BYTES) == 0)
			return FS_OK;
		return fs_err_set(eb, FS_E_EXISTS, "the key ring has another key with kid %s",
		                  k->kid);
	}
	if (ring->n == FS_CRYPTO_KEYRING_MAX)
		return fs_err_set(eb, FS_E_TOOBIG, "the key ring is full");
	if ((ring->keys[ring->n] = key_make(k->space, k->kid, k->key)) == NULL)
		return fs_err_set(eb, FS_E_NOMEM, "no memory for a space key");
	ring->n++;
	return FS_OK;
}

size_t fs_crypto_keyring_count(const fs_keyring *ring)
{
	return ring ? ring->n : 0;
}

const fs_space_key *fs_crypto_keyring_at(const fs_keyring *ring, size_t i)
{
	return ring && i < ring->n ? ring->keys[i] : NULL;
}

void fs_crypto_spacekey_commit(const fs_space_key *k, uint8_t out[FS_CRYPTO_COMMIT_BYTES])
{
	static const char label[] = "fieldsync-key-commit-v1";
	crypto_generichash_state st;
	uint8_t lp[4];

	/* Keyed BLAKE2b over the labels: publishing it reveals nothing of the
	 * key, and no other key gives the same value for this space and kid. */
	crypto_generichash_init(&st, k->key, FS_CRYPTO_KEY_BYTES, FS_CRYPTO_COMMIT_BYTES);
	crypto_generichash_update(&st, (const uint8_t *)label, sizeof(label) - 1);
	fs_crypto_put_u32(lp, (uint32_t)strlen(k->space));
	crypto_generichash_update(&st, lp, sizeof(lp));
	crypto_generichash_update(&st, (const uint8_t *)k->space, strlen(k->space));
	fs_crypto_put_u32(lp, (uint32_t)strlen(k->kid));
	crypto_generichash_update(&st, lp, sizeof(lp));
	crypto_generichash_update(&st, (const uint8_t *)k->kid, strlen(k->kid));
	crypto_generichash_final(&st, out, FS_CRYPTO_COMMIT_BYTES);
	sodium_memzero(&st, sizeof(st));
}

uint32_t fs_crypto_kid_version(const char *kid)
{
	unsigned long v = 0;
	const char *p = kid;

	if (p == NULL || *p < '1' || *p > '9')
		return 0;
	for (; *p >= '0' && *p <= '9'; p++) {
		v = v * 10 + (unsigned long)(*p - '0');
		if (v > UINT32_MAX)
			return 0;
	}
	return *p == '-' ? (uint32_t)v : 0;
}
