/*
 * hub/server.c: the HTTPS side of the hub: libmicrohttpd (GnuTLS) with a
 * small pool of request threads (keep-alive, epoll), request bodies bounded
 * before they are parsed, authentication before a body is read (Argon2id
 * on a worker thread, failed logins delayed), connections per client
 * address bounded, the access log, and the list of open databases. A
 * request that waits parks without a thread (wait.c). The CouchDB
 * endpoints themselves are in api.c.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>
#include <sodium.h>

#include "hub_srv.h"

#define FAIL_FORGET_MS 60000u /* a quiet minute forgets an address's failures */
#define VERIFY_WORKERS 2      /* Argon2id threads: memory-hard, on a 2-core box */
#define FD_RESERVE     64     /* descriptors beyond connections: stores, hub.db, listen */
#define CONN_TIMEOUT_S 120u   /* an idle kept-alive connection is closed after this */
#define CKPT_IDLE_MS   300u   /* a database this long without a write gets its WAL checkpointed */
#define CKPT_MAX_PAGES 16384u /* beyond this (64 MiB of WAL) a commit checkpoints by itself */
#define HUB_CACHE_KIB  2000u  /* each database's page cache, as before devices took 1,024 */
#define BODY_HINT_MAX  (4u << 20) /* a request body's Content-Length is believed up to this */

uint64_t hub_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int hub_db_name_ok(const char *name)
{
	size_t n = strlen(name);
	if (n == 0 || n >= FS_HUB_DB_NAME_MAX || name[0] < 'a' || name[0] > 'z')
		return 0;
	for (const char *p = name; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_' ||
		      *p == '-'))
			return 0;
	return 1;
}

static int db_path(const char *dir, const char *name, char *out, size_t n)
{
	int w = snprintf(out, n, "%s/dbs/%s.db", dir, name);
	return w < 0 || (size_t)w >= n ? -1 : 0;
}

int fs_hub_db_create(const char *dir, const char *name, fs_errbuf *eb)
{
	char path[700];
	struct stat sb;
	fs_store *st = NULL;
	int rc;
	if (!hub_db_name_ok(name))
		return fs_err_set(eb, FS_E_ARG, "bad database name (a-z first, then a-z 0-9 _ -)");
	if (db_path(dir, name, path, sizeof(path)) != 0)
		return fs_err_set(eb, FS_E_ARG, "directory path too long");
	if (stat(path, &sb) == 0)
		return fs_err_set(eb, FS_E_EXISTS, "database %s exists", name);
	if ((rc = fs_store_open(path, NULL, &st, eb)) != FS_OK)
		return rc;
	fs_store_close(st);
	return FS_OK;
}

static hub_db *db_find(fs_hub *h, const char *name)
{
	hub_db *d;
	pthread_mutex_lock(&h->mu);
	for (d = h->dbs; d; d = d->next)
		if (strcmp(d->name, name) == 0)
			break;
	pthread_mutex_unlock(&h->mu);
	return d;
}

/*
 * The open database name, opening its file on first use (a database made
 * by `fieldsync-hub db create` while the hub runs is found this way).
 * create: make it when absent (FS_E_EXISTS when present). Databases stay
 * open until the hub is freed, so the pointer stays valid.
 *
 * Opening a store reads, and may create and migrate, a file: on a busy
 * disk that takes a while. Only other openers wait for it (open_mu, which
 * also keeps two of them from opening one file twice); h->mu, which every
 * request takes to find its database, is held for the list alone.
 */
int hub_db_get(fs_hub *h, const char *name, int create, hub_db **out, fs_errbuf *eb)
{
	char path[700];
	struct stat sb;
	hub_db *d;
	/* Checkpoints wait for a quiet moment (idle_checkpoints) instead of
	 * running inside a writer's request every 4 MiB. The page cache stays
	 * SQLite's default of 2,000 KiB: a device's store takes less. */
	fs_store_opts so = {.revs_limit = h->conf.revs_limit,
	                    .checkpoint_pages = CKPT_MAX_PAGES,
	                    .cache_kib = HUB_CACHE_KIB};
	int rc = FS_OK;

	*out = NULL;
	if ((d = db_find(h, name)) != NULL)
		goto found;
	if (db_path(h->dir, name, path, sizeof(path)) != 0)
		return fs_err_set(eb, FS_E_ARG, "path too long");
	pthread_mutex_lock(&h->open_mu);
	if ((d = db_find(h, name)) != NULL) { /* another opener was first */
		pthread_mutex_unlock(&h->open_mu);
		goto found;
	}
	if (stat(path, &sb) != 0 && !create) {
		rc = fs_err_set(eb, FS_E_NOTFOUND, "Database does not exist.");
		goto out;
	}
	if (create && stat(path, &sb) == 0) {
		rc = fs_err_set(eb, FS_E_EXISTS,
		                "The database could not be created, the file already exists.");
		goto out;
	}
	if ((d = calloc(1, sizeof(*d))) == NULL) {
		rc = fs_err_set(eb, FS_E_NOMEM, NULL);
		goto out;
	}
	snprintf(d->name, sizeof(d->name), "%s", name);
	if ((d->ckpt = calloc(1, sizeof(*d->ckpt))) == NULL) {
		free(d);
		d = NULL;
		rc = fs_err_set(eb, FS_E_NOMEM, NULL);
		goto out;
	}
	if ((rc = hub_cache_new(h->conf.doc_cache_bytes, &d->cache)) != FS_OK) {
		free(d->ckpt);
		free(d);
		d = NULL;
		rc = fs_err_set(eb, rc, "cannot make the document cache");
		goto out;
	}
	if ((rc = fs_store_open(path, &so, &d->st, eb)) != FS_OK) {
		hub_cache_free(d->cache);
		free(d->ckpt);
		free(d);
		d = NULL;
		goto out;
	}
	pthread_mutex_init(&d->mu, NULL);
	d->hub = h;
	pthread_mutex_lock(&h->mu);
	d->next = h->dbs;
	h->dbs = d;
	pthread_mutex_unlock(&h->mu);
out:
	pthread_mutex_unlock(&h->open_mu);
	if (rc == FS_OK)
		*out = d;
	return rc;
found:
	if (create)
		return fs_err_set(eb, FS_E_EXISTS,
		                  "The database could not be created, the file already exists.");
	*out = d;
	return FS_OK;
}

/* After a write to db, under db->mu: wake its longpolls, plan its checkpoint. */
void hub_db_wrote(hub_db *db)
{
	uint64_t now = hub_now_ms();
	__atomic_add_fetch(&db->writes, 1, __ATOMIC_SEQ_CST);
	hub_wait_wake_db(db->hub->wait, db);
	db->last_write_ms = now;
	hub_wait_tick_at(db->hub->wait, now + CKPT_IDLE_MS);
}

/* A worker's job: the WAL of a database that went quiet, into its file. */
static void checkpoint_job(void *arg)
{
	hub_db *d = arg;
	fs_errbuf eb;
	pthread_mutex_lock(&d->mu);
	if (fs_store_wal_pages(d->st) > 0 && hub_now_ms() - d->last_write_ms >= CKPT_IDLE_MS &&
	    fs_store_checkpoint(d->st, &eb) != FS_OK) /* held back, or failing: later */
		hub_wait_tick_at(d->hub->wait, hub_now_ms() + CKPT_IDLE_MS);
	pthread_mutex_unlock(&d->mu);
}

/*
 * The timer's call: each database with WAL pages waiting and no write for
 * CKPT_IDLE_MS gets a checkpoint job; one still busy is looked at again
 * later. It never waits for a database's mutex (the timer resumes parked
 * requests on time). Databases are only ever added at the head of the
 * list, so it is walked from a head read under h->mu.
 */
static void idle_checkpoints(void *arg)
{
	fs_hub *h = arg;
	uint64_t now = hub_now_ms();
	hub_db *d;
	pthread_mutex_lock(&h->mu);
	d = h->dbs;
	pthread_mutex_unlock(&h->mu);
	for (; d; d = d->next) {
		unsigned pages;
		uint64_t last;
		int st;
		if (pthread_mutex_trylock(&d->mu) != 0) {
			hub_wait_tick_at(h->wait, now + CKPT_IDLE_MS);
			continue;
		}
		pages = fs_store_wal_pages(d->st);
		last = d->last_write_ms;
		pthread_mutex_unlock(&d->mu);
		if (pages == 0)
			continue;
		if (now - last < CKPT_IDLE_MS) {
			hub_wait_tick_at(h->wait, last + CKPT_IDLE_MS);
			continue;
		}
		st = hub_wait_job_state(h->wait, d->ckpt);
		if (st != HUB_JOB_QUEUED && st != HUB_JOB_RUNNING &&
		    hub_wait_submit(h->wait, d->ckpt, checkpoint_job, d) != FS_OK)
			return; /* the hub stops */
	}
}

/* Names of the databases in DIR/dbs, for GET /_all_dbs. */
int hub_db_list(fs_hub *h, hub_buf *b)
{
	char path[600];
	DIR *dp;
	struct dirent *e;
	int first = 1;
	snprintf(path, sizeof(path), "%s/dbs", h->dir);
	if ((dp = opendir(path)) == NULL)
		return FS_E_IO;
	hub_buf_str(b, "[");
	while ((e = readdir(dp)) != NULL) {
		size_t n = strlen(e->d_name);
		char name[FS_HUB_DB_NAME_MAX];
		if (n < 4 || n - 3 >= sizeof(name) || strcmp(e->d_name + n - 3, ".db") != 0)
			continue;
		memcpy(name, e->d_name, n - 3);
		name[n - 3] = '\0';
		if (!hub_db_name_ok(name))
			continue;
		if (!first)
			hub_buf_str(b, ",");
		first = 0;
		hub_buf_json_str(b, name);
	}
	closedir(dp);
	hub_buf_str(b, "]");
	return FS_OK;
}

/* ---- responses ---- */

static enum MHD_Result queue(hub_req *r, struct MHD_Connection *c, unsigned status,
                             struct MHD_Response *resp)
{
	enum MHD_Result ret;
	if (resp == NULL)
		return MHD_NO;
	MHD_add_response_header(resp, "Content-Type", "application/json");
	MHD_add_response_header(resp, "Server", "fieldsync-hub/" FS_HUB_VERSION);
	MHD_add_response_header(resp, "Cache-Control", "must-revalidate");
	r->status = status;
	r->responded = 1;
	ret = MHD_queue_response(c, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

enum MHD_Result hub_send(hub_req *r, struct MHD_Connection *c, unsigned status, hub_buf *b)
{
	struct MHD_Response *resp;
	if (b->err) {
		hub_buf_free(b);
		return hub_send_err(r, c, 500, "internal_server_error", "out of memory");
	}
	hub_buf_str(b, "\n");
	if (b->err) {
		hub_buf_free(b);
		return hub_send_err(r, c, 500, "internal_server_error", "out of memory");
	}
	r->bytes = b->len;
	resp = MHD_create_response_from_buffer(b->len, b->p, MHD_RESPMEM_MUST_FREE);
	if (resp == NULL) {
		hub_buf_free(b);
		return MHD_NO;
	}
	memset(b, 0, sizeof(*b));
	return queue(r, c, status, resp);
}

enum MHD_Result hub_send_err(hub_req *r, struct MHD_Connection *c, unsigned status,
                             const char *error, const char *reason)
{
	hub_buf b = {0};
	hub_buf_str(&b, "{\"error\":");
	hub_buf_json_str(&b, error);
	hub_buf_str(&b, ",\"reason\":");
	hub_buf_json_str(&b, reason ? reason : "");
	hub_buf_str(&b, "}\n");
	if (b.err) {
		hub_buf_free(&b);
		return MHD_NO;
	}
	r->bytes = b.len;
	struct MHD_Response *resp =
	    MHD_create_response_from_buffer(b.len, b.p, MHD_RESPMEM_MUST_FREE);
	if (resp == NULL) {
		hub_buf_free(&b);
		return MHD_NO;
	}
	if (status == 401)
		MHD_add_response_header(resp, "WWW-Authenticate", "Basic realm=\"fieldsync-hub\"");
	return queue(r, c, status, resp);
}

enum MHD_Result hub_send_fs_err(hub_req *r, struct MHD_Connection *c, int code, const fs_errbuf *eb)
{
	const char *msg = eb && eb->msg[0] ? eb->msg : fs_strerror(code);
	switch (code) {
	case FS_E_STORE_CONFLICT:
		return hub_send_err(r, c, 409, "conflict", "Document update conflict.");
	case FS_E_NOTFOUND:
		return hub_send_err(r, c, 404, "not_found", msg);
	case FS_E_INPUT:
	case FS_E_ARG:
		return hub_send_err(r, c, 400, "bad_request", msg);
	case FS_E_TOOBIG:
		return hub_send_err(r, c, 413, "too_large", msg);
	case FS_E_EXISTS:
		return hub_send_err(r, c, 412, "file_exists", msg);
	case FS_E_STORE_FULL:
		return hub_send_err(r, c, 507, "insufficient_storage", "the hub's disk is full");
	case FS_E_STORE_BUSY:
		return hub_send_err(r, c, 503, "service_unavailable", "database busy, retry");
	default:
		return hub_send_err(r, c, 500, "internal_server_error", fs_strerror(code));
	}
}

/* ---- failed logins: slowed down per client address ---- */

static void client_addr(struct MHD_Connection *c, char *out, size_t n)
{
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	out[0] = '\0';
	if (ci == NULL || ci->client_addr == NULL)
		return;
	if (ci->client_addr->sa_family == AF_INET)
		inet_ntop(AF_INET,
		          &((const struct sockaddr_in *)(const void *)ci->client_addr)->sin_addr,
		          out, (socklen_t)n);
	else if (ci->client_addr->sa_family == AF_INET6)
		inet_ntop(AF_INET6,
		          &((const struct sockaddr_in6 *)(const void *)ci->client_addr)->sin6_addr,
		          out, (socklen_t)n);
}

/* Records a failure and returns how long to wait before answering. */
static unsigned fail_delay(fs_hub *h, const char *addr)
{
	uint64_t now = hub_now_ms();
	struct hub_fail *f = NULL, *old = &h->fails[0];
	unsigned d;
	pthread_mutex_lock(&h->mu);
	for (size_t i = 0; i < FS_HUB_FAIL_SLOTS; i++) {
		if (strcmp(h->fails[i].addr, addr) == 0) {
			f = &h->fails[i];
			break;
		}
		if (h->fails[i].last_ms < old->last_ms)
			old = &h->fails[i];
	}
	if (f == NULL) {
		f = old;
		snprintf(f->addr, sizeof(f->addr), "%s", addr);
		f->n = 0;
	}
	if (now - f->last_ms > FAIL_FORGET_MS)
		f->n = 0;
	f->n++;
	f->last_ms = now;
	d = f->n > 12 ? h->conf.auth_delay_max_ms : (100u << (f->n - 1));
	if (d > h->conf.auth_delay_max_ms)
		d = h->conf.auth_delay_max_ms;
	pthread_mutex_unlock(&h->mu);
	return d;
}

static void fail_forget(fs_hub *h, const char *addr)
{
	pthread_mutex_lock(&h->mu);
	for (size_t i = 0; i < FS_HUB_FAIL_SLOTS; i++)
		if (h->fails[i].n && strcmp(h->fails[i].addr, addr) == 0)
			h->fails[i].n = 0;
	pthread_mutex_unlock(&h->mu);
}

/* ---- the request cycle ---- */

/* Argon2id for a request's credential, on a worker thread (hub_wait_submit). */
static void verify_job(void *arg)
{
	hub_req *r = arg;
	hub_cred_verify(r->h->auth, r->cred);
}

/*
 * A request's login is settled before anything else, in the first call of
 * the access handler and in the calls after each park: a body too large
 * is refused, Argon2id runs on a worker while the request is parked, and a
 * failed login is answered after its delay, parked too. Neither holds a
 * pool thread. Each of these has answered, parked, or set REQ_READY.
 */
static enum MHD_Result login_delayed(fs_hub *h, hub_req *r, struct MHD_Connection *c)
{
	if (hub_now_ms() < r->wait.due_ms && hub_wait_park(h->wait, &r->wait))
		return MHD_YES;
	return hub_send_err(r, c, 401, "unauthorized", "Name or password is incorrect.");
}

static enum MHD_Result login_refused(fs_hub *h, hub_req *r, struct MHD_Connection *c)
{
	char addr[64];
	hub_cred_free(r->cred);
	r->cred = NULL;
	client_addr(c, addr, sizeof(addr));
	r->phase = REQ_DELAYED;
	r->wait.due_ms = hub_now_ms() + fail_delay(h, addr);
	return login_delayed(h, r, c);
}

static enum MHD_Result login_verified(fs_hub *h, hub_req *r, struct MHD_Connection *c)
{
	fs_errbuf eb = {0};
	char addr[64];
	int rc = hub_auth_end(h->auth, r->cred, &r->who, &eb);
	hub_cred_free(r->cred);
	r->cred = NULL;
	if (rc != FS_OK)
		return login_refused(h, r, c);
	client_addr(c, addr, sizeof(addr));
	fail_forget(h, addr);
	r->authed = 1;
	r->phase = REQ_READY;
	return MHD_YES;
}

/* A park is refused when the job ended meanwhile, or (all jobs over) the
 * hub stops: so look at the job again after a refusal. */
static enum MHD_Result login_verifying(fs_hub *h, hub_req *r, struct MHD_Connection *c)
{
	for (;;) {
		int st = hub_wait_job_state(h->wait, &r->wait);
		if (st == HUB_JOB_DONE)
			return login_verified(h, r, c);
		if (st == HUB_JOB_CANCELLED)
			return hub_send_err(r, c, 503, "service_unavailable",
			                    "the hub is stopping");
		if (hub_wait_park(h->wait, &r->wait))
			return MHD_YES;
	}
}

static enum MHD_Result login_start(fs_hub *h, hub_req *r, struct MHD_Connection *c)
{
	const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
	const char *authz = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
	fs_errbuf eb = {0};
	int rc;

	if (cl) {
		char *end;
		errno = 0;
		unsigned long long n = strtoull(cl, &end, 10);
		if (errno || *end || n > h->conf.max_body)
			return hub_send_err(r, c, 413, "too_large",
			                    "the request body is too large");
		r->body_expected = (size_t)n;
	}
	rc = hub_auth_begin(h->auth, authz, &r->cred, &eb);
	if (rc == FS_E_NOTFOUND) {
		r->phase = REQ_READY; /* anonymous: the route decides */
		return MHD_YES;
	}
	if (rc == FS_E_INPUT)
		return login_refused(h, r, c);
	if (rc != FS_OK)
		return hub_send_fs_err(r, c, rc, NULL);
	if (!hub_cred_slow(r->cred))
		return login_verified(h, r, c);
	r->phase = REQ_VERIFY;
	if (hub_wait_submit(h->wait, &r->wait, verify_job, r) != FS_OK)
		return hub_send_err(r, c, 503, "service_unavailable", "the hub is stopping");
	return login_verifying(h, r, c); /* parks until the job ends */
}

static enum MHD_Result check_login(fs_hub *h, hub_req *r, struct MHD_Connection *c)
{
	switch (r->phase) {
	case REQ_NEW:
		return login_start(h, r, c);
	case REQ_VERIFY:
		return login_verifying(h, r, c);
	case REQ_DELAYED:
		return login_delayed(h, r, c);
	default:
		return MHD_NO; /* REQ_READY never comes here */
	}
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url,
                               const char *method, const char *version, const char *upload,
                               size_t *upload_size, void **con_cls)
{
	fs_hub *h = cls;
	hub_req *r = *con_cls;
	(void)version;

	if (r == NULL) {
		if ((r = calloc(1, sizeof(*r))) == NULL)
			return MHD_NO;
		r->h = h;
		r->t0 = hub_now_ms();
		r->wait.c = c;
		snprintf(r->method, sizeof(r->method), "%s", method);
		snprintf(r->path, sizeof(r->path), "%s", url);
		*con_cls = r;
		return check_login(h, r, c);
	}
	if (r->phase != REQ_READY && !r->responded) /* resumed from a park */
		return check_login(h, r, c);
	if (r->responded) { /* refused early: drop whatever body still comes */
		*upload_size = 0;
		return MHD_YES;
	}
	if (*upload_size) {
		/* A batch body is megabytes: one allocation, not a doubling series,
		 * once the sender is known and for what it says up to 4 MiB (a
		 * stranger's Content-Length reserves nothing). */
		if (r->body.cap == 0 && r->body_expected && r->authed)
			hub_buf_reserve(&r->body, r->body_expected < BODY_HINT_MAX
			                              ? r->body_expected
			                              : BODY_HINT_MAX);
		if (r->body.len + *upload_size > h->conf.max_body)
			r->toobig = 1;
		else
			hub_buf_add(&r->body, upload, *upload_size);
		*upload_size = 0;
		return MHD_YES;
	}
	if (r->toobig)
		return hub_send_err(r, c, 413, "too_large", "the request body is too large");
	if (r->body.err)
		return hub_send_err(r, c, 500, "internal_server_error", "out of memory");
	return hub_route(h, r, c, url, method);
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls,
                      enum MHD_RequestTerminationCode toe)
{
	fs_hub *h = cls;
	hub_req *r = *con_cls;
	(void)c;
	if (r == NULL)
		return;
	if (h->conf.access_log && !h->quiet) {
		/* Path only: queries may carry revisions but bodies never appear. */
		fprintf(stderr, "hub: %s %s %u %zu %llums %s%s\n", r->method, r->path, r->status,
		        r->bytes, (unsigned long long)(hub_now_ms() - r->t0),
		        r->who.id[0] ? r->who.id : "-",
		        toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " (aborted)");
	}
	hub_wait_forget(h->wait, &r->wait);
	hub_cred_free(r->cred);
	hub_buf_free(&r->body);
	hub_who_clear(&r->who);
	free(r);
	*con_cls = NULL;
}

/* ---- lifecycle ---- */

static char *read_all(const char *path, size_t max)
{
	FILE *f = fopen(path, "rb");
	char *p = NULL;
	size_t n;
	if (f == NULL)
		return NULL;
	if ((p = malloc(max + 1)) != NULL) {
		n = fread(p, 1, max, f);
		if (ferror(f) || n == max) {
			sodium_memzero(p, n); /* the key file's bytes */
			free(p);
			p = NULL;
		} else {
			p[n] = '\0';
		}
	}
	fclose(f);
	return p;
}

int fs_hub_new(const fs_hub_opts *o, fs_hub **out, fs_errbuf *eb)
{
	fs_hub *h = NULL;
	char path[600];
	int rc;

	*out = NULL;
	if (o == NULL || o->dir == NULL || strlen(o->dir) > 400)
		return fs_err_set(eb, FS_E_ARG, "a hub directory is needed");
	if ((h = calloc(1, sizeof(*h))) == NULL)
		return fs_err_set(eb, FS_E_NOMEM, NULL);
	pthread_mutex_init(&h->mu, NULL);
	pthread_mutex_init(&h->open_mu, NULL);
	snprintf(h->dir, sizeof(h->dir), "%s", o->dir);
	h->quiet = o->quiet;
	hub_conf_defaults(&h->conf, o->dir);
	snprintf(path, sizeof(path), "%s/hub.conf", o->dir);
	if ((rc = hub_conf_read(&h->conf, o->dir, path, eb)) != FS_OK)
		goto out;
	if (o->bind)
		snprintf(h->conf.bind, sizeof(h->conf.bind), "%s", o->bind);
	if (o->port >= 0)
		h->conf.port = o->port;
	if ((rc = hub_auth_open(o->dir, 0, &h->auth, eb)) != FS_OK)
		goto out;
	if ((rc = hub_auth_uuid(h->auth, h->uuid, eb)) != FS_OK)
		goto out;
	hub_auth_warm(h->auth); /* the dummy hashes: at start, not in a first refusal */
	if ((h->cert_pem = read_all(h->conf.cert, 1u << 20)) == NULL ||
	    (h->key_pem = read_all(h->conf.key, 1u << 20)) == NULL) {
		rc = fs_err_set(eb, FS_E_IO, "cannot read the certificate or key (%s, %s)",
		                h->conf.cert, h->conf.key);
		goto out;
	}
	*out = h;
	h = NULL;
	rc = FS_OK;
out:
	fs_hub_free(h);
	return rc;
}

/*
 * Every connection is a descriptor: raise the soft limit to what
 * max_connections needs, or say plainly that it cannot be had.
 */
static int fd_limit(unsigned conns, fs_errbuf *eb)
{
	struct rlimit rl;
	rlim_t need = (rlim_t)conns + FD_RESERVE;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return fs_err_set(eb, FS_E_IO, "getrlimit: %s", strerror(errno));
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need) {
		if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need)
			return fs_err_set(eb, FS_E_ARG,
			                  "max_connections %u needs %llu open files; the limit "
			                  "is %llu (ulimit -n, or LimitNOFILE=)",
			                  conns, (unsigned long long)need,
			                  (unsigned long long)rl.rlim_max);
		rl.rlim_cur = need;
		if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
			return fs_err_set(eb, FS_E_IO, "setrlimit: %s", strerror(errno));
	}
	return FS_OK;
}

int fs_hub_start(fs_hub *h, fs_errbuf *eb)
{
	struct sockaddr_in a4 = {0};
	struct sockaddr_in6 a6 = {0};
	const struct sockaddr *sa;
	/* A pool of threads, each with its own epoll loop over its share of
	 * the connections; suspend/resume lets a waiting request give its
	 * thread back (wait.c). */
	unsigned flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_TLS | MHD_ALLOW_SUSPEND_RESUME;
	const union MHD_DaemonInfo *di;
	int rc;

	if (h->d)
		return fs_err_set(eb, FS_E_ARG, "the hub is already running");
	if (inet_pton(AF_INET, h->conf.bind, &a4.sin_addr) == 1) {
		a4.sin_family = AF_INET;
		a4.sin_port = htons((uint16_t)h->conf.port);
		sa = (const struct sockaddr *)&a4;
	} else if (inet_pton(AF_INET6, h->conf.bind, &a6.sin6_addr) == 1) {
		a6.sin6_family = AF_INET6;
		a6.sin6_port = htons((uint16_t)h->conf.port);
		sa = (const struct sockaddr *)&a6;
		flags |= MHD_USE_IPv6;
	} else {
		return fs_err_set(eb, FS_E_ARG, "bind must be an IP address, not %.64s",
		                  h->conf.bind);
	}
	if ((rc = fd_limit(h->conf.max_connections, eb)) != FS_OK)
		return rc;
	if ((rc = hub_wait_new(VERIFY_WORKERS, idle_checkpoints, h, &h->wait, eb)) != FS_OK)
		return rc;
	h->stopping = 0;
	h->d = MHD_start_daemon(
	    flags, 0, NULL, NULL, handler, h, MHD_OPTION_SOCK_ADDR, sa, MHD_OPTION_HTTPS_MEM_KEY,
	    h->key_pem, MHD_OPTION_HTTPS_MEM_CERT, h->cert_pem, MHD_OPTION_THREAD_POOL_SIZE,
	    h->conf.threads, MHD_OPTION_CONNECTION_LIMIT, h->conf.max_connections,
	    MHD_OPTION_PER_IP_CONNECTION_LIMIT, h->conf.max_connections_per_addr,
	    MHD_OPTION_CONNECTION_TIMEOUT, CONN_TIMEOUT_S, MHD_OPTION_NOTIFY_COMPLETED, completed,
	    h, MHD_OPTION_END);
	if (h->d == NULL) {
		hub_wait_stop(h->wait);
		hub_wait_free(h->wait);
		h->wait = NULL;
		return fs_err_set(eb, FS_E_IO,
		                  "cannot listen on %s port %d (in use, or a bad key?)",
		                  h->conf.bind, h->conf.port);
	}
	di = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
	h->port = di ? di->port : (unsigned)h->conf.port;
	return FS_OK;
}

unsigned fs_hub_port(const fs_hub *h)
{
	return h && h->d ? h->port : 0;
}

void fs_hub_stop(fs_hub *h)
{
	if (h == NULL || h->d == NULL)
		return;
	__atomic_store_n(&h->stopping, 1, __ATOMIC_SEQ_CST);
	/* Parked requests are resumed first: libmicrohttpd may not stop with
	 * a connection suspended. They see the hub stopping and end. */
	hub_wait_stop(h->wait);
	MHD_stop_daemon(h->d);
	hub_wait_free(h->wait);
	h->wait = NULL;
	h->d = NULL;
	h->port = 0;
}

void fs_hub_free(fs_hub *h)
{
	hub_db *d, *next;
	if (h == NULL)
		return;
	fs_hub_stop(h);
	for (d = h->dbs; d; d = next) {
		next = d->next;
		fs_store_close(d->st);
		hub_cache_free(d->cache);
		pthread_mutex_destroy(&d->mu);
		free(d->ckpt);
		free(d);
	}
	hub_auth_close(h->auth);
	if (h->key_pem) {
		sodium_memzero(h->key_pem, strlen(h->key_pem));
		free(h->key_pem);
	}
	free(h->cert_pem);
	pthread_mutex_destroy(&h->open_mu);
	pthread_mutex_destroy(&h->mu);
	free(h);
}
