/*
 * daemon/cli.c: fieldsync, the command line client of fieldsyncd. It talks
 * to the daemon's local API over the Unix socket with libcurl and tells a
 * person in plain words what happened; --json gives scripts the API's answer.
 */
#include "cli_int.h"
#include "daemon.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define RESP_MAX (64u << 20)

static const char *sock_path;
int cli_json_out;

struct buf {
	char *p;
	size_t n;
};

/* Answers carry plaintext (names, notes): the buffer grows by copying and
 * wiping the old one, never by realloc, which would free it unwiped. */
static size_t on_data(char *p, size_t sz, size_t nm, void *ud)
{
	struct buf *b = ud;
	size_t n = sz * nm;
	char *q;

	if (b->n + n > RESP_MAX || (q = malloc(b->n + n + 1)) == NULL)
		return 0;
	if (b->p) {
		memcpy(q, b->p, b->n);
		cli_wipe(b->p, b->n);
		free(b->p);
	}
	b->p = q;
	memcpy(b->p + b->n, p, n);
	b->n += n;
	b->p[b->n] = '\0';
	return n;
}

static int code_of(const char *name)
{
	for (int i = 0; i < 700; i++)
		if (name && !strcmp(fs_errname(i), name))
			return i;
	return FS_E_INTERNAL;
}

int cli_exit_of(int code)
{
	switch (code) {
	case FS_OK:
		return EX_OK;
	case FS_E_DAEMON_DOWN:
		return EX_DOWN;
	case FS_E_DAEMON_LOCKED:
	case FS_E_DAEMON_NOINIT:
		return EX_LOCKED;
	case FS_E_PASSPHRASE:
	case FS_E_DAEMON_SLOWDOWN:
		return EX_PASS;
	case FS_E_STORE_CONFLICT:
		return EX_CONFLICT;
	case FS_E_NOTFOUND:
		return EX_NOTFOUND;
	case FS_E_TEAM_NOKEY:
	case FS_E_TEAM_REVOKED:
	case FS_E_TEAM_NOTMEMBER:
		return EX_TEAM;
	default:
		return EX_FAIL;
	}
}

/* prefix + the escaped id + suffix into path: an id from the command line
 * can never reach another endpoint or add query arguments. 0, or -1 with a
 * message when it does not fit. */
int cli_id_path(char *path, size_t n, const char *prefix, const char *id, const char *suffix)
{
	char *esc = curl_easy_escape(NULL, id, 0);
	int w = esc ? snprintf(path, n, "%s%s%s", prefix, esc, suffix) : -1;

	curl_free(esc);
	if (w < 0 || (size_t)w >= n || id[0] == '\0') {
		fprintf(stderr, "fieldsync: not a valid id: too long or empty\n");
		return -1;
	}
	return 0;
}

/*
 * One API call. On FS_OK *out is the answer (caller frees); otherwise the
 * error is printed in plain words (or as JSON with --json) and returned.
 */
int cli_call(const char *method, const char *path, const char *body, cJSON **out, int quiet)
{
	CURL *h = curl_easy_init();
	struct curl_slist *hd = NULL;
	struct buf b = {0};
	char url[2048];
	long status = 0;
	CURLcode cc;
	cJSON *o = NULL;
	int code = FS_OK;

	*out = NULL;
	if (h == NULL)
		return FS_E_NOMEM;
	if ((size_t)snprintf(url, sizeof(url), "http://localhost%s", path) >= sizeof(url)) {
		curl_easy_cleanup(h);
		return FS_E_TOOBIG;
	}
	curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, sock_path);
	curl_easy_setopt(h, CURLOPT_PATH_AS_IS, 1L); /* ids are escaped; no dot squashing */
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
	if (body) {
		hd = curl_slist_append(hd, "Content-Type: application/json");
		curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
	}
	cc = curl_easy_perform(h);
	if (cc == CURLE_COULDNT_CONNECT || cc == CURLE_COULDNT_RESOLVE_HOST) {
		code = FS_E_DAEMON_DOWN;
		if (!quiet) {
			if (cli_json_out)
				printf("{\"code\":\"%s\",\"message\":\"%s\"}\n", fs_errname(code),
				       "the fieldsync daemon is not running");
			else
				fprintf(stderr,
				        "fieldsync: the daemon is not running (no socket at %s): "
				        "start it with \"fieldsyncd\" or \"systemctl --user start "
				        "fieldsyncd\"\n",
				        sock_path);
		}
		goto out;
	}
	if (cc != CURLE_OK) {
		code = FS_E_IO;
		if (!quiet)
			fprintf(stderr, "fieldsync: talking to the daemon failed: %s\n",
			        curl_easy_strerror(cc));
		goto out;
	}
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	o = b.p ? cJSON_Parse(b.p) : NULL;
	if (o == NULL) {
		code = FS_E_INPUT;
		if (!quiet)
			fprintf(stderr, "fieldsync: the daemon's answer is not valid (HTTP %ld)\n",
			        status);
		goto out;
	}
	if (status >= 400) {
		cJSON *c = cJSON_GetObjectItem(o, "code"), *m = cJSON_GetObjectItem(o, "message");
		code = code_of(cJSON_GetStringValue(c));
		if (!quiet) {
			if (cli_json_out)
				printf("%s\n", b.p);
			else
				fprintf(stderr, "fieldsync: %s\n",
				        cJSON_GetStringValue(m) ? cJSON_GetStringValue(m)
				                                : fs_strerror(code));
		}
		cJSON_Delete(o);
		o = NULL;
		goto out;
	}
	*out = o;
out:
	if (b.p) {
		cli_wipe(b.p, b.n);
		free(b.p);
	}
	curl_slist_free_all(hd);
	curl_easy_cleanup(h);
	return code;
}

void cli_print_json(const cJSON *o)
{
	char *t = cJSON_Print(o);
	if (t) {
		printf("%s\n", t);
		cli_wipe(t, strlen(t));
	}
	cJSON_free(t);
}

/* Reads a passphrase without echo from the terminal, or a line from stdin
 * when it is not a terminal (scripts, tests). Returns length or -1. */
/* The terminal's settings while echo is off, for the signal handler. */
static struct termios tty_saved;
static volatile sig_atomic_t tty_dirty;

static void tty_restore(int sig)
{
	/* Ctrl-C (or a kill) while the passphrase is typed: echo comes back
	 * before the default action ends the process. */
	if (tty_dirty)
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &tty_saved);
	signal(sig, SIG_DFL);
	raise(sig);
}

int cli_read_pass(const char *prompt, char *out, size_t max)
{
	struct sigaction sa = {0}, old_int, old_term;
	struct termios nw;
	int tty = isatty(STDIN_FILENO), eof = 0;
	size_t n = 0;

	if (tty) {
		fprintf(stderr, "%s", prompt);
		fflush(stderr);
		if (tcgetattr(STDIN_FILENO, &tty_saved) != 0)
			return -1;
		sa.sa_handler = tty_restore;
		sigemptyset(&sa.sa_mask);
		sigaction(SIGINT, &sa, &old_int);
		sigaction(SIGTERM, &sa, &old_term);
		nw = tty_saved;
		nw.c_lflag &= ~(tcflag_t)ECHO;
		tty_dirty = 1;
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &nw);
	}
	/* Byte by byte with read(2), never through stdio: its buffer would
	 * keep a copy of the passphrase, and of the lines after it. */
	while (n + 1 < max) {
		char c;
		ssize_t r = read(STDIN_FILENO, &c, 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			eof = n == 0;
			break;
		}
		if (c == '\n')
			break;
		out[n++] = c;
	}
	/* Past the bound the rest of the line is dropped, so the next line
	 * (a token after a passphrase) is read from its start. */
	for (char c = 0; n + 1 >= max && c != '\n';)
		if (read(STDIN_FILENO, &c, 1) <= 0)
			break;
	out[n] = '\0';
	if (tty) {
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &tty_saved);
		tty_dirty = 0;
		sigaction(SIGINT, &old_int, NULL);
		sigaction(SIGTERM, &old_term, NULL);
		fprintf(stderr, "\n");
	}
	if (eof)
		return -1;
	while (n && out[n - 1] == '\r')
		out[--n] = '\0';
	return (int)n;
}

void cli_wipe(char *s, size_t n)
{
	volatile char *p = s;
	while (n--)
		*p++ = 0;
}

/* Body {"k1":p1[,"k2":p2]} built with cJSON so passphrases are escaped. */
char *cli_pass_body(const char *k1, const char *p1, const char *k2, const char *p2)
{
	cJSON *o = cJSON_CreateObject();
	char *t;

	cJSON_AddStringToObject(o, k1, p1);
	if (k2)
		cJSON_AddStringToObject(o, k2, p2);
	t = cJSON_PrintUnformatted(o);
	/* The tree's strings hold the passphrase: wipe before freeing. */
	for (cJSON *c = o->child; c; c = c->next)
		cli_wipe(c->valuestring, strlen(c->valuestring));
	cJSON_Delete(o);
	return t;
}

void cli_free_secret_text(char *t)
{
	if (t) {
		cli_wipe(t, strlen(t));
		free(t);
	}
}

static void ago(char *out, size_t n, double then_ms, double now_ms)
{
	double s = (now_ms - then_ms) / 1000.0;
	if (then_ms <= 0)
		snprintf(out, n, "never");
	else if (s < 90)
		snprintf(out, n, "%.0f s ago", s < 0 ? 0 : s);
	else if (s < 5400)
		snprintf(out, n, "%.0f min ago", s / 60);
	else if (s < 172800)
		snprintf(out, n, "%.1f h ago", s / 3600);
	else
		snprintf(out, n, "%.0f days ago", s / 86400);
}

double cli_num(const cJSON *o, const char *k)
{
	return cJSON_GetNumberValue(cJSON_GetObjectItem(o, k));
}

const char *cli_str(const cJSON *o, const char *k)
{
	const char *s = cJSON_GetStringValue(cJSON_GetObjectItem(o, k));
	return s ? s : "";
}

int cli_done(int code, cJSON *o, const char *plain_ok)
{
	if (code == FS_OK) {
		if (cli_json_out)
			cli_print_json(o);
		else if (plain_ok)
			printf("%s\n", plain_ok);
	}
	cJSON_Delete(o);
	return cli_exit_of(code);
}

/* ---- commands ---- */

static int cmd_status(void)
{
	cJSON *o;
	int code = cli_call("GET", "/v1/status", NULL, &o, 0);
	char when[64];

	if (code != FS_OK || cli_json_out)
		return cli_done(code, o, NULL);
	double now = cli_num(o, "now_ms");
	if (!cJSON_IsTrue(cJSON_GetObjectItem(o, "initialized")))
		printf("not set up yet: run \"fieldsync init\"\n");
	else if (cJSON_IsTrue(cJSON_GetObjectItem(o, "locked")))
		printf("locked: records cannot be read or written (\"fieldsync unlock\"); "
		       "sync goes on\n");
	else
		printf("unlocked (locks itself after %.0f min without use)\n",
		       cli_num(o, "auto_lock_seconds") / 60);
	printf("network: %s\n",
	       cJSON_IsTrue(cJSON_GetObjectItem(o, "online")) ? "online" : "offline");
	if (cli_num(o, "queued") > 0) {
		ago(when, sizeof(when), cli_num(o, "oldest_queued_ms"), now);
		printf("waiting to sync: %.0f change(s), the oldest from %s\n",
		       cli_num(o, "queued"), when);
	} else {
		printf("waiting to sync: nothing\n");
	}
	if (cli_num(o, "quarantined") > 0)
		printf("refused by the server: %.0f (see \"fieldsync quarantine\")\n",
		       cli_num(o, "quarantined"));
	if (cli_num(o, "conflicts") > 0)
		printf("conflicts: %.0f record(s) edited in two places\n", cli_num(o, "conflicts"));
	if (cJSON_IsTrue(cJSON_GetObjectItem(o, "initialized")))
		cli_team_status(cJSON_GetObjectItem(o, "team"));
	cJSON *r;
	cJSON_ArrayForEach(r, cJSON_GetObjectItem(o, "remotes"))
	{
		ago(when, sizeof(when), cli_num(r, "last_sync_ms"), now);
		printf("remote %s (%s): last sync %s", cli_str(r, "name"), cli_str(r, "url"), when);
		if (strcmp(cli_str(r, "last_error"), "FS_OK") != 0)
			printf("; now: %s", cli_str(r, "last_error_text"));
		printf("\n");
	}
	if (cJSON_GetArraySize(cJSON_GetObjectItem(o, "remotes")) == 0)
		printf("no remote yet: add one with \"fieldsync remote add NAME URL\"\n");
	return cli_done(code, o, NULL);
}

/* The new passphrase, twice on a terminal: 0 and *body, or an exit status. */
int cli_new_pass(const char *prompt, char *p1, size_t cap)
{
	char p2[CLI_PASS_MAX];
	int n1, n2;

	n1 = cli_read_pass(prompt, p1, cap);
	if (n1 <= 0) {
		fprintf(stderr, "fieldsync: no passphrase given\n");
		return EX_USAGE;
	}
	if (isatty(STDIN_FILENO)) {
		n2 = cli_read_pass("Type it again: ", p2, sizeof(p2));
		if (n2 != n1 || strcmp(p1, p2) != 0) {
			cli_wipe(p1, cap);
			cli_wipe(p2, sizeof(p2));
			fprintf(stderr,
			        "fieldsync: the two passphrases differ; nothing was changed\n");
			return EX_USAGE;
		}
	}
	cli_wipe(p2, sizeof(p2));
	return 0;
}

static int cmd_init(int argc, char **argv)
{
	char p1[CLI_PASS_MAX];
	const char *name = NULL, *rec = NULL;
	cJSON *o, *req;
	int code;

	for (int i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--name") && i + 1 < argc)
			name = argv[++i];
		else if (!strcmp(argv[i], "--recovery") && i + 1 < argc)
			rec = argv[++i];
		else {
			fprintf(stderr, "fieldsync: see \"fieldsync init --help\"\n");
			return EX_USAGE;
		}
	}
	if ((code = cli_new_pass("Choose a passphrase: ", p1, sizeof(p1))) != 0)
		return code;
	req = cJSON_CreateObject();
	cJSON_AddStringToObject(req, "passphrase", p1);
	cli_wipe(p1, sizeof(p1));
	if (name)
		cJSON_AddStringToObject(req, "name", name);
	if (rec)
		cJSON_AddStringToObject(req, "recovery", rec);
	code = cli_post_tree("/v1/init", req, &o);
	if (code == FS_OK && !cli_json_out) {
		const cJSON *t = cJSON_GetObjectItem(o, "team");
		const cJSON *me = cJSON_GetObjectItem(t, "this_device");
		printf(
		    "set up: this device has its own encrypted store and space, and is unlocked\n");
		printf("device \"%s\", fingerprint %s\n", cli_str(me, "name"),
		       cli_str(me, "fingerprint"));
		if (rec)
			printf(
			    "every key of the space is also sealed to the office recovery key\n");
	}
	return cli_done(code, o, NULL);
}

static int cmd_unlock(void)
{
	char p[CLI_PASS_MAX];
	char *body;
	cJSON *o;
	int code;

	if (cli_read_pass("Passphrase: ", p, sizeof(p)) <= 0) {
		fprintf(stderr, "fieldsync: no passphrase given\n");
		return EX_USAGE;
	}
	body = cli_pass_body("passphrase", p, NULL, NULL);
	cli_wipe(p, sizeof(p));
	code = cli_call("POST", "/v1/unlock", body, &o, 0);
	cli_free_secret_text(body);
	return cli_done(code, o, "unlocked");
}

static int cmd_passwd(void)
{
	char a[CLI_PASS_MAX], b[CLI_PASS_MAX], c[CLI_PASS_MAX];
	char *body;
	cJSON *o;
	int code;

	if (cli_read_pass("Current passphrase: ", a, sizeof(a)) <= 0 ||
	    cli_read_pass("New passphrase: ", b, sizeof(b)) <= 0) {
		fprintf(stderr, "fieldsync: no passphrase given\n");
		return EX_USAGE;
	}
	if (isatty(STDIN_FILENO) &&
	    (cli_read_pass("New passphrase again: ", c, sizeof(c)) <= 0 || strcmp(b, c) != 0)) {
		fprintf(stderr, "fieldsync: the new passphrases differ; nothing was changed\n");
		cli_wipe(a, sizeof(a));
		cli_wipe(b, sizeof(b));
		cli_wipe(c, sizeof(c));
		return EX_USAGE;
	}
	body = cli_pass_body("old", a, "new", b);
	cli_wipe(a, sizeof(a));
	cli_wipe(b, sizeof(b));
	cli_wipe(c, sizeof(c));
	code = cli_call("POST", "/v1/passwd", body, &o, 0);
	cli_free_secret_text(body);
	return cli_done(code, o, "passphrase changed");
}

static int progress_bar(int tty, double sent, double total)
{
	if (!tty || total <= 0)
		return 0;
	int w = 30, k = (int)(w * (sent / total));
	if (k > w)
		k = w;
	fprintf(stderr, "\r[%.*s%*s] %.0f/%.0f sent", k, "##############################", w - k,
	        "", sent, total);
	return 1;
}

static int cmd_sync(int wait, double timeout_s)
{
	cJSON *o, *s = NULL;
	int code = cli_call("POST", "/v1/sync", "{}", &o, 0), tty = isatty(STDERR_FILENO);
	double req, total = -1;
	struct timespec t0, t;

	if (code != FS_OK || !wait)
		return cli_done(code, o, "sync started");
	req = cli_num(o, "requested_ms");
	cJSON_Delete(o);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		int all = 1, fatal = 0;
		cJSON *r;
		if ((code = cli_call("GET", "/v1/status", NULL, &s, 0)) != FS_OK)
			return cli_exit_of(code);
		if (total < 0)
			total = cli_num(s, "queued");
		progress_bar(tty, total - cli_num(s, "queued"), total);
		cJSON_ArrayForEach(r, cJSON_GetObjectItem(s, "remotes"))
		{
			const char *e = cli_str(r, "last_error");
			if (cli_num(r, "last_sync_ms") < req)
				all = 0;
			if (strcmp(e, "FS_OK") && cli_num(r, "last_try_ms") >= req &&
			    !(code_of(e) >= FS_E_SYNC_OFFLINE && code_of(e) <= FS_E_SYNC_TIMEOUT)) {
				fatal = code_of(e);
				if (!cli_json_out)
					fprintf(stderr, "%sfieldsync: remote %s: %s\n",
					        tty ? "\n" : "", cli_str(r, "name"),
					        cli_str(r, "last_error_text"));
			}
		}
		if (fatal) {
			if (cli_json_out)
				cli_print_json(s);
			cJSON_Delete(s);
			return cli_exit_of(fatal);
		}
		if (all && cli_num(s, "queued") == 0) {
			if (tty && total > 0)
				fprintf(stderr, "\n");
			if (cli_json_out)
				cli_print_json(s);
			else
				printf("in sync\n");
			cJSON_Delete(s);
			return EX_OK;
		}
		clock_gettime(CLOCK_MONOTONIC, &t);
		if ((double)(t.tv_sec - t0.tv_sec) + (t.tv_nsec - t0.tv_nsec) / 1e9 > timeout_s) {
			if (tty && total > 0)
				fprintf(stderr, "\n");
			fprintf(stderr,
			        "fieldsync: not in sync after %.0f s: %.0f change(s) still waiting "
			        "(the daemon goes on trying by itself)\n",
			        timeout_s, cli_num(s, "queued"));
			cJSON_Delete(s);
			return EX_FAIL;
		}
		cJSON_Delete(s);
		usleep(200000);
	}
}

int cli_server_opt(cJSON *req, int argc, char **argv, int *i)
{
	char secret[CLI_PASS_MAX];
	const char *a = argv[*i];

	if (!strcmp(a, "--pin") && *i + 1 < argc) {
		/* Several pins (a certificate rotation) are kept as "p1;p2". */
		const char *had = cJSON_GetStringValue(cJSON_GetObjectItem(req, "pins"));
		char pins[1024];
		snprintf(pins, sizeof(pins), "%s%s%s", had ? had : "", had ? ";" : "", argv[++*i]);
		cJSON_DeleteItemFromObject(req, "pins");
		cJSON_AddStringToObject(req, "pins", pins);
	} else if (!strcmp(a, "--ca") && *i + 1 < argc) {
		char abs[FS_DAEMON_PATH_MAX];
		const char *ca = argv[++*i];
		if (ca[0] != '/' && realpath(ca, abs))
			ca = abs;
		cJSON_AddStringToObject(req, "ca", ca);
	} else if (!strcmp(a, "--user") && *i + 1 < argc) {
		cJSON_AddStringToObject(req, "user", argv[++*i]);
	} else if (!strcmp(a, "--password") || !strcmp(a, "--token")) {
		int tok = !strcmp(a, "--token");
		if (cli_read_pass(tok ? "Token: " : "Server password: ", secret, sizeof(secret)) <=
		    0) {
			fprintf(stderr, "fieldsync: nothing read for %s\n", a);
			return -1;
		}
		cJSON_AddStringToObject(req, tok ? "token" : "password", secret);
		cli_wipe(secret, sizeof(secret));
	} else {
		return 0;
	}
	return 1;
}

int cli_post_tree(const char *path, cJSON *req, cJSON **out)
{
	char *body = cJSON_PrintUnformatted(req);
	int code;

	cli_free_tree(req);
	if (body == NULL) {
		*out = NULL;
		fprintf(stderr, "fieldsync: out of memory\n");
		return FS_E_NOMEM;
	}
	code = cli_call("POST", path, body, out, 0);
	cli_free_secret_text(body);
	return code;
}

void cli_free_tree(cJSON *o)
{
	/* Its strings may be a password or token. */
	for (cJSON *c = o ? o->child : NULL; c; c = c->next)
		if (cJSON_IsString(c))
			cli_wipe(c->valuestring, strlen(c->valuestring));
	cJSON_Delete(o);
}

static int cmd_remote(int argc, char **argv)
{
	cJSON *o = NULL;
	int code;

	if (argc < 1 || !strcmp(argv[0], "list")) {
		if ((code = cli_call("GET", "/v1/remotes", NULL, &o, 0)) != FS_OK || cli_json_out)
			return cli_done(code, o, NULL);
		cJSON *r;
		cJSON_ArrayForEach(r, cJSON_GetObjectItem(o, "remotes")) printf(
		    "%s\t%s\t%s\n", cli_str(r, "name"), cli_str(r, "url"), cli_str(r, "auth"));
		return cli_done(code, o, NULL);
	}
	if (!strcmp(argv[0], "remove") && argc == 2) {
		char path[256];
		if (cli_id_path(path, sizeof(path), "/v1/remotes/", argv[1], "") != 0)
			return EX_USAGE;
		code = cli_call("DELETE", path, NULL, &o, 0);
		return cli_done(code, o, "removed");
	}
	if (!strcmp(argv[0], "add") && argc >= 3) {
		cJSON *req = cJSON_CreateObject();
		cJSON_AddStringToObject(req, "name", argv[1]);
		cJSON_AddStringToObject(req, "url", argv[2]);
		for (int i = 3; i < argc; i++) {
			int r = cli_server_opt(req, argc, argv, &i);
			if (r <= 0) {
				cli_free_tree(req);
				if (r == 0)
					fprintf(stderr,
					        "fieldsync: unknown option %s (see --help)\n",
					        argv[i]);
				return EX_USAGE;
			}
		}
		code = cli_post_tree("/v1/remotes", req, &o);
		return cli_done(code, o, "added: the daemon syncs with it from now on");
	}
	fprintf(stderr, "fieldsync: see \"fieldsync remote --help\"\n");
	return EX_USAGE;
}

static int cmd_rows(const char *what, int argc, char **argv)
{
	cJSON *o, *r;
	char path[128];
	int code, q = !strcmp(what, "quarantine");

	if (q && argc == 2 && !strcmp(argv[0], "retry")) {
		if (cli_id_path(path, sizeof(path), "/v1/quarantine/", argv[1], "/retry") != 0)
			return EX_USAGE;
		code = cli_call("POST", path, "{}", &o, 0);
		return cli_done(code, o, "queued again");
	}
	if (argc != 0) {
		fprintf(stderr, "fieldsync: see \"fieldsync %s --help\"\n", what);
		return EX_USAGE;
	}
	snprintf(path, sizeof(path), "/v1/%s", what);
	if ((code = cli_call("GET", path, NULL, &o, 0)) != FS_OK || cli_json_out)
		return cli_done(code, o, NULL);
	size_t n = 0;
	cJSON_ArrayForEach(r, cJSON_GetObjectItem(o, what))
	{
		n++;
		if (q)
			printf("%.0f\t%s\t%s\tHTTP %.0f: %s\n", cli_num(r, "oid"), cli_str(r, "id"),
			       cli_str(r, "rev"), cli_num(r, "status"), cli_str(r, "reason"));
		else
			printf("%s\t%s%s\n", cli_str(r, "id"), cli_str(r, "rev"),
			       cJSON_IsTrue(cJSON_GetObjectItem(r, "deleted")) ? "\t(deleted)"
			                                                       : "");
	}
	if (n == 0)
		printf(q ? "nothing refused\n" : "nothing waiting\n");
	return cli_done(code, o, NULL);
}

/* casework's merge rules settle what they can; the rest is listed. */
static int cmd_resolve(void)
{
	cJSON *o, *r;
	int code = cli_call("POST", "/v1/conflicts/resolve", "{}", &o, 0);

	if (code != FS_OK || cli_json_out)
		return cli_done(code, o, NULL);
	printf("resolved %d\n", (int)cli_num(o, "resolved"));
	cJSON_ArrayForEach(r, cJSON_GetObjectItem(o, "conflicts"))
	    printf("%s\t%s\t%d versions\t%s\n", cli_str(r, "id"), cli_str(r, "type"),
	           (int)cli_num(r, "leaves"), cli_str(r, "reason"));
	return cli_done(code, o, NULL);
}

static int cmd_conflicts(void)
{
	cJSON *o, *r;
	int code = cli_call("GET", "/v1/conflicts", NULL, &o, 0);

	if (code != FS_OK || cli_json_out)
		return cli_done(code, o, NULL);
	size_t n = 0;
	cJSON_ArrayForEach(r, cJSON_GetObjectItem(o, "conflicts"))
	{
		n++;
		printf("%s\tshown: %s\t(%d versions)\n", cli_str(r, "id"), cli_str(r, "winner"),
		       cJSON_GetArraySize(cJSON_GetObjectItem(r, "revs")));
	}
	if (n == 0)
		printf("no conflicts\n");
	return cli_done(code, o, NULL);
}

static char *read_note(FILE *f);

static int cmd_record(int argc, char **argv)
{
	char path[2048];
	cJSON *o = NULL, *req = NULL, *data = NULL;
	char *body = NULL;
	int code;

	if (argc >= 1 && (!strcmp(argv[0], "add") || !strcmp(argv[0], "update"))) {
		int add = !strcmp(argv[0], "add");
		if (argc != 4 - add) {
			fprintf(stderr, "fieldsync: usage: fieldsync record %s\n",
			        add ? "add TYPE JSON" : "update ID REV JSON");
			return EX_USAGE;
		}
		/* "-": the JSON comes from stdin, out of the process list and the
		 * shell's history (a record may hold a client's name). */
		const char *arg = argv[add ? 2 : 3];
		char *in = strcmp(arg, "-") == 0 ? read_note(stdin) : NULL;
		if (strcmp(arg, "-") == 0 && in == NULL)
			return EX_USAGE;
		data = cJSON_Parse(in ? in : arg);
		if (in) {
			cli_wipe(in, strlen(in));
			free(in);
		}
		if (data == NULL || !cJSON_IsObject(data)) {
			cJSON_Delete(data);
			fprintf(stderr, "fieldsync: the record must be a JSON object, e.g. "
			                "'{\"note\":\"...\"}'\n");
			return EX_USAGE;
		}
		req = cJSON_CreateObject();
		if (add)
			cJSON_AddStringToObject(req, "type", argv[1]);
		else
			cJSON_AddStringToObject(req, "rev", argv[2]);
		cJSON_AddItemToObject(req, "data", data);
		body = cJSON_PrintUnformatted(req);
		cJSON_Delete(req);
		if (add)
			snprintf(path, sizeof(path), "/v1/records");
		else if (cli_id_path(path, sizeof(path), "/v1/records/", argv[1], "") != 0)
			return EX_USAGE;
		code = cli_call(add ? "POST" : "PUT", path, body, &o, 0);
		cli_free_secret_text(body);
		if (code == FS_OK && !cli_json_out)
			printf("saved %s (revision %s)\n", cli_str(o, "id"), cli_str(o, "rev"));
		return cli_done(code, o, NULL);
	}
	if (argc == 2 && !strcmp(argv[0], "get")) {
		if (cli_id_path(path, sizeof(path), "/v1/records/", argv[1], "") != 0)
			return EX_USAGE;
		code = cli_call("GET", path, NULL, &o, 0);
		if (code == FS_OK && !cli_json_out)
			cli_print_json(o);
		return cli_done(code, o, NULL);
	}
	if ((argc == 1 || argc == 2) && !strcmp(argv[0], "list")) {
		char *esc = argc == 2 ? curl_easy_escape(NULL, argv[1], 0) : NULL;
		snprintf(path, sizeof(path), "/v1/records%s%s", esc ? "?type=" : "",
		         esc ? esc : "");
		curl_free(esc);
		code = cli_call("GET", path, NULL, &o, 0);
		if (code == FS_OK && !cli_json_out) {
			cJSON *r;
			cJSON_ArrayForEach(r, cJSON_GetObjectItem(o, "records"))
			{
				char *d = cJSON_PrintUnformatted(cJSON_GetObjectItem(r, "data"));
				printf("%s\t%s\t%s\n", cli_str(r, "id"), cli_str(r, "type"),
				       d ? d : "");
				cli_free_secret_text(d);
			}
		}
		return cli_done(code, o, NULL);
	}
	if (argc == 3 && !strcmp(argv[0], "delete")) {
		char *esc = curl_easy_escape(NULL, argv[2], 0);
		char q[200]; /* "?rev=" and an escaped revision id (CouchDB's are < 64) */
		snprintf(q, sizeof(q), "?rev=%s", esc ? esc : "");
		curl_free(esc);
		if (strlen(argv[2]) >= 64) {
			fprintf(stderr, "fieldsync: not a valid revision\n");
			return EX_USAGE;
		}
		if (cli_id_path(path, sizeof(path), "/v1/records/", argv[1], q) != 0)
			return EX_USAGE;
		code = cli_call("DELETE", path, NULL, &o, 0);
		return cli_done(code, o, "deleted");
	}
	fprintf(stderr, "fieldsync: see \"fieldsync record --help\"\n");
	return EX_USAGE;
}

/* ---- casework: cases, visits, due, caseload ---- */

#define NOTE_MAX (64u << 10) /* casework's FS_CW_NOTE_MAX */

static const char *worker_default(void)
{
	const char *w = getenv("FIELDSYNC_WORKER");
	if (w == NULL || *w == '\0')
		w = getenv("USER");
	return w && *w ? w : "me";
}

static void now_instant(char out[21])
{
	time_t t = time(NULL);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(out, 21, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void wipe_tree(cJSON *o)
{
	for (cJSON *c = o ? o->child : NULL; c; c = c->next) {
		if (cJSON_IsString(c) && c->valuestring)
			cli_wipe(c->valuestring, strlen(c->valuestring));
		wipe_tree(c);
	}
}

/* Sends {"fields":fields} (which it frees) to path; prints "what ID". */
static int send_fields(const char *method, const char *path, cJSON *fields, const char *what)
{
	cJSON *req = cJSON_CreateObject(), *o = NULL;
	char *body;
	int code;

	cJSON_AddItemToObject(req, "fields", fields);
	body = cJSON_PrintUnformatted(req);
	/* The tree holds names and notes: wipe its strings before freeing. */
	wipe_tree(req);
	cJSON_Delete(req);
	if (body == NULL)
		return EX_FAIL;
	code = cli_call(method, path, body, &o, 0);
	cli_free_secret_text(body);
	if (code == FS_OK && !cli_json_out)
		printf("%s %s\n", what, cli_str(o, "id"));
	return cli_done(code, o, NULL);
}

/* Reads the note from a file descriptor, at most NOTE_MAX bytes. */
static char *read_note(FILE *f)
{
	char *t = malloc(NOTE_MAX + 2);
	size_t n;

	if (t == NULL)
		return NULL;
	n = fread(t, 1, NOTE_MAX + 1, f);
	if (n > NOTE_MAX) {
		cli_wipe(t, NOTE_MAX + 2);
		free(t);
		fprintf(stderr, "fieldsync: a note is at most %u bytes\n", NOTE_MAX);
		return NULL;
	}
	t[n] = '\0';
	return t;
}

/* Runs $EDITOR on a file in a private folder in memory ($XDG_RUNTIME_DIR or
 * /dev/shm, mode 0700); the file is overwritten with zeros and removed, the
 * folder removed, whatever happens. The plaintext never touches a disk. */
static char *edit_note(void)
{
	const char *base = getenv("XDG_RUNTIME_DIR"), *ed = getenv("VISUAL");
	char dir[1024], file[1100], cmd[2300];
	char *t = NULL;
	struct stat sb;
	FILE *f;
	int fd;

	if (base == NULL || *base == '\0' || stat(base, &sb) != 0 || !S_ISDIR(sb.st_mode))
		base = "/dev/shm";
	if (ed == NULL || *ed == '\0')
		ed = getenv("EDITOR");
	if (ed == NULL || *ed == '\0')
		ed = "vi";
	snprintf(dir, sizeof(dir), "%s/fieldsync-XXXXXX", base);
	if (mkdtemp(dir) == NULL) { /* mkdtemp makes it 0700 */
		fprintf(stderr, "fieldsync: no private folder in %s: %s\n", base, strerror(errno));
		return NULL;
	}
	snprintf(file, sizeof(file), "%s/note.txt", dir);
	if ((fd = open(file, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) < 0) {
		fprintf(stderr, "fieldsync: cannot create the note file: %s\n", strerror(errno));
		rmdir(dir);
		return NULL;
	}
	close(fd);
	snprintf(cmd, sizeof(cmd), "%s \"$1\"", ed);
	pid_t pid = fork();
	if (pid == 0) {
		execl("/bin/sh", "sh", "-c", cmd, "sh", file, (char *)NULL);
		_exit(127);
	}
	int st = 0;
	if (pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0 &&
	    (f = fopen(file, "rb")) != NULL) {
		t = read_note(f);
		fclose(f);
	} else {
		fprintf(stderr, "fieldsync: the editor failed; nothing saved\n");
	}
	/* Wipe: overwrite every byte the editor left, then remove. */
	if ((fd = open(file, O_WRONLY | O_CLOEXEC)) >= 0) {
		if (fstat(fd, &sb) == 0) {
			char z[4096] = {0};
			for (off_t left = sb.st_size; left > 0; left -= (off_t)sizeof(z))
				if (write(fd, z,
				          left < (off_t)sizeof(z) ? (size_t)left : sizeof(z)) < 0)
					break;
			(void)fsync(fd);
		}
		close(fd);
	}
	unlink(file);
	rmdir(dir);
	return t;
}

static int cmd_case(int argc, char **argv)
{
	char path[2048];
	cJSON *o = NULL, *f;
	int code;

	if (argc >= 2 && !strcmp(argv[0], "add")) {
		cJSON *tags = NULL;
		f = cJSON_CreateObject();
		if (!strcmp(argv[1], "-")) {
			/* The name from stdin: a command line is visible to every
			 * process on the machine (/proc/PID/cmdline) and kept in the
			 * shell's history. */
			char name[1024];
			size_t n;
			if (fgets(name, sizeof(name), stdin) == NULL ||
			    (n = strcspn(name, "\n")) == 0) {
				cJSON_Delete(f);
				fprintf(stderr, "fieldsync: no name on standard input\n");
				return EX_USAGE;
			}
			name[n] = '\0';
			cJSON_AddStringToObject(f, "name", name);
			cli_wipe(name, sizeof(name));
		} else {
			cJSON_AddStringToObject(f, "name", argv[1]);
		}
		const char *tier = "C", *by = worker_default();
		for (int i = 2; i < argc; i++) {
			const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
			if (v == NULL) {
				cJSON_Delete(f);
				fprintf(stderr, "fieldsync: %s needs a value\n", a);
				return EX_USAGE;
			}
			i++;
			if (!strcmp(a, "--tier"))
				tier = v;
			else if (!strcmp(a, "--by"))
				by = v;
			else if (!strcmp(a, "--alias") || !strcmp(a, "--why") ||
			         !strcmp(a, "--risk") || !strcmp(a, "--opened"))
				cJSON_AddStringToObject(f, a + 2, v);
			else if (!strcmp(a, "--tag")) {
				if (tags == NULL)
					tags = cJSON_AddArrayToObject(f, "tags");
				cJSON_AddItemToArray(tags, cJSON_CreateString(v));
			} else if (!strcmp(a, "--assign")) {
				cJSON *as = cJSON_AddArrayToObject(f, "assign"),
				      *one = cJSON_CreateObject();
				cJSON_AddStringToObject(one, "worker", v);
				cJSON_AddStringToObject(one, "role", "primary");
				cJSON_AddItemToArray(as, one);
			} else {
				cJSON_Delete(f);
				fprintf(stderr, "fieldsync: see \"fieldsync case --help\"\n");
				return EX_USAGE;
			}
		}
		cJSON_AddStringToObject(f, "tier", tier);
		cJSON_AddStringToObject(f, "by", by);
		return send_fields("POST", "/v1/cases", f, "case");
	}
	if (argc == 2 && !strcmp(argv[0], "show")) {
		if (cli_id_path(path, sizeof(path), "/v1/cases/", argv[1], "") != 0)
			return EX_USAGE;
		code = cli_call("GET", path, NULL, &o, 0);
		if (code == FS_OK && !cli_json_out)
			cli_print_json(o);
		return cli_done(code, o, NULL);
	}
	if ((argc == 1 && !strcmp(argv[0], "list")) ||
	    (argc == 2 && (!strcmp(argv[0], "find") || !strcmp(argv[0], "list")))) {
		char *esc = argc == 2 ? curl_easy_escape(NULL, argv[1], 0) : NULL;
		snprintf(path, sizeof(path), "/v1/cases%s%s", esc ? "?q=" : "", esc ? esc : "");
		curl_free(esc);
		code = cli_call("GET", path, NULL, &o, 0);
		if (code == FS_OK && !cli_json_out) {
			cJSON *c;
			cJSON_ArrayForEach(c, cJSON_GetObjectItem(o, "cases"))
			    printf("%s\t%s\t%s\n", cli_str(c, "id"), cli_str(c, "tier"),
			           cli_str(c, "name"));
		}
		return cli_done(code, o, NULL);
	}
	if (argc >= 2 && (!strcmp(argv[0], "edit") || !strcmp(argv[0], "tier") ||
	                  !strcmp(argv[0], "assign") || !strcmp(argv[0], "close"))) {
		if (cli_id_path(path, sizeof(path), "/v1/cases/", argv[1], "") != 0)
			return EX_USAGE;
		if (!strcmp(argv[0], "edit") && argc == 3) {
			if ((f = cJSON_Parse(argv[2])) == NULL || !cJSON_IsObject(f)) {
				cJSON_Delete(f);
				fprintf(stderr, "fieldsync: the fields must be a JSON object\n");
				return EX_USAGE;
			}
		} else if (!strcmp(argv[0], "tier") && argc >= 3) {
			f = cJSON_CreateObject();
			cJSON_AddStringToObject(f, "tier", argv[2]);
			cJSON_AddStringToObject(f, "by", worker_default());
			if (argc == 5 && !strcmp(argv[3], "--why"))
				cJSON_AddStringToObject(f, "why", argv[4]);
		} else if (!strcmp(argv[0], "assign") && argc >= 3) {
			cJSON *as;
			f = cJSON_CreateObject();
			as = cJSON_AddObjectToObject(f, "assign");
			cJSON_AddStringToObject(as, "worker", argv[2]);
			cJSON_AddStringToObject(
			    as, "role",
			    argc >= 5 && !strcmp(argv[3], "--role") ? argv[4] : "primary");
			cJSON_AddBoolToObject(as, "active", strcmp(argv[argc - 1], "--off") != 0);
		} else if (!strcmp(argv[0], "close") && argc == 2) {
			f = cJSON_CreateObject();
			cJSON_AddStringToObject(f, "status", "closed");
		} else {
			fprintf(stderr, "fieldsync: see \"fieldsync case --help\"\n");
			return EX_USAGE;
		}
		return send_fields("PUT", path, f, "saved case");
	}
	fprintf(stderr, "fieldsync: see \"fieldsync case --help\"\n");
	return EX_USAGE;
}

static int cmd_visit(int argc, char **argv)
{
	char path[2048], start[21];
	cJSON *o = NULL, *f;
	int code;

	if (argc >= 2 && !strcmp(argv[0], "add")) {
		cJSON *fu = NULL;
		char *note;
		f = cJSON_CreateObject();
		cJSON_AddStringToObject(f, "case", argv[1]);
		const char *kind = "home", *worker = worker_default(), *st = NULL;
		int use_editor = isatty(STDIN_FILENO);
		for (int i = 2; i < argc; i++) {
			const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
			if (!strcmp(a, "--edit")) {
				use_editor = 1;
				continue;
			}
			if (v == NULL) {
				cJSON_Delete(f);
				fprintf(stderr, "fieldsync: %s needs a value\n", a);
				return EX_USAGE;
			}
			i++;
			if (!strcmp(a, "--kind"))
				kind = v;
			else if (!strcmp(a, "--worker"))
				worker = v;
			else if (!strcmp(a, "--start"))
				st = v;
			else if (!strcmp(a, "--minutes"))
				cJSON_AddNumberToObject(f, "minutes", atoi(v));
			else if (!strcmp(a, "--followup") && strlen(v) > 11 && v[10] == ':') {
				cJSON *one = cJSON_CreateObject();
				char day[11];
				memcpy(day, v, 10);
				day[10] = '\0';
				if (fu == NULL)
					fu = cJSON_AddArrayToObject(f, "followups");
				cJSON_AddStringToObject(one, "action", v + 11);
				cJSON_AddStringToObject(one, "due", day);
				cJSON_AddItemToArray(fu, one);
			} else {
				cJSON_Delete(f);
				fprintf(stderr, "fieldsync: see \"fieldsync visit --help\"\n");
				return EX_USAGE;
			}
		}
		if (st == NULL) {
			now_instant(start);
			st = start;
		}
		cJSON_AddStringToObject(f, "kind", kind);
		cJSON_AddStringToObject(f, "start", st);
		cJSON_AddStringToObject(f, "worker", worker);
		note = use_editor ? edit_note() : read_note(stdin);
		if (note == NULL) {
			cJSON_Delete(f);
			return EX_FAIL;
		}
		cJSON_AddStringToObject(f, "note", note);
		cli_free_secret_text(note);
		return send_fields("POST", "/v1/visits", f, "visit");
	}
	if (argc == 2 && !strcmp(argv[0], "finalize")) {
		if (cli_id_path(path, sizeof(path), "/v1/visits/", argv[1], "/finalize") != 0)
			return EX_USAGE;
		code = cli_call("POST", path, "{}", &o, 0);
		return cli_done(code, o, "finalized and signed");
	}
	if (argc >= 2 && !strcmp(argv[0], "addendum")) {
		cJSON *dn = NULL;
		char *note;
		f = cJSON_CreateObject();
		const char *worker = worker_default();
		int use_editor = isatty(STDIN_FILENO);
		for (int i = 2; i < argc; i++) {
			if (!strcmp(argv[i], "--edit")) {
				use_editor = 1;
			} else if (!strcmp(argv[i], "--worker") && i + 1 < argc) {
				worker = argv[++i];
			} else if (!strcmp(argv[i], "--done") && i + 1 < argc) {
				if (dn == NULL)
					dn = cJSON_AddArrayToObject(f, "done");
				cJSON_AddItemToArray(dn, cJSON_CreateNumber(atoi(argv[++i])));
			} else {
				cJSON_Delete(f);
				fprintf(stderr, "fieldsync: see \"fieldsync visit --help\"\n");
				return EX_USAGE;
			}
		}
		cJSON_AddStringToObject(f, "worker", worker);
		if ((note = use_editor ? edit_note() : read_note(stdin)) == NULL) {
			cJSON_Delete(f);
			return EX_FAIL;
		}
		cJSON_AddStringToObject(f, "note", note);
		cli_free_secret_text(note);
		if (cli_id_path(path, sizeof(path), "/v1/visits/", argv[1], "/addenda") != 0)
			return EX_USAGE;
		return send_fields("POST", path, f, "addendum");
	}
	if (argc == 2 && !strcmp(argv[0], "show")) {
		if (cli_id_path(path, sizeof(path), "/v1/visits/", argv[1], "") != 0)
			return EX_USAGE;
		code = cli_call("GET", path, NULL, &o, 0);
		if (code == FS_OK && !cli_json_out)
			cli_print_json(o);
		return cli_done(code, o, NULL);
	}
	if ((argc == 1 || argc == 2) && !strcmp(argv[0], "list")) {
		char *esc = argc == 2 ? curl_easy_escape(NULL, argv[1], 0) : NULL;
		snprintf(path, sizeof(path), "/v1/visits%s%s", esc ? "?case=" : "", esc ? esc : "");
		curl_free(esc);
		code = cli_call("GET", path, NULL, &o, 0);
		if (code == FS_OK && !cli_json_out) {
			cJSON *v;
			cJSON_ArrayForEach(v, cJSON_GetObjectItem(o, "visits"))
			{
				cJSON *dt = cJSON_GetObjectItem(v, "data");
				printf("%s\t%s\t%s\t%s\n", cli_str(v, "id"), cli_str(dt, "start"),
				       cli_str(dt, "kind"), cli_str(dt, "state"));
			}
		}
		return cli_done(code, o, NULL);
	}
	fprintf(stderr, "fieldsync: see \"fieldsync visit --help\"\n");
	return EX_USAGE;
}

static const char *tier_ansi(const char *colour)
{
	if (!strcmp(colour, "red"))
		return "\033[31m";
	if (!strcmp(colour, "orange"))
		return "\033[38;5;208m";
	if (!strcmp(colour, "green"))
		return "\033[32m";
	if (!strcmp(colour, "grey"))
		return "\033[90m";
	return "";
}

static int cmd_due(int all)
{
	cJSON *o = NULL, *c;
	int code = cli_call("GET", all ? "/v1/due?all=1" : "/v1/due", NULL, &o, 0);
	int tty = isatty(STDOUT_FILENO), n = 0;

	if (code == FS_OK && !cli_json_out) {
		cJSON_ArrayForEach(c, cJSON_GetObjectItem(o, "cases"))
		{
			const char *on = tty ? tier_ansi(cli_str(c, "colour")) : "";
			printf("%s%s%s  %-24s  %4d days since last contact  %s  (%s)\n", on,
			       cli_str(c, "tier"), *on ? "\033[0m" : "", cli_str(c, "name"),
			       (int)cli_num(c, "days_since"), cli_str(c, "reason"),
			       cli_str(c, "id"));
			n++;
		}
		if (n == 0)
			printf("nothing due\n");
	}
	return cli_done(code, o, NULL);
}

static int cmd_caseload(void)
{
	cJSON *o = NULL, *w;
	int code = cli_call("GET", "/v1/caseload", NULL, &o, 0);

	if (code == FS_OK && !cli_json_out) {
		printf("%-20s %4s %4s %4s %4s %6s %9s\n", "worker", "A", "B", "C", "D", "total",
		       "weighted");
		cJSON_ArrayForEach(w, cJSON_GetObjectItem(o, "workers")) printf(
		    "%-20s %4d %4d %4d %4d %6d %9.1f%s\n", cli_str(w, "worker"),
		    (int)cli_num(w, "A"), (int)cli_num(w, "B"), (int)cli_num(w, "C"),
		    (int)cli_num(w, "D"), (int)cli_num(w, "total"), cli_num(w, "weighted"),
		    cJSON_IsTrue(cJSON_GetObjectItem(w, "over")) ? "  over the ceiling" : "");
	}
	return cli_done(code, o, NULL);
}

/* ---- help ---- */

static const struct help {
	const char *cmd, *text;
} helps[] = {
    {"init", "fieldsync init [--name NAME] [--recovery PUBLIC-KEY]\n"
             "  Sets this device up with a new space: an encrypted store and the\n"
             "  passphrase that protects it (asked twice, not shown). Leaves it unlocked.\n"
             "  --name: what the team sees next to this device's fingerprint (the server\n"
             "  sees it too: never a client's name). --recovery: the office recovery\n"
             "  key's public key (\"fieldsync recovery create\"); every key of the space\n"
             "  is also sealed to it.\n"},
    {"join",
     "fieldsync join SERVER-URL SPACE [--name NAME] [--remote NAME] [--pin sha256//KEY]...\n"
     "                [--ca FILE] [--user USER --password | --token] [--wait] [--timeout S]\n"
     "  Sets this device up to join the team space SPACE (the database at\n"
     "  SERVER-URL/SPACE): asks for a new passphrase, then the password or token;\n"
     "  from stdin when it is not a terminal, one per line. Shows this device's\n"
     "  fingerprint: a member approves it with \"fieldsync device approve\" after\n"
     "  comparing it aloud. Until then this device syncs but reads nothing.\n"
     "  --wait: returns once approved (default timeout 600 s).\n"},
    {"device", "fieldsync device [list]\nfieldsync device approve FINGERPRINT\n"
               "fieldsync device revoke ID|FINGERPRINT\n"
               "  The devices of this space. approve lets a device that asked to join\n"
               "  read and write (compare the fingerprint with its owner first). revoke\n"
               "  removes a lost or retired device: a new space key is made for everyone\n"
               "  else, so it reads nothing written from then on, and the hub refuses its\n"
               "  token once the change reaches it.\n"},
    {"recovery", "fieldsync recovery create FILE\nfieldsync recovery set PUBLIC-KEY\n"
                 "  The office recovery key. create (on any machine, no daemon needed) makes\n"
                 "  a new one protected by its own passphrase, writes it to FILE (print it or\n"
                 "  keep it on removable media, offline) and shows its public key. set gives a\n"
                 "  space's devices that public key: every key version is sealed to it.\n"},
    {"recover", "fieldsync recover FILE\n"
                "  When the devices of a space are lost: on a device that joined the space,\n"
                "  opens the office recovery key FILE (its passphrase is asked) and takes\n"
                "  every key of the space; this device then reads everything and is a member.\n"},
    {"unlock", "fieldsync unlock\n  Asks for the passphrase and unlocks the records. Wrong\n"
               "  passphrases make the next try wait longer (1 s, 2 s, 4 s ... 5 min).\n"},
    {"lock", "fieldsync lock\n  Wipes the record keys from memory now. Sync goes on.\n"},
    {"status", "fieldsync status\n  Locked or not, online or not, changes waiting and the oldest,\n"
               "  last sync per remote, refused changes, conflicts.\n"},
    {"sync", "fieldsync sync [--wait] [--timeout SECONDS]\n  Syncs with every remote now. --wait "
             "shows progress and returns when\n  nothing is waiting (default timeout 60 s).\n"},
    {"remote", "fieldsync remote add NAME URL [--pin sha256//KEY]... [--ca FILE]\n"
               "                            [--user USER --password | --token]\n"
               "fieldsync remote list\nfieldsync remote remove NAME\n"
               "  The servers to sync with (CouchDB-protocol databases, https; plain http\n"
               "  only to this machine). A password or token is asked without echo and\n"
               "  stored encrypted; adding one needs the device unlocked.\n"},
    {"queue", "fieldsync queue\n  Changes waiting to be sent, oldest first.\n"},
    {"quarantine", "fieldsync quarantine [retry ID]\n  Changes the server refused, with its "
                   "reason; retry puts one back in the queue.\n"},
    {"conflicts", "fieldsync conflicts [resolve]\n  Records edited in two places; all versions are "
                  "kept. resolve merges\n  cases by casework's rules; visits that differ stay "
                  "for a person.\n"},
    {"passwd", "fieldsync passwd\n  Changes the passphrase (no record is re-encrypted).\n"},
    {"record", "fieldsync record add TYPE JSON|-\nfieldsync record get ID\n"
               "fieldsync record list [TYPE]\nfieldsync record update ID REV JSON|-\n"
               "fieldsync record delete ID REV\n"
               "  Encrypted records (JSON objects), saved at once and synced later.\n"
               "  JSON - reads it from stdin, out of the process list and shell history.\n"},
    {"case", "fieldsync case add NAME [--tier A|B|C|D] [--by WORKER] [--alias A] [--why W]\n"
             "                         [--risk low|medium|high] [--tag T]... [--assign WORKER]\n"
             "fieldsync case list [TEXT] | find TEXT | show ID\n"
             "fieldsync case edit ID FIELDS-JSON | tier ID TIER [--why W] | close ID\n"
             "fieldsync case assign ID WORKER [--role R] [--off]\n"
             "  Cases (docs/casework.md). list without TEXT: open cases, most urgent first.\n"
             "  NAME - reads the name from standard input, so it stays out of the\n"
             "  process list and the shell's history.\n"},
    {"visit", "fieldsync visit add CASE [--kind home|phone|office|outreach] [--start T]\n"
              "                         [--minutes N] [--worker W] [--followup YYYY-MM-DD:ACTION]\n"
              "                         [--edit]\n"
              "fieldsync visit list [CASE] | show ID | finalize ID\n"
              "fieldsync visit addendum ID [--done FOLLOWUP-INDEX]... [--worker W] [--edit]\n"
              "  finalize signs the visit with this device's key; it is then immutable\n"
              "  and corrections are signed addenda.\n"
              "  The note comes from stdin, or from $EDITOR on a terminal (its file lives\n"
              "  in a private 0700 folder in memory and is wiped and removed after).\n"},
    {"due", "fieldsync due [--all]\n  Open cases by urgency: tier (coloured on a terminal), days "
            "since last\n  contact and why. --all lists cases without alerts too.\n"},
    {"caseload", "fieldsync caseload\n  Open cases per worker and tier, weighted load.\n"},
};

static void usage(FILE *f)
{
	fprintf(f, "usage: fieldsync [--socket PATH | --config FILE | --data-dir DIR] [--json] "
	           "COMMAND [ARGS]\n\ncommands:\n");
	for (size_t i = 0; i < sizeof(helps) / sizeof(helps[0]); i++)
		fprintf(f, "%s", helps[i].text);
	fprintf(f, "\nEvery command takes --help. --json prints the daemon's answer as JSON.\n"
	           "Exit status: 0 done, 1 failed (the message says why), 2 usage error,\n"
	           "3 the daemon is not running, 4 locked or not set up, 5 wrong passphrase\n"
	           "or slowed down, 6 conflict (the record changed), 7 not found, 8 not a\n"
	           "member of the space (not approved yet, or revoked).\n");
}

int main(int argc, char **argv)
{
	const char *config = NULL, *data_dir = NULL, *cmd;
	fs_daemon_config cfg;
	fs_errbuf eb;
	int i, wait = 0, rc;
	double timeout = 60;

	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			usage(stdout);
			return EX_OK;
		} else if (!strcmp(argv[i], "--json")) {
			cli_json_out = 1;
		} else if (!strcmp(argv[i], "--socket") && i + 1 < argc) {
			sock_path = argv[++i];
		} else if (!strcmp(argv[i], "--config") && i + 1 < argc) {
			config = argv[++i];
		} else if (!strcmp(argv[i], "--data-dir") && i + 1 < argc) {
			data_dir = argv[++i];
		} else {
			usage(stderr);
			return EX_USAGE;
		}
	}
	if (i >= argc) {
		usage(stderr);
		return EX_USAGE;
	}
	cmd = argv[i++];
	for (int j = i; j < argc; j++) {
		if (!strcmp(argv[j], "--help") || !strcmp(argv[j], "-h")) {
			for (size_t k = 0; k < sizeof(helps) / sizeof(helps[0]); k++)
				if (!strcmp(helps[k].cmd, cmd)) {
					printf("usage: %s", helps[k].text);
					return EX_OK;
				}
			usage(stderr);
			return EX_USAGE;
		}
		if (!strcmp(argv[j], "--json"))
			cli_json_out = 1;
	}
	if (sock_path == NULL)
		sock_path = getenv("FIELDSYNC_SOCKET");
	if (sock_path == NULL) {
		if (fs_daemon_config_load(config, data_dir, &cfg, &eb) != FS_OK) {
			fprintf(stderr, "fieldsync: %s\n", eb.msg);
			return EX_FAIL;
		}
		sock_path = cfg.socket_path;
	}
	/* --json may also follow the command; drop it from the arguments. */
	int n = 0;
	for (int j = i; j < argc; j++)
		if (strcmp(argv[j], "--json"))
			argv[i + n++] = argv[j];
	argc = i + n;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (!strcmp(cmd, "status") && argc == i)
		rc = cmd_status();
	else if (!strcmp(cmd, "init"))
		rc = cmd_init(argc - i, argv + i);
	else if (!strcmp(cmd, "join"))
		rc = cli_join(argc - i, argv + i);
	else if (!strcmp(cmd, "device"))
		rc = cli_device(argc - i, argv + i);
	else if (!strcmp(cmd, "recovery"))
		rc = cli_recovery(argc - i, argv + i);
	else if (!strcmp(cmd, "recover"))
		rc = cli_recover(argc - i, argv + i);
	else if (!strcmp(cmd, "unlock") && argc == i)
		rc = cmd_unlock();
	else if (!strcmp(cmd, "lock") && argc == i) {
		cJSON *o;
		int code = cli_call("POST", "/v1/lock", "{}", &o, 0);
		rc = cli_done(code, o, "locked");
	} else if (!strcmp(cmd, "passwd") && argc == i)
		rc = cmd_passwd();
	else if (!strcmp(cmd, "sync")) {
		rc = EX_OK;
		for (int j = i; j < argc; j++) {
			if (!strcmp(argv[j], "--wait"))
				wait = 1;
			else if (!strcmp(argv[j], "--timeout") && j + 1 < argc)
				timeout = atof(argv[++j]);
			else
				rc = EX_USAGE;
		}
		if (rc == EX_USAGE)
			fprintf(stderr, "fieldsync: see \"fieldsync sync --help\"\n");
		else
			rc = cmd_sync(wait, timeout > 0 ? timeout : 60);
	} else if (!strcmp(cmd, "remote"))
		rc = cmd_remote(argc - i, argv + i);
	else if (!strcmp(cmd, "queue") || !strcmp(cmd, "quarantine"))
		rc = cmd_rows(cmd, argc - i, argv + i);
	else if (!strcmp(cmd, "conflicts") && argc == i)
		rc = cmd_conflicts();
	else if (!strcmp(cmd, "conflicts") && argc == i + 1 && !strcmp(argv[i], "resolve"))
		rc = cmd_resolve();
	else if (!strcmp(cmd, "record"))
		rc = cmd_record(argc - i, argv + i);
	else if (!strcmp(cmd, "case"))
		rc = cmd_case(argc - i, argv + i);
	else if (!strcmp(cmd, "visit"))
		rc = cmd_visit(argc - i, argv + i);
	else if (!strcmp(cmd, "due") && (argc == i || (argc == i + 1 && !strcmp(argv[i], "--all"))))
		rc = cmd_due(argc == i + 1);
	else if (!strcmp(cmd, "caseload") && argc == i)
		rc = cmd_caseload();
	else {
		fprintf(stderr,
		        "fieldsync: unknown command or arguments: %s (see fieldsync --help)\n",
		        cmd);
		rc = EX_USAGE;
	}
	curl_global_cleanup();
	return rc;
}
