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
	uint64_t seq;
	struct leaves *l; /* its leaves, the winner first (st->lv or the caller's) */
};

struct revrow {
	int64_t rid;
	int deleted, has_body;
	int64_t parent; /* 0: none (a root, or cut by stemming) */
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

/* ---- the leaves of a document, kept in its docs row ---- */

/* CouchDB's order: live before deleted, then the higher generation, then the higher hash. */
static int cmp_leaf(const void *a, const void *b)
{
	const struct leaf *x = a, *y = b;

	if (x->deleted != y->deleted)
		return x->deleted ? 1 : -1;
	if (x->gen != y->gen)
		return x->gen > y->gen ? -1 : 1;
	return strcmp(y->hash, x->hash);
}

static int leaf_push(struct leaves *l, int64_t rid, unsigned long gen, int deleted, const char *h,
                     size_t hlen, fs_errbuf *eb)
{
	struct leaf *x;

	if (l->n == l->cap) {
		size_t nc = l->cap ? l->cap * 2 : 4;
		struct leaf *t = realloc(l->v, nc * sizeof(*t));
		if (t == NULL)
			return fs_err_set(eb, FS_E_NOMEM, "store: out of memory");
		l->v = t;
		l->cap = nc;
	}
	x = &l->v[l->n++];
	x->rid = rid;
	x->gen = gen;
	x->deleted = deleted ? 1 : 0;
	memcpy(x->hash, h, hlen);
	x->hash[hlen] = '\0';
	return FS_OK;
}

static struct leaf *leaf_find(struct leaves *l, unsigned long gen, const char *hash)
{
	for (size_t i = 0; i < l->n; i++)
		if (l->v[i].gen == gen && strcmp(l->v[i].hash, hash) == 0)
			return &l->v[i];
	return NULL;
}

static struct leaf *leaf_by_rid(struct leaves *l, int64_t rid)
{
	for (size_t i = 0; i < l->n; i++)
		if (l->v[i].rid == rid)
			return &l->v[i];
	return NULL;
}

/* rid got a child, so it is no longer a leaf (the order is restored before writing). */
static void leaf_drop(struct leaves *l, int64_t rid)
{
	struct leaf *x = leaf_by_rid(l, rid);

	if (x)
		*x = l->v[--l->n];
}

static int corrupt_leaves(fs_errbuf *eb)
{
	return fs_err_set(eb, FS_E_STORE_CORRUPT, "store: a document's leaf list is damaged");
}

/*
 * Reads the leaves from columns c..c+4 of a docs row (winner_gen,
 * winner_hash, deleted, winner_rid, others) into l, the winner first.
 */
static int leaves_of_row(sqlite3_stmt *s, int c, struct leaves *l, fs_errbuf *eb)
{
	const char *h = (const char *)sqlite3_column_text(s, c + 1);
	const char *p = (const char *)sqlite3_column_text(s, c + 4);
	int64_t wrid = sqlite3_column_int64(s, c + 3);
	size_t hl = h ? strlen(h) : 0;
	int r;

	l->n = 0;
	if (wrid <= 0 || hl == 0 || hl > (size_t)STORE_HASH_MAX)
		return corrupt_leaves(eb);
	if ((r = leaf_push(l, wrid, (unsigned long)sqlite3_column_int64(s, c),
	                   sqlite3_column_int(s, c + 2), h, hl, eb)) != FS_OK)
		return r;
	while (p && *p) {
		char *e;
		long long rid = strtoll(p, &e, 10);
		unsigned long gen;
		int del;
		if (e == p || *e != ' ' || rid <= 0)
			return corrupt_leaves(eb);
		p = e + 1;
		gen = strtoul(p, &e, 10);
		if (e == p || *e != ' ' || (e[1] != '0' && e[1] != '1') || e[2] != ' ')
			return corrupt_leaves(eb);
		del = e[1] == '1';
		p = e + 3;
		hl = strcspn(p, " ");
		if (hl == 0 || hl > (size_t)STORE_HASH_MAX)
			return corrupt_leaves(eb);
		if ((r = leaf_push(l, rid, gen, del, p, hl, eb)) != FS_OK)
			return r;
		p += hl;
		if (*p == ' ')
			p++;
	}
	/* Rows from migration 4 list the others in no particular order. */
	if (l->n > 2)
		qsort(l->v + 1, l->n - 1, sizeof(*l->v), cmp_leaf);
	return FS_OK;
}

/* The docs row of id with its leaves in st->lv. */
static int find_doc(fs_store *st, const char *id, struct docrow *d, int *found, fs_errbuf *eb)
{
	sqlite3_stmt *s = store_stmt(st, S_DOC_BY_ID, eb);
	int rc, r = FS_OK;

	*found = 0;
	d->l = &st->lv;
	if (s == NULL)
		return fail_stmt(st, eb);
	sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		d->did = sqlite3_column_int64(s, 0);
		d->seq = (uint64_t)sqlite3_column_int64(s, 1);
		r = leaves_of_row(s, 2, d->l, eb);
		*found = r == FS_OK;
		rc = SQLITE_DONE;
	}
	sqlite3_reset(s);
	if (rc != SQLITE_DONE)
		return store_err(st, rc, "read document", eb);
	return r;
}

/*
 * Writes the document's winner, conflict flag, sequence and leaves (sorted
 * here, winner first) to its docs row.
 */
static int save_doc(fs_store *st, int64_t did, struct leaves *l, uint64_t seq, fs_errbuf *eb)
{
	sqlite3_stmt *s;
	char *others = NULL;
	size_t live = 0, len = 0;
	int r = FS_E_INTERNAL, rc;

	if (l->n == 0)
		return fs_err_set(eb, FS_E_INTERNAL, "store: a document without leaves");
	qsort(l->v, l->n, sizeof(*l->v), cmp_leaf);
	for (size_t i = 0; i < l->n; i++)
		live += !l->v[i].deleted;
	if (l->n > 1) {
		/* rid and gen take at most 20 digits each: "rid gen d hash " */
		size_t cap = (l->n - 1) * (20 + 1 + 20 + 3 + FS_REV_MAX + 1) + 1;
		if ((others = malloc(cap)) == NULL)
			return fs_err_set(eb, FS_E_NOMEM, "store: out of memory");
		for (size_t i = 1; i < l->n; i++)
			len += (size_t)snprintf(others + len, cap - len, "%s%lld %lu %d %s",
			                        i > 1 ? " " : "", (long long)l->v[i].rid,
			                        l->v[i].gen, l->v[i].deleted, l->v[i].hash);
	}
	if ((s = store_stmt(st, S_DOC_UPDATE, eb)) == NULL) {
		r = fail_stmt(st, eb);
		goto out;
	}
	sqlite3_bind_int64(s, 1, did);
	sqlite3_bind_int64(s, 2, (sqlite3_int64)l->v[0].gen);
	sqlite3_bind_text(s, 3, l->v[0].hash, -1, SQLITE_STATIC);
	sqlite3_bind_int(s, 4, l->v[0].deleted);
	sqlite3_bind_int(s, 5, live > 1);
	sqlite3_bind_int64(s, 6, (sqlite3_int64)seq);
	sqlite3_bind_int64(s, 7, l->v[0].rid);
	if (others)
		sqlite3_bind_text(s, 8, others, (int)len, SQLITE_STATIC);
	rc = sqlite3_step(s);
	sqlite3_reset(s);
	r = rc == SQLITE_DONE ? FS_OK : store_err(st, rc, "update document", eb);
out:
	free(others);
	return r;
}

/* Inserts a new document whose only leaf (and winner) is revs row rid; its did goes to *did. */
static int new_doc(fs_store *st, const char *id, unsigned long gen, const char *hash, int deleted,
                   uint64_t seq, int64_t rid, int64_t *did, fs_errbuf *eb)
{
	sqlite3_stmt *s = store_stmt(st, S_DOC_INSERT, eb);
	int rc;

	if (s == NULL)
		return fail_stmt(st, eb);
	sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, (sqlite3_int64)gen);
	sqlite3_bind_text(s, 3, hash, -1, SQLITE_STATIC);
	sqlite3_bind_int(s, 4, deleted ? 1 : 0);
	sqlite3_bind_int64(s, 5, (sqlite3_int64)seq);
	sqlite3_bind_int64(s, 6, rid);
	rc = sqlite3_step(s);
	sqlite3_reset(s);
	if (rc != SQLITE_DONE)
		return store_err(st, rc, "insert document", eb);
	*did = sqlite3_last_insert_rowid(st->db);
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
		r->deleted = sqlite3_column_int(s, 1);
		r->has_body = sqlite3_column_int(s, 3);
		r->parent = sqlite3_column_int64(s, 4);
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

/* Inserts revs row rid (from st->rid); with_body 0 makes a stub. */
static int insert_rev(fs_store *st, int64_t rid, int64_t did, unsigned long gen, const char *hash,
                      int64_t parent, int deleted, uint64_t seq, const uint8_t *body, size_t len,
                      int with_body, fs_errbuf *eb)
{
	sqlite3_stmt *s = store_stmt(st, S_REV_INSERT, eb);
	int rc;

	if (s == NULL)
		return fail_stmt(st, eb);
	sqlite3_bind_int64(s, 1, rid);
	sqlite3_bind_int64(s, 2, did);
	sqlite3_bind_int64(s, 3, (sqlite3_int64)gen);
	sqlite3_bind_text(s, 4, hash, -1, SQLITE_STATIC);
	if (parent)
		sqlite3_bind_int64(s, 5, parent);
	sqlite3_bind_int(s, 6, deleted ? 1 : 0);
	if (seq)
		sqlite3_bind_int64(s, 7, (sqlite3_int64)seq);
	if (with_body)
		store_bind_blob(s, 8, body, len);
	rc = sqlite3_step(s);
	sqlite3_reset(s);
	/* UNIQUE(did, gen, hash): a local edit that made a known revision again (409). */
	if (rc == SQLITE_CONSTRAINT_UNIQUE)
		return fs_err_set(eb, FS_E_STORE_CONFLICT, "store: the revision exists already");
	return rc == SQLITE_DONE ? FS_OK : store_err(st, rc, "insert revision", eb);
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
static int stem(fs_store *st, int64_t did, struct leaves *l, fs_errbuf *eb)
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
		v[n].leaf = leaf_by_rid(l, v[n].rid) != NULL;
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
		int64_t oid, rid;
		unsigned long gen;
	} rows[8];
	size_t n = 0;
	int rc, r, more = 0;

	if (s == NULL)
		return fail_stmt(st, eb);
	sqlite3_bind_int64(s, 1, did);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (n == sizeof(rows) / sizeof(rows[0])) {
			/* the rest waits for the next edit: keeping a row is always safe */
			more = 1;
			break;
		}
		rows[n].oid = sqlite3_column_int64(s, 0);
		rows[n].rid = sqlite3_column_int64(s, 1);
		rows[n].gen = (unsigned long)sqlite3_column_int64(s, 2);
		n++;
	}
	sqlite3_reset(s);
	if (rc != SQLITE_DONE && !more)
		return store_err(st, rc, "read outbox", eb);
	for (size_t i = 0; i < n; i++) {
		int64_t cur = from;
		/* Usually the row is the edit's base itself, and no revision is read. */
		while (cur && cur != rows[i].rid) {
			unsigned long g;
			if ((s = store_stmt(st, S_REV_BY_RID, eb)) == NULL)
				return fail_stmt(st, eb);
			sqlite3_bind_int64(s, 1, cur);
			if ((rc = sqlite3_step(s)) != SQLITE_ROW) {
				sqlite3_reset(s);
				if (rc != SQLITE_DONE)
					return store_err(st, rc, "read revision", eb);
				cur = 0;
				break;
			}
			/* Ancestors have lower generations: past the row's, it is not one. */
			g = (unsigned long)sqlite3_column_int64(s, 0);
			cur = g <= rows[i].gen ? 0 : sqlite3_column_int64(s, 2);
			sqlite3_reset(s);
		}
		if (cur &&
		    (r = run2(st, S_OUTBOX_DELETE, rows[i].oid, 0, 1, "outbox", eb)) != FS_OK)
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

int fs_store_put(fs_store *st, const char *id, const char *base_rev, const uint8_t *body,
                 size_t body_len, int deleted, unsigned flags, char new_rev[FS_REV_MAX],
                 fs_errbuf *eb)
{
	struct docrow d = {0};
	unsigned long bgen = 0, ngen;
	char bhash[FS_REV_MAX], nhash[FS_REV_MAX], parent[FS_REV_MAX] = "", rev[FS_REV_MAX];
	char base_copy[FS_REV_MAX];
	int found, r, in_tx = 0;
	int64_t prid = 0, rid;
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
	if ((r = find_doc(st, id, &d, &found, eb)) != FS_OK)
		goto out;
	if (base_rev == NULL) {
		if (found && !d.l->v[0].deleted) {
			r = fs_err_set(eb, FS_E_STORE_CONFLICT,
			               "store: document exists (no base revision given)");
			goto out;
		}
		if (found) { /* re-creating over a tombstone extends it, as CouchDB does */
			bgen = d.l->v[0].gen;
			snprintf(bhash, sizeof(bhash), "%s", d.l->v[0].hash);
		}
	}
	if (found && bgen) {
		/* The leaves are in the docs row: no revs lookup for the base. */
		struct leaf *p = leaf_find(d.l, bgen, bhash);
		if (p == NULL) {
			r = fs_err_set(eb, FS_E_STORE_CONFLICT,
			               "store: the base revision is not a current leaf");
			goto out;
		}
		prid = p->rid;
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
	rid = ++st->rid;
	seq = ++st->seq;
	if (!found && (r = new_doc(st, id, ngen, nhash, deleted, seq, rid, &d.did, eb)) != FS_OK)
		goto out;
	if ((r = insert_rev(st, rid, d.did, ngen, nhash, prid, deleted, seq, body, body_len, 1,
	                    eb)) != FS_OK)
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
		sqlite3_bind_int64(s, 4, (sqlite3_int64)seq);
		rc = sqlite3_step(s);
		sqlite3_reset(s);
		if (rc != SQLITE_DONE) {
			r = store_err(st, rc, "queue", eb);
			goto out;
		}
	}
	if (found) { /* a new document's row was written whole by new_doc */
		leaf_drop(d.l, prid);
		if ((r = leaf_push(d.l, rid, ngen, deleted, nhash, strlen(nhash), eb)) != FS_OK ||
		    (ngen > st->revs_limit && (r = stem(st, d.did, d.l, eb)) != FS_OK) ||
		    (r = save_doc(st, d.did, d.l, seq, eb)) != FS_OK)
			goto out;
	}
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
 * path itself and its winner the tip, so nothing needs to be read back.
 */
static int merge_new(fs_store *st, const fs_store_rev_in *v, size_t nh, fs_errbuf *eb)
{
	uint64_t seq = ++st->seq;
	int64_t did, prev = 0, rid = st->rid;
	int r;

	/* The path's rows take the next nh rids, oldest first, so the tip's is known now. */
	if ((r = new_doc(st, v->id, v->start, v->hashes[0], v->deleted, seq, rid + (int64_t)nh,
	                 &did, eb)) != FS_OK)
		return r;
	for (size_t k = nh; k-- > 0;) {
		rid = ++st->rid;
		if ((r = insert_rev(st, rid, did, v->start - k, v->hashes[k], prev,
		                    k == 0 && v->deleted, k == 0 ? seq : 0, v->body, v->body_len,
		                    k == 0, eb)) != FS_OK)
			return r;
		prev = rid;
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

	/* Only the newest revs_limit entries count, so a replay meets only known revisions. */
	size_t nh = v->n_hashes < st->revs_limit ? v->n_hashes : st->revs_limit;

	if ((r = find_doc(st, v->id, &d, &doc_found, eb)) != FS_OK)
		return r;
	if (!doc_found)
		return merge_new(st, v, nh, eb);
	/*
	 * A history longer than revs_limit whose window knows nothing may still
	 * reach our tree further back (a jump of many generations): then widen
	 * the window to that revision, as CouchDB merges the whole path before
	 * stemming, instead of starting a false conflict.
	 */
	if (v->n_hashes > nh) {
		for (size_t k = 0; k < v->n_hashes; k++) {
			if ((r = find_rev(st, d.did, v->start - k, v->hashes[k], &x, &found, eb)) !=
			    FS_OK)
				return r;
			if (found) {
				if (k >= nh)
					nh = k + 1;
				break;
			}
		}
	}
	for (size_t k = nh; k-- > 0;) {
		unsigned long gen = v->start - k;
		const char *h = v->hashes[k];
		int64_t rid;
		/* Look every revision up: a newer one may be known while an older one is not. */
		if ((r = find_rev(st, d.did, gen, h, &x, &found, eb)) != FS_OK)
			return r;
		if (found) {
			/* A root cut off by stemming or by a shorter history: link it. */
			if (prev && x.parent == 0) {
				if ((r = run2(st, S_REV_SET_PARENT, x.rid, prev, 2, "link", eb)) !=
				    FS_OK)
					return r;
				leaf_drop(d.l, prev);
				changed = 1;
			}
			if (k == 0 && !x.has_body) {
				sqlite3_stmt *s = store_stmt(st, S_REV_FILL, eb);
				struct leaf *lf = leaf_by_rid(d.l, x.rid);
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
				if (lf && lf->deleted != (v->deleted ? 1 : 0)) {
					lf->deleted = v->deleted ? 1 : 0;
					changed = 1;
				}
			}
			prev = x.rid;
			continue;
		}
		if (k == 0)
			seq = ++st->seq;
		rid = ++st->rid;
		if ((r = insert_rev(st, rid, d.did, gen, h, prev, k == 0 && v->deleted, seq,
		                    v->body, v->body_len, k == 0, eb)) != FS_OK)
			return r;
		if (prev)
			leaf_drop(d.l, prev);
		if (k == 0 && (r = leaf_push(d.l, rid, gen, v->deleted, h, strlen(h), eb)) != FS_OK)
			return r;
		prev = rid;
		changed = 1;
	}
	if (!changed)
		return FS_OK;
	if (seq == 0)
		seq = ++st->seq;
	if ((r = stem(st, d.did, d.l, eb)) != FS_OK)
		return r;
	return save_doc(st, d.did, d.l, seq, eb);
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
	if (rev == NULL) { /* the winner: its row is named in the docs row */
		*gen = d->l->v[0].gen;
		snprintf(hash, FS_REV_MAX, "%s", d->l->v[0].hash);
		memset(x, 0, sizeof(*x));
		x->rid = d->l->v[0].rid;
		return FS_OK;
	}
	if ((r = find_rev(st, d->did, *gen, hash, x, &found, eb)) != FS_OK)
		return r;
	if (!found)
		return fs_err_set(eb, FS_E_NOTFOUND, "store: no such revision");
	return FS_OK;
}

int fs_store_get(fs_store *st, const char *id, const char *rev, fs_store_doc **out, fs_errbuf *eb)
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
		snprintf((*v)[i].rev, FS_REV_MAX, "%lu-%.*s", l->v[i].gen, STORE_HASH_MAX,
		         l->v[i].hash);
		(*v)[i].deleted = l->v[i].deleted;
	}
	*n = l->n;
	return FS_OK;
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
	if ((r = public_leaves(d.l, &l->v, &cap, &l->n, eb)) != FS_OK) {
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
		if ((r = public_leaves(d.l, &lv, &lcap, &ln, eb)) != FS_OK)
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

/* The columns walk_docs reads, in its order. */
#define WALK_COLS "id, seq, winner_gen, winner_hash, deleted, winner_rid, others"

/*
 * Walks docs rows (WALK_COLS) from an ad hoc statement (not cached: cb may
 * call back into the store); the leaves come from the row itself.
 */
static int walk_docs(fs_store *st, sqlite3_stmt *s, fs_store_change_cb cb, void *ctx,
                     uint64_t *last, fs_errbuf *eb)
{
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
		if ((r = leaves_of_row(s, 2, &l, eb)) != FS_OK ||
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

int fs_store_docs_prefix(fs_store *st, const char *prefix, fs_store_change_cb cb, void *ctx,
                         fs_errbuf *eb)
{
	char hi[FS_STORE_PREFIX_MAX + 1];
	sqlite3_stmt *s = NULL;
	size_t n = prefix ? strlen(prefix) : 0;
	int r, rc;

	fs_err_clear(eb);
	if (st == NULL || cb == NULL || n == 0 || n > FS_STORE_PREFIX_MAX)
		return fs_err_set(eb, FS_E_ARG, "store: bad arguments to docs_prefix");
	/* The ids that start with prefix are the range [prefix, prefix with its
	 * last byte raised): the unique index on id answers it without a scan. */
	memcpy(hi, prefix, n + 1);
	if ((unsigned char)hi[n - 1] == 0xff)
		return fs_err_set(eb, FS_E_ARG, "store: a prefix may not end in byte 0xff");
	hi[n - 1] = (char)((unsigned char)hi[n - 1] + 1);
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
		if (r == FS_E_NOTFOUND) /* a stub: its body never arrived */
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
