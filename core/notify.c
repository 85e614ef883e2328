/* notify.c: webhook notifications: the outbox in the run directory and its libcurl senders (notify.h). */
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
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <libpq-fe.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "journal.h"
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
#define DRAIN_CAP_MS       10000
#define MESSAGE_CAP        300   /* bytes of an event's message in a one-line summary */
#define SLACK_TEXT_CAP     3000  /* Block Kit: a section's text */
#define SLACK_FIELD_CAP    2000  /* Block Kit: one field */
#define ELLIPSIS           "\xe2\x80\xa6"

enum msg_state { MSG_PENDING, MSG_SENT, MSG_FAILED };
static const char *const msg_state_names[] = { "pending", "sent", "failed" };

/* Why a failed message failed (its file's "failure"). */
enum msg_fail { FAIL_NONE, FAIL_ATTEMPTS, FAIL_UNSET, FAIL_REJECTED, FAIL_GONE, FAIL_UNCONFIGURED };
static const char *const msg_fail_names[] = { "none", "attempts", "unset", "rejected", "gone", "unconfigured" };

/* One delivery: the in-memory view of its file (doc is the file's content). */
struct nmsg {
	unsigned long  seq;
	size_t         endpoint;
	char          *name;      /* "<seq>-<endpoint>.json" */
	json_t        *doc;
	enum msg_state state;
	enum msg_fail  fail;      /* when failed */
	int            attempts;
	int            limit;     /* attempts allowed (max_attempts; more after notify_flush reopens it) */
	long long      next_ms;   /* wall clock of the next attempt; 0: now */
	bool           queued;    /* in its endpoint's queue (else counted apart) */
	bool           dirty;     /* waits in the writer's queue */
};

struct nendpoint {
	size_t                  index;
	char                   *url_env, *secret_env, *events_url_env;
	enum plan_notify_format format;
	int64_t                 timeout_ms, connect_timeout_ms, backoff_ms;
	int                     max_attempts;
	struct strlist          events;      /* the types it is sent */
	char                   *state;       /* "ok" | "failing" | "rejected" | "gone" | "unset" */
	long                    last_status; /* 0: none */
	char                   *last_error;
	char                   *unset_what;  /* "SLACK_URL not set" when state is "unset" */
	/* its messages in seq order; head: the first that may still be pending */
	struct nmsg           **q;
	size_t                  nq, qcap, head;
	unsigned                n[3];        /* messages by state (failed: not for a variable) */
	unsigned                n_unset;     /* failed for a variable */
};

/* One endpoint's sender thread. */
struct sender {
	struct outbox  *ob;
	size_t          k;        /* index into ob->eps */
	pthread_t       thread;
	pthread_cond_t  cond;
	bool            started;
	CURL           *curl;
};

struct stage_time {
	char     *stage;
	long long ms;
};

/*
 * The outbox of one run, opened and locked; shared by the notifier and notify_flush(). mu guards
 * the memory (messages, endpoints, counts); no file is written while it is held. While the
 * threads run, one writer thread writes every file: a message whose state changed is queued
 * (wq, once however often it changes) and written with its newest state; endpoints.json when
 * ep_version (its content's version) passes ep_written.
 */
struct outbox {
	char             *run_dir;
	char             *dir;
	char             *run_id;
	int               lock_fd;
	struct nendpoint *eps;
	size_t            neps;
	struct nmsg     **msgs;     /* every message, for freeing */
	size_t            nmsgs, msgcap;
	unsigned long     seq;      /* highest seq used */
	long long         starts;   /* notifier starts of the run, this one included */
	unsigned          write_errors;
	char             *write_error;   /* the first */
	pthread_mutex_t   mu;
	bool              mu_init;
	unsigned long     ep_version, ep_written;
	struct nmsg     **wq;            /* messages to write */
	size_t            nwq, wqcap;
	pthread_t         writer;
	pthread_cond_t    wcond;
	bool              writer_started, writer_stop;
	struct sender    *senders;
	bool              stopping;
	long long         deadline;      /* wall clock ms, when stopping */
	_Atomic long long abort_at;      /* wall clock ms after which a request in flight is cut; 0: never */
	_Atomic(atomic_int *) cancel;    /* *cancel nonzero: a drain ends now (notifier_cancel_on()) */
};

struct notifier {
	struct outbox       ob;
	const struct plan  *plan;
	char               *who;
	struct stage_time  *stages;
	size_t              nstages;
	long long           start_ms;        /* when the notifier started */
	long long           run_started_ms;  /* run_started seen: when; 0: not seen */
	long long           rollback_ms;     /* rollback_started seen: when */
	char               *rolled_back;     /* the run a rollback_started names (its incident's dedup key) */
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
	bool    not_sent;         /* no request was made */
	bool    unset;            /* ... because a variable is unset, empty or malformed */
	bool    cut;              /* cut short at the end of the drain: not counted as an attempt */
	char   *error;            /* with no status; or why a 3xx is refused */
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

/* The environment an event is about: the staging environment for the "staging" stage, else the target. */
static const char *
event_env(const struct plan *p, const struct rb_event *ev)
{
	if (p == NULL)
		return NULL;
	if (ev && ev->stage && strcmp(ev->stage, "staging") == 0 && p->staging.present && p->staging.environment)
		return p->staging.environment;
	return p->target;
}

/* The dbname of environment name when it is a conninfo that names one. */
static char *
env_database(const struct plan *p, const char *name)
{
	const struct plan_env *env = p && name ? plan_env_find(p, name) : NULL;
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

/* The event's database: the one its data names, else the dbname of its environment's conninfo. */
static char *
event_database(const struct plan *p, const struct rb_event *ev)
{
	const char *db = ev ? jget_str(ev->data, "database") : NULL;
	return db ? xstrdup(db) : env_database(p, event_env(p, ev));
}

/* A stage_failed that is not a failure: the run waits for a person (data "waiting"). */
static const char *
waiting_for(const char *type, const struct rb_event *ev)
{
	if (strcmp(type, "stage_failed") != 0 || ev == NULL)
		return NULL;
	json_t *w = json_object_get(ev->data, "waiting");
	if (w == NULL || json_is_null(w) || json_is_false(w))
		return NULL;
	return json_is_string(w) ? json_string_value(w) : "";
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
	if (waiting_for(type, ev))
		return "waiting";
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

/* What the event is about: its stage, "rollback", "notify" or "run". */
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

/* Slack mrkdwn escapes &, < and >; line breaks become spaces. */
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

/* A name in mrkdwn: escaped, and * _ ~ ` shown as their fullwidth forms so they format nothing. */
static void
slack_name(struct strbuf *sb, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '*': strbuf_adds(sb, "\xef\xbc\x8a"); break;   /* U+FF0A */
		case '_': strbuf_adds(sb, "\xef\xbc\xbf"); break;   /* U+FF3F */
		case '~': strbuf_adds(sb, "\xef\xbd\x9e"); break;   /* U+FF5E */
		case '`': strbuf_adds(sb, "\xef\xbd\x80"); break;   /* U+FF40 */
		default: {
			char one[2] = { *s, '\0' };
			slack_escape(sb, one);
		}
		}
	}
}

/* Cuts sb to at most max bytes, not inside a UTF-8 character or an &entity;, ending in "…". */
static void
cut_ellipsis(struct strbuf *sb, size_t max, bool entities)
{
	if (sb->len <= max)
		return;
	size_t keep = utf8_cut(sb->buf, max - strlen(ELLIPSIS));
	if (entities) {
		for (size_t i = keep; i > 0 && keep - i < 6; i--) {
			if (sb->buf[i - 1] == ';')
				break;
			if (sb->buf[i - 1] == '&') {
				keep = i - 1;
				break;
			}
		}
	}
	sb->buf[keep] = '\0';
	sb->len = keep;
	strbuf_adds(sb, ELLIPSIS);
}

static bool
wants_message(const char *type, const struct rb_event *ev)
{
	if (ev == NULL || ev->message == NULL || ev->message[0] == '\0')
		return false;
	return strcmp(type, "stage_failed") == 0 || strcmp(type, "confirm_needed") == 0 ||
	       strcmp(type, "over_budget") == 0 || strcmp(type, "rollback_done") == 0 ||
	       strcmp(type, "run_finished") == 0 || strcmp(type, "log") == 0 || strcmp(type, "stage_result") == 0 ||
	       strcmp(type, "step") == 0;
}

static void
add_text(struct strbuf *sb, const char *s, bool escape, bool name)
{
	if (!escape)
		strbuf_adds(sb, s);
	else if (name)
		slack_name(sb, s);
	else
		slack_escape(sb, s);
}

/*
 * "shop release: migrate done in 1.2 s (prod, by alice)[: message]", escaped for Slack mrkdwn
 * with escape; a stage waiting for a person: "sync waits for a review".
 */
static char *
one_line(const struct plan *p, const char *type, const char *who, const struct rb_event *ev, int64_t duration_ms,
         bool escape)
{
	struct strbuf sb = {0};
	add_text(&sb, p && p->name ? p->name : "?", escape, true);
	strbuf_adds(&sb, ": ");
	add_text(&sb, subject_text(type, ev), escape, true);
	const char *waiting = waiting_for(type, ev);
	if (waiting) {
		strbuf_adds(&sb, " waits");
		if (waiting[0]) {
			strbuf_adds(&sb, " for a ");
			add_text(&sb, waiting, escape, true);
		}
	} else {
		strbuf_addc(&sb, ' ');
		strbuf_adds(&sb, result_text(type, ev));
	}
	if (duration_ms >= 0) {
		char el[32];
		time_format_elapsed(duration_ms, el, sizeof el);
		strbuf_addf(&sb, " in %s", el);
	}
	strbuf_adds(&sb, " (");
	const char *env = event_env(p, ev);
	add_text(&sb, env ? env : "?", escape, true);
	strbuf_adds(&sb, ", by ");
	add_text(&sb, who ? who : "unknown", escape, true);
	strbuf_addc(&sb, ')');
	if (wants_message(type, ev)) {
		strbuf_adds(&sb, ": ");
		size_t mlen = strlen(ev->message);
		char *m = xstrndup(ev->message, utf8_cut(ev->message, MESSAGE_CAP));   /* copies exactly n bytes */
		add_text(&sb, m, escape, false);
		if (mlen > MESSAGE_CAP)
			strbuf_adds(&sb, ELLIPSIS);
		free(m);
	}
	return strbuf_detach(&sb);
}

static void
slack_field(json_t *fields, const char *title, const char *value, bool name)
{
	if (json_array_size(fields) >= 10)   /* Block Kit: at most 10 fields */
		return;
	struct strbuf sb = {0};
	strbuf_addf(&sb, "*%s*\n", title);
	if (value && value[0])
		add_text(&sb, value, true, name);
	else
		strbuf_addc(&sb, '-');
	cut_ellipsis(&sb, SLACK_FIELD_CAP, true);
	json_array_append_new(fields, json_pack("{s:s, s:o}", "type", "mrkdwn", "text", journal_json_text(sb.buf)));
	strbuf_release(&sb);
}

static json_t *
render_slack(const struct plan *p, const char *run_id, const char *type, const char *who, const struct rb_event *ev,
             int64_t duration_ms)
{
	struct strbuf text = {0};
	char *line = one_line(p, type, who, ev, duration_ms, true);
	strbuf_adds(&text, line);
	free(line);
	cut_ellipsis(&text, SLACK_TEXT_CAP, true);
	char el[32] = "-";
	if (duration_ms >= 0)
		time_format_elapsed(duration_ms, el, sizeof el);
	json_t *fields = json_array();
	slack_field(fields, "Plan", p ? p->name : NULL, true);
	slack_field(fields, "Environment", event_env(p, ev), true);
	slack_field(fields, "Stage", ev ? ev->stage : NULL, true);
	slack_field(fields, "Result", result_text(type, ev), false);
	slack_field(fields, "Duration", el, false);
	slack_field(fields, "Who", who, true);
	slack_field(fields, "Run", run_id, true);
	json_t *blocks = json_pack("[{s:s, s:{s:s, s:o}}, {s:s, s:o}]",
	                           "type", "section", "text", "type", "mrkdwn", "text", journal_json_text(text.buf),
	                           "type", "section", "fields", fields);
	json_t *body = json_pack("{s:o, s:o}", "text", journal_json_text(text.buf), "blocks", blocks);
	strbuf_release(&text);
	return body;
}

static json_t *
render_generic(const struct plan *p, const char *run_id, const char *id, const char *type, const char *who,
               const struct rb_event *ev, int64_t duration_ms)
{
	char now[32];
	time_now_rfc3339(now);
	char *db = event_database(p, ev);
	json_t *body = json_object();
	json_object_set_new(body, "id", journal_json_text(id));
	json_object_set_new(body, "type", json_string(type));
	json_object_set_new(body, "timestamp", json_string(now));
	json_object_set_new(body, "run_id", journal_json_text(run_id));
	json_object_set_new(body, "plan", journal_json_text(p ? p->name : NULL));
	json_object_set_new(body, "environment", journal_json_text(event_env(p, ev)));
	json_object_set_new(body, "database", journal_json_text(db));
	json_object_set_new(body, "stage", journal_json_text(ev ? ev->stage : NULL));
	json_object_set_new(body, "result", json_string(result_text(type, ev)));
	json_object_set_new(body, "message", journal_json_text(ev ? ev->message : NULL));
	json_object_set_new(body, "level", json_string(events_level_name(ev ? ev->level : LOG_LEVEL_INFO)));
	json_object_set_new(body, "who", journal_json_text(who));
	json_object_set_new(body, "duration_ms", duration_ms >= 0 ? json_integer(duration_ms) : json_null());
	json_object_set_new(body, "data", ev && ev->data ? json_deep_copy(ev->data) : json_null());
	free(db);
	return body;
}

/* PagerDuty: "trigger" with a severity, "resolve", or NULL for an event it is not sent. */
static const char *
pagerduty_action(const char *type, const struct rb_event *ev, const char **severity)
{
	*severity = NULL;
	if (strcmp(type, "stage_failed") == 0) {
		if (waiting_for(type, ev))
			return NULL;   /* waits for a person: the confirm_needed before it triggered */
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

/*
 * dedup: the incident's key when the caller knows it (a test's, or the rolled-back run's for a
 * rollback run's run_finished); else a rollback event's "run", else this run's.
 */
static json_t *
render_pagerduty(const struct plan *p, const char *run_id, const char *dedup, const char *type, const char *who,
                 const struct rb_event *ev, int64_t duration_ms)
{
	const char *severity;
	const char *action = pagerduty_action(type, ev, &severity);
	if (action == NULL)
		return NULL;
	const char *rolled = strncmp(type, "rollback_", 9) == 0 && ev ? jget_str(ev->data, "run") : NULL;
	char *key = dedup ? xstrdup(dedup)
	                  : xasprintf("pgrunbook-%s", rolled && rolled[0] ? rolled : run_id ? run_id : "");
	json_t *body = json_pack("{s:s, s:o, s:s}", "event_action", action, "dedup_key", journal_json_text(key),
	                         "client", "pgrunbook");
	free(key);
	if (strcmp(action, "trigger") == 0) {
		char *summary = one_line(p, type, who, ev, duration_ms, false);
		summary[utf8_cut(summary, 1000)] = '\0';   /* PagerDuty takes 1024 */
		char *db = event_database(p, ev);
		const char *env = event_env(p, ev);
		char *source = xasprintf("pgrunbook %s (%s)", p && p->name ? p->name : "?", env ? env : "?");
		json_t *details = json_object();
		json_object_set_new(details, "run_id", journal_json_text(run_id));
		json_object_set_new(details, "plan", journal_json_text(p ? p->name : NULL));
		json_object_set_new(details, "environment", journal_json_text(env));
		json_object_set_new(details, "database", journal_json_text(db));
		json_object_set_new(details, "stage", journal_json_text(ev ? ev->stage : NULL));
		json_object_set_new(details, "message", journal_json_text(ev ? ev->message : NULL));
		json_object_set_new(details, "who", journal_json_text(who));
		json_object_set_new(details, "data", ev && ev->data ? json_deep_copy(ev->data) : json_null());
		json_t *payload = json_pack("{s:o, s:o, s:s, s:o, s:s, s:o}", "summary", journal_json_text(summary),
		                            "source", journal_json_text(source), "severity", severity,
		                            "group", journal_json_text(env), "class", type, "custom_details", details);
		if (ev && ev->stage)
			json_object_set_new(payload, "component", journal_json_text(ev->stage));
		json_object_set_new(body, "payload", payload);
		free(summary);
		free(source);
		free(db);
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
	_Atomic(atomic_int *) *cancel;
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
	/* only while stopping (abort_at is set then): a cancel before that is not the drain's */
	long long at = h->abort_at ? atomic_load(h->abort_at) : 0;
	if (at <= 0)
		return 0;
	atomic_int *flag = h->cancel ? atomic_load(h->cancel) : NULL;
	if (flag && atomic_load(flag))
		return 1;
	return time_now_ms() >= at ? 1 : 0;
}

/* libcurl's sockets close on exec: pg_dump and the maintenance hooks must not inherit a webhook's
 * connection (libcurl sets FD_CLOEXEC itself only from 8.17). */
static curl_socket_t
open_socket_cloexec(void *clientp, curlsocktype purpose, struct curl_sockaddr *addr)
{
	(void)clientp;
	(void)purpose;
	return socket(addr->family, addr->socktype | SOCK_CLOEXEC, addr->protocol);
}

/* One POST on handle c (kept by the caller: its connection is reused); fills a. */
static void
http_post(CURL *c, const char *url, const char *body, struct curl_slist *headers, int64_t timeout_ms,
          int64_t connect_ms, _Atomic long long *abort_at, _Atomic(atomic_int *) *cancel, struct attempt *a)
{
	struct http_ctx h = { .abort_at = abort_at, .cancel = cancel };
	if (c == NULL) {
		a->error = xstrdup("could not initialise libcurl");
		return;
	}
	curl_easy_reset(c);
	char ua[64];
	snprintf(ua, sizeof ua, "pgrunbook/%s", PACKAGE_VERSION);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_OPENSOCKETFUNCTION, open_socket_cloexec);
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
	if (rc != CURLE_OK || status == 0) {
		a->status = 0;
		if (rc == CURLE_ABORTED_BY_CALLBACK) {
			a->error = xstrdup("cut short at exit");
			a->cut = true;
		} else {
			a->error = xstrdup(rc != CURLE_OK ? curl_easy_strerror(rc) : "no HTTP status");
		}
		a->permanent = rc == CURLE_URL_MALFORMAT || rc == CURLE_UNSUPPORTED_PROTOCOL;
		return;
	}
	a->status = status;
	if (status >= 300 && status <= 399)
		a->error = xasprintf("HTTP %ld: redirects are not followed; give the final URL", status);
	if ((status == 429 || status == 503) && h.retry_after[0] != '\0')
		a->has_retry_after = notify_parse_retry_after(h.retry_after, time(NULL), &a->retry_after_ms);
}

static void
not_sent(struct attempt *a, bool unset, char *why)
{
	a->not_sent = true;
	a->unset = unset;
	a->error = why;
}

/*
 * One attempt of a stored body on handle c: reads the URL (and secret, routing key) from the
 * environment now. body is the stored payload text; for pagerduty the routing key is added here.
 */
static void
deliver(CURL *c, const char *url_env, const char *secret_env, const char *events_url_env,
        enum plan_notify_format format, const char *id, const char *body, int64_t timeout_ms, int64_t connect_ms,
        _Atomic long long *abort_at, _Atomic(atomic_int *) *cancel, struct attempt *a)
{
	memset(a, 0, sizeof(*a));
	const char *v = env_value(url_env);
	if (v == NULL) {
		not_sent(a, true, xasprintf("%s is not set", url_env ? url_env : "the URL variable"));
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
				not_sent(a, true, xasprintf("%s is not set", events_url_env));
				goto out;
			}
			url = xstrdup(u);
		} else {
			url = xstrdup(PAGERDUTY_URL);
		}
		json_t *b = json_loads(body, 0, NULL);
		if (!json_is_object(b)) {
			json_decref(b);
			not_sent(a, false, xstrdup("the stored message body is not a JSON object"));
			goto out;
		}
		json_t *key = json_string(v);   /* NULL when the key is not valid UTF-8 */
		send = key && json_object_set_new(b, "routing_key", key) == 0 ? json_dumps(b, JSON_COMPACT) : NULL;
		json_t *rk = json_object_get(b, "routing_key");
		if (json_is_string(rk))
			explicit_bzero((char *)json_string_value(rk), json_string_length(rk));
		json_decref(b);
		if (send == NULL) {
			not_sent(a, true, xasprintf("%s is not valid UTF-8", url_env));
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
				not_sent(a, true, xasprintf("%s is not set", secret_env));
				goto out;
			}
			sig = notify_sign(secret, id, ts, send);
			if (sig == NULL) {
				not_sent(a, true, xasprintf("%s is not a Standard Webhooks secret (whsec_<base64>)", secret_env));
				goto out;
			}
			h = xasprintf("webhook-signature: %s", sig);
			hdr = curl_slist_append(hdr, h);
			free(h);
		}
	}
	http_post(c, url, send, hdr, timeout_ms, connect_ms, abort_at, cancel, a);
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
	free(e->unset_what);
	free(e->q);
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
outbox_init(struct outbox *ob)
{
	memset(ob, 0, sizeof(*ob));
	ob->lock_fd = -1;
	pthread_mutex_init(&ob->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&ob->wcond, &ca);
	pthread_condattr_destroy(&ca);
	ob->mu_init = true;
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
	free(ob->senders);
	free(ob->wq);
	if (ob->mu_init) {
		pthread_mutex_destroy(&ob->mu);
		pthread_cond_destroy(&ob->wcond);
	}
	memset(ob, 0, sizeof(*ob));
	ob->lock_fd = -1;
}

/* Counts a write that failed (why: the path and strerror; taken). Call with ob->mu held. */
static void
outbox_write_failed(struct outbox *ob, char *why)
{
	ob->write_errors++;
	if (ob->write_error == NULL)
		ob->write_error = why;
	else
		free(why);
}

/* The run's id: the last part of its directory. */
static const char *
run_name(const char *run_dir)
{
	const char *slash = strrchr(run_dir, '/');
	while (slash && slash[1] == '\0' && slash > run_dir) {
		/* a trailing slash: the part before it */
		const char *p = slash - 1;
		while (p > run_dir && *p != '/')
			p--;
		return *p == '/' ? p + 1 : p;
	}
	return slash ? slash + 1 : run_dir;
}

/* Locks <run_dir>/outbox (creating it when create). */
static bool
outbox_open(struct outbox *ob, const char *run_dir, bool create, struct rb_error *err)
{
	ob->run_dir = xstrdup(run_dir);
	ob->dir = xasprintf("%s/" OUTBOX_DIR, run_dir);
	char *id = xstrdup(run_name(run_dir));
	id[strcspn(id, "/")] = '\0';
	struct stat st;
	bool ok = false;
	if (stat(ob->dir, &st) != 0) {
		if (!create || errno != ENOENT) {
			if (errno == ENOENT)
				rb_error_setc(err, RB_EXIT_STEP, "run %s has no outbox (it sent no webhook notifications)", id);
			else
				rb_error_setc(err, RB_EXIT_STEP, "could not open %s: %s", ob->dir, strerror(errno));
			goto out;
		}
		if (mkdir(ob->dir, 0700) != 0 && errno != EEXIST) {
			rb_error_set(err, "could not create %s: %s", ob->dir, strerror(errno));
			goto out;
		}
		util_fsync_dir(run_dir);
	} else if (!S_ISDIR(st.st_mode)) {
		rb_error_setc(err, RB_EXIT_STEP, "%s is not a directory", ob->dir);
		goto out;
	}
	char *lock = xasprintf("%s/" LOCK_FILE, ob->dir);
	int fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		rb_error_setc(err, RB_EXIT_STEP, "could not open %s: %s", lock, strerror(errno));
		free(lock);
		goto out;
	}
	free(lock);
	int rc;
	while ((rc = flock(fd, LOCK_EX | LOCK_NB)) != 0 && errno == EINTR)
		;
	if (rc != 0) {
		int e = errno;
		char buf[32] = "";
		ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
		long pid = n > 0 ? strtol(buf, NULL, 10) : 0;
		close(fd);
		if (e == EWOULDBLOCK) {
			if (pid > 0)
				rb_error_setc(err, RB_EXIT_STEP,
				              "the outbox of run %s is being delivered by another process (pid %ld)", id, pid);
			else
				rb_error_setc(err, RB_EXIT_STEP, "the outbox of run %s is being delivered by another process", id);
			rb_error_hint(err, "Wait for it to finish, or stop it, and try again.");
		} else {
			rb_error_setc(err, RB_EXIT_STEP, "could not lock %s: %s", ob->dir, strerror(e));
		}
		goto out;
	}
	char pid[32];
	int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)n, 0) != n) {
		/* Only names the holder in another process's error message. */
	}
	ob->lock_fd = fd;
	ok = true;
out:
	free(id);
	return ok;
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

/* Why a failed message file failed: its "failure", or (files of an older version) from its last answer. */
static enum msg_fail
fail_of_doc(const json_t *doc)
{
	const char *f = jget_str(doc, "failure");
	for (size_t i = 1; f && i < RB_ARRAY_LEN(msg_fail_names); i++)
		if (strcmp(f, msg_fail_names[i]) == 0)
			return (enum msg_fail)i;
	long status = (long)json_integer_value(json_object_get(doc, "last_status"));
	const char *le = jget_str(doc, "last_error");
	if (le && strstr(le, "no longer configured"))
		return FAIL_UNCONFIGURED;
	if (status == 410 || (le && strstr(le, "is gone")))
		return FAIL_GONE;
	if (notify_classify(status) != NOTIFY_RETRY)
		return FAIL_REJECTED;
	if (status == 0 && json_integer_value(json_object_get(doc, "attempts")) == 0 && le &&
	    (strstr(le, " is not set") || strstr(le, "Standard Webhooks secret")))
		return FAIL_UNSET;
	return FAIL_ATTEMPTS;
}

/* Reads every message file; removes temporary files a crash left. Problems go to warnings (may be NULL). */
static void
outbox_load(struct outbox *ob, struct strlist *warnings, bool locked)
{
	DIR *d = opendir(ob->dir);
	if (d == NULL)
		return;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		const char *nm = de->d_name;
		size_t len = strlen(nm);
		if (strstr(nm, ".json.tmp.") != NULL) {
			/* a write that died before its rename; only the holder of the lock may know it is not live */
			if (locked) {
				char *p = xasprintf("%s/%s", ob->dir, nm);
				unlink(p);
				free(p);
			}
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
		if (seq > ob->seq)
			ob->seq = seq;   /* even when the file is not readable: its name stays taken */
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
		m->fail = st == MSG_FAILED ? fail_of_doc(doc) : FAIL_NONE;
		m->attempts = (int)json_integer_value(json_object_get(doc, "attempts"));
		m->next_ms = next;
		outbox_add(ob, m);
	}
	closedir(d);
	if (ob->nmsgs > 1)
		qsort(ob->msgs, ob->nmsgs, sizeof(*ob->msgs), msg_cmp);
}

static char *
msg_text(const struct nmsg *m)
{
	char *text = json_dumps(m->doc, JSON_INDENT(2));
	if (text == NULL)
		return NULL;
	char *with_nl = xasprintf("%s\n", text);
	free(text);
	return with_nl;
}

/*
 * Writes a message file (no lock held); false with *why. No fsync: see notify.h. Readers (a flush,
 * the report) never see a partial file: a new file, or one that grows past a page, is written
 * beside it and renamed over it; a state change of a file that stays within one page (almost
 * every one) is one pwrite of that page padded with spaces to the old length (JSON allows
 * trailing white space), which a signal cannot cut in two and which needs no new block (so no
 * ENOSPC halfway), and which creates and deletes no inode per state change (renames over
 * existing files made ext4 search its recently deleted inodes on every write).
 */
#define MSG_PAGE 4096

static bool
msg_file_write(const char *dir, const char *name, const char *text, char **why)
{
	if (text == NULL) {
		*why = xasprintf("could not encode %s/%s", dir, name);
		return false;
	}
	char *path = xasprintf("%s/%s", dir, name);
	size_t len = strlen(text);
	struct stat st;
	int fd = len <= MSG_PAGE ? open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW) : -1;
	if (fd >= 0 && (fstat(fd, &st) != 0 || st.st_size > MSG_PAGE || st.st_size < (off_t)len)) {
		close(fd);   /* it would grow or it is larger than a page: write a new file and rename it */
		fd = -1;
	}
	if (fd < 0) {
		bool ok = util_write_file_replace(path, text, len, why);
		free(path);
		return ok;
	}
	char page[MSG_PAGE];
	memcpy(page, text, len);
	memset(page + len, ' ', (size_t)st.st_size - len);
	if (st.st_size > (off_t)len)
		page[st.st_size - 1] = '\n';
	bool ok = true;
	ssize_t w;
	do
		w = pwrite(fd, page, (size_t)st.st_size, 0);
	while (w < 0 && errno == EINTR);
	if (w != (ssize_t)st.st_size) {
		*why = xasprintf("could not write %s: %s", path, w < 0 ? strerror(errno) : "short write");
		ok = false;
	}
	if (close(fd) != 0 && ok) {
		*why = xasprintf("could not write %s: %s", path, strerror(errno));
		ok = false;
	}
	free(path);
	return ok;
}

/* Writes m now, in this thread (used before the senders run and after they stop). */
static void
msg_write_now(struct outbox *ob, struct nmsg *m)
{
	char *text = msg_text(m), *why = NULL;
	if (!msg_file_write(ob->dir, m->name, text, &why))
		outbox_write_failed(ob, why);
	free(text);
}

static char *
endpoints_text(const struct outbox *ob)
{
	json_t *arr = json_array();
	for (size_t i = 0; i < ob->neps; i++) {
		const struct nendpoint *e = &ob->eps[i];
		json_array_append_new(arr, json_pack("{s:I, s:s, s:o, s:o, s:s, s:I, s:I, s:i, s:I, s:s, s:o, s:o}",
		                                     "index", (json_int_t)e->index, "url_env", e->url_env,
		                                     "secret_env", journal_json_text(e->secret_env),
		                                     "events_url_env", journal_json_text(e->events_url_env),
		                                     "format", format_name(e->format),
		                                     "timeout_ms", (json_int_t)e->timeout_ms,
		                                     "connect_timeout_ms", (json_int_t)e->connect_timeout_ms,
		                                     "max_attempts", e->max_attempts,
		                                     "backoff_ms", (json_int_t)e->backoff_ms, "state", e->state,
		                                     "last_status", e->last_status ? json_integer(e->last_status) : json_null(),
		                                     "last_error", journal_json_text(e->last_error)));
	}
	json_t *doc = json_pack("{s:o, s:I, s:o}", "run_id", journal_json_text(ob->run_id), "starts",
	                        (json_int_t)ob->starts, "endpoints", arr);
	char *text = json_dumps(doc, JSON_INDENT(2));
	json_decref(doc);
	char *with_nl = xasprintf("%s\n", text ? text : "{}");
	free(text);
	return with_nl;
}

/* Writes endpoints.json now, in this thread; durable when the start counter was just raised. */
static void
endpoints_write_now(struct outbox *ob, bool durable)
{
	char *text = endpoints_text(ob), *why = NULL;
	char *path = xasprintf("%s/%s", ob->dir, ENDPOINTS_FILE);
	bool ok = durable ? util_write_file_atomic(path, text, strlen(text), &why)
	                  : util_write_file_replace(path, text, strlen(text), &why);
	if (!ok)
		outbox_write_failed(ob, why);
	else
		ob->ep_written = ob->ep_version;
	free(path);
	free(text);
}

static struct nendpoint *
outbox_endpoint(struct outbox *ob, size_t index)
{
	for (size_t i = 0; i < ob->neps; i++)
		if (ob->eps[i].index == index)
			return &ob->eps[i];
	return NULL;
}

/* "SLACK_URL not set" from "SLACK_URL is not set"; other problems as they are. */
static char *
unset_words(const char *error)
{
	const char *p = error ? strstr(error, " is not set") : NULL;
	if (p && p[strlen(" is not set")] == '\0')
		return xasprintf("%.*s not set", (int)(p - error), error);
	return xstrdup(error ? error : "a variable is not set");
}

static void
endpoint_set(struct outbox *ob, struct nendpoint *e, const char *state, long status, const char *error)
{
	bool same = e->state && strcmp(e->state, state) == 0 && e->last_status == status &&
	            ((e->last_error == NULL && error == NULL) || (e->last_error && error && strcmp(e->last_error, error) == 0));
	if (same)
		return;
	free(e->state);
	e->state = xstrdup(state);
	e->last_status = status;
	free(e->last_error);
	e->last_error = error ? xstrdup(error) : NULL;
	free(e->unset_what);
	e->unset_what = strcmp(state, "unset") == 0 ? unset_words(error) : NULL;
	ob->ep_version++;
	if (ob->writer_started)
		pthread_cond_signal(&ob->wcond);
}

/* Adds (delta 1) or removes (-1) m from its endpoint's counts. */
static void
ep_count(struct nendpoint *e, const struct nmsg *m, int delta)
{
	if (e == NULL)
		return;
	unsigned *c = m->state == MSG_FAILED && m->fail == FAIL_UNSET ? &e->n_unset : &e->n[m->state];
	*c = (unsigned)((int)*c + delta);
}

/* Sets m's state and outcome (and its endpoint's counts when e is given). */
static void
msg_set_outcome(struct nendpoint *e, struct nmsg *m, enum msg_state st, enum msg_fail fail, long status,
                const char *error, long long next_ms)
{
	ep_count(e, m, -1);
	m->state = st;
	m->fail = st == MSG_FAILED ? fail : FAIL_NONE;
	m->next_ms = st == MSG_PENDING ? next_ms : 0;
	ep_count(e, m, 1);
	json_object_set_new(m->doc, "state", json_string(msg_state_names[st]));
	json_object_set_new(m->doc, "failure", st == MSG_FAILED ? json_string(msg_fail_names[fail]) : json_null());
	json_object_set_new(m->doc, "attempts", json_integer(m->attempts));
	char ts[32];
	if (st == MSG_PENDING && next_ms > 0) {
		rfc3339_of_ms(next_ms, ts);
		json_object_set_new(m->doc, "next_attempt", json_string(ts));
	} else {
		json_object_set_new(m->doc, "next_attempt", json_null());
	}
	json_object_set_new(m->doc, "last_status", status ? json_integer(status) : json_null());
	json_object_set_new(m->doc, "last_error", journal_json_text(error));
	if (st == MSG_SENT) {
		rfc3339_of_ms(time_now_ms(), ts);
		json_object_set_new(m->doc, "sent_at", json_string(ts));
	}
}

/* Puts m in its endpoint's queue, in seq order, and counts it. */
static void
queue_insert(struct nendpoint *e, struct nmsg *m)
{
	if (e->nq == e->qcap) {
		e->qcap = e->qcap ? e->qcap * 2 : 16;
		e->q = xrealloc(e->q, e->qcap * sizeof(*e->q));
	}
	size_t i = e->nq++;
	while (i > 0 && e->q[i - 1]->seq > m->seq) {
		e->q[i] = e->q[i - 1];
		i--;
	}
	e->q[i] = m;
	m->queued = true;
	if (i < e->head)
		e->head = i;
	ep_count(e, m, 1);
}

/* The endpoint's first pending message, or NULL. */
static struct nmsg *
endpoint_head(struct nendpoint *e)
{
	while (e->head < e->nq && e->q[e->head]->state != MSG_PENDING)
		e->head++;
	return e->head < e->nq ? e->q[e->head] : NULL;
}

/*
 * Sorts the loaded messages into their endpoints' queues. A pending message whose endpoint is no
 * longer configured as when it was written is failed (and written) here; before the senders run.
 */
static void
outbox_index(struct outbox *ob)
{
	for (size_t i = 0; i < ob->nmsgs; i++) {
		struct nmsg *m = ob->msgs[i];
		struct nendpoint *e = outbox_endpoint(ob, m->endpoint);
		const char *murl = jget_str(m->doc, "url_env"), *mfmt = jget_str(m->doc, "format");
		if (e != NULL && (murl == NULL || strcmp(murl, e->url_env) == 0) &&
		    (mfmt == NULL || strcmp(mfmt, format_name(e->format)) == 0)) {
			m->limit = e->max_attempts;
			queue_insert(e, m);
			continue;
		}
		m->limit = DEFAULT_ATTEMPTS;
		if (m->state == MSG_PENDING) {
			char *why = xasprintf("notify[%zu] is no longer configured as when the message was written",
			                      m->endpoint);
			msg_set_outcome(NULL, m, MSG_FAILED, FAIL_UNCONFIGURED, 0, why, 0);
			free(why);
			msg_write_now(ob, m);
		}
	}
}

static void
job_fill(const struct nendpoint *e, struct nmsg *m, struct job *j)
{
	memset(j, 0, sizeof(*j));
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

/* Applies an attempt's outcome to the message and its endpoint, in memory (ob->mu held). */
static void
outbox_apply(struct outbox *ob, struct nendpoint *e, struct nmsg *m, const struct attempt *a)
{
	if (a->not_sent) {
		msg_set_outcome(e, m, MSG_FAILED, a->unset ? FAIL_UNSET : FAIL_REJECTED, 0, a->error, 0);
		if (strcmp(e->state, "gone") != 0)
			endpoint_set(ob, e, a->unset ? "unset" : "rejected", 0, a->error);
		return;
	}
	if (a->cut) {
		/* the drain ended while it was in flight: still pending, as it was (its last error stays) */
		m->next_ms = 0;
		if (strcmp(e->state, "ok") == 0)
			endpoint_set(ob, e, "failing", 0, "no answer before the end of the drain");
		return;
	}
	m->attempts++;
	enum notify_outcome o = notify_classify(a->status);
	if (a->status == 0 && a->permanent)
		o = NOTIFY_REJECTED;
	const char *error = a->error;   /* no status: why; a 3xx: why it is refused */
	switch (o) {
	case NOTIFY_SENT:
		msg_set_outcome(e, m, MSG_SENT, FAIL_NONE, a->status, NULL, 0);
		endpoint_set(ob, e, "ok", a->status, NULL);
		break;
	case NOTIFY_RETRY:
		if (m->attempts >= m->limit) {
			msg_set_outcome(e, m, MSG_FAILED, FAIL_ATTEMPTS, a->status, error, 0);
		} else {
			/* Retry-After is a floor, never a way around the backoff. */
			int64_t delay = notify_backoff_ms(e->backoff_ms, m->attempts, random_u32());
			if (a->has_retry_after && a->retry_after_ms > delay)
				delay = a->retry_after_ms;
			msg_set_outcome(e, m, MSG_PENDING, FAIL_NONE, a->status, error, time_now_ms() + delay);
		}
		endpoint_set(ob, e, "failing", a->status, error);
		break;
	case NOTIFY_REJECTED:
		msg_set_outcome(e, m, MSG_FAILED, FAIL_REJECTED, a->status, error, 0);
		endpoint_set(ob, e, "rejected", a->status, error);
		break;
	case NOTIFY_GONE:
		msg_set_outcome(e, m, MSG_FAILED, FAIL_GONE, a->status, error, 0);
		endpoint_set(ob, e, "gone", a->status, error);
		break;
	}
}

static void block_signals(sigset_t *old);

/* Queues m to be written with its newest state (ob->mu held; the writer thread runs). */
static void
mark_dirty(struct outbox *ob, struct nmsg *m)
{
	if (m->dirty)
		return;
	if (ob->nwq == ob->wqcap) {
		ob->wqcap = ob->wqcap ? ob->wqcap * 2 : 64;
		ob->wq = xrealloc(ob->wq, ob->wqcap * sizeof(*ob->wq));
	}
	ob->wq[ob->nwq++] = m;
	m->dirty = true;
	pthread_cond_signal(&ob->wcond);
}

/* The writer thread: writes what is queued, in batches, without ob->mu; ends when stopped and done. */
static void *
writer_main(void *arg)
{
	struct outbox *ob = arg;
	block_signals(NULL);
	pthread_mutex_lock(&ob->mu);
	for (;;) {
		if (ob->nwq == 0 && ob->ep_version == ob->ep_written) {
			if (ob->writer_stop)
				break;
			pthread_cond_wait(&ob->wcond, &ob->mu);
			continue;
		}
		size_t n = ob->nwq;
		char **names = xcalloc(n + 1, sizeof(*names)), **texts = xcalloc(n + 1, sizeof(*texts));
		for (size_t i = 0; i < n; i++) {
			names[i] = xstrdup(ob->wq[i]->name);
			texts[i] = msg_text(ob->wq[i]);
			ob->wq[i]->dirty = false;
		}
		ob->nwq = 0;
		unsigned long version = ob->ep_version;
		char *eps = version != ob->ep_written ? endpoints_text(ob) : NULL;
		pthread_mutex_unlock(&ob->mu);
		char **why = xcalloc(n + 2, sizeof(*why));
		for (size_t i = 0; i < n; i++)
			msg_file_write(ob->dir, names[i], texts[i], &why[i]);
		if (eps) {
			char *path = xasprintf("%s/%s", ob->dir, ENDPOINTS_FILE);
			util_write_file_replace(path, eps, strlen(eps), &why[n]);
			free(path);
		}
		pthread_mutex_lock(&ob->mu);
		for (size_t i = 0; i <= n; i++)
			if (why[i])
				outbox_write_failed(ob, why[i]);
		if (eps)
			ob->ep_written = version;   /* written, or counted as a write error: not tried again and again */
		for (size_t i = 0; i < n; i++) {
			free(names[i]);
			free(texts[i]);
		}
		free(names);
		free(texts);
		free(why);
		free(eps);
	}
	pthread_mutex_unlock(&ob->mu);
	return NULL;
}

static void
outbox_counts(const struct outbox *ob, struct notify_counts *out)
{
	memset(out, 0, sizeof(*out));
	for (size_t i = 0; i < ob->nmsgs; i++) {
		const struct nmsg *m = ob->msgs[i];
		if (m->queued)
			continue;   /* counted by its endpoint below */
		if (m->state == MSG_FAILED && m->fail == FAIL_UNSET)
			out->unset++;
		else if (m->state == MSG_PENDING)
			out->pending++;
		else if (m->state == MSG_SENT)
			out->sent++;
		else
			out->failed++;
	}
	out->endpoints = (unsigned)ob->neps;
	for (size_t i = 0; i < ob->neps; i++) {
		const struct nendpoint *e = &ob->eps[i];
		out->sent += e->n[MSG_SENT];
		out->pending += e->n[MSG_PENDING];
		out->failed += e->n[MSG_FAILED];
		out->unset += e->n_unset;
		if (strcmp(e->state, "unset") == 0)
			out->unset_endpoints++;
		else if (strcmp(e->state, "ok") != 0)
			out->failing_endpoints++;
	}
	out->write_errors = ob->write_errors;
}

/* Failed messages a flush would send again now: for want of attempts, or of a variable that is set now. */
static unsigned
outbox_retryable(const struct outbox *ob)
{
	unsigned n = 0;
	for (size_t i = 0; i < ob->neps; i++) {
		const struct nendpoint *e = &ob->eps[i];
		if (strcmp(e->state, "gone") == 0)
			continue;
		for (size_t k = 0; k < e->nq; k++) {
			const struct nmsg *m = e->q[k];
			if (m->state == MSG_FAILED &&
			    (m->fail == FAIL_ATTEMPTS || (m->fail == FAIL_UNSET && strcmp(e->state, "unset") != 0)))
				n++;
		}
	}
	return n;
}

/* The status line (notify.h); final: the end of a command's (failed always counted, the flush hint). */
static char *
outbox_status_line(const struct outbox *ob, bool final)
{
	struct notify_counts c;
	outbox_counts(ob, &c);
	struct strbuf sb = {0};
	strbuf_addf(&sb, "notify: %u sent, %u pending", c.sent, c.pending);
	if (c.failed || final)
		strbuf_addf(&sb, ", %u failed", c.failed);
	if (ob->write_errors)
		strbuf_addf(&sb, "; %u outbox write error%s: %s", ob->write_errors, ob->write_errors == 1 ? "" : "s",
		            ob->write_error ? ob->write_error : "");
	const struct nendpoint *first = NULL, *first_unset = NULL;
	unsigned more = 0, more_unset = 0;
	for (size_t i = 0; i < ob->neps; i++) {
		const struct nendpoint *e = &ob->eps[i];
		if (strcmp(e->state, "ok") == 0)
			continue;
		if (strcmp(e->state, "unset") == 0) {
			if (first_unset == NULL)
				first_unset = e;
			else
				more_unset++;
		} else if (first == NULL) {
			first = e;
		} else {
			more++;
		}
	}
	if (first) {
		strbuf_addf(&sb, "; notify[%zu] (%s) %s", first->index, first->url_env, first->state);
		if (first->last_error)
			strbuf_addf(&sb, ": %s", first->last_error);
		else if (first->last_status)
			strbuf_addf(&sb, ": HTTP %ld", first->last_status);
		if (more)
			strbuf_addf(&sb, " +%u more", more);
	}
	if (first_unset) {
		strbuf_addf(&sb, "; %s (%u not sent)", first_unset->unset_what ? first_unset->unset_what : "not set",
		            first_unset->n_unset);
		if (more_unset)
			strbuf_addf(&sb, " +%u more", more_unset);
	}
	if (final && (c.pending > 0 || outbox_retryable(ob) > 0))
		strbuf_addf(&sb, "; deliver the rest with: pgrunbook notify flush %s", run_name(ob->run_dir));
	return strbuf_detach(&sb);
}

/* ---------- the senders: one thread per endpoint ---------- */

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

/* Waits on cond (mu held) until the wall clock reaches wall_ms, a signal, or a spurious wake-up. */
static void
wait_until(pthread_cond_t *cond, pthread_mutex_t *mu, long long wall_ms)
{
	long long delay = wall_ms - time_now_ms();
	if (delay <= 0)
		return;
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	long long ns = (long long)ts.tv_nsec + (delay % 1000) * 1000000LL;
	ts.tv_sec += (time_t)(delay / 1000 + ns / 1000000000LL);
	ts.tv_nsec = (long)(ns % 1000000000LL);
	pthread_cond_timedwait(cond, mu, &ts);
}

/*
 * Delivers one endpoint's messages in seq order: the first pending one, when it is due. Until
 * ob->stopping it waits for more; then it ends when nothing is due before ob->deadline.
 */
static void *
sender_main(void *arg)
{
	struct sender *s = arg;
	struct outbox *ob = s->ob;
	struct nendpoint *e = &ob->eps[s->k];
	block_signals(NULL);
	pthread_mutex_lock(&ob->mu);
	for (;;) {
		struct nmsg *m = endpoint_head(e);
		long long now = time_now_ms();
		if (m == NULL) {
			if (ob->stopping)
				break;
			pthread_cond_wait(&s->cond, &ob->mu);
			continue;
		}
		if (strcmp(e->state, "gone") == 0) {
			char *why = xasprintf("notify[%zu] (%s) is gone (HTTP 410)", e->index, e->url_env);
			msg_set_outcome(e, m, MSG_FAILED, FAIL_GONE, 0, why, 0);
			free(why);
			mark_dirty(ob, m);
			continue;
		}
		long long at = m->next_ms > 0 ? m->next_ms : now;
		atomic_int *flag = atomic_load(&ob->cancel);
		bool cancelled = ob->stopping && flag && atomic_load(flag);
		if (ob->stopping && (cancelled || now >= ob->deadline || at > ob->deadline))
			break;
		if (at > now) {
			long long until = ob->stopping && ob->deadline < at ? ob->deadline : at;
			if (ob->stopping && flag && until > now + 100)
				until = now + 100;   /* looks at the cancel flag 10 times a second */
			wait_until(&s->cond, &ob->mu, until);
			continue;
		}
		struct job j;
		job_fill(e, m, &j);
		pthread_mutex_unlock(&ob->mu);
		struct attempt a;
		deliver(s->curl, j.url_env, j.secret_env, j.events_url_env, j.format, j.id, j.body ? j.body : "{}",
		        j.timeout_ms, j.connect_timeout_ms, &ob->abort_at, &ob->cancel, &a);
		pthread_mutex_lock(&ob->mu);
		outbox_apply(ob, e, j.msg, &a);
		mark_dirty(ob, j.msg);
		free(a.error);
		job_release(&j);
	}
	pthread_mutex_unlock(&ob->mu);
	return NULL;
}

/* Starts a sender per endpoint; false with err when a thread cannot start (those started are stopped). */
static void senders_join(struct outbox *ob);

static bool
senders_start(struct outbox *ob, struct rb_error *err)
{
	ob->senders = xcalloc(ob->neps + 1, sizeof(*ob->senders));
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	for (size_t i = 0; i < ob->neps; i++) {
		struct sender *s = &ob->senders[i];
		s->ob = ob;
		s->k = i;
		pthread_cond_init(&s->cond, &ca);
		s->curl = curl_easy_init();
	}
	pthread_condattr_destroy(&ca);
	sigset_t old;
	block_signals(&old);
	int rc = pthread_create(&ob->writer, NULL, writer_main, ob);
	ob->writer_started = rc == 0;
	for (size_t i = 0; i < ob->neps && rc == 0; i++) {
		rc = pthread_create(&ob->senders[i].thread, NULL, sender_main, &ob->senders[i]);
		ob->senders[i].started = rc == 0;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		rb_error_set(err, "could not start the notification senders: %s", strerror(rc));
		pthread_mutex_lock(&ob->mu);
		ob->stopping = true;
		ob->deadline = 0;
		atomic_store(&ob->abort_at, 1);
		pthread_mutex_unlock(&ob->mu);
		senders_join(ob);
		return false;
	}
	return true;
}

/* Wakes every sender and waits for them (ob->stopping set), then for the writer to write what is left. */
static void
senders_join(struct outbox *ob)
{
	if (ob->senders == NULL)
		return;
	pthread_mutex_lock(&ob->mu);
	struct sender *senders = ob->senders;
	for (size_t i = 0; i < ob->neps; i++)
		pthread_cond_signal(&senders[i].cond);
	pthread_mutex_unlock(&ob->mu);
	for (size_t i = 0; i < ob->neps; i++)
		if (senders[i].started)
			pthread_join(senders[i].thread, NULL);
	/* under the lock: an event arriving now no longer signals a sender */
	pthread_mutex_lock(&ob->mu);
	ob->senders = NULL;
	pthread_mutex_unlock(&ob->mu);
	for (size_t i = 0; i < ob->neps; i++) {
		pthread_cond_destroy(&senders[i].cond);
		if (senders[i].curl)
			curl_easy_cleanup(senders[i].curl);
	}
	free(senders);
	if (ob->writer_started) {
		pthread_mutex_lock(&ob->mu);
		ob->writer_stop = true;
		pthread_cond_signal(&ob->wcond);
		pthread_mutex_unlock(&ob->mu);
		pthread_join(ob->writer, NULL);
		/* from now on the emitter writes itself; what was queued after the writer's last batch too */
		pthread_mutex_lock(&ob->mu);
		ob->writer_started = false;
		size_t n = ob->nwq;
		ob->nwq = 0;
		for (size_t i = 0; i < n; i++) {
			ob->wq[i]->dirty = false;
			msg_write_now(ob, ob->wq[i]);
		}
		pthread_mutex_unlock(&ob->mu);
	}
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

/* What keeps the endpoint's requests from being made now (a variable unset, empty or malformed), or NULL. */
static char *
endpoint_env_problem(const struct nendpoint *e)
{
	if (env_value(e->url_env) == NULL)
		return xasprintf("%s is not set", e->url_env);
	if (e->events_url_env && env_value(e->events_url_env) == NULL)
		return xasprintf("%s is not set", e->events_url_env);
	if (e->secret_env && env_value(e->secret_env) == NULL)
		return xasprintf("%s is not set", e->secret_env);
	if (e->secret_env) {
		char *sig = notify_sign(env_value(e->secret_env), "check", 0, "");
		bool bad = sig == NULL;
		free(sig);
		if (bad)
			return xasprintf("%s is not a Standard Webhooks secret (whsec_<base64>)", e->secret_env);
	}
	return NULL;
}

/*
 * Checks the endpoint's variables now: a problem flags it "unset" (a "gone" endpoint stays gone)
 * and goes to warnings (may be NULL); an endpoint "unset" before whose variables are set now is "ok".
 */
static void
endpoint_check_env(struct outbox *ob, struct nendpoint *e, struct strlist *warnings)
{
	char *problem = endpoint_env_problem(e);
	if (problem == NULL) {
		if (strcmp(e->state, "unset") == 0)
			endpoint_set(ob, e, "ok", 0, NULL);
		return;
	}
	if (warnings)
		strlist_push_owned(warnings, xasprintf("notify[%zu] (%s): %s; its notifications will not be sent",
		                                       e->index, e->url_env, problem));
	if (strcmp(e->state, "gone") != 0)
		endpoint_set(ob, e, "unset", 0, problem);
	free(problem);
}

static void
notifier_free(struct notifier *n)
{
	outbox_close(&n->ob);
	for (size_t i = 0; i < n->nstages; i++)
		free(n->stages[i].stage);
	free(n->stages);
	free(n->who);
	free(n->rolled_back);
	free(n);
}

/* The saved endpoints.json of the outbox, or NULL. */
static json_t *
endpoints_load(const struct outbox *ob)
{
	char *path = xasprintf("%s/" ENDPOINTS_FILE, ob->dir);
	json_t *doc = json_load_file(path, 0, NULL);
	free(path);
	if (!json_is_object(doc)) {
		json_decref(doc);
		return NULL;
	}
	return doc;
}

struct notifier *
notifier_start(const struct plan *p, const char *run_dir, const char *run_id, const char *who,
               struct strlist *warnings, struct rb_error *err)
{
	struct notifier *n = xcalloc(1, sizeof(*n));
	outbox_init(&n->ob);
	n->plan = p;
	n->who = xstrdup(who ? who : "unknown");
	n->start_ms = time_now_ms();
	if (!outbox_open(&n->ob, run_dir, true, err)) {
		notifier_free(n);
		return NULL;
	}
	struct outbox *ob = &n->ob;
	ob->run_id = xstrdup(run_id ? run_id : "");
	ob->neps = p->nnotify;
	ob->eps = xcalloc(p->nnotify ? p->nnotify : 1, sizeof(*ob->eps));
	json_t *saved = endpoints_load(ob);
	json_int_t starts = json_integer_value(json_object_get(saved, "starts"));
	ob->starts = (starts > 0 ? starts : 0) + 1;
	for (size_t i = 0; i < p->nnotify; i++) {
		struct nendpoint *e = &ob->eps[i];
		endpoint_from_plan(e, i, &p->notify[i]);
		/* A resumed run keeps what an endpoint answered for good: 410 Gone, and a 4xx refusal. */
		size_t k;
		json_t *o;
		json_array_foreach(json_object_get(saved, "endpoints"), k, o) {
			const char *st = jget_str(o, "state");
			if ((size_t)json_integer_value(json_object_get(o, "index")) != i || st == NULL ||
			    jget_str(o, "url_env") == NULL || strcmp(jget_str(o, "url_env"), e->url_env) != 0 ||
			    jget_str(o, "format") == NULL || strcmp(jget_str(o, "format"), format_name(e->format)) != 0)
				continue;
			if (strcmp(st, "gone") == 0 || strcmp(st, "rejected") == 0)
				endpoint_set(ob, e, st, (long)json_integer_value(json_object_get(o, "last_status")),
				             jget_str(o, "last_error"));
		}
		endpoint_check_env(ob, e, warnings);
	}
	json_decref(saved);
	outbox_load(ob, warnings, true);
	outbox_index(ob);
	endpoints_write_now(ob, true);
	if (ob->write_errors) {
		rb_error_set(err, "%s", ob->write_error);
		notifier_free(n);
		return NULL;
	}
	if (!senders_start(ob, err)) {
		notifier_free(n);
		return NULL;
	}
	return n;
}

static bool
endpoint_selects(const struct nendpoint *e, const char *type)
{
	return strlist_contains(&e->events, type);
}

/* The duration an event reports (-1: none), from what the notifier saw before it; n->ob.mu held. */
static int64_t
track_times(struct notifier *n, const struct rb_event *ev, long long now)
{
	switch (ev->type) {
	case EV_RUN_STARTED:
		n->run_started_ms = now;
		return -1;
	case EV_RUN_FINISHED:
		return now - (n->run_started_ms ? n->run_started_ms : n->start_ms);
	case EV_ROLLBACK_STARTED: {
		n->rollback_ms = now;
		const char *run = jget_str(ev->data, "run");
		if (run && run[0]) {
			free(n->rolled_back);
			n->rolled_back = xstrdup(run);
		}
		return -1;
	}
	case EV_ROLLBACK_DONE:
		return n->rollback_ms ? now - n->rollback_ms : -1;
	case EV_OVER_BUDGET: {
		json_t *el = json_object_get(ev->data, "elapsed_ms");
		return json_is_integer(el) ? (int64_t)json_integer_value(el) : -1;
	}
	default:
		break;
	}
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
	struct outbox *ob = &n->ob;
	const char *type = events_type_name(ev->type);
	bool any = false;
	for (size_t i = 0; i < ob->neps && !any; i++)
		any = endpoint_selects(&ob->eps[i], type);   /* events lists never change: no lock */
	if (!any)
		return;
	long long now = time_now_ms();
	char created[32];
	rfc3339_of_ms(now, created);
	/* Under the lock only what orders the event: its seq, the times, each endpoint's state. */
	pthread_mutex_lock(&ob->mu);
	int64_t duration = track_times(n, ev, now);
	if (duration < -1)
		duration = 0;
	unsigned long seq = ++ob->seq;
	char *dedup = ev->type == EV_RUN_FINISHED && n->rolled_back ? xasprintf("pgrunbook-%s", n->rolled_back) : NULL;
	bool *unset = xcalloc(ob->neps + 1, sizeof(*unset));
	char **unset_why = xcalloc(ob->neps + 1, sizeof(*unset_why));
	for (size_t i = 0; i < ob->neps; i++) {
		unset[i] = strcmp(ob->eps[i].state, "unset") == 0;
		if (unset[i])
			unset_why[i] = xstrdup(ob->eps[i].last_error ? ob->eps[i].last_error : "a variable is not set");
	}
	pthread_mutex_unlock(&ob->mu);

	/* Rendering: no lock. The writer thread writes the files. */
	char *id = xasprintf("%s.%lld.%lu", ob->run_id, ob->starts, seq);
	struct nmsg **made = xcalloc(ob->neps + 1, sizeof(*made));
	size_t nmade = 0;
	for (size_t i = 0; i < ob->neps; i++) {
		struct nendpoint *e = &ob->eps[i];
		if (!endpoint_selects(e, type))
			continue;
		json_t *body = render_type(n->plan, &n->plan->notify[e->index], ob->run_id, id, type, n->who, ev, duration,
		                           e->format == PLAN_NOTIFY_PAGERDUTY ? dedup : NULL);
		if (body == NULL)
			continue;
		struct nmsg *m = xcalloc(1, sizeof(*m));
		m->seq = seq;
		m->endpoint = e->index;
		m->name = xasprintf("%08lu-%zu.json", seq, e->index);
		m->state = unset[i] ? MSG_FAILED : MSG_PENDING;
		m->fail = unset[i] ? FAIL_UNSET : FAIL_NONE;
		m->limit = e->max_attempts;
		m->doc = json_object();
		json_object_set_new(m->doc, "id", json_string(id));
		json_object_set_new(m->doc, "seq", json_integer((json_int_t)seq));
		json_object_set_new(m->doc, "endpoint", json_integer((json_int_t)e->index));
		json_object_set_new(m->doc, "url_env", json_string(e->url_env));
		json_object_set_new(m->doc, "format", json_string(format_name(e->format)));
		json_object_set_new(m->doc, "event", json_string(type));
		json_object_set_new(m->doc, "stage", journal_json_text(ev->stage));
		json_object_set_new(m->doc, "created", json_string(created));
		json_object_set_new(m->doc, "state", json_string(msg_state_names[m->state]));
		json_object_set_new(m->doc, "failure", unset[i] ? json_string(msg_fail_names[FAIL_UNSET]) : json_null());
		json_object_set_new(m->doc, "attempts", json_integer(0));
		json_object_set_new(m->doc, "next_attempt", json_null());
		json_object_set_new(m->doc, "last_status", json_null());
		json_object_set_new(m->doc, "last_error", unset[i] ? json_string(unset_why[i]) : json_null());
		json_object_set_new(m->doc, "sent_at", json_null());
		json_object_set_new(m->doc, "body", body);
		made[nmade++] = m;
	}
	pthread_mutex_lock(&ob->mu);
	for (size_t k = 0; k < nmade; k++) {
		struct nmsg *m = made[k];
		struct nendpoint *e = outbox_endpoint(ob, m->endpoint);
		outbox_add(ob, m);
		queue_insert(e, m);
		if (ob->writer_started)
			mark_dirty(ob, m);
		else
			msg_write_now(ob, m);   /* after notifier_stop() began: no writer */
		if (m->state == MSG_PENDING && ob->senders)
			pthread_cond_signal(&ob->senders[e - ob->eps].cond);
	}
	pthread_mutex_unlock(&ob->mu);
	for (size_t i = 0; i < ob->neps; i++)
		free(unset_why[i]);
	free(unset_why);
	free(unset);
	free(made);
	free(id);
	free(dedup);
}

void
notifier_counts(struct notifier *n, struct notify_counts *out)
{
	if (n == NULL) {
		memset(out, 0, sizeof(*out));
		return;
	}
	pthread_mutex_lock(&n->ob.mu);
	outbox_counts(&n->ob, out);
	pthread_mutex_unlock(&n->ob.mu);
}

char *
notifier_status_line(struct notifier *n)
{
	if (n == NULL)
		return xstrdup("notify: off");
	pthread_mutex_lock(&n->ob.mu);
	char *s = outbox_status_line(&n->ob, false);
	pthread_mutex_unlock(&n->ob.mu);
	return s;
}

void
notifier_cancel_on(struct notifier *n, atomic_int *flag)
{
	if (n == NULL)
		return;
	atomic_store(&n->ob.cancel, flag);
}

char *
notifier_stop(struct notifier *n, int64_t drain_ms, struct notify_counts *out)
{
	if (n == NULL) {
		if (out)
			memset(out, 0, sizeof(*out));
		return NULL;
	}
	struct outbox *ob = &n->ob;
	pthread_mutex_lock(&ob->mu);
	ob->stopping = true;
	ob->deadline = time_now_ms() + (drain_ms > 0 ? drain_ms : 0);
	atomic_store(&ob->abort_at, ob->deadline > 0 ? ob->deadline : 1);
	pthread_mutex_unlock(&ob->mu);
	senders_join(ob);
	if (ob->ep_version != ob->ep_written)
		endpoints_write_now(ob, false);
	if (out)
		outbox_counts(ob, out);
	char *line = outbox_status_line(ob, true);
	notifier_free(n);
	return line;
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
	return longest + 2000 < DRAIN_CAP_MS ? longest + 2000 : DRAIN_CAP_MS;
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
		rb_error_setc(err, RB_EXIT_STEP, "could not read %s: %s", path, doc ? "no \"endpoints\" array" : jerr.text);
		json_decref(doc);
		free(path);
		return false;
	}
	free(path);
	ob->run_id = xstrdup(jget_str(doc, "run_id") ? jget_str(doc, "run_id") : "");
	json_int_t starts = json_integer_value(json_object_get(doc, "starts"));
	ob->starts = starts > 0 ? starts : 0;
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
		if (strcmp(e->state, "unset") == 0)
			e->unset_what = unset_words(e->last_error);
	}
	json_decref(doc);
	return true;
}

bool
notify_flush(const char *run_dir, int64_t max_wait_ms, struct notify_counts *out, struct rb_error *err)
{
	struct outbox ob;
	outbox_init(&ob);
	if (!outbox_open(&ob, run_dir, false, err) || !endpoints_read(&ob, err)) {
		outbox_close(&ob);
		return false;
	}
	for (size_t i = 0; i < ob.neps; i++)
		endpoint_check_env(&ob, &ob.eps[i], NULL);
	outbox_load(&ob, NULL, true);   /* flush holds the lock */
	outbox_index(&ob);
	for (size_t i = 0; i < ob.neps; i++) {
		struct nendpoint *e = &ob.eps[i];
		bool gone = strcmp(e->state, "gone") == 0, unset = strcmp(e->state, "unset") == 0;
		for (size_t k = 0; k < e->nq; k++) {
			struct nmsg *m = e->q[k];
			m->limit = e->max_attempts;
			/* What failed for want of attempts, or of a variable set now, gets max_attempts more, now. */
			if (m->state == MSG_FAILED && !gone &&
			    (m->fail == FAIL_ATTEMPTS || (m->fail == FAIL_UNSET && !unset))) {
				m->limit = m->attempts + e->max_attempts;
				msg_set_outcome(e, m, MSG_PENDING, FAIL_NONE,
				                (long)json_integer_value(json_object_get(m->doc, "last_status")),
				                jget_str(m->doc, "last_error"), 0);
				msg_write_now(&ob, m);
			} else if (m->state == MSG_PENDING) {
				m->next_ms = 0;   /* a flush is asked for now */
				if (m->limit <= m->attempts)
					m->limit = m->attempts + 1;
			}
		}
	}
	if (ob.ep_version != ob.ep_written)
		endpoints_write_now(&ob, false);
	ob.stopping = true;
	ob.deadline = time_now_ms() + (max_wait_ms > 0 ? max_wait_ms : 0);
	atomic_store(&ob.abort_at, ob.deadline > 0 ? ob.deadline : 1);
	bool ok = senders_start(&ob, err);
	if (ok)
		senders_join(&ob);
	if (ob.ep_version != ob.ep_written)
		endpoints_write_now(&ob, false);
	if (out)
		outbox_counts(&ob, out);
	outbox_close(&ob);
	return ok;
}

/* ---------- the outbox read for others ---------- */

json_t *
notify_outbox_summary(const char *run_dir)
{
	char *dir = xasprintf("%s/" OUTBOX_DIR, run_dir);
	struct stat st;
	if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
		free(dir);
		return NULL;
	}
	free(dir);
	struct outbox ob;
	outbox_init(&ob);
	ob.run_dir = xstrdup(run_dir);
	ob.dir = xasprintf("%s/" OUTBOX_DIR, run_dir);
	struct rb_error err = {0};
	if (!endpoints_read(&ob, &err))
		rb_error_clear(&err);
	/* whether each endpoint's variables are set now (a flush would send what failed for want of them) */
	for (size_t i = 0; i < ob.neps; i++) {
		char *problem = endpoint_env_problem(&ob.eps[i]);
		if (problem == NULL && strcmp(ob.eps[i].state, "unset") == 0)
			endpoint_set(&ob, &ob.eps[i], "ok", 0, NULL);
		free(problem);
	}
	outbox_load(&ob, NULL, false);  /* read without the lock */
	/* as outbox_index(), without failing or writing anything */
	for (size_t i = 0; i < ob.nmsgs; i++) {
		struct nmsg *m = ob.msgs[i];
		struct nendpoint *e = outbox_endpoint(&ob, m->endpoint);
		const char *murl = jget_str(m->doc, "url_env"), *mfmt = jget_str(m->doc, "format");
		if (e != NULL && (murl == NULL || strcmp(murl, e->url_env) == 0) &&
		    (mfmt == NULL || strcmp(mfmt, format_name(e->format)) == 0))
			queue_insert(e, m);
	}
	struct notify_counts c;
	outbox_counts(&ob, &c);
	unsigned retryable = outbox_retryable(&ob);
	json_t *eps = json_array();
	for (size_t i = 0; i < ob.neps; i++) {
		const struct nendpoint *e = &ob.eps[i];
		json_array_append_new(eps, json_pack("{s:I, s:s, s:s, s:s, s:o, s:o, s:I, s:I, s:I, s:I}", "index",
		                                     (json_int_t)e->index, "url_env", e->url_env, "format",
		                                     format_name(e->format), "state", e->state, "last_status",
		                                     e->last_status ? json_integer(e->last_status) : json_null(),
		                                     "last_error", journal_json_text(e->last_error), "sent",
		                                     (json_int_t)e->n[MSG_SENT], "pending", (json_int_t)e->n[MSG_PENDING],
		                                     "failed", (json_int_t)(e->n[MSG_FAILED] + e->n_unset), "unset",
		                                     (json_int_t)e->n_unset));
	}
	/* the lock file of an outbox nobody delivered is not left open: none was taken */
	outbox_close(&ob);
	return json_pack("{s:o, s:I, s:I, s:I, s:I, s:I}", "endpoints", eps, "sent", (json_int_t)c.sent, "pending",
	                 (json_int_t)c.pending, "failed", (json_int_t)(c.failed + c.unset), "unset", (json_int_t)c.unset,
	                 "retryable", (json_int_t)retryable);
}

/* ---------- notify test ---------- */

struct test_job {
	const struct plan *p;
	size_t             i;
	const char        *who;
	json_t            *row;
};

static void *
test_one(void *arg)
{
	struct test_job *t = arg;
	const struct plan_notify *pn = &t->p->notify[t->i];
	struct nendpoint e;
	endpoint_from_plan(&e, t->i, pn);
	long long t0 = time_monotonic_ms();
	char rnd[17];
	uint32_t r1 = random_u32(), r2 = random_u32();
	snprintf(rnd, sizeof rnd, "%08x%08x", (unsigned)r1, (unsigned)r2);
	char *id = xasprintf("test-%s", rnd);
	char *dedup = xasprintf("pgrunbook-test-%s", rnd);
	struct rb_event ev = { .type = EV_LOG, .message = "a test notification from pgrunbook notify test",
	                       .level = LOG_LEVEL_INFO };
	json_t *body = render_type(t->p, pn, "test", id, "test", t->who, &ev, -1, dedup);
	char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	json_decref(body);
	CURL *c = curl_easy_init();
	struct attempt a = {0};
	deliver(c, e.url_env, e.secret_env, e.events_url_env, e.format, id, text ? text : "{}", e.timeout_ms,
	        e.connect_timeout_ms, NULL, NULL, &a);
	bool ok = !a.not_sent && notify_classify(a.status) == NOTIFY_SENT;
	if (ok && pn->format == PLAN_NOTIFY_PAGERDUTY) {
		json_t *res = json_pack("{s:s, s:s, s:s}", "event_action", "resolve", "dedup_key", dedup, "client",
		                        "pgrunbook");
		char *rtext = json_dumps(res, JSON_COMPACT);
		json_decref(res);
		free(a.error);
		deliver(c, e.url_env, e.secret_env, e.events_url_env, e.format, id, rtext, e.timeout_ms,
		        e.connect_timeout_ms, NULL, NULL, &a);
		free(rtext);
		ok = !a.not_sent && notify_classify(a.status) == NOTIFY_SENT;
	}
	if (c)
		curl_easy_cleanup(c);
	json_t *error = ok ? json_null() : a.error ? journal_json_text(a.error) : json_sprintf("HTTP %ld", a.status);
	t->row = json_pack("{s:I, s:s, s:s, s:b, s:o, s:o, s:I}", "endpoint", (json_int_t)t->i, "url_env", e.url_env,
	                   "format", format_name(e.format), "ok", ok, "status",
	                   a.status ? json_integer(a.status) : json_null(), "error", error, "ms",
	                   (json_int_t)(time_monotonic_ms() - t0));
	free(a.error);
	free(text);
	free(id);
	free(dedup);
	endpoint_free(&e);
	return NULL;
}

json_t *
notify_test(const struct plan *p, const char *who)
{
	json_t *arr = json_array();
	size_t n = p ? p->nnotify : 0;
	if (n == 0)
		return arr;
	struct test_job *jobs = xcalloc(n, sizeof(*jobs));
	pthread_t *th = xcalloc(n, sizeof(*th));
	bool *started = xcalloc(n, sizeof(*started));
	sigset_t old;
	block_signals(&old);
	for (size_t i = 0; i < n; i++) {
		jobs[i] = (struct test_job){ .p = p, .i = i, .who = who };
		started[i] = pthread_create(&th[i], NULL, test_one, &jobs[i]) == 0;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	for (size_t i = 0; i < n; i++) {
		if (started[i])
			pthread_join(th[i], NULL);
		else
			test_one(&jobs[i]);   /* no thread: in this one */
		json_array_append_new(arr, jobs[i].row);
	}
	free(started);
	free(th);
	free(jobs);
	return arr;
}
