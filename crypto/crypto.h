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
#define FS_REV_MAX        64 /* "<gen>-<hex>" plus NUL, with room for other servers' ids */

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

/* ------------------------------------------------------------------------
 * Memory for secrets. Every key object below lives in sodium_malloc'ed
 * (locked, guarded) memory and is wiped when freed.
 */

/* Wipes len bytes at p, then frees p (plain malloc). NULL is a no-op. For
 * plaintext buffers returned by fs_crypto_env_open. */
void fs_crypto_plain_free(uint8_t *p, size_t len);

/*
 * Process hardening for processes that hold keys: not dumpable (no core
 * file, no ptrace by other processes of the same user, /proc/PID/mem
 * unreadable) and RLIMIT_CORE 0. FS_E_IO if the kernel refuses.
 */
int fs_crypto_harden(fs_errbuf *eb) FS_WUR;

/* ------------------------------------------------------------------------
 * Master key and key file (docs/keys.md). The passphrase goes through
 * Argon2id to a key-encryption key (KEK) that is never stored; the KEK wraps
 * a random 32-byte master key. The 128-byte key file holds the Argon2id
 * parameters and salt, so the parameters can be raised by a passphrase
 * change without touching anything the master key protects.
 */
#define FS_CRYPTO_KEY_BYTES       32
#define FS_CRYPTO_KEYFILE_BYTES   128
#define FS_CRYPTO_KEYFILE_VERSION 1
#define FS_CRYPTO_PASS_MAX        1024 /* bytes of passphrase accepted */

/* Default Argon2id cost: 0.5-0.7 s and 256 MiB per unlock on the reference
 * machine (bench_crypto prints the time). Tests pass the libsodium minimum. */
#define FS_CRYPTO_KDF_OPS_DEFAULT 3ULL
#define FS_CRYPTO_KDF_MEM_DEFAULT (256ULL << 20)
/* Bounds accepted from a key file, so a crafted file cannot ask for
 * terabytes or hours. */
#define FS_CRYPTO_KDF_OPS_MAX 64ULL
#define FS_CRYPTO_KDF_MEM_MAX (4ULL << 30)

typedef struct fs_kdf_params {
	uint64_t opslimit; /* Argon2id passes, >= crypto_pwhash_OPSLIMIT_MIN */
	uint64_t memlimit; /* bytes, >= crypto_pwhash_MEMLIMIT_MIN */
} fs_kdf_params;

/* The libsodium minimum cost: for tests only, never for a real key file. */
fs_kdf_params fs_crypto_kdf_params_min(void);

/* A 32-byte symmetric key (the master key) in locked memory. */
typedef struct fs_key fs_key;

/* Wipes and frees k. NULL is a no-op. */
void fs_crypto_key_free(fs_key *k);

/*
 * Creates a new random master key and its key file: writes the key file to
 * blob and, if master is not NULL, returns the master key (caller frees with
 * fs_crypto_key_free). params NULL means the defaults. Errors: FS_E_ARG
 * (empty or too long passphrase, parameters out of bounds), FS_E_NOMEM.
 */
int fs_crypto_keyfile_create(const char *pass, size_t pass_len, const fs_kdf_params *params,
                             uint8_t blob[FS_CRYPTO_KEYFILE_BYTES], fs_key **master,
                             fs_errbuf *eb) FS_WUR;

/*
 * Unlocks a key file. On success *master is the master key (caller frees
 * with fs_crypto_key_free). Errors: FS_E_KEYFILE (not a key file, wrong
 * length, damaged: the checksum is checked before any key derivation),
 * FS_E_KEYFILE_VERSION (newer format), FS_E_PASSPHRASE (intact file, wrong
 * passphrase), FS_E_NOMEM (Argon2id could not get its memory).
 */
int fs_crypto_keyfile_unlock(const uint8_t *blob, size_t blob_len, const char *pass,
                             size_t pass_len, fs_key **master, fs_errbuf *eb) FS_WUR;

/*
 * Changes the passphrase: unlocks blob with old_pass and writes a new key
 * file wrapping the same master key under new_pass with a fresh salt and
 * new_params (NULL: the defaults) to out (which may be blob itself). Records
 * and wrapped keys stay readable. Errors as fs_crypto_keyfile_unlock.
 */
int fs_crypto_keyfile_rekey(const uint8_t *blob, size_t blob_len, const char *old_pass,
                            size_t old_len, const char *new_pass, size_t new_len,
                            const fs_kdf_params *new_params, uint8_t out[FS_CRYPTO_KEYFILE_BYTES],
                            fs_errbuf *eb) FS_WUR;

/* Largest key file fs_crypto_keyfile_load reads: room for later formats. */
#define FS_CRYPTO_KEYFILE_MAX 4096

/*
 * Writes a key file to path so that a crash leaves either the old or the new
 * file: a temporary file (mode 0600) in the same folder, fsync, rename over
 * path, fsync of the folder. FS_E_IO (with the path in the message).
 */
int fs_crypto_keyfile_save(const char *path, const uint8_t blob[FS_CRYPTO_KEYFILE_BYTES],
                           fs_errbuf *eb) FS_WUR;

/*
 * Reads the key file at path into buf and sets *len. FS_E_NOTFOUND when
 * there is none, FS_E_KEYFILE when it is larger than FS_CRYPTO_KEYFILE_MAX,
 * FS_E_IO otherwise. The content is checked by fs_crypto_keyfile_unlock.
 */
int fs_crypto_keyfile_load(const char *path, uint8_t buf[FS_CRYPTO_KEYFILE_MAX], size_t *len,
                           fs_errbuf *eb) FS_WUR;

/* Reads the cost parameters of a key file without unlocking it, e.g. to
 * decide whether to raise them. FS_E_KEYFILE or FS_E_KEYFILE_VERSION. */
int fs_crypto_keyfile_params(const uint8_t *blob, size_t blob_len, fs_kdf_params *params,
                             fs_errbuf *eb) FS_WUR;

/* ------------------------------------------------------------------------
 * Device identity: an X25519 key pair (receives sealed space keys) and an
 * Ed25519 key pair (signs visits, device documents, key envelopes).
 */
#define FS_CRYPTO_BOX_PK_BYTES           32
#define FS_CRYPTO_SIGN_PK_BYTES          32
#define FS_CRYPTO_SIG_BYTES              64
#define FS_CRYPTO_IDENTITY_WRAPPED_BYTES 173
/* "12345 67890 12345 67890 12345 67890" and NUL */
#define FS_CRYPTO_FINGERPRINT_MAX 36
#define FS_CRYPTO_SIGN_MAX        (16U << 20) /* largest message sign/verify accept */
#define FS_CRYPTO_CONTEXT_MAX     64          /* longest signature context label */

typedef struct fs_identity fs_identity;

/* New random identity; caller frees with fs_crypto_identity_free. */
int fs_crypto_identity_new(fs_identity **out, fs_errbuf *eb) FS_WUR;

/* Wipes and frees id. NULL is a no-op. */
void fs_crypto_identity_free(fs_identity *id);

/* The public halves (32 bytes each). Either output may be NULL. */
void fs_crypto_identity_public(const fs_identity *id, uint8_t box_pk[FS_CRYPTO_BOX_PK_BYTES],
                               uint8_t sign_pk[FS_CRYPTO_SIGN_PK_BYTES]);

/* Wraps the secret halves under master; public halves stay readable in the
 * blob (docs/keys.md). out is FS_CRYPTO_IDENTITY_WRAPPED_BYTES long. */
int fs_crypto_identity_wrap(const fs_identity *id, const fs_key *master,
                            uint8_t out[FS_CRYPTO_IDENTITY_WRAPPED_BYTES], fs_errbuf *eb) FS_WUR;

/* Unwraps; caller frees *out with fs_crypto_identity_free. Errors:
 * FS_E_KEYFILE (wrong length or magic), FS_E_KEYFILE_VERSION, FS_E_TAMPERED
 * (does not authenticate under this master key, or halves do not match). */
int fs_crypto_identity_unwrap(const uint8_t *blob, size_t blob_len, const fs_key *master,
                              fs_identity **out, fs_errbuf *eb) FS_WUR;

/* Reads the public halves out of a wrapped identity without any key. */
int fs_crypto_identity_wrapped_public(const uint8_t *blob, size_t blob_len,
                                      uint8_t box_pk[FS_CRYPTO_BOX_PK_BYTES],
                                      uint8_t sign_pk[FS_CRYPTO_SIGN_PK_BYTES],
                                      fs_errbuf *eb) FS_WUR;

/*
 * A fingerprint two people can compare by reading it aloud: 30 digits in six
 * groups of five, from BLAKE2b over both public keys (docs/keys.md).
 */
int fs_crypto_fingerprint(const uint8_t box_pk[FS_CRYPTO_BOX_PK_BYTES],
                          const uint8_t sign_pk[FS_CRYPTO_SIGN_PK_BYTES],
                          char out[FS_CRYPTO_FINGERPRINT_MAX]) FS_WUR;

/*
 * Detached Ed25519 signature over a context label (what is signed, e.g.
 * "visit", "device", "keyenv") and a message, so a signature made for one
 * purpose never verifies for another. Signed bytes: docs/keys.md.
 */
int fs_crypto_sign(const fs_identity *id, const char *context, const uint8_t *msg, size_t msg_len,
                   uint8_t sig[FS_CRYPTO_SIG_BYTES], fs_errbuf *eb) FS_WUR;

/* FS_OK, or FS_E_SIGNATURE when sig is not sign_pk's over context and msg. */
int fs_crypto_verify(const uint8_t sign_pk[FS_CRYPTO_SIGN_PK_BYTES], const char *context,
                     const uint8_t *msg, size_t msg_len, const uint8_t sig[FS_CRYPTO_SIG_BYTES],
                     fs_errbuf *eb) FS_WUR;

/* ------------------------------------------------------------------------
 * Space keys: one random 32-byte key per space and version. A space id is a
 * random id (fs_crypto_space_id_new) chosen when the space is created; a kid
 * is "<version>-<16 hex random>" so two devices rotating at once never
 * produce the same kid. Space ids, kids and _ids are public.
 */
#define FS_CRYPTO_SPACE_ID_MAX         65   /* 1..64 characters [A-Za-z0-9._-] and NUL */
#define FS_CRYPTO_KID_MAX              41   /* 1..40 characters [A-Za-z0-9._-] and NUL */
#define FS_CRYPTO_DOC_ID_MAX           1024 /* bytes of _id bound into an envelope */
#define FS_CRYPTO_SPACEKEY_WRAPPED_MAX (4 + 1 + 1 + 64 + 1 + 40 + 24 + 32 + 16)
#define FS_CRYPTO_SPACEKEY_SEALED_MAX  (1 + 1 + 64 + 1 + 40 + 32 + 48)

typedef struct fs_space_key fs_space_key;

/* Writes a new random space id (32 hex characters) to out. */
void fs_crypto_space_id_new(char out[FS_CRYPTO_SPACE_ID_MAX]);

/*
 * New random key of the given version (>= 1) for space_id; caller frees
 * with fs_crypto_spacekey_free. FS_E_ARG for a bad space id or version 0.
 */
int fs_crypto_spacekey_new(const char *space_id, uint32_t version, fs_space_key **out,
                           fs_errbuf *eb) FS_WUR;

/* Wipes and frees k. NULL is a no-op. */
void fs_crypto_spacekey_free(fs_space_key *k);

/* The key's kid and space id, valid while k lives. */
const char *fs_crypto_spacekey_kid(const fs_space_key *k);
const char *fs_crypto_spacekey_space(const fs_space_key *k);

/* Wraps k under master for local storage. Writes *out_len bytes (at most
 * FS_CRYPTO_SPACEKEY_WRAPPED_MAX) to out. Space id and kid are readable in
 * the blob and bound as associated data. */
int fs_crypto_spacekey_wrap(const fs_space_key *k, const fs_key *master,
                            uint8_t out[FS_CRYPTO_SPACEKEY_WRAPPED_MAX], size_t *out_len,
                            fs_errbuf *eb) FS_WUR;

/* Unwraps; caller frees *out with fs_crypto_spacekey_free. Errors:
 * FS_E_KEYFILE (malformed), FS_E_KEYFILE_VERSION, FS_E_TAMPERED. */
int fs_crypto_spacekey_unwrap(const uint8_t *blob, size_t blob_len, const fs_key *master,
                              fs_space_key **out, fs_errbuf *eb) FS_WUR;

/* Seals k to another device's X25519 public key (crypto_box_seal). A sealed
 * box does not say who sent it: the caller signs the key-envelope document
 * that carries it. Writes *out_len bytes (at most
 * FS_CRYPTO_SPACEKEY_SEALED_MAX). */
int fs_crypto_spacekey_seal(const fs_space_key *k, const uint8_t box_pk[FS_CRYPTO_BOX_PK_BYTES],
                            uint8_t out[FS_CRYPTO_SPACEKEY_SEALED_MAX], size_t *out_len,
                            fs_errbuf *eb) FS_WUR;

/*
 * Opens a sealed space key with this device's identity; caller frees *out
 * with fs_crypto_spacekey_free. Errors: FS_E_TAMPERED (not sealed to this
 * device, or damaged: the two cannot be told apart), FS_E_MISBOUND (the key
 * is for another space than space_id), FS_E_TRUNCATED, FS_E_KEYFILE_VERSION.
 */
int fs_crypto_spacekey_open(const uint8_t *sealed, size_t sealed_len, const fs_identity *id,
                            const char *space_id, fs_space_key **out, fs_errbuf *eb) FS_WUR;

/* A set of space keys looked up by kid, so records sealed under rotated
 * keys stay readable. */
#define FS_CRYPTO_KEYRING_MAX 256

typedef struct fs_keyring fs_keyring;

/* New empty ring; caller frees with fs_crypto_keyring_free. */
int fs_crypto_keyring_new(fs_keyring **out, fs_errbuf *eb) FS_WUR;

/* Wipes and frees the ring and its keys. NULL is a no-op. */
void fs_crypto_keyring_free(fs_keyring *ring);

/* Adds a copy of k (the caller keeps k). FS_E_EXISTS if the kid is already
 * there with another key (the same key again is FS_OK), FS_E_TOOBIG when
 * full. */
int fs_crypto_keyring_add(fs_keyring *ring, const fs_space_key *k, fs_errbuf *eb) FS_WUR;

/* The key with this kid, owned by the ring, or NULL. */
const fs_space_key *fs_crypto_keyring_find(const fs_keyring *ring, const char *kid);

/* The number of keys, and the i-th (owned by the ring; NULL past the end),
 * in the order they were added. */
size_t fs_crypto_keyring_count(const fs_keyring *ring);
const fs_space_key *fs_crypto_keyring_at(const fs_keyring *ring, size_t i);

/* The version in a kid "<version>-<hex>", 0 when kid is not of that shape. */
uint32_t fs_crypto_kid_version(const char *kid);

/*
 * A public commitment to a space key: keyed BLAKE2b-256 (the key is the
 * BLAKE2b key) over "fieldsync-key-commit-v1", the space id and the kid. An
 * epoch document publishes it, so a device can tell that a key sealed to
 * it is the key of that version and not another (docs/team.md).
 */
#define FS_CRYPTO_COMMIT_BYTES 32
void fs_crypto_spacekey_commit(const fs_space_key *k, uint8_t out[FS_CRYPTO_COMMIT_BYTES]);

/* ------------------------------------------------------------------------
 * Record envelope (DESIGN section 5, docs/envelope.md):
 *   {"fs":1,"k":"<kid>","n":"<b64 nonce>","c":"<b64 ciphertext>"}
 * XChaCha20-Poly1305-IETF with a random 192-bit nonce; the associated data
 * binds version, space id, kid and _id, so an envelope copied to another
 * document or space does not authenticate (FS_E_TAMPERED).
 */
#define FS_CRYPTO_ENV_VERSION 1
#define FS_CRYPTO_RECORD_MAX  (4U << 20) /* largest plaintext record */
/* Largest envelope accepted: base64 of a full record and tag, plus room for
 * _id, _rev and _revisions (revs_limit 1000). */
#define FS_CRYPTO_ENV_MAX (((FS_CRYPTO_RECORD_MAX + 16U + 2U) / 3U) * 4U + (128U << 10))

/*
 * Seals plaintext for document doc_id in k's space. *out is the envelope
 * JSON, *out_len bytes plus a NUL not counted, malloc'ed: the caller frees
 * it with free() (it holds no secret). Errors: FS_E_TOOBIG (over FS_CRYPTO_RECORD_MAX), FS_E_ARG
 * (bad or too long doc_id), FS_E_NOMEM.
 */
int fs_crypto_env_seal(const fs_space_key *k, const char *doc_id, const uint8_t *plain,
                       size_t plain_len, char **out, size_t *out_len, fs_errbuf *eb) FS_WUR;

/*
 * Opens an envelope expected to belong to doc_id in space space_id, with the
 * key ring's key for its kid. Members "_id", "_rev" and "_revisions" are
 * ignored (the wire adds them); any other extra or missing member, or a
 * member of the wrong type, is FS_E_INPUT. On success *plain (*plain_len
 * bytes, plus a NUL not counted, so JSON text can be parsed in place) is
 * malloc'ed: free it with fs_crypto_plain_free(*plain, *plain_len).
 * Errors: FS_E_TOOBIG (envelope or record over its limit), FS_E_TRUNCATED
 * (cut-off JSON, short nonce or ciphertext), FS_E_INPUT (not an envelope),
 * FS_E_ENV_VERSION (fs is not 1), FS_E_BASE64, FS_E_MISBOUND (a wire _id
 * member names another document), FS_E_UNKNOWN_KID, FS_E_TAMPERED (does not
 * authenticate: altered, or moved from another _id or space), FS_E_NOMEM.
 */
int fs_crypto_env_open(const fs_keyring *ring, const char *space_id, const char *doc_id,
                       const char *env, size_t env_len, uint8_t **plain, size_t *plain_len,
                       fs_errbuf *eb) FS_WUR;

/* ------------------------------------------------------------------------
 * Small secrets (sync credentials: a password or a device token) wrapped
 * under the master key for the store's meta table (docs/keys.md). A context
 * label (e.g. "cred:office") is bound as associated data, so a blob moved to
 * another meta key does not unwrap. Unwrapped copies live in locked memory.
 * Blob: "FSSC" | version 1 | nonce (24) | ciphertext | tag (16).
 */
#define FS_CRYPTO_SECRET_MAX         4096
#define FS_CRYPTO_SECRET_WRAPPED_MAX (4 + 1 + 24 + FS_CRYPTO_SECRET_MAX + 16)

typedef struct fs_secret fs_secret;

/* Copies len bytes (1..FS_CRYPTO_SECRET_MAX) into locked memory; caller frees
 * *out with fs_crypto_secret_free. A NUL follows the bytes (not counted). */
int fs_crypto_secret_new(const uint8_t *data, size_t len, fs_secret **out, fs_errbuf *eb) FS_WUR;

/* Wipes and frees s. NULL is a no-op. */
void fs_crypto_secret_free(fs_secret *s);

/* The bytes (NUL-terminated) and their length, valid while s lives. */
const char *fs_crypto_secret_data(const fs_secret *s);
size_t fs_crypto_secret_len(const fs_secret *s);

/* Wraps s under master with context (1..FS_CRYPTO_CONTEXT_MAX bytes); writes
 * *out_len bytes (at most FS_CRYPTO_SECRET_WRAPPED_MAX) to out. */
int fs_crypto_secret_wrap(const fs_secret *s, const fs_key *master, const char *context,
                          uint8_t out[FS_CRYPTO_SECRET_WRAPPED_MAX], size_t *out_len,
                          fs_errbuf *eb) FS_WUR;

/* Unwraps; caller frees *out with fs_crypto_secret_free. Errors: FS_E_KEYFILE
 * (malformed), FS_E_KEYFILE_VERSION, FS_E_TAMPERED (wrong master key or
 * context, or damaged). */
int fs_crypto_secret_unwrap(const uint8_t *blob, size_t blob_len, const fs_key *master,
                            const char *context, fs_secret **out, fs_errbuf *eb) FS_WUR;

/* ------------------------------------------------------------------------
 * Teams (docs/team.md): who may read a space. The member devices and every
 * key version are announced in small signed documents that replicate with
 * the records, "team documents" with ids starting "fs:": a device's
 * self-signed key document, a member certificate, an epoch (one key
 * version: its members, every device revoked so far, the office recovery
 * key, a commitment to the key) and a key document (a space key sealed to
 * one device, signed by its sender). They hold ids, public keys and sealed
 * keys only. An fs_team resolves a set of them into who is a member now
 * and which version new records use; a document that does not parse or
 * verify counts for nothing and is listed as a problem.
 */
#define FS_CRYPTO_DEVICE_ID_MAX    33 /* 32 hex characters and NUL */
#define FS_CRYPTO_DEVICE_NAME_MAX  65 /* 1..64 bytes, no control characters, and NUL */
#define FS_CRYPTO_TEAM_PREFIX      "fs:"
#define FS_CRYPTO_TEAM_ID_MAX      128         /* "fs:key:<kid>:<to>:<by>" and NUL */
#define FS_CRYPTO_TEAM_DOC_MAX     (64u << 10) /* bytes of one team document */
#define FS_CRYPTO_TEAM_DOCS_MAX    20000u      /* team documents one fs_team reads */
#define FS_CRYPTO_TEAM_MEMBERS_MAX 1024        /* ids listed in one epoch */

/* 1 if id names a team document (starts with FS_CRYPTO_TEAM_PREFIX). */
/* A device name (1 to FS_CRYPTO_DEVICE_NAME_MAX-1 bytes, no control
 * characters) and a server token's public id (letters and digits, below
 * FS_CRYPTO_TOKEN_ID_MAX): 1 when s is one. */
int fs_crypto_device_name_ok(const char *s);
int fs_crypto_token_id_ok(const char *s);
int fs_crypto_team_doc_id(const char *id);

/* A device's id: 32 hex characters of BLAKE2b-128 over a label and both
 * public keys, so an id cannot be claimed with other keys. */
void fs_crypto_device_id(const uint8_t box_pk[FS_CRYPTO_BOX_PK_BYTES],
                         const uint8_t sign_pk[FS_CRYPTO_SIGN_PK_BYTES],
                         char out[FS_CRYPTO_DEVICE_ID_MAX]);

/* A team document ready to store: its _id and JSON body (malloc'ed, no
 * secret). Free with fs_crypto_team_doc_clear. */
typedef struct fs_team_doc {
	char id[FS_CRYPTO_TEAM_ID_MAX];
	char *body;
	size_t len;
} fs_team_doc;

void fs_crypto_team_doc_clear(fs_team_doc *d);

/* The device's own key document ("fs:device:<id>"), self-signed: its
 * public keys, a name people see next to its fingerprint (not secret: the
 * server sees it) and, if not NULL, the public id of its server token, so
 * the hub knows which token to refuse when the device is revoked. FS_E_ARG
 * for a bad space id, name or token id. */
#define FS_CRYPTO_TOKEN_ID_MAX 65 /* 1..64 letters and digits, and NUL */
int fs_crypto_team_device_doc(const fs_identity *self, const char *space_id, const char *name,
                              const char *token_id, int64_t at_ms, fs_team_doc *out,
                              fs_errbuf *eb) FS_WUR;

/* A member certificate ("fs:member:<kid>:<id>:<signer>"): signer admits
 * device_id to the key version kid. */
int fs_crypto_team_member_doc(const fs_identity *signer, const char *space_id, const char *kid,
                              const char *device_id, int64_t at_ms, fs_team_doc *out,
                              fs_errbuf *eb) FS_WUR;

/* A key document ("fs:key:<kid>:<to>:<signer>"): k sealed to the device
 * to_id, whose X25519 key is to_box, signed by signer. */
int fs_crypto_team_key_doc(const fs_identity *signer, const fs_space_key *k, const char *to_id,
                           const uint8_t to_box[FS_CRYPTO_BOX_PK_BYTES], int64_t at_ms,
                           fs_team_doc *out, fs_errbuf *eb) FS_WUR;

typedef struct fs_team_epoch_in {
	const fs_space_key
	    *key;         /* the version's key: its kid names the epoch, its space the space */
	const char *prev; /* kid of the version before; NULL for a new space (version 1) */
	const char *const *members; /* device ids (the signer among them for version 1) */
	size_t n_members;
	const char *const *revoked; /* every device revoked so far */
	size_t n_revoked;
	const uint8_t *recovery_box; /* the office recovery key's public halves, or both NULL */
	const uint8_t *recovery_sign;
	int64_t at_ms;
} fs_team_epoch_in;

/* An epoch document ("fs:epoch:<kid>") signed by signer, with a commitment
 * to in->key (fs_crypto_spacekey_commit). FS_E_ARG when the version does
 * not follow prev or an id is malformed. */
int fs_crypto_team_epoch_doc(const fs_identity *signer, const fs_team_epoch_in *in,
                             fs_team_doc *out, fs_errbuf *eb) FS_WUR;

enum fs_team_status {
	FS_TEAM_PENDING = 1, /* asked to join (a valid key document), not a member */
	FS_TEAM_MEMBER = 2,  /* a member of the current key version */
	FS_TEAM_REVOKED = 3, /* revoked: never a member again */
};

typedef struct fs_team_device {
	char id[FS_CRYPTO_DEVICE_ID_MAX];
	char name[FS_CRYPTO_DEVICE_NAME_MAX];
	uint8_t box[FS_CRYPTO_BOX_PK_BYTES];
	uint8_t sign[FS_CRYPTO_SIGN_PK_BYTES];
	char fingerprint[FS_CRYPTO_FINGERPRINT_MAX];
	int status; /* enum fs_team_status; 0 before resolve or for another space */
	char approved_by[FS_CRYPTO_DEVICE_ID_MAX]; /* the first valid certificate's signer, or "" */
	char token[FS_CRYPTO_TOKEN_ID_MAX];        /* the server token it names, or "" */
	int64_t at_ms, approved_ms;
} fs_team_device;

typedef struct fs_team_problem {
	char doc[FS_CRYPTO_TEAM_ID_MAX];
	int code; /* FS_E_SIGNATURE, FS_E_INPUT, FS_E_MISBOUND, FS_E_TAMPERED, ... */
	char why[112];
} fs_team_problem;

typedef struct fs_team fs_team;

/* An empty team; free with fs_crypto_team_free (NULL is a no-op). */
int fs_crypto_team_new(fs_team **out, fs_errbuf *eb) FS_WUR;
void fs_crypto_team_free(fs_team *t);

/*
 * Adds one revision (a leaf) of a team document, its body as stored, and
 * when it arrived (lower: earlier; the store's local sequence). Arrival
 * only decides between two key versions whose signers revoke each other:
 * the one that arrived first stands (docs/team.md). A document that does
 * not parse, is stored under another document's id or (for a device) does
 * not verify is kept as a problem: FS_OK all the same. Errors: FS_E_NOMEM,
 * FS_E_TOOBIG (over FS_CRYPTO_TEAM_DOCS_MAX documents).
 */
int fs_crypto_team_add(fs_team *t, const char *doc_id, uint64_t arrival, const uint8_t *body,
                       size_t len, fs_errbuf *eb) FS_WUR;

/*
 * Resolves what was added: from the first version (genesis, the kid a
 * device pinned when it joined; NULL takes the only one there is) along
 * the chain of key versions, each signed by a member of the one before (not
 * revoked) or by its recovery key; members, revoked devices and the
 * current version.
 * Errors: FS_E_TEAM_NOSPACE (no valid first version, or not the pinned
 * one), FS_E_TEAM_AMBIGUOUS (several and none pinned), FS_E_NOMEM.
 */
int fs_crypto_team_resolve(fs_team *t, const char *genesis, fs_errbuf *eb) FS_WUR;

/* After a successful resolve (NULL or 0 before): */
const char *fs_crypto_team_space(const fs_team *t);
const char *fs_crypto_team_genesis(const fs_team *t); /* kid of version 1 */
const char *fs_crypto_team_current(const fs_team *t); /* kid new records use */
/* 1 when the current version was sealed to a device revoked since
 * (concurrent rotations): a member should rotate again. */
int fs_crypto_team_stale(const fs_team *t);
/* Whether kid names a valid version of the space (its key may be trusted). */
int fs_crypto_team_valid_kid(const fs_team *t, const char *kid);
/* Whether some key document seals kid to to_id. */
int fs_crypto_team_has_key(const fs_team *t, const char *kid, const char *to_id);

/* Devices with a valid key document, any status; pointers owned by t. */
size_t fs_crypto_team_device_count(const fs_team *t);
const fs_team_device *fs_crypto_team_device_at(const fs_team *t, size_t i);
/* A device, or the current recovery key, by id; NULL when unknown. */
const fs_team_device *fs_crypto_team_device_find(const fs_team *t, const char *id);
/* The current version's recovery key (name "office recovery key"), or NULL. */
const fs_team_device *fs_crypto_team_recovery(const fs_team *t);
/* Members of the current version, and revoked devices, by index. */
size_t fs_crypto_team_member_count(const fs_team *t);
const char *fs_crypto_team_member_at(const fs_team *t, size_t i);
size_t fs_crypto_team_revoked_count(const fs_team *t);
const char *fs_crypto_team_revoked_at(const fs_team *t, size_t i);

/* 1 when this stored revision of doc_id counts in the resolved team (a
 * valid device, a verified certificate, a valid version, a key document
 * from a known sender): a device keeps its own copy of those, so a server
 * that deletes or edits them cannot roll the team back (docs/team.md). */
int fs_crypto_team_counts(const fs_team *t, const char *doc_id, const uint8_t *body, size_t len);

/* Documents that count for nothing, with why (resolve adds its own): the
 * first FS_CRYPTO_TEAM_PROBLEMS_MAX, and how many more there were. */
#define FS_CRYPTO_TEAM_PROBLEMS_MAX 256
size_t fs_crypto_team_problem_count(const fs_team *t);
const fs_team_problem *fs_crypto_team_problem_at(const fs_team *t, size_t i);
size_t fs_crypto_team_problems_more(const fs_team *t);

/*
 * Opens the key documents sealed to to_id (me's id) and adds their keys to
 * ring: only from a known device or recovery key with a valid signature,
 * and only a key that matches its valid version's commitment. *added gets
 * the number of new keys. Documents that fail become problems. Errors:
 * FS_E_TEAM_NOSPACE (not resolved), FS_E_NOMEM, and the ring's.
 */
int fs_crypto_team_open_keys(fs_team *t, const fs_identity *me, const char *to_id, fs_keyring *ring,
                             size_t *added, fs_errbuf *eb) FS_WUR;

/* ------------------------------------------------------------------------
 * The office recovery key: an identity whose secret halves are wrapped by
 * a key file of their own (its own passphrase, Argon2id) and kept offline
 * as text ("fieldsync recovery create"). Every key version of a space is
 * also sealed to it, so the office can read a space when every device is
 * lost, and let a new device in (docs/team.md).
 */
#define FS_CRYPTO_RECOVERY_PUB_MAX  100  /* "fsrk1-" + 91 base64url characters and NUL */
#define FS_CRYPTO_RECOVERY_TEXT_MAX 4096 /* bytes of a recovery key file */

/* New recovery key: *text (malloc'ed, *text_len bytes plus NUL; holds only
 * wrapped secrets) to save or print, and its public key string in pub.
 * params NULL: the defaults. */
int fs_crypto_recovery_create(const char *pass, size_t pass_len, const fs_kdf_params *params,
                              char **text, size_t *text_len, char pub[FS_CRYPTO_RECOVERY_PUB_MAX],
                              fs_errbuf *eb) FS_WUR;

/* The public key string "fsrk1-<base64url of both keys and a checksum>". */
void fs_crypto_recovery_public(const uint8_t box[FS_CRYPTO_BOX_PK_BYTES],
                               const uint8_t sign[FS_CRYPTO_SIGN_PK_BYTES],
                               char out[FS_CRYPTO_RECOVERY_PUB_MAX]);

/* Reads a public key string; FS_E_INPUT (with why) for a mistyped one. */
int fs_crypto_recovery_parse_public(const char *s, uint8_t box[FS_CRYPTO_BOX_PK_BYTES],
                                    uint8_t sign[FS_CRYPTO_SIGN_PK_BYTES], fs_errbuf *eb) FS_WUR;

/* Opens a recovery key file with its passphrase; caller frees *out with
 * fs_crypto_identity_free. Errors: FS_E_KEYFILE (not one, damaged),
 * FS_E_PASSPHRASE, FS_E_TAMPERED (public line and key disagree). */
int fs_crypto_recovery_open(const char *text, size_t len, const char *pass, size_t pass_len,
                            fs_identity **out, fs_errbuf *eb) FS_WUR;

#endif
