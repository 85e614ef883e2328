/* sync_plan.c: the diff of every sync table of a plan, for `sync diff`, the staging rehearsal and `run`. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "events.h"
#include "sync_plan.h"
#include "sync_review.h"
#include "util.h"

/* What the row hook of one table needs: the review it writes to and the front end's own hooks. */
struct table_hooks {
	struct sync_review_writer    *review;
	struct rb_error              *review_err;  /* the first write error */
	const struct sync_diff_hooks *user;
};

static void
on_row(const struct sync_spec *spec, const struct sync_row *row, void *userdata)
{
	struct table_hooks *h = userdata;
	if (h->review && h->review_err->code == 0 && h->review_err->message == NULL)
		sync_review_row(h->review, row, h->review_err);
	if (h->user && h->user->row)
		h->user->row(spec, row, h->user->userdata);
}

static void
on_progress(const struct sync_spec *spec, const struct sync_counts *counts, void *userdata)
{
	struct table_hooks *h = userdata;
	h->user->progress(spec, counts, h->user->userdata);
}

static json_t *
error_json(const struct rb_error *err)
{
	return json_pack("{s:s?, s:s?, s:s?}", "message", err->message, "detail", err->detail, "hint", err->hint);
}

/* The table's object of the result (`sync diff --json`'s, without "rows"). */
static json_t *
table_json(const struct plan_sync_table *t, const char *display, const struct sync_spec *spec, bool ok,
           const struct sync_counts *counts, const char *digest, const struct rb_error *err)
{
	json_t *jt = json_object();
	json_object_set_new(jt, "table", json_string(display));
	json_object_set_new(jt, "plan_name", json_string(t->name));
	json_object_set_new(jt, "mode", json_string(plan_mode_name(t->mode)));
	json_object_set_new(jt, "on_conflict", json_string(plan_on_conflict_name(t->on_conflict)));
	json_object_set_new(jt, "protected", json_boolean(t->protected_));
	json_object_set_new(jt, "delete", json_boolean(t->delete_rows));
	json_t *key = json_array();
	for (size_t i = 0; spec && i < spec->nkey; i++)
		json_array_append_new(key, json_string(spec->cols[i].name));
	json_object_set_new(jt, "key", key);
	json_object_set_new(jt, "key_from", spec ? json_string(spec->key_from_plan ? "plan" : "primary key")
	                                         : json_null());
	json_t *cols = json_array();
	for (size_t i = 0; spec && i < spec->ncols; i++)
		json_array_append_new(cols, json_pack("{s:s, s:s}", "name", spec->cols[i].name,
		                                      "type", spec->cols[i].type));
	json_object_set_new(jt, "columns", cols);
	json_object_set_new(jt, "state", json_string(ok ? "diffed" : "failed"));
	if (ok) {
		json_object_set_new(jt, "counts", json_pack("{s:I, s:I, s:I, s:I, s:I, s:I}",
			"to_insert", (json_int_t)counts->n[SYNC_INSERT],
			"to_update", (json_int_t)counts->n[SYNC_UPDATE],
			"to_delete", (json_int_t)counts->n[SYNC_DELETE],
			"conflicts", (json_int_t)counts->n[SYNC_CONFLICT],
			"differs_kept", (json_int_t)counts->n[SYNC_DIFFERS_KEPT],
			"unchanged", (json_int_t)counts->n[SYNC_UNCHANGED]));
		json_object_set_new(jt, "source_rows", json_integer(counts->source_rows));
		json_object_set_new(jt, "target_rows", json_integer(counts->target_rows));
		json_object_set_new(jt, "digest", json_string(digest));
	} else {
		json_object_set_new(jt, "error", error_json(err));
	}
	return jt;
}

/* Resolves and diffs one table; appends its object to tables. False when it failed. */
static bool
diff_one(PGconn *src, PGconn *dst, const struct plan *plan, const struct plan_sync_table *t,
         const struct sync_plan_opts *o, struct rb_ctx *ctx, struct sync_review_writer *review, json_t *tables)
{
	struct rb_error err = {0}, rerr = {0};
	struct sync_spec *spec = NULL;
	char *display = sync_table_display(plan, t->name);
	struct sync_counts counts;
	char digest[65] = "";
	memset(&counts, 0, sizeof counts);
	bool ok = sync_table_resolve(src, dst, plan, t, ctx, &spec, &err);
	if (o->table_begin)
		o->table_begin(t, display, ok ? spec : NULL, o->userdata);
	if (ok && review)
		ok = sync_review_table_begin(review, spec, t->mode_explicit, &err);
	if (ok) {
		struct table_hooks th = { .review = review, .review_err = &rerr, .user = o->hooks };
		bool want_rows = review || (o->hooks && o->hooks->row);
		struct sync_diff_hooks hooks = {
			.row = want_rows ? on_row : NULL,
			.progress = o->hooks && o->hooks->progress ? on_progress : NULL,
			.userdata = &th,
		};
		ok = sync_diff_table(src, dst, spec, ctx, &hooks, &counts, digest, &err);
	}
	if (ok && (rerr.code || rerr.message)) {
		rb_error_clear(&err);
		err = rerr;                       /* takes rerr's strings */
		memset(&rerr, 0, sizeof rerr);
		ok = false;
	}
	if (ok && review)
		ok = sync_review_table_end(review, &counts, digest, &err);
	if (!ok && err.message == NULL)
		rb_error_setc(&err, RB_EXIT_STEP, "the diff of table %s failed", display);
	json_t *jt = table_json(t, display, spec, ok, &counts, digest, &err);
	json_array_append_new(tables, jt);
	if (o->table_end)
		o->table_end(t, spec, jt, ok ? NULL : &err, o->userdata);
	rb_error_clear(&err);
	rb_error_clear(&rerr);
	sync_spec_free(spec);
	free(display);
	return ok;
}

/* Records a failure not of one table: in err (the first one wins) and in the result's "error". */
static void
plan_failure(json_t *res, struct rb_error *err, const struct rb_error *e)
{
	if (json_is_null(json_object_get(res, "error")))
		json_object_set_new(res, "error", error_json(e));
	if (err->message == NULL) {
		rb_error_setc(err, e->code ? e->code : RB_EXIT_STEP, "%s", e->message ? e->message : "unknown error");
		if (e->detail)
			rb_error_detail(err, "%s", e->detail);
		if (e->hint)
			rb_error_hint(err, "%s", e->hint);
		memcpy(err->sqlstate, e->sqlstate, sizeof err->sqlstate);
	}
}

bool
sync_diff_plan(const struct plan *p, const struct sync_plan_opts *o, struct rb_ctx *ctx, json_t **result,
               struct rb_error *err)
{
	const char *target = o->target_env ? o->target_env : p->target;
	json_t *res = json_pack("{s:s?, s:s, s:n, s:n, s:b, s:[], s:[], s:n}", "source", p->source, "target", target,
	                        "database", "review_file", "ok", 0, "tables", "skipped", "error");
	if (result)
		*result = NULL;
	struct rb_error e = {0};
	PGconn *src = NULL, *dst = NULL;
	struct sync_review_writer *review = NULL;
	struct strlist all = {0}, listed = {0};
	const struct plan_sync_table *want = NULL;
	bool ok = false;

	if (!p->sync.present || p->source == NULL) {
		rb_error_setc(&e, RB_EXIT_PLAN, "%s", p->sync.present ? "the plan names no source to sync from"
		                                                      : "the plan has no sync section");
		plan_failure(res, err, &e);
		goto out;
	}
	if (plan_env_find(p, target) == NULL) {
		rb_error_setc(&e, RB_EXIT_USAGE, "the plan has no environment \"%s\"", target);
		plan_failure(res, err, &e);
		goto out;
	}
	if (o->review_path && strcmp(target, p->target) != 0) {
		rb_error_setc(&e, RB_EXIT_USAGE, "a review file can only be saved for the plan's target (%s), not %s",
		              p->target, target);
		plan_failure(res, err, &e);
		goto out;
	}
	if (o->only) {
		for (size_t i = 0; i < p->sync.ntables && !want; i++) {
			char *q = sync_table_display(p, p->sync.tables[i].name);
			if (strcmp(p->sync.tables[i].name, o->only) == 0 || strcmp(q, o->only) == 0)
				want = &p->sync.tables[i];
			free(q);
		}
		if (want == NULL) {
			rb_error_setc(&e, RB_EXIT_USAGE, "table \"%s\" is not in the plan's sync tables", o->only);
			plan_failure(res, err, &e);
			goto out;
		}
	}

	src = db_connect_ctx(p, p->source, ctx, &e);
	dst = src ? db_connect_ctx(p, target, ctx, &e) : NULL;
	if (dst == NULL) {
		if (e.code == 0)
			e.code = RB_EXIT_CONNECT;
		plan_failure(res, err, &e);
		goto out;
	}
	char *db = db_query_value(dst, "SELECT pg_catalog.current_database()", &e);
	if (db == NULL) {
		plan_failure(res, err, &e);
		goto out;
	}
	json_object_set_new(res, "database", json_string(db));
	if (o->review_path) {
		review = sync_review_create(o->review_path, p, db, o->who, &e);
		if (review == NULL) {
			free(db);
			plan_failure(res, err, &e);
			goto out;
		}
	}
	if (o->begin)
		o->begin(p->source, target, db, o->userdata);
	free(db);

	/* The target's tables the plan does not list, or lists in skip mode. */
	for (size_t i = 0; i < p->sync.ntables; i++)
		strlist_push_owned(&listed, sync_table_display(p, p->sync.tables[i].name));
	bool listed_ok = want != NULL || sync_list_tables(dst, ctx, &all, &e);
	if (!listed_ok) {
		plan_failure(res, err, &e);
		rb_error_clear(&e);
	}

	json_t *tables = json_object_get(res, "tables"), *skipped = json_object_get(res, "skipped");
	size_t ndiffed = 0, nfailed = 0;
	for (size_t i = 0; i < p->sync.ntables; i++) {
		const struct plan_sync_table *t = &p->sync.tables[i];
		if ((want && t != want) || t->mode == PLAN_MODE_SKIP)
			continue;
		ndiffed++;
		if (!diff_one(src, dst, p, t, o, ctx, review, tables))
			nfailed++;  /* the next table is still diffed */
		if (rb_ctx_cancelled(ctx))
			break;
	}
	bool cancelled = rb_ctx_cancelled(ctx);

	/* Skipped: skip-mode tables of the plan, then the target's tables the plan does not list. */
	for (size_t i = 0; i < p->sync.ntables; i++) {
		const struct plan_sync_table *t = &p->sync.tables[i];
		if (t->mode == PLAN_MODE_SKIP && (want == NULL || t == want))
			json_array_append_new(skipped, json_pack("{s:s, s:s}", "table", listed.items[i], "reason",
			                                         "mode skip"));
	}
	for (size_t i = 0; i < all.len; i++)
		if (!strlist_contains(&listed, all.items[i]))
			json_array_append_new(skipped, json_pack("{s:s, s:s}", "table", all.items[i], "reason",
			                                         "not in the plan"));

	ok = listed_ok && nfailed == 0 && !cancelled;
	if (review) {
		for (size_t i = 0; i < json_array_size(skipped); i++) {
			json_t *sk = json_array_get(skipped, i);
			sync_review_skipped(review, json_string_value(json_object_get(sk, "table")),
			                    json_string_value(json_object_get(sk, "reason")));
		}
		if (ok) {
			ok = sync_review_commit(review, &e);
			if (!ok)
				plan_failure(res, err, &e);
		} else {
			sync_review_abort(review);
		}
		review = NULL;
		if (ok) {
			json_object_set_new(res, "review_file", json_string(o->review_path));
			/* The journal keeps the counts and digests, not the rows. */
			json_t *jt = json_deep_copy(tables);
			for (size_t i = 0; i < json_array_size(jt); i++)
				json_object_del(json_array_get(jt, i), "rows");
			json_t *data = json_pack("{s:s, s:s, s:o, s:O}", "kind", "sync_review", "path", o->review_path,
			                         "tables", jt, "skipped", skipped);
			events_emitf(ctx ? ctx->bus : NULL, EV_STEP, "sync", data, "review saved to %s", o->review_path);
			json_decref(data);
		}
	}
	if (err->message == NULL && !ok) {
		if (cancelled)
			rb_error_setc(err, RB_EXIT_STEP, "the sync diff was cancelled");
		else
			rb_error_setc(err, RB_EXIT_STEP, "%zu of %zu tables could not be diffed", nfailed, ndiffed);
	}

out:
	json_object_set_new(res, "ok", json_boolean(ok));
	rb_error_clear(&e);
	sync_review_abort(review);
	strlist_free(&all);
	strlist_free(&listed);
	PQfinish(src);
	PQfinish(dst);
	if (result)
		*result = res;
	else
		json_decref(res);
	return ok;
}
