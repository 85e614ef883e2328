/* verify.c: the verify stage screen: verify_run() on the worker against this run's backup, the checks with failures first, rollback offered on failure. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "core/verify.h"
#include "screens/wizard.h"
#include "tui/text.h"
#include "tui/theme.h"

/* --- the model --- */

void
wizard_verify_track(struct wizard *w, const struct wiz_item *it)
{
	struct wiz_verify *v = &w->vf;
	v->gen++;
	if (it->type == EV_STAGE_STARTED) {
		json_decref(v->result);
		v->result = NULL;
	} else if (it->type == EV_STAGE_RESULT && it->data) {
		json_decref(v->result);
		v->result = json_incref(it->data);
	}
}

void
wizard_verify_release(struct wizard *w)
{
	json_decref(w->vf.result);
	rb_error_clear(&w->vf.err);
	memset(&w->vf, 0, sizeof w->vf);
}

/*
 * The row count baseline of this run: its backup's stage_result when the backup stage is done
 * and the backup verified (it has "database" and "tables", what verify_run() compares with), as
 * a baseline object; NULL when the run has no verified backup. Caller decrefs.
 */
static json_t *
run_baseline(const struct wizard *w)
{
	const json_t *r = w->bk.result;
	if (w->stages[PLAN_STAGE_BACKUP].status != STAGE_DONE || r == NULL ||
	    !json_is_true(json_object_get(r, "verified")) || !json_is_object(json_object_get(r, "tables")) ||
	    !json_is_string(json_object_get(r, "database")))
		return NULL;
	return json_pack("{s:s, s:O?, s:O, s:O?, s:n, s:O}", "source", "backup_manifest", "path",
	                 json_object_get(r, "manifest"), "database", json_object_get(r, "database"), "environment",
	                 json_object_get(r, "environment"), "taken_at", "tables", json_object_get(r, "tables"));
}

/* --- the worker --- */

struct vf_work {
	struct wizard  *wz;
	json_t         *baseline;  /* or NULL */
	bool            ok;
	json_t         *result;
	struct rb_error err;
};

static void *
vf_main(void *arg, atomic_int *cancel)
{
	struct vf_work *job = arg;
	struct rb_ctx ctx = { .bus = job->wz->bus, .cancel = cancel };
	job->ok = verify_run(job->wz->plan, NULL, job->baseline, &ctx, &job->result, &job->err);
	return job;
}

static void
vf_collect(struct wizard *w, void *result, bool stopped)
{
	(void)stopped;
	struct vf_work *job = result;
	struct wiz_verify *v = &w->vf;
	v->gen++;
	if (job) {
		if (job->result) {
			json_decref(v->result);
			v->result = job->result;
		}
		rb_error_clear(&v->err);
		v->err = job->err;
		json_decref(job->baseline);
		free(job);
	}
	wizard_stage_end_guard(w, PLAN_STAGE_VERIFY, STAGE_FAILED);
}

static void
vf_start(struct wizard *wz)
{
	struct vf_work *job = xcalloc(1, sizeof *job);
	job->wz = wz;
	job->baseline = run_baseline(wz);
	bool with = job->baseline != NULL;
	if (!wizard_worker_start(wz, PLAN_STAGE_VERIFY, vf_main, job, vf_collect)) {
		json_decref(job->baseline);
		free(job);
		return;
	}
	wz->vf.ran = true;
	wz->vf.baseline = with;
	wz->vf.gen++;
	rb_error_clear(&wz->vf.err);
}

/* --- the screen --- */

struct vf_screen {
	struct wizard *wz;
	int            top;    /* the first line of the checks shown */
	int            lines;  /* how many lines the checks took at the last draw */
	int            room;   /* ... and how many fit */
};

static int
vf_enter(struct screen *s, void *arg)
{
	(void)arg;
	struct vf_screen *vs = s->priv;
	vs->wz = tui_app_userdata(s->app);
	return 0;
}

/* Failures first, then not run, notes, passes; stable within each. */
static int
result_rank(const char *r)
{
	if (r == NULL)
		return 4;
	if (strcmp(r, "fail") == 0)
		return 0;
	if (strcmp(r, "not run") == 0)
		return 1;
	if (strcmp(r, "note") == 0)
		return 2;
	return 3;
}

static enum tui_role
result_role(const char *r)
{
	switch (result_rank(r)) {
	case 0: return TUI_ROLE_DANGER;
	case 1: return TUI_ROLE_WARN;
	case 3: return TUI_ROLE_OK;
	default: return TUI_ROLE_NORMAL;
	}
}

#define COL_RESULT 8
#define COL_CHECK  22
#define COL_OBJECT 26
#define COL_CHECK_NARROW 18   /* "not_valid_constraints" is cut there */

/*
 * The checks as lines: "result  check  object  detail", the detail wrapped in its column (or
 * below the row when the screen is narrow). Draws the lines from vs->top that fit in rows y..h.
 */
static void
draw_checks(struct vf_screen *vs, WINDOW *win, int y, int h, int w)
{
	json_t *checks = json_object_get(vs->wz->vf.result, "checks");
	bool wide = w >= COL_RESULT + COL_CHECK + COL_OBJECT + 30;
	int cc = wide ? COL_CHECK : COL_CHECK_NARROW;
	int dx = wide ? 1 + COL_RESULT + COL_CHECK + COL_OBJECT : 3;
	int dw = w - 1 - dx;
	attr_t head = tui_attr(TUI_ROLE_MUTED);
	tui_text_put(win, y, 1, "Result", 0, COL_RESULT, head, false);
	tui_text_put(win, y, 1 + COL_RESULT, "Check", 0, cc, head, false);
	tui_text_put(win, y, 1 + COL_RESULT + cc, "Object", 0, COL_OBJECT, head, false);
	if (wide)
		tui_text_put(win, y, dx, "Detail", 0, dw, head, false);
	y++;
	vs->room = h - y;
	int line = 0;
	for (int rank = 0; rank <= 4; rank++) {
		size_t i;
		json_t *c;
		json_array_foreach(checks, i, c) {
			const char *res = json_string_value(json_object_get(c, "result"));
			if (result_rank(res) != rank)
				continue;
			const char *kind = json_string_value(json_object_get(c, "kind"));
			const char *name = json_string_value(json_object_get(c, "name"));
			const char *object = json_string_value(json_object_get(c, "object"));
			const char *detail = json_string_value(json_object_get(c, "detail"));
			struct strlist l = {0};
			tui_text_wrap(detail ? detail : "", dw > 10 ? dw : 10, &l);
			int row = line - vs->top;
			if (row >= 0 && y + row < h) {
				tui_text_put(win, y + row, 1, res ? res : "?", 0, COL_RESULT - 1, tui_attr(result_role(res)), false);
				tui_text_put(win, y + row, 1 + COL_RESULT, kind ? kind : "?", 0, cc - 1, tui_attr(TUI_ROLE_NORMAL),
				             false);
				tui_text_put(win, y + row, 1 + COL_RESULT + cc, name ? name : object ? object : "-", 0,
				             wide ? COL_OBJECT - 1 : w - 2 - COL_RESULT - cc, tui_attr(TUI_ROLE_NORMAL), false);
			}
			if (!wide)
				line++;
			for (size_t k = 0; k < l.len; k++) {
				row = line - vs->top;
				if (row >= 0 && y + row < h)
					tui_text_put(win, y + row, dx, l.items[k], 0, dw, tui_attr(TUI_ROLE_NORMAL), false);
				line++;
			}
			if (l.len == 0 && wide)
				line++;
			strlist_free(&l);
		}
	}
	vs->lines = line;
}

static void
vf_draw(struct screen *s)
{
	struct vf_screen *vs = s->priv;
	struct wizard *wz = vs->wz;
	const struct plan *p = wz->plan;
	int h, w;
	getmaxyx(s->win, h, w);
	int y = 0;
	tui_text_put(s->win, y++, 1, "Stage: verify", 0, w - 1, tui_attr(TUI_ROLE_HEADER), true);
	y++;
	const struct wiz_verify *v = &wz->vf;
	if (v->result == NULL)   /* once there is a result, the table says it */
		wizard_put(s->win, &y, h, w, TUI_ROLE_NORMAL, "What it does: read-only checks of %s: row counts, orphaned "
	           "rows%s, INVALID indexes, NOT VALID constraints, failed Prisma migrations and %zu custom check%s.",
	           p->target, p->verify.orphans ? "" : " (off)", p->verify.nchecks, p->verify.nchecks == 1 ? "" : "s");
	json_t *bl = run_baseline(wz);
	const char *path = json_string_value(json_object_get(bl, "path"));
	const char *base = path && strrchr(path, '/') ? strrchr(path, '/') + 1 : path;   /* in backup.dir */
	if (bl)
		wizard_put(s->win, &y, h, w, TUI_ROLE_NORMAL, "Row counts: against this run's backup %s (%zu tables)",
		           base ? base : "", json_object_size(json_object_get(bl, "tables")));
	else
		wizard_put(s->win, &y, h, w, TUI_ROLE_WARN, "row counts: not run, no backup in this run");
	json_decref(bl);
	if (y < h)
		y++;
	if (wizard_running(wz, PLAN_STAGE_VERIFY)) {
		wizard_put(s->win, &y, h, w, TUI_ROLE_WARN, "Verifying %s (read-only)...  (Esc cancels)", p->target);
		return;
	}
	if (v->result == NULL) {
		wizard_put(s->win, &y, h, w, TUI_ROLE_MUTED, "Not run yet. F2 (or r) runs every check (read-only). "
		           "F6 and F7 (or [ and ]) move between stages.");
		return;
	}
	json_t *sum = json_object_get(v->result, "summary");
	long long failed = (long long)json_integer_value(json_object_get(sum, "failed"));
	long long not_run = (long long)json_integer_value(json_object_get(sum, "not_run"));
	long long notes = (long long)json_integer_value(json_object_get(sum, "notes"));
	char nr[48] = "", nt[48] = "";
	if (not_run)
		snprintf(nr, sizeof nr, ", %lld not run", not_run);
	if (notes)
		snprintf(nt, sizeof nt, ", %lld note%s", notes, notes == 1 ? "" : "s");
	wizard_put(s->win, &y, h, w, failed ? TUI_ROLE_DANGER : TUI_ROLE_OK, "%lld checks: %lld passed, %lld failed%s%s",
	           (long long)json_integer_value(json_object_get(sum, "checks")),
	           (long long)json_integer_value(json_object_get(sum, "passed")), failed, nr, nt);
	const char *error = json_string_value(json_object_get(v->result, "error"));
	if (error)
		wizard_put(s->win, &y, h, w, TUI_ROLE_DANGER, "Error: %s", error);
	if (failed || error)
		wizard_put(s->win, &y, h, w, TUI_ROLE_WARN, "F8: rollback (guided: shows the path it chooses and why, asks first)");
	if (y < h)
		y++;
	if (y + 1 < h)
		draw_checks(vs, s->win, y, h, w);
}

static enum key_result
vf_key(struct screen *s, enum command cmd, int raw)
{
	(void)raw;
	struct vf_screen *vs = s->priv;
	struct wizard *wz = vs->wz;
	int page = vs->room > 1 ? vs->room - 1 : 1;
	int max = vs->lines - vs->room > 0 ? vs->lines - vs->room : 0;
	switch (cmd) {
	case CMD_RUN_STAGE:
		if (!wizard_running(wz, PLAN_STAGE_VERIFY)) {
			vs->top = 0;
			vf_start(wz);
		}
		return KEY_RESULT_HANDLED;
	case CMD_CANCEL:
		if (wizard_running(wz, PLAN_STAGE_VERIFY)) {
			tui_worker_cancel(wz->worker);   /* read-only: no question */
			tui_log_add(wz->log, TUI_LOG_WARN, "verify: cancelling");
			return KEY_RESULT_HANDLED;
		}
		return KEY_RESULT_PASS;
	case CMD_UP:
	case CMD_DOWN:
	case CMD_PAGE_UP:
	case CMD_PAGE_DOWN:
	case CMD_HOME:
	case CMD_END:
		vs->top += cmd == CMD_UP ? -1 : cmd == CMD_DOWN ? 1 : cmd == CMD_PAGE_UP ? -page :
		           cmd == CMD_PAGE_DOWN ? page : cmd == CMD_HOME ? -vs->lines : vs->lines;
		if (vs->top > max)
			vs->top = max;
		if (vs->top < 0)
			vs->top = 0;
		return KEY_RESULT_HANDLED;
	default:
		return KEY_RESULT_PASS;
	}
}

const struct screen_ops wiz_verify_screen = {
	.name = VERIFY_STAGE,
	.priv_size = sizeof(struct vf_screen),
	.enter = vf_enter,
	.draw = vf_draw,
	.key = vf_key,
};
