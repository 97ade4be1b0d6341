/*
 * crypto/envelope.c: the record envelope of DESIGN section 5, the byte
 * string store/ keeps and sync/ sends (format in docs/envelope.md). Sealing
 * encrypts into the JSON buffer and base64-encodes there; opening scans the
 * usual shape without a JSON tree (the bounded cJSON parser takes the rest)
 * and decodes and decrypts in place into the buffer it returns.
 */
#include "crypto_int.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#define ENV_DEPTH 4 /* envelope object, _revisions object, its ids array */

static const char json_a[] = "{\"fs\":1,\"k\":\"";
static const char json_b[] = "\",\"n\":\"";
static const char json_c[] = "\",\"c\":\"";
static const char json_d[] = "\"}";

#define B64_LEN(n)    (((n) + 2) / 3 * 4) /* padded base64 text of n bytes */
#define NONCE_B64_LEN B64_LEN(FS_CRYPTO_NONCE_BYTES)
#define B64_TAIL_MAX  12 /* bytes the in-place encoder finishes from a copy */

/* A member value found in the envelope text: not NUL-terminated. */
typedef struct span {
	const char *p;
	size_t len;
} span;

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

/*
 * Base64-encodes the n bytes at buf+in into buf+out, where the text ends
 * exactly where the bytes end (out + B64_LEN(n) == in + n), so the
 * ciphertext can be written into the envelope's own buffer and encoded
 * there. Front to back, in chunks whose text (and the NUL the encoder adds) ends
 * before the chunk's bytes begin; the gap shrinks as it goes, and the last
 * few bytes are encoded from a copy.
 */
static void b64_in_place(char *buf, size_t out, size_t in, size_t n)
{
	while (n > 0) {
		size_t take = (in - out - 1) / 4 * 3;

		if (take == 0) {
			char tail[B64_TAIL_MAX];
			memcpy(tail, buf + in, n); /* n <= B64_TAIL_MAX by the length rule */
			fs_crypto_b64_encode(buf + out, (const uint8_t *)tail, n);
			return;
		}
		if (take > n)
			take = n;
		fs_crypto_b64_encode(buf + out, (const uint8_t *)buf + in, take);
		out += B64_LEN(take);
		in += take;
		n -= take;
	}
}

int fs_crypto_env_seal_fixed(const fs_space_key *k, const char *doc_id, const uint8_t *plain,
                             size_t plain_len, const uint8_t nonce_in[FS_CRYPTO_NONCE_BYTES],
                             char **out, size_t *out_len, fs_errbuf *eb)
{
	uint8_t ad[FS_CRYPTO_ENV_AD_MAX], nonce[FS_CRYPTO_NONCE_BYTES];
	size_t ad_len, kl, ct_len, c_b64, total, o, ct_at;
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

	if (nonce_in)
		memcpy(nonce, nonce_in, sizeof(nonce));
	else
		fs_crypto_nonce(nonce);
	ad_len = fs_crypto_env_ad(k->space, k->kid, doc_id, ad);

	kl = strlen(k->kid);
	ct_len = plain_len + FS_CRYPTO_TAG_BYTES;
	c_b64 = B64_LEN(ct_len);
	total = sizeof(json_a) - 1 + kl + sizeof(json_b) - 1 + NONCE_B64_LEN + sizeof(json_c) - 1 +
	        c_b64 + sizeof(json_d) - 1;
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
	fs_crypto_b64_encode(js + o, nonce, sizeof(nonce)); /* its NUL is overwritten */
	o += NONCE_B64_LEN;
	memcpy(js + o, json_c, sizeof(json_c) - 1);
	o += sizeof(json_c) - 1;
	/* The ciphertext goes at the end of the text it becomes, and is encoded
	 * in place: no buffer of its own, no copy. */
	ct_at = o + c_b64 - ct_len;
	crypto_aead_xchacha20poly1305_ietf_encrypt_detached(
	    (uint8_t *)js + ct_at, (uint8_t *)js + ct_at + plain_len, NULL, plain, plain_len, ad,
	    ad_len, NULL, nonce, k->key);
	b64_in_place(js, o, ct_at, ct_len);
	o += c_b64;
	memcpy(js + o, json_d, sizeof(json_d));
	*out = js;
	*out_len = total;
	js = NULL;
	r = FS_OK;
out:
	free(js);
	return r;
}

int fs_crypto_env_seal(const fs_space_key *k, const char *doc_id, const uint8_t *plain,
                       size_t plain_len, char **out, size_t *out_len, fs_errbuf *eb)
{
	return fs_crypto_env_seal_fixed(k, doc_id, plain, plain_len, NULL, out, out_len, eb);
}

static int b64_value(char ch)
{
	if (ch >= 'A' && ch <= 'Z')
		return ch - 'A';
	if (ch >= 'a' && ch <= 'z')
		return ch - 'a' + 26;
	if (ch >= '0' && ch <= '9')
		return ch - '0' + 52;
	return ch == '+' ? 62 : ch == '/' ? 63 : -1;
}

/*
 * Decodes padded base64 (RFC 4648 section 4) of len characters into bin,
 * which holds at least len / 4 * 3 + 2 bytes. The decoder (crypto/b64.c) is
 * not constant-time (the ciphertext is public) and is strict about the
 * alphabet, padding and length; it accepts set bits under the padding,
 * which the canonical form forbids, so one ciphertext has one text.
 */
static int unb64(const char *what, const char *s, size_t len, uint8_t *bin, size_t *bin_len,
                 fs_errbuf *eb)
{
	size_t r;

	*bin_len = 0;
	if (len % 4 != 0)
		goto bad;
	r = fs_crypto_b64_decode(bin, s, len);
	if (r == SIZE_MAX)
		goto bad;
	if (len > 0 && s[len - 1] == '=') {
		int one = s[len - 2] == '=';
		int v = b64_value(s[len - (one ? 3 : 2)]);
		if (v < 0 || (v & (one ? 0x0f : 0x03)) != 0)
			goto bad;
	}
	*bin_len = r;
	return FS_OK;
bad:
	return fs_err_set(eb, FS_E_BASE64, "envelope member %s is not valid base64", what);
}

static const char *skip_ws(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
		p++;
	return p;
}

/* A JSON string at p without escapes: sets *v to its content. 0 if p is not
 * such a string (an escape is left to the general parser). */
static int plain_string(const char **pp, const char *end, span *v)
{
	const char *p = *pp, *q;

	if (p >= end || *p != '"')
		return 0;
	p++;
	if ((q = memchr(p, '"', (size_t)(end - p))) == NULL)
		return 0;
	v->p = p;
	v->len = (size_t)(q - p);
	*pp = q + 1;
	return 1;
}

/* 1 if the string holds only bytes JSON allows unescaped and no backslash. */
static int unescaped(const span *v)
{
	for (size_t i = 0; i < v->len; i++)
		if ((unsigned char)v->p[i] < 0x20 || v->p[i] == '\\')
			return 0;
	return 1;
}

/*
 * The envelope as fs_crypto_env_seal writes it, give or take whitespace,
 * member order and the wire's _id and _rev: found without building a JSON
 * tree. Returns 1 with k, n and c set, or 0 for anything else (escapes,
 * _revisions, a repeated or unknown member, another version, broken JSON),
 * which the general parser then accepts or names. n and c are not checked
 * here: base64 decoding refuses every character a string could hide.
 */
static int fast_members(const char *env, size_t len, const char *doc_id, span *kid, span *n,
                        span *c)
{
	const char *p = env, *end = env + len;
	int have_fs = 0, have_id = 0, have_rev = 0;

	kid->p = n->p = c->p = NULL;
	p = skip_ws(p, end);
	if (p >= end || *p++ != '{')
		return 0;
	for (;;) {
		span name, v;

		p = skip_ws(p, end);
		if (!plain_string(&p, end, &name))
			return 0;
		p = skip_ws(p, end);
		if (p >= end || *p++ != ':')
			return 0;
		p = skip_ws(p, end);
		if (name.len == 2 && memcmp(name.p, "fs", 2) == 0) {
			if (have_fs || end - p < 2 || p[0] != '1' ||
			    !(p[1] == ',' || p[1] == '}' || p[1] == ' ' || p[1] == '\n' ||
			      p[1] == '\r' || p[1] == '\t'))
				return 0;
			have_fs = 1;
			p++;
		} else {
			span *slot = NULL;
			int *seen = NULL;

			if (!plain_string(&p, end, &v))
				return 0;
			if (name.len == 1 && name.p[0] == 'k')
				slot = kid;
			else if (name.len == 1 && name.p[0] == 'n')
				slot = n;
			else if (name.len == 1 && name.p[0] == 'c')
				slot = c;
			else if (name.len == 3 && memcmp(name.p, "_id", 3) == 0)
				seen = &have_id;
			else if (name.len == 4 && memcmp(name.p, "_rev", 4) == 0)
				seen = &have_rev;
			else
				return 0;
			if (slot) {
				if (slot->p)
					return 0;
				*slot = v;
			} else {
				if (*seen || !unescaped(&v))
					return 0;
				*seen = 1;
				if (seen == &have_id &&
				    (v.len != strlen(doc_id) || memcmp(v.p, doc_id, v.len) != 0))
					return 0;
			}
		}
		p = skip_ws(p, end);
		if (p < end && *p == ',') {
			p++;
			continue;
		}
		if (p >= end || *p++ != '}')
			return 0;
		break;
	}
	if (skip_ws(p, end) != end || !have_fs || !kid->p || !n->p || !c->p)
		return 0;
	return 1;
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

/*
 * Everything after the JSON: decodes the nonce and the ciphertext straight
 * into the buffer that becomes the plaintext, finds the key and decrypts in
 * place. On success *plain holds *plain_len bytes and a NUL.
 */
static int open_parts(const fs_keyring *ring, const char *space_id, const char *doc_id,
                      const span *kid_s, const span *n64, const span *c64, uint8_t **plain,
                      size_t *plain_len, fs_errbuf *eb)
{
	uint8_t ad[FS_CRYPTO_ENV_AD_MAX], nonce[FS_CRYPTO_NONCE_BYTES + 2];
	char kid[FS_CRYPTO_KID_MAX];
	const fs_space_key *k;
	size_t nl, cl, cap, ad_len;
	uint8_t *buf = NULL;
	int r;

	if (kid_s->len >= sizeof(kid) || memchr(kid_s->p, 0, kid_s->len) != NULL)
		return fs_err_set(eb, FS_E_INPUT, "envelope kid is not a valid key id");
	memcpy(kid, kid_s->p, kid_s->len);
	kid[kid_s->len] = 0;
	if (!fs_crypto_label_ok(kid, FS_CRYPTO_KID_MAX))
		return fs_err_set(eb, FS_E_INPUT, "envelope kid is not a valid key id");
	if (n64->len > NONCE_B64_LEN)
		return fs_err_set(eb, FS_E_INPUT, "the envelope nonce is longer than %d bytes",
		                  FS_CRYPTO_NONCE_BYTES);
	if ((r = unb64("n", n64->p, n64->len, nonce, &nl, eb)) != FS_OK)
		return r;
	if (nl < FS_CRYPTO_NONCE_BYTES)
		return fs_err_set(eb, FS_E_TRUNCATED, "the envelope nonce is truncated");
	if ((k = fs_crypto_keyring_find(ring, kid)) == NULL)
		return fs_err_set(eb, FS_E_UNKNOWN_KID, "no key with kid %s", kid);

	cap = c64->len / 4 * 3 + 3;
	if (cap > FS_CRYPTO_RECORD_MAX + FS_CRYPTO_TAG_BYTES + 3 + 3)
		return fs_err_set(eb, FS_E_TOOBIG, "the record is over the limit of %u bytes",
		                  FS_CRYPTO_RECORD_MAX);
	if ((buf = malloc(cap)) == NULL)
		return fs_err_set(eb, FS_E_NOMEM, "no memory for a record");
	if ((r = unb64("c", c64->p, c64->len, buf, &cl, eb)) != FS_OK)
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
	 * writes any plaintext over it. The associated data binds space and
	 * _id, so a moved envelope fails here like a damaged one. */
	if (crypto_aead_xchacha20poly1305_ietf_decrypt_detached(
	        buf, NULL, buf, cl - FS_CRYPTO_TAG_BYTES, buf + cl - FS_CRYPTO_TAG_BYTES, ad,
	        ad_len, nonce, k->key) != 0) {
		r = fs_err_set(eb, FS_E_TAMPERED,
		               "the envelope does not authenticate: tampered with, or moved from "
		               "another document or space");
		goto out;
	}
	buf[cl - FS_CRYPTO_TAG_BYTES] = 0;
	*plain = buf;
	*plain_len = cl - FS_CRYPTO_TAG_BYTES;
	buf = NULL;
	r = FS_OK;
out:
	free(buf);
	return r;
}

int fs_crypto_env_open(const fs_keyring *ring, const char *space_id, const char *doc_id,
                       const char *env, size_t env_len, uint8_t **plain, size_t *plain_len,
                       fs_errbuf *eb)
{
	const char *kid, *n64, *c64;
	span ks, ns, cs;
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
	/* The common shape without a JSON tree. A format error found on that
	 * path may come from something the scan does not understand (an
	 * escape, a control character), so the general parser decides it. */
	if (fast_members(env, env_len, doc_id, &ks, &ns, &cs)) {
		r = open_parts(ring, space_id, doc_id, &ks, &ns, &cs, plain, plain_len, eb);
		if (r == FS_OK || r == FS_E_UNKNOWN_KID || r == FS_E_TAMPERED || r == FS_E_NOMEM)
			return r;
	}
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
	ks = (span){kid, strlen(kid)};
	ns = (span){n64, strlen(n64)};
	cs = (span){c64, strlen(c64)};
	r = open_parts(ring, space_id, doc_id, &ks, &ns, &cs, plain, plain_len, eb);
out:
	cJSON_Delete(j);
	return r;
}
