/*
 * daemon/log.c: fieldsyncd's log lines on stderr (journald reads them, with
 * syslog priority prefixes when it is the reader), clocks, and wiping cJSON
 * allocations, which hold record plaintext, when they are freed.
 */
#include "daemon_int.h"

#include <malloc.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static int log_level = FS_DAEMON_LOG_INFO;

void fsd_log_set_level(int level)
{
	log_level = level;
}

void fsd_log(int level, const char *fmt, ...)
{
	static const char *const names[] = {"error", "warn", "info", "debug"};
	static const int prio[] = {3, 4, 6, 7};
	char msg[1024];
	va_list ap;

	if (level > log_level || level < 0 || level > FS_DAEMON_LOG_DEBUG)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (getenv("JOURNAL_STREAM")) {
		fprintf(stderr, "<%d>%s\n", prio[level], msg);
	} else {
		struct timespec ts;
		struct tm tm;
		char t[32];
		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		strftime(t, sizeof(t), "%Y-%m-%dT%H:%M:%S", &tm);
		fprintf(stderr, "%s.%03ldZ fieldsyncd %s: %s\n", t, ts.tv_nsec / 1000000L,
		        names[level], msg);
	}
}

uint64_t fsd_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int64_t fsd_wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void *json_malloc(size_t n)
{
	return malloc(n);
}

static void json_free(void *p)
{
	if (p) {
		sodium_memzero(p, malloc_usable_size(p));
		free(p);
	}
}

void fsd_json_hooks(void)
{
	cJSON_Hooks h = {json_malloc, json_free};
	cJSON_InitHooks(&h);
}
