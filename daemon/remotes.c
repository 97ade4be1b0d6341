/*
 * daemon/remotes.c: the servers this device replicates with: their
 * settings (the store's meta "remotes", JSON without secrets), their
 * credentials (wrapped under the master key, unwrapped at the first unlock
 * and kept in locked memory until exit), and continuous replication of each
 * through sync/'s live state, stepped by the daemon's loop; every transfer
 * (syncs, probes, longpolls) runs on the loop's multi handle, so a step
 * never waits for the network.
 */
#include "daemon_int.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define META_REMOTES "remotes"
#define META_CRED_P  "cred:"

static int name_ok(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (n == 0 || n >= FSD_REMOTE_NAME)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_' || c == '.'))
			return 0;
	}
	return 1;
}

static void stop_remote(struct fsd *d, struct fsd_remote *rm)
{
	if (rm->lp) {
		curl_multi_remove_handle(d->multi, rm->lp);
		rm->lp = NULL;
	}
	fs_sync_live_free(rm->live);
	fs_sync_remote_free(rm->r);
	rm->live = NULL;
	rm->r = NULL;
}

static void free_remote(struct fsd *d, struct fsd_remote *rm)
{
	stop_remote(d, rm);
	fs_crypto_secret_free(rm->cred);
	free(rm->pins);
	free(rm->ca_file);
	free(rm->user);
	memset(rm, 0, sizeof(*rm));
}

void fsd_remotes_free(struct fsd *d)
{
	for (size_t i = 0; i < d->n_remotes; i++)
		free_remote(d, &d->remotes[i]);
	d->n_remotes = 0;
}

/* Builds the connection; a remote with credentials waits for them. */
static int start_remote(struct fsd *d, struct fsd_remote *rm, fs_errbuf *eb)
{
	fs_sync_remote_opts ro = {0};
	fs_sync_opts so = {0};
	int rc;

	stop_remote(d, rm);
	if (rm->auth != FSD_AUTH_NONE && rm->cred == NULL) {
		rm->last_err = FS_E_DAEMON_WAITING;
		snprintf(rm->last_msg, sizeof(rm->last_msg), "%s",
		         fs_strerror(FS_E_DAEMON_WAITING));
		return FS_OK;
	}
	ro.url = rm->url;
	ro.pins = rm->pins;
	ro.ca_file = rm->ca_file;
	ro.allow_http_loopback = d->cfg.allow_http_loopback;
	ro.connect_timeout_ms = (long)d->cfg.connect_timeout_ms;
	so.backoff_max_ms = d->cfg.backoff_max_s * 1000u;
	if ((rc = fs_sync_remote_new(&ro, &rm->r, eb)) != FS_OK)
		goto out;
	if (rm->auth == FSD_AUTH_BASIC)
		rc = fs_sync_remote_set_basic(rm->r, rm->user, fs_crypto_secret_data(rm->cred), eb);
	else if (rm->auth == FSD_AUTH_BEARER)
		rc = fs_sync_remote_set_bearer(rm->r, fs_crypto_secret_data(rm->cred), eb);
	if (rc != FS_OK)
		goto out;
	if ((rc = fs_sync_live_new(d->st, rm->r, &so, d->cfg.debounce_ms, &rm->live, eb)) !=
	        FS_OK ||
	    (rc = fs_sync_live_set_multi(rm->live, d->multi, eb)) != FS_OK)
		goto out;
	rm->next_ms = 0;
	rm->fails = 0;
	rm->last_err = FS_OK;
	rm->last_msg[0] = '\0';
out:
	if (rc != FS_OK)
		stop_remote(d, rm);
	return rc;
}

static const char *jstr(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsString(v) && v->valuestring[0] ? v->valuestring : NULL;
}

static int dup_opt(const char *s, char **out)
{
	*out = NULL;
	if (s && (*out = strdup(s)) == NULL)
		return -1;
	return 0;
}

/* Fills rm's settings from one JSON object (the meta form or a request). */
static int settings_from(struct fsd_remote *rm, const cJSON *o, fs_errbuf *eb)
{
	const char *name = jstr(o, "name"), *url = jstr(o, "url"), *auth = jstr(o, "auth");

	if (!name_ok(name))
		return fs_err_set(eb, FS_E_ARG,
		                  "a remote name is 1 to 63 letters, digits, '-', '_' or '.'");
	if (url == NULL || strlen(url) >= sizeof(rm->url))
		return fs_err_set(eb, FS_E_ARG, "a remote needs a URL (at most %d bytes)",
		                  FSD_URL_MAX - 1);
	snprintf(rm->name, sizeof(rm->name), "%s", name);
	snprintf(rm->url, sizeof(rm->url), "%s", url);
	if (dup_opt(jstr(o, "pins"), &rm->pins) || dup_opt(jstr(o, "ca"), &rm->ca_file) ||
	    dup_opt(jstr(o, "user"), &rm->user))
		return fs_err_set(eb, FS_E_NOMEM, NULL);
	rm->auth = FSD_AUTH_NONE;
	if (auth && !strcmp(auth, "basic"))
		rm->auth = FSD_AUTH_BASIC;
	else if (auth && !strcmp(auth, "bearer"))
		rm->auth = FSD_AUTH_BEARER;
	if (rm->auth == FSD_AUTH_BASIC && rm->user == NULL)
		return fs_err_set(eb, FS_E_ARG, "a password needs a user name");
	return FS_OK;
}

static cJSON *settings_json(const struct fsd_remote *rm)
{
	static const char *const auths[] = {"none", "basic", "bearer"};
	cJSON *o = cJSON_CreateObject();

	if (o == NULL)
		return NULL;
	cJSON_AddStringToObject(o, "name", rm->name);
	cJSON_AddStringToObject(o, "url", rm->url);
	cJSON_AddStringToObject(o, "auth", auths[rm->auth]);
	if (rm->pins)
		cJSON_AddStringToObject(o, "pins", rm->pins);
	if (rm->ca_file)
		cJSON_AddStringToObject(o, "ca", rm->ca_file);
	if (rm->user)
		cJSON_AddStringToObject(o, "user", rm->user);
	return o;
}

static int save(struct fsd *d, fs_errbuf *eb)
{
	cJSON *a = cJSON_CreateArray();
	char *txt = NULL;
	int rc = FS_E_NOMEM;

	if (a == NULL)
		goto out;
	for (size_t i = 0; i < d->n_remotes; i++) {
		cJSON *o = settings_json(&d->remotes[i]);
		if (o == NULL || !cJSON_AddItemToArray(a, o)) {
			cJSON_Delete(o);
			goto out;
		}
	}
	if ((txt = cJSON_PrintUnformatted(a)) == NULL)
		goto out;
	rc = fs_store_meta_set(d->st, META_REMOTES, (const uint8_t *)txt, strlen(txt), eb);
out:
	if (rc == FS_E_NOMEM)
		fs_err_set(eb, rc, NULL);
	cJSON_Delete(a);
	free(txt);
	return rc;
}

int fsd_remotes_load(struct fsd *d, fs_errbuf *eb)
{
	uint8_t *v = NULL;
	size_t n = 0;
	cJSON *a = NULL, *o;
	int rc;

	rc = fs_store_meta_get(d->st, META_REMOTES, &v, &n, eb);
	if (rc == FS_E_NOTFOUND) {
		fs_err_clear(eb);
		return FS_OK;
	}
	if (rc != FS_OK)
		return rc;
	if ((rc = fs_json_parse((const char *)v, n, 1u << 20, 8, &a, eb)) != FS_OK)
		goto out;
	cJSON_ArrayForEach(o, a)
	{
		struct fsd_remote *rm;
		fs_errbuf e2;
		if (d->n_remotes == FSD_REMOTES_MAX)
			break;
		rm = &d->remotes[d->n_remotes];
		if ((rc = settings_from(rm, o, eb)) != FS_OK) {
			free_remote(d, rm);
			goto out;
		}
		d->n_remotes++;
		if (start_remote(d, rm, &e2) != FS_OK) {
			rm->last_err = e2.code;
			snprintf(rm->last_msg, sizeof(rm->last_msg), "%s", e2.msg);
			fsd_log(FS_DAEMON_LOG_WARN, "remote %s cannot start: %s (%s)", rm->name,
			        fs_strerror(e2.code), e2.msg);
		}
	}
	rc = FS_OK;
out:
	cJSON_Delete(a);
	free(v);
	return rc;
}

static struct fsd_remote *find(struct fsd *d, const char *name)
{
	for (size_t i = 0; i < d->n_remotes; i++)
		if (!strcmp(d->remotes[i].name, name))
			return &d->remotes[i];
	return NULL;
}

int fsd_remote_add(struct fsd *d, const cJSON *req, fs_errbuf *eb)
{
	struct fsd_remote tmp = {0};
	uint8_t blob[FS_CRYPTO_SECRET_WRAPPED_MAX];
	char meta[sizeof(META_CRED_P) + FSD_REMOTE_NAME];
	const char *pw = jstr(req, "password"), *tok = jstr(req, "token");
	cJSON *o = NULL;
	size_t blob_len = 0;
	int rc;

	if (d->n_remotes == FSD_REMOTES_MAX)
		return fs_err_set(eb, FS_E_TOOBIG, "at most %d remotes", FSD_REMOTES_MAX);
	if (pw && tok)
		return fs_err_set(eb, FS_E_ARG, "a password or a token, not both");
	if ((o = cJSON_Duplicate(req, 1)) == NULL)
		return fs_err_set(eb, FS_E_NOMEM, NULL);
	cJSON_DeleteItemFromObjectCaseSensitive(o, "auth");
	cJSON_AddStringToObject(o, "auth", pw ? "basic" : tok ? "bearer" : "none");
	if ((rc = settings_from(&tmp, o, eb)) != FS_OK)
		goto out;
	if (find(d, tmp.name)) {
		rc = fs_err_set(eb, FS_E_EXISTS, "there is already a remote named %s", tmp.name);
		goto out;
	}
	if (pw || tok) {
		/* Credentials are wrapped under the master key: adding them needs
		 * the unlocked device. */
		const char *s = pw ? pw : tok;
		if ((rc = fsd_vault_ready(d, eb)) != FS_OK ||
		    (rc = fs_crypto_secret_new((const uint8_t *)s, strlen(s), &tmp.cred, eb)) !=
		        FS_OK)
			goto out;
		snprintf(meta, sizeof(meta), "%s%s", META_CRED_P, tmp.name);
		if ((rc = fs_crypto_secret_wrap(tmp.cred, d->master, meta, blob, &blob_len, eb)) !=
		    FS_OK)
			goto out;
	}
	/* Check the URL, pins and CA before anything is saved. */
	if ((rc = start_remote(d, &tmp, eb)) != FS_OK)
		goto out;
	if (blob_len && (rc = fs_store_meta_set(d->st, meta, blob, blob_len, eb)) != FS_OK)
		goto out;
	d->remotes[d->n_remotes++] = tmp;
	if ((rc = save(d, eb)) != FS_OK) {
		d->n_remotes--;
		goto out;
	}
	memset(&tmp, 0, sizeof(tmp));
	fsd_log(FS_DAEMON_LOG_INFO, "remote %s added", d->remotes[d->n_remotes - 1].name);
	rc = FS_OK;
out:
	free_remote(d, &tmp);
	cJSON_Delete(o);
	sodium_memzero(blob, sizeof(blob));
	return rc;
}

int fsd_remote_remove(struct fsd *d, const char *name, fs_errbuf *eb)
{
	char meta[sizeof(META_CRED_P) + FSD_REMOTE_NAME];
	struct fsd_remote *rm = find(d, name ? name : "");
	size_t i;
	int rc;

	if (rm == NULL)
		return fs_err_set(eb, FS_E_NOTFOUND, "no remote named %.64s", name ? name : "");
	snprintf(meta, sizeof(meta), "%s%s", META_CRED_P, rm->name);
	i = (size_t)(rm - d->remotes);
	struct fsd_remote gone = *rm;
	memmove(rm, rm + 1, (d->n_remotes - i - 1) * sizeof(*rm));
	d->n_remotes--;
	if ((rc = save(d, eb)) != FS_OK) {
		memmove(rm + 1, rm, (d->n_remotes - i) * sizeof(*rm));
		*rm = gone;
		d->n_remotes++;
		return rc;
	}
	free_remote(d, &gone);
	if ((rc = fs_store_meta_delete(d->st, meta, eb)) != FS_OK)
		return rc;
	fsd_log(FS_DAEMON_LOG_INFO, "remote %s removed", name);
	return FS_OK;
}

void fsd_remotes_unlocked(struct fsd *d)
{
	char meta[sizeof(META_CRED_P) + FSD_REMOTE_NAME];

	if (d->master == NULL)
		return;
	for (size_t i = 0; i < d->n_remotes; i++) {
		struct fsd_remote *rm = &d->remotes[i];
		uint8_t *blob = NULL;
		size_t n = 0;
		fs_errbuf eb;
		int rc;

		if (rm->auth == FSD_AUTH_NONE || rm->cred)
			continue;
		snprintf(meta, sizeof(meta), "%s%s", META_CRED_P, rm->name);
		rc = fs_store_meta_get(d->st, meta, &blob, &n, &eb);
		if (rc == FS_OK)
			rc = fs_crypto_secret_unwrap(blob, n, d->master, meta, &rm->cred, &eb);
		if (rc == FS_OK)
			rc = start_remote(d, rm, &eb);
		if (rc != FS_OK) {
			rm->last_err = rc;
			snprintf(rm->last_msg, sizeof(rm->last_msg), "%s", eb.msg);
			fsd_log(FS_DAEMON_LOG_WARN, "remote %s: credentials unusable: %s", rm->name,
			        fs_strerror(rc));
		}
		free(blob);
	}
	d->creds_loaded = 1;
}

static void abort_longpoll(struct fsd *d, struct fsd_remote *rm, uint64_t now)
{
	if (rm->lp == NULL)
		return;
	curl_multi_remove_handle(d->multi, rm->lp);
	rm->lp = NULL;
	/* A connection from before the change may hang on a dead route: end it
	 * as if it timed out, which the live state treats as "nothing new". */
	if (fs_sync_live_longpoll_done(rm->live, CURLE_OPERATION_TIMEDOUT, now, NULL) != FS_OK)
		fsd_log(FS_DAEMON_LOG_DEBUG, "remote %s: longpoll abandoned", rm->name);
}

void fsd_remotes_sync_now(struct fsd *d)
{
	for (size_t i = 0; i < d->n_remotes; i++) {
		fs_sync_live_sync_now(d->remotes[i].live);
		d->remotes[i].next_ms = 0;
	}
}

void fsd_remotes_network_changed(struct fsd *d)
{
	uint64_t now = fsd_now_ms();

	for (size_t i = 0; i < d->n_remotes; i++) {
		struct fsd_remote *rm = &d->remotes[i];
		fs_errbuf eb;
		if (rm->live == NULL)
			continue;
		abort_longpoll(d, rm, now);
		/* Kept-alive connections from before the change may sit on a dead
		 * route, and a request on one would wait for the low-speed timeout:
		 * a fresh connection (and live state) instead, which probes the
		 * server first and syncs at once when it answers. */
		if (start_remote(d, rm, &eb) != FS_OK) {
			rm->last_err = eb.code;
			snprintf(rm->last_msg, sizeof(rm->last_msg), "%s", eb.msg);
		}
		fs_sync_live_network_changed(rm->live);
		rm->next_ms = 0;
	}
}

void fsd_remotes_local_edit(struct fsd *d)
{
	uint64_t now = fsd_now_ms();

	for (size_t i = 0; i < d->n_remotes; i++) {
		struct fsd_remote *rm = &d->remotes[i];
		if (rm->live == NULL)
			continue;
		fs_sync_live_changed(rm->live, now);
		if (rm->next_ms > now + d->cfg.debounce_ms)
			rm->next_ms = now + d->cfg.debounce_ms;
	}
}

/* A sync or probe ended with rc (wait: ms until the live state's retry). */
static void sync_ended(struct fsd *d, struct fsd_remote *rm, int rc, uint32_t *wait,
                       const fs_errbuf *eb)
{
	if (rc != FS_OK) {
		if (rc != rm->last_err)
			fsd_log(FS_DAEMON_LOG_WARN, "remote %s: %s (%s); retrying in %u ms",
			        rm->name, fs_strerror(rc), fs_errname(rc), *wait);
		else
			fsd_log(FS_DAEMON_LOG_DEBUG, "remote %s: still %s", rm->name,
			        fs_errname(rc));
		rm->last_try = fsd_wall_ms();
		rm->last_err = rc;
		if (++rm->fails >= FSD_FAILS_SETTLED && *wait < d->cfg.backoff_max_s * 1000u)
			*wait = d->cfg.backoff_max_s * 1000u;
		snprintf(rm->last_msg, sizeof(rm->last_msg), "%s", eb->msg);
		memset(&rm->run, 0, sizeof(rm->run));
		return;
	}
	if (rm->last_err != FS_OK || rm->last_ok == 0)
		fsd_log(FS_DAEMON_LOG_INFO, "remote %s: in sync", rm->name);
	if (rm->run.docs_pushed || rm->run.docs_pulled || rm->run.docs_refused)
		fsd_log(FS_DAEMON_LOG_INFO, "remote %s: pushed %llu, pulled %llu, quarantined %llu",
		        rm->name, (unsigned long long)rm->run.docs_pushed,
		        (unsigned long long)rm->run.docs_pulled,
		        (unsigned long long)rm->run.docs_refused);
	memset(&rm->run, 0, sizeof(rm->run));
	rm->last_err = FS_OK;
	rm->fails = 0;
	rm->last_msg[0] = '\0';
	rm->last_ok = rm->last_try = fsd_wall_ms();
}

uint64_t fsd_remotes_step(struct fsd *d, uint64_t now)
{
	uint64_t next = UINT64_MAX, pulled = 0;

	for (size_t i = 0; i < d->n_remotes; i++) {
		struct fsd_remote *rm = &d->remotes[i];
		fs_sync_progress p = {0};
		uint32_t wait = 0;
		fs_errbuf eb;
		int rc;

		if (rm->live == NULL)
			continue;
		if (rm->next_ms <= now) {
			fs_err_clear(&eb);
			/* Never waits: the sync's transfers run on d->multi. */
			rc = fs_sync_live_step(rm->live, now, &wait, &p, &eb);
			/* What this step confirmed and stored (a sync's batches
			 * arrive over several steps). */
			rm->pushed += p.docs_pushed;
			rm->pulled += p.docs_pulled;
			rm->refused += p.docs_refused;
			rm->run.docs_pushed += p.docs_pushed;
			rm->run.docs_pulled += p.docs_pulled;
			rm->run.docs_refused += p.docs_refused;
			pulled += p.docs_pulled;
			if (rc != FS_OK || fs_sync_live_synced(rm->live))
				sync_ended(d, rm, rc, &wait, &eb);
			rm->next_ms = now + wait;
			if (rm->lp == NULL && (rm->lp = fs_sync_live_longpoll(rm->live)) != NULL &&
			    curl_multi_add_handle(d->multi, rm->lp) != CURLM_OK) {
				if (fs_sync_live_longpoll_done(rm->live, CURLE_FAILED_INIT, now,
				                               NULL) != FS_OK)
					fsd_log(FS_DAEMON_LOG_DEBUG,
					        "remote %s: longpoll not started", rm->name);
				rm->lp = NULL;
			}
		}
		if (rm->next_ms < next)
			next = rm->next_ms;
	}
	/* Pulled documents may be team documents: new members, keys,
	 * revocations (team.c reads them only when they changed). What it
	 * writes in answer is pushed after the usual short delay. */
	if (pulled) {
		fsd_team_refresh(d, 0);
		for (size_t i = 0; i < d->n_remotes; i++)
			if (d->remotes[i].live && d->remotes[i].next_ms < next)
				next = d->remotes[i].next_ms;
	}
	return next == UINT64_MAX ? UINT64_MAX : (next > now ? next - now : 0);
}

int fsd_remotes_multi_done(struct fsd *d)
{
	CURLMsg *m;
	int left, n = 0;

	while ((m = curl_multi_info_read(d->multi, &left)) != NULL) {
		if (m->msg != CURLMSG_DONE)
			continue;
		n++;
		for (size_t i = 0; i < d->n_remotes; i++) {
			struct fsd_remote *rm = &d->remotes[i];
			fs_errbuf eb;
			CURLcode cc = m->data.result;
			/* A sync's or probe's request: the next step reads it. */
			if (fs_sync_live_transfer_done(rm->live, m->easy_handle, cc)) {
				rm->next_ms = 0;
				break;
			}
			if (rm->lp != m->easy_handle)
				continue;
			curl_multi_remove_handle(d->multi, rm->lp);
			rm->lp = NULL;
			if (fs_sync_live_longpoll_done(rm->live, cc, fsd_now_ms(), &eb) != FS_OK)
				fsd_log(FS_DAEMON_LOG_DEBUG, "remote %s: longpoll ended: %s",
				        rm->name, fs_errname(eb.code));
			rm->next_ms = 0;
			break;
		}
	}
	return n;
}

cJSON *fsd_remotes_json(struct fsd *d)
{
	cJSON *a = cJSON_CreateArray();

	for (size_t i = 0; a && i < d->n_remotes; i++) {
		struct fsd_remote *rm = &d->remotes[i];
		cJSON *o = settings_json(rm);
		if (o == NULL)
			continue;
		cJSON_DeleteItemFromObjectCaseSensitive(o, "auth");
		cJSON_AddStringToObject(o, "auth",
		                        rm->auth == FSD_AUTH_NONE    ? "none"
		                        : rm->auth == FSD_AUTH_BASIC ? "basic"
		                                                     : "bearer");
		cJSON_AddBoolToObject(o, "online",
		                      rm->live && rm->last_err == FS_OK && rm->last_ok);
		cJSON_AddNumberToObject(o, "last_sync_ms", (double)rm->last_ok);
		cJSON_AddNumberToObject(o, "last_try_ms", (double)rm->last_try);
		cJSON_AddStringToObject(o, "last_error", fs_errname(rm->last_err));
		cJSON_AddStringToObject(o, "last_error_text",
		                        rm->last_err ? fs_strerror(rm->last_err) : "");
		cJSON_AddStringToObject(o, "last_error_detail", rm->last_msg);
		cJSON_AddNumberToObject(o, "pushed", (double)rm->pushed);
		cJSON_AddNumberToObject(o, "pulled", (double)rm->pulled);
		cJSON_AddNumberToObject(o, "quarantined", (double)rm->refused);
		cJSON_AddItemToArray(a, o);
	}
	return a;
}
