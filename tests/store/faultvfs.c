/*
 * tests/store/faultvfs.c: the fault-injecting VFS. Each file opened through
 * it wraps a file of the default VFS; only xWrite, xSync and xTruncate can
 * fail, everything else (WAL shared memory included) passes through.
 */
#include "faultvfs.h"

#include <sqlite3.h>
#include <string.h>

struct ffile {
	sqlite3_file base;
	sqlite3_file *real; /* lives right after this struct */
};

static sqlite3_vfs fvfs;
static sqlite3_vfs *orig;
static int fault_rc;
static int fault_after;
static int fault_hits;

static int hit(void)
{
	if (fault_rc == 0)
		return SQLITE_OK;
	if (fault_after > 0) {
		fault_after--;
		return SQLITE_OK;
	}
	fault_hits++;
	return fault_rc;
}

int faultvfs_set(int rc, int after)
{
	int h = fault_hits;

	fault_rc = rc;
	fault_after = after;
	fault_hits = 0;
	return h;
}

#define REAL(f) (((struct ffile *)(f))->real)

static int x_close(sqlite3_file *f)
{
	int rc = REAL(f)->pMethods ? REAL(f)->pMethods->xClose(REAL(f)) : SQLITE_OK;
	return rc;
}

static int x_read(sqlite3_file *f, void *b, int n, sqlite3_int64 o)
{
	return REAL(f)->pMethods->xRead(REAL(f), b, n, o);
}

static int x_write(sqlite3_file *f, const void *b, int n, sqlite3_int64 o)
{
	int rc = hit();
	return rc ? rc : REAL(f)->pMethods->xWrite(REAL(f), b, n, o);
}

static int x_truncate(sqlite3_file *f, sqlite3_int64 n)
{
	int rc = hit();
	return rc ? rc : REAL(f)->pMethods->xTruncate(REAL(f), n);
}

static int x_sync(sqlite3_file *f, int flags)
{
	/* A full disk fails writes; a failing disk fails syncs too. */
	if (fault_rc && fault_rc != SQLITE_FULL && fault_after == 0) {
		fault_hits++;
		return SQLITE_IOERR_FSYNC;
	}
	return REAL(f)->pMethods->xSync(REAL(f), flags);
}

static int x_size(sqlite3_file *f, sqlite3_int64 *n)
{
	return REAL(f)->pMethods->xFileSize(REAL(f), n);
}

static int x_lock(sqlite3_file *f, int l)
{
	return REAL(f)->pMethods->xLock(REAL(f), l);
}

static int x_unlock(sqlite3_file *f, int l)
{
	return REAL(f)->pMethods->xUnlock(REAL(f), l);
}

static int x_check(sqlite3_file *f, int *out)
{
	return REAL(f)->pMethods->xCheckReservedLock(REAL(f), out);
}

static int x_fcntl(sqlite3_file *f, int op, void *arg)
{
	return REAL(f)->pMethods->xFileControl(REAL(f), op, arg);
}

static int x_sector(sqlite3_file *f)
{
	return REAL(f)->pMethods->xSectorSize(REAL(f));
}

static int x_devchar(sqlite3_file *f)
{
	return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f));
}

static int x_shmmap(sqlite3_file *f, int pg, int sz, int ext, void volatile **pp)
{
	return REAL(f)->pMethods->xShmMap(REAL(f), pg, sz, ext, pp);
}

static int x_shmlock(sqlite3_file *f, int off, int n, int flags)
{
	return REAL(f)->pMethods->xShmLock(REAL(f), off, n, flags);
}

static void x_shmbarrier(sqlite3_file *f)
{
	REAL(f)->pMethods->xShmBarrier(REAL(f));
}

static int x_shmunmap(sqlite3_file *f, int del)
{
	return REAL(f)->pMethods->xShmUnmap(REAL(f), del);
}

static int x_fetch(sqlite3_file *f, sqlite3_int64 o, int n, void **pp)
{
	/* No memory-mapped reads: they would bypass nothing here, but keep it simple. */
	(void)f;
	(void)o;
	(void)n;
	*pp = NULL;
	return SQLITE_OK;
}

static int x_unfetch(sqlite3_file *f, sqlite3_int64 o, void *p)
{
	(void)f;
	(void)o;
	(void)p;
	return SQLITE_OK;
}

static const sqlite3_io_methods fmethods = {
    3,         x_close,      x_read,     x_write, x_truncate, x_sync,    x_size,
    x_lock,    x_unlock,     x_check,    x_fcntl, x_sector,   x_devchar, x_shmmap,
    x_shmlock, x_shmbarrier, x_shmunmap, x_fetch, x_unfetch,
};

static int x_open(sqlite3_vfs *v, const char *name, sqlite3_file *f, int flags, int *out)
{
	struct ffile *ff = (struct ffile *)f;
	int rc;

	(void)v;
	ff->real = (sqlite3_file *)(ff + 1);
	memset(ff->real, 0, (size_t)orig->szOsFile);
	rc = orig->xOpen(orig, name, ff->real, flags, out);
	ff->base.pMethods = ff->real->pMethods ? &fmethods : NULL;
	return rc;
}

static int x_delete(sqlite3_vfs *v, const char *n, int sync)
{
	(void)v;
	return orig->xDelete(orig, n, sync);
}

static int x_access(sqlite3_vfs *v, const char *n, int flags, int *out)
{
	(void)v;
	return orig->xAccess(orig, n, flags, out);
}

static int x_full(sqlite3_vfs *v, const char *n, int len, char *out)
{
	(void)v;
	return orig->xFullPathname(orig, n, len, out);
}

static int x_random(sqlite3_vfs *v, int n, char *out)
{
	(void)v;
	return orig->xRandomness(orig, n, out);
}

static int x_sleep(sqlite3_vfs *v, int us)
{
	(void)v;
	return orig->xSleep(orig, us);
}

static int x_time(sqlite3_vfs *v, double *t)
{
	(void)v;
	return orig->xCurrentTime(orig, t);
}

static int x_lasterr(sqlite3_vfs *v, int n, char *b)
{
	(void)v;
	return orig->xGetLastError ? orig->xGetLastError(orig, n, b) : 0;
}

static int x_time64(sqlite3_vfs *v, sqlite3_int64 *t)
{
	(void)v;
	return orig->xCurrentTimeInt64(orig, t);
}

int faultvfs_register(void)
{
	if (orig)
		return SQLITE_OK;
	if ((orig = sqlite3_vfs_find(NULL)) == NULL)
		return SQLITE_ERROR;
	fvfs.iVersion = 2;
	fvfs.szOsFile = (int)sizeof(struct ffile) + orig->szOsFile;
	fvfs.mxPathname = orig->mxPathname;
	fvfs.zName = FAULTVFS_NAME;
	fvfs.xOpen = x_open;
	fvfs.xDelete = x_delete;
	fvfs.xAccess = x_access;
	fvfs.xFullPathname = x_full;
	fvfs.xRandomness = x_random;
	fvfs.xSleep = x_sleep;
	fvfs.xCurrentTime = x_time;
	fvfs.xGetLastError = x_lasterr;
	fvfs.xCurrentTimeInt64 = x_time64;
	return sqlite3_vfs_register(&fvfs, 0);
}
