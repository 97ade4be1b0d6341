/*
 * crypto/keyfile.c: the master key and the passphrase-protected key file
 * that holds it (layout in docs/keys.md). A checksum over the whole file is
 * checked before Argon2id runs, so a damaged file is FS_E_KEYFILE and only
 * an intact file with the wrong passphrase is FS_E_PASSPHRASE. Saving
 * replaces the file atomically.
 */
#include "crypto_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define KF_MAGIC          "FSKF"
#define KF_MAGIC_LEN      4
#define KF_ALG_ARGON2ID13 1
#define OFF_VERSION       4
#define OFF_ALG           5
#define OFF_OPS           8
#define OFF_MEM           16
#define OFF_SALT          24
#define OFF_WRAP          40 /* nonce, then the wrapped master key and tag */
#define OFF_CHECK         112
#define CHECK_BYTES       16
#define WRAP_BYTES        (FS_CRYPTO_NONCE_BYTES + FS_CRYPTO_KEY_BYTES + FS_CRYPTO_TAG_BYTES)

_Static_assert(OFF_WRAP + WRAP_BYTES == OFF_CHECK, "key file layout");
_Static_assert(OFF_CHECK + CHECK_BYTES == FS_CRYPTO_KEYFILE_BYTES, "key file size");

static void put_u64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_u64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static void checksum(const uint8_t *blob, uint8_t out[CHECK_BYTES])
{
	crypto_generichash(out, CHECK_BYTES, blob, OFF_CHECK, NULL, 0);
}

static fs_key *key_alloc(void)
{
	return sodium_malloc(sizeof(fs_key));
}

void fs_crypto_key_free(fs_key *k)
{
	if (k)
		sodium_free(k); /* sodium_free wipes before unmapping */
}

const uint8_t *fs_crypto_key_bytes(const fs_key *k)
{
	return k->k;
}

fs_kdf_params fs_crypto_kdf_params_min(void)
{
	fs_kdf_params p = {crypto_pwhash_OPSLIMIT_MIN, crypto_pwhash_MEMLIMIT_MIN};
	return p;
}

static int params_ok(const fs_kdf_params *p)
{
	return p->opslimit >= crypto_pwhash_OPSLIMIT_MIN && p->opslimit <= FS_CRYPTO_KDF_OPS_MAX &&
	       p->memlimit >= crypto_pwhash_MEMLIMIT_MIN && p->memlimit <= FS_CRYPTO_KDF_MEM_MAX;
}

static int pass_ok(const char *pass, size_t len)
{
	return pass != NULL && len > 0 && len <= FS_CRYPTO_PASS_MAX;
}

/* Argon2id into a locked buffer. FS_E_NOMEM is the only failure libsodium
 * reports for parameters within bounds. */
static int derive_kek(const char *pass, size_t pass_len, const uint8_t *salt,
                      const fs_kdf_params *p, uint8_t **kek, fs_errbuf *eb)
{
	uint8_t *k = sodium_malloc(FS_CRYPTO_KEY_BYTES);

	*kek = NULL;
	if (k == NULL)
		return fs_err_set(eb, FS_E_NOMEM, "no memory for the key-encryption key");
	if (crypto_pwhash(k, FS_CRYPTO_KEY_BYTES, pass, pass_len, salt, p->opslimit,
	                  (size_t)p->memlimit, crypto_pwhash_ALG_ARGON2ID13) != 0) {
		sodium_free(k);
		return fs_err_set(eb, FS_E_NOMEM, "Argon2id could not get %llu MiB of memory",
		                  (unsigned long long)(p->memlimit >> 20));
	}
	*kek = k;
	return FS_OK;
}

/* Writes the whole key file around master; salt and nonce NULL: random. */
static int build(const char *pass, size_t pass_len, const fs_kdf_params *params,
                 const uint8_t *salt, const uint8_t *nonce, const uint8_t *master,
                 uint8_t blob[FS_CRYPTO_KEYFILE_BYTES], fs_errbuf *eb)
{
	fs_kdf_params p = {FS_CRYPTO_KDF_OPS_DEFAULT, FS_CRYPTO_KDF_MEM_DEFAULT};
	uint8_t b[FS_CRYPTO_KEYFILE_BYTES];
	uint8_t *kek = NULL;
	int r;

	if (params)
		p = *params;
	if (!pass_ok(pass, pass_len))
		return fs_err_set(eb, FS_E_ARG, "the passphrase must be 1 to %d bytes",
		                  FS_CRYPTO_PASS_MAX);
	if (!params_ok(&p))
		return fs_err_set(eb, FS_E_ARG, "Argon2id parameters out of bounds");
	memset(b, 0, sizeof(b));
	memcpy(b, KF_MAGIC, KF_MAGIC_LEN);
	b[OFF_VERSION] = FS_CRYPTO_KEYFILE_VERSION;
	b[OFF_ALG] = KF_ALG_ARGON2ID13;
	put_u64(b + OFF_OPS, p.opslimit);
	put_u64(b + OFF_MEM, p.memlimit);
	if (salt)
		memcpy(b + OFF_SALT, salt, FS_CRYPTO_SALT_BYTES);
	else
		randombytes_buf(b + OFF_SALT, FS_CRYPTO_SALT_BYTES);
	if ((r = derive_kek(pass, pass_len, b + OFF_SALT, &p, &kek, eb)) != FS_OK)
		goto out;
	/* The header up to the nonce is associated data: parameters and salt
	 * cannot be changed without the unwrap failing. */
	fs_crypto_wrap(kek, b, OFF_WRAP, master, FS_CRYPTO_KEY_BYTES, nonce, b + OFF_WRAP);
	checksum(b, b + OFF_CHECK);
	memcpy(blob, b, sizeof(b));
	r = FS_OK;
out:
	if (kek)
		sodium_free(kek);
	return r;
}

/* Format checks that need no passphrase. */
static int check(const uint8_t *blob, size_t len, fs_kdf_params *p, fs_errbuf *eb)
{
	uint8_t sum[CHECK_BYTES];

	if (blob == NULL || len < KF_MAGIC_LEN + 1 || memcmp(blob, KF_MAGIC, KF_MAGIC_LEN) != 0)
		return fs_err_set(eb, FS_E_KEYFILE, "not a fieldsync key file");
	if (len == FS_CRYPTO_KEYFILE_BYTES) {
		checksum(blob, sum);
		if (sodium_memcmp(sum, blob + OFF_CHECK, CHECK_BYTES) != 0) {
			/* A newer format may have another layout: say so rather
			 * than "damaged". */
			if (blob[OFF_VERSION] > FS_CRYPTO_KEYFILE_VERSION)
				goto newer;
			return fs_err_set(eb, FS_E_KEYFILE, "the key file is damaged (checksum)");
		}
	} else if (blob[OFF_VERSION] > FS_CRYPTO_KEYFILE_VERSION) {
		goto newer;
	} else {
		return fs_err_set(eb, FS_E_KEYFILE, "the key file has %zu bytes, expected %d", len,
		                  FS_CRYPTO_KEYFILE_BYTES);
	}
	if (blob[OFF_VERSION] > FS_CRYPTO_KEYFILE_VERSION)
		goto newer;
	if (blob[OFF_VERSION] != FS_CRYPTO_KEYFILE_VERSION || blob[OFF_ALG] != KF_ALG_ARGON2ID13 ||
	    blob[6] != 0 || blob[7] != 0)
		return fs_err_set(eb, FS_E_KEYFILE, "the key file has an unknown layout");
	p->opslimit = get_u64(blob + OFF_OPS);
	p->memlimit = get_u64(blob + OFF_MEM);
	if (!params_ok(p))
		return fs_err_set(eb, FS_E_KEYFILE,
		                  "the key file's Argon2id parameters are out of "
		                  "bounds");
	return FS_OK;
newer:
	return fs_err_set(eb, FS_E_KEYFILE_VERSION,
	                  "key file format %u is newer than this "
	                  "version of fieldsync reads",
	                  (unsigned)blob[OFF_VERSION]);
}

int fs_crypto_keyfile_params(const uint8_t *blob, size_t blob_len, fs_kdf_params *params,
                             fs_errbuf *eb)
{
	fs_kdf_params p;
	int r;

	if (params == NULL)
		return fs_err_set(eb, FS_E_ARG, "no output for the parameters");
	memset(params, 0, sizeof(*params));
	if ((r = check(blob, blob_len, &p, eb)) != FS_OK)
		return r;
	*params = p;
	return FS_OK;
}

int fs_crypto_keyfile_create_fixed(const char *pass, size_t pass_len, const fs_kdf_params *params,
                                   const uint8_t salt[FS_CRYPTO_SALT_BYTES],
                                   const uint8_t nonce[FS_CRYPTO_NONCE_BYTES],
                                   const uint8_t master[FS_CRYPTO_KEY_BYTES],
                                   uint8_t blob[FS_CRYPTO_KEYFILE_BYTES], fs_errbuf *eb)
{
	if (blob == NULL || master == NULL)
		return fs_err_set(eb, FS_E_ARG, "no key file buffer");
	return build(pass, pass_len, params, salt, nonce, master, blob, eb);
}

int fs_crypto_keyfile_create(const char *pass, size_t pass_len, const fs_kdf_params *params,
                             uint8_t blob[FS_CRYPTO_KEYFILE_BYTES], fs_key **master, fs_errbuf *eb)
{
	fs_key *k = NULL;
	int r;

	if (master)
		*master = NULL;
	if (blob == NULL)
		return fs_err_set(eb, FS_E_ARG, "no key file buffer");
	if ((k = key_alloc()) == NULL)
		return fs_err_set(eb, FS_E_NOMEM, "no memory for the master key");
	randombytes_buf(k->k, sizeof(k->k));
	if ((r = build(pass, pass_len, params, NULL, NULL, k->k, blob, eb)) != FS_OK)
		goto out;
	if (master) {
		*master = k;
		k = NULL;
	}
	r = FS_OK;
out:
	fs_crypto_key_free(k);
	return r;
}

int fs_crypto_keyfile_unlock(const uint8_t *blob, size_t blob_len, const char *pass,
                             size_t pass_len, fs_key **master, fs_errbuf *eb)
{
	fs_kdf_params p;
	uint8_t *kek = NULL;
	fs_key *k = NULL;
	int r;

	if (master == NULL)
		return fs_err_set(eb, FS_E_ARG, "no output for the master key");
	*master = NULL;
	if ((r = check(blob, blob_len, &p, eb)) != FS_OK)
		goto out;
	if (!pass_ok(pass, pass_len)) {
		/* No passphrase of that length can have made this file. */
		r = fs_err_set(eb, FS_E_PASSPHRASE, "wrong passphrase");
		goto out;
	}
	if ((k = key_alloc()) == NULL) {
		r = fs_err_set(eb, FS_E_NOMEM, "no memory for the master key");
		goto out;
	}
	if ((r = derive_kek(pass, pass_len, blob + OFF_SALT, &p, &kek, eb)) != FS_OK)
		goto out;
	if (fs_crypto_unwrap(kek, blob, OFF_WRAP, blob + OFF_WRAP, WRAP_BYTES, k->k) != 0) {
		r = fs_err_set(eb, FS_E_PASSPHRASE, "wrong passphrase");
		goto out;
	}
	*master = k;
	k = NULL;
	r = FS_OK;
out:
	if (kek)
		sodium_free(kek);
	fs_crypto_key_free(k);
	return r;
}

int fs_crypto_keyfile_rekey(const uint8_t *blob, size_t blob_len, const char *old_pass,
                            size_t old_len, const char *new_pass, size_t new_len,
                            const fs_kdf_params *new_params, uint8_t out[FS_CRYPTO_KEYFILE_BYTES],
                            fs_errbuf *eb)
{
	fs_key *k = NULL;
	int r;

	if (out == NULL)
		return fs_err_set(eb, FS_E_ARG, "no key file buffer");
	if (!pass_ok(new_pass, new_len))
		return fs_err_set(eb, FS_E_ARG, "the new passphrase must be 1 to %d bytes",
		                  FS_CRYPTO_PASS_MAX);
	if ((r = fs_crypto_keyfile_unlock(blob, blob_len, old_pass, old_len, &k, eb)) != FS_OK)
		goto out;
	/* build writes out only on success, so out may alias blob. */
	r = build(new_pass, new_len, new_params, NULL, NULL, k->k, out, eb);
out:
	fs_crypto_key_free(k);
	return r;
}

/* The folder of path, for the fsync that makes a rename durable. */
static int dir_of(const char *path, char *dir, size_t size)
{
	const char *slash = strrchr(path, '/');
	size_t n;

	if (slash == NULL) {
		snprintf(dir, size, ".");
		return 0;
	}
	n = slash == path ? 1 : (size_t)(slash - path);
	if (n >= size)
		return -1;
	memcpy(dir, path, n);
	dir[n] = '\0';
	return 0;
}

int fs_crypto_keyfile_save(const char *path, const uint8_t blob[FS_CRYPTO_KEYFILE_BYTES],
                           fs_errbuf *eb)
{
	char tmp[PATH_MAX], dir[PATH_MAX];
	int fd = -1, dfd = -1, r;
	size_t off = 0;

	if (path == NULL || blob == NULL || path[0] == '\0')
		return fs_err_set(eb, FS_E_ARG, "key file path and content are required");
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.XXXXXX", path) >= sizeof(tmp) ||
	    dir_of(path, dir, sizeof(dir)) != 0)
		return fs_err_set(eb, FS_E_ARG, "key file path too long");
	/* mkstemp creates the file with mode 0600. */
	if ((fd = mkstemp(tmp)) < 0) {
		tmp[0] = '\0';
		r = fs_err_set(eb, FS_E_IO, "cannot create a file next to %s: %s", path,
		               strerror(errno));
		goto out;
	}
	while (off < FS_CRYPTO_KEYFILE_BYTES) {
		ssize_t w = write(fd, blob + off, FS_CRYPTO_KEYFILE_BYTES - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			r = fs_err_set(eb, FS_E_IO, "cannot write %s: %s", tmp,
			               w < 0 ? strerror(errno) : "short write");
			goto out;
		}
		off += (size_t)w;
	}
	if (fsync(fd) != 0 || close(fd) != 0) {
		fd = -1;
		r = fs_err_set(eb, FS_E_IO, "cannot write %s: %s", tmp, strerror(errno));
		goto out;
	}
	fd = -1;
	if (rename(tmp, path) != 0) {
		r = fs_err_set(eb, FS_E_IO, "cannot replace %s: %s", path, strerror(errno));
		goto out;
	}
	tmp[0] = '\0';
	if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 || fsync(dfd) != 0) {
		r = fs_err_set(eb, FS_E_IO, "cannot sync folder %s: %s", dir, strerror(errno));
		goto out;
	}
	r = FS_OK;
out:
	if (fd >= 0)
		close(fd);
	if (dfd >= 0)
		close(dfd);
	if (tmp[0] != '\0')
		unlink(tmp);
	return r;
}

int fs_crypto_keyfile_load(const char *path, uint8_t buf[FS_CRYPTO_KEYFILE_MAX], size_t *len,
                           fs_errbuf *eb)
{
	uint8_t extra;
	size_t off = 0;
	int fd, r;

	if (len == NULL || buf == NULL || path == NULL)
		return fs_err_set(eb, FS_E_ARG, "key file path and buffer are required");
	*len = 0;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		if (errno == ENOENT)
			return fs_err_set(eb, FS_E_NOTFOUND, "no key file at %s", path);
		return fs_err_set(eb, FS_E_IO, "cannot open %s: %s", path, strerror(errno));
	}
	/* One byte past the maximum tells an oversized file from a full one. */
	for (;;) {
		uint8_t *dst = off < FS_CRYPTO_KEYFILE_MAX ? buf + off : &extra;
		size_t want = off < FS_CRYPTO_KEYFILE_MAX ? FS_CRYPTO_KEYFILE_MAX - off : 1;
		ssize_t n = read(fd, dst, want);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = fs_err_set(eb, FS_E_IO, "cannot read %s: %s", path, strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		if (off >= FS_CRYPTO_KEYFILE_MAX) {
			r = fs_err_set(eb, FS_E_KEYFILE, "%s is too large to be a key file", path);
			goto out;
		}
		off += (size_t)n;
	}
	*len = off;
	r = FS_OK;
out:
	close(fd);
	return r;
}
