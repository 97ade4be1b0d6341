/*
 * tests/store/test_model.c: random revision trees, delivered as remote
 * revisions in random orders, random batches, with truncated histories and
 * duplicates, must converge to the trees, leaves and winners of a simple
 * in-memory model; replaying everything changes nothing. Also: no
 * plaintext on disk when bodies are ciphertext.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* cmocka needs the four headers above first. */
#include <cmocka.h>

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store.h"
#include "util.h"

#define DOCS   12
#define NODES  14
#define ROUNDS 25

struct mnode {
	int parent; /* -1 for the root */
	unsigned long gen;
	char hash[16];
	int deleted;
	char body[24];
	int children;
};

struct mdoc {
	char id[16];
	int n;
	struct mnode v[NODES];
};

struct delivery {
	int doc, node;
	size_t depth; /* entries of history sent */
};

static unsigned rs;

static int rnd(int n)
{
	return (int)(rand_r(&rs) % (unsigned)n);
}

static void make_docs(struct mdoc *docs)
{
	for (int d = 0; d < DOCS; d++) {
		struct mdoc *m = &docs[d];
		snprintf(m->id, sizeof(m->id), "doc%d", d);
		m->n = 1 + rnd(NODES);
		for (int i = 0; i < m->n; i++) {
			struct mnode *x = &m->v[i];
			x->parent = i == 0 ? -1 : rnd(i);
			x->gen = i == 0 ? 1 : m->v[x->parent].gen + 1;
			/* Short random hashes make same-generation ties common. */
			snprintf(x->hash, sizeof(x->hash), "%c%c%d", 'a' + rnd(6), 'a' + rnd(6), i);
			x->deleted = rnd(5) == 0;
			snprintf(x->body, sizeof(x->body), "body-%d-%d", d, i);
			x->children = 0;
			if (i)
				m->v[x->parent].children++;
		}
	}
}

static int path_of(const struct mdoc *m, int node, const char **hashes)
{
	int n = 0;

	for (int x = node; x >= 0; x = m->v[x].parent)
		hashes[n++] = m->v[x].hash;
	return n;
}

/* CouchDB's rule on the model: live before deleted, then generation, then hash. */
static int better(const struct mnode *a, const struct mnode *b)
{
	if (a->deleted != b->deleted)
		return !a->deleted;
	if (a->gen != b->gen)
		return a->gen > b->gen;
	return strcmp(a->hash, b->hash) > 0;
}

static void deliver(fs_store *st, const struct mdoc *docs, struct delivery *dl, size_t n)
{
	fs_store_rev_in in[64];
	const char *hs[64][NODES];
	fs_errbuf eb;
	size_t i = 0;

	/* Shuffle, then cut into batches of random size. */
	for (size_t k = n; k > 1; k--) {
		size_t j = (size_t)rnd((int)k);
		struct delivery t = dl[k - 1];
		dl[k - 1] = dl[j];
		dl[j] = t;
	}
	while (i < n) {
		size_t b = 1 + (size_t)rnd(20), k;
		for (k = 0; k < b && i < n; k++, i++) {
			const struct mdoc *m = &docs[dl[i].doc];
			const struct mnode *x = &m->v[dl[i].node];
			int full = path_of(m, dl[i].node, hs[k]);
			in[k] = (fs_store_rev_in){
			    .id = m->id,
			    .start = x->gen,
			    .hashes = hs[k],
			    .n_hashes = dl[i].depth < (size_t)full ? dl[i].depth : (size_t)full,
			    .deleted = x->deleted,
			    .body = (const uint8_t *)x->body,
			    .body_len = strlen(x->body)};
		}
		char seq[24];
		snprintf(seq, sizeof(seq), "%zu", i);
		assert_int_equal(fs_store_put_remote(st, in, k, "srv", seq, &eb), FS_OK);
	}
}

static void check(fs_store *st, const struct mdoc *docs)
{
	fs_errbuf eb;

	for (int d = 0; d < DOCS; d++) {
		const struct mdoc *m = &docs[d];
		fs_store_leaves *l = NULL;
		int nleaves = 0, best = -1;
		char rev[FS_REV_MAX];

		assert_int_equal(fs_store_leaves_get(st, m->id, &l, &eb), FS_OK);
		for (int i = 0; i < m->n; i++) {
			const struct mnode *x = &m->v[i];
			fs_store_doc *g = NULL;
			snprintf(rev, sizeof(rev), "%lu-%s", x->gen, x->hash);
			/* Every revision arrived as a tip at least once: its body is there. */
			assert_int_equal(fs_store_get(st, m->id, rev, &g, &eb), FS_OK);
			assert_int_equal(g->body_len, strlen(x->body));
			assert_memory_equal(g->body, x->body, g->body_len);
			assert_int_equal(g->deleted, x->deleted);
			fs_store_doc_free(g);
			if (x->children)
				continue;
			nleaves++;
			if (best < 0 || better(x, &m->v[best]))
				best = i;
			int found = 0;
			for (size_t j = 0; j < l->n; j++)
				if (strcmp(l->v[j].rev, rev) == 0 && l->v[j].deleted == x->deleted)
					found = 1;
			assert_true(found);
			/* The whole path back to the root. */
			fs_store_history *h = NULL;
			const char *hs[NODES];
			int np = path_of(m, i, hs);
			assert_int_equal(fs_store_history_get(st, m->id, rev, 0, &h, &eb), FS_OK);
			assert_int_equal(h->start, x->gen);
			assert_int_equal(h->n, (size_t)np);
			for (int k = 0; k < np; k++)
				assert_string_equal(h->hashes[k], hs[k]);
			fs_store_history_free(h);
		}
		assert_int_equal(l->n, (size_t)nleaves);
		snprintf(rev, sizeof(rev), "%lu-%s", m->v[best].gen, m->v[best].hash);
		assert_string_equal(l->v[0].rev, rev);
		fs_store_leaves_free(l);
	}
}

struct feed {
	char text[8192];
	size_t len;
};

static int feed_cb(void *ctx, const fs_store_change *c)
{
	struct feed *f = ctx;
	int n = snprintf(f->text + f->len, sizeof(f->text) - f->len, "%s %s %d %zu;", c->id,
	                 c->winner, c->deleted, c->n_leaves);
	if (n > 0 && (size_t)n < sizeof(f->text) - f->len)
		f->len += (size_t)n;
	return 0;
}

static void test_converge(void **state)
{
	(void)state;
	const char *senv = getenv("FS_MODEL_SEED");
	unsigned seed = senv ? (unsigned)strtoul(senv, NULL, 10) : (unsigned)time(NULL);
	static struct mdoc docs[DOCS];
	static struct delivery dl[DOCS * NODES * 3];
	fs_errbuf eb;

	print_message("model test: FS_MODEL_SEED=%u\n", seed);
	rs = seed;
	for (int round = 0; round < ROUNDS; round++) {
		char *dir = tdir_new(), *p1 = tpath(dir, "a.db"), *p2 = tpath(dir, "b.db");
		fs_store *a = NULL, *b = NULL;
		size_t n = 0;

		make_docs(docs);
		for (int d = 0; d < DOCS; d++)
			for (int i = 0; i < docs[d].n; i++) {
				dl[n++] = (struct delivery){d, i, NODES}; /* full history */
				if (rnd(2)) /* a truncated one, like a stemmed peer's */
					dl[n++] = (struct delivery){d, i, 1 + (size_t)rnd(3)};
				if (rnd(4) == 0) /* a duplicate */
					dl[n++] = (struct delivery){d, i, NODES};
			}
		assert_int_equal(fs_store_open(p1, NULL, &a, &eb), FS_OK);
		assert_int_equal(fs_store_open(p2, NULL, &b, &eb), FS_OK);
		deliver(a, docs, dl, n);
		deliver(b, docs, dl, n); /* another order, other batches */
		check(a, docs);
		check(b, docs);

		/* Both stores tell the same story through the changes feed. */
		struct feed fa = {.len = 0}, fb = {.len = 0};
		fs_store_info i1, i2;
		assert_int_equal(fs_store_conflicts(a, feed_cb, &fa, &eb), FS_OK);
		assert_int_equal(fs_store_conflicts(b, feed_cb, &fb, &eb), FS_OK);
		assert_string_equal(fa.text, fb.text);

		/* Replaying everything, in yet another order, changes nothing. */
		assert_int_equal(fs_store_info_get(a, &i1, &eb), FS_OK);
		deliver(a, docs, dl, n);
		assert_int_equal(fs_store_info_get(a, &i2, &eb), FS_OK);
		assert_int_equal(i1.update_seq, i2.update_seq);
		assert_int_equal(i1.doc_count, i2.doc_count);
		check(a, docs);
		assert_int_equal(fs_store_check(a, &eb), FS_OK);

		fs_store_close(a);
		fs_store_close(b);
		free(p1);
		free(p2);
		tdir_free(dir);
	}
}

/* The marker in every plaintext must appear in none of the store's files. */
static void test_no_plaintext(void **state)
{
	(void)state;
	static const char marker[] = "CLIENT-NAME-MARKER-7f3a";
	unsigned char key[crypto_aead_xchacha20poly1305_ietf_KEYBYTES];
	unsigned char nonce[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES];
	char plain[256], rev[FS_REV_MAX], prev[FS_REV_MAX] = "", id[32];
	unsigned char ct[sizeof(plain) + sizeof(nonce) + crypto_aead_xchacha20poly1305_ietf_ABYTES];
	unsigned long long ctlen;
	char *dir = tdir_new(), *p = tpath(dir, "s.db");
	fs_store *st = NULL;
	fs_errbuf eb;

	crypto_aead_xchacha20poly1305_ietf_keygen(key);
	assert_int_equal(fs_store_open(p, NULL, &st, &eb), FS_OK);
	for (int i = 0; i < 200; i++) {
		int n = snprintf(plain, sizeof(plain), "{\"note\":\"visit %d with %s at home\"}", i,
		                 marker);
		randombytes_buf(nonce, sizeof(nonce));
		memcpy(ct, nonce, sizeof(nonce));
		assert_int_equal(crypto_aead_xchacha20poly1305_ietf_encrypt(
		                     ct + sizeof(nonce), &ctlen, (const unsigned char *)plain,
		                     (unsigned long long)n, NULL, 0, NULL, nonce, key),
		                 0);
		snprintf(id, sizeof(id), "doc%d", i % 20);
		fs_store_doc *d = NULL;
		const char *base = NULL;
		if (fs_store_get(st, id, NULL, &d, &eb) == FS_OK) {
			snprintf(prev, sizeof(prev), "%s", d->rev);
			base = prev;
		}
		fs_store_doc_free(d);
		assert_int_equal(fs_store_put_local(st, id, base, ct, sizeof(nonce) + (size_t)ctlen,
		                                    0, rev, &eb),
		                 FS_OK);
		/* And as pulled revisions. */
		const char *h[] = {"abcdef"};
		snprintf(id, sizeof(id), "pulled%d", i);
		fs_store_rev_in in = {.id = id,
		                      .start = 1,
		                      .hashes = h,
		                      .n_hashes = 1,
		                      .body = ct,
		                      .body_len = sizeof(nonce) + (size_t)ctlen};
		assert_int_equal(fs_store_put_remote(st, &in, 1, "srv", "1", &eb), FS_OK);
	}
	/* Look while the WAL and SHM files still exist, and again after close. */
	static const char *const sfx[] = {"", "-wal", "-shm"};
	for (int pass = 0; pass < 2; pass++) {
		int seen = 0;
		for (size_t i = 0; i < sizeof(sfx) / sizeof(sfx[0]); i++) {
			char f[4200];
			size_t n;
			snprintf(f, sizeof(f), "%s%s", p, sfx[i]);
			unsigned char *b = slurp(f, &n);
			if (b == NULL)
				continue;
			seen++;
			assert_null(memmem(b, n, marker, strlen(marker)));
			assert_null(memmem(b, n, "visit 1", 7));
			free(b);
		}
		assert_true(seen >= 1);
		if (pass == 0) {
			assert_true(seen == 3);
			fs_store_close(st);
			st = NULL;
		}
	}
	sodium_memzero(key, sizeof(key));
	free(p);
	tdir_free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_converge),
	    cmocka_unit_test(test_no_plaintext),
	};
	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
