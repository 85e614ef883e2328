/* deploy.h: applies pending Prisma migrations the way Prisma's engine records them, with lock discipline. */
#ifndef PGRUNBOOK_DEPLOY_H
#define PGRUNBOOK_DEPLOY_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "ctx.h"
#include "error.h"
#include "lint.h"
#include "migrations.h"
#include "plan.h"

/* Prisma's advisory lock key: pgrunbook and `prisma migrate deploy` exclude each other. */
#define DEPLOY_ADVISORY_KEY 72707369

/*
 * What a deploy of an environment would do, computed without changing anything: the folder, its
 * status in the database, each migration linted. Lint needs no database; a syntax error in a
 * pending migration is reported before anything connects.
 */
struct deploy_preview {
	char              *env;        /* the environment's name */
	char              *database;   /* its database name (PQdb), for the phrase */
	char              *phrase;     /* "deploy <database>": what dangerous migrations need */
	struct mig_set     local;
	struct mig_status  status;     /* items[0..local.n) follow local.items' order */
	struct lint_result *lint;      /* local.n of them, index-aligned with local.items */
	size_t             n_pending;
	bool               dangerous;  /* a pending migration holds a dangerous statement */
	char              *blocked;    /* why a deploy would refuse to start (a failed, modified or
	                                  missing-locally migration), or NULL */
	int                lock_holder;/* pid holding the migration lock now, 0 when free */
	bool               in_progress;/* blocked only by unfinished rows while another session
	                                  holds the lock: most likely that deploy at work (deploy_run
	                                  waits for the lock and judges again) */
};

/*
 * Fills out (always initialised; free with deploy_preview_free()). Connects to env (the plan's
 * target when NULL), read-only. False with err set when the folder cannot be read, a pending
 * migration does not parse (err: "<migration>:<line>:<column>: ..."), or the database cannot be
 * reached; a blocked deploy is not an error here (see `blocked`).
 */
bool deploy_preview(const struct plan *p, const char *env, const struct rb_ctx *ctx,
                    struct deploy_preview *out, struct rb_error *err);
void deploy_preview_free(struct deploy_preview *pv);
/*
 * {"environment", "database", "phrase", "pending": n, "dangerous": bool, "blocked": str|null,
 *  "migrations": [{"name", "state", "class", "needs_statement_mode", "statements": [lint...]}]}
 */
json_t *deploy_preview_json(const struct deploy_preview *pv);

struct deploy_opts {
	const char *env;             /* NULL: the plan's target */
	const char *confirm;         /* the typed "deploy <db>" phrase, or NULL */
	/*
	 * The backup precondition (DESIGN.md "Preconditions"): true when the caller already knows the
	 * run has a verified backup of this target or a journaled waiver (the wizard). Otherwise
	 * waive_backup must be the typed phrase "waive-backup <db>", checked and journaled here.
	 */
	bool        backup_ok;
	const char *waive_backup;
	int64_t     advisory_wait_ms;  /* how long to poll for the advisory lock; 0: 10 s */
	/*
	 * When not NULL: the pending migrations the person was shown when they confirmed. If the
	 * pending set found under the lock differs (a migration added, or applied by someone else),
	 * nothing runs and the deploy says so: a confirmation covers what was reviewed, nothing more.
	 */
	const struct strlist *expect_pending;
	const char *who;             /* who runs it ($USER), for the journal; may be NULL */
	/*
	 * Staging's rehearsal: a script that runs as one batch runs as BEGIN, each statement sent on
	 * its own, COMMIT instead: the same single transaction (a failure leaves nothing), but each
	 * statement's "done" step carries its real duration. In a simple-query batch the server sends
	 * the results together at the end, so only the script's total is real there.
	 */
	bool        timed_batch;
};

/*
 * Deploys every pending migration in order on env, as `prisma migrate deploy` would, safer:
 *
 *  - refuses (nothing runs, RB_EXIT_STEP) when the preview is blocked, when a pending migration
 *    is dangerous and opts->confirm is not the phrase (confirm_check: journaled), or when the
 *    backup precondition is not met;
 *  - holds pg_try_advisory_lock(DEPLOY_ADVISORY_KEY) on a control connection for the whole
 *    deploy, polling until advisory_wait_ms (the holder is reported when it is taken);
 *  - creates _prisma_migrations exactly as Prisma does when missing, writes each migration's row
 *    as Prisma's engine does (started row first, finished_at and applied_steps_count on success,
 *    logs on failure);
 *  - runs a script as one simple-query batch (one implicit transaction), or statement by
 *    statement when lint says it needs statement mode (each statement journaled before and
 *    after; an INVALID index left by a failed CREATE INDEX CONCURRENTLY is dropped before the
 *    statement runs again);
 *  - every statement under the plan's lock_timeout and statement_timeout; on a lock timeout
 *    waits 1, 2, 4, 8, 16 s (+ up to 25 % jitter) and tries again, up to migrations.retries
 *    times, emitting the blockers; then stops (RB_EXIT_STEP, the blockers in err->detail). A
 *    batch that gave up on a lock timeout or was cancelled provably changed nothing (one
 *    transaction, rolled back): the started row of that attempt is deleted, so the migration is
 *    pending again for both tools (a rolled-back row would make `prisma migrate status` call the
 *    database up to date); the attempt stays in the journal;
 *  - a lost connection: reconnects with backoff, retakes the lock, re-reads _prisma_migrations
 *    and reports what is known; a script whose outcome is unknown is never run again.
 *
 * Stops at the first failure. Events (stage "migrate"; see below) go to ctx->bus. Returns true
 * when every pending migration was applied (or none was pending). *result (may be NULL) receives
 * the stage_result JSON, also on failure; caller decrefs.
 *
 * Events:
 *   stage_started / stage_done / stage_failed   (message says what happened)
 *   step (journaled):
 *     {"kind": "migration", "migration", "index", "total", "id", "mode": "batch"|"statements",
 *      "statements", "state": "started"|"applied"|"failed"|"not_applied"|"unknown"}
 *     {"kind": "statement", "migration", "statement" (1-based), "statements", "line",
 *      "state": "start"|"done"|"failed"|"lock_timeout", "ms", "sqlstate", "error",
 *      and for lock_timeout: "attempt", "attempts", "retry_in_ms", "blockers"}
 *       In batch mode only "done" (as each statement's result arrives), "failed" and
 *       "lock_timeout" are emitted; in statement mode "start" comes first.
 *     {"kind": "cleanup", "migration", "index": "schema.name", "state": "dropped"}
 *   progress (not journaled):
 *     {"kind": "waiting", "migration", "statement", "waiting_ms", "blockers": [blocker...]}
 *       about twice a second while a statement waits for a lock; {"kind": "waiting",
 *       "blockers": []} once the wait is over
 *     {"kind": "advisory_lock", "waited_ms", "holder": blocker|null} while polling for the lock
 *   blocker: {"pid", "application", "user", "state", "query" (first 200 characters, hidden when it
 *             mentions a password), "waiting_ms" (how long our statement has waited),
 *             "xact_ms" (age of the blocker's transaction), "lock_mode"}
 */
bool deploy_run(const struct plan *p, const struct deploy_opts *opts, struct rb_ctx *ctx,
                json_t **result, struct rb_error *err);

/*
 * Polls pg_try_advisory_lock(DEPLOY_ADVISORY_KEY) on conn every 500 ms for up to wait_ms (0: 10 s),
 * emitting progress {"kind": "advisory_lock", "waited_ms", "holder"} on ctx->bus. False with err
 * naming the holder (pid, application, user, state, query) when it stays taken, or when cancelled.
 * The lock is the session's until pg_advisory_unlock or the connection ends.
 */
bool deploy_lock_take(PGconn *conn, int64_t wait_ms, struct rb_ctx *ctx, struct rb_error *err);
/* Releases the lock deploy_lock_take() took on conn. */
void deploy_lock_release(PGconn *conn);

/* A deploy event's step kinds, for front ends. */
#define DEPLOY_STAGE "migrate"

#endif
