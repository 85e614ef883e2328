/* sync_apply.c: applies a review to the target: checks first, then one transaction per table in FK order. */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

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

/* The review's table as a spec, for sync_copy_join_sql(); borrows the review's strings. */
static void
spec_from(const struct sync_review_table *t, struct sync_spec *spec)
{
	memset(spec, 0, sizeof *spec);
	spec->plan_name = t->plan_name;
	spec->schema = t->schema;
	spec->table = t->name;
	spec->display = t->display;
	spec->mode = t->mode;
	spec->on_conflict = t->on_conflict;
	spec->delete_rows = t->delete_rows;
	spec->protected_ = t->protected_;
	spec->key_from_plan = t->key_from_plan;
	spec->ncols = t->ncols;
	spec->nkey = t->nkey;
	spec->cols = xcalloc(t->ncols, sizeof *spec->cols);
	for (size_t i = 0; i < t->ncols; i++) {
		spec->cols[i].name = t->cols[i].name;
		spec->cols[i].type = t->cols[i].type;
		spec->cols[i].key = t->cols[i].key;
		spec->cols[i].order = t->cols[i].order;
	}
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

/* Every reviewed column still exists on the target with the reviewed type and is not generated. */
static bool
columns_match(struct applier *a, const struct sync_review_table *t)
{
	static const char sql[] =
		"SELECT a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod), a.attgenerated <> '' "
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
	if (n == 0) {
		ok = rb_error_setc(a->err, RB_EXIT_STEP, "table %s no longer exists in the target", t->display);
	}
	for (size_t i = 0; ok && i < t->ncols; i++) {
		int row = -1;
		for (int r = 0; r < n && row < 0; r++)
			if (strcmp(PQgetvalue(res, r, 0), t->cols[i].name) == 0)
				row = r;
		if (row < 0)
			ok = rb_error_setc(a->err, RB_EXIT_STEP, "column \"%s\" of table %s is gone from the target since "
			                   "the review", t->cols[i].name, t->display);
		else if (strcmp(PQgetvalue(res, row, 1), t->cols[i].type) != 0)
			ok = rb_error_setc(a->err, RB_EXIT_STEP, "column \"%s\" of table %s is %s in the target, %s in the "
			                   "review", t->cols[i].name, t->display, PQgetvalue(res, row, 1), t->cols[i].type);
		else if (strcmp(PQgetvalue(res, row, 2), "t") == 0)
			ok = rb_error_setc(a->err, RB_EXIT_STEP, "column \"%s\" of table %s is generated in the target",
			                   t->cols[i].name, t->display);
		if (strcmp(t->cols[i].name, KIND_COL) == 0)
			ok = rb_error_setc(a->err, RB_EXIT_STEP, "table %s has a column named \"%s\", which sync apply "
			                   "uses for itself", t->display, KIND_COL);
	}
	PQclear(res);
	if (!ok)
		rb_error_hint(a->err, "The target's schema changed after the review: run pgrunbook sync diff --out "
		              "again and review it.");
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
	if (!confirm_backup_precondition(a->ctx, STAGE, "apply", rv->target_db, a->o->backup_ok, a->o->waive_backup,
	                                 a->o->who, a->err))
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
md_add(EVP_MD_CTX *md, char tag, const char *data, size_t len)
{
	EVP_DigestUpdate(md, &tag, 1);
	EVP_DigestUpdate(md, data, len);
	EVP_DigestUpdate(md, "\n", 1);
}

static size_t
key_len(const struct sync_review_table *t, const char *line, size_t len)
{
	size_t pos = 0;
	for (size_t i = 0; i < t->nkey; i++) {
		const char *tab = memchr(line + pos, '\t', len - pos);
		size_t end = tab ? (size_t)(tab - line) : len;
		if (i + 1 == t->nkey || tab == NULL)
			return end;
		pos = end + 1;
	}
	return len;
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
		if (kind != 'I' && kind != 'U' && kind != 'D')
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

struct verify {
	struct applier *a;
	const struct sync_review_table *t;
	PGconn *conn;
	char   *row;      /* the current target line, or NULL at the end */
	size_t  len;
	bool    done;
	int64_t mismatches;
	char   *first;    /* what the first mismatch was */
};

static bool
verify_next(struct verify *v)
{
	PQfreemem(v->row);
	v->row = NULL;
	v->len = 0;
	if (v->done)
		return true;
	char *buf = NULL;
	int n = PQgetCopyData(v->conn, &buf, 0);
	if (n == -1) {
		v->done = true;
		return true;
	}
	if (n < 0)
		return rb_error_setc(v->a->err, RB_EXIT_CONNECT, "could not read the target rows of %s: %s",
		                     v->t->display, PQerrorMessage(v->conn));
	v->row = buf;
	v->len = (size_t)n;
	if (v->len && buf[v->len - 1] == '\n')
		v->len--;
	return true;
}

static void
mismatch(struct verify *v, const char *line, size_t len, const char *what)
{
	if (v->mismatches++ == 0) {
		char *k = key_display(v->t, line, len);
		v->first = xasprintf("%s %s", k, what);
		free(k);
	}
}

/*
 * Re-reads, inside the table's transaction and under its lock, the target rows of every reviewed
 * key and checks them against the review: each line as reviewed, and the digest recomputed.
 */
static bool
verify_rows(struct applier *a, const struct sync_review_table *t)
{
	struct sync_spec spec;
	spec_from(t, &spec);
	char *sql = sync_copy_join_sql(a->work, &spec, TEMP_TABLE);
	free(spec.cols);
	PGresult *res = PQexec(a->work, sql);   /* db_exec() drains COPY TO STDOUT */
	free(sql);
	if (PQresultStatus(res) != PGRES_COPY_OUT)
		return sql_fail(a, res, "could not re-read the target rows");
	PQclear(res);
	struct verify v = { .a = a, .t = t, .conn = a->work };
	struct keycmp k = { .t = t };
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	struct sync_review_cursor *c = sync_review_open(a->rv, t, a->err);
	bool ok = md && c && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1 && verify_next(&v);
	char kind;
	const char *line;
	size_t len;
	int r = 0;
	struct strbuf cur = {0};
	while (ok && (r = sync_review_next(c, &kind, &line, &len, a->err)) > 0) {
		if (kind == 'u' || kind == 'c')
			continue;   /* read with their U or C */
		strbuf_reset(&cur);
		strbuf_add(&cur, line, len);
		while (ok && v.row && key_cmp(&k, v.row, v.len, cur.buf, cur.len) < 0) {
			mismatch(&v, v.row, v.len, "is in the target but not in the review");
			ok = verify_next(&v);
		}
		if (!ok)
			break;
		bool present = v.row && key_cmp(&k, v.row, v.len, cur.buf, cur.len) == 0;
		if (kind == 'I') {
			if (present) {
				mismatch(&v, cur.buf, cur.len, "was added to the target after the review");
				md_add(md, 'X', v.row, v.len);
			} else {
				md_add(md, 'I', cur.buf, key_len(t, cur.buf, cur.len));
			}
		} else {
			char want = kind;
			const char *old = cur.buf;
			size_t oldlen = cur.len;
			if (kind == 'U' || kind == 'C') {
				char k2;
				if ((r = sync_review_next(c, &k2, &line, &len, a->err)) <= 0 || k2 != kind + ('a' - 'A')) {
					if (r >= 0)
						rb_error_setc(a->err, RB_EXIT_STEP, "the review file %s is damaged", a->rv->path);
					ok = false;
					break;
				}
				old = line;
				oldlen = len;
			}
			if (!present) {
				mismatch(&v, cur.buf, cur.len, "was deleted from the target after the review");
				md_add(md, 'X', cur.buf, cur.len);
			} else {
				if (v.len != oldlen || memcmp(v.row, old, oldlen) != 0)
					mismatch(&v, cur.buf, cur.len, "was changed in the target after the review");
				md_add(md, want, v.row, v.len);
			}
		}
		if (present)
			ok = verify_next(&v);
	}
	if (r < 0)
		ok = false;
	while (ok && v.row) {
		mismatch(&v, v.row, v.len, "is in the target but not in the review");
		ok = verify_next(&v);
	}
	/* Drain the COPY and its result whatever happened. */
	if (!v.done) {
		char *buf;
		while (PQgetCopyData(a->work, &buf, 0) > 0)
			PQfreemem(buf);
	}
	PQfreemem(v.row);
	while ((res = PQgetResult(a->work)) != NULL) {
		if (PQresultStatus(res) != PGRES_COMMAND_OK && ok)
			ok = sql_fail(a, res, "could not re-read the target rows");
		else
			PQclear(res);
	}
	char got[65] = "";
	unsigned char buf[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	if (ok && (EVP_DigestFinal_ex(md, buf, &n) != 1 || n != 32))
		ok = rb_error_setc(a->err, RB_EXIT_STEP, "SHA-256 failed in libcrypto");
	else if (ok)
		hex_encode(buf, 32, got);
	if (ok && (v.mismatches > 0 || strcmp(got, t->digest) != 0)) {
		ok = rb_error_setc(a->err, RB_EXIT_STEP, "%" PRId64 " row%s of %s changed since the review: the table was "
		                   "rolled back", v.mismatches ? v.mismatches : 1, v.mismatches > 1 ? "s" : "", t->display);
		rb_error_detail(a->err, "%s%s%sThe digest of the target rows the changes depend on is %.12s..., the "
		                "review's %.12s....", v.first ? "First: " : "", v.first ? v.first : "",
		                v.first ? ". " : "", got, t->digest);
		rb_error_hint(a->err, "Run pgrunbook sync diff --out again, review it, and apply the new review.");
	}
	free(v.first);
	strbuf_release(&cur);
	strbuf_release(&k.a);
	strbuf_release(&k.b);
	sync_review_close(c);
	EVP_MD_CTX_free(md);
	if (ok)
		progress(a, t, "verify", t->records);
	return ok;
}

static int64_t
cmd_tuples(PGresult *res)
{
	const char *s = PQcmdTuples(res);
	return s && *s ? strtoll(s, NULL, 10) : -1;
}

/* Runs one set-based statement that must touch exactly want rows. */
static bool
write_rows(struct applier *a, const struct sync_review_table *t, const char *sql, const char *verb, int64_t want,
           int64_t *done)
{
	PGresult *res = NULL;
	if (!exec_ok(a, sql, 0, NULL, verb, &res))
		return false;
	int64_t got = cmd_tuples(res);
	PQclear(res);
	*done = got;
	if (got != want)
		return rb_error_setc(a->err, RB_EXIT_STEP, "%s %s %" PRId64 " rows of %s where the review has %" PRId64
		                     "; the table was rolled back", verb, got < want ? "touched only" : "touched",
		                     got, t->display, want);
	progress(a, t, verb, got);
	return true;
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

/* The UPDATE, INSERT and DELETE of one table. */
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
	bool ok = true;
	int64_t n_upd = t->counts.n[SYNC_UPDATE], n_ins = t->counts.n[SYNC_INSERT], n_del = applied_deletes(t);
	if (ok && n_upd > 0 && set.len > 0) {
		char *sql = xasprintf("UPDATE %s AS t SET %s FROM " TEMP_TABLE " AS r WHERE r." KIND_COL " = 'U' AND %s",
		                      tq, set.buf, on);
		ok = write_rows(a, t, sql, "update", n_upd, &out->updated);
		free(sql);
	}
	if (ok && n_ins > 0) {
		char *sql = xasprintf("INSERT INTO %s AS t (%s) OVERRIDING SYSTEM VALUE SELECT %s FROM " TEMP_TABLE
		                      " AS r WHERE r." KIND_COL " = 'I'", tq, cols.buf, rcols.buf);
		ok = write_rows(a, t, sql, "insert", n_ins, &out->inserted);
		free(sql);
	}
	if (ok && n_del > 0) {
		char *sql = xasprintf("DELETE FROM %s AS t USING " TEMP_TABLE " AS r WHERE r." KIND_COL " = 'D' AND %s",
		                      tq, on);
		ok = write_rows(a, t, sql, "delete", n_del, &out->deleted);
		free(sql);
	}
	free(on);
	free(tq);
	strbuf_release(&cols);
	strbuf_release(&rcols);
	strbuf_release(&set);
	return ok;
}

/* Moves the sequences behind the table's serial and identity columns past their new maximum. */
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
		char *q = xasprintf("SELECT pg_catalog.setval(%s::pg_catalog.regclass, x.m, true) "
		                    "FROM (SELECT pg_catalog.max(%s)::bigint AS m FROM %s) x, %s s "
		                    "WHERE x.m IS NOT NULL AND x.m >= CASE WHEN s.is_called THEN s.last_value + 1 "
		                    "ELSE s.last_value END", lit ? lit : "''", col, tq, seq);
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
	          exec_ok(a, create.buf, 0, NULL, "could not create the temporary table", NULL) &&
	          load_rows(a, t) &&
	          exec_ok(a, "ANALYZE " TEMP_TABLE, 0, NULL, "could not analyze the temporary table", NULL) &&
	          verify_rows(a, t) &&
	          write_table(a, t, out) &&
	          (t->counts.n[SYNC_INSERT] == 0 || move_sequences(a, t, out));
	if (ok && rb_ctx_cancelled(a->ctx))
		ok = rb_error_setc(a->err, RB_EXIT_STEP, "the apply of %s was cancelled before its commit", t->display);
	if (ok) {
		PGresult *res = db_exec(a->work, "COMMIT", 0, NULL, NULL);
		if (PQresultStatus(res) != PGRES_COMMAND_OK) {
			bool lost = PQstatus(a->work) == CONNECTION_BAD;
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
		table_step(a, t, out, "failed");
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
		if (!columns_match(&a, &rv->tables[i])) {
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
