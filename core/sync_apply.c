/* sync_apply.c: applies a review to the target: checks first, then one transaction per table in FK order. */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backup.h"
#include "confirm.h"
#include "db.h"
#include "deploy.h"
#include "events.h"
#include "sync_apply.h"
#include "util.h"

#define STAGE      "sync"
#define TEMP_TABLE "pg_temp.pgrunbook_sync_rows"
#define KIND_COL   "pgrunbook_kind"

static const char *const state_names[] = { "pending", "running", "applied", "failed", "not reached" };

const char *
sync_table_state_name(enum sync_table_state s)
{
	return (unsigned)s < RB_ARRAY_LEN(state_names) ? state_names[s] : "?";
}

static int64_t
applied_deletes(const struct sync_review_table *t)
{
	return t->delete_rows ? t->counts.n[SYNC_DELETE] : 0;
}

void
sync_apply_needs_compute(const struct sync_review *rv, struct sync_apply_needs *out)
{
	memset(out, 0, sizeof *out);
	out->database = xstrdup(rv->target_db);
	out->phrase = confirm_phrase(SYNC_APPLY_VERB, rv->target_db);
	for (size_t i = 0; i < rv->ntables; i++) {
		const struct sync_review_table *t = &rv->tables[i];
		int64_t ins = t->counts.n[SYNC_INSERT], upd = t->counts.n[SYNC_UPDATE], del = applied_deletes(t);
		out->inserts += ins;
		out->updates += upd;
		out->deletes += del;
		if (t->counts.n[SYNC_CONFLICT] > 0)
			strlist_push_owned(&out->refusals, xasprintf(
				"%s: %" PRId64 " conflict%s (on_conflict: error_on_conflict): make the rows agree or change "
				"on_conflict, then diff again", t->display, t->counts.n[SYNC_CONFLICT],
				t->counts.n[SYNC_CONFLICT] == 1 ? "" : "s"));
		if (t->protected_ && (upd > 0 || del > 0))
			strlist_push(&out->overwrite_tables, t->display);
		if (t->protected_ && ins > 0 && !t->mode_explicit)
			strlist_push_owned(&out->refusals, xasprintf(
				"%s: protected, and its plan entry takes mode from sync.defaults: %" PRId64 " row%s would be "
				"appended; set mode on the table's own entry to allow it", t->display, ins, ins == 1 ? "" : "s"));
	}
	if (out->deletes > 0)
		out->delete_phrase = confirm_phrase(SYNC_DELETE_VERB, rv->target_db);
}

void
sync_apply_needs_free(struct sync_apply_needs *n)
{
	free(n->database);
	free(n->phrase);
	free(n->delete_phrase);
	strlist_free(&n->overwrite_tables);
	strlist_free(&n->refusals);
	memset(n, 0, sizeof *n);
}

void
sync_apply_result_free(struct sync_apply_result *r)
{
	if (r == NULL)
		return;
	for (size_t i = 0; i < r->ntables; i++) {
		free(r->tables[i].display);
		free(r->tables[i].error);
	}
	free(r->tables);
	free(r->database);
	memset(r, 0, sizeof *r);
}

json_t *
sync_apply_result_json(const struct sync_apply_result *r)
{
	json_t *tables = json_array();
	for (size_t i = 0; i < r->ntables; i++) {
		const struct sync_apply_table *t = &r->tables[i];
		json_array_append_new(tables, json_pack("{s:s, s:s, s:I, s:I, s:I, s:i, s:I, s:s?}", "table", t->display,
		                                        "state", sync_table_state_name(t->state),
		                                        "inserted", (json_int_t)t->inserted, "updated", (json_int_t)t->updated,
		                                        "deleted", (json_int_t)t->deleted, "sequences_moved", t->sequences_moved,
		                                        "ms", (json_int_t)t->ms, "error", t->error));
	}
	return json_pack("{s:s?, s:b, s:o}", "database", r->database, "refused", r->refused, "tables", tables);
}

struct applier {
	const struct plan          *plan;
	const struct sync_review   *rv;
	const struct sync_apply_opts *o;
	struct rb_ctx              *ctx;
	struct sync_apply_result   *res;
	struct rb_error            *err;
	PGconn                     *ctl;
	PGconn                     *work;
	size_t                     *order;   /* review table indexes in apply order */
};

/* Fills err from a result and clears it; returns false. */
static bool
sql_fail(struct applier *a, PGresult *res, const char *what)
{
	db_error_from_result(a->err, res, PQstatus(a->work) == CONNECTION_BAD ? RB_EXIT_CONNECT : RB_EXIT_STEP);
	rb_error_prefix(a->err, "%s", what);
	PQclear(res);
	return false;
}

static bool
exec_ok(struct applier *a, const char *sql, int nparams, const char *const *params, const char *what,
        PGresult **keep)
{
	PGresult *res = db_exec(a->work, sql, nparams, params, a->ctx);
	ExecStatusType st = PQresultStatus(res);
	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
		return sql_fail(a, res, what);
	if (keep)
		*keep = res;
	else
		PQclear(res);
	return true;
}

static char *
qualified(PGconn *conn, const struct sync_review_table *t)
{
	char *qs = db_quote_ident(conn, t->schema), *qt = db_quote_ident(conn, t->name);
	char *r = xasprintf("%s.%s", qs, qt);
	free(qs);
	free(qt);
	return r;
}

/* ---- checks before anything is written ---- */

/*
 * Every reviewed column still exists on the target with the reviewed type and is not generated,
 * and an update does not have to set a GENERATED ALWAYS identity column.
 */
static bool
columns_match(struct applier *a, const struct sync_review_table *t)
{
	static const char sql[] =
		"SELECT a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod), a.attgenerated <> '', "
		"a.attidentity = 'a' "
		"FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class c ON c.oid = a.attrelid "
		"JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
		"WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p') AND a.attnum > 0 "
		"AND NOT a.attisdropped";
	const char *params[2] = { t->schema, t->name };
	PGresult *res = NULL;
	if (!exec_ok(a, sql, 2, params, "could not read the target's columns", &res))
		return false;
	int n = PQntuples(res);
	bool ok = true;
	const char *hint = "The target's schema changed after the review: run pgrunbook sync diff --out again and "
	                   "review it.";
	if (n == 0)
		ok = rb_error_setc(a->err, RB_EXIT_STEP, "table %s no longer exists in the target", t->display);
	for (size_t i = 0; ok && i < t->ncols; i++) {
		int row = -1;
		for (int r = 0; r < n && row < 0; r++)
			if (strcmp(PQgetvalue(res, r, 0), t->cols[i].name) == 0)
				row = r;
		if (strcmp(t->cols[i].name, KIND_COL) == 0) {
			ok = rb_error_setc(a->err, RB_EXIT_STEP, "table %s has a column named \"%s\", which sync apply "
			                   "uses for itself", t->display, KIND_COL);
			hint = "Leave the column out of the table's columns in the plan (columns: [...]).";
		} else if (row < 0) {
			ok = rb_error_setc(a->err, RB_EXIT_STEP, "column \"%s\" of table %s is gone from the target since "
			                   "the review", t->cols[i].name, t->display);
		} else if (strcmp(PQgetvalue(res, row, 1), t->cols[i].type) != 0) {
			ok = rb_error_setc(a->err, RB_EXIT_STEP, "column \"%s\" of table %s is %s in the target, %s in the "
			                   "review", t->cols[i].name, t->display, PQgetvalue(res, row, 1), t->cols[i].type);
		} else if (strcmp(PQgetvalue(res, row, 2), "t") == 0) {
			ok = rb_error_setc(a->err, RB_EXIT_STEP, "column \"%s\" of table %s is generated in the target",
			                   t->cols[i].name, t->display);
		} else if (strcmp(PQgetvalue(res, row, 3), "t") == 0 && !t->cols[i].key && t->counts.n[SYNC_UPDATE] > 0) {
			ok = rb_error_setc(a->err, RB_EXIT_STEP, "column \"%s\" of table %s is GENERATED ALWAYS AS IDENTITY: "
			                   "the review's updates cannot set it", t->cols[i].name, t->display);
			hint = "Leave the column out of the table's columns in the plan (columns: [...]) and diff again, or "
			       "make it GENERATED BY DEFAULT.";
		}
	}
	PQclear(res);
	if (!ok)
		rb_error_hint(a->err, "%s", hint);
	return ok;
}

/*
 * A table whose rows the review deletes must not be referenced with ON DELETE CASCADE, SET NULL
 * or SET DEFAULT: those would change rows of other tables nobody reviewed.
 */
static bool
deletes_stay_put(struct applier *a, const struct sync_review_table *t)
{
	if (applied_deletes(t) == 0)
		return true;
	static const char sql[] =
		"SELECT cn.nspname || '.' || cc.relname, k.conname, "
		"CASE k.confdeltype WHEN 'c' THEN 'ON DELETE CASCADE' WHEN 'n' THEN 'ON DELETE SET NULL' "
		"ELSE 'ON DELETE SET DEFAULT' END "
		"FROM pg_catalog.pg_constraint k "
		"JOIN pg_catalog.pg_class pc ON pc.oid = k.confrelid "
		"JOIN pg_catalog.pg_namespace pn ON pn.oid = pc.relnamespace "
		"JOIN pg_catalog.pg_class cc ON cc.oid = k.conrelid "
		"JOIN pg_catalog.pg_namespace cn ON cn.oid = cc.relnamespace "
		"WHERE k.contype = 'f' AND k.confdeltype IN ('c', 'n', 'd') AND pn.nspname = $1 AND pc.relname = $2 "
		"ORDER BY 1, 2 LIMIT 1";
	const char *params[2] = { t->schema, t->name };
	PGresult *res = NULL;
	if (!exec_ok(a, sql, 2, params, "could not read the foreign keys referencing the table", &res))
		return false;
	bool ok = PQntuples(res) == 0;
	if (!ok) {
		rb_error_setc(a->err, RB_EXIT_STEP, "deleting rows of %s would change table %s through its foreign key "
		              "%s (%s); nothing was written", t->display, PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1),
		              PQgetvalue(res, 0, 2));
		rb_error_hint(a->err, "Sync never changes rows nobody reviewed: drop delete: true for %s, or delete the "
		              "referencing rows first in a reviewed step.", t->display);
	}
	PQclear(res);
	return ok;
}

/* Orders the tables parents first along the target's foreign keys; the review's order otherwise. */
static bool
fk_order(struct applier *a)
{
	static const char sql[] =
		"SELECT cn.nspname || '.' || cc.relname, pn.nspname || '.' || pc.relname "
		"FROM pg_catalog.pg_constraint k "
		"JOIN pg_catalog.pg_class cc ON cc.oid = k.conrelid "
		"JOIN pg_catalog.pg_namespace cn ON cn.oid = cc.relnamespace "
		"JOIN pg_catalog.pg_class pc ON pc.oid = k.confrelid "
		"JOIN pg_catalog.pg_namespace pn ON pn.oid = pc.relnamespace "
		"WHERE k.contype = 'f' AND k.conrelid <> k.confrelid AND k.conparentid = 0";
	PGresult *res = NULL;
	if (!exec_ok(a, sql, 0, NULL, "could not read the target's foreign keys", &res))
		return false;
	size_t n = a->rv->ntables;
	bool *parent = xcalloc(n * n + 1, sizeof *parent);   /* parent[c * n + p]: p must come before c */
	for (int r = 0; r < PQntuples(res); r++) {
		ssize_t c = -1, p = -1;
		for (size_t i = 0; i < n; i++) {
			if (strcmp(a->rv->tables[i].display, PQgetvalue(res, r, 0)) == 0)
				c = (ssize_t)i;
			if (strcmp(a->rv->tables[i].display, PQgetvalue(res, r, 1)) == 0)
				p = (ssize_t)i;
		}
		if (c >= 0 && p >= 0)
			parent[(size_t)c * n + (size_t)p] = true;
	}
	PQclear(res);
	bool *placed = xcalloc(n + 1, sizeof *placed);
	for (size_t k = 0; k < n; k++) {
		ssize_t pick = -1;
		for (size_t i = 0; i < n && pick < 0; i++) {
			if (placed[i])
				continue;
			bool ready = true;
			for (size_t p = 0; p < n && ready; p++)
				if (parent[i * n + p] && !placed[p])
					ready = false;
			if (ready)
				pick = (ssize_t)i;
		}
		if (pick < 0) {
			/* A cycle of foreign keys: the first table left, as the review has it. */
			for (size_t i = 0; i < n && pick < 0; i++)
				if (!placed[i])
					pick = (ssize_t)i;
			events_log(a->ctx->bus, LOG_LEVEL_WARN, STAGE, "foreign keys form a cycle through %s: applying it in "
			           "the review's order", a->rv->tables[pick].display);
		}
		placed[pick] = true;
		a->order[k] = (size_t)pick;
	}
	free(placed);
	free(parent);
	return true;
}

static bool
refuse(struct applier *a)
{
	a->res->refused = true;
	return false;
}

static bool
preconditions(struct applier *a)
{
	const struct sync_review *rv = a->rv;
	struct sync_apply_needs needs;
	sync_apply_needs_compute(rv, &needs);
	bool ok = false;
	if (needs.refusals.len > 0) {
		rb_error_setc(a->err, RB_EXIT_STEP, "the review cannot be applied: %s; nothing was written",
		              needs.refusals.items[0]);
		if (needs.refusals.len > 1) {
			struct strbuf sb = {0};
			strbuf_adds(&sb, "Also:");
			for (size_t i = 1; i < needs.refusals.len; i++)
				strbuf_addf(&sb, " %s.", needs.refusals.items[i]);
			rb_error_detail(a->err, "%s", sb.buf);
			strbuf_release(&sb);
		}
		goto out;
	}
	char *db = db_query_value(a->work, "SELECT pg_catalog.current_database()", a->err);
	if (db == NULL)
		goto out;
	if (strcmp(db, rv->target_db) != 0) {
		rb_error_setc(a->err, RB_EXIT_STEP, "the review was made against database %s, but the plan's target "
		              "%s is now database %s; nothing was written", rv->target_db, a->plan->target, db);
		rb_error_hint(a->err, "Run pgrunbook sync diff --out again against this target and review it.");
		free(db);
		goto out;
	}
	free(db);
	if (!confirm_check(a->ctx, STAGE, needs.phrase, a->o->confirm, a->err)) {
		rb_error_hint(a->err, "Check the review, then type exactly --confirm \"%s\".", needs.phrase);
		goto out;
	}
	if (needs.overwrite_tables.len > 0) {
		struct strbuf sb = {0};
		for (size_t i = 0; i < needs.overwrite_tables.len; i++)
			strbuf_addf(&sb, "%s%s", i ? ", " : "", needs.overwrite_tables.items[i]);
		if (!a->o->allow_protected_overwrite) {
			rb_error_setc(a->err, RB_EXIT_STEP, "the review changes existing rows of protected table%s %s; "
			              "nothing was written", needs.overwrite_tables.len == 1 ? "" : "s", sb.buf);
			rb_error_hint(a->err, "To overwrite them, add --allow-protected-overwrite --confirm-overwrite %s.",
			              CONFIRM_OVERWRITE_PHRASE);
			strbuf_release(&sb);
			goto out;
		}
		if (!confirm_check(a->ctx, STAGE, CONFIRM_OVERWRITE_PHRASE, a->o->confirm_overwrite, a->err)) {
			rb_error_detail(a->err, "Protected table%s %s would be overwritten.",
			                needs.overwrite_tables.len == 1 ? "" : "s", sb.buf);
			rb_error_hint(a->err, "Type exactly --confirm-overwrite %s.", CONFIRM_OVERWRITE_PHRASE);
			strbuf_release(&sb);
			goto out;
		}
		strbuf_release(&sb);
	}
	if (needs.delete_phrase &&
	    !confirm_check(a->ctx, STAGE, needs.delete_phrase, a->o->confirm_delete, a->err)) {
		rb_error_detail(a->err, "%" PRId64 " row%s only in the target would be deleted (delete: true).",
		                needs.deletes, needs.deletes == 1 ? "" : "s");
		rb_error_hint(a->err, "Type exactly --confirm-delete \"%s\".", needs.delete_phrase);
		goto out;
	}
	if (!backup_precondition(a->plan, a->plan->target, rv->target_db, STAGE, "apply", a->o->backup_ok,
	                         a->o->waive_backup, a->o->who, a->ctx, a->err))
		goto out;
	ok = true;
out:
	sync_apply_needs_free(&needs);
	return ok;
}

/* ---- one table ---- */

struct keycmp {
	const struct sync_review_table *t;
	struct strbuf a, b;
};

/* Decodes the first nkey fields of line into sb, each NUL-terminated; offsets/lengths in off/len. */
static void
split_key(const struct sync_review_table *t, const char *line, size_t len, struct strbuf *sb, size_t *off,
          size_t *flen)
{
	strbuf_reset(sb);
	size_t pos = 0;
	for (size_t i = 0; i < t->nkey; i++) {
		const char *tab = pos <= len ? memchr(line + pos, '\t', len - pos) : NULL;
		size_t end = tab ? (size_t)(tab - line) : len;
		size_t o = sb->len;
		strbuf_add(sb, line + pos, end - pos);
		bool is_null;
		size_t n = sync_copy_decode(sb->buf + o, end - pos, sb->buf + o, &is_null);
		sb->len = o + n;
		strbuf_addc(sb, '\0');
		off[i] = o;
		flen[i] = n;
		pos = end + 1;
	}
}

static int
key_cmp(struct keycmp *k, const char *a, size_t alen, const char *b, size_t blen)
{
	size_t n = k->t->nkey;
	size_t aoff[n + 1], alens[n + 1], boff[n + 1], blens[n + 1];
	split_key(k->t, a, alen, &k->a, aoff, alens);
	split_key(k->t, b, blen, &k->b, boff, blens);
	for (size_t i = 0; i < n; i++) {
		int c = sync_key_compare(k->t->cols[i].order, k->a.buf + aoff[i], alens[i], k->b.buf + boff[i], blens[i]);
		if (c)
			return c;
	}
	return 0;
}

/* The key of a COPY line for messages: "(a, b)", at most ~200 bytes. Caller frees. */
static char *
key_display(const struct sync_review_table *t, const char *line, size_t len)
{
	struct strbuf raw = {0}, sb = {0};
	size_t off[t->nkey + 1], flen[t->nkey + 1];
	split_key(t, line, len, &raw, off, flen);
	strbuf_addc(&sb, '(');
	for (size_t i = 0; i < t->nkey; i++) {
		strbuf_addf(&sb, "%s%s=", i ? ", " : "", t->cols[i].name);
		strbuf_add(&sb, raw.buf + off[i], flen[i] > 80 ? 80 : flen[i]);
		if (flen[i] > 80)
			strbuf_adds(&sb, "...");
	}
	strbuf_addc(&sb, ')');
	strbuf_release(&raw);
	return strbuf_detach(&sb);
}

static void
progress(struct applier *a, const struct sync_review_table *t, const char *phase, int64_t rows)
{
	json_t *data = json_pack("{s:s, s:s, s:s, s:I}", "kind", "sync_apply", "table", t->display, "phase", phase,
	                         "rows", (json_int_t)rows);
	events_emitf(a->ctx->bus, EV_PROGRESS, STAGE, data, NULL);
	json_decref(data);
}

/* COPYs the table's I, U and D records into the temporary table. */
static bool
load_rows(struct applier *a, const struct sync_review_table *t)
{
	/* db_exec() refuses COPY FROM STDIN; the copy's length is bounded by the review. */
	PGresult *res = PQexec(a->work, "COPY " TEMP_TABLE " FROM STDIN");
	if (PQresultStatus(res) != PGRES_COPY_IN)
		return sql_fail(a, res, "could not start copying the reviewed rows");
	PQclear(res);
	struct sync_review_cursor *c = sync_review_open(a->rv, t, a->err);
	bool ok = c != NULL;
	struct strbuf sb = {0};
	char kind;
	const char *line;
	size_t len;
	int64_t sent = 0;
	int r = 0;
	while (ok && (r = sync_review_next(c, &kind, &line, &len, a->err)) > 0) {
		if (kind != 'I' && kind != 'U' && (kind != 'D' || !t->delete_rows))
			continue;
		strbuf_reset(&sb);
		strbuf_addc(&sb, kind);
		strbuf_addc(&sb, '\t');
		strbuf_add(&sb, line, len);
		strbuf_addc(&sb, '\n');
		if (PQputCopyData(a->work, sb.buf, (int)sb.len) != 1) {
			ok = rb_error_setc(a->err, PQstatus(a->work) == CONNECTION_BAD ? RB_EXIT_CONNECT : RB_EXIT_STEP,
			                   "could not send the reviewed rows of %s: %s", t->display, PQerrorMessage(a->work));
			break;
		}
		if ((++sent % SYNC_PROGRESS_ROWS) == 0) {
			progress(a, t, "copy", sent);
			if (rb_ctx_cancelled(a->ctx))
				ok = rb_error_setc(a->err, RB_EXIT_STEP, "the apply of %s was cancelled", t->display);
		}
	}
	if (r < 0)
		ok = false;
	sync_review_close(c);
	strbuf_release(&sb);
	if (PQputCopyEnd(a->work, ok ? NULL : "pgrunbook: abandoned") != 1 && ok)
		ok = rb_error_setc(a->err, RB_EXIT_CONNECT, "could not finish copying the reviewed rows of %s: %s",
		                   t->display, PQerrorMessage(a->work));
	while ((res = PQgetResult(a->work)) != NULL) {
		if (PQresultStatus(res) != PGRES_COMMAND_OK && ok)
			ok = sql_fail(a, res, "could not copy the reviewed rows");
		else
			PQclear(res);
	}
	if (ok)
		progress(a, t, "copy", sent);
	return ok;
}

static int64_t
cmd_tuples(PGresult *res)
{
	const char *s = PQcmdTuples(res);
	return s && *s ? strtoll(s, NULL, 10) : -1;
}

/* A COPY TO STDOUT being read on the work connection. */
struct stream {
	struct applier *a;
	const struct sync_review_table *t;
	char   *row;      /* the current line without its newline, or NULL at the end */
	size_t  len;
	bool    done;
	int64_t read;
};

static bool
stream_next(struct stream *v)
{
	PQfreemem(v->row);
	v->row = NULL;
	v->len = 0;
	if (v->done)
		return true;
	char *buf = NULL;
	int n = PQgetCopyData(v->a->work, &buf, 0);
	if (n == -1) {
		v->done = true;
		return true;
	}
	if (n < 0)
		return rb_error_setc(v->a->err, RB_EXIT_CONNECT, "could not read the target rows of %s: %s",
		                     v->t->display, PQerrorMessage(v->a->work));
	v->row = buf;
	v->len = (size_t)n;
	if (v->len && buf[v->len - 1] == '\n')
		v->len--;
	if ((++v->read & 0xfff) == 0 && rb_ctx_cancelled(v->a->ctx)) {
		/* Cancel the statement; stream_end() drains what is left and the table rolls back. */
		PGcancel *pc = PQgetCancel(v->a->work);
		char ebuf[256];
		if (pc) {
			PQcancel(pc, ebuf, sizeof ebuf);
			PQfreeCancel(pc);
		}
		return rb_error_setc(v->a->err, RB_EXIT_STEP, "the apply of %s was cancelled", v->t->display);
	}
	return true;
}

/* Reads what is left of the COPY and its result; false with err set (unless already) on an error. */
static bool
stream_end(struct stream *v, bool ok, const char *what)
{
	if (!v->done) {
		char *buf;
		while (PQgetCopyData(v->a->work, &buf, 0) > 0)
			PQfreemem(buf);
	}
	PQfreemem(v->row);
	v->row = NULL;
	PGresult *res;
	while ((res = PQgetResult(v->a->work)) != NULL) {
		if (PQresultStatus(res) != PGRES_COMMAND_OK && ok)
			ok = sql_fail(v->a, res, what);
		else
			PQclear(res);
	}
	return ok;
}

static char *
key_join(PGconn *conn, const struct sync_review_table *t, const char *l, const char *r)
{
	struct strbuf sb = {0};
	for (size_t i = 0; i < t->nkey; i++) {
		char *q = db_quote_ident(conn, t->cols[i].name);
		strbuf_addf(&sb, "%s%s.%s = %s.%s", i ? " AND " : "", l, q, r, q);
		free(q);
	}
	return strbuf_detach(&sb);
}

/*
 * "COPY (WITH w AS (<dml> RETURNING <alias's columns as the diff reads them>) SELECT * FROM w
 * ORDER BY <the diff's key order>) TO STDOUT": the rows a statement changed, as they were, in
 * the review's order and text.
 */
static char *
returning_copy(PGconn *conn, const struct sync_review_table *t, const char *dml, const char *alias)
{
	struct strbuf sb = {0};
	strbuf_addf(&sb, "COPY (WITH w AS (%s RETURNING ", dml);
	for (size_t i = 0; i < t->ncols; i++) {
		char *q = db_quote_ident(conn, t->cols[i].name);
		if (t->cols[i].key && t->cols[i].order == SYNC_KEY_TEXT)
			strbuf_addf(&sb, "%s(%s.%s)::pg_catalog.text AS %s", i ? ", " : "", alias, q, q);
		else
			strbuf_addf(&sb, "%s%s.%s AS %s", i ? ", " : "", alias, q, q);
		free(q);
	}
	strbuf_adds(&sb, ") SELECT * FROM w ORDER BY ");
	for (size_t i = 0; i < t->nkey; i++) {
		const struct sync_review_column *c = &t->cols[i];
		char *q = db_quote_ident(conn, c->name);
		bool bytes = c->order == SYNC_KEY_TEXT || c->order == SYNC_KEY_BPCHAR ||
		             (c->order == SYNC_KEY_BYTES && strcmp(c->type, "uuid") != 0 && strcmp(c->type, "boolean") != 0);
		strbuf_addf(&sb, "%s%s%s", i ? ", " : "", q, bytes ? " COLLATE pg_catalog.\"C\"" : "");
		free(q);
	}
	strbuf_adds(&sb, ") TO STDOUT");
	return strbuf_detach(&sb);
}

/*
 * Runs an UPDATE (kind 'U') or DELETE (kind 'D') that returns the rows as they were before it,
 * and compares them byte for byte, in key order, with the target rows the review holds for that
 * kind: any row changed, gone or extra since the review fails the table (the caller rolls back).
 * Those rows are exactly what the review's digest covers, so this is the digest check row by row.
 */
static bool
write_checked(struct applier *a, const struct sync_review_table *t, char kind, const char *dml, const char *alias,
              int64_t want, int64_t *done)
{
	char *sql = returning_copy(a->work, t, dml, alias);
	PGresult *res = PQexec(a->work, sql);   /* db_exec() drains COPY TO STDOUT */
	free(sql);
	const char *verb = kind == 'U' ? "update" : "delete";
	if (PQresultStatus(res) != PGRES_COPY_OUT)
		return sql_fail(a, res, kind == 'U' ? "could not update the rows" : "could not delete the rows");
	PQclear(res);
	struct stream v = { .a = a, .t = t };
	struct keycmp k = { .t = t };
	struct sync_review_cursor *c = sync_review_open(a->rv, t, a->err);
	bool ok = c && stream_next(&v);
	int64_t got = 0, changed = 0;
	char *first = NULL;
	char rk;
	const char *line;
	size_t len;
	int r = 0;
	char old_tag = kind == 'U' ? 'u' : 'D';
	while (ok && (r = sync_review_next(c, &rk, &line, &len, a->err)) > 0) {
		if (rk != old_tag)
			continue;
		/* line: the target row as reviewed; v.row: as it was just before this statement. */
		while (ok && v.row && key_cmp(&k, v.row, v.len, line, len) < 0) {
			if (changed++ == 0)
				first = key_display(t, v.row, v.len);
			got++;
			ok = stream_next(&v);
		}
		if (!ok)
			break;
		if (v.row == NULL || key_cmp(&k, v.row, v.len, line, len) != 0) {
			if (changed++ == 0) {
				char *kd = key_display(t, line, len);
				first = xasprintf("%s is gone from the target", kd);
				free(kd);
			}
			continue;
		}
		if (v.len != len || memcmp(v.row, line, len) != 0) {
			if (changed++ == 0) {
				char *kd = key_display(t, line, len);
				first = xasprintf("%s was changed", kd);
				free(kd);
			}
		}
		got++;
		ok = stream_next(&v);
	}
	if (r < 0)
		ok = false;
	while (ok && v.row) {
		if (changed++ == 0)
			first = key_display(t, v.row, v.len);
		got++;
		ok = stream_next(&v);
	}
	ok = stream_end(&v, ok, kind == 'U' ? "could not update the rows" : "could not delete the rows");
	sync_review_close(c);
	strbuf_release(&k.a);
	strbuf_release(&k.b);
	*done = got;
	if (ok && (changed > 0 || got != want)) {
		ok = rb_error_setc(a->err, RB_EXIT_STEP, "%s changed since the review: the table was rolled back",
		                   t->display);
		rb_error_detail(a->err, "The %s found %" PRId64 " of the %" PRId64 " reviewed target rows as reviewed%s%s.",
		                verb, got - changed < 0 ? 0 : got - changed, want, first ? "; first: " : "",
		                first ? first : "");
		rb_error_hint(a->err, "Run pgrunbook sync diff --out again, review it, and apply the new review.");
	}
	free(first);
	if (ok)
		progress(a, t, verb, got);
	return ok;
}

/*
 * Whether the target has a valid, immediate, non-partial unique index on exactly the key columns;
 * *index receives its name (caller frees) or NULL.
 */
static bool
key_is_unique(struct applier *a, const struct sync_review_table *t, char **index)
{
	struct strbuf cols = {0};
	strbuf_addc(&cols, '{');
	for (size_t i = 0; i < t->nkey; i++) {
		strbuf_addf(&cols, "%s\"", i ? "," : "");
		for (const char *p = t->cols[i].name; *p; p++) {
			if (*p == '"' || *p == '\\')
				strbuf_addc(&cols, '\\');
			strbuf_addc(&cols, *p);
		}
		strbuf_addc(&cols, '"');
	}
	strbuf_addc(&cols, '}');
	static const char sql[] =
		"SELECT ic.relname FROM pg_catalog.pg_index i "
		"JOIN pg_catalog.pg_class c ON c.oid = i.indrelid "
		"JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid "
		"JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
		"WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind = 'r' AND i.indisunique AND i.indimmediate "
		"AND i.indisvalid "
		"AND i.indpred IS NULL AND i.indexprs IS NULL AND i.indnkeyatts = pg_catalog.cardinality($3::text[]) "
		"AND (SELECT pg_catalog.array_agg(a.attname::text COLLATE \"C\" ORDER BY a.attname::text COLLATE \"C\") "
		"     FROM pg_catalog.pg_attribute a "
		"     WHERE a.attrelid = c.oid AND a.attnum = ANY (i.indkey[0:i.indnkeyatts - 1])) "
		"  = (SELECT pg_catalog.array_agg(x COLLATE \"C\" ORDER BY x COLLATE \"C\") "
		"     FROM pg_catalog.unnest($3::text[]) x) "
		"ORDER BY i.indisprimary DESC LIMIT 1";
	const char *params[3] = { t->schema, t->name, cols.buf };
	PGresult *res = NULL;
	bool ok = exec_ok(a, sql, 3, params, "could not read the table's unique indexes", &res);
	if (ok) {
		*index = PQntuples(res) > 0 ? xstrdup(PQgetvalue(res, 0, 0)) : NULL;
		PQclear(res);
	}
	strbuf_release(&cols);
	return ok;
}

/*
 * The reviewed inserts' keys must still be absent from the target. With a unique index on the key
 * the INSERT itself proves it (a duplicate fails it); otherwise they are looked up first.
 */
static bool
inserts_absent(struct applier *a, const struct sync_review_table *t, const char *tq, const char *on, bool unique)
{
	if (unique)
		return true;
	char *sql = xasprintf("SELECT pg_catalog.count(*) FROM %s AS t JOIN " TEMP_TABLE " AS r ON %s WHERE r."
	                      KIND_COL " = 'I'", tq, on);
	PGresult *res = NULL;
	bool ok = exec_ok(a, sql, 0, NULL, "could not check the rows to insert", &res);
	free(sql);
	if (ok && strcmp(PQgetvalue(res, 0, 0), "0") != 0) {
		ok = rb_error_setc(a->err, RB_EXIT_STEP, "%s changed since the review: the table was rolled back",
		                   t->display);
		rb_error_detail(a->err, "%s row%s the review inserts now exist%s in the target.", PQgetvalue(res, 0, 0),
		                strcmp(PQgetvalue(res, 0, 0), "1") == 0 ? "" : "s",
		                strcmp(PQgetvalue(res, 0, 0), "1") == 0 ? "s" : "");
		rb_error_hint(a->err, "Run pgrunbook sync diff --out again, review it, and apply the new review.");
	}
	PQclear(res);
	return ok;
}

/* The writes of one table: INSERT, then UPDATE and DELETE checked row by row against the review. */
static bool
write_table(struct applier *a, const struct sync_review_table *t, struct sync_apply_table *out)
{
	char *tq = qualified(a->work, t);
	struct strbuf cols = {0}, rcols = {0}, set = {0};
	for (size_t i = 0; i < t->ncols; i++) {
		char *q = db_quote_ident(a->work, t->cols[i].name);
		strbuf_addf(&cols, "%s%s", i ? ", " : "", q);
		strbuf_addf(&rcols, "%sr.%s", i ? ", " : "", q);
		/* Key columns hold equal values; only numeric ones can differ in text (1.0, 1.00). */
		if (!t->cols[i].key || t->cols[i].order == SYNC_KEY_NUMERIC)
			strbuf_addf(&set, "%s%s = r.%s", set.len ? ", " : "", q, q);
		free(q);
	}
	char *on = key_join(a->work, t, "t", "r");
	int64_t n_upd = t->counts.n[SYNC_UPDATE], n_ins = t->counts.n[SYNC_INSERT], n_del = applied_deletes(t);
	char *unique = NULL;   /* the unique index on the key, if any */
	bool ok = (n_ins == 0 || key_is_unique(a, t, &unique)) &&
	          (n_ins == 0 || inserts_absent(a, t, tq, on, unique != NULL));
	/* Inserts first: an update may make a row refer to a new row of the same table. */
	if (ok && n_ins > 0) {
		char *sql = xasprintf("INSERT INTO %s AS t (%s) OVERRIDING SYSTEM VALUE SELECT %s FROM " TEMP_TABLE
		                      " AS r WHERE r." KIND_COL " = 'I'", tq, cols.buf, rcols.buf);
		PGresult *res = db_exec(a->work, sql, 0, NULL, a->ctx);
		free(sql);
		const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		if (PQresultStatus(res) == PGRES_COMMAND_OK) {
			out->inserted = cmd_tuples(res);
			PQclear(res);
			if (out->inserted != n_ins)
				ok = rb_error_setc(a->err, RB_EXIT_STEP, "the insert into %s added %" PRId64 " rows where the review "
				                   "has %" PRId64 "; the table was rolled back", t->display, out->inserted, n_ins);
			else
				progress(a, t, "insert", out->inserted);
		} else if (unique && state && strcmp(state, "23505") == 0 && PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME) &&
		           strcmp(PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME), unique) == 0) {
			ok = sql_fail(a, res, "a row the review inserts already exists in the target");
			rb_error_hint(a->err, "%s changed since the review: run pgrunbook sync diff --out again, review it, and "
			              "apply the new review. If the new diff shows the same insert, the key's type holds "
			              "values equal to each other that differ as text (citext, a case-insensitive collation, "
			              "float -0 and 0, interval): give the table another key in the plan.", t->display);
		} else {
			ok = sql_fail(a, res, "could not insert the rows");
		}
	}
	if (ok && n_upd > 0) {
		/* o: the row as it was (same snapshot), found again by its tuple id. */
		char *dml = xasprintf("UPDATE %s AS t SET %s FROM " TEMP_TABLE " AS r, %s AS o WHERE r." KIND_COL " = 'U' "
		                      "AND %s AND o.tableoid = t.tableoid AND o.ctid = t.ctid", tq,
		                      set.len ? set.buf : "", tq, on);
		if (set.len == 0)
			ok = rb_error_setc(a->err, RB_EXIT_STEP, "table %s has only key columns: nothing to update", t->display);
		else
			ok = write_checked(a, t, 'U', dml, "o", n_upd, &out->updated);
		free(dml);
	}
	if (ok && n_del > 0) {
		char *dml = xasprintf("DELETE FROM %s AS t USING " TEMP_TABLE " AS r WHERE r." KIND_COL " = 'D' AND %s",
		                      tq, on);
		ok = write_checked(a, t, 'D', dml, "t", n_del, &out->deleted);
		free(dml);
	}
	free(unique);
	free(on);
	free(tq);
	strbuf_release(&cols);
	strbuf_release(&rcols);
	strbuf_release(&set);
	return ok;
}

/*
 * Moves the sequences behind the table's serial and identity columns past their new maximum (the
 * minimum for a descending one), never back.
 */
static bool
move_sequences(struct applier *a, const struct sync_review_table *t, struct sync_apply_table *out)
{
	static const char sql[] =
		"SELECT a.attname, s.seq FROM pg_catalog.pg_attribute a "
		"JOIN pg_catalog.pg_class c ON c.oid = a.attrelid "
		"JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace, "
		"LATERAL (SELECT pg_catalog.pg_get_serial_sequence(pg_catalog.quote_ident(n.nspname) "
		"  OPERATOR(pg_catalog.||) '.' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(c.relname), a.attname) "
		"  AS seq) s "
		"WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped AND s.seq IS NOT NULL "
		"ORDER BY a.attnum";
	const char *params[2] = { t->schema, t->name };
	PGresult *res = NULL;
	if (!exec_ok(a, sql, 2, params, "could not find the table's sequences", &res))
		return false;
	char *tq = qualified(a->work, t);
	bool ok = true;
	for (int r = 0; ok && r < PQntuples(res); r++) {
		char *col = db_quote_ident(a->work, PQgetvalue(res, r, 0));
		const char *seq = PQgetvalue(res, r, 1);
		char *lit = PQescapeLiteral(a->work, seq, strlen(seq));
		/* seq comes from pg_get_serial_sequence, quoted as needed. */
		/*
		 * The next value the sequence would give must lie beyond every value in the column, in the
		 * sequence's direction; else it is set to the column's maximum (minimum when descending).
		 */
		char *q = xasprintf("SELECT pg_catalog.setval(%s::pg_catalog.regclass, "
		                    "CASE WHEN ps.seqincrement > 0 THEN x.hi ELSE x.lo END, true) "
		                    "FROM (SELECT pg_catalog.max(%s)::bigint AS hi, pg_catalog.min(%s)::bigint AS lo FROM %s) x, "
		                    "%s s, pg_catalog.pg_sequence ps "
		                    "WHERE ps.seqrelid = %s::pg_catalog.regclass AND x.hi IS NOT NULL AND CASE "
		                    "WHEN ps.seqincrement > 0 THEN x.hi >= CASE WHEN s.is_called THEN s.last_value + "
		                    "ps.seqincrement ELSE s.last_value END "
		                    "ELSE x.lo <= CASE WHEN s.is_called THEN s.last_value + ps.seqincrement ELSE "
		                    "s.last_value END END", lit ? lit : "''", col, col, tq, seq, lit ? lit : "''");
		PGresult *sr = NULL;
		ok = exec_ok(a, q, 0, NULL, "could not move a sequence", &sr);
		if (ok && PQntuples(sr) > 0) {
			out->sequences_moved++;
			json_t *data = json_pack("{s:s, s:s, s:s, s:s, s:s}", "kind", "sync_sequence", "table", t->display,
			                         "column", PQgetvalue(res, r, 0), "sequence", seq, "value", PQgetvalue(sr, 0, 0));
			events_emitf(a->ctx->bus, EV_STEP, STAGE, data, "%s: sequence %s moved to %s", t->display, seq,
			             PQgetvalue(sr, 0, 0));
			json_decref(data);
		}
		PQclear(sr);
		PQfreemem(lit);
		free(q);
		free(col);
	}
	free(tq);
	PQclear(res);
	return ok;
}

static void
table_step(struct applier *a, const struct sync_review_table *t, const struct sync_apply_table *out,
           const char *state)
{
	json_t *data = json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:s?}", "kind", "sync_table",
	                         "table", t->display, "state", state,
	                         "to_insert", (json_int_t)t->counts.n[SYNC_INSERT],
	                         "to_update", (json_int_t)t->counts.n[SYNC_UPDATE],
	                         "to_delete", (json_int_t)applied_deletes(t),
	                         "inserted", (json_int_t)out->inserted, "updated", (json_int_t)out->updated,
	                         "deleted", (json_int_t)out->deleted, "error", out->error);
	if (strcmp(state, "started") == 0)
		events_emitf(a->ctx->bus, EV_STEP, STAGE, data, "%s: applying (%" PRId64 " to insert, %" PRId64
		             " to update, %" PRId64 " to delete)", t->display, t->counts.n[SYNC_INSERT],
		             t->counts.n[SYNC_UPDATE], applied_deletes(t));
	else if (strcmp(state, "applied") == 0)
		events_emitf(a->ctx->bus, EV_STEP, STAGE, data, "%s: applied (%" PRId64 " inserted, %" PRId64
		             " updated, %" PRId64 " deleted)", t->display, out->inserted, out->updated, out->deleted);
	else if (strcmp(state, "unknown") == 0)
		events_emitf(a->ctx->bus, EV_STEP, STAGE, data, "%s: the connection was lost during COMMIT, whether it "
		             "was written is unknown: %s", t->display, out->error ? out->error : "?");
	else
		events_emitf(a->ctx->bus, EV_STEP, STAGE, data, "%s: failed and rolled back: %s", t->display,
		             out->error ? out->error : "?");
	json_decref(data);
}

static bool
apply_table(struct applier *a, const struct sync_review_table *t, struct sync_apply_table *out)
{
	long long start = time_monotonic_ms();
	out->state = SYNC_TABLE_RUNNING;
	table_step(a, t, out, "started");
	char *tq = qualified(a->work, t);
	struct strbuf create = {0};
	strbuf_adds(&create, "CREATE TEMPORARY TABLE pgrunbook_sync_rows (" KIND_COL " pg_catalog.text");
	for (size_t i = 0; i < t->ncols; i++) {
		char *q = db_quote_ident(a->work, t->cols[i].name);
		strbuf_addf(&create, ", %s %s", q, t->cols[i].type);
		free(q);
	}
	strbuf_adds(&create, ") ON COMMIT DROP");
	char *lock = xasprintf("LOCK TABLE %s IN SHARE ROW EXCLUSIVE MODE", tq);
	char *timeouts = xasprintf("SELECT pg_catalog.set_config('lock_timeout', '%lldms', true), "
	                           "pg_catalog.set_config('statement_timeout', '%lldms', true)",
	                           (long long)a->plan->migrations.lock_timeout_ms,
	                           (long long)a->plan->migrations.statement_timeout_ms);
	bool ok = exec_ok(a, "BEGIN", 0, NULL, "could not begin the table's transaction", NULL) &&
	          exec_ok(a, timeouts, 0, NULL, "could not set the timeouts", NULL) &&
	          exec_ok(a, lock, 0, NULL, "could not lock the table against writes", NULL) &&
	          columns_match(a, t) && deletes_stay_put(a, t) &&
	          exec_ok(a, create.buf, 0, NULL, "could not create the temporary table", NULL) &&
	          load_rows(a, t) &&
	          write_table(a, t, out) &&
	          (t->counts.n[SYNC_INSERT] + t->counts.n[SYNC_UPDATE] == 0 || move_sequences(a, t, out));
	if (ok && rb_ctx_cancelled(a->ctx))
		ok = rb_error_setc(a->err, RB_EXIT_STEP, "the apply of %s was cancelled before its commit", t->display);
	bool lost = false;   /* the connection dropped during COMMIT: whether it was written is unknown */
	if (ok) {
		PGresult *res = db_exec(a->work, "COMMIT", 0, NULL, NULL);
		if (PQresultStatus(res) != PGRES_COMMAND_OK) {
			lost = PQstatus(a->work) == CONNECTION_BAD;
			ok = sql_fail(a, res, "could not commit");
			if (lost)
				rb_error_detail(a->err, "The connection was lost during COMMIT: whether %s was written is "
				                "unknown. Run pgrunbook sync diff to see the target as it is.", t->display);
		} else {
			PQclear(res);
		}
	} else if (PQstatus(a->work) == CONNECTION_OK && PQtransactionStatus(a->work) != PQTRANS_IDLE) {
		PQclear(db_exec(a->work, "ROLLBACK", 0, NULL, NULL));
	}
	out->ms = time_monotonic_ms() - start;
	if (ok) {
		out->state = SYNC_TABLE_APPLIED;
		table_step(a, t, out, "applied");
	} else {
		out->state = SYNC_TABLE_FAILED;
		out->inserted = out->updated = out->deleted = 0;
		out->sequences_moved = 0;
		out->error = xstrdup(a->err->message ? a->err->message : "failed");
		table_step(a, t, out, lost ? "unknown" : "failed");
	}
	free(lock);
	free(timeouts);
	free(tq);
	strbuf_release(&create);
	return ok;
}

bool
sync_apply(const struct plan *plan, const struct sync_review *rv, const struct sync_apply_opts *o,
           struct rb_ctx *ctx, struct sync_apply_result *res, struct rb_error *err)
{
	memset(res, 0, sizeof *res);
	res->database = xstrdup(rv->target_db);
	res->ntables = rv->ntables;
	res->tables = xcalloc(rv->ntables + 1, sizeof *res->tables);
	struct applier a = { .plan = plan, .rv = rv, .o = o, .ctx = ctx, .res = res, .err = err };
	a.order = xcalloc(rv->ntables + 1, sizeof *a.order);
	for (size_t i = 0; i < rv->ntables; i++) {
		a.order[i] = i;
		res->tables[i].display = xstrdup(rv->tables[i].display);
	}
	json_t *skipped = json_array();
	for (size_t i = 0; i < rv->skipped.len; i++)
		json_array_append_new(skipped, json_string(rv->skipped.items[i]));
	json_t *sdata = json_pack("{s:s?, s:s, s:s, s:s?, s:o}", "environment", plan->target, "database", rv->target_db,
	                          "review", rv->path, "who", o->who, "skipped", skipped);
	events_emitf(ctx->bus, EV_STAGE_STARTED, STAGE, sdata, "applying the review %s to %s", rv->path, rv->target_db);
	json_decref(sdata);

	bool ok = false;
	a.work = db_connect_ctx(plan, plan->target, ctx, err);
	if (a.work == NULL)
		goto out;
	if (!preconditions(&a)) {
		refuse(&a);
		goto out;
	}
	a.ctl = db_connect_ctx(plan, plan->target, ctx, err);
	if (a.ctl == NULL) {
		refuse(&a);
		goto out;
	}
	PQclear(db_exec(a.ctl, "SET application_name = 'pgrunbook sync (lock)'", 0, NULL, NULL));
	PQclear(db_exec(a.work, "SET application_name = 'pgrunbook sync'", 0, NULL, NULL));
	if (!deploy_lock_take(a.ctl, o->lock_wait_ms, ctx, err)) {
		rb_error_prefix(err, "sync apply");
		refuse(&a);
		goto out;
	}
	for (size_t i = 0; i < rv->ntables; i++)
		if (!columns_match(&a, &rv->tables[i]) || !deletes_stay_put(&a, &rv->tables[i])) {
			refuse(&a);
			goto out;
		}
	if (!fk_order(&a)) {
		refuse(&a);
		goto out;
	}
	/* Report the tables in the order they are applied. */
	for (size_t k = 0; k < rv->ntables; k++) {
		free(res->tables[k].display);
		res->tables[k].display = xstrdup(rv->tables[a.order[k]].display);
	}
	ok = true;
	for (size_t k = 0; k < rv->ntables; k++) {
		struct sync_apply_table *out = &res->tables[k];
		if (!ok) {
			out->state = SYNC_TABLE_NOT_REACHED;
			continue;
		}
		if (rb_ctx_cancelled(ctx)) {
			ok = rb_error_setc(err, RB_EXIT_STEP, "sync apply was cancelled before %s", out->display);
			out->state = SYNC_TABLE_NOT_REACHED;
			continue;
		}
		ok = apply_table(&a, &rv->tables[a.order[k]], out);
	}
	deploy_lock_release(a.ctl);
out:
	if (!ok && err->code == 0)
		err->code = RB_EXIT_STEP;
	if (res->refused)
		for (size_t i = 0; i < res->ntables; i++)
			res->tables[i].state = SYNC_TABLE_PENDING;
	json_t *result = sync_apply_result_json(res);
	events_emitf(ctx->bus, EV_STAGE_RESULT, STAGE, result, "sync result");
	json_decref(result);
	if (ok) {
		int64_t ins = 0, upd = 0, del = 0;
		for (size_t i = 0; i < res->ntables; i++) {
			ins += res->tables[i].inserted;
			upd += res->tables[i].updated;
			del += res->tables[i].deleted;
		}
		events_emitf(ctx->bus, EV_STAGE_DONE, STAGE, NULL, "%zu table%s synced to %s: %" PRId64 " inserted, %"
		             PRId64 " updated, %" PRId64 " deleted", res->ntables, res->ntables == 1 ? "" : "s",
		             rv->target_db, ins, upd, del);
	} else {
		events_emitf(ctx->bus, EV_STAGE_FAILED, STAGE, NULL, "%s", err->message ? err->message : "sync apply failed");
	}
	if (a.ctl)
		PQfinish(a.ctl);
	if (a.work)
		PQfinish(a.work);
	free(a.order);
	return ok;
}
