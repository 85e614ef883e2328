/* report.c: the report stage screen: the Markdown report of this run, rendered from its journal; F2 writes it. */
#include "config.h"

#include <stdlib.h>

#include "core/report.h"
#include "core/util.h"
#include "screens/wizard.h"
#include "tui/text.h"
#include "tui/textview.h"
#include "tui/theme.h"

struct rp_screen {
	struct tui_textview *tv;
	char                *written;   /* the path F2 wrote the report to, or NULL */
	char                *error;     /* why writing it failed, or NULL */
};

/* Renders the report from the journal as it is now (a file read, no database). */
static void
render(struct screen *s)
{
	struct rp_screen *r = s->priv;
	struct wizard *wz = tui_app_userdata(s->app);
	struct run_state st;
	struct rb_error err = {0};
	const char *dir = wz->journal ? journal_dir(wz->journal) : NULL;
	if (dir && journal_replay(dir, &st, &err)) {
		char *md = report_markdown(&st, wz->plan);
		tui_textview_set_text(r->tv, md);
		free(md);
	} else {
		char *m = xasprintf("The report could not be rendered: %s",
		                    err.message ? err.message : "no journal");
		tui_textview_set_text(r->tv, m);
		free(m);
	}
	if (dir)
		run_state_free(&st);
	rb_error_clear(&err);
}

/*
 * F2: writes report.md into the run's directory and records the report stage done (started,
 * then done or failed, on the bus like every stage), so the run can finish.
 */
static void
write_report(struct screen *s)
{
	struct rp_screen *r = s->priv;
	struct wizard *wz = tui_app_userdata(s->app);
	const char *dir = wz->journal ? journal_dir(wz->journal) : NULL;
	if (dir == NULL)
		return;
	free(r->written);
	free(r->error);
	r->written = r->error = NULL;
	events_emitf(wz->bus, EV_STAGE_STARTED, "report", NULL, "writing the report");
	struct rb_error err = {0};
	char *md = NULL;
	char *path = report_write_run(dir, wz->plan, &md, &err);
	if (md)
		tui_textview_set_text(r->tv, md);
	free(md);
	if (path) {
		json_t *d = json_pack("{s:s}", "path", path);
		events_emitf(wz->bus, EV_STAGE_DONE, "report", d, "report written to %s", path);
		json_decref(d);
		r->written = path;
	} else {
		r->error = xstrdup(err.message ? err.message : "unknown error");
		events_emitf(wz->bus, EV_STAGE_FAILED, "report", NULL, "the report could not be written: %s", r->error);
	}
	rb_error_clear(&err);
}

static int
rp_enter(struct screen *s, void *arg)
{
	(void)arg;
	struct rp_screen *r = s->priv;
	r->tv = tui_textview_new();
	render(s);
	return 0;
}

static void
rp_draw(struct screen *s)
{
	struct rp_screen *r = s->priv;
	int h, w;
	getmaxyx(s->win, h, w);
	tui_text_put(s->win, 0, 1, "Report of this run (from its journal; F5 renders it again)", 0, w - 1,
	             tui_attr(TUI_ROLE_HEADER), true);
	char *m;
	enum tui_role role;
	if (r->error) {
		m = xasprintf("Not written: %s (F2 tries again)", r->error);
		role = TUI_ROLE_DANGER;
	} else if (r->written) {
		m = xstrdup("Written: report.md in the run directory (the log has the path); the report stage is done.");
		role = TUI_ROLE_OK;
	} else {
		m = xstrdup("F2 (Run) writes report.md into the run directory and finishes the report stage.");
		role = TUI_ROLE_WARN;
	}
	struct strlist l = {0};
	tui_text_wrap(m, w - 2, &l);
	int y = 1;
	for (size_t i = 0; i < l.len && i < 2; i++)
		tui_text_put(s->win, y++, 1, l.items[i], 0, w - 1, tui_attr(role), true);
	strlist_free(&l);
	free(m);
	tui_textview_draw(r->tv, s->win, (struct tui_rect){ y, 1, h - y, w - 1 });
}

static enum key_result
rp_key(struct screen *s, enum command cmd, int raw)
{
	(void)raw;
	struct rp_screen *r = s->priv;
	if (cmd == CMD_REFRESH) {
		render(s);
		return KEY_RESULT_HANDLED;
	}
	if (cmd == CMD_RUN_STAGE) {
		write_report(s);
		return KEY_RESULT_HANDLED;
	}
	return tui_textview_command(r->tv, cmd) ? KEY_RESULT_HANDLED : KEY_RESULT_PASS;
}

static void
rp_leave(struct screen *s)
{
	struct rp_screen *r = s->priv;
	tui_textview_free(r->tv);
	free(r->written);
	free(r->error);
}

const struct screen_ops wiz_report_screen = {
	.name = "report",
	.priv_size = sizeof(struct rp_screen),
	.enter = rp_enter,
	.draw = rp_draw,
	.key = rp_key,
	.leave = rp_leave,
};
