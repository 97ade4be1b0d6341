/*
 * daemon/vault.c: the daemon's keys and their life: first setup (key file,
 * device identity, and either a new space with its first key or, to join a
 * team, none yet), unlock with the passphrase (wrong ones slowed down
 * exponentially), lock (keys wiped), passphrase change, the space keys this
 * device holds (every version, wrapped under the master key) and sealing
 * and opening record envelopes. team.c decides which keys arrive and which
 * one new records use; only this file touches them.
 */
#include "daemon_int.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define META_SPACE_ID   FSD_META_SPACE_ID
#define META_IDENTITY   FSD_META_IDENTITY
#define META_SPACEKEY   "spacekey.current" /* kid of the key new records use */
#define META_SPACEKEY_P "spacekey:"        /* + kid: the wrapped key */

static fs_kdf_params kdf(const struct fsd *d)
{
	fs_kdf_params p = {FS_CRYPTO_KDF_OPS_DEFAULT, FS_CRYPTO_KDF_MEM_DEFAULT};
	if (d->cfg.test_kdf_min)
		p = fs_crypto_kdf_params_min();
	return p;
}

int fsd_vault_open(struct fsd *d, fs_errbuf *eb)
{
	uint8_t *v = NULL;
	size_t n = 0;
	int rc;

	d->initialized = access(d->key_path, F_OK) == 0;
	d->space_id[0] = '\0';
	if (!d->initialized)
		return FS_OK;
	/* A device that joined a team learns its space id from the server. */
	rc = fs_store_meta_get(d->st, META_SPACE_ID, &v, &n, eb);
	if (rc == FS_E_NOTFOUND) {
		fs_err_clear(eb);
		return FS_OK;
	}
	if (rc == FS_OK && (n == 0 || n >= sizeof(d->space_id)))
		rc = fs_err_set(eb, FS_E_STORE_CORRUPT, "bad space id in the store");
	if (rc == FS_OK) {
		memcpy(d->space_id, v, n);
		d->space_id[n] = '\0';
	}
	free(v);
	return rc;
}

struct keyload {
	struct fsd *d;
	fs_keyring *ring;
	fs_errbuf *eb;
	int rc;
};

static int load_one(void *ctx, const char *key, const uint8_t *val, size_t len)
{
	struct keyload *kl = ctx;
	fs_space_key *k = NULL;
	int rc;

	(void)key;
	rc = fs_crypto_spacekey_unwrap(val, len, kl->d->master, &k, kl->eb);
	if (rc == FS_OK && strcmp(fs_crypto_spacekey_space(k), kl->d->space_id) != 0)
		rc = fs_err_set(kl->eb, FS_E_MISBOUND, "a stored space key is for another space");
	if (rc == FS_OK)
		rc = fs_crypto_keyring_add(kl->ring, k, kl->eb);
	fs_crypto_spacekey_free(k);
	if (rc == FS_E_TOOBIG) {
		/* More kept than a ring holds: unlock with the ones that fit. */
		fsd_log(FS_DAEMON_LOG_WARN, "a space key was not loaded: the key ring is full");
		rc = FS_OK;
	}
	kl->rc = rc;
	return rc;
}

/* Loads every space key this device holds into a fresh ring; the one named
 * current (team.c keeps it up to date) becomes d->cur. */
static int load_space_keys(struct fsd *d, fs_errbuf *eb)
{
	struct keyload kl = {d, NULL, eb, FS_OK};
	uint8_t *kid = NULL;
	size_t kid_len = 0;
	int rc;

	if ((rc = fs_crypto_keyring_new(&kl.ring, eb)) != FS_OK)
		return rc;
	rc = fs_store_meta_list(d->st, META_SPACEKEY_P, load_one, &kl, eb);
	if (rc != FS_OK) {
		fs_crypto_keyring_free(kl.ring);
		return kl.rc != FS_OK ? kl.rc : rc;
	}
	d->ring = kl.ring;
	rc = fs_store_meta_get(d->st, META_SPACEKEY, &kid, &kid_len, eb);
	if (rc == FS_E_NOTFOUND) {
		fs_err_clear(eb);
		return FS_OK; /* a joining device: no key yet */
	}
	if (rc == FS_OK && (kid_len == 0 || kid_len >= FS_CRYPTO_KID_MAX))
		rc = fs_err_set(eb, FS_E_STORE_CORRUPT, "bad key id in the store");
	if (rc == FS_OK) {
		char k[FS_CRYPTO_KID_MAX];
		memcpy(k, kid, kid_len);
		k[kid_len] = '\0';
		fsd_vault_key_use(d, k);
	}
	free(kid);
	return rc;
}

void fsd_vault_key_use(struct fsd *d, const char *kid)
{
	const fs_space_key *k = kid && d->ring ? fs_crypto_keyring_find(d->ring, kid) : NULL;
	fs_errbuf eb;

	if (k == d->cur)
		return;
	/* Borrowed from the ring, which never drops a key while unlocked. */
	d->cur = k;
	if (k && fs_store_meta_set(d->st, META_SPACEKEY, (const uint8_t *)kid, strlen(kid), &eb) !=
	             FS_OK)
		fsd_log(FS_DAEMON_LOG_WARN, "current key not saved: %s", fs_errname(eb.code));
}

int fsd_vault_key_add(struct fsd *d, const fs_space_key *k, fs_errbuf *eb)
{
	uint8_t skw[FS_CRYPTO_SPACEKEY_WRAPPED_MAX];
	char meta[sizeof(META_SPACEKEY_P) + FS_CRYPTO_KID_MAX];
	size_t skw_len = 0;
	int rc;

	if (d->master == NULL || d->ring == NULL)
		return fs_err_set(eb, FS_E_DAEMON_LOCKED, NULL);
	if (strcmp(fs_crypto_spacekey_space(k), d->space_id) != 0)
		return fs_err_set(eb, FS_E_MISBOUND, "a key for another space");
	if (fs_crypto_keyring_find(d->ring, fs_crypto_spacekey_kid(k)))
		return fs_crypto_keyring_add(d->ring, k, eb); /* FS_OK, or another key: refused */
	/* Checked before the key reaches the disk: a key kept there that the
	 * ring cannot hold would only fail a later unlock. */
	if (fs_crypto_keyring_count(d->ring) >= FS_CRYPTO_KEYRING_MAX)
		return fs_err_set(eb, FS_E_TOOBIG,
		                  "this device holds %d key versions, the most it can",
		                  FS_CRYPTO_KEYRING_MAX);
	snprintf(meta, sizeof(meta), "%s%s", META_SPACEKEY_P, fs_crypto_spacekey_kid(k));
	/* On disk first: a key in memory only would be gone at the next unlock. */
	if ((rc = fs_crypto_spacekey_wrap(k, d->master, skw, &skw_len, eb)) != FS_OK ||
	    (rc = fs_store_meta_set(d->st, meta, skw, skw_len, eb)) != FS_OK)
		return rc;
	return fs_crypto_keyring_add(d->ring, k, eb);
}

int fsd_vault_identity(struct fsd *d, fs_identity **id, fs_errbuf *eb)
{
	uint8_t *w = NULL;
	size_t n = 0;
	int rc;

	*id = NULL;
	if (d->master == NULL)
		return fs_err_set(eb, FS_E_DAEMON_LOCKED, NULL);
	if ((rc = fs_store_meta_get(d->st, META_IDENTITY, &w, &n, eb)) == FS_OK)
		rc = fs_crypto_identity_unwrap(w, n, d->master, id, eb);
	free(w);
	return rc;
}

static int collect(void *ctx, const char *key, const uint8_t *val, size_t len)
{
	(void)val;
	(void)len;
	return fs_strv_push(ctx, key);
}

/* Drops the meta keys under prefix (a setup that never reached its key
 * file left them, wrapped under a master key nobody has). */
static int purge(struct fsd *d, const char *prefix, fs_errbuf *eb)
{
	fs_strv p = {0};
	int rc = fs_store_meta_list(d->st, prefix, collect, &p, eb);

	for (size_t i = 0; i < p.n && rc == FS_OK; i++)
		rc = fs_store_meta_delete(d->st, p.v[i], eb);
	fs_strv_free(&p);
	return rc == FS_E_NOMEM ? fs_err_set(eb, rc, NULL) : rc;
}

int fsd_vault_init(struct fsd *d, const char *pass, size_t len, const struct fsd_setup *o,
                   fs_errbuf *eb)
{
	uint8_t kf[FS_CRYPTO_KEYFILE_BYTES];
	uint8_t idw[FS_CRYPTO_IDENTITY_WRAPPED_BYTES];
	uint8_t skw[FS_CRYPTO_SPACEKEY_WRAPPED_MAX];
	char meta[sizeof(META_SPACEKEY_P) + FS_CRYPTO_KID_MAX];
	char space[FS_CRYPTO_SPACE_ID_MAX] = "";
	fs_kdf_params p = kdf(d);
	fs_key *master = NULL;
	fs_identity *id = NULL;
	fs_space_key *k = NULL;
	size_t skw_len = 0;
	int rc;

	if (d->initialized)
		return fs_err_set(eb, FS_E_EXISTS, "this device is already set up");
	if ((rc = purge(d, META_SPACEKEY_P, eb)) != FS_OK ||
	    (rc = purge(d, FSD_META_TEAMDOC, eb)) != FS_OK ||
	    (rc = fs_store_meta_delete(d->st, META_SPACEKEY, eb)) != FS_OK ||
	    (rc = fs_store_meta_delete(d->st, META_SPACE_ID, eb)) != FS_OK)
		return rc;
	if (!o->join)
		fs_crypto_space_id_new(space);
	/* Everything the key file will protect is written first: the key file
	 * appears last, so a crash leaves a device that is simply not set up. */
	if ((rc = fs_crypto_keyfile_create(pass, len, &p, kf, &master, eb)) != FS_OK ||
	    (rc = fs_crypto_identity_new(&id, eb)) != FS_OK ||
	    (rc = fs_crypto_identity_wrap(id, master, idw, eb)) != FS_OK ||
	    (rc = fs_store_meta_set(d->st, META_IDENTITY, idw, sizeof(idw), eb)) != FS_OK ||
	    (rc = fsd_team_setup(d, o, eb)) != FS_OK)
		goto out;
	if (!o->join) {
		if ((rc = fs_crypto_spacekey_new(space, 1, &k, eb)) != FS_OK ||
		    (rc = fs_crypto_spacekey_wrap(k, master, skw, &skw_len, eb)) != FS_OK)
			goto out;
		snprintf(meta, sizeof(meta), "%s%s", META_SPACEKEY_P, fs_crypto_spacekey_kid(k));
		if ((rc = fs_store_meta_set(d->st, META_SPACE_ID, (const uint8_t *)space,
		                            strlen(space), eb)) != FS_OK ||
		    (rc = fs_store_meta_set(d->st, meta, skw, skw_len, eb)) != FS_OK ||
		    (rc = fs_store_meta_set(d->st, META_SPACEKEY,
		                            (const uint8_t *)fs_crypto_spacekey_kid(k),
		                            strlen(fs_crypto_spacekey_kid(k)), eb)) != FS_OK)
			goto out;
	}
	if ((rc = fs_crypto_keyfile_save(d->key_path, kf, eb)) != FS_OK)
		goto out;
	d->initialized = 1;
	memcpy(d->space_id, space, sizeof(space));
	fsd_vault_lock(d, NULL);
	d->master = master;
	master = NULL;
	if ((rc = load_space_keys(d, eb)) != FS_OK) {
		fsd_vault_lock(d, NULL);
		goto out;
	}
	d->last_use_ms = fsd_now_ms();
	if (o->join)
		fsd_log(FS_DAEMON_LOG_INFO,
		        "set up to join a space: new key file and device identity");
	else
		fsd_log(FS_DAEMON_LOG_INFO, "set up: new key file, device identity and space %s",
		        space);
	fsd_vault_unlocked(d);
	rc = FS_OK;
out:
	sodium_memzero(kf, sizeof(kf));
	fs_crypto_key_free(master);
	fs_crypto_identity_free(id);
	fs_crypto_spacekey_free(k);
	return rc;
}

/* After every unlock: credentials, then the team (which may bring keys,
 * write this device's first documents, or pick another current key). */
void fsd_vault_unlocked(struct fsd *d)
{
	fsd_remotes_unlocked(d);
	fsd_team_refresh(d, 1);
}

/* Refuses an attempt while the slowdown after wrong passphrases runs. */
static int throttled(struct fsd *d, fs_errbuf *eb)
{
	uint64_t now = fsd_now_ms();

	if (d->next_try_ms > now) {
		unsigned s = (unsigned)((d->next_try_ms - now + 999) / 1000);
		fsd_log(FS_DAEMON_LOG_WARN, "passphrase attempt refused: slowed down for %u s", s);
		return fs_err_set(eb, FS_E_DAEMON_SLOWDOWN, "try again in %u s", s);
	}
	return FS_OK;
}

static void wrong(struct fsd *d, const char *what)
{
	unsigned s;

	d->fails++;
	s = d->fails >= 10 ? FSD_SLOWDOWN_MAX_S : 1u << (d->fails - 1);
	if (s > FSD_SLOWDOWN_MAX_S)
		s = FSD_SLOWDOWN_MAX_S;
	d->next_try_ms = fsd_now_ms() + (uint64_t)s * 1000u;
	fsd_log(FS_DAEMON_LOG_WARN,
	        "%s refused: wrong passphrase (%u in a row); next attempt in %u s", what, d->fails,
	        s);
}

static int load_keyfile(struct fsd *d, uint8_t buf[FS_CRYPTO_KEYFILE_MAX], size_t *len,
                        fs_errbuf *eb)
{
	int rc = fs_crypto_keyfile_load(d->key_path, buf, len, eb);
	if (rc == FS_E_NOTFOUND)
		rc = fs_err_set(eb, FS_E_DAEMON_NOINIT, NULL);
	return rc;
}

int fsd_vault_unlock(struct fsd *d, const char *pass, size_t len, fs_errbuf *eb)
{
	uint8_t kf[FS_CRYPTO_KEYFILE_MAX];
	size_t kf_len = 0;
	fs_key *master = NULL;
	int rc;

	if (!d->initialized)
		return fs_err_set(eb, FS_E_DAEMON_NOINIT, NULL);
	if ((rc = throttled(d, eb)) != FS_OK)
		return rc;
	if ((rc = load_keyfile(d, kf, &kf_len, eb)) != FS_OK)
		goto out;
	rc = fs_crypto_keyfile_unlock(kf, kf_len, pass, len, &master, eb);
	if (rc == FS_E_PASSPHRASE) {
		wrong(d, "unlock");
		goto out;
	}
	if (rc != FS_OK)
		goto out;
	d->fails = 0;
	d->next_try_ms = 0;
	fsd_vault_lock(d, NULL);
	d->master = master;
	master = NULL;
	if ((rc = load_space_keys(d, eb)) != FS_OK) {
		fsd_vault_lock(d, NULL);
		goto out;
	}
	d->last_use_ms = fsd_now_ms();
	fsd_log(FS_DAEMON_LOG_INFO, "unlocked");
	fsd_vault_unlocked(d);
	rc = FS_OK;
out:
	sodium_memzero(kf, sizeof(kf));
	fs_crypto_key_free(master);
	return rc;
}

void fsd_vault_lock(struct fsd *d, const char *why)
{
	int was = d->master != NULL;

	fsd_cw_drop(d); /* the index holds decrypted names */
	fs_crypto_key_free(d->master);
	fs_crypto_keyring_free(d->ring); /* d->cur is one of its keys */
	d->master = NULL;
	d->ring = NULL;
	d->cur = NULL;
	if (was && why)
		fsd_log(FS_DAEMON_LOG_INFO, "locked (%s): record keys wiped from memory", why);
}

int fsd_vault_passwd(struct fsd *d, const char *old, size_t old_len, const char *nw, size_t new_len,
                     fs_errbuf *eb)
{
	uint8_t kf[FS_CRYPTO_KEYFILE_MAX], out[FS_CRYPTO_KEYFILE_BYTES];
	fs_kdf_params p = kdf(d);
	size_t kf_len = 0;
	int rc;

	if (!d->initialized)
		return fs_err_set(eb, FS_E_DAEMON_NOINIT, NULL);
	if ((rc = throttled(d, eb)) != FS_OK)
		return rc;
	if ((rc = load_keyfile(d, kf, &kf_len, eb)) != FS_OK)
		goto out;
	rc = fs_crypto_keyfile_rekey(kf, kf_len, old, old_len, nw, new_len, &p, out, eb);
	if (rc == FS_E_PASSPHRASE) {
		wrong(d, "passphrase change");
		goto out;
	}
	if (rc != FS_OK || (rc = fs_crypto_keyfile_save(d->key_path, out, eb)) != FS_OK)
		goto out;
	d->fails = 0;
	fsd_log(FS_DAEMON_LOG_INFO, "passphrase changed");
out:
	sodium_memzero(kf, sizeof(kf));
	sodium_memzero(out, sizeof(out));
	return rc;
}

int fsd_vault_ready(struct fsd *d, fs_errbuf *eb)
{
	if (!d->initialized)
		return fs_err_set(eb, FS_E_DAEMON_NOINIT, NULL);
	if (d->master == NULL || d->ring == NULL)
		return fs_err_set(eb, FS_E_DAEMON_LOCKED, NULL);
	d->last_use_ms = fsd_now_ms();
	return FS_OK;
}

int fsd_vault_writable(struct fsd *d, fs_errbuf *eb)
{
	int rc;

	if ((rc = fsd_vault_ready(d, eb)) != FS_OK)
		return rc;
	return fsd_team_may_write(d, eb);
}

int fsd_vault_seal(struct fsd *d, const char *doc_id, const char *plain, size_t len, char **env,
                   size_t *env_len, fs_errbuf *eb)
{
	int rc;

	if ((rc = fsd_vault_writable(d, eb)) != FS_OK)
		return rc;
	return fs_crypto_env_seal(d->cur, doc_id, (const uint8_t *)plain, len, env, env_len, eb);
}

int fsd_vault_open_doc(struct fsd *d, const char *doc_id, const uint8_t *env, size_t env_len,
                       cJSON **plain, fs_errbuf *eb)
{
	uint8_t *p = NULL;
	size_t n = 0;
	int rc;

	*plain = NULL;
	if ((rc = fsd_vault_ready(d, eb)) != FS_OK)
		return rc;
	if ((rc = fs_crypto_env_open(d->ring, d->space_id, doc_id, (const char *)env, env_len, &p,
	                             &n, eb)) != FS_OK)
		return rc;
	rc = fs_json_parse((const char *)p, n, FS_CRYPTO_RECORD_MAX, FS_JSON_DEPTH_DEFAULT, plain,
	                   eb);
	fs_crypto_plain_free(p, n);
	return rc;
}
