/*
 * crypto/crypto.h: fieldsync's cryptography over libsodium: the key
 * hierarchy, the record envelope, device identity and the revision id
 * function. It touches neither SQLite nor the network.
 */
#ifndef FS_CRYPTO_H
#define FS_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#include "fs.h"

/* Starts libsodium; safe to call more than once. FS_E_CRYPTO_INIT on failure. */
int fs_crypto_init(void) FS_WUR;

/*
 * Revision ids (DESIGN section 4): "<generation>-<32 hex>". The hash is the
 * first 16 bytes of BLAKE2b-256 over: one byte with the length of the
 * parent revision id, the parent revision id (empty for a first revision),
 * one byte for the deleted flag (0 or 1), then the body bytes. Deterministic,
 * so a retried upload creates no new revision.
 */
#define FS_REV_HASH_BYTES 16
#define FS_REV_MAX 64 /* "<gen>-<hex>" plus NUL, with room for other servers' ids */

/*
 * Writes the child revision id of parent (NULL or "" for a new document)
 * into out (FS_REV_MAX bytes). FS_E_ARG if parent is not a valid revision id
 * or its generation would overflow.
 */
int fs_crypto_rev_id(const char *parent, int deleted, const uint8_t *body, size_t body_len,
                     char out[FS_REV_MAX]) FS_WUR;

/*
 * Splits a revision id "N-hash" into its generation and hash. Returns FS_OK
 * or FS_E_INPUT when rev is not of that shape (N ≥ 1, hash of 1 to
 * FS_REV_MAX-22 printable characters without '-' or spaces).
 */
int fs_crypto_rev_parse(const char *rev, unsigned long *gen, const char **hash) FS_WUR;

#endif
