/* staging.h: the rehearsal: the backup restored into staging, the migrations timed there, the sync diffed, verify. */
#ifndef PGRUNBOOK_STAGING_H
#define PGRUNBOOK_STAGING_H

/*
 * staging_run(), stage "staging", on the plan's staging.environment:
 *   1. backup     the archive: opts->backup, else the newest verified backup of the target
 *                 within backup.max_age (backup_find_recent()); none: RB_EXIT_STEP, nothing done.
 *   2. confirm    opts->confirm must be "replace <staging db>" (confirm_check(), journaled):
 *                 the staging database is replaced by the copy.
 *   3. restore    backup_restore() into "<staging db>_pgrunbook_new_<6 hex>" on the staging
 *                 server (owners and grants kept when the staging server is the target's server,
 *                 system identifier compared; else --no-owner --no-privileges), then, on a
 *                 connection to that server's "postgres" database: the old staging database
 *                 dropped (WITH (FORCE)) and the copy renamed to its name. A failed restore
 *                 leaves the old staging database untouched.
 *   4. migrate    deploy_run() on staging (backup_ok: a fresh copy is its own backup) while the
 *                 statement steps are collected from the bus: each statement's duration and the
 *                 time it waited for locks (lock_timeout retries and waits).
 *   5. sync       sync_diff_plan() source -> staging, counts only (no review file), when the plan
 *                 has a sync section and a source.
 *   6. verify     verify_run() on staging with the backup's manifest as the row count baseline.
 * Stops at the first failing step (RB_EXIT_STEP; RB_EXIT_CONNECT when staging cannot be reached).
 * *result (may be NULL; always set) receives
 *   {"ok", "environment", "database", "backup", "steps": [{"step", "state", "detail", "ms"}],
 *    "migrations": [{"name", "ms", "lock_wait_ms", "statements": [{"statement", "line", "ms",
 *                    "lock_wait_ms"}]}],
 *    "estimate": {"migrate_ms": total of the migrations' ms, "lock_wait_ms"},
 *    "sync": {"tables": [...as sync_diff_plan()], "ok"} | null,
 *    "verify": verify_run()'s result | null}
 * The estimate is what the migrate stage shows for prod (staging_estimate()).
 */

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "ctx.h"
#include "error.h"
#include "journal.h"
#include "plan.h"

#define STAGING_STAGE "staging"

struct staging_opts {
	const char *backup;   /* archive or manifest; NULL: the newest verified backup of the target */
	const char *confirm;  /* "replace <staging db>" */
	const char *who;
};

bool staging_run(const struct plan *p, const struct staging_opts *o, struct rb_ctx *ctx, json_t **result,
                 struct rb_error *err);

/*
 * The migrate estimate from a run's last successful staging stage_result: false when the run has
 * none. *migrate_ms and *lock_wait_ms receive the totals.
 */
bool staging_estimate(const struct run_state *st, int64_t *migrate_ms, int64_t *lock_wait_ms);

#endif
