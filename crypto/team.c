/*
 * crypto/team.c: the team documents of a space (docs/team.md) and how a set
 * of them resolves into the member devices, the revoked ones and the key
 * version new records use. Each document is a signed JSON text in a small
 * wrapper; one that does not parse or verify is kept as a problem and never
 * counts. Pure computation over public data: no store, no network, no
 * secret but the ones passed in to sign or to open a sealed key.
 */
#include "crypto_int.h"

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TEAM_FORMAT    1
#define TEAM_DEPTH     6
#define ID_HEX         32 /* characters of a device id */
#define ID_BYTES       16
#define B64_32         45 /* base64 of 32 bytes with padding, and NUL */
#define B64_64         89
#define B64_SEALED_MAX (((FS_CRYPTO_SPACEKEY_SEALED_MAX + 2) / 3) * 4 + 1)
#define WHY_MAX        sizeof(((fs_team_problem *)0)->why)
#define BODY_HASH      16

enum kind { K_DEVICE, K_MEMBER, K_EPOCH, K_KEY, K_N };
static const char *const kind_name[K_N] = {"device", "member", "epoch", "key"};
/* Signature contexts (docs/keys.md): one per kind, so a signature made for
 * one kind never verifies as another. */
static const char *const kind_ctx[K_N] = {"device", "member", "epoch", "keyenv"};

typedef char devid[FS_CRYPTO_DEVICE_ID_MAX];

/* The signed part of a document: its text, signature and a cache of the
 * check (a signer's key is fixed by its id, so one check is enough). */
struct tsig {
	char doc[FS_CRYPTO_TEAM_ID_MAX];
	uint8_t h[BODY_HASH]; /* of the stored body: fs_crypto_team_counts finds it */
	char *text;
	uint8_t sig[FS_CRYPTO_SIG_BYTES];
	int checked, ok;
};

struct tdev {
	fs_team_device pub;
	char space[FS_CRYPTO_SPACE_ID_MAX];
	char doc[FS_CRYPTO_TEAM_ID_MAX];
	uint8_t h[BODY_HASH];
};

struct tmember {
	char space[FS_CRYPTO_SPACE_ID_MAX];
	char kid[FS_CRYPTO_KID_MAX];
	devid id, by;
	int64_t at;
	struct tsig s;
};

struct tepoch {
	char space[FS_CRYPTO_SPACE_ID_MAX];
	char kid[FS_CRYPTO_KID_MAX], prev[FS_CRYPTO_KID_MAX];
	uint32_t version;
	devid by;
	int64_t at;
	devid *members, *revoked;
	size_t nm, nr;
	int has_rec;
	uint8_t rec_box[FS_CRYPTO_BOX_PK_BYTES], rec_sign[FS_CRYPTO_SIGN_PK_BYTES];
	devid rec_id;
	uint8_t commit[FS_CRYPTO_COMMIT_BYTES];
	struct tsig s;
	int state; /* resolve: 0 not reached, 1 valid, -1 refused */
	int dup;   /* resolve: another document signed for the same kid */
	uint64_t arrival;
	int on_chain;
};

struct tkey {
	char space[FS_CRYPTO_SPACE_ID_MAX];
	char kid[FS_CRYPTO_KID_MAX];
	devid to, by;
	int64_t at;
	uint8_t sealed[FS_CRYPTO_SPACEKEY_SEALED_MAX];
	size_t sealed_len;
	struct tsig s;
	int ok; /* resolve: of this space, a valid version, signed by a known sender */
};

/* A growable array of ids (members of an epoch, revoked devices). */
struct idset {
	devid *v;
	size_t n, cap;
};

struct fs_team {
	struct tdev *devs;
	struct tmember *mems;
	struct tepoch *eps;
	struct tkey *keys;
	fs_team_problem *probs;
	size_t nd, nmem, nep, nk, np;
	size_t cd, cmem, cep, ck, cp;
	size_t ndocs;
	size_t np_added; /* problems found by fs_crypto_team_add; resolve appends after */
	size_t np_more, np_more_added; /* problems past FS_CRYPTO_TEAM_PROBLEMS_MAX */

	/* resolved state */
	int resolved;
	char space[FS_CRYPTO_SPACE_ID_MAX];
	size_t genesis, head; /* indexes into eps */
	struct idset revoked;
	struct idset members; /* of the head */
	fs_team_device recovery;
	int has_recovery;
	int stale;
};

/* ---- small helpers ---- */

static int grow(void **v, size_t *cap, size_t n, size_t size)
{
	size_t nc;
	void *p;

	if (n < *cap)
		return 0;
	nc = *cap ? *cap * 2 : 8;
	if ((p = realloc(*v, nc * size)) == NULL)
		return -1;
	*v = p;
	*cap = nc;
	return 0;
}

static int ids_has(const struct idset *s, const char *id)
{
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->v[i], id) == 0)
			return 1;
	return 0;
}

static int ids_add(struct idset *s, const char *id)
{
	if (ids_has(s, id))
		return 0;
	if (grow((void **)&s->v, &s->cap, s->n, sizeof(devid)) != 0)
		return -1;
	snprintf(s->v[s->n++], sizeof(devid), "%s", id);
	return 0;
}

static void ids_free(struct idset *s)
{
	free(s->v);
	memset(s, 0, sizeof(*s));
}

static int is_devid(const char *s)
{
	size_t n = 0;

	if (s == NULL)
		return 0;
	for (; s[n]; n++)
		if (!((s[n] >= '0' && s[n] <= '9') || (s[n] >= 'a' && s[n] <= 'f')))
			return 0;
	return n == ID_HEX;
}

/* A device name: 1..64 bytes, no control characters (it is printed to a
 * terminal next to a fingerprint a person compares). */
int fs_crypto_device_name_ok(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (n == 0 || n >= FS_CRYPTO_DEVICE_NAME_MAX)
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 || c == 0x7f)
			return 0;
	}
	return 1;
}

/* A server token's public id: 1..64 letters and digits. */
int fs_crypto_token_id_ok(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (n == 0 || n >= FS_CRYPTO_TOKEN_ID_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'z') ||
		      (s[i] >= 'A' && s[i] <= 'Z')))
			return 0;
	return 1;
}

int fs_crypto_team_doc_id(const char *id)
{
	return id && strncmp(id, FS_CRYPTO_TEAM_PREFIX, sizeof(FS_CRYPTO_TEAM_PREFIX) - 1) == 0;
}

void fs_crypto_device_id(const uint8_t box_pk[FS_CRYPTO_BOX_PK_BYTES],
                         const uint8_t sign_pk[FS_CRYPTO_SIGN_PK_BYTES],
                         char out[FS_CRYPTO_DEVICE_ID_MAX])
{
	static const char label[] = "fieldsync-device-id-v1";
	crypto_generichash_state st;
	uint8_t h[ID_BYTES];

	crypto_generichash_init(&st, NULL, 0, sizeof(h));
	crypto_generichash_update(&st, (const uint8_t *)label, sizeof(label) - 1);
	crypto_generichash_update(&st, box_pk, FS_CRYPTO_BOX_PK_BYTES);
	crypto_generichash_update(&st, sign_pk, FS_CRYPTO_SIGN_PK_BYTES);
	crypto_generichash_final(&st, h, sizeof(h));
	sodium_bin2hex(out, FS_CRYPTO_DEVICE_ID_MAX, h, sizeof(h));
}

void fs_crypto_team_doc_clear(fs_team_doc *d)
{
	if (d == NULL)
		return;
	free(d->body);
	memset(d, 0, sizeof(*d));
}

static void b64(char *out, size_t cap, const uint8_t *p, size_t n)
{
	sodium_bin2base64(out, cap, p, n, sodium_base64_VARIANT_ORIGINAL);
}

/* Decodes exactly n bytes of base64. */
static int unb64(const char *s, uint8_t *out, size_t n)
{
	size_t got = 0;
	const char *end = NULL;

	if (s == NULL || sodium_base642bin(out, n, s, strlen(s), NULL, &got, &end,
	                                   sodium_base64_VARIANT_ORIGINAL) != 0)
		return -1;
	return got == n && end && *end == '\0' ? 0 : -1;
}

/* ---- building documents ---- */

/*
 * Signs body (an object it takes over) as a document of kind with signer,
 * and writes the wrapper {"fst":1,"t":kind,"b":text,"s":sig} to out.
 */
static int seal_doc(const fs_identity *signer, enum kind k, cJSON *body, const char *id,
                    fs_team_doc *out, fs_errbuf *eb)
{
	uint8_t sig[FS_CRYPTO_SIG_BYTES];
	char sig64[B64_64];
	char *text = NULL;
	cJSON *w = NULL;
	int rc;

	memset(out, 0, sizeof(*out));
	if (body == NULL || (text = cJSON_PrintUnformatted(body)) == NULL) {
		rc = fs_err_set(eb, FS_E_NOMEM, "no memory for a team document");
		goto out;
	}
	if ((rc = fs_crypto_sign(signer, kind_ctx[k], (const uint8_t *)text, strlen(text), sig,
	                         eb)) != FS_OK)
		goto out;
	b64(sig64, sizeof(sig64), sig, sizeof(sig));
	if ((w = cJSON_CreateObject()) == NULL || !cJSON_AddNumberToObject(w, "fst", TEAM_FORMAT) ||
	    !cJSON_AddStringToObject(w, "t", kind_name[k]) ||
	    !cJSON_AddStringToObject(w, "b", text) || !cJSON_AddStringToObject(w, "s", sig64) ||
	    (out->body = cJSON_PrintUnformatted(w)) == NULL) {
		rc = fs_err_set(eb, FS_E_NOMEM, "no memory for a team document");
		goto out;
	}
	out->len = strlen(out->body);
	snprintf(out->id, sizeof(out->id), "%s", id);
	rc = FS_OK;
out:
	cJSON_Delete(body);
	cJSON_Delete(w);
	if (text)
		cJSON_free(text);
	return rc;
}

static cJSON *body_new(const char *space, int64_t at_ms)
{
	cJSON *b = cJSON_CreateObject();

	if (b && (!cJSON_AddStringToObject(b, "space", space) ||
	          !cJSON_AddNumberToObject(b, "at", (double)at_ms))) {
		cJSON_Delete(b);
		return NULL;
	}
	return b;
}

static void self_id(const fs_identity *id, char out[FS_CRYPTO_DEVICE_ID_MAX])
{
	fs_crypto_device_id(id->box_pk, id->sign_pk, out);
}

int fs_crypto_team_device_doc(const fs_identity *self, const char *space_id, const char *name,
                              const char *token_id, int64_t at_ms, fs_team_doc *out, fs_errbuf *eb)
{
	char box[B64_32], sign[B64_32], idc[FS_CRYPTO_TEAM_ID_MAX];
	devid me;
	cJSON *b;

	if (out)
		memset(out, 0, sizeof(*out));
	if (self == NULL || out == NULL || !fs_crypto_label_ok(space_id, FS_CRYPTO_SPACE_ID_MAX))
		return fs_err_set(eb, FS_E_ARG, "bad arguments for a device document");
	if (!fs_crypto_device_name_ok(name))
		return fs_err_set(eb, FS_E_ARG,
		                  "a device name is 1 to %d bytes without control characters",
		                  FS_CRYPTO_DEVICE_NAME_MAX - 1);
	if (token_id && !fs_crypto_token_id_ok(token_id))
		return fs_err_set(eb, FS_E_ARG, "a token id is 1 to %d letters and digits",
		                  FS_CRYPTO_TOKEN_ID_MAX - 1);
	self_id(self, me);
	b64(box, sizeof(box), self->box_pk, FS_CRYPTO_BOX_PK_BYTES);
	b64(sign, sizeof(sign), self->sign_pk, FS_CRYPTO_SIGN_PK_BYTES);
	if ((b = body_new(space_id, at_ms)) == NULL || !cJSON_AddStringToObject(b, "id", me) ||
	    !cJSON_AddStringToObject(b, "name", name) || !cJSON_AddStringToObject(b, "box", box) ||
	    !cJSON_AddStringToObject(b, "sign", sign) ||
	    (token_id && !cJSON_AddStringToObject(b, "token", token_id))) {
		cJSON_Delete(b);
		return fs_err_set(eb, FS_E_NOMEM, "no memory for a team document");
	}
	snprintf(idc, sizeof(idc), FS_CRYPTO_TEAM_PREFIX "device:%s", me);
	return seal_doc(self, K_DEVICE, b, idc, out, eb);
}

int fs_crypto_team_member_doc(const fs_identity *signer, const char *space_id, const char *kid,
                              const char *device_id, int64_t at_ms, fs_team_doc *out, fs_errbuf *eb)
{
	char idc[FS_CRYPTO_TEAM_ID_MAX];
	devid by;
	cJSON *b;

	if (out)
		memset(out, 0, sizeof(*out));
	if (signer == NULL || out == NULL ||
	    !fs_crypto_label_ok(space_id, FS_CRYPTO_SPACE_ID_MAX) ||
	    fs_crypto_kid_version(kid) == 0 || !fs_crypto_label_ok(kid, FS_CRYPTO_KID_MAX) ||
	    !is_devid(device_id))
		return fs_err_set(eb, FS_E_ARG, "bad arguments for a member document");
	self_id(signer, by);
	if ((b = body_new(space_id, at_ms)) == NULL || !cJSON_AddStringToObject(b, "kid", kid) ||
	    !cJSON_AddStringToObject(b, "id", device_id) || !cJSON_AddStringToObject(b, "by", by)) {
		cJSON_Delete(b);
		return fs_err_set(eb, FS_E_NOMEM, "no memory for a team document");
	}
	snprintf(idc, sizeof(idc), FS_CRYPTO_TEAM_PREFIX "member:%s:%s:%s", kid, device_id, by);
	return seal_doc(signer, K_MEMBER, b, idc, out, eb);
}

int fs_crypto_team_key_doc(const fs_identity *signer, const fs_space_key *k, const char *to_id,
                           const uint8_t to_box[FS_CRYPTO_BOX_PK_BYTES], int64_t at_ms,
                           fs_team_doc *out, fs_errbuf *eb)
{
	uint8_t sealed[FS_CRYPTO_SPACEKEY_SEALED_MAX];
	char s64[B64_SEALED_MAX], idc[FS_CRYPTO_TEAM_ID_MAX];
	size_t sl = 0;
	devid by;
	cJSON *b;
	int rc;

	if (out)
		memset(out, 0, sizeof(*out));
	if (signer == NULL || k == NULL || out == NULL || !is_devid(to_id) || to_box == NULL)
		return fs_err_set(eb, FS_E_ARG, "bad arguments for a key document");
	if ((rc = fs_crypto_spacekey_seal(k, to_box, sealed, &sl, eb)) != FS_OK)
		return rc;
	b64(s64, sizeof(s64), sealed, sl);
	self_id(signer, by);
	if ((b = body_new(k->space, at_ms)) == NULL || !cJSON_AddStringToObject(b, "kid", k->kid) ||
	    !cJSON_AddStringToObject(b, "to", to_id) || !cJSON_AddStringToObject(b, "by", by) ||
	    !cJSON_AddStringToObject(b, "sealed", s64)) {
		cJSON_Delete(b);
		return fs_err_set(eb, FS_E_NOMEM, "no memory for a team document");
	}
	snprintf(idc, sizeof(idc), FS_CRYPTO_TEAM_PREFIX "key:%s:%s:%s", k->kid, to_id, by);
	return seal_doc(signer, K_KEY, b, idc, out, eb);
}

static cJSON *id_array(const char *const *ids, size_t n)
{
	cJSON *a = cJSON_CreateArray();

	for (size_t i = 0; a && i < n; i++) {
		cJSON *s = cJSON_CreateString(ids[i]);
		if (s == NULL || !cJSON_AddItemToArray(a, s)) {
			cJSON_Delete(s);
			cJSON_Delete(a);
			return NULL;
		}
	}
	return a;
}

int fs_crypto_team_epoch_doc(const fs_identity *signer, const fs_team_epoch_in *in,
                             fs_team_doc *out, fs_errbuf *eb)
{
	uint8_t commit[FS_CRYPTO_COMMIT_BYTES];
	char c64[B64_32], box[B64_32], sign[B64_32], idc[FS_CRYPTO_TEAM_ID_MAX];
	uint32_t v;
	devid by;
	cJSON *b = NULL, *m, *r, *rec;

	if (out)
		memset(out, 0, sizeof(*out));
	if (signer == NULL || in == NULL || in->key == NULL || out == NULL ||
	    (v = fs_crypto_kid_version(in->key->kid)) == 0 ||
	    in->n_members > FS_CRYPTO_TEAM_MEMBERS_MAX ||
	    in->n_revoked > FS_CRYPTO_TEAM_MEMBERS_MAX)
		return fs_err_set(eb, FS_E_ARG, "bad arguments for an epoch document");
	if ((in->prev == NULL) != (v == 1) ||
	    (in->prev && fs_crypto_kid_version(in->prev) + 1 != v))
		return fs_err_set(eb, FS_E_ARG,
		                  "an epoch follows the version before it (version 1 has none)");
	for (size_t i = 0; i < in->n_members; i++)
		if (!is_devid(in->members[i]))
			return fs_err_set(eb, FS_E_ARG, "a member is not a device id");
	for (size_t i = 0; i < in->n_revoked; i++)
		if (!is_devid(in->revoked[i]))
			return fs_err_set(eb, FS_E_ARG, "a revoked device is not a device id");
	self_id(signer, by);
	fs_crypto_spacekey_commit(in->key, commit);
	b64(c64, sizeof(c64), commit, sizeof(commit));
	if ((b = body_new(in->key->space, in->at_ms)) == NULL ||
	    !cJSON_AddStringToObject(b, "kid", in->key->kid) ||
	    !(in->prev ? cJSON_AddStringToObject(b, "prev", in->prev)
	               : cJSON_AddNullToObject(b, "prev")) ||
	    !cJSON_AddStringToObject(b, "by", by) || !cJSON_AddStringToObject(b, "commit", c64) ||
	    (m = id_array(in->members, in->n_members)) == NULL ||
	    !cJSON_AddItemToObject(b, "members", m) ||
	    (r = id_array(in->revoked, in->n_revoked)) == NULL ||
	    !cJSON_AddItemToObject(b, "revoked", r))
		goto nomem;
	if (in->recovery_box && in->recovery_sign) {
		b64(box, sizeof(box), in->recovery_box, FS_CRYPTO_BOX_PK_BYTES);
		b64(sign, sizeof(sign), in->recovery_sign, FS_CRYPTO_SIGN_PK_BYTES);
		if ((rec = cJSON_AddObjectToObject(b, "recovery")) == NULL ||
		    !cJSON_AddStringToObject(rec, "box", box) ||
		    !cJSON_AddStringToObject(rec, "sign", sign))
			goto nomem;
	} else if (!cJSON_AddNullToObject(b, "recovery")) {
		goto nomem;
	}
	snprintf(idc, sizeof(idc), FS_CRYPTO_TEAM_PREFIX "epoch:%s", in->key->kid);
	return seal_doc(signer, K_EPOCH, b, idc, out, eb);
nomem:
	cJSON_Delete(b);
	return fs_err_set(eb, FS_E_NOMEM, "no memory for a team document");
}

/* ---- reading documents ---- */

int fs_crypto_team_new(fs_team **out, fs_errbuf *eb)
{
	if (out == NULL)
		return fs_err_set(eb, FS_E_ARG, "no output for the team");
	if ((*out = calloc(1, sizeof(fs_team))) == NULL)
		return fs_err_set(eb, FS_E_NOMEM, "no memory for the team");
	return FS_OK;
}

void fs_crypto_team_free(fs_team *t)
{
	if (t == NULL)
		return;
	free(t->devs);
	for (size_t i = 0; i < t->nmem; i++)
		free(t->mems[i].s.text);
	free(t->mems);
	for (size_t i = 0; i < t->nep; i++) {
		free(t->eps[i].s.text);
		free(t->eps[i].members);
		free(t->eps[i].revoked);
	}
	free(t->eps);
	for (size_t i = 0; i < t->nk; i++)
		free(t->keys[i].s.text);
	free(t->keys);
	free(t->probs);
	ids_free(&t->revoked);
	ids_free(&t->members);
	free(t);
}

static int problem(fs_team *t, const char *doc, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int problem(fs_team *t, const char *doc, int code, const char *fmt, ...)
{
	fs_team_problem *p;
	va_list ap;

	for (size_t i = 0; i < t->np; i++)
		if (strcmp(t->probs[i].doc, doc) == 0)
			return FS_OK; /* one problem per document is enough */
	/* A flood of junk is counted, not kept one by one. */
	if (t->np >= FS_CRYPTO_TEAM_PROBLEMS_MAX) {
		t->np_more++;
		return FS_OK;
	}
	if (grow((void **)&t->probs, &t->cp, t->np, sizeof(*t->probs)) != 0)
		return FS_E_NOMEM;
	p = &t->probs[t->np++];
	memset(p, 0, sizeof(*p));
	snprintf(p->doc, sizeof(p->doc), "%s", doc);
	p->code = code;
	va_start(ap, fmt);
	vsnprintf(p->why, sizeof(p->why), fmt, ap);
	va_end(ap);
	return FS_OK;
}

static const char *jstr(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Copies a string member bounded by cap (NUL included); -1 when absent or too long. */
static int jcopy(const cJSON *o, const char *k, char *out, size_t cap)
{
	const char *s = jstr(o, k);

	if (s == NULL || strlen(s) >= cap)
		return -1;
	memcpy(out, s, strlen(s) + 1);
	return 0;
}

static int jtime(const cJSON *o, int64_t *at)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "at");

	if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 9.0e15)
		return -1;
	*at = (int64_t)v->valuedouble;
	return 0;
}

/* An array of device ids into a new array; -1 on a bad one or too many. */
static int jids(const cJSON *o, const char *k, devid **out, size_t *n)
{
	const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, k), *e;
	size_t i = 0, cnt;

	*out = NULL;
	*n = 0;
	if (!cJSON_IsArray(a) || (cnt = (size_t)cJSON_GetArraySize(a)) > FS_CRYPTO_TEAM_MEMBERS_MAX)
		return -1;
	if (cnt == 0)
		return 0;
	if ((*out = calloc(cnt, sizeof(devid))) == NULL)
		return -2;
	cJSON_ArrayForEach(e, a)
	{
		if (!cJSON_IsString(e) || !is_devid(e->valuestring)) {
			free(*out);
			*out = NULL;
			return -1;
		}
		memcpy((*out)[i++], e->valuestring, ID_HEX + 1);
	}
	*n = cnt;
	return 0;
}

/* Parses one device document's body into d (public keys checked against the id). */
static int read_device(const cJSON *b, struct tdev *d, const char **why)
{
	char box64[B64_32], sign64[B64_32];
	devid want;

	memset(d, 0, sizeof(*d));
	if (jcopy(b, "space", d->space, sizeof(d->space)) ||
	    jcopy(b, "id", d->pub.id, sizeof(devid)) ||
	    jcopy(b, "name", d->pub.name, sizeof(d->pub.name)) ||
	    jcopy(b, "box", box64, sizeof(box64)) || jcopy(b, "sign", sign64, sizeof(sign64)) ||
	    jtime(b, &d->pub.at_ms) || !fs_crypto_device_name_ok(d->pub.name) ||
	    !is_devid(d->pub.id) || unb64(box64, d->pub.box, sizeof(d->pub.box)) ||
	    unb64(sign64, d->pub.sign, sizeof(d->pub.sign))) {
		*why = "not a valid device document";
		return -1;
	}
	/* The server token the device says is its own (the hub binds it). */
	const cJSON *tok = cJSON_GetObjectItemCaseSensitive(b, "token");
	if (tok && (!cJSON_IsString(tok) || !fs_crypto_token_id_ok(tok->valuestring))) {
		*why = "not a valid device document";
		return -1;
	}
	if (tok)
		memcpy(d->pub.token, tok->valuestring, strlen(tok->valuestring) + 1);
	fs_crypto_device_id(d->pub.box, d->pub.sign, want);
	if (strcmp(want, d->pub.id) != 0) {
		*why = "the device id does not match its keys";
		return -1;
	}
	if (fs_crypto_fingerprint(d->pub.box, d->pub.sign, d->pub.fingerprint) != FS_OK) {
		*why = "no fingerprint";
		return -1;
	}
	return 0;
}

static int read_epoch(const cJSON *b, struct tepoch *e, const char **why)
{
	const cJSON *prev = cJSON_GetObjectItemCaseSensitive(b, "prev");
	const cJSON *rec = cJSON_GetObjectItemCaseSensitive(b, "recovery");
	char c64[B64_32], box64[B64_32], sign64[B64_32];
	int r;

	*why = "not a valid epoch document";
	if (jcopy(b, "space", e->space, sizeof(e->space)) ||
	    jcopy(b, "kid", e->kid, sizeof(e->kid)) || jcopy(b, "by", e->by, sizeof(devid)) ||
	    jcopy(b, "commit", c64, sizeof(c64)) || jtime(b, &e->at) || !is_devid(e->by) ||
	    !fs_crypto_label_ok(e->kid, FS_CRYPTO_KID_MAX) ||
	    (e->version = fs_crypto_kid_version(e->kid)) == 0 ||
	    unb64(c64, e->commit, sizeof(e->commit)))
		return -1;
	if (cJSON_IsNull(prev)) {
		e->prev[0] = '\0';
	} else if (!cJSON_IsString(prev) || jcopy(b, "prev", e->prev, sizeof(e->prev)) ||
	           fs_crypto_kid_version(e->prev) + 1 != e->version) {
		return -1;
	}
	if ((e->prev[0] == '\0') != (e->version == 1))
		return -1;
	if ((r = jids(b, "members", &e->members, &e->nm)) != 0 ||
	    (r = jids(b, "revoked", &e->revoked, &e->nr)) != 0)
		return r;
	if (cJSON_IsObject(rec)) {
		if (jcopy(rec, "box", box64, sizeof(box64)) ||
		    jcopy(rec, "sign", sign64, sizeof(sign64)) ||
		    unb64(box64, e->rec_box, sizeof(e->rec_box)) ||
		    unb64(sign64, e->rec_sign, sizeof(e->rec_sign)))
			return -1;
		e->has_rec = 1;
		fs_crypto_device_id(e->rec_box, e->rec_sign, e->rec_id);
	} else if (!cJSON_IsNull(rec)) {
		return -1;
	}
	return 0;
}

/* The id a document of kind must have, from its body: a document copied to
 * another id counts for nothing. */
static void want_id(enum kind k, const void *x, char out[FS_CRYPTO_TEAM_ID_MAX])
{
	const struct tdev *d = x;
	const struct tmember *m = x;
	const struct tepoch *e = x;
	const struct tkey *y = x;

	switch (k) {
	case K_DEVICE:
		snprintf(out, FS_CRYPTO_TEAM_ID_MAX, FS_CRYPTO_TEAM_PREFIX "device:%s", d->pub.id);
		break;
	case K_MEMBER:
		snprintf(out, FS_CRYPTO_TEAM_ID_MAX, FS_CRYPTO_TEAM_PREFIX "member:%s:%s:%s",
		         m->kid, m->id, m->by);
		break;
	case K_EPOCH:
		snprintf(out, FS_CRYPTO_TEAM_ID_MAX, FS_CRYPTO_TEAM_PREFIX "epoch:%s", e->kid);
		break;
	default:
		snprintf(out, FS_CRYPTO_TEAM_ID_MAX, FS_CRYPTO_TEAM_PREFIX "key:%s:%s:%s", y->kid,
		         y->to, y->by);
		break;
	}
}

int fs_crypto_team_add(fs_team *t, const char *doc_id, uint64_t arrival, const uint8_t *body,
                       size_t len, fs_errbuf *eb)
{
	cJSON *w = NULL, *b = NULL;
	const char *kname, *text, *s64, *why = "not a team document";
	char want[FS_CRYPTO_TEAM_ID_MAX];
	uint8_t sig[FS_CRYPTO_SIG_BYTES];
	enum kind k = K_N;
	uint8_t h[BODY_HASH];
	int rc = FS_OK, r;

	if (t == NULL || doc_id == NULL || (body == NULL && len))
		return fs_err_set(eb, FS_E_ARG, "bad arguments to team add");
	crypto_generichash(h, sizeof(h), body, len, NULL, 0);
	if (!fs_crypto_team_doc_id(doc_id) || strlen(doc_id) >= FS_CRYPTO_TEAM_ID_MAX) {
		why = "not a team document id";
		goto bad;
	}
	if (t->ndocs >= FS_CRYPTO_TEAM_DOCS_MAX)
		return fs_err_set(eb, FS_E_TOOBIG, "more than %u team documents",
		                  FS_CRYPTO_TEAM_DOCS_MAX);
	t->ndocs++;
	t->resolved = 0;
	if (len > FS_CRYPTO_TEAM_DOC_MAX) {
		why = "larger than a team document may be";
		goto bad;
	}
	if (fs_json_parse((const char *)body, len, FS_CRYPTO_TEAM_DOC_MAX, TEAM_DEPTH, &w, NULL) !=
	    FS_OK)
		goto bad;
	kname = jstr(w, "t");
	text = jstr(w, "b");
	s64 = jstr(w, "s");
	if (!cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(w, "fst")) ||
	    cJSON_GetObjectItemCaseSensitive(w, "fst")->valuedouble != TEAM_FORMAT ||
	    kname == NULL || text == NULL || s64 == NULL)
		goto bad;
	for (int i = 0; i < K_N; i++)
		if (strcmp(kname, kind_name[i]) == 0)
			k = (enum kind)i;
	if (k == K_N || unb64(s64, sig, sizeof(sig)) != 0 ||
	    fs_json_parse(text, strlen(text), FS_CRYPTO_TEAM_DOC_MAX, TEAM_DEPTH, &b, NULL) !=
	        FS_OK ||
	    !cJSON_IsObject(b))
		goto bad;

	struct tsig s = {0};
	memcpy(s.sig, sig, sizeof(sig));
	memcpy(s.h, h, sizeof(h));
	snprintf(s.doc, sizeof(s.doc), "%s", doc_id);
	if (k == K_DEVICE) {
		struct tdev d;
		if (read_device(b, &d, &why) != 0)
			goto bad;
		want_id(k, &d, want);
		if (strcmp(want, doc_id) != 0) {
			why = "stored under another document's id";
			goto bad;
		}
		/* Self-signed: the signature is checked now, with the keys it names. */
		if (fs_crypto_verify(d.pub.sign, kind_ctx[k], (const uint8_t *)text, strlen(text),
		                     sig, NULL) != FS_OK) {
			rc = problem(t, doc_id, FS_E_SIGNATURE, "its signature does not verify");
			goto out;
		}
		for (size_t i = 0; i < t->nd; i++)
			if (strcmp(t->devs[i].pub.id, d.pub.id) == 0) {
				/* The same device again (another leaf, another name): keep
				 * one by a rule every device applies alike. */
				struct tdev *o = &t->devs[i];
				if (d.pub.at_ms < o->pub.at_ms ||
				    (d.pub.at_ms == o->pub.at_ms &&
				     strcmp(d.pub.name, o->pub.name) < 0)) {
					snprintf(d.doc, sizeof(d.doc), "%s", doc_id);
					memcpy(d.h, h, sizeof(h));
					*o = d;
				}
				goto out;
			}
		snprintf(d.doc, sizeof(d.doc), "%s", doc_id);
		memcpy(d.h, h, sizeof(h));
		if (grow((void **)&t->devs, &t->cd, t->nd, sizeof(*t->devs)) != 0)
			goto nomem;
		t->devs[t->nd++] = d;
		goto out;
	}
	if ((s.text = strdup(text)) == NULL)
		goto nomem;
	if (k == K_MEMBER) {
		struct tmember m = {0};
		if (jcopy(b, "space", m.space, sizeof(m.space)) ||
		    jcopy(b, "kid", m.kid, sizeof(m.kid)) || jcopy(b, "id", m.id, sizeof(devid)) ||
		    jcopy(b, "by", m.by, sizeof(devid)) || jtime(b, &m.at) || !is_devid(m.id) ||
		    !is_devid(m.by) || fs_crypto_kid_version(m.kid) == 0) {
			free(s.text);
			why = "not a valid member document";
			goto bad;
		}
		m.s = s;
		want_id(k, &m, want);
		if (strcmp(want, doc_id) != 0 ||
		    grow((void **)&t->mems, &t->cmem, t->nmem, sizeof(*t->mems)) != 0) {
			free(s.text);
			if (strcmp(want, doc_id) != 0) {
				why = "stored under another document's id";
				goto bad;
			}
			goto nomem;
		}
		t->mems[t->nmem++] = m;
	} else if (k == K_EPOCH) {
		struct tepoch e = {0};
		if ((r = read_epoch(b, &e, &why)) != 0) {
			free(s.text);
			free(e.members);
			free(e.revoked);
			if (r == -2)
				goto nomem;
			goto bad;
		}
		e.s = s;
		e.arrival = arrival;
		want_id(k, &e, want);
		for (size_t i = 0; strcmp(want, doc_id) == 0 && i < t->nep; i++)
			if (strcmp(t->eps[i].kid, e.kid) == 0 &&
			    strcmp(t->eps[i].s.text, s.text) == 0) {
				/* The same document again (a copy kept by the device,
				 * another leaf): once is enough. */
				free(s.text);
				free(e.members);
				free(e.revoked);
				goto out;
			}
		if (strcmp(want, doc_id) != 0 ||
		    grow((void **)&t->eps, &t->cep, t->nep, sizeof(*t->eps)) != 0) {
			free(s.text);
			free(e.members);
			free(e.revoked);
			if (strcmp(want, doc_id) != 0) {
				why = "stored under another document's id";
				goto bad;
			}
			goto nomem;
		}
		t->eps[t->nep++] = e;
	} else {
		struct tkey y = {0};
		char sealed64[B64_SEALED_MAX];
		size_t sl = 0;
		const char *end = NULL;
		if (jcopy(b, "space", y.space, sizeof(y.space)) ||
		    jcopy(b, "kid", y.kid, sizeof(y.kid)) || jcopy(b, "to", y.to, sizeof(devid)) ||
		    jcopy(b, "by", y.by, sizeof(devid)) ||
		    jcopy(b, "sealed", sealed64, sizeof(sealed64)) || jtime(b, &y.at) ||
		    !is_devid(y.to) || !is_devid(y.by) || fs_crypto_kid_version(y.kid) == 0 ||
		    sodium_base642bin(y.sealed, sizeof(y.sealed), sealed64, strlen(sealed64), NULL,
		                      &sl, &end, sodium_base64_VARIANT_ORIGINAL) != 0 ||
		    end == NULL || *end != '\0') {
			free(s.text);
			why = "not a valid key document";
			goto bad;
		}
		y.sealed_len = sl;
		y.s = s;
		want_id(k, &y, want);
		if (strcmp(want, doc_id) != 0 ||
		    grow((void **)&t->keys, &t->ck, t->nk, sizeof(*t->keys)) != 0) {
			free(s.text);
			if (strcmp(want, doc_id) != 0) {
				why = "stored under another document's id";
				goto bad;
			}
			goto nomem;
		}
		t->keys[t->nk++] = y;
	}
	goto out;
bad:
	rc = problem(t, doc_id, FS_E_INPUT, "%s", why);
	goto out;
nomem:
	rc = FS_E_NOMEM;
out:
	cJSON_Delete(w);
	cJSON_Delete(b);
	t->np_added = t->np;
	t->np_more_added = t->np_more;
	if (rc == FS_E_NOMEM)
		return fs_err_set(eb, FS_E_NOMEM, "no memory for the team");
	return FS_OK;
}

/* ---- resolving ---- */

static const struct tdev *dev_find(const fs_team *t, const char *id)
{
	for (size_t i = 0; i < t->nd; i++)
		if (strcmp(t->devs[i].pub.id, id) == 0 && strcmp(t->devs[i].space, t->space) == 0)
			return &t->devs[i];
	return NULL;
}

/* Checks s with sign_pk once; later calls answer from the cache. */
static int sig_ok(struct tsig *s, enum kind k, const uint8_t *sign_pk)
{
	if (!s->checked) {
		s->ok = fs_crypto_verify(sign_pk, kind_ctx[k], (const uint8_t *)s->text,
		                         strlen(s->text), s->sig, NULL) == FS_OK;
		s->checked = 1;
	}
	return s->ok;
}

/*
 * The members of epoch e given the revoked set: those it lists, then, until
 * nothing changes, every device a member certificate of e's version admits
 * when a member (or e's recovery key) signed it. A revoked device never
 * counts, whoever approved it.
 */
static int members_of(fs_team *t, const struct tepoch *e, const struct idset *rev,
                      struct idset *out)
{
	int more = 1;

	out->n = 0;
	for (size_t i = 0; i < e->nm; i++)
		if (dev_find(t, e->members[i]) && !ids_has(rev, e->members[i]) &&
		    ids_add(out, e->members[i]) != 0)
			return FS_E_NOMEM;
	while (more) {
		more = 0;
		for (size_t i = 0; i < t->nmem; i++) {
			struct tmember *m = &t->mems[i];
			const struct tdev *signer;
			if (strcmp(m->kid, e->kid) != 0 || strcmp(m->space, t->space) != 0 ||
			    ids_has(out, m->id) || ids_has(rev, m->id) ||
			    dev_find(t, m->id) == NULL)
				continue;
			if (e->has_rec && strcmp(m->by, e->rec_id) == 0) {
				if (!sig_ok(&m->s, K_MEMBER, e->rec_sign))
					continue;
			} else if (ids_has(out, m->by) && (signer = dev_find(t, m->by)) != NULL) {
				if (!sig_ok(&m->s, K_MEMBER, signer->pub.sign))
					continue;
			} else {
				continue;
			}
			if (ids_add(out, m->id) != 0)
				return FS_E_NOMEM;
			more = 1;
		}
	}
	return FS_OK;
}

static const uint8_t *sender_key(const fs_team *t, const char *by);

/* The valid version with this kid (resolve marks them), or NULL. */
static const struct tepoch *valid_epoch(const fs_team *t, const char *kid)
{
	for (size_t i = 0; i < t->nep; i++)
		if (t->eps[i].state == 1 && strcmp(t->eps[i].kid, kid) == 0)
			return &t->eps[i];
	return NULL;
}

static int by_arrival(const void *a, const void *b)
{
	const struct tepoch *x = *(struct tepoch *const *)a, *y = *(struct tepoch *const *)b;

	if (x->arrival != y->arrival)
		return x->arrival < y->arrival ? -1 : 1;
	return strcmp(x->kid, y->kid);
}

/*
 * Of the children v of version p (each signed by someone), those that
 * stand and the one the chain follows, adding the revocations that count to
 * rev. Children signed by p's recovery key come first, then the others in
 * the order they arrived; each is judged against the members of p given the
 * revocations so far, recomputed after each one that stands: a child whose
 * signer an earlier one revoked, or who was let in only by a device an
 * earlier one revoked, is set aside with its revocations. So a revoked
 * device cannot answer its revocation, itself or through a device it let
 * in, with a version that revokes its revoker. Of those that stand the
 * recovery-signed one is followed, else the lowest kid: concurrent
 * rotations by members converge whatever order they arrived in, and all
 * their revocations hold. *out is NULL when none stands.
 */
static int pick(fs_team *t, struct tepoch *p, struct tepoch **v, size_t n, struct idset *rev,
                struct idset *pm, struct tepoch **out)
{
	struct tepoch *best = NULL;
	int best_rec = 0, stale = 1;

	*out = NULL;
	qsort(v, n, sizeof(*v), by_arrival);
	for (int pass = 1; pass >= 0; pass--)
		for (size_t i = 0; i < n; i++) {
			int rec = p->has_rec && strcmp(v[i]->by, p->rec_id) == 0;
			if (rec != pass)
				continue;
			if (!rec && stale) {
				if (members_of(t, p, rev, pm) != FS_OK)
					return FS_E_NOMEM;
				stale = 0;
			}
			if (!rec && (ids_has(rev, v[i]->by) || !ids_has(pm, v[i]->by))) {
				v[i]->state = -1;
				if (problem(
				        t, v[i]->s.doc, FS_E_SIGNATURE,
				        "a key version by a device revoked by an earlier one") !=
				    FS_OK)
					return FS_E_NOMEM;
				continue;
			}
			v[i]->state = 1;
			for (size_t j = 0; j < v[i]->nr; j++)
				if (ids_add(rev, v[i]->revoked[j]) != 0)
					return FS_E_NOMEM;
			stale |= v[i]->nr > 0;
			if (best == NULL || (rec && !best_rec) ||
			    (rec == best_rec && strcmp(v[i]->kid, best->kid) < 0)) {
				best = v[i];
				best_rec = rec;
			}
		}
	*out = best;
	return FS_OK;
}

static void reset(fs_team *t)
{
	t->np = t->np_added;
	t->np_more = t->np_more_added;
	t->resolved = 0;
	t->space[0] = '\0';
	t->revoked.n = 0;
	t->members.n = 0;
	t->has_recovery = 0;
	t->stale = 0;
	for (size_t i = 0; i < t->nep; i++) {
		t->eps[i].state = 0;
		t->eps[i].on_chain = 0;
		t->eps[i].dup = 0;
	}
	for (size_t i = 0; i < t->nd; i++) {
		t->devs[i].pub.status = 0;
		t->devs[i].pub.approved_by[0] = '\0';
		t->devs[i].pub.approved_ms = 0;
	}
}

static int find_genesis(fs_team *t, const char *genesis, size_t *out, fs_errbuf *eb)
{
	size_t found = 0, n = 0;

	for (size_t i = 0; i < t->nep; i++) {
		struct tepoch *e = &t->eps[i];
		const struct tdev *d = NULL;
		int listed = 0;
		if (e->prev[0] != '\0' || (genesis && strcmp(e->kid, genesis) != 0))
			continue;
		/* The founding device lists itself and signs with its own key. */
		for (size_t j = 0; j < e->nm; j++)
			listed |= strcmp(e->members[j], e->by) == 0;
		for (size_t j = 0; j < t->nd && d == NULL; j++)
			if (strcmp(t->devs[j].pub.id, e->by) == 0 &&
			    strcmp(t->devs[j].space, e->space) == 0)
				d = &t->devs[j];
		if (!listed || d == NULL || !sig_ok(&e->s, K_EPOCH, d->pub.sign)) {
			if (problem(t, e->s.doc, FS_E_SIGNATURE,
			            "a space's first version not signed by its founding device") !=
			    FS_OK)
				return fs_err_set(eb, FS_E_NOMEM, "no memory for the team");
			continue;
		}
		found = i;
		n++;
	}
	if (n == 0)
		return genesis ? fs_err_set(eb, FS_E_TEAM_NOSPACE,
		                            "the space's first version (%.40s) is not here (yet)",
		                            genesis)
		               : fs_err_set(eb, FS_E_TEAM_NOSPACE, NULL);
	/* Two signed first versions (two spaces, or one founder that signed two
	 * different documents for one kid): none is trusted. */
	if (n > 1)
		return fs_err_set(eb, FS_E_TEAM_AMBIGUOUS, "%zu signed first versions", n);
	*out = found;
	return FS_OK;
}

/* The signing key of an epoch's signer below parent p: p's recovery key,
 * or a device of the space; NULL when neither. */
static const uint8_t *epoch_signer(const fs_team *t, const struct tepoch *p, const struct tepoch *c,
                                   int *by_rec)
{
	const struct tdev *d;

	*by_rec = p->has_rec && strcmp(c->by, p->rec_id) == 0;
	if (*by_rec)
		return p->rec_sign;
	return (d = dev_find(t, c->by)) ? d->pub.sign : NULL;
}

/*
 * Children of p not judged yet, with the right version, into v (at most
 * t->nep). Of two or more documents for one kid whose signatures verify,
 * none counts: only a signer (a member, or the office) can make them, and
 * which one a device saw first differs per device. A document whose
 * signature fails counts for nothing either way.
 */
static int children(fs_team *t, const struct tepoch *p, struct tepoch **v, size_t *n)
{
	*n = 0;
	for (size_t i = 0; i < t->nep; i++) {
		struct tepoch *c = &t->eps[i];
		const uint8_t *pk;
		int rec;
		if (c->state != 0 || strcmp(c->prev, p->kid) != 0)
			continue;
		if (c->version != p->version + 1 || (pk = epoch_signer(t, p, c, &rec)) == NULL ||
		    !sig_ok(&c->s, K_EPOCH, pk)) {
			c->state = -1;
			if (problem(t, c->s.doc, FS_E_SIGNATURE,
			            "a key version not signed by a member of the one before") !=
			    FS_OK)
				return FS_E_NOMEM;
			continue;
		}
		v[(*n)++] = c;
	}
	for (size_t i = 0; i < *n; i++)
		for (size_t j = i + 1; j < *n; j++)
			if (strcmp(v[i]->kid, v[j]->kid) == 0)
				v[i]->dup = v[j]->dup = 1;
	for (size_t i = 0; i < *n;) {
		if (!v[i]->dup) {
			i++;
			continue;
		}
		v[i]->state = -1;
		if (problem(t, v[i]->s.doc, FS_E_INPUT,
		            "two signed documents for one key version") != FS_OK)
			return FS_E_NOMEM;
		v[i] = v[--*n];
	}
	return FS_OK;
}

int fs_crypto_team_resolve(fs_team *t, const char *genesis, fs_errbuf *eb)
{
	struct tepoch **kids = NULL, *cur, *next;
	struct idset pm = {0};
	size_t g = 0, nk = 0;
	int rc, more;

	if (t == NULL)
		return fs_err_set(eb, FS_E_ARG, "no team");
	reset(t);
	if ((rc = find_genesis(t, genesis, &g, eb)) != FS_OK)
		return rc;
	snprintf(t->space, sizeof(t->space), "%s", t->eps[g].space);
	if ((kids = calloc(t->nep ? t->nep : 1, sizeof(*kids))) == NULL)
		goto nomem;

	/* Documents of other spaces count for nothing here. */
	for (size_t i = 0; i < t->nd; i++)
		if (strcmp(t->devs[i].space, t->space) != 0 &&
		    problem(t, t->devs[i].doc, FS_E_MISBOUND, "for another space") != FS_OK)
			goto nomem;
	for (size_t i = 0; i < t->nep; i++)
		if (strcmp(t->eps[i].space, t->space) != 0) {
			t->eps[i].state = -1;
			if (problem(t, t->eps[i].s.doc, FS_E_MISBOUND, "for another space") !=
			    FS_OK)
				goto nomem;
		}

	/* The chain: from the first version, each step to the child the rule
	 * picks; revocations along it (and of valid siblings whose signer it
	 * does not revoke) accumulate. */
	cur = &t->eps[g];
	cur->state = 1;
	cur->on_chain = 1;
	for (size_t i = 0; i < cur->nr; i++)
		if (ids_add(&t->revoked, cur->revoked[i]) != 0)
			goto nomem;
	for (;;) {
		if (children(t, cur, kids, &nk) != FS_OK ||
		    pick(t, cur, kids, nk, &t->revoked, &pm, &next) != FS_OK)
			goto nomem;
		if (next == NULL)
			break;
		next->on_chain = 1;
		cur = next;
	}
	t->genesis = g;
	t->head = (size_t)(cur - t->eps);

	/* Versions off the chain (a rotation that lost a race, and what its
	 * author wrote after it) stay valid for reading: records sealed under
	 * them must stay readable to the members they were sealed to. */
	do {
		more = 0;
		for (size_t i = 0; i < t->nep; i++) {
			struct tepoch *p = &t->eps[i];
			if (p->state != 1)
				continue;
			if (children(t, p, kids, &nk) != FS_OK)
				goto nomem;
			if (nk && members_of(t, p, &t->revoked, &pm) != FS_OK)
				goto nomem;
			for (size_t j = 0; j < nk; j++) {
				struct tepoch *c = kids[j];
				int rec = p->has_rec && strcmp(c->by, p->rec_id) == 0;
				c->state =
				    rec || (!ids_has(&t->revoked, c->by) && ids_has(&pm, c->by))
				        ? 1
				        : -1;
				if (c->state < 0 &&
				    problem(t, c->s.doc, FS_E_SIGNATURE,
				            "a key version by a device that is no member") != FS_OK)
					goto nomem;
				more = 1;
			}
		}
	} while (more);
	for (size_t i = 0; i < t->nep; i++)
		if (t->eps[i].state == 0 &&
		    problem(t, t->eps[i].s.doc, FS_E_NOTFOUND,
		            "follows a key version that is not here") != FS_OK)
			goto nomem;

	/* Who is who, relative to the head. */
	if (members_of(t, cur, &t->revoked, &t->members) != FS_OK)
		goto nomem;
	for (size_t i = 0; i < t->nd; i++) {
		fs_team_device *d = &t->devs[i].pub;
		if (strcmp(t->devs[i].space, t->space) != 0)
			continue;
		d->status = ids_has(&t->revoked, d->id)   ? FS_TEAM_REVOKED
		            : ids_has(&t->members, d->id) ? FS_TEAM_MEMBER
		                                          : FS_TEAM_PENDING;
		/* Who let it in: the earliest valid certificate on the chain. */
		for (size_t j = 0; j < t->nmem; j++) {
			const struct tmember *m = &t->mems[j];
			if (strcmp(m->id, d->id) != 0 || !m->s.checked || !m->s.ok)
				continue;
			if (d->approved_by[0] == '\0' || m->at < d->approved_ms) {
				snprintf(d->approved_by, sizeof(d->approved_by), "%s", m->by);
				d->approved_ms = m->at;
			}
		}
	}
	/* Key documents count only when signed by a known sender for a valid
	 * version of this space: anyone can store one under any id. */
	for (size_t i = 0; i < t->nk; i++) {
		struct tkey *y = &t->keys[i];
		const uint8_t *spk;
		y->ok = strcmp(y->space, t->space) == 0 && valid_epoch(t, y->kid) != NULL &&
		        (spk = sender_key(t, y->by)) != NULL && sig_ok(&y->s, K_KEY, spk);
		if (!y->ok && problem(t, y->s.doc, FS_E_SIGNATURE,
		                      "a key document not signed by a known device for a valid "
		                      "version") != FS_OK)
			goto nomem;
	}
	/* The head is stale when a device it was sealed to is revoked now
	 * (concurrent rotations): a member rotates again (docs/team.md). */
	for (size_t i = 0; i < cur->nm && !t->stale; i++)
		t->stale = ids_has(&t->revoked, cur->members[i]);
	for (size_t i = 0; i < t->nk && !t->stale; i++)
		t->stale = t->keys[i].ok && strcmp(t->keys[i].kid, cur->kid) == 0 &&
		           ids_has(&t->revoked, t->keys[i].to);
	if (cur->has_rec) {
		t->has_recovery = 1;
		memset(&t->recovery, 0, sizeof(t->recovery));
		memcpy(t->recovery.id, cur->rec_id, sizeof(devid));
		memcpy(t->recovery.box, cur->rec_box, sizeof(cur->rec_box));
		memcpy(t->recovery.sign, cur->rec_sign, sizeof(cur->rec_sign));
		snprintf(t->recovery.name, sizeof(t->recovery.name), "office recovery key");
		if (fs_crypto_fingerprint(cur->rec_box, cur->rec_sign, t->recovery.fingerprint) !=
		    FS_OK)
			goto nomem;
		t->recovery.status = FS_TEAM_MEMBER;
	}
	t->resolved = 1;
	free(kids);
	ids_free(&pm);
	return FS_OK;
nomem:
	free(kids);
	ids_free(&pm);
	reset(t);
	return fs_err_set(eb, FS_E_NOMEM, "no memory for the team");
}

/* ---- answers ---- */

const char *fs_crypto_team_space(const fs_team *t)
{
	return t && t->resolved ? t->space : NULL;
}

const char *fs_crypto_team_genesis(const fs_team *t)
{
	return t && t->resolved ? t->eps[t->genesis].kid : NULL;
}

const char *fs_crypto_team_current(const fs_team *t)
{
	return t && t->resolved ? t->eps[t->head].kid : NULL;
}

int fs_crypto_team_stale(const fs_team *t)
{
	return t && t->resolved && t->stale;
}

size_t fs_crypto_team_device_count(const fs_team *t)
{
	return t ? t->nd : 0;
}

const fs_team_device *fs_crypto_team_device_at(const fs_team *t, size_t i)
{
	return t && i < t->nd ? &t->devs[i].pub : NULL;
}

const fs_team_device *fs_crypto_team_device_find(const fs_team *t, const char *id)
{
	if (t == NULL || id == NULL)
		return NULL;
	if (t->has_recovery && strcmp(t->recovery.id, id) == 0)
		return &t->recovery;
	for (size_t i = 0; i < t->nd; i++)
		if (strcmp(t->devs[i].pub.id, id) == 0 &&
		    (!t->resolved || strcmp(t->devs[i].space, t->space) == 0))
			return &t->devs[i].pub;
	return NULL;
}

const fs_team_device *fs_crypto_team_recovery(const fs_team *t)
{
	return t && t->resolved && t->has_recovery ? &t->recovery : NULL;
}

size_t fs_crypto_team_member_count(const fs_team *t)
{
	return t && t->resolved ? t->members.n : 0;
}

const char *fs_crypto_team_member_at(const fs_team *t, size_t i)
{
	return t && t->resolved && i < t->members.n ? t->members.v[i] : NULL;
}

size_t fs_crypto_team_revoked_count(const fs_team *t)
{
	return t && t->resolved ? t->revoked.n : 0;
}

const char *fs_crypto_team_revoked_at(const fs_team *t, size_t i)
{
	return t && t->resolved && i < t->revoked.n ? t->revoked.v[i] : NULL;
}

int fs_crypto_team_valid_kid(const fs_team *t, const char *kid)
{
	return t && t->resolved && kid && valid_epoch(t, kid) != NULL;
}

int fs_crypto_team_has_key(const fs_team *t, const char *kid, const char *to_id)
{
	if (t == NULL || kid == NULL || to_id == NULL)
		return 0;
	for (size_t i = 0; i < t->nk; i++)
		if (t->keys[i].ok && strcmp(t->keys[i].kid, kid) == 0 &&
		    strcmp(t->keys[i].to, to_id) == 0)
			return 1;
	return 0;
}

int fs_crypto_team_counts(const fs_team *t, const char *doc_id, const uint8_t *body, size_t len)
{
	uint8_t h[BODY_HASH];

	if (t == NULL || !t->resolved || doc_id == NULL)
		return 0;
	crypto_generichash(h, sizeof(h), body, len, NULL, 0);
	for (size_t i = 0; i < t->nd; i++)
		if (!strcmp(t->devs[i].doc, doc_id) && !memcmp(t->devs[i].h, h, sizeof(h)))
			return t->devs[i].pub.status != 0;
	for (size_t i = 0; i < t->nmem; i++)
		if (!strcmp(t->mems[i].s.doc, doc_id) && !memcmp(t->mems[i].s.h, h, sizeof(h)))
			return t->mems[i].s.checked && t->mems[i].s.ok;
	for (size_t i = 0; i < t->nep; i++)
		if (!strcmp(t->eps[i].s.doc, doc_id) && !memcmp(t->eps[i].s.h, h, sizeof(h)))
			return t->eps[i].state == 1;
	for (size_t i = 0; i < t->nk; i++)
		if (!strcmp(t->keys[i].s.doc, doc_id) && !memcmp(t->keys[i].s.h, h, sizeof(h)))
			return t->keys[i].ok;
	return 0;
}

size_t fs_crypto_team_problem_count(const fs_team *t)
{
	return t ? t->np : 0;
}

size_t fs_crypto_team_problems_more(const fs_team *t)
{
	return t ? t->np_more : 0;
}

const fs_team_problem *fs_crypto_team_problem_at(const fs_team *t, size_t i)
{
	return t && i < t->np ? &t->probs[i] : NULL;
}

/* The signing key of a key document's sender: a device of the space, or
 * the recovery key of any valid version. */
static const uint8_t *sender_key(const fs_team *t, const char *by)
{
	const struct tdev *d = dev_find(t, by);

	if (d)
		return d->pub.sign;
	for (size_t i = 0; i < t->nep; i++)
		if (t->eps[i].state == 1 && t->eps[i].has_rec && strcmp(t->eps[i].rec_id, by) == 0)
			return t->eps[i].rec_sign;
	return NULL;
}

int fs_crypto_team_open_keys(fs_team *t, const fs_identity *me, const char *to_id, fs_keyring *ring,
                             size_t *added, fs_errbuf *eb)
{
	uint8_t commit[FS_CRYPTO_COMMIT_BYTES];
	size_t n = 0;
	int rc;

	if (added)
		*added = 0;
	if (t == NULL || me == NULL || to_id == NULL || ring == NULL)
		return fs_err_set(eb, FS_E_ARG, "bad arguments to open team keys");
	if (!t->resolved)
		return fs_err_set(eb, FS_E_TEAM_NOSPACE, NULL);
	for (size_t i = 0; i < t->nk; i++) {
		struct tkey *y = &t->keys[i];
		const struct tepoch *e;
		fs_space_key *k = NULL;
		/* y->ok: signed by a known sender for a valid version (resolve). */
		if (!y->ok || strcmp(y->to, to_id) != 0 || fs_crypto_keyring_find(ring, y->kid) ||
		    (e = valid_epoch(t, y->kid)) == NULL)
			continue;
		rc = fs_crypto_spacekey_open(y->sealed, y->sealed_len, me, t->space, &k, NULL);
		if (rc == FS_E_NOMEM)
			return fs_err_set(eb, rc, "no memory for a space key");
		if (rc == FS_OK)
			fs_crypto_spacekey_commit(k, commit);
		/* The key must be the one its version published, not merely a key
		 * some device sealed to us under that kid. */
		if (rc != FS_OK || strcmp(k->kid, y->kid) != 0 ||
		    sodium_memcmp(commit, e->commit, sizeof(commit)) != 0) {
			fs_crypto_spacekey_free(k);
			if (problem(
			        t, y->s.doc, rc == FS_OK ? FS_E_TAMPERED : rc,
			        "a sealed key that does not open or does not match its version") !=
			    FS_OK)
				return fs_err_set(eb, FS_E_NOMEM, "no memory for the team");
			continue;
		}
		rc = fs_crypto_keyring_add(ring, k, eb);
		fs_crypto_spacekey_free(k);
		if (rc != FS_OK)
			return rc;
		n++;
	}
	if (added)
		*added = n;
	return FS_OK;
}
