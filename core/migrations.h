/* migrations.h: a Prisma migrations folder, its checksums, and its state in _prisma_migrations. */
#ifndef PGRUNBOOK_MIGRATIONS_H
#define PGRUNBOOK_MIGRATIONS_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

#include "ctx.h"
#include "error.h"

/* One local migration: <dir>/<name>/migration.sql. */
struct mig_local {
	char  *name;          /* "20250615120108_init" */
	char  *path;          /* the migration.sql file */
	char  *sql;           /* its bytes, NUL-terminated */
	size_t len;
	char   checksum[65];  /* SHA-256 hex of the bytes, as Prisma stores it */
};

struct mig_set {
	char             *dir;
	struct mig_local *items;     /* sorted by name, Prisma's order */
	size_t            n;
	char             *provider;  /* from migration_lock.toml, NULL when the file is missing */
};

/*
 * Reads the migrations folder: every subdirectory holding migration.sql, sorted by name, and
 * migration_lock.toml (whose provider must be "postgresql"). A subdirectory without
 * migration.sql, an unreadable file or another provider is an error naming the path. Free with
 * migrations_free().
 */
bool migrations_load(const char *dir, struct mig_set *out, struct rb_error *err);
void migrations_free(struct mig_set *s);

/*
 * Whether a stored checksum belongs to the script. Like Prisma, line endings do not matter: the
 * script as it is, with CRLF turned into LF, and with LF turned into CRLF are all accepted.
 */
bool migrations_checksum_matches(const char *sql, size_t len, const char *stored);

enum mig_state {
	MIG_APPLIED,          /* finished, checksum matches */
	MIG_PENDING,          /* local, never applied (or only rolled back) */
	MIG_FAILED,           /* started, not finished, not rolled back */
	MIG_MODIFIED,         /* applied, but the local script has changed since */
	MIG_MISSING_LOCALLY,  /* applied in the database, absent from the folder */
};
const char *migrations_state_name(enum mig_state s);

struct mig_status_item {
	char          *name;
	enum mig_state state;
	char          *started_at;   /* RFC 3339 UTC of the latest row, or NULL */
	char          *finished_at;
	char          *logs;         /* of a failed row, or NULL */
	int            applied_steps;
	int            rolled_back;  /* rows marked rolled back */
};

struct mig_status {
	bool                    table_exists;  /* _prisma_migrations exists in the schema */
	struct mig_status_item *items;         /* local ones in order, then those missing locally */
	size_t                  n;
	size_t                  count[MIG_MISSING_LOCALLY + 1];
};

/*
 * Compares the folder with <schema>._prisma_migrations on conn (read-only, cancellable through
 * ctx). A missing table means every local migration is pending. Free with migrations_status_free().
 */
bool migrations_status(PGconn *conn, const char *schema, const struct mig_set *local,
                       const struct rb_ctx *ctx, struct mig_status *out, struct rb_error *err);
void migrations_status_free(struct mig_status *st);
/* True when nothing is pending, failed, modified or missing locally. */
bool migrations_up_to_date(const struct mig_status *st);
/* {"up_to_date", "table_exists", "counts": {...}, "migrations": [{name, state, ...}]}. Caller decrefs. */
json_t *migrations_status_json(const struct mig_status *st);

/* Prisma's DDL for its history table (schema engine, PostgreSQL), unqualified. */
extern const char migrations_table_ddl[];

/*
 * Creates <schema>._prisma_migrations with Prisma's DDL when it does not exist (the name is
 * quoted; the statement runs with search_path set to the schema, as Prisma's connection has it).
 */
bool migrations_ensure_table(PGconn *conn, const char *schema, const struct rb_ctx *ctx,
                             struct rb_error *err);

/* A random (version 4) UUID in its 36-character text form, as Prisma's ids are. */
void migrations_new_id(char out[37]);

/*
 * `resolve --applied`, as Prisma's engine does it: refused (RB_EXIT_STEP) when the migration is
 * not in the folder or already has a finished row; otherwise its failed rows are marked rolled
 * back and a row is recorded with the local checksum, started_at = finished_at = now(), logs ''
 * (empty, not NULL: Prisma 6 writes that) and applied_steps_count 0. Creates the table when
 * missing. One transaction.
 */
bool migrations_mark_applied(PGconn *conn, const char *schema, const struct mig_local *m,
                             const struct rb_ctx *ctx, struct rb_error *err);
/*
 * `resolve --rolled-back`, as Prisma's engine does it: refused (RB_EXIT_STEP) unless the
 * migration has a failed row (never applied: not found; applied: not in a failed state);
 * sets rolled_back_at = now() on its failed rows. One transaction.
 */
bool migrations_mark_rolled_back(PGconn *conn, const char *schema, const char *name,
                                 const struct rb_ctx *ctx, struct rb_error *err);

#endif
