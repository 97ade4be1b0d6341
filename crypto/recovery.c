/*
 * crypto/recovery.c: the office recovery key (docs/team.md): an identity
 * like a device's whose secret halves are kept offline, printed or on
 * removable media, behind a passphrase of their own. Its text form and its
 * public key string, which people copy between machines and may mistype,
 * so the string carries a checksum.
 */
#include "crypto_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PUB_PREFIX  "fsrk1-"
#define PUB_CHECK   4
#define PUB_RAW     (FS_CRYPTO_BOX_PK_BYTES + FS_CRYPTO_SIGN_PK_BYTES + PUB_CHECK)
#define SECRET_RAW  (FS_CRYPTO_KEYFILE_BYTES + FS_CRYPTO_IDENTITY_WRAPPED_BYTES)
#define ARMOR_BEGIN "-----BEGIN FIELDSYNC RECOVERY KEY-----"
#define ARMOR_END   "-----END FIELDSYNC RECOVERY KEY-----"
#define ARMOR_LINE  64

static void check(const uint8_t *keys, uint8_t out[PUB_CHECK])
{
	static const char label[] = "fieldsync-recovery-v1";
	crypto_generichash_state st;

	crypto_generichash_init(&st, NULL, 0, PUB_CHECK);
	crypto_generichash_update(&st, (const uint8_t *)label, sizeof(label) - 1);
	crypto_generichash_update(&st, keys, FS_CRYPTO_BOX_PK_BYTES + FS_CRYPTO_SIGN_PK_BYTES);
	crypto_generichash_final(&st, out, PUB_CHECK);
}

void fs_crypto_recovery_public(const uint8_t box[FS_CRYPTO_BOX_PK_BYTES],
                               const uint8_t sign[FS_CRYPTO_SIGN_PK_BYTES],
                               char out[FS_CRYPTO_RECOVERY_PUB_MAX])
{
	uint8_t raw[PUB_RAW];

	memcpy(raw, box, FS_CRYPTO_BOX_PK_BYTES);
	memcpy(raw + FS_CRYPTO_BOX_PK_BYTES, sign, FS_CRYPTO_SIGN_PK_BYTES);
	check(raw, raw + FS_CRYPTO_BOX_PK_BYTES + FS_CRYPTO_SIGN_PK_BYTES);
	memcpy(out, PUB_PREFIX, sizeof(PUB_PREFIX) - 1);
	sodium_bin2base64(out + sizeof(PUB_PREFIX) - 1,
	                  FS_CRYPTO_RECOVERY_PUB_MAX - (sizeof(PUB_PREFIX) - 1), raw, sizeof(raw),
	                  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

int fs_crypto_recovery_parse_public(const char *s, uint8_t box[FS_CRYPTO_BOX_PK_BYTES],
                                    uint8_t sign[FS_CRYPTO_SIGN_PK_BYTES], fs_errbuf *eb)
{
	uint8_t raw[PUB_RAW], want[PUB_CHECK];
	const char *end = NULL;
	size_t n = 0;

	if (s == NULL || strncmp(s, PUB_PREFIX, sizeof(PUB_PREFIX) - 1) != 0 ||
	    strlen(s) >= FS_CRYPTO_RECOVERY_PUB_MAX)
		return fs_err_set(eb, FS_E_INPUT,
		                  "not a recovery public key (it starts with \"" PUB_PREFIX "\")");
	s += sizeof(PUB_PREFIX) - 1;
	if (sodium_base642bin(raw, sizeof(raw), s, strlen(s), NULL, &n, &end,
	                      sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
	    n != sizeof(raw) || end == NULL || *end != '\0')
		return fs_err_set(eb, FS_E_INPUT,
		                  "the recovery public key is cut short or mistyped");
	check(raw, want);
	if (sodium_memcmp(want, raw + PUB_RAW - PUB_CHECK, PUB_CHECK) != 0)
		return fs_err_set(
		    eb, FS_E_INPUT,
		    "the recovery public key is mistyped (its checksum does not match)");
	memcpy(box, raw, FS_CRYPTO_BOX_PK_BYTES);
	memcpy(sign, raw + FS_CRYPTO_BOX_PK_BYTES, FS_CRYPTO_SIGN_PK_BYTES);
	return FS_OK;
}

int fs_crypto_recovery_create(const char *pass, size_t pass_len, const fs_kdf_params *params,
                              char **text, size_t *text_len, char pub[FS_CRYPTO_RECOVERY_PUB_MAX],
                              fs_errbuf *eb)
{
	uint8_t raw[SECRET_RAW];
	char b64[((SECRET_RAW + 2) / 3) * 4 + 1];
	fs_key *master = NULL;
	fs_identity *id = NULL;
	char *t = NULL;
	size_t cap, len = 0, n;
	int rc;

	if (text == NULL || text_len == NULL || pub == NULL)
		return fs_err_set(eb, FS_E_ARG, "no output for the recovery key");
	*text = NULL;
	*text_len = 0;
	if ((rc = fs_crypto_keyfile_create(pass, pass_len, params, raw, &master, eb)) != FS_OK ||
	    (rc = fs_crypto_identity_new(&id, eb)) != FS_OK ||
	    (rc = fs_crypto_identity_wrap(id, master, raw + FS_CRYPTO_KEYFILE_BYTES, eb)) != FS_OK)
		goto out;
	fs_crypto_recovery_public(id->box_pk, id->sign_pk, pub);
	sodium_bin2base64(b64, sizeof(b64), raw, sizeof(raw), sodium_base64_VARIANT_ORIGINAL);
	cap = 1024 + strlen(b64) + strlen(b64) / ARMOR_LINE + 2;
	if ((t = malloc(cap)) == NULL) {
		rc = fs_err_set(eb, FS_E_NOMEM, "no memory for the recovery key");
		goto out;
	}
	len = (size_t)snprintf(
	    t, cap,
	    "fieldsync office recovery key (format 1)\n"
	    "Keep it offline: printed, or on removable media in a locked place.\n"
	    "With its passphrase it reads every space whose devices were given the\n"
	    "public key below (fieldsync init --recovery, fieldsync recovery set).\n"
	    "\npublic: %s\n\n" ARMOR_BEGIN "\n",
	    pub);
	for (size_t i = 0; i < strlen(b64); i += ARMOR_LINE) {
		n = strlen(b64) - i < ARMOR_LINE ? strlen(b64) - i : ARMOR_LINE;
		memcpy(t + len, b64 + i, n);
		len += n;
		t[len++] = '\n';
	}
	len += (size_t)snprintf(t + len, cap - len, ARMOR_END "\n");
	*text = t;
	*text_len = len;
	t = NULL;
	rc = FS_OK;
out:
	sodium_memzero(raw, sizeof(raw));
	sodium_memzero(b64, sizeof(b64));
	fs_crypto_key_free(master);
	fs_crypto_identity_free(id);
	free(t);
	return rc;
}

int fs_crypto_recovery_open(const char *text, size_t len, const char *pass, size_t pass_len,
                            fs_identity **out, fs_errbuf *eb)
{
	uint8_t raw[SECRET_RAW], box[FS_CRYPTO_BOX_PK_BYTES], sign[FS_CRYPTO_SIGN_PK_BYTES];
	char b64[((SECRET_RAW + 2) / 3) * 4 + 1], pub[FS_CRYPTO_RECOVERY_PUB_MAX];
	const char *p, *q, *end;
	fs_key *master = NULL;
	fs_identity *id = NULL;
	size_t n = 0, got = 0;
	int rc;

	if (out == NULL)
		return fs_err_set(eb, FS_E_ARG, "no output for the recovery key");
	*out = NULL;
	if (text == NULL || len > FS_CRYPTO_RECOVERY_TEXT_MAX || memchr(text, '\0', len))
		return fs_err_set(eb, FS_E_KEYFILE,
		                  "not a recovery key file (too large or binary)");
	/* The armored block: base64 lines between the two markers. */
	if ((p = memmem(text, len, ARMOR_BEGIN, sizeof(ARMOR_BEGIN) - 1)) == NULL ||
	    (q = memmem(p, len - (size_t)(p - text), ARMOR_END, sizeof(ARMOR_END) - 1)) == NULL)
		return fs_err_set(eb, FS_E_KEYFILE, "not a recovery key file (no key block)");
	for (p += sizeof(ARMOR_BEGIN) - 1; p < q; p++) {
		if (*p == '\n' || *p == '\r' || *p == ' ' || *p == '\t')
			continue;
		if (n + 1 >= sizeof(b64)) {
			rc = fs_err_set(eb, FS_E_KEYFILE, "the recovery key block is too long");
			goto out;
		}
		b64[n++] = *p;
	}
	b64[n] = '\0';
	if (sodium_base642bin(raw, sizeof(raw), b64, n, NULL, &got, &end,
	                      sodium_base64_VARIANT_ORIGINAL) != 0 ||
	    got != sizeof(raw) || end == NULL || *end != '\0') {
		rc = fs_err_set(eb, FS_E_KEYFILE, "the recovery key block is damaged");
		goto out;
	}
	if ((rc = fs_crypto_keyfile_unlock(raw, FS_CRYPTO_KEYFILE_BYTES, pass, pass_len, &master,
	                                   eb)) != FS_OK ||
	    (rc = fs_crypto_identity_unwrap(raw + FS_CRYPTO_KEYFILE_BYTES,
	                                    FS_CRYPTO_IDENTITY_WRAPPED_BYTES, master, &id, eb)) !=
	        FS_OK)
		goto out;
	/* The public line, when present, must name these keys: a file whose
	 * two halves were swapped is refused rather than half used. */
	if ((p = memmem(text, len, "public: ", 8)) != NULL) {
		p += 8;
		for (n = 0;
		     p + n < text + len && p[n] != '\n' && p[n] != '\r' && n + 1 < sizeof(pub); n++)
			pub[n] = p[n];
		pub[n] = '\0';
		if (fs_crypto_recovery_parse_public(pub, box, sign, eb) != FS_OK ||
		    sodium_memcmp(box, id->box_pk, sizeof(box)) != 0 ||
		    sodium_memcmp(sign, id->sign_pk, sizeof(sign)) != 0) {
			rc = fs_err_set(
			    eb, FS_E_TAMPERED,
			    "the recovery key file's public line does not match its key");
			goto out;
		}
	}
	*out = id;
	id = NULL;
	rc = FS_OK;
out:
	sodium_memzero(raw, sizeof(raw));
	sodium_memzero(b64, sizeof(b64));
	fs_crypto_key_free(master);
	fs_crypto_identity_free(id);
	return rc;
}
