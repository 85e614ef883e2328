/* deploy.c: pending Prisma migrations applied under Prisma's advisory lock, with lock_timeout retries and blockers. */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#include "backup.h"
#include "confirm.h"
#include "db.h"
#include "deploy.h"
#include "effects.h"
#include "events.h"
#include "util.h"

#define STAGE DEPLOY_STAGE
#define LOCK_NOT_AVAILABLE "55P03"
#define QUERY_CANCELED     "57014"
#define POLL_MS            100   /* socket wait slice */
#define BLOCKER_EVERY_MS   400   /* how often a waiting statement's blockers are read */

/* --- small helpers --- */

/* Sleeps ms milliseconds in slices; false as soon as the cancel flag is set. */
static bool
nap(const struct rb_ctx *ctx, long long ms)
{
	long long end = time_monotonic_ms() + ms;
	for (;;) {
		if (rb_ctx_cancelled(ctx))
			return false;
		long long left = end - time_monotonic_ms();
		if (left <= 0)
			return true;
		long long slice = left < 100 ? left : 100;
		struct timespec ts = { .tv_sec = 0, .tv_nsec = slice * 1000000L };
		while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
			;
	}
}

/* Backoff before retry `attempt` (1-based): 1, 2, 4, 8, 16 s, then 16 s, plus up to 25 % jitter. */
static long long
backoff_ms(int attempt)
{
	int shift = attempt - 1 < 4 ? attempt - 1 : 4;
	long long base = 1000LL << shift;
	unsigned int r = 0;
	if (getrandom(&r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r)
		r = (unsigned int)time_monotonic_ms();
	return base + (long long)(r % 1000u) * base / 4000;
}

static char *
quote_ident(PGconn *conn, const char *name)
{
	char *q = PQescapeIdentifier(conn, name, strlen(name));
	char *copy = xstrdup(q ? q : "\"?\"");
	PQfreemem(q);
	return copy;
}

/* Adds a sentence to err's detail (formatted before the old detail is replaced). */
static void RB_PRINTF(2, 3)
detail_append(struct rb_error *err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *more = xvasprintf(fmt, ap);
	va_end(ap);
	char *all = err->detail ? xasprintf("%s %s", err->detail, more) : more;
	if (all != more)
		free(more);
	free(err->detail);
	err->detail = all;
}

/* A query text safe to show and journal: one line, at most 200 characters, hidden when it names a password. */
static char *
shown_query(const char *q)
{
	if (q == NULL)
		return xstrdup("");
	for (const char *s = q; *s; s++)
		if (strncasecmp(s, "password", 8) == 0 || strncasecmp(s, "secret", 6) == 0)
			return xstrdup("(hidden: the query mentions a password or secret)");
	struct strbuf sb;
	strbuf_init(&sb);
	bool space = false;
	size_t chars = 0;
	for (const char *s = q; *s && chars < 200; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
			space = sb.len > 0;
			continue;
		}
		if (space) {
			strbuf_addc(&sb, ' ');
			chars++;
			space = false;
		}
		strbuf_addc(&sb, (char)c);
		if ((c & 0xC0) != 0x80)
			chars++;
	}
	/* Do not cut a UTF-8 sequence in half. */
	while (sb.len > 0 && ((unsigned char)sb.buf[sb.len - 1] & 0xC0) == 0x80)
		sb.len--;
	if (sb.len > 0 && ((unsigned char)sb.buf[sb.len - 1] & 0xC0) == 0xC0)
		sb.len--;
	sb.buf[sb.len] = '\0';
	return strbuf_detach(&sb);
}

static json_t *advisory_holder(PGconn *conn, const struct rb_ctx *ctx);

/* --- preview --- */

static const char *
first_finding_code(const struct lint_stmt *st, enum lint_class c)
{
	for (size_t k = 0; k < st->n_findings; k++)
		if (st->findings[k].rule->class == c)
			return st->findings[k].rule->code;
	return st->code;
}

bool
deploy_preview(const struct plan *p, const char *env, const struct rb_ctx *ctx,
               struct deploy_preview *out, struct rb_error *err)
{
	memset(out, 0, sizeof *out);
	env = env ? env : p->target;
	out->env = xstrdup(env);
	if (!p->migrations.present)
		return rb_error_setc(err, RB_EXIT_PLAN, "the plan has no migrations section");
	char *dir = plan_path(p, p->migrations.dir);
	bool ok = migrations_load(dir, &out->local, err);
	free(dir);
	if (!ok)
		return false;
	/* Lint everything before touching a database: a syntax error stops here. */
	out->lint = xcalloc(out->local.n + 1, sizeof *out->lint);
	for (size_t i = 0; i < out->local.n; i++) {
		if (!lint_script(out->local.items[i].name, out->local.items[i].sql, &out->lint[i], err)) {
			rb_error_hint(err, "Nothing was run. Fix the migration; \"pgrunbook migrate lint\" checks "
			              "the folder without a database.");
			return false;
		}
	}
	PGconn *conn = db_connect_ctx(p, env, ctx, err);
	if (conn == NULL)
		return false;
	out->database = xstrdup(PQdb(conn));
	out->phrase = confirm_phrase("deploy", out->database);
	ok = migrations_status(conn, p->migrations.schema, &out->local, ctx, &out->status, err);
	/* Who holds the migration lock now (an unfinished row may be a deploy in progress). */
	int holder = 0;
	json_t *h = ok ? advisory_holder(conn, ctx) : NULL;
	if (h)
		holder = (int)json_integer_value(json_object_get(h, "pid"));
	json_decref(h);
	PQfinish(conn);
	if (!ok)
		return false;
	struct strbuf why;
	strbuf_init(&why);
	bool only_unfinished = true;  /* every reason to block is an unfinished (failed) row */
	for (size_t i = 0; i < out->local.n; i++) {
		if (out->status.items[i].state != MIG_PENDING)
			continue;
		for (size_t k = 0; k < out->lint[i].n_stmts; k++) {
			if (!out->lint[i].stmts[k].client_copy)
				continue;
			only_unfinished = false;
			strbuf_addf(&why, "%smigration %s line %d: COPY FROM STDIN or TO STDOUT needs data from the "
			            "client, which a migration cannot give (use INSERT, or COPY from a server file)",
			            why.len ? "; " : "", out->local.items[i].name, out->lint[i].stmts[k].line);
		}
	}
	for (size_t i = 0; i < out->status.n; i++) {
		const struct mig_status_item *it = &out->status.items[i];
		if (it->state == MIG_PENDING) {
			out->n_pending++;
			if (i < out->local.n && out->lint[i].class == LINT_DANGEROUS)
				out->dangerous = true;
			continue;
		}
		if (it->state == MIG_APPLIED)
			continue;
		if (it->state != MIG_FAILED)
			only_unfinished = false;
		if (why.len > 0)
			strbuf_adds(&why, "; ");
		if (it->state == MIG_FAILED && holder > 0)
			strbuf_addf(&why, "migration %s is unfinished while another deploy holds the migration lock "
			            "(pid %d): it is probably running right now; wait for that deploy to end",
			            it->name, holder);
		else if (it->state == MIG_FAILED)
			strbuf_addf(&why, "migration %s failed: inspect it with \"pgrunbook migrate recover %s\", then "
			            "mark it rolled back or applied", it->name, it->name);
		else if (it->state == MIG_MODIFIED)
			strbuf_addf(&why, "migration %s was changed after it was applied (its checksum differs): restore "
			            "the applied script and put the change in a new migration", it->name);
		else
			strbuf_addf(&why, "migration %s is applied in the database but missing from the folder: is this "
			            "the release's migrations folder?", it->name);
	}
	out->blocked = why.len > 0 ? strbuf_detach(&why) : (strbuf_release(&why), NULL);
	out->lock_holder = holder;
	out->in_progress = out->blocked && only_unfinished && holder > 0;
	return true;
}

void
deploy_preview_free(struct deploy_preview *pv)
{
	if (pv == NULL)
		return;
	for (size_t i = 0; pv->lint && i < pv->local.n; i++)
		lint_result_free(&pv->lint[i]);
	free(pv->lint);
	migrations_status_free(&pv->status);
	migrations_free(&pv->local);
	free(pv->env);
	free(pv->database);
	free(pv->phrase);
	free(pv->blocked);
	memset(pv, 0, sizeof *pv);
}

json_t *
deploy_preview_json(const struct deploy_preview *pv)
{
	json_t *list = json_array();
	for (size_t i = 0; i < pv->status.n; i++) {
		const struct mig_status_item *it = &pv->status.items[i];
		json_t *o = json_pack("{s:s, s:s}", "name", it->name, "state", migrations_state_name(it->state));
		if (i < pv->local.n && pv->lint) {
			json_t *l = lint_to_json(&pv->lint[i]);
			json_object_set(o, "class", json_object_get(l, "class"));
			json_object_set(o, "needs_statement_mode", json_object_get(l, "needs_statement_mode"));
			json_object_set(o, "statements", json_object_get(l, "statements"));
			json_decref(l);
		}
		json_array_append_new(list, o);
	}
	json_t *o = json_pack("{s:s?, s:s?, s:s?, s:I, s:b, s:o}", "environment", pv->env,
	                      "database", pv->database, "phrase", pv->phrase,
	                      "pending", (json_int_t)pv->n_pending, "dangerous", pv->dangerous,
	                      "migrations", list);
	json_object_set_new(o, "blocked", pv->blocked ? json_string(pv->blocked) : json_null());
	json_object_set_new(o, "lock_holder", pv->lock_holder ? json_integer(pv->lock_holder) : json_null());
	json_object_set_new(o, "in_progress", json_boolean(pv->in_progress));
	return o;
}

/* --- the deploy --- */

enum outcome {
	OUT_APPLIED,       /* every statement succeeded (and the batch committed) */
	OUT_FAILED,        /* a statement failed; in batch mode the server rolled the script back */
	OUT_ROLLED_BACK,   /* an atomic batch gave up (lock timeouts, cancel): nothing of it remains, and
	                      the attempt's row is deleted (the migration is pending, for Prisma too) */
	OUT_UNKNOWN,       /* the connection was lost while it ran: committed or not, nobody knows yet */
};

struct deployer {
	const struct plan       *p;
	const struct deploy_opts *o;
	struct rb_ctx           *ctx;
	struct deploy_preview    pv;
	const char              *env;
	PGconn                  *ctl;        /* holds the advisory lock, writes rows, watches blockers */
	PGconn                  *work;       /* runs the scripts */
	int                      work_pid;   /* its backend, to find it again after a lost connection */
	const struct mig_status *cur;        /* the state the preconditions judge: the preview's, or
	                                        the one read again under the lock */
	char                    *schema_q;   /* the quoted schema of _prisma_migrations */
	json_t                  *applied;    /* names applied by this deploy */
	json_t                  *blockers;   /* the latest blockers seen (array), or NULL */
	long long                wait_since; /* monotonic ms the current statement started waiting, 0 */
	bool                     ctl_lost;
	bool                     in_tx;      /* a timed batch's transaction is open on purpose */
	/* Filled for the migration that stopped the deploy. */
	const char              *stopped_at;
	int                      stopped_stmt;
	const char              *outcome_name;
};

static json_t *
blocker_list(struct deployer *d, int pid)
{
	char pidbuf[16];
	snprintf(pidbuf, sizeof pidbuf, "%d", pid);
	const char *params[1] = { pidbuf };
	PGresult *res = db_exec(d->ctl,
		"SELECT a.pid, COALESCE(a.application_name, ''), COALESCE(a.usename::text, ''),"
		" COALESCE(a.state, ''), COALESCE(a.query, ''),"
		" COALESCE((EXTRACT(epoch FROM pg_catalog.now() OPERATOR(pg_catalog.-) a.xact_start)"
		"   OPERATOR(pg_catalog.*) 1000)::bigint, 0),"
		" COALESCE((SELECT pg_catalog.string_agg(DISTINCT h.mode, ',') FROM pg_catalog.pg_locks w"
		"   JOIN pg_catalog.pg_locks h ON h.locktype OPERATOR(pg_catalog.=) w.locktype"
		"    AND (h.database OPERATOR(pg_catalog.=) w.database OR (h.database IS NULL AND w.database IS NULL))"
		"    AND (h.relation OPERATOR(pg_catalog.=) w.relation OR (h.relation IS NULL AND w.relation IS NULL))"
		"    AND (h.transactionid OPERATOR(pg_catalog.=) w.transactionid"
		"         OR (h.transactionid IS NULL AND w.transactionid IS NULL)) AND h.granted"
		"   WHERE w.pid OPERATOR(pg_catalog.=) $1::int AND NOT w.granted"
		"    AND h.pid OPERATOR(pg_catalog.=) a.pid), '')"
		" FROM pg_catalog.pg_stat_activity a"
		" WHERE a.pid OPERATOR(pg_catalog.=) ANY (pg_catalog.pg_blocking_pids($1::int)) ORDER BY a.pid",
		1, params, NULL);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		if (PQstatus(d->ctl) == CONNECTION_BAD)
			d->ctl_lost = true;
		PQclear(res);
		return NULL;
	}
	json_t *list = json_array();
	long long waiting = d->wait_since ? time_monotonic_ms() - d->wait_since : 0;
	for (int r = 0; r < PQntuples(res); r++) {
		char *q = shown_query(PQgetvalue(res, r, 4));
		json_array_append_new(list, json_pack("{s:i, s:s, s:s, s:s, s:s, s:I, s:I, s:s}",
			"pid", atoi(PQgetvalue(res, r, 0)), "application", PQgetvalue(res, r, 1),
			"user", PQgetvalue(res, r, 2), "state", PQgetvalue(res, r, 3), "query", q,
			"waiting_ms", (json_int_t)waiting, "xact_ms", (json_int_t)strtoll(PQgetvalue(res, r, 5), NULL, 10),
			"lock_mode", PQgetvalue(res, r, 6)));
		free(q);
	}
	PQclear(res);
	return list;
}

/* "pid 4242 (psql, user alice, idle in transaction for 12 s: LOCK TABLE ...)", for messages. */
static char *
describe_blockers(const json_t *list)
{
	struct strbuf sb;
	strbuf_init(&sb);
	size_t i;
	json_t *b;
	json_array_foreach(list, i, b) {
		if (i > 0)
			strbuf_adds(&sb, "; ");
		const char *app = json_string_value(json_object_get(b, "application"));
		strbuf_addf(&sb, "pid %" JSON_INTEGER_FORMAT " (application \"%s\", user %s, %s",
		            json_integer_value(json_object_get(b, "pid")), app && *app ? app : "",
		            json_string_value(json_object_get(b, "user")),
		            json_string_value(json_object_get(b, "state")));
		json_int_t xact = json_integer_value(json_object_get(b, "xact_ms"));
		if (xact > 0)
			strbuf_addf(&sb, ", transaction open for %" JSON_INTEGER_FORMAT " s", xact / 1000);
		const char *mode = json_string_value(json_object_get(b, "lock_mode"));
		if (mode && *mode)
			strbuf_addf(&sb, ", holding %s", mode);
		strbuf_addf(&sb, "): %s", json_string_value(json_object_get(b, "query")));
	}
	if (sb.len == 0)
		strbuf_adds(&sb, "(the blocking session ended before it could be read)");
	return strbuf_detach(&sb);
}

static void
emit_waiting(struct deployer *d, const char *mig, int stmt, json_t *blockers)
{
	long long waiting = d->wait_since ? time_monotonic_ms() - d->wait_since : 0;
	json_t *data = json_pack("{s:s, s:s, s:i, s:I, s:O}", "kind", "waiting", "migration", mig,
	                         "statement", stmt, "waiting_ms", (json_int_t)waiting, "blockers", blockers);
	events_emitf(d->ctx->bus, EV_PROGRESS, STAGE, data, NULL);
	json_decref(data);
}

/* The holder of the advisory lock, or NULL (JSON blocker without waiting_ms meaning). */
static json_t *
advisory_holder(PGconn *conn, const struct rb_ctx *ctx)
{
	PGresult *res = db_exec(conn,
		"SELECT a.pid, COALESCE(a.application_name, ''), COALESCE(a.usename::text, ''),"
		" COALESCE(a.state, ''), COALESCE(a.query, ''),"
		" COALESCE((EXTRACT(epoch FROM pg_catalog.now() OPERATOR(pg_catalog.-) a.backend_start)"
		"   OPERATOR(pg_catalog.*) 1000)::bigint, 0)"
		" FROM pg_catalog.pg_locks l JOIN pg_catalog.pg_stat_activity a ON a.pid OPERATOR(pg_catalog.=) l.pid"
		" WHERE l.locktype OPERATOR(pg_catalog.=) 'advisory' AND l.granted"
		" AND l.classid OPERATOR(pg_catalog.=) 0 AND l.objid OPERATOR(pg_catalog.=) 72707369"
		" AND l.objsubid OPERATOR(pg_catalog.=) 1"
		" AND l.database OPERATOR(pg_catalog.=) (SELECT oid FROM pg_catalog.pg_database"
		"   WHERE datname OPERATOR(pg_catalog.=) pg_catalog.current_database()) LIMIT 1", 0, NULL, ctx);
	json_t *h = NULL;
	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
		char *q = shown_query(PQgetvalue(res, 0, 4));
		h = json_pack("{s:i, s:s, s:s, s:s, s:s, s:I, s:I, s:s}", "pid", atoi(PQgetvalue(res, 0, 0)),
		              "application", PQgetvalue(res, 0, 1), "user", PQgetvalue(res, 0, 2),
		              "state", PQgetvalue(res, 0, 3), "query", q, "waiting_ms", (json_int_t)0,
		              "xact_ms", (json_int_t)strtoll(PQgetvalue(res, 0, 5), NULL, 10), "lock_mode", "advisory");
		free(q);
	}
	PQclear(res);
	return h;
}

/* Polls pg_try_advisory_lock on the control connection until it is granted or the deadline passes. */
void
deploy_lock_release(PGconn *conn)
{
	PQclear(db_exec(conn, "SELECT pg_catalog.pg_advisory_unlock(72707369)", 0, NULL, NULL));
}

bool
deploy_lock_take(PGconn *conn, int64_t wait_ms, struct rb_ctx *ctx, struct rb_error *err)
{
	long long wait = wait_ms > 0 ? wait_ms : 10000;
	long long start = time_monotonic_ms();
	json_t *holder = NULL;
	for (;;) {
		PGresult *res = db_exec(conn, "SELECT pg_catalog.pg_try_advisory_lock(72707369)", 0, NULL, ctx);
		if (PQresultStatus(res) != PGRES_TUPLES_OK) {
			db_error_from_result(err, res, PQstatus(conn) == CONNECTION_BAD ? RB_EXIT_CONNECT : RB_EXIT_STEP);
			rb_error_prefix(err, "could not take the migration lock");
			PQclear(res);
			json_decref(holder);
			return false;
		}
		bool got = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
		PQclear(res);
		if (got) {
			json_decref(holder);
			return true;
		}
		json_decref(holder);
		holder = advisory_holder(conn, ctx);
		long long waited = time_monotonic_ms() - start;
		json_t *data = json_pack("{s:s, s:I, s:O?}", "kind", "advisory_lock", "waited_ms", (json_int_t)waited,
		                         "holder", holder);
		events_emitf(ctx->bus, EV_PROGRESS, STAGE, data, NULL);
		json_decref(data);
		if (waited >= wait || !nap(ctx, 500))
			break;
	}
	if (rb_ctx_cancelled(ctx)) {
		json_decref(holder);
		return rb_error_setc(err, RB_EXIT_STEP, "cancelled while waiting for the migration lock; nothing was run");
	}
	rb_error_setc(err, RB_EXIT_STEP, "another session holds the migration lock (advisory lock %d); "
	              "nothing was run", DEPLOY_ADVISORY_KEY);
	if (holder) {
		json_t *one = json_pack("[O]", holder);
		char *who = describe_blockers(one);
		rb_error_detail(err, "Held by %s.", who);
		free(who);
		json_decref(one);
	} else {
		rb_error_detail(err, "The holder could not be read (it needs pg_read_all_stats or the same role).");
	}
	rb_error_hint(err, "Wait for that deploy (pgrunbook or prisma migrate deploy) to finish and run this "
	              "again; pgrunbook never takes the lock by force.");
	json_decref(holder);
	return false;
}

/* Opens a connection for the deploy with its application_name (shown to other sessions as the blocker). */
static PGconn *
open_conn(struct deployer *d, const char *app, struct rb_error *err)
{
	PGconn *c = db_connect_ctx(d->p, d->env, d->ctx, err);
	if (c == NULL)
		return NULL;
	const char *params[1] = { app };
	PGresult *res = db_exec(c, "SELECT pg_catalog.set_config('application_name', $1, false)", 1, params, d->ctx);
	bool ok = PQresultStatus(res) == PGRES_TUPLES_OK;
	if (!ok)
		db_error_from_result(err, res, RB_EXIT_STEP);
	PQclear(res);
	if (!ok) {
		PQfinish(c);
		return NULL;
	}
	return c;
}

/* The work connection's session: lock_timeout, statement_timeout and Prisma's search_path. */
static bool
prepare_work(struct deployer *d, struct rb_error *err)
{
	char *sql = xasprintf("SET lock_timeout = %" PRId64 "; SET statement_timeout = %" PRId64 "; "
	                      "SET search_path TO %s", d->p->migrations.lock_timeout_ms,
	                      d->p->migrations.statement_timeout_ms, d->schema_q);
	PGresult *res = db_exec(d->work, sql, 0, NULL, d->ctx);
	free(sql);
	bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
	if (!ok)
		db_error_from_result(err, res, RB_EXIT_STEP);
	PQclear(res);
	return ok;
}

/* Prisma-style logs of a failed script. */
static char *
failure_logs(const char *mig, const char *sqlstate, const char *message, int stmt, int nstmts)
{
	struct strbuf sb;
	strbuf_init(&sb);
	strbuf_addf(&sb, "Migration name: %s\n\n", mig);
	if (sqlstate && *sqlstate)
		strbuf_addf(&sb, "Database error code: %s\n\n", sqlstate);
	strbuf_addf(&sb, "Database error:\n%s\n", message ? message : "(no message)");
	if (stmt > 0)
		strbuf_addf(&sb, "\nStatement %d of %d failed (pgrunbook).\n", stmt, nstmts);
	return strbuf_detach(&sb);
}

/* Runs sql on the control connection; false (ctl_lost set when the connection broke) otherwise. */
static bool
ctl_exec(struct deployer *d, const char *sql, int n, const char *const *params, struct rb_error *err)
{
	PGresult *res = db_exec(d->ctl, sql, n, params, NULL);
	ExecStatusType st = PQresultStatus(res);
	bool ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
	if (!ok) {
		db_error_from_result(err, res, RB_EXIT_STEP);
		if (PQstatus(d->ctl) == CONNECTION_BAD)
			d->ctl_lost = true;
	}
	PQclear(res);
	return ok;
}

/* The result of sending one query (a whole script or one statement) on the work connection. */
struct sent {
	int       done;          /* statement results that succeeded */
	bool      failed;
	bool      lost;          /* the work connection broke */
	bool      cancelled;     /* we cancelled it (the operator asked) */
	bool      lock_lost;     /* we cancelled it: the lock connection was lost */
	bool      left_open;     /* it left a transaction open (rolled back by us) */
	char      sqlstate[6];
	char     *message;       /* the server's error text, or libpq's */
};

static void
sent_clear(struct sent *s)
{
	free(s->message);
	memset(s, 0, sizeof *s);
}

/*
 * Sends sql as one simple query on the work connection and waits for every result, watching for
 * blockers (progress events), the cancel flag and the lock connection (both cancel the query;
 * the cancel is sent again every second until the query ends, since one sent before the server
 * read the query is lost). stmt_base/nstmts number the statements for the events (a batch reports
 * each statement as its result arrives). A transaction the query leaves open is rolled back and
 * reported as a failure.
 */
static void
send_and_wait(struct deployer *d, const char *mig, const char *sql, int stmt_base, int nstmts, bool batch,
              struct sent *out)
{
	memset(out, 0, sizeof *out);
	if (!PQsendQuery(d->work, sql)) {
		out->failed = true;
		out->lost = PQstatus(d->work) == CONNECTION_BAD;
		out->message = xstrdup(PQerrorMessage(d->work));
		return;
	}
	int pid = PQbackendPID(d->work);
	PGcancel *cancel = PQgetCancel(d->work);
	long long started = time_monotonic_ms(), last_check = started, last_stmt = started, last_cancel = 0;
	d->wait_since = 0;
	bool was_waiting = false;
	for (;;) {
		long long now = time_monotonic_ms();
		bool by_operator = rb_ctx_cancelled(d->ctx);
		if ((by_operator || d->ctl_lost) && cancel && (last_cancel == 0 || now - last_cancel >= 1000)) {
			char buf[256];
			PQcancel(cancel, buf, sizeof buf);
			last_cancel = now;
			if (by_operator)
				out->cancelled = true;
			else
				out->lock_lost = true;
		}
		if (!PQconsumeInput(d->work)) {
			out->failed = out->lost = true;
			free(out->message);
			out->message = xstrdup(PQerrorMessage(d->work));
			break;
		}
		bool finished = false;
		while (!PQisBusy(d->work)) {
			PGresult *r = PQgetResult(d->work);
			if (r == NULL) {
				finished = true;
				break;
			}
			ExecStatusType st = PQresultStatus(r);
			if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK || st == PGRES_EMPTY_QUERY) {
				if (st != PGRES_EMPTY_QUERY && !out->failed) {
					out->done++;
					long long t = time_monotonic_ms();
					if (batch) {
						json_t *data = json_pack("{s:s, s:s, s:i, s:i, s:s, s:I}", "kind", "statement",
						                         "migration", mig, "statement", stmt_base + out->done,
						                         "statements", nstmts, "state", "done",
						                         "ms", (json_int_t)(t - last_stmt));
						events_emitf(d->ctx->bus, EV_STEP, STAGE, data, NULL);
						json_decref(data);
					}
					last_stmt = t;
				}
			} else if (st == PGRES_COPY_IN || st == PGRES_COPY_OUT || st == PGRES_COPY_BOTH) {
				/* Lint refuses client COPY; should one get here, end it rather than spin. */
				if (st == PGRES_COPY_IN) {
					PQputCopyEnd(d->work, "pgrunbook: COPY FROM STDIN is not supported in migrations");
				} else {
					char *buf;
					while (PQgetCopyData(d->work, &buf, 0) > 0)
						PQfreemem(buf);
				}
				if (!out->failed) {
					out->failed = true;
					out->message = xstrdup("COPY to or from the client is not supported in a migration");
				}
			} else if (!out->failed) {
				out->failed = true;
				const char *ss = PQresultErrorField(r, PG_DIAG_SQLSTATE);
				snprintf(out->sqlstate, sizeof out->sqlstate, "%s", ss ? ss : "");
				const char *m = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
				const char *det = PQresultErrorField(r, PG_DIAG_MESSAGE_DETAIL);
				out->message = det ? xasprintf("%s\nDETAIL: %s", m ? m : PQresultErrorMessage(r), det)
				                   : xstrdup(m ? m : PQresultErrorMessage(r));
			}
			PQclear(r);
		}
		if (finished)
			break;
		if (PQstatus(d->work) == CONNECTION_BAD) {
			out->failed = out->lost = true;
			if (out->message == NULL)
				out->message = xstrdup(PQerrorMessage(d->work));
			break;
		}
		/* Look early (a short lock_timeout ends the wait quickly), then every BLOCKER_EVERY_MS. */
		bool early = now - started < 1000;
		if (!d->ctl_lost && now - last_check >= (early ? 40 : BLOCKER_EVERY_MS)) {
			last_check = now;
			json_t *list = blocker_list(d, pid);
			if (list && json_array_size(list) > 0) {
				if (d->wait_since == 0)
					d->wait_since = now;
				json_decref(d->blockers);
				d->blockers = json_incref(list);
				emit_waiting(d, mig, stmt_base + out->done + 1, list);
				was_waiting = true;
			} else if (list && was_waiting) {
				emit_waiting(d, mig, stmt_base + out->done + 1, list);
				was_waiting = false;
				d->wait_since = 0;
			}
			json_decref(list);
		}
		struct pollfd pfd = { .fd = PQsocket(d->work), .events = POLLIN };
		if (pfd.fd < 0) {
			out->failed = out->lost = true;
			break;
		}
		poll(&pfd, 1, early ? 20 : POLL_MS);
	}
	if (was_waiting && !d->ctl_lost) {
		json_t *none = json_array();
		emit_waiting(d, mig, stmt_base + out->done + 1, none);
		json_decref(none);
	}
	d->wait_since = 0;
	PQfreeCancel(cancel);
	if (!out->lost && !d->in_tx && PQtransactionStatus(d->work) != PQTRANS_IDLE) {
		/*
		 * BEGIN without COMMIT: what ran since would be lost when the connection closes, while
		 * its row (written on the lock connection) said applied. Roll it back and say so.
		 */
		PQclear(PQexec(d->work, "ROLLBACK"));
		if (!out->failed) {
			out->failed = true;
			out->message = xstrdup("the script left a transaction open (BEGIN without COMMIT); pgrunbook "
			                       "rolled that transaction back");
		}
		out->left_open = true;
	}
	if (out->failed && strcmp(out->sqlstate, QUERY_CANCELED) != 0) {
		/* It failed on its own before our cancel landed. */
		out->cancelled = false;
		out->lock_lost = false;
	}
}

static void
emit_statement(struct deployer *d, const char *mig, int stmt, int nstmts, int line, const char *state,
               long long ms, const struct sent *s)
{
	json_t *data = json_pack("{s:s, s:s, s:i, s:i, s:i, s:s}", "kind", "statement", "migration", mig,
	                         "statement", stmt, "statements", nstmts, "line", line, "state", state);
	if (ms >= 0)
		json_object_set_new(data, "ms", json_integer(ms));
	if (s && s->failed) {
		json_object_set_new(data, "sqlstate", json_string(s->sqlstate));
		if (s->message)
			json_object_set_new(data, "error", json_string(s->message));
	}
	events_emitf(d->ctx->bus, EV_STEP, STAGE, data, NULL);
	json_decref(data);
}

/* Emits a lock_timeout step with the blockers; the message says when the next try comes. */
static void
emit_lock_timeout(struct deployer *d, const char *mig, int stmt, int nstmts, int line, int attempt,
                  int attempts, long long retry_in)
{
	json_t *bl = d->blockers ? json_incref(d->blockers) : json_array();
	char *who = describe_blockers(bl);
	json_t *data = json_pack("{s:s, s:s, s:i, s:i, s:i, s:s, s:s, s:i, s:i, s:I, s:o}", "kind", "statement",
	                         "migration", mig, "statement", stmt, "statements", nstmts, "line", line,
	                         "state", "lock_timeout", "sqlstate", LOCK_NOT_AVAILABLE, "attempt", attempt,
	                         "attempts", attempts, "retry_in_ms", (json_int_t)retry_in, "blockers", bl);
	if (retry_in > 0)
		events_emitf(d->ctx->bus, EV_STEP, STAGE, data,
		             "%s statement %d: lock_timeout (%" PRId64 " ms) on try %d of %d; next try in %.1f s; "
		             "blocked by %s", mig, stmt, d->p->migrations.lock_timeout_ms, attempt, attempts,
		             (double)retry_in / 1000.0, who);
	else
		events_emitf(d->ctx->bus, EV_STEP, STAGE, data,
		             "%s statement %d: lock_timeout on the last try (%d of %d); blocked by %s", mig, stmt,
		             attempt, attempts, who);
	free(who);
	json_decref(data);
}

/* Drops an INVALID index left by an earlier failed CREATE INDEX CONCURRENTLY of the same name. */
static bool
cleanup_invalid_index(struct deployer *d, const char *mig, const struct lint_stmt *st, struct rb_error *err)
{
	if (st->concurrent_index == NULL)
		return true;
	const char *schema = st->concurrent_schema ? st->concurrent_schema : d->p->migrations.schema;
	const char *params[2] = { schema, st->concurrent_index };
	PGresult *res = db_exec(d->work,
		"SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n"
		" ON n.oid OPERATOR(pg_catalog.=) c.relnamespace JOIN pg_catalog.pg_index i"
		" ON i.indexrelid OPERATOR(pg_catalog.=) c.oid"
		" WHERE n.nspname OPERATOR(pg_catalog.=) $1 AND c.relname OPERATOR(pg_catalog.=) $2"
		" AND NOT i.indisvalid", 2, params, d->ctx);
	bool ok = PQresultStatus(res) == PGRES_TUPLES_OK;
	bool invalid = ok && PQntuples(res) == 1;
	if (!ok)
		db_error_from_result(err, res, RB_EXIT_STEP);
	PQclear(res);
	if (!invalid)
		return ok;
	char *qs = quote_ident(d->work, schema), *qi = quote_ident(d->work, st->concurrent_index);
	char *sql = xasprintf("DROP INDEX CONCURRENTLY IF EXISTS %s.%s", qs, qi);
	char *name = xasprintf("%s.%s", qs, qi);
	free(qs);
	free(qi);
	struct sent s;
	send_and_wait(d, mig, sql, 0, 1, false, &s);
	free(sql);
	if (s.failed) {
		rb_error_setc(err, RB_EXIT_STEP, "could not drop the INVALID index %s left by an earlier try: %s",
		              name, s.message ? s.message : "?");
		snprintf(err->sqlstate, sizeof err->sqlstate, "%s", s.sqlstate);
		free(name);
		sent_clear(&s);
		return false;
	}
	json_t *data = json_pack("{s:s, s:s, s:s, s:s}", "kind", "cleanup", "migration", mig, "index", name,
	                         "state", "dropped");
	events_emitf(d->ctx->bus, EV_STEP, STAGE, data, "%s: dropped the INVALID index %s a failed "
	             "CREATE INDEX CONCURRENTLY left behind", mig, name);
	json_decref(data);
	free(name);
	sent_clear(&s);
	return true;
}

/* Whether the lock connection still answers (it is checked between statements). */
static bool
ctl_alive(struct deployer *d)
{
	if (d->ctl_lost || d->ctl == NULL)
		return false;
	PGresult *res = db_exec(d->ctl, "SELECT 1", 0, NULL, NULL);
	bool ok = PQresultStatus(res) == PGRES_TUPLES_OK;
	PQclear(res);
	if (!ok)
		d->ctl_lost = true;
	return ok;
}

/*
 * A batch as opts->timed_batch asks (see deploy.h): BEGIN, each statement on its own with its
 * "done" step and real duration, COMMIT. *out as send_and_wait() would fill it for the batch:
 * done counts the statements that completed; on a failure the transaction is rolled back, so
 * nothing of the script remains (as in a batch).
 */
static void
send_batch_timed(struct deployer *d, const struct mig_local *m, const struct lint_result *lr, struct sent *out)
{
	int n = (int)lr->n_stmts;
	d->in_tx = true;
	send_and_wait(d, m->name, "BEGIN", 0, n, false, out);
	int done = 0;
	for (int k = 0; k < n && !out->failed; k++) {
		sent_clear(out);
		long long t0 = time_monotonic_ms();
		send_and_wait(d, m->name, lr->stmts[k].text, k, n, false, out);
		if (!out->failed) {
			emit_statement(d, m->name, k + 1, n, lr->stmts[k].line, "done", time_monotonic_ms() - t0, NULL);
			done++;
		}
	}
	if (!out->failed) {
		sent_clear(out);
		send_and_wait(d, m->name, "COMMIT", n > 0 ? n - 1 : 0, n, false, out);
		if (out->failed && done > 0)
			done--;   /* reported at the last statement: COMMIT checks deferred constraints */
	}
	d->in_tx = false;
	if (out->failed && !out->lost && PQtransactionStatus(d->work) != PQTRANS_IDLE)
		PQclear(PQexec(d->work, "ROLLBACK"));
	out->done = done;
}

/*
 * Stops a migration before its statement k+1 (0-based k) because the operator cancelled or the
 * lock connection is gone. Nothing ran yet: provably nothing applied; otherwise it is failed.
 */
static enum outcome
stop_before(struct deployer *d, const struct mig_local *m, int k, int n, char **logs, struct rb_error *err)
{
	bool lock = d->ctl_lost;
	d->stopped_stmt = k + 1;
	d->outcome_name = lock ? "lock_lost" : "cancelled";
	if (lock)
		rb_error_setc(err, RB_EXIT_STEP, "the connection holding the migration lock was lost; migration %s "
		              "stopped before statement %d of %d", m->name, k + 1, n);
	else
		rb_error_setc(err, RB_EXIT_STEP, "cancelled: migration %s stopped before statement %d of %d", m->name,
		              k + 1, n);
	if (k == 0) {
		rb_error_detail(err, "None of its statements ran.");
		return OUT_ROLLED_BACK;
	}
	rb_error_detail(err, "Statements 1 to %d were applied, each on its own.", k);
	*logs = failure_logs(m->name, "", lock ? "stopped: the connection holding the migration lock was lost "
	                     "(pgrunbook)" : "stopped: cancelled by the operator (pgrunbook)", k + 1, n);
	return OUT_FAILED;
}

/*
 * Runs one migration's script. Returns the outcome; *steps receives the statements (statement
 * mode) or scripts (batch: 0 or 1) that completed; *logs (caller frees) the failure text. Sets
 * err (message and detail; deploy_run adds the hint once it knows what was recorded).
 */
static enum outcome
run_migration(struct deployer *d, const struct mig_local *m, const struct lint_result *lr, int *steps,
              char **logs, struct rb_error *err)
{
	int attempts = d->p->migrations.retries + 1;
	int n = (int)lr->n_stmts;
	*steps = 0;
	*logs = NULL;
	bool atomic = true;
	for (size_t k = 0; k < lr->n_stmts; k++)
		atomic = atomic && !lr->stmts[k].transaction_control;
	const char *remains = atomic ? "The script ran as one transaction; the server rolled all of it back."
	                             : "The script manages its own transactions: part of it may remain.";

	for (int k = 0; k < (lr->needs_statement_mode ? n : 1); k++) {
		const struct lint_stmt *st = lr->needs_statement_mode ? &lr->stmts[k] : NULL;
		for (int attempt = 1;; attempt++) {
			if (st && (rb_ctx_cancelled(d->ctx) || !ctl_alive(d)))
				return stop_before(d, m, k, n, logs, err);
			if (st && !cleanup_invalid_index(d, m->name, st, err)) {
				*logs = failure_logs(m->name, err->sqlstate, err->message, k + 1, n);
				d->stopped_stmt = k + 1;
				return OUT_FAILED;
			}
			if (st)
				emit_statement(d, m->name, k + 1, n, st->line, "start", -1, NULL);
			long long t0 = time_monotonic_ms();
			struct sent s;
			if (st)
				send_and_wait(d, m->name, st->text, k, n, false, &s);
			else if (d->o->timed_batch && atomic && n > 0)
				send_batch_timed(d, m, lr, &s);
			else
				send_and_wait(d, m->name, m->sql, 0, n, true, &s);
			long long ms = time_monotonic_ms() - t0;
			/* The statement the outcome is about (1-based) and its line. */
			int at = st ? k + 1 : (s.done + 1 <= n ? s.done + 1 : n);
			int line = st ? st->line : n > 0 ? lr->stmts[at - 1].line : 1;
			if (!s.failed) {
				if (st)
					emit_statement(d, m->name, at, n, line, "done", ms, NULL);
				(*steps)++;
				sent_clear(&s);
				break;
			}
			d->stopped_stmt = at;
			if (s.lost) {
				*logs = failure_logs(m->name, s.sqlstate, st ? "the connection was lost while this statement "
				                     "ran; whether it took effect is unknown (pgrunbook)" : "the connection was "
				                     "lost while the script ran; whether it committed is unknown (pgrunbook)",
				                     at, n);
				rb_error_setc(err, RB_EXIT_STEP, "the connection was lost while migration %s ran (statement %d "
				              "of %d); its outcome is unknown", m->name, at, n);
				rb_error_detail(err, "%s", s.message ? s.message : "");
				d->outcome_name = "connection_lost";
				sent_clear(&s);
				return OUT_UNKNOWN;
			}
			bool whole = !st && atomic;  /* a failure leaves nothing of this attempt behind */
			if (strcmp(s.sqlstate, LOCK_NOT_AVAILABLE) == 0 && (whole || st)) {
				long long retry_in = attempt < attempts ? backoff_ms(attempt) : 0;
				emit_lock_timeout(d, m->name, at, n, line, attempt, attempts, retry_in);
				if (retry_in > 0 && !d->ctl_lost && nap(d->ctx, retry_in)) {
					sent_clear(&s);
					continue;
				}
				*logs = failure_logs(m->name, s.sqlstate, s.message, at, n);
				snprintf(err->sqlstate, sizeof err->sqlstate, "%s", LOCK_NOT_AVAILABLE);
				sent_clear(&s);
				if (retry_in > 0) {
					/* Stopped while waiting to try again. */
					d->outcome_name = d->ctl_lost ? "lock_lost" : "cancelled";
					rb_error_setc(err, RB_EXIT_STEP, "%s while migration %s waited to retry statement %d",
					              d->ctl_lost ? "the connection holding the migration lock was lost"
					                          : "cancelled", m->name, at);
				} else {
					char *who = describe_blockers(d->blockers);
					rb_error_setc(err, RB_EXIT_STEP, "migration %s: statement %d (line %d) could not get its "
					              "lock within lock_timeout %" PRId64 " ms after %d tr%s%s", m->name, at, line,
					              d->p->migrations.lock_timeout_ms, attempt, attempt == 1 ? "y" : "ies",
					              whole ? "; nothing of it was applied" : "");
					rb_error_detail(err, "Blocked by %s.", who);
					free(who);
					d->outcome_name = "lock_timeout";
				}
				if (whole) {
					rb_error_hint(err, "Ask the blocking session to finish (or end it: SELECT "
					              "pg_terminate_backend(pid)), then deploy again. The migration is still "
					              "pending.");
					return OUT_ROLLED_BACK;
				}
				emit_statement(d, m->name, at, n, line, "failed", ms, NULL);
				if (k == 0)
					return stop_before(d, m, 0, n, logs, err) == OUT_ROLLED_BACK ? OUT_ROLLED_BACK : OUT_FAILED;
				detail_append(err, "Statements 1 to %d of the migration were applied, each on its own.", k);
				return OUT_FAILED;
			}
			emit_statement(d, m->name, at, n, line, "failed", ms, &s);
			*logs = failure_logs(m->name, s.sqlstate, s.message, at, n);
			if (s.cancelled || s.lock_lost) {
				d->outcome_name = s.cancelled ? "cancelled" : "lock_lost";
				rb_error_setc(err, RB_EXIT_STEP, "%s while migration %s ran (statement %d of %d)%s",
				              s.cancelled ? "cancelled" : "the connection holding the migration lock was lost",
				              m->name, at, n, whole ? "; the script was stopped and rolled back" : "");
			} else {
				rb_error_setc(err, RB_EXIT_STEP, "migration %s failed at statement %d (line %d): %s", m->name,
				              at, line, s.message ? s.message : "?");
				snprintf(err->sqlstate, sizeof err->sqlstate, "%s", s.sqlstate);
			}
			if (st)
				rb_error_detail(err, "It ran statement by statement (it holds statements that cannot run in a "
				                "transaction): statements 1 to %d were applied.", k);
			else
				rb_error_detail(err, "%s", remains);
			bool nothing = whole && (s.cancelled || s.lock_lost);
			if (st && k == 0 && (s.cancelled || s.lock_lost))
				nothing = true;  /* the only statement that ran was cancelled: it did nothing */
			sent_clear(&s);
			return nothing ? OUT_ROLLED_BACK : OUT_FAILED;
		}
	}
	return OUT_APPLIED;
}

/*
 * After a lost connection: with backoff, reopens whichever connection broke (a live lock
 * connection keeps its lock), retakes the lock when it was lost, and makes sure the old work
 * session is gone (terminated and waited for) before anyone looks at what it did. Never runs any
 * migration SQL. False (both connections closed) when it cannot get there.
 */
static bool
reconnect(struct deployer *d)
{
	int old_pid = d->work_pid;
	for (int attempt = 1; attempt <= 5; attempt++) {
		long long delay = backoff_ms(attempt);
		events_log(d->ctx->bus, LOG_LEVEL_WARN, STAGE, "connection lost; reconnecting in %.1f s (try %d of 5)",
		           (double)delay / 1000.0, attempt);
		if (!nap(d->ctx, delay))
			break;
		struct rb_error e = {0};
		if (d->ctl_lost || d->ctl == NULL || PQstatus(d->ctl) == CONNECTION_BAD || !ctl_alive(d)) {
			if (d->ctl)
				PQfinish(d->ctl);
			d->ctl = open_conn(d, "pgrunbook deploy (lock)", &e);
			if (d->ctl == NULL) {
				events_log(d->ctx->bus, LOG_LEVEL_WARN, STAGE, "reconnect failed: %s", e.message ? e.message : "?");
				rb_error_clear(&e);
				continue;
			}
			d->ctl_lost = false;
			if (!deploy_lock_take(d->ctl, d->o->advisory_wait_ms, d->ctx, &e)) {
				/* Somebody else deploys now: stop here, never beside them. */
				events_log(d->ctx->bus, LOG_LEVEL_ERROR, STAGE, "could not take the migration lock again: %s",
				           e.message ? e.message : "?");
				rb_error_clear(&e);
				break;
			}
		}
		bool work_bad = d->work == NULL || PQstatus(d->work) == CONNECTION_BAD;
		if (work_bad && old_pid > 0) {
			/* The old session may still run the script (a network cut): end it and wait for it. */
			char pidbuf[16];
			snprintf(pidbuf, sizeof pidbuf, "%d", old_pid);
			const char *params[1] = { pidbuf };
			bool gone = false;
			for (int i = 0; i < 100 && !gone; i++) {
				PGresult *res = db_exec(d->ctl, "SELECT pg_catalog.pg_terminate_backend(a.pid)"
				                        " FROM pg_catalog.pg_stat_activity a"
				                        " WHERE a.pid OPERATOR(pg_catalog.=) $1::int", 1, params, d->ctx);
				gone = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 0;
				PQclear(res);
				if (!gone && !nap(d->ctx, 100))
					break;
			}
			if (!gone) {
				events_log(d->ctx->bus, LOG_LEVEL_ERROR, STAGE, "the deploy's old session (pid %d) does not "
				           "end; not looking at its work", old_pid);
				break;
			}
			old_pid = 0;
		}
		if (work_bad) {
			if (d->work)
				PQfinish(d->work);
			d->work = open_conn(d, "pgrunbook deploy", &e);
			if (d->work == NULL || !prepare_work(d, &e)) {
				events_log(d->ctx->bus, LOG_LEVEL_WARN, STAGE, "reconnect failed: %s", e.message ? e.message : "?");
				rb_error_clear(&e);
				continue;
			}
			d->work_pid = PQbackendPID(d->work);
		}
		events_log(d->ctx->bus, LOG_LEVEL_INFO, STAGE, "reconnected; the migration lock is held");
		return true;
	}
	if (d->ctl)
		PQfinish(d->ctl);
	if (d->work)
		PQfinish(d->work);
	d->ctl = d->work = NULL;
	return false;
}

/*
 * Records the end of a migration on its row (the lock connection): only a row still unfinished
 * and not rolled back is touched (someone resolving it meanwhile is reported, not overwritten).
 */
static bool
record(struct deployer *d, const char *id, enum outcome oc, int steps, const char *logs, struct rb_error *err)
{
	char stepbuf[16];
	snprintf(stepbuf, sizeof stepbuf, "%d", steps);
	char *sql;
	const char *params[3] = { id, stepbuf, logs };
	int nparams = 3;
	switch (oc) {
	case OUT_APPLIED:
		sql = xasprintf("UPDATE %s._prisma_migrations SET finished_at = pg_catalog.now(),"
		                " applied_steps_count = $2::int WHERE id OPERATOR(pg_catalog.=) $1"
		                " AND finished_at IS NULL AND rolled_back_at IS NULL", d->schema_q);
		nparams = 2;
		break;
	case OUT_ROLLED_BACK:
		/*
		 * Not marked rolled back: Prisma's status calls a migration with only rolled-back rows
		 * "up to date". The attempt provably changed nothing and is kept in the journal.
		 */
		sql = xasprintf("DELETE FROM %s._prisma_migrations WHERE id OPERATOR(pg_catalog.=) $1"
		                " AND finished_at IS NULL AND rolled_back_at IS NULL", d->schema_q);
		nparams = 1;
		break;
	case OUT_FAILED:
	case OUT_UNKNOWN:
	default:
		sql = xasprintf("UPDATE %s._prisma_migrations SET logs = $3, applied_steps_count = $2::int"
		                " WHERE id OPERATOR(pg_catalog.=) $1 AND finished_at IS NULL"
		                " AND rolled_back_at IS NULL", d->schema_q);
		break;
	}
	PGresult *res = db_exec(d->ctl, sql, nparams, params, NULL);
	free(sql);
	bool ok = PQresultStatus(res) == PGRES_COMMAND_OK && strcmp(PQcmdTuples(res), "1") == 0;
	struct rb_error e = {0};
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		db_error_from_result(&e, res, RB_EXIT_STEP);
		if (PQstatus(d->ctl) == CONNECTION_BAD)
			d->ctl_lost = true;
	} else if (!ok) {
		rb_error_setc(&e, RB_EXIT_STEP, "its row was finished or rolled back by someone else while it ran");
	}
	PQclear(res);
	if (!ok) {
		if (err->message == NULL) {
			*err = e;
			rb_error_prefix(err, "could not record the migration in _prisma_migrations");
		} else {
			detail_append(err, "Also, its row in _prisma_migrations could not be updated: %s.", e.message);
			rb_error_clear(&e);
		}
	}
	return ok;
}

static json_t *
result_json(struct deployer *d, const char *outcome, const struct rb_error *err)
{
	json_t *o = json_pack("{s:s, s:s?, s:I, s:O, s:s}", "environment", d->env, "database", d->pv.database,
	                      "pending_before", (json_int_t)d->pv.n_pending, "applied", d->applied,
	                      "outcome", outcome);
	json_object_set_new(o, "stopped_at", d->stopped_at ? json_string(d->stopped_at) : json_null());
	json_object_set_new(o, "statement", d->stopped_stmt ? json_integer(d->stopped_stmt) : json_null());
	json_object_set_new(o, "blockers", d->blockers && json_array_size(d->blockers) ? json_incref(d->blockers)
	                                                                               : json_null());
	json_object_set_new(o, "error", err && err->message ? json_string(err->message) : json_null());
	return o;
}

/* The dangerous statements of the pending migrations, one per line: "name:line CODE summary: detail". */
static char *
dangerous_list(const struct deploy_preview *pv, const struct mig_status *state, json_t *arr)
{
	struct strbuf sb;
	strbuf_init(&sb);
	for (size_t i = 0; i < pv->local.n; i++) {
		if (state->items[i].state != MIG_PENDING)
			continue;
		const struct lint_result *lr = &pv->lint[i];
		for (size_t k = 0; k < lr->n_stmts; k++) {
			const struct lint_stmt *st = &lr->stmts[k];
			if (st->class != LINT_DANGEROUS)
				continue;
			const char *code = first_finding_code(st, LINT_DANGEROUS);
			const struct lint_rule *r = lint_rule_find(code);
			const char *detail = NULL;
			for (size_t f = 0; f < st->n_findings; f++)
				if (st->findings[f].rule == r)
					detail = st->findings[f].detail;
			strbuf_addf(&sb, "%s%s:%d %s %s%s%s", sb.len ? "\n" : "", lr->name, st->line, code,
			            r ? r->summary : "", detail ? ": " : "", detail ? detail : "");
			json_array_append_new(arr, json_pack("{s:s, s:i, s:s, s:s, s:s?}", "migration", lr->name,
			                                     "line", st->line, "code", code, "summary", r ? r->summary : "",
			                                     "detail", detail));
		}
	}
	return strbuf_detach(&sb);
}

/*
 * What must hold before anything of the pending migrations runs: the backup (or its typed waiver)
 * and, for dangerous statements, the typed "deploy <db>". Both journaled.
 */
static bool
preconditions(struct deployer *d, struct rb_error *err)
{
	if (!backup_precondition(d->p, d->env, d->pv.database, "migrate", "deploy", d->o->backup_ok, d->o->waive_backup,
	                         d->o->who, d->ctx, err))
		return false;
	if (!d->pv.dangerous)
		return true;
	json_t *arr = json_array();
	char *list = dangerous_list(&d->pv, d->cur, arr);
	json_t *need = json_pack("{s:s, s:o}", "phrase", d->pv.phrase, "statements", arr);
	events_emitf(d->ctx->bus, EV_CONFIRM_NEEDED, STAGE, need, "dangerous statements need \"%s\"", d->pv.phrase);
	json_decref(need);
	bool ok = confirm_check(d->ctx, STAGE, d->pv.phrase, d->o->confirm, err);
	if (!ok)
		rb_error_detail(err, "Pending migrations hold dangerous statements:\n%s", list);
	free(list);
	return ok;
}

bool
deploy_run(const struct plan *p, const struct deploy_opts *opts, struct rb_ctx *ctx, json_t **result,
           struct rb_error *err)
{
	struct deployer d = { .p = p, .o = opts, .ctx = ctx, .applied = json_array() };
	d.cur = &d.pv.status;
	d.env = opts->env ? opts->env : p->target;
	if (result)
		*result = NULL;
	json_t *sdata = json_pack("{s:s, s:s?}", "environment", d.env, "who", opts->who);
	events_emitf(ctx->bus, EV_STAGE_STARTED, STAGE, sdata, "deploying migrations to %s", d.env);
	json_decref(sdata);
	const char *outcome = "failed";
	bool ok = deploy_preview(p, d.env, ctx, &d.pv, err);
	if (!ok) {
		outcome = err->code == RB_EXIT_CONNECT ? "connection_failed" : "refused";
		goto out;
	}
	/*
	 * An unfinished row while another session holds the migration lock is most likely that
	 * deploy at work: wait for the lock, as Prisma would, and judge again under it.
	 */
	bool judge_later = d.pv.blocked && d.pv.in_progress;
	if (d.pv.blocked && !judge_later) {
		rb_error_setc(err, RB_EXIT_STEP, "deploy refused: %s; nothing was run", d.pv.blocked);
		rb_error_hint(err, "\"pgrunbook migrate status\" shows every migration's state.");
		outcome = "refused";
		ok = false;
		goto out;
	}
	if (judge_later) {
		events_log(ctx->bus, LOG_LEVEL_INFO, STAGE, "another deploy is at work (pid %d holds the migration "
		           "lock); waiting for it before looking again", d.pv.lock_holder);
	} else if (d.pv.n_pending == 0) {
		outcome = "up_to_date";
		goto out;
	} else if (!preconditions(&d, err)) {
		outcome = "refused";
		ok = false;
		goto out;
	}

	d.ctl = open_conn(&d, "pgrunbook deploy (lock)", err);
	if (d.ctl)
		d.work = open_conn(&d, "pgrunbook deploy", err);
	if (d.work)
		d.work_pid = PQbackendPID(d.work);
	if (d.ctl == NULL || d.work == NULL) {
		outcome = "connection_failed";
		ok = false;
		goto out;
	}
	d.schema_q = quote_ident(d.ctl, p->migrations.schema);
	if (!deploy_lock_take(d.ctl, opts->advisory_wait_ms, ctx, err)) {
		outcome = "lock_busy";
		ok = false;
		goto out;
	}
	/* Somebody may have deployed while we waited: read the state again under the lock. */
	struct mig_status now;
	if (!migrations_status(d.ctl, p->migrations.schema, &d.pv.local, ctx, &now, err)) {
		ok = false;
		goto out;
	}
	if (judge_later) {
		/* The preview's verdict came from a deploy in progress: decide again from what is there now. */
		d.cur = &now;
		d.pv.n_pending = now.count[MIG_PENDING];
		d.pv.dangerous = false;
		for (size_t i = 0; i < d.pv.local.n; i++)
			if (now.items[i].state == MIG_PENDING && d.pv.lint[i].class == LINT_DANGEROUS)
				d.pv.dangerous = true;
		bool stuck = now.count[MIG_FAILED] || now.count[MIG_MODIFIED] || now.count[MIG_MISSING_LOCALLY];
		if (!stuck && d.pv.n_pending == 0) {
			migrations_status_free(&now);
			outcome = "up_to_date";
			deploy_lock_release(d.ctl);
			goto out;
		}
		if (!stuck && !preconditions(&d, err)) {
			migrations_status_free(&now);
			outcome = "refused";
			ok = false;
			goto out;
		}
	}
	if (opts->expect_pending) {
		struct strlist seen = {0};
		for (size_t i = 0; i < d.pv.local.n; i++)
			if (now.items[i].state == MIG_PENDING)
				strlist_push(&seen, now.items[i].name);
		bool same = seen.len == opts->expect_pending->len;
		for (size_t i = 0; same && i < seen.len; i++)
			same = strcmp(seen.items[i], opts->expect_pending->items[i]) == 0;
		if (!same) {
			rb_error_setc(err, RB_EXIT_STEP, "the pending migrations changed since they were shown "
			              "(%zu then, %zu now); nothing was run", opts->expect_pending->len, seen.len);
			rb_error_hint(err, "Look at them again and confirm what is pending now.");
			strlist_free(&seen);
			migrations_status_free(&now);
			outcome = "refused";
			ok = false;
			goto out;
		}
		strlist_free(&seen);
	}
	if (!migrations_ensure_table(d.ctl, p->migrations.schema, ctx, err) || !prepare_work(&d, err)) {
		migrations_status_free(&now);
		ok = false;
		goto out;
	}
	size_t total = now.count[MIG_PENDING], index = 0;
	for (size_t i = 0; i < now.n && ok; i++) {
		enum mig_state s = now.items[i].state;
		if (s == MIG_FAILED || s == MIG_MODIFIED || s == MIG_MISSING_LOCALLY) {
			if (judge_later)
				rb_error_setc(err, RB_EXIT_STEP, "deploy refused: migration %s is %s now that the other deploy "
				              "has ended; nothing was run", now.items[i].name, migrations_state_name(s));
			else
				rb_error_setc(err, RB_EXIT_STEP, "migration %s became %s while this deploy waited for the "
				              "lock; nothing was run", now.items[i].name, migrations_state_name(s));
			rb_error_hint(err, "\"pgrunbook migrate status\" shows every migration's state; \"pgrunbook migrate "
			              "recover %s\" inspects a failed one.", now.items[i].name);
			ok = false;
			break;
		}
	}
	for (size_t i = 0; i < d.pv.local.n && ok; i++) {
		if (now.items[i].state != MIG_PENDING)
			continue;
		const struct mig_local *m = &d.pv.local.items[i];
		const struct lint_result *lr = &d.pv.lint[i];
		if (rb_ctx_cancelled(ctx)) {
			rb_error_setc(err, RB_EXIT_STEP, "cancelled before migration %s; it did not start", m->name);
			d.outcome_name = "cancelled";
			ok = false;
			break;
		}
		char id[37];
		migrations_new_id(id);
		char *sql = xasprintf("INSERT INTO %s._prisma_migrations (id, checksum, migration_name, started_at,"
		                      " applied_steps_count) VALUES ($1, $2, $3, pg_catalog.now(), 0)", d.schema_q);
		const char *params[3] = { id, m->checksum, m->name };
		ok = ctl_exec(&d, sql, 3, params, err);
		free(sql);
		if (!ok) {
			rb_error_prefix(err, "could not record the start of migration %s; it did not start", m->name);
			d.stopped_at = m->name;
			break;
		}
		index++;
		const char *mode = lr->needs_statement_mode ? "statements" : "batch";
		json_t *data = json_pack("{s:s, s:s, s:I, s:I, s:s, s:s, s:i, s:s}", "kind", "migration",
		                         "migration", m->name, "index", (json_int_t)index, "total", (json_int_t)total,
		                         "id", id, "mode", mode, "statements", (int)lr->n_stmts, "state", "started");
		events_emitf(ctx->bus, EV_STEP, STAGE, data, "%s: started (%zu of %zu, %s, %zu statement%s)", m->name,
		             index, total, lr->needs_statement_mode ? "statement by statement" : "one transaction",
		             lr->n_stmts, lr->n_stmts == 1 ? "" : "s");
		int steps;
		char *logs;
		enum outcome oc = run_migration(&d, m, lr, &steps, &logs, err);
		bool reachable = true;
		if (oc == OUT_UNKNOWN || d.ctl_lost) {
			/*
			 * Reconnect, retake the lock, read what is known; never run it again. When only the lock
			 * connection died, the script was stopped (or had finished): its outcome is known and
			 * is recorded once the lock is back.
			 */
			if (d.ctl_lost && oc != OUT_UNKNOWN && err->message == NULL)
				rb_error_setc(err, RB_EXIT_STEP, "the connection holding the migration lock was lost while "
				              "migration %s ran", m->name);
			else if (d.ctl_lost && oc != OUT_UNKNOWN && strstr(err->message, "holding the migration lock") == NULL)
				detail_append(err, "The connection holding the migration lock was lost while it ran.");
			reachable = reconnect(&d);
			if (reachable) {
				struct mig_status after;
				struct rb_error e2 = {0};
				if (migrations_status(d.ctl, p->migrations.schema, &d.pv.local, ctx, &after, &e2)) {
					detail_append(err, "After reconnecting: %s is %s in _prisma_migrations.", m->name,
					              migrations_state_name(after.items[i].state));
					migrations_status_free(&after);
				}
				rb_error_clear(&e2);
				struct effects eff = {0};
				if (oc == OUT_UNKNOWN && effects_check(d.ctl, p->migrations.schema, lr, ctx, &eff, &e2))
					detail_append(err, "The catalog shows %zu of the %zu checkable effects of its statements "
					              "as done%s (%zu cannot be checked).", eff.done, eff.done + eff.not_done,
					              eff.invalid_indexes ? ", with an INVALID index" : "", eff.unknown);
				effects_free(&eff);
				rb_error_clear(&e2);
			} else {
				detail_append(err, "Could not reconnect and take the migration lock again; the migration's row "
				              "says it started and did not finish.");
			}
		}
		bool recorded = reachable && d.ctl && record(&d, id, oc, steps, logs, err);
		const char *state = oc == OUT_APPLIED ? "applied" : oc == OUT_ROLLED_BACK ? "not_applied" :
		                    oc == OUT_FAILED ? "failed" : "unknown";
		json_object_set_new(data, "state", json_string(state));
		json_object_set_new(data, "steps", json_integer(steps));
		json_object_set_new(data, "recorded", json_boolean(recorded));
		if (oc == OUT_APPLIED && recorded && !d.ctl_lost) {
			events_emitf(ctx->bus, EV_STEP, STAGE, data, "%s: applied", m->name);
			json_array_append_new(d.applied, json_string(m->name));
		} else {
			if (oc == OUT_APPLIED) {
				state = "applied, not recorded";
				if (err->message == NULL)
					rb_error_setc(err, RB_EXIT_STEP, "migration %s ran to the end but could not be recorded as "
					              "finished", m->name);
				rb_error_hint(err, "Its row says started and not finished, so both tools see it as failed. "
				              "Check it with \"pgrunbook migrate recover %s\" and mark it applied.", m->name);
			} else if (oc == OUT_UNKNOWN) {
				rb_error_hint(err, "It is left recorded as failed, so neither pgrunbook nor Prisma runs it again "
				              "on its own. Inspect it with \"pgrunbook migrate recover %s\".", m->name);
			} else if (oc == OUT_FAILED) {
				rb_error_hint(err, "%s Inspect it with \"pgrunbook migrate recover %s\".", recorded ?
				              "The migration is recorded as failed, as Prisma records it." :
				              "Its row could not be updated: it says started and not finished, so both tools "
				              "see it as failed.", m->name);
			} else if (!recorded && err->hint == NULL) {
				rb_error_hint(err, "Nothing of it was applied, but its row could not be removed: it says started "
				              "and not finished. Check with \"pgrunbook migrate recover %s\".", m->name);
			} else if (!recorded) {
				detail_append(err, "Nothing of it was applied, but its row could not be removed: it says "
				              "started and not finished.");
			}
			events_emitf(ctx->bus, EV_STEP, STAGE, data, "%s: %s", m->name, state);
			d.stopped_at = m->name;
			ok = false;
			if (d.outcome_name == NULL)
				d.outcome_name = oc == OUT_APPLIED ? "not_recorded" : "failed";
		}
		json_decref(data);
		free(logs);
	}
	migrations_status_free(&now);
	if (ok)
		outcome = "applied";
	else if (d.outcome_name)
		outcome = d.outcome_name;
	if (d.ctl && !d.ctl_lost)
		deploy_lock_release(d.ctl);
out:
	if (err->code == 0 && !ok)
		err->code = RB_EXIT_STEP;
	json_t *res = result_json(&d, outcome, ok ? NULL : err);
	events_emitf(ctx->bus, EV_STAGE_RESULT, STAGE, res, "migrate result");
	size_t napplied = json_array_size(d.applied);
	if (ok && napplied > 0)
		events_emitf(ctx->bus, EV_STAGE_DONE, STAGE, NULL, "%zu migration%s applied to %s", napplied,
		             napplied == 1 ? "" : "s", d.env);
	else if (ok)
		events_emitf(ctx->bus, EV_STAGE_DONE, STAGE, NULL, "%s is up to date", d.env);
	else
		events_emitf(ctx->bus, EV_STAGE_FAILED, STAGE, NULL, "%s", err->message ? err->message : outcome);
	if (result)
		*result = res;
	else
		json_decref(res);
	if (d.ctl)
		PQfinish(d.ctl);
	if (d.work)
		PQfinish(d.work);
	free(d.schema_q);
	json_decref(d.applied);
	json_decref(d.blockers);
	deploy_preview_free(&d.pv);
	return ok;
}
