/*
 * crypto/identity.c: the device identity (X25519 for receiving sealed space
 * keys, Ed25519 for signing), its wrapped form under the master key, the
 * fingerprint people read aloud to compare devices, and detached signatures
 * with a context label.
 */
#include "crypto_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ID_MAGIC     "FSID"
#define ID_MAGIC_LEN 4
#define ID_VERSION   1
#define OFF_VERSION  4
#define OFF_BOX_PK   5
#define OFF_SIGN_PK  (OFF_BOX_PK + crypto_box_PUBLICKEYBYTES)
#define OFF_WRAP     (OFF_SIGN_PK + crypto_sign_PUBLICKEYBYTES) /* nonce, ct, tag */
#define SECRET_BYTES (crypto_box_SECRETKEYBYTES + crypto_sign_SEEDBYTES)

_Static_assert(OFF_WRAP + FS_CRYPTO_NONCE_BYTES + SECRET_BYTES + FS_CRYPTO_TAG_BYTES ==
                   FS_CRYPTO_IDENTITY_WRAPPED_BYTES,
               "wrapped identity layout");

#define FP_LABEL       "fieldsync-fingerprint-v1"
#define SIG_LABEL      "fieldsync-sig-v1"
#define FP_GROUPS      6
#define FP_GROUP_BYTES 5

void fs_crypto_identity_free(fs_identity *id)
{
	if (id)
		sodium_free(id);
}

int fs_crypto_identity_new(fs_identity **out, fs_errbuf *eb)
{
	fs_identity *id;

	if (out == NULL)
		return fs_err_set(eb, FS_E_ARG, "no output for the identity");
	*out = NULL;
	if ((id = sodium_malloc(sizeof(*id))) == NULL)
		return fs_err_set(eb, FS_E_NOMEM, "no memory for the identity");
	crypto_box_keypair(id->box_pk, id->box_sk);
	crypto_sign_keypair(id->sign_pk, id->sign_sk);
	*out = id;
	return FS_OK;
}

int fs_crypto_identity_from_seeds(const uint8_t box_sk[crypto_box_SECRETKEYBYTES],
                                  const uint8_t sign_seed[crypto_sign_SEEDBYTES], fs_identity **out,
                                  fs_errbuf *eb)
{
	fs_identity *id;

	if (out == NULL)
		return fs_err_set(eb, FS_E_ARG, "no output for the identity");
	*out = NULL;
	if ((id = sodium_malloc(sizeof(*id))) == NULL)
		return fs_err_set(eb, FS_E_NOMEM, "no memory for the identity");
	memcpy(id->box_sk, box_sk, crypto_box_SECRETKEYBYTES);
	crypto_scalarmult_base(id->box_pk, id->box_sk);
	crypto_sign_seed_keypair(id->sign_pk, id->sign_sk, sign_seed);
	*out = id;
	return FS_OK;
}

void fs_crypto_identity_public(const fs_identity *id, uint8_t box_pk[FS_CRYPTO_BOX_PK_BYTES],
                               uint8_t sign_pk[FS_CRYPTO_SIGN_PK_BYTES])
{
	if (box_pk)
		memcpy(box_pk, id->box_pk, FS_CRYPTO_BOX_PK_BYTES);
	if (sign_pk)
		memcpy(sign_pk, id->sign_pk, FS_CRYPTO_SIGN_PK_BYTES);
}

int fs_crypto_identity_wrap_fixed(const fs_identity *id, const fs_key *master,
                                  const uint8_t nonce[FS_CRYPTO_NONCE_BYTES],
                                  uint8_t out[FS_CRYPTO_IDENTITY_WRAPPED_BYTES], fs_errbuf *eb)
{
	uint8_t *secret;

	if (id == NULL || master == NULL || out == NULL)
		return fs_err_set(eb, FS_E_ARG, "identity, master key and output are required");
	if ((secret = sodium_malloc(SECRET_BYTES)) == NULL)
		return fs_err_set(eb, FS_E_NOMEM, "no memory to wrap the identity");
	memcpy(secret, id->box_sk, crypto_box_SECRETKEYBYTES);
	crypto_sign_ed25519_sk_to_seed(secret + crypto_box_SECRETKEYBYTES, id->sign_sk);
	memcpy(out, ID_MAGIC, ID_MAGIC_LEN);
	out[OFF_VERSION] = ID_VERSION;
	memcpy(out + OFF_BOX_PK, id->box_pk, crypto_box_PUBLICKEYBYTES);
	memcpy(out + OFF_SIGN_PK, id->sign_pk, crypto_sign_PUBLICKEYBYTES);
	fs_crypto_wrap(master->k, out, OFF_WRAP, secret, SECRET_BYTES, nonce, out + OFF_WRAP);
	sodium_free(secret);
	return FS_OK;
}

int fs_crypto_identity_wrap(const fs_identity *id, const fs_key *master,
                            uint8_t out[FS_CRYPTO_IDENTITY_WRAPPED_BYTES], fs_errbuf *eb)
{
	return fs_crypto_identity_wrap_fixed(id, master, NULL, out, eb);
}

static int check_wrapped(const uint8_t *blob, size_t len, fs_errbuf *eb)
{
	if (blob == NULL || len < ID_MAGIC_LEN + 1 || memcmp(blob, ID_MAGIC, ID_MAGIC_LEN) != 0)
		return fs_err_set(eb, FS_E_KEYFILE, "not a wrapped fieldsync identity");
	if (blob[OFF_VERSION] > ID_VERSION)
		return fs_err_set(eb, FS_E_KEYFILE_VERSION, "wrapped identity format %u is newer",
		                  (unsigned)blob[OFF_VERSION]);
	if (blob[OFF_VERSION] != ID_VERSION || len != FS_CRYPTO_IDENTITY_WRAPPED_BYTES)
		return fs_err_set(eb, FS_E_KEYFILE, "wrapped identity of %zu bytes, expected %d",
		                  len, FS_CRYPTO_IDENTITY_WRAPPED_BYTES);
	return FS_OK;
}

int fs_crypto_identity_wrapped_public(const uint8_t *blob, size_t blob_len,
                                      uint8_t box_pk[FS_CRYPTO_BOX_PK_BYTES],
                                      uint8_t sign_pk[FS_CRYPTO_SIGN_PK_BYTES], fs_errbuf *eb)
{
	int r;

	if (box_pk)
		memset(box_pk, 0, FS_CRYPTO_BOX_PK_BYTES);
	if (sign_pk)
		memset(sign_pk, 0, FS_CRYPTO_SIGN_PK_BYTES);
	if ((r = check_wrapped(blob, blob_len, eb)) != FS_OK)
		return r;
	if (box_pk)
		memcpy(box_pk, blob + OFF_BOX_PK, FS_CRYPTO_BOX_PK_BYTES);
	if (sign_pk)
		memcpy(sign_pk, blob + OFF_SIGN_PK, FS_CRYPTO_SIGN_PK_BYTES);
	return FS_OK;
}

int fs_crypto_identity_unwrap(const uint8_t *blob, size_t blob_len, const fs_key *master,
                              fs_identity **out, fs_errbuf *eb)
{
	uint8_t *secret = NULL;
	fs_identity *id = NULL;
	int r;

	if (out == NULL || master == NULL)
		return fs_err_set(eb, FS_E_ARG, "master key and output are required");
	*out = NULL;
	if ((r = check_wrapped(blob, blob_len, eb)) != FS_OK)
		goto out;
	secret = sodium_malloc(SECRET_BYTES);
	id = sodium_malloc(sizeof(*id));
	if (secret == NULL || id == NULL) {
		r = fs_err_set(eb, FS_E_NOMEM, "no memory to unwrap the identity");
		goto out;
	}
	if (fs_crypto_unwrap(master->k, blob, OFF_WRAP, blob + OFF_WRAP, blob_len - OFF_WRAP,
	                     secret) != 0) {
		r = fs_err_set(eb, FS_E_TAMPERED,
		               "the wrapped identity does not authenticate "
		               "under this master key");
		goto out;
	}
	memcpy(id->box_sk, secret, crypto_box_SECRETKEYBYTES);
	crypto_scalarmult_base(id->box_pk, id->box_sk);
	crypto_sign_seed_keypair(id->sign_pk, id->sign_sk, secret + crypto_box_SECRETKEYBYTES);
	/* The AEAD binds the public halves; a mismatch means a bug in whoever
	 * wrote the blob, and such an identity must not be used. */
	if (memcmp(id->box_pk, blob + OFF_BOX_PK, crypto_box_PUBLICKEYBYTES) != 0 ||
	    memcmp(id->sign_pk, blob + OFF_SIGN_PK, crypto_sign_PUBLICKEYBYTES) != 0) {
		r = fs_err_set(eb, FS_E_TAMPERED, "the wrapped identity's halves do not match");
		goto out;
	}
	*out = id;
	id = NULL;
	r = FS_OK;
out:
	if (secret)
		sodium_free(secret);
	fs_crypto_identity_free(id);
	return r;
}

int fs_crypto_fingerprint(const uint8_t box_pk[FS_CRYPTO_BOX_PK_BYTES],
                          const uint8_t sign_pk[FS_CRYPTO_SIGN_PK_BYTES],
                          char out[FS_CRYPTO_FINGERPRINT_MAX])
{
	crypto_generichash_state st;
	uint8_t h[crypto_generichash_BYTES];
	char *p = out;

	if (out == NULL)
		return FS_E_ARG;
	out[0] = '\0';
	if (box_pk == NULL || sign_pk == NULL)
		return FS_E_ARG;
	crypto_generichash_init(&st, NULL, 0, sizeof(h));
	crypto_generichash_update(&st, (const uint8_t *)FP_LABEL, strlen(FP_LABEL));
	crypto_generichash_update(&st, box_pk, FS_CRYPTO_BOX_PK_BYTES);
	crypto_generichash_update(&st, sign_pk, FS_CRYPTO_SIGN_PK_BYTES);
	crypto_generichash_final(&st, h, sizeof(h));
	for (int g = 0; g < FP_GROUPS; g++) {
		uint64_t v = 0;
		for (int i = 0; i < FP_GROUP_BYTES; i++)
			v = (v << 8) | h[g * FP_GROUP_BYTES + i];
		p += snprintf(p, (size_t)(out + FS_CRYPTO_FINGERPRINT_MAX - p), "%s%05u",
		              g ? " " : "", (unsigned)(v % 100000));
	}
	return FS_OK;
}

/* The signed bytes: label, length-prefixed context, message. */
static int signed_bytes(const char *context, const uint8_t *msg, size_t msg_len, uint8_t **out,
                        size_t *out_len, fs_errbuf *eb)
{
	size_t cl, n, o;
	uint8_t *b;

	*out = NULL;
	if (!fs_crypto_label_ok(context, FS_CRYPTO_CONTEXT_MAX + 1))
		return fs_err_set(eb, FS_E_ARG, "a signature context is 1 to %d of [A-Za-z0-9._-]",
		                  FS_CRYPTO_CONTEXT_MAX);
	if (msg == NULL && msg_len > 0)
		return fs_err_set(eb, FS_E_ARG, "no message");
	if (msg_len > FS_CRYPTO_SIGN_MAX)
		return fs_err_set(eb, FS_E_TOOBIG, "message of %zu bytes is over the signing limit",
		                  msg_len);
	cl = strlen(context);
	n = strlen(SIG_LABEL) + 4 + cl + msg_len;
	if ((b = malloc(n ? n : 1)) == NULL)
		return fs_err_set(eb, FS_E_NOMEM, "no memory to sign");
	memcpy(b, SIG_LABEL, strlen(SIG_LABEL));
	o = strlen(SIG_LABEL);
	o += fs_crypto_put_lp(b + o, context, cl);
	if (msg_len)
		memcpy(b + o, msg, msg_len);
	*out = b;
	*out_len = n;
	return FS_OK;
}

int fs_crypto_sign(const fs_identity *id, const char *context, const uint8_t *msg, size_t msg_len,
                   uint8_t sig[FS_CRYPTO_SIG_BYTES], fs_errbuf *eb)
{
	uint8_t *b = NULL;
	size_t n = 0;
	int r;

	if (sig == NULL || id == NULL)
		return fs_err_set(eb, FS_E_ARG, "identity and signature buffer are required");
	memset(sig, 0, FS_CRYPTO_SIG_BYTES);
	if ((r = signed_bytes(context, msg, msg_len, &b, &n, eb)) != FS_OK)
		return r;
	crypto_sign_detached(sig, NULL, b, n, id->sign_sk);
	/* The message may be a note: wipe the copy. */
	fs_crypto_plain_free(b, n);
	return FS_OK;
}

int fs_crypto_verify(const uint8_t sign_pk[FS_CRYPTO_SIGN_PK_BYTES], const char *context,
                     const uint8_t *msg, size_t msg_len, const uint8_t sig[FS_CRYPTO_SIG_BYTES],
                     fs_errbuf *eb)
{
	uint8_t *b = NULL;
	size_t n = 0;
	int r;

	if (sign_pk == NULL || sig == NULL)
		return fs_err_set(eb, FS_E_ARG, "public key and signature are required");
	if ((r = signed_bytes(context, msg, msg_len, &b, &n, eb)) != FS_OK)
		return r;
	if (crypto_sign_verify_detached(sig, b, n, sign_pk) != 0)
		r = fs_err_set(eb, FS_E_SIGNATURE, "the %s signature does not verify", context);
	fs_crypto_plain_free(b, n);
	return r;
}
