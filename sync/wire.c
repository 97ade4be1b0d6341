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

/* A JSON array of revision ids, e.g. _revs_diff's "missing". */
static int rev_array(const cJSON *a, size_t max, char ***out, size_t *nout, fs_errbuf *eb)
{
	char **v = NULL;
	size_t n = 0, cnt;
	const cJSON *e;
	int rc;

	*out = NULL;
	*nout = 0;
	if (!cJSON_IsArray(a))
		return BAD(eb, "expected an array of revisions");
	cnt = (size_t)cJSON_GetArraySize(a);
	if (cnt > max)
		return BAD(eb, "more than %zu revisions", max);
	if (cnt && (v = calloc(cnt, sizeof(*v))) == NULL)
		return fs_err_set(eb, FS_E_NOMEM, NULL);
	cJSON_ArrayForEach(e, a)
	{
		const char *s = str_of(e, FS_REV_MAX - 1);
		if (!valid_rev(s)) {
			rc = BAD(eb, "invalid revision id");
			goto fail;
		}
		if ((v[n] = dupn(s, strlen(s))) == NULL) {
			rc = fs_err_set(eb, FS_E_NOMEM, NULL);
			goto fail;
		}
		n++;
	}
	*out = v;
	*nout = n;
	return FS_OK;
fail:
	free_strv(v, n);
	return rc;
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

int fs_sync_parse_changes(const char *buf, size_t len, int max_depth, fs_sync_changes **out,
                          fs_errbuf *eb)
{
	cJSON *j = NULL;
	fs_sync_changes *c = NULL;
	const cJSON *res, *e, *x;
	size_t cnt;
	int rc;

	if (out == NULL)
		return fs_err_set(eb, FS_E_ARG, "no output");
	*out = NULL;
	if ((rc = parse(buf, len, max_depth, &j, eb)) != FS_OK)
		return rc;
	rc = fs_err_set(eb, FS_E_NOMEM, NULL);
	if ((c = calloc(1, sizeof(*c))) == NULL)
		goto out;
	c->pending = -1;
	res = cJSON_GetObjectItemCaseSensitive(j, "results");
	if (!cJSON_IsObject(j) || !cJSON_IsArray(res)) {
		rc = BAD(eb, "_changes answer without results");
		goto out;
	}
	cnt = (size_t)cJSON_GetArraySize(res);
	if (cnt > FS_SYNC_MAX_ITEMS) {
		rc = BAD(eb, "_changes answer with more than %d results", FS_SYNC_MAX_ITEMS);
		goto out;
	}
	if (cnt && (c->v = calloc(cnt, sizeof(*c->v))) == NULL)
		goto out;
	cJSON_ArrayForEach(e, res)
	{
		fs_sync_change *ch = &c->v[c->n];
		const char *id = member_str(e, "id", FS_SYNC_ID_MAX);
		const cJSON *chs = cJSON_GetObjectItemCaseSensitive(e, "changes");
		const cJSON *seq = cJSON_GetObjectItemCaseSensitive(e, "seq");
		size_t k = 0, nch;

		if (!cJSON_IsObject(e) || id == NULL || !cJSON_IsArray(chs) || seq == NULL) {
			rc = BAD(eb, "_changes result %zu lacks id, seq or changes", c->n);
			goto out;
		}
		c->n++; /* counted now so that fs_sync_changes_free sees partial entries */
		if ((ch->id = dupn(id, strlen(id))) == NULL)
			goto nomem;
		if ((rc = seq_text(seq, &ch->seq, eb)) != FS_OK)
			goto out;
		x = cJSON_GetObjectItemCaseSensitive(e, "deleted");
		if (x && !cJSON_IsBool(x)) {
			rc = BAD(eb, "_changes result %zu: deleted is not a boolean", c->n - 1);
			goto out;
		}
		ch->deleted = cJSON_IsTrue(x);
		nch = (size_t)cJSON_GetArraySize(chs);
		if (nch == 0 || nch > FS_SYNC_MAX_REVS) {
			rc = BAD(eb, "_changes result %zu: %zu leaf revisions", c->n - 1, nch);
			goto out;
		}
		if ((ch->revs = calloc(nch, sizeof(char *))) == NULL)
			goto nomem;
		cJSON_ArrayForEach(x, chs)
		{
			const char *rev = member_str(x, "rev", FS_REV_MAX - 1);
			if (!valid_rev(rev)) {
				rc = BAD(eb, "_changes result %zu: invalid revision", c->n - 1);
				goto out;
			}
			if ((ch->revs[k] = dupn(rev, strlen(rev))) == NULL)
				goto nomem;
			ch->nrevs = ++k;
		}
	}
	x = cJSON_GetObjectItemCaseSensitive(j, "last_seq");
	if (x && !cJSON_IsNull(x) && (rc = seq_text(x, &c->last_seq, eb)) != FS_OK)
		goto out;
	x = cJSON_GetObjectItemCaseSensitive(j, "pending");
	if (cJSON_IsNumber(x) && x->valuedouble >= 0 && x->valuedouble < 1e15)
		c->pending = (long)x->valuedouble;
	*out = c;
	c = NULL;
	rc = FS_OK;
	goto out;
nomem:
	rc = fs_err_set(eb, FS_E_NOMEM, NULL);
out:
	fs_sync_changes_free(c);
	cJSON_Delete(j);
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

int fs_sync_parse_revs_diff(const char *buf, size_t len, int max_depth, fs_sync_revs_diff **out,
                            fs_errbuf *eb)
{
	fs_sync_revs_diff *d;
	cJSON *j = NULL;
	const cJSON *e;
	void *v;
	int rc;

	if (out == NULL)
		return fs_err_set(eb, FS_E_ARG, "no output");
	*out = NULL;
	if ((d = calloc(1, sizeof(*d))) == NULL)
		return fs_err_set(eb, FS_E_NOMEM, NULL);
	rc = parse_list(buf, len, max_depth, 0, "_revs_diff", sizeof(*d->v), &j, &v, eb);
	d->v = v;
	if (rc != FS_OK)
		goto out;
	cJSON_ArrayForEach(e, j)
	{
		fs_sync_missing *m = &d->v[d->n];
		if (e->string == NULL || strlen(e->string) == 0 ||
		    strlen(e->string) > FS_SYNC_ID_MAX || !cJSON_IsObject(e)) {
			rc = BAD(eb, "_revs_diff entry %zu is invalid", d->n);
			goto out;
		}
		d->n++;
		if ((m->id = dupn(e->string, strlen(e->string))) == NULL) {
			rc = fs_err_set(eb, FS_E_NOMEM, NULL);
			goto out;
		}
		if ((rc = rev_array(cJSON_GetObjectItemCaseSensitive(e, "missing"),
		                    FS_SYNC_MAX_REVS, &m->revs, &m->nrevs, eb)) != FS_OK)
			goto out;
	}
	*out = d;
	d = NULL;
	rc = FS_OK;
out:
	fs_sync_revs_diff_free(d);
	cJSON_Delete(j);
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

/* ---- fetched revisions: _bulk_get and open_revs ---- */

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

/* _revisions {start, ids} into full ids newest first, checked against rev. */
static int history_of(const cJSON *doc, const char *rev, fs_sync_rev *out, fs_errbuf *eb)
{
	const cJSON *revs = cJSON_GetObjectItemCaseSensitive(doc, "_revisions");
	const cJSON *start, *ids, *e;
	unsigned long gen;
	const char *hash;
	size_t n, k = 0;
	char tmp[FS_REV_MAX];

	if (fs_crypto_rev_parse(rev, &gen, &hash) != FS_OK)
		return BAD(eb, "invalid revision id");
	if (revs == NULL) {
		if ((out->history = calloc(1, sizeof(char *))) == NULL ||
		    (out->history[0] = dupn(rev, strlen(rev))) == NULL)
			return fs_err_set(eb, FS_E_NOMEM, NULL);
		out->nhistory = 1;
		return FS_OK;
	}
	start = cJSON_GetObjectItemCaseSensitive(revs, "start");
	ids = cJSON_GetObjectItemCaseSensitive(revs, "ids");
	if (!cJSON_IsNumber(start) || !cJSON_IsArray(ids) || start->valuedouble != (double)gen)
		return BAD(eb, "_revisions does not match _rev");
	n = (size_t)cJSON_GetArraySize(ids);
	if (n == 0 || n > FS_SYNC_MAX_REVS || n > gen)
		return BAD(eb, "_revisions with %zu ids for generation %lu", n, gen);
	if ((out->history = calloc(n, sizeof(char *))) == NULL)
		return fs_err_set(eb, FS_E_NOMEM, NULL);
	cJSON_ArrayForEach(e, ids)
	{
		const char *h = str_of(e, FS_REV_MAX - 22);
		int w;
		if (h == NULL || (k == 0 && strcmp(h, hash) != 0))
			return BAD(eb, "_revisions ids do not match _rev");
		w = snprintf(tmp, sizeof(tmp), "%lu-%s", gen - k, h);
		if (w < 0 || (size_t)w >= sizeof(tmp) || !valid_rev(tmp))
			return BAD(eb, "invalid revision in _revisions");
		if ((out->history[k] = dupn(tmp, (size_t)w)) == NULL)
			return fs_err_set(eb, FS_E_NOMEM, NULL);
		out->nhistory = ++k;
	}
	return FS_OK;
}

/* The body: the members that are not CouchDB's ('_' prefixed), as JSON text. */
static int body_of(const cJSON *doc, fs_sync_rev *out, fs_errbuf *eb)
{
	cJSON *o = cJSON_CreateObject();
	const cJSON *e;
	char *t = NULL;
	int rc = fs_err_set(eb, FS_E_NOMEM, NULL);

	if (o == NULL)
		return rc;
	cJSON_ArrayForEach(e, doc)
	{
		if (e->string == NULL || e->string[0] == '_')
			continue;
		/* A reference: printed with o, not freed with it. */
		if (!cJSON_AddItemReferenceToObject(o, e->string, (cJSON *)e))
			goto out;
	}
	if ((t = cJSON_PrintUnformatted(o)) == NULL)
		goto out;
	out->body_len = strlen(t);
	if ((out->body = dupn(t, out->body_len)) == NULL)
		goto out;
	rc = FS_OK;
	fs_err_clear(eb);
out:
	cJSON_free(t);
	cJSON_Delete(o);
	return rc;
}

static int rev_of(const cJSON *doc, const char *want_id, fs_sync_rev *r, fs_errbuf *eb)
{
	const char *id = member_str(doc, "_id", FS_SYNC_ID_MAX);
	const char *rev = member_str(doc, "_rev", FS_REV_MAX - 1);
	const cJSON *del = cJSON_GetObjectItemCaseSensitive(doc, "_deleted");
	int rc;

	if (!cJSON_IsObject(doc) || id == NULL || !valid_rev(rev))
		return BAD(eb, "fetched document lacks a valid _id or _rev");
	if (want_id && strcmp(id, want_id) != 0)
		return BAD(eb, "fetched document has another _id than asked for");
	if (del && !cJSON_IsBool(del))
		return BAD(eb, "_deleted is not a boolean");
	r->deleted = cJSON_IsTrue(del);
	if ((r->id = dupn(id, strlen(id))) == NULL || (r->rev = dupn(rev, strlen(rev))) == NULL)
		return fs_err_set(eb, FS_E_NOMEM, NULL);
	if ((rc = history_of(doc, rev, r, eb)) != FS_OK)
		return rc;
	return body_of(doc, r, eb);
}

static int add_err(fs_sync_revs *rs, const char *id, const char *rev, const char *err,
                   fs_errbuf *eb)
{
	fs_sync_rev_error *e = &rs->err[rs->nerr];
	rs->nerr++;
	if ((id && !(e->id = dupn(id, strlen(id)))) ||
	    (rev && !(e->rev = dupn(rev, strlen(rev)))) || !(e->error = dupn(err, strlen(err))))
		return fs_err_set(eb, FS_E_NOMEM, NULL);
	return FS_OK;
}

/* One entry of an open_revs or _bulk_get docs array. */
static int fetched_entry(const cJSON *e, const char *id, fs_sync_revs *rs, fs_errbuf *eb)
{
	const cJSON *ok = cJSON_GetObjectItemCaseSensitive(e, "ok");
	const cJSON *miss = cJSON_GetObjectItemCaseSensitive(e, "missing");
	const cJSON *err = cJSON_GetObjectItemCaseSensitive(e, "error");

	if (cJSON_IsObject(ok)) {
		rs->n++;
		return rev_of(ok, id, &rs->v[rs->n - 1], eb);
	}
	if (miss) {
		const char *rev = str_of(miss, FS_REV_MAX - 1);
		if (!valid_rev(rev))
			return BAD(eb, "invalid revision in a missing entry");
		return add_err(rs, id, rev, "missing", eb);
	}
	if (cJSON_IsObject(err)) {
		const char *eid = member_str(err, "id", FS_SYNC_ID_MAX);
		const char *rev = member_str(err, "rev", FS_REV_MAX - 1);
		const char *what = member_str(err, "error", REASON_MAX);
		if (rev && !valid_rev(rev))
			rev = NULL; /* CouchDB says "undefined" when it has no rev to name */
		return add_err(rs, eid ? eid : id, rev, what ? what : "error", eb);
	}
	return BAD(eb, "fetched entry is neither ok, missing nor error");
}

static int revs_alloc(size_t cnt, fs_sync_revs **out, fs_errbuf *eb)
{
	fs_sync_revs *rs = calloc(1, sizeof(*rs));
	if (rs == NULL || (cnt && ((rs->v = calloc(cnt, sizeof(*rs->v))) == NULL ||
	                           (rs->err = calloc(cnt, sizeof(*rs->err))) == NULL))) {
		fs_sync_revs_free(rs);
		return fs_err_set(eb, FS_E_NOMEM, NULL);
	}
	*out = rs;
	return FS_OK;
}

int fs_sync_parse_bulk_get(const char *buf, size_t len, int max_depth, fs_sync_revs **out,
                           fs_errbuf *eb)
{
	cJSON *j = NULL;
	fs_sync_revs *rs = NULL;
	const cJSON *res, *e, *d;
	size_t cnt = 0;
	int rc;

	if (out == NULL)
		return fs_err_set(eb, FS_E_ARG, "no output");
	*out = NULL;
	if ((rc = parse(buf, len, max_depth, &j, eb)) != FS_OK)
		return rc;
	res = cJSON_GetObjectItemCaseSensitive(j, "results");
	if (!cJSON_IsObject(j) || !cJSON_IsArray(res)) {
		rc = BAD(eb, "_bulk_get answer without results");
		goto out;
	}
	/* Count the docs first so one allocation holds them all. */
	cJSON_ArrayForEach(e, res)
	{
		d = cJSON_GetObjectItemCaseSensitive(e, "docs");
		if (!cJSON_IsObject(e) || !cJSON_IsArray(d)) {
			rc = BAD(eb, "_bulk_get result without docs");
			goto out;
		}
		cnt += (size_t)cJSON_GetArraySize(d);
		if (cnt > FS_SYNC_MAX_ITEMS) {
			rc = BAD(eb, "_bulk_get answer with more than %d docs", FS_SYNC_MAX_ITEMS);
			goto out;
		}
	}
	if ((rc = revs_alloc(cnt, &rs, eb)) != FS_OK)
		goto out;
	cJSON_ArrayForEach(e, res)
	{
		const char *id = member_str(e, "id", FS_SYNC_ID_MAX);
		if (id == NULL) {
			rc = BAD(eb, "_bulk_get result without id");
			goto out;
		}
		cJSON_ArrayForEach(d, cJSON_GetObjectItemCaseSensitive(e, "docs"))
		{
			if ((rc = fetched_entry(d, id, rs, eb)) != FS_OK)
				goto out;
		}
	}
	*out = rs;
	rs = NULL;
	rc = FS_OK;
out:
	fs_sync_revs_free(rs);
	cJSON_Delete(j);
	return rc;
}

int fs_sync_parse_open_revs(const char *buf, size_t len, int max_depth, const char *id,
                            fs_sync_revs **out, fs_errbuf *eb)
{
	cJSON *j = NULL;
	fs_sync_revs *rs = NULL;
	const cJSON *e;
	size_t cnt;
	int rc;

	if (out == NULL || id == NULL)
		return fs_err_set(eb, FS_E_ARG, "no output or id");
	*out = NULL;
	if ((rc = parse(buf, len, max_depth, &j, eb)) != FS_OK)
		return rc;
	if (!cJSON_IsArray(j)) {
		rc = BAD(eb, "open_revs answer is not an array");
		goto out;
	}
	cnt = (size_t)cJSON_GetArraySize(j);
	if (cnt > FS_SYNC_MAX_REVS) {
		rc = BAD(eb, "open_revs answer with more than %d revisions", FS_SYNC_MAX_REVS);
		goto out;
	}
	if ((rc = revs_alloc(cnt, &rs, eb)) != FS_OK)
		goto out;
	cJSON_ArrayForEach(e, j)
	{
		if ((rc = fetched_entry(e, id, rs, eb)) != FS_OK)
			goto out;
	}
	*out = rs;
	rs = NULL;
	rc = FS_OK;
out:
	fs_sync_revs_free(rs);
	cJSON_Delete(j);
	return rc;
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
