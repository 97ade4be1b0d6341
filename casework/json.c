/*
 * casework/json.c: the canonical JSON writer used for every record (the
 * bytes a visit's signature covers), and wiping of parsed trees, so names
 * and notes do not linger in freed heap memory.
 */
#include <cjson/cJSON.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "casework_int.h"

static void grow(struct cw_buf *b, size_t need)
{
	size_t cap;
	char *p;

	if (b->oom)
		return;
	if (b->n + need + 1 <= b->cap)
		return;
	cap = b->cap ? b->cap : 256;
	while (cap < b->n + need + 1)
		cap *= 2;
	/* Not realloc: the old block holds plaintext and must be wiped. */
	if ((p = malloc(cap)) == NULL) {
		b->oom = 1;
		return;
	}
	if (b->p) {
		memcpy(p, b->p, b->n);
		sodium_memzero(b->p, b->cap);
		free(b->p);
	}
	b->p = p;
	b->cap = cap;
}

void cw_buf_put(struct cw_buf *b, const char *s, size_t n)
{
	grow(b, n);
	if (b->oom)
		return;
	memcpy(b->p + b->n, s, n);
	b->n += n;
	b->p[b->n] = '\0';
}

void cw_buf_puts(struct cw_buf *b, const char *s)
{
	cw_buf_put(b, s, strlen(s));
}

void cw_buf_str(struct cw_buf *b, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *u = (const unsigned char *)s;
	size_t run = 0;

	cw_buf_put(b, "\"", 1);
	for (size_t i = 0;; i++) {
		unsigned char c = u[i];
		char esc[7];

		if (c != '\0' && c >= 0x20 && c != '"' && c != '\\') {
			run++;
			continue;
		}
		cw_buf_put(b, s + i - run, run);
		run = 0;
		if (c == '\0')
			break;
		if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			cw_buf_put(b, esc, 2);
		} else if (c == '\n') {
			cw_buf_put(b, "\\n", 2);
		} else if (c == '\t') {
			cw_buf_put(b, "\\t", 2);
		} else if (c == '\r') {
			cw_buf_put(b, "\\r", 2);
		} else {
			memcpy(esc, "\\u00", 4);
			esc[4] = hex[c >> 4];
			esc[5] = hex[c & 15];
			cw_buf_put(b, esc, 6);
		}
	}
	cw_buf_put(b, "\"", 1);
}

void cw_buf_int(struct cw_buf *b, long long v)
{
	char t[32];
	int n = snprintf(t, sizeof(t), "%lld", v);

	cw_buf_put(b, t, (size_t)n);
}

void cw_buf_wipe(struct cw_buf *b)
{
	if (b->p) {
		sodium_memzero(b->p, b->cap);
		free(b->p);
	}
	b->p = NULL;
	b->n = b->cap = 0;
	b->oom = 0;
}

static void wipe(cJSON *j)
{
	/* Trees are at most FS_CW_JSON_DEPTH deep: fs_json_parse checked. */
	for (; j != NULL; j = j->next) {
		if (j->string)
			sodium_memzero(j->string, strlen(j->string));
		if (j->valuestring)
			sodium_memzero(j->valuestring, strlen(j->valuestring));
		wipe(j->child);
	}
}

void cw_json_free(cJSON *j)
{
	if (j == NULL)
		return;
	wipe(j);
	cJSON_Delete(j);
}
