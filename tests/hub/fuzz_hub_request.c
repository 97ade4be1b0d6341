/*
 * tests/hub/fuzz_hub_request.c: libFuzzer target over every request parser
 * of the hub (hub/parse.c): _bulk_docs, _revs_diff, _bulk_get, a document
 * body and open_revs. Each input goes through all of them. With FS_FUZZ
 * (clang) it is a libFuzzer binary; the normal build replays the corpus
 * with tests/fuzz/corpus_main.c under the sanitizers.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "hub_int.h"

#define MAX_BODY (1u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	fs_errbuf eb;
	hub_bulk_docs bd;
	hub_revs_diff rd;
	hub_bulk_get bg;
	cJSON *j = NULL;

	if (hub_parse_bulk_docs(s, size, MAX_BODY, FS_JSON_DEPTH_DEFAULT, 1000, &bd, &eb) == FS_OK)
		hub_bulk_docs_clear(&bd);
	if (hub_parse_revs_diff(s, size, MAX_BODY, FS_JSON_DEPTH_DEFAULT, 1000, &rd, &eb) == FS_OK)
		hub_revs_diff_clear(&rd);
	if (hub_parse_bulk_get(s, size, MAX_BODY, FS_JSON_DEPTH_DEFAULT, 1000, &bg, &eb) == FS_OK)
		hub_bulk_get_clear(&bg);
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
