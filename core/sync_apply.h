/* sync_apply.h: applies a reviewed sync diff to the target, table by table, exactly as reviewed. */
#ifndef PGRUNBOOK_SYNC_APPLY_H
#define PGRUNBOOK_SYNC_APPLY_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "ctx.h"
#include "error.h"
#include "plan.h"
#include "sync_review.h"

/* The phrase verbs: "apply <db>" for every apply, "delete <db>" when a table deletes rows. */
#define SYNC_APPLY_VERB  "apply"
#define SYNC_DELETE_VERB "delete"

struct sync_apply_opts {
	const char *confirm;                   /* typed "apply <db>" */
	bool        allow_protected_overwrite; /* --allow-protected-overwrite */
	const char *confirm_overwrite;         /* typed CONFIRM_OVERWRITE_PHRASE */
	const char *confirm_delete;            /* typed "delete <db>" */
	/*
	 * The backup precondition (DESIGN.md "Preconditions"), as for deploy: backup_ok when the caller
	 * knows the run has a verified backup or a journaled waiver; else waive_backup must be the typed
	 * "waive-backup <db>" (checked and journaled here).
	 */
	bool        backup_ok;
	const char *waive_backup;
	const char *who;                       /* for the journal */
	int64_t     lock_wait_ms;              /* the one-writer advisory lock; default 10 s when 0 */
};

/*
 * What an apply of a review needs before it may write, computed without connecting: the typed
 * phrases and every reason it would refuse. The wizard shows it; sync_apply() checks the same.
 */
struct sync_apply_needs {
	char          *database;        /* the review's target database */
	char          *phrase;          /* "apply <db>" */
	char          *delete_phrase;   /* "delete <db>" when a table would delete rows, else NULL */
	struct strlist overwrite_tables;/* protected tables whose existing rows would change */
	struct strlist refusals;        /* reasons nothing may be applied (conflicts, protected
	                                   appends without an explicit mode), one line each */
	int64_t        inserts, updates, deletes;
};
void sync_apply_needs_compute(const struct sync_review *rv, struct sync_apply_needs *out);
void sync_apply_needs_free(struct sync_apply_needs *n);

enum sync_table_state {
	SYNC_TABLE_PENDING,      /* not reached yet */
	SYNC_TABLE_RUNNING,
	SYNC_TABLE_APPLIED,      /* committed */
	SYNC_TABLE_FAILED,       /* rolled back: nothing of it was written */
	SYNC_TABLE_NOT_REACHED,  /* an earlier table failed: untouched */
};
/* "pending", "running", "applied", "failed", "not reached". */
const char *sync_table_state_name(enum sync_table_state s);

struct sync_apply_table {
	char                 *display;
	enum sync_table_state state;
	int64_t               inserted, updated, deleted;
	int                   sequences_moved;
	int64_t               ms;
	char                 *error;     /* why it failed */
};

struct sync_apply_result {
	char                    *database;
	struct sync_apply_table *tables;  /* in apply order: foreign-key parents first */
	size_t                   ntables;
	bool                     refused; /* nothing was written: a precondition failed */
};
void sync_apply_result_free(struct sync_apply_result *r);
/* {"database", "refused", "tables": [{"table", "state", "inserted", "updated", "deleted",
 *  "sequences_moved", "ms", "error"}]} */
json_t *sync_apply_result_json(const struct sync_apply_result *r);

/*
 * Applies rv (loaded with sync_review_load() against plan) to the plan's target.
 *
 * Before writing anything: the connected database must be the review's; no table may hold a
 * conflict; protected tables whose rows would change need allow_protected_overwrite and
 * confirm_overwrite; protected tables only get appends when their plan entry sets mode itself;
 * the apply phrase (and the delete phrase when rows would be deleted) must match; the backup
 * precondition must hold; the one-writer advisory lock (DEPLOY_ADVISORY_KEY) is taken; every
 * table's columns must still exist on the target with the reviewed types. A refusal writes
 * nothing (result->refused).
 *
 * Then per table, foreign-key parents first (among the review's tables; the review's order
 * otherwise), in one transaction each: lock the table against writes (SHARE ROW EXCLUSIVE, the
 * plan's lock_timeout), COPY the reviewed rows into a temporary table, then one set-based UPDATE
 * and (delete: true) DELETE that return the rows as they were, compared byte for byte and in
 * number with the review's target rows (the rows its digest covers; a difference aborts: run
 * the diff again), then one INSERT whose keys must still be absent (the key's unique index, or a
 * lookup first), each touching exactly the reviewed number of rows; move the sequences behind
 * the table's serial and identity columns
 * past the new maximum, and commit. The first failing table stops the apply: it is rolled back
 * and the later tables are left untouched (state not reached).
 *
 * Events: step (journaled) per table {kind: "sync_table", table, state ("started", "applied",
 * "failed", or "unknown" when the connection was lost during COMMIT), inserted, updated,
 * deleted, error}; progress {kind: "sync_apply", table, phase, rows} for screens. ctx's cancel
 * flag cancels the running statement (the table rolls back) and stops before the next table.
 * Returns true when every table was applied; else false with err set (code RB_EXIT_STEP, or
 * RB_EXIT_CONNECT when the target cannot be reached). res is always filled.
 */
bool sync_apply(const struct plan *plan, const struct sync_review *rv, const struct sync_apply_opts *o,
                struct rb_ctx *ctx, struct sync_apply_result *res, struct rb_error *err);

#endif
