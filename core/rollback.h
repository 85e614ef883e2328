/* rollback.h: back to the state before the change: down SQL when provably enough, else a restore and a name swap. */
#ifndef PGRUNBOOK_ROLLBACK_H
#define PGRUNBOOK_ROLLBACK_H

/*
 * Choosing (rollback_choose(), read-only): the migrations applied by the run (journal steps
 * {"kind": "migration", "state": "applied"} of stage "migrate") and whether it wrote data (any
 * {"kind": "sync_table", "state": "applied"} step, or a sync_table step "started" without an end:
 * unknown counts as written).
 *   down_sql  when at least one migration was applied, every one of them has a down.sql next to
 *             its migration.sql, nothing was synced, and each applied migration's row in
 *             _prisma_migrations still has the checksum of the file applied (nothing changed it
 *             since). Phrase "rollback <db>".
 *   restore   otherwise, when a verified backup is known: the run's (its backup stage_result
 *             path) or opts->backup; its manifest must be of the same database and server.
 *             Phrase "restore <db>". Data written to the target after the backup is lost: the
 *             choice says so, with the writes seen since (pg_stat counters are not enough to
 *             know; the why names the backup's time).
 *   none      nothing applied and nothing synced (nothing to roll back), or no verified backup
 *             for a restore: why says what is missing and how to proceed.
 * opts->force_restore chooses restore even when down_sql would do.
 *
 * Doing (rollback_run()), everything journaled (stage "rollback"; events rollback_started and
 * rollback_done, steps {"kind": "rollback", "step", "state", ...}), the phrase checked first
 * with confirm_check() (journaled; a wrong phrase changes nothing, RB_EXIT_STEP):
 *   down_sql: each applied migration's down.sql in reverse order of application, each as one
 *     simple-query batch in one transaction under the plan's lock_timeout (retries as deploy),
 *     and in the same transaction its _prisma_migrations row gets rolled_back_at = now() (so
 *     Prisma and pgrunbook see it pending again). The first failure stops; what was undone is
 *     reported.
 *   restore:
 *     1. restore      backup_restore() into "<db>_rollback_<yyyymmddThhmmss>" (same server), counts
 *                     compared with the manifest inside backup_restore();
 *     2. settings     the target's database-level properties copied to the new database: owner,
 *                     CONNECT/CREATE/TEMP grants, ALTER DATABASE SET settings (minus pgrunbook's
 *                     freeze: pgrunbook.frozen_by and a read_only layer's default_transaction_read_only),
 *                     connection limit as before any freeze, comment;
 *     3. block        ALTER DATABASE <db> ALLOW_CONNECTIONS false (undo journaled first);
 *     4. terminate    pg_terminate_backend() of every session on the target, waiting up to
 *                     lock_wait_ms for them to go;
 *     5. rename_old   ALTER DATABASE <db> RENAME TO "<db>_failed_<yyyymmddThhmmss>" under lock_timeout
 *                     (lock_wait_ms). When it fails (a session still connected, a lock held on
 *                     the database: the blocker pid, user and query are named), nothing was
 *                     renamed: connections are allowed again and the step fails, saying the
 *                     target is intact under its own name and the restored copy is kept under
 *                     its name for a second try (rollback_run again, or drop it);
 *     6. rename_new   the restored database to <db>. When it fails, the old one is renamed back
 *                     to <db> (journaled), so the original name is always the original
 *                     database or the restored copy, never missing; the result says which;
 *     7. reopen       ALLOW_CONNECTIONS true on <db> and on the failed database (kept for
 *                     forensics under its new name, never dropped);
 *     8. verify       verify_run() on <db> with the backup manifest as baseline (counts equal).
 *     Admin statements run on a connection to the server's "postgres" database (else
 *     template1), never to the target itself.
 * *result (may be NULL) receives {"ok", "path": "down_sql"|"restore", "database", "why",
 * "failed_database", "restored_from", "steps": [{"step", "state", "detail"}], "state": one
 * sentence saying where things are now}.
 */

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "ctx.h"
#include "error.h"
#include "journal.h"
#include "plan.h"

#define ROLLBACK_STAGE "rollback"

enum rollback_path { ROLLBACK_NONE, ROLLBACK_DOWN_SQL, ROLLBACK_RESTORE };

/* "none", "down_sql", "restore". */
const char *rollback_path_name(enum rollback_path p);

struct rollback_opts {
	const char *env;            /* NULL: the plan's target */
	const char *backup;         /* archive to restore from when the run has none; may be NULL */
	bool        force_restore;  /* restore even when down SQL would do */
	const char *confirm;        /* the typed phrase, or NULL */
	const char *who;
	int64_t     lock_wait_ms;   /* for the renames and the sessions to go; 0: 10 s */
};

struct rollback_choice {
	enum rollback_path path;
	char   *why;        /* one or two sentences: why this path (and why not the other) */
	char   *database;   /* the target's database name */
	char   *phrase;     /* "rollback <db>" or "restore <db>"; NULL for none */
	char   *backup;     /* the archive for restore, or NULL */
	json_t *migrations; /* [{"name", "down_sql": path|null, "applied_at"}] applied in the run, in order */
	bool    synced;     /* the run wrote data with sync apply */
};
void rollback_choice_free(struct rollback_choice *c);
/* {"path", "why", "database", "phrase", "backup", "migrations", "synced"}. Caller decrefs. */
json_t *rollback_choice_json(const struct rollback_choice *c);

/*
 * Decides the path for the run st (may be NULL: a rollback outside a run; then only restore
 * from opts->backup is possible). Connects to the target read-only (the database name, the
 * _prisma_migrations checksums). False with err only when the target cannot be reached or the
 * run cannot be read; a "none" choice is not an error.
 */
bool rollback_choose(const struct plan *p, const struct run_state *st, const struct rollback_opts *o,
                     const struct rb_ctx *ctx, struct rollback_choice *out, struct rb_error *err);

/* Carries out the choice (see above). */
bool rollback_run(const struct plan *p, const struct rollback_choice *c, const struct rollback_opts *o,
                  struct rb_ctx *ctx, json_t **result, struct rb_error *err);

#endif
