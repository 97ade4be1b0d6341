/*
 * casework/merge.c: conflicting revisions of one record merged by the
 * rules of DESIGN section 8 (per-field last-writer-wins by hybrid logical
 * clock, unions for tier history and assignments, immutable visits), and
 * the walk over a store's conflicts that writes the merges back. Every
 * choice is a maximum over a total order, so the result does not depend on
 * the order in which leaves arrive.
 */
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "casework_int.h"

/* The canonical bytes of one field group, to break exact clock ties. */
static void field_bytes(const struct cw_case *c, int f, struct cw_buf *b)
{
	char t[21];

	switch (f) {
	case CW_F_NAME:
		cw_buf_str(b, c->name);
		break;
	case CW_F_ALIAS:
		cw_buf_str(b, c->alias);
		break;
	case CW_F_RISK:
		cw_buf_int(b, c->risk);
		break;
	case CW_F_STATUS:
		cw_buf_int(b, c->closed);
		cw_buf_int(b, c->closed_at);
		break;
	case CW_F_OPENED:
		fs_cw_time_format(c->opened, t);
		cw_buf_puts(b, t);
		break;
	case CW_F_NEEDS:
		cw_buf_int(b, c->needs);
		cw_buf_int(b, c->needs_at);
		cw_buf_str(b, c->needs_why);
		break;
	case CW_F_TAGS:
		for (size_t i = 0; i < c->ntags; i++)
			cw_buf_str(b, c->tags[i]);
		break;
	default:
		break;
	}
}

/* >0 when x's field f should win over y's. */
static int field_wins(const struct cw_case *x, const struct cw_case *y, int f, int *oom)
{
	struct cw_buf a = {0}, b = {0};
	int r = cw_clock_cmp(&x->clk[f], &y->clk[f]);

	if (r != 0)
		return r;
	field_bytes(x, f, &a);
	field_bytes(y, f, &b);
	if (a.oom || b.oom)
		*oom = 1;
	else if (a.n != b.n)
		r = a.n > b.n ? 1 : -1;
	else
		r = memcmp(a.p, b.p, a.n);
	cw_buf_wipe(&a);
	cw_buf_wipe(&b);
	return r;
}

static char *zdup(const char *s)
{
	return strdup(s);
}

/* Copies field group f of src into dst (strings duplicated). */
static int take(struct cw_case *dst, const struct cw_case *src, int f)
{
	char *s;

	dst->clk[f] = src->clk[f];
	switch (f) {
	case CW_F_NAME:
		if ((s = zdup(src->name)) == NULL)
			return -1;
		dst->name = s;
		break;
	case CW_F_ALIAS:
		if ((s = zdup(src->alias)) == NULL)
			return -1;
		dst->alias = s;
		break;
	case CW_F_RISK:
		dst->risk = src->risk;
		break;
	case CW_F_STATUS:
		/* status and closing day move together: they are one fact */
		dst->closed = src->closed;
		dst->closed_at = src->closed_at;
		dst->clk[CW_F_CLOSED] = src->clk[CW_F_CLOSED];
		break;
	case CW_F_OPENED:
		dst->opened = src->opened;
		break;
	case CW_F_NEEDS:
		if ((s = zdup(src->needs_why)) == NULL)
			return -1;
		dst->needs = src->needs;
		dst->needs_at = src->needs_at;
		dst->needs_why = s;
		break;
	case CW_F_TAGS:
		for (size_t i = 0; i < src->ntags; i++) {
			if ((dst->tags[i] = zdup(src->tags[i])) == NULL)
				return -1;
			dst->ntags = i + 1;
		}
		break;
	default:
		break;
	}
	return 0;
}

static int tier_cmp(const struct cw_tierev *x, const struct cw_tierev *y)
{
	int r = cw_clock_cmp(&x->c, &y->c);

	if (r == 0)
		r = x->tier - y->tier;
	if (r == 0)
		r = x->at < y->at ? -1 : x->at > y->at;
	if (r == 0)
		r = strcmp(x->by, y->by);
	if (r == 0)
		r = strcmp(x->why, y->why);
	return r;
}

static int tier_qcmp(const void *a, const void *b)
{
	return tier_cmp(a, b);
}

static int as_qcmp(const void *a, const void *b)
{
	const struct cw_assign *x = a, *y = b;
	int r = strcmp(x->worker, y->worker);

	if (r == 0)
		r = strcmp(x->role, y->role);
	if (r == 0)
		r = cw_clock_cmp(&x->c, &y->c);
	if (r == 0)
		r = x->active - y->active;
	return r;
}

static int merge_cases(struct cw_rec *rs, size_t n, struct cw_rec *m, fs_errbuf *eb)
{
	struct cw_case *c = &m->c;
	size_t nt = 0, na = 0, k;
	int oom = 0;

	memset(m, 0, sizeof(*m));
	m->type = FS_CW_CASE;
	for (int f = 0; f < CW_F_N; f++) {
		size_t w = 0;

		if (f == CW_F_CLOSED)
			continue; /* taken with status */
		for (size_t i = 1; i < n; i++)
			if (field_wins(&rs[i].c, &rs[w].c, f, &oom) > 0)
				w = i;
		if (oom || take(c, &rs[w].c, f) != 0)
			goto nomem;
	}
	for (size_t i = 0; i < n; i++) {
		nt += rs[i].c.ntiers;
		na += rs[i].c.nas;
	}
	if ((c->tiers = calloc(nt, sizeof(*c->tiers))) == NULL ||
	    (na > 0 && (c->as = calloc(na, sizeof(*c->as))) == NULL))
		goto nomem;
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < rs[i].c.ntiers; j++)
			c->tiers[c->ntiers++] = rs[i].c.tiers[j]; /* why still borrowed */
	qsort(c->tiers, c->ntiers, sizeof(*c->tiers), tier_qcmp);
	/* Drop exact duplicates (the same event seen through both leaves). */
	for (size_t i = k = 0; i < c->ntiers; i++)
		if (k == 0 || tier_cmp(&c->tiers[k - 1], &c->tiers[i]) != 0)
			c->tiers[k++] = c->tiers[i];
	c->ntiers = k;
	/* The newest FS_CW_HISTORY_MAX events stay: the same ones everywhere. */
	if (c->ntiers > FS_CW_HISTORY_MAX) {
		memmove(c->tiers, c->tiers + (c->ntiers - FS_CW_HISTORY_MAX),
		        FS_CW_HISTORY_MAX * sizeof(*c->tiers));
		c->ntiers = FS_CW_HISTORY_MAX;
	}
	/* The reasons are still rs's: give the merge its own copies. */
	for (size_t i = 0; i < c->ntiers; i++) {
		if ((c->tiers[i].why = strdup(c->tiers[i].why)) == NULL) {
			for (size_t j = i; j < c->ntiers; j++)
				c->tiers[j].why = NULL;
			goto nomem;
		}
	}
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < rs[i].c.nas; j++)
			c->as[c->nas++] = rs[i].c.as[j];
	qsort(c->as, c->nas, sizeof(*c->as), as_qcmp);
	/* One entry per worker and role: the one with the latest clock. */
	for (size_t i = k = 0; i < c->nas; i++) {
		if (k > 0 && strcmp(c->as[k - 1].worker, c->as[i].worker) == 0 &&
		    strcmp(c->as[k - 1].role, c->as[i].role) == 0)
			c->as[k - 1] = c->as[i];
		else
			c->as[k++] = c->as[i];
	}
	c->nas = k;
	if (c->nas > FS_CW_ASSIGN_MAX)
		return fs_err_set(eb, FS_E_CW_UNMERGEABLE, "merged case has too many assignments");
	return FS_OK;
nomem:
	return fs_err_set(eb, FS_E_NOMEM, "out of memory");
}

int fs_cw_merge(const char *const *plains, const size_t *lens, size_t n, char **out,
                size_t *out_len, fs_errbuf *eb)
{
	struct cw_rec *rs = NULL, m;
	char **canon = NULL;
	size_t *clen = NULL, parsed = 0;
	int r;

	*out = NULL;
	*out_len = 0;
	memset(&m, 0, sizeof(m));
	if (n == 0 || n > 1024)
		return fs_err_set(eb, FS_E_ARG, "merge needs 1-1024 leaves");
	if ((rs = calloc(n, sizeof(*rs))) == NULL) {
		r = fs_err_set(eb, FS_E_NOMEM, "out of memory");
		goto out;
	}
	for (; parsed < n; parsed++)
		if ((r = cw_rec_parse(plains[parsed], lens[parsed], &rs[parsed], eb)) != FS_OK)
			goto out;
	for (size_t i = 0; i < n; i++)
		if (rs[i].type == FS_CW_NONE) {
			r = fs_err_set(eb, FS_E_CW_UNMERGEABLE, "not a casework record");
			goto out;
		}
	for (size_t i = 1; i < n; i++)
		if (rs[i].type != rs[0].type) {
			r = fs_err_set(eb, FS_E_CW_UNMERGEABLE, "leaves of different record types");
			goto out;
		}
	if (rs[0].type == FS_CW_CASE) {
		if ((r = merge_cases(rs, n, &m, eb)) != FS_OK)
			goto out;
		r = cw_rec_write(&m, 1, out, out_len, eb);
		goto out;
	}
	/* Visits and addenda: only identical leaves merge. */
	if ((canon = calloc(n, sizeof(*canon))) == NULL ||
	    (clen = calloc(n, sizeof(*clen))) == NULL) {
		r = fs_err_set(eb, FS_E_NOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		if ((r = cw_rec_write(&rs[i], 1, &canon[i], &clen[i], eb)) != FS_OK)
			goto out;
	for (size_t i = 1; i < n; i++)
		if (clen[i] != clen[0] || memcmp(canon[i], canon[0], clen[0]) != 0) {
			r = fs_err_set(eb, FS_E_CW_UNMERGEABLE,
			               rs[0].type == FS_CW_VISIT
			                   ? "two different versions of a visit: both kept"
			                   : "two different versions of an addendum");
			goto out;
		}
	*out = canon[0];
	*out_len = clen[0];
	canon[0] = NULL;
	r = FS_OK;
out:
	if (canon)
		for (size_t i = 0; i < n; i++)
			if (canon[i])
				fs_crypto_plain_free((uint8_t *)canon[i], clen[i]);
	free(canon);
	free(clen);
	cw_rec_clear(&m);
	for (size_t i = 0; i < parsed && rs; i++)
		cw_rec_clear(&rs[i]);
	free(rs);
	return r;
}

/* ---- resolving a store's conflicts ---- */

static int collect(void *ctx, const fs_store_change *c)
{
	if (fs_crypto_team_doc_id(c->id)) /* team documents are no records to merge */
		return 0;
	return fs_strv_push(ctx, c->id);
}

static int note(fs_cw_conflicts *cs, const char *id, fs_cw_type type, size_t n, int code)
{
	fs_cw_conflict *v = realloc(cs->v, (cs->n + 1) * sizeof(*v));

	if (v == NULL)
		return FS_E_NOMEM;
	cs->v = v;
	v[cs->n].id = strdup(id);
	if (v[cs->n].id == NULL)
		return FS_E_NOMEM;
	v[cs->n].type = type;
	v[cs->n].n_leaves = n;
	v[cs->n].code = code;
	cs->n++;
	return FS_OK;
}

void fs_cw_conflicts_free(fs_cw_conflicts *c)
{
	if (c == NULL)
		return;
	for (size_t i = 0; i < c->n; i++)
		free(c->v[i].id);
	free(c->v);
	free(c);
}

/* Is this a failure of the store (stop) rather than of one document (list it)? */
static int fatal(int r)
{
	return r == FS_E_NOMEM || r == FS_E_IO || (r >= 200 && r < 300 && r != FS_E_STORE_CONFLICT);
}

static int wrap_like(const char *winner, size_t wlen, char **merged, size_t *mlen, fs_errbuf *eb)
{
	static const char *const tn[] = {"", "case", "visit", "addendum"};
	struct cw_rec r;
	struct cw_buf b = {0};
	int rc;

	if ((rc = cw_rec_parse(winner, wlen, &r, eb)) != FS_OK)
		return rc;
	if (r.wrapped) {
		cw_buf_puts(&b, "{\"type\":\"");
		cw_buf_puts(&b, tn[r.type]);
		cw_buf_puts(&b, "\",\"data\":");
		cw_buf_put(&b, *merged, *mlen);
		cw_buf_puts(&b, "}");
		if (b.oom) {
			rc = fs_err_set(eb, FS_E_NOMEM, "out of memory");
		} else {
			fs_crypto_plain_free((uint8_t *)*merged, *mlen);
			*merged = b.p;
			*mlen = b.n;
			b.p = NULL;
		}
	}
	cw_buf_wipe(&b);
	cw_rec_clear(&r);
	return rc;
}

static int resolve_one(fs_store *st, const fs_keyring *ring, const char *space_id,
                       const fs_space_key *k, const char *id, fs_cw_conflicts *cs, fs_errbuf *eb)
{
	fs_store_leaves *lv = NULL;
	fs_store_doc *d = NULL;
	char **plain = NULL;
	size_t *plen = NULL, nlive = 0, nopen = 0;
	const char **pp = NULL;
	char *merged = NULL, *env = NULL;
	size_t mlen = 0, elen = 0;
	fs_cw_type type = FS_CW_NONE;
	int r;

	if ((r = fs_store_leaves_get(st, id, &lv, eb)) != FS_OK)
		goto out;
	for (size_t i = 0; i < lv->n; i++)
		nlive += !lv->v[i].deleted;
	r = fs_err_set(eb, FS_E_NOMEM, "out of memory");
	if ((plain = calloc(nlive, sizeof(*plain))) == NULL ||
	    (plen = calloc(nlive, sizeof(*plen))) == NULL ||
	    (pp = calloc(nlive, sizeof(*pp))) == NULL)
		goto out;
	for (size_t i = 0; i < lv->n; i++) {
		uint8_t *p = NULL;
		size_t pl = 0;

		if (lv->v[i].deleted)
			continue;
		if ((r = fs_store_get(st, id, lv->v[i].rev, &d, eb)) != FS_OK)
			goto doc_failed;
		r = fs_crypto_env_open(ring, space_id, id, (const char *)d->body, d->body_len, &p,
		                       &pl, eb);
		fs_store_doc_free(d);
		d = NULL;
		if (r != FS_OK)
			goto doc_failed;
		plain[nopen] = (char *)p;
		plen[nopen] = pl;
		pp[nopen] = plain[nopen];
		nopen++;
	}
	if ((r = fs_cw_merge(pp, plen, nopen, &merged, &mlen, eb)) != FS_OK) {
		fs_cw_type t0 = FS_CW_NONE;

		if (fatal(r))
			goto out;
		if (fs_cw_validate(plain[0], plen[0], &t0, NULL) == FS_OK)
			type = t0;
		goto doc_failed;
	}
	/* Leaves written through the daemon's record API are wrapped as
	 * {"type":T,"data":{record}}: the merge is written back the same way. */
	if ((r = wrap_like(plain[0], plen[0], &merged, &mlen, eb)) != FS_OK)
		goto out;
	/* The winner is the first leaf (store order): write on it only when
	 * the merge differs from what it already holds. */
	if (mlen != plen[0] || memcmp(merged, plain[0], mlen) != 0) {
		char rev[FS_REV_MAX];

		if ((r = fs_crypto_env_seal(k, id, (const uint8_t *)merged, mlen, &env, &elen,
		                            eb)) != FS_OK ||
		    (r = fs_store_put_local(st, id, lv->v[0].rev, (const uint8_t *)env, elen, 0,
		                            rev, eb)) != FS_OK)
			goto out;
	}
	for (size_t i = 1; i < lv->n; i++) {
		char rev[FS_REV_MAX];

		if (lv->v[i].deleted)
			continue;
		if ((r = fs_store_put_local(st, id, lv->v[i].rev, NULL, 0, 1, rev, eb)) != FS_OK)
			goto out;
	}
	cs->n_resolved++;
	r = FS_OK;
	goto out;
doc_failed:
	if (fatal(r))
		goto out;
	if ((r = note(cs, id, type, nlive, r)) != FS_OK) {
		r = fs_err_set(eb, r, "out of memory");
		goto out;
	}
	fs_err_clear(eb);
	r = FS_OK;
out:
	for (size_t i = 0; plain && i < nopen; i++)
		fs_crypto_plain_free((uint8_t *)plain[i], plen[i]);
	if (merged)
		fs_crypto_plain_free((uint8_t *)merged, mlen);
	free(env);
	free(plain);
	free(plen);
	free(pp);
	fs_store_doc_free(d);
	fs_store_leaves_free(lv);
	return r;
}

int fs_cw_resolve(fs_store *st, const fs_keyring *ring, const char *space_id, const fs_space_key *k,
                  fs_cw_conflicts **out, fs_errbuf *eb)
{
	fs_strv ids = {0};
	fs_cw_conflicts *cs = NULL;
	int r;

	*out = NULL;
	if ((cs = calloc(1, sizeof(*cs))) == NULL) {
		r = fs_err_set(eb, FS_E_NOMEM, "out of memory");
		goto out;
	}
	/* Collect first: the walk must not write to the store. */
	if ((r = fs_store_conflicts(st, collect, &ids, eb)) != FS_OK) {
		if (r == FS_E_NOMEM)
			fs_err_set(eb, r, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < ids.n; i++)
		if ((r = resolve_one(st, ring, space_id, k, ids.v[i], cs, eb)) != FS_OK)
			goto out;
	*out = cs;
	cs = NULL;
	r = FS_OK;
out:
	fs_strv_free(&ids);
	fs_cw_conflicts_free(cs);
	return r;
}
