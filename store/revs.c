/*
 * store/revs.c: revision trees with CouchDB's semantics: local edits on a
 * leaf, remote revisions merged by their ancestry, the winner rule,
 * stemming to revs_limit, and the reads replication needs (get, history,
 * leaves, revs_diff, the changes feed, conflicts, info).
 */
#include "store_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DIFF_QUERIES_MAX 100000
#define REMOTE_BATCH_MAX 100000

struct docrow {
	int64_t did;
	unsigned long wgen;
	char whash[FS_REV_MAX];
	int deleted;
	uint64_t seq;
};

struct revrow {
	int64_t rid;
	int leaf, deleted, has_body;
	int64_t parent; /* 0: none (a root, or cut by stemming) */
};

static int fail_stmt(fs_store *st, fs_errbuf *eb)
{
	(void)st;
	return eb && eb->code ? eb->code : FS_E_INTERNAL;
}

/* Copies hash (checked by fs_crypto_rev_parse) into out. */
static int split_rev(const char *rev, unsigned long *gen, char hash[FS_REV_MAX], fs_errbuf *eb)
{
	const char *h = NULL;

	if (rev == NULL || strnlen(rev, FS_REV_MAX) >= FS_REV_MAX ||
	    fs_crypto_rev_parse(rev, gen, &h) != FS_OK)
		return fs_err_set(eb, FS_E_INPUT, "store: malformed revision id");
	snprintf(hash, FS_REV_MAX, "%s", h);
	return FS_OK;
}

static int find_doc(fs_store *st, const char *id, struct docrow *d, int *found, fs_errbuf *eb)
{
	sqlite3_stmt *s = store_stmt(st, S_DOC_BY_ID, eb);
	int rc;

	*found = 0;
	if (s == NULL)
		return fail_stmt(st, eb);
	sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		d->did = sqlite3_column_int64(s, 0);
		d->wgen = (unsigned long)sqlite3_column_int64(s, 1);
		snprintf(d->whash, sizeof(d->whash), "%s", (const char *)sqlite3_column_text(s, 2));
		d->deleted = sqlite3_column_int(s, 3);
		d->seq = (uint64_t)sqlite3_column_int64(s, 4);
		*found = 1;
		rc = SQLITE_DONE;
	}
	sqlite3_reset(s);
	return rc == SQLITE_DONE ? FS_OK : store_err(st, rc, "read document", eb);
}

static int new_doc(fs_store *st, const char *id, struct docrow *d, fs_errbuf *eb)
{
	sqlite3_stmt *s = store_stmt(st, S_DOC_INSERT, eb);
	int rc;

	if (s == NULL)
		return fail_stmt(st, eb);
	sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	sqlite3_reset(s);
	if (rc != SQLITE_DONE)
		return store_err(st, rc, "insert document", eb);
	memset(d, 0, sizeof(*d));
	d->did = sqlite3_last_insert_rowid(st->db);
	return FS_OK;
}

static int find_rev(fs_store *st, int64_t did, unsigned long gen, const char *hash,
                    struct revrow *r, int *found, fs_errbuf *eb)
{
	sqlite3_stmt *s = store_stmt(st, S_REV_FIND, eb);
	int rc;

	*found = 0;
	if (s == NULL)
		return fail_stmt(st, eb);
	sqlite3_bind_int64(s, 1, did);
	sqlite3_bind_int64(s, 2, (sqlite3_int64)gen);
	sqlite3_bind_text(s, 3, hash, -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		r->rid = sqlite3_column_int64(s, 0);
		r->leaf = sqlite3_column_int(s, 1);
		r->deleted = sqlite3_column_int(s, 2);
		r->has_body = sqlite3_column_int(s, 4);
		r->parent = sqlite3_column_int64(s, 5);
		*found = 1;
		rc = SQLITE_DONE;
	}
	sqlite3_reset(s);
	return rc == SQLITE_DONE ? FS_OK : store_err(st, rc, "read revision", eb);
}

/* Runs a cached write statement with up to two integer parameters. */
static int run2(fs_store *st, enum stmt_id id, int64_t a, int64_t b, int nb, const char *what,
                fs_errbuf *eb)
{
	sqlite3_stmt *s = store_stmt(st, id, eb);
	int rc;

	if (s == NULL)
		return fail_stmt(st, eb);
	sqlite3_bind_int64(s, 1, a);
	if (nb > 1)
		sqlite3_bind_int64(s, 2, b);
	rc = sqlite3_step(s);
	sqlite3_reset(s);
	return rc == SQLITE_DONE ? FS_OK : store_err(st, rc, what, eb);
}

static int insert_rev(fs_store *st, int64_t did, unsigned long gen, const char *hash,
                      int64_t parent, int leaf, int deleted, uint64_t seq, const uint8_t *body,
                      size_t len, int with_body, int64_t *rid, fs_errbuf *eb)
{
	sqlite3_stmt *s = store_stmt(st, S_REV_INSERT, eb);
	int rc;

	if (s == NULL)
		return fail_stmt(st, eb);
	sqlite3_bind_int64(s, 1, did);
	sqlite3_bind_int64(s, 2, (sqlite3_int64)gen);
	sqlite3_bind_text(s, 3, hash, -1, SQLITE_STATIC);
	if (parent)
		sqlite3_bind_int64(s, 4, parent);
	sqlite3_bind_int(s, 5, leaf);
	sqlite3_bind_int(s, 6, deleted ? 1 : 0);
	if (seq)
		sqlite3_bind_int64(s, 7, (sqlite3_int64)seq);
	if (with_body)
		store_bind_blob(s, 8, body, len);
	rc = sqlite3_step(s);
	sqlite3_reset(s);
	if (rc != SQLITE_DONE)
		return store_err(st, rc, "insert revision", eb);
	*rid = sqlite3_last_insert_rowid(st->db);
	return FS_OK;
}

/* Recomputes the winner (CouchDB: non-deleted first, then generation, then hash) and saves seq. */
static int refresh_doc(fs_store *st, int64_t did, uint64_t seq, fs_errbuf *eb)
{
	sqlite3_stmt *s = store_stmt(st, S_LEAVES, eb);
	sqlite3_int64 wgen = 0;
	char whash[FS_REV_MAX] = "";
	int wdel = 0, live = 0, n = 0, rc;

	if (s == NULL)
		return fail_stmt(st, eb);
	sqlite3_bind_int64(s, 1, did);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (n++ == 0) {
			wgen = sqlite3_column_int64(s, 0);
			snprintf(whash, sizeof(whash), "%s", (const char *)sqlite3_column_text(s, 1));
			wdel = sqlite3_column_int(s, 2);
		}
		if (!sqlite3_column_int(s, 2))
			live++;
	}
	sqlite3_reset(s);
	if (rc != SQLITE_DONE)
		return store_err(st, rc, "read leaves", eb);
	if (n == 0)
		return fs_err_set(eb, FS_E_INTERNAL, "store: a document without leaves");
	s = store_stmt(st, S_DOC_UPDATE, eb);
	if (s == NULL)
		return fail_stmt(st, eb);
	sqlite3_bind_int64(s, 1, did);
	sqlite3_bind_int64(s, 2, wgen);
	sqlite3_bind_text(s, 3, whash, -1, SQLITE_STATIC);
	sqlite3_bind_int(s, 4, wdel);
	sqlite3_bind_int(s, 5, live > 1);
	sqlite3_bind_int64(s, 6, (sqlite3_int64)seq);
	rc = sqlite3_step(s);
	sqlite3_reset(s);
	return rc == SQLITE_DONE ? FS_OK : store_err(st, rc, "update document", eb);
}

struct node {
	int64_t rid, parent;
	int leaf, keep;
};

static int cmp_node(const void *a, const void *b)
{
	int64_t x = ((const struct node *)a)->rid, y = ((const struct node *)b)->rid;

	return (x > y) - (x < y);
}

static struct node *node_of(struct node *v, size_t n, int64_t rid)
{
	struct node key = {.rid = rid};

	return rid ? bsearch(&key, v, n, sizeof(*v), cmp_node) : NULL;
}

/*
 * Keeps, as CouchDB does, the revs_limit newest revisions of every path
 * from a leaf; revisions still named by an outbox row are kept too, so a
 * queued edit is never lost to stemming. Cheap when no path can be long.
 */
static int stem(fs_store *st, int64_t did, fs_errbuf *eb)
{
	sqlite3_stmt *s = store_stmt(st, S_GEN_RANGE, eb);
	struct node *v = NULL, *t;
	size_t n = 0, cap = 0;
	int64_t lo = 0, hi = 0;
	int r = FS_E_INTERNAL, rc;

	if (s == NULL)
		return fail_stmt(st, eb);
	sqlite3_bind_int64(s, 1, did);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		lo = sqlite3_column_int64(s, 0);
		hi = sqlite3_column_int64(s, 1);
		rc = SQLITE_DONE;
	}
	sqlite3_reset(s);
	if (rc != SQLITE_DONE)
		return store_err(st, rc, "stem", eb);
	if (hi - lo + 1 <= (int64_t)st->revs_limit)
		return FS_OK;

	if ((s = store_stmt(st, S_DOC_NODES, eb)) == NULL)
		return fail_stmt(st, eb);
	sqlite3_bind_int64(s, 1, did);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			if ((t = realloc(v, cap * sizeof(*v))) == NULL) {
				sqlite3_reset(s);
				r = fs_err_set(eb, FS_E_NOMEM, "store: out of memory");
				goto out;
			}
			v = t;
		}
		v[n].rid = sqlite3_column_int64(s, 0);
		v[n].parent = sqlite3_column_int64(s, 1);
		v[n].leaf = sqlite3_column_int(s, 2);
		v[n].keep = 0;
		n++;
	}
	sqlite3_reset(s);
	if (rc != SQLITE_DONE) {
		r = store_err(st, rc, "stem", eb);
		goto out;
	}
	qsort(v, n, sizeof(*v), cmp_node);
	for (size_t i = 0; i < n; i++) {
		struct node *x = v[i].leaf ? &v[i] : NULL;
		for (unsigned k = 0; x && k < st->revs_limit; k++, x = node_of(v, n, x->parent))
			x->keep = 1;
	}
	if ((s = store_stmt(st, S_OUTBOX_RIDS_OF_DOC, eb)) == NULL) {
		r = fail_stmt(st, eb);
		goto out;
	}
	sqlite3_bind_int64(s, 1, did);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct node *x = node_of(v, n, sqlite3_column_int64(s, 0));
		if (x)
			x->keep = 1;
	}
	sqlite3_reset(s);
	if (rc != SQLITE_DONE) {
		r = store_err(st, rc, "stem", eb);
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		struct node *p = node_of(v, n, v[i].parent);
		if (!v[i].keep)
			r = run2(st, S_REV_DELETE, v[i].rid, 0, 1, "stem", eb);
		else if (v[i].parent && (p == NULL || !p->keep))
			r = run2(st, S_REV_SET_PARENT, v[i].rid, 0, 1, "stem", eb);
		else
			r = FS_OK;
		if (r != FS_OK)
			goto out;
	}
	r = FS_OK;
out:
	free(v);
	return r;
}

/* Drops queued rows of the document whose revision is an ancestor of from (inclusive). */
static int supersede(fs_store *st, int64_t did, int64_t from, fs_errbuf *eb)
{
	sqlite3_stmt *s = store_stmt(st, S_OUTBOX_OF_DOC, eb);
	struct qrow {
		int64_t oid;
		unsigned long gen;
		char hash[FS_REV_MAX];
	} rows[8];
	size_t n = 0;
	int rc, r, more = 0;

	if (s == NULL)
		return fail_stmt(st, eb);
	sqlite3_bind_int64(s, 1, did);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (n == sizeof(rows) / sizeof(rows[0])) {
			more = 1; /* the rest waits for the next edit: keeping a row is always safe */
			break;
		}
		rows[n].oid = sqlite3_column_int64(s, 0);
		rows[n].gen = (unsigned long)sqlite3_column_int64(s, 1);
		snprintf(rows[n].hash, sizeof(rows[n].hash), "%s",
		         (const char *)sqlite3_column_text(s, 2));
		n++;
	}
	sqlite3_reset(s);
	if (rc != SQLITE_DONE && !more)
		return store_err(st, rc, "read outbox", eb);
	for (size_t i = 0; i < n; i++) {
		int64_t cur = from;
		int anc = 0;
		while (cur && !anc) {
			unsigned long g;
			if ((s = store_stmt(st, S_REV_BY_RID, eb)) == NULL)
				return fail_stmt(st, eb);
			sqlite3_bind_int64(s, 1, cur);
			if ((rc = sqlite3_step(s)) != SQLITE_ROW) {
				sqlite3_reset(s);
				if (rc == SQLITE_DONE)
					break;
				return store_err(st, rc, "read revision", eb);
			}
			g = (unsigned long)sqlite3_column_int64(s, 0);
			if (g < rows[i].gen) {
				sqlite3_reset(s);
				break;
			}
			anc = g == rows[i].gen &&
			      strcmp((const char *)sqlite3_column_text(s, 1), rows[i].hash) == 0;
			cur = sqlite3_column_int64(s, 2);
			sqlite3_reset(s);
		}
		if (anc && (r = run2(st, S_OUTBOX_DELETE, rows[i].oid, 0, 1, "outbox", eb)) != FS_OK)
			return r;
	}
	return FS_OK;
}

static int check_body(const uint8_t *body, size_t len, fs_errbuf *eb)
{
	if (body == NULL && len > 0)
		return fs_err_set(eb, FS_E_ARG, "store: no body bytes");
	if (len > FS_STORE_BODY_MAX)
		return fs_err_set(eb, FS_E_TOOBIG, "store: body of %zu bytes is over the limit", len);
	return FS_OK;
}

int fs_store_put(fs_store *st, const char *id, const char *base_rev, const uint8_t *body,
                 size_t body_len, int deleted, unsigned flags, char new_rev[FS_REV_MAX],
                 fs_errbuf *eb)
{
	struct docrow d;
	struct revrow pr, nr;
	unsigned long bgen = 0, ngen;
	char bhash[FS_REV_MAX], nhash[FS_REV_MAX], parent[FS_REV_MAX] = "", rev[FS_REV_MAX];
	int found, r, in_tx = 0;
	int64_t prid = 0, rid = 0;
	uint64_t seq;

	char base_copy[FS_REV_MAX];

	fs_err_clear(eb);
	/* Copied first: a caller may pass the same buffer as base and new_rev. */
	if (base_rev) {
		if (strnlen(base_rev, FS_REV_MAX) >= FS_REV_MAX)
			return fs_err_set(eb, FS_E_ARG, "store: malformed base revision");
		memcpy(base_copy, base_rev, strlen(base_rev) + 1);
		base_rev = base_copy;
	}
	if (new_rev)
		new_rev[0] = '\0';
	if (st == NULL || new_rev == NULL || (flags & ~FS_STORE_PUT_NO_OUTBOX))
		return fs_err_set(eb, FS_E_ARG, "store: bad arguments to put");
	if ((r = store_check_str(id, FS_STORE_ID_MAX, "document id", eb)) != FS_OK ||
	    (r = check_body(body, body_len, eb)) != FS_OK)
		return r;
	if (base_rev && (r = split_rev(base_rev, &bgen, bhash, eb)) != FS_OK)
		return fs_err_set(eb, FS_E_ARG, "store: malformed base revision");
	if ((r = store_begin(st, eb)) != FS_OK)
		goto out;
	in_tx = 1;
	if ((r = find_doc(st, id, &d, &found, eb)) != FS_OK)
		goto out;
	if (base_rev == NULL) {
		if (found && !d.deleted) {
			r = fs_err_set(eb, FS_E_STORE_CONFLICT, "store: document exists (no base revision given)");
			goto out;
		}
		if (found) { /* re-creating over a tombstone extends it, as CouchDB does */
			bgen = d.wgen;
			snprintf(bhash, sizeof(bhash), "%s", d.whash);
		}
	}
	if (found && bgen) {
		if ((r = find_rev(st, d.did, bgen, bhash, &pr, &found, eb)) != FS_OK)
			goto out;
		if (!found || !pr.leaf) {
			r = fs_err_set(eb, FS_E_STORE_CONFLICT,
			               "store: the base revision is not a current leaf");
			goto out;
		}
		prid = pr.rid;
		snprintf(parent, sizeof(parent), "%lu-%.*s", bgen, STORE_HASH_MAX, bhash);
		found = 1;
	} else if (base_rev) {
		r = fs_err_set(eb, FS_E_STORE_CONFLICT, "store: no such document for a base revision");
		goto out;
	}
	if ((r = fs_crypto_rev_id(parent, deleted, body, body_len, rev)) != FS_OK) {
		fs_err_set(eb, r, "store: cannot compute the revision id");
		goto out;
	}
	if ((r = split_rev(rev, &ngen, nhash, eb)) != FS_OK)
		goto out;
	if (!found && (r = new_doc(st, id, &d, eb)) != FS_OK)
		goto out;
	if (found) {
		if ((r = find_rev(st, d.did, ngen, nhash, &nr, &found, eb)) != FS_OK)
			goto out;
		if (found) {
			r = fs_err_set(eb, FS_E_STORE_CONFLICT, "store: the revision exists already");
			goto out;
		}
	}
	seq = ++st->seq;
	if ((r = insert_rev(st, d.did, ngen, nhash, prid, 1, deleted, seq, body, body_len, 1, &rid,
	                    eb)) != FS_OK)
		goto out;
	if (prid && (r = run2(st, S_REV_SET_NOLEAF, prid, 0, 1, "update parent", eb)) != FS_OK)
		goto out;
	if (!(flags & FS_STORE_PUT_NO_OUTBOX)) {
		sqlite3_stmt *s;
		int rc;
		if (prid && (r = supersede(st, d.did, prid, eb)) != FS_OK)
			goto out;
		if ((s = store_stmt(st, S_OUTBOX_INSERT, eb)) == NULL) {
			r = fail_stmt(st, eb);
			goto out;
		}
		sqlite3_bind_int64(s, 1, d.did);
		sqlite3_bind_int64(s, 2, rid);
		sqlite3_bind_int64(s, 3, store_now_ms());
		rc = sqlite3_step(s);
		sqlite3_reset(s);
		if (rc != SQLITE_DONE) {
			r = store_err(st, rc, "queue", eb);
			goto out;
		}
	}
	if ((ngen > st->revs_limit && (r = stem(st, d.did, eb)) != FS_OK) ||
	    (r = refresh_doc(st, d.did, seq, eb)) != FS_OK ||
	    (r = store_commit(st, eb)) != FS_OK)
		goto out;
	in_tx = 0;
	memcpy(new_rev, rev, FS_REV_MAX);
	r = FS_OK;
out:
	if (in_tx)
		store_rollback(st);
	return r;
}

int fs_store_put_local(fs_store *st, const char *id, const char *base_rev, const uint8_t *body,
                       size_t body_len, int deleted, char new_rev[FS_REV_MAX], fs_errbuf *eb)
{
	return fs_store_put(st, id, base_rev, body, body_len, deleted, 0, new_rev, eb);
}

static int check_rev_in(const fs_store_rev_in *v, fs_errbuf *eb)
{
	char rev[FS_REV_MAX + 32];

	if (v->id == NULL || strnlen(v->id, FS_STORE_ID_MAX + 1) - 1 >= FS_STORE_ID_MAX)
		return fs_err_set(eb, FS_E_INPUT, "store: document id empty or too long");
	if (v->body == NULL && v->body_len > 0)
		return fs_err_set(eb, FS_E_INPUT, "store: no body bytes");
	if (v->body_len > FS_STORE_BODY_MAX)
		return fs_err_set(eb, FS_E_TOOBIG, "store: body of %zu bytes is over the limit",
		                  v->body_len);
	if (v->n_hashes == 0 || v->hashes == NULL || v->start == 0 || v->n_hashes > v->start ||
	    v->n_hashes > FS_STORE_HISTORY_MAX)
		return fs_err_set(eb, FS_E_INPUT, "store: malformed revision history");
	for (size_t i = 0; i < v->n_hashes; i++) {
		if (v->hashes[i] == NULL)
			return fs_err_set(eb, FS_E_INPUT, "store: malformed revision history");
		snprintf(rev, sizeof(rev), "%lu-%.*s", v->start - i, FS_REV_MAX, v->hashes[i]);
		if (strlen(rev) >= FS_REV_MAX || fs_crypto_rev_parse(rev, NULL, NULL) != FS_OK)
			return fs_err_set(eb, FS_E_INPUT, "store: malformed revision id in history");
	}
	return FS_OK;
}

/* Merges one revision path into its document's tree. */
static int merge_one(fs_store *st, const fs_store_rev_in *v, fs_errbuf *eb)
{
	struct docrow d;
	struct revrow x;
	int doc_found, found = 0, r, changed = 0;
	int64_t prev = 0;
	uint64_t seq = 0;

	if ((r = find_doc(st, v->id, &d, &doc_found, eb)) != FS_OK)
		return r;
	if (!doc_found && (r = new_doc(st, v->id, &d, eb)) != FS_OK)
		return r;
	/* Stem the incoming history first, so a replay meets only known revisions. */
	size_t nh = v->n_hashes < st->revs_limit ? v->n_hashes : st->revs_limit;
	for (size_t k = nh; k-- > 0;) {
		unsigned long gen = v->start - k;
		const char *h = v->hashes[k];
		/* Look every revision up: a newer one may be known while an older one is not. */
		if (doc_found && (r = find_rev(st, d.did, gen, h, &x, &found, eb)) != FS_OK)
			return r;
		if (found) {
			/* A root cut off by stemming or by a shorter history: link it. */
			if (prev && x.parent == 0) {
				if ((r = run2(st, S_REV_SET_PARENT, x.rid, prev, 2, "link", eb)) != FS_OK ||
				    (r = run2(st, S_REV_SET_NOLEAF, prev, 0, 1, "link", eb)) != FS_OK)
					return r;
				changed = 1;
			}
			if (k == 0 && !x.has_body) {
				sqlite3_stmt *s = store_stmt(st, S_REV_FILL, eb);
				int rc;
				if (s == NULL)
					return fail_stmt(st, eb);
				sqlite3_bind_int64(s, 1, x.rid);
				store_bind_blob(s, 2, v->body, v->body_len);
				sqlite3_bind_int(s, 3, v->deleted ? 1 : 0);
				rc = sqlite3_step(s);
				sqlite3_reset(s);
				if (rc != SQLITE_DONE)
					return store_err(st, rc, "fill revision", eb);
			}
			prev = x.rid;
			continue;
		}
		if (k == 0)
			seq = ++st->seq;
		if ((r = insert_rev(st, d.did, gen, h, prev, k == 0, k == 0 && v->deleted, seq,
		                    v->body, v->body_len, k == 0, &x.rid, eb)) != FS_OK)
			return r;
		if (prev && (r = run2(st, S_REV_SET_NOLEAF, prev, 0, 1, "link", eb)) != FS_OK)
			return r;
		prev = x.rid;
		changed = 1;
	}
	if (!changed)
		return FS_OK;
	if (seq == 0)
		seq = ++st->seq;
	if ((r = stem(st, d.did, eb)) != FS_OK)
		return r;
	return refresh_doc(st, d.did, seq, eb);
}

static int ckpt_write(fs_store *st, const char *remote, fs_store_dir dir, const char *seq,
                      fs_errbuf *eb)
{
	sqlite3_stmt *s = store_stmt(st, S_CKPT_SET, eb);
	int rc;

	if (s == NULL)
		return fail_stmt(st, eb);
	sqlite3_bind_text(s, 1, remote, -1, SQLITE_STATIC);
	sqlite3_bind_int(s, 2, (int)dir);
	sqlite3_bind_text(s, 3, seq, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 4, store_now_ms());
	rc = sqlite3_step(s);
	sqlite3_reset(s);
	return rc == SQLITE_DONE ? FS_OK : store_err(st, rc, "checkpoint", eb);
}

int store_ckpt_write(fs_store *st, const char *remote, fs_store_dir dir, const char *seq,
                     fs_errbuf *eb)
{
	return ckpt_write(st, remote, dir, seq, eb);
}

int fs_store_put_remote(fs_store *st, const fs_store_rev_in *revs, size_t n,
                        const char *ckpt_remote, const char *ckpt_seq, fs_errbuf *eb)
{
	int r, in_tx = 0;

	fs_err_clear(eb);
	if (st == NULL || (revs == NULL && n > 0) || n > REMOTE_BATCH_MAX)
		return fs_err_set(eb, FS_E_ARG, "store: bad arguments to put_remote");
	if (ckpt_remote && ((r = store_check_str(ckpt_remote, FS_STORE_NAME_MAX, "remote", eb)) !=
	                            FS_OK ||
	                    (r = store_check_str(ckpt_seq, FS_STORE_NAME_MAX, "sequence", eb)) != FS_OK))
		return r;
	for (size_t i = 0; i < n; i++)
		if ((r = check_rev_in(&revs[i], eb)) != FS_OK)
			return r;
	if ((r = store_begin(st, eb)) != FS_OK)
		goto out;
	in_tx = 1;
	for (size_t i = 0; i < n; i++)
		if ((r = merge_one(st, &revs[i], eb)) != FS_OK)
			goto out;
	if (ckpt_remote && (r = ckpt_write(st, ckpt_remote, FS_STORE_PULL, ckpt_seq, eb)) != FS_OK)
		goto out;
	if ((r = store_commit(st, eb)) != FS_OK)
		goto out;
	in_tx = 0;
out:
	if (in_tx)
		store_rollback(st);
	return r;
}

/* ---- reads ---- */

static int doc_and_rev(fs_store *st, const char *id, const char *rev, struct docrow *d,
                       unsigned long *gen, char hash[FS_REV_MAX], struct revrow *x, fs_errbuf *eb)
{
	int found, r;

	if ((r = store_check_str(id, FS_STORE_ID_MAX, "document id", eb)) != FS_OK)
		return r;
	if (rev && split_rev(rev, gen, hash, eb) != FS_OK)
		return fs_err_set(eb, FS_E_NOTFOUND, "store: no such revision (malformed)");
	if ((r = find_doc(st, id, d, &found, eb)) != FS_OK)
		return r;
	if (!found)
		return fs_err_set(eb, FS_E_NOTFOUND, "store: no such document");
	if (rev == NULL) {
		*gen = d->wgen;
		snprintf(hash, FS_REV_MAX, "%s", d->whash);
	}
	if ((r = find_rev(st, d->did, *gen, hash, x, &found, eb)) != FS_OK)
		return r;
	if (!found)
		return fs_err_set(eb, FS_E_NOTFOUND, "store: no such revision");
	return FS_OK;
}

int fs_store_get(fs_store *st, const char *id, const char *rev, fs_store_doc **out,
                 fs_errbuf *eb)
{
	struct docrow d;
	struct revrow x;
	unsigned long gen = 0;
	char hash[FS_REV_MAX];
	fs_store_doc *doc = NULL;
	sqlite3_stmt *s;
	int r, rc;

	fs_err_clear(eb);
	if (out)
		*out = NULL;
	if (st == NULL || out == NULL)
		return fs_err_set(eb, FS_E_ARG, "store: bad arguments to get");
	if ((r = doc_and_rev(st, id, rev, &d, &gen, hash, &x, eb)) != FS_OK)
		return r;
	if ((s = store_stmt(st, S_REV_BODY, eb)) == NULL)
		return fail_stmt(st, eb);
	sqlite3_bind_int64(s, 1, x.rid);
	rc = sqlite3_step(s);
	if (rc == SQLITE_DONE) {
		r = fs_err_set(eb, FS_E_NOTFOUND, "store: the revision's body is missing");
		goto out;
	}
	if (rc != SQLITE_ROW) {
		r = store_err(st, rc, "read body", eb);
		goto out;
	}
	if ((doc = calloc(1, sizeof(*doc))) == NULL || (doc->id = strdup(id)) == NULL ||
	    (doc->body = store_col_blob(s, 2, &doc->body_len)) == NULL) {
		r = fs_err_set(eb, FS_E_NOMEM, "store: out of memory");
		goto out;
	}
	snprintf(doc->rev, sizeof(doc->rev), "%lu-%.*s", gen, STORE_HASH_MAX, hash);
	doc->deleted = sqlite3_column_int(s, 0);
	doc->seq = (uint64_t)sqlite3_column_int64(s, 1);
	*out = doc;
	doc = NULL;
	r = FS_OK;
out:
	sqlite3_reset(s);
	fs_store_doc_free(doc);
	return r;
}

void fs_store_doc_free(fs_store_doc *d)
{
	if (d == NULL)
		return;
	free(d->id);
	free(d->body);
	free(d);
}

int fs_store_history_get(fs_store *st, const char *id, const char *rev, size_t max,
                         fs_store_history **out, fs_errbuf *eb)
{
	struct docrow d;
	struct revrow x;
	unsigned long gen = 0, want;
	char hash[FS_REV_MAX];
	fs_store_history *h = NULL;
	size_t cap = 0;
	int64_t cur;
	int r, rc;

	fs_err_clear(eb);
	if (out)
		*out = NULL;
	if (st == NULL || out == NULL || rev == NULL)
		return fs_err_set(eb, FS_E_ARG, "store: bad arguments to history");
	if ((r = doc_and_rev(st, id, rev, &d, &gen, hash, &x, eb)) != FS_OK)
		return r;
	if ((h = calloc(1, sizeof(*h))) == NULL)
		return fs_err_set(eb, FS_E_NOMEM, "store: out of memory");
	h->start = gen;
	want = gen;
	cur = x.rid;
	while (cur && (max == 0 || h->n < max)) {
		sqlite3_stmt *s = store_stmt(st, S_REV_BY_RID, eb);
		if (s == NULL) {
			r = fail_stmt(st, eb);
			goto out;
		}
		sqlite3_bind_int64(s, 1, cur);
		rc = sqlite3_step(s);
		if (rc != SQLITE_ROW) {
			sqlite3_reset(s);
			if (rc == SQLITE_DONE)
				break;
			r = store_err(st, rc, "history", eb);
			goto out;
		}
		/* Generations must step down by one; anything else ends the path. */
		if ((unsigned long)sqlite3_column_int64(s, 0) != want) {
			sqlite3_reset(s);
			break;
		}
		if (h->n == cap) {
			char **t;
			cap = cap ? cap * 2 : 16;
			if ((t = realloc(h->hashes, cap * sizeof(*t))) == NULL) {
				sqlite3_reset(s);
				r = fs_err_set(eb, FS_E_NOMEM, "store: out of memory");
				goto out;
			}
			h->hashes = t;
		}
		if ((h->hashes[h->n] = strdup((const char *)sqlite3_column_text(s, 1))) == NULL) {
			sqlite3_reset(s);
			r = fs_err_set(eb, FS_E_NOMEM, "store: out of memory");
			goto out;
		}
		h->n++;
		want--;
		cur = sqlite3_column_int64(s, 2);
		sqlite3_reset(s);
	}
	*out = h;
	h = NULL;
	r = FS_OK;
out:
	fs_store_history_free(h);
	return r;
}

void fs_store_history_free(fs_store_history *h)
{
	if (h == NULL)
		return;
	for (size_t i = 0; i < h->n; i++)
		free(h->hashes[i]);
	free(h->hashes);
	free(h);
}

/* Reads the leaves of did into *v (grown as needed), winner first. */
static int read_leaves(fs_store *st, int64_t did, fs_store_leaf **v, size_t *cap, size_t *n,
                       fs_errbuf *eb)
{
	sqlite3_stmt *s = store_stmt(st, S_LEAVES, eb);
	int rc;

	*n = 0;
	if (s == NULL)
		return fail_stmt(st, eb);
	sqlite3_bind_int64(s, 1, did);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (*n == *cap) {
			size_t nc = *cap ? *cap * 2 : 4;
			fs_store_leaf *t = realloc(*v, nc * sizeof(*t));
			if (t == NULL) {
				sqlite3_reset(s);
				return fs_err_set(eb, FS_E_NOMEM, "store: out of memory");
			}
			*v = t;
			*cap = nc;
		}
		snprintf((*v)[*n].rev, FS_REV_MAX, "%lld-%.*s", (long long)sqlite3_column_int64(s, 0),
		         STORE_HASH_MAX, (const char *)sqlite3_column_text(s, 1));
		(*v)[*n].deleted = sqlite3_column_int(s, 2);
		(*n)++;
	}
	sqlite3_reset(s);
	return rc == SQLITE_DONE ? FS_OK : store_err(st, rc, "read leaves", eb);
}

int fs_store_leaves_get(fs_store *st, const char *id, fs_store_leaves **out, fs_errbuf *eb)
{
	struct docrow d;
	fs_store_leaves *l = NULL;
	size_t cap = 0;
	int found, r;

	fs_err_clear(eb);
	if (out)
		*out = NULL;
	if (st == NULL || out == NULL)
		return fs_err_set(eb, FS_E_ARG, "store: bad arguments to leaves");
	if ((r = store_check_str(id, FS_STORE_ID_MAX, "document id", eb)) != FS_OK ||
	    (r = find_doc(st, id, &d, &found, eb)) != FS_OK)
		return r;
	if (!found)
		return fs_err_set(eb, FS_E_NOTFOUND, "store: no such document");
	if ((l = calloc(1, sizeof(*l))) == NULL)
		return fs_err_set(eb, FS_E_NOMEM, "store: out of memory");
	if ((r = read_leaves(st, d.did, &l->v, &cap, &l->n, eb)) != FS_OK) {
		fs_store_leaves_free(l);
		return r;
	}
	*out = l;
	return FS_OK;
}

void fs_store_leaves_free(fs_store_leaves *l)
{
	if (l == NULL)
		return;
	free(l->v);
	free(l);
}

static int push_str(char ***v, size_t *n, const char *s)
{
	char **t = realloc(*v, (*n + 1) * sizeof(*t));

	if (t == NULL)
		return FS_E_NOMEM;
	*v = t;
	if ((t[*n] = strdup(s)) == NULL)
		return FS_E_NOMEM;
	(*n)++;
	return FS_OK;
}

static int has_str(char **v, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i], s) == 0)
			return 1;
	return 0;
}

int fs_store_revs_diff(fs_store *st, const fs_store_diff_query *q, size_t n, fs_store_diff **out,
                       fs_errbuf *eb)
{
	fs_store_diff *res = NULL;
	fs_store_leaf *lv = NULL;
	size_t lcap = 0, ln;
	int r = FS_E_INTERNAL;

	fs_err_clear(eb);
	if (out)
		*out = NULL;
	if (st == NULL || out == NULL || (q == NULL && n > 0) || n > DIFF_QUERIES_MAX)
		return fs_err_set(eb, FS_E_ARG, "store: bad arguments to revs_diff");
	if ((res = calloc(1, sizeof(*res))) == NULL ||
	    (n && (res->v = calloc(n, sizeof(*res->v))) == NULL)) {
		r = fs_err_set(eb, FS_E_NOMEM, "store: out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		struct docrow d;
		int found;
		fs_store_diff_entry *e = &res->v[res->n];
		unsigned long maxgen = 0;

		if ((r = store_check_str(q[i].id, FS_STORE_ID_MAX, "document id", eb)) != FS_OK)
			goto out;
		if ((q[i].revs == NULL && q[i].n) || q[i].n > FS_STORE_HISTORY_MAX) {
			r = fs_err_set(eb, FS_E_ARG, "store: bad revs_diff query");
			goto out;
		}
		if ((r = find_doc(st, q[i].id, &d, &found, eb)) != FS_OK)
			goto out;
		for (size_t j = 0; j < q[i].n; j++) {
			unsigned long gen;
			char hash[FS_REV_MAX];
			struct revrow x;
			int known = 0;
			if ((r = split_rev(q[i].revs[j], &gen, hash, eb)) != FS_OK)
				goto out;
			if (found && (r = find_rev(st, d.did, gen, hash, &x, &known, eb)) != FS_OK)
				goto out;
			if (known || has_str(e->missing, e->n_missing, q[i].revs[j]))
				continue;
			if (push_str(&e->missing, &e->n_missing, q[i].revs[j]) != FS_OK) {
				r = fs_err_set(eb, FS_E_NOMEM, "store: out of memory");
				goto out;
			}
			if (gen > maxgen)
				maxgen = gen;
		}
		if (e->n_missing == 0)
			continue;
		if ((e->id = strdup(q[i].id)) == NULL) {
			res->n++; /* so it is freed */
			r = fs_err_set(eb, FS_E_NOMEM, "store: out of memory");
			goto out;
		}
		res->n++;
		if (!found)
			continue;
		if ((r = read_leaves(st, d.did, &lv, &lcap, &ln, eb)) != FS_OK)
			goto out;
		for (size_t k = 0; k < ln; k++) {
			unsigned long g = strtoul(lv[k].rev, NULL, 10);
			if (g < maxgen &&
			    push_str(&e->possible_ancestors, &e->n_ancestors, lv[k].rev) != FS_OK) {
				r = fs_err_set(eb, FS_E_NOMEM, "store: out of memory");
				goto out;
			}
		}
	}
	*out = res;
	res = NULL;
	r = FS_OK;
out:
	if (res && res->v && res->n < n && res->v[res->n].n_missing)
		res->n++; /* a half-built entry is freed too */
	free(lv);
	fs_store_diff_free(res);
	return r;
}

void fs_store_diff_free(fs_store_diff *d)
{
	if (d == NULL)
		return;
	for (size_t i = 0; i < d->n; i++) {
		fs_store_diff_entry *e = &d->v[i];
		for (size_t j = 0; j < e->n_missing; j++)
			free(e->missing[j]);
		for (size_t j = 0; j < e->n_ancestors; j++)
			free(e->possible_ancestors[j]);
		free(e->missing);
		free(e->possible_ancestors);
		free(e->id);
	}
	free(d->v);
	free(d);
}

/* Walks docs rows from an ad hoc statement (not cached: cb may call back into the store). */
static int walk_docs(fs_store *st, sqlite3_stmt *s, fs_store_change_cb cb, void *ctx,
                     uint64_t *last, fs_errbuf *eb)
{
	fs_store_leaf *lv = NULL;
	size_t cap = 0, ln;
	int r = FS_OK, rc;
	char *id = NULL;

	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		fs_store_change c;
		free(id);
		if ((id = strdup((const char *)sqlite3_column_text(s, 1))) == NULL) {
			r = fs_err_set(eb, FS_E_NOMEM, "store: out of memory");
			goto out;
		}
		if ((r = read_leaves(st, sqlite3_column_int64(s, 0), &lv, &cap, &ln, eb)) != FS_OK)
			goto out;
		if (ln == 0)
			continue;
		c.id = id;
		c.seq = (uint64_t)sqlite3_column_int64(s, 2);
		c.winner = lv[0].rev;
		c.deleted = lv[0].deleted;
		c.n_leaves = ln;
		c.leaves = lv;
		if (last)
			*last = c.seq;
		if ((r = cb(ctx, &c)) != 0)
			goto out;
	}
	if (rc != SQLITE_DONE)
		r = store_err(st, rc, "read changes", eb);
out:
	free(id);
	free(lv);
	return r;
}

int fs_store_changes(fs_store *st, uint64_t since, size_t limit, fs_store_change_cb cb,
                     void *ctx, uint64_t *last_seq, fs_errbuf *eb)
{
	sqlite3_stmt *s = NULL;
	uint64_t last = since;
	int r, rc;

	fs_err_clear(eb);
	if (last_seq)
		*last_seq = since;
	if (st == NULL || cb == NULL)
		return fs_err_set(eb, FS_E_ARG, "store: bad arguments to changes");
	rc = sqlite3_prepare_v2(st->db,
	                        "SELECT did, id, seq FROM docs WHERE seq > ?1 ORDER BY seq LIMIT ?2",
	                        -1, &s, NULL);
	if (rc != SQLITE_OK)
		return store_err(st, rc, "read changes", eb);
	sqlite3_bind_int64(s, 1, (sqlite3_int64)since);
	sqlite3_bind_int64(s, 2, limit == 0 || limit > INT64_MAX ? -1 : (sqlite3_int64)limit);
	r = walk_docs(st, s, cb, ctx, &last, eb);
	sqlite3_finalize(s);
	if (last_seq)
		*last_seq = last;
	return r;
}

int fs_store_conflicts(fs_store *st, fs_store_change_cb cb, void *ctx, fs_errbuf *eb)
{
	sqlite3_stmt *s = NULL;
	int r, rc;

	fs_err_clear(eb);
	if (st == NULL || cb == NULL)
		return fs_err_set(eb, FS_E_ARG, "store: bad arguments to conflicts");
	rc = sqlite3_prepare_v2(st->db,
	                        "SELECT did, id, seq FROM docs WHERE conflicted = 1 ORDER BY id", -1,
	                        &s, NULL);
	if (rc != SQLITE_OK)
		return store_err(st, rc, "read conflicts", eb);
	r = walk_docs(st, s, cb, ctx, NULL, eb);
	sqlite3_finalize(s);
	return r;
}

int fs_store_info_get(fs_store *st, fs_store_info *out, fs_errbuf *eb)
{
	sqlite3_stmt *s = NULL;
	int rc;

	fs_err_clear(eb);
	if (out)
		memset(out, 0, sizeof(*out));
	if (st == NULL || out == NULL)
		return fs_err_set(eb, FS_E_ARG, "store: bad arguments to info");
	rc = sqlite3_prepare_v2(st->db, "SELECT deleted, count(*) FROM docs GROUP BY deleted", -1, &s,
	                        NULL);
	while (rc == SQLITE_OK && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (sqlite3_column_int(s, 0))
			out->doc_del_count = (uint64_t)sqlite3_column_int64(s, 1);
		else
			out->doc_count = (uint64_t)sqlite3_column_int64(s, 1);
		rc = SQLITE_OK;
	}
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE) {
		memset(out, 0, sizeof(*out));
		return store_err(st, rc, "info", eb);
	}
	out->update_seq = st->seq;
	return FS_OK;
}
