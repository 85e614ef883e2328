/* tuidriver.c: a small app on the tui toolkit for tests/tui/toolkit.sh: table, prompts, progress. */
#include "config.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/util.h"
#include "tui/app.h"
#include "tui/confirm.h"
#include "tui/dialog.h"
#include "tui/help.h"
#include "tui/logpane.h"
#include "tui/progress.h"
#include "tui/table.h"
#include "tui/text.h"
#include "tui/textview.h"
#include "tui/theme.h"

#define LOG_ROWS 4

/* Queue items: posted by the worker thread, delivered on the UI thread. */
enum item_kind { ITEM_LOG, ITEM_PROGRESS, ITEM_DONE };
struct item {
	enum item_kind kind;
	int            generation;
	long long      done;
	char           text[96];
};

struct driver {
	struct tui_log *log;
	WINDOW         *header, *logwin, *keybar;
	long            rows;
	long long       work_units;
	int             generation;
	bool            signal_hook_ran;
	struct tui_worker *running;   /* the worker of the open progress screen, for the signal hook */
};

static struct driver drv;

static void
item_free(void *p)
{
	free(p);
}

static struct item *
item_new(enum item_kind kind, int generation)
{
	struct item *it = xcalloc(1, sizeof *it);
	it->kind = kind;
	it->generation = generation;
	return it;
}

/* --- frame: header, log pane, key bar --- */

static void
frame_layout(struct tui_app *app, int h, int w, struct tui_rect *main)
{
	struct driver *d = tui_app_userdata(app);
	if (d->header)
		delwin(d->header);
	if (d->logwin)
		delwin(d->logwin);
	if (d->keybar)
		delwin(d->keybar);
	d->header = newwin(1, w, 0, 0);
	d->logwin = newwin(LOG_ROWS + 1, w, h - 1 - LOG_ROWS - 1, 0);
	d->keybar = newwin(1, w, h - 1, 0);
	*main = (struct tui_rect){ 1, 0, h - 1 - (LOG_ROWS + 1) - 1, w };
}

static void
frame_draw(struct tui_app *app)
{
	struct driver *d = tui_app_userdata(app);
	int w = getmaxx(d->header);
	werase(d->header);
	int x = tui_text_put(d->header, 0, 0, " tuidriver  target ", 0, w, tui_attr(TUI_ROLE_HEADER), false);
	x += tui_text_put(d->header, 0, x, "prod", 0, w - x, tui_attr(TUI_ROLE_PROD), false);
	tui_text_put(d->header, 0, x, "  db.example:5432/shop_prod", 0, w - x, tui_attr(TUI_ROLE_HEADER), true);
	wnoutrefresh(d->header);

	werase(d->logwin);
	tui_text_hline(d->logwin, 0, 0, w, tui_attr(TUI_ROLE_MUTED));
	tui_text_put(d->logwin, 0, 2, " log ", 0, 5, tui_attr(TUI_ROLE_MUTED), false);
	tui_log_draw(d->log, d->logwin, (struct tui_rect){ 1, 0, LOG_ROWS, w });
	wnoutrefresh(d->logwin);

	werase(d->keybar);
	tui_keybar_draw(d->keybar, 0, 0, w, NULL, NULL);
	wnoutrefresh(d->keybar);
}

static void
frame_event(struct tui_app *app, void *p)
{
	struct driver *d = tui_app_userdata(app);
	struct item *it = p;
	if (it->kind == ITEM_LOG)
		tui_log_add(d->log, TUI_LOG_INFO, "%s", it->text);
}

static void
frame_signal(struct tui_app *app, int signo)
{
	struct driver *d = tui_app_userdata(app);
	(void)signo;
	/* What the wizard does here: cancel the running statement and journal it. */
	if (d->running)
		tui_worker_cancel(d->running);
	d->signal_hook_ran = true;
}

static void
frame_leave(struct tui_app *app)
{
	struct driver *d = tui_app_userdata(app);
	delwin(d->header);
	delwin(d->logwin);
	delwin(d->keybar);
	d->header = d->logwin = d->keybar = NULL;
}

static const struct tui_frame_ops frame = {
	.layout = frame_layout,
	.draw = frame_draw,
	.event = frame_event,
	.signal = frame_signal,
	.leave = frame_leave,
};

/* --- text screen: the "SQL" of a row, with margin classes --- */

struct text_screen {
	struct tui_textview *tv;
};

static int
text_enter(struct screen *s, void *arg)
{
	struct text_screen *t = s->priv;
	long row = *(long *)arg;
	t->tv = tui_textview_new();
	char *sql = xasprintf("-- row %ld\n"
	                      "BEGIN;\n"
	                      "UPDATE \"User\" SET note = 'checked' WHERE id = %ld;\n"
	                      "ALTER TABLE \"User\" DROP COLUMN \"senderPhone\";\n"
	                      "CREATE INDEX CONCURRENTLY user_email ON \"User\" (email);\n"
	                      "COMMIT;\n",
	                      row + 1, row + 1);
	tui_textview_set_text(t->tv, sql);
	free(sql);
	tui_textview_set_margin_width(t->tv, 9);
	tui_textview_set_margin(t->tv, 2, "safe", TUI_ROLE_OK);
	tui_textview_set_margin(t->tv, 3, "DANGER", TUI_ROLE_DANGER);
	tui_textview_set_role(t->tv, 3, TUI_ROLE_DANGER);
	tui_textview_set_margin(t->tv, 4, "risky", TUI_ROLE_WARN);
	return 0;
}

static void
text_draw(struct screen *s)
{
	struct text_screen *t = s->priv;
	int h, w;
	getmaxyx(s->win, h, w);
	tui_text_put(s->win, 0, 0, "SQL for the row (Esc goes back)", 0, w, tui_attr(TUI_ROLE_HEADER), true);
	tui_textview_draw(t->tv, s->win, (struct tui_rect){ 1, 0, h - 1, w });
}

static enum key_result
text_key(struct screen *s, enum command cmd, int raw)
{
	(void)raw;
	struct text_screen *t = s->priv;
	if (cmd == CMD_CANCEL) {
		tui_pop(s->app);
		return KEY_RESULT_HANDLED;
	}
	return tui_textview_command(t->tv, cmd) ? KEY_RESULT_HANDLED : KEY_RESULT_PASS;
}

static void
text_leave(struct screen *s)
{
	struct text_screen *t = s->priv;
	tui_textview_free(t->tv);
}

static const struct screen_ops text_screen_ops = {
	.name = "text",
	.priv_size = sizeof(struct text_screen),
	.enter = text_enter,
	.draw = text_draw,
	.key = text_key,
	.leave = text_leave,
};

/* --- progress screen: a worker thread counts, the UI shows rate and ETA --- */

struct work {
	struct tui_queue *queue;
	int               generation;
	long long         units;
};

static void *
work_main(void *arg, atomic_int *cancel)
{
	struct work *w = arg;
	struct item *it = item_new(ITEM_LOG, w->generation);
	snprintf(it->text, sizeof it->text, "worker: counting to %lld", w->units);
	tui_queue_post(w->queue, it);
	long long i;
	for (i = 0; i < w->units && !*cancel; i++) {
		struct timespec ts = { 0, 1000000 };
		nanosleep(&ts, NULL);
		if ((i + 1) % 20 == 0 || i + 1 == w->units) {
			it = item_new(ITEM_PROGRESS, w->generation);
			it->done = i + 1;
			tui_queue_post(w->queue, it);
		}
	}
	long long *result = xmalloc(sizeof *result);
	*result = i;
	return result;
}

struct progress_screen {
	struct tui_progress progress;
	struct tui_worker  *worker;
	struct work         work;
	const char         *state;
	long long           counted;
};

static int
progress_enter(struct screen *s, void *arg)
{
	(void)arg;
	struct progress_screen *p = s->priv;
	p->work.queue = tui_app_queue(s->app);
	p->work.generation = ++drv.generation;
	p->work.units = drv.work_units;
	tui_progress_start(&p->progress, p->work.units, time_monotonic_ms());
	struct item *done = item_new(ITEM_DONE, p->work.generation);
	p->worker = tui_worker_start(p->work.queue, work_main, &p->work, done);
	if (p->worker == NULL) {
		free(done);
		return -1;
	}
	drv.running = p->worker;
	p->state = "running";
	return 0;
}

static void
progress_finish(struct progress_screen *p)
{
	long long *n = tui_worker_join(p->worker);
	p->worker = NULL;
	drv.running = NULL;
	p->counted = n ? *n : 0;
	free(n);
}

static void
progress_event(struct screen *s, void *ip)
{
	struct progress_screen *p = s->priv;
	struct item *it = ip;
	if (it->generation != p->work.generation)
		return;
	if (it->kind == ITEM_PROGRESS) {
		tui_progress_update(&p->progress, it->done, time_monotonic_ms());
	} else if (it->kind == ITEM_DONE && p->worker) {
		progress_finish(p);
		p->state = p->counted == p->work.units ? "done" : "cancelled";
		tui_log_add(drv.log, p->counted == p->work.units ? TUI_LOG_OK : TUI_LOG_WARN, "worker: %s at %lld",
		            p->state, p->counted);
	}
}

static void
progress_draw(struct screen *s)
{
	struct progress_screen *p = s->priv;
	int w = getmaxx(s->win);
	tui_text_put(s->win, 0, 0, "Counting on a worker thread (Esc cancels, Esc again goes back)", 0, w,
	             tui_attr(TUI_ROLE_HEADER), true);
	tui_progress_draw(&p->progress, s->win, 2, 1, w - 2, time_monotonic_ms());
	char *line = xasprintf("state: %s", p->state);
	tui_text_put(s->win, 4, 1, line, 0, w - 2, tui_attr(TUI_ROLE_NORMAL), true);
	free(line);
}

static enum key_result
progress_key(struct screen *s, enum command cmd, int raw)
{
	(void)raw;
	struct progress_screen *p = s->priv;
	if (cmd == CMD_CANCEL) {
		if (p->worker) {
			tui_worker_cancel(p->worker);
			p->state = "cancelling";
		} else {
			tui_pop(s->app);
		}
		return KEY_RESULT_HANDLED;
	}
	return KEY_RESULT_PASS;
}

static void
progress_leave(struct screen *s)
{
	struct progress_screen *p = s->priv;
	if (p->worker) {
		tui_worker_cancel(p->worker);
		progress_finish(p);
	}
}

static const struct screen_ops progress_screen_ops = {
	.name = "progress",
	.priv_size = sizeof(struct progress_screen),
	.enter = progress_enter,
	.draw = progress_draw,
	.key = progress_key,
	.event = progress_event,
	.leave = progress_leave,
};

/* --- table screen: a million generated rows --- */

static const struct tui_table_column columns[] = {
	{ "id", 0, 0, 0, true },
	{ "name", 0, 0, 0, false },
	{ "email", 0, 0, 28, false },
	{ "amount", 10, 0, 0, true },
	{ "status", 8, 0, 0, false },
	{ "note", 0, 0, 0, false },
};

static void
fill_row(void *ud, long row, struct tui_table_row *r)
{
	(void)ud;
	long id = row + 1;
	tui_table_row_setf(r, 0, "%ld", id);
	tui_table_row_setf(r, 1, "user%07ld", id);
	tui_table_row_setf(r, 2, "user%07ld@example.com", id);
	tui_table_row_setf(r, 3, "%ld.%02ld", (id * 7919) % 100000, id % 100);
	if (id % 7 == 0) {
		tui_table_row_set(r, 4, "failed");
		tui_table_row_role(r, 4, TUI_ROLE_DANGER);
	} else if (id % 5 == 0) {
		tui_table_row_set(r, 4, "pending");
		tui_table_row_role(r, 4, TUI_ROLE_WARN);
	} else {
		tui_table_row_set(r, 4, "ok");
		tui_table_row_role(r, 4, TUI_ROLE_OK);
	}
	tui_table_row_setf(r, 5, "note for %ld: the far right end of a long row, shown by scrolling right END%ld", id, id);
}

struct table_screen {
	struct tui_table *table;
};

static void
confirm_miss(void *ud, const char *typed, int misses)
{
	(void)ud;
	tui_log_add(drv.log, TUI_LOG_WARN, "confirm miss %d: \"%s\"", misses, typed);
}

static void
confirm_done(void *ud, enum tui_confirm_result r, const char *typed)
{
	(void)ud;
	(void)typed;
	switch (r) {
	case TUI_CONFIRM_OK:
		tui_log_add(drv.log, TUI_LOG_OK, "confirm: ok, would deploy");
		break;
	case TUI_CONFIRM_REFUSED:
		tui_log_add(drv.log, TUI_LOG_ERROR, "confirm: refused after %d misses, nothing ran",
		            TUI_CONFIRM_MAX_MISSES);
		break;
	case TUI_CONFIRM_CANCELLED:
		tui_log_add(drv.log, TUI_LOG_INFO, "confirm: cancelled");
		break;
	case TUI_CONFIRM_PENDING:
		break;
	}
}

static void
ask_done(void *ud, bool yes)
{
	(void)ud;
	tui_log_add(drv.log, TUI_LOG_INFO, "rollback answer: %s", yes ? "yes" : "no");
}

static int
table_enter(struct screen *s, void *arg)
{
	(void)arg;
	struct table_screen *t = s->priv;
	t->table = tui_table_new(columns, (int)RB_ARRAY_LEN(columns), fill_row, NULL);
	tui_table_set_rows(t->table, drv.rows);
	return 0;
}

static void
table_draw(struct screen *s)
{
	struct table_screen *t = s->priv;
	int h, w;
	getmaxyx(s->win, h, w);
	tui_table_draw(t->table, s->win, (struct tui_rect){ 0, 0, h, w });
}

static enum key_result
table_key(struct screen *s, enum command cmd, int raw)
{
	struct table_screen *t = s->priv;
	if (tui_table_key(t->table, cmd, raw) == KEY_RESULT_HANDLED)
		return KEY_RESULT_HANDLED;
	switch (cmd) {
	case CMD_CONFIRM: {
		static const char *const details[] = { "rows touched: 3 inserted, 2 updated, 0 deleted", NULL };
		struct tui_confirm_opts o = {
			.title = "deploy migrations",
			.action = "apply 2 migrations (1 dangerous: DROP COLUMN)",
			.environment = "prod",
			.prod = true,
			.target = "db.example:5432/shop_prod",
			.details = details,
			.phrase = "deploy shop_prod",
			.miss = confirm_miss,
			.done = confirm_done,
		};
		tui_confirm(s->app, &o);
		return KEY_RESULT_HANDLED;
	}
	case CMD_RUN_STAGE:
		tui_push(s->app, &progress_screen_ops, NULL);
		return KEY_RESULT_HANDLED;
	case CMD_ROLLBACK:
		tui_ask(s->app, "Rollback", "Roll back shop_prod to the backup taken at 10:00?", ask_done, NULL);
		return KEY_RESULT_HANDLED;
	case CMD_SELECT: {
		long row = tui_table_cursor(t->table);
		tui_push(s->app, &text_screen_ops, &row);
		return KEY_RESULT_HANDLED;
	}
	case CMD_TOGGLE:
		tui_message(s->app, "Row", "A message box: Enter closes it.", TUI_ROLE_NORMAL, NULL, NULL);
		return KEY_RESULT_HANDLED;
	default:
		return KEY_RESULT_PASS;
	}
}

static void
table_leave(struct screen *s)
{
	struct table_screen *t = s->priv;
	tui_table_free(t->table);
}

static const struct screen_ops table_screen_ops = {
	.name = "table",
	.priv_size = sizeof(struct table_screen),
	.enter = table_enter,
	.draw = table_draw,
	.key = table_key,
	.leave = table_leave,
};

int
main(int argc, char **argv)
{
	drv.rows = 1000000;
	drv.work_units = 3000;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--rows") == 0 && i + 1 < argc)
			drv.rows = atol(argv[++i]);
		else if (strcmp(argv[i], "--work") == 0 && i + 1 < argc)
			drv.work_units = atoll(argv[++i]);
		else {
			fprintf(stderr, "usage: tuidriver [--rows N] [--work N]\n");
			return 1;
		}
	}
	const char *pidfile = getenv("TUIDRIVER_PIDFILE");
	if (pidfile) {
		FILE *f = fopen(pidfile, "w");
		if (f) {
			fprintf(f, "%ld\n", (long)getpid());
			fclose(f);
		}
	}
	drv.log = tui_log_new(100);
	tui_log_add(drv.log, TUI_LOG_INFO, "tuidriver started: %ld rows", drv.rows);
	struct tui_app *app = tui_app_new(&frame, &drv, item_free);
	if (app == NULL) {
		fprintf(stderr, "tuidriver: cannot create the app\n");
		return 1;
	}
	int code = tui_app_run(app, &table_screen_ops, NULL);
	int rc;
	if (code == TUI_RUN_SIGNAL) {
		printf("tuidriver: stopped by signal %d, hook %s\n", tui_app_signal(app),
		       drv.signal_hook_ran ? "ran" : "did not run");
		rc = 3;
	} else if (code == TUI_RUN_ERROR) {
		fprintf(stderr, "tuidriver: %s\n", tui_app_error(app));
		rc = 1;
	} else {
		rc = code;
	}
	const char *logfile = getenv("TUIDRIVER_LOG");
	FILE *lf = logfile ? fopen(logfile, "w") : NULL;
	if (lf) {
		for (size_t i = 0; i < tui_log_count(drv.log); i++)
			fprintf(lf, "%s\n", tui_log_text(drv.log, i));
		fclose(lf);
	}
	printf("tuidriver: exit %d\n", rc);
	tui_app_free(app);
	tui_log_free(drv.log);
	return rc;
}
