/* report.c: the report stage screen: the Markdown report of this run, rendered from its journal. */
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
	tui_textview_draw(r->tv, s->win, (struct tui_rect){ 1, 1, h - 1, w - 1 });
}

static enum key_result
rp_key(struct screen *s, enum command cmd, int raw)
{
	(void)raw;
	struct rp_screen *r = s->priv;
	if (cmd == CMD_REFRESH || cmd == CMD_RUN_STAGE) {
		render(s);
		return KEY_RESULT_HANDLED;
	}
	return tui_textview_command(r->tv, cmd) ? KEY_RESULT_HANDLED : KEY_RESULT_PASS;
}

static void
rp_leave(struct screen *s)
{
	struct rp_screen *r = s->priv;
	tui_textview_free(r->tv);
}

const struct screen_ops wiz_report_screen = {
	.name = "report",
	.priv_size = sizeof(struct rp_screen),
	.enter = rp_enter,
	.draw = rp_draw,
	.key = rp_key,
	.leave = rp_leave,
};
