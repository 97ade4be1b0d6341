/*
 * bench/casework/bench_casework.c: casework/ over a real store of 1,000
 * cases and 50,000 visits (finalized and signed, sealed in envelopes), side
 * by side with the floor, reading and decrypting every winning envelope:
 * unlock to the first `due` answer (key file with the default Argon2id
 * cost, space key unwrap, index load, due), the load and `due` alone, and
 * the deferred signature check. Targets: unlock-to-due < 1 s, due < 50 ms.
 * Usage: bench_casework [--quick] [DIR]   (default $TMPDIR or /tmp)
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "casework.h"

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, const fs_errbuf *eb)
{
	fprintf(stderr, "bench_casework: %s: %s\n", what, eb ? eb->msg : "");
	exit(1);
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

struct floorctx {
	fs_store *st;
	const fs_keyring *ring;
	const char *space;
	size_t n, bytes;
};

static int floor_cb(void *ctx, const fs_store_change *c)
{
	struct floorctx *f = ctx;
	fs_store_doc *d = NULL;
	uint8_t *p = NULL;
	size_t pl = 0;
	fs_errbuf eb = {0};

	if (fs_store_get(f->st, c->id, c->winner, &d, &eb) != FS_OK)
		die("floor get", &eb);
	if (fs_crypto_env_open(f->ring, f->space, c->id, (const char *)d->body, d->body_len, &p,
	                       &pl, &eb) != FS_OK)
		die("floor open", &eb);
	f->n++;
	f->bytes += pl;
	fs_crypto_plain_free(p, pl);
	fs_store_doc_free(d);
	return 0;
}

int main(int argc, char **argv)
{
	int quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
	const char *dir = argc > 1 + quick ? argv[1 + quick] : getenv("TMPDIR");
	size_t ncases = quick ? 50 : 1000, per = 50, nvis = ncases * per;
	char path[600], tdir[512], space[FS_CRYPTO_SPACE_ID_MAX];
	fs_errbuf eb = {0};
	fs_store *st = NULL;
	fs_space_key *k = NULL, *k2 = NULL;
	fs_keyring *ring = NULL;
	fs_identity *id = NULL;
	fs_key *master = NULL;
	fs_kdf_params kp = {FS_CRYPTO_KDF_OPS_DEFAULT, FS_CRYPTO_KDF_MEM_DEFAULT};
	uint8_t kf[FS_CRYPTO_KEYFILE_BYTES], wrapped[FS_CRYPTO_SPACEKEY_WRAPPED_MAX];
	uint8_t pk[FS_CRYPTO_SIGN_PK_BYTES];
	size_t wlen = 0;
	fs_store_rev_in *in;
	char **envs, (*ids)[40], (*hashes)[FS_REV_MAX];
	const char **hp;
	fs_cw_config cfg;
	int64_t t0 = 1798761600; /* 2027-01-01T00:00:00Z */
	double t, t_kdf, t_floor, t_load, t_due1, t_verify, dues[21];
	const char *pass = "correct horse battery staple";

	if (dir == NULL || *dir == '\0')
		dir = "/tmp";
	if (quick)
		kp = fs_crypto_kdf_params_min();
	if (fs_crypto_init() != FS_OK)
		die("init", NULL);
	snprintf(tdir, sizeof(tdir), "%s/fs-bench-cw-XXXXXX", dir);
	if (mkdtemp(tdir) == NULL)
		die("mkdtemp", NULL);
	snprintf(path, sizeof(path), "%s/store.db", tdir);
	if (fs_store_open(path, NULL, &st, &eb) != FS_OK)
		die("open", &eb);
	fs_crypto_space_id_new(space);
	if (fs_crypto_keyfile_create(pass, strlen(pass), &kp, kf, &master, &eb) != FS_OK ||
	    fs_crypto_spacekey_new(space, 1, &k, &eb) != FS_OK ||
	    fs_crypto_spacekey_wrap(k, master, wrapped, &wlen, &eb) != FS_OK ||
	    fs_crypto_keyring_new(&ring, &eb) != FS_OK || fs_crypto_keyring_add(ring, k, &eb) ||
	    fs_crypto_identity_new(&id, &eb) != FS_OK)
		die("keys", &eb);
	fs_crypto_key_free(master);
	master = NULL;
	fs_crypto_identity_public(id, NULL, pk);

	/* The data set: cases of mixed tiers, each with `per` finalized visits
	 * spread over the past year, written in one batch (as a pull would). */
	printf("building %zu cases and %zu finalized visits...\n", ncases, nvis);
	in = calloc(ncases + nvis, sizeof(*in));
	envs = calloc(ncases + nvis, sizeof(*envs));
	ids = calloc(ncases + nvis, sizeof(*ids));
	hashes = calloc(ncases + nvis, sizeof(*hashes));
	hp = calloc(ncases + nvis, sizeof(*hp));
	if (!in || !envs || !ids || !hashes || !hp)
		die("calloc", NULL);
	t = now();
	for (size_t i = 0; i < ncases + nvis; i++) {
		char f[1024], *p = NULL, *fin = NULL;
		size_t n = 0, fn = 0, el = 0;
		int64_t ms;

		if (i < ncases) {
			static const char tiers[] = "AABBBBCCCD";

			snprintf(f, sizeof(f),
			         "{\"name\":\"Client %zu\",\"alias\":\"C%zu\",\"tier\":\"%c\","
			         "\"by\":\"w%zu\",\"tags\":[\"t%zu\",\"district-%zu\"],\"risk\":"
			         "\"medium\","
			         "\"opened\":\"2026-0%zu-15T10:00:00Z\",\"assign\":[{\"worker\":"
			         "\"w%zu\","
			         "\"role\":\"social worker\"},{\"worker\":\"jc%zu\",\"role\":\"job "
			         "coach\"}]}",
			         i, i, tiers[i % 10], i % 20, i % 7, i % 12, 1 + i % 9, i % 20,
			         i % 5);
			if (fs_cw_case_create(f, strlen(f), "dev-1", (t0 - 86400 * 200) * 1000, &p,
			                      &n, &eb) != FS_OK)
				die("case", &eb);
			snprintf(ids[i], sizeof(ids[i]), "c%031zu", i);
		} else {
			size_t v = i - ncases, c = v % ncases;
			int64_t start = t0 - 86400 * 365 + (int64_t)(v / ncases) * 86400 * 7 +
			                (int64_t)(c % 97) * 3600;
			char ts[21];

			fs_cw_time_format(start, ts);
			snprintf(
			    f, sizeof(f),
			    "{\"case\":\"c%031zu\",\"kind\":\"home\",\"start\":\"%s\",\"minutes\":"
			    "45,"
			    "\"worker\":\"w%zu\",\"note\":\"Visited at home. Discussed the plan, "
			    "school attendance and the next appointment; client doing better than "
			    "last month; mother present. Follow-up with the job coach.\","
			    "\"followups\":[{\"action\":\"call the "
			    "school\",\"due\":\"2027-0%zu-1%zu\"}]}",
			    c, ts, c % 20, 1 + v % 9, v % 10);
			ms = start * 1000;
			if (fs_cw_visit_create(f, strlen(f), "dev-1", ms, &p, &n, &eb) != FS_OK ||
			    fs_cw_visit_finalize(p, n, id, "dev-1", ms + 1000, &fin, &fn, &eb) !=
			        FS_OK)
				die("visit", &eb);
			fs_crypto_plain_free((uint8_t *)p, n);
			p = fin;
			n = fn;
			snprintf(ids[i], sizeof(ids[i]), "v%031zu", v);
		}
		if (fs_crypto_env_seal(k, ids[i], (const uint8_t *)p, n, &envs[i], &el, &eb) !=
		        FS_OK ||
		    fs_crypto_rev_id(NULL, 0, (const uint8_t *)envs[i], el, hashes[i]) != FS_OK)
			die("seal", &eb);
		fs_crypto_plain_free((uint8_t *)p, n);
		hp[i] = strchr(hashes[i], '-') + 1;
		in[i] = (fs_store_rev_in){ids[i], 1, &hp[i], 1, 0, (const uint8_t *)envs[i], el};
	}
	if (fs_store_put_remote(st, in, ncases + nvis, NULL, NULL, &eb) != FS_OK)
		die("put_remote", &eb);
	printf("built in %.1f s\n\n", now() - t);
	for (size_t i = 0; i < ncases + nvis; i++)
		free(envs[i]);
	free(envs);
	free(in);
	free(ids);
	free(hashes);
	free(hp);
	fs_store_close(st);
	st = NULL;

	fs_cw_config_default(&cfg);
	snprintf(cfg.tz, sizeof(cfg.tz), "Europe/Berlin");

	/* Floor: read and decrypt every winning envelope, nothing else. */
	{
		struct floorctx f = {NULL, ring, space, 0, 0};

		if (fs_store_open(path, NULL, &st, &eb) != FS_OK)
			die("open", &eb);
		f.st = st;
		t = now();
		if (fs_store_changes(st, 0, 0, floor_cb, &f, NULL, &eb) != FS_OK)
			die("changes", &eb);
		t_floor = now() - t;
		fs_store_close(st);
		st = NULL;
		printf("floor: read + decrypt %zu envelopes (%zu plaintext bytes): %.0f ms\n", f.n,
		       f.bytes, t_floor * 1000);
	}

	/* Unlock to the first due answer, as the daemon does it: key file,
	 * space key unwrap, store open, index load, due. */
	{
		fs_cw_index *idx = NULL;
		fs_cw_due_list *l = NULL;
		fs_keyring *r2 = NULL;
		fs_cw_index_stats s;
		size_t left = 0;
		double t_start = now();

		if (fs_crypto_keyfile_unlock(kf, sizeof(kf), pass, strlen(pass), &master, &eb) !=
		    FS_OK)
			die("unlock", &eb);
		t_kdf = now() - t_start;
		if (fs_crypto_spacekey_unwrap(wrapped, wlen, master, &k2, &eb) != FS_OK ||
		    fs_crypto_keyring_new(&r2, &eb) != FS_OK ||
		    fs_crypto_keyring_add(r2, k2, &eb) != FS_OK)
			die("unwrap", &eb);
		if (fs_store_open(path, NULL, &st, &eb) != FS_OK)
			die("open", &eb);
		t = now();
		if (fs_cw_index_new(&cfg, &idx, &eb) != FS_OK ||
		    fs_cw_index_trust(idx, "dev-1", pk, &eb) != FS_OK ||
		    fs_cw_index_load(idx, st, r2, space, &eb) != FS_OK)
			die("load", &eb);
		t_load = now() - t;
		if (fs_cw_due(idx, t0, 0, &l, &eb) != FS_OK)
			die("due", &eb);
		t_due1 = now() - t_start;
		printf("unlock to first due: %.0f ms (Argon2id %.0f ms, index load %.0f ms, %zu "
		       "alerts)\n",
		       t_due1 * 1000, t_kdf * 1000, t_load * 1000, l->n);
		printf("  without the key derivation: %.0f ms = %.2fx the floor\n",
		       (t_due1 - t_kdf) * 1000, (t_due1 - t_kdf) / t_floor);
		fs_cw_due_free(l);
		for (int i = 0; i < 21; i++) {
			t = now();
			if (fs_cw_due(idx, t0 + i * 3600, 0, &l, &eb) != FS_OK)
				die("due", &eb);
			dues[i] = now() - t;
			fs_cw_due_free(l);
		}
		qsort(dues, 21, sizeof(dues[0]), cmp_d);
		printf("due (unlocked, %zu cases, %zu visits): median %.1f ms, max %.1f ms\n",
		       ncases, nvis, dues[10] * 1000, dues[20] * 1000);
		{
			fs_cw_caseload *cl = NULL;
			const char **hits = NULL;
			size_t nh = 0;

			t = now();
			if (fs_cw_caseload_get(idx, &cl, &eb) != FS_OK)
				die("caseload", &eb);
			printf("caseload: %.1f ms (%zu workers)\n", (now() - t) * 1000, cl->n);
			fs_cw_caseload_free(cl);
			t = now();
			if (fs_cw_find(idx, "district-3", &hits, &nh, &eb) != FS_OK)
				die("find", &eb);
			printf("find: %.1f ms (%zu hits)\n", (now() - t) * 1000, nh);
			free(hits);
		}
		t = now();
		if (fs_cw_index_verify(idx, st, r2, space, 0, &left, &eb) != FS_OK)
			die("verify", &eb);
		t_verify = now() - t;
		fs_cw_index_stats_get(idx, &s);
		printf("deferred signature check of %zu visits: %.0f ms (%zu bad, %zu left)\n",
		       s.visits, t_verify * 1000, s.sig_bad, left);
		if (s.sig_bad != 0 || s.problems != 0 || s.visits != nvis || s.cases != ncases)
			die("index counts wrong", NULL);
		t = now();
		if (fs_cw_index_save(idx, st, k2, &eb) != FS_OK)
			die("save", &eb);
		printf("sealed index snapshot saved: %.0f ms\n\n", (now() - t) * 1000);
		fs_cw_index_free(idx);
		fs_crypto_keyring_free(r2);
		fs_crypto_spacekey_free(k2);
		fs_crypto_key_free(master);
		master = NULL;
		fs_store_close(st);
		st = NULL;
	}

	/* Every later unlock: the same, but the index comes from its sealed
	 * snapshot plus the changes since (none here). */
	{
		fs_cw_index *idx = NULL;
		fs_cw_due_list *l = NULL;
		fs_keyring *r2 = NULL;
		fs_cw_index_stats s;
		double t_start = now(), t_warm, t_rest;

		if (fs_crypto_keyfile_unlock(kf, sizeof(kf), pass, strlen(pass), &master, &eb) !=
		    FS_OK)
			die("unlock", &eb);
		t_kdf = now() - t_start;
		if (fs_crypto_spacekey_unwrap(wrapped, wlen, master, &k2, &eb) != FS_OK ||
		    fs_crypto_keyring_new(&r2, &eb) != FS_OK ||
		    fs_crypto_keyring_add(r2, k2, &eb) != FS_OK)
			die("unwrap", &eb);
		if (fs_store_open(path, NULL, &st, &eb) != FS_OK)
			die("open", &eb);
		t = now();
		if (fs_cw_index_new(&cfg, &idx, &eb) != FS_OK ||
		    fs_cw_index_trust(idx, "dev-1", pk, &eb) != FS_OK ||
		    fs_cw_index_restore(idx, st, r2, space, &eb) != FS_OK ||
		    fs_cw_index_load(idx, st, r2, space, &eb) != FS_OK)
			die("restore", &eb);
		t_rest = now() - t;
		if (fs_cw_due(idx, t0, 0, &l, &eb) != FS_OK)
			die("due", &eb);
		t_warm = now() - t_start;
		fs_cw_index_stats_get(idx, &s);
		if (s.sig_pending != 0 || s.visits != nvis || s.cases != ncases)
			die("restored counts wrong", NULL);
		printf("unlock to first due, from the snapshot: %.0f ms (Argon2id %.0f ms, restore "
		       "%.0f ms, %zu alerts, signatures already checked)\n",
		       t_warm * 1000, t_kdf * 1000, t_rest * 1000, l->n);
		printf("  without the key derivation: %.0f ms = %.2fx the floor\n",
		       (t_warm - t_kdf) * 1000, (t_warm - t_kdf) / t_floor);
		fs_cw_due_free(l);
		printf("\ntargets: unlock-to-due < 1000 ms: first unlock %s (%.0f ms), later "
		       "unlocks %s (%.0f ms); due < 50 ms: %s (%.1f ms)\n",
		       t_due1 < 1.0 ? "met" : "MISSED", t_due1 * 1000,
		       t_warm < 1.0 ? "met" : "MISSED", t_warm * 1000,
		       dues[10] < 0.05 ? "met" : "MISSED", dues[10] * 1000);
		fs_cw_index_free(idx);
		fs_crypto_keyring_free(r2);
		fs_crypto_spacekey_free(k2);
		fs_crypto_key_free(master);
		fs_store_close(st);
	}
	fs_crypto_identity_free(id);
	fs_crypto_keyring_free(ring);
	fs_crypto_spacekey_free(k);
	unlink(path);
	snprintf(path, sizeof(path), "%s/store.db-wal", tdir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/store.db-shm", tdir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/store.db.lock", tdir);
	unlink(path);
	if (rmdir(tdir) != 0)
		fprintf(stderr, "bench_casework: %s left behind\n", tdir);
	return 0;
}
