/*
 * store/migrate.c: the part of migration 5 that SQL cannot do: each
 * document's revs rows (version 4: a row per revision, the leaves in the
 * docs row) become the revision tree of its new row (store/tree.c). Bodies
 * keep their rid as their bodies key, so a node names its body by the rid
 * it had. Runs inside the migration's transaction: a failure leaves the
 * store at version 4.
 */
#include "store_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The old rid of each node, in the tree's order (ascending: read ORDER BY rid). */
struct rids {
	int64_t *rid, *parent;
	size_t cap;
};

static long index_of(const struct rids *r, size_t n, int64_t rid)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (r->rid[mid] == rid)
			return (long)mid;
		if (r->rid[mid] < rid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

static int grow(struct rids *r, size_t n, fs_errbuf *eb)
{
	int64_t *a, *b;
	size_t cap;

	if (n < r->cap)
		return FS_OK;
	cap = r->cap ? r->cap * 2 : 64;
	if ((a = realloc(r->rid, cap * sizeof(*a))) == NULL)
		return fs_err_set(eb, FS_E_NOMEM, "store: out of memory");
	r->rid = a;
	if ((b = realloc(r->parent, cap * sizeof(*b))) == NULL)
		return fs_err_set(eb, FS_E_NOMEM, "store: out of memory");
	r->parent = b;
	r->cap = cap;
	return FS_OK;
}

static int damaged(const char *id, fs_errbuf *eb)
{
	return fs_err_set(eb, FS_E_STORE_CORRUPT,
	                  "store: migration 5: the revisions of document %.100s are damaged",
	                  id ? id : "?");
}

/* Marks the leaf of old rid as N_LEAF. */
static int mark_leaf(struct tree *t, const struct rids *r, int64_t rid)
{
	long x = index_of(r, t->n, rid);

	if (x < 0)
		return -1;
	t->v[x].flags |= N_LEAF;
	return 0;
}

/* The version 4 `others` list: "rid gen deleted hash" groups separated by spaces. */
static int mark_others(struct tree *t, const struct rids *r, const char *p)
{
	while (p && *p) {
		char *e;
		long long rid = strtoll(p, &e, 10);
		if (e == p || *e != ' ' || rid <= 0 || mark_leaf(t, r, rid) != 0)
			return -1;
		p = e + 1;
		(void)strtoul(p, &e, 10);
		if (e == p || *e != ' ' || (e[1] != '0' && e[1] != '1') || e[2] != ' ')
			return -1;
		p = e + 3;
		p += strcspn(p, " ");
		if (*p == ' ')
			p++;
	}
	return 0;
}

/* Builds the tree of document did from its revs rows into t. */
static int build(sqlite3 *db, sqlite3_stmt *revs, int64_t did, const char *id, struct tree *t,
                 struct rids *r, fs_errbuf *eb)
{
	int rc, ret;

	t->n = 0;
	sqlite3_reset(revs);
	sqlite3_bind_int64(revs, 1, did);
	while ((rc = sqlite3_step(revs)) == SQLITE_ROW) {
		const char *h = (const char *)sqlite3_column_text(revs, 2);
		sqlite3_int64 gen = sqlite3_column_int64(revs, 1);
		int body = sqlite3_column_int(revs, 6);
		long x;
		if (h == NULL || gen <= 0)
			return damaged(id, eb);
		for (const char *c = h; *c; c++)
			if (*c <= ' ' || *c > '~' || *c == '-')
				return damaged(id, eb);
		if ((ret = grow(r, t->n, eb)) != FS_OK)
			return ret;
		ret =
		    tree_add(t, (unsigned long)gen, h, -1,
		             (sqlite3_column_int(revs, 4) ? N_DELETED : 0u) | (body ? N_BODY : 0u),
		             (uint64_t)sqlite3_column_int64(revs, 5), &x, eb);
		if (ret == FS_E_INPUT)
			return damaged(id, eb);
		if (ret != FS_OK)
			return ret;
		r->rid[x] = sqlite3_column_int64(revs, 0);
		r->parent[x] = sqlite3_column_int64(revs, 3);
		t->v[x].bid = body ? r->rid[x] : 0;
	}
	if (rc != SQLITE_DONE)
		return store_db_err(db, rc, "migration 5", eb);
	if (t->n == 0)
		return damaged(id, eb);
	/* A parent that stemming removed is a cut: the node becomes a root, as before. */
	for (size_t i = 0; i < t->n; i++) {
		long p = r->parent[i] ? index_of(r, t->n, r->parent[i]) : -1;
		if (p >= 0 && t->v[p].gen >= t->v[i].gen)
			return damaged(id, eb);
		t->v[i].parent = p;
	}
	return FS_OK;
}

int store_migrate_trees(sqlite3 *db, fs_errbuf *eb)
{
	sqlite3_stmt *docs = NULL, *revs = NULL, *ins = NULL;
	struct tree t = {0};
	struct leaves l = {0};
	struct enc e = {0};
	struct rids r = {0};
	int ret = FS_OK, rc;

	if ((rc = sqlite3_prepare_v2(db, "SELECT did, id, seq, winner_rid, others FROM docs", -1,
	                             &docs, NULL)) != SQLITE_OK ||
	    (rc = sqlite3_prepare_v2(db,
	                             "SELECT rid, gen, hash, parent, deleted, coalesce(seq, 0),"
	                             " body IS NOT NULL FROM revs WHERE did = ?1 ORDER BY rid",
	                             -1, &revs, NULL)) != SQLITE_OK ||
	    (rc = sqlite3_prepare_v2(db,
	                             "INSERT INTO docs5(seq, id, deleted, conflicted, tree)"
	                             " VALUES (?1, ?2, ?3, ?4, ?5)",
	                             -1, &ins, NULL)) != SQLITE_OK) {
		ret = store_db_err(db, rc, "migration 5", eb);
		goto out;
	}
	while ((rc = sqlite3_step(docs)) == SQLITE_ROW) {
		const char *id = (const char *)sqlite3_column_text(docs, 1);
		size_t live = 0;
		if ((ret = build(db, revs, sqlite3_column_int64(docs, 0), id, &t, &r, eb)) != FS_OK)
			goto out;
		if (mark_leaf(&t, &r, sqlite3_column_int64(docs, 3)) != 0 ||
		    mark_others(&t, &r, (const char *)sqlite3_column_text(docs, 4)) != 0) {
			ret = damaged(id, eb);
			goto out;
		}
		if ((ret = tree_leaves(&t, &l, eb)) != FS_OK ||
		    (ret = tree_encode(&t, &e, eb)) != FS_OK)
			goto out;
		for (size_t i = 0; i < l.n; i++)
			live += !l.v[i].deleted;
		sqlite3_reset(ins);
		sqlite3_bind_int64(ins, 1, sqlite3_column_int64(docs, 2));
		sqlite3_bind_text(ins, 2, id, -1, SQLITE_STATIC);
		sqlite3_bind_int(ins, 3, l.v[0].deleted);
		sqlite3_bind_int(ins, 4, live > 1);
		sqlite3_bind_blob64(ins, 5, e.p, e.len, SQLITE_STATIC);
		if ((rc = sqlite3_step(ins)) != SQLITE_DONE) {
			ret = store_db_err(db, rc, "migration 5", eb);
			goto out;
		}
	}
	if (rc != SQLITE_DONE)
		ret = store_db_err(db, rc, "migration 5", eb);
out:
	sqlite3_finalize(docs);
	sqlite3_finalize(revs);
	sqlite3_finalize(ins);
	tree_free(&t);
	free(l.v);
	free(e.p);
	free(r.rid);
	free(r.parent);
	return ret;
}
