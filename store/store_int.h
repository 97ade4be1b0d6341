/*
 * store/store_int.h: what the store's files share: the handle, the cache of
 * prepared statements, SQLite error mapping, transactions, the revision
 * tree of a docs row (store/tree.c) and the migration list (exposed so
 * tests can build a store at every older version).
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

/*
 * A new document's body up to this size lives in its row, so a pulled
 * document is one row and one index entry; larger ones, and every body
 * once the document changes, go to the bodies table, so that moving the
 * row stays cheap.
 */
#define STORE_INLINE_MAX 3000

/* WAL pages after which a commit is followed by a checkpoint (SQLite's default). */
#define STORE_CHECKPOINT_PAGES 1000

/* Prepared statements, compiled once per handle on first use. */
enum stmt_id {
	S_BEGIN,
	S_COMMIT,
	S_DOC_BY_ID,
	S_DOC_GET,
	S_DOC_INSERT,
	S_DOC_UPDATE,
	S_BODY_INSERT,
	S_BODY_MOVE,
	S_BODY_GET,
	S_BODY_LEN,
	S_BODY_DELETE,
	S_OUTBOX_REVS_OF_DOC,
	S_OUTBOX_INSERT,
	S_OUTBOX_OF_DOC,
	S_OUTBOX_DELETE,
	S_CKPT_SET,
	S_CKPT_GET,
	S_MAX
};

/*
 * A document's revision tree, read from and written to its docs row
 * (schema version 5; store/tree.c holds the form). Nodes are in arrival
 * order and name their parent by index.
 */
enum node_flag {
	N_DELETED = 1, /* a tombstone */
	N_BODY = 2,    /* the body is known: inline, or in bodies row bid; else known by id only */
	N_INLINE = 4,  /* the body is the docs row's body column (one node at most) */
	N_LEAF = 8, /* a leaf (kept explicitly: stemming may leave a kept inner node childless) */
	N_HEX = 16, /* on disk only: the hash is 32 hex digits stored as 16 bytes */
	N_ALL = 31
};

/* Revisions of one document at most: a bound on memory far above any revs_limit. */
#define TREE_NODES_MAX (1 << 22)

struct node {
	unsigned long gen;
	uint64_t seq; /* local sequence at which its body arrived; 0 for a body-less node */
	int64_t bid;  /* its bodies row when N_BODY and not N_INLINE, else 0 */
	long parent;  /* index of its parent, -1 at a root or where history was cut */
	unsigned flags;
	char hash[STORE_HASH_MAX + 1];
};

struct tree {
	size_t n, cap;
	struct node *v;
};

/* One leaf, for ordering; hash points into its tree, valid until the tree grows. */
struct leaf {
	long i; /* index in the tree */
	unsigned long gen;
	int deleted;
	const char *hash;
};

/* A document's leaves in CouchDB's order: the winner first. */
struct leaves {
	size_t n, cap;
	struct leaf *v;
};

/* A growable byte buffer, reused for each tree written. */
struct enc {
	uint8_t *p;
	size_t len, cap;
};

/* Reads a tree from its column bytes; anything damaged is FS_E_STORE_CORRUPT. */
int tree_decode(const uint8_t *p, size_t len, struct tree *t, fs_errbuf *eb);
/* Writes t's form into e. */
int tree_encode(const struct tree *t, struct enc *e, fs_errbuf *eb);
/* Index of revision gen-hash, or -1. */
long tree_find(const struct tree *t, unsigned long gen, const char *hash);
/* Appends a node with bid 0; its index goes to *x. */
int tree_add(struct tree *t, unsigned long gen, const char *hash, long parent, unsigned flags,
             uint64_t seq, long *x, fs_errbuf *eb);
void tree_free(struct tree *t);
/* The nodes flagged N_LEAF, winner first; none is FS_E_STORE_CORRUPT. */
int tree_leaves(const struct tree *t, struct leaves *l, fs_errbuf *eb);
/* Node x's history as fs_store_history_get gives it, at most max entries (0: all). */
int tree_history(const struct tree *t, long x, size_t max, fs_store_history **out, fs_errbuf *eb);

struct fs_store {
	sqlite3 *db;
	sqlite3_stmt *stmts[S_MAX];
	char *path;
	int lock_fd;
	unsigned revs_limit;
	uint64_t seq;        /* the latest local sequence handed out */
	uint64_t seq_save;   /* seq at the start of the open transaction */
	struct tree tree;    /* the tree of the document a call is working on */
	struct leaves lv;    /* its leaves */
	struct enc enc;      /* a tree's form, to be written */
	int stmt_err;        /* why store_stmt last returned NULL (eb may be NULL) */
	unsigned ckpt_pages; /* a commit checkpoints the log at this size */
	unsigned wal_pages;  /* log pages not checkpointed yet */
};

/*
 * One forward migration, taking user_version from i to i+1: sql, then fn
 * (NULL when SQL says it all; it does what SQL cannot), then after (may be
 * NULL), in one transaction.
 */
struct store_migration {
	const char *what;
	const char *sql;
	int (*fn)(sqlite3 *db, fs_errbuf *eb);
	const char *after;
};

extern const struct store_migration store_migrations[];
extern const int store_n_migrations;

/* Creates a new store file at path (absent or empty) at schema version (0..latest). */
int store_create_at(const char *path, int version, fs_errbuf *eb);

/* Runs the migrations from the file's user_version up to the latest, each in its transaction. */
int store_migrate(sqlite3 *db, fs_errbuf *eb);

/* Migration 5's work in C: the revs rows of each document into its tree. */
int store_migrate_trees(sqlite3 *db, fs_errbuf *eb);

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

/*
 * A malloc'ed copy of node x's body (never NULL): the column col of row
 * (its document's row, from a query that selects the body column) when it
 * is inline, else its bodies row. FS_E_NOTFOUND for a body-less node.
 */
int store_node_body(fs_store *st, const struct node *x, sqlite3_stmt *row, int col, uint8_t **body,
                    size_t *len, fs_errbuf *eb);
/* The length of that body, without reading it. */
int store_node_size(fs_store *st, const struct node *x, sqlite3_stmt *row, int col, size_t *len,
                    fs_errbuf *eb);

/*
 * The key range of everything that starts with prefix: [prefix, hi) with
 * hi the prefix with its last byte raised, so an index answers it without
 * a scan (LIKE would read '_' and '%' as patterns). FS_E_ARG for an empty
 * prefix, one over FS_STORE_PREFIX_MAX bytes or one ending in byte 0xff;
 * *n its length.
 */
int store_prefix_range(const char *prefix, char hi[FS_STORE_PREFIX_MAX + 1], size_t *n,
                       const char *what, fs_errbuf *eb);

#endif
