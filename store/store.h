/*
 * store/store.h: the durable SQLite store of one device (or of one hub
 * database): CouchDB-style revision trees over opaque bodies, the outbox of
 * local edits waiting to be pushed, replication checkpoints, `_local`
 * documents and a small key/value meta table. It never parses a body (on a
 * device bodies are ciphertext envelopes) and never touches the network.
 *
 * Threads: a handle is used by one thread at a time; a program that shares
 * one (the hub) serialises calls with its own mutex. Processes: one handle
 * per file; a second opener, in this or another process, gets
 * FS_E_STORE_LOCKED naming the holder's pid.
 *
 * Every write function is one SQLite transaction, committed durably (WAL,
 * synchronous=FULL) before it returns FS_OK; on any error nothing of it is
 * written. Errors: FS_E_STORE_FULL (disk full), FS_E_IO, FS_E_STORE_CORRUPT,
 * FS_E_STORE_BUSY, FS_E_STORE_READONLY, FS_E_NOMEM, FS_E_ARG (bad argument,
 * e.g. an id over FS_STORE_ID_MAX), plus those named per function. The
 * message in eb never holds a body. See docs/store.md.
 */
#ifndef FS_STORE_H
#define FS_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "crypto.h"
#include "fs.h"

#define FS_STORE_ID_MAX             1024        /* bytes of a document id (no NUL) */
#define FS_STORE_BODY_MAX           (16u << 20) /* bytes of one body */
#define FS_STORE_NAME_MAX           1024        /* remote names, meta keys, seq strings */
#define FS_STORE_REVS_LIMIT_DEFAULT 1000
#define FS_STORE_HISTORY_MAX        100000 /* entries of one incoming _revisions */
#define FS_STORE_BUSY_MS_DEFAULT    5000
#define FS_STORE_CACHE_KIB_DEFAULT  1024

typedef struct fs_store fs_store;

typedef struct fs_store_opts {
	unsigned revs_limit; /* 0: FS_STORE_REVS_LIMIT_DEFAULT */
	int busy_ms;         /* 0: FS_STORE_BUSY_MS_DEFAULT */
	const char *vfs;     /* SQLite VFS name, NULL for the default (tests inject faults) */
	/* A commit that leaves the write-ahead log at this many pages or more
	 * checkpoints it (copies it into the database file) before returning.
	 * 0: 1000 (4 MiB). A server that checkpoints when idle
	 * (fs_store_checkpoint) sets it high: a burst of writes then pays
	 * for no copy. */
	unsigned checkpoint_pages;
	/* SQLite's page cache, in KiB. 0: FS_STORE_CACHE_KIB_DEFAULT, small on
	 * purpose: a device's store is small, the OS caches the file, and the
	 * daemon stays under its memory budget; a server (the hub) sets more. */
	unsigned cache_kib;
} fs_store_opts;

/*
 * Opens (creating if absent) the store at path; opts may be NULL. A new file
 * is built beside the target and renamed into place, so a crash never
 * leaves a half-made store. Refuses, without writing to the file:
 * FS_E_STORE_FOREIGN (not a fieldsync store: another SQLite database or
 * random bytes), FS_E_STORE_CORRUPT (a damaged or truncated store),
 * FS_E_STORE_TOO_NEW (written by a newer version), FS_E_STORE_LOCKED
 * (another handle holds "<path>.lock"; the message names its pid).
 * Older schemas are migrated forward. On success the caller owns *out and
 * closes it with fs_store_close.
 */
int fs_store_open(const char *path, const fs_store_opts *opts, fs_store **out,
                  fs_errbuf *eb) FS_WUR;

/* Closes st and releases the lock; NULL is a no-op. */
void fs_store_close(fs_store *st);

/* Runs PRAGMA integrity_check: FS_OK, or FS_E_STORE_CORRUPT with SQLite's first complaint. */
int fs_store_check(fs_store *st, fs_errbuf *eb) FS_WUR;

/* ---- edits ---- */

/* fs_store_put flags */
#define FS_STORE_PUT_NO_OUTBOX 1u /* the hub: record the edit but queue nothing */

/*
 * A new revision of document id written here (CouchDB's normal edit,
 * new_edits=true). base_rev is the revision the edit was made on:
 *  - NULL for a new document; if the document exists its winner must be
 *    deleted, and the new revision extends that tombstone;
 *  - otherwise an existing leaf of the document (deleted or not).
 * Anything else is FS_E_STORE_CONFLICT (CouchDB's 409). The new revision id
 * is fs_crypto_rev_id(parent, deleted, body) and is written to new_rev.
 * One transaction writes the revision, the document's winner and (unless
 * FS_STORE_PUT_NO_OUTBOX) an outbox row; queued rows of the same document
 * whose revision is an ancestor of the new one leave the outbox in that
 * transaction (see fs_store_outbox_read). body may be NULL when body_len is 0.
 */
int fs_store_put(fs_store *st, const char *id, const char *base_rev, const uint8_t *body,
                 size_t body_len, int deleted, unsigned flags, char new_rev[FS_REV_MAX],
                 fs_errbuf *eb) FS_WUR;

/* fs_store_put with flags 0: the device's edit, queued for push. */
int fs_store_put_local(fs_store *st, const char *id, const char *base_rev, const uint8_t *body,
                       size_t body_len, int deleted, char new_rev[FS_REV_MAX],
                       fs_errbuf *eb) FS_WUR;

/*
 * A revision as it comes from replication (CouchDB new_edits=false): the
 * revision is "<start>-<hashes[0]>", its parent "<start-1>-<hashes[1]>" and
 * so on (CouchDB's `_revisions`, newest first; n_hashes ≥ 1, at most
 * start and FS_STORE_HISTORY_MAX). All pointers are borrowed for the call.
 */
typedef struct fs_store_rev_in {
	const char *id;
	unsigned long start;
	const char *const *hashes;
	size_t n_hashes;
	int deleted;
	const uint8_t *body; /* may be NULL when body_len is 0 */
	size_t body_len;
} fs_store_rev_in;

/*
 * Inserts n revisions (n ≤ 100000) in one transaction: idempotent (a known
 * revision changes nothing) and order-independent (unknown ancestors become
 * body-less nodes, as CouchDB keeps them, and are linked when they arrive).
 * Each touched document's history is stemmed to revs_limit and its winner
 * recomputed; nothing is queued in the outbox. If ckpt_remote is not NULL
 * the pull checkpoint (ckpt_remote, FS_STORE_PULL) is set to ckpt_seq in
 * the same transaction. FS_E_INPUT for a malformed revision (the whole
 * batch is refused).
 */
int fs_store_put_remote(fs_store *st, const fs_store_rev_in *revs, size_t n,
                        const char *ckpt_remote, const char *ckpt_seq, fs_errbuf *eb) FS_WUR;

/* ---- reads ---- */

typedef struct fs_store_doc {
	char *id;
	char rev[FS_REV_MAX];
	int deleted;
	uint64_t seq;  /* local sequence at which this revision arrived */
	uint8_t *body; /* never NULL (a 1-byte buffer when body_len is 0) */
	size_t body_len;
} fs_store_doc;

/*
 * One revision of id with its body: the winner when rev is NULL (it may be
 * a tombstone: check deleted), else the given revision. FS_E_NOTFOUND when
 * the document or revision is unknown, or the revision is known without a body whose
 * body never arrived. The caller frees *out with fs_store_doc_free.
 */
int fs_store_get(fs_store *st, const char *id, const char *rev, fs_store_doc **out,
                 fs_errbuf *eb) FS_WUR;
void fs_store_doc_free(fs_store_doc *d);

/* A revision's ancestry in `_revisions` form: revision "<start>-<hashes[0]>", newest first. */
typedef struct fs_store_history {
	unsigned long start;
	size_t n;
	char **hashes;
} fs_store_history;

/*
 * The known ancestry of rev (itself first, back to the root or to where it
 * was stemmed), at most max entries (0: no bound beyond revs_limit).
 * FS_E_NOTFOUND when unknown. The caller frees *out with fs_store_history_free.
 */
int fs_store_history_get(fs_store *st, const char *id, const char *rev, size_t max,
                         fs_store_history **out, fs_errbuf *eb) FS_WUR;
void fs_store_history_free(fs_store_history *h);

typedef struct fs_store_leaf {
	char rev[FS_REV_MAX];
	int deleted;
} fs_store_leaf;

/* All leaves of a document, the winner first, then by CouchDB's order. */
typedef struct fs_store_leaves {
	size_t n;
	fs_store_leaf *v;
} fs_store_leaves;

/*
 * The leaves of id (open_revs=all). FS_E_NOTFOUND when the document is
 * unknown. The caller frees *out with fs_store_leaves_free.
 */
int fs_store_leaves_get(fs_store *st, const char *id, fs_store_leaves **out, fs_errbuf *eb) FS_WUR;
void fs_store_leaves_free(fs_store_leaves *l);

/* revs_diff: one document's revisions to ask about (borrowed). */
typedef struct fs_store_diff_query {
	const char *id;
	const char *const *revs;
	size_t n;
} fs_store_diff_query;

/* One document with at least one missing revision. */
typedef struct fs_store_diff_entry {
	char *id;
	size_t n_missing;
	char **missing;
	size_t n_ancestors;
	char **possible_ancestors; /* leaves with a lower generation than a missing rev */
} fs_store_diff_entry;

typedef struct fs_store_diff {
	size_t n;
	fs_store_diff_entry *v;
} fs_store_diff;

/*
 * Which of the queried revisions the store lacks (a revision known without its body counts as
 * known, as in CouchDB). Only documents with something missing are listed, in query order. At most
 * 100000 queries. The caller frees *out with fs_store_diff_free.
 */
int fs_store_revs_diff(fs_store *st, const fs_store_diff_query *q, size_t n, fs_store_diff **out,
                       fs_errbuf *eb) FS_WUR;
void fs_store_diff_free(fs_store_diff *d);

/*
 * One document in the changes feed or the conflicts list. Every pointer is
 * valid only during the callback.
 */
typedef struct fs_store_change {
	const char *id;
	uint64_t seq;       /* the document's latest local sequence */
	const char *winner; /* winning revision */
	int deleted;        /* the winner is a tombstone */
	size_t n_leaves;    /* all leaves, the winner first (style=all_docs) */
	const fs_store_leaf *leaves;
} fs_store_change;

/*
 * Returns 0 to go on; anything else stops the walk and is returned by the
 * caller. It may call the store's read functions on the same handle, but
 * must not write to it.
 */
typedef int (*fs_store_change_cb)(void *ctx, const fs_store_change *c);

/*
 * Calls cb for each document changed after local sequence since, in
 * sequence order, each document once (at its latest sequence), at most
 * limit documents (0: all). *last_seq (if not NULL) is set to the sequence
 * of the last document delivered, or to since when none was.
 */
int fs_store_changes(fs_store *st, uint64_t since, size_t limit, fs_store_change_cb cb, void *ctx,
                     uint64_t *last_seq, fs_errbuf *eb) FS_WUR;

/* Calls cb for each document with more than one non-deleted leaf, by id. */
int fs_store_conflicts(fs_store *st, fs_store_change_cb cb, void *ctx, fs_errbuf *eb) FS_WUR;

typedef struct fs_store_info {
	uint64_t doc_count;     /* documents whose winner is not deleted */
	uint64_t doc_del_count; /* documents whose winner is a tombstone */
	uint64_t update_seq;    /* the latest local sequence */
} fs_store_info;

/* Fills *out (cleared at entry). */
int fs_store_info_get(fs_store *st, fs_store_info *out, fs_errbuf *eb) FS_WUR;

/* ---- the outbox ---- */

typedef struct fs_store_outbox_row {
	int64_t oid; /* row id, increasing in queue order */
	char *id;
	char rev[FS_REV_MAX];
	int deleted;
	int64_t queued_at; /* Unix time in milliseconds */
	uint8_t *body;     /* never NULL */
	size_t body_len;
	int status;   /* quarantine only: the server's status (e.g. 403), else 0 */
	char *reason; /* quarantine only: why, else NULL */
	size_t size;  /* the body's length, also when it was not read (fs_store_outbox_next) */
	/* fs_store_outbox_next only: the revision's history, as fs_store_history_get
	 * gives it (what a pusher sends as _revisions); NULL otherwise. */
	fs_store_history *history;
} fs_store_outbox_row;

typedef struct fs_store_outbox {
	size_t n;
	fs_store_outbox_row *v;
} fs_store_outbox;

/*
 * The oldest queued rows, in order: at most max_rows (≥ 1) rows and, after the
 * first, at most max_bytes of id and body bytes in all (the first row is
 * always returned, so one large row cannot block the queue). Reading
 * removes nothing. A row names a leaf to push with its history
 * (fs_store_history_get); when a newer local edit of the same document
 * descends from a queued row's revision, that row is dropped in the edit's
 * transaction and the new row (at the end of the queue) carries it as
 * history, so nothing is lost and a confirm of the dropped oid is a no-op.
 * Rows on other branches stay. The caller frees *out with
 * fs_store_outbox_free; an empty queue gives n == 0.
 */
int fs_store_outbox_read(fs_store *st, size_t max_rows, size_t max_bytes, fs_store_outbox **out,
                         fs_errbuf *eb) FS_WUR;
void fs_store_outbox_free(fs_store_outbox *o);

/* Removes confirmed rows (n ≤ 100000) in one transaction; unknown oids are ignored. */
int fs_store_outbox_confirm(fs_store *st, const int64_t *oids, size_t n, fs_errbuf *eb) FS_WUR;

/*
 * Moves a queued row to the quarantine with the server's status and a
 * reason (≤ FS_STORE_NAME_MAX bytes, no body text), so the rest of the
 * queue goes on. FS_E_NOTFOUND when oid is not queued.
 */
int fs_store_outbox_quarantine(fs_store *st, int64_t oid, int status, const char *reason,
                               fs_errbuf *eb) FS_WUR;

/* All quarantined rows, oldest first; the caller frees *out with fs_store_outbox_free. */
int fs_store_quarantine_list(fs_store *st, fs_store_outbox **out, fs_errbuf *eb) FS_WUR;

/*
 * Puts a quarantined row back at the end of the queue; its new oid goes
 * to *new_oid (may be NULL). FS_E_NOTFOUND when oid is not quarantined.
 */
int fs_store_quarantine_retry(fs_store *st, int64_t oid, int64_t *new_oid, fs_errbuf *eb) FS_WUR;

typedef struct fs_store_outbox_stats {
	uint64_t queued;
	int64_t oldest_at; /* queued_at of the oldest queued row (ms), 0 when empty */
	uint64_t quarantined;
} fs_store_outbox_stats;

/*
 * Counts for `status`; *out cleared at entry. The oldest row is found by
 * its key; the counts scan the outbox, which is small in normal use.
 */
int fs_store_outbox_stats_get(fs_store *st, fs_store_outbox_stats *out, fs_errbuf *eb) FS_WUR;

/* ---- checkpoints ---- */

typedef enum fs_store_dir {
	FS_STORE_PULL = 0,
	FS_STORE_PUSH = 1,
} fs_store_dir;

/*
 * The saved sequence (an opaque string) for (remote, dir). FS_E_NOTFOUND
 * when none. The caller frees *seq with free().
 */
int fs_store_checkpoint_get(fs_store *st, const char *remote, fs_store_dir dir, char **seq,
                            fs_errbuf *eb) FS_WUR;
int fs_store_checkpoint_set(fs_store *st, const char *remote, fs_store_dir dir, const char *seq,
                            fs_errbuf *eb) FS_WUR;

/* ---- _local documents: not replicated, no tree, revision "0-N" ---- */

/*
 * id is the part after "_local/". Writes the revision to rev and the body
 * to *body (caller frees with free(); never NULL on success).
 * FS_E_NOTFOUND when absent.
 */
int fs_store_local_get(fs_store *st, const char *id, char rev[FS_REV_MAX], uint8_t **body,
                       size_t *body_len, fs_errbuf *eb) FS_WUR;

/*
 * Writes a _local document. base_rev must be its current revision, or NULL
 * when it does not exist; otherwise FS_E_STORE_CONFLICT (as CouchDB).
 * The new revision "0-N" goes to new_rev (may be NULL).
 */
int fs_store_local_put(fs_store *st, const char *id, const char *base_rev, const uint8_t *body,
                       size_t body_len, char new_rev[FS_REV_MAX], fs_errbuf *eb) FS_WUR;

/* Deletes a _local document; base_rev as for put. FS_E_NOTFOUND when absent. */
int fs_store_local_delete(fs_store *st, const char *id, const char *base_rev, fs_errbuf *eb) FS_WUR;

/* ---- meta: opaque values for the daemon (wrapped keys, space descriptor) ---- */

/* The caller frees *val with free() (never NULL on success). FS_E_NOTFOUND when absent. */
int fs_store_meta_get(fs_store *st, const char *key, uint8_t **val, size_t *len,
                      fs_errbuf *eb) FS_WUR;
int fs_store_meta_set(fs_store *st, const char *key, const uint8_t *val, size_t len,
                      fs_errbuf *eb) FS_WUR;
/* FS_OK even when absent. */
int fs_store_meta_delete(fs_store *st, const char *key, fs_errbuf *eb) FS_WUR;

/* Longest prefix fs_store_docs_prefix and fs_store_meta_list take. */
#define FS_STORE_PREFIX_MAX 64

/*
 * Calls cb for each meta key that starts with prefix (1..FS_STORE_PREFIX_MAX
 * bytes), by key; key and val are valid only during the call. cb returns 0
 * to go on; anything else stops the walk and is returned. cb may read the
 * store, not write it.
 */
typedef int (*fs_store_meta_cb)(void *ctx, const char *key, const uint8_t *val, size_t len);
int fs_store_meta_list(fs_store *st, const char *prefix, fs_store_meta_cb cb, void *ctx,
                       fs_errbuf *eb) FS_WUR;

/* ---- appended for the hub ---- */

/* How many documents changed after local sequence since (the hub's _changes "pending"). */
int fs_store_changes_pending(fs_store *st, uint64_t since, uint64_t *out, fs_errbuf *eb) FS_WUR;

/* The latest local sequence handed out (a write's changes are those after it). No I/O. */
uint64_t fs_store_seq(const fs_store *st);

/* ---- appended for team sharing ---- */

/*
 * Calls cb for each document whose id starts with prefix (1..
 * FS_STORE_PREFIX_MAX bytes, not ending in byte 0xff), by id, deleted ones
 * included, as fs_store_conflicts does. A range read of the id index: the
 * team documents ("fs:...") are found without walking every record.
 */
int fs_store_docs_prefix(fs_store *st, const char *prefix, fs_store_change_cb cb, void *ctx,
                         fs_errbuf *eb) FS_WUR;

typedef struct fs_store_prefix_stats {
	uint64_t docs;    /* documents whose id starts with the prefix */
	uint64_t max_seq; /* the highest local sequence among them: any change raises it */
} fs_store_prefix_stats;

/* One live leaf with its body and the local sequence at which it arrived;
 * pointers valid during the call. Returns FS_OK to go on; anything else
 * stops the walk and is returned. */
typedef int (*fs_store_leaf_cb)(void *ctx, const char *id, const char *rev, uint64_t seq,
                                const uint8_t *body, size_t len);

/*
 * Calls cb for every live (not deleted) leaf of each document whose id
 * starts with prefix, with its body (a conflicting revision does not hide
 * the one it conflicts with), and fills *stats (may be NULL). cb NULL:
 * only the stats, which tell cheaply whether anything changed.
 */
int fs_store_leaves_prefix(fs_store *st, const char *prefix, fs_store_leaf_cb cb, void *ctx,
                           fs_store_prefix_stats *stats, fs_errbuf *eb) FS_WUR;

/*
 * Copies the write-ahead log into the database file now (a passive SQLite
 * checkpoint; every commit is already durable in the log, so this only
 * moves data). Call outside a transaction. FS_E_STORE_BUSY if a reader
 * held it back, FS_E_STORE_FULL, FS_E_IO.
 */
int fs_store_checkpoint(fs_store *st, fs_errbuf *eb) FS_WUR;

/* Pages in the write-ahead log not yet checkpointed, as of the last commit or checkpoint. No I/O.
 */
unsigned fs_store_wal_pages(const fs_store *st);

/* ---- appended for a pusher that streams its batches ---- */

/*
 * fs_store_outbox_read for a pusher that reads each body as it sends it:
 * the oldest queued rows with an oid above after (0: from the start of the
 * queue), without their bodies: body is a 1-byte buffer, body_len 0, and
 * size the body's length, which max_bytes counts as fs_store_outbox_read
 * does; with each row's history, whose ids max_bytes counts too (as sent:
 * quoted, with a comma, plus a pointer each). The body of a row comes from
 * fs_store_get with its id and rev; once a newer edit superseded the row,
 * stemming may have taken that body (FS_E_NOTFOUND: nothing left to
 * send). The caller frees *out with fs_store_outbox_free.
 */
int fs_store_outbox_next(fs_store *st, int64_t after, size_t max_rows, size_t max_bytes,
                         fs_store_outbox **out, fs_errbuf *eb) FS_WUR;

/* *queued: the outbox row oid is still waiting to be sent (not confirmed,
 * superseded or quarantined). */
int fs_store_outbox_queued(fs_store *st, int64_t oid, int *queued, fs_errbuf *eb) FS_WUR;

#endif
