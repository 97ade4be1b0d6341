/*
 * store/tree.c: a document's revision tree as it lives in its docs row
 * (schema version 5): every known revision with its parent, its flags, the
 * local sequence at which it arrived and where its body is, in a compact
 * binary form. A change to a document then reads and writes that one row,
 * where it used to write a row and an index entry per revision
 * (docs/store.md, "Schema").
 *
 * The form, all integers unsigned LEB128 varints:
 *   byte TREE_FORMAT, count
 *   then per node: flags byte, gen, parent + 1 (0: none), seq, bid,
 *   hash: 16 bytes when N_HEX (32 lowercase hex digits, the usual case),
 *         else a length byte and that many bytes.
 */
#include "store_int.h"

#include <stdlib.h>
#include <string.h>

#define TREE_FORMAT 1
#define HEX_HASH    32 /* characters of a hash stored as 16 bytes */
#define VARINT_MAX  10 /* bytes of a 64-bit varint */
/* Bytes one node takes at most: flags, four varints, a length byte and a hash. */
#define NODE_MAX_BYTES (1 + 4 * VARINT_MAX + 1 + STORE_HASH_MAX)

static int corrupt(fs_errbuf *eb)
{
	return fs_err_set(eb, FS_E_STORE_CORRUPT, "store: a document's revision tree is damaged");
}

static int is_hex_hash(const char *h, size_t n)
{
	if (n != HEX_HASH)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((h[i] >= '0' && h[i] <= '9') || (h[i] >= 'a' && h[i] <= 'f')))
			return 0;
	return 1;
}

/* What fs_crypto_rev_parse accepts as a hash character. */
static int hash_char_ok(unsigned char c)
{
	return c > ' ' && c <= '~' && c != '-';
}

static int get_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
	uint64_t x = 0;

	for (int shift = 0; shift < 64; shift += 7) {
		if (*p >= end)
			return -1;
		uint8_t b = *(*p)++;
		x |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80)) {
			*v = x;
			return 0;
		}
	}
	return -1;
}

static uint8_t *put_varint(uint8_t *p, uint64_t v)
{
	while (v >= 0x80) {
		*p++ = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	*p++ = (uint8_t)v;
	return p;
}

static int hexval(char c)
{
	return c <= '9' ? c - '0' : c - 'a' + 10;
}

static int tree_reserve(struct tree *t, size_t n, fs_errbuf *eb)
{
	struct node *v;
	size_t cap;

	if (n <= t->cap)
		return FS_OK;
	if (n > TREE_NODES_MAX)
		return fs_err_set(eb, FS_E_TOOBIG, "store: a revision tree over %d revisions",
		                  TREE_NODES_MAX);
	cap = t->cap ? t->cap : 8;
	while (cap < n)
		cap *= 2;
	if ((v = realloc(t->v, cap * sizeof(*v))) == NULL)
		return fs_err_set(eb, FS_E_NOMEM, "store: out of memory");
	t->v = v;
	t->cap = cap;
	return FS_OK;
}

void tree_free(struct tree *t)
{
	free(t->v);
	memset(t, 0, sizeof(*t));
}

int tree_decode(const uint8_t *p, size_t len, struct tree *t, fs_errbuf *eb)
{
	const uint8_t *end = p + len;
	uint64_t n, v;
	size_t inl = 0, leaves = 0;
	int r;

	t->n = 0;
	if (p == NULL || len < 2 || *p++ != TREE_FORMAT || get_varint(&p, end, &n) != 0 || n == 0 ||
	    n > TREE_NODES_MAX || n > len) /* every node takes bytes */
		return corrupt(eb);
	if ((r = tree_reserve(t, (size_t)n, eb)) != FS_OK)
		return r;
	for (size_t i = 0; i < n; i++) {
		struct node *x = &t->v[i];
		unsigned f;
		if (p >= end)
			return corrupt(eb);
		f = *p++;
		if (f & ~(unsigned)N_ALL)
			return corrupt(eb);
		x->flags = f & ~(unsigned)N_HEX;
		if (get_varint(&p, end, &v) != 0 || v == 0 || v > INT64_MAX)
			return corrupt(eb);
		x->gen = (unsigned long)v;
		if (get_varint(&p, end, &v) != 0 || v > n || v == i + 1)
			return corrupt(eb);
		x->parent = (long)v - 1;
		if (get_varint(&p, end, &v) != 0 || v > INT64_MAX)
			return corrupt(eb);
		x->seq = v;
		if (get_varint(&p, end, &v) != 0 || v > INT64_MAX)
			return corrupt(eb);
		x->bid = (int64_t)v;
		if (f & N_HEX) {
			static const char hex[] = "0123456789abcdef";
			if (end - p < HEX_HASH / 2)
				return corrupt(eb);
			for (int k = 0; k < HEX_HASH / 2; k++) {
				x->hash[2 * k] = hex[p[k] >> 4];
				x->hash[2 * k + 1] = hex[p[k] & 15];
			}
			x->hash[HEX_HASH] = '\0';
			p += HEX_HASH / 2;
		} else {
			size_t hl;
			if (p >= end)
				return corrupt(eb);
			hl = *p++;
			if (hl == 0 || hl > (size_t)STORE_HASH_MAX || (size_t)(end - p) < hl)
				return corrupt(eb);
			for (size_t k = 0; k < hl; k++)
				if (!hash_char_ok(p[k]))
					return corrupt(eb);
			memcpy(x->hash, p, hl);
			x->hash[hl] = '\0';
			p += hl;
		}
		/* A body is inline, in a bodies row, or absent (a revision known only by id). */
		if ((x->flags & N_INLINE) && (!(x->flags & N_BODY) || x->bid != 0))
			return corrupt(eb);
		if ((x->flags & N_BODY) && !(x->flags & N_INLINE) && x->bid <= 0)
			return corrupt(eb);
		if (!(x->flags & N_BODY) && x->bid != 0)
			return corrupt(eb);
		inl += (x->flags & N_INLINE) != 0;
		leaves += (x->flags & N_LEAF) != 0;
	}
	t->n = (size_t)n;
	/* Parents are older generations, so no walk up the tree can loop. */
	for (size_t i = 0; i < t->n; i++)
		if (t->v[i].parent >= 0 && t->v[t->v[i].parent].gen >= t->v[i].gen)
			return corrupt(eb);
	if (p != end || inl > 1 || leaves == 0)
		return corrupt(eb);
	return FS_OK;
}

int tree_encode(const struct tree *t, struct enc *e, fs_errbuf *eb)
{
	uint8_t *p;
	size_t want;

	if (t->n == 0 || t->n > TREE_NODES_MAX)
		return fs_err_set(eb, FS_E_INTERNAL, "store: a tree of %zu revisions", t->n);
	want = 1 + VARINT_MAX + t->n * (size_t)NODE_MAX_BYTES;
	if (want > e->cap) {
		uint8_t *b = realloc(e->p, want);
		if (b == NULL)
			return fs_err_set(eb, FS_E_NOMEM, "store: out of memory");
		e->p = b;
		e->cap = want;
	}
	p = e->p;
	*p++ = TREE_FORMAT;
	p = put_varint(p, t->n);
	for (size_t i = 0; i < t->n; i++) {
		const struct node *x = &t->v[i];
		size_t hl = strlen(x->hash);
		int hex = is_hex_hash(x->hash, hl);
		*p++ = (uint8_t)(x->flags | (hex ? N_HEX : 0));
		p = put_varint(p, x->gen);
		p = put_varint(p, (uint64_t)(x->parent + 1));
		p = put_varint(p, x->seq);
		p = put_varint(p, (uint64_t)x->bid);
		if (hex) {
			for (int k = 0; k < HEX_HASH / 2; k++)
				*p++ = (uint8_t)(hexval(x->hash[2 * k]) << 4 |
				                 hexval(x->hash[2 * k + 1]));
		} else {
			*p++ = (uint8_t)hl;
			memcpy(p, x->hash, hl);
			p += hl;
		}
	}
	e->len = (size_t)(p - e->p);
	return FS_OK;
}

long tree_find(const struct tree *t, unsigned long gen, const char *hash)
{
	for (size_t i = 0; i < t->n; i++)
		if (t->v[i].gen == gen && strcmp(t->v[i].hash, hash) == 0)
			return (long)i;
	return -1;
}

int tree_add(struct tree *t, unsigned long gen, const char *hash, long parent, unsigned flags,
             uint64_t seq, long *x, fs_errbuf *eb)
{
	struct node *n;
	size_t hl = strlen(hash);
	int r;

	*x = -1;
	if (hl == 0 || hl > (size_t)STORE_HASH_MAX)
		return fs_err_set(eb, FS_E_INPUT, "store: malformed revision id");
	if ((r = tree_reserve(t, t->n + 1, eb)) != FS_OK)
		return r;
	n = &t->v[t->n];
	memset(n, 0, sizeof(*n));
	n->gen = gen;
	memcpy(n->hash, hash, hl + 1);
	n->parent = parent;
	n->flags = flags;
	n->seq = seq;
	*x = (long)t->n++;
	return FS_OK;
}

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

int tree_leaves(const struct tree *t, struct leaves *l, fs_errbuf *eb)
{
	l->n = 0;
	for (size_t i = 0; i < t->n; i++) {
		const struct node *x = &t->v[i];
		if (!(x->flags & N_LEAF))
			continue;
		if (l->n == l->cap) {
			size_t nc = l->cap ? l->cap * 2 : 8;
			struct leaf *v = realloc(l->v, nc * sizeof(*v));
			if (v == NULL)
				return fs_err_set(eb, FS_E_NOMEM, "store: out of memory");
			l->v = v;
			l->cap = nc;
		}
		l->v[l->n++] = (struct leaf){.i = (long)i,
		                             .gen = x->gen,
		                             .deleted = (x->flags & N_DELETED) != 0,
		                             .hash = x->hash};
	}
	if (l->n == 0)
		return fs_err_set(eb, FS_E_STORE_CORRUPT, "store: a document without leaves");
	if (l->n > 1)
		qsort(l->v, l->n, sizeof(*l->v), cmp_leaf);
	return FS_OK;
}
