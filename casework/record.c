/*
 * casework/record.c: the three record types (case, visit, addendum): strict
 * parsing and validation, the canonical JSON they are stored and signed as,
 * edits stamped with per-field hybrid logical clocks, finalizing and
 * verifying signatures. The format is in docs/casework.md.
 */
#include <cjson/cJSON.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "casework_int.h"

const char *const cw_field_names[CW_F_N] = {"name",   "alias",  "risk",  "status",
                                            "opened", "closed", "needs", "tags"};
const char *const cw_kind_names[CW_KINDS] = {"home", "phone", "office", "outreach"};
static const char *const risk_names[] = {"low", "medium", "high"};
static const char tier_names[FS_CW_TIERS][2] = {"A", "B", "C", "D"};

#define CW_VERSION 1
#define HLC_HEX    16

/* ---- clocks ---- */

int cw_clock_cmp(const struct cw_clock *a, const struct cw_clock *b)
{
	if (a->h != b->h)
		return a->h < b->h ? -1 : 1;
	return strcmp(a->d, b->d);
}

static void hlc_format(uint64_t h, char out[HLC_HEX + 1])
{
	snprintf(out, HLC_HEX + 1, "%016llx", (unsigned long long)h);
}

static int hlc_parse(const char *s, uint64_t *h)
{
	uint64_t v = 0;

	if (strlen(s) != HLC_HEX)
		return -1;
	for (int i = 0; i < HLC_HEX; i++) {
		char c = s[i];
		int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
		if (d < 0)
			return -1;
		v = v << 4 | (uint64_t)d;
	}
	*h = v;
	return 0;
}

/* The next clock after everything the record has seen: max(now, seen + 1). */
static uint64_t hlc_next(uint64_t seen, int64_t now_ms)
{
	uint64_t wall = now_ms > 0 ? (uint64_t)now_ms << 16 : 0;

	return wall > seen ? wall : seen + 1;
}

static uint64_t case_seen(const struct cw_case *c)
{
	uint64_t m = 0;

	for (int i = 0; i < CW_F_N; i++)
		m = c->clk[i].h > m ? c->clk[i].h : m;
	for (size_t i = 0; i < c->ntiers; i++)
		m = c->tiers[i].c.h > m ? c->tiers[i].c.h : m;
	for (size_t i = 0; i < c->nas; i++)
		m = c->as[i].c.h > m ? c->as[i].c.h : m;
	return m;
}

/* ---- string checks ---- */

enum { S_ID = 1, S_LINE = 2, S_TEXT = 3 };

/* Well-formed UTF-8, no overlongs or surrogates; controls only in text. */
static int str_ok(const char *s, int kind)
{
	const unsigned char *u = (const unsigned char *)s;

	if (kind == S_ID) {
		for (; *u; u++)
			if (!((*u >= 'A' && *u <= 'Z') || (*u >= 'a' && *u <= 'z') ||
			      (*u >= '0' && *u <= '9') || *u == '.' || *u == '_' || *u == '-' ||
			      *u == '@'))
				return 0;
		return 1;
	}
	while (*u) {
		unsigned c = *u;
		int n;
		unsigned cp;

		if (c < 0x80) {
			if (c < 0x20 && !(kind == S_TEXT && (c == '\n' || c == '\t' || c == '\r')))
				return 0;
			if (c == 0x7f)
				return 0;
			u++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			n = 1;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			n = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3;
			cp = c & 0x07;
		} else {
			return 0;
		}
		for (int i = 1; i <= n; i++) {
			if ((u[i] & 0xc0) != 0x80)
				return 0;
			cp = cp << 6 | (u[i] & 0x3f);
		}
		if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		u += n + 1;
	}
	return 1;
}

/* ---- reading JSON members ---- */

struct rd {
	const char *what; /* "case", "visit", ... for messages */
	fs_errbuf *eb;
};

static int bad(struct rd *rd, const char *member, const char *why)
{
	return fs_err_set(rd->eb, FS_E_CW_INVALID, "%s: \"%s\" %s", rd->what, member, why);
}

/* Every member of o is in allowed, once. */
static int members(struct rd *rd, const cJSON *o, const char *const *allowed)
{
	if (!cJSON_IsObject(o))
		return fs_err_set(rd->eb, FS_E_CW_INVALID, "%s: not an object", rd->what);
	for (const cJSON *m = o->child; m; m = m->next) {
		int k = 0;

		for (; allowed[k]; k++)
			if (strcmp(m->string, allowed[k]) == 0)
				break;
		if (allowed[k] == NULL)
			return fs_err_set(rd->eb, FS_E_CW_INVALID, "%s: unknown member", rd->what);
		for (const cJSON *p = o->child; p != m; p = p->next)
			if (strcmp(p->string, m->string) == 0)
				return bad(rd, m->string, "appears twice");
	}
	return FS_OK;
}

/* Names, aliases and notes are wiped before their memory goes back. */
static void zfree(char *s)
{
	if (s) {
		sodium_memzero(s, strlen(s));
		free(s);
	}
}

/* A string member into a fixed buffer or a heap copy. req: must be present. */
static int rstr(struct rd *rd, const cJSON *o, const char *k, int kind, size_t min, size_t max,
                int req, char *fixed, char **heap)
{
	const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, k);
	size_t n;

	if (j == NULL || cJSON_IsNull(j)) {
		if (req)
			return bad(rd, k, "is missing");
		if (heap) {
			zfree(*heap);
			if ((*heap = strdup("")) == NULL)
				return fs_err_set(rd->eb, FS_E_NOMEM, "out of memory");
		}
		if (fixed)
			fixed[0] = '\0';
		return FS_OK;
	}
	if (!cJSON_IsString(j))
		return bad(rd, k, "must be a string");
	n = strlen(j->valuestring);
	if (n < min || n > max)
		return bad(rd, k, "has a length out of bounds");
	if (!str_ok(j->valuestring, kind))
		return bad(rd, k, "holds characters that are not allowed");
	if (fixed) {
		memcpy(fixed, j->valuestring, n + 1);
	} else {
		zfree(*heap);
		if ((*heap = strdup(j->valuestring)) == NULL)
			return fs_err_set(rd->eb, FS_E_NOMEM, "out of memory");
	}
	return FS_OK;
}

static int rtime(struct rd *rd, const cJSON *o, const char *k, int req, int64_t *t)
{
	const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, k);

	if (j == NULL || cJSON_IsNull(j))
		return req ? bad(rd, k, "is missing") : FS_OK;
	if (!cJSON_IsString(j) || fs_cw_time_parse(j->valuestring, t) != FS_OK)
		return bad(rd, k, "must be a UTC time YYYY-MM-DDTHH:MM:SSZ");
	return FS_OK;
}

static int renum(struct rd *rd, const cJSON *o, const char *k, const char *const *names, int n,
                 int req, int *v)
{
	const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, k);

	if (j == NULL)
		return req ? bad(rd, k, "is missing") : FS_OK;
	if (cJSON_IsString(j))
		for (int i = 0; i < n; i++)
			if (strcmp(j->valuestring, names[i]) == 0) {
				*v = i;
				return FS_OK;
			}
	return bad(rd, k, "has a value that is not allowed");
}

static int rtier(struct rd *rd, const cJSON *o, const char *k, int req, int *v)
{
	static const char *const n[] = {"A", "B", "C", "D"};

	return renum(rd, o, k, n, FS_CW_TIERS, req, v);
}

static int rnum(struct rd *rd, const cJSON *o, const char *k, int lo, int hi, int req, int *v)
{
	const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, k);

	if (j == NULL)
		return req ? bad(rd, k, "is missing") : FS_OK;
	if (!cJSON_IsNumber(j) || j->valuedouble < lo || j->valuedouble > hi ||
	    j->valuedouble != (double)(int)j->valuedouble)
		return bad(rd, k, "must be an integer in range");
	*v = (int)j->valuedouble;
	return FS_OK;
}

static int rbool(struct rd *rd, const cJSON *o, const char *k, int req, int *v)
{
	const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, k);

	if (j == NULL)
		return req ? bad(rd, k, "is missing") : FS_OK;
	if (!cJSON_IsBool(j))
		return bad(rd, k, "must be true or false");
	*v = cJSON_IsTrue(j);
	return FS_OK;
}

static int rb64(struct rd *rd, const cJSON *o, const char *k, uint8_t *out, size_t n, int *has)
{
	const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, k);
	size_t got = 0;

	*has = 0;
	if (j == NULL)
		return FS_OK;
	if (!cJSON_IsString(j) ||
	    sodium_base642bin(out, n, j->valuestring, strlen(j->valuestring), NULL, &got, NULL,
	                      sodium_base64_VARIANT_ORIGINAL) != 0 ||
	    got != n)
		return bad(rd, k, "must be base64 of the right length");
	*has = 1;
	return FS_OK;
}

static int rclock(struct rd *rd, const cJSON *o, const char *k, struct cw_clock *c)
{
	static const char *const m[] = {"h", "d", NULL};
	const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, k);
	const cJSON *h;
	int r;

	if (j == NULL)
		return bad(rd, k, "is missing its clock");
	if ((r = members(rd, j, m)) != FS_OK)
		return r;
	h = cJSON_GetObjectItemCaseSensitive(j, "h");
	if (!cJSON_IsString(h) || hlc_parse(h->valuestring, &c->h) != 0)
		return bad(rd, k, "has a clock that is not 16 hex digits");
	return rstr(rd, j, "d", S_ID, 1, FS_CW_ID_MAX, 1, c->d, NULL);
}

/* Clock members "h" and "d" inline in o (tier events, assignments). */
static int rclock_in(struct rd *rd, const cJSON *o, struct cw_clock *c)
{
	const cJSON *h = cJSON_GetObjectItemCaseSensitive(o, "h");

	if (!cJSON_IsString(h) || hlc_parse(h->valuestring, &c->h) != 0)
		return bad(rd, "h", "must be 16 hex digits");
	return rstr(rd, o, "d", S_ID, 1, FS_CW_ID_MAX, 1, c->d, NULL);
}

/* ---- freeing ---- */

static void case_clear(struct cw_case *c)
{
	zfree(c->name);
	zfree(c->alias);
	zfree(c->needs_why);
	for (size_t i = 0; i < c->ntags; i++)
		zfree(c->tags[i]);
	for (size_t i = 0; i < c->ntiers; i++)
		zfree(c->tiers[i].why);
	if (c->tiers)
		sodium_memzero(c->tiers, c->ntiers * sizeof(*c->tiers));
	free(c->tiers);
	if (c->as)
		sodium_memzero(c->as, c->nas * sizeof(*c->as));
	free(c->as);
	sodium_memzero(c, sizeof(*c));
}

void cw_rec_clear(struct cw_rec *r)
{
	case_clear(&r->c);
	zfree(r->v.note);
	for (size_t i = 0; i < r->v.nfu; i++)
		zfree(r->v.fu[i].action);
	zfree(r->a.note);
	sodium_memzero(r, sizeof(*r));
}

/* ---- case ---- */

static int tag_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted and unique, so equal sets are equal bytes. */
static int rtags(struct rd *rd, const cJSON *o, const char *k, struct cw_case *c)
{
	const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, k), *t;
	size_t n = 0;

	if (j == NULL)
		return FS_OK;
	if (!cJSON_IsArray(j) || cJSON_GetArraySize(j) > FS_CW_TAGS_MAX)
		return bad(rd, k, "must be a list of at most 32 tags");
	for (size_t i = 0; i < c->ntags; i++)
		zfree(c->tags[i]);
	c->ntags = 0;
	cJSON_ArrayForEach(t, j)
	{
		size_t l;

		if (!cJSON_IsString(t) || (l = strlen(t->valuestring)) == 0 || l > FS_CW_TAG_MAX ||
		    !str_ok(t->valuestring, S_LINE))
			return bad(rd, k, "holds a tag that is not 1-64 printable bytes");
		if ((c->tags[c->ntags] = strdup(t->valuestring)) == NULL)
			return fs_err_set(rd->eb, FS_E_NOMEM, "out of memory");
		c->ntags++;
	}
	qsort(c->tags, c->ntags, sizeof(char *), tag_cmp);
	for (size_t i = 0; i < c->ntags; i++) {
		if (n > 0 && strcmp(c->tags[n - 1], c->tags[i]) == 0) {
			zfree(c->tags[i]);
			continue;
		}
		c->tags[n++] = c->tags[i];
	}
	c->ntags = n;
	return FS_OK;
}

static int tierev_cmp(const void *a, const void *b)
{
	const struct cw_tierev *x = a, *y = b;
	int r = cw_clock_cmp(&x->c, &y->c);

	if (r == 0)
		r = x->tier - y->tier;
	if (r == 0)
		r = x->at < y->at ? -1 : x->at > y->at;
	if (r == 0)
		r = strcmp(x->by, y->by);
	if (r == 0)
		r = strcmp(x->why, y->why);
	return r;
}

static int assign_key_cmp(const struct cw_assign *x, const struct cw_assign *y)
{
	int r = strcmp(x->worker, y->worker);

	return r ? r : strcmp(x->role, y->role);
}

static int assign_cmp(const void *a, const void *b)
{
	return assign_key_cmp(a, b);
}

static int parse_case(struct rd *rd, const cJSON *o, struct cw_case *c)
{
	static const char *const top[] = {"type",   "v",      "name",   "alias", "risk",
	                                  "status", "opened", "closed", "needs", "tags",
	                                  "tiers",  "assign", "clk",    NULL};
	static const char *const nm[] = {"on", "at", "why", NULL};
	static const char *const tm[] = {"tier", "at", "by", "why", "h", "d", NULL};
	static const char *const am[] = {"worker", "role", "active", "h", "d", NULL};
	static const char *const sn[] = {"open", "closed"};
	static const char *const fm[] = {"name",   "alias", "risk", "status", "opened",
	                                 "closed", "needs", "tags", NULL};
	const cJSON *j, *e, *clk;
	int r, n;

	if ((r = members(rd, o, top)) != FS_OK)
		return r;
	c->closed_at = -1;
	if ((r = rstr(rd, o, "name", S_LINE, 1, FS_CW_NAME_MAX, 1, NULL, &c->name)) != FS_OK ||
	    (r = rstr(rd, o, "alias", S_LINE, 0, FS_CW_NAME_MAX, 0, NULL, &c->alias)) != FS_OK ||
	    (r = renum(rd, o, "risk", risk_names, 3, 1, &c->risk)) != FS_OK ||
	    (r = renum(rd, o, "status", sn, 2, 1, &c->closed)) != FS_OK ||
	    (r = rtime(rd, o, "opened", 1, &c->opened)) != FS_OK ||
	    (r = rtime(rd, o, "closed", 0, &c->closed_at)) != FS_OK ||
	    (r = rtags(rd, o, "tags", c)) != FS_OK)
		return r;
	j = cJSON_GetObjectItemCaseSensitive(o, "needs");
	if ((r = members(rd, j, nm)) != FS_OK || (r = rbool(rd, j, "on", 1, &c->needs)) != FS_OK)
		return r;
	if (c->needs && ((r = rtime(rd, j, "at", 1, &c->needs_at)) != FS_OK ||
	                 (r = rstr(rd, j, "why", S_TEXT, 0, FS_CW_REASON_MAX, 0, NULL,
	                           &c->needs_why)) != FS_OK))
		return r;
	if (!c->needs && (cJSON_GetObjectItemCaseSensitive(j, "at") ||
	                  cJSON_GetObjectItemCaseSensitive(j, "why")))
		return bad(rd, "needs", "has a date or reason while off");
	if (c->needs_why == NULL && (c->needs_why = strdup("")) == NULL)
		return fs_err_set(rd->eb, FS_E_NOMEM, "out of memory");
	if (c->closed != (c->closed_at >= 0))
		return bad(rd, "closed", "must be set exactly when the status is closed");

	j = cJSON_GetObjectItemCaseSensitive(o, "tiers");
	if (!cJSON_IsArray(j) || (n = cJSON_GetArraySize(j)) < 1 || n > FS_CW_HISTORY_MAX)
		return bad(rd, "tiers", "must be a history of 1-256 entries");
	if ((c->tiers = calloc((size_t)n, sizeof(*c->tiers))) == NULL)
		return fs_err_set(rd->eb, FS_E_NOMEM, "out of memory");
	cJSON_ArrayForEach(e, j)
	{
		struct cw_tierev *t = &c->tiers[c->ntiers++];

		if ((r = members(rd, e, tm)) != FS_OK || (r = rtier(rd, e, "tier", 1, &t->tier)) ||
		    (r = rtime(rd, e, "at", 1, &t->at)) ||
		    (r = rstr(rd, e, "by", S_ID, 1, FS_CW_ID_MAX, 1, t->by, NULL)) ||
		    (r = rstr(rd, e, "why", S_TEXT, 0, FS_CW_REASON_MAX, 0, NULL, &t->why)) ||
		    (r = rclock_in(rd, e, &t->c)))
			return r;
	}
	for (size_t i = 1; i < c->ntiers; i++)
		if (tierev_cmp(&c->tiers[i - 1], &c->tiers[i]) >= 0)
			return bad(rd, "tiers", "is not in clock order");

	j = cJSON_GetObjectItemCaseSensitive(o, "assign");
	if (!cJSON_IsArray(j) || (n = cJSON_GetArraySize(j)) > FS_CW_ASSIGN_MAX)
		return bad(rd, "assign", "must be a list of at most 64 assignments");
	if (n > 0 && (c->as = calloc((size_t)n, sizeof(*c->as))) == NULL)
		return fs_err_set(rd->eb, FS_E_NOMEM, "out of memory");
	cJSON_ArrayForEach(e, j)
	{
		struct cw_assign *a = &c->as[c->nas++];

		if ((r = members(rd, e, am)) != FS_OK ||
		    (r = rstr(rd, e, "worker", S_ID, 1, FS_CW_ID_MAX, 1, a->worker, NULL)) ||
		    (r = rstr(rd, e, "role", S_LINE, 1, FS_CW_ID_MAX, 1, a->role, NULL)) ||
		    (r = rbool(rd, e, "active", 1, &a->active)) || (r = rclock_in(rd, e, &a->c)))
			return r;
	}
	for (size_t i = 1; i < c->nas; i++)
		if (assign_key_cmp(&c->as[i - 1], &c->as[i]) >= 0)
			return bad(rd, "assign", "is not sorted by worker and role");

	clk = cJSON_GetObjectItemCaseSensitive(o, "clk");
	if ((r = members(rd, clk, fm)) != FS_OK)
		return r;
	for (int f = 0; f < CW_F_N; f++)
		if ((r = rclock(rd, clk, cw_field_names[f], &c->clk[f])) != FS_OK)
			return r;
	return FS_OK;
}

static void wclock_in(struct cw_buf *b, const struct cw_clock *c)
{
	char h[HLC_HEX + 1];

	hlc_format(c->h, h);
	cw_buf_puts(b, ",\"h\":\"");
	cw_buf_puts(b, h);
	cw_buf_puts(b, "\",\"d\":");
	cw_buf_str(b, c->d);
}

static void wtime(struct cw_buf *b, int64_t t)
{
	char s[21];

	fs_cw_time_format(t, s);
	cw_buf_str(b, s);
}

static void write_case(struct cw_buf *b, const struct cw_case *c)
{
	cw_buf_puts(b, "{\"type\":\"case\",\"v\":1,\"name\":");
	cw_buf_str(b, c->name);
	cw_buf_puts(b, ",\"alias\":");
	cw_buf_str(b, c->alias);
	cw_buf_puts(b, ",\"risk\":");
	cw_buf_str(b, risk_names[c->risk]);
	cw_buf_puts(b, c->closed ? ",\"status\":\"closed\"" : ",\"status\":\"open\"");
	cw_buf_puts(b, ",\"opened\":");
	wtime(b, c->opened);
	cw_buf_puts(b, ",\"closed\":");
	if (c->closed_at >= 0)
		wtime(b, c->closed_at);
	else
		cw_buf_puts(b, "null");
	if (c->needs) {
		cw_buf_puts(b, ",\"needs\":{\"on\":true,\"at\":");
		wtime(b, c->needs_at);
		cw_buf_puts(b, ",\"why\":");
		cw_buf_str(b, c->needs_why);
		cw_buf_puts(b, "}");
	} else {
		cw_buf_puts(b, ",\"needs\":{\"on\":false}");
	}
	cw_buf_puts(b, ",\"tags\":[");
	for (size_t i = 0; i < c->ntags; i++) {
		if (i)
			cw_buf_puts(b, ",");
		cw_buf_str(b, c->tags[i]);
	}
	cw_buf_puts(b, "],\"tiers\":[");
	for (size_t i = 0; i < c->ntiers; i++) {
		const struct cw_tierev *t = &c->tiers[i];

		cw_buf_puts(b, i ? ",{\"tier\":" : "{\"tier\":");
		cw_buf_str(b, tier_names[t->tier]);
		cw_buf_puts(b, ",\"at\":");
		wtime(b, t->at);
		cw_buf_puts(b, ",\"by\":");
		cw_buf_str(b, t->by);
		cw_buf_puts(b, ",\"why\":");
		cw_buf_str(b, t->why);
		wclock_in(b, &t->c);
		cw_buf_puts(b, "}");
	}
	cw_buf_puts(b, "],\"assign\":[");
	for (size_t i = 0; i < c->nas; i++) {
		const struct cw_assign *a = &c->as[i];

		cw_buf_puts(b, i ? ",{\"worker\":" : "{\"worker\":");
		cw_buf_str(b, a->worker);
		cw_buf_puts(b, ",\"role\":");
		cw_buf_str(b, a->role);
		cw_buf_puts(b, a->active ? ",\"active\":true" : ",\"active\":false");
		wclock_in(b, &a->c);
		cw_buf_puts(b, "}");
	}
	cw_buf_puts(b, "],\"clk\":{");
	for (int f = 0; f < CW_F_N; f++) {
		char h[HLC_HEX + 1];

		hlc_format(c->clk[f].h, h);
		if (f)
			cw_buf_puts(b, ",");
		cw_buf_str(b, cw_field_names[f]);
		cw_buf_puts(b, ":{\"h\":\"");
		cw_buf_puts(b, h);
		cw_buf_puts(b, "\",\"d\":");
		cw_buf_str(b, c->clk[f].d);
		cw_buf_puts(b, "}");
	}
	cw_buf_puts(b, "}}");
}

/* ---- visit and addendum ---- */

static int parse_author(struct rd *rd, const cJSON *o, struct cw_author *au)
{
	static const char *const m[] = {"worker", "device", "pk", NULL};
	const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, "author");
	int r;

	if (j == NULL)
		return bad(rd, "author", "is missing");
	if ((r = members(rd, j, m)) != FS_OK ||
	    (r = rstr(rd, j, "worker", S_ID, 1, FS_CW_ID_MAX, 1, au->worker, NULL)) ||
	    (r = rstr(rd, j, "device", S_ID, 1, FS_CW_ID_MAX, 1, au->device, NULL)) ||
	    (r = rb64(rd, j, "pk", au->pk, sizeof(au->pk), &au->has_pk)))
		return r;
	return FS_OK;
}

static int rday(struct rd *rd, const cJSON *o, const char *k, int64_t *day)
{
	const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, k);

	if (!cJSON_IsString(j) || fs_cw_day_parse(j->valuestring, day) != FS_OK)
		return bad(rd, k, "must be a day YYYY-MM-DD");
	return FS_OK;
}

static int rfollowups(struct rd *rd, const cJSON *o, struct cw_visit *v)
{
	static const char *const m[] = {"action", "due", NULL};
	const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, "followups"), *e;
	int r;

	if (j == NULL)
		return FS_OK;
	if (!cJSON_IsArray(j) || cJSON_GetArraySize(j) > FS_CW_FOLLOWUP_MAX)
		return bad(rd, "followups", "must be a list of at most 32 actions");
	for (size_t i = 0; i < v->nfu; i++)
		zfree(v->fu[i].action);
	v->nfu = 0;
	cJSON_ArrayForEach(e, j)
	{
		struct cw_followup *f = &v->fu[v->nfu];

		f->action = NULL;
		if ((r = members(rd, e, m)) != FS_OK ||
		    (r = rstr(rd, e, "action", S_TEXT, 1, FS_CW_ACTION_MAX, 1, NULL, &f->action)))
			return r;
		v->nfu++;
		if ((r = rday(rd, e, "due", &f->due_day)) != FS_OK)
			return r;
	}
	return FS_OK;
}

static int parse_visit(struct rd *rd, const cJSON *o, struct cw_visit *v)
{
	static const char *const top[] = {"type",    "v",      "case", "kind",      "start",
	                                  "minutes", "author", "note", "followups", "state",
	                                  "h",       "sig",    NULL};
	static const char *const st[] = {"draft", "final"};
	const cJSON *h;
	int r;

	if ((r = members(rd, o, top)) != FS_OK ||
	    (r = rstr(rd, o, "case", S_ID, 1, FS_CW_ID_MAX, 1, v->case_id, NULL)) ||
	    (r = renum(rd, o, "kind", cw_kind_names, CW_KINDS, 1, &v->kind)) ||
	    (r = rtime(rd, o, "start", 1, &v->start)) ||
	    (r = rnum(rd, o, "minutes", 0, FS_CW_MINUTES_MAX, 1, &v->minutes)) ||
	    (r = parse_author(rd, o, &v->au)) ||
	    (r = rstr(rd, o, "note", S_TEXT, 0, FS_CW_NOTE_MAX, 1, NULL, &v->note)) ||
	    (r = rfollowups(rd, o, v)) || (r = renum(rd, o, "state", st, 2, 1, &v->final)) ||
	    (r = rb64(rd, o, "sig", v->sig, sizeof(v->sig), &v->has_sig)))
		return r;
	h = cJSON_GetObjectItemCaseSensitive(o, "h");
	if (!cJSON_IsString(h) || hlc_parse(h->valuestring, &v->h) != 0)
		return bad(rd, "h", "must be 16 hex digits");
	if (v->final && (!v->has_sig || !v->au.has_pk))
		return bad(rd, "sig", "is missing from a finalized visit");
	if (!v->final && v->has_sig)
		return bad(rd, "sig", "is not allowed on a draft");
	return FS_OK;
}

static int parse_addendum(struct rd *rd, const cJSON *o, struct cw_addendum *a)
{
	static const char *const top[] = {"type",   "v",    "visit", "case", "at",
	                                  "author", "note", "done",  "sig",  NULL};
	const cJSON *j, *e;
	int r;

	if ((r = members(rd, o, top)) != FS_OK ||
	    (r = rstr(rd, o, "visit", S_ID, 1, FS_CW_ID_MAX, 1, a->visit_id, NULL)) ||
	    (r = rstr(rd, o, "case", S_ID, 1, FS_CW_ID_MAX, 1, a->case_id, NULL)) ||
	    (r = rtime(rd, o, "at", 1, &a->at)) || (r = parse_author(rd, o, &a->au)) ||
	    (r = rstr(rd, o, "note", S_TEXT, 0, FS_CW_NOTE_MAX, 1, NULL, &a->note)) ||
	    (r = rb64(rd, o, "sig", a->sig, sizeof(a->sig), &a->has_sig)))
		return r;
	j = cJSON_GetObjectItemCaseSensitive(o, "done");
	if (!cJSON_IsArray(j) || cJSON_GetArraySize(j) > FS_CW_FOLLOWUP_MAX)
		return bad(rd, "done", "must be a list of follow-up numbers");
	cJSON_ArrayForEach(e, j)
	{
		if (!cJSON_IsNumber(e) || e->valuedouble < 0 ||
		    e->valuedouble >= FS_CW_FOLLOWUP_MAX ||
		    e->valuedouble != (double)(int)e->valuedouble)
			return bad(rd, "done", "holds something that is not a follow-up number");
		a->done[a->ndone++] = (int)e->valuedouble;
	}
	if (!a->has_sig || !a->au.has_pk)
		return bad(rd, "sig", "is missing (an addendum is always signed)");
	return FS_OK;
}

static void write_author(struct cw_buf *b, const struct cw_author *au)
{
	cw_buf_puts(b, ",\"author\":{\"worker\":");
	cw_buf_str(b, au->worker);
	cw_buf_puts(b, ",\"device\":");
	cw_buf_str(b, au->device);
	if (au->has_pk) {
		char pk[sodium_base64_ENCODED_LEN(FS_CRYPTO_SIGN_PK_BYTES,
		                                  sodium_base64_VARIANT_ORIGINAL)];

		sodium_bin2base64(pk, sizeof(pk), au->pk, sizeof(au->pk),
		                  sodium_base64_VARIANT_ORIGINAL);
		cw_buf_puts(b, ",\"pk\":");
		cw_buf_str(b, pk);
	}
	cw_buf_puts(b, "}");
}

static void write_sig(struct cw_buf *b, const uint8_t sig[FS_CRYPTO_SIG_BYTES])
{
	char s[sodium_base64_ENCODED_LEN(FS_CRYPTO_SIG_BYTES, sodium_base64_VARIANT_ORIGINAL)];

	sodium_bin2base64(s, sizeof(s), sig, FS_CRYPTO_SIG_BYTES, sodium_base64_VARIANT_ORIGINAL);
	cw_buf_puts(b, ",\"sig\":");
	cw_buf_str(b, s);
}

static void write_visit(struct cw_buf *b, const struct cw_visit *v, int with_sig)
{
	char h[HLC_HEX + 1];

	cw_buf_puts(b, "{\"type\":\"visit\",\"v\":1,\"case\":");
	cw_buf_str(b, v->case_id);
	cw_buf_puts(b, ",\"kind\":");
	cw_buf_str(b, cw_kind_names[v->kind]);
	cw_buf_puts(b, ",\"start\":");
	wtime(b, v->start);
	cw_buf_puts(b, ",\"minutes\":");
	cw_buf_int(b, v->minutes);
	write_author(b, &v->au);
	cw_buf_puts(b, ",\"note\":");
	cw_buf_str(b, v->note);
	cw_buf_puts(b, ",\"followups\":[");
	for (size_t i = 0; i < v->nfu; i++) {
		char d[11];

		fs_cw_day_format(v->fu[i].due_day, d);
		cw_buf_puts(b, i ? ",{\"action\":" : "{\"action\":");
		cw_buf_str(b, v->fu[i].action);
		cw_buf_puts(b, ",\"due\":");
		cw_buf_str(b, d);
		cw_buf_puts(b, "}");
	}
	cw_buf_puts(b, v->final ? "],\"state\":\"final\"" : "],\"state\":\"draft\"");
	hlc_format(v->h, h);
	cw_buf_puts(b, ",\"h\":\"");
	cw_buf_puts(b, h);
	cw_buf_puts(b, "\"");
	if (with_sig && v->has_sig)
		write_sig(b, v->sig);
	cw_buf_puts(b, "}");
}

static void write_addendum(struct cw_buf *b, const struct cw_addendum *a, int with_sig)
{
	cw_buf_puts(b, "{\"type\":\"addendum\",\"v\":1,\"visit\":");
	cw_buf_str(b, a->visit_id);
	cw_buf_puts(b, ",\"case\":");
	cw_buf_str(b, a->case_id);
	cw_buf_puts(b, ",\"at\":");
	wtime(b, a->at);
	write_author(b, &a->au);
	cw_buf_puts(b, ",\"note\":");
	cw_buf_str(b, a->note);
	cw_buf_puts(b, ",\"done\":[");
	for (size_t i = 0; i < a->ndone; i++) {
		if (i)
			cw_buf_puts(b, ",");
		cw_buf_int(b, a->done[i]);
	}
	cw_buf_puts(b, "]");
	if (with_sig && a->has_sig)
		write_sig(b, a->sig);
	cw_buf_puts(b, "}");
}

/* ---- parse / write any record ---- */

static int parse_tree(const char *plain, size_t len, cJSON **root, fs_errbuf *eb)
{
	return fs_json_parse(plain, len, FS_CW_RECORD_MAX, FS_CW_JSON_DEPTH, root, eb);
}

int cw_rec_parse(const char *plain, size_t len, struct cw_rec *r, fs_errbuf *eb)
{
	struct rd rd = {"record", eb};
	cJSON *root = NULL;
	const cJSON *t, *v, *obj;
	int rc;

	memset(r, 0, sizeof(*r));
	if ((rc = parse_tree(plain, len, &root, eb)) != FS_OK) {
		if (rc == FS_E_INPUT)
			rc = fs_err_set(eb, FS_E_CW_INVALID, "record: not JSON");
		goto out;
	}
	rc = fs_err_set(eb, FS_E_CW_INVALID, "record: not an object with a type");
	if (!cJSON_IsObject(root))
		goto out;
	obj = root;
	t = cJSON_GetObjectItemCaseSensitive(root, "type");
	v = cJSON_GetObjectItemCaseSensitive(root, "v");
	/* The daemon's record API stores {"type":T,"data":{...}} (docs/daemon.md):
	 * a casework record sits in data; other types are not ours. */
	if (cJSON_IsString(t) && v == NULL && cJSON_GetArraySize(root) == 2 &&
	    cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(root, "data"))) {
		const cJSON *data = cJSON_GetObjectItemCaseSensitive(root, "data"), *it;

		r->wrapped = 1;
		if (strcmp(t->valuestring, "case") != 0 && strcmp(t->valuestring, "visit") != 0 &&
		    strcmp(t->valuestring, "addendum") != 0) {
			r->type = FS_CW_NONE;
			fs_err_clear(eb);
			rc = FS_OK;
			goto out;
		}
		it = cJSON_GetObjectItemCaseSensitive(data, "type");
		if (!cJSON_IsString(it) || strcmp(it->valuestring, t->valuestring) != 0) {
			rc = fs_err_set(eb, FS_E_CW_INVALID, "record: data is of another type");
			goto out;
		}
		obj = data;
		t = it;
		v = cJSON_GetObjectItemCaseSensitive(data, "v");
	}
	if (!cJSON_IsString(t) || !cJSON_IsNumber(v))
		goto out;
	if (v->valuedouble > CW_VERSION) {
		rc = fs_err_set(eb, FS_E_CW_VERSION, "record: format %g is newer than %d",
		                v->valuedouble, CW_VERSION);
		goto out;
	}
	if (v->valuedouble != CW_VERSION) {
		rc = fs_err_set(eb, FS_E_CW_INVALID, "record: unknown format");
		goto out;
	}
	if (strcmp(t->valuestring, "case") == 0) {
		r->type = FS_CW_CASE;
		rd.what = "case";
		rc = parse_case(&rd, obj, &r->c);
	} else if (strcmp(t->valuestring, "visit") == 0) {
		r->type = FS_CW_VISIT;
		rd.what = "visit";
		rc = parse_visit(&rd, obj, &r->v);
	} else if (strcmp(t->valuestring, "addendum") == 0) {
		r->type = FS_CW_ADDENDUM;
		rd.what = "addendum";
		rc = parse_addendum(&rd, obj, &r->a);
	} else {
		rc = fs_err_set(eb, FS_E_CW_INVALID, "record: unknown type");
	}
out:
	cw_json_free(root);
	if (rc != FS_OK)
		cw_rec_clear(r);
	return rc;
}

int cw_rec_write(const struct cw_rec *r, int with_sig, char **out, size_t *out_len, fs_errbuf *eb)
{
	struct cw_buf b = {0};

	*out = NULL;
	*out_len = 0;
	if (r->type == FS_CW_CASE)
		write_case(&b, &r->c);
	else if (r->type == FS_CW_VISIT)
		write_visit(&b, &r->v, with_sig);
	else if (r->type == FS_CW_ADDENDUM)
		write_addendum(&b, &r->a, with_sig);
	else
		return fs_err_set(eb, FS_E_INTERNAL, "record of no type");
	if (b.oom) {
		cw_buf_wipe(&b);
		return fs_err_set(eb, FS_E_NOMEM, "out of memory");
	}
	if (b.n > FS_CW_RECORD_MAX) {
		cw_buf_wipe(&b);
		return fs_err_set(eb, FS_E_TOOBIG, "record over %u bytes", FS_CW_RECORD_MAX);
	}
	*out = b.p;
	*out_len = b.n;
	return FS_OK;
}

int fs_cw_validate(const char *plain, size_t len, fs_cw_type *type, fs_errbuf *eb)
{
	struct cw_rec r;
	int rc;

	*type = FS_CW_NONE;
	if ((rc = cw_rec_parse(plain, len, &r, eb)) != FS_OK)
		return rc;
	if (r.type == FS_CW_NONE)
		rc = fs_err_set(eb, FS_E_CW_INVALID, "record: not a casework record");
	*type = r.type;
	cw_rec_clear(&r);
	return rc;
}

/* ---- edits ---- */

static int fields_parse(const char *fields, size_t len, cJSON **root, fs_errbuf *eb)
{
	int r = parse_tree(fields, len, root, eb);

	if (r == FS_OK && !cJSON_IsObject(*root)) {
		cw_json_free(*root);
		*root = NULL;
		r = fs_err_set(eb, FS_E_CW_INVALID, "fields: not a JSON object");
	}
	return r;
}

static void stamp(struct cw_clock *c, uint64_t h, const char *device)
{
	c->h = h;
	snprintf(c->d, sizeof(c->d), "%s", device);
}

static int device_ok(const char *device, fs_errbuf *eb)
{
	if (device == NULL || strlen(device) == 0 || strlen(device) > FS_CW_ID_MAX ||
	    !str_ok(device, S_ID))
		return fs_err_set(eb, FS_E_ARG, "device id must be 1-64 of [A-Za-z0-9._@-]");
	return FS_OK;
}

/* Applies tier, assign and scalar fields; with clocks from h. */
static int case_apply(struct rd *rd, const cJSON *f, struct cw_case *c, uint64_t h,
                      const char *device, int64_t now)
{
	static const char *const allowed[] = {"name",   "alias",         "risk", "status", "opened",
	                                      "closed", "needs_changed", "tags", "tier",   "why",
	                                      "by",     "assign",        NULL};
	static const char *const sn[] = {"open", "closed"};
	static const char *const nm[] = {"on", "why", NULL};
	static const char *const am[] = {"worker", "role", "active", NULL};
	const cJSON *j, *e;
	int r, tier = -1;

	if ((r = members(rd, f, allowed)) != FS_OK)
		return r;
	if (cJSON_GetObjectItemCaseSensitive(f, "name")) {
		if ((r = rstr(rd, f, "name", S_LINE, 1, FS_CW_NAME_MAX, 1, NULL, &c->name)))
			return r;
		stamp(&c->clk[CW_F_NAME], h, device);
	}
	if (cJSON_GetObjectItemCaseSensitive(f, "alias")) {
		if ((r = rstr(rd, f, "alias", S_LINE, 0, FS_CW_NAME_MAX, 1, NULL, &c->alias)))
			return r;
		stamp(&c->clk[CW_F_ALIAS], h, device);
	}
	if (cJSON_GetObjectItemCaseSensitive(f, "risk")) {
		if ((r = renum(rd, f, "risk", risk_names, 3, 1, &c->risk)))
			return r;
		stamp(&c->clk[CW_F_RISK], h, device);
	}
	if (cJSON_GetObjectItemCaseSensitive(f, "opened")) {
		if ((r = rtime(rd, f, "opened", 1, &c->opened)))
			return r;
		stamp(&c->clk[CW_F_OPENED], h, device);
	}
	if (cJSON_GetObjectItemCaseSensitive(f, "status")) {
		if ((r = renum(rd, f, "status", sn, 2, 1, &c->closed)))
			return r;
		c->closed_at = c->closed ? now : -1;
		if (c->closed && (r = rtime(rd, f, "closed", 0, &c->closed_at)))
			return r;
		stamp(&c->clk[CW_F_STATUS], h, device);
		stamp(&c->clk[CW_F_CLOSED], h, device);
	} else if (cJSON_GetObjectItemCaseSensitive(f, "closed")) {
		return bad(rd, "closed", "is only given with a status");
	}
	if ((j = cJSON_GetObjectItemCaseSensitive(f, "needs_changed")) != NULL) {
		if ((r = members(rd, j, nm)) || (r = rbool(rd, j, "on", 1, &c->needs)))
			return r;
		zfree(c->needs_why);
		c->needs_why = NULL;
		c->needs_at = c->needs ? now : 0;
		if ((r = rstr(rd, j, "why", S_TEXT, 0, FS_CW_REASON_MAX, 0, NULL, &c->needs_why)))
			return r;
		if (!c->needs)
			sodium_memzero(c->needs_why, strlen(c->needs_why));
		stamp(&c->clk[CW_F_NEEDS], h, device);
	}
	if (cJSON_GetObjectItemCaseSensitive(f, "tags")) {
		if ((r = rtags(rd, f, "tags", c)))
			return r;
		stamp(&c->clk[CW_F_TAGS], h, device);
	}
	if ((r = rtier(rd, f, "tier", 0, &tier)))
		return r;
	if (tier >= 0) {
		struct cw_tierev *t, *n;

		if (c->ntiers >= FS_CW_HISTORY_MAX)
			return bad(rd, "tier", "history is full");
		if ((n = realloc(c->tiers, (c->ntiers + 1) * sizeof(*n))) == NULL)
			return fs_err_set(rd->eb, FS_E_NOMEM, "out of memory");
		c->tiers = n;
		t = &c->tiers[c->ntiers];
		memset(t, 0, sizeof(*t));
		t->tier = tier;
		t->at = now;
		stamp(&t->c, h, device);
		c->ntiers++;
		if ((r = rstr(rd, f, "by", S_ID, 1, FS_CW_ID_MAX, 1, t->by, NULL)) ||
		    (r = rstr(rd, f, "why", S_TEXT, 0, FS_CW_REASON_MAX, 0, NULL, &t->why)))
			return r;
	} else if (cJSON_GetObjectItemCaseSensitive(f, "why") ||
	           cJSON_GetObjectItemCaseSensitive(f, "by")) {
		return bad(rd, "why", "is only given with a tier");
	}
	if ((j = cJSON_GetObjectItemCaseSensitive(f, "assign")) != NULL) {
		if (!cJSON_IsArray(j) || cJSON_GetArraySize(j) > FS_CW_ASSIGN_MAX)
			return bad(rd, "assign", "must be a list of assignments");
		cJSON_ArrayForEach(e, j)
		{
			struct cw_assign a = {0}, *n;
			size_t i;

			a.active = 1;
			if ((r = members(rd, e, am)) ||
			    (r = rstr(rd, e, "worker", S_ID, 1, FS_CW_ID_MAX, 1, a.worker, NULL)) ||
			    (r = rstr(rd, e, "role", S_LINE, 1, FS_CW_ID_MAX, 1, a.role, NULL)) ||
			    (r = rbool(rd, e, "active", 0, &a.active)))
				return r;
			stamp(&a.c, h, device);
			for (i = 0; i < c->nas; i++)
				if (assign_key_cmp(&c->as[i], &a) == 0)
					break;
			if (i == c->nas) {
				if (c->nas >= FS_CW_ASSIGN_MAX)
					return bad(rd, "assign", "has too many assignments");
				if ((n = realloc(c->as, (c->nas + 1) * sizeof(*n))) == NULL)
					return fs_err_set(rd->eb, FS_E_NOMEM, "out of memory");
				c->as = n;
				c->nas++;
			}
			c->as[i] = a;
		}
		qsort(c->as, c->nas, sizeof(*c->as), assign_cmp);
	}
	qsort(c->tiers, c->ntiers, sizeof(*c->tiers), tierev_cmp);
	return FS_OK;
}

static int finish(struct cw_rec *r, char **out, size_t *out_len, fs_errbuf *eb)
{
	char *p = NULL;
	size_t n = 0;
	struct cw_rec chk;
	int rc;

	/* Write, then read back: what leaves here always validates. */
	if ((rc = cw_rec_write(r, 1, &p, &n, eb)) != FS_OK)
		return rc;
	if ((rc = cw_rec_parse(p, n, &chk, eb)) != FS_OK) {
		fs_crypto_plain_free((uint8_t *)p, n);
		return rc;
	}
	cw_rec_clear(&chk);
	*out = p;
	*out_len = n;
	return FS_OK;
}

int fs_cw_case_create(const char *fields, size_t len, const char *device, int64_t now_ms,
                      char **out, size_t *out_len, fs_errbuf *eb)
{
	struct rd rd = {"case", eb};
	struct cw_rec r;
	cJSON *f = NULL;
	uint64_t h = hlc_next(0, now_ms);
	int64_t now = now_ms / 1000;
	int rc;

	*out = NULL;
	*out_len = 0;
	memset(&r, 0, sizeof(r));
	if ((rc = device_ok(device, eb)) != FS_OK || (rc = fields_parse(fields, len, &f, eb)))
		goto out;
	r.type = FS_CW_CASE;
	r.c.closed_at = -1;
	r.c.opened = now;
	r.c.risk = CW_RISK_LOW;
	if ((r.c.alias = strdup("")) == NULL || (r.c.needs_why = strdup("")) == NULL) {
		rc = fs_err_set(eb, FS_E_NOMEM, "out of memory");
		goto out;
	}
	for (int i = 0; i < CW_F_N; i++)
		stamp(&r.c.clk[i], h, device);
	rc = FS_E_CW_INVALID;
	if (!cJSON_GetObjectItemCaseSensitive(f, "name")) {
		rc = bad(&rd, "name", "is missing");
		goto out;
	}
	if (!cJSON_GetObjectItemCaseSensitive(f, "tier")) {
		rc = bad(&rd, "tier", "is missing");
		goto out;
	}
	if (cJSON_GetObjectItemCaseSensitive(f, "status")) {
		rc = bad(&rd, "status", "is open for a new case");
		goto out;
	}
	if ((rc = case_apply(&rd, f, &r.c, h, device, now)) != FS_OK)
		goto out;
	rc = finish(&r, out, out_len, eb);
out:
	cw_json_free(f);
	cw_rec_clear(&r);
	return rc;
}

int fs_cw_case_edit(const char *old, size_t old_len, const char *fields, size_t len,
                    const char *device, int64_t now_ms, char **out, size_t *out_len, fs_errbuf *eb)
{
	struct rd rd = {"case", eb};
	struct cw_rec r;
	cJSON *f = NULL;
	int rc;

	*out = NULL;
	*out_len = 0;
	memset(&r, 0, sizeof(r));
	if ((rc = device_ok(device, eb)) != FS_OK || (rc = cw_rec_parse(old, old_len, &r, eb)))
		goto out;
	if (r.type != FS_CW_CASE) {
		rc = fs_err_set(eb, FS_E_ARG, "not a case record");
		goto out;
	}
	if ((rc = fields_parse(fields, len, &f, eb)) != FS_OK ||
	    (rc = case_apply(&rd, f, &r.c, hlc_next(case_seen(&r.c), now_ms), device,
	                     now_ms / 1000)) != FS_OK)
		goto out;
	rc = finish(&r, out, out_len, eb);
out:
	cw_json_free(f);
	cw_rec_clear(&r);
	return rc;
}

static int visit_apply(struct rd *rd, const cJSON *f, struct cw_visit *v, int create)
{
	static const char *const cm[] = {"case",   "kind", "start",     "minutes",
	                                 "worker", "note", "followups", NULL};
	static const char *const em[] = {"kind", "start", "minutes", "note", "followups", NULL};
	int r;

	if ((r = members(rd, f, create ? cm : em)) != FS_OK)
		return r;
	if (create && ((r = rstr(rd, f, "case", S_ID, 1, FS_CW_ID_MAX, 1, v->case_id, NULL)) ||
	               (r = rstr(rd, f, "worker", S_ID, 1, FS_CW_ID_MAX, 1, v->au.worker, NULL))))
		return r;
	if ((r = renum(rd, f, "kind", cw_kind_names, CW_KINDS, create, &v->kind)) ||
	    (r = rtime(rd, f, "start", create, &v->start)) ||
	    (r = rnum(rd, f, "minutes", 0, FS_CW_MINUTES_MAX, 0, &v->minutes)) ||
	    (r = rfollowups(rd, f, v)))
		return r;
	if ((create || cJSON_GetObjectItemCaseSensitive(f, "note")) &&
	    (r = rstr(rd, f, "note", S_TEXT, 0, FS_CW_NOTE_MAX, 0, NULL, &v->note)))
		return r;
	return FS_OK;
}

int fs_cw_visit_create(const char *fields, size_t len, const char *device, int64_t now_ms,
                       char **out, size_t *out_len, fs_errbuf *eb)
{
	struct rd rd = {"visit", eb};
	struct cw_rec r;
	cJSON *f = NULL;
	int rc;

	*out = NULL;
	*out_len = 0;
	memset(&r, 0, sizeof(r));
	if ((rc = device_ok(device, eb)) != FS_OK || (rc = fields_parse(fields, len, &f, eb)))
		goto out;
	r.type = FS_CW_VISIT;
	snprintf(r.v.au.device, sizeof(r.v.au.device), "%s", device);
	r.v.h = hlc_next(0, now_ms);
	if ((rc = visit_apply(&rd, f, &r.v, 1)) != FS_OK)
		goto out;
	rc = finish(&r, out, out_len, eb);
out:
	cw_json_free(f);
	cw_rec_clear(&r);
	return rc;
}

static int load_visit(const char *old, size_t old_len, struct cw_rec *r, fs_errbuf *eb)
{
	int rc = cw_rec_parse(old, old_len, r, eb);

	if (rc != FS_OK)
		return rc;
	if (r->type != FS_CW_VISIT)
		return fs_err_set(eb, FS_E_ARG, "not a visit record");
	if (r->v.final)
		return fs_err_set(eb, FS_E_CW_FINAL, "the visit is finalized");
	return FS_OK;
}

int fs_cw_visit_edit(const char *old, size_t old_len, const char *fields, size_t len,
                     int64_t now_ms, char **out, size_t *out_len, fs_errbuf *eb)
{
	struct rd rd = {"visit", eb};
	struct cw_rec r;
	cJSON *f = NULL;
	int rc;

	*out = NULL;
	*out_len = 0;
	if ((rc = load_visit(old, old_len, &r, eb)) != FS_OK ||
	    (rc = fields_parse(fields, len, &f, eb)) != FS_OK ||
	    (rc = visit_apply(&rd, f, &r.v, 0)) != FS_OK)
		goto out;
	r.v.h = hlc_next(r.v.h, now_ms);
	rc = finish(&r, out, out_len, eb);
out:
	cw_json_free(f);
	cw_rec_clear(&r);
	return rc;
}

/* Signs the canonical bytes of r without "sig" and stores the signature. */
static int sign_rec(struct cw_rec *r, const fs_identity *id, const char *ctx, uint8_t *sig,
                    fs_errbuf *eb)
{
	char *msg = NULL;
	size_t n = 0;
	int rc;

	if ((rc = cw_rec_write(r, 0, &msg, &n, eb)) != FS_OK)
		return rc;
	rc = fs_crypto_sign(id, ctx, (const uint8_t *)msg, n, sig, eb);
	fs_crypto_plain_free((uint8_t *)msg, n);
	return rc;
}

int fs_cw_visit_finalize(const char *old, size_t old_len, const fs_identity *id, const char *device,
                         int64_t now_ms, char **out, size_t *out_len, fs_errbuf *eb)
{
	struct cw_rec r;
	int rc;

	*out = NULL;
	*out_len = 0;
	if ((rc = device_ok(device, eb)) != FS_OK || (rc = load_visit(old, old_len, &r, eb)))
		goto out;
	/* The signer is the author device: a visit drafted elsewhere is
	 * finalized by the device that signs it, and says so. */
	snprintf(r.v.au.device, sizeof(r.v.au.device), "%s", device);
	fs_crypto_identity_public(id, NULL, r.v.au.pk);
	r.v.au.has_pk = 1;
	r.v.final = 1;
	r.v.h = hlc_next(r.v.h, now_ms);
	if ((rc = sign_rec(&r, id, FS_CW_SIG_CONTEXT_VISIT, r.v.sig, eb)) != FS_OK)
		goto out;
	r.v.has_sig = 1;
	rc = finish(&r, out, out_len, eb);
out:
	cw_rec_clear(&r);
	return rc;
}

int fs_cw_addendum_create(const char *visit_plain, size_t visit_len, const char *visit_id,
                          const char *fields, size_t len, const fs_identity *id, const char *device,
                          int64_t now_ms, char **out, size_t *out_len, fs_errbuf *eb)
{
	static const char *const m[] = {"worker", "note", "done", NULL};
	struct rd rd = {"addendum", eb};
	struct cw_rec v, r;
	cJSON *f = NULL;
	const cJSON *j, *e;
	int rc;

	*out = NULL;
	*out_len = 0;
	memset(&r, 0, sizeof(r));
	memset(&v, 0, sizeof(v));
	if ((rc = device_ok(device, eb)) != FS_OK ||
	    (rc = cw_rec_parse(visit_plain, visit_len, &v, eb)) != FS_OK)
		goto out;
	if (v.type != FS_CW_VISIT || !v.v.final) {
		rc = fs_err_set(eb, FS_E_ARG, "an addendum belongs to a finalized visit");
		goto out;
	}
	if (visit_id == NULL || strlen(visit_id) == 0 || strlen(visit_id) > FS_CW_ID_MAX ||
	    !str_ok(visit_id, S_ID)) {
		rc = fs_err_set(eb, FS_E_ARG, "bad visit id");
		goto out;
	}
	if ((rc = fields_parse(fields, len, &f, eb)) != FS_OK || (rc = members(&rd, f, m)))
		goto out;
	r.type = FS_CW_ADDENDUM;
	snprintf(r.a.visit_id, sizeof(r.a.visit_id), "%s", visit_id);
	memcpy(r.a.case_id, v.v.case_id, sizeof(r.a.case_id));
	r.a.at = now_ms / 1000;
	snprintf(r.a.au.device, sizeof(r.a.au.device), "%s", device);
	if ((rc = rstr(&rd, f, "worker", S_ID, 1, FS_CW_ID_MAX, 1, r.a.au.worker, NULL)) ||
	    (rc = rstr(&rd, f, "note", S_TEXT, 0, FS_CW_NOTE_MAX, 0, NULL, &r.a.note)))
		goto out;
	if ((j = cJSON_GetObjectItemCaseSensitive(f, "done")) != NULL) {
		rc = bad(&rd, "done", "must list follow-ups of the visit by number");
		if (!cJSON_IsArray(j) || cJSON_GetArraySize(j) > FS_CW_FOLLOWUP_MAX)
			goto out;
		cJSON_ArrayForEach(e, j)
		{
			if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble >= v.v.nfu ||
			    e->valuedouble != (double)(int)e->valuedouble)
				goto out;
			r.a.done[r.a.ndone++] = (int)e->valuedouble;
		}
		fs_err_clear(eb);
	}
	fs_crypto_identity_public(id, NULL, r.a.au.pk);
	r.a.au.has_pk = 1;
	if ((rc = sign_rec(&r, id, FS_CW_SIG_CONTEXT_ADDENDUM, r.a.sig, eb)) != FS_OK)
		goto out;
	r.a.has_sig = 1;
	rc = finish(&r, out, out_len, eb);
out:
	cw_json_free(f);
	cw_rec_clear(&v);
	cw_rec_clear(&r);
	return rc;
}

int fs_cw_verify(const char *plain, size_t len, const uint8_t *trusted_pk, fs_errbuf *eb)
{
	struct cw_rec r;
	const uint8_t *pk, *sig;
	const char *ctx;
	char *msg = NULL;
	size_t n = 0;
	int rc;

	if ((rc = cw_rec_parse(plain, len, &r, eb)) != FS_OK)
		return rc;
	if (r.type == FS_CW_VISIT && r.v.final) {
		pk = r.v.au.pk;
		sig = r.v.sig;
		ctx = FS_CW_SIG_CONTEXT_VISIT;
	} else if (r.type == FS_CW_ADDENDUM) {
		pk = r.a.au.pk;
		sig = r.a.sig;
		ctx = FS_CW_SIG_CONTEXT_ADDENDUM;
	} else {
		rc = fs_err_set(eb, FS_E_CW_UNSIGNED, "the record carries no signature");
		goto out;
	}
	if (trusted_pk && sodium_memcmp(pk, trusted_pk, FS_CRYPTO_SIGN_PK_BYTES) != 0) {
		rc = fs_err_set(eb, FS_E_SIGNATURE,
		                "signed by a key that is not the author device's");
		goto out;
	}
	/* The signed bytes are rebuilt from the parsed record, so any change
	 * to any member, however it is spelled in JSON, changes them. */
	if ((rc = cw_rec_write(&r, 0, &msg, &n, eb)) != FS_OK)
		goto out;
	rc = fs_crypto_verify(pk, ctx, (const uint8_t *)msg, n, sig, eb);
out:
	if (msg)
		fs_crypto_plain_free((uint8_t *)msg, n);
	cw_rec_clear(&r);
	return rc;
}
