/*
 * hub/hub_int.h: the hub's internals shared by its files: configuration,
 * the output buffer, open databases, authentication and the request
 * parsers that the fuzz target reaches without a network.
 */
#ifndef FS_HUB_INT_H
#define FS_HUB_INT_H

#include <pthread.h>
#include <sqlite3.h>
#include <stdint.h>

#include "hub.h"
#include "store.h"

struct cJSON;

/* ---- configuration (hub.conf) ---- */

typedef struct hub_conf {
	char bind[64];
	int port;
	char cert[512];
	char key[512];
	unsigned threads; /* the request thread pool */
	unsigned max_connections;
	unsigned max_connections_per_addr;
	size_t max_body;
	size_t max_batch_docs;
	int json_depth;
	unsigned longpoll_max_ms;
	unsigned revs_limit;
	int access_log;
	unsigned auth_delay_max_ms;
	size_t doc_cache_bytes;
} hub_conf;

void hub_conf_defaults(hub_conf *c, const char *dir);
/* Reads path over c's defaults; a missing file is not an error. */
int hub_conf_read(hub_conf *c, const char *dir, const char *path, fs_errbuf *eb) FS_WUR;

/* ---- output buffer ---- */

typedef struct hub_buf {
	char *p;
	size_t len, cap;
	int err; /* FS_E_NOMEM once an append failed; later appends do nothing */
} hub_buf;

void hub_buf_add(hub_buf *b, const void *p, size_t n);
/* Room for n more bytes in one allocation (a body of known length). */
void hub_buf_reserve(hub_buf *b, size_t n);
void hub_buf_str(hub_buf *b, const char *s);
void hub_buf_fmt(hub_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void hub_buf_json_str(hub_buf *b, const char *s); /* quoted and escaped */
void hub_buf_free(hub_buf *b);

/* ---- authentication (auth.c) ---- */

typedef struct hub_who {
	char id[FS_HUB_NAME_MAX + 8]; /* "t:<token id>" or "u:<user>", for the log; "" anonymous */
	int admin;
	char *dbs; /* comma-separated, owned */
} hub_who;

typedef struct hub_auth hub_auth;

int hub_auth_open(const char *dir, int create, hub_auth **out, fs_errbuf *eb) FS_WUR;
void hub_auth_close(hub_auth *a);
/*
 * Checks an Authorization header value (NULL: anonymous). Returns FS_OK and
 * fills who, FS_E_NOTFOUND when no credentials came, or FS_E_INPUT when they
 * are wrong (the caller answers 401).
 */
int hub_auth_check(hub_auth *a, const char *authz, hub_who *who, fs_errbuf *eb) FS_WUR;

/*
 * hub_auth_check in steps, so that the slow one (Argon2id) can run on
 * another thread than the request's:
 * hub_auth_begin parses authz and reads the principal: FS_E_NOTFOUND when
 * no credentials came, FS_E_INPUT when they are malformed (401), else
 * FS_OK and *out, which the caller frees with hub_cred_free (it wipes the
 * secret). hub_cred_slow says whether hub_cred_verify has Argon2id to run
 * (not for a credential remembered from an earlier success); an unknown
 * principal is verified against a dummy hash so it costs the same, then
 * refused. hub_cred_verify may run on any thread and takes no lock that
 * a request holds. hub_auth_end gives FS_OK with who filled, or FS_E_INPUT.
 */
typedef struct hub_cred hub_cred;
int hub_auth_begin(hub_auth *a, const char *authz, hub_cred **out, fs_errbuf *eb) FS_WUR;
int hub_cred_slow(const hub_cred *c);
void hub_cred_verify(hub_auth *a, hub_cred *c);
int hub_auth_end(hub_auth *a, hub_cred *c, hub_who *who, fs_errbuf *eb) FS_WUR;
void hub_cred_free(hub_cred *c);
/* Makes the dummy hashes now, so the first unknown name costs no more than the next. */
void hub_auth_warm(hub_auth *a);
/* Argon2id verifications run so far (tests). */
uint64_t hub_auth_verified(hub_auth *a);
int hub_who_may(const hub_who *who, const char *db);
int hub_auth_uuid(hub_auth *a, char out[33], fs_errbuf *eb) FS_WUR;
/* Records token as device's in db (the first for a device wins). own: the
 * token uploaded the device's document itself; else it is taken only while
 * no other device of db has it. */
int hub_auth_bind(hub_auth *a, const char *db, const char *device, const char *token, int own,
                  fs_errbuf *eb) FS_WUR;
/* Refuses from now on the tokens bound to device in db; *revoked: how many
 * were still valid. */
int hub_auth_revoke_device(hub_auth *a, const char *db, const char *device, size_t *revoked,
                           fs_errbuf *eb) FS_WUR;
void hub_who_clear(hub_who *who);

/* ---- databases ---- */

/* cache.c: served revisions as JSON, bounded in bytes (0: off). */
typedef struct hub_cache hub_cache;
int hub_cache_new(size_t max_bytes, hub_cache **out) FS_WUR;
void hub_cache_free(hub_cache *c);
/* Appends the cached JSON of (id, rev) to out and returns 1, or returns 0. */
int hub_cache_get(hub_cache *c, const char *id, const char *rev, int need_leaf, hub_buf *out);
/* leaf: rev is a leaf now (a later write drops the entry, so it stays true). */
void hub_cache_put(hub_cache *c, const char *id, const char *rev, const char *json, size_t len,
                   int leaf);
/* Drops every cached revision of id (call under the database's mutex after a write). */
void hub_cache_drop(hub_cache *c, const char *id);

struct hub_waiter;

typedef struct hub_db {
	char name[FS_HUB_DB_NAME_MAX];
	fs_store *st;
	pthread_mutex_t mu;
	uint64_t writes;  /* bumped after each write (__atomic); parked longpolls look at it */
	fs_hub *hub;      /* whose parked requests a write wakes */
	hub_cache *cache; /* revisions with their history, as served */
	uint64_t last_write_ms;  /* under mu: when the store last took a write */
	struct hub_waiter *ckpt; /* the idle checkpoint's job (server.c) */
	struct hub_db *next;
} hub_db;

int hub_db_name_ok(const char *name);

/* ---- request parsers (pure: the fuzz target calls them) ---- */

/* A document as it came in a request: its special members split off. */
typedef struct hub_doc_in {
	char *id;  /* NULL when absent */
	char *rev; /* NULL when absent */
	int deleted;
	unsigned long rev_start; /* _revisions.start, 0 when absent */
	size_t n_hashes;
	char **hashes; /* _revisions.ids */
	uint8_t *body; /* the remaining members, as compact JSON */
	size_t body_len;
} hub_doc_in;

void hub_doc_in_clear(hub_doc_in *d);

/*
 * Splits one document object. FS_E_INPUT (reason in eb) for a wrong type,
 * an unknown special member ("_x"), a bad _rev or _revisions. On success
 * j has lost its special members (the body is printed from j itself).
 */
int hub_parse_doc(struct cJSON *j, hub_doc_in *out, fs_errbuf *eb) FS_WUR;

typedef struct hub_bulk_docs {
	int new_edits;
	size_t n;
	hub_doc_in *v;
} hub_bulk_docs;

/*
 * scan.c: the batch parsers read the text once without a tree. A body is
 * the document's other members as they came (whitespace between tokens
 * dropped), so its bytes may differ from what cJSON would print (escapes
 * and numbers kept as sent) but never in meaning. Errors: FS_E_INPUT
 * (malformed, too deep, wrong types), FS_E_TOOBIG (len over max_len, more
 * than max_docs documents, a body over FS_STORE_BODY_MAX), FS_E_NOMEM.
 */
int hub_parse_bulk_docs(const char *body, size_t len, size_t max_len, int depth, size_t max_docs,
                        hub_bulk_docs *out, fs_errbuf *eb) FS_WUR;
void hub_bulk_docs_clear(hub_bulk_docs *b);

/* _revs_diff: {"id":["rev",...],...} */
typedef struct hub_revs_diff {
	size_t n;
	fs_store_diff_query *q; /* ids and revs owned (cast away const to free) */
} hub_revs_diff;

int hub_parse_revs_diff(const char *body, size_t len, size_t max_len, int depth, size_t max_docs,
                        hub_revs_diff *out, fs_errbuf *eb) FS_WUR;
void hub_revs_diff_clear(hub_revs_diff *d);

/* _bulk_get: {"docs":[{"id":..,"rev":..},...]} (rev optional) */
typedef struct hub_bulk_get {
	size_t n;
	char **ids;
	char **revs; /* entries NULL when absent */
} hub_bulk_get;

int hub_parse_bulk_get(const char *body, size_t len, size_t max_len, int depth, size_t max_docs,
                       hub_bulk_get *out, fs_errbuf *eb) FS_WUR;
void hub_bulk_get_clear(hub_bulk_get *g);

/* open_revs=all (*all set) or a JSON array of revisions. */
int hub_parse_open_revs(const char *q, int *all, char ***revs, size_t *n, fs_errbuf *eb) FS_WUR;
void hub_strv_free(char **v, size_t n);

/* fs_json_parse for request bodies already bounded in size: depth is FS_E_INPUT. */
int hub_json_parse(const char *text, size_t len, size_t max_len, int depth, struct cJSON **out,
                   fs_errbuf *eb) FS_WUR;

/* A document id from a URL or a body: 1..FS_STORE_ID_MAX bytes, no leading '_'. */
int hub_docid_ok(const char *id);

#endif
