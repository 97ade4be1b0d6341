/*
 * tests/store/test_crash.c: the crash harness. It runs store_crash_writer,
 * SIGKILLs it at random moments (FS_CRASH_KILLS times, 200 by default),
 * and after each kill checks the store: every acknowledged edit is there,
 * the outbox holds exactly the unconfirmed latest edits, winners are the
 * last edits, the pull checkpoint and the batches it covers agree, and
 * PRAGMA integrity_check says ok.
 * Usage: test_store_crash WRITER   (FS_CRASH_SEED to replay a run)
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "store.h"
#include "util.h"

#define DOCS             40
#define PENDING_MAX      16
#define CRASH_REVS_LIMIT 8 /* as in crash_writer.c */

struct doc {
	int known;
	int confirmed;
	char last[FS_REV_MAX];
};

struct ack {
	int doc;
	char rev[FS_REV_MAX];
};

static struct doc docs[DOCS];
static struct ack *acks;
static size_t n_acks, cap_acks, checked_acks;
static int pending_edit = -1;
static struct {
	long long oid;
	int doc;
	char rev[FS_REV_MAX];
} pending[PENDING_MAX];
static int n_pending;
static int ready;
static long pulled, pull_pending; /* last acknowledged pull batch; one in flight */
static unsigned long long n_confirmed;

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "crash test FAILED: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	exit(1);
}

static int doc_index(const char *id)
{
	int i;

	if (id[0] != 'd' || (i = atoi(id + 1)) < 0 || i >= DOCS)
		die("unexpected document id %s", id);
	return i;
}

static void add_ack(int d, const char *rev)
{
	if (n_acks == cap_acks) {
		cap_acks = cap_acks ? cap_acks * 2 : 1024;
		if ((acks = realloc(acks, cap_acks * sizeof(*acks))) == NULL)
			die("out of memory");
	}
	acks[n_acks].doc = d;
	snprintf(acks[n_acks].rev, FS_REV_MAX, "%s", rev);
	n_acks++;
	docs[d].known = 1;
	docs[d].confirmed = 0;
	snprintf(docs[d].last, FS_REV_MAX, "%s", rev);
}

static void line(char *l)
{
	char id[64], rev[FS_REV_MAX];
	long long oid;

	if (strcmp(l, "R") == 0) {
		ready = 1;
	} else if (sscanf(l, "E %63s", id) == 1) {
		pending_edit = doc_index(id);
	} else if (sscanf(l, "A %63s %63s", id, rev) == 2) {
		add_ack(doc_index(id), rev);
		pending_edit = -1;
	} else if (sscanf(l, "c %lld %63s %63s", &oid, id, rev) == 3) {
		if (n_pending == PENDING_MAX)
			die("too many rows in one confirm");
		pending[n_pending].oid = oid;
		pending[n_pending].doc = doc_index(id);
		snprintf(pending[n_pending].rev, FS_REV_MAX, "%s", rev);
		n_pending++;
	} else if (sscanf(l, "P %ld", &pull_pending) == 1) {
		if (pull_pending != pulled + 1)
			die("writer pulls batch %ld after %ld", pull_pending, pulled);
	} else if (sscanf(l, "Q %ld", &pulled) == 1) {
		if (pulled != pull_pending)
			die("writer acknowledged batch %ld, not %ld", pulled, pull_pending);
		pull_pending = 0;
	} else if (strcmp(l, "C") == 0) {
		for (int i = 0; i < n_pending; i++) {
			struct doc *d = &docs[pending[i].doc];
			if (strcmp(d->last, pending[i].rev) != 0)
				die("writer confirmed %s, not the latest edit", pending[i].rev);
			d->confirmed = 1;
			n_confirmed++;
		}
		n_pending = 0;
	} else {
		die("writer said '%s'", l);
	}
}

/* Reads what is there (waiting at most ms) and handles complete lines; 0 at EOF. */
static int pump(int fd, int ms)
{
	static char buf[65536];
	static size_t have;
	struct pollfd p = {.fd = fd, .events = POLLIN};
	ssize_t n;
	char *nl;

	if (poll(&p, 1, ms) <= 0)
		return 1;
	n = read(fd, buf + have, sizeof(buf) - have - 1);
	if (n < 0)
		return errno == EINTR ? 1 : 0;
	if (n == 0) {
		have = 0; /* a torn last line cannot happen: each line is one write */
		return 0;
	}
	have += (size_t)n;
	buf[have] = '\0';
	char *s = buf;
	while ((nl = strchr(s, '\n')) != NULL) {
		*nl = '\0';
		line(s);
		s = nl + 1;
	}
	have = (size_t)(buf + have - s);
	memmove(buf, s, have);
	return 1;
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int contains(const fs_store_history *h, const char *rev)
{
	unsigned long gen = strtoul(rev, NULL, 10);
	const char *hash = strchr(rev, '-') + 1;

	if (gen > h->start || h->start - gen >= h->n)
		return 0;
	return strcmp(h->hashes[h->start - gen], hash) == 0;
}

static void verify(const char *path, int full)
{
	fs_store *st = NULL;
	fs_store_outbox *o = NULL;
	fs_store_doc *d = NULL;
	fs_errbuf eb;
	size_t want = 0;
	char id[16];

	if (fs_store_open(path, NULL, &st, &eb) != FS_OK) {
		if (n_acks == 0 && pending_edit < 0)
			return; /* killed before the store was ever made: fine if nothing was said
			         */
		die("reopen: %s", eb.msg);
	}
	/* The edit in flight at the kill either committed (adopt it) or left nothing. */
	if (pending_edit >= 0) {
		struct doc *dd = &docs[pending_edit];
		snprintf(id, sizeof(id), "d%d", pending_edit);
		int r = fs_store_get(st, id, NULL, &d, &eb);
		if (r == FS_OK && (!dd->known || strcmp(d->rev, dd->last) != 0)) {
			fs_store_history *h = NULL;
			if (dd->known) {
				if (fs_store_history_get(st, id, d->rev, 0, &h, &eb) != FS_OK ||
				    !contains(h, dd->last))
					die("%s: unacknowledged %s does not descend from %s", id,
					    d->rev, dd->last);
				fs_store_history_free(h);
			}
			add_ack(pending_edit, d->rev);
		} else if (r != FS_OK && (r != FS_E_NOTFOUND || dd->known)) {
			die("%s: get: %s", id, eb.msg);
		}
		fs_store_doc_free(d);
		d = NULL;
		pending_edit = -1;
	}
	if (fs_store_outbox_read(st, 1000000, SIZE_MAX, &o, &eb) != FS_OK)
		die("outbox: %s", eb.msg);
	/* A confirm in flight is all or nothing. */
	if (n_pending) {
		int present = 0;
		for (int i = 0; i < n_pending; i++)
			for (size_t j = 0; j < o->n; j++)
				if (o->v[j].oid == pending[i].oid)
					present++;
		if (present != 0 && present != n_pending)
			die("a confirm was half done (%d of %d rows left)", present, n_pending);
		if (present == 0) {
			for (int i = 0; i < n_pending; i++)
				docs[pending[i].doc].confirmed = 1;
			n_confirmed += (unsigned long long)n_pending;
		}
		n_pending = 0;
	}
	for (size_t j = 0; j < o->n; j++) {
		struct doc *dd = &docs[doc_index(o->v[j].id)];
		if (!dd->known || dd->confirmed || strcmp(dd->last, o->v[j].rev) != 0)
			die("outbox row %s %s is not an unconfirmed latest edit", o->v[j].id,
			    o->v[j].rev);
	}
	for (int i = 0; i < DOCS; i++) {
		if (!docs[i].known)
			continue;
		want += !docs[i].confirmed;
		snprintf(id, sizeof(id), "d%d", i);
		if (fs_store_get(st, id, NULL, &d, &eb) != FS_OK ||
		    strcmp(d->rev, docs[i].last) != 0)
			die("%s: winner is not the last acknowledged edit %s", id, docs[i].last);
		fs_store_doc_free(d);
		d = NULL;
	}
	if (o->n != want)
		die("outbox holds %zu rows, %zu unconfirmed edits expected", o->n, want);
	fs_store_outbox_free(o);
	/* Every acknowledged edit is there, unless stemming took it: revs_limit behind the last. */
	for (size_t i = full ? 0 : checked_acks; i < n_acks; i++) {
		unsigned long g = strtoul(acks[i].rev, NULL, 10);
		unsigned long last = strtoul(docs[acks[i].doc].last, NULL, 10);
		snprintf(id, sizeof(id), "d%d", acks[i].doc);
		if (fs_store_get(st, id, acks[i].rev, &d, &eb) != FS_OK &&
		    g + CRASH_REVS_LIMIT > last)
			die("acknowledged %s %s is lost: %s", id, acks[i].rev, eb.msg);
		fs_store_doc_free(d);
		d = NULL;
	}
	/* And the last edit of each document still has its full window of history. */
	for (int i = 0; i < DOCS; i++) {
		fs_store_history *h = NULL;
		unsigned long last;
		if (!docs[i].known)
			continue;
		last = strtoul(docs[i].last, NULL, 10);
		snprintf(id, sizeof(id), "d%d", i);
		if (fs_store_history_get(st, id, docs[i].last, 0, &h, &eb) != FS_OK)
			die("%s: history: %s", id, eb.msg);
		if (h->n != (last < CRASH_REVS_LIMIT ? last : CRASH_REVS_LIMIT))
			die("%s: history of %zu revisions for generation %lu", id, h->n, last);
		fs_store_history_free(h);
	}
	checked_acks = n_acks;
	/* The pull checkpoint and the batches it covers move together. */
	char *seq = NULL;
	long ck = 0;
	int r = fs_store_checkpoint_get(st, "srv", FS_STORE_PULL, &seq, &eb);
	if (r == FS_OK)
		ck = strtol(seq, NULL, 10);
	else if (r != FS_E_NOTFOUND)
		die("checkpoint: %s", eb.msg);
	free(seq);
	if (ck != pulled && !(pull_pending && ck == pull_pending))
		die("pull checkpoint %ld, acknowledged %ld", ck, pulled);
	pulled = ck;
	pull_pending = 0;
	for (long k = full ? 1 : (ck > 2 ? ck - 1 : 1); k <= ck + 1; k++)
		for (int i = 0; i < 5; i++) {
			char pid[48];
			snprintf(pid, sizeof(pid), "p%ld-%d", k, i);
			r = fs_store_get(st, pid, NULL, &d, &eb);
			fs_store_doc_free(d);
			d = NULL;
			if ((k <= ck) != (r == FS_OK))
				die("pulled batch %ld and checkpoint %ld disagree on %s", k, ck,
				    pid);
		}
	if (fs_store_check(st, &eb) != FS_OK)
		die("integrity: %s", eb.msg);
	fs_store_close(st);
}

int main(int argc, char **argv)
{
	const char *env = getenv("FS_CRASH_KILLS");
	long kills = env ? strtol(env, NULL, 10) : 200;
	const char *senv = getenv("FS_CRASH_SEED");
	unsigned seed =
	    senv ? (unsigned)strtoul(senv, NULL, 10) : (unsigned)time(NULL) ^ (unsigned)getpid();
	char *dir = tdir_new(), *path;
	double t0 = now_ms();
	long early = 0;

	if (argc != 2 || dir == NULL || kills < 1)
		return 2;
	path = tpath(dir, "crash.db");
	printf("crash test: %ld kills, FS_CRASH_SEED=%u\n", kills, seed);
	fflush(stdout);
	srand(seed);
	for (long k = 0; k < kills; k++) {
		int fds[2], status;
		char sarg[32];
		pid_t pid;

		if (pipe(fds) != 0)
			die("pipe");
		snprintf(sarg, sizeof(sarg), "%u", (unsigned)rand());
		if ((pid = fork()) < 0)
			die("fork");
		if (pid == 0) {
			dup2(fds[1], 1);
			close(fds[0]);
			close(fds[1]);
			execl(argv[1], argv[1], path, sarg, (char *)NULL);
			_exit(127);
		}
		close(fds[1]);
		ready = 0;
		/* Most kills land in the edit loop; some during start-up and creation. */
		int before_ready = rand() % 10 == 0;
		double wait = before_ready ? rand() % 30 : 1 + rand() % 25;
		double start = now_ms(), deadline = 0;
		int alive = 1;
		while (alive) {
			double t = now_ms();
			if (!before_ready && ready && deadline == 0)
				deadline = t + wait;
			if (before_ready && deadline == 0)
				deadline = start + wait;
			if (deadline && t >= deadline)
				break;
			if (t - start > 10000)
				die("writer did not start");
			alive = pump(fds[0], deadline ? (int)(deadline - t) + 1 : 50);
		}
		if (!alive)
			die("writer exited by itself");
		if (!ready)
			early++;
		kill(pid, SIGKILL);
		if (waitpid(pid, &status, 0) != pid || !WIFSIGNALED(status))
			die("writer did not die by SIGKILL");
		while (pump(fds[0], 1000))
			;
		close(fds[0]);
		verify(path, k == kills - 1);
		if ((k + 1) % 1000 == 0 && k + 1 < kills) {
			printf("crash test: %ld kills, %.0f s\n", k + 1, (now_ms() - t0) / 1e3);
			fflush(stdout);
		}
	}
	printf(
	    "crash test: ok: %ld kills (%ld before ready), %zu acknowledged edits, %llu confirmed "
	    "rows, %ld pulled batches, %.1f s\n",
	    kills, early, n_acks, n_confirmed, pulled, (now_ms() - t0) / 1e3);
	free(acks);
	free(path);
	tdir_free(dir);
	return 0;
}
