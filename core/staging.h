/* staging.h: the rehearsal: the backup restored into staging, the migrations timed there, the sync diffed, verify. */
#ifndef PGRUNBOOK_STAGING_H
#define PGRUNBOOK_STAGING_H

/*
 * staging_run(), stage "staging", on the plan's staging.environment:
 *   1. backup     the archive: opts->backup (the archive or its "<archive>.json" manifest), else
 *                 the newest verified backup of the target within backup.max_age
 *                 (backup_find_recent()); none: RB_EXIT_STEP, nothing done.
 *   2. confirm    opts->confirm must be "replace <staging db>" (confirm_check(), journaled):
 *                 the staging database is replaced by the copy. Before it, read-only: the
 *                 staging database's name (through a connection to its server's "postgres"
 *                 database, backup_connect_server()), a refusal (RB_EXIT_STEP) when that database
 *                 is the backup's or the target's own (same name on the same server), and the
 *                 target's pending migrations ("pending"; null when they cannot be read).
 *   3. restore    backup_restore() into "<staging db>_pgrunbook_new_<6 hex>" on the staging
 *                 server (owners and grants kept when the staging server is the backup's server,
 *                 system identifier compared; else --no-owner --no-privileges), then, on the
 *                 connection to that server's "postgres" database: the old staging database
 *                 dropped (WITH (FORCE): its sessions are ended) and the copy renamed to its name
 *                 (step "swap"). A failed restore leaves the old staging database untouched (the
 *                 copy is dropped); so does a failed drop. A rename failing after the drop leaves
 *                 the copy under its temporary name, and err says so and how to rename it. The
 *                 staging database must exist (its encoding and locale are the copy's); its own
 *                 database-level settings (ALTER DATABASE SET, owner) are not carried over.
 *   4. migrate    deploy_run() on staging (backup_ok: a fresh copy is its own backup; the typed
 *                 "replace" phrase also stands for "deploy <staging db>" there, since the copy is
 *                 disposable) while the statement steps are collected: each statement's duration
 *                 and the time it waited for locks (lock_timeout attempts, the backoff before
 *                 the next try, and the "waiting" progress of the attempt that got its lock).
 *                 A script run as one batch gets its statements' results only when the server
 *                 ends the script, so most of its time lands on its first statement; the
 *                 migration's total is exact.
 *   5. sync       sync_diff_plan() source -> staging, counts only (no review file), when the plan
 *                 has a sync section and a source.
 *   6. verify     verify_run() on staging with the backup's manifest as the row count baseline.
 * deploy_run() and verify_run() report on buses of their own; their events go on to ctx->bus as
 * stage "staging" with "phase": "migrate"|"verify" added, without their stage_started /
 * stage_done / stage_failed / stage_result records (replayed, those would mark prod's migrate
 * and verify stages done). Each step is journaled: step {"kind": "staging", "step", "state",
 * "detail", "ms"}; then stage_result (the result below) and stage_done or stage_failed.
 * Stops at the first failing step (RB_EXIT_STEP; RB_EXIT_CONNECT when staging cannot be reached;
 * RB_EXIT_PLAN without a staging section).
 * *result (may be NULL; always set) receives
 *   {"ok", "environment", "database", "phrase", "copy" (the temporary name, once chosen),
 *    "no_owner", "pending": [migration names]|null, "error": message|null,
 *    "backup": {"path", "manifest", "database", "environment", "finished", "sha256", "verified"}|null,
 *    "steps": [{"step", "state", "detail", "ms"}],
 *    "migrations": [{"name", "state", "ms", "lock_wait_ms", "statements": [{"statement", "line",
 *                    "sql" (its first 120 characters), "ms", "lock_wait_ms", "done"}]}],
 *    "estimate": {"migrate_ms": total of the statements' ms, "lock_wait_ms": their total,
 *                 "complete": every pending migration applied, "migrations"}|null (no migrate step),
 *    "sync": {"tables": [...as sync_diff_plan()], "skipped", "ok"} | null,
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
 * The migrate estimate from a run's last successful staging stage_result (ok, and the estimate
 * complete), found by scanning st's records backwards: false when the run has none.
 * *migrate_ms and *lock_wait_ms receive the totals.
 */
bool staging_estimate(const struct run_state *st, int64_t *migrate_ms, int64_t *lock_wait_ms);

#endif
