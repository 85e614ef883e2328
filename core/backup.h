/* backup.h: pg_dump of an environment's database, its SHA-256 manifest and a restore-tested verification. */
#ifndef PGRUNBOOK_BACKUP_H
#define PGRUNBOOK_BACKUP_H

/*
 * A backup is one pg_dump archive in the plan's backup.dir (relative to the plan file; created
 * mode 0700 when missing): "<db>-<yyyymmddThhmmssZ>.dump" (custom format, one file, mode 0600)
 * or "<db>-<yyyymmddThhmmssZ>.dir" (directory format, mode 0700), with its manifest next to it,
 * "<backup>.json" (mode 0600, written atomically: a temporary file, fsync, rename):
 *
 *   {"pgrunbook_backup": 1, "file": "<basename>", "database", "environment",
 *    "server": {"host", "port", "system_identifier": str|null, "version"},
 *    "plan_hash", "run_id": str|null, "who", "started", "finished" (RFC 3339 UTC),
 *    "format": "custom"|"directory", "jobs", "size" (bytes; a directory: the sum of its files),
 *    "sha256", "pg_dump": "<pg_dump --version>",
 *    "tables": {"schema.table": rows, ...},
 *    "table_list": [{"schema", "name", "kind": "table"|"partitioned", "rows"}, ...],
 *    "verified": bool, "verification": {"at", "why", "scratch_database"}}
 *
 * sha256 is the SHA-256 of the file; for the directory format, of the text made of one line
 * "<sha256 of the file>  <relative path>\n" per file, sorted by path (sha256sum's layout).
 *
 * Consistency: the row counts are taken in a REPEATABLE READ transaction that also exports its
 * snapshot (pg_export_snapshot()), and pg_dump runs with --snapshot=<that snapshot> while the
 * transaction stays open, so the counts are exactly the rows the dump holds. Counted tables:
 * every ordinary and partitioned table outside pg_catalog, information_schema, pg_toast and the
 * temporary schemas, except extension members (pg_dump does not dump their data). An ordinary
 * table's count is its own rows (FROM ONLY); a partitioned table's count is every row of its
 * partitions (it has no TABLE DATA entry of its own; the archive must list its TABLE entry).
 *
 * Verification (all of it, or the backup is not verified):
 *   1. the size and SHA-256 of the archive equal the manifest's;
 *   2. `pg_restore --list` parses it and lists a TABLE DATA entry for every ordinary table
 *      counted (a TABLE entry for a partitioned one);
 *   3. a test restore (pg_restore --no-owner --no-privileges --exit-on-error) into a scratch
 *      database on the target's server, "<db>_pgrunbook_verify_<6 hex>" (CREATE DATABASE ...
 *      TEMPLATE template0), whose tables and per-table row counts equal the manifest's. The
 *      scratch database is always dropped afterwards (WITH (FORCE)), on failure and cancel too.
 *
 * pg_dump and pg_restore run as child processes in their own process group (fork/exec; on Linux
 * they get SIGKILL when pgrunbook dies). They are taken from $PG_BINDIR,
 * /usr/lib/postgresql/<server major>/bin, then $PATH: the first whose major version equals the
 * server's, else the first newer one; an older major is refused. They get the environment's
 * connection string with -d (never a password: that comes only from .pgpass, PGPASSFILE or a
 * service file) and an environment without PGPASSWORD. While they run, ctx's cancel flag is
 * polled: when set, the child's process group gets SIGTERM (SIGKILL 5 s later) and the step
 * fails.
 *
 * A dump is written as "<name>.partial" and renamed to its final name only after pg_dump exits
 * 0; a dump that fails or is interrupted is renamed "<name>.failed" (its manifest is never
 * written), so nothing that looks like a valid backup is left behind.
 *
 * Events (stage "backup"):
 *   stage_started {"environment", "who", "action": "take"|"verify"}
 *   step (journaled) {"kind": "backup", "step": "space"|"snapshot"|"dump"|"checksum"|"list"|
 *     "restore"|"counts"|"manifest", "state": "done"|"failed", ...step fields}
 *   progress (not journaled) {"kind": "backup", "tables_done", "tables_total", "bytes",
 *     "rate" (bytes per second)} while pg_dump runs, at most about four a second and once per
 *     table; {"kind": "verify", "phase": "restore"} while the test restore runs
 *   stage_result: backup_result_json() of the result (also on failure, as far as known)
 *   stage_done / stage_failed (message says what happened)
 */

#include <jansson.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

#include "ctx.h"
#include "error.h"
#include "plan.h"

struct backup_opts {
	const char *env;     /* NULL: the plan's target */
	const char *who;     /* who runs it ($USER), for the manifest and the journal; may be NULL */
	const char *run_id;  /* the journal run taking it, for the manifest; may be NULL */
};

/*
 * What a backup operation found out. Every field is owned by the record; free with
 * backup_result_free(). Fields not known (an early failure) stay NULL / 0.
 */
struct backup_result {
	char    *path;           /* the archive (final name; the .failed name after a failed dump) */
	char    *manifest_path;  /* "<path>.json", NULL when no manifest was written or read */
	char    *environment;
	char    *database;
	char    *format;         /* "custom" or "directory" */
	int64_t  size;           /* bytes */
	char     sha256[65];     /* "" when not computed */
	bool     verified;
	char    *why;            /* one sentence: why it is (or is not) verified */
	json_t  *manifest;       /* the manifest as written (or read), or NULL */
};

void backup_result_free(struct backup_result *r);
/*
 * {"path", "manifest", "environment", "database", "format", "size", "sha256", "verified", "why",
 *  "tables": {...}} (the stage_result data). Caller decrefs.
 */
json_t *backup_result_json(const struct backup_result *r);

/*
 * Takes a backup of the environment's database (see above) and verifies it. Refuses (RB_EXIT_STEP,
 * nothing written) when the plan has no backup section (RB_EXIT_PLAN), when pg_dump is missing
 * or older than the server, or when the free space of backup.dir (statvfs) is clearly too small:
 * below a quarter of pg_database_size() (a custom dump is compressed and leaves out indexes, so
 * it is usually much smaller than the database; one that needs less than a quarter is assumed).
 * Free space below the database size only warns. Returns true only when the dump succeeded and
 * verification passed; *result (always filled; may hold a dump that exists but failed
 * verification, its manifest saying verified false and why) is the caller's. Connection failures
 * give RB_EXIT_CONNECT, everything else RB_EXIT_STEP.
 */
bool backup_take(const struct plan *p, const struct backup_opts *opts, struct rb_ctx *ctx,
                 struct backup_result *result, struct rb_error *err);

/*
 * Verifies an existing backup: path is the archive (or its manifest "<archive>.json"). The test
 * restore runs on the server of the manifest's environment when the plan has it, else of the
 * plan's target. The manifest's "verified" and "verification" are rewritten (atomically) with
 * the outcome when the manifest itself could be read, so a backup found damaged no longer counts.
 * Returns true when verified; otherwise err says why (RB_EXIT_STEP: "checksum mismatch", "the
 * archive is N bytes, the manifest says M", "pg_restore --list ...", "row count of T ..."; a
 * missing or unreadable manifest is RB_EXIT_STEP too). *result is always filled.
 */
bool backup_verify(const struct plan *p, const char *path, struct rb_ctx *ctx, struct backup_result *result,
                   struct rb_error *err);

/*
 * The newest verified backup of env's database (the plan's target when env is NULL) in
 * backup.dir: same database name and same server (system identifier when both sides know it,
 * else host and port), its manifest saying verified, finished at most max_age_ms ago
 * (<= 0: backup.max_age). Connects to env (read-only) to learn the database and server. The
 * candidate's size and SHA-256 are checked again; one that no longer matches is skipped (and
 * the next older one tried). On success fills *result (caller frees); else false with err
 * (RB_EXIT_STEP, the detail saying what was found instead: older, unverified, another database
 * or server, damaged; RB_EXIT_CONNECT when env cannot be reached; RB_EXIT_PLAN without a backup
 * section). This is the standalone precondition of migrate and sync (DESIGN.md "Preconditions").
 */
bool backup_find_recent(const struct plan *p, const char *env, int64_t max_age_ms, struct backup_result *result,
                        struct rb_error *err);

/*
 * Checks that the backup at path (the archive or its manifest) can stand in for env's database
 * (the plan's target when NULL) without restoring it: its manifest says verified, names env's
 * database (as libpq resolves env's connection string) and server (system identifier when both
 * sides know it, host and port), and the archive's size and SHA-256 still equal the manifest's.
 * Connects with backup_connect_server(). *result is always filled (caller frees); false with err
 * saying what does not fit (RB_EXIT_STEP; RB_EXIT_CONNECT when env cannot be reached).
 */
bool backup_check(const struct plan *p, const char *env, const char *path, struct backup_result *result,
                  struct rb_error *err);

/*
 * The backup precondition of a step that writes to env's database (DESIGN.md "Preconditions"),
 * stage "migrate" or "sync", verb "deploy" or "apply" for the messages. Met when backup_ok (the
 * caller knows its run has a verified backup or a waiver); else by a verified backup of the same
 * database and server within backup.max_age (backup_find_recent(); journaled as a step of stage
 * {"kind": "backup_found", "path", "sha256", "finished"}); else by the typed waiver
 * "waive-backup <database>" (confirm_backup_precondition(): checked and journaled). False with
 * err set (RB_EXIT_STEP) saying why no backup counts and how to take one or waive it.
 */
bool backup_precondition(const struct plan *p, const char *env, const char *database, const char *stage,
                         const char *verb, bool backup_ok, const char *waive_backup, const char *who,
                         struct rb_ctx *ctx, struct rb_error *err);

/*
 * Restores a verified backup into a new database `dbname` on the server of env (the plan's
 * target when NULL), for rollback and for the staging rehearsal. path is the archive or its
 * manifest. Before anything is created, the archive's size and SHA-256 must equal the
 * manifest's and the manifest must say verified (else RB_EXIT_STEP, nothing created). dbname
 * must not exist (RB_EXIT_STEP). The database is created from template0 with the encoding,
 * LC_COLLATE and LC_CTYPE of env's own database (so a restored copy sorts like the original),
 * owned by the role env connects as; then pg_restore --exit-on-error --no-subscriptions (with
 * --no-owner --no-privileges when opts->no_owner, for a server without the source's roles),
 * --jobs from the plan (the same pg_restore run as the verification's test restore: one
 * implementation); then every table's row count must equal the manifest's. It connects with
 * backup_connect_server() (to "postgres", else "template1"), never to env's own database, so it
 * works while that one is frozen. Database-level properties are not in an archive; copying them is the caller's
 * business. On any failure or cancel the new database is dropped (WITH (FORCE)) and false is
 * returned; on success *counts (may be NULL) receives {"schema.table": rows} as restored
 * (caller decrefs). Events, stage opts->stage (e.g. "rollback", "staging"): step {"kind":
 * "restore", "step": "checksum"|"create"|"restore"|"counts", "state": "done"|"failed",
 * "database", ...}, progress {"kind": "restore", "phase": "restore", "database", "elapsed_ms"}
 * about twice a second while pg_restore runs.
 */
struct backup_restore_opts {
	const char *env;      /* the server to restore on; NULL: the plan's target */
	const char *dbname;   /* the new database */
	bool        no_owner; /* pg_restore --no-owner --no-privileges */
	const char *stage;    /* for events; NULL: "backup" */
};
bool backup_restore(const struct plan *p, const char *path, const struct backup_restore_opts *opts,
                    struct rb_ctx *ctx, json_t **counts, struct rb_error *err);

/*
 * A connection to database dbname (NULL: "postgres", else "template1") on the server of the
 * plan's environment env (NULL: the target), for statements about databases (CREATE, ALTER,
 * RENAME, DROP DATABASE) that must not run on the database they concern. It uses env's own
 * connection string (service, URI or conninfo; never a password) with dbname in place of its
 * database, so it works while env's database does not accept connections; the session has
 * default_transaction_read_only off and TimeZone UTC. When env_db is not NULL it receives the
 * name of env's own database as libpq resolves it (caller frees). Returns NULL with err
 * (RB_EXIT_CONNECT; RB_EXIT_PLAN for an unknown environment). Caller closes with PQfinish().
 */
PGconn *backup_connect_server(const struct plan *p, const char *env, const char *dbname, char **env_db,
                              struct rb_error *err);

/*
 * Warns on bus (a warn log of stage) about databases on conn's server named db + suffix + a
 * match of the regular expression tail: copies an interrupted restore left behind (a kill -9),
 * each a full copy of a backup; `what` names the operation ("rollback", "staging rehearsal").
 * Never drops them: whether one is still in use cannot be proven here. bus may be NULL.
 */
void backup_warn_leftovers(PGconn *conn, struct events *bus, const char *stage, const char *db, const char *suffix,
                           const char *tail, const char *what);

#endif
