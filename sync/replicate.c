/*
 * sync/replicate.c: push and pull between the store and one remote, as the
 * CouchDB replication protocol does it. Push: outbox batch → _revs_diff →
 * _bulk_docs (new_edits:false), confirming rows only after the server has
 * them. Pull: _changes → local revs_diff → _bulk_get or open_revs → one
 * store transaction with the checkpoint. Bodies pass through as opaque JSON.
 */
#include "sync_int.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define FS_SYNC_FETCH_PARTS   4 /* a pull fetches a batch in this many _bulk_get requests */
#define REQ_MAX               (256u << 20) /* a request body never grows past this */
#define PATH_MAX_LEN          8192
#define QUARANTINE_REASON_MAX 300

struct ctx {
	fs_store *st;
	fs_sync_remote *r;
	const char *name;
	size_t batch_docs, batch_bytes;
	int no_bulk_get;
	const fs_sync_opts *o;
	fs_sync_progress *p;
	long retry_after;
	uint64_t sent0, recv0;
};

/* ---- a growable request body ---- */

struct buf {
	char *p;
	size_t len, cap;
	int err; /* sticky: FS_E_NOMEM or FS_E_TOOBIG */
};

static void buf_add(struct buf *b, const char *s, size_t n)
{
	if (b->err)
		return;
	if (n > REQ_MAX || b->len > REQ_MAX - n) {
		b->err = FS_E_TOOBIG;
		return;
	}
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		while (cap < b->len + n + 1)
			cap *= 2;
		char *q = realloc(b->p, cap);
		if (q == NULL) {
			b->err = FS_E_NOMEM;
			return;
		}
		b->p = q;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

/* Room for at least want bytes without growing (a hint: failure is left
 * to buf_add, which grows as needed). */
static void buf_reserve(struct buf *b, size_t want)
{
	if (b->err || want <= b->cap || want > REQ_MAX)
		return;
	char *q = realloc(b->p, want + 1);
	if (q == NULL)
		return;
	b->p = q;
	b->cap = want + 1;
}

static void buf_str(struct buf *b, const char *s)
{
	buf_add(b, s, strlen(s));
}

/* s as a JSON string literal (ids and revision hashes come from outside). */
static void buf_json_str(struct buf *b, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	const char *run = s;

	buf_add(b, "\"", 1);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		buf_add(b, run, (size_t)(s - run));
		char e[7] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15], 0};
		if (c == '"' || c == '\\') {
			e[1] = (char)c;
			e[2] = 0;
		}
		buf_str(b, e);
		run = s + 1;
	}
	buf_add(b, run, (size_t)(s - run));
	buf_add(b, "\"", 1);
}

static int buf_done(struct buf *b, fs_errbuf *eb)
{
	if (b->err == FS_E_TOOBIG)
		return fs_err_set(eb, FS_E_TOOBIG, "request body over %u bytes", REQ_MAX);
	if (b->err)
		return fs_err_set(eb, b->err, NULL);
	return FS_OK;
}

/* ---- shared ---- */

static void report(struct ctx *c)
{
	uint64_t s, r;
	fs_sync_remote_bytes(c->r, &s, &r);
	c->p->bytes_sent = s - c->sent0;
	c->p->bytes_received = r - c->recv0;
	if (c->o && c->o->progress)
		c->o->progress(c->o->progress_ctx, c->p);
}

/*
 * A 404 that means the database itself is missing: every server has these
 * endpoints, and CouchDB and PouchDB name the case in their reason.
 */
static int db_missing(const char *path, const fs_sync_resp *resp)
{
	static const char *const always[] = {"_changes", "_revs_diff", "_bulk_docs"};
	for (size_t i = 0; i < sizeof(always) / sizeof(always[0]); i++)
		if (strncmp(path, always[i], strlen(always[i])) == 0)
			return 1;
	return resp->body && (memmem(resp->body, resp->len, "no_db_file", 10) ||
	                      memmem(resp->body, resp->len, "Database does not exist", 23));
}

static int answered(struct ctx *c, int rc, const char *path, const fs_sync_resp *resp,
                    fs_errbuf *eb)
{
	c->retry_after = resp->retry_after_s;
	if (rc == FS_E_NOTFOUND && db_missing(path, resp))
		return fs_err_set(eb, FS_E_SYNC_NODB, "the database does not exist on the server");
	return rc;
}

static int post(struct ctx *c, const char *path, struct buf *body, fs_sync_resp *resp,
                fs_errbuf *eb)
{
	int rc = buf_done(body, eb);
	if (rc != FS_OK)
		return rc;
	rc = fs_sync_req_perform(c->r, FS_SYNC_POST, path, body->p, body->len, resp, eb);
	return answered(c, rc, path, resp, eb);
}

static int get(struct ctx *c, const char *path, fs_sync_resp *resp, fs_errbuf *eb)
{
	int rc = fs_sync_req_perform(c->r, FS_SYNC_GET, path, NULL, 0, resp, eb);
	return answered(c, rc, path, resp, eb);
}

static void sleep_ms(uint32_t ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/*
 * Runs step until it reports done (1), retrying transient failures up to
 * max_retries times with backoff. step returns 0 after progress, 1 when
 * finished, or a negative fs_err code.
 */
static int drive(struct ctx *c, int (*step)(struct ctx *, fs_errbuf *), fs_errbuf *eb)
{
	fs_sync_backoff bo;
	unsigned tries = 0;
	unsigned max = c->o ? c->o->max_retries : 0;

	fs_sync_backoff_init(&bo, c->o ? c->o->backoff_min_ms : 0, c->o ? c->o->backoff_max_ms : 0);
	for (;;) {
		int rc = step(c, eb);
		if (rc == 1)
			return FS_OK;
		if (rc == 0) {
			fs_sync_backoff_reset(&bo);
			continue;
		}
		rc = -rc;
		if (!fs_sync_err_transient(rc) || tries >= max)
			return rc;
		tries++;
		c->p->retries++;
		sleep_ms(fs_sync_backoff_fail(&bo, randombytes_random(), c->retry_after));
	}
}

static int ctx_init(struct ctx *c, fs_store *st, fs_sync_remote *r, const fs_sync_opts *o,
                    fs_sync_progress *prog, fs_errbuf *eb)
{
	memset(c, 0, sizeof(*c));
	if (st == NULL || r == NULL || prog == NULL)
		return fs_err_set(eb, FS_E_ARG, "no store or remote");
	c->st = st;
	c->r = r;
	c->o = o;
	c->p = prog;
	c->name = o && o->remote_name ? o->remote_name : fs_sync_remote_url(r);
	if (strlen(c->name) > FS_STORE_NAME_MAX)
		return fs_err_set(eb, FS_E_ARG, "remote name longer than %d bytes",
		                  FS_STORE_NAME_MAX);
	c->batch_docs = o && o->batch_docs ? o->batch_docs : FS_SYNC_BATCH_DOCS;
	c->batch_bytes = o && o->batch_bytes ? o->batch_bytes : FS_SYNC_BATCH_BYTES;
	if (c->batch_docs > FS_SYNC_MAX_ITEMS / 2)
		c->batch_docs = FS_SYNC_MAX_ITEMS / 2;
	c->no_bulk_get = o ? o->no_bulk_get : 0;
	fs_sync_remote_bytes(r, &c->sent0, &c->recv0);
	return FS_OK;
}

/* ---- push ---- */

/* Members of a stored body (a JSON object's text) without its braces. */
static int body_members(const uint8_t *body, size_t len, const char **start, size_t *n)
{
	const char *s = (const char *)body;
	size_t a = 0, z = len;

	*start = "";
	*n = 0;
	if (len == 0)
		return 0;
	while (a < z && (s[a] == ' ' || s[a] == '\n' || s[a] == '\t' || s[a] == '\r'))
		a++;
	while (z > a &&
	       (s[z - 1] == ' ' || s[z - 1] == '\n' || s[z - 1] == '\t' || s[z - 1] == '\r'))
		z--;
	if (z - a < 2 || s[a] != '{' || s[z - 1] != '}')
		return -1;
	a++;
	z--;
	while (a < z && (s[a] == ' ' || s[a] == '\n' || s[a] == '\t' || s[a] == '\r'))
		a++;
	*start = s + a;
	*n = z - a;
	return 0;
}

/* One outbox row as a wire document: our members plus _id, _rev, _revisions, _deleted. */
static int add_doc(struct ctx *c, struct buf *b, const fs_store_outbox_row *row, fs_errbuf *eb)
{
	fs_store_history *h = NULL;
	const char *m;
	size_t mn;
	char num[32];
	int rc;

	if (body_members(row->body, row->body_len, &m, &mn) != 0)
		return fs_err_set(eb, FS_E_INPUT, "stored body is not a JSON object");
	if ((rc = fs_store_history_get(c->st, row->id, row->rev, 0, &h, eb)) != FS_OK)
		return rc;
	buf_str(b, "{\"_id\":");
	buf_json_str(b, row->id);
	buf_str(b, ",\"_rev\":");
	buf_json_str(b, row->rev);
	snprintf(num, sizeof(num), "%lu", h->start);
	buf_str(b, ",\"_revisions\":{\"start\":");
	buf_str(b, num);
	buf_str(b, ",\"ids\":[");
	for (size_t i = 0; i < h->n; i++) {
		if (i)
			buf_add(b, ",", 1);
		buf_json_str(b, h->hashes[i]);
	}
	buf_str(b, "]}");
	if (row->deleted)
		buf_str(b, ",\"_deleted\":true");
	if (mn) {
		buf_add(b, ",", 1);
		buf_add(b, m, mn);
	}
	buf_add(b, "}", 1);
	fs_store_history_free(h);
	return buf_done(b, eb);
}

static int quarantine(struct ctx *c, const fs_store_outbox_row *row, int status, const char *why,
                      fs_errbuf *eb)
{
	char reason[QUARANTINE_REASON_MAX];
	snprintf(reason, sizeof(reason), "%s", why && *why ? why : "refused by the server");
	int rc = fs_store_outbox_quarantine(c->st, row->oid, status, reason, eb);
	if (rc == FS_E_NOTFOUND) /* superseded by a newer edit meanwhile */
		rc = FS_OK;
	if (rc == FS_OK)
		c->p->docs_refused++;
	return rc;
}

/* The server's "reason" in an error answer, for a person; "" if none. */
static void error_reason(const fs_sync_resp *resp, char *out, size_t n)
{
	cJSON *j = NULL;
	out[0] = '\0';
	if (resp->body == NULL || fs_json_parse(resp->body, resp->len, 65536, 4, &j, NULL) != FS_OK)
		return;
	const cJSON *r = cJSON_GetObjectItemCaseSensitive(j, "reason");
	const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
	snprintf(out, n, "%s%s%s", cJSON_IsString(e) ? e->valuestring : "",
	         cJSON_IsString(e) && cJSON_IsString(r) ? ": " : "",
	         cJSON_IsString(r) ? r->valuestring : "");
	cJSON_Delete(j);
}

static int doc_status(const char *error)
{
	if (error && strcmp(error, "forbidden") == 0)
		return 403;
	if (error && strcmp(error, "unauthorized") == 0)
		return 401;
	return 400;
}

/*
 * Sends rows idx[0..n) with _bulk_docs; confirms what the server stored.
 * A batch refused as a whole is halved until the refused document is alone
 * and goes to the quarantine. *retry counts rows the server failed for now.
 */
static int send_docs(struct ctx *c, const fs_store_outbox *ob, const size_t *idx, size_t n,
                     size_t *retry, fs_errbuf *eb)
{
	struct buf b = {0};
	fs_sync_resp resp;
	fs_sync_bulk_result *res = NULL;
	int64_t *oids = NULL;
	size_t nok = 0;
	int rc;

	if (n == 0)
		return FS_OK;
	/* Sized once for the batch: growing by doubling would hold the old and
	 * the new copy of a megabyte body at once. History is the guess. */
	size_t want = 64;
	for (size_t i = 0; i < n; i++)
		want += ob->v[idx[i]].body_len + 2 * strlen(ob->v[idx[i]].id) + 160;
	buf_reserve(&b, want);
	buf_str(&b, "{\"new_edits\":false,\"docs\":[");
	for (size_t i = 0; i < n; i++) {
		if (i)
			buf_add(&b, ",", 1);
		if ((rc = add_doc(c, &b, &ob->v[idx[i]], eb)) != FS_OK) {
			if (rc != FS_E_INPUT)
				goto out;
			/* A body that is not an object can never be sent. */
			if ((rc = quarantine(c, &ob->v[idx[i]], 0,
			                     "stored body is not a JSON object", eb)) != FS_OK)
				goto out;
			free(b.p);
			size_t *rest = malloc(sizeof(*rest) * (n ? n : 1));
			if (rest == NULL) {
				rc = fs_err_set(eb, FS_E_NOMEM, NULL);
				b.p = NULL;
				goto out;
			}
			size_t k = 0;
			for (size_t j = 0; j < n; j++)
				if (j != i)
					rest[k++] = idx[j];
			rc = send_docs(c, ob, rest, k, retry, eb);
			free(rest);
			return rc;
		}
	}
	buf_str(&b, "]}");
	rc = post(c, "_bulk_docs", &b, &resp, eb);
	if (rc == FS_E_SYNC_REFUSED) {
		if (n == 1) {
			char why[QUARANTINE_REASON_MAX];
			error_reason(&resp, why, sizeof(why));
			rc = quarantine(c, &ob->v[idx[0]], (int)resp.status, why, eb);
		} else {
			rc = send_docs(c, ob, idx, n / 2, retry, eb);
			if (rc == FS_OK)
				rc = send_docs(c, ob, idx + n / 2, n - n / 2, retry, eb);
		}
		goto out;
	}
	if (rc != FS_OK)
		goto out;
	if ((rc = fs_sync_parse_bulk_docs(resp.body, resp.len, fs_sync_remote_max_depth(c->r), &res,
	                                  eb)) != FS_OK)
		goto out;
	if ((oids = malloc(sizeof(*oids) * n)) == NULL) {
		rc = fs_err_set(eb, FS_E_NOMEM, NULL);
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		const fs_store_outbox_row *row = &ob->v[idx[i]];
		const fs_sync_doc_result *d = NULL;
		/* Servers answer in request order: look there first. */
		for (size_t t = 0; t < res->n && d == NULL; t++) {
			size_t k = (i + t) % res->n;
			if (strcmp(res->v[k].id, row->id) == 0 &&
			    (res->v[k].rev == NULL || strcmp(res->v[k].rev, row->rev) == 0))
				d = &res->v[k];
		}
		if (d == NULL || d->cls == FS_SYNC_DOC_OK) {
			oids[nok++] = row->oid;
		} else if (d->cls == FS_SYNC_DOC_REFUSED) {
			char why[QUARANTINE_REASON_MAX];
			snprintf(why, sizeof(why), "%s%s%s", d->error, d->reason ? ": " : "",
			         d->reason ? d->reason : "");
			if ((rc = quarantine(c, row, doc_status(d->error), why, eb)) != FS_OK)
				goto out;
		} else {
			(*retry)++;
		}
	}
	if (nok && (rc = fs_store_outbox_confirm(c->st, oids, nok, eb)) != FS_OK)
		goto out;
	c->p->docs_pushed += nok;
	rc = FS_OK;
out:
	fs_sync_bulk_result_free(res);
	free(oids);
	free(b.p);
	return rc;
}

static int push_step(struct ctx *c, fs_errbuf *eb)
{
	fs_store_outbox *ob = NULL;
	fs_sync_revs_diff *diff = NULL;
	fs_sync_resp resp;
	struct buf b = {0};
	size_t *need = NULL, nneed = 0, retry = 0;
	int64_t *have = NULL;
	size_t nhave = 0;
	int rc;

	if ((rc = fs_store_outbox_read(c->st, c->batch_docs, c->batch_bytes, &ob, eb)) != FS_OK)
		return -rc;
	if (ob->n == 0) {
		fs_store_outbox_free(ob);
		return 1;
	}
	need = malloc(sizeof(*need) * ob->n);
	have = malloc(sizeof(*have) * ob->n);
	if (need == NULL || have == NULL) {
		rc = fs_err_set(eb, FS_E_NOMEM, NULL);
		goto out;
	}
	/* _revs_diff for every batch, as the protocol does: the server may have
	 * a revision by another way (an earlier try that got through, another
	 * replication), and its body then need not travel again.
	 * {"id":["rev",...],...}; rows of one id may repeat the key, which
	 * servers merge, so no grouping is needed. */
	buf_add(&b, "{", 1);
	for (size_t i = 0; i < ob->n; i++) {
		if (i)
			buf_add(&b, ",", 1);
		buf_json_str(&b, ob->v[i].id);
		buf_add(&b, ":[", 2);
		buf_json_str(&b, ob->v[i].rev);
		buf_add(&b, "]", 1);
	}
	buf_add(&b, "}", 1);
	if ((rc = post(c, "_revs_diff", &b, &resp, eb)) != FS_OK)
		goto out;
	if ((rc = fs_sync_parse_revs_diff(resp.body, resp.len, fs_sync_remote_max_depth(c->r),
	                                  &diff, eb)) != FS_OK)
		goto out;
	/* The answer lists missing documents in request order on the servers we
	 * know: each search starts where the last one matched. */
	for (size_t i = 0, k0 = 0; i < ob->n; i++) {
		int missing = 0;
		for (size_t t = 0; t < diff->n && !missing; t++) {
			size_t k = (k0 + t) % diff->n;
			if (strcmp(diff->v[k].id, ob->v[i].id) != 0)
				continue;
			for (size_t m = 0; m < diff->v[k].nrevs && !missing; m++)
				missing = strcmp(diff->v[k].revs[m], ob->v[i].rev) == 0;
			if (missing)
				k0 = k;
		}
		if (missing)
			need[nneed++] = i;
		else
			have[nhave++] = ob->v[i].oid;
	}
	/* The server already has these (an earlier try got through). */
	if (nhave && (rc = fs_store_outbox_confirm(c->st, have, nhave, eb)) != FS_OK)
		goto out;
	c->p->docs_pushed += nhave;
	if ((rc = send_docs(c, ob, need, nneed, &retry, eb)) != FS_OK)
		goto out;
	report(c);
	if (retry)
		rc = fs_err_set(eb, FS_E_SYNC_SERVER,
		                "the server could not store %zu documents yet", retry);
out:
	fs_sync_revs_diff_free(diff);
	fs_store_outbox_free(ob);
	free(need);
	free(have);
	free(b.p);
	return rc == FS_OK ? 0 : -rc;
}

/* ---- pull ---- */

/* Revisions fetched for one batch, from one _bulk_get or many open_revs. */
struct fetched {
	fs_sync_revs **v;
	size_t n, cap;
};

static void fetched_free(struct fetched *f)
{
	for (size_t i = 0; i < f->n; i++)
		fs_sync_revs_free(f->v[i]);
	free(f->v);
	memset(f, 0, sizeof(*f));
}

static int fetched_add(struct fetched *f, fs_sync_revs *r, fs_errbuf *eb)
{
	if (f->n == f->cap) {
		size_t cap = f->cap ? f->cap * 2 : 16;
		fs_sync_revs **v = realloc(f->v, cap * sizeof(*v));
		if (v == NULL) {
			fs_sync_revs_free(r);
			return fs_err_set(eb, FS_E_NOMEM, NULL);
		}
		f->v = v;
		f->cap = cap;
	}
	f->v[f->n++] = r;
	return FS_OK;
}

static int fetch_open_revs(struct ctx *c, const fs_store_diff *d, struct fetched *f, fs_errbuf *eb);

/*
 * One fetch batch of a pull: the revisions the store lacks and, while the
 * server prepares them, the _bulk_get request on its own slot.
 */
struct batch {
	fs_store_diff *d;
	struct buf body; /* must live until the slot's transfer ends */
	int slot;
	int started;
};

static void batch_clear(struct ctx *c, struct batch *b)
{
	if (b->started) /* an error left it running: let it end before reuse */
		(void)fs_sync_req_wait(c->r, b->slot, NULL, NULL);
	fs_store_diff_free(b->d);
	free(b->body.p);
	memset(b, 0, sizeof(*b));
}

/* Local revs_diff of changes [off, off+k), then the _bulk_get request on its way. */
static int batch_start(struct ctx *c, const fs_sync_changes *ch, size_t off, size_t k, int slot,
                       struct batch *b, fs_errbuf *eb)
{
	fs_store_diff_query *q;
	CURL *h;
	int rc;

	b->slot = slot;
	if ((q = calloc(k, sizeof(*q))) == NULL)
		return fs_err_set(eb, FS_E_NOMEM, NULL);
	size_t nq = 0;
	for (size_t i = 0; i < k; i++) {
		/* The server's design documents are its own business, not envelopes. */
		if (ch->v[off + i].id[0] == '_')
			continue;
		q[nq].id = ch->v[off + i].id;
		q[nq].revs = (const char *const *)ch->v[off + i].revs;
		q[nq].n = ch->v[off + i].nrevs;
		nq++;
	}
	rc = fs_store_revs_diff(c->st, q, nq, &b->d, eb);
	free(q);
	if (rc != FS_OK || b->d->n == 0 || c->no_bulk_get)
		return rc;
	buf_str(&b->body, "{\"docs\":[");
	for (size_t i = 0, n = 0; i < b->d->n; i++)
		for (size_t m = 0; m < b->d->v[i].n_missing; m++, n++) {
			if (n)
				buf_add(&b->body, ",", 1);
			buf_str(&b->body, "{\"id\":");
			buf_json_str(&b->body, b->d->v[i].id);
			buf_str(&b->body, ",\"rev\":");
			buf_json_str(&b->body, b->d->v[i].missing[m]);
			buf_add(&b->body, "}", 1);
		}
	buf_str(&b->body, "]}");
	if ((rc = buf_done(&b->body, eb)) != FS_OK ||
	    (rc = fs_sync_req_prepare_on(c->r, slot, FS_SYNC_POST, "_bulk_get?revs=true", b->body.p,
	                                 b->body.len, 0, &h, eb)) != FS_OK ||
	    (rc = fs_sync_req_start(c->r, slot, eb)) != FS_OK)
		return rc;
	b->started = 1;
	return FS_OK;
}

/* Waits for the batch's _bulk_get, or fetches with open_revs; adds to f. */
static int batch_fetch(struct ctx *c, struct batch *b, struct fetched *f, fs_errbuf *eb)
{
	fs_sync_resp resp;
	fs_sync_revs *rv = NULL;
	int rc;

	if (b->d->n == 0)
		return FS_OK;
	if (b->started) {
		b->started = 0;
		rc =
		    answered(c, fs_sync_req_wait(c->r, b->slot, &resp, eb), "_bulk_get", &resp, eb);
		/* No _bulk_get: CouchDB before 2.0 answers 404 or 405. */
		if (rc == FS_E_NOTFOUND ||
		    (rc == FS_E_SYNC_REFUSED && (resp.status == 405 || resp.status == 400))) {
			c->no_bulk_get = 1;
		} else if (rc != FS_OK) {
			return rc;
		} else {
			rc = fs_sync_parse_bulk_get(resp.body, resp.len,
			                            fs_sync_remote_max_depth(c->r), &rv, eb);
			return rc == FS_OK ? fetched_add(f, rv, eb) : rc;
		}
	}
	return fetch_open_revs(c, b->d, f, eb);
}

static int fetch_open_revs(struct ctx *c, const fs_store_diff *d, struct fetched *f, fs_errbuf *eb)
{
	char path[PATH_MAX_LEN];
	struct buf revs = {0};
	fs_sync_resp resp;
	fs_sync_revs *rv = NULL;
	char *eid = NULL, *erevs = NULL;
	int rc = FS_OK;

	for (size_t i = 0; i < d->n && rc == FS_OK; i++) {
		revs.len = 0;
		buf_add(&revs, "[", 1);
		for (size_t m = 0; m < d->v[i].n_missing; m++) {
			if (m)
				buf_add(&revs, ",", 1);
			buf_json_str(&revs, d->v[i].missing[m]);
		}
		buf_add(&revs, "]", 1);
		if ((rc = buf_done(&revs, eb)) != FS_OK)
			break;
		eid = curl_easy_escape(NULL, d->v[i].id, 0);
		erevs = curl_easy_escape(NULL, revs.p, (int)revs.len);
		if (eid == NULL || erevs == NULL) {
			rc = fs_err_set(eb, FS_E_NOMEM, NULL);
		} else if ((size_t)snprintf(path, sizeof(path), "%s?revs=true&open_revs=%s", eid,
		                            erevs) >= sizeof(path)) {
			rc = fs_err_set(eb, FS_E_TOOBIG, "open_revs request too long");
		} else if ((rc = get(c, path, &resp, eb)) == FS_OK &&
		           (rc = fs_sync_parse_open_revs(resp.body, resp.len,
		                                         fs_sync_remote_max_depth(c->r), d->v[i].id,
		                                         &rv, eb)) == FS_OK) {
			rc = fetched_add(f, rv, eb);
		}
		curl_free(eid);
		curl_free(erevs);
		eid = erevs = NULL;
	}
	free(revs.p);
	return rc;
}

/* Writes what was fetched, with the checkpoint, in one store transaction. */
static int store_fetched(struct ctx *c, struct fetched *f, const char *seq, fs_errbuf *eb)
{
	fs_store_rev_in *in = NULL;
	const char **hashes = NULL;
	size_t n = 0, nh = 0, k = 0, hk = 0;
	int rc;

	for (size_t i = 0; i < f->n; i++)
		for (size_t j = 0; j < f->v[i]->n; j++) {
			n++;
			nh += f->v[i]->v[j].nhistory;
		}
	if (n && ((in = calloc(n, sizeof(*in))) == NULL ||
	          (hashes = calloc(nh, sizeof(*hashes))) == NULL)) {
		rc = fs_err_set(eb, FS_E_NOMEM, NULL);
		goto out;
	}
	for (size_t i = 0; i < f->n; i++)
		for (size_t j = 0; j < f->v[i]->n; j++) {
			const fs_sync_rev *v = &f->v[i]->v[j];
			unsigned long gen;
			const char *hash;
			if (fs_crypto_rev_parse(v->rev, &gen, &hash) != FS_OK) {
				rc = fs_err_set(eb, FS_E_SYNC_MALFORMED, "invalid revision id");
				goto out;
			}
			in[k].id = v->id;
			in[k].start = gen;
			in[k].hashes = &hashes[hk];
			in[k].n_hashes = v->nhistory;
			for (size_t h = 0; h < v->nhistory; h++)
				hashes[hk++] = strchr(v->history[h], '-') + 1;
			in[k].deleted = v->deleted;
			/* A tombstone's "{}" is no body: stored as it was written. */
			if (v->deleted && v->body_len == 2 && memcmp(v->body, "{}", 2) == 0) {
				in[k].body = NULL;
				in[k].body_len = 0;
			} else {
				in[k].body = (const uint8_t *)v->body;
				in[k].body_len = v->body_len;
			}
			k++;
		}
	rc = fs_store_put_remote(c->st, in, n, c->name, seq, eb);
	if (rc == FS_OK)
		c->p->docs_pulled += n;
out:
	free(in);
	free(hashes);
	return rc;
}

/*
 * One _changes request covering several fetch batches (the server's cost
 * is mostly per request); each batch is stored with its own checkpoint, so
 * an interruption loses at most one batch of work.
 */
static int pull_step(struct ctx *c, fs_errbuf *eb)
{
	char path[PATH_MAX_LEN];
	char *since = NULL, *esc = NULL;
	fs_sync_resp resp;
	fs_sync_changes *ch = NULL;
	size_t limit = c->batch_docs * FS_SYNC_CHANGES_BATCHES;
	struct batch bt[2] = {{0}};
	int rc, done = 0;

	if (limit > FS_SYNC_MAX_ITEMS)
		limit = FS_SYNC_MAX_ITEMS;
	rc = fs_store_checkpoint_get(c->st, c->name, FS_STORE_PULL, &since, eb);
	if (rc == FS_E_NOTFOUND)
		rc = FS_OK;
	if (rc != FS_OK)
		goto out;
	if ((esc = curl_easy_escape(NULL, since ? since : "0", 0)) == NULL) {
		rc = fs_err_set(eb, FS_E_NOMEM, NULL);
		goto out;
	}
	if ((size_t)snprintf(path, sizeof(path), "_changes?style=all_docs&limit=%zu&since=%s",
	                     limit, esc) >= sizeof(path)) {
		rc = fs_err_set(eb, FS_E_TOOBIG, "sequence too long for a request");
		goto out;
	}
	if ((rc = get(c, path, &resp, eb)) != FS_OK)
		goto out;
	if ((rc = fs_sync_parse_changes(resp.body, resp.len, fs_sync_remote_max_depth(c->r), &ch,
	                                eb)) != FS_OK)
		goto out;
	done = ch->n < limit || ch->pending == 0;
	if (ch->n == 0) {
		const char *seq = ch->last_seq;
		if (seq && (since == NULL || strcmp(seq, since) != 0))
			rc = fs_store_checkpoint_set(c->st, c->name, FS_STORE_PULL, seq, eb);
		goto out;
	}
	/* Two quarter batches in flight (as much memory as half a batch): while
	 * the server prepares one we parse and store the other. Quarters, not
	 * halves: 2.4 MB less peak RSS for 7% more time (bench/replicate). */
	size_t fb = c->batch_docs >= FS_SYNC_FETCH_PARTS ? c->batch_docs / FS_SYNC_FETCH_PARTS : 1;
	size_t nb = (ch->n + fb - 1) / fb;
	rc = batch_start(c, ch, 0, ch->n < fb ? ch->n : fb, 0, &bt[0], eb);
	for (size_t i = 0; i < nb && rc == FS_OK; i++) {
		struct batch *cur = &bt[i % 2], *nxt = &bt[(i + 1) % 2];
		size_t off = i * fb;
		size_t k = ch->n - off < fb ? ch->n - off : fb;
		struct fetched f = {0};
		const char *seq = ch->v[off + k - 1].seq;

		if (i + 1 < nb) {
			size_t off2 = off + k;
			size_t k2 = ch->n - off2 < fb ? ch->n - off2 : fb;
			if ((rc = batch_start(c, ch, off2, k2, (int)((i + 1) % 2), nxt, eb)) !=
			    FS_OK)
				break;
		}
		if (off + k == ch->n && ch->last_seq)
			seq = ch->last_seq;
		if ((rc = batch_fetch(c, cur, &f, eb)) == FS_OK)
			rc = store_fetched(c, &f, seq, eb);
		fetched_free(&f);
		batch_clear(c, cur);
		report(c);
	}
out:
	batch_clear(c, &bt[0]);
	batch_clear(c, &bt[1]);
	fs_sync_changes_free(ch);
	curl_free(esc);
	free(since);
	if (rc != FS_OK)
		return -rc;
	return done ? 1 : 0;
}

/* ---- the public calls ---- */

/* One public call: push, pull or both in turn, with retries. */
static int run(fs_store *st, fs_sync_remote *r, const fs_sync_opts *o, fs_sync_progress *prog,
               int push, int pull, fs_errbuf *eb)
{
	fs_sync_progress local = {0};
	struct ctx c;
	int rc;

	if (prog)
		memset(prog, 0, sizeof(*prog));
	if ((rc = ctx_init(&c, st, r, o, prog ? prog : &local, eb)) != FS_OK)
		return rc;
	if (push)
		rc = drive(&c, push_step, eb);
	if (pull && rc == FS_OK)
		rc = drive(&c, pull_step, eb);
	report(&c);
	return rc;
}

int fs_sync_push(fs_store *st, fs_sync_remote *r, const fs_sync_opts *o, fs_sync_progress *prog,
                 fs_errbuf *eb)
{
	return run(st, r, o, prog, 1, 0, eb);
}

int fs_sync_pull(fs_store *st, fs_sync_remote *r, const fs_sync_opts *o, fs_sync_progress *prog,
                 fs_errbuf *eb)
{
	return run(st, r, o, prog, 0, 1, eb);
}

int fs_sync_once(fs_store *st, fs_sync_remote *r, const fs_sync_opts *o, fs_sync_progress *prog,
                 fs_errbuf *eb)
{
	return run(st, r, o, prog, 1, 1, eb);
}
