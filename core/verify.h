/* verify.h: post-change integrity checks (row counts, orphans, indexes, constraints, custom SQL). */
#ifndef PGRUNBOOK_VERIFY_H
#define PGRUNBOOK_VERIFY_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stdbool.h>

#include "ctx.h"
#include "error.h"
#include "plan.h"

#define VERIFY_STAGE "verify"

/*
 * Exact row counts of every ordinary and partitioned table outside the system schemas
 * (pg_catalog, information_schema, pg_toast, temporary schemas), as count(*): a partitioned
 * table counts all its partitions and the partitions themselves are not listed; an ordinary
 * table is counted ONLY (rows of legacy inheritance children are theirs). All counts come from
 * one REPEATABLE READ READ ONLY transaction with an empty search_path, which this function
 * opens and ends: conn must not be inside a transaction. The session's statement_timeout
 * applies; ctx's cancel flag cancels the running count (err: the server's 57014). On success
 * *counts is a new JSON object {"schema.table": count} (caller decrefs); on failure *counts is
 * NULL and err names the table that could not be counted (code RB_EXIT_STEP).
 */
bool verify_snapshot_take(PGconn *conn, const struct rb_ctx *ctx, json_t **counts, struct rb_error *err);

/*
 * Connects to env (the plan's target when NULL), applies the plan's migrations.statement_timeout
 * and takes a snapshot document:
 *   {"format": "pgrunbook-snapshot", "version": 1, "database", "environment", "taken_at"
 *    (RFC 3339 UTC), "plan_hash", "tables": {"schema.table": count}}
 * Emits nothing on ctx->bus. Caller decrefs *snapshot. Connection failures carry RB_EXIT_CONNECT.
 */
bool verify_snapshot(const struct plan *p, const char *env, const struct rb_ctx *ctx, json_t **snapshot,
                     struct rb_error *err);

/*
 * Writes a snapshot document to path atomically (a temporary file in the same directory, mode
 * 0600, fsync'd, then renamed over path). The file never holds a password (none is in it).
 */
bool verify_snapshot_write(const char *path, const json_t *snapshot, struct rb_error *err);

/*
 * Reads a baseline for verify_run(): a snapshot file as written above, or a backup manifest (any
 * JSON object with "database" (string) and "tables" ({"schema.table": non-negative integer})).
 * Returns a new object {"source": "snapshot"|"backup_manifest", "path", "database",
 * "environment" (or null), "taken_at" (a manifest's "started", or null), "tables"} (caller
 * decrefs), or NULL with err set (code RB_EXIT_USAGE) when the file cannot be read or has
 * neither shape.
 */
json_t *verify_baseline_load(const char *path, struct rb_error *err);

/*
 * Runs every check of the plan's verify section (defaults when the plan has none) on env (the
 * plan's target when NULL), read-only: every query runs in a READ ONLY transaction, with the
 * plan's migrations.statement_timeout, an empty search_path (catalog checks, orphan anti-joins
 * whose names are all quoted and schema-qualified, and whose comparisons use the foreign key's own
 * equality operators) or the migrations schema as search_path (custom checks, which are sent with
 * the extended protocol, so one statement each). ctx (not NULL; its bus may be) is borrowed; its
 * cancel flag cancels the running query and ends the run.
 *
 * Checks, in this order (each a "kind"):
 *   row_counts            against baseline (from verify_baseline_load(), or any object with
 *                         "database" and "tables" such as a backup manifest; NULL: reported
 *                         "not run", not a failure). shrink_forbidden fails a table with fewer
 *                         rows; tolerance N% fails a change of more than N% either way (a table
 *                         empty in the baseline fails as soon as it has rows); off does not
 *                         compare. A table only in the baseline ("gone") fails; one only in the
 *                         database ("new") is reported, not a failure; so is a baseline of
 *                         another database name (a note; staging restores compare with prod).
 *   orphans               (orphans: auto) every foreign key, NOT VALID ones included, as an
 *                         anti-join: child rows whose key (MATCH SIMPLE: every column non-NULL;
 *                         MATCH FULL: any column non-NULL) has no parent row; the count and up
 *                         to 5 sample keys (ordered by the key).
 *   invalid_indexes       pg_index.indisvalid false, each named with its table.
 *   not_valid_constraints pg_constraint.convalidated false (tables and domains).
 *   prisma_migrations     rows of <migrations.schema>._prisma_migrations with finished_at and
 *                         rolled_back_at NULL (not run when the table does not exist).
 *   custom                each verify.checks entry must return exactly one row of one column
 *                         whose text equals expect; a SQL error fails that check only.
 *
 * *result (may be NULL; set whenever this returns, also on failure) receives
 *   {"ok", "environment", "database", "plan_hash", "baseline": {source, path, database,
 *    taken_at}|null, "error": message|null,
 *    "summary": {"checks", "passed", "failed", "not_run", "notes"},
 *    "checks": [{"kind", "name", "object", "ok", "result": "pass"|"fail"|"note"|"not run",
 *                "detail", ...kind-specific fields}]}
 * kind-specific fields: row_counts: "table", "before", "after", "change_percent" (null when the
 * baseline had 0 rows), "status": "same"|"grew"|"shrank"|"new"|"gone"; orphans: "constraint",
 * "child", "parent", "columns", "parent_columns", "match": "simple"|"full", "validated",
 * "orphans", "samples" ([{column: text|null}]); invalid_indexes: "index", "table", "definition";
 * not_valid_constraints: "constraint", "table", "definition"; prisma_migrations: "migration",
 * "started_at", "logs"; custom: "sql", "expect", "got" (text|null), "error" (or null).
 * Caller decrefs.
 *
 * Events on ctx->bus, stage "verify": stage_started {environment}; one step per kind
 * {"kind", "checks", "failed", "ok"}; stage_result (the result above); stage_done when every
 * check passed, else stage_failed.
 *
 * Returns true when every check passed. False with err set when one failed (code RB_EXIT_STEP,
 * "N of M checks failed"), when the database cannot be reached (RB_EXIT_CONNECT) or when a
 * catalog query fails or is cancelled (RB_EXIT_STEP).
 */
bool verify_run(const struct plan *p, const char *env, const json_t *baseline, struct rb_ctx *ctx,
                json_t **result, struct rb_error *err);

#endif
