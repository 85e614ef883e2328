/*
 * notify.h: webhook notifications of a run's events (issue 8). The bus subscriber renders each
 * selected event into an on-disk outbox in the run directory; one sender thread per endpoint
 * delivers that endpoint's messages with libcurl (a slow or hanging endpoint holds up no other).
 * The run never waits on the network or on a sender: the subscriber renders the payload and queues
 * it; a writer thread writes the files without the lock the subscriber takes (after stop, with no
 * writer left, a late event's file is written by the subscriber itself).
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
 * Outbox: <run dir>/outbox/ (mode 0700). endpoints.json ({"run_id", "starts", "endpoints": [...]})
 * holds each endpoint's settings by name (index, url_env, secret_env, events_url_env, format,
 * timeout_ms, connect_timeout_ms, max_attempts, backoff_ms, and its state: "ok" | "failing" |
 * "rejected" | "gone" | "unset", with the last HTTP status / error), so `notify flush` needs no
 * plan; it is small (no message lists) and rewritten only when an endpoint's state changes, and
 * durably (fsync) when a notifier starts: "starts" counts the notifier starts of the run, this one
 * included. Each delivery is one file "<seq, 8 digits>-<endpoint index>.json" (mode 0600; written
 * to a temporary file and renamed, WITHOUT fsync: a crash of pgrunbook loses nothing, since the
 * page cache survives it, but a power loss may lose the newest messages and states; the journal
 * keeps every event) holding
 *   {"id": "<run_id>.<start>.<seq>", "seq", "endpoint", "url_env", "format",
 *    "event": "<journal type>", "stage": string|null, "created": RFC 3339 UTC with ms,
 *    "state": "pending" | "sent" | "failed", "failure": "attempts" | "unset" | "rejected" | "gone" |
 *    "unconfigured" | null (why it failed), "attempts", "next_attempt": RFC 3339|null,
 *    "last_status": HTTP status|null, "last_error": string|null, "sent_at": RFC 3339|null,
 *    "body": <the JSON payload>}
 * The body is rendered once, when the event happens, and sent unchanged on every attempt (for
 * pagerduty the routing key is added at send time and is not in the stored body). seq counts the
 * run's notified events (one seq per event, shared by its endpoints); a resumed run continues
 * after the highest seq in the outbox (file names and order). <start> is the notifier start that
 * wrote the message (endpoints.json "starts"), so an id is never used twice for different events,
 * even when message files were lost. The outbox is locked (flock on outbox/.lock) by the process
 * delivering it. A file that cannot be written is counted (write_errors, the status line) and the
 * message is still delivered from memory.
 *
 * Delivery: each endpoint by its own sender thread, in seq order (a message being retried holds
 * back the later ones of its endpoint, never another endpoint's); at least once, with the same id
 * on every attempt and after a restart. Outcomes of an attempt:
 *   2xx                              sent
 *   408, 429, 5xx, timeout, connect error, reset
 *                                    retry after backoff * 2^(attempt-1) (at most 10 min) with
 *                                    full jitter (a random delay from half of it to all of it); on
 *                                    429 and 503 the delay is the longer of that and the
 *                                    Retry-After (seconds or an HTTP date, at most 1 h), so a
 *                                    "Retry-After: 0" cannot make it hammer the endpoint; after
 *                                    max_attempts: failed
 *   410                              the message failed and the endpoint is "gone": its later
 *                                    messages are failed without a request
 *   3xx                              not followed: the message failed at once, the endpoint
 *                                    "rejected", with the error "HTTP 302: redirects are not
 *                                    followed; give the final URL"
 *   other 4xx                        the message failed at once (no retry), the endpoint flagged
 *                                    "rejected" (later messages are still tried)
 * A retry or failure flags the endpoint "failing" until its next success. A resumed run (a new
 * notifier of the same run) keeps an endpoint's saved "gone" or "rejected" state (with its last
 * status and error) when the endpoint has the same index, url_env and format.
 *
 * Unset variables: an endpoint whose url_env (or secret_env, or events_url_env) is unset or empty,
 * or whose secret is not "whsec_<base64>", is in state "unset"; its messages are recorded failed
 * ("failure": "unset") without a request, with last_error "<VAR> is not set" (or "... is not a
 * Standard Webhooks secret ..."). They are counted in `unset`, not `failed`, and the endpoint in
 * unset_endpoints, not failing_endpoints. `notify flush` sends them once the variable is set.
 *
 * Payloads (who: the run's user; duration: stage_done and stage_failed since the stage's
 * stage_started, run_finished since run_started when the notifier saw it (else since the notifier
 * started), rollback_done since rollback_started, over_budget its data's elapsed_ms; environment
 * and database: the plan's target's, or for stage "staging" the plan's staging environment's):
 *   generic   {"id", "type": event, "timestamp": RFC 3339, "run_id", "plan", "environment",
 *              "database", "stage", "result": the result word ("done", "failed", "waiting", ...),
 *              "message", "level", "who", "duration_ms"|null, "data"}
 *             with headers webhook-id (the id), webhook-timestamp (unix seconds of the attempt) and,
 *             with secret_env, webhook-signature "v1,<base64 HMAC-SHA256 of id.timestamp.body>"
 *             keyed with the secret's base64-decoded bytes (Standard Webhooks).
 *   slack     {"text": one line, "<plan name>: <stage, or run, rollback> <result>[ in <duration>]
 *              (<environment>, by <who>)[: <message>]" (durations as time_format_elapsed(): "850 ms",
 *              "12.5 s", "3 min 07 s"; the message of run_finished, stage_failed, confirm_needed,
 *              over_budget, rollback_done, log, stage_result and step, cut at 300 bytes with "…"),
 *              "blocks": [a header section with that line and a fields section: Plan, Environment,
 *              Stage, Result, Duration, Who, Run]}. mrkdwn: & < > escaped; in names (plan,
 *              environment, stage, who, run) * _ ~ ` are shown as their fullwidth forms ＊ ＿ ～ ｀
 *              so they format nothing. Block Kit limits: the section text at most 3000 bytes, each
 *              field at most 2000, at most 10 fields; longer text is cut (never inside a UTF-8
 *              character or an &entity;) and ends in "…".
 *   pagerduty Events API v2: stage_failed and confirm_needed trigger (severity error / warning),
 *             rollback_done and run_finished with state done resolve (a rollback_done with "ok": false
 *             triggers, severity error); dedup_key "pgrunbook-<run_id>" for the whole run, except
 *             in a rollback run: rollback_started, rollback_done and that run's run_finished use
 *             "pgrunbook-<the rolled-back run id>" (rollback events' data "run"), so a successful
 *             rollback resolves the failed release's incident. "component" is the stage (left out
 *             when there is none). Other events are not sent to a pagerduty endpoint.
 *   A stage_failed whose data has "waiting" (the headless run's sync stage waiting for a review,
 *   right after its confirm_needed) is not a failure: its result word is "waiting" ("sync waits
 *   for a review"), and it is not sent to a pagerduty endpoint (the confirm_needed triggered).
 */
#ifndef PGRUNBOOK_NOTIFY_H
#define PGRUNBOOK_NOTIFY_H

#include <jansson.h>
#include <stdatomic.h>
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
	unsigned failed;              /* gave up: max_attempts, 3xx, 4xx, 410, endpoint gone (not unset) */
	unsigned unset;               /* not sent: the endpoint's variable is unset, empty or malformed */
	unsigned endpoints;
	unsigned failing_endpoints;   /* endpoints "failing", "rejected" or "gone" (not "unset") */
	unsigned unset_endpoints;     /* endpoints "unset" */
	unsigned write_errors;        /* messages or states that could not be written to the outbox */
};

struct notifier;

/*
 * Opens (creating it when needed) the outbox of the run in run_dir for p's notify endpoints, counts
 * this start in endpoints.json, and starts one sender thread per endpoint; messages an earlier
 * process of the run left pending are delivered too. An endpoint whose url_env (or secret_env, or
 * events_url_env) variable is unset or empty, or whose secret is not "whsec_<base64>", is "unset"
 * at once: each such problem is appended to *warnings (one line naming notify[i] and the variable,
 * never a value) for the caller to log, and that endpoint's messages are recorded failed without
 * a request. who: the run's user. Returns NULL with err set when the outbox cannot be created or
 * written, or is locked by another live process; call only when p->nnotify > 0.
 */
struct notifier *notifier_start(const struct plan *p, const char *run_dir, const char *run_id, const char *who,
                                struct strlist *warnings, struct rb_error *err);
/*
 * The bus subscriber (userdata: the notifier). Selects the event for each endpoint, renders the
 * payload, queues it for the writer thread (no fsync) and wakes that endpoint's sender; never
 * waits on the network or a sender's writes. Errors writing the outbox are counted (write_errors;
 * notifier_status_line() says so with the first one's text: the path and strerror), never raised
 * on the bus.
 */
void notifier_event_fn(const struct rb_event *ev, void *userdata);
/* The counts now; thread-safe. */
void notifier_counts(struct notifier *n, struct notify_counts *out);
/*
 * One line for a status bar: "notify: 4 sent, 1 pending" (", 2 failed" when some failed), then
 * "; 3 outbox write errors: could not write <path>: <strerror>" when files could not be written,
 * "; notify[0] (SLACK_URL) failing: HTTP 500" for the first endpoint failing, rejected or gone (its
 * last error, else its last HTTP status; "+N more"), and "; SLACK_WEBHOOK_URL not set (3 not
 * sent)" for the first unset endpoint ("+N more"). E.g. "notify: 4 sent, 1 pending; notify[0]
 * (SLACK_URL) failing: HTTP 500; SLACK_WEBHOOK_URL not set (3 not sent)". Caller frees.
 */
char *notifier_status_line(struct notifier *n);
/*
 * Lets the senders deliver what is due within drain_ms (retries that fall due in that time too;
 * each endpoint's in parallel, a request in flight is cut at the end), then stops them and
 * releases the outbox lock; what is left stays in the outbox for `pgrunbook notify flush`. *out
 * (may be NULL) gets the final counts. Returns the final status line (caller frees): the status
 * line with the failed count always ("notify: 5 sent, 0 pending, 0 failed") and, when messages
 * are pending or failed for want of attempts, "; deliver the rest with: pgrunbook notify flush
 * <run id>". Frees n. n may be NULL (returns NULL).
 */
char *notifier_stop(struct notifier *n, int64_t drain_ms, struct notify_counts *out);
/*
 * From then on, a nonzero *flag (set by a signal handler: it is only read) ends the drain of
 * notifier_stop() at once: requests in flight are cut, and every message is still written to the
 * outbox before notifier_stop() returns, for `pgrunbook notify flush`.
 */
void notifier_cancel_on(struct notifier *n, atomic_int *flag);
/* The drain a command should allow at its end: the longest endpoint timeout plus 2 s, at most 10 s. */
int64_t notify_drain_ms(const struct plan *p);

/*
 * `pgrunbook notify flush`: delivers the outbox of the run in run_dir (one sender thread per
 * endpoint, as the notifier; same ids, the settings from endpoints.json, the URLs and secrets from
 * the environment now), following the retry rules, until every message is sent or failed or
 * max_wait_ms has passed. Messages that failed for want of attempts, or of a variable that is set
 * now, get max_attempts more; those refused (3xx, 4xx) and "gone" endpoints' are not retried.
 * Returns false with err (code RB_EXIT_STEP; the run named by its id, the last part of run_dir)
 * when the run has no outbox or its lock is held (another process is delivering it).
 */
bool notify_flush(const char *run_dir, int64_t max_wait_ms, struct notify_counts *out, struct rb_error *err);

/*
 * What the outbox of the run in run_dir holds, read without its lock (the report, `notify flush`
 * choosing a run): {"endpoints": [{"index", "url_env", "format", "state", "last_status",
 * "last_error", "sent", "pending", "failed", "unset"}], "sent", "pending", "failed", "unset",
 * "retryable"}; "failed" counts every failed message, "unset" of those the ones not sent for a
 * variable, "retryable" the failed messages a flush would send again now (failed for want of
 * attempts, or of a variable that is set now; not 3xx/4xx, not a gone endpoint's). NULL when the
 * run has no outbox. Caller decrefs.
 */
json_t *notify_outbox_summary(const char *run_dir);

/*
 * `pgrunbook notify test`: one event of type "test" to each endpoint of p, now, the endpoints in
 * parallel (one thread each; the call takes the slowest one's time), one attempt each, no
 * outbox; who: the user to name (the caller's, util_user_name()). Returns a JSON array, one object per endpoint:
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
