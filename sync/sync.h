/*
 * sync/sync.h: fieldsync's CouchDB replication client. It owns the
 * connection to one remote database over HTTPS (libcurl), the retry policy
 * (exponential backoff with full jitter) and, on top, push and pull. It moves
 * envelopes it never decrypts and holds no record keys.
 */
#ifndef FS_SYNC_H
#define FS_SYNC_H

#include <curl/curl.h>
#include <stddef.h>
#include <stdint.h>

#include "fs.h"
#include "store.h"

/* ---- Remote: one database on one server, over kept-alive connections ---- */

#define FS_SYNC_CONNECT_TIMEOUT_MS 10000L      /* default connect timeout */
#define FS_SYNC_LOW_SPEED_TIME_S   30L         /* abort below the low-speed limit this long */
#define FS_SYNC_LOW_SPEED_LIMIT    1L          /* bytes per second */
#define FS_SYNC_MAX_RESPONSE       (64u << 20) /* default cap on one response body */
#define FS_SYNC_MAX_PINS           8           /* public-key pins (rotation: old + new) */

typedef struct fs_sync_remote fs_sync_remote;

/* Compressed answers are accepted (gzip, deflate, br, zstd), except from a
 * loopback address, where compressing costs more than it saves. */
typedef struct fs_sync_remote_opts {
	/* Database URL, e.g. "https://couch.example.org:6984/team42". https only;
	 * credentials, query and fragment are refused. */
	const char *url;
	/* PEM file with the CA certificates to trust instead of the system's. */
	const char *ca_file;
	/* NULL, or 1 to FS_SYNC_MAX_PINS "sha256//<base64>" joined by ';': the
	 * server's public key must match one (several allow key rotation). */
	const char *pins;
	/* Allows plain http, and only to a loopback address (tests, a local hub). */
	int allow_http_loopback;
	long connect_timeout_ms; /* 0: FS_SYNC_CONNECT_TIMEOUT_MS */
	long low_speed_time_s;   /* 0: FS_SYNC_LOW_SPEED_TIME_S */
	long low_speed_limit;    /* 0: FS_SYNC_LOW_SPEED_LIMIT */
	size_t max_response;     /* 0: FS_SYNC_MAX_RESPONSE */
	int max_json_depth;      /* 0: FS_JSON_DEPTH_DEFAULT */
	/* Compressed answers (gzip, deflate, br, zstd): 0 asks for them except
	 * from a loopback peer, where they cost CPU for nothing; 1 always asks
	 * (a loopback tunnel to a distant server, tests); -1 never. */
	int compress;
} fs_sync_remote_opts;

/*
 * Checks opts and sets up the connection (nothing is sent yet). Errors:
 * FS_E_SYNC_INSECURE (scheme, or http to a non-loopback host or without
 * allow_http_loopback), FS_E_ARG (bad URL, credentials in the URL, bad pin
 * list), FS_E_NOMEM. On success the caller frees *out with
 * fs_sync_remote_free.
 */
int fs_sync_remote_new(const fs_sync_remote_opts *opts, fs_sync_remote **out, fs_errbuf *eb) FS_WUR;

/* Frees r and wipes the credentials it holds; NULL is a no-op. */
void fs_sync_remote_free(fs_sync_remote *r);

/*
 * HTTP basic credentials (a CouchDB user). Copied into locked memory; the
 * caller may wipe its copies at once. libcurl keeps its own copy of what it
 * sends for as long as r lives. Never logged, never in an error message.
 */
int fs_sync_remote_set_basic(fs_sync_remote *r, const char *user, const char *password,
                             fs_errbuf *eb) FS_WUR;

/* A bearer token (CouchDB JWT, hub device token); same handling as basic. */
int fs_sync_remote_set_bearer(fs_sync_remote *r, const char *token, fs_errbuf *eb) FS_WUR;

/* Bytes sent and received through r since it was made (bodies as delivered). */
void fs_sync_remote_bytes(const fs_sync_remote *r, uint64_t *sent, uint64_t *received);

/*
 * Checks that the server answers and the database exists (GET /{db}).
 * Errors: every FS_E_SYNC_* that the transfer can meet, FS_E_SYNC_NODB.
 */
int fs_sync_remote_check(fs_sync_remote *r, fs_errbuf *eb) FS_WUR;

/*
 * True for failures that may go away by themselves (offline, DNS, timeout,
 * broken connection, 5xx, 429, a malformed or oversized answer): retry them
 * with backoff. False for those a person must fix (TLS, pin, credentials,
 * insecure URL, missing database) and for local errors.
 */
int fs_sync_err_transient(int code);

/* ---- Backoff: exponential with full jitter, a pure state machine ---- */

#define FS_SYNC_BACKOFF_MIN_MS    1000u
#define FS_SYNC_BACKOFF_MAX_MS    300000u
#define FS_SYNC_RETRY_AFTER_MAX_S 3600L /* a server's Retry-After is honoured up to this */

typedef struct fs_sync_backoff {
	uint32_t min_ms;
	uint32_t max_ms;
	uint32_t failures; /* consecutive failures since the last success or reset */
} fs_sync_backoff;

/* min_ms or max_ms 0: the defaults above. */
void fs_sync_backoff_init(fs_sync_backoff *b, uint32_t min_ms, uint32_t max_ms);

/*
 * Records one failure and returns the delay before the next try: uniform over
 * [min, min(max, min * 2^failures)], drawn from rnd (pass randombytes_random();
 * tests pass fixed values). A server's Retry-After (seconds, 0 if none) raises
 * the delay to at least that, bounded by FS_SYNC_RETRY_AFTER_MAX_S.
 */
uint32_t fs_sync_backoff_fail(fs_sync_backoff *b, uint32_t rnd, long retry_after_s);

/* A success, or the caller saw the network change: the next failure starts over. */
void fs_sync_backoff_reset(fs_sync_backoff *b);

/* ---- Replication: push the outbox, pull the changes feed ---- */

#define FS_SYNC_BATCH_DOCS      1000       /* documents per _bulk_docs / _changes batch */
#define FS_SYNC_BATCH_BYTES     (8u << 20) /* body bytes per push batch (one large row passes) */
#define FS_SYNC_CHANGES_BATCHES 2          /* a _changes request covers this many fetch batches */

typedef struct fs_sync_progress {
	uint64_t docs_pushed;  /* revisions the server confirmed (or already had) */
	uint64_t docs_pulled;  /* revisions written to the store */
	uint64_t docs_refused; /* outbox rows moved to the quarantine */
	uint64_t bytes_sent;   /* request bodies */
	uint64_t bytes_received;
	unsigned retries; /* transient failures retried */
} fs_sync_progress;

/* Called after each batch; the struct is valid only during the call. */
typedef void (*fs_sync_progress_fn)(void *ctx, const fs_sync_progress *p);

typedef struct fs_sync_opts {
	/* Key of this remote's checkpoints in the store (<= FS_STORE_NAME_MAX
	 * bytes); NULL: the database URL. */
	const char *remote_name;
	size_t batch_docs;  /* 0: FS_SYNC_BATCH_DOCS */
	size_t batch_bytes; /* 0: FS_SYNC_BATCH_BYTES */
	/* Transient failures (fs_sync_err_transient) are retried this many times
	 * in the call, sleeping the backoff's delay; 0 returns them at once so
	 * the daemon's loop can schedule the retry itself. */
	unsigned max_retries;
	uint32_t backoff_min_ms, backoff_max_ms; /* 0: the defaults */
	/* Fetch with GET ?open_revs= instead of POST _bulk_get (servers that
	 * lack it are detected by themselves; this forces it, e.g. for tests). */
	int no_bulk_get;
	/* Kept for compatibility and ignored: _revs_diff is asked before every
	 * upload batch. */
	int always_revs_diff;
	fs_sync_progress_fn progress;
	void *progress_ctx;
} fs_sync_opts;

/*
 * Pushes the outbox of st to r: batches of queued rows (bounded by count and
 * bytes) go through _revs_diff, then the missing ones through _bulk_docs
 * with new_edits:false and their _revisions. A row leaves the outbox only
 * after the server confirmed it (or already had it). A document the server
 * refuses for good (e.g. forbidden, or a batch refused as a whole, which is
 * split until the culprit is alone) goes to the quarantine with the
 * server's reason; the rest proceeds. Returns FS_OK when the outbox is
 * empty, else the error that stopped it (what was confirmed stays
 * confirmed; nothing else changes). o may be NULL; *prog (may be NULL) gets
 * the counts, also on error.
 */
int fs_sync_push(fs_store *st, fs_sync_remote *r, const fs_sync_opts *o, fs_sync_progress *prog,
                 fs_errbuf *eb) FS_WUR;

/*
 * Pulls from r into st: _changes (style=all_docs) since the saved pull
 * checkpoint, in batches; revisions the store lacks are fetched with
 * _bulk_get (revs=true), or per document with open_revs when the server
 * has no _bulk_get, and written with the batch's checkpoint in one store
 * transaction. Returns FS_OK when the feed is drained.
 */
int fs_sync_pull(fs_store *st, fs_sync_remote *r, const fs_sync_opts *o, fs_sync_progress *prog,
                 fs_errbuf *eb) FS_WUR;

/* One-shot sync: push, then pull (counts add up in *prog). */
int fs_sync_once(fs_store *st, fs_sync_remote *r, const fs_sync_opts *o, fs_sync_progress *prog,
                 fs_errbuf *eb) FS_WUR;

/* ---- Replication as a state machine on a caller's curl multi handle ---- */

/*
 * The calls above are drivers of this one engine: a job does a push, a
 * pull, both, or a probe, and never waits. Its requests run as easy
 * handles on the caller's multi handle (the daemon's loop), which reads
 * the multi messages and hands each to fs_sync_job_transfer_done; between
 * answers the job only does local work (store reads and writes).
 */
typedef struct fs_sync_job fs_sync_job;

#define FS_SYNC_JOB_PUSH         1u   /* the outbox, batch by batch, until empty */
#define FS_SYNC_JOB_PULL         2u   /* the changes feed, until drained */
#define FS_SYNC_JOB_PROBE        4u   /* GET /{db} within FS_SYNC_PROBE_TIMEOUT_MS, nothing else */
#define FS_SYNC_PENDING          (-1) /* fs_sync_job_run: not finished, not an error */
#define FS_SYNC_PROBE_TIMEOUT_MS 10000L

/*
 * A job of the kinds in what (push before pull; a probe alone). multi is
 * the caller's handle, or NULL for the remote's own (then only
 * fs_sync_job_wait drives it). st, r, multi and o's strings are borrowed
 * and must outlive *out, which the caller frees with fs_sync_job_free.
 * Nothing is sent before the first fs_sync_job_run.
 */
int fs_sync_job_new(fs_store *st, fs_sync_remote *r, const fs_sync_opts *o, unsigned what,
                    CURLM *multi, fs_sync_job **out, fs_errbuf *eb) FS_WUR;

/* Abandons the job's transfers (removed from the multi handle, their
 * connections closed: confirmed work stays confirmed) and frees it; NULL
 * is a no-op. */
void fs_sync_job_free(fs_sync_job *j);

/* A transfer on the multi handle ended (from its CURLMSG_DONE message):
 * returns 1 if it was one of j's (call fs_sync_job_run next), else 0. */
int fs_sync_job_transfer_done(fs_sync_job *j, CURL *easy, CURLcode cc);

/*
 * Does all that can be done at now_ms without waiting: reads the answers
 * that arrived, writes to the store, starts the next requests. Returns
 * FS_SYNC_PENDING while requests are under way or a retry waits (*wait_ms:
 * when it wants to be called even if no transfer ends; UINT32_MAX: only
 * then), FS_OK when done, or the error that ended it (as fs_sync_push).
 */
int fs_sync_job_run(fs_sync_job *j, uint64_t now_ms, uint32_t *wait_ms, fs_errbuf *eb) FS_WUR;

/* Drives a job made with multi NULL to its end on the remote's own multi
 * handle, sleeping only in curl_multi_poll. Returns as fs_sync_job_run. */
int fs_sync_job_wait(fs_sync_job *j, fs_errbuf *eb) FS_WUR;

/* The job's counts so far; a server's Retry-After from its last answer
 * (seconds, 0 if none). */
void fs_sync_job_progress(const fs_sync_job *j, fs_sync_progress *out);
long fs_sync_job_retry_after(const fs_sync_job *j);

/* ---- Continuous replication, driven by the daemon's event loop ---- */

#define FS_SYNC_DEBOUNCE_MS  2000u  /* a local edit is pushed this soon */
#define FS_SYNC_LONGPOLL_MS  60000u /* a longpoll _changes is renewed this often */
#define FS_SYNC_HEARTBEAT_MS 10000u /* the server's keep-alive newlines on a longpoll */

typedef struct fs_sync_live fs_sync_live;

/*
 * Continuous replication of st with r: a sync at start, a push soon after
 * local edits (debounce_ms, 0: FS_SYNC_DEBOUNCE_MS), a pull whenever the
 * server's longpoll _changes reports something, retries with backoff. st,
 * r and o's strings are borrowed and must outlive *out, which the caller
 * frees with fs_sync_live_free.
 */
int fs_sync_live_new(fs_store *st, fs_sync_remote *r, const fs_sync_opts *o, uint32_t debounce_ms,
                     fs_sync_live **out, fs_errbuf *eb) FS_WUR;
/* Frees l, abandoning a sync under way; NULL is a no-op. Remove a running
 * longpoll handle from the daemon's multi handle first. */
void fs_sync_live_free(fs_sync_live *l);

/*
 * From now on l's syncs and probes run as transfers on multi (the daemon's
 * loop): a step never waits for them. The caller reads multi's messages
 * and hands each to fs_sync_live_transfer_done; a step after one that was
 * l's moves the sync on. Without a multi handle (the default) a step runs
 * its sync to the end. Refused while a sync is under way.
 */
int fs_sync_live_set_multi(fs_sync_live *l, CURLM *multi, fs_errbuf *eb) FS_WUR;

/* A transfer on the multi handle ended: 1 if it was one of l's syncs or
 * probes (step l soon), else 0. The longpoll has its own call below. */
int fs_sync_live_transfer_done(fs_sync_live *l, CURL *easy, CURLcode cc);

/* A local edit was saved: push within the debounce delay. */
void fs_sync_live_changed(fs_sync_live *l, uint64_t now_ms);

/* The network changed: abandon a sync under way (its connection may be on
 * a dead route), forget the backoff, and at the next step probe the server
 * (GET /{db}, FS_SYNC_PROBE_TIMEOUT_MS): an answer starts a sync at once,
 * a failure backs off. Failures that lose the server (offline, DNS,
 * timeout, broken connection) are also retried with a probe first. */
void fs_sync_live_network_changed(fs_sync_live *l);

/* A person asked for a sync: at the next step, without waiting for the
 * backoff; a sync under way goes on and another follows it. */
void fs_sync_live_sync_now(fs_sync_live *l);

/*
 * Does what is due at now_ms and sets *wait_ms to when the next step is
 * wanted. With a multi handle it starts or moves on a sync and returns at
 * once; without, a sync runs to its end in the call. Returns FS_OK, or the
 * error of a sync or probe that ended in this call (a retry is then
 * scheduled with backoff). *prog (may be NULL) gets what was pushed and
 * pulled since the previous step.
 */
int fs_sync_live_step(fs_sync_live *l, uint64_t now_ms, uint32_t *wait_ms, fs_sync_progress *prog,
                      fs_errbuf *eb) FS_WUR;

/* 1 when the last step ended a sync (its return says how), else 0 (a
 * sync still under way, only a probe, or nothing was due). */
int fs_sync_live_synced(const fs_sync_live *l);

/*
 * After a step: the longpoll request to run, or NULL. The handle belongs to
 * l: add it to the daemon's multi handle (or run curl_easy_perform), and when
 * it completes remove it and call fs_sync_live_longpoll_done with its result.
 */
CURL *fs_sync_live_longpoll(fs_sync_live *l);

/* The longpoll ended (cc from the multi message): schedules a pull if the
 * server reported changes, a retry if it failed. */
int fs_sync_live_longpoll_done(fs_sync_live *l, CURLcode cc, uint64_t now_ms, fs_errbuf *eb) FS_WUR;

#endif
