/*
 * common/fs.h: what every fieldsync module shares and nothing more: the
 * project-wide error codes with their plain-word messages, the error buffer
 * a library fills instead of printing, and bounded JSON parsing for input
 * that comes from outside the process (a cJSON tree, or a scanner for
 * batches of documents read once).
 */
#ifndef FS_COMMON_H
#define FS_COMMON_H

#include <stdarg.h>
#include <stddef.h>

#define FS_WUR __attribute__((warn_unused_result))

/*
 * Error codes. They go into logs, the local API's JSON and scripts' exit
 * paths, so a code is never renumbered or reused: always add new codes last
 * in their module's range. Ranges: general 1-99, crypto 100-199, store
 * 200-299, sync 300-399, casework 400-499, daemon 500-599, hub 600-699.
 */
typedef enum fs_err {
	FS_OK = 0,

	FS_E_INTERNAL = 1, /* a bug or an impossible state */
	FS_E_NOMEM = 2,    /* out of memory */
	FS_E_ARG = 3,      /* the caller passed an invalid argument */
	FS_E_INPUT = 4,    /* malformed input from outside */
	FS_E_TOOBIG = 5,   /* input over its size, depth or count limit */
	FS_E_IO = 6,       /* an operating-system I/O call failed */
	FS_E_NOTFOUND = 7, /* no such object */
	FS_E_EXISTS = 8,   /* the object already exists */

	FS_E_CRYPTO_INIT = 100,     /* libsodium could not start */
	FS_E_PASSPHRASE = 101,      /* wrong passphrase */
	FS_E_KEYFILE = 102,         /* key file corrupt or unreadable */
	FS_E_TAMPERED = 103,        /* ciphertext or tag does not authenticate */
	FS_E_MISBOUND = 104,        /* envelope belongs to another _id or space */
	FS_E_BASE64 = 105,          /* bad base64 */
	FS_E_ENV_VERSION = 106,     /* unknown envelope version */
	FS_E_UNKNOWN_KID = 107,     /* no key with this key id */
	FS_E_TRUNCATED = 108,       /* input shorter than its format requires */
	FS_E_SIGNATURE = 109,       /* a signature does not verify */
	FS_E_KEYFILE_VERSION = 110, /* key file from a newer version */
	FS_E_TEAM_NOSPACE = 111,    /* no space (first epoch) found yet */
	FS_E_TEAM_AMBIGUOUS = 112,  /* the database holds several spaces */
	FS_E_TEAM_NOKEY = 113,      /* this device has not been given the space key */
	FS_E_TEAM_REVOKED = 114,    /* this device was removed from the space */
	FS_E_TEAM_NOTMEMBER = 115,  /* only a member device may do this */

	FS_E_STORE_CONFLICT = 200, /* stale base revision (CouchDB's 409) */
	FS_E_STORE_LOCKED = 201,   /* another process holds the store */
	FS_E_STORE_CORRUPT = 202,  /* the database file is damaged */
	FS_E_STORE_FOREIGN = 203,  /* not a fieldsync store */
	FS_E_STORE_FULL = 204,     /* the disk is full */
	FS_E_STORE_TOO_NEW = 205,  /* written by a newer fieldsync */
	FS_E_STORE_BUSY = 206,     /* the database stayed locked too long */
	FS_E_STORE_READONLY = 207, /* the file or its folder is read-only */

	FS_E_SYNC_OFFLINE = 300,   /* could not connect */
	FS_E_SYNC_DNS = 301,       /* host name did not resolve */
	FS_E_SYNC_TLS_CERT = 302,  /* certificate not trusted or wrong host */
	FS_E_SYNC_TLS_PIN = 303,   /* certificate key does not match the pin */
	FS_E_SYNC_AUTH = 304,      /* credentials refused (401/403) */
	FS_E_SYNC_SERVER = 305,    /* the server failed (5xx) */
	FS_E_SYNC_MALFORMED = 306, /* the server's answer is not valid */
	FS_E_SYNC_TIMEOUT = 307,   /* the server stopped answering */
	FS_E_SYNC_RATE = 308,      /* the server asked us to slow down (429) */
	FS_E_SYNC_INSECURE = 309,  /* URL refused: plain http or bad scheme */
	FS_E_SYNC_NODB = 310,      /* the remote database does not exist */
	FS_E_SYNC_TLS = 311,       /* other TLS handshake failure */
	FS_E_SYNC_REFUSED = 312,   /* the server refused a document for good */
	FS_E_SYNC_CONNLOST = 313,  /* the connection broke during a transfer */
	FS_E_SYNC_REDIRECT = 314,  /* the server redirected; redirects are not followed */

	FS_E_DAEMON_LOCKED = 500,   /* the daemon is locked: unlock first */
	FS_E_DAEMON_NOINIT = 501,   /* no key file yet: fieldsync init */
	FS_E_DAEMON_SLOWDOWN = 502, /* too many wrong passphrases: wait */
	FS_E_DAEMON_DOWN = 503,     /* the CLI cannot reach the daemon */
	FS_E_DAEMON_CONFIG = 504,   /* the configuration file is invalid */
	FS_E_DAEMON_PEER = 505,     /* a local API client of another user */
	FS_E_DAEMON_WAITING = 506,  /* a remote's credentials need a first unlock */
	FS_E_CW_INVALID = 400,      /* a case, visit or addendum fails validation */
	FS_E_CW_VERSION = 401,      /* a record from a newer casework format */
	FS_E_CW_FINAL = 402,        /* the visit is finalized: immutable, add an addendum */
	FS_E_CW_UNSIGNED = 403,     /* a draft visit has no signature to check */
	FS_E_CW_UNMERGEABLE = 404,  /* conflicting revisions need a person to choose */
	FS_E_CW_TZ = 405,           /* unknown time zone */
} fs_err;

/* Plain words for a person, e.g. "wrong passphrase". Never NULL. */
const char *fs_strerror(int code);

/* Stable identifier for scripts and JSON, e.g. "FS_E_PASSPHRASE". Never NULL. */
const char *fs_errname(int code);

#define FS_ERRMSG_MAX 256

/*
 * A library fills this instead of printing. The message adds detail for a
 * person (which file, which document) and must never hold a secret: no key,
 * passphrase, note text or name from a record.
 */
typedef struct fs_errbuf {
	int code;
	char msg[FS_ERRMSG_MAX];
} fs_errbuf;

/* Records code and message in eb (if not NULL) and returns code. */
int fs_err_set(fs_errbuf *eb, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Clears eb (if not NULL). */
void fs_err_clear(fs_errbuf *eb);

/* A growing list of strings it owns (callbacks that collect ids or keys). */
typedef struct fs_strv {
	char **v;
	size_t n, cap;
} fs_strv;

/* Appends a copy of s: FS_OK or FS_E_NOMEM (the list unchanged). */
int fs_strv_push(fs_strv *l, const char *s) FS_WUR;
/* Frees every string and the list, leaving it empty. */
void fs_strv_free(fs_strv *l);

/*
 * JSON from outside the process is bounded before cJSON sees it: at most
 * max_len bytes and max_depth levels of nesting (cJSON's own limit is 1000
 * and it recurses, so a deep document could exhaust the stack).
 */
#define FS_JSON_DEPTH_DEFAULT 32

struct cJSON;

/*
 * Parses len bytes of text (need not be NUL-terminated). On success *out is
 * a tree the caller frees with cJSON_Delete. Errors: FS_E_TOOBIG (size or
 * depth), FS_E_INPUT (not JSON), FS_E_NOMEM.
 */
int fs_json_parse(const char *text, size_t len, size_t max_len, int max_depth, struct cJSON **out,
                  fs_errbuf *eb) FS_WUR;

/*
 * A JSON scanner (common/scan.c) for batches of documents read once (the
 * hub's requests, the client's _bulk_get answers): it validates as it
 * goes, bounded in size and nesting, and builds no tree; the caller reads
 * the members it knows and keeps the others as the bytes they came in. The
 * fields are the scanner's; callers use the functions. Each function
 * returns 0, or -1 after recording the first error (its code in rc, its
 * message in eb); a parse then returns rc.
 */
typedef struct fs_scan {
	const char *p, *end;
	int max_depth;
	int ws;               /* whitespace was skipped since fs_scan_value cleared it */
	int rc;               /* FS_OK, or the first error's code */
	int code;             /* the code of malformed text (FS_E_INPUT, FS_E_SYNC_MALFORMED) */
	const char *not_json; /* and its message */
	fs_errbuf *eb;
} fs_scan;

/* Scans len bytes of text; FS_E_TOOBIG when len is over max_len. */
int fs_scan_start(fs_scan *s, const char *text, size_t len, size_t max_len, int max_depth, int code,
                  const char *not_json, fs_errbuf *eb);
/* Records code and why as the error unless one is recorded; returns -1. */
int fs_scan_fail(fs_scan *s, int code, const char *why);
/* The next byte after whitespace (not taken), or -1 at the end. */
int fs_scan_peek(fs_scan *s);
int fs_scan_take(fs_scan *s, char c);
/* Checks any value and steps past it; depth: the containers it is in. */
int fs_scan_skip(fs_scan *s, int depth);
/* The same, giving the value's bytes and whether whitespace is among them. */
int fs_scan_value(fs_scan *s, int depth, const char **start, size_t *len, int *spaced);
/* Copies a checked value's n bytes to out without whitespace outside strings; the length. */
size_t fs_scan_compact(const char *p, size_t n, char *out);
/* The string at the cursor (its opening quote) checked and stepped past; *esc: it has escapes. */
int fs_scan_skip_string(fs_scan *s, int *esc);
/*
 * A string into out (cap bytes with the NUL), failing with why when it is
 * no string, too long or holds U+0000. *len (may be NULL) gets its length.
 */
int fs_scan_string(fs_scan *s, char *out, size_t cap, size_t *len, const char *why);
/*
 * Decodes a checked string's bytes between its quotes into out (cap with
 * the NUL): its length, or -1 when it does not fit or holds U+0000. With
 * prefix set, a string too long is cut to cap-1 bytes, one holding U+0000
 * is cut before it, and *cut set.
 */
long fs_scan_decode(const char *raw, const char *raw_end, char *out, size_t cap, int prefix,
                    int *cut);
int fs_scan_skip_number(fs_scan *s);
int fs_scan_literal(fs_scan *s, const char *lit, size_t n);
/* true or false into *v, else a failure with why. */
int fs_scan_bool(fs_scan *s, int *v, const char *why);
/*
 * CouchDB's `_revisions` at the cursor: {"start": N, "ids": ["hash", ...]},
 * newest first; the first start and ids count, other members are skipped.
 * *start and *start_len: the start number's text as sent (the caller checks
 * its range); *ids and *n: the hashes, copied, each 1 to hash_cap-1 bytes
 * (the caller frees them and the array, also after a failure). More than
 * max_ids ids, a missing or mistyped start or ids, fail (why).
 */
int fs_scan_revisions(fs_scan *s, int depth, size_t max_ids, size_t hash_cap, const char *why,
                      const char **start, size_t *start_len, char ***ids, size_t *n);
/* Opens an object or array at depth: *empty when it closes at once; else why. */
int fs_scan_object_open(fs_scan *s, int depth, int *empty, const char *why);
int fs_scan_array_open(fs_scan *s, int depth, int *empty, const char *why);
/* After a member or element: 1 when another follows, 0 at close, -1 on error. */
int fs_scan_next(fs_scan *s, char close);
/* Nothing but whitespace may follow the value (not even a NUL). */
int fs_scan_finish(fs_scan *s);

#define FS_SCAN_KEY_PREFIX 32 /* decoded bytes of a member name kept to tell a known one */

/* A member name: its raw span (quotes included) and the start of its decoded form. */
typedef struct fs_scan_key {
	const char *raw, *raw_end;
	char name[FS_SCAN_KEY_PREFIX];
	int cut; /* longer than name holds (or holds U+0000): never a known name */
} fs_scan_key;

/* A member's name and its colon. */
int fs_scan_member(fs_scan *s, fs_scan_key *k);
int fs_scan_key_is(const fs_scan_key *k, const char *name);

#endif
