/*
 * daemon/fieldsyncd.c: the fieldsync daemon: configuration, the one store
 * it owns, and the single poll loop (via curl_multi_poll, whose extra
 * descriptors carry the local API, the netlink watcher and signals) that
 * drives the local API, continuous replication and the timers.
 */
#include "daemon_int.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#define STORE_FILE   "store.db"
#define KEY_FILE     "key"
#define SLEEP_MAX_MS 3600000u /* a wait with nothing due; nothing is due is the usual case */
#define STEP_ROUNDS  4        /* steps again in one turn for transfers that ended at once */
/* An edit's commit never copies the write-ahead log back into the file:
 * that waits for the store to be quiet this long (then it costs a person
 * nothing), unless the log reaches CKPT_MAX_PAGES first (a long pull). A
 * log under CKPT_MIN_PAGES waits for more, as SQLite's own default would. */
#define CKPT_QUIET_MS  1000u
#define CKPT_MIN_PAGES 256u
#define CKPT_MAX_PAGES 4096u  /* 16 MiB of log */
#define CKPT_RETRY_MS  30000u /* after a checkpoint held back (a reader) or failed */

static void usage(FILE *f)
{
	fprintf(f, "usage: fieldsyncd [--config FILE] [--data-dir DIR] [--help]\n"
	           "\n"
	           "The fieldsync daemon: keeps records encrypted in a local store and replicates\n"
	           "them with the remotes added by \"fieldsync remote add\". It runs in the\n"
	           "foreground and logs to stderr; SIGTERM or SIGINT stop it, SIGHUP reloads the\n"
	           "configuration.\n"
	           "\n"
	           "  --config FILE    configuration file (default\n"
	           "                   $XDG_CONFIG_HOME/fieldsync/fieldsyncd.conf)\n"
	           "  --data-dir DIR   where the store and the key file live (default\n"
	           "                   $XDG_DATA_HOME/fieldsync)\n"
	           "\n"
	           "Exit status: 0 after a clean stop, 1 when it cannot start (the message says\n"
	           "why, e.g. another daemon holds the store), 2 for a usage error.\n");
}

static int reload(struct fsd *d, const char *config, const char *data_dir)
{
	fs_daemon_config c;
	fs_cw_config rules;
	fs_errbuf eb;

	if (fs_daemon_config_load(config, data_dir, &c, &eb) != FS_OK ||
	    fsd_cw_rules_load(&c, &rules, &eb) != FS_OK) {
		fsd_log(FS_DAEMON_LOG_ERROR, "reload refused, keeping the old configuration: %s",
		        eb.msg);
		return -1;
	}
	if (strcmp(c.data_dir, d->cfg.data_dir) || strcmp(c.socket_path, d->cfg.socket_path))
		fsd_log(FS_DAEMON_LOG_WARN, "data_dir and socket change only at restart");
	memcpy(c.data_dir, d->cfg.data_dir, sizeof(c.data_dir));
	memcpy(c.socket_path, d->cfg.socket_path, sizeof(c.socket_path));
	d->cfg = c;
	d->cw_rules = rules;
	fsd_cw_drop(d); /* rebuilt with the new rules at the next casework request */
	fsd_log_set_level(c.log_level);
	fsd_log(FS_DAEMON_LOG_INFO, "configuration reloaded from %s", c.config_path);
	return 0;
}

static uint64_t min64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

/* Returns how long until the next quiet checkpoint is due (SLEEP_MAX_MS: none). */
static uint64_t quiet_checkpoint(struct fsd *d, uint64_t now)
{
	unsigned pages = fs_store_wal_pages(d->st);
	fs_errbuf eb;

	if (pages != d->wal_seen) {
		d->wal_seen = pages;
		d->wal_quiet_at = now + CKPT_QUIET_MS;
	}
	if (pages < CKPT_MIN_PAGES)
		return SLEEP_MAX_MS;
	if (d->wal_quiet_at > now)
		return d->wal_quiet_at - now;
	if (fs_store_checkpoint(d->st, &eb) == FS_OK) {
		d->checkpoints++;
		d->wal_seen = fs_store_wal_pages(d->st);
		return SLEEP_MAX_MS;
	}
	if (eb.code != FS_E_STORE_BUSY) /* not fatal: a commit past CKPT_MAX_PAGES copies too */
		fsd_log(FS_DAEMON_LOG_WARN, "store checkpoint: %s", eb.msg);
	/* Held back or failed: once more after a longer spell, not in a loop. */
	d->wal_seen = fs_store_wal_pages(d->st);
	d->wal_quiet_at = now + CKPT_RETRY_MS;
	return CKPT_RETRY_MS;
}

static int loop(struct fsd *d, const char *config, const char *data_dir)
{
	enum { W_SIG, W_LISTEN, W_MHD, W_NL, W_N };
	struct curl_waitfd w[W_N];
	unsigned nw = 0;
	int running;

	while (!d->stop) {
		uint64_t now = fsd_now_ms(), wait = SLEEP_MAX_MS;

		if (d->net_change_at && d->net_change_at <= now) {
			d->net_change_at = 0;
			d->net_changes++;
			fsd_log(FS_DAEMON_LOG_INFO, "network changed: trying the remotes now");
			fsd_remotes_network_changed(d);
		}
		wait = min64(wait, fsd_remotes_step(d, now));
		/* A step that started a transfer also performed it: one that ended
		 * at once (a refused connection) is read and stepped now, not after
		 * one more trip through poll. */
		for (int i = 0; fsd_remotes_multi_done(d) > 0; i++) {
			if (i == STEP_ROUNDS) {
				wait = 0;
				break;
			}
			wait = min64(SLEEP_MAX_MS, fsd_remotes_step(d, fsd_now_ms()));
		}
		now = fsd_now_ms();
		if (d->master && d->cfg.auto_lock_s) {
			uint64_t at = d->last_use_ms + (uint64_t)d->cfg.auto_lock_s * 1000u;
			if (at <= now)
				fsd_vault_lock(d, "idle");
			else
				wait = min64(wait, at - now);
		}
		if (d->net_change_at)
			wait = min64(wait, d->net_change_at > now ? d->net_change_at - now : 0);
		wait = min64(wait, fsd_api_timeout(d));
		wait = min64(wait, quiet_checkpoint(d, now));

		nw = 0;
		memset(w, 0, sizeof(w));
		w[nw++] = (struct curl_waitfd){.fd = d->sig_fd, .events = CURL_WAIT_POLLIN};
		w[nw++] = (struct curl_waitfd){.fd = d->listen_fd, .events = CURL_WAIT_POLLIN};
		w[nw++] = (struct curl_waitfd){.fd = d->mhd_fd, .events = CURL_WAIT_POLLIN};
		if (d->nl_fd >= 0)
			w[nw++] = (struct curl_waitfd){.fd = d->nl_fd, .events = CURL_WAIT_POLLIN};
		if (curl_multi_poll(d->multi, w, nw, (int)wait, NULL) != CURLM_OK) {
			fsd_log(FS_DAEMON_LOG_ERROR, "poll failed");
			return -1;
		}
		curl_multi_perform(d->multi, &running);
		fsd_remotes_multi_done(d);
		if (w[W_SIG].revents) {
			struct signalfd_siginfo si;
			while (read(d->sig_fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
				if (si.ssi_signo == SIGHUP) {
					reload(d, config, data_dir);
				} else {
					fsd_log(FS_DAEMON_LOG_INFO, "signal %u: stopping",
					        si.ssi_signo);
					d->stop = 1;
				}
			}
		}
		if (w[W_LISTEN].revents)
			fsd_api_accept(d);
		fsd_api_run(d);
		if (nw > W_NL && w[W_NL].revents && fsd_netwatch_read(d->nl_fd) &&
		    d->net_change_at == 0)
			d->net_change_at = fsd_now_ms() + FS_DAEMON_NET_SETTLE_MS;
	}
	return 0;
}

int main(int argc, char **argv)
{
	const char *config = NULL, *data_dir = NULL;
	struct fsd d;
	fs_store_opts so = {.checkpoint_pages = CKPT_MAX_PAGES};
	fs_errbuf eb;
	sigset_t ss;
	int rc = 1;

	memset(&d, 0, sizeof(d));
	d.listen_fd = d.mhd_fd = d.nl_fd = d.sig_fd = -1;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			usage(stdout);
			return 0;
		} else if (!strcmp(argv[i], "--config") && i + 1 < argc) {
			config = argv[++i];
		} else if (!strcmp(argv[i], "--data-dir") && i + 1 < argc) {
			data_dir = argv[++i];
		} else {
			usage(stderr);
			return 2;
		}
	}
	fsd_json_hooks();
	if (fs_crypto_init() != FS_OK || fs_crypto_harden(&eb) != FS_OK) {
		fsd_log(FS_DAEMON_LOG_ERROR, "cannot start the cryptography: %s", eb.msg);
		return 1;
	}
	if (fs_daemon_config_load(config, data_dir, &d.cfg, &eb) != FS_OK) {
		fprintf(stderr, "fieldsyncd: %s: %s\n", fs_strerror(eb.code), eb.msg);
		return 1;
	}
	if (fsd_cw_rules_load(&d.cfg, &d.cw_rules, &eb) != FS_OK) {
		fprintf(stderr, "fieldsyncd: %s: %s\n", fs_strerror(eb.code), eb.msg);
		return 1;
	}
	fsd_log_set_level(d.cfg.log_level);
	if (d.cfg.test_kdf_min)
		fsd_log(FS_DAEMON_LOG_WARN, "test_kdf_min is on: passphrases are cheap to guess "
		                            "(tests only)");
	signal(SIGPIPE, SIG_IGN);
	umask(077); /* the store, its journal and the key file are for this user only */
	sigemptyset(&ss);
	sigaddset(&ss, SIGTERM);
	sigaddset(&ss, SIGINT);
	sigaddset(&ss, SIGHUP);
	sigprocmask(SIG_BLOCK, &ss, NULL);
	if ((d.sig_fd = signalfd(-1, &ss, SFD_NONBLOCK | SFD_CLOEXEC)) < 0) {
		fsd_log(FS_DAEMON_LOG_ERROR, "signalfd: %s", strerror(errno));
		goto out;
	}
	if ((size_t)snprintf(d.store_path, sizeof(d.store_path), "%.*s/%s",
	                     (int)(sizeof(d.store_path) - 16), d.cfg.data_dir,
	                     STORE_FILE) >= sizeof(d.store_path) ||
	    (size_t)snprintf(d.key_path, sizeof(d.key_path), "%.*s/%s",
	                     (int)(sizeof(d.key_path) - 16), d.cfg.data_dir,
	                     KEY_FILE) >= sizeof(d.key_path) ||
	    strlen(d.cfg.data_dir) > sizeof(d.store_path) - 16) {
		fsd_log(FS_DAEMON_LOG_ERROR, "data directory path too long");
		goto out;
	}
	if (fs_daemon_mkdirs(d.cfg.data_dir, &eb) != FS_OK) {
		fsd_log(FS_DAEMON_LOG_ERROR, "%s", eb.msg);
		goto out;
	}
	if (fs_store_open(d.store_path, &so, &d.st, &eb) != FS_OK) {
		fsd_log(FS_DAEMON_LOG_ERROR, "cannot open the store %s: %s (%s)", d.store_path,
		        fs_strerror(eb.code), eb.msg);
		goto out;
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK ||
	    (d.multi = curl_multi_init()) == NULL) {
		fsd_log(FS_DAEMON_LOG_ERROR, "libcurl did not start");
		goto out;
	}
	if (fsd_vault_open(&d, &eb) != FS_OK || fsd_remotes_load(&d, &eb) != FS_OK ||
	    fsd_team_open(&d, &eb) != FS_OK) {
		fsd_log(FS_DAEMON_LOG_ERROR, "cannot read the store: %s (%s)", fs_strerror(eb.code),
		        eb.msg);
		goto out;
	}
	if ((d.nl_fd = fsd_netwatch_open(&eb)) < 0)
		fsd_log(FS_DAEMON_LOG_WARN,
		        "no network watcher (%s): remotes are retried on a timer", eb.msg);
	if (fsd_api_start(&d, &eb) != FS_OK) {
		fsd_log(FS_DAEMON_LOG_ERROR, "local API: %s", eb.msg);
		goto out;
	}
	fsd_log(FS_DAEMON_LOG_INFO, "started (pid %ld): data %s, API %s, %s, %zu remote(s)",
	        (long)getpid(), d.cfg.data_dir, d.cfg.socket_path,
	        d.initialized ? "locked" : "not set up yet", d.n_remotes);
	rc = loop(&d, config, data_dir) == 0 ? 0 : 1;
	fsd_log(FS_DAEMON_LOG_INFO, "stopped");
out:
	fsd_api_stop(&d);
	fsd_remotes_free(&d);
	fsd_vault_lock(&d, NULL);
	fsd_team_close(&d);
	if (d.multi)
		curl_multi_cleanup(d.multi);
	curl_global_cleanup();
	fs_store_close(d.st);
	if (d.nl_fd >= 0)
		close(d.nl_fd);
	if (d.sig_fd >= 0)
		close(d.sig_fd);
	return rc;
}
