/*
 * hub/auth.c: who may do what. Device tokens ("<id>.<secret>") and
 * basic-auth users live in DIR/hub.db with Argon2id hashes only; a verified
 * credential is remembered by a BLAKE2b digest (over the row's hash too, so
 * a new password or a revocation is seen at once), so only the first
 * request of a device pays for Argon2id. An unknown name pays for it too
 * (against a dummy hash), so the time of a refusal does not tell which
 * user names or token ids exist. A check runs in two steps so that the
 * server can run the slow one off its request threads.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>
#include <sqlite3.h>

#include "hub_int.h"

#define CACHE_SLOTS     1024
#define SECRET_BYTES    24
#define TOKEN_OPS       crypto_pwhash_OPSLIMIT_INTERACTIVE
#define TOKEN_MEM       (16u << 20) /* random 192-bit secrets: the hash is defence in depth */
#define USER_OPS        crypto_pwhash_OPSLIMIT_INTERACTIVE
#define USER_MEM        crypto_pwhash_MEMLIMIT_INTERACTIVE
#define VERIFY_PARALLEL 2 /* Argon2id runs at once (memory and a 2-core box) */

struct hub_auth {
	sqlite3 *db;
	pthread_mutex_t mu;
	pthread_cond_t slot_free;
	unsigned verifying;
	uint64_t verified; /* Argon2id runs, for tests */
	unsigned char cache[CACHE_SLOTS][crypto_generichash_BYTES];
	unsigned char used[CACHE_SLOTS];
	size_t next;
	pthread_mutex_t dummy_mu;              /* makes the dummies once */
	char dummy[2][crypto_pwhash_STRBYTES]; /* [0] tokens, [1] users; "" until made */
};

/* A credential between hub_auth_begin and hub_auth_end. */
struct hub_cred {
	char kind[2]; /* "t" or "u" */
	char id[FS_HUB_NAME_MAX + 1];
	char secret[FS_HUB_PASSWORD_MAX + 1];
	char *hash, *dbs; /* the row's; NULL for an unknown or revoked principal */
	int admin;
	int known; /* remembered from an earlier success: no Argon2id */
	int ok;    /* the verification's result */
	unsigned char digest[crypto_generichash_BYTES];
};

static const char schema[] =
    "PRAGMA journal_mode=WAL;"
    "CREATE TABLE IF NOT EXISTS principals("
    " kind TEXT NOT NULL, id TEXT NOT NULL, name TEXT NOT NULL, hash TEXT NOT NULL,"
    " dbs TEXT NOT NULL, admin INTEGER NOT NULL, revoked INTEGER NOT NULL DEFAULT 0,"
    " created INTEGER NOT NULL, PRIMARY KEY(kind, id));"
    "CREATE TABLE IF NOT EXISTS meta(k TEXT PRIMARY KEY, v TEXT NOT NULL);"
    /* Which token uploaded each device's key document (hub/team.c). */
    "CREATE TABLE IF NOT EXISTS device_tokens(db TEXT NOT NULL, device TEXT NOT NULL,"
    " token TEXT NOT NULL, created INTEGER NOT NULL, PRIMARY KEY(db, device));";

int hub_auth_open(const char *dir, int create, hub_auth **out, fs_errbuf *eb)
{
	char path[600];
	hub_auth *a = NULL;
	int rc = FS_E_IO;

	*out = NULL;
	if (sodium_init() < 0)
		return fs_err_set(eb, FS_E_CRYPTO_INIT, "libsodium could not start");
	if ((size_t)snprintf(path, sizeof(path), "%s/hub.db", dir) >= sizeof(path))
		return fs_err_set(eb, FS_E_ARG, "directory path too long");
	if ((a = calloc(1, sizeof(*a))) == NULL)
		return fs_err_set(eb, FS_E_NOMEM, NULL);
	pthread_mutex_init(&a->mu, NULL);
	pthread_mutex_init(&a->dummy_mu, NULL);
	pthread_cond_init(&a->slot_free, NULL);
	if (sqlite3_open_v2(path, &a->db,
	                    SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX |
	                        (create ? SQLITE_OPEN_CREATE : 0),
	                    NULL) != SQLITE_OK) {
		rc = fs_err_set(eb, create ? FS_E_IO : FS_E_NOTFOUND,
		                "cannot open %s (no hub there?)", path);
		goto out;
	}
	sqlite3_busy_timeout(a->db, 5000);
	if (sqlite3_exec(a->db, schema, NULL, NULL, NULL) != SQLITE_OK) {
		rc = fs_err_set(eb, FS_E_IO, "%s: %s", path, sqlite3_errmsg(a->db));
		goto out;
	}
	*out = a;
	a = NULL;
	rc = FS_OK;
out:
	hub_auth_close(a);
	return rc;
}

void hub_auth_close(hub_auth *a)
{
	if (a == NULL)
		return;
	sqlite3_close(a->db);
	pthread_mutex_destroy(&a->mu);
	pthread_mutex_destroy(&a->dummy_mu);
	pthread_cond_destroy(&a->slot_free);
	sodium_memzero(a->cache, sizeof(a->cache));
	free(a);
}

void hub_who_clear(hub_who *who)
{
	free(who->dbs);
	memset(who, 0, sizeof(*who));
}

int hub_who_may(const hub_who *who, const char *db)
{
	size_t n = strlen(db);
	const char *p;
	if (who->admin)
		return 1;
	for (p = who->dbs; p && *p;) {
		const char *c = strchr(p, ',');
		size_t k = c ? (size_t)(c - p) : strlen(p);
		if (k == n && memcmp(p, db, n) == 0)
			return 1;
		p = c ? c + 1 : NULL;
	}
	return 0;
}

/* The row of (kind, id): its hash, dbs and admin flag, if not revoked. */
static int lookup(hub_auth *a, const char *kind, const char *id, char **hash, char **dbs,
                  int *admin)
{
	sqlite3_stmt *s = NULL;
	int rc = FS_E_NOTFOUND;
	*hash = *dbs = NULL;
	pthread_mutex_lock(&a->mu);
	if (sqlite3_prepare_v2(a->db,
	                       "SELECT hash, dbs, admin FROM principals"
	                       " WHERE kind=?1 AND id=?2 AND revoked=0",
	                       -1, &s, NULL) != SQLITE_OK) {
		rc = FS_E_IO;
		goto out;
	}
	sqlite3_bind_text(s, 1, kind, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, id, -1, SQLITE_STATIC);
	if (sqlite3_step(s) == SQLITE_ROW) {
		*hash = strdup((const char *)sqlite3_column_text(s, 0));
		*dbs = strdup((const char *)sqlite3_column_text(s, 1));
		*admin = sqlite3_column_int(s, 2);
		rc = *hash && *dbs ? FS_OK : FS_E_NOMEM;
	}
out:
	sqlite3_finalize(s);
	pthread_mutex_unlock(&a->mu);
	if (rc != FS_OK) {
		free(*hash);
		free(*dbs);
		*hash = *dbs = NULL;
	}
	return rc;
}

static int cache_has(hub_auth *a, const unsigned char *d)
{
	int hit = 0;
	pthread_mutex_lock(&a->mu);
	for (size_t i = 0; i < CACHE_SLOTS && !hit; i++)
		hit = a->used[i] && sodium_memcmp(a->cache[i], d, crypto_generichash_BYTES) == 0;
	pthread_mutex_unlock(&a->mu);
	return hit;
}

static void cache_put(hub_auth *a, const unsigned char *d)
{
	pthread_mutex_lock(&a->mu);
	memcpy(a->cache[a->next], d, crypto_generichash_BYTES);
	a->used[a->next] = 1;
	a->next = (a->next + 1) % CACHE_SLOTS;
	pthread_mutex_unlock(&a->mu);
}

/* Argon2id, at most VERIFY_PARALLEL at a time. */
static int verify(hub_auth *a, const char *hash, const char *secret, size_t n)
{
	int ok;
	pthread_mutex_lock(&a->mu);
	while (a->verifying >= VERIFY_PARALLEL)
		pthread_cond_wait(&a->slot_free, &a->mu);
	a->verifying++;
	pthread_mutex_unlock(&a->mu);
	ok = crypto_pwhash_str_verify(hash, secret, n) == 0;
	pthread_mutex_lock(&a->mu);
	a->verifying--;
	a->verified++;
	pthread_cond_signal(&a->slot_free);
	pthread_mutex_unlock(&a->mu);
	return ok;
}

/*
 * The hash an unknown principal of kind k (0 token, 1 user) is checked
 * against: the same Argon2id limits as a real one of that kind, so the
 * same cost. Made once, from a random secret nobody knows.
 */
static const char *dummy_hash(hub_auth *a, int k)
{
	const char *h = NULL;
	pthread_mutex_lock(&a->dummy_mu);
	if (a->dummy[k][0] == '\0') {
		unsigned char raw[SECRET_BYTES];
		randombytes_buf(raw, sizeof(raw));
		if (crypto_pwhash_str(a->dummy[k], (const char *)raw, sizeof(raw),
		                      k ? USER_OPS : TOKEN_OPS, k ? USER_MEM : TOKEN_MEM) != 0)
			a->dummy[k][0] = '\0';
		sodium_memzero(raw, sizeof(raw));
	}
	if (a->dummy[k][0] != '\0')
		h = a->dummy[k];
	pthread_mutex_unlock(&a->dummy_mu);
	return h;
}

void hub_auth_warm(hub_auth *a)
{
	(void)dummy_hash(a, 0);
	(void)dummy_hash(a, 1);
}

uint64_t hub_auth_verified(hub_auth *a)
{
	uint64_t n;
	pthread_mutex_lock(&a->mu);
	n = a->verified;
	pthread_mutex_unlock(&a->mu);
	return n;
}

void hub_cred_free(hub_cred *c)
{
	if (c == NULL)
		return;
	free(c->hash);
	free(c->dbs);
	sodium_memzero(c, sizeof(*c));
	free(c);
}

int hub_cred_slow(const hub_cred *c)
{
	return !c->known;
}

int hub_auth_begin(hub_auth *a, const char *authz, hub_cred **out, fs_errbuf *eb)
{
	char cred[FS_HUB_PASSWORD_MAX + FS_HUB_NAME_MAX + 2];
	const char *secret;
	crypto_generichash_state gs;
	hub_cred *c = NULL;
	int rc = FS_E_INPUT;

	*out = NULL;
	if (authz == NULL || *authz == '\0')
		return FS_E_NOTFOUND;
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return fs_err_set(eb, FS_E_NOMEM, NULL);
	c->kind[0] = 't';
	if (strncasecmp(authz, "Bearer ", 7) == 0) {
		const char *tok = authz + 7, *dot = strchr(tok, '.');
		size_t il = dot ? (size_t)(dot - tok) : 0;
		if (dot == NULL || il != FS_HUB_TOKEN_ID_LEN || strlen(dot + 1) > 128)
			goto out;
		memcpy(c->id, tok, il);
		c->id[il] = '\0';
		secret = dot + 1;
	} else if (strncasecmp(authz, "Basic ", 6) == 0) {
		size_t bl = 0;
		const char *colon;
		if (sodium_base642bin((unsigned char *)cred, sizeof(cred) - 1, authz + 6,
		                      strlen(authz + 6), NULL, &bl, NULL,
		                      sodium_base64_VARIANT_ORIGINAL) != 0)
			goto out;
		cred[bl] = '\0';
		if (strlen(cred) != bl || (colon = strchr(cred, ':')) == NULL ||
		    (size_t)(colon - cred) > FS_HUB_NAME_MAX || colon == cred ||
		    strlen(colon + 1) > FS_HUB_PASSWORD_MAX)
			goto out;
		memcpy(c->id, cred, (size_t)(colon - cred));
		c->id[colon - cred] = '\0';
		secret = colon + 1;
		c->kind[0] = 'u';
	} else {
		goto out;
	}
	snprintf(c->secret, sizeof(c->secret), "%s", secret);
	rc = lookup(a, c->kind, c->id, &c->hash, &c->dbs, &c->admin);
	if (rc == FS_E_NOTFOUND) {
		rc = FS_OK; /* checked against a dummy in hub_cred_verify, then refused */
		goto done;
	}
	if (rc != FS_OK) {
		rc = fs_err_set(eb, rc, "cannot read hub.db");
		goto out;
	}
	crypto_generichash_init(&gs, NULL, 0, sizeof(c->digest));
	crypto_generichash_update(&gs, (const unsigned char *)c->kind, 1);
	crypto_generichash_update(&gs, (const unsigned char *)c->id, strlen(c->id) + 1);
	crypto_generichash_update(&gs, (const unsigned char *)c->hash, strlen(c->hash) + 1);
	crypto_generichash_update(&gs, (const unsigned char *)c->secret, strlen(c->secret));
	crypto_generichash_final(&gs, c->digest, sizeof(c->digest));
	c->known = c->ok = cache_has(a, c->digest);
done:
	*out = c;
	c = NULL;
out:
	if (rc == FS_E_INPUT)
		fs_err_set(eb, rc, "Name or password is incorrect.");
	sodium_memzero(cred, sizeof(cred));
	hub_cred_free(c);
	return rc;
}

void hub_cred_verify(hub_auth *a, hub_cred *c)
{
	if (c->known)
		return;
	if (c->hash) {
		c->ok = verify(a, c->hash, c->secret, strlen(c->secret));
	} else {
		const char *dummy = dummy_hash(a, c->kind[0] == 'u');
		if (dummy)
			(void)verify(a, dummy, c->secret, strlen(c->secret));
		c->ok = 0;
	}
}

int hub_auth_end(hub_auth *a, hub_cred *c, hub_who *who, fs_errbuf *eb)
{
	memset(who, 0, sizeof(*who));
	if (!c->ok || c->hash == NULL)
		return fs_err_set(eb, FS_E_INPUT, "Name or password is incorrect.");
	if (!c->known)
		cache_put(a, c->digest);
	snprintf(who->id, sizeof(who->id), "%s:%s", c->kind, c->id);
	who->admin = c->admin;
	who->dbs = c->dbs;
	c->dbs = NULL;
	return FS_OK;
}

int hub_auth_check(hub_auth *a, const char *authz, hub_who *who, fs_errbuf *eb)
{
	hub_cred *c = NULL;
	int rc;
	memset(who, 0, sizeof(*who));
	if ((rc = hub_auth_begin(a, authz, &c, eb)) != FS_OK)
		return rc;
	hub_cred_verify(a, c);
	rc = hub_auth_end(a, c, who, eb);
	hub_cred_free(c);
	return rc;
}

/* ---- administration ---- */

static int join_dbs(const char *const *dbs, size_t n, char *out, size_t cap, fs_errbuf *eb)
{
	size_t len = 0;
	out[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		if (!hub_db_name_ok(dbs[i]))
			return fs_err_set(eb, FS_E_ARG, "bad database name %.64s", dbs[i]);
		int w = snprintf(out + len, cap - len, "%s%s", i ? "," : "", dbs[i]);
		if (w < 0 || (size_t)w >= cap - len)
			return fs_err_set(eb, FS_E_ARG, "too many databases");
		len += (size_t)w;
	}
	return FS_OK;
}

static int name_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > FS_HUB_NAME_MAX)
		return 0;
	for (; *s; s++)
		if (*s <= ' ' || *s == ':' || *s == 0x7f)
			return 0;
	return 1;
}

static int put_row(const char *dir, const char *kind, const char *id, const char *name,
                   const char *hash, const char *dbs, int admin, int replace, fs_errbuf *eb)
{
	hub_auth *a = NULL;
	sqlite3_stmt *s = NULL;
	int rc;
	if ((rc = hub_auth_open(dir, 0, &a, eb)) != FS_OK)
		return rc;
	rc = FS_E_IO;
	if (sqlite3_prepare_v2(
	        a->db,
	        replace ? "INSERT OR REPLACE INTO principals VALUES(?1,?2,?3,?4,?5,?6,0,?7)"
	                : "INSERT INTO principals VALUES(?1,?2,?3,?4,?5,?6,0,?7)",
	        -1, &s, NULL) != SQLITE_OK)
		goto out;
	sqlite3_bind_text(s, 1, kind, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, id, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, name, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 4, hash, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 5, dbs, -1, SQLITE_STATIC);
	sqlite3_bind_int(s, 6, admin ? 1 : 0);
	sqlite3_bind_int64(s, 7, (sqlite3_int64)time(NULL));
	if (sqlite3_step(s) != SQLITE_DONE)
		goto out;
	rc = FS_OK;
out:
	if (rc != FS_OK)
		fs_err_set(eb, rc, "cannot write hub.db: %s", sqlite3_errmsg(a->db));
	sqlite3_finalize(s);
	hub_auth_close(a);
	return rc;
}

int fs_hub_token_add(const char *dir, const char *name, const char *const *dbs, size_t n_dbs,
                     int admin, char token[FS_HUB_TOKEN_MAX], fs_errbuf *eb)
{
	unsigned char idb[FS_HUB_TOKEN_ID_LEN / 2], sec[SECRET_BYTES];
	char id[FS_HUB_TOKEN_ID_LEN + 1], secret[SECRET_BYTES * 2], hash[crypto_pwhash_STRBYTES];
	char list[4096];
	int rc;

	token[0] = '\0';
	if (sodium_init() < 0)
		return fs_err_set(eb, FS_E_CRYPTO_INIT, "libsodium could not start");
	if (!name_ok(name))
		return fs_err_set(eb, FS_E_ARG, "bad token name");
	if ((rc = join_dbs(dbs, n_dbs, list, sizeof(list), eb)) != FS_OK)
		return rc;
	randombytes_buf(idb, sizeof(idb));
	randombytes_buf(sec, sizeof(sec));
	sodium_bin2hex(id, sizeof(id), idb, sizeof(idb));
	sodium_bin2base64(secret, sizeof(secret), sec, sizeof(sec),
	                  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	if (crypto_pwhash_str(hash, secret, strlen(secret), TOKEN_OPS, TOKEN_MEM) != 0) {
		rc = fs_err_set(eb, FS_E_NOMEM, "Argon2id failed (memory)");
		goto out;
	}
	if ((rc = put_row(dir, "t", id, name, hash, list, admin, 0, eb)) != FS_OK)
		goto out;
	snprintf(token, FS_HUB_TOKEN_MAX, "%s.%s", id, secret);
out:
	sodium_memzero(sec, sizeof(sec));
	sodium_memzero(secret, sizeof(secret));
	return rc;
}

int fs_hub_user_add(const char *dir, const char *name, const char *password, const char *const *dbs,
                    size_t n_dbs, int admin, fs_errbuf *eb)
{
	char hash[crypto_pwhash_STRBYTES], list[4096];
	int rc;
	if (sodium_init() < 0)
		return fs_err_set(eb, FS_E_CRYPTO_INIT, "libsodium could not start");
	if (!name_ok(name))
		return fs_err_set(eb, FS_E_ARG, "bad user name");
	if (strlen(password) == 0 || strlen(password) > FS_HUB_PASSWORD_MAX)
		return fs_err_set(eb, FS_E_ARG, "the password must be 1 to %d bytes",
		                  FS_HUB_PASSWORD_MAX);
	if ((rc = join_dbs(dbs, n_dbs, list, sizeof(list), eb)) != FS_OK)
		return rc;
	if (crypto_pwhash_str(hash, password, strlen(password), USER_OPS, USER_MEM) != 0)
		return fs_err_set(eb, FS_E_NOMEM, "Argon2id failed (memory)");
	return put_row(dir, "u", name, name, hash, list, admin, 1, eb);
}

int fs_hub_token_revoke(const char *dir, const char *id, fs_errbuf *eb)
{
	hub_auth *a = NULL;
	sqlite3_stmt *s = NULL;
	int rc;
	if ((rc = hub_auth_open(dir, 0, &a, eb)) != FS_OK)
		return rc;
	rc = FS_E_IO;
	if (sqlite3_prepare_v2(a->db, "UPDATE principals SET revoked=1 WHERE kind='t' AND id=?1",
	                       -1, &s, NULL) != SQLITE_OK)
		goto out;
	sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
	if (sqlite3_step(s) != SQLITE_DONE)
		goto out;
	rc = sqlite3_changes(a->db) > 0 ? FS_OK : FS_E_NOTFOUND;
out:
	if (rc == FS_E_NOTFOUND)
		fs_err_set(eb, rc, "no token with id %.32s", id);
	else if (rc != FS_OK)
		fs_err_set(eb, rc, "cannot write hub.db: %s", sqlite3_errmsg(a->db));
	sqlite3_finalize(s);
	hub_auth_close(a);
	return rc;
}

void fs_hub_list_free(fs_hub_list *l)
{
	if (l == NULL)
		return;
	for (size_t i = 0; i < l->n; i++) {
		free(l->v[i].id);
		free(l->v[i].name);
		free(l->v[i].dbs);
	}
	free(l->v);
	free(l);
}

int fs_hub_list_get(const char *dir, int users, fs_hub_list **out, fs_errbuf *eb)
{
	hub_auth *a = NULL;
	sqlite3_stmt *s = NULL;
	fs_hub_list *l = NULL;
	int rc, step;

	*out = NULL;
	if ((rc = hub_auth_open(dir, 0, &a, eb)) != FS_OK)
		return rc;
	rc = FS_E_NOMEM;
	if ((l = calloc(1, sizeof(*l))) == NULL)
		goto out;
	if (sqlite3_prepare_v2(a->db,
	                       "SELECT id, name, dbs, admin, revoked, created FROM principals"
	                       " WHERE kind=?1 ORDER BY created, id",
	                       -1, &s, NULL) != SQLITE_OK) {
		rc = FS_E_IO;
		goto out;
	}
	sqlite3_bind_text(s, 1, users ? "u" : "t", -1, SQLITE_STATIC);
	while ((step = sqlite3_step(s)) == SQLITE_ROW) {
		fs_hub_principal *v = realloc(l->v, (l->n + 1) * sizeof(*v)), *p;
		if (v == NULL)
			goto out;
		l->v = v;
		p = &v[l->n++];
		memset(p, 0, sizeof(*p));
		p->id = strdup((const char *)sqlite3_column_text(s, 0));
		p->name = strdup((const char *)sqlite3_column_text(s, 1));
		p->dbs = strdup((const char *)sqlite3_column_text(s, 2));
		p->admin = sqlite3_column_int(s, 3);
		p->revoked = sqlite3_column_int(s, 4);
		p->created = sqlite3_column_int64(s, 5);
		if (!p->id || !p->name || !p->dbs)
			goto out;
	}
	if (step != SQLITE_DONE) {
		rc = FS_E_IO;
		goto out;
	}
	*out = l;
	l = NULL;
	rc = FS_OK;
out:
	if (rc != FS_OK)
		fs_err_set(eb, rc, "cannot read hub.db");
	fs_hub_list_free(l);
	sqlite3_finalize(s);
	hub_auth_close(a);
	return rc;
}

/* The hub's uuid for GET / (replicators mix it into checkpoint ids). */
int hub_auth_uuid(hub_auth *a, char out[33], fs_errbuf *eb)
{
	sqlite3_stmt *s = NULL;
	int rc = FS_E_IO;
	unsigned char r[16];

	out[0] = '\0';
	pthread_mutex_lock(&a->mu);
	if (sqlite3_prepare_v2(a->db, "SELECT v FROM meta WHERE k='uuid'", -1, &s, NULL) !=
	    SQLITE_OK)
		goto out;
	if (sqlite3_step(s) == SQLITE_ROW) {
		snprintf(out, 33, "%s", (const char *)sqlite3_column_text(s, 0));
		rc = FS_OK;
		goto out;
	}
	sqlite3_finalize(s);
	s = NULL;
	randombytes_buf(r, sizeof(r));
	sodium_bin2hex(out, 33, r, sizeof(r));
	if (sqlite3_prepare_v2(a->db, "INSERT OR IGNORE INTO meta VALUES('uuid', ?1)", -1, &s,
	                       NULL) != SQLITE_OK)
		goto out;
	sqlite3_bind_text(s, 1, out, -1, SQLITE_STATIC);
	if (sqlite3_step(s) != SQLITE_DONE)
		goto out;
	rc = FS_OK;
out:
	if (rc != FS_OK)
		fs_err_set(eb, rc, "cannot read hub.db: %s", sqlite3_errmsg(a->db));
	sqlite3_finalize(s);
	pthread_mutex_unlock(&a->mu);
	return rc;
}

/* ---- team: device tokens (hub/team.c) ---- */

static int exec_bound(hub_auth *a, const char *sql, const char *db, const char *device,
                      const char *token, size_t *changed, fs_errbuf *eb)
{
	sqlite3_stmt *s = NULL;
	int rc = FS_OK;

	pthread_mutex_lock(&a->mu);
	if (sqlite3_prepare_v2(a->db, sql, -1, &s, NULL) != SQLITE_OK) {
		rc = fs_err_set(eb, FS_E_IO, "hub.db: %s", sqlite3_errmsg(a->db));
		goto out;
	}
	sqlite3_bind_text(s, 1, db, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, device, -1, SQLITE_STATIC);
	if (token)
		sqlite3_bind_text(s, 3, token, -1, SQLITE_STATIC);
	if (sqlite3_step(s) != SQLITE_DONE) {
		rc = fs_err_set(eb, FS_E_IO, "hub.db: %s", sqlite3_errmsg(a->db));
		goto out;
	}
	if (changed)
		*changed = (size_t)sqlite3_changes(a->db);
out:
	sqlite3_finalize(s);
	pthread_mutex_unlock(&a->mu);
	return rc;
}

int hub_auth_bind(hub_auth *a, const char *db, const char *device, const char *token, int own,
                  fs_errbuf *eb)
{
	return exec_bound(a,
	                  own ? "INSERT OR IGNORE INTO device_tokens(db, device, token, created)"
	                        " VALUES (?1, ?2, ?3, strftime('%s','now'))"
	                      : "INSERT OR IGNORE INTO device_tokens(db, device, token, created)"
	                        " SELECT ?1, ?2, ?3, strftime('%s','now') WHERE NOT EXISTS"
	                        " (SELECT 1 FROM device_tokens WHERE db = ?1 AND token = ?3)",
	                  db, device, token, NULL, eb);
}

int hub_auth_revoke_device(hub_auth *a, const char *db, const char *device, size_t *revoked,
                           fs_errbuf *eb)
{
	*revoked = 0;
	return exec_bound(a,
	                  "UPDATE principals SET revoked=1 WHERE kind='t' AND revoked=0 AND id IN"
	                  " (SELECT token FROM device_tokens WHERE db=?1 AND device=?2)",
	                  db, device, NULL, revoked, eb);
}
