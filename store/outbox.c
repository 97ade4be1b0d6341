/*
 * store/outbox.c: the queue of local edits waiting for the server (read in
 * bounded batches, confirmed, quarantined, retried), replication
 * checkpoints, CouchDB `_local` documents and the daemon's meta values.
 */
#include "store_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CONFIRM_MAX   100000
#define Q_QUEUED      0
#define Q_QUARANTINED 1

static int oom(fs_errbuf *eb)
{
	return fs_err_set(eb, FS_E_NOMEM, "store: out of memory");
}

/* Prepares sql (ad hoc: these paths are not hot). */
static int prep(fs_store *st, const char *sql, sqlite3_stmt **s, fs_errbuf *eb)
{
	int rc = sqlite3_prepare_v2(st->db, sql, -1, s, NULL);

	return rc == SQLITE_OK ? FS_OK : store_err(st, rc, "prepare", eb);
}

/* Runs sql once with one parameter: the text txt, or num when txt is NULL. */
static int run1(fs_store *st, const char *sql, const char *txt, int64_t num, const char *what,
                fs_errbuf *eb)
{
	sqlite3_stmt *s = NULL;
	int r, rc;

	if ((r = prep(st, sql, &s, eb)) != FS_OK)
		return r;
	if (txt)
		sqlite3_bind_text(s, 1, txt, -1, SQLITE_STATIC);
	else
		sqlite3_bind_int64(s, 1, num);
	rc = sqlite3_step(s);
	r = rc == SQLITE_DONE ? FS_OK : store_err(st, rc, what, eb);
	sqlite3_finalize(s);
	return r;
}

/*
 * Rows in state, oldest first, with an oid above after; bodies read when
 * with_body, else only their length.
 */
static int read_rows(fs_store *st, int state, int64_t after, int with_body, size_t max_rows,
                     size_t max_bytes, fs_store_outbox **out, fs_errbuf *eb)
{
	sqlite3_stmt *s = NULL;
	fs_store_outbox *o = NULL;
	size_t cap = 0, bytes = 0;
	int r, rc;

	/* The row's document gives the revision's deleted flag and body (from
	 * its tree; usually the body in the row itself, the newest). */
	if ((r = prep(st,
	              "SELECT o.oid, o.id, o.rev, o.queued_at, o.status, o.reason, d.tree, d.body"
	              " FROM outbox o JOIN docs d ON d.id = o.id"
	              " WHERE o.state = ?1 AND o.oid > ?3 ORDER BY o.oid LIMIT ?2",
	              &s, eb)) != FS_OK)
		return r;
	sqlite3_bind_int(s, 1, state);
	sqlite3_bind_int64(s, 2,
	                   max_rows == 0 || max_rows > INT64_MAX ? -1 : (sqlite3_int64)max_rows);
	sqlite3_bind_int64(s, 3, after);
	if ((o = calloc(1, sizeof(*o))) == NULL) {
		r = oom(eb);
		goto out;
	}
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		fs_store_outbox_row *w;
		const char *rev = (const char *)sqlite3_column_text(s, 2), *hash = NULL;
		const struct node *x;
		unsigned long gen = 0;
		uint8_t *body = NULL;
		fs_store_history *hist;
		size_t len = 0, sz;
		long i;
		if ((r = tree_decode(sqlite3_column_blob(s, 6), (size_t)sqlite3_column_bytes(s, 6),
		                     &st->tree, eb)) != FS_OK)
			goto out;
		if (rev == NULL || strlen(rev) >= FS_REV_MAX ||
		    fs_crypto_rev_parse(rev, &gen, &hash) != FS_OK ||
		    (i = tree_find(&st->tree, gen, hash)) < 0) {
			r = fs_err_set(eb, FS_E_STORE_CORRUPT,
			               "store: an outbox row names an unknown revision");
			goto out;
		}
		x = &st->tree.v[i];
		if (with_body)
			r = store_node_body(st, x, s, 7, &body, &len, eb);
		else if ((r = store_node_size(st, x, s, 7, &len, eb)) == FS_OK &&
		         (body = malloc(1)) == NULL)
			r = oom(eb);
		if (r != FS_OK) {
			if (r == FS_E_NOTFOUND) /* a queued edit always has its body */
				r = fs_err_set(eb, FS_E_STORE_CORRUPT,
				               "store: an outbox row's body is missing");
			goto out;
		}
		sz = (size_t)sqlite3_column_bytes(s, 1) + len;
		/* A pusher that streams (no bodies) sends the history from here; it
		 * counts against max_bytes like a body: 1,000 rows with 1,000
		 * revisions each are 35 MB of ids, not nothing. */
		hist = NULL;
		if (!with_body) {
			if ((r = tree_history(&st->tree, i, 0, &hist, eb)) != FS_OK) {
				free(body);
				goto out;
			}
			for (size_t k = 0; k < hist->n; k++)
				sz += strlen(hist->hashes[k]) + 3 + sizeof(char *);
		}
		if (o->n > 0 && bytes + sz > max_bytes) {
			free(body);
			fs_store_history_free(hist);
			break;
		}
		if (o->n == cap) {
			size_t nc = cap ? cap * 2 : 16;
			fs_store_outbox_row *t = realloc(o->v, nc * sizeof(*t));
			if (t == NULL) {
				free(body);
				fs_store_history_free(hist);
				r = oom(eb);
				goto out;
			}
			o->v = t;
			cap = nc;
		}
		w = &o->v[o->n];
		memset(w, 0, sizeof(*w));
		o->n++;
		w->body = body;
		w->body_len = with_body ? len : 0;
		w->size = len;
		w->history = hist;
		w->oid = sqlite3_column_int64(s, 0);
		snprintf(w->rev, sizeof(w->rev), "%s", rev);
		w->deleted = (x->flags & N_DELETED) != 0;
		w->queued_at = sqlite3_column_int64(s, 3);
		w->status = sqlite3_column_int(s, 4);
		if ((w->id = strdup((const char *)sqlite3_column_text(s, 1))) == NULL ||
		    (sqlite3_column_type(s, 5) != SQLITE_NULL &&
		     (w->reason = strdup((const char *)sqlite3_column_text(s, 5))) == NULL)) {
			r = oom(eb);
			goto out;
		}
		bytes += sz;
	}
	if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
		r = store_err(st, rc, "read outbox", eb);
		goto out;
	}
	*out = o;
	o = NULL;
	r = FS_OK;
out:
	sqlite3_finalize(s);
	fs_store_outbox_free(o);
	return r;
}

int fs_store_outbox_read(fs_store *st, size_t max_rows, size_t max_bytes, fs_store_outbox **out,
                         fs_errbuf *eb)
{
	fs_err_clear(eb);
	if (out)
		*out = NULL;
	if (st == NULL || out == NULL || max_rows == 0)
		return fs_err_set(eb, FS_E_ARG, "store: bad arguments to outbox_read");
	return read_rows(st, Q_QUEUED, 0, 1, max_rows, max_bytes, out, eb);
}

int fs_store_outbox_next(fs_store *st, int64_t after, size_t max_rows, size_t max_bytes,
                         fs_store_outbox **out, fs_errbuf *eb)
{
	fs_err_clear(eb);
	if (out)
		*out = NULL;
	if (st == NULL || out == NULL || max_rows == 0 || after < 0)
		return fs_err_set(eb, FS_E_ARG, "store: bad arguments to outbox_next");
	return read_rows(st, Q_QUEUED, after, 0, max_rows, max_bytes, out, eb);
}

void fs_store_outbox_free(fs_store_outbox *o)
{
	if (o == NULL)
		return;
	for (size_t i = 0; i < o->n; i++) {
		free(o->v[i].id);
		free(o->v[i].body);
		free(o->v[i].reason);
		fs_store_history_free(o->v[i].history);
	}
	free(o->v);
	free(o);
}

int fs_store_outbox_confirm(fs_store *st, const int64_t *oids, size_t n, fs_errbuf *eb)
{
	sqlite3_stmt *s = NULL;
	int r, rc, in_tx = 0;

	fs_err_clear(eb);
	if (st == NULL || (oids == NULL && n > 0) || n > CONFIRM_MAX)
		return fs_err_set(eb, FS_E_ARG, "store: bad arguments to outbox_confirm");
	if (n == 0)
		return FS_OK;
	if ((r = prep(st, "DELETE FROM outbox WHERE oid = ?1 AND state = 0", &s, eb)) != FS_OK ||
	    (r = store_begin(st, eb)) != FS_OK)
		goto out;
	in_tx = 1;
	for (size_t i = 0; i < n; i++) {
		sqlite3_reset(s);
		sqlite3_bind_int64(s, 1, oids[i]);
		if ((rc = sqlite3_step(s)) != SQLITE_DONE) {
			r = store_err(st, rc, "confirm", eb);
			goto out;
		}
	}
	sqlite3_reset(s);
	if ((r = store_commit(st, eb)) != FS_OK)
		goto out;
	in_tx = 0;
out:
	sqlite3_finalize(s);
	if (in_tx)
		store_rollback(st);
	return r;
}

int fs_store_outbox_quarantine(fs_store *st, int64_t oid, int status, const char *reason,
                               fs_errbuf *eb)
{
	sqlite3_stmt *s = NULL;
	int r, rc;

	fs_err_clear(eb);
	if (st == NULL)
		return fs_err_set(eb, FS_E_ARG, "store: no handle");
	if ((r = store_check_str(reason, FS_STORE_NAME_MAX, "reason", eb)) != FS_OK)
		return r;
	if ((r = prep(st,
	              "UPDATE outbox SET state = 1, status = ?2, reason = ?3"
	              " WHERE oid = ?1 AND state = 0",
	              &s, eb)) != FS_OK)
		return r;
	sqlite3_bind_int64(s, 1, oid);
	sqlite3_bind_int(s, 2, status);
	sqlite3_bind_text(s, 3, reason, -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	if (rc != SQLITE_DONE)
		r = store_err(st, rc, "quarantine", eb);
	else if (sqlite3_changes(st->db) == 0)
		r = fs_err_set(eb, FS_E_NOTFOUND, "store: outbox row %lld is not queued",
		               (long long)oid);
	else
		r = FS_OK;
	sqlite3_finalize(s);
	return r;
}

int fs_store_quarantine_list(fs_store *st, fs_store_outbox **out, fs_errbuf *eb)
{
	fs_err_clear(eb);
	if (out)
		*out = NULL;
	if (st == NULL || out == NULL)
		return fs_err_set(eb, FS_E_ARG, "store: bad arguments to quarantine_list");
	return read_rows(st, Q_QUARANTINED, 0, 1, 0, SIZE_MAX, out, eb);
}

int fs_store_quarantine_retry(fs_store *st, int64_t oid, int64_t *new_oid, fs_errbuf *eb)
{
	sqlite3_stmt *s = NULL;
	int r, rc, in_tx = 0;

	fs_err_clear(eb);
	if (new_oid)
		*new_oid = 0;
	if (st == NULL)
		return fs_err_set(eb, FS_E_ARG, "store: no handle");
	/* A new oid (the next local sequence) puts the row at the end of the queue. */
	if ((r = prep(st,
	              "INSERT INTO outbox(oid, id, rev, state, queued_at)"
	              " SELECT ?3, id, rev, 0, ?2 FROM outbox WHERE oid = ?1 AND state = 1",
	              &s, eb)) != FS_OK ||
	    (r = store_begin(st, eb)) != FS_OK)
		goto out;
	in_tx = 1;
	sqlite3_bind_int64(s, 1, oid);
	sqlite3_bind_int64(s, 2, store_now_ms());
	sqlite3_bind_int64(s, 3, (sqlite3_int64)++st->seq);
	if ((rc = sqlite3_step(s)) != SQLITE_DONE) {
		r = store_err(st, rc, "retry", eb);
		goto out;
	}
	if (sqlite3_changes(st->db) == 0) {
		r = fs_err_set(eb, FS_E_NOTFOUND, "store: outbox row %lld is not quarantined",
		               (long long)oid);
		goto out;
	}
	if (new_oid)
		*new_oid = sqlite3_last_insert_rowid(st->db);
	sqlite3_finalize(s);
	s = NULL;
	if ((r = run1(st, "DELETE FROM outbox WHERE oid = ?1", NULL, oid, "retry", eb)) != FS_OK ||
	    (r = store_commit(st, eb)) != FS_OK)
		goto out;
	in_tx = 0;
out:
	sqlite3_finalize(s);
	if (in_tx) {
		store_rollback(st);
		if (new_oid)
			*new_oid = 0;
	}
	return r;
}

int fs_store_outbox_stats_get(fs_store *st, fs_store_outbox_stats *out, fs_errbuf *eb)
{
	sqlite3_stmt *s = NULL;
	int r, rc;

	fs_err_clear(eb);
	if (out)
		memset(out, 0, sizeof(*out));
	if (st == NULL || out == NULL)
		return fs_err_set(eb, FS_E_ARG, "store: bad arguments to outbox_stats");
	if ((r = prep(st,
	              "SELECT (SELECT count(*) FROM outbox WHERE state = 0),"
	              " (SELECT queued_at FROM outbox WHERE state = 0 ORDER BY oid LIMIT 1),"
	              " (SELECT count(*) FROM outbox WHERE state = 1)",
	              &s, eb)) != FS_OK)
		return r;
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		out->queued = (uint64_t)sqlite3_column_int64(s, 0);
		out->oldest_at = sqlite3_column_int64(s, 1);
		out->quarantined = (uint64_t)sqlite3_column_int64(s, 2);
		r = FS_OK;
	} else {
		r = store_err(st, rc, "outbox stats", eb);
	}
	sqlite3_finalize(s);
	return r;
}

int fs_store_outbox_queued(fs_store *st, int64_t oid, int *queued, fs_errbuf *eb)
{
	sqlite3_stmt *s = NULL;
	int r, rc;

	fs_err_clear(eb);
	if (queued)
		*queued = 0;
	if (st == NULL || queued == NULL)
		return fs_err_set(eb, FS_E_ARG, "store: bad arguments to outbox_queued");
	if ((r = prep(st, "SELECT 1 FROM outbox WHERE oid = ?1 AND state = 0", &s, eb)) != FS_OK)
		return r;
	sqlite3_bind_int64(s, 1, oid);
	rc = sqlite3_step(s);
	*queued = rc == SQLITE_ROW;
	r = rc == SQLITE_ROW || rc == SQLITE_DONE ? FS_OK : store_err(st, rc, "read outbox", eb);
	sqlite3_finalize(s);
	return r;
}

/* ---- checkpoints ---- */

int fs_store_checkpoint_get(fs_store *st, const char *remote, fs_store_dir dir, char **seq,
                            fs_errbuf *eb)
{
	sqlite3_stmt *s;
	int r, rc;

	fs_err_clear(eb);
	if (seq)
		*seq = NULL;
	if (st == NULL || seq == NULL || (dir != FS_STORE_PULL && dir != FS_STORE_PUSH))
		return fs_err_set(eb, FS_E_ARG, "store: bad arguments to checkpoint_get");
	if ((r = store_check_str(remote, FS_STORE_NAME_MAX, "remote", eb)) != FS_OK)
		return r;
	if ((s = store_stmt(st, S_CKPT_GET, eb)) == NULL)
		return st->stmt_err;
	sqlite3_bind_text(s, 1, remote, -1, SQLITE_STATIC);
	sqlite3_bind_int(s, 2, (int)dir);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		r = (*seq = strdup((const char *)sqlite3_column_text(s, 0))) ? FS_OK : oom(eb);
	else if (rc == SQLITE_DONE)
		r = fs_err_set(eb, FS_E_NOTFOUND, "store: no checkpoint for this remote");
	else
		r = store_err(st, rc, "checkpoint", eb);
	sqlite3_reset(s);
	return r;
}

int fs_store_checkpoint_set(fs_store *st, const char *remote, fs_store_dir dir, const char *seq,
                            fs_errbuf *eb)
{
	int r;

	fs_err_clear(eb);
	if (st == NULL || (dir != FS_STORE_PULL && dir != FS_STORE_PUSH))
		return fs_err_set(eb, FS_E_ARG, "store: bad arguments to checkpoint_set");
	if ((r = store_check_str(remote, FS_STORE_NAME_MAX, "remote", eb)) != FS_OK ||
	    (r = store_check_str(seq, FS_STORE_NAME_MAX, "sequence", eb)) != FS_OK)
		return r;
	/* One statement is its own durable transaction. */
	return store_ckpt_write(st, remote, dir, seq, eb);
}

/* ---- _local documents ---- */

static int local_rev(fs_store *st, const char *id, int64_t *rev, int *found, fs_errbuf *eb)
{
	sqlite3_stmt *s = NULL;
	int r, rc;

	*found = 0;
	if ((r = prep(st, "SELECT rev FROM local_docs WHERE id = ?1", &s, eb)) != FS_OK)
		return r;
	sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		*rev = sqlite3_column_int64(s, 0);
		*found = 1;
		rc = SQLITE_DONE;
	}
	sqlite3_finalize(s);
	return rc == SQLITE_DONE ? FS_OK : store_err(st, rc, "read _local", eb);
}

/* Whether base names revision cur ("0-<cur>"), or is NULL when there is none. */
static int base_matches(const char *base, int found, int64_t cur)
{
	char want[32];

	if (!found)
		return base == NULL;
	if (base == NULL)
		return 0;
	snprintf(want, sizeof(want), "0-%lld", (long long)cur);
	return strcmp(base, want) == 0;
}

/*
 * Opens the transaction of a _local write and checks base_rev against the
 * current revision (*cur, 0 when absent; must_exist: absent is
 * FS_E_NOTFOUND). On error no transaction is left open.
 */
static int local_begin(fs_store *st, const char *id, const char *base_rev, int must_exist,
                       int64_t *cur, fs_errbuf *eb)
{
	int r, found;

	if ((r = store_check_str(id, FS_STORE_ID_MAX, "_local id", eb)) != FS_OK ||
	    (r = store_begin(st, eb)) != FS_OK)
		return r;
	if ((r = local_rev(st, id, cur, &found, eb)) != FS_OK)
		goto out;
	if (must_exist && !found)
		r = fs_err_set(eb, FS_E_NOTFOUND, "store: no such _local document");
	else if (!base_matches(base_rev, found, *cur))
		r = fs_err_set(eb, FS_E_STORE_CONFLICT, "store: _local document changed");
out:
	if (r != FS_OK)
		store_rollback(st);
	return r;
}

int fs_store_local_get(fs_store *st, const char *id, char rev[FS_REV_MAX], uint8_t **body,
                       size_t *body_len, fs_errbuf *eb)
{
	sqlite3_stmt *s = NULL;
	uint8_t *b = NULL;
	size_t len = 0;
	int r, rc;

	fs_err_clear(eb);
	if (rev)
		rev[0] = '\0';
	if (body)
		*body = NULL;
	if (body_len)
		*body_len = 0;
	if (st == NULL || rev == NULL || body == NULL || body_len == NULL)
		return fs_err_set(eb, FS_E_ARG, "store: bad arguments to local_get");
	if ((r = store_check_str(id, FS_STORE_ID_MAX, "_local id", eb)) != FS_OK ||
	    (r = prep(st, "SELECT rev, body FROM local_docs WHERE id = ?1", &s, eb)) != FS_OK)
		return r;
	sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		if ((b = store_col_blob(s, 1, &len)) == NULL) {
			r = oom(eb);
		} else {
			snprintf(rev, FS_REV_MAX, "0-%lld", (long long)sqlite3_column_int64(s, 0));
			*body = b;
			*body_len = len;
			r = FS_OK;
		}
	} else if (rc == SQLITE_DONE) {
		r = fs_err_set(eb, FS_E_NOTFOUND, "store: no such _local document");
	} else {
		r = store_err(st, rc, "read _local", eb);
	}
	sqlite3_finalize(s);
	return r;
}

int fs_store_local_put(fs_store *st, const char *id, const char *base_rev, const uint8_t *body,
                       size_t body_len, char new_rev[FS_REV_MAX], fs_errbuf *eb)
{
	sqlite3_stmt *s = NULL;
	int64_t cur = 0;
	int r, rc, in_tx = 0;

	fs_err_clear(eb);
	if (new_rev)
		new_rev[0] = '\0';
	if (st == NULL || (body == NULL && body_len > 0))
		return fs_err_set(eb, FS_E_ARG, "store: bad arguments to local_put");
	if (body_len > FS_STORE_BODY_MAX)
		return fs_err_set(eb, FS_E_TOOBIG, "store: _local body over the limit");
	if ((r = local_begin(st, id, base_rev, 0, &cur, eb)) != FS_OK)
		return r;
	in_tx = 1;
	if ((r = prep(st, "INSERT OR REPLACE INTO local_docs(id, rev, body) VALUES (?1, ?2, ?3)",
	              &s, eb)) != FS_OK)
		goto out;
	sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, cur + 1);
	store_bind_blob(s, 3, body, body_len);
	if ((rc = sqlite3_step(s)) != SQLITE_DONE) {
		r = store_err(st, rc, "write _local", eb);
		goto out;
	}
	sqlite3_finalize(s);
	s = NULL;
	if ((r = store_commit(st, eb)) != FS_OK)
		goto out;
	in_tx = 0;
	if (new_rev)
		snprintf(new_rev, FS_REV_MAX, "0-%lld", (long long)(cur + 1));
out:
	sqlite3_finalize(s);
	if (in_tx)
		store_rollback(st);
	return r;
}

int fs_store_local_delete(fs_store *st, const char *id, const char *base_rev, fs_errbuf *eb)
{
	int64_t cur = 0;
	int r, in_tx = 0;

	fs_err_clear(eb);
	if (st == NULL)
		return fs_err_set(eb, FS_E_ARG, "store: no handle");
	if ((r = local_begin(st, id, base_rev, 1, &cur, eb)) != FS_OK)
		return r;
	in_tx = 1;
	if ((r = run1(st, "DELETE FROM local_docs WHERE id = ?1", id, 0, "delete _local", eb)) !=
	        FS_OK ||
	    (r = store_commit(st, eb)) != FS_OK)
		goto out;
	in_tx = 0;
out:
	if (in_tx)
		store_rollback(st);
	return r;
}

/* ---- meta ---- */

int fs_store_meta_get(fs_store *st, const char *key, uint8_t **val, size_t *len, fs_errbuf *eb)
{
	sqlite3_stmt *s = NULL;
	int r, rc;

	fs_err_clear(eb);
	if (val)
		*val = NULL;
	if (len)
		*len = 0;
	if (st == NULL || val == NULL || len == NULL)
		return fs_err_set(eb, FS_E_ARG, "store: bad arguments to meta_get");
	if ((r = store_check_str(key, FS_STORE_NAME_MAX, "meta key", eb)) != FS_OK ||
	    (r = prep(st, "SELECT value FROM meta WHERE key = ?1", &s, eb)) != FS_OK)
		return r;
	sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		r = (*val = store_col_blob(s, 0, len)) ? FS_OK : oom(eb);
	else if (rc == SQLITE_DONE)
		r = fs_err_set(eb, FS_E_NOTFOUND, "store: no meta value %s", key);
	else
		r = store_err(st, rc, "read meta", eb);
	sqlite3_finalize(s);
	return r;
}

int fs_store_meta_set(fs_store *st, const char *key, const uint8_t *val, size_t len, fs_errbuf *eb)
{
	sqlite3_stmt *s = NULL;
	int r, rc;

	fs_err_clear(eb);
	if (st == NULL || (val == NULL && len > 0))
		return fs_err_set(eb, FS_E_ARG, "store: bad arguments to meta_set");
	if (len > FS_STORE_BODY_MAX)
		return fs_err_set(eb, FS_E_TOOBIG, "store: meta value over the limit");
	if ((r = store_check_str(key, FS_STORE_NAME_MAX, "meta key", eb)) != FS_OK ||
	    (r = prep(st, "INSERT OR REPLACE INTO meta(key, value) VALUES (?1, ?2)", &s, eb)) !=
	        FS_OK)
		return r;
	sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
	store_bind_blob(s, 2, val, len);
	rc = sqlite3_step(s);
	r = rc == SQLITE_DONE ? FS_OK : store_err(st, rc, "write meta", eb);
	sqlite3_finalize(s);
	return r;
}

int fs_store_meta_list(fs_store *st, const char *prefix, fs_store_meta_cb cb, void *ctx,
                       fs_errbuf *eb)
{
	char hi[FS_STORE_PREFIX_MAX + 1];
	sqlite3_stmt *s = NULL;
	size_t n = 0;
	int r = FS_OK, rc;

	fs_err_clear(eb);
	if (st == NULL || cb == NULL)
		return fs_err_set(eb, FS_E_ARG, "store: bad arguments to meta_list");
	if ((r = store_prefix_range(prefix, hi, &n, "meta_list", eb)) != FS_OK)
		return r;
	/* Not a cached statement: cb may call back into the store. */
	rc = sqlite3_prepare_v2(
	    st->db, "SELECT key, value FROM meta WHERE key >= ?1 AND key < ?2 ORDER BY key", -1, &s,
	    NULL);
	if (rc != SQLITE_OK)
		return store_err(st, rc, "list meta", eb);
	sqlite3_bind_text(s, 1, prefix, (int)n, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, hi, (int)n, SQLITE_STATIC);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		const char *k = (const char *)sqlite3_column_text(s, 0);
		const void *v = sqlite3_column_blob(s, 1);
		size_t vl = (size_t)sqlite3_column_bytes(s, 1);
		if (k == NULL) {
			r = oom(eb);
			break;
		}
		if ((r = cb(ctx, k, v ? v : "", vl)) != 0)
			break;
	}
	if (r == FS_OK && rc != SQLITE_DONE)
		r = store_err(st, rc, "list meta", eb);
	sqlite3_finalize(s);
	return r;
}

int fs_store_meta_delete(fs_store *st, const char *key, fs_errbuf *eb)
{
	int r;

	fs_err_clear(eb);
	if (st == NULL)
		return fs_err_set(eb, FS_E_ARG, "store: no handle");
	if ((r = store_check_str(key, FS_STORE_NAME_MAX, "meta key", eb)) != FS_OK)
		return r;
	return run1(st, "DELETE FROM meta WHERE key = ?1", key, 0, "delete meta", eb);
}
