/*
 * tests/fuzz/fuzz_sync_wire.c: libFuzzer target over every parser of a
 * server's answer in sync/wire.c. Each input goes through all of them, so
 * one corpus serves every answer shape. Built with -fsanitize=fuzzer when
 * FS_FUZZ is on (clang); the normal build links corpus_main.c instead.
 */
#include <stddef.h>
#include <stdint.h>

#include "sync_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	fs_errbuf eb;
	fs_sync_changes *c = NULL;
	fs_sync_revs_diff *d = NULL;
	fs_sync_bulk_result *b = NULL;
	fs_sync_revs *r = NULL;
	fs_sync_server_info *si = NULL;
	fs_sync_db_info *di = NULL;

	if (fs_sync_parse_changes(s, size, 0, &c, &eb) == FS_OK)
		fs_sync_changes_free(c);
	if (fs_sync_parse_revs_diff(s, size, 0, &d, &eb) == FS_OK)
		fs_sync_revs_diff_free(d);
	if (fs_sync_parse_bulk_docs(s, size, 0, &b, &eb) == FS_OK)
		fs_sync_bulk_result_free(b);
	if (fs_sync_parse_bulk_get(s, size, 0, &r, &eb) == FS_OK)
		fs_sync_revs_free(r);
	if (fs_sync_parse_open_revs(s, size, 0, "a", &r, &eb) == FS_OK)
		fs_sync_revs_free(r);
	if (fs_sync_parse_server_info(s, size, 0, &si, &eb) == FS_OK)
		fs_sync_server_info_free(si);
	if (fs_sync_parse_db_info(s, size, 0, &di, &eb) == FS_OK)
		fs_sync_db_info_free(di);
	return 0;
}
