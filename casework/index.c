/*
 * casework/index.c: the decrypted picture of a space, in memory only: cases
 * with everything the rules need, visits and addenda reduced to case, time,
 * follow-ups and signature state (no note text). Answers `due`, `caseload`
 * and name/alias/tag search; wiped when freed.
 *
 * Signatures: fs_cw_index_put verifies at once; fs_cw_index_load marks
 * finalized visits and addenda "pending" so that unlocking stays fast, and
 * fs_cw_index_verify checks them later (a failure raises FS_CW_ALERT_SIG).
 */
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "casework_int.h"

/* The values of enum fs_cw_sig (casework.h). */
enum {
	SIG_NONE = FS_CW_SIG_NONE,
	SIG_PENDING = FS_CW_SIG_PENDING,
	SIG_OK = FS_CW_SIG_OK,
	SIG_BAD = FS_CW_SIG_BAD
};

struct ivisit {
	char case_id[FS_CW_ID_MAX + 1];
	char device[FS_CW_ID_MAX + 1];
	int64_t start;
	size_t nfu;
	int64_t fu_due[FS_CW_FOLLOWUP_MAX];
	uint32_t done; /* follow-ups done by addenda (recomputed by due) */
};

struct iadd {
	char visit_id[FS_CW_ID_MAX + 1];
	char case_id[FS_CW_ID_MAX + 1];
	char device[FS_CW_ID_MAX + 1];
	uint32_t done;
};

struct ent {
	struct ent *next; /* hash chain */
	size_t pos;       /* in fs_cw_index.all */
	struct ent *cref; /* a visit's or addendum's case, valid while cref_epoch == epoch */
	uint64_t cref_epoch;
	char *id;
	fs_cw_type type; /* FS_CW_NONE: a problem document */
	int problem;     /* its error code */
	int sig;         /* SIG_* */
	struct cw_case *c;
	struct ivisit *v;
	struct iadd *a;
	/* scratch for due */
	int64_t last;
	int has_last;
	unsigned late;
	int sig_bad;
};

struct trust {
	char device[FS_CW_ID_MAX + 1];
	uint8_t pk[FS_CRYPTO_SIGN_PK_BYTES];
};

struct fs_cw_index {
	fs_cw_config cfg;
	struct ent **tab;
	size_t cap, n;
	struct ent **all; /* every entry, dense, so scans do not walk empty buckets */
	size_t nall_cap;
	uint64_t epoch; /* bumped whenever an entry is added, removed or changed */
	struct trust *tr;
	size_t ntr;
	uint64_t seq;
};

static uint64_t hash(const char *s)
{
	uint64_t h = 1469598103934665603ULL;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

static struct ent **slot(fs_cw_index *idx, const char *id)
{
	struct ent **p = &idx->tab[hash(id) & (idx->cap - 1)];

	while (*p && strcmp((*p)->id, id) != 0)
		p = &(*p)->next;
	return p;
}

static struct ent *find(fs_cw_index *idx, const char *id)
{
	return *slot(idx, id);
}

static int grow(fs_cw_index *idx)
{
	size_t cap = idx->cap * 2;
	struct ent **t = calloc(cap, sizeof(*t));

	if (t == NULL)
		return FS_E_NOMEM;
	for (size_t i = 0; i < idx->cap; i++) {
		struct ent *e = idx->tab[i], *nx;

		for (; e; e = nx) {
			struct ent **b = &t[hash(e->id) & (cap - 1)];

			nx = e->next;
			e->next = *b;
			*b = e;
		}
	}
	free(idx->tab);
	idx->tab = t;
	idx->cap = cap;
	return FS_OK;
}

static void ent_body_free(struct ent *e)
{
	if (e->c) {
		struct cw_rec r;

		memset(&r, 0, sizeof(r));
		r.c = *e->c;
		cw_rec_clear(&r);
		free(e->c);
	}
	if (e->v) {
		sodium_memzero(e->v, sizeof(*e->v));
		free(e->v);
	}
	if (e->a) {
		sodium_memzero(e->a, sizeof(*e->a));
		free(e->a);
	}
	e->c = NULL;
	e->v = NULL;
	e->a = NULL;
}

static void ent_free(struct ent *e)
{
	ent_body_free(e);
	free(e->id);
	free(e);
}

int fs_cw_index_new(const fs_cw_config *cfg, fs_cw_index **out, fs_errbuf *eb)
{
	fs_cw_index *idx = NULL;
	int r;

	*out = NULL;
	if (cfg == NULL)
		return fs_err_set(eb, FS_E_ARG, "no configuration");
	if ((r = cw_tz_check(cfg->tz, eb)) != FS_OK)
		return r;
	if ((idx = calloc(1, sizeof(*idx))) == NULL ||
	    (idx->tab = calloc(1024, sizeof(*idx->tab))) == NULL) {
		free(idx);
		return fs_err_set(eb, FS_E_NOMEM, "out of memory");
	}
	idx->cap = 1024;
	idx->cfg = *cfg;
	*out = idx;
	return FS_OK;
}

void fs_cw_index_free(fs_cw_index *idx)
{
	if (idx == NULL)
		return;
	for (size_t i = 0; i < idx->cap; i++) {
		struct ent *e = idx->tab[i], *nx;

		for (; e; e = nx) {
			nx = e->next;
			ent_free(e);
		}
	}
	free(idx->tab);
	free(idx->all);
	free(idx->tr);
	free(idx);
}

int fs_cw_index_trust(fs_cw_index *idx, const char *device,
                      const uint8_t pk[FS_CRYPTO_SIGN_PK_BYTES], fs_errbuf *eb)
{
	struct trust *t;

	if (device == NULL || strlen(device) == 0 || strlen(device) > FS_CW_ID_MAX)
		return fs_err_set(eb, FS_E_ARG, "bad device id");
	for (size_t i = 0; i < idx->ntr; i++)
		if (strcmp(idx->tr[i].device, device) == 0) {
			memcpy(idx->tr[i].pk, pk, FS_CRYPTO_SIGN_PK_BYTES);
			return FS_OK;
		}
	if ((t = realloc(idx->tr, (idx->ntr + 1) * sizeof(*t))) == NULL)
		return fs_err_set(eb, FS_E_NOMEM, "out of memory");
	idx->tr = t;
	snprintf(t[idx->ntr].device, sizeof(t[idx->ntr].device), "%s", device);
	memcpy(t[idx->ntr].pk, pk, FS_CRYPTO_SIGN_PK_BYTES);
	idx->ntr++;
	return FS_OK;
}

static const uint8_t *trusted(const fs_cw_index *idx, const char *device)
{
	for (size_t i = 0; i < idx->ntr; i++)
		if (strcmp(idx->tr[i].device, device) == 0)
			return idx->tr[i].pk;
	return NULL;
}

/* Signature state of a parsed record. Without a trusted key for the
 * device, the embedded key is checked: integrity, not authorship. */
static int check_sig(fs_cw_index *idx, const char *plain, size_t len, const char *device)
{
	return fs_cw_verify(plain, len, trusted(idx, device), NULL) == FS_OK ? SIG_OK : SIG_BAD;
}

/* Finds or makes the entry for id and empties it. */
static int ent_get(fs_cw_index *idx, const char *id, struct ent **out)
{
	struct ent **p, *e;

	*out = NULL;
	if (idx->n + 1 > idx->cap - idx->cap / 4 && grow(idx) != FS_OK)
		return FS_E_NOMEM;
	p = slot(idx, id);
	if ((e = *p) == NULL) {
		if ((e = calloc(1, sizeof(*e))) == NULL || (e->id = strdup(id)) == NULL) {
			free(e);
			return FS_E_NOMEM;
		}
		if (idx->n == idx->nall_cap) {
			size_t nc = idx->nall_cap ? idx->nall_cap * 2 : 1024;
			struct ent **a = realloc(idx->all, nc * sizeof(*a));

			if (a == NULL) {
				free(e->id);
				free(e);
				return FS_E_NOMEM;
			}
			idx->all = a;
			idx->nall_cap = nc;
		}
		*p = e;
		e->pos = idx->n;
		idx->all[idx->n++] = e;
	}
	idx->epoch++;
	ent_body_free(e);
	e->type = FS_CW_NONE;
	e->problem = 0;
	e->sig = SIG_NONE;
	*out = e;
	return FS_OK;
}

static int put(fs_cw_index *idx, const char *id, const char *plain, size_t len, int verify,
               fs_errbuf *eb)
{
	struct cw_rec r;
	struct ent *e;
	int rc;

	if (id == NULL || strlen(id) == 0 || strlen(id) > FS_STORE_ID_MAX)
		return fs_err_set(eb, FS_E_ARG, "bad document id");
	if (ent_get(idx, id, &e) != FS_OK)
		return fs_err_set(eb, FS_E_NOMEM, "out of memory");
	if ((rc = cw_rec_parse(plain, len, &r, eb)) != FS_OK) {
		e->problem = rc;
		return rc;
	}
	if (r.type == FS_CW_NONE) {
		/* another type of the daemon's record API: not ours to index */
		cw_rec_clear(&r);
		fs_cw_index_remove(idx, id);
		return FS_OK;
	}
	rc = fs_err_set(eb, FS_E_NOMEM, "out of memory");
	if (r.type == FS_CW_CASE) {
		if ((e->c = malloc(sizeof(*e->c))) == NULL)
			goto out;
		*e->c = r.c;
		memset(&r.c, 0, sizeof(r.c)); /* now owned by e */
	} else if (r.type == FS_CW_VISIT) {
		if ((e->v = calloc(1, sizeof(*e->v))) == NULL)
			goto out;
		memcpy(e->v->case_id, r.v.case_id, sizeof(e->v->case_id));
		memcpy(e->v->device, r.v.au.device, sizeof(e->v->device));
		e->v->start = r.v.start;
		e->v->nfu = r.v.nfu;
		for (size_t i = 0; i < r.v.nfu; i++)
			e->v->fu_due[i] = r.v.fu[i].due_day;
		if (r.v.final)
			e->sig = verify ? check_sig(idx, plain, len, r.v.au.device) : SIG_PENDING;
	} else {
		if ((e->a = calloc(1, sizeof(*e->a))) == NULL)
			goto out;
		memcpy(e->a->visit_id, r.a.visit_id, sizeof(e->a->visit_id));
		memcpy(e->a->case_id, r.a.case_id, sizeof(e->a->case_id));
		memcpy(e->a->device, r.a.au.device, sizeof(e->a->device));
		for (size_t i = 0; i < r.a.ndone; i++)
			e->a->done |= 1u << r.a.done[i];
		e->sig = verify ? check_sig(idx, plain, len, r.a.au.device) : SIG_PENDING;
	}
	e->type = r.type;
	fs_err_clear(eb);
	rc = FS_OK;
out:
	if (rc != FS_OK)
		e->problem = rc;
	cw_rec_clear(&r);
	return rc;
}

int fs_cw_index_put(fs_cw_index *idx, const char *id, const char *plain, size_t len, fs_errbuf *eb)
{
	return put(idx, id, plain, len, 1, eb);
}

void fs_cw_index_remove(fs_cw_index *idx, const char *id)
{
	struct ent **p, *e;

	if (id == NULL)
		return;
	p = slot(idx, id);
	if ((e = *p) == NULL)
		return;
	*p = e->next;
	idx->all[e->pos] = idx->all[idx->n - 1];
	idx->all[e->pos]->pos = e->pos;
	ent_free(e);
	idx->n--;
	idx->epoch++;
}

struct loadctx {
	fs_cw_index *idx;
	fs_store *st;
	const fs_keyring *ring;
	const char *space_id;
	fs_errbuf *eb;
	int err;
};

static int load_one(void *ctx, const fs_store_change *c)
{
	struct loadctx *l = ctx;
	fs_store_doc *d = NULL;
	uint8_t *p = NULL;
	size_t pl = 0;
	int r;

	/* Team documents (docs/team.md) are signed plaintext, not records. */
	if (c->deleted || fs_crypto_team_doc_id(c->id)) {
		fs_cw_index_remove(l->idx, c->id);
		return 0;
	}
	if ((r = fs_store_get(l->st, c->id, c->winner, &d, l->eb)) != FS_OK) {
		if (r == FS_E_NOTFOUND)
			goto problem;
		l->err = r;
		return r;
	}
	r = fs_crypto_env_open(l->ring, l->space_id, c->id, (const char *)d->body, d->body_len, &p,
	                       &pl, NULL);
	fs_store_doc_free(d);
	if (r == FS_E_NOMEM) {
		l->err = fs_err_set(l->eb, r, "out of memory");
		return r;
	}
	if (r != FS_OK)
		goto problem;
	r = put(l->idx, c->id, (const char *)p, pl, 0, NULL);
	fs_crypto_plain_free(p, pl);
	if (r == FS_E_NOMEM) {
		l->err = fs_err_set(l->eb, r, "out of memory");
		return r;
	}
	return 0;
problem:
	/* Listed as a problem, never dropped without a word. */
	{
		struct ent *e;

		if (ent_get(l->idx, c->id, &e) != FS_OK) {
			l->err = fs_err_set(l->eb, FS_E_NOMEM, "out of memory");
			return FS_E_NOMEM;
		}
		e->problem = r;
	}
	return 0;
}

int fs_cw_index_load(fs_cw_index *idx, fs_store *st, const fs_keyring *ring, const char *space_id,
                     fs_errbuf *eb)
{
	struct loadctx l = {idx, st, ring, space_id, eb, 0};
	uint64_t last = idx->seq;
	int r;

	r = fs_store_changes(st, idx->seq, 0, load_one, &l, &last, eb);
	if (l.err)
		return l.err;
	if (r != FS_OK)
		return r;
	idx->seq = last;
	return FS_OK;
}

int fs_cw_index_verify(fs_cw_index *idx, fs_store *st, const fs_keyring *ring, const char *space_id,
                       size_t max, size_t *left, fs_errbuf *eb)
{
	size_t done = 0, pending = 0;

	if (left)
		*left = 0;
	for (size_t i = 0; i < idx->cap; i++)
		for (struct ent *e = idx->tab[i]; e; e = e->next) {
			fs_store_doc *d = NULL;
			uint8_t *p = NULL;
			size_t pl = 0;
			int r;

			if (e->sig != SIG_PENDING)
				continue;
			if (max && done >= max) {
				pending++;
				continue;
			}
			done++;
			if ((r = fs_store_get(st, e->id, NULL, &d, eb)) != FS_OK) {
				if (r != FS_E_NOTFOUND)
					return r;
				e->sig = SIG_BAD;
				continue;
			}
			r = fs_crypto_env_open(ring, space_id, e->id, (const char *)d->body,
			                       d->body_len, &p, &pl, NULL);
			fs_store_doc_free(d);
			if (r == FS_E_NOMEM)
				return fs_err_set(eb, r, "out of memory");
			e->sig = r == FS_OK ? check_sig(idx, (const char *)p, pl,
			                                e->v ? e->v->device : e->a->device)
			                    : SIG_BAD;
			fs_crypto_plain_free(p, pl);
		}
	if (left)
		*left = pending;
	return FS_OK;
}

void fs_cw_index_stats_get(const fs_cw_index *idx, fs_cw_index_stats *out)
{
	memset(out, 0, sizeof(*out));
	for (size_t i = 0; i < idx->cap; i++)
		for (const struct ent *e = idx->tab[i]; e; e = e->next) {
			out->cases += e->type == FS_CW_CASE;
			out->visits += e->type == FS_CW_VISIT;
			out->addenda += e->type == FS_CW_ADDENDUM;
			out->problems += e->type == FS_CW_NONE;
			out->sig_bad += e->sig == SIG_BAD;
			out->sig_pending += e->sig == SIG_PENDING;
		}
	out->seq = idx->seq;
}

/* ---- due ---- */

static int current_tier(const struct cw_case *c)
{
	return c->tiers[c->ntiers - 1].tier;
}

/* When the case entered its current tier (the start of the trailing run). */
static int64_t tier_since(const struct cw_case *c)
{
	size_t i = c->ntiers - 1;
	int t = c->tiers[i].tier;

	while (i > 0 && c->tiers[i - 1].tier == t)
		i--;
	return c->tiers[i].at;
}

static int64_t cadence_add(const fs_cw_cadence *cd, int64_t day)
{
	return cd->unit == FS_CW_DAYS ? day + cd->n : fs_cw_day_add_months(day, cd->n);
}

static int item_cmp(const void *a, const void *b)
{
	const fs_cw_due_item *x = a, *y = b;
	int rx = x->alerts & FS_CW_ALERT_OVERDUE ? 0
	         : x->alerts & FS_CW_ALERT_DUE   ? 1
	         : x->alerts                     ? 2
	                                         : 3;
	int ry = y->alerts & FS_CW_ALERT_OVERDUE ? 0
	         : y->alerts & FS_CW_ALERT_DUE   ? 1
	         : y->alerts                     ? 2
	                                         : 3;

	if (rx != ry)
		return rx - ry;
	if (rx <= 1 && x->days_overdue != y->days_overdue)
		return y->days_overdue - x->days_overdue;
	if (x->tier != y->tier)
		return (int)x->tier - (int)y->tier;
	return strcmp(x->id, y->id);
}

/* The case a visit or addendum belongs to, looked up once per index change. */
static struct ent *case_of(fs_cw_index *idx, struct ent *e, const char *case_id)
{
	if (e->cref_epoch != idx->epoch || e->cref_epoch == 0) {
		struct ent *c = find(idx, case_id);

		e->cref = c && c->type == FS_CW_CASE ? c : NULL;
		e->cref_epoch = idx->epoch;
	}
	return e->cref;
}

int fs_cw_due(fs_cw_index *idx, int64_t now, int all, fs_cw_due_list **out, fs_errbuf *eb)
{
	const fs_cw_config *cfg = &idx->cfg;
	struct ent **cs = NULL;
	int64_t *t = NULL, *days = NULL, today;
	fs_cw_due_list *l = NULL;
	size_t nc = 0, k = 0;
	int r;

	*out = NULL;
	r = fs_err_set(eb, FS_E_NOMEM, "out of memory");
	for (size_t i = 0; i < idx->n; i++) {
		struct ent *e = idx->all[i];

		if (e->type == FS_CW_VISIT)
			e->v->done = 0;
		if (e->type == FS_CW_CASE) {
			e->last = 0;
			e->has_last = 0;
			e->late = 0;
			e->sig_bad = 0;
			nc += !e->c->closed;
		}
	}
	if ((cs = calloc(nc + 1, sizeof(*cs))) == NULL ||
	    (t = calloc(3 * nc + 1, sizeof(*t))) == NULL ||
	    (days = calloc(3 * nc + 1, sizeof(*days))) == NULL ||
	    (l = calloc(1, sizeof(*l))) == NULL || (l->v = calloc(nc + 1, sizeof(*l->v))) == NULL)
		goto out;
	/* Addenda first: they mark follow-ups of their visit done; a tampered
	 * addendum marks nothing and flags its case. */
	for (size_t i = 0; i < idx->n; i++) {
		struct ent *e = idx->all[i], *v, *c;

		if (e->type == FS_CW_CASE && !e->c->closed)
			cs[k++] = e;
		if (e->type != FS_CW_ADDENDUM)
			continue;
		if (e->sig == SIG_BAD) {
			if ((c = case_of(idx, e, e->a->case_id)) != NULL)
				c->sig_bad = 1;
			continue;
		}
		if ((v = find(idx, e->a->visit_id)) && v->type == FS_CW_VISIT)
			v->v->done |= e->a->done;
	}
	/* Today in the agency zone, and each case's days, in one zone switch. */
	t[0] = now;
	if ((r = cw_local_days(cfg->tz, t, days, 1, eb)) != FS_OK)
		goto out;
	today = days[0];
	for (size_t i = 0; i < idx->n; i++) {
		struct ent *e = idx->all[i], *c;

		if (e->type != FS_CW_VISIT || (c = case_of(idx, e, e->v->case_id)) == NULL)
			continue;
		if (e->sig == SIG_BAD)
			c->sig_bad = 1;
		/* A visit dated in the future is not a contact yet. */
		if (e->v->start <= now && (!c->has_last || e->v->start > c->last)) {
			c->last = e->v->start;
			c->has_last = 1;
		}
		for (size_t f = 0; f < e->v->nfu; f++)
			if (!(e->v->done & (1u << f)) && e->v->fu_due[f] < today)
				c->late++;
	}
	for (size_t i = 0; i < k; i++) {
		const struct cw_case *c = cs[i]->c;

		t[3 * i] = cs[i]->has_last ? cs[i]->last : c->opened;
		t[3 * i + 1] = c->opened;
		t[3 * i + 2] = tier_since(c);
	}
	if ((r = cw_local_days(cfg->tz, t, days, 3 * k, eb)) != FS_OK)
		goto out;
	for (size_t i = 0; i < k; i++) {
		const struct cw_case *c = cs[i]->c;
		fs_cw_due_item *it = &l->v[l->n];
		int tier = current_tier(c);
		const fs_cw_cadence *cd = &cfg->cadence[tier];

		memset(it, 0, sizeof(*it));
		it->id = cs[i]->id;
		it->name = c->name;
		it->tier = (fs_cw_tier)tier;
		it->last_contact = t[3 * i];
		it->has_contact = cs[i]->has_last;
		it->days_since = (int)(today - days[3 * i]);
		it->due_day = -1;
		it->late_followups = cs[i]->late;
		if (cd->unit != FS_CW_NEVER) {
			it->due_day = cadence_add(cd, days[3 * i]);
			if (today > it->due_day + cfg->grace_days)
				it->alerts |= FS_CW_ALERT_OVERDUE;
			else if (today >= it->due_day)
				it->alerts |= FS_CW_ALERT_DUE;
			if (today >= it->due_day)
				it->days_overdue = (int)(today - it->due_day);
		}
		if (cs[i]->late)
			it->alerts |= FS_CW_ALERT_FOLLOWUP;
		if (c->needs)
			it->alerts |= FS_CW_ALERT_NEEDS;
		if (tier == FS_CW_TIER_A &&
		    today >= fs_cw_day_add_months(days[3 * i + 1], cfg->a_review_months))
			it->alerts |= FS_CW_ALERT_A_REVIEW;
		if (tier == FS_CW_TIER_C &&
		    today >= fs_cw_day_add_months(days[3 * i + 2], cfg->c_to_d_months))
			it->alerts |= FS_CW_ALERT_C_TO_D;
		if (cs[i]->sig_bad)
			it->alerts |= FS_CW_ALERT_SIG;
		if (all || it->alerts)
			l->n++;
	}
	qsort(l->v, l->n, sizeof(*l->v), item_cmp);
	*out = l;
	l = NULL;
	r = FS_OK;
out:
	fs_cw_due_free(l);
	free(cs);
	free(t);
	free(days);
	return r;
}

void fs_cw_due_free(fs_cw_due_list *l)
{
	if (l == NULL)
		return;
	free(l->v);
	free(l);
}

void fs_cw_due_reason(const fs_cw_due_item *it, char *buf, size_t len)
{
	struct cw_buf b = {0};
	char t[96];

	if (len == 0)
		return;
	buf[0] = '\0';
	if (it->alerts & FS_CW_ALERT_OVERDUE) {
		snprintf(t, sizeof(t), "; overdue %d day%s", it->days_overdue,
		         it->days_overdue == 1 ? "" : "s");
		cw_buf_puts(&b, t);
	}
	if (it->alerts & FS_CW_ALERT_DUE)
		cw_buf_puts(&b, "; due today");
	if (it->alerts & FS_CW_ALERT_FOLLOWUP) {
		snprintf(t, sizeof(t), "; %u follow-up%s past due", it->late_followups,
		         it->late_followups == 1 ? "" : "s");
		cw_buf_puts(&b, t);
	}
	if (it->alerts & FS_CW_ALERT_NEEDS)
		cw_buf_puts(&b, "; needs changed: re-tier");
	if (it->alerts & FS_CW_ALERT_A_REVIEW)
		cw_buf_puts(&b, "; tier A since opening for too long: re-tier");
	if (it->alerts & FS_CW_ALERT_C_TO_D)
		cw_buf_puts(&b, "; six months in C: suggest D");
	if (it->alerts & FS_CW_ALERT_SIG)
		cw_buf_puts(&b, "; a visit signature does not verify");
	if (!b.oom && b.n > 2)
		snprintf(buf, len, "%s", b.p + 2);
	cw_buf_wipe(&b);
}

/* ---- caseload ---- */

static int load_cmp(const void *a, const void *b)
{
	return strcmp(((const fs_cw_load *)a)->worker, ((const fs_cw_load *)b)->worker);
}

int fs_cw_caseload_get(fs_cw_index *idx, fs_cw_caseload **out, fs_errbuf *eb)
{
	fs_cw_caseload *cl = NULL;
	size_t cap = 0;
	int r = fs_err_set(eb, FS_E_NOMEM, "out of memory");

	*out = NULL;
	if ((cl = calloc(1, sizeof(*cl))) == NULL)
		goto out;
	cl->ceiling = idx->cfg.ceiling;
	for (size_t i = 0; i < idx->cap; i++)
		for (struct ent *e = idx->tab[i]; e; e = e->next) {
			const struct cw_case *c = e->c;
			int tier;

			if (e->type != FS_CW_CASE || c->closed)
				continue;
			tier = current_tier(c);
			for (size_t j = 0; j < c->nas; j++) {
				fs_cw_load *w = NULL;
				int seen = 0;

				if (!c->as[j].active)
					continue;
				/* A worker with two roles on one case carries it once. */
				for (size_t q = 0; q < j; q++)
					seen |= c->as[q].active &&
					        strcmp(c->as[q].worker, c->as[j].worker) == 0;
				if (seen)
					continue;
				for (size_t q = 0; q < cl->n; q++)
					if (strcmp(cl->v[q].worker, c->as[j].worker) == 0)
						w = &cl->v[q];
				if (w == NULL) {
					if (cl->n == cap) {
						size_t nc = cap ? cap * 2 : 16;
						fs_cw_load *v = realloc(cl->v, nc * sizeof(*v));

						if (v == NULL)
							goto out;
						cl->v = v;
						cap = nc;
					}
					w = &cl->v[cl->n++];
					memset(w, 0, sizeof(*w));
					memcpy(w->worker, c->as[j].worker, sizeof(w->worker));
				}
				w->count[tier]++;
				w->total++;
				w->weighted += idx->cfg.weight[tier];
			}
		}
	for (size_t q = 0; q < cl->n; q++)
		cl->v[q].over = cl->v[q].weighted > cl->ceiling;
	if (cl->n)
		qsort(cl->v, cl->n, sizeof(*cl->v), load_cmp);
	*out = cl;
	cl = NULL;
	fs_err_clear(eb);
	r = FS_OK;
out:
	fs_cw_caseload_free(cl);
	return r;
}

void fs_cw_caseload_free(fs_cw_caseload *c)
{
	if (c == NULL)
		return;
	free(c->v);
	free(c);
}

/* ---- search ---- */

static int contains(const char *hay, const char *needle)
{
	size_t n = strlen(needle);

	for (; *hay; hay++) {
		size_t i = 0;

		for (; i < n; i++) {
			char a = hay[i], b = needle[i];

			if (a == '\0')
				return 0;
			if (a >= 'A' && a <= 'Z')
				a = (char)(a - 'A' + 'a');
			if (b >= 'A' && b <= 'Z')
				b = (char)(b - 'A' + 'a');
			if (a != b)
				break;
		}
		if (i == n)
			return 1;
	}
	return n == 0;
}

static int str_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* A growing list of borrowed ids, answered sorted. */
struct idlist {
	const char **v;
	size_t n, cap;
};

static int idlist_push(struct idlist *l, const char *id)
{
	if (l->n == l->cap) {
		size_t nc = l->cap ? l->cap * 2 : 16;
		const char **nv = realloc(l->v, nc * sizeof(*nv));

		if (nv == NULL)
			return -1;
		l->v = nv;
		l->cap = nc;
	}
	l->v[l->n++] = id;
	return 0;
}

static int idlist_answer(struct idlist *l, int failed, const char ***ids, size_t *n, fs_errbuf *eb)
{
	if (failed) {
		free(l->v);
		return fs_err_set(eb, FS_E_NOMEM, "out of memory");
	}
	if (l->n)
		qsort(l->v, l->n, sizeof(*l->v), str_cmp);
	*ids = l->v;
	*n = l->n;
	return FS_OK;
}

int fs_cw_find(fs_cw_index *idx, const char *query, const char ***ids, size_t *n, fs_errbuf *eb)
{
	struct idlist l = {0};
	int failed = 0;

	*ids = NULL;
	*n = 0;
	if (query == NULL || strlen(query) == 0 || strlen(query) > FS_CW_NAME_MAX)
		return fs_err_set(eb, FS_E_ARG, "search text must be 1-200 bytes");
	for (size_t i = 0; i < idx->cap && !failed; i++)
		for (struct ent *e = idx->tab[i]; e && !failed; e = e->next) {
			const struct cw_case *c = e->c;
			int hit;

			if (e->type != FS_CW_CASE)
				continue;
			hit = contains(c->name, query) || contains(c->alias, query);
			for (size_t t = 0; !hit && t < c->ntags; t++)
				hit = contains(c->tags[t], query);
			if (hit)
				failed = idlist_push(&l, e->id) != 0;
		}
	return idlist_answer(&l, failed, ids, n, eb);
}

int fs_cw_index_sig(fs_cw_index *idx, const char *id)
{
	struct ent *e = find(idx, id);

	if (e == NULL || (e->type != FS_CW_VISIT && e->type != FS_CW_ADDENDUM))
		return -1;
	return e->sig; /* SIG_* has the values of enum fs_cw_sig */
}

int fs_cw_addenda(fs_cw_index *idx, const char *visit_id, const char ***ids, size_t *n,
                  fs_errbuf *eb)
{
	struct idlist l = {0};
	int failed = 0;

	*ids = NULL;
	*n = 0;
	for (size_t i = 0; i < idx->cap && !failed; i++)
		for (struct ent *e = idx->tab[i]; e && !failed; e = e->next)
			if (e->type == FS_CW_ADDENDUM && strcmp(e->a->visit_id, visit_id) == 0)
				failed = idlist_push(&l, e->id) != 0;
	return idlist_answer(&l, failed, ids, n, eb);
}

/* ---- the sealed snapshot ----
 *
 * Reading and decrypting every envelope at unlock costs seconds for tens of
 * thousands of visits, and checking every signature costs more. So the
 * index is saved as sealed `_local` documents (never replicated): a header
 * "cw-index" and chunks "cw-index.<i>", each an envelope under the space
 * key, the same AEAD as records, so nothing decrypted reaches the disk.
 * Header and chunks carry a random generation: a crash between writes
 * leaves a mismatch, and the snapshot is then ignored (a full load).
 * Format: docs/casework.md.
 */

#define SNAP_MAGIC_HDR   "fscwidx1"
#define SNAP_MAGIC_CHUNK "fscwchk1"
#define SNAP_GEN         16
#define SNAP_CHUNK_MAX   (3U << 20) /* payload bytes per chunk, under FS_CRYPTO_RECORD_MAX */
#define SNAP_CHUNKS_MAX  4096

static void put_u8(struct cw_buf *b, unsigned v)
{
	char c = (char)v;

	cw_buf_put(b, &c, 1);
}

static void put_u64(struct cw_buf *b, uint64_t v)
{
	char t[8];

	for (int i = 0; i < 8; i++)
		t[i] = (char)(v >> (8 * i));
	cw_buf_put(b, t, 8);
}

static void put_s(struct cw_buf *b, const char *s, size_t n)
{
	put_u64(b, n);
	cw_buf_put(b, s, n);
}

static void put_str(struct cw_buf *b, const char *s)
{
	put_s(b, s, strlen(s));
}

struct rdr {
	const uint8_t *p;
	size_t n, off;
	int bad;
};

static uint64_t get_u64(struct rdr *r)
{
	uint64_t v = 0;

	if (r->bad || r->n - r->off < 8) {
		r->bad = 1;
		return 0;
	}
	for (int i = 0; i < 8; i++)
		v |= (uint64_t)r->p[r->off + (size_t)i] << (8 * i);
	r->off += 8;
	return v;
}

static unsigned get_u8(struct rdr *r)
{
	if (r->bad || r->off >= r->n) {
		r->bad = 1;
		return 0;
	}
	return r->p[r->off++];
}

/* A string of at most max bytes into out (max + 1 bytes), NUL-terminated. */
static void get_str(struct rdr *r, char *out, size_t max)
{
	uint64_t n = get_u64(r);

	out[0] = '\0';
	if (r->bad || n > max || n > r->n - r->off || memchr(r->p + r->off, 0, n)) {
		r->bad = 1;
		return;
	}
	memcpy(out, r->p + r->off, n);
	out[n] = '\0';
	r->off += n;
}

static int seal_local(fs_store *st, const fs_space_key *k, const char *name, struct cw_buf *b,
                      fs_errbuf *eb)
{
	char rev[FS_REV_MAX], *env = NULL;
	uint8_t *old = NULL;
	size_t olen = 0, elen = 0;
	int have, r;

	if (b->oom)
		return fs_err_set(eb, FS_E_NOMEM, "out of memory");
	r = fs_store_local_get(st, name, rev, &old, &olen, eb);
	free(old);
	if (r != FS_OK && r != FS_E_NOTFOUND)
		return r;
	have = r == FS_OK;
	if ((r = fs_crypto_env_seal(k, name, (const uint8_t *)b->p, b->n, &env, &elen, eb)) !=
	    FS_OK)
		return r;
	r = fs_store_local_put(st, name, have ? rev : NULL, (const uint8_t *)env, elen, NULL, eb);
	free(env);
	return r;
}

static void snap_entry(struct cw_buf *b, const struct ent *e)
{
	if (e->type == FS_CW_NONE) {
		put_u8(b, 'P');
		put_str(b, e->id);
		put_u64(b, (uint64_t)e->problem);
	} else if (e->type == FS_CW_CASE) {
		struct cw_rec r;
		char *p = NULL;
		size_t n = 0;

		memset(&r, 0, sizeof(r));
		r.type = FS_CW_CASE;
		r.c = *e->c; /* borrowed for the write */
		if (cw_rec_write(&r, 1, &p, &n, NULL) != FS_OK) {
			b->oom = 1;
			return;
		}
		put_u8(b, 'C');
		put_str(b, e->id);
		put_s(b, p, n);
		fs_crypto_plain_free((uint8_t *)p, n);
	} else if (e->type == FS_CW_VISIT) {
		put_u8(b, 'V');
		put_str(b, e->id);
		put_str(b, e->v->case_id);
		put_str(b, e->v->device);
		put_u64(b, (uint64_t)e->v->start);
		put_u8(b, e->sig);
		put_u8(b, (unsigned)e->v->nfu);
		for (size_t i = 0; i < e->v->nfu; i++)
			put_u64(b, (uint64_t)e->v->fu_due[i]);
	} else {
		put_u8(b, 'A');
		put_str(b, e->id);
		put_str(b, e->a->visit_id);
		put_str(b, e->a->case_id);
		put_str(b, e->a->device);
		put_u8(b, e->sig);
		put_u64(b, e->a->done);
	}
}

static int flush(fs_store *st, const fs_space_key *k, struct cw_buf *b, uint64_t *chunks,
                 fs_errbuf *eb)
{
	char name[64];
	int r;

	if (*chunks >= SNAP_CHUNKS_MAX)
		return fs_err_set(eb, FS_E_TOOBIG, "index too large to save");
	snprintf(name, sizeof(name), "cw-index.%llu", (unsigned long long)*chunks);
	r = seal_local(st, k, name, b, eb);
	cw_buf_wipe(b);
	(*chunks)++;
	return r;
}

int fs_cw_index_save(fs_cw_index *idx, fs_store *st, const fs_space_key *k, fs_errbuf *eb)
{
	uint8_t gen[SNAP_GEN];
	struct cw_buf b = {0};
	uint64_t chunks = 0, entries = 0;
	int r = FS_OK;

	randombytes_buf(gen, sizeof(gen));
	for (size_t i = 0; i < idx->cap && r == FS_OK; i++)
		for (struct ent *e = idx->tab[i]; e && r == FS_OK; e = e->next) {
			if (b.n == 0) {
				cw_buf_put(&b, SNAP_MAGIC_CHUNK, 8);
				cw_buf_put(&b, (const char *)gen, SNAP_GEN);
				put_u64(&b, chunks);
			}
			snap_entry(&b, e);
			entries++;
			/* a case is at most FS_CW_RECORD_MAX: room for one more */
			if (b.n >= SNAP_CHUNK_MAX - FS_CW_RECORD_MAX - 4096)
				r = flush(st, k, &b, &chunks, eb);
		}
	if (r == FS_OK && b.n > 0)
		r = flush(st, k, &b, &chunks, eb);
	if (r == FS_OK) {
		cw_buf_put(&b, SNAP_MAGIC_HDR, 8);
		cw_buf_put(&b, (const char *)gen, SNAP_GEN);
		put_u64(&b, idx->seq);
		put_u64(&b, chunks);
		put_u64(&b, entries);
		r = seal_local(st, k, "cw-index", &b, eb);
	}
	cw_buf_wipe(&b);
	return r;
}

static int open_local(fs_store *st, const fs_keyring *ring, const char *space_id, const char *name,
                      uint8_t **plain, size_t *plen, fs_errbuf *eb)
{
	char rev[FS_REV_MAX];
	uint8_t *env = NULL;
	size_t elen = 0;
	int r;

	if ((r = fs_store_local_get(st, name, rev, &env, &elen, eb)) != FS_OK)
		return r;
	r = fs_crypto_env_open(ring, space_id, name, (const char *)env, elen, plain, plen, eb);
	free(env);
	return r;
}

static int restore_chunk(fs_cw_index *idx, struct rdr *rd)
{
	char id[FS_STORE_ID_MAX + 1];

	while (!rd->bad && rd->off < rd->n) {
		unsigned t = get_u8(rd);
		struct ent *e;

		get_str(rd, id, FS_STORE_ID_MAX);
		if (id[0] == '\0')
			rd->bad = 1;
		if (rd->bad)
			break;
		if (t == 'C') {
			uint64_t n = get_u64(rd);

			if (rd->bad || n > rd->n - rd->off)
				break;
			if (put(idx, id, (const char *)rd->p + rd->off, n, 0, NULL) == FS_E_NOMEM)
				return FS_E_NOMEM;
			rd->off += n;
			continue;
		}
		if (ent_get(idx, id, &e) != FS_OK)
			return FS_E_NOMEM;
		if ((t == 'V' || t == 'A') && (e->v || e->a || e->type != FS_CW_NONE)) {
			rd->bad = 1; /* an id twice in one snapshot */
			break;
		}
		if (t == 'P') {
			e->problem = (int)get_u64(rd);
		} else if (t == 'V') {
			if ((e->v = calloc(1, sizeof(*e->v))) == NULL)
				return FS_E_NOMEM;
			get_str(rd, e->v->case_id, FS_CW_ID_MAX);
			get_str(rd, e->v->device, FS_CW_ID_MAX);
			e->v->start = (int64_t)get_u64(rd);
			e->sig = (int)get_u8(rd);
			e->v->nfu = get_u8(rd);
			if (e->v->nfu > FS_CW_FOLLOWUP_MAX)
				rd->bad = 1;
			for (size_t i = 0; !rd->bad && i < e->v->nfu; i++)
				e->v->fu_due[i] = (int64_t)get_u64(rd);
			e->type = FS_CW_VISIT;
		} else if (t == 'A') {
			if ((e->a = calloc(1, sizeof(*e->a))) == NULL)
				return FS_E_NOMEM;
			get_str(rd, e->a->visit_id, FS_CW_ID_MAX);
			get_str(rd, e->a->case_id, FS_CW_ID_MAX);
			get_str(rd, e->a->device, FS_CW_ID_MAX);
			e->sig = (int)get_u8(rd);
			e->a->done = (uint32_t)get_u64(rd);
			e->type = FS_CW_ADDENDUM;
		} else {
			rd->bad = 1;
		}
		if (e->sig < SIG_NONE || e->sig > SIG_BAD)
			rd->bad = 1;
	}
	return rd->bad ? FS_E_INPUT : FS_OK;
}

static void clear_all(fs_cw_index *idx)
{
	for (size_t i = 0; i < idx->cap; i++) {
		struct ent *e = idx->tab[i], *nx;

		for (; e; e = nx) {
			nx = e->next;
			ent_free(e);
		}
		idx->tab[i] = NULL;
	}
	idx->n = 0;
	idx->epoch++;
	idx->seq = 0;
}

int fs_cw_index_restore(fs_cw_index *idx, fs_store *st, const fs_keyring *ring,
                        const char *space_id, fs_errbuf *eb)
{
	uint8_t *h = NULL, gen[SNAP_GEN];
	size_t hl = 0;
	uint64_t seq, chunks, entries;
	struct rdr rd;
	int r;

	clear_all(idx);
	if ((r = open_local(st, ring, space_id, "cw-index", &h, &hl, eb)) != FS_OK)
		return r == FS_E_NOTFOUND
		           ? r
		           : fs_err_set(eb, FS_E_NOTFOUND, "index snapshot unreadable");
	rd = (struct rdr){h, hl, 8, 0};
	if (hl < 8 + SNAP_GEN || memcmp(h, SNAP_MAGIC_HDR, 8) != 0)
		rd.bad = 1;
	else
		memcpy(gen, h + 8, SNAP_GEN);
	rd.off = 8 + SNAP_GEN;
	seq = get_u64(&rd);
	chunks = get_u64(&rd);
	entries = get_u64(&rd);
	fs_crypto_plain_free(h, hl);
	if (rd.bad || chunks > SNAP_CHUNKS_MAX)
		return fs_err_set(eb, FS_E_NOTFOUND, "index snapshot unreadable");
	for (uint64_t c = 0; c < chunks; c++) {
		char name[64];
		uint8_t *p = NULL;
		size_t pl = 0;

		snprintf(name, sizeof(name), "cw-index.%llu", (unsigned long long)c);
		if ((r = open_local(st, ring, space_id, name, &p, &pl, eb)) != FS_OK) {
			clear_all(idx);
			return fs_err_set(eb, FS_E_NOTFOUND, "index snapshot incomplete");
		}
		rd = (struct rdr){p, pl, 8 + SNAP_GEN, 0};
		if (pl < 8 + SNAP_GEN || memcmp(p, SNAP_MAGIC_CHUNK, 8) != 0 ||
		    memcmp(p + 8, gen, SNAP_GEN) != 0 || get_u64(&rd) != c)
			rd.bad = 1;
		r = rd.bad ? FS_E_INPUT : restore_chunk(idx, &rd);
		fs_crypto_plain_free(p, pl);
		if (r != FS_OK) {
			clear_all(idx);
			return r == FS_E_NOMEM
			           ? fs_err_set(eb, r, "out of memory")
			           : fs_err_set(eb, FS_E_NOTFOUND, "index snapshot damaged");
		}
	}
	if (idx->n != entries) {
		clear_all(idx);
		return fs_err_set(eb, FS_E_NOTFOUND, "index snapshot incomplete");
	}
	idx->seq = seq;
	return FS_OK;
}

/* ---- answers for the local API ---- */

static const char *const tier_txt[FS_CW_TIERS] = {"A", "B", "C", "D"};
static const char *const tier_col[FS_CW_TIERS] = {"red", "orange", "green", "grey"};
/* A red, B orange (256-colour 208), C green, D grey: the practice's colours. */
static const char *const tier_ansi[FS_CW_TIERS] = {"\033[31m", "\033[38;5;208m", "\033[32m",
                                                   "\033[90m"};

const char *fs_cw_tier_name(fs_cw_tier t)
{
	return (unsigned)t < FS_CW_TIERS ? tier_txt[t] : "?";
}

const char *fs_cw_tier_colour(fs_cw_tier t)
{
	return (unsigned)t < FS_CW_TIERS ? tier_col[t] : "none";
}

const char *fs_cw_tier_ansi(fs_cw_tier t)
{
	return (unsigned)t < FS_CW_TIERS ? tier_ansi[t] : "";
}

static int buf_done(struct cw_buf *b, char **out, size_t *len, fs_errbuf *eb)
{
	if (b->oom) {
		cw_buf_wipe(b);
		return fs_err_set(eb, FS_E_NOMEM, "out of memory");
	}
	*out = b->p;
	*len = b->n;
	return FS_OK;
}

static void jtime(struct cw_buf *b, int64_t t)
{
	char s[21];

	fs_cw_time_format(t, s);
	cw_buf_str(b, s);
}

int fs_cw_due_json(fs_cw_index *idx, int64_t now, int all, char **out, size_t *len, fs_errbuf *eb)
{
	static const struct {
		unsigned bit;
		const char *name;
	} an[] = {{FS_CW_ALERT_OVERDUE, "overdue"},   {FS_CW_ALERT_DUE, "due"},
	          {FS_CW_ALERT_FOLLOWUP, "followup"}, {FS_CW_ALERT_NEEDS, "needs_changed"},
	          {FS_CW_ALERT_A_REVIEW, "a_review"}, {FS_CW_ALERT_C_TO_D, "suggest_d"},
	          {FS_CW_ALERT_SIG, "signature"}};
	fs_cw_due_list *l = NULL;
	struct cw_buf b = {0};
	int r;

	*out = NULL;
	*len = 0;
	if ((r = fs_cw_due(idx, now, all, &l, eb)) != FS_OK)
		return r;
	cw_buf_puts(&b, "{\"now\":");
	jtime(&b, now);
	cw_buf_puts(&b, ",\"tz\":");
	cw_buf_str(&b, idx->cfg.tz);
	cw_buf_puts(&b, ",\"cases\":[");
	for (size_t i = 0; i < l->n; i++) {
		const fs_cw_due_item *it = &l->v[i];
		char why[512], d[11];
		int first = 1;

		cw_buf_puts(&b, i ? ",{\"id\":" : "{\"id\":");
		cw_buf_str(&b, it->id);
		cw_buf_puts(&b, ",\"name\":");
		cw_buf_str(&b, it->name);
		cw_buf_puts(&b, ",\"tier\":");
		cw_buf_str(&b, fs_cw_tier_name(it->tier));
		cw_buf_puts(&b, ",\"colour\":");
		cw_buf_str(&b, fs_cw_tier_colour(it->tier));
		cw_buf_puts(&b, ",\"alerts\":[");
		for (size_t k = 0; k < sizeof(an) / sizeof(an[0]); k++)
			if (it->alerts & an[k].bit) {
				cw_buf_puts(&b, first ? "" : ",");
				cw_buf_str(&b, an[k].name);
				first = 0;
			}
		fs_cw_due_reason(it, why, sizeof(why));
		cw_buf_puts(&b, "],\"reason\":");
		cw_buf_str(&b, why);
		cw_buf_puts(&b, ",\"last_contact\":");
		if (it->has_contact)
			jtime(&b, it->last_contact);
		else
			cw_buf_puts(&b, "null");
		cw_buf_puts(&b, ",\"days_since\":");
		cw_buf_int(&b, it->days_since);
		cw_buf_puts(&b, ",\"due\":");
		if (it->due_day >= 0) {
			fs_cw_day_format(it->due_day, d);
			cw_buf_str(&b, d);
		} else {
			cw_buf_puts(&b, "null");
		}
		cw_buf_puts(&b, ",\"days_overdue\":");
		cw_buf_int(&b, it->days_overdue);
		cw_buf_puts(&b, ",\"late_followups\":");
		cw_buf_int(&b, it->late_followups);
		cw_buf_puts(&b, "}");
	}
	cw_buf_puts(&b, "]}");
	fs_cw_due_free(l);
	return buf_done(&b, out, len, eb);
}

int fs_cw_caseload_json(fs_cw_index *idx, char **out, size_t *len, fs_errbuf *eb)
{
	fs_cw_caseload *cl = NULL;
	struct cw_buf b = {0};
	char num[64];
	int r;

	*out = NULL;
	*len = 0;
	if ((r = fs_cw_caseload_get(idx, &cl, eb)) != FS_OK)
		return r;
	snprintf(num, sizeof(num), "%.2f", cl->ceiling);
	cw_buf_puts(&b, "{\"ceiling\":");
	cw_buf_puts(&b, num);
	cw_buf_puts(&b, ",\"workers\":[");
	for (size_t i = 0; i < cl->n; i++) {
		const fs_cw_load *w = &cl->v[i];

		cw_buf_puts(&b, i ? ",{\"worker\":" : "{\"worker\":");
		cw_buf_str(&b, w->worker);
		for (int t = 0; t < FS_CW_TIERS; t++) {
			cw_buf_puts(&b, ",\"");
			cw_buf_puts(&b, tier_txt[t]);
			cw_buf_puts(&b, "\":");
			cw_buf_int(&b, w->count[t]);
		}
		snprintf(num, sizeof(num), "%.2f", w->weighted);
		cw_buf_puts(&b, ",\"total\":");
		cw_buf_int(&b, w->total);
		cw_buf_puts(&b, ",\"weighted\":");
		cw_buf_puts(&b, num);
		cw_buf_puts(&b, w->over ? ",\"over\":true}" : ",\"over\":false}");
	}
	cw_buf_puts(&b, "]}");
	fs_cw_caseload_free(cl);
	return buf_done(&b, out, len, eb);
}

int fs_cw_find_json(fs_cw_index *idx, const char *query, char **out, size_t *len, fs_errbuf *eb)
{
	const char **ids = NULL;
	struct cw_buf b = {0};
	size_t n = 0;
	int r;

	*out = NULL;
	*len = 0;
	if ((r = fs_cw_find(idx, query, &ids, &n, eb)) != FS_OK)
		return r;
	cw_buf_puts(&b, "{\"cases\":[");
	for (size_t i = 0; i < n; i++) {
		const struct cw_case *c = find(idx, ids[i])->c;
		int tier = c->tiers[c->ntiers - 1].tier;

		cw_buf_puts(&b, i ? ",{\"id\":" : "{\"id\":");
		cw_buf_str(&b, ids[i]);
		cw_buf_puts(&b, ",\"name\":");
		cw_buf_str(&b, c->name);
		cw_buf_puts(&b, ",\"alias\":");
		cw_buf_str(&b, c->alias);
		cw_buf_puts(&b, ",\"tier\":");
		cw_buf_str(&b, tier_txt[tier]);
		cw_buf_puts(&b, c->closed ? ",\"status\":\"closed\"}" : ",\"status\":\"open\"}");
	}
	cw_buf_puts(&b, "]}");
	free(ids);
	return buf_done(&b, out, len, eb);
}

int fs_cw_conflicts_json(const fs_cw_conflicts *c, char **out, size_t *len, fs_errbuf *eb)
{
	static const char *const tn[] = {"unknown", "case", "visit", "addendum"};
	struct cw_buf b = {0};

	*out = NULL;
	*len = 0;
	cw_buf_puts(&b, "{\"resolved\":");
	cw_buf_int(&b, (long long)c->n_resolved);
	cw_buf_puts(&b, ",\"conflicts\":[");
	for (size_t i = 0; i < c->n; i++) {
		cw_buf_puts(&b, i ? ",{\"id\":" : "{\"id\":");
		cw_buf_str(&b, c->v[i].id);
		cw_buf_puts(&b, ",\"type\":");
		cw_buf_str(&b, tn[(unsigned)c->v[i].type < 4 ? c->v[i].type : 0]);
		cw_buf_puts(&b, ",\"leaves\":");
		cw_buf_int(&b, (long long)c->v[i].n_leaves);
		cw_buf_puts(&b, ",\"error\":");
		cw_buf_str(&b, fs_errname(c->v[i].code));
		cw_buf_puts(&b, ",\"reason\":");
		cw_buf_str(&b, fs_strerror(c->v[i].code));
		cw_buf_puts(&b, "}");
	}
	cw_buf_puts(&b, "]}");
	return buf_done(&b, out, len, eb);
}
