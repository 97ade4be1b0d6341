/*
 * hub/conf.c: hub.conf, a key=value file read once at start. Every key and
 * its default is documented in docs/hub.md; an unknown key or a bad value is
 * an error that names the line, so a typo never passes silently.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hub_int.h"

/* Two per core: a request thread that waits for a disk write leaves its
 * core to another. 4 on the 2-core machines the hub is sized for. */
static unsigned default_threads(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	if (n < 1)
		n = 1;
	return n > 8 ? 16u : (unsigned)n * 2u;
}

void hub_conf_defaults(hub_conf *c, const char *dir)
{
	memset(c, 0, sizeof(*c));
	snprintf(c->bind, sizeof(c->bind), "127.0.0.1");
	c->port = FS_HUB_PORT_DEFAULT;
	snprintf(c->cert, sizeof(c->cert), "%s/cert.pem", dir);
	snprintf(c->key, sizeof(c->key), "%s/key.pem", dir);
	c->threads = default_threads();
	c->max_connections = 1000;
	c->max_connections_per_addr = 128;
	c->max_body = 32u << 20;
	c->max_batch_docs = 10000;
	c->json_depth = FS_JSON_DEPTH_DEFAULT;
	c->longpoll_max_ms = 60000;
	c->revs_limit = FS_STORE_REVS_LIMIT_DEFAULT;
	c->access_log = 1;
	c->auth_delay_max_ms = 5000;
	c->doc_cache_bytes = 64u << 20;
}

static char *trim(char *s)
{
	char *e;
	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r'))
		*--e = '\0';
	return s;
}

static int num(const char *v, unsigned long lo, unsigned long hi, unsigned long *out)
{
	char *end;
	unsigned long x;
	errno = 0;
	x = strtoul(v, &end, 10);
	if (errno || end == v || *end || x < lo || x > hi || v[0] < '0' || v[0] > '9')
		return -1;
	*out = x;
	return 0;
}

static int path_val(char *dst, size_t n, const char *dir, const char *v)
{
	int w = v[0] == '/' ? snprintf(dst, n, "%s", v) : snprintf(dst, n, "%s/%s", dir, v);
	return w < 0 || (size_t)w >= n ? -1 : 0;
}

int hub_conf_read(hub_conf *c, const char *dir, const char *path, fs_errbuf *eb)
{
	FILE *f = fopen(path, "r");
	char line[1024];
	int lineno = 0, rc = FS_OK;

	if (f == NULL)
		return errno == ENOENT ? FS_OK : fs_err_set(eb, FS_E_IO, "cannot read %s", path);
	while (fgets(line, sizeof(line), f)) {
		char *k, *v, *eq;
		unsigned long x;
		int bad = 0;
		lineno++;
		k = trim(line);
		if (*k == '\0' || *k == '#')
			continue;
		if ((eq = strchr(k, '=')) == NULL) {
			rc =
			    fs_err_set(eb, FS_E_INPUT, "%s:%d: expected key = value", path, lineno);
			break;
		}
		*eq = '\0';
		k = trim(k);
		v = trim(eq + 1);
		if (strcmp(k, "bind") == 0)
			bad =
			    (size_t)snprintf(c->bind, sizeof(c->bind), "%s", v) >= sizeof(c->bind);
		else if (strcmp(k, "port") == 0)
			bad = num(v, 0, 65535, &x) || ((c->port = (int)x), 0);
		else if (strcmp(k, "cert") == 0)
			bad = path_val(c->cert, sizeof(c->cert), dir, v);
		else if (strcmp(k, "key") == 0)
			bad = path_val(c->key, sizeof(c->key), dir, v);
		else if (strcmp(k, "threads") == 0)
			bad = num(v, 1, 64, &x) || ((c->threads = (unsigned)x), 0);
		else if (strcmp(k, "max_connections") == 0)
			bad = num(v, 4, 20000, &x) || ((c->max_connections = (unsigned)x), 0);
		else if (strcmp(k, "max_connections_per_addr") == 0)
			bad = num(v, 0, 20000, &x) ||
			      ((c->max_connections_per_addr = (unsigned)x), 0);
		else if (strcmp(k, "max_body_bytes") == 0)
			bad = num(v, 1024, 1ul << 30, &x) || ((c->max_body = x), 0);
		else if (strcmp(k, "max_batch_docs") == 0)
			bad = num(v, 1, 100000, &x) || ((c->max_batch_docs = x), 0);
		else if (strcmp(k, "json_depth") == 0)
			bad = num(v, 4, 256, &x) || ((c->json_depth = (int)x), 0);
		else if (strcmp(k, "longpoll_max_ms") == 0)
			bad = num(v, 100, 3600000, &x) || ((c->longpoll_max_ms = (unsigned)x), 0);
		else if (strcmp(k, "revs_limit") == 0)
			bad = num(v, 1, 100000, &x) || ((c->revs_limit = (unsigned)x), 0);
		else if (strcmp(k, "access_log") == 0)
			bad = num(v, 0, 1, &x) || ((c->access_log = (int)x), 0);
		else if (strcmp(k, "auth_delay_max_ms") == 0)
			bad = num(v, 0, 60000, &x) || ((c->auth_delay_max_ms = (unsigned)x), 0);
		else if (strcmp(k, "doc_cache_bytes") == 0)
			bad = num(v, 0, 1ul << 34, &x) || ((c->doc_cache_bytes = x), 0);
		else {
			rc =
			    fs_err_set(eb, FS_E_INPUT, "%s:%d: unknown key %.64s", path, lineno, k);
			break;
		}
		if (bad) {
			rc = fs_err_set(eb, FS_E_INPUT, "%s:%d: bad value for %s", path, lineno, k);
			break;
		}
	}
	fclose(f);
	return rc;
}
