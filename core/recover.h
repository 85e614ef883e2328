/* recover.h: guided recovery of a failed migration: what is known, and the ways out. */
#ifndef PGRUNBOOK_RECOVER_H
#define PGRUNBOOK_RECOVER_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "ctx.h"
#include "effects.h"
#include "error.h"
#include "lint.h"
#include "migrations.h"
#include "plan.h"

enum recover_action {
	RECOVER_MARK_ROLLED_BACK,  /* after checking that none of its effects remain */
	RECOVER_MARK_APPLIED,      /* after checking that all of its effects are present */
	RECOVER_RUN_SQL,           /* run a compensating SQL file, then look again */
	RECOVER_ROLLBACK,          /* hand over to restore-based rollback (pgrunbook rollback) */
};
/* "mark-rolled-back", "mark-applied", "run-sql", "rollback"; and back (false when unknown). */
const char *recover_action_name(enum recover_action a);
bool recover_action_from_name(const char *name, enum recover_action *out);

/* What is known of one failed migration in one environment. */
struct recover_info {
	char              *env;
	char              *database;
	char              *schema;        /* where _prisma_migrations is (migrations.schema) */
	char              *name;          /* the migration */
	enum mig_state     state;         /* normally MIG_FAILED; anything else refuses every action */
	char              *started_at;    /* of the failed row */
	char              *logs;          /* Prisma-style logs of the failed row, or NULL */
	int                applied_steps; /* applied_steps_count of the failed row */
	struct lint_result lint;          /* its statements */
	char              *lint_error;    /* the script does not parse: the parser's message (then
	                                     lint holds the statements before the error), or NULL */
	int64_t            lock_timeout_ms, statement_timeout_ms;  /* the plan's, for run-sql */
	struct effects     effects;       /* which of their effects the catalog shows */
	/* Per action: whether it may run now, and if not why (NULL when allowed). */
	bool               allowed[RECOVER_ROLLBACK + 1];
	char              *why_not[RECOVER_ROLLBACK + 1];
	char              *warning[RECOVER_ROLLBACK + 1]; /* allowed, but say this (unknown effects) */
	char              *phrase[RECOVER_ROLLBACK + 1];  /* the typed confirmation each needs:
	                                                     "resolve <db>" for the marks, "deploy <db>"
	                                                     for run-sql, "rollback <db>" for rollback */
};

/*
 * Loads the plan's migrations folder, reads the migration's rows in env (the target when NULL),
 * lints its script and checks its effects (read-only). False with err set when the migration is
 * unknown or the database unreachable. out is always initialised; free with recover_info_free().
 */
bool recover_inspect(const struct plan *p, const char *env, const char *name, const struct rb_ctx *ctx,
                     struct recover_info *out, struct rb_error *err);
void recover_info_free(struct recover_info *ri);
/*
 * Fills allowed, why_not, warning and phrase of every action from ri's state, lint_error,
 * effects, name and database (replacing earlier ones; recover_inspect() calls it):
 *   mark-rolled-back: failed, no effect done, no INVALID index; warns of unknown effects.
 *   mark-applied:     failed, the script parses, no effect missing, no INVALID index; warns of
 *                     unknown effects (or that none can be checked).
 *   run-sql:          failed.
 *   rollback:         never in this build; why_not says what to do instead.
 */
void recover_decide(struct recover_info *ri);
/* {"environment", "database", "schema", "migration", "state", "started_at", "logs", "applied_steps",
 *  "lint_error", "statements": [lint...], "effects": {...}, "actions": [{"action", "allowed",
 *  "why_not", "warning", "phrase", "preview"}]}. Caller decrefs. */
json_t *recover_info_json(const struct recover_info *ri);
/*
 * What the action would do, in a few human lines (caller frees); sql_file for RUN_SQL (NULL: a
 * file still to be given), whose statements are listed with their lint class.
 */
char *recover_preview(const struct recover_info *ri, enum recover_action a, const char *sql_file);

/*
 * Runs the action after confirm_check() of its phrase (journaled through ctx->bus, stage
 * "migrate"): re-inspects first and refuses when the action is no longer allowed; marks go
 * through migrations_mark_rolled_back()/migrations_mark_applied(); run-sql runs the file as one
 * simple-query batch under the plan's lock_timeout and statement_timeout, then re-checks the
 * effects and reports them (it marks nothing by itself). RECOVER_ROLLBACK is refused with a
 * message naming what to run instead. Emits a step event {"kind": "recover", "migration",
 * "action", "state": "done"|"failed"} (and "running" before a mark or the SQL runs; a failed one
 * carries "reason"). While it acts it holds Prisma's advisory lock (DEPLOY_ADVISORY_KEY, never
 * waiting: refused when another session has it) and it decides on a fresh look taken under that
 * lock. A run-sql file whose statements cannot run in a transaction block (CREATE INDEX
 * CONCURRENTLY, ...) must hold that one statement only. *after (may be NULL) receives
 * recover_info_json() of the state afterwards, also when the action failed after connecting
 * (NULL otherwise). Error codes: RB_EXIT_USAGE (no or unreadable --sql file), RB_EXIT_CONNECT,
 * RB_EXIT_STEP (refused, confirmation missed, failed).
 */
bool recover_apply(const struct plan *p, const char *env, const char *name, enum recover_action a,
                   const char *sql_file, const char *confirm, struct rb_ctx *ctx, json_t **after,
                   struct rb_error *err);

#endif
