/*
 * crypto/envelope.c: the record envelope of DESIGN section 5, the byte
 * string store/ keeps and sync/ sends (format in docs/envelope.md). Sealing
 * writes the JSON directly; opening parses it with the bounded parser and
 * decrypts in place into the buffer it returns.
 */
#include "crypto_int.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#define ENV_DEPTH  4 /* envelope object, _revisions object, its ids array */
#define BIND_LABEL "fieldsync-env-bind"

static const char json_a[] = "{\"fs\":1,\"k\":\"";
static const char json_b[] = "\",\"n\":\"";
static const char json_c[] = "\",\"c\":\"";
static const char json_d[] = "\"}";

#define B64           sodium_base64_VARIANT_ORIGINAL
#define NONCE_B64_LEN (sodium_base64_ENCODED_LEN(FS_CRYPTO_NONCE_BYTES, B64) - 1)

static int doc_id_ok(const char *doc_id)
{
	size_t n;

	if (doc_id == NULL)
		return 0;
	n = strnlen(doc_id, FS_CRYPTO_DOC_ID_MAX + 1);
	return n > 0 && n <= FS_CRYPTO_DOC_ID_MAX;
}

size_t fs_crypto_env_ad(const char *space_id, const char *kid, const char *doc_id, uint8_t *out)
{
	size_t o = 0;

	out[o++] = FS_CRYPTO_ENV_VERSION;
	o += fs_crypto_put_lp(out + o, space_id, strlen(space_id));
	o += fs_crypto_put_lp(out + o, kid, strlen(kid));
	o += fs_crypto_put_lp(out + o, doc_id, strlen(doc_id));
	return o;
}

/* The public (space, _id) binding in the last bytes of the nonce: it lets
 * open tell a moved envelope from a damaged one before decrypting. */
void fs_crypto_env_bind(const char *space_id, const char *doc_id,
                        const uint8_t rnd[FS_CRYPTO_ENV_RAND_BYTES],
                        uint8_t out[FS_CRYPTO_ENV_BIND_BYTES])
{
	crypto_generichash_state st;
	uint8_t h[crypto_generichash_BYTES_MIN], len4[4], v = FS_CRYPTO_ENV_VERSION;

	crypto_generichash_init(&st, NULL, 0, sizeof(h));
	crypto_generichash_update(&st, (const uint8_t *)BIND_LABEL, strlen(BIND_LABEL));
	crypto_generichash_update(&st, &v, 1);
	fs_crypto_put_u32(len4, (uint32_t)strlen(space_id));
	crypto_generichash_update(&st, len4, 4);
	crypto_generichash_update(&st, (const uint8_t *)space_id, strlen(space_id));
	fs_crypto_put_u32(len4, (uint32_t)strlen(doc_id));
	crypto_generichash_update(&st, len4, 4);
	crypto_generichash_update(&st, (const uint8_t *)doc_id, strlen(doc_id));
	crypto_generichash_update(&st, rnd, FS_CRYPTO_ENV_RAND_BYTES);
	crypto_generichash_final(&st, h, sizeof(h));
	memcpy(out, h, FS_CRYPTO_ENV_BIND_BYTES);
}

int fs_crypto_env_seal_fixed(const fs_space_key *k, const char *doc_id, const uint8_t *plain,
                             size_t plain_len, const uint8_t rnd[FS_CRYPTO_ENV_RAND_BYTES],
                             char **out, size_t *out_len, fs_errbuf *eb)
{
	uint8_t ad[FS_CRYPTO_ENV_AD_MAX], nonce[FS_CRYPTO_NONCE_BYTES];
	size_t ad_len, kl, ct_len, n_b64, c_b64, total, o;
	uint8_t *ct = NULL;
	char *js = NULL;
	int r;

	if (out == NULL || out_len == NULL)
		return fs_err_set(eb, FS_E_ARG, "no output for the envelope");
	*out = NULL;
	*out_len = 0;
	if (k == NULL || (plain == NULL && plain_len > 0))
		return fs_err_set(eb, FS_E_ARG, "key and plaintext are required");
	if (!doc_id_ok(doc_id))
		return fs_err_set(eb, FS_E_ARG, "a document id is 1 to %d bytes",
		                  FS_CRYPTO_DOC_ID_MAX);
	if (plain_len > FS_CRYPTO_RECORD_MAX)
		return fs_err_set(eb, FS_E_TOOBIG, "record of %zu bytes is over the limit of %u",
		                  plain_len, FS_CRYPTO_RECORD_MAX);

	if (rnd)
		memcpy(nonce, rnd, FS_CRYPTO_ENV_RAND_BYTES);
	else
		randombytes_buf(nonce, FS_CRYPTO_ENV_RAND_BYTES);
	fs_crypto_env_bind(k->space, doc_id, nonce, nonce + FS_CRYPTO_ENV_RAND_BYTES);
	ad_len = fs_crypto_env_ad(k->space, k->kid, doc_id, ad);

	ct_len = plain_len + FS_CRYPTO_TAG_BYTES;
	if ((ct = malloc(ct_len)) == NULL) {
		r = fs_err_set(eb, FS_E_NOMEM, "no memory for a record of %zu bytes", plain_len);
		goto out;
	}
	crypto_aead_xchacha20poly1305_ietf_encrypt(ct, NULL, plain, plain_len, ad, ad_len, NULL,
	                                           nonce, k->key);

	/* Encoded lengths include base64's NUL; the member that follows each
	 * value overwrites it. */
	kl = strlen(k->kid);
	n_b64 = sodium_base64_ENCODED_LEN(FS_CRYPTO_NONCE_BYTES, B64);
	c_b64 = sodium_base64_ENCODED_LEN(ct_len, B64);
	total = sizeof(json_a) - 1 + kl + sizeof(json_b) - 1 + n_b64 - 1 + sizeof(json_c) - 1 +
	        c_b64 - 1 + sizeof(json_d) - 1;
	if ((js = malloc(total + 1)) == NULL) {
		r = fs_err_set(eb, FS_E_NOMEM, "no memory for an envelope of %zu bytes", total);
		goto out;
	}
	o = 0;
	memcpy(js + o, json_a, sizeof(json_a) - 1);
	o += sizeof(json_a) - 1;
	memcpy(js + o, k->kid, kl); /* kid characters need no JSON escaping */
	o += kl;
	memcpy(js + o, json_b, sizeof(json_b) - 1);
	o += sizeof(json_b) - 1;
	sodium_bin2base64(js + o, n_b64, nonce, sizeof(nonce), B64);
	o += n_b64 - 1;
	memcpy(js + o, json_c, sizeof(json_c) - 1);
	o += sizeof(json_c) - 1;
	sodium_bin2base64(js + o, c_b64, ct, ct_len, B64);
	o += c_b64 - 1;
	memcpy(js + o, json_d, sizeof(json_d));
	*out = js;
	*out_len = total;
	js = NULL;
	r = FS_OK;
out:
	free(ct);
	free(js);
	return r;
}

int fs_crypto_env_seal(const fs_space_key *k, const char *doc_id, const uint8_t *plain,
                       size_t plain_len, char **out, size_t *out_len, fs_errbuf *eb)
{
	return fs_crypto_env_seal_fixed(k, doc_id, plain, plain_len, NULL, out, out_len, eb);
}

/* Decodes base64 text of len characters into bin, which the caller sized
 * for len (libsodium's ERANGE also means "padding missing", so capacity is
 * never what fails here). */
static int unb64(const char *what, const char *s, size_t len, uint8_t *bin, size_t max,
                 size_t *bin_len, fs_errbuf *eb)
{
	const char *end = NULL;

	*bin_len = 0;
	if (sodium_base642bin(bin, max, s, len, NULL, bin_len, &end, B64) != 0 || end != s + len)
		return fs_err_set(eb, FS_E_BASE64, "envelope member %s is not valid base64", what);
	return FS_OK;
}

/* Checks the members; on success the pointers are cJSON's strings. */
static int members(const cJSON *j, const char *doc_id, const char **kid, const char **n,
                   const char **c, fs_errbuf *eb)
{
	const cJSON *fs = NULL, *m;
	int seen_id = 0, seen_rev = 0, seen_revs = 0;

	*kid = *n = *c = NULL;
	if (!cJSON_IsObject(j))
		return fs_err_set(eb, FS_E_INPUT, "an envelope is a JSON object");
	cJSON_ArrayForEach(m, j)
	{
		if (m->string != NULL && strcmp(m->string, "fs") == 0) {
			if (fs)
				return fs_err_set(eb, FS_E_INPUT, "envelope member fs repeated");
			fs = m;
		}
	}
	if (fs == NULL || !cJSON_IsNumber(fs))
		return fs_err_set(eb, FS_E_INPUT, "envelope without a numeric fs member");
	/* A newer version may have other members: report the version first. */
	if (fs->valuedouble != (double)FS_CRYPTO_ENV_VERSION)
		return fs_err_set(eb, FS_E_ENV_VERSION, "envelope version %g is not %d",
		                  fs->valuedouble, FS_CRYPTO_ENV_VERSION);
	cJSON_ArrayForEach(m, j)
	{
		const char *name = m->string;
		const char **slot = NULL;
		int *seen = NULL;

		if (name == NULL)
			return fs_err_set(eb, FS_E_INPUT, "envelope member without a name");
		if (m == fs)
			continue;
		if (strcmp(name, "k") == 0)
			slot = kid;
		else if (strcmp(name, "n") == 0)
			slot = n;
		else if (strcmp(name, "c") == 0)
			slot = c;
		else if (strcmp(name, "_id") == 0)
			seen = &seen_id;
		else if (strcmp(name, "_rev") == 0)
			seen = &seen_rev;
		else if (strcmp(name, "_revisions") == 0)
			seen = &seen_revs;
		else
			return fs_err_set(eb, FS_E_INPUT, "unknown envelope member");
		if (slot) {
			if (*slot)
				return fs_err_set(eb, FS_E_INPUT, "envelope member %s repeated",
				                  name);
			if (!cJSON_IsString(m) || m->valuestring == NULL)
				return fs_err_set(eb, FS_E_INPUT,
				                  "envelope member %s is not a string", name);
			*slot = m->valuestring;
			continue;
		}
		if (*seen)
			return fs_err_set(eb, FS_E_INPUT, "envelope member %s repeated", name);
		*seen = 1;
		if (seen == &seen_revs ? !cJSON_IsObject(m) : !cJSON_IsString(m))
			return fs_err_set(eb, FS_E_INPUT, "envelope member %s has the wrong type",
			                  name);
		/* The wire's _id is not authenticated, but a mismatch with the
		 * document the caller asked for is a misplaced envelope. */
		if (seen == &seen_id && strcmp(m->valuestring, doc_id) != 0)
			return fs_err_set(eb, FS_E_MISBOUND, "envelope carries another _id");
	}
	if (*kid == NULL || *n == NULL || *c == NULL)
		return fs_err_set(eb, FS_E_INPUT, "envelope lacks member %s",
		                  *kid == NULL ? "k"
		                  : *n == NULL ? "n"
		                               : "c");
	if (!fs_crypto_label_ok(*kid, FS_CRYPTO_KID_MAX))
		return fs_err_set(eb, FS_E_INPUT, "envelope kid is not a valid key id");
	return FS_OK;
}

int fs_crypto_env_open(const fs_keyring *ring, const char *space_id, const char *doc_id,
                       const char *env, size_t env_len, uint8_t **plain, size_t *plain_len,
                       fs_errbuf *eb)
{
	uint8_t ad[FS_CRYPTO_ENV_AD_MAX], nonce[FS_CRYPTO_NONCE_BYTES];
	uint8_t want[FS_CRYPTO_ENV_BIND_BYTES];
	const char *kid, *n64, *c64;
	const fs_space_key *k;
	size_t nl, cl, c64_len, cap, ad_len;
	uint8_t *buf = NULL;
	cJSON *j = NULL;
	int r;

	if (plain == NULL || plain_len == NULL)
		return fs_err_set(eb, FS_E_ARG, "no output for the plaintext");
	*plain = NULL;
	*plain_len = 0;
	if (ring == NULL || !fs_crypto_label_ok(space_id, FS_CRYPTO_SPACE_ID_MAX) ||
	    !doc_id_ok(doc_id))
		return fs_err_set(eb, FS_E_ARG, "key ring, valid space id and _id are required");
	if (env == NULL || env_len == 0)
		return fs_err_set(eb, FS_E_TRUNCATED, "empty envelope");
	if (env_len > FS_CRYPTO_ENV_MAX)
		return fs_err_set(eb, FS_E_TOOBIG, "envelope of %zu bytes is over the limit",
		                  env_len);
	if ((r = fs_json_parse(env, env_len, FS_CRYPTO_ENV_MAX, ENV_DEPTH, &j, eb)) != FS_OK) {
		/* JSON that starts as an object and does not end as one was
		 * most likely cut off (a short read, a partial download). */
		size_t e = env_len;
		while (e > 0 && (env[e - 1] == ' ' || env[e - 1] == '\n' || env[e - 1] == '\r' ||
		                 env[e - 1] == '\t'))
			e--;
		if (r == FS_E_INPUT && env[0] == '{' && (e == 0 || env[e - 1] != '}'))
			r = fs_err_set(eb, FS_E_TRUNCATED, "the envelope is truncated");
		goto out;
	}
	if ((r = members(j, doc_id, &kid, &n64, &c64, eb)) != FS_OK)
		goto out;

	if (strlen(n64) > NONCE_B64_LEN) {
		r = fs_err_set(eb, FS_E_INPUT, "the envelope nonce is longer than %d bytes",
		               FS_CRYPTO_NONCE_BYTES);
		goto out;
	}
	if ((r = unb64("n", n64, strlen(n64), nonce, sizeof(nonce), &nl, eb)) != FS_OK)
		goto out;
	if (nl < FS_CRYPTO_NONCE_BYTES) {
		r = fs_err_set(eb, FS_E_TRUNCATED, "the envelope nonce is truncated");
		goto out;
	}
	fs_crypto_env_bind(space_id, doc_id, nonce, want);
	if (memcmp(want, nonce + FS_CRYPTO_ENV_RAND_BYTES, sizeof(want)) != 0) {
		r = fs_err_set(eb, FS_E_MISBOUND,
		               "the envelope was sealed for another document or "
		               "space");
		goto out;
	}
	if ((k = fs_crypto_keyring_find(ring, kid)) == NULL) {
		r = fs_err_set(eb, FS_E_UNKNOWN_KID, "no key with kid %s", kid);
		goto out;
	}

	c64_len = strlen(c64);
	cap = c64_len / 4 * 3 + 3;
	if (cap > FS_CRYPTO_RECORD_MAX + FS_CRYPTO_TAG_BYTES + 3 + 3) {
		r = fs_err_set(eb, FS_E_TOOBIG, "the record is over the limit of %u bytes",
		               FS_CRYPTO_RECORD_MAX);
		goto out;
	}
	if ((buf = malloc(cap)) == NULL) {
		r = fs_err_set(eb, FS_E_NOMEM, "no memory for a record");
		goto out;
	}
	if ((r = unb64("c", c64, c64_len, buf, cap, &cl, eb)) != FS_OK)
		goto out;
	if (cl < FS_CRYPTO_TAG_BYTES) {
		r = fs_err_set(eb, FS_E_TRUNCATED, "the envelope ciphertext is truncated");
		goto out;
	}
	if (cl - FS_CRYPTO_TAG_BYTES > FS_CRYPTO_RECORD_MAX) {
		r = fs_err_set(eb, FS_E_TOOBIG, "the record is over the limit of %u bytes",
		               FS_CRYPTO_RECORD_MAX);
		goto out;
	}
	ad_len = fs_crypto_env_ad(space_id, kid, doc_id, ad);
	/* In place: libsodium checks the tag over the ciphertext before it
	 * writes any plaintext over it. */
	if (crypto_aead_xchacha20poly1305_ietf_decrypt_detached(
	        buf, NULL, buf, cl - FS_CRYPTO_TAG_BYTES, buf + cl - FS_CRYPTO_TAG_BYTES, ad,
	        ad_len, nonce, k->key) != 0) {
		r = fs_err_set(eb, FS_E_TAMPERED, "the envelope does not authenticate");
		goto out;
	}
	buf[cl - FS_CRYPTO_TAG_BYTES] = 0;
	*plain = buf;
	*plain_len = cl - FS_CRYPTO_TAG_BYTES;
	buf = NULL;
	r = FS_OK;
out:
	free(buf);
	cJSON_Delete(j);
	return r;
}
