/*
 * daemon/team.c: this device in its space's team (docs/team.md). The team
 * documents ("fs:..." ids) travel with the records; after every pull that
 * changed them they are read and resolved again (crypto/team.c), and while
 * unlocked the daemon acts on what it finds: it writes its own first
 * documents, opens the keys sealed to it, picks the key new records use,
 * seals the keys members lack, and rotates a stale version. Approving,
 * revoking (which rotates the key), the office recovery key and recovery
 * with it are the local API's team endpoints.
 */
#include "daemon_int.h"

#include <ctype.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define META_GENESIS  "team.genesis"
#define META_JOINING  "team.joining"
#define META_RECOVERY "team.recovery" /* the recovery public key given at setup */
#define META_NAME     "device.name"
#define META_COPY     FSD_META_TEAMDOC
#define PREFIX_MIN    6 /* characters of a device id that may name it */

static const char *status_name(int s)
{
	return s == FS_TEAM_MEMBER    ? "member"
	       : s == FS_TEAM_PENDING ? "pending"
	       : s == FS_TEAM_REVOKED ? "revoked"
	                              : "unknown";
}

static int meta_str(struct fsd *d, const char *key, char *out, size_t cap)
{
	uint8_t *v = NULL;
	size_t n = 0;
	fs_errbuf eb;
	int rc = fs_store_meta_get(d->st, key, &v, &n, &eb);

	out[0] = '\0';
	if (rc == FS_OK && n < cap) {
		memcpy(out, v, n);
		out[n] = '\0';
	}
	free(v);
	return rc == FS_OK && n < cap ? 0 : -1;
}

static int meta_put(struct fsd *d, const char *key, const char *val, fs_errbuf *eb)
{
	return fs_store_meta_set(d->st, key, (const uint8_t *)val, strlen(val), eb);
}

/* This device's id, fingerprint and name, from its wrapped identity's
 * public halves (no key needed). */
static void load_self(struct fsd *d)
{
	uint8_t *w = NULL, box[FS_CRYPTO_BOX_PK_BYTES], sign[FS_CRYPTO_SIGN_PK_BYTES];
	size_t n = 0;
	fs_errbuf eb;

	d->dev_id[0] = d->dev_fp[0] = '\0';
	if (fs_store_meta_get(d->st, FSD_META_IDENTITY, &w, &n, &eb) == FS_OK &&
	    fs_crypto_identity_wrapped_public(w, n, box, sign, &eb) == FS_OK) {
		fs_crypto_device_id(box, sign, d->dev_id);
		if (fs_crypto_fingerprint(box, sign, d->dev_fp) != FS_OK)
			d->dev_fp[0] = '\0';
	}
	free(w);
	if (meta_str(d, META_NAME, d->dev_name, sizeof(d->dev_name)) != 0 || d->dev_name[0] == '\0')
		snprintf(d->dev_name, sizeof(d->dev_name), "device %.5s", d->dev_fp);
}

int fsd_team_open(struct fsd *d, fs_errbuf *eb)
{
	char v[8];

	(void)eb;
	if (!d->initialized)
		return FS_OK;
	load_self(d);
	if (meta_str(d, META_GENESIS, d->genesis, sizeof(d->genesis)) != 0)
		d->genesis[0] = '\0';
	d->joining = meta_str(d, META_JOINING, v, sizeof(v)) == 0;
	fsd_team_refresh(d, 1);
	return FS_OK;
}

void fsd_team_close(struct fsd *d)
{
	fs_crypto_team_free(d->team);
	d->team = NULL;
}

int fsd_team_setup(struct fsd *d, const struct fsd_setup *o, fs_errbuf *eb)
{
	uint8_t box[FS_CRYPTO_BOX_PK_BYTES], sign[FS_CRYPTO_SIGN_PK_BYTES];
	int rc;

	/* Every setting is written or cleared: a setup that failed before its
	 * key file leaves nothing behind for the next one. */
	if ((rc = fs_store_meta_delete(d->st, META_NAME, eb)) != FS_OK ||
	    (rc = fs_store_meta_delete(d->st, META_RECOVERY, eb)) != FS_OK ||
	    (rc = fs_store_meta_delete(d->st, META_JOINING, eb)) != FS_OK ||
	    (rc = fs_store_meta_delete(d->st, META_GENESIS, eb)) != FS_OK)
		return rc;
	if (o->name) {
		if (!fs_crypto_device_name_ok(o->name))
			return fs_err_set(
			    eb, FS_E_ARG,
			    "a device name is 1 to %d bytes without control characters "
			    "(the team and the server see it: no client's name)",
			    FS_CRYPTO_DEVICE_NAME_MAX - 1);
		if ((rc = meta_put(d, META_NAME, o->name, eb)) != FS_OK)
			return rc;
	}
	if (o->recovery) {
		if (o->join)
			return fs_err_set(
			    eb, FS_E_ARG,
			    "the recovery key is the space's: give it where the space is "
			    "created (fieldsync init) or by a member (recovery set)");
		if ((rc = fs_crypto_recovery_parse_public(o->recovery, box, sign, eb)) != FS_OK ||
		    (rc = meta_put(d, META_RECOVERY, o->recovery, eb)) != FS_OK)
			return rc;
	}
	if (o->join && (rc = meta_put(d, META_JOINING, "1", eb)) != FS_OK)
		return rc;
	d->joining = o->join;
	d->genesis[0] = '\0';
	load_self(d);
	return FS_OK;
}

/* The public id of this device's server token (the part before the dot of
 * a hub token "<id>.<secret>"), for its device document; NULL when its
 * first remote with a token has none of that shape. */
static const char *my_token(struct fsd *d, char out[FS_CRYPTO_TOKEN_ID_MAX])
{
	for (size_t i = 0; i < d->n_remotes; i++) {
		const struct fsd_remote *rm = &d->remotes[i];
		const char *tok, *dot;
		size_t n;
		if (rm->auth != FSD_AUTH_BEARER || rm->cred == NULL)
			continue;
		tok = fs_crypto_secret_data(rm->cred);
		if ((dot = strchr(tok, '.')) == NULL || (n = (size_t)(dot - tok)) == 0 ||
		    n >= FS_CRYPTO_TOKEN_ID_MAX)
			return NULL;
		memcpy(out, tok, n);
		out[n] = '\0';
		return fs_crypto_token_id_ok(out) ? out : NULL;
	}
	return NULL;
}

/* ---- reading the team ---- */

/*
 * The team is read from the store's team documents and from this device's
 * own copies of every one that ever counted (meta "teamdoc:<rev>:<id>":
 * arrival sequence, u64 little-endian, then the body). A server that
 * deletes or edits a document therefore cannot take back a revocation or a
 * member. The copies' keys are kept sorted for the walk that follows.
 */

static int copy_key(char *out, size_t cap, const char *rev, const char *id)
{
	int n = snprintf(out, cap, META_COPY "%s:%s", rev, id);
	return n < 0 || (size_t)n >= cap ? -1 : 0;
}

static int has_copy(const fs_strv *c, const char *key)
{
	size_t lo = 0, hi = c->n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int r = strcmp(c->v[mid], key);
		if (r == 0)
			return 1;
		if (r < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return 0;
}

struct buildctx {
	fs_team *t;
	fs_strv *c;
	struct fsd *d;
	int saved;
};

static int add_copy(void *ctx, const char *key, const uint8_t *val, size_t len)
{
	struct buildctx *b = ctx;
	const char *rev = key + sizeof(META_COPY) - 1, *colon = strchr(rev, ':');
	uint64_t arrival = 0;

	if (colon == NULL || len < 8)
		return FS_OK; /* not one of ours: ignored */
	for (int i = 0; i < 8; i++)
		arrival |= (uint64_t)val[i] << (8 * i);
	if (fs_strv_push(b->c, key) != FS_OK) /* meta_list walks in key order: stays sorted */
		return FS_E_NOMEM;
	return fs_crypto_team_add(b->t, colon + 1, arrival, val + 8, len - 8, NULL);
}

static int add_leaf(void *ctx, const char *id, const char *rev, uint64_t seq, const uint8_t *body,
                    size_t len)
{
	struct buildctx *b = ctx;
	char key[FS_STORE_NAME_MAX];

	if (copy_key(key, sizeof(key), rev, id) == 0 && has_copy(b->c, key))
		return FS_OK; /* read from the copy already */
	return fs_crypto_team_add(b->t, id, seq, body, len, NULL);
}

/* After a resolve: copies of the stored revisions that count and have none. */
static int save_leaf(void *ctx, const char *id, const char *rev, uint64_t seq, const uint8_t *body,
                     size_t len)
{
	struct buildctx *b = ctx;
	char key[FS_STORE_NAME_MAX];
	uint8_t *v;
	fs_errbuf eb;
	int rc;

	if (copy_key(key, sizeof(key), rev, id) != 0 || has_copy(b->c, key) ||
	    !fs_crypto_team_counts(b->t, id, body, len))
		return FS_OK;
	if ((v = malloc(len + 8)) == NULL)
		return FS_E_NOMEM;
	for (int i = 0; i < 8; i++)
		v[i] = (uint8_t)(seq >> (8 * i));
	memcpy(v + 8, body, len);
	rc = fs_store_meta_set(b->d->st, key, v, len + 8, &eb);
	free(v);
	b->saved += rc == FS_OK;
	return rc;
}

static int build(struct fsd *d, fs_team **out, fs_strv *c, fs_store_prefix_stats *stats,
                 fs_errbuf *eb)
{
	struct buildctx b = {NULL, c, d, 0};
	int rc;

	*out = NULL;
	if ((rc = fs_crypto_team_new(&b.t, eb)) != FS_OK)
		return rc;
	rc = fs_store_meta_list(d->st, META_COPY, add_copy, &b, eb);
	if (rc == FS_OK)
		rc = fs_store_leaves_prefix(d->st, FS_CRYPTO_TEAM_PREFIX, add_leaf, &b, stats, eb);
	if (rc != FS_OK) {
		fs_crypto_team_free(b.t);
		return fs_err_set(eb, rc, "%s",
		                  rc == FS_E_TOOBIG ? "more team documents than a team may have"
		                                    : "the team documents could not be read");
	}
	*out = b.t;
	return FS_OK;
}

/* Keeps a copy of every stored team document that counts in d->team. */
static void keep_copies(struct fsd *d, fs_strv *c)
{
	struct buildctx b = {d->team, c, d, 0};
	fs_errbuf eb;

	if (fs_store_leaves_prefix(d->st, FS_CRYPTO_TEAM_PREFIX, save_leaf, &b, NULL, &eb) != FS_OK)
		fsd_log(FS_DAEMON_LOG_WARN, "team: copies not kept: %s", fs_errname(eb.code));
	else if (b.saved)
		fsd_log(FS_DAEMON_LOG_DEBUG, "team: kept copies of %d document(s)", b.saved);
}

static int changed(struct fsd *d)
{
	fs_store_prefix_stats st;
	fs_errbuf eb;

	if (fs_store_leaves_prefix(d->st, FS_CRYPTO_TEAM_PREFIX, NULL, NULL, &st, &eb) != FS_OK)
		return 1;
	return st.docs != d->team_docs || st.max_seq != d->team_seq;
}

/* Writes a team document once: it never changes after (docs/team.md). */
static int put_doc(struct fsd *d, fs_team_doc *doc, fs_errbuf *eb)
{
	fs_store_doc *have = NULL;
	char rev[FS_REV_MAX];
	int rc = fs_store_get(d->st, doc->id, NULL, &have, eb);

	if (rc == FS_OK && !have->deleted) {
		fs_store_doc_free(have);
		fs_crypto_team_doc_clear(doc);
		return FS_OK;
	}
	if (rc != FS_OK && rc != FS_E_NOTFOUND) {
		fs_crypto_team_doc_clear(doc);
		return rc;
	}
	/* A new document, or one somebody deleted: the tombstone is extended. */
	rc = fs_store_put_local(d->st, doc->id, have ? have->rev : NULL, (const uint8_t *)doc->body,
	                        doc->len, 0, rev, eb);
	fs_store_doc_free(have);
	fs_crypto_team_doc_clear(doc);
	if (rc == FS_OK)
		fsd_remotes_local_edit(d);
	return rc;
}

/* This device's own signed device document, written to the store (at_ms:
 * when it was made). */
static int put_self_doc(struct fsd *d, const fs_identity *me, uint64_t at_ms, fs_errbuf *eb)
{
	char tok[FS_CRYPTO_TOKEN_ID_MAX];
	fs_team_doc doc;
	int rc;

	if ((rc = fs_crypto_team_device_doc(me, d->space_id, d->dev_name, my_token(d, tok), at_ms,
	                                    &doc, eb)) != FS_OK)
		return rc;
	return put_doc(d, &doc, eb);
}

static int my_status(const struct fsd *d)
{
	const fs_team_device *me = d->team ? fs_crypto_team_device_find(d->team, d->dev_id) : NULL;
	return me ? me->status : 0;
}

/* A new space's first documents: this device, version 1 (the key it
 * already holds) with the recovery key given at setup, the pin. */
static int found_space(struct fsd *d, const fs_identity *me, fs_errbuf *eb)
{
	uint8_t box[FS_CRYPTO_BOX_PK_BYTES], sign[FS_CRYPTO_SIGN_PK_BYTES];
	char rec[FS_CRYPTO_RECOVERY_PUB_MAX];
	const char *m[1] = {d->dev_id};
	fs_team_epoch_in in = {0};
	fs_team_doc doc;
	int rc, has_rec = meta_str(d, META_RECOVERY, rec, sizeof(rec)) == 0;

	if (d->cur == NULL || fs_crypto_kid_version(fs_crypto_spacekey_kid(d->cur)) != 1)
		return fs_err_set(eb, FS_E_INTERNAL, "no first space key to found the team with");
	if (has_rec && (rc = fs_crypto_recovery_parse_public(rec, box, sign, eb)) != FS_OK)
		return rc;
	in.key = d->cur;
	in.members = m;
	in.n_members = 1;
	in.recovery_box = has_rec ? box : NULL;
	in.recovery_sign = has_rec ? sign : NULL;
	in.at_ms = fsd_wall_ms();
	if ((rc = put_self_doc(d, me, in.at_ms, eb)) != FS_OK ||
	    (rc = fs_crypto_team_epoch_doc(me, &in, &doc, eb)) != FS_OK ||
	    (rc = put_doc(d, &doc, eb)) != FS_OK ||
	    (rc = meta_put(d, META_GENESIS, fs_crypto_spacekey_kid(d->cur), eb)) != FS_OK)
		return rc;
	snprintf(d->genesis, sizeof(d->genesis), "%s", fs_crypto_spacekey_kid(d->cur));
	fsd_log(FS_DAEMON_LOG_INFO, "team: founded space %s (key version 1%s)", d->space_id,
	        has_rec ? ", sealed to the office recovery key" : "");
	return FS_OK;
}

/* A joining device meets its space: pin it and ask to join. */
static int pin_space(struct fsd *d, fs_errbuf *eb)
{
	const char *space = fs_crypto_team_space(d->team), *g = fs_crypto_team_genesis(d->team);
	int rc;

	if ((rc = meta_put(d, FSD_META_SPACE_ID, space, eb)) != FS_OK ||
	    (rc = meta_put(d, META_GENESIS, g, eb)) != FS_OK)
		return rc;
	snprintf(d->space_id, sizeof(d->space_id), "%s", space);
	snprintf(d->genesis, sizeof(d->genesis), "%s", g);
	fsd_log(FS_DAEMON_LOG_INFO, "team: found space %s on the server; pinned it", space);
	return FS_OK;
}

/* Seals every key this device holds of a valid version to each member (and
 * the recovery key) that lacks it: after an approval, a rotation, a crash
 * between writes, or a new recovery key. */
static int seal_missing(struct fsd *d, const fs_identity *me, size_t *sealed, fs_errbuf *eb)
{
	const fs_team_device *rec = fs_crypto_team_recovery(d->team);
	size_t nm = fs_crypto_team_member_count(d->team);
	int rc;

	*sealed = 0;
	for (size_t i = 0; i <= nm; i++) {
		const fs_team_device *to =
		    i < nm
		        ? fs_crypto_team_device_find(d->team, fs_crypto_team_member_at(d->team, i))
		        : rec;
		/* This device too: a key document to itself tells the others it
		 * holds the version, so nobody seals it again. */
		if (to == NULL)
			continue;
		for (size_t j = 0; j < fs_crypto_keyring_count(d->ring); j++) {
			const fs_space_key *k = fs_crypto_keyring_at(d->ring, j);
			fs_team_doc doc;
			if (!fs_crypto_team_valid_kid(d->team, fs_crypto_spacekey_kid(k)) ||
			    fs_crypto_team_has_key(d->team, fs_crypto_spacekey_kid(k), to->id))
				continue;
			if ((rc = fs_crypto_team_key_doc(me, k, to->id, to->box, fsd_wall_ms(),
			                                 &doc, eb)) != FS_OK ||
			    (rc = put_doc(d, &doc, eb)) != FS_OK)
				return rc;
			(*sealed)++;
		}
	}
	return FS_OK;
}

static int rotate(struct fsd *d, const fs_identity *me, const char *revoke, const uint8_t *rec_box,
                  const uint8_t *rec_sign, fs_errbuf *eb);

/* What an unlocked device does with its resolved team. Returns 1 when it
 * wrote team documents (the caller reads them back). */
static int act(struct fsd *d)
{
	fs_identity *me = NULL;
	fs_keyring *got = NULL;
	size_t added = 0, sealed = 0;
	int wrote = 0, rc;
	fs_errbuf eb;

	fs_err_clear(&eb);
	if (d->master == NULL || d->dev_id[0] == '\0')
		return 0;
	if ((rc = fsd_vault_identity(d, &me, &eb)) != FS_OK)
		goto out;
	/* A device with a space of its own and no team documents yet (just set
	 * up, or from before teams). */
	if (!d->joining && d->genesis[0] == '\0' && d->space_id[0]) {
		if ((rc = found_space(d, me, &eb)) != FS_OK)
			goto out;
		wrote = 1;
		goto out;
	}
	if (d->team == NULL)
		goto out;
	if (d->joining && fs_crypto_team_device_find(d->team, d->dev_id) == NULL) {
		if ((rc = put_self_doc(d, me, fsd_wall_ms(), &eb)) != FS_OK)
			goto out;
		fsd_log(FS_DAEMON_LOG_INFO, "team: asked to join; fingerprint %s", d->dev_fp);
		wrote = 1;
	}
	if (d->joining && fs_crypto_team_device_find(d->team, d->dev_id)) {
		if (fs_store_meta_delete(d->st, META_JOINING, &eb) == FS_OK)
			d->joining = 0;
	}
	/* Keys sealed to this device. */
	if ((rc = fs_crypto_keyring_new(&got, &eb)) != FS_OK ||
	    (rc = fs_crypto_team_open_keys(d->team, me, d->dev_id, got, NULL, &eb)) != FS_OK)
		goto out;
	for (size_t i = 0; i < fs_crypto_keyring_count(got); i++) {
		const fs_space_key *k = fs_crypto_keyring_at(got, i);
		if (fs_crypto_keyring_find(d->ring, fs_crypto_spacekey_kid(k)))
			continue; /* e.g. the key document this device sealed to itself */
		if ((rc = fsd_vault_key_add(d, k, &eb)) != FS_OK)
			goto out;
		added++;
	}
	if (added) {
		fsd_log(FS_DAEMON_LOG_INFO, "team: received %zu space key(s)", added);
		fsd_cw_reset(d); /* records that could not be read may be readable now */
	}
	fsd_vault_key_use(d, fs_crypto_team_current(d->team));
	if (my_status(d) != FS_TEAM_MEMBER || d->cur == NULL)
		goto out;
	/* A member holding the current key: members lack nothing, and a
	 * version sealed to a device revoked since is replaced. */
	if (fs_crypto_team_stale(d->team)) {
		fsd_log(FS_DAEMON_LOG_INFO,
		        "team: the current key reached a device revoked since; rotating");
		if ((rc = rotate(d, me, NULL, NULL, NULL, &eb)) != FS_OK)
			goto out;
		wrote = 1;
		goto out;
	}
	if ((rc = seal_missing(d, me, &sealed, &eb)) != FS_OK)
		goto out;
	if (sealed) {
		fsd_log(FS_DAEMON_LOG_INFO, "team: sealed %zu key(s) to members", sealed);
		wrote = 1;
	}
out:
	if (eb.code != FS_OK)
		fsd_log(FS_DAEMON_LOG_WARN, "team: %s (%s)", fs_strerror(eb.code), eb.msg);
	fs_crypto_identity_free(me);
	fs_crypto_keyring_free(got);
	return wrote;
}

void fsd_team_trust(struct fsd *d)
{
	fs_errbuf eb;

	if (d->cw == NULL || d->team == NULL)
		return;
	for (size_t i = 0; i < fs_crypto_team_device_count(d->team); i++) {
		const fs_team_device *v = fs_crypto_team_device_at(d->team, i);
		/* A pending device never held a key, so nothing readable is its;
		 * a revoked one's signatures on what it wrote before still count
		 * (what it could add later is the server's to refuse: docs/team.md). */
		if ((v->status == FS_TEAM_MEMBER || v->status == FS_TEAM_REVOKED) &&
		    fs_cw_index_trust(d->cw, v->id, v->sign, &eb) != FS_OK)
			fsd_log(FS_DAEMON_LOG_WARN, "casework: device not trusted: %s",
			        fs_errname(eb.code));
	}
}

void fsd_team_refresh(struct fsd *d, int force)
{
	for (int round = 0; round < 4; round++) {
		fs_store_prefix_stats st = {0, 0};
		fs_strv c = {0};
		fs_team *t = NULL;
		fs_errbuf eb;
		int rc;

		if (!d->initialized)
			return;
		if (!force && round == 0 && d->team && !changed(d))
			return;
		rc = build(d, &t, &c, &st, &eb);
		if (rc == FS_OK) {
			rc = fs_crypto_team_resolve(t, d->genesis[0] ? d->genesis : NULL, &eb);
			/* A device with a space of its own resolves only that space. */
			if (rc == FS_OK && !d->genesis[0] && !d->joining)
				rc = fs_err_set(&eb, FS_E_TEAM_NOSPACE, NULL);
		}
		/* With a space pinned, a team that does not read or resolve stops
		 * every write (d->cur goes): failing open would write on under a
		 * key a revoked device may hold. */
		if (rc != FS_OK && rc != d->team_err && (d->genesis[0] || rc != FS_E_TEAM_NOSPACE))
			fsd_log(FS_DAEMON_LOG_WARN, "team: %s (%s)%s", fs_strerror(rc), eb.msg,
			        d->genesis[0] ? ": writing is stopped until it does" : "");
		d->team_err = rc;
		fs_crypto_team_free(d->team);
		d->team = rc == FS_OK ? t : NULL;
		if (rc != FS_OK) {
			fs_crypto_team_free(t);
			if (d->genesis[0])
				fsd_vault_key_use(d, NULL);
		}
		d->team_docs = st.docs;
		d->team_seq = st.max_seq;
		if (d->team && !d->genesis[0] && pin_space(d, &eb) != FS_OK) {
			fsd_log(FS_DAEMON_LOG_WARN, "team: space not pinned: %s", eb.msg);
			fs_strv_free(&c);
			return;
		}
		if (d->team && d->genesis[0])
			keep_copies(d, &c);
		fs_strv_free(&c);
		for (size_t i = 0; d->team && i < fs_crypto_team_problem_count(d->team); i++) {
			const fs_team_problem *p = fs_crypto_team_problem_at(d->team, i);
			fsd_log(FS_DAEMON_LOG_DEBUG, "team: ignored %s: %s", p->doc, p->why);
		}
		fsd_team_trust(d);
		if (!act(d))
			return;
		force = 1; /* read back what was just written */
	}
}

int fsd_team_may_write(struct fsd *d, fs_errbuf *eb)
{
	int st = my_status(d);

	/* A space of its own not founded yet (or from before teams): its key. */
	if (d->genesis[0] == '\0' && !d->joining && d->cur)
		return FS_OK;
	if (d->space_id[0] == '\0')
		return fs_err_set(
		    eb, FS_E_TEAM_NOKEY,
		    "the space has not been found on the server yet (is a remote set, "
		    "and online?)");
	if (d->team == NULL)
		return fs_err_set(
		    eb, FS_E_TEAM_NOKEY,
		    "the space's team documents do not resolve (%s): writing is stopped "
		    "(\"fieldsync device list\")",
		    fs_strerror(d->team_err));
	if (st == FS_TEAM_REVOKED)
		return fs_err_set(eb, FS_E_TEAM_REVOKED, NULL);
	if (st != FS_TEAM_MEMBER)
		return fs_err_set(eb, FS_E_TEAM_NOKEY, "this device's fingerprint: %s", d->dev_fp);
	if (d->cur == NULL)
		return fs_err_set(
		    eb, FS_E_TEAM_NOKEY,
		    "waiting for the space's newest key (it comes with the next sync)");
	return FS_OK;
}

/* ---- answers ---- */

static cJSON *device_json(const struct fsd *d, const fs_team_device *v)
{
	const fs_team_device *by =
	    v->approved_by[0] ? fs_crypto_team_device_find(d->team, v->approved_by) : NULL;
	cJSON *o = cJSON_CreateObject();

	if (o == NULL)
		return NULL;
	cJSON_AddStringToObject(o, "id", v->id);
	cJSON_AddStringToObject(o, "name", v->name);
	cJSON_AddStringToObject(o, "fingerprint", v->fingerprint);
	cJSON_AddStringToObject(o, "status", status_name(v->status));
	cJSON_AddBoolToObject(o, "this_device", strcmp(v->id, d->dev_id) == 0);
	cJSON_AddNumberToObject(o, "asked_ms", (double)v->at_ms);
	if (v->approved_by[0]) {
		cJSON_AddStringToObject(o, "approved_by", v->approved_by);
		cJSON_AddStringToObject(o, "approved_by_name", by ? by->name : "");
		cJSON_AddNumberToObject(o, "approved_ms", (double)v->approved_ms);
	}
	return o;
}

cJSON *fsd_team_json(struct fsd *d, int full)
{
	cJSON *o = cJSON_CreateObject(), *me, *devs, *probs;
	const fs_team_device *rec = d->team ? fs_crypto_team_recovery(d->team) : NULL;
	const char *st;

	if (o == NULL)
		return NULL;
	cJSON_AddStringToObject(o, "space_id", d->space_id);
	cJSON_AddStringToObject(o, "genesis", d->genesis);
	cJSON_AddStringToObject(o, "key_version", d->team ? fs_crypto_team_current(d->team) : "");
	cJSON_AddBoolToObject(o, "holds_current_key", d->cur != NULL);
	if (d->team_err != FS_OK && !(d->team_err == FS_E_TEAM_NOSPACE && !d->joining)) {
		cJSON_AddStringToObject(o, "error", fs_errname(d->team_err));
		cJSON_AddStringToObject(o, "error_text", fs_strerror(d->team_err));
	}
	me = cJSON_AddObjectToObject(o, "this_device");
	cJSON_AddStringToObject(me, "id", d->dev_id);
	cJSON_AddStringToObject(me, "name", d->dev_name);
	cJSON_AddStringToObject(me, "fingerprint", d->dev_fp);
	st = !d->initialized                        ? "not set up"
	     : d->joining && d->space_id[0] == '\0' ? "joining"
	     : d->team                              ? status_name(my_status(d))
	                                            : "unknown";
	cJSON_AddStringToObject(me, "status", st);
	if (!full) { /* status: counts only (`fieldsync device list` has the rest) */
		size_t members = 0, pending = 0;
		for (size_t i = 0; d->team && i < fs_crypto_team_device_count(d->team); i++) {
			const fs_team_device *v = fs_crypto_team_device_at(d->team, i);
			members += v->status == FS_TEAM_MEMBER;
			pending += v->status == FS_TEAM_PENDING;
		}
		cJSON_AddNumberToObject(o, "members", (double)members);
		cJSON_AddNumberToObject(o, "pending", (double)pending);
	} else {
		devs = cJSON_AddArrayToObject(o, "devices");
		for (size_t i = 0; d->team && i < fs_crypto_team_device_count(d->team); i++) {
			const fs_team_device *v = fs_crypto_team_device_at(d->team, i);
			if (v->status != 0)
				cJSON_AddItemToArray(devs, device_json(d, v));
		}
	}
	if (rec) {
		cJSON *r = cJSON_AddObjectToObject(o, "recovery");
		char pub[FS_CRYPTO_RECOVERY_PUB_MAX];
		fs_crypto_recovery_public(rec->box, rec->sign, pub);
		cJSON_AddStringToObject(r, "id", rec->id);
		cJSON_AddStringToObject(r, "fingerprint", rec->fingerprint);
		cJSON_AddStringToObject(r, "public", pub);
	} else {
		cJSON_AddNullToObject(o, "recovery");
	}
	if (!full)
		return o;
	cJSON_AddNumberToObject(o, "more_problems",
	                        d->team ? (double)fs_crypto_team_problems_more(d->team) : 0);
	probs = cJSON_AddArrayToObject(o, "problems");
	for (size_t i = 0; d->team && i < fs_crypto_team_problem_count(d->team); i++) {
		const fs_team_problem *p = fs_crypto_team_problem_at(d->team, i);
		cJSON *x = cJSON_CreateObject();
		cJSON_AddStringToObject(x, "doc", p->doc);
		cJSON_AddStringToObject(x, "code", fs_errname(p->code));
		cJSON_AddStringToObject(x, "why", p->why);
		cJSON_AddItemToArray(probs, x);
	}
	return o;
}

/* ---- approving, revoking, rotating ---- */

/* The answer after an approval or revocation: the device as the team now
 * sees it, or (the documents are written, the team did not resolve after)
 * just what was asked. */
static int done_json(struct fsd *d, const fs_team_device *v, const char *asked, cJSON **out,
                     fs_errbuf *eb)
{
	if (v)
		*out = device_json(d, v);
	else if ((*out = cJSON_CreateObject()) != NULL)
		cJSON_AddStringToObject(*out, "id", asked ? asked : "");
	return *out ? FS_OK : fs_err_set(eb, FS_E_NOMEM, NULL);
}

/* Checks that this device may change the team: unlocked, a member, with
 * the current key. Unwraps the identity for the caller. */
static int as_member(struct fsd *d, fs_identity **me, fs_errbuf *eb)
{
	int rc;

	*me = NULL;
	if ((rc = fsd_vault_ready(d, eb)) != FS_OK)
		return rc;
	fsd_team_refresh(d, 0);
	if (d->team == NULL)
		return fs_err_set(eb, d->team_err ? d->team_err : FS_E_TEAM_NOSPACE, NULL);
	if (my_status(d) == FS_TEAM_REVOKED)
		return fs_err_set(eb, FS_E_TEAM_REVOKED, NULL);
	if (my_status(d) != FS_TEAM_MEMBER)
		return fs_err_set(eb, FS_E_TEAM_NOTMEMBER, "this device is not (yet) a member");
	if (d->cur == NULL)
		return fs_err_set(eb, FS_E_TEAM_NOKEY, "waiting for the current key version");
	return fsd_vault_identity(d, me, eb);
}

/* Digits only, so "12345 67890 ..." and "1234567890..." compare alike. */
static void digits(const char *in, char *out, size_t cap)
{
	size_t n = 0;

	for (; in && *in && n + 1 < cap; in++)
		if (isdigit((unsigned char)*in))
			out[n++] = *in;
	out[n] = '\0';
}

int fsd_team_approve(struct fsd *d, const char *fingerprint, cJSON **out, fs_errbuf *eb)
{
	char want[FS_CRYPTO_FINGERPRINT_MAX], have[FS_CRYPTO_FINGERPRINT_MAX];
	const fs_team_device *v = NULL;
	fs_identity *me = NULL;
	fs_team_doc doc;
	int rc;

	*out = NULL;
	digits(fingerprint, want, sizeof(want));
	if (strlen(want) != 30)
		return fs_err_set(eb, FS_E_ARG,
		                  "a fingerprint is 30 digits (six groups of five), as the joining "
		                  "device shows it");
	if ((rc = as_member(d, &me, eb)) != FS_OK)
		goto out;
	for (size_t i = 0; i < fs_crypto_team_device_count(d->team) && v == NULL; i++) {
		const fs_team_device *x = fs_crypto_team_device_at(d->team, i);
		digits(x->fingerprint, have, sizeof(have));
		if (x->status != 0 && strcmp(have, want) == 0)
			v = x;
	}
	if (v == NULL) {
		rc =
		    fs_err_set(eb, FS_E_NOTFOUND,
		               "no device with this fingerprint has asked to join (sync, then look "
		               "at \"fieldsync device list\")");
		goto out;
	}
	if (v->status == FS_TEAM_REVOKED) {
		rc = fs_err_set(eb, FS_E_TEAM_REVOKED,
		                "this device was revoked; it must join again with a new identity");
		goto out;
	}
	if (v->status == FS_TEAM_PENDING) {
		char id[FS_CRYPTO_DEVICE_ID_MAX];
		snprintf(id, sizeof(id), "%s", v->id); /* v is gone after the refresh */
		if ((rc =
		         fs_crypto_team_member_doc(me, d->space_id, fs_crypto_team_current(d->team),
		                                   id, fsd_wall_ms(), &doc, eb)) != FS_OK ||
		    (rc = put_doc(d, &doc, eb)) != FS_OK)
			goto out;
		fsd_log(FS_DAEMON_LOG_INFO, "team: approved device %s", id);
		fsd_team_refresh(d, 1); /* seals the keys to it */
		v = d->team ? fs_crypto_team_device_find(d->team, id) : NULL;
	}
	rc = done_json(d, v, v ? NULL : fingerprint, out, eb);
out:
	fs_crypto_identity_free(me);
	return rc;
}

/* Finds a device by id, unique id prefix or fingerprint. */
static const fs_team_device *find_device(struct fsd *d, const char *who, fs_errbuf *eb)
{
	const fs_team_device *hit = NULL;
	char want[FS_CRYPTO_FINGERPRINT_MAX], have[FS_CRYPTO_FINGERPRINT_MAX];
	size_t n = strlen(who), hits = 0;

	digits(who, want, sizeof(want));
	for (size_t i = 0; i < fs_crypto_team_device_count(d->team); i++) {
		const fs_team_device *v = fs_crypto_team_device_at(d->team, i);
		digits(v->fingerprint, have, sizeof(have));
		if (v->status == 0)
			continue;
		if ((n >= PREFIX_MIN && strncmp(v->id, who, n) == 0) ||
		    (strlen(want) == 30 && strcmp(have, want) == 0)) {
			hit = v;
			hits++;
		}
	}
	if (hits == 1)
		return hit;
	fs_err_set(eb, hits ? FS_E_ARG : FS_E_NOTFOUND,
	           hits ? "%zu devices match: give more of the id"
	                : "no device with this id or fingerprint (see \"fieldsync device list\")",
	           hits);
	return NULL;
}

/*
 * A new key version: every member but the revoked, every device revoked so
 * far plus revoke, the recovery key (a new one when given). This device
 * keeps the new key; seal_missing (in the refresh) seals it to the members
 * and the recovery key.
 */
static int rotate(struct fsd *d, const fs_identity *me, const char *revoke, const uint8_t *rec_box,
                  const uint8_t *rec_sign, fs_errbuf *eb)
{
	const char *cur = fs_crypto_team_current(d->team);
	size_t nm = fs_crypto_team_member_count(d->team),
	       nr = fs_crypto_team_revoked_count(d->team);
	const char **m = calloc(nm + 1, sizeof(*m)), **r = calloc(nr + 2, sizeof(*r));
	const fs_team_device *rec = fs_crypto_team_recovery(d->team);
	fs_team_epoch_in in = {0};
	fs_space_key *k = NULL;
	fs_team_doc doc;
	int rc;

	if (m == NULL || r == NULL) {
		rc = fs_err_set(eb, FS_E_NOMEM, NULL);
		goto out;
	}
	for (size_t i = 0; i < nm; i++)
		if (!revoke || strcmp(fs_crypto_team_member_at(d->team, i), revoke) != 0)
			m[in.n_members++] = fs_crypto_team_member_at(d->team, i);
	for (size_t i = 0; i < nr; i++)
		r[in.n_revoked++] = fs_crypto_team_revoked_at(d->team, i);
	if (revoke)
		r[in.n_revoked++] = revoke;
	if ((rc = fs_crypto_spacekey_new(d->space_id, fs_crypto_kid_version(cur) + 1, &k, eb)) !=
	    FS_OK)
		goto out;
	in.key = k;
	in.prev = cur;
	in.members = m;
	in.revoked = r;
	in.recovery_box = rec_box ? rec_box : rec ? rec->box : NULL;
	in.recovery_sign = rec_sign ? rec_sign : rec ? rec->sign : NULL;
	in.at_ms = fsd_wall_ms();
	/* The key is kept before anyone can see its version: a crash after the
	 * epoch is written must not leave a version nobody holds. */
	if ((rc = fsd_vault_key_add(d, k, eb)) != FS_OK ||
	    (rc = fs_crypto_team_epoch_doc(me, &in, &doc, eb)) != FS_OK ||
	    (rc = put_doc(d, &doc, eb)) != FS_OK)
		goto out;
	fsd_log(FS_DAEMON_LOG_INFO, "team: new key version %s%s%s", fs_crypto_spacekey_kid(k),
	        revoke ? "; revoked device " : "", revoke ? revoke : "");
	rc = FS_OK;
out:
	free(m);
	free(r);
	fs_crypto_spacekey_free(k);
	return rc;
}

int fsd_team_revoke(struct fsd *d, const char *who, cJSON **out, fs_errbuf *eb)
{
	char id[FS_CRYPTO_DEVICE_ID_MAX];
	const fs_team_device *v;
	fs_identity *me = NULL;
	int rc;

	*out = NULL;
	if ((rc = as_member(d, &me, eb)) != FS_OK)
		goto out;
	if ((v = find_device(d, who ? who : "", eb)) == NULL) {
		rc = eb->code;
		goto out;
	}
	if (strcmp(v->id, d->dev_id) == 0) {
		rc = fs_err_set(eb, FS_E_ARG,
		                "a device does not revoke itself: revoke it from another member's "
		                "device");
		goto out;
	}
	snprintf(id, sizeof(id), "%s", v->id);
	if (v->status != FS_TEAM_REVOKED) {
		if ((rc = rotate(d, me, id, NULL, NULL, eb)) != FS_OK)
			goto out;
		fsd_team_refresh(d, 1);
	}
	v = d->team ? fs_crypto_team_device_find(d->team, id) : NULL;
	if ((rc = done_json(d, v, id, out, eb)) == FS_OK)
		cJSON_AddStringToObject(*out, "key_version",
		                        d->team ? fs_crypto_team_current(d->team) : "");
out:
	fs_crypto_identity_free(me);
	return rc;
}

int fsd_team_recovery_set(struct fsd *d, const char *pub, cJSON **out, fs_errbuf *eb)
{
	uint8_t box[FS_CRYPTO_BOX_PK_BYTES], sign[FS_CRYPTO_SIGN_PK_BYTES];
	fs_identity *me = NULL;
	int rc;

	*out = NULL;
	if ((rc = fs_crypto_recovery_parse_public(pub, box, sign, eb)) != FS_OK ||
	    (rc = as_member(d, &me, eb)) != FS_OK)
		goto out;
	/* A new version names the key; seal_missing then seals every version
	 * this device holds to it, so it reads the whole history. */
	if ((rc = rotate(d, me, NULL, box, sign, eb)) != FS_OK)
		goto out;
	fsd_team_refresh(d, 1);
	*out = fsd_team_json(d, 1);
	rc = *out ? FS_OK : fs_err_set(eb, FS_E_NOMEM, NULL);
out:
	fs_crypto_identity_free(me);
	return rc;
}

int fsd_team_recover(struct fsd *d, const char *text, size_t len, const char *pass, size_t pass_len,
                     cJSON **out, fs_errbuf *eb)
{
	uint8_t box[FS_CRYPTO_BOX_PK_BYTES], sign[FS_CRYPTO_SIGN_PK_BYTES];
	char rid[FS_CRYPTO_DEVICE_ID_MAX];
	const fs_team_device *rec;
	fs_identity *r = NULL, *me = NULL;
	fs_keyring *got = NULL;
	size_t added = 0, kept = 0;
	int rc;

	*out = NULL;
	if ((rc = fsd_vault_ready(d, eb)) != FS_OK)
		return rc;
	fsd_team_refresh(d, 0);
	if (d->team == NULL)
		return fs_err_set(eb, d->team_err ? d->team_err : FS_E_TEAM_NOSPACE,
		                  "join the space first (fieldsync join), then recover");
	if ((rc = fs_crypto_recovery_open(text, len, pass, pass_len, &r, eb)) != FS_OK)
		goto out;
	fs_crypto_identity_public(r, box, sign);
	fs_crypto_device_id(box, sign, rid);
	if ((rec = fs_crypto_team_recovery(d->team)) == NULL || strcmp(rec->id, rid) != 0) {
		rc = fs_err_set(eb, FS_E_MISBOUND, "this is not the space's recovery key");
		goto out;
	}
	if ((rc = fs_crypto_keyring_new(&got, eb)) != FS_OK ||
	    (rc = fs_crypto_team_open_keys(d->team, r, rid, got, &added, eb)) != FS_OK)
		goto out;
	for (size_t i = 0; i < fs_crypto_keyring_count(got); i++, kept++)
		if ((rc = fsd_vault_key_add(d, fs_crypto_keyring_at(got, i), eb)) != FS_OK)
			goto out;
	/* The recovery key admits this device, so it can write and approve. */
	if (my_status(d) != FS_TEAM_MEMBER && my_status(d) != FS_TEAM_REVOKED) {
		fs_team_doc doc;
		if ((rc = fsd_vault_identity(d, &me, eb)) != FS_OK)
			goto out;
		if (fs_crypto_team_device_find(d->team, d->dev_id) == NULL &&
		    (rc = put_self_doc(d, me, fsd_wall_ms(), eb)) != FS_OK)
			goto out;
		if ((rc = fs_crypto_team_member_doc(r, d->space_id, fs_crypto_team_current(d->team),
		                                    d->dev_id, fsd_wall_ms(), &doc, eb)) != FS_OK ||
		    (rc = put_doc(d, &doc, eb)) != FS_OK)
			goto out;
	}
	fsd_log(FS_DAEMON_LOG_INFO, "team: recovered %zu space key(s) with the office recovery key",
	        kept);
	fsd_cw_reset(d);
	fsd_team_refresh(d, 1);
	if ((*out = fsd_team_json(d, 1)) == NULL) {
		rc = fs_err_set(eb, FS_E_NOMEM, NULL);
		goto out;
	}
	cJSON_AddNumberToObject(*out, "keys_recovered", (double)kept);
	rc = FS_OK;
out:
	fs_crypto_identity_free(r);
	fs_crypto_identity_free(me);
	fs_crypto_keyring_free(got);
	return rc;
}
