/* preflight.h: the read-only check of every environment before anything changes. */
#ifndef PGRUNBOOK_PREFLIGHT_H
#define PGRUNBOOK_PREFLIGHT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "ctx.h"
#include "error.h"
#include "plan.h"

/* Prisma's advisory lock key (migrate deploy holds it); pgrunbook takes the same one. */
#define PRISMA_ADVISORY_LOCK_KEY 72707369

struct preflight_env {
	char          *name;
	char          *roles;          /* "source", "target", "staging", joined with ", " or "" */
	bool           reachable;
	char          *error;          /* connection error (libpq's text, redacted) or NULL;
	                                  also set when a reachable environment could not be inspected */
	char          *error_detail;   /* libpq's further lines or the error's DETAIL, or NULL */
	char          *where;          /* host:port/dbname */
	char          *dbname;         /* the database connected to (confirmation phrases name it) */
	char          *server_version; /* "15.18 (Debian ...)" short form, e.g. "15.18" */
	int            server_version_num;
	char          *current_user;
	bool           superuser;
	int64_t        db_size_bytes;
	int64_t        ntables;
	char          *prisma_schema;  /* the migrations schema looked in ("public" by default) */
	bool           prisma_table;   /* _prisma_migrations exists in the migrations schema */
	int64_t        prisma_applied;
	int64_t        prisma_failed;
	int64_t        prisma_rolled_back;
	bool           lock_held;      /* advisory lock 72707369 held by another session */
	int            lock_pid;
	char          *lock_application;
	char          *lock_backend_start; /* RFC 3339 UTC, when the holder connected, or NULL */
	char          *lock_state_change;  /* RFC 3339 UTC, when its state last changed, or NULL */
	char          *lock_state;         /* "active", "idle"... or NULL when not visible */
	int64_t        sessions_total; /* other client sessions on this database */
	int64_t        sessions_active;
	bool           standby;        /* pg_is_in_recovery() */
	struct strlist failed_migrations; /* migration_name of every failed Prisma migration */
	struct strlist blockers;       /* human lines; empty when nothing blocks */
	struct strlist warnings;       /* human lines that do not block (non-superuser target...) */
};

struct preflight_result {
	struct preflight_env *envs;
	size_t                nenvs;
	bool                  any_unreachable;
	bool                  any_blocker;
	bool                  cancelled;  /* stopped early by ctx->cancel; envs holds those checked */
};

/*
 * Connects to every environment of the plan and fills out (free with preflight_result_free()).
 * Emits stage_started / log / stage_result / stage_done|stage_failed on ctx->bus, and after each
 * environment a progress event with {"environment": <its JSON>, "done": k, "total": n}. Returns true
 * when every environment was checked, even if blockers were found; an unreachable environment
 * makes it return false with err set (code RB_EXIT_CONNECT, the first unreachable one's error),
 * out still filled for the others. Checks ctx's cancel flag before each environment: when set,
 * returns false with code RB_EXIT_STEP and out->cancelled. Queries are read-only and bounded
 * (statement_timeout 30s, lock_timeout 5s); connecting is bounded by connect_timeout.
 */
bool preflight_run(const struct plan *p, struct rb_ctx *ctx, struct preflight_result *out,
                   struct rb_error *err);
void preflight_result_free(struct preflight_result *r);
/*
 * The result as a JSON object {"environments": [...], "blocked": bool, "unreachable": bool}; each
 * environment has name, roles (array), reachable, error, error_detail, where, server_version,
 * server_version_num, current_user, superuser, db_size_bytes, tables, prisma {table, schema,
 * applied, failed, rolled_back, failed_migrations}, lock {key, held, pid, application,
 * backend_start, state_change, state}, sessions {total, active}, standby, blockers, warnings.
 * Caller decrefs.
 */
json_t *preflight_to_json(const struct preflight_result *r);

#endif
