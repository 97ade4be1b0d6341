/*
 * hub/parse.c: the hub's parsers of single documents (PUT, POST) and of
 * open_revs, over cJSON, and its output buffer; the batch requests are
 * read by scan.c. Parsers are pure (no store, no network) so the fuzz
 * target reaches every one; each bounds size, depth and counts before
 * trusting a member's type.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "hub_int.h"

/* ---- output buffer ---- */

static int grow(hub_buf *b, size_t need)
{
	size_t cap;
	char *p;
	if (b->err)
		return -1;
	if (b->len + need + 1 <= b->cap)
		return 0;
	cap = b->cap ? b->cap : 1024;
	while (cap < b->len + need + 1) {
		if (cap > SIZE_MAX / 2) {
			b->err = FS_E_NOMEM;
			return -1;
		}
		cap *= 2;
	}
	if ((p = realloc(b->p, cap)) == NULL) {
		b->err = FS_E_NOMEM;
		return -1;
	}
	b->p = p;
	b->cap = cap;
	return 0;
}

void hub_buf_reserve(hub_buf *b, size_t n)
{
	char *p;
	if (b->err || b->len + n + 1 <= b->cap || n > SIZE_MAX - b->len - 1)
		return;
	if ((p = realloc(b->p, b->len + n + 1)) == NULL) {
		b->err = FS_E_NOMEM;
		return;
	}
	b->p = p;
	b->cap = b->len + n + 1;
}

void hub_buf_add(hub_buf *b, const void *p, size_t n)
{
	if (n == 0 || grow(b, n) != 0)
		return;
	memcpy(b->p + b->len, p, n);
	b->len += n;
	b->p[b->len] = '\0';
}

void hub_buf_str(hub_buf *b, const char *s)
{
	hub_buf_add(b, s, strlen(s));
}

void hub_buf_fmt(hub_buf *b, const char *fmt, ...)
{
	char tmp[512];
	va_list ap;
	int n;
	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(tmp)) {
		b->err = FS_E_INTERNAL;
		return;
	}
	hub_buf_add(b, tmp, (size_t)n);
}

void hub_buf_json_str(hub_buf *b, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)s;
	const unsigned char *run = p;

	hub_buf_add(b, "\"", 1);
	for (; *p; p++) {
		if (*p >= 0x20 && *p != '"' && *p != '\\')
			continue;
		hub_buf_add(b, run, (size_t)(p - run));
		run = p + 1;
		switch (*p) {
		case '"':
			hub_buf_add(b, "\\\"", 2);
			break;
		case '\\':
			hub_buf_add(b, "\\\\", 2);
			break;
		case '\n':
			hub_buf_add(b, "\\n", 2);
			break;
		case '\r':
			hub_buf_add(b, "\\r", 2);
			break;
		case '\t':
			hub_buf_add(b, "\\t", 2);
			break;
		default: {
			char u[6] = {'\\', 'u', '0', '0', hex[*p >> 4], hex[*p & 15]};
			hub_buf_add(b, u, sizeof(u));
		}
		}
	}
	hub_buf_add(b, run, (size_t)(p - run));
	hub_buf_add(b, "\"", 1);
}

void hub_buf_free(hub_buf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

/* ---- helpers ---- */

int hub_json_parse(const char *text, size_t len, size_t max_len, int depth, cJSON **out,
                   fs_errbuf *eb)
{
	int rc = fs_json_parse(text, len, max_len, depth, out, eb);
	/* The body's size was bounded as it arrived: too big here means too deep. */
	if (rc == FS_E_TOOBIG && len <= max_len)
		rc = fs_err_set(eb, FS_E_INPUT, "JSON nested deeper than %d levels", depth);
	else if (rc == FS_E_INPUT)
		rc = fs_err_set(eb, FS_E_INPUT, "Request body is not valid JSON");
	return rc;
}

void hub_strv_free(char **v, size_t n)
{
	if (v == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

int hub_docid_ok(const char *id)
{
	size_t n = id ? strlen(id) : 0;
	return n > 0 && n <= FS_STORE_ID_MAX && id[0] != '_';
}

static int rev_ok(const char *rev)
{
	return strlen(rev) < FS_REV_MAX && fs_crypto_rev_parse(rev, NULL, NULL) == FS_OK;
}

void hub_doc_in_clear(hub_doc_in *d)
{
	if (d == NULL)
		return;
	free(d->id);
	free(d->rev);
	hub_strv_free(d->hashes, d->n_hashes);
	free(d->body);
	memset(d, 0, sizeof(*d));
}

static char *dup_str(const char *s)
{
	return s ? strdup(s) : NULL;
}

/* _revisions: {"start": N, "ids": ["hash", ...]}, newest first. */
static int parse_revisions(const cJSON *r, hub_doc_in *d, fs_errbuf *eb)
{
	const cJSON *start = cJSON_GetObjectItemCaseSensitive(r, "start");
	const cJSON *ids = cJSON_GetObjectItemCaseSensitive(r, "ids");
	const cJSON *e;
	int n;

	if (!cJSON_IsObject(r) || !cJSON_IsNumber(start) || !cJSON_IsArray(ids))
		return fs_err_set(eb, FS_E_INPUT, "_revisions needs start and ids");
	n = cJSON_GetArraySize(ids);
	if (start->valuedouble < 1 || start->valuedouble > 1e15 || n < 1 ||
	    (size_t)n > FS_STORE_HISTORY_MAX || (double)n > start->valuedouble)
		return fs_err_set(eb, FS_E_INPUT, "_revisions out of range");
	d->rev_start = (unsigned long)start->valuedouble;
	if ((d->hashes = calloc((size_t)n, sizeof(char *))) == NULL)
		return fs_err_set(eb, FS_E_NOMEM, NULL);
	cJSON_ArrayForEach(e, ids)
	{
		char tmp[FS_REV_MAX];
		if (!cJSON_IsString(e) ||
		    (size_t)snprintf(tmp, sizeof(tmp), "1-%s", e->valuestring) >= sizeof(tmp) ||
		    !rev_ok(tmp))
			return fs_err_set(eb, FS_E_INPUT, "bad hash in _revisions");
		if ((d->hashes[d->n_hashes++] = strdup(e->valuestring)) == NULL)
			return fs_err_set(eb, FS_E_NOMEM, NULL);
	}
	return FS_OK;
}

int hub_parse_doc(cJSON *j, hub_doc_in *out, fs_errbuf *eb)
{
	hub_doc_in d = {0};
	cJSON *e, *next;
	char *txt = NULL;
	int rc = FS_E_INPUT;

	memset(out, 0, sizeof(*out));
	if (!cJSON_IsObject(j)) {
		rc = fs_err_set(eb, FS_E_INPUT, "Document must be a JSON object");
		goto out;
	}
	cJSON_ArrayForEach(e, j)
	{
		const char *k = e->string;
		if (k == NULL)
			continue;
		if (k[0] != '_') {
			continue;
		} else if (strcmp(k, "_id") == 0) {
			if (!cJSON_IsString(e) || d.id) {
				rc = fs_err_set(eb, FS_E_INPUT, "Document id must be a string");
				goto out;
			}
			if ((d.id = dup_str(e->valuestring)) == NULL)
				goto nomem;
		} else if (strcmp(k, "_rev") == 0) {
			if (!cJSON_IsString(e) || d.rev || !rev_ok(e->valuestring)) {
				rc = fs_err_set(eb, FS_E_INPUT, "Invalid rev format");
				goto out;
			}
			if ((d.rev = dup_str(e->valuestring)) == NULL)
				goto nomem;
		} else if (strcmp(k, "_deleted") == 0) {
			if (!cJSON_IsBool(e)) {
				rc = fs_err_set(eb, FS_E_INPUT, "_deleted must be a boolean");
				goto out;
			}
			d.deleted = cJSON_IsTrue(e);
		} else if (strcmp(k, "_revisions") == 0) {
			if (d.hashes) {
				rc = fs_err_set(eb, FS_E_INPUT, "_revisions twice");
				goto out;
			}
			if ((rc = parse_revisions(e, &d, eb)) != FS_OK)
				goto out;
		} else if (strcmp(k, "_attachments") == 0 || strcmp(k, "_conflicts") == 0 ||
		           strcmp(k, "_deleted_conflicts") == 0 || strcmp(k, "_local_seq") == 0) {
			/* Attachments are not kept (the hub stores envelopes); the
			 * others are read-side annotations a client may echo back. */
			if (strcmp(k, "_attachments") == 0 && cJSON_GetArraySize(e) > 0) {
				rc = fs_err_set(eb, FS_E_INPUT, "the hub stores no attachments");
				goto out;
			}
		} else {
			rc = fs_err_set(eb, FS_E_INPUT, "Bad special document member: %.64s", k);
			goto out;
		}
	}
	if (d.n_hashes && d.rev) {
		unsigned long g;
		const char *h;
		if (fs_crypto_rev_parse(d.rev, &g, &h) != FS_OK || g != d.rev_start ||
		    strcmp(h, d.hashes[0]) != 0) {
			rc = fs_err_set(eb, FS_E_INPUT, "_rev does not match _revisions");
			goto out;
		}
	}
	/* The body is what remains once the special members are gone. */
	for (e = j->child; e; e = next) {
		next = e->next;
		if (e->string && e->string[0] == '_')
			cJSON_Delete(cJSON_DetachItemViaPointer(j, e));
	}
	if ((txt = cJSON_PrintUnformatted(j)) == NULL)
		goto nomem;
	d.body_len = strlen(txt);
	if (d.body_len > FS_STORE_BODY_MAX) {
		rc = fs_err_set(eb, FS_E_TOOBIG, "document body over %u bytes", FS_STORE_BODY_MAX);
		goto out;
	}
	d.body = (uint8_t *)txt;
	txt = NULL;
	*out = d;
	memset(&d, 0, sizeof(d));
	rc = FS_OK;
	goto out;
nomem:
	rc = fs_err_set(eb, FS_E_NOMEM, NULL);
out:
	free(txt);
	hub_doc_in_clear(&d);
	return rc;
}

int hub_parse_open_revs(const char *q, int *all, char ***revs, size_t *n, fs_errbuf *eb)
{
	cJSON *j = NULL;
	const cJSON *e;
	char **v = NULL;
	size_t k = 0;
	int rc, m;

	*all = 0;
	*revs = NULL;
	*n = 0;
	if (strcmp(q, "all") == 0) {
		*all = 1;
		return FS_OK;
	}
	if ((rc = hub_json_parse(q, strlen(q), 1u << 20, 4, &j, eb)) != FS_OK)
		goto out;
	m = cJSON_GetArraySize(j);
	if (!cJSON_IsArray(j) || m > 10000) {
		rc = fs_err_set(eb, FS_E_INPUT, "open_revs must be \"all\" or a list of revisions");
		goto out;
	}
	if ((v = calloc(m ? (size_t)m : 1, sizeof(char *))) == NULL) {
		rc = fs_err_set(eb, FS_E_NOMEM, NULL);
		goto out;
	}
	cJSON_ArrayForEach(e, j)
	{
		if (!cJSON_IsString(e) || !rev_ok(e->valuestring)) {
			rc = fs_err_set(eb, FS_E_INPUT, "Invalid rev format");
			goto out;
		}
		if ((v[k] = strdup(e->valuestring)) == NULL) {
			rc = fs_err_set(eb, FS_E_NOMEM, NULL);
			goto out;
		}
		k++;
	}
	*revs = v;
	*n = k;
	v = NULL;
	rc = FS_OK;
out:
	hub_strv_free(v, k);
	cJSON_Delete(j);
	return rc;
}
