/* maintenance.h: the layered write freeze of a database (maintenance on), its thaw (off) and status. */
#ifndef PGRUNBOOK_MAINTENANCE_H
#define PGRUNBOOK_MAINTENANCE_H

/*
 * A freeze is made of layers, applied in this order and undone in the reverse one:
 *
 *   hook_sql        maintenance.hooks.on_sql on the database (one simple-query batch, its own
 *                   transaction); undo: off_sql. Skipped when the plan has none.
 *   hook_command    maintenance.hooks.on_command through /bin/sh -c (environment: the caller's
 *                   plus PGRUNBOOK_DATABASE, PGRUNBOOK_ENVIRONMENT, PGRUNBOOK_RUN_ID; stdin
 *                   /dev/null; 60 s then SIGTERM, SIGKILL 5 s later; exit status 0 or the layer
 *                   fails); undo: off_command. Its output lines are progress events {"kind":
 *                   "hook_output", "line"} (shown, never journaled).
 *   pgbouncer       PAUSE <db> on the admin console whose URI is in the variable named by
 *                   the plan's maintenance.pgbouncer.admin_dsn_env (PQconnectdbParams of the
 *                   URI, no session settings: the console rejects SET; the pool must be named
 *                   like the database; 60 s limit). The variable is checked before any layer
 *                   is applied: unset or a URI carrying a password (passwords only from
 *                   .pgpass/PGPASSFILE) refuses the freeze, nothing changed. undo: RESUME <db>
 *                   ("not paused" is fine; "nothing" when PAUSE was never sent, e.g. the
 *                   console was unreachable). Skipped without maintenance.pgbouncer.
 *   block           (block_connections: true) new connections of everyone but pgrunbook:
 *                   when pgrunbook's role is a superuser, ALTER DATABASE .. CONNECTION LIMIT 0
 *                   (superusers, and so pgrunbook's own later stages, still connect; sessions of
 *                   other superuser roles are reported as not blocked); otherwise REVOKE CONNECT
 *                   ON DATABASE from PUBLIC and from every role holding it by a grant of the
 *                   current role, other than the current role itself (the owner's own grant
 *                   stays; grants by other grantors cannot be revoked by a non-superuser in
 *                   PG 15 and are reported as not blocked, with the superusers; a current role
 *                   holding CONNECT only through PUBLIC is refused: it would lock itself out).
 *                   A NULL datacl comes back as its explicit equivalent. ALLOW_CONNECTIONS false is not used
 *                   here: it would also lock out pgrunbook's own migrate, sync and verify (it
 *                   is used by rollback's swap, where that is the point). undo: the previous
 *                   connection limit / every revoked grant re-granted (recorded first).
 *   read_only       (read_only: true) ALTER DATABASE .. SET default_transaction_read_only = on
 *                   (new sessions only); undo: the database's previous setting of it (reset when
 *                   there was none). pgrunbook's own sessions set it off (db_connect()).
 *   terminate       (terminate_sessions: ask) pg_terminate_backend() of the other sessions on the
 *                   database (client backends; not this connection, not sessions whose
 *                   application_name starts with "pgrunbook", which are left alone).
 *                   Needs the phrase "terminate <N> sessions on <db>" where N is the number
 *                   listed; the list is taken again after block/read_only: a session that was
 *                   not in the confirmed list makes the layer refuse with the new list (nothing
 *                   terminated); sessions that ended meanwhile (pgbouncer's server connections,
 *                   closed by PAUSE) are fine, the rest is terminated. No undo.
 *                   terminate_sessions: never skips it (remaining sessions only reported).
 *   marker          ALTER DATABASE .. SET pgrunbook.frozen_by = '<run id> <RFC 3339> <who>' when
 *                   the role may (a superuser; others lack SET on placeholder parameters, then the
 *                   freeze is recorded in the journal only and status says so); undo: RESET.
 *
 * Every layer's undo is journaled (fsync'd) before the layer is applied: a step
 *   {"kind": "freeze", "layer", "state": "applying", "undo": {...what off needs}|null, "database",
 *    "environment", "server" ("host:port" as connected), "freeze_at" (RFC 3339, one per freeze:
 *    with the run id it names the freeze), "who"}
 * then {"kind": "freeze", "layer", "state": "applied"|"failed"|"skipped"|"refused", ...}; the
 * step is emitted on ctx->bus and journal_failed(j) is checked before the layer is applied (a
 * broken journal: the layer is not applied). undo per layer: hook_sql {"off_sql"},
 * hook_command {"off_command"}, pgbouncer {"dsn_env", "pool"} (the variable's name, never the
 * URI), block {"method": "connection_limit", "connection_limit"} or {"method": "revoke",
 * "grants": [{"grantee" ("PUBLIC" or a role), "grantor", "grantable"}]}, read_only
 * {"previous": value|null}, marker {"reset"}; terminate null. A thaw journals
 * {"kind": "thaw", "layer", "state": "undoing", "freeze_run", "freeze_at", "who", ...} then
 * "undone"|"failed"|"nothing"; a freeze counts as thawed layer by layer when any run's journal
 * has its thaw "undone" or "nothing". A freeze whose layer fails is undone at once (the layers
 * applied so far and the failed one, which may have partly happened, newest first; stage
 * "maintenance") and the stage fails. After the layers a step {"kind": "freeze_counters",
 * "counters", "freeze_at", ...} records the write counters at freeze time.
 *
 * Locks: the statements of the layers and their undo (ALTER DATABASE, GRANT, REVOKE) run with
 * lock_timeout 10 s (a blocking transaction fails the layer; the error lists the open write
 * transactions) and are run again (up to 3 times) on "tuple concurrently updated". maint_on
 * holds the session advisory lock (1886876258 "pgrb", the database's oid) from its check to its
 * last layer (pg_try_advisory_lock: a second freeze is refused at once, naming the holder);
 * maint_off and maint_thaw_records take it too, waiting up to 10 s. Before they thaw a freeze of
 * a run no live process has open, they pg_terminate_backend() the sessions on the database
 * named pgrunbook* still running ALTER DATABASE, GRANT or REVOKE (a killed pgrunbook's freeze
 * statement waiting on a lock would otherwise land after the thaw). The connection limit undo
 * always runs its ALTER when the limit is 0 or the recorded one; a layer already gone (another
 * limit set by hand, default_transaction_read_only no longer on, no marker) is "nothing".
 *
 * Slipped writes: after the layers, the tuple counters (sum of n_tup_ins, n_tup_upd, n_tup_del
 * per user table from pg_stat_user_tables), xact_commit of pg_stat_database and the database's
 * oid ("database_oid") are read, then
 * again after settle_ms; a table whose counters moved is a write that slipped through (reported
 * in the result and as a warn log, not a failure). The counters at freeze time are journaled so
 * status and off can report the writes since the freeze (which include pgrunbook's own
 * migrate/sync writes; the report says so). Counters of another oid (the database replaced by a
 * restore) or that went back (statistics reset) are not compared: writes_since_freeze is then
 * {"since", "comparable": false, "error": "not comparable (the database was replaced)" or
 * "... (the statistics were reset)"}; no count is ever negative.
 */

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "ctx.h"
#include "error.h"
#include "journal.h"
#include "plan.h"

#define MAINT_STAGE_ON  "maintenance"
#define MAINT_STAGE_OFF "maintenance_off"

/* The phrase for maintenance on: "freeze <db>". */
#define MAINT_VERB "freeze"

struct maint_opts {
	const char *env;             /* NULL: the plan's target */
	const char *confirm;         /* the typed "freeze <db>", or NULL */
	const char *confirm_terminate; /* the typed "terminate <N> sessions on <db>", or NULL */
	const char *who;             /* $USER, for the marker and the journal */
	const char *run_id;          /* for the marker and the hooks; may be NULL */
	int64_t     settle_ms;       /* slipped-write observation; 0: 2000 */
};

/*
 * Sessions on the database other than pgrunbook's (see "terminate"), for the confirmation that
 * lists them: [{"pid", "user", "application", "client", "state", "backend_start",
 * "xact_start", "query" (first 200 characters, hidden when it mentions a password)}], and the
 * phrase that terminating them needs. Connects to env read-only. Caller decrefs *sessions
 * and frees *phrase.
 */
bool maint_sessions(const struct plan *p, const char *env, const struct rb_ctx *ctx, json_t **sessions,
                    char **phrase, struct rb_error *err);

/*
 * maintenance on: checks opts->confirm ("freeze <db>", confirm_check(): journaled) then applies
 * the plan's layers in order (above), journaling each undo first. Events, stage "maintenance":
 * stage_started, the steps, stage_result (maint_result below), stage_done / stage_failed.
 * Refuses (RB_EXIT_STEP, nothing changed) on a wrong phrase, a database already frozen by
 * another run (marker or a journal freeze of another open run), no maintenance section
 * (RB_EXIT_PLAN), or terminate needing its phrase (err->detail lists the sessions, the hint
 * gives the phrase). *result (may be NULL) always receives
 *   {"ok", "environment", "database", "layers": [{"layer", "state", "detail"}],
 *    "terminated": [pids], "not_blocked": [roles or sessions that can still connect],
 *    "slipped": [{"table", "inserted", "updated", "deleted"}], "xact_commit_delta",
 *    "counters": {"xact_commit", "tables": {"schema.table": n}, "changes": {"schema.table":
 *    [inserted, updated, deleted]}}, "frozen_at", "run"}.
 */
bool maint_on(const struct plan *p, const struct maint_opts *o, struct journal *j, struct rb_ctx *ctx,
              json_t **result, struct rb_error *err);

/*
 * maintenance off: undoes the layers of the freeze recorded in the journal of run (a run id,
 * prefix or directory; NULL: the newest freeze (greatest freeze_at) of this database on this
 * server, by any run, that no run has thawed; found with journal_list_runs()) in reverse order, each undo journaled before it runs (stage "maintenance_off", in the journal of
 * the caller's run j). Undoing is idempotent: a layer already undone (a crash between the undo
 * and its record) is fine. Refuses (RB_EXIT_STEP) when no freeze is found for the database.
 * Reports the writes since the freeze (counters). *result: {"ok", "database", "run", "layers":
 * [{"layer", "state", "detail"}], "writes_since_freeze": {"since", "xact_commit_delta", "tables":
 * [{"table", "inserted", "updated", "deleted"}], "note"}|null, "frozen_at", "environment"}.
 */
bool maint_off(const struct plan *p, const char *env, const char *run, const char *who, struct journal *j,
               struct rb_ctx *ctx, json_t **result, struct rb_error *err);

/*
 * The undo records of an unfinished freeze in a replayed run: the data of every freeze step
 * with state "applying" and an undo (terminate has none) that no thaw step of this same run
 * marked "undone" or "nothing" (matched by freeze_run, freeze_at and layer), newest first, each
 * with "freeze_run" (st->id) added; an empty array when the run froze nothing or thawed
 * everything. Caller decrefs. Thaws journaled by other runs (maintenance off) are not seen
 * here: maint_thaw_records() skips those. resume uses the pair: a run killed during or after
 * maintenance on is thawed from here.
 */
json_t *maint_pending_undo(const struct run_state *st);

/*
 * Undoes the freeze records in undo (a JSON array as maint_pending_undo() returns, newest first:
 * each a freeze "applying" step's data plus "freeze_run") on env's database (NULL: the target),
 * in the given order, each undo journaled before it runs as a thaw step (stage "maintenance_off",
 * data "freeze_run", "freeze_at", "layer", "state") through ctx->bus; j (may be NULL) is only
 * checked for a broken journal and gives the run id. Emits no stage_started/done: the caller
 * owns the stage. A record that some run's journal already shows thawed is skipped (state
 * "thawed" in the result, nothing journaled): the database may have been frozen again since.
 * Undoing is idempotent (a layer already undone, a pgbouncer not paused, a marker not set are
 * "nothing"), so "applying" records left by a crash are fine; a record for another database
 * fails. Every record is tried even after one failed (unless the journal broke). *result (may be NULL): {"ok", "database", "layers":
 * [{"layer", "state", "detail"}]}. False with err (the first failure) when any layer failed.
 */
bool maint_thaw_records(const struct plan *p, const char *env, json_t *undo, const char *who, struct journal *j,
                        struct rb_ctx *ctx, json_t **result, struct rb_error *err);

/*
 * maintenance status, read-only, journals nothing: {"database", "environment", "frozen": bool,
 *  "layers_in_place": ["block", "read_only", "marker"], "journal": bool, "journal_freeze":
 *  {"run", "since", "who"}|null, "disagreement": str (only when they disagree), "since", "run",
 *  "who", "pending_layers": [layer names to undo], "layers": {"connection_limit", "revoked":
 *  [grantees], "read_only": bool, "marker": str|null}, "writes_since_freeze": {...}|null,
 *  "sessions": n (other sessions, as maint_sessions())}
 * from the server's state (datconnlimit, the grants, setconfig, the marker) and the runs
 * directory (the newest freeze, by freeze_at, of this database on this server that no run has
 * thawed: "journal" true, journal_freeze, revoked from its block undo). layers_in_place: the
 * journal freeze's block (connection limit 0 where the recorded one was not, or a revoked
 * grantee without CONNECT) and read_only (on) layers as the server shows them, and the marker;
 * with the marker and no journal freeze, a connection limit 0 and read-only on count too.
 * frozen is true only when a layer is in place, or when the journal freeze has only layers the
 * server cannot show (hooks, pgbouncer). A journal freeze with no layer in place: frozen false,
 * "disagreement": "journaled freeze of run X but no layer in place: thawed outside pgrunbook
 * ...". since, run and who: the journal freeze's when frozen, else the marker's, else null. A
 * connection limit or read-only setting of the database's own is not a freeze. Caller decrefs
 * *status.
 */
bool maint_status(const struct plan *p, const char *env, const struct rb_ctx *ctx, json_t **status,
                  struct rb_error *err);

#endif
