/*
 * crypto/util.c: small pieces every crypto/ file uses: label checks, the
 * length-prefixed encoding of associated data, AEAD wrapping under a local
 * key, envelope nonces, wiping frees, and process hardening.
 */
#include "crypto_int.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>

int fs_crypto_label_ok(const char *s, size_t max)
{
	size_t n;

	if (s == NULL)
		return 0;
	n = strnlen(s, max);
	if (n == 0 || n >= max)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return 0;
	}
	return 1;
}

size_t fs_crypto_put_u32(uint8_t *p, uint32_t n)
{
	p[0] = (uint8_t)n;
	p[1] = (uint8_t)(n >> 8);
	p[2] = (uint8_t)(n >> 16);
	p[3] = (uint8_t)(n >> 24);
	return 4;
}

size_t fs_crypto_put_lp(uint8_t *p, const void *s, size_t n)
{
	fs_crypto_put_u32(p, (uint32_t)n);
	if (n)
		memcpy(p + 4, s, n);
	return 4 + n;
}

void fs_crypto_wrap(const uint8_t key[FS_CRYPTO_KEY_BYTES], const uint8_t *ad, size_t ad_len,
                    const uint8_t *plain, size_t plain_len,
                    const uint8_t nonce[FS_CRYPTO_NONCE_BYTES], uint8_t *out)
{
	if (nonce)
		memcpy(out, nonce, FS_CRYPTO_NONCE_BYTES);
	else
		randombytes_buf(out, FS_CRYPTO_NONCE_BYTES);
	/* Cannot fail for lengths this small. */
	crypto_aead_xchacha20poly1305_ietf_encrypt(out + FS_CRYPTO_NONCE_BYTES, NULL, plain,
	                                           plain_len, ad, ad_len, NULL, out, key);
}

int fs_crypto_unwrap(const uint8_t key[FS_CRYPTO_KEY_BYTES], const uint8_t *ad, size_t ad_len,
                     const uint8_t *in, size_t in_len, uint8_t *plain)
{
	if (in_len < FS_CRYPTO_NONCE_BYTES + FS_CRYPTO_TAG_BYTES)
		return -1;
	return crypto_aead_xchacha20poly1305_ietf_decrypt(
	    plain, NULL, NULL, in + FS_CRYPTO_NONCE_BYTES, in_len - FS_CRYPTO_NONCE_BYTES, ad,
	    ad_len, in, key);
}

/*
 * Envelope nonces are handed out from a page of getrandom output rather than
 * one system call each (which cost about 10% of sealing a 1 KB record). The
 * page is MADV_WIPEONFORK: a forked child finds it zeroed, so "ready" is 0
 * and it refills from the kernel instead of reusing its parent's nonces.
 * Where the kernel lacks that (before Linux 4.14), every nonce is a call.
 */
struct nonce_pool {
	size_t used;
	int ready;
	uint8_t buf[4096 - 2 * sizeof(size_t)];
};

static struct nonce_pool *pool;
static int pool_off;
static pthread_mutex_t pool_mu = PTHREAD_MUTEX_INITIALIZER;

void fs_crypto_nonce(uint8_t out[FS_CRYPTO_NONCE_BYTES])
{
	pthread_mutex_lock(&pool_mu);
	if (pool == NULL && !pool_off) {
		void *p = mmap(NULL, sizeof(*pool), PROT_READ | PROT_WRITE,
		               MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p != MAP_FAILED && madvise(p, sizeof(*pool), MADV_WIPEONFORK) == 0)
			pool = p;
		else {
			if (p != MAP_FAILED)
				munmap(p, sizeof(*pool));
			pool_off = 1;
		}
	}
	if (pool == NULL) {
		pthread_mutex_unlock(&pool_mu);
		randombytes_buf(out, FS_CRYPTO_NONCE_BYTES);
		return;
	}
	if (!pool->ready || sizeof(pool->buf) - pool->used < FS_CRYPTO_NONCE_BYTES) {
		randombytes_buf(pool->buf, sizeof(pool->buf));
		pool->used = 0;
		pool->ready = 1;
	}
	memcpy(out, pool->buf + pool->used, FS_CRYPTO_NONCE_BYTES);
	/* Never handed out twice, even if the bookkeeping were wrong. */
	memset(pool->buf + pool->used, 0, FS_CRYPTO_NONCE_BYTES);
	pool->used += FS_CRYPTO_NONCE_BYTES;
	pthread_mutex_unlock(&pool_mu);
}

void fs_crypto_plain_free(uint8_t *p, size_t len)
{
	if (p == NULL)
		return;
	sodium_memzero(p, len);
	free(p);
}

int fs_crypto_harden(fs_errbuf *eb)
{
	struct rlimit rl = {0, 0};

	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
		return fs_err_set(eb, FS_E_IO, "cannot make the process non-dumpable: %s",
		                  strerror(errno));
	if (setrlimit(RLIMIT_CORE, &rl) != 0)
		return fs_err_set(eb, FS_E_IO, "cannot disable core files: %s", strerror(errno));
	return FS_OK;
}
