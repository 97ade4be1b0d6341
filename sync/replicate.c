/*
 * sync/replicate.c: push and pull between the store and one remote, as the
 * CouchDB replication protocol does it, as one state machine (a job) whose
 * requests run on a curl multi handle and which never waits itself. Push:
 * two outbox batches at once, each _revs_diff then _bulk_docs
 * (new_edits:false) streamed from the store as curl sends it, rows
 * confirmed only after the server has them. Pull: _changes → local
 * revs_diff → _bulk_get or open_revs → one store transaction with the
 * checkpoint. fs_sync_push/pull/once drive the same job on the remote's
 * own multi handle. Bodies pass through as opaque JSON.
 */
#include "sync_int.h"

#include <cjson/cJSON.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define FS_SYNC_FETCH_PARTS   4 /* a pull fetches a batch in this many _bulk_get requests */
#define REQ_MAX               (256u << 20) /* a request body never grows past this */
#define PATH_MAX_LEN          8192
#define QUARANTINE_REASON_MAX 300
#define SEND_STACK            64 /* halvings of a refused batch: log2(FS_SYNC_MAX_ITEMS) < 32 */
#define DRIVER_POLL_MS        1000
#define SKIPPED               SIZE_MAX /* a row taken out of a push batch (quarantined) */

/* Where the job is: between steps, or waiting for one answer. */
enum phase {
	PH_IDLE,      /* the next step starts at the next run */
	PH_PROBE,     /* GET /{db} on slot 0 */
	PH_PUSH,      /* push: its two batches' requests (see struct pbatch) */
	PH_CHANGES,   /* pull: _changes on slot 0 */
	PH_FETCH,     /* pull: the current fetch batch's _bulk_get on its slot */
	PH_OPEN_REVS, /* pull: one open_revs GET on the current batch's slot */
	PH_RETRY,     /* a transient failure: the step starts over at retry_at */
	PH_DONE,
};

/* ---- a growable request body ---- */

struct buf {
	char *p;
	size_t len, cap;
	int err; /* sticky: FS_E_NOMEM or FS_E_TOOBIG */
};

/* A part of a push batch's rows (positions in need[]) sent as one _bulk_docs. */
struct range {
	size_t off, n;
};

/*
 * A needed row of a push batch on the wire: its head, `{"_id":..,"_rev":..,
 * "_revisions":{..}[,"_deleted":true]` in the batch's heads buffer, then
 * `,` and its body's members (read from the store as they are sent), then
 * `}`. The request's length is known before any body is read: the members
 * take at most the body's size less its braces (exactly that for the
 * compact bodies the store holds), and whitespace, which JSON allows
 * there, fills what a body with spaces inside its braces leaves.
 */
struct wdoc {
	size_t head, head_len;
	size_t room; /* bytes for the members: the body's size less its braces, 0: none */
};

struct pbatch;

/* The state of a _bulk_docs body being produced for curl, from its start. */
struct sender {
	fs_sync_job *c;
	struct pbatch *b;
	struct range r;
	size_t i; /* the next position of r to emit */
	size_t k; /* documents emitted */
	int part; /* 0: the prefix next, 1: documents, 2: the suffix, 3: done */
	struct buf chunk;
	size_t off; /* bytes of chunk given to curl */
	int rc;     /* an error met while producing, reported at the answer */
	size_t bad; /* rc FS_E_INPUT or FS_E_NOTFOUND: the position whose body could not be sent */
	fs_errbuf eb;
};

/*
 * One push batch, on its own request slot: the oldest outbox rows after
 * those of the batch read before, without their bodies. Two batches are
 * under way at once, each with its _revs_diff, then its _bulk_docs
 * produced as curl sends it: the server works on one while the client
 * prepares, sends or confirms the other (new_edits:false makes their
 * order on the server irrelevant).
 */
enum pb_state {
	PB_EMPTY, /* nothing read */
	PB_DIFF,  /* _revs_diff under way */
	PB_SEND,  /* a _bulk_docs range under way */
};

struct pbatch {
	enum pb_state state;
	int slot;
	fs_store_outbox *ob;
	struct buf diff; /* the _revs_diff body, until its answer */
	size_t *need, nneed;
	struct wdoc *docs; /* per position of need[] */
	struct buf heads;
	struct range stack[SEND_STACK];
	size_t nstack;
	struct range cur; /* what the _bulk_docs under way carries */
	size_t retry_rows;
	struct sender snd;
};

/* Revisions fetched for one batch, from one _bulk_get or many open_revs. */
struct fetched {
	fs_sync_revs **v;
	size_t n, cap;
};

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

struct fs_sync_job {
	fs_store *st;
	fs_sync_remote *r;
	CURLM *multi; /* NULL: the remote's own */
	const char *name;
	size_t batch_docs, batch_bytes;
	int no_bulk_get;
	fs_sync_opts o;
	fs_sync_progress prog;
	fs_sync_progress *p; /* &prog: the helpers count through it */
	long retry_after;
	uint64_t sent0, recv0;

	unsigned kinds_left; /* FS_SYNC_JOB_* kinds not finished yet */
	enum phase ph;
	int result; /* once PH_DONE */
	fs_sync_backoff bo;
	unsigned tries; /* transient failures retried in the current kind */
	uint64_t retry_at;
	char path[PATH_MAX_LEN]; /* of the request under way on slot 0, for db_missing */

	/* push: two batches in a pipeline, one per request slot */
	struct pbatch pb[2];
	int64_t after;      /* the last oid read into a batch */
	int read_done;      /* the outbox held nothing after it */
	int64_t *done_oids; /* rows the server stored, confirmed once the next batch is out */
	size_t ndone, done_cap;

	/* pull: one _changes window */
	char *since; /* the checkpoint it starts from, NULL for none */
	fs_sync_changes *ch;
	int drained;   /* the feed ends with this window */
	size_t fb, nb; /* fetch batch size, number of batches */
	size_t bi;     /* the batch being fetched */
	struct batch bt[2];
	struct fetched f;
	size_t or_i; /* the next document to fetch with open_revs */
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

static void report(fs_sync_job *c)
{
	uint64_t s, r;
	fs_sync_remote_bytes(c->r, &s, &r);
	c->p->bytes_sent = s - c->sent0;
	c->p->bytes_received = r - c->recv0;
	if (c->o.progress)
		c->o.progress(c->o.progress_ctx, c->p);
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

static int answered(fs_sync_job *c, int rc, const char *path, const fs_sync_resp *resp,
                    fs_errbuf *eb)
{
	c->retry_after = resp->retry_after_s;
	if (rc == FS_E_NOTFOUND && db_missing(path, resp))
		return fs_err_set(eb, FS_E_SYNC_NODB, "the database does not exist on the server");
	return rc;
}

/* Puts a request on slot on the wire; path is kept for reading its answer. */
static int send_req(fs_sync_job *c, int slot, enum fs_sync_method m, const char *path,
                    struct buf *body, long timeout_ms, fs_errbuf *eb)
{
	CURL *h;
	int rc;

	if (body && (rc = buf_done(body, eb)) != FS_OK)
		return rc;
	if (slot == 0 && path != c->path)
		snprintf(c->path, sizeof(c->path), "%s", path);
	if ((rc = fs_sync_req_prepare_on(c->r, slot, m, path, body ? body->p : NULL,
	                                 body ? body->len : 0, timeout_ms, &h, eb)) != FS_OK)
		return rc;
	return fs_sync_req_start_on(c->r, slot, c->multi, eb);
}

/* The answer on slot, read and classified. */
static int collect(fs_sync_job *c, int slot, const char *path, fs_sync_resp *resp, fs_errbuf *eb)
{
	return answered(c, fs_sync_req_collect(c->r, slot, resp, eb), path, resp, eb);
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

/*
 * The head of row's wire document into b: our members come after it, then
 * `}`. _revisions is the row's history (fs_store_outbox_next reads it).
 */
static int add_head(struct buf *b, const fs_store_outbox_row *row, fs_errbuf *eb)
{
	const fs_store_history *h = row->history;
	char num[32];

	if (h == NULL || h->n == 0)
		return fs_err_set(eb, FS_E_INTERNAL, "an outbox row without its history");
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
	return buf_done(b, eb);
}

/* A row's body read from the store (*d, freed by the caller) and its members. */
static int row_members(fs_sync_job *c, const fs_store_outbox_row *row, fs_store_doc **d,
                       const char **m, size_t *mn, fs_errbuf *eb)
{
	int rc;

	*d = NULL;
	if ((rc = fs_store_get(c->st, row->id, row->rev, d, eb)) != FS_OK)
		return rc;
	if (body_members((*d)->body, (*d)->body_len, m, mn) != 0) {
		fs_store_doc_free(*d);
		*d = NULL;
		return fs_err_set(eb, FS_E_INPUT, "stored body is not a JSON object");
	}
	return FS_OK;
}

static int quarantine(fs_sync_job *c, const fs_store_outbox_row *row, int status, const char *why,
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

#define BULK_PREFIX "{\"new_edits\":false,\"docs\":["
#define BULK_SUFFIX "]}"

static void pbatch_clear(fs_sync_job *c, struct pbatch *b)
{
	int slot = b->slot;

	if (b->state == PB_DIFF || b->state == PB_SEND) /* abandoned: its connection closes */
		fs_sync_req_cancel(c->r, slot);
	fs_store_outbox_free(b->ob);
	free(b->diff.p);
	free(b->need);
	free(b->docs);
	free(b->heads.p);
	free(b->snd.chunk.p);
	memset(b, 0, sizeof(*b));
	b->slot = slot;
	b->state = PB_EMPTY;
}

static void push_clear(fs_sync_job *c)
{
	pbatch_clear(c, &c->pb[0]);
	pbatch_clear(c, &c->pb[1]);
	c->after = 0;
	c->read_done = 0;
}

/* The push starts: the batches fill from the oldest outbox row. */
static int push_begin(fs_sync_job *c, fs_errbuf *eb)
{
	(void)eb;
	push_clear(c);
	c->ph = PH_PUSH;
	return FS_OK;
}

/* The next outbox rows into b, and their _revs_diff on b's slot; none: the reading is done. */
static int pbatch_read(fs_sync_job *c, struct pbatch *b, fs_errbuf *eb)
{
	int rc;

	if ((rc = fs_store_outbox_next(c->st, c->after, c->batch_docs, c->batch_bytes, &b->ob,
	                               eb)) != FS_OK)
		return rc;
	if (b->ob->n == 0) {
		pbatch_clear(c, b);
		c->read_done = 1;
		return FS_OK;
	}
	c->after = b->ob->v[b->ob->n - 1].oid;
	if ((b->need = malloc(sizeof(*b->need) * b->ob->n)) == NULL)
		return fs_err_set(eb, FS_E_NOMEM, NULL);
	/* _revs_diff for every batch, as the protocol does: the server may have
	 * a revision by another way (an earlier try that got through, another
	 * replication), and its body then need not travel again.
	 * {"id":["rev",...],...}; rows of one id may repeat the key, which
	 * servers merge, so no grouping is needed. */
	buf_add(&b->diff, "{", 1);
	for (size_t i = 0; i < b->ob->n; i++) {
		if (i)
			buf_add(&b->diff, ",", 1);
		buf_json_str(&b->diff, b->ob->v[i].id);
		buf_add(&b->diff, ":[", 2);
		buf_json_str(&b->diff, b->ob->v[i].rev);
		buf_add(&b->diff, "]", 1);
	}
	buf_add(&b->diff, "}", 1);
	if ((rc = send_req(c, b->slot, FS_SYNC_POST, "_revs_diff", &b->diff, 0, eb)) != FS_OK)
		return rc;
	b->state = PB_DIFF;
	return FS_OK;
}

/* The needed rows' heads and the room their members take on the wire. */
static int pbatch_prepare(struct pbatch *b, fs_errbuf *eb)
{
	int rc;

	if (b->nneed && (b->docs = calloc(b->nneed, sizeof(*b->docs))) == NULL)
		return fs_err_set(eb, FS_E_NOMEM, NULL);
	for (size_t i = 0; i < b->nneed; i++) {
		const fs_store_outbox_row *row = &b->ob->v[b->need[i]];
		b->docs[i].head = b->heads.len;
		if ((rc = add_head(&b->heads, row, eb)) != FS_OK)
			return rc;
		b->docs[i].head_len = b->heads.len - b->docs[i].head;
		b->docs[i].room = row->size > 2 ? row->size - 2 : 0;
	}
	b->stack[0] = (struct range){0, b->nneed};
	b->nstack = b->nneed ? 1 : 0;
	return FS_OK;
}

static int pbatch_send(fs_sync_job *c, struct pbatch *b, fs_errbuf *eb);

/* _revs_diff answered: rows the server has are confirmed, the rest prepared and sent. */
static int pbatch_on_diff(fs_sync_job *c, struct pbatch *b, fs_errbuf *eb)
{
	fs_sync_resp resp;
	fs_sync_revs_diff *diff = NULL;
	int64_t *have = NULL;
	size_t nhave = 0;
	const fs_store_outbox *ob = b->ob;
	int rc;

	if ((rc = collect(c, b->slot, "_revs_diff", &resp, eb)) != FS_OK)
		return rc;
	if ((rc = fs_sync_parse_revs_diff(resp.body, resp.len, fs_sync_remote_max_depth(c->r),
	                                  &diff, eb)) != FS_OK)
		return rc;
	free(b->diff.p);
	memset(&b->diff, 0, sizeof(b->diff));
	if ((have = malloc(sizeof(*have) * ob->n)) == NULL) {
		rc = fs_err_set(eb, FS_E_NOMEM, NULL);
		goto out;
	}
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
			b->need[b->nneed++] = i;
		else
			have[nhave++] = ob->v[i].oid;
	}
	/* The server already has these (an earlier try got through). */
	if (nhave && (rc = fs_store_outbox_confirm(c->st, have, nhave, eb)) != FS_OK)
		goto out;
	c->p->docs_pushed += nhave;
	if ((rc = pbatch_prepare(b, eb)) != FS_OK)
		goto out;
	rc = pbatch_send(c, b, eb);
out:
	fs_sync_revs_diff_free(diff);
	free(have);
	return rc;
}

/* Rows of r still to send (not taken out), and the last one. */
static size_t range_live(const struct pbatch *b, struct range r, size_t *last)
{
	size_t n = 0;
	for (size_t i = r.off; i < r.off + r.n; i++)
		if (b->need[i] != SKIPPED) {
			n++;
			*last = i;
		}
	return n;
}

/* Bytes of the _bulk_docs body of range r: what the sender produces. */
static size_t range_size(const struct pbatch *b, struct range r)
{
	size_t n = strlen(BULK_PREFIX) + strlen(BULK_SUFFIX), k = 0;
	for (size_t i = r.off; i < r.off + r.n; i++) {
		const struct wdoc *w = &b->docs[i];
		if (b->need[i] == SKIPPED)
			continue;
		n += (k++ ? 1 : 0) + w->head_len + (w->room ? 1 + w->room : 0) + 1;
	}
	return n;
}

static void sender_start(struct sender *x, fs_sync_job *c, struct pbatch *b, struct range r)
{
	x->c = c;
	x->b = b;
	x->r = r;
	x->i = r.off;
	x->k = 0;
	x->part = 0;
	x->chunk.len = 0;
	x->chunk.err = 0;
	x->off = 0;
	x->rc = FS_OK;
}

/* The sender's next piece into its chunk: the prefix, one document, or the suffix. */
static int sender_next(struct sender *x)
{
	struct pbatch *b = x->b;
	const struct wdoc *w;
	const fs_store_outbox_row *row;

	x->chunk.len = 0;
	x->off = 0;
	if (x->part == 0) {
		buf_str(&x->chunk, BULK_PREFIX);
		x->part = 1;
		return buf_done(&x->chunk, &x->eb);
	}
	while (x->i < x->r.off + x->r.n && b->need[x->i] == SKIPPED)
		x->i++;
	if (x->i == x->r.off + x->r.n) {
		buf_str(&x->chunk, BULK_SUFFIX);
		x->part = 2;
		return buf_done(&x->chunk, &x->eb);
	}
	w = &b->docs[x->i];
	row = &b->ob->v[b->need[x->i]];
	if (x->k++)
		buf_add(&x->chunk, ",", 1);
	buf_add(&x->chunk, b->heads.p + w->head, w->head_len);
	if (row->size > 0) {
		fs_store_doc *d = NULL;
		const char *m = "";
		size_t mn = 0;
		int rc = row_members(x->c, row, &d, &m, &mn, &x->eb);
		/* FS_E_INPUT: never sendable, the answer's reader quarantines it.
		 * FS_E_NOTFOUND: a newer edit superseded the row since it was read
		 * and stemming took its revision's body: nothing left to send. */
		if (rc == FS_E_INPUT || rc == FS_E_NOTFOUND)
			x->bad = x->i;
		else if (rc == FS_OK && mn > w->room)
			rc = fs_err_set(&x->eb, FS_E_INTERNAL,
			                "a queued body changed while it was being sent");
		if (rc == FS_OK && w->room) {
			size_t pad = w->room - mn;
			/* "{ }" has no members: its room is whitespace, with no comma */
			buf_add(&x->chunk, mn ? "," : " ", 1);
			buf_add(&x->chunk, m, mn);
			while (pad > 0 && x->chunk.err == 0) {
				static const char sp[16] = "                ";
				size_t k = pad < sizeof(sp) ? pad : sizeof(sp);
				buf_add(&x->chunk, sp, k);
				pad -= k;
			}
		}
		fs_store_doc_free(d);
		if (rc != FS_OK)
			return rc;
	}
	buf_add(&x->chunk, "}", 1);
	x->i++;
	return buf_done(&x->chunk, &x->eb);
}

/*
 * curl's read callback: the body, piece by piece, so a push batch is never
 * whole in memory. An error (the store failing) aborts the transfer; it is
 * reported with its own code when the answer is collected.
 */
static size_t sender_read(char *out, size_t size, size_t nitems, void *ud)
{
	struct sender *x = ud;
	size_t want = size * nitems, got = 0;

	while (got < want) {
		size_t k;
		if (x->off == x->chunk.len) {
			if (x->part == 2)
				break; /* the suffix went out: the end */
			if ((x->rc = sender_next(x)) != FS_OK)
				return CURL_READFUNC_ABORT;
		}
		k = x->chunk.len - x->off;
		if (k > want - got)
			k = want - got;
		memcpy(out + got, x->chunk.p + x->off, k);
		x->off += k;
		got += k;
	}
	return got;
}

/* curl's seek callback: it may send the body again from the start (a reused connection died). */
static int sender_seek(void *ud, curl_off_t offset, int origin)
{
	struct sender *x = ud;

	if (offset != 0 || origin != SEEK_SET)
		return CURL_SEEKFUNC_CANTSEEK;
	sender_start(x, x->c, x->b, x->r);
	return CURL_SEEKFUNC_OK;
}

/* The batch went through: it was progress, and its slot takes the next. */
static int pbatch_done(fs_sync_job *c, struct pbatch *b, fs_errbuf *eb)
{
	if (b->retry_rows)
		return fs_err_set(eb, FS_E_SYNC_SERVER,
		                  "the server could not store %zu documents yet", b->retry_rows);
	pbatch_clear(c, b);
	fs_sync_backoff_reset(&c->bo);
	return FS_OK;
}

/*
 * Starts the _bulk_docs of the next range on b's send stack (a batch
 * refused as a whole is halved until the refused document is alone and
 * goes to the quarantine); when the stack is empty the batch is done.
 */
static int pbatch_send(fs_sync_job *c, struct pbatch *b, fs_errbuf *eb)
{
	CURL *h;
	int rc;

	while (b->nstack > 0) {
		struct range r = b->stack[--b->nstack];
		size_t last = 0, size;
		if (range_live(b, r, &last) == 0)
			continue;
		if ((size = range_size(b, r)) > REQ_MAX)
			return fs_err_set(eb, FS_E_TOOBIG, "request body over %u bytes", REQ_MAX);
		b->cur = r;
		sender_start(&b->snd, c, b, r);
		if ((rc = fs_sync_req_prepare_stream(c->r, b->slot, "_bulk_docs", size, sender_read,
		                                     sender_seek, &b->snd, 0, &h, eb)) != FS_OK ||
		    (rc = fs_sync_req_start_on(c->r, b->slot, c->multi, eb)) != FS_OK)
			return rc;
		b->state = PB_SEND;
		return FS_OK;
	}
	return pbatch_done(c, b, eb);
}

/* _bulk_docs answered: confirm what the server stored, quarantine what it
 * refused for good, count what it failed for now. */
static int pbatch_on_bulk_docs(fs_sync_job *c, struct pbatch *b, fs_errbuf *eb)
{
	const fs_store_outbox *ob = b->ob;
	struct range r = b->cur;
	fs_sync_resp resp;
	fs_sync_bulk_result *res = NULL;
	int64_t *oids = NULL;
	size_t nok = 0, last = 0, nlive = range_live(b, r, &last);
	int rc;

	rc = collect(c, b->slot, "_bulk_docs", &resp, eb);
	if (b->snd.rc == FS_E_INPUT) {
		/* A stored body that is not an object can never be sent: it goes to
		 * the quarantine and the range goes again without it. */
		if ((rc = quarantine(c, &ob->v[b->need[b->snd.bad]], 0,
		                     "stored body is not a JSON object", eb)) != FS_OK)
			return rc;
		b->need[b->snd.bad] = SKIPPED;
		b->stack[b->nstack++] = r;
		return pbatch_send(c, b, eb);
	}
	if (b->snd.rc == FS_E_NOTFOUND) {
		/* Skipped only once its row is gone (superseded meanwhile): a row
		 * still queued without its body is damage, and said so. */
		int queued;
		if ((rc = fs_store_outbox_queued(c->st, ob->v[b->need[b->snd.bad]].oid, &queued,
		                                 eb)) != FS_OK)
			return rc;
		if (queued)
			return fs_err_set(eb, FS_E_STORE_CORRUPT,
			                  "a queued edit's body is missing");
		b->need[b->snd.bad] = SKIPPED;
		b->stack[b->nstack++] = r;
		return pbatch_send(c, b, eb);
	}
	if (b->snd.rc != FS_OK) /* the body could not be produced: that is the error */
		return fs_err_set(eb, b->snd.rc, "%s", b->snd.eb.msg);
	/* A success for a body not all sent (a server or proxy that answered
	 * early) confirms nothing. */
	if (rc == FS_OK && (b->snd.part != 2 || b->snd.off != b->snd.chunk.len))
		return fs_err_set(eb, FS_E_SYNC_SERVER,
		                  "the server answered before the whole batch was sent");
	if (rc == FS_E_SYNC_REFUSED) {
		if (nlive == 1) {
			char why[QUARANTINE_REASON_MAX];
			error_reason(&resp, why, sizeof(why));
			if ((rc = quarantine(c, &ob->v[b->need[last]], (int)resp.status, why,
			                     eb)) != FS_OK)
				return rc;
		} else if (b->nstack + 2 > SEND_STACK) {
			return fs_err_set(eb, FS_E_INTERNAL, "push batch split too deep");
		} else { /* the first half goes first: it is on top */
			b->stack[b->nstack++] = (struct range){r.off + r.n / 2, r.n - r.n / 2};
			b->stack[b->nstack++] = (struct range){r.off, r.n / 2};
		}
		return pbatch_send(c, b, eb);
	}
	if (rc != FS_OK)
		return rc;
	if ((rc = fs_sync_parse_bulk_docs(resp.body, resp.len, fs_sync_remote_max_depth(c->r), &res,
	                                  eb)) != FS_OK)
		goto out;
	if (c->ndone + nlive > c->done_cap) {
		size_t cap = c->ndone + nlive;
		if ((oids = realloc(c->done_oids, sizeof(*oids) * cap)) == NULL) {
			rc = fs_err_set(eb, FS_E_NOMEM, NULL);
			goto out;
		}
		c->done_oids = oids;
		c->done_cap = cap;
	}
	oids = c->done_oids + c->ndone;
	for (size_t i = r.off, q = 0; i < r.off + r.n; i++) {
		if (b->need[i] == SKIPPED)
			continue;
		const fs_store_outbox_row *row = &ob->v[b->need[i]];
		const fs_sync_doc_result *d = NULL;
		/* Servers answer in request order: look there first. */
		for (size_t t = 0; t < res->n && d == NULL; t++) {
			size_t k = (q + t) % res->n;
			if (strcmp(res->v[k].id, row->id) == 0 &&
			    (res->v[k].rev == NULL || strcmp(res->v[k].rev, row->rev) == 0))
				d = &res->v[k];
		}
		q++;
		if (d == NULL || d->cls == FS_SYNC_DOC_OK) {
			oids[nok++] = row->oid;
		} else if (d->cls == FS_SYNC_DOC_REFUSED) {
			char why[QUARANTINE_REASON_MAX];
			snprintf(why, sizeof(why), "%s%s%s", d->error, d->reason ? ": " : "",
			         d->reason ? d->reason : "");
			if ((rc = quarantine(c, row, doc_status(d->error), why, eb)) != FS_OK)
				goto out;
		} else {
			b->retry_rows++;
		}
	}
	/* Confirmed by push_step once the next request is on its way: the
	 * commit (and a checkpoint) then runs while the server works. */
	c->ndone += nok;
	rc = pbatch_send(c, b, eb);
out:
	fs_sync_bulk_result_free(res);
	return rc;
}

static int push_turn(fs_sync_job *c, fs_errbuf *eb);

/*
 * Rows the server stored leave the outbox: after the next request went
 * out, so this commit overlaps the server's work; also when a turn fails
 * (what the server has need not be sent again).
 */
static int push_confirm(fs_sync_job *c, fs_errbuf *eb)
{
	int rc;

	if (c->ndone == 0)
		return FS_OK;
	if ((rc = fs_store_outbox_confirm(c->st, c->done_oids, c->ndone, eb)) != FS_OK)
		return rc;
	c->p->docs_pushed += c->ndone;
	c->ndone = 0;
	report(c);
	return FS_OK;
}

/* A turn of the push, then the confirmation of what it got through. */
static int push_step(fs_sync_job *c, fs_errbuf *eb)
{
	int rc = push_turn(c, eb), rc2;

	if (rc == FS_SYNC_PENDING || rc == FS_OK) {
		if ((rc2 = push_confirm(c, eb)) != FS_OK)
			return rc2;
		return rc;
	}
	(void)push_confirm(c, NULL); /* the turn's own error is the one to report */
	return rc;
}

/*
 * One turn of the push: answers that came are read (a _revs_diff's
 * batch goes out at once, a _bulk_docs's takes its next range or ends),
 * then empty batches read the next rows. Returns FS_SYNC_PENDING when
 * nothing could move; the push ends when the outbox has nothing more.
 */
static int push_turn(fs_sync_job *c, fs_errbuf *eb)
{
	int rc, moved = 0;

	for (int i = 0; i < 2; i++) {
		struct pbatch *b = &c->pb[i];
		if ((b->state != PB_DIFF && b->state != PB_SEND) ||
		    !fs_sync_req_ready(c->r, b->slot))
			continue;
		rc = b->state == PB_DIFF ? pbatch_on_diff(c, b, eb) : pbatch_on_bulk_docs(c, b, eb);
		if (rc != FS_OK)
			return rc;
		moved = 1;
	}
	for (int i = 0; i < 2 && !c->read_done; i++) {
		if (c->pb[i].state != PB_EMPTY)
			continue;
		if ((rc = pbatch_read(c, &c->pb[i], eb)) != FS_OK)
			return rc;
		moved = 1;
	}
	if (c->read_done && c->pb[0].state == PB_EMPTY && c->pb[1].state == PB_EMPTY) {
		c->kinds_left &= ~FS_SYNC_JOB_PUSH;
		push_clear(c);
		c->ph = PH_IDLE;
		return FS_OK;
	}
	return moved ? FS_OK : FS_SYNC_PENDING;
}

/* ---- pull ---- */

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

static void batch_clear(fs_sync_job *c, struct batch *b)
{
	if (b->started) /* an error left it running: a read, safe to abandon */
		fs_sync_req_cancel(c->r, b->slot);
	fs_store_diff_free(b->d);
	free(b->body.p);
	memset(b, 0, sizeof(*b));
}

static void pull_clear(fs_sync_job *c)
{
	fs_sync_req_cancel(c->r, 0);
	batch_clear(c, &c->bt[0]);
	batch_clear(c, &c->bt[1]);
	fetched_free(&c->f);
	fs_sync_changes_free(c->ch);
	c->ch = NULL;
	free(c->since);
	c->since = NULL;
	c->bi = c->nb = c->or_i = 0;
}

/* Local revs_diff of changes [off, off+k), then the _bulk_get request on its way. */
static int batch_start(fs_sync_job *c, size_t off, size_t k, int slot, struct batch *b,
                       fs_errbuf *eb)
{
	const fs_sync_changes *ch = c->ch;
	fs_store_diff_query *q;
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
	if ((rc = send_req(c, slot, FS_SYNC_POST, "_bulk_get?revs=true", &b->body, 0, eb)) != FS_OK)
		return rc;
	b->started = 1;
	return FS_OK;
}

/* The step's window: _changes since the saved checkpoint. */
static int pull_begin(fs_sync_job *c, fs_errbuf *eb)
{
	char *esc = NULL;
	size_t limit = c->batch_docs * FS_SYNC_CHANGES_BATCHES;
	int rc;

	if (limit > FS_SYNC_MAX_ITEMS)
		limit = FS_SYNC_MAX_ITEMS;
	free(c->since);
	c->since = NULL;
	rc = fs_store_checkpoint_get(c->st, c->name, FS_STORE_PULL, &c->since, eb);
	if (rc == FS_E_NOTFOUND)
		rc = FS_OK;
	if (rc != FS_OK)
		goto out;
	if ((esc = curl_easy_escape(NULL, c->since ? c->since : "0", 0)) == NULL) {
		rc = fs_err_set(eb, FS_E_NOMEM, NULL);
		goto out;
	}
	if ((size_t)snprintf(c->path, sizeof(c->path), "_changes?style=all_docs&limit=%zu&since=%s",
	                     limit, esc) >= sizeof(c->path)) {
		rc = fs_err_set(eb, FS_E_TOOBIG, "sequence too long for a request");
		goto out;
	}
	if ((rc = send_req(c, 0, FS_SYNC_GET, c->path, NULL, 0, eb)) != FS_OK)
		goto out;
	c->ph = PH_CHANGES;
out:
	curl_free(esc);
	return rc;
}

/* The window is stored: the step ends, and the kind when the feed is drained. */
static int pull_end(fs_sync_job *c)
{
	if (c->drained)
		c->kinds_left &= ~FS_SYNC_JOB_PULL;
	pull_clear(c);
	c->ph = PH_IDLE;
	return FS_OK;
}

/* Offset and size of fetch batch i of the window. */
static void batch_span(const fs_sync_job *c, size_t i, size_t *off, size_t *k)
{
	*off = i * c->fb;
	*k = c->ch->n - *off < c->fb ? c->ch->n - *off : c->fb;
}

/* Writes what was fetched, with the checkpoint, in one store transaction. */
static int store_fetched(fs_sync_job *c, struct fetched *f, const char *seq, fs_errbuf *eb)
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

/* The checkpoint after the first n changes of the window. */
static const char *window_seq(const fs_sync_changes *ch, size_t n)
{
	if (n == ch->n && ch->last_seq)
		return ch->last_seq;
	return ch->v[n - 1].seq;
}

static int pull_enter_batch(fs_sync_job *c, fs_errbuf *eb);

/* Batch bi's revisions are all fetched: store them, go on with the next. */
static int pull_store_cur(fs_sync_job *c, fs_errbuf *eb)
{
	size_t off, k;
	int rc;

	batch_span(c, c->bi, &off, &k);
	if ((rc = store_fetched(c, &c->f, window_seq(c->ch, off + k), eb)) != FS_OK)
		return rc;
	fetched_free(&c->f);
	batch_clear(c, &c->bt[c->bi % 2]);
	report(c);
	if (++c->bi == c->nb)
		return pull_end(c);
	return pull_enter_batch(c, eb);
}

/* The next document of the current batch through open_revs, one at a time. */
static int pull_open_revs_next(fs_sync_job *c, fs_errbuf *eb)
{
	const struct batch *cur = &c->bt[c->bi % 2];
	const fs_store_diff *d = cur->d;
	struct buf revs = {0};
	char *eid = NULL, *erevs = NULL;
	int rc;

	if (c->or_i >= d->n)
		return pull_store_cur(c, eb);
	buf_add(&revs, "[", 1);
	for (size_t m = 0; m < d->v[c->or_i].n_missing; m++) {
		if (m)
			buf_add(&revs, ",", 1);
		buf_json_str(&revs, d->v[c->or_i].missing[m]);
	}
	buf_add(&revs, "]", 1);
	if ((rc = buf_done(&revs, eb)) != FS_OK)
		goto out;
	eid = curl_easy_escape(NULL, d->v[c->or_i].id, 0);
	erevs = curl_easy_escape(NULL, revs.p, (int)revs.len);
	if (eid == NULL || erevs == NULL) {
		rc = fs_err_set(eb, FS_E_NOMEM, NULL);
	} else if ((size_t)snprintf(c->path, sizeof(c->path), "%s?revs=true&open_revs=%s", eid,
	                            erevs) >= sizeof(c->path)) {
		rc = fs_err_set(eb, FS_E_TOOBIG, "open_revs request too long");
	} else if ((rc = send_req(c, cur->slot, FS_SYNC_GET, c->path, NULL, 0, eb)) == FS_OK) {
		c->ph = PH_OPEN_REVS;
	}
out:
	curl_free(eid);
	curl_free(erevs);
	free(revs.p);
	return rc;
}

static int pull_on_open_revs(fs_sync_job *c, fs_errbuf *eb)
{
	const struct batch *cur = &c->bt[c->bi % 2];
	fs_sync_resp resp;
	fs_sync_revs *rv = NULL;
	int rc;

	if ((rc = collect(c, cur->slot, c->path, &resp, eb)) != FS_OK ||
	    (rc = fs_sync_parse_open_revs(resp.body, resp.len, fs_sync_remote_max_depth(c->r),
	                                  cur->d->v[c->or_i].id, &rv, eb)) != FS_OK ||
	    (rc = fetched_add(&c->f, rv, eb)) != FS_OK)
		return rc;
	c->or_i++;
	return pull_open_revs_next(c, eb);
}

/*
 * Batch bi becomes the current one: the next batch's _bulk_get goes on its
 * way first (two quarter batches in flight, as much memory as half a batch:
 * while the server prepares one we parse and store the other; quarters, not
 * halves: 2.4 MB less peak RSS for 7% more time, bench/replicate).
 */
static int pull_enter_batch(fs_sync_job *c, fs_errbuf *eb)
{
	struct batch *cur = &c->bt[c->bi % 2];
	size_t off, k;
	int rc;

	if (c->bi + 1 < c->nb) {
		batch_span(c, c->bi + 1, &off, &k);
		if ((rc = batch_start(c, off, k, (int)((c->bi + 1) % 2), &c->bt[(c->bi + 1) % 2],
		                      eb)) != FS_OK)
			return rc;
	}
	if (cur->d->n == 0)
		return pull_store_cur(c, eb);
	if (cur->started) {
		c->ph = PH_FETCH;
		return FS_OK;
	}
	c->or_i = 0;
	return pull_open_revs_next(c, eb);
}

static int pull_on_fetch(fs_sync_job *c, fs_errbuf *eb)
{
	struct batch *cur = &c->bt[c->bi % 2];
	fs_sync_resp resp;
	fs_sync_revs *rv = NULL;
	int rc;

	cur->started = 0;
	rc = collect(c, cur->slot, "_bulk_get", &resp, eb);
	/* No _bulk_get: CouchDB before 2.0 answers 404 or 405. */
	if (rc == FS_E_NOTFOUND ||
	    (rc == FS_E_SYNC_REFUSED && (resp.status == 405 || resp.status == 400))) {
		c->no_bulk_get = 1;
		c->or_i = 0;
		return pull_open_revs_next(c, eb);
	}
	if (rc != FS_OK ||
	    (rc = fs_sync_parse_bulk_get(resp.body, resp.len, fs_sync_remote_max_depth(c->r), &rv,
	                                 eb)) != FS_OK ||
	    (rc = fetched_add(&c->f, rv, eb)) != FS_OK)
		return rc;
	return pull_store_cur(c, eb);
}

/*
 * _changes answered: one request covers several fetch batches (the
 * server's cost is mostly per request); each batch is stored with its own
 * checkpoint, so an interruption loses at most one batch of work.
 */
static int pull_on_changes(fs_sync_job *c, fs_errbuf *eb)
{
	size_t limit = c->batch_docs * FS_SYNC_CHANGES_BATCHES, k;
	fs_sync_resp resp;
	int rc;

	if (limit > FS_SYNC_MAX_ITEMS)
		limit = FS_SYNC_MAX_ITEMS;
	if ((rc = collect(c, 0, c->path, &resp, eb)) != FS_OK ||
	    (rc = fs_sync_parse_changes(resp.body, resp.len, fs_sync_remote_max_depth(c->r), &c->ch,
	                                eb)) != FS_OK)
		return rc;
	c->drained = c->ch->n < limit || c->ch->pending == 0;
	if (c->ch->n == 0) {
		const char *seq = c->ch->last_seq;
		if (seq && (c->since == NULL || strcmp(seq, c->since) != 0) &&
		    (rc = fs_store_checkpoint_set(c->st, c->name, FS_STORE_PULL, seq, eb)) != FS_OK)
			return rc;
		return pull_end(c);
	}
	c->fb = c->batch_docs >= FS_SYNC_FETCH_PARTS ? c->batch_docs / FS_SYNC_FETCH_PARTS : 1;
	c->nb = (c->ch->n + c->fb - 1) / c->fb;
	c->bi = 0;
	batch_span(c, 0, &(size_t){0}, &k);
	if ((rc = batch_start(c, 0, k, 0, &c->bt[0], eb)) != FS_OK)
		return rc;
	return pull_enter_batch(c, eb);
}

/* ---- probe ---- */

static int probe_begin(fs_sync_job *c, fs_errbuf *eb)
{
	int rc = send_req(c, 0, FS_SYNC_GET, "", NULL, FS_SYNC_PROBE_TIMEOUT_MS, eb);
	if (rc == FS_OK)
		c->ph = PH_PROBE;
	return rc;
}

static int probe_on_answer(fs_sync_job *c, fs_errbuf *eb)
{
	fs_sync_db_info *info = NULL;
	fs_sync_resp resp;
	int rc;

	rc = fs_sync_req_collect(c->r, 0, &resp, eb);
	c->retry_after = resp.retry_after_s;
	if (rc == FS_E_NOTFOUND)
		return fs_err_set(eb, FS_E_SYNC_NODB, "the database does not exist on the server");
	if (rc != FS_OK ||
	    (rc = fs_sync_parse_db_info(resp.body, resp.len, fs_sync_remote_max_depth(c->r), &info,
	                                eb)) != FS_OK)
		return rc;
	fs_sync_db_info_free(info);
	c->kinds_left &= ~FS_SYNC_JOB_PROBE;
	c->ph = PH_IDLE;
	return FS_OK;
}

/* ---- the job ---- */

int fs_sync_job_new(fs_store *st, fs_sync_remote *r, const fs_sync_opts *o, unsigned what,
                    CURLM *multi, fs_sync_job **out, fs_errbuf *eb)
{
	fs_sync_job *c;

	if (out == NULL)
		return fs_err_set(eb, FS_E_ARG, "no output for the job");
	*out = NULL;
	if (st == NULL || r == NULL)
		return fs_err_set(eb, FS_E_ARG, "no store or remote");
	if (what == 0 || (what & ~(FS_SYNC_JOB_PUSH | FS_SYNC_JOB_PULL | FS_SYNC_JOB_PROBE)))
		return fs_err_set(eb, FS_E_ARG, "unknown kind of sync job");
	/* One job per remote: they would share its request slots. */
	if (fs_sync_req_busy(r, 0) || fs_sync_req_busy(r, 1))
		return fs_err_set(eb, FS_E_ARG, "the remote has a job under way");
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return fs_err_set(eb, FS_E_NOMEM, NULL);
	c->st = st;
	c->r = r;
	c->multi = multi;
	if (o)
		c->o = *o;
	c->p = &c->prog;
	c->name = c->o.remote_name ? c->o.remote_name : fs_sync_remote_url(r);
	if (strlen(c->name) > FS_STORE_NAME_MAX) {
		free(c);
		return fs_err_set(eb, FS_E_ARG, "remote name longer than %d bytes",
		                  FS_STORE_NAME_MAX);
	}
	c->batch_docs = c->o.batch_docs ? c->o.batch_docs : FS_SYNC_BATCH_DOCS;
	c->batch_bytes = c->o.batch_bytes ? c->o.batch_bytes : FS_SYNC_BATCH_BYTES;
	if (c->batch_docs > FS_SYNC_MAX_ITEMS / 2)
		c->batch_docs = FS_SYNC_MAX_ITEMS / 2;
	c->no_bulk_get = c->o.no_bulk_get;
	c->pb[1].slot = 1;
	c->kinds_left = what;
	c->ph = PH_IDLE;
	fs_sync_backoff_init(&c->bo, c->o.backoff_min_ms, c->o.backoff_max_ms);
	fs_sync_remote_bytes(r, &c->sent0, &c->recv0);
	*out = c;
	return FS_OK;
}

void fs_sync_job_free(fs_sync_job *c)
{
	if (c == NULL)
		return;
	push_clear(c);
	pull_clear(c);
	fs_sync_remote_trim(c->r);
	free(c->done_oids);
	free(c);
}

int fs_sync_job_transfer_done(fs_sync_job *c, CURL *easy, CURLcode cc)
{
	int slot = c ? fs_sync_req_ended(c->r, easy, cc) : -1;
	return slot >= 0 && slot != FS_SYNC_SLOT_LONGPOLL;
}

void fs_sync_job_progress(const fs_sync_job *c, fs_sync_progress *out)
{
	if (out)
		memset(out, 0, sizeof(*out));
	if (c && out)
		*out = c->prog;
}

long fs_sync_job_retry_after(const fs_sync_job *c)
{
	return c ? c->retry_after : 0;
}

/* Starts the next step of the first kind not finished, or ends the job. */
static int begin(fs_sync_job *c, fs_errbuf *eb)
{
	if (c->kinds_left & FS_SYNC_JOB_PROBE)
		return probe_begin(c, eb);
	if (c->kinds_left & FS_SYNC_JOB_PUSH)
		return push_begin(c, eb);
	if (c->kinds_left & FS_SYNC_JOB_PULL)
		return pull_begin(c, eb);
	report(c);
	c->ph = PH_DONE;
	c->result = FS_OK;
	return FS_OK;
}

/* The answer the current phase waits for has come: read it, go on. */
static int on_answer(fs_sync_job *c, fs_errbuf *eb)
{
	switch (c->ph) {
	case PH_PROBE:
		return probe_on_answer(c, eb);
	case PH_CHANGES:
		return pull_on_changes(c, eb);
	case PH_FETCH:
		return pull_on_fetch(c, eb);
	case PH_OPEN_REVS:
		return pull_on_open_revs(c, eb);
	default:
		return fs_err_set(eb, FS_E_INTERNAL, "no answer awaited");
	}
}

/*
 * A step failed: what it had confirmed or stored stays; its requests are
 * abandoned and its batch forgotten. A transient failure is retried from
 * the step's start (outbox or checkpoint) after the backoff, up to
 * max_retries times in a kind; anything else ends the job.
 */
static void step_failed(fs_sync_job *c, int rc, uint64_t now)
{
	push_clear(c);
	pull_clear(c);
	if (fs_sync_err_transient(rc) && c->tries < c->o.max_retries) {
		c->tries++;
		c->p->retries++;
		c->retry_at =
		    now + fs_sync_backoff_fail(&c->bo, randombytes_random(), c->retry_after);
		c->ph = PH_RETRY;
		return;
	}
	report(c);
	c->ph = PH_DONE;
	c->result = rc;
}

int fs_sync_job_run(fs_sync_job *c, uint64_t now, uint32_t *wait_ms, fs_errbuf *eb)
{
	if (wait_ms)
		*wait_ms = UINT32_MAX;
	if (c == NULL || wait_ms == NULL)
		return fs_err_set(eb, FS_E_ARG, "no job");
	for (;;) {
		enum phase was = c->ph;
		unsigned kinds_left = c->kinds_left;
		int rc, slot = 0;

		switch (c->ph) {
		case PH_DONE:
			return c->result;
		case PH_RETRY:
			if (now < c->retry_at) {
				uint64_t w = c->retry_at - now;
				*wait_ms = w > UINT32_MAX ? UINT32_MAX : (uint32_t)w;
				return FS_SYNC_PENDING;
			}
			c->ph = PH_IDLE;
			continue;
		case PH_IDLE:
			rc = begin(c, eb);
			break;
		case PH_PUSH: /* two requests may be under way: it reads whichever ended */
			if ((rc = push_step(c, eb)) == FS_SYNC_PENDING)
				return FS_SYNC_PENDING;
			break;
		case PH_FETCH:
		case PH_OPEN_REVS:
			slot = c->bt[c->bi % 2].slot;
			/* fall through */
		default:
			if (!fs_sync_req_ready(c->r, slot))
				return FS_SYNC_PENDING;
			rc = on_answer(c, eb);
			break;
		}
		if (rc != FS_OK) {
			step_failed(c, rc, now);
			continue;
		}
		/* A step that ended made progress: the next failure starts the
		 * backoff over; a kind that ended starts its retries over. */
		if (c->ph == PH_IDLE && was != PH_IDLE)
			fs_sync_backoff_reset(&c->bo);
		if (c->kinds_left != kinds_left) {
			fs_sync_backoff_reset(&c->bo);
			c->tries = 0;
		}
	}
}

static uint64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int fs_sync_job_wait(fs_sync_job *c, fs_errbuf *eb)
{
	if (c == NULL || c->multi != NULL)
		return fs_err_set(eb, FS_E_ARG,
		                  "only a job on the remote's own multi handle waits");
	for (;;) {
		uint32_t w;
		int rc = fs_sync_job_run(c, mono_ms(), &w, eb);
		if (rc != FS_SYNC_PENDING)
			return rc;
		/* The only wait: for an answer, or for a retry's time. */
		if ((rc = fs_sync_remote_pump(c->r, w < DRIVER_POLL_MS ? (int)w : DRIVER_POLL_MS,
		                              eb)) != FS_OK) {
			step_failed(c, rc, mono_ms());
			c->ph = PH_DONE;
			c->result = rc;
			return rc;
		}
	}
}

/* ---- the blocking calls: the job on the remote's own multi handle ---- */

static int run_blocking(fs_store *st, fs_sync_remote *r, const fs_sync_opts *o,
                        fs_sync_progress *prog, unsigned what, fs_errbuf *eb)
{
	fs_sync_job *j = NULL;
	int rc;

	if (prog)
		memset(prog, 0, sizeof(*prog));
	if ((rc = fs_sync_job_new(st, r, o, what, NULL, &j, eb)) != FS_OK)
		return rc;
	rc = fs_sync_job_wait(j, eb);
	fs_sync_job_progress(j, prog);
	fs_sync_job_free(j);
	return rc;
}

int fs_sync_push(fs_store *st, fs_sync_remote *r, const fs_sync_opts *o, fs_sync_progress *prog,
                 fs_errbuf *eb)
{
	return run_blocking(st, r, o, prog, FS_SYNC_JOB_PUSH, eb);
}

int fs_sync_pull(fs_store *st, fs_sync_remote *r, const fs_sync_opts *o, fs_sync_progress *prog,
                 fs_errbuf *eb)
{
	return run_blocking(st, r, o, prog, FS_SYNC_JOB_PULL, eb);
}

int fs_sync_once(fs_store *st, fs_sync_remote *r, const fs_sync_opts *o, fs_sync_progress *prog,
                 fs_errbuf *eb)
{
	return run_blocking(st, r, o, prog, FS_SYNC_JOB_PUSH | FS_SYNC_JOB_PULL, eb);
}
