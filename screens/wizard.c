/* wizard.c: the wizard's model (stages, checklist, the stage worker) and its frame (chrome). */
#include "config.h"

#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/confirm.h"
#include "core/ctx.h"
#include "core/notify.h"
#include "core/preflight.h"
#include "core/report.h"
#include "core/util.h"
#include "screens/wizard.h"
#include "tui/confirm.h"
#include "tui/dialog.h"
#include "tui/help.h"
#include "tui/text.h"
#include "tui/theme.h"

#define HEADER_ROWS 2
#define LOG_CAPACITY 500

/* --- drawing and time helpers --- */

void
wizard_put(WINDOW *win, int *y, int h, int w, enum tui_role role, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *t = xvasprintf(fmt, ap);
	va_end(ap);
	struct strlist l = {0};
	tui_text_wrap(t, w - 2, &l);
	for (size_t i = 0; i < l.len && *y < h; i++)
		tui_text_put(win, (*y)++, 1, l.items[i], 0, w - 1, tui_attr(role), true);
	strlist_free(&l);
	free(t);
}

char *
wizard_duration(long long ms, char *buf, size_t size)
{
	if (ms < 0)
		ms = 0;
	long long s = ms / 1000;
	if (s >= 3600)
		snprintf(buf, size, "%lld:%02lld:%02lld", s / 3600, s / 60 % 60, s % 60);
	else
		snprintf(buf, size, "%lld:%02lld", s / 60, s % 60);
	return buf;
}

/* Seconds since the epoch of an RFC 3339 UTC time (time_parse_rfc3339()); -1 when unparseable. */
static time_t
rfc3339_seconds(const char *s)
{
	long long ms;
	return time_parse_rfc3339(s, &ms) ? (time_t)(ms / 1000) : (time_t)-1;
}

static long long
span_ms(const char *from, const char *to)
{
	long long a, b;
	if (!time_parse_rfc3339(from, &a) || !time_parse_rfc3339(to, &b))
		return 0;
	return b - a;
}

char *
wizard_age(const char *when, char *buf, size_t size)
{
	time_t t = rfc3339_seconds(when);
	if (t < 0) {
		snprintf(buf, size, "at an unknown time");
		return buf;
	}
	long long s = (long long)(time(NULL) - t);
	if (s < 0)
		s = 0;
	if (s < 60)
		snprintf(buf, size, "%lld s ago", s);
	else if (s < 3600)
		snprintf(buf, size, "%lld min ago", s / 60);
	else if (s < 48 * 3600)
		snprintf(buf, size, "%lld h %lld min ago", s / 3600, s / 60 % 60);
	else
		snprintf(buf, size, "%lld days ago", s / 86400);
	return buf;
}

/* --- queue items --- */

void
wizard_item_free(void *p)
{
	struct wiz_item *it = p;
	if (it == NULL)
		return;
	free(it->stage);
	free(it->message);
	json_decref(it->data);
	free(it);
}

void
wizard_on_event(const struct rb_event *ev, void *userdata)
{
	struct wizard *w = userdata;
	if (w->app == NULL)
		return;
	/*
	 * Progress is for the screens (preflight fills a row per environment, migrate shows the
	 * running statement and who blocks it, the action stages their latest line), not the log.
	 */
	static const char *const progress_stages[] = {
		"preflight", "migrate", "sync", "backup", "staging", "maintenance", "maintenance_off", "rollback",
	};
	bool wanted = false;
	for (size_t i = 0; ev->type == EV_PROGRESS && ev->stage && i < RB_ARRAY_LEN(progress_stages); i++)
		wanted = wanted || strcmp(ev->stage, progress_stages[i]) == 0;
	if (ev->type == EV_PROGRESS && !wanted)
		return;
	struct wiz_item *it = xcalloc(1, sizeof *it);
	it->kind = WIZ_ITEM_EVENT;
	it->type = ev->type;
	it->stage = ev->stage ? xstrdup(ev->stage) : NULL;
	it->message = ev->message ? xstrdup(ev->message) : NULL;
	it->level = ev->level;
	it->data = ev->data ? json_deep_copy(ev->data) : NULL;
	it->when = time(NULL);
	tui_queue_post(tui_app_queue(w->app), it);
}

/* The log line of a step record; NULL for a statement starting or done (the migrate screen shows those). */
static char *
step_text(const char *st, const char *message, json_t *data, enum tui_log_level *out)
{
	const char *kind = json_string_value(json_object_get(data, "kind"));
	const char *state = json_string_value(json_object_get(data, "state"));
	const char *mig = json_string_value(json_object_get(data, "migration"));
	if (mig == NULL)   /* a sync apply's step names its table */
		mig = json_string_value(json_object_get(data, "table"));
	bool statement = kind && strcmp(kind, "statement") == 0;
	if (statement && state && (strcmp(state, "start") == 0 || strcmp(state, "done") == 0))
		return NULL;
	if (state && (strcmp(state, "failed") == 0 || strcmp(state, "unknown") == 0))
		*out = TUI_LOG_ERROR;
	else if (state && (strcmp(state, "lock_timeout") == 0 || strcmp(state, "not_applied") == 0))
		*out = TUI_LOG_WARN;
	else if (state && strcmp(state, "applied") == 0)
		*out = TUI_LOG_OK;
	if (message && *message)
		return xasprintf("%s: %s", st, message);
	if (statement)
		return xasprintf("%s: %s statement %lld: %s", st, mig ? mig : "?",
		                 (long long)json_integer_value(json_object_get(data, "statement")), state ? state : "?");
	return xasprintf("%s: %s %s: %s", st, kind ? kind : "step", mig ? mig : "", state ? state : "?");
}

/* The log pane's line and level for an event or journal record (NULL: none). Caller frees the text. */
static char *
log_text(enum rb_event_type type, const char *stage, const char *message, enum rb_log_level level,
         json_t *data, enum tui_log_level *out)
{
	const char *m = message ? message : "";
	*out = level == LOG_LEVEL_ERROR ? TUI_LOG_ERROR : level == LOG_LEVEL_WARN ? TUI_LOG_WARN : TUI_LOG_INFO;
	const char *st = stage ? stage : "run";
	switch (type) {
	case EV_RUN_STARTED:
		return xasprintf("run started by %s", json_string_value(json_object_get(data, "user")) ?
		                 json_string_value(json_object_get(data, "user")) : "?");
	case EV_RUN_FINISHED:
		*out = TUI_LOG_OK;
		return xasprintf("run finished: %s", m);
	case EV_STAGE_STARTED:
		return xasprintf("%s: started: %s", st, m);
	case EV_STAGE_DONE:
		*out = TUI_LOG_OK;
		return xasprintf("%s: done: %s", st, m);
	case EV_STAGE_FAILED:
		*out = TUI_LOG_ERROR;
		return xasprintf("%s: failed: %s", st, m);
	case EV_STAGE_SKIPPED:
		return xasprintf("%s: skipped: %s", st, m);
	case EV_STAGE_WAIVED:
		*out = TUI_LOG_WARN;
		return xasprintf("%s: waived: %s", st, m);
	case EV_STAGE_RESULT:
		*out = TUI_LOG_DEBUG;
		return message ? xasprintf("%s: %s", st, m) : NULL;   /* the screens show results */
	case EV_CHECKLIST_TICK: {
		json_t *t = json_object_get(data, "ticked");
		const char *who = json_string_value(json_object_get(data, "user"));
		return xasprintf("checklist: %s by %s: %s", json_is_false(t) ? "unticked" : "ticked",
		                 who ? who : "?", m);
	}
	case EV_CONFIRM_MISS:
	case EV_OVER_BUDGET:
		*out = TUI_LOG_WARN;
		return xasprintf("%s: %s", st, m);
	case EV_STEP:
		return step_text(st, message, data, out);
	default:
		return xasprintf("%s: %s", st, m);
	}
}

/* --- model --- */

int
wizard_checklist_index(const struct wizard *w)
{
	for (int i = 0; i < w->nentries; i++)
		if (w->entries[i].kind == WIZ_ENTRY_CHECKLIST)
			return i;
	return -1;
}

size_t
wizard_ticked_count(const struct wizard *w)
{
	size_t n = 0;
	for (size_t i = 0; i < w->plan->checklist_before.len; i++)
		n += w->ticks[i].ticked;
	return n;
}

static int
entry_by_name(const struct wizard *w, const char *name)
{
	for (int i = 0; name && i < w->nentries; i++)
		if (strcmp(w->entries[i].name, name) == 0)
			return i;
	return -1;
}

/* The first entry that is not done: where a run without a recorded position continues. */
static int
first_open_entry(const struct wizard *w)
{
	for (int i = 0; i < w->nentries; i++) {
		const struct wiz_entry *e = &w->entries[i];
		if (e->kind == WIZ_ENTRY_CHECKLIST) {
			if (wizard_ticked_count(w) < w->plan->checklist_before.len)
				return i;
		} else if (w->stages[e->stage].status != STAGE_DONE) {
			return i;
		}
	}
	return 0;
}

static void
restore(struct wizard *w, const struct run_state *st)
{
	for (int s = 0; s < PLAN_STAGE_COUNT; s++) {
		const struct run_stage_state *ss = &st->stages[s];
		struct wiz_stage *ws = &w->stages[s];
		ws->status = ss->status;
		if (ss->status == STAGE_RUNNING) {
			/* The process that ran it is gone: it did not finish. */
			ws->status = STAGE_FAILED;
			ws->interrupted = true;
			ws->message = xstrdup("interrupted: the process ended while it ran");
		} else if (ss->message) {
			ws->message = xstrdup(ss->message);
		}
		if (ss->started && ss->finished)
			ws->elapsed_ms = span_ms(ss->started, ss->finished);
	}
	if (st->stages[PLAN_STAGE_PREFLIGHT].result)
		w->preflight = json_incref(st->stages[PLAN_STAGE_PREFLIGHT].result);
	if (st->stages[PLAN_STAGE_BACKUP].result)
		w->bk.result = json_incref(st->stages[PLAN_STAGE_BACKUP].result);
	if (st->stages[PLAN_STAGE_VERIFY].result)
		w->vf.result = json_incref(st->stages[PLAN_STAGE_VERIFY].result);
	static const enum plan_stage act_stages[] = { PLAN_STAGE_STAGING, PLAN_STAGE_MAINT_ON, PLAN_STAGE_MAINT_OFF };
	for (size_t a = 0; a < RB_ARRAY_LEN(act_stages); a++)
		if (st->stages[act_stages[a]].result)
			w->act[a].result = json_incref(st->stages[act_stages[a]].result);

	const char *position = NULL;
	size_t first_logged = st->nrecords > LOG_CAPACITY ? st->nrecords - LOG_CAPACITY : 0;
	for (size_t i = 0; i < st->nrecords; i++) {
		const struct journal_record *r = &st->records[i];
		if (r->type == EV_CHECKLIST_TICK) {
			json_t *idx = json_object_get(r->data, "index");
			const char *item = json_string_value(json_object_get(r->data, "item"));
			size_t k = (size_t)json_integer_value(idx);
			if (json_is_integer(idx) && k < w->plan->checklist_before.len && item &&
			    strcmp(item, w->plan->checklist_before.items[k]) == 0) {
				struct wiz_tick *t = &w->ticks[k];
				t->ticked = !json_is_false(json_object_get(r->data, "ticked"));
				free(t->user);
				free(t->at);
				const char *u = json_string_value(json_object_get(r->data, "user"));
				const char *at = json_string_value(json_object_get(r->data, "at"));
				t->user = u ? xstrdup(u) : NULL;
				t->at = xstrdup(at ? at : r->ts);
			}
		} else if (r->type == EV_LOG) {
			const char *p = json_string_value(json_object_get(r->data, "wizard_stage"));
			if (p)
				position = p;
		} else if (r->type == EV_ROLLBACK_DONE && r->data) {
			json_decref(w->act[WIZ_ACT_ROLLBACK].result);
			w->act[WIZ_ACT_ROLLBACK].result = json_incref(r->data);
		}
		if (i >= first_logged && r->type != EV_PROGRESS) {
			enum tui_log_level lvl;
			char *text = log_text(r->type, r->stage, r->message, r->level, r->data, &lvl);
			time_t when = rfc3339_seconds(r->ts);
			if (text)
				tui_log_add_at(w->log, lvl, when < 0 ? time(NULL) : when, text);
			free(text);
		}
	}
	int at = entry_by_name(w, position);
	w->current = at >= 0 ? at : first_open_entry(w);
}

void
wizard_init(struct wizard *w, const struct plan *plan, struct journal *j, struct events *bus,
            const struct run_state *st)
{
	memset(w, 0, sizeof *w);
	w->plan = plan;
	w->journal = j;
	w->bus = bus;
	w->run_id = j ? journal_run_id(j) : "";
	w->log = tui_log_new(LOG_CAPACITY);
	w->ticks = xcalloc(plan->checklist_before.len + 1, sizeof *w->ticks);
	w->pf_lines = xcalloc(plan->nenvs + 1, sizeof *w->pf_lines);
	w->pf_levels = xcalloc(plan->nenvs + 1, sizeof *w->pf_levels);
	bool checklist_placed = plan->checklist_before.len == 0;
	for (int s = 0; s < PLAN_STAGE_COUNT; s++) {
		if (!plan_stage_enabled(plan, (enum plan_stage)s))
			continue;
		if (!checklist_placed && s != PLAN_STAGE_PREFLIGHT) {
			w->entries[w->nentries++] = (struct wiz_entry){
				.kind = WIZ_ENTRY_CHECKLIST, .name = "checklist", .available = true };
			checklist_placed = true;
		}
		w->entries[w->nentries++] = (struct wiz_entry){
			.kind = WIZ_ENTRY_STAGE, .stage = (enum plan_stage)s, .name = plan_stage_name((enum plan_stage)s),
			.available = true };
	}
	if (st)
		restore(w, st);
	else
		w->current = 0;
}

void
wizard_release(struct wizard *w)
{
	if (w->exit_note) {   /* the terminal is restored by now */
		fputs(w->exit_note, stderr);
		free(w->exit_note);
		w->exit_note = NULL;
	}
	for (int s = 0; s < PLAN_STAGE_COUNT; s++)
		free(w->stages[s].message);
	for (size_t i = 0; w->ticks && i < w->plan->checklist_before.len; i++) {
		free(w->ticks[i].user);
		free(w->ticks[i].at);
	}
	free(w->ticks);
	for (size_t i = 0; w->pf_lines && i < w->plan->nenvs; i++)
		free(w->pf_lines[i]);
	free(w->pf_lines);
	free(w->pf_levels);
	free(w->notice);
	json_decref(w->preflight);
	json_decref(w->pf_partial);
	rb_error_clear(&w->worker_err);
	wizard_migrate_release(w);
	wizard_recover_release(w);
	wizard_sync_release(w);
	wizard_backup_release(w);
	wizard_verify_release(w);
	wizard_action_release(w);
	tui_log_free(w->log);
	w->log = NULL;
}

void
wizard_tick(struct wizard *w, size_t i, bool ticked)
{
	if (i >= w->plan->checklist_before.len)
		return;
	char at[32];
	time_now_rfc3339(at);
	const char *user = util_user_name();
	const char *item = w->plan->checklist_before.items[i];
	json_t *d = json_pack("{s:s, s:I, s:b, s:s, s:s}", "item", item, "index", (json_int_t)i,
	                      "ticked", ticked, "user", user, "at", at);
	events_emitf(w->bus, EV_CHECKLIST_TICK, "checklist", d, "%s", item);
	json_decref(d);
	struct wiz_tick *t = &w->ticks[i];
	t->ticked = ticked;
	free(t->user);
	free(t->at);
	t->user = xstrdup(user);
	t->at = xstrdup(at);
	if (wizard_ticked_count(w) == w->plan->checklist_before.len) {
		free(w->notice);
		w->notice = NULL;
	}
}

bool
wizard_all_done(const struct wizard *w)
{
	for (int i = 0; i < w->nentries; i++) {
		const struct wiz_entry *e = &w->entries[i];
		if (e->kind == WIZ_ENTRY_CHECKLIST) {
			if (wizard_ticked_count(w) < w->plan->checklist_before.len)
				return false;
		} else if (w->stages[e->stage].status != STAGE_DONE) {
			return false;
		}
	}
	return true;
}

json_t *
wizard_env_result(const struct wizard *w, const char *env)
{
	json_t *envs = json_object_get(w->preflight, "environments");
	size_t i;
	json_t *e;
	json_array_foreach(envs, i, e) {
		const char *name = json_string_value(json_object_get(e, "name"));
		if (name && env && strcmp(name, env) == 0)
			return e;
	}
	return NULL;
}

json_t *
wizard_target_result(const struct wizard *w)
{
	return wizard_env_result(w, w->plan->target);
}

void
wizard_journal_position(struct wizard *w, enum rb_log_level level, const char *why)
{
	const char *name = w->current >= 0 && w->current < w->nentries ? w->entries[w->current].name : "preflight";
	json_t *d = json_pack("{s:s}", "wizard_stage", name);
	struct rb_event ev = {
		.type = EV_LOG, .stage = NULL, .level = level, .data = d,
	};
	char *msg = xasprintf("wizard %s on stage %s", why, name);
	ev.message = msg;
	events_emit(w->bus, &ev);
	free(msg);
	json_decref(d);
}

/* --- the worker (one at a time) --- */

const char *
wizard_worker_name(enum plan_stage stage)
{
	return stage == WIZ_ROLLBACK_STAGE ? "rollback" : plan_stage_name(stage);
}

bool
wizard_worker_start(struct wizard *w, enum plan_stage stage, tui_worker_fn fn, void *arg, wiz_collect_fn collect)
{
	if (w->worker) {
		tui_log_add(w->log, TUI_LOG_WARN, "%s: cannot start while %s runs", wizard_worker_name(stage),
		            wizard_worker_name(w->worker_stage));
		return false;
	}
	struct wiz_item *done = xcalloc(1, sizeof *done);
	done->kind = WIZ_ITEM_WORKER_DONE;
	w->worker = tui_worker_start(tui_app_queue(w->app), fn, arg, done);
	if (w->worker == NULL) {
		wizard_item_free(done);
		tui_log_add(w->log, TUI_LOG_ERROR, "%s: could not start a worker thread", wizard_worker_name(stage));
		return false;
	}
	w->worker_stage = stage;
	w->worker_collect = collect;
	return true;
}

bool
wizard_running(const struct wizard *w, enum plan_stage stage)
{
	return w->worker != NULL && w->worker_stage == stage;
}

/* Joins the worker (waiting for it unless it has finished) and hands its result to its collect. */
static void
worker_collect(struct wizard *w, bool stopped)
{
	void *r = tui_worker_join(w->worker);
	wiz_collect_fn collect = w->worker_collect;
	w->worker = NULL;
	w->worker_collect = NULL;
	if (collect)
		collect(w, r, stopped);
}

void
wizard_stop_worker(struct wizard *w)
{
	if (w->worker == NULL)
		return;
	tui_worker_cancel(w->worker);
	worker_collect(w, true);
}

/* --- the preflight worker --- */

struct pf_result {
	bool            ok;
	struct rb_error err;
};

static void *
pf_main(void *arg, atomic_int *cancel)
{
	struct wizard *w = arg;
	struct rb_ctx ctx = { .bus = w->bus, .cancel = cancel };
	struct preflight_result res;
	struct pf_result *r = xcalloc(1, sizeof *r);
	r->ok = preflight_run(w->plan, &ctx, &res, &r->err);
	preflight_result_free(&res);
	return r;
}

static void
pf_collect(struct wizard *w, void *result, bool stopped)
{
	(void)stopped;
	struct pf_result *r = result;
	w->pf_gen++;
	rb_error_clear(&w->worker_err);
	if (r) {
		w->worker_err = r->err;
		free(r);
	}
	wizard_stage_end_guard(w, PLAN_STAGE_PREFLIGHT, STAGE_FAILED);
}

bool
wizard_preflight_start(struct wizard *w)
{
	if (wizard_running(w, PLAN_STAGE_PREFLIGHT))
		return true;
	if (!wizard_worker_start(w, PLAN_STAGE_PREFLIGHT, pf_main, w, pf_collect))
		return false;
	struct wiz_stage *ws = &w->stages[PLAN_STAGE_PREFLIGHT];
	w->pf_ran = true;
	w->pf_gen++;
	for (size_t i = 0; i < w->plan->nenvs; i++) {
		free(w->pf_lines[i]);
		w->pf_lines[i] = NULL;
	}
	ws->status = STAGE_RUNNING;
	ws->interrupted = false;
	ws->running_since = time_monotonic_ms();
	return true;
}

/* --- navigation --- */

const struct screen_ops *
wizard_entry_ops(const struct wizard *w, int i)
{
	const struct wiz_entry *e = &w->entries[i];
	if (e->kind == WIZ_ENTRY_CHECKLIST)
		return &wiz_checklist_screen;
	if (e->stage == PLAN_STAGE_PREFLIGHT)
		return &wiz_preflight_screen;
	if (e->stage == PLAN_STAGE_REPORT)
		return &wiz_report_screen;
	if (e->stage == PLAN_STAGE_MIGRATE)
		return &wiz_migrate_screen;
	if (e->stage == PLAN_STAGE_SYNC)
		return &wiz_sync_screen;
	if (e->stage == PLAN_STAGE_BACKUP)
		return &wiz_backup_screen;
	if (e->stage == PLAN_STAGE_VERIFY)
		return &wiz_verify_screen;
	return &wiz_action_screen;   /* staging, maintenance, maintenance_off */
}

bool
wizard_rollback_offered(const struct wizard *w)
{
	const struct wiz_entry *e = &w->entries[w->current];
	const struct screen *top = tui_top(w->app);
	if (top && top->ops == &wiz_recover_screen)
		return false;
	/* From the stages after backup; from anywhere once the run has a backup or a freeze (an incident). */
	return (e->kind == WIZ_ENTRY_STAGE && e->stage > PLAN_STAGE_BACKUP) ||
	       w->stages[PLAN_STAGE_BACKUP].status == STAGE_DONE || wizard_frozen_by_run(w);
}

bool
wizard_frozen_by_run(const struct wizard *w)
{
	/* A restore that succeeded replaced the frozen database with a fresh one, open again. */
	const json_t *rb = w->act[WIZ_ACT_ROLLBACK].result;
	if (json_is_true(json_object_get(rb, "ok")) && json_is_string(json_object_get(rb, "restored_from")))
		return false;
	return w->stages[PLAN_STAGE_MAINT_ON].status == STAGE_DONE && w->stages[PLAN_STAGE_MAINT_OFF].status != STAGE_DONE;
}

/* Whether entry i is past the checklist while it is not all ticked (thawing is never held back). */
static bool
gated(const struct wizard *w, int i)
{
	int cl = wizard_checklist_index(w);
	const struct wiz_entry *e = &w->entries[i];
	return cl >= 0 && i > cl && e->kind == WIZ_ENTRY_STAGE && e->stage != PLAN_STAGE_REPORT &&
	       e->stage != PLAN_STAGE_MAINT_OFF && wizard_ticked_count(w) < w->plan->checklist_before.len;
}

int
wizard_gate(struct wizard *w, int i)
{
	int cl = wizard_checklist_index(w);
	const struct wiz_entry *e = &w->entries[i];
	size_t total = w->plan->checklist_before.len, ticked = wizard_ticked_count(w);
	if (gated(w, i)) {
		free(w->notice);
		w->notice = xasprintf("%s cannot open yet: every checklist item must be ticked before the "
		                      "first changing stage (%zu of %zu ticked).", e->name, ticked, total);
		return cl;
	}
	if (i == cl) {
		free(w->notice);
		w->notice = NULL;
	}
	return i;
}

void
wizard_open(struct wizard *w, int i)
{
	if (i < 0 || i >= w->nentries)
		return;
	i = wizard_gate(w, i);
	if (i != w->current || tui_depth(w->app) == 0) {
		while (tui_depth(w->app) > 0)
			tui_pop(w->app);
		w->current = i;
		tui_push(w->app, wizard_entry_ops(w, i), &w->entries[i]);
	}
}

/* --- frame --- */

static int
sidebar_width(int w)
{
	return w >= 110 ? 46 : 30;
}

static int
log_rows(int h)
{
	return h >= 36 ? 8 : h >= 30 ? 6 : 3;
}

static void
frame_layout(struct tui_app *app, int h, int w, struct tui_rect *main)
{
	struct wizard *wz = tui_app_userdata(app);
	WINDOW **wins[] = { &wz->header, &wz->sidebar, &wz->logwin, &wz->keybar };
	for (size_t i = 0; i < RB_ARRAY_LEN(wins); i++) {
		if (*wins[i])
			delwin(*wins[i]);
		*wins[i] = NULL;
	}
	int lr = log_rows(h), sw = sidebar_width(w);
	int body = h - HEADER_ROWS - (lr + 1) - 1;
	wz->header = newwin(HEADER_ROWS, w, 0, 0);
	wz->sidebar = newwin(body, sw, HEADER_ROWS, 0);
	wz->logwin = newwin(lr + 1, w, HEADER_ROWS + body, 0);
	wz->keybar = newwin(1, w, h - 1, 0);
	*main = (struct tui_rect){ HEADER_ROWS, sw + 1, body, w - sw - 1 };
}

/* Writes s at column x of row y and returns the column after it. */
static int
put(WINDOW *win, int y, int x, const char *s, enum tui_role role)
{
	int w = getmaxx(win);
	if (x >= w)
		return x;
	return x + tui_text_put(win, y, x, s, 0, w - x, tui_attr(role), false);
}

static void
draw_header(struct wizard *wz)
{
	WINDOW *win = wz->header;
	int w = getmaxx(win);
	werase(win);
	tui_text_fill(win, 0, 0, w, tui_attr(TUI_ROLE_HEADER));
	int x = put(win, 0, 0, " pgrunbook  ", TUI_ROLE_HEADER);
	x = put(win, 0, x, wz->plan->name, TUI_ROLE_HEADER);
	char *run = xasprintf("run %s ", wz->run_id);
	int rw = tui_text_width(run);
	if (w - rw > x + 2)
		put(win, 0, w - rw, run, TUI_ROLE_HEADER);
	else
		rw = 0;
	free(run);
	struct notify_counts c = {0};
	if (wz->notifier)
		notifier_counts(wz->notifier, &c);
	/* the webhook outbox, when an endpoint is configured (every variable unset: the log said so) */
	if (wz->notifier && c.endpoints > c.unset_endpoints) {
		/* the long form where it fits, else "notify 4/5" */
		bool bad = c.failed > 0 || c.failing_endpoints > 0 || c.write_errors > 0;
		char failed[32] = "";
		if (c.failed)
			snprintf(failed, sizeof failed, ", %u failed", c.failed);
		char *full = xasprintf("notify: %u sent, %u pending%s%s%s  ", c.sent, c.pending, failed,
		                       c.failing_endpoints ? ", failing" : "", c.write_errors ? ", outbox errors" : "");
		char *brief = xasprintf("notify %u/%u%s  ", c.sent, c.sent + c.pending + c.failed, bad ? " !" : "");
		const char *show = w - rw - tui_text_width(full) > x + 1 ? full :
		                   w - rw - tui_text_width(brief) > x + 1 ? brief : NULL;
		if (show)
			put(win, 0, w - rw - tui_text_width(show), show,
			    bad ? TUI_ROLE_DANGER : c.pending ? TUI_ROLE_WARN : TUI_ROLE_HEADER);
		free(full);
		free(brief);
	}

	x = put(win, 1, 0, " target ", TUI_ROLE_NORMAL);
	x = put(win, 1, x, wz->plan->target, TUI_ROLE_PROD);
	json_t *t = wizard_target_result(wz);
	if (t == NULL) {
		put(win, 1, x, "  not checked yet: run preflight", TUI_ROLE_MUTED);
	} else if (!json_is_true(json_object_get(t, "reachable"))) {
		put(win, 1, x, "  unreachable at the last preflight", TUI_ROLE_DANGER);
	} else {
		const char *where = json_string_value(json_object_get(t, "where"));
		const char *ver = json_string_value(json_object_get(t, "server_version"));
		const char *user = json_string_value(json_object_get(t, "current_user"));
		bool su = json_is_true(json_object_get(t, "superuser"));
		/* "host:port/db": the database first, the host (often a long socket path) last. */
		const char *slash = where ? strrchr(where, '/') : NULL;
		char *host = slash ? xstrndup(where, (size_t)(slash - where)) : xstrdup("?");
		char *s = xasprintf("  db %s  PostgreSQL %s  role %s ", slash ? slash + 1 : where ? where : "?",
		                    ver ? ver : "?", user ? user : "?");
		x = put(win, 1, x, s, TUI_ROLE_NORMAL);
		free(s);
		x = put(win, 1, x, su ? "(superuser)" : "(not superuser)", su ? TUI_ROLE_NORMAL : TUI_ROLE_WARN);
		s = xasprintf("  host %s", host);
		put(win, 1, x, s, TUI_ROLE_MUTED);
		free(s);
		free(host);
	}
	wnoutrefresh(win);
}

/* The state word of an entry and its role. */
static const char *
entry_state(const struct wizard *wz, const struct wiz_entry *e, enum tui_role *role, char *buf, size_t size)
{
	if (e->kind == WIZ_ENTRY_CHECKLIST) {
		size_t n = wizard_ticked_count(wz), total = wz->plan->checklist_before.len;
		*role = n == total ? TUI_ROLE_OK : TUI_ROLE_NORMAL;
		if (n == total)
			return "done";
		snprintf(buf, size, "%zu/%zu ticked", n, total);
		return buf;
	}
	const struct wiz_stage *ws = &wz->stages[e->stage];
	if (!e->available && ws->status == STAGE_PENDING) {
		*role = TUI_ROLE_MUTED;
		return "unavailable";
	}
	switch (ws->status) {
	case STAGE_WAIVED: *role = TUI_ROLE_WARN; break;  /* a typed waiver: shown, never quiet */
	case STAGE_DONE: *role = TUI_ROLE_OK; break;
	case STAGE_FAILED: *role = TUI_ROLE_DANGER; break;
	case STAGE_RUNNING: *role = TUI_ROLE_WARN; break;
	default: *role = TUI_ROLE_NORMAL; break;
	}
	return journal_stage_status_name(ws->status);
}

/* "0:12 / 10:00", "0:01", "- / 10:00" or "" into buf; *over when past the budget. */
static const char *
entry_time(const struct wizard *wz, const struct wiz_entry *e, bool *over, char *buf, size_t size)
{
	*over = false;
	buf[0] = '\0';
	if (e->kind != WIZ_ENTRY_STAGE)
		return buf;
	const struct wiz_stage *ws = &wz->stages[e->stage];
	long long budget = wz->plan->budget_ms[e->stage];
	long long el = ws->running_since ? time_monotonic_ms() - ws->running_since : ws->elapsed_ms;
	bool ran = ws->running_since || ws->status != STAGE_PENDING;
	char a[24], b[24];
	if (budget > 0) {
		*over = ran && el > budget;
		snprintf(buf, size, "%s / %s", ran ? wizard_duration(el, a, sizeof a) : "-",
		         wizard_duration(budget, b, sizeof b));
	} else if (ran) {
		snprintf(buf, size, "%s", wizard_duration(el, a, sizeof a));
	}
	return buf;
}

static void
draw_sidebar(struct wizard *wz)
{
	WINDOW *win = wz->sidebar;
	int h, w;
	getmaxyx(win, h, w);
	werase(win);
	tui_text_vline(win, 0, w - 1, h, tui_attr(TUI_ROLE_MUTED));
	bool wide = w >= 46;
	int y = 0;
	for (int i = 0; i < wz->nentries && y < h; i++) {
		const struct wiz_entry *e = &wz->entries[i];
		char sbuf[32], tbuf[48];
		enum tui_role role;
		bool over;
		const char *state = entry_state(wz, e, &role, sbuf, sizeof sbuf);
		const char *tm = entry_time(wz, e, &over, tbuf, sizeof tbuf);
		bool cur = i == wz->current;
		if (cur)
			tui_text_fill(win, y, 0, w - 1, tui_attr(TUI_ROLE_CURSOR));
		put(win, y, 0, cur ? ">" : " ", cur ? TUI_ROLE_CURSOR : TUI_ROLE_NORMAL);
		put(win, y, 2, e->name, cur ? TUI_ROLE_CURSOR : TUI_ROLE_NORMAL);
		put(win, y, 18, state, cur ? TUI_ROLE_CURSOR : role);
		if (tm[0] && wide) {
			put(win, y, 31, tm, cur ? TUI_ROLE_CURSOR : over ? TUI_ROLE_WARN : TUI_ROLE_MUTED);
		} else if (tm[0] && y + 1 < h) {
			y++;
			put(win, y, 4, tm, over ? TUI_ROLE_WARN : TUI_ROLE_MUTED);
		}
		y++;
	}
	wnoutrefresh(win);
}

static void
draw_log(struct wizard *wz)
{
	WINDOW *win = wz->logwin;
	int h, w;
	getmaxyx(win, h, w);
	werase(win);
	tui_text_hline(win, 0, 0, w, tui_attr(TUI_ROLE_MUTED));
	put(win, 0, 2, " log ", TUI_ROLE_MUTED);
	tui_log_draw(wz->log, win, (struct tui_rect){ 1, 0, h - 1, w });
	wnoutrefresh(win);
}

static bool
key_enabled(enum command cmd, void *ud)
{
	struct wizard *wz = ud;
	const struct wiz_entry *e = &wz->entries[wz->current];
	const struct screen *top = tui_top(wz->app);
	bool recovering = top && top->ops == &wiz_recover_screen;   /* F4 chooses a way out there */
	bool rolling = wizard_rollback_shown(wz);                    /* F2 rolls back there */
	switch (cmd) {
	case CMD_RUN_STAGE:
		return e->available && e->kind == WIZ_ENTRY_STAGE && wz->worker == NULL && !recovering;
	case CMD_PREV_STAGE:
		return wz->current > 0 && !recovering && !rolling;
	case CMD_NEXT_STAGE:
		return wz->current + 1 < wz->nentries && !recovering && !rolling;
	case CMD_SEARCH:
		return e->kind == WIZ_ENTRY_STAGE && !recovering && !rolling &&
		       (e->stage == PLAN_STAGE_PREFLIGHT || e->stage == PLAN_STAGE_MIGRATE || e->stage == PLAN_STAGE_SYNC);
	case CMD_CONFIRM:   /* waiving the backup, or a way out of a failed migration */
		return (e->kind == WIZ_ENTRY_STAGE && e->stage == PLAN_STAGE_BACKUP && !rolling) || recovering;
	case CMD_ROLLBACK:
		return wizard_rollback_offered(wz) && !rolling;
	default:
		return true;
	}
}

static void
frame_draw(struct tui_app *app)
{
	struct wizard *wz = tui_app_userdata(app);
	draw_header(wz);
	draw_sidebar(wz);
	draw_log(wz);
	werase(wz->keybar);
	tui_keybar_draw(wz->keybar, 0, 0, getmaxx(wz->keybar), key_enabled, wz);
	wnoutrefresh(wz->keybar);
}

/* Keeps each environment's line of the running preflight (its log line names it first). */
static void
track_preflight(struct wizard *wz, const struct wiz_item *it)
{
	wz->pf_gen++;
	if (it->type == EV_STAGE_STARTED) {
		for (size_t i = 0; i < wz->plan->nenvs; i++) {
			free(wz->pf_lines[i]);
			wz->pf_lines[i] = NULL;
		}
		json_decref(wz->pf_partial);
		wz->pf_partial = json_array();
		return;
	}
	if (it->type == EV_PROGRESS && it->data) {
		json_t *env = json_object_get(it->data, "environment");
		if (env && wz->pf_partial)
			json_array_append(wz->pf_partial, env);
		return;
	}
	if (it->type != EV_LOG || it->message == NULL)
		return;
	for (size_t i = 0; i < wz->plan->nenvs; i++) {
		const char *name = wz->plan->envs[i].name;
		size_t n = strlen(name);
		if (wz->pf_lines[i] == NULL && strncmp(it->message, name, n) == 0 &&
		    strncmp(it->message + n, " [", 2) == 0) {
			wz->pf_lines[i] = xstrdup(it->message);
			wz->pf_levels[i] = it->level;
			return;
		}
	}
}

/*
 * Journals over_budget for stage s once per attempt when elapsed_ms passed its budget: from each
 * tick while it runs (so the report and the notifiers know it while it still runs) and when it
 * ends between two ticks. The sidebar shows it either way.
 */
static void
over_budget_check(struct wizard *wz, int s, long long elapsed_ms)
{
	struct wiz_stage *ws = &wz->stages[s];
	long long budget = wz->plan->budget_ms[s];
	if (budget <= 0 || ws->over_flagged || elapsed_ms <= budget)
		return;
	ws->over_flagged = true;
	const char *name = plan_stage_name((enum plan_stage)s);
	char el[32], bd[32];
	plan_format_duration(elapsed_ms, el, sizeof el);
	plan_format_duration(budget, bd, sizeof bd);
	json_t *d = json_pack("{s:s, s:I, s:I}", "stage", name, "elapsed_ms", (json_int_t)elapsed_ms, "budget_ms",
	                      (json_int_t)budget);
	events_emitf(wz->bus, EV_OVER_BUDGET, name, d, "%s took %s, over its budget of %s", name, el, bd);
	json_decref(d);
}

static void
apply_stage_event(struct wizard *wz, const struct wiz_item *it)
{
	enum plan_stage s;
	if (it->stage && strcmp(it->stage, "rollback") == 0)
		wizard_action_track(wz, WIZ_ACT_ROLLBACK, it);
	if (!journal_stage_from_name(it->stage, &s))
		return;
	struct wiz_stage *ws = &wz->stages[s];
	long long now = time_monotonic_ms();
	if (s == PLAN_STAGE_PREFLIGHT)
		track_preflight(wz, it);
	else if (s == PLAN_STAGE_MIGRATE)
		wizard_migrate_track(wz, it);
	else if (s == PLAN_STAGE_SYNC)
		wizard_sync_track(wz, it);
	else if (s == PLAN_STAGE_BACKUP)
		wizard_backup_track(wz, it);
	else if (s == PLAN_STAGE_VERIFY)
		wizard_verify_track(wz, it);
	else if (s == PLAN_STAGE_STAGING)
		wizard_action_track(wz, WIZ_ACT_STAGING, it);
	else if (s == PLAN_STAGE_MAINT_ON)
		wizard_action_track(wz, WIZ_ACT_MAINT_ON, it);
	else if (s == PLAN_STAGE_MAINT_OFF)
		wizard_action_track(wz, WIZ_ACT_MAINT_OFF, it);
	switch (it->type) {
	case EV_STAGE_STARTED:
		ws->status = STAGE_RUNNING;
		ws->interrupted = false;
		if (ws->running_since == 0) {
			ws->running_since = now;
			ws->over_flagged = false;
		}
		break;
	case EV_STAGE_DONE:
	case EV_STAGE_FAILED:
	case EV_STAGE_SKIPPED:
	case EV_STAGE_WAIVED:
		ws->status = it->type == EV_STAGE_DONE ? STAGE_DONE : it->type == EV_STAGE_FAILED ? STAGE_FAILED :
		             it->type == EV_STAGE_SKIPPED ? STAGE_SKIPPED : STAGE_WAIVED;
		if (ws->running_since) {
			ws->elapsed_ms = now - ws->running_since;
			over_budget_check(wz, s, ws->elapsed_ms);
		}
		ws->running_since = 0;
		free(ws->message);
		ws->message = it->message ? xstrdup(it->message) : NULL;
		break;
	case EV_STAGE_RESULT:
		if (s == PLAN_STAGE_PREFLIGHT && it->data) {
			json_decref(wz->preflight);
			wz->preflight = json_incref(it->data);
		}
		break;
	default:
		break;
	}
}

static void
frame_event(struct tui_app *app, void *p)
{
	struct wizard *wz = tui_app_userdata(app);
	struct wiz_item *it = p;
	if (it->kind == WIZ_ITEM_WORKER_DONE) {
		/*
		 * The completion of the running worker. After wizard_stop_worker a stopped worker's
		 * completion can still arrive: a worker that has not finished is not this item's.
		 */
		if (wz->worker && tui_worker_finished(wz->worker))
			worker_collect(wz, false);
		return;
	}
	apply_stage_event(wz, it);
	if (it->type == EV_PROGRESS)
		return;
	enum tui_log_level lvl;
	char *text = log_text(it->type, it->stage, it->message, it->level, it->data, &lvl);
	if (text)
		tui_log_add_at(wz->log, lvl, it->when, text);
	free(text);
}

/* The database this run froze: the target's, from preflight, else the target's name. */
static const char *
frozen_db(const struct wizard *wz)
{
	const char *db = json_string_value(json_object_get(wizard_target_result(wz), "dbname"));
	return db ? db : wz->plan->target;
}

static void
quit_now(struct wizard *wz)
{
	if (wizard_frozen_by_run(wz)) {
		free(wz->exit_note);
		wz->exit_note = xasprintf("pgrunbook: %s is still frozen by run %s (maintenance on); thaw it with the "
		                          "maintenance_off stage (pgrunbook resume %s) or: pgrunbook maintenance off "
		                          "--plan %s\n", frozen_db(wz), wz->run_id, wz->run_id,
		                          wz->plan->path ? wz->plan->path : "FILE");
	}
	wizard_stop_worker(wz);
	wizard_journal_position(wz, LOG_LEVEL_INFO, "closed");
	if (wizard_all_done(wz)) {
		json_t *d = json_pack("{s:s}", "state", "done");
		events_emitf(wz->bus, EV_RUN_FINISHED, NULL, d, "every stage is done");
		json_decref(d);
		/* report.md again, now that the run is finished (the report stage wrote it before) */
		const char *dir = wz->journal ? journal_dir(wz->journal) : NULL;
		char *old = dir ? xasprintf("%s/report.md", dir) : NULL;
		if (old && access(old, F_OK) == 0) {
			struct rb_error e = {0};
			char *path = report_write_run(dir, wz->plan, NULL, &e);
			if (path == NULL) {
				free(wz->exit_note);
				wz->exit_note = xasprintf("pgrunbook: the finished run's report could not be written again: %s\n",
				                          e.message ? e.message : "unknown error");
			}
			free(path);
			rb_error_clear(&e);
		}
		free(old);
	}
	tui_app_quit(wz->app, 0);
}

static void
quit_answer(void *ud, bool yes)
{
	struct wizard *wz = ud;
	if (yes)
		quit_now(wz);
	else if (wz->worker)
		tui_log_add(wz->log, TUI_LOG_INFO, "still here: the running stage goes on");
	else
		tui_log_add(wz->log, TUI_LOG_INFO, "still here");
}

static enum key_result
frame_key(struct tui_app *app, enum command cmd, int raw)
{
	(void)raw;
	struct wizard *wz = tui_app_userdata(app);
	bool base = tui_depth(app) <= 1;   /* no dialog or help above the stage screen */
	switch (cmd) {
	case CMD_NEXT_STAGE:
		if (base && wz->current + 1 < wz->nentries) {
			/* While this run holds the freeze, the checklist does not stand between it and the thaw. */
			int to = wz->current + 1;
			if (gated(wz, to) && wizard_frozen_by_run(wz))
				for (int j = to + 1; j < wz->nentries; j++)
					if (wz->entries[j].kind == WIZ_ENTRY_STAGE && wz->entries[j].stage == PLAN_STAGE_MAINT_OFF) {
						to = j;
						break;
					}
			wizard_open(wz, to);
		}
		return KEY_RESULT_HANDLED;
	case CMD_PREV_STAGE:
		if (base && wz->current > 0)
			wizard_open(wz, wz->current - 1);
		return KEY_RESULT_HANDLED;
	case CMD_QUIT:
		if (wz->worker) {
			tui_ask(app, "Quit", "A stage is running. Quit anyway? It is cancelled and the run stays "
			        "resumable.", quit_answer, wz);
		} else if (wizard_frozen_by_run(wz)) {
			char *q = xasprintf("%s is frozen by this run: quit anyway? The freeze stays (the maintenance_off "
			                    "stage, or pgrunbook maintenance off --plan FILE, thaws it).",
			                    frozen_db(wz));
			tui_ask(app, "Quit", q, quit_answer, wz);
			free(q);
		} else {
			quit_now(wz);
		}
		return KEY_RESULT_HANDLED;
	case CMD_ROLLBACK:
		if (base && wizard_rollback_offered(wz)) {
			wizard_rollback_open(wz);
			return KEY_RESULT_HANDLED;
		}
		tui_log_add(wz->log, TUI_LOG_INFO, "rollback: opens from the stages after backup (F8 there)");
		return KEY_RESULT_HANDLED;
	case CMD_RUN_STAGE:
	case CMD_CONFIRM:
		tui_log_add(wz->log, TUI_LOG_INFO, "%s: nothing to %s here",
		            wz->entries[wz->current].name, cmd == CMD_RUN_STAGE ? "run" : "confirm");
		return KEY_RESULT_HANDLED;
	default:
		return KEY_RESULT_PASS;
	}
}

static void
frame_signal(struct tui_app *app, int signo)
{
	struct wizard *wz = tui_app_userdata(app);
	wz->signo = signo;
	wizard_stop_worker(wz);
	char why[64];
	snprintf(why, sizeof why, "interrupted by signal %d", signo);
	wizard_journal_position(wz, LOG_LEVEL_WARN, why);
}

static void
frame_leave(struct tui_app *app)
{
	struct wizard *wz = tui_app_userdata(app);
	WINDOW **wins[] = { &wz->header, &wz->sidebar, &wz->logwin, &wz->keybar };
	for (size_t i = 0; i < RB_ARRAY_LEN(wins); i++) {
		if (*wins[i])
			delwin(*wins[i]);
		*wins[i] = NULL;
	}
}

static void
frame_tick(struct tui_app *app)
{
	struct wizard *wz = tui_app_userdata(app);
	long long now = time_monotonic_ms();
	for (int s = 0; s < PLAN_STAGE_COUNT; s++)
		if (wz->stages[s].running_since)
			over_budget_check(wz, s, now - wz->stages[s].running_since);
}

const struct tui_frame_ops wizard_frame = {
	.layout = frame_layout,
	.tick = frame_tick,
	.draw = frame_draw,
	.key = frame_key,
	.event = frame_event,
	.signal = frame_signal,
	.leave = frame_leave,
};

void
wizard_confirm_miss(struct wizard *w, const char *stage, const char *phrase, const char *typed)
{
	struct rb_ctx ctx = { .bus = w->bus };
	struct rb_error err = {0};
	confirm_check(&ctx, stage, phrase, typed, &err);  /* a miss: journaled, nothing runs */
	rb_error_clear(&err);
}

bool
wizard_waive_backup(struct wizard *w, const char *phrase, const char *typed)
{
	struct rb_ctx ctx = { .bus = w->bus };
	struct rb_error err = {0};
	/* The prompt compared already; core compares what was typed again and journals it. */
	bool ok = confirm_check(&ctx, "backup", phrase, typed, &err);
	if (ok) {
		const char *user = util_user_name();
		json_t *d = json_pack("{s:s, s:s}", "phrase", phrase, "user", user);
		events_emitf(w->bus, EV_STAGE_WAIVED, "backup", d, "backup waived by %s: no verified backup in this run",
		             user);
		json_decref(d);
	}
	rb_error_clear(&err);
	return ok;
}

char *
wizard_backup_missing(const struct wizard *w, const char *db, const char *doing, const char *nothing)
{
	enum run_stage_status st = w->stages[PLAN_STAGE_BACKUP].status;
	if (st == STAGE_DONE || st == STAGE_WAIVED)
		return NULL;
	bool runnable = false;
	for (int i = 0; i < w->nentries; i++)
		if (w->entries[i].kind == WIZ_ENTRY_STAGE && w->entries[i].stage == PLAN_STAGE_BACKUP)
			runnable = w->entries[i].available;
	return xasprintf("%s needs a verified backup of this run, or the backup waived (backup is %s). "
	                 "Go to the backup stage (F6 or [) and %sF4 (or c) to waive it with the typed phrase "
	                 "\"waive-backup %s\"; then come back (F7 or ]) and press F2 again. %s",
	                 doing, journal_stage_status_name(st), runnable ? "run it with F2, or press " : "press ", db,
	                 nothing);
}

struct backup_waiver {
	struct wizard *w;
	char          *phrase;
	const char    *nothing;
	void         (*go)(struct wizard *w);
};

static void
backup_waiver_miss(void *ud, const char *typed, int misses)
{
	(void)misses;
	struct backup_waiver *bw = ud;
	wizard_confirm_miss(bw->w, "backup", bw->phrase, typed);
}

static void
backup_waiver_done(void *ud, enum tui_confirm_result r, const char *typed)
{
	struct backup_waiver *bw = ud;
	struct wizard *w = bw->w;
	bool go = false;
	if (r == TUI_CONFIRM_OK)
		go = wizard_waive_backup(w, bw->phrase, typed);
	else if (r == TUI_CONFIRM_REFUSED)
		events_log(w->bus, LOG_LEVEL_WARN, "backup", "backup waiver refused after 3 wrong phrases; %s", bw->nothing);
	else
		events_log(w->bus, LOG_LEVEL_INFO, "backup", "backup waiver cancelled; %s", bw->nothing);
	void (*next)(struct wizard *) = bw->go;
	free(bw->phrase);
	free(bw);
	if (go)
		next(w);
}

void
wizard_backup_waiver_open(struct wizard *w, const char *db, const char *action, const char *const *details,
                          const char *nothing, void (*go)(struct wizard *w))
{
	struct backup_waiver *bw = xcalloc(1, sizeof *bw);
	bw->w = w;
	bw->phrase = confirm_phrase("waive-backup", db);
	bw->nothing = nothing;
	bw->go = go;
	json_t *t = wizard_target_result(w);
	const char *where = t ? json_string_value(json_object_get(t, "where")) : NULL;
	struct tui_confirm_opts o = {
		.title = "Waive the backup",
		.action = action,
		.environment = w->plan->target,
		.prod = true,
		.target = where ? where : db,
		.details = details,
		.phrase = bw->phrase,
		.miss = backup_waiver_miss,
		.done = backup_waiver_done,
		.ud = bw,
	};
	if (tui_confirm(w->app, &o) == NULL) {
		free(bw->phrase);
		free(bw);
	}
}

void
wizard_stage_end_guard(struct wizard *w, enum plan_stage stage, enum run_stage_status end)
{
	struct wiz_stage *ws = &w->stages[stage];
	if (ws->status != STAGE_RUNNING)
		return;
	ws->status = end;
	ws->elapsed_ms = time_monotonic_ms() - ws->running_since;
	ws->running_since = 0;
}
