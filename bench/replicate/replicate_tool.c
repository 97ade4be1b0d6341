/*
 * bench/replicate/replicate_tool.c: the fieldsync side of bench_replicate.
 * Each step runs in its own process so that its peak RSS is its own:
 *   gen STORE N DIR        N documents of 1 KB ciphertext queued in STORE,
 *                          and the same documents as _bulk_docs batch files
 *                          (floor-push-*.json) in DIR for the curl floor
 *   push STORE URL         fs_sync_push, batches of 1000
 *   pull STORE URL         fs_sync_pull into STORE (fresh), batches of 1000
 *   bulkget STORE DIR      _bulk_get request files (floor-pull-*.json)
 * push and pull print "<seconds> <docs>" of the replication itself.
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store.h"
#include "sync.h"

#define CIPHER_BYTES 1024
#define NONCE_BYTES  24
#define BATCH        1000

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, const char *msg)
{
	fprintf(stderr, "replicate_tool: %s: %s\n", what, msg);
	exit(1);
}

static fs_store *open_store(const char *path)
{
	fs_store *st = NULL;
	fs_errbuf eb;
	if (fs_store_open(path, NULL, &st, &eb) != FS_OK)
		die("open", eb.msg);
	return st;
}

static fs_sync_remote *remote(const char *url)
{
	fs_sync_remote_opts o = {.url = url, .allow_http_loopback = 1};
	fs_sync_remote *r = NULL;
	fs_errbuf eb;
	if (fs_sync_remote_new(&o, &r, &eb) != FS_OK)
		die("remote", eb.msg);
	return r;
}

static FILE *batch_file(const char *dir, const char *kind, int k)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/floor-%s-%04d.json", dir, kind, k);
	FILE *f = fopen(path, "w");
	if (f == NULL)
		die("write", path);
	return f;
}

static void gen(const char *path, int n, const char *dir)
{
	fs_store *st = open_store(path);
	unsigned char raw[CIPHER_BYTES];
	char c64[sodium_base64_ENCODED_LEN(CIPHER_BYTES, sodium_base64_VARIANT_ORIGINAL)];
	char n64[sodium_base64_ENCODED_LEN(NONCE_BYTES, sodium_base64_VARIANT_ORIGINAL)];
	char id[33], rev[FS_REV_MAX], body[2048];
	unsigned char idraw[16];
	fs_errbuf eb;
	FILE *f = NULL;

	for (int i = 0; i < n; i++) {
		randombytes_buf(idraw, sizeof(idraw));
		sodium_bin2hex(id, sizeof(id), idraw, sizeof(idraw));
		randombytes_buf(raw, CIPHER_BYTES);
		sodium_bin2base64(c64, sizeof(c64), raw, CIPHER_BYTES,
		                  sodium_base64_VARIANT_ORIGINAL);
		randombytes_buf(raw, NONCE_BYTES);
		sodium_bin2base64(n64, sizeof(n64), raw, NONCE_BYTES,
		                  sodium_base64_VARIANT_ORIGINAL);
		int len = snprintf(body, sizeof(body),
		                   "{\"fs\":1,\"k\":\"k1\",\"n\":\"%s\",\"c\":\"%s\"}", n64, c64);
		if (fs_store_put_local(st, id, NULL, (const uint8_t *)body, (size_t)len, 0, rev,
		                       &eb) != FS_OK)
			die("put", eb.msg);
		/* The floor's batches: the same documents as our push sends them. */
		if (i % BATCH == 0) {
			if (f) {
				fputs("]}", f);
				fclose(f);
			}
			f = batch_file(dir, "push", i / BATCH);
			fputs("{\"new_edits\":false,\"docs\":[", f);
		} else {
			fputc(',', f);
		}
		fprintf(f,
		        "{\"_id\":\"%s\",\"_rev\":\"%s\",\"_revisions\":{\"start\":1,\"ids\":[\"%"
		        "s\"]},%s",
		        id, rev, strchr(rev, '-') + 1, body + 1);
	}
	if (f) {
		fputs("]}", f);
		fclose(f);
	}
	fs_store_close(st);
}

static int cb_bulkget(void *ctx, const fs_store_change *c)
{
	void **v = ctx;
	FILE **f = v[0];
	int *count = v[1];
	const char *dir = v[2];
	if (*count % BATCH == 0) {
		if (*f) {
			fputs("]}", *f);
			fclose(*f);
		}
		*f = batch_file(dir, "pull", *count / BATCH);
		fputs("{\"docs\":[", *f);
	} else {
		fputc(',', *f);
	}
	fprintf(*f, "{\"id\":\"%s\",\"rev\":\"%s\"}", c->id, c->winner);
	(*count)++;
	return 0;
}

static void bulkget(const char *path, const char *dir)
{
	fs_store *st = open_store(path);
	FILE *f = NULL;
	int count = 0;
	void *ctx[3] = {&f, &count, (void *)dir};
	fs_errbuf eb;
	if (fs_store_changes(st, 0, 0, cb_bulkget, ctx, NULL, &eb) != FS_OK)
		die("changes", eb.msg);
	if (f) {
		fputs("]}", f);
		fclose(f);
	}
	fs_store_close(st);
}

int main(int argc, char **argv)
{
	fs_sync_opts o = {.remote_name = "bench", .batch_docs = BATCH};
	const char *bs = getenv("FS_BENCH_BATCH"); /* to study batch size against memory */
	if (bs && atoi(bs) > 0)
		o.batch_docs = (size_t)atoi(bs);
	fs_sync_progress p;
	fs_errbuf eb;
	double t0;
	int rc;

	if (sodium_init() < 0)
		die("init", "libsodium");
	if (argc == 5 && strcmp(argv[1], "gen") == 0) {
		gen(argv[2], atoi(argv[3]), argv[4]);
		return 0;
	}
	if (argc == 4 && strcmp(argv[1], "bulkget") == 0) {
		bulkget(argv[2], argv[3]);
		return 0;
	}
	if (argc != 4 || (strcmp(argv[1], "push") != 0 && strcmp(argv[1], "pull") != 0)) {
		fprintf(stderr, "usage: replicate_tool gen|push|pull|bulkget ...\n");
		return 2;
	}
	fs_store *st = open_store(argv[2]);
	fs_sync_remote *r = remote(argv[3]);
	t0 = now();
	if (strcmp(argv[1], "push") == 0)
		rc = fs_sync_push(st, r, &o, &p, &eb);
	else
		rc = fs_sync_pull(st, r, &o, &p, &eb);
	if (rc != FS_OK)
		die(argv[1], eb.msg);
	printf("%.3f %llu\n", now() - t0,
	       (unsigned long long)(strcmp(argv[1], "push") == 0 ? p.docs_pushed : p.docs_pulled));
	fs_sync_remote_free(r);
	fs_store_close(st);
	return 0;
}
