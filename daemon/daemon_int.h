/*
 * daemon/daemon_int.h: the state of one fieldsyncd process, shared by its
 * files: the vault (keys, lock/unlock), the remotes and their continuous
 * replication, the local API and the event loop. Nothing outside daemon/
 * includes it.
 */
#ifndef FS_DAEMON_INT_H
#define FS_DAEMON_INT_H

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <stddef.h>
#include <stdint.h>

#include "casework.h"
#include "crypto.h"
#include "daemon.h"
#include "fs.h"
#include "store.h"
#include "sync.h"

#define FSD_REMOTES_MAX    16
#define FSD_REMOTE_NAME    64 /* bytes of a remote name, with its NUL */
#define FSD_URL_MAX        1024
#define FSD_BODY_MAX       (FS_CRYPTO_RECORD_MAX + (64u << 10)) /* one API request body */
#define FSD_TYPE_MAX       64                                   /* bytes of a record type */
#define FSD_SLOWDOWN_MAX_S 300u
#define FSD_META_IDENTITY  "identity" /* store meta: the wrapped device identity */
#define FSD_META_SPACE_ID  "space_id" /* store meta: the space this device is in */
#define FSD_META_TEAMDOC   "teamdoc:" /* + rev + ":" + id: a device's copy of a team document */
/* After this many failed syncs in a row (1 s doubled 9 times passes 5 min)
 * an unreachable remote is tried once per retry_max_seconds, no sooner:
 * full jitter alone would probe twice as often on average. */
#define FSD_FAILS_SETTLED 9u

enum fsd_auth { FSD_AUTH_NONE = 0, FSD_AUTH_BASIC = 1, FSD_AUTH_BEARER = 2 };

struct fsd_remote {
	char name[FSD_REMOTE_NAME];
	char url[FSD_URL_MAX];
	char *pins;      /* NULL or "sha256//...;..." */
	char *ca_file;   /* NULL or a path */
	char *user;      /* basic auth user name (not secret) */
	int auth;        /* enum fsd_auth */
	fs_secret *cred; /* password or token, from the first unlock until exit */
	fs_sync_remote *r;
	fs_sync_live *live;
	CURL *lp;         /* the longpoll on the daemon's multi handle, or NULL */
	uint64_t next_ms; /* when the live state wants its next step */
	int64_t last_ok;  /* wall-clock ms of the last successful sync, 0: never */
	int64_t last_try;
	int last_err;   /* FS_OK or the last sync's error */
	unsigned fails; /* failed syncs in a row */
	char last_msg[FS_ERRMSG_MAX];
	uint64_t pushed, pulled, refused;
	fs_sync_progress run; /* counts of the sync under way, for its log line */
};

struct fsd {
	fs_daemon_config cfg;
	char store_path[FS_DAEMON_PATH_MAX];
	char key_path[FS_DAEMON_PATH_MAX];
	fs_store *st;

	/* vault: NULL/0 while locked */
	int initialized;
	fs_key *master;
	fs_keyring *ring;
	const fs_space_key *cur; /* the key new records are sealed with (one of ring's), or NULL */
	char space_id[FS_CRYPTO_SPACE_ID_MAX]; /* "" while a joining device waits for its space */
	int creds_loaded;                      /* credentials unwrapped since start */
	unsigned fails;                        /* consecutive wrong passphrases */
	uint64_t next_try_ms;
	uint64_t last_use_ms;

	struct fsd_remote remotes[FSD_REMOTES_MAX];
	size_t n_remotes;
	CURLM *multi;
	uint64_t net_change_at; /* 0: none pending */
	uint64_t net_changes;

	/* fieldsyncd.c: the WAL is copied back in a quiet moment (quiet_checkpoint) */
	unsigned wal_seen;     /* fs_store_wal_pages at the last turn */
	uint64_t wal_quiet_at; /* when the log, unchanged since, gets checkpointed */
	uint64_t checkpoints;

	struct MHD_Daemon *mhd;
	int listen_fd, mhd_fd, nl_fd, sig_fd;
	int stop;

	struct fs_cw_index *cw; /* casework index: NULL while locked (cwapi.c) */
	fs_cw_config cw_rules;  /* the agency's rules, from cfg.agency_rules */
	int cw_fresh;           /* keys arrived: build the next index from scratch */

	/* team.c: this device in its space's team (docs/team.md) */
	fs_team *team;                            /* resolved, or NULL */
	int team_err;                             /* why not resolved (FS_E_TEAM_*), or FS_OK */
	char genesis[FS_CRYPTO_KID_MAX];          /* the pinned first version, "" until known */
	int joining;                              /* set up by join: the space is not known yet */
	char dev_id[FS_CRYPTO_DEVICE_ID_MAX];     /* this device's id, "" before setup */
	char dev_name[FS_CRYPTO_DEVICE_NAME_MAX]; /* shown to the team */
	char dev_fp[FS_CRYPTO_FINGERPRINT_MAX];
	uint64_t team_docs, team_seq; /* what the resolved team was read from */
};

/* How a device is set up (POST /v1/init and /v1/join). */
struct fsd_setup {
	int join;             /* 1: no space of its own; it joins one from a remote */
	const char *name;     /* the device's name for its team, NULL: a default */
	const char *recovery; /* the office recovery public key ("fsrk1-..."), or NULL */
};

/* log.c: one line to stderr with a level; never a secret or record content. */
void fsd_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void fsd_log_set_level(int level);
uint64_t fsd_now_ms(void); /* monotonic */
int64_t fsd_wall_ms(void); /* Unix time */
/* cJSON allocations wiped on free (they hold record plaintext). */
void fsd_json_hooks(void);

/* vault.c */
int fsd_vault_open(struct fsd *d, fs_errbuf *eb) FS_WUR;
int fsd_vault_init(struct fsd *d, const char *pass, size_t len, const struct fsd_setup *o,
                   fs_errbuf *eb) FS_WUR;
void fsd_vault_unlocked(struct fsd *d);
int fsd_vault_unlock(struct fsd *d, const char *pass, size_t len, fs_errbuf *eb) FS_WUR;
void fsd_vault_lock(struct fsd *d, const char *why);
int fsd_vault_passwd(struct fsd *d, const char *old, size_t old_len, const char *nw, size_t new_len,
                     fs_errbuf *eb) FS_WUR;
int fsd_vault_ready(struct fsd *d, fs_errbuf *eb) FS_WUR; /* initialized and unlocked */
/* Unlocked and holding the key new records use (FS_E_TEAM_NOKEY/REVOKED). */
int fsd_vault_writable(struct fsd *d, fs_errbuf *eb) FS_WUR;
/* The device identity, unwrapped (caller frees with fs_crypto_identity_free). */
int fsd_vault_identity(struct fsd *d, fs_identity **id, fs_errbuf *eb) FS_WUR;
/* Keeps a space key: wrapped under the master key in the store, and in the ring. */
int fsd_vault_key_add(struct fsd *d, const fs_space_key *k, fs_errbuf *eb) FS_WUR;
/* New records use the ring's key kid from now on (NULL or unknown: none). */
void fsd_vault_key_use(struct fsd *d, const char *kid);
/* Record plaintext (JSON text) <-> envelope, under the space's keys. */
int fsd_vault_seal(struct fsd *d, const char *doc_id, const char *plain, size_t len, char **env,
                   size_t *env_len, fs_errbuf *eb) FS_WUR;
int fsd_vault_open_doc(struct fsd *d, const char *doc_id, const uint8_t *env, size_t env_len,
                       cJSON **plain, fs_errbuf *eb) FS_WUR;

/* remotes.c */
int fsd_remotes_load(struct fsd *d, fs_errbuf *eb) FS_WUR;
void fsd_remotes_free(struct fsd *d);
int fsd_remote_add(struct fsd *d, const cJSON *req, fs_errbuf *eb) FS_WUR;
int fsd_remote_remove(struct fsd *d, const char *name, fs_errbuf *eb) FS_WUR;
/* After an unlock: unwrap credentials once and start the remotes that waited. */
void fsd_remotes_unlocked(struct fsd *d);
void fsd_remotes_sync_now(struct fsd *d);
void fsd_remotes_network_changed(struct fsd *d);
void fsd_remotes_local_edit(struct fsd *d);
/* Steps what is due, never waiting for the network; returns ms until the
 * next step wanted (UINT64_MAX: none). */
uint64_t fsd_remotes_step(struct fsd *d, uint64_t now);
/* Hands the multi handle's finished transfers to their remotes; returns
 * how many there were. */
int fsd_remotes_multi_done(struct fsd *d);
cJSON *fsd_remotes_json(struct fsd *d);

/* api.c */
/* Seals {"type":type,"data":data} (data: JSON text, len bytes) for id and
 * writes it on base (NULL: a new document), queued for push; rev gets the
 * new revision. The generic record API and casework both write this way. */
int fsd_record_put(struct fsd *d, const char *id, const char *base, const char *type,
                   const char *data, size_t len, char rev[FS_REV_MAX], fs_errbuf *eb) FS_WUR;
int fsd_api_start(struct fsd *d, fs_errbuf *eb) FS_WUR;
void fsd_api_accept(struct fsd *d);
void fsd_api_run(struct fsd *d);
uint64_t fsd_api_timeout(struct fsd *d); /* ms, UINT64_MAX: none */
void fsd_api_stop(struct fsd *d);

/* cwapi.c: the casework endpoints; fsd_cw_drop wipes the index (on lock),
 * fsd_cw_reset too, without saving it: new keys may make more records
 * readable, so the next index is built from all of them. */
void fsd_cw_drop(struct fsd *d);
void fsd_cw_reset(struct fsd *d);
/* Reads cfg's agency_rules file (defaults when none) into *out: checked at
 * start and at every reload, so a bad file is named before anyone asks `due`. */
int fsd_cw_rules_load(const fs_daemon_config *cfg, fs_cw_config *out, fs_errbuf *eb) FS_WUR;
int fsd_cw_index(struct fsd *d, fs_errbuf *eb) FS_WUR;
int fsd_cw_route(struct fsd *d, const char *method, char **s, size_t n, const char *q,
                 const char *case_id, const char *now_s, const char *all_s, const cJSON *body,
                 cJSON **out, unsigned *status, fs_errbuf *eb) FS_WUR;

/* team.c (docs/team.md) */
/* At start: the pinned space, this device's id and name, the team as stored. */
int fsd_team_open(struct fsd *d, fs_errbuf *eb) FS_WUR;
void fsd_team_close(struct fsd *d);
/* Setup's part (fsd_vault_init): device name, joining flag, recovery key. */
int fsd_team_setup(struct fsd *d, const struct fsd_setup *o, fs_errbuf *eb) FS_WUR;
/* Re-reads the team documents when they changed (always with force) and,
 * when unlocked, acts on them: keys sealed to us, our own first documents,
 * the current key, a stale version. Problems are logged, never fatal. */
void fsd_team_refresh(struct fsd *d, int force);
/* Lets the casework index trust every device of the team for signatures. */
void fsd_team_trust(struct fsd *d);
/* Whether this device may write records: a member holding the current key
 * of a team that resolves (or a space of its own not founded yet). Else
 * FS_E_TEAM_NOKEY or FS_E_TEAM_REVOKED, with why. */
int fsd_team_may_write(struct fsd *d, fs_errbuf *eb) FS_WUR;
/* The team as GET /v1/team shows it (full), or its summary for status:
 * device counts instead of the devices and the problems. */
cJSON *fsd_team_json(struct fsd *d, int full);
int fsd_team_approve(struct fsd *d, const char *fingerprint, cJSON **out, fs_errbuf *eb) FS_WUR;
int fsd_team_revoke(struct fsd *d, const char *who, cJSON **out, fs_errbuf *eb) FS_WUR;
int fsd_team_recovery_set(struct fsd *d, const char *pub, cJSON **out, fs_errbuf *eb) FS_WUR;
int fsd_team_recover(struct fsd *d, const char *text, size_t len, const char *pass, size_t pass_len,
                     cJSON **out, fs_errbuf *eb) FS_WUR;

/* netwatch_linux.c: a NETLINK_ROUTE socket; -1 where there is none. */
int fsd_netwatch_open(fs_errbuf *eb);
/* Drains the socket; returns 1 if a link, address or route changed. */
int fsd_netwatch_read(int fd);

#endif
