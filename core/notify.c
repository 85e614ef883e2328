/* notify.c: webhook notifications: the outbox in the run directory and its libcurl sender (notify.h). */
#include "config.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <libpq-fe.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "notify.h"

#define OUTBOX_DIR        "outbox"
#define ENDPOINTS_FILE    "endpoints.json"
#define LOCK_FILE         ".lock"
#define PAGERDUTY_URL     "https://events.pagerduty.com/v2/enqueue"
#define BACKOFF_CAP_MS    (10LL * 60 * 1000)
#define RETRY_AFTER_CAP_MS (60LL * 60 * 1000)
#define DEFAULT_TIMEOUT_MS 10000
#define DEFAULT_CONNECT_MS 5000
#define DEFAULT_BACKOFF_MS 1000
#define DEFAULT_ATTEMPTS   10
#define MESSAGE_CAP        300   /* characters of an event's message in a Slack line */

enum msg_state { MSG_PENDING, MSG_SENT, MSG_FAILED };
static const char *const msg_state_names[] = { "pending", "sent", "failed" };

/* One delivery: the in-memory view of its file (doc is the file's content). */
struct nmsg {
	unsigned long  seq;
	size_t         endpoint;
	char          *name;      /* "<seq>-<endpoint>.json" */
	json_t        *doc;
	enum msg_state state;
	int            attempts;
	int            limit;     /* attempts allowed (max_attempts; more after notify_flush reopens it) */
	long long      next_ms;   /* wall clock of the next attempt; 0: now */
};

struct nendpoint {
	size_t                  index;
	char                   *url_env, *secret_env, *events_url_env;
	enum plan_notify_format format;
	int64_t                 timeout_ms, connect_timeout_ms, backoff_ms;
	int                     max_attempts;
	struct strlist          events;      /* the types it is sent */
	char                   *state;       /* "ok" | "failing" | "rejected" | "gone" */
	long                    last_status; /* 0: none */
	char                   *last_error;
};

struct stage_time {
	char     *stage;
	long long ms;
};

/* The outbox of one run, opened and locked; shared by the notifier and notify_flush(). */
struct outbox {
	char             *run_dir;
	char             *dir;
	char             *run_id;
	int               lock_fd;
	struct nendpoint *eps;
	size_t            neps;
	struct nmsg     **msgs;     /* by seq, then endpoint */
	size_t            nmsgs, msgcap;
	unsigned long     seq;      /* highest seq used */
	unsigned          write_errors;
	char             *write_error;   /* the first */
};

struct notifier {
	pthread_mutex_t     mu;
	pthread_cond_t      cond;
	pthread_t           thread;
	bool                started;
	bool                stopping;
	long long           deadline;   /* wall clock ms, when stopping */
	_Atomic long long   abort_at;   /* wall clock ms after which a request in flight is cut; 0: never */
	struct outbox       ob;
	const struct plan  *plan;
	char               *who;
	struct stage_time  *stages;
	size_t              nstages;
};

/* What one attempt needs, copied out of the outbox so the request runs without the lock. */
struct job {
	struct nmsg            *msg;
	char                   *id;
	char                   *body;     /* as stored */
	char                   *url_env, *secret_env, *events_url_env;
	enum plan_notify_format format;
	int64_t                 timeout_ms, connect_timeout_ms;
};

struct attempt {
	long    status;           /* 0: no response */
	bool    permanent;        /* no response, and retrying will not help (bad URL) */
	bool    not_sent;         /* no request was made (a variable unset) */
	char   *error;            /* with no status */
	bool    has_retry_after;
	int64_t retry_after_ms;
};

/* ---------- small helpers ---------- */

static const char *
format_name(enum plan_notify_format f)
{
	return f == PLAN_NOTIFY_SLACK ? "slack" : f == PLAN_NOTIFY_GENERIC ? "generic" : "pagerduty";
}

static bool
format_from_name(const char *s, enum plan_notify_format *out)
{
	if (s == NULL)
		return false;
	if (strcmp(s, "slack") == 0)
		*out = PLAN_NOTIFY_SLACK;
	else if (strcmp(s, "generic") == 0)
		*out = PLAN_NOTIFY_GENERIC;
	else if (strcmp(s, "pagerduty") == 0)
		*out = PLAN_NOTIFY_PAGERDUTY;
	else
		return false;
	return true;
}

static json_t *
jstr_or_null(const char *s)
{
	if (s == NULL)
		return json_null();
	json_t *v = json_string(s);
	if (v != NULL)
		return v;
	char *copy = xstrdup(s);
	for (unsigned char *p = (unsigned char *)copy; *p; p++)
		if (*p >= 0x80)
			*p = '?';
	v = json_string(copy);
	free(copy);
	return v ? v : json_null();
}

static const char *
jget_str(const json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

/* The length of s cut to at most max bytes, not inside a UTF-8 sequence. */
static size_t
utf8_cut(const char *s, size_t max)
{
	size_t len = strlen(s);
	if (len <= max)
		return len;
	while (max > 0 && ((unsigned char)s[max] & 0xC0) == 0x80)
		max--;
	return max;
}

static void
rfc3339_of_ms(long long ms, char out[32])
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	gmtime_r(&t, &tm);
	size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out + n, 32 - n, ".%03dZ", (int)(ms % 1000));
}

static const char *
env_value(const char *name)
{
	if (name == NULL)
		return NULL;
	const char *v = getenv(name);
	return v != NULL && v[0] != '\0' ? v : NULL;
}

static void
free_secret(char *s)
{
	if (s == NULL)
		return;
	explicit_bzero(s, strlen(s));
	free(s);
}

static uint32_t
random_u32(void)
{
	uint32_t r = 0;
	if (getrandom(&r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r)
		r = (uint32_t)time_monotonic_ms() * 2654435761u;
	return r;
}

/* ---------- pure parts: signing, backoff, Retry-After, classification ---------- */

char *
notify_sign(const char *secret, const char *id, long long ts, const char *body)
{
	if (secret == NULL || strncmp(secret, "whsec_", 6) != 0 || id == NULL || body == NULL)
		return NULL;
	const char *b64 = secret + 6;
	size_t blen = strlen(b64);
	if (blen == 0 || blen % 4 != 0 || blen > 4096)
		return NULL;
	for (size_t i = 0; i < blen; i++) {
		unsigned char c = (unsigned char)b64[i];
		if (!(isalnum(c) || c == '+' || c == '/' || (c == '=' && i >= blen - 2)))
			return NULL;
	}
	if (b64[blen - 2] == '=' && b64[blen - 1] != '=')
		return NULL;
	unsigned char *key = xmalloc(blen / 4 * 3 + 1);
	int klen = EVP_DecodeBlock(key, (const unsigned char *)b64, (int)blen);
	if (klen < 0) {
		free(key);
		return NULL;
	}
	/* EVP_DecodeBlock counts the padding as zero bytes. */
	klen -= (b64[blen - 1] == '=') + (b64[blen - 2] == '=');
	if (klen <= 0) {
		explicit_bzero(key, blen / 4 * 3 + 1);
		free(key);
		return NULL;
	}
	char *msg = xasprintf("%s.%lld.%s", id, ts, body);
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int maclen = 0;
	unsigned char *r = HMAC(EVP_sha256(), key, klen, (const unsigned char *)msg, strlen(msg), mac, &maclen);
	explicit_bzero(key, blen / 4 * 3 + 1);
	free(key);
	free(msg);
	if (r == NULL || maclen != 32)
		return NULL;
	unsigned char enc[64];
	int elen = EVP_EncodeBlock(enc, mac, (int)maclen);
	return xasprintf("v1,%.*s", elen, (const char *)enc);
}

int64_t
notify_backoff_ms(int64_t backoff_ms, int attempt, uint32_t rnd)
{
	if (backoff_ms <= 0)
		backoff_ms = DEFAULT_BACKOFF_MS;
	int64_t d = backoff_ms < BACKOFF_CAP_MS ? backoff_ms : BACKOFF_CAP_MS;
	for (int i = 1; i < attempt && d < BACKOFF_CAP_MS; i++)
		d *= 2;
	if (d > BACKOFF_CAP_MS)
		d = BACKOFF_CAP_MS;
	int64_t half = d / 2;
	return half + (int64_t)((double)(d - half) * ((double)rnd / (double)UINT32_MAX));
}

bool
notify_parse_retry_after(const char *value, time_t now, int64_t *ms)
{
	if (value == NULL)
		return false;
	while (*value == ' ' || *value == '\t')
		value++;
	size_t len = strlen(value);
	while (len > 0 && isspace((unsigned char)value[len - 1]))
		len--;
	if (len == 0)
		return false;
	if (isdigit((unsigned char)value[0])) {
		int64_t secs = 0;
		for (size_t i = 0; i < len; i++) {
			if (!isdigit((unsigned char)value[i]))
				return false;
			if (secs < RETRY_AFTER_CAP_MS)
				secs = secs * 10 + (value[i] - '0');
		}
		int64_t v = secs >= RETRY_AFTER_CAP_MS / 1000 ? RETRY_AFTER_CAP_MS : secs * 1000;
		*ms = v;
		return true;
	}
	char buf[64];
	if (len >= sizeof buf)
		return false;
	memcpy(buf, value, len);
	buf[len] = '\0';
	struct tm tm = {0};
	const char *end = strptime(buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
	if (end == NULL || *end != '\0')
		return false;
	time_t t = timegm(&tm);
	if (t == (time_t)-1)
		return false;
	int64_t d = ((int64_t)t - (int64_t)now) * 1000;
	if (d < 0)
		d = 0;
	if (d > RETRY_AFTER_CAP_MS)
		d = RETRY_AFTER_CAP_MS;
	*ms = d;
	return true;
}

enum notify_outcome
notify_classify(long http_status)
{
	if (http_status >= 200 && http_status <= 299)
		return NOTIFY_SENT;
	if (http_status == 0 || http_status == 408 || http_status == 429 || (http_status >= 500 && http_status <= 599))
		return NOTIFY_RETRY;
	if (http_status == 410)
		return NOTIFY_GONE;
	/* Other 4xx, and a redirect or anything else a webhook has no business answering: a wrong URL. */
	return NOTIFY_REJECTED;
}

/* ---------- rendering ---------- */

/* The dbname of the plan's target environment when it is a conninfo that names one. */
static char *
target_database(const struct plan *p)
{
	const struct plan_env *env = p && p->target ? plan_env_find(p, p->target) : NULL;
	if (env == NULL || env->kind != PLAN_ENV_CONNINFO || env->value == NULL)
		return NULL;
	char *perr = NULL;
	PQconninfoOption *opts = PQconninfoParse(env->value, &perr);
	PQfreemem(perr);
	if (opts == NULL)
		return NULL;
	char *db = NULL;
	for (PQconninfoOption *o = opts; o->keyword != NULL; o++)
		if (strcmp(o->keyword, "dbname") == 0 && o->val != NULL && o->val[0] != '\0' &&
		    strchr(o->val, '=') == NULL && strstr(o->val, "://") == NULL)
			db = xstrdup(o->val);
	PQconninfoFree(opts);
	return db;
}

/* The event's result word(s) for a person ("done", "failed", "waiting for confirmation"). */
static const char *
result_text(const char *type, const struct rb_event *ev)
{
	const json_t *data = ev ? ev->data : NULL;
	if (strcmp(type, "run_finished") == 0) {
		const char *st = jget_str(data, "state");
		return st ? st : "done";
	}
	if (strcmp(type, "rollback_done") == 0)
		return json_is_false(json_object_get(data, "ok")) ? "failed" : "done";
	static const struct { const char *type, *text; } words[] = {
		{ "run_started", "started" }, { "stage_started", "started" }, { "stage_done", "done" },
		{ "stage_failed", "failed" }, { "stage_skipped", "skipped" }, { "stage_waived", "waived" },
		{ "stage_result", "result" }, { "progress", "progress" }, { "step", "step" },
		{ "confirm_needed", "waiting for confirmation" }, { "confirm_ok", "confirmed" },
		{ "confirm_miss", "confirmation refused" }, { "checklist_tick", "checklist ticked" },
		{ "over_budget", "over budget" }, { "rollback_started", "started" }, { "test", "test notification" },
	};
	for (size_t i = 0; i < RB_ARRAY_LEN(words); i++)
		if (strcmp(words[i].type, type) == 0)
			return words[i].text;
	if (strcmp(type, "log") == 0 && ev)
		return events_level_name(ev->level);
	return type;
}

/* What the event is about: its stage, "rollback", or "run". */
static const char *
subject_text(const char *type, const struct rb_event *ev)
{
	if (ev && ev->stage)
		return ev->stage;
	if (strncmp(type, "rollback_", 9) == 0)
		return "rollback";
	if (strcmp(type, "test") == 0)
		return "notify";
	return "run";
}

/* 83000 -> "1:23", 3723000 -> "1:02:03". */
static void
format_clock(int64_t ms, char *out, size_t outlen)
{
	int64_t s = ms / 1000;
	if (s >= 3600)
		snprintf(out, outlen, "%" PRId64 ":%02d:%02d", s / 3600, (int)(s / 60 % 60), (int)(s % 60));
	else
		snprintf(out, outlen, "%d:%02d", (int)(s / 60), (int)(s % 60));
}

/* Slack mrkdwn escapes &, < and >. */
static void
slack_escape(struct strbuf *sb, const char *s)
{
	for (; *s; s++) {
		if (*s == '&')
			strbuf_adds(sb, "&amp;");
		else if (*s == '<')
			strbuf_adds(sb, "&lt;");
		else if (*s == '>')
			strbuf_adds(sb, "&gt;");
		else if (*s == '\n' || *s == '\r')
			strbuf_addc(sb, ' ');
		else
			strbuf_addc(sb, *s);
	}
}

static bool
wants_message(const char *type, const struct rb_event *ev)
{
	if (ev == NULL || ev->message == NULL || ev->message[0] == '\0')
		return false;
	return strcmp(type, "stage_failed") == 0 || strcmp(type, "confirm_needed") == 0 ||
	       strcmp(type, "over_budget") == 0 || strcmp(type, "rollback_done") == 0 ||
	       strcmp(type, "log") == 0 || strcmp(type, "stage_result") == 0 || strcmp(type, "step") == 0;
}

/* "pgrunbook shop release: migrate done in 1:23 (prod, by alice)[: message]", escaped for Slack. */
static char *
one_line(const struct plan *p, const char *type, const char *who, const struct rb_event *ev, int64_t duration_ms,
         bool escape)
{
	struct strbuf sb = {0};
	char clock[32] = "";
	if (duration_ms >= 0)
		format_clock(duration_ms, clock, sizeof clock);
	char *line = xasprintf("pgrunbook %s release: %s %s%s%s (%s, by %s)", p && p->name ? p->name : "?",
	                       subject_text(type, ev), result_text(type, ev), clock[0] ? " in " : "", clock,
	                       p && p->target ? p->target : "?", who ? who : "unknown");
	if (escape)
		slack_escape(&sb, line);
	else
		strbuf_adds(&sb, line);
	free(line);
	if (wants_message(type, ev)) {
		strbuf_adds(&sb, ": ");
		size_t mlen = strlen(ev->message);
		char *m = xstrndup(ev->message, utf8_cut(ev->message, MESSAGE_CAP));   /* copies exactly n bytes */
		if (escape)
			slack_escape(&sb, m);
		else
			strbuf_adds(&sb, m);
		if (mlen > MESSAGE_CAP)
			strbuf_adds(&sb, "...");
		free(m);
	}
	return strbuf_detach(&sb);
}

static void
slack_field(json_t *fields, const char *title, const char *value)
{
	struct strbuf sb = {0};
	strbuf_addf(&sb, "*%s*\n", title);
	slack_escape(&sb, value && value[0] ? value : "-");
	json_array_append_new(fields, json_pack("{s:s, s:o}", "type", "mrkdwn", "text", jstr_or_null(sb.buf)));
	strbuf_release(&sb);
}

static json_t *
render_slack(const struct plan *p, const char *run_id, const char *type, const char *who, const struct rb_event *ev,
             int64_t duration_ms)
{
	char *text = one_line(p, type, who, ev, duration_ms, true);
	char clock[32] = "-";
	if (duration_ms >= 0)
		format_clock(duration_ms, clock, sizeof clock);
	json_t *fields = json_array();
	slack_field(fields, "Plan", p ? p->name : NULL);
	slack_field(fields, "Environment", p ? p->target : NULL);
	slack_field(fields, "Stage", ev ? ev->stage : NULL);
	slack_field(fields, "Result", result_text(type, ev));
	slack_field(fields, "Duration", clock);
	slack_field(fields, "Who", who);
	slack_field(fields, "Run", run_id);
	json_t *blocks = json_pack("[{s:s, s:{s:s, s:o}}, {s:s, s:o}]",
	                           "type", "section", "text", "type", "mrkdwn", "text", jstr_or_null(text),
	                           "type", "section", "fields", fields);
	json_t *body = json_pack("{s:o, s:o}", "text", jstr_or_null(text), "blocks", blocks);
	free(text);
	return body;
}

static json_t *
render_generic(const struct plan *p, const char *run_id, const char *id, const char *type, const char *who,
               const struct rb_event *ev, int64_t duration_ms)
{
	char now[32];
	time_now_rfc3339(now);
	const char *db = ev ? jget_str(ev->data, "database") : NULL;
	char *tdb = db ? NULL : target_database(p);
	json_t *body = json_object();
	json_object_set_new(body, "id", jstr_or_null(id));
	json_object_set_new(body, "type", json_string(type));
	json_object_set_new(body, "timestamp", json_string(now));
	json_object_set_new(body, "run_id", jstr_or_null(run_id));
	json_object_set_new(body, "plan", jstr_or_null(p ? p->name : NULL));
	json_object_set_new(body, "environment", jstr_or_null(p ? p->target : NULL));
	json_object_set_new(body, "database", jstr_or_null(db ? db : tdb));
	json_object_set_new(body, "stage", jstr_or_null(ev ? ev->stage : NULL));
	json_object_set_new(body, "message", jstr_or_null(ev ? ev->message : NULL));
	json_object_set_new(body, "level", json_string(events_level_name(ev ? ev->level : LOG_LEVEL_INFO)));
	json_object_set_new(body, "who", jstr_or_null(who));
	json_object_set_new(body, "duration_ms", duration_ms >= 0 ? json_integer(duration_ms) : json_null());
	json_object_set_new(body, "data", ev && ev->data ? json_deep_copy(ev->data) : json_null());
	free(tdb);
	return body;
}

/* PagerDuty: "trigger" with a severity, "resolve", or NULL for an event it is not sent. */
static const char *
pagerduty_action(const char *type, const struct rb_event *ev, const char **severity)
{
	*severity = NULL;
	if (strcmp(type, "stage_failed") == 0) {
		*severity = "error";
		return "trigger";
	}
	if (strcmp(type, "confirm_needed") == 0) {
		*severity = "warning";
		return "trigger";
	}
	if (strcmp(type, "rollback_done") == 0) {
		if (ev && json_is_false(json_object_get(ev->data, "ok"))) {
			*severity = "error";
			return "trigger";
		}
		return "resolve";
	}
	if (strcmp(type, "run_finished") == 0) {
		const char *st = ev ? jget_str(ev->data, "state") : NULL;
		return st && strcmp(st, "done") == 0 ? "resolve" : NULL;
	}
	if (strcmp(type, "test") == 0) {
		*severity = "info";
		return "trigger";
	}
	return NULL;
}

static json_t *
render_pagerduty(const struct plan *p, const char *run_id, const char *dedup, const char *type, const char *who,
                 const struct rb_event *ev, int64_t duration_ms)
{
	const char *severity;
	const char *action = pagerduty_action(type, ev, &severity);
	if (action == NULL)
		return NULL;
	char *key = dedup ? xstrdup(dedup) : xasprintf("pgrunbook-%s", run_id ? run_id : "");
	json_t *body = json_pack("{s:s, s:o, s:s}", "event_action", action, "dedup_key", jstr_or_null(key),
	                         "client", "pgrunbook");
	free(key);
	if (strcmp(action, "trigger") == 0) {
		char *summary = one_line(p, type, who, ev, duration_ms, false);
		summary[utf8_cut(summary, 1000)] = '\0';   /* PagerDuty takes 1024 */
		const char *db = ev ? jget_str(ev->data, "database") : NULL;
		char *tdb = db ? NULL : target_database(p);
		char *source = xasprintf("pgrunbook %s (%s)", p && p->name ? p->name : "?",
		                         p && p->target ? p->target : "?");
		json_t *details = json_object();
		json_object_set_new(details, "run_id", jstr_or_null(run_id));
		json_object_set_new(details, "plan", jstr_or_null(p ? p->name : NULL));
		json_object_set_new(details, "environment", jstr_or_null(p ? p->target : NULL));
		json_object_set_new(details, "database", jstr_or_null(db ? db : tdb));
		json_object_set_new(details, "stage", jstr_or_null(ev ? ev->stage : NULL));
		json_object_set_new(details, "message", jstr_or_null(ev ? ev->message : NULL));
		json_object_set_new(details, "who", jstr_or_null(who));
		json_object_set_new(details, "data", ev && ev->data ? json_deep_copy(ev->data) : json_null());
		json_t *payload = json_pack("{s:o, s:o, s:s, s:o, s:o, s:s, s:o}", "summary", jstr_or_null(summary),
		                            "source", jstr_or_null(source), "severity", severity,
		                            "component", jstr_or_null(ev && ev->stage ? ev->stage : NULL),
		                            "group", jstr_or_null(p ? p->target : NULL), "class", type,
		                            "custom_details", details);
		json_object_set_new(body, "payload", payload);
		free(summary);
		free(source);
		free(tdb);
	}
	return body;
}

static json_t *
render_type(const struct plan *p, const struct plan_notify *e, const char *run_id, const char *id, const char *type,
            const char *who, const struct rb_event *ev, int64_t duration_ms, const char *dedup)
{
	switch (e->format) {
	case PLAN_NOTIFY_SLACK:
		return render_slack(p, run_id, type, who, ev, duration_ms);
	case PLAN_NOTIFY_GENERIC:
		return render_generic(p, run_id, id, type, who, ev, duration_ms);
	case PLAN_NOTIFY_PAGERDUTY:
		return render_pagerduty(p, run_id, dedup, type, who, ev, duration_ms);
	}
	return NULL;
}

json_t *
notify_render(const struct plan *p, const struct plan_notify *e, const char *run_id, const char *id,
              const char *who, const struct rb_event *ev, int64_t duration_ms)
{
	return render_type(p, e, run_id, id, events_type_name(ev->type), who, ev, duration_ms, NULL);
}

/* ---------- HTTP ---------- */

struct http_ctx {
	char               retry_after[64];
	_Atomic long long *abort_at;
};

static size_t
discard_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	(void)ptr;
	(void)userdata;
	return size * nmemb;
}

static size_t
read_header(char *buf, size_t size, size_t nitems, void *userdata)
{
	struct http_ctx *h = userdata;
	size_t n = size * nitems;
	if (n >= 5 && strncmp(buf, "HTTP/", 5) == 0) {
		h->retry_after[0] = '\0';   /* a new response (after 100 Continue): forget the last one's */
	} else if (n > 12 && strncasecmp(buf, "retry-after:", 12) == 0) {
		size_t len = n - 12;
		if (len >= sizeof h->retry_after)
			len = sizeof h->retry_after - 1;
		memcpy(h->retry_after, buf + 12, len);
		h->retry_after[len] = '\0';
		char *cr = strpbrk(h->retry_after, "\r\n");
		if (cr)
			*cr = '\0';
	}
	return n;
}

static int
check_abort(void *userdata, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
	(void)dltotal;
	(void)dlnow;
	(void)ultotal;
	(void)ulnow;
	struct http_ctx *h = userdata;
	long long at = h->abort_at ? atomic_load(h->abort_at) : 0;
	return at > 0 && time_now_ms() >= at ? 1 : 0;
}

/* One POST; fills a (status, error, Retry-After). */
static void
http_post(const char *url, const char *body, struct curl_slist *headers, int64_t timeout_ms, int64_t connect_ms,
          _Atomic long long *abort_at, struct attempt *a)
{
	struct http_ctx h = { .abort_at = abort_at };
	CURL *c = curl_easy_init();
	if (c == NULL) {
		a->error = xstrdup("could not initialise libcurl");
		return;
	}
	char ua[64];
	snprintf(ua, sizeof ua, "pgrunbook/%s", PACKAGE_VERSION);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_URL, url);
#if LIBCURL_VERSION_NUM >= 0x075500
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#else
	curl_easy_setopt(c, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
	curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c, CURLOPT_POST, 1L);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(c, CURLOPT_USERAGENT, ua);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)(connect_ms > 0 ? connect_ms : DEFAULT_CONNECT_MS));
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)(timeout_ms > 0 ? timeout_ms : DEFAULT_TIMEOUT_MS));
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard_body);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, read_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, &h);
	curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, check_abort);
	curl_easy_setopt(c, CURLOPT_XFERINFODATA, &h);
	curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
	CURLcode rc = curl_easy_perform(c);
	long status = 0;
	if (rc == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(c);
	if (rc != CURLE_OK || status == 0) {
		a->status = 0;
		if (rc == CURLE_ABORTED_BY_CALLBACK)
			a->error = xstrdup("cut short at exit");
		else
			a->error = xstrdup(rc != CURLE_OK ? curl_easy_strerror(rc) : "no HTTP status");
		a->permanent = rc == CURLE_URL_MALFORMAT || rc == CURLE_UNSUPPORTED_PROTOCOL;
		return;
	}
	a->status = status;
	if ((status == 429 || status == 503) && h.retry_after[0] != '\0')
		a->has_retry_after = notify_parse_retry_after(h.retry_after, time(NULL), &a->retry_after_ms);
}

/*
 * One attempt of a stored body: reads the URL (and secret, routing key) from the environment now.
 * body is the stored payload text; for pagerduty the routing key is added here.
 */
static void
deliver(const char *url_env, const char *secret_env, const char *events_url_env, enum plan_notify_format format,
        const char *id, const char *body, int64_t timeout_ms, int64_t connect_ms, _Atomic long long *abort_at,
        struct attempt *a)
{
	memset(a, 0, sizeof(*a));
	const char *v = env_value(url_env);
	if (v == NULL) {
		a->not_sent = true;
		a->error = xasprintf("%s is not set", url_env ? url_env : "the URL variable");
		return;
	}
	char *url = NULL, *send = NULL, *sig = NULL;
	struct curl_slist *hdr = NULL;
	hdr = curl_slist_append(hdr, "Content-Type: application/json");
	hdr = curl_slist_append(hdr, "Expect:");
	if (format == PLAN_NOTIFY_PAGERDUTY) {
		if (events_url_env != NULL) {
			const char *u = env_value(events_url_env);
			if (u == NULL) {
				a->not_sent = true;
				a->error = xasprintf("%s is not set", events_url_env);
				goto out;
			}
			url = xstrdup(u);
		} else {
			url = xstrdup(PAGERDUTY_URL);
		}
		json_t *b = json_loads(body, 0, NULL);
		if (!json_is_object(b)) {
			json_decref(b);
			a->not_sent = true;
			a->error = xstrdup("the stored message body is not a JSON object");
			goto out;
		}
		json_object_set_new(b, "routing_key", json_string(v));
		send = json_dumps(b, JSON_COMPACT);
		json_t *rk = json_object_get(b, "routing_key");
		if (json_is_string(rk))
			explicit_bzero((char *)json_string_value(rk), json_string_length(rk));
		json_decref(b);
		if (send == NULL) {
			a->not_sent = true;
			a->error = xstrdup("the routing key is not valid UTF-8");
			goto out;
		}
	} else {
		url = xstrdup(v);
		send = xstrdup(body);
	}
	if (format == PLAN_NOTIFY_GENERIC) {
		long long ts = (long long)time(NULL);
		char *h = xasprintf("webhook-id: %s", id);
		hdr = curl_slist_append(hdr, h);
		free(h);
		h = xasprintf("webhook-timestamp: %lld", ts);
		hdr = curl_slist_append(hdr, h);
		free(h);
		if (secret_env != NULL) {
			const char *secret = env_value(secret_env);
			if (secret == NULL) {
				a->not_sent = true;
				a->error = xasprintf("%s is not set", secret_env);
				goto out;
			}
			sig = notify_sign(secret, id, ts, send);
			if (sig == NULL) {
				a->not_sent = true;
				a->error = xasprintf("%s is not a Standard Webhooks secret (whsec_<base64>)", secret_env);
				goto out;
			}
			h = xasprintf("webhook-signature: %s", sig);
			hdr = curl_slist_append(hdr, h);
			free(h);
		}
	}
	http_post(url, send, hdr, timeout_ms, connect_ms, abort_at, a);
out:
	curl_slist_free_all(hdr);
	free_secret(url);
	free_secret(send);
	free(sig);
}

/* ---------- the outbox ---------- */

static void
endpoint_free(struct nendpoint *e)
{
	free(e->url_env);
	free(e->secret_env);
	free(e->events_url_env);
	strlist_free(&e->events);
	free(e->state);
	free(e->last_error);
}

static void
msg_free(struct nmsg *m)
{
	if (m == NULL)
		return;
	free(m->name);
	json_decref(m->doc);
	free(m);
}

static void
outbox_close(struct outbox *ob)
{
	for (size_t i = 0; i < ob->neps; i++)
		endpoint_free(&ob->eps[i]);
	free(ob->eps);
	for (size_t i = 0; i < ob->nmsgs; i++)
		msg_free(ob->msgs[i]);
	free(ob->msgs);
	if (ob->lock_fd >= 0)
		close(ob->lock_fd);   /* releases the flock */
	free(ob->run_dir);
	free(ob->dir);
	free(ob->run_id);
	free(ob->write_error);
	memset(ob, 0, sizeof(*ob));
	ob->lock_fd = -1;
}

static void
outbox_write_failed(struct outbox *ob, char *why)
{
	ob->write_errors++;
	if (ob->write_error == NULL)
		ob->write_error = why;
	else
		free(why);
}

/* Locks <run_dir>/outbox (creating it when create). */
static bool
outbox_open(struct outbox *ob, const char *run_dir, bool create, struct rb_error *err)
{
	memset(ob, 0, sizeof(*ob));
	ob->lock_fd = -1;
	ob->run_dir = xstrdup(run_dir);
	ob->dir = xasprintf("%s/" OUTBOX_DIR, run_dir);
	struct stat st;
	if (stat(ob->dir, &st) != 0) {
		if (!create || errno != ENOENT) {
			if (errno == ENOENT)
				rb_error_set(err, "run %s has no outbox", run_dir);
			else
				rb_error_set(err, "could not open %s: %s", ob->dir, strerror(errno));
			return false;
		}
		if (mkdir(ob->dir, 0700) != 0 && errno != EEXIST) {
			rb_error_set(err, "could not create %s: %s", ob->dir, strerror(errno));
			return false;
		}
		util_fsync_dir(run_dir);
	} else if (!S_ISDIR(st.st_mode)) {
		rb_error_set(err, "%s is not a directory", ob->dir);
		return false;
	}
	char *lock = xasprintf("%s/" LOCK_FILE, ob->dir);
	int fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		rb_error_set(err, "could not open %s: %s", lock, strerror(errno));
		free(lock);
		return false;
	}
	int rc;
	while ((rc = flock(fd, LOCK_EX | LOCK_NB)) != 0 && errno == EINTR)
		;
	if (rc != 0) {
		int e = errno;
		char buf[32] = "";
		ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
		long pid = n > 0 ? strtol(buf, NULL, 10) : 0;
		close(fd);
		free(lock);
		if (e == EWOULDBLOCK) {
			if (pid > 0)
				rb_error_set(err, "the outbox of run %s is being delivered by another process (pid %ld)", run_dir,
				             pid);
			else
				rb_error_set(err, "the outbox of run %s is being delivered by another process", run_dir);
			rb_error_hint(err, "Wait for it to finish, or stop it, and try again.");
		} else {
			rb_error_set(err, "could not lock %s: %s", ob->dir, strerror(e));
		}
		return false;
	}
	char pid[32];
	int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)n, 0) != n) {
		/* Only names the holder in another process's error message. */
	}
	free(lock);
	ob->lock_fd = fd;
	return true;
}

static int
msg_cmp(const void *a, const void *b)
{
	const struct nmsg *x = *(struct nmsg *const *)a, *y = *(struct nmsg *const *)b;
	if (x->seq != y->seq)
		return x->seq < y->seq ? -1 : 1;
	return x->endpoint < y->endpoint ? -1 : x->endpoint > y->endpoint;
}

static void
outbox_add(struct outbox *ob, struct nmsg *m)
{
	if (ob->nmsgs == ob->msgcap) {
		ob->msgcap = ob->msgcap ? ob->msgcap * 2 : 16;
		ob->msgs = xrealloc(ob->msgs, ob->msgcap * sizeof(*ob->msgs));
	}
	ob->msgs[ob->nmsgs++] = m;
	if (m->seq > ob->seq)
		ob->seq = m->seq;
}

static bool
state_from_name(const char *s, enum msg_state *out)
{
	for (size_t i = 0; s && i < RB_ARRAY_LEN(msg_state_names); i++)
		if (strcmp(s, msg_state_names[i]) == 0) {
			*out = (enum msg_state)i;
			return true;
		}
	return false;
}

/* Reads every message file; removes temporary files a crash left. Problems go to warnings (may be NULL). */
static void
outbox_load(struct outbox *ob, struct strlist *warnings)
{
	DIR *d = opendir(ob->dir);
	if (d == NULL)
		return;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		const char *nm = de->d_name;
		size_t len = strlen(nm);
		if (strstr(nm, ".json.tmp.") != NULL) {
			/* a write that died before its rename (util_write_file_atomic()) */
			char *p = xasprintf("%s/%s", ob->dir, nm);
			unlink(p);
			free(p);
			continue;
		}
		if (nm[0] == '.')
			continue;
		unsigned long seq;
		size_t ep;
		int consumed = 0;
		if (len < 15 || sscanf(nm, "%8lu-%zu.json%n", &seq, &ep, &consumed) != 2 || (size_t)consumed != len ||
		    nm[8] != '-')
			continue;
		char *path = xasprintf("%s/%s", ob->dir, nm);
		json_error_t jerr;
		json_t *doc = json_load_file(path, 0, &jerr);
		free(path);
		enum msg_state st;
		long long next = 0;
		const char *na = doc ? jget_str(doc, "next_attempt") : NULL;
		if (!json_is_object(doc) || !state_from_name(jget_str(doc, "state"), &st) ||
		    !json_is_object(json_object_get(doc, "body")) || jget_str(doc, "id") == NULL ||
		    (na != NULL && !time_parse_rfc3339(na, &next))) {
			if (warnings)
				strlist_push_owned(warnings, xasprintf("outbox: %s/%s is not a message file; ignored", ob->dir, nm));
			json_decref(doc);
			continue;
		}
		struct nmsg *m = xcalloc(1, sizeof(*m));
		m->seq = seq;
		m->endpoint = ep;
		m->name = xstrdup(nm);
		m->doc = doc;
		m->state = st;
		m->attempts = (int)json_integer_value(json_object_get(doc, "attempts"));
		m->next_ms = next;
		outbox_add(ob, m);
	}
	closedir(d);
	if (ob->nmsgs > 1)
		qsort(ob->msgs, ob->nmsgs, sizeof(*ob->msgs), msg_cmp);
}

static void
msg_write(struct outbox *ob, struct nmsg *m)
{
	char *text = json_dumps(m->doc, JSON_INDENT(2));
	if (text == NULL) {
		outbox_write_failed(ob, xasprintf("could not encode %s/%s", ob->dir, m->name));
		return;
	}
	char *with_nl = xasprintf("%s\n", text);
	free(text);
	char *why = NULL;
	char *path = xasprintf("%s/%s", ob->dir, m->name);
	if (!util_write_file_atomic(path, with_nl, strlen(with_nl), &why))
		outbox_write_failed(ob, why);
	free(path);
	free(with_nl);
}

static void
endpoints_write(struct outbox *ob)
{
	json_t *arr = json_array();
	for (size_t i = 0; i < ob->neps; i++) {
		const struct nendpoint *e = &ob->eps[i];
		json_array_append_new(arr, json_pack("{s:I, s:s, s:o, s:o, s:s, s:I, s:I, s:i, s:I, s:s, s:o, s:o}",
		                                     "index", (json_int_t)e->index, "url_env", e->url_env,
		                                     "secret_env", jstr_or_null(e->secret_env),
		                                     "events_url_env", jstr_or_null(e->events_url_env),
		                                     "format", format_name(e->format),
		                                     "timeout_ms", (json_int_t)e->timeout_ms,
		                                     "connect_timeout_ms", (json_int_t)e->connect_timeout_ms,
		                                     "max_attempts", e->max_attempts,
		                                     "backoff_ms", (json_int_t)e->backoff_ms, "state", e->state,
		                                     "last_status", e->last_status ? json_integer(e->last_status) : json_null(),
		                                     "last_error", jstr_or_null(e->last_error)));
	}
	json_t *doc = json_pack("{s:o, s:o}", "run_id", jstr_or_null(ob->run_id), "endpoints", arr);
	char *text = json_dumps(doc, JSON_INDENT(2));
	json_decref(doc);
	char *with_nl = xasprintf("%s\n", text ? text : "{}");
	free(text);
	char *why = NULL;
	char *path = xasprintf("%s/%s", ob->dir, ENDPOINTS_FILE);
	if (!util_write_file_atomic(path, with_nl, strlen(with_nl), &why))
		outbox_write_failed(ob, why);
	free(path);
	free(with_nl);
}

static struct nendpoint *
outbox_endpoint(struct outbox *ob, size_t index)
{
	for (size_t i = 0; i < ob->neps; i++)
		if (ob->eps[i].index == index)
			return &ob->eps[i];
	return NULL;
}

static void
endpoint_set(struct nendpoint *e, const char *state, long status, const char *error)
{
	free(e->state);
	e->state = xstrdup(state);
	e->last_status = status;
	free(e->last_error);
	e->last_error = error ? xstrdup(error) : NULL;
}

static void
msg_set_outcome(struct nmsg *m, enum msg_state st, long status, const char *error, long long next_ms)
{
	m->state = st;
	m->next_ms = st == MSG_PENDING ? next_ms : 0;
	json_object_set_new(m->doc, "state", json_string(msg_state_names[st]));
	json_object_set_new(m->doc, "attempts", json_integer(m->attempts));
	char ts[32];
	if (st == MSG_PENDING && next_ms > 0) {
		rfc3339_of_ms(next_ms, ts);
		json_object_set_new(m->doc, "next_attempt", json_string(ts));
	} else {
		json_object_set_new(m->doc, "next_attempt", json_null());
	}
	json_object_set_new(m->doc, "last_status", status ? json_integer(status) : json_null());
	json_object_set_new(m->doc, "last_error", jstr_or_null(error));
	if (st == MSG_SENT) {
		rfc3339_of_ms(time_now_ms(), ts);
		json_object_set_new(m->doc, "sent_at", json_string(ts));
	}
}

/* Fails m without a request (its endpoint is gone, unknown, or the message is not deliverable). */
static void
msg_fail_now(struct outbox *ob, struct nmsg *m, const char *why)
{
	msg_set_outcome(m, MSG_FAILED, 0, why, 0);
	msg_write(ob, m);
}

/*
 * The next message to attempt: per endpoint the first pending one in seq order; of those, the one
 * due first. Messages that cannot be sent (endpoint gone or unknown) are failed here. Returns the
 * due message (next_ms <= now) or NULL, with *next the earliest time something falls due (0: none).
 */
static struct nmsg *
outbox_pick(struct outbox *ob, long long now, long long *next)
{
	*next = 0;
	struct nmsg *due = NULL;
	bool changed = true;
	while (changed) {
		changed = false;
		for (size_t i = 0; i < ob->nmsgs; i++) {
			struct nmsg *m = ob->msgs[i];
			if (m->state != MSG_PENDING)
				continue;
			struct nendpoint *e = outbox_endpoint(ob, m->endpoint);
			const char *murl = jget_str(m->doc, "url_env"), *mfmt = jget_str(m->doc, "format");
			if (e == NULL || (murl && strcmp(murl, e->url_env) != 0) ||
			    (mfmt && strcmp(mfmt, format_name(e->format)) != 0)) {
				char *why = xasprintf("notify[%zu] is no longer configured as when the message was written",
				                      m->endpoint);
				msg_fail_now(ob, m, why);
				free(why);
				changed = true;
			} else if (strcmp(e->state, "gone") == 0) {
				char *why = xasprintf("notify[%zu] (%s) is gone (HTTP 410)", e->index, e->url_env);
				msg_fail_now(ob, m, why);
				free(why);
				changed = true;
			}
		}
	}
	bool *seen = xcalloc(ob->neps + 1, sizeof(*seen));   /* an endpoint's first pending message was met */
	for (size_t i = 0; i < ob->nmsgs; i++) {
		struct nmsg *m = ob->msgs[i];
		if (m->state != MSG_PENDING)
			continue;
		size_t k = (size_t)(outbox_endpoint(ob, m->endpoint) - ob->eps);
		if (seen[k])
			continue;
		seen[k] = true;
		long long at = m->next_ms > 0 ? m->next_ms : now;
		if (at <= now) {
			if (due == NULL || at < (due->next_ms > 0 ? due->next_ms : now))
				due = m;
		} else if (*next == 0 || at < *next) {
			*next = at;
		}
	}
	free(seen);
	if (due != NULL)
		*next = now;
	return due;
}

static void
job_fill(struct outbox *ob, struct nmsg *m, struct job *j)
{
	memset(j, 0, sizeof(*j));
	const struct nendpoint *e = outbox_endpoint(ob, m->endpoint);
	j->msg = m;
	j->id = xstrdup(jget_str(m->doc, "id"));
	j->body = json_dumps(json_object_get(m->doc, "body"), JSON_COMPACT);
	j->url_env = xstrdup(e->url_env);
	j->secret_env = e->secret_env ? xstrdup(e->secret_env) : NULL;
	j->events_url_env = e->events_url_env ? xstrdup(e->events_url_env) : NULL;
	j->format = e->format;
	j->timeout_ms = e->timeout_ms;
	j->connect_timeout_ms = e->connect_timeout_ms;
}

static void
job_release(struct job *j)
{
	free(j->id);
	free(j->body);
	free(j->url_env);
	free(j->secret_env);
	free(j->events_url_env);
}

/* Applies an attempt's outcome to the message and its endpoint, and writes them. */
static void
outbox_apply(struct outbox *ob, struct nmsg *m, const struct attempt *a)
{
	struct nendpoint *e = outbox_endpoint(ob, m->endpoint);
	if (e == NULL)
		return;
	char *old_state = xstrdup(e->state);
	long old_status = e->last_status;
	char *old_error = e->last_error ? xstrdup(e->last_error) : NULL;
	if (a->not_sent) {
		msg_set_outcome(m, MSG_FAILED, 0, a->error, 0);
		if (strcmp(e->state, "gone") != 0)
			endpoint_set(e, "failing", 0, a->error);
	} else {
		m->attempts++;
		enum notify_outcome o = notify_classify(a->status);
		if (a->status == 0 && a->permanent)
			o = NOTIFY_REJECTED;
		const char *error = a->status ? NULL : a->error;
		switch (o) {
		case NOTIFY_SENT:
			msg_set_outcome(m, MSG_SENT, a->status, NULL, 0);
			endpoint_set(e, "ok", a->status, NULL);
			break;
		case NOTIFY_RETRY:
			if (m->attempts >= m->limit) {
				msg_set_outcome(m, MSG_FAILED, a->status, error, 0);
			} else {
				int64_t delay = a->has_retry_after ? a->retry_after_ms
				                                   : notify_backoff_ms(e->backoff_ms, m->attempts, random_u32());
				msg_set_outcome(m, MSG_PENDING, a->status, error, time_now_ms() + delay);
			}
			endpoint_set(e, "failing", a->status, error);
			break;
		case NOTIFY_REJECTED:
			msg_set_outcome(m, MSG_FAILED, a->status, error, 0);
			endpoint_set(e, "rejected", a->status, error);
			break;
		case NOTIFY_GONE:
			msg_set_outcome(m, MSG_FAILED, a->status, error, 0);
			endpoint_set(e, "gone", a->status, error);
			break;
		}
	}
	msg_write(ob, m);
	bool same = strcmp(old_state, e->state) == 0 && old_status == e->last_status &&
	            ((old_error == NULL && e->last_error == NULL) ||
	             (old_error && e->last_error && strcmp(old_error, e->last_error) == 0));
	if (!same)
		endpoints_write(ob);
	free(old_state);
	free(old_error);
}

static void
outbox_counts(const struct outbox *ob, struct notify_counts *out)
{
	memset(out, 0, sizeof(*out));
	for (size_t i = 0; i < ob->nmsgs; i++) {
		switch (ob->msgs[i]->state) {
		case MSG_PENDING: out->pending++; break;
		case MSG_SENT: out->sent++; break;
		case MSG_FAILED: out->failed++; break;
		}
	}
	out->endpoints = (unsigned)ob->neps;
	for (size_t i = 0; i < ob->neps; i++)
		if (strcmp(ob->eps[i].state, "ok") != 0)
			out->failing_endpoints++;
}

static char *
outbox_status_line(const struct outbox *ob)
{
	struct notify_counts c;
	outbox_counts(ob, &c);
	struct strbuf sb = {0};
	strbuf_addf(&sb, "notify: %u sent, %u pending", c.sent, c.pending);
	if (c.failed)
		strbuf_addf(&sb, ", %u failed", c.failed);
	if (ob->write_errors)
		strbuf_addf(&sb, "; %u outbox write error%s: %s", ob->write_errors, ob->write_errors == 1 ? "" : "s",
		            ob->write_error ? ob->write_error : "");
	const struct nendpoint *first = NULL;
	unsigned more = 0;
	for (size_t i = 0; i < ob->neps; i++) {
		if (strcmp(ob->eps[i].state, "ok") == 0)
			continue;
		if (first == NULL)
			first = &ob->eps[i];
		else
			more++;
	}
	if (first) {
		strbuf_addf(&sb, "; notify[%zu] (%s) %s", first->index, first->url_env, first->state);
		if (first->last_status)
			strbuf_addf(&sb, ": HTTP %ld", first->last_status);
		else if (first->last_error)
			strbuf_addf(&sb, ": %s", first->last_error);
		if (more)
			strbuf_addf(&sb, " +%u more", more);
	}
	return strbuf_detach(&sb);
}

/* ---------- the notifier ---------- */

static void
endpoint_from_plan(struct nendpoint *e, size_t i, const struct plan_notify *pn)
{
	memset(e, 0, sizeof(*e));
	e->index = i;
	e->url_env = xstrdup(pn->url_env ? pn->url_env : "");
	e->secret_env = pn->secret_env ? xstrdup(pn->secret_env) : NULL;
	e->events_url_env = pn->events_url_env ? xstrdup(pn->events_url_env) : NULL;
	e->format = pn->format;
	e->timeout_ms = pn->timeout_ms > 0 ? pn->timeout_ms : DEFAULT_TIMEOUT_MS;
	e->connect_timeout_ms = pn->connect_timeout_ms > 0 ? pn->connect_timeout_ms : DEFAULT_CONNECT_MS;
	e->backoff_ms = pn->backoff_ms > 0 ? pn->backoff_ms : DEFAULT_BACKOFF_MS;
	e->max_attempts = pn->max_attempts > 0 ? pn->max_attempts : DEFAULT_ATTEMPTS;
	if (pn->events.len > 0) {
		for (size_t k = 0; k < pn->events.len; k++)
			strlist_push(&e->events, pn->events.items[k]);
	} else {
		char *all = xstrdup(NOTIFY_DEFAULT_EVENTS), *save = NULL;
		for (char *t = strtok_r(all, " ", &save); t; t = strtok_r(NULL, " ", &save))
			strlist_push(&e->events, t);
		free(all);
	}
	e->state = xstrdup("ok");
}

/* Checks the endpoint's variables now; a problem flags it and goes to warnings. */
static void
endpoint_check_env(struct nendpoint *e, struct strlist *warnings)
{
	char *problem = NULL;
	if (env_value(e->url_env) == NULL)
		problem = xasprintf("%s is not set", e->url_env);
	else if (e->events_url_env && env_value(e->events_url_env) == NULL)
		problem = xasprintf("%s is not set", e->events_url_env);
	else if (e->secret_env && env_value(e->secret_env) == NULL)
		problem = xasprintf("%s is not set", e->secret_env);
	else if (e->secret_env) {
		char *sig = notify_sign(env_value(e->secret_env), "check", 0, "");
		if (sig == NULL)
			problem = xasprintf("%s is not a Standard Webhooks secret (whsec_<base64>)", e->secret_env);
		free(sig);
	}
	if (problem == NULL)
		return;
	if (warnings)
		strlist_push_owned(warnings, xasprintf("notify[%zu] (%s): %s; its notifications will not be sent",
		                                       e->index, e->url_env, problem));
	endpoint_set(e, "failing", 0, problem);
	free(problem);
}

static void
block_signals(sigset_t *old)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGPIPE);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, old);
}

static void
wait_until(struct notifier *n, long long wall_ms)
{
	long long delay = wall_ms - time_now_ms();
	if (delay <= 0)
		return;
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	long long ns = (long long)ts.tv_nsec + (delay % 1000) * 1000000LL;
	ts.tv_sec += (time_t)(delay / 1000 + ns / 1000000000LL);
	ts.tv_nsec = (long)(ns % 1000000000LL);
	pthread_cond_timedwait(&n->cond, &n->mu, &ts);
}

static void *
sender_main(void *arg)
{
	struct notifier *n = arg;
	block_signals(NULL);
	pthread_mutex_lock(&n->mu);
	for (;;) {
		long long now = time_now_ms(), next = 0;
		struct nmsg *m = outbox_pick(&n->ob, now, &next);
		if (n->stopping && (now >= n->deadline || (m == NULL && (next == 0 || next > n->deadline))))
			break;
		if (m == NULL) {
			if (n->stopping)
				wait_until(n, next < n->deadline ? next : n->deadline);
			else if (next > 0)
				wait_until(n, next);
			else
				pthread_cond_wait(&n->cond, &n->mu);
			continue;
		}
		struct job j;
		job_fill(&n->ob, m, &j);
		pthread_mutex_unlock(&n->mu);
		struct attempt a;
		deliver(j.url_env, j.secret_env, j.events_url_env, j.format, j.id, j.body ? j.body : "{}", j.timeout_ms,
		        j.connect_timeout_ms, &n->abort_at, &a);
		pthread_mutex_lock(&n->mu);
		outbox_apply(&n->ob, j.msg, &a);
		free(a.error);
		job_release(&j);
	}
	pthread_mutex_unlock(&n->mu);
	return NULL;
}

static void
notifier_free(struct notifier *n)
{
	outbox_close(&n->ob);
	for (size_t i = 0; i < n->nstages; i++)
		free(n->stages[i].stage);
	free(n->stages);
	free(n->who);
	pthread_cond_destroy(&n->cond);
	pthread_mutex_destroy(&n->mu);
	free(n);
}

struct notifier *
notifier_start(const struct plan *p, const char *run_dir, const char *run_id, const char *who,
               struct strlist *warnings, struct rb_error *err)
{
	struct notifier *n = xcalloc(1, sizeof(*n));
	pthread_mutex_init(&n->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&n->cond, &ca);
	pthread_condattr_destroy(&ca);
	n->plan = p;
	n->who = xstrdup(who ? who : "unknown");
	if (!outbox_open(&n->ob, run_dir, true, err)) {
		notifier_free(n);
		return NULL;
	}
	n->ob.run_id = xstrdup(run_id ? run_id : "");
	n->ob.neps = p->nnotify;
	n->ob.eps = xcalloc(p->nnotify ? p->nnotify : 1, sizeof(*n->ob.eps));
	for (size_t i = 0; i < p->nnotify; i++) {
		endpoint_from_plan(&n->ob.eps[i], i, &p->notify[i]);
		endpoint_check_env(&n->ob.eps[i], warnings);
	}
	outbox_load(&n->ob, warnings);
	for (size_t i = 0; i < n->ob.nmsgs; i++) {
		const struct nendpoint *e = outbox_endpoint(&n->ob, n->ob.msgs[i]->endpoint);
		n->ob.msgs[i]->limit = e ? e->max_attempts : DEFAULT_ATTEMPTS;
	}
	endpoints_write(&n->ob);
	if (n->ob.write_errors) {
		rb_error_set(err, "%s", n->ob.write_error);
		notifier_free(n);
		return NULL;
	}
	sigset_t old;
	block_signals(&old);
	int rc = pthread_create(&n->thread, NULL, sender_main, n);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		rb_error_set(err, "could not start the notification sender: %s", strerror(rc));
		notifier_free(n);
		return NULL;
	}
	n->started = true;
	return n;
}

static bool
endpoint_selects(const struct nendpoint *e, const char *type)
{
	return strlist_contains(&e->events, type);
}

/* Remembers when a stage started; returns the duration of a stage that ends now (-1 when unknown). */
static int64_t
track_stage(struct notifier *n, const struct rb_event *ev, long long now)
{
	if (ev->stage == NULL)
		return -1;
	struct stage_time *t = NULL;
	for (size_t i = 0; i < n->nstages; i++)
		if (strcmp(n->stages[i].stage, ev->stage) == 0)
			t = &n->stages[i];
	if (ev->type == EV_STAGE_STARTED) {
		if (t == NULL) {
			n->stages = xrealloc(n->stages, (n->nstages + 1) * sizeof(*n->stages));
			t = &n->stages[n->nstages++];
			t->stage = xstrdup(ev->stage);
		}
		t->ms = now;
		return -1;
	}
	if ((ev->type == EV_STAGE_DONE || ev->type == EV_STAGE_FAILED) && t != NULL)
		return now - t->ms >= 0 ? now - t->ms : 0;
	return -1;
}

void
notifier_event_fn(const struct rb_event *ev, void *userdata)
{
	struct notifier *n = userdata;
	if (n == NULL || ev == NULL)
		return;
	const char *type = events_type_name(ev->type);
	long long now = time_now_ms();
	char created[32];
	rfc3339_of_ms(now, created);
	pthread_mutex_lock(&n->mu);
	int64_t duration = track_stage(n, ev, now);
	unsigned long seq = n->ob.seq + 1;
	char *id = xasprintf("%s.%lu", n->ob.run_id, seq);
	bool any = false;
	for (size_t i = 0; i < n->ob.neps; i++) {
		struct nendpoint *e = &n->ob.eps[i];
		if (!endpoint_selects(e, type))
			continue;
		json_t *body = notify_render(n->plan, &n->plan->notify[e->index], n->ob.run_id, id, n->who, ev, duration);
		if (body == NULL)
			continue;
		any = true;
		struct nmsg *m = xcalloc(1, sizeof(*m));
		m->seq = seq;
		m->endpoint = e->index;
		m->name = xasprintf("%08lu-%zu.json", seq, e->index);
		m->state = MSG_PENDING;
		m->limit = e->max_attempts;
		m->doc = json_object();
		json_object_set_new(m->doc, "id", json_string(id));
		json_object_set_new(m->doc, "seq", json_integer((json_int_t)seq));
		json_object_set_new(m->doc, "endpoint", json_integer((json_int_t)e->index));
		json_object_set_new(m->doc, "url_env", json_string(e->url_env));
		json_object_set_new(m->doc, "format", json_string(format_name(e->format)));
		json_object_set_new(m->doc, "event", json_string(type));
		json_object_set_new(m->doc, "stage", jstr_or_null(ev->stage));
		json_object_set_new(m->doc, "created", json_string(created));
		json_object_set_new(m->doc, "state", json_string("pending"));
		json_object_set_new(m->doc, "attempts", json_integer(0));
		json_object_set_new(m->doc, "next_attempt", json_null());
		json_object_set_new(m->doc, "last_status", json_null());
		json_object_set_new(m->doc, "last_error", json_null());
		json_object_set_new(m->doc, "sent_at", json_null());
		json_object_set_new(m->doc, "body", body);
		outbox_add(&n->ob, m);
		msg_write(&n->ob, m);
	}
	free(id);
	if (any)
		pthread_cond_signal(&n->cond);
	pthread_mutex_unlock(&n->mu);
}

void
notifier_counts(struct notifier *n, struct notify_counts *out)
{
	if (n == NULL) {
		memset(out, 0, sizeof(*out));
		return;
	}
	pthread_mutex_lock(&n->mu);
	outbox_counts(&n->ob, out);
	pthread_mutex_unlock(&n->mu);
}

char *
notifier_status_line(struct notifier *n)
{
	if (n == NULL)
		return xstrdup("notify: off");
	pthread_mutex_lock(&n->mu);
	char *s = outbox_status_line(&n->ob);
	pthread_mutex_unlock(&n->mu);
	return s;
}

void
notifier_stop(struct notifier *n, int64_t drain_ms, struct notify_counts *out)
{
	if (n == NULL) {
		if (out)
			memset(out, 0, sizeof(*out));
		return;
	}
	pthread_mutex_lock(&n->mu);
	n->stopping = true;
	n->deadline = time_now_ms() + (drain_ms > 0 ? drain_ms : 0);
	atomic_store(&n->abort_at, n->deadline > 0 ? n->deadline : 1);
	pthread_cond_broadcast(&n->cond);
	pthread_mutex_unlock(&n->mu);
	if (n->started)
		pthread_join(n->thread, NULL);
	if (out)
		outbox_counts(&n->ob, out);
	notifier_free(n);
}

int64_t
notify_drain_ms(const struct plan *p)
{
	if (p == NULL || p->nnotify == 0)
		return 0;
	int64_t longest = 0;
	for (size_t i = 0; i < p->nnotify; i++) {
		int64_t t = p->notify[i].timeout_ms > 0 ? p->notify[i].timeout_ms : DEFAULT_TIMEOUT_MS;
		if (t > longest)
			longest = t;
	}
	return longest + 2000;
}

/* ---------- notify flush ---------- */

/* Reads endpoints.json into ob (the settings of the process that wrote the outbox). */
static bool
endpoints_read(struct outbox *ob, struct rb_error *err)
{
	char *path = xasprintf("%s/" ENDPOINTS_FILE, ob->dir);
	json_error_t jerr;
	json_t *doc = json_load_file(path, 0, &jerr);
	json_t *arr = json_object_get(doc, "endpoints");
	if (!json_is_array(arr)) {
		rb_error_set(err, "could not read %s: %s", path, doc ? "no \"endpoints\" array" : jerr.text);
		json_decref(doc);
		free(path);
		return false;
	}
	free(path);
	ob->run_id = xstrdup(jget_str(doc, "run_id") ? jget_str(doc, "run_id") : "");
	ob->eps = xcalloc(json_array_size(arr) + 1, sizeof(*ob->eps));
	size_t i;
	json_t *o;
	json_array_foreach(arr, i, o) {
		enum plan_notify_format f;
		const char *url_env = jget_str(o, "url_env");
		if (url_env == NULL || !format_from_name(jget_str(o, "format"), &f))
			continue;
		struct nendpoint *e = &ob->eps[ob->neps++];
		memset(e, 0, sizeof(*e));
		e->index = (size_t)json_integer_value(json_object_get(o, "index"));
		e->url_env = xstrdup(url_env);
		e->secret_env = jget_str(o, "secret_env") ? xstrdup(jget_str(o, "secret_env")) : NULL;
		e->events_url_env = jget_str(o, "events_url_env") ? xstrdup(jget_str(o, "events_url_env")) : NULL;
		e->format = f;
		e->timeout_ms = json_integer_value(json_object_get(o, "timeout_ms"));
		e->connect_timeout_ms = json_integer_value(json_object_get(o, "connect_timeout_ms"));
		e->backoff_ms = json_integer_value(json_object_get(o, "backoff_ms"));
		e->max_attempts = (int)json_integer_value(json_object_get(o, "max_attempts"));
		if (e->timeout_ms <= 0)
			e->timeout_ms = DEFAULT_TIMEOUT_MS;
		if (e->connect_timeout_ms <= 0)
			e->connect_timeout_ms = DEFAULT_CONNECT_MS;
		if (e->backoff_ms <= 0)
			e->backoff_ms = DEFAULT_BACKOFF_MS;
		if (e->max_attempts <= 0)
			e->max_attempts = DEFAULT_ATTEMPTS;
		const char *st = jget_str(o, "state");
		e->state = xstrdup(st ? st : "ok");
		e->last_status = (long)json_integer_value(json_object_get(o, "last_status"));
		e->last_error = jget_str(o, "last_error") ? xstrdup(jget_str(o, "last_error")) : NULL;
	}
	json_decref(doc);
	return true;
}

bool
notify_flush(const char *run_dir, int64_t max_wait_ms, struct notify_counts *out, struct rb_error *err)
{
	struct outbox ob;
	if (!outbox_open(&ob, run_dir, false, err)) {
		outbox_close(&ob);
		return false;
	}
	if (!endpoints_read(&ob, err)) {
		outbox_close(&ob);
		return false;
	}
	outbox_load(&ob, NULL);
	for (size_t i = 0; i < ob.nmsgs; i++) {
		struct nmsg *m = ob.msgs[i];
		const struct nendpoint *e = outbox_endpoint(&ob, m->endpoint);
		int max = e ? e->max_attempts : DEFAULT_ATTEMPTS;
		m->limit = max;
		/* What failed for want of attempts (or of a variable) gets max_attempts more, now. */
		long status = (long)json_integer_value(json_object_get(m->doc, "last_status"));
		const char *le = jget_str(m->doc, "last_error");
		if (m->state == MSG_FAILED && e != NULL && strcmp(e->state, "gone") != 0 &&
		    notify_classify(status) == NOTIFY_RETRY && !(le && strstr(le, "no longer configured"))) {
			m->limit = m->attempts + max;
			m->next_ms = 0;
			msg_set_outcome(m, MSG_PENDING, status, le, 0);
			msg_write(&ob, m);
		} else if (m->state == MSG_PENDING) {
			m->next_ms = 0;   /* a flush is asked for now */
			if (m->limit <= m->attempts)
				m->limit = m->attempts + 1;
		}
	}
	long long deadline = time_now_ms() + (max_wait_ms > 0 ? max_wait_ms : 0);
	_Atomic long long abort_at = deadline;
	for (;;) {
		long long now = time_now_ms(), next = 0;
		struct nmsg *m = outbox_pick(&ob, now, &next);
		if (m == NULL) {
			if (next == 0 || next > deadline)
				break;
			long long d = next - time_now_ms();
			if (d > 0) {
				struct timespec ts = { .tv_sec = (time_t)(d / 1000), .tv_nsec = (long)(d % 1000) * 1000000L };
				while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
					;
			}
			continue;
		}
		if (now >= deadline)
			break;
		struct job j;
		job_fill(&ob, m, &j);
		struct attempt a;
		deliver(j.url_env, j.secret_env, j.events_url_env, j.format, j.id, j.body ? j.body : "{}", j.timeout_ms,
		        j.connect_timeout_ms, &abort_at, &a);
		outbox_apply(&ob, j.msg, &a);
		free(a.error);
		job_release(&j);
	}
	endpoints_write(&ob);
	if (out)
		outbox_counts(&ob, out);
	outbox_close(&ob);
	return true;
}

/* ---------- the outbox read for others ---------- */

json_t *
notify_outbox_summary(const char *run_dir)
{
	char *dir = xasprintf("%s/" OUTBOX_DIR, run_dir);
	char *epath = xasprintf("%s/" ENDPOINTS_FILE, dir);
	json_t *doc = json_load_file(epath, 0, NULL);
	free(epath);
	DIR *d = opendir(dir);
	if (doc == NULL && d == NULL) {
		free(dir);
		return NULL;
	}
	json_t *eps = json_array();
	size_t i;
	json_t *o;
	json_array_foreach(json_object_get(doc, "endpoints"), i, o) {
		json_array_append_new(eps, json_pack("{s:O, s:O, s:O, s:O, s:O, s:O, s:i, s:i, s:i}",
		                                     "index", json_object_get(o, "index"), "url_env",
		                                     json_object_get(o, "url_env"), "format", json_object_get(o, "format"),
		                                     "state", json_object_get(o, "state"), "last_status",
		                                     json_object_get(o, "last_status"), "last_error",
		                                     json_object_get(o, "last_error"), "sent", 0, "pending", 0, "failed", 0));
	}
	json_decref(doc);
	json_int_t total[3] = {0};
	struct dirent *de;
	while (d && (de = readdir(d)) != NULL) {
		unsigned long seq;
		size_t ep;
		int used = 0;
		if (sscanf(de->d_name, "%8lu-%zu.json%n", &seq, &ep, &used) != 2 || de->d_name[used] != '\0')
			continue;
		char *path = xasprintf("%s/%s", dir, de->d_name);
		json_t *m = json_load_file(path, 0, NULL);
		free(path);
		enum msg_state st;
		if (m && state_from_name(jget_str(m, "state"), &st)) {
			total[st]++;
			json_t *e = json_array_get(eps, ep);
			if (e && (size_t)json_integer_value(json_object_get(e, "index")) == ep) {
				const char *key = msg_state_names[st];
				json_object_set_new(e, key, json_integer(json_integer_value(json_object_get(e, key)) + 1));
			}
		}
		json_decref(m);
	}
	if (d)
		closedir(d);
	free(dir);
	return json_pack("{s:o, s:I, s:I, s:I}", "endpoints", eps, "sent", total[MSG_SENT], "pending",
	                 total[MSG_PENDING], "failed", total[MSG_FAILED]);
}

/* ---------- notify test ---------- */

json_t *
notify_test(const struct plan *p, const char *who)
{
	json_t *arr = json_array();
	for (size_t i = 0; p && i < p->nnotify; i++) {
		const struct plan_notify *pn = &p->notify[i];
		struct nendpoint e;
		endpoint_from_plan(&e, i, pn);
		long long t0 = time_monotonic_ms();
		char rnd[17];
		uint32_t r1 = random_u32(), r2 = random_u32();
		snprintf(rnd, sizeof rnd, "%08x%08x", (unsigned)r1, (unsigned)r2);
		char *id = xasprintf("test-%s", rnd);
		char *dedup = xasprintf("pgrunbook-test-%s", rnd);
		struct rb_event ev = { .type = EV_LOG, .message = "a test notification from pgrunbook notify test",
		                       .level = LOG_LEVEL_INFO };
		json_t *body = render_type(p, pn, "test", id, "test", who, &ev, -1, dedup);
		char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
		json_decref(body);
		struct attempt a = {0};
		deliver(e.url_env, e.secret_env, e.events_url_env, e.format, id, text ? text : "{}", e.timeout_ms,
		        e.connect_timeout_ms, NULL, &a);
		bool ok = !a.not_sent && notify_classify(a.status) == NOTIFY_SENT;
		if (ok && pn->format == PLAN_NOTIFY_PAGERDUTY) {
			json_t *res = json_pack("{s:s, s:s, s:s}", "event_action", "resolve", "dedup_key", dedup, "client",
			                        "pgrunbook");
			char *rtext = json_dumps(res, JSON_COMPACT);
			json_decref(res);
			free(a.error);
			deliver(e.url_env, e.secret_env, e.events_url_env, e.format, id, rtext, e.timeout_ms,
			        e.connect_timeout_ms, NULL, &a);
			free(rtext);
			ok = !a.not_sent && notify_classify(a.status) == NOTIFY_SENT;
		}
		json_t *row = json_pack("{s:I, s:s, s:s, s:b, s:o, s:o, s:I}", "endpoint", (json_int_t)i, "url_env",
		                        e.url_env, "format", format_name(e.format), "ok", ok,
		                        "status", a.status ? json_integer(a.status) : json_null(),
		                        "error", ok ? json_null() : a.status ? json_sprintf("HTTP %ld", a.status)
		                                                             : jstr_or_null(a.error),
		                        "ms", (json_int_t)(time_monotonic_ms() - t0));
		json_array_append_new(arr, row);
		free(a.error);
		free(text);
		free(id);
		free(dedup);
		endpoint_free(&e);
	}
	return arr;
}
