/*
 * hub/scan.c: the parsers of the hub's batch requests (_bulk_docs,
 * _revs_diff, _bulk_get), which carry up to thousands of documents each.
 * A scanner reads the text once and validates it as it goes (RFC 8259,
 * nesting bounded before it recurses) without building a tree: a
 * document's body is the bytes of its members as they came, whitespace
 * between tokens dropped, with one allocation per document instead of one
 * per value. cJSON, which the single-document parsers in parse.c still
 * use, spent a third of the hub's time on a push allocating and freeing a
 * node per value and printing every body again.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hub_int.h"

#define KEY_PREFIX 32  /* decoded bytes of a member name kept to tell a special member */
#define NUMBER_MAX 400 /* characters of _revisions.start worth reading */

typedef struct scan {
	const char *p, *end;
	int max_depth;
	int ws; /* whitespace was skipped since the caller cleared it */
	int rc; /* FS_OK, or the first error (its message is in eb) */
	fs_errbuf *eb;
} scan;

static const char not_json[] = "Request body is not valid JSON";

/* Records the first error; always -1, for `return fail(...)`. */
static int fail(scan *s, int rc, const char *why)
{
	if (s->rc == FS_OK)
		s->rc = fs_err_set(s->eb, rc, "%s", why);
	return -1;
}

static int too_deep(scan *s)
{
	if (s->rc == FS_OK)
		s->rc = fs_err_set(s->eb, FS_E_INPUT, "JSON nested deeper than %d levels",
		                   s->max_depth);
	return -1;
}

static int is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* The next byte after whitespace (not taken), or -1 at the end. */
static int peek(scan *s)
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

static int take(scan *s, char c)
{
	if (peek(s) != (unsigned char)c)
		return fail(s, FS_E_INPUT, not_json);
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

/* Checks the string at s->p (its opening quote) and steps past it. *esc: it has escapes. */
static int skip_string(scan *s, int *esc)
{
	const char *p = s->p + 1, *end = s->end;
	*esc = 0;
	for (;;) {
		while (end - p >= 8 && plain8(p))
			p += 8;
		while (p < end && (unsigned char)*p >= 0x20 && *p != '"' && *p != '\\')
			p++;
		if (p >= end || (unsigned char)*p < 0x20)
			return fail(s, FS_E_INPUT, not_json);
		if (*p == '"') {
			s->p = p + 1;
			return 0;
		}
		*esc = 1;
		if (end - p < 2)
			return fail(s, FS_E_INPUT, not_json);
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
				return fail(s, FS_E_INPUT, not_json);
			p += used;
			break;
		}
		default:
			return fail(s, FS_E_INPUT, not_json);
		}
	}
}

/*
 * Decodes a string already checked by skip_string, [raw, raw_end) between
 * its quotes, into out (cap bytes with the NUL). Returns the decoded
 * length, or -1 when it does not fit or holds U+0000 (no C string can).
 * With prefix set, a string too long is cut to cap-1 bytes and *cut set.
 */
static long decode(const char *raw, const char *raw_end, char *out, size_t cap, int prefix,
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
			if (escape_u(p, raw_end, &cp, &used) != 0 || cp == 0)
				return -1;
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

/*
 * The string at s->p into out, or a failure with why (wrong type, too
 * long, U+0000). *len (may be NULL) gets its length.
 */
static int string_into(scan *s, char *out, size_t cap, size_t *len, const char *why)
{
	const char *raw;
	long n;
	int esc;
	if (peek(s) != '"')
		return fail(s, FS_E_INPUT, why);
	raw = s->p + 1;
	if (skip_string(s, &esc) != 0)
		return -1;
	if (!esc) { /* the usual case: the bytes are the string */
		size_t k = (size_t)(s->p - 1 - raw);
		if (k >= cap || memchr(raw, '\0', k))
			return fail(s, FS_E_INPUT, why);
		memcpy(out, raw, k);
		out[k] = '\0';
		n = (long)k;
	} else if ((n = decode(raw, s->p - 1, out, cap, 0, NULL)) < 0) {
		return fail(s, FS_E_INPUT, why);
	}
	if (len)
		*len = (size_t)n;
	return 0;
}

static int skip_number(scan *s)
{
	const char *p = s->p, *end = s->end;
	if (p < end && *p == '-')
		p++;
	if (p >= end)
		return fail(s, FS_E_INPUT, not_json);
	if (*p == '0') {
		p++;
	} else if (*p >= '1' && *p <= '9') {
		while (p < end && *p >= '0' && *p <= '9')
			p++;
	} else {
		return fail(s, FS_E_INPUT, not_json);
	}
	if (p < end && *p == '.') {
		p++;
		if (p >= end || *p < '0' || *p > '9')
			return fail(s, FS_E_INPUT, not_json);
		while (p < end && *p >= '0' && *p <= '9')
			p++;
	}
	if (p < end && (*p == 'e' || *p == 'E')) {
		p++;
		if (p < end && (*p == '+' || *p == '-'))
			p++;
		if (p >= end || *p < '0' || *p > '9')
			return fail(s, FS_E_INPUT, not_json);
		while (p < end && *p >= '0' && *p <= '9')
			p++;
	}
	s->p = p;
	return 0;
}

static int skip_literal(scan *s, const char *lit, size_t n)
{
	if ((size_t)(s->end - s->p) < n || memcmp(s->p, lit, n) != 0)
		return fail(s, FS_E_INPUT, not_json);
	s->p += n;
	return 0;
}

static int next_item(scan *s, char close);

/* Checks any value at s->p and steps past it; depth: the containers it is in. */
static int skip_value(scan *s, int depth)
{
	int c = peek(s), esc;
	switch (c) {
	case '{':
	case '[': {
		char close = c == '{' ? '}' : ']';
		int more;
		if (depth + 1 > s->max_depth)
			return too_deep(s);
		s->p++;
		if (peek(s) == (unsigned char)close) {
			s->p++;
			return 0;
		}
		do {
			if (c == '{' &&
			    (peek(s) != '"' || skip_string(s, &esc) != 0 || take(s, ':') != 0))
				return fail(s, FS_E_INPUT, not_json);
			if (skip_value(s, depth + 1) != 0)
				return -1;
		} while ((more = next_item(s, close)) > 0);
		return more;
	}
	case '"':
		return skip_string(s, &esc);
	case 't':
		return skip_literal(s, "true", 4);
	case 'f':
		return skip_literal(s, "false", 5);
	case 'n':
		return skip_literal(s, "null", 4);
	default:
		return skip_number(s);
	}
}

/* A value into b as it came, whitespace outside strings dropped. */
static int copy_value(scan *s, hub_buf *b, int depth)
{
	const char *start, *q;
	(void)peek(s);
	start = s->p;
	s->ws = 0;
	if (skip_value(s, depth) != 0)
		return -1;
	if (!s->ws) { /* compact already, as replicators send it */
		hub_buf_add(b, start, (size_t)(s->p - start));
		return 0;
	}
	for (q = start; q < s->p;) {
		if (*q == '"') { /* checked: the next unescaped quote ends it */
			const char *e = q + 1;
			while (*e != '"')
				e += *e == '\\' ? 2 : 1;
			hub_buf_add(b, q, (size_t)(e + 1 - q));
			q = e + 1;
		} else if (is_ws(*q)) {
			q++;
		} else {
			hub_buf_add(b, q, 1);
			q++;
		}
	}
	return 0;
}

/* The text ends after the value: whitespace may follow, nothing else (not even a NUL). */
static int finish(scan *s)
{
	if (peek(s) != -1)
		return fail(s, FS_E_INPUT, not_json);
	return 0;
}

/* Opens an object at s->p: 0 and *empty when it closes at once. */
static int object_open(scan *s, int depth, int *empty, const char *why)
{
	if (peek(s) != '{')
		return fail(s, FS_E_INPUT, why);
	if (depth + 1 > s->max_depth)
		return too_deep(s);
	s->p++;
	*empty = peek(s) == '}';
	if (*empty)
		s->p++;
	return 0;
}

/* After a member or element: 1 when another follows, 0 at the close, -1 on error. */
static int next_item(scan *s, char close)
{
	int c = peek(s);
	if (c != ',' && c != (unsigned char)close)
		return fail(s, FS_E_INPUT, not_json);
	s->p++;
	return c == ',';
}

/* A member name: its raw span (quotes included) and its decoded start. */
typedef struct key {
	const char *raw, *raw_end;
	char name[KEY_PREFIX];
	int cut; /* longer than name holds */
} key;

static int member_name(scan *s, key *k)
{
	int esc;
	if (peek(s) != '"')
		return fail(s, FS_E_INPUT, not_json);
	k->raw = s->p;
	if (skip_string(s, &esc) != 0)
		return -1;
	k->raw_end = s->p;
	if (decode(k->raw + 1, k->raw_end - 1, k->name, sizeof(k->name), 1, &k->cut) < 0) {
		/* U+0000 in a name: it can never be a special one */
		k->name[0] = '\0';
		k->cut = 1;
	}
	return take(s, ':');
}

static int key_is(const key *k, const char *name)
{
	return !k->cut && strcmp(k->name, name) == 0;
}

static int rev_ok(const char *rev)
{
	return strlen(rev) < FS_REV_MAX && fs_crypto_rev_parse(rev, NULL, NULL) == FS_OK;
}

/* ---- _bulk_docs ---- */

void hub_bulk_docs_clear(hub_bulk_docs *b)
{
	if (b == NULL)
		return;
	for (size_t i = 0; i < b->n; i++)
		hub_doc_in_clear(&b->v[i]);
	free(b->v);
	memset(b, 0, sizeof(*b));
}

/* _revisions: {"start": N, "ids": ["hash", ...]}, newest first; the first start and ids count. */
static int scan_revisions(scan *s, hub_doc_in *d, int depth)
{
	static const char why[] = "_revisions needs start and ids";
	const char *num = NULL, *num_end = NULL;
	int empty, more, have_ids = 0;
	key k;
	size_t cap = 0;

	if (object_open(s, depth, &empty, why) != 0)
		return -1;
	for (more = !empty; more > 0; more = next_item(s, '}')) {
		if (member_name(s, &k) != 0)
			return -1;
		if (key_is(&k, "start") && num == NULL) {
			int c = peek(s);
			if (c != '-' && (c < '0' || c > '9'))
				return fail(s, FS_E_INPUT, why);
			num = s->p;
			if (skip_number(s) != 0)
				return -1;
			num_end = s->p;
		} else if (key_is(&k, "ids") && !have_ids) {
			int e2;
			have_ids = 1;
			if (peek(s) != '[')
				return fail(s, FS_E_INPUT, why);
			if (depth + 2 > s->max_depth)
				return too_deep(s);
			s->p++;
			if (peek(s) == ']') {
				s->p++;
				continue;
			}
			for (e2 = 1; e2 > 0; e2 = next_item(s, ']')) {
				char tmp[FS_REV_MAX];
				size_t n;
				if (d->n_hashes >= FS_STORE_HISTORY_MAX)
					return fail(s, FS_E_INPUT, "_revisions out of range");
				tmp[0] = '1';
				tmp[1] = '-';
				if (string_into(s, tmp + 2, sizeof(tmp) - 2, &n,
				                "bad hash in _revisions") != 0)
					return -1;
				if (!rev_ok(tmp))
					return fail(s, FS_E_INPUT, "bad hash in _revisions");
				if (d->n_hashes == cap) {
					size_t nc = cap ? cap * 2 : 4;
					char **v = realloc(d->hashes, nc * sizeof(*v));
					if (v == NULL)
						return fail(s, FS_E_NOMEM, "out of memory");
					d->hashes = v;
					cap = nc;
				}
				if ((d->hashes[d->n_hashes] = malloc(n + 1)) == NULL)
					return fail(s, FS_E_NOMEM, "out of memory");
				memcpy(d->hashes[d->n_hashes++], tmp + 2, n + 1);
			}
			if (e2 < 0)
				return -1;
		} else if (skip_value(s, depth + 1) != 0) {
			return -1;
		}
	}
	if (more < 0)
		return -1;
	if (num == NULL || !have_ids)
		return fail(s, FS_E_INPUT, why);
	{
		char text[NUMBER_MAX];
		double start;
		if ((size_t)(num_end - num) >= sizeof(text))
			return fail(s, FS_E_INPUT, "_revisions out of range");
		memcpy(text, num, (size_t)(num_end - num));
		text[num_end - num] = '\0';
		start = strtod(text, NULL); /* a checked JSON number: strtod reads all of it */
		if (start < 1 || start > 1e15 || d->n_hashes < 1 || (double)d->n_hashes > start)
			return fail(s, FS_E_INPUT, "_revisions out of range");
		d->rev_start = (unsigned long)start;
	}
	return 0;
}

/* _attachments may be empty (the hub stores envelopes, no attachments). */
static int scan_attachments(scan *s, int depth)
{
	int c = peek(s);
	if (c == '{' || c == '[') {
		const char *save = s->p;
		char close = c == '{' ? '}' : ']';
		s->p++;
		if (peek(s) != (unsigned char)close)
			return fail(s, FS_E_INPUT, "the hub stores no attachments");
		s->p = save;
	}
	return skip_value(s, depth);
}

/*
 * One document of the docs array: its special members split off (the
 * rules of parse.c's parse_doc), the others copied into its body.
 * scratch: reused from document to document.
 */
static int scan_doc(scan *s, hub_doc_in *d, hub_buf *scratch, int depth)
{
	int empty, more, first = 1;
	key k;

	memset(d, 0, sizeof(*d));
	scratch->len = 0;
	if (object_open(s, depth, &empty, "Document must be a JSON object") != 0)
		return -1;
	hub_buf_add(scratch, "{", 1);
	for (more = !empty; more > 0; more = next_item(s, '}')) {
		if (member_name(s, &k) != 0)
			return -1;
		if (k.name[0] != '_') {
			if (!first)
				hub_buf_add(scratch, ",", 1);
			first = 0;
			hub_buf_add(scratch, k.raw, (size_t)(k.raw_end - k.raw));
			hub_buf_add(scratch, ":", 1);
			if (copy_value(s, scratch, depth + 1) != 0)
				return -1;
		} else if (key_is(&k, "_id")) {
			char id[FS_STORE_ID_MAX + 1];
			size_t n;
			if (d->id)
				return fail(s, FS_E_INPUT, "Document id must be a string");
			if (string_into(s, id, sizeof(id), &n,
			                "Document id must be a string of at most 1024 bytes") != 0)
				return -1;
			if ((d->id = malloc(n + 1)) == NULL)
				return fail(s, FS_E_NOMEM, "out of memory");
			memcpy(d->id, id, n + 1);
		} else if (key_is(&k, "_rev")) {
			char rev[FS_REV_MAX];
			size_t n;
			if (d->rev ||
			    string_into(s, rev, sizeof(rev), &n, "Invalid rev format") != 0)
				return fail(s, FS_E_INPUT, "Invalid rev format");
			if (!rev_ok(rev))
				return fail(s, FS_E_INPUT, "Invalid rev format");
			if ((d->rev = malloc(n + 1)) == NULL)
				return fail(s, FS_E_NOMEM, "out of memory");
			memcpy(d->rev, rev, n + 1);
		} else if (key_is(&k, "_deleted")) {
			int c = peek(s);
			if (c == 't' && skip_literal(s, "true", 4) == 0)
				d->deleted = 1;
			else if (c == 'f' && skip_literal(s, "false", 5) == 0)
				d->deleted = 0;
			else
				return fail(s, FS_E_INPUT, "_deleted must be a boolean");
		} else if (key_is(&k, "_revisions")) {
			if (d->hashes)
				return fail(s, FS_E_INPUT, "_revisions twice");
			if (scan_revisions(s, d, depth + 1) != 0)
				return -1;
		} else if (key_is(&k, "_attachments")) {
			if (scan_attachments(s, depth + 1) != 0)
				return -1;
		} else if (key_is(&k, "_conflicts") || key_is(&k, "_deleted_conflicts") ||
		           key_is(&k, "_local_seq")) {
			/* read-side annotations a client may echo back */
			if (skip_value(s, depth + 1) != 0)
				return -1;
		} else {
			if (s->rc == FS_OK)
				s->rc = fs_err_set(s->eb, FS_E_INPUT,
				                   "Bad special document member: %.31s%s", k.name,
				                   k.cut ? "..." : "");
			return -1;
		}
	}
	if (more < 0)
		return -1;
	hub_buf_add(scratch, "}", 1);
	if (d->n_hashes && d->rev) {
		unsigned long g;
		const char *h;
		if (fs_crypto_rev_parse(d->rev, &g, &h) != FS_OK || g != d->rev_start ||
		    strcmp(h, d->hashes[0]) != 0)
			return fail(s, FS_E_INPUT, "_rev does not match _revisions");
	}
	if (scratch->err)
		return fail(s, FS_E_NOMEM, "out of memory");
	if (scratch->len > FS_STORE_BODY_MAX) {
		if (s->rc == FS_OK)
			s->rc = fs_err_set(s->eb, FS_E_TOOBIG, "document body over %u bytes",
			                   FS_STORE_BODY_MAX);
		return -1;
	}
	if ((d->body = malloc(scratch->len + 1)) == NULL)
		return fail(s, FS_E_NOMEM, "out of memory");
	memcpy(d->body, scratch->p, scratch->len + 1);
	d->body_len = scratch->len;
	return 0;
}

static int too_many(scan *s, size_t max_docs)
{
	if (s->rc == FS_OK)
		s->rc = fs_err_set(s->eb, FS_E_TOOBIG, "more than %zu documents in one request",
		                   max_docs);
	return -1;
}

/* Opens the text: its size bounded, a scanner over it. */
static int scan_start(scan *s, const char *body, size_t len, size_t max_len, int depth,
                      fs_errbuf *eb)
{
	memset(s, 0, sizeof(*s));
	s->p = body;
	s->end = body + len;
	s->max_depth = depth;
	s->eb = eb;
	if (len > max_len)
		return fs_err_set(eb, FS_E_TOOBIG, "JSON of %zu bytes exceeds the limit of %zu",
		                  len, max_len);
	return FS_OK;
}

static int scan_docs(scan *s, hub_bulk_docs *b, size_t max_docs)
{
	hub_buf scratch = {0};
	size_t cap = 0;
	int more;
	if (peek(s) != '[')
		return fail(s, FS_E_INPUT, "POST body must include `docs` parameter.");
	if (2 > s->max_depth)
		return too_deep(s);
	s->p++;
	if (peek(s) == ']') {
		s->p++;
		return 0;
	}
	for (more = 1; more > 0; more = next_item(s, ']')) {
		if (b->n == max_docs) {
			more = too_many(s, max_docs);
			break;
		}
		if (b->n == cap) {
			size_t nc = cap ? cap * 2 : 64;
			hub_doc_in *v = realloc(b->v, nc * sizeof(*v));
			if (v == NULL) {
				more = fail(s, FS_E_NOMEM, "out of memory");
				break;
			}
			b->v = v;
			cap = nc;
		}
		/* Counted before it is complete, so the clear frees what it holds. */
		if (scan_doc(s, &b->v[b->n++], &scratch, 2) != 0) {
			more = -1;
			break;
		}
	}
	hub_buf_free(&scratch);
	return more < 0 ? -1 : 0;
}

int hub_parse_bulk_docs(const char *body, size_t len, size_t max_len, int depth, size_t max_docs,
                        hub_bulk_docs *out, fs_errbuf *eb)
{
	hub_bulk_docs b = {.new_edits = 1};
	int have_docs = 0, have_ne = 0, empty, more, rc;
	scan s;
	key k;

	memset(out, 0, sizeof(*out));
	if ((rc = scan_start(&s, body, len, max_len, depth, eb)) != FS_OK)
		return rc;
	if (object_open(&s, 0, &empty, "POST body must include `docs` parameter.") != 0)
		goto out;
	for (more = !empty; more > 0; more = next_item(&s, '}')) {
		if (member_name(&s, &k) != 0)
			goto out;
		if (key_is(&k, "docs") && !have_docs) {
			have_docs = 1;
			if (scan_docs(&s, &b, max_docs) != 0)
				goto out;
		} else if (key_is(&k, "new_edits") && !have_ne) {
			int c = peek(&s);
			have_ne = 1;
			if (c == 't' && skip_literal(&s, "true", 4) == 0)
				b.new_edits = 1;
			else if (c == 'f' && skip_literal(&s, "false", 5) == 0)
				b.new_edits = 0;
			else
				goto bad_ne;
		} else if (skip_value(&s, 1) != 0) {
			goto out;
		}
	}
	if (more < 0 || finish(&s) != 0)
		goto out;
	if (!have_docs) {
		fail(&s, FS_E_INPUT, "POST body must include `docs` parameter.");
		goto out;
	}
	/* new_edits may come after docs: the checks that need it wait for the end. */
	for (size_t i = 0; i < b.n; i++) {
		const hub_doc_in *d = &b.v[i];
		if (d->id && !hub_docid_ok(d->id)) {
			fail(&s, FS_E_INPUT,
			     "Only reserved document ids may start with underscore.");
			goto out;
		}
		if (!b.new_edits && (d->id == NULL || d->rev == NULL)) {
			fail(&s, FS_E_INPUT, "new_edits:false needs _id and _rev");
			goto out;
		}
	}
	*out = b;
	memset(&b, 0, sizeof(b));
	return FS_OK;
bad_ne:
	fail(&s, FS_E_INPUT, "`new_edits` parameter must be a boolean.");
out:
	hub_bulk_docs_clear(&b);
	return s.rc != FS_OK ? s.rc : fs_err_set(eb, FS_E_INPUT, not_json);
}

/* ---- _revs_diff: {"id":["rev",...],...} ---- */

void hub_revs_diff_clear(hub_revs_diff *d)
{
	if (d == NULL)
		return;
	for (size_t i = 0; i < d->n; i++) {
		free((char *)d->q[i].id);
		hub_strv_free((char **)d->q[i].revs, d->q[i].n);
	}
	free(d->q);
	memset(d, 0, sizeof(*d));
}

static int scan_diff_revs(scan *s, fs_store_diff_query *q, size_t *total)
{
	char **revs = NULL;
	size_t cap = 0;
	int more;
	static const char why[] = "revs_diff values must be arrays of revisions";
	if (peek(s) != '[')
		return fail(s, FS_E_INPUT, why);
	if (2 > s->max_depth)
		return too_deep(s);
	s->p++;
	if (peek(s) == ']') {
		s->p++;
		return 0;
	}
	for (more = 1; more > 0; more = next_item(s, ']')) {
		char rev[FS_REV_MAX];
		size_t n;
		if (++*total > FS_STORE_HISTORY_MAX) {
			if (s->rc == FS_OK)
				s->rc = fs_err_set(s->eb, FS_E_TOOBIG,
				                   "too many revisions in one request");
			return -1;
		}
		if (string_into(s, rev, sizeof(rev), &n, "Invalid rev format") != 0)
			return -1;
		if (!rev_ok(rev))
			return fail(s, FS_E_INPUT, "Invalid rev format");
		if (q->n == cap) {
			size_t nc = cap ? cap * 2 : 4;
			if ((revs = realloc((void *)q->revs, nc * sizeof(*revs))) == NULL)
				return fail(s, FS_E_NOMEM, "out of memory");
			q->revs = (const char *const *)revs;
			cap = nc;
		}
		if ((revs[q->n] = malloc(n + 1)) == NULL)
			return fail(s, FS_E_NOMEM, "out of memory");
		memcpy(revs[q->n++], rev, n + 1);
	}
	return more < 0 ? -1 : 0;
}

int hub_parse_revs_diff(const char *body, size_t len, size_t max_len, int depth, size_t max_docs,
                        hub_revs_diff *out, fs_errbuf *eb)
{
	hub_revs_diff d = {0};
	size_t cap = 0, total = 0;
	int empty, more, rc;
	scan s;

	memset(out, 0, sizeof(*out));
	if ((rc = scan_start(&s, body, len, max_len, depth, eb)) != FS_OK)
		return rc;
	if (object_open(&s, 0, &empty, "Request body must be a JSON object") != 0)
		goto out;
	for (more = !empty; more > 0; more = next_item(&s, '}')) {
		char id[FS_STORE_ID_MAX + 1];
		size_t n;
		if (d.n == max_docs) {
			too_many(&s, max_docs);
			goto out;
		}
		if (d.n == cap) {
			size_t nc = cap ? cap * 2 : 64;
			fs_store_diff_query *v = realloc(d.q, nc * sizeof(*v));
			if (v == NULL) {
				fail(&s, FS_E_NOMEM, "out of memory");
				goto out;
			}
			d.q = v;
			cap = nc;
		}
		if (string_into(&s, id, sizeof(id), &n,
		                "revs_diff values must be arrays of revisions") != 0 ||
		    take(&s, ':') != 0)
			goto out;
		if (n == 0) {
			fail(&s, FS_E_INPUT, "revs_diff values must be arrays of revisions");
			goto out;
		}
		fs_store_diff_query *q = &d.q[d.n];
		memset(q, 0, sizeof(*q));
		if ((q->id = malloc(n + 1)) == NULL) {
			fail(&s, FS_E_NOMEM, "out of memory");
			goto out;
		}
		memcpy((char *)q->id, id, n + 1);
		d.n++; /* counted now, so the clear frees what it holds */
		if (scan_diff_revs(&s, q, &total) != 0)
			goto out;
	}
	if (more < 0 || finish(&s) != 0)
		goto out;
	*out = d;
	return FS_OK;
out:
	hub_revs_diff_clear(&d);
	return s.rc != FS_OK ? s.rc : fs_err_set(eb, FS_E_INPUT, not_json);
}

/* ---- _bulk_get: {"docs":[{"id":..,"rev":..},...]} (rev optional) ---- */

void hub_bulk_get_clear(hub_bulk_get *g)
{
	if (g == NULL)
		return;
	hub_strv_free(g->ids, g->n);
	hub_strv_free(g->revs, g->n);
	memset(g, 0, sizeof(*g));
}

static int scan_get_one(scan *s, hub_bulk_get *g)
{
	static const char why[] = "each of docs needs a string id and rev";
	char id[FS_STORE_ID_MAX + 1], rev[FS_REV_MAX];
	size_t id_n = 0, rev_n = 0;
	int empty, more, have_id = 0, have_rev = 0;
	key k;

	if (object_open(s, 2, &empty, why) != 0)
		return -1;
	for (more = !empty; more > 0; more = next_item(s, '}')) {
		if (member_name(s, &k) != 0)
			return -1;
		if (key_is(&k, "id") && !have_id) {
			have_id = 1;
			if (string_into(s, id, sizeof(id), &id_n, why) != 0)
				return -1;
		} else if (key_is(&k, "rev") && !have_rev) {
			have_rev = 1;
			if (string_into(s, rev, sizeof(rev), &rev_n, why) != 0)
				return -1;
			if (!rev_ok(rev))
				return fail(s, FS_E_INPUT, why);
		} else if (skip_value(s, 3) != 0) {
			return -1;
		}
	}
	if (more < 0)
		return -1;
	if (!have_id || id_n == 0)
		return fail(s, FS_E_INPUT, why);
	g->ids[g->n] = malloc(id_n + 1);
	g->revs[g->n] = have_rev ? malloc(rev_n + 1) : NULL;
	g->n++; /* counted now, so the clear frees what it holds */
	if (g->ids[g->n - 1] == NULL || (have_rev && g->revs[g->n - 1] == NULL))
		return fail(s, FS_E_NOMEM, "out of memory");
	memcpy(g->ids[g->n - 1], id, id_n + 1);
	if (have_rev)
		memcpy(g->revs[g->n - 1], rev, rev_n + 1);
	return 0;
}

static int scan_get_docs(scan *s, hub_bulk_get *g, size_t max_docs)
{
	size_t cap = 0;
	int more;
	if (peek(s) != '[')
		return fail(s, FS_E_INPUT, "Missing JSON list of 'docs'.");
	if (2 > s->max_depth)
		return too_deep(s);
	s->p++;
	if (peek(s) == ']') {
		s->p++;
		return 0;
	}
	for (more = 1; more > 0; more = next_item(s, ']')) {
		if (g->n == max_docs)
			return too_many(s, max_docs);
		if (g->n == cap) {
			size_t nc = cap ? cap * 2 : 64;
			char **ids = realloc(g->ids, nc * sizeof(*ids)), **revs;
			if (ids == NULL)
				return fail(s, FS_E_NOMEM, "out of memory");
			g->ids = ids;
			if ((revs = realloc(g->revs, nc * sizeof(*revs))) == NULL)
				return fail(s, FS_E_NOMEM, "out of memory");
			g->revs = revs;
			cap = nc;
		}
		if (scan_get_one(s, g) != 0)
			return -1;
	}
	return more < 0 ? -1 : 0;
}

int hub_parse_bulk_get(const char *body, size_t len, size_t max_len, int depth, size_t max_docs,
                       hub_bulk_get *out, fs_errbuf *eb)
{
	hub_bulk_get g = {0};
	int have_docs = 0, empty, more, rc;
	scan s;
	key k;

	memset(out, 0, sizeof(*out));
	if ((rc = scan_start(&s, body, len, max_len, depth, eb)) != FS_OK)
		return rc;
	if (object_open(&s, 0, &empty, "Missing JSON list of 'docs'.") != 0)
		goto out;
	for (more = !empty; more > 0; more = next_item(&s, '}')) {
		if (member_name(&s, &k) != 0)
			goto out;
		if (key_is(&k, "docs") && !have_docs) {
			have_docs = 1;
			if (scan_get_docs(&s, &g, max_docs) != 0)
				goto out;
		} else if (skip_value(&s, 1) != 0) {
			goto out;
		}
	}
	if (more < 0 || finish(&s) != 0)
		goto out;
	if (!have_docs) {
		fail(&s, FS_E_INPUT, "Missing JSON list of 'docs'.");
		goto out;
	}
	*out = g;
	return FS_OK;
out:
	hub_bulk_get_clear(&g);
	return s.rc != FS_OK ? s.rc : fs_err_set(eb, FS_E_INPUT, not_json);
}
