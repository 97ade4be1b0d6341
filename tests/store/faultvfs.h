/*
 * tests/store/faultvfs.h: an SQLite VFS that wraps the default one and can
 * be told to fail writes, syncs and truncations, to stand in for a full
 * disk or a failing one without needing a small mounted file system.
 */
#ifndef FS_TEST_FAULTVFS_H
#define FS_TEST_FAULTVFS_H

#define FAULTVFS_NAME "fs-fault"

/* Registers the VFS (not as default); SQLITE_OK or an SQLite error. */
int faultvfs_register(void);

/*
 * From now on, after `after` more successful writes, every write, sync and
 * truncate fails with rc (e.g. SQLITE_FULL, SQLITE_IOERR_WRITE); rc 0 turns
 * faults off. Returns how many operations failed since the last call.
 */
int faultvfs_set(int rc, int after);

#endif
