/*
 * bench/hub/hub_replicate.c: fieldsync's replication client against the
 * hub over HTTPS with its pin and a device token, as a device runs it.
 *   hub_replicate push STORE DB_URL   fs_sync_push (STORE made by replicate_tool gen)
 *   hub_replicate pull STORE DB_URL   fs_sync_pull into a fresh STORE
 * Environment: FS_LOAD_CA, FS_LOAD_PIN, FS_LOAD_TOKEN. Prints
 * "<seconds> <docs>" of the replication itself, like replicate_tool.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store.h"
#include "sync.h"

#define BATCH 1000

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	fs_store *st = NULL;
	fs_sync_remote *r = NULL;
	fs_errbuf eb = {0};
	fs_sync_opts o = {.remote_name = "bench", .batch_docs = BATCH};
	fs_sync_progress p;
	int push, rc;

	if (argc != 4 || (strcmp(argv[1], "push") != 0 && strcmp(argv[1], "pull") != 0)) {
		fprintf(stderr, "usage: hub_replicate push|pull STORE DB_URL\n");
		return 2;
	}
	push = strcmp(argv[1], "push") == 0;
	fs_sync_remote_opts ro = {
	    .url = argv[3], .ca_file = getenv("FS_LOAD_CA"), .pins = getenv("FS_LOAD_PIN")};
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if ((rc = fs_store_open(argv[2], NULL, &st, &eb)) != FS_OK ||
	    (rc = fs_sync_remote_new(&ro, &r, &eb)) != FS_OK ||
	    (getenv("FS_LOAD_TOKEN") &&
	     (rc = fs_sync_remote_set_bearer(r, getenv("FS_LOAD_TOKEN"), &eb)) != FS_OK)) {
		fprintf(stderr, "hub_replicate: %s\n", eb.msg);
		return 1;
	}
	double t0 = now();
	rc = push ? fs_sync_push(st, r, &o, &p, &eb) : fs_sync_pull(st, r, &o, &p, &eb);
	double s = now() - t0;
	if (rc != FS_OK) {
		fprintf(stderr, "hub_replicate %s: %s (%s)\n", argv[1], eb.msg, fs_errname(rc));
		return 1;
	}
	printf("%.3f %llu\n", s, (unsigned long long)(push ? p.docs_pushed : p.docs_pulled));
	fs_sync_remote_free(r);
	fs_store_close(st);
	curl_global_cleanup();
	return 0;
}
