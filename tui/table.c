/* table.c: the virtual table view: scroll math, on-demand rows, incremental search, drawing. */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "tui/table.h"
#include "tui/text.h"

#define TABLE_HSTEP 8
#define SEARCH_MAX 256

struct tui_table_row {
	int            ncols;
	struct strbuf *cells;
	enum tui_role *roles;
};

struct table_col {
	char *title;
	int   width, min, max;
	bool  right;
	int   seen;   /* widest cell drawn so far (auto widths only grow: no jitter while scrolling) */
};

struct tui_table {
	struct table_col    *cols;
	int                  ncols;
	tui_table_fill_fn    fill;
	void                *ud;
	struct tui_table_row row;

	long                 nrows;
	long                 cursor, top;
	int                  height;    /* visible data rows */
	struct strbuf       *vis;       /* the visible rows' cells of the frame being drawn */
	enum tui_role       *vis_roles;
	int                  vis_rows;
	int                  xoff, total_w, view_w;

	bool                 searching;
	char                 needle[SEARCH_MAX];
	size_t               needle_len;
	char                 last[SEARCH_MAX];
	long                 origin;
	long                 match;     /* row of the current incremental match, -1 when none */
	char                 message[SEARCH_MAX + 64];
};

void
tui_table_row_set(struct tui_table_row *r, int col, const char *text)
{
	if (col < 0 || col >= r->ncols)
		return;
	strbuf_reset(&r->cells[col]);
	strbuf_adds(&r->cells[col], text ? text : "");
}

void
tui_table_row_setf(struct tui_table_row *r, int col, const char *fmt, ...)
{
	if (col < 0 || col >= r->ncols)
		return;
	char buf[256];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	strbuf_reset(&r->cells[col]);
	if (n >= 0 && (size_t)n < sizeof buf) {
		strbuf_add(&r->cells[col], buf, (size_t)n);
	} else {
		va_start(ap, fmt);
		char *s = xvasprintf(fmt, ap);
		va_end(ap);
		strbuf_adds(&r->cells[col], s);
		free(s);
	}
}

void
tui_table_row_role(struct tui_table_row *r, int col, enum tui_role role)
{
	if (col < 0) {
		for (int i = 0; i < r->ncols; i++)
			r->roles[i] = role;
	} else if (col < r->ncols) {
		r->roles[col] = role;
	}
}

struct tui_table *
tui_table_new(const struct tui_table_column *cols, int ncols, tui_table_fill_fn fill, void *ud)
{
	struct tui_table *t = xcalloc(1, sizeof *t);
	t->ncols = ncols > 0 ? ncols : 0;
	t->cols = xcalloc((size_t)(t->ncols ? t->ncols : 1), sizeof *t->cols);
	for (int i = 0; i < t->ncols; i++) {
		t->cols[i].title = xstrdup(cols[i].title ? cols[i].title : "");
		t->cols[i].width = cols[i].width;
		t->cols[i].min = cols[i].min;
		t->cols[i].max = cols[i].max;
		t->cols[i].right = cols[i].right;
	}
	t->fill = fill;
	t->ud = ud;
	t->row.ncols = t->ncols;
	t->row.cells = xcalloc((size_t)(t->ncols ? t->ncols : 1), sizeof *t->row.cells);
	t->row.roles = xcalloc((size_t)(t->ncols ? t->ncols : 1), sizeof *t->row.roles);
	t->height = 10;
	return t;
}

void
tui_table_free(struct tui_table *t)
{
	if (t == NULL)
		return;
	for (int i = 0; i < t->ncols; i++) {
		free(t->cols[i].title);
		strbuf_release(&t->row.cells[i]);
	}
	for (int i = 0; i < t->vis_rows * t->ncols; i++)
		strbuf_release(&t->vis[i]);
	free(t->vis);
	free(t->vis_roles);
	free(t->cols);
	free(t->row.cells);
	free(t->row.roles);
	free(t);
}

/* Fills t->row for row i through the caller's callback. */
static struct tui_table_row *
load_row(struct tui_table *t, long i)
{
	for (int c = 0; c < t->ncols; c++) {
		strbuf_reset(&t->row.cells[c]);
		if (t->row.cells[c].buf == NULL)
			strbuf_adds(&t->row.cells[c], "");
		t->row.roles[c] = TUI_ROLE_NORMAL;
	}
	if (t->fill)
		t->fill(t->ud, i, &t->row);
	return &t->row;
}

static void
clamp(struct tui_table *t)
{
	long h = t->height > 0 ? t->height : 1;
	if (t->nrows <= 0) {
		t->cursor = 0;
		t->top = 0;
		return;
	}
	if (t->cursor >= t->nrows)
		t->cursor = t->nrows - 1;
	if (t->cursor < 0)
		t->cursor = 0;
	if (t->cursor < t->top)
		t->top = t->cursor;
	if (t->cursor >= t->top + h)
		t->top = t->cursor - h + 1;
	long max_top = t->nrows > h ? t->nrows - h : 0;
	if (t->top > max_top)
		t->top = max_top;
	if (t->top < 0)
		t->top = 0;
}

void
tui_table_set_rows(struct tui_table *t, long n)
{
	t->nrows = n < 0 ? 0 : n;
	clamp(t);
}

long
tui_table_rows(const struct tui_table *t)
{
	return t->nrows;
}

long
tui_table_cursor(const struct tui_table *t)
{
	return t->nrows > 0 ? t->cursor : -1;
}

long
tui_table_top(const struct tui_table *t)
{
	return t->top;
}

int
tui_table_xoff(const struct tui_table *t)
{
	return t->xoff;
}

void
tui_table_set_cursor(struct tui_table *t, long row)
{
	t->cursor = row;
	clamp(t);
}

void
tui_table_set_height(struct tui_table *t, int rows)
{
	t->height = rows > 0 ? rows : 1;
	clamp(t);
}

bool
tui_table_command(struct tui_table *t, enum command cmd)
{
	long h = t->height > 0 ? t->height : 1;
	switch (cmd) {
	case CMD_UP:
		t->cursor--;
		break;
	case CMD_DOWN:
		t->cursor++;
		break;
	case CMD_PAGE_UP:
		t->cursor -= h;
		t->top -= h;
		if (t->top < 0)
			t->top = 0;
		break;
	case CMD_PAGE_DOWN:
		t->cursor += h;
		t->top += h;
		break;
	case CMD_HOME:
		t->cursor = 0;
		t->top = 0;
		break;
	case CMD_END:
		t->cursor = t->nrows - 1;
		t->top = t->nrows - h;
		break;
	case CMD_LEFT:
		t->xoff = t->xoff > TABLE_HSTEP ? t->xoff - TABLE_HSTEP : 0;
		return true;
	case CMD_RIGHT:
		if (t->view_w == 0 || t->xoff + t->view_w < t->total_w)
			t->xoff += TABLE_HSTEP;
		return true;
	default:
		return false;
	}
	clamp(t);
	return true;
}

static bool
row_matches(struct tui_table *t, long i, const char *needle)
{
	struct tui_table_row *r = load_row(t, i);
	for (int c = 0; c < r->ncols; c++) {
		if (r->cells[c].buf && strstr(r->cells[c].buf, needle))
			return true;
	}
	return false;
}

bool
tui_table_find(struct tui_table *t, const char *needle, long from, int dir, long *found, bool *wrapped)
{
	*wrapped = false;
	if (t->nrows <= 0 || needle == NULL || needle[0] == '\0')
		return false;
	long n = t->nrows;
	long i = ((from % n) + n) % n;
	if (from >= n || from < 0)
		*wrapped = true;
	dir = dir < 0 ? -1 : 1;
	for (long k = 0; k < n; k++) {
		if (row_matches(t, i, needle)) {
			*found = i;
			return true;
		}
		i += dir;
		if (i >= n) {
			i = 0;
			*wrapped = true;
		} else if (i < 0) {
			i = n - 1;
			*wrapped = true;
		}
	}
	*wrapped = false;
	return false;
}

static void
search_from(struct tui_table *t, const char *needle, long from, int dir)
{
	long found;
	bool wrapped;
	t->message[0] = '\0';
	if (needle[0] == '\0')
		return;
	if (tui_table_find(t, needle, from, dir, &found, &wrapped)) {
		tui_table_set_cursor(t, found);
		if (wrapped)
			snprintf(t->message, sizeof t->message, "search wrapped to the %s",
			         dir > 0 ? "top" : "bottom");
	} else {
		snprintf(t->message, sizeof t->message, "not found: %s", needle);
	}
}

/*
 * Searches for the prompt's needle from the row the search started on. When the needle only grew,
 * the rows before the current match cannot match the longer needle (they lack the shorter one),
 * so the search goes on from that match, and a needle that had no match still has none: typing a
 * word costs one pass over the rows, not one per character.
 */
static void
search_incremental(struct tui_table *t, bool grew)
{
	t->needle[t->needle_len] = '\0';
	t->message[0] = '\0';
	if (t->needle_len == 0) {
		t->match = t->origin;
		tui_table_set_cursor(t, t->origin);
		return;
	}
	if (grew && t->match < 0) {
		snprintf(t->message, sizeof t->message, "not found: %s", t->needle);
		return;
	}
	long from = grew ? t->match : t->origin;
	long found;
	bool wrapped;
	if (tui_table_find(t, t->needle, from, +1, &found, &wrapped)) {
		t->match = found;
		tui_table_set_cursor(t, found);
		if (found < t->origin)
			snprintf(t->message, sizeof t->message, "search wrapped to the top");
	} else {
		t->match = -1;
		tui_table_set_cursor(t, t->origin);
		snprintf(t->message, sizeof t->message, "not found: %s", t->needle);
	}
}

enum key_result
tui_table_key(struct tui_table *t, enum command cmd, int raw)
{
	if (t->searching) {
		if (raw == TUI_KEY_ENTER) {
			t->searching = false;
			if (t->needle_len > 0)
				memcpy(t->last, t->needle, t->needle_len + 1);
		} else if (raw == TUI_KEY_ESC || raw == TUI_CTRL('c')) {
			t->searching = false;
			t->message[0] = '\0';
			tui_table_set_cursor(t, t->origin);
		} else if (raw == TUI_KEY_BACKSPACE) {
			if (t->needle_len > 0) {
				t->needle_len = tui_text_prev(t->needle, t->needle_len);
				search_incremental(t, false);
			}
		} else if (raw == TUI_CTRL('u')) {
			t->needle_len = 0;
			search_incremental(t, false);
		} else if (tui_key_is_text(raw)) {
			char enc[5];
			size_t k = tui_text_encode(raw, enc);
			if (t->needle_len + k < SEARCH_MAX) {
				memcpy(t->needle + t->needle_len, enc, k);
				t->needle_len += k;
				search_incremental(t, true);
			}
		}
		return KEY_RESULT_HANDLED;
	}
	switch (cmd) {
	case CMD_SEARCH:
		t->searching = true;
		t->needle_len = 0;
		t->needle[0] = '\0';
		t->origin = t->cursor;
		t->match = t->cursor;
		t->message[0] = '\0';
		return KEY_RESULT_HANDLED;
	case CMD_SEARCH_NEXT:
	case CMD_SEARCH_PREV:
		if (t->last[0] == '\0') {
			snprintf(t->message, sizeof t->message, "no search yet: press / first");
		} else {
			int dir = cmd == CMD_SEARCH_NEXT ? +1 : -1;
			search_from(t, t->last, t->cursor + dir, dir);
		}
		return KEY_RESULT_HANDLED;
	default:
		if (tui_table_command(t, cmd)) {
			t->message[0] = '\0';
			return KEY_RESULT_HANDLED;
		}
		return KEY_RESULT_PASS;
	}
}

bool
tui_table_searching(const struct tui_table *t)
{
	return t->searching;
}

const char *
tui_table_message(const struct tui_table *t)
{
	return t->message;
}

static int
col_width(const struct table_col *c)
{
	if (c->width > 0)
		return c->width;
	int w = tui_text_width(c->title);
	if (c->seen > w)
		w = c->seen;
	if (c->max > 0 && w > c->max)
		w = c->max;
	if (c->min > 0 && w < c->min)
		w = c->min;
	return w < 1 ? 1 : w;
}

/*
 * Draws one line of cells at row y: cell c spans virtual columns [col, col + width) followed by a
 * one-column separator; the visible window is [xoff, xoff + w).
 */
static void
draw_cells(struct tui_table *t, WINDOW *win, int y, int x0, int w, const char *const *texts,
           const enum tui_role *roles, attr_t override, bool use_override)
{
	attr_t plain = use_override ? override : tui_attr(TUI_ROLE_NORMAL);
	int vis_end = t->xoff + w;
	int col = 0;
	for (int c = 0; c < t->ncols && col < vis_end; c++) {
		int cw = col_width(&t->cols[c]);
		int from = col > t->xoff ? col : t->xoff;
		int to = col + cw < vis_end ? col + cw : vis_end;
		if (from < to) {
			attr_t a = use_override ? override : tui_attr(roles[c]);
			int o = from - col;          /* first visible column inside the cell */
			int len = to - from;
			int pad_left = 0;
			if (t->cols[c].right) {
				int tw = tui_text_width(texts[c]);
				pad_left = tw < cw ? cw - tw : 0;
			}
			int sx = x0 + from - t->xoff;
			int blank = pad_left - o;
			if (blank > 0) {
				if (blank > len)
					blank = len;
				tui_text_fill(win, y, sx, blank, a);
				sx += blank;
				len -= blank;
			}
			if (len > 0)
				tui_text_put(win, y, sx, texts[c], o > pad_left ? o - pad_left : 0, len, a, true);
		}
		col += cw;
		if (c + 1 < t->ncols) {
			if (col >= t->xoff && col < vis_end)
				tui_text_fill(win, y, x0 + col - t->xoff, 1, plain);
			col++;
		}
	}
	if (col < vis_end) {
		int from = col > t->xoff ? col : t->xoff;
		tui_text_fill(win, y, x0 + from - t->xoff, vis_end - from, plain);
	}
}

void
tui_table_draw(struct tui_table *t, WINDOW *win, struct tui_rect r)
{
	if (r.h < 3 || r.w < 1)
		return;
	tui_table_set_height(t, r.h - 2);
	t->view_w = r.w;

	/* Materialise the visible rows once, before drawing, so auto widths include them. */
	int n = t->height;
	int nc = t->ncols ? t->ncols : 1;
	if (n > t->vis_rows) {
		t->vis = xrealloc(t->vis, (size_t)n * (size_t)nc * sizeof *t->vis);
		t->vis_roles = xrealloc(t->vis_roles, (size_t)n * (size_t)nc * sizeof *t->vis_roles);
		for (int i = t->vis_rows * nc; i < n * nc; i++)
			strbuf_init(&t->vis[i]);
		t->vis_rows = n;
	}
	int shown = 0;
	for (int y = 0; y < n && t->top + y < t->nrows; y++, shown++) {
		struct tui_table_row *row = load_row(t, t->top + y);
		for (int c = 0; c < t->ncols; c++) {
			struct strbuf *cell = &t->vis[y * nc + c];
			strbuf_reset(cell);
			strbuf_add(cell, row->cells[c].buf, row->cells[c].len);
			t->vis_roles[y * nc + c] = row->roles[c];
			int cw = tui_text_width(cell->buf);
			if (cw > t->cols[c].seen)
				t->cols[c].seen = cw;
		}
	}
	t->total_w = 0;
	for (int c = 0; c < t->ncols; c++)
		t->total_w += col_width(&t->cols[c]) + (c + 1 < t->ncols ? 1 : 0);
	if (t->xoff > 0 && t->xoff > t->total_w - r.w)
		t->xoff = t->total_w - r.w > 0 ? t->total_w - r.w : 0;

	const char **texts = xcalloc((size_t)nc, sizeof *texts);
	enum tui_role *roles = xcalloc((size_t)nc, sizeof *roles);
	for (int c = 0; c < t->ncols; c++) {
		texts[c] = t->cols[c].title;
		roles[c] = TUI_ROLE_HEADER;
	}
	draw_cells(t, win, r.y, r.x, r.w, texts, roles, tui_attr(TUI_ROLE_HEADER), true);

	for (int y = 0; y < n; y++) {
		if (y >= shown) {
			tui_text_fill(win, r.y + 1 + y, r.x, r.w, tui_attr(TUI_ROLE_NORMAL));
			continue;
		}
		for (int c = 0; c < t->ncols; c++) {
			texts[c] = t->vis[y * nc + c].buf;
			roles[c] = t->vis_roles[y * nc + c];
		}
		draw_cells(t, win, r.y + 1 + y, r.x, r.w, texts, roles, tui_attr(TUI_ROLE_CURSOR),
		           t->top + y == t->cursor);
	}
	free(texts);
	free(roles);

	/* Status line. */
	char right[64];
	if (t->nrows > 0)
		snprintf(right, sizeof right, " row %ld of %ld ", t->cursor + 1, t->nrows);
	else
		snprintf(right, sizeof right, " no rows ");
	int rw = (int)strlen(right);
	int sy = r.y + r.h - 1;
	int lw = r.w - rw > 0 ? r.w - rw : 0;
	if (t->searching) {
		char prompt[SEARCH_MAX + 2];
		t->needle[t->needle_len] = '\0';
		snprintf(prompt, sizeof prompt, "/%s", t->needle);
		int pw = tui_text_width(prompt);
		int skip = pw + 1 > lw ? pw + 1 - lw : 0;
		int used = tui_text_put(win, sy, r.x, prompt, skip, lw, tui_attr(TUI_ROLE_NORMAL), false);
		if (used < lw) {
			tui_text_fill(win, sy, r.x + used, 1, tui_attr(TUI_ROLE_CURSOR));
			used++;
		}
		if (t->message[0] && used + 2 < lw) {
			tui_text_fill(win, sy, r.x + used, 2, tui_attr(TUI_ROLE_NORMAL));
			used += 2;
			used += tui_text_put(win, sy, r.x + used, t->message, 0, lw - used, tui_attr(TUI_ROLE_WARN), false);
		}
		if (used < lw)
			tui_text_fill(win, sy, r.x + used, lw - used, tui_attr(TUI_ROLE_NORMAL));
	} else {
		tui_text_put(win, sy, r.x, t->message, 0, lw, tui_attr(TUI_ROLE_WARN), true);
	}
	tui_text_put(win, sy, r.x + lw, right, 0, r.w - lw, tui_attr(TUI_ROLE_MUTED), true);
}
