/* migrate.c: the migrate screen: migrations with state and lint, their SQL classed, a deploy with its blockers. */
#include "config.h"

#include <inttypes.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/confirm.h"
#include "core/deploy.h"
#include "core/lint.h"
#include "core/migrations.h"
#include "core/util.h"
#include "screens/wizard.h"
#include "tui/confirm.h"
#include "tui/dialog.h"
#include "tui/table.h"
#include "tui/text.h"
#include "tui/textview.h"
#include "tui/theme.h"

/* The SQL margin: "dangerous PG101" and a space. */
#define MARGIN_W 16
/* At most this many blockers are listed; the rest are counted. */
#define MAX_BLOCKERS 3

enum { COL_NAME, COL_STATE, COL_CLASS, COL_MODE, NCOLS };

static const struct tui_table_column columns[NCOLS] = {
	[COL_NAME]  = { "migration", 0, 0, 40, false },
	[COL_STATE] = { "state", 0, 0, 16, false },
	[COL_CLASS] = { "lint", 0, 0, 10, false },
	[COL_MODE]  = { "runs as", 0, 0, 10, false },
};


static enum tui_role
class_role(enum lint_class c)
{
	return c == LINT_DANGEROUS ? TUI_ROLE_DANGER : c == LINT_RISKY ? TUI_ROLE_WARN : TUI_ROLE_OK;
}

static enum tui_role
state_role(enum mig_state s)
{
	switch (s) {
	case MIG_APPLIED: return TUI_ROLE_OK;
	case MIG_PENDING: return TUI_ROLE_NORMAL;
	default: return TUI_ROLE_DANGER;
	}
}

static const char *
jstr(json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

static long long
jint(json_t *o, const char *key)
{
	return (long long)json_integer_value(json_object_get(o, key));
}

static bool
jis(json_t *o, const char *key, const char *value)
{
	const char *s = jstr(o, key);
	return s && strcmp(s, value) == 0;
}

/* "1.2 s" for milliseconds into buf. */
static const char *
seconds(long long ms, char *buf, size_t size)
{
	snprintf(buf, size, "%.1f s", (double)(ms < 0 ? 0 : ms) / 1000.0);
	return buf;
}

/* --- the model: the preview and the deploy on the wizard's worker --- */

struct mg_work {
	struct wizard         *wz;
	bool                   deploy;
	char                  *confirm;  /* the typed phrase, or NULL */
	char                  *who;
	struct strlist         expect;   /* the pending migrations the person saw and confirmed */
	/* Filled by the worker. */
	bool                   ok;
	struct rb_error        err;
	struct deploy_preview *pv;
	json_t                *result;
};

static void
work_free(struct mg_work *job)
{
	if (job == NULL)
		return;
	free(job->confirm);
	free(job->who);
	strlist_free(&job->expect);
	rb_error_clear(&job->err);
	if (job->pv) {
		deploy_preview_free(job->pv);
		free(job->pv);
	}
	json_decref(job->result);
	free(job);
}

static void *
mg_main(void *arg, atomic_int *cancel)
{
	struct mg_work *job = arg;
	struct rb_ctx ctx = { .bus = job->wz->bus, .cancel = cancel };
	if (job->deploy) {
		struct deploy_opts opts = {
			.confirm = job->confirm,
			.backup_ok = true,   /* the screen checked: backup done or waived in this run */
			.who = job->who,
			.expect_pending = &job->expect,
		};
		job->ok = deploy_run(job->wz->plan, &opts, &ctx, &job->result, &job->err);
	} else {
		job->pv = xcalloc(1, sizeof *job->pv);
		job->ok = deploy_preview(job->wz->plan, NULL, &ctx, job->pv, &job->err);
	}
	/*
	 * No lint_shutdown() here: libpg_query frees this thread's memory when the thread ends (a
	 * thread-specific destructor); freeing it before that frees it twice.
	 */
	return job;
}

static void preview_start(struct wizard *w);

static void
drop_json(json_t **j)
{
	json_decref(*j);
	*j = NULL;
}

static void deploy_go(struct wizard *wz);

static void
retry_cb(void *ud, bool yes)
{
	struct wizard *wz = ud;
	if (yes)
		deploy_go(wz);
	else
		events_log(wz->bus, LOG_LEVEL_INFO, DEPLOY_STAGE, "not tried again after the lock timeout; F2 "
		           "deploys when the blocker is gone");
}

/*
 * After a lock timeout the deploy stops and asks (issue 5): the blocker and whether to try again
 * now. Asked once the state has been read again, so a yes starts from what is pending now.
 */
static void
ask_retry(struct wizard *w)
{
	struct wiz_migrate *m = &w->mig;
	m->ask_retry = false;
	struct strbuf sb = { 0 };
	strbuf_adds(&sb, m->run_err.message ? m->run_err.message : "a statement could not get its lock");
	if (m->run_err.detail)
		strbuf_addf(&sb, ". %s", m->run_err.detail);
	strbuf_adds(&sb, " Try again now?");
	tui_ask(w->app, "Lock timeout", sb.buf, retry_cb, w);
	strbuf_release(&sb);
}

static void
mg_collect(struct wizard *w, void *result, bool stopped)
{
	struct mg_work *job = result;
	struct wiz_migrate *m = &w->mig;
	m->gen++;
	if (job == NULL)
		return;
	if (job->deploy) {
		m->deploying = false;
		m->deployed = true;
		m->run_ok = job->ok;
		json_decref(m->result);
		m->result = job->result;
		job->result = NULL;
		rb_error_clear(&m->run_err);
		m->run_err = job->err;
		memset(&job->err, 0, sizeof job->err);
		drop_json(&m->waiting);
		drop_json(&m->advisory);
		wizard_stage_end_guard(w, PLAN_STAGE_MIGRATE, STAGE_FAILED);
		const char *outcome = json_string_value(json_object_get(m->result, "outcome"));
		m->ask_retry = !m->run_ok && !stopped && outcome && strcmp(outcome, "lock_timeout") == 0;
		work_free(job);
		if (!stopped)
			preview_start(w);   /* what the database holds now */
		return;
	}
	if (m->pv) {
		deploy_preview_free(m->pv);
		free(m->pv);
		m->pv = NULL;
	}
	free(m->pv_error);
	m->pv_error = NULL;
	if (job->ok) {
		m->pv = job->pv;
		job->pv = NULL;
		/* The preview now says what the deploy left; its live states are history. */
		json_object_clear(m->states);
	} else {
		struct strbuf sb = { 0 };
		strbuf_adds(&sb, job->err.message ? job->err.message : "unknown error");
		if (job->err.detail)
			strbuf_addf(&sb, ". %s", job->err.detail);
		if (job->err.hint)
			strbuf_addf(&sb, " %s", job->err.hint);
		m->pv_error = strbuf_detach(&sb);
	}
	work_free(job);
	if (m->ask_retry && !stopped)
		ask_retry(w);
}

static void
preview_start(struct wizard *w)
{
	struct mg_work *job = xcalloc(1, sizeof *job);
	job->wz = w;
	if (!wizard_worker_start(w, PLAN_STAGE_MIGRATE, mg_main, job, mg_collect)) {
		work_free(job);
		return;
	}
	if (w->mig.states == NULL)
		w->mig.states = json_object();
	w->mig.pv_ran = true;
	w->mig.gen++;
}

void
wizard_migrate_refresh(struct wizard *w)
{
	if (w->worker == NULL)
		preview_start(w);
}

static void
deploy_start(struct wizard *w, const char *confirm)
{
	struct mg_work *job = xcalloc(1, sizeof *job);
	job->wz = w;
	job->deploy = true;
	job->confirm = confirm ? xstrdup(confirm) : NULL;
	job->who = xstrdup(util_user_name());
	/* What was shown when the person confirmed: the deploy refuses if more (or less) is pending. */
	const struct deploy_preview *pv = w->mig.pv;
	for (size_t i = 0; pv && i < pv->local.n && i < pv->status.n; i++)
		if (pv->status.items[i].state == MIG_PENDING)
			strlist_push(&job->expect, pv->status.items[i].name);
	if (!wizard_worker_start(w, PLAN_STAGE_MIGRATE, mg_main, job, mg_collect)) {
		work_free(job);
		return;
	}
	struct wiz_migrate *m = &w->mig;
	m->deploying = true;
	m->deployed = false;
	drop_json(&m->cur_mig);
	drop_json(&m->cur_stmt);
	drop_json(&m->lock_step);
	drop_json(&m->waiting);
	drop_json(&m->advisory);
	m->gen++;
}

static void
keep(json_t **slot, json_t *data)
{
	json_decref(*slot);
	*slot = data ? json_incref(data) : NULL;
}

void
wizard_migrate_track(struct wizard *w, const struct wiz_item *it)
{
	struct wiz_migrate *m = &w->mig;
	if (m->states == NULL)
		m->states = json_object();
	m->gen++;
	json_t *d = it->data;
	switch (it->type) {
	case EV_STAGE_STARTED:
		json_object_clear(m->states);
		drop_json(&m->cur_mig);
		drop_json(&m->cur_stmt);
		drop_json(&m->lock_step);
		drop_json(&m->waiting);
		drop_json(&m->advisory);
		break;
	case EV_STAGE_DONE:
	case EV_STAGE_FAILED:
		drop_json(&m->waiting);
		drop_json(&m->advisory);
		break;
	case EV_STEP:
		drop_json(&m->advisory);   /* steps come once the migration lock is held */
		if (jis(d, "kind", "migration")) {
			const char *name = jstr(d, "migration"), *state = jstr(d, "state");
			if (name && state)
				json_object_set_new(m->states, name, json_string(state));
			if (jis(d, "state", "started"))
				drop_json(&m->cur_stmt);
			if (!jis(d, "state", "started"))
				drop_json(&m->lock_step);
			keep(&m->cur_mig, d);
		} else if (jis(d, "kind", "statement")) {
			keep(&m->cur_stmt, d);
			if (jis(d, "state", "lock_timeout"))
				keep(&m->lock_step, d);
			else if (jis(d, "state", "done"))
				drop_json(&m->lock_step);
			if (!jis(d, "state", "start"))
				drop_json(&m->waiting);
		}
		break;
	case EV_PROGRESS:
		if (jis(d, "kind", "waiting")) {
			if (json_array_size(json_object_get(d, "blockers")) > 0)
				keep(&m->waiting, d);
			else
				drop_json(&m->waiting);
		} else if (jis(d, "kind", "advisory_lock")) {
			keep(&m->advisory, d);
		}
		break;
	default:
		break;
	}
}

void
wizard_migrate_release(struct wizard *w)
{
	struct wiz_migrate *m = &w->mig;
	if (m->pv) {
		deploy_preview_free(m->pv);
		free(m->pv);
	}
	free(m->pv_error);
	json_decref(m->result);
	rb_error_clear(&m->run_err);
	json_decref(m->states);
	json_decref(m->cur_mig);
	json_decref(m->cur_stmt);
	json_decref(m->lock_step);
	json_decref(m->waiting);
	json_decref(m->advisory);
	memset(m, 0, sizeof *m);
}

/* --- lines of text with roles, wrapped, for the panels --- */

struct mg_lines {
	struct strlist text;
	enum tui_role *roles;
	size_t         cap;
};

static void
lines_add(struct mg_lines *l, const char *text, enum tui_role role)
{
	if (l->text.len + 1 > l->cap) {
		l->cap = l->cap ? l->cap * 2 : 16;
		l->roles = xrealloc(l->roles, l->cap * sizeof *l->roles);
	}
	l->roles[l->text.len] = role;
	strlist_push(&l->text, text);
}

/* Adds text wrapped to width; continuation lines are indented by indent + 2 spaces. */
static void
lines_wrap(struct mg_lines *l, const char *text, int width, int indent, enum tui_role role)
{
	struct strlist parts = { 0 };
	int room = width - indent - 2;
	tui_text_wrap(text, room > 10 ? room : 10, &parts);
	for (size_t i = 0; i < parts.len; i++) {
		char *t = xasprintf("%*s%s", indent + (i ? 2 : 0), "", parts.items[i]);
		lines_add(l, t, role);
		free(t);
	}
	strlist_free(&parts);
}

static void
lines_free(struct mg_lines *l)
{
	strlist_free(&l->text);
	free(l->roles);
	memset(l, 0, sizeof *l);
}

/* --- the screen --- */

struct mg_screen {
	struct wizard               *wz;
	struct tui_table            *table;
	struct tui_textview         *sql;
	bool                         focus_sql;
	const struct deploy_preview *sql_pv;     /* the preview the SQL view was built from */
	long                         sql_row;    /* and its row, -1 when none */
	int                          sql_width;
	int                          name_max;   /* the migration column's width in the table */
	unsigned                     seen_gen;
};

static const char *
live_state_text(const char *state, enum tui_role *role)
{
	if (strcmp(state, "started") == 0) {
		*role = TUI_ROLE_WARN;
		return "applying";
	}
	if (strcmp(state, "applied") == 0) {
		*role = TUI_ROLE_OK;
		return "applied";
	}
	if (strcmp(state, "not_applied") == 0) {
		*role = TUI_ROLE_WARN;
		return "not applied";   /* rolled back: pending again */
	}
	*role = TUI_ROLE_DANGER;
	return state;   /* failed, unknown */
}

static void
fill(void *ud, long row, struct tui_table_row *r)
{
	struct mg_screen *ms = ud;
	const struct wiz_migrate *m = &ms->wz->mig;
	const struct deploy_preview *pv = m->pv;
	if (pv == NULL || row < 0 || (size_t)row >= pv->status.n)
		return;
	const struct mig_status_item *si = &pv->status.items[row];
	tui_table_row_set(r, COL_NAME, si->name);
	const char *live = jstr(m->states, si->name);
	enum tui_role role;
	if (live) {
		tui_table_row_set(r, COL_STATE, live_state_text(live, &role));
		tui_table_row_role(r, COL_STATE, role);
	} else {
		tui_table_row_set(r, COL_STATE, migrations_state_name(si->state));
		tui_table_row_role(r, COL_STATE, state_role(si->state));
	}
	if ((size_t)row < pv->local.n) {
		const struct lint_result *lr = &pv->lint[row];
		if (lr->error_line > 0) {
			tui_table_row_set(r, COL_CLASS, "syntax");
			tui_table_row_role(r, COL_CLASS, TUI_ROLE_DANGER);
		} else {
			tui_table_row_set(r, COL_CLASS, lint_class_name(lr->class));
			tui_table_row_role(r, COL_CLASS, class_role(lr->class));
		}
		tui_table_row_set(r, COL_MODE, lr->needs_statement_mode ? "statements" : "batch");
		if (lr->needs_statement_mode)
			tui_table_row_role(r, COL_MODE, TUI_ROLE_WARN);
	} else {
		tui_table_row_set(r, COL_CLASS, "-");
		tui_table_row_set(r, COL_MODE, "-");
	}
}

/* True when migration row of the preview is failed (in the database, or in this session's deploy). */
static bool
row_failed(const struct wiz_migrate *m, long row)
{
	const struct deploy_preview *pv = m->pv;
	if (pv == NULL || row < 0 || (size_t)row >= pv->status.n)
		return false;
	const char *live = jstr(m->states, pv->status.items[row].name);
	if (live)
		return strcmp(live, "failed") == 0;
	return pv->status.items[row].state == MIG_FAILED;
}

/* The first failed migration of the preview, or NULL. */
static const char *
first_failed(const struct deploy_preview *pv)
{
	for (size_t i = 0; pv && i < pv->status.n; i++)
		if (pv->status.items[i].state == MIG_FAILED)
			return pv->status.items[i].name;
	return NULL;
}

/* The row of a migration by name, -1 when it is not in the preview. */
static long
row_of(const struct deploy_preview *pv, const char *name)
{
	for (size_t i = 0; pv && name && i < pv->status.n; i++)
		if (strcmp(pv->status.items[i].name, name) == 0)
			return (long)i;
	return -1;
}

/* Fills the SQL view with migration row's script, its lint classes in the margin and its findings below. */
static void
build_sql(struct mg_screen *ms, long row, int width)
{
	struct tui_textview *tv = ms->sql;
	const struct deploy_preview *pv = ms->wz->mig.pv;
	ms->sql_pv = pv;
	ms->sql_row = row;
	ms->sql_width = width;
	tui_textview_set_text(tv, "");
	tui_textview_set_margin_width(tv, 0);
	if (pv == NULL || row < 0 || (size_t)row >= pv->status.n)
		return;
	int tw = width - MARGIN_W;
	struct mg_lines notes = { 0 };
	if ((size_t)row >= pv->local.n) {
		const struct mig_status_item *si = &pv->status.items[row];
		lines_wrap(&notes, "This migration is recorded in the database but its folder is missing "
		           "locally: the deploy refuses until the folder has it again.", width, 0, TUI_ROLE_DANGER);
		if (si->logs)
			lines_wrap(&notes, si->logs, width, 0, TUI_ROLE_MUTED);
		for (size_t i = 0; i < notes.text.len; i++)
			tui_textview_add_line(tv, notes.text.items[i], notes.roles[i]);
		lines_free(&notes);
		return;
	}
	const struct mig_local *ml = &pv->local.items[row];
	const struct lint_result *lr = &pv->lint[row];
	const struct mig_status_item *si = &pv->status.items[row];
	tui_textview_set_text(tv, ml->sql);
	tui_textview_set_margin_width(tv, MARGIN_W);
	size_t nlines = tui_textview_count(tv);
	for (size_t k = 0; k < lr->n_stmts; k++) {
		const struct lint_stmt *st = &lr->stmts[k];
		if (st->line < 1 || (size_t)st->line > nlines)
			continue;
		size_t first = (size_t)st->line - 1;
		enum tui_role role = class_role(st->class);
		char margin[32];
		snprintf(margin, sizeof margin, "%s%s%s", lint_class_name(st->class), st->code ? " " : "",
		         st->code ? st->code : "");
		tui_textview_set_margin(tv, first, margin, role);
		if (st->class == LINT_SAFE)
			continue;
		size_t n = 1;
		for (const char *p = st->text; p && *p; p++)
			n += *p == '\n';
		for (size_t l = first; l < first + n && l < nlines; l++)
			tui_textview_set_role(tv, l, role);
	}
	if (lr->error_line > 0 && (size_t)lr->error_line <= nlines)
		tui_textview_set_margin(tv, (size_t)lr->error_line - 1, "syntax error", TUI_ROLE_DANGER);

	/* Under the SQL: what each finding means and what to do instead. */
	lines_add(&notes, "", TUI_ROLE_NORMAL);
	if (si->state == MIG_FAILED) {
		lines_wrap(&notes, "Failed in the database. v opens recovery: its logs, which of its effects the "
		           "catalog shows, and the ways out (mark rolled back, mark applied, a compensating SQL "
		           "file).", tw, 0, TUI_ROLE_DANGER);
		if (si->logs)
			lines_wrap(&notes, si->logs, tw, 2, TUI_ROLE_MUTED);
	}
	if (lr->needs_statement_mode)
		lines_wrap(&notes, "Runs as statements: a statement here cannot run inside a transaction "
		           "block, so each statement runs and is journaled on its own; a failure leaves the "
		           "statements before it applied.", tw, 0, TUI_ROLE_WARN);
	size_t nfind = 0;
	for (size_t k = 0; k < lr->n_stmts; k++) {
		const struct lint_stmt *st = &lr->stmts[k];
		for (size_t f = 0; f < st->n_findings; f++) {
			const struct lint_finding *fd = &st->findings[f];
			const struct lint_rule *rule = fd->rule;
			enum tui_role role = class_role(rule->class);
			char *t = xasprintf("line %d: %s %s %s%s%s", st->line, rule->code, lint_class_name(rule->class),
			                    rule->summary, fd->detail ? ": " : "", fd->detail ? fd->detail : "");
			lines_wrap(&notes, t, tw, 0, role);
			free(t);
			t = xasprintf("why: %s", rule->why);
			lines_wrap(&notes, t, tw, 2, TUI_ROLE_NORMAL);
			free(t);
			t = xasprintf("instead: %s", rule->alternative);
			lines_wrap(&notes, t, tw, 2, TUI_ROLE_MUTED);
			free(t);
			nfind++;
		}
	}
	if (nfind == 0 && lr->error_line == 0)
		lines_wrap(&notes, "No findings: every statement is safe.", tw, 0, TUI_ROLE_OK);
	for (size_t i = 0; i < notes.text.len; i++)
		tui_textview_add_line(tv, notes.text.items[i], notes.roles[i]);
	lines_free(&notes);
}

/* The first row worth a look: a failed, modified or missing one, else the first pending one. */
static long
first_interesting(const struct deploy_preview *pv)
{
	for (size_t i = 0; i < pv->status.n; i++)
		if (pv->status.items[i].state != MIG_APPLIED && pv->status.items[i].state != MIG_PENDING)
			return (long)i;
	for (size_t i = 0; i < pv->status.n; i++)
		if (pv->status.items[i].state == MIG_PENDING)
			return (long)i;
	return 0;
}

/*
 * The table for a content width: the migration column gets what state, lint and mode leave
 * (the full name is in the SQL title), so that those stay visible at 80 columns.
 */
static void
fit_table(struct mg_screen *ms, int width)
{
	int name_max = width - 33;
	if (name_max < 16)
		name_max = 16;
	if (name_max > 40)
		name_max = 40;
	if (ms->table && name_max == ms->name_max)
		return;
	struct tui_table_column cols[NCOLS];
	memcpy(cols, columns, sizeof cols);
	cols[COL_NAME].max = name_max;
	long cursor = ms->table ? tui_table_cursor(ms->table) : -1;
	tui_table_free(ms->table);
	ms->table = tui_table_new(cols, NCOLS, fill, ms);
	ms->name_max = name_max;
	const struct deploy_preview *pv = ms->wz->mig.pv;
	tui_table_set_rows(ms->table, pv ? (long)pv->status.n : 0);
	if (cursor >= 0)
		tui_table_set_cursor(ms->table, cursor);
	else if (pv)
		tui_table_set_cursor(ms->table, first_interesting(pv));
}

/* Brings table and SQL view up to date with the model; follows the running statement of a deploy. */
static void
sync_view(struct mg_screen *ms, int width)
{
	struct wiz_migrate *m = &ms->wz->mig;
	const struct deploy_preview *pv = m->pv;
	bool changed = ms->seen_gen != m->gen;
	ms->seen_gen = m->gen;
	if (pv != ms->sql_pv) {
		tui_table_set_rows(ms->table, pv ? (long)pv->status.n : 0);
		if (pv)
			tui_table_set_cursor(ms->table, first_interesting(pv));
	}
	long follow = -1;
	if (changed && m->deploying && m->cur_mig)
		follow = row_of(pv, jstr(m->cur_mig, "migration"));
	if (follow >= 0)
		tui_table_set_cursor(ms->table, follow);
	long row = tui_table_cursor(ms->table);
	if (pv != ms->sql_pv || row != ms->sql_row || width != ms->sql_width)
		build_sql(ms, row, width);
	if (follow >= 0 && m->cur_stmt && jis(m->cur_stmt, "migration", jstr(m->cur_mig, "migration")) &&
	    jint(m->cur_stmt, "line") > 0)
		tui_textview_show(ms->sql, (size_t)jint(m->cur_stmt, "line") - 1);
}

/* One blocker as lines: who, how long its transaction is open, what it holds, its query. */
static void
add_blocker(struct mg_lines *l, json_t *b, int width)
{
	char t1[32];
	const char *app = jstr(b, "application"), *user = jstr(b, "user"), *state = jstr(b, "state");
	const char *mode = jstr(b, "lock_mode"), *query = jstr(b, "query");
	char *s = xasprintf("pid %lld  application \"%s\"  user %s", jint(b, "pid"), app ? app : "",
	                    user ? user : "?");
	lines_wrap(l, s, width, 0, TUI_ROLE_DANGER);
	free(s);
	s = xasprintf("%s%stransaction open %s%s%s", state ? state : "", state ? ", " : "",
	              seconds(jint(b, "xact_ms"), t1, sizeof t1), mode ? ", holds " : "", mode ? mode : "");
	lines_wrap(l, s, width, 2, TUI_ROLE_NORMAL);
	free(s);
	s = xasprintf("query: %s", query ? query : "(not shown)");
	lines_wrap(l, s, width, 2, TUI_ROLE_MUTED);
	free(s);
}

static void
add_blockers(struct mg_lines *l, json_t *list, int width)
{
	size_t i, n = json_array_size(list);
	json_t *b;
	json_array_foreach(list, i, b) {
		if (i == MAX_BLOCKERS) {
			char *t = xasprintf("and %zu more", n - i);
			lines_wrap(l, t, width, 0, TUI_ROLE_DANGER);
			free(t);
			break;
		}
		add_blocker(l, b, width);
	}
}

/* What the panel under the table shows: lines, then (when box is set) a box of lines with a title. */
struct mg_panel {
	struct mg_lines lines;
	struct mg_lines box;
	char           *box_title;
};

static void
panel_free(struct mg_panel *p)
{
	lines_free(&p->lines);
	lines_free(&p->box);
	free(p->box_title);
	memset(p, 0, sizeof *p);
}

/* The running deploy: the migration lock, the migration and statement running, who blocks it. */
static void
progress_panel(const struct wiz_migrate *m, int width, struct mg_panel *p)
{
	char t1[32], t2[32];
	if (m->advisory && m->cur_mig == NULL) {
		json_t *h = json_object_get(m->advisory, "holder");
		char *s = xasprintf("Waiting %s for the migration lock (advisory %d)%s",
		                    seconds(jint(m->advisory, "waited_ms"), t1, sizeof t1), DEPLOY_ADVISORY_KEY,
		                    json_is_object(h) ? ", held by" : "");
		lines_wrap(&p->lines, s, width, 0, TUI_ROLE_WARN);
		free(s);
		if (json_is_object(h)) {
			p->box_title = xstrdup("MIGRATION LOCK HELD");
			add_blocker(&p->box, h, width - 4);
		}
	}
	if (m->cur_mig) {
		json_t *c = m->cur_mig;
		const char *state = jstr(c, "state");
		char *s = xasprintf("Migration %lld of %lld, %s: %s", jint(c, "index"), jint(c, "total"),
		                    jis(c, "mode", "statements") ? "statement by statement" : "one batch",
		                    jis(c, "state", "started") ? "running" : state ? state : "?");
		lines_wrap(&p->lines, s, width, 0, jis(c, "state", "failed") || jis(c, "state", "unknown") ?
		           TUI_ROLE_DANGER : TUI_ROLE_NORMAL);
		free(s);
	}
	if (m->cur_stmt) {
		json_t *c = m->cur_stmt;
		const char *state = jstr(c, "state");
		enum tui_role role = TUI_ROLE_NORMAL;
		char *s;
		if (state && strcmp(state, "start") == 0) {
			s = xasprintf("Statement %lld of %lld (line %lld): running", jint(c, "statement"),
			              jint(c, "statements"), jint(c, "line"));
		} else if (state && strcmp(state, "done") == 0) {
			s = xasprintf("Statement %lld of %lld (line %lld): done in %s", jint(c, "statement"),
			              jint(c, "statements"), jint(c, "line"), seconds(jint(c, "ms"), t1, sizeof t1));
			role = TUI_ROLE_OK;
		} else if (state && strcmp(state, "lock_timeout") == 0) {
			s = xasprintf("Statement %lld of %lld (line %lld): lock timeout, try %lld of %lld%s%s",
			              jint(c, "statement"), jint(c, "statements"), jint(c, "line"), jint(c, "attempt"),
			              jint(c, "attempts"), jint(c, "retry_in_ms") > 0 ? ", next in " : "",
			              jint(c, "retry_in_ms") > 0 ? seconds(jint(c, "retry_in_ms"), t2, sizeof t2) : "");
			role = TUI_ROLE_WARN;
		} else {
			s = xasprintf("Statement %lld of %lld (line %lld): %s%s%s", jint(c, "statement"),
			              jint(c, "statements"), jint(c, "line"), state ? state : "?",
			              jstr(c, "error") ? ": " : "", jstr(c, "error") ? jstr(c, "error") : "");
			role = TUI_ROLE_DANGER;
		}
		lines_wrap(&p->lines, s, width, 0, role);
		free(s);
	}
	if (m->waiting) {
		free(p->box_title);
		p->box_title = xasprintf("WAITING FOR A LOCK %s, blocked by",
		                         seconds(jint(m->waiting, "waiting_ms"), t1, sizeof t1));
		lines_free(&p->box);
		add_blockers(&p->box, json_object_get(m->waiting, "blockers"), width - 4);
	} else if (m->lock_step && json_array_size(json_object_get(m->lock_step, "blockers")) > 0) {
		free(p->box_title);
		p->box_title = xasprintf("LOCK TIMEOUT on try %lld of %lld, blocked by", jint(m->lock_step, "attempt"),
		                         jint(m->lock_step, "attempts"));
		lines_free(&p->box);
		add_blockers(&p->box, json_object_get(m->lock_step, "blockers"), width - 4);
	}
}

/*
 * Draws the panel from row y in at most n rows. When rows are short the box comes first, then
 * the lines nearest it (a progress panel) or, without a box, the first lines (an outcome).
 * Returns the next row.
 */
static int
panel_draw(WINDOW *win, int y, int x, int w, const struct mg_panel *p, int n)
{
	int nbox = p->box_title ? (int)p->box.text.len + 2 : 0;
	if (nbox > n)
		nbox = n >= 3 ? n : 0;
	int nlines = (int)p->lines.text.len;
	if (nlines > n - nbox)
		nlines = n - nbox;
	size_t first = p->box_title ? p->lines.text.len - (size_t)nlines : 0;
	for (size_t i = first; i < first + (size_t)nlines; i++)
		tui_text_put(win, y++, x, p->lines.text.items[i], 0, w, tui_attr(p->lines.roles[i]), true);
	if (nbox == 0)
		return y;
	tui_dialog_frame(win, (struct tui_rect){ y, x, nbox, w }, p->box_title, TUI_ROLE_DANGER);
	for (int k = 0; k < nbox - 2; k++)
		tui_text_put(win, y + 1 + k, x + 2, p->box.text.items[k], 0, w - 4, tui_attr(p->box.roles[k]), true);
	return y + nbox;
}

/* The last deploy's outcome: its message, the error with detail and hint, the result's counts. */
static void
result_lines(const struct wizard *wz, int width, struct mg_lines *l)
{
	const struct wiz_migrate *m = &wz->mig;
	const struct wiz_stage *ws = &wz->stages[PLAN_STAGE_MIGRATE];
	char *s;
	if (m->run_ok) {
		s = xasprintf("Deploy done: %s", ws->message ? ws->message : "every pending migration applied");
		lines_wrap(l, s, width, 0, TUI_ROLE_OK);
		free(s);
	} else {
		s = xasprintf("Deploy failed: %s", m->run_err.message ? m->run_err.message :
		              ws->message ? ws->message : "see the log");
		lines_wrap(l, s, width, 0, TUI_ROLE_DANGER);
		free(s);
		if (m->run_err.detail)
			lines_wrap(l, m->run_err.detail, width, 2, TUI_ROLE_NORMAL);
		if (m->run_err.hint)
			lines_wrap(l, m->run_err.hint, width, 2, TUI_ROLE_MUTED);
	}
	/* From the stage_result: the outcome, how many were applied, where it stopped. */
	json_t *r = m->result;
	if (r == NULL)
		return;
	struct strbuf sb = { 0 };
	const char *outcome = jstr(r, "outcome");
	strbuf_addf(&sb, "outcome %s: %zu of %lld pending applied", outcome ? outcome : "?",
	            json_array_size(json_object_get(r, "applied")), jint(r, "pending_before"));
	if (jstr(r, "stopped_at"))
		strbuf_addf(&sb, "; stopped at %s", jstr(r, "stopped_at"));
	if (json_is_integer(json_object_get(r, "statement")))
		strbuf_addf(&sb, ", statement %lld", jint(r, "statement"));
	lines_wrap(l, sb.buf, width, 2, TUI_ROLE_MUTED);
	strbuf_release(&sb);
}

/* The status line: what the screen is doing or what F2 would do. Caller frees. */
static char *
status_text(const struct wizard *wz, enum tui_role *role)
{
	const struct wiz_migrate *m = &wz->mig;
	const struct deploy_preview *pv = m->pv;
	*role = TUI_ROLE_NORMAL;
	if (wizard_running(wz, PLAN_STAGE_MIGRATE) && m->deploying) {
		*role = TUI_ROLE_WARN;
		return xstrdup("Deploying...  (Esc cancels)");
	}
	if (wizard_running(wz, PLAN_STAGE_MIGRATE)) {
		*role = TUI_ROLE_MUTED;
		return xstrdup("Reading the migrations folder and _prisma_migrations (read-only)...");
	}
	if (wz->worker) {
		*role = TUI_ROLE_WARN;
		return xasprintf("%s is running; deploy can start once it ends.", wizard_worker_name(wz->worker_stage));
	}
	if (m->pv_error) {
		*role = TUI_ROLE_DANGER;
		return xasprintf("Could not read the migrations: %s  (F5 tries again)", m->pv_error);
	}
	if (pv == NULL)
		return xstrdup("Not read yet. F5 reads the migrations and their state.");
	if (pv->blocked) {
		*role = TUI_ROLE_DANGER;
		const char *failed = first_failed(pv);
		return xasprintf("BLOCKED: %s%s%s%s", pv->blocked, failed ? ". v on " : "", failed ? failed : "",
		                 failed ? " opens recovery." : "");
	}
	if (pv->n_pending == 0) {
		*role = TUI_ROLE_OK;
		return xasprintf("Up to date: every migration is applied on %s.", pv->database);
	}
	size_t ndanger = 0;
	for (size_t i = 0; i < pv->local.n; i++)
		if (pv->status.items[i].state == MIG_PENDING && pv->lint[i].class == LINT_DANGEROUS)
			ndanger++;
	if (ndanger)
		*role = TUI_ROLE_WARN;
	return xasprintf("%zu pending on %s%s. F2 deploys%s.", pv->n_pending, pv->database,
	                 ndanger ? ", dangerous" : "", ndanger ? " after the typed phrase" : "");
}

static int
mg_enter(struct screen *s, void *arg)
{
	(void)arg;
	struct mg_screen *ms = s->priv;
	ms->wz = tui_app_userdata(s->app);
	fit_table(ms, 80);
	ms->sql = tui_textview_new();
	ms->sql_row = -1;
	ms->sql_pv = ms->wz->mig.pv;
	ms->seen_gen = ms->wz->mig.gen - 1;
	if (!ms->wz->mig.pv_ran && ms->wz->worker == NULL)
		preview_start(ms->wz);
	return 0;
}

static void
mg_draw(struct screen *s)
{
	struct mg_screen *ms = s->priv;
	struct wizard *wz = ms->wz;
	struct wiz_migrate *m = &wz->mig;
	int h, w;
	getmaxyx(s->win, h, w);
	int cw = w - 2;   /* content width, one column of room each side */
	int y = 0;
	char *title = xasprintf("Migrate: the pending migrations of %s", wz->plan->target);
	tui_text_put(s->win, y++, 1, title, 0, cw, tui_attr(TUI_ROLE_HEADER), true);
	free(title);

	enum tui_role role;
	char *status = status_text(wz, &role);
	struct strlist sl = { 0 };
	tui_text_wrap(status, cw, &sl);
	free(status);
	for (size_t i = 0; i < sl.len && i < 2 && y < h; i++)
		tui_text_put(s->win, y++, 1, sl.items[i], 0, cw, tui_attr(role), true);
	strlist_free(&sl);
	long long est_ms, est_wait;   /* the staging rehearsal's timing, when this run has one */
	if (wizard_staging_estimate(wz, &est_ms, &est_wait) && y < h) {
		char d[24];
		char *est = xasprintf("Staging estimate: %s (%lld ms), %lld ms lock waits",
		                      wizard_duration(est_ms, d, sizeof d), est_ms, est_wait);
		tui_text_put(s->win, y++, 1, est, 0, cw, tui_attr(TUI_ROLE_MUTED), true);
		free(est);
	}

	fit_table(ms, cw);
	sync_view(ms, cw - MARGIN_W > 20 ? cw : MARGIN_W + 20);
	long nrows = tui_table_rows(ms->table);
	int th = (int)nrows + 2;
	int tmax = h / 3 > 5 ? h / 3 : 5;
	if (th > tmax)
		th = tmax;
	if (th < 3)
		th = 3;
	if (nrows > 0 && y + th < h) {
		tui_table_draw(ms->table, s->win, (struct tui_rect){ y, 1, th, cw });
		y += th;
	}

	/*
	 * The running deploy with the blocker box (it may take the SQL's room), or the last
	 * deploy's outcome (three SQL lines stay).
	 */
	struct mg_panel pl = { 0 };
	if (m->deploying)
		progress_panel(m, cw, &pl);
	else if (m->deployed)
		result_lines(wz, cw, &pl.lines);
	int room = h - y - (m->deploying ? 1 : 4);
	if (room > 0)
		y = panel_draw(s->win, y, 1, cw, &pl, room);
	panel_free(&pl);

	if (y + 1 >= h || ms->sql_row < 0)
		return;
	const struct deploy_preview *pv = m->pv;
	const char *name = pv && ms->sql_row < (long)pv->status.n ? pv->status.items[ms->sql_row].name : "?";
	char *label = xasprintf("SQL of %s  (Tab: %s)", name, ms->focus_sql ? "table" : "scroll");
	tui_text_put(s->win, y++, 1, label, 0, cw, tui_attr(ms->focus_sql ? TUI_ROLE_CURSOR : TUI_ROLE_HEADER), true);
	free(label);
	tui_textview_draw(ms->sql, s->win, (struct tui_rect){ y, 1, h - y, cw });
}

/* --- deploy: the checks, the question or the typed phrase, then the worker --- */

struct mg_confirm {
	struct wizard *wz;
	char          *phrase;
};

static void
confirm_miss_cb(void *ud, const char *typed, int misses)
{
	(void)misses;
	struct mg_confirm *c = ud;
	wizard_confirm_miss(c->wz, DEPLOY_STAGE, c->phrase, typed);
}

static void
confirm_done_cb(void *ud, enum tui_confirm_result r, const char *typed)
{
	struct mg_confirm *c = ud;
	struct wizard *wz = c->wz;
	if (r == TUI_CONFIRM_OK)
		deploy_start(wz, typed);   /* what was typed: core compares it again and journals it */
	else if (r == TUI_CONFIRM_REFUSED)
		events_log(wz->bus, LOG_LEVEL_WARN, DEPLOY_STAGE, "deploy refused after 3 wrong phrases; nothing ran");
	else
		events_log(wz->bus, LOG_LEVEL_INFO, DEPLOY_STAGE, "deploy cancelled at the confirmation; nothing ran");
	free(c->phrase);
	free(c);
}

static void
ask_done_cb(void *ud, bool yes)
{
	struct wizard *wz = ud;
	if (yes)
		deploy_start(wz, NULL);
	else
		events_log(wz->bus, LOG_LEVEL_INFO, DEPLOY_STAGE, "deploy not started; nothing ran");
}

static void
cancel_done_cb(void *ud, bool yes)
{
	struct wizard *wz = ud;
	if (!yes)
		return;
	if (wizard_running(wz, PLAN_STAGE_MIGRATE) && wz->mig.deploying) {
		tui_worker_cancel(wz->worker);
		tui_log_add(wz->log, TUI_LOG_WARN, "migrate: cancelling the deploy: the running statement is cancelled");
	}
}

static void
waiver_open(struct wizard *wz, const char *db)
{
	static const char *const details[] = {
		"This plan has no backup stage: deploying needs a verified backup of this run, or the backup waived.",
		"If the deploy goes wrong, there is no backup of this run to restore.",
		"After the waiver the deploy goes on (with its own question or phrase).",
		NULL,
	};
	wizard_backup_waiver_open(wz, db, "deploy without a verified backup (journaled as waived)", details, "nothing ran",
	                          deploy_go);
}

/* Opens the recover view for the highlighted migration when it is failed, or says why not. */
static void
recover_open(struct screen *s)
{
	struct mg_screen *ms = s->priv;
	struct wiz_migrate *m = &ms->wz->mig;
	long row = tui_table_cursor(ms->table);
	if (m->pv == NULL || row < 0 || (size_t)row >= m->pv->status.n) {
		tui_message(s->app, "Recover", "The state of the migrations is not read yet. F5 reads it.", TUI_ROLE_WARN,
		            NULL, NULL);
		return;
	}
	const char *name = m->pv->status.items[row].name;
	if (!row_failed(m, row)) {
		char *t = xasprintf("Recovery is for a failed migration; %s is %s.", name,
		                    migrations_state_name(m->pv->status.items[row].state));
		tui_message(s->app, "Recover", t, TUI_ROLE_NORMAL, NULL, NULL);
		free(t);
		return;
	}
	tui_push(s->app, &wiz_recover_screen, (void *)name);
}

static void
deploy_ask(struct screen *s)
{
	struct mg_screen *ms = s->priv;
	struct wizard *wz = ms->wz;
	const struct deploy_preview *pv = wz->mig.pv;
	if (wz->worker) {
		tui_message(s->app, "Deploy", wizard_running(wz, PLAN_STAGE_MIGRATE) && wz->mig.deploying ?
		            "A deploy is running already." : "Wait until the running stage ends.", TUI_ROLE_WARN, NULL, NULL);
		return;
	}
	if (pv == NULL) {
		char *t = xasprintf("The state of the migrations is unknown%s%s. F5 reads it again.",
		                    wz->mig.pv_error ? ": " : "", wz->mig.pv_error ? wz->mig.pv_error : "");
		tui_message(s->app, "Deploy refused", t, TUI_ROLE_DANGER, NULL, NULL);
		free(t);
		return;
	}
	if (pv->blocked) {
		const char *failed = first_failed(pv);
		char *how = failed ? xasprintf(" For the failed migration %s: select it and press v to open "
		                               "recovery (its effects in the catalog and the ways out).", failed) : xstrdup("");
		char *t = xasprintf("%s.\n\nNothing ran. Deploy starts only when no migration is failed, modified or "
		                    "missing locally: resolve it first (pgrunbook migrate status shows it), then F5 "
		                    "reads the state again.%s", pv->blocked, how);
		free(how);
		tui_message(s->app, "Deploy refused", t, TUI_ROLE_DANGER, NULL, NULL);
		free(t);
		return;
	}
	if (pv->n_pending == 0) {
		tui_message(s->app, "Deploy", "Nothing to deploy: every migration is applied.", TUI_ROLE_OK, NULL, NULL);
		return;
	}
	char *missing = wizard_backup_missing(wz, pv->database, "Deploying", "Nothing ran.");
	if (missing && !plan_stage_enabled(wz->plan, PLAN_STAGE_BACKUP)) {
		free(missing);
		waiver_open(wz, pv->database);   /* no backup stage to go to: the waiver, here */
		return;
	}
	if (missing) {
		tui_message(s->app, "Deploy refused: no backup", missing, TUI_ROLE_DANGER, NULL, NULL);
		free(missing);
		return;
	}
	deploy_go(wz);
}

/* The deploy after its preconditions: the question, or the dangerous statements and the phrase. */
static void
deploy_go(struct wizard *wz)
{
	const struct deploy_preview *pv = wz->mig.pv;
	if (wz->worker || pv == NULL || pv->n_pending == 0 || pv->blocked) {
		tui_message(wz->app, "Deploy", "The state changed meanwhile: nothing ran. F2 again.", TUI_ROLE_WARN,
		            NULL, NULL);
		return;
	}
	json_t *t = wizard_target_result(wz);
	const char *where = t ? json_string_value(json_object_get(t, "where")) : NULL;
	if (!pv->dangerous) {
		char *q = xasprintf("Apply %zu pending migration%s to %s (%s)? No statement is dangerous.",
		                    pv->n_pending, pv->n_pending == 1 ? "" : "s", wz->plan->target, pv->database);
		tui_ask(wz->app, "Deploy", q, ask_done_cb, wz);
		free(q);
		return;
	}
	/* Dangerous: list each dangerous statement of the pending migrations, then ask for the phrase. */
	struct strlist details = { 0 };
	size_t ndanger = 0;
	strlist_push(&details, "Dangerous statements:");
	for (size_t i = 0; i < pv->local.n; i++) {
		if (pv->status.items[i].state != MIG_PENDING)
			continue;
		const struct lint_result *lr = &pv->lint[i];
		for (size_t k = 0; k < lr->n_stmts; k++) {
			const struct lint_stmt *st = &lr->stmts[k];
			if (st->class != LINT_DANGEROUS)
				continue;
			const struct lint_finding *fd = NULL;
			for (size_t f = 0; f < st->n_findings; f++)
				if (st->findings[f].rule->class == LINT_DANGEROUS && fd == NULL)
					fd = &st->findings[f];
			strlist_push_owned(&details, xasprintf("%s:%d %s %s%s%s", pv->local.items[i].name, st->line,
			                                       st->code ? st->code : "", fd ? fd->rule->summary : "",
			                                       fd && fd->detail ? ": " : "", fd && fd->detail ? fd->detail : ""));
			ndanger++;
		}
	}
	const char **lines = xcalloc(details.len + 1, sizeof *lines);   /* NULL-terminated */
	for (size_t i = 0; i < details.len; i++)
		lines[i] = details.items[i];
	char *action = xasprintf("apply %zu pending migration%s, %zu dangerous statement%s", pv->n_pending,
	                         pv->n_pending == 1 ? "" : "s", ndanger, ndanger == 1 ? "" : "s");
	struct mg_confirm *c = xcalloc(1, sizeof *c);
	c->wz = wz;
	c->phrase = xstrdup(pv->phrase);
	events_log(wz->bus, LOG_LEVEL_INFO, DEPLOY_STAGE, "deploy needs the typed phrase: %zu dangerous statement%s",
	           ndanger, ndanger == 1 ? "" : "s");
	struct tui_confirm_opts o = {
		.title = "Deploy migrations",
		.action = action,
		.environment = wz->plan->target,
		.prod = true,
		.target = where ? where : pv->database,
		.details = lines,
		.phrase = c->phrase,
		.miss = confirm_miss_cb,
		.done = confirm_done_cb,
		.ud = c,
	};
	if (tui_confirm(wz->app, &o) == NULL) {
		free(c->phrase);
		free(c);
	}
	free(action);
	free(lines);
	strlist_free(&details);
}

static enum key_result
mg_key(struct screen *s, enum command cmd, int raw)
{
	struct mg_screen *ms = s->priv;
	struct wizard *wz = ms->wz;
	if (tui_table_searching(ms->table))
		return tui_table_key(ms->table, cmd, raw);
	switch (cmd) {
	case CMD_RUN_STAGE:
		deploy_ask(s);
		return KEY_RESULT_HANDLED;
	case CMD_RECOVER:
		recover_open(s);
		return KEY_RESULT_HANDLED;
	case CMD_REFRESH:
		if (wz->worker == NULL)
			preview_start(wz);
		tui_app_repaint(s->app);
		return KEY_RESULT_HANDLED;
	case CMD_CANCEL:
		if (wizard_running(wz, PLAN_STAGE_MIGRATE) && wz->mig.deploying) {
			tui_ask(s->app, "Cancel the deploy", "Cancel the deploy? The statement running now is cancelled: "
			        "a migration running as one batch rolls back; in statement mode the statements already "
			        "done stay applied.", cancel_done_cb, wz);
			return KEY_RESULT_HANDLED;
		}
		if (wizard_running(wz, PLAN_STAGE_MIGRATE)) {
			tui_worker_cancel(wz->worker);   /* a read-only preview: no question */
			return KEY_RESULT_HANDLED;
		}
		if (ms->focus_sql) {
			ms->focus_sql = false;
			return KEY_RESULT_HANDLED;
		}
		return KEY_RESULT_PASS;
	case CMD_FOCUS_NEXT:
		ms->focus_sql = !ms->focus_sql;
		return KEY_RESULT_HANDLED;
	case CMD_SELECT:
		ms->focus_sql = true;
		return KEY_RESULT_HANDLED;
	case CMD_SEARCH:
	case CMD_SEARCH_NEXT:
	case CMD_SEARCH_PREV:
		ms->focus_sql = false;
		return tui_table_key(ms->table, cmd, raw);
	default:
		if (ms->focus_sql)
			return tui_textview_command(ms->sql, cmd) ? KEY_RESULT_HANDLED : KEY_RESULT_PASS;
		return tui_table_command(ms->table, cmd) ? KEY_RESULT_HANDLED : KEY_RESULT_PASS;
	}
}

static void
mg_leave(struct screen *s)
{
	struct mg_screen *ms = s->priv;
	tui_table_free(ms->table);
	tui_textview_free(ms->sql);
}

const struct screen_ops wiz_migrate_screen = {
	.name = "migrate",
	.priv_size = sizeof(struct mg_screen),
	.enter = mg_enter,
	.draw = mg_draw,
	.key = mg_key,
	.leave = mg_leave,
};
