/*
 * tests/casework/test_casework.c: casework/ against real stores and real
 * keys: calendar and alert arithmetic on a fixed clock (month ends, leap
 * years, DST in three zones), records and their validation, merge
 * convergence over every combination of edited fields in either order
 * (pure, and through two real store files), signature tampering, the index.
 * Usage: test_casework [glob] (e.g. "merge_*") to run one group.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <dirent.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "casework.h"

#define DEV_A "dev-a"
#define DEV_B "dev-b"

static int64_t T(const char *s)
{
	int64_t t = 0;

	assert_int_equal(fs_cw_time_parse(s, &t), FS_OK);
	return t;
}

static int64_t D(const char *s)
{
	int64_t d = 0;

	assert_int_equal(fs_cw_day_parse(s, &d), FS_OK);
	return d;
}

static void pfree(char *p, size_t n)
{
	fs_crypto_plain_free((uint8_t *)p, n);
}

/* A case created at ms with fields f, by DEV_A. */
static char *mkcase(const char *f, int64_t ms, size_t *n)
{
	fs_errbuf eb = {0};
	char *p = NULL;

	assert_int_equal(fs_cw_case_create(f, strlen(f), "dev-base", ms, &p, n, &eb), FS_OK);
	return p;
}

static char *edit(const char *old, size_t ol, const char *f, const char *dev, int64_t ms, size_t *n)
{
	fs_errbuf eb = {0};
	char *p = NULL;
	int r = fs_cw_case_edit(old, ol, f, strlen(f), dev, ms, &p, n, &eb);

	if (r != FS_OK)
		fprintf(stderr, "edit: %s\n", eb.msg);
	assert_int_equal(r, FS_OK);
	return p;
}

/* ---- calendar ---- */

static void time_calendar(void **state)
{
	char s[21], d[11];
	int64_t t;

	(void)state;
	fs_cw_time_format(T("2028-02-29T23:59:59Z"), s);
	assert_string_equal(s, "2028-02-29T23:59:59Z");
	assert_int_not_equal(fs_cw_time_parse("2027-02-29T00:00:00Z", &t), FS_OK);
	assert_int_not_equal(fs_cw_time_parse("2027-01-01T24:00:00Z", &t), FS_OK);
	assert_int_not_equal(fs_cw_time_parse("2027-01-01T00:00:00+01:00", &t), FS_OK);
	assert_int_not_equal(fs_cw_time_parse("2027-01-01 00:00:00Z", &t), FS_OK);
	assert_int_equal(D("1970-01-01"), 0);
	assert_int_equal(T("2000-03-01T00:00:00Z"), 951868800);
	/* month steps clamp at month ends, leap years included */
	fs_cw_day_format(fs_cw_day_add_months(D("2027-01-31"), 1), d);
	assert_string_equal(d, "2027-02-28");
	fs_cw_day_format(fs_cw_day_add_months(D("2028-01-31"), 1), d);
	assert_string_equal(d, "2028-02-29");
	fs_cw_day_format(fs_cw_day_add_months(D("2027-11-30"), 3), d);
	assert_string_equal(d, "2028-02-29");
	fs_cw_day_format(fs_cw_day_add_months(D("2028-02-29"), 12), d);
	assert_string_equal(d, "2029-02-28");
	fs_cw_day_format(fs_cw_day_add_months(D("2100-01-31"), 1), d);
	assert_string_equal(d, "2100-02-28"); /* not a leap year */
	fs_cw_day_format(fs_cw_day_add_months(D("2000-01-31"), 1), d);
	assert_string_equal(d, "2000-02-29"); /* a leap year */
	fs_cw_day_format(fs_cw_day_add_months(D("2027-12-31"), 2), d);
	assert_string_equal(d, "2028-02-29");
	fs_cw_day_format(fs_cw_day_add_months(D("2027-03-31"), -1), d);
	assert_string_equal(d, "2027-02-28");
}

static void time_zones(void **state)
{
	fs_errbuf eb = {0};
	int64_t day, t;

	(void)state;
	/* Berlin: UTC 22:30 on the 22nd is already the 23rd... no: 23:30 CET, the 22nd */
	assert_int_equal(fs_cw_local_day("Europe/Berlin", T("2026-03-22T22:30:00Z"), &day, &eb),
	                 FS_OK);
	assert_int_equal(day, D("2026-03-22"));
	assert_int_equal(fs_cw_local_day("Europe/Berlin", T("2026-03-22T23:00:00Z"), &day, &eb),
	                 FS_OK);
	assert_int_equal(day, D("2026-03-23"));
	/* the day of the spring change is 23 hours long */
	assert_int_equal(fs_cw_day_start("Europe/Berlin", D("2026-03-29"), &t, &eb), FS_OK);
	assert_int_equal(t, T("2026-03-28T23:00:00Z"));
	assert_int_equal(fs_cw_day_start("Europe/Berlin", D("2026-03-30"), &t, &eb), FS_OK);
	assert_int_equal(t, T("2026-03-29T22:00:00Z"));
	/* New York's autumn change: a 25-hour day */
	assert_int_equal(fs_cw_day_start("America/New_York", D("2026-11-01"), &t, &eb), FS_OK);
	assert_int_equal(t, T("2026-11-01T04:00:00Z"));
	assert_int_equal(fs_cw_day_start("America/New_York", D("2026-11-02"), &t, &eb), FS_OK);
	assert_int_equal(t, T("2026-11-02T05:00:00Z"));
	/* Havana skips midnight: the day starts at 01:00 */
	assert_int_equal(fs_cw_day_start("America/Havana", D("2026-03-08"), &t, &eb), FS_OK);
	assert_int_equal(t, T("2026-03-08T05:00:00Z"));
	/* unknown or hostile zones are refused (glibc would silently use UTC) */
	assert_int_equal(fs_cw_local_day("Mars/Olympus", 0, &day, &eb), FS_E_CW_TZ);
	assert_int_equal(fs_cw_local_day("../../etc/passwd", 0, &day, &eb), FS_E_CW_TZ);
	assert_int_equal(fs_cw_local_day("/etc/localtime", 0, &day, &eb), FS_E_CW_TZ);
	/* and TZ is as it was */
	assert_null(getenv("TZ"));
}

/* One case with tier tier opened at opened, a visit at contact (or none); due at now. */
static fs_cw_due_item due1(const fs_cw_config *cfg, const char *tier, const char *opened,
                           const char *contact, const char *now, unsigned *alerts)
{
	fs_cw_index *idx = NULL;
	fs_cw_due_list *l = NULL;
	fs_errbuf eb = {0};
	fs_cw_due_item it;
	char f[512], *p;
	size_t n;

	assert_int_equal(fs_cw_index_new(cfg, &idx, &eb), FS_OK);
	snprintf(f, sizeof(f), "{\"name\":\"N\",\"tier\":\"%s\",\"by\":\"w1\",\"opened\":\"%s\"}",
	         tier, opened);
	p = mkcase(f, T(opened) * 1000, &n);
	assert_int_equal(fs_cw_index_put(idx, "case1", p, n, &eb), FS_OK);
	pfree(p, n);
	if (contact) {
		snprintf(
		    f, sizeof(f),
		    "{\"case\":\"case1\",\"kind\":\"phone\",\"start\":\"%s\",\"worker\":\"w1\"}",
		    contact);
		assert_int_equal(
		    fs_cw_visit_create(f, strlen(f), DEV_A, T(contact) * 1000, &p, &n, &eb), FS_OK);
		assert_int_equal(fs_cw_index_put(idx, "visit1", p, n, &eb), FS_OK);
		pfree(p, n);
	}
	assert_int_equal(fs_cw_due(idx, T(now), 1, &l, &eb), FS_OK);
	assert_int_equal(l->n, 1);
	it = l->v[0];
	it.id = NULL;
	it.name = NULL;
	*alerts = it.alerts;
	fs_cw_due_free(l);
	fs_cw_index_free(idx);
	return it;
}

#define LVL(a) ((a) & (FS_CW_ALERT_OVERDUE | FS_CW_ALERT_DUE))

static void due_month_end_and_leap(void **state)
{
	fs_cw_config cfg;
	fs_cw_due_item it;
	unsigned a;
	char d[11];

	(void)state;
	fs_cw_config_default(&cfg);
	/* B monthly from Jan 31 (not a leap year): due Feb 28, overdue Mar 1 */
	it = due1(&cfg, "B", "2026-12-01T10:00:00Z", "2027-01-31T10:00:00Z", "2027-02-27T23:59:59Z",
	          &a);
	fs_cw_day_format(it.due_day, d);
	assert_string_equal(d, "2027-02-28");
	assert_int_equal(LVL(a), 0);
	assert_int_equal(it.days_since, 27);
	due1(&cfg, "B", "2026-12-01T10:00:00Z", "2027-01-31T10:00:00Z", "2027-02-28T00:00:00Z", &a);
	assert_int_equal(LVL(a), FS_CW_ALERT_DUE);
	it = due1(&cfg, "B", "2026-12-01T10:00:00Z", "2027-01-31T10:00:00Z", "2027-03-01T00:00:00Z",
	          &a);
	assert_int_equal(LVL(a), FS_CW_ALERT_OVERDUE);
	assert_int_equal(it.days_overdue, 1);
	/* leap year: Jan 31 + 1 month is Feb 29 */
	it = due1(&cfg, "B", "2027-12-01T10:00:00Z", "2028-01-31T10:00:00Z", "2028-02-28T12:00:00Z",
	          &a);
	fs_cw_day_format(it.due_day, d);
	assert_string_equal(d, "2028-02-29");
	assert_int_equal(LVL(a), 0);
	due1(&cfg, "B", "2027-12-01T10:00:00Z", "2028-01-31T10:00:00Z", "2028-02-29T12:00:00Z", &a);
	assert_int_equal(LVL(a), FS_CW_ALERT_DUE);
	/* C every 3 months from Nov 30: Feb 29 in a leap year */
	it = due1(&cfg, "C", "2027-06-01T10:00:00Z", "2027-11-30T10:00:00Z", "2028-02-29T00:00:00Z",
	          &a);
	fs_cw_day_format(it.due_day, d);
	assert_string_equal(d, "2028-02-29");
	assert_int_equal(LVL(a), FS_CW_ALERT_DUE);
	assert_int_equal(it.days_since, 91);
	/* grace: 2 days after the due day it is still only due */
	cfg.grace_days = 2;
	due1(&cfg, "B", "2026-12-01T10:00:00Z", "2027-01-31T10:00:00Z", "2027-03-02T12:00:00Z", &a);
	assert_int_equal(LVL(a), FS_CW_ALERT_DUE);
	due1(&cfg, "B", "2026-12-01T10:00:00Z", "2027-01-31T10:00:00Z", "2027-03-03T00:00:00Z", &a);
	assert_int_equal(LVL(a), FS_CW_ALERT_OVERDUE);
	cfg.grace_days = 0;
	/* no visit yet: counted from the opening */
	it = due1(&cfg, "A", "2027-05-01T09:00:00Z", NULL, "2027-05-08T09:00:00Z", &a);
	assert_int_equal(LVL(a), FS_CW_ALERT_DUE);
	assert_int_equal(it.has_contact, 0);
	/* D has no cadence */
	it = due1(&cfg, "D", "2020-01-01T00:00:00Z", "2020-01-02T00:00:00Z", "2027-01-01T00:00:00Z",
	          &a);
	assert_int_equal(a, 0);
	assert_int_equal(it.due_day, -1);
	/* A for 3 months since opening (Nov 30 -> Feb 29): re-tier */
	due1(&cfg, "A", "2027-11-30T10:00:00Z", "2028-02-28T10:00:00Z", "2028-02-28T23:00:00Z", &a);
	assert_int_equal(a & FS_CW_ALERT_A_REVIEW, 0);
	due1(&cfg, "A", "2027-11-30T10:00:00Z", "2028-02-28T10:00:00Z", "2028-02-29T00:00:00Z", &a);
	assert_int_equal(a & FS_CW_ALERT_A_REVIEW, FS_CW_ALERT_A_REVIEW);
	/* C for 6 months: suggest D (opened in C Aug 31 -> Feb 29) */
	due1(&cfg, "C", "2027-08-31T10:00:00Z", "2028-02-01T10:00:00Z", "2028-02-28T12:00:00Z", &a);
	assert_int_equal(a & FS_CW_ALERT_C_TO_D, 0);
	due1(&cfg, "C", "2027-08-31T10:00:00Z", "2028-02-01T10:00:00Z", "2028-02-29T12:00:00Z", &a);
	assert_int_equal(a & FS_CW_ALERT_C_TO_D, FS_CW_ALERT_C_TO_D);
}

static void due_dst(void **state)
{
	fs_cw_config cfg;
	fs_cw_due_item it;
	unsigned a;
	char d[11];

	(void)state;
	fs_cw_config_default(&cfg);
	snprintf(cfg.tz, sizeof(cfg.tz), "Europe/Berlin");
	/* Weekly A, contact 23:30 CET on Sunday Mar 22; clocks go forward on the
	 * 29th. Due from local midnight of the 29th (23:00 UTC on the 28th), not
	 * 7 * 86400 s later (22:30 UTC on the 29th, already the 30th locally). */
	it = due1(&cfg, "A", "2026-03-20T10:00:00Z", "2026-03-22T22:30:00Z", "2026-03-28T22:59:59Z",
	          &a);
	fs_cw_day_format(it.due_day, d);
	assert_string_equal(d, "2026-03-29");
	assert_int_equal(LVL(a), 0);
	assert_int_equal(it.days_since, 6);
	it = due1(&cfg, "A", "2026-03-20T10:00:00Z", "2026-03-22T22:30:00Z", "2026-03-28T23:00:00Z",
	          &a);
	assert_int_equal(LVL(a), FS_CW_ALERT_DUE);
	assert_int_equal(it.days_since, 7);
	/* 22:00 UTC on the 29th is already Monday the 30th in CEST: overdue */
	due1(&cfg, "A", "2026-03-20T10:00:00Z", "2026-03-22T22:30:00Z", "2026-03-29T22:00:00Z", &a);
	assert_int_equal(LVL(a), FS_CW_ALERT_OVERDUE);
	due1(&cfg, "A", "2026-03-20T10:00:00Z", "2026-03-22T22:30:00Z", "2026-03-29T21:59:59Z", &a);
	assert_int_equal(LVL(a), FS_CW_ALERT_DUE);

	/* New York, autumn: a contact at 23:30 EDT on Oct 30 is Oct 31 in UTC,
	 * but the agency's day is the 30th: due Nov 6, from 05:00 UTC (EST). */
	snprintf(cfg.tz, sizeof(cfg.tz), "America/New_York");
	it = due1(&cfg, "A", "2026-10-01T10:00:00Z", "2026-10-31T03:30:00Z", "2026-11-06T04:59:59Z",
	          &a);
	fs_cw_day_format(it.due_day, d);
	assert_string_equal(d, "2026-11-06");
	assert_int_equal(LVL(a), 0);
	due1(&cfg, "A", "2026-10-01T10:00:00Z", "2026-10-31T03:30:00Z", "2026-11-06T05:00:00Z", &a);
	assert_int_equal(LVL(a), FS_CW_ALERT_DUE);
	/* the same contact read in UTC would be a day later */
	snprintf(cfg.tz, sizeof(cfg.tz), "UTC");
	it = due1(&cfg, "A", "2026-10-01T10:00:00Z", "2026-10-31T03:30:00Z", "2026-11-06T05:00:00Z",
	          &a);
	fs_cw_day_format(it.due_day, d);
	assert_string_equal(d, "2026-11-07");
}

/* ---- records ---- */

static void rec_validate(void **state)
{
	static const char *const bad[] = {
	    "{\"tier\":\"A\",\"by\":\"w1\"}",                               /* no name */
	    "{\"name\":\"N\",\"by\":\"w1\"}",                               /* no tier */
	    "{\"name\":\"N\",\"tier\":\"E\",\"by\":\"w1\"}",                /* bad tier */
	    "{\"name\":\"\",\"tier\":\"A\",\"by\":\"w1\"}",                 /* empty name */
	    "{\"name\":\"a\\u0001b\",\"tier\":\"A\",\"by\":\"w1\"}",        /* control */
	    "{\"name\":\"N\",\"tier\":\"A\",\"by\":\"w 1\"}",               /* bad worker */
	    "{\"name\":\"N\",\"tier\":\"A\",\"by\":\"w1\",\"risk\":\"x\"}", /* bad risk */
	    "{\"name\":\"N\",\"tier\":\"A\",\"by\":\"w1\",\"opened\":\"2027-02-30T00:00:00Z\"}",
	    "{\"name\":\"N\",\"tier\":\"A\",\"by\":\"w1\",\"colour\":1}",   /* unknown */
	    "{\"name\":\"N\",\"name\":\"M\",\"tier\":\"A\",\"by\":\"w1\"}", /* twice */
	    "{\"name\":\"\xff\",\"tier\":\"A\",\"by\":\"w1\"}",             /* not UTF-8 */
	    "{\"name\":\"\xed\xa0\x80\",\"tier\":\"A\",\"by\":\"w1\"}",     /* surrogate */
	    "[1]",
	    "{\"name\":\"N\",\"tier\":\"A\",\"by\":\"w1\",\"tags\":[[[[[[[[[[1]]]]]]]]]]}",
	};
	fs_errbuf eb = {0};
	fs_cw_type t;
	char *p = NULL, big[400];
	size_t n = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int r = fs_cw_case_create(bad[i], strlen(bad[i]), DEV_A, 1000, &p, &n, &eb);

		if (r == FS_OK)
			fprintf(stderr, "accepted bad case %zu\n", i);
		assert_int_not_equal(r, FS_OK);
		assert_null(p);
		/* the message names no value */
		assert_null(strstr(eb.msg, "colour"));
	}
	memset(big, 'x', sizeof(big));
	snprintf(big, sizeof(big), "{\"name\":\"%0250d\",\"tier\":\"A\",\"by\":\"w1\"}", 0);
	assert_int_equal(fs_cw_case_create(big, strlen(big), DEV_A, 1000, &p, &n, &eb),
	                 FS_E_CW_INVALID);
	p = mkcase("{\"name\":\"Ana \xc3\xb1 \\\"Q\\\"\",\"alias\":\"A.\",\"tier\":\"A\","
	           "\"by\":\"w1\",\"tags\":[\"b\",\"a\",\"b\"],\"risk\":\"high\","
	           "\"assign\":[{\"worker\":\"w2\",\"role\":\"job coach\"},"
	           "{\"worker\":\"w1\",\"role\":\"social worker\"}]}",
	           T("2027-01-01T00:00:00Z") * 1000, &n);
	assert_int_equal(fs_cw_validate(p, n, &t, &eb), FS_OK);
	assert_int_equal(t, FS_CW_CASE);
	/* canonical: tags sorted and unique, assignments sorted */
	assert_non_null(strstr(p, "\"tags\":[\"a\",\"b\"]"));
	assert_true(strstr(p, "\"w1\"") < strstr(p, "\"w2\""));
	pfree(p, n);
	/* a newer format is named as such */
	{
		const char *v2 = "{\"type\":\"case\",\"v\":2}";

		assert_int_equal(fs_cw_validate(v2, strlen(v2), &t, &eb), FS_E_CW_VERSION);
	}
}

static void rec_visit_lifecycle(void **state)
{
	const char *f = "{\"case\":\"case1\",\"kind\":\"home\",\"start\":\"2027-03-01T09:00:00Z\","
	                "\"minutes\":45,\"worker\":\"w1\",\"note\":\"line 1\\nline 2\","
	                "\"followups\":[{\"action\":\"call school\",\"due\":\"2027-03-08\"}]}";
	const char *e = "{\"note\":\"corrected\",\"minutes\":50}";
	fs_identity *id = NULL;
	fs_errbuf eb = {0};
	char *d = NULL, *d2 = NULL, *fin = NULL, *x = NULL, *add = NULL;
	size_t dn, d2n, fn, xn, an;
	uint8_t pk[FS_CRYPTO_SIGN_PK_BYTES];
	fs_cw_type t;

	(void)state;
	assert_int_equal(fs_crypto_identity_new(&id, &eb), FS_OK);
	fs_crypto_identity_public(id, NULL, pk);
	assert_int_equal(fs_cw_visit_create(f, strlen(f), DEV_A, 1000, &d, &dn, &eb), FS_OK);
	assert_int_equal(fs_cw_verify(d, dn, NULL, &eb), FS_E_CW_UNSIGNED);
	assert_int_equal(fs_cw_visit_edit(d, dn, e, strlen(e), 2000, &d2, &d2n, &eb), FS_OK);
	assert_non_null(strstr(d2, "\"note\":\"corrected\""));
	assert_non_null(strstr(d2, "call school"));
	assert_int_equal(fs_cw_visit_finalize(d2, d2n, id, DEV_A, 3000, &fin, &fn, &eb), FS_OK);
	assert_int_equal(fs_cw_validate(fin, fn, &t, &eb), FS_OK);
	assert_int_equal(fs_cw_verify(fin, fn, NULL, &eb), FS_OK);
	assert_int_equal(fs_cw_verify(fin, fn, pk, &eb), FS_OK);
	/* immutable once final */
	assert_int_equal(fs_cw_visit_edit(fin, fn, e, strlen(e), 4000, &x, &xn, &eb),
	                 FS_E_CW_FINAL);
	assert_int_equal(fs_cw_visit_finalize(fin, fn, id, DEV_A, 4000, &x, &xn, &eb),
	                 FS_E_CW_FINAL);
	assert_null(x);
	/* an addendum: signed, linked, may close follow-ups of the visit only */
	{
		const char *af = "{\"worker\":\"w1\",\"note\":\"school called back\",\"done\":[0]}";
		const char *bf = "{\"worker\":\"w1\",\"note\":\"x\",\"done\":[1]}";

		assert_int_equal(fs_cw_addendum_create(d2, d2n, "visit1", af, strlen(af), id, DEV_A,
		                                       5000, &add, &an, &eb),
		                 FS_E_ARG); /* a draft takes no addendum */
		assert_int_equal(fs_cw_addendum_create(fin, fn, "visit1", bf, strlen(bf), id, DEV_A,
		                                       5000, &add, &an, &eb),
		                 FS_E_CW_INVALID);
		assert_int_equal(fs_cw_addendum_create(fin, fn, "visit1", af, strlen(af), id, DEV_A,
		                                       5000, &add, &an, &eb),
		                 FS_OK);
		assert_int_equal(fs_cw_validate(add, an, &t, &eb), FS_OK);
		assert_int_equal(t, FS_CW_ADDENDUM);
		assert_int_equal(fs_cw_verify(add, an, pk, &eb), FS_OK);
	}
	/* a signature for a visit is not one for an addendum: contexts differ */
	pfree(d, dn);
	pfree(d2, d2n);
	pfree(fin, fn);
	pfree(add, an);
	fs_crypto_identity_free(id);
}

/* Hostile input: random byte changes, cuts and insertions in valid records
 * never crash validation, merge or the index, and whatever is accepted
 * comes back out canonical and valid. */
static void rec_mutations(void **state)
{
	const char *vf = "{\"case\":\"c1\",\"kind\":\"home\",\"start\":\"2027-03-01T09:00:00Z\","
	                 "\"worker\":\"w1\",\"note\":\"n\\u00e9\",\"followups\":[{\"action\":\"a\","
	                 "\"due\":\"2027-03-05\"}]}";
	static const char alphabet[] = "{}[]\":,\\0123456789abcdefnulltrue\x01\xc3\xa9 ";
	fs_identity *id = NULL;
	fs_errbuf eb = {0};
	fs_cw_config cfg;
	fs_cw_index *idx = NULL;
	char *src[2], *d = NULL;
	size_t sn[2], dn;
	uint32_t seed = 12345;
	int accepted = 0, verified = 0;

	(void)state;
	fs_cw_config_default(&cfg);
	assert_int_equal(fs_cw_index_new(&cfg, &idx, &eb), FS_OK);
	assert_int_equal(fs_crypto_identity_new(&id, &eb), FS_OK);
	src[0] = mkcase("{\"name\":\"Base\",\"tier\":\"A\",\"by\":\"w0\",\"tags\":[\"t0\"],"
	                "\"assign\":[{\"worker\":\"w0\",\"role\":\"sw\"}]}",
	                1000, &sn[0]);
	assert_int_equal(fs_cw_visit_create(vf, strlen(vf), DEV_A, 1000, &d, &dn, &eb), FS_OK);
	assert_int_equal(fs_cw_visit_finalize(d, dn, id, DEV_A, 2000, &src[1], &sn[1], &eb), FS_OK);
	for (int i = 0; i < 4000; i++) {
		const char *s0 = src[i & 1];
		size_t n = sn[i & 1], m;
		char *buf = malloc(n + 8);
		fs_cw_type t;
		int edits;

		assert_non_null(buf);
		memcpy(buf, s0, n);
		m = n;
		seed = seed * 1103515245u + 12345u;
		edits = 1 + (int)((seed >> 16) % 3);
		for (int k = 0; k < edits; k++) {
			size_t at;

			seed = seed * 1103515245u + 12345u;
			at = (seed >> 8) % m;
			seed = seed * 1103515245u + 12345u;
			switch ((seed >> 16) % 3) {
			case 0:
				buf[at] = alphabet[(seed >> 4) % (sizeof(alphabet) - 1)];
				break;
			case 1:
				m = at > 0 ? at : 1; /* cut */
				break;
			default:
				if (m < n + 7) {
					memmove(buf + at + 1, buf + at, m - at);
					buf[at] = alphabet[(seed >> 4) % (sizeof(alphabet) - 1)];
					m++;
				}
			}
		}
		if (fs_cw_validate(buf, m, &t, &eb) == FS_OK) {
			const char *v[2] = {buf, s0};
			size_t l[2] = {m, n};
			char *o = NULL;
			size_t on = 0;

			if (fs_cw_merge(v, l, 2, &o, &on, &eb) == FS_OK) {
				assert_int_equal(fs_cw_validate(o, on, &t, &eb), FS_OK);
				pfree(o, on);
			}
			if (fs_cw_verify(buf, m, NULL, &eb) == FS_OK)
				verified++;
		}
		if (fs_cw_index_put(idx, i & 1 ? "v1" : "c1", buf, m, &eb) == FS_OK)
			accepted++;
		free(buf);
	}
	{
		fs_cw_due_list *l = NULL;

		assert_int_equal(fs_cw_due(idx, T("2027-03-20T00:00:00Z"), 1, &l, &eb), FS_OK);
		fs_cw_due_free(l);
	}
	/* most mutants are refused; a signed visit survives only changes that
	 * do not alter its canonical bytes (e.g. an escape spelled otherwise) */
	assert_true(accepted < 4000 / 4);
	assert_true(verified <= accepted);
	pfree(src[0], sn[0]);
	pfree(src[1], sn[1]);
	pfree(d, dn);
	fs_crypto_identity_free(id);
	fs_cw_index_free(idx);
}

/* ---- merge ---- */

/* Edit groups a device may make; A's and B's values differ. */
#define NF 8
static const char *const fa[NF] = {
    "\"name\":\"Name A\"",
    "\"alias\":\"Alias A\"",
    "\"risk\":\"high\"",
    "\"status\":\"closed\"",
    "\"needs_changed\":{\"on\":true,\"why\":\"A saw it\"}",
    "\"tags\":[\"a1\",\"shared\"]",
    "\"tier\":\"B\",\"by\":\"wa\",\"why\":\"calmer\"",
    "\"assign\":[{\"worker\":\"w0\",\"role\":\"social worker\",\"active\":false},"
    "{\"worker\":\"wa\",\"role\":\"job coach\"}]",
};
static const char *const fb[NF] = {
    "\"name\":\"Name B\"",
    "\"alias\":\"\"",
    "\"risk\":\"medium\"",
    "\"status\":\"open\"",
    "\"needs_changed\":{\"on\":false}",
    "\"tags\":[\"b1\"]",
    "\"tier\":\"C\",\"by\":\"wb\",\"why\":\"resources in place\"",
    "\"assign\":[{\"worker\":\"w0\",\"role\":\"social worker\",\"active\":true},"
    "{\"worker\":\"wb\",\"role\":\"vocational evaluator\"}]",
};
static const char *base_f = "{\"name\":\"Base\",\"alias\":\"B0\",\"tier\":\"A\",\"by\":\"w0\","
                            "\"why\":\"new case\",\"tags\":[\"t0\"],"
                            "\"assign\":[{\"worker\":\"w0\",\"role\":\"social worker\"}]}";

#define MS0 (T("2027-04-01T08:00:00Z") * 1000)

/* The fields one device edits in combination c (2 bits per group: bit 0 A, bit 1 B). */
static void fields_for(unsigned c, int b, char *out, size_t len)
{
	size_t n = 0;

	n += (size_t)snprintf(out + n, len - n, "{");
	for (int g = 0; g < NF; g++) {
		if (!((c >> (2 * g)) & (b ? 2u : 1u)))
			continue;
		n +=
		    (size_t)snprintf(out + n, len - n, "%s%s", n > 1 ? "," : "", b ? fb[g] : fa[g]);
	}
	snprintf(out + n, len - n, "}");
}

struct edits {
	char *base, *a, *b, *want;
	size_t nb, na, nbb, nw;
};

/* Base, A's leaf, B's leaf, and the expected merge: both edit sets applied
 * one after the other in clock order, which is what LWW per field and
 * unions must equal. */
static void make_edits(unsigned c, int64_t ta, int64_t tb, struct edits *e)
{
	char f[2048];
	const char *first_f, *first_dev, *second_dev;
	int64_t t1, t2;
	char f2[2048];
	char *mid;
	size_t nm;

	e->base = mkcase(base_f, MS0, &e->nb);
	fields_for(c, 0, f, sizeof(f));
	e->a = edit(e->base, e->nb, f, DEV_A, ta, &e->na);
	fields_for(c, 1, f2, sizeof(f2));
	e->b = edit(e->base, e->nb, f2, DEV_B, tb, &e->nbb);
	if (ta < tb) {
		first_f = f;
		first_dev = DEV_A;
		t1 = ta;
		second_dev = DEV_B;
		t2 = tb;
	} else {
		first_f = f2;
		first_dev = DEV_B;
		t1 = tb;
		second_dev = DEV_A;
		t2 = ta;
	}
	mid = edit(e->base, e->nb, first_f, first_dev, t1, &nm);
	e->want = edit(mid, nm, first_f == f ? f2 : f, second_dev, t2, &e->nw);
	pfree(mid, nm);
}

static void edits_free(struct edits *e)
{
	pfree(e->base, e->nb);
	pfree(e->a, e->na);
	pfree(e->b, e->nbb);
	pfree(e->want, e->nw);
}

/* A's (or B's) edits of the base for every subset of groups and both timings. */
struct leafset {
	char *p[1u << NF][2];
	size_t n[1u << NF][2];
};

static unsigned side(unsigned c, int b)
{
	unsigned m = 0;

	for (int g = 0; g < NF; g++)
		m |= ((c >> (2 * g + (b ? 1 : 0))) & 1u) << g;
	return m;
}

static unsigned unside(unsigned m, int b)
{
	unsigned c = 0;

	for (int g = 0; g < NF; g++)
		c |= ((m >> g) & 1u) << (2 * g + (b ? 1 : 0));
	return c;
}

static void merge_all_combinations(void **state)
{
	fs_errbuf eb = {0};
	unsigned ncomb = 1u << (2 * NF);
	struct leafset *la = calloc(1, sizeof(*la)), *lb = calloc(1, sizeof(*lb));
	char *base, f[2048];
	size_t nb;

	(void)state;
	assert_non_null(la);
	assert_non_null(lb);
	base = mkcase(base_f, MS0, &nb);
	/* timing 1: A edited 5 s after B; timing 0: B after A */
	for (unsigned m = 0; m < (1u << NF); m++)
		for (int t = 0; t < 2; t++) {
			fields_for(unside(m, 0), 0, f, sizeof(f));
			la->p[m][t] =
			    edit(base, nb, f, DEV_A, MS0 + 60000 + (t ? 5000 : 0), &la->n[m][t]);
			fields_for(unside(m, 1), 1, f, sizeof(f));
			lb->p[m][t] =
			    edit(base, nb, f, DEV_B, MS0 + 60000 + (t ? 0 : 5000), &lb->n[m][t]);
		}
	/* ctest checks every third of the 4^8 combinations (the stride is prime
	 * to 4, so every state of every group and every pair of groups occurs);
	 * FS_CW_EXHAUSTIVE=1 checks all 65,536 (about 45 s under ASan). */
	const char *ex = getenv("FS_CW_EXHAUSTIVE");
	unsigned step = ex && strcmp(ex, "1") == 0 ? 1 : 3;

	for (unsigned c = 0; c < ncomb; c += step) {
		int t = c & 1;
		unsigned ma = side(c, 0), mb = side(c, 1);
		const char *pa = la->p[ma][t], *pb = lb->p[mb][t];
		size_t na = la->n[ma][t], nbb = lb->n[mb][t];
		const char *ab[3] = {pa, pb, base}, *ba[2] = {pb, pa};
		size_t lab[3] = {na, nbb, nb}, lba[2] = {nbb, na};
		char *m1 = NULL, *m2 = NULL, *want;
		size_t n1, n2, nw;

		/* The oracle: the later device's edits applied on top of the
		 * earlier device's leaf, as if they had not been offline. */
		fields_for(c, t ? 0 : 1, f, sizeof(f));
		want = t ? edit(pb, nbb, f, DEV_A, MS0 + 65000, &nw)
		         : edit(pa, na, f, DEV_B, MS0 + 65000, &nw);
		/* the base as a third leaf changes nothing (older everywhere) */
		assert_int_equal(fs_cw_merge(ab, lab, c % 61 == 0 ? 3 : 2, &m1, &n1, &eb), FS_OK);
		assert_int_equal(fs_cw_merge(ba, lba, 2, &m2, &n2, &eb), FS_OK);
		if (n1 != nw || memcmp(m1, want, n1) != 0)
			fprintf(stderr, "combination %#x:\n got %s\nwant %s\n", c, m1, want);
		assert_int_equal(n1, nw);
		assert_memory_equal(m1, want, n1);
		assert_int_equal(n2, n1);
		assert_memory_equal(m2, m1, n1);
		pfree(m1, n1);
		pfree(m2, n2);
		pfree(want, nw);
	}
	for (unsigned m = 0; m < (1u << NF); m++)
		for (int t = 0; t < 2; t++) {
			pfree(la->p[m][t], la->n[m][t]);
			pfree(lb->p[m][t], lb->n[m][t]);
		}
	pfree(base, nb);
	free(la);
	free(lb);
}

static void merge_ties_and_visits(void **state)
{
	fs_errbuf eb = {0};
	struct edits e;
	const char *v[2];
	size_t l[2];
	char *m = NULL;
	size_t n;
	int64_t same = MS0 + 1000;

	(void)state;
	/* the same millisecond on both devices: the device id decides (dev-b > dev-a) */
	make_edits(0xffffu, same, same, &e);
	v[0] = e.a, l[0] = e.na, v[1] = e.b, l[1] = e.nbb;
	assert_int_equal(fs_cw_merge(v, l, 2, &m, &n, &eb), FS_OK);
	assert_non_null(strstr(m, "\"name\":\"Name B\""));
	assert_non_null(strstr(m, "\"risk\":\"medium\""));
	/* both tier events are kept: history is a union */
	assert_non_null(strstr(m, "calmer"));
	assert_non_null(strstr(m, "resources in place"));
	pfree(m, n);
	v[0] = e.b, l[0] = e.nbb, v[1] = e.a, l[1] = e.na;
	{
		char *m2 = NULL;
		size_t n2;

		assert_int_equal(fs_cw_merge(v, l, 2, &m, &n, &eb), FS_OK);
		v[0] = e.a, l[0] = e.na, v[1] = e.b, l[1] = e.nbb;
		assert_int_equal(fs_cw_merge(v, l, 2, &m2, &n2, &eb), FS_OK);
		assert_int_equal(n, n2);
		assert_memory_equal(m, m2, n);
		pfree(m2, n2);
	}
	pfree(m, n);
	edits_free(&e);

	/* two drafts of a visit are not merged; identical leaves are */
	{
		const char *f1 = "{\"case\":\"c1\",\"kind\":\"home\",\"start\":"
		                 "\"2027-03-01T09:00:00Z\",\"worker\":\"w1\",\"note\":\"one\"}";
		const char *f2 = "{\"note\":\"two\"}";
		char *d1, *d2;
		size_t n1, n2;

		assert_int_equal(fs_cw_visit_create(f1, strlen(f1), DEV_A, 1000, &d1, &n1, &eb),
		                 FS_OK);
		assert_int_equal(fs_cw_visit_edit(d1, n1, f2, strlen(f2), 2000, &d2, &n2, &eb),
		                 FS_OK);
		v[0] = d1, l[0] = n1, v[1] = d2, l[1] = n2;
		assert_int_equal(fs_cw_merge(v, l, 2, &m, &n, &eb), FS_E_CW_UNMERGEABLE);
		v[1] = d1, l[1] = n1;
		assert_int_equal(fs_cw_merge(v, l, 2, &m, &n, &eb), FS_OK);
		assert_int_equal(n, n1);
		pfree(m, n);
		/* a case and a visit under one id */
		e.base = mkcase(base_f, MS0, &e.nb);
		v[1] = e.base, l[1] = e.nb;
		assert_int_equal(fs_cw_merge(v, l, 2, &m, &n, &eb), FS_E_CW_UNMERGEABLE);
		pfree(e.base, e.nb);
		pfree(d1, n1);
		pfree(d2, n2);
	}
}

/* ---- two real stores ---- */

struct world {
	char dir[256];
	fs_store *sa, *sb;
	fs_space_key *k;
	fs_keyring *ring;
	char space[FS_CRYPTO_SPACE_ID_MAX];
};

static void world_open(struct world *w)
{
	fs_errbuf eb = {0};
	char p[512];
	const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";

	memset(w, 0, sizeof(*w));
	snprintf(w->dir, sizeof(w->dir), "%s/fs-casework-XXXXXX", base);
	assert_non_null(mkdtemp(w->dir));
	snprintf(p, sizeof(p), "%s/a.db", w->dir);
	assert_int_equal(fs_store_open(p, NULL, &w->sa, &eb), FS_OK);
	snprintf(p, sizeof(p), "%s/b.db", w->dir);
	assert_int_equal(fs_store_open(p, NULL, &w->sb, &eb), FS_OK);
	fs_crypto_space_id_new(w->space);
	assert_int_equal(fs_crypto_spacekey_new(w->space, 1, &w->k, &eb), FS_OK);
	assert_int_equal(fs_crypto_keyring_new(&w->ring, &eb), FS_OK);
	assert_int_equal(fs_crypto_keyring_add(w->ring, w->k, &eb), FS_OK);
}

static void world_close(struct world *w)
{
	DIR *d;
	struct dirent *e;
	char p[600];

	fs_store_close(w->sa);
	fs_store_close(w->sb);
	fs_crypto_keyring_free(w->ring);
	fs_crypto_spacekey_free(w->k);
	if ((d = opendir(w->dir)) != NULL) {
		while ((e = readdir(d)) != NULL) {
			if (e->d_name[0] == '.')
				continue;
			snprintf(p, sizeof(p), "%s/%s", w->dir, e->d_name);
			unlink(p);
		}
		closedir(d);
	}
	rmdir(w->dir);
}

static void put_plain(struct world *w, fs_store *st, const char *id, const char *base_rev,
                      const char *plain, size_t n, char rev[FS_REV_MAX])
{
	fs_errbuf eb = {0};
	char *env = NULL;
	size_t en;

	assert_int_equal(fs_crypto_env_seal(w->k, id, (const uint8_t *)plain, n, &env, &en, &eb),
	                 FS_OK);
	assert_int_equal(
	    fs_store_put_local(st, id, base_rev, (const uint8_t *)env, en, 0, rev, &eb), FS_OK);
	free(env);
}

/* The winner's plaintext (caller frees with pfree). */
static char *get_plain(struct world *w, fs_store *st, const char *id, size_t *n, char *rev)
{
	fs_errbuf eb = {0};
	fs_store_doc *d = NULL;
	uint8_t *p = NULL;

	assert_int_equal(fs_store_get(st, id, NULL, &d, &eb), FS_OK);
	assert_int_equal(fs_crypto_env_open(w->ring, w->space, id, (const char *)d->body,
	                                    d->body_len, &p, n, &eb),
	                 FS_OK);
	if (rev)
		memcpy(rev, d->rev, FS_REV_MAX);
	fs_store_doc_free(d);
	return (char *)p;
}

/* A minimal replicator: every leaf of every document of src, with its
 * history, into dst in one put_remote batch (as sync/ would). */
struct rep {
	fs_store *src;
	fs_store_rev_in *in;
	fs_store_doc **docs;
	fs_store_history **hs;
	size_t n, cap;
};

static int rep_cb(void *ctx, const fs_store_change *c)
{
	struct rep *r = ctx;
	fs_errbuf eb = {0};

	for (size_t i = 0; i < c->n_leaves; i++) {
		fs_store_doc *d = NULL;
		fs_store_history *h = NULL;

		if (r->n == r->cap) {
			r->cap = r->cap ? r->cap * 2 : 256;
			r->in = realloc(r->in, r->cap * sizeof(*r->in));
			r->docs = realloc(r->docs, r->cap * sizeof(*r->docs));
			r->hs = realloc(r->hs, r->cap * sizeof(*r->hs));
			assert_non_null(r->in);
			assert_non_null(r->docs);
			assert_non_null(r->hs);
		}
		assert_int_equal(fs_store_get(r->src, c->id, c->leaves[i].rev, &d, &eb), FS_OK);
		assert_int_equal(fs_store_history_get(r->src, c->id, c->leaves[i].rev, 0, &h, &eb),
		                 FS_OK);
		r->docs[r->n] = d;
		r->hs[r->n] = h;
		r->in[r->n] = (fs_store_rev_in){
		    d->id,   h->start,   (const char *const *)h->hashes, h->n, d->deleted,
		    d->body, d->body_len};
		r->n++;
	}
	return 0;
}

static void replicate(fs_store *src, fs_store *dst)
{
	struct rep r = {src, NULL, NULL, NULL, 0, 0};
	fs_errbuf eb = {0};

	assert_int_equal(fs_store_changes(src, 0, 0, rep_cb, &r, NULL, &eb), FS_OK);
	for (size_t off = 0; off < r.n; off += 50000) {
		size_t k = r.n - off < 50000 ? r.n - off : 50000;

		assert_int_equal(fs_store_put_remote(dst, r.in + off, k, NULL, NULL, &eb), FS_OK);
	}
	for (size_t i = 0; i < r.n; i++) {
		fs_store_doc_free(r.docs[i]);
		fs_store_history_free(r.hs[i]);
	}
	free(r.in);
	free(r.docs);
	free(r.hs);
}

static int count_cb(void *ctx, const fs_store_change *c)
{
	(void)c;
	(*(size_t *)ctx)++;
	return 0;
}

static size_t nconflicts(fs_store *st)
{
	fs_errbuf eb = {0};
	size_t n = 0;

	assert_int_equal(fs_store_conflicts(st, count_cb, &n, &eb), FS_OK);
	return n;
}

static void resolve(struct world *w, fs_store *st, size_t want_resolved)
{
	fs_errbuf eb = {0};
	fs_cw_conflicts *c = NULL;
	int r = fs_cw_resolve(st, w->ring, w->space, w->k, &c, &eb);

	if (r != FS_OK)
		fprintf(stderr, "resolve: %s\n", eb.msg);
	assert_int_equal(r, FS_OK);
	assert_int_equal(c->n, 0);
	if (want_resolved != (size_t)-1)
		assert_int_equal(c->n_resolved, want_resolved);
	fs_cw_conflicts_free(c);
}

/* Field groups exercised through real stores (all 4^5 combinations):
 * name, status, needs, tier, assignments; alias, risk and tags take the same
 * per-field path and are covered by merge_all_combinations. */
static const int store_groups[] = {0, 3, 4, 6, 7};
#define NSG 5

static unsigned spread(unsigned s)
{
	unsigned c = 0;

	for (int i = 0; i < NSG; i++)
		c |= ((s >> (2 * i)) & 3u) << (2 * store_groups[i]);
	return c;
}

static void merge_two_stores(void **state)
{
	struct world w;
	unsigned ncomb = 1u << (2 * NSG);
	struct edits *es = calloc(ncomb, sizeof(*es));
	char(*ids)[40] = calloc(ncomb, sizeof(*ids));
	char rev[FS_REV_MAX], ra[FS_REV_MAX], rb[FS_REV_MAX];
	size_t nconf = 0;

	(void)state;
	assert_non_null(es);
	assert_non_null(ids);
	world_open(&w);
	/* every document created on A and replicated to B */
	for (unsigned s = 0; s < ncomb; s++) {
		unsigned c = spread(s);
		int64_t ta = MS0 + 60000 + (s & 1 ? 5000 : 0),
		        tb = MS0 + 60000 + (s & 1 ? 0 : 5000);

		snprintf(ids[s], sizeof(ids[s]), "case%05u", s);
		make_edits(c, ta, tb, &es[s]);
		put_plain(&w, w.sa, ids[s], NULL, es[s].base, es[s].nb, rev);
	}
	replicate(w.sa, w.sb);
	/* offline: each device edits its copy (an empty edit set writes nothing) */
	for (unsigned s = 0; s < ncomb; s++) {
		unsigned c = spread(s);
		int ea = 0, eb2 = 0;

		for (int g = 0; g < NF; g++) {
			ea |= (c >> (2 * g)) & 1u;
			eb2 |= (c >> (2 * g + 1)) & 1u;
		}
		if (ea) {
			size_t n;
			char *p = get_plain(&w, w.sa, ids[s], &n, rev);

			pfree(p, n);
			put_plain(&w, w.sa, ids[s], rev, es[s].a, es[s].na, ra);
		}
		if (eb2) {
			size_t n;
			char *p = get_plain(&w, w.sb, ids[s], &n, rev);

			pfree(p, n);
			put_plain(&w, w.sb, ids[s], rev, es[s].b, es[s].nbb, rb);
		}
		nconf += ea && eb2;
	}
	/* sync both ways: both stores now list the same conflicts */
	replicate(w.sa, w.sb);
	replicate(w.sb, w.sa);
	assert_int_equal(nconflicts(w.sa), nconf);
	assert_int_equal(nconflicts(w.sb), nconf);
	/* order 1: A resolves, its merges reach B before B resolves anything */
	resolve(&w, w.sa, nconf);
	assert_int_equal(nconflicts(w.sa), 0);
	replicate(w.sa, w.sb);
	assert_int_equal(nconflicts(w.sb), 0);
	/* order 2, on fresh copies: both resolve on their own, then sync */
	replicate(w.sb, w.sa);
	for (unsigned s = 0; s < ncomb; s++) {
		size_t na, nb;
		char *pa = get_plain(&w, w.sa, ids[s], &na, ra);
		char *pb = get_plain(&w, w.sb, ids[s], &nb, rb);
		unsigned c = spread(s);
		int ea = 0, eb2 = 0;

		for (int g = 0; g < NF; g++) {
			ea |= (c >> (2 * g)) & 1u;
			eb2 |= (c >> (2 * g + 1)) & 1u;
		}
		assert_string_equal(ra, rb);
		assert_int_equal(na, nb);
		assert_memory_equal(pa, pb, na);
		/* where only one side edited, its leaf simply wins; where both did,
		 * the merge equals the edits applied in clock order */
		if (ea && eb2) {
			assert_int_equal(na, es[s].nw);
			assert_memory_equal(pa, es[s].want, na);
		} else if (ea || eb2) {
			assert_int_equal(na, ea ? es[s].na : es[s].nbb);
		}
		pfree(pa, na);
		pfree(pb, nb);
	}
	world_close(&w);

	/* order 2: independent resolution on both devices, then sync */
	world_open(&w);
	for (unsigned s = 0; s < ncomb; s += 7) {
		put_plain(&w, w.sa, ids[s], NULL, es[s].base, es[s].nb, rev);
	}
	replicate(w.sa, w.sb);
	nconf = 0;
	for (unsigned s = 0; s < ncomb; s += 7) {
		size_t n;
		char *p = get_plain(&w, w.sa, ids[s], &n, rev);

		pfree(p, n);
		put_plain(&w, w.sa, ids[s], rev, es[s].a, es[s].na, ra);
		put_plain(&w, w.sb, ids[s], rev, es[s].b, es[s].nbb, rb);
		nconf++;
	}
	replicate(w.sa, w.sb);
	replicate(w.sb, w.sa);
	resolve(&w, w.sb, nconf);
	resolve(&w, w.sa, nconf);
	replicate(w.sa, w.sb);
	replicate(w.sb, w.sa);
	/* the two merges have equal plaintext in different envelopes: one more
	 * round only tombstones, with the same revision ids on both sides */
	nconf = nconflicts(w.sa);
	assert_int_equal(nconflicts(w.sb), nconf);
	resolve(&w, w.sa, nconf);
	resolve(&w, w.sb, nconf);
	replicate(w.sa, w.sb);
	replicate(w.sb, w.sa);
	assert_int_equal(nconflicts(w.sa), 0);
	assert_int_equal(nconflicts(w.sb), 0);
	for (unsigned s = 0; s < ncomb; s += 7) {
		size_t na, nb;
		char *pa = get_plain(&w, w.sa, ids[s], &na, ra);
		char *pb = get_plain(&w, w.sb, ids[s], &nb, rb);

		assert_string_equal(ra, rb);
		assert_int_equal(na, es[s].nw);
		assert_memory_equal(pa, es[s].want, na);
		assert_int_equal(nb, na);
		assert_memory_equal(pb, pa, na);
		pfree(pa, na);
		pfree(pb, nb);
	}
	world_close(&w);
	for (unsigned s = 0; s < ncomb; s++)
		edits_free(&es[s]);
	free(es);
	free(ids);
}

/* Two drafts of one visit: listed, both kept, nothing written. */
static void merge_store_drafts_listed(void **state)
{
	const char *f1 = "{\"case\":\"c1\",\"kind\":\"home\",\"start\":\"2027-03-01T09:00:00Z\","
	                 "\"worker\":\"w1\",\"note\":\"first\"}";
	struct world w;
	fs_errbuf eb = {0};
	fs_cw_conflicts *c = NULL;
	fs_store_leaves *lv = NULL;
	char *d, *da, *db, rev[FS_REV_MAX], r2[FS_REV_MAX];
	size_t n, na, nb;

	(void)state;
	world_open(&w);
	assert_int_equal(fs_cw_visit_create(f1, strlen(f1), DEV_A, 1000, &d, &n, &eb), FS_OK);
	assert_int_equal(fs_cw_visit_edit(d, n, "{\"note\":\"a\"}", 12, 2000, &da, &na, &eb),
	                 FS_OK);
	assert_int_equal(fs_cw_visit_edit(d, n, "{\"note\":\"b\"}", 12, 2000, &db, &nb, &eb),
	                 FS_OK);
	put_plain(&w, w.sa, "visit1", NULL, d, n, rev);
	replicate(w.sa, w.sb);
	put_plain(&w, w.sa, "visit1", rev, da, na, r2);
	put_plain(&w, w.sb, "visit1", rev, db, nb, r2);
	replicate(w.sb, w.sa);
	assert_int_equal(fs_cw_resolve(w.sa, w.ring, w.space, w.k, &c, &eb), FS_OK);
	assert_int_equal(c->n, 1);
	assert_int_equal(c->n_resolved, 0);
	assert_string_equal(c->v[0].id, "visit1");
	assert_int_equal(c->v[0].type, FS_CW_VISIT);
	assert_int_equal(c->v[0].code, FS_E_CW_UNMERGEABLE);
	assert_int_equal(c->v[0].n_leaves, 2);
	{
		char *j = NULL;
		size_t jl = 0;

		assert_int_equal(fs_cw_conflicts_json(c, &j, &jl, &eb), FS_OK);
		assert_string_equal(j, "{\"resolved\":0,\"conflicts\":[{\"id\":\"visit1\","
		                       "\"type\":\"visit\",\"leaves\":2,\"error\":"
		                       "\"FS_E_CW_UNMERGEABLE\",\"reason\":\"conflicting versions "
		                       "need a person to choose\"}]}");
		free(j);
	}
	fs_cw_conflicts_free(c);
	assert_int_equal(fs_store_leaves_get(w.sa, "visit1", &lv, &eb), FS_OK);
	assert_int_equal(lv->n, 2);
	assert_false(lv->v[0].deleted || lv->v[1].deleted);
	fs_store_leaves_free(lv);
	pfree(d, n);
	pfree(da, na);
	pfree(db, nb);
	world_close(&w);
}

/* Records written through the daemon's generic API come wrapped as
 * {"type":T,"data":{record}}: indexed, merged and written back wrapped;
 * other types are ignored, not counted as problems. */
static char *wrap(const char *type, const char *rec, size_t n, size_t *out)
{
	size_t cap = n + 64;
	char *p = malloc(cap);

	assert_non_null(p);
	*out = (size_t)snprintf(p, cap, "{\"type\":\"%s\",\"data\":%.*s}", type, (int)n, rec);
	return p;
}

static void merge_store_wrapped(void **state)
{
	struct world w;
	struct edits e;
	fs_errbuf eb = {0};
	fs_cw_config cfg;
	fs_cw_index *idx = NULL;
	fs_cw_index_stats st;
	char rev[FS_REV_MAX], r2[FS_REV_MAX], *wb, *wa, *wbb, *p;
	size_t nwb, nwa, nwbb, n;
	const char *other = "{\"type\":\"note\",\"data\":{\"x\":1}}";

	(void)state;
	world_open(&w);
	make_edits(0xffffu, MS0 + 1000, MS0 + 2000, &e);
	wb = wrap("case", e.base, e.nb, &nwb);
	wa = wrap("case", e.a, e.na, &nwa);
	wbb = wrap("case", e.b, e.nbb, &nwbb);
	put_plain(&w, w.sa, "c1", NULL, wb, nwb, rev);
	put_plain(&w, w.sa, "n1", NULL, other, strlen(other), r2);
	replicate(w.sa, w.sb);
	put_plain(&w, w.sa, "c1", rev, wa, nwa, r2);
	put_plain(&w, w.sb, "c1", rev, wbb, nwbb, r2);
	replicate(w.sb, w.sa);
	resolve(&w, w.sa, 1);
	p = get_plain(&w, w.sa, "c1", &n, NULL);
	assert_true(strncmp(p, "{\"type\":\"case\",\"data\":{", 23) == 0);
	assert_int_equal(n, e.nw + 23);
	assert_memory_equal(p + 22, e.want, e.nw);
	pfree(p, n);
	/* A team document (signed plaintext, docs/team.md) is no record: not
	 * a problem for the index, not a conflict to resolve. */
	assert_int_equal(fs_store_put_local(w.sa, "fs:device:0123", NULL,
	                                    (const uint8_t *)"{\"fst\":1}", 9, 0, r2, &eb),
	                 FS_OK);
	resolve(&w, w.sa, 0);
	fs_cw_config_default(&cfg);
	assert_int_equal(fs_cw_index_new(&cfg, &idx, &eb), FS_OK);
	assert_int_equal(fs_cw_index_load(idx, w.sa, w.ring, w.space, &eb), FS_OK);
	fs_cw_index_stats_get(idx, &st);
	assert_int_equal(st.cases, 1);
	assert_int_equal(st.problems, 0);
	fs_cw_index_free(idx);
	free(wb);
	free(wa);
	free(wbb);
	edits_free(&e);
	world_close(&w);
}

/* ---- signatures ---- */

static void replace(char *s, const char *from, const char *to)
{
	char *p = strstr(s, from);

	assert_non_null(p);
	assert_int_equal(strlen(from), strlen(to));
	memcpy(p, to, strlen(to));
}

static void sig_tamper(void **state)
{
	const char *cf = "{\"name\":\"Client\",\"tier\":\"B\",\"by\":\"w1\","
	                 "\"opened\":\"2027-01-01T00:00:00Z\"}";
	const char *vf = "{\"case\":\"case1\",\"kind\":\"home\",\"start\":\"2027-03-01T09:00:00Z\","
	                 "\"worker\":\"w1\",\"note\":\"client is well\"}";
	struct world w;
	fs_errbuf eb = {0};
	fs_identity *id = NULL, *mallory = NULL;
	uint8_t pk[FS_CRYPTO_SIGN_PK_BYTES];
	fs_cw_index *idx = NULL;
	fs_cw_index_stats st;
	fs_cw_due_list *l = NULL;
	fs_cw_config cfg;
	char *c, *d, *fin, *p, rev[FS_REV_MAX], r2[FS_REV_MAX];
	size_t cn, dn, fn, n, left;

	(void)state;
	world_open(&w);
	fs_cw_config_default(&cfg);
	assert_int_equal(fs_crypto_identity_new(&id, &eb), FS_OK);
	assert_int_equal(fs_crypto_identity_new(&mallory, &eb), FS_OK);
	fs_crypto_identity_public(id, NULL, pk);
	c = mkcase(cf, T("2027-01-01T00:00:00Z") * 1000, &cn);
	put_plain(&w, w.sa, "case1", NULL, c, cn, rev);
	assert_int_equal(fs_cw_visit_create(vf, strlen(vf), DEV_A, 1000, &d, &dn, &eb), FS_OK);
	assert_int_equal(fs_cw_visit_finalize(d, dn, id, DEV_A, 2000, &fin, &fn, &eb), FS_OK);
	put_plain(&w, w.sa, "visit1", NULL, fin, fn, rev);

	assert_int_equal(fs_cw_index_new(&cfg, &idx, &eb), FS_OK);
	assert_int_equal(fs_cw_index_trust(idx, DEV_A, pk, &eb), FS_OK);
	assert_int_equal(fs_cw_index_load(idx, w.sa, w.ring, w.space, &eb), FS_OK);
	fs_cw_index_stats_get(idx, &st);
	assert_int_equal(st.sig_pending, 1);
	assert_int_equal(fs_cw_index_verify(idx, w.sa, w.ring, w.space, 0, &left, &eb), FS_OK);
	fs_cw_index_stats_get(idx, &st);
	assert_int_equal(st.sig_bad, 0);
	assert_int_equal(st.sig_pending, 0);

	/* someone with the space key opens the envelope, alters the note and
	 * seals it again: the envelope is valid, the signature is not */
	p = get_plain(&w, w.sa, "visit1", &n, rev);
	replace(p, "client is well", "client is sick");
	assert_int_equal(fs_cw_verify(p, n, NULL, &eb), FS_E_SIGNATURE);
	assert_int_equal(fs_cw_verify(p, n, pk, &eb), FS_E_SIGNATURE);
	put_plain(&w, w.sa, "visit1", rev, p, n, r2);
	pfree(p, n);
	assert_int_equal(fs_cw_index_load(idx, w.sa, w.ring, w.space, &eb), FS_OK);
	assert_int_equal(fs_cw_index_verify(idx, w.sa, w.ring, w.space, 0, &left, &eb), FS_OK);
	fs_cw_index_stats_get(idx, &st);
	assert_int_equal(st.sig_bad, 1);
	assert_int_equal(st.visits, 1); /* reported, still listed */
	assert_int_equal(fs_cw_due(idx, T("2027-03-02T00:00:00Z"), 0, &l, &eb), FS_OK);
	assert_int_equal(l->n, 1);
	assert_true(l->v[0].alerts & FS_CW_ALERT_SIG);
	{
		char why[256];

		fs_cw_due_reason(&l->v[0], why, sizeof(why));
		assert_non_null(strstr(why, "signature"));
	}
	fs_cw_due_free(l);

	/* the same change re-signed with another key and that key put in the
	 * record: intact, but not by the author device */
	{
		char *d2, *f2;
		size_t n2, m2;

		assert_int_equal(fs_cw_visit_create(vf, strlen(vf), DEV_A, 1000, &d2, &n2, &eb),
		                 FS_OK);
		assert_int_equal(fs_cw_visit_finalize(d2, n2, mallory, DEV_A, 2000, &f2, &m2, &eb),
		                 FS_OK);
		assert_int_equal(fs_cw_verify(f2, m2, NULL, &eb), FS_OK);
		assert_int_equal(fs_cw_verify(f2, m2, pk, &eb), FS_E_SIGNATURE);
		p = get_plain(&w, w.sa, "visit1", &n, rev);
		put_plain(&w, w.sa, "visit1", rev, f2, m2, r2);
		pfree(p, n);
		/* index_put verifies at once against the trusted key */
		assert_int_equal(fs_cw_index_put(idx, "visit1", f2, m2, &eb), FS_OK);
		fs_cw_index_stats_get(idx, &st);
		assert_int_equal(st.sig_bad, 1);
		pfree(d2, n2);
		pfree(f2, m2);
	}
	/* restoring the true text makes it verify again */
	assert_int_equal(fs_cw_index_put(idx, "visit1", fin, fn, &eb), FS_OK);
	fs_cw_index_stats_get(idx, &st);
	assert_int_equal(st.sig_bad, 0);

	fs_cw_index_free(idx);
	fs_crypto_identity_free(id);
	fs_crypto_identity_free(mallory);
	pfree(c, cn);
	pfree(d, dn);
	pfree(fin, fn);
	world_close(&w);
}

/* ---- index: due order, follow-ups, caseload, search, problems ---- */

static void put_case(fs_cw_index *idx, const char *id, const char *f, const char *opened)
{
	fs_errbuf eb = {0};
	size_t n;
	char *p = mkcase(f, T(opened) * 1000, &n);

	assert_int_equal(fs_cw_index_put(idx, id, p, n, &eb), FS_OK);
	pfree(p, n);
}

static void put_visit(fs_cw_index *idx, const char *id, const char *f)
{
	fs_errbuf eb = {0};
	char *p;
	size_t n;

	assert_int_equal(fs_cw_visit_create(f, strlen(f), DEV_A, 1000, &p, &n, &eb), FS_OK);
	assert_int_equal(fs_cw_index_put(idx, id, p, n, &eb), FS_OK);
	pfree(p, n);
}

static void index_due_caseload_find(void **state)
{
	fs_cw_config cfg;
	fs_cw_index *idx = NULL;
	fs_cw_due_list *l = NULL;
	fs_cw_caseload *cl = NULL;
	fs_cw_index_stats st;
	fs_errbuf eb = {0};
	const char **ids;
	size_t n;
	const char *open = "2027-01-01T00:00:00Z";

	(void)state;
	fs_cw_config_default(&cfg);
	assert_int_equal(fs_cw_index_new(&cfg, &idx, &eb), FS_OK);
	put_case(idx, "ca",
	         "{\"name\":\"Alma Ruiz\",\"tier\":\"A\",\"by\":\"w1\",\"assign\":"
	         "[{\"worker\":\"w1\",\"role\":\"social worker\"},"
	         "{\"worker\":\"w1\",\"role\":\"case manager\"},"
	         "{\"worker\":\"w2\",\"role\":\"job coach\"}]}",
	         "2027-03-01T00:00:00Z");
	put_case(idx, "cb",
	         "{\"name\":\"Bo\",\"alias\":\"Bobby\",\"tier\":\"B\",\"by\":\"w1\","
	         "\"tags\":[\"housing\"],\"assign\":[{\"worker\":\"w1\",\"role\":\"sw\"}]}",
	         open);
	put_case(idx, "cc",
	         "{\"name\":\"Cy\",\"tier\":\"C\",\"by\":\"w1\",\"assign\":"
	         "[{\"worker\":\"w1\",\"role\":\"sw\"}]}",
	         open);
	put_case(idx, "cd",
	         "{\"name\":\"Di\",\"tier\":\"D\",\"by\":\"w1\",\"assign\":"
	         "[{\"worker\":\"w1\",\"role\":\"sw\"}]}",
	         open);
	/* B seen on Mar 10, C on Mar 10 with a follow-up due Mar 12 */
	put_visit(idx, "v1",
	          "{\"case\":\"cb\",\"kind\":\"home\",\"start\":\"2027-03-10T10:00:00Z\","
	          "\"worker\":\"w1\"}");
	put_visit(idx, "v2",
	          "{\"case\":\"cc\",\"kind\":\"phone\",\"start\":\"2027-03-10T10:00:00Z\","
	          "\"worker\":\"w1\",\"followups\":[{\"action\":\"send form\","
	          "\"due\":\"2027-03-12\"}]}");
	/* a visit dated in the future is not a contact */
	put_visit(idx, "v3",
	          "{\"case\":\"ca\",\"kind\":\"home\",\"start\":\"2027-09-10T10:00:00Z\","
	          "\"worker\":\"w1\"}");
	assert_int_equal(fs_cw_due(idx, T("2027-03-20T12:00:00Z"), 0, &l, &eb), FS_OK);
	/* A opened Mar 1, no contact: overdue 12 days; C has a late follow-up */
	assert_int_equal(l->n, 2);
	assert_string_equal(l->v[0].id, "ca");
	assert_true(l->v[0].alerts & FS_CW_ALERT_OVERDUE);
	assert_int_equal(l->v[0].days_overdue, 12);
	assert_int_equal(l->v[0].days_since, 19);
	assert_string_equal(l->v[1].id, "cc");
	assert_int_equal(l->v[1].alerts, FS_CW_ALERT_FOLLOWUP);
	assert_int_equal(l->v[1].late_followups, 1);
	fs_cw_due_free(l);
	assert_int_equal(fs_cw_due(idx, T("2027-03-20T12:00:00Z"), 1, &l, &eb), FS_OK);
	assert_int_equal(l->n, 4);
	assert_string_equal(l->v[2].id, "cb"); /* no alert: tier order */
	assert_string_equal(l->v[3].id, "cd");
	fs_cw_due_free(l);

	/* the same as JSON for the local API */
	{
		char *j = NULL;
		size_t jl = 0;
		struct cJSON *root = NULL;

		assert_int_equal(fs_cw_due_json(idx, T("2027-03-20T12:00:00Z"), 0, &j, &jl, &eb),
		                 FS_OK);
		assert_int_equal(fs_json_parse(j, jl, jl, 8, &root, &eb), FS_OK);
		cJSON_Delete(root);
		assert_non_null(strstr(j, "{\"id\":\"ca\",\"name\":\"Alma Ruiz\",\"tier\":\"A\","
		                          "\"colour\":\"red\",\"alerts\":[\"overdue\"]"));
		assert_non_null(strstr(j, "\"reason\":\"overdue 12 days\""));
		assert_non_null(strstr(j, "\"due\":\"2027-03-08\""));
		fs_crypto_plain_free((uint8_t *)j, jl);
		assert_int_equal(fs_cw_caseload_json(idx, &j, &jl, &eb), FS_OK);
		assert_non_null(strstr(j, "{\"worker\":\"w1\",\"A\":1,\"B\":1,\"C\":1,\"D\":1,"
		                          "\"total\":4,\"weighted\":5.33,\"over\":false}"));
		fs_crypto_plain_free((uint8_t *)j, jl);
		assert_int_equal(fs_cw_find_json(idx, "alma", &j, &jl, &eb), FS_OK);
		assert_string_equal(j, "{\"cases\":[{\"id\":\"ca\",\"name\":\"Alma Ruiz\","
		                       "\"alias\":\"\",\"tier\":\"A\",\"status\":\"open\"}]}");
		fs_crypto_plain_free((uint8_t *)j, jl);
		assert_string_equal(fs_cw_tier_ansi(FS_CW_TIER_A), "\033[31m");
	}
	/* caseload: w1 carries A (once, despite two roles), B, C, D */
	assert_int_equal(fs_cw_caseload_get(idx, &cl, &eb), FS_OK);
	assert_int_equal(cl->n, 2);
	assert_string_equal(cl->v[0].worker, "w1");
	assert_int_equal(cl->v[0].total, 4);
	assert_int_equal(cl->v[0].count[FS_CW_TIER_A], 1);
	assert_true(cl->v[0].weighted > 5.333 && cl->v[0].weighted < 5.334);
	assert_false(cl->v[0].over);
	assert_string_equal(cl->v[1].worker, "w2");
	assert_true(cl->v[1].weighted == 4.0);
	fs_cw_caseload_free(cl);
	cfg.ceiling = 5.0;
	fs_cw_index_free(idx);
	assert_int_equal(fs_cw_index_new(&cfg, &idx, &eb), FS_OK);
	put_case(idx, "ca",
	         "{\"name\":\"A1\",\"tier\":\"A\",\"by\":\"w1\",\"assign\":"
	         "[{\"worker\":\"w1\",\"role\":\"sw\"}]}",
	         open);
	put_case(idx, "cb",
	         "{\"name\":\"B1\",\"tier\":\"B\",\"by\":\"w1\",\"assign\":"
	         "[{\"worker\":\"w1\",\"role\":\"sw\"}]}",
	         open);
	put_case(idx, "cx",
	         "{\"name\":\"B2\",\"tier\":\"B\",\"by\":\"w1\",\"assign\":"
	         "[{\"worker\":\"w1\",\"role\":\"sw\"}]}",
	         open);
	assert_int_equal(fs_cw_caseload_get(idx, &cl, &eb), FS_OK);
	assert_int_equal(cl->n, 1);
	assert_true(cl->v[0].over); /* 4 + 1 + 1 > 5 */
	fs_cw_caseload_free(cl);

	/* search: names, aliases, tags; case-insensitive */
	put_case(idx, "cy",
	         "{\"name\":\"Bo\",\"alias\":\"Bobby\",\"tier\":\"B\",\"by\":\"w1\","
	         "\"tags\":[\"Housing\"]}",
	         open);
	assert_int_equal(fs_cw_find(idx, "bob", &ids, &n, &eb), FS_OK);
	assert_int_equal(n, 1);
	assert_string_equal(ids[0], "cy");
	free(ids);
	assert_int_equal(fs_cw_find(idx, "HOUS", &ids, &n, &eb), FS_OK);
	assert_int_equal(n, 1);
	free(ids);
	assert_int_equal(fs_cw_find(idx, "b", &ids, &n, &eb), FS_OK);
	assert_int_equal(n, 3); /* B1, B2, Bo */
	assert_string_equal(ids[0], "cb");
	free(ids);
	/* a record that does not validate is a problem, counted */
	assert_int_equal(fs_cw_index_put(idx, "junk", "{\"type\":\"case\",\"v\":1}", 22, &eb),
	                 FS_E_CW_INVALID);
	fs_cw_index_stats_get(idx, &st);
	assert_int_equal(st.problems, 1);
	assert_int_equal(st.cases, 4);
	fs_cw_index_remove(idx, "junk");
	fs_cw_index_stats_get(idx, &st);
	assert_int_equal(st.problems, 0);
	fs_cw_index_free(idx);
}

/* The index over a real store: undecryptable documents are counted, deletions drop. */
static void index_store_load(void **state)
{
	struct world w;
	fs_cw_config cfg;
	fs_cw_index *idx = NULL;
	fs_cw_index_stats st;
	fs_errbuf eb = {0};
	char rev[FS_REV_MAX], r2[FS_REV_MAX], *c;
	size_t n;
	const char *junk = "{\"fs\":1,\"k\":\"1-00\",\"n\":\"AAAA\",\"c\":\"AAAA\"}";

	(void)state;
	world_open(&w);
	fs_cw_config_default(&cfg);
	c = mkcase("{\"name\":\"Z\",\"tier\":\"B\",\"by\":\"w1\"}", 1000, &n);
	put_plain(&w, w.sa, "c1", NULL, c, n, rev);
	put_plain(&w, w.sa, "c2", NULL, c, n, r2);
	assert_int_equal(
	    fs_store_put_local(w.sa, "bad", NULL, (const uint8_t *)junk, strlen(junk), 0, r2, &eb),
	    FS_OK);
	assert_int_equal(fs_cw_index_new(&cfg, &idx, &eb), FS_OK);
	assert_int_equal(fs_cw_index_load(idx, w.sa, w.ring, w.space, &eb), FS_OK);
	fs_cw_index_stats_get(idx, &st);
	assert_int_equal(st.cases, 2);
	assert_int_equal(st.problems, 1);
	assert_int_equal(fs_store_put_local(w.sa, "c1", rev, NULL, 0, 1, r2, &eb), FS_OK);
	assert_int_equal(fs_cw_index_load(idx, w.sa, w.ring, w.space, &eb), FS_OK);
	fs_cw_index_stats_get(idx, &st);
	assert_int_equal(st.cases, 1);
	pfree(c, n);
	fs_cw_index_free(idx);
	world_close(&w);
}

/* The sealed snapshot: restored as saved (signature states included), the
 * delta since loads on top, a damaged or foreign snapshot is refused. */
static void index_snapshot(void **state)
{
	const char *vf =
	    "{\"case\":\"c1\",\"kind\":\"home\",\"start\":\"2027-03-01T09:00:00Z\","
	    "\"worker\":\"w1\",\"followups\":[{\"action\":\"x\",\"due\":\"2027-03-05\"}]}";
	struct world w;
	fs_cw_config cfg;
	fs_cw_index *idx = NULL, *i2 = NULL;
	fs_cw_index_stats s1, s2;
	fs_cw_due_list *l1 = NULL, *l2 = NULL;
	fs_identity *id = NULL;
	fs_errbuf eb = {0};
	char rev[FS_REV_MAX], *c, *d, *fin;
	size_t n, dn, fn, left;
	fs_space_key *other = NULL;
	fs_keyring *oring = NULL;

	(void)state;
	world_open(&w);
	fs_cw_config_default(&cfg);
	assert_int_equal(fs_crypto_identity_new(&id, &eb), FS_OK);
	c = mkcase("{\"name\":\"Snap\",\"tier\":\"A\",\"by\":\"w1\",\"tags\":[\"x\"],"
	           "\"assign\":[{\"worker\":\"w1\",\"role\":\"sw\"}]}",
	           T("2027-02-01T00:00:00Z") * 1000, &n);
	put_plain(&w, w.sa, "c1", NULL, c, n, rev);
	assert_int_equal(fs_cw_visit_create(vf, strlen(vf), DEV_A, 1000, &d, &dn, &eb), FS_OK);
	assert_int_equal(fs_cw_visit_finalize(d, dn, id, DEV_A, 2000, &fin, &fn, &eb), FS_OK);
	put_plain(&w, w.sa, "v1", NULL, fin, fn, rev);
	assert_int_equal(
	    fs_store_put_local(w.sa, "junk", NULL, (const uint8_t *)"{}", 2, 0, rev, &eb), FS_OK);
	assert_int_equal(fs_cw_index_new(&cfg, &idx, &eb), FS_OK);
	assert_int_equal(fs_cw_index_load(idx, w.sa, w.ring, w.space, &eb), FS_OK);
	assert_int_equal(fs_cw_index_verify(idx, w.sa, w.ring, w.space, 0, &left, &eb), FS_OK);
	assert_int_equal(fs_cw_index_save(idx, w.sa, w.k, &eb), FS_OK);
	assert_int_equal(fs_cw_index_save(idx, w.sa, w.k, &eb), FS_OK); /* overwrites */
	fs_cw_index_stats_get(idx, &s1);

	assert_int_equal(fs_cw_index_new(&cfg, &i2, &eb), FS_OK);
	assert_int_equal(fs_cw_index_restore(i2, w.sa, w.ring, w.space, &eb), FS_OK);
	fs_cw_index_stats_get(i2, &s2);
	assert_memory_equal(&s1, &s2, sizeof(s1));
	assert_int_equal(s2.sig_pending, 0);
	assert_int_equal(s2.problems, 1);
	assert_int_equal(fs_cw_due(idx, T("2027-03-20T00:00:00Z"), 1, &l1, &eb), FS_OK);
	assert_int_equal(fs_cw_due(i2, T("2027-03-20T00:00:00Z"), 1, &l2, &eb), FS_OK);
	assert_int_equal(l1->n, 1);
	assert_int_equal(l2->n, 1);
	assert_int_equal(l1->v[0].alerts, l2->v[0].alerts);
	assert_int_equal(l1->v[0].late_followups, 1);
	assert_int_equal(l2->v[0].late_followups, 1);
	assert_int_equal(l1->v[0].last_contact, l2->v[0].last_contact);
	fs_cw_due_free(l1);
	fs_cw_due_free(l2);
	/* what changed after the snapshot comes from the store */
	put_plain(&w, w.sa, "c2", NULL, c, n, rev);
	assert_int_equal(fs_cw_index_restore(i2, w.sa, w.ring, w.space, &eb), FS_OK);
	assert_int_equal(fs_cw_index_load(i2, w.sa, w.ring, w.space, &eb), FS_OK);
	fs_cw_index_stats_get(i2, &s2);
	assert_int_equal(s2.cases, 2);
	assert_int_equal(s2.visits, 1);
	/* another space key cannot read it */
	assert_int_equal(fs_crypto_spacekey_new(w.space, 2, &other, &eb), FS_OK);
	assert_int_equal(fs_crypto_keyring_new(&oring, &eb), FS_OK);
	assert_int_equal(fs_crypto_keyring_add(oring, other, &eb), FS_OK);
	assert_int_equal(fs_cw_index_restore(i2, w.sa, oring, w.space, &eb), FS_E_NOTFOUND);
	fs_cw_index_stats_get(i2, &s2);
	assert_int_equal(s2.cases, 0);
	/* a chunk from another generation (a crash between writes) is refused */
	{
		char r0[FS_REV_MAX];
		uint8_t *old = NULL;
		size_t ol = 0;

		assert_int_equal(fs_store_local_get(w.sa, "cw-index.0", r0, &old, &ol, &eb), FS_OK);
		assert_int_equal(fs_cw_index_save(idx, w.sa, w.k, &eb), FS_OK);
		(void)r0;
		/* put the old chunk back under the new header */
		{
			uint8_t *cur = NULL;
			size_t cl = 0;

			assert_int_equal(
			    fs_store_local_get(w.sa, "cw-index.0", rev, &cur, &cl, &eb), FS_OK);
			free(cur);
			assert_int_equal(
			    fs_store_local_put(w.sa, "cw-index.0", rev, old, ol, NULL, &eb), FS_OK);
		}
		free(old);
		assert_int_equal(fs_cw_index_restore(i2, w.sa, w.ring, w.space, &eb),
		                 FS_E_NOTFOUND);
		fs_cw_index_stats_get(i2, &s2);
		assert_int_equal(s2.cases + s2.visits + s2.problems, 0);
	}
	fs_crypto_keyring_free(oring);
	fs_crypto_spacekey_free(other);
	fs_cw_index_free(idx);
	fs_cw_index_free(i2);
	fs_crypto_identity_free(id);
	pfree(c, n);
	pfree(d, dn);
	pfree(fin, fn);
	world_close(&w);
}

static void config_parse(void **state)
{
	const char *good = "{\"tz\":\"Europe/Berlin\",\"grace_days\":2,\"cadence\":{\"A\":\"14d\","
	                   "\"C\":\"2m\"},\"weights\":{\"C\":0.5},\"ceiling\":30}";
	const char *badtz = "{\"tz\":\"Nowhere/Land\"}";
	const char *badc = "{\"cadence\":{\"B\":\"1y\"}}";
	fs_cw_config c;
	fs_errbuf eb = {0};

	(void)state;
	assert_int_equal(fs_cw_config_parse(good, strlen(good), &c, &eb), FS_OK);
	assert_string_equal(c.tz, "Europe/Berlin");
	assert_int_equal(c.cadence[FS_CW_TIER_A].n, 14);
	assert_int_equal(c.cadence[FS_CW_TIER_B].unit, FS_CW_MONTHS);
	assert_int_equal(c.cadence[FS_CW_TIER_C].n, 2);
	assert_true(c.weight[FS_CW_TIER_C] == 0.5);
	assert_true(c.ceiling == 30.0);
	assert_int_equal(fs_cw_config_parse(badtz, strlen(badtz), &c, &eb), FS_E_CW_TZ);
	assert_int_equal(fs_cw_config_parse(badc, strlen(badc), &c, &eb), FS_E_CW_INVALID);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(time_calendar),
	    cmocka_unit_test(time_zones),
	    cmocka_unit_test(due_month_end_and_leap),
	    cmocka_unit_test(due_dst),
	    cmocka_unit_test(config_parse),
	    cmocka_unit_test(rec_validate),
	    cmocka_unit_test(rec_visit_lifecycle),
	    cmocka_unit_test(rec_mutations),
	    cmocka_unit_test(merge_ties_and_visits),
	    cmocka_unit_test(merge_all_combinations),
	    cmocka_unit_test(merge_two_stores),
	    cmocka_unit_test(merge_store_drafts_listed),
	    cmocka_unit_test(merge_store_wrapped),
	    cmocka_unit_test(sig_tamper),
	    cmocka_unit_test(index_due_caseload_find),
	    cmocka_unit_test(index_store_load),
	    cmocka_unit_test(index_snapshot),
	};

	if (fs_crypto_init() != FS_OK)
		return 1;
	unsetenv("TZ");
	if (argc > 1)
		cmocka_set_test_filter(argv[1]);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
