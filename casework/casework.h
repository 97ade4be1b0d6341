/*
 * casework/casework.h: the caseworker's domain over plaintext records: cases,
 * visits and addenda (schemas, validation, edits stamped with a hybrid
 * logical clock, signatures of finalized visits), the merge of conflicting
 * revisions, the agency's rules (tier cadence, service alerts, re-tiering,
 * caseload) and an in-memory index of decrypted records. It knows nothing of
 * HTTP; it reads and writes the store only through envelopes (docs/casework.md).
 *
 * Time: instants are Unix seconds (UTC) and are stored as "YYYY-MM-DDTHH:MM:SSZ";
 * calendar days (a follow-up's due day, a due date) are days of the agency's
 * time zone, "YYYY-MM-DD". Every function that needs "now" takes it as an
 * argument, so rules are tested on a fixed clock.
 */
#ifndef FS_CASEWORK_H
#define FS_CASEWORK_H

#include <stddef.h>
#include <stdint.h>

#include "crypto.h"
#include "fs.h"
#include "store.h"

/* Bounds on every record field (bytes, without NUL). */
#define FS_CW_RECORD_MAX           (256U << 10) /* one plaintext record */
#define FS_CW_NAME_MAX             200          /* display name, alias */
#define FS_CW_ID_MAX               64           /* worker, device, role, document ids */
#define FS_CW_TAG_MAX              64
#define FS_CW_TAGS_MAX             32
#define FS_CW_REASON_MAX           1000 /* why a tier changed, why needs changed */
#define FS_CW_NOTE_MAX             (64U << 10)
#define FS_CW_ACTION_MAX           1000 /* one follow-up action */
#define FS_CW_FOLLOWUP_MAX         32
#define FS_CW_HISTORY_MAX          256 /* tier history entries */
#define FS_CW_ASSIGN_MAX           64
#define FS_CW_MINUTES_MAX          (24 * 60)
#define FS_CW_TZ_MAX               64
#define FS_CW_JSON_DEPTH           8
#define FS_CW_SIG_CONTEXT_VISIT    "fieldsync-visit-v1"
#define FS_CW_SIG_CONTEXT_ADDENDUM "fieldsync-addendum-v1"

typedef enum fs_cw_type {
	FS_CW_NONE = 0,
	FS_CW_CASE = 1,
	FS_CW_VISIT = 2,
	FS_CW_ADDENDUM = 3,
} fs_cw_type;

typedef enum fs_cw_tier {
	FS_CW_TIER_A = 0,
	FS_CW_TIER_B = 1,
	FS_CW_TIER_C = 2,
	FS_CW_TIER_D = 3,
	FS_CW_TIERS = 4,
} fs_cw_tier;

/* ------------------------------------------------------------------------
 * Configuration (the agency's rules). Cadence is a calendar step from the
 * last contact's day: n days or n months (month ends clamp: Jan 31 + 1
 * month is Feb 28 or 29), or none (tier D is archived).
 */
typedef enum fs_cw_unit {
	FS_CW_NEVER = 0,
	FS_CW_DAYS = 1,
	FS_CW_MONTHS = 2,
} fs_cw_unit;

typedef struct fs_cw_cadence {
	fs_cw_unit unit;
	int n; /* 1..366 days or 1..24 months */
} fs_cw_cadence;

typedef struct fs_cw_config {
	char tz[FS_CW_TZ_MAX + 1];          /* IANA zone, e.g. "Europe/Berlin" */
	fs_cw_cadence cadence[FS_CW_TIERS]; /* A 7 days, B 1 month, C 3 months, D never */
	int grace_days;                     /* overdue after due day + grace (default 0) */
	int a_review_months;                /* A this long after opening: re-tier (3) */
	int c_to_d_months;                  /* C this long: suggest D (6) */
	double weight[FS_CW_TIERS];         /* expected contacts a month: 4, 1, 1/3, 0 */
	double ceiling;                     /* weighted load above this is overloaded (40) */
} fs_cw_config;

/* Fills c with the practice's defaults and zone "UTC". */
void fs_cw_config_default(fs_cw_config *c);

/*
 * Reads the agency settings from a JSON object, members optional:
 * {"tz":"Europe/Berlin","grace_days":2,"cadence":{"A":"7d","B":"1m","C":"3m",
 * "D":"none"},"a_review_months":3,"c_to_d_months":6,"weights":{"A":4,...},
 * "ceiling":40}. Starts from the defaults. FS_E_CW_INVALID for a bad value,
 * FS_E_CW_TZ for a zone the tz database does not know.
 */
int fs_cw_config_parse(const char *json, size_t len, fs_cw_config *c, fs_errbuf *eb) FS_WUR;

/* ------------------------------------------------------------------------
 * Time helpers. fs_cw_time_parse reads "YYYY-MM-DDTHH:MM:SSZ" (UTC only).
 */
int fs_cw_time_parse(const char *s, int64_t *out) FS_WUR;
/* Writes "YYYY-MM-DDTHH:MM:SSZ" to out (21 bytes with NUL). */
void fs_cw_time_format(int64_t t, char out[21]);

/* The agency-zone calendar day of instant t, as days since 1970-01-01. */
int fs_cw_local_day(const char *tz, int64_t t, int64_t *day, fs_errbuf *eb) FS_WUR;
/* The instant at which agency-zone day starts (local midnight, or the first
 * instant of that day when a DST change skips midnight). */
int fs_cw_day_start(const char *tz, int64_t day, int64_t *t, fs_errbuf *eb) FS_WUR;
/* day plus n months (clamped to the month's end). */
int64_t fs_cw_day_add_months(int64_t day, int n);
/* "YYYY-MM-DD" of day (11 bytes with NUL), and back (FS_E_INPUT). */
void fs_cw_day_format(int64_t day, char out[11]);
int fs_cw_day_parse(const char *s, int64_t *day) FS_WUR;

/* ------------------------------------------------------------------------
 * Records. Each function returns the record's canonical plaintext JSON
 * (members in a fixed order, no whitespace; *out malloc'ed, *out_len bytes
 * plus a NUL not counted): the caller frees it with
 * fs_crypto_plain_free((uint8_t *)*out, *out_len) because it holds names and
 * notes. Input JSON ("fields") is bounded (FS_CW_RECORD_MAX, depth
 * FS_CW_JSON_DEPTH); a bad field is FS_E_CW_INVALID with the member named in
 * eb (never its value). Edits are stamped with a hybrid logical clock built
 * from now_ms and the record's own clocks, with device as tie-break.
 */

/*
 * What a record is: validates plain completely (schema, bounds, UTF-8,
 * dates) and sets *type. Does not check signatures (fs_cw_verify does).
 * FS_E_CW_INVALID, FS_E_CW_VERSION (a newer record format), FS_E_TOOBIG.
 */
int fs_cw_validate(const char *plain, size_t len, fs_cw_type *type, fs_errbuf *eb) FS_WUR;

/*
 * A new case. fields: {"name":..., "alias":..., "tier":"A", "why":...,
 * "by":<worker>, "risk":"low|medium|high", "opened":<instant, default now>,
 * "tags":[...], "assign":[{"worker":..,"role":..}]}; name, tier and by are
 * required.
 */
int fs_cw_case_create(const char *fields, size_t len, const char *device, int64_t now_ms,
                      char **out, size_t *out_len, fs_errbuf *eb) FS_WUR;

/*
 * Edits case plaintext old: fields may hold "name", "alias", "risk",
 * "status" ("open"/"closed"; closing sets "closed" to now unless given),
 * "tags" (the new full list), "needs_changed" ({"on":bool,"why":...}),
 * "tier" (with "why" and "by": appends to the history), "assign"
 * ({"worker","role","active":bool}). Only named fields get new clocks.
 */
int fs_cw_case_edit(const char *old, size_t old_len, const char *fields, size_t len,
                    const char *device, int64_t now_ms, char **out, size_t *out_len,
                    fs_errbuf *eb) FS_WUR;

/*
 * A new draft visit. fields: {"case":<doc id>, "kind":"home|phone|office|
 * outreach", "start":<instant>, "minutes":n, "worker":..., "note":...,
 * "followups":[{"action":..., "due":"YYYY-MM-DD"}]}; case, kind, start and
 * worker are required. The author's device is device.
 */
int fs_cw_visit_create(const char *fields, size_t len, const char *device, int64_t now_ms,
                       char **out, size_t *out_len, fs_errbuf *eb) FS_WUR;

/* Edits a draft (same members as create except case and worker).
 * FS_E_CW_FINAL when old is finalized: it is immutable, write an addendum. */
int fs_cw_visit_edit(const char *old, size_t old_len, const char *fields, size_t len,
                     int64_t now_ms, char **out, size_t *out_len, fs_errbuf *eb) FS_WUR;

/*
 * Finalizes a draft: state "final", the device's Ed25519 public key in the
 * author, and a signature (context FS_CW_SIG_CONTEXT_VISIT) over the
 * canonical plaintext without "sig". The device in the record must be the
 * one that signs (device). FS_E_CW_FINAL when already final.
 */
int fs_cw_visit_finalize(const char *old, size_t old_len, const fs_identity *id, const char *device,
                         int64_t now_ms, char **out, size_t *out_len, fs_errbuf *eb) FS_WUR;

/*
 * A signed addendum to a finalized visit (visit_plain is its plaintext,
 * visit_id its document id). fields: {"worker":..., "note":..., "done":[i,...]}
 * where done lists follow-ups of the visit (by index) now completed.
 */
int fs_cw_addendum_create(const char *visit_plain, size_t visit_len, const char *visit_id,
                          const char *fields, size_t len, const fs_identity *id, const char *device,
                          int64_t now_ms, char **out, size_t *out_len, fs_errbuf *eb) FS_WUR;

/*
 * Checks the signature of a finalized visit or an addendum against the
 * public key it names. If trusted_pk is not NULL the named key must also be
 * that key (the author device's key from the device registry), so text
 * re-signed by someone else is caught. FS_OK; FS_E_SIGNATURE (does not
 * verify, or signed by another key than trusted_pk); FS_E_CW_UNSIGNED (a
 * draft: nothing to check); FS_E_CW_INVALID.
 */
int fs_cw_verify(const char *plain, size_t len, const uint8_t *trusted_pk, fs_errbuf *eb) FS_WUR;

/* ------------------------------------------------------------------------
 * Merge. Given the plaintexts of a document's conflicting leaves (in any
 * order), returns one plaintext, the same bytes whatever the order:
 *  - case: each field last-writer-wins by its clock, device id breaking
 *    ties (then the value's bytes); tier history and assignments are unions
 *    (an assignment's active flag last-writer-wins per worker and role);
 *  - visit or addendum: identical leaves merge to themselves (a finalized
 *    visit is immutable); two different drafts, or a draft beside a
 *    finalized visit, are FS_E_CW_UNMERGEABLE: both are kept for a person.
 * Leaves of different types are FS_E_CW_UNMERGEABLE. *out as for records.
 */
int fs_cw_merge(const char *const *plains, const size_t *lens, size_t n, char **out,
                size_t *out_len, fs_errbuf *eb) FS_WUR;

/* A document fs_cw_resolve could not merge. */
typedef struct fs_cw_conflict {
	char *id;
	fs_cw_type type; /* FS_CW_NONE when a leaf could not be read */
	size_t n_leaves;
	int code; /* why: FS_E_CW_UNMERGEABLE, FS_E_TAMPERED, FS_E_CW_INVALID, ... */
} fs_cw_conflict;

typedef struct fs_cw_conflicts {
	size_t n;
	fs_cw_conflict *v;
	size_t n_resolved; /* documents merged by this call */
} fs_cw_conflicts;

/*
 * Resolves every conflicted document of st that the rules can merge: the
 * merged plaintext is sealed with k and written on the winning leaf (unless
 * it equals the winner), then each other live leaf gets a tombstone (its
 * revision id is deterministic, so two devices resolving the same conflict
 * converge after the next sync). Leaves that cannot be opened or merged are
 * left alone and listed in *out (caller frees with fs_cw_conflicts_free).
 * Each write is its own durable transaction; a crash between them leaves a
 * conflict that the next call finishes.
 */
int fs_cw_resolve(fs_store *st, const fs_keyring *ring, const char *space_id, const fs_space_key *k,
                  fs_cw_conflicts **out, fs_errbuf *eb) FS_WUR;
void fs_cw_conflicts_free(fs_cw_conflicts *c);

/* ------------------------------------------------------------------------
 * The index: decrypted records in memory only (names, aliases, tags, tier,
 * dates, assignments, follow-ups; no note text), wiped when freed.
 */
typedef struct fs_cw_index fs_cw_index;

/* cfg is copied; the zone is checked (FS_E_CW_TZ). Free with fs_cw_index_free. */
int fs_cw_index_new(const fs_cw_config *cfg, fs_cw_index **out, fs_errbuf *eb) FS_WUR;
/* Wipes and frees idx; NULL is a no-op. */
void fs_cw_index_free(fs_cw_index *idx);

/* Registers a device's Ed25519 key; signatures by any other key are flagged. */
int fs_cw_index_trust(fs_cw_index *idx, const char *device,
                      const uint8_t pk[FS_CRYPTO_SIGN_PK_BYTES], fs_errbuf *eb) FS_WUR;

/*
 * Adds or replaces document id from its plaintext. A record that does not
 * validate is FS_E_CW_INVALID and is counted as a problem, not indexed; a
 * visit or addendum whose signature fails is indexed and flagged.
 */
int fs_cw_index_put(fs_cw_index *idx, const char *id, const char *plain, size_t len,
                    fs_errbuf *eb) FS_WUR;
/* Drops id (FS_OK when absent). */
void fs_cw_index_remove(fs_cw_index *idx, const char *id);

/*
 * Reads every document of st changed since the last load (all on the first
 * call), opens winners with ring and indexes them; deleted winners are
 * dropped. Documents that cannot be opened or validated are counted in
 * fs_cw_index_stats (problems), never silently skipped.
 */
int fs_cw_index_load(fs_cw_index *idx, fs_store *st, const fs_keyring *ring, const char *space_id,
                     fs_errbuf *eb) FS_WUR;

/*
 * Checks up to max (0: all) signatures that fs_cw_index_load left pending,
 * re-reading each record from st; *left (may be NULL) is how many remain.
 * Verifying is ~100 times slower than opening an envelope, so a daemon runs
 * this in slices after unlocking rather than before the first answer.
 */
int fs_cw_index_verify(fs_cw_index *idx, fs_store *st, const fs_keyring *ring, const char *space_id,
                       size_t max, size_t *left, fs_errbuf *eb) FS_WUR;

/*
 * Saves the index, sealed under k, as `_local` documents of st (never
 * replicated; see docs/casework.md), so the next unlock restores it and
 * reads only what changed since. Signature states are kept: a visit is
 * verified once per revision, not at every unlock.
 */
int fs_cw_index_save(fs_cw_index *idx, fs_store *st, const fs_space_key *k, fs_errbuf *eb) FS_WUR;

/*
 * Replaces idx's content with the saved snapshot and its store sequence;
 * follow with fs_cw_index_load for what changed since. FS_E_NOTFOUND when
 * there is no usable snapshot (none, from another key, damaged or cut
 * short by a crash): idx is then empty and a full fs_cw_index_load rebuilds
 * it. Other errors: FS_E_NOMEM, store errors.
 */
int fs_cw_index_restore(fs_cw_index *idx, fs_store *st, const fs_keyring *ring,
                        const char *space_id, fs_errbuf *eb) FS_WUR;

typedef struct fs_cw_index_stats {
	size_t cases, visits, addenda;
	size_t problems;    /* documents that could not be opened or validated */
	size_t sig_bad;     /* finalized visits/addenda whose signature failed */
	size_t sig_pending; /* signatures not checked yet (fs_cw_index_verify) */
	uint64_t seq;       /* store sequence loaded up to */
} fs_cw_index_stats;
void fs_cw_index_stats_get(const fs_cw_index *idx, fs_cw_index_stats *out);

/* Alerts, as bits of fs_cw_due_item.alerts, in falling urgency. */
#define FS_CW_ALERT_OVERDUE  0x01u /* last contact older than cadence + grace */
#define FS_CW_ALERT_DUE      0x02u /* cadence reached */
#define FS_CW_ALERT_FOLLOWUP 0x04u /* a follow-up action is past its day */
#define FS_CW_ALERT_NEEDS    0x08u /* "needs changed": re-tier */
#define FS_CW_ALERT_A_REVIEW 0x10u /* in A longer than a_review_months since opening */
#define FS_CW_ALERT_C_TO_D   0x20u /* in C for c_to_d_months: suggest D */
#define FS_CW_ALERT_SIG      0x40u /* a visit or addendum signature fails */

/* Strings are borrowed from the index: valid until it next changes. */
typedef struct fs_cw_due_item {
	const char *id;
	const char *name;
	fs_cw_tier tier;
	unsigned alerts;
	int64_t last_contact; /* instant; the opening when there was no visit */
	int has_contact;      /* a visit exists */
	int days_since;       /* agency-zone days since last contact */
	int64_t due_day;      /* day of the cadence (-1 for tier D) */
	int days_overdue;     /* today - due day, when due or overdue */
	unsigned late_followups;
} fs_cw_due_item;

typedef struct fs_cw_due_list {
	size_t n;
	fs_cw_due_item *v;
} fs_cw_due_list;

/*
 * Open cases ordered by urgency (overdue first, most days first; then due,
 * then other alerts; tier A before D; then id), with alerts computed at now
 * (Unix seconds) in the agency zone. all = 0 lists only cases with alerts.
 * Caller frees with fs_cw_due_free.
 */
int fs_cw_due(fs_cw_index *idx, int64_t now, int all, fs_cw_due_list **out, fs_errbuf *eb) FS_WUR;
void fs_cw_due_free(fs_cw_due_list *l);

/* Plain words for the alerts in item, e.g. "overdue 3 days; needs changed". */
void fs_cw_due_reason(const fs_cw_due_item *item, char *buf, size_t len);

typedef struct fs_cw_load {
	char worker[FS_CW_ID_MAX + 1];
	unsigned count[FS_CW_TIERS];
	unsigned total;
	double weighted; /* expected contacts a month */
	int over;        /* weighted > ceiling */
} fs_cw_load;

typedef struct fs_cw_caseload {
	size_t n;
	fs_cw_load *v; /* by worker id */
	double ceiling;
} fs_cw_caseload;

/* Open cases per assigned (active) worker. Caller frees with fs_cw_caseload_free. */
int fs_cw_caseload_get(fs_cw_index *idx, fs_cw_caseload **out, fs_errbuf *eb) FS_WUR;
void fs_cw_caseload_free(fs_cw_caseload *c);

/*
 * Cases whose name, alias or a tag contains query (case-insensitive for
 * ASCII, at most FS_CW_NAME_MAX bytes), by id. *ids holds borrowed ids
 * (valid until the index changes); the caller frees the array with free().
 */
int fs_cw_find(fs_cw_index *idx, const char *query, const char ***ids, size_t *n,
               fs_errbuf *eb) FS_WUR;

/* Signature states of a visit or addendum in the index. */
enum fs_cw_sig {
	FS_CW_SIG_NONE = 0,    /* a draft: nothing signed */
	FS_CW_SIG_PENDING = 1, /* not checked yet (fs_cw_index_verify) */
	FS_CW_SIG_OK = 2,      /* verifies with its author device's trusted key */
	FS_CW_SIG_BAD = 3,     /* does not verify, or another key: reported, never hidden */
};

/* The signature state of document id; -1 when id is not an indexed visit
 * or addendum. */
int fs_cw_index_sig(fs_cw_index *idx, const char *id);

/*
 * The addenda of visit_id in the index, by id. *ids holds borrowed ids
 * (valid until the index changes); the caller frees the array with free().
 */
int fs_cw_addenda(fs_cw_index *idx, const char *visit_id, const char ***ids, size_t *n,
                  fs_errbuf *eb) FS_WUR;

/* ------------------------------------------------------------------------
 * Answers for the daemon's local API, as JSON text (docs/casework.md). Each
 * *out is malloc'ed, *len bytes plus a NUL not counted; it holds names, so
 * the caller frees it with fs_crypto_plain_free((uint8_t *)*out, *len).
 */

/* {"now","tz","cases":[{id,name,tier,colour,alerts[],reason,last_contact,
 * days_since,due,days_overdue,late_followups}]}, ordered as fs_cw_due. */
int fs_cw_due_json(fs_cw_index *idx, int64_t now, int all, char **out, size_t *len,
                   fs_errbuf *eb) FS_WUR;
/* {"ceiling","workers":[{worker,A,B,C,D,total,weighted,over}]} */
int fs_cw_caseload_json(fs_cw_index *idx, char **out, size_t *len, fs_errbuf *eb) FS_WUR;
/* {"cases":[{id,name,alias,tier,status}]} */
int fs_cw_find_json(fs_cw_index *idx, const char *query, char **out, size_t *len,
                    fs_errbuf *eb) FS_WUR;
/* {"resolved":n,"conflicts":[{id,type,leaves,error,reason}]} (no secrets: frees with free()) */
int fs_cw_conflicts_json(const fs_cw_conflicts *c, char **out, size_t *len, fs_errbuf *eb) FS_WUR;

/* "A".."D"; "red", "orange", "green", "grey"; the ANSI sequence of that colour. */
const char *fs_cw_tier_name(fs_cw_tier t);
const char *fs_cw_tier_colour(fs_cw_tier t);
const char *fs_cw_tier_ansi(fs_cw_tier t);

#endif
