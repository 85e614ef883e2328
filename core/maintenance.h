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
 *                   fails); undo: off_command. Its output goes to the log, never to the journal.
 *   pgbouncer       PAUSE <db> on the admin console whose URI is in the variable named by
 *                   maintenance.pgbouncer_dsn_env (a password only from .pgpass/PGPASSFILE);
 *                   undo: RESUME <db>. Skipped without pgbouncer_dsn_env.
 *   block           (block_connections: true) new connections of everyone but pgrunbook:
 *                   when pgrunbook's role is a superuser, ALTER DATABASE .. CONNECTION LIMIT 0
 *                   (superusers, and so pgrunbook's own later stages, still connect; sessions of
 *                   other superuser roles are reported as not blocked); otherwise REVOKE CONNECT
 *                   ON DATABASE from PUBLIC and from every role holding it other than the
 *                   current one (the owner's own grant stays when pgrunbook is the owner; the
 *                   roles that keep CONNECT are reported). ALLOW_CONNECTIONS false is not used
 *                   here: it would also lock out pgrunbook's own migrate, sync and verify (it
 *                   is used by rollback's swap, where that is the point). undo: the previous
 *                   connection limit / every revoked grant re-granted (recorded first).
 *   read_only       (read_only: true) ALTER DATABASE .. SET default_transaction_read_only = on
 *                   (new sessions only); undo: the database's previous setting of it (reset when
 *                   there was none). pgrunbook's own sessions set it off (db_connect()).
 *   terminate       (terminate_sessions: ask) pg_terminate_backend() of the other sessions on the
 *                   database (client backends; not this connection, not sessions whose
 *                   application_name starts with "pgrunbook", which are listed as left alone).
 *                   Needs the phrase "terminate <N> sessions on <db>" where N is the number
 *                   listed; the list is taken again after block/read_only and when its number
 *                   differs the layer refuses with the new list (nothing terminated). No undo.
 *                   terminate_sessions: never skips it (remaining sessions only reported).
 *   marker          ALTER DATABASE .. SET pgrunbook.frozen_by = '<run id> <RFC 3339> <who>' when
 *                   the role may (a superuser; others lack SET on placeholder parameters, then the
 *                   freeze is recorded in the journal only and status says so); undo: RESET.
 *
 * Every layer's undo is journaled (fsync'd) before the layer is applied: a step
 *   {"kind": "freeze", "layer", "state": "applying", "undo": {...what off needs}, "database",
 *    "environment"}
 * then {"kind": "freeze", "layer", "state": "applied"|"failed"|"skipped", ...}. A thaw journals
 * {"kind": "thaw", "layer", "state": "undoing"} then "undone"|"failed"|"nothing". A freeze whose
 * layer fails is undone at once (the layers applied so far, in reverse) and the stage fails.
 *
 * Slipped writes: after the layers, the tuple counters (sum of n_tup_ins, n_tup_upd, n_tup_del
 * per user table from pg_stat_user_tables) and xact_commit of pg_stat_database are read, then
 * again after settle_ms; a table whose counters moved is a write that slipped through (reported
 * in the result and as a warn log, not a failure). The counters at freeze time are journaled so
 * status and off can report the writes since the freeze (which include pgrunbook's own
 * migrate/sync writes; the report says so).
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
 *    "counters": {"xact_commit", "tables": {"schema.table": n}}, "frozen_at"}.
 */
bool maint_on(const struct plan *p, const struct maint_opts *o, struct journal *j, struct rb_ctx *ctx,
              json_t **result, struct rb_error *err);

/*
 * maintenance off: undoes the layers of the freeze recorded in the journal of run (a run id or
 * directory; NULL: the newest run of this plan that froze the database and did not thaw it) in
 * reverse order, each undo journaled before it runs (stage "maintenance_off", in the journal of
 * the caller's run j). Undoing is idempotent: a layer already undone (a crash between the undo
 * and its record) is fine. Refuses (RB_EXIT_STEP) when no freeze is found for the database.
 * Reports the writes since the freeze (counters). *result: {"ok", "database", "run", "layers":
 * [{"layer", "state", "detail"}], "writes_since_freeze": {...}}.
 */
bool maint_off(const struct plan *p, const char *env, const char *run, const char *who, struct journal *j,
               struct rb_ctx *ctx, json_t **result, struct rb_error *err);

/*
 * The undo records of an unfinished freeze in a replayed run (layers with "applying" or
 * "applied" and no later "undone"), newest first, as JSON steps; an empty array when the run
 * froze nothing or thawed everything. resume uses it: a run killed during or after maintenance
 * on is thawed from here.
 */
json_t *maint_pending_undo(const struct run_state *st);

/*
 * maintenance status, read-only: {"database", "frozen": bool, "since", "run", "who",
 *  "layers": {"connection_limit", "revoked": [...], "read_only": bool, "marker": str|null},
 *  "writes_since_freeze": {...}|null, "sessions": n}
 * from the server's state (datconnlimit, grants, setconfig, the marker) and the runs directory
 * (a freeze journaled and not thawed). frozen is true when any layer is in place.
 */
bool maint_status(const struct plan *p, const char *env, const struct rb_ctx *ctx, json_t **status,
                  struct rb_error *err);

#endif
