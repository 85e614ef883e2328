/* table.h: a virtual table view: rows are materialised on demand, only the visible ones. */
#ifndef PGRUNBOOK_TUI_TABLE_H
#define PGRUNBOOK_TUI_TABLE_H

#include <curses.h>
#include <stdbool.h>

#include "tui/app.h"
#include "tui/theme.h"

struct tui_table_column {
	const char *title;
	int         width;    /* > 0: fixed; 0: auto, the widest of the title and the cells seen */
	int         min, max; /* bounds for an auto width (0: none) */
	bool        right;    /* right-aligned (numbers) */
};

/* One row being filled: the callback sets its cells; everything is copied into the table's buffers. */
struct tui_table_row;
void tui_table_row_set(struct tui_table_row *r, int col, const char *text);
void tui_table_row_setf(struct tui_table_row *r, int col, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* The role of one cell, or of every cell of the row when col < 0. */
void tui_table_row_role(struct tui_table_row *r, int col, enum tui_role role);

/*
 * Fills the cells of one row (0-based) on demand: for drawing the visible rows and for search.
 * Cells start empty with the normal role. Called on the UI thread only, from the table's
 * functions; it must not change the row count.
 */
typedef void (*tui_table_fill_fn)(void *ud, long row, struct tui_table_row *out);

struct tui_table;

/* A new table (columns and titles copied) with 0 rows; free with tui_table_free(). */
struct tui_table *tui_table_new(const struct tui_table_column *cols, int ncols, tui_table_fill_fn fill, void *ud);
void tui_table_free(struct tui_table *t);
/* Sets the number of rows; the cursor and the scroll position stay in range. */
void tui_table_set_rows(struct tui_table *t, long n);
long tui_table_rows(const struct tui_table *t);
/* The cursor row (-1 when there are no rows) and the first visible row. */
long tui_table_cursor(const struct tui_table *t);
long tui_table_top(const struct tui_table *t);
int tui_table_xoff(const struct tui_table *t);
/* Moves the cursor to row (clamped), scrolling as little as needed to show it. */
void tui_table_set_cursor(struct tui_table *t, long row);
/* The number of visible data rows (set by tui_table_draw from its rectangle: h - 2). */
void tui_table_set_height(struct tui_table *t, int rows);
/*
 * Cursor and scroll movement: UP, DOWN, PAGE_UP, PAGE_DOWN (a page is the visible height; the
 * view moves with the cursor), HOME, END, LEFT, RIGHT (8 columns). True when cmd was one of them.
 */
bool tui_table_command(struct tui_table *t, enum command cmd);
/*
 * Finds the first row from `from` in direction dir (+1 or -1) whose cells contain needle
 * (case-sensitive substring, bytes), visiting each row once and wrapping around the end.
 * Returns true with *found (and *wrapped when it went past the end or the beginning).
 */
bool tui_table_find(struct tui_table *t, const char *needle, long from, int dir, long *found, bool *wrapped);
/*
 * Keys: movement commands, SEARCH (a prompt on the status line: typing searches incrementally
 * from the row the search started on, Backspace and Ctrl-U edit, Enter keeps the match, Esc or
 * Ctrl-C go back), SEARCH_NEXT and SEARCH_PREV (wrap). While the prompt is open every key is
 * handled here. Other keys: KEY_RESULT_PASS.
 */
enum key_result tui_table_key(struct tui_table *t, enum command cmd, int raw);
/* True while the search prompt is open. */
bool tui_table_searching(const struct tui_table *t);
/* The status message ("search wrapped", "not found: x"), "" when none. Borrowed. */
const char *tui_table_message(const struct tui_table *t);
/*
 * Draws into rect r of win: the header line, h - 2 rows (the cursor row in the cursor role) and a
 * status line (search prompt or message on the left, "row N of M" on the right).
 */
void tui_table_draw(struct tui_table *t, WINDOW *win, struct tui_rect r);

#endif
