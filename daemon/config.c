/*
 * daemon/config.c: the configuration file of fieldsyncd (and of the CLI,
 * which reads it to find the socket): XDG locations, key=value lines,
 * defaults for every key. The keys are documented in docs/daemon.md.
 */
#include "daemon.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int join(char *out, size_t n, const char *a, const char *b, fs_errbuf *eb)
{
	if ((size_t)snprintf(out, n, "%s%s", a, b) >= n)
		return fs_err_set(eb, FS_E_TOOBIG, "path too long");
	return FS_OK;
}

/* $XDG_<name>_HOME, else $HOME/<fallback>, plus "/fieldsync". */
static int xdg_dir(const char *env, const char *fallback, char *out, size_t n, fs_errbuf *eb)
{
	const char *v = getenv(env);
	const char *home = getenv("HOME");

	if (v && v[0] == '/')
		return join(out, n, v, "/fieldsync", eb);
	if (home == NULL || home[0] != '/')
		home = "/tmp";
	if ((size_t)snprintf(out, n, "%s/%s/fieldsync", home, fallback) >= n)
		return fs_err_set(eb, FS_E_TOOBIG, "path too long");
	return FS_OK;
}

int fs_daemon_mkdirs(const char *dir, fs_errbuf *eb)
{
	char p[FS_DAEMON_PATH_MAX];
	size_t n = strlen(dir);

	if (n == 0 || n >= sizeof(p))
		return fs_err_set(eb, FS_E_ARG, "bad directory name");
	memcpy(p, dir, n + 1);
	for (size_t i = 1; i <= n; i++) {
		if (p[i] != '/' && p[i] != '\0')
			continue;
		char c = p[i];
		p[i] = '\0';
		if (mkdir(p, 0700) != 0 && errno != EEXIST)
			return fs_err_set(eb, FS_E_IO, "cannot create %s: %s", p, strerror(errno));
		p[i] = c;
	}
	return FS_OK;
}

static int parse_uint(const char *v, unsigned max, unsigned *out)
{
	char *end;
	unsigned long x;

	errno = 0;
	x = strtoul(v, &end, 10);
	if (errno || end == v || *end != '\0' || x > max || v[0] == '-')
		return -1;
	*out = (unsigned)x;
	return 0;
}

static int parse_bool(const char *v, int *out)
{
	if (!strcmp(v, "1") || !strcmp(v, "true") || !strcmp(v, "yes")) {
		*out = 1;
		return 0;
	}
	if (!strcmp(v, "0") || !strcmp(v, "false") || !strcmp(v, "no")) {
		*out = 0;
		return 0;
	}
	return -1;
}

static char *trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' || e[-1] == '\n'))
		*--e = '\0';
	return s;
}

static int set_key(fs_daemon_config *c, const char *k, const char *v, int *data_set, int *sock_set)
{
	unsigned u;

	if (!strcmp(k, "data_dir") || !strcmp(k, "socket")) {
		char *dst = k[0] == 'd' ? c->data_dir : c->socket_path;
		if (v[0] != '/' || strlen(v) >= FS_DAEMON_PATH_MAX)
			return -1;
		memcpy(dst, v, strlen(v) + 1);
		*(k[0] == 'd' ? data_set : sock_set) = 1;
		return 0;
	}
	if (!strcmp(k, "agency_rules")) {
		if (v[0] != '/' || strlen(v) >= FS_DAEMON_PATH_MAX)
			return -1;
		memcpy(c->agency_rules, v, strlen(v) + 1);
		return 0;
	}
	if (!strcmp(k, "auto_lock_minutes")) {
		if (parse_uint(v, 10080, &u))
			return -1;
		c->auto_lock_s = u * 60;
		return 0;
	}
	if (!strcmp(k, "auto_lock_seconds"))
		return parse_uint(v, 604800, &c->auto_lock_s);
	if (!strcmp(k, "connect_timeout_ms"))
		return parse_uint(v, 120000, &c->connect_timeout_ms) || c->connect_timeout_ms == 0;
	if (!strcmp(k, "push_delay_ms"))
		return parse_uint(v, 600000, &c->debounce_ms) || c->debounce_ms == 0;
	if (!strcmp(k, "retry_max_seconds"))
		return parse_uint(v, 86400, &c->backoff_max_s) || c->backoff_max_s == 0;
	if (!strcmp(k, "allow_http_loopback"))
		return parse_bool(v, &c->allow_http_loopback);
	if (!strcmp(k, "test_kdf_min"))
		return parse_bool(v, &c->test_kdf_min);
	if (!strcmp(k, "log_level")) {
		static const char *const names[] = {"error", "warn", "info", "debug"};
		for (int i = 0; i < 4; i++)
			if (!strcmp(v, names[i])) {
				c->log_level = i;
				return 0;
			}
		return -1;
	}
	return -2;
}

int fs_daemon_config_load(const char *path, const char *data_dir, fs_daemon_config *cfg,
                          fs_errbuf *eb)
{
	char cfgdir[FS_DAEMON_PATH_MAX];
	char line[4096];
	FILE *f = NULL;
	int rc = FS_E_INTERNAL, data_set = 0, sock_set = 0;
	unsigned lineno = 0;
	size_t total = 0;

	if (cfg == NULL)
		return fs_err_set(eb, FS_E_ARG, "no config");
	memset(cfg, 0, sizeof(*cfg));
	cfg->auto_lock_s = FS_DAEMON_AUTO_LOCK_S;
	cfg->connect_timeout_ms = FS_DAEMON_CONNECT_MS;
	cfg->debounce_ms = 2000;
	cfg->backoff_max_s = 300;
	cfg->allow_http_loopback = 1;
	cfg->log_level = FS_DAEMON_LOG_INFO;
	if ((rc = xdg_dir("XDG_DATA_HOME", ".local/share", cfg->data_dir, sizeof(cfg->data_dir),
	                  eb)) != FS_OK)
		goto out;
	if (path) {
		if (strlen(path) >= sizeof(cfg->config_path)) {
			rc = fs_err_set(eb, FS_E_TOOBIG, "configuration path too long");
			goto out;
		}
		memcpy(cfg->config_path, path, strlen(path) + 1);
	} else {
		if ((rc = xdg_dir("XDG_CONFIG_HOME", ".config", cfgdir, sizeof(cfgdir), eb)) !=
		        FS_OK ||
		    (rc = join(cfg->config_path, sizeof(cfg->config_path), cfgdir,
		               "/fieldsyncd.conf", eb)) != FS_OK)
			goto out;
	}
	if ((f = fopen(cfg->config_path, "re")) == NULL) {
		if (errno != ENOENT) {
			rc = fs_err_set(eb, FS_E_IO, "cannot read %s: %s", cfg->config_path,
			                strerror(errno));
			goto out;
		}
		if (path) {
			rc = fs_err_set(eb, FS_E_NOTFOUND, "no configuration file %s", path);
			goto out;
		}
	}
	while (f && fgets(line, sizeof(line), f)) {
		char *k, *v, *eq;
		int r;

		lineno++;
		if (strchr(line, '\n') == NULL && !feof(f)) {
			rc = fs_err_set(eb, FS_E_DAEMON_CONFIG, "%s:%u: line too long",
			                cfg->config_path, lineno);
			goto out;
		}
		total += strlen(line);
		if (total > FS_DAEMON_CONFIG_MAX) {
			rc = fs_err_set(eb, FS_E_TOOBIG, "%s is over %u bytes", cfg->config_path,
			                FS_DAEMON_CONFIG_MAX);
			goto out;
		}
		k = trim(line);
		if (*k == '\0' || *k == '#')
			continue;
		if ((eq = strchr(k, '=')) == NULL) {
			rc = fs_err_set(eb, FS_E_DAEMON_CONFIG, "%s line %u: expected key = value",
			                cfg->config_path, lineno);
			goto out;
		}
		*eq = '\0';
		k = trim(k);
		v = trim(eq + 1);
		if ((r = set_key(cfg, k, v, &data_set, &sock_set)) != 0) {
			rc = fs_err_set(eb, FS_E_DAEMON_CONFIG, "%s line %u: %s \"%.64s\"",
			                cfg->config_path, lineno,
			                r == -2 ? "unknown key" : "bad value for", k);
			goto out;
		}
	}
	if (data_dir) {
		if (data_dir[0] != '/' || strlen(data_dir) >= sizeof(cfg->data_dir)) {
			rc = fs_err_set(eb, FS_E_ARG, "--data-dir must be an absolute path");
			goto out;
		}
		memcpy(cfg->data_dir, data_dir, strlen(data_dir) + 1);
	}
	if (!sock_set) {
		const char *rt = getenv("XDG_RUNTIME_DIR");
		size_t n;
		/* With another data directory the socket goes with the data: two
		 * daemons on two data directories never meet at one socket. */
		if (rt && rt[0] == '/' && !data_dir && !data_set)
			n = (size_t)snprintf(cfg->socket_path, sizeof(cfg->socket_path),
			                     "%s/fieldsync/%s", rt, FS_DAEMON_SOCKET_NAME);
		else
			n = (size_t)snprintf(cfg->socket_path, sizeof(cfg->socket_path),
			                     "%s/run/%s", cfg->data_dir, FS_DAEMON_SOCKET_NAME);
		if (n >= sizeof(cfg->socket_path)) {
			rc = fs_err_set(eb, FS_E_TOOBIG, "socket path too long");
			goto out;
		}
	}
	rc = FS_OK;
out:
	if (f)
		fclose(f);
	return rc;
}
