/* maintenance.c: the layered write freeze (maintenance on), its journaled thaw (off) and status. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "confirm.h"
#include "db.h"
#include "events.h"
#include "journal.h"
#include "maintenance.h"

extern char **environ;

#define HOOK_TIMEOUT_MS 60000
#define HOOK_KILL_MS    5000
#define PGBOUNCER_TIMEOUT_MS 60000
/* lock_timeout of the freeze and thaw statements (ALTER DATABASE, GRANT, REVOKE) and of the thaw's lock */
#define MAINT_LOCK_TIMEOUT   "10s"
/* the first key of the advisory lock (the second: the database's oid): "pgrb" */
#define MAINT_LOCK_KEY       "1886876258"

/* One freeze or thaw in progress. */
struct mctx {
	const struct plan *p;
	const char        *env;
	PGconn            *conn;
	char              *db;
	char              *server;
	const char        *run_id;     /* the run journaling this freeze/thaw, may be "" */
	const char        *who;
	const char        *stage;
	struct journal    *j;
	const struct rb_ctx *ctx;
	bool               superuser;
	char               frozen_at[32];
};

static struct events *
bus_of(const struct rb_ctx *ctx)
{
	return ctx ? ctx->bus : NULL;
}

static const char *
jstr(json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

static bool
streq(const char *a, const char *b)
{
	return a && b && strcmp(a, b) == 0;
}

static char *
server_of(PGconn *conn)
{
	const char *h = PQhost(conn), *port = PQport(conn);
	return xasprintf("%s:%s", h && *h ? h : "localhost", port && *port ? port : "5432");
}

/* Checks the journal after an emitted step: a broken journal means an undo record may be lost. */
static bool
journal_ok(const struct mctx *m, struct rb_error *err)
{
	struct rb_error jerr = {0};
	if (m->j && journal_failed(m->j, &jerr)) {
		rb_error_setc(err, RB_EXIT_STEP, "the journal could not be written: %s",
		              jerr.message ? jerr.message : "unknown error");
		rb_error_detail(err, "A layer is only applied once its undo record is journaled.");
		rb_error_clear(&jerr);
		return false;
	}
	return true;
}

static json_t *
step_data(const struct mctx *m, const char *kind, const char *layer, const char *state)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "kind", kind, "layer", layer, "state", state,
	                 "database", m->db, "environment", m->env, "server", m->server);
}

/* ---- sessions ---- */

static const char SESSIONS_SQL[] =
	"SELECT a.pid, coalesce(a.usename, ''), coalesce(a.application_name, ''),"
	" coalesce(pg_catalog.host(a.client_addr), 'local'), coalesce(a.state, ''),"
	" coalesce(pg_catalog.to_char(a.backend_start AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), ''),"
	" coalesce(pg_catalog.to_char(a.xact_start AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), ''),"
	" coalesce(pg_catalog.to_char(a.query_start AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), ''),"
	" CASE WHEN a.query OPERATOR(pg_catalog.~*) 'passw' THEN '(hidden: it mentions a password)'"
	"  ELSE pg_catalog.left(coalesce(a.query, ''), 200) END"
	" FROM pg_catalog.pg_stat_activity a"
	" WHERE a.datname OPERATOR(pg_catalog.=) pg_catalog.current_database()"
	" AND a.backend_type OPERATOR(pg_catalog.=) 'client backend'"
	" AND a.pid OPERATOR(pg_catalog.<>) pg_catalog.pg_backend_pid()"
	" AND coalesce(a.application_name, '') NOT LIKE 'pgrunbook%'"
	" ORDER BY a.pid";

static bool
list_sessions(PGconn *conn, const struct rb_ctx *ctx, json_t **out, struct rb_error *err)
{
	PGresult *res = db_exec(conn, SESSIONS_SQL, 0, NULL, ctx);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		db_error_from_result(err, res, RB_EXIT_STEP);
		rb_error_prefix(err, "could not list the sessions");
		PQclear(res);
		return false;
	}
	json_t *a = json_array();
	for (int i = 0; i < PQntuples(res); i++)
		json_array_append_new(a, json_pack("{s:I, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}",
		        "pid", (json_int_t)atoll(PQgetvalue(res, i, 0)), "user", PQgetvalue(res, i, 1),
		        "application", PQgetvalue(res, i, 2), "client", PQgetvalue(res, i, 3),
		        "state", PQgetvalue(res, i, 4), "backend_start", PQgetvalue(res, i, 5),
		        "xact_start", PQgetvalue(res, i, 6), "query_start", PQgetvalue(res, i, 7),
		        "query", PQgetvalue(res, i, 8)));
	PQclear(res);
	*out = a;
	return true;
}

/*
 * "terminate <N> sessions on <db> list <code>": the code is the first 4 hex digits of the SHA-256
 * of the listed sessions' "pid backend_start" lines (sorted by pid), so a phrase typed for one list
 * does not confirm another list of the same length (a pid reused by a new session has another
 * backend_start).
 */
static char *
terminate_phrase(json_t *sessions, const char *db)
{
	struct strbuf sb = {0};
	size_t i;
	json_t *s;
	json_array_foreach(sessions, i, s)
		strbuf_addf(&sb, "%" JSON_INTEGER_FORMAT " %s\n", json_integer_value(json_object_get(s, "pid")),
		            jstr(s, "backend_start"));
	char sum[65];
	sha256_hex(sb.buf ? sb.buf : "", sb.len, sum);
	strbuf_release(&sb);
	return xasprintf("terminate %zu sessions on %s list %.4s", json_array_size(sessions), db, sum);
}

/* The sessions as detail lines: "pid 123, user app, application psql, client local, ...". */
static char *
sessions_text(json_t *sessions)
{
	struct strbuf sb = {0};
	size_t i;
	json_t *s;
	json_array_foreach(sessions, i, s) {
		const char *qs = jstr(s, "query_start");
		strbuf_addf(&sb, "%spid %" JSON_INTEGER_FORMAT ", user %s, application %s, client %s, state %s, query start %s",
		            i ? "\n" : "", json_integer_value(json_object_get(s, "pid")), jstr(s, "user"),
		            *jstr(s, "application") ? jstr(s, "application") : "-", jstr(s, "client"),
		            *jstr(s, "state") ? jstr(s, "state") : "-", qs && *qs ? qs : "-");
	}
	return strbuf_detach(&sb);
}

bool
maint_sessions(const struct plan *p, const char *env, const struct rb_ctx *ctx, json_t **sessions, char **phrase,
               struct rb_error *err)
{
	*sessions = NULL;
	*phrase = NULL;
	if (env == NULL)
		env = p->target;
	PGconn *conn = db_connect_ctx(p, env, ctx, err);
	if (conn == NULL)
		return false;
	bool ok = list_sessions(conn, ctx, sessions, err);
	if (ok)
		*phrase = terminate_phrase(*sessions, PQdb(conn));
	PQfinish(conn);
	return ok;
}

/* ---- server state ---- */

static bool
query_rows(PGconn *conn, const char *sql, int nparams, const char *const *params, const struct rb_ctx *ctx,
           PGresult **out, struct rb_error *err)
{
	PGresult *res = db_exec(conn, sql, nparams, params, ctx);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		db_error_from_result(err, res, RB_EXIT_STEP);
		PQclear(res);
		return false;
	}
	*out = res;
	return true;
}

/* The database's own setting of name (ALTER DATABASE .. SET), or NULL; *found tells which. */
static bool
db_setting(PGconn *conn, const char *name, char **value, const struct rb_ctx *ctx, struct rb_error *err)
{
	static const char sql[] =
		"SELECT pg_catalog.substr(c.cfg, pg_catalog.length($1) + 2)"
		" FROM pg_catalog.pg_db_role_setting r, pg_catalog.unnest(r.setconfig) AS c(cfg)"
		" WHERE r.setrole OPERATOR(pg_catalog.=) 0 AND r.setdatabase OPERATOR(pg_catalog.=)"
		"  (SELECT d.oid FROM pg_catalog.pg_database d WHERE d.datname OPERATOR(pg_catalog.=) pg_catalog.current_database())"
		" AND pg_catalog.split_part(c.cfg, '=', 1) OPERATOR(pg_catalog.=) $1";
	const char *params[1] = { name };
	PGresult *res;
	*value = NULL;
	if (!query_rows(conn, sql, 1, params, ctx, &res, err))
		return false;
	if (PQntuples(res) > 0)
		*value = xstrdup(PQgetvalue(res, 0, 0));
	PQclear(res);
	return true;
}

static bool
exec_sql(const struct mctx *m, const char *sql, struct rb_error *err)
{
	return db_run(m->conn, sql, 0, NULL, m->ctx, err);
}

/* Adds to err the sessions that may hold the lock a statement waited for (open write transactions). */
static void
add_blockers(const struct mctx *m, struct rb_error *err)
{
	PGresult *res = db_exec(m->conn,
		"SELECT a.pid, coalesce(a.usename, ''), coalesce(a.application_name, ''), coalesce(a.datname, ''),"
		" coalesce(pg_catalog.to_char(a.xact_start AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), '')"
		" FROM pg_catalog.pg_stat_activity a WHERE a.pid OPERATOR(pg_catalog.<>) pg_catalog.pg_backend_pid()"
		" AND a.backend_xid IS NOT NULL ORDER BY a.xact_start LIMIT 10", 0, NULL, m->ctx);
	struct strbuf sb = {0};
	if (PQresultStatus(res) == PGRES_TUPLES_OK) {
		for (int i = 0; i < PQntuples(res); i++)
			strbuf_addf(&sb, "%spid %s (user %s, application %s, database %s, transaction since %s)",
			            i ? "; " : "", PQgetvalue(res, i, 0), PQgetvalue(res, i, 1),
			            *PQgetvalue(res, i, 2) ? PQgetvalue(res, i, 2) : "-", PQgetvalue(res, i, 3),
			            PQgetvalue(res, i, 4));
	}
	PQclear(res);
	if (sb.len)
		rb_error_detail(err, "The lock was held by another transaction; open write transactions now: %s.", sb.buf);
	else
		rb_error_detail(err, "The lock was held by another transaction, which has ended since.");
	rb_error_hint(err, "Nothing waits forever: end the blocking transaction (or wait for it) and run the command again.");
	strbuf_release(&sb);
}

/*
 * A freeze or thaw statement (ALTER DATABASE, GRANT, REVOKE) with lock_timeout MAINT_LOCK_TIMEOUT:
 * a transaction holding the database's row (another ALTER DATABASE) makes it fail and be
 * reported instead of waiting without end.
 */
static bool
exec_ddl(const struct mctx *m, const char *sql, struct rb_error *err)
{
	/* one implicit transaction: on failure the SET is rolled back with the statement */
	char *batch = xasprintf("SET lock_timeout = '" MAINT_LOCK_TIMEOUT "'; %s; RESET lock_timeout", sql);
	bool ok = exec_sql(m, batch, err);
	/*
	 * a statement that waited for another transaction changing the same catalog row fails with
	 * "tuple concurrently updated" once that one commits: run it again, now on the new row
	 */
	for (int tries = 0; !ok && tries < 3 && err->message && strstr(err->message, "tuple concurrently updated"); tries++) {
		rb_error_clear(err);
		ok = exec_sql(m, batch, err);
	}
	free(batch);
	if (!ok && strcmp(err->sqlstate, "55P03") == 0)
		add_blockers(m, err);
	return ok;
}

/* The pid and application of the session holding the freeze lock of m's database: "pid N (app)". */
static char *
lock_holder(const struct mctx *m)
{
	PGresult *res = db_exec(m->conn,
		"SELECT l.pid, coalesce(a.application_name, ''), coalesce(pg_catalog.left(a.query, 60), '')"
		" FROM pg_catalog.pg_locks l LEFT JOIN pg_catalog.pg_stat_activity a ON a.pid OPERATOR(pg_catalog.=) l.pid"
		" WHERE l.locktype OPERATOR(pg_catalog.=) 'advisory' AND l.granted"
		" AND l.classid OPERATOR(pg_catalog.=) " MAINT_LOCK_KEY "::pg_catalog.oid"
		" AND l.objid OPERATOR(pg_catalog.=) (SELECT d.oid FROM pg_catalog.pg_database d"
		"  WHERE d.datname OPERATOR(pg_catalog.=) pg_catalog.current_database())"
		" AND l.objsubid OPERATOR(pg_catalog.=) 2 LIMIT 1", 0, NULL, m->ctx);
	char *r;
	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
		r = xasprintf("pid %s, application %s", PQgetvalue(res, 0, 0),
		              *PQgetvalue(res, 0, 1) ? PQgetvalue(res, 0, 1) : "-");
	else
		r = xstrdup("a session that has ended since");
	PQclear(res);
	return r;
}

#define MAINT_LOCK_ARGS MAINT_LOCK_KEY ", (SELECT d.oid::pg_catalog.int4 FROM pg_catalog.pg_database d" \
	" WHERE d.datname OPERATOR(pg_catalog.=) pg_catalog.current_database())"

/*
 * The freeze lock: a session advisory lock (MAINT_LOCK_KEY, the database's oid) held by a freeze
 * from its check to its last layer and by a thaw, so two freezes or a freeze and a thaw of one
 * database never interleave. wait false: refuses at once when held; true: waits up to
 * MAINT_LOCK_TIMEOUT. Released when the connection closes.
 */
static bool
take_lock(const struct mctx *m, bool wait, struct rb_error *err)
{
	if (wait) {
		if (db_run(m->conn, "SET lock_timeout = '" MAINT_LOCK_TIMEOUT "'; SELECT pg_catalog.pg_advisory_lock("
		           MAINT_LOCK_ARGS "); RESET lock_timeout", 0, NULL, m->ctx, err))
			return true;
		if (strcmp(err->sqlstate, "55P03") == 0) {
			char *h = lock_holder(m);
			rb_error_clear(err);
			rb_error_setc(err, RB_EXIT_STEP, "another pgrunbook is freezing or thawing database %s (%s)", m->db, h);
			rb_error_detail(err, "pgrunbook waited " MAINT_LOCK_TIMEOUT " for its lock on the database.");
			rb_error_hint(err, "Let it finish and run the command again.");
			free(h);
		}
		return false;
	}
	char *got = db_query_value(m->conn, "SELECT pg_catalog.pg_try_advisory_lock(" MAINT_LOCK_ARGS ")", err);
	if (got == NULL)
		return false;
	bool ok = got[0] == 't';
	free(got);
	if (!ok) {
		char *h = lock_holder(m);
		rb_error_setc(err, RB_EXIT_STEP, "another pgrunbook is freezing or thawing database %s (%s)", m->db, h);
		rb_error_detail(err, "Only one freeze or thaw of a database runs at a time; nothing was changed.");
		rb_error_hint(err, "Let it finish, then check pgrunbook maintenance status.");
		free(h);
	}
	return ok;
}

/*
 * Ends the freeze or thaw statements still running on m's database for a pgrunbook that is gone
 * (killed while a layer waited on a lock): its backend would otherwise apply the layer later,
 * after the thaw. Only sessions named pgrunbook running ALTER DATABASE, GRANT or REVOKE.
 */
static void
end_leftovers(const struct mctx *m)
{
	PGresult *res = db_exec(m->conn,
		"SELECT a.pid, pg_catalog.pg_terminate_backend(a.pid, 5000) FROM pg_catalog.pg_stat_activity a"
		" WHERE a.datname OPERATOR(pg_catalog.=) pg_catalog.current_database()"
		" AND a.pid OPERATOR(pg_catalog.<>) pg_catalog.pg_backend_pid()"
		" AND coalesce(a.application_name, '') LIKE 'pgrunbook%' AND a.state OPERATOR(pg_catalog.=) 'active'"
		" AND a.query OPERATOR(pg_catalog.~*) '^\\s*(SET lock_timeout[^;]*;\\s*)?(ALTER DATABASE|GRANT|REVOKE)'",
		0, NULL, m->ctx);
	if (PQresultStatus(res) == PGRES_TUPLES_OK) {
		for (int i = 0; i < PQntuples(res); i++)
			events_log(bus_of(m->ctx), LOG_LEVEL_WARN, m->stage,
			           "ended backend %s: a freeze statement of a pgrunbook that is gone was still running",
			           PQgetvalue(res, i, 0));
	}
	PQclear(res);
}

/* "ALTER DATABASE <db> <prefix><arg>". Caller frees. */
static char *
alter_db(const struct mctx *m, const char *prefix, const char *arg)
{
	char *qdb = db_quote_ident(m->conn, m->db);
	char *sql = xasprintf("ALTER DATABASE %s %s%s", qdb, prefix, arg ? arg : "");
	free(qdb);
	return sql;
}

static char *
literal(PGconn *conn, const char *s)
{
	char *q = PQescapeLiteral(conn, s, strlen(s));
	char *r = xstrdup(q ? q : "''");
	PQfreemem(q);
	return r;
}

/* ---- counters (slipped writes) ---- */

static bool
read_counters(PGconn *conn, const struct rb_ctx *ctx, json_t **out, struct rb_error *err)
{
	PGresult *res = db_exec(conn, "SELECT pg_catalog.pg_stat_clear_snapshot()", 0, NULL, ctx);
	PQclear(res);
	if (!query_rows(conn,
	                "SELECT s.schemaname OPERATOR(pg_catalog.||) '.' OPERATOR(pg_catalog.||) s.relname,"
	                " s.n_tup_ins, s.n_tup_upd, s.n_tup_del FROM pg_catalog.pg_stat_user_tables s ORDER BY 1",
	                0, NULL, ctx, &res, err))
		return false;
	json_t *tables = json_object(), *changes = json_object();
	for (int i = 0; i < PQntuples(res); i++) {
		long long ins = atoll(PQgetvalue(res, i, 1)), upd = atoll(PQgetvalue(res, i, 2)),
		          del = atoll(PQgetvalue(res, i, 3));
		json_object_set_new(tables, PQgetvalue(res, i, 0), json_integer(ins + upd + del));
		json_object_set_new(changes, PQgetvalue(res, i, 0), json_pack("[I,I,I]", (json_int_t)ins,
		                                                               (json_int_t)upd, (json_int_t)del));
	}
	PQclear(res);
	char *xc = db_query_value(conn, "SELECT d.xact_commit FROM pg_catalog.pg_stat_database d"
	                                " WHERE d.datname OPERATOR(pg_catalog.=) pg_catalog.current_database()", err);
	if (xc == NULL) {
		json_decref(tables);
		json_decref(changes);
		return false;
	}
	/* the database's oid: counters of a database replaced since (a restore) are not comparable */
	char *oid = db_query_value(conn, "SELECT d.oid FROM pg_catalog.pg_database d"
	                                 " WHERE d.datname OPERATOR(pg_catalog.=) pg_catalog.current_database()", err);
	if (oid == NULL) {
		free(xc);
		json_decref(tables);
		json_decref(changes);
		return false;
	}
	*out = json_pack("{s:I, s:I, s:o, s:o}", "xact_commit", (json_int_t)atoll(xc), "database_oid",
	                 (json_int_t)atoll(oid), "tables", tables, "changes", changes);
	free(xc);
	free(oid);
	return true;
}

/*
 * The tables whose counters moved from a to b: [{"table", "inserted", "updated", "deleted"}].
 * NULL when a and b are not comparable: another database (its oid changed: replaced by a
 * restore) or a counter went back (statistics reset); *why (may be NULL) then says which.
 */
static json_t *
counters_diff(json_t *a, json_t *b, const char **why)
{
	json_t *oa = json_object_get(a, "database_oid"), *ob = json_object_get(b, "database_oid");
	if (oa && ob && json_integer_value(oa) != json_integer_value(ob)) {
		if (why)
			*why = "not comparable (the database was replaced)";
		return NULL;
	}
	if (json_integer_value(json_object_get(b, "xact_commit")) < json_integer_value(json_object_get(a, "xact_commit"))) {
		if (why)
			*why = "not comparable (the statistics were reset)";
		return NULL;
	}
	json_t *out = json_array();
	json_t *ca = json_object_get(a, "changes"), *cb = json_object_get(b, "changes");
	const char *t;
	json_t *vb;
	json_object_foreach(cb, t, vb) {
		json_t *va = json_object_get(ca, t);
		long long d[3];
		for (int k = 0; k < 3; k++)
			d[k] = json_integer_value(json_array_get(vb, k)) - (va ? json_integer_value(json_array_get(va, k)) : 0);
		if (d[0] < 0 || d[1] < 0 || d[2] < 0) {
			json_decref(out);
			if (why)
				*why = "not comparable (the statistics were reset)";
			return NULL;
		}
		if (d[0] || d[1] || d[2])
			json_array_append_new(out, json_pack("{s:s, s:I, s:I, s:I}", "table", t, "inserted", (json_int_t)d[0],
			                                     "updated", (json_int_t)d[1], "deleted", (json_int_t)d[2]));
	}
	return out;
}

static bool
sleep_ms(const struct rb_ctx *ctx, long long ms)
{
	long long end = time_monotonic_ms() + ms;
	while (time_monotonic_ms() < end) {
		if (rb_ctx_cancelled(ctx))
			return false;
		struct timespec ts = { 0, 50 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	return true;
}

/* ---- hooks ---- */

static void
emit_hook_line(const struct mctx *m, const char *line)
{
	/* progress, not log: hook output goes to the screen, never to the journal */
	json_t *d = json_pack("{s:s, s:s}", "kind", "hook_output", "line", line);
	events_emitf(bus_of(m->ctx), EV_PROGRESS, m->stage, d, "%s", line);
	json_decref(d);
}

static bool
run_command(const struct mctx *m, const char *what, const char *cmd, struct rb_error *err)
{
	int pfd[2];
	if (pipe(pfd) != 0)
		return rb_error_setc(err, RB_EXIT_STEP, "could not create a pipe: %s", strerror(errno));
	/* the environment is built before fork: the child of a threaded process (the wizard) only execs */
	size_t nenv = 0;
	while (environ[nenv])
		nenv++;
	char **envp = xcalloc(nenv + 4, sizeof(*envp));
	size_t k = 0;
	for (size_t i = 0; i < nenv; i++) {
		if (strncmp(environ[i], "PGRUNBOOK_DATABASE=", 19) != 0 && strncmp(environ[i], "PGRUNBOOK_ENVIRONMENT=", 22) != 0 &&
		    strncmp(environ[i], "PGRUNBOOK_RUN_ID=", 17) != 0)
			envp[k++] = environ[i];
	}
	char *e_db = xasprintf("PGRUNBOOK_DATABASE=%s", m->db);
	char *e_env = xasprintf("PGRUNBOOK_ENVIRONMENT=%s", m->env);
	char *e_run = xasprintf("PGRUNBOOK_RUN_ID=%s", m->run_id ? m->run_id : "");
	envp[k++] = e_db;
	envp[k++] = e_env;
	envp[k++] = e_run;
	envp[k] = NULL;
	char *const argv[] = { (char *)"sh", (char *)"-c", (char *)cmd, NULL };
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		int e = errno;
		close(pfd[0]);
		close(pfd[1]);
		free(envp);
		free(e_db);
		free(e_env);
		free(e_run);
		return rb_error_setc(err, RB_EXIT_STEP, "could not fork: %s", strerror(e));
	}
	if (pid == 0) {
		setpgid(0, 0);
		int nul = open("/dev/null", O_RDONLY);
		if (nul >= 0) {
			dup2(nul, 0);
			close(nul);
		}
		dup2(pfd[1], 1);
		dup2(pfd[1], 2);
		close(pfd[0]);
		close(pfd[1]);
		signal(SIGPIPE, SIG_DFL);
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		signal(SIGHUP, SIG_DFL);
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		util_cloexec_above_stderr();   /* a hook inherits no webhook connection or journal */
		execve("/bin/sh", argv, envp);
		_exit(127);
	}
	setpgid(pid, pid);
	free(envp);
	free(e_db);
	free(e_env);
	free(e_run);
	close(pfd[1]);
	struct strbuf line = {0};
	long long start = time_monotonic_ms(), term_at = 0;
	bool open_ = true, timed_out = false, cancelled = false;
	int status = 0;
	bool reaped = false;
	while (!reaped) {
		if (open_) {
			struct pollfd pf = { .fd = pfd[0], .events = POLLIN };
			if (poll(&pf, 1, 100) > 0) {
				char buf[4096];
				ssize_t n = read(pfd[0], buf, sizeof buf);
				if (n <= 0) {
					open_ = false;
				} else {
					for (ssize_t i = 0; i < n; i++) {
						if (buf[i] == '\n') {
							emit_hook_line(m, line.buf ? line.buf : "");
							strbuf_reset(&line);
						} else {
							strbuf_addc(&line, buf[i]);
						}
					}
				}
			}
		} else {
			struct timespec ts = { 0, 50 * 1000 * 1000 };
			nanosleep(&ts, NULL);
		}
		pid_t w = waitpid(pid, &status, WNOHANG);
		if (w == pid && !open_)
			reaped = true;
		else if (w == pid) {
			/* the shell ended; drain what is left without blocking on grandchildren */
			reaped = true;
		}
		long long now = time_monotonic_ms();
		if (!reaped && term_at == 0 && (now - start > HOOK_TIMEOUT_MS || rb_ctx_cancelled(m->ctx))) {
			if (rb_ctx_cancelled(m->ctx))
				cancelled = true;
			else
				timed_out = true;
			kill(-pid, SIGTERM);
			term_at = now;
		} else if (!reaped && term_at && now - term_at > HOOK_KILL_MS) {
			kill(-pid, SIGKILL);
		}
	}
	/* what the command printed before it ended */
	for (;;) {
		struct pollfd pf = { .fd = pfd[0], .events = POLLIN };
		if (poll(&pf, 1, 0) <= 0)
			break;
		char buf[4096];
		ssize_t n = read(pfd[0], buf, sizeof buf);
		if (n <= 0)
			break;
		for (ssize_t i = 0; i < n; i++) {
			if (buf[i] == '\n') {
				emit_hook_line(m, line.buf ? line.buf : "");
				strbuf_reset(&line);
			} else {
				strbuf_addc(&line, buf[i]);
			}
		}
	}
	if (line.len)
		emit_hook_line(m, line.buf);
	strbuf_release(&line);
	close(pfd[0]);
	if (cancelled)
		return rb_error_setc(err, RB_EXIT_STEP, "%s was cancelled", what);
	if (timed_out)
		return rb_error_setc(err, RB_EXIT_STEP, "%s did not finish within %d s and was stopped", what,
		                     HOOK_TIMEOUT_MS / 1000);
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return true;
	if (WIFEXITED(status))
		return rb_error_setc(err, RB_EXIT_STEP, "%s failed with exit status %d", what, WEXITSTATUS(status));
	return rb_error_setc(err, RB_EXIT_STEP, "%s was terminated by signal %d", what,
	                     WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

/* ---- pgbouncer ---- */

/* The admin console URI in dsn_env: set and without a password. */
static bool
pgbouncer_uri_ok(const char *dsn_env, struct rb_error *err)
{
	const char *uri = getenv(dsn_env);
	if (uri == NULL || *uri == '\0')
		return rb_error_setc(err, RB_EXIT_STEP, "environment variable %s (maintenance.pgbouncer.admin_dsn_env) is not set",
		                     dsn_env);
	if (db_conninfo_has_password(uri)) {
		rb_error_setc(err, RB_EXIT_STEP, "the pgbouncer admin URI in %s carries a password", dsn_env);
		rb_error_hint(err, "Put the password in .pgpass or PGPASSFILE and remove it from the URI.");
		return false;
	}
	return true;
}

/* verb on the admin console; *sent (may be NULL): the command reached pgbouncer. */
static bool
pgbouncer_command(const struct mctx *m, const char *dsn_env, const char *verb, bool *not_paused, bool *sent,
                  struct rb_error *err)
{
	if (not_paused)
		*not_paused = false;
	if (sent)
		*sent = false;
	if (!pgbouncer_uri_ok(dsn_env, err))
		return false;
	const char *uri = getenv(dsn_env);
	/* no session settings: pgbouncer's console rejects SET; the URI's own connect_timeout wins */
	static const char *const keys[] = { "connect_timeout", "dbname", NULL };
	const char *const vals[] = { "10", uri, NULL };
	PGconn *pc = PQconnectdbParams(keys, vals, 1);
	if (PQstatus(pc) != CONNECTION_OK) {
		char *msg = db_redact(PQerrorMessage(pc));
		size_t l = strlen(msg);
		while (l && (msg[l - 1] == '\n' || msg[l - 1] == ' '))
			msg[--l] = '\0';
		rb_error_setc(err, RB_EXIT_STEP, "could not connect to the pgbouncer admin console (%s): %s", dsn_env, msg);
		free(msg);
		PQfinish(pc);
		return false;
	}
	char *cmd = xasprintf("%s %s", verb, m->db);
	bool ok = false;
	if (!PQsendQuery(pc, cmd)) {
		rb_error_setc(err, RB_EXIT_STEP, "pgbouncer %s failed: %s", verb, PQerrorMessage(pc));
		goto out;
	}
	if (sent)
		*sent = true;
	long long start = time_monotonic_ms();
	while (PQisBusy(pc)) {
		struct pollfd pf = { .fd = PQsocket(pc), .events = POLLIN };
		poll(&pf, 1, 100);
		if (!PQconsumeInput(pc))
			break;
		if (rb_ctx_cancelled(m->ctx)) {
			rb_error_setc(err, RB_EXIT_STEP, "pgbouncer %s was cancelled", verb);
			goto out;
		}
		if (time_monotonic_ms() - start > PGBOUNCER_TIMEOUT_MS) {
			rb_error_setc(err, RB_EXIT_STEP, "pgbouncer %s did not finish within %d s", verb,
			              PGBOUNCER_TIMEOUT_MS / 1000);
			rb_error_detail(err, "PAUSE waits for the queries running through pgbouncer to end.");
			goto out;
		}
	}
	ok = true;
	PGresult *res;
	while ((res = PQgetResult(pc)) != NULL) {
		ExecStatusType st = PQresultStatus(res);
		if (ok && st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && st != PGRES_EMPTY_QUERY) {
			const char *em = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
			if (not_paused && em && strstr(em, "not paused")) {
				*not_paused = true;
			} else {
				rb_error_setc(err, RB_EXIT_STEP, "pgbouncer %s failed: %s", verb, em ? em : PQerrorMessage(pc));
				ok = false;
			}
		}
		PQclear(res);
	}
out:
	free(cmd);
	PQfinish(pc);
	return ok;
}

/* ---- undo ---- */

enum undo_outcome { UNDO_DONE, UNDO_NOTHING, UNDO_FAILED };

static enum undo_outcome
undo_layer(const struct mctx *m, json_t *rec, char **detail, struct rb_error *err)
{
	const char *layer = jstr(rec, "layer");
	json_t *undo = json_object_get(rec, "undo");
	*detail = NULL;
	if (streq(layer, "hook_sql")) {
		const char *sql = jstr(undo, "off_sql");
		if (sql == NULL)
			return UNDO_NOTHING;
		if (!exec_sql(m, sql, err)) {
			rb_error_prefix(err, "maintenance.hooks.off_sql failed");
			return UNDO_FAILED;
		}
		*detail = xstrdup("off_sql ran");
		return UNDO_DONE;
	}
	if (streq(layer, "hook_command")) {
		const char *cmd = jstr(undo, "off_command");
		if (cmd == NULL)
			return UNDO_NOTHING;
		if (!run_command(m, "maintenance.hooks.off_command", cmd, err))
			return UNDO_FAILED;
		*detail = xstrdup("off_command ran");
		return UNDO_DONE;
	}
	if (streq(layer, "pgbouncer")) {
		bool not_paused = false;
		if (json_is_false(json_object_get(rec, "pause_sent"))) {
			*detail = xstrdup("PAUSE was never sent");
			return UNDO_NOTHING;
		}
		if (!pgbouncer_command(m, jstr(undo, "dsn_env"), "RESUME", &not_paused, NULL, err))
			return UNDO_FAILED;
		*detail = xstrdup(not_paused ? "pgbouncer was not paused" : "RESUME sent");
		return not_paused ? UNDO_NOTHING : UNDO_DONE;
	}
	if (streq(layer, "block")) {
		const char *method = jstr(undo, "method");
		if (streq(method, "connection_limit")) {
			long long prev = json_integer_value(json_object_get(undo, "connection_limit"));
			char *cur = db_query_value(m->conn, "SELECT d.datconnlimit FROM pg_catalog.pg_database d"
			                           " WHERE d.datname OPERATOR(pg_catalog.=) pg_catalog.current_database()", err);
			if (cur == NULL)
				return UNDO_FAILED;
			long long now = atoll(cur);
			bool same = now == prev;
			free(cur);
			if (now != 0 && !same) {
				/* changed by hand (or the database was replaced) since the freeze: not ours to undo */
				*detail = xasprintf("connection limit is %lld, not the freeze's 0: left alone", now);
				return UNDO_NOTHING;
			}
			/*
			 * always run: the committed value may be the old one while the freeze's own ALTER
			 * (of a killed run) or someone else's still waits on the row; this one queues behind it
			 */
			char num[32];
			snprintf(num, sizeof num, "%lld", prev);
			char *sql = alter_db(m, "CONNECTION LIMIT ", num);
			bool ok = exec_ddl(m, sql, err);
			free(sql);
			*detail = xasprintf("connection limit %lld%s", prev, same ? " (it already was)" : "");
			return !ok ? UNDO_FAILED : same ? UNDO_NOTHING : UNDO_DONE;
		}
		json_t *grants = json_object_get(undo, "grants");
		if (json_array_size(grants) == 0)
			return UNDO_NOTHING;
		struct strbuf sb = {0}, names = {0};
		char *qdb = db_quote_ident(m->conn, m->db);
		size_t i;
		json_t *g;
		json_array_foreach(grants, i, g) {
			const char *grantee = jstr(g, "grantee");
			char *q = streq(grantee, "PUBLIC") ? xstrdup("PUBLIC") : db_quote_ident(m->conn, grantee);
			strbuf_addf(&sb, "GRANT CONNECT ON DATABASE %s TO %s%s;", qdb, q,
			            json_is_true(json_object_get(g, "grantable")) ? " WITH GRANT OPTION" : "");
			strbuf_addf(&names, "%s%s", i ? ", " : "", grantee);
			free(q);
		}
		free(qdb);
		bool ok = exec_ddl(m, sb.buf, err);
		strbuf_release(&sb);
		*detail = xasprintf("CONNECT granted again to %s", names.buf);
		strbuf_release(&names);
		return ok ? UNDO_DONE : UNDO_FAILED;
	}
	if (streq(layer, "read_only")) {
		const char *prev = jstr(undo, "previous");
		char *cur = NULL;
		if (!db_setting(m->conn, "default_transaction_read_only", &cur, m->ctx, err))
			return UNDO_FAILED;
		bool on = cur && (strcmp(cur, "on") == 0 || strcmp(cur, "true") == 0 || strcmp(cur, "1") == 0);
		free(cur);
		if (!on) {
			/* reset by hand (or the database was replaced) since the freeze */
			*detail = xstrdup("default_transaction_read_only is not on: nothing to undo");
			return UNDO_NOTHING;
		}
		char *sql;
		if (prev) {
			char *lit = literal(m->conn, prev);
			sql = alter_db(m, "SET default_transaction_read_only = ", lit);
			free(lit);
			*detail = xasprintf("default_transaction_read_only set back to %s", prev);
		} else {
			sql = alter_db(m, "RESET default_transaction_read_only", NULL);
			*detail = xstrdup("default_transaction_read_only reset");
		}
		bool ok = exec_ddl(m, sql, err);
		free(sql);
		return ok ? UNDO_DONE : UNDO_FAILED;
	}
	if (streq(layer, "marker")) {
		char *cur = NULL;
		if (!db_setting(m->conn, "pgrunbook.frozen_by", &cur, m->ctx, err))
			return UNDO_FAILED;
		if (cur == NULL) {
			*detail = xstrdup("no marker was set");
			return UNDO_NOTHING;
		}
		free(cur);
		char *sql = alter_db(m, "RESET pgrunbook.frozen_by", NULL);
		bool ok = exec_ddl(m, sql, err);
		free(sql);
		*detail = xstrdup("pgrunbook.frozen_by reset");
		return ok ? UNDO_DONE : UNDO_FAILED;
	}
	*detail = xasprintf("nothing to undo for layer %s", layer ? layer : "?");
	return UNDO_NOTHING;
}

/* ---- journal scans ---- */

static char *
freeze_key(const char *run, const char *at, const char *layer)
{
	return xasprintf("%s|%s|%s", run ? run : "", at ? at : "", layer ? layer : "");
}

static bool
is_step(const struct journal_record *r, const char *kind)
{
	return r->type == EV_STEP && r->data && streq(jstr(r->data, "kind"), kind);
}

/* Adds the keys of every completed thaw in st to thawed (an object used as a set). */
static void
collect_thawed(const struct run_state *st, json_t *thawed)
{
	for (size_t i = 0; i < st->nrecords; i++) {
		const struct journal_record *r = &st->records[i];
		if (!is_step(r, "thaw"))
			continue;
		const char *state = jstr(r->data, "state");
		if (!streq(state, "undone") && !streq(state, "nothing"))
			continue;
		char *k = freeze_key(jstr(r->data, "freeze_run"), jstr(r->data, "freeze_at"), jstr(r->data, "layer"));
		json_object_set_new(thawed, k, json_true());
		free(k);
	}
}

/*
 * Appends to out (newest first) the freeze records of st with an undo and no thaw in thawed,
 * for database/server (NULL: any). Each gets "freeze_run" (st's id) and "who".
 */
static void
collect_pending(const struct run_state *st, json_t *thawed, const char *db, const char *server, json_t *out)
{
	for (size_t i = st->nrecords; i-- > 0;) {
		const struct journal_record *r = &st->records[i];
		if (!is_step(r, "freeze") || !streq(jstr(r->data, "state"), "applying"))
			continue;
		json_t *undo = json_object_get(r->data, "undo");
		if (undo == NULL || json_is_null(undo))
			continue;
		if ((db && !streq(jstr(r->data, "database"), db)) || (server && !streq(jstr(r->data, "server"), server)))
			continue;
		char *k = freeze_key(st->id, jstr(r->data, "freeze_at"), jstr(r->data, "layer"));
		bool done = json_object_get(thawed, k) != NULL;
		free(k);
		if (done)
			continue;
		json_t *c = json_deep_copy(r->data);
		json_object_set_new(c, "freeze_run", json_string(st->id));
		json_object_set_new(c, "applying_ts", json_string(r->ts ? r->ts : ""));
		json_array_append_new(out, c);
	}
}

json_t *
maint_pending_undo(const struct run_state *st)
{
	json_t *thawed = json_object(), *out = json_array();
	collect_thawed(st, thawed);
	collect_pending(st, thawed, NULL, NULL, out);
	json_decref(thawed);
	return out;
}

/*
 * Scans every run: the pending freeze records of db on server, newest first (the first run
 * with any, or every run when all_runs), and the counters of freezes (key "run|at").
 */
static bool
scan_runs(const char *db, const char *server, const char *only_run, json_t **pending, json_t **counters,
          json_t **live, struct rb_error *err)
{
	struct run_state *runs = NULL;
	size_t n = 0;
	if (!journal_list_runs(NULL, &runs, &n, err))
		return false;
	json_t *thawed = json_object();
	*pending = json_array();
	if (counters)
		*counters = json_object();
	if (live)
		*live = json_object();
	for (size_t i = 0; i < n; i++) {
		collect_thawed(&runs[i], thawed);
		/* a run open by another process (not this one, which may have reopened a killed run) */
		if (live && runs[i].in_use && runs[i].in_use_pid != (long)getpid())
			json_object_set_new(*live, runs[i].id, json_true());
	}
	for (size_t i = 0; i < n; i++) {
		if (only_run && !streq(runs[i].id, only_run))
			continue;
		collect_pending(&runs[i], thawed, db, server, *pending);
		if (counters) {
			for (size_t k = 0; k < runs[i].nrecords; k++) {
				const struct journal_record *r = &runs[i].records[k];
				if (!is_step(r, "freeze_counters") || !streq(jstr(r->data, "database"), db) ||
				    !streq(jstr(r->data, "server"), server))
					continue;
				char *key = xasprintf("%s|%s", runs[i].id, jstr(r->data, "freeze_at"));
				json_object_set(*counters, key, json_object_get(r->data, "counters"));
				free(key);
			}
		}
	}
	json_decref(thawed);
	for (size_t i = 0; i < n; i++)
		run_state_free(&runs[i]);
	free(runs);
	return true;
}

/*
 * The records of pending that belong to the newest freeze (the greatest freeze_at, then the
 * latest applying record; same run and freeze_at), newest first.
 */
static json_t *
first_freeze(json_t *pending)
{
	json_t *out = json_array();
	json_t *first = NULL;
	size_t i;
	json_t *r;
	json_array_foreach(pending, i, r) {
		const char *at = jstr(r, "freeze_at") ? jstr(r, "freeze_at") : "";
		const char *fat = first && jstr(first, "freeze_at") ? jstr(first, "freeze_at") : "";
		int c = first ? strcmp(at, fat) : 1;
		if (c == 0) {
			const char *ts = jstr(r, "applying_ts") ? jstr(r, "applying_ts") : "";
			const char *fts = jstr(first, "applying_ts") ? jstr(first, "applying_ts") : "";
			c = strcmp(ts, fts);
		}
		if (c > 0)
			first = r;
	}
	if (first == NULL)
		return out;
	json_array_foreach(pending, i, r) {
		if (streq(jstr(r, "freeze_run"), jstr(first, "freeze_run")) &&
		    streq(jstr(r, "freeze_at"), jstr(first, "freeze_at")))
			json_array_append(out, r);
	}
	return out;
}

/* ---- thaw ---- */

/*
 * Undoes records (newest first) on m's connection, each journaled before it runs. Records
 * already thawed by some run (a crash after the undo) are undone again (idempotent). Appends
 * {"layer","state","detail"} to layers. False when a layer failed or the journal broke (err
 * holds the first failure); every layer is still tried unless the journal broke.
 */
static bool
thaw(const struct mctx *m, json_t *records, json_t *layers, struct rb_error *err)
{
	bool ok = true;
	size_t i;
	json_t *rec;
	json_array_foreach(records, i, rec) {
		const char *layer = jstr(rec, "layer");
		json_t *d = step_data(m, "thaw", layer, "undoing");
		json_object_set_new(d, "freeze_run", json_string(jstr(rec, "freeze_run") ? jstr(rec, "freeze_run") : ""));
		json_object_set_new(d, "freeze_at", json_string(jstr(rec, "freeze_at") ? jstr(rec, "freeze_at") : ""));
		json_object_set_new(d, "who", json_string(m->who ? m->who : ""));
		events_emitf(bus_of(m->ctx), EV_STEP, m->stage, d, "thaw %s: undoing", layer);
		if (!journal_ok(m, err)) {
			json_decref(d);
			return false;
		}
		struct rb_error lerr = {0};
		char *detail = NULL;
		enum undo_outcome o;
		if (!streq(jstr(rec, "database"), m->db)) {
			rb_error_setc(&lerr, RB_EXIT_STEP, "the freeze record is for database %s, not %s",
			              jstr(rec, "database") ? jstr(rec, "database") : "?", m->db);
			o = UNDO_FAILED;
		} else {
			o = undo_layer(m, rec, &detail, &lerr);
		}
		const char *state = o == UNDO_DONE ? "undone" : o == UNDO_NOTHING ? "nothing" : "failed";
		json_object_set_new(d, "state", json_string(state));
		if (o == UNDO_FAILED) {
			json_object_set_new(d, "error", json_string(lerr.message ? lerr.message : ""));
			if (ok) {
				rb_error_setc(err, RB_EXIT_STEP, "could not undo layer %s: %s", layer,
				              lerr.message ? lerr.message : "unknown error");
				if (lerr.detail)
					rb_error_detail(err, "%s", lerr.detail);
			}
			ok = false;
		}
		if (detail)
			json_object_set_new(d, "detail", json_string(detail));
		events_emitf(bus_of(m->ctx), EV_STEP, m->stage, d, "thaw %s: %s%s%s", layer, state,
		             detail || lerr.message ? ": " : "", detail ? detail : lerr.message ? lerr.message : "");
		json_array_append_new(layers, json_pack("{s:s, s:s, s:s}", "layer", layer, "state", state, "detail",
		                                        detail ? detail : lerr.message ? lerr.message : ""));
		json_decref(d);
		free(detail);
		rb_error_clear(&lerr);
		if (!journal_ok(m, ok ? err : &lerr)) {
			rb_error_clear(&lerr);
			return false;
		}
	}
	return ok;
}

static bool
mctx_connect(struct mctx *m, const struct plan *p, const char *env, const struct rb_ctx *ctx, struct rb_error *err)
{
	m->p = p;
	m->env = env ? env : p->target;
	m->ctx = ctx;
	m->conn = db_connect_ctx(p, m->env, ctx, err);
	if (m->conn == NULL)
		return false;
	m->db = xstrdup(PQdb(m->conn));
	m->server = server_of(m->conn);
	const char *su = PQparameterStatus(m->conn, "is_superuser");
	m->superuser = su && strcmp(su, "on") == 0;
	return true;
}

static void
mctx_done(struct mctx *m)
{
	if (m->conn)
		PQfinish(m->conn);
	free(m->db);
	free(m->server);
}

/* writes_since_freeze from the journaled counters of the freeze and the current ones. */
static json_t *
writes_since(const struct mctx *m, json_t *freeze_counters, const char *since)
{
	if (freeze_counters == NULL)
		return json_null();
	json_t *now = NULL;
	struct rb_error e = {0};
	if (!read_counters(m->conn, m->ctx, &now, &e)) {
		json_t *r = json_pack("{s:s}", "error", e.message ? e.message : "");
		rb_error_clear(&e);
		return r;
	}
	const char *why = NULL;
	json_t *tables = counters_diff(freeze_counters, now, &why);
	if (tables == NULL) {
		/* never negative counts: say why there are none */
		json_t *r = json_pack("{s:s, s:s, s:b}", "since", since ? since : "", "error", why, "comparable", 0);
		json_decref(now);
		return r;
	}
	json_t *r = json_pack("{s:s, s:I, s:o, s:s}", "since", since ? since : "",
	        "xact_commit_delta", (json_int_t)(json_integer_value(json_object_get(now, "xact_commit")) -
	                                          json_integer_value(json_object_get(freeze_counters, "xact_commit"))),
	        "tables", tables,
	        "note", "includes pgrunbook's own writes (migrate, sync) and the statistics lag of up to a second");
	json_decref(now);
	return r;
}

bool
maint_thaw_records(const struct plan *p, const char *env, json_t *undo, const char *who, struct journal *j,
                   struct rb_ctx *ctx, json_t **result, struct rb_error *err)
{
	struct mctx m = { .who = who, .j = j, .stage = MAINT_STAGE_OFF };
	m.run_id = j ? journal_run_id(j) : "";
	if (result)
		*result = NULL;
	if (!mctx_connect(&m, p, env, ctx, err))
		return false;
	json_t *layers = json_array();
	/* a record some run already thawed is left alone: the database may be frozen again since */
	json_t *thawed = json_object(), *todo = json_array();
	struct run_state *runs = NULL;
	size_t n = 0;
	size_t i;
	json_t *rec;
	bool ok = journal_list_runs(NULL, &runs, &n, err);
	if (ok) {
		/* a freeze statement of a killed run may still wait on a lock: end it before thawing */
		bool dead = false;
		json_array_foreach(undo, i, rec) {
			bool live = false;
			for (size_t k = 0; k < n; k++) {
				if (streq(runs[k].id, jstr(rec, "freeze_run")) && runs[k].in_use &&
				    runs[k].in_use_pid != (long)getpid())
					live = true;
			}
			if (!live)
				dead = true;
		}
		if (dead)
			end_leftovers(&m);
		for (size_t k = 0; k < n; k++)
			run_state_free(&runs[k]);
		free(runs);
		runs = NULL;
		n = 0;
		ok = take_lock(&m, true, err) && journal_list_runs(NULL, &runs, &n, err);
	}
	for (size_t k = 0; k < n; k++) {
		collect_thawed(&runs[k], thawed);
		run_state_free(&runs[k]);
	}
	free(runs);
	json_array_foreach(undo, i, rec) {
		char *k = freeze_key(jstr(rec, "freeze_run"), jstr(rec, "freeze_at"), jstr(rec, "layer"));
		if (json_object_get(thawed, k))
			json_array_append_new(layers, json_pack("{s:s, s:s, s:s}", "layer", jstr(rec, "layer"), "state",
			                                        "thawed", "detail", "already undone by a journaled thaw"));
		else
			json_array_append(todo, rec);
		free(k);
	}
	if (ok)
		ok = thaw(&m, todo, layers, err);
	json_decref(thawed);
	json_decref(todo);
	if (result)
		*result = json_pack("{s:b, s:s, s:o}", "ok", ok, "database", m.db, "layers", layers);
	else
		json_decref(layers);
	mctx_done(&m);
	return ok;
}

bool
maint_off(const struct plan *p, const char *env, const char *run, const char *who, struct journal *j,
          struct rb_ctx *ctx, json_t **result, struct rb_error *err)
{
	struct mctx m = { .who = who, .j = j, .stage = MAINT_STAGE_OFF };
	m.run_id = j ? journal_run_id(j) : "";
	json_t *res = json_pack("{s:b}", "ok", 0);
	json_t *layers = json_array();
	json_object_set(res, "layers", layers);
	json_t *pending = NULL, *counters = NULL, *records = NULL;
	char *run_id = NULL;
	bool ok = false, started = false;
	if (!mctx_connect(&m, p, env, ctx, err))
		goto out;
	json_object_set_new(res, "database", json_string(m.db));
	json_object_set_new(res, "environment", json_string(m.env));
	if (run) {
		char *dir = journal_find_run(NULL, run, err);
		if (dir == NULL)
			goto out;
		const char *slash = strrchr(dir, '/');
		run_id = xstrdup(slash ? slash + 1 : dir);
		free(dir);
	}
	{
		/* a freeze statement of a killed run may still wait on a lock: end it before thawing */
		json_t *live = NULL;
		if (!scan_runs(m.db, m.server, run_id, &pending, NULL, &live, err))
			goto out;
		json_t *fr = first_freeze(pending);
		const char *frun = jstr(json_array_get(fr, 0), "freeze_run");
		if (frun && !json_object_get(live, frun))
			end_leftovers(&m);
		json_decref(fr);
		json_decref(live);
		json_decref(pending);
		pending = NULL;
	}
	if (!take_lock(&m, true, err))
		goto out;
	if (!scan_runs(m.db, m.server, run_id, &pending, &counters, NULL, err))
		goto out;
	records = first_freeze(pending);
	{
		json_t *sd = json_pack("{s:s, s:s}", "database", m.db, "environment", m.env);
		events_emitf(bus_of(ctx), EV_STAGE_STARTED, MAINT_STAGE_OFF, sd, "thawing %s (%s)", m.db, m.env);
		json_decref(sd);
		started = true;
	}
	if (json_array_size(records) == 0) {
		if (run_id)
			rb_error_setc(err, RB_EXIT_STEP, "run %s holds no freeze of database %s to undo", run_id, m.db);
		else
			rb_error_setc(err, RB_EXIT_STEP, "no freeze of database %s was found", m.db);
		rb_error_detail(err, "No run journaled a freeze of %s on %s that is not thawed yet.", m.db, m.server);
		char *marker = NULL;
		struct rb_error e2 = {0};
		if (db_setting(m.conn, "pgrunbook.frozen_by", &marker, ctx, &e2) && marker) {
			rb_error_hint(err, "The database still carries the marker pgrunbook.frozen_by = '%s' but no journal "
			              "records that freeze; check its connection limit, grants and "
			              "default_transaction_read_only, then run ALTER DATABASE ... RESET pgrunbook.frozen_by.",
			              marker);
		}
		free(marker);
		rb_error_clear(&e2);
		goto out;
	}
	json_t *first = json_array_get(records, 0);
	const char *frun = jstr(first, "freeze_run"), *fat = jstr(first, "freeze_at");
	json_object_set_new(res, "run", json_string(frun));
	json_object_set_new(res, "frozen_at", json_string(fat ? fat : ""));
	ok = thaw(&m, records, layers, err);
	char *key = xasprintf("%s|%s", frun, fat ? fat : "");
	json_object_set_new(res, "writes_since_freeze", writes_since(&m, json_object_get(counters, key), fat));
	free(key);
out:
	json_object_set_new(res, "ok", json_boolean(ok));
	if (started) {
		events_emitf(bus_of(ctx), EV_STAGE_RESULT, MAINT_STAGE_OFF, res, "maintenance off result");
		if (ok)
			events_emitf(bus_of(ctx), EV_STAGE_DONE, MAINT_STAGE_OFF, NULL, "%s thawed", m.db);
		else
			events_emitf(bus_of(ctx), EV_STAGE_FAILED, MAINT_STAGE_OFF, NULL, "%s",
			             err->message ? err->message : "maintenance off failed");
	}
	if (ok && !journal_ok(&m, err))
		ok = false;
	json_object_set_new(res, "ok", json_boolean(ok));
	json_decref(layers);
	json_decref(pending);
	json_decref(counters);
	json_decref(records);
	free(run_id);
	mctx_done(&m);
	if (result)
		*result = res;
	else
		json_decref(res);
	return ok;
}

/* ---- freeze ---- */

struct freeze {
	struct mctx  m;
	json_t      *applied;   /* applying records of this freeze, oldest first */
	json_t      *layers;    /* result layers */
	json_t      *terminated;
	json_t      *not_blocked;
};

/* Journals the applying record of a layer (its undo) and remembers it for an undo at once. */
static bool
layer_applying(struct freeze *f, const char *layer, json_t *undo, struct rb_error *err)
{
	json_t *d = step_data(&f->m, "freeze", layer, "applying");
	json_object_set_new(d, "undo", undo ? undo : json_null());
	json_object_set_new(d, "freeze_at", json_string(f->m.frozen_at));
	json_object_set_new(d, "who", json_string(f->m.who ? f->m.who : ""));
	events_emitf(bus_of(f->m.ctx), EV_STEP, f->m.stage, d, "freeze %s: applying", layer);
	json_t *c = json_deep_copy(d);
	json_object_set_new(c, "freeze_run", json_string(f->m.run_id));
	json_array_append_new(f->applied, c);
	json_decref(d);
	return journal_ok(&f->m, err);
}

static void
layer_state(struct freeze *f, const char *layer, const char *state, const char *detail)
{
	json_t *d = step_data(&f->m, "freeze", layer, state);
	json_object_set_new(d, "freeze_at", json_string(f->m.frozen_at));
	if (detail)
		json_object_set_new(d, "detail", json_string(detail));
	events_emitf(bus_of(f->m.ctx), EV_STEP, f->m.stage, d, "freeze %s: %s%s%s", layer, state, detail ? ": " : "",
	             detail ? detail : "");
	json_decref(d);
	json_array_append_new(f->layers, json_pack("{s:s, s:s, s:s}", "layer", layer, "state", state, "detail",
	                                           detail ? detail : ""));
}

static bool
apply_block(struct freeze *f, struct rb_error *err)
{
	struct mctx *m = &f->m;
	PGresult *res;
	if (m->superuser) {
		char *prev = db_query_value(m->conn, "SELECT d.datconnlimit FROM pg_catalog.pg_database d"
		                            " WHERE d.datname OPERATOR(pg_catalog.=) pg_catalog.current_database()", err);
		if (prev == NULL)
			return false;
		json_t *undo = json_pack("{s:s, s:I}", "method", "connection_limit", "connection_limit",
		                         (json_int_t)atoll(prev));
		free(prev);
		if (!layer_applying(f, "block", undo, err))
			return false;
		char *sql = alter_db(m, "CONNECTION LIMIT ", "0");
		bool ok = exec_ddl(m, sql, err);
		free(sql);
		if (!ok)
			return false;
		if (query_rows(m->conn, "SELECT r.rolname FROM pg_catalog.pg_roles r WHERE r.rolsuper AND r.rolcanlogin"
		                        " ORDER BY 1", 0, NULL, m->ctx, &res, err)) {
			for (int i = 0; i < PQntuples(res); i++) {
				char *s = xasprintf("role %s (superuser)", PQgetvalue(res, i, 0));
				json_array_append_new(f->not_blocked, json_string(s));
				free(s);
			}
			PQclear(res);
		}
		layer_state(f, "block", "applied", "connection limit 0 (superusers still connect)");
		return true;
	}
	static const char grants_sql[] =
		"SELECT CASE WHEN a.grantee OPERATOR(pg_catalog.=) 0 THEN 'PUBLIC'"
		"  ELSE pg_catalog.pg_get_userbyid(a.grantee)::pg_catalog.text END,"
		" pg_catalog.pg_get_userbyid(a.grantor)::pg_catalog.text, a.is_grantable,"
		" a.grantor OPERATOR(pg_catalog.=) (SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) current_user),"
		" a.grantee OPERATOR(pg_catalog.=) (SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) current_user)"
		" FROM pg_catalog.pg_database d,"
		" pg_catalog.aclexplode(coalesce(d.datacl, pg_catalog.acldefault('d', d.datdba))) a"
		" WHERE d.datname OPERATOR(pg_catalog.=) pg_catalog.current_database()"
		" AND a.privilege_type OPERATOR(pg_catalog.=) 'CONNECT' ORDER BY 1";
	if (!query_rows(m->conn, grants_sql, 0, NULL, m->ctx, &res, err))
		return false;
	json_t *grants = json_array();
	bool self = false;
	for (int i = 0; i < PQntuples(res); i++) {
		bool mine = PQgetvalue(res, i, 3)[0] == 't', is_self = PQgetvalue(res, i, 4)[0] == 't';
		if (is_self) {
			self = true;
			continue;
		}
		if (!mine) {
			char *s = xasprintf("%s (CONNECT granted by %s, which pgrunbook cannot revoke)", PQgetvalue(res, i, 0),
			                    PQgetvalue(res, i, 1));
			json_array_append_new(f->not_blocked, json_string(s));
			free(s);
			continue;
		}
		json_array_append_new(grants, json_pack("{s:s, s:s, s:b}", "grantee", PQgetvalue(res, i, 0), "grantor",
		                                        PQgetvalue(res, i, 1), "grantable", PQgetvalue(res, i, 2)[0] == 't'));
	}
	PQclear(res);
	if (!self) {
		json_decref(grants);
		rb_error_setc(err, RB_EXIT_STEP, "pgrunbook's role holds CONNECT on %s only through PUBLIC or another role", m->db);
		rb_error_detail(err, "Revoking CONNECT from PUBLIC would lock pgrunbook out of its own later stages.");
		rb_error_hint(err, "Run pgrunbook as the database owner or a superuser, or set block_connections: false.");
		return false;
	}
	json_t *undo = json_pack("{s:s, s:O}", "method", "revoke", "grants", grants);
	if (!layer_applying(f, "block", undo, err)) {
		json_decref(grants);
		return false;
	}
	struct strbuf sb = {0}, names = {0};
	char *qdb = db_quote_ident(m->conn, m->db);
	size_t i;
	json_t *g;
	json_array_foreach(grants, i, g) {
		const char *grantee = jstr(g, "grantee");
		char *q = streq(grantee, "PUBLIC") ? xstrdup("PUBLIC") : db_quote_ident(m->conn, grantee);
		strbuf_addf(&sb, "REVOKE CONNECT ON DATABASE %s FROM %s;", qdb, q);
		strbuf_addf(&names, "%s%s", i ? ", " : "", grantee);
		free(q);
	}
	free(qdb);
	bool ok = true;
	if (sb.len)
		ok = exec_ddl(m, sb.buf, err);
	strbuf_release(&sb);
	json_decref(grants);
	if (ok) {
		if (query_rows(m->conn, "SELECT r.rolname FROM pg_catalog.pg_roles r WHERE r.rolsuper AND r.rolcanlogin"
		                        " ORDER BY 1", 0, NULL, m->ctx, &res, err)) {
			for (int k = 0; k < PQntuples(res); k++) {
				char *s = xasprintf("role %s (superuser)", PQgetvalue(res, k, 0));
				json_array_append_new(f->not_blocked, json_string(s));
				free(s);
			}
			PQclear(res);
		}
		char *s = xasprintf("role %s (pgrunbook's own)", PQuser(m->conn));
		json_array_append_new(f->not_blocked, json_string(s));
		free(s);
		char *detail = names.len ? xasprintf("CONNECT revoked from %s", names.buf) : xstrdup("no CONNECT grant to revoke");
		layer_state(f, "block", "applied", detail);
		free(detail);
	}
	strbuf_release(&names);
	return ok;
}

static bool
apply_read_only(struct freeze *f, struct rb_error *err)
{
	struct mctx *m = &f->m;
	char *prev = NULL;
	if (!db_setting(m->conn, "default_transaction_read_only", &prev, m->ctx, err))
		return false;
	json_t *undo = json_pack("{s:o}", "previous", prev ? json_string(prev) : json_null());
	free(prev);
	if (!layer_applying(f, "read_only", undo, err))
		return false;
	char *sql = alter_db(m, "SET default_transaction_read_only = on", NULL);
	bool ok = exec_ddl(m, sql, err);
	free(sql);
	if (ok)
		layer_state(f, "read_only", "applied", "default_transaction_read_only = on for new sessions");
	return ok;
}

static bool
pid_listed(json_t *sessions, json_int_t pid)
{
	size_t i;
	json_t *s;
	json_array_foreach(sessions, i, s) {
		if (json_integer_value(json_object_get(s, "pid")) == pid)
			return true;
	}
	return false;
}

/*
 * Terminates the sessions listed now that were also in the confirmed list; a session that was
 * not confirmed (it connected since) makes the layer refuse with the new list, nothing
 * terminated. Sessions that ended meanwhile (pgbouncer's, closed by PAUSE) are fine.
 */
static bool
apply_terminate(struct freeze *f, json_t *confirmed, struct rb_error *err)
{
	struct mctx *m = &f->m;
	json_t *sessions = NULL;
	if (!list_sessions(m->conn, m->ctx, &sessions, err))
		return false;
	if (m->p->maintenance.terminate_sessions == PLAN_TERMINATE_NEVER) {
		char *d = xasprintf("terminate_sessions: never; %zu other sessions left connected",
		                    json_array_size(sessions));
		layer_state(f, "terminate", "skipped", d);
		free(d);
		json_decref(sessions);
		return true;
	}
	if (json_array_size(sessions) == 0) {
		layer_state(f, "terminate", "skipped", "no other sessions");
		json_decref(sessions);
		return true;
	}
	size_t i, nnew = 0;
	json_t *s;
	json_array_foreach(sessions, i, s) {
		if (!pid_listed(confirmed, json_integer_value(json_object_get(s, "pid"))))
			nnew++;
	}
	if (nnew > 0) {
		char *list = sessions_text(sessions);
		char *phrase = terminate_phrase(sessions, m->db);
		rb_error_setc(err, RB_EXIT_STEP, "%zu sessions connected to %s after the list was confirmed", nnew, m->db);
		rb_error_detail(err, "%s", list);
		rb_error_hint(err, "Nothing was terminated. Check the sessions and confirm again with \"%s\".", phrase);
		layer_state(f, "terminate", "refused", err->message);
		free(list);
		free(phrase);
		json_decref(sessions);
		return false;
	}
	json_t *pids = json_array();
	json_array_foreach(sessions, i, s)
		json_array_append(pids, json_object_get(s, "pid"));
	/* no undo: a terminated session stays terminated */
	json_t *d = step_data(m, "freeze", "terminate", "applying");
	json_object_set_new(d, "undo", json_null());
	json_object_set_new(d, "freeze_at", json_string(m->frozen_at));
	json_object_set(d, "pids", pids);
	events_emitf(bus_of(m->ctx), EV_STEP, m->stage, d, "freeze terminate: terminating %zu sessions",
	             json_array_size(pids));
	json_decref(d);
	if (!journal_ok(m, err)) {
		json_decref(pids);
		json_decref(sessions);
		return false;
	}
	struct strbuf failed = {0};
	json_array_foreach(sessions, i, s) {
		char pid[32];
		snprintf(pid, sizeof pid, "%" JSON_INTEGER_FORMAT, json_integer_value(json_object_get(s, "pid")));
		const char *params[1] = { pid };
		PGresult *res = db_exec(m->conn, "SELECT pg_catalog.pg_terminate_backend($1::pg_catalog.int4, 5000)", 1,
		                        params, m->ctx);
		if (PQresultStatus(res) == PGRES_TUPLES_OK && PQgetvalue(res, 0, 0)[0] == 't')
			json_array_append(f->terminated, json_object_get(s, "pid"));
		else
			strbuf_addf(&failed, "%s%s%s", failed.len ? "; " : "", pid,
			            PQresultStatus(res) == PGRES_TUPLES_OK ? " (still running)" : "");
		PQclear(res);
	}
	char *detail = xasprintf("%zu of %zu sessions terminated%s%s", json_array_size(f->terminated),
	                         json_array_size(sessions), failed.len ? "; not: " : "", failed.len ? failed.buf : "");
	bool ok = failed.len == 0;
	layer_state(f, "terminate", ok ? "applied" : "failed", detail);
	if (!ok) {
		rb_error_setc(err, RB_EXIT_STEP, "could not terminate every session on %s", m->db);
		rb_error_detail(err, "%s.", detail);
	}
	free(detail);
	strbuf_release(&failed);
	json_decref(pids);
	json_decref(sessions);
	return ok;
}

static bool
apply_marker(struct freeze *f, struct rb_error *err)
{
	struct mctx *m = &f->m;
	if (!m->superuser) {
		layer_state(f, "marker", "skipped",
		            "not a superuser: the freeze is recorded in the journal only");
		return true;
	}
	if (!layer_applying(f, "marker", json_pack("{s:s}", "reset", "pgrunbook.frozen_by"), err))
		return false;
	char *value = xasprintf("%s %s %s", *m->run_id ? m->run_id : "-", m->frozen_at, m->who ? m->who : "unknown");
	char *lit = literal(m->conn, value);
	char *sql = alter_db(m, "SET pgrunbook.frozen_by = ", lit);
	bool ok = exec_ddl(m, sql, err);
	free(sql);
	free(lit);
	if (ok) {
		char *d = xasprintf("pgrunbook.frozen_by = '%s'", value);
		layer_state(f, "marker", "applied", d);
		free(d);
	}
	free(value);
	return ok;
}

/* Refuses when another freeze of the database is recorded (marker or an unthawed journal freeze). */
static bool
check_not_frozen(const struct mctx *m, struct rb_error *err)
{
	char *marker = NULL;
	if (!db_setting(m->conn, "pgrunbook.frozen_by", &marker, m->ctx, err))
		return false;
	json_t *pending = NULL;
	if (!scan_runs(m->db, m->server, NULL, &pending, NULL, NULL, err)) {
		free(marker);
		return false;
	}
	json_t *first = json_array_get(pending, 0);
	bool ok = true;
	if (first) {
		const char *frun = jstr(first, "freeze_run");
		if (streq(frun, m->run_id))
			rb_error_setc(err, RB_EXIT_STEP, "database %s is already frozen by this run", m->db);
		else
			rb_error_setc(err, RB_EXIT_STEP, "database %s is frozen by another run (%s)", m->db, frun);
		rb_error_detail(err, "Run %s froze it at %s (by %s) and has not thawed it.", frun,
		                jstr(first, "freeze_at") ? jstr(first, "freeze_at") : "?",
		                jstr(first, "who") ? jstr(first, "who") : "?");
		rb_error_hint(err, "Thaw it first: pgrunbook maintenance off --plan FILE --run %s", frun);
		ok = false;
	} else if (marker) {
		rb_error_setc(err, RB_EXIT_STEP, "database %s is frozen by another run (marker \"%s\")", m->db, marker);
		rb_error_detail(err, "The marker pgrunbook.frozen_by is set but no journal here records that freeze.");
		rb_error_hint(err, "Thaw it from the pgrunbook that froze it, or check the database by hand and run "
		              "ALTER DATABASE ... RESET pgrunbook.frozen_by.");
		ok = false;
	}
	json_decref(pending);
	free(marker);
	return ok;
}

bool
maint_on(const struct plan *p, const struct maint_opts *o, struct journal *j, struct rb_ctx *ctx, json_t **result,
         struct rb_error *err)
{
	struct freeze f = { .m = { .who = o->who, .j = j, .stage = MAINT_STAGE_ON } };
	struct mctx *m = &f.m;
	m->run_id = j ? journal_run_id(j) : o->run_id ? o->run_id : "";
	time_now_rfc3339(m->frozen_at);
	f.applied = json_array();
	f.layers = json_array();
	f.terminated = json_array();
	f.not_blocked = json_array();
	json_t *slipped = json_array(), *counters = NULL, *confirmed_sessions = json_array();
	long long xact_delta = 0;
	bool ok = false, started = false;
	const struct plan_maintenance *pm = &p->maintenance;
	if (!pm->present) {
		rb_error_setc(err, RB_EXIT_PLAN, "the plan has no maintenance section");
		rb_error_hint(err, "Add \"maintenance: { block_connections: true, read_only: true }\" to the plan "
		              "(see pgrunbook-plan(5)).");
		m->env = o->env ? o->env : p->target;
		goto out;
	}
	if (!mctx_connect(m, p, o->env, ctx, err))
		goto out;
	{
		json_t *sd = json_pack("{s:s, s:s}", "database", m->db, "environment", m->env);
		events_emitf(bus_of(ctx), EV_STAGE_STARTED, MAINT_STAGE_ON, sd, "freezing %s (%s)", m->db, m->env);
		json_decref(sd);
		started = true;
	}
	char *phrase = confirm_phrase(MAINT_VERB, m->db);
	bool confirmed = confirm_check(ctx, MAINT_STAGE_ON, phrase, o->confirm, err);
	free(phrase);
	/* the freeze lock, held from the check to the last layer (and the undo) */
	if (!confirmed || !take_lock(m, false, err) || !check_not_frozen(m, err))
		goto out;
	/* an unusable pgbouncer URI refuses before any layer (the hooks included) */
	if (pm->pgbouncer_dsn_env && !pgbouncer_uri_ok(pm->pgbouncer_dsn_env, err)) {
		rb_error_detail(err, "Nothing was changed.");
		goto out;
	}
	if (pm->terminate_sessions == PLAN_TERMINATE_ASK) {
		json_t *sessions = NULL;
		if (!list_sessions(m->conn, ctx, &sessions, err))
			goto out;
		size_t nconfirmed = json_array_size(sessions);
		if (nconfirmed > 0) {
			char *tp = terminate_phrase(sessions, m->db);
			if (o->confirm_terminate == NULL) {
				char *list = sessions_text(sessions);
				rb_error_setc(err, RB_EXIT_STEP, "%zu other sessions are connected to %s; terminating them needs the phrase \"%s\"",
				              nconfirmed, m->db, tp);
				rb_error_detail(err, "%s", list);
				rb_error_hint(err, "Nothing was changed. Check the sessions, then confirm with the phrase \"%s\".", tp);
				/* journaled: the sessions without their query text, which may hold anything */
				json_t *listed = json_deep_copy(sessions);
				size_t k;
				json_t *ls;
				json_array_foreach(listed, k, ls)
					json_object_del(ls, "query");
				json_t *d = json_pack("{s:s, s:o}", "phrase", tp, "sessions", listed);
				events_emitf(bus_of(ctx), EV_CONFIRM_NEEDED, MAINT_STAGE_ON, d, "terminating %zu sessions needs the phrase \"%s\"",
				             nconfirmed, tp);
				json_decref(d);
				free(list);
				free(tp);
				json_decref(sessions);
				goto out;
			}
			struct rb_error cerr = {0};
			if (!confirm_check(ctx, MAINT_STAGE_ON, tp, o->confirm_terminate, &cerr)) {
				char *list = sessions_text(sessions);
				rb_error_setc(err, RB_EXIT_STEP, "%s", cerr.message ? cerr.message : "wrong phrase");
				rb_error_detail(err, "%s", list);
				rb_error_hint(err, "Nothing was changed. The phrase is \"%s\".", tp);
				free(list);
				rb_error_clear(&cerr);
				free(tp);
				json_decref(sessions);
				goto out;
			}
			free(tp);
		}
		json_decref(confirmed_sessions);
		confirmed_sessions = sessions;
	}

	/* the layers, in order */
	if (pm->on_sql) {
		if (!layer_applying(&f, "hook_sql", json_pack("{s:s}", "off_sql", pm->off_sql ? pm->off_sql : ""), err))
			goto undo;
		if (!exec_sql(m, pm->on_sql, err)) {
			rb_error_prefix(err, "maintenance.hooks.on_sql failed");
			layer_state(&f, "hook_sql", "failed", err->message);
			goto undo;
		}
		/* hook writes are flushed to the statistics now, so they do not look like slipped writes */
		PQclear(db_exec(m->conn, "SELECT pg_catalog.pg_stat_force_next_flush()", 0, NULL, ctx));
		layer_state(&f, "hook_sql", "applied", "on_sql ran");
	} else {
		layer_state(&f, "hook_sql", "skipped", "no maintenance.hooks.on_sql");
	}
	if (pm->on_command) {
		if (!layer_applying(&f, "hook_command", json_pack("{s:s}", "off_command", pm->off_command ? pm->off_command : ""),
		                    err))
			goto undo;
		if (!run_command(m, "maintenance.hooks.on_command", pm->on_command, err)) {
			layer_state(&f, "hook_command", "failed", err->message);
			goto undo;
		}
		layer_state(&f, "hook_command", "applied", "on_command ran");
	} else {
		layer_state(&f, "hook_command", "skipped", "no maintenance.hooks.on_command");
	}
	if (pm->pgbouncer_dsn_env) {
		if (!layer_applying(&f, "pgbouncer", json_pack("{s:s, s:s}", "dsn_env", pm->pgbouncer_dsn_env,
		                                                 "pool", m->db), err))
			goto undo;
		bool sent = false;
		if (!pgbouncer_command(m, pm->pgbouncer_dsn_env, "PAUSE", NULL, &sent, err)) {
			/* never sent (the console was unreachable): its undo has nothing to do */
			if (!sent)
				json_object_set_new(json_array_get(f.applied, json_array_size(f.applied) - 1), "pause_sent",
				                    json_false());
			layer_state(&f, "pgbouncer", "failed", err->message);
			goto undo;
		}
		layer_state(&f, "pgbouncer", "applied", "PAUSE sent");
	} else {
		layer_state(&f, "pgbouncer", "skipped", "no maintenance.pgbouncer");
	}
	if (pm->block_connections) {
		if (!apply_block(&f, err)) {
			if (json_array_size(f.applied) && streq(jstr(json_array_get(f.applied, json_array_size(f.applied) - 1), "layer"), "block"))
				layer_state(&f, "block", "failed", err->message);
			goto undo;
		}
	} else {
		layer_state(&f, "block", "skipped", "block_connections: false");
	}
	if (pm->read_only) {
		if (!apply_read_only(&f, err)) {
			layer_state(&f, "read_only", "failed", err->message);
			goto undo;
		}
	} else {
		layer_state(&f, "read_only", "skipped", "read_only: false");
	}
	if (!apply_terminate(&f, confirmed_sessions, err)) {
		goto undo;
	}
	if (!apply_marker(&f, err)) {
		layer_state(&f, "marker", "failed", err->message);
		goto undo;
	}

	/* slipped writes */
	{
		struct rb_error cerr = {0};
		json_t *later = NULL;
		if (read_counters(m->conn, ctx, &counters, &cerr)) {
			json_t *cd = step_data(m, "freeze_counters", "counters", "recorded");
			json_object_set_new(cd, "freeze_at", json_string(m->frozen_at));
			json_object_set(cd, "counters", counters);
			events_emitf(bus_of(ctx), EV_STEP, MAINT_STAGE_ON, cd, "write counters recorded");
			json_decref(cd);
			long long settle = o->settle_ms > 0 ? o->settle_ms : 2000;
			if (!sleep_ms(ctx, settle)) {
				rb_error_setc(err, RB_EXIT_STEP, "maintenance on was cancelled");
					goto undo;
			}
			if (read_counters(m->conn, ctx, &later, &cerr)) {
				const char *why = NULL;
				json_t *diff = counters_diff(counters, later, &why);
				if (diff) {
					json_decref(slipped);
					slipped = diff;
					xact_delta = json_integer_value(json_object_get(later, "xact_commit")) -
					             json_integer_value(json_object_get(counters, "xact_commit"));
				} else {
					events_log(bus_of(ctx), LOG_LEVEL_WARN, MAINT_STAGE_ON, "slipped writes unknown: the counters are %s",
					           why);
				}
				json_decref(later);
			}
		}
		if (cerr.message)
			events_log(bus_of(ctx), LOG_LEVEL_WARN, MAINT_STAGE_ON, "could not read the write counters: %s",
			           cerr.message);
		rb_error_clear(&cerr);
		size_t i;
		json_t *s;
		json_array_foreach(slipped, i, s)
			events_log(bus_of(ctx), LOG_LEVEL_WARN, MAINT_STAGE_ON,
			           "write slipped through the freeze: %s (%" JSON_INTEGER_FORMAT " inserted, %" JSON_INTEGER_FORMAT
			           " updated, %" JSON_INTEGER_FORMAT " deleted)", jstr(s, "table"),
			           json_integer_value(json_object_get(s, "inserted")),
			           json_integer_value(json_object_get(s, "updated")),
			           json_integer_value(json_object_get(s, "deleted")));
	}
	ok = journal_ok(m, err);
	goto out;
undo:
	if (json_array_size(f.applied) > 0) {
		/* undo at once: everything applied so far, newest first (the failed layer too: it may have partly happened) */
		json_t *rev = json_array();
		for (size_t i = json_array_size(f.applied); i-- > 0;) {
			json_t *r = json_array_get(f.applied, i);
			json_t *u = json_object_get(r, "undo");
			if (u && !json_is_null(u))
				json_array_append(rev, r);
		}
		struct rb_error uerr = {0};
		json_t *ulayers = json_array();
		if (!thaw(m, rev, ulayers, &uerr)) {
			rb_error_detail(err, "%s%sUndoing the freeze failed too: %s. Run pgrunbook maintenance off.",
			                err->detail ? err->detail : "", err->detail ? "\n" : "",
			                uerr.message ? uerr.message : "unknown error");
		}
		rb_error_clear(&uerr);
		size_t i;
		json_t *l;
		json_array_foreach(ulayers, i, l) {
			char *name = xasprintf("undo %s", jstr(l, "layer"));
			json_object_set_new(l, "layer", json_string(name));
			free(name);
			json_array_append(f.layers, l);
		}
		json_decref(ulayers);
		json_decref(rev);
	}
out:
	if (result || started) {
		json_t *res = json_pack("{s:b, s:s, s:s, s:O, s:O, s:O, s:O, s:I, s:o, s:s}", "ok", ok,
		        "environment", m->env ? m->env : "", "database", m->db ? m->db : "",
		        "layers", f.layers, "terminated", f.terminated, "not_blocked", f.not_blocked, "slipped", slipped,
		        "xact_commit_delta", (json_int_t)xact_delta, "counters", counters ? json_incref(counters) : json_null(),
		        "frozen_at", m->frozen_at);
		json_object_set_new(res, "run", json_string(m->run_id));
		if (started) {
			events_emitf(bus_of(ctx), EV_STAGE_RESULT, MAINT_STAGE_ON, res, "maintenance result");
			if (ok)
				events_emitf(bus_of(ctx), EV_STAGE_DONE, MAINT_STAGE_ON, NULL, "%s frozen", m->db);
			else
				events_emitf(bus_of(ctx), EV_STAGE_FAILED, MAINT_STAGE_ON, NULL, "%s",
				             err->message ? err->message : "maintenance on failed");
		}
		if (result)
			*result = res;
		else
			json_decref(res);
	}
	json_decref(f.applied);
	json_decref(f.layers);
	json_decref(f.terminated);
	json_decref(f.not_blocked);
	json_decref(slipped);
	json_decref(counters);
	json_decref(confirmed_sessions);
	mctx_done(m);
	return ok;
}

/* ---- status ---- */

/* The grantees holding CONNECT on m's database now ("PUBLIC" for 0), as an object used as a set. */
static bool
connect_grantees(const struct mctx *m, json_t **out, struct rb_error *err)
{
	PGresult *res;
	if (!query_rows(m->conn,
	                "SELECT CASE WHEN a.grantee OPERATOR(pg_catalog.=) 0 THEN 'PUBLIC'"
	                "  ELSE pg_catalog.pg_get_userbyid(a.grantee)::pg_catalog.text END"
	                " FROM pg_catalog.pg_database d,"
	                " pg_catalog.aclexplode(coalesce(d.datacl, pg_catalog.acldefault('d', d.datdba))) a"
	                " WHERE d.datname OPERATOR(pg_catalog.=) pg_catalog.current_database()"
	                " AND a.privilege_type OPERATOR(pg_catalog.=) 'CONNECT'", 0, NULL, m->ctx, &res, err))
		return false;
	*out = json_object();
	for (int i = 0; i < PQntuples(res); i++)
		json_object_set_new(*out, PQgetvalue(res, i, 0), json_true());
	PQclear(res);
	return true;
}

bool
maint_status(const struct plan *p, const char *env, const struct rb_ctx *ctx, json_t **status, struct rb_error *err)
{
	struct mctx m = { .stage = MAINT_STAGE_ON };
	*status = NULL;
	if (!mctx_connect(&m, p, env, ctx, err))
		return false;
	bool ok = false;
	json_t *pending = NULL, *counters = NULL, *sessions = NULL, *grantees = NULL;
	char *limit = NULL, *ro = NULL, *marker = NULL;
	limit = db_query_value(m.conn, "SELECT d.datconnlimit FROM pg_catalog.pg_database d"
	                       " WHERE d.datname OPERATOR(pg_catalog.=) pg_catalog.current_database()", err);
	if (limit == NULL || !db_setting(m.conn, "default_transaction_read_only", &ro, ctx, err) ||
	    !db_setting(m.conn, "pgrunbook.frozen_by", &marker, ctx, err) || !connect_grantees(&m, &grantees, err) ||
	    !list_sessions(m.conn, ctx, &sessions, err) || !scan_runs(m.db, m.server, NULL, &pending, &counters, NULL, err))
		goto out;
	json_t *records = first_freeze(pending);
	json_t *first = json_array_get(records, 0);
	json_t *revoked = json_array();
	bool ro_on = ro && (strcmp(ro, "on") == 0 || strcmp(ro, "true") == 0 || strcmp(ro, "1") == 0);
	long long connlimit = atoll(limit);
	/* the layers really in place on the server; hooks and pgbouncer cannot be seen from here */
	json_t *in_place = json_array();
	bool checkable = false;
	size_t i;
	json_t *r;
	json_array_foreach(records, i, r) {
		const char *layer = jstr(r, "layer");
		json_t *undo = json_object_get(r, "undo");
		if (streq(layer, "block") && streq(jstr(undo, "method"), "revoke")) {
			checkable = true;
			bool gone = false;
			size_t k;
			json_t *g;
			json_array_foreach(json_object_get(undo, "grants"), k, g) {
				json_array_append_new(revoked, json_string(jstr(g, "grantee")));
				if (!json_object_get(grantees, jstr(g, "grantee")))
					gone = true;
			}
			if (gone)
				json_array_append_new(in_place, json_string("block"));
		} else if (streq(layer, "block")) {
			checkable = true;
			if (connlimit == 0 && json_integer_value(json_object_get(undo, "connection_limit")) != 0)
				json_array_append_new(in_place, json_string("block"));
		} else if (streq(layer, "read_only")) {
			checkable = true;
			if (ro_on)
				json_array_append_new(in_place, json_string("read_only"));
		} else if (streq(layer, "marker")) {
			checkable = true;
		}
	}
	if (marker)
		json_array_append_new(in_place, json_string("marker"));
	if (first == NULL && marker) {
		/* the marker alone: its freeze's other layers as they look */
		if (connlimit == 0)
			json_array_append_new(in_place, json_string("block"));
		if (ro_on)
			json_array_append_new(in_place, json_string("read_only"));
	}
	/* a journal freeze of hooks and pgbouncer only cannot be checked: the journal is believed */
	bool frozen = json_array_size(in_place) > 0 || (first != NULL && !checkable);
	json_t *st = json_pack("{s:s, s:s, s:b, s:{s:I, s:o, s:b, s:o}, s:I, s:o}", "database", m.db, "environment", m.env,
	        "frozen", frozen,
	        "layers", "connection_limit", (json_int_t)connlimit, "revoked", revoked, "read_only", ro_on,
	        "marker", marker ? json_string(marker) : json_null(), "sessions", (json_int_t)json_array_size(sessions),
	        "layers_in_place", in_place);
	json_object_set_new(st, "journal", json_boolean(first != NULL));
	if (first) {
		const char *fat = jstr(first, "freeze_at");
		json_object_set_new(st, "journal_freeze", json_pack("{s:s, s:s, s:s}", "run", jstr(first, "freeze_run"),
		                    "since", fat ? fat : "", "who", jstr(first, "who") ? jstr(first, "who") : ""));
		if (!frozen) {
			char *d = xasprintf("journaled freeze of run %s but no layer in place: thawed outside pgrunbook "
			                    "(by hand, or the database was replaced)", jstr(first, "freeze_run"));
			json_object_set_new(st, "disagreement", json_string(d));
			free(d);
		}
	} else {
		json_object_set_new(st, "journal_freeze", json_null());
	}
	if (first && frozen) {
		const char *fat = jstr(first, "freeze_at");
		json_object_set_new(st, "since", json_string(fat ? fat : ""));
		json_object_set_new(st, "run", json_string(jstr(first, "freeze_run")));
		json_object_set_new(st, "who", json_string(jstr(first, "who") ? jstr(first, "who") : ""));
	} else {
		/* the marker alone: "<run> <time> <who>" */
		char run[128] = "", since[64] = "", who[128] = "";
		if (marker)
			sscanf(marker, "%127s %63s %127s", run, since, who);
		json_object_set_new(st, "since", marker ? json_string(since) : json_null());
		json_object_set_new(st, "run", marker ? json_string(run) : json_null());
		json_object_set_new(st, "who", marker ? json_string(who) : json_null());
	}
	if (first) {
		const char *fat = jstr(first, "freeze_at");
		json_t *pl = json_array();
		json_array_foreach(records, i, r)
			json_array_append_new(pl, json_string(jstr(r, "layer")));
		json_object_set_new(st, "pending_layers", pl);
		char *key = xasprintf("%s|%s", jstr(first, "freeze_run"), fat ? fat : "");
		json_object_set_new(st, "writes_since_freeze", writes_since(&m, json_object_get(counters, key), fat));
		free(key);
	} else {
		json_object_set_new(st, "pending_layers", json_array());
		json_object_set_new(st, "writes_since_freeze", json_null());
	}
	json_decref(records);
	*status = st;
	ok = true;
out:
	free(limit);
	free(ro);
	free(marker);
	json_decref(pending);
	json_decref(counters);
	json_decref(sessions);
	json_decref(grantees);
	mctx_done(&m);
	return ok;
}
