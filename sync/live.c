/*
 * sync/live.c: continuous replication as a state machine the daemon's
 * loop steps: when to sync (start, debounced local edits, server changes
 * seen by a longpoll _changes, retries with backoff) and the longpoll
 * request itself, run on the remote's second slot by the daemon's multi.
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
	fs_sync_opts o;
	uint32_t debounce_ms;
	fs_sync_backoff bo;
	int sync_due;     /* a full sync (push and pull) is wanted */
	uint64_t push_at; /* 0: no local edit waiting */
	uint64_t retry_at;
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

void fs_sync_live_free(fs_sync_live *l)
{
	free(l);
}

void fs_sync_live_changed(fs_sync_live *l, uint64_t now_ms)
{
	/* The first edit starts the clock; later ones do not push it back, so a
	 * steady stream of edits still goes out every debounce_ms. */
	if (l && l->push_at == 0)
		l->push_at = now_ms + l->debounce_ms;
}

void fs_sync_live_network_changed(fs_sync_live *l)
{
	if (l == NULL)
		return;
	fs_sync_backoff_reset(&l->bo);
	l->retry_at = 0;
	l->sync_due = 1;
}

static void failed(fs_sync_live *l, int rc, uint64_t now, long retry_after)
{
	(void)rc;
	l->sync_due = 1;
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

int fs_sync_live_step(fs_sync_live *l, uint64_t now, uint32_t *wait_ms, fs_sync_progress *prog,
                      fs_errbuf *eb)
{
	uint64_t next = FS_SYNC_LONGPOLL_MS;
	int rc = FS_OK;

	if (prog)
		memset(prog, 0, sizeof(*prog));
	if (l == NULL || wait_ms == NULL)
		return fs_err_set(eb, FS_E_ARG, "no live state");
	if (l->push_at && l->push_at <= now)
		l->sync_due = 1;
	if (l->sync_due && l->retry_at <= now) {
		fs_sync_progress p;
		rc = fs_sync_once(l->st, l->r, &l->o, &p, eb);
		if (prog)
			*prog = p;
		if (rc == FS_OK) {
			fs_sync_backoff_reset(&l->bo);
			l->sync_due = 0;
			l->push_at = 0;
			l->retry_at = 0;
		} else {
			failed(l, rc, now, 0);
		}
	}
	if (l->sync_due)
		next = l->retry_at > now ? l->retry_at - now : 0;
	else if (l->push_at)
		next = l->push_at > now ? l->push_at - now : 0;
	/* Idle and healthy: listen for the server's changes. */
	if (!l->sync_due && l->lp == LP_IDLE) {
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
		failed(l, rc, now, resp.retry_after_s);
		return rc;
	}
	if (ch->n > 0)
		l->sync_due = 1;
	fs_sync_changes_free(ch);
	return FS_OK;
}
