/*
 * daemon/cli_int.h: what the files of the fieldsync CLI share: one call to
 * the daemon's local API, passphrase input without echo, wiping, and the
 * documented exit codes. Nothing outside the CLI includes it.
 */
#ifndef FS_CLI_INT_H
#define FS_CLI_INT_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "fs.h"

#define CLI_PASS_MAX 1026 /* 1024 bytes of passphrase, a newline and NUL */

/* Exit status, documented in `fieldsync --help` and docs/daemon.md. */
enum exit_code {
	EX_OK = 0,
	EX_FAIL = 1,
	EX_USAGE = 2,
	EX_DOWN = 3,
	EX_LOCKED = 4,
	EX_PASS = 5,
	EX_CONFLICT = 6,
	EX_NOTFOUND = 7,
	EX_TEAM = 8, /* not a member of the space, no key yet, or revoked */
};

extern int cli_json_out; /* --json: print the daemon's answers as JSON */

/* One API call. On FS_OK *out is the answer (caller frees); otherwise the
 * error is printed in plain words (or as JSON with --json) and returned. */
int cli_call(const char *method, const char *path, const char *body, cJSON **out, int quiet);
/* Prints o with --json, else plain_ok (may be NULL); frees o; the exit status. */
int cli_done(int code, cJSON *o, const char *plain_ok);
void cli_print_json(const cJSON *o);
/* prefix + the escaped id + suffix: 0, or -1 (said why) when it does not fit. */
int cli_id_path(char *path, size_t n, const char *prefix, const char *id, const char *suffix);
/* A passphrase without echo from a terminal, else a line of stdin. Length or -1. */
int cli_read_pass(const char *prompt, char *out, size_t max);
/* {"k1":p1[,"k2":p2]} with the tree's copies wiped; free with cli_free_secret_text. */
char *cli_pass_body(const char *k1, const char *p1, const char *k2, const char *p2);
void cli_free_secret_text(char *t);
void cli_wipe(char *s, size_t n);
/* The exit status for an error code. */
int cli_exit_of(int code);
/* Reads one server option of `remote add` and `join` (--pin, again for
 * more pins, --ca, --user, --password, --token: the last two read without
 * echo) at argv[*i] into req: 1 read (and *i moved on), 0 not one of them,
 * -1 failed (said why). */
int cli_server_opt(cJSON *req, int argc, char **argv, int *i);
/* POSTs req (which it frees, wiped) to path: cli_call's result. */
int cli_post_tree(const char *path, cJSON *req, cJSON **out);
/* A new passphrase into p1 (asked twice on a terminal): 0, or an exit status. */
int cli_new_pass(const char *prompt, char *p1, size_t cap);
/* cJSON_Delete after wiping the tree's strings (passwords, tokens). */
void cli_free_tree(cJSON *o);
/* Members of an answer: "" or 0 when absent. */
const char *cli_str(const cJSON *o, const char *k);
double cli_num(const cJSON *o, const char *k);

/* cli_team.c: join, device, recovery, recover (docs/team.md). */
int cli_join(int argc, char **argv);
int cli_device(int argc, char **argv);
int cli_recovery(int argc, char **argv);
int cli_recover(int argc, char **argv);
/* The team lines of `fieldsync status`. */
void cli_team_status(const cJSON *team);

#endif
