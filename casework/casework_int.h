/*
 * casework/casework_int.h: the parsed forms of records shared by the record
 * code, the merge and the index, plus the small canonical JSON writer. Not
 * part of the public interface.
 */
#ifndef FS_CASEWORK_INT_H
#define FS_CASEWORK_INT_H

#include <stdint.h>

#include "casework.h"

struct cJSON;

/* A hybrid logical clock: milliseconds << 16 | counter, with its device. */
struct cw_clock {
	uint64_t h;
	char d[FS_CW_ID_MAX + 1];
};

/* Case fields that merge last-writer-wins, each with its own clock. */
enum cw_field {
	CW_F_NAME,
	CW_F_ALIAS,
	CW_F_RISK,
	CW_F_STATUS,
	CW_F_OPENED,
	CW_F_CLOSED,
	CW_F_NEEDS,
	CW_F_TAGS,
	CW_F_N
};

extern const char *const cw_field_names[CW_F_N];

struct cw_tierev {
	int tier;
	int64_t at;
	char by[FS_CW_ID_MAX + 1];
	char *why; /* "" when none */
	struct cw_clock c;
};

struct cw_assign {
	char worker[FS_CW_ID_MAX + 1];
	char role[FS_CW_ID_MAX + 1];
	int active;
	struct cw_clock c;
};

enum { CW_RISK_LOW, CW_RISK_MEDIUM, CW_RISK_HIGH };

struct cw_case {
	char *name;
	char *alias; /* "" when none */
	int risk;
	int closed; /* status: 0 open, 1 closed */
	int64_t opened;
	int64_t closed_at; /* -1 when not closed */
	int needs;
	int64_t needs_at;           /* when needs is set */
	char *needs_why;            /* "" when none */
	char *tags[FS_CW_TAGS_MAX]; /* sorted, unique */
	size_t ntags;
	struct cw_clock clk[CW_F_N];
	struct cw_tierev *tiers; /* sorted by clock; the last is the current tier */
	size_t ntiers;
	struct cw_assign *as; /* sorted by worker, role */
	size_t nas;
};

enum { CW_KIND_HOME, CW_KIND_PHONE, CW_KIND_OFFICE, CW_KIND_OUTREACH, CW_KINDS };
extern const char *const cw_kind_names[CW_KINDS];

struct cw_followup {
	char *action;
	int64_t due_day;
};

struct cw_author {
	char worker[FS_CW_ID_MAX + 1];
	char device[FS_CW_ID_MAX + 1];
	int has_pk;
	uint8_t pk[FS_CRYPTO_SIGN_PK_BYTES];
};

struct cw_visit {
	char case_id[FS_CW_ID_MAX + 1];
	int kind;
	int64_t start;
	int minutes;
	struct cw_author au;
	char *note;
	struct cw_followup fu[FS_CW_FOLLOWUP_MAX];
	size_t nfu;
	int final;
	uint64_t h; /* clock of the last edit */
	int has_sig;
	uint8_t sig[FS_CRYPTO_SIG_BYTES];
};

struct cw_addendum {
	char visit_id[FS_CW_ID_MAX + 1];
	char case_id[FS_CW_ID_MAX + 1];
	int64_t at;
	struct cw_author au;
	char *note;
	int done[FS_CW_FOLLOWUP_MAX];
	size_t ndone;
	int has_sig;
	uint8_t sig[FS_CRYPTO_SIG_BYTES];
};

/* A parsed record of any type. */
struct cw_rec {
	fs_cw_type type; /* FS_CW_NONE: a daemon record of another type (not ours) */
	int wrapped;     /* came as the daemon's {"type":T,"data":{record}} */
	struct cw_case c;
	struct cw_visit v;
	struct cw_addendum a;
};

/* Parses and validates plain into r (cleared first); free with cw_rec_clear. */
int cw_rec_parse(const char *plain, size_t len, struct cw_rec *r, fs_errbuf *eb) FS_WUR;
/* Wipes and frees what r holds; r may be reused. */
void cw_rec_clear(struct cw_rec *r);
/* Canonical JSON of r; with_sig 0 leaves "sig" out (the signed bytes). */
int cw_rec_write(const struct cw_rec *r, int with_sig, char **out, size_t *out_len,
                 fs_errbuf *eb) FS_WUR;

/* Orders clocks: by h, then device id. */
int cw_clock_cmp(const struct cw_clock *a, const struct cw_clock *b);

/* The agency calendar and zone (rules.c). */
int64_t cw_days_from_civil(int64_t y, unsigned m, unsigned d);
void cw_civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d);
int cw_tz_check(const char *tz, fs_errbuf *eb) FS_WUR;

/* Converts n instants to agency-zone days under one switch of TZ. */
int cw_local_days(const char *tz, const int64_t *t, int64_t *days, size_t n, fs_errbuf *eb) FS_WUR;

/* Growing text buffer that wipes what it drops. */
struct cw_buf {
	char *p;
	size_t n, cap;
	int oom;
};
void cw_buf_put(struct cw_buf *b, const char *s, size_t n);
void cw_buf_puts(struct cw_buf *b, const char *s);
void cw_buf_str(struct cw_buf *b, const char *s); /* a JSON string, escaped */
void cw_buf_int(struct cw_buf *b, long long v);
void cw_buf_wipe(struct cw_buf *b);

/* Deletes a cJSON tree after wiping every string in it. */
void cw_json_free(struct cJSON *j);

#endif
