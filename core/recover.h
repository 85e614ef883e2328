/* recover.h: guided recovery of a failed migration: what is known, and the ways out. */
#ifndef PGRUNBOOK_RECOVER_H
#define PGRUNBOOK_RECOVER_H

#include <jansson.h>
#include <stdbool.h>

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
	char              *name;          /* the migration */
	enum mig_state     state;         /* normally MIG_FAILED; anything else refuses every action */
	char              *started_at;    /* of the failed row */
	char              *logs;          /* Prisma-style logs of the failed row, or NULL */
	int                applied_steps; /* applied_steps_count of the failed row */
	struct lint_result lint;          /* its statements */
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
/* {"environment", "database", "migration", "state", "started_at", "logs", "applied_steps",
 *  "statements": [lint...], "effects": {...}, "actions": [{"action", "allowed", "why_not",
 *  "warning", "phrase", "preview"}]} */
json_t *recover_info_json(const struct recover_info *ri);
/* What the action would do, in a few human lines (caller frees); sql_file for RUN_SQL. */
char *recover_preview(const struct recover_info *ri, enum recover_action a, const char *sql_file);

/*
 * Runs the action after confirm_check() of its phrase (journaled through ctx->bus, stage
 * "migrate"): re-inspects first and refuses when the action is no longer allowed; marks go
 * through migrations_mark_rolled_back()/migrations_mark_applied(); run-sql runs the file as one
 * simple-query batch under the plan's lock_timeout and statement_timeout, then re-checks the
 * effects and reports them (it marks nothing by itself). RECOVER_ROLLBACK is refused with a
 * message naming what to run instead. Emits a step event {"kind": "recover", "migration",
 * "action", "state": "done"|"failed"}. *after (may be NULL) receives recover_info_json() of the
 * state afterwards.
 */
bool recover_apply(const struct plan *p, const char *env, const char *name, enum recover_action a,
                   const char *sql_file, const char *confirm, struct rb_ctx *ctx, json_t **after,
                   struct rb_error *err);

#endif
