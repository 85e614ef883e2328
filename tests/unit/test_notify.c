/*
 * test_notify.c: the webhook notifier (core/notify.c): Standard Webhooks signing, backoff, Retry-After,
 * status classes, the three payload formats, and the outbox against loopback listeners (a refused
 * port, and a small HTTP responder in a thread). No network beyond 127.0.0.1.
 */
#include "config.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>

#include "core/events.h"
#include "core/notify.h"
#include "core/util.h"

#define SECRET      "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define URL_MARKER  "hook-SECRETPATH-7f3a"
#define RUN_ID      "20261124T033000-abcd"

/* ---------- a loopback HTTP responder ---------- */

struct reply {
	int         status;
	const char *extra;   /* extra header lines ("Retry-After: 1\r\n") or NULL */
};

struct responder {
	int             fd;
	int             port;
	pthread_t       thread;
	pthread_mutex_t mu;
	bool            stop;
	struct reply    script[8];
	size_t          nscript;
	struct strlist  requests;   /* each whole request: headers and body */
	int             sockets;    /* sockets open in the process while the last request was read */
	int             inheritable; /* of those, how many a child process would inherit (no FD_CLOEXEC) */
};

/* The TCP sockets open in this process now, and how many of them lack FD_CLOEXEC. */
static int
count_sockets(int *inheritable)
{
	int n = 0;
	*inheritable = 0;
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	while (d && (de = readdir(d)) != NULL) {
		char path[300], link[64];
		snprintf(path, sizeof path, "/proc/self/fd/%s", de->d_name);
		ssize_t len = readlink(path, link, sizeof link - 1);
		if (len <= 0)
			continue;
		link[len] = '\0';
		if (strncmp(link, "socket:", 7) != 0)
			continue;
		/* TCP sockets only: libcurl's own wakeup socketpair (AF_UNIX) is closed in pgrunbook's
		 * children by util_close_inherited_fds() instead */
		int fd = atoi(de->d_name), domain = 0;
		socklen_t dl = sizeof domain;
		if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &dl) != 0 || domain != AF_INET)
			continue;
		n++;
		int flags = fcntl(fd, F_GETFD);
		if (flags >= 0 && !(flags & FD_CLOEXEC))
			(*inheritable)++;
	}
	if (d)
		closedir(d);
	return n;
}

static void *
responder_main(void *arg)
{
	struct responder *r = arg;
	for (;;) {
		pthread_mutex_lock(&r->mu);
		bool stop = r->stop;
		pthread_mutex_unlock(&r->mu);
		if (stop)
			break;
		struct pollfd pfd = { .fd = r->fd, .events = POLLIN };
		if (poll(&pfd, 1, 50) <= 0)
			continue;
		int c = accept4(r->fd, NULL, NULL, SOCK_CLOEXEC);
		if (c < 0)
			continue;
		struct strbuf req = {0};
		char buf[4096];
		size_t want = 0;
		for (;;) {
			ssize_t n = read(c, buf, sizeof buf);
			if (n <= 0)
				break;
			strbuf_add(&req, buf, (size_t)n);
			char *end = strstr(req.buf, "\r\n\r\n");
			if (end == NULL)
				continue;
			if (want == 0) {
				const char *cl = strcasestr(req.buf, "\r\nContent-Length:");
				want = (size_t)(end + 4 - req.buf) + (cl ? strtoul(cl + 17, NULL, 10) : 0);
			}
			if (req.len >= want)
				break;
		}
		/* the client's socket is open now: would pg_dump or a hook inherit it? */
		int inheritable = 0, sockets = count_sockets(&inheritable);
		pthread_mutex_lock(&r->mu);
		r->sockets = sockets;
		r->inheritable = inheritable;
		size_t k = r->requests.len;
		struct reply rep = k < r->nscript ? r->script[k] : (struct reply){ 200, NULL };
		strlist_push(&r->requests, req.buf ? req.buf : "");
		pthread_mutex_unlock(&r->mu);
		char *resp = xasprintf("HTTP/1.1 %d X\r\nContent-Length: 2\r\nConnection: close\r\n%s\r\nok", rep.status,
		                       rep.extra ? rep.extra : "");
		ssize_t w = write(c, resp, strlen(resp));
		(void)w;
		free(resp);
		strbuf_release(&req);
		close(c);
	}
	return NULL;
}

static int
listen_loopback(int *port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
	socklen_t len = sizeof a;
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	*port = ntohs(a.sin_port);
	return fd;
}

static struct responder *
responder_start(const struct reply *script, size_t n)
{
	struct responder *r = xcalloc(1, sizeof(*r));
	pthread_mutex_init(&r->mu, NULL);
	r->fd = listen_loopback(&r->port);
	assert_int_equal(listen(r->fd, 16), 0);
	for (size_t i = 0; i < n && i < RB_ARRAY_LEN(r->script); i++)
		r->script[r->nscript++] = script[i];
	assert_int_equal(pthread_create(&r->thread, NULL, responder_main, r), 0);
	return r;
}

static size_t
responder_count(struct responder *r)
{
	pthread_mutex_lock(&r->mu);
	size_t n = r->requests.len;
	pthread_mutex_unlock(&r->mu);
	return n;
}

static void
responder_stop(struct responder *r)
{
	pthread_mutex_lock(&r->mu);
	r->stop = true;
	pthread_mutex_unlock(&r->mu);
	pthread_join(r->thread, NULL);
	close(r->fd);
	strlist_free(&r->requests);
	pthread_mutex_destroy(&r->mu);
	free(r);
}

/* A header's value in a recorded request (copied), or NULL. */
static char *
header_value(const char *req, const char *name)
{
	char *pat = xasprintf("\r\n%s:", name);
	const char *h = strcasestr(req, pat);
	size_t plen = strlen(pat);
	free(pat);
	if (h == NULL)
		return NULL;
	h += plen;
	while (*h == ' ')
		h++;
	return xstrndup(h, strcspn(h, "\r\n"));
}

static const char *
request_body(const char *req)
{
	const char *b = strstr(req, "\r\n\r\n");
	return b ? b + 4 : "";
}

/* Checks the Standard Webhooks headers of a request against its body; returns its webhook-id (caller frees). */
static char *
check_signed(const char *req)
{
	char *id = header_value(req, "webhook-id");
	char *ts = header_value(req, "webhook-timestamp");
	char *sig = header_value(req, "webhook-signature");
	assert_non_null(id);
	assert_non_null(ts);
	assert_non_null(sig);
	long long t = strtoll(ts, NULL, 10);
	assert_true(llabs(t - (long long)time(NULL)) < 60);
	char *want = notify_sign(SECRET, id, t, request_body(req));
	assert_non_null(want);
	assert_string_equal(sig, want);
	json_t *body = json_loads(request_body(req), 0, NULL);
	assert_non_null(body);
	assert_string_equal(json_string_value(json_object_get(body, "id")), id);
	json_decref(body);
	char *ua = header_value(req, "User-Agent");
	assert_non_null(ua);
	assert_string_equal(ua, "pgrunbook/" PACKAGE_VERSION);
	char *ct = header_value(req, "Content-Type");
	assert_string_equal(ct, "application/json");
	free(ua);
	free(ct);
	free(ts);
	free(sig);
	free(want);
	return id;
}

/* ---------- pure functions ---------- */

static void
test_sign(void **state)
{
	(void)state;
	char *s = notify_sign(SECRET, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, "{\"test\": 2432232314}");
	assert_non_null(s);
	assert_string_equal(s, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
	free(s);
	/* Another timestamp, another signature. */
	s = notify_sign(SECRET, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265331, "{\"test\": 2432232314}");
	assert_non_null(s);
	assert_string_not_equal(s, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
	free(s);
	/* Padding is not key: a one-byte key ("AQ==") and a two-byte key ("AQI="), checked with Python's hmac. */
	s = notify_sign("whsec_AQ==", "a", 1, "b");
	assert_non_null(s);
	assert_string_equal(s, "v1,5ws1LukSHmbpCsLyGXvXn6d5h3nYFUHFkzbuAQ73EJU=");
	free(s);
	s = notify_sign("whsec_AQI=", "a", 1, "b");
	assert_non_null(s);
	assert_string_equal(s, "v1,iTdrEc1jC/5kBiXPs1tHdlumMeYz1MsObePsQACJNFE=");
	free(s);
	/* HMAC zero-fills short keys, so only keys of 64 bytes and more show a padding byte taken for key. */
	s = notify_sign("whsec_AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyAhIiMkJSYnKCkqKywtLi8wMTIzNDU2Nzg5Ojs8PT4/QA==",
	                "a", 1, "b");
	assert_non_null(s);
	assert_string_equal(s, "v1,B34CB89yjMfKc5dg+2Yjl3EgTrb81pxI7CHcQfEAtYk=");
	free(s);
	s = notify_sign("whsec_AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyAhIiMkJSYnKCkqKywtLi8wMTIzNDU2Nzg5Ojs8PT4/QEE=",
	                "a", 1, "b");
	assert_non_null(s);
	assert_string_equal(s, "v1,9JgZ+XKqwv4WmLNSJxafYm22TW1VsG6mvgot1IsNlQg=");
	free(s);
	const char *bad[] = { "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_", "whsec_abc", "whsec_!!!!", "whsec_ab=c",
	                      "whsec_====", "whsec_MfKQ9r8G KYqrTwjU", "WHSEC_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" };
	for (size_t i = 0; i < RB_ARRAY_LEN(bad); i++) {
		s = notify_sign(bad[i], "id", 1, "{}");
		if (s != NULL)
			fail_msg("secret %zu accepted: %s", i, s);
	}
	assert_null(notify_sign(NULL, "id", 1, "{}"));
}

static void
test_backoff(void **state)
{
	(void)state;
	assert_int_equal(notify_backoff_ms(1000, 1, 0), 500);
	assert_int_equal(notify_backoff_ms(1000, 1, UINT32_MAX), 1000);
	assert_int_equal(notify_backoff_ms(1000, 2, UINT32_MAX), 2000);
	assert_int_equal(notify_backoff_ms(1000, 3, 0), 2000);
	assert_int_equal(notify_backoff_ms(1000, 3, UINT32_MAX), 4000);
	/* Capped at 10 min, however many attempts. */
	assert_int_equal(notify_backoff_ms(1000, 10, UINT32_MAX), 512000);
	assert_int_equal(notify_backoff_ms(1000, 11, UINT32_MAX), 600000);
	assert_int_equal(notify_backoff_ms(1000, 1000, UINT32_MAX), 600000);
	assert_int_equal(notify_backoff_ms(1000, 1000, 0), 300000);
	assert_int_equal(notify_backoff_ms(3600000, 1, UINT32_MAX), 600000);
	/* Full jitter within [half, all]. */
	uint32_t seed = 12345;
	bool low = false, high = false;
	for (int i = 0; i < 2000; i++) {
		seed = seed * 1103515245u + 12345u;
		int64_t d = notify_backoff_ms(800, 4, seed);
		assert_in_range(d, 3200, 6400);
		low |= d < 4000;
		high |= d > 5600;
	}
	assert_true(low && high);
}

static void
test_retry_after(void **state)
{
	(void)state;
	int64_t ms = -1;
	assert_true(notify_parse_retry_after("120", 0, &ms));
	assert_int_equal(ms, 120000);
	assert_true(notify_parse_retry_after(" 7 \r\n", 0, &ms));
	assert_int_equal(ms, 7000);
	assert_true(notify_parse_retry_after("0", 0, &ms));
	assert_int_equal(ms, 0);
	/* Wed, 21 Oct 2015 07:28:00 GMT is 1445412480. */
	assert_true(notify_parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 1445412480 - 90, &ms));
	assert_int_equal(ms, 90000);
	assert_true(notify_parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 1445412480 + 5, &ms));
	assert_int_equal(ms, 0);
	assert_true(notify_parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 1445412480 - 86400, &ms));
	assert_int_equal(ms, 3600000);
	assert_true(notify_parse_retry_after("99999999999999999999999999", 0, &ms));
	assert_int_equal(ms, 3600000);
	assert_true(notify_parse_retry_after("3601", 0, &ms));
	assert_int_equal(ms, 3600000);
	const char *bad[] = { "", "   ", "soon", "12a", "-5", "1.5", "Wed, 21 Oct 2015 07:28:00", "21 Oct 2015" };
	for (size_t i = 0; i < RB_ARRAY_LEN(bad); i++)
		if (notify_parse_retry_after(bad[i], 0, &ms))
			fail_msg("accepted \"%s\"", bad[i]);
	assert_false(notify_parse_retry_after(NULL, 0, &ms));
}

static void
test_classify(void **state)
{
	(void)state;
	static const struct { long status; enum notify_outcome o; } table[] = {
		{ 200, NOTIFY_SENT }, { 201, NOTIFY_SENT }, { 202, NOTIFY_SENT }, { 204, NOTIFY_SENT },
		{ 0, NOTIFY_RETRY }, { 408, NOTIFY_RETRY }, { 429, NOTIFY_RETRY }, { 500, NOTIFY_RETRY },
		{ 502, NOTIFY_RETRY }, { 503, NOTIFY_RETRY }, { 504, NOTIFY_RETRY }, { 599, NOTIFY_RETRY },
		{ 410, NOTIFY_GONE }, { 400, NOTIFY_REJECTED }, { 401, NOTIFY_REJECTED }, { 403, NOTIFY_REJECTED },
		{ 404, NOTIFY_REJECTED }, { 413, NOTIFY_REJECTED }, { 422, NOTIFY_REJECTED }, { 301, NOTIFY_REJECTED },
	};
	for (size_t i = 0; i < RB_ARRAY_LEN(table); i++)
		if (notify_classify(table[i].status) != table[i].o)
			fail_msg("HTTP %ld classified %d, want %d", table[i].status, notify_classify(table[i].status),
			         table[i].o);
}

/* ---------- rendering ---------- */

struct fixture {
	char              *tmp;
	char              *run_dir;
	struct plan        plan;
	struct plan_env    env;
	struct plan_notify ep[3];
};

static int
setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof(*f));
	char tmpl[] = "/tmp/test_notify.XXXXXX";
	assert_non_null(mkdtemp(tmpl));
	f->tmp = xstrdup(tmpl);
	f->run_dir = xasprintf("%s/run", f->tmp);
	assert_int_equal(mkdir(f->run_dir, 0700), 0);
	f->env.name = (char *)"prod";
	f->env.kind = PLAN_ENV_CONNINFO;
	f->env.value = (char *)"host=db.example port=5432 dbname=shop_prod";
	f->plan.name = (char *)"shop";
	f->plan.target = (char *)"prod";
	f->plan.envs = &f->env;
	f->plan.nenvs = 1;
	f->plan.notify = f->ep;
	for (size_t i = 0; i < RB_ARRAY_LEN(f->ep); i++) {
		f->ep[i].timeout_ms = 2000;
		f->ep[i].connect_timeout_ms = 1000;
		f->ep[i].backoff_ms = 20;
		f->ep[i].max_attempts = 1000;
	}
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;
	for (size_t i = 0; i < RB_ARRAY_LEN(f->ep); i++)
		strlist_free(&f->ep[i].events);
	assert_true(remove_tree(f->tmp));
	free(f->tmp);
	free(f->run_dir);
	free(f);
	return 0;
}

static char *
dump(const json_t *v)
{
	char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	assert_non_null(s);
	return s;
}

static void
test_render(void **state)
{
	struct fixture *f = *state;
	setenv("NOTIFY_TEST_URL", "https://hooks.example/" URL_MARKER, 1);
	struct plan_notify slack = { .url_env = (char *)"NOTIFY_TEST_URL", .format = PLAN_NOTIFY_SLACK };
	struct plan_notify generic = { .url_env = (char *)"NOTIFY_TEST_URL", .format = PLAN_NOTIFY_GENERIC,
	                               .secret_env = (char *)"NOTIFY_TEST_SECRET" };
	struct plan_notify pd = { .url_env = (char *)"NOTIFY_TEST_URL", .format = PLAN_NOTIFY_PAGERDUTY };

	json_t *data = json_pack("{s:i}", "migrations", 3);
	struct rb_event done = { .type = EV_STAGE_DONE, .stage = "migrate", .message = "3 migrations applied",
	                         .data = data };

	/* generic: every field. */
	json_t *g = notify_render(&f->plan, &generic, RUN_ID, RUN_ID ".2", "alice", &done, 83000);
	assert_non_null(g);
	assert_string_equal(json_string_value(json_object_get(g, "id")), RUN_ID ".2");
	assert_string_equal(json_string_value(json_object_get(g, "type")), "stage_done");
	long long ts;
	assert_true(time_parse_rfc3339(json_string_value(json_object_get(g, "timestamp")), &ts));
	assert_true(llabs(ts - time_now_ms()) < 60000);
	assert_string_equal(json_string_value(json_object_get(g, "run_id")), RUN_ID);
	assert_string_equal(json_string_value(json_object_get(g, "plan")), "shop");
	assert_string_equal(json_string_value(json_object_get(g, "environment")), "prod");
	assert_string_equal(json_string_value(json_object_get(g, "database")), "shop_prod");
	assert_string_equal(json_string_value(json_object_get(g, "stage")), "migrate");
	assert_string_equal(json_string_value(json_object_get(g, "message")), "3 migrations applied");
	assert_string_equal(json_string_value(json_object_get(g, "level")), "info");
	assert_string_equal(json_string_value(json_object_get(g, "who")), "alice");
	assert_int_equal(json_integer_value(json_object_get(g, "duration_ms")), 83000);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(g, "data"), "migrations")), 3);
	char *text = dump(g);
	assert_null(strstr(text, URL_MARKER));
	assert_null(strstr(text, "host=db.example"));
	free(text);
	json_decref(g);
	/* No duration, the database from the event, a conninfo never. */
	json_t *d2 = json_pack("{s:s}", "database", "shop_other");
	struct rb_event started = { .type = EV_STAGE_STARTED, .stage = "migrate", .data = d2 };
	g = notify_render(&f->plan, &generic, RUN_ID, RUN_ID ".1", "alice", &started, -1);
	assert_true(json_is_null(json_object_get(g, "duration_ms")));
	assert_true(json_is_null(json_object_get(g, "message")));
	assert_string_equal(json_string_value(json_object_get(g, "database")), "shop_other");
	json_decref(g);
	json_decref(d2);
	f->env.kind = PLAN_ENV_SERVICE;
	f->env.value = (char *)"shop_service";
	g = notify_render(&f->plan, &generic, RUN_ID, RUN_ID ".1", "alice", &done, 83000);
	assert_true(json_is_null(json_object_get(g, "database")));
	json_decref(g);
	f->env.kind = PLAN_ENV_CONNINFO;
	f->env.value = (char *)"host=db.example port=5432 dbname=shop_prod";

	/* slack: the one line and the two sections. */
	json_t *s = notify_render(&f->plan, &slack, RUN_ID, RUN_ID ".2", "alice", &done, 83000);
	assert_non_null(s);
	assert_string_equal(json_string_value(json_object_get(s, "text")),
	                    "shop: migrate done in 1 min 23 s (prod, by alice)");
	json_t *blocks = json_object_get(s, "blocks");
	assert_int_equal(json_array_size(blocks), 2);
	json_t *fields = json_object_get(json_array_get(blocks, 1), "fields");
	assert_int_equal(json_array_size(fields), 7);
	const char *want[] = { "*Plan*\nshop", "*Environment*\nprod", "*Stage*\nmigrate", "*Result*\ndone",
	                       "*Duration*\n1 min 23 s", "*Who*\nalice", "*Run*\n" RUN_ID };
	for (size_t i = 0; i < RB_ARRAY_LEN(want); i++)
		assert_string_equal(json_string_value(json_object_get(json_array_get(fields, i), "text")), want[i]);
	text = dump(s);
	assert_null(strstr(text, URL_MARKER));
	free(text);
	json_decref(s);
	/* A failure carries its message, escaped for Slack; durations as time_format_elapsed(). */
	struct rb_event failed = { .type = EV_STAGE_FAILED, .stage = "verify", .message = "row count <0> & worse",
	                           .level = LOG_LEVEL_ERROR };
	s = notify_render(&f->plan, &slack, RUN_ID, RUN_ID ".3", "bob", &failed, 3723000);
	assert_string_equal(json_string_value(json_object_get(s, "text")),
	                    "shop: verify failed in 1 h 02 min (prod, by bob): row count &lt;0&gt; &amp; worse");
	json_decref(s);

	/* A long message is cut, never inside a UTF-8 character. */
	struct strbuf longm = {0};
	for (int i = 0; i < 400; i++)
		strbuf_adds(&longm, "\xc3\xa9");
	struct rb_event longev = { .type = EV_STAGE_FAILED, .stage = "sync", .message = longm.buf };
	s = notify_render(&f->plan, &slack, RUN_ID, RUN_ID ".3", "bob", &longev, -1);
	const char *lt = json_string_value(json_object_get(s, "text"));
	assert_non_null(strstr(lt, "sync failed (prod, by bob): \xc3\xa9\xc3\xa9"));
	assert_true(strlen(lt) < 400);
	assert_string_equal(lt + strlen(lt) - 5, "\xc3\xa9\xe2\x80\xa6");
	json_decref(s);
	strbuf_release(&longm);

	/* pagerduty: trigger, resolve, or nothing. */
	json_t *p = notify_render(&f->plan, &pd, RUN_ID, RUN_ID ".3", "bob", &failed, 1000);
	assert_non_null(p);
	assert_string_equal(json_string_value(json_object_get(p, "event_action")), "trigger");
	assert_string_equal(json_string_value(json_object_get(p, "dedup_key")), "pgrunbook-" RUN_ID);
	assert_null(json_object_get(p, "routing_key"));
	json_t *payload = json_object_get(p, "payload");
	assert_string_equal(json_string_value(json_object_get(payload, "severity")), "error");
	assert_non_null(json_string_value(json_object_get(payload, "summary")));
	assert_non_null(json_string_value(json_object_get(payload, "source")));
	assert_string_equal(json_string_value(json_object_get(payload, "component")), "verify");
	text = dump(p);
	assert_null(strstr(text, URL_MARKER));
	free(text);
	json_decref(p);
	struct rb_event confirm = { .type = EV_CONFIRM_NEEDED, .stage = "migrate", .message = "type the phrase" };
	p = notify_render(&f->plan, &pd, RUN_ID, RUN_ID ".4", "bob", &confirm, -1);
	assert_string_equal(json_string_value(json_object_get(json_object_get(p, "payload"), "severity")), "warning");
	json_decref(p);
	json_t *fin = json_pack("{s:s}", "state", "done");
	struct rb_event finished = { .type = EV_RUN_FINISHED, .data = fin };
	p = notify_render(&f->plan, &pd, RUN_ID, RUN_ID ".5", "bob", &finished, -1);
	assert_string_equal(json_string_value(json_object_get(p, "event_action")), "resolve");
	assert_string_equal(json_string_value(json_object_get(p, "dedup_key")), "pgrunbook-" RUN_ID);
	assert_null(json_object_get(p, "payload"));
	json_decref(p);
	json_object_set_new(fin, "state", json_string("failed"));
	assert_null(notify_render(&f->plan, &pd, RUN_ID, RUN_ID ".5", "bob", &finished, -1));
	json_decref(fin);
	json_t *rb = json_pack("{s:b}", "ok", 1);
	struct rb_event rbdone = { .type = EV_ROLLBACK_DONE, .stage = "rollback", .data = rb };
	p = notify_render(&f->plan, &pd, RUN_ID, RUN_ID ".6", "bob", &rbdone, -1);
	assert_string_equal(json_string_value(json_object_get(p, "event_action")), "resolve");
	json_decref(p);
	json_object_set_new(rb, "ok", json_false());
	p = notify_render(&f->plan, &pd, RUN_ID, RUN_ID ".6", "bob", &rbdone, -1);
	assert_string_equal(json_string_value(json_object_get(p, "event_action")), "trigger");
	json_decref(p);
	json_decref(rb);
	assert_null(notify_render(&f->plan, &pd, RUN_ID, RUN_ID ".7", "bob", &done, 1000));
	assert_null(notify_render(&f->plan, &pd, RUN_ID, RUN_ID ".7", "bob", &started, -1));
	json_decref(data);
	unsetenv("NOTIFY_TEST_URL");
}

/* ---------- the outbox ---------- */

static char *
outbox_path(struct fixture *f, const char *name)
{
	return xasprintf("%s/outbox/%s", f->run_dir, name);
}

static json_t *
load_msg(struct fixture *f, const char *name)
{
	char *path = outbox_path(f, name);
	json_error_t jerr;
	json_t *doc = json_load_file(path, 0, &jerr);
	if (doc == NULL)
		fail_msg("%s: %s", path, jerr.text);
	free(path);
	return doc;
}

static const char *
jstr(const json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

static long long
jint(const json_t *o, const char *k)
{
	return json_integer_value(json_object_get(o, k));
}

/* The wording and content of payloads: durations, run_finished, waiting, rollback, staging, Slack limits. */
static void
test_render_more(void **state)
{
	struct fixture *f = *state;
	struct plan_notify slack = { .url_env = (char *)"NOTIFY_TEST_URL", .format = PLAN_NOTIFY_SLACK };
	struct plan_notify generic = { .url_env = (char *)"NOTIFY_TEST_URL", .format = PLAN_NOTIFY_GENERIC };
	struct plan_notify pd = { .url_env = (char *)"NOTIFY_TEST_URL", .format = PLAN_NOTIFY_PAGERDUTY };
	f->plan.name = (char *)"demo shop release";

	/* Sub-minute durations in words; the plan's name as it is. */
	struct rb_event done = { .type = EV_STAGE_DONE, .stage = "migrate", .message = "3 migrations applied" };
	json_t *s = notify_render(&f->plan, &slack, RUN_ID, "x", "alice", &done, 1200);
	assert_string_equal(jstr(s, "text"), "demo shop release: migrate done in 1.2 s (prod, by alice)");
	json_decref(s);
	s = notify_render(&f->plan, &slack, RUN_ID, "x", "alice", &done, 850);
	assert_string_equal(jstr(s, "text"), "demo shop release: migrate done in 850 ms (prod, by alice)");
	json_decref(s);

	/* run_finished: the run's result and its message, not "the release". */
	json_t *fin = json_pack("{s:s}", "state", "failed");
	struct rb_event finished = { .type = EV_RUN_FINISHED, .message = "rollback not done", .data = fin };
	s = notify_render(&f->plan, &slack, RUN_ID, "x", "alice", &finished, 3400);
	assert_string_equal(jstr(s, "text"), "demo shop release: run failed in 3.4 s (prod, by alice): rollback not done");
	json_decref(s);
	json_decref(fin);

	/* A stage_failed that waits for a review is not a failure. */
	json_t *wd = json_pack("{s:s, s:s}", "waiting", "review", "review_file", "/tmp/r.json");
	struct rb_event waiting = { .type = EV_STAGE_FAILED, .stage = "sync", .message = "waiting for a review",
	                            .data = wd };
	s = notify_render(&f->plan, &slack, RUN_ID, "x", "alice", &waiting, -1);
	assert_string_equal(jstr(s, "text"), "demo shop release: sync waits for a review (prod, by alice): waiting for a review");
	json_t *fields = json_object_get(json_array_get(json_object_get(s, "blocks"), 1), "fields");
	assert_string_equal(jstr(json_array_get(fields, 3), "text"), "*Result*\nwaiting");
	json_decref(s);
	json_t *g = notify_render(&f->plan, &generic, RUN_ID, "x", "alice", &waiting, -1);
	assert_string_equal(jstr(g, "result"), "waiting");
	json_decref(g);
	assert_null(notify_render(&f->plan, &pd, RUN_ID, "x", "alice", &waiting, -1));
	json_decref(wd);

	/* A trigger with no stage has no "component" (not null). */
	struct rb_event nostage = { .type = EV_STAGE_FAILED, .message = "broken" };
	json_t *p = notify_render(&f->plan, &pd, RUN_ID, "x", "alice", &nostage, -1);
	assert_non_null(p);
	assert_null(json_object_get(json_object_get(p, "payload"), "component"));
	json_decref(p);

	/* A rollback resolves the rolled-back run's incident. */
	json_t *rb = json_pack("{s:b, s:s}", "ok", 1, "run", "20261101T000000-aaaa");
	struct rb_event rbdone = { .type = EV_ROLLBACK_DONE, .stage = "rollback", .data = rb };
	p = notify_render(&f->plan, &pd, RUN_ID, "x", "alice", &rbdone, -1);
	assert_string_equal(jstr(p, "event_action"), "resolve");
	assert_string_equal(jstr(p, "dedup_key"), "pgrunbook-20261101T000000-aaaa");
	json_decref(p);
	json_decref(rb);

	/* Stage "staging": the staging environment and its database. */
	struct plan_env envs[2] = { f->env, { .name = (char *)"stage", .kind = PLAN_ENV_CONNINFO,
	                                      .value = (char *)"host=s.example dbname=shop_staging" } };
	f->plan.envs = envs;
	f->plan.nenvs = 2;
	f->plan.staging.present = true;
	f->plan.staging.environment = (char *)"stage";
	struct rb_event st = { .type = EV_STAGE_DONE, .stage = "staging", .message = "rehearsed" };
	g = notify_render(&f->plan, &generic, RUN_ID, "x", "alice", &st, 5000);
	assert_string_equal(jstr(g, "environment"), "stage");
	assert_string_equal(jstr(g, "database"), "shop_staging");
	json_decref(g);
	g = notify_render(&f->plan, &generic, RUN_ID, "x", "alice", &done, 5000);
	assert_string_equal(jstr(g, "environment"), "prod");
	assert_string_equal(jstr(g, "database"), "shop_prod");
	json_decref(g);
	s = notify_render(&f->plan, &slack, RUN_ID, "x", "alice", &st, 5000);
	assert_string_equal(jstr(s, "text"), "demo shop release: staging done in 5.0 s (stage, by alice)");
	json_decref(s);
	f->plan.envs = &f->env;
	f->plan.nenvs = 1;
	f->plan.staging.present = false;
	f->plan.staging.environment = NULL;

	/* mrkdwn in names does not format; Block Kit limits hold, cut with "…". */
	f->plan.name = (char *)"*big*_release_~x~`y`";
	struct strbuf longm = {0};
	for (int i = 0; i < 3000; i++)
		strbuf_adds(&longm, "\xc3\xa9<");
	struct rb_event log = { .type = EV_LOG, .stage = "a_b", .message = longm.buf, .level = LOG_LEVEL_WARN };
	s = notify_render(&f->plan, &slack, RUN_ID, "x", "carol_x", &log, -1);
	const char *text = jstr(s, "text");
	assert_true(strlen(text) <= 3000);
	assert_int_equal(strncmp(text, "\xef\xbc\x8a" "big" "\xef\xbc\x8a" "\xef\xbc\xbf" "release", 18), 0);
	assert_null(strchr(text, '*'));
	assert_null(strchr(text, '_'));
	assert_null(strchr(text, '~'));
	assert_null(strchr(text, '`'));
	assert_non_null(strstr(text, "a\xef\xbc\xbf" "b warn (prod, by carol\xef\xbc\xbf" "x): "));
	assert_string_equal(text + strlen(text) - 3, "\xe2\x80\xa6");
	json_t *blocks = json_object_get(s, "blocks");
	const char *section = jstr(json_object_get(json_array_get(blocks, 0), "text"), "text");
	assert_true(strlen(section) <= 3000);
	fields = json_object_get(json_array_get(blocks, 1), "fields");
	assert_true(json_array_size(fields) <= 10);
	size_t i;
	json_t *fv;
	json_array_foreach(fields, i, fv) {
		const char *t = jstr(fv, "text");
		assert_true(strlen(t) <= 2000);
		json_t *valid = json_string(t);   /* valid UTF-8 */
		assert_non_null(valid);
		json_decref(valid);
	}
	assert_string_equal(jstr(json_array_get(fields, 0), "text"),
	                    "*Plan*\n\xef\xbc\x8a" "big\xef\xbc\x8a\xef\xbc\xbf" "release\xef\xbc\xbf\xef\xbd\x9e" "x"
	                    "\xef\xbd\x9e\xef\xbd\x80" "y\xef\xbd\x80");
	json_decref(s);
	/* A long plan name fills a field past 2000 bytes: cut, never inside an entity. */
	struct strbuf longname = {0};
	for (int k = 0; k < 700; k++)
		strbuf_adds(&longname, "a&");
	f->plan.name = longname.buf;
	s = notify_render(&f->plan, &slack, RUN_ID, "x", "alice", &done, 1);
	fields = json_object_get(json_array_get(json_object_get(s, "blocks"), 1), "fields");
	const char *pf = jstr(json_array_get(fields, 0), "text");
	assert_true(strlen(pf) <= 2000);
	assert_string_equal(pf + strlen(pf) - 3, "\xe2\x80\xa6");
	assert_int_equal(strncmp(strrchr(pf, '&'), "&amp;", 5), 0);   /* no half entity before the cut */
	json_decref(s);
	strbuf_release(&longname);
	strbuf_release(&longm);
	f->plan.name = (char *)"shop";
}

/* Waits (up to 10 s) until the message file's field reaches at least min; returns the document. */
static json_t *
wait_msg(struct fixture *f, const char *name, const char *field, long long min)
{
	for (int i = 0; i < 1000; i++) {
		char *path = outbox_path(f, name);
		json_t *doc = json_load_file(path, 0, NULL);
		free(path);
		if (doc && jint(doc, field) >= min)
			return doc;
		json_decref(doc);
		usleep(10000);
	}
	fail_msg("%s: %s never reached %lld", name, field, min);
	return NULL;
}

static json_t *
wait_state(struct fixture *f, const char *name, const char *st)
{
	for (int i = 0; i < 1000; i++) {
		char *path = outbox_path(f, name);
		json_t *doc = json_load_file(path, 0, NULL);
		free(path);
		if (doc && jstr(doc, "state") && strcmp(jstr(doc, "state"), st) == 0)
			return doc;
		json_decref(doc);
		usleep(10000);
	}
	fail_msg("%s never became %s", name, st);
	return NULL;
}

/* Every file in the outbox: mode 0600 and none holding a secret; the directory 0700. */
static void
check_outbox_files(struct fixture *f, const char *const *forbidden, size_t nforbidden)
{
	char *dir = outbox_path(f, "");
	struct stat st;
	assert_int_equal(stat(dir, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	DIR *d = opendir(dir);
	assert_non_null(d);
	struct dirent *de;
	int files = 0;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		char *path = xasprintf("%s%s", dir, de->d_name);
		assert_int_equal(stat(path, &st), 0);
		if ((st.st_mode & 0777) != 0600)
			fail_msg("%s has mode %o", path, st.st_mode & 0777);
		char *text = file_read_all(path, NULL);
		assert_non_null(text);
		for (size_t i = 0; i < nforbidden; i++)
			if (strstr(text, forbidden[i]) != NULL)
				fail_msg("%s holds a secret", path);
		assert_null(strstr(de->d_name, ".tmp"));
		free(text);
		free(path);
		files++;
	}
	closedir(d);
	assert_true(files > 2);
	free(dir);
}

static int
unused_port(void)
{
	int port;
	int fd = listen_loopback(&port);
	close(fd);   /* bound, never listening: nothing accepts on it now */
	return port;
}

static void
emit_stage(struct events *bus, enum rb_event_type t, const char *stage, const char *msg)
{
	events_emitf(bus, t, stage, NULL, "%s", msg);
}

static void
test_outbox_refused_resume_flush(void **state)
{
	struct fixture *f = *state;
	char *url = xasprintf("http://127.0.0.1:%d/%s", unused_port(), URL_MARKER);
	setenv("NOTIFY_TEST_HOOK", url, 1);
	setenv("NOTIFY_TEST_SECRET", SECRET, 1);
	unsetenv("NOTIFY_TEST_UNSET");
	f->ep[0] = (struct plan_notify){ .url_env = (char *)"NOTIFY_TEST_HOOK", .format = PLAN_NOTIFY_GENERIC,
	                                 .secret_env = (char *)"NOTIFY_TEST_SECRET", .timeout_ms = 2000,
	                                 .connect_timeout_ms = 1000, .backoff_ms = 20, .max_attempts = 1000 };
	f->ep[1] = (struct plan_notify){ .url_env = (char *)"NOTIFY_TEST_UNSET", .format = PLAN_NOTIFY_SLACK,
	                                 .timeout_ms = 2000, .connect_timeout_ms = 1000, .backoff_ms = 20,
	                                 .max_attempts = 3 };
	f->plan.nnotify = 2;
	assert_int_equal(notify_drain_ms(&f->plan), 4000);

	struct strlist warnings = {0};
	struct rb_error err = {0};
	struct notifier *n = notifier_start(&f->plan, f->run_dir, RUN_ID, "alice", &warnings, &err);
	assert_non_null(n);
	assert_int_equal(warnings.len, 1);
	assert_non_null(strstr(warnings.items[0], "notify[1] (NOTIFY_TEST_UNSET)"));
	strlist_free(&warnings);

	struct events *bus = events_new();
	events_subscribe(bus, notifier_event_fn, n);
	emit_stage(bus, EV_STAGE_STARTED, "migrate", "migrate started");
	emit_stage(bus, EV_STAGE_RESULT, "migrate", "not a default event");
	emit_stage(bus, EV_STAGE_DONE, "migrate", "migrate done");

	/* seq 1 is retried (connection refused); seq 2 waits behind it; the unset endpoint fails both. */
	json_t *m1 = wait_msg(f, "00000001-0.json", "attempts", 2);
	assert_string_equal(jstr(m1, "state"), "pending");
	assert_string_equal(jstr(m1, "id"), RUN_ID ".1.1");
	assert_int_equal(jint(m1, "seq"), 1);
	assert_int_equal(jint(m1, "endpoint"), 0);
	assert_string_equal(jstr(m1, "url_env"), "NOTIFY_TEST_HOOK");
	assert_string_equal(jstr(m1, "format"), "generic");
	assert_string_equal(jstr(m1, "event"), "stage_started");
	assert_string_equal(jstr(m1, "stage"), "migrate");
	long long t;
	assert_true(time_parse_rfc3339(jstr(m1, "created"), &t));
	assert_true(json_is_null(json_object_get(m1, "last_status")));
	assert_non_null(jstr(m1, "last_error"));
	assert_true(json_is_null(json_object_get(m1, "sent_at")));
	assert_string_equal(jstr(json_object_get(m1, "body"), "type"), "stage_started");
	json_decref(m1);
	json_t *m2 = load_msg(f, "00000002-0.json");
	assert_string_equal(jstr(m2, "state"), "pending");
	assert_int_equal(jint(m2, "attempts"), 0);
	assert_string_equal(jstr(m2, "event"), "stage_done");
	assert_true(json_is_integer(json_object_get(json_object_get(m2, "body"), "duration_ms")));
	json_decref(m2);
	json_t *u1 = wait_state(f, "00000001-1.json", "failed");
	assert_int_equal(jint(u1, "attempts"), 0);
	assert_string_equal(jstr(u1, "last_error"), "NOTIFY_TEST_UNSET is not set");
	assert_string_equal(jstr(u1, "failure"), "unset");
	json_decref(u1);
	json_decref(wait_state(f, "00000002-1.json", "failed"));
	char *p3 = outbox_path(f, "00000003-0.json");
	assert_int_not_equal(access(p3, F_OK), 0);   /* stage_result is not a default event */
	free(p3);

	json_t *eps = load_msg(f, "endpoints.json");
	json_t *arr = json_object_get(eps, "endpoints");
	assert_int_equal(json_array_size(arr), 2);
	json_t *e0 = json_array_get(arr, 0);
	assert_int_equal(jint(e0, "index"), 0);
	assert_string_equal(jstr(e0, "url_env"), "NOTIFY_TEST_HOOK");
	assert_string_equal(jstr(e0, "secret_env"), "NOTIFY_TEST_SECRET");
	assert_string_equal(jstr(e0, "format"), "generic");
	assert_int_equal(jint(e0, "timeout_ms"), 2000);
	assert_int_equal(jint(e0, "connect_timeout_ms"), 1000);
	assert_int_equal(jint(e0, "max_attempts"), 1000);
	assert_int_equal(jint(e0, "backoff_ms"), 20);
	assert_string_equal(jstr(e0, "state"), "failing");
	assert_string_equal(jstr(json_array_get(arr, 1), "state"), "unset");
	assert_int_equal(jint(eps, "starts"), 1);
	json_decref(eps);

	struct notify_counts c;
	notifier_counts(n, &c);
	assert_int_equal(c.pending, 2);
	assert_int_equal(c.failed, 0);   /* not sent for want of a variable: unset, not failed */
	assert_int_equal(c.unset, 2);
	assert_int_equal(c.sent, 0);
	assert_int_equal(c.endpoints, 2);
	assert_int_equal(c.failing_endpoints, 1);
	assert_int_equal(c.unset_endpoints, 1);
	assert_int_equal(c.write_errors, 0);
	char *line = notifier_status_line(n);
	assert_int_equal(strncmp(line, "notify: 0 sent, 2 pending; notify[0] (NOTIFY_TEST_HOOK) failing: ", 65), 0);
	assert_non_null(strstr(line, "; NOTIFY_TEST_UNSET not set (2 not sent)"));
	assert_null(strstr(line, "failed"));
	assert_null(strstr(line, URL_MARKER));
	free(line);

	/* The outbox is locked while the notifier runs. */
	assert_false(notify_flush(f->run_dir, 100, NULL, &err));
	assert_int_equal(err.code, RB_EXIT_STEP);
	assert_non_null(strstr(err.message, "the outbox of run run is being delivered by another process"));
	assert_null(strstr(err.message, f->tmp));   /* the run's id, not its directory */
	rb_error_clear(&err);

	const char *forbidden[] = { URL_MARKER, "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" };
	check_outbox_files(f, forbidden, RB_ARRAY_LEN(forbidden));

	events_unsubscribe(bus, notifier_event_fn, n);
	line = notifier_stop(n, 50, &c);
	assert_int_equal(c.pending, 2);
	assert_int_equal(c.failed, 0);
	assert_int_equal(c.unset, 2);
	assert_int_equal(strncmp(line, "notify: 0 sent, 2 pending, 0 failed; notify[0] (NOTIFY_TEST_HOOK) failing: ", 75), 0);
	assert_non_null(strstr(line, "; NOTIFY_TEST_UNSET not set (2 not sent); deliver the rest with: pgrunbook notify flush run"));
	assert_null(strstr(line, URL_MARKER));
	free(line);
	m1 = load_msg(f, "00000001-0.json");
	long long attempts = jint(m1, "attempts");
	json_decref(m1);

	/* A resumed run: seq continues, pending messages are taken up again. */
	n = notifier_start(&f->plan, f->run_dir, RUN_ID, "alice", &warnings, &err);
	assert_non_null(n);
	strlist_free(&warnings);
	events_subscribe(bus, notifier_event_fn, n);
	emit_stage(bus, EV_STAGE_FAILED, "verify", "verify failed");
	json_decref(wait_msg(f, "00000001-0.json", "attempts", attempts + 1));
	json_t *m3 = load_msg(f, "00000003-0.json");
	assert_string_equal(jstr(m3, "id"), RUN_ID ".2.3");   /* the second start of the run */
	assert_string_equal(jstr(m3, "event"), "stage_failed");
	json_decref(m3);
	events_unsubscribe(bus, notifier_event_fn, n);
	free(notifier_stop(n, 0, &c));
	assert_int_equal(c.pending, 3);
	events_free(bus);
	json_t *sum = notify_outbox_summary(f->run_dir);
	assert_int_equal(jint(sum, "pending"), 3);
	assert_int_equal(jint(sum, "failed"), 3);
	assert_int_equal(jint(sum, "unset"), 3);
	assert_int_equal(jint(sum, "retryable"), 0);   /* the variable is still unset */
	json_decref(sum);

	/* notify flush, with the URL now pointing at a listener: everything pending is sent, in seq order, signed. */
	struct responder *r = responder_start(NULL, 0);
	char *url2 = xasprintf("http://127.0.0.1:%d/%s", r->port, URL_MARKER);
	setenv("NOTIFY_TEST_HOOK", url2, 1);
	assert_true(notify_flush(f->run_dir, 10000, &c, &err));
	assert_int_equal(c.sent, 3);
	assert_int_equal(c.pending, 0);
	assert_int_equal(c.failed, 0);
	assert_int_equal(c.unset, 3);
	assert_int_equal(responder_count(r), 3);
	const char *want_ids[] = { RUN_ID ".1.1", RUN_ID ".1.2", RUN_ID ".2.3" };
	for (size_t i = 0; i < 3; i++) {
		char *id = check_signed(r->requests.items[i]);
		assert_string_equal(id, want_ids[i]);
		free(id);
	}
	json_t *s1 = load_msg(f, "00000001-0.json");
	assert_string_equal(jstr(s1, "state"), "sent");
	assert_int_equal(jint(s1, "last_status"), 200);
	assert_true(time_parse_rfc3339(jstr(s1, "sent_at"), &t));
	assert_true(json_is_null(json_object_get(s1, "next_attempt")));
	json_decref(s1);
	/* The variable that was unset is set now: those failures get another max_attempts. */
	setenv("NOTIFY_TEST_UNSET", url2, 1);
	sum = notify_outbox_summary(f->run_dir);
	assert_int_equal(jint(sum, "retryable"), 3);   /* set now: a flush would send them */
	json_decref(sum);
	assert_true(notify_flush(f->run_dir, 10000, &c, &err));
	assert_int_equal(c.sent, 6);
	assert_int_equal(c.failed, 0);
	assert_int_equal(c.unset, 0);
	assert_int_equal(c.unset_endpoints, 0);
	assert_int_equal(responder_count(r), 6);
	responder_stop(r);
	check_outbox_files(f, forbidden, RB_ARRAY_LEN(forbidden));
	unsetenv("NOTIFY_TEST_UNSET");
	free(url);
	free(url2);
	f->plan.nnotify = 0;
}

/* The sender thread against scripted answers: 200 with headers, 503 Retry-After, 400 and 410. */
static void
test_outbox_statuses(void **state)
{
	struct fixture *f = *state;
	struct reply script[] = {
		{ 200, NULL },                      /* seq 1 */
		{ 503, "Retry-After: 1\r\n" },      /* seq 2, then 200 after a second */
		{ 200, NULL },
		{ 400, NULL },                      /* seq 3: rejected */
		{ 200, NULL },                      /* seq 4: still tried, sent */
		{ 410, NULL },                      /* seq 5: gone; seq 6 fails without a request */
	};
	struct responder *r = responder_start(script, RB_ARRAY_LEN(script));
	char *url = xasprintf("http://127.0.0.1:%d/%s", r->port, URL_MARKER);
	setenv("NOTIFY_TEST_HOOK", url, 1);
	setenv("NOTIFY_TEST_SECRET", SECRET, 1);
	f->ep[0] = (struct plan_notify){ .url_env = (char *)"NOTIFY_TEST_HOOK", .format = PLAN_NOTIFY_GENERIC,
	                                 .secret_env = (char *)"NOTIFY_TEST_SECRET", .timeout_ms = 2000,
	                                 .connect_timeout_ms = 1000, .backoff_ms = 20, .max_attempts = 5 };
	f->plan.nnotify = 1;
	struct strlist warnings = {0};
	struct rb_error err = {0};
	struct notifier *n = notifier_start(&f->plan, f->run_dir, RUN_ID, "alice", &warnings, &err);
	assert_non_null(n);
	assert_int_equal(warnings.len, 0);
	struct events *bus = events_new();
	events_subscribe(bus, notifier_event_fn, n);

	emit_stage(bus, EV_STAGE_STARTED, "backup", "backup started");
	json_t *m = wait_state(f, "00000001-0.json", "sent");
	assert_int_equal(jint(m, "attempts"), 1);
	assert_int_equal(jint(m, "last_status"), 200);
	json_decref(m);
	/* the webhook's connection (and the responder's) closes on exec: children do not inherit it */
	pthread_mutex_lock(&r->mu);
	assert_true(r->sockets >= 3);   /* the listener, the accepted connection, libcurl's TCP socket */
	assert_int_equal(r->inheritable, 0);
	pthread_mutex_unlock(&r->mu);
	char *id = check_signed(r->requests.items[0]);
	assert_string_equal(id, RUN_ID ".1.1");
	free(id);
	assert_non_null(strstr(r->requests.items[0], "POST /" URL_MARKER " HTTP/1.1"));

	long long before = time_now_ms();
	emit_stage(bus, EV_STAGE_DONE, "backup", "backup done");
	m = wait_msg(f, "00000002-0.json", "attempts", 1);
	if (strcmp(jstr(m, "state"), "pending") == 0) {
		assert_int_equal(jint(m, "last_status"), 503);
		long long next;
		assert_true(time_parse_rfc3339(jstr(m, "next_attempt"), &next));
		assert_true(next - before >= 900);
		assert_true(next - before < 5000);
	}
	json_decref(m);
	m = wait_state(f, "00000002-0.json", "sent");
	assert_int_equal(jint(m, "attempts"), 2);
	json_decref(m);
	assert_true(time_now_ms() - before >= 900);

	emit_stage(bus, EV_STAGE_STARTED, "migrate", "migrate started");
	m = wait_state(f, "00000003-0.json", "failed");
	assert_int_equal(jint(m, "attempts"), 1);
	assert_int_equal(jint(m, "last_status"), 400);
	json_decref(m);
	emit_stage(bus, EV_STAGE_DONE, "migrate", "migrate done");
	json_decref(wait_state(f, "00000004-0.json", "sent"));
	struct notify_counts c;
	notifier_counts(n, &c);
	assert_int_equal(c.failing_endpoints, 0);

	emit_stage(bus, EV_STAGE_STARTED, "verify", "verify started");
	json_decref(wait_state(f, "00000005-0.json", "failed"));
	emit_stage(bus, EV_STAGE_DONE, "verify", "verify done");
	m = wait_state(f, "00000006-0.json", "failed");
	assert_int_equal(jint(m, "attempts"), 0);
	json_decref(m);
	assert_int_equal(responder_count(r), 6);
	json_t *eps = load_msg(f, "endpoints.json");
	json_t *e0 = json_array_get(json_object_get(eps, "endpoints"), 0);
	assert_string_equal(jstr(e0, "state"), "gone");
	assert_int_equal(jint(e0, "last_status"), 410);
	json_decref(eps);
	char *line = notifier_status_line(n);
	assert_string_equal(line, "notify: 3 sent, 0 pending, 3 failed; notify[0] (NOTIFY_TEST_HOOK) gone: HTTP 410");
	free(line);

	events_unsubscribe(bus, notifier_event_fn, n);
	line = notifier_stop(n, 1000, &c);
	assert_string_equal(line, "notify: 3 sent, 0 pending, 3 failed; notify[0] (NOTIFY_TEST_HOOK) gone: HTTP 410");
	free(line);
	assert_int_equal(c.sent, 3);
	assert_int_equal(c.failed, 3);
	/* A flush does not retry a gone endpoint. */
	assert_true(notify_flush(f->run_dir, 1000, &c, &err));
	assert_int_equal(c.sent, 3);
	assert_int_equal(responder_count(r), 6);
	json_t *sum = notify_outbox_summary(f->run_dir);
	assert_int_equal(jint(sum, "failed"), 3);
	assert_int_equal(jint(sum, "retryable"), 0);   /* 400 and 410: never again */
	json_decref(sum);

	/* A resumed run keeps the endpoint gone: its new messages fail without a request. */
	n = notifier_start(&f->plan, f->run_dir, RUN_ID, "alice", &warnings, &err);
	assert_non_null(n);
	line = notifier_status_line(n);
	assert_string_equal(line, "notify: 3 sent, 0 pending, 3 failed; notify[0] (NOTIFY_TEST_HOOK) gone: HTTP 410");
	free(line);
	events_subscribe(bus, notifier_event_fn, n);
	emit_stage(bus, EV_STAGE_STARTED, "report", "report started");
	m = wait_state(f, "00000007-0.json", "failed");
	assert_int_equal(jint(m, "attempts"), 0);
	assert_string_equal(jstr(m, "failure"), "gone");
	assert_string_equal(jstr(m, "id"), RUN_ID ".2.7");
	json_decref(m);
	events_unsubscribe(bus, notifier_event_fn, n);
	events_free(bus);
	free(notifier_stop(n, 1000, &c));
	assert_int_equal(c.failed, 4);
	assert_int_equal(responder_count(r), 6);
	eps = load_msg(f, "endpoints.json");
	assert_string_equal(jstr(json_array_get(json_object_get(eps, "endpoints"), 0), "state"), "gone");
	assert_int_equal(jint(eps, "starts"), 2);
	json_decref(eps);
	responder_stop(r);
	const char *forbidden[] = { URL_MARKER, "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" };
	check_outbox_files(f, forbidden, RB_ARRAY_LEN(forbidden));
	free(url);
	f->plan.nnotify = 0;
}

/* A listener that accepts connections (the kernel does) and never answers: a hanging endpoint. */
static int
hang_listener(int *port)
{
	int fd = listen_loopback(port);
	assert_int_equal(listen(fd, 64), 0);
	return fd;
}

/* Waits up to ms for the responder to have n requests; returns the ms it took, or -1. */
static long long
wait_requests(struct responder *r, size_t n, long long ms)
{
	long long t0 = time_monotonic_ms();
	while (time_monotonic_ms() - t0 < ms) {
		if (responder_count(r) >= n)
			return time_monotonic_ms() - t0;
		usleep(5000);
	}
	return -1;
}

struct flush_arg {
	const char          *run_dir;
	bool                 ok;
	struct notify_counts c;
	struct rb_error      err;
};

static void *
flush_thread(void *arg)
{
	struct flush_arg *a = arg;
	a->ok = notify_flush(a->run_dir, 4000, &a->c, &a->err);
	return NULL;
}

/* A hanging endpoint (timeout 3 s) holds up no other endpoint: in the run, in the drain, in flush. */
static void
test_hang_isolated(void **state)
{
	struct fixture *f = *state;
	int hport;
	int hfd = hang_listener(&hport);
	struct responder *r = responder_start(NULL, 0);
	char *hurl = xasprintf("http://127.0.0.1:%d/%s", hport, URL_MARKER);
	char *ourl = xasprintf("http://127.0.0.1:%d/%s", r->port, URL_MARKER);
	setenv("NOTIFY_TEST_HANG", hurl, 1);
	unsetenv("NOTIFY_TEST_OK");
	f->ep[0] = (struct plan_notify){ .url_env = (char *)"NOTIFY_TEST_HANG", .format = PLAN_NOTIFY_GENERIC,
	                                 .timeout_ms = 3000, .connect_timeout_ms = 1000, .backoff_ms = 20,
	                                 .max_attempts = 1000 };
	f->ep[1] = (struct plan_notify){ .url_env = (char *)"NOTIFY_TEST_OK", .format = PLAN_NOTIFY_GENERIC,
	                                 .timeout_ms = 3000, .connect_timeout_ms = 1000, .backoff_ms = 20,
	                                 .max_attempts = 1000 };
	f->plan.nnotify = 2;
	assert_int_equal(notify_drain_ms(&f->plan), 5000);
	setenv("NOTIFY_TEST_OK", ourl, 1);

	struct strlist warnings = {0};
	struct rb_error err = {0};
	struct notifier *n = notifier_start(&f->plan, f->run_dir, RUN_ID, "alice", &warnings, &err);
	assert_non_null(n);
	assert_int_equal(warnings.len, 0);
	struct events *bus = events_new();
	events_subscribe(bus, notifier_event_fn, n);
	emit_stage(bus, EV_STAGE_STARTED, "migrate", "migrate started");
	usleep(100000);   /* the hanging endpoint's sender is in its request now */
	emit_stage(bus, EV_STAGE_DONE, "migrate", "migrate done");
	emit_stage(bus, EV_STAGE_STARTED, "verify", "verify started");
	long long took = wait_requests(r, 3, 2500);
	if (took < 0 || took > 1500)
		fail_msg("the ok endpoint got its 3 messages after %lld ms (the hang's timeout is 3 s)", took);
	/* The drain: the ok endpoint's new message goes at once, whatever the hanging one does. */
	emit_stage(bus, EV_STAGE_DONE, "verify", "verify done");
	events_unsubscribe(bus, notifier_event_fn, n);
	events_free(bus);
	long long t0 = time_monotonic_ms();
	struct notify_counts c;
	char *line = notifier_stop(n, 800, &c);
	long long stop_ms = time_monotonic_ms() - t0;
	assert_true(stop_ms < 2500);   /* the drain cut the hanging request */
	assert_int_equal(responder_count(r), 4);
	assert_int_equal(c.sent, 4);
	assert_int_equal(c.pending, 4);
	if (strstr(line, "notify: 4 sent, 4 pending, 0 failed; notify[0] (NOTIFY_TEST_HANG) failing") == NULL)
		fail_msg("the end line: %s", line);
	free(line);

	/* notify flush: the ok endpoint's messages (failed for want of its variable) go first thing. */
	unsetenv("NOTIFY_TEST_OK");
	n = notifier_start(&f->plan, f->run_dir, RUN_ID, "alice", &warnings, &err);
	assert_non_null(n);
	assert_int_equal(warnings.len, 1);
	strlist_free(&warnings);
	bus = events_new();
	events_subscribe(bus, notifier_event_fn, n);
	emit_stage(bus, EV_STAGE_STARTED, "report", "report started");
	emit_stage(bus, EV_STAGE_DONE, "report", "report done");
	events_unsubscribe(bus, notifier_event_fn, n);
	events_free(bus);
	free(notifier_stop(n, 0, &c));
	assert_int_equal(c.unset, 2);
	setenv("NOTIFY_TEST_OK", ourl, 1);
	struct flush_arg fa = { .run_dir = f->run_dir };
	pthread_t th;
	t0 = time_monotonic_ms();
	assert_int_equal(pthread_create(&th, NULL, flush_thread, &fa), 0);
	took = wait_requests(r, 6, 2500);
	if (took < 0 || took > 1500)
		fail_msg("flush: the ok endpoint got its 2 messages after %lld ms (the hang's timeout is 3 s)", took);
	pthread_join(th, NULL);
	assert_true(fa.ok);
	assert_true(time_monotonic_ms() - t0 < 6000);
	assert_int_equal(fa.c.sent, 6);
	assert_int_equal(fa.c.unset, 0);
	assert_true(fa.c.pending >= 1);   /* the hanging endpoint's */
	assert_int_equal(responder_count(r), 6);
	responder_stop(r);
	close(hfd);
	unsetenv("NOTIFY_TEST_OK");
	unsetenv("NOTIFY_TEST_HANG");
	free(hurl);
	free(ourl);
	f->plan.nnotify = 0;
}

/* Retry-After: 0 does not make a retry come sooner than the backoff; a 302 is refused with a reason. */
static void
test_retry_after_floor_and_redirect(void **state)
{
	struct fixture *f = *state;
	struct reply script[] = {
		{ 429, "Retry-After: 0\r\n" },   /* seq 1: retried after the backoff (200..400 ms), not at once */
		{ 200, NULL },
		{ 302, "Location: http://127.0.0.1:1/elsewhere\r\n" },   /* seq 2: refused */
	};
	struct responder *r = responder_start(script, RB_ARRAY_LEN(script));
	char *url = xasprintf("http://127.0.0.1:%d/%s", r->port, URL_MARKER);
	setenv("NOTIFY_TEST_HOOK", url, 1);
	f->ep[0] = (struct plan_notify){ .url_env = (char *)"NOTIFY_TEST_HOOK", .format = PLAN_NOTIFY_SLACK,
	                                 .timeout_ms = 2000, .connect_timeout_ms = 1000, .backoff_ms = 400,
	                                 .max_attempts = 5 };
	f->plan.nnotify = 1;
	struct strlist warnings = {0};
	struct rb_error err = {0};
	struct notifier *n = notifier_start(&f->plan, f->run_dir, RUN_ID, "alice", &warnings, &err);
	assert_non_null(n);
	struct events *bus = events_new();
	events_subscribe(bus, notifier_event_fn, n);
	long long t0 = time_monotonic_ms();
	emit_stage(bus, EV_STAGE_STARTED, "backup", "backup started");
	json_t *m = wait_state(f, "00000001-0.json", "sent");
	long long took = time_monotonic_ms() - t0;
	if (took < 190)
		fail_msg("the retry after \"Retry-After: 0\" came %lld ms after the event (backoff: 200..400 ms)", took);
	assert_int_equal(jint(m, "attempts"), 2);
	json_decref(m);
	emit_stage(bus, EV_STAGE_DONE, "backup", "backup done");
	m = wait_state(f, "00000002-0.json", "failed");
	assert_int_equal(jint(m, "attempts"), 1);
	assert_int_equal(jint(m, "last_status"), 302);
	assert_string_equal(jstr(m, "last_error"), "HTTP 302: redirects are not followed; give the final URL");
	json_decref(m);
	assert_int_equal(responder_count(r), 3);
	char *line = notifier_status_line(n);
	assert_string_equal(line, "notify: 1 sent, 0 pending, 1 failed; notify[0] (NOTIFY_TEST_HOOK) rejected: HTTP 302: "
	                          "redirects are not followed; give the final URL");
	free(line);
	events_unsubscribe(bus, notifier_event_fn, n);
	events_free(bus);
	free(notifier_stop(n, 0, NULL));
	responder_stop(r);
	free(url);
	f->plan.nnotify = 0;
}

/* Ids stay unique when message files are lost; outbox write errors are counted and shown. */
static void
test_ids_and_write_errors(void **state)
{
	struct fixture *f = *state;
	unsetenv("NOTIFY_TEST_UNSET");
	f->ep[0] = (struct plan_notify){ .url_env = (char *)"NOTIFY_TEST_UNSET", .format = PLAN_NOTIFY_GENERIC };
	f->plan.nnotify = 1;
	struct strlist warnings = {0};
	struct rb_error err = {0};
	struct notifier *n = notifier_start(&f->plan, f->run_dir, RUN_ID, "alice", &warnings, &err);
	assert_non_null(n);
	strlist_free(&warnings);
	struct events *bus = events_new();
	events_subscribe(bus, notifier_event_fn, n);
	emit_stage(bus, EV_STAGE_STARTED, "backup", "backup started");
	emit_stage(bus, EV_STAGE_DONE, "backup", "backup done");
	events_unsubscribe(bus, notifier_event_fn, n);
	free(notifier_stop(n, 0, NULL));
	json_t *m = load_msg(f, "00000002-0.json");
	assert_string_equal(jstr(m, "id"), RUN_ID ".1.2");
	json_decref(m);
	/* The files are lost (a disk problem): the next start uses the same seq, never the same id. */
	char *p1 = outbox_path(f, "00000001-0.json"), *p2 = outbox_path(f, "00000002-0.json");
	assert_int_equal(unlink(p1), 0);
	assert_int_equal(unlink(p2), 0);
	n = notifier_start(&f->plan, f->run_dir, RUN_ID, "alice", &warnings, &err);
	assert_non_null(n);
	strlist_free(&warnings);
	/* and seq 2 cannot be written: a directory gets in its way after the start (a name the start
	 * saw, readable or not, is never used again) */
	assert_int_equal(mkdir(p2, 0700), 0);
	events_subscribe(bus, notifier_event_fn, n);
	emit_stage(bus, EV_STAGE_STARTED, "backup", "backup started");
	emit_stage(bus, EV_STAGE_DONE, "backup", "backup done");
	events_unsubscribe(bus, notifier_event_fn, n);
	events_free(bus);
	m = wait_state(f, "00000001-0.json", "failed");   /* the writer thread writes it soon */
	assert_string_equal(jstr(m, "id"), RUN_ID ".2.1");
	json_decref(m);
	struct notify_counts c;
	for (int i = 0; i < 500; i++) {
		notifier_counts(n, &c);
		if (c.write_errors > 0)
			break;
		usleep(10000);
	}
	assert_int_equal(c.write_errors, 1);
	assert_int_equal(c.unset, 2);
	char *line = notifier_status_line(n);
	assert_non_null(strstr(line, "notify: 0 sent, 0 pending; 1 outbox write error: could not "));
	assert_non_null(strstr(line, "Is a directory"));
	assert_non_null(strstr(line, "00000002-0.json"));
	assert_non_null(strstr(line, "; NOTIFY_TEST_UNSET not set (2 not sent)"));
	free(line);
	line = notifier_stop(n, 0, &c);
	assert_int_equal(c.write_errors, 1);
	assert_non_null(strstr(line, "1 outbox write error"));
	free(line);
	assert_int_equal(rmdir(p2), 0);
	free(p1);
	free(p2);

	/* A message file that cannot be read (torn, or empty) keeps its seq: the next start goes past it. */
	char *p9 = outbox_path(f, "00000009-0.json");
	FILE *torn = fopen(p9, "w");
	assert_non_null(torn);
	fputs("{\"id\": \"", torn);
	fclose(torn);
	n = notifier_start(&f->plan, f->run_dir, RUN_ID, "alice", &warnings, &err);
	assert_non_null(n);
	strlist_free(&warnings);
	bus = events_new();
	events_subscribe(bus, notifier_event_fn, n);
	emit_stage(bus, EV_STAGE_STARTED, "backup", "backup started");
	events_unsubscribe(bus, notifier_event_fn, n);
	events_free(bus);
	free(notifier_stop(n, 0, NULL));
	m = load_msg(f, "00000010-0.json");
	assert_string_equal(jstr(m, "id"), RUN_ID ".3.10");
	json_decref(m);
	assert_int_equal(unlink(p9), 0);
	free(p9);

	/* notify flush of a run without an outbox: a step error naming the run, not its directory. */
	char *other = xasprintf("%s/20261124T000000-beef", f->tmp);
	assert_int_equal(mkdir(other, 0700), 0);
	assert_false(notify_flush(other, 100, NULL, &err));
	assert_int_equal(err.code, RB_EXIT_STEP);
	assert_string_equal(err.message, "run 20261124T000000-beef has no outbox (it sent no webhook notifications)");
	rb_error_clear(&err);
	assert_null(notify_outbox_summary(other));
	free(other);
	/* The end-of-command drain is at most 10 s, whatever the timeouts. */
	f->ep[0].timeout_ms = 60000;
	assert_int_equal(notify_drain_ms(&f->plan), 10000);
	f->plan.nnotify = 0;
}

/* notify test: one synchronous attempt per endpoint; pagerduty sends a trigger and its resolve. */
static void
test_notify_test(void **state)
{
	struct fixture *f = *state;
	struct responder *r = responder_start(NULL, 0);
	char *url = xasprintf("http://127.0.0.1:%d/enqueue", r->port);
	setenv("NOTIFY_TEST_HOOK", url, 1);
	setenv("NOTIFY_TEST_EVENTS_URL", url, 1);
	setenv("NOTIFY_TEST_KEY", "R0UTINGKEY-" URL_MARKER, 1);
	unsetenv("NOTIFY_TEST_UNSET");
	f->ep[0] = (struct plan_notify){ .url_env = (char *)"NOTIFY_TEST_HOOK", .format = PLAN_NOTIFY_SLACK,
	                                 .timeout_ms = 2000, .connect_timeout_ms = 1000 };
	f->ep[1] = (struct plan_notify){ .url_env = (char *)"NOTIFY_TEST_KEY", .format = PLAN_NOTIFY_PAGERDUTY,
	                                 .events_url_env = (char *)"NOTIFY_TEST_EVENTS_URL", .timeout_ms = 2000,
	                                 .connect_timeout_ms = 1000 };
	f->ep[2] = (struct plan_notify){ .url_env = (char *)"NOTIFY_TEST_UNSET", .format = PLAN_NOTIFY_GENERIC };
	f->plan.nnotify = 3;
	json_t *res = notify_test(&f->plan, "alice");
	assert_int_equal(json_array_size(res), 3);
	json_t *a = json_array_get(res, 0), *b = json_array_get(res, 1), *c = json_array_get(res, 2);
	assert_true(json_is_true(json_object_get(a, "ok")));
	assert_int_equal(jint(a, "status"), 200);
	assert_string_equal(jstr(a, "format"), "slack");
	assert_true(json_is_true(json_object_get(b, "ok")));
	assert_string_equal(jstr(b, "url_env"), "NOTIFY_TEST_KEY");
	assert_true(json_is_false(json_object_get(c, "ok")));
	assert_true(json_is_null(json_object_get(c, "status")));
	assert_string_equal(jstr(c, "error"), "NOTIFY_TEST_UNSET is not set");
	assert_true(json_is_integer(json_object_get(c, "ms")));
	char *text = dump(res);
	assert_null(strstr(text, URL_MARKER));
	free(text);
	json_decref(res);
	assert_int_equal(responder_count(r), 3);
	/* the endpoints are tried in parallel: the pagerduty requests are the ones with an event_action */
	json_t *trig = NULL, *reso = NULL;
	for (size_t i = 0; i < 3; i++) {
		json_t *rq = json_loads(request_body(r->requests.items[i]), 0, NULL);
		if (jstr(rq, "event_action") == NULL)
			json_decref(rq);
		else if (trig == NULL)
			trig = rq;
		else
			reso = rq;
	}
	assert_non_null(trig);
	assert_non_null(reso);
	assert_string_equal(jstr(trig, "event_action"), "trigger");
	assert_string_equal(jstr(trig, "routing_key"), "R0UTINGKEY-" URL_MARKER);
	assert_string_equal(jstr(reso, "event_action"), "resolve");
	assert_string_equal(jstr(reso, "routing_key"), "R0UTINGKEY-" URL_MARKER);
	assert_string_equal(jstr(trig, "dedup_key"), jstr(reso, "dedup_key"));
	assert_int_equal(strncmp(jstr(trig, "dedup_key"), "pgrunbook-test-", 15), 0);
	json_decref(trig);
	json_decref(reso);
	responder_stop(r);
	free(url);
	f->plan.nnotify = 0;
}

/* A cancel flag (Ctrl-C during the drain) ends notifier_stop() at once; every message is on disk. */
static void
test_drain_cancel(void **state)
{
	struct fixture *f = *state;
	int hport;
	int hfd = hang_listener(&hport);
	char *hurl = xasprintf("http://127.0.0.1:%d/%s", hport, URL_MARKER);
	setenv("NOTIFY_TEST_HANG", hurl, 1);
	f->ep[0] = (struct plan_notify){ .url_env = (char *)"NOTIFY_TEST_HANG", .format = PLAN_NOTIFY_GENERIC,
	                                 .timeout_ms = 8000, .connect_timeout_ms = 1000, .backoff_ms = 20,
	                                 .max_attempts = 10 };
	f->plan.nnotify = 1;
	struct strlist warnings = {0};
	struct rb_error err = {0};
	struct notifier *n = notifier_start(&f->plan, f->run_dir, RUN_ID, "alice", &warnings, &err);
	assert_non_null(n);
	struct events *bus = events_new();
	events_subscribe(bus, notifier_event_fn, n);
	for (int i = 0; i < 50; i++)
		emit_stage(bus, i % 2 ? EV_STAGE_DONE : EV_STAGE_STARTED, "migrate", "x");
	events_unsubscribe(bus, notifier_event_fn, n);
	events_free(bus);
	usleep(200000);   /* the first request hangs */
	static atomic_int flag;
	flag = 1;
	notifier_cancel_on(n, &flag);
	long long t0 = time_monotonic_ms();
	struct notify_counts c;
	char *line = notifier_stop(n, 10000, &c);
	long long took = time_monotonic_ms() - t0;
	if (took > 1500)
		fail_msg("notifier_stop took %lld ms after the cancel flag was set", took);
	assert_int_equal(c.pending, 50);
	assert_non_null(strstr(line, "notify: 0 sent, 50 pending, 0 failed;"));
	assert_non_null(strstr(line, "; deliver the rest with: pgrunbook notify flush run"));
	free(line);
	json_t *m = load_msg(f, "00000050-0.json");
	assert_string_equal(jstr(m, "state"), "pending");
	json_decref(m);
	m = load_msg(f, "00000001-0.json");
	assert_int_equal(jint(m, "attempts"), 0);   /* the cut attempt is not counted */
	json_decref(m);
	close(hfd);
	unsetenv("NOTIFY_TEST_HANG");
	free(hurl);
	f->plan.nnotify = 0;
}

/* notify test tries the endpoints in parallel: two hanging ones take one timeout, not two. */
static void
test_notify_test_parallel(void **state)
{
	struct fixture *f = *state;
	int p1, p2;
	int fd1 = hang_listener(&p1), fd2 = hang_listener(&p2);
	struct responder *r = responder_start(NULL, 0);
	char *u1 = xasprintf("http://127.0.0.1:%d/x", p1), *u2 = xasprintf("http://127.0.0.1:%d/x", p2);
	char *u3 = xasprintf("http://127.0.0.1:%d/x", r->port);
	setenv("NOTIFY_TEST_H1", u1, 1);
	setenv("NOTIFY_TEST_H2", u2, 1);
	setenv("NOTIFY_TEST_HOOK", u3, 1);
	f->ep[0] = (struct plan_notify){ .url_env = (char *)"NOTIFY_TEST_H1", .timeout_ms = 1500, .connect_timeout_ms = 1000 };
	f->ep[1] = (struct plan_notify){ .url_env = (char *)"NOTIFY_TEST_H2", .timeout_ms = 1500, .connect_timeout_ms = 1000 };
	f->ep[2] = (struct plan_notify){ .url_env = (char *)"NOTIFY_TEST_HOOK", .format = PLAN_NOTIFY_GENERIC, .timeout_ms = 1500,
	                                 .connect_timeout_ms = 1000 };
	f->plan.nnotify = 3;
	long long t0 = time_monotonic_ms();
	json_t *res = notify_test(&f->plan, "carol");
	long long took = time_monotonic_ms() - t0;
	if (took >= 2800)
		fail_msg("notify test took %lld ms: the endpoints were not tried in parallel", took);
	assert_int_equal(json_array_size(res), 3);
	assert_true(json_is_false(json_object_get(json_array_get(res, 0), "ok")));
	assert_true(json_is_false(json_object_get(json_array_get(res, 1), "ok")));
	assert_true(json_is_true(json_object_get(json_array_get(res, 2), "ok")));
	assert_int_equal(jint(json_array_get(res, 2), "endpoint"), 2);
	json_decref(res);
	json_t *body = json_loads(request_body(r->requests.items[0]), 0, NULL);
	assert_string_equal(jstr(body, "who"), "carol");
	json_decref(body);
	responder_stop(r);
	close(fd1);
	close(fd2);
	unsetenv("NOTIFY_TEST_H1");
	unsetenv("NOTIFY_TEST_H2");
	free(u1);
	free(u2);
	free(u3);
	f->plan.nnotify = 0;
}

int
main(void)
{
	/* Loopback only: no proxy from the environment. */
	const char *proxies[] = { "http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY" };
	for (size_t i = 0; i < RB_ARRAY_LEN(proxies); i++)
		unsetenv(proxies[i]);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sign),
		cmocka_unit_test(test_backoff),
		cmocka_unit_test(test_retry_after),
		cmocka_unit_test(test_classify),
		cmocka_unit_test_setup_teardown(test_render, setup, teardown),
		cmocka_unit_test_setup_teardown(test_render_more, setup, teardown),
		cmocka_unit_test_setup_teardown(test_outbox_refused_resume_flush, setup, teardown),
		cmocka_unit_test_setup_teardown(test_outbox_statuses, setup, teardown),
		cmocka_unit_test_setup_teardown(test_notify_test, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hang_isolated, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retry_after_floor_and_redirect, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ids_and_write_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_notify_test_parallel, setup, teardown),
		cmocka_unit_test_setup_teardown(test_drain_cancel, setup, teardown),
	};
	int rc = cmocka_run_group_tests_name("notify", tests, NULL, NULL);
	curl_global_cleanup();
	return rc;
}
