/*
 * store/open.c: the store file's life: the one-writer lock, refusing
 * foreign or damaged files before SQLite may touch them, atomic creation,
 * pragmas, forward-only migrations, the statement cache and transactions.
 */
#include "store_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Version 1: the initial schema (docs/store.md explains it). */
static const char schema_v1[] =
    "CREATE TABLE meta(key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE docs("
    " did INTEGER PRIMARY KEY,"
    " id TEXT NOT NULL UNIQUE,"
    " winner_gen INTEGER NOT NULL,"
    " winner_hash TEXT NOT NULL,"
    " deleted INTEGER NOT NULL,"
    " conflicted INTEGER NOT NULL,"
    " seq INTEGER NOT NULL);"
    "CREATE INDEX docs_seq ON docs(seq);"
    /* No foreign keys on revs: documents are never deleted, stemming cuts
     * parents, and each checked key would cost every pulled revision a
     * lookup. The outbox's keys are checked: they guard queued edits. */
    "CREATE TABLE revs("
    " rid INTEGER PRIMARY KEY,"
    " did INTEGER NOT NULL,"
    " gen INTEGER NOT NULL,"
    " hash TEXT NOT NULL,"
    " parent INTEGER,"
    " leaf INTEGER NOT NULL,"
    " deleted INTEGER NOT NULL,"
    " seq INTEGER,"
    " body BLOB,"
    " UNIQUE(did, gen, hash));"
    "CREATE INDEX revs_leaves ON revs(did) WHERE leaf = 1;"
    /* oid is the local sequence of the edit that queued the row (or of
     * its retry): never reused, so confirming a row that a newer edit
     * replaced can never remove another row. Few indexes on purpose:
     * every one costs each durable edit another page in the WAL. */
    "CREATE TABLE outbox("
    " oid INTEGER PRIMARY KEY,"
    " did INTEGER NOT NULL REFERENCES docs(did),"
    " rid INTEGER NOT NULL REFERENCES revs(rid),"
    " state INTEGER NOT NULL,"
    " queued_at INTEGER NOT NULL,"
    " status INTEGER NOT NULL DEFAULT 0,"
    " reason TEXT);"
    "CREATE INDEX outbox_doc ON outbox(did);"
    "CREATE TABLE checkpoints("
    " remote TEXT NOT NULL,"
    " dir INTEGER NOT NULL,"
    " seq TEXT NOT NULL,"
    " updated_at INTEGER NOT NULL,"
    " PRIMARY KEY(remote, dir)) WITHOUT ROWID;"
    "CREATE TABLE local_docs("
    " id TEXT PRIMARY KEY,"
    " rev INTEGER NOT NULL,"
    " body BLOB NOT NULL) WITHOUT ROWID;";

/*
 * The migration list: entry i takes user_version i to i+1. Only ever append;
 * a released entry never changes (stores in the field ran it).
 */
const struct store_migration store_migrations[] = {
    {"initial schema", schema_v1, NULL, NULL},
    {"index of conflicted documents",
     "CREATE INDEX docs_conflicted ON docs(id) WHERE conflicted = 1;", NULL, NULL},
    {"index of deleted documents, so info counts without reading every row",
     "CREATE INDEX docs_deleted ON docs(did) WHERE deleted = 1;", NULL, NULL},
    /* The leaves move into the docs row: winner_rid names the winner's revs
     * row, `others` lists the other leaves as "rid gen deleted hash" groups
     * separated by spaces (NULL when there are none). An edit then no
     * longer rewrites its parent's revs row nor the revs_leaves index, and
     * reading a document's leaves is one row. revs.leaf stays, unused (new
     * rows write 0; rewriting old rows would copy every body). */
    {"leaves of each document in its docs row",
     "ALTER TABLE docs ADD COLUMN winner_rid INTEGER;"
     "ALTER TABLE docs ADD COLUMN others TEXT;"
     "UPDATE docs SET winner_rid = (SELECT r.rid FROM revs r WHERE r.did = docs.did"
     "  AND r.gen = docs.winner_gen AND r.hash = docs.winner_hash),"
     " others = (SELECT group_concat(r.rid || ' ' || r.gen || ' ' || r.deleted || ' ' || r.hash,"
     "  ' ') FROM revs r WHERE r.did = docs.did AND r.leaf = 1"
     "  AND NOT (r.gen = docs.winner_gen AND r.hash = docs.winner_hash));"
     "DROP INDEX revs_leaves;",
     NULL, NULL},
    /* CouchDB's layout: a document is one row, keyed by its latest local
     * sequence (so the table is the changes feed, and a pulled document is
     * one appended row and one id index entry), holding its revision tree
     * (store/tree.c) and, until the document first changes, its body;
     * other bodies are rows of `bodies`, named from the tree. The outbox
     * names a revision by its id. Bodies keep their old rid as their key. */
    {"revision trees in the docs row, bodies apart",
     "CREATE TABLE docs5("
     " seq INTEGER PRIMARY KEY,"
     " id TEXT NOT NULL UNIQUE,"
     " deleted INTEGER NOT NULL,"
     " conflicted INTEGER NOT NULL,"
     " tree BLOB NOT NULL,"
     " body BLOB);"
     "CREATE TABLE bodies(bid INTEGER PRIMARY KEY, body BLOB NOT NULL);"
     "INSERT INTO bodies(bid, body) SELECT rid, body FROM revs WHERE body IS NOT NULL;",
     store_migrate_trees,
     "CREATE TABLE outbox5("
     " oid INTEGER PRIMARY KEY,"
     " id TEXT NOT NULL REFERENCES docs5(id),"
     " rev TEXT NOT NULL,"
     " state INTEGER NOT NULL,"
     " queued_at INTEGER NOT NULL,"
     " status INTEGER NOT NULL DEFAULT 0,"
     " reason TEXT);"
     "INSERT INTO outbox5(oid, id, rev, state, queued_at, status, reason)"
     " SELECT o.oid, d.id, r.gen || '-' || r.hash, o.state, o.queued_at, o.status, o.reason"
     " FROM outbox o JOIN docs d ON d.did = o.did JOIN revs r ON r.rid = o.rid;"
     "DROP TABLE outbox;"
     "DROP TABLE revs;"
     "DROP TABLE docs;"
     "ALTER TABLE docs5 RENAME TO docs;"
     "ALTER TABLE outbox5 RENAME TO outbox;"
     "CREATE INDEX docs_conflicted ON docs(id) WHERE conflicted = 1;"
     "CREATE INDEX docs_deleted ON docs(seq) WHERE deleted = 1;"
     "CREATE INDEX outbox_doc ON outbox(id);"},
};
const int store_n_migrations = (int)(sizeof(store_migrations) / sizeof(store_migrations[0]));

static const char *const stmt_sql[S_MAX] = {
    [S_BEGIN] = "BEGIN IMMEDIATE",
    [S_COMMIT] = "COMMIT",
    [S_DOC_BY_ID] = "SELECT seq, tree, body IS NOT NULL FROM docs WHERE id = ?1",
    [S_DOC_GET] = "SELECT seq, tree, body FROM docs WHERE id = ?1",
    /* Both take ?1 old seq, ?2 new seq, ?3 id, ?4 deleted, ?5 conflicted,
     * ?6 tree, ?7 what to do with the body column (0 keep, 1 ?8, 2 none). */
    [S_DOC_INSERT] = "INSERT INTO docs(seq, id, deleted, conflicted, tree, body)"
                     " VALUES (?2, ?3, ?4, ?5, ?6, CASE ?7 WHEN 1 THEN ?8 END)"
                     " ON CONFLICT(id) DO NOTHING",
    [S_DOC_UPDATE] = "UPDATE docs SET seq = ?2, deleted = ?4, conflicted = ?5, tree = ?6,"
                     " body = CASE ?7 WHEN 0 THEN body WHEN 1 THEN ?8 END WHERE seq = ?1",
    [S_BODY_INSERT] = "INSERT INTO bodies(body) VALUES (?1)",
    [S_BODY_MOVE] = "INSERT INTO bodies(body) SELECT body FROM docs WHERE seq = ?1",
    [S_BODY_GET] = "SELECT body FROM bodies WHERE bid = ?1",
    [S_BODY_DELETE] = "DELETE FROM bodies WHERE bid = ?1",
    [S_OUTBOX_REVS_OF_DOC] = "SELECT rev FROM outbox WHERE id = ?1",
    [S_OUTBOX_INSERT] =
        "INSERT INTO outbox(oid, id, rev, state, queued_at) VALUES (?1, ?2, ?3, 0, ?4)",
    [S_OUTBOX_OF_DOC] = "SELECT oid, rev FROM outbox WHERE id = ?1 AND state = 0",
    [S_OUTBOX_DELETE] = "DELETE FROM outbox WHERE oid = ?1",
    [S_CKPT_SET] = "INSERT INTO checkpoints(remote, dir, seq, updated_at) VALUES (?1, ?2, ?3, ?4)"
                   " ON CONFLICT(remote, dir) DO UPDATE SET seq = excluded.seq,"
                   " updated_at = excluded.updated_at",
    [S_CKPT_GET] = "SELECT seq FROM checkpoints WHERE remote = ?1 AND dir = ?2",
};

int store_db_err(sqlite3 *db, int rc, const char *what, fs_errbuf *eb)
{
	int code;

	switch (rc & 0xff) {
	case SQLITE_FULL:
		code = FS_E_STORE_FULL;
		break;
	case SQLITE_IOERR:
		code = rc == SQLITE_IOERR_NOMEM ? FS_E_NOMEM : FS_E_IO;
		break;
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
		code = FS_E_STORE_CORRUPT;
		break;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		code = FS_E_STORE_BUSY;
		break;
	case SQLITE_READONLY:
	case SQLITE_PERM:
		code = FS_E_STORE_READONLY;
		break;
	case SQLITE_CANTOPEN:
		code = FS_E_IO;
		break;
	case SQLITE_NOMEM:
		code = FS_E_NOMEM;
		break;
	case SQLITE_TOOBIG:
		code = FS_E_TOOBIG;
		break;
	default:
		code = FS_E_INTERNAL;
		break;
	}
	/* sqlite3_errmsg never quotes bound values, so no body can leak here. */
	return fs_err_set(eb, code, "store: %s: %s (SQLite %d)", what,
	                  db ? sqlite3_errmsg(db) : sqlite3_errstr(rc), rc);
}

int store_err(fs_store *st, int rc, const char *what, fs_errbuf *eb)
{
	return store_db_err(st->db, rc, what, eb);
}

sqlite3_stmt *store_stmt(fs_store *st, enum stmt_id id, fs_errbuf *eb)
{
	sqlite3_stmt *s = st->stmts[id];
	int rc;

	if (s == NULL) {
		rc = sqlite3_prepare_v3(st->db, stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT,
		                        &st->stmts[id], NULL);
		if (rc != SQLITE_OK) {
			st->stmt_err = store_err(st, rc, "prepare", eb);
			return NULL;
		}
		return st->stmts[id];
	}
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return s;
}

/* Steps BEGIN or COMMIT, the cached statements that open and close a transaction. */
static int step_tx(fs_store *st, enum stmt_id id, const char *what, fs_errbuf *eb)
{
	sqlite3_stmt *s = store_stmt(st, id, eb);
	int rc;

	if (s == NULL)
		return st->stmt_err;
	rc = sqlite3_step(s);
	sqlite3_reset(s);
	return rc == SQLITE_DONE ? FS_OK : store_err(st, rc, what, eb);
}

int store_begin(fs_store *st, fs_errbuf *eb)
{
	int r = step_tx(st, S_BEGIN, "begin", eb);

	if (r == FS_OK)
		st->seq_save = st->seq;
	return r;
}

int store_commit(fs_store *st, fs_errbuf *eb)
{
	return step_tx(st, S_COMMIT, "commit", eb);
}

void store_rollback(fs_store *st)
{
	/* Statements still stepping would keep the rollback from finishing. */
	for (int i = 0; i < S_MAX; i++)
		if (st->stmts[i])
			sqlite3_reset(st->stmts[i]);
	if (!sqlite3_get_autocommit(st->db))
		sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
	st->seq = st->seq_save;
}

int store_check_str(const char *s, size_t max, const char *what, fs_errbuf *eb)
{
	size_t n;

	if (s == NULL)
		return fs_err_set(eb, FS_E_ARG, "store: no %s", what);
	n = strnlen(s, max + 1);
	if (n == 0 || n > max)
		return fs_err_set(eb, FS_E_ARG, "store: %s is empty or longer than %zu bytes", what,
		                  max);
	return FS_OK;
}

int store_bind_blob(sqlite3_stmt *s, int i, const uint8_t *p, size_t len)
{
	if (len == 0)
		return sqlite3_bind_zeroblob(s, i, 0);
	return sqlite3_bind_blob64(s, i, p, len, SQLITE_STATIC);
}

uint8_t *store_col_blob(sqlite3_stmt *s, int i, size_t *len)
{
	const void *p = sqlite3_column_blob(s, i);
	size_t n = (size_t)sqlite3_column_bytes(s, i);
	uint8_t *b = malloc(n ? n : 1);

	if (b == NULL)
		return NULL;
	if (n)
		memcpy(b, p, n);
	*len = n;
	return b;
}

int64_t store_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int exec(sqlite3 *db, const char *sql, const char *what, fs_errbuf *eb)
{
	int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);

	return rc == SQLITE_OK ? FS_OK : store_db_err(db, rc, what, eb);
}

static int pragma_int(sqlite3 *db, const char *sql, int64_t *v, fs_errbuf *eb)
{
	sqlite3_stmt *s = NULL;
	int rc = sqlite3_prepare_v2(db, sql, -1, &s, NULL);

	if (rc == SQLITE_OK)
		rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		*v = sqlite3_column_int64(s, 0);
		rc = SQLITE_OK;
	} else if (rc == SQLITE_DONE) {
		*v = 0;
		rc = SQLITE_OK;
	}
	sqlite3_finalize(s);
	return rc == SQLITE_OK ? FS_OK : store_db_err(db, rc, sql, eb);
}

static int migrate_to(sqlite3 *db, int target, fs_errbuf *eb)
{
	int64_t v = 0;
	int r;
	char sql[64];

	if ((r = pragma_int(db, "PRAGMA user_version", &v, eb)) != FS_OK)
		return r;
	if (v > store_n_migrations)
		return fs_err_set(eb, FS_E_STORE_TOO_NEW,
		                  "store: schema version %lld is newer than this program's %d",
		                  (long long)v, store_n_migrations);
	for (int i = (int)v; i < target; i++) {
		if ((r = exec(db, "BEGIN IMMEDIATE", "migration", eb)) != FS_OK)
			return r;
		snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", i + 1);
		if ((r = exec(db, store_migrations[i].sql, store_migrations[i].what, eb)) !=
		        FS_OK ||
		    (store_migrations[i].fn && (r = store_migrations[i].fn(db, eb)) != FS_OK) ||
		    (store_migrations[i].after &&
		     (r = exec(db, store_migrations[i].after, store_migrations[i].what, eb)) !=
		         FS_OK) ||
		    (r = exec(db, sql, "migration", eb)) != FS_OK ||
		    (r = exec(db, "COMMIT", "migration", eb)) != FS_OK) {
			sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
			return r;
		}
	}
	return FS_OK;
}

int store_migrate(sqlite3 *db, fs_errbuf *eb)
{
	return migrate_to(db, store_n_migrations, eb);
}

static char *cat(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	char *s = malloc(la + lb + 1);

	if (s) {
		memcpy(s, a, la);
		memcpy(s + la, b, lb + 1);
	}
	return s;
}

static void unlink_db(const char *p)
{
	static const char *const sfx[] = {"", "-wal", "-shm", "-journal"};

	for (size_t i = 0; i < sizeof(sfx) / sizeof(sfx[0]); i++) {
		char *f = cat(p, sfx[i]);
		if (f)
			unlink(f);
		free(f);
	}
}

static int fsync_dir_of(const char *path)
{
	char *d = strdup(path);
	char *slash;
	int fd, r = FS_OK;

	if (d == NULL)
		return FS_E_NOMEM;
	slash = strrchr(d, '/');
	if (slash == NULL)
		strcpy(d, ".");
	else if (slash == d)
		d[1] = '\0';
	else
		*slash = '\0';
	fd = open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fsync(fd) != 0)
		r = FS_E_IO;
	if (fd >= 0)
		close(fd);
	free(d);
	return r;
}

static int create_with(const char *path, int version, const char *vfs, fs_errbuf *eb)
{
	char *tmp = cat(path, ".new");
	sqlite3 *db = NULL;
	int r = FS_E_NOMEM, rc;
	char sql[64];

	if (tmp == NULL)
		goto out;
	if (version < 0 || version > store_n_migrations) {
		r = fs_err_set(eb, FS_E_ARG, "store: no schema version %d", version);
		goto out;
	}
	/* A leftover from a creation that crashed: never a store anyone used. */
	unlink_db(tmp);
	rc = sqlite3_open_v2(
	    tmp, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_EXRESCODE, vfs);
	if (rc != SQLITE_OK) {
		r = store_db_err(db, rc, "create", eb);
		goto out;
	}
	snprintf(sql, sizeof(sql), "PRAGMA application_id = %d", STORE_APP_ID);
	if ((r = exec(db, "PRAGMA synchronous = FULL", "create", eb)) != FS_OK ||
	    (r = exec(db, sql, "create", eb)) != FS_OK ||
	    (r = migrate_to(db, version, eb)) != FS_OK ||
	    (r = exec(db, "PRAGMA journal_mode = WAL", "create", eb)) != FS_OK)
		goto out;
	rc = sqlite3_close(db);
	db = NULL;
	if (rc != SQLITE_OK) {
		r = store_db_err(NULL, rc, "create", eb);
		goto out;
	}
	if (rename(tmp, path) != 0) {
		r = fs_err_set(eb,
		               errno == EROFS || errno == EACCES ? FS_E_STORE_READONLY : FS_E_IO,
		               "store: cannot create %s: %s", path, strerror(errno));
		goto out;
	}
	if (fsync_dir_of(path) != FS_OK) {
		r = fs_err_set(eb, FS_E_IO, "store: cannot sync the folder of %s", path);
		goto out;
	}
	r = FS_OK;
out:
	sqlite3_close(db);
	if (r != FS_OK && tmp)
		unlink_db(tmp);
	free(tmp);
	return r;
}

int store_create_at(const char *path, int version, fs_errbuf *eb)
{
	return create_with(path, version, NULL, eb);
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* What the file is, judged from its header alone, so a foreign file is never opened for writing. */
enum file_kind { F_ABSENT, F_STORE };

static int check_file(const char *path, enum file_kind *kind, fs_errbuf *eb)
{
	static const char magic[16] = "SQLite format 3";
	uint8_t h[100];
	struct stat sb, wb;
	ssize_t n;
	int fd = -1, r = FS_E_INTERNAL;
	uint32_t psize, pages;
	char *wal = NULL;

	*kind = F_ABSENT;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT) {
			r = FS_OK;
			goto out;
		}
		r = fs_err_set(eb, errno == EACCES ? FS_E_STORE_READONLY : FS_E_IO,
		               "store: cannot open %s: %s", path, strerror(errno));
		goto out;
	}
	if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
		r = fs_err_set(eb, FS_E_STORE_FOREIGN, "store: %s is not a regular file", path);
		goto out;
	}
	if (sb.st_size == 0) {
		r = FS_OK; /* an empty file holds nothing to protect */
		goto out;
	}
	n = pread(fd, h, sizeof(h), 0);
	if (n < 0) {
		r = fs_err_set(eb, FS_E_IO, "store: cannot read %s: %s", path, strerror(errno));
		goto out;
	}
	if (memcmp(h, magic, (size_t)n < sizeof(magic) ? (size_t)n : sizeof(magic)) != 0) {
		r = fs_err_set(eb, FS_E_STORE_FOREIGN, "store: %s is not an SQLite database", path);
		goto out;
	}
	if ((size_t)n < sizeof(h)) {
		r = fs_err_set(eb, FS_E_STORE_CORRUPT, "store: %s is truncated (%zd bytes)", path,
		               n);
		goto out;
	}
	if (be32(h + 68) != STORE_APP_ID) {
		r = fs_err_set(eb, FS_E_STORE_FOREIGN,
		               "store: %s is an SQLite database of another program", path);
		goto out;
	}
	psize = (uint32_t)h[16] << 8 | h[17];
	if (psize == 1)
		psize = 65536;
	pages = be32(h + 28);
	if (psize < 512 || (psize & (psize - 1)) != 0 || sb.st_size % psize != 0) {
		r = fs_err_set(eb, FS_E_STORE_CORRUPT, "store: %s is damaged (bad size)", path);
		goto out;
	}
	/* Without a WAL to complete it, the file must hold every page its header counts. */
	if ((wal = cat(path, "-wal")) == NULL) {
		r = FS_E_NOMEM;
		goto out;
	}
	if (be32(h + 92) == be32(h + 24) && (uint64_t)pages * psize > (uint64_t)sb.st_size &&
	    (stat(wal, &wb) != 0 || wb.st_size == 0)) {
		r = fs_err_set(eb, FS_E_STORE_CORRUPT, "store: %s is truncated (%u of %u pages)",
		               path, (unsigned)(sb.st_size / psize), (unsigned)pages);
		goto out;
	}
	*kind = F_STORE;
	r = FS_OK;
out:
	free(wal);
	if (fd >= 0)
		close(fd);
	return r;
}

static int take_lock(const char *path, int *fdp, fs_errbuf *eb)
{
	char *lp = cat(path, ".lock");
	char buf[32];
	int fd = -1, r = FS_E_NOMEM;
	ssize_t n;

	*fdp = -1;
	if (lp == NULL)
		goto out;
	fd = open(lp, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		r = fs_err_set(eb,
		               errno == EACCES || errno == EROFS ? FS_E_STORE_READONLY : FS_E_IO,
		               "store: cannot open the lock %s: %s", lp, strerror(errno));
		goto out;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		if (errno != EWOULDBLOCK) {
			r = fs_err_set(eb, FS_E_IO, "store: cannot lock %s: %s", lp,
			               strerror(errno));
			goto out;
		}
		n = pread(fd, buf, sizeof(buf) - 1, 0);
		buf[n > 0 ? n : 0] = '\0';
		r = fs_err_set(eb, FS_E_STORE_LOCKED, "store: %s is in use by process %ld", path,
		               strtol(buf, NULL, 10));
		goto out;
	}
	n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) != 0 || pwrite(fd, buf, (size_t)n, 0) != n) {
		r = fs_err_set(eb, FS_E_IO, "store: cannot write the lock %s: %s", lp,
		               strerror(errno));
		goto out;
	}
	*fdp = fd;
	fd = -1;
	r = FS_OK;
out:
	if (fd >= 0)
		close(fd);
	free(lp);
	return r;
}

/*
 * Checkpoints after a commit, as SQLite's own hook would, but never lets a
 * failed checkpoint (say, a full disk) turn the committed transaction's
 * result into an error: the caller must be able to trust FS_OK and errors.
 */
static int wal_hook(void *ctx, sqlite3 *db, const char *name, int pages)
{
	fs_store *st = ctx;
	int log = 0, done = 0;
	st->wal_pages = pages > 0 ? (unsigned)pages : 0;
	if (st->wal_pages >= st->ckpt_pages &&
	    sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, &log, &done) ==
	        SQLITE_OK)
		st->wal_pages = log > done ? (unsigned)(log - done) : 0;
	return SQLITE_OK;
}

int fs_store_checkpoint(fs_store *st, fs_errbuf *eb)
{
	int log = 0, done = 0, rc;
	fs_err_clear(eb);
	if (st == NULL)
		return fs_err_set(eb, FS_E_ARG, "store: bad arguments to checkpoint");
	rc = sqlite3_wal_checkpoint_v2(st->db, NULL, SQLITE_CHECKPOINT_PASSIVE, &log, &done);
	if (rc != SQLITE_OK)
		return store_err(st, rc, "checkpoint", eb);
	st->wal_pages = log > done ? (unsigned)(log - done) : 0;
	return log > done ? fs_err_set(eb, FS_E_STORE_BUSY, "store: checkpoint held back") : FS_OK;
}

unsigned fs_store_wal_pages(const fs_store *st)
{
	return st ? st->wal_pages : 0;
}

int fs_store_open(const char *path, const fs_store_opts *opts, fs_store **out, fs_errbuf *eb)
{
	fs_store *st = NULL;
	enum file_kind kind;
	int64_t v = 0;
	int r = FS_E_NOMEM, rc;
	const char *vfs = opts ? opts->vfs : NULL;
	sqlite3_stmt *s = NULL;

	fs_err_clear(eb);
	if (out == NULL)
		return fs_err_set(eb, FS_E_ARG, "store: no out handle");
	*out = NULL;
	if ((r = store_check_str(path, PATH_MAX, "path", eb)) != FS_OK)
		return r;
	if ((st = calloc(1, sizeof(*st))) == NULL || (st->path = strdup(path)) == NULL) {
		r = fs_err_set(eb, FS_E_NOMEM, "store: out of memory");
		goto out;
	}
	st->lock_fd = -1;
	st->revs_limit = opts && opts->revs_limit ? opts->revs_limit : FS_STORE_REVS_LIMIT_DEFAULT;
	if ((r = take_lock(path, &st->lock_fd, eb)) != FS_OK ||
	    (r = check_file(path, &kind, eb)) != FS_OK)
		goto out;
	if (kind == F_ABSENT && (r = create_with(path, store_n_migrations, vfs, eb)) != FS_OK)
		goto out;
	rc = sqlite3_open_v2(path, &st->db,
	                     SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE,
	                     vfs);
	if (rc != SQLITE_OK) {
		r = store_err(st, rc, "open", eb);
		goto out;
	}
	st->ckpt_pages =
	    opts && opts->checkpoint_pages ? opts->checkpoint_pages : STORE_CHECKPOINT_PAGES;
	sqlite3_wal_hook(st->db, wal_hook, st);
	sqlite3_busy_timeout(st->db,
	                     opts && opts->busy_ms > 0 ? opts->busy_ms : FS_STORE_BUSY_MS_DEFAULT);
	/* Read the version before anything writes: a newer store stays untouched. */
	if ((r = pragma_int(st->db, "PRAGMA user_version", &v, eb)) != FS_OK)
		goto out;
	if (v > store_n_migrations) {
		r = fs_err_set(eb, FS_E_STORE_TOO_NEW,
		               "store: %s has schema version %lld, newer than this program's %d",
		               path, (long long)v, store_n_migrations);
		goto out;
	}
	if ((r = exec(st->db, "PRAGMA journal_mode = WAL", "open", eb)) != FS_OK ||
	    (r = exec(st->db, "PRAGMA synchronous = FULL", "open", eb)) != FS_OK ||
	    (r = exec(st->db, "PRAGMA foreign_keys = ON", "open", eb)) != FS_OK ||
	    (r = store_migrate(st->db, eb)) != FS_OK)
		goto out;
	/* Outbox oids come from the same sequence (a retry takes a fresh one). */
	rc = sqlite3_prepare_v2(st->db,
	                        "SELECT max(coalesce((SELECT max(seq) FROM docs), 0),"
	                        " coalesce((SELECT max(oid) FROM outbox), 0))",
	                        -1, &s, NULL);
	if (rc == SQLITE_OK && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		st->seq = (uint64_t)sqlite3_column_int64(s, 0);
		rc = SQLITE_OK;
	}
	if (rc != SQLITE_OK) {
		r = store_err(st, rc, "open", eb);
		goto out;
	}
	st->seq_save = st->seq;
	*out = st;
	st = NULL;
	r = FS_OK;
out:
	sqlite3_finalize(s);
	fs_store_close(st);
	return r;
}

void fs_store_close(fs_store *st)
{
	if (st == NULL)
		return;
	for (int i = 0; i < S_MAX; i++)
		sqlite3_finalize(st->stmts[i]);
	sqlite3_close(st->db);
	tree_free(&st->tree);
	free(st->lv.v);
	free(st->enc.p);
	if (st->lock_fd >= 0)
		close(st->lock_fd);
	free(st->path);
	free(st);
}

int fs_store_check(fs_store *st, fs_errbuf *eb)
{
	sqlite3_stmt *s = NULL;
	int r, rc;

	fs_err_clear(eb);
	if (st == NULL)
		return fs_err_set(eb, FS_E_ARG, "store: no handle");
	rc = sqlite3_prepare_v2(st->db, "PRAGMA integrity_check(1)", -1, &s, NULL);
	if (rc == SQLITE_OK && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		const char *t = (const char *)sqlite3_column_text(s, 0);
		if (t && strcmp(t, "ok") == 0)
			r = FS_OK;
		else
			r = fs_err_set(eb, FS_E_STORE_CORRUPT, "store: integrity check: %.200s",
			               t ? t : "?");
	} else {
		r = store_err(st, rc, "integrity check", eb);
	}
	sqlite3_finalize(s);
	return r;
}
