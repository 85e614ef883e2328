/* sync_plan.h: the diff of every sync table of a plan (headless sync diff, staging, run). */
#ifndef PGRUNBOOK_SYNC_PLAN_H
#define PGRUNBOOK_SYNC_PLAN_H

#include <jansson.h>
#include <stdbool.h>

#include "ctx.h"
#include "error.h"
#include "plan.h"
#include "sync.h"

struct sync_review_writer;

struct sync_plan_opts {
	const char *target_env;   /* NULL: the plan's target (staging passes its environment) */
	const char *only;         /* one table (as the plan writes it, or schema.table), or NULL */
	/*
	 * The review file to write, or NULL for counts only. Only when every table diffed is it
	 * committed (sync_review_commit()); otherwise aborted. Needs the plan's own target.
	 */
	const char *review_path;
	const char *who;
	/*
	 * Callbacks for front ends, all optional, called in the calling thread. begin: once both
	 * connections are open, before the first table (environment names and the target's
	 * database). table_begin: before a table's diff, once it was resolved on both sides (spec)
	 * or could not be (spec NULL); display is "schema.table". table_end: after it, with the
	 * table's object as it goes into *result (the callback may add members, e.g. "rows"; a
	 * journaled copy leaves "rows" out) and err, NULL when the table diffed.
	 */
	void      (*begin)(const char *source, const char *target, const char *database, void *userdata);
	void      (*table_begin)(const struct plan_sync_table *t, const char *display, const struct sync_spec *spec,
	                         void *userdata);
	void      (*table_end)(const struct plan_sync_table *t, const struct sync_spec *spec, json_t *table,
	                       const struct rb_error *err, void *userdata);
	/* passed to sync_diff_table() (its userdata is its own); may be NULL */
	const struct sync_diff_hooks *hooks;
	void       *userdata;
};

/*
 * Diffs the plan's sync tables not in skip mode, source -> target, in plan order, on two
 * connections it opens (db_connect()); a table that fails is reported and the next one is still
 * diffed, but then nothing is saved. Emits on ctx->bus, stage "sync": when a review is saved, a
 * step {"kind": "sync_review", "path", "tables" (without rows), "skipped"} (what `sync diff --out`
 * journals). *result (may be NULL; set whenever this returns) receives
 *   {"source", "target", "database", "review_file": path|null, "ok",
 *    "tables": [the per-table objects `pgrunbook sync diff --json` prints today: "table", "state"
 *               ("diffed"|"failed"), "counts": {"to_insert", ...}, "digest", ... (unchanged shape;
 *               without "rows")],
 *    "skipped": [{"table", "reason": "mode skip"|"not in the plan"}],
 *    "error": {"message", "detail", "hint"}|null: a failure not of one table (connection,
 *             listing the target's tables, the review file); a table's own is in its object}
 * "tables" and "skipped" are empty when nothing was diffed ("database" null before connecting).
 * The target's tables the plan does not list are only looked up without `only`; a failure to
 * list them fails the whole (the tables are still diffed).
 * True when every table diffed (and the review, when asked for, was saved). RB_EXIT_PLAN without
 * a sync section or source, RB_EXIT_USAGE for an unknown `only` or target_env, or a review of
 * another target, RB_EXIT_CONNECT, else RB_EXIT_STEP ("N of M tables could not be diffed", "the
 * sync diff was cancelled", or the failure in "error"). Cancelling stops after the running
 * table; no review is saved then.
 */
bool sync_diff_plan(const struct plan *p, const struct sync_plan_opts *o, struct rb_ctx *ctx, json_t **result,
                    struct rb_error *err);

#endif
