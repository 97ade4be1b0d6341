/*
 * crypto/secret.c: small secrets (sync credentials) wrapped under the
 * device master key for storage in the store's meta table, and their
 * unwrapped form in locked memory, so the daemon can keep replicating after
 * the record keys are locked away.
 */
#include "crypto_int.h"

#include <stdlib.h>
#include <string.h>

#define SC_MAGIC     "FSSC"
#define SC_MAGIC_LEN 4
#define SC_VERSION   1
#define SC_HDR       (SC_MAGIC_LEN + 1)

struct fs_secret {
	size_t len;
	char data[]; /* len bytes and a NUL */
};

/* sodium_malloc puts a block at the end of its page: only a size that is a
 * multiple of the alignment keeps the struct aligned. */
static fs_secret *secret_alloc(size_t len)
{
	size_t n = (sizeof(fs_secret) + len + 1 + 15) & ~(size_t)15;
	return sodium_malloc(n);
}

int fs_crypto_secret_new(const uint8_t *data, size_t len, fs_secret **out, fs_errbuf *eb)
{
	fs_secret *s;

	if (out == NULL)
		return fs_err_set(eb, FS_E_ARG, "no output");
	*out = NULL;
	if (data == NULL || len == 0 || len > FS_CRYPTO_SECRET_MAX)
		return fs_err_set(eb, FS_E_ARG, "a secret is 1 to %u bytes", FS_CRYPTO_SECRET_MAX);
	if ((s = secret_alloc(len)) == NULL)
		return fs_err_set(eb, FS_E_NOMEM, "no memory for a secret");
	s->len = len;
	memcpy(s->data, data, len);
	s->data[len] = '\0';
	*out = s;
	return FS_OK;
}

void fs_crypto_secret_free(fs_secret *s)
{
	if (s)
		sodium_free(s); /* sodium_free wipes before it unmaps */
}

const char *fs_crypto_secret_data(const fs_secret *s)
{
	return s->data;
}

size_t fs_crypto_secret_len(const fs_secret *s)
{
	return s->len;
}

/* Associated data: magic, version, then the length-prefixed context. */
static size_t make_ad(uint8_t ad[SC_HDR + 4 + FS_CRYPTO_CONTEXT_MAX], const char *context)
{
	size_t n = 0;

	memcpy(ad, SC_MAGIC, SC_MAGIC_LEN);
	n += SC_MAGIC_LEN;
	ad[n++] = SC_VERSION;
	n += fs_crypto_put_lp(ad + n, context, strlen(context));
	return n;
}

static int context_ok(const char *context)
{
	size_t n;

	if (context == NULL)
		return 0;
	n = strlen(context);
	return n >= 1 && n <= FS_CRYPTO_CONTEXT_MAX;
}

int fs_crypto_secret_wrap(const fs_secret *s, const fs_key *master, const char *context,
                          uint8_t out[FS_CRYPTO_SECRET_WRAPPED_MAX], size_t *out_len, fs_errbuf *eb)
{
	uint8_t ad[SC_HDR + 4 + FS_CRYPTO_CONTEXT_MAX];
	size_t adn;

	if (out_len == NULL)
		return fs_err_set(eb, FS_E_ARG, "no output length");
	*out_len = 0;
	if (s == NULL || master == NULL || out == NULL || !context_ok(context))
		return fs_err_set(eb, FS_E_ARG, "secret, key, output and a context are required");
	adn = make_ad(ad, context);
	memcpy(out, SC_MAGIC, SC_MAGIC_LEN);
	out[SC_MAGIC_LEN] = SC_VERSION;
	fs_crypto_wrap(master->k, ad, adn, (const uint8_t *)s->data, s->len, NULL, out + SC_HDR);
	*out_len = SC_HDR + FS_CRYPTO_NONCE_BYTES + s->len + FS_CRYPTO_TAG_BYTES;
	return FS_OK;
}

int fs_crypto_secret_unwrap(const uint8_t *blob, size_t blob_len, const fs_key *master,
                            const char *context, fs_secret **out, fs_errbuf *eb)
{
	uint8_t ad[SC_HDR + 4 + FS_CRYPTO_CONTEXT_MAX];
	fs_secret *s = NULL;
	size_t adn, len;
	int rc = FS_E_INTERNAL;

	if (out == NULL)
		return fs_err_set(eb, FS_E_ARG, "no output");
	*out = NULL;
	if (master == NULL || !context_ok(context))
		return fs_err_set(eb, FS_E_ARG, "key and a context are required");
	if (blob == NULL || blob_len < SC_HDR || memcmp(blob, SC_MAGIC, SC_MAGIC_LEN) != 0)
		return fs_err_set(eb, FS_E_KEYFILE, "not a wrapped secret");
	if (blob[SC_MAGIC_LEN] != SC_VERSION)
		return fs_err_set(eb, FS_E_KEYFILE_VERSION, "wrapped secret version %u",
		                  blob[SC_MAGIC_LEN]);
	if (blob_len < SC_HDR + FS_CRYPTO_NONCE_BYTES + 1 + FS_CRYPTO_TAG_BYTES ||
	    blob_len > FS_CRYPTO_SECRET_WRAPPED_MAX)
		return fs_err_set(eb, FS_E_KEYFILE, "wrapped secret of a wrong length");
	len = blob_len - SC_HDR - FS_CRYPTO_NONCE_BYTES - FS_CRYPTO_TAG_BYTES;
	if ((s = secret_alloc(len)) == NULL) {
		rc = fs_err_set(eb, FS_E_NOMEM, "no memory for a secret");
		goto out;
	}
	adn = make_ad(ad, context);
	if (fs_crypto_unwrap(master->k, ad, adn, blob + SC_HDR, blob_len - SC_HDR,
	                     (uint8_t *)s->data) != 0) {
		rc = fs_err_set(eb, FS_E_TAMPERED, "the wrapped secret does not authenticate");
		goto out;
	}
	s->len = len;
	s->data[len] = '\0';
	*out = s;
	s = NULL;
	rc = FS_OK;
out:
	fs_crypto_secret_free(s);
	return rc;
}
