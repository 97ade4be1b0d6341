/*
 * hub/scan.c: the parsers of the hub's batch requests (_bulk_docs,
 * _revs_diff, _bulk_get), which carry up to thousands of documents each.
 * A scanner reads the text once and validates it as it goes (RFC 8259,
 * nesting bounded before it recurses) without building a tree: a
 * document's body is the bytes of its members as they came, whitespace
 * between tokens dropped, with one allocation per document instead of one
 * per value. cJSON, which the single-document parsers in parse.c still
 * use, spent a third of the hub's time on a push allocating and freeing a
 * node per value and printing every body again.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hub_int.h"

#define NUMBER_MAX 400 /* characters of _revisions.start worth reading */

typedef fs_scan scan;
typedef fs_scan_key key;

static const char not_json[] = "Request body is not valid JSON";

/* A value into b as it came, whitespace outside strings dropped. */
static int copy_value(scan *s, hub_buf *b, int depth)
{
	const char *start;
	size_t n;
	int spaced;
	if (fs_scan_value(s, depth, &start, &n, &spaced) != 0)
		return -1;
	if (!spaced) { /* compact already, as replicators send it */
		hub_buf_add(b, start, n);
		return 0;
	}
	hub_buf_reserve(b, n);
	if (b->err == 0) {
		b->len += fs_scan_compact(start, n, b->p + b->len);
		b->p[b->len] = '\0';
	}
	return 0;
}

static int rev_ok(const char *rev)
{
	return strlen(rev) < FS_REV_MAX && fs_crypto_rev_parse(rev, NULL, NULL) == FS_OK;
}

/* ---- _bulk_docs ---- */

void hub_bulk_docs_clear(hub_bulk_docs *b)
{
	if (b == NULL)
		return;
	for (size_t i = 0; i < b->n; i++)
		hub_doc_in_clear(&b->v[i]);
	free(b->v);
	memset(b, 0, sizeof(*b));
}

/* _revisions (the shared scan), its hashes and start checked as ours. */
static int scan_revisions(scan *s, hub_doc_in *d, int depth)
{
	const char *num;
	size_t num_len;
	char text[NUMBER_MAX];
	double start;

	if (fs_scan_revisions(s, depth, FS_STORE_HISTORY_MAX, FS_REV_MAX - 2,
	                      "_revisions needs start and ids", &num, &num_len, &d->hashes,
	                      &d->n_hashes) != 0)
		return -1;
	for (size_t i = 0; i < d->n_hashes; i++) {
		char tmp[FS_REV_MAX];
		snprintf(tmp, sizeof(tmp), "1-%s", d->hashes[i]);
		if (!rev_ok(tmp))
			return fs_scan_fail(s, FS_E_INPUT, "bad hash in _revisions");
	}
	if (num_len >= sizeof(text))
		return fs_scan_fail(s, FS_E_INPUT, "_revisions out of range");
	memcpy(text, num, num_len);
	text[num_len] = '\0';
	start = strtod(text, NULL); /* a checked JSON number: strtod reads all of it */
	if (start < 1 || start > 1e15 || d->n_hashes < 1 || (double)d->n_hashes > start)
		return fs_scan_fail(s, FS_E_INPUT, "_revisions out of range");
	d->rev_start = (unsigned long)start;
	return 0;
}

/* _attachments may be empty (the hub stores envelopes, no attachments). */
static int scan_attachments(scan *s, int depth)
{
	int c = fs_scan_peek(s);
	if (c == '{' || c == '[') {
		const char *save = s->p;
		char close = c == '{' ? '}' : ']';
		s->p++;
		if (fs_scan_peek(s) != (unsigned char)close)
			return fs_scan_fail(s, FS_E_INPUT, "the hub stores no attachments");
		s->p = save;
	}
	return fs_scan_skip(s, depth);
}

/*
 * One document of the docs array: its special members split off (the
 * rules of parse.c's parse_doc), the others copied into its body.
 * scratch: reused from document to document.
 */
static int scan_doc(scan *s, hub_doc_in *d, hub_buf *scratch, int depth)
{
	int empty, more, first = 1;
	key k;

	memset(d, 0, sizeof(*d));
	scratch->len = 0;
	if (fs_scan_object_open(s, depth, &empty, "Document must be a JSON object") != 0)
		return -1;
	hub_buf_add(scratch, "{", 1);
	for (more = !empty; more > 0; more = fs_scan_next(s, '}')) {
		if (fs_scan_member(s, &k) != 0)
			return -1;
		if (k.name[0] != '_') {
			if (!first)
				hub_buf_add(scratch, ",", 1);
			first = 0;
			hub_buf_add(scratch, k.raw, (size_t)(k.raw_end - k.raw));
			hub_buf_add(scratch, ":", 1);
			if (copy_value(s, scratch, depth + 1) != 0)
				return -1;
		} else if (fs_scan_key_is(&k, "_id")) {
			char id[FS_STORE_ID_MAX + 1];
			size_t n;
			if (d->id)
				return fs_scan_fail(s, FS_E_INPUT, "Document id must be a string");
			if (fs_scan_string(s, id, sizeof(id), &n,
			                   "Document id must be a string of at most 1024 bytes") !=
			    0)
				return -1;
			if ((d->id = malloc(n + 1)) == NULL)
				return fs_scan_fail(s, FS_E_NOMEM, "out of memory");
			memcpy(d->id, id, n + 1);
		} else if (fs_scan_key_is(&k, "_rev")) {
			char rev[FS_REV_MAX];
			size_t n;
			if (d->rev ||
			    fs_scan_string(s, rev, sizeof(rev), &n, "Invalid rev format") != 0)
				return fs_scan_fail(s, FS_E_INPUT, "Invalid rev format");
			if (!rev_ok(rev))
				return fs_scan_fail(s, FS_E_INPUT, "Invalid rev format");
			if ((d->rev = malloc(n + 1)) == NULL)
				return fs_scan_fail(s, FS_E_NOMEM, "out of memory");
			memcpy(d->rev, rev, n + 1);
		} else if (fs_scan_key_is(&k, "_deleted")) {
			if (fs_scan_bool(s, &d->deleted, "_deleted must be a boolean") != 0)
				return -1;
		} else if (fs_scan_key_is(&k, "_revisions")) {
			if (d->hashes)
				return fs_scan_fail(s, FS_E_INPUT, "_revisions twice");
			if (scan_revisions(s, d, depth + 1) != 0)
				return -1;
		} else if (fs_scan_key_is(&k, "_attachments")) {
			if (scan_attachments(s, depth + 1) != 0)
				return -1;
		} else if (fs_scan_key_is(&k, "_conflicts") ||
		           fs_scan_key_is(&k, "_deleted_conflicts") ||
		           fs_scan_key_is(&k, "_local_seq")) {
			/* read-side annotations a client may echo back */
			if (fs_scan_skip(s, depth + 1) != 0)
				return -1;
		} else {
			if (s->rc == FS_OK)
				s->rc = fs_err_set(s->eb, FS_E_INPUT,
				                   "Bad special document member: %.31s%s", k.name,
				                   k.cut ? "..." : "");
			return -1;
		}
	}
	if (more < 0)
		return -1;
	hub_buf_add(scratch, "}", 1);
	if (d->n_hashes && d->rev) {
		unsigned long g;
		const char *h;
		if (fs_crypto_rev_parse(d->rev, &g, &h) != FS_OK || g != d->rev_start ||
		    strcmp(h, d->hashes[0]) != 0)
			return fs_scan_fail(s, FS_E_INPUT, "_rev does not match _revisions");
	}
	if (scratch->err)
		return fs_scan_fail(s, FS_E_NOMEM, "out of memory");
	if (scratch->len > FS_STORE_BODY_MAX) {
		if (s->rc == FS_OK)
			s->rc = fs_err_set(s->eb, FS_E_TOOBIG, "document body over %u bytes",
			                   FS_STORE_BODY_MAX);
		return -1;
	}
	if ((d->body = malloc(scratch->len + 1)) == NULL)
		return fs_scan_fail(s, FS_E_NOMEM, "out of memory");
	memcpy(d->body, scratch->p, scratch->len + 1);
	d->body_len = scratch->len;
	return 0;
}

static int too_many(scan *s, size_t max_docs)
{
	if (s->rc == FS_OK)
		s->rc = fs_err_set(s->eb, FS_E_TOOBIG, "more than %zu documents in one request",
		                   max_docs);
	return -1;
}

/* Opens the text: its size bounded, a scanner over it. */
static int scan_start(scan *s, const char *body, size_t len, size_t max_len, int depth,
                      fs_errbuf *eb)
{
	return fs_scan_start(s, body, len, max_len, depth, FS_E_INPUT, not_json, eb);
}

static int scan_docs(scan *s, hub_bulk_docs *b, size_t max_docs)
{
	hub_buf scratch = {0};
	size_t cap = 0;
	int more;
	if (fs_scan_array_open(s, 1, &more, "POST body must include `docs` parameter.") != 0)
		return -1;
	for (more = !more; more > 0; more = fs_scan_next(s, ']')) {
		if (b->n == max_docs) {
			more = too_many(s, max_docs);
			break;
		}
		if (b->n == cap) {
			size_t nc = cap ? cap * 2 : 64;
			hub_doc_in *v = realloc(b->v, nc * sizeof(*v));
			if (v == NULL) {
				more = fs_scan_fail(s, FS_E_NOMEM, "out of memory");
				break;
			}
			b->v = v;
			cap = nc;
		}
		/* Counted before it is complete, so the clear frees what it holds. */
		if (scan_doc(s, &b->v[b->n++], &scratch, 2) != 0) {
			more = -1;
			break;
		}
	}
	hub_buf_free(&scratch);
	return more < 0 ? -1 : 0;
}

int hub_parse_bulk_docs(const char *body, size_t len, size_t max_len, int depth, size_t max_docs,
                        hub_bulk_docs *out, fs_errbuf *eb)
{
	hub_bulk_docs b = {.new_edits = 1};
	int have_docs = 0, have_ne = 0, empty, more, rc;
	scan s;
	key k;

	memset(out, 0, sizeof(*out));
	if ((rc = scan_start(&s, body, len, max_len, depth, eb)) != FS_OK)
		return rc;
	if (fs_scan_object_open(&s, 0, &empty, "POST body must include `docs` parameter.") != 0)
		goto out;
	for (more = !empty; more > 0; more = fs_scan_next(&s, '}')) {
		if (fs_scan_member(&s, &k) != 0)
			goto out;
		if (fs_scan_key_is(&k, "docs") && !have_docs) {
			have_docs = 1;
			if (scan_docs(&s, &b, max_docs) != 0)
				goto out;
		} else if (fs_scan_key_is(&k, "new_edits") && !have_ne) {
			have_ne = 1;
			if (fs_scan_bool(&s, &b.new_edits,
			                 "`new_edits` parameter must be a boolean.") != 0)
				goto out;
		} else if (fs_scan_skip(&s, 1) != 0) {
			goto out;
		}
	}
	if (more < 0 || fs_scan_finish(&s) != 0)
		goto out;
	if (!have_docs) {
		fs_scan_fail(&s, FS_E_INPUT, "POST body must include `docs` parameter.");
		goto out;
	}
	/* new_edits may come after docs: the checks that need it wait for the end. */
	for (size_t i = 0; i < b.n; i++) {
		const hub_doc_in *d = &b.v[i];
		if (d->id && !hub_docid_ok(d->id)) {
			fs_scan_fail(&s, FS_E_INPUT,
			             "Only reserved document ids may start with underscore.");
			goto out;
		}
		if (!b.new_edits && (d->id == NULL || d->rev == NULL)) {
			fs_scan_fail(&s, FS_E_INPUT, "new_edits:false needs _id and _rev");
			goto out;
		}
	}
	*out = b;
	memset(&b, 0, sizeof(b));
	return FS_OK;
out:
	hub_bulk_docs_clear(&b);
	return s.rc != FS_OK ? s.rc : fs_err_set(eb, FS_E_INPUT, not_json);
}

/* ---- _revs_diff: {"id":["rev",...],...} ---- */

void hub_revs_diff_clear(hub_revs_diff *d)
{
	if (d == NULL)
		return;
	for (size_t i = 0; i < d->n; i++) {
		free((char *)d->q[i].id);
		hub_strv_free((char **)d->q[i].revs, d->q[i].n);
	}
	free(d->q);
	memset(d, 0, sizeof(*d));
}

static int scan_diff_revs(scan *s, fs_store_diff_query *q, size_t *total)
{
	char **revs = NULL;
	size_t cap = 0;
	int more;
	static const char why[] = "revs_diff values must be arrays of revisions";
	if (fs_scan_array_open(s, 1, &more, why) != 0)
		return -1;
	for (more = !more; more > 0; more = fs_scan_next(s, ']')) {
		char rev[FS_REV_MAX];
		size_t n;
		if (++*total > FS_STORE_HISTORY_MAX) {
			if (s->rc == FS_OK)
				s->rc = fs_err_set(s->eb, FS_E_TOOBIG,
				                   "too many revisions in one request");
			return -1;
		}
		if (fs_scan_string(s, rev, sizeof(rev), &n, "Invalid rev format") != 0)
			return -1;
		if (!rev_ok(rev))
			return fs_scan_fail(s, FS_E_INPUT, "Invalid rev format");
		if (q->n == cap) {
			size_t nc = cap ? cap * 2 : 4;
			if ((revs = realloc((void *)q->revs, nc * sizeof(*revs))) == NULL)
				return fs_scan_fail(s, FS_E_NOMEM, "out of memory");
			q->revs = (const char *const *)revs;
			cap = nc;
		}
		if ((revs[q->n] = malloc(n + 1)) == NULL)
			return fs_scan_fail(s, FS_E_NOMEM, "out of memory");
		memcpy(revs[q->n++], rev, n + 1);
	}
	return more < 0 ? -1 : 0;
}

int hub_parse_revs_diff(const char *body, size_t len, size_t max_len, int depth, size_t max_docs,
                        hub_revs_diff *out, fs_errbuf *eb)
{
	hub_revs_diff d = {0};
	size_t cap = 0, total = 0;
	int empty, more, rc;
	scan s;

	memset(out, 0, sizeof(*out));
	if ((rc = scan_start(&s, body, len, max_len, depth, eb)) != FS_OK)
		return rc;
	if (fs_scan_object_open(&s, 0, &empty, "Request body must be a JSON object") != 0)
		goto out;
	for (more = !empty; more > 0; more = fs_scan_next(&s, '}')) {
		char id[FS_STORE_ID_MAX + 1];
		size_t n;
		if (d.n == max_docs) {
			too_many(&s, max_docs);
			goto out;
		}
		if (d.n == cap) {
			size_t nc = cap ? cap * 2 : 64;
			fs_store_diff_query *v = realloc(d.q, nc * sizeof(*v));
			if (v == NULL) {
				fs_scan_fail(&s, FS_E_NOMEM, "out of memory");
				goto out;
			}
			d.q = v;
			cap = nc;
		}
		if (fs_scan_string(&s, id, sizeof(id), &n,
		                   "revs_diff values must be arrays of revisions") != 0 ||
		    fs_scan_take(&s, ':') != 0)
			goto out;
		if (n == 0) {
			fs_scan_fail(&s, FS_E_INPUT,
			             "revs_diff values must be arrays of revisions");
			goto out;
		}
		fs_store_diff_query *q = &d.q[d.n];
		memset(q, 0, sizeof(*q));
		if ((q->id = malloc(n + 1)) == NULL) {
			fs_scan_fail(&s, FS_E_NOMEM, "out of memory");
			goto out;
		}
		memcpy((char *)q->id, id, n + 1);
		d.n++; /* counted now, so the clear frees what it holds */
		if (scan_diff_revs(&s, q, &total) != 0)
			goto out;
	}
	if (more < 0 || fs_scan_finish(&s) != 0)
		goto out;
	*out = d;
	return FS_OK;
out:
	hub_revs_diff_clear(&d);
	return s.rc != FS_OK ? s.rc : fs_err_set(eb, FS_E_INPUT, not_json);
}

/* ---- _bulk_get: {"docs":[{"id":..,"rev":..},...]} (rev optional) ---- */

void hub_bulk_get_clear(hub_bulk_get *g)
{
	if (g == NULL)
		return;
	hub_strv_free(g->ids, g->n);
	hub_strv_free(g->revs, g->n);
	memset(g, 0, sizeof(*g));
}

static int scan_get_one(scan *s, hub_bulk_get *g)
{
	static const char why[] = "each of docs needs a string id and rev";
	char id[FS_STORE_ID_MAX + 1], rev[FS_REV_MAX];
	size_t id_n = 0, rev_n = 0;
	int empty, more, have_id = 0, have_rev = 0;
	key k;

	if (fs_scan_object_open(s, 2, &empty, why) != 0)
		return -1;
	for (more = !empty; more > 0; more = fs_scan_next(s, '}')) {
		if (fs_scan_member(s, &k) != 0)
			return -1;
		if (fs_scan_key_is(&k, "id") && !have_id) {
			have_id = 1;
			if (fs_scan_string(s, id, sizeof(id), &id_n, why) != 0)
				return -1;
		} else if (fs_scan_key_is(&k, "rev") && !have_rev) {
			have_rev = 1;
			if (fs_scan_string(s, rev, sizeof(rev), &rev_n, why) != 0)
				return -1;
			if (!rev_ok(rev))
				return fs_scan_fail(s, FS_E_INPUT, why);
		} else if (fs_scan_skip(s, 3) != 0) {
			return -1;
		}
	}
	if (more < 0)
		return -1;
	if (!have_id || id_n == 0)
		return fs_scan_fail(s, FS_E_INPUT, why);
	g->ids[g->n] = malloc(id_n + 1);
	g->revs[g->n] = have_rev ? malloc(rev_n + 1) : NULL;
	g->n++; /* counted now, so the clear frees what it holds */
	if (g->ids[g->n - 1] == NULL || (have_rev && g->revs[g->n - 1] == NULL))
		return fs_scan_fail(s, FS_E_NOMEM, "out of memory");
	memcpy(g->ids[g->n - 1], id, id_n + 1);
	if (have_rev)
		memcpy(g->revs[g->n - 1], rev, rev_n + 1);
	return 0;
}

static int scan_get_docs(scan *s, hub_bulk_get *g, size_t max_docs)
{
	size_t cap = 0;
	int more;
	if (fs_scan_array_open(s, 1, &more, "Missing JSON list of 'docs'.") != 0)
		return -1;
	for (more = !more; more > 0; more = fs_scan_next(s, ']')) {
		if (g->n == max_docs)
			return too_many(s, max_docs);
		if (g->n == cap) {
			size_t nc = cap ? cap * 2 : 64;
			char **ids = realloc(g->ids, nc * sizeof(*ids)), **revs;
			if (ids == NULL)
				return fs_scan_fail(s, FS_E_NOMEM, "out of memory");
			g->ids = ids;
			if ((revs = realloc(g->revs, nc * sizeof(*revs))) == NULL)
				return fs_scan_fail(s, FS_E_NOMEM, "out of memory");
			g->revs = revs;
			cap = nc;
		}
		if (scan_get_one(s, g) != 0)
			return -1;
	}
	return more < 0 ? -1 : 0;
}

int hub_parse_bulk_get(const char *body, size_t len, size_t max_len, int depth, size_t max_docs,
                       hub_bulk_get *out, fs_errbuf *eb)
{
	hub_bulk_get g = {0};
	int have_docs = 0, empty, more, rc;
	scan s;
	key k;

	memset(out, 0, sizeof(*out));
	if ((rc = scan_start(&s, body, len, max_len, depth, eb)) != FS_OK)
		return rc;
	if (fs_scan_object_open(&s, 0, &empty, "Missing JSON list of 'docs'.") != 0)
		goto out;
	for (more = !empty; more > 0; more = fs_scan_next(&s, '}')) {
		if (fs_scan_member(&s, &k) != 0)
			goto out;
		if (fs_scan_key_is(&k, "docs") && !have_docs) {
			have_docs = 1;
			if (scan_get_docs(&s, &g, max_docs) != 0)
				goto out;
		} else if (fs_scan_skip(&s, 1) != 0) {
			goto out;
		}
	}
	if (more < 0 || fs_scan_finish(&s) != 0)
		goto out;
	if (!have_docs) {
		fs_scan_fail(&s, FS_E_INPUT, "Missing JSON list of 'docs'.");
		goto out;
	}
	*out = g;
	return FS_OK;
out:
	hub_bulk_get_clear(&g);
	return s.rc != FS_OK ? s.rc : fs_err_set(eb, FS_E_INPUT, not_json);
}
