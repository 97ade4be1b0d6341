/*
 * sync/backoff.c: when to try again after a failure. Exponential growth with
 * full jitter spreads a fleet of devices that all lost the network at once;
 * the state is three numbers so the daemon's loop and tests can drive it.
 */
#include "sync.h"

void fs_sync_backoff_init(fs_sync_backoff *b, uint32_t min_ms, uint32_t max_ms)
{
	b->min_ms = min_ms ? min_ms : FS_SYNC_BACKOFF_MIN_MS;
	b->max_ms = max_ms ? max_ms : FS_SYNC_BACKOFF_MAX_MS;
	if (b->max_ms < b->min_ms)
		b->max_ms = b->min_ms;
	b->failures = 0;
}

uint32_t fs_sync_backoff_fail(fs_sync_backoff *b, uint32_t rnd, long retry_after_s)
{
	uint64_t ceiling = b->min_ms, span, delay;

	if (b->failures < UINT32_MAX)
		b->failures++;
	/* min * 2^failures, stopping at max before it can overflow. */
	for (uint32_t i = 0; i < b->failures && ceiling < b->max_ms; i++)
		ceiling *= 2;
	if (ceiling > b->max_ms)
		ceiling = b->max_ms;
	span = ceiling - b->min_ms + 1;
	/* rnd * span / 2^32 maps rnd uniformly onto [0, span) without modulo bias. */
	delay = b->min_ms + (((uint64_t)rnd * span) >> 32);
	if (retry_after_s > 0) {
		if (retry_after_s > FS_SYNC_RETRY_AFTER_MAX_S)
			retry_after_s = FS_SYNC_RETRY_AFTER_MAX_S;
		if ((uint64_t)retry_after_s * 1000u > delay)
			delay = (uint64_t)retry_after_s * 1000u;
	}
	return (uint32_t)delay;
}

void fs_sync_backoff_reset(fs_sync_backoff *b)
{
	b->failures = 0;
}
