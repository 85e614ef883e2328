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
 *   restore   otherwise, when a verified backup is known: opts->backup when given, else the
 *             run's (its backup stage_result path, else the backup its migrate or sync relied
 *             on: a {"kind": "backup_found"} step); backup_check() must pass (manifest verified,
 *             same database and server, SHA-256 still matching). Phrase "restore <db>". Data
 *             written to the target after the backup is lost: the why says so and names the
 *             backup's time (pg_stat counters cannot tell which writes came after it).
 *   none      nothing applied and nothing synced (nothing to roll back), or no verified backup
 *             for a restore: why says what is missing (a backup that fails backup_check() is
 *             named with the reason).
 * Data loss: the applied migrations are linted (lint_script()); a statement of rule PG101,
 * PG102, PG103, PG104, PG106, PG107 or PG203 loses data a down.sql cannot bring back: with a
 * verified backup (opts->backup or the run's, backup_check() passing) restore is chosen and the
 * why names the statement; without one down_sql is still chosen and the why names the data lost.
 * A half-done swap: when no database has the target's name, the choice is none and the why
 * names the journaled rollback stopped between its renames (rename_old done, neither
 * rename_new nor rename_back done) and the exact ALTER DATABASE statements that give the
 * original back. Restored copies "<db>_rollback_<ts>" left on the server are warned about
 * (a log record on ctx->bus naming the DROP DATABASE to run), never dropped.
 * The migrations are matched to their _prisma_migrations row by the id the deploy journaled
 * (else the newest row of the name). The choice also carries what the run's maintenance freeze
 * recorded (read_only layer, the connection limit and CONNECT grants before its block layer)
 * for the settings step.
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
 *     2. settings     the target's database-level properties copied to the new database in one
 *                     transaction: owner, grants (datacl exploded: REVOKE ALL from PUBLIC and the
 *                     owner, then each GRANT; a NULL datacl stays default) plus the CONNECT grants
 *                     the run's freeze revoked, ALTER DATABASE SET and ALTER ROLE .. IN DATABASE
 *                     SET settings (minus pgrunbook's freeze: pgrunbook.frozen_by, and
 *                     default_transaction_read_only when the run froze with a read_only layer;
 *                     list settings such as search_path are stored with set_config() + SET ..
 *                     FROM CURRENT so their text is exactly the original's), connection limit as
 *                     before the run's freeze, comment. Not copied: the default tablespace (the
 *                     copy is created in the server's default), datistemplate;
 *     3. block        ALTER DATABASE <db> ALLOW_CONNECTIONS false (undo journaled first);
 *     4. terminate    pg_terminate_backend() of every session on the target, waiting up to
 *                     lock_wait_ms for them to go;
 *     5. rename_old   ALTER DATABASE <db> RENAME TO "<db>_failed_<yyyymmddThhmmss>" under lock_timeout
 *                     (lock_wait_ms). It needs an AccessExclusiveLock on the database object
 *                     and no session on the database. When it fails, the blockers are read
 *                     from pg_locks (locktype 'object', classid pg_database, granted: e.g. a
 *                     COMMENT ON DATABASE <db> in an open transaction of another database, or
 *                     a running CREATE DATABASE .. TEMPLATE <db>) joined with
 *                     pg_stat_activity, plus the sessions
 *                     still connected, and named (pid, lock mode, user, database, state, query
 *                     unless it mentions a password) in err's hint and the step's "blockers"
 *                     (and the result's); nothing was
 *                     renamed: connections are allowed again and the step fails, saying the
 *                     target is intact under its own name and the restored copy is kept under
 *                     its name (a second rollback_run restores a fresh copy rather than trust
 *                     one that sat open meanwhile; the message says to drop the old one);
 *     6. rename_new   the restored database to <db>. When it fails, the old one is renamed back
 *                     to <db> (journaled), so the original name is always the original
 *                     database or the restored copy, never missing; the result says which;
 *     7. reopen       ALLOW_CONNECTIONS true on <db> and on the failed database (kept for
 *                     forensics under its new name, never dropped);
 *     8. verify       verify_run() on <db> with the backup manifest as baseline (counts equal).
 *     Admin statements run on a connection to the server's "postgres" database (else
 *     template1; backup_connect_server()), never to the target itself, all under
 *     lock_timeout = lock_wait_ms. Each step is journaled "started" before it runs, then
 *     "done" or "failed".
 * *result (may be NULL; also on failure and refusal) receives {"ok", "path": "down_sql"|"restore"|
 * "none", "database", "why", "failed_database" (null until rename_old succeeded, and again after
 * a rename back), "restored_from", "restored_database", "blockers", "verify" (verify's summary),
 * "steps": [{"step", "state", "detail"}], "state": one sentence saying where things are now,
 * "backup_finished": when the restored backup was finished (restore only)}.
 * On failure err's detail is that same sentence. Caller decrefs. rollback_done's data is the
 * result plus "run" (the run rolled back), so a later rollback_choose() caller can skip it.
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
	/*
	 * The plan's last successful restore rollback (rollback_done with ok and path "restore"):
	 * when it ran and when the backup it restored was finished (RFC 3339), or NULL. A backup
	 * finished between the two (manifests have whole seconds: the same second counts, the
	 * restored archive itself excepted) holds changes that restore rolled back: restoring it is refused
	 * (path none) unless it was given with opts->backup (then the why warns).
	 */
	const char *last_restore_at;
	const char *last_restore_backup_finished;
	const char *last_restore_backup;   /* the archive it restored (never refused itself) */
};

struct rollback_choice {
	enum rollback_path path;
	char   *why;        /* one or two sentences: why this path (and why not the other) */
	char   *database;   /* the target's database name */
	char   *phrase;     /* "rollback <db>" or "restore <db>"; NULL for none */
	char   *backup;     /* the archive for restore, or NULL */
	json_t *migrations; /* [{"name", "id", "down_sql": path|null, "applied_at"}] applied in the run, in order */
	bool    synced;     /* the run wrote data with sync apply */
	char   *run_id;     /* the run rolled back, or NULL */
	char   *backup_finished; /* when the restore's backup was finished (its manifest), or NULL */
	/* from the run's maintenance freeze, for the settings step: */
	bool    froze_read_only;   /* a read_only layer: the target's default_transaction_read_only is pgrunbook's */
	bool    connlimit_known;   /* a block layer recorded the connection limit before it */
	int64_t connlimit_before;
	json_t *revoked_grants;    /* CONNECT grants a block layer revoked: [{"grantee", "grantable"}] */
	/*
	 * The run's pending freeze records (maint_pending_undo()) of the layers a restore leaves
	 * behind in the failed database: marker, read_only, block. Once the restored copy has the
	 * target's name, each is journaled as thawed: a step {"kind": "thaw", "layer", "state":
	 * "undone", "freeze_run", "freeze_at", "database", "by": "rollback"} (stage "rollback"), so
	 * the freeze no longer counts as pending.
	 */
	json_t *restore_thaws;
};
void rollback_choice_free(struct rollback_choice *c);
/* {"path", "why", "database", "phrase", "backup", "migrations", "synced", "run"}. Caller decrefs. */
json_t *rollback_choice_json(const struct rollback_choice *c);

/*
 * Decides the path for the run st (may be NULL: a rollback outside a run; then only restore
 * from opts->backup is possible). Connects to the target read-only (the database name, the
 * _prisma_migrations checksums). False with err only when the target cannot be reached or the
 * run cannot be read; a "none" choice is not an error.
 */
bool rollback_choose(const struct plan *p, const struct run_state *st, const struct rollback_opts *o,
                     const struct rb_ctx *ctx, struct rollback_choice *out, struct rb_error *err);

/*
 * Carries out the choice (see above). Returns true when everything succeeded; false with err
 * (RB_EXIT_STEP: refused, nothing to do, or a step failed; RB_EXIT_CONNECT: the server could not
 * be reached before anything changed).
 */
bool rollback_run(const struct plan *p, const struct rollback_choice *c, const struct rollback_opts *o,
                  struct rb_ctx *ctx, json_t **result, struct rb_error *err);

#endif
