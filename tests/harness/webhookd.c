/*
 * webhookd.c: test fixture: a scripted HTTP/1.1 webhook receiver on 127.0.0.1 for the notifier's
 * integration test (tests/integration/notify.sh).
 *
 * webhookd [--port N] [--port-file F] [--log F] --route PATH=SPEC...
 *
 * Each route answers its requests from a script of comma-separated answers, one per request, the
 * last one repeating: a status ("200", "500", "410"), a status with Retry-After ("429:2" sends
 * "Retry-After: 2", "503:@3" an HTTP date 3 s from now), "hang" (reads the request and never
 * answers, until the client goes away) or "reset" (reads the request, then closes with an RST).
 * A path no route names gets 404; a POST, PUT or PATCH without Content-Length, or any request with
 * Transfer-Encoding, gets 411 (chunked bodies are not supported). "Expect: 100-continue" is
 * answered. The query string is not part of the path.
 *
 * Every request is logged to --log F (default stderr) as one JSON line, flushed at once:
 *   {"n", "conn", "t_ms", "method", "path", "headers": {lower-cased name: value}, "body", "answer"}
 * n counts requests from 1, conn connections from 1, t_ms is the time the request was complete in
 * ms since start (monotonic), body is the exact bytes received (bytes that are not UTF-8 are
 * escaped as \u00XX), answer what was done: the script item ("200", "429:2", "hang", "reset"),
 * "404", "411", or "400" / "413" / "431" for a malformed or oversized request. The listening port
 * is written to --port-file F (written whole, then renamed) once the socket listens; --port 0 (the
 * default) lets the kernel pick one, --port N reuses a port (SO_REUSEADDR). Connections are served
 * by a thread each, with keep-alive. SIGTERM or SIGINT: stops, exit 0.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define MAX_HEAD (64 * 1024)
#define MAX_BODY (16 * 1024 * 1024)

enum answer_kind { ANSWER_STATUS, ANSWER_HANG, ANSWER_RESET };

struct answer {
	enum answer_kind kind;
	int              status;
	int              retry_after;   /* seconds; -1: no header */
	bool             retry_date;    /* Retry-After as an HTTP date */
	char            *text;          /* the script item, as logged */
};

struct route {
	char          *path;
	struct answer *answers;
	size_t         nanswers;
	size_t         next;            /* requests answered so far (under routes_mu) */
};

struct conn {
	int             fd;             /* -1 once closed (under conns_mu) */
	unsigned        id;
	pthread_t       thread;
	bool            done;           /* the thread has finished (under conns_mu) */
	struct conn    *next;
};

/* A growable byte buffer. */
struct buf {
	char  *data;
	size_t len, cap;
};

static struct route *routes;
static size_t nroutes;
static pthread_mutex_t routes_mu = PTHREAD_MUTEX_INITIALIZER;

static struct conn *conns;
static unsigned nconns;
static pthread_mutex_t conns_mu = PTHREAD_MUTEX_INITIALIZER;

static int log_fd = STDERR_FILENO;
static unsigned long long nrequests;
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;

static struct timespec started;
static volatile sig_atomic_t stopping;

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void
die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("webhookd: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

static void *
xrealloc_(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);
	if (q == NULL)
		die("out of memory");
	return q;
}

static char *
xstrndup_(const char *s, size_t n)
{
	char *d = strndup(s, n);
	if (d == NULL)
		die("out of memory");
	return d;
}

/* A copy of n bytes (NULs included), NUL-terminated. */
static char *
xmemdup_(const char *s, size_t n)
{
	char *d = xrealloc_(NULL, n + 1);
	memcpy(d, s, n);
	d[n] = '\0';
	return d;
}

static void
buf_reserve(struct buf *b, size_t more)
{
	if (b->len + more + 1 <= b->cap)
		return;
	size_t cap = b->cap ? b->cap : 256;
	while (cap < b->len + more + 1)
		cap *= 2;
	b->data = xrealloc_(b->data, cap);
	b->cap = cap;
}

static void
buf_add(struct buf *b, const char *s, size_t n)
{
	buf_reserve(b, n);
	memcpy(b->data + b->len, s, n);
	b->len += n;
	b->data[b->len] = '\0';
}

static void
buf_adds(struct buf *b, const char *s)
{
	buf_add(b, s, strlen(s));
}

static void
buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		die("vsnprintf failed");
	buf_reserve(b, (size_t)n);
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

/* Removes the first n bytes. */
static void
buf_consume(struct buf *b, size_t n)
{
	memmove(b->data, b->data + n, b->len - n);
	b->len -= n;
	if (b->data)
		b->data[b->len] = '\0';
}

/* The length of the valid UTF-8 sequence at s (at most n bytes), 0 when it is not one. */
static size_t
utf8_len(const unsigned char *s, size_t n)
{
	size_t len;
	uint32_t cp;
	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		len = 2;
		cp = s[0] & 0x1f;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		len = 3;
		cp = s[0] & 0x0f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		len = 4;
		cp = s[0] & 0x07;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
	    (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return len;
}

/* Appends s (n bytes) as a JSON string. */
static void
buf_json_string(struct buf *b, const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;
	buf_add(b, "\"", 1);
	for (size_t i = 0; i < n;) {
		unsigned char c = u[i];
		if (c == '"' || c == '\\') {
			char e[2] = {'\\', (char)c};
			buf_add(b, e, 2);
			i++;
		} else if (c == '\n') {
			buf_adds(b, "\\n");
			i++;
		} else if (c == '\r') {
			buf_adds(b, "\\r");
			i++;
		} else if (c == '\t') {
			buf_adds(b, "\\t");
			i++;
		} else if (c < 0x20 || c == 0x7f) {
			buf_printf(b, "\\u%04x", c);
			i++;
		} else {
			size_t len = utf8_len(u + i, n - i);
			if (len == 0) {
				buf_printf(b, "\\u%04x", c);
				i++;
			} else {
				buf_add(b, s + i, len);
				i += len;
			}
		}
	}
	buf_add(b, "\"", 1);
}

static long long
elapsed_ms(void)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (long long)(now.tv_sec - started.tv_sec) * 1000 + (now.tv_nsec - started.tv_nsec) / 1000000;
}

/* Writes all of s; false when the peer went away. */
static bool
send_all(int fd, const char *s, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return false;
		}
		s += w;
		n -= (size_t)w;
	}
	return true;
}

/* Reads more into b; false at EOF or on an error. */
static bool
read_more(int fd, struct buf *b)
{
	buf_reserve(b, 16384);
	for (;;) {
		ssize_t r = recv(fd, b->data + b->len, b->cap - b->len - 1, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return false;
		b->len += (size_t)r;
		b->data[b->len] = '\0';
		return true;
	}
}

/* --- the script ------------------------------------------------------------------------------ */

static void
parse_answer(const char *item, size_t n, struct answer *a, const char *arg)
{
	char *s = xstrndup_(item, n);
	memset(a, 0, sizeof *a);
	a->text = s;
	a->retry_after = -1;
	if (strcmp(s, "hang") == 0) {
		a->kind = ANSWER_HANG;
		return;
	}
	if (strcmp(s, "reset") == 0) {
		a->kind = ANSWER_RESET;
		return;
	}
	a->kind = ANSWER_STATUS;
	char *end;
	errno = 0;
	long st = strtol(s, &end, 10);
	if (errno || end == s || st < 100 || st > 599)
		die("--route %s: \"%s\" is not a status (100-599), hang or reset", arg, s);
	a->status = (int)st;
	if (*end == '\0')
		return;
	if (*end != ':')
		die("--route %s: \"%s\": expected STATUS, STATUS:SECONDS or STATUS:@SECONDS", arg, s);
	const char *ra = end + 1;
	if (*ra == '@') {
		a->retry_date = true;
		ra++;
	}
	errno = 0;
	long secs = strtol(ra, &end, 10);
	if (errno || end == ra || *end != '\0' || secs < 0 || secs > 86400)
		die("--route %s: \"%s\": the Retry-After seconds must be 0 to 86400", arg, s);
	a->retry_after = (int)secs;
}

static void
add_route(const char *arg)
{
	const char *eq = strchr(arg, '=');
	if (eq == NULL || arg[0] != '/' || eq[1] == '\0')
		die("--route %s: expected /PATH=ANSWER[,ANSWER...]", arg);
	for (size_t i = 0; i < nroutes; i++)
		if (strlen(routes[i].path) == (size_t)(eq - arg) && strncmp(routes[i].path, arg, (size_t)(eq - arg)) == 0)
			die("--route %s: the path is routed twice", arg);
	routes = xrealloc_(routes, (nroutes + 1) * sizeof *routes);
	struct route *r = &routes[nroutes++];
	memset(r, 0, sizeof *r);
	r->path = xstrndup_(arg, (size_t)(eq - arg));
	const char *p = eq + 1;
	for (;;) {
		size_t n = strcspn(p, ",");
		if (n == 0)
			die("--route %s: an empty answer", arg);
		r->answers = xrealloc_(r->answers, (r->nanswers + 1) * sizeof *r->answers);
		parse_answer(p, n, &r->answers[r->nanswers++], arg);
		if (p[n] == '\0')
			break;
		p += n + 1;
	}
}

static void
free_routes(void)
{
	for (size_t i = 0; i < nroutes; i++) {
		for (size_t k = 0; k < routes[i].nanswers; k++)
			free(routes[i].answers[k].text);
		free(routes[i].answers);
		free(routes[i].path);
	}
	free(routes);
	routes = NULL;
	nroutes = 0;
}

/* The answer for the next request to path (a copy; NULL: no such route). */
static bool
next_answer(const char *path, struct answer *out)
{
	bool found = false;
	pthread_mutex_lock(&routes_mu);
	for (size_t i = 0; i < nroutes; i++) {
		struct route *r = &routes[i];
		if (strcmp(r->path, path) != 0)
			continue;
		size_t k = r->next < r->nanswers ? r->next : r->nanswers - 1;
		r->next++;
		*out = r->answers[k];
		found = true;
		break;
	}
	pthread_mutex_unlock(&routes_mu);
	return found;
}

/* --- one request ----------------------------------------------------------------------------- */

struct header {
	char *name;    /* lower-cased */
	char *value;
};

struct request {
	char          *method, *target, *version;
	struct header *headers;
	size_t         nheaders;
	char          *body;
	size_t         body_len;
	long long      t_ms;
};

static void
request_free(struct request *rq)
{
	free(rq->method);
	free(rq->target);
	free(rq->version);
	for (size_t i = 0; i < rq->nheaders; i++) {
		free(rq->headers[i].name);
		free(rq->headers[i].value);
	}
	free(rq->headers);
	free(rq->body);
	memset(rq, 0, sizeof *rq);
}

static const char *
header_get(const struct request *rq, const char *name)
{
	for (size_t i = 0; i < rq->nheaders; i++)
		if (strcmp(rq->headers[i].name, name) == 0)
			return rq->headers[i].value;
	return NULL;
}

/* Whether the comma-separated header value v lists token (case-insensitive). */
static bool
header_has_token(const char *v, const char *token)
{
	size_t tl = strlen(token);
	while (v && *v) {
		v += strspn(v, " \t,");
		size_t n = strcspn(v, ",");
		size_t m = n;
		while (m > 0 && (v[m - 1] == ' ' || v[m - 1] == '\t'))
			m--;
		if (m == tl && strncasecmp(v, token, tl) == 0)
			return true;
		v += n;
	}
	return false;
}

/*
 * Parses the head (without its final CRLF CRLF) into rq. Returns 0, or the status to answer
 * with (400) when it is malformed.
 */
static int
parse_head(char *head, struct request *rq)
{
	char *save = NULL;
	char *line = strtok_r(head, "\n", &save);
	if (line == NULL)
		return 400;
	size_t ll = strlen(line);
	if (ll && line[ll - 1] == '\r')
		line[--ll] = '\0';
	char *sp1 = strchr(line, ' ');
	char *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
	if (sp1 == NULL || sp2 == NULL || sp1 == line || sp2 == sp1 + 1 || strncmp(sp2 + 1, "HTTP/1.", 7) != 0)
		return 400;
	rq->method = xstrndup_(line, (size_t)(sp1 - line));
	rq->target = xstrndup_(sp1 + 1, (size_t)(sp2 - sp1 - 1));
	rq->version = xstrndup_(sp2 + 1, strlen(sp2 + 1));
	while ((line = strtok_r(NULL, "\n", &save)) != NULL) {
		ll = strlen(line);
		if (ll && line[ll - 1] == '\r')
			line[--ll] = '\0';
		char *colon = strchr(line, ':');
		if (colon == NULL || colon == line || line[0] == ' ' || line[0] == '\t')
			return 400;   /* no name, or an obsolete folded line */
		for (char *c = line; c < colon; c++) {
			if (*c == ' ' || *c == '\t')
				return 400;
			if (*c >= 'A' && *c <= 'Z')
				*c = (char)(*c - 'A' + 'a');
		}
		char *v = colon + 1;
		v += strspn(v, " \t");
		size_t vl = strlen(v);
		while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
			vl--;
		*colon = '\0';
		/* A repeated name: the values joined with ", ", as one header. */
		struct header *h = NULL;
		for (size_t i = 0; i < rq->nheaders; i++)
			if (strcmp(rq->headers[i].name, line) == 0)
				h = &rq->headers[i];
		if (h) {
			size_t ol = strlen(h->value);
			h->value = xrealloc_(h->value, ol + 2 + vl + 1);
			memcpy(h->value + ol, ", ", 2);
			memcpy(h->value + ol + 2, v, vl);
			h->value[ol + 2 + vl] = '\0';
		} else {
			rq->headers = xrealloc_(rq->headers, (rq->nheaders + 1) * sizeof *rq->headers);
			rq->headers[rq->nheaders].name = xstrndup_(line, strlen(line));
			rq->headers[rq->nheaders].value = xstrndup_(v, vl);
			rq->nheaders++;
		}
	}
	return 0;
}

static void
log_request(unsigned conn_id, const struct request *rq, const char *path, const char *answer)
{
	struct buf b = {0};
	pthread_mutex_lock(&log_mu);
	unsigned long long n = ++nrequests;
	buf_printf(&b, "{\"n\":%llu,\"conn\":%u,\"t_ms\":%lld,\"method\":", n, conn_id, rq->t_ms);
	buf_json_string(&b, rq->method ? rq->method : "", rq->method ? strlen(rq->method) : 0);
	buf_adds(&b, ",\"path\":");
	buf_json_string(&b, path, strlen(path));
	buf_adds(&b, ",\"headers\":{");
	for (size_t i = 0; i < rq->nheaders; i++) {
		if (i)
			buf_adds(&b, ",");
		buf_json_string(&b, rq->headers[i].name, strlen(rq->headers[i].name));
		buf_adds(&b, ":");
		buf_json_string(&b, rq->headers[i].value, strlen(rq->headers[i].value));
	}
	buf_adds(&b, "},\"body\":");
	buf_json_string(&b, rq->body ? rq->body : "", rq->body_len);
	buf_adds(&b, ",\"answer\":");
	buf_json_string(&b, answer, strlen(answer));
	buf_adds(&b, "}\n");
	/* One write per line on an O_APPEND descriptor: a reader never sees half a line. */
	const char *s = b.data;
	size_t left = b.len;
	while (left > 0) {
		ssize_t w = write(log_fd, s, left);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			perror("webhookd: writing the log");
			break;
		}
		s += w;
		left -= (size_t)w;
	}
	pthread_mutex_unlock(&log_mu);
	free(b.data);
}

static const char *
reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 201: return "Created";
	case 202: return "Accepted";
	case 204: return "No Content";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 408: return "Request Timeout";
	case 410: return "Gone";
	case 411: return "Length Required";
	case 413: return "Content Too Large";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	default: return "Status";
	}
}

/* Sends a response with a short text body; false when the peer went away. */
static bool
respond(int fd, const struct answer *a, bool keep_alive, bool head_only)
{
	struct buf b = {0};
	char body[128];
	int bl = snprintf(body, sizeof body, "%d %s\n", a->status, reason(a->status));
	bool no_body = head_only || a->status == 204 || a->status == 304 || a->status < 200;
	buf_printf(&b, "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\nConnection: %s\r\n",
	           a->status, reason(a->status), no_body ? 0 : bl, keep_alive ? "keep-alive" : "close");
	if (a->retry_after >= 0) {
		if (a->retry_date) {
			char date[64];
			time_t t = time(NULL) + a->retry_after;
			struct tm tm;
			gmtime_r(&t, &tm);
			strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
			buf_printf(&b, "Retry-After: %s\r\n", date);
		} else {
			buf_printf(&b, "Retry-After: %d\r\n", a->retry_after);
		}
	}
	buf_adds(&b, "\r\n");
	if (!no_body)
		buf_add(&b, body, (size_t)bl);
	bool ok = send_all(fd, b.data, b.len);
	free(b.data);
	return ok;
}

/* Parses a Content-Length value; -1 when it is not a plain decimal number. */
static long long
parse_length(const char *v)
{
	if (*v == '\0')
		return -1;
	long long n = 0;
	for (const char *c = v; *c; c++) {
		if (*c < '0' || *c > '9' || n > (LLONG_MAX - 9) / 10)
			return -1;
		n = n * 10 + (*c - '0');
	}
	return n;
}

static void
conn_close(struct conn *c, bool reset)
{
	pthread_mutex_lock(&conns_mu);
	if (c->fd >= 0) {
		if (reset) {
			struct linger lg = {.l_onoff = 1, .l_linger = 0};
			setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
		}
		close(c->fd);
		c->fd = -1;
	}
	pthread_mutex_unlock(&conns_mu);
}

/*
 * Serves one request from the bytes in *in (reading more as needed). Returns true when the
 * connection stays open for another one.
 */
static bool
serve_request(struct conn *c, struct buf *in)
{
	int fd = c->fd;
	char *end;
	while ((end = in->len ? memmem(in->data, in->len, "\r\n\r\n", 4) : NULL) == NULL) {
		if (in->len > MAX_HEAD) {
			struct answer a = {.status = 431, .retry_after = -1};
			respond(fd, &a, false, false);
			return false;
		}
		if (!read_more(fd, in))
			return false;
	}
	size_t head_len = (size_t)(end - in->data);
	if (memchr(in->data, '\0', head_len) != NULL) {
		struct answer a = {.status = 400, .retry_after = -1};
		respond(fd, &a, false, false);
		return false;
	}
	char *head = xstrndup_(in->data, head_len);
	buf_consume(in, head_len + 4);
	struct request rq = {0};
	int bad = parse_head(head, &rq);
	free(head);

	struct answer a = {.kind = ANSWER_STATUS, .retry_after = -1};
	char *path = NULL;
	bool keep = false;
	if (bad) {
		a.status = bad;
		goto answer;
	}
	path = xstrndup_(rq.target, strcspn(rq.target, "?#"));
	const char *te = header_get(&rq, "transfer-encoding");
	const char *cl = header_get(&rq, "content-length");
	long long len = 0;
	if (te != NULL) {
		a.status = 411;   /* chunked bodies are not supported */
		goto answer;
	}
	if (cl != NULL) {
		len = parse_length(cl);
		if (len < 0) {
			a.status = 400;
			goto answer;
		}
		if (len > MAX_BODY) {
			a.status = 413;
			goto answer;
		}
	} else if (strcmp(rq.method, "POST") == 0 || strcmp(rq.method, "PUT") == 0 ||
	           strcmp(rq.method, "PATCH") == 0) {
		a.status = 411;
		goto answer;
	}
	if (len > 0 && header_has_token(header_get(&rq, "expect"), "100-continue") && (size_t)len > in->len &&
	    !send_all(fd, "HTTP/1.1 100 Continue\r\n\r\n", 25))
		goto out;
	while (in->len < (size_t)len)
		if (!read_more(fd, in))
			goto out;
	rq.body = xmemdup_(in->data ? in->data : "", (size_t)len);
	rq.body_len = (size_t)len;
	buf_consume(in, (size_t)len);

	const char *conn_h = header_get(&rq, "connection");
	if (strcmp(rq.version, "HTTP/1.0") == 0)
		keep = header_has_token(conn_h, "keep-alive");
	else
		keep = !header_has_token(conn_h, "close");
	if (!next_answer(path, &a)) {
		memset(&a, 0, sizeof a);
		a.kind = ANSWER_STATUS;
		a.status = 404;
		a.retry_after = -1;
	}

answer:
	rq.t_ms = elapsed_ms();
	if (a.text != NULL) {
		log_request(c->id, &rq, path, a.text);
	} else {
		char code[16];
		snprintf(code, sizeof code, "%d", a.status);
		log_request(c->id, &rq, path ? path : (rq.target ? rq.target : ""), code);
	}
	switch (a.kind) {
	case ANSWER_STATUS:
		if (!respond(fd, &a, keep, rq.method && strcmp(rq.method, "HEAD") == 0))
			keep = false;
		break;
	case ANSWER_HANG: {
		/* Never answers: waits until the client (or shutdown) ends the connection. */
		char sink[4096];
		for (;;) {
			ssize_t r = recv(fd, sink, sizeof sink, 0);
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0)
				break;
		}
		keep = false;
		break;
	}
	case ANSWER_RESET:
		conn_close(c, true);
		keep = false;
		break;
	}
out:
	free(path);
	request_free(&rq);
	return keep && !stopping;
}

static void *
serve(void *arg)
{
	struct conn *c = arg;
	struct buf in = {0};
	while (serve_request(c, &in))
		;
	free(in.data);
	conn_close(c, false);
	pthread_mutex_lock(&conns_mu);
	c->done = true;
	pthread_mutex_unlock(&conns_mu);
	return NULL;
}

/* Joins the finished connection threads (all of them, waiting, when all is set). */
static void
reap(bool all)
{
	struct conn **pp = &conns;
	for (;;) {
		pthread_mutex_lock(&conns_mu);
		struct conn *c = *pp;
		bool done = c ? c->done : false;
		pthread_mutex_unlock(&conns_mu);
		if (c == NULL)
			break;
		if (!done && !all) {
			pp = &c->next;
			continue;
		}
		pthread_join(c->thread, NULL);
		*pp = c->next;
		free(c);
	}
}

static void
on_signal(int sig)
{
	(void)sig;
	stopping = 1;
}

static void
usage(FILE *f)
{
	fputs("Usage: webhookd [--port N] [--port-file FILE] [--log FILE] --route /PATH=ANSWER[,ANSWER...]...\n"
	      "A scripted webhook receiver on 127.0.0.1 for the tests. ANSWER: a status (200), a status\n"
	      "with Retry-After in seconds (429:2) or as an HTTP date that many seconds ahead (503:@2),\n"
	      "hang or reset; one per request, the last one repeating. Each request is logged as a JSON\n"
	      "line to --log (default stderr). SIGTERM stops it.\n", f);
}

static void
write_port_file(const char *path, unsigned port)
{
	size_t n = strlen(path) + 16;
	char *tmp = xrealloc_(NULL, n);
	snprintf(tmp, n, "%s.tmp", path);
	FILE *f = fopen(tmp, "w");
	if (f == NULL)
		die("cannot write %s: %s", tmp, strerror(errno));
	fprintf(f, "%u\n", port);
	if (fclose(f) != 0)
		die("cannot write %s: %s", tmp, strerror(errno));
	if (rename(tmp, path) != 0)
		die("cannot rename %s to %s: %s", tmp, path, strerror(errno));
	free(tmp);
}

int
main(int argc, char **argv)
{
	const char *port_file = NULL, *log_path = NULL;
	long port = 0;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			usage(stdout);
			free_routes();
			return 0;
		}
		if (strcmp(a, "--port") != 0 && strcmp(a, "--port-file") != 0 && strcmp(a, "--log") != 0 &&
		    strcmp(a, "--route") != 0) {
			usage(stderr);
			die("unknown argument \"%s\"", a);
		}
		if (v == NULL)
			die("%s needs a value", a);
		i++;
		if (strcmp(a, "--port") == 0) {
			char *end;
			errno = 0;
			port = strtol(v, &end, 10);
			if (errno || end == v || *end || port < 0 || port > 65535)
				die("--port %s: expected 0 to 65535", v);
		} else if (strcmp(a, "--port-file") == 0) {
			port_file = v;
		} else if (strcmp(a, "--log") == 0) {
			log_path = v;
		} else {
			add_route(v);
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &started);
	if (log_path != NULL) {
		log_fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
		if (log_fd < 0)
			die("cannot open %s: %s", log_path, strerror(errno));
	}

	/* SIGTERM and SIGINT are only delivered while the main thread waits in ppoll(). */
	signal(SIGPIPE, SIG_IGN);
	struct sigaction sa = {0};
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigset_t block, waitmask;
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	pthread_sigmask(SIG_BLOCK, &block, &waitmask);
	sigdelset(&waitmask, SIGTERM);
	sigdelset(&waitmask, SIGINT);

	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0)
		die("socket: %s", strerror(errno));
	int one = 1;
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	struct sockaddr_in addr = {0};
	addr.sin_family = AF_INET;
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	addr.sin_port = htons((uint16_t)port);
	if (bind(lfd, (struct sockaddr *)&addr, sizeof addr) != 0)
		die("cannot listen on 127.0.0.1:%ld: %s", port, strerror(errno));
	if (listen(lfd, 128) != 0)
		die("listen: %s", strerror(errno));
	socklen_t alen = sizeof addr;
	if (getsockname(lfd, (struct sockaddr *)&addr, &alen) != 0)
		die("getsockname: %s", strerror(errno));
	unsigned bound = ntohs(addr.sin_port);
	if (port_file != NULL)
		write_port_file(port_file, bound);
	fprintf(stderr, "webhookd: listening on 127.0.0.1:%u\n", bound);

	while (!stopping) {
		struct pollfd pfd = {.fd = lfd, .events = POLLIN};
		struct timespec tick = {.tv_sec = 1};
		int r = ppoll(&pfd, 1, &tick, &waitmask);
		reap(false);
		if (r < 0 && errno != EINTR)
			die("poll: %s", strerror(errno));
		if (r <= 0 || stopping)
			continue;
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED || errno == EAGAIN)
				continue;
			if (errno == EMFILE || errno == ENFILE) {
				perror("webhookd: accept");
				struct timespec pause = {.tv_nsec = 100000000};
				nanosleep(&pause, NULL);
				continue;
			}
			die("accept: %s", strerror(errno));
		}
		struct conn *c = calloc(1, sizeof *c);
		if (c == NULL)
			die("out of memory");
		c->fd = fd;
		c->id = ++nconns;
		pthread_mutex_lock(&conns_mu);
		c->next = conns;
		conns = c;
		pthread_mutex_unlock(&conns_mu);
		int e = pthread_create(&c->thread, NULL, serve, c);
		if (e != 0) {
			fprintf(stderr, "webhookd: cannot start a thread: %s\n", strerror(e));
			pthread_mutex_lock(&conns_mu);
			conns = c->next;
			pthread_mutex_unlock(&conns_mu);
			close(fd);
			free(c);
		}
	}

	/* Stop: wake every connection thread (a hanging one too) and wait for them. */
	close(lfd);
	pthread_mutex_lock(&conns_mu);
	for (struct conn *c = conns; c; c = c->next)
		if (c->fd >= 0)
			shutdown(c->fd, SHUT_RDWR);
	pthread_mutex_unlock(&conns_mu);
	reap(true);
	free_routes();
	if (log_fd != STDERR_FILENO)
		close(log_fd);
	return 0;
}
