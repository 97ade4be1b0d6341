/*
 * store/revs.c: revision trees with CouchDB's semantics: local edits on a
 * leaf, remote revisions merged by their ancestry, the winner rule,
 * stemming to revs_limit, and the reads replication needs (get, history,
 * leaves, revs_diff, the changes feed, conflicts, info). A document is one
 * docs row, keyed by its latest local sequence: its revision tree
 * (store/tree.c) and, until it first changes, its body; other bodies are
 * rows of the bodies table (docs/store.md, "Schema").
 */
#include "store_int.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DIFF_QUERIES_MAX 100000
#define REMOTE_BATCH_MAX 100000
#define SUPERSEDE_MAX    8 /* queued rows of one document looked at per edit */

/* In memory only: the node whose body a new row's body column takes. */
#define N_NEWBODY 64u

/* How a row write treats the body column. */
enum body_mode { BODY_KEEP, BODY_NEW, BODY_NONE };

/* The document a call works on; its tree is st->tree, its leaves st->lv. */
struct doc {
	const char *id;
	int found;
	uint64_t seq;         /* its row, when found */
	int row_body;         /* the row's body column holds a body */
	const uint8_t *nbody; /* the body of the N_NEWBODY node */
	size_t nlen;
};

/* The code of store_stmt's failure, which eb (possibly NULL) already describes. */
static int fail_stmt(fs_store *st, fs_errbuf *eb)
{
	(void)eb;
	return st->stmt_err;
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

static int corrupt_doc(fs_errbuf *eb)
{
	return fs_err_set(eb, FS_E_STORE_CORRUPT, "store: a document's row is damaged");
}

/* The index of the tree's inline node, or -1. */
static long inline_node(const struct tree *t)
{
	for (size_t i = 0; i < t->n; i++)
		if (t->v[i].flags & N_INLINE)
			return (long)i;
	return -1;
}

/*
 * Reads a row's tree (column c) into t and its leaves into l; has_body says
 * whether the row's body column holds a body, which the tree must agree with.
 */
static int read_tree(sqlite3_stmt *s, int c, int has_body, struct tree *t, struct leaves *l,
                     fs_errbuf *eb)
{
	int r;

	if ((r = tree_decode(sqlite3_column_blob(s, c), (size_t)sqlite3_column_bytes(s, c), t,
	                     eb)) != FS_OK ||
	    (r = tree_leaves(t, l, eb)) != FS_OK)
		return r;
	if ((inline_node(t) >= 0) != (has_body != 0))
		return corrupt_doc(eb);
	return FS_OK;
}

/* The docs row of id: d->found, and when found its tree and leaves in st. */
static int find_doc(fs_store *st, const char *id, struct doc *d, fs_errbuf *eb)
{
	sqlite3_stmt *s = store_stmt(st, S_DOC_BY_ID, eb);
	int rc, r = FS_OK;

	memset(d, 0, sizeof(*d));
	d->id = id;
	if (s == NULL)
		return fail_stmt(st, eb);
	sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		d->seq = (uint64_t)sqlite3_column_int64(s, 0);
		d->row_body = sqlite3_column_int(s, 2);
		r = read_tree(s, 1, d->row_body, &st->tree, &st->lv, eb);
		d->found = r == FS_OK;
		rc = SQLITE_DONE;
	}
	sqlite3_reset(s);
	if (rc != SQLITE_DONE)
		return store_err(st, rc, "read document", eb);
	return r;
}

/* Runs a cached write statement with one integer parameter. */
static int run1(fs_store *st, enum stmt_id id, int64_t a, const char *what, fs_errbuf *eb)
{
	sqlite3_stmt *s = store_stmt(st, id, eb);
	int rc;

	if (s == NULL)
		return fail_stmt(st, eb);
	sqlite3_bind_int64(s, 1, a);
	rc = sqlite3_step(s);
	sqlite3_reset(s);
	return rc == SQLITE_DONE ? FS_OK : store_err(st, rc, what, eb);
}

/* A new bodies row holding body; its key goes to *bid. */
static int insert_body(fs_store *st, const uint8_t *body, size_t len, int64_t *bid, fs_errbuf *eb)
{
	sqlite3_stmt *s = store_stmt(st, S_BODY_INSERT, eb);
	int rc;

	if (s == NULL)
		return fail_stmt(st, eb);
	store_bind_blob(s, 1, body, len);
	rc = sqlite3_step(s);
	sqlite3_reset(s);
	if (rc != SQLITE_DONE)
		return store_err(st, rc, "write body", eb);
	*bid = sqlite3_last_insert_rowid(st->db);
	return FS_OK;
}

/*
 * Node x of st->tree receives its body. A new document's body goes into
 * its row: a pulled document is then one row and one index entry. Once a
 * document changes, its row moves to the end of the table at every change
 * (it is keyed by its latest sequence), so it must be small: the body it
 * held moves to the bodies table, where new bodies go too.
 */
static int place_body(fs_store *st, struct doc *d, long x, const uint8_t *body, size_t len,
                      fs_errbuf *eb)
{
	struct tree *t = &st->tree;
	long old = inline_node(t);
	int64_t bid = 0;
	int r;

	if (!d->found && len <= STORE_INLINE_MAX) {
		if (old >= 0) /* one body in a new row */
			return fs_err_set(eb, FS_E_INTERNAL, "store: two new bodies in one write");
		t->v[x].flags |= N_BODY | N_INLINE | N_NEWBODY;
		t->v[x].bid = 0;
		d->nbody = body;
		d->nlen = len;
		return FS_OK;
	}
	if (old >= 0 && old != x) {
		if (!d->found || !d->row_body || (t->v[old].flags & N_NEWBODY))
			return corrupt_doc(eb);
		/* The copy stays inside SQLite: the row's bytes never pass through here. */
		if ((r = run1(st, S_BODY_MOVE, (int64_t)d->seq, "move body", eb)) != FS_OK)
			return r;
		t->v[old].flags &= ~(unsigned)N_INLINE;
		t->v[old].bid = sqlite3_last_insert_rowid(st->db);
	}
	if ((r = insert_body(st, body, len, &bid, eb)) != FS_OK)
		return r;
	t->v[x].flags = (t->v[x].flags | N_BODY) & ~(unsigned)N_INLINE;
	t->v[x].bid = bid;
	return FS_OK;
}

/*
 * Writes the document's row: its tree, winner flags and body column, at
 * local sequence seq. A new document's row is inserted (*inserted 0 if the
 * id exists after all); a known one's moves from d->seq to seq, which is
 * how it goes to the end of the changes feed.
 */
static int save_doc(fs_store *st, struct doc *d, uint64_t seq, int *inserted, fs_errbuf *eb)
{
	struct tree *t = &st->tree;
	sqlite3_stmt *s;
	enum body_mode mode = BODY_NONE;
	size_t live = 0;
	int r, rc;

	if ((r = tree_leaves(t, &st->lv, eb)) != FS_OK)
		return r;
	for (size_t i = 0; i < st->lv.n; i++)
		live += !st->lv.v[i].deleted;
	for (size_t i = 0; i < t->n; i++) {
		if (t->v[i].flags & N_NEWBODY) {
			mode = BODY_NEW;
			t->v[i].flags &= ~N_NEWBODY;
		} else if ((t->v[i].flags & N_INLINE) && mode != BODY_NEW) {
			mode = BODY_KEEP;
		}
	}
	if ((r = tree_encode(t, &st->enc, eb)) != FS_OK)
		return r;
	if ((s = store_stmt(st, d->found ? S_DOC_UPDATE : S_DOC_INSERT, eb)) == NULL)
		return fail_stmt(st, eb);
	sqlite3_bind_int64(s, 1, (sqlite3_int64)(d->found ? d->seq : seq));
	sqlite3_bind_int64(s, 2, (sqlite3_int64)seq);
	sqlite3_bind_text(s, 3, d->id, -1, SQLITE_STATIC);
	sqlite3_bind_int(s, 4, st->lv.v[0].deleted);
	sqlite3_bind_int(s, 5, live > 1);
	sqlite3_bind_blob64(s, 6, st->enc.p, st->enc.len, SQLITE_STATIC);
	sqlite3_bind_int(s, 7, (int)mode);
	if (mode == BODY_NEW)
		store_bind_blob(s, 8, d->nbody, d->nlen);
	rc = sqlite3_step(s);
	sqlite3_reset(s);
	if (rc != SQLITE_DONE)
		return store_err(st, rc, d->found ? "update document" : "insert document", eb);
	if (d->found && sqlite3_changes(st->db) != 1)
		return fs_err_set(eb, FS_E_INTERNAL, "store: a document's row vanished");
	if (inserted)
		*inserted = sqlite3_changes(st->db) > 0;
	return FS_OK;
}

/* A one-node tree in st->tree: a new document's first revision. */
static int tree_start(fs_store *st, unsigned long gen, const char *hash, int deleted, uint64_t seq,
                      long *x, fs_errbuf *eb)
{
	st->tree.n = 0;
	return tree_add(&st->tree, gen, hash, -1, N_LEAF | (deleted ? N_DELETED : 0u), seq, x, eb);
}

struct keep {
	long to; /* new index, -1: removed */
	int keep;
};

/*
 * Keeps, as CouchDB does, the revs_limit newest revisions of every path
 * from a leaf; revisions still named by an outbox row are kept too, so a
 * queued edit is never lost to stemming. Cheap when no path can be long.
 * Removed revisions' bodies rows go with them.
 */
static int stem(fs_store *st, struct doc *d, fs_errbuf *eb)
{
	struct tree *t = &st->tree;
	struct keep *k = NULL;
	sqlite3_stmt *s;
	unsigned long lo = ULONG_MAX, hi = 0;
	size_t n = 0;
	int r = FS_E_INTERNAL, rc;

	for (size_t i = 0; i < t->n; i++) {
		if (t->v[i].gen < lo)
			lo = t->v[i].gen;
		if (t->v[i].gen > hi)
			hi = t->v[i].gen;
	}
	if (hi - lo + 1 <= st->revs_limit)
		return FS_OK;
	if ((k = calloc(t->n, sizeof(*k))) == NULL)
		return fs_err_set(eb, FS_E_NOMEM, "store: out of memory");
	for (size_t i = 0; i < t->n; i++) {
		long x = (t->v[i].flags & N_LEAF) ? (long)i : -1;
		for (unsigned j = 0; x >= 0 && j < st->revs_limit; j++, x = t->v[x].parent)
			k[x].keep = 1;
	}
	if ((s = store_stmt(st, S_OUTBOX_REVS_OF_DOC, eb)) == NULL) {
		r = fail_stmt(st, eb);
		goto out;
	}
	sqlite3_bind_text(s, 1, d->id, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		unsigned long gen;
		char hash[FS_REV_MAX];
		long x;
		if (split_rev((const char *)sqlite3_column_text(s, 0), &gen, hash, NULL) == FS_OK &&
		    (x = tree_find(t, gen, hash)) >= 0)
			k[x].keep = 1;
	}
	sqlite3_reset(s);
	if (rc != SQLITE_DONE) {
		r = store_err(st, rc, "stem", eb);
		goto out;
	}
	for (size_t i = 0; i < t->n; i++) {
		if (k[i].keep) {
			k[i].to = (long)n++;
			continue;
		}
		k[i].to = -1;
		if ((t->v[i].flags & N_BODY) && !(t->v[i].flags & N_INLINE) &&
		    (r = run1(st, S_BODY_DELETE, t->v[i].bid, "stem", eb)) != FS_OK)
			goto out;
	}
	for (size_t i = 0; i < t->n; i++) {
		struct node x = t->v[i];
		if (!k[i].keep)
			continue;
		x.parent = x.parent >= 0 ? k[x.parent].to : -1;
		t->v[k[i].to] = x;
	}
	t->n = n;
	r = FS_OK;
out:
	free(k);
	return r;
}

/* Drops queued rows of the document whose revision is an ancestor of node from (inclusive). */
static int supersede(fs_store *st, struct doc *d, long from, fs_errbuf *eb)
{
	const struct tree *t = &st->tree;
	sqlite3_stmt *s = store_stmt(st, S_OUTBOX_OF_DOC, eb);
	struct qrow {
		int64_t oid;
		long x;
	} rows[SUPERSEDE_MAX];
	size_t n = 0;
	int rc, r, more = 0;

	if (s == NULL)
		return fail_stmt(st, eb);
	sqlite3_bind_text(s, 1, d->id, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		unsigned long gen;
		char hash[FS_REV_MAX];
		if (n == SUPERSEDE_MAX) {
			/* the rest waits for the next edit: keeping a row is always safe */
			more = 1;
			break;
		}
		if (split_rev((const char *)sqlite3_column_text(s, 1), &gen, hash, NULL) != FS_OK)
			continue;
		rows[n].oid = sqlite3_column_int64(s, 0);
		rows[n].x = tree_find(t, gen, hash);
		n++;
	}
	sqlite3_reset(s);
	if (rc != SQLITE_DONE && !more)
		return store_err(st, rc, "read outbox", eb);
	for (size_t i = 0; i < n; i++) {
		long cur = from;
		if (rows[i].x < 0)
			continue;
		/* Ancestors have lower generations: past the row's, it is not one. */
		while (cur >= 0 && cur != rows[i].x)
			cur = t->v[cur].gen <= t->v[rows[i].x].gen ? -1 : t->v[cur].parent;
		if (cur >= 0 && (r = run1(st, S_OUTBOX_DELETE, rows[i].oid, "outbox", eb)) != FS_OK)
			return r;
	}
	return FS_OK;
}

static int check_body(const uint8_t *body, size_t len, fs_errbuf *eb)
{
	if (body == NULL && len > 0)
		return fs_err_set(eb, FS_E_ARG, "store: no body bytes");
	if (len > FS_STORE_BODY_MAX)
		return fs_err_set(eb, FS_E_TOOBIG, "store: body of %zu bytes is over the limit",
		                  len);
	return FS_OK;
}

/* The leaf gen-hash of the document in st->lv, or NULL. */
static const struct leaf *leaf_find(const struct leaves *l, unsigned long gen, const char *hash)
{
	for (size_t i = 0; i < l->n; i++)
		if (l->v[i].gen == gen && strcmp(l->v[i].hash, hash) == 0)
			return &l->v[i];
	return NULL;
}

static int queue(fs_store *st, const char *id, const char *rev, uint64_t seq, fs_errbuf *eb)
{
	sqlite3_stmt *s = store_stmt(st, S_OUTBOX_INSERT, eb);
	int rc;

	if (s == NULL)
		return fail_stmt(st, eb);
	sqlite3_bind_int64(s, 1, (sqlite3_int64)seq);
	sqlite3_bind_text(s, 2, id, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, rev, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 4, store_now_ms());
	rc = sqlite3_step(s);
	sqlite3_reset(s);
	return rc == SQLITE_DONE ? FS_OK : store_err(st, rc, "queue", eb);
}

int fs_store_put(fs_store *st, const char *id, const char *base_rev, const uint8_t *body,
                 size_t body_len, int deleted, unsigned flags, char new_rev[FS_REV_MAX],
                 fs_errbuf *eb)
{
	struct doc d = {0};
	unsigned long bgen = 0, ngen;
	char bhash[FS_REV_MAX], nhash[FS_REV_MAX], parent[FS_REV_MAX] = "", rev[FS_REV_MAX];
	char base_copy[FS_REV_MAX];
	int r, in_tx = 0, inserted = 0;
	long px = -1, nx;
	uint64_t seq;

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
	if ((r = find_doc(st, id, &d, eb)) != FS_OK)
		goto out;
	if (base_rev == NULL && d.found) {
		const struct leaf *w = &st->lv.v[0];
		if (!w->deleted) {
			r = fs_err_set(eb, FS_E_STORE_CONFLICT,
			               "store: document exists (no base revision given)");
			goto out;
		}
		/* re-creating over a tombstone extends it, as CouchDB does */
		bgen = w->gen;
		snprintf(bhash, sizeof(bhash), "%s", w->hash);
	}
	if (d.found && bgen) {
		/* The leaves are in the row: no lookup for the base. */
		const struct leaf *p = leaf_find(&st->lv, bgen, bhash);
		if (p == NULL) {
			r = fs_err_set(eb, FS_E_STORE_CONFLICT,
			               "store: the base revision is not a current leaf");
			goto out;
		}
		px = p->i;
		snprintf(parent, sizeof(parent), "%lu-%.*s", bgen, STORE_HASH_MAX, bhash);
	} else if (base_rev) {
		r = fs_err_set(eb, FS_E_STORE_CONFLICT,
		               "store: no such document for a base revision");
		goto out;
	}
	if ((r = fs_crypto_rev_id(parent, deleted, body, body_len, rev)) != FS_OK) {
		fs_err_set(eb, r, "store: cannot compute the revision id");
		goto out;
	}
	if ((r = split_rev(rev, &ngen, nhash, eb)) != FS_OK)
		goto out;
	/* A local edit that made a known revision again (another root, say): 409. */
	if (d.found && tree_find(&st->tree, ngen, nhash) >= 0) {
		r = fs_err_set(eb, FS_E_STORE_CONFLICT, "store: the revision exists already");
		goto out;
	}
	seq = ++st->seq;
	if (!d.found) {
		if ((r = tree_start(st, ngen, nhash, deleted, seq, &nx, eb)) != FS_OK ||
		    (r = place_body(st, &d, nx, body, body_len, eb)) != FS_OK ||
		    (r = save_doc(st, &d, seq, &inserted, eb)) != FS_OK)
			goto out;
		if (!inserted) {
			r = fs_err_set(eb, FS_E_INTERNAL, "store: document appeared");
			goto out;
		}
	} else {
		if ((r = tree_add(&st->tree, ngen, nhash, px, N_LEAF | (deleted ? N_DELETED : 0u),
		                  seq, &nx, eb)) != FS_OK)
			goto out;
		st->tree.v[px].flags &= ~(unsigned)N_LEAF;
		if ((r = place_body(st, &d, nx, body, body_len, eb)) != FS_OK)
			goto out;
	}
	if (!(flags & FS_STORE_PUT_NO_OUTBOX)) {
		if (px >= 0 && (r = supersede(st, &d, px, eb)) != FS_OK)
			goto out;
		if ((r = queue(st, id, rev, seq, eb)) != FS_OK)
			goto out;
	}
	if (d.found && ((ngen > st->revs_limit && (r = stem(st, &d, eb)) != FS_OK) ||
	                (r = save_doc(st, &d, seq, NULL, eb)) != FS_OK))
		goto out;
	if ((r = store_commit(st, eb)) != FS_OK)
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

/* A revision hash as fs_crypto_rev_parse accepts it, without building the id. */
static int hash_ok(const char *h)
{
	size_t n = 0;

	for (; h[n]; n++)
		if (n >= (size_t)STORE_HASH_MAX || h[n] <= ' ' || h[n] > '~' || h[n] == '-')
			return 0;
	return n > 0;
}

static int check_rev_in(const fs_store_rev_in *v, fs_errbuf *eb)
{
	if (v->id == NULL || strnlen(v->id, FS_STORE_ID_MAX + 1) - 1 >= FS_STORE_ID_MAX)
		return fs_err_set(eb, FS_E_INPUT, "store: document id empty or too long");
	if (v->body == NULL && v->body_len > 0)
		return fs_err_set(eb, FS_E_INPUT, "store: no body bytes");
	if (v->body_len > FS_STORE_BODY_MAX)
		return fs_err_set(eb, FS_E_TOOBIG, "store: body of %zu bytes is over the limit",
		                  v->body_len);
	/* n_hashes ≤ start keeps every generation ≥ 1; 20 digits hold any unsigned long. */
	if (v->n_hashes == 0 || v->hashes == NULL || v->start == 0 || v->n_hashes > v->start ||
	    v->n_hashes > FS_STORE_HISTORY_MAX || v->start > (unsigned long)INT64_MAX)
		return fs_err_set(eb, FS_E_INPUT, "store: malformed revision history");
	for (size_t i = 0; i < v->n_hashes; i++)
		if (v->hashes[i] == NULL || !hash_ok(v->hashes[i]))
			return fs_err_set(eb, FS_E_INPUT,
			                  "store: malformed revision id in history");
	return FS_OK;
}

/*
 * The common case of a pull: a document not seen before. Its tree is the
 * path itself (oldest first) and its winner the tip, so it is written
 * without being looked up first: the insert itself finds out, through the
 * id index it has to touch anyway, whether the document exists (*done 0:
 * it does, and nothing was written). Unlooked-up only for a body that fits
 * the row: a large one is written to its bodies row first, so it comes
 * here only once the document is known to be new.
 */
static int merge_new(fs_store *st, struct doc *d, const fs_store_rev_in *v, size_t nh, int *done,
                     fs_errbuf *eb)
{
	struct tree *t = &st->tree;
	uint64_t seq = st->seq + 1;
	long prev = -1;
	int r;

	*done = 0;
	memset(d, 0, sizeof(*d));
	d->id = v->id;
	t->n = 0;
	for (size_t k = nh; k-- > 0;) {
		unsigned flags = k == 0 ? N_LEAF | (v->deleted ? N_DELETED : 0u) : 0u;
		if ((r = tree_add(t, v->start - k, v->hashes[k], prev, flags, k == 0 ? seq : 0,
		                  &prev, eb)) != FS_OK)
			return r;
	}
	if ((r = place_body(st, d, prev, v->body, v->body_len, eb)) != FS_OK ||
	    (r = save_doc(st, d, seq, done, eb)) != FS_OK)
		return r;
	if (*done)
		st->seq = seq;
	return FS_OK;
}

/* Merges one revision path into its document's tree. */
static int merge_one(fs_store *st, const fs_store_rev_in *v, fs_errbuf *eb)
{
	struct tree *t = &st->tree;
	struct doc d;
	int r, done, changed = 0, dirty = 0;
	long prev = -1;
	uint64_t seq = 0;

	/* Only the newest revs_limit entries count, so a replay meets only known revisions. */
	size_t nh = v->n_hashes < st->revs_limit ? v->n_hashes : st->revs_limit;

	if (v->body_len <= STORE_INLINE_MAX) {
		if ((r = merge_new(st, &d, v, nh, &done, eb)) != FS_OK || done)
			return r;
	}
	if ((r = find_doc(st, v->id, &d, eb)) != FS_OK)
		return r;
	if (!d.found) { /* a new document whose body goes to the bodies table first */
		if ((r = merge_new(st, &d, v, nh, &done, eb)) != FS_OK)
			return r;
		return done ? FS_OK : fs_err_set(eb, FS_E_INTERNAL, "store: document appeared");
	}
	/*
	 * A history longer than revs_limit whose window knows nothing may still
	 * reach our tree further back (a jump of many generations): then widen
	 * the window to that revision, as CouchDB merges the whole path before
	 * stemming, instead of starting a false conflict.
	 */
	if (v->n_hashes > nh && t->n > 0) {
		/* Only generations the tree has can match: the search costs the
		 * tree's span, not the history's length (up to 100,000 entries). */
		unsigned long lo = t->v[0].gen, hi = t->v[0].gen;
		for (size_t i = 1; i < t->n; i++) {
			lo = t->v[i].gen < lo ? t->v[i].gen : lo;
			hi = t->v[i].gen > hi ? t->v[i].gen : hi;
		}
		size_t k0 = v->start > hi ? v->start - hi : 0;
		for (size_t k = k0; k < v->n_hashes && v->start - k >= lo; k++) {
			if (tree_find(t, v->start - k, v->hashes[k]) >= 0) {
				if (k >= nh)
					nh = k + 1;
				break;
			}
		}
	}
	for (size_t k = nh; k-- > 0;) {
		unsigned long gen = v->start - k;
		const char *h = v->hashes[k];
		/* Look every revision up: a newer one may be known while an older one is not. */
		long x = tree_find(t, gen, h);
		if (x >= 0) {
			struct node *n = &t->v[x];
			/* A root cut off by stemming or by a shorter history: link it. */
			if (prev >= 0 && n->parent < 0) {
				n->parent = prev;
				t->v[prev].flags &= ~(unsigned)N_LEAF;
				changed = 1;
			}
			if (k == 0 && !(n->flags & N_BODY)) {
				/* A body-less revision gets its body and keeps its place: no new
				 * sequence unless a leaf's deleted flag changed with it. */
				unsigned was = n->flags & N_DELETED;
				n->flags = (n->flags & ~(unsigned)N_DELETED) |
				           (v->deleted ? N_DELETED : 0u);
				if ((n->flags & N_LEAF) && (n->flags & N_DELETED) != was)
					changed = 1;
				if ((r = place_body(st, &d, x, v->body, v->body_len, eb)) != FS_OK)
					return r;
				dirty = 1;
			}
			prev = x;
			continue;
		}
		if (k == 0)
			seq = ++st->seq;
		if ((r = tree_add(t, gen, h, prev,
		                  k == 0 ? N_LEAF | (v->deleted ? N_DELETED : 0u) : 0u, seq, &x,
		                  eb)) != FS_OK)
			return r;
		if (prev >= 0)
			t->v[prev].flags &= ~(unsigned)N_LEAF;
		if (k == 0 && (r = place_body(st, &d, x, v->body, v->body_len, eb)) != FS_OK)
			return r;
		prev = x;
		changed = 1;
	}
	if (!changed) /* a body for a body-less revision moves nothing in the changes feed */
		return dirty ? save_doc(st, &d, d.seq, NULL, eb) : FS_OK;
	if (seq == 0)
		seq = ++st->seq;
	if ((r = stem(st, &d, eb)) != FS_OK)
		return r;
	return save_doc(st, &d, seq, NULL, eb);
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
	if (ckpt_remote &&
	    ((r = store_check_str(ckpt_remote, FS_STORE_NAME_MAX, "remote", eb)) != FS_OK ||
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

/* A node's body (body set) or only its size (body NULL: SQLite reads no content). */
static int node_body(fs_store *st, const struct node *x, sqlite3_stmt *row, int col, uint8_t **body,
                     size_t *len, fs_errbuf *eb)
{
	sqlite3_stmt *s;
	int rc;

	if (body)
		*body = NULL;
	*len = 0;
	if (!(x->flags & N_BODY))
		return fs_err_set(eb, FS_E_NOTFOUND, "store: the revision's body is missing");
	if (x->flags & N_INLINE) {
		if (sqlite3_column_type(row, col) == SQLITE_NULL)
			return corrupt_doc(eb);
		if (body == NULL)
			*len = (size_t)sqlite3_column_bytes(row, col);
		else if ((*body = store_col_blob(row, col, len)) == NULL)
			return fs_err_set(eb, FS_E_NOMEM, "store: out of memory");
		return FS_OK;
	}
	if ((s = store_stmt(st, body ? S_BODY_GET : S_BODY_LEN, eb)) == NULL)
		return fail_stmt(st, eb);
	sqlite3_bind_int64(s, 1, x->bid);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW && body == NULL)
		*len = (size_t)sqlite3_column_int64(s, 0);
	else if (rc == SQLITE_ROW && (*body = store_col_blob(s, 0, len)) == NULL)
		rc = SQLITE_NOMEM;
	sqlite3_reset(s);
	if (rc == SQLITE_DONE) /* the tree names a row that is not there */
		return corrupt_doc(eb);
	return rc == SQLITE_ROW ? FS_OK : store_err(st, rc, "read body", eb);
}

int store_node_body(fs_store *st, const struct node *x, sqlite3_stmt *row, int col, uint8_t **body,
                    size_t *len, fs_errbuf *eb)
{
	return node_body(st, x, row, col, body, len, eb);
}

int store_node_size(fs_store *st, const struct node *x, sqlite3_stmt *row, int col, size_t *len,
                    fs_errbuf *eb)
{
	return node_body(st, x, row, col, NULL, len, eb);
}

/* The node of rev (the winner when rev is NULL) in st->tree, whose leaves are st->lv. */
static int node_of_rev(fs_store *st, const char *rev, long *x, fs_errbuf *eb)
{
	unsigned long gen;
	char hash[FS_REV_MAX];

	if (rev == NULL) {
		*x = st->lv.v[0].i;
		return FS_OK;
	}
	if (split_rev(rev, &gen, hash, NULL) != FS_OK)
		return fs_err_set(eb, FS_E_NOTFOUND, "store: no such revision (malformed)");
	if ((*x = tree_find(&st->tree, gen, hash)) < 0)
		return fs_err_set(eb, FS_E_NOTFOUND, "store: no such revision");
	return FS_OK;
}

int fs_store_get(fs_store *st, const char *id, const char *rev, fs_store_doc **out, fs_errbuf *eb)
{
	fs_store_doc *doc = NULL;
	sqlite3_stmt *s;
	const struct node *n;
	long x;
	int r, rc;

	fs_err_clear(eb);
	if (out)
		*out = NULL;
	if (st == NULL || out == NULL)
		return fs_err_set(eb, FS_E_ARG, "store: bad arguments to get");
	if ((r = store_check_str(id, FS_STORE_ID_MAX, "document id", eb)) != FS_OK)
		return r;
	if ((s = store_stmt(st, S_DOC_GET, eb)) == NULL)
		return fail_stmt(st, eb);
	sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	if (rc == SQLITE_DONE) {
		r = fs_err_set(eb, FS_E_NOTFOUND, "store: no such document");
		goto out;
	}
	if (rc != SQLITE_ROW) {
		r = store_err(st, rc, "read document", eb);
		goto out;
	}
	if ((r = read_tree(s, 1, sqlite3_column_type(s, 2) != SQLITE_NULL, &st->tree, &st->lv,
	                   eb)) != FS_OK ||
	    (r = node_of_rev(st, rev, &x, eb)) != FS_OK)
		goto out;
	if ((doc = calloc(1, sizeof(*doc))) == NULL || (doc->id = strdup(id)) == NULL) {
		r = fs_err_set(eb, FS_E_NOMEM, "store: out of memory");
		goto out;
	}
	n = &st->tree.v[x];
	if ((r = store_node_body(st, n, s, 2, &doc->body, &doc->body_len, eb)) != FS_OK)
		goto out;
	snprintf(doc->rev, sizeof(doc->rev), "%lu-%s", n->gen, n->hash);
	doc->deleted = (n->flags & N_DELETED) != 0;
	doc->seq = n->seq;
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

int tree_history(const struct tree *t, long cur, size_t max, fs_store_history **out, fs_errbuf *eb)
{
	fs_store_history *h = NULL;
	unsigned long want;
	size_t cap = 0;
	int r;

	*out = NULL;
	if ((h = calloc(1, sizeof(*h))) == NULL)
		return fs_err_set(eb, FS_E_NOMEM, "store: out of memory");
	h->start = want = t->v[cur].gen;
	/* Generations must step down by one; anything else ends the path. */
	while (cur >= 0 && (max == 0 || h->n < max) && t->v[cur].gen == want) {
		if (h->n == cap) {
			char **v;
			cap = cap ? cap * 2 : 4;
			if ((v = realloc(h->hashes, cap * sizeof(*v))) == NULL) {
				r = fs_err_set(eb, FS_E_NOMEM, "store: out of memory");
				goto out;
			}
			h->hashes = v;
		}
		if ((h->hashes[h->n] = strdup(t->v[cur].hash)) == NULL) {
			r = fs_err_set(eb, FS_E_NOMEM, "store: out of memory");
			goto out;
		}
		h->n++;
		want--;
		cur = t->v[cur].parent;
	}
	*out = h;
	h = NULL;
	r = FS_OK;
out:
	fs_store_history_free(h);
	return r;
}

int fs_store_history_get(fs_store *st, const char *id, const char *rev, size_t max,
                         fs_store_history **out, fs_errbuf *eb)
{
	struct doc d;
	long cur;
	int r;

	fs_err_clear(eb);
	if (out)
		*out = NULL;
	if (st == NULL || out == NULL || rev == NULL)
		return fs_err_set(eb, FS_E_ARG, "store: bad arguments to history");
	if ((r = store_check_str(id, FS_STORE_ID_MAX, "document id", eb)) != FS_OK ||
	    (r = find_doc(st, id, &d, eb)) != FS_OK)
		return r;
	if (!d.found)
		return fs_err_set(eb, FS_E_NOTFOUND, "store: no such document");
	if ((r = node_of_rev(st, rev, &cur, eb)) != FS_OK)
		return r;
	return tree_history(&st->tree, cur, max, out, eb);
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

/* Copies the leaves l as revision ids into *v (grown as needed), winner first. */
static int public_leaves(const struct leaves *l, fs_store_leaf **v, size_t *cap, size_t *n,
                         fs_errbuf *eb)
{
	*n = 0;
	if (l->n > *cap) {
		fs_store_leaf *t = realloc(*v, l->n * sizeof(*t));
		if (t == NULL)
			return fs_err_set(eb, FS_E_NOMEM, "store: out of memory");
		*v = t;
		*cap = l->n;
	}
	for (size_t i = 0; i < l->n; i++) {
		snprintf((*v)[i].rev, FS_REV_MAX, "%lu-%s", l->v[i].gen, l->v[i].hash);
		(*v)[i].deleted = l->v[i].deleted;
	}
	*n = l->n;
	return FS_OK;
}

int fs_store_leaves_get(fs_store *st, const char *id, fs_store_leaves **out, fs_errbuf *eb)
{
	struct doc d;
	fs_store_leaves *l = NULL;
	size_t cap = 0;
	int r;

	fs_err_clear(eb);
	if (out)
		*out = NULL;
	if (st == NULL || out == NULL)
		return fs_err_set(eb, FS_E_ARG, "store: bad arguments to leaves");
	if ((r = store_check_str(id, FS_STORE_ID_MAX, "document id", eb)) != FS_OK ||
	    (r = find_doc(st, id, &d, eb)) != FS_OK)
		return r;
	if (!d.found)
		return fs_err_set(eb, FS_E_NOTFOUND, "store: no such document");
	if ((l = calloc(1, sizeof(*l))) == NULL)
		return fs_err_set(eb, FS_E_NOMEM, "store: out of memory");
	if ((r = public_leaves(&st->lv, &l->v, &cap, &l->n, eb)) != FS_OK) {
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
		struct doc d;
		fs_store_diff_entry *e = &res->v[res->n];
		unsigned long maxgen = 0;

		if ((r = store_check_str(q[i].id, FS_STORE_ID_MAX, "document id", eb)) != FS_OK)
			goto out;
		if ((q[i].revs == NULL && q[i].n) || q[i].n > FS_STORE_HISTORY_MAX) {
			r = fs_err_set(eb, FS_E_ARG, "store: bad revs_diff query");
			goto out;
		}
		if ((r = find_doc(st, q[i].id, &d, eb)) != FS_OK)
			goto out;
		for (size_t j = 0; j < q[i].n; j++) {
			unsigned long gen;
			char hash[FS_REV_MAX];
			if ((r = split_rev(q[i].revs[j], &gen, hash, eb)) != FS_OK)
				goto out;
			/* A revision known without its body counts as known, as in CouchDB. */
			if ((d.found && tree_find(&st->tree, gen, hash) >= 0) ||
			    has_str(e->missing, e->n_missing, q[i].revs[j]))
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
		if (!d.found)
			continue;
		if ((r = public_leaves(&st->lv, &lv, &lcap, &ln, eb)) != FS_OK)
			goto out;
		for (size_t k = 0; k < ln; k++) {
			if (st->lv.v[k].gen < maxgen &&
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

/* The columns walk_docs reads, in its order: the body column only as "is there one". */
#define WALK_COLS "id, seq, tree, body IS NOT NULL"

/*
 * Walks docs rows (WALK_COLS) from an ad hoc statement (not cached: cb may
 * call back into the store, so the tree is this walk's own too).
 */
static int walk_docs(fs_store *st, sqlite3_stmt *s, fs_store_change_cb cb, void *ctx,
                     uint64_t *last, fs_errbuf *eb)
{
	struct tree t = {0};
	struct leaves l = {0};
	fs_store_leaf *lv = NULL;
	size_t cap = 0, ln;
	int r = FS_OK, rc;
	char *id = NULL;

	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		fs_store_change c;
		free(id);
		if ((id = strdup((const char *)sqlite3_column_text(s, 0))) == NULL) {
			r = fs_err_set(eb, FS_E_NOMEM, "store: out of memory");
			goto out;
		}
		if ((r = read_tree(s, 2, sqlite3_column_int(s, 3), &t, &l, eb)) != FS_OK ||
		    (r = public_leaves(&l, &lv, &cap, &ln, eb)) != FS_OK)
			goto out;
		c.id = id;
		c.seq = (uint64_t)sqlite3_column_int64(s, 1);
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
	free(l.v);
	tree_free(&t);
	return r;
}

int fs_store_changes(fs_store *st, uint64_t since, size_t limit, fs_store_change_cb cb, void *ctx,
                     uint64_t *last_seq, fs_errbuf *eb)
{
	sqlite3_stmt *s = NULL;
	uint64_t last = since;
	int r, rc;

	fs_err_clear(eb);
	if (last_seq)
		*last_seq = since;
	if (st == NULL || cb == NULL)
		return fs_err_set(eb, FS_E_ARG, "store: bad arguments to changes");
	rc = sqlite3_prepare_v2(
	    st->db, "SELECT " WALK_COLS " FROM docs WHERE seq > ?1 ORDER BY seq LIMIT ?2", -1, &s,
	    NULL);
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
	                        "SELECT " WALK_COLS " FROM docs WHERE conflicted = 1 ORDER BY id",
	                        -1, &s, NULL);
	if (rc != SQLITE_OK)
		return store_err(st, rc, "read conflicts", eb);
	r = walk_docs(st, s, cb, ctx, NULL, eb);
	sqlite3_finalize(s);
	return r;
}

int store_prefix_range(const char *prefix, char hi[FS_STORE_PREFIX_MAX + 1], size_t *n,
                       const char *what, fs_errbuf *eb)
{
	*n = prefix ? strlen(prefix) : 0;
	if (*n == 0 || *n > FS_STORE_PREFIX_MAX)
		return fs_err_set(eb, FS_E_ARG, "store: bad prefix for %s", what);
	if ((unsigned char)prefix[*n - 1] == 0xff)
		return fs_err_set(eb, FS_E_ARG, "store: a prefix may not end in byte 0xff");
	memcpy(hi, prefix, *n + 1);
	hi[*n - 1] = (char)((unsigned char)hi[*n - 1] + 1);
	return FS_OK;
}

int fs_store_docs_prefix(fs_store *st, const char *prefix, fs_store_change_cb cb, void *ctx,
                         fs_errbuf *eb)
{
	char hi[FS_STORE_PREFIX_MAX + 1];
	sqlite3_stmt *s = NULL;
	size_t n = 0;
	int r, rc;

	fs_err_clear(eb);
	if (st == NULL || cb == NULL)
		return fs_err_set(eb, FS_E_ARG, "store: bad arguments to docs_prefix");
	if ((r = store_prefix_range(prefix, hi, &n, "docs_prefix", eb)) != FS_OK)
		return r;
	rc = sqlite3_prepare_v2(
	    st->db, "SELECT " WALK_COLS " FROM docs WHERE id >= ?1 AND id < ?2 ORDER BY id", -1, &s,
	    NULL);
	if (rc != SQLITE_OK)
		return store_err(st, rc, "read documents by prefix", eb);
	sqlite3_bind_text(s, 1, prefix, (int)n, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, hi, (int)n, SQLITE_STATIC);
	r = walk_docs(st, s, cb, ctx, NULL, eb);
	sqlite3_finalize(s);
	return r;
}

struct leafwalk {
	fs_store *st;
	fs_store_leaf_cb cb;
	void *ctx;
	fs_store_prefix_stats *stats;
	fs_errbuf *eb;
	int rc;
};

static int leafwalk_doc(void *ctx, const fs_store_change *c)
{
	struct leafwalk *w = ctx;

	w->stats->docs++;
	if (c->seq > w->stats->max_seq)
		w->stats->max_seq = c->seq;
	for (size_t i = 0; w->cb && i < c->n_leaves; i++) {
		fs_store_doc *d = NULL;
		int r;
		if (c->leaves[i].deleted)
			continue;
		r = fs_store_get(w->st, c->id, c->leaves[i].rev, &d, w->eb);
		if (r == FS_E_NOTFOUND) /* known by id only: its body never arrived */
			continue;
		if (r == FS_OK)
			r = w->cb(w->ctx, c->id, d->rev, d->seq, d->body, d->body_len);
		fs_store_doc_free(d);
		if (r != FS_OK) {
			w->rc = r;
			return r;
		}
	}
	return 0;
}

int fs_store_leaves_prefix(fs_store *st, const char *prefix, fs_store_leaf_cb cb, void *ctx,
                           fs_store_prefix_stats *stats, fs_errbuf *eb)
{
	fs_store_prefix_stats own;
	struct leafwalk w = {st, cb, ctx, stats ? stats : &own, eb, FS_OK};
	int r;

	memset(w.stats, 0, sizeof(*w.stats));
	r = fs_store_docs_prefix(st, prefix, leafwalk_doc, &w, eb);
	return w.rc != FS_OK ? w.rc : r;
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
	/* count(*) reads the smallest index; the deleted ones have their own (migration 3). */
	rc = sqlite3_prepare_v2(st->db,
	                        "SELECT (SELECT count(*) FROM docs),"
	                        " (SELECT count(*) FROM docs WHERE deleted = 1)",
	                        -1, &s, NULL);
	if (rc == SQLITE_OK && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		out->doc_del_count = (uint64_t)sqlite3_column_int64(s, 1);
		out->doc_count = (uint64_t)sqlite3_column_int64(s, 0) - out->doc_del_count;
		rc = SQLITE_DONE;
	}
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE) {
		memset(out, 0, sizeof(*out));
		return store_err(st, rc, "info", eb);
	}
	out->update_seq = st->seq;
	return FS_OK;
}
