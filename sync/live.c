/*
 * sync/live.c: continuous replication as a state machine the daemon's
 * loop steps: when to sync (start, debounced local edits, server changes
 * seen by a longpoll _changes, retries with backoff), when to probe first
 * (after a network change or a lost connection), and the longpoll request
 * itself, run on the remote's longpoll slot by the daemon's multi handle.
 * Syncs and probes are replicate.c's jobs: on the daemon's multi handle
 * they never block a step; without one (tests, tools) a step runs them to
 * their end.
 */
#include "sync_int.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LP_SLOT     FS_SYNC_SLOT_LONGPOLL
#define LP_SLACK_MS 5000 /* our own bound on top of the server's longpoll timeout */
#define PATH_LEN    8192

enum lp_state { LP_IDLE, LP_READY, LP_RUNNING };

struct fs_sync_live {
	fs_store *st;
	fs_sync_remote *r;
	CURLM *multi; /* the caller's; NULL: a step runs its job to the end */
	fs_sync_opts o;
	uint32_t debounce_ms;
	fs_sync_backoff bo;
	int sync_due;  /* a full sync (push and pull) is wanted */
	int probe_due; /* reachability is in doubt: a probe goes before the sync */
	/* A probe that answers after a failed probe or a network change means
	 * the way to the server is back: the backoff starts over. After a sync
	 * that failed with a reachable server it does not, or a server that
	 * breaks every sync would be hammered once a second. */
	int probe_resets;
	uint64_t push_at; /* 0: no local edit waiting */
	uint64_t retry_at;
	fs_sync_job *job; /* the sync or probe under way, or NULL */
	int job_probe;
	int edited;            /* a local edit came while the job ran */
	fs_sync_progress told; /* the job's counts already reported by a step */
	int synced;            /* the last step ended a sync */
	enum lp_state lp;
};

int fs_sync_live_new(fs_store *st, fs_sync_remote *r, const fs_sync_opts *o, uint32_t debounce_ms,
                     fs_sync_live **out, fs_errbuf *eb)
{
	fs_sync_live *l;

	if (out == NULL)
		return fs_err_set(eb, FS_E_ARG, "no output");
	*out = NULL;
	if (st == NULL || r == NULL)
		return fs_err_set(eb, FS_E_ARG, "no store or remote");
	if ((l = calloc(1, sizeof(*l))) == NULL)
		return fs_err_set(eb, FS_E_NOMEM, NULL);
	l->st = st;
	l->r = r;
	if (o)
		l->o = *o;
	l->o.max_retries = 0; /* retries are this machine's job, not a blocking sleep */
	if (l->o.remote_name == NULL)
		l->o.remote_name = fs_sync_remote_url(r);
	l->debounce_ms = debounce_ms ? debounce_ms : FS_SYNC_DEBOUNCE_MS;
	fs_sync_backoff_init(&l->bo, l->o.backoff_min_ms, l->o.backoff_max_ms);
	l->sync_due = 1;
	*out = l;
	return FS_OK;
}

int fs_sync_live_set_multi(fs_sync_live *l, CURLM *multi, fs_errbuf *eb)
{
	if (l == NULL)
		return fs_err_set(eb, FS_E_ARG, "no live state");
	if (l->job)
		return fs_err_set(eb, FS_E_ARG, "a sync is under way");
	l->multi = multi;
	return FS_OK;
}

void fs_sync_live_free(fs_sync_live *l)
{
	if (l == NULL)
		return;
	fs_sync_job_free(l->job);
	free(l);
}

void fs_sync_live_changed(fs_sync_live *l, uint64_t now_ms)
{
	if (l == NULL)
		return;
	/* The first edit starts the clock; later ones do not push it back, so a
	 * steady stream of edits still goes out every debounce_ms. */
	if (l->push_at == 0)
		l->push_at = now_ms + l->debounce_ms;
	if (l->job)
		l->edited = 1; /* the sync under way may have read the outbox already */
}

void fs_sync_live_network_changed(fs_sync_live *l)
{
	if (l == NULL)
		return;
	/* A transfer under way may sit on a route that is gone. */
	fs_sync_job_free(l->job);
	l->job = NULL;
	fs_sync_backoff_reset(&l->bo);
	l->retry_at = 0;
	l->sync_due = 1;
	l->probe_due = 1;
	l->probe_resets = 1;
}

void fs_sync_live_sync_now(fs_sync_live *l)
{
	if (l == NULL)
		return;
	fs_sync_backoff_reset(&l->bo);
	l->retry_at = 0;
	l->sync_due = 1;
	if (l->job)
		l->edited = 1; /* another sync follows the one under way */
}

int fs_sync_live_synced(const fs_sync_live *l)
{
	return l ? l->synced : 0;
}

int fs_sync_live_transfer_done(fs_sync_live *l, CURL *easy, CURLcode cc)
{
	return l && l->job && fs_sync_job_transfer_done(l->job, easy, cc);
}

/* Lost the way to the server (as opposed to a server that answered with a
 * failure): the next try is a probe. */
static int unreachable(int rc)
{
	return rc == FS_E_SYNC_OFFLINE || rc == FS_E_SYNC_DNS || rc == FS_E_SYNC_TIMEOUT ||
	       rc == FS_E_SYNC_CONNLOST;
}

static void failed(fs_sync_live *l, int rc, uint64_t now, long retry_after)
{
	l->sync_due = 1;
	l->probe_due = unreachable(rc);
	l->retry_at = now + fs_sync_backoff_fail(&l->bo, randombytes_random(), retry_after);
}

static int start_longpoll(fs_sync_live *l, fs_errbuf *eb)
{
	char path[PATH_LEN];
	char *since = NULL, *esc = NULL;
	CURL *h;
	int rc;

	rc = fs_store_checkpoint_get(l->st, l->o.remote_name, FS_STORE_PULL, &since, eb);
	if (rc == FS_E_NOTFOUND)
		rc = FS_OK;
	if (rc != FS_OK)
		return rc;
	if ((esc = curl_easy_escape(NULL, since ? since : "0", 0)) == NULL) {
		rc = fs_err_set(eb, FS_E_NOMEM, NULL);
	} else if ((size_t)snprintf(path, sizeof(path),
	                            "_changes?feed=longpoll&style=all_docs&limit=1&heartbeat=%u"
	                            "&timeout=%u&since=%s",
	                            FS_SYNC_HEARTBEAT_MS, FS_SYNC_LONGPOLL_MS,
	                            esc) >= sizeof(path)) {
		rc = fs_err_set(eb, FS_E_TOOBIG, "sequence too long for a request");
	} else {
		/* Some servers (pouchdb-server) ignore timeout: bound it ourselves. */
		rc = fs_sync_req_prepare_on(l->r, LP_SLOT, FS_SYNC_GET, path, NULL, 0,
		                            FS_SYNC_LONGPOLL_MS + LP_SLACK_MS, &h, eb);
		if (rc == FS_OK)
			l->lp = LP_READY;
	}
	curl_free(esc);
	free(since);
	return rc;
}

/* Adds what the job counted since the last report to *prog. */
static void tell(fs_sync_live *l, fs_sync_progress *prog)
{
	fs_sync_progress now;

	fs_sync_job_progress(l->job, &now);
	prog->docs_pushed += now.docs_pushed - l->told.docs_pushed;
	prog->docs_pulled += now.docs_pulled - l->told.docs_pulled;
	prog->docs_refused += now.docs_refused - l->told.docs_refused;
	prog->bytes_sent += now.bytes_sent - l->told.bytes_sent;
	prog->bytes_received += now.bytes_received - l->told.bytes_received;
	prog->retries += now.retries - l->told.retries;
	l->told = now;
}

/*
 * Moves the job on; when it ends, decides what comes next. Returns FS_OK
 * while it runs or after success, else the error that ended it.
 */
static int advance(fs_sync_live *l, uint64_t now, fs_sync_progress *prog, fs_errbuf *eb)
{
	uint32_t w;
	int rc = l->multi ? fs_sync_job_run(l->job, now, &w, eb) : fs_sync_job_wait(l->job, eb);
	long retry_after = fs_sync_job_retry_after(l->job);

	tell(l, prog);
	if (rc == FS_SYNC_PENDING)
		return FS_OK;
	fs_sync_job_free(l->job);
	l->job = NULL;
	if (l->job_probe) {
		if (rc != FS_OK) {
			l->probe_resets = 1;
			failed(l, rc, now, retry_after);
			return rc;
		}
		/* The server answers: sync at once. */
		if (l->probe_resets)
			fs_sync_backoff_reset(&l->bo);
		l->probe_due = 0;
		l->probe_resets = 0;
		l->retry_at = 0;
		l->sync_due = 1;
		return FS_OK;
	}
	l->synced = 1;
	if (rc != FS_OK) {
		l->probe_resets = 0;
		failed(l, rc, now, retry_after);
		return rc;
	}
	fs_sync_backoff_reset(&l->bo);
	l->sync_due = l->edited && l->push_at == 0; /* a "sync now" during the job */
	if (!l->edited)
		l->push_at = 0;
	l->retry_at = 0;
	return FS_OK;
}

static int start_job(fs_sync_live *l, uint64_t now, fs_sync_progress *prog, fs_errbuf *eb)
{
	unsigned what = l->probe_due ? FS_SYNC_JOB_PROBE : FS_SYNC_JOB_PUSH | FS_SYNC_JOB_PULL;
	int rc = fs_sync_job_new(l->st, l->r, &l->o, what, l->multi, &l->job, eb);

	if (rc != FS_OK) {
		failed(l, rc, now, 0);
		return rc;
	}
	l->job_probe = l->probe_due;
	l->edited = 0;
	memset(&l->told, 0, sizeof(l->told));
	return advance(l, now, prog, eb);
}

int fs_sync_live_step(fs_sync_live *l, uint64_t now, uint32_t *wait_ms, fs_sync_progress *prog,
                      fs_errbuf *eb)
{
	fs_sync_progress local;
	uint64_t next = FS_SYNC_LONGPOLL_MS;
	int rc = FS_OK;

	if (prog == NULL)
		prog = &local;
	memset(prog, 0, sizeof(*prog));
	if (l == NULL || wait_ms == NULL)
		return fs_err_set(eb, FS_E_ARG, "no live state");
	l->synced = 0;
	if (l->push_at && l->push_at <= now)
		l->sync_due = 1;
	if (l->job)
		rc = advance(l, now, prog, eb);
	/* At most a probe and the sync its answer starts, in one step. */
	for (int i = 0; i < 2 && rc == FS_OK && l->job == NULL && l->sync_due && l->retry_at <= now;
	     i++)
		rc = start_job(l, now, prog, eb);
	if (l->job)
		next = FS_SYNC_LONGPOLL_MS; /* its transfers' ends wake the caller */
	else if (l->sync_due)
		next = l->retry_at > now ? l->retry_at - now : 0;
	else if (l->push_at)
		next = l->push_at > now ? l->push_at - now : 0;
	/* Idle and healthy: listen for the server's changes. */
	if (!l->sync_due && l->job == NULL && l->lp == LP_IDLE) {
		int lrc = start_longpoll(l, rc == FS_OK ? eb : NULL);
		if (lrc != FS_OK && rc == FS_OK)
			rc = lrc;
	}
	*wait_ms = next > UINT32_MAX ? UINT32_MAX : (uint32_t)next;
	return rc;
}

CURL *fs_sync_live_longpoll(fs_sync_live *l)
{
	CURL *h = NULL;
	if (l == NULL || l->lp != LP_READY)
		return NULL;
	/* prepare_on already set it up; hand out the slot's handle once. */
	if (fs_sync_req_prepare_handle(l->r, LP_SLOT, &h) != FS_OK)
		return NULL;
	l->lp = LP_RUNNING;
	return h;
}

int fs_sync_live_longpoll_done(fs_sync_live *l, CURLcode cc, uint64_t now, fs_errbuf *eb)
{
	fs_sync_resp resp;
	fs_sync_changes *ch = NULL;
	int rc;

	if (l == NULL || l->lp != LP_RUNNING)
		return fs_err_set(eb, FS_E_ARG, "no longpoll under way");
	l->lp = LP_IDLE;
	rc = fs_sync_req_finish_on(l->r, LP_SLOT, cc, &resp, eb);
	if (rc == FS_E_SYNC_TIMEOUT && cc == CURLE_OPERATION_TIMEDOUT)
		return FS_OK; /* nothing happened within our bound: the next step renews it */
	if (rc == FS_OK)
		rc = fs_sync_parse_changes(resp.body, resp.len, fs_sync_remote_max_depth(l->r), &ch,
		                           eb);
	if (rc != FS_OK) {
		/* Not while a sync runs: its own end decides what follows. */
		if (l->job == NULL)
			failed(l, rc, now, resp.retry_after_s);
		return rc;
	}
	if (ch->n > 0)
		l->sync_due = 1;
	fs_sync_changes_free(ch);
	return FS_OK;
}
