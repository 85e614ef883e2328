/* sync.c: the sync screen: the table of tables with live diff counts, the drill-down review of rows, the apply. */
#include "config.h"

#include <inttypes.h>
#include <pthread.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/confirm.h"
#include "core/db.h"
#include "core/sync.h"
#include "core/sync_apply.h"
#include "core/sync_review.h"
#include "core/util.h"
#include "screens/wizard.h"
#include "tui/confirm.h"
#include "tui/dialog.h"
#include "tui/table.h"
#include "tui/text.h"
#include "tui/theme.h"

#define STAGE "sync"
/*
 * Rows kept in memory per table for the drill-down, by count and by bytes (the copies of the
 * values and their arrays); the review file has every row that is written.
 */
#define SY_KEEP_ROWS 10000
#define SY_KEEP_BYTES ((size_t)8 * 1024 * 1024)
#define SY_KEEP_TEXT "10000 rows or 8 MB"
/* Longer values are cut in the view (and in its search); the view says where and how long. */
#define SY_VALUE_MAX 512
#define SY_SEARCH_MAX 128
/* Each diff's review file in the run directory: sync-review-1.txt, sync-review-2.txt, ... */
#define SY_REVIEW_PREFIX "sync-review-"

enum sy_state {
	SY_PENDING,
	SY_DIFFING,
	SY_DIFFED,
	SY_DIFF_FAILED,
	SY_APPLYING,
	SY_APPLIED,
	SY_APPLY_FAILED,
	SY_NOT_REACHED,
};

/*
 * A changed row kept for the drill-down: the values as text (NULL for SQL NULL), each cut at
 * SY_VALUE_MAX bytes; src_full / dst_full say the full length of each cut value (0: not cut) and
 * diff_at where a changed column's old and new values first differ (byte offset), both NULL
 * when no value of the row was cut.
 */
struct sy_row {
	enum sync_kind kind;
	char         **src;      /* ncols values, or NULL when the source has no row */
	char         **dst;      /* ncols values, or NULL when the target has no row */
	bool          *changed;  /* ncols, or NULL */
	size_t        *src_full;
	size_t        *dst_full;
	size_t        *diff_at;
};

struct sy_rows {
	struct sy_row *items;
	size_t         n, cap;
	size_t         bytes;    /* what the kept rows take, about */
	int64_t        total;    /* rows the diff reported (kept or not) */
};

/* One table as the diff worker reports it; guarded by the job's lock. */
struct sy_live {
	enum sy_state      state;
	struct sync_counts counts;
	bool               have_counts;
	char              *error;
	char             **cols;
	size_t             ncols, nkey;
	bool               key_from_plan;
	struct sy_rows     rows;       /* moved in when the table ends */
	bool               rows_ready;
};

/* One table as the screen shows it. */
struct sy_table {
	const struct plan_sync_table *pt;
	char              *display;    /* "schema.table" */
	enum sy_state      state;
	struct sync_counts counts;
	bool               have_counts;
	char              *error;
	char             **cols;
	size_t             ncols, nkey;
	bool               key_from_plan;
	struct sy_rows     rows;
	bool               reviewed;
	int64_t            inserted, updated, deleted;
	char              *phase;      /* the running apply's last progress, or NULL */
};

struct sy_diff_job;

struct wiz_sync_state {
	struct sy_table         *tables;   /* the plan's sync tables that are not skip, in plan order */
	size_t                   ntables;
	struct strlist           skipped;  /* tables not synced ... */
	struct strlist           skipped_why; /* ... and why ("mode skip", "not in the plan") */
	struct sy_diff_job      *job;      /* the running diff, or NULL */
	long long                diff_start_ms, diff_ms;
	bool                     diffed;   /* a diff ended in this session */
	bool                     diff_ok;  /* ... every table diffed, the review saved and loaded */
	char                    *error;    /* why the diff as a whole failed, or NULL */
	char                    *review_path;
	struct sync_review      *rv;       /* the saved review, loaded; NULL when none */
	struct sync_apply_needs  needs;    /* computed from rv */
	bool                     applying;
	bool                     applied;  /* an apply ended in this session: apply_ok, apply_err */
	bool                     apply_ok;
	bool                     apply_refused;
	struct rb_error          apply_err;
	bool                     consumed; /* the review was applied (wholly or partly): diff again first */
	bool                     nothing_journaled; /* "nothing to apply" ended the stage for this review */
};

/* "message. detail hint" of an error. Caller frees. */
static char *
error_text(const struct rb_error *err)
{
	struct strbuf sb = { 0 };
	strbuf_adds(&sb, err->message ? err->message : "unknown error");
	if (err->detail)
		strbuf_addf(&sb, ". %s", err->detail);
	if (err->hint)
		strbuf_addf(&sb, " %s", err->hint);
	return strbuf_detach(&sb);
}

static void
row_free(struct sy_row *r, size_t ncols)
{
	for (size_t i = 0; i < ncols; i++) {
		if (r->src)
			free(r->src[i]);
		if (r->dst)
			free(r->dst[i]);
	}
	free(r->src);
	free(r->dst);
	free(r->changed);
	free(r->src_full);
	free(r->dst_full);
	free(r->diff_at);
}

static void
rows_free(struct sy_rows *rs, size_t ncols)
{
	for (size_t i = 0; i < rs->n; i++)
		row_free(&rs->items[i], ncols);
	free(rs->items);
	memset(rs, 0, sizeof *rs);
}

static void
cols_free(char **cols, size_t n)
{
	for (size_t i = 0; cols && i < n; i++)
		free(cols[i]);
	free(cols);
}

static bool
has_changes(const struct sy_table *t)
{
	return t->rows.total > 0;
}

/* A review is loaded that writes nothing and refuses nothing: the stage can end without an apply. */
static bool
nothing_to_apply(const struct wiz_sync_state *st)
{
	const struct sync_apply_needs *nd = &st->needs;
	return st->rv && !st->consumed && nd->refusals.len == 0 && nd->inserts + nd->updates + nd->deletes == 0;
}

/* Journals the sync stage done ("nothing to apply") once for the loaded review, when it writes nothing. */
static void
nothing_done(struct wizard *w, struct wiz_sync_state *st)
{
	if (!nothing_to_apply(st) || st->nothing_journaled)
		return;
	st->nothing_journaled = true;
	json_t *d = json_pack("{s:s, s:s}", "review", st->rv->path, "review_sha256", st->rv->file_sha256);
	events_emitf(w->bus, EV_STAGE_DONE, STAGE, d, "nothing to apply");
	json_decref(d);
}

/* --- the model --- */

static void
state_free(struct wiz_sync_state *st)
{
	for (size_t i = 0; i < st->ntables; i++) {
		struct sy_table *t = &st->tables[i];
		free(t->display);
		free(t->error);
		rows_free(&t->rows, t->ncols);
		cols_free(t->cols, t->ncols);
		free(t->phase);
	}
	free(st->tables);
	strlist_free(&st->skipped);
	strlist_free(&st->skipped_why);
	free(st->error);
	free(st->review_path);
	if (st->rv) {
		sync_review_free(st->rv);
		free(st->rv);
		sync_apply_needs_free(&st->needs);
	}
	rb_error_clear(&st->apply_err);
	free(st);
}

/* The plan's skip-mode tables, as known before a diff lists the target's other tables. */
static void
plan_skipped(const struct plan *plan, struct wiz_sync_state *st)
{
	strlist_free(&st->skipped);
	strlist_free(&st->skipped_why);
	for (size_t i = 0; i < plan->sync.ntables; i++)
		if (plan->sync.tables[i].mode == PLAN_MODE_SKIP) {
			strlist_push_owned(&st->skipped, sync_table_display(plan, plan->sync.tables[i].name));
			strlist_push(&st->skipped_why, "mode skip");
		}
}

static struct wiz_sync_state *
model(struct wizard *w)
{
	if (w->sync.st)
		return w->sync.st;
	struct wiz_sync_state *st = xcalloc(1, sizeof *st);
	const struct plan *plan = w->plan;
	st->tables = xcalloc(plan->sync.ntables + 1, sizeof *st->tables);
	for (size_t i = 0; i < plan->sync.ntables; i++) {
		const struct plan_sync_table *pt = &plan->sync.tables[i];
		if (pt->mode == PLAN_MODE_SKIP)
			continue;
		struct sy_table *t = &st->tables[st->ntables++];
		t->pt = pt;
		t->display = sync_table_display(plan, pt->name);
	}
	plan_skipped(plan, st);
	w->sync.st = st;
	return st;
}

static struct sy_table *
table_by_name(struct wiz_sync_state *st, const char *name)
{
	for (size_t i = 0; st && name && i < st->ntables; i++)
		if (strcmp(st->tables[i].display, name) == 0 || strcmp(st->tables[i].pt->name, name) == 0)
			return &st->tables[i];
	return NULL;
}

/* --- the diff on the worker --- */

struct sy_diff_job {
	const struct plan *plan;
	struct events     *bus;
	char              *review_path;
	char              *who;
	size_t             n;
	const struct plan_sync_table **pts;
	char             **names;
	pthread_mutex_t    lock;
	/* Under lock. */
	struct sy_live    *live;
	size_t             current;      /* the table being diffed */
	struct strlist     skipped, skipped_why;
	bool               skipped_ready;
	/* The worker's own while a table is diffed. */
	struct sy_rows     cur;
	size_t             cur_ncols;
	size_t             cur_index;
	struct sync_review_writer *rw;
	json_t            *jtables;      /* each table's counts for the journal's sync_review step */
	json_t            *jskipped;     /* and the tables skipped */
	bool               rw_failed;
	struct rb_error    rw_err;
	/* Read after the join. */
	bool               ok;
	struct rb_error    err;
	struct sync_review *rv;
	struct sync_apply_needs needs;
};

static void
job_free(struct sy_diff_job *job)
{
	if (job == NULL)
		return;
	for (size_t i = 0; i < job->n; i++) {
		struct sy_live *l = &job->live[i];
		free(l->error);
		rows_free(&l->rows, l->ncols);
		cols_free(l->cols, l->ncols);
		free(job->names[i]);
	}
	free(job->live);
	free(job->names);
	free(job->pts);
	rows_free(&job->cur, job->cur_ncols);
	strlist_free(&job->skipped);
	strlist_free(&job->skipped_why);
	rb_error_clear(&job->rw_err);
	rb_error_clear(&job->err);
	json_decref(job->jtables);
	json_decref(job->jskipped);
	if (job->rv) {
		sync_review_free(job->rv);
		free(job->rv);
		sync_apply_needs_free(&job->needs);
	}
	free(job->review_path);
	free(job->who);
	pthread_mutex_destroy(&job->lock);
	free(job);
}

/* The bytes of v kept for the view: at most SY_VALUE_MAX, not splitting a UTF-8 sequence. */
static size_t
value_keep(const struct sync_value *v)
{
	if (v->len <= SY_VALUE_MAX)
		return v->len;
	size_t n = SY_VALUE_MAX;
	while (n > 0 && ((unsigned char)v->data[n] & 0xC0) == 0x80)
		n--;
	return n;
}

/* Copies n values (cut) into *out, their full lengths into *full where one is cut; adds the bytes to *bytes. */
static void
values_copy(const struct sync_value *vals, size_t n, char ***out, size_t **full, size_t *bytes)
{
	*out = NULL;
	*full = NULL;
	if (vals == NULL)
		return;
	*out = xcalloc(n + 1, sizeof **out);
	*bytes += (n + 1) * sizeof **out;
	for (size_t i = 0; i < n; i++) {
		if (vals[i].data == NULL)
			continue;
		size_t k = value_keep(&vals[i]);
		(*out)[i] = xstrndup(vals[i].data, k);
		*bytes += k + 1;
		if (k < vals[i].len) {
			if (*full == NULL) {
				*full = xcalloc(n + 1, sizeof **full);
				*bytes += (n + 1) * sizeof **full;
			}
			(*full)[i] = vals[i].len;
		}
	}
}

static void
on_row(const struct sync_spec *spec, const struct sync_row *row, void *ud)
{
	(void)spec;
	struct sy_diff_job *job = ud;
	if (job->rw && !job->rw_failed && !sync_review_row(job->rw, row, &job->rw_err))
		job->rw_failed = true;
	struct sy_rows *rs = &job->cur;
	rs->total++;
	/* Past either budget no row is kept: the rows kept are the first ones. */
	if (rs->n >= SY_KEEP_ROWS || rs->bytes >= SY_KEEP_BYTES)
		return;
	if (rs->n == rs->cap) {
		rs->cap = rs->cap ? rs->cap * 2 : 64;
		rs->items = xrealloc(rs->items, rs->cap * sizeof *rs->items);
	}
	struct sy_row *r = &rs->items[rs->n++];
	memset(r, 0, sizeof *r);
	size_t bytes = sizeof *r;
	r->kind = row->kind;
	values_copy(row->src, row->ncols, &r->src, &r->src_full, &bytes);
	values_copy(row->dst, row->ncols, &r->dst, &r->dst_full, &bytes);
	if (row->changed) {
		r->changed = xcalloc(row->ncols + 1, sizeof *r->changed);
		memcpy(r->changed, row->changed, row->ncols * sizeof *r->changed);
		bytes += (row->ncols + 1) * sizeof *r->changed;
		if ((r->src_full || r->dst_full) && row->src && row->dst) {
			/* A value was cut: where the full old and new values first differ. */
			r->diff_at = xcalloc(row->ncols + 1, sizeof *r->diff_at);
			bytes += (row->ncols + 1) * sizeof *r->diff_at;
			for (size_t i = 0; i < row->ncols; i++) {
				const struct sync_value *a = &row->src[i], *b = &row->dst[i];
				if (!row->changed[i] || a->data == NULL || b->data == NULL)
					continue;
				size_t k = 0, m = a->len < b->len ? a->len : b->len;
				while (k < m && a->data[k] == b->data[k])
					k++;
				r->diff_at[i] = k;
			}
		}
	}
	rs->bytes += bytes;
}

static void
on_progress(const struct sync_spec *spec, const struct sync_counts *counts, void *ud)
{
	(void)spec;
	struct sy_diff_job *job = ud;
	pthread_mutex_lock(&job->lock);
	job->live[job->cur_index].counts = *counts;
	job->live[job->cur_index].have_counts = true;
	pthread_mutex_unlock(&job->lock);
}

static void
live_state(struct sy_diff_job *job, size_t i, enum sy_state s)
{
	pthread_mutex_lock(&job->lock);
	job->live[i].state = s;
	job->current = i;
	pthread_mutex_unlock(&job->lock);
}

/* Resolves and diffs table i into the review; its state, counts and rows end up in live[i]. */
static bool
diff_one(struct sy_diff_job *job, PGconn *src, PGconn *dst, size_t i, struct rb_ctx *ctx)
{
	const struct plan_sync_table *pt = job->pts[i];
	struct rb_error e = { 0 };
	struct sync_spec *spec = NULL;
	struct sync_counts counts;
	char digest[65] = "";
	memset(&counts, 0, sizeof counts);
	live_state(job, i, SY_DIFFING);
	bool ok = sync_table_resolve(src, dst, job->plan, pt, ctx, &spec, &e);
	if (ok) {
		pthread_mutex_lock(&job->lock);
		struct sy_live *l = &job->live[i];
		l->ncols = spec->ncols;
		l->nkey = spec->nkey;
		l->key_from_plan = spec->key_from_plan;
		l->cols = xcalloc(spec->ncols + 1, sizeof *l->cols);
		for (size_t c = 0; c < spec->ncols; c++)
			l->cols[c] = xstrdup(spec->cols[c].name);
		pthread_mutex_unlock(&job->lock);
		ok = sync_review_table_begin(job->rw, spec, pt->mode_explicit, &e);
	}
	if (ok) {
		job->cur_index = i;
		job->cur_ncols = spec->ncols;
		struct sync_diff_hooks hooks = { .row = on_row, .progress = on_progress, .userdata = job };
		ok = sync_diff_table(src, dst, spec, ctx, &hooks, &counts, digest, &e);
		if (ok && job->rw_failed) {
			ok = false;
			e = job->rw_err;
			memset(&job->rw_err, 0, sizeof job->rw_err);
		}
		if (ok)
			ok = sync_review_table_end(job->rw, &counts, digest, &e);
	}
	json_t *jt = json_pack("{s:s, s:s, s:s, s:s, s:b, s:b, s:s}", "table", job->names[i], "plan_name", pt->name,
	                       "mode", plan_mode_name(pt->mode), "on_conflict", plan_on_conflict_name(pt->on_conflict),
	                       "protected", pt->protected_, "delete", pt->delete_rows, "state", ok ? "diffed" : "failed");
	if (ok) {
		json_t *key = json_array();
		for (size_t c = 0; c < spec->nkey; c++)
			json_array_append_new(key, json_string(spec->cols[c].name));
		json_object_set_new(jt, "key", key);
		json_object_set_new(jt, "counts", json_pack("{s:I, s:I, s:I, s:I, s:I, s:I}",
			"to_insert", (json_int_t)counts.n[SYNC_INSERT], "to_update", (json_int_t)counts.n[SYNC_UPDATE],
			"to_delete", (json_int_t)counts.n[SYNC_DELETE], "conflicts", (json_int_t)counts.n[SYNC_CONFLICT],
			"differs_kept", (json_int_t)counts.n[SYNC_DIFFERS_KEPT],
			"unchanged", (json_int_t)counts.n[SYNC_UNCHANGED]));
		json_object_set_new(jt, "source_rows", json_integer(counts.source_rows));
		json_object_set_new(jt, "target_rows", json_integer(counts.target_rows));
		json_object_set_new(jt, "digest", json_string(digest));
	}
	json_array_append_new(job->jtables, jt);
	pthread_mutex_lock(&job->lock);
	struct sy_live *l = &job->live[i];
	l->state = ok ? SY_DIFFED : SY_DIFF_FAILED;
	if (ok) {
		l->counts = counts;
		l->have_counts = true;
	} else {
		l->error = error_text(&e);
	}
	l->rows = job->cur;
	l->rows_ready = true;
	memset(&job->cur, 0, sizeof job->cur);
	pthread_mutex_unlock(&job->lock);
	if (ok)
		events_log(job->bus, LOG_LEVEL_INFO, STAGE, "%s: %" PRId64 " to insert, %" PRId64 " to update, %" PRId64
		           " to delete%s, %" PRId64 " conflicts, %" PRId64 " differ but kept, %" PRId64 " unchanged",
		           job->names[i], counts.n[SYNC_INSERT], counts.n[SYNC_UPDATE], counts.n[SYNC_DELETE],
		           counts.n[SYNC_DELETE] && !pt->delete_rows ? " (reported only)" : "", counts.n[SYNC_CONFLICT],
		           counts.n[SYNC_DIFFERS_KEPT], counts.n[SYNC_UNCHANGED]);
	else
		events_log(job->bus, LOG_LEVEL_ERROR, STAGE, "%s: could not be diffed: %s", job->names[i],
		           e.message ? e.message : "unknown error");
	rb_error_clear(&e);
	sync_spec_free(spec);
	return ok;
}

static void *
diff_main(void *arg, atomic_int *cancel)
{
	struct sy_diff_job *job = arg;
	struct rb_ctx ctx = { .bus = job->bus, .cancel = cancel };
	const struct plan *plan = job->plan;
	PGconn *src = NULL, *dst = NULL;
	char *db = NULL;
	struct strlist all = { 0 };
	size_t failed = 0;

	if (plan->source == NULL) {
		rb_error_setc(&job->err, RB_EXIT_PLAN, "the plan names no source to sync from");
		goto out;
	}
	src = db_connect_ctx(plan, plan->source, &ctx, &job->err);
	if (src == NULL)
		goto out;
	dst = db_connect_ctx(plan, plan->target, &ctx, &job->err);
	if (dst == NULL)
		goto out;
	db = db_query_value(dst, "SELECT pg_catalog.current_database()", &job->err);
	if (db == NULL || !sync_list_tables(dst, &ctx, &all, &job->err))
		goto out;
	job->rw = sync_review_create(job->review_path, plan, db, job->who, &job->err);
	if (job->rw == NULL)
		goto out;
	for (size_t i = 0; i < job->n && !rb_ctx_cancelled(&ctx); i++) {
		if (!diff_one(job, src, dst, i, &ctx))
			failed++;
	}

	/* Skipped: the plan's skip-mode tables, then the target's tables the plan does not list. */
	struct strlist listed = { 0 }, sk = { 0 }, why = { 0 };
	for (size_t i = 0; i < plan->sync.ntables; i++) {
		char *q = sync_table_display(plan, plan->sync.tables[i].name);
		if (plan->sync.tables[i].mode == PLAN_MODE_SKIP) {
			strlist_push(&sk, q);
			strlist_push(&why, "mode skip");
			sync_review_skipped(job->rw, q, "mode skip");
		}
		strlist_push_owned(&listed, q);
	}
	for (size_t i = 0; i < all.len; i++)
		if (!strlist_contains(&listed, all.items[i])) {
			strlist_push(&sk, all.items[i]);
			strlist_push(&why, "not in the plan");
			sync_review_skipped(job->rw, all.items[i], "not in the plan");
		}
	strlist_free(&listed);
	job->jskipped = json_array();
	for (size_t i = 0; i < sk.len; i++)
		json_array_append_new(job->jskipped, json_pack("{s:s, s:s}", "table", sk.items[i], "reason",
		                                               why.items[i]));
	pthread_mutex_lock(&job->lock);
	job->skipped = sk;
	job->skipped_why = why;
	job->skipped_ready = true;
	pthread_mutex_unlock(&job->lock);

	if (rb_ctx_cancelled(&ctx)) {
		sync_review_abort(job->rw);
		job->rw = NULL;
		rb_error_setc(&job->err, RB_EXIT_STEP, "the diff was cancelled; no review file was saved");
		goto out;
	}
	if (failed) {
		sync_review_abort(job->rw);
		job->rw = NULL;
		rb_error_setc(&job->err, RB_EXIT_STEP, "%zu of %zu tables could not be diffed; no review file was "
		              "saved", failed, job->n);
		rb_error_hint(&job->err, "Fix what each failed table says, then diff again.");
		goto out;
	}
	bool committed = sync_review_commit(job->rw, &job->err);
	job->rw = NULL;
	if (!committed)
		goto out;
	/* The journal keeps each table's counts and digest (the report shows them), not the rows. */
	json_t *data = json_pack("{s:s, s:s, s:O, s:O}", "kind", "sync_review", "path", job->review_path,
	                         "tables", job->jtables, "skipped", job->jskipped);
	events_emitf(job->bus, EV_STEP, STAGE, data, "review saved to %s", job->review_path);
	json_decref(data);
	job->rv = xcalloc(1, sizeof *job->rv);
	if (!sync_review_load(job->review_path, plan, job->rv, &job->err)) {
		free(job->rv);
		job->rv = NULL;
		goto out;
	}
	sync_apply_needs_compute(job->rv, &job->needs);
	job->ok = true;
out:
	if (job->rw)
		sync_review_abort(job->rw);
	job->rw = NULL;
	strlist_free(&all);
	free(db);
	PQfinish(src);
	PQfinish(dst);
	return job;
}

/* Takes what the running diff reported so far into the model. UI thread. */
static void
pull(struct wiz_sync_state *st)
{
	struct sy_diff_job *job = st->job;
	if (job == NULL)
		return;
	pthread_mutex_lock(&job->lock);
	for (size_t i = 0; i < job->n && i < st->ntables; i++) {
		struct sy_live *l = &job->live[i];
		struct sy_table *t = &st->tables[i];
		t->state = l->state;
		if (l->have_counts) {
			t->counts = l->counts;
			t->have_counts = true;
		}
		if (l->cols && t->cols == NULL) {
			t->cols = l->cols;
			t->ncols = l->ncols;
			t->nkey = l->nkey;
			t->key_from_plan = l->key_from_plan;
			l->cols = NULL;
		}
		if (l->error && t->error == NULL) {
			t->error = l->error;
			l->error = NULL;
		}
		if (l->rows_ready) {
			rows_free(&t->rows, t->ncols);
			t->rows = l->rows;
			memset(&l->rows, 0, sizeof l->rows);
			l->rows_ready = false;
		}
	}
	if (job->skipped_ready) {
		strlist_free(&st->skipped);
		strlist_free(&st->skipped_why);
		st->skipped = job->skipped;
		st->skipped_why = job->skipped_why;
		memset(&job->skipped, 0, sizeof job->skipped);
		memset(&job->skipped_why, 0, sizeof job->skipped_why);
		job->skipped_ready = false;
	}
	pthread_mutex_unlock(&job->lock);
}

/* The table being diffed now (for the status line), or NULL. */
static const char *
diffing_now(struct wiz_sync_state *st, size_t *index)
{
	for (size_t i = 0; i < st->ntables; i++)
		if (st->tables[i].state == SY_DIFFING) {
			*index = i;
			return st->tables[i].display;
		}
	return NULL;
}

static void
diff_collect(struct wizard *w, void *result, bool stopped)
{
	(void)stopped;
	struct sy_diff_job *job = result;
	struct wiz_sync_state *st = model(w);
	w->sync.gen++;
	if (job == NULL)
		return;
	pull(st);
	st->job = NULL;
	st->diffed = true;
	st->diff_ms = time_monotonic_ms() - st->diff_start_ms;
	for (size_t i = 0; i < st->ntables; i++)
		if (st->tables[i].state == SY_DIFFING)
			st->tables[i].state = SY_PENDING;   /* cancelled while it ran */
	free(st->error);
	st->error = NULL;
	if (job->ok) {
		st->diff_ok = true;
		st->rv = job->rv;
		st->needs = job->needs;
		job->rv = NULL;
		memset(&job->needs, 0, sizeof job->needs);
		events_log(w->bus, LOG_LEVEL_INFO, STAGE, "diff done: %" PRId64 " to insert, %" PRId64 " to update, %"
		           PRId64 " to delete into %s", st->needs.inserts, st->needs.updates, st->needs.deletes,
		           st->needs.database ? st->needs.database : "?");
		nothing_done(w, st);
	} else {
		st->error = error_text(&job->err);
		events_log(w->bus, LOG_LEVEL_WARN, STAGE, "diff failed: %s", job->err.message ? job->err.message : "?");
	}
	job_free(job);
}

/*
 * A new review file name in dir: sync-review-N.txt with the first N whose file (or its .tmp) does
 * not exist, so the file an earlier diff saved (and an apply used) is never overwritten, also
 * after a resume. Caller frees.
 */
static char *
review_path_next(const char *dir)
{
	for (unsigned n = 1;; n++) {
		char *p = xasprintf("%s/" SY_REVIEW_PREFIX "%u.txt", dir, n);
		char *tmp = xasprintf("%s.tmp", p);
		struct stat sb;
		bool taken = lstat(p, &sb) == 0 || lstat(tmp, &sb) == 0;
		free(tmp);
		if (!taken)
			return p;
		free(p);
	}
}

/* Starts the diff of every table on the worker; the previous diff, its review and reviews are dropped. */
static void
diff_start(struct wizard *w)
{
	struct wiz_sync_state *st = model(w);
	if (w->worker) {
		tui_message(w->app, "Diff", wizard_running(w, PLAN_STAGE_SYNC) ? "The sync is running already." :
		            "Wait until the running stage ends.", TUI_ROLE_WARN, NULL, NULL);
		return;
	}
	if (w->journal == NULL) {
		tui_message(w->app, "Diff", "This wizard has no run directory for the review file.", TUI_ROLE_DANGER,
		            NULL, NULL);
		return;
	}
	struct sy_diff_job *job = xcalloc(1, sizeof *job);
	pthread_mutex_init(&job->lock, NULL);
	job->plan = w->plan;
	job->bus = w->bus;
	job->review_path = review_path_next(journal_dir(w->journal));
	job->who = xstrdup(util_user_name());
	job->jtables = json_array();
	job->n = st->ntables;
	job->pts = xcalloc(st->ntables + 1, sizeof *job->pts);
	job->names = xcalloc(st->ntables + 1, sizeof *job->names);
	job->live = xcalloc(st->ntables + 1, sizeof *job->live);
	for (size_t i = 0; i < st->ntables; i++) {
		job->pts[i] = st->tables[i].pt;
		job->names[i] = xstrdup(st->tables[i].display);
	}
	if (!wizard_worker_start(w, PLAN_STAGE_SYNC, diff_main, job, diff_collect)) {
		job_free(job);
		return;
	}
	/* What the last diff showed is history now. */
	for (size_t i = 0; i < st->ntables; i++) {
		struct sy_table *t = &st->tables[i];
		rows_free(&t->rows, t->ncols);
		cols_free(t->cols, t->ncols);
		t->cols = NULL;
		t->ncols = t->nkey = 0;
		free(t->error);
		t->error = NULL;
		free(t->phase);
		t->phase = NULL;
		t->state = SY_PENDING;
		t->have_counts = false;
		memset(&t->counts, 0, sizeof t->counts);
		t->reviewed = false;
		t->inserted = t->updated = t->deleted = 0;
	}
	if (st->rv) {
		sync_review_free(st->rv);
		free(st->rv);
		st->rv = NULL;
		sync_apply_needs_free(&st->needs);
		memset(&st->needs, 0, sizeof st->needs);
	}
	free(st->review_path);
	st->review_path = xstrdup(job->review_path);
	free(st->error);
	st->error = NULL;
	st->diffed = st->diff_ok = false;
	st->applied = st->apply_ok = st->apply_refused = st->consumed = false;
	st->nothing_journaled = false;
	rb_error_clear(&st->apply_err);
	st->job = job;
	st->diff_start_ms = time_monotonic_ms();
	w->sync.gen++;
	events_log(w->bus, LOG_LEVEL_INFO, STAGE, "diff of %zu table%s from %s to %s started (read-only)", st->ntables,
	           st->ntables == 1 ? "" : "s", w->plan->source ? w->plan->source : "?", w->plan->target);
}

/* --- the apply on the worker --- */

struct sy_apply_job {
	const struct plan        *plan;
	struct events            *bus;
	const struct sync_review *rv;     /* borrowed from the model, which keeps it while the worker runs */
	char                     *confirm, *overwrite, *del, *who;
	bool                      ok;
	struct rb_error           err;
	struct sync_apply_result  res;
};

static void *
apply_main(void *arg, atomic_int *cancel)
{
	struct sy_apply_job *job = arg;
	struct rb_ctx ctx = { .bus = job->bus, .cancel = cancel };
	struct sync_apply_opts o = {
		.confirm = job->confirm,
		.allow_protected_overwrite = job->overwrite != NULL,   /* typing the phrase is the override */
		.confirm_overwrite = job->overwrite,
		.confirm_delete = job->del,
		.backup_ok = true,   /* the screen checked: backup done or waived in this run */
		.who = job->who,
	};
	job->ok = sync_apply(job->plan, job->rv, &o, &ctx, &job->res, &job->err);
	return job;
}

static void
apply_job_free(struct sy_apply_job *job)
{
	if (job == NULL)
		return;
	free(job->confirm);
	free(job->overwrite);
	free(job->del);
	free(job->who);
	rb_error_clear(&job->err);
	sync_apply_result_free(&job->res);
	free(job);
}

static enum sy_state
from_apply_state(enum sync_table_state s, enum sy_state was)
{
	switch (s) {
	case SYNC_TABLE_RUNNING: return SY_APPLYING;
	case SYNC_TABLE_APPLIED: return SY_APPLIED;
	case SYNC_TABLE_FAILED: return SY_APPLY_FAILED;
	case SYNC_TABLE_NOT_REACHED: return SY_NOT_REACHED;
	default: return was == SY_APPLYING ? SY_NOT_REACHED : was;
	}
}

static void
apply_collect(struct wizard *w, void *result, bool stopped)
{
	(void)stopped;
	struct sy_apply_job *job = result;
	struct wiz_sync_state *st = model(w);
	w->sync.gen++;
	if (job == NULL)
		return;
	st->applying = false;
	st->applied = true;
	st->apply_ok = job->ok;
	st->apply_refused = job->res.refused;
	rb_error_clear(&st->apply_err);
	st->apply_err = job->err;
	memset(&job->err, 0, sizeof job->err);
	bool wrote = false;
	for (size_t i = 0; i < job->res.ntables; i++) {
		const struct sync_apply_table *at = &job->res.tables[i];
		struct sy_table *t = table_by_name(st, at->display);
		if (t == NULL)
			continue;
		if (!job->res.refused)
			t->state = from_apply_state(at->state, t->state);
		t->inserted = at->inserted;
		t->updated = at->updated;
		t->deleted = at->deleted;
		free(t->phase);
		t->phase = NULL;
		if (at->state == SYNC_TABLE_FAILED && at->error) {
			free(t->error);
			t->error = xstrdup(at->error);
		}
		wrote |= at->state == SYNC_TABLE_APPLIED || at->state == SYNC_TABLE_FAILED;
	}
	for (size_t i = 0; i < st->ntables; i++)
		if (st->tables[i].state == SY_APPLYING)
			st->tables[i].state = job->ok ? SY_APPLIED : SY_APPLY_FAILED;
	/* Once something was written (or tried), the review is history: diff again before another apply. */
	st->consumed = !job->res.refused && (wrote || job->ok);
	wizard_stage_end_guard(w, PLAN_STAGE_SYNC, job->ok ? STAGE_DONE : STAGE_FAILED);
	apply_job_free(job);
}

static void
apply_start(struct wizard *w, const char *confirm, const char *overwrite, const char *del)
{
	struct wiz_sync_state *st = model(w);
	if (w->worker || st->rv == NULL || st->consumed) {
		tui_message(w->app, "Apply", "The state changed meanwhile: nothing was written. F2 again.",
		            TUI_ROLE_WARN, NULL, NULL);
		return;
	}
	struct sy_apply_job *job = xcalloc(1, sizeof *job);
	job->plan = w->plan;
	job->bus = w->bus;
	job->rv = st->rv;
	job->confirm = confirm ? xstrdup(confirm) : NULL;
	job->overwrite = overwrite ? xstrdup(overwrite) : NULL;
	job->del = del ? xstrdup(del) : NULL;
	job->who = xstrdup(util_user_name());
	if (!wizard_worker_start(w, PLAN_STAGE_SYNC, apply_main, job, apply_collect)) {
		apply_job_free(job);
		return;
	}
	st->applying = true;
	st->applied = false;
	rb_error_clear(&st->apply_err);
	for (size_t i = 0; i < st->ntables; i++) {
		free(st->tables[i].phase);
		st->tables[i].phase = NULL;
	}
	w->sync.gen++;
}

static const char *
jstr(json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

void
wizard_sync_track(struct wizard *w, const struct wiz_item *it)
{
	struct wiz_sync_state *st = w->sync.st;
	w->sync.gen++;
	if (st == NULL || it->data == NULL)
		return;
	json_t *d = it->data;
	const char *kind = jstr(d, "kind");
	struct sy_table *t = table_by_name(st, jstr(d, "table"));
	if (kind == NULL || t == NULL)
		return;
	if (it->type == EV_STEP && strcmp(kind, "sync_table") == 0) {
		const char *state = jstr(d, "state");
		if (state == NULL)
			return;
		if (strcmp(state, "started") == 0)
			t->state = SY_APPLYING;
		else if (strcmp(state, "applied") == 0)
			t->state = SY_APPLIED;
		else if (strcmp(state, "failed") == 0)
			t->state = SY_APPLY_FAILED;
		else if (strcmp(state, "not reached") == 0 || strcmp(state, "not_reached") == 0)
			t->state = SY_NOT_REACHED;
		if (json_is_integer(json_object_get(d, "inserted")))
			t->inserted = json_integer_value(json_object_get(d, "inserted"));
		if (json_is_integer(json_object_get(d, "updated")))
			t->updated = json_integer_value(json_object_get(d, "updated"));
		if (json_is_integer(json_object_get(d, "deleted")))
			t->deleted = json_integer_value(json_object_get(d, "deleted"));
		if (jstr(d, "error")) {
			free(t->error);
			t->error = xstrdup(jstr(d, "error"));
		}
		if (strcmp(state, "started") != 0) {
			free(t->phase);
			t->phase = NULL;
		}
	} else if (it->type == EV_PROGRESS && strcmp(kind, "sync_apply") == 0) {
		const char *phase = jstr(d, "phase");
		json_t *rows = json_object_get(d, "rows");
		free(t->phase);
		if (json_is_integer(rows))
			t->phase = xasprintf("%s %lld", phase ? phase : "", (long long)json_integer_value(rows));
		else
			t->phase = xstrdup(phase ? phase : "");
		if (t->state != SY_APPLIED && t->state != SY_APPLY_FAILED)
			t->state = SY_APPLYING;
	}
}

void
wizard_sync_release(struct wizard *w)
{
	if (w->sync.st)
		state_free(w->sync.st);
	memset(&w->sync, 0, sizeof w->sync);
}

/* --- the screen --- */

/* The state and the counts first, so that they fit 80 columns; the settings follow (and the detail line). */
enum {
	COL_TABLE, COL_STATE, COL_INS, COL_UPD, COL_DEL, COL_CONF, COL_SAME, COL_MODE, COL_KEY, COL_ONC, COL_PROT,
	NCOLS
};

static const struct tui_table_column columns[NCOLS] = {
	[COL_TABLE] = { "table", 0, 0, 24, false },
	[COL_STATE] = { "state", 0, 8, 28, false },
	[COL_INS]   = { "insert", 0, 0, 9, true },
	[COL_UPD]   = { "update", 0, 0, 9, true },
	[COL_DEL]   = { "delete", 0, 0, 9, true },
	[COL_CONF]  = { "conflict", 0, 0, 9, true },
	[COL_SAME]  = { "unchanged", 0, 0, 10, true },
	[COL_MODE]  = { "mode", 0, 0, 6, false },
	[COL_KEY]   = { "key", 0, 0, 12, false },
	[COL_ONC]   = { "on_conflict", 0, 0, 17, false },
	[COL_PROT]  = { "prot", 0, 0, 4, false },
};

/* Below SY_WIDE columns: short count titles, so that table, state and the counts fit 80 columns. */
#define SY_WIDE 100
static const struct tui_table_column columns_narrow[NCOLS] = {
	[COL_TABLE] = { "table", 0, 0, 18, false },
	[COL_STATE] = { "state", 0, 8, 11, false },
	[COL_INS]   = { "ins", 0, 0, 9, true },
	[COL_UPD]   = { "upd", 0, 0, 9, true },
	[COL_DEL]   = { "del", 0, 0, 9, true },
	[COL_CONF]  = { "conf", 0, 0, 9, true },
	[COL_SAME]  = { "same", 0, 0, 10, true },
	[COL_MODE]  = { "mode", 0, 0, 6, false },
	[COL_KEY]   = { "key", 0, 0, 12, false },
	[COL_ONC]   = { "on_conflict", 0, 0, 17, false },
	[COL_PROT]  = { "prot", 0, 0, 4, false },
};

/* The filters of the drill-down: one kind, or every kind (SYNC_KIND_COUNT). */
static const enum sync_kind filter_cycle[] = {
	SYNC_KIND_COUNT, SYNC_INSERT, SYNC_UPDATE, SYNC_DELETE, SYNC_CONFLICT, SYNC_DIFFERS_KEPT,
};

struct sy_screen {
	struct wizard    *wz;
	struct tui_table *table;
	bool              narrow;            /* the table has columns_narrow */
	char             *note;              /* a message for the status line until the next key, or NULL */
	/* The drill-down: the table whose rows are open, -1 for the table of tables. */
	long              drill;
	enum sync_kind    filter;            /* SYNC_KIND_COUNT: every kind */
	char              search[SY_SEARCH_MAX];
	bool              prompt;            /* the search prompt is open */
	char              input[SY_SEARCH_MAX];
	size_t            input_len;
	size_t           *idx;               /* the rows shown: indexes into the table's rows */
	size_t            nidx;
	bool              stale;             /* idx must be built again */
	long              cursor, top;       /* in idx */
	int               xoff;
	int               maxw;              /* the widest line of the last drawn page ... */
	int               width;             /* ... and the width it was drawn in */
	int               page;              /* items that fit the last drawn page */
	/* The whole-row view of the cursor row (Enter in the drill-down). */
	bool              rowview;
	long              vtop;              /* its first line shown */
	long              vlines;            /* its lines, as last drawn */
	int               vpage;             /* its lines that fit */
};

static const char *
state_text(const struct sy_table *t, enum tui_role *role)
{
	switch (t->state) {
	case SY_PENDING: *role = TUI_ROLE_MUTED; return "pending";
	case SY_DIFFING: *role = TUI_ROLE_WARN; return "diffing";
	case SY_DIFF_FAILED: *role = TUI_ROLE_DANGER; return "failed";
	case SY_DIFFED:
		if (t->reviewed) {
			*role = TUI_ROLE_OK;
			return "reviewed";
		}
		*role = has_changes(t) ? TUI_ROLE_WARN : TUI_ROLE_NORMAL;
		return "diffed";
	case SY_APPLYING: *role = TUI_ROLE_WARN; return "applying";
	case SY_APPLIED: *role = TUI_ROLE_OK; return "applied";
	case SY_APPLY_FAILED: *role = TUI_ROLE_DANGER; return "failed";
	case SY_NOT_REACHED: *role = TUI_ROLE_WARN; return "not reached";
	}
	*role = TUI_ROLE_NORMAL;
	return "?";
}

static void
key_text(const struct sy_table *t, struct strbuf *sb)
{
	if (t->cols) {
		for (size_t i = 0; i < t->nkey; i++)
			strbuf_addf(sb, "%s%s", i ? "," : "", t->cols[i]);
		return;
	}
	for (size_t i = 0; i < t->pt->key.len; i++)
		strbuf_addf(sb, "%s%s", i ? "," : "", t->pt->key.items[i]);
	if (t->pt->key.len == 0)
		strbuf_adds(sb, "(pk)");
}

static void
fill(void *ud, long row, struct tui_table_row *r)
{
	struct sy_screen *ss = ud;
	struct wiz_sync_state *st = ss->wz->sync.st;
	if (st == NULL || row < 0)
		return;
	if ((size_t)row >= st->ntables) {
		size_t k = (size_t)row - st->ntables;
		if (k >= st->skipped.len)
			return;
		tui_table_row_set(r, COL_TABLE, st->skipped.items[k]);
		tui_table_row_set(r, COL_MODE, strcmp(st->skipped_why.items[k], "mode skip") == 0 ? "skip" : "-");
		if (ss->narrow)
			tui_table_row_set(r, COL_STATE, "skipped");   /* why: in the detail line */
		else
			tui_table_row_setf(r, COL_STATE, "skipped (%s)", st->skipped_why.items[k]);
		tui_table_row_role(r, -1, TUI_ROLE_MUTED);
		return;
	}
	const struct sy_table *t = &st->tables[row];
	struct strbuf sb = { 0 };
	tui_table_row_set(r, COL_TABLE, t->display);
	tui_table_row_set(r, COL_MODE, plan_mode_name(t->pt->mode));
	key_text(t, &sb);
	tui_table_row_set(r, COL_KEY, sb.buf);
	strbuf_release(&sb);
	tui_table_row_set(r, COL_ONC, plan_on_conflict_name(t->pt->on_conflict));
	tui_table_row_set(r, COL_PROT, t->pt->protected_ ? "yes" : "no");
	if (t->pt->protected_)
		tui_table_row_role(r, COL_PROT, TUI_ROLE_WARN);
	if (t->have_counts) {
		const struct sync_counts *c = &t->counts;
		tui_table_row_setf(r, COL_INS, "%" PRId64, c->n[SYNC_INSERT]);
		tui_table_row_setf(r, COL_UPD, "%" PRId64, c->n[SYNC_UPDATE]);
		tui_table_row_setf(r, COL_DEL, "%" PRId64, c->n[SYNC_DELETE]);
		tui_table_row_setf(r, COL_CONF, "%" PRId64, c->n[SYNC_CONFLICT]);
		tui_table_row_setf(r, COL_SAME, "%" PRId64, c->n[SYNC_UNCHANGED]);
		if (c->n[SYNC_CONFLICT] > 0)
			tui_table_row_role(r, COL_CONF, TUI_ROLE_DANGER);
		if (c->n[SYNC_DELETE] > 0 && t->pt->delete_rows)
			tui_table_row_role(r, COL_DEL, TUI_ROLE_DANGER);
	} else {
		for (int c = COL_INS; c <= COL_SAME; c++)
			tui_table_row_set(r, c, "-");
	}
	enum tui_role role;
	const char *s = state_text(t, &role);
	if (t->state == SY_APPLYING && t->phase)
		tui_table_row_setf(r, COL_STATE, "%s: %s", s, t->phase);
	else
		tui_table_row_set(r, COL_STATE, s);
	tui_table_row_role(r, COL_STATE, role);
}

/* A value for people: NULL, or single-quoted with quotes doubled and control characters escaped. */
static void
value_text(struct strbuf *sb, const char *v)
{
	if (v == NULL) {
		strbuf_adds(sb, "NULL");
		return;
	}
	strbuf_addc(sb, '\'');
	for (const char *p = v; *p; p++) {
		unsigned char c = (unsigned char)*p;
		if (c == '\'')
			strbuf_adds(sb, "''");
		else if (c == '\n')
			strbuf_adds(sb, "\\n");
		else if (c == '\t')
			strbuf_adds(sb, "\\t");
		else if (c == '\r')
			strbuf_adds(sb, "\\r");
		else if (c < 0x20 || c == 0x7f)
			strbuf_addf(sb, "\\x%02x", c);
		else
			strbuf_addc(sb, (char)c);
	}
	strbuf_addc(sb, '\'');
}

/* "id=5" or "a=1, b='x'": the row's key. */
static void
row_key(const struct sy_table *t, const struct sy_row *r, struct strbuf *sb)
{
	char **vals = r->src ? r->src : r->dst;
	for (size_t i = 0; i < t->nkey && vals; i++) {
		strbuf_addf(sb, "%s%s=", i ? ", " : "", t->cols[i]);
		if (vals[i] == NULL)
			strbuf_adds(sb, "NULL");
		else
			strbuf_adds(sb, vals[i]);
	}
}

static bool
row_matches(const struct sy_table *t, const struct sy_row *r, const char *needle)
{
	if (needle[0] == '\0')
		return true;
	for (size_t i = 0; i < t->ncols; i++) {
		if (r->src && r->src[i] && strstr(r->src[i], needle))
			return true;
		if (r->dst && r->dst[i] && strstr(r->dst[i], needle))
			return true;
	}
	struct strbuf sb = { 0 };
	row_key(t, r, &sb);
	bool m = sb.buf && strstr(sb.buf, needle);
	strbuf_release(&sb);
	return m;
}

static struct sy_table *
drill_table(struct sy_screen *ss)
{
	struct wiz_sync_state *st = ss->wz->sync.st;
	if (st == NULL || ss->drill < 0 || (size_t)ss->drill >= st->ntables)
		return NULL;
	return &st->tables[ss->drill];
}

static void
build_index(struct sy_screen *ss)
{
	struct sy_table *t = drill_table(ss);
	ss->stale = false;
	free(ss->idx);
	ss->idx = NULL;
	ss->nidx = 0;
	if (t == NULL)
		return;
	ss->idx = xcalloc(t->rows.n + 1, sizeof *ss->idx);
	for (size_t i = 0; i < t->rows.n; i++) {
		const struct sy_row *r = &t->rows.items[i];
		if (ss->filter != SYNC_KIND_COUNT && r->kind != ss->filter)
			continue;
		if (!row_matches(t, r, ss->search))
			continue;
		ss->idx[ss->nidx++] = i;
	}
	if (ss->cursor >= (long)ss->nidx)
		ss->cursor = ss->nidx ? (long)ss->nidx - 1 : 0;
	if (ss->cursor < 0)
		ss->cursor = 0;
	if (ss->top > ss->cursor)
		ss->top = ss->cursor;
}

static enum tui_role
kind_role(enum sync_kind k)
{
	switch (k) {
	case SYNC_INSERT: return TUI_ROLE_OK;
	case SYNC_UPDATE: return TUI_ROLE_WARN;
	case SYNC_DELETE: return TUI_ROLE_DANGER;
	case SYNC_CONFLICT: return TUI_ROLE_DANGER;
	default: return TUI_ROLE_MUTED;
	}
}

/* The lines one row takes in the drill-down. */
static int
row_height(const struct sy_table *t, const struct sy_row *r)
{
	if (r->changed == NULL)
		return 2;
	int n = 1;
	for (size_t i = 0; i < t->ncols; i++)
		n += r->changed[i];
	return n;
}

/*
 * Draws pieces one after another on row y from column x, w columns, the first skip columns left
 * out; returns the width of all the pieces (drawn or not).
 */
static int
put_pieces(WINDOW *win, int y, int x, int w, int skip, const char *const *pieces, const enum tui_role *roles,
           int n)
{
	int cx = x, room = w, total = 0;
	for (int i = 0; i < n; i++) {
		int pw = tui_text_width(pieces[i]);
		total += pw;
		if (room <= 0)
			continue;
		if (skip >= pw) {
			skip -= pw;
			continue;
		}
		int wrote = tui_text_put(win, y, cx, pieces[i], skip, room, tui_attr(roles[i]), false);
		skip = 0;
		cx += wrote;
		room -= wrote;
	}
	return total;
}

/* value_text(), then, when the value was cut for the view, how much of it is shown. */
static void
value_show(struct strbuf *sb, const char *v, const size_t *full, size_t i)
{
	value_text(sb, v);
	if (v && full && full[i])
		strbuf_addf(sb, "... (cut: %zu of %zu bytes shown)", strlen(v), full[i]);
}

/* For a changed column of which a value was cut: where the full values first differ. */
static void
diff_where(struct strbuf *sb, const struct sy_row *r, size_t i)
{
	if (r->diff_at && ((r->src_full && r->src_full[i]) || (r->dst_full && r->dst_full[i])))
		strbuf_addf(sb, " (first differs at byte %zu)", r->diff_at[i] + 1);
}

/* The row's first line: kind, key and what happens to it. */
static void
row_head(const struct sy_table *t, const struct sy_row *r, struct strbuf *sb)
{
	strbuf_addf(sb, "%-13s", sync_kind_name(r->kind));
	row_key(t, r, sb);
	if (r->kind == SYNC_DELETE && !t->pt->delete_rows)
		strbuf_adds(sb, "   (only in the target: reported, not deleted)");
	if (r->kind == SYNC_DIFFERS_KEPT)
		strbuf_adds(sb, "   (the target's row is kept)");
}

/* Draws row r from line y (at most maxy); returns the next line. */
static int
draw_row(struct sy_screen *ss, WINDOW *win, const struct sy_table *t, const struct sy_row *r, bool cur, int y,
         int maxy, int x, int w)
{
	struct strbuf sb = { 0 };
	row_head(t, r, &sb);
	if (cur)
		tui_text_fill(win, y, x, w, tui_attr(TUI_ROLE_CURSOR));
	const char *p1[] = { sb.buf };
	enum tui_role r1[] = { cur ? TUI_ROLE_CURSOR : kind_role(r->kind) };
	int lw = put_pieces(win, y++, x, w, ss->xoff, p1, r1, 1);
	if (lw > ss->maxw)
		ss->maxw = lw;
	strbuf_release(&sb);
	if (y >= maxy)
		return y;
	if (r->changed == NULL) {
		/* An insert or a delete: the row's values on one line. */
		char **vals = r->src ? r->src : r->dst;
		const size_t *full = r->src ? r->src_full : r->dst_full;
		strbuf_adds(&sb, r->src ? "    new: " : "    target: ");
		for (size_t i = t->nkey; i < t->ncols; i++) {
			strbuf_addf(&sb, "%s%s=", i > t->nkey ? ", " : "", t->cols[i]);
			value_show(&sb, vals[i], full, i);
		}
		const char *p[] = { sb.buf };
		enum tui_role rr[] = { TUI_ROLE_NORMAL };
		lw = put_pieces(win, y++, x, w, ss->xoff, p, rr, 1);
		if (lw > ss->maxw)
			ss->maxw = lw;
		strbuf_release(&sb);
		return y;
	}
	/* Each changed column: old (the target's) -> new (the source's). */
	size_t left = 0;
	for (size_t i = 0; i < t->ncols; i++)
		left += r->changed[i];
	for (size_t i = 0; i < t->ncols && y < maxy; i++) {
		if (!r->changed[i])
			continue;
		if (left > 1 && y == maxy - 1) {
			/* The page ends inside the row: say so rather than cut it silently. */
			char *m = xasprintf("    ... %zu more changed columns: Enter shows the whole row", left);
			tui_text_put(win, y++, x, m, 0, w, tui_attr(TUI_ROLE_WARN), true);
			free(m);
			break;
		}
		left--;
		struct strbuf name = { 0 }, old = { 0 }, neu = { 0 };
		strbuf_addf(&name, "    %s%s: ", t->cols[i], i < t->nkey ? " (key)" : "");
		value_show(&old, r->dst[i], r->dst_full, i);
		value_show(&neu, r->src[i], r->src_full, i);
		diff_where(&neu, r, i);
		const char *p[] = { name.buf, old.buf, " -> ", neu.buf };
		bool kept = r->kind == SYNC_DIFFERS_KEPT;
		enum tui_role rr[] = { TUI_ROLE_NORMAL, kept ? TUI_ROLE_NORMAL : TUI_ROLE_DANGER, TUI_ROLE_MUTED,
		                       kept ? TUI_ROLE_MUTED : TUI_ROLE_OK };
		lw = put_pieces(win, y++, x, w, ss->xoff, p, rr, 4);
		if (lw > ss->maxw)
			ss->maxw = lw;
		strbuf_release(&name);
		strbuf_release(&old);
		strbuf_release(&neu);
	}
	return y;
}

static const char *
filter_name(enum sync_kind k)
{
	return k == SYNC_KIND_COUNT ? "all" : sync_kind_name(k);
}

static bool
drill_filtered(const struct sy_screen *ss)
{
	return ss->filter != SYNC_KIND_COUNT || ss->search[0] != '\0';
}

/* What Esc does to the open table's review mark, for the hint line. */
static const char *
drill_esc_hint(const struct sy_screen *ss, const struct sy_table *t)
{
	const struct wiz_sync_state *st = ss->wz->sync.st;
	if (t->reviewed)
		return "Esc back (reviewed already)";
	if (!has_changes(t) || t->state != SY_DIFFED)
		return "Esc back";
	if (st->rv == NULL)
		return "Esc back (no review loaded: not marked)";
	if (st->consumed)
		return "Esc back (review applied: not marked)";
	if (drill_filtered(ss))
		return "Esc back (NOT marked: filter/search on; 0 shows all)";
	return "Esc back, marks the table reviewed  C-c back";
}

/* Every line of the whole-row view: each column with its value(s), changed ones marked. */
static void
rowview_lines(const struct sy_table *t, const struct sy_row *r, int width, struct strlist *out,
              struct strlist *roles)
{
	for (size_t i = 0; i < t->ncols; i++) {
		struct strbuf sb = { 0 };
		bool changed = r->changed && r->changed[i];
		strbuf_addf(&sb, "%s%s%s: ", changed ? "* " : "  ", t->cols[i], i < t->nkey ? " (key)" : "");
		if (r->src && r->dst) {
			value_show(&sb, r->dst[i], r->dst_full, i);
			if (changed) {
				strbuf_adds(&sb, " -> ");
				value_show(&sb, r->src[i], r->src_full, i);
				diff_where(&sb, r, i);
			} else {
				strbuf_adds(&sb, " (same)");
			}
		} else if (r->src) {
			value_show(&sb, r->src[i], r->src_full, i);
		} else {
			value_show(&sb, r->dst[i], r->dst_full, i);
		}
		size_t before = out->len;
		tui_text_wrap(sb.buf, width, out);
		for (size_t k = before; k < out->len; k++)
			strlist_push(roles, changed ? (r->kind == SYNC_DIFFERS_KEPT ? "m" : "w") : "n");
		strbuf_release(&sb);
	}
}

static void
rowview_draw(struct sy_screen *ss, WINDOW *win, const struct sy_table *t, int h, int w)
{
	int cw = w - 2, y = 0;
	const struct sy_row *r = &t->rows.items[ss->idx[ss->cursor]];
	struct strbuf sb = { 0 };
	strbuf_addf(&sb, "Sync: row of %s: ", t->display);
	row_head(t, r, &sb);
	struct strlist hl = { 0 };
	tui_text_wrap(sb.buf, cw, &hl);
	for (size_t k = 0; k < hl.len && k < 2; k++)
		tui_text_put(win, y++, 1, hl.items[k], 0, cw, tui_attr(TUI_ROLE_HEADER), true);
	strlist_free(&hl);
	strbuf_release(&sb);
	tui_text_put(win, y++, 1, r->src && r->dst ? "Old (target) -> new (source); * changed" :
	             r->src ? "Every column of the source's row" : "Every column of the target's row", 0, cw,
	             tui_attr(TUI_ROLE_MUTED), true);
	tui_text_put(win, y++, 1, "Up/Down PgUp/PgDn scroll  Esc back to the rows", 0, cw, tui_attr(TUI_ROLE_MUTED),
	             true);
	struct strlist lines = { 0 }, roles = { 0 };
	rowview_lines(t, r, cw, &lines, &roles);
	int room = h - 1 - y;
	if (room < 1)
		room = 1;
	ss->vlines = (long)lines.len;
	ss->vpage = room;
	if (ss->vtop > ss->vlines - room)
		ss->vtop = ss->vlines - room;
	if (ss->vtop < 0)
		ss->vtop = 0;
	for (long k = ss->vtop; k < (long)lines.len && y < h - 1; k++) {
		char c = roles.items[k][0];
		enum tui_role role = c == 'w' ? TUI_ROLE_WARN : c == 'm' ? TUI_ROLE_MUTED : TUI_ROLE_NORMAL;
		tui_text_put(win, y++, 1, lines.items[k], 0, cw, tui_attr(role), true);
	}
	long last = ss->vtop + room < (long)lines.len ? ss->vtop + room : (long)lines.len;
	char *p = xasprintf("lines %ld-%ld of %zu", lines.len ? ss->vtop + 1 : 0, last, lines.len);
	int pw = tui_text_width(p);
	tui_text_put(win, h - 1, w - 1 - pw, p, 0, pw, tui_attr(TUI_ROLE_MUTED), false);
	free(p);
	strlist_free(&lines);
	strlist_free(&roles);
}

static void
drill_draw(struct sy_screen *ss, struct screen *s, int h, int w)
{
	WINDOW *win = s->win;
	struct sy_table *t = drill_table(ss);
	if (t == NULL)
		return;
	if (ss->stale)
		build_index(ss);
	if (ss->rowview && ss->cursor >= 0 && ss->cursor < (long)ss->nidx) {
		rowview_draw(ss, win, t, h, w);
		return;
	}
	ss->rowview = false;
	int cw = w - 2, y = 0;
	char *title = xasprintf("Sync: rows of %s (%s -> %s)", t->display,
	                        ss->wz->plan->source ? ss->wz->plan->source : "?", ss->wz->plan->target);
	tui_text_put(win, y++, 1, title, 0, cw, tui_attr(TUI_ROLE_HEADER), true);
	free(title);
	struct strbuf sb = { 0 };
	strbuf_addf(&sb, "%zu row%s shown (filter: %s%s%s%s)", ss->nidx, ss->nidx == 1 ? "" : "s",
	            filter_name(ss->filter), ss->search[0] ? ", search \"" : "", ss->search,
	            ss->search[0] ? "\"" : "");
	if ((int64_t)t->rows.n < t->rows.total)
		strbuf_addf(&sb, "; first %zu of %" PRId64 " rows kept here (at most " SY_KEEP_TEXT "), the review "
		            "file has every row written", t->rows.n, t->rows.total);
	else
		strbuf_addf(&sb, " of %" PRId64 "", t->rows.total);
	struct strlist wr = { 0 };
	tui_text_wrap(sb.buf, cw, &wr);
	for (size_t k = 0; k < wr.len && k < 3; k++)
		tui_text_put(win, y++, 1, wr.items[k], 0, cw, tui_attr(TUI_ROLE_NORMAL), true);
	strlist_free(&wr);
	strbuf_release(&sb);
	tui_text_put(win, y++, 1, "Enter whole row  1-5/f filter  0 all  / search", 0, cw, tui_attr(TUI_ROLE_MUTED),
	             true);
	tui_text_put(win, y++, 1, drill_esc_hint(ss, t), 0, cw, tui_attr(drill_filtered(ss) && !t->reviewed &&
	             has_changes(t) ? TUI_ROLE_WARN : TUI_ROLE_MUTED), true);
	tui_text_put(win, y++, 1, "old (target) -> new (source)", 0, cw, tui_attr(TUI_ROLE_MUTED), true);
	int maxy = h - 1;   /* the last line: the search prompt or a message */
	int first = y;
	/* Scroll so that the cursor row is whole on the page. */
	if (ss->cursor < ss->top)
		ss->top = ss->cursor;
	for (;;) {
		int used = 0;
		long k;
		for (k = ss->top; k <= ss->cursor && k < (long)ss->nidx; k++)
			used += row_height(t, &t->rows.items[ss->idx[k]]);
		if (used <= maxy - first || ss->top >= ss->cursor)
			break;
		ss->top++;
	}
	int page = 0;
	ss->maxw = 0;
	ss->width = cw;
	for (long k = ss->top; k < (long)ss->nidx && y < maxy; k++, page++)
		y = draw_row(ss, win, t, &t->rows.items[ss->idx[k]], k == ss->cursor, y, maxy, 1, cw);
	ss->page = page > 1 ? page - 1 : 1;
	if (ss->nidx == 0)
		tui_text_put(win, first, 1, t->rows.total ? "No row matches the filter and search." :
		             "No changed rows: every row is the same on both sides.", 0, cw, tui_attr(TUI_ROLE_MUTED),
		             true);
	if (ss->prompt) {
		char *p = xasprintf("/%.*s", (int)ss->input_len, ss->input);
		tui_text_put(win, h - 1, 1, p, 0, cw, tui_attr(TUI_ROLE_CURSOR), true);
		int cx = 1 + tui_text_width(p);
		free(p);
		tui_screen_show_cursor(s, h - 1, cx < w ? cx : w - 1);
	} else if (ss->nidx) {
		char *p = xasprintf("row %ld of %zu", ss->cursor + 1, ss->nidx);
		int pw = tui_text_width(p);
		tui_text_put(win, h - 1, w - 1 - pw, p, 0, pw, tui_attr(TUI_ROLE_MUTED), false);
		free(p);
	}
}

static void
set_note(struct sy_screen *ss, char *note)
{
	free(ss->note);
	ss->note = note;
}

static void
drill_open(struct sy_screen *ss, long row)
{
	struct wiz_sync_state *st = ss->wz->sync.st;
	if (st == NULL || row < 0 || (size_t)row >= st->ntables) {
		tui_message(ss->wz->app, "Rows", "Skipped tables are not synced: nothing to review.", TUI_ROLE_NORMAL,
		            NULL, NULL);
		return;
	}
	struct sy_table *t = &st->tables[row];
	if (t->state == SY_DIFF_FAILED) {
		char *m = xasprintf("%s could not be diffed: %s\n\nFix it, then F5 (or d) diffs again.", t->display,
		                    t->error ? t->error : "the diff stopped before this table ended");
		tui_message(ss->wz->app, "Rows", m, TUI_ROLE_DANGER, NULL, NULL);
		free(m);
		return;
	}
	if (t->state == SY_PENDING || t->state == SY_DIFFING || t->cols == NULL) {
		tui_message(ss->wz->app, "Rows", t->state == SY_DIFFING ? "This table is being diffed: its rows come "
		            "when it is done." : "This table is not diffed yet. F5 (or d) runs the diff.",
		            TUI_ROLE_NORMAL, NULL, NULL);
		return;
	}
	ss->drill = row;
	ss->filter = SYNC_KIND_COUNT;
	ss->search[0] = '\0';
	ss->prompt = false;
	ss->rowview = false;
	ss->cursor = ss->top = 0;
	ss->xoff = 0;
	ss->stale = true;
}

/*
 * Marks t reviewed (journaled as a sync_reviewed step with the loaded review's checksum and the
 * table's digest). Only while a review is loaded and not yet applied.
 */
static void
review_mark(struct wizard *wz, struct sy_table *t)
{
	struct wiz_sync_state *st = wz->sync.st;
	const char *digest = "";
	for (size_t i = 0; i < st->rv->ntables; i++)
		if (strcmp(st->rv->tables[i].display, t->display) == 0)
			digest = st->rv->tables[i].digest;
	t->reviewed = true;
	wz->sync.gen++;
	const struct sync_counts *c = &t->counts;
	char *shown = (int64_t)t->rows.n < t->rows.total ?
	              xasprintf("; first %zu of %" PRId64 " rows shown", t->rows.n, t->rows.total) : xstrdup("");
	json_t *d = json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:s}", "kind", "sync_reviewed", "table",
	                      t->display, "review", st->review_path ? st->review_path : st->rv->path,
	                      "review_sha256", st->rv->file_sha256, "digest", digest,
	                      "rows_shown", (json_int_t)t->rows.n, "rows", (json_int_t)t->rows.total,
	                      "by", util_user_name());
	events_emitf(wz->bus, EV_STEP, STAGE, d, "%s reviewed by %s: %" PRId64 " to insert, %" PRId64 " to update, %"
	             PRId64 " to delete, %" PRId64 " conflicts%s", t->display, util_user_name(), c->n[SYNC_INSERT],
	             c->n[SYNC_UPDATE], c->n[SYNC_DELETE], c->n[SYNC_CONFLICT], shown);
	json_decref(d);
	free(shown);
}

/*
 * Leaves the drill-down. Esc from the unfiltered view of a table with changes marks it reviewed
 * while a review is loaded; otherwise (a filter or search hid rows, Ctrl-C, no review) the table
 * is not marked and the status line says so and how to mark it.
 */
static void
drill_close(struct sy_screen *ss, bool esc)
{
	struct sy_table *t = drill_table(ss);
	struct wizard *wz = ss->wz;
	struct wiz_sync_state *st = wz->sync.st;
	bool filtered = drill_filtered(ss);
	ss->drill = -1;
	ss->prompt = false;
	ss->rowview = false;
	free(ss->idx);
	ss->idx = NULL;
	ss->nidx = 0;
	if (t == NULL || t->reviewed || !has_changes(t) || t->state != SY_DIFFED)
		return;
	if (st->rv == NULL)
		set_note(ss, xasprintf("%s was not marked reviewed: no review is loaded. F5 (or d) diffs and saves "
		                       "one.", t->display));
	else if (st->consumed)
		set_note(ss, xasprintf("%s was not marked reviewed: its review was applied already. F5 (or d) diffs "
		                       "again.", t->display));
	else if (!esc)
		set_note(ss, xasprintf("%s was not marked reviewed (Ctrl-C). Enter, then Esc with every row shown "
		                       "marks it.", t->display));
	else if (filtered)
		set_note(ss, xasprintf("%s was not marked reviewed: a filter or search hid rows. Enter, then Esc "
		                       "with every row shown (0, no search) marks it.", t->display));
	else
		review_mark(wz, t);
}

static void
set_filter(struct sy_screen *ss, enum sync_kind k)
{
	ss->filter = k;
	ss->cursor = ss->top = 0;
	ss->xoff = 0;
	ss->stale = true;
}

static enum key_result
rowview_key(struct sy_screen *ss, enum command cmd)
{
	long page = ss->vpage > 1 ? ss->vpage - 1 : 1;
	switch (cmd) {
	case CMD_CANCEL:
	case CMD_SELECT:
		ss->rowview = false;
		return KEY_RESULT_HANDLED;
	case CMD_UP: ss->vtop--; break;
	case CMD_DOWN: ss->vtop++; break;
	case CMD_PAGE_UP: ss->vtop -= page; break;
	case CMD_PAGE_DOWN: ss->vtop += page; break;
	case CMD_HOME: ss->vtop = 0; break;
	case CMD_END: ss->vtop = ss->vlines; break;
	default:
		return KEY_RESULT_PASS;
	}
	if (ss->vtop > ss->vlines - ss->vpage)
		ss->vtop = ss->vlines - ss->vpage;
	if (ss->vtop < 0)
		ss->vtop = 0;
	return KEY_RESULT_HANDLED;
}

static enum key_result
drill_key(struct sy_screen *ss, enum command cmd, int raw)
{
	if (ss->rowview)
		return rowview_key(ss, cmd);
	if (ss->prompt) {
		if (raw == TUI_KEY_ESC || raw == TUI_CTRL('c')) {
			ss->prompt = false;
		} else if (raw == TUI_KEY_ENTER) {
			memcpy(ss->search, ss->input, ss->input_len);
			ss->search[ss->input_len] = '\0';
			ss->prompt = false;
			ss->cursor = ss->top = 0;
			ss->xoff = 0;
			ss->stale = true;
		} else if (raw == TUI_KEY_BACKSPACE) {
			ss->input_len = tui_text_prev(ss->input, ss->input_len);
		} else if (raw == TUI_CTRL('u')) {
			ss->input_len = 0;
		} else if (tui_key_is_text(raw)) {
			char enc[5];
			size_t n = tui_text_encode(raw, enc);
			if (ss->input_len + n < sizeof ss->input) {
				memcpy(ss->input + ss->input_len, enc, n);
				ss->input_len += n;
			}
		}
		return KEY_RESULT_HANDLED;
	}
	long page = ss->page > 0 ? ss->page : 1;
	int xmax;
	switch (cmd) {
	case CMD_CANCEL:
		drill_close(ss, raw != TUI_CTRL('c'));
		return KEY_RESULT_HANDLED;
	case CMD_SELECT:
		if (ss->nidx > 0) {
			ss->rowview = true;
			ss->vtop = 0;
		}
		return KEY_RESULT_HANDLED;
	case CMD_SEARCH:
		ss->prompt = true;
		ss->input_len = strlen(ss->search);
		memcpy(ss->input, ss->search, ss->input_len);
		return KEY_RESULT_HANDLED;
	case CMD_UP: ss->cursor--; break;
	case CMD_DOWN: ss->cursor++; break;
	case CMD_PAGE_UP: ss->cursor -= page; ss->top -= page; break;
	case CMD_PAGE_DOWN: ss->cursor += page; ss->top = ss->cursor; break;
	case CMD_HOME: ss->cursor = 0; break;
	case CMD_END: ss->cursor = (long)ss->nidx - 1; break;
	case CMD_LEFT: ss->xoff = ss->xoff > 8 ? ss->xoff - 8 : 0; return KEY_RESULT_HANDLED;
	case CMD_RIGHT:
		/* Up to the end of the widest line of the page, no further. */
		xmax = ss->maxw - ss->width;
		if (ss->xoff + 8 <= xmax)
			ss->xoff += 8;
		else if (xmax > ss->xoff)
			ss->xoff = xmax;
		return KEY_RESULT_HANDLED;
	case CMD_NONE:
		if (raw == 'f') {
			size_t n = RB_ARRAY_LEN(filter_cycle), i;
			for (i = 0; i < n && filter_cycle[i] != ss->filter; i++)
				;
			set_filter(ss, filter_cycle[(i + 1) % n]);
			return KEY_RESULT_HANDLED;
		}
		if (raw >= '0' && raw <= '5') {
			set_filter(ss, filter_cycle[raw - '0']);
			return KEY_RESULT_HANDLED;
		}
		return KEY_RESULT_PASS;
	default:
		return KEY_RESULT_PASS;
	}
	if (ss->cursor >= (long)ss->nidx)
		ss->cursor = (long)ss->nidx - 1;
	if (ss->cursor < 0)
		ss->cursor = 0;
	if (ss->top < 0)
		ss->top = 0;
	if (ss->top > ss->cursor)
		ss->top = ss->cursor;
	return KEY_RESULT_HANDLED;
}

/* --- apply: the checks, the phrases, then the worker --- */


/* The typed phrases, asked in order: apply, then the protected overwrite, then the delete. */
struct sy_confirm {
	struct wizard *wz;
	int            step;       /* 0 apply, 1 overwrite, 2 delete */
	char          *phrase;     /* of the open prompt */
	char          *typed[3];
};

static void confirm_next(struct sy_confirm *c);

static void
confirm_free(struct sy_confirm *c)
{
	free(c->phrase);
	for (int i = 0; i < 3; i++)
		free(c->typed[i]);
	free(c);
}

static void
confirm_miss_cb(void *ud, const char *typed, int misses)
{
	(void)misses;
	struct sy_confirm *c = ud;
	wizard_confirm_miss(c->wz, STAGE, c->phrase, typed);
}

static void
confirm_done_cb(void *ud, enum tui_confirm_result r, const char *typed)
{
	struct sy_confirm *c = ud;
	struct wizard *wz = c->wz;
	if (r == TUI_CONFIRM_OK) {
		c->typed[c->step] = xstrdup(typed);   /* what was typed: core compares it again */
		c->step++;
		confirm_next(c);
		return;
	}
	if (r == TUI_CONFIRM_REFUSED)
		events_log(wz->bus, LOG_LEVEL_WARN, STAGE, "sync apply refused after 3 wrong phrases; nothing was "
		           "written");
	else
		events_log(wz->bus, LOG_LEVEL_INFO, STAGE, "sync apply cancelled at the confirmation; nothing was "
		           "written");
	confirm_free(c);
}

/* Opens the prompt of step c->step, skipping the steps this apply does not need; then applies. */
static void
confirm_next(struct sy_confirm *c)
{
	struct wizard *wz = c->wz;
	struct wiz_sync_state *st = model(wz);
	const struct sync_apply_needs *nd = &st->needs;
	if (c->step == 1 && nd->overwrite_tables.len == 0)
		c->step++;
	if (c->step == 2 && nd->delete_phrase == NULL)
		c->step++;
	if (c->step > 2) {
		apply_start(wz, c->typed[0], c->typed[1], c->typed[2]);
		confirm_free(c);
		return;
	}
	struct strlist details = { 0 };
	char *action, *title;
	free(c->phrase);
	if (c->step == 0) {
		c->phrase = xstrdup(nd->phrase);
		title = xstrdup("Apply the sync");
		action = xasprintf("write %" PRId64 " insert%s, %" PRId64 " update%s and %" PRId64 " delete%s into %s, "
		                   "table by table, exactly as reviewed", nd->inserts, nd->inserts == 1 ? "" : "s",
		                   nd->updates, nd->updates == 1 ? "" : "s", nd->deletes, nd->deletes == 1 ? "" : "s",
		                   nd->database);
		for (size_t i = 0; i < st->ntables; i++) {
			const struct sy_table *t = &st->tables[i];
			int64_t del = t->pt->delete_rows ? t->counts.n[SYNC_DELETE] : 0;
			const char *prot = t->pt->protected_ ? " (protected)" : "";
			strlist_push_owned(&details, xasprintf("%s%s: %" PRId64 " insert, %" PRId64 " update, %"
			                                       PRId64 " delete", t->display, prot,
			                                       t->counts.n[SYNC_INSERT], t->counts.n[SYNC_UPDATE],
			                                       del));
		}
		if (nd->overwrite_tables.len)
			strlist_push(&details, "Then: the protected-overwrite phrase.");
		if (nd->delete_phrase)
			strlist_push(&details, "Then: the delete phrase.");
	} else if (c->step == 1) {
		c->phrase = xstrdup(CONFIRM_OVERWRITE_PHRASE);
		title = xstrdup("Overwrite protected tables");
		action = xstrdup("change existing rows of protected tables (typing the phrase is the override)");
		for (size_t i = 0; i < nd->overwrite_tables.len; i++)
			strlist_push_owned(&details, xasprintf("protected: %s", nd->overwrite_tables.items[i]));
	} else {
		c->phrase = xstrdup(nd->delete_phrase);
		title = xstrdup("Delete rows");
		action = xasprintf("delete %" PRId64 " row%s that exist only in %s (plan delete: true)", nd->deletes,
		                   nd->deletes == 1 ? "" : "s", nd->database);
		for (size_t i = 0; i < st->ntables; i++) {
			const struct sy_table *t = &st->tables[i];
			if (t->pt->delete_rows && t->counts.n[SYNC_DELETE] > 0)
				strlist_push_owned(&details, xasprintf("%s: %" PRId64 " row%s deleted", t->display,
				                                       t->counts.n[SYNC_DELETE],
				                                       t->counts.n[SYNC_DELETE] == 1 ? "" : "s"));
		}
	}
	const char **lines = xcalloc(details.len + 1, sizeof *lines);
	for (size_t i = 0; i < details.len; i++)
		lines[i] = details.items[i];
	json_t *tr = wizard_target_result(wz);
	const char *where = tr ? json_string_value(json_object_get(tr, "where")) : NULL;
	struct tui_confirm_opts o = {
		.title = title,
		.action = action,
		.environment = wz->plan->target,
		.prod = true,
		.target = where ? where : nd->database,
		.details = lines,
		.phrase = c->phrase,
		.miss = confirm_miss_cb,
		.done = confirm_done_cb,
		.ud = c,
	};
	if (tui_confirm(wz->app, &o) == NULL)
		confirm_free(c);
	free(lines);
	strlist_free(&details);
	free(title);
	free(action);
}

static void apply_go(struct wizard *wz);

/* The backup waiver for a plan without a backup stage, as on the migrate screen; then the apply goes on. */
static void
waiver_open(struct wizard *wz, const char *db)
{
	static const char *const details[] = {
		"This plan has no backup stage: applying the sync needs a verified backup of this run, or the backup "
		"waived.",
		"If the sync goes wrong, there is no backup of this run to restore.",
		"After the waiver the apply goes on with its own phrases.",
		NULL,
	};
	wizard_backup_waiver_open(wz, db, "apply the sync without a verified backup (journaled as waived)", details,
	                          "nothing was written", apply_go);
}

/* Why an apply cannot start now, or NULL. Caller frees. */
static char *
apply_blocked(struct wizard *wz, enum tui_role *role)
{
	struct wiz_sync_state *st = model(wz);
	*role = TUI_ROLE_DANGER;
	if (wz->worker)
		return xstrdup(wizard_running(wz, PLAN_STAGE_SYNC) ? (st->applying ? "An apply is running already." :
		               "The diff is running: wait until it ends.") : "Wait until the running stage ends.");
	if (st->consumed)
		return xstrdup("The last apply used this review. F5 (or d) diffs again before another apply.");
	if (!st->diffed)
		return xstrdup("Apply refused: nothing is diffed yet. F5 (or d) diffs every table (read-only) and "
		               "saves the review; then review each table with changes (Enter) and press F2.");
	if (!st->diff_ok || st->rv == NULL) {
		struct strbuf sb = { 0 };
		strbuf_addf(&sb, "Apply refused: the last diff did not produce a review (%s). Nothing was written.",
		            st->error ? st->error : "see the log");
		for (size_t i = 0; i < st->ntables; i++)
			if (st->tables[i].state == SY_DIFF_FAILED)
				strbuf_addf(&sb, "\n%s: %s", st->tables[i].display,
				            st->tables[i].error ? st->tables[i].error : "failed");
		return strbuf_detach(&sb);
	}
	const struct sync_apply_needs *nd = &st->needs;
	if (nothing_to_apply(st)) {
		*role = TUI_ROLE_OK;
		return xasprintf("Nothing to apply: %s already has every row the plan syncs (rows kept as they are and "
		                 "rows only in the target are not written). The sync stage is done.", nd->database);
	}
	struct strbuf sb = { 0 };
	size_t n = 0;
	for (size_t i = 0; i < st->ntables; i++) {
		const struct sy_table *t = &st->tables[i];
		if (has_changes(t) && !t->reviewed)
			strbuf_addf(&sb, "%s%s", n++ ? ", " : "", t->display);
	}
	if (n) {
		char *m = xasprintf("Apply refused: %zu table%s with changes not reviewed yet: %s.\n\nEnter opens a "
		                    "table's rows; leaving them with Esc while every row is shown (no filter, no "
		                    "search) marks the table reviewed. Nothing was written.", n, n == 1 ? "" : "s",
		                    sb.buf);
		strbuf_release(&sb);
		return m;
	}
	strbuf_release(&sb);
	if (nd->refusals.len) {
		strbuf_adds(&sb, "Apply refused: nothing may be written while:");
		for (size_t i = 0; i < nd->refusals.len; i++)
			strbuf_addf(&sb, "\n- %s", nd->refusals.items[i]);
		strbuf_adds(&sb, "\n\nChange the plan or the data, then diff again. Nothing was written.");
		return strbuf_detach(&sb);
	}
	return NULL;
}

static void
apply_ask(struct wizard *wz)
{
	enum tui_role role;
	char *why = apply_blocked(wz, &role);
	if (why) {
		if (role == TUI_ROLE_OK)
			nothing_done(wz, model(wz));
		tui_message(wz->app, role == TUI_ROLE_OK ? "Apply" : "Apply refused", why, role, NULL, NULL);
		free(why);
		return;
	}
	struct wiz_sync_state *st = model(wz);
	char *missing = wizard_backup_missing(wz, st->needs.database, "Applying the sync", "Nothing was written.");
	if (missing && !plan_stage_enabled(wz->plan, PLAN_STAGE_BACKUP)) {
		free(missing);
		waiver_open(wz, st->needs.database);   /* no backup stage to go to: the waiver, here */
		return;
	}
	if (missing) {
		tui_message(wz->app, "Apply refused: no backup", missing, TUI_ROLE_DANGER, NULL, NULL);
		free(missing);
		return;
	}
	apply_go(wz);
}

/* The apply after its preconditions: the phrases in order. */
static void
apply_go(struct wizard *wz)
{
	enum tui_role role;
	char *why = apply_blocked(wz, &role);
	if (why) {
		tui_message(wz->app, "Apply", why, role, NULL, NULL);
		free(why);
		return;
	}
	struct sy_confirm *c = xcalloc(1, sizeof *c);
	c->wz = wz;
	const struct sync_apply_needs *nd = &model(wz)->needs;
	events_log(wz->bus, LOG_LEVEL_INFO, STAGE, "sync apply needs the typed phrase%s",
	           nd->overwrite_tables.len || nd->delete_phrase ? "s" : "");
	confirm_next(c);
}

static void
cancel_done_cb(void *ud, bool yes)
{
	struct wizard *wz = ud;
	if (yes && wizard_running(wz, PLAN_STAGE_SYNC) && wz->sync.st && wz->sync.st->applying) {
		tui_worker_cancel(wz->worker);
		tui_log_add(wz->log, TUI_LOG_WARN, "sync: cancelling the apply: the running table rolls back, later "
		            "ones are not touched");
	}
}

/* --- drawing the table of tables --- */

static char *
status_text(struct wizard *wz, enum tui_role *role)
{
	struct wiz_sync_state *st = model(wz);
	*role = TUI_ROLE_NORMAL;
	if (wizard_running(wz, PLAN_STAGE_SYNC) && st->applying) {
		*role = TUI_ROLE_WARN;
		return xstrdup("Applying, table by table...  (Esc cancels: the running table rolls back)");
	}
	if (wizard_running(wz, PLAN_STAGE_SYNC)) {
		size_t i = 0;
		const char *now = diffing_now(st, &i);
		*role = TUI_ROLE_WARN;
		if (now)
			return xasprintf("Diffing table %zu of %zu: %s (read-only)...  (Esc cancels)", i + 1,
			                 st->ntables, now);
		return xstrdup("Connecting to the source and the target (read-only)...  (Esc cancels)");
	}
	if (wz->worker) {
		*role = TUI_ROLE_WARN;
		return xasprintf("%s is running; the sync can start once it ends.", wizard_worker_name(wz->worker_stage));
	}
	if (st->applied) {
		if (st->apply_ok) {
			*role = TUI_ROLE_OK;
			return xstrdup("Applied: every table as reviewed. F5 (or d) diffs again.");
		}
		*role = TUI_ROLE_DANGER;
		char *e = error_text(&st->apply_err);
		char *m = xasprintf("%s: %s%s", st->apply_refused ? "Apply refused, nothing was written" :
		                    "Apply stopped", e, st->consumed ? "  (F5 diffs again)" : "");
		free(e);
		return m;
	}
	if (!st->diffed)
		return xstrdup("Not diffed yet. F5 (or d) compares every table (read-only) and saves the review file.");
	if (st->error) {
		*role = TUI_ROLE_DANGER;
		return xasprintf("Diff failed: %s  (F5 tries again)", st->error);
	}
	size_t todo = 0;
	for (size_t i = 0; i < st->ntables; i++)
		todo += has_changes(&st->tables[i]) && !st->tables[i].reviewed;
	char d[32];
	wizard_duration(st->diff_ms, d, sizeof d);
	const struct sync_apply_needs *nd = &st->needs;
	if (nd->refusals.len) {
		*role = TUI_ROLE_DANGER;
		return xasprintf("Diffed in %s. The apply would be refused: %s", d, nd->refusals.items[0]);
	}
	if (nothing_to_apply(st)) {
		*role = TUI_ROLE_OK;
		return xasprintf("Diffed in %s: nothing to apply; the sync stage is done.", d);
	}
	if (todo) {
		*role = TUI_ROLE_WARN;
		return xasprintf("Diffed in %s: %" PRId64 " to insert, %" PRId64 " to update, %" PRId64 " to delete. "
		                 "%zu table%s to review (Enter), then F2 applies.", d, nd->inserts, nd->updates,
		                 nd->deletes, todo, todo == 1 ? "" : "s");
	}
	*role = TUI_ROLE_OK;
	return xasprintf("Every table with changes is reviewed. F2 applies %" PRId64 " inserts, %" PRId64 " updates, %"
	                 PRId64 " deletes to %s.", nd->inserts, nd->updates, nd->deletes, nd->database);
}

/* The selected table in full: its settings, exact counts, error or apply result. */
static int
detail_draw(struct sy_screen *ss, WINDOW *win, int y, int h, int cw)
{
	struct wiz_sync_state *st = ss->wz->sync.st;
	long row = tui_table_cursor(ss->table);
	if (st && row >= 0 && (size_t)row >= st->ntables && (size_t)row - st->ntables < st->skipped.len && y < h) {
		size_t k = (size_t)row - st->ntables;
		char *m = xasprintf("%s: skipped (%s): not synced", st->skipped.items[k], st->skipped_why.items[k]);
		tui_text_put(win, y++, 1, m, 0, cw, tui_attr(TUI_ROLE_MUTED), true);
		free(m);
		return y;
	}
	if (st == NULL || row < 0 || (size_t)row >= st->ntables)
		return y;
	const struct sy_table *t = &st->tables[row];
	struct strlist lines = { 0 };
	enum tui_role roles[8];
	size_t n = 0;
	struct strbuf sb = { 0 };
	key_text(t, &sb);
	const char *key_from = t->cols ? (t->key_from_plan ? "plan" : "primary key") : "not resolved yet";
	enum tui_role srole;
	const char *state = state_text(t, &srole);
	strlist_push_owned(&lines, xasprintf("%s: %s; mode %s, key %s (%s), on_conflict %s, protected %s, delete %s",
	                                      t->display, state, plan_mode_name(t->pt->mode), sb.buf, key_from,
	                                      plan_on_conflict_name(t->pt->on_conflict),
	                                      t->pt->protected_ ? "yes" : "no", t->pt->delete_rows ? "yes" : "no"));
	roles[n++] = TUI_ROLE_NORMAL;
	strbuf_release(&sb);
	if (t->have_counts) {
		const struct sync_counts *c = &t->counts;
		const char *only = c->n[SYNC_DELETE] && !t->pt->delete_rows ? " (reported only)" : "";
		strlist_push_owned(&lines, xasprintf("to_insert %" PRId64 ", to_update %" PRId64 ", to_delete %" PRId64
		                                      "%s, conflicts %" PRId64 ", differs_kept %" PRId64 ", unchanged %"
		                                      PRId64 " (rows read: source %" PRId64 ", target %" PRId64 ")",
		                                      c->n[SYNC_INSERT], c->n[SYNC_UPDATE], c->n[SYNC_DELETE], only,
		                                      c->n[SYNC_CONFLICT], c->n[SYNC_DIFFERS_KEPT],
		                                      c->n[SYNC_UNCHANGED], c->source_rows, c->target_rows));
		roles[n++] = TUI_ROLE_NORMAL;
	}
	if (t->state == SY_APPLIED || t->state == SY_APPLY_FAILED || t->state == SY_NOT_REACHED ||
	    (t->state == SY_APPLYING && (t->inserted || t->updated || t->deleted))) {
		strlist_push_owned(&lines, xasprintf("apply: %s (%" PRId64 " inserted, %" PRId64 " updated, %" PRId64
		                                      " deleted)", t->state == SY_APPLIED ? "applied" :
		                                      t->state == SY_APPLY_FAILED ? "failed, rolled back" :
		                                      t->state == SY_NOT_REACHED ? "not reached, untouched" : "running",
		                                      t->inserted, t->updated, t->deleted));
		roles[n++] = t->state == SY_APPLIED ? TUI_ROLE_OK : t->state == SY_APPLYING ? TUI_ROLE_WARN :
		             TUI_ROLE_DANGER;
	}
	if (t->error) {
		strlist_push_owned(&lines, xasprintf("error: %s", t->error));
		roles[n++] = TUI_ROLE_DANGER;
	}
	for (size_t i = 0; i < lines.len && y < h; i++) {
		struct strlist wr = { 0 };
		tui_text_wrap(lines.items[i], cw, &wr);
		for (size_t k = 0; k < wr.len && y < h; k++)
			tui_text_put(win, y++, 1, wr.items[k], 0, cw, tui_attr(roles[i]), true);
		strlist_free(&wr);
	}
	strlist_free(&lines);
	return y;
}

/*
 * What the apply needs, once a review is loaded: the phrases and the protected tables, the
 * refusals, the review file; wrapped to cw, each line's role in roles (as 'd' danger, 'm' muted).
 */
static void
needs_lines(struct wiz_sync_state *st, int cw, struct strlist *out, struct strlist *roles)
{
	if (st->rv == NULL || st->consumed)
		return;
	const struct sync_apply_needs *nd = &st->needs;
	struct strbuf sb = { 0 };
	if (nothing_to_apply(st)) {
		strbuf_adds(&sb, "Nothing to apply: F2 asks for no phrase; the sync stage is done.");
	} else {
		strbuf_addf(&sb, "F2 asks for \"%s\"", nd->phrase ? nd->phrase : "?");
		if (nd->overwrite_tables.len) {
			strbuf_addf(&sb, ", then %s (protected tables whose rows change:", CONFIRM_OVERWRITE_PHRASE);
			for (size_t i = 0; i < nd->overwrite_tables.len; i++)
				strbuf_addf(&sb, " %s", nd->overwrite_tables.items[i]);
			strbuf_adds(&sb, ")");
		}
		if (nd->delete_phrase)
			strbuf_addf(&sb, ", then \"%s\"", nd->delete_phrase);
		strbuf_adds(&sb, ".");
	}
	size_t before = out->len;
	tui_text_wrap(sb.buf, cw, out);
	strbuf_release(&sb);
	for (size_t i = 0; i < nd->refusals.len; i++) {
		char *m = xasprintf("refused: %s", nd->refusals.items[i]);
		size_t b2 = out->len;
		tui_text_wrap(m, cw, out);
		free(m);
		for (; before < b2; before++)
			strlist_push(roles, "m");
		for (; before < out->len; before++)
			strlist_push(roles, "d");
	}
	const char *path = st->review_path ? st->review_path : st->rv->path;
	const char *base = strrchr(path, '/');
	/* Narrow: the file's name (the run directory is in the log and the journal). */
	char *f = cw < SY_WIDE && base ? xasprintf("Review file: %s in the run directory", base + 1) :
	          xasprintf("Review file: %s", path);
	tui_text_wrap(f, cw, out);
	free(f);
	for (; before < out->len; before++)
		strlist_push(roles, "m");
}

static int
sy_enter(struct screen *s, void *arg)
{
	(void)arg;
	struct sy_screen *ss = s->priv;
	ss->wz = tui_app_userdata(s->app);
	ss->drill = -1;
	ss->filter = SYNC_KIND_COUNT;
	model(ss->wz);
	ss->table = tui_table_new(columns, NCOLS, fill, ss);
	return 0;
}

/* The table of tables with the column set for width cw (the cursor kept). */
static void
table_fit(struct sy_screen *ss, int cw)
{
	bool narrow = cw < SY_WIDE;
	if (narrow == ss->narrow && ss->table)
		return;
	long cur = ss->table ? tui_table_cursor(ss->table) : 0;
	long n = ss->table ? tui_table_rows(ss->table) : 0;
	tui_table_free(ss->table);
	ss->table = tui_table_new(narrow ? columns_narrow : columns, NCOLS, fill, ss);
	ss->narrow = narrow;
	tui_table_set_rows(ss->table, n);
	if (cur > 0)
		tui_table_set_cursor(ss->table, cur);
}

static void
sy_draw(struct screen *s)
{
	struct sy_screen *ss = s->priv;
	struct wizard *wz = ss->wz;
	struct wiz_sync_state *st = model(wz);
	pull(st);
	int h, w;
	getmaxyx(s->win, h, w);
	if (ss->drill >= 0) {
		drill_draw(ss, s, h, w);
		return;
	}
	int cw = w - 2, y = 0;
	table_fit(ss, cw);
	char *title = xasprintf("Sync: %s -> %s, %zu table%s", wz->plan->source ? wz->plan->source : "?",
	                        wz->plan->target, st->ntables, st->ntables == 1 ? "" : "s");
	tui_text_put(s->win, y++, 1, title, 0, cw, tui_attr(TUI_ROLE_HEADER), true);
	free(title);
	struct strlist sl = { 0 };
	if (ss->note) {
		tui_text_wrap(ss->note, cw, &sl);
		for (size_t i = 0; i < sl.len && i < 3 && y < h; i++)
			tui_text_put(s->win, y++, 1, sl.items[i], 0, cw, tui_attr(TUI_ROLE_WARN), true);
		strlist_free(&sl);
	}
	enum tui_role role;
	char *status = status_text(wz, &role);
	tui_text_wrap(status, cw, &sl);
	free(status);
	for (size_t i = 0; i < sl.len && i < 3 && y < h; i++)
		tui_text_put(s->win, y++, 1, sl.items[i], 0, cw, tui_attr(role), true);
	strlist_free(&sl);

	long nrows = (long)(st->ntables + st->skipped.len);
	tui_table_set_rows(ss->table, nrows);
	int th = (int)nrows + 2;
	int tmax = h / 2 > 5 ? h / 2 : 5;
	if (th > tmax)
		th = tmax;
	if (th < 3)
		th = 3;
	if (y + th < h) {
		tui_table_draw(ss->table, s->win, (struct tui_rect){ y, 1, th, cw });
		y += th;
	}
	/* What F2 does comes first: the detail of the table gets what is left (at least two lines). */
	struct strlist nl = { 0 }, nr = { 0 };
	needs_lines(st, cw, &nl, &nr);
	int bottom = h - 1 - (int)nl.len;
	if (bottom < y + 2)
		bottom = y + 2 < h - 1 ? y + 2 : h - 1;
	y = detail_draw(ss, s->win, y, bottom, cw);
	for (size_t i = 0; i < nl.len && y < h - 1; i++)
		tui_text_put(s->win, y++, 1, nl.items[i], 0, cw,
		             tui_attr(nr.items[i][0] == 'd' ? TUI_ROLE_DANGER : TUI_ROLE_MUTED), true);
	strlist_free(&nl);
	strlist_free(&nr);
	if (y < h)
		tui_text_put(s->win, h - 1, 1, "Enter rows  F5/d diff  F2 apply  Esc cancel", 0, cw,
		             tui_attr(TUI_ROLE_MUTED), true);
}

static void
diff_answer(void *ud, bool yes)
{
	struct wizard *wz = ud;
	if (yes && !wizard_running(wz, PLAN_STAGE_SYNC))
		diff_start(wz);
	else if (!yes)
		tui_log_add(wz->log, TUI_LOG_INFO, "sync: the review and its marks are kept");
}

/*
 * d or F5: a new diff. While a loaded review has tables marked reviewed, asks first: the new diff
 * drops the review and every mark.
 */
static void
diff_ask(struct wizard *wz)
{
	struct wiz_sync_state *st = model(wz);
	if (wizard_running(wz, PLAN_STAGE_SYNC))
		return;
	size_t marked = 0;
	for (size_t i = 0; st->rv && !st->consumed && i < st->ntables; i++)
		marked += st->tables[i].reviewed;
	if (marked == 0) {
		diff_start(wz);
		return;
	}
	char *q = xasprintf("Diff again? The loaded review (%s) and the review marks of %zu table%s will be lost: "
	                    "each table with changes must be reviewed again before F2. y diffs again, n keeps them.",
	                    st->review_path ? st->review_path : "?", marked, marked == 1 ? "" : "s");
	tui_ask(wz->app, "Diff again", q, diff_answer, wz);
	free(q);
}

static enum key_result
sy_key(struct screen *s, enum command cmd, int raw)
{
	struct sy_screen *ss = s->priv;
	struct wizard *wz = ss->wz;
	struct wiz_sync_state *st = model(wz);
	if (ss->drill < 0)
		set_note(ss, NULL);
	if (ss->drill >= 0) {
		if (!ss->prompt && cmd == CMD_RUN_STAGE) {
			apply_ask(wz);
			return KEY_RESULT_HANDLED;
		}
		return drill_key(ss, cmd, raw);
	}
	if (tui_table_searching(ss->table))
		return tui_table_key(ss->table, cmd, raw);
	switch (cmd) {
	case CMD_RUN_STAGE:
		apply_ask(wz);
		return KEY_RESULT_HANDLED;
	case CMD_REFRESH:
		/* Ctrl-L only redraws; F5 diffs again. */
		if (raw != TUI_CTRL('l'))
			diff_ask(wz);
		tui_app_repaint(s->app);
		return KEY_RESULT_HANDLED;
	case CMD_SELECT:
		drill_open(ss, tui_table_cursor(ss->table));
		return KEY_RESULT_HANDLED;
	case CMD_CANCEL:
		if (wizard_running(wz, PLAN_STAGE_SYNC) && st->applying) {
			tui_ask(s->app, "Cancel the apply", "Cancel the apply? The running table's transaction rolls "
			        "back and the later tables are not touched; the tables already applied stay applied.",
			        cancel_done_cb, wz);
			return KEY_RESULT_HANDLED;
		}
		if (wizard_running(wz, PLAN_STAGE_SYNC)) {
			tui_worker_cancel(wz->worker);   /* a read-only diff: no question */
			tui_log_add(wz->log, TUI_LOG_WARN, "sync: cancelling the diff");
			return KEY_RESULT_HANDLED;
		}
		return KEY_RESULT_PASS;
	case CMD_SEARCH:
	case CMD_SEARCH_NEXT:
	case CMD_SEARCH_PREV:
		return tui_table_key(ss->table, cmd, raw);
	case CMD_NONE:
		if (raw == 'd') {
			diff_ask(wz);
			return KEY_RESULT_HANDLED;
		}
		return KEY_RESULT_PASS;
	default:
		return tui_table_command(ss->table, cmd) ? KEY_RESULT_HANDLED : KEY_RESULT_PASS;
	}
}

static void
sy_leave(struct screen *s)
{
	struct sy_screen *ss = s->priv;
	tui_table_free(ss->table);
	free(ss->idx);
	free(ss->note);
}

const struct screen_ops wiz_sync_screen = {
	.name = "sync",
	.priv_size = sizeof(struct sy_screen),
	.enter = sy_enter,
	.draw = sy_draw,
	.key = sy_key,
	.leave = sy_leave,
};
