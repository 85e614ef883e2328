/* recover.c: guided recovery of a failed migration: what ran, what is visible, and the ways out. */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "confirm.h"
#include "db.h"
#include "deploy.h"
#include "events.h"
#include "recover.h"

static const char *const action_names[] = {
	[RECOVER_MARK_ROLLED_BACK] = "mark-rolled-back",
	[RECOVER_MARK_APPLIED] = "mark-applied",
	[RECOVER_RUN_SQL] = "run-sql",
	[RECOVER_ROLLBACK] = "rollback",
};


#define ROLLBACK_WHY_NOT \
	"a command of its own: `pgrunbook rollback --plan FILE [--run RUN]` (it needs the run's backup)"

const char *
recover_action_name(enum recover_action a)
{
	if ((int)a < 0 || a > RECOVER_ROLLBACK)
		return "unknown";
	return action_names[a];
}

bool
recover_action_from_name(const char *name, enum recover_action *out)
{
	for (int a = RECOVER_MARK_ROLLED_BACK; a <= RECOVER_ROLLBACK; a++) {
		if (name && strcmp(name, action_names[a]) == 0) {
			*out = (enum recover_action)a;
			return true;
		}
	}
	return false;
}

void
recover_info_free(struct recover_info *ri)
{
	if (ri == NULL)
		return;
	free(ri->env);
	free(ri->database);
	free(ri->schema);
	free(ri->name);
	free(ri->started_at);
	free(ri->logs);
	lint_result_free(&ri->lint);
	free(ri->lint_error);
	effects_free(&ri->effects);
	for (int a = 0; a <= RECOVER_ROLLBACK; a++) {
		free(ri->why_not[a]);
		free(ri->warning[a]);
		free(ri->phrase[a]);
	}
	memset(ri, 0, sizeof *ri);
}

/* The first effect with that outcome (or an INVALID index when invalid), or NULL. */
static const struct effect *
first_effect(const struct effects *e, enum effect_seen seen, bool invalid)
{
	for (size_t i = 0; i < e->n; i++) {
		if (invalid ? e->items[i].invalid_index : (e->items[i].seen == seen && !e->items[i].invalid_index))
			return &e->items[i];
	}
	return NULL;
}

void
recover_decide(struct recover_info *ri)
{
	for (int a = 0; a <= RECOVER_ROLLBACK; a++) {
		free(ri->why_not[a]);
		free(ri->warning[a]);
		free(ri->phrase[a]);
		ri->why_not[a] = ri->warning[a] = ri->phrase[a] = NULL;
	}
	const struct effects *e = &ri->effects;
	bool failed = ri->state == MIG_FAILED;
	char *not_failed = failed ? NULL
		: xasprintf("migration %s is %s, not failed: there is nothing to recover", ri->name,
		            migrations_state_name(ri->state));
	const struct effect *inv = first_effect(e, EFFECT_NOT_DONE, true);
	char *inv_text = inv ? xasprintf("%s (line %d)", inv->what, inv->line) : NULL;

	ri->phrase[RECOVER_MARK_ROLLED_BACK] = confirm_phrase("resolve", ri->database);
	ri->phrase[RECOVER_MARK_APPLIED] = confirm_phrase("resolve", ri->database);
	ri->phrase[RECOVER_RUN_SQL] = confirm_phrase("deploy", ri->database);
	ri->phrase[RECOVER_ROLLBACK] = confirm_phrase("rollback", ri->database);

	/* mark-rolled-back: nothing of it may remain. */
	const struct effect *done = first_effect(e, EFFECT_DONE, false);
	if (!failed) {
		ri->why_not[RECOVER_MARK_ROLLED_BACK] = xstrdup(not_failed);
	} else if (done) {
		ri->why_not[RECOVER_MARK_ROLLED_BACK] = xasprintf(
			"%zu of its effects %s present (first: %s, line %d): undo %s first, e.g. with run-sql "
			"and a compensating file", e->done, e->done == 1 ? "is" : "are", done->what, done->line,
			e->done == 1 ? "it" : "them");
	} else if (inv) {
		ri->why_not[RECOVER_MARK_ROLLED_BACK] = xasprintf(
			"%s: drop it first (DROP INDEX CONCURRENTLY, with run-sql)", inv_text);
	}
	/* mark-applied: all of it must be there. */
	const struct effect *missing = first_effect(e, EFFECT_NOT_DONE, false);
	if (!failed) {
		ri->why_not[RECOVER_MARK_APPLIED] = xstrdup(not_failed);
	} else if (ri->lint_error) {
		ri->why_not[RECOVER_MARK_APPLIED] = xasprintf(
			"the script does not parse (%s), so PostgreSQL cannot have run it", ri->lint_error);
	} else if (inv) {
		ri->why_not[RECOVER_MARK_APPLIED] = xasprintf(
			"%s: drop it and build it again (run-sql), then look again", inv_text);
	} else if (missing) {
		ri->why_not[RECOVER_MARK_APPLIED] = xasprintf(
			"%zu of its effects %s missing (first: %s, line %d): finish %s with run-sql, or undo "
			"the rest and mark it rolled back", e->not_done, e->not_done == 1 ? "is" : "are",
			missing->what, missing->line, e->not_done == 1 ? "it" : "them");
	}
	if (!failed)
		ri->why_not[RECOVER_RUN_SQL] = xstrdup(not_failed);
	ri->why_not[RECOVER_ROLLBACK] = xstrdup(ROLLBACK_WHY_NOT);

	for (int a = RECOVER_MARK_ROLLED_BACK; a <= RECOVER_ROLLBACK; a++)
		ri->allowed[a] = ri->why_not[a] == NULL;

	if (e->unknown > 0 || ri->lint_error) {
		char *why = ri->lint_error
			? xasprintf("the script does not parse past %s, so its later statements were not checked; ",
			            ri->lint_error)
			: xstrdup("");
		if (ri->allowed[RECOVER_MARK_ROLLED_BACK])
			ri->warning[RECOVER_MARK_ROLLED_BACK] = xasprintf(
				"%s%zu effect%s cannot be checked (data changes cannot be checked): make sure none "
				"of %s happened, or undo %s, before the migration runs again", why, e->unknown,
				e->unknown == 1 ? "" : "s", e->unknown == 1 ? "it" : "them",
				e->unknown == 1 ? "it" : "them");
		if (ri->allowed[RECOVER_MARK_APPLIED])
			ri->warning[RECOVER_MARK_APPLIED] = xasprintf(
				"%zu effect%s cannot be checked (data changes cannot be checked): make sure %s "
				"happened", e->unknown, e->unknown == 1 ? "" : "s", e->unknown == 1 ? "it" : "they all");
		free(why);
	}
	if (failed && ri->allowed[RECOVER_MARK_APPLIED] && e->done == 0 && !ri->warning[RECOVER_MARK_APPLIED])
		ri->warning[RECOVER_MARK_APPLIED] = xstrdup("none of its effects can be checked");
	free(inv_text);
	free(not_failed);
}

/* Reads the plan's folder and finds the migration in it. */
static bool
load_local(const struct plan *p, const char *name, struct mig_set *set, const struct mig_local **mig,
           struct rb_error *err)
{
	memset(set, 0, sizeof *set);
	*mig = NULL;
	if (!p->migrations.present)
		return rb_error_setc(err, RB_EXIT_PLAN, "the plan has no migrations section");
	char *dir = plan_path(p, p->migrations.dir);
	bool ok = migrations_load(dir, set, err);
	if (ok) {
		for (size_t i = 0; i < set->n && *mig == NULL; i++)
			if (strcmp(set->items[i].name, name) == 0)
				*mig = &set->items[i];
		if (*mig == NULL) {
			rb_error_setc(err, RB_EXIT_STEP, "migration \"%s\" is not in the migrations folder", name);
			rb_error_detail(err, "Looked in %s.", dir);
			rb_error_hint(err, "\"pgrunbook migrate status\" lists the migrations and their states.");
			ok = false;
		}
	}
	free(dir);
	return ok;
}

/*
 * Fills everything of ri but env, database and name (already set) from the database on conn:
 * the migration's rows, its statements and their effects, and the decisions.
 */
static bool
examine(PGconn *conn, const struct plan *p, const struct mig_set *set, const struct mig_local *mig,
        const struct rb_ctx *ctx, struct recover_info *ri, struct rb_error *err)
{
	struct mig_status st;
	ri->schema = xstrdup(p->migrations.schema ? p->migrations.schema : "public");
	ri->lock_timeout_ms = p->migrations.lock_timeout_ms;
	ri->statement_timeout_ms = p->migrations.statement_timeout_ms;
	if (!migrations_status(conn, ri->schema, set, ctx, &st, err))
		return false;
	ri->state = MIG_PENDING;
	for (size_t i = 0; i < st.n; i++) {
		const struct mig_status_item *it = &st.items[i];
		if (strcmp(it->name, mig->name) != 0)
			continue;
		ri->state = it->state;
		ri->started_at = it->started_at ? xstrdup(it->started_at) : NULL;
		ri->logs = it->logs ? xstrdup(it->logs) : NULL;
		ri->applied_steps = it->applied_steps;
		break;
	}
	migrations_status_free(&st);

	struct rb_error lerr = {0};
	if (!lint_script(mig->name, mig->sql, &ri->lint, &lerr))
		ri->lint_error = xstrdup(lerr.message ? lerr.message : "syntax error");
	rb_error_clear(&lerr);
	if (!effects_check(conn, ri->schema, &ri->lint, ctx, &ri->effects, err))
		return false;
	recover_decide(ri);
	return true;
}

/* Connects to env and examines the migration; *connp receives the open connection on success. */
static bool
inspect(const struct plan *p, const char *env, const char *name, const struct rb_ctx *ctx,
        struct recover_info *out, struct mig_set *set, const struct mig_local **mig, PGconn **connp,
        struct rb_error *err)
{
	memset(out, 0, sizeof *out);
	*connp = NULL;
	out->env = xstrdup(env ? env : p->target);
	out->name = xstrdup(name);
	if (!load_local(p, name, set, mig, err))
		return false;
	PGconn *conn = db_connect_ctx(p, out->env, ctx, err);
	if (conn == NULL)
		return false;
	out->database = xstrdup(PQdb(conn));
	if (!examine(conn, p, set, *mig, ctx, out, err)) {
		PQfinish(conn);
		return false;
	}
	*connp = conn;
	return true;
}

bool
recover_inspect(const struct plan *p, const char *env, const char *name, const struct rb_ctx *ctx,
                struct recover_info *out, struct rb_error *err)
{
	struct mig_set set;
	const struct mig_local *mig;
	PGconn *conn;
	bool ok = inspect(p, env, name, ctx, out, &set, &mig, &conn, err);
	PQfinish(conn);
	migrations_free(&set);
	return ok;
}

/* "2s" for the plan's durations. */
static void
duration(int64_t ms, char *out, size_t len)
{
	if (ms <= 0)
		snprintf(out, len, "none");
	else
		plan_format_duration(ms, out, len);
}

char *
recover_preview(const struct recover_info *ri, enum recover_action a, const char *sql_file)
{
	struct strbuf sb = {0};
	const char *db = ri->database ? ri->database : "?";
	const char *name = ri->name ? ri->name : "?";
	const char *schema = ri->schema ? ri->schema : "public";
	switch (a) {
	case RECOVER_MARK_ROLLED_BACK:
		strbuf_addf(&sb, "Sets rolled_back_at on the failed row of %s in \"%s\"._prisma_migrations of "
		            "%s, as `prisma migrate resolve --rolled-back` does. Nothing else changes: the next "
		            "deploy runs the whole migration again, from its first statement.", name, schema, db);
		break;
	case RECOVER_MARK_APPLIED:
		strbuf_addf(&sb, "Marks the failed row of %s rolled back and records a finished row with the "
		            "local script's checksum in \"%s\"._prisma_migrations of %s, as `prisma migrate "
		            "resolve --applied` does. Nothing else changes: the next deploy skips this migration.",
		            name, schema, db);
		break;
	case RECOVER_RUN_SQL: {
		char lt[32], stt[32];
		duration(ri->lock_timeout_ms, lt, sizeof lt);
		duration(ri->statement_timeout_ms, stt, sizeof stt);
		strbuf_addf(&sb, "Runs %s on %s as one simple-query batch (one transaction) under lock_timeout "
		            "%s and statement_timeout %s, then checks the effects again. It marks nothing: "
		            "choose mark-rolled-back or mark-applied afterwards.",
		            sql_file ? sql_file : "a compensating SQL file (--sql FILE)", db, lt, stt);
		if (sql_file == NULL)
			break;
		char *sql = file_read_all(sql_file, NULL);
		if (sql == NULL) {
			strbuf_addf(&sb, "\ncannot read %s: %s", sql_file, strerror(errno));
			break;
		}
		struct lint_result lr;
		struct rb_error lerr = {0};
		if (!lint_script(sql_file, sql, &lr, &lerr))
			strbuf_addf(&sb, "\n%s", lerr.message);
		else if (lr.n_stmts == 0)
			strbuf_adds(&sb, "\nthe file holds no statement");
		for (size_t i = 0; i < lr.n_stmts && lerr.message == NULL; i++) {
			const struct lint_stmt *st = &lr.stmts[i];
			size_t eol = strcspn(st->text, "\n");
			strbuf_addf(&sb, "\n  line %d: %s%s%s  %.*s%s", st->line, lint_class_name(st->class),
			            st->code ? " " : "", st->code ? st->code : "", (int)(eol > 72 ? 72 : eol),
			            st->text, eol > 72 || st->text[eol] ? " ..." : "");
		}
		if (lerr.message == NULL && lr.needs_statement_mode && lr.n_stmts > 1) {
			size_t i = 0;
			while (i < lr.n_stmts && !lr.stmts[i].no_transaction)
				i++;
			strbuf_addf(&sb, "\nThis file cannot run as it is: line %d cannot run in a transaction block; "
			            "put it in a file of its own.", i < lr.n_stmts ? lr.stmts[i].line : 0);
		}
		rb_error_clear(&lerr);
		lint_result_free(&lr);
		free(sql);
		break;
	}
	case RECOVER_ROLLBACK:
		strbuf_addf(&sb, "Restores the backup of %s into a new database, verifies it, swaps the names and "
		            "keeps the failed database for forensics: run `pgrunbook rollback --plan FILE`, not recover.", db);
		break;
	}
	return strbuf_detach(&sb);
}

json_t *
recover_info_json(const struct recover_info *ri)
{
	json_t *lint = lint_to_json(&ri->lint);
	json_t *stmts = json_incref(json_object_get(lint, "statements"));
	json_decref(lint);
	json_t *actions = json_array();
	for (int a = RECOVER_MARK_ROLLED_BACK; a <= RECOVER_ROLLBACK; a++) {
		char *preview = recover_preview(ri, (enum recover_action)a, NULL);
		json_array_append_new(actions, json_pack("{s:s, s:b, s:s?, s:s?, s:s?, s:s}",
		                      "action", action_names[a], "allowed", ri->allowed[a],
		                      "why_not", ri->why_not[a], "warning", ri->warning[a],
		                      "phrase", ri->phrase[a], "preview", preview));
		free(preview);
	}
	return json_pack("{s:s?, s:s?, s:s?, s:s?, s:s, s:s?, s:s?, s:i, s:s?, s:o, s:o, s:o}",
	                 "environment", ri->env, "database", ri->database, "schema", ri->schema,
	                 "migration", ri->name, "state", migrations_state_name(ri->state),
	                 "started_at", ri->started_at, "logs", ri->logs, "applied_steps", ri->applied_steps,
	                 "lint_error", ri->lint_error, "statements", stmts ? stmts : json_array(),
	                 "effects", effects_to_json(&ri->effects), "actions", actions);
}

/* Emits the step record of an action: state "running", "done" or "failed" (with reason). */
static void
emit_step(const struct rb_ctx *ctx, const char *name, enum recover_action a, const char *state,
          const char *reason, const struct effects *after)
{
	json_t *d = json_pack("{s:s, s:s, s:s, s:s}", "kind", "recover", "migration", name,
	                      "action", action_names[a], "state", state);
	if (reason)
		json_object_set_new(d, "reason", json_string(reason));
	if (after)
		json_object_set_new(d, "effects", json_pack("{s:I, s:I, s:I, s:I}",
		                    "done", (json_int_t)after->done, "not_done", (json_int_t)after->not_done,
		                    "unknown", (json_int_t)after->unknown,
		                    "invalid_indexes", (json_int_t)after->invalid_indexes));
	events_emitf(ctx ? ctx->bus : NULL, EV_STEP, "migrate", d, "recover %s %s: %s%s%s", action_names[a],
	             name, state, reason ? ": " : "", reason ? reason : "");
	json_decref(d);
}

/* Runs one command string; false with err set unless it succeeded. */
static bool
run_command(PGconn *conn, const char *sql, const struct rb_ctx *ctx, struct rb_error *err)
{
	PGresult *res = db_exec(conn, sql, 0, NULL, ctx);
	ExecStatusType s = PQresultStatus(res);
	bool ok = s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK || s == PGRES_EMPTY_QUERY;
	if (!ok)
		db_error_from_result(err, res, RB_EXIT_STEP);
	PQclear(res);
	return ok;
}

/* Runs the compensating script under the plan's timeouts; the session is left as it was. */
static bool
run_sql(PGconn *conn, const struct recover_info *ri, const char *sql, const struct rb_ctx *ctx,
        struct rb_error *err)
{
	/* As deploy runs migrations: unqualified names resolve in the migrations schema. */
	char *qs = PQescapeIdentifier(conn, ri->schema, strlen(ri->schema));
	char *set = xasprintf("SET lock_timeout = %lld; SET statement_timeout = %lld; SET search_path TO %s",
	                      (long long)ri->lock_timeout_ms, (long long)ri->statement_timeout_ms, qs ? qs : "public");
	PQfreemem(qs);
	bool ok = run_command(conn, set, ctx, err);
	free(set);
	if (ok) {
		ok = run_command(conn, sql, ctx, err);
		if (!ok && strcmp(err->sqlstate, "55P03") == 0)
			rb_error_hint(err, "Another session holds a lock the file needs (lock_timeout of the plan's "
			              "migrations section); find it in pg_locks and try again.");
	}
	if (PQtransactionStatus(conn) != PQTRANS_IDLE) {
		PGresult *res = db_exec(conn, "ROLLBACK", 0, NULL, NULL);
		PQclear(res);
		if (ok) {
			rb_error_setc(err, RB_EXIT_STEP, "the SQL file left a transaction open; it was rolled back");
			rb_error_hint(err, "End every BEGIN in the file with COMMIT, or leave BEGIN out: the file "
			              "runs as one transaction anyway.");
			ok = false;
		}
	}
	PGresult *res = db_exec(conn, "RESET lock_timeout; RESET statement_timeout; RESET search_path", 0, NULL, NULL);
	PQclear(res);
	return ok;
}

/* Reads and checks the run-sql file before anything is confirmed. */
static char *
read_sql_file(const char *sql_file, struct rb_error *err)
{
	if (sql_file == NULL) {
		rb_error_setc(err, RB_EXIT_USAGE, "run-sql needs the compensating SQL file (--sql FILE)");
		return NULL;
	}
	char *sql = file_read_all(sql_file, NULL);
	if (sql == NULL) {
		rb_error_setc(err, RB_EXIT_USAGE, "could not read \"%s\": %s", sql_file, strerror(errno));
		return NULL;
	}
	struct lint_result lr;
	struct rb_error lerr = {0};
	bool ok = lint_script(sql_file, sql, &lr, &lerr);
	if (!ok) {
		rb_error_setc(err, RB_EXIT_STEP, "%s", lerr.message);
		if (lerr.detail)
			rb_error_detail(err, "%s", lerr.detail);
	} else if (lr.n_stmts == 0) {
		ok = rb_error_setc(err, RB_EXIT_STEP, "\"%s\" holds no statement", sql_file);
	} else if (lr.needs_statement_mode && lr.n_stmts > 1) {
		size_t i = 0;
		while (i < lr.n_stmts && !lr.stmts[i].no_transaction)
			i++;
		ok = rb_error_setc(err, RB_EXIT_STEP, "%s:%d: this statement cannot run in a transaction block, "
		                   "and run-sql runs the file as one", sql_file, i < lr.n_stmts ? lr.stmts[i].line : 0);
		rb_error_hint(err, "Put it in a file of its own and run that file first.");
	}
	rb_error_clear(&lerr);
	lint_result_free(&lr);
	if (!ok) {
		free(sql);
		return NULL;
	}
	return sql;
}

bool
recover_apply(const struct plan *p, const char *env, const char *name, enum recover_action a,
              const char *sql_file, const char *confirm, struct rb_ctx *ctx, json_t **after,
              struct rb_error *err)
{
	struct recover_info ri, now;
	struct mig_set set;
	const struct mig_local *mig = NULL;
	PGconn *conn = NULL;
	char *sql = NULL;
	bool ok = false, locked = false;
	memset(&now, 0, sizeof now);
	if (after)
		*after = NULL;
	if ((int)a < 0 || a > RECOVER_ROLLBACK)
		return rb_error_set(err, "unknown recovery action");
	if (a == RECOVER_RUN_SQL && (sql = read_sql_file(sql_file, err)) == NULL) {
		memset(&ri, 0, sizeof ri);
		memset(&set, 0, sizeof set);
		goto out;
	}
	if (!inspect(p, env, name, ctx, &ri, &set, &mig, &conn, err))
		goto out;
	if (!confirm_check(ctx, "migrate", ri.phrase[a], confirm, err))
		goto out;
	if (a == RECOVER_ROLLBACK) {
		emit_step(ctx, name, a, "failed", ri.why_not[a], NULL);
		rb_error_setc(err, RB_EXIT_STEP, "rollback from the backup is not a recover action; nothing was run");
		rb_error_detail(err, "Restoring the backup needs the run that took it and swaps whole databases.");
		rb_error_hint(err, "Run: pgrunbook rollback --plan %s [--run RUN] (it shows the path it chooses and "
		              "the phrase before doing anything).", p->path);
		goto out;
	}
	/* Prisma's migration lock, without waiting: refused, naming the holder, while it is taken. */
	if (!deploy_lock_take(conn, 1, ctx, err)) {
		emit_step(ctx, name, a, "failed", err->message, NULL);
		goto out;
	}
	locked = true;
	/* Decide on a fresh look taken under the lock. */
	now.env = xstrdup(ri.env);
	now.database = xstrdup(ri.database);
	now.name = xstrdup(name);
	if (!examine(conn, p, &set, mig, ctx, &now, err)) {
		emit_step(ctx, name, a, "failed", err->message, NULL);
		goto out;
	}
	if (!now.allowed[a]) {
		emit_step(ctx, name, a, "failed", now.why_not[a], NULL);
		rb_error_setc(err, RB_EXIT_STEP, "%s refused: %s; nothing was run", action_names[a], now.why_not[a]);
		goto out;
	}
	if (now.warning[a])
		events_log(ctx ? ctx->bus : NULL, LOG_LEVEL_WARN, "migrate", "recover %s %s: %s", action_names[a],
		           name, now.warning[a]);
	emit_step(ctx, name, a, "running", NULL, NULL);
	switch (a) {
	case RECOVER_MARK_ROLLED_BACK:
		ok = migrations_mark_rolled_back(conn, now.schema, name, ctx, err);
		break;
	case RECOVER_MARK_APPLIED:
		ok = migrations_mark_applied(conn, now.schema, mig, ctx, err);
		break;
	case RECOVER_RUN_SQL:
		ok = run_sql(conn, &now, sql, ctx, err);
		break;
	case RECOVER_ROLLBACK:
		break;
	}
	/* What it looks like now. */
	recover_info_free(&now);
	now.env = xstrdup(ri.env);
	now.database = xstrdup(ri.database);
	now.name = xstrdup(name);
	struct rb_error aerr = {0};
	bool looked = examine(conn, p, &set, mig, ctx, &now, &aerr);
	emit_step(ctx, name, a, ok ? "done" : "failed", ok ? NULL : err->message, looked ? &now.effects : NULL);
	if (looked && after)
		*after = recover_info_json(&now);
	if (!looked && ok) {
		/* It ran; the second look failing does not undo that, but say so. */
		events_log(ctx ? ctx->bus : NULL, LOG_LEVEL_WARN, "migrate", "recover %s %s: could not look again: %s",
		           action_names[a], name, aerr.message ? aerr.message : "unknown error");
	}
	rb_error_clear(&aerr);
out:
	if (locked)
		deploy_lock_release(conn);
	if (conn && after && *after == NULL && ri.database && !ok) {
		/* Refused or failed: the state as it was seen. */
		*after = recover_info_json(now.database ? &now : &ri);
	}
	PQfinish(conn);
	free(sql);
	recover_info_free(&now);
	recover_info_free(&ri);
	migrations_free(&set);
	return ok;
}
