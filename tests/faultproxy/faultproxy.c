/*
 * tests/faultproxy/faultproxy.c: an HTTP/1.1 proxy for fault tests. It sits
 * between a client and a server on loopback, one connection at a time, and
 * damages answers as a control file says, read afresh for each connection:
 *
 *   MODE [COUNT [MATCH]]
 *
 * MODE: pass | reset (RST halfway through the body) | truncate (valid HTTP,
 * half the JSON) | garbage (bytes that are not JSON) | oversize (an endless
 * body) | slow (the whole answer, one byte every 200 ms) | hold (the headers
 * and half the body, then silence with the connection open, as a peer on a
 * dead route) | 500 | 503 | 429 (Retry-After: 1).
 * COUNT: damage only the next COUNT matching connections, then write "pass"
 * back (absent: forever). MATCH: damage only requests whose request line
 * contains it (e.g. "_bulk_docs"); others pass. Each damaged connection is
 * logged to stderr as "fault MODE pid PID: REQUEST LINE".
 *
 * Usage: faultproxy LISTEN_HOST LISTEN_PORT UPSTREAM_HOST UPSTREAM_PORT CTLFILE [--fork]
 * --fork serves each connection in a child process, so one held or dripping
 * answer does not stop the others (a daemon's longpoll, its next request).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define HDR_MAX        (64u << 10)
#define BODY_MAX       (128u << 20)
#define OVERSIZE_TOTAL (1u << 30)
#define IO_TIMEOUT_S   60

struct buf {
	char *p;
	size_t len, cap;
};

static int buf_add(struct buf *b, const void *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 8192;
		while (cap < b->len + n + 1)
			cap *= 2;
		char *q = realloc(b->p, cap);
		if (q == NULL)
			return -1;
		b->p = q;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
	return 0;
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static void set_timeouts(int fd)
{
	struct timeval tv = {.tv_sec = IO_TIMEOUT_S};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

/* Reads until the end of headers; returns the offset of the body or -1. */
static long read_headers(int fd, struct buf *b)
{
	char tmp[8192];
	for (;;) {
		char *end = b->p ? strstr(b->p, "\r\n\r\n") : NULL;
		if (end)
			return (long)(end - b->p) + 4;
		if (b->len > HDR_MAX)
			return -1;
		ssize_t n = read(fd, tmp, sizeof(tmp));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0 || buf_add(b, tmp, (size_t)n) != 0)
			return -1;
	}
}

/* Value of a header (case-insensitive name) within [p, p+hlen), or NULL. */
static const char *header(const char *p, size_t hlen, const char *name)
{
	size_t nl = strlen(name);
	const char *end = p + hlen;
	for (const char *l = strstr(p, "\r\n"); l && l + 2 < end; l = strstr(l + 2, "\r\n")) {
		const char *s = l + 2;
		if ((size_t)(end - s) > nl && strncasecmp(s, name, nl) == 0 && s[nl] == ':') {
			s += nl + 1;
			while (*s == ' ')
				s++;
			return s;
		}
	}
	return NULL;
}

static int read_more(int fd, struct buf *b, size_t want)
{
	char tmp[65536];
	while (b->len < want) {
		ssize_t n = read(fd, tmp, sizeof(tmp));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0 || buf_add(b, tmp, (size_t)n) != 0)
			return -1;
	}
	return 0;
}

static int read_to_eof(int fd, struct buf *b)
{
	char tmp[65536];
	for (;;) {
		ssize_t n = read(fd, tmp, sizeof(tmp));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			return 0;
		if (b->len > BODY_MAX || buf_add(b, tmp, (size_t)n) != 0)
			return -1;
	}
}

/* Decodes a chunked body in place; returns its length or -1. */
static long dechunk(char *p, size_t n)
{
	size_t in = 0, out = 0;
	for (;;) {
		char *end;
		unsigned long len = strtoul(p + in, &end, 16);
		char *crlf = strstr(p + in, "\r\n");
		if (crlf == NULL || end == p + in)
			return -1;
		in = (size_t)(crlf - p) + 2;
		if (len == 0)
			return (long)out;
		if (in + len > n)
			return -1;
		memmove(p + out, p + in, len);
		out += len;
		in += len + 2;
	}
}

struct ctl {
	char mode[32];
	long count; /* -1: forever */
	char match[128];
};

static void read_ctl(const char *path, struct ctl *c)
{
	FILE *f = fopen(path, "r");
	strcpy(c->mode, "pass");
	c->count = -1;
	c->match[0] = '\0';
	if (f == NULL)
		return;
	if (fscanf(f, "%31s %ld %127s", c->mode, &c->count, c->match) < 2)
		c->count = -1;
	fclose(f);
}

static void write_ctl(const char *path, const struct ctl *c)
{
	char tmp[4096];
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	FILE *f = fopen(tmp, "w");
	if (f == NULL)
		return;
	if (c->count == 0)
		fprintf(f, "pass\n");
	else
		fprintf(f, "%s %ld %s\n", c->mode, c->count, c->match);
	fclose(f);
	rename(tmp, path);
}

static void reset_close(int fd)
{
	struct linger l = {.l_onoff = 1, .l_linger = 0};
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
	close(fd);
}

static int connect_to(const char *host, int port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0 || inet_pton(AF_INET, host, &a.sin_addr) != 1 ||
	    connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	set_timeouts(fd);
	return fd;
}

static void canned(int fd, int status)
{
	char r[512];
	const char *text = status == 429   ? "Too Many Requests"
	                   : status == 503 ? "Service Unavailable"
	                                   : "Internal Server Error";
	const char *body = "{\"error\":\"fault\",\"reason\":\"injected by faultproxy\"}";
	snprintf(r, sizeof(r),
	         "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
	         "%sConnection: close\r\n\r\n%s",
	         status, text, strlen(body), status == 429 ? "Retry-After: 1\r\n" : "", body);
	write_all(fd, r, strlen(r));
	close(fd);
}

/* Copies the request upstream with Connection: close and no compression. */
static int forward_request(int up, const struct buf *req, size_t hlen)
{
	struct buf out = {0};
	const char *p = req->p, *end = req->p + hlen - 2;
	int rc = -1;

	for (const char *l = p; l < end;) {
		const char *nl = strstr(l, "\r\n");
		size_t n = (size_t)(nl - l) + 2;
		if (strncasecmp(l, "Connection:", 11) != 0 &&
		    strncasecmp(l, "Keep-Alive:", 11) != 0 &&
		    strncasecmp(l, "Accept-Encoding:", 16) != 0 && buf_add(&out, l, n) != 0)
			goto out;
		l = nl + 2;
	}
	if (buf_add(&out, "Connection: close\r\n\r\n", 21) != 0 ||
	    buf_add(&out, req->p + hlen, req->len - hlen) != 0)
		goto out;
	rc = write_all(up, out.p, out.len);
out:
	free(out.p);
	return rc;
}

static void serve(int cfd, const char *uhost, int uport, const char *ctlpath)
{
	struct buf req = {0}, resp = {0}, hdr = {0};
	struct ctl c;
	long hlen, rhlen, blen;
	const char *cl;
	int up = -1, fault;

	set_timeouts(cfd);
	read_ctl(ctlpath, &c);
	if ((hlen = read_headers(cfd, &req)) < 0)
		goto out;
	cl = header(req.p, (size_t)hlen, "Content-Length");
	if (cl && read_more(cfd, &req, (size_t)hlen + strtoul(cl, NULL, 10)) != 0)
		goto out;
	{
		char *eol = strstr(req.p, "\r\n");
		fault = strcmp(c.mode, "pass") != 0 && c.count != 0 &&
		        (c.match[0] == '\0' ||
		         (eol && memmem(req.p, (size_t)(eol - req.p), c.match, strlen(c.match))));
	}
	if (fault && c.count > 0) {
		c.count--;
		write_ctl(ctlpath, &c);
	}
	if (fault) {
		char *eol = strstr(req.p, "\r\n");
		fprintf(stderr, "fault %s pid %ld: %.*s\n", c.mode, (long)getpid(),
		        eol ? (int)(eol - req.p) : 0, req.p);
	}
	if (fault && (strcmp(c.mode, "500") == 0 || strcmp(c.mode, "503") == 0 ||
	              strcmp(c.mode, "429") == 0)) {
		canned(cfd, atoi(c.mode));
		cfd = -1;
		goto out;
	}
	if (fault && strcmp(c.mode, "oversize") == 0) {
		static const char h[] = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
		                        "Connection: close\r\n\r\n{\"results\":[";
		char spaces[65536];
		memset(spaces, ' ', sizeof(spaces));
		if (write_all(cfd, h, sizeof(h) - 1) == 0)
			for (size_t sent = 0; sent < OVERSIZE_TOTAL; sent += sizeof(spaces))
				if (write_all(cfd, spaces, sizeof(spaces)) != 0)
					break;
		goto out;
	}
	if ((up = connect_to(uhost, uport)) < 0 || forward_request(up, &req, (size_t)hlen) != 0 ||
	    read_to_eof(up, &resp) != 0 || (rhlen = read_headers(-1, &resp)) < 0)
		goto out;
	blen = (long)resp.len - rhlen;
	{
		const char *te = header(resp.p, (size_t)rhlen, "Transfer-Encoding");
		if (te && strncasecmp(te, "chunked", 7) == 0 &&
		    (blen = dechunk(resp.p + rhlen, resp.len - (size_t)rhlen)) < 0)
			goto out;
	}
	/* The answer again, with a length and Connection: close. */
	{
		const char *p = resp.p, *end = resp.p + rhlen - 2;
		for (const char *l = p; l < end;) {
			const char *nl = strstr(l, "\r\n");
			size_t n = (size_t)(nl - l) + 2;
			if (strncasecmp(l, "Connection:", 11) != 0 &&
			    strncasecmp(l, "Keep-Alive:", 11) != 0 &&
			    strncasecmp(l, "Content-Length:", 15) != 0 &&
			    strncasecmp(l, "Transfer-Encoding:", 18) != 0)
				buf_add(&hdr, l, n);
			l = nl + 2;
		}
	}
	char *body = resp.p + rhlen;
	long send_len = blen, declared = blen;
	if (fault && strcmp(c.mode, "truncate") == 0)
		send_len = declared = blen / 2;
	if (fault && (strcmp(c.mode, "reset") == 0 || strcmp(c.mode, "hold") == 0))
		send_len = blen / 2;
	if (fault && strcmp(c.mode, "garbage") == 0)
		for (long i = 0; i < blen; i++)
			body[i] = (char)("{[\"x:,}]\\"[(i * 7 + 3) % 9]);
	char tail[96];
	snprintf(tail, sizeof(tail), "Content-Length: %ld\r\nConnection: close\r\n\r\n", declared);
	buf_add(&hdr, tail, strlen(tail));
	if (fault && strcmp(c.mode, "slow") == 0) {
		/* Headers too: even a tiny answer takes longer than any low-speed limit. */
		struct timespec ts = {.tv_nsec = 200000000L};
		if (buf_add(&hdr, body, (size_t)send_len) != 0)
			goto out;
		for (size_t i = 0; i < hdr.len; i++) {
			if (write_all(cfd, hdr.p + i, 1) != 0)
				break;
			nanosleep(&ts, NULL);
		}
	} else if (write_all(cfd, hdr.p, hdr.len) != 0 ||
	           write_all(cfd, body, (size_t)send_len) != 0) {
		goto out;
	}
	if (fault && strcmp(c.mode, "reset") == 0) {
		reset_close(cfd);
		cfd = -1;
	}
	if (fault && strcmp(c.mode, "hold") == 0) {
		/* Silent until the client gives up (or our I/O timeout ends it). */
		char x;
		while (read(cfd, &x, 1) > 0)
			;
	}
out:
	if (up >= 0)
		close(up);
	if (cfd >= 0)
		close(cfd);
	free(req.p);
	free(resp.p);
	free(hdr.p);
}

int main(int argc, char **argv)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	int one = 1, lfd;

	int forking = argc == 7 && strcmp(argv[6], "--fork") == 0;

	if (argc != 6 && !forking) {
		fprintf(stderr, "usage: faultproxy LISTEN_HOST LISTEN_PORT UP_HOST UP_PORT CTLFILE "
		                "[--fork]\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	if (forking)
		signal(SIGCHLD, SIG_IGN); /* children are reaped by the kernel */
	a.sin_port = htons((uint16_t)atoi(argv[2]));
	if (inet_pton(AF_INET, argv[1], &a.sin_addr) != 1 ||
	    (lfd = socket(AF_INET, SOCK_STREAM, 0)) < 0 ||
	    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    bind(lfd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(lfd, 64) != 0) {
		perror("faultproxy: listen");
		return 1;
	}
	for (;;) {
		int cfd = accept(lfd, NULL, NULL);
		if (cfd < 0) {
			if (errno == EINTR)
				continue;
			perror("faultproxy: accept");
			return 1;
		}
		if (!forking) {
			serve(cfd, argv[3], atoi(argv[4]), argv[5]);
			continue;
		}
		pid_t pid = fork();
		if (pid == 0) {
			close(lfd);
			serve(cfd, argv[3], atoi(argv[4]), argv[5]);
			_exit(0);
		}
		if (pid < 0)
			perror("faultproxy: fork");
		close(cfd);
	}
}
