/*
 * hub/hub.h: fieldsync-hub, a small CouchDB-compatible HTTPS server over
 * store/ for one office or for tests. It serves the replication subset of
 * DESIGN section 4 for several databases (one store file each), checks
 * bearer tokens and basic-auth users (Argon2id hashes in DIR/hub.db) and
 * holds no record keys: it sees ids, revisions and ciphertext only.
 *
 * A hub directory (made by fs_hub_init, mode 0700) holds hub.conf, cert.pem,
 * key.pem, hub.db and dbs/<name>.db. See docs/hub.md.
 */
#ifndef FS_HUB_H
#define FS_HUB_H

#include <stddef.h>
#include <stdint.h>

#include "fs.h"

#define FS_HUB_PIN_MAX      64  /* "sha256//" + base64 of 32 bytes + NUL */
#define FS_HUB_DB_NAME_MAX  64  /* bytes of a database name */
#define FS_HUB_TOKEN_MAX    96  /* "<id>.<secret>" + NUL */
#define FS_HUB_TOKEN_ID_LEN 16  /* hex characters of a token id */
#define FS_HUB_NAME_MAX     128 /* token and user names */
#define FS_HUB_PASSWORD_MAX 1024
#define FS_HUB_PORT_DEFAULT 6984

typedef struct fs_hub fs_hub;

typedef struct fs_hub_opts {
	const char *dir;  /* the hub directory (required) */
	const char *bind; /* NULL: hub.conf's bind (default 127.0.0.1) */
	int port;         /* -1: hub.conf's port (default 6984); 0: any free port */
	int quiet;        /* 1: no access log on stderr */
} fs_hub_opts;

/*
 * Makes dir (mode 0700, it must not hold a hub yet) with a new self-signed
 * certificate (ECDSA P-256, valid 10 years) for "localhost", 127.0.0.1, ::1
 * and the n_names extra host names or IP addresses in names, its key, an
 * empty hub.db and a commented hub.conf. Writes the certificate's public-key
 * pin ("sha256//<base64>") to pin. FS_E_EXISTS when dir already holds a hub.
 */
int fs_hub_init(const char *dir, const char *const *names, size_t n_names, char pin[FS_HUB_PIN_MAX],
                fs_errbuf *eb) FS_WUR;

/* The pin of the certificate in dir (as printed by fs_hub_init). */
int fs_hub_pin(const char *dir, char pin[FS_HUB_PIN_MAX], fs_errbuf *eb) FS_WUR;

/*
 * Reads the configuration and opens hub.db; nothing listens yet. The caller
 * frees *out with fs_hub_free. Errors: FS_E_INPUT (bad hub.conf: the message
 * names the line), FS_E_IO, FS_E_NOTFOUND (no hub in dir).
 */
int fs_hub_new(const fs_hub_opts *o, fs_hub **out, fs_errbuf *eb) FS_WUR;

/* Starts serving HTTPS in background threads. */
int fs_hub_start(fs_hub *h, fs_errbuf *eb) FS_WUR;

/* The port it listens on (after fs_hub_start), 0 before. */
unsigned fs_hub_port(const fs_hub *h);

/* Stops listening, ends longpolls and waits for requests in flight; idempotent. */
void fs_hub_stop(fs_hub *h);

/* Stops h and frees it, closing every database; NULL is a no-op. */
void fs_hub_free(fs_hub *h);

/* ---- administration (offline or while a hub serves the same dir) ---- */

/* Creates database name (a lowercase letter, then [a-z0-9_-], at most
 * FS_HUB_DB_NAME_MAX-1 bytes). FS_E_EXISTS if it exists, FS_E_ARG for a bad name. */
int fs_hub_db_create(const char *dir, const char *name, fs_errbuf *eb) FS_WUR;

/*
 * A new device token for name with access to the n_dbs databases in dbs
 * (admin: every database, and creating databases). The token
 * "<id>.<secret>" is written to token once; only its Argon2id hash is kept.
 * The caller wipes token after use.
 */
int fs_hub_token_add(const char *dir, const char *name, const char *const *dbs, size_t n_dbs,
                     int admin, char token[FS_HUB_TOKEN_MAX], fs_errbuf *eb) FS_WUR;

/* Revokes token id (the part before the dot). FS_E_NOTFOUND when unknown. */
int fs_hub_token_revoke(const char *dir, const char *id, fs_errbuf *eb) FS_WUR;

/* One token or user for listings; strings owned by the list. */
typedef struct fs_hub_principal {
	char *id;   /* token id, or user name */
	char *name; /* token's device name, or user name */
	char *dbs;  /* comma-separated database names */
	int admin;
	int revoked;
	int64_t created; /* Unix seconds */
} fs_hub_principal;

typedef struct fs_hub_list {
	size_t n;
	fs_hub_principal *v;
} fs_hub_list;

/* Every token (users: 0) or user (users: 1). The caller frees *out with fs_hub_list_free. */
int fs_hub_list_get(const char *dir, int users, fs_hub_list **out, fs_errbuf *eb) FS_WUR;
void fs_hub_list_free(fs_hub_list *l);

/* Adds or replaces basic-auth user name with password (hashed with Argon2id). */
int fs_hub_user_add(const char *dir, const char *name, const char *password, const char *const *dbs,
                    size_t n_dbs, int admin, fs_errbuf *eb) FS_WUR;

#endif
