/*
 * hub/hub_srv.h: what server.c (HTTP, lifecycle) and api.c (the CouchDB
 * endpoints) share: the hub itself, one request's state and the reply
 * helpers. Kept apart from hub_int.h so the parsers build without
 * libmicrohttpd for the fuzz target.
 */
#ifndef FS_HUB_SRV_H
#define FS_HUB_SRV_H

#include <microhttpd.h>

#include "hub_int.h"

#define FS_HUB_VERSION    "0.1.0"
#define FS_HUB_FAIL_SLOTS 64

struct hub_fail {
	char addr[64];
	unsigned n;
	uint64_t last_ms;
};

/* ---- wait.c: requests parked without a thread ---- */

enum { HUB_JOB_NONE, HUB_JOB_QUEUED, HUB_JOB_RUNNING, HUB_JOB_DONE, HUB_JOB_CANCELLED };

/*
 * What a parked request waits for; it lives in the request's own state.
 * The caller sets c, db, seen_writes and due_ms before hub_wait_park; the
 * rest belongs to wait.c. A job of no request (hub_wait_submit) has c NULL.
 */
typedef struct hub_waiter {
	struct MHD_Connection *c;
	const hub_db *db;     /* resumed by a write to db (NULL: not) */
	uint64_t seen_writes; /* db->writes the request has seen */
	uint64_t due_ms;      /* resumed at this hub_now_ms() (0: never) */
	int parked, kicked;
	struct hub_waiter *prev, *next;
	void (*job)(void *);
	void *job_arg;
	int job_state; /* HUB_JOB_* */
	struct hub_waiter *job_next;
} hub_waiter;

typedef struct hub_wait hub_wait;

/*
 * Starts the timer thread and `workers` job threads; free with hub_wait_free.
 * tick (may be NULL) is called on the timer thread at the times asked for
 * with hub_wait_tick_at, no lock of wait.c held: keep it short.
 */
int hub_wait_new(unsigned workers, void (*tick)(void *), void *tick_arg, hub_wait **out,
                 fs_errbuf *eb) FS_WUR;
/* Calls tick at due_ms (hub_now_ms), or earlier if an earlier call is due already. */
void hub_wait_tick_at(hub_wait *w, uint64_t due_ms);
/* Ends the threads (after hub_wait_stop). NULL is a no-op. */
void hub_wait_free(hub_wait *w);
/*
 * Before libmicrohttpd stops: cancels queued jobs, waits for running ones,
 * then resumes every parked request and refuses new parks and jobs.
 */
void hub_wait_stop(hub_wait *w);
int hub_wait_stopping(hub_wait *w);
/*
 * From a libmicrohttpd callback of x->c (the access handler or a content
 * reader): suspends x->c until db has a write after seen_writes, due_ms
 * passes, or x's job ends. Returns 1 when parked (the caller returns
 * without an answer, or 0 bytes), 0 when it need not wait (one of those
 * happened already, or the hub stops): then the caller looks again.
 */
int hub_wait_park(hub_wait *w, hub_waiter *x);
/* Before x's memory goes (its request or response ends). */
void hub_wait_forget(hub_wait *w, hub_waiter *x);
/* After a write to db (db->writes already bumped): resumes its waiters. */
void hub_wait_wake_db(hub_wait *w, const hub_db *db);
/*
 * Runs job(arg) on a worker thread, then resumes x (or makes its next
 * park return at once). The caller parks x right after. FS_E_STORE_BUSY
 * when the hub stops (answer 503). With x->c NULL the job belongs to no
 * request: nothing is resumed; x must stay valid until its state is
 * HUB_JOB_DONE or HUB_JOB_CANCELLED (hub_wait_stop sees to that).
 */
int hub_wait_submit(hub_wait *w, hub_waiter *x, void (*job)(void *), void *arg) FS_WUR;
/* HUB_JOB_DONE once the job ran, HUB_JOB_CANCELLED when it never will. */
int hub_wait_job_state(hub_wait *w, const hub_waiter *x);

struct fs_hub {
	char dir[512];
	hub_conf conf;
	int quiet;
	hub_auth *auth;
	char uuid[33];
	char *cert_pem, *key_pem;
	struct MHD_Daemon *d;
	hub_wait *wait; /* parked requests, while d runs */
	unsigned port;
	int stopping;            /* read with __atomic_load_n */
	pthread_mutex_t mu;      /* dbs (the list) and fails */
	pthread_mutex_t open_mu; /* one database file opened at a time; never under mu */
	hub_db *dbs;
	struct hub_fail fails[FS_HUB_FAIL_SLOTS];
};

/* Where a request is: its login is checked before anything else. */
enum { REQ_NEW, REQ_VERIFY, REQ_DELAYED, REQ_READY };

typedef struct hub_req {
	fs_hub *h;
	int phase;      /* REQ_* */
	hub_cred *cred; /* while REQ_VERIFY */
	hub_waiter wait;
	uint64_t t0;
	char method[16];
	char path[256];
	hub_buf body;
	size_t body_expected; /* Content-Length, once checked against max_body */
	int toobig;
	int responded;
	int authed;
	hub_who who;
	unsigned status;
	size_t bytes;
} hub_req;

uint64_t hub_now_ms(void);
int hub_db_get(fs_hub *h, const char *name, int create, hub_db **out, fs_errbuf *eb) FS_WUR;
int hub_db_list(fs_hub *h, hub_buf *b);
/* After a write to db, under db->mu: wakes its parked longpolls, plans its checkpoint. */
void hub_db_wrote(hub_db *db);

/* Each takes b's memory (b is left empty). */
enum MHD_Result hub_send(hub_req *r, struct MHD_Connection *c, unsigned status, hub_buf *b);
enum MHD_Result hub_send_err(hub_req *r, struct MHD_Connection *c, unsigned status,
                             const char *error, const char *reason);
enum MHD_Result hub_send_fs_err(hub_req *r, struct MHD_Connection *c, int code,
                                const fs_errbuf *eb);

/* team.c: after a write of documents ids (n of them) by who into db: binds
 * device key documents to the token that uploaded them and refuses the
 * tokens of devices the team revoked. Cheap when no id is a team document. */
void hub_team_written(fs_hub *h, hub_db *db, const hub_who *who, const char *const *ids, size_t n);
/* 0 when a write of id must be refused (403): a team document's edit or
 * deletion. new_edits: rev is the base of an edit (NULL: a new document);
 * else (replication) the revision itself. deleted: a tombstone. */
int hub_team_write_ok(const char *id, const char *rev, int deleted, int new_edits);

/* api.c: a complete request (body read, credentials checked if any came). */
enum MHD_Result hub_route(fs_hub *h, hub_req *r, struct MHD_Connection *c, const char *url,
                          const char *method);

#endif
