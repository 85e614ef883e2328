/* backup.c: the backup stage screen: the plan's settings, backup_take() on the worker with its progress, the waiver. */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/backup.h"
#include "core/confirm.h"
#include "core/util.h"
#include "screens/wizard.h"
#include "tui/confirm.h"
#include "tui/dialog.h"
#include "tui/text.h"
#include "tui/theme.h"

#define STAGE "backup"

/* --- the model: followed from the events --- */

void
wizard_backup_track(struct wizard *w, const struct wiz_item *it)
{
	struct wiz_backup *b = &w->bk;
	b->gen++;
	switch (it->type) {
	case EV_STAGE_STARTED:
		json_decref(b->progress);
		b->progress = NULL;
		free(b->step);
		b->step = NULL;
		json_decref(b->result);
		b->result = NULL;
		break;
	case EV_PROGRESS:
		if (it->data) {
			json_decref(b->progress);
			b->progress = json_incref(it->data);
		}
		break;
	case EV_STEP:
		if (it->message) {
			free(b->step);
			b->step = xstrdup(it->message);
		}
		break;
	case EV_STAGE_RESULT:
		if (it->data) {
			json_decref(b->result);
			b->result = json_incref(it->data);
		}
		break;
	default:
		break;
	}
}

void
wizard_backup_release(struct wizard *w)
{
	struct wiz_backup *b = &w->bk;
	json_decref(b->result);
	json_decref(b->progress);
	free(b->step);
	rb_error_clear(&b->err);
	memset(b, 0, sizeof *b);
}

/* --- the worker --- */

struct bk_work {
	struct wizard  *wz;
	char           *who;
	bool            ok;
	struct rb_error err;
};

static void *
bk_main(void *arg, atomic_int *cancel)
{
	struct bk_work *job = arg;
	struct rb_ctx ctx = { .bus = job->wz->bus, .cancel = cancel };
	struct backup_opts opts = { .env = NULL, .who = job->who, .run_id = job->wz->run_id };
	struct backup_result r;
	job->ok = backup_take(job->wz->plan, &opts, &ctx, &r, &job->err);
	backup_result_free(&r);
	return job;
}

static void
bk_collect(struct wizard *w, void *result, bool stopped)
{
	(void)stopped;
	struct bk_work *job = result;
	struct wiz_backup *b = &w->bk;
	b->gen++;
	json_decref(b->progress);
	b->progress = NULL;
	if (job) {
		b->ok = job->ok;
		rb_error_clear(&b->err);
		b->err = job->err;
		free(job->who);
		free(job);
	}
	wizard_stage_end_guard(w, PLAN_STAGE_BACKUP, STAGE_FAILED);
}

static void
bk_start(struct wizard *wz)
{
	struct bk_work *job = xcalloc(1, sizeof *job);
	job->wz = wz;
	job->who = xstrdup(util_user_name());
	if (!wizard_worker_start(wz, PLAN_STAGE_BACKUP, bk_main, job, bk_collect)) {
		free(job->who);
		free(job);
		return;
	}
	struct wiz_backup *b = &wz->bk;
	b->ran = true;
	b->ok = false;
	b->gen++;
	rb_error_clear(&b->err);
	json_decref(b->progress);
	b->progress = NULL;
	free(b->step);
	b->step = NULL;
}

/* --- the waiver (DESIGN.md "Preconditions") --- */

static void
waived(struct wizard *w)
{
	(void)w;   /* wizard_waive_backup() journaled it; the sidebar shows it */
}

/*
 * Going on without a verified backup of this run is a dangerous step: the phrase
 * "waive-backup <target database>", computed and checked by core (confirm_check journals every
 * miss, never the typed text).
 */
static void
waiver_open(struct screen *s)
{
	struct wizard *wz = tui_app_userdata(s->app);
	json_t *t = wizard_target_result(wz);
	const char *db = t ? json_string_value(json_object_get(t, "dbname")) : NULL;
	if (db == NULL) {
		tui_message(s->app, "Waive the backup",
		            "Run preflight first: the phrase names the target database, which preflight "
		            "reads from the server.", TUI_ROLE_WARN, NULL, NULL);
		return;
	}
	enum run_stage_status st = wz->stages[PLAN_STAGE_BACKUP].status;
	if (st == STAGE_WAIVED) {
		tui_message(s->app, "Waive the backup", "The backup of this run is already waived.", TUI_ROLE_NORMAL, NULL, NULL);
		return;
	}
	if (st == STAGE_DONE || wizard_running(wz, PLAN_STAGE_BACKUP)) {
		tui_message(s->app, "Waive the backup", st == STAGE_DONE ?
		            "This run has a verified backup: there is nothing to waive." :
		            "A backup is running: wait for it, or Esc cancels it first.", TUI_ROLE_NORMAL, NULL, NULL);
		return;
	}
	static const char *const details[] = {
		"Migrate and sync will accept this run without a verified backup.",
		"If they go wrong, there is no backup of this run to restore.",
		NULL,
	};
	wizard_backup_waiver_open(wz, db, "go on without a verified backup (journaled as waived)", details,
	                          "nothing changed", waived);
}

/* --- the screen --- */

struct bk_screen {
	struct wizard *wz;
};

static int
bk_enter(struct screen *s, void *arg)
{
	(void)arg;
	struct bk_screen *bs = s->priv;
	bs->wz = tui_app_userdata(s->app);
	return 0;
}

/* Writes text wrapped at w - 2 columns from row *y; stops at h. */
static void
put_wrapped(WINDOW *win, int *y, int h, int w, const char *text, enum tui_role role)
{
	struct strlist l = {0};
	tui_text_wrap(text, w - 2, &l);
	for (size_t i = 0; i < l.len && *y < h; i++)
		tui_text_put(win, (*y)++, 1, l.items[i], 0, w - 1, tui_attr(role), true);
	strlist_free(&l);
}

static void
put_line(WINDOW *win, int *y, int h, int w, enum tui_role role, const char *fmt, ...) RB_PRINTF(6, 7);

static void
put_line(WINDOW *win, int *y, int h, int w, enum tui_role role, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *t = xvasprintf(fmt, ap);
	va_end(ap);
	put_wrapped(win, y, h, w, t, role);
	free(t);
}

/* The running backup: what it does now. */
static void
draw_running(struct wizard *wz, WINDOW *win, int *y, int h, int w)
{
	const struct wiz_backup *b = &wz->bk;
	json_t *pr = b->progress;
	const char *kind = json_string_value(json_object_get(pr, "kind"));
	if (kind && strcmp(kind, "backup") == 0) {
		char bytes[32], rate[32];
		format_bytes((long long)json_integer_value(json_object_get(pr, "bytes")), bytes, sizeof bytes);
		format_bytes((long long)json_integer_value(json_object_get(pr, "rate")), rate, sizeof rate);
		put_line(win, y, h, w, TUI_ROLE_WARN, "Dumping: %lld of %lld tables done, %s written, %s/s",
		         (long long)json_integer_value(json_object_get(pr, "tables_done")),
		         (long long)json_integer_value(json_object_get(pr, "tables_total")), bytes, rate);
	} else if (kind && strcmp(kind, "verify") == 0) {
		const char *scratch = json_string_value(json_object_get(pr, "scratch_database"));
		put_line(win, y, h, w, TUI_ROLE_WARN, "Verifying: test restore into %s", scratch ? scratch : "a scratch database");
	} else {
		put_line(win, y, h, w, TUI_ROLE_WARN, "Starting the backup...");
	}
	if (b->step)
		put_line(win, y, h, w, TUI_ROLE_MUTED, "Last step: %s", b->step);
	put_wrapped(win, y, h, w, "Esc cancels the backup (a partial dump is renamed .failed; nothing that "
	            "looks like a backup is left).", TUI_ROLE_MUTED);
}

/* The last backup's result. */
static void
draw_result(struct wizard *wz, WINDOW *win, int *y, int h, int w)
{
	const struct wiz_backup *b = &wz->bk;
	json_t *r = b->result;
	bool verified = json_is_true(json_object_get(r, "verified"));
	const char *path = json_string_value(json_object_get(r, "path"));
	const char *sha = json_string_value(json_object_get(r, "sha256"));
	const char *why = json_string_value(json_object_get(r, "why"));
	char size[32];
	format_bytes((long long)json_integer_value(json_object_get(r, "size")), size, sizeof size);
	put_line(win, y, h, w, verified ? TUI_ROLE_OK : TUI_ROLE_DANGER, "%s", verified ? "Backup verified." :
	         "Backup not verified: it does not count.");
	if (path)
		put_line(win, y, h, w, TUI_ROLE_NORMAL, "Path: %s", path);
	put_line(win, y, h, w, TUI_ROLE_NORMAL, "Size: %s (%lld bytes), %zu tables", size,
	         (long long)json_integer_value(json_object_get(r, "size")),
	         json_object_size(json_object_get(r, "tables")));
	if (sha)
		put_line(win, y, h, w, TUI_ROLE_NORMAL, "SHA-256: %s", sha);
	put_line(win, y, h, w, verified ? TUI_ROLE_OK : TUI_ROLE_DANGER, "Verified: %s", verified ? "yes" : "no");
	if (why)
		put_line(win, y, h, w, TUI_ROLE_MUTED, "Why: %s", why);
}

static void
bk_draw(struct screen *s)
{
	struct bk_screen *bs = s->priv;
	struct wizard *wz = bs->wz;
	const struct plan *p = wz->plan;
	int h, w;
	getmaxyx(s->win, h, w);
	int y = 0;
	tui_text_put(s->win, y++, 1, "Stage: backup", 0, w - 1, tui_attr(TUI_ROLE_HEADER), true);
	y++;
	put_line(s->win, &y, h, w, TUI_ROLE_NORMAL, "What it does: pg_dump %s format of %s to %s, then its "
	         "SHA-256 and a test restore.", plan_backup_format_name(p->backup.format), p->target,
	         p->backup.dir ? p->backup.dir : ".");
	json_t *t = wizard_target_result(wz);
	const char *db = t ? json_string_value(json_object_get(t, "dbname")) : NULL;
	char age[32];
	plan_format_duration(p->backup.max_age_ms, age, sizeof age);
	put_line(s->win, &y, h, w, TUI_ROLE_NORMAL, "Database: %s (%s)", db ? db : "? (run preflight)", p->target);
	put_line(s->win, &y, h, w, TUI_ROLE_NORMAL, "Dir %s  format %s  jobs %d  max_age %s",
	         p->backup.dir ? p->backup.dir : ".", plan_backup_format_name(p->backup.format), p->backup.jobs, age);
	if (y < h)
		y++;
	const struct wiz_backup *b = &wz->bk;
	enum run_stage_status st = wz->stages[PLAN_STAGE_BACKUP].status;
	if (wizard_running(wz, PLAN_STAGE_BACKUP)) {
		draw_running(wz, s->win, &y, h, w);
	} else {
		if (b->result)
			draw_result(wz, s->win, &y, h, w);
		if (b->ran && !b->ok && b->err.message)
			put_line(s->win, &y, h, w, TUI_ROLE_DANGER, "Failed: %s%s%s", b->err.message,
			         b->err.detail ? ". " : "", b->err.detail ? b->err.detail : "");
		if (st == STAGE_WAIVED)
			put_line(s->win, &y, h, w, TUI_ROLE_WARN, "The backup of this run is waived (typed, journaled).");
		if (y < h)
			y++;
		put_wrapped(s->win, &y, h, w, "Migrate and sync need a verified backup of this run. F2 (or r) takes "
		            "it; F4 (or c) waives it with a typed phrase, journaled. F6 and F7 (or [ and ]) move "
		            "between stages.", TUI_ROLE_MUTED);
	}
}

static enum key_result
bk_key(struct screen *s, enum command cmd, int raw)
{
	(void)raw;
	struct bk_screen *bs = s->priv;
	struct wizard *wz = bs->wz;
	switch (cmd) {
	case CMD_RUN_STAGE:
		if (wizard_running(wz, PLAN_STAGE_BACKUP))
			return KEY_RESULT_HANDLED;
		bk_start(wz);
		return KEY_RESULT_HANDLED;
	case CMD_CONFIRM:
		waiver_open(s);
		return KEY_RESULT_HANDLED;
	case CMD_CANCEL:
		if (wizard_running(wz, PLAN_STAGE_BACKUP)) {
			tui_worker_cancel(wz->worker);
			tui_log_add(wz->log, TUI_LOG_WARN, "backup: cancelling the backup");
			return KEY_RESULT_HANDLED;
		}
		return KEY_RESULT_PASS;
	default:
		return KEY_RESULT_PASS;
	}
}

const struct screen_ops wiz_backup_screen = {
	.name = STAGE,
	.priv_size = sizeof(struct bk_screen),
	.enter = bk_enter,
	.draw = bk_draw,
	.key = bk_key,
};
