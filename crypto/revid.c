/*
 * crypto/revid.c: deterministic revision ids. Two devices that write the same
 * bytes on the same parent get the same id, which makes replays idempotent.
 */
#include "crypto.h"

#include <errno.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HASH_MAX (FS_REV_MAX - 22) /* 20 digits of generation, '-', NUL */

int fs_crypto_rev_parse(const char *rev, unsigned long *gen, const char **hash)
{
	char *end = NULL;
	unsigned long g;
	size_t hl;

	if (rev == NULL || rev[0] < '1' || rev[0] > '9')
		return FS_E_INPUT;
	errno = 0;
	g = strtoul(rev, &end, 10);
	if (errno != 0 || end == NULL || *end != '-' || g == 0)
		return FS_E_INPUT;
	hl = strlen(end + 1);
	if (hl == 0 || hl > HASH_MAX)
		return FS_E_INPUT;
	for (const char *p = end + 1; *p; p++)
		if (*p <= ' ' || *p > '~' || *p == '-')
			return FS_E_INPUT;
	if (gen)
		*gen = g;
	if (hash)
		*hash = end + 1;
	return FS_OK;
}

int fs_crypto_rev_id(const char *parent, int deleted, const uint8_t *body, size_t body_len,
                     char out[FS_REV_MAX])
{
	crypto_generichash_state st;
	unsigned char h[crypto_generichash_BYTES];
	char hex[FS_REV_HASH_BYTES * 2 + 1];
	unsigned long gen = 0;
	size_t plen = 0;
	unsigned char b;

	if (out == NULL || (body == NULL && body_len > 0))
		return FS_E_ARG;
	out[0] = '\0';
	if (parent != NULL && parent[0] != '\0') {
		if (fs_crypto_rev_parse(parent, &gen, NULL) != FS_OK || gen == ULONG_MAX)
			return FS_E_ARG;
		plen = strlen(parent);
	}
	if (crypto_generichash_init(&st, NULL, 0, sizeof(h)) != 0)
		return FS_E_INTERNAL;
	b = (unsigned char)plen;
	crypto_generichash_update(&st, &b, 1);
	if (plen)
		crypto_generichash_update(&st, (const unsigned char *)parent, plen);
	b = deleted ? 1 : 0;
	crypto_generichash_update(&st, &b, 1);
	if (body_len)
		crypto_generichash_update(&st, body, body_len);
	crypto_generichash_final(&st, h, sizeof(h));
	sodium_bin2hex(hex, sizeof(hex), h, FS_REV_HASH_BYTES);
	snprintf(out, FS_REV_MAX, "%lu-%s", gen + 1, hex);
	return FS_OK;
}
