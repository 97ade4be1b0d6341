/*
 * common/scan.c: a JSON scanner for batches of documents read once: the
 * hub's requests (_bulk_docs, _revs_diff, _bulk_get) and the client's
 * _bulk_get answers. It reads the text once and validates it as it goes
 * (RFC 8259, nesting bounded before it recurses) without building a tree:
 * the caller takes the members it knows and keeps the others as the bytes
 * they came in. cJSON spent a third of the hub's time on a push, and a
 * quarter of the client's on a pull, allocating and freeing a node per
 * value and printing every body again.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fs.h"

/* Records the first error; always -1, for `return fs_scan_fail(...)`. */
int fs_scan_fail(fs_scan *s, int code, const char *why)
{
	if (s->rc == FS_OK)
		s->rc = fs_err_set(s->eb, code, "%s", why);
	return -1;
}

static int bad(fs_scan *s)
{
	return fs_scan_fail(s, s->code, s->not_json);
}

static int too_deep(fs_scan *s)
{
	if (s->rc == FS_OK)
		s->rc =
		    fs_err_set(s->eb, s->code, "JSON nested deeper than %d levels", s->max_depth);
	return -1;
}

int fs_scan_start(fs_scan *s, const char *text, size_t len, size_t max_len, int max_depth, int code,
                  const char *not_json, fs_errbuf *eb)
{
	memset(s, 0, sizeof(*s));
	s->p = text;
	s->end = text + len;
	s->max_depth = max_depth;
	s->code = code;
	s->not_json = not_json;
	s->eb = eb;
	if (len > max_len)
		return fs_err_set(eb, FS_E_TOOBIG, "JSON of %zu bytes exceeds the limit of %zu",
		                  len, max_len);
	return FS_OK;
}

static int is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

int fs_scan_peek(fs_scan *s)
{
	const char *p = s->p;
	while (p < s->end && is_ws(*p))
		p++;
	if (p != s->p) {
		s->ws = 1;
		s->p = p;
	}
	return p < s->end ? (unsigned char)*p : -1;
}

int fs_scan_take(fs_scan *s, char c)
{
	if (fs_scan_peek(s) != (unsigned char)c)
		return bad(s);
	s->p++;
	return 0;
}

static int hex4(const char *p, unsigned *out)
{
	unsigned v = 0;
	for (int i = 0; i < 4; i++) {
		char c = p[i];
		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v |= (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			v |= (unsigned)(c - 'A' + 10);
		else
			return -1;
	}
	*out = v;
	return 0;
}

/*
 * A \u escape at p (p[0] == '\\', p[1] == 'u', 6 bytes readable) and, for
 * a high surrogate, the low one after it: the code point, and the bytes
 * used. Lone or reversed surrogates are malformed, as cJSON has them.
 */
static int escape_u(const char *p, const char *end, unsigned *cp, size_t *used)
{
	unsigned u, l;
	if (end - p < 6 || hex4(p + 2, &u) != 0 || (u >= 0xDC00 && u <= 0xDFFF))
		return -1;
	if (u < 0xD800 || u > 0xDBFF) {
		*cp = u;
		*used = 6;
		return 0;
	}
	if (end - p < 12 || p[6] != '\\' || p[7] != 'u' || hex4(p + 8, &l) != 0 || l < 0xDC00 ||
	    l > 0xDFFF)
		return -1;
	*cp = 0x10000 + ((u - 0xD800) << 10) + (l - 0xDC00);
	*used = 12;
	return 0;
}

/*
 * Eight bytes at a time, none of them a quote, a backslash or a control
 * character? (A byte is zero in x - 0x01.. & ~x & 0x80.. exactly when some
 * byte of x is zero; with 0x20.. in place of 0x01.., when some byte is
 * below 0x20.) Ciphertext strings are kilobytes of base64: this is most of
 * the scan.
 */
static int plain8(const char *p)
{
	const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
	uint64_t v, q, b, c;
	memcpy(&v, p, sizeof(v));
	q = v ^ (ones * '"');
	b = v ^ (ones * '\\');
	c = (v - ones * 0x20) & ~v;
	return (((q - ones) & ~q) | ((b - ones) & ~b) | c) & highs ? 0 : 1;
}

int fs_scan_skip_string(fs_scan *s, int *esc)
{
	const char *p = s->p + 1, *end = s->end;
	*esc = 0;
	for (;;) {
		while (end - p >= 8 && plain8(p))
			p += 8;
		while (p < end && (unsigned char)*p >= 0x20 && *p != '"' && *p != '\\')
			p++;
		if (p >= end || (unsigned char)*p < 0x20)
			return bad(s);
		if (*p == '"') {
			s->p = p + 1;
			return 0;
		}
		*esc = 1;
		if (end - p < 2)
			return bad(s);
		switch (p[1]) {
		case '"':
		case '\\':
		case '/':
		case 'b':
		case 'f':
		case 'n':
		case 'r':
		case 't':
			p += 2;
			break;
		case 'u': {
			unsigned cp;
			size_t used;
			if (escape_u(p, end, &cp, &used) != 0)
				return bad(s);
			p += used;
			break;
		}
		default:
			return bad(s);
		}
	}
}

long fs_scan_decode(const char *raw, const char *raw_end, char *out, size_t cap, int prefix,
                    int *cut)
{
	size_t n = 0;
	const char *p = raw;
	if (cut)
		*cut = 0;
	while (p < raw_end) {
		unsigned char u8[4];
		size_t k = 1;
		if (*p != '\\') {
			u8[0] = (unsigned char)*p++;
		} else if (p[1] != 'u') {
			static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
			u8[0] = (unsigned char)to[strchr(from, p[1]) - from];
			p += 2;
		} else {
			unsigned cp;
			size_t used;
			if (escape_u(p, raw_end, &cp, &used) != 0)
				return -1;
			if (cp == 0) {
				/* A name's prefix still counts: "_\u0000x" is a special
				 * member ("_..."), never an ordinary one that slips by. */
				if (!prefix)
					return -1;
				*cut = 1;
				break;
			}
			p += used;
			if (cp < 0x80) {
				u8[0] = (unsigned char)cp;
			} else if (cp < 0x800) {
				u8[0] = (unsigned char)(0xC0 | cp >> 6);
				u8[1] = (unsigned char)(0x80 | (cp & 0x3F));
				k = 2;
			} else if (cp < 0x10000) {
				u8[0] = (unsigned char)(0xE0 | cp >> 12);
				u8[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
				u8[2] = (unsigned char)(0x80 | (cp & 0x3F));
				k = 3;
			} else {
				u8[0] = (unsigned char)(0xF0 | cp >> 18);
				u8[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
				u8[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
				u8[3] = (unsigned char)(0x80 | (cp & 0x3F));
				k = 4;
			}
		}
		if (u8[0] == 0)
			return -1;
		if (n + k >= cap) {
			if (!prefix)
				return -1;
			*cut = 1;
			break;
		}
		memcpy(out + n, u8, k);
		n += k;
	}
	out[n] = '\0';
	return (long)n;
}

int fs_scan_string(fs_scan *s, char *out, size_t cap, size_t *len, const char *why)
{
	const char *raw;
	long n;
	int esc;
	if (fs_scan_peek(s) != '"')
		return fs_scan_fail(s, s->code, why);
	raw = s->p + 1;
	if (fs_scan_skip_string(s, &esc) != 0)
		return -1;
	if (!esc) { /* the usual case: the bytes are the string */
		size_t k = (size_t)(s->p - 1 - raw);
		if (k >= cap || memchr(raw, '\0', k))
			return fs_scan_fail(s, s->code, why);
		memcpy(out, raw, k);
		out[k] = '\0';
		n = (long)k;
	} else if ((n = fs_scan_decode(raw, s->p - 1, out, cap, 0, NULL)) < 0) {
		return fs_scan_fail(s, s->code, why);
	}
	if (len)
		*len = (size_t)n;
	return 0;
}

int fs_scan_skip_number(fs_scan *s)
{
	const char *p = s->p, *end = s->end;
	if (p < end && *p == '-')
		p++;
	if (p >= end)
		return bad(s);
	if (*p == '0') {
		p++;
	} else if (*p >= '1' && *p <= '9') {
		while (p < end && *p >= '0' && *p <= '9')
			p++;
	} else {
		return bad(s);
	}
	if (p < end && *p == '.') {
		p++;
		if (p >= end || *p < '0' || *p > '9')
			return bad(s);
		while (p < end && *p >= '0' && *p <= '9')
			p++;
	}
	if (p < end && (*p == 'e' || *p == 'E')) {
		p++;
		if (p < end && (*p == '+' || *p == '-'))
			p++;
		if (p >= end || *p < '0' || *p > '9')
			return bad(s);
		while (p < end && *p >= '0' && *p <= '9')
			p++;
	}
	s->p = p;
	return 0;
}

int fs_scan_literal(fs_scan *s, const char *lit, size_t n)
{
	if ((size_t)(s->end - s->p) < n || memcmp(s->p, lit, n) != 0)
		return bad(s);
	s->p += n;
	return 0;
}

int fs_scan_bool(fs_scan *s, int *v, const char *why)
{
	int c = fs_scan_peek(s);
	if (c == 't' && fs_scan_literal(s, "true", 4) == 0)
		*v = 1;
	else if (c == 'f' && fs_scan_literal(s, "false", 5) == 0)
		*v = 0;
	else
		return fs_scan_fail(s, s->code, why);
	return 0;
}

int fs_scan_revisions(fs_scan *s, int depth, size_t max_ids, size_t hash_cap, const char *why,
                      const char **start, size_t *start_len, char ***ids, size_t *n)
{
	int empty, more, have_ids = 0;
	size_t cap = 0;
	fs_scan_key k;
	char h[256];

	*start = NULL;
	*start_len = 0;
	if (hash_cap > sizeof(h))
		hash_cap = sizeof(h);
	if (fs_scan_object_open(s, depth, &empty, why) != 0)
		return -1;
	for (more = !empty; more > 0; more = fs_scan_next(s, '}')) {
		if (fs_scan_member(s, &k) != 0)
			return -1;
		if (fs_scan_key_is(&k, "start") && *start == NULL) {
			int c = fs_scan_peek(s);
			if (c != '-' && (c < '0' || c > '9'))
				return fs_scan_fail(s, s->code, why);
			*start = s->p;
			if (fs_scan_skip_number(s) != 0)
				return -1;
			*start_len = (size_t)(s->p - *start);
		} else if (fs_scan_key_is(&k, "ids") && !have_ids) {
			int e2;
			have_ids = 1;
			if (fs_scan_array_open(s, depth + 1, &e2, why) != 0)
				return -1;
			for (e2 = !e2; e2 > 0; e2 = fs_scan_next(s, ']')) {
				size_t len;
				if (*n >= max_ids)
					return fs_scan_fail(s, s->code,
					                    "_revisions has too many ids");
				if (fs_scan_string(s, h, hash_cap, &len,
				                   "bad hash in _revisions") != 0)
					return -1;
				if (len == 0)
					return fs_scan_fail(s, s->code, "bad hash in _revisions");
				if (*n == cap) {
					size_t nc = cap ? cap * 2 : 4;
					char **v = realloc(*ids, nc * sizeof(*v));
					if (v == NULL)
						return fs_scan_fail(s, FS_E_NOMEM, "out of memory");
					*ids = v;
					cap = nc;
				}
				if (((*ids)[*n] = malloc(len + 1)) == NULL)
					return fs_scan_fail(s, FS_E_NOMEM, "out of memory");
				memcpy((*ids)[(*n)++], h, len + 1);
			}
			if (e2 < 0)
				return -1;
		} else if (fs_scan_skip(s, depth + 1) != 0) {
			return -1;
		}
	}
	if (more < 0)
		return -1;
	if (*start == NULL || !have_ids)
		return fs_scan_fail(s, s->code, why);
	return 0;
}

int fs_scan_skip(fs_scan *s, int depth)
{
	int c = fs_scan_peek(s), esc;
	switch (c) {
	case '{':
	case '[': {
		char close = c == '{' ? '}' : ']';
		int more;
		if (depth + 1 > s->max_depth)
			return too_deep(s);
		s->p++;
		if (fs_scan_peek(s) == (unsigned char)close) {
			s->p++;
			return 0;
		}
		do {
			if (c == '{' &&
			    (fs_scan_peek(s) != '"' || fs_scan_skip_string(s, &esc) != 0 ||
			     fs_scan_take(s, ':') != 0))
				return bad(s);
			if (fs_scan_skip(s, depth + 1) != 0)
				return -1;
		} while ((more = fs_scan_next(s, close)) > 0);
		return more;
	}
	case '"':
		return fs_scan_skip_string(s, &esc);
	case 't':
		return fs_scan_literal(s, "true", 4);
	case 'f':
		return fs_scan_literal(s, "false", 5);
	case 'n':
		return fs_scan_literal(s, "null", 4);
	default:
		return fs_scan_skip_number(s);
	}
}

int fs_scan_value(fs_scan *s, int depth, const char **start, size_t *len, int *spaced)
{
	(void)fs_scan_peek(s);
	*start = s->p;
	s->ws = 0;
	if (fs_scan_skip(s, depth) != 0)
		return -1;
	*len = (size_t)(s->p - *start);
	*spaced = s->ws;
	return 0;
}

size_t fs_scan_compact(const char *p, size_t n, char *out)
{
	const char *q = p, *end = p + n;
	size_t k = 0;

	while (q < end) {
		if (*q == '"') { /* checked: the next unescaped quote ends it */
			const char *e = q + 1;
			while (*e != '"')
				e += *e == '\\' ? 2 : 1;
			memcpy(out + k, q, (size_t)(e + 1 - q));
			k += (size_t)(e + 1 - q);
			q = e + 1;
		} else if (is_ws(*q)) {
			q++;
		} else {
			out[k++] = *q++;
		}
	}
	return k;
}

int fs_scan_finish(fs_scan *s)
{
	if (fs_scan_peek(s) != -1)
		return bad(s);
	return 0;
}

/* An object or an array (open, close) at the cursor entered; *empty: it closed at once. */
static int container_open(fs_scan *s, int depth, int *empty, const char *why, char open, char close)
{
	if (fs_scan_peek(s) != (unsigned char)open)
		return fs_scan_fail(s, s->code, why);
	if (depth + 1 > s->max_depth)
		return too_deep(s);
	s->p++;
	*empty = fs_scan_peek(s) == (unsigned char)close;
	if (*empty)
		s->p++;
	return 0;
}

int fs_scan_object_open(fs_scan *s, int depth, int *empty, const char *why)
{
	return container_open(s, depth, empty, why, '{', '}');
}

int fs_scan_array_open(fs_scan *s, int depth, int *empty, const char *why)
{
	return container_open(s, depth, empty, why, '[', ']');
}

int fs_scan_next(fs_scan *s, char close)
{
	int c = fs_scan_peek(s);
	if (c != ',' && c != (unsigned char)close)
		return bad(s);
	s->p++;
	return c == ',';
}

int fs_scan_member(fs_scan *s, fs_scan_key *k)
{
	int esc;
	if (fs_scan_peek(s) != '"')
		return bad(s);
	k->raw = s->p;
	if (fs_scan_skip_string(s, &esc) != 0)
		return -1;
	k->raw_end = s->p;
	if (fs_scan_decode(k->raw + 1, k->raw_end - 1, k->name, sizeof(k->name), 1, &k->cut) < 0) {
		k->name[0] = '\0';
		k->cut = 1;
	}
	return fs_scan_take(s, ':');
}

int fs_scan_key_is(const fs_scan_key *k, const char *name)
{
	return !k->cut && strcmp(k->name, name) == 0;
}
