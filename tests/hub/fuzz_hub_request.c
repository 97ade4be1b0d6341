/*
 * tests/hub/fuzz_hub_request.c: libFuzzer target over every request parser
 * of the hub (hub/parse.c, hub/scan.c): _bulk_docs, _revs_diff, _bulk_get,
 * a document body and open_revs. Each input goes through all of them.
 * The batch parsers of scan.c read text without a tree; whatever they
 * accept is also parsed the way the hub did before them (cJSON, then
 * hub_parse_doc per document), and the two must agree on every id,
 * revision, flag and history and on each body's meaning, or the target
 * aborts. With FS_FUZZ (clang) it is a libFuzzer binary; the normal build
 * replays the corpus with tests/fuzz/corpus_main.c under the sanitizers.
 */
#include <float.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "hub_int.h"

#define MAX_BODY (1u << 20)
#define MAX_DOCS 1000

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void differ(const char *what)
{
	fprintf(stderr, "fuzz_hub_request: scan.c and the cJSON reference differ: %s\n", what);
	abort();
}

static int same_str(const char *a, const char *b)
{
	return (a == NULL && b == NULL) || (a && b && strcmp(a, b) == 0);
}

/*
 * Same JSON, with cJSON's own printing in mind on the reference's side: a
 * number too large for a double is printed as null there, while scan.c
 * keeps the digits (cJSON reads them back as infinity); and cJSON prints
 * 15 digits when they read back within DBL_EPSILON, while scan.c keeps
 * every digit sent.
 */
static int same_json(const cJSON *x, const cJSON *y)
{
	const cJSON *a, *b;
	if (cJSON_IsNumber(x) && cJSON_IsNull(y))
		return x->valuedouble > 1e308 || x->valuedouble < -1e308;
	if ((x->type & 0xFF) != (y->type & 0xFF))
		return 0;
	if (cJSON_IsNumber(x)) {
		double ax = fabs(x->valuedouble), ay = fabs(y->valuedouble);
		return fabs(x->valuedouble - y->valuedouble) <= (ax > ay ? ax : ay) * DBL_EPSILON;
	}
	if (cJSON_IsString(x))
		return strcmp(x->valuestring, y->valuestring) == 0;
	if (!cJSON_IsArray(x) && !cJSON_IsObject(x))
		return 1;
	for (a = x->child, b = y->child; a && b; a = a->next, b = b->next)
		if (!same_str(a->string, b->string) || !same_json(a, b))
			return 0;
	return a == NULL && b == NULL;
}

/* Two bodies mean the same JSON (member order kept, as both keep it). */
static int same_body(const hub_doc_in *a, const hub_doc_in *b)
{
	cJSON *x = cJSON_ParseWithLength((const char *)a->body, a->body_len);
	cJSON *y = cJSON_ParseWithLength((const char *)b->body, b->body_len);
	int same = x && y && same_json(y, x);
	cJSON_Delete(x);
	cJSON_Delete(y);
	return same;
}

/* U+0000 ends a cJSON string early, so there cJSON's reading is the wrong one. */
static int has_nul_escape(const uint8_t *data, size_t size)
{
	static const char esc[] = "\\u0000";
	for (size_t i = 0; i + sizeof(esc) - 1 <= size; i++)
		if (memcmp(data + i, esc, sizeof(esc) - 1) == 0)
			return 1;
	return 0;
}

static void check_bulk_docs(const char *s, size_t size, const hub_bulk_docs *bd)
{
	cJSON *j = NULL, *e;
	const cJSON *docs, *ne;
	fs_errbuf eb;
	size_t i = 0;

	if (hub_json_parse(s, size, MAX_BODY, FS_JSON_DEPTH_DEFAULT, &j, &eb) != FS_OK)
		differ("bulk_docs: accepted text cJSON refuses");
	docs = cJSON_GetObjectItemCaseSensitive(j, "docs");
	ne = cJSON_GetObjectItemCaseSensitive(j, "new_edits");
	if (!cJSON_IsArray(docs) || (size_t)cJSON_GetArraySize(docs) != bd->n)
		differ("bulk_docs: documents");
	if ((ne ? cJSON_IsTrue(ne) : 1) != bd->new_edits)
		differ("bulk_docs: new_edits");
	cJSON_ArrayForEach(e, docs)
	{
		hub_doc_in r;
		const hub_doc_in *d = &bd->v[i++];
		if (hub_parse_doc(e, &r, &eb) != FS_OK)
			differ("bulk_docs: a document cJSON's path refuses");
		if (!same_str(r.id, d->id) || !same_str(r.rev, d->rev) || r.deleted != d->deleted ||
		    r.rev_start != d->rev_start || r.n_hashes != d->n_hashes)
			differ("bulk_docs: special members");
		for (size_t k = 0; k < r.n_hashes; k++)
			if (strcmp(r.hashes[k], d->hashes[k]) != 0)
				differ("bulk_docs: _revisions");
		if (!same_body(&r, d))
			differ("bulk_docs: body");
		hub_doc_in_clear(&r);
	}
	cJSON_Delete(j);
}

static void check_revs_diff(const char *s, size_t size, const hub_revs_diff *rd)
{
	cJSON *j = NULL;
	const cJSON *e, *r;
	fs_errbuf eb;
	size_t i = 0;

	if (hub_json_parse(s, size, MAX_BODY, FS_JSON_DEPTH_DEFAULT, &j, &eb) != FS_OK ||
	    !cJSON_IsObject(j) || (size_t)cJSON_GetArraySize(j) != rd->n)
		differ("revs_diff: documents");
	cJSON_ArrayForEach(e, j)
	{
		const fs_store_diff_query *q = &rd->q[i++];
		size_t k = 0;
		if (!same_str(e->string, q->id) || (size_t)cJSON_GetArraySize(e) != q->n)
			differ("revs_diff: id or count");
		cJSON_ArrayForEach(r, e)
		{
			if (!cJSON_IsString(r) || strcmp(r->valuestring, q->revs[k++]) != 0)
				differ("revs_diff: revision");
		}
	}
	cJSON_Delete(j);
}

static void check_bulk_get(const char *s, size_t size, const hub_bulk_get *bg)
{
	cJSON *j = NULL;
	const cJSON *docs, *e;
	fs_errbuf eb;
	size_t i = 0;

	if (hub_json_parse(s, size, MAX_BODY, FS_JSON_DEPTH_DEFAULT, &j, &eb) != FS_OK)
		differ("bulk_get: accepted text cJSON refuses");
	docs = cJSON_GetObjectItemCaseSensitive(j, "docs");
	if (!cJSON_IsArray(docs) || (size_t)cJSON_GetArraySize(docs) != bg->n)
		differ("bulk_get: documents");
	cJSON_ArrayForEach(e, docs)
	{
		const cJSON *id = cJSON_GetObjectItemCaseSensitive(e, "id");
		const cJSON *rev = cJSON_GetObjectItemCaseSensitive(e, "rev");
		if (!cJSON_IsString(id) || strcmp(id->valuestring, bg->ids[i]) != 0 ||
		    !same_str(rev ? rev->valuestring : NULL, bg->revs[i]))
			differ("bulk_get: id or rev");
		i++;
	}
	cJSON_Delete(j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	int nul = has_nul_escape(data, size);
	fs_errbuf eb;
	hub_bulk_docs bd;
	hub_revs_diff rd;
	hub_bulk_get bg;
	cJSON *j = NULL;

	if (hub_parse_bulk_docs(s, size, MAX_BODY, FS_JSON_DEPTH_DEFAULT, MAX_DOCS, &bd, &eb) ==
	    FS_OK) {
		if (!nul)
			check_bulk_docs(s, size, &bd);
		hub_bulk_docs_clear(&bd);
	}
	if (hub_parse_revs_diff(s, size, MAX_BODY, FS_JSON_DEPTH_DEFAULT, MAX_DOCS, &rd, &eb) ==
	    FS_OK) {
		if (!nul)
			check_revs_diff(s, size, &rd);
		hub_revs_diff_clear(&rd);
	}
	if (hub_parse_bulk_get(s, size, MAX_BODY, FS_JSON_DEPTH_DEFAULT, MAX_DOCS, &bg, &eb) ==
	    FS_OK) {
		if (!nul)
			check_bulk_get(s, size, &bg);
		hub_bulk_get_clear(&bg);
	}
	if (hub_json_parse(s, size, MAX_BODY, FS_JSON_DEPTH_DEFAULT, &j, &eb) == FS_OK) {
		hub_doc_in d;
		if (hub_parse_doc(j, &d, &eb) == FS_OK)
			hub_doc_in_clear(&d);
		cJSON_Delete(j);
	}
	/* open_revs comes from a query string: NUL-terminated, no NUL inside. */
	char *q = malloc(size + 1);
	if (q) {
		memcpy(q, data, size);
		q[size] = '\0';
		int all;
		char **revs;
		size_t n;
		if (strlen(q) == size && hub_parse_open_revs(q, &all, &revs, &n, &eb) == FS_OK)
			hub_strv_free(revs, n);
		free(q);
	}
	return 0;
}
