/*
 * tests/store/util.h: what the store's tests share: a temporary folder
 * removed afterwards, and reading a file whole.
 */
#ifndef FS_TEST_STORE_UTIL_H
#define FS_TEST_STORE_UTIL_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A fresh folder under TMPDIR (or /tmp); the caller frees the name. */
static inline char *tdir_new(void)
{
	const char *base = getenv("TMPDIR");
	char *p = malloc(4096);

	if (p == NULL)
		return NULL;
	snprintf(p, 4096, "%s/fs-store-XXXXXX", base && *base ? base : "/tmp");
	if (mkdtemp(p) == NULL) {
		free(p);
		return NULL;
	}
	return p;
}

/* Removes the (flat) folder and its files, then frees the name. */
static inline void tdir_free(char *p)
{
	DIR *d;
	struct dirent *e;
	char f[8192];

	if (p == NULL)
		return;
	if ((d = opendir(p)) != NULL) {
		while ((e = readdir(d)) != NULL) {
			if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
				continue;
			snprintf(f, sizeof(f), "%s/%s", p, e->d_name);
			unlink(f);
		}
		closedir(d);
	}
	rmdir(p);
	free(p);
}

static inline char *tpath(const char *dir, const char *name)
{
	size_t n = strlen(dir) + strlen(name) + 2;
	char *p = malloc(n);

	if (p)
		snprintf(p, n, "%s/%s", dir, name);
	return p;
}

/* The whole file in a malloc'ed buffer (NULL if absent); *len its size. */
static inline unsigned char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	unsigned char *b = NULL;
	long n;

	*len = 0;
	if (f == NULL)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
	    (b = malloc((size_t)n + 1)) != NULL) {
		if (fread(b, 1, (size_t)n, f) != (size_t)n) {
			free(b);
			b = NULL;
		} else {
			*len = (size_t)n;
		}
	}
	fclose(f);
	return b;
}

static inline int spit(const char *path, const void *b, size_t len)
{
	FILE *f = fopen(path, "wb");
	int ok;

	if (f == NULL)
		return -1;
	ok = fwrite(b, 1, len, f) == len;
	return fclose(f) == 0 && ok ? 0 : -1;
}

#endif
