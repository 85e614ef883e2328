/* help.c: the help screen and the F-key bar, generated from the command list. */
#include "config.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "tui/help.h"
#include "tui/text.h"
#include "tui/textview.h"
#include "tui/theme.h"

struct help {
	struct tui_textview *tv;
	int                  width;  /* the width the lines were wrapped for */
};

/*
 * (Re)builds the lines for a width: every description wraps, so nothing is cut off. Below 70
 * columns the command names (kept in pgrunbook(1)'s key table) give their room to the text.
 */
static void
help_build(struct help *h, int width)
{
	tui_textview_free(h->tv);
	h->tv = tui_textview_new();
	h->width = width;
	bool names = width >= 70;
	int text_col = names ? 28 : 14;  /* keys (13) and a blank, then the name (13) and a blank */
	int text_w = width - text_col;
	if (text_w < 20)
		text_w = 20;
	tui_textview_add_line(h->tv, names ? "Keys          Command       What it does"
	                                   : "Keys          What it does", TUI_ROLE_HEADER);
	for (int c = CMD__FIRST; c < CMD__END; c++) {
		char keys[64];
		struct strlist wrapped = {0};
		tui_text_wrap(command_help((enum command)c), text_w, &wrapped);
		for (size_t i = 0; i < wrapped.len || i == 0; i++) {
			const char *part = i < wrapped.len ? wrapped.items[i] : "";
			char *line;
			if (i > 0)
				line = xasprintf("%*s%s", text_col, "", part);
			else if (names)
				line = xasprintf("%-13s %-13s %s", command_keys_text((enum command)c, keys, sizeof keys),
				                 command_name((enum command)c), part);
			else
				line = xasprintf("%-13s %s", command_keys_text((enum command)c, keys, sizeof keys), part);
			tui_textview_add_line(h->tv, line, TUI_ROLE_NORMAL);
			free(line);
		}
		strlist_free(&wrapped);
	}
	tui_textview_add_line(h->tv, "", TUI_ROLE_NORMAL);
	tui_textview_add_line(h->tv, "Esc or q closes this help.", TUI_ROLE_MUTED);
}

static int
help_enter(struct screen *s, void *arg)
{
	(void)arg;
	struct help *h = s->priv;
	help_build(h, 80);
	return 0;
}

static void
help_draw(struct screen *s)
{
	struct help *h = s->priv;
	int rows, cols;
	getmaxyx(s->win, rows, cols);
	if (cols - 1 != h->width)
		help_build(h, cols - 1);
	tui_text_put(s->win, 0, 0, " Help: keys", 0, cols, tui_attr(TUI_ROLE_HEADER), true);
	tui_textview_draw(h->tv, s->win, (struct tui_rect){ 1, 1, rows - 1, cols - 1 });
}

static enum key_result
help_key(struct screen *s, enum command cmd, int raw)
{
	(void)raw;
	struct help *h = s->priv;
	switch (cmd) {
	case CMD_CANCEL:
	case CMD_QUIT:
	case CMD_HELP:
	case CMD_SELECT:
		tui_pop(s->app);
		return KEY_RESULT_HANDLED;
	case CMD_REFRESH:
		return KEY_RESULT_PASS;
	default:
		tui_textview_command(h->tv, cmd);
		return KEY_RESULT_HANDLED;
	}
}

static void
help_leave(struct screen *s)
{
	struct help *h = s->priv;
	tui_textview_free(h->tv);
}

const struct screen_ops tui_help_screen = {
	.name = "help",
	.priv_size = sizeof(struct help),
	.enter = help_enter,
	.draw = help_draw,
	.key = help_key,
	.leave = help_leave,
};

void
tui_keybar_draw(WINDOW *win, int y, int x, int w, bool (*enabled)(enum command, void *ud), void *ud)
{
	int col = 0;
	for (int f = 1; f <= 12; f++) {
		for (int c = CMD__FIRST; c < CMD__END; c++) {
			const char *label = command_label((enum command)c);
			if (label == NULL || command_fkey((enum command)c) != f)
				continue;
			char num[4];
			snprintf(num, sizeof num, "%d", f);
			int need = (int)strlen(num) + tui_text_width(label) + 1;
			if (col + need > w)
				break;
			bool on = enabled == NULL || enabled((enum command)c, ud);
			tui_text_put(win, y, x + col, num, 0, (int)strlen(num), tui_attr(TUI_ROLE_NORMAL), false);
			col += (int)strlen(num);
			tui_text_put(win, y, x + col, label, 0, need - (int)strlen(num) - 1,
			             tui_attr(on ? TUI_ROLE_KEYBAR : TUI_ROLE_MUTED), false);
			col += need - (int)strlen(num) - 1;
			tui_text_put(win, y, x + col, " ", 0, 1, tui_attr(TUI_ROLE_KEYBAR), false);
			col++;
			break;
		}
	}
	if (col < w)
		tui_text_fill(win, y, x + col, w - col, tui_attr(TUI_ROLE_KEYBAR));
}
