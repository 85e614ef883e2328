/* staging.c: the rehearsal on staging: prod's backup restored there, the migrations timed, the sync diffed, verify. */
#include "config.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "backup.h"
#include "confirm.h"
#include "db.h"
#include "deploy.h"
#include "events.h"
#include "staging.h"
#include "sync_plan.h"
#include "util.h"
#include "verify.h"

#define STAGE STAGING_STAGE

/* --- the timings of the migrations, collected from deploy_run()'s events --- */

struct tstmt {
	int     line;
	char   *sql;          /* the first characters of the statement, one line; may be NULL */
	int64_t ms;           /* every attempt, lock waits and the backoff between tries included */
	int64_t lock_wait_ms;
	int64_t cur_wait;     /* the running attempt's wait, from "waiting" progress */
	bool    done;
};

struct tmig {
	char         *name;
	char         *state;  /* the last migration step's state */
	struct tstmt *stmts;
	int           n;
	long long     mark;   /* when the running statement (of a batch: the attempt) began */
};

struct timings {
	const struct deploy_preview *pv;  /* for lines and statement texts; may be NULL */
	struct tmig *migs;
	size_t       n;
};

static void
timings_free(struct timings *t)
{
	for (size_t i = 0; i < t->n; i++) {
		for (int k = 0; k < t->migs[i].n; k++)
			free(t->migs[i].stmts[k].sql);
		free(t->migs[i].stmts);
		free(t->migs[i].name);
		free(t->migs[i].state);
	}
	free(t->migs);
	memset(t, 0, sizeof *t);
}

/* A statement's text as one short line (whitespace runs become one space). Caller frees. */
static char *
sql_excerpt(const char *s)
{
	struct strbuf sb = {0};
	bool space = false;
	for (; *s && sb.len < 120; s++) {
		if (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r') {
			space = sb.len > 0;
			continue;
		}
		if (space)
			strbuf_addc(&sb, ' ');
		space = false;
		strbuf_addc(&sb, *s);
	}
	if (*s)
		strbuf_adds(&sb, "...");
	return strbuf_detach(&sb);
}

static struct tmig *
timings_find(struct timings *t, const char *name)
{
	for (size_t i = t->n; i-- > 0;)
		if (strcmp(t->migs[i].name, name) == 0)
			return &t->migs[i];
	return NULL;
}

static struct tmig *
timings_start(struct timings *t, const char *name, int n)
{
	struct tmig *m = timings_find(t, name);
	if (m == NULL) {
		t->migs = xrealloc(t->migs, (t->n + 1) * sizeof *t->migs);
		m = &t->migs[t->n++];
		memset(m, 0, sizeof *m);
		m->name = xstrdup(name);
		m->n = n > 0 ? n : 0;
		m->stmts = xcalloc((size_t)m->n + 1, sizeof *m->stmts);
		/* Lines and texts from the preview's lint of the same folder. */
		const struct deploy_preview *pv = t->pv;
		for (size_t i = 0; pv && i < pv->local.n; i++) {
			if (strcmp(pv->local.items[i].name, name) != 0)
				continue;
			for (int k = 0; k < m->n && (size_t)k < pv->lint[i].n_stmts; k++) {
				m->stmts[k].line = pv->lint[i].stmts[k].line;
				m->stmts[k].sql = sql_excerpt(pv->lint[i].stmts[k].text);
			}
		}
	}
	m->mark = time_monotonic_ms();
	return m;
}

static int64_t
jint(const json_t *o, const char *k)
{
	return (int64_t)json_integer_value(json_object_get(o, k));
}

/* The statement an event is about, or NULL. */
static struct tstmt *
timings_stmt(struct timings *t, const json_t *d, struct tmig **mig_out)
{
	const char *name = json_string_value(json_object_get(d, "migration"));
	struct tmig *m = name ? timings_find(t, name) : NULL;
	int k = (int)jint(d, "statement");
	*mig_out = m;
	if (m == NULL || k < 1 || k > m->n)
		return NULL;
	return &m->stmts[k - 1];
}

static void
timings_event(struct timings *t, const struct rb_event *ev)
{
	const json_t *d = ev->data;
	const char *kind = json_string_value(json_object_get(d, "kind"));
	if (kind == NULL)
		return;
	long long now = time_monotonic_ms();
	if (ev->type == EV_STEP && strcmp(kind, "migration") == 0) {
		const char *state = json_string_value(json_object_get(d, "state"));
		const char *name = json_string_value(json_object_get(d, "migration"));
		if (name == NULL || state == NULL)
			return;
		struct tmig *m = strcmp(state, "started") == 0 ? timings_start(t, name, (int)jint(d, "statements"))
		                                                : timings_find(t, name);
		if (m) {
			free(m->state);
			m->state = xstrdup(state);
		}
		return;
	}
	struct tmig *m;
	struct tstmt *s = timings_stmt(t, d, &m);
	if (s == NULL)
		return;
	if (ev->type == EV_PROGRESS && strcmp(kind, "waiting") == 0) {
		if (json_array_size(json_object_get(d, "blockers")) > 0 || jint(d, "waiting_ms") > s->cur_wait)
			s->cur_wait = jint(d, "waiting_ms") > s->cur_wait ? jint(d, "waiting_ms") : s->cur_wait;
		return;
	}
	if (ev->type != EV_STEP || strcmp(kind, "statement") != 0)
		return;
	const char *state = json_string_value(json_object_get(d, "state"));
	if (state == NULL)
		return;
	if (json_integer_value(json_object_get(d, "line")) > 0)
		s->line = (int)jint(d, "line");
	if (strcmp(state, "start") == 0) {
		m->mark = now;
		s->cur_wait = 0;
	} else if (strcmp(state, "done") == 0 || strcmp(state, "failed") == 0) {
		int64_t ms = json_is_integer(json_object_get(d, "ms")) ? jint(d, "ms") : now - m->mark;
		int64_t wait = s->cur_wait < ms ? s->cur_wait : ms;
		s->ms += ms;
		s->lock_wait_ms += wait;
		s->cur_wait = 0;
		s->done = strcmp(state, "done") == 0;
		m->mark = now;
	} else if (strcmp(state, "lock_timeout") == 0) {
		/* The attempt waited for its lock until lock_timeout, then the backoff before the next try. */
		int64_t waited = now - m->mark, retry = jint(d, "retry_in_ms");
		if (s->cur_wait > waited)
			waited = s->cur_wait;
		s->ms += waited + retry;
		s->lock_wait_ms += waited + retry;
		s->cur_wait = 0;
		m->mark = now + retry;
	}
}

/* {"migrations": [...]} members and the totals. */
static json_t *
timings_json(const struct timings *t, int64_t *total_ms, int64_t *total_wait, bool *all_applied)
{
	json_t *arr = json_array();
	*total_ms = *total_wait = 0;
	*all_applied = true;
	for (size_t i = 0; i < t->n; i++) {
		const struct tmig *m = &t->migs[i];
		int64_t ms = 0, wait = 0;
		json_t *stmts = json_array();
		for (int k = 0; k < m->n; k++) {
			const struct tstmt *s = &m->stmts[k];
			ms += s->ms;
			wait += s->lock_wait_ms;
			json_array_append_new(stmts, json_pack("{s:i, s:i, s:s?, s:I, s:I, s:b}", "statement", k + 1,
			                                       "line", s->line, "sql", s->sql, "ms", (json_int_t)s->ms,
			                                       "lock_wait_ms", (json_int_t)s->lock_wait_ms, "done", s->done));
		}
		bool applied = m->state && strcmp(m->state, "applied") == 0;
		*all_applied = *all_applied && applied;
		*total_ms += ms;
		*total_wait += wait;
		json_array_append_new(arr, json_pack("{s:s, s:s?, s:I, s:I, s:o}", "name", m->name, "state", m->state,
		                                     "ms", (json_int_t)ms, "lock_wait_ms", (json_int_t)wait,
		                                     "statements", stmts));
	}
	return arr;
}

/*
 * deploy_run() and verify_run() report as their own stages ("migrate", "verify"); replayed as
 * such they would mark the run's prod stages done. They run on a private bus whose events go on
 * as this stage's (events_relay_fn(): "phase" added, their stage lifecycle records left out; the
 * staging steps and stage_result say how they ended).
 */
static void
timings_relay(const struct rb_event *ev, void *userdata)
{
	timings_event(userdata, ev);
}

/* --- the run --- */

struct staging {
	const struct plan *p;
	const struct staging_opts *o;
	struct rb_ctx *ctx;
	const char    *env;       /* the staging environment */
	json_t        *res;
	json_t        *steps;
	long long      t0;        /* when the current step began */
};

static void
step_begin(struct staging *s)
{
	s->t0 = time_monotonic_ms();
}

/* Records a step in the result and journals it. detail may be NULL. */
static void RB_PRINTF(4, 5)
step_end(struct staging *s, const char *step, bool ok, const char *fmt, ...)
{
	char *detail = NULL;
	if (fmt) {
		va_list ap;
		va_start(ap, fmt);
		detail = xvasprintf(fmt, ap);
		va_end(ap);
	}
	json_int_t ms = (json_int_t)(time_monotonic_ms() - s->t0);
	json_array_append_new(s->steps, json_pack("{s:s, s:s, s:s?, s:I}", "step", step, "state", ok ? "done" : "failed",
	                                          "detail", detail, "ms", ms));
	json_t *data = json_pack("{s:s, s:s, s:s, s:s?, s:I}", "kind", "staging", "step", step, "state",
	                         ok ? "done" : "failed", "detail", detail, "ms", ms);
	events_emitf(s->ctx->bus, EV_STEP, STAGE, data, "%s: %s%s%s", step, ok ? "done" : "failed",
	             detail ? ": " : "", detail ? detail : "");
	json_decref(data);
	free(detail);
}

/* The archive and manifest paths of a backup named by either. Both new strings. */
static void
backup_paths(const char *path, char **archive, char **manifest)
{
	size_t n = strlen(path);
	if (n > 5 && strcmp(path + n - 5, ".json") == 0) {
		*archive = xstrndup(path, n - 5);
		*manifest = xstrdup(path);
	} else {
		*archive = xstrdup(path);
		*manifest = xasprintf("%s.json", path);
	}
}

/* Step 1: the backup; fills "backup" and returns its manifest (caller decrefs) and archive path. */
static json_t *
find_backup(struct staging *s, char **archive, struct rb_error *err)
{
	*archive = NULL;
	step_begin(s);
	char *mpath = NULL;
	json_t *m = NULL;
	if (s->o->backup) {
		backup_paths(s->o->backup, archive, &mpath);
		json_error_t je;
		m = json_load_file(mpath, 0, &je);
		if (!json_is_object(m)) {
			rb_error_setc(err, RB_EXIT_STEP, "could not read the manifest %s of backup %s: %s", mpath, *archive,
			              m ? "not a JSON object" : je.text);
			rb_error_hint(err, "Name a backup taken by \"pgrunbook backup\" (its archive or its .json manifest).");
			json_decref(m);
			m = NULL;
		}
	} else {
		struct backup_result r = {0};
		if (backup_find_recent(s->p, NULL, 0, &r, err)) {
			*archive = xstrdup(r.path);
			mpath = xstrdup(r.manifest_path ? r.manifest_path : "");
			m = json_incref(r.manifest);
		} else {
			rb_error_prefix(err, "no backup to rehearse with");
			if (err->hint == NULL)
				rb_error_hint(err, "Take one with \"pgrunbook backup --plan FILE\".");
		}
		backup_result_free(&r);
	}
	if (m == NULL) {
		step_end(s, "backup", false, "%s", err->message);
		free(mpath);
		free(*archive);
		*archive = NULL;
		return NULL;
	}
	json_object_set_new(s->res, "backup", json_pack("{s:s, s:s, s:O?, s:O?, s:O?, s:O?, s:O?}", "path", *archive,
	                    "manifest", mpath, "database", json_object_get(m, "database"),
	                    "environment", json_object_get(m, "environment"), "finished", json_object_get(m, "finished"),
	                    "sha256", json_object_get(m, "sha256"), "verified", json_object_get(m, "verified")));
	step_end(s, "backup", true, "%s (database %s, finished %s)", *archive,
	         json_string_value(json_object_get(m, "database")) ? json_string_value(json_object_get(m, "database")) : "?",
	         json_string_value(json_object_get(m, "finished")) ? json_string_value(json_object_get(m, "finished")) : "?");
	free(mpath);
	return m;
}

struct server {
	char *host, *port, *sysid;
};

static void
server_free(struct server *sv)
{
	free(sv->host);
	free(sv->port);
	free(sv->sysid);
}

static void
server_read(PGconn *conn, struct server *sv)
{
	sv->host = xstrdup(PQhost(conn) ? PQhost(conn) : "");
	sv->port = xstrdup(PQport(conn) ? PQport(conn) : "");
	sv->sysid = NULL;
	PGresult *res = PQexec(conn, "SELECT system_identifier::pg_catalog.text FROM pg_catalog.pg_control_system()");
	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 && !PQgetisnull(res, 0, 0))
		sv->sysid = xstrdup(PQgetvalue(res, 0, 0));
	PQclear(res);
}

/* Same server: the system identifiers when both are known, else host and port. */
static bool
server_same(const char *host, const char *port, const char *sysid, const struct server *sv)
{
	if (sysid && sv->sysid)
		return strcmp(sysid, sv->sysid) == 0;
	return host && port && strcmp(host, sv->host) == 0 && strcmp(port, sv->port) == 0;
}

static char *
new_name(const char *db)
{
	unsigned char b[3];
	char hex[7];
	if (RAND_bytes(b, sizeof b) != 1) {
		long long t = time_monotonic_ms();
		b[0] = (unsigned char)t;
		b[1] = (unsigned char)(t >> 8);
		b[2] = (unsigned char)(t >> 16);
	}
	hex_encode(b, sizeof b, hex);
	return xasprintf("%s_pgrunbook_new_%s", db, hex);
}

/* DROP DATABASE IF EXISTS name WITH (FORCE) on an admin connection. */
static bool
drop_database(PGconn *conn, const char *name, const struct rb_ctx *ctx, struct rb_error *err)
{
	char *q = db_quote_ident(conn, name);
	char *sql = xasprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)", q);
	bool ok = db_run(conn, sql, 0, NULL, ctx, err);
	free(sql);
	free(q);
	return ok;
}

static bool
rename_database(PGconn *conn, const char *from, const char *to, const struct rb_ctx *ctx, struct rb_error *err)
{
	char *qf = db_quote_ident(conn, from), *qt = db_quote_ident(conn, to);
	char *sql = xasprintf("ALTER DATABASE %s RENAME TO %s", qf, qt);
	bool ok = db_run(conn, sql, 0, NULL, ctx, err);
	free(sql);
	free(qf);
	free(qt);
	return ok;
}

/* Every pending migration on env by name, or NULL when it cannot be told (pv filled when it can). */
static json_t *
pending_list(const struct deploy_preview *pv)
{
	json_t *arr = json_array();
	for (size_t i = 0; i < pv->local.n && i < pv->status.n; i++)
		if (pv->status.items[i].state == MIG_PENDING)
			json_array_append_new(arr, json_string(pv->local.items[i].name));
	return arr;
}

static bool
stage_finish(struct staging *s, bool ok, const struct rb_error *err)
{
	json_object_set_new(s->res, "ok", json_boolean(ok));
	json_object_set_new(s->res, "error", ok ? json_null() : json_string(err->message ? err->message : "failed"));
	events_emitf(s->ctx->bus, EV_STAGE_RESULT, STAGE, s->res, NULL);
	if (ok)
		events_emitf(s->ctx->bus, EV_STAGE_DONE, STAGE, NULL, "staging rehearsal done on %s (%s)", s->env,
		             json_string_value(json_object_get(s->res, "database")));
	else
		events_emitf(s->ctx->bus, EV_STAGE_FAILED, STAGE, NULL, "staging rehearsal failed: %s",
		             err->message ? err->message : "failed");
	return ok;
}

bool
staging_run(const struct plan *p, const struct staging_opts *o, struct rb_ctx *ctx, json_t **result,
            struct rb_error *err)
{
	struct rb_ctx none = {0};
	if (ctx == NULL)
		ctx = &none;
	if (result)
		*result = NULL;
	if (!p->staging.present || p->staging.environment == NULL) {
		rb_error_setc(err, RB_EXIT_PLAN, "the plan has no staging section");
		rb_error_hint(err, "Add \"staging: { environment: NAME }\" to the plan (see pgrunbook-plan(5)).");
		if (result)
			*result = json_pack("{s:b, s:n, s:n, s:n, s:[], s:[], s:n, s:n, s:n, s:s}", "ok", 0, "environment",
			                    "database", "backup", "steps", "migrations", "estimate", "sync", "verify", "error",
			                    err->message);
		return false;
	}
	struct staging s = { .p = p, .o = o, .ctx = ctx, .env = p->staging.environment };
	s.res = json_pack("{s:b, s:s, s:n, s:n, s:n, s:n, s:n, s:[], s:[], s:n, s:n, s:n}", "ok", 0, "environment",
	                  s.env, "database", "backup", "phrase", "copy", "pending", "steps", "migrations", "estimate",
	                  "sync", "verify");
	s.steps = json_object_get(s.res, "steps");
	json_t *sd = json_pack("{s:s, s:s?, s:s?}", "environment", s.env, "who", o->who, "backup", o->backup);
	events_emitf(ctx->bus, EV_STAGE_STARTED, STAGE, sd, "staging rehearsal on %s by %s", s.env,
	             o->who ? o->who : "unknown");
	json_decref(sd);

	char *archive = NULL, *db = NULL, *copy = NULL, *phrase = NULL;
	PGconn *admin = NULL;
	struct server ssv = {0};
	json_t *manifest = NULL, *baseline = NULL;
	struct deploy_preview pv;
	memset(&pv, 0, sizeof pv);
	struct timings tm = {0};
	bool ok = false, copy_exists = false;

	/* 1. backup */
	manifest = find_backup(&s, &archive, err);
	if (manifest == NULL)
		goto out;

	/* The staging server and database; the database must be neither the backup's nor the target's. */
	admin = backup_connect_server(p, s.env, NULL, &db, err);
	if (admin == NULL) {
		step_begin(&s);
		step_end(&s, "connect", false, "%s", err->message);
		goto out;
	}
	server_read(admin, &ssv);
	backup_warn_leftovers(admin, ctx->bus, STAGE, db, "_pgrunbook_new_", "[0-9a-f]{6}", "staging (killed before its swap)");
	json_object_set_new(s.res, "database", json_string(db));
	phrase = confirm_phrase("replace", db);
	{
		json_t *msv = json_object_get(manifest, "server");
		const char *mdb = json_string_value(json_object_get(manifest, "database"));
		bool same_server = server_same(json_string_value(json_object_get(msv, "host")),
		                               json_string_value(json_object_get(msv, "port")),
		                               json_string_value(json_object_get(msv, "system_identifier")), &ssv);
		bool clash = same_server && mdb && strcmp(mdb, db) == 0;
		struct rb_error te = {0};
		char *tdb = NULL;
		PGconn *tconn = backup_connect_server(p, p->target, NULL, &tdb, &te);
		if (tconn) {
			struct server tsv = {0};
			server_read(tconn, &tsv);
			if (strcmp(tdb, db) == 0 && server_same(tsv.host, tsv.port, tsv.sysid, &ssv))
				clash = true;
			server_free(&tsv);
		}
		PQfinish(tconn);
		free(tdb);
		if (tconn == NULL) {
			step_begin(&s);
			rb_error_setc(err, RB_EXIT_STEP,
			              "cannot tell whether the staging database %s is the target's: %s", db,
			              te.message ? te.message : "the target cannot be reached");
			rb_error_detail(err, "The target %s could not be reached, so staging cannot rule out replacing it. "
			                "Nothing was changed.", p->target);
			rb_error_hint(err, "Make the target reachable (its connection settings) and run staging again.");
			rb_error_clear(&te);
			step_end(&s, "confirm", false, "%s", err->message);
			goto out;
		}
		rb_error_clear(&te);
		json_object_set_new(s.res, "no_owner", json_boolean(!same_server));
		if (clash) {
			step_begin(&s);
			rb_error_setc(err, RB_EXIT_STEP, "the staging environment \"%s\" is the target's own database %s",
			              s.env, db);
			rb_error_detail(err, "Staging would replace it. Nothing was changed.");
			rb_error_hint(err, "Point staging.environment at a separate database.");
			step_end(&s, "confirm", false, "%s", err->message);
			goto out;
		}
		if (strlen(db) > 63 - strlen("_pgrunbook_new_000000")) {
			step_begin(&s);
			rb_error_setc(err, RB_EXIT_STEP, "the staging database name %s is too long for a copy's name", db);
			step_end(&s, "confirm", false, "%s", err->message);
			goto out;
		}
	}
	json_object_set_new(s.res, "phrase", json_string(phrase));
	/* What the copy will have pending: the target's pending migrations now. */
	{
		struct deploy_preview tp;
		struct rb_error pe = {0};
		struct rb_ctx quiet = { .cancel = ctx->cancel };
		if (p->migrations.present && deploy_preview(p, p->target, &quiet, &tp, &pe))
			json_object_set_new(s.res, "pending", pending_list(&tp));
		if (p->migrations.present)
			deploy_preview_free(&tp);
		rb_error_clear(&pe);
	}

	/* 2. confirm */
	step_begin(&s);
	if (!confirm_check(ctx, STAGE, phrase, o->confirm, err)) {
		rb_error_detail(err, "The staging database %s would be replaced by a copy of the backup %s.", db, archive);
		step_end(&s, "confirm", false, "%s", err->message);
		goto out;
	}
	step_end(&s, "confirm", true, "\"%s\"", phrase);

	/* 3. restore into a new database, then the swap */
	copy = new_name(db);
	json_object_set_new(s.res, "copy", json_string(copy));
	step_begin(&s);
	struct backup_restore_opts ro = { .env = s.env, .dbname = copy,
	                                  .no_owner = json_is_true(json_object_get(s.res, "no_owner")), .stage = STAGE };
	if (!backup_restore(p, archive, &ro, ctx, NULL, err)) {
		step_end(&s, "restore", false, "%s", err->message);
		rb_error_detail(err, "The staging database %s was not touched.", db);
		goto out;
	}
	copy_exists = true;
	step_end(&s, "restore", true, "into %s%s", copy, ro.no_owner ? " (without owners and grants: another server)" : "");
	step_begin(&s);
	if (rb_ctx_cancelled(ctx)) {
		rb_error_setc(err, RB_EXIT_STEP, "the staging rehearsal was cancelled before the swap");
		step_end(&s, "swap", false, "%s", err->message);
		goto out;
	}
	if (!drop_database(admin, db, ctx, err)) {
		rb_error_prefix(err, "could not drop the old staging database %s", db);
		rb_error_detail(err, "The staging database %s is unchanged.", db);
		step_end(&s, "swap", false, "%s", err->message);
		goto out;
	}
	if (!rename_database(admin, copy, db, ctx, err)) {
		rb_error_prefix(err, "the old staging database %s was dropped but the copy %s could not be renamed to it",
		                db, copy);
		rb_error_hint(err, "Rename it: ALTER DATABASE \"%s\" RENAME TO \"%s\", or run the rehearsal again.", copy, db);
		copy_exists = false;  /* kept: it is the only copy now */
		step_end(&s, "swap", false, "%s", err->message);
		goto out;
	}
	copy_exists = false;
	step_end(&s, "swap", true, "%s dropped, %s renamed to it", db, copy);

	/* 4. migrate, timed */
	if (p->migrations.present) {
		step_begin(&s);
		struct rb_ctx qctx = { .cancel = ctx->cancel };
		if (!deploy_preview(p, s.env, &qctx, &pv, err)) {
			step_end(&s, "migrate", false, "%s", err->message);
			goto out;
		}
		char *dphrase = confirm_phrase("deploy", db);
		struct events *bus = events_new();
		tm.pv = &pv;
		struct events_relay r = { .to = ctx->bus, .stage = STAGE, .phase = "migrate", .also = timings_relay,
		                          .also_userdata = &tm };
		events_subscribe(bus, events_relay_fn, &r);
		struct rb_ctx dctx = { .bus = bus, .cancel = ctx->cancel };
		/* The typed "replace" covers dangerous migrations on the copy: it is thrown away next time. */
		struct deploy_opts dopts = { .env = s.env, .confirm = dphrase, .backup_ok = true, .who = o->who,
		                            .timed_batch = true };
		bool dok = deploy_run(p, &dopts, &dctx, NULL, err);
		events_free(bus);
		free(dphrase);
		int64_t total = 0, wait = 0;
		bool all = true;
		json_object_set_new(s.res, "migrations", timings_json(&tm, &total, &wait, &all));
		json_object_set_new(s.res, "estimate", json_pack("{s:I, s:I, s:b, s:I}", "migrate_ms", (json_int_t)total,
		                    "lock_wait_ms", (json_int_t)wait, "complete", dok && all,
		                    "migrations", (json_int_t)tm.n));
		if (!dok) {
			step_end(&s, "migrate", false, "%s", err->message);
			goto out;
		}
		step_end(&s, "migrate", true, "%zu migration%s, %" PRId64 " ms, of which %" PRId64 " ms waiting for locks",
		         tm.n, tm.n == 1 ? "" : "s", total, wait);
	}

	/* 5. sync diff source -> staging, counts only */
	if (p->sync.present && p->source) {
		step_begin(&s);
		struct sync_plan_opts so = { .target_env = s.env, .who = o->who };
		json_t *sr = NULL;
		bool sok = sync_diff_plan(p, &so, ctx, &sr, err);
		json_object_set_new(s.res, "sync", json_pack("{s:O, s:O, s:b}", "tables", json_object_get(sr, "tables"),
		                    "skipped", json_object_get(sr, "skipped"), "ok", sok));
		size_t nt = json_array_size(json_object_get(sr, "tables"));
		json_decref(sr);
		if (!sok) {
			step_end(&s, "sync", false, "%s", err->message);
			goto out;
		}
		step_end(&s, "sync", true, "%zu table%s diffed", nt, nt == 1 ? "" : "s");
	}

	/* 6. verify, the backup's counts as the baseline */
	{
		step_begin(&s);
		struct events *bus = events_new();
		struct events_relay r = { .to = ctx->bus, .stage = STAGE, .phase = "verify" };
		events_subscribe(bus, events_relay_fn, &r);
		struct rb_ctx vctx = { .bus = bus, .cancel = ctx->cancel };
		json_t *vr = NULL;
		baseline = json_pack("{s:O, s:O}", "database", json_object_get(manifest, "database"), "tables",
		                     json_object_get(manifest, "tables"));
		bool vok = json_is_string(json_object_get(baseline, "database")) &&
		           verify_run(p, s.env, baseline, &vctx, &vr, err);
		if (!json_is_string(json_object_get(baseline, "database")))
			rb_error_setc(err, RB_EXIT_STEP, "the backup's manifest names no database");
		events_free(bus);
		json_object_set_new(s.res, "verify", vr ? vr : json_null());
		json_t *sum = json_object_get(vr, "summary");
		if (!vok) {
			step_end(&s, "verify", false, "%s", err->message);
			goto out;
		}
		step_end(&s, "verify", true, "%" JSON_INTEGER_FORMAT " checks, %" JSON_INTEGER_FORMAT " failed",
		         json_integer_value(json_object_get(sum, "checks")), json_integer_value(json_object_get(sum, "failed")));
	}
	ok = true;

out:
	if (copy_exists && admin) {
		/* A restored copy that was not swapped in is not kept. */
		struct rb_error de = {0};
		if (!drop_database(admin, copy, NULL, &de))
			events_log(ctx->bus, LOG_LEVEL_WARN, STAGE, "could not drop the copy %s: %s", copy,
			           de.message ? de.message : "?");
		rb_error_clear(&de);
	}
	if (!ok && err->code == 0)
		err->code = RB_EXIT_STEP;
	if (!ok && err->message == NULL)
		rb_error_setc(err, RB_EXIT_STEP, "the staging rehearsal failed");
	stage_finish(&s, ok, err);
	if (result)
		*result = s.res;
	else
		json_decref(s.res);
	timings_free(&tm);
	deploy_preview_free(&pv);
	server_free(&ssv);
	PQfinish(admin);
	json_decref(manifest);
	json_decref(baseline);
	free(archive);
	free(db);
	free(copy);
	free(phrase);
	return ok;
}

bool
staging_estimate(const struct run_state *st, int64_t *migrate_ms, int64_t *lock_wait_ms)
{
	for (size_t i = st ? st->nrecords : 0; i-- > 0;) {
		const struct journal_record *r = &st->records[i];
		if (r->type != EV_STAGE_RESULT || r->stage == NULL || strcmp(r->stage, STAGE) != 0)
			continue;
		const json_t *est = json_object_get(r->data, "estimate");
		if (!json_is_true(json_object_get(r->data, "ok")) || !json_is_true(json_object_get(est, "complete")))
			continue;
		*migrate_ms = (int64_t)json_integer_value(json_object_get(est, "migrate_ms"));
		*lock_wait_ms = (int64_t)json_integer_value(json_object_get(est, "lock_wait_ms"));
		return true;
	}
	return false;
}
