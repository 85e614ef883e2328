/* verify.c: read-only integrity checks after a change: row counts against a baseline, orphans, catalog state, custom SQL. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "db.h"
#include "events.h"
#include "util.h"
#include "verify.h"

#define STAGE VERIFY_STAGE
#define SNAPSHOT_FORMAT "pgrunbook-snapshot"
#define MAX_SAMPLES 5

/* Schemas whose tables are the system's: never counted, never checked. */
#define USER_SCHEMA(col) \
	col " NOT IN ('pg_catalog', 'information_schema') AND " col " !~ '^pg_(toast|temp_|toast_temp_)'"

/* --- transactions and queries --- */

/*
 * Opens a READ ONLY transaction (REPEATABLE READ when asked) whose search_path is search_path
 * ("" for catalog queries).
 */
static bool
begin_ro(PGconn *conn, bool repeatable, const char *search_path, const struct rb_ctx *ctx, struct rb_error *err)
{
	if (!db_run(conn, repeatable ? "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY" : "BEGIN READ ONLY",
	         0, NULL, ctx, err))
		return false;
	const char *params[1] = { search_path };
	if (!db_run(conn, "SELECT pg_catalog.set_config('search_path', $1, true)", 1, params, ctx, err)) {
		db_run(conn, "ROLLBACK", 0, NULL, NULL, NULL);
		return false;
	}
	return true;
}

/* Ends the transaction; it wrote nothing, so ROLLBACK is as good as COMMIT and works after errors. */
static void
end_tx(PGconn *conn)
{
	PGresult *res = db_exec(conn, "ROLLBACK", 0, NULL, NULL);
	PQclear(res);
}

/* Sets err to "was cancelled" when ctx's flag is set; true when it was. */
static bool
cancelled(const struct rb_ctx *ctx, struct rb_error *err)
{
	if (!rb_ctx_cancelled(ctx))
		return false;
	rb_error_clear(err);
	rb_error_setc(err, RB_EXIT_STEP, "verify was cancelled");
	return true;
}

/* --- snapshots --- */

bool
verify_snapshot_take(PGconn *conn, const struct rb_ctx *ctx, json_t **counts, struct rb_error *err)
{
	*counts = NULL;
	if (!begin_ro(conn, true, "", ctx, err)) {
		rb_error_prefix(err, "could not start the snapshot transaction");
		return false;
	}
	PGresult *res = db_exec(conn,
		"SELECT n.nspname, c.relname, c.relkind"
		" FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
		" WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND c.relpersistence <> 't'"
		" AND " USER_SCHEMA("n.nspname")
		" ORDER BY n.nspname, c.relname", 0, NULL, ctx);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		db_error_from_result(err, res, RB_EXIT_STEP);
		rb_error_prefix(err, "could not list the tables");
		PQclear(res);
		end_tx(conn);
		return false;
	}
	json_t *out = json_object();
	bool ok = true;
	for (int i = 0; i < PQntuples(res) && ok; i++) {
		const char *schema = PQgetvalue(res, i, 0), *rel = PQgetvalue(res, i, 1);
		bool partitioned = PQgetvalue(res, i, 2)[0] == 'p';
		char *qs = db_quote_ident(conn, schema), *qr = db_quote_ident(conn, rel);
		char *sql = xasprintf("SELECT pg_catalog.count(*) FROM %s%s.%s", partitioned ? "" : "ONLY ", qs, qr);
		PGresult *cr = db_exec(conn, sql, 0, NULL, ctx);
		char *key = xasprintf("%s.%s", schema, rel);
		if (PQresultStatus(cr) == PGRES_TUPLES_OK && PQntuples(cr) == 1) {
			json_object_set_new(out, key, json_integer(strtoll(PQgetvalue(cr, 0, 0), NULL, 10)));
		} else {
			db_error_from_result(err, cr, RB_EXIT_STEP);
			rb_error_prefix(err, "could not count the rows of %s", key);
			ok = false;
		}
		free(key);
		PQclear(cr);
		free(sql);
		free(qs);
		free(qr);
	}
	PQclear(res);
	end_tx(conn);
	if (!ok) {
		json_decref(out);
		return false;
	}
	*counts = out;
	return true;
}

/* Connects to env with the plan's statement_timeout; NULL with err set. */
static PGconn *
connect_env(const struct plan *p, const char *env, const struct rb_ctx *ctx, struct rb_error *err)
{
	PGconn *conn = db_connect_ctx(p, env, ctx, err);
	if (conn == NULL)
		return NULL;
	char *sql = xasprintf("SET statement_timeout = %" PRId64, p->migrations.statement_timeout_ms);
	bool ok = db_run(conn, sql, 0, NULL, ctx, err);
	free(sql);
	if (!ok) {
		rb_error_prefix(err, "could not set statement_timeout");
		PQfinish(conn);
		return NULL;
	}
	return conn;
}

bool
verify_snapshot(const struct plan *p, const char *env, const struct rb_ctx *ctx, json_t **snapshot,
                struct rb_error *err)
{
	*snapshot = NULL;
	if (env == NULL)
		env = p->target;
	PGconn *conn = connect_env(p, env, ctx, err);
	if (conn == NULL)
		return false;
	json_t *counts;
	char taken[32];
	time_now_rfc3339(taken);
	bool ok = verify_snapshot_take(conn, ctx, &counts, err);
	if (ok)
		*snapshot = json_pack("{s:s, s:i, s:s, s:s, s:s, s:s, s:o}", "format", SNAPSHOT_FORMAT, "version", 1,
		                      "database", PQdb(conn), "environment", env, "taken_at", taken,
		                      "plan_hash", p->hash, "tables", counts);
	PQfinish(conn);
	return ok;
}

bool
verify_snapshot_write(const char *path, const json_t *snapshot, struct rb_error *err)
{
	char *text = json_dumps(snapshot, JSON_INDENT(2) | JSON_SORT_KEYS);
	if (text == NULL)
		return rb_error_setc(err, RB_EXIT_USAGE, "could not encode the snapshot");
	char *with_nl = xasprintf("%s\n", text);
	char *why = NULL;
	bool ok = util_write_file_atomic(path, with_nl, strlen(with_nl), &why);
	if (!ok)
		rb_error_setc(err, RB_EXIT_USAGE, "could not write the snapshot \"%s\": %s", path, why);
	free(why);
	free(with_nl);
	free(text);
	return ok;
}

json_t *
verify_baseline_load(const char *path, struct rb_error *err)
{
	json_error_t je;
	json_t *doc = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
	if (doc == NULL) {
		rb_error_setc(err, RB_EXIT_USAGE, "could not read the baseline \"%s\": %s", path, je.text);
		if (je.line > 0)
			rb_error_detail(err, "The error is at line %d, column %d.", je.line, je.column);
		return NULL;
	}
	json_t *tables = json_object_get(doc, "tables");
	json_t *db = json_object_get(doc, "database");
	if (!json_is_object(doc) || !json_is_object(tables) || !json_is_string(db)) {
		rb_error_setc(err, RB_EXIT_USAGE, "the baseline \"%s\" is neither a snapshot nor a backup manifest", path);
		rb_error_detail(err, "A baseline is a JSON object with \"database\" (a string) and \"tables\" "
		                "(an object of \"schema.table\": row count).");
		rb_error_hint(err, "Take one with \"pgrunbook verify snapshot --plan FILE --out FILE\".");
		json_decref(doc);
		return NULL;
	}
	const char *key;
	json_t *v;
	json_object_foreach(tables, key, v) {
		if (!json_is_integer(v) || json_integer_value(v) < 0) {
			rb_error_setc(err, RB_EXIT_USAGE, "the baseline \"%s\" has no row count for table \"%s\"", path, key);
			rb_error_detail(err, "Each value of \"tables\" must be a non-negative integer.");
			json_decref(doc);
			return NULL;
		}
	}
	const char *format = json_string_value(json_object_get(doc, "format"));
	bool snap = format && strcmp(format, SNAPSHOT_FORMAT) == 0;
	json_t *env = json_object_get(doc, "environment");
	/* A snapshot's taken_at; a backup manifest's "started" (its counts are pg_dump's snapshot). */
	json_t *taken = json_object_get(doc, "taken_at");
	if (!json_is_string(taken))
		taken = json_object_get(doc, "started");
	if (!json_is_string(taken))
		taken = json_object_get(doc, "finished");
	json_t *out = json_pack("{s:s, s:s, s:O, s:O, s:O, s:O}", "source", snap ? "snapshot" : "backup_manifest",
	                        "path", path, "database", db, "environment", json_is_string(env) ? env : json_null(),
	                        "taken_at", json_is_string(taken) ? taken : json_null(), "tables", tables);
	json_decref(doc);
	return out;
}

/* --- the checks --- */

struct verifier {
	const struct plan *p;
	struct rb_ctx     *ctx;
	PGconn            *conn;
	json_t            *checks;   /* the result's array */
	size_t             kind_checks, kind_failed;
	bool               fatal;    /* cancelled or the connection was lost: stop */
	struct rb_error   *err;      /* set when fatal */
};

/* Appends a check; result is "pass", "fail", "note" or "not run". Returns it (borrowed). */
static json_t *
add_check(struct verifier *v, const char *kind, const char *name, const char *object, const char *result,
          const char *fmt, ...) RB_PRINTF(6, 7);

static json_t *
add_check(struct verifier *v, const char *kind, const char *name, const char *object, const char *result,
          const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *detail = xvasprintf(fmt, ap);
	va_end(ap);
	bool ok = strcmp(result, "fail") != 0;
	json_t *c = json_pack("{s:s, s:s?, s:s?, s:b, s:s, s:s}", "kind", kind, "name", name, "object", object,
	                      "ok", ok, "result", result, "detail", detail);
	free(detail);
	json_array_append_new(v->checks, c);
	v->kind_checks++;
	if (!ok)
		v->kind_failed++;
	return c;
}

/* A failed query: fatal when cancelled or disconnected, else a failed check of that kind. */
static void
query_failed(struct verifier *v, const char *kind, const char *what, const PGresult *res)
{
	struct rb_error e = {0};
	db_error_from_result(&e, res, RB_EXIT_STEP);
	if (cancelled(v->ctx, v->err) || PQstatus(v->conn) == CONNECTION_BAD) {
		if (!v->err->message) {
			rb_error_setc(v->err, RB_EXIT_STEP, "%s: %s", what, e.message ? e.message : "connection lost");
		}
		v->fatal = true;
	}
	add_check(v, kind, NULL, NULL, "fail", "%s: %s", what, e.message ? e.message : "unknown error");
	rb_error_clear(&e);
}

static void
step_done(struct verifier *v, const char *kind, const char *what)
{
	json_t *d = json_pack("{s:s, s:I, s:I, s:b}", "kind", kind, "checks", (json_int_t)v->kind_checks,
	                      "failed", (json_int_t)v->kind_failed, "ok", v->kind_failed == 0);
	if (v->kind_failed)
		events_emitf(v->ctx->bus, EV_STEP, STAGE, d, "%s: %zu of %zu failed", what, v->kind_failed, v->kind_checks);
	else
		events_emitf(v->ctx->bus, EV_STEP, STAGE, d, "%s: ok", what);
	json_decref(d);
	v->kind_checks = v->kind_failed = 0;
}

static void
format_pct(double pct, char *out, size_t len)
{
	snprintf(out, len, "%+.1f%%", pct);
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* One table's row count comparison. */
static void
compare_table(struct verifier *v, const char *table, const json_t *b, const json_t *a)
{
	const char *K = "row_counts";
	const struct plan_verify *pv = &v->p->verify;
	json_t *c;
	if (a == NULL) {
		c = add_check(v, K, table, table, "fail", "gone: %" JSON_INTEGER_FORMAT " rows in the baseline, the table no longer exists",
		              json_integer_value(b));
		json_object_set_new(c, "status", json_string("gone"));
	} else if (b == NULL) {
		c = add_check(v, K, table, table, "note", "new: not in the baseline, %" JSON_INTEGER_FORMAT " rows now",
		              json_integer_value(a));
		json_object_set_new(c, "status", json_string("new"));
	} else {
		json_int_t nb = json_integer_value(b), na = json_integer_value(a);
		bool has_pct = nb > 0;
		double pct = has_pct ? ((double)na - (double)nb) * 100.0 / (double)nb : 0;
		char ps[32] = "";
		if (has_pct)
			format_pct(pct, ps, sizeof ps);
		const char *status = na == nb ? "same" : na > nb ? "grew" : "shrank";
		const char *result = "pass";
		char *why = NULL;
		if (pv->row_counts == PLAN_ROWCOUNT_SHRINK_FORBIDDEN && na < nb) {
			result = "fail";
			why = xstrdup(", and shrink_forbidden allows no table to lose rows");
		} else if (pv->row_counts == PLAN_ROWCOUNT_TOLERANCE && na != nb &&
		           (!has_pct || (pct < 0 ? -pct : pct) > pv->tolerance_percent)) {
			result = "fail";
			why = xasprintf(has_pct ? ", beyond the %g%% tolerance" : ", beyond the %g%% tolerance (it was empty)",
			                pv->tolerance_percent);
		}
		if (na == nb)
			c = add_check(v, K, table, table, result, "%" JSON_INTEGER_FORMAT " rows, unchanged", na);
		else
			c = add_check(v, K, table, table, result, "%" JSON_INTEGER_FORMAT " -> %" JSON_INTEGER_FORMAT " rows%s%s%s%s",
			              nb, na, has_pct ? " (" : "", ps, has_pct ? ")" : "", why ? why : "");
		free(why);
		json_object_set_new(c, "status", json_string(status));
		json_object_set_new(c, "change_percent", has_pct ? json_real((double)(long long)(pct * 1000.0 + (pct < 0 ? -0.5 : 0.5)) / 1000.0) : json_null());
	}
	json_object_set_new(c, "table", json_string(table));
	json_object_set_new(c, "before", b ? json_integer(json_integer_value(b)) : json_null());
	json_object_set_new(c, "after", a ? json_integer(json_integer_value(a)) : json_null());
}

static void
check_row_counts(struct verifier *v, const json_t *baseline)
{
	const char *K = "row_counts";
	const struct plan_verify *pv = &v->p->verify;
	if (pv->row_counts == PLAN_ROWCOUNT_OFF) {
		add_check(v, K, NULL, NULL, "not run", "not run: row_counts is off in the plan");
		return;
	}
	if (baseline == NULL) {
		add_check(v, K, NULL, NULL, "not run",
		          "not run: no baseline (pass --baseline with a snapshot from \"pgrunbook verify snapshot\" "
		          "or a backup manifest)");
		return;
	}
	json_t *now;
	if (!verify_snapshot_take(v->conn, v->ctx, &now, v->err)) {
		if (cancelled(v->ctx, v->err) || PQstatus(v->conn) == CONNECTION_BAD) {
			v->fatal = true;
			return;
		}
		add_check(v, K, NULL, NULL, "fail", "%s", v->err->message);
		rb_error_clear(v->err);
		return;
	}
	const char *bdb = json_string_value(json_object_get(baseline, "database"));
	if (bdb && strcmp(bdb, PQdb(v->conn)) != 0)
		add_check(v, K, NULL, NULL, "note", "the baseline is of database %s, this is %s", bdb, PQdb(v->conn));
	json_t *before = json_object_get(baseline, "tables");
	size_t n = json_object_size(before) + json_object_size(now);
	const char **names = xcalloc(n + 1, sizeof *names);
	size_t k = 0;
	const char *key;
	json_t *val;
	json_object_foreach(before, key, val)
		names[k++] = key;
	json_object_foreach(now, key, val)
		if (json_object_get(before, key) == NULL)
			names[k++] = key;
	qsort(names, k, sizeof *names, cmp_str);
	/*
	 * A backup manifest also lists each partition (pgrunbook backup counts every table pg_dump
	 * holds data for); verify counts partitions through their parent only. A baseline table that
	 * is a partition now is not gone: its rows are in its parent's count.
	 */
	struct strlist parts = {0};
	PGresult *pr = db_exec(v->conn, "SELECT n.nspname OPERATOR(pg_catalog.||) '.' OPERATOR(pg_catalog.||) c.relname "
	                       "FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
	                       "WHERE c.relispartition", 0, NULL, v->ctx);
	if (PQresultStatus(pr) == PGRES_TUPLES_OK)
		for (int r = 0; r < PQntuples(pr); r++)
			strlist_push(&parts, PQgetvalue(pr, r, 0));
	PQclear(pr);
	for (size_t i = 0; i < k; i++) {
		const json_t *a = json_object_get(now, names[i]);
		if (a == NULL && strlist_contains(&parts, names[i]))
			continue;
		compare_table(v, names[i], json_object_get(before, names[i]), a);
	}
	strlist_free(&parts);
	free(names);
	json_decref(now);
}

/* One foreign key, as the catalog describes it. */
struct fk {
	char  *name;
	char  *child_schema, *child, *parent_schema, *parent;
	bool   child_partitioned, parent_partitioned;
	bool   validated, match_full;
	size_t ncols;
	struct strlist cols, pcols, opschema, opname;
};

static void
fk_free(struct fk *f)
{
	free(f->name);
	free(f->child_schema);
	free(f->child);
	free(f->parent_schema);
	free(f->parent);
	strlist_free(&f->cols);
	strlist_free(&f->pcols);
	strlist_free(&f->opschema);
	strlist_free(&f->opname);
}

/* "schema.table(a, b)" */
static char *
fk_side(const char *schema, const char *rel, const struct strlist *cols)
{
	struct strbuf sb = {0};
	strbuf_addf(&sb, "%s.%s(", schema, rel);
	for (size_t i = 0; i < cols->len; i++)
		strbuf_addf(&sb, "%s%s", i ? ", " : "", cols->items[i]);
	strbuf_addc(&sb, ')');
	return strbuf_detach(&sb);
}

/* The anti-join counting f's orphans, with up to MAX_SAMPLES keys (every name quoted). */
static char *
orphan_sql(PGconn *conn, const struct fk *f)
{
	char *cs = db_quote_ident(conn, f->child_schema), *cr = db_quote_ident(conn, f->child);
	char *ps = db_quote_ident(conn, f->parent_schema), *pr = db_quote_ident(conn, f->parent);
	struct strbuf sel = {0}, cond = {0}, join = {0}, ord = {0};
	for (size_t i = 0; i < f->ncols; i++) {
		char *c = db_quote_ident(conn, f->cols.items[i]), *pc = db_quote_ident(conn, f->pcols.items[i]);
		char *os = db_quote_ident(conn, f->opschema.items[i]);
		strbuf_addf(&sel, "%sc.%s AS k%zu", i ? ", " : "", c, i + 1);
		strbuf_addf(&cond, "%sc.%s IS NOT NULL", i ? (f->match_full ? " OR " : " AND ") : "", c);
		strbuf_addf(&join, "%sp.%s OPERATOR(%s.%s) c.%s", i ? " AND " : "", pc, os, f->opname.items[i], c);
		strbuf_addf(&ord, "%s%zu", i ? ", " : "", i + 1);
		free(c);
		free(pc);
		free(os);
	}
	char *sql = xasprintf(
		"WITH o AS MATERIALIZED (SELECT %s FROM %s%s.%s AS c WHERE (%s)"
		" AND NOT EXISTS (SELECT 1 FROM %s%s.%s AS p WHERE %s))"
		" SELECT n.n, s.* FROM (SELECT pg_catalog.count(*) AS n FROM o) AS n"
		" LEFT JOIN (SELECT * FROM o ORDER BY %s LIMIT %d) AS s ON true",
		sel.buf, f->child_partitioned ? "" : "ONLY ", cs, cr, cond.buf,
		f->parent_partitioned ? "" : "ONLY ", ps, pr, join.buf, ord.buf, MAX_SAMPLES);
	strbuf_release(&sel);
	strbuf_release(&cond);
	strbuf_release(&join);
	strbuf_release(&ord);
	free(cs);
	free(cr);
	free(ps);
	free(pr);
	return sql;
}

/* Runs one foreign key's anti-join inside a savepoint, so an error fails that key only. */
static void
check_one_fk(struct verifier *v, const struct fk *f)
{
	const char *K = "orphans";
	char *child = fk_side(f->child_schema, f->child, &f->cols);
	char *parent = fk_side(f->parent_schema, f->parent, &f->pcols);
	char *object = xasprintf("%s -> %s", child, parent);
	char *sql = orphan_sql(v->conn, f);
	struct rb_error e = {0};
	json_t *c = NULL;
	if (!db_run(v->conn, "SAVEPOINT verify_fk", 0, NULL, v->ctx, &e)) {
		c = add_check(v, K, f->name, object, "fail", "%s", e.message ? e.message : "could not set a savepoint");
		v->fatal = true;
		if (!v->err->message)
			rb_error_setc(v->err, RB_EXIT_STEP, "%s", e.message ? e.message : "could not set a savepoint");
		goto out;
	}
	PGresult *res = db_exec(v->conn, sql, 0, NULL, v->ctx);
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) < 1) {
		db_error_from_result(&e, res, RB_EXIT_STEP);
		PQclear(res);
		if (cancelled(v->ctx, v->err) || PQstatus(v->conn) == CONNECTION_BAD) {
			v->fatal = true;
			if (!v->err->message)
				rb_error_setc(v->err, RB_EXIT_STEP, "%s", e.message ? e.message : "connection lost");
		} else {
			db_run(v->conn, "ROLLBACK TO SAVEPOINT verify_fk", 0, NULL, v->ctx, NULL);
		}
		c = add_check(v, K, f->name, object, "fail", "could not check: %s", e.message ? e.message : "unknown error");
		json_object_set_new(c, "error", json_string(e.message ? e.message : "unknown error"));
		goto out;
	}
	long long n = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	json_t *samples = json_array();
	struct strbuf keys = {0};
	for (int r = 0; r < PQntuples(res) && n > 0; r++) {
		json_t *s = json_object();
		strbuf_addf(&keys, "%s(", r ? ", " : "");
		for (size_t i = 0; i < f->ncols; i++) {
			bool null = PQgetisnull(res, r, (int)i + 1);
			const char *val = PQgetvalue(res, r, (int)i + 1);
			json_object_set_new(s, f->cols.items[i], null ? json_null() : json_string(val));
			strbuf_addf(&keys, "%s%s", i ? ", " : "", null ? "NULL" : val);
		}
		strbuf_addc(&keys, ')');
		json_array_append_new(samples, s);
	}
	PQclear(res);
	db_run(v->conn, "RELEASE SAVEPOINT verify_fk", 0, NULL, v->ctx, NULL);
	const char *nv = f->validated ? "" : " (the constraint is NOT VALID)";
	if (n == 0)
		c = add_check(v, K, f->name, object, "pass", "no orphaned rows%s", nv);
	else
		c = add_check(v, K, f->name, object, "fail", "%lld orphaned row%s%s: key%s %s%s without a row in %s.%s",
		              n, n == 1 ? "" : "s", nv, n == 1 ? "" : "s such as", keys.buf,
		              n > MAX_SAMPLES ? ", ..." : "", f->parent_schema, f->parent);
	strbuf_release(&keys);
	json_object_set_new(c, "orphans", json_integer(n));
	json_object_set_new(c, "samples", samples);
out:
	if (c) {
		json_t *cols = json_array(), *pcols = json_array();
		for (size_t i = 0; i < f->ncols; i++) {
			json_array_append_new(cols, json_string(f->cols.items[i]));
			json_array_append_new(pcols, json_string(f->pcols.items[i]));
		}
		char *ct = xasprintf("%s.%s", f->child_schema, f->child), *pt = xasprintf("%s.%s", f->parent_schema, f->parent);
		json_object_set_new(c, "constraint", json_string(f->name));
		json_object_set_new(c, "child", json_string(ct));
		json_object_set_new(c, "parent", json_string(pt));
		json_object_set_new(c, "columns", cols);
		json_object_set_new(c, "parent_columns", pcols);
		json_object_set_new(c, "match", json_string(f->match_full ? "full" : "simple"));
		json_object_set_new(c, "validated", json_boolean(f->validated));
		free(ct);
		free(pt);
	}
	rb_error_clear(&e);
	free(sql);
	free(object);
	free(child);
	free(parent);
}

/* Every foreign key (top-level: a partitioned table's clones are covered by their parent's). */
static void
check_orphans(struct verifier *v)
{
	const char *K = "orphans";
	if (!v->p->verify.orphans) {
		add_check(v, K, NULL, NULL, "not run", "not run: orphans is off in the plan");
		return;
	}
	PGresult *res = db_exec(v->conn,
		"SELECT c.oid, c.conname, c.convalidated, c.confmatchtype,"
		" cn.nspname, cr.relname, cr.relkind, pn.nspname, pr.relname, pr.relkind,"
		" ca.attname, pa.attname, opn.nspname, op.oprname"
		" FROM pg_catalog.pg_constraint c"
		" JOIN pg_catalog.pg_class cr ON cr.oid = c.conrelid"
		" JOIN pg_catalog.pg_namespace cn ON cn.oid = cr.relnamespace"
		" JOIN pg_catalog.pg_class pr ON pr.oid = c.confrelid"
		" JOIN pg_catalog.pg_namespace pn ON pn.oid = pr.relnamespace"
		" CROSS JOIN LATERAL ROWS FROM (pg_catalog.unnest(c.conkey), pg_catalog.unnest(c.confkey),"
		"   pg_catalog.unnest(c.conpfeqop)) WITH ORDINALITY AS k(ck, pk, eqop, i)"
		" JOIN pg_catalog.pg_attribute ca ON ca.attrelid = c.conrelid AND ca.attnum = k.ck"
		" JOIN pg_catalog.pg_attribute pa ON pa.attrelid = c.confrelid AND pa.attnum = k.pk"
		" JOIN pg_catalog.pg_operator op ON op.oid = k.eqop"
		" JOIN pg_catalog.pg_namespace opn ON opn.oid = op.oprnamespace"
		" WHERE c.contype = 'f' AND c.conparentid = 0 AND " USER_SCHEMA("cn.nspname")
		" ORDER BY cn.nspname, cr.relname, c.conname, c.oid, k.i", 0, NULL, v->ctx);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		query_failed(v, K, "could not list the foreign keys", res);
		PQclear(res);
		return;
	}
	size_t nfk = 0, cap = 0;
	struct fk *fks = NULL;
	const char *last = NULL;
	for (int r = 0; r < PQntuples(res); r++) {
		if (last == NULL || strcmp(last, PQgetvalue(res, r, 0)) != 0) {
			if (nfk == cap) {
				cap = cap ? cap * 2 : 16;
				fks = xrealloc(fks, cap * sizeof *fks);
			}
			struct fk *f = &fks[nfk++];
			memset(f, 0, sizeof *f);
			f->name = xstrdup(PQgetvalue(res, r, 1));
			f->validated = PQgetvalue(res, r, 2)[0] == 't';
			f->match_full = PQgetvalue(res, r, 3)[0] == 'f';
			f->child_schema = xstrdup(PQgetvalue(res, r, 4));
			f->child = xstrdup(PQgetvalue(res, r, 5));
			f->child_partitioned = PQgetvalue(res, r, 6)[0] == 'p';
			f->parent_schema = xstrdup(PQgetvalue(res, r, 7));
			f->parent = xstrdup(PQgetvalue(res, r, 8));
			f->parent_partitioned = PQgetvalue(res, r, 9)[0] == 'p';
			last = PQgetvalue(res, r, 0);
		}
		struct fk *f = &fks[nfk - 1];
		strlist_push(&f->cols, PQgetvalue(res, r, 10));
		strlist_push(&f->pcols, PQgetvalue(res, r, 11));
		strlist_push(&f->opschema, PQgetvalue(res, r, 12));
		strlist_push(&f->opname, PQgetvalue(res, r, 13));
		f->ncols++;
	}
	for (size_t i = 0; i < nfk; i++) {
		if (!v->fatal)
			check_one_fk(v, &fks[i]);
		fk_free(&fks[i]);
	}
	free(fks);
	PQclear(res);
	if (nfk == 0 && !v->fatal)
		add_check(v, K, NULL, NULL, "pass", "no foreign keys to check");
}

static void
check_invalid_indexes(struct verifier *v)
{
	const char *K = "invalid_indexes";
	PGresult *res = db_exec(v->conn,
		"SELECT n.nspname, ic.relname, tn.nspname, tc.relname, pg_catalog.pg_get_indexdef(i.indexrelid)"
		" FROM pg_catalog.pg_index i"
		" JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid"
		" JOIN pg_catalog.pg_namespace n ON n.oid = ic.relnamespace"
		" JOIN pg_catalog.pg_class tc ON tc.oid = i.indrelid"
		" JOIN pg_catalog.pg_namespace tn ON tn.oid = tc.relnamespace"
		" WHERE NOT i.indisvalid AND n.nspname !~ '^pg_temp_'"
		" ORDER BY 1, 2", 0, NULL, v->ctx);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		query_failed(v, K, "could not list the indexes", res);
		PQclear(res);
		return;
	}
	for (int r = 0; r < PQntuples(res); r++) {
		char *idx = xasprintf("%s.%s", PQgetvalue(res, r, 0), PQgetvalue(res, r, 1));
		char *tab = xasprintf("%s.%s", PQgetvalue(res, r, 2), PQgetvalue(res, r, 3));
		json_t *c = add_check(v, K, idx, idx, "fail", "INVALID index on %s (a failed CREATE INDEX CONCURRENTLY or "
		                      "REINDEX leaves one): drop it or build it again", tab);
		json_object_set_new(c, "index", json_string(idx));
		json_object_set_new(c, "table", json_string(tab));
		json_object_set_new(c, "definition", json_string(PQgetvalue(res, r, 4)));
		free(idx);
		free(tab);
	}
	if (PQntuples(res) == 0)
		add_check(v, K, NULL, NULL, "pass", "no INVALID indexes");
	PQclear(res);
}

static void
check_not_valid(struct verifier *v)
{
	const char *K = "not_valid_constraints";
	PGresult *res = db_exec(v->conn,
		"SELECT c.conname, COALESCE(tn.nspname, yn.nspname), COALESCE(t.relname, y.typname),"
		" t.oid IS NULL, pg_catalog.pg_get_constraintdef(c.oid)"
		" FROM pg_catalog.pg_constraint c"
		" LEFT JOIN pg_catalog.pg_class t ON t.oid = c.conrelid"
		" LEFT JOIN pg_catalog.pg_namespace tn ON tn.oid = t.relnamespace"
		" LEFT JOIN pg_catalog.pg_type y ON y.oid = c.contypid"
		" LEFT JOIN pg_catalog.pg_namespace yn ON yn.oid = y.typnamespace"
		" WHERE NOT c.convalidated AND c.conparentid = 0 AND (c.conislocal OR c.contypid <> 0)"
		" AND " USER_SCHEMA("COALESCE(tn.nspname, yn.nspname)")
		" ORDER BY 2, 3, 1", 0, NULL, v->ctx);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		query_failed(v, K, "could not list the constraints", res);
		PQclear(res);
		return;
	}
	for (int r = 0; r < PQntuples(res); r++) {
		bool domain = PQgetvalue(res, r, 3)[0] == 't';
		char *tab = xasprintf("%s.%s", PQgetvalue(res, r, 1), PQgetvalue(res, r, 2));
		char *object = xasprintf("%s%s.%s", domain ? "domain " : "", tab, PQgetvalue(res, r, 0));
		json_t *c = add_check(v, K, PQgetvalue(res, r, 0), object, "fail",
		                      "NOT VALID: rows from before it was added were never checked: %s",
		                      PQgetvalue(res, r, 4));
		json_object_set_new(c, "constraint", json_string(PQgetvalue(res, r, 0)));
		json_object_set_new(c, domain ? "domain" : "table", json_string(tab));
		json_object_set_new(c, "definition", json_string(PQgetvalue(res, r, 4)));
		free(tab);
		free(object);
	}
	if (PQntuples(res) == 0)
		add_check(v, K, NULL, NULL, "pass", "no NOT VALID constraints");
	PQclear(res);
}

static void
check_prisma(struct verifier *v)
{
	const char *K = "prisma_migrations";
	const char *schema = v->p->migrations.schema ? v->p->migrations.schema : "public";
	const char *params[1] = { schema };
	PGresult *res = db_exec(v->conn,
		"SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n"
		" ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = '_prisma_migrations')",
		1, params, v->ctx);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		query_failed(v, K, "could not look for _prisma_migrations", res);
		PQclear(res);
		return;
	}
	bool exists = PQgetvalue(res, 0, 0)[0] == 't';
	PQclear(res);
	char *table = xasprintf("%s._prisma_migrations", schema);
	if (!exists) {
		add_check(v, K, NULL, table, "not run", "not run: there is no %s", table);
		free(table);
		return;
	}
	char *qs = db_quote_ident(v->conn, schema);
	char *sql = xasprintf("SELECT migration_name, pg_catalog.to_char(started_at AT TIME ZONE 'UTC',"
	                      " 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), logs,"
	                      " (SELECT pg_catalog.count(*) FROM %s._prisma_migrations)"
	                      " FROM %s._prisma_migrations WHERE finished_at IS NULL AND rolled_back_at IS NULL"
	                      " ORDER BY started_at, migration_name", qs, qs);
	free(qs);
	res = db_exec(v->conn, sql, 0, NULL, v->ctx);
	free(sql);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		query_failed(v, K, "could not read _prisma_migrations", res);
		PQclear(res);
		free(table);
		return;
	}
	for (int r = 0; r < PQntuples(res); r++) {
		const char *logs = PQgetisnull(res, r, 2) ? NULL : PQgetvalue(res, r, 2);
		char *first = logs ? xstrndup(logs, strcspn(logs, "\n")) : NULL;
		json_t *c = add_check(v, K, PQgetvalue(res, r, 0), table, "fail", "migration %s failed (started %s)%s%s",
		                      PQgetvalue(res, r, 0), PQgetvalue(res, r, 1), first ? ": " : "", first ? first : "");
		json_object_set_new(c, "migration", json_string(PQgetvalue(res, r, 0)));
		json_object_set_new(c, "started_at", json_string(PQgetvalue(res, r, 1)));
		json_object_set_new(c, "logs", logs ? json_string(logs) : json_null());
		free(first);
	}
	if (PQntuples(res) == 0)
		add_check(v, K, NULL, table, "pass", "no failed migrations");
	PQclear(res);
	free(table);
}

/* A custom check in its own READ ONLY transaction, search_path the migrations schema. */
static void
check_custom(struct verifier *v, const struct plan_check *pc)
{
	const char *K = "custom";
	const char *schema = v->p->migrations.schema ? v->p->migrations.schema : "public";
	char *sp = db_quote_ident(v->conn, schema);
	struct rb_error e = {0};
	json_t *c;
	json_t *got = json_null();
	char *error = NULL;
	if (!begin_ro(v->conn, false, sp, v->ctx, &e)) {
		error = xstrdup(e.message ? e.message : "unknown error");
		c = add_check(v, K, pc->name, pc->name, "fail", "could not start the transaction: %s", error);
		goto out;
	}
	/*
	 * Only a query can be a subquery: COPY, CHECKPOINT, COMMIT, PREPARE TRANSACTION, DML (with
	 * RETURNING or in a WITH) are refused by the parser. Functions with side effects
	 * (pg_terminate_backend, dblink, ...) are not: checks are trusted plan text, run them as a
	 * role that can only read.
	 */
	size_t len = strlen(pc->sql);
	while (len > 0 && (pc->sql[len - 1] == ';' || pc->sql[len - 1] == ' ' || pc->sql[len - 1] == '\t' ||
	                   pc->sql[len - 1] == '\n' || pc->sql[len - 1] == '\r'))
		len--;
	char *wrapped = xasprintf("SELECT * FROM (\n%.*s\n) AS pgrunbook_check", (int)len, pc->sql);
	PGresult *res = db_exec_one(v->conn, wrapped, v->ctx);
	free(wrapped);
	ExecStatusType st = PQresultStatus(res);
	if (st == PGRES_FATAL_ERROR || st == PGRES_BAD_RESPONSE || st == PGRES_NONFATAL_ERROR) {
		db_error_from_result(&e, res, RB_EXIT_STEP);
		error = xstrdup(e.message ? e.message : "unknown error");
		c = add_check(v, K, pc->name, pc->name, "fail", "error: %s", error);
	} else if (st != PGRES_TUPLES_OK) {
		c = add_check(v, K, pc->name, pc->name, "fail", "returned no rows (the SQL is not a query); expected %s",
		              pc->expect);
	} else if (PQntuples(res) != 1 || PQnfields(res) != 1) {
		c = add_check(v, K, pc->name, pc->name, "fail", "returned %d row%s of %d column%s; expected one value: %s",
		              PQntuples(res), PQntuples(res) == 1 ? "" : "s", PQnfields(res),
		              PQnfields(res) == 1 ? "" : "s", pc->expect);
	} else if (PQgetisnull(res, 0, 0)) {
		c = add_check(v, K, pc->name, pc->name, "fail", "got NULL, expected %s", pc->expect);
	} else {
		const char *val = PQgetvalue(res, 0, 0);
		got = json_string(val);
		bool same = strcmp(val, pc->expect) == 0;
		c = add_check(v, K, pc->name, pc->name, same ? "pass" : "fail", same ? "got %s" : "got %s, expected %s",
		              val, pc->expect);
	}
	PQclear(res);
	end_tx(v->conn);
	/* Session-level advisory locks a check took would outlive its rolled-back transaction. */
	PQclear(db_exec(v->conn, "SELECT pg_catalog.pg_advisory_unlock_all()", 0, NULL, NULL));
	if (cancelled(v->ctx, v->err) || PQstatus(v->conn) == CONNECTION_BAD) {
		v->fatal = true;
		if (!v->err->message)
			rb_error_setc(v->err, RB_EXIT_STEP, "%s", error ? error : "connection lost");
	}
out:
	json_object_set_new(c, "sql", json_string(pc->sql));
	json_object_set_new(c, "expect", json_string(pc->expect));
	json_object_set_new(c, "got", got);
	json_object_set_new(c, "error", error ? json_string(error) : json_null());
	free(error);
	free(sp);
	rb_error_clear(&e);
}

bool
verify_run(const struct plan *p, const char *env, const json_t *baseline, struct rb_ctx *ctx, json_t **result,
           struct rb_error *err)
{
	if (result)
		*result = NULL;
	if (env == NULL)
		env = p->target;
	struct verifier v = { .p = p, .ctx = ctx, .checks = json_array(), .err = err };
	json_t *sdata = json_pack("{s:s}", "environment", env);
	events_emitf(ctx->bus, EV_STAGE_STARTED, STAGE, sdata, "verifying %s", env);
	json_decref(sdata);
	v.conn = connect_env(p, env, ctx, err);
	if (v.conn != NULL) {
		check_row_counts(&v, baseline);
		step_done(&v, "row_counts", "row counts");
		/* The catalog checks and anti-joins see one snapshot of the database. */
		if (!v.fatal && begin_ro(v.conn, true, "", ctx, err)) {
			check_orphans(&v);
			if (!v.fatal)
				step_done(&v, "orphans", "orphans");
			if (!v.fatal)
				check_invalid_indexes(&v);
			if (!v.fatal)
				step_done(&v, "invalid_indexes", "INVALID indexes");
			if (!v.fatal)
				check_not_valid(&v);
			if (!v.fatal)
				step_done(&v, "not_valid_constraints", "NOT VALID constraints");
			if (!v.fatal)
				check_prisma(&v);
			if (!v.fatal)
				step_done(&v, "prisma_migrations", "_prisma_migrations");
			end_tx(v.conn);
		} else if (!v.fatal) {
			v.fatal = true;
		}
		for (size_t i = 0; i < p->verify.nchecks && !v.fatal; i++)
			check_custom(&v, &p->verify.checks[i]);
		if (!v.fatal && p->verify.nchecks > 0)
			step_done(&v, "custom", "custom checks");
	}
	size_t total = json_array_size(v.checks), failed = 0, not_run = 0, notes = 0;
	size_t i;
	json_t *c;
	json_array_foreach(v.checks, i, c) {
		const char *r = json_string_value(json_object_get(c, "result"));
		failed += strcmp(r, "fail") == 0;
		not_run += strcmp(r, "not run") == 0;
		notes += strcmp(r, "note") == 0;
	}
	bool ok = v.conn != NULL && !v.fatal && failed == 0;
	if (v.conn != NULL && !v.fatal && failed > 0) {
		rb_error_setc(err, RB_EXIT_STEP, "%zu of %zu checks failed", failed, total);
	} else if (!ok && err->message == NULL) {
		rb_error_setc(err, RB_EXIT_STEP, "verify did not finish");
	}
	if (!ok && err->code == 0)
		err->code = RB_EXIT_STEP;
	json_t *bl = json_null();
	if (baseline)
		bl = json_pack("{s:O?, s:O?, s:O?, s:O?, s:O?}", "source", json_object_get(baseline, "source"),
		               "path", json_object_get(baseline, "path"), "database", json_object_get(baseline, "database"),
		               "environment", json_object_get(baseline, "environment"),
		               "taken_at", json_object_get(baseline, "taken_at"));
	json_t *res = json_pack("{s:b, s:s, s:s?, s:s, s:o, s:o, s:{s:I, s:I, s:I, s:I, s:I}}",
	                        "ok", ok, "environment", env, "database", v.conn ? PQdb(v.conn) : NULL,
	                        "plan_hash", p->hash, "baseline", bl, "checks", v.checks,
	                        "summary", "checks", (json_int_t)total, "passed", (json_int_t)(total - failed - not_run - notes),
	                        "failed", (json_int_t)failed, "not_run", (json_int_t)not_run, "notes", (json_int_t)notes);
	json_object_set_new(res, "error", v.conn == NULL || v.fatal ? json_string(err->message) : json_null());
	if (!json_object_get(res, "database"))
		json_object_set_new(res, "database", json_null());
	events_emitf(ctx->bus, EV_STAGE_RESULT, STAGE, res, "verify result");
	if (ok)
		events_emitf(ctx->bus, EV_STAGE_DONE, STAGE, NULL, "%zu checks passed on %s", total - not_run - notes, env);
	else
		events_emitf(ctx->bus, EV_STAGE_FAILED, STAGE, NULL, "%s", err->message);
	if (result)
		*result = res;
	else
		json_decref(res);
	if (v.conn)
		PQfinish(v.conn);
	return ok;
}
