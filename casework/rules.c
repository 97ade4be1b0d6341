/*
 * casework/rules.c: the agency's calendar: UTC instants to days of the
 * agency's zone and back, calendar steps (days, months clamped at month
 * ends), and the configuration of cadence, grace, weights and ceiling.
 *
 * Zones come from the system tz database through glibc: TZ is switched to
 * the agency zone under a process-wide mutex for a whole batch of
 * conversions (localtime_r/mktime), then restored. Switching costs one read
 * of the zone file, so callers convert in batches (cw_local_days). A
 * program using this must not read local time from other threads while a
 * batch runs; fieldsyncd does not read local time at all.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "casework_int.h"

static pthread_mutex_t tz_lock = PTHREAD_MUTEX_INITIALIZER;

/* Howard Hinnant's days_from_civil: proleptic Gregorian, any year. */
int64_t cw_days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;

	return era * 146097 + (int64_t)doe - 719468;
}

void cw_civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
	z += 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	unsigned doe = (unsigned)(z - era * 146097);
	unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	unsigned mp = (5 * doy + 2) / 153;

	*d = doy - (153 * mp + 2) / 5 + 1;
	*m = mp < 10 ? mp + 3 : mp - 9;
	*y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static int leap(int64_t y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static unsigned mdays(int64_t y, unsigned m)
{
	static const unsigned n[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

	return m == 2 && leap(y) ? 29 : n[m - 1];
}

int64_t fs_cw_day_add_months(int64_t day, int n)
{
	int64_t y, mi;
	unsigned m, d;

	cw_civil_from_days(day, &y, &m, &d);
	mi = y * 12 + (m - 1) + n;
	y = mi >= 0 ? mi / 12 : (mi - 11) / 12;
	m = (unsigned)(mi - y * 12) + 1;
	if (d > mdays(y, m))
		d = mdays(y, m);
	return cw_days_from_civil(y, m, d);
}

static int digits(const char *s, int n, int *v)
{
	*v = 0;
	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		*v = *v * 10 + (s[i] - '0');
	}
	return 0;
}

/* "YYYY-MM-DD" at s; years 1900-9999 keep every instant well inside time_t. */
static int parse_date(const char *s, int64_t *day)
{
	int y, m, d;

	if (digits(s, 4, &y) || s[4] != '-' || digits(s + 5, 2, &m) || s[7] != '-' ||
	    digits(s + 8, 2, &d))
		return FS_E_INPUT;
	if (y < 1900 || m < 1 || m > 12 || d < 1 || (unsigned)d > mdays(y, (unsigned)m))
		return FS_E_INPUT;
	*day = cw_days_from_civil(y, (unsigned)m, (unsigned)d);
	return FS_OK;
}

int fs_cw_day_parse(const char *s, int64_t *day)
{
	int64_t d;

	*day = 0;
	if (s == NULL || strlen(s) != 10 || parse_date(s, &d) != FS_OK)
		return FS_E_INPUT;
	*day = d;
	return FS_OK;
}

void fs_cw_day_format(int64_t day, char out[11])
{
	int64_t y;
	unsigned m, d;

	char t[48];

	cw_civil_from_days(day, &y, &m, &d);
	/* Years outside 0-9999 cannot be written in this form: clamp. */
	y = y < 0 ? 0 : y > 9999 ? 9999 : y;
	snprintf(t, sizeof(t), "%04d-%02u-%02u", (int)y, m, d);
	memcpy(out, t, 10);
	out[10] = '\0';
}

int fs_cw_time_parse(const char *s, int64_t *out)
{
	int64_t day;
	int hh, mm, ss;

	*out = 0;
	if (s == NULL || strlen(s) != 20 || parse_date(s, &day) != FS_OK || s[10] != 'T' ||
	    digits(s + 11, 2, &hh) || s[13] != ':' || digits(s + 14, 2, &mm) || s[16] != ':' ||
	    digits(s + 17, 2, &ss) || s[19] != 'Z')
		return FS_E_INPUT;
	if (hh > 23 || mm > 59 || ss > 59)
		return FS_E_INPUT;
	*out = day * 86400 + hh * 3600 + mm * 60 + ss;
	return FS_OK;
}

void fs_cw_time_format(int64_t t, char out[21])
{
	int64_t day = t >= 0 ? t / 86400 : (t - 86399) / 86400;
	int64_t sec = t - day * 86400;
	char d[11], txt[64];

	fs_cw_day_format(day, d);
	snprintf(txt, sizeof(txt), "%sT%02d:%02d:%02dZ", d, (int)(sec / 3600), (int)(sec / 60 % 60),
	         (int)(sec % 60));
	memcpy(out, txt, 20);
	out[20] = '\0';
}

/* A zone name is a path under the tz database: no "..", no leading '/'. */
static int tz_name_ok(const char *tz)
{
	size_t n = strlen(tz);

	if (n == 0 || n > FS_CW_TZ_MAX || tz[0] == '/' || strstr(tz, "..") != NULL)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = tz[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '/' || c == '_' || c == '-' || c == '+'))
			return 0;
	}
	return 1;
}

int cw_tz_check(const char *tz, fs_errbuf *eb)
{
	static const char *const dirs[] = {"/usr/share/zoneinfo/", "/usr/lib/zoneinfo/",
	                                   "/usr/share/lib/zoneinfo/"};
	char path[256];
	const char *env = getenv("TZDIR");

	if (tz == NULL || !tz_name_ok(tz))
		return fs_err_set(eb, FS_E_CW_TZ, "time zone name is not valid");
	if (strcmp(tz, "UTC") == 0)
		return FS_OK;
	/* glibc silently falls back to UTC for an unknown zone: refuse it here. */
	if (env && *env) {
		snprintf(path, sizeof(path), "%s/%s", env, tz);
		if (access(path, R_OK) == 0)
			return FS_OK;
	}
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		snprintf(path, sizeof(path), "%s%s", dirs[i], tz);
		if (access(path, R_OK) == 0)
			return FS_OK;
	}
	return fs_err_set(eb, FS_E_CW_TZ, "time zone \"%s\" is not in the tz database", tz);
}

/* Holds tz_lock and TZ=tz on success; tz_leave restores. */
struct tzsave {
	char *old;
	int had;
};

static int tz_enter(const char *tz, struct tzsave *s, fs_errbuf *eb)
{
	const char *o;
	char val[FS_CW_TZ_MAX + 2];

	s->old = NULL;
	s->had = 0;
	pthread_mutex_lock(&tz_lock);
	o = getenv("TZ");
	if (o != NULL) {
		if ((s->old = strdup(o)) == NULL) {
			pthread_mutex_unlock(&tz_lock);
			return fs_err_set(eb, FS_E_NOMEM, "out of memory");
		}
		s->had = 1;
	}
	/* ":" says "a file of the tz database", never a POSIX rule string. */
	snprintf(val, sizeof(val), ":%s", tz);
	if (setenv("TZ", val, 1) != 0) {
		free(s->old);
		pthread_mutex_unlock(&tz_lock);
		return fs_err_set(eb, FS_E_NOMEM, "out of memory");
	}
	tzset();
	return FS_OK;
}

static void tz_leave(struct tzsave *s)
{
	if (s->had)
		setenv("TZ", s->old, 1);
	else
		unsetenv("TZ");
	tzset();
	free(s->old);
	pthread_mutex_unlock(&tz_lock);
}

int cw_local_days(const char *tz, const int64_t *t, int64_t *days, size_t n, fs_errbuf *eb)
{
	struct tzsave s;
	int r;

	if ((r = cw_tz_check(tz, eb)) != FS_OK)
		return r;
	if ((r = tz_enter(tz, &s, eb)) != FS_OK)
		return r;
	for (size_t i = 0; i < n; i++) {
		time_t tt = (time_t)t[i];
		struct tm tm;

		if (localtime_r(&tt, &tm) == NULL) {
			r = fs_err_set(eb, FS_E_ARG, "instant out of range");
			break;
		}
		days[i] = cw_days_from_civil((int64_t)tm.tm_year + 1900, (unsigned)tm.tm_mon + 1,
		                             (unsigned)tm.tm_mday);
	}
	tz_leave(&s);
	return r;
}

int fs_cw_local_day(const char *tz, int64_t t, int64_t *day, fs_errbuf *eb)
{
	int64_t d = 0; /* set on FS_OK; gcc -O2 cannot see through the loop */
	int r;

	*day = 0;
	if ((r = cw_local_days(tz, &t, &d, 1, eb)) == FS_OK)
		*day = d;
	return r;
}

int fs_cw_day_start(const char *tz, int64_t day, int64_t *t, fs_errbuf *eb)
{
	struct tzsave s;
	struct tm tm;
	int64_t y;
	unsigned m, d;
	time_t tt;
	int r;

	*t = 0;
	if ((r = cw_tz_check(tz, eb)) != FS_OK)
		return r;
	cw_civil_from_days(day, &y, &m, &d);
	if ((r = tz_enter(tz, &s, eb)) != FS_OK)
		return r;
	/*
	 * Try each hour from 00:00: the first one mktime maps back to this day
	 * at that hour exists. A zone that skips midnight (DST at 00:00) starts
	 * the day at 01:00. tm_isdst = -1 lets mktime pick the offset.
	 */
	r = fs_err_set(eb, FS_E_ARG, "day out of range");
	for (int h = 0; h < 24; h++) {
		memset(&tm, 0, sizeof(tm));
		tm.tm_year = (int)(y - 1900);
		tm.tm_mon = (int)m - 1;
		tm.tm_mday = (int)d;
		tm.tm_hour = h;
		tm.tm_isdst = -1;
		tt = mktime(&tm);
		if (tt == (time_t)-1)
			continue;
		if (tm.tm_mday == (int)d && tm.tm_hour == h) {
			*t = (int64_t)tt;
			r = FS_OK;
			fs_err_clear(eb);
			break;
		}
	}
	tz_leave(&s);
	return r;
}

void fs_cw_config_default(fs_cw_config *c)
{
	memset(c, 0, sizeof(*c));
	snprintf(c->tz, sizeof(c->tz), "UTC");
	c->cadence[FS_CW_TIER_A] = (fs_cw_cadence){FS_CW_DAYS, 7};
	c->cadence[FS_CW_TIER_B] = (fs_cw_cadence){FS_CW_MONTHS, 1};
	c->cadence[FS_CW_TIER_C] = (fs_cw_cadence){FS_CW_MONTHS, 3};
	c->cadence[FS_CW_TIER_D] = (fs_cw_cadence){FS_CW_NEVER, 0};
	c->grace_days = 0;
	c->a_review_months = 3;
	c->c_to_d_months = 6;
	c->weight[FS_CW_TIER_A] = 4.0;
	c->weight[FS_CW_TIER_B] = 1.0;
	c->weight[FS_CW_TIER_C] = 1.0 / 3.0;
	c->weight[FS_CW_TIER_D] = 0.0;
	c->ceiling = 40.0;
}

static int get_int(const cJSON *o, const char *k, int lo, int hi, int *v, fs_errbuf *eb)
{
	const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, k);

	if (j == NULL)
		return FS_OK;
	/* Range first: converting an out-of-range double to int is undefined. */
	if (!cJSON_IsNumber(j) || j->valuedouble < lo || j->valuedouble > hi ||
	    j->valuedouble != (double)(int)j->valuedouble)
		return fs_err_set(eb, FS_E_CW_INVALID, "config: \"%s\" must be an integer %d..%d",
		                  k, lo, hi);
	*v = j->valueint;
	return FS_OK;
}

/* "7d", "1m", "none". */
static int parse_cadence(const char *s, fs_cw_cadence *c)
{
	char *end;
	long n;

	if (strcmp(s, "none") == 0) {
		*c = (fs_cw_cadence){FS_CW_NEVER, 0};
		return 0;
	}
	errno = 0;
	n = strtol(s, &end, 10);
	if (errno || end == s || end[0] == '\0' || end[1] != '\0')
		return -1;
	if (end[0] == 'd' && n >= 1 && n <= 366)
		*c = (fs_cw_cadence){FS_CW_DAYS, (int)n};
	else if (end[0] == 'm' && n >= 1 && n <= 24)
		*c = (fs_cw_cadence){FS_CW_MONTHS, (int)n};
	else
		return -1;
	return 0;
}

int fs_cw_config_parse(const char *json, size_t len, fs_cw_config *c, fs_errbuf *eb)
{
	static const char tn[FS_CW_TIERS][2] = {"A", "B", "C", "D"};
	cJSON *root = NULL;
	const cJSON *j, *t;
	fs_cw_config n;
	int r;

	fs_cw_config_default(&n);
	if ((r = fs_json_parse(json, len, 64U << 10, FS_CW_JSON_DEPTH, &root, eb)) != FS_OK)
		goto out;
	r = fs_err_set(eb, FS_E_CW_INVALID, "config: not an object");
	if (!cJSON_IsObject(root))
		goto out;
	if ((j = cJSON_GetObjectItemCaseSensitive(root, "tz")) != NULL) {
		if (!cJSON_IsString(j) || strlen(j->valuestring) > FS_CW_TZ_MAX) {
			r = fs_err_set(eb, FS_E_CW_TZ, "config: \"tz\" must be a zone name");
			goto out;
		}
		if ((r = cw_tz_check(j->valuestring, eb)) != FS_OK)
			goto out;
		snprintf(n.tz, sizeof(n.tz), "%s", j->valuestring);
	}
	if ((r = get_int(root, "grace_days", 0, 366, &n.grace_days, eb)) != FS_OK ||
	    (r = get_int(root, "a_review_months", 1, 120, &n.a_review_months, eb)) != FS_OK ||
	    (r = get_int(root, "c_to_d_months", 1, 120, &n.c_to_d_months, eb)) != FS_OK)
		goto out;
	if ((j = cJSON_GetObjectItemCaseSensitive(root, "cadence")) != NULL) {
		for (int i = 0; i < FS_CW_TIERS; i++) {
			if ((t = cJSON_GetObjectItemCaseSensitive(j, tn[i])) == NULL)
				continue;
			if (!cJSON_IsString(t) || parse_cadence(t->valuestring, &n.cadence[i])) {
				r = fs_err_set(eb, FS_E_CW_INVALID,
				               "config: cadence of tier %s must be Nd, Nm or none",
				               tn[i]);
				goto out;
			}
		}
	}
	if ((j = cJSON_GetObjectItemCaseSensitive(root, "weights")) != NULL) {
		for (int i = 0; i < FS_CW_TIERS; i++) {
			if ((t = cJSON_GetObjectItemCaseSensitive(j, tn[i])) == NULL)
				continue;
			if (!cJSON_IsNumber(t) || !(t->valuedouble >= 0 && t->valuedouble <= 100)) {
				r = fs_err_set(eb, FS_E_CW_INVALID,
				               "config: weight of tier %s must be 0..100", tn[i]);
				goto out;
			}
			n.weight[i] = t->valuedouble;
		}
	}
	if ((j = cJSON_GetObjectItemCaseSensitive(root, "ceiling")) != NULL) {
		if (!cJSON_IsNumber(j) || !(j->valuedouble > 0 && j->valuedouble <= 10000)) {
			r = fs_err_set(eb, FS_E_CW_INVALID, "config: ceiling must be 0..10000");
			goto out;
		}
		n.ceiling = j->valuedouble;
	}
	*c = n;
	fs_err_clear(eb);
	r = FS_OK;
out:
	cJSON_Delete(root);
	return r;
}
