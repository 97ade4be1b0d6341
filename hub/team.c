/*
 * hub/team.c: what the hub learns from a space's team documents
 * (docs/team.md) without holding any key: which token uploaded each
 * device's self-signed key document, and which devices the team has
 * revoked; the tokens of revoked devices are then refused. The first
 * space seen in a database is pinned, as a device pins it when it joins.
 * These are security events: logged even with --quiet (no access log).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hub_srv.h"

#define META_GENESIS "team.genesis"
#define DEVICE_DOC   FS_CRYPTO_TEAM_PREFIX "device:"

static int add_leaf(void *ctx, const char *id, const char *rev, uint64_t seq, const uint8_t *body,
                    size_t len)
{
	(void)rev;
	return fs_crypto_team_add(ctx, id, seq, body, len, NULL);
}

/* The database's team, resolved against its pinned space (pinned now when
 * this is the first). Called with db->mu held. */
static int resolve(hub_db *db, fs_team **out, fs_errbuf *eb)
{
	char pin[FS_CRYPTO_KID_MAX] = "";
	uint8_t *v = NULL;
	size_t n = 0;
	fs_team *t = NULL;
	int rc;

	*out = NULL;
	rc = fs_store_meta_get(db->st, META_GENESIS, &v, &n, eb);
	if (rc == FS_OK && n < sizeof(pin)) {
		memcpy(pin, v, n);
		pin[n] = '\0';
	} else if (rc != FS_OK && rc != FS_E_NOTFOUND) {
		free(v);
		return rc;
	}
	free(v);
	if ((rc = fs_crypto_team_new(&t, eb)) != FS_OK ||
	    (rc = fs_store_leaves_prefix(db->st, FS_CRYPTO_TEAM_PREFIX, add_leaf, t, NULL, eb)) !=
	        FS_OK ||
	    (rc = fs_crypto_team_resolve(t, pin[0] ? pin : NULL, eb)) != FS_OK)
		goto out;
	if (!pin[0]) {
		const char *g = fs_crypto_team_genesis(t);
		if ((rc = fs_store_meta_set(db->st, META_GENESIS, (const uint8_t *)g, strlen(g),
		                            eb)) != FS_OK)
			goto out;
	}
	*out = t;
	t = NULL;
out:
	fs_crypto_team_free(t);
	return rc;
}

void hub_team_written(fs_hub *h, hub_db *db, const hub_who *who, const char *const *ids, size_t n)
{
	const char *uploader = strncmp(who->id, "t:", 2) == 0 ? who->id + 2 : NULL;
	fs_team *t = NULL;
	fs_errbuf eb;
	size_t any = 0, revoked;
	int rc;

	for (size_t i = 0; i < n; i++)
		any += ids[i] && fs_crypto_team_doc_id(ids[i]);
	if (any == 0)
		return;
	pthread_mutex_lock(&db->mu);
	rc = resolve(db, &t, &eb);
	pthread_mutex_unlock(&db->mu);
	if (rc != FS_OK) {
		/* No space yet is normal before the founder's first push; once one
		 * is pinned, anything else stops the hub from following the team. */
		if (rc != FS_E_TEAM_NOSPACE || strstr(eb.msg, "first version"))
			fprintf(stderr, "hub: %s: team documents do not resolve: %s (%s)\n",
			        db->name, fs_strerror(rc), eb.msg);
		return;
	}
	/* A device's own key document names its token (signed by the device);
	 * one that names none binds the token that uploaded it. A token named
	 * in a document another token uploaded (a member relaying it from
	 * another server) is taken only while no other device has it. */
	for (size_t i = 0; i < n; i++) {
		const fs_team_device *d;
		const char *tok;
		if (ids[i] == NULL || strncmp(ids[i], DEVICE_DOC, sizeof(DEVICE_DOC) - 1) != 0 ||
		    (d = fs_crypto_team_device_find(t, ids[i] + sizeof(DEVICE_DOC) - 1)) == NULL ||
		    d->status == 0 || (tok = d->token[0] ? d->token : uploader) == NULL)
			continue;
		if (hub_auth_bind(h->auth, db->name, d->id, tok, uploader && !strcmp(tok, uploader),
		                  &eb) != FS_OK)
			fprintf(stderr, "hub: %s: device token not recorded: %s\n", db->name,
			        eb.msg);
	}
	for (size_t i = 0; i < fs_crypto_team_revoked_count(t); i++) {
		const char *dev = fs_crypto_team_revoked_at(t, i);
		if (hub_auth_revoke_device(h->auth, db->name, dev, &revoked, &eb) != FS_OK)
			fprintf(stderr, "hub: %s: cannot revoke device %s's token: %s\n", db->name,
			        dev, eb.msg);
		else if (revoked)
			fprintf(
			    stderr,
			    "hub: %s: device %s was revoked by its team: its token is refused\n",
			    db->name, dev);
	}
	fs_crypto_team_free(t);
}

int hub_team_write_ok(const char *id, const char *rev, int deleted, int new_edits)
{
	unsigned long gen = 0;

	if (!fs_crypto_team_doc_id(id))
		return 1;
	/* Written once, never edited or deleted (docs/team.md): an edit or a
	 * tombstone could only hide a document the team relies on. */
	if (deleted)
		return 0;
	if (new_edits)
		return rev == NULL; /* a base revision means an edit */
	return fs_crypto_rev_parse(rev, &gen, NULL) == FS_OK && gen == 1;
}
