/*
 * store/pending.c: how many documents changed after a sequence, for the
 * hub's _changes "pending" (replicators use it to know more is coming).
 * Counted on the docs_seq index, without reading any document.
 */
#include <sqlite3.h>

#include "store_int.h"

int fs_store_changes_pending(fs_store *st, uint64_t since, uint64_t *out, fs_errbuf *eb)
{
	sqlite3_stmt *s = NULL;
	int rc = FS_E_IO;

	*out = 0;
	if (since > INT64_MAX)
		return FS_OK;
	if (sqlite3_prepare_v2(st->db, "SELECT count(*) FROM docs WHERE seq > ?1", -1, &s, NULL) !=
	    SQLITE_OK)
		goto out;
	sqlite3_bind_int64(s, 1, (sqlite3_int64)since);
	if (sqlite3_step(s) != SQLITE_ROW)
		goto out;
	*out = (uint64_t)sqlite3_column_int64(s, 0);
	rc = FS_OK;
out:
	if (rc != FS_OK)
		fs_err_set(eb, rc, "counting changes: %s", sqlite3_errmsg(st->db));
	sqlite3_finalize(s);
	return rc;
}

uint64_t fs_store_seq(const fs_store *st)
{
	return st->seq;
}
