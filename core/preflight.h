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
	char          *error;          /* connection error (libpq's text, redacted) or NULL */
	char          *where;          /* host:port/dbname */
	char          *server_version; /* "15.18 (Debian ...)" short form, e.g. "15.18" */
	int            server_version_num;
	char          *current_user;
	bool           superuser;
	int64_t        db_size_bytes;
	int64_t        ntables;
	bool           prisma_table;   /* _prisma_migrations exists in the migrations schema */
	int64_t        prisma_applied;
	int64_t        prisma_failed;
	int64_t        prisma_rolled_back;
	bool           lock_held;      /* advisory lock 72707369 held by another session */
	int            lock_pid;
	char          *lock_application;
	int64_t        sessions_total; /* other client sessions on this database */
	int64_t        sessions_active;
	bool           standby;        /* pg_is_in_recovery() */
	struct strlist blockers;       /* human lines; empty when nothing blocks */
};

struct preflight_result {
	struct preflight_env *envs;
	size_t                nenvs;
	bool                  any_unreachable;
	bool                  any_blocker;
};

/*
 * Connects to every environment of the plan and fills out (free with preflight_result_free()).
 * Emits stage_started / log / stage_result / stage_done|stage_failed on ctx->bus. Returns true
 * when every environment was checked, even if blockers were found; an unreachable environment
 * makes it return false with err set (code RB_EXIT_CONNECT), out still filled for the others.
 */
bool preflight_run(const struct plan *p, struct rb_ctx *ctx, struct preflight_result *out,
                   struct rb_error *err);
void preflight_result_free(struct preflight_result *r);
/* The result as a JSON object {"environments": [...], "blocked": bool}. Caller decrefs. */
json_t *preflight_to_json(const struct preflight_result *r);

#endif
