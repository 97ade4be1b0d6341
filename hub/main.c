/*
 * hub/main.c: the fieldsync-hub command: init, serve, pin, and the
 * administration of databases, device tokens and users. It only parses
 * arguments and prints; the work is in the hub library (hub/hub.h).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "hub.h"

#define MAX_LIST 64

static const char usage_main[] =
    "usage: fieldsync-hub COMMAND [options]\n"
    "\n"
    "A small CouchDB-compatible HTTPS server for fieldsync devices.\n"
    "\n"
    "commands:\n"
    "  init DIR [--name HOST]...       make a hub directory with a self-signed certificate\n"
    "  pin DIR                         print the certificate's public-key pin\n"
    "  serve DIR [--port N] [--bind ADDR] [--quiet]\n"
    "                                  serve HTTPS (port 0: any free port)\n"
    "  db create NAME --dir DIR        create a database\n"
    "  token add NAME --db DB... [--admin] --dir DIR\n"
    "                                  make a device token (printed once)\n"
    "  token revoke ID --dir DIR       revoke a token\n"
    "  token list --dir DIR            list tokens\n"
    "  user add NAME --db DB... [--admin] --dir DIR\n"
    "                                  add or replace a basic-auth user (password on stdin)\n"
    "  user list --dir DIR             list users\n"
    "\n"
    "--dir may be replaced by the FIELDSYNC_HUB_DIR environment variable.\n"
    "Run `fieldsync-hub COMMAND --help` for one command. See docs/hub.md.\n";

static const char usage_init[] =
    "usage: fieldsync-hub init DIR [--name HOST]...\n"
    "Makes DIR (mode 0700) with cert.pem, key.pem, hub.conf, hub.db and dbs/.\n"
    "The certificate is self-signed for localhost, 127.0.0.1, ::1 and each\n"
    "--name (a host name or IP address). Prints the public-key pin that\n"
    "devices pass as their pin (sha256//...).\n";
static const char usage_serve[] =
    "usage: fieldsync-hub serve DIR [--port N] [--bind ADDR] [--quiet]\n"
    "Serves HTTPS until SIGINT or SIGTERM. --port 0 picks a free port. Prints\n"
    "\"listening on https://ADDR:PORT\" once ready; the access log goes to\n"
    "stderr (--quiet: none; a token refused because its device was revoked by\n"
    "its team is logged all the same). Settings come from DIR/hub.conf (docs/hub.md).\n";
static const char usage_pin[] = "usage: fieldsync-hub pin DIR\n"
                                "Prints the pin (sha256//<base64>) of DIR's certificate.\n";
static const char usage_db[] = "usage: fieldsync-hub db create NAME --dir DIR\n"
                               "NAME: a-z first, then a-z, 0-9, _ and -.\n";
static const char usage_token[] =
    "usage: fieldsync-hub token add NAME --db DB [--db DB]... [--admin] --dir DIR\n"
    "       fieldsync-hub token revoke ID --dir DIR\n"
    "       fieldsync-hub token list --dir DIR\n"
    "add prints \"<id>.<secret>\" once: give it to the device (fieldsync sends it\n"
    "as a bearer token). Only an Argon2id hash is kept. --admin: every database,\n"
    "and may create databases.\n";
static const char usage_user[] =
    "usage: fieldsync-hub user add NAME --db DB [--db DB]... [--admin] --dir DIR\n"
    "       fieldsync-hub user list --dir DIR\n"
    "add reads the password from the first line of stdin and keeps an Argon2id hash.\n";

struct args {
	const char *dir;
	const char *bind;
	int port;
	int admin, quiet, help;
	const char *list[MAX_LIST];
	size_t n_list;
	const char *pos[4];
	size_t n_pos;
};

static int parse(int argc, char **argv, int first, struct args *a)
{
	memset(a, 0, sizeof(*a));
	a->port = -1;
	a->dir = getenv("FIELDSYNC_HUB_DIR");
	for (int i = first; i < argc; i++) {
		const char *s = argv[i];
		if (strcmp(s, "--help") == 0 || strcmp(s, "-h") == 0) {
			a->help = 1;
		} else if (strcmp(s, "--admin") == 0) {
			a->admin = 1;
		} else if (strcmp(s, "--quiet") == 0) {
			a->quiet = 1;
		} else if ((strcmp(s, "--db") == 0 || strcmp(s, "--name") == 0) && i + 1 < argc) {
			if (a->n_list == MAX_LIST) {
				fprintf(stderr, "fieldsync-hub: too many %s\n", s);
				return -1;
			}
			a->list[a->n_list++] = argv[++i];
		} else if (strcmp(s, "--dir") == 0 && i + 1 < argc) {
			a->dir = argv[++i];
		} else if (strcmp(s, "--bind") == 0 && i + 1 < argc) {
			a->bind = argv[++i];
		} else if (strcmp(s, "--port") == 0 && i + 1 < argc) {
			char *end;
			long p = strtol(argv[++i], &end, 10);
			if (*end || p < 0 || p > 65535) {
				fprintf(stderr, "fieldsync-hub: bad port %s\n", argv[i]);
				return -1;
			}
			a->port = (int)p;
		} else if (s[0] == '-') {
			fprintf(stderr, "fieldsync-hub: unknown option %s (try --help)\n", s);
			return -1;
		} else if (a->n_pos < 4) {
			a->pos[a->n_pos++] = s;
		} else {
			fprintf(stderr, "fieldsync-hub: too many arguments\n");
			return -1;
		}
	}
	return 0;
}

static int fail(const char *what, const fs_errbuf *eb, int code)
{
	fprintf(stderr, "fieldsync-hub: %s: %s\n", what, eb->msg[0] ? eb->msg : fs_strerror(code));
	return 1;
}

static int need(const char *usage, int ok)
{
	if (!ok)
		fputs(usage, stderr);
	return ok;
}

static int cmd_serve(const struct args *a)
{
	fs_hub_opts o = {.dir = a->pos[0], .bind = a->bind, .port = a->port, .quiet = a->quiet};
	fs_hub *h = NULL;
	fs_errbuf eb = {0};
	sigset_t set;
	int rc, sig = 0;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	/* Blocked before the server's threads start, so they inherit it and
	 * only sigwait below sees the signals. */
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	if ((rc = fs_hub_new(&o, &h, &eb)) != FS_OK || (rc = fs_hub_start(h, &eb)) != FS_OK) {
		fs_hub_free(h);
		return fail("serve", &eb, rc);
	}
	printf("listening on https://%s:%u\n", a->bind ? a->bind : "127.0.0.1", fs_hub_port(h));
	fflush(stdout);
	sigwait(&set, &sig);
	fprintf(stderr, "fieldsync-hub: stopping (signal %d)\n", sig);
	fs_hub_free(h);
	return 0;
}

static int cmd_token(const struct args *a)
{
	fs_errbuf eb = {0};
	int rc;
	const char *sub = a->n_pos ? a->pos[0] : "";

	if (strcmp(sub, "add") == 0 &&
	    need(usage_token, a->n_pos == 2 && a->dir && (a->n_list > 0 || a->admin))) {
		char tok[FS_HUB_TOKEN_MAX];
		if ((rc = fs_hub_token_add(a->dir, a->pos[1], a->list, a->n_list, a->admin, tok,
		                           &eb)) != FS_OK)
			return fail("token add", &eb, rc);
		printf("%s\n", tok);
		sodium_memzero(tok, sizeof(tok));
		return 0;
	}
	if (strcmp(sub, "revoke") == 0 && need(usage_token, a->n_pos == 2 && a->dir)) {
		if ((rc = fs_hub_token_revoke(a->dir, a->pos[1], &eb)) != FS_OK)
			return fail("token revoke", &eb, rc);
		printf("revoked %s\n", a->pos[1]);
		return 0;
	}
	if (strcmp(sub, "list") == 0 && need(usage_token, a->n_pos == 1 && a->dir)) {
		fs_hub_list *l = NULL;
		if ((rc = fs_hub_list_get(a->dir, 0, &l, &eb)) != FS_OK)
			return fail("token list", &eb, rc);
		printf("%-16s  %-24s  %-8s  %s\n", "ID", "NAME", "STATE", "DATABASES");
		for (size_t i = 0; i < l->n; i++)
			printf("%-16s  %-24s  %-8s  %s\n", l->v[i].id, l->v[i].name,
			       l->v[i].revoked ? "revoked" : "active",
			       l->v[i].admin ? "(admin)" : l->v[i].dbs);
		fs_hub_list_free(l);
		return 0;
	}
	if (!(strcmp(sub, "add") == 0 || strcmp(sub, "revoke") == 0 || strcmp(sub, "list") == 0))
		fputs(usage_token, stderr);
	return 2;
}

static int cmd_user(const struct args *a)
{
	fs_errbuf eb = {0};
	int rc;
	const char *sub = a->n_pos ? a->pos[0] : "";

	if (strcmp(sub, "add") == 0 &&
	    need(usage_user, a->n_pos == 2 && a->dir && (a->n_list > 0 || a->admin))) {
		char pw[FS_HUB_PASSWORD_MAX + 2];
		size_t n;
		if (fgets(pw, sizeof(pw), stdin) == NULL) {
			fprintf(stderr, "fieldsync-hub: user add: no password on stdin\n");
			return 1;
		}
		n = strcspn(pw, "\r\n");
		pw[n] = '\0';
		rc = fs_hub_user_add(a->dir, a->pos[1], pw, a->list, a->n_list, a->admin, &eb);
		sodium_memzero(pw, sizeof(pw));
		if (rc != FS_OK)
			return fail("user add", &eb, rc);
		printf("user %s saved\n", a->pos[1]);
		return 0;
	}
	if (strcmp(sub, "list") == 0 && need(usage_user, a->n_pos == 1 && a->dir)) {
		fs_hub_list *l = NULL;
		if ((rc = fs_hub_list_get(a->dir, 1, &l, &eb)) != FS_OK)
			return fail("user list", &eb, rc);
		printf("%-24s  %s\n", "NAME", "DATABASES");
		for (size_t i = 0; i < l->n; i++)
			printf("%-24s  %s\n", l->v[i].name,
			       l->v[i].admin ? "(admin)" : l->v[i].dbs);
		fs_hub_list_free(l);
		return 0;
	}
	if (!(strcmp(sub, "add") == 0 || strcmp(sub, "list") == 0))
		fputs(usage_user, stderr);
	return 2;
}

int main(int argc, char **argv)
{
	struct args a;
	fs_errbuf eb = {0};
	const char *cmd = argc > 1 ? argv[1] : "";
	int rc;

	if (sodium_init() < 0) {
		fprintf(stderr, "fieldsync-hub: libsodium could not start\n");
		return 1;
	}
	if (argc < 2 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 ||
	    strcmp(cmd, "help") == 0) {
		fputs(usage_main, argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	if (parse(argc, argv, 2, &a) != 0)
		return 2;
	if (strcmp(cmd, "init") == 0) {
		char pin[FS_HUB_PIN_MAX];
		if (a.help || !need(usage_init, a.n_pos == 1))
			return a.help ? (fputs(usage_init, stdout), 0) : 2;
		if ((rc = fs_hub_init(a.pos[0], a.list, a.n_list, pin, &eb)) != FS_OK)
			return fail("init", &eb, rc);
		printf("%s\n", pin);
		return 0;
	}
	if (strcmp(cmd, "pin") == 0) {
		char pin[FS_HUB_PIN_MAX];
		if (a.help || !need(usage_pin, a.n_pos == 1))
			return a.help ? (fputs(usage_pin, stdout), 0) : 2;
		if ((rc = fs_hub_pin(a.pos[0], pin, &eb)) != FS_OK)
			return fail("pin", &eb, rc);
		printf("%s\n", pin);
		return 0;
	}
	if (strcmp(cmd, "serve") == 0) {
		if (a.help || !need(usage_serve, a.n_pos == 1))
			return a.help ? (fputs(usage_serve, stdout), 0) : 2;
		return cmd_serve(&a);
	}
	if (strcmp(cmd, "db") == 0) {
		if (a.help ||
		    !need(usage_db, a.n_pos == 2 && strcmp(a.pos[0], "create") == 0 && a.dir))
			return a.help ? (fputs(usage_db, stdout), 0) : 2;
		if ((rc = fs_hub_db_create(a.dir, a.pos[1], &eb)) != FS_OK)
			return fail("db create", &eb, rc);
		printf("created %s\n", a.pos[1]);
		return 0;
	}
	if (strcmp(cmd, "token") == 0) {
		if (a.help) {
			fputs(usage_token, stdout);
			return 0;
		}
		return cmd_token(&a);
	}
	if (strcmp(cmd, "user") == 0) {
		if (a.help) {
			fputs(usage_user, stdout);
			return 0;
		}
		return cmd_user(&a);
	}
	fprintf(stderr, "fieldsync-hub: unknown command %s (try --help)\n", cmd);
	return 2;
}
