/*
 * hub/api.c: the CouchDB endpoints of the hub with CouchDB's response
 * shapes and status codes: server and database info, _changes (normal and
 * longpoll with heartbeats), _revs_diff, _bulk_docs, _bulk_get, documents
 * with revs/open_revs/latest/conflicts, _local documents, _all_docs.
 * A stored body is the document minus its special members; a served
 * document splices _id and _rev in front of it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <sodium.h>

#include "hub_srv.h"

#define HEARTBEAT_MIN_MS 100u
#define SLICE_DOCS       500u /* documents read from a store per hold of its mutex */

/* A team document (docs/team.md) is written once: edits and deletions are
 * refused, so a token holder cannot hide one from devices that join later. */
#define TEAM_WRITE_ONCE      "team documents are written once"
#define FS_E_TEAM_WRITE_ONCE (-1) /* local to this file: a per-document refusal */

static const char *arg(struct MHD_Connection *c, const char *k)
{
	return MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, k);
}

static int arg_true(struct MHD_Connection *c, const char *k)
{
	const char *v = arg(c, k);
	return v && strcmp(v, "true") == 0;
}

/* An unsigned number argument; absent: def. -1 for a bad one. */
static int arg_num(struct MHD_Connection *c, const char *k, uint64_t def, uint64_t *out)
{
	const char *v = arg(c, k);
	char *end;
	unsigned long long x;
	*out = def;
	if (v == NULL)
		return 0;
	errno = 0;
	/* Digits only: strtoull would also take " -1" (as 2^64-1) and "+5". */
	if (v[0] < '0' || v[0] > '9')
		return -1;
	x = strtoull(v, &end, 10);
	if (errno || end == v || *end)
		return -1;
	*out = x;
	return 0;
}

/* ---- documents out ---- */

/*
 * Appends one revision as a CouchDB document; the cache warmed at write
 * time (put_remote) uses the same function, so its bytes are the same.
 */
static void doc_json(hub_buf *b, const char *id, const char *rev, int deleted,
                     const fs_store_history *hi, const char *const *conflicts, size_t n_conf,
                     const uint8_t *body, size_t body_len)
{
	hub_buf_str(b, "{\"_id\":");
	hub_buf_json_str(b, id);
	hub_buf_str(b, ",\"_rev\":");
	hub_buf_json_str(b, rev);
	if (deleted)
		hub_buf_str(b, ",\"_deleted\":true");
	if (hi) {
		hub_buf_fmt(b, ",\"_revisions\":{\"start\":%lu,\"ids\":[", hi->start);
		for (size_t i = 0; i < hi->n; i++) {
			if (i)
				hub_buf_str(b, ",");
			hub_buf_json_str(b, hi->hashes[i]);
		}
		hub_buf_str(b, "]}");
	}
	for (size_t i = 0; i < n_conf; i++) {
		hub_buf_str(b, i ? "," : ",\"_conflicts\":[");
		hub_buf_json_str(b, conflicts[i]);
	}
	if (n_conf)
		hub_buf_str(b, "]");
	/* The body is a JSON object (parse.c made it); skip its opening brace. */
	if (body_len > 2 && body[0] == '{') {
		hub_buf_str(b, ",");
		hub_buf_add(b, body + 1, body_len - 1);
	} else {
		hub_buf_str(b, "}");
	}
}

static int write_doc(hub_buf *b, fs_store *st, const fs_store_doc *d, int revs, int conflicts,
                     fs_errbuf *eb)
{
	fs_store_history *hi = NULL;
	fs_store_leaves *l = NULL;
	const char **conf = NULL;
	size_t nc = 0;
	int rc = FS_OK;

	if (revs && (rc = fs_store_history_get(st, d->id, d->rev, 0, &hi, eb)) != FS_OK)
		goto out;
	if (conflicts) {
		/* Every conflicting leaf: a list cut short would hide a conflict. */
		if ((rc = fs_store_leaves_get(st, d->id, &l, eb)) != FS_OK)
			goto out;
		if ((conf = malloc((l->n ? l->n : 1) * sizeof(*conf))) == NULL) {
			rc = fs_err_set(eb, FS_E_NOMEM, NULL);
			goto out;
		}
		for (size_t i = 0; i < l->n; i++)
			if (!l->v[i].deleted && strcmp(l->v[i].rev, d->rev) != 0)
				conf[nc++] = l->v[i].rev;
	}
	doc_json(b, d->id, d->rev, d->deleted, hi, conf, nc, d->body, d->body_len);
	rc = b->err ? b->err : FS_OK;
out:
	free(conf);
	fs_store_history_free(hi);
	fs_store_leaves_free(l);
	return rc;
}

/* ---- server level ---- */

static enum MHD_Result welcome(fs_hub *h, hub_req *r, struct MHD_Connection *c)
{
	hub_buf b = {0};
	hub_buf_str(&b, "{\"couchdb\":\"Welcome\",\"version\":\"3.3.3\",\"vendor\":{\"name\":"
	                "\"fieldsync-hub\",\"version\":\"" FS_HUB_VERSION "\"},\"uuid\":");
	hub_buf_json_str(&b, h->uuid);
	hub_buf_str(&b, ",\"features\":[]}");
	return hub_send(r, c, 200, &b);
}

static enum MHD_Result db_info(hub_db *db, hub_req *r, struct MHD_Connection *c)
{
	fs_store_info in;
	fs_errbuf eb = {0};
	hub_buf b = {0};
	int rc;
	pthread_mutex_lock(&db->mu);
	rc = fs_store_info_get(db->st, &in, &eb);
	pthread_mutex_unlock(&db->mu);
	if (rc != FS_OK)
		return hub_send_fs_err(r, c, rc, &eb);
	hub_buf_str(&b, "{\"db_name\":");
	hub_buf_json_str(&b, db->name);
	hub_buf_fmt(&b,
	            ",\"doc_count\":%llu,\"doc_del_count\":%llu,\"update_seq\":%llu,"
	            "\"committed_update_seq\":%llu,\"purge_seq\":0,\"compact_running\":false,"
	            "\"disk_format_version\":8,\"instance_start_time\":\"0\","
	            "\"sizes\":{\"file\":0,\"external\":0,\"active\":0}}",
	            (unsigned long long)in.doc_count, (unsigned long long)in.doc_del_count,
	            (unsigned long long)in.update_seq, (unsigned long long)in.update_seq);
	return hub_send(r, c, 200, &b);
}

/* ---- _changes ---- */

struct changes_ctx {
	hub_buf *b;
	int all_docs;
	size_t n;
};

static int change_cb(void *ctx, const fs_store_change *ch)
{
	struct changes_ctx *x = ctx;
	hub_buf *b = x->b;
	hub_buf_str(b, x->n++ ? ",\n{\"seq\":" : "\n{\"seq\":");
	hub_buf_fmt(b, "%llu,\"id\":", (unsigned long long)ch->seq);
	hub_buf_json_str(b, ch->id);
	hub_buf_str(b, ",\"changes\":[");
	if (x->all_docs) {
		for (size_t i = 0; i < ch->n_leaves; i++) {
			hub_buf_str(b, i ? ",{\"rev\":" : "{\"rev\":");
			hub_buf_json_str(b, ch->leaves[i].rev);
			hub_buf_str(b, "}");
		}
	} else {
		hub_buf_str(b, "{\"rev\":");
		hub_buf_json_str(b, ch->winner);
		hub_buf_str(b, "}");
	}
	hub_buf_str(b, ch->deleted ? "],\"deleted\":true}" : "]}");
	return b->err ? FS_E_NOMEM : 0;
}

/*
 * The feed after since into b; *n gets the count. The store is read in
 * slices of SLICE_DOCS, each under its own hold of db->mu, so a feed of a
 * whole database never keeps writers (and every other reader) waiting for
 * its length. A document written between two slices may appear twice
 * (at its old and its new sequence), as in CouchDB's own feeds; the feed
 * stops at the sequence the database had when it began, so writers that
 * keep coming cannot make it endless, and pending then says that more
 * is there.
 */
static int changes_body(hub_db *db, uint64_t since, size_t limit, int all_docs, hub_buf *b,
                        size_t *n, fs_errbuf *eb)
{
	struct changes_ctx x = {.b = b, .all_docs = all_docs};
	uint64_t last = since, pending = 0, end;
	int rc = FS_OK, more = 0;

	*n = 0;
	hub_buf_str(b, "{\"results\":[");
	pthread_mutex_lock(&db->mu);
	end = fs_store_seq(db->st);
	pthread_mutex_unlock(&db->mu);
	for (;;) {
		size_t want = SLICE_DOCS, before = x.n;
		if (limit && limit - x.n < want)
			want = limit - x.n;
		pthread_mutex_lock(&db->mu);
		rc = fs_store_changes(db->st, last, want, change_cb, &x, &last, eb);
		more =
		    rc == FS_OK && x.n - before == want && ((limit && x.n >= limit) || last >= end);
		if (more)
			rc = fs_store_changes_pending(db->st, last, &pending, eb);
		pthread_mutex_unlock(&db->mu);
		if (rc != FS_OK)
			return rc;
		if (more || x.n - before < want)
			break;
	}
	hub_buf_fmt(b, "\n],\"last_seq\":%llu,\"pending\":%llu}", (unsigned long long)last,
	            (unsigned long long)pending);
	*n = x.n;
	return b->err ? b->err : FS_OK;
}

typedef struct longpoll {
	fs_hub *h;
	hub_db *db;
	uint64_t since;
	size_t limit;
	int all_docs;
	uint64_t deadline, heartbeat_ms, next_beat;
	hub_waiter wait; /* db, seen_writes and due_ms while it waits */
	hub_buf out;
	size_t sent;
	int ready;
} longpoll;

static void longpoll_free(void *cls)
{
	longpoll *lp = cls;
	hub_wait_forget(lp->h->wait, &lp->wait);
	hub_buf_free(&lp->out);
	free(lp);
}

/*
 * The body of a longpoll, called by a pool thread whenever the connection
 * can take bytes. While there is nothing to say it parks the connection
 * and returns 0 bytes, giving the thread back; a write to the database,
 * the next heartbeat or the timeout resumes it (wait.c), and this runs
 * again. A heartbeat is a newline, so the client and proxies see life.
 */
static ssize_t longpoll_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	longpoll *lp = cls;
	(void)pos;
	while (!lp->ready) {
		uint64_t now = hub_now_ms();
		uint64_t writes = __atomic_load_n(&lp->db->writes, __ATOMIC_SEQ_CST);
		int timed_out = now >= lp->deadline;
		fs_errbuf eb;
		if (hub_wait_stopping(lp->h->wait))
			return MHD_CONTENT_READER_END_WITH_ERROR;
		if (writes != lp->wait.seen_writes || timed_out) {
			size_t n = 0;
			/* Writes from here on make the next look see a change. */
			lp->wait.seen_writes = writes;
			lp->out.len = 0;
			int rc = changes_body(lp->db, lp->since, lp->limit, lp->all_docs, &lp->out,
			                      &n, &eb);
			if (rc != FS_OK)
				return MHD_CONTENT_READER_END_WITH_ERROR;
			if (n > 0 || timed_out)
				lp->ready = 1;
			continue;
		}
		if (lp->heartbeat_ms && now >= lp->next_beat) {
			lp->next_beat = now + lp->heartbeat_ms;
			buf[0] = '\n';
			return 1;
		}
		lp->wait.due_ms = lp->deadline;
		if (lp->heartbeat_ms && lp->next_beat < lp->wait.due_ms)
			lp->wait.due_ms = lp->next_beat;
		if (hub_wait_park(lp->h->wait, &lp->wait))
			return 0;
	}
	if (lp->sent >= lp->out.len)
		return MHD_CONTENT_READER_END_OF_STREAM;
	size_t k = lp->out.len - lp->sent < max ? lp->out.len - lp->sent : max;
	memcpy(buf, lp->out.p + lp->sent, k);
	lp->sent += k;
	return (ssize_t)k;
}

static enum MHD_Result changes(fs_hub *h, hub_db *db, hub_req *r, struct MHD_Connection *c)
{
	const char *feed = arg(c, "feed"), *style = arg(c, "style"), *since_s = arg(c, "since");
	const char *hb = arg(c, "heartbeat");
	uint64_t since = 0, limit = 0, timeout = h->conf.longpoll_max_ms, heartbeat = 0;
	int all_docs = style && strcmp(style, "all_docs") == 0;
	int longp = 0, rc;
	size_t n = 0;
	hub_buf b = {0};
	fs_errbuf eb = {0};

	if (feed && strcmp(feed, "longpoll") == 0)
		longp = 1;
	else if (feed && strcmp(feed, "normal") != 0)
		return hub_send_err(r, c, 400, "bad_request", "feed must be normal or longpoll");
	if (style && strcmp(style, "all_docs") != 0 && strcmp(style, "main_only") != 0)
		return hub_send_err(r, c, 400, "bad_request",
		                    "style must be main_only or all_docs");
	if (arg_num(c, "limit", 0, &limit) != 0 || arg_num(c, "timeout", timeout, &timeout) != 0)
		return hub_send_err(r, c, 400, "bad_request", "limit and timeout must be numbers");
	if (hb && strcmp(hb, "true") == 0)
		heartbeat = 60000;
	else if (arg_num(c, "heartbeat", 0, &heartbeat) != 0)
		return hub_send_err(r, c, 400, "bad_request", "heartbeat must be a number");
	if (since_s && strcmp(since_s, "now") == 0) {
		fs_store_info in;
		pthread_mutex_lock(&db->mu);
		rc = fs_store_info_get(db->st, &in, &eb);
		pthread_mutex_unlock(&db->mu);
		if (rc != FS_OK)
			return hub_send_fs_err(r, c, rc, &eb);
		since = in.update_seq;
	} else if (since_s) {
		/* Our own sequences are plain numbers; clients echo them back. */
		char *end;
		errno = 0;
		since = strtoull(since_s, &end, 10);
		if (errno || end == since_s || *end || since_s[0] < '0' || since_s[0] > '9')
			return hub_send_err(r, c, 400, "bad_request",
			                    "Malformed sequence supplied in 'since' parameter.");
	}
	if (timeout > h->conf.longpoll_max_ms)
		timeout = h->conf.longpoll_max_ms;
	if (heartbeat && heartbeat < HEARTBEAT_MIN_MS)
		heartbeat = HEARTBEAT_MIN_MS;
	/* now + heartbeat must not wrap: no beat is rarer than the longest wait. */
	if (heartbeat > h->conf.longpoll_max_ms)
		heartbeat = h->conf.longpoll_max_ms;
	if (limit > SIZE_MAX)
		limit = SIZE_MAX;

	/* A write after this wakes the longpoll below. */
	uint64_t writes = __atomic_load_n(&db->writes, __ATOMIC_SEQ_CST);
	rc = changes_body(db, since, (size_t)limit, all_docs, &b, &n, &eb);
	if (rc != FS_OK) {
		hub_buf_free(&b);
		return hub_send_fs_err(r, c, rc, &eb);
	}
	if (!longp || n > 0)
		return hub_send(r, c, 200, &b);
	hub_buf_free(&b);

	longpoll *lp = calloc(1, sizeof(*lp));
	if (lp == NULL)
		return hub_send_err(r, c, 500, "internal_server_error", "out of memory");
	lp->h = h;
	lp->db = db;
	lp->since = since;
	lp->limit = (size_t)limit;
	lp->all_docs = all_docs;
	lp->wait.c = c;
	lp->wait.db = db;
	lp->wait.seen_writes = writes;
	lp->deadline = hub_now_ms() + timeout;
	lp->heartbeat_ms = heartbeat;
	lp->next_beat = hub_now_ms() + heartbeat;
	struct MHD_Response *resp = MHD_create_response_from_callback(
	    MHD_SIZE_UNKNOWN, 4096, longpoll_read, lp, longpoll_free);
	if (resp == NULL) {
		longpoll_free(lp);
		return MHD_NO;
	}
	MHD_add_response_header(resp, "Content-Type", "application/json");
	MHD_add_response_header(resp, "Cache-Control", "must-revalidate");
	r->status = 200;
	r->responded = 1;
	enum MHD_Result ret = MHD_queue_response(c, 200, resp);
	MHD_destroy_response(resp);
	return ret;
}

/* ---- _revs_diff ---- */

static enum MHD_Result revs_diff(fs_hub *h, hub_db *db, hub_req *r, struct MHD_Connection *c)
{
	hub_revs_diff q;
	fs_store_diff *d = NULL;
	fs_errbuf eb = {0};
	hub_buf b = {0};
	int rc = hub_parse_revs_diff(r->body.p ? r->body.p : "", r->body.len, h->conf.max_body,
	                             h->conf.json_depth, h->conf.max_batch_docs, &q, &eb);
	if (rc != FS_OK)
		return hub_send_fs_err(r, c, rc, &eb);
	pthread_mutex_lock(&db->mu);
	rc = fs_store_revs_diff(db->st, q.q, q.n, &d, &eb);
	pthread_mutex_unlock(&db->mu);
	hub_revs_diff_clear(&q);
	if (rc != FS_OK)
		return hub_send_fs_err(r, c, rc, &eb);
	hub_buf_str(&b, "{");
	for (size_t i = 0; i < d->n; i++) {
		const fs_store_diff_entry *e = &d->v[i];
		if (i)
			hub_buf_str(&b, ",");
		hub_buf_json_str(&b, e->id);
		hub_buf_str(&b, ":{\"missing\":[");
		for (size_t k = 0; k < e->n_missing; k++) {
			if (k)
				hub_buf_str(&b, ",");
			hub_buf_json_str(&b, e->missing[k]);
		}
		hub_buf_str(&b, "]");
		if (e->n_ancestors) {
			hub_buf_str(&b, ",\"possible_ancestors\":[");
			for (size_t k = 0; k < e->n_ancestors; k++) {
				if (k)
					hub_buf_str(&b, ",");
				hub_buf_json_str(&b, e->possible_ancestors[k]);
			}
			hub_buf_str(&b, "]");
		}
		hub_buf_str(&b, "}");
	}
	hub_buf_str(&b, "}");
	fs_store_diff_free(d);
	return hub_send(r, c, 200, &b);
}

/* ---- writes ---- */

/* After a write to db: its parked longpolls look again (server.c). */
static void wrote(hub_db *db)
{
	hub_db_wrote(db);
}

static void new_id(char out[33])
{
	unsigned char r[16];
	randombytes_buf(r, sizeof(r));
	sodium_bin2hex(out, 33, r, sizeof(r));
}

static int cmp_id(const void *a, const void *b)
{
	const hub_doc_in *x = *(const hub_doc_in *const *)a, *y = *(const hub_doc_in *const *)b;
	return strcmp(x->id, y->id);
}

/*
 * Which revisions of the batch may warm the cache as they are written:
 * first revisions (generation 1, as every new note is), alone for their
 * document in the batch. For those, "the write changed the document"
 * means "the write stored this revision with this body" (store/revs.c:
 * a known revision changes nothing and has no history to link), so the
 * cached bytes are what the store serves. A later revision could have been
 * known already with another body while its history was linked, so it is
 * left to the first read. prewarm_mark keeps the ones the write stored.
 * warm[i] set for the candidates; by_id gets them sorted by id; returns
 * their count.
 */
static size_t prewarm_pick(unsigned revs_limit, hub_doc_in *v, size_t n, unsigned char *warm,
                           hub_doc_in **by_id)
{
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		by_id[i] = &v[i];
	qsort(by_id, n, sizeof(*by_id), cmp_id);
	for (size_t i = 0; i < n; i++) {
		hub_doc_in *x = by_id[i];
		int dup = (i > 0 && strcmp(by_id[i - 1]->id, x->id) == 0) ||
		          (i + 1 < n && strcmp(by_id[i + 1]->id, x->id) == 0);
		warm[x - v] = !dup && revs_limit >= 1 && strncmp(x->rev, "1-", 2) == 0 &&
		              (x->n_hashes == 0 || (x->n_hashes == 1 && x->rev_start == 1));
	}
	for (size_t i = 0; i < n; i++)
		if (warm[by_id[i] - v])
			by_id[k++] = by_id[i];
	return k;
}

struct mark_ctx {
	hub_doc_in *v;
	hub_doc_in **cand;
	size_t n_cand;
	unsigned char *warm; /* 1 candidate; after the walk: 2 stored, 3 stored and a leaf */
};

static int find_id(const void *key, const void *elem)
{
	return strcmp(key, (*(const hub_doc_in *const *)elem)->id);
}

/* A document this write changed (after the write's first sequence): its
 * first revision from the batch was stored, with the request's body. */
static int prewarm_mark(void *ctx, const fs_store_change *c)
{
	struct mark_ctx *m = ctx;
	hub_doc_in **hit = bsearch(c->id, m->cand, m->n_cand, sizeof(*m->cand), find_id);
	if (hit == NULL)
		return 0;
	size_t i = (size_t)(*hit - m->v);
	m->warm[i] = 2;
	for (size_t k = 0; k < c->n_leaves; k++)
		if (strcmp(c->leaves[k].rev, m->v[i].rev) == 0)
			m->warm[i] = 3;
	return 0;
}

/* Replication's write: every revision with its history, one transaction. */
static int put_remote(fs_hub *h, hub_db *db, hub_doc_in *v, size_t n, fs_errbuf *eb)
{
	fs_store_rev_in *in = calloc(n ? n : 1, sizeof(*in));
	const char **one = calloc(n ? n : 1, sizeof(char *));
	unsigned char *warm = calloc(n ? n : 1, 1);
	hub_doc_in **by_id = malloc((n ? n : 1) * sizeof(*by_id));
	hub_buf b = {0};
	int rc = FS_OK;
	if (in == NULL || one == NULL || warm == NULL || by_id == NULL) {
		rc = fs_err_set(eb, FS_E_NOMEM, NULL);
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned long g;
		const char *hash;
		if (fs_crypto_rev_parse(v[i].rev, &g, &hash) != FS_OK) {
			rc = fs_err_set(eb, FS_E_INPUT, "Invalid rev format");
			goto out;
		}
		in[i].id = v[i].id;
		in[i].deleted = v[i].deleted;
		in[i].body = v[i].body;
		in[i].body_len = v[i].body_len;
		if (v[i].n_hashes) {
			in[i].start = v[i].rev_start;
			in[i].hashes = (const char *const *)v[i].hashes;
			in[i].n_hashes = v[i].n_hashes;
		} else {
			one[i] = hash;
			in[i].start = g;
			in[i].hashes = &one[i];
			in[i].n_hashes = 1;
		}
	}
	size_t n_cand =
	    h->conf.doc_cache_bytes ? prewarm_pick(h->conf.revs_limit, v, n, warm, by_id) : 0;
	pthread_mutex_lock(&db->mu);
	uint64_t before = fs_store_seq(db->st);
	rc = fs_store_put_remote(db->st, in, n, NULL, NULL, eb);
	if (rc == FS_OK && n) {
		struct mark_ctx m = {.v = v, .cand = by_id, .n_cand = n_cand, .warm = warm};
		fs_errbuf eb2;
		for (size_t i = 0; i < n; i++)
			hub_cache_drop(db->cache, v[i].id);
		/* Every document of the batch a first revision, each taking at most
		 * one sequence: as many new sequences as documents means each was
		 * stored, and (no child could name it) is a leaf. Else ask. */
		if (n_cand == n && fs_store_seq(db->st) - before == n)
			memset(warm, 3, n);
		else if (n_cand == 0 ||
		         fs_store_changes(db->st, before, 0, prewarm_mark, &m, NULL, &eb2) != FS_OK)
			n_cand = 0;
		for (size_t i = 0; i < n && n_cand; i++) {
			if (warm[i] < 2)
				continue;
			char *hash = v[i].rev + 2; /* generation 1: its history is itself */
			fs_store_history hi = {.start = 1, .n = 1, .hashes = &hash};
			b.len = 0;
			doc_json(&b, v[i].id, v[i].rev, v[i].deleted, &hi, NULL, 0, v[i].body,
			         v[i].body_len);
			if (!b.err)
				hub_cache_put(db->cache, v[i].id, v[i].rev, b.p, b.len,
				              warm[i] == 3);
		}
		wrote(db);
	}
	pthread_mutex_unlock(&db->mu);
out:
	hub_buf_free(&b);
	free(in);
	free(one);
	free(warm);
	free(by_id);
	return rc;
}

/* A normal edit (new_edits=true); the new revision goes to rev. */
static int put_edit(hub_db *db, const char *id, const hub_doc_in *d, char rev[FS_REV_MAX],
                    fs_errbuf *eb)
{
	int rc;
	pthread_mutex_lock(&db->mu);
	rc = fs_store_put(db->st, id, d->rev, d->body, d->body_len, d->deleted,
	                  FS_STORE_PUT_NO_OUTBOX, rev, eb);
	if (rc == FS_OK) {
		hub_cache_drop(db->cache, id);
		wrote(db);
	}
	pthread_mutex_unlock(&db->mu);
	return rc;
}

/* For hub_team_written: the ids of the batch's documents that were stored
 * (stored[i] set); a refused one (a conflict, a team document edited) binds
 * no token. NULL stored: all of the first n. */
static void team_written(fs_hub *h, hub_db *db, hub_req *r, const hub_bulk_docs *bd, size_t n,
                         const unsigned char *stored)
{
	const char **ids = calloc(n ? n : 1, sizeof(*ids));
	size_t k = 0;

	if (ids == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		if ((stored == NULL || stored[i]) && bd->v[i].id)
			ids[k++] = bd->v[i].id;
	hub_team_written(h, db, &r->who, ids, k);
	free(ids);
}

static enum MHD_Result bulk_docs(fs_hub *h, hub_db *db, hub_req *r, struct MHD_Connection *c)
{
	hub_bulk_docs bd;
	fs_errbuf eb = {0};
	hub_buf b = {0};
	int rc = hub_parse_bulk_docs(r->body.p ? r->body.p : "", r->body.len, h->conf.max_body,
	                             h->conf.json_depth, h->conf.max_batch_docs, &bd, &eb);
	if (rc != FS_OK)
		return hub_send_fs_err(r, c, rc, &eb);
	if (!bd.new_edits) {
		/* Refused team-document edits go last, answered one by one. */
		size_t ok = bd.n;
		for (size_t i = 0; i < ok;)
			if (hub_team_write_ok(bd.v[i].id, bd.v[i].rev, bd.v[i].deleted, 0)) {
				i++;
			} else {
				hub_doc_in tmp = bd.v[i];
				bd.v[i] = bd.v[--ok];
				bd.v[ok] = tmp;
			}
		rc = put_remote(h, db, bd.v, ok, &eb);
		if (rc == FS_OK)
			team_written(h, db, r, &bd, ok, NULL);
		if (rc != FS_OK) {
			hub_bulk_docs_clear(&bd);
			return hub_send_fs_err(r, c, rc, &eb);
		}
		hub_buf_str(&b, "[");
		for (size_t i = ok; i < bd.n; i++) {
			hub_buf_str(&b, i > ok ? ",{\"id\":" : "{\"id\":");
			hub_buf_json_str(&b, bd.v[i].id);
			hub_buf_str(&b, ",\"rev\":");
			hub_buf_json_str(&b, bd.v[i].rev);
			hub_buf_str(&b,
			            ",\"error\":\"forbidden\",\"reason\":\"" TEAM_WRITE_ONCE "\"}");
		}
		hub_buf_str(&b, "]");
		hub_bulk_docs_clear(&bd);
		return hub_send(r, c, 201, &b);
	}
	unsigned char *stored = calloc(bd.n ? bd.n : 1, 1);
	if (stored == NULL) {
		hub_bulk_docs_clear(&bd);
		return hub_send_fs_err(r, c, FS_E_NOMEM, NULL);
	}
	hub_buf_str(&b, "[");
	for (size_t i = 0; i < bd.n; i++) {
		char id[33], rev[FS_REV_MAX];
		const char *did = bd.v[i].id;
		if (did == NULL) {
			new_id(id);
			did = id;
		}
		rc = hub_team_write_ok(did, bd.v[i].rev, bd.v[i].deleted, 1)
		         ? put_edit(db, did, &bd.v[i], rev, &eb)
		         : FS_E_TEAM_WRITE_ONCE;
		/* Only what is wrong with this document is answered per document; a
		 * full disk, a busy or damaged store fails the request (5xx, retried)
		 * and its message, which names files, stays in the hub. */
		if (rc != FS_OK && rc != FS_E_STORE_CONFLICT && rc != FS_E_INPUT &&
		    rc != FS_E_ARG && rc != FS_E_TOOBIG && rc != FS_E_NOTFOUND &&
		    rc != FS_E_TEAM_WRITE_ONCE) {
			hub_buf_free(&b);
			free(stored);
			hub_bulk_docs_clear(&bd);
			return hub_send_fs_err(r, c, rc, NULL);
		}
		hub_buf_str(&b, i ? ",{" : "{");
		stored[i] = rc == FS_OK;
		if (rc == FS_OK) {
			hub_buf_str(&b, "\"ok\":true,\"id\":");
			hub_buf_json_str(&b, did);
			hub_buf_str(&b, ",\"rev\":");
			hub_buf_json_str(&b, rev);
		} else {
			hub_buf_str(&b, "\"id\":");
			hub_buf_json_str(&b, did);
			hub_buf_str(
			    &b,
			    rc == FS_E_STORE_CONFLICT
			        ? ",\"error\":\"conflict\",\"reason\":\"Document update conflict.\""
			    : rc == FS_E_TEAM_WRITE_ONCE
			        ? ",\"error\":\"forbidden\",\"reason\":\"" TEAM_WRITE_ONCE "\""
			        : ",\"error\":\"bad_request\",\"reason\":");
			if (rc != FS_E_STORE_CONFLICT && rc != FS_E_TEAM_WRITE_ONCE)
				hub_buf_json_str(&b, eb.msg);
		}
		hub_buf_str(&b, "}");
	}
	hub_buf_str(&b, "]");
	team_written(h, db, r, &bd, bd.n, stored);
	free(stored);
	hub_bulk_docs_clear(&bd);
	return hub_send(r, c, 201, &b);
}

/* ---- reads ---- */

/*
 * latest=true: the leaves that descend from rev (rev itself when it is a
 * leaf: nothing descends from a leaf). *out (the caller frees it) points
 * into l, all of them, however many: a cut list would drop a conflict.
 * *n is 0 when no leaf descends from rev (unknown, or a malformed rev).
 */
static int latest_of(fs_store *st, const char *id, const char *rev, const fs_store_leaves *l,
                     const char ***out, size_t *n, fs_errbuf *eb)
{
	const char **v;
	unsigned long g;
	const char *hash;
	size_t k = 0;
	int rc = FS_OK;

	*out = NULL;
	*n = 0;
	if (fs_crypto_rev_parse(rev, &g, &hash) != FS_OK)
		return FS_OK;
	if ((v = malloc((l->n ? l->n : 1) * sizeof(*v))) == NULL)
		return fs_err_set(eb, FS_E_NOMEM, NULL);
	for (size_t i = 0; i < l->n && rc == FS_OK; i++) {
		fs_store_history *hi = NULL;
		if (strcmp(l->v[i].rev, rev) == 0) {
			v[k++] = l->v[i].rev;
			continue;
		}
		rc = fs_store_history_get(st, id, l->v[i].rev, 0, &hi, eb);
		if (rc == FS_E_NOTFOUND) {
			rc = FS_OK;
			continue;
		}
		if (rc == FS_OK && g <= hi->start && hi->start - g < hi->n &&
		    strcmp(hi->hashes[hi->start - g], hash) == 0)
			v[k++] = l->v[i].rev;
		fs_store_history_free(hi);
	}
	if (rc != FS_OK) {
		free(v);
		return rc;
	}
	*out = v;
	*n = k;
	return FS_OK;
}

/* A revision asked for that the store cannot serve, in the request's form. */
static void missing(hub_buf *b, const char *id, const char *want, int bulk_get)
{
	if (bulk_get) {
		hub_buf_str(b, "{\"error\":{\"id\":");
		hub_buf_json_str(b, id);
		hub_buf_str(b, ",\"rev\":");
		hub_buf_json_str(b, want ? want : "undefined");
		hub_buf_str(b, ",\"error\":\"not_found\",\"reason\":\"missing\"}}");
	} else {
		hub_buf_str(b, "{\"missing\":");
		hub_buf_json_str(b, want ? want : "");
		hub_buf_str(b, "}");
	}
}

/*
 * One {"ok":doc} or missing entry of _bulk_get / open_revs. Revisions asked
 * for by id and rev come from the cache when they can (a leaf when latest
 * is asked); otherwise from the store under db->mu, held for this one
 * document (a batch of a thousand would keep writers waiting for all of
 * them), and then go to the cache.
 * A revision the store lacks is an entry; a store failure (busy, I/O,
 * memory) is returned and fails the request.
 */
static int one_rev(hub_buf *b, hub_db *db, const char *id, const char *rev, int revs, int latest,
                   int bulk_get, int *first)
{
	fs_store *st = db->st;
	fs_store_leaves *l = NULL;
	fs_errbuf eb;
	const char **want = NULL, *self[1] = {rev};
	size_t n = 0;
	int is_leaf = 0, rc = FS_OK;

	hub_buf_str(b, *first ? "" : ",");
	*first = 0;
	if (rev && revs) {
		size_t mark = b->len;
		hub_buf_str(b, "{\"ok\":");
		if (hub_cache_get(db->cache, id, rev, latest, b)) {
			hub_buf_str(b, "}");
			return FS_OK;
		}
		b->len = mark;
	}
	pthread_mutex_lock(&db->mu);
	/* Leaf or not matters for latest only; without it the entry is cached
	 * as "not known to be a leaf", which a latest request then looks up. */
	if (rev && latest) {
		rc = fs_store_leaves_get(st, id, &l, &eb);
		if (rc == FS_OK)
			rc = latest_of(st, id, rev, l, &want, &n, &eb);
		else if (rc == FS_E_NOTFOUND)
			rc = FS_OK;
		if (rc != FS_OK)
			goto out;
		is_leaf = n > 0; /* what latest_of found are leaves */
	}
	if (n == 0) {
		n = 1;
		free(want);
		want = NULL;
	}
	for (size_t i = 0; i < n; i++) {
		const char *w = want ? want[i] : self[0];
		fs_store_doc *d = NULL;
		size_t mark = b->len, doc_at;
		if (i)
			hub_buf_str(b, ",");
		rc = fs_store_get(st, id, w, &d, &eb);
		if (rc == FS_E_NOTFOUND) {
			rc = FS_OK;
			missing(b, id, w, bulk_get);
			continue;
		}
		if (rc != FS_OK)
			goto out;
		hub_buf_str(b, "{\"ok\":");
		doc_at = b->len;
		rc = write_doc(b, st, d, revs, 0, &eb);
		if (rc == FS_OK && w && revs && !b->err)
			hub_cache_put(db->cache, id, w, b->p + doc_at, b->len - doc_at, is_leaf);
		fs_store_doc_free(d);
		if (rc == FS_E_NOTFOUND) { /* its history went missing: as the store lacks it */
			b->len = mark;
			hub_buf_str(b, i ? "," : "");
			missing(b, id, w, bulk_get);
			rc = FS_OK;
			continue;
		}
		if (rc != FS_OK)
			goto out;
		hub_buf_str(b, "}");
	}
out:
	pthread_mutex_unlock(&db->mu);
	free(want);
	fs_store_leaves_free(l);
	return rc;
}

static enum MHD_Result bulk_get(fs_hub *h, hub_db *db, hub_req *r, struct MHD_Connection *c)
{
	hub_bulk_get g;
	fs_errbuf eb = {0};
	hub_buf b = {0};
	int revs = arg_true(c, "revs"), latest = arg_true(c, "latest");
	int rc = hub_parse_bulk_get(r->body.p ? r->body.p : "", r->body.len, h->conf.max_body,
	                            h->conf.json_depth, h->conf.max_batch_docs, &g, &eb);
	if (rc != FS_OK)
		return hub_send_fs_err(r, c, rc, &eb);
	hub_buf_str(&b, "{\"results\":[");
	for (size_t i = 0; i < g.n && !b.err && rc == FS_OK; i++) {
		int first = 1;
		hub_buf_str(&b, i ? ",\n{\"id\":" : "\n{\"id\":");
		hub_buf_json_str(&b, g.ids[i]);
		hub_buf_str(&b, ",\"docs\":[");
		rc = one_rev(&b, db, g.ids[i], g.revs[i], revs, latest, 1, &first);
		hub_buf_str(&b, "]}");
	}
	hub_buf_str(&b, "\n]}");
	hub_bulk_get_clear(&g);
	if (rc != FS_OK) { /* the store's message names files: it stays here */
		hub_buf_free(&b);
		return hub_send_fs_err(r, c, rc, NULL);
	}
	return hub_send(r, c, 200, &b);
}

static enum MHD_Result doc_get(hub_db *db, hub_req *r, struct MHD_Connection *c, const char *id)
{
	const char *rev = arg(c, "rev"), *open_revs = arg(c, "open_revs");
	int revs = arg_true(c, "revs"), latest = arg_true(c, "latest");
	int conflicts = arg_true(c, "conflicts");
	fs_store_doc *d = NULL;
	fs_errbuf eb = {0};
	hub_buf b = {0};
	int rc;

	if (rev && fs_crypto_rev_parse(rev, NULL, NULL) != FS_OK)
		return hub_send_err(r, c, 400, "bad_request", "Invalid rev format");
	if (open_revs) {
		int all, first = 1;
		char **v = NULL;
		size_t n = 0;
		if ((rc = hub_parse_open_revs(open_revs, &all, &v, &n, &eb)) != FS_OK)
			return hub_send_fs_err(r, c, rc, &eb);
		hub_buf_str(&b, "[");
		if (all) {
			fs_store_leaves *l = NULL;
			pthread_mutex_lock(&db->mu);
			rc = fs_store_leaves_get(db->st, id, &l, &eb);
			pthread_mutex_unlock(&db->mu);
			for (size_t i = 0; rc == FS_OK && i < l->n; i++)
				rc = one_rev(&b, db, id, l->v[i].rev, revs, 0, 0, &first);
			fs_store_leaves_free(l);
		} else {
			rc = FS_OK;
			for (size_t i = 0; i < n && rc == FS_OK; i++)
				rc = one_rev(&b, db, id, v[i], revs, latest, 0, &first);
		}
		hub_strv_free(v, n);
		hub_buf_str(&b, "]");
		if (rc != FS_OK) {
			hub_buf_free(&b);
			if (rc == FS_E_NOTFOUND)
				return hub_send_err(r, c, 404, "not_found", "missing");
			return hub_send_fs_err(r, c, rc, NULL);
		}
		return hub_send(r, c, 200, &b);
	}
	pthread_mutex_lock(&db->mu);
	rc = fs_store_get(db->st, id, rev, &d, &eb);
	if (rc == FS_OK && d->deleted && rev == NULL) {
		pthread_mutex_unlock(&db->mu);
		fs_store_doc_free(d);
		return hub_send_err(r, c, 404, "not_found", "deleted");
	}
	if (rc == FS_OK)
		rc = write_doc(&b, db->st, d, revs, conflicts, &eb);
	pthread_mutex_unlock(&db->mu);
	fs_store_doc_free(d);
	if (rc != FS_OK) {
		hub_buf_free(&b);
		if (rc == FS_E_NOTFOUND)
			return hub_send_err(r, c, 404, "not_found", "missing");
		return hub_send_fs_err(r, c, rc, &eb);
	}
	return hub_send(r, c, 200, &b);
}

static enum MHD_Result doc_write(fs_hub *h, hub_db *db, hub_req *r, struct MHD_Connection *c,
                                 const char *url_id, int del)
{
	cJSON *j = NULL;
	hub_doc_in d = {0};
	fs_errbuf eb = {0};
	hub_buf b = {0};
	char rev[FS_REV_MAX], gen[33];
	const char *qrev = arg(c, "rev");
	const char *ifm = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "If-Match");
	const char *id = url_id;
	int rc;

	if (del) {
		if ((d.body = (uint8_t *)strdup("{}")) == NULL)
			return hub_send_err(r, c, 500, "internal_server_error", "out of memory");
		d.body_len = 2;
		d.deleted = 1;
	} else {
		if ((rc = hub_json_parse(r->body.p ? r->body.p : "", r->body.len, h->conf.max_body,
		                         h->conf.json_depth, &j, &eb)) != FS_OK ||
		    (rc = hub_parse_doc(j, &d, &eb)) != FS_OK) {
			cJSON_Delete(j);
			return hub_send_fs_err(r, c, rc, &eb);
		}
		cJSON_Delete(j);
	}
	if (id == NULL) { /* POST /db */
		if (d.id == NULL) {
			new_id(gen);
			id = gen;
		} else {
			id = d.id;
		}
	} else if (d.id && strcmp(d.id, id) != 0) {
		hub_doc_in_clear(&d);
		return hub_send_err(r, c, 400, "bad_request", "Document id must match the URL");
	}
	if (!hub_docid_ok(id)) {
		hub_doc_in_clear(&d);
		return hub_send_err(r, c, 400, "illegal_docid",
		                    "Only reserved document ids may start with underscore.");
	}
	const char *base = qrev ? qrev : ifm;
	if (base && fs_crypto_rev_parse(base, NULL, NULL) != FS_OK) {
		hub_doc_in_clear(&d);
		return hub_send_err(r, c, 400, "bad_request", "Invalid rev format");
	}
	if (base && d.rev && strcmp(base, d.rev) != 0) {
		hub_doc_in_clear(&d);
		return hub_send_err(r, c, 400, "bad_request",
		                    "Document rev and rev parameter differ");
	}
	if (base && d.rev == NULL && (d.rev = strdup(base)) == NULL) {
		hub_doc_in_clear(&d);
		return hub_send_err(r, c, 500, "internal_server_error", "out of memory");
	}
	if (!hub_team_write_ok(
	        id, d.rev, d.deleted,
	        !(arg(c, "new_edits") && strcmp(arg(c, "new_edits"), "false") == 0))) {
		hub_doc_in_clear(&d);
		return hub_send_err(r, c, 403, "forbidden", TEAM_WRITE_ONCE);
	}
	if (arg(c, "new_edits") && strcmp(arg(c, "new_edits"), "false") == 0) {
		if (d.rev == NULL) {
			hub_doc_in_clear(&d);
			return hub_send_err(r, c, 400, "bad_request", "new_edits=false needs _rev");
		}
		if (d.id == NULL && (d.id = strdup(id)) == NULL) {
			hub_doc_in_clear(&d);
			return hub_send_err(r, c, 500, "internal_server_error", "out of memory");
		}
		rc = put_remote(h, db, &d, 1, &eb);
		snprintf(rev, sizeof(rev), "%s", d.rev);
	} else {
		rc = put_edit(db, id, &d, rev, &eb);
	}
	hub_doc_in_clear(&d);
	if (rc != FS_OK)
		return hub_send_fs_err(r, c, rc, &eb);
	hub_team_written(h, db, &r->who, &id, 1);
	hub_buf_str(&b, "{\"ok\":true,\"id\":");
	hub_buf_json_str(&b, id);
	hub_buf_str(&b, ",\"rev\":");
	hub_buf_json_str(&b, rev);
	hub_buf_str(&b, "}");
	return hub_send(r, c, del ? 200 : 201, &b);
}

/* ---- _local documents ---- */

/* The id a client knows a _local document by: "_local/" and the stored id. */
static void local_id(hub_buf *b, const char *lid)
{
	char full[FS_STORE_ID_MAX + 8];
	snprintf(full, sizeof(full), "_local/%s", lid);
	hub_buf_json_str(b, full);
}

static enum MHD_Result local_doc(fs_hub *h, hub_db *db, hub_req *r, struct MHD_Connection *c,
                                 const char *method, const char *lid)
{
	fs_errbuf eb = {0};
	hub_buf b = {0};
	char rev[FS_REV_MAX];
	int rc;

	if (*lid == '\0' || strlen(lid) > FS_STORE_ID_MAX - 7)
		return hub_send_err(r, c, 400, "bad_request", "bad _local document id");
	if (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0) {
		uint8_t *body = NULL;
		size_t len = 0;
		pthread_mutex_lock(&db->mu);
		rc = fs_store_local_get(db->st, lid, rev, &body, &len, &eb);
		pthread_mutex_unlock(&db->mu);
		if (rc != FS_OK)
			return rc == FS_E_NOTFOUND ? hub_send_err(r, c, 404, "not_found", "missing")
			                           : hub_send_fs_err(r, c, rc, &eb);
		hub_buf_str(&b, "{\"_id\":");
		local_id(&b, lid);
		hub_buf_str(&b, ",\"_rev\":");
		hub_buf_json_str(&b, rev);
		if (len > 2 && body[0] == '{') {
			hub_buf_str(&b, ",");
			hub_buf_add(&b, body + 1, len - 1);
		} else {
			hub_buf_str(&b, "}");
		}
		free(body);
		return hub_send(r, c, 200, &b);
	}
	if (strcmp(method, "DELETE") == 0) {
		pthread_mutex_lock(&db->mu);
		rc = fs_store_local_delete(db->st, lid, arg(c, "rev"), &eb);
		pthread_mutex_unlock(&db->mu);
		if (rc != FS_OK)
			return hub_send_fs_err(r, c, rc, &eb);
		/* CouchDB names the document deleted, and a deleted _local has "0-0". */
		hub_buf_str(&b, "{\"ok\":true,\"id\":");
		local_id(&b, lid);
		hub_buf_str(&b, ",\"rev\":\"0-0\"}");
		return hub_send(r, c, 200, &b);
	}
	if (strcmp(method, "PUT") != 0)
		return hub_send_err(r, c, 405, "method_not_allowed", "Only GET,PUT,DELETE allowed");
	{
		cJSON *j = NULL, *e, *copy = NULL;
		char *txt = NULL, *base = NULL;
		if ((rc = hub_json_parse(r->body.p ? r->body.p : "", r->body.len, h->conf.max_body,
		                         h->conf.json_depth, &j, &eb)) != FS_OK)
			return hub_send_fs_err(r, c, rc, &eb);
		if (!cJSON_IsObject(j) || (copy = cJSON_Duplicate(j, 1)) == NULL) {
			cJSON_Delete(j);
			return hub_send_err(r, c, 400, "bad_request",
			                    "Document must be a JSON object");
		}
		e = cJSON_GetObjectItemCaseSensitive(j, "_rev");
		if (e && (!cJSON_IsString(e) || strlen(e->valuestring) >= FS_REV_MAX)) {
			cJSON_Delete(j);
			cJSON_Delete(copy);
			return hub_send_err(r, c, 400, "bad_request", "Invalid rev format");
		}
		base = e ? e->valuestring : NULL;
		cJSON_DeleteItemFromObjectCaseSensitive(copy, "_id");
		cJSON_DeleteItemFromObjectCaseSensitive(copy, "_rev");
		cJSON_DeleteItemFromObjectCaseSensitive(copy, "_revisions");
		txt = cJSON_PrintUnformatted(copy);
		cJSON_Delete(copy);
		if (txt == NULL) {
			cJSON_Delete(j);
			return hub_send_err(r, c, 500, "internal_server_error", "out of memory");
		}
		pthread_mutex_lock(&db->mu);
		rc = fs_store_local_put(db->st, lid, base, (const uint8_t *)txt, strlen(txt), rev,
		                        &eb);
		pthread_mutex_unlock(&db->mu);
		free(txt);
		cJSON_Delete(j);
		if (rc != FS_OK)
			return hub_send_fs_err(r, c, rc, &eb);
	}
	hub_buf_str(&b, "{\"ok\":true,\"id\":");
	local_id(&b, lid);
	hub_buf_str(&b, ",\"rev\":");
	hub_buf_json_str(&b, rev);
	hub_buf_str(&b, "}");
	return hub_send(r, c, 201, &b);
}

/* ---- _all_docs ---- */

struct all_row {
	char *id;
	char rev[FS_REV_MAX];
	uint64_t seq;
	int drop; /* a tombstone, or an older state of an id that came twice */
};

struct all_ctx {
	struct all_row *v;
	size_t n, cap, seen;
};

static int all_cb(void *ctx, const fs_store_change *ch)
{
	struct all_ctx *x = ctx;
	x->seen++;
	if (x->n == x->cap) {
		size_t cap = x->cap ? x->cap * 2 : 64;
		struct all_row *v = realloc(x->v, cap * sizeof(*v));
		if (v == NULL)
			return FS_E_NOMEM;
		x->v = v;
		x->cap = cap;
	}
	if ((x->v[x->n].id = strdup(ch->id)) == NULL)
		return FS_E_NOMEM;
	snprintf(x->v[x->n].rev, FS_REV_MAX, "%s", ch->winner);
	x->v[x->n].seq = ch->seq;
	x->v[x->n].drop = ch->deleted;
	x->n++;
	return 0;
}

/* By id, the latest sequence of an id first. */
static int cmp_row(const void *a, const void *b)
{
	const struct all_row *x = a, *y = b;
	int c = strcmp(x->id, y->id);
	return c ? c : (x->seq < y->seq) - (x->seq > y->seq);
}

/*
 * Every document's winner, sorted by id. The ids are read in slices of
 * the changes feed, each under its own hold of db->mu, and sorted with no
 * lock held; a document written between two slices comes twice, and only
 * its latest state counts (deleted ones are left out after that). With
 * include_docs each document is read under a hold of its own.
 */
static enum MHD_Result all_docs(hub_db *db, hub_req *r, struct MHD_Connection *c)
{
	struct all_ctx x = {0};
	fs_errbuf eb = {0};
	hub_buf b = {0};
	uint64_t limit = 0, last = 0, end;
	int include = arg_true(c, "include_docs"), rc = FS_OK;
	size_t rows = 0, k = 0;

	if (arg_num(c, "limit", 0, &limit) != 0)
		return hub_send_err(r, c, 400, "bad_request", "limit must be a number");
	pthread_mutex_lock(&db->mu);
	end = fs_store_seq(db->st);
	pthread_mutex_unlock(&db->mu);
	while (rc == FS_OK && last < end) {
		size_t seen = x.seen;
		pthread_mutex_lock(&db->mu);
		rc = fs_store_changes(db->st, last, SLICE_DOCS, all_cb, &x, &last, &eb);
		pthread_mutex_unlock(&db->mu);
		if (x.seen - seen < SLICE_DOCS)
			break;
	}
	if (rc == FS_OK) {
		qsort(x.v, x.n, sizeof(*x.v), cmp_row);
		/* Keep each id's latest state, then only the living. */
		for (size_t i = x.n; i-- > 0;)
			x.v[i].drop |= i && strcmp(x.v[i].id, x.v[i - 1].id) == 0;
		for (size_t i = 0; i < x.n; i++) {
			if (x.v[i].drop)
				free(x.v[i].id);
			else
				x.v[rows++] = x.v[i];
		}
		x.n = rows;
		hub_buf_fmt(&b, "{\"total_rows\":%zu,\"offset\":0,\"rows\":[", rows);
	}
	for (k = 0; rc == FS_OK && k < rows && (limit == 0 || k < limit) && !b.err; k++) {
		struct all_row *w = &x.v[k];
		hub_buf_str(&b, k ? ",\n{\"id\":" : "\n{\"id\":");
		hub_buf_json_str(&b, w->id);
		hub_buf_str(&b, ",\"key\":");
		hub_buf_json_str(&b, w->id);
		hub_buf_str(&b, ",\"value\":{\"rev\":");
		hub_buf_json_str(&b, w->rev);
		hub_buf_str(&b, "}");
		if (include) {
			fs_store_doc *d = NULL;
			pthread_mutex_lock(&db->mu);
			int got = fs_store_get(db->st, w->id, w->rev, &d, &eb);
			if (got == FS_OK) {
				hub_buf_str(&b, ",\"doc\":");
				(void)write_doc(&b, db->st, d, 0, 0, &eb);
				fs_store_doc_free(d);
			} else if (got != FS_E_NOTFOUND) {
				rc = got;
			}
			pthread_mutex_unlock(&db->mu);
		}
		hub_buf_str(&b, "}");
	}
	hub_buf_str(&b, "\n]}");
	for (size_t i = 0; i < x.n; i++)
		free(x.v[i].id);
	free(x.v);
	if (rc == FS_OK && b.err)
		rc = b.err;
	if (rc != FS_OK) {
		hub_buf_free(&b);
		return hub_send_fs_err(r, c, rc, NULL);
	}
	return hub_send(r, c, 200, &b);
}

/* ---- routing ---- */

static int is(const char *m, const char *want)
{
	return strcmp(m, want) == 0 || (strcmp(want, "GET") == 0 && strcmp(m, "HEAD") == 0);
}

enum MHD_Result hub_route(fs_hub *h, hub_req *r, struct MHD_Connection *c, const char *url,
                          const char *method)
{
	char name[FS_HUB_DB_NAME_MAX];
	const char *p = url[0] == '/' ? url + 1 : url, *slash, *rest;
	hub_db *db = NULL;
	fs_errbuf eb = {0};
	size_t nl;
	int rc;

	if (*p == '\0') {
		if (!is(method, "GET"))
			return hub_send_err(r, c, 405, "method_not_allowed", "Only GET allowed");
		return welcome(h, r, c);
	}
	if (strcmp(p, "_up") == 0) {
		hub_buf b = {0};
		hub_buf_str(&b, "{\"status\":\"ok\"}");
		return hub_send(r, c, 200, &b);
	}
	if (!r->authed)
		return hub_send_err(r, c, 401, "unauthorized",
		                    "You are not authorized to access this db.");
	if (strcmp(p, "_all_dbs") == 0) {
		hub_buf b = {0};
		if (!r->who.admin)
			return hub_send_err(r, c, 403, "forbidden", "You are not a server admin.");
		if (hub_db_list(h, &b) != FS_OK) {
			hub_buf_free(&b);
			return hub_send_err(r, c, 500, "internal_server_error",
			                    "cannot list databases");
		}
		return hub_send(r, c, 200, &b);
	}
	if (strcmp(p, "_session") == 0) {
		hub_buf b = {0};
		hub_buf_str(&b, "{\"ok\":true,\"userCtx\":{\"name\":");
		hub_buf_json_str(&b, r->who.id);
		hub_buf_str(&b, r->who.admin ? ",\"roles\":[\"_admin\"]}}" : ",\"roles\":[]}}");
		return hub_send(r, c, 200, &b);
	}
	slash = strchr(p, '/');
	nl = slash ? (size_t)(slash - p) : strlen(p);
	rest = slash ? slash + 1 : NULL;
	if (nl >= sizeof(name))
		return hub_send_err(r, c, 400, "illegal_database_name", "Name is too long.");
	memcpy(name, p, nl);
	name[nl] = '\0';
	if (!hub_db_name_ok(name)) {
		if (name[0] == '_')
			return hub_send_err(
			    r, c, 400, "illegal_database_name",
			    "Only lowercase characters (a-z), digits (0-9), and _ - are allowed.");
		return hub_send_err(
		    r, c, 400, "illegal_database_name",
		    "Name: must begin with a letter; only a-z, 0-9, _ and - are allowed.");
	}
	if (!hub_who_may(&r->who, name))
		return hub_send_err(r, c, 403, "forbidden",
		                    "You are not allowed to access this db.");
	if (rest == NULL || *rest == '\0') {
		if (strcmp(method, "PUT") == 0) {
			hub_buf b = {0};
			if (!r->who.admin)
				return hub_send_err(r, c, 403, "forbidden",
				                    "You are not a server admin.");
			if ((rc = hub_db_get(h, name, 1, &db, &eb)) != FS_OK)
				return hub_send_fs_err(r, c, rc, &eb);
			hub_buf_str(&b, "{\"ok\":true}");
			return hub_send(r, c, 201, &b);
		}
	}
	if ((rc = hub_db_get(h, name, 0, &db, &eb)) != FS_OK) {
		if (rc == FS_E_NOTFOUND)
			return hub_send_err(r, c, 404, "not_found", "Database does not exist.");
		return hub_send_fs_err(r, c, rc, &eb);
	}
	if (rest == NULL || *rest == '\0') {
		if (is(method, "GET"))
			return db_info(db, r, c);
		if (strcmp(method, "POST") == 0)
			return doc_write(h, db, r, c, NULL, 0);
		return hub_send_err(r, c, 405, "method_not_allowed", "Only GET,PUT,POST allowed");
	}
	if (strcmp(rest, "_changes") == 0) {
		if (!is(method, "GET") && strcmp(method, "POST") != 0)
			return hub_send_err(r, c, 405, "method_not_allowed",
			                    "Only GET,POST allowed");
		return changes(h, db, r, c);
	}
	if (strcmp(rest, "_revs_diff") == 0 || strcmp(rest, "_bulk_docs") == 0 ||
	    strcmp(rest, "_bulk_get") == 0 || strcmp(rest, "_ensure_full_commit") == 0) {
		if (strcmp(method, "POST") != 0)
			return hub_send_err(r, c, 405, "method_not_allowed", "Only POST allowed");
		if (strcmp(rest, "_revs_diff") == 0)
			return revs_diff(h, db, r, c);
		if (strcmp(rest, "_bulk_docs") == 0)
			return bulk_docs(h, db, r, c);
		if (strcmp(rest, "_bulk_get") == 0)
			return bulk_get(h, db, r, c);
		hub_buf b = {0};
		hub_buf_str(&b, "{\"ok\":true,\"instance_start_time\":\"0\"}");
		return hub_send(r, c, 201, &b);
	}
	if (strcmp(rest, "_all_docs") == 0) {
		if (!is(method, "GET"))
			return hub_send_err(r, c, 405, "method_not_allowed", "Only GET allowed");
		return all_docs(db, r, c);
	}
	if (strncmp(rest, "_local/", 7) == 0)
		return local_doc(h, db, r, c, method, rest + 7);
	if (rest[0] == '_')
		return hub_send_err(r, c, 400, "illegal_docid",
		                    "Only reserved document ids may start with underscore.");
	if (strlen(rest) > FS_STORE_ID_MAX)
		return hub_send_err(r, c, 400, "bad_request", "document id too long");
	if (is(method, "GET"))
		return doc_get(db, r, c, rest);
	if (strcmp(method, "PUT") == 0)
		return doc_write(h, db, r, c, rest, 0);
	if (strcmp(method, "DELETE") == 0)
		return doc_write(h, db, r, c, rest, 1);
	return hub_send_err(r, c, 405, "method_not_allowed", "Only GET,PUT,DELETE allowed");
}
