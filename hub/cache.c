/*
 * hub/cache.c: served revisions, kept as the JSON the hub sends ({"_id",
 * "_rev","_revisions",...}), per database and bounded in bytes. Many
 * devices pull the same revisions; with this only the first pays for the
 * store reads. Entries are added and dropped under the database's mutex
 * (a write drops every entry of the documents it touched, so a stemmed or
 * extended history is never served stale); lookups need only the cache's
 * own lock. Ids are chosen by clients, so buckets come from a keyed hash
 * (SipHash, crypto_shorthash) with a random key per cache: nobody outside
 * can pick ids that all land in one chain.
 */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "hub_int.h"

#define BUCKETS 16384u

typedef struct ent {
	struct ent *next;          /* bucket chain */
	struct ent *older, *newer; /* eviction order */
	size_t id_len;
	int leaf; /* a leaf when cached: still one, as a write drops the entry */
	char rev[FS_REV_MAX];
	size_t len;
	char *json; /* after id, in the same allocation */
	char id[];  /* id_len bytes + NUL, then the JSON */
} ent;

struct hub_cache {
	pthread_mutex_t mu;
	size_t bytes, max_bytes;
	ent *buckets[BUCKETS];
	ent *oldest, *newest;
	uint64_t hits, misses;
	unsigned char key[crypto_shorthash_KEYBYTES]; /* random, never leaves the process */
};

int hub_cache_new(size_t max_bytes, hub_cache **out)
{
	hub_cache *c = calloc(1, sizeof(*c));
	*out = NULL;
	if (c == NULL)
		return FS_E_NOMEM;
	if (sodium_init() < 0) {
		free(c);
		return FS_E_CRYPTO_INIT;
	}
	randombytes_buf(c->key, sizeof(c->key));
	pthread_mutex_init(&c->mu, NULL);
	c->max_bytes = max_bytes;
	*out = c;
	return FS_OK;
}

static unsigned bucket(const hub_cache *c, const char *id, size_t n)
{
	unsigned char h[crypto_shorthash_BYTES];
	uint64_t x = 0;
	crypto_shorthash(h, (const unsigned char *)id, n, c->key);
	for (size_t i = 0; i < sizeof(x) && i < sizeof(h); i++)
		x = x << 8 | h[i];
	return (unsigned)(x % BUCKETS);
}

static void unlink_ent(hub_cache *c, ent *e, ent **pp)
{
	*pp = e->next;
	if (e->older)
		e->older->newer = e->newer;
	else
		c->oldest = e->newer;
	if (e->newer)
		e->newer->older = e->older;
	else
		c->newest = e->older;
	c->bytes -= e->len + e->id_len + sizeof(*e);
	free(e);
}

void hub_cache_free(hub_cache *c)
{
	if (c == NULL)
		return;
	for (unsigned b = 0; b < BUCKETS; b++)
		while (c->buckets[b])
			unlink_ent(c, c->buckets[b], &c->buckets[b]);
	sodium_memzero(c->key, sizeof(c->key));
	pthread_mutex_destroy(&c->mu);
	free(c);
}

int hub_cache_get(hub_cache *c, const char *id, const char *rev, int need_leaf, hub_buf *out)
{
	size_t n = strlen(id);
	int hit = 0;
	unsigned b;
	if (c == NULL || c->max_bytes == 0)
		return 0;
	b = bucket(c, id, n);
	pthread_mutex_lock(&c->mu);
	for (ent *e = c->buckets[b]; e; e = e->next) {
		if (e->id_len == n && memcmp(e->id, id, n) == 0 && strcmp(e->rev, rev) == 0 &&
		    (e->leaf || !need_leaf)) {
			hub_buf_add(out, e->json, e->len);
			hit = 1;
			break;
		}
	}
	if (hit)
		c->hits++;
	else
		c->misses++;
	pthread_mutex_unlock(&c->mu);
	return hit;
}

void hub_cache_put(hub_cache *c, const char *id, const char *rev, const char *json, size_t len,
                   int leaf)
{
	size_t n = strlen(id);
	ent *e;
	if (c == NULL || len + n + sizeof(*e) > c->max_bytes / 8)
		return;
	/* One allocation per entry: a push warms a thousand of them per batch. */
	if ((e = malloc(sizeof(*e) + n + 1 + len)) == NULL)
		return; /* the cache is an optimisation: out of memory just skips it */
	e->next = e->older = e->newer = NULL;
	memcpy(e->id, id, n);
	e->id[n] = '\0';
	e->json = e->id + n + 1;
	e->id_len = n;
	snprintf(e->rev, sizeof(e->rev), "%s", rev);
	memcpy(e->json, json, len);
	e->len = len;
	e->leaf = leaf;
	unsigned b = bucket(c, id, n); /* the key never changes: no lock needed */
	pthread_mutex_lock(&c->mu);
	for (ent **pp = &c->buckets[b]; *pp; pp = &(*pp)->next) {
		if ((*pp)->id_len == n && memcmp((*pp)->id, id, n) == 0 &&
		    strcmp((*pp)->rev, rev) == 0) {
			unlink_ent(c, *pp, pp);
			break;
		}
	}
	e->next = c->buckets[b];
	c->buckets[b] = e;
	e->older = c->newest;
	if (c->newest)
		c->newest->newer = e;
	else
		c->oldest = e;
	c->newest = e;
	c->bytes += len + n + sizeof(*e);
	while (c->bytes > c->max_bytes && c->oldest) {
		ent *old = c->oldest;
		ent **pp = &c->buckets[bucket(c, old->id, old->id_len)];
		while (*pp != old)
			pp = &(*pp)->next;
		unlink_ent(c, old, pp);
	}
	pthread_mutex_unlock(&c->mu);
}

void hub_cache_drop(hub_cache *c, const char *id)
{
	size_t n = strlen(id);
	unsigned b;
	if (c == NULL)
		return;
	b = bucket(c, id, n);
	pthread_mutex_lock(&c->mu);
	for (ent **pp = &c->buckets[b]; *pp;) {
		if ((*pp)->id_len == n && memcmp((*pp)->id, id, n) == 0)
			unlink_ent(c, *pp, pp);
		else
			pp = &(*pp)->next;
	}
	pthread_mutex_unlock(&c->mu);
}
