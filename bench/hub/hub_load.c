/*
 * bench/hub/hub_load.c: simulated devices against one CouchDB-protocol
 * server, all at once. Each device (a thread with its own kept-alive
 * connection) pushes its documents the way a replicator does (_revs_diff,
 * _bulk_docs new_edits:false, a _local checkpoint), then pulls everything
 * (_changes style=all_docs in pages, _bulk_get revs=true, a checkpoint).
 *
 *   hub_load URL DEVICES DOCS     URL is the database (it must exist)
 * Environment: FS_LOAD_CA (PEM to trust), FS_LOAD_TOKEN (bearer token).
 * Prints one line: requests, seconds, req/s, p50 and p99 latency (ms),
 * documents pulled per device (mean), failures.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <sodium.h>

#define CIPHER_BYTES 1024
#define PAGE         500
#define MAX_REQS     4096

typedef struct device {
	int n;
	const char *url;
	int docs;
	CURL *c;
	struct curl_slist *hdr;
	char *resp;
	size_t resp_len;
	double lat[MAX_REQS];
	size_t n_lat;
	size_t pulled;
	int failures;
} device;

static pthread_barrier_t start;
static const char *ca, *token;

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static size_t on_data(char *p, size_t sz, size_t n, void *ctx)
{
	device *d = ctx;
	char *nb = realloc(d->resp, d->resp_len + sz * n + 1);
	if (nb == NULL)
		return 0;
	d->resp = nb;
	memcpy(d->resp + d->resp_len, p, sz * n);
	d->resp_len += sz * n;
	d->resp[d->resp_len] = '\0';
	return sz * n;
}

/* One request; the body stays in d->resp. Returns the status (0: failed). */
static long call(device *d, const char *method, const char *path, const char *body)
{
	char url[1024];
	long status = 0;
	double t0 = now();
	snprintf(url, sizeof(url), "%s%s", d->url, path);
	d->resp_len = 0;
	curl_easy_setopt(d->c, CURLOPT_URL, url);
	curl_easy_setopt(d->c, CURLOPT_CUSTOMREQUEST, method);
	if (body) {
		curl_easy_setopt(d->c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(d->c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
	} else {
		curl_easy_setopt(d->c, CURLOPT_HTTPGET, 1L);
		curl_easy_setopt(d->c, CURLOPT_CUSTOMREQUEST, method);
	}
	if (curl_easy_perform(d->c) == CURLE_OK)
		curl_easy_getinfo(d->c, CURLINFO_RESPONSE_CODE, &status);
	if (d->n_lat < MAX_REQS)
		d->lat[d->n_lat++] = (now() - t0) * 1000.0;
	if (status < 200 || status >= 300)
		d->failures++;
	return status;
}

static char *push_bodies(device *d, char **diff)
{
	size_t cap = (size_t)d->docs * (CIPHER_BYTES * 2 + 300) + 64,
	       dcap = (size_t)d->docs * 100 + 8;
	char *b = malloc(cap), *f = malloc(dcap);
	size_t n = 0, m = 0;
	unsigned char ct[CIPHER_BYTES], nonce[24], h[16];
	char ctb[CIPHER_BYTES * 2], nb[64], hex[33];
	if (b == NULL || f == NULL)
		exit(1);
	n += (size_t)snprintf(b, cap, "{\"new_edits\":false,\"docs\":[");
	m += (size_t)snprintf(f, dcap, "{");
	for (int i = 0; i < d->docs; i++) {
		randombytes_buf(ct, sizeof(ct));
		randombytes_buf(nonce, sizeof(nonce));
		randombytes_buf(h, sizeof(h));
		sodium_bin2base64(ctb, sizeof(ctb), ct, sizeof(ct), sodium_base64_VARIANT_ORIGINAL);
		sodium_bin2base64(nb, sizeof(nb), nonce, sizeof(nonce),
		                  sodium_base64_VARIANT_ORIGINAL);
		sodium_bin2hex(hex, sizeof(hex), h, sizeof(h));
		n += (size_t)snprintf(
		    b + n, cap - n,
		    "%s{\"_id\":\"dev%03d-%04d\",\"_rev\":\"1-%s\",\"_revisions\":"
		    "{\"start\":1,\"ids\":[\"%s\"]},\"fs\":1,\"k\":\"k1\",\"n\":\"%s\","
		    "\"c\":\"%s\"}",
		    i ? "," : "", d->n, i, hex, hex, nb, ctb);
		m += (size_t)snprintf(f + m, dcap - m, "%s\"dev%03d-%04d\":[\"1-%s\"]",
		                      i ? "," : "", d->n, i, hex);
	}
	snprintf(b + n, cap - n, "]}");
	snprintf(f + m, dcap - m, "}");
	*diff = f;
	return b;
}

static void pull(device *d)
{
	char path[256];
	char since[64] = "0";
	for (;;) {
		cJSON *j, *e;
		snprintf(path, sizeof(path), "/_changes?style=all_docs&limit=%d&since=%s", PAGE,
		         since);
		if (call(d, "GET", path, NULL) != 200 || (j = cJSON_Parse(d->resp)) == NULL)
			return;
		const cJSON *res = cJSON_GetObjectItemCaseSensitive(j, "results");
		const cJSON *last = cJSON_GetObjectItemCaseSensitive(j, "last_seq");
		int k = cJSON_GetArraySize(res);
		if (k == 0) {
			cJSON_Delete(j);
			return;
		}
		/* Everything is missing for a fresh device: fetch every leaf. */
		size_t cap = (size_t)k * 200 + 32, n = 0;
		char *b = malloc(cap);
		if (b == NULL)
			exit(1);
		n += (size_t)snprintf(b, cap, "{\"docs\":[");
		int first = 1;
		cJSON_ArrayForEach(e, res)
		{
			const cJSON *ch, *id = cJSON_GetObjectItemCaseSensitive(e, "id");
			cJSON_ArrayForEach(ch, cJSON_GetObjectItemCaseSensitive(e, "changes"))
			{
				const cJSON *rev = cJSON_GetObjectItemCaseSensitive(ch, "rev");
				n += (size_t)snprintf(
				    b + n, cap - n, "%s{\"id\":\"%s\",\"rev\":\"%s\"}",
				    first ? "" : ",", id->valuestring, rev->valuestring);
				first = 0;
			}
		}
		snprintf(b + n, cap - n, "]}");
		if (cJSON_IsNumber(last))
			snprintf(since, sizeof(since), "%.0f", last->valuedouble);
		else if (cJSON_IsString(last))
			snprintf(since, sizeof(since), "%s", last->valuestring);
		cJSON_Delete(j);
		if (call(d, "POST", "/_bulk_get?revs=true", b) == 200 &&
		    (j = cJSON_Parse(d->resp)) != NULL) {
			cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(j, "results"))
			{
				const cJSON *x;
				cJSON_ArrayForEach(x, cJSON_GetObjectItemCaseSensitive(e, "docs"))
				    d->pulled += cJSON_GetObjectItemCaseSensitive(x, "ok") != NULL;
			}
			cJSON_Delete(j);
		}
		free(b);
		if (k < PAGE)
			return;
	}
}

static void *run(void *arg)
{
	device *d = arg;
	char *diff, *bulk = push_bodies(d, &diff), path[128], ck[128];
	char auth[256];

	d->c = curl_easy_init();
	d->hdr = curl_slist_append(NULL, "Content-Type: application/json");
	d->hdr = curl_slist_append(d->hdr, "Accept: application/json");
	d->hdr = curl_slist_append(d->hdr, "Expect:");
	if (token) {
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
		d->hdr = curl_slist_append(d->hdr, auth);
	}
	curl_easy_setopt(d->c, CURLOPT_HTTPHEADER, d->hdr);
	curl_easy_setopt(d->c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(d->c, CURLOPT_WRITEDATA, d);
	curl_easy_setopt(d->c, CURLOPT_TIMEOUT, 120L);
	if (ca)
		curl_easy_setopt(d->c, CURLOPT_CAINFO, ca);
	pthread_barrier_wait(&start);

	call(d, "GET", "", NULL);
	call(d, "POST", "/_revs_diff", diff);
	call(d, "POST", "/_bulk_docs", bulk);
	snprintf(path, sizeof(path), "/_local/push-%03d", d->n);
	snprintf(ck, sizeof(ck), "{\"last_seq\":%d}", d->docs);
	call(d, "PUT", path, ck);
	pull(d);
	snprintf(path, sizeof(path), "/_local/pull-%03d", d->n);
	call(d, "PUT", path, ck);

	free(diff);
	free(bulk);
	free(d->resp);
	curl_slist_free_all(d->hdr);
	curl_easy_cleanup(d->c);
	return NULL;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: hub_load DB_URL DEVICES DOCS\n");
		return 2;
	}
	int nd = atoi(argv[2]), docs = atoi(argv[3]);
	if (nd < 1 || nd > 1000 || docs < 1 || docs > 10000 || sodium_init() < 0)
		return 2;
	ca = getenv("FS_LOAD_CA");
	token = getenv("FS_LOAD_TOKEN");
	curl_global_init(CURL_GLOBAL_DEFAULT);
	device *devs = calloc((size_t)nd, sizeof(*devs));
	pthread_t *t = calloc((size_t)nd, sizeof(*t));
	if (devs == NULL || t == NULL)
		return 1;
	pthread_barrier_init(&start, NULL, (unsigned)nd + 1);
	for (int i = 0; i < nd; i++) {
		devs[i].n = i;
		devs[i].url = argv[1];
		devs[i].docs = docs;
		pthread_create(&t[i], NULL, run, &devs[i]);
	}
	pthread_barrier_wait(&start);
	double t0 = now();
	for (int i = 0; i < nd; i++)
		pthread_join(t[i], NULL);
	double secs = now() - t0;

	size_t total = 0, k = 0, pulled = 0;
	int failures = 0;
	for (int i = 0; i < nd; i++) {
		total += devs[i].n_lat;
		pulled += devs[i].pulled;
		failures += devs[i].failures;
	}
	double *all = malloc((total ? total : 1) * sizeof(double));
	for (int i = 0; i < nd; i++)
		for (size_t j = 0; j < devs[i].n_lat; j++)
			all[k++] = devs[i].lat[j];
	qsort(all, total, sizeof(double), cmp);
	double p50 = total ? all[total / 2] : 0, p99 = total ? all[(total * 99) / 100] : 0;
	printf("requests %zu seconds %.3f rps %.1f p50_ms %.1f p99_ms %.1f pulled_per_device %.0f "
	       "failures %d\n",
	       total, secs, (double)total / secs, p50, p99, (double)pulled / nd, failures);
	free(all);
	free(devs);
	free(t);
	curl_global_cleanup();
	return failures ? 1 : 0;
}
