/* preflight.c: the read-only check of every environment of a plan before anything changes. */
#include "config.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "events.h"
#include "preflight.h"

#define STAGE "preflight"

static json_t *env_json(const struct preflight_env *e);

/* Every name is fully qualified (see db.h); $1 is the migrations schema. */
static const char basics_sql[] =
	"SELECT pg_catalog.current_setting('server_version'),"
	" pg_catalog.current_setting('server_version_num'),"
	" CURRENT_USER,"
	" COALESCE((SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname = CURRENT_USER), false),"
	" pg_catalog.pg_database_size(pg_catalog.current_database()),"
	" (SELECT pg_catalog.count(*) FROM pg_catalog.pg_class c"
	"   JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
	"   WHERE c.relkind IN ('r', 'p')"
	"     AND n.nspname <> 'pg_catalog' AND n.nspname <> 'information_schema'"
	"     AND n.nspname !~ '^pg_(toast|temp_)'),"
	" pg_catalog.pg_is_in_recovery(),"
	" (SELECT pg_catalog.count(*) FROM pg_catalog.pg_stat_activity a"
	"   WHERE a.datname = pg_catalog.current_database() AND a.pid <> pg_catalog.pg_backend_pid()"
	"     AND a.backend_type = 'client backend'),"
	" (SELECT pg_catalog.count(*) FROM pg_catalog.pg_stat_activity a"
	"   WHERE a.datname = pg_catalog.current_database() AND a.pid <> pg_catalog.pg_backend_pid()"
	"     AND a.backend_type = 'client backend' AND a.state = 'active'),"
	" EXISTS (SELECT 1 FROM pg_catalog.pg_class c"
	"   JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
	"   WHERE n.nspname = $1 AND c.relname = '_prisma_migrations' AND c.relkind IN ('r', 'p'))";

#define RFC3339(col) \
	"pg_catalog.to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
#define STR_(x) #x
#define STR(x) STR_(x)

/* pg_advisory_lock(bigint k) shows as classid = k >> 32, objid = k & 0xffffffff, objsubid = 1. */
static const char lock_sql[] =
	"SELECT COALESCE(l.pid, 0), COALESCE(a.application_name, ''),"
	" " RFC3339("a.backend_start") ", " RFC3339("a.state_change") ", a.state"
	" FROM pg_catalog.pg_locks l LEFT JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid"
	" WHERE l.locktype = 'advisory'"
	"   AND l.database = (SELECT d.oid FROM pg_catalog.pg_database d"
	"                     WHERE d.datname = pg_catalog.current_database())"
	"   AND l.classid = 0 AND l.objid = " STR(PRISMA_ADVISORY_LOCK_KEY) " AND l.objsubid = 1"
	"   AND l.granted AND l.pid IS DISTINCT FROM pg_catalog.pg_backend_pid()"
	" ORDER BY l.pid LIMIT 1";

static const char session_limits_sql[] =
	"SET statement_timeout = '30s'; SET lock_timeout = '5s';"
	/* Only pg_catalog resolves: a database owner's operators in public cannot run as us. */
	" SET search_path = ''";

static bool
env_has_role(const struct plan *p, const char *name, const char *role)
{
	const char *v = NULL;
	if (strcmp(role, "source") == 0)
		v = p->source;
	else if (strcmp(role, "target") == 0)
		v = p->target;
	else if (strcmp(role, "staging") == 0)
		v = p->staging.present ? p->staging.environment : NULL;
	return v != NULL && strcmp(v, name) == 0;
}

static char *
env_roles(const struct plan *p, const char *name)
{
	static const char *const roles[] = {"source", "target", "staging"};
	struct strbuf sb = {0};
	for (size_t i = 0; i < RB_ARRAY_LEN(roles); i++) {
		if (!env_has_role(p, name, roles[i]))
			continue;
		if (sb.len)
			strbuf_adds(&sb, ", ");
		strbuf_adds(&sb, roles[i]);
	}
	return strbuf_detach(&sb);
}

static const char *
migrations_schema(const struct plan *p)
{
	if (p->migrations.present && p->migrations.schema && p->migrations.schema[0])
		return p->migrations.schema;
	return "public";
}

static int64_t
to_i64(const char *s)
{
	return s ? strtoll(s, NULL, 10) : 0;
}

static char *
dup_or_null(const PGresult *res, int row, int col)
{
	return PQgetisnull(res, row, col) ? NULL : xstrdup(PQgetvalue(res, row, col));
}

/* Runs a query expected to return rows; on failure fills err and returns NULL. */
static PGresult *
query(PGconn *conn, const char *sql, int nparams, const char *const *params,
      const struct rb_ctx *ctx, struct rb_error *err)
{
	PGresult *res = db_exec(conn, sql, nparams, params, ctx);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		db_error_from_result(err, res, RB_EXIT_STEP);
		PQclear(res);
		return NULL;
	}
	return res;
}

/* Reads the Prisma migrations table's counts and failed migration names. */
static bool
inspect_prisma(PGconn *conn, struct preflight_env *e, const struct rb_ctx *ctx, struct rb_error *err)
{
	char *schema = PQescapeIdentifier(conn, e->prisma_schema, strlen(e->prisma_schema));
	if (schema == NULL) {
		rb_error_setc(err, RB_EXIT_STEP, "could not quote schema name \"%s\"", e->prisma_schema);
		return false;
	}
	char *sql = xasprintf(
		"SELECT pg_catalog.count(*) FILTER (WHERE finished_at IS NOT NULL AND rolled_back_at IS NULL),"
		" pg_catalog.count(*) FILTER (WHERE finished_at IS NULL AND rolled_back_at IS NULL),"
		" pg_catalog.count(*) FILTER (WHERE rolled_back_at IS NOT NULL)"
		" FROM %s._prisma_migrations", schema);
	PGresult *res = query(conn, sql, 0, NULL, ctx, err);
	free(sql);
	if (res == NULL) {
		PQfreemem(schema);
		return false;
	}
	e->prisma_applied = to_i64(PQgetvalue(res, 0, 0));
	e->prisma_failed = to_i64(PQgetvalue(res, 0, 1));
	e->prisma_rolled_back = to_i64(PQgetvalue(res, 0, 2));
	PQclear(res);
	if (e->prisma_failed > 0) {
		sql = xasprintf("SELECT migration_name FROM %s._prisma_migrations"
		                " WHERE finished_at IS NULL AND rolled_back_at IS NULL"
		                " ORDER BY started_at, migration_name", schema);
		res = query(conn, sql, 0, NULL, ctx, err);
		free(sql);
		if (res == NULL) {
			PQfreemem(schema);
			return false;
		}
		for (int i = 0; i < PQntuples(res); i++)
			strlist_push(&e->failed_migrations, PQgetvalue(res, i, 0));
		PQclear(res);
	}
	PQfreemem(schema);
	return true;
}

/* Collects everything preflight reports about one connected environment. */
static bool
inspect(PGconn *conn, struct preflight_env *e, const struct rb_ctx *ctx, struct rb_error *err)
{
	PGresult *res = db_exec(conn, session_limits_sql, 0, NULL, ctx);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		db_error_from_result(err, res, RB_EXIT_STEP);
		PQclear(res);
		return false;
	}
	PQclear(res);

	const char *params[1] = {e->prisma_schema};
	res = query(conn, basics_sql, 1, params, ctx, err);
	if (res == NULL)
		return false;
	const char *version = PQgetvalue(res, 0, 0);
	e->server_version = xstrndup(version, strcspn(version, " "));
	e->server_version_num = (int)to_i64(PQgetvalue(res, 0, 1));
	e->current_user = xstrdup(PQgetvalue(res, 0, 2));
	e->superuser = strcmp(PQgetvalue(res, 0, 3), "t") == 0;
	e->db_size_bytes = to_i64(PQgetvalue(res, 0, 4));
	e->ntables = to_i64(PQgetvalue(res, 0, 5));
	e->standby = strcmp(PQgetvalue(res, 0, 6), "t") == 0;
	e->sessions_total = to_i64(PQgetvalue(res, 0, 7));
	e->sessions_active = to_i64(PQgetvalue(res, 0, 8));
	e->prisma_table = strcmp(PQgetvalue(res, 0, 9), "t") == 0;
	PQclear(res);

	res = query(conn, lock_sql, 0, NULL, ctx, err);
	if (res == NULL)
		return false;
	if (PQntuples(res) > 0) {
		e->lock_held = true;
		e->lock_pid = (int)to_i64(PQgetvalue(res, 0, 0));
		e->lock_application = xstrdup(PQgetvalue(res, 0, 1));
		e->lock_backend_start = dup_or_null(res, 0, 2);
		e->lock_state_change = dup_or_null(res, 0, 3);
		e->lock_state = dup_or_null(res, 0, 4);
	}
	PQclear(res);

	if (e->prisma_table && !inspect_prisma(conn, e, ctx, err))
		return false;
	return true;
}

/* The role word used in blocker lines: "target", "staging"... */
static const char *
main_role(const struct plan *p, const char *name)
{
	if (env_has_role(p, name, "target"))
		return "target";
	if (env_has_role(p, name, "staging"))
		return "staging";
	if (env_has_role(p, name, "source"))
		return "source";
	return "environment";
}

static void
add_lock_blocker(struct preflight_env *e, const char *role, struct strlist *into)
{
	struct strbuf sb = {0};
	strbuf_addf(&sb, "advisory lock %d (Prisma's migration lock) on %s \"%s\" is held by ",
	            PRISMA_ADVISORY_LOCK_KEY, role, e->name);
	if (e->lock_pid > 0)
		strbuf_addf(&sb, "another session: pid %d (application \"%s\"", e->lock_pid,
		            e->lock_application ? e->lock_application : "");
	else
		strbuf_adds(&sb, "a prepared transaction (");
	if (e->lock_backend_start)
		strbuf_addf(&sb, ", connected since %s", e->lock_backend_start);
	if (e->lock_state && e->lock_state_change)
		strbuf_addf(&sb, ", %s since %s", e->lock_state, e->lock_state_change);
	strbuf_adds(&sb, "); a prisma migrate deploy or another pgrunbook run is probably in "
	            "progress: wait for it to finish");
	if (e->lock_pid > 0)
		strbuf_addf(&sb, ", or, once you know the session is stale, end it with "
		            "SELECT pg_terminate_backend(%d)", e->lock_pid);
	strlist_push_owned(into, strbuf_detach(&sb));
}

/* Turns what was found into blocker and warning lines. */
static void
judge(const struct plan *p, struct preflight_env *e)
{
	bool target = env_has_role(p, e->name, "target");
	bool staging = env_has_role(p, e->name, "staging");
	const char *role = main_role(p, e->name);

	if (e->standby && (target || staging))
		strlist_push_owned(&e->blockers, xasprintf(
			"%s \"%s\" is a standby (pg_is_in_recovery() is true) and cannot take writes; "
			"point the plan's %s at the primary server", role, e->name, role));
	else if (e->standby)
		strlist_push_owned(&e->warnings, xasprintf(
			"%s \"%s\" is a standby; reads may lag behind the primary", role, e->name));

	if (e->prisma_failed > 0) {
		struct strbuf names = {0};
		for (size_t i = 0; i < e->failed_migrations.len; i++) {
			if (i)
				strbuf_adds(&names, ", ");
			strbuf_adds(&names, e->failed_migrations.items[i]);
		}
		char *line = xasprintf(
			"%s \"%s\" has %" PRId64 " failed Prisma migration%s in %s._prisma_migrations: %s; "
			"Prisma refuses to deploy until it is resolved: see what it ran, then mark it "
			"rolled back or applied (pgrunbook migrate resolve or prisma migrate resolve), "
			"or restore a backup", role, e->name, e->prisma_failed,
			e->prisma_failed == 1 ? "" : "s", e->prisma_schema, names.buf ? names.buf : "");
		strbuf_release(&names);
		strlist_push_owned(target ? &e->blockers : &e->warnings, line);
	}

	if (e->lock_held)
		add_lock_blocker(e, role, target ? &e->blockers : &e->warnings);

	if (target && !e->superuser)
		strlist_push_owned(&e->warnings, xasprintf(
			"role \"%s\" on target \"%s\" is not a superuser: blocking connections, terminating "
			"sessions and restoring a backup may need one; connect as the database owner or a "
			"superuser if those stages fail", e->current_user, e->name));
}

static void
log_env(struct events *bus, const struct preflight_env *e)
{
	const char *roles = e->roles[0] ? e->roles : "unused";
	if (!e->reachable) {
		events_log(bus, LOG_LEVEL_ERROR, STAGE, "%s [%s]: unreachable: %s", e->name, roles,
		           e->error ? e->error : "");
		return;
	}
	if (e->error) {
		events_log(bus, LOG_LEVEL_ERROR, STAGE, "%s [%s]: %s: could not inspect: %s", e->name,
		           roles, e->where, e->error);
		return;
	}
	struct strbuf sb = {0};
	strbuf_addf(&sb, "%s [%s]: PostgreSQL %s at %s as %s%s, %" PRId64 " tables, ", e->name, roles,
	            e->server_version, e->where, e->current_user, e->superuser ? " (superuser)" : "",
	            e->ntables);
	if (e->prisma_table)
		strbuf_addf(&sb, "prisma applied %" PRId64 " failed %" PRId64, e->prisma_applied,
		            e->prisma_failed);
	else
		strbuf_adds(&sb, "no _prisma_migrations");
	if (e->lock_held)
		strbuf_addf(&sb, ", lock held by pid %d", e->lock_pid);
	if (e->standby)
		strbuf_adds(&sb, ", standby");
	if (e->blockers.len)
		strbuf_addf(&sb, ", %zu blocker%s", e->blockers.len, e->blockers.len == 1 ? "" : "s");
	events_log(bus, e->blockers.len ? LOG_LEVEL_WARN : LOG_LEVEL_INFO, STAGE, "%s", sb.buf);
	strbuf_release(&sb);
}

/* Checks one environment into e. cerr receives the connection error, if any. */
static void
check_env(const struct plan *p, const struct plan_env *pe, struct preflight_env *e,
          const struct rb_ctx *ctx, struct rb_error *cerr)
{
	e->name = xstrdup(pe->name);
	e->roles = env_roles(p, pe->name);
	e->prisma_schema = xstrdup(migrations_schema(p));
	PGconn *conn = db_connect_ctx(p, pe->name, ctx, cerr);
	if (conn == NULL) {
		e->reachable = false;
		e->error = xstrdup(cerr->message ? cerr->message : "could not connect");
		e->error_detail = cerr->detail ? xstrdup(cerr->detail) : NULL;
		strlist_push_owned(&e->blockers, xasprintf(
			"%s \"%s\" is unreachable (see its error). %s", main_role(p, pe->name), pe->name,
			cerr->hint ? cerr->hint :
			"Check that the server is running and that the plan's connection settings are "
			"right, then run preflight again."));
		return;
	}
	e->reachable = true;
	e->where = db_describe(conn);
	e->dbname = xstrdup(PQdb(conn));
	struct rb_error qerr = {0};
	if (!inspect(conn, e, ctx, &qerr)) {
		e->error = xstrdup(qerr.message ? qerr.message : "query failed");
		e->error_detail = qerr.detail ? xstrdup(qerr.detail) : NULL;
		char *line = xasprintf("could not inspect %s \"%s\": %s", main_role(p, pe->name),
		                       pe->name, e->error);
		/* What cannot be inspected blocks where pgrunbook will write (target, staging). */
		bool writes = env_has_role(p, pe->name, "target") || env_has_role(p, pe->name, "staging");
		strlist_push_owned(writes ? &e->blockers : &e->warnings, line);
	} else {
		judge(p, e);
	}
	rb_error_clear(&qerr);
	PQfinish(conn);
}

bool
preflight_run(const struct plan *p, struct rb_ctx *ctx, struct preflight_result *out,
              struct rb_error *err)
{
	struct events *bus = ctx ? ctx->bus : NULL;
	struct rb_error first = {0};
	memset(out, 0, sizeof *out);
	out->envs = xcalloc(p->nenvs ? p->nenvs : 1, sizeof *out->envs);

	events_emitf(bus, EV_STAGE_STARTED, STAGE, NULL, "checking %zu environment%s", p->nenvs,
	             p->nenvs == 1 ? "" : "s");
	for (size_t i = 0; i < p->nenvs; i++) {
		if (rb_ctx_cancelled(ctx)) {
			out->cancelled = true;
			break;
		}
		struct preflight_env *e = &out->envs[out->nenvs++];
		struct rb_error cerr = {0};
		check_env(p, &p->envs[i], e, ctx, &cerr);
		if (rb_ctx_cancelled(ctx)) {
			/* Interrupted mid-check: what this environment shows is partial, not a finding. */
			out->cancelled = true;
			rb_error_clear(&cerr);
			log_env(bus, e);
			break;
		}
		if (!e->reachable) {
			out->any_unreachable = true;
			if (first.message == NULL) {
				first = cerr;
				memset(&cerr, 0, sizeof cerr);
			}
		}
		if (e->blockers.len)
			out->any_blocker = true;
		rb_error_clear(&cerr);
		log_env(bus, e);
		/* Each environment's findings as soon as it is checked (screens fill its row). */
		json_t *pd = json_pack("{s:o, s:I, s:I}", "environment", env_json(e),
		                       "done", (json_int_t)out->nenvs, "total", (json_int_t)p->nenvs);
		events_emitf(bus, EV_PROGRESS, STAGE, pd, "%s checked", e->name);
		json_decref(pd);
	}

	json_t *data = preflight_to_json(out);
	events_emitf(bus, EV_STAGE_RESULT, STAGE, data, "preflight result");
	json_decref(data);

	size_t nblockers = 0, nunreachable = 0;
	for (size_t i = 0; i < out->nenvs; i++) {
		nblockers += out->envs[i].blockers.len;
		nunreachable += !out->envs[i].reachable;
	}
	bool ok = true;
	if (out->cancelled) {
		events_emitf(bus, EV_STAGE_FAILED, STAGE, NULL, "cancelled after %zu of %zu environments",
		             out->nenvs, p->nenvs);
		rb_error_setc(err, RB_EXIT_STEP, "preflight cancelled after %zu of %zu environments",
		              out->nenvs, p->nenvs);
		ok = false;
	} else if (out->any_unreachable || out->any_blocker) {
		events_emitf(bus, EV_STAGE_FAILED, STAGE, NULL, "%zu blocker%s, %zu environment%s unreachable",
		             nblockers, nblockers == 1 ? "" : "s", nunreachable,
		             nunreachable == 1 ? "" : "s");
	} else {
		events_emitf(bus, EV_STAGE_DONE, STAGE, NULL, "%zu environment%s ready", out->nenvs,
		             out->nenvs == 1 ? "" : "s");
	}
	if (ok && out->any_unreachable) {
		if (err) {
			rb_error_clear(err);
			*err = first;
			memset(&first, 0, sizeof first);
		}
		ok = false;
	}
	rb_error_clear(&first);
	return ok;
}

void
preflight_result_free(struct preflight_result *r)
{
	if (r == NULL)
		return;
	for (size_t i = 0; i < r->nenvs; i++) {
		struct preflight_env *e = &r->envs[i];
		free(e->name);
		free(e->roles);
		free(e->error);
		free(e->error_detail);
		free(e->where);
		free(e->dbname);
		free(e->server_version);
		free(e->current_user);
		free(e->prisma_schema);
		free(e->lock_application);
		free(e->lock_backend_start);
		free(e->lock_state_change);
		free(e->lock_state);
		strlist_free(&e->failed_migrations);
		strlist_free(&e->blockers);
		strlist_free(&e->warnings);
	}
	free(r->envs);
	memset(r, 0, sizeof *r);
}

static json_t *
str_or_null(const char *s)
{
	return s ? json_string(s) : json_null();
}

static json_t *
strlist_json(const struct strlist *l)
{
	json_t *a = json_array();
	for (size_t i = 0; i < l->len; i++)
		json_array_append_new(a, json_string(l->items[i]));
	return a;
}

static json_t *
env_json(const struct preflight_env *e)
{
	json_t *o = json_object();
	json_object_set_new(o, "name", json_string(e->name));
	json_t *roles = json_array();
	const char *r = e->roles ? e->roles : "";
	while (*r) {
		size_t n = strcspn(r, ",");
		json_array_append_new(roles, json_stringn(r, n));
		r += n;
		while (*r == ',' || *r == ' ')
			r++;
	}
	json_object_set_new(o, "roles", roles);
	json_object_set_new(o, "reachable", json_boolean(e->reachable));
	json_object_set_new(o, "error", str_or_null(e->error));
	json_object_set_new(o, "error_detail", str_or_null(e->error_detail));
	json_object_set_new(o, "where", str_or_null(e->where));
	json_object_set_new(o, "dbname", str_or_null(e->dbname));
	bool inspected = e->reachable && e->server_version != NULL;
	json_object_set_new(o, "server_version", str_or_null(e->server_version));
	json_object_set_new(o, "server_version_num",
	                    inspected ? json_integer(e->server_version_num) : json_null());
	json_object_set_new(o, "current_user", str_or_null(e->current_user));
	json_object_set_new(o, "superuser", inspected ? json_boolean(e->superuser) : json_null());
	json_object_set_new(o, "db_size_bytes", inspected ? json_integer(e->db_size_bytes) : json_null());
	json_object_set_new(o, "tables", inspected ? json_integer(e->ntables) : json_null());
	json_object_set_new(o, "standby", inspected ? json_boolean(e->standby) : json_null());
	if (inspected) {
		json_t *prisma = json_object();
		json_object_set_new(prisma, "schema", str_or_null(e->prisma_schema));
		json_object_set_new(prisma, "table", json_boolean(e->prisma_table));
		json_object_set_new(prisma, "applied", json_integer(e->prisma_applied));
		json_object_set_new(prisma, "failed", json_integer(e->prisma_failed));
		json_object_set_new(prisma, "rolled_back", json_integer(e->prisma_rolled_back));
		json_object_set_new(prisma, "failed_migrations", strlist_json(&e->failed_migrations));
		json_object_set_new(o, "prisma", prisma);

		json_t *lock = json_object();
		json_object_set_new(lock, "key", json_integer(PRISMA_ADVISORY_LOCK_KEY));
		json_object_set_new(lock, "held", json_boolean(e->lock_held));
		json_object_set_new(lock, "pid", e->lock_held ? json_integer(e->lock_pid) : json_null());
		json_object_set_new(lock, "application", str_or_null(e->lock_application));
		json_object_set_new(lock, "backend_start", str_or_null(e->lock_backend_start));
		json_object_set_new(lock, "state_change", str_or_null(e->lock_state_change));
		json_object_set_new(lock, "state", str_or_null(e->lock_state));
		json_object_set_new(o, "lock", lock);

		json_t *sessions = json_object();
		json_object_set_new(sessions, "total", json_integer(e->sessions_total));
		json_object_set_new(sessions, "active", json_integer(e->sessions_active));
		json_object_set_new(o, "sessions", sessions);
	} else {
		json_object_set_new(o, "prisma", json_null());
		json_object_set_new(o, "lock", json_null());
		json_object_set_new(o, "sessions", json_null());
	}
	json_object_set_new(o, "blockers", strlist_json(&e->blockers));
	json_object_set_new(o, "warnings", strlist_json(&e->warnings));
	return o;
}

json_t *
preflight_to_json(const struct preflight_result *r)
{
	json_t *o = json_object();
	json_t *envs = json_array();
	for (size_t i = 0; i < r->nenvs; i++)
		json_array_append_new(envs, env_json(&r->envs[i]));
	json_object_set_new(o, "environments", envs);
	json_object_set_new(o, "blocked", json_boolean(r->any_blocker || r->any_unreachable));
	json_object_set_new(o, "unreachable", json_boolean(r->any_unreachable));
	json_object_set_new(o, "cancelled", json_boolean(r->cancelled));
	return o;
}
