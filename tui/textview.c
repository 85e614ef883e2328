/* textview.c: the text/SQL view: lines with roles and margins, vertical and horizontal scroll. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "tui/text.h"
#include "tui/textview.h"

struct tv_line {
	char         *text;
	char         *margin;
	enum tui_role role, margin_role;
};

struct tui_textview {
	struct tv_line *lines;
	size_t          n, cap;
	size_t          top;
	int             xoff;
	int             height;
	int             margin_w;
};

struct tui_textview *
tui_textview_new(void)
{
	struct tui_textview *tv = xcalloc(1, sizeof *tv);
	tv->height = 10;
	return tv;
}

static void
clear_lines(struct tui_textview *tv)
{
	for (size_t i = 0; i < tv->n; i++) {
		free(tv->lines[i].text);
		free(tv->lines[i].margin);
	}
	tv->n = 0;
}

void
tui_textview_free(struct tui_textview *tv)
{
	if (tv == NULL)
		return;
	clear_lines(tv);
	free(tv->lines);
	free(tv);
}

/* Copies n bytes of line with tabs expanded and a trailing '\r' dropped. */
static char *
expand(const char *line, size_t n)
{
	if (n > 0 && line[n - 1] == '\r')
		n--;
	struct strbuf sb = { 0 };
	int col = 0;
	for (size_t i = 0; i < n; i++) {
		if (line[i] == '\t') {
			do {
				strbuf_addc(&sb, ' ');
				col++;
			} while (col % 8 != 0);
		} else {
			strbuf_addc(&sb, line[i]);
			if (((unsigned char)line[i] & 0xc0) != 0x80)
				col++;
		}
	}
	return strbuf_detach(&sb);
}

static void
push_line(struct tui_textview *tv, char *text, enum tui_role role)
{
	if (tv->n == tv->cap) {
		tv->cap = tv->cap ? tv->cap * 2 : 64;
		tv->lines = xrealloc(tv->lines, tv->cap * sizeof *tv->lines);
	}
	tv->lines[tv->n++] = (struct tv_line){ text, NULL, role, TUI_ROLE_MUTED };
}

void
tui_textview_set_text(struct tui_textview *tv, const char *text)
{
	clear_lines(tv);
	tv->top = 0;
	tv->xoff = 0;
	const char *p = text ? text : "";
	while (*p) {
		size_t len = strcspn(p, "\n");
		push_line(tv, expand(p, len), TUI_ROLE_NORMAL);
		p += len;
		if (*p == '\n')
			p++;
	}
}

void
tui_textview_add_line(struct tui_textview *tv, const char *line, enum tui_role role)
{
	push_line(tv, expand(line, strlen(line)), role);
}

size_t
tui_textview_count(const struct tui_textview *tv)
{
	return tv->n;
}

const char *
tui_textview_line(const struct tui_textview *tv, size_t line)
{
	return line < tv->n ? tv->lines[line].text : NULL;
}

void
tui_textview_set_role(struct tui_textview *tv, size_t line, enum tui_role role)
{
	if (line < tv->n)
		tv->lines[line].role = role;
}

void
tui_textview_set_margin_width(struct tui_textview *tv, int width)
{
	tv->margin_w = width < 0 ? 0 : width;
}

void
tui_textview_set_margin(struct tui_textview *tv, size_t line, const char *text, enum tui_role role)
{
	if (line >= tv->n)
		return;
	free(tv->lines[line].margin);
	tv->lines[line].margin = text ? xstrdup(text) : NULL;
	tv->lines[line].margin_role = role;
}

static size_t
max_top(const struct tui_textview *tv)
{
	size_t h = tv->height > 0 ? (size_t)tv->height : 1;
	return tv->n > h ? tv->n - h : 0;
}

void
tui_textview_show(struct tui_textview *tv, size_t line)
{
	size_t h = tv->height > 0 ? (size_t)tv->height : 1;
	if (line < tv->top || line >= tv->top + h)
		tv->top = line > 2 ? line - 2 : 0;
	if (tv->top > max_top(tv))
		tv->top = max_top(tv);
}

size_t
tui_textview_top(const struct tui_textview *tv)
{
	return tv->top;
}

bool
tui_textview_command(struct tui_textview *tv, enum command cmd)
{
	size_t page = tv->height > 1 ? (size_t)tv->height - 1 : 1;
	switch (cmd) {
	case CMD_UP:
		if (tv->top > 0)
			tv->top--;
		break;
	case CMD_DOWN:
		tv->top++;
		break;
	case CMD_PAGE_UP:
		tv->top = tv->top > page ? tv->top - page : 0;
		break;
	case CMD_PAGE_DOWN:
		tv->top += page;
		break;
	case CMD_HOME:
		tv->top = 0;
		tv->xoff = 0;
		break;
	case CMD_END:
		tv->top = max_top(tv);
		break;
	case CMD_LEFT:
		tv->xoff = tv->xoff > 8 ? tv->xoff - 8 : 0;
		break;
	case CMD_RIGHT:
		tv->xoff += 8;
		break;
	default:
		return false;
	}
	if (tv->top > max_top(tv))
		tv->top = max_top(tv);
	return true;
}

void
tui_textview_draw(struct tui_textview *tv, WINDOW *win, struct tui_rect r)
{
	tv->height = r.h;
	if (tv->top > max_top(tv))
		tv->top = max_top(tv);
	int mw = tv->margin_w > 0 && tv->margin_w < r.w - 2 ? tv->margin_w : 0;
	int tx = r.x + (mw ? mw + 1 : 0);
	int tw = r.w - (mw ? mw + 1 : 0);
	for (int y = 0; y < r.h; y++) {
		size_t i = tv->top + (size_t)y;
		if (i >= tv->n) {
			if (mw)
				tui_text_fill(win, r.y + y, r.x, mw + 1, tui_attr(TUI_ROLE_NORMAL));
			tui_text_fill(win, r.y + y, tx, tw, tui_attr(TUI_ROLE_NORMAL));
			continue;
		}
		const struct tv_line *l = &tv->lines[i];
		if (mw) {
			tui_text_put(win, r.y + y, r.x, l->margin ? l->margin : "", 0, mw,
			             tui_attr(l->margin_role), true);
			tui_text_put(win, r.y + y, r.x + mw, " ", 0, 1, tui_attr(TUI_ROLE_NORMAL), true);
		}
		tui_text_put(win, r.y + y, tx, l->text, tv->xoff, tw, tui_attr(l->role), true);
	}
}
