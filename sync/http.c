/*
 * sync/http.c: the connection to one remote database. It owns the libcurl
 * easy handles (request slots, kept alive between requests) and where they
 * run (the remote's own multi handle, or a caller's), the TLS and URL
 * policy, the credentials in locked memory, the bounded response buffers,
 * and the mapping of every transfer failure to a named fs_err code.
 */
#include "sync_int.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <ctype.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "crypto.h"

#define URL_MAX      2048
#define PIN_PREFIX   "sha256//"
#define PIN_B64_LEN  44 /* base64 of a SHA-256 digest */
#define RESP_INITIAL 16384
/* Content-Length is believed up to this (a server could claim 64 MiB and
 * send nothing); a buffer grown past it is let go before the slot's next
 * request instead of being held for the remote's life. */
#define RESP_HINT_MAX (4u << 20)

enum auth_kind { AUTH_NONE, AUTH_BASIC, AUTH_BEARER };

/* One request at a time per slot: its handle and its answer's buffer. */
struct slot {
	fs_sync_remote *r;
	CURL *h;
	char *buf;
	size_t len, cap;
	int overflow;
	size_t expect; /* the answer's Content-Length, 0 when unknown: its buffer's size */
	long retry_after;
	long status;
	char cerr[CURL_ERROR_SIZE];
	int encoded; /* the answer came with a Content-Encoding */
	CURLM *m;    /* the multi handle running it (ours or a caller's), NULL when idle */
	int done;    /* its transfer ended with result */
	CURLcode result;
};

struct fs_sync_remote {
	struct slot slot[FS_SYNC_SLOTS];
	CURLM *multi; /* runs the slots' transfers for blocking callers (one connection cache) */
	struct curl_slist *hdrs;
	char *db_url;   /* without a trailing slash */
	char *root_url; /* scheme://host[:port] */
	char *pins;
	char *ca_file;
	int http_ok;
	int loopback;
	int compress; /* fs_sync_remote_opts.compress */
	long connect_ms, low_time, low_limit;
	size_t max_resp;
	int max_depth;

	enum auth_kind auth;
	char *user;   /* sodium_malloc */
	char *secret; /* sodium_malloc: password or token */

	uint64_t sent, received;
	uint64_t encoded; /* answers that came compressed */
};

static char *dupstr(const char *s)
{
	size_t n = strlen(s) + 1;
	char *d = malloc(n);
	if (d)
		memcpy(d, s, n);
	return d;
}

static void free_secret(char **p)
{
	if (*p)
		sodium_free(*p); /* sodium_free wipes before releasing */
	*p = NULL;
}

static int secret_dup(const char *s, char **out)
{
	size_t n = strlen(s) + 1;
	char *d = sodium_malloc(n);
	if (d == NULL)
		return FS_E_NOMEM;
	memcpy(d, s, n);
	*out = d;
	return FS_OK;
}

/* Loopback as a literal address or curl's built-in "localhost" (curl
 * resolves it to loopback without asking DNS). */
static int host_is_loopback(const char *host)
{
	unsigned char a[16];
	char v6[64];
	size_t n = strlen(host);

	if (strcasecmp(host, "localhost") == 0)
		return 1;
	if (inet_pton(AF_INET, host, a) == 1)
		return a[0] == 127;
	if (n > 2 && n < sizeof(v6) && host[0] == '[' && host[n - 1] == ']') {
		memcpy(v6, host + 1, n - 2);
		v6[n - 2] = '\0';
		static const unsigned char lo[16] = {[15] = 1};
		return inet_pton(AF_INET6, v6, a) == 1 && memcmp(a, lo, 16) == 0;
	}
	return 0;
}

static int check_pins(const char *pins, fs_errbuf *eb)
{
	const char *p = pins;
	int count = 0;

	for (;;) {
		if (strncmp(p, PIN_PREFIX, strlen(PIN_PREFIX)) != 0)
			return fs_err_set(eb, FS_E_ARG, "pin %d does not start with sha256//",
			                  count + 1);
		p += strlen(PIN_PREFIX);
		for (int i = 0; i < PIN_B64_LEN; i++, p++)
			if (!(isalnum((unsigned char)*p) || *p == '+' || *p == '/' ||
			      (*p == '=' && i == PIN_B64_LEN - 1)))
				return fs_err_set(eb, FS_E_ARG,
				                  "pin %d is not a base64 SHA-256 digest",
				                  count + 1);
		if (++count > FS_SYNC_MAX_PINS)
			return fs_err_set(eb, FS_E_ARG, "more than %d pins", FS_SYNC_MAX_PINS);
		if (*p == '\0')
			return FS_OK;
		if (*p != ';')
			return fs_err_set(eb, FS_E_ARG, "pins must be separated by ';'");
		p++;
	}
}

/* An answer buffer grown past RESP_HINT_MAX is not kept for the next one. */
static void slot_let_go_big(struct slot *sl)
{
	if (sl->cap > RESP_HINT_MAX) {
		free(sl->buf);
		sl->buf = NULL;
		sl->cap = sl->len = 0;
	}
}

/* Parses and polices the database URL; fills db_url and root_url. */
static int check_url(fs_sync_remote *r, const char *url, int allow_http, fs_errbuf *eb)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *host = NULL, *user = NULL, *pass = NULL, *query = NULL, *frag = NULL,
	     *port = NULL, *path = NULL;
	int rc = FS_E_NOMEM;
	size_t n;

	if (u == NULL)
		goto out;
	if (strlen(url) >= URL_MAX) {
		rc = fs_err_set(eb, FS_E_ARG, "remote URL longer than %d bytes", URL_MAX);
		goto out;
	}
	/* Scheme first: the refusal of http:// must be FS_E_SYNC_INSECURE even
	 * when the rest of the URL is fine. */
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
		rc = fs_err_set(eb, FS_E_ARG, "the remote URL is not a valid absolute URL");
		goto out;
	}
	if (curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK ||
	    curl_url_get(u, CURLUPART_PASSWORD, &pass, 0) == CURLUE_OK) {
		/* Not echoed: the URL holds a secret. */
		rc = fs_err_set(eb, FS_E_ARG, "credentials in the remote URL are not allowed");
		goto out;
	}
	if (strcasecmp(scheme, "https") != 0) {
		if (strcasecmp(scheme, "http") != 0) {
			rc = fs_err_set(eb, FS_E_SYNC_INSECURE, "scheme %s is not allowed", scheme);
			goto out;
		}
		if (!allow_http || !host_is_loopback(host)) {
			rc =
			    fs_err_set(eb, FS_E_SYNC_INSECURE,
			               allow_http ? "plain http is allowed to loopback only, not %s"
			                          : "plain http to %s is not allowed: use https",
			               host);
			goto out;
		}
	}
	if (curl_url_get(u, CURLUPART_QUERY, &query, 0) == CURLUE_OK ||
	    curl_url_get(u, CURLUPART_FRAGMENT, &frag, 0) == CURLUE_OK) {
		rc = fs_err_set(eb, FS_E_ARG, "the remote URL must not have a query or fragment");
		goto out;
	}
	(void)curl_url_get(u, CURLUPART_PORT, &port, 0);
	if (curl_url_get(u, CURLUPART_PATH, &path, 0) != CURLUE_OK || strlen(path) < 2) {
		rc = fs_err_set(eb, FS_E_ARG, "the remote URL names no database");
		goto out;
	}
	n = strlen(scheme) + strlen(host) + (port ? strlen(port) : 0) + 8;
	r->root_url = malloc(n);
	if (r->root_url == NULL)
		goto out;
	snprintf(r->root_url, n, "%s://%s%s%s", scheme, host, port ? ":" : "", port ? port : "");
	n = strlen(r->root_url) + strlen(path) + 1;
	r->db_url = malloc(n);
	if (r->db_url == NULL)
		goto out;
	snprintf(r->db_url, n, "%s%s", r->root_url, path);
	while ((n = strlen(r->db_url)) > 0 && r->db_url[n - 1] == '/')
		r->db_url[n - 1] = '\0';
	r->http_ok = strcasecmp(scheme, "http") == 0;
	r->loopback = host_is_loopback(host);
	rc = FS_OK;
out:
	curl_free(scheme);
	curl_free(host);
	curl_free(user);
	curl_free(pass);
	curl_free(query);
	curl_free(frag);
	curl_free(port);
	curl_free(path);
	curl_url_cleanup(u);
	return rc;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *ctx)
{
	struct slot *r = ctx;
	size_t n = size * nmemb;
	size_t max_resp = r->r->max_resp;

	if (n > max_resp || r->len > max_resp - n) {
		r->overflow = 1;
		return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
	}
	if (r->len + n + 1 > r->cap) {
		size_t cap = r->cap ? r->cap : RESP_INITIAL;
		/* Sized once when the server said how much comes (doubling held a
		 * quarter more than a _bulk_get answer, per request slot); a
		 * compressed answer grows past it as before. */
		if (r->expect >= r->len + n && r->expect < max_resp && r->expect <= RESP_HINT_MAX &&
		    r->expect + 1 > cap)
			cap = r->expect + 1;
		while (cap < r->len + n + 1)
			cap *= 2;
		if (cap > max_resp + 1)
			cap = max_resp + 1;
		char *b = realloc(r->buf, cap);
		if (b == NULL)
			return 0;
		r->buf = b;
		r->cap = cap;
	}
	memcpy(r->buf + r->len, data, n);
	r->len += n;
	r->buf[r->len] = '\0';
	return n;
}

static size_t on_header(char *data, size_t size, size_t nitems, void *ctx)
{
	struct slot *r = ctx;
	size_t n = size * nitems;
	static const char name[] = "retry-after:", enc[] = "content-encoding:",
	                  clen[] = "content-length:";

	/* A new status line starts a new response (after a 100 Continue). */
	if (n >= 5 && memcmp(data, "HTTP/", 5) == 0) {
		r->retry_after = 0;
		r->encoded = 0;
		r->expect = 0;
	} else if (n > sizeof(clen) - 1 && strncasecmp(data, clen, sizeof(clen) - 1) == 0) {
		char tmp[32];
		size_t k = n - (sizeof(clen) - 1);
		if (k < sizeof(tmp)) { /* a hint only: on_body bounds what it accepts */
			memcpy(tmp, data + sizeof(clen) - 1, k);
			tmp[k] = '\0';
			r->expect = (size_t)strtoull(tmp, NULL, 10);
		}
	} else if (n > sizeof(enc) - 1 && strncasecmp(data, enc, sizeof(enc) - 1) == 0)
		r->encoded = memmem(data, n, "identity", 8) == NULL;
	else if (n > sizeof(name) - 1 && strncasecmp(data, name, sizeof(name) - 1) == 0)
		r->retry_after = fs_sync_parse_retry_after(data + sizeof(name) - 1,
		                                           n - (sizeof(name) - 1), time(NULL));
	return n;
}

long fs_sync_parse_retry_after(const char *v, size_t n, time_t now)
{
	char tmp[128];
	long secs = 0;
	size_t i = 0, j;

	while (i < n && (v[i] == ' ' || v[i] == '\t'))
		i++;
	while (n > i && (v[n - 1] == '\r' || v[n - 1] == '\n' || v[n - 1] == ' '))
		n--;
	if (i >= n || n - i >= sizeof(tmp))
		return 0;
	if (isdigit((unsigned char)v[i])) {
		for (j = i; j < n; j++) {
			if (!isdigit((unsigned char)v[j]))
				return 0;
			secs = secs * 10 + (v[j] - '0');
			if (secs > FS_SYNC_RETRY_AFTER_MAX_S)
				return FS_SYNC_RETRY_AFTER_MAX_S;
		}
		return secs;
	}
	memcpy(tmp, v + i, n - i);
	tmp[n - i] = '\0';
	time_t t = curl_getdate(tmp, NULL);
	if (t == (time_t)-1 || t <= now)
		return 0;
	return t - now > FS_SYNC_RETRY_AFTER_MAX_S ? FS_SYNC_RETRY_AFTER_MAX_S : (long)(t - now);
}

static int setup_handle(fs_sync_remote *r, struct slot *sl, fs_errbuf *eb)
{
	CURL *h = sl->h;
	CURLcode c = CURLE_OK;

#define SET(opt, val)                                                                              \
	do {                                                                                       \
		if (c == CURLE_OK)                                                                 \
			c = curl_easy_setopt(h, opt, val);                                         \
	} while (0)
	SET(CURLOPT_NOSIGNAL, 1L);
	SET(CURLOPT_PROTOCOLS_STR, r->http_ok ? "http" : "https");
	SET(CURLOPT_FOLLOWLOCATION, 0L);
	SET(CURLOPT_SSL_VERIFYPEER, 1L);
	SET(CURLOPT_SSL_VERIFYHOST, 2L);
	SET(CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	if (r->ca_file)
		SET(CURLOPT_CAINFO, r->ca_file);
	if (r->pins)
		SET(CURLOPT_PINNEDPUBLICKEY, r->pins);
	/* Compression saves a third of the bytes of base64 ciphertext on a real
	 * link; to a loopback peer it only costs both sides CPU. */
	if (r->compress > 0 || (r->compress == 0 && !r->loopback))
		SET(CURLOPT_ACCEPT_ENCODING, "");
	SET(CURLOPT_CONNECTTIMEOUT_MS, r->connect_ms);
	SET(CURLOPT_LOW_SPEED_TIME, r->low_time);
	SET(CURLOPT_LOW_SPEED_LIMIT, r->low_limit);
	SET(CURLOPT_TCP_KEEPALIVE, 1L);
	SET(CURLOPT_WRITEFUNCTION, on_body);
	SET(CURLOPT_WRITEDATA, sl);
	SET(CURLOPT_HEADERFUNCTION, on_header);
	SET(CURLOPT_HEADERDATA, sl);
	SET(CURLOPT_ERRORBUFFER, sl->cerr);
	SET(CURLOPT_HTTPHEADER, r->hdrs);
	SET(CURLOPT_USERAGENT, "fieldsync/0.1");
	SET(CURLOPT_NETRC, (long)CURL_NETRC_IGNORED);
	SET(CURLOPT_PROXY,
	    ""); /* no proxy from the environment: it would see our traffic's shape */
#undef SET
	if (c != CURLE_OK)
		return fs_err_set(eb, c == CURLE_OUT_OF_MEMORY ? FS_E_NOMEM : FS_E_INTERNAL,
		                  "libcurl refused an option: %s", curl_easy_strerror(c));
	return FS_OK;
}

int fs_sync_remote_new(const fs_sync_remote_opts *o, fs_sync_remote **out, fs_errbuf *eb)
{
	fs_sync_remote *r = NULL;
	struct curl_slist *l;
	int rc;

	if (out == NULL)
		return fs_err_set(eb, FS_E_ARG, "no output for the remote");
	*out = NULL;
	if (o == NULL || o->url == NULL)
		return fs_err_set(eb, FS_E_ARG, "no remote URL");
	if ((rc = fs_crypto_init()) != FS_OK)
		return fs_err_set(eb, rc, "libsodium could not start");
	if (o->pins && (rc = check_pins(o->pins, eb)) != FS_OK)
		return rc;
	if (o->connect_timeout_ms < 0 || o->low_speed_time_s < 0 || o->low_speed_limit < 0 ||
	    o->max_json_depth < 0)
		return fs_err_set(eb, FS_E_ARG, "negative limit in remote options");
	r = calloc(1, sizeof(*r));
	if (r == NULL)
		return fs_err_set(eb, FS_E_NOMEM, NULL);
	if ((rc = check_url(r, o->url, o->allow_http_loopback, eb)) != FS_OK) {
		if (rc == FS_E_NOMEM)
			fs_err_set(eb, rc, NULL);
		goto out;
	}
	r->connect_ms = o->connect_timeout_ms ? o->connect_timeout_ms : FS_SYNC_CONNECT_TIMEOUT_MS;
	r->low_time = o->low_speed_time_s ? o->low_speed_time_s : FS_SYNC_LOW_SPEED_TIME_S;
	r->low_limit = o->low_speed_limit ? o->low_speed_limit : FS_SYNC_LOW_SPEED_LIMIT;
	r->max_resp = o->max_response ? o->max_response : FS_SYNC_MAX_RESPONSE;
	r->max_depth = o->max_json_depth ? o->max_json_depth : FS_JSON_DEPTH_DEFAULT;
	r->compress = o->compress;
	rc = fs_err_set(eb, FS_E_NOMEM, NULL);
	if (o->pins && (r->pins = dupstr(o->pins)) == NULL)
		goto out;
	if (o->ca_file && (r->ca_file = dupstr(o->ca_file)) == NULL)
		goto out;
	static const char *const hdrs[] = {"Accept: application/json",
	                                   "Content-Type: application/json",
	                                   "Expect:"}; /* no 100-continue round trip */
	for (size_t i = 0; i < sizeof(hdrs) / sizeof(hdrs[0]); i++) {
		if ((l = curl_slist_append(r->hdrs, hdrs[i])) == NULL)
			goto out;
		r->hdrs = l;
	}
	if ((r->multi = curl_multi_init()) == NULL)
		goto out;
	for (int i = 0; i < FS_SYNC_SLOTS; i++) {
		r->slot[i].r = r;
		if ((r->slot[i].h = curl_easy_init()) == NULL)
			goto out;
		if ((rc = setup_handle(r, &r->slot[i], eb)) != FS_OK)
			goto out;
		rc = fs_err_set(eb, FS_E_NOMEM, NULL);
	}
	fs_err_clear(eb);
	*out = r;
	r = NULL;
	rc = FS_OK;
out:
	fs_sync_remote_free(r);
	return rc;
}

void fs_sync_remote_free(fs_sync_remote *r)
{
	if (r == NULL)
		return;
	for (int i = 0; i < FS_SYNC_SLOTS; i++) {
		if (r->slot[i].m)
			curl_multi_remove_handle(r->slot[i].m, r->slot[i].h);
		if (r->slot[i].h)
			curl_easy_cleanup(r->slot[i].h);
		free(r->slot[i].buf);
	}
	if (r->multi)
		curl_multi_cleanup(r->multi);
	curl_slist_free_all(r->hdrs);
	free_secret(&r->user);
	free_secret(&r->secret);
	free(r->db_url);
	free(r->root_url);
	free(r->pins);
	free(r->ca_file);
	free(r);
}

int fs_sync_remote_set_basic(fs_sync_remote *r, const char *user, const char *password,
                             fs_errbuf *eb)
{
	if (r == NULL || user == NULL || password == NULL || strchr(user, ':'))
		return fs_err_set(eb, FS_E_ARG, "invalid basic credentials");
	free_secret(&r->user);
	free_secret(&r->secret);
	r->auth = AUTH_NONE;
	if (secret_dup(user, &r->user) != FS_OK || secret_dup(password, &r->secret) != FS_OK) {
		free_secret(&r->user);
		return fs_err_set(eb, FS_E_NOMEM, NULL);
	}
	for (int i = 0; i < FS_SYNC_SLOTS; i++) {
		CURL *h = r->slot[i].h;
		curl_easy_setopt(h, CURLOPT_XOAUTH2_BEARER, NULL);
		if (curl_easy_setopt(h, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC) != CURLE_OK ||
		    curl_easy_setopt(h, CURLOPT_USERNAME, r->user) != CURLE_OK ||
		    curl_easy_setopt(h, CURLOPT_PASSWORD, r->secret) != CURLE_OK)
			return fs_err_set(eb, FS_E_NOMEM, NULL);
	}
	r->auth = AUTH_BASIC;
	return FS_OK;
}

int fs_sync_remote_set_bearer(fs_sync_remote *r, const char *token, fs_errbuf *eb)
{
	if (r == NULL || token == NULL || *token == '\0' || strpbrk(token, "\r\n"))
		return fs_err_set(eb, FS_E_ARG, "invalid bearer token");
	free_secret(&r->user);
	free_secret(&r->secret);
	r->auth = AUTH_NONE;
	if (secret_dup(token, &r->secret) != FS_OK)
		return fs_err_set(eb, FS_E_NOMEM, NULL);
	for (int i = 0; i < FS_SYNC_SLOTS; i++) {
		CURL *h = r->slot[i].h;
		curl_easy_setopt(h, CURLOPT_USERNAME, NULL);
		curl_easy_setopt(h, CURLOPT_PASSWORD, NULL);
		if (curl_easy_setopt(h, CURLOPT_HTTPAUTH, (long)CURLAUTH_BEARER) != CURLE_OK ||
		    curl_easy_setopt(h, CURLOPT_XOAUTH2_BEARER, r->secret) != CURLE_OK)
			return fs_err_set(eb, FS_E_NOMEM, NULL);
	}
	r->auth = AUTH_BEARER;
	return FS_OK;
}

uint64_t fs_sync_remote_encoded(const fs_sync_remote *r)
{
	return r ? r->encoded : 0;
}

void fs_sync_remote_bytes(const fs_sync_remote *r, uint64_t *sent, uint64_t *received)
{
	if (sent)
		*sent = r ? r->sent : 0;
	if (received)
		*received = r ? r->received : 0;
}

const char *fs_sync_remote_url(const fs_sync_remote *r)
{
	return r->db_url;
}

size_t fs_sync_remote_max_response(const fs_sync_remote *r)
{
	return r->max_resp;
}

int fs_sync_remote_max_depth(const fs_sync_remote *r)
{
	return r->max_depth;
}

int fs_sync_req_prepare(fs_sync_remote *r, enum fs_sync_method m, const char *path,
                        const char *body, size_t body_len, CURL **easy, fs_errbuf *eb)
{
	return fs_sync_req_prepare_on(r, 0, m, path, body, body_len, 0, easy, eb);
}

int fs_sync_req_prepare_on(fs_sync_remote *rem, int slot, enum fs_sync_method m, const char *path,
                           const char *body, size_t body_len, long timeout_ms, CURL **easy,
                           fs_errbuf *eb)
{
	char url[URL_MAX * 2];
	CURLcode c = CURLE_OK;
	struct slot *r;
	int n;

	if (easy == NULL)
		return fs_err_set(eb, FS_E_ARG, "no output for the request");
	*easy = NULL;
	if (rem == NULL || slot < 0 || slot >= FS_SYNC_SLOTS || path == NULL ||
	    (m != FS_SYNC_GET && body == NULL) || timeout_ms < 0)
		return fs_err_set(eb, FS_E_ARG, "invalid request");
	r = &rem->slot[slot];
	if (path[0] == '/')
		n = snprintf(url, sizeof(url), "%s%s", rem->root_url, path);
	else
		n = snprintf(url, sizeof(url), "%s%s%s", rem->db_url, path[0] ? "/" : "", path);
	if (n < 0 || (size_t)n >= sizeof(url))
		return fs_err_set(eb, FS_E_ARG, "request URL too long");
	slot_let_go_big(r);
	r->len = 0;
	r->overflow = 0;
	r->expect = 0;
	r->retry_after = 0;
	r->status = 0;
	r->cerr[0] = '\0';
	if (r->buf)
		r->buf[0] = '\0';
	c = curl_easy_setopt(r->h, CURLOPT_URL, url);
	if (c == CURLE_OK)
		c = curl_easy_setopt(r->h, CURLOPT_TIMEOUT_MS, timeout_ms);
	if (c == CURLE_OK)
		c = curl_easy_setopt(r->h, CURLOPT_CUSTOMREQUEST, m == FS_SYNC_PUT ? "PUT" : NULL);
	/* A streamed request before left its source here: never read it again. */
	if (c == CURLE_OK)
		c = curl_easy_setopt(r->h, CURLOPT_READFUNCTION, NULL);
	if (c == CURLE_OK)
		c = curl_easy_setopt(r->h, CURLOPT_READDATA, NULL);
	if (c == CURLE_OK)
		c = curl_easy_setopt(r->h, CURLOPT_SEEKFUNCTION, NULL);
	if (c == CURLE_OK && m == FS_SYNC_GET)
		c = curl_easy_setopt(r->h, CURLOPT_HTTPGET, 1L);
	if (c == CURLE_OK && m != FS_SYNC_GET) {
		c = curl_easy_setopt(r->h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
		if (c == CURLE_OK)
			c = curl_easy_setopt(r->h, CURLOPT_POSTFIELDS, body);
	}
	if (c != CURLE_OK)
		return fs_err_set(eb, c == CURLE_OUT_OF_MEMORY ? FS_E_NOMEM : FS_E_INTERNAL,
		                  "libcurl refused the request: %s", curl_easy_strerror(c));
	*easy = r->h;
	return FS_OK;
}

int fs_sync_req_prepare_stream(fs_sync_remote *rem, int slot, const char *path, size_t size,
                               fs_sync_read_fn read, fs_sync_seek_fn seek, void *ud,
                               long timeout_ms, CURL **easy, fs_errbuf *eb)
{
	CURL *h;
	CURLcode c;
	int rc;

	if (read == NULL || seek == NULL)
		return fs_err_set(eb, FS_E_ARG, "invalid request");
	/* The common part with an empty body, then the body's source: without
	 * POSTFIELDS, a POST reads its Content-Length bytes from read. */
	if ((rc = fs_sync_req_prepare_on(rem, slot, FS_SYNC_POST, path, "", 0, timeout_ms, &h,
	                                 eb)) != FS_OK)
		return rc;
	c = curl_easy_setopt(h, CURLOPT_POSTFIELDS, NULL);
	if (c == CURLE_OK)
		c = curl_easy_setopt(h, CURLOPT_POST, 1L);
	if (c == CURLE_OK)
		c = curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)size);
	if (c == CURLE_OK)
		c = curl_easy_setopt(h, CURLOPT_READFUNCTION, read);
	if (c == CURLE_OK)
		c = curl_easy_setopt(h, CURLOPT_READDATA, ud);
	if (c == CURLE_OK)
		c = curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, seek);
	if (c == CURLE_OK)
		c = curl_easy_setopt(h, CURLOPT_SEEKDATA, ud);
	if (c != CURLE_OK)
		return fs_err_set(eb, c == CURLE_OUT_OF_MEMORY ? FS_E_NOMEM : FS_E_INTERNAL,
		                  "libcurl refused the request: %s", curl_easy_strerror(c));
	*easy = h;
	return FS_OK;
}

int fs_sync_req_prepare_handle(fs_sync_remote *r, int slot, CURL **easy)
{
	if (easy == NULL || r == NULL || slot < 0 || slot >= FS_SYNC_SLOTS)
		return FS_E_ARG;
	*easy = r->slot[slot].h;
	return FS_OK;
}

int fs_sync_map_curl(CURLcode cc, const char *detail, fs_errbuf *eb)
{
	const char *d = detail && *detail ? detail : curl_easy_strerror(cc);

	switch (cc) {
	case CURLE_OK:
		return FS_OK;
	case CURLE_COULDNT_CONNECT:
		return fs_err_set(eb, FS_E_SYNC_OFFLINE, "cannot connect to the server: %s", d);
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
		return fs_err_set(eb, FS_E_SYNC_DNS, "the server's name did not resolve: %s", d);
	case CURLE_PEER_FAILED_VERIFICATION:
		return fs_err_set(eb, FS_E_SYNC_TLS_CERT, "the server's certificate is refused: %s",
		                  d);
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
		return fs_err_set(eb, FS_E_SYNC_TLS_PIN,
		                  "the server's public key matches none of the pins");
	case CURLE_SSL_CONNECT_ERROR:
		/* A handshake cut by the network or by a server going down (reset,
		 * EOF) is a broken connection that a retry cures; only a handshake
		 * the peer completed and refused needs a person. */
		if (strstr(d, "reset by peer") || strstr(d, "Recv failure") ||
		    strstr(d, "Send failure") || strstr(d, "SSL_ERROR_SYSCALL") ||
		    strstr(d, "unexpected eof"))
			return fs_err_set(eb, FS_E_SYNC_CONNLOST, "the connection broke: %s", d);
		return fs_err_set(eb, FS_E_SYNC_TLS, "the secure connection failed: %s", d);
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CRL_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_ENGINE_INITFAILED:
	case CURLE_SSL_SHUTDOWN_FAILED:
	case CURLE_SSL_CLIENTCERT:
		return fs_err_set(eb, FS_E_SYNC_TLS, "the secure connection failed: %s", d);
	case CURLE_OPERATION_TIMEDOUT:
		return fs_err_set(eb, FS_E_SYNC_TIMEOUT, "the server stopped answering: %s", d);
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
	case CURLE_HTTP3:
		return fs_err_set(eb, FS_E_SYNC_CONNLOST, "the connection broke: %s", d);
	case CURLE_BAD_CONTENT_ENCODING:
	case CURLE_WEIRD_SERVER_REPLY:
	case CURLE_UNSUPPORTED_PROTOCOL:
		return fs_err_set(eb, FS_E_SYNC_MALFORMED, "the server's answer is malformed: %s",
		                  d);
	case CURLE_OUT_OF_MEMORY:
		return fs_err_set(eb, FS_E_NOMEM, NULL);
	default:
		return fs_err_set(eb, FS_E_SYNC_OFFLINE, "the transfer failed: %s", d);
	}
}

int fs_sync_map_status(long status, fs_errbuf *eb)
{
	if (status >= 200 && status < 300)
		return FS_OK;
	if (status >= 300 && status < 400)
		return fs_err_set(eb, FS_E_SYNC_REDIRECT, "the server redirected (HTTP %ld)",
		                  status);
	if (status == 401 || status == 403)
		return fs_err_set(eb, FS_E_SYNC_AUTH,
		                  "the server refused our credentials (HTTP %ld)", status);
	if (status == 404)
		return fs_err_set(eb, FS_E_NOTFOUND, "not found on the server (HTTP 404)");
	if (status == 429)
		return fs_err_set(eb, FS_E_SYNC_RATE,
		                  "the server asked us to slow down (HTTP 429)");
	if (status >= 500 && status < 600)
		return fs_err_set(eb, FS_E_SYNC_SERVER, "the server failed (HTTP %ld)", status);
	if (status >= 400 && status < 500)
		return fs_err_set(eb, FS_E_SYNC_REFUSED,
		                  "the server refused the request (HTTP %ld)", status);
	return fs_err_set(eb, FS_E_SYNC_MALFORMED, "unexpected HTTP status %ld", status);
}

int fs_sync_req_finish(fs_sync_remote *r, CURLcode cc, fs_sync_resp *resp, fs_errbuf *eb)
{
	return fs_sync_req_finish_on(r, 0, cc, resp, eb);
}

int fs_sync_req_finish_on(fs_sync_remote *rem, int slot, CURLcode cc, fs_sync_resp *resp,
                          fs_errbuf *eb)
{
	curl_off_t up = 0;
	struct slot *r;
	int rc;

	if (resp)
		memset(resp, 0, sizeof(*resp));
	if (rem == NULL || slot < 0 || slot >= FS_SYNC_SLOTS)
		return fs_err_set(eb, FS_E_ARG, "no remote");
	r = &rem->slot[slot];
	if (curl_easy_getinfo(r->h, CURLINFO_SIZE_UPLOAD_T, &up) == CURLE_OK && up > 0)
		rem->sent += (uint64_t)up;
	rem->received += r->len;
	rem->encoded += r->encoded != 0;
	if (cc == CURLE_WRITE_ERROR && r->overflow)
		return fs_err_set(eb, FS_E_TOOBIG, "the server's answer exceeds %zu bytes",
		                  rem->max_resp);
	if (cc != CURLE_OK)
		return fs_sync_map_curl(cc, r->cerr, eb);
	if (curl_easy_getinfo(r->h, CURLINFO_RESPONSE_CODE, &r->status) != CURLE_OK)
		return fs_err_set(eb, FS_E_INTERNAL, "no HTTP status");
	if (resp) {
		resp->status = r->status;
		resp->body = r->buf ? r->buf : "";
		resp->len = r->len;
		resp->retry_after_s = r->retry_after;
	}
	rc = fs_sync_map_status(r->status, eb);
	return rc;
}

static int multi_err(CURLMcode mc, fs_errbuf *eb)
{
	return fs_err_set(eb, mc == CURLM_OUT_OF_MEMORY ? FS_E_NOMEM : FS_E_INTERNAL,
	                  "libcurl multi: %s", curl_multi_strerror(mc));
}

void fs_sync_remote_trim(fs_sync_remote *r)
{
	if (r == NULL)
		return;
	for (int i = 0; i < FS_SYNC_SLOTS; i++)
		if (r->slot[i].m == NULL)
			slot_let_go_big(&r->slot[i]);
}

/* Records a finished transfer in its slot; -1 when easy is not one of r's. */
int fs_sync_req_ended(fs_sync_remote *r, CURL *easy, CURLcode cc)
{
	if (r == NULL || easy == NULL)
		return -1;
	for (int i = 0; i < FS_SYNC_SLOTS; i++)
		if (r->slot[i].m && r->slot[i].h == easy) {
			r->slot[i].done = 1;
			r->slot[i].result = cc;
			return i;
		}
	return -1;
}

/* Moves the remote's own multi handle's finished transfers into their slots. */
static int pump(fs_sync_remote *r, fs_errbuf *eb)
{
	CURLMsg *msg;
	CURLMcode mc;
	int running, left;

	if ((mc = curl_multi_perform(r->multi, &running)) != CURLM_OK)
		return multi_err(mc, eb);
	while ((msg = curl_multi_info_read(r->multi, &left)) != NULL)
		if (msg->msg == CURLMSG_DONE)
			(void)fs_sync_req_ended(r, msg->easy_handle, msg->data.result);
	return FS_OK;
}

int fs_sync_remote_pump(fs_sync_remote *r, int timeout_ms, fs_errbuf *eb)
{
	CURLMcode mc;
	int rc;

	if (r == NULL || timeout_ms < 0)
		return fs_err_set(eb, FS_E_ARG, "no remote");
	if ((mc = curl_multi_poll(r->multi, NULL, 0, timeout_ms, NULL)) != CURLM_OK)
		return multi_err(mc, eb);
	rc = pump(r, eb);
	return rc;
}

int fs_sync_req_start_on(fs_sync_remote *r, int slot, CURLM *m, fs_errbuf *eb)
{
	CURLMcode mc;
	int running, rc = FS_OK;

	if (r == NULL || slot < 0 || slot >= FS_SYNC_SLOTS || r->slot[slot].m)
		return fs_err_set(eb, FS_E_ARG, "slot busy or invalid");
	if (m == NULL)
		m = r->multi;
	if ((mc = curl_multi_add_handle(m, r->slot[slot].h)) != CURLM_OK)
		return multi_err(mc, eb);
	r->slot[slot].m = m;
	r->slot[slot].done = 0;
	/* Get the request onto the wire now, so the server works while we do
	 * (a pull parses and stores one batch while the next is fetched). On a
	 * caller's multi handle only perform: its owner reads the messages. */
	if (m == r->multi)
		rc = pump(r, eb);
	else if ((mc = curl_multi_perform(m, &running)) != CURLM_OK)
		rc = multi_err(mc, eb);
	if (rc != FS_OK) /* leave the slot usable */
		fs_sync_req_cancel(r, slot);
	return rc;
}

int fs_sync_req_start(fs_sync_remote *r, int slot, fs_errbuf *eb)
{
	return fs_sync_req_start_on(r, slot, NULL, eb);
}

int fs_sync_req_busy(const fs_sync_remote *r, int slot)
{
	return r && slot >= 0 && slot < FS_SYNC_SLOTS && r->slot[slot].m != NULL;
}

int fs_sync_req_ready(const fs_sync_remote *r, int slot)
{
	return fs_sync_req_busy(r, slot) && r->slot[slot].done;
}

void fs_sync_req_cancel(fs_sync_remote *r, int slot)
{
	if (!fs_sync_req_busy(r, slot))
		return;
	/* Removing a running transfer closes its connection: nothing half-read
	 * can be mistaken for the next answer. */
	(void)curl_multi_remove_handle(r->slot[slot].m, r->slot[slot].h);
	r->slot[slot].m = NULL;
	r->slot[slot].done = 0;
}

int fs_sync_req_collect(fs_sync_remote *r, int slot, fs_sync_resp *resp, fs_errbuf *eb)
{
	CURLcode cc;

	if (resp)
		memset(resp, 0, sizeof(*resp));
	if (!fs_sync_req_ready(r, slot))
		return fs_err_set(eb, FS_E_ARG, "no finished request in the slot");
	cc = r->slot[slot].result;
	fs_sync_req_cancel(r, slot);
	return fs_sync_req_finish_on(r, slot, cc, resp, eb);
}

int fs_sync_req_wait(fs_sync_remote *r, int slot, fs_sync_resp *resp, fs_errbuf *eb)
{
	int rc;

	if (resp)
		memset(resp, 0, sizeof(*resp));
	if (!fs_sync_req_busy(r, slot) || r->slot[slot].m != r->multi)
		return fs_err_set(eb, FS_E_ARG, "no request under way in the slot");
	while (!r->slot[slot].done) {
		rc = pump(r, eb);
		if (rc == FS_OK && !r->slot[slot].done)
			rc = fs_sync_remote_pump(r, 1000, eb);
		if (rc != FS_OK) { /* abandon the transfer, keep the slot usable */
			fs_sync_req_cancel(r, slot);
			return rc;
		}
	}
	return fs_sync_req_collect(r, slot, resp, eb);
}

int fs_sync_req_perform(fs_sync_remote *r, enum fs_sync_method m, const char *path,
                        const char *body, size_t body_len, fs_sync_resp *resp, fs_errbuf *eb)
{
	CURL *h;
	int rc;

	if (resp)
		memset(resp, 0, sizeof(*resp));
	if ((rc = fs_sync_req_prepare(r, m, path, body, body_len, &h, eb)) != FS_OK)
		return rc;
	if ((rc = fs_sync_req_start(r, 0, eb)) != FS_OK)
		return rc;
	return fs_sync_req_wait(r, 0, resp, eb);
}

int fs_sync_remote_check(fs_sync_remote *r, fs_errbuf *eb)
{
	fs_sync_resp resp;
	fs_sync_db_info *info = NULL;
	int rc;

	rc = fs_sync_req_perform(r, FS_SYNC_GET, "", NULL, 0, &resp, eb);
	if (rc == FS_E_NOTFOUND)
		return fs_err_set(eb, FS_E_SYNC_NODB, "the database does not exist on the server");
	if (rc != FS_OK)
		return rc;
	rc = fs_sync_parse_db_info(resp.body, resp.len, r->max_depth, &info, eb);
	fs_sync_db_info_free(info);
	return rc;
}

int fs_sync_err_transient(int code)
{
	switch (code) {
	case FS_E_SYNC_OFFLINE:
	case FS_E_SYNC_DNS:
	case FS_E_SYNC_SERVER:
	case FS_E_SYNC_MALFORMED:
	case FS_E_SYNC_TIMEOUT:
	case FS_E_SYNC_RATE:
	case FS_E_SYNC_CONNLOST:
	case FS_E_TOOBIG:
		return 1;
	default:
		return 0;
	}
}
