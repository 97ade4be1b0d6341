/*
 * daemon/daemon.h: what fieldsyncd and the fieldsync CLI share: the
 * configuration file (XDG paths, key=value, every key with its default; see
 * docs/daemon.md) and where the local API socket lives.
 */
#ifndef FS_DAEMON_H
#define FS_DAEMON_H

#include <limits.h>
#include <stdint.h>

#include "fs.h"

#define FS_DAEMON_PATH_MAX      512
#define FS_DAEMON_SOCKET_NAME   "api.sock"
#define FS_DAEMON_CONFIG_MAX    (64u << 10) /* bytes of a configuration file */
#define FS_DAEMON_AUTO_LOCK_S   900u        /* 15 minutes */
#define FS_DAEMON_CONNECT_MS    5000u
#define FS_DAEMON_NET_SETTLE_MS 250u /* netlink bursts are coalesced this long */

enum fs_daemon_log_level {
	FS_DAEMON_LOG_ERROR = 0,
	FS_DAEMON_LOG_WARN = 1,
	FS_DAEMON_LOG_INFO = 2,
	FS_DAEMON_LOG_DEBUG = 3,
};

typedef struct fs_daemon_config {
	char config_path[FS_DAEMON_PATH_MAX]; /* the file read (may not exist) */
	char data_dir[FS_DAEMON_PATH_MAX];    /* store.db, key */
	char socket_path[FS_DAEMON_PATH_MAX]; /* the local API */
	unsigned auto_lock_s;                 /* idle seconds before keys are wiped; 0: never */
	unsigned connect_timeout_ms;
	unsigned debounce_ms;    /* a local edit is pushed this soon */
	unsigned backoff_max_s;  /* longest wait between tries of an unreachable remote */
	int allow_http_loopback; /* plain http to 127.0.0.1 (a local hub, tests) */
	int log_level;
	int test_kdf_min; /* TEST ONLY: libsodium's minimum Argon2id cost */
	/* A JSON file of the agency's casework rules (zone, cadence, grace,
	 * weights, ceiling; docs/casework.md); "": the practice's defaults in UTC. */
	char agency_rules[FS_DAEMON_PATH_MAX];
} fs_daemon_config;

/*
 * Fills *cfg with the defaults, then reads the configuration file: path, or
 * when NULL $XDG_CONFIG_HOME/fieldsync/fieldsyncd.conf (a missing default
 * file is not an error). data_dir (may be NULL) overrides the file's
 * data_dir. Errors: FS_E_DAEMON_CONFIG (unknown key, bad value, with the
 * line number), FS_E_IO, FS_E_TOOBIG, FS_E_NOTFOUND (an explicit path that
 * does not exist).
 */
int fs_daemon_config_load(const char *path, const char *data_dir, fs_daemon_config *cfg,
                          fs_errbuf *eb) FS_WUR;

/* Creates dir and its missing parents with mode 0700. FS_E_IO. */
int fs_daemon_mkdirs(const char *dir, fs_errbuf *eb) FS_WUR;

#endif
