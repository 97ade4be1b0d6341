/*
 * sync/sync_int.h: sync/'s internals shared between its files and its tests:
 * requests on a remote's easy handle (run by curl_easy_perform here, or by
 * the daemon's curl multi handle), the mapping of transfer failures to
 * fs_err codes, and the bounded parsers of the server's answers.
 */
#ifndef FS_SYNC_INT_H
#define FS_SYNC_INT_H

#include <curl/curl.h>
#include <stddef.h>
#include <time.h>

#include "sync.h"

/* ---- Requests ---- */

enum fs_sync_method { FS_SYNC_GET, FS_SYNC_POST, FS_SYNC_PUT };

/* The answer to the last request; body points into the remote (valid until
 * the next prepare) and is NUL-terminated after len bytes. */
typedef struct fs_sync_resp {
	long status;
	const char *body;
	size_t len;
	long retry_after_s; /* from a Retry-After header, 0 if none */
} fs_sync_resp;

/*
 * Sets up the remote's easy handle for one request. path is relative to the
 * database URL ("" for the database itself, "_changes?since=0"), or to the
 * server root when it starts with '/'. body (JSON, may be NULL for GET) is
 * not copied: it must live until fs_sync_req_finish. *easy belongs to r: run
 * it with curl_easy_perform or add it to a multi handle, never clean it up.
 */
int fs_sync_req_prepare(fs_sync_remote *r, enum fs_sync_method m, const char *path,
                        const char *body, size_t body_len, CURL **easy, fs_errbuf *eb);

/*
 * Turns the transfer's result (cc from curl_easy_perform or the multi
 * message) into an fs_err code; fills *resp for any HTTP answer, also errors,
 * so the caller can read a Retry-After or a per-document refusal.
 */
int fs_sync_req_finish(fs_sync_remote *r, CURLcode cc, fs_sync_resp *resp, fs_errbuf *eb);

/*
 * A remote has FS_SYNC_SLOTS request slots, each with its own easy handle
 * and answer buffer, so that one request can be under way (a longpoll, or
 * the next batch's fetch) while another is prepared or read. Slot 0 is the
 * one the functions above use. timeout_ms bounds the whole request (0: no
 * bound beyond the connect and low-speed limits).
 */
#define FS_SYNC_SLOTS         3
#define FS_SYNC_SLOT_LONGPOLL 2
int fs_sync_req_prepare_on(fs_sync_remote *r, int slot, enum fs_sync_method m, const char *path,
                           const char *body, size_t body_len, long timeout_ms, CURL **easy,
                           fs_errbuf *eb);
int fs_sync_req_finish_on(fs_sync_remote *r, int slot, CURLcode cc, fs_sync_resp *resp,
                          fs_errbuf *eb);

/*
 * Runs a prepared slot as a transfer on multi handle m: the remote's own
 * (m NULL; blocking callers drive it with fs_sync_remote_pump or
 * fs_sync_req_wait) or a caller's (the daemon's loop). start puts the
 * request on the wire and returns. On a caller's handle the caller reads
 * the multi messages and hands each to fs_sync_req_ended; collect then
 * removes the finished transfer and reads it as fs_sync_req_finish does.
 * cancel abandons a transfer (its connection is closed). The longpoll slot
 * is not run this way: the daemon adds it to its handle itself.
 */
int fs_sync_req_start_on(fs_sync_remote *r, int slot, CURLM *m, fs_errbuf *eb);
int fs_sync_req_start(fs_sync_remote *r, int slot, fs_errbuf *eb); /* on the remote's own */
/* The slot of r that ran easy (now marked finished with cc), or -1. */
int fs_sync_req_ended(fs_sync_remote *r, CURL *easy, CURLcode cc);
int fs_sync_req_busy(const fs_sync_remote *r, int slot);  /* started, not collected */
int fs_sync_req_ready(const fs_sync_remote *r, int slot); /* started and finished */
int fs_sync_req_collect(fs_sync_remote *r, int slot, fs_sync_resp *resp, fs_errbuf *eb);
void fs_sync_req_cancel(fs_sync_remote *r, int slot);
/* Lets go of idle slots' answer buffers grown past 4 MiB (a job that ended
 * with a big answer would otherwise keep it until the remote is freed). */
void fs_sync_remote_trim(fs_sync_remote *r);
/* Waits on the remote's own multi handle up to timeout_ms for activity,
 * then moves its finished transfers into their slots. */
int fs_sync_remote_pump(fs_sync_remote *r, int timeout_ms, fs_errbuf *eb);
/* Drives the remote's own multi handle until the slot's transfer ends,
 * then collects it. */
int fs_sync_req_wait(fs_sync_remote *r, int slot, fs_sync_resp *resp, fs_errbuf *eb);

/*
 * Like fs_sync_req_prepare_on for a POST whose body of exactly size bytes
 * is produced while it is sent: read (curl's read callback) fills curl's
 * buffer from ud, seek rewinds it to offset 0 when curl must send again
 * (a reused connection found dead). A push streams _bulk_docs this way,
 * so the request is never whole in memory; the length is known, so the
 * request has a Content-Length like any other.
 */
typedef size_t (*fs_sync_read_fn)(char *buf, size_t size, size_t n, void *ud);
typedef int (*fs_sync_seek_fn)(void *ud, curl_off_t offset, int origin);
int fs_sync_req_prepare_stream(fs_sync_remote *r, int slot, const char *path, size_t size,
                               fs_sync_read_fn read, fs_sync_seek_fn seek, void *ud,
                               long timeout_ms, CURL **easy, fs_errbuf *eb);

/* The easy handle of a slot, as last prepared. */
int fs_sync_req_prepare_handle(fs_sync_remote *r, int slot, CURL **easy);

/* prepare + curl_easy_perform + finish. */
int fs_sync_req_perform(fs_sync_remote *r, enum fs_sync_method m, const char *path,
                        const char *body, size_t body_len, fs_sync_resp *resp, fs_errbuf *eb);

/* The database URL (checkpoint key by default). */
const char *fs_sync_remote_url(const fs_sync_remote *r);

/* The remote's JSON limits, for the parsers. */
size_t fs_sync_remote_max_response(const fs_sync_remote *r);
int fs_sync_remote_max_depth(const fs_sync_remote *r);

/* Pure mappings, exposed for tests. */
int fs_sync_map_curl(CURLcode cc, const char *detail, fs_errbuf *eb);
int fs_sync_map_status(long status, fs_errbuf *eb);
/* Retry-After value (delta-seconds or HTTP-date) in seconds from now; 0 when
 * absent or unreadable; bounded by FS_SYNC_RETRY_AFTER_MAX_S. */
long fs_sync_parse_retry_after(const char *v, size_t n, time_t now);

/* ---- Parsers of server answers: bytes in, bounded structs out ---- */

#define FS_SYNC_ID_MAX    1024   /* longest document id we accept (as store/) */
#define FS_SYNC_SEQ_MAX   4096   /* longest sequence (CouchDB's are long opaque strings) */
#define FS_SYNC_MAX_ITEMS 100000 /* results, revs or docs in one answer */
#define FS_SYNC_MAX_REVS  10000  /* _revisions.ids of one document (revs_limit is 1000) */

/* A sequence from the server is opaque: kept as the text of its JSON value
 * (a string's content, or a number as written) and sent back unchanged. */

typedef struct fs_sync_change {
	char *id;
	char *seq;
	char **revs; /* leaf revisions, changes[].rev */
	size_t nrevs;
	int deleted;
} fs_sync_change;

typedef struct fs_sync_changes {
	fs_sync_change *v;
	size_t n;
	char *last_seq; /* NULL when the answer had none */
	long pending;   /* -1 when absent */
} fs_sync_changes;

int fs_sync_parse_changes(const char *buf, size_t len, int max_depth, fs_sync_changes **out,
                          fs_errbuf *eb) FS_WUR;
void fs_sync_changes_free(fs_sync_changes *c);

/* _revs_diff: for each document, the revisions the server lacks. */
typedef struct fs_sync_missing {
	char *id;
	char **revs;
	size_t nrevs;
} fs_sync_missing;

typedef struct fs_sync_revs_diff {
	fs_sync_missing *v;
	size_t n;
} fs_sync_revs_diff;

int fs_sync_parse_revs_diff(const char *buf, size_t len, int max_depth, fs_sync_revs_diff **out,
                            fs_errbuf *eb) FS_WUR;
void fs_sync_revs_diff_free(fs_sync_revs_diff *d);

/* _bulk_docs: per-document outcome. With new_edits:false servers list only
 * the documents they did not store, so absence means accepted. */
enum fs_sync_doc_class {
	FS_SYNC_DOC_OK,      /* stored */
	FS_SYNC_DOC_REFUSED, /* refused for good (forbidden, bad request): quarantine */
	FS_SYNC_DOC_RETRY,   /* failed for now: send again later */
};

typedef struct fs_sync_doc_result {
	char *id;
	char *rev;    /* NULL if the server gave none */
	char *error;  /* NULL when ok */
	char *reason; /* server's words, NULL if none; may be shown to a person */
	enum fs_sync_doc_class cls;
} fs_sync_doc_result;

typedef struct fs_sync_bulk_result {
	fs_sync_doc_result *v;
	size_t n;
} fs_sync_bulk_result;

int fs_sync_parse_bulk_docs(const char *buf, size_t len, int max_depth, fs_sync_bulk_result **out,
                            fs_errbuf *eb) FS_WUR;
void fs_sync_bulk_result_free(fs_sync_bulk_result *b);

/* Class of a CouchDB per-document error string ("forbidden", "conflict", ...). */
enum fs_sync_doc_class fs_sync_doc_error_class(const char *error);

/* One revision of a document as fetched (_bulk_get or open_revs). */
typedef struct fs_sync_rev {
	char *id;
	char *rev;
	int deleted;
	char **history; /* full rev ids newest first: history[0] == rev */
	size_t nhistory;
	char *body; /* the members not starting with '_', as a JSON object text */
	size_t body_len;
} fs_sync_rev;

/* A fetched revision the server could not give (missing, or an error). */
typedef struct fs_sync_rev_error {
	char *id;  /* NULL when the server did not say */
	char *rev; /* NULL when the server did not say */
	char *error;
} fs_sync_rev_error;

typedef struct fs_sync_revs {
	fs_sync_rev *v;
	size_t n;
	fs_sync_rev_error *err;
	size_t nerr;
} fs_sync_revs;

/* POST _bulk_get?revs=true answer: {"results":[{"id":..,"docs":[{"ok":doc}|{"error":..}]}]}. */
int fs_sync_parse_bulk_get(const char *buf, size_t len, int max_depth, fs_sync_revs **out,
                           fs_errbuf *eb) FS_WUR;

/* GET /{db}/{id}?revs=true&open_revs=[..] with Accept: application/json:
 * [{"ok":doc}|{"missing":rev}]. id is the document asked for: every
 * returned doc must carry it. */
int fs_sync_parse_open_revs(const char *buf, size_t len, int max_depth, const char *id,
                            fs_sync_revs **out, fs_errbuf *eb) FS_WUR;
void fs_sync_revs_free(fs_sync_revs *r);

/* GET / */
typedef struct fs_sync_server_info {
	char *vendor;  /* "CouchDB", "PouchDB authors", ...; NULL if unknown */
	char *version; /* NULL if absent */
} fs_sync_server_info;

int fs_sync_parse_server_info(const char *buf, size_t len, int max_depth, fs_sync_server_info **out,
                              fs_errbuf *eb) FS_WUR;
void fs_sync_server_info_free(fs_sync_server_info *s);

/* GET /{db} */
typedef struct fs_sync_db_info {
	char *db_name;
	char *update_seq;    /* opaque */
	long long doc_count; /* -1 if absent */
} fs_sync_db_info;

int fs_sync_parse_db_info(const char *buf, size_t len, int max_depth, fs_sync_db_info **out,
                          fs_errbuf *eb) FS_WUR;
void fs_sync_db_info_free(fs_sync_db_info *d);

/* How many answers through r came with a Content-Encoding (compressed). */
uint64_t fs_sync_remote_encoded(const fs_sync_remote *r);

#endif
