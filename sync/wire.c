/*
 * sync/wire.c: parsers of a CouchDB-protocol server's answers. Each takes the
 * bytes as received and returns plain structs, or FS_E_SYNC_MALFORMED: every
 * size, count and depth is bounded, every type checked. Sequences stay opaque
 * text; document bodies stay opaque JSON (sync never reads plaintext).
 */
#include "sync_int.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"

#define BAD(eb, ...) fs_err_set(eb, FS_E_SYNC_MALFORMED, __VA_ARGS__)

static const char answer_not_json[] = "server answer: not valid JSON";

static int parse(const char *buf, size_t len, int max_depth, cJSON **j, fs_errbuf *eb)
{
	fs_errbuf e = {0};
	int rc;

	if (max_depth <= 0)
		max_depth = FS_JSON_DEPTH_DEFAULT;
	rc = fs_json_parse(buf, len, len, max_depth, j, &e);
	if (rc == FS_E_NOMEM)
		return fs_err_set(eb, rc, NULL);
	if (rc != FS_OK)
		return BAD(eb, "server answer: %s", e.msg);
	return FS_OK;
}

/*
 * An answer whose top level is a list of results: a JSON array (array 1) or
 * object (array 0) of at most FS_SYNC_MAX_ITEMS members, what names the
 * endpoint in errors. *vec gets a zeroed vector of one elem-sized entry per
 * member (NULL for none), the caller's to free; *j is the caller's to
 * delete, even on failure.
 */
static int parse_list(const char *buf, size_t len, int max_depth, int array, const char *what,
                      size_t elem, cJSON **j, void **vec, fs_errbuf *eb)
{
	size_t cnt;
	int rc;

	*vec = NULL;
	if ((rc = parse(buf, len, max_depth, j, eb)) != FS_OK)
		return rc;
	if (array ? !cJSON_IsArray(*j) : !cJSON_IsObject(*j))
		return BAD(eb, "%s answer is not an %s", what, array ? "array" : "object");
	cnt = (size_t)cJSON_GetArraySize(*j);
	if (cnt > FS_SYNC_MAX_ITEMS)
		return BAD(eb, "%s answer with more than %d results", what, FS_SYNC_MAX_ITEMS);
	if (cnt && (*vec = calloc(cnt, elem)) == NULL)
		return fs_err_set(eb, FS_E_NOMEM, NULL);
	return FS_OK;
}

static char *dupn(const char *s, size_t n)
{
	char *d = malloc(n + 1);
	if (d) {
		memcpy(d, s, n);
		d[n] = '\0';
	}
	return d;
}

/* v, cap elements of el bytes, with room for more: first, then doubled.
 * NULL (the scan failed with FS_E_NOMEM) when memory runs out. */
static void *grow(fs_scan *s, void *v, size_t *cap, size_t el, size_t first)
{
	size_t nc = *cap ? *cap * 2 : first;
	void *t = nc > SIZE_MAX / el ? NULL : realloc(v, nc * el);

	if (t == NULL) {
		fs_scan_fail(s, FS_E_NOMEM, "out of memory");
		return NULL;
	}
	*cap = nc;
	return t;
}

/* A string member within [1, max] bytes; NULL otherwise. */
static const char *str_of(const cJSON *j, size_t max)
{
	if (!cJSON_IsString(j) || j->valuestring == NULL)
		return NULL;
	size_t n = strlen(j->valuestring);
	return n >= 1 && n <= max ? j->valuestring : NULL;
}

static const char *member_str(const cJSON *o, const char *k, size_t max)
{
	return str_of(cJSON_GetObjectItemCaseSensitive(o, k), max);
}

static int valid_rev(const char *s)
{
	unsigned long gen;
	const char *hash;
	return s && strlen(s) < FS_REV_MAX && fs_crypto_rev_parse(s, &gen, &hash) == FS_OK;
}

/* Opaque sequence: a string's content, an integer as written, anything else
 * (old servers used arrays) as its compact JSON text. */
static int seq_text(const cJSON *j, char **out, fs_errbuf *eb)
{
	char tmp[64];
	char *t = NULL;

	*out = NULL;
	if (cJSON_IsString(j)) {
		const char *s = str_of(j, FS_SYNC_SEQ_MAX);
		if (s == NULL)
			return BAD(eb, "sequence is empty or too long");
		t = dupn(s, strlen(s));
	} else if (cJSON_IsNumber(j)) {
		double d = j->valuedouble;
		if (!isfinite(d) || d < 0 || d > 9007199254740992.0 || floor(d) != d)
			return BAD(eb, "sequence number out of range");
		snprintf(tmp, sizeof(tmp), "%.0f", d);
		t = dupn(tmp, strlen(tmp));
	} else if (cJSON_IsArray(j)) {
		t = cJSON_PrintUnformatted(j);
		if (t && strlen(t) > FS_SYNC_SEQ_MAX) {
			cJSON_free(t);
			return BAD(eb, "sequence too long");
		}
		if (t) { /* move into malloc memory so callers free with free() */
			char *m = dupn(t, strlen(t));
			cJSON_free(t);
			t = m;
		}
	} else {
		return BAD(eb, "sequence of an unexpected type");
	}
	if (t == NULL)
		return fs_err_set(eb, FS_E_NOMEM, NULL);
	*out = t;
	return FS_OK;
}

static void free_strv(char **v, size_t n)
{
	if (v == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* ---- _changes ---- */

void fs_sync_changes_free(fs_sync_changes *c)
{
	if (c == NULL)
		return;
	for (size_t i = 0; i < c->n; i++) {
		free(c->v[i].id);
		free(c->v[i].seq);
		free_strv(c->v[i].revs, c->v[i].nrevs);
	}
	free(c->v);
	free(c->last_seq);
	free(c);
}

/*
 * A sequence at the cursor as opaque text (see seq_text): the scanner's
 * reading of the same rules; an array is kept as its compact text.
 */
static int scan_seq(fs_scan *s, int depth, char **out)
{
	static const char why[] = "sequence of an unexpected type";
	int c = fs_scan_peek(s);

	*out = NULL;
	if (c == '"') {
		char tmp[FS_SYNC_SEQ_MAX + 1];
		size_t n;
		if (fs_scan_string(s, tmp, sizeof(tmp), &n, "sequence is empty or too long") != 0)
			return -1;
		if (n == 0)
			return fs_scan_fail(s, FS_E_SYNC_MALFORMED,
			                    "sequence is empty or too long");
		*out = dupn(tmp, n);
	} else if (c == '-' || (c >= '0' && c <= '9')) {
		char text[64], tmp[64];
		const char *a = s->p;
		double d;
		if (fs_scan_skip_number(s) != 0)
			return -1;
		if ((size_t)(s->p - a) >= sizeof(text))
			return fs_scan_fail(s, FS_E_SYNC_MALFORMED, "sequence number out of range");
		memcpy(text, a, (size_t)(s->p - a));
		text[s->p - a] = '\0';
		d = strtod(text, NULL); /* a checked JSON number: strtod reads all of it */
		if (!isfinite(d) || d < 0 || d > 9007199254740992.0 || floor(d) != d)
			return fs_scan_fail(s, FS_E_SYNC_MALFORMED, "sequence number out of range");
		snprintf(tmp, sizeof(tmp), "%.0f", d);
		*out = dupn(tmp, strlen(tmp));
	} else if (c == '[') {
		const char *v;
		size_t n;
		int spaced;
		if (fs_scan_value(s, depth, &v, &n, &spaced) != 0)
			return -1;
		if ((*out = malloc(n + 1)) == NULL)
			return fs_scan_fail(s, FS_E_NOMEM, "out of memory");
		n = spaced ? fs_scan_compact(v, n, *out) : (memcpy(*out, v, n), n);
		(*out)[n] = '\0';
		if (n > FS_SYNC_SEQ_MAX) {
			free(*out);
			*out = NULL;
			return fs_scan_fail(s, FS_E_SYNC_MALFORMED, "sequence too long");
		}
		return 0;
	} else {
		return fs_scan_fail(s, FS_E_SYNC_MALFORMED, why);
	}
	return *out ? 0 : fs_scan_fail(s, FS_E_NOMEM, "out of memory");
}

/* One change's leaf revisions: [{"rev":..},...], 1 to FS_SYNC_MAX_REVS. */
static int scan_change_revs(fs_scan *s, fs_sync_change *ch, int depth)
{
	static const char why[] = "_changes result: invalid revision";
	size_t cap = 0;
	int more;

	if (fs_scan_array_open(s, depth, &more, "_changes result lacks id, seq or changes") != 0)
		return -1;
	if (more)
		return fs_scan_fail(s, FS_E_SYNC_MALFORMED, "_changes result without revisions");
	for (more = 1; more > 0; more = fs_scan_next(s, ']')) {
		fs_scan_key k;
		char rev[FS_REV_MAX] = "";
		int empty, m2, have = 0;
		if (ch->nrevs >= FS_SYNC_MAX_REVS)
			return fs_scan_fail(s, FS_E_SYNC_MALFORMED,
			                    "_changes result: too many revisions");
		if (fs_scan_object_open(s, depth + 1, &empty, why) != 0)
			return -1;
		for (m2 = !empty; m2 > 0; m2 = fs_scan_next(s, '}')) {
			if (fs_scan_member(s, &k) != 0)
				return -1;
			if (fs_scan_key_is(&k, "rev") && !have) {
				have = 1;
				if (fs_scan_string(s, rev, sizeof(rev), NULL, why) != 0)
					return -1;
			} else if (fs_scan_skip(s, depth + 2) != 0) {
				return -1;
			}
		}
		if (m2 < 0)
			return -1;
		if (!valid_rev(rev))
			return fs_scan_fail(s, FS_E_SYNC_MALFORMED, why);
		if (ch->nrevs == cap) { /* one leaf is the usual case */
			char **v = grow(s, ch->revs, &cap, sizeof(*v), 1);
			if (v == NULL)
				return -1;
			ch->revs = v;
		}
		if ((ch->revs[ch->nrevs] = dupn(rev, strlen(rev))) == NULL)
			return fs_scan_fail(s, FS_E_NOMEM, "out of memory");
		ch->nrevs++;
	}
	return more < 0 ? -1 : 0;
}

/* One result of _changes: {"seq":..,"id":..,"changes":[..],"deleted":bool}. */
static int scan_change(fs_scan *s, fs_sync_change *ch, int depth)
{
	static const char why[] = "_changes result lacks id, seq or changes";
	fs_scan_key k;
	int empty, more, have_id = 0, have_seq = 0, have_changes = 0, have_del = 0;

	if (fs_scan_object_open(s, depth, &empty, why) != 0)
		return -1;
	for (more = !empty; more > 0; more = fs_scan_next(s, '}')) {
		if (fs_scan_member(s, &k) != 0)
			return -1;
		if (fs_scan_key_is(&k, "id") && !have_id) {
			char id[FS_SYNC_ID_MAX + 1];
			size_t n;
			have_id = 1;
			if (fs_scan_string(s, id, sizeof(id), &n, why) != 0)
				return -1;
			if (n == 0)
				return fs_scan_fail(s, FS_E_SYNC_MALFORMED, why);
			if ((ch->id = dupn(id, n)) == NULL)
				return fs_scan_fail(s, FS_E_NOMEM, "out of memory");
		} else if (fs_scan_key_is(&k, "seq") && !have_seq) {
			have_seq = 1;
			if (scan_seq(s, depth + 1, &ch->seq) != 0)
				return -1;
		} else if (fs_scan_key_is(&k, "changes") && !have_changes) {
			have_changes = 1;
			if (scan_change_revs(s, ch, depth + 1) != 0)
				return -1;
		} else if (fs_scan_key_is(&k, "deleted") && !have_del) {
			have_del = 1;
			if (fs_scan_bool(s, &ch->deleted,
			                 "_changes result: deleted is not a boolean") != 0)
				return -1;
		} else if (fs_scan_skip(s, depth + 1) != 0) {
			return -1;
		}
	}
	if (more < 0)
		return -1;
	if (!have_id || !have_seq || !have_changes)
		return fs_scan_fail(s, FS_E_SYNC_MALFORMED, why);
	return 0;
}

/*
 * The feed is scanned without a tree (common/scan.c): a window of 2,000
 * changes made a cJSON tree of about a megabyte, the peak of a pull.
 */
int fs_sync_parse_changes(const char *buf, size_t len, int max_depth, fs_sync_changes **out,
                          fs_errbuf *eb)
{
	static const char why[] = "_changes answer without results";
	fs_sync_changes *c = NULL;
	fs_scan s;
	fs_scan_key k;
	size_t cap = 0;
	int empty, more, have_results = 0, have_last = 0, have_pending = 0, rc;

	if (out == NULL)
		return fs_err_set(eb, FS_E_ARG, "no output");
	*out = NULL;
	if (buf == NULL)
		return BAD(eb, "server answer: empty");
	if (max_depth <= 0)
		max_depth = FS_JSON_DEPTH_DEFAULT;
	(void)fs_scan_start(&s, buf, len, len, max_depth, FS_E_SYNC_MALFORMED, answer_not_json, eb);
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return fs_err_set(eb, FS_E_NOMEM, NULL);
	c->pending = -1;
	if (fs_scan_object_open(&s, 0, &empty, why) != 0)
		goto out;
	for (more = !empty; more > 0; more = fs_scan_next(&s, '}')) {
		if (fs_scan_member(&s, &k) != 0)
			goto out;
		if (fs_scan_key_is(&k, "results") && !have_results) {
			int m;
			have_results = 1;
			if (fs_scan_array_open(&s, 1, &m, why) != 0)
				goto out;
			for (m = !m; m > 0; m = fs_scan_next(&s, ']')) {
				if (c->n == FS_SYNC_MAX_ITEMS) {
					fs_scan_fail(&s, FS_E_SYNC_MALFORMED,
					             "_changes answer with too many results");
					goto out;
				}
				if (c->n == cap) {
					fs_sync_change *v = grow(&s, c->v, &cap, sizeof(*v), 64);
					if (v == NULL)
						goto out;
					c->v = v;
				}
				memset(&c->v[c->n], 0, sizeof(c->v[c->n]));
				/* counted now so that fs_sync_changes_free sees partial entries */
				if (scan_change(&s, &c->v[c->n++], 2) != 0)
					goto out;
			}
			if (m < 0)
				goto out;
		} else if (fs_scan_key_is(&k, "last_seq") && !have_last) {
			have_last = 1;
			if (fs_scan_peek(&s) == 'n') {
				if (fs_scan_literal(&s, "null", 4) != 0)
					goto out;
			} else if (scan_seq(&s, 1, &c->last_seq) != 0) {
				goto out;
			}
		} else if (fs_scan_key_is(&k, "pending") && !have_pending) {
			int ch = fs_scan_peek(&s);
			have_pending = 1;
			if (ch == '-' || (ch >= '0' && ch <= '9')) {
				char text[64];
				const char *a = s.p;
				if (fs_scan_skip_number(&s) != 0)
					goto out;
				if ((size_t)(s.p - a) < sizeof(text)) {
					double d;
					memcpy(text, a, (size_t)(s.p - a));
					text[s.p - a] = '\0';
					d = strtod(text, NULL);
					if (d >= 0 && d < 1e15)
						c->pending = (long)d;
				}
			} else if (fs_scan_skip(&s, 1) != 0) {
				goto out;
			}
		} else if (fs_scan_skip(&s, 1) != 0) {
			goto out;
		}
	}
	if (more < 0 || fs_scan_finish(&s) != 0)
		goto out;
	if (!have_results) {
		fs_scan_fail(&s, FS_E_SYNC_MALFORMED, why);
		goto out;
	}
	*out = c;
	return FS_OK;
out:
	fs_sync_changes_free(c);
	rc = s.rc != FS_OK ? s.rc : BAD(eb, "%s", answer_not_json);
	return rc;
}

/* ---- _revs_diff ---- */

void fs_sync_revs_diff_free(fs_sync_revs_diff *d)
{
	if (d == NULL)
		return;
	for (size_t i = 0; i < d->n; i++) {
		free(d->v[i].id);
		free_strv(d->v[i].revs, d->v[i].nrevs);
	}
	free(d->v);
	free(d);
}

/* An array of revision ids at the cursor (_revs_diff's "missing"), at most max. */
static int scan_rev_array(fs_scan *s, int depth, size_t max, char ***out, size_t *nout)
{
	static const char why[] = "expected an array of revisions";
	size_t cap = 0;
	int more;

	if (fs_scan_array_open(s, depth, &more, why) != 0)
		return -1;
	for (more = !more; more > 0; more = fs_scan_next(s, ']')) {
		char rev[FS_REV_MAX];
		size_t n;
		if (*nout >= max)
			return fs_scan_fail(s, FS_E_SYNC_MALFORMED, "too many revisions");
		if (fs_scan_string(s, rev, sizeof(rev), &n, "invalid revision id") != 0)
			return -1;
		if (!valid_rev(rev))
			return fs_scan_fail(s, FS_E_SYNC_MALFORMED, "invalid revision id");
		if (*nout == cap) {
			char **v = grow(s, *out, &cap, sizeof(*v), 1);
			if (v == NULL)
				return -1;
			*out = v;
		}
		if (((*out)[*nout] = dupn(rev, n)) == NULL)
			return fs_scan_fail(s, FS_E_NOMEM, "out of memory");
		(*nout)++;
	}
	return more < 0 ? -1 : 0;
}

/* The answer of a push batch's _revs_diff, scanned without a tree like _bulk_get's. */
int fs_sync_parse_revs_diff(const char *buf, size_t len, int max_depth, fs_sync_revs_diff **out,
                            fs_errbuf *eb)
{
	static const char why[] = "_revs_diff answer is not an object";
	fs_sync_revs_diff *d;
	fs_scan s;
	size_t cap = 0;
	int empty, more, rc;

	if (out == NULL)
		return fs_err_set(eb, FS_E_ARG, "no output");
	*out = NULL;
	if (buf == NULL)
		return BAD(eb, "server answer: empty");
	if (max_depth <= 0)
		max_depth = FS_JSON_DEPTH_DEFAULT;
	(void)fs_scan_start(&s, buf, len, len, max_depth, FS_E_SYNC_MALFORMED, answer_not_json, eb);
	if ((d = calloc(1, sizeof(*d))) == NULL)
		return fs_err_set(eb, FS_E_NOMEM, NULL);
	if (fs_scan_object_open(&s, 0, &empty, why) != 0)
		goto out;
	for (more = !empty; more > 0; more = fs_scan_next(&s, '}')) {
		char id[FS_SYNC_ID_MAX + 1];
		fs_sync_missing *m;
		fs_scan_key k;
		size_t n;
		int e2, have_missing = 0;
		if (d->n == FS_SYNC_MAX_ITEMS) {
			fs_scan_fail(&s, FS_E_SYNC_MALFORMED,
			             "_revs_diff answer with too many results");
			goto out;
		}
		if (fs_scan_string(&s, id, sizeof(id), &n, "_revs_diff entry is invalid") != 0 ||
		    fs_scan_take(&s, ':') != 0)
			goto out;
		if (n == 0) {
			fs_scan_fail(&s, FS_E_SYNC_MALFORMED, "_revs_diff entry is invalid");
			goto out;
		}
		if (d->n == cap) {
			fs_sync_missing *v = grow(&s, d->v, &cap, sizeof(*v), 64);
			if (v == NULL)
				goto out;
			d->v = v;
		}
		m = &d->v[d->n++]; /* counted now so that the free sees partial entries */
		memset(m, 0, sizeof(*m));
		if ((m->id = dupn(id, n)) == NULL) {
			fs_scan_fail(&s, FS_E_NOMEM, "out of memory");
			goto out;
		}
		if (fs_scan_object_open(&s, 1, &e2, "_revs_diff entry is invalid") != 0)
			goto out;
		for (e2 = !e2; e2 > 0; e2 = fs_scan_next(&s, '}')) {
			if (fs_scan_member(&s, &k) != 0)
				goto out;
			if (fs_scan_key_is(&k, "missing") && !have_missing) {
				have_missing = 1;
				if (scan_rev_array(&s, 2, FS_SYNC_MAX_REVS, &m->revs, &m->nrevs) !=
				    0)
					goto out;
			} else if (fs_scan_skip(&s, 2) != 0) {
				goto out;
			}
		}
		if (e2 < 0)
			goto out;
		if (!have_missing) {
			fs_scan_fail(&s, FS_E_SYNC_MALFORMED, "expected an array of revisions");
			goto out;
		}
	}
	if (more < 0 || fs_scan_finish(&s) != 0)
		goto out;
	*out = d;
	return FS_OK;
out:
	fs_sync_revs_diff_free(d);
	rc = s.rc != FS_OK ? s.rc : BAD(eb, "%s", answer_not_json);
	return rc;
}

/* ---- _bulk_docs ---- */

enum fs_sync_doc_class fs_sync_doc_error_class(const char *error)
{
	/* Refusals that sending again cannot change: the server's rules or the
	 * document itself. Everything else (conflict, internal errors, names we
	 * do not know) is worth another try after backoff. */
	static const char *const refused[] = {
	    "forbidden", "unauthorized",       "bad_request", "doc_validation", "illegal_docid",
	    "invalid",   "document_too_large", "too_large",   "invalid_rev",    "bad_content_type",
	};
	if (error == NULL)
		return FS_SYNC_DOC_OK;
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
		if (strcmp(error, refused[i]) == 0)
			return FS_SYNC_DOC_REFUSED;
	return FS_SYNC_DOC_RETRY;
}

void fs_sync_bulk_result_free(fs_sync_bulk_result *b)
{
	if (b == NULL)
		return;
	for (size_t i = 0; i < b->n; i++) {
		free(b->v[i].id);
		free(b->v[i].rev);
		free(b->v[i].error);
		free(b->v[i].reason);
	}
	free(b->v);
	free(b);
}

#define REASON_MAX 512 /* the server's words are cut to this */

int fs_sync_parse_bulk_docs(const char *buf, size_t len, int max_depth, fs_sync_bulk_result **out,
                            fs_errbuf *eb)
{
	fs_sync_bulk_result *b;
	cJSON *j = NULL;
	const cJSON *e;
	void *v;
	int rc;

	if (out == NULL)
		return fs_err_set(eb, FS_E_ARG, "no output");
	*out = NULL;
	if ((b = calloc(1, sizeof(*b))) == NULL)
		return fs_err_set(eb, FS_E_NOMEM, NULL);
	rc = parse_list(buf, len, max_depth, 1, "_bulk_docs", sizeof(*b->v), &j, &v, eb);
	b->v = v;
	if (rc != FS_OK)
		goto out;
	cJSON_ArrayForEach(e, j)
	{
		fs_sync_doc_result *d = &b->v[b->n];
		const char *id = member_str(e, "id", FS_SYNC_ID_MAX);
		const char *rev = member_str(e, "rev", FS_REV_MAX - 1);
		const char *err = member_str(e, "error", REASON_MAX);
		const cJSON *reason = cJSON_GetObjectItemCaseSensitive(e, "reason");

		if (!cJSON_IsObject(e) || id == NULL || (rev && !valid_rev(rev))) {
			rc = BAD(eb, "_bulk_docs result %zu lacks a valid id or rev", b->n);
			goto out;
		}
		if (err == NULL && !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "ok"))) {
			rc = BAD(eb, "_bulk_docs result %zu is neither ok nor an error", b->n);
			goto out;
		}
		b->n++;
		if ((d->id = dupn(id, strlen(id))) == NULL ||
		    (rev && !(d->rev = dupn(rev, strlen(rev)))) ||
		    (err && !(d->error = dupn(err, strlen(err)))))
			goto nomem;
		if (cJSON_IsString(reason) && reason->valuestring) {
			size_t n = strlen(reason->valuestring);
			if ((d->reason = dupn(reason->valuestring,
			                      n > REASON_MAX ? REASON_MAX : n)) == NULL)
				goto nomem;
		}
		d->cls = fs_sync_doc_error_class(d->error);
	}
	*out = b;
	b = NULL;
	rc = FS_OK;
	goto out;
nomem:
	rc = fs_err_set(eb, FS_E_NOMEM, NULL);
out:
	fs_sync_bulk_result_free(b);
	cJSON_Delete(j);
	return rc;
}

/* ---- fetched revisions: _bulk_get and open_revs, scanned without a tree ---- */

/*
 * These answers carry every pulled body: a quarter of the client's time
 * on a pull went to cJSON building a node per value and printing each
 * body again. The scanner (common/scan.c) reads the text once; a body is
 * the document's members not starting with '_' as they came, whitespace
 * between tokens dropped (so escapes and numbers stay as the server sent
 * them). The rules are those of a tree: the first of a repeated special
 * member counts, and every value is checked.
 */

#define HASH_CAP (FS_REV_MAX - 21) /* a revision hash's bytes with the NUL, as crypto/ allows */

static void rev_clear(fs_sync_rev *r)
{
	free(r->id);
	free(r->rev);
	free_strv(r->history, r->nhistory);
	free(r->body);
}

void fs_sync_revs_free(fs_sync_revs *r)
{
	if (r == NULL)
		return;
	for (size_t i = 0; i < r->n; i++)
		rev_clear(&r->v[i]);
	for (size_t i = 0; i < r->nerr; i++) {
		free(r->err[i].id);
		free(r->err[i].rev);
		free(r->err[i].error);
	}
	free(r->v);
	free(r->err);
	free(r);
}

/* A parse of fetched revisions: the scanner, what it found, a body's scratch. */
struct fetch {
	fs_scan s;
	fs_sync_revs *rs;
	size_t vcap, ecap, max;
	char *scratch;
	size_t slen, scap;
};

static int nomem(fs_scan *s)
{
	return fs_scan_fail(s, FS_E_NOMEM, "out of memory");
}

static int malformed(fs_scan *s, const char *why)
{
	return fs_scan_fail(s, FS_E_SYNC_MALFORMED, why);
}

static int scratch_add(struct fetch *f, const char *p, size_t n)
{
	if (f->slen + n + 1 > f->scap) {
		size_t cap = f->scap ? f->scap : 4096;
		char *q;
		while (cap < f->slen + n + 1)
			cap *= 2;
		if ((q = realloc(f->scratch, cap)) == NULL)
			return nomem(&f->s);
		f->scratch = q;
		f->scap = cap;
	}
	memcpy(f->scratch + f->slen, p, n);
	f->slen += n;
	return 0;
}

/* One more entry in the answer, within its bound. */
static int count_one(struct fetch *f)
{
	if (f->rs->n + f->rs->nerr >= f->max)
		return malformed(&f->s, "fetched answer with too many revisions");
	return 0;
}

static int add_err(struct fetch *f, const char *id, const char *rev, const char *err)
{
	fs_sync_rev_error *e;
	if (count_one(f) != 0)
		return -1;
	if (f->rs->nerr == f->ecap) {
		size_t cap = f->ecap ? f->ecap * 2 : 16;
		fs_sync_rev_error *v = realloc(f->rs->err, cap * sizeof(*v));
		if (v == NULL)
			return nomem(&f->s);
		f->rs->err = v;
		f->ecap = cap;
	}
	e = &f->rs->err[f->rs->nerr++];
	memset(e, 0, sizeof(*e));
	if ((id && !(e->id = dupn(id, strlen(id)))) ||
	    (rev && !(e->rev = dupn(rev, strlen(rev)))) || !(e->error = dupn(err, strlen(err))))
		return nomem(&f->s);
	return 0;
}

/* _revisions as read: the start's text and the ids, checked against _rev at the end. */
struct revisions {
	int seen;
	char start[32]; /* "" when absent or not a plain number */
	char **ids;
	size_t n;
};

static void revisions_clear(struct revisions *x)
{
	free_strv(x->ids, x->n);
	memset(x, 0, sizeof(*x));
}

static int scan_revisions(struct fetch *f, struct revisions *x, int depth)
{
	const char *a;
	size_t len;

	x->seen = 1;
	if (fs_scan_revisions(&f->s, depth, FS_SYNC_MAX_REVS, HASH_CAP,
	                      "_revisions does not match _rev", &a, &len, &x->ids, &x->n) != 0)
		return -1;
	if (len < sizeof(x->start)) { /* longer: no start, refused with the history */
		memcpy(x->start, a, len);
		x->start[len] = '\0';
	}
	return 0;
}

/* _revisions {start, ids} into full ids newest first, checked against rev. */
static int history_of(struct fetch *f, const struct revisions *x, const char *rev, fs_sync_rev *out)
{
	unsigned long gen;
	const char *hash;
	char tmp[FS_REV_MAX];

	if (fs_crypto_rev_parse(rev, &gen, &hash) != FS_OK)
		return malformed(&f->s, "invalid revision id");
	if (!x->seen) {
		if ((out->history = calloc(1, sizeof(char *))) == NULL ||
		    (out->history[0] = dupn(rev, strlen(rev))) == NULL)
			return nomem(&f->s);
		out->nhistory = 1;
		return 0;
	}
	if (x->start[0] == '\0' || strtod(x->start, NULL) != (double)gen)
		return malformed(&f->s, "_revisions does not match _rev");
	if (x->n == 0 || x->n > gen)
		return malformed(&f->s, "_revisions with more ids than generations");
	if ((out->history = calloc(x->n, sizeof(char *))) == NULL)
		return nomem(&f->s);
	for (size_t k = 0; k < x->n; k++) {
		int w;
		if (k == 0 && strcmp(x->ids[0], hash) != 0)
			return malformed(&f->s, "_revisions ids do not match _rev");
		w = snprintf(tmp, sizeof(tmp), "%lu-%s", gen - k, x->ids[k]);
		if (w < 0 || (size_t)w >= sizeof(tmp) || !valid_rev(tmp))
			return malformed(&f->s, "invalid revision in _revisions");
		if ((out->history[k] = dupn(tmp, (size_t)w)) == NULL)
			return nomem(&f->s);
		out->nhistory = k + 1;
	}
	return 0;
}

/*
 * A fetched document (the "ok" of an entry) at the cursor: its _id (which
 * must be want_id when given), _rev, _deleted and _revisions, and its
 * other members as the body, appended to the answer's revisions.
 */
static int scan_doc(struct fetch *f, const char *want_id, int depth)
{
	static const char no_id[] = "fetched document lacks a valid _id or _rev";
	fs_scan *s = &f->s;
	fs_scan_key k;
	struct revisions x = {0};
	char id[FS_SYNC_ID_MAX + 1], rev[FS_REV_MAX];
	int empty, more, have_id = 0, have_rev = 0, have_del = 0, deleted = 0, first = 1, r = -1;
	fs_sync_rev *out;

	f->slen = 0;
	if (fs_scan_object_open(s, depth, &empty, no_id) != 0 || scratch_add(f, "{", 1) != 0)
		return -1;
	for (more = !empty; more > 0; more = fs_scan_next(s, '}')) {
		if (fs_scan_member(s, &k) != 0)
			goto out;
		if (k.name[0] != '_') {
			const char *v;
			size_t n;
			int spaced;
			if ((!first && scratch_add(f, ",", 1) != 0) ||
			    scratch_add(f, k.raw, (size_t)(k.raw_end - k.raw)) != 0 ||
			    scratch_add(f, ":", 1) != 0 ||
			    fs_scan_value(s, depth + 1, &v, &n, &spaced) != 0)
				goto out;
			first = 0;
			if (!spaced) {
				if (scratch_add(f, v, n) != 0)
					goto out;
			} else {
				if (scratch_add(f, v, n) != 0) /* room; compacting only shrinks */
					goto out;
				f->slen -= n;
				f->slen += fs_scan_compact(v, n, f->scratch + f->slen);
			}
		} else if (fs_scan_key_is(&k, "_id") && !have_id) {
			size_t n;
			have_id = 1;
			if (fs_scan_string(s, id, sizeof(id), &n, no_id) != 0)
				goto out;
			if (n == 0) {
				malformed(s, no_id);
				goto out;
			}
		} else if (fs_scan_key_is(&k, "_rev") && !have_rev) {
			have_rev = 1;
			if (fs_scan_string(s, rev, sizeof(rev), NULL, no_id) != 0)
				goto out;
			if (!valid_rev(rev)) {
				malformed(s, no_id);
				goto out;
			}
		} else if (fs_scan_key_is(&k, "_deleted") && !have_del) {
			have_del = 1;
			if (fs_scan_bool(s, &deleted, "_deleted is not a boolean") != 0)
				goto out;
		} else if (fs_scan_key_is(&k, "_revisions") && !x.seen) {
			if (scan_revisions(f, &x, depth + 1) != 0)
				goto out;
		} else if (fs_scan_skip(s, depth + 1) != 0) {
			goto out;
		}
	}
	if (more < 0 || scratch_add(f, "}", 1) != 0)
		goto out;
	if (!have_id || !have_rev) {
		malformed(s, no_id);
		goto out;
	}
	if (want_id && strcmp(id, want_id) != 0) {
		malformed(s, "fetched document has another _id than asked for");
		goto out;
	}
	if (count_one(f) != 0)
		goto out;
	if (f->rs->n == f->vcap) {
		size_t cap = f->vcap ? f->vcap * 2 : 16;
		fs_sync_rev *v = realloc(f->rs->v, cap * sizeof(*v));
		if (v == NULL) {
			nomem(s);
			goto out;
		}
		f->rs->v = v;
		f->vcap = cap;
	}
	out = &f->rs->v[f->rs->n++];
	memset(out, 0, sizeof(*out));
	out->deleted = deleted;
	if ((out->id = dupn(id, strlen(id))) == NULL ||
	    (out->rev = dupn(rev, strlen(rev))) == NULL ||
	    (out->body = dupn(f->scratch, f->slen)) == NULL) {
		nomem(s);
		goto out;
	}
	out->body_len = f->slen;
	r = history_of(f, &x, rev, out);
out:
	revisions_clear(&x);
	return r;
}

/* The spans of an entry's members, to read once the entry's kind is known. */
struct span {
	const char *p, *end;
	int depth;
};

/* A sub-scanner over a span already checked by the main one. */
static void sub_scan(struct fetch *f, struct fetch *sub, const struct span *sp)
{
	*sub = *f;
	sub->s.p = sp->p;
	sub->s.end = sp->end;
}

/* After a sub-scan: what it found and its error go back to the main parse. */
static int sub_done(struct fetch *f, struct fetch *sub, int r)
{
	f->s.rc = sub->s.rc;
	f->vcap = sub->vcap;
	f->ecap = sub->ecap;
	f->scratch = sub->scratch;
	f->slen = sub->slen;
	f->scap = sub->scap;
	return r;
}

static int scan_missing(struct fetch *f, const char *id)
{
	char rev[FS_REV_MAX];
	if (fs_scan_string(&f->s, rev, sizeof(rev), NULL, "invalid revision in a missing entry") !=
	    0)
		return -1;
	if (!valid_rev(rev))
		return malformed(&f->s, "invalid revision in a missing entry");
	return add_err(f, id, rev, "missing");
}

/* {"id":..,"rev":..,"error":..}: whoever is named, and why. */
static int scan_error(struct fetch *f, const char *id, int depth)
{
	fs_scan *s = &f->s;
	fs_scan_key k;
	char eid[FS_SYNC_ID_MAX + 1] = "", rev[FS_REV_MAX] = "", what[REASON_MAX + 1] = "";
	int empty, more, have_id = 0, have_rev = 0, have_what = 0;

	if (fs_scan_object_open(s, depth, &empty,
	                        "fetched entry is neither ok, missing nor error") != 0)
		return -1;
	for (more = !empty; more > 0; more = fs_scan_next(s, '}')) {
		const char *save;
		fs_scan probe;
		if (fs_scan_member(s, &k) != 0)
			return -1;
		/* A member of another type or size counts as absent, as a tree's would:
		 * it is read by a probe that reports nothing, then checked as any value. */
		save = s->p;
		probe = *s;
		probe.eb = NULL;
		if (fs_scan_key_is(&k, "id") && !have_id) {
			have_id = 1;
			if (fs_scan_string(&probe, eid, sizeof(eid), NULL, "") != 0)
				eid[0] = '\0';
		} else if (fs_scan_key_is(&k, "rev") && !have_rev) {
			have_rev = 1;
			if (fs_scan_string(&probe, rev, sizeof(rev), NULL, "") != 0 ||
			    !valid_rev(rev))
				rev[0] = '\0'; /* CouchDB says "undefined" when it has no rev */
		} else if (fs_scan_key_is(&k, "error") && !have_what) {
			have_what = 1;
			if (fs_scan_string(&probe, what, sizeof(what), NULL, "") != 0)
				what[0] = '\0';
		}
		s->p = save;
		if (fs_scan_skip(s, depth + 1) != 0)
			return -1;
	}
	if (more < 0)
		return -1;
	return add_err(f, eid[0] ? eid : id, rev[0] ? rev : NULL, what[0] ? what : "error");
}

/* One entry of an open_revs or _bulk_get docs array: {"ok":doc}|{"missing":rev}|{"error":{..}}. */
static int scan_entry(struct fetch *f, const char *id, int depth)
{
	static const char why[] = "fetched entry is neither ok, missing nor error";
	fs_scan *s = &f->s;
	fs_scan_key k;
	struct span miss = {0}, err = {0};
	struct fetch sub;
	int empty, more, have_ok = 0, have_miss = 0, have_err = 0, seen_err = 0, took_ok = 0;

	if (fs_scan_object_open(s, depth, &empty, why) != 0)
		return -1;
	for (more = !empty; more > 0; more = fs_scan_next(s, '}')) {
		if (fs_scan_member(s, &k) != 0)
			return -1;
		if (fs_scan_key_is(&k, "ok") && !have_ok) {
			have_ok = 1;
			if (fs_scan_peek(s) == '{') { /* a document: it wins over the others */
				if (scan_doc(f, id, depth + 1) != 0)
					return -1;
				took_ok = 1;
				continue;
			}
		} else if (fs_scan_key_is(&k, "missing") && !have_miss) {
			have_miss = 1;
			(void)fs_scan_peek(s);
			miss = (struct span){s->p, NULL, depth + 1};
		} else if (fs_scan_key_is(&k, "error") && !seen_err) {
			seen_err = 1; /* the first counts, and only as an object */
			have_err = fs_scan_peek(s) == '{';
			err = (struct span){s->p, NULL, depth + 1};
		}
		if (fs_scan_skip(s, depth + 1) != 0)
			return -1;
		if (miss.p && miss.end == NULL)
			miss.end = s->p;
		if (err.p && err.end == NULL)
			err.end = s->p;
	}
	if (more < 0)
		return -1;
	if (took_ok)
		return 0;
	if (have_miss) {
		sub_scan(f, &sub, &miss);
		return sub_done(f, &sub, scan_missing(&sub, id));
	}
	if (have_err) {
		sub_scan(f, &sub, &err);
		return sub_done(f, &sub, scan_error(&sub, id, err.depth));
	}
	return malformed(s, why);
}

/* The docs array of entries at the cursor, for document id. */
static int scan_entries(struct fetch *f, const char *id, int depth)
{
	int more;
	if (fs_scan_array_open(&f->s, depth, &more, "_bulk_get result without docs") != 0)
		return -1;
	for (more = !more; more > 0; more = fs_scan_next(&f->s, ']'))
		if (scan_entry(f, id, depth + 1) != 0)
			return -1;
	return more < 0 ? -1 : 0;
}

/* One result of _bulk_get: {"id":..,"docs":[..]}; docs before id are read after it. */
static int scan_result(struct fetch *f, int depth)
{
	static const char why[] = "_bulk_get result without docs";
	fs_scan *s = &f->s;
	fs_scan_key k;
	char id[FS_SYNC_ID_MAX + 1];
	struct span docs = {0};
	struct fetch sub;
	int empty, more, have_id = 0, have_docs = 0;

	if (fs_scan_object_open(s, depth, &empty, why) != 0)
		return -1;
	for (more = !empty; more > 0; more = fs_scan_next(s, '}')) {
		if (fs_scan_member(s, &k) != 0)
			return -1;
		if (fs_scan_key_is(&k, "id") && !have_id) {
			size_t n;
			have_id = 1;
			if (fs_scan_string(s, id, sizeof(id), &n, "_bulk_get result without id") !=
			    0)
				return -1;
			if (n == 0)
				return malformed(s, "_bulk_get result without id");
		} else if (fs_scan_key_is(&k, "docs") && !have_docs) {
			have_docs = 1;
			if (fs_scan_peek(s) != '[')
				return malformed(s, why);
			if (have_id) {
				if (scan_entries(f, id, depth + 1) != 0)
					return -1;
				continue;
			}
			docs.p = s->p;
			if (fs_scan_skip(s, depth + 1) != 0)
				return -1;
			docs.end = s->p;
		} else if (fs_scan_skip(s, depth + 1) != 0) {
			return -1;
		}
	}
	if (more < 0)
		return -1;
	if (!have_docs)
		return malformed(s, why);
	if (!have_id)
		return malformed(s, "_bulk_get result without id");
	if (docs.p == NULL)
		return 0;
	sub_scan(f, &sub, &docs);
	return sub_done(f, &sub, scan_entries(&sub, id, depth + 1));
}

static int fetch_start(struct fetch *f, const char *buf, size_t len, int max_depth, size_t max,
                       fs_errbuf *eb)
{
	memset(f, 0, sizeof(*f));
	f->max = max;
	if (max_depth <= 0)
		max_depth = FS_JSON_DEPTH_DEFAULT;
	if (buf == NULL)
		return BAD(eb, "server answer: empty");
	(void)fs_scan_start(&f->s, buf, len, len, max_depth, FS_E_SYNC_MALFORMED, answer_not_json,
	                    eb);
	if ((f->rs = calloc(1, sizeof(*f->rs))) == NULL)
		return fs_err_set(eb, FS_E_NOMEM, NULL);
	return FS_OK;
}

/* The parse's result: *out on success, else everything freed and the first error. */
static int fetch_end(struct fetch *f, int r, fs_sync_revs **out)
{
	free(f->scratch);
	if (r == 0 && fs_scan_finish(&f->s) == 0) {
		*out = f->rs;
		return FS_OK;
	}
	fs_sync_revs_free(f->rs);
	return f->s.rc != FS_OK ? f->s.rc : BAD(f->s.eb, "%s", answer_not_json);
}

int fs_sync_parse_bulk_get(const char *buf, size_t len, int max_depth, fs_sync_revs **out,
                           fs_errbuf *eb)
{
	static const char why[] = "_bulk_get answer without results";
	struct fetch f;
	fs_scan_key k;
	int empty, more, have_results = 0, r = -1, rc;

	if (out == NULL)
		return fs_err_set(eb, FS_E_ARG, "no output");
	*out = NULL;
	if ((rc = fetch_start(&f, buf, len, max_depth, FS_SYNC_MAX_ITEMS, eb)) != FS_OK)
		return rc;
	if (fs_scan_object_open(&f.s, 0, &empty, why) != 0)
		goto out;
	for (more = !empty; more > 0; more = fs_scan_next(&f.s, '}')) {
		if (fs_scan_member(&f.s, &k) != 0)
			goto out;
		if (fs_scan_key_is(&k, "results") && !have_results) {
			int m;
			have_results = 1;
			if (fs_scan_array_open(&f.s, 1, &m, why) != 0)
				goto out;
			for (m = !m; m > 0; m = fs_scan_next(&f.s, ']'))
				if (scan_result(&f, 2) != 0)
					goto out;
			if (m < 0)
				goto out;
		} else if (fs_scan_skip(&f.s, 1) != 0) {
			goto out;
		}
	}
	if (more < 0)
		goto out;
	if (!have_results) {
		malformed(&f.s, why);
		goto out;
	}
	r = 0;
out:
	return fetch_end(&f, r, out);
}

int fs_sync_parse_open_revs(const char *buf, size_t len, int max_depth, const char *id,
                            fs_sync_revs **out, fs_errbuf *eb)
{
	struct fetch f;
	int more, r = -1, rc;

	if (out == NULL || id == NULL)
		return fs_err_set(eb, FS_E_ARG, "no output or id");
	*out = NULL;
	if ((rc = fetch_start(&f, buf, len, max_depth, FS_SYNC_MAX_REVS, eb)) != FS_OK)
		return rc;
	if (fs_scan_array_open(&f.s, 0, &more, "open_revs answer is not an array") != 0)
		goto out;
	for (more = !more; more > 0; more = fs_scan_next(&f.s, ']'))
		if (scan_entry(&f, id, 1) != 0)
			goto out;
	r = more < 0 ? -1 : 0;
out:
	return fetch_end(&f, r, out);
}

/* ---- server and database info ---- */

void fs_sync_server_info_free(fs_sync_server_info *s)
{
	if (s == NULL)
		return;
	free(s->vendor);
	free(s->version);
	free(s);
}

#define NAME_MAX_LEN 256

int fs_sync_parse_server_info(const char *buf, size_t len, int max_depth, fs_sync_server_info **out,
                              fs_errbuf *eb)
{
	cJSON *j = NULL;
	fs_sync_server_info *s = NULL;
	const char *vendor, *version;
	int rc;

	if (out == NULL)
		return fs_err_set(eb, FS_E_ARG, "no output");
	*out = NULL;
	if ((rc = parse(buf, len, max_depth, &j, eb)) != FS_OK)
		return rc;
	if (!cJSON_IsObject(j)) {
		rc = BAD(eb, "server root answer is not an object");
		goto out;
	}
	vendor = member_str(cJSON_GetObjectItemCaseSensitive(j, "vendor"), "name", NAME_MAX_LEN);
	if (vendor == NULL && cJSON_GetObjectItemCaseSensitive(j, "couchdb"))
		vendor = "CouchDB";
	version = member_str(j, "version", NAME_MAX_LEN);
	rc = fs_err_set(eb, FS_E_NOMEM, NULL);
	if ((s = calloc(1, sizeof(*s))) == NULL ||
	    (vendor && !(s->vendor = dupn(vendor, strlen(vendor)))) ||
	    (version && !(s->version = dupn(version, strlen(version)))))
		goto out;
	fs_err_clear(eb);
	*out = s;
	s = NULL;
	rc = FS_OK;
out:
	fs_sync_server_info_free(s);
	cJSON_Delete(j);
	return rc;
}

void fs_sync_db_info_free(fs_sync_db_info *d)
{
	if (d == NULL)
		return;
	free(d->db_name);
	free(d->update_seq);
	free(d);
}

int fs_sync_parse_db_info(const char *buf, size_t len, int max_depth, fs_sync_db_info **out,
                          fs_errbuf *eb)
{
	cJSON *j = NULL;
	fs_sync_db_info *d = NULL;
	const cJSON *x;
	const char *name;
	int rc;

	if (out == NULL)
		return fs_err_set(eb, FS_E_ARG, "no output");
	*out = NULL;
	if ((rc = parse(buf, len, max_depth, &j, eb)) != FS_OK)
		return rc;
	name = member_str(j, "db_name", NAME_MAX_LEN);
	if (!cJSON_IsObject(j) || name == NULL) {
		rc = BAD(eb, "database info without db_name");
		goto out;
	}
	rc = fs_err_set(eb, FS_E_NOMEM, NULL);
	if ((d = calloc(1, sizeof(*d))) == NULL || (d->db_name = dupn(name, strlen(name))) == NULL)
		goto out;
	d->doc_count = -1;
	x = cJSON_GetObjectItemCaseSensitive(j, "update_seq");
	if (x && (rc = seq_text(x, &d->update_seq, eb)) != FS_OK)
		goto out;
	x = cJSON_GetObjectItemCaseSensitive(j, "doc_count");
	if (cJSON_IsNumber(x) && x->valuedouble >= 0 && x->valuedouble < 9e15)
		d->doc_count = (long long)x->valuedouble;
	fs_err_clear(eb);
	*out = d;
	d = NULL;
	rc = FS_OK;
out:
	fs_sync_db_info_free(d);
	cJSON_Delete(j);
	return rc;
}
