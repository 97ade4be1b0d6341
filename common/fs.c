/*
 * common/fs.c: error names and messages, the error buffer, and bounded JSON
 * parsing shared by every module that reads input from outside.
 */
#include "fs.h"

#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct errinfo {
	int code;
	const char *name;
	const char *text;
};

static const struct errinfo errs[] = {
    {FS_OK, "FS_OK", "success"},
    {FS_E_INTERNAL, "FS_E_INTERNAL", "internal error"},
    {FS_E_NOMEM, "FS_E_NOMEM", "out of memory"},
    {FS_E_ARG, "FS_E_ARG", "invalid argument"},
    {FS_E_INPUT, "FS_E_INPUT", "malformed input"},
    {FS_E_TOOBIG, "FS_E_TOOBIG", "input too large or too deeply nested"},
    {FS_E_IO, "FS_E_IO", "input/output error"},
    {FS_E_NOTFOUND, "FS_E_NOTFOUND", "not found"},
    {FS_E_EXISTS, "FS_E_EXISTS", "already exists"},
    {FS_E_CRYPTO_INIT, "FS_E_CRYPTO_INIT", "the cryptography library could not start"},
    {FS_E_PASSPHRASE, "FS_E_PASSPHRASE", "wrong passphrase"},
    {FS_E_KEYFILE, "FS_E_KEYFILE", "the key file is damaged or unreadable"},
    {FS_E_TAMPERED, "FS_E_TAMPERED", "the record was altered or damaged and cannot be trusted"},
    {FS_E_MISBOUND, "FS_E_MISBOUND", "the record belongs to another document or space"},
    {FS_E_BASE64, "FS_E_BASE64", "invalid base64 data"},
    {FS_E_ENV_VERSION, "FS_E_ENV_VERSION", "record format from an unknown version"},
    {FS_E_UNKNOWN_KID, "FS_E_UNKNOWN_KID",
     "the record was encrypted with a key this device does not have"},
    {FS_E_TRUNCATED, "FS_E_TRUNCATED", "data is truncated"},
    {FS_E_SIGNATURE, "FS_E_SIGNATURE", "a signature does not verify"},
    {FS_E_KEYFILE_VERSION, "FS_E_KEYFILE_VERSION", "the key file was written by a newer version"},
    {FS_E_TEAM_NOSPACE, "FS_E_TEAM_NOSPACE", "no space was found on the server yet"},
    {FS_E_TEAM_AMBIGUOUS, "FS_E_TEAM_AMBIGUOUS", "the server's database holds more than one space"},
    {FS_E_TEAM_NOKEY, "FS_E_TEAM_NOKEY",
     "this device has not been given the space's key yet: ask a member to run \"fieldsync device "
     "approve\" with this device's fingerprint"},
    {FS_E_TEAM_REVOKED, "FS_E_TEAM_REVOKED",
     "this device was removed from the space and can no longer read new records"},
    {FS_E_TEAM_NOTMEMBER, "FS_E_TEAM_NOTMEMBER", "only a member device of the space can do this"},
    {FS_E_STORE_CONFLICT, "FS_E_STORE_CONFLICT",
     "the document changed since it was read (conflict)"},
    {FS_E_STORE_LOCKED, "FS_E_STORE_LOCKED", "another process is using the store"},
    {FS_E_STORE_CORRUPT, "FS_E_STORE_CORRUPT", "the store file is damaged"},
    {FS_E_STORE_FOREIGN, "FS_E_STORE_FOREIGN", "the file is not a fieldsync store"},
    {FS_E_STORE_FULL, "FS_E_STORE_FULL", "the disk is full"},
    {FS_E_STORE_TOO_NEW, "FS_E_STORE_TOO_NEW",
     "the store was written by a newer version of fieldsync"},
    {FS_E_STORE_BUSY, "FS_E_STORE_BUSY", "the store stayed busy too long"},
    {FS_E_STORE_READONLY, "FS_E_STORE_READONLY", "the store cannot be written (read-only)"},
    {FS_E_SYNC_OFFLINE, "FS_E_SYNC_OFFLINE", "the server cannot be reached (offline)"},
    {FS_E_SYNC_DNS, "FS_E_SYNC_DNS", "the server's name could not be found"},
    {FS_E_SYNC_TLS_CERT, "FS_E_SYNC_TLS_CERT", "the server's certificate is not trusted"},
    {FS_E_SYNC_TLS_PIN, "FS_E_SYNC_TLS_PIN",
     "the server's certificate does not match the pinned key"},
    {FS_E_SYNC_AUTH, "FS_E_SYNC_AUTH", "the server refused our credentials"},
    {FS_E_SYNC_SERVER, "FS_E_SYNC_SERVER", "the server reported an error"},
    {FS_E_SYNC_MALFORMED, "FS_E_SYNC_MALFORMED", "the server sent a malformed answer"},
    {FS_E_SYNC_TIMEOUT, "FS_E_SYNC_TIMEOUT", "the server stopped answering (timeout)"},
    {FS_E_SYNC_RATE, "FS_E_SYNC_RATE", "the server asked us to slow down"},
    {FS_E_SYNC_INSECURE, "FS_E_SYNC_INSECURE",
     "the server address is not allowed (https is required)"},
    {FS_E_SYNC_NODB, "FS_E_SYNC_NODB", "the database does not exist on the server"},
    {FS_E_SYNC_TLS, "FS_E_SYNC_TLS", "the secure connection to the server failed"},
    {FS_E_SYNC_REFUSED, "FS_E_SYNC_REFUSED", "the server refused the document"},
    {FS_E_SYNC_CONNLOST, "FS_E_SYNC_CONNLOST",
     "the connection to the server broke during a transfer"},
    {FS_E_SYNC_REDIRECT, "FS_E_SYNC_REDIRECT",
     "the server sent us elsewhere (redirects are not followed)"},
    {FS_E_DAEMON_LOCKED, "FS_E_DAEMON_LOCKED",
     "fieldsync is locked: unlock it with \"fieldsync unlock\""},
    {FS_E_DAEMON_NOINIT, "FS_E_DAEMON_NOINIT",
     "fieldsync is not set up yet: run \"fieldsync init\""},
    {FS_E_DAEMON_SLOWDOWN, "FS_E_DAEMON_SLOWDOWN", "too many wrong passphrases"},
    {FS_E_DAEMON_DOWN, "FS_E_DAEMON_DOWN",
     "the fieldsync daemon is not running: start it with \"fieldsyncd\" or \"systemctl --user "
     "start fieldsyncd\""},
    {FS_E_DAEMON_CONFIG, "FS_E_DAEMON_CONFIG", "the configuration file is not valid"},
    {FS_E_DAEMON_PEER, "FS_E_DAEMON_PEER", "the request came from another user and was refused"},
    {FS_E_DAEMON_WAITING, "FS_E_DAEMON_WAITING",
     "this server's login is locked away until the first unlock"},
    {FS_E_CW_INVALID, "FS_E_CW_INVALID", "the case or visit record is not valid"},
    {FS_E_CW_VERSION, "FS_E_CW_VERSION", "the record was written by a newer version"},
    {FS_E_CW_FINAL, "FS_E_CW_FINAL", "the visit is finalized and cannot change (add an addendum)"},
    {FS_E_CW_UNSIGNED, "FS_E_CW_UNSIGNED", "the visit is a draft and has no signature"},
    {FS_E_CW_UNMERGEABLE, "FS_E_CW_UNMERGEABLE", "conflicting versions need a person to choose"},
    {FS_E_CW_TZ, "FS_E_CW_TZ", "unknown time zone"},
};

static const struct errinfo *lookup(int code)
{
	for (size_t i = 0; i < sizeof(errs) / sizeof(errs[0]); i++)
		if (errs[i].code == code)
			return &errs[i];
	return NULL;
}

const char *fs_strerror(int code)
{
	const struct errinfo *e = lookup(code);
	return e ? e->text : "unknown error";
}

const char *fs_errname(int code)
{
	const struct errinfo *e = lookup(code);
	return e ? e->name : "FS_E_UNKNOWN";
}

int fs_err_set(fs_errbuf *eb, int code, const char *fmt, ...)
{
	if (eb == NULL)
		return code;
	eb->code = code;
	if (fmt == NULL) {
		snprintf(eb->msg, sizeof(eb->msg), "%s", fs_strerror(code));
		return code;
	}
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(eb->msg, sizeof(eb->msg), fmt, ap);
	va_end(ap);
	return code;
}

void fs_err_clear(fs_errbuf *eb)
{
	if (eb == NULL)
		return;
	eb->code = FS_OK;
	eb->msg[0] = '\0';
}

int fs_strv_push(fs_strv *l, const char *s)
{
	char *c;

	if (l->n == l->cap) {
		size_t nc = l->cap ? l->cap * 2 : 16;
		char **nv = nc > SIZE_MAX / sizeof(*nv) ? NULL : realloc(l->v, nc * sizeof(*nv));
		if (nv == NULL)
			return FS_E_NOMEM;
		l->v = nv;
		l->cap = nc;
	}
	if ((c = strdup(s)) == NULL)
		return FS_E_NOMEM;
	l->v[l->n++] = c;
	return FS_OK;
}

void fs_strv_free(fs_strv *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = l->cap = 0;
}

/* Deepest nesting of arrays and objects, ignoring brackets inside strings. */
static int json_depth(const char *s, size_t len, int limit)
{
	int depth = 0, max = 0, in_str = 0;

	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (in_str) {
			if (c == '\\')
				i++;
			else if (c == '"')
				in_str = 0;
			continue;
		}
		if (c == '"') {
			in_str = 1;
		} else if (c == '[' || c == '{') {
			if (++depth > max)
				max = depth;
			if (max > limit)
				return max;
		} else if (c == ']' || c == '}') {
			depth--;
		}
	}
	return max;
}

int fs_json_parse(const char *text, size_t len, size_t max_len, int max_depth, cJSON **out,
                  fs_errbuf *eb)
{
	const char *end = NULL;
	cJSON *j;

	if (out == NULL)
		return fs_err_set(eb, FS_E_ARG, "no output for JSON");
	*out = NULL;
	if (text == NULL)
		return fs_err_set(eb, FS_E_INPUT, "empty JSON input");
	if (len > max_len)
		return fs_err_set(eb, FS_E_TOOBIG, "JSON of %zu bytes exceeds the limit of %zu",
		                  len, max_len);
	if (json_depth(text, len, max_depth) > max_depth)
		return fs_err_set(eb, FS_E_TOOBIG, "JSON nested deeper than %d levels", max_depth);

	j = cJSON_ParseWithLengthOpts(text, len, &end, 0);
	if (j == NULL)
		return fs_err_set(eb, FS_E_INPUT, "invalid JSON near byte %zu",
		                  end && end >= text ? (size_t)(end - text) : (size_t)0);
	/* Trailing garbage after the value is malformed input too. */
	while (end && (size_t)(end - text) < len &&
	       (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n'))
		end++;
	if (end && (size_t)(end - text) < len && *end != '\0') {
		cJSON_Delete(j);
		return fs_err_set(eb, FS_E_INPUT, "unexpected data after JSON at byte %zu",
		                  (size_t)(end - text));
	}
	*out = j;
	return FS_OK;
}
