/*
 * daemon/cwapi.c: the casework endpoints of the local API (/v1/cases,
 * /v1/visits, /v1/due, /v1/caseload, /v1/conflicts/resolve), kept thin: the
 * records and answers come from casework/, stored through the same
 * {"type","data"} envelopes as the generic record API. The in-memory index
 * lives while the vault is unlocked and is wiped on lock (vault.c).
 */
#include "daemon_int.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "casework.h"

#define CW_VERIFY_SLICE 256 /* signatures checked per casework request */
#define CW_ID_BYTES     16

static const char *jstr(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* The device id records name as their author and for the hybrid logical
 * clocks' tie-break: this device's team id (docs/team.md). */
static void device_id(const struct fsd *d, char out[FS_CW_ID_MAX + 1])
{
	snprintf(out, FS_CW_ID_MAX + 1, "%s", d->dev_id);
}

/* Before the index is wiped its sealed snapshot is saved (a `_local`
 * document, never replicated), so the next unlock reads only what changed. */
void fsd_cw_drop(struct fsd *d)
{
	fs_errbuf eb;

	if (d->cw && d->cur && fs_cw_index_save(d->cw, d->st, d->cur, &eb) != FS_OK)
		fsd_log(FS_DAEMON_LOG_WARN, "casework index not saved: %s", fs_errname(eb.code));
	fs_cw_index_free(d->cw);
	d->cw = NULL;
}

void fsd_cw_reset(struct fsd *d)
{
	fs_cw_index_free(d->cw);
	d->cw = NULL;
	d->cw_fresh = 1;
}

int fsd_cw_rules_load(const fs_daemon_config *cfg, fs_cw_config *out, fs_errbuf *eb)
{
	enum { RULES_MAX = 64 << 10 };
	char *buf = NULL;
	size_t n = 0;
	FILE *f = NULL;
	int rc;

	fs_cw_config_default(out);
	if (cfg->agency_rules[0] == '\0')
		return FS_OK;
	if ((f = fopen(cfg->agency_rules, "re")) == NULL) {
		rc = fs_err_set(eb, FS_E_DAEMON_CONFIG, "cannot read agency_rules %s: %s",
		                cfg->agency_rules, strerror(errno));
		goto out;
	}
	if ((buf = malloc(RULES_MAX + 1)) == NULL) {
		rc = fs_err_set(eb, FS_E_NOMEM, "out of memory");
		goto out;
	}
	n = fread(buf, 1, RULES_MAX + 1, f);
	if (ferror(f) || n > RULES_MAX) {
		rc = fs_err_set(eb, FS_E_DAEMON_CONFIG, "agency_rules %s: %s", cfg->agency_rules,
		                n > RULES_MAX ? "larger than 64 KiB" : "read error");
		goto out;
	}
	buf[n] = '\0';
	if ((rc = fs_cw_config_parse(buf, n, out, eb)) != FS_OK) {
		char why[sizeof(eb->msg)];
		snprintf(why, sizeof(why), "%s", eb->msg);
		rc = fs_err_set(eb, FS_E_DAEMON_CONFIG, "agency_rules %s: %s", cfg->agency_rules,
		                why);
		fs_cw_config_default(out);
	}
out:
	if (f)
		fclose(f);
	free(buf);
	return rc;
}

/* Signing keys the index trusts: every device of the team, and this
 * device's own under the name records had before teams ("dev-<space>"). */
static int trust_devices(struct fsd *d, fs_errbuf *eb)
{
	uint8_t *w = NULL, box[FS_CRYPTO_BOX_PK_BYTES], pk[FS_CRYPTO_SIGN_PK_BYTES];
	char legacy[FS_CW_ID_MAX + 1];
	size_t n = 0;
	int rc;

	if ((rc = fs_store_meta_get(d->st, FSD_META_IDENTITY, &w, &n, eb)) != FS_OK ||
	    (rc = fs_crypto_identity_wrapped_public(w, n, box, pk, eb)) != FS_OK)
		goto out;
	snprintf(legacy, sizeof(legacy), "dev-%.32s", d->space_id);
	if ((rc = fs_cw_index_trust(d->cw, legacy, pk, eb)) != FS_OK ||
	    (rc = fs_cw_index_trust(d->cw, d->dev_id, pk, eb)) != FS_OK)
		goto out;
	fsd_team_trust(d);
out:
	free(w);
	return rc;
}

/* The index, built at the first use after unlocking (restored from its saved
 * snapshot when there is one), then brought up to date with what changed in
 * the store since (local edits and pulled changes alike). */
int fsd_cw_index(struct fsd *d, fs_errbuf *eb)
{
	size_t left = 0;
	int rc;

	if ((rc = fsd_vault_ready(d, eb)) != FS_OK)
		return rc;
	if (d->cw == NULL) {
		if ((rc = fs_cw_index_new(&d->cw_rules, &d->cw, eb)) != FS_OK)
			return rc;
		if ((rc = trust_devices(d, eb)) != FS_OK) {
			fsd_cw_drop(d);
			return rc;
		}
		/* After new keys a saved snapshot lacks what they open: full load. */
		rc = d->cw_fresh ? FS_E_NOTFOUND
		                 : fs_cw_index_restore(d->cw, d->st, d->ring, d->space_id, eb);
		if (rc != FS_OK && rc != FS_E_NOTFOUND) {
			fsd_cw_drop(d);
			return rc;
		}
		d->cw_fresh = 0;
	}
	if ((rc = fs_cw_index_load(d->cw, d->st, d->ring, d->space_id, eb)) != FS_OK)
		return rc;
	/* Signatures are slow to check: a slice per request, never all at once. */
	return fs_cw_index_verify(d->cw, d->st, d->ring, d->space_id, CW_VERIFY_SLICE, &left, eb);
}

/* The current (or given) revision of id as casework plaintext text. */
static int get_record(struct fsd *d, const char *id, const char *rev, char **plain,
                      char got_rev[FS_REV_MAX], const char **type, fs_errbuf *eb)
{
	fs_store_doc *doc = NULL;
	cJSON *p = NULL;
	int rc;

	*plain = NULL;
	if ((rc = fs_store_get(d->st, id, rev, &doc, eb)) != FS_OK)
		goto out;
	if (doc->deleted) {
		rc = fs_err_set(eb, FS_E_NOTFOUND, "the record was deleted");
		goto out;
	}
	if ((rc = fsd_vault_open_doc(d, id, doc->body, doc->body_len, &p, eb)) != FS_OK)
		goto out;
	const char *t = jstr(p, "type");
	cJSON *data = cJSON_GetObjectItemCaseSensitive(p, "data");
	if (t == NULL || !cJSON_IsObject(data) ||
	    (strcmp(t, "case") && strcmp(t, "visit") && strcmp(t, "addendum"))) {
		rc = fs_err_set(eb, FS_E_NOTFOUND, "not a casework record");
		goto out;
	}
	*type = !strcmp(t, "case") ? "case" : !strcmp(t, "visit") ? "visit" : "addendum";
	if ((*plain = cJSON_PrintUnformatted(data)) == NULL) {
		rc = fs_err_set(eb, FS_E_NOMEM, NULL);
		goto out;
	}
	snprintf(got_rev, FS_REV_MAX, "%s", doc->rev);
	rc = FS_OK;
out:
	cJSON_Delete(p);
	fs_store_doc_free(doc);
	return rc;
}

static int body_text(const cJSON *body, const char *k, char **text, fs_errbuf *eb)
{
	const cJSON *f = cJSON_GetObjectItemCaseSensitive(body, k);

	*text = NULL;
	if (!cJSON_IsObject(f))
		return fs_err_set(eb, FS_E_ARG, "\"%s\" must be a JSON object", k);
	if ((*text = cJSON_PrintUnformatted(f)) == NULL)
		return fs_err_set(eb, FS_E_NOMEM, NULL);
	return FS_OK;
}

static cJSON *id_rev(const char *id, const char *rev)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "id", id);
	cJSON_AddStringToObject(o, "rev", rev);
	return o;
}

/* POST /v1/cases or /v1/visits {"fields":{...}} */
static int create(struct fsd *d, int visit, const cJSON *body, cJSON **out, fs_errbuf *eb)
{
	uint8_t r[CW_ID_BYTES];
	char id[2 * CW_ID_BYTES + 1], rev[FS_REV_MAX], dev[FS_CW_ID_MAX + 1];
	char *fields = NULL, *plain = NULL;
	size_t plen = 0;
	int rc;

	if ((rc = fsd_vault_writable(d, eb)) != FS_OK ||
	    (rc = body_text(body, "fields", &fields, eb)))
		goto out;
	device_id(d, dev);
	rc = visit
	         ? fs_cw_visit_create(fields, strlen(fields), dev, fsd_wall_ms(), &plain, &plen, eb)
	         : fs_cw_case_create(fields, strlen(fields), dev, fsd_wall_ms(), &plain, &plen, eb);
	if (rc != FS_OK)
		goto out;
	randombytes_buf(r, sizeof(r));
	sodium_bin2hex(id, sizeof(id), r, sizeof(r));
	if ((rc = fsd_record_put(d, id, NULL, visit ? "visit" : "case", plain, plen, rev, eb)) !=
	    FS_OK)
		goto out;
	*out = id_rev(id, rev);
out:
	if (fields)
		cJSON_free(fields); /* wiped by the hooks */
	if (plain)
		fs_crypto_plain_free((uint8_t *)plain, plen);
	return rc;
}

/* PUT /v1/cases/ID or /v1/visits/ID {"rev"?, "fields":{...}}: an edit on the
 * given revision (default: the current winner). */
static int edit(struct fsd *d, int visit, const char *id, const cJSON *body, cJSON **out,
                fs_errbuf *eb)
{
	char rev[FS_REV_MAX], nrev[FS_REV_MAX], dev[FS_CW_ID_MAX + 1];
	char *fields = NULL, *old = NULL, *plain = NULL;
	const char *type = NULL;
	size_t plen = 0;
	int rc;

	if ((rc = fsd_vault_writable(d, eb)) != FS_OK ||
	    (rc = body_text(body, "fields", &fields, eb)) ||
	    (rc = get_record(d, id, jstr(body, "rev"), &old, rev, &type, eb)) != FS_OK)
		goto out;
	if (strcmp(type, visit ? "visit" : "case") != 0) {
		rc = fs_err_set(eb, FS_E_NOTFOUND, "not a %s", visit ? "visit" : "case");
		goto out;
	}
	device_id(d, dev);
	rc = visit ? fs_cw_visit_edit(old, strlen(old), fields, strlen(fields), fsd_wall_ms(),
	                              &plain, &plen, eb)
	           : fs_cw_case_edit(old, strlen(old), fields, strlen(fields), dev, fsd_wall_ms(),
	                             &plain, &plen, eb);
	if (rc != FS_OK || (rc = fsd_record_put(d, id, rev, type, plain, plen, nrev, eb)) != FS_OK)
		goto out;
	*out = id_rev(id, nrev);
out:
	if (fields)
		cJSON_free(fields);
	if (old)
		cJSON_free(old);
	if (plain)
		fs_crypto_plain_free((uint8_t *)plain, plen);
	return rc;
}

/* POST /v1/visits/ID/finalize (no body) or /v1/visits/ID/addenda {"fields"}:
 * both are signed by this device. */
static int sign_visit(struct fsd *d, const char *vid, int addendum, const cJSON *body, cJSON **out,
                      fs_errbuf *eb)
{
	uint8_t r[CW_ID_BYTES];
	char rev[FS_REV_MAX], nrev[FS_REV_MAX], dev[FS_CW_ID_MAX + 1], aid[2 * CW_ID_BYTES + 1];
	char *fields = NULL, *old = NULL, *plain = NULL;
	const char *type = NULL;
	fs_identity *id = NULL;
	size_t plen = 0;
	int rc;

	if ((rc = fsd_vault_writable(d, eb)) != FS_OK ||
	    (addendum && (rc = body_text(body, "fields", &fields, eb)) != FS_OK) ||
	    (rc = get_record(d, vid, NULL, &old, rev, &type, eb)) != FS_OK)
		goto out;
	if (strcmp(type, "visit") != 0) {
		rc = fs_err_set(eb, FS_E_NOTFOUND, "not a visit");
		goto out;
	}
	if ((rc = fsd_vault_identity(d, &id, eb)) != FS_OK)
		goto out;
	device_id(d, dev);
	if (!addendum) {
		if ((rc = fs_cw_visit_finalize(old, strlen(old), id, dev, fsd_wall_ms(), &plain,
		                               &plen, eb)) != FS_OK ||
		    (rc = fsd_record_put(d, vid, rev, "visit", plain, plen, nrev, eb)) != FS_OK)
			goto out;
		*out = id_rev(vid, nrev);
		goto out;
	}
	randombytes_buf(r, sizeof(r));
	sodium_bin2hex(aid, sizeof(aid), r, sizeof(r));
	if ((rc = fs_cw_addendum_create(old, strlen(old), vid, fields, strlen(fields), id, dev,
	                                fsd_wall_ms(), &plain, &plen, eb)) != FS_OK ||
	    (rc = fsd_record_put(d, aid, NULL, "addendum", plain, plen, nrev, eb)) != FS_OK)
		goto out;
	*out = id_rev(aid, nrev);
out:
	fs_crypto_identity_free(id);
	if (fields)
		cJSON_free(fields);
	if (old)
		cJSON_free(old);
	if (plain)
		fs_crypto_plain_free((uint8_t *)plain, plen);
	return rc;
}

static const char *sig_word(int sig)
{
	return sig == FS_CW_SIG_OK        ? "verified"
	       : sig == FS_CW_SIG_BAD     ? "FAILED"
	       : sig == FS_CW_SIG_PENDING ? "not checked yet"
	                                  : "none (draft)";
}

#define CW_ADDENDA_MAX 1000 /* addenda shown with one visit (then addenda_truncated) */

/* A visit's signature state and its addenda, each with its own state: a
 * signature that does not verify is shown, never hidden. */
static int visit_extras(struct fsd *d, const char *id, cJSON *o, fs_errbuf *eb)
{
	const char **ids = NULL;
	cJSON *arr;
	size_t n = 0;
	int rc;

	if ((rc = fsd_cw_index(d, eb)) != FS_OK ||
	    (rc = fs_cw_addenda(d->cw, id, &ids, &n, eb)) != FS_OK)
		return rc;
	cJSON_AddStringToObject(o, "signature", sig_word(fs_cw_index_sig(d->cw, id)));
	cJSON_AddBoolToObject(o, "addenda_truncated", n > CW_ADDENDA_MAX);
	arr = cJSON_AddArrayToObject(o, "addenda");
	for (size_t i = 0; arr && i < n && i < CW_ADDENDA_MAX; i++) {
		char rev[FS_REV_MAX], *plain = NULL;
		const char *type = NULL;
		fs_errbuf e2;
		cJSON *a;
		if ((rc = get_record(d, ids[i], NULL, &plain, rev, &type, &e2)) != FS_OK) {
			if (rc == FS_E_NOTFOUND)
				continue; /* deleted since it was indexed */
			/* One this device cannot open (tampered, or under a key it
			 * lacks) is listed with why, never left out. */
			a = cJSON_CreateObject();
			cJSON_AddStringToObject(a, "id", ids[i]);
			cJSON_AddStringToObject(a, "error", fs_errname(rc));
			cJSON_AddItemToArray(arr, a);
			continue;
		}
		a = cJSON_CreateObject();
		cJSON_AddStringToObject(a, "id", ids[i]);
		cJSON_AddStringToObject(a, "rev", rev);
		cJSON_AddStringToObject(a, "signature", sig_word(fs_cw_index_sig(d->cw, ids[i])));
		cJSON_AddItemToObject(a, "data", cJSON_Parse(plain));
		cJSON_AddItemToArray(arr, a);
		cJSON_free(plain);
	}
	free(ids);
	return FS_OK;
}

static int show(struct fsd *d, const char *want, const char *id, cJSON **out, fs_errbuf *eb)
{
	char rev[FS_REV_MAX], *plain = NULL;
	const char *type = NULL;
	int rc;

	if ((rc = fsd_vault_ready(d, eb)) != FS_OK ||
	    (rc = get_record(d, id, NULL, &plain, rev, &type, eb)) != FS_OK)
		goto out;
	if (strcmp(type, want) != 0) {
		rc = fs_err_set(eb, FS_E_NOTFOUND, "not a %s", want);
		goto out;
	}
	*out = cJSON_CreateObject();
	cJSON_AddStringToObject(*out, "id", id);
	cJSON_AddStringToObject(*out, "rev", rev);
	cJSON_AddItemToObject(*out, "data", cJSON_Parse(plain));
	if (strcmp(want, "visit") == 0 && (rc = visit_extras(d, id, *out, eb)) != FS_OK) {
		cJSON_Delete(*out);
		*out = NULL;
	}
out:
	if (plain)
		cJSON_free(plain);
	return rc;
}

/* A casework answer (JSON text holding names) as cJSON; the text is wiped. */
static int answer(int rc, char *text, size_t len, cJSON **out, fs_errbuf *eb)
{
	if (rc != FS_OK)
		return rc;
	*out = cJSON_ParseWithLength(text, len);
	fs_crypto_plain_free((uint8_t *)text, len);
	return *out ? FS_OK : fs_err_set(eb, FS_E_NOMEM, NULL);
}

#define CW_VISITS_MAX 10000 /* visits in one list answer (then "truncated") */

struct visits_ctx {
	struct fsd *d;
	const char *case_id;
	cJSON *arr;
	size_t n;
};

static int visits_cb(void *ctx, const fs_store_change *ch)
{
	struct visits_ctx *vc = ctx;
	char rev[FS_REV_MAX], *plain = NULL;
	const char *type = NULL;
	fs_errbuf e2;
	cJSON *v;

	if (ch->deleted)
		return 0;
	if (vc->n >= CW_VISITS_MAX)
		return 1;
	if (get_record(vc->d, ch->id, NULL, &plain, rev, &type, &e2) != FS_OK)
		return 0;
	if (!strcmp(type, "visit") && fs_json_parse(plain, strlen(plain), FS_CRYPTO_RECORD_MAX,
	                                            FS_JSON_DEPTH_DEFAULT, &v, &e2) == FS_OK) {
		const char *c = jstr(v, "case");
		if (vc->case_id == NULL || (c && !strcmp(c, vc->case_id))) {
			cJSON *o = cJSON_CreateObject();
			cJSON_AddStringToObject(o, "id", ch->id);
			cJSON_AddStringToObject(o, "rev", rev);
			cJSON_AddItemToObject(o, "data", v);
			cJSON_AddItemToArray(vc->arr, o);
			vc->n++;
		} else {
			cJSON_Delete(v);
		}
	}
	cJSON_free(plain);
	return 0;
}

static int list_visits(struct fsd *d, const char *case_id, cJSON **out, fs_errbuf *eb)
{
	struct visits_ctx vc = {d, case_id, NULL, 0};
	cJSON *o = cJSON_CreateObject();
	int rc;

	if ((rc = fsd_vault_ready(d, eb)) != FS_OK || o == NULL ||
	    (vc.arr = cJSON_AddArrayToObject(o, "visits")) == NULL) {
		cJSON_Delete(o);
		return rc != FS_OK ? rc : fs_err_set(eb, FS_E_NOMEM, NULL);
	}
	rc = fs_store_changes(d->st, 0, 0, visits_cb, &vc, NULL, eb);
	if (rc != FS_OK && rc != 1) {
		cJSON_Delete(o);
		return rc;
	}
	cJSON_AddBoolToObject(o, "truncated", rc == 1);
	*out = o;
	return FS_OK;
}

static int resolve(struct fsd *d, cJSON **out, fs_errbuf *eb)
{
	fs_cw_conflicts *c = NULL;
	char *text = NULL;
	size_t len = 0;
	int rc;

	if ((rc = fsd_vault_writable(d, eb)) != FS_OK ||
	    (rc = fs_cw_resolve(d->st, d->ring, d->space_id, d->cur, &c, eb)) != FS_OK ||
	    (rc = fs_cw_conflicts_json(c, &text, &len, eb)) != FS_OK)
		goto out;
	if (c->n_resolved)
		fsd_remotes_local_edit(d);
	if ((*out = cJSON_ParseWithLength(text, len)) == NULL)
		rc = fs_err_set(eb, FS_E_NOMEM, NULL);
out:
	free(text);
	fs_cw_conflicts_free(c);
	return rc;
}

int fsd_cw_route(struct fsd *d, const char *method, char **s, size_t n, const char *q,
                 const char *case_id, const char *now_s, const char *all_s, const cJSON *body,
                 cJSON **out, unsigned *status, fs_errbuf *eb)
{
	int get = !strcmp(method, "GET"), post = !strcmp(method, "POST");
	int put = !strcmp(method, "PUT");
	int cases = !strcmp(s[1], "cases"), visits = !strcmp(s[1], "visits");
	char *text = NULL;
	size_t len = 0;
	int rc;

	if ((cases || visits) && n == 2 && post) {
		*status = 201;
		return create(d, visits, body, out, eb);
	}
	if ((cases || visits) && n >= 3 && strlen(s[2]) > FS_STORE_ID_MAX)
		return fs_err_set(eb, FS_E_ARG, "record id too long");
	if ((cases || visits) && n == 3 && put)
		return edit(d, visits, s[2], body, out, eb);
	if ((cases || visits) && n == 3 && get)
		return show(d, cases ? "case" : "visit", s[2], out, eb);
	if (visits && n == 4 && post && !strcmp(s[3], "finalize"))
		return sign_visit(d, s[2], 0, body, out, eb);
	if (visits && n == 4 && post && !strcmp(s[3], "addenda")) {
		*status = 201;
		return sign_visit(d, s[2], 1, body, out, eb);
	}
	if (visits && n == 2 && get)
		return list_visits(d, case_id, out, eb);
	if (cases && n == 2 && get) {
		if ((rc = fsd_cw_index(d, eb)) != FS_OK)
			return rc;
		/* Without a query: every open case, most urgent first. */
		rc = q && *q ? fs_cw_find_json(d->cw, q, &text, &len, eb)
		             : fs_cw_due_json(d->cw, fsd_wall_ms() / 1000, 1, &text, &len, eb);
		return answer(rc, text, len, out, eb);
	}
	if (!strcmp(s[1], "due") && n == 2 && get) {
		int64_t now = fsd_wall_ms() / 1000;
		if (now_s) {
			char *end;
			long long v;
			errno = 0;
			v = strtoll(now_s, &end, 10);
			if (errno || end == now_s || *end != '\0' || v < 0)
				return fs_err_set(eb, FS_E_ARG, "\"now\" must be Unix seconds");
			now = v;
		}
		if ((rc = fsd_cw_index(d, eb)) != FS_OK)
			return rc;
		rc = fs_cw_due_json(d->cw, now, all_s && !strcmp(all_s, "1"), &text, &len, eb);
		return answer(rc, text, len, out, eb);
	}
	if (!strcmp(s[1], "caseload") && n == 2 && get) {
		if ((rc = fsd_cw_index(d, eb)) != FS_OK)
			return rc;
		rc = fs_cw_caseload_json(d->cw, &text, &len, eb);
		return answer(rc, text, len, out, eb);
	}
	if (!strcmp(s[1], "conflicts") && n == 3 && post && !strcmp(s[2], "resolve"))
		return resolve(d, out, eb);
	return fs_err_set(eb, FS_E_NOTFOUND, "no such endpoint");
}
