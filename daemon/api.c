/*
 * daemon/api.c: the local API, HTTP/1.1 + JSON on a Unix socket (mode 0600
 * in a 0700 directory), served by libmicrohttpd from the daemon's own loop:
 * the daemon accepts each connection itself, checks the peer's uid with
 * SO_PEERCRED and only then hands it over. Request bodies and JSON depth are
 * bounded; errors are {"code","message"} with fs_errname codes.
 * Endpoints: docs/daemon.md.
 */
#include "daemon_int.h"

#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define API_CONN_MAX     32
#define API_TIMEOUT_S    30
#define API_LIST_MAX     10000       /* records or rows in one list answer */
#define API_LIST_BYTES   (32u << 20) /* envelope bytes decrypted for one list answer */
#define API_PATH_SEG_MAX 4
#define DOC_ID_HEX_BYTES 16

struct req {
	char *buf;
	size_t len, cap;
	int too_big;
};

/* A response body that may hold plaintext: its length is kept in front so
 * that libmicrohttpd's free callback can wipe it. */
struct wiped {
	size_t len;
	char text[];
};

static void wiped_free(void *p)
{
	struct wiped *w = (struct wiped *)((char *)p - offsetof(struct wiped, text));
	sodium_memzero(w, sizeof(*w) + w->len);
	free(w);
}

static void req_free(struct req *r)
{
	if (r == NULL)
		return;
	if (r->buf) {
		sodium_memzero(r->buf, r->cap);
		free(r->buf);
	}
	free(r);
}

static int req_append(struct req *r, const char *data, size_t n)
{
	if (r->too_big || n > FSD_BODY_MAX - r->len) {
		r->too_big = 1;
		return 0;
	}
	if (r->len + n + 1 > r->cap) {
		/* Grown by copy and wipe, never realloc: the old buffer may hold a
		 * passphrase or a record. */
		size_t cap = r->cap ? r->cap : 1024;
		char *nb;
		while (cap < r->len + n + 1)
			cap *= 2;
		if (cap > FSD_BODY_MAX + 1)
			cap = FSD_BODY_MAX + 1;
		if ((nb = malloc(cap)) == NULL)
			return -1;
		if (r->buf) {
			memcpy(nb, r->buf, r->len);
			sodium_memzero(r->buf, r->cap);
			free(r->buf);
		}
		r->buf = nb;
		r->cap = cap;
	}
	memcpy(r->buf + r->len, data, n);
	r->len += n;
	r->buf[r->len] = '\0';
	return 0;
}

static unsigned http_status(int code)
{
	switch (code) {
	case FS_OK:
		return 200;
	case FS_E_ARG:
	case FS_E_INPUT:
	case FS_E_SYNC_INSECURE:
		return 400;
	case FS_E_PASSPHRASE:
		return 401;
	case FS_E_DAEMON_PEER:
	case FS_E_TEAM_NOKEY:
	case FS_E_TEAM_REVOKED:
	case FS_E_TEAM_NOTMEMBER:
		return 403;
	case FS_E_NOTFOUND:
		return 404;
	case FS_E_EXISTS:
	case FS_E_STORE_CONFLICT:
	case FS_E_DAEMON_NOINIT:
	case FS_E_TEAM_NOSPACE:
	case FS_E_TEAM_AMBIGUOUS:
	case FS_E_MISBOUND:
		return 409;
	case FS_E_TOOBIG:
		return 413;
	case FS_E_DAEMON_LOCKED:
		return 423;
	case FS_E_DAEMON_SLOWDOWN:
		return 429;
	case FS_E_STORE_FULL:
		return 507;
	default:
		return 500;
	}
}

static enum MHD_Result send_text(struct MHD_Connection *c, unsigned status, const char *text)
{
	size_t n = strlen(text);
	struct wiped *w = malloc(sizeof(*w) + n + 1);
	struct MHD_Response *resp;
	enum MHD_Result ret;

	if (w == NULL)
		return MHD_NO;
	w->len = n + 1;
	memcpy(w->text, text, n + 1);
	resp = MHD_create_response_from_buffer_with_free_callback(n, w->text, wiped_free);
	if (resp == NULL) {
		wiped_free(w->text);
		return MHD_NO;
	}
	MHD_add_response_header(resp, "Content-Type", "application/json");
	MHD_add_response_header(resp, "Cache-Control", "no-store");
	ret = MHD_queue_response(c, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static enum MHD_Result send_json(struct MHD_Connection *c, unsigned status, cJSON *o)
{
	char *t = o ? cJSON_PrintUnformatted(o) : NULL;
	enum MHD_Result ret;

	if (t == NULL)
		return send_text(c, 500, "{\"code\":\"FS_E_NOMEM\",\"message\":\"out of memory\"}");
	ret = send_text(c, status, t);
	cJSON_free(t);
	return ret;
}

static enum MHD_Result send_err(struct MHD_Connection *c, const fs_errbuf *eb)
{
	char msg[FS_ERRMSG_MAX + 256];
	cJSON *o = cJSON_CreateObject();
	enum MHD_Result ret;
	int code = eb->code ? eb->code : FS_E_INTERNAL;

	if (eb->msg[0] && strcmp(eb->msg, fs_strerror(code)) != 0)
		snprintf(msg, sizeof(msg), "%s: %s", fs_strerror(code), eb->msg);
	else
		snprintf(msg, sizeof(msg), "%s", fs_strerror(code));
	cJSON_AddStringToObject(o, "code", fs_errname(code));
	cJSON_AddStringToObject(o, "message", msg);
	ret = send_json(c, http_status(code), o);
	cJSON_Delete(o);
	return ret;
}

static const char *jstr(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int need_body(const cJSON *body, fs_errbuf *eb)
{
	if (!cJSON_IsObject(body))
		return fs_err_set(eb, FS_E_INPUT, "the request needs a JSON object body");
	return FS_OK;
}

static int need_pass(const cJSON *body, const char *k, const char **p, size_t *n, fs_errbuf *eb)
{
	*p = jstr(body, k);
	if (*p == NULL || (*n = strlen(*p)) == 0)
		return fs_err_set(eb, FS_E_ARG, "\"%s\" is required", k);
	if (*n > FS_CRYPTO_PASS_MAX)
		return fs_err_set(eb, FS_E_TOOBIG, "a passphrase is at most %d bytes",
		                  FS_CRYPTO_PASS_MAX);
	return FS_OK;
}

/* ---- status ---- */

static int count_cb(void *ctx, const fs_store_change *ch)
{
	/* Team documents are write-once; a conflict there is tampering, which
	 * `fieldsync device list` reports, not a record to resolve. */
	if (!fs_crypto_team_doc_id(ch->id))
		(*(uint64_t *)ctx)++;
	return 0;
}

static int get_status(struct fsd *d, cJSON **out, fs_errbuf *eb)
{
	fs_store_outbox_stats os;
	fs_store_info info;
	uint64_t conflicts = 0;
	cJSON *o = NULL, *rem;
	int rc, online = 0;

	if ((rc = fs_store_outbox_stats_get(d->st, &os, eb)) != FS_OK ||
	    (rc = fs_store_info_get(d->st, &info, eb)) != FS_OK ||
	    (rc = fs_store_conflicts(d->st, count_cb, &conflicts, eb)) != FS_OK)
		return rc;
	if ((o = cJSON_CreateObject()) == NULL || (rem = fsd_remotes_json(d)) == NULL) {
		cJSON_Delete(o);
		return fs_err_set(eb, FS_E_NOMEM, NULL);
	}
	for (cJSON *r = rem->child; r; r = r->next)
		online |= cJSON_IsTrue(cJSON_GetObjectItem(r, "online"));
	cJSON_AddStringToObject(o, "version", "0.1.0");
	cJSON_AddNumberToObject(o, "pid", (double)getpid());
	cJSON_AddBoolToObject(o, "initialized", d->initialized);
	cJSON_AddBoolToObject(o, "locked", d->master == NULL);
	cJSON_AddStringToObject(o, "space_id", d->space_id);
	cJSON_AddBoolToObject(o, "online", online);
	cJSON_AddNumberToObject(o, "queued", (double)os.queued);
	cJSON_AddNumberToObject(o, "oldest_queued_ms", (double)os.oldest_at);
	cJSON_AddNumberToObject(o, "quarantined", (double)os.quarantined);
	cJSON_AddNumberToObject(o, "conflicts", (double)conflicts);
	cJSON_AddNumberToObject(o, "documents", (double)info.doc_count);
	cJSON_AddNumberToObject(o, "auto_lock_seconds", d->cfg.auto_lock_s);
	cJSON_AddNumberToObject(o, "network_changes", (double)d->net_changes);
	cJSON_AddNumberToObject(o, "wal_pages", (double)fs_store_wal_pages(d->st));
	cJSON_AddNumberToObject(o, "checkpoints", (double)d->checkpoints);
	cJSON_AddNumberToObject(o, "now_ms", (double)fsd_wall_ms());
	cJSON_AddItemToObject(o, "remotes", rem);
	cJSON *team = fsd_team_json(d, 0);
	if (team)
		cJSON_AddItemToObject(o, "team", team);
	*out = o;
	return FS_OK;
}

/* ---- records ---- */

int fsd_record_put(struct fsd *d, const char *id, const char *base, const char *type,
                   const char *data, size_t len, char rev[FS_REV_MAX], fs_errbuf *eb)
{
	cJSON *t = cJSON_CreateString(type);
	char *qt = t ? cJSON_PrintUnformatted(t) : NULL, *w = NULL, *env = NULL;
	size_t n = 0, env_len = 0;
	int rc = FS_E_NOMEM;

	/* {"type":<type, escaped>,"data":<data>}: the plaintext, in memory only. */
	if (qt == NULL || (w = malloc((n = len + strlen(qt) + 32))) == NULL) {
		fs_err_set(eb, rc, NULL);
		goto out;
	}
	n = (size_t)snprintf(w, n, "{\"type\":%s,\"data\":%.*s}", qt, (int)len, data);
	if ((rc = fsd_vault_seal(d, id, w, n, &env, &env_len, eb)) != FS_OK ||
	    (rc = fs_store_put_local(d->st, id, base, (const uint8_t *)env, env_len, 0, rev, eb)) !=
	        FS_OK)
		goto out;
	fsd_remotes_local_edit(d);
out:
	if (w) {
		sodium_memzero(w, n);
		free(w);
	}
	if (qt)
		cJSON_free(qt);
	cJSON_Delete(t);
	free(env);
	return rc;
}

static int seal_put(struct fsd *d, const char *id, const char *base, const char *type,
                    const cJSON *data, char rev[FS_REV_MAX], fs_errbuf *eb)
{
	char *text = cJSON_PrintUnformatted(data);
	int rc;

	if (text == NULL)
		return fs_err_set(eb, FS_E_NOMEM, NULL);
	rc = fsd_record_put(d, id, base, type, text, strlen(text), rev, eb);
	cJSON_free(text); /* wiped by the hooks */
	return rc;
}

static int check_type(const char *type, fs_errbuf *eb)
{
	size_t n = type ? strlen(type) : 0;

	if (n == 0 || n >= FSD_TYPE_MAX)
		return fs_err_set(eb, FS_E_ARG, "\"type\" is 1 to %d bytes", FSD_TYPE_MAX - 1);
	return FS_OK;
}

static int rec_create(struct fsd *d, const cJSON *body, cJSON **out, fs_errbuf *eb)
{
	uint8_t r[DOC_ID_HEX_BYTES];
	char id[2 * DOC_ID_HEX_BYTES + 1], rev[FS_REV_MAX];
	const cJSON *data = cJSON_GetObjectItemCaseSensitive(body, "data");
	int rc;

	if ((rc = need_body(body, eb)) != FS_OK ||
	    (rc = check_type(jstr(body, "type"), eb)) != FS_OK)
		return rc;
	if (!cJSON_IsObject(data))
		return fs_err_set(eb, FS_E_ARG, "\"data\" must be a JSON object");
	if ((rc = fsd_vault_writable(d, eb)) != FS_OK)
		return rc;
	randombytes_buf(r, sizeof(r));
	sodium_bin2hex(id, sizeof(id), r, sizeof(r));
	if ((rc = seal_put(d, id, NULL, jstr(body, "type"), data, rev, eb)) != FS_OK)
		return rc;
	*out = cJSON_CreateObject();
	cJSON_AddStringToObject(*out, "id", id);
	cJSON_AddStringToObject(*out, "rev", rev);
	return FS_OK;
}

/* One document's decrypted record as {"id","rev","type","data"}. */
/* *env_len (may be NULL): the envelope's size, a bound on what it decrypts to. */
static int rec_load(struct fsd *d, const char *id, const char *rev, cJSON **out, size_t *env_len,
                    fs_errbuf *eb)
{
	fs_store_doc *doc = NULL;
	cJSON *plain = NULL, *o = NULL;
	int rc;

	*out = NULL;
	if ((rc = fsd_vault_ready(d, eb)) != FS_OK ||
	    (rc = fs_store_get(d->st, id, rev, &doc, eb)) != FS_OK)
		goto out;
	if (doc->deleted) {
		rc = fs_err_set(eb, FS_E_NOTFOUND, "the record was deleted");
		goto out;
	}
	if (env_len)
		*env_len = doc->body_len;
	if ((rc = fsd_vault_open_doc(d, id, doc->body, doc->body_len, &plain, eb)) != FS_OK)
		goto out;
	if (!cJSON_IsObject(plain) || jstr(plain, "type") == NULL) {
		rc = fs_err_set(eb, FS_E_INPUT, "the record has no type");
		goto out;
	}
	if ((o = cJSON_CreateObject()) == NULL) {
		rc = fs_err_set(eb, FS_E_NOMEM, NULL);
		goto out;
	}
	cJSON_AddStringToObject(o, "id", id);
	cJSON_AddStringToObject(o, "rev", doc->rev);
	cJSON_AddStringToObject(o, "type", jstr(plain, "type"));
	cJSON *data = cJSON_DetachItemFromObjectCaseSensitive(plain, "data");
	cJSON_AddItemToObject(o, "data", data ? data : cJSON_CreateObject());
	*out = o;
	rc = FS_OK;
out:
	cJSON_Delete(plain);
	fs_store_doc_free(doc);
	return rc;
}

static int rec_get(struct fsd *d, const char *id, const char *rev, cJSON **out, fs_errbuf *eb)
{
	fs_store_leaves *lv = NULL;
	cJSON *o = NULL, *conf;
	int rc;

	if ((rc = rec_load(d, id, rev, &o, NULL, eb)) != FS_OK)
		return rc;
	if ((rc = fs_store_leaves_get(d->st, id, &lv, eb)) != FS_OK) {
		cJSON_Delete(o);
		return rc;
	}
	conf = cJSON_AddArrayToObject(o, "conflicts");
	for (size_t i = 1; i < lv->n; i++)
		if (!lv->v[i].deleted)
			cJSON_AddItemToArray(conf, cJSON_CreateString(lv->v[i].rev));
	fs_store_leaves_free(lv);
	*out = o;
	return FS_OK;
}

static int rec_update(struct fsd *d, const char *id, const cJSON *body, cJSON **out, fs_errbuf *eb)
{
	const cJSON *data = cJSON_GetObjectItemCaseSensitive(body, "data");
	const char *base = jstr(body, "rev"), *type = jstr(body, "type");
	char rev[FS_REV_MAX], oldtype[FSD_TYPE_MAX];
	cJSON *cur = NULL;
	int rc;

	if ((rc = need_body(body, eb)) != FS_OK)
		return rc;
	if (fs_crypto_team_doc_id(id))
		return fs_err_set(eb, FS_E_ARG, "team documents are not records");
	if (base == NULL)
		return fs_err_set(eb, FS_E_ARG,
		                  "\"rev\", the revision the edit is based on, is required");
	if (!cJSON_IsObject(data))
		return fs_err_set(eb, FS_E_ARG, "\"data\" must be a JSON object");
	if (type == NULL) {
		/* Keep the type of the revision the edit is based on. */
		if ((rc = rec_load(d, id, base, &cur, NULL, eb)) != FS_OK)
			return rc == FS_E_NOTFOUND ? fs_err_set(eb, FS_E_STORE_CONFLICT,
			                                        "no such revision of this record")
			                           : rc;
		snprintf(oldtype, sizeof(oldtype), "%s", jstr(cur, "type"));
		cJSON_Delete(cur);
		type = oldtype;
	}
	if ((rc = check_type(type, eb)) != FS_OK || (rc = fsd_vault_writable(d, eb)) != FS_OK ||
	    (rc = seal_put(d, id, base, type, data, rev, eb)) != FS_OK)
		return rc;
	*out = cJSON_CreateObject();
	cJSON_AddStringToObject(*out, "id", id);
	cJSON_AddStringToObject(*out, "rev", rev);
	return FS_OK;
}

static int rec_delete(struct fsd *d, const char *id, const char *base, cJSON **out, fs_errbuf *eb)
{
	char rev[FS_REV_MAX];
	int rc;

	if (base == NULL)
		return fs_err_set(eb, FS_E_ARG, "?rev=, the revision to delete, is required");
	if (fs_crypto_team_doc_id(id))
		return fs_err_set(eb, FS_E_ARG, "team documents are not records");
	if ((rc = fsd_vault_writable(d, eb)) != FS_OK ||
	    (rc = fs_store_put_local(d->st, id, base, (const uint8_t *)"{}", 2, 1, rev, eb)) !=
	        FS_OK)
		return rc;
	fsd_remotes_local_edit(d);
	*out = cJSON_CreateObject();
	cJSON_AddStringToObject(*out, "id", id);
	cJSON_AddStringToObject(*out, "rev", rev);
	cJSON_AddBoolToObject(*out, "deleted", 1);
	return FS_OK;
}

struct list_ctx {
	struct fsd *d;
	const char *type;
	cJSON *arr;
	size_t n, unreadable, bytes;
	fs_errbuf *eb;
};

static int list_cb(void *ctx, const fs_store_change *ch)
{
	struct list_ctx *lc = ctx;
	cJSON *o = NULL;
	fs_errbuf e2;
	size_t len = 0;
	int rc;

	if (ch->deleted || fs_crypto_team_doc_id(ch->id))
		return 0;
	/* Records may be megabytes each: the answer stops at a count and at a
	 * byte budget, and says it was cut short. */
	if (lc->n >= API_LIST_MAX || lc->bytes >= API_LIST_BYTES)
		return 1;
	rc = rec_load(lc->d, ch->id, NULL, &o, &len, &e2);
	lc->bytes += len;
	if (rc == FS_E_NOMEM || rc == FS_E_DAEMON_LOCKED) {
		fs_err_set(lc->eb, rc, "%s", e2.msg);
		return rc;
	}
	if (rc != FS_OK) {
		/* Tampered, foreign or unknown-key records are counted, never shown. */
		lc->unreadable++;
		return 0;
	}
	if (lc->type && strcmp(jstr(o, "type"), lc->type) != 0) {
		cJSON_Delete(o);
		return 0;
	}
	cJSON_AddItemToArray(lc->arr, o);
	lc->n++;
	return 0;
}

static int rec_list(struct fsd *d, const char *type, cJSON **out, fs_errbuf *eb)
{
	struct list_ctx lc = {d, type, NULL, 0, 0, 0, eb};
	cJSON *o;
	int rc;

	if ((rc = fsd_vault_ready(d, eb)) != FS_OK)
		return rc;
	if ((o = cJSON_CreateObject()) == NULL ||
	    (lc.arr = cJSON_AddArrayToObject(o, "records")) == NULL) {
		cJSON_Delete(o);
		return fs_err_set(eb, FS_E_NOMEM, NULL);
	}
	rc = fs_store_changes(d->st, 0, 0, list_cb, &lc, NULL, eb);
	if (rc != FS_OK && rc != 1) {
		cJSON_Delete(o);
		return rc;
	}
	cJSON_AddBoolToObject(o, "truncated", rc == 1);
	cJSON_AddNumberToObject(o, "unreadable", (double)lc.unreadable);
	*out = o;
	return FS_OK;
}

/* ---- queue, quarantine, conflicts ---- */

static cJSON *rows_json(const fs_store_outbox *ob, int quarantine)
{
	cJSON *a = cJSON_CreateArray();

	for (size_t i = 0; a && i < ob->n && i < API_LIST_MAX; i++) {
		const fs_store_outbox_row *r = &ob->v[i];
		cJSON *o = cJSON_CreateObject();
		cJSON_AddNumberToObject(o, "oid", (double)r->oid);
		cJSON_AddStringToObject(o, "id", r->id);
		cJSON_AddStringToObject(o, "rev", r->rev);
		cJSON_AddBoolToObject(o, "deleted", r->deleted);
		cJSON_AddNumberToObject(o, "queued_at_ms", (double)r->queued_at);
		cJSON_AddNumberToObject(o, "bytes", (double)r->body_len);
		if (quarantine) {
			cJSON_AddNumberToObject(o, "status", r->status);
			cJSON_AddStringToObject(o, "reason", r->reason ? r->reason : "");
		}
		cJSON_AddItemToArray(a, o);
	}
	return a;
}

static int get_queue(struct fsd *d, int quarantine, cJSON **out, fs_errbuf *eb)
{
	fs_store_outbox *ob = NULL;
	int rc;

	rc = quarantine ? fs_store_quarantine_list(d->st, &ob, eb)
	                : fs_store_outbox_read(d->st, API_LIST_MAX, 64u << 20, &ob, eb);
	if (rc != FS_OK)
		return rc;
	*out = cJSON_CreateObject();
	cJSON_AddItemToObject(*out, quarantine ? "quarantine" : "queue", rows_json(ob, quarantine));
	fs_store_outbox_free(ob);
	return FS_OK;
}

static int conflict_cb(void *ctx, const fs_store_change *ch)
{
	cJSON *o, *revs;

	if (fs_crypto_team_doc_id(ch->id))
		return 0; /* see count_cb */
	o = cJSON_CreateObject();

	cJSON_AddStringToObject(o, "id", ch->id);
	cJSON_AddStringToObject(o, "winner", ch->winner);
	revs = cJSON_AddArrayToObject(o, "revs");
	for (size_t i = 0; i < ch->n_leaves; i++)
		if (!ch->leaves[i].deleted)
			cJSON_AddItemToArray(revs, cJSON_CreateString(ch->leaves[i].rev));
	cJSON_AddItemToArray(ctx, o);
	return 0;
}

static int get_conflicts(struct fsd *d, cJSON **out, fs_errbuf *eb)
{
	cJSON *o = cJSON_CreateObject();
	cJSON *a = cJSON_AddArrayToObject(o, "conflicts");
	int rc = fs_store_conflicts(d->st, conflict_cb, a, eb);

	if (rc != FS_OK) {
		cJSON_Delete(o);
		return rc;
	}
	*out = o;
	return FS_OK;
}

static cJSON *ok_obj(void)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddBoolToObject(o, "ok", 1);
	return o;
}

/* ---- joining a team ---- */

/*
 * POST /v1/join {"passphrase","url","device_name"?,"remote"?,"pins"?,"ca"?,
 * "user"?,"password"?|"token"?}: sets the device up without a space of its
 * own, adds the remote, and syncs; the team documents then tell it which
 * space it is in, and it asks to join (team.c).
 */
static int join(struct fsd *d, const cJSON *body, cJSON **out, fs_errbuf *eb)
{
	static const char *const copy[] = {"url", "pins", "ca", "user", "password", "token"};
	struct fsd_setup o = {1, NULL, NULL};
	const char *p, *rname;
	cJSON *req = NULL;
	size_t l;
	int rc;

	if ((rc = need_body(body, eb)) != FS_OK ||
	    (rc = need_pass(body, "passphrase", &p, &l, eb)) != FS_OK)
		return rc;
	if (jstr(body, "url") == NULL)
		return fs_err_set(eb, FS_E_ARG,
		                  "\"url\", the space's database on the server, is required");
	if (d->initialized)
		return fs_err_set(eb, FS_E_EXISTS,
		                  "this device is already set up; joining a space needs a new data "
		                  "directory (fieldsyncd --data-dir)");
	rname = jstr(body, "remote") ? jstr(body, "remote") : "office";
	if ((req = cJSON_CreateObject()) == NULL || !cJSON_AddStringToObject(req, "name", rname))
		goto nomem;
	for (size_t i = 0; i < sizeof(copy) / sizeof(copy[0]); i++)
		if (jstr(body, copy[i]) &&
		    !cJSON_AddStringToObject(req, copy[i], jstr(body, copy[i])))
			goto nomem;
	o.name = jstr(body, "device_name");
	if ((rc = fsd_vault_init(d, p, l, &o, eb)) != FS_OK)
		goto out;
	if ((rc = fsd_remote_add(d, req, eb)) != FS_OK) {
		char why[FS_ERRMSG_MAX];
		snprintf(why, sizeof(why), "%s", eb->msg);
		rc = fs_err_set(eb, rc,
		                "the device is set up, but the server could not be added (%s): add "
		                "it with \"fieldsync remote add\"",
		                why);
		goto out;
	}
	fsd_remotes_sync_now(d);
	rc = (*out = fsd_team_json(d, 1)) ? FS_OK : fs_err_set(eb, FS_E_NOMEM, NULL);
	goto out;
nomem:
	rc = fs_err_set(eb, FS_E_NOMEM, NULL);
out:
	/* The request may carry a password or token. */
	for (cJSON *c = req ? req->child : NULL; c; c = c->next)
		if (cJSON_IsString(c))
			sodium_memzero(c->valuestring, strlen(c->valuestring));
	cJSON_Delete(req);
	return rc;
}

/* ---- routing ---- */

static size_t split(char *path, char *seg[API_PATH_SEG_MAX])
{
	size_t n = 0;
	char *save = NULL;

	for (char *t = strtok_r(path, "/", &save); t; t = strtok_r(NULL, "/", &save)) {
		if (n == API_PATH_SEG_MAX)
			return API_PATH_SEG_MAX + 1;
		seg[n++] = t;
	}
	return n;
}

static int route(struct fsd *d, struct MHD_Connection *c, const char *method, const char *url,
                 const cJSON *body, cJSON **out, unsigned *status, fs_errbuf *eb)
{
	char path[512];
	char *s[API_PATH_SEG_MAX] = {0};
	size_t n;
	int get = !strcmp(method, "GET"), post = !strcmp(method, "POST");
	int put = !strcmp(method, "PUT"), del = !strcmp(method, "DELETE");
	const char *p1, *p2;
	size_t l1, l2;
	int rc;

	*status = 200;
	if (strlen(url) >= sizeof(path))
		return fs_err_set(eb, FS_E_TOOBIG, "path too long");
	memcpy(path, url, strlen(url) + 1);
	n = split(path, s);
	if (n < 2 || n > API_PATH_SEG_MAX || strcmp(s[0], "v1") != 0)
		return fs_err_set(eb, FS_E_NOTFOUND, "no such endpoint (the API is under /v1/)");
	if (n == 2 && get && !strcmp(s[1], "status"))
		return get_status(d, out, eb);
	if (n == 2 && post && !strcmp(s[1], "init")) {
		struct fsd_setup o = {0, NULL, NULL};
		if ((rc = need_body(body, eb)) != FS_OK ||
		    (rc = need_pass(body, "passphrase", &p1, &l1, eb)) != FS_OK)
			return rc;
		o.name = jstr(body, "name");
		o.recovery = jstr(body, "recovery");
		if ((rc = fsd_vault_init(d, p1, l1, &o, eb)) != FS_OK)
			return rc;
		*status = 201;
		return get_status(d, out, eb);
	}
	if (n == 2 && post && !strcmp(s[1], "join")) {
		*status = 202;
		return join(d, body, out, eb);
	}
	if (n == 2 && get && !strcmp(s[1], "team")) {
		fsd_team_refresh(d, 0);
		return (*out = fsd_team_json(d, 1)) ? FS_OK : fs_err_set(eb, FS_E_NOMEM, NULL);
	}
	if (n == 3 && post && !strcmp(s[1], "devices") && !strcmp(s[2], "approve")) {
		if ((rc = need_body(body, eb)) != FS_OK)
			return rc;
		return fsd_team_approve(d, jstr(body, "fingerprint"), out, eb);
	}
	if (n == 4 && post && !strcmp(s[1], "devices") && !strcmp(s[3], "revoke"))
		return fsd_team_revoke(d, s[2], out, eb);
	if (n == 2 && post && !strcmp(s[1], "recovery")) {
		if ((rc = need_body(body, eb)) != FS_OK)
			return rc;
		return fsd_team_recovery_set(d, jstr(body, "public"), out, eb);
	}
	if (n == 2 && post && !strcmp(s[1], "recover")) {
		const char *key = jstr(body, "key");
		if ((rc = need_body(body, eb)) != FS_OK ||
		    (rc = need_pass(body, "passphrase", &p1, &l1, eb)) != FS_OK)
			return rc;
		if (key == NULL)
			return fs_err_set(eb, FS_E_ARG,
			                  "\"key\", the recovery key file's text, is required");
		return fsd_team_recover(d, key, strlen(key), p1, l1, out, eb);
	}
	if (n == 2 && post && !strcmp(s[1], "unlock")) {
		if ((rc = need_body(body, eb)) != FS_OK ||
		    (rc = need_pass(body, "passphrase", &p1, &l1, eb)) != FS_OK ||
		    (rc = fsd_vault_unlock(d, p1, l1, eb)) != FS_OK)
			return rc;
		/* Build the casework index now, so the first `due` answers at once. */
		fs_errbuf e2;
		if (fsd_cw_index(d, &e2) != FS_OK)
			fsd_log(FS_DAEMON_LOG_WARN, "casework index: %s", fs_errname(e2.code));
		return get_status(d, out, eb);
	}
	if (n == 2 && post && !strcmp(s[1], "lock")) {
		fsd_vault_lock(d, "on request");
		return get_status(d, out, eb);
	}
	if (n == 2 && post && !strcmp(s[1], "passwd")) {
		if ((rc = need_body(body, eb)) != FS_OK ||
		    (rc = need_pass(body, "old", &p1, &l1, eb)) != FS_OK ||
		    (rc = need_pass(body, "new", &p2, &l2, eb)) != FS_OK ||
		    (rc = fsd_vault_passwd(d, p1, l1, p2, l2, eb)) != FS_OK)
			return rc;
		*out = ok_obj();
		return FS_OK;
	}
	if (s[1] && !strcmp(s[1], "remotes")) {
		if (n == 2 && get) {
			*out = cJSON_CreateObject();
			cJSON_AddItemToObject(*out, "remotes", fsd_remotes_json(d));
			return FS_OK;
		}
		if (n == 2 && post) {
			if ((rc = need_body(body, eb)) != FS_OK ||
			    (rc = fsd_remote_add(d, body, eb)) != FS_OK)
				return rc;
			*status = 201;
			*out = cJSON_CreateObject();
			cJSON_AddItemToObject(*out, "remotes", fsd_remotes_json(d));
			return FS_OK;
		}
		if (n == 3 && del) {
			if ((rc = fsd_remote_remove(d, s[2], eb)) != FS_OK)
				return rc;
			*out = ok_obj();
			return FS_OK;
		}
	}
	if (n == 2 && post && !strcmp(s[1], "sync")) {
		if (d->n_remotes == 0)
			return fs_err_set(
			    eb, FS_E_NOTFOUND,
			    "no remote to sync with: add one with \"fieldsync remote add\"");
		fsd_remotes_sync_now(d);
		*out = cJSON_CreateObject();
		cJSON_AddNumberToObject(*out, "requested_ms", (double)fsd_wall_ms());
		*status = 202;
		return FS_OK;
	}
	if (n == 2 && get && !strcmp(s[1], "queue"))
		return get_queue(d, 0, out, eb);
	if (n == 2 && get && !strcmp(s[1], "quarantine"))
		return get_queue(d, 1, out, eb);
	if (n == 4 && post && !strcmp(s[1], "quarantine") && !strcmp(s[3], "retry")) {
		char *end;
		long long oid = strtoll(s[2], &end, 10);
		int64_t noid = 0;
		if (*end || oid <= 0)
			return fs_err_set(eb, FS_E_ARG, "a quarantine id is a positive number");
		if ((rc = fs_store_quarantine_retry(d->st, oid, &noid, eb)) != FS_OK)
			return rc;
		fsd_remotes_local_edit(d);
		*out = cJSON_CreateObject();
		cJSON_AddNumberToObject(*out, "oid", (double)noid);
		return FS_OK;
	}
	if (n == 2 && get && !strcmp(s[1], "conflicts"))
		return get_conflicts(d, out, eb);
	if (!strcmp(s[1], "cases") || !strcmp(s[1], "visits") || !strcmp(s[1], "due") ||
	    !strcmp(s[1], "caseload") || (n == 3 && !strcmp(s[1], "conflicts")))
		return fsd_cw_route(d, method, s, n,
		                    MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "q"),
		                    MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "case"),
		                    MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "now"),
		                    MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "all"),
		                    body, out, status, eb);
	if (!strcmp(s[1], "records")) {
		const char *rev = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "rev");
		if (n == 2 && post) {
			*status = 201;
			return rec_create(d, body, out, eb);
		}
		if (n == 2 && get)
			return rec_list(
			    d, MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "type"), out,
			    eb);
		if (n == 3 && strlen(s[2]) > FS_STORE_ID_MAX)
			return fs_err_set(eb, FS_E_ARG, "record id too long");
		if (n == 3 && get)
			return rec_get(d, s[2], rev, out, eb);
		if (n == 3 && put)
			return rec_update(d, s[2], body, out, eb);
		if (n == 3 && del)
			return rec_delete(d, s[2], rev, out, eb);
	}
	return fs_err_set(eb, FS_E_NOTFOUND, "no such endpoint: %.16s %.200s", method, url);
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url,
                               const char *method, const char *version, const char *upload,
                               size_t *upload_size, void **con_cls)
{
	struct fsd *d = cls;
	struct req *r = *con_cls;
	cJSON *body = NULL, *out = NULL;
	fs_errbuf eb;
	unsigned status = 200;
	enum MHD_Result ret;
	int rc;

	(void)version;
	if (r == NULL) {
		if ((r = calloc(1, sizeof(*r))) == NULL)
			return MHD_NO;
		*con_cls = r;
		return MHD_YES;
	}
	if (*upload_size) {
		if (req_append(r, upload, *upload_size) != 0)
			return MHD_NO;
		*upload_size = 0;
		return MHD_YES;
	}
	fs_err_clear(&eb);
	if (r->too_big) {
		fs_err_set(&eb, FS_E_TOOBIG, "request body over %u bytes", FSD_BODY_MAX);
		return send_err(c, &eb);
	}
	if (r->len &&
	    fs_json_parse(r->buf, r->len, FSD_BODY_MAX, FS_JSON_DEPTH_DEFAULT, &body, &eb) != FS_OK)
		return send_err(c, &eb);
	rc = route(d, c, method, url, body, &out, &status, &eb);
	cJSON_Delete(body);
	if (rc != FS_OK) {
		cJSON_Delete(out);
		fsd_log(FS_DAEMON_LOG_DEBUG, "%s %s: %s", method, url, fs_errname(rc));
		if (eb.code == FS_OK)
			eb.code = rc;
		return send_err(c, &eb);
	}
	ret = send_json(c, status, out);
	cJSON_Delete(out);
	return ret;
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls,
                      enum MHD_RequestTerminationCode toe)
{
	(void)cls;
	(void)c;
	(void)toe;
	req_free(*con_cls);
	*con_cls = NULL;
}

/* The socket's folder must be ours and private, so nobody else can swap
 * the socket under a client. */
static int private_dir(const char *sock, fs_errbuf *eb)
{
	char dir[FS_DAEMON_PATH_MAX];
	char *slash;
	struct stat sb;
	int rc;

	snprintf(dir, sizeof(dir), "%s", sock);
	if ((slash = strrchr(dir, '/')) == NULL || slash == dir)
		return fs_err_set(eb, FS_E_ARG, "socket path must be absolute");
	*slash = '\0';
	if ((rc = fs_daemon_mkdirs(dir, eb)) != FS_OK)
		return rc;
	if (stat(dir, &sb) != 0 || sb.st_uid != getuid())
		return fs_err_set(eb, FS_E_IO, "socket folder %s is not ours", dir);
	if ((sb.st_mode & 0777) != 0700 && chmod(dir, 0700) != 0)
		return fs_err_set(eb, FS_E_IO, "cannot make %s private: %s", dir, strerror(errno));
	return FS_OK;
}

int fsd_api_start(struct fsd *d, fs_errbuf *eb)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	const union MHD_DaemonInfo *info;
	const char *path = d->cfg.socket_path;
	int fd = -1, rc;

	if (strlen(path) >= sizeof(sa.sun_path))
		return fs_err_set(eb, FS_E_TOOBIG, "socket path %s is too long", path);
	if ((rc = private_dir(path, eb)) != FS_OK)
		return rc;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	/* The store's lock is already ours: a socket left here is stale. */
	unlink(path);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0) {
		rc = fs_err_set(eb, FS_E_IO, "socket: %s", strerror(errno));
		goto out;
	}
	mode_t old = umask(0177); /* born 0600: no window with a wider mode */
	int b = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (b != 0 || chmod(path, 0600) != 0 || listen(fd, 16) != 0) {
		rc = fs_err_set(eb, FS_E_IO, "cannot listen on %s: %s", path, strerror(errno));
		goto out;
	}
	d->mhd =
	    MHD_start_daemon(MHD_USE_EPOLL | MHD_USE_NO_LISTEN_SOCKET, 0, NULL, NULL, handler, d,
	                     MHD_OPTION_NOTIFY_COMPLETED, completed, d, MHD_OPTION_CONNECTION_LIMIT,
	                     (unsigned)API_CONN_MAX, MHD_OPTION_CONNECTION_TIMEOUT,
	                     (unsigned)API_TIMEOUT_S, MHD_OPTION_END);
	if (d->mhd == NULL) {
		rc = fs_err_set(eb, FS_E_IO, "libmicrohttpd did not start");
		goto out;
	}
	if ((info = MHD_get_daemon_info(d->mhd, MHD_DAEMON_INFO_EPOLL_FD)) == NULL) {
		rc = fs_err_set(eb, FS_E_IO, "libmicrohttpd has no epoll descriptor");
		goto out;
	}
	d->mhd_fd = info->epoll_fd;
	d->listen_fd = fd;
	fd = -1;
	rc = FS_OK;
out:
	if (fd >= 0) {
		close(fd);
		unlink(path);
	}
	return rc;
}

void fsd_api_accept(struct fsd *d)
{
	for (;;) {
		struct sockaddr_un sa;
		socklen_t sl = sizeof(sa);
		struct ucred cr = {0};
		socklen_t cl = sizeof(cr);
		int fd = accept4(d->listen_fd, (struct sockaddr *)&sa, &sl,
		                 SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return;
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) != 0) {
			fsd_log(FS_DAEMON_LOG_WARN, "local API: peer unknown (%s): refused",
			        strerror(errno));
			close(fd);
			continue;
		}
		if (cr.uid != getuid()) {
			fsd_log(FS_DAEMON_LOG_WARN, "local API: refused a connection from uid %ld",
			        (long)cr.uid);
			close(fd);
			continue;
		}
		if (sl < sizeof(sa_family_t) + 1) {
			sa.sun_path[0] = '\0';
			sl = sizeof(sa);
		}
		/* libmicrohttpd closes fd itself when this fails. */
		if (MHD_add_connection(d->mhd, fd, (struct sockaddr *)&sa, sl) != MHD_YES)
			fsd_log(FS_DAEMON_LOG_WARN, "local API: connection not accepted");
	}
}

void fsd_api_run(struct fsd *d)
{
	MHD_run(d->mhd);
}

uint64_t fsd_api_timeout(struct fsd *d)
{
	MHD_UNSIGNED_LONG_LONG t;

	if (MHD_get_timeout(d->mhd, &t) != MHD_YES)
		return UINT64_MAX;
	return (uint64_t)t;
}

void fsd_api_stop(struct fsd *d)
{
	if (d->mhd)
		MHD_stop_daemon(d->mhd);
	d->mhd = NULL;
	if (d->listen_fd >= 0) {
		close(d->listen_fd);
		unlink(d->cfg.socket_path);
	}
	d->listen_fd = -1;
}
