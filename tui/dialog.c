/* dialog.c: the message box and the yes/no question (no default answer). */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "tui/dialog.h"
#include "tui/text.h"

struct dialog {
	char          *title;
	char          *text;
	enum tui_role  role;
	bool           ask;
	bool           remind;   /* a key that is not an answer was pressed */
	void         (*done_msg)(void *ud);
	void         (*done_ask)(void *ud, bool yes);
	void          *ud;
};

struct dialog_arg {
	const char    *title, *text;
	enum tui_role  role;
	bool           ask;
	void         (*done_msg)(void *ud);
	void         (*done_ask)(void *ud, bool yes);
	void          *ud;
};

int
tui_ask_answer(int raw)
{
	if (raw == 'y' || raw == 'Y')
		return 1;
	if (raw == 'n' || raw == 'N' || raw == TUI_KEY_ESC || raw == TUI_CTRL('c'))
		return 0;
	return -1;
}

struct tui_rect
tui_dialog_center(WINDOW *win, int h, int w)
{
	int wh, ww;
	getmaxyx(win, wh, ww);
	if (h > wh)
		h = wh;
	if (w > ww)
		w = ww;
	return (struct tui_rect){ (wh - h) / 2, (ww - w) / 2, h, w };
}

void
tui_dialog_frame(WINDOW *win, struct tui_rect r, const char *title, enum tui_role role)
{
	if (r.h < 2 || r.w < 2)
		return;
	for (int y = 0; y < r.h; y++)
		tui_text_fill(win, r.y + y, r.x, r.w, tui_attr(TUI_ROLE_NORMAL));
	tui_text_box(win, r.y, r.x, r.h, r.w, tui_attr(role));
	if (title && *title && r.w > 6) {
		char *t = xasprintf(" %s ", title);
		tui_text_put(win, r.y, r.x + 2, t, 0, r.w - 4 < tui_text_width(t) ? r.w - 4 : tui_text_width(t),
		             tui_attr(role) | A_BOLD, false);
		free(t);
	}
	wattrset(win, A_NORMAL);
}

static int
dialog_enter(struct screen *s, void *arg)
{
	const struct dialog_arg *a = arg;
	struct dialog *d = s->priv;
	d->title = xstrdup(a->title ? a->title : "");
	d->text = xstrdup(a->text ? a->text : "");
	d->role = a->role;
	d->ask = a->ask;
	d->done_msg = a->done_msg;
	d->done_ask = a->done_ask;
	d->ud = a->ud;
	tui_screen_set_overlay(s, true);
	return 0;
}

static void
dialog_draw(struct screen *s)
{
	struct dialog *d = s->priv;
	int wh, ww;
	getmaxyx(s->win, wh, ww);
	int inner = ww - 8 < 64 ? ww - 8 : 64;
	struct strlist lines = { 0 };
	tui_text_wrap(d->text, inner, &lines);
	int widest = tui_text_width(d->title) + 4;
	for (size_t i = 0; i < lines.len; i++) {
		int lw = tui_text_width(lines.items[i]);
		if (lw > widest)
			widest = lw;
	}
	const char *footer = d->ask ? "y = yes    n or Esc = no" : "Enter closes";
	if (tui_text_width(footer) > widest)
		widest = tui_text_width(footer);
	int h = (int)lines.len + 4 + (d->ask ? 1 : 0);
	if (h > wh)
		h = wh;
	struct tui_rect r = tui_dialog_center(s->win, h, widest + 4);
	tui_dialog_frame(s->win, r, d->title, d->role);
	int y = r.y + 1;
	for (size_t i = 0; i < lines.len && y < r.y + r.h - 2; i++, y++)
		tui_text_put(s->win, y, r.x + 2, lines.items[i], 0, r.w - 4, tui_attr(TUI_ROLE_NORMAL), true);
	if (d->ask && y < r.y + r.h - 2) {
		if (d->remind)
			tui_text_put(s->win, y, r.x + 2, "Press y or n: there is no default answer.", 0, r.w - 4,
			             tui_attr(TUI_ROLE_WARN), true);
		y++;
	}
	tui_text_put(s->win, r.y + r.h - 2, r.x + 2, footer, 0, r.w - 4, tui_attr(TUI_ROLE_MUTED), true);
	strlist_free(&lines);
	(void)wh;
}

static enum key_result
dialog_key(struct screen *s, enum command cmd, int raw)
{
	struct dialog *d = s->priv;
	struct tui_app *app = s->app;
	if (d->ask) {
		int ans = tui_ask_answer(raw);
		if (ans < 0) {
			d->remind = true;
			return KEY_RESULT_HANDLED;
		}
		void (*done)(void *, bool) = d->done_ask;
		void *ud = d->ud;
		tui_pop(app);
		if (done)
			done(ud, ans == 1);
		return KEY_RESULT_HANDLED;
	}
	if (raw == TUI_KEY_ENTER || raw == TUI_KEY_ESC || raw == ' ' || raw == 'q' || raw == TUI_CTRL('c') ||
	    cmd == CMD_CANCEL) {
		void (*done)(void *) = d->done_msg;
		void *ud = d->ud;
		tui_pop(app);
		if (done)
			done(ud);
	}
	return KEY_RESULT_HANDLED;
}

static void
dialog_leave(struct screen *s)
{
	struct dialog *d = s->priv;
	free(d->title);
	free(d->text);
}

static const struct screen_ops dialog_screen = {
	.name = "dialog",
	.priv_size = sizeof(struct dialog),
	.enter = dialog_enter,
	.draw = dialog_draw,
	.key = dialog_key,
	.leave = dialog_leave,
};

struct screen *
tui_message(struct tui_app *app, const char *title, const char *text, enum tui_role role,
            void (*done)(void *ud), void *ud)
{
	struct dialog_arg a = { title, text, role, false, done, NULL, ud };
	return tui_push(app, &dialog_screen, &a);
}

struct screen *
tui_ask(struct tui_app *app, const char *title, const char *question, void (*done)(void *ud, bool yes), void *ud)
{
	struct dialog_arg a = { title, question, TUI_ROLE_WARN, true, NULL, done, ud };
	return tui_push(app, &dialog_screen, &a);
}
