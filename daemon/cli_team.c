/*
 * daemon/cli_team.c: the team commands of the fieldsync CLI (docs/team.md):
 * join a space, list, approve and revoke devices, make and set the office
 * recovery key, and recover a space with it. Making a recovery key needs no
 * daemon: it is done here, with crypto/, and written to a 0600 file.
 */
#include "cli_int.h"
#include "crypto.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define POLL_MS 300

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static const cJSON *me_of(const cJSON *team)
{
	return cJSON_GetObjectItem(team, "this_device");
}

void cli_team_status(const cJSON *team)
{
	const cJSON *me = me_of(team);
	const char *st = cli_str(me, "status");

	if (team == NULL)
		return;
	if (cli_str(team, "error")[0])
		printf("team: %s\n", cli_str(team, "error_text"));
	if (!strcmp(st, "member"))
		printf("team: this device (\"%s\") is a member of space %s; %.0f member(s)%s\n",
		       cli_str(me, "name"), cli_str(team, "space_id"), cli_num(team, "members"),
		       cli_num(team, "pending") > 0
		           ? ", and devices asking to join: see \"fieldsync "
		             "device list\""
		           : "");
	else if (!strcmp(st, "pending"))
		printf("team: waiting for a member to approve this device (fingerprint %s)\n",
		       cli_str(me, "fingerprint"));
	else if (!strcmp(st, "joining"))
		printf("team: looking for the space on the server (this device's fingerprint %s)\n",
		       cli_str(me, "fingerprint"));
	else if (!strcmp(st, "revoked"))
		printf("team: this device was revoked from space %s: it reads nothing new\n",
		       cli_str(team, "space_id"));
	if (!strcmp(st, "member") && !cJSON_IsTrue(cJSON_GetObjectItem(team, "holds_current_key")))
		printf("team: waiting for the space's newest key (it comes with the next sync)\n");
}

/* ---- join ---- */

/* The database URL: SERVER-URL/SPACE, the space name escaped as one path segment. */
static int db_url(const char *server, const char *space, char *out, size_t cap)
{
	size_t n = strlen(server);
	char *esc = curl_easy_escape(NULL, space, 0);
	int w;

	while (n && server[n - 1] == '/')
		n--;
	w = esc && space[0] ? snprintf(out, cap, "%.*s/%s", (int)n, server, esc) : -1;
	curl_free(esc);
	return w < 0 || (size_t)w >= cap ? -1 : 0;
}

static int server_refuses(void);

/* Polls the team until want(status) or the timeout; the last answer in
 * *out. Stops early, said why, when the server refuses this device. */
static int wait_team(double timeout, int (*want)(const cJSON *), cJSON **out)
{
	double end = now_s() + timeout;
	int code;

	*out = NULL;
	for (;;) {
		if ((code = cli_call("GET", "/v1/team", NULL, out, 0)) != FS_OK)
			return code;
		if (want(*out) || now_s() > end)
			return FS_OK;
		cJSON_Delete(*out);
		*out = NULL;
		if ((code = server_refuses()) != FS_OK)
			return code;
		sleep_ms(POLL_MS);
	}
}

/* Whether the (first) remote failed for a reason a person must fix (the
 * token, the certificate, the address): said in plain words, and its code. */
static int server_refuses(void)
{
	static const char *const fatal[] = {"FS_E_SYNC_AUTH",     "FS_E_SYNC_TLS_CERT",
	                                    "FS_E_SYNC_TLS_PIN",  "FS_E_SYNC_NODB",
	                                    "FS_E_SYNC_INSECURE", "FS_E_SYNC_DNS"};
	cJSON *o = NULL, *r;
	int code = cli_call("GET", "/v1/remotes", NULL, &o, 1);

	if (code != FS_OK)
		return FS_OK;
	r = cJSON_GetArrayItem(cJSON_GetObjectItem(o, "remotes"), 0);
	for (size_t i = 0; r && i < sizeof(fatal) / sizeof(fatal[0]); i++)
		if (!strcmp(cli_str(r, "last_error"), fatal[i])) {
			fprintf(stderr,
			        "fieldsync: %s (%s)\nthis device is set up; fix the server with "
			        "\"fieldsync remote remove %s\" and \"fieldsync remote add\"\n",
			        cli_str(r, "last_error_text"), cli_str(r, "last_error_detail"),
			        cli_str(r, "name"));
			code = FS_E_SYNC_AUTH;
			break;
		}
	cJSON_Delete(o);
	return code;
}

static int found(const cJSON *t)
{
	const char *st = cli_str(me_of(t), "status"), *err = cli_str(t, "error");

	/* "No space yet" is what joining means; any other error ends the wait. */
	return strcmp(st, "joining") != 0 || (err[0] && strcmp(err, "FS_E_TEAM_NOSPACE") != 0);
}

static int approved(const cJSON *t)
{
	const char *st = cli_str(me_of(t), "status");
	return (!strcmp(st, "member") &&
	        cJSON_IsTrue(cJSON_GetObjectItem(t, "holds_current_key"))) ||
	       !strcmp(st, "revoked");
}

int cli_join(int argc, char **argv)
{
	char p[CLI_PASS_MAX], url[2048];
	double timeout = 600;
	int wait = 0, code, i;
	cJSON *req, *o = NULL;

	if (argc < 2 || argv[0][0] == '-' || argv[1][0] == '-') {
		fprintf(stderr, "fieldsync: join needs SERVER-URL and SPACE (see \"fieldsync join "
		                "--help\")\n");
		return EX_USAGE;
	}
	if (db_url(argv[0], argv[1], url, sizeof(url)) != 0) {
		fprintf(stderr, "fieldsync: the server URL or space name is too long or empty\n");
		return EX_USAGE;
	}
	if ((code = cli_new_pass("Choose a passphrase for this device: ", p, sizeof(p))) != 0)
		return code;
	req = cJSON_CreateObject();
	cJSON_AddStringToObject(req, "passphrase", p);
	cli_wipe(p, sizeof(p));
	cJSON_AddStringToObject(req, "url", url);
	for (i = 2; i < argc; i++) {
		int r = cli_server_opt(req, argc, argv, &i);
		if (r == 1)
			continue;
		if (r == 0 && !strcmp(argv[i], "--name") && i + 1 < argc)
			cJSON_AddStringToObject(req, "device_name", argv[++i]);
		else if (r == 0 && !strcmp(argv[i], "--remote") && i + 1 < argc)
			cJSON_AddStringToObject(req, "remote", argv[++i]);
		else if (r == 0 && !strcmp(argv[i], "--wait"))
			wait = 1;
		else if (r == 0 && !strcmp(argv[i], "--timeout") && i + 1 < argc)
			timeout = atof(argv[++i]);
		else {
			if (r == 0)
				fprintf(stderr, "fieldsync: unknown option %s (see --help)\n",
				        argv[i]);
			cli_free_tree(req);
			return EX_USAGE;
		}
	}
	code = cli_post_tree("/v1/join", req, &o);
	if (code != FS_OK)
		return cli_done(code, o, NULL);
	if (!cli_json_out)
		printf("set up to join %s as \"%s\"\nthis device's fingerprint: %s\n", url,
		       cli_str(me_of(o), "name"), cli_str(me_of(o), "fingerprint"));
	cJSON_Delete(o);
	o = NULL;
	/* The space shows itself at the first sync, unless the server refuses. */
	if ((code = wait_team(timeout > 0 && timeout < 60 ? timeout : 60, found, &o)) != FS_OK)
		return cli_exit_of(code); /* said why */

	if (cli_str(o, "error")[0] || !strcmp(cli_str(me_of(o), "status"), "joining")) {
		if (!cli_json_out)
			printf(
			    "the space is not on the server yet (%s); this device keeps looking: "
			    "\"fieldsync status\" tells\n",
			    cli_str(o, "error")[0] ? cli_str(o, "error_text") : "no answer yet");
		return cli_done(FS_OK, o, NULL);
	}
	if (!cli_json_out) {
		printf("found space %s; its members:\n", cli_str(o, "space_id"));
		const cJSON *v;
		cJSON_ArrayForEach(v, cJSON_GetObjectItem(o, "devices"))
		{
			if (!strcmp(cli_str(v, "status"), "member"))
				printf("  \"%s\"  %s\n", cli_str(v, "name"),
				       cli_str(v, "fingerprint"));
		}
		printf("ask one of them to compare this device's fingerprint aloud and run:\n"
		       "  fieldsync device approve %s\n",
		       cli_str(me_of(o), "fingerprint"));
	}
	if (!wait)
		return cli_done(FS_OK, o, NULL);
	cJSON_Delete(o);
	o = NULL;
	if (!cli_json_out)
		printf("waiting for the approval...\n");
	if ((code = wait_team(timeout, approved, &o)) != FS_OK)
		return cli_exit_of(code);
	if (!approved(o)) {
		fprintf(stderr, "fieldsync: not approved within %.0f s; it still can be\n",
		        timeout);
		cJSON_Delete(o);
		return EX_TEAM;
	}
	if (!strcmp(cli_str(me_of(o), "status"), "revoked")) {
		fprintf(stderr, "fieldsync: this device was revoked instead\n");
		cJSON_Delete(o);
		return EX_TEAM;
	}
	return cli_done(FS_OK, o, "approved: this device reads and writes the space now");
}

/* ---- device ---- */

static void print_devices(const cJSON *t)
{
	const cJSON *v, *rec = cJSON_GetObjectItem(t, "recovery"), *probs;
	const cJSON *me = me_of(t);

	printf("space %s, key version %s\n", cli_str(t, "space_id"), cli_str(t, "key_version"));
	printf("this device: \"%s\" %s (%s)\n", cli_str(me, "name"), cli_str(me, "fingerprint"),
	       cli_str(me, "status"));
	cJSON_ArrayForEach(v, cJSON_GetObjectItem(t, "devices"))
	{
		printf("%-8s \"%s\"  %s  id %.12s", cli_str(v, "status"), cli_str(v, "name"),
		       cli_str(v, "fingerprint"), cli_str(v, "id"));
		if (cli_str(v, "approved_by_name")[0])
			printf("  approved by \"%s\"", cli_str(v, "approved_by_name"));
		if (cJSON_IsTrue(cJSON_GetObjectItem(v, "this_device")))
			printf("  (this device)");
		printf("\n");
	}
	if (cJSON_IsObject(rec))
		printf("office recovery key: %s\n", cli_str(rec, "fingerprint"));
	else
		printf("no office recovery key (\"fieldsync recovery set\")\n");
	probs = cJSON_GetObjectItem(t, "problems");
	if (cJSON_GetArraySize(probs) > 0) {
		printf("ignored team documents (they do not verify):\n");
		cJSON_ArrayForEach(v, probs)
		    printf("  %s: %s\n", cli_str(v, "doc"), cli_str(v, "why"));
		if (cli_num(t, "more_problems") > 0)
			printf("  and %.0f more\n", cli_num(t, "more_problems"));
	}
}

int cli_device(int argc, char **argv)
{
	char path[512], fp[256] = "";
	cJSON *o = NULL, *req;
	char *body;
	int code;

	if (argc == 0 || (argc == 1 && !strcmp(argv[0], "list"))) {
		if ((code = cli_call("GET", "/v1/team", NULL, &o, 0)) != FS_OK || cli_json_out)
			return cli_done(code, o, NULL);
		print_devices(o);
		return cli_done(code, o, NULL);
	}
	if (!strcmp(argv[0], "approve") && argc >= 2) {
		/* The fingerprint may come as one word or as its six groups. */
		for (int i = 1; i < argc; i++) {
			size_t l = strlen(fp);
			snprintf(fp + l, sizeof(fp) - l, "%s%s", l ? " " : "", argv[i]);
		}
		req = cJSON_CreateObject();
		cJSON_AddStringToObject(req, "fingerprint", fp);
		body = cJSON_PrintUnformatted(req);
		cJSON_Delete(req);
		code = cli_call("POST", "/v1/devices/approve", body, &o, 0);
		free(body);
		if (code == FS_OK && !cli_json_out)
			printf(
			    "approved \"%s\" (%s): it receives the space's keys at its next sync\n",
			    cli_str(o, "name"), cli_str(o, "fingerprint"));
		return cli_done(code, o, NULL);
	}
	if (!strcmp(argv[0], "revoke") && argc >= 2) {
		for (int i = 1; i < argc; i++) {
			size_t l = strlen(fp);
			snprintf(fp + l, sizeof(fp) - l, "%s%s", l ? " " : "", argv[i]);
		}
		if (cli_id_path(path, sizeof(path), "/v1/devices/", fp, "/revoke") != 0)
			return EX_USAGE;
		code = cli_call("POST", path, "{}", &o, 0);
		if (code == FS_OK && !cli_json_out)
			printf("revoked \"%s\": new space key version %s for the others; it reads "
			       "nothing written from now on\n",
			       cli_str(o, "name"), cli_str(o, "key_version"));
		return cli_done(code, o, NULL);
	}
	fprintf(stderr, "fieldsync: see \"fieldsync device --help\"\n");
	return EX_USAGE;
}

/* ---- recovery ---- */

static int create_key(const char *file)
{
	char p[CLI_PASS_MAX], pub[FS_CRYPTO_RECOVERY_PUB_MAX];
	char *text = NULL;
	size_t len = 0, off = 0;
	fs_errbuf eb;
	int fd = -1, rc = EX_FAIL;

	if (fs_crypto_init() != FS_OK) {
		fprintf(stderr, "fieldsync: the cryptography library could not start\n");
		return EX_FAIL;
	}
	/* Refuse before asking anything: an existing key is never overwritten. */
	if ((fd = open(file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) < 0) {
		fprintf(stderr, "fieldsync: cannot create %s: %s\n", file, strerror(errno));
		return EX_FAIL;
	}
	if ((rc = cli_new_pass("Choose the recovery key's passphrase: ", p, sizeof(p))) != 0)
		goto out;
	rc = EX_FAIL;
	if (fs_crypto_recovery_create(p, strlen(p), NULL, &text, &len, pub, &eb) != FS_OK) {
		fprintf(stderr, "fieldsync: %s (%s)\n", fs_strerror(eb.code), eb.msg);
		goto out;
	}
	while (off < len) {
		ssize_t w = write(fd, text + off, len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			fprintf(stderr, "fieldsync: cannot write %s: %s\n", file, strerror(errno));
			goto out;
		}
		off += (size_t)w;
	}
	if (fsync(fd) != 0 || close(fd) != 0) {
		fd = -1;
		fprintf(stderr, "fieldsync: cannot write %s: %s\n", file, strerror(errno));
		goto out;
	}
	fd = -1;
	if (cli_json_out) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "file", file);
		cJSON_AddStringToObject(o, "public", pub);
		cli_print_json(o);
		cJSON_Delete(o);
	} else {
		printf("office recovery key written to %s (mode 0600).\n"
		       "Print it or move it to removable media, keep it offline with its\n"
		       "passphrase stored apart, and delete this copy.\n"
		       "Its public key, for \"fieldsync init --recovery\" or \"fieldsync recovery "
		       "set\":\n"
		       "%s\n",
		       file, pub);
	}
	rc = EX_OK;
out:
	cli_wipe(p, sizeof(p));
	if (fd >= 0) {
		close(fd);
		unlink(file); /* nothing half written stays behind */
	}
	cli_free_secret_text(text); /* passphrase-protected, wiped all the same */
	return rc;
}

int cli_recovery(int argc, char **argv)
{
	cJSON *o = NULL, *req;
	char *body;
	int code;

	if (argc == 2 && !strcmp(argv[0], "create"))
		return create_key(argv[1]);
	if (argc == 2 && !strcmp(argv[0], "set")) {
		req = cJSON_CreateObject();
		cJSON_AddStringToObject(req, "public", argv[1]);
		body = cJSON_PrintUnformatted(req);
		cJSON_Delete(req);
		code = cli_call("POST", "/v1/recovery", body, &o, 0);
		free(body);
		return cli_done(code, o,
		                "the office recovery key is set: a new key version, and every "
		                "version is sealed to it");
	}
	fprintf(stderr, "fieldsync: see \"fieldsync recovery --help\"\n");
	return EX_USAGE;
}

int cli_recover(int argc, char **argv)
{
	char p[CLI_PASS_MAX], text[FS_CRYPTO_RECOVERY_TEXT_MAX + 2];
	cJSON *o = NULL, *req;
	size_t n;
	FILE *f;
	int code;

	if (argc != 1) {
		fprintf(stderr, "fieldsync: see \"fieldsync recover --help\"\n");
		return EX_USAGE;
	}
	if ((f = fopen(argv[0], "re")) == NULL) {
		fprintf(stderr, "fieldsync: cannot read %s: %s\n", argv[0], strerror(errno));
		return EX_FAIL;
	}
	n = fread(text, 1, sizeof(text) - 1, f);
	fclose(f);
	if (n == 0 || n > FS_CRYPTO_RECOVERY_TEXT_MAX) {
		fprintf(stderr, "fieldsync: %s is not a recovery key file\n", argv[0]);
		return EX_FAIL;
	}
	text[n] = '\0';
	if (cli_read_pass("The recovery key's passphrase: ", p, sizeof(p)) <= 0) {
		fprintf(stderr, "fieldsync: no passphrase given\n");
		return EX_USAGE;
	}
	req = cJSON_CreateObject();
	cJSON_AddStringToObject(req, "key", text);
	cJSON_AddStringToObject(req, "passphrase", p);
	cli_wipe(p, sizeof(p));
	cli_wipe(text, sizeof(text));
	code = cli_post_tree("/v1/recover", req, &o);
	if (code == FS_OK && !cli_json_out)
		printf("recovered %.0f key version(s): this device reads the whole space and is a "
		       "member (%s)\n",
		       cli_num(o, "keys_recovered"), cli_str(me_of(o), "status"));
	return cli_done(code, o, NULL);
}
