/*
 * tests/store/crash_writer.c: the process the crash harness kills. It makes
 * durable local edits and confirms outbox rows for ever, announcing each
 * step on stdout before ("E", "c", "P") and after ("A", "C", "Q") it is committed, so
 * the harness knows what was acknowledged and what was in flight.
 * Usage: store_crash_writer STORE SEED
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store.h"

#define DOCS             40
#define BATCH            5
#define PULL_BATCH       5
#define CRASH_REVS_LIMIT 8 /* the harness knows it too */

/* One line, one write(2): pipe writes under PIPE_BUF never interleave or tear. */
static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n <= 0 || (size_t)n >= sizeof(buf) || write(1, buf, (size_t)n) != n)
		exit(3);
}

static int edit(fs_store *st, unsigned *rs)
{
	char id[16], base[FS_REV_MAX] = "", rev[FS_REV_MAX];
	uint8_t body[3000];
	size_t len = 10 + (size_t)(rand_r(rs) % (int)(sizeof(body) - 10));
	fs_store_doc *d = NULL;
	fs_errbuf eb;
	int r, del = rand_r(rs) % 10 == 0;

	snprintf(id, sizeof(id), "d%d", rand_r(rs) % DOCS);
	for (size_t i = 0; i < len; i++)
		body[i] = (uint8_t)rand_r(rs);
	r = fs_store_get(st, id, NULL, &d, &eb);
	if (r == FS_OK && !d->deleted)
		snprintf(base, sizeof(base), "%s", d->rev);
	fs_store_doc_free(d);
	if (r != FS_OK && r != FS_E_NOTFOUND)
		return r;
	say("E %s\n", id);
	if ((r = fs_store_put_local(st, id, base[0] ? base : NULL, body, len, del, rev, &eb)) !=
	    FS_OK) {
		fprintf(stderr, "writer: put: %s\n", eb.msg);
		return r;
	}
	say("A %s %s\n", id, rev);
	return FS_OK;
}

static int confirm(fs_store *st, unsigned *rs)
{
	fs_store_outbox *o = NULL;
	int64_t oids[BATCH];
	size_t n;
	fs_errbuf eb;
	int r;

	if ((r = fs_store_outbox_read(st, 1 + (size_t)(rand_r(rs) % BATCH), SIZE_MAX, &o, &eb)) !=
	    FS_OK)
		return r;
	n = o->n;
	for (size_t i = 0; i < n; i++) {
		oids[i] = o->v[i].oid;
		say("c %lld %s %s\n", (long long)o->v[i].oid, o->v[i].id, o->v[i].rev);
	}
	fs_store_outbox_free(o);
	if (n == 0)
		return FS_OK;
	if ((r = fs_store_outbox_confirm(st, oids, n, &eb)) != FS_OK) {
		fprintf(stderr, "writer: confirm: %s\n", eb.msg);
		return r;
	}
	say("C\n");
	return FS_OK;
}

/* A pulled batch with its checkpoint: "P k" before, "Q k" after the commit. */
static int pull(fs_store *st, unsigned *rs)
{
	char *seq = NULL, ids[PULL_BATCH][32], seqs[24];
	const char *h[PULL_BATCH][1];
	fs_store_rev_in in[PULL_BATCH];
	uint8_t body[200];
	fs_errbuf eb;
	long k = 0;
	int r = fs_store_checkpoint_get(st, "srv", FS_STORE_PULL, &seq, &eb);

	if (r == FS_OK)
		k = strtol(seq, NULL, 10);
	free(seq);
	if (r != FS_OK && r != FS_E_NOTFOUND)
		return r;
	k++;
	for (size_t i = 0; i < sizeof(body); i++)
		body[i] = (uint8_t)rand_r(rs);
	for (int i = 0; i < PULL_BATCH; i++) {
		snprintf(ids[i], sizeof(ids[i]), "p%ld-%d", k, i);
		h[i][0] = "0123456789abcdef0123456789abcdef";
		in[i] = (fs_store_rev_in){.id = ids[i],
		                          .start = 1,
		                          .hashes = h[i],
		                          .n_hashes = 1,
		                          .body = body,
		                          .body_len = sizeof(body)};
	}
	snprintf(seqs, sizeof(seqs), "%ld", k);
	say("P %ld\n", k);
	if ((r = fs_store_put_remote(st, in, PULL_BATCH, "srv", seqs, &eb)) != FS_OK) {
		fprintf(stderr, "writer: put_remote: %s\n", eb.msg);
		return r;
	}
	say("Q %ld\n", k);
	return FS_OK;
}

int main(int argc, char **argv)
{
	fs_store *st = NULL;
	fs_errbuf eb;
	unsigned rs;

	if (argc != 3)
		return 2;
	rs = (unsigned)strtoul(argv[2], NULL, 10);
	/* A short revs_limit keeps the file small over 10,000 restarts and stems under fire. */
	fs_store_opts o = {.revs_limit = CRASH_REVS_LIMIT};
	if (fs_store_open(argv[1], &o, &st, &eb) != FS_OK) {
		fprintf(stderr, "writer: open: %s\n", eb.msg);
		return 1;
	}
	say("R\n");
	for (;;) {
		int op = rand_r(&rs) % 10;
		int r = op < 2 ? confirm(st, &rs) : op < 3 ? pull(st, &rs) : edit(st, &rs);
		if (r != FS_OK)
			break;
	}
	fs_store_close(st);
	return 1;
}
