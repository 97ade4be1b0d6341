/*
 * tests/crypto/test_team.c: team documents and their resolution
 * (docs/team.md): enrollment, approval chains, revocation with key
 * rotation, forks and races, tampered documents of every kind (every byte
 * of a certificate flipped), keys that do not match their version, the
 * office recovery key and its file. Argument: an optional cmocka filter.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
/* cmocka needs the four headers above first. */
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto_int.h"

#define SPACE "5ace0000000000000000000000000001"
#define MAXD  64

/* The documents of one space as a server would hold them. */
struct docs {
	fs_team_doc d[MAXD];
	size_t n;
};

static void docs_free(struct docs *s)
{
	for (size_t i = 0; i < s->n; i++)
		fs_crypto_team_doc_clear(&s->d[i]);
	s->n = 0;
}

static fs_team_doc *slot(struct docs *s)
{
	assert_true(s->n < MAXD);
	return &s->d[s->n++];
}

struct dev {
	fs_identity *id;
	char did[FS_CRYPTO_DEVICE_ID_MAX];
	uint8_t box[FS_CRYPTO_BOX_PK_BYTES], sign[FS_CRYPTO_SIGN_PK_BYTES];
};

static void dev_new(struct dev *v, struct docs *s, const char *name)
{
	fs_errbuf eb;

	assert_int_equal(fs_crypto_identity_new(&v->id, &eb), FS_OK);
	fs_crypto_identity_public(v->id, v->box, v->sign);
	fs_crypto_device_id(v->box, v->sign, v->did);
	if (s)
		assert_int_equal(
		    fs_crypto_team_device_doc(v->id, SPACE, name, NULL, 1000, slot(s), &eb), FS_OK);
}

static void dev_free(struct dev *v)
{
	fs_crypto_identity_free(v->id);
}

/* Epoch for key k by signer, listing members and revoked. */
static void epoch(struct docs *s, const struct dev *signer, const fs_space_key *k, const char *prev,
                  const char *const *m, size_t nm, const char *const *r, size_t nr,
                  const struct dev *rec)
{
	fs_team_epoch_in in = {.key = k,
	                       .prev = prev,
	                       .members = m,
	                       .n_members = nm,
	                       .revoked = r,
	                       .n_revoked = nr,
	                       .recovery_box = rec ? rec->box : NULL,
	                       .recovery_sign = rec ? rec->sign : NULL,
	                       .at_ms = 2000};
	fs_errbuf eb;

	assert_int_equal(fs_crypto_team_epoch_doc(signer->id, &in, slot(s), &eb), FS_OK);
}

static void member(struct docs *s, const struct dev *signer, const fs_space_key *k,
                   const struct dev *who)
{
	fs_errbuf eb;
	assert_int_equal(fs_crypto_team_member_doc(signer->id, SPACE, fs_crypto_spacekey_kid(k),
	                                           who->did, 3000, slot(s), &eb),
	                 FS_OK);
}

static void keydoc(struct docs *s, const struct dev *signer, const fs_space_key *k,
                   const struct dev *to)
{
	fs_errbuf eb;
	assert_int_equal(
	    fs_crypto_team_key_doc(signer->id, k, to->did, to->box, 4000, slot(s), &eb), FS_OK);
}

/* A team from the documents, resolved (genesis may be NULL). */
static fs_team *resolve(const struct docs *s, const char *genesis, int want)
{
	fs_team *t = NULL;
	fs_errbuf eb;

	assert_int_equal(fs_crypto_team_new(&t, &eb), FS_OK);
	for (size_t i = 0; i < s->n; i++)
		assert_int_equal(fs_crypto_team_add(t, s->d[i].id, i + 1,
		                                    (const uint8_t *)s->d[i].body, s->d[i].len,
		                                    &eb),
		                 FS_OK);
	assert_int_equal(fs_crypto_team_resolve(t, genesis, &eb), want);
	return t;
}

static int status(const fs_team *t, const struct dev *v)
{
	const fs_team_device *d = fs_crypto_team_device_find(t, v->did);
	return d ? d->status : 0;
}

static int has_problem(const fs_team *t, const char *doc, int code)
{
	for (size_t i = 0; i < fs_crypto_team_problem_count(t); i++) {
		const fs_team_problem *p = fs_crypto_team_problem_at(t, i);
		if (strcmp(p->doc, doc) == 0 && (code == 0 || p->code == code))
			return 1;
	}
	return 0;
}

/* How many keys me opens from the team into a fresh ring, and whether kid is among them. */
static size_t opened(fs_team *t, const struct dev *me, const char *kid, int *has)
{
	fs_keyring *ring = NULL;
	size_t n = 0;
	fs_errbuf eb;

	assert_int_equal(fs_crypto_keyring_new(&ring, &eb), FS_OK);
	assert_int_equal(fs_crypto_team_open_keys(t, me->id, me->did, ring, &n, &eb), FS_OK);
	if (has)
		*has = kid && fs_crypto_keyring_find(ring, kid) != NULL;
	fs_crypto_keyring_free(ring);
	return n;
}

/* A founder A with key version 1, and B approved by A. */
struct world {
	struct docs s;
	struct dev a, b, c, r;
	fs_space_key *k1;
};

static void world_new(struct world *w, int with_recovery)
{
	fs_errbuf eb;

	memset(w, 0, sizeof(*w));
	dev_new(&w->a, &w->s, "A's laptop");
	dev_new(&w->r, NULL, NULL);
	assert_int_equal(fs_crypto_spacekey_new(SPACE, 1, &w->k1, &eb), FS_OK);
	const char *m[] = {w->a.did};
	epoch(&w->s, &w->a, w->k1, NULL, m, 1, NULL, 0, with_recovery ? &w->r : NULL);
	keydoc(&w->s, &w->a, w->k1, &w->a);
	if (with_recovery)
		keydoc(&w->s, &w->a, w->k1, &w->r);
	dev_new(&w->b, &w->s, "B's tablet");
	member(&w->s, &w->a, w->k1, &w->b);
	keydoc(&w->s, &w->a, w->k1, &w->b);
}

static void world_free(struct world *w)
{
	docs_free(&w->s);
	dev_free(&w->a);
	dev_free(&w->b);
	dev_free(&w->c);
	dev_free(&w->r);
	fs_crypto_spacekey_free(w->k1);
}

/* ---- tests ---- */

static void team_ids(void **state)
{
	struct dev a;
	char again[FS_CRYPTO_DEVICE_ID_MAX];

	(void)state;
	dev_new(&a, NULL, NULL);
	assert_int_equal(strlen(a.did), 32);
	fs_crypto_device_id(a.box, a.sign, again);
	assert_string_equal(a.did, again);
	a.box[0] ^= 1;
	fs_crypto_device_id(a.box, a.sign, again);
	assert_string_not_equal(a.did, again);
	assert_true(fs_crypto_team_doc_id("fs:device:x"));
	assert_false(fs_crypto_team_doc_id("8f1c0000"));
	assert_false(fs_crypto_team_doc_id(NULL));
	assert_int_equal(fs_crypto_kid_version("12-abc"), 12);
	assert_int_equal(fs_crypto_kid_version("0-abc"), 0);
	assert_int_equal(fs_crypto_kid_version("x-abc"), 0);
	assert_int_equal(fs_crypto_kid_version("99999999999-a"), 0);
	dev_free(&a);
}

/* The founder alone; then B asks, is pending and reads nothing; A approves. */
static void team_enroll(void **state)
{
	struct world w;
	fs_team *t;
	int has = 0;
	fs_errbuf eb;

	(void)state;
	world_new(&w, 0);
	/* Without A's approval (the last two documents): B is pending. */
	w.s.n -= 2;
	t = resolve(&w.s, NULL, FS_OK);
	assert_string_equal(fs_crypto_team_space(t), SPACE);
	assert_string_equal(fs_crypto_team_current(t), fs_crypto_spacekey_kid(w.k1));
	assert_string_equal(fs_crypto_team_genesis(t), fs_crypto_spacekey_kid(w.k1));
	assert_int_equal(status(t, &w.a), FS_TEAM_MEMBER);
	assert_int_equal(status(t, &w.b), FS_TEAM_PENDING);
	assert_int_equal(fs_crypto_team_member_count(t), 1);
	assert_int_equal(opened(t, &w.b, NULL, NULL), 0);
	assert_int_equal(opened(t, &w.a, fs_crypto_spacekey_kid(w.k1), &has), 1);
	assert_true(has);
	assert_null(fs_crypto_team_recovery(t));
	assert_int_equal(fs_crypto_team_problem_count(t), 0);
	fs_crypto_team_free(t);
	w.s.n += 2;

	t = resolve(&w.s, NULL, FS_OK);
	assert_int_equal(status(t, &w.b), FS_TEAM_MEMBER);
	const fs_team_device *bd = fs_crypto_team_device_find(t, w.b.did);
	assert_string_equal(bd->approved_by, w.a.did);
	assert_string_equal(bd->name, "B's tablet");
	assert_int_equal(strlen(bd->fingerprint), 35);
	assert_int_equal(opened(t, &w.b, fs_crypto_spacekey_kid(w.k1), &has), 1);
	assert_true(has);
	assert_int_equal(fs_crypto_team_member_count(t), 2);
	assert_false(fs_crypto_team_stale(t));
	fs_crypto_team_free(t);

	/* A device name with a control character is refused when built. */
	assert_int_equal(
	    fs_crypto_team_device_doc(w.b.id, SPACE, "bad\x1b[2J", NULL, 1, slot(&w.s), &eb),
	    FS_E_ARG);
	w.s.n--;
	world_free(&w);
}

/* A certificate signed by a device that is not a member admits nobody, and
 * a chain of approvals (A approves B, B approves C) does. */
static void team_chain(void **state)
{
	struct world w;
	struct dev d;
	fs_team *t;

	(void)state;
	world_new(&w, 0);
	dev_new(&w.c, &w.s, "C");
	dev_new(&d, &w.s, "D");
	member(&w.s, &w.c, w.k1, &d); /* C is not a member yet: no effect */
	t = resolve(&w.s, NULL, FS_OK);
	assert_int_equal(status(t, &w.c), FS_TEAM_PENDING);
	assert_int_equal(status(t, &d), FS_TEAM_PENDING);
	fs_crypto_team_free(t);
	member(&w.s, &w.b, w.k1, &w.c); /* B (a member) approves C: C, then D, get in */
	t = resolve(&w.s, NULL, FS_OK);
	assert_int_equal(status(t, &w.c), FS_TEAM_MEMBER);
	assert_int_equal(status(t, &d), FS_TEAM_MEMBER);
	assert_string_equal(fs_crypto_team_device_find(t, d.did)->approved_by, w.c.did);
	fs_crypto_team_free(t);
	dev_free(&d);
	world_free(&w);
}

/* A revokes C: a new version sealed to A, B and the recovery key. B and the
 * recovery key open it, C does not; C stays revoked whoever approves it. */
static void team_revoke(void **state)
{
	struct world w;
	fs_space_key *k2 = NULL;
	fs_team *t;
	int has = 0;
	fs_errbuf eb;

	(void)state;
	world_new(&w, 1);
	dev_new(&w.c, &w.s, "C");
	member(&w.s, &w.a, w.k1, &w.c);
	keydoc(&w.s, &w.a, w.k1, &w.c);
	assert_int_equal(fs_crypto_spacekey_new(SPACE, 2, &k2, &eb), FS_OK);
	const char *m[] = {w.a.did, w.b.did}, *r[] = {w.c.did};
	epoch(&w.s, &w.a, k2, fs_crypto_spacekey_kid(w.k1), m, 2, r, 1, &w.r);
	keydoc(&w.s, &w.a, k2, &w.a);
	keydoc(&w.s, &w.a, k2, &w.b);
	keydoc(&w.s, &w.a, k2, &w.r);
	member(&w.s, &w.b, k2, &w.c); /* B approves C again: a revoked device stays out */

	t = resolve(&w.s, NULL, FS_OK);
	assert_string_equal(fs_crypto_team_current(t), fs_crypto_spacekey_kid(k2));
	assert_int_equal(status(t, &w.c), FS_TEAM_REVOKED);
	assert_int_equal(status(t, &w.b), FS_TEAM_MEMBER);
	assert_int_equal(fs_crypto_team_revoked_count(t), 1);
	assert_string_equal(fs_crypto_team_revoked_at(t, 0), w.c.did);
	assert_int_equal(opened(t, &w.b, fs_crypto_spacekey_kid(k2), &has), 2);
	assert_true(has);
	assert_int_equal(opened(t, &w.c, fs_crypto_spacekey_kid(k2), &has), 1); /* k1 only */
	assert_false(has);
	assert_int_equal(opened(t, &w.r, fs_crypto_spacekey_kid(k2), &has), 2);
	assert_true(has);
	assert_non_null(fs_crypto_team_recovery(t));
	assert_string_equal(fs_crypto_team_recovery(t)->id, w.r.did);
	assert_true(fs_crypto_team_valid_kid(t, fs_crypto_spacekey_kid(w.k1)));
	assert_true(fs_crypto_team_valid_kid(t, fs_crypto_spacekey_kid(k2)));
	assert_false(fs_crypto_team_valid_kid(t, "9-0000000000000000"));
	assert_false(fs_crypto_team_stale(t));
	fs_crypto_team_free(t);
	fs_crypto_spacekey_free(k2);
	world_free(&w);
}

/* The revoked device forks from the version it was a member of: the
 * rotation that revokes it wins; when both revoke each other, the office's
 * recovery key settles it. A rotation by a non-member counts for nothing. */
static void team_forks(void **state)
{
	struct world w;
	fs_space_key *k2 = NULL, *k2c = NULL, *k2r = NULL, *k2x = NULL;
	struct dev x;
	fs_team *t;
	fs_errbuf eb;

	(void)state;
	world_new(&w, 1);
	dev_new(&w.c, &w.s, "C");
	dev_new(&x, &w.s, "X");
	member(&w.s, &w.a, w.k1, &w.c);
	assert_int_equal(fs_crypto_spacekey_new(SPACE, 2, &k2, &eb), FS_OK);
	assert_int_equal(fs_crypto_spacekey_new(SPACE, 2, &k2c, &eb), FS_OK);
	assert_int_equal(fs_crypto_spacekey_new(SPACE, 2, &k2r, &eb), FS_OK);
	assert_int_equal(fs_crypto_spacekey_new(SPACE, 2, &k2x, &eb), FS_OK);
	const char *mab[] = {w.a.did, w.b.did}, *rc[] = {w.c.did};
	const char *mc[] = {w.c.did}, *none[] = {NULL};
	epoch(&w.s, &w.a, k2, fs_crypto_spacekey_kid(w.k1), mab, 2, rc, 1, &w.r);
	epoch(&w.s, &w.c, k2c, fs_crypto_spacekey_kid(w.k1), mc, 1, none, 0, &w.r);
	epoch(&w.s, &x, k2x, fs_crypto_spacekey_kid(w.k1), mc, 1, none, 0, NULL);
	t = resolve(&w.s, NULL, FS_OK);
	assert_string_equal(fs_crypto_team_current(t), fs_crypto_spacekey_kid(k2));
	assert_int_equal(status(t, &w.c), FS_TEAM_REVOKED);
	/* C's answer to its revocation is set aside (not even readable: only C
	 * could have sealed records under it), X's was never a member's. */
	assert_false(fs_crypto_team_valid_kid(t, fs_crypto_spacekey_kid(k2c)));
	assert_false(fs_crypto_team_valid_kid(t, fs_crypto_spacekey_kid(k2x)));
	char cdoc[FS_CRYPTO_TEAM_ID_MAX];
	snprintf(cdoc, sizeof(cdoc), "fs:epoch:%s", fs_crypto_spacekey_kid(k2c));
	assert_true(has_problem(t, cdoc, FS_E_SIGNATURE));
	char xdoc[FS_CRYPTO_TEAM_ID_MAX];
	snprintf(xdoc, sizeof(xdoc), "fs:epoch:%s", fs_crypto_spacekey_kid(k2x));
	assert_true(has_problem(t, xdoc, FS_E_SIGNATURE));
	fs_crypto_team_free(t);

	/* C now revokes A and B too: mutual. The recovery key's rotation wins. */
	w.s.n -= 2;
	fs_crypto_team_doc_clear(&w.s.d[w.s.n]);
	fs_crypto_team_doc_clear(&w.s.d[w.s.n + 1]);
	const char *rab[] = {w.a.did, w.b.did};
	epoch(&w.s, &w.c, k2c, fs_crypto_spacekey_kid(w.k1), mc, 1, rab, 2, &w.r);
	epoch(&w.s, &w.r, k2r, fs_crypto_spacekey_kid(w.k1), mab, 2, rc, 1, &w.r);
	t = resolve(&w.s, NULL, FS_OK);
	assert_string_equal(fs_crypto_team_current(t), fs_crypto_spacekey_kid(k2r));
	assert_int_equal(status(t, &w.a), FS_TEAM_MEMBER);
	assert_int_equal(status(t, &w.b), FS_TEAM_MEMBER);
	assert_int_equal(status(t, &w.c), FS_TEAM_REVOKED);
	fs_crypto_team_free(t);

	fs_crypto_spacekey_free(k2);
	fs_crypto_spacekey_free(k2c);
	fs_crypto_spacekey_free(k2r);
	fs_crypto_spacekey_free(k2x);
	dev_free(&x);
	world_free(&w);
}

/* C, about to be revoked, answers with a version that revokes its revoker:
 * the one that arrived first stands (a revoked device's answer always
 * arrives after its revocation); the other and its revocations are set
 * aside. Without the race, the revoker's version holds either way. */
static void team_mutual(void **state)
{
	struct world w;
	fs_space_key *k2 = NULL, *k2c = NULL;
	fs_team *t;
	fs_errbuf eb;

	(void)state;
	world_new(&w, 0);
	dev_new(&w.c, &w.s, "C");
	member(&w.s, &w.a, w.k1, &w.c);
	assert_int_equal(fs_crypto_spacekey_new(SPACE, 2, &k2, &eb), FS_OK);
	assert_int_equal(fs_crypto_spacekey_new(SPACE, 2, &k2c, &eb), FS_OK);
	const char *mab[] = {w.a.did, w.b.did}, *rc[] = {w.c.did};
	const char *mbc[] = {w.b.did, w.c.did}, *ra[] = {w.a.did};
	epoch(&w.s, &w.a, k2, fs_crypto_spacekey_kid(w.k1), mab, 2, rc, 1, NULL);
	epoch(&w.s, &w.c, k2c, fs_crypto_spacekey_kid(w.k1), mbc, 2, ra, 1, NULL);
	t = resolve(&w.s, NULL, FS_OK);
	assert_string_equal(fs_crypto_team_current(t), fs_crypto_spacekey_kid(k2));
	assert_int_equal(status(t, &w.a), FS_TEAM_MEMBER);
	assert_int_equal(status(t, &w.c), FS_TEAM_REVOKED);
	assert_int_equal(fs_crypto_team_revoked_count(t), 1);
	fs_crypto_team_free(t);

	/* Swapped arrival: C rotated first, while still a member. */
	fs_team_doc tmp = w.s.d[w.s.n - 1];
	w.s.d[w.s.n - 1] = w.s.d[w.s.n - 2];
	w.s.d[w.s.n - 2] = tmp;
	t = resolve(&w.s, NULL, FS_OK);
	assert_string_equal(fs_crypto_team_current(t), fs_crypto_spacekey_kid(k2c));
	assert_int_equal(status(t, &w.a), FS_TEAM_REVOKED);
	assert_int_equal(status(t, &w.c), FS_TEAM_MEMBER);
	fs_crypto_team_free(t);
	fs_crypto_spacekey_free(k2);
	fs_crypto_spacekey_free(k2c);
	world_free(&w);
}

/* A copy of src under id, with the signed text's member k replaced by v
 * (a JSON value) and the old signature kept: a forgery. */
static void forge(const fs_team_doc *src, const char *id, const char *k, const char *v,
                  fs_team_doc *dst)
{
	cJSON *w = cJSON_Parse(src->body), *b;
	char *bt;

	assert_non_null(w);
	assert_non_null(b = cJSON_Parse(cJSON_GetObjectItem(w, "b")->valuestring));
	if (k) {
		cJSON_DeleteItemFromObject(b, k);
		cJSON_AddItemToObject(b, k, cJSON_Parse(v));
	}
	bt = cJSON_PrintUnformatted(b);
	cJSON_DeleteItemFromObject(w, "b");
	cJSON_AddStringToObject(w, "b", bt);
	memset(dst, 0, sizeof(*dst));
	snprintf(dst->id, sizeof(dst->id), "%s", id ? id : src->id);
	dst->body = cJSON_PrintUnformatted(w);
	dst->len = strlen(dst->body);
	cJSON_free(bt);
	cJSON_Delete(b);
	cJSON_Delete(w);
}

static fs_team_doc *find_doc(struct docs *s, const char *prefix)
{
	for (size_t i = 0; i < s->n; i++)
		if (strncmp(s->d[i].id, prefix, strlen(prefix)) == 0)
			return &s->d[i];
	fail_msg("no document %s", prefix);
	return NULL;
}

/* Revoked X had let in a puppet Y (a certificate for version 1, signed
 * while X was a member). After X's revocation arrives, Y answers with a
 * version that revokes X's revokers and takes the lowest kid: set aside,
 * because Y was a member only through X. */
static void team_puppet(void **state)
{
	struct world w;
	struct dev x, y;
	fs_space_key *k2 = NULL, *ky = NULL;
	fs_team *t;
	fs_errbuf eb;
	const uint8_t key[32] = {7};

	(void)state;
	world_new(&w, 0);
	dev_new(&x, &w.s, "X");
	dev_new(&y, &w.s, "Y");
	member(&w.s, &w.a, w.k1, &x);
	assert_int_equal(fs_crypto_spacekey_new(SPACE, 2, &k2, &eb), FS_OK);
	const char *mab[] = {w.a.did, w.b.did}, *rx[] = {x.did};
	epoch(&w.s, &w.a, k2, fs_crypto_spacekey_kid(w.k1), mab, 2, rx, 1, NULL);
	member(&w.s, &x, w.k1, &y); /* signed by X: counts only while X is not revoked */
	assert_int_equal(fs_crypto_spacekey_from_bytes(SPACE, "2-0000000000000000", key, &ky, &eb),
	                 FS_OK);
	const char *my[] = {y.did}, *rab[] = {w.a.did, w.b.did};
	epoch(&w.s, &y, ky, fs_crypto_spacekey_kid(w.k1), my, 1, rab, 2, NULL);
	t = resolve(&w.s, NULL, FS_OK);
	assert_string_equal(fs_crypto_team_current(t), fs_crypto_spacekey_kid(k2));
	assert_int_equal(status(t, &w.a), FS_TEAM_MEMBER);
	assert_int_equal(status(t, &w.b), FS_TEAM_MEMBER);
	assert_int_equal(status(t, &x), FS_TEAM_REVOKED);
	assert_int_equal(status(t, &y), FS_TEAM_PENDING);
	assert_true(has_problem(t, "fs:epoch:2-0000000000000000", FS_E_SIGNATURE));
	assert_false(fs_crypto_team_valid_kid(t, "2-0000000000000000"));
	fs_crypto_team_free(t);
	fs_crypto_spacekey_free(k2);
	fs_crypto_spacekey_free(ky);
	dev_free(&x);
	dev_free(&y);
	world_free(&w);
}

/* Forgeries of a version: under another id; as a conflicting leaf with the
 * revocation taken out; key documents with a broken signature that would
 * make the version look stale. None counts; the genuine version stands. A
 * member signing two different documents for one kid gets neither counted. */
static void team_forged(void **state)
{
	struct world w;
	fs_space_key *k2 = NULL;
	fs_team *t;
	fs_errbuf eb;
	char id[FS_CRYPTO_TEAM_ID_MAX];

	(void)state;
	world_new(&w, 0);
	dev_new(&w.c, &w.s, "C");
	member(&w.s, &w.a, w.k1, &w.c);
	assert_int_equal(fs_crypto_spacekey_new(SPACE, 2, &k2, &eb), FS_OK);
	const char *mab[] = {w.a.did, w.b.did}, *rc[] = {w.c.did};
	epoch(&w.s, &w.a, k2, fs_crypto_spacekey_kid(w.k1), mab, 2, rc, 1, NULL);
	keydoc(&w.s, &w.a, k2, &w.b);
	snprintf(id, sizeof(id), "fs:epoch:%s", fs_crypto_spacekey_kid(k2));
	fs_team_doc *v2 = find_doc(&w.s, id);
	forge(v2, "fs:zz-forged", NULL, NULL, slot(&w.s)); /* another id */
	forge(v2, NULL, "revoked", "[]", slot(&w.s));      /* a leaf of v2 */
	forge(v2, NULL, "members", "[]", slot(&w.s));      /* another leaf */
	snprintf(id, sizeof(id), "fs:key:%s:%s:", fs_crypto_spacekey_kid(k2), w.b.did);
	fs_team_doc *kb = find_doc(&w.s, id);
	char kid_c[FS_CRYPTO_TEAM_ID_MAX], to[64];
	snprintf(kid_c, sizeof(kid_c), "fs:key:%s:%s:%s", fs_crypto_spacekey_kid(k2), w.c.did,
	         w.a.did);
	snprintf(to, sizeof(to), "\"%s\"", w.c.did);
	forge(kb, kid_c, "to", to, slot(&w.s)); /* "sealed to revoked C": would look stale */
	t = resolve(&w.s, NULL, FS_OK);
	assert_string_equal(fs_crypto_team_current(t), fs_crypto_spacekey_kid(k2));
	assert_int_equal(status(t, &w.c), FS_TEAM_REVOKED);
	assert_true(has_problem(t, "fs:zz-forged", FS_E_INPUT));
	assert_false(fs_crypto_team_stale(t));
	assert_false(fs_crypto_team_has_key(t, fs_crypto_spacekey_kid(k2), w.c.did));
	assert_true(fs_crypto_team_has_key(t, fs_crypto_spacekey_kid(k2), w.b.did));
	assert_true(has_problem(t, kid_c, FS_E_SIGNATURE));
	fs_crypto_team_free(t);

	/* A signs a second, different version 2 under the same kid. */
	const char *ma[] = {w.a.did};
	epoch(&w.s, &w.a, k2, fs_crypto_spacekey_kid(w.k1), ma, 1, rc, 1, NULL);
	t = resolve(&w.s, NULL, FS_OK);
	assert_string_equal(fs_crypto_team_current(t), fs_crypto_spacekey_kid(w.k1));
	assert_false(fs_crypto_team_valid_kid(t, fs_crypto_spacekey_kid(k2)));
	fs_crypto_team_free(t);
	fs_crypto_spacekey_free(k2);
	world_free(&w);
}

/* A flood: more team documents than a team reads is an error (the daemon
 * then refuses to write), and problems are kept up to their bound and
 * counted past it. */
static void team_flood(void **state)
{
	fs_team *t = NULL;
	fs_errbuf eb;
	char id[64];
	int rc = FS_OK;
	size_t i;

	(void)state;
	assert_int_equal(fs_crypto_team_new(&t, &eb), FS_OK);
	for (i = 0; i <= FS_CRYPTO_TEAM_DOCS_MAX && rc == FS_OK; i++) {
		snprintf(id, sizeof(id), "fs:junk:%zu", i);
		rc = fs_crypto_team_add(t, id, i, (const uint8_t *)"{}", 2, &eb);
	}
	assert_int_equal(rc, FS_E_TOOBIG);
	assert_int_equal(i, FS_CRYPTO_TEAM_DOCS_MAX + 1);
	assert_int_equal(fs_crypto_team_problem_count(t), FS_CRYPTO_TEAM_PROBLEMS_MAX);
	assert_int_equal(fs_crypto_team_problems_more(t),
	                 FS_CRYPTO_TEAM_DOCS_MAX - FS_CRYPTO_TEAM_PROBLEMS_MAX);
	fs_crypto_team_free(t);
}

/* What counts is what a device keeps a copy of: every genuine document,
 * never a forgery. A device document may name its server token. */
static void team_counts(void **state)
{
	struct world w;
	struct dev z;
	fs_team *t;
	fs_team_doc f;
	fs_errbuf eb;

	(void)state;
	world_new(&w, 1);
	dev_new(&z, NULL, NULL);
	assert_int_equal(fs_crypto_team_device_doc(z.id, SPACE, "Z", "tok42", 9, slot(&w.s), &eb),
	                 FS_OK);
	assert_int_equal(fs_crypto_team_device_doc(z.id, SPACE, "Z", "no-dashes", 9, &f, &eb),
	                 FS_E_ARG);
	t = resolve(&w.s, NULL, FS_OK);
	for (size_t i = 0; i < w.s.n; i++)
		assert_true(fs_crypto_team_counts(t, w.s.d[i].id, (const uint8_t *)w.s.d[i].body,
		                                  w.s.d[i].len));
	assert_string_equal(fs_crypto_team_device_find(t, z.did)->token, "tok42");
	assert_string_equal(fs_crypto_team_device_find(t, w.a.did)->token, "");
	forge(&w.s.d[1], NULL, "members", "[]", &f);
	assert_false(fs_crypto_team_counts(t, f.id, (const uint8_t *)f.body, f.len));
	assert_false(fs_crypto_team_counts(t, w.s.d[1].id, (const uint8_t *)"{}", 2));
	fs_crypto_team_doc_clear(&f);
	fs_crypto_team_free(t);
	dev_free(&z);
	world_free(&w);
}

/* Two members rotate at once, each revoking someone: both revocations
 * hold, and the head is stale (sealed to a device revoked now) until a
 * member rotates again. */
static void team_concurrent(void **state)
{
	struct world w;
	struct dev x, y;
	fs_space_key *ka = NULL, *kb = NULL, *k4 = NULL;
	fs_team *t;
	fs_errbuf eb;

	(void)state;
	world_new(&w, 0);
	dev_new(&x, &w.s, "X");
	dev_new(&y, &w.s, "Y");
	member(&w.s, &w.a, w.k1, &x);
	member(&w.s, &w.a, w.k1, &y);
	assert_int_equal(fs_crypto_spacekey_new(SPACE, 2, &ka, &eb), FS_OK);
	assert_int_equal(fs_crypto_spacekey_new(SPACE, 2, &kb, &eb), FS_OK);
	const char *ma[] = {w.a.did, w.b.did, y.did}, *ra[] = {x.did};
	const char *mb[] = {w.a.did, w.b.did, x.did}, *rb[] = {y.did};
	epoch(&w.s, &w.a, ka, fs_crypto_spacekey_kid(w.k1), ma, 3, ra, 1, NULL);
	epoch(&w.s, &w.b, kb, fs_crypto_spacekey_kid(w.k1), mb, 3, rb, 1, NULL);
	t = resolve(&w.s, NULL, FS_OK);
	assert_int_equal(status(t, &x), FS_TEAM_REVOKED);
	assert_int_equal(status(t, &y), FS_TEAM_REVOKED);
	assert_true(fs_crypto_team_stale(t));
	const char *head = fs_crypto_team_current(t);
	assert_true(!strcmp(head, fs_crypto_spacekey_kid(ka)) ||
	            !strcmp(head, fs_crypto_spacekey_kid(kb)));
	char prev[FS_CRYPTO_KID_MAX];
	snprintf(prev, sizeof(prev), "%s", head);
	fs_crypto_team_free(t);

	assert_int_equal(fs_crypto_spacekey_new(SPACE, 3, &k4, &eb), FS_OK);
	const char *m4[] = {w.a.did, w.b.did}, *r4[] = {x.did, y.did};
	epoch(&w.s, &w.a, k4, prev, m4, 2, r4, 2, NULL);
	t = resolve(&w.s, NULL, FS_OK);
	assert_string_equal(fs_crypto_team_current(t), fs_crypto_spacekey_kid(k4));
	assert_false(fs_crypto_team_stale(t));
	fs_crypto_team_free(t);

	fs_crypto_spacekey_free(ka);
	fs_crypto_spacekey_free(kb);
	fs_crypto_spacekey_free(k4);
	dev_free(&x);
	dev_free(&y);
	world_free(&w);
}

/* Tampering: every byte of B's member certificate flipped in turn never
 * makes B a member with a broken signature; a device document with an
 * altered name is ignored and reported; a document under another id, a
 * key that does not match its version's commitment, another space. */
static void team_tamper(void **state)
{
	struct world w;
	fs_team *t;
	fs_space_key *fake = NULL;
	fs_errbuf eb;
	size_t cert = 0;

	(void)state;
	world_new(&w, 0);
	for (size_t i = 0; i < w.s.n; i++)
		if (!strncmp(w.s.d[i].id, "fs:member:", 10))
			cert = i;
	fs_team_doc *c = &w.s.d[cert];
	size_t members = 0, flips = 0;
	for (size_t i = 0; i < c->len; i++) {
		char keep = c->body[i];
		c->body[i] ^= 0x01;
		t = resolve(&w.s, NULL, FS_OK);
		if (status(t, &w.b) == FS_TEAM_MEMBER)
			members++;
		else
			assert_true(has_problem(t, c->id, 0) || status(t, &w.b) == FS_TEAM_PENDING);
		flips++;
		fs_crypto_team_free(t);
		c->body[i] = keep;
	}
	/* Inside the signed text the signature breaks; in the wrapper the
	 * document stops parsing; in the signature it stops verifying. */
	printf("# %zu flips of a %zu-byte certificate, B still a member after %zu\n", flips, c->len,
	       members);
	assert_int_equal(members, 0);

	/* The device document's name changed after signing. */
	size_t bdev = 0;
	for (size_t i = 0; i < w.s.n; i++)
		if (!strncmp(w.s.d[i].id, "fs:device:", 10) && strstr(w.s.d[i].body, "tablet"))
			bdev = i;
	char *p = strstr(w.s.d[bdev].body, "tablet");
	memcpy(p, "tabIet", 6);
	t = resolve(&w.s, NULL, FS_OK);
	assert_null(fs_crypto_team_device_find(t, w.b.did));
	assert_true(has_problem(t, w.s.d[bdev].id, FS_E_SIGNATURE));
	fs_crypto_team_free(t);
	memcpy(p, "tablet", 6);

	/* Stored under another id: counts for nothing. */
	char keep[FS_CRYPTO_TEAM_ID_MAX];
	snprintf(keep, sizeof(keep), "%s", c->id);
	snprintf(c->id, sizeof(c->id), "fs:member:1-0000000000000000:%s:%s", w.b.did, w.a.did);
	t = resolve(&w.s, NULL, FS_OK);
	assert_int_equal(status(t, &w.b), FS_TEAM_PENDING);
	assert_true(has_problem(t, c->id, FS_E_INPUT));
	fs_crypto_team_free(t);
	snprintf(c->id, sizeof(c->id), "%s", keep);

	/* A (a member) seals B another key under version 1's kid: refused by
	 * the commitment, reported. */
	assert_int_equal(fs_crypto_spacekey_from_bytes(
	                     SPACE, fs_crypto_spacekey_kid(w.k1),
	                     (const uint8_t *)"0123456789abcdef0123456789abcdef", &fake, &eb),
	                 FS_OK);
	struct docs only = {0};
	for (size_t i = 0; i < w.s.n; i++)
		if (strncmp(w.s.d[i].id, "fs:key:", 7) != 0) {
			only.d[only.n] = w.s.d[i];
			only.n++;
		}
	fs_team_doc *fk = slot(&only);
	assert_int_equal(fs_crypto_team_key_doc(w.a.id, fake, w.b.did, w.b.box, 5, fk, &eb), FS_OK);
	t = resolve(&only, NULL, FS_OK);
	int has = 1;
	assert_int_equal(opened(t, &w.b, fs_crypto_spacekey_kid(w.k1), &has), 0);
	assert_false(has);
	assert_true(has_problem(t, fk->id, FS_E_TAMPERED));
	fs_crypto_team_free(t);
	fs_crypto_team_doc_clear(fk);
	fs_crypto_spacekey_free(fake);

	/* Garbage of every shape under team ids never fails the call. */
	const char *junk[] = {
	    "",
	    "{}",
	    "[]",
	    "{\"fst\":1}",
	    "{\"fst\":2,\"t\":\"device\",\"b\":\"{}\",\"s\":\"\"}",
	    "{\"fst\":1,\"t\":\"epoch\",\"b\":\"{\\\"kid\\\":1}\",\"s\":\"AAAA\"}",
	    "nope"};
	t = NULL;
	assert_int_equal(fs_crypto_team_new(&t, &eb), FS_OK);
	for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++) {
		char id[32];
		snprintf(id, sizeof(id), "fs:x:%zu", i);
		assert_int_equal(
		    fs_crypto_team_add(t, id, i, (const uint8_t *)junk[i], strlen(junk[i]), &eb),
		    FS_OK);
	}
	assert_int_equal(fs_crypto_team_problem_count(t), sizeof(junk) / sizeof(junk[0]));
	assert_int_equal(fs_crypto_team_resolve(t, NULL, &eb), FS_E_TEAM_NOSPACE);
	fs_crypto_team_free(t);
	world_free(&w);
}

/* Two first versions in one database: ambiguous until one is pinned. A
 * first version that its founder did not sign is no space at all. */
static void team_genesis(void **state)
{
	struct world w;
	struct dev z;
	fs_space_key *kz = NULL;
	fs_team *t;
	fs_errbuf eb;

	(void)state;
	world_new(&w, 0);
	dev_new(&z, &w.s, "Z");
	assert_int_equal(fs_crypto_spacekey_new(SPACE, 1, &kz, &eb), FS_OK);
	const char *mz[] = {z.did};
	epoch(&w.s, &z, kz, NULL, mz, 1, NULL, 0, NULL);
	t = resolve(&w.s, NULL, FS_E_TEAM_AMBIGUOUS);
	fs_crypto_team_free(t);
	t = resolve(&w.s, fs_crypto_spacekey_kid(w.k1), FS_OK);
	assert_int_equal(status(t, &w.b), FS_TEAM_MEMBER);
	assert_int_equal(status(t, &z), FS_TEAM_PENDING);
	fs_crypto_team_free(t);
	t = resolve(&w.s, "1-ffffffffffffffff", FS_E_TEAM_NOSPACE);
	fs_crypto_team_free(t);

	/* Z's first version listing A as its only member, signed by Z. */
	w.s.n--;
	fs_crypto_team_doc_clear(&w.s.d[w.s.n]);
	const char *ma[] = {w.a.did};
	epoch(&w.s, &z, kz, NULL, ma, 1, NULL, 0, NULL);
	t = resolve(&w.s, NULL, FS_OK);
	assert_string_equal(fs_crypto_team_genesis(t), fs_crypto_spacekey_kid(w.k1));
	fs_crypto_team_free(t);
	fs_crypto_spacekey_free(kz);
	dev_free(&z);
	world_free(&w);
}

/* The recovery key: its file opens with its passphrase only; its public
 * string survives copying and refuses typos; a certificate it signs admits
 * a new device when every member device is lost. */
static void team_recovery(void **state)
{
	fs_kdf_params p = fs_crypto_kdf_params_min();
	char pub[FS_CRYPTO_RECOVERY_PUB_MAX], pub2[FS_CRYPTO_RECOVERY_PUB_MAX];
	uint8_t box[FS_CRYPTO_BOX_PK_BYTES], sign[FS_CRYPTO_SIGN_PK_BYTES];
	fs_identity *rid = NULL;
	char *text = NULL;
	size_t len = 0;
	fs_errbuf eb;

	(void)state;
	assert_int_equal(fs_crypto_recovery_create("office pass", 11, &p, &text, &len, pub, &eb),
	                 FS_OK);
	assert_non_null(strstr(text, pub));
	assert_int_equal(strlen(pub), 97);
	assert_int_equal(fs_crypto_recovery_parse_public(pub, box, sign, &eb), FS_OK);
	fs_crypto_recovery_public(box, sign, pub2);
	assert_string_equal(pub, pub2);
	pub2[20] = pub2[20] == 'A' ? 'B' : 'A';
	assert_int_equal(fs_crypto_recovery_parse_public(pub2, box, sign, &eb), FS_E_INPUT);
	assert_non_null(strstr(eb.msg, "mistyped"));
	pub2[40] = '\0';
	assert_int_equal(fs_crypto_recovery_parse_public(pub2, box, sign, &eb), FS_E_INPUT);
	assert_int_equal(fs_crypto_recovery_parse_public("hello", box, sign, &eb), FS_E_INPUT);

	assert_int_equal(fs_crypto_recovery_open(text, len, "wrong", 5, &rid, &eb),
	                 FS_E_PASSPHRASE);
	assert_null(rid);
	assert_int_equal(fs_crypto_recovery_open(text, len, "office pass", 11, &rid, &eb), FS_OK);
	uint8_t rb[FS_CRYPTO_BOX_PK_BYTES], rs[FS_CRYPTO_SIGN_PK_BYTES];
	fs_crypto_identity_public(rid, rb, rs);
	assert_int_equal(fs_crypto_recovery_parse_public(pub, box, sign, &eb), FS_OK);
	assert_memory_equal(rb, box, sizeof(box));
	assert_memory_equal(rs, sign, sizeof(sign));

	/* Damage: one base64 character inside the block; the public line
	 * swapped for another key's. */
	char *blk = strstr(text, "-----BEGIN");
	char *line = strchr(blk, '\n') + 1;
	line[10] = line[10] == 'A' ? 'B' : 'A';
	fs_identity *bad = NULL;
	assert_int_not_equal(fs_crypto_recovery_open(text, len, "office pass", 11, &bad, &eb),
	                     FS_OK);
	assert_null(bad);
	line[10] = line[10] == 'A' ? 'B' : 'A';
	char *t2 = NULL, pub3[FS_CRYPTO_RECOVERY_PUB_MAX];
	size_t l2 = 0;
	assert_int_equal(fs_crypto_recovery_create("x", 1, &p, &t2, &l2, pub3, &eb), FS_OK);
	memcpy(strstr(text, pub), pub3, strlen(pub3));
	assert_int_equal(fs_crypto_recovery_open(text, len, "office pass", 11, &bad, &eb),
	                 FS_E_TAMPERED);
	assert_int_equal(fs_crypto_recovery_open("junk", 4, "x", 1, &bad, &eb), FS_E_KEYFILE);
	free(t2);

	/* Every member lost: a new device N, admitted by the recovery key. */
	struct world w;
	struct dev n;
	world_new(&w, 0);
	fs_crypto_identity_free(w.r.id);
	w.r.id = rid;
	memcpy(w.r.box, rb, sizeof(rb));
	memcpy(w.r.sign, rs, sizeof(rs));
	fs_crypto_device_id(rb, rs, w.r.did);
	docs_free(&w.s);
	dev_free(&w.b);
	w.b.id = NULL;
	dev_free(&w.a);
	dev_new(&w.a, &w.s, "A"); /* a fresh founder listing the recovery key */
	const char *m[] = {w.a.did};
	epoch(&w.s, &w.a, w.k1, NULL, m, 1, NULL, 0, &w.r);
	keydoc(&w.s, &w.a, w.k1, &w.r);
	dev_new(&n, &w.s, "N");
	member(&w.s, &w.r, w.k1, &n);
	fs_team *t = resolve(&w.s, NULL, FS_OK);
	assert_int_equal(status(t, &n), FS_TEAM_MEMBER);
	assert_string_equal(fs_crypto_team_device_find(t, n.did)->approved_by, w.r.did);
	int has = 0;
	assert_int_equal(opened(t, &w.r, fs_crypto_spacekey_kid(w.k1), &has), 1);
	assert_true(has);
	fs_crypto_team_free(t);
	dev_free(&n);
	world_free(&w);
	free(text);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(team_ids),      cmocka_unit_test(team_enroll),
	    cmocka_unit_test(team_chain),    cmocka_unit_test(team_revoke),
	    cmocka_unit_test(team_forks),    cmocka_unit_test(team_concurrent),
	    cmocka_unit_test(team_tamper),   cmocka_unit_test(team_genesis),
	    cmocka_unit_test(team_recovery), cmocka_unit_test(team_mutual),
	    cmocka_unit_test(team_puppet),   cmocka_unit_test(team_forged),
	    cmocka_unit_test(team_flood),    cmocka_unit_test(team_counts),
	};

	if (fs_crypto_init() != FS_OK)
		return 1;
	if (argc > 1)
		cmocka_set_test_filter(argv[1]);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
