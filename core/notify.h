/*
 * notify.h: webhook notifications of a run's events (issue 8). The bus subscriber renders each
 * selected event into an on-disk outbox in the run directory; a sender thread delivers the outbox
 * with libcurl. The run never waits on the network: the subscriber only writes a small file.
 *
 * Endpoints (plan "notify", see pgrunbook-plan(5)): url_env names the variable holding the URL
 * (pagerduty: the routing key; the Events API URL is https://events.pagerduty.com/v2/enqueue or
 * the URL in the variable events_url_env names), format slack | generic | pagerduty, events (the
 * default set below when left out), secret_env (generic: a Standard Webhooks secret
 * "whsec_<base64 key>"), timeout (per attempt, total; default 10s), connect_timeout (default 5s),
 * max_attempts (default 10), backoff (the first retry's delay; default 1s).
 *
 * Secrets: URLs, routing keys and secrets are read from the environment when a request is made and
 * never written anywhere: not in the outbox, the journal, an error message, a log line or argv.
 * Errors name the endpoint as "notify[<i>] (<url_env>)" and use curl_easy_strerror() texts (never
 * libcurl's error buffer, which can hold the URL).
 *
 * Outbox: <run dir>/outbox/ (mode 0700). endpoints.json holds each endpoint's settings by name
 * (index, url_env, secret_env, events_url_env, format, timeout_ms, connect_timeout_ms,
 * max_attempts, backoff_ms, and its state: "ok" | "failing" | "rejected" | "gone", with the last
 * HTTP status / error), so `notify flush` needs no plan. Each delivery is one file
 * "<seq, 8 digits>-<endpoint index>.json" (mode 0600; written to a temporary file, fsync'd,
 * renamed, the directory fsync'd) holding
 *   {"id": "<run_id>.<seq>", "seq", "endpoint", "url_env", "format", "event": "<journal type>",
 *    "stage": string|null, "created": RFC 3339 UTC with ms, "state": "pending" | "sent" | "failed",
 *    "attempts", "next_attempt": RFC 3339|null, "last_status": HTTP status|null,
 *    "last_error": string|null, "sent_at": RFC 3339|null, "body": <the JSON payload>}
 * The body is rendered once, when the event happens, and sent unchanged on every attempt (for
 * pagerduty the routing key is added at send time and is not in the stored body). seq counts the
 * run's notified events (one seq per event, shared by its endpoints); a resumed run continues
 * after the highest seq in the outbox. The outbox is locked (flock on outbox/.lock) by the process
 * delivering it.
 *
 * Delivery: per endpoint in seq order (a message being retried holds back the later ones of its
 * endpoint, never another endpoint's); at least once, with the same id on every attempt and after
 * a restart. Outcomes of an attempt:
 *   2xx                              sent
 *   408, 429, 5xx, timeout, connect error, reset
 *                                    retry after backoff * 2^(attempt-1) (at most 10 min) with
 *                                    full jitter (a random delay from half of it to all of it); on
 *                                    429 and 503 a Retry-After (seconds or an HTTP date) is
 *                                    honoured instead, at most 1 h; after max_attempts: failed
 *   410                              the message failed and the endpoint is "gone": its later
 *                                    messages are failed without a request
 *   other 4xx                        the message failed at once (no retry), the endpoint flagged
 *                                    "rejected" (later messages are still tried)
 * A retry or failure flags the endpoint "failing" until its next success.
 *
 * Payloads (who: the run's user; duration: since the stage's stage_started in this run, ms):
 *   generic   {"id", "type": event, "timestamp": RFC 3339, "run_id", "plan", "environment",
 *              "database", "stage", "message", "level", "who", "duration_ms"|null, "data"}
 *             with headers webhook-id (the id), webhook-timestamp (unix seconds of the attempt) and,
 *             with secret_env, webhook-signature "v1,<base64 HMAC-SHA256 of id.timestamp.body>"
 *             keyed with the secret's base64-decoded bytes (Standard Webhooks).
 *   slack     {"text": one line (plan, stage, result, duration, who), "blocks": [a header section
 *              and a fields section: Plan, Environment, Stage, Result, Duration, Who, Run]}
 *   pagerduty Events API v2: stage_failed and confirm_needed trigger (severity error / warning),
 *             rollback_done and run_finished with state done resolve (a rollback_done with "ok": false
 *             triggers, severity error); dedup_key "pgrunbook-<run_id>" for the whole run; other
 *             events are not sent to a pagerduty endpoint.
 */
#ifndef PGRUNBOOK_NOTIFY_H
#define PGRUNBOOK_NOTIFY_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "error.h"
#include "events.h"
#include "plan.h"
#include "util.h"

/* Sent when an endpoint names no events (stage_result, step, log and progress are too frequent). */
#define NOTIFY_DEFAULT_EVENTS \
	"run_finished stage_started stage_done stage_failed confirm_needed over_budget rollback_started rollback_done"

struct notify_counts {
	unsigned sent;
	unsigned pending;             /* waiting for an attempt (retries included) */
	unsigned failed;              /* gave up: max_attempts, 4xx, 410, endpoint gone or unset */
	unsigned endpoints;
	unsigned failing_endpoints;   /* endpoints not "ok" */
};

struct notifier;

/*
 * Opens (creating it when needed) the outbox of the run in run_dir for p's notify endpoints and
 * starts the sender thread; messages an earlier process of the run left pending are delivered too.
 * An endpoint whose url_env (or secret_env, or events_url_env) variable is unset or empty, or whose
 * secret is not "whsec_<base64>", is flagged at once: each such problem is appended to *warnings
 * (one line naming notify[i] and the variable, never a value) for the caller to log, and that
 * endpoint's messages fail without a request. who: the run's user. Returns NULL with err set when
 * the outbox cannot be created or is locked by another live process; call only when p->nnotify > 0.
 */
struct notifier *notifier_start(const struct plan *p, const char *run_dir, const char *run_id, const char *who,
                                struct strlist *warnings, struct rb_error *err);
/*
 * The bus subscriber (userdata: the notifier). Selects the event for each endpoint, renders the
 * payload, writes the message file and wakes the sender; never waits on the network. Errors
 * writing the outbox are counted (notifier_status_line() says so), never raised on the bus.
 */
void notifier_event_fn(const struct rb_event *ev, void *userdata);
/* The counts now; thread-safe. */
void notifier_counts(struct notifier *n, struct notify_counts *out);
/*
 * One line for a status bar or the end of a command: "notify: 4 sent, 1 pending" and, when an
 * endpoint is not ok, "; notify[0] (SLACK_URL) failing: HTTP 500" (the first such endpoint, and
 * "+N more"). Caller frees.
 */
char *notifier_status_line(struct notifier *n);
/*
 * Lets the sender deliver what is due within drain_ms (retries that fall due in that time too),
 * then stops the thread and releases the outbox lock; what is left stays in the outbox for
 * `pgrunbook notify flush`. *out (may be NULL) gets the final counts. Frees n. n may be NULL.
 */
void notifier_stop(struct notifier *n, int64_t drain_ms, struct notify_counts *out);
/* The drain a command should allow at its end: the longest endpoint timeout plus 2 s. */
int64_t notify_drain_ms(const struct plan *p);

/*
 * `pgrunbook notify flush`: delivers the outbox of the run in run_dir in this thread (same ids,
 * the settings from endpoints.json, the URLs and secrets from the environment now), following
 * the retry rules, until every message is sent or failed or max_wait_ms has passed. Messages that
 * failed for max_attempts get max_attempts more; "gone" endpoints are not retried. Returns false
 * with err when the run has no outbox or its lock is held (another process is delivering it).
 */
bool notify_flush(const char *run_dir, int64_t max_wait_ms, struct notify_counts *out, struct rb_error *err);

/*
 * What the outbox of the run in run_dir holds, read without its lock (the report, `notify flush`
 * choosing a run): {"endpoints": [{"index", "url_env", "format", "state", "last_status",
 * "last_error", "sent", "pending", "failed"}], "sent", "pending", "failed"}; NULL when the run has
 * no outbox. Caller decrefs.
 */
json_t *notify_outbox_summary(const char *run_dir);

/*
 * `pgrunbook notify test`: one event of type "test" to each endpoint of p, now, in this thread,
 * one attempt each, no outbox. Returns a JSON array, one object per endpoint:
 * {"endpoint", "url_env", "format", "ok", "status": HTTP status|null, "error": string|null,
 *  "ms": elapsed}. For pagerduty the test is a trigger followed by its resolve (dedup key
 * "pgrunbook-test-<random>"), so no incident stays open.
 */
json_t *notify_test(const struct plan *p, const char *who);

/* --- exposed for the unit tests --- */

/* The event's payload for endpoint e (NULL when the format does not send this event type). */
json_t *notify_render(const struct plan *p, const struct plan_notify *e, const char *run_id, const char *id,
                      const char *who, const struct rb_event *ev, int64_t duration_ms);
/* "v1,<base64 HMAC-SHA256>" over "<id>.<ts>.<body>" with secret "whsec_<base64>"; NULL on a bad secret. */
char *notify_sign(const char *secret, const char *id, long long ts, const char *body);
/* The delay before retry number attempt (1 = the first retry): backoff*2^(attempt-1) capped at
 * 10 min, jittered into [half, all] of it by rnd (0..UINT32_MAX). */
int64_t notify_backoff_ms(int64_t backoff_ms, int attempt, uint32_t rnd);
/* A Retry-After value (delta seconds or an IMF-fixdate) as ms from now, capped at 1 h; false when unparsable. */
bool notify_parse_retry_after(const char *value, time_t now, int64_t *ms);

enum notify_outcome { NOTIFY_SENT, NOTIFY_RETRY, NOTIFY_REJECTED, NOTIFY_GONE };
/* An attempt's outcome from its HTTP status (0: no response: timeout, connect error, reset). */
enum notify_outcome notify_classify(long http_status);

#endif
