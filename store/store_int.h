/*
 * store/store_int.h: what the store's files share: the handle, the cache of
 * prepared statements, SQLite error mapping, transactions and the migration
 * list (exposed so tests can build a store at every older version).
 */
#ifndef FS_STORE_INT_H
#define FS_STORE_INT_H

#include <sqlite3.h>
#include <stdint.h>

#include "store.h"

/* "fsyn" */
#define STORE_APP_ID 0x6673796e

/* Longest hash part of a revision id (fs_crypto_rev_parse): 20 digits, '-', NUL. */
#define STORE_HASH_MAX ((int)(FS_REV_MAX - 22))

/* WAL pages after which a commit is followed by a checkpoint (SQLite's default). */
#define STORE_CHECKPOINT_PAGES 1000

/* Prepared statements, compiled once per handle on first use. */
enum stmt_id {
	S_BEGIN,
	S_COMMIT,
	S_DOC_BY_ID,
	S_DOC_INSERT,
	S_DOC_UPDATE,
	S_REV_FIND,
	S_REV_BY_RID,
	S_REV_INSERT,
	S_REV_SET_PARENT,
	S_REV_FILL,
	S_REV_BODY,
	S_REV_DELETE,
	S_DOC_NODES,
	S_OUTBOX_RIDS_OF_DOC,
	S_GEN_RANGE,
	S_OUTBOX_INSERT,
	S_OUTBOX_OF_DOC,
	S_OUTBOX_DELETE,
	S_CKPT_SET,
	S_CKPT_GET,
	S_MAX
};

/*
 * One leaf of a document's revision tree. Since schema version 4 the
 * leaves live in the document's docs row (winner_* columns and `others`),
 * so an edit touches no leaf flag or leaf index in revs.
 */
struct leaf {
	int64_t rid;
	unsigned long gen;
	int deleted;
	char hash[FS_REV_MAX];
};

/* A growable list of leaves, kept in CouchDB's order (the winner first) when written. */
struct leaves {
	size_t n, cap;
	struct leaf *v;
};

struct fs_store {
	sqlite3 *db;
	sqlite3_stmt *stmts[S_MAX];
	char *path;
	int lock_fd;
	unsigned revs_limit;
	uint64_t seq;      /* the latest local sequence handed out */
	uint64_t seq_save; /* seq at the start of the open transaction */
	int64_t rid;      /* the largest revs.rid handed out (a new document's row names its tip) */
	int64_t rid_save; /* rid at the start of the open transaction */
	struct leaves lv; /* the leaves of the document a call is working on */
	int stmt_err;     /* why store_stmt last returned NULL (eb may be NULL) */
	unsigned ckpt_pages; /* a commit checkpoints the log at this size */
	unsigned wal_pages;  /* log pages not checkpointed yet */
};

/* One forward migration: the SQL that takes user_version from i to i+1. */
struct store_migration {
	const char *what;
	const char *sql;
};

extern const struct store_migration store_migrations[];
extern const int store_n_migrations;

/* Creates a new store file at path (absent or empty) at schema version (0..latest). */
int store_create_at(const char *path, int version, fs_errbuf *eb);

/* Runs the migrations from the file's user_version up to the latest, each in its transaction. */
int store_migrate(sqlite3 *db, fs_errbuf *eb);

/* Maps SQLite's result rc to an fs_err code, with a message naming what failed. */
int store_err(fs_store *st, int rc, const char *what, fs_errbuf *eb);
int store_db_err(sqlite3 *db, int rc, const char *what, fs_errbuf *eb);

/* The cached statement id, reset and with its bindings cleared; NULL with eb set on failure. */
sqlite3_stmt *store_stmt(fs_store *st, enum stmt_id id, fs_errbuf *eb);

/* BEGIN IMMEDIATE / COMMIT / ROLLBACK; rollback also restores the in-memory sequence. */
int store_begin(fs_store *st, fs_errbuf *eb);
int store_commit(fs_store *st, fs_errbuf *eb);
void store_rollback(fs_store *st);

/* Checks an id-like string: not NULL, 1..max bytes. */
int store_check_str(const char *s, size_t max, const char *what, fs_errbuf *eb);

/* Binds len bytes as a blob, never as SQL NULL (SQLite binds a NULL pointer as NULL). */
int store_bind_blob(sqlite3_stmt *s, int i, const uint8_t *p, size_t len);

/* A malloc'ed copy of a column's blob, at least 1 byte so it is never NULL. */
uint8_t *store_col_blob(sqlite3_stmt *s, int i, size_t *len);

int64_t store_now_ms(void);

/* Writes a checkpoint inside the caller's transaction. */
int store_ckpt_write(fs_store *st, const char *remote, fs_store_dir dir, const char *seq,
                     fs_errbuf *eb);

#endif
