/* test_tui_table.c: unit tests for the virtual table: scroll math, search, on-demand drawing. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/util.h"
#include "tui/table.h"

struct source {
	long calls;
	long lo, hi;   /* rows asked for */
};

static void
fill(void *ud, long row, struct tui_table_row *r)
{
	struct source *src = ud;
	src->calls++;
	if (row < src->lo)
		src->lo = row;
	if (row > src->hi)
		src->hi = row;
	tui_table_row_setf(r, 0, "%ld", row + 1);
	tui_table_row_setf(r, 1, "name%07ld", row + 1);
	tui_table_row_set(r, 2, (row + 1) % 3 == 0 ? "failed" : "ok");
	if ((row + 1) % 3 == 0)
		tui_table_row_role(r, 2, TUI_ROLE_DANGER);
	tui_table_row_setf(r, 3, "tail%ld-0123456789abcdefghij", row + 1);
}

static const struct tui_table_column cols[] = {
	{ "id", 0, 0, 0, true },
	{ "name", 0, 0, 0, false },
	{ "state", 6, 0, 0, false },
	{ "note", 0, 0, 12, false },
};

static struct tui_table *
table_new(struct source *src, long rows, int height)
{
	memset(src, 0, sizeof *src);
	src->lo = rows;
	src->hi = -1;
	struct tui_table *t = tui_table_new(cols, 4, fill, src);
	tui_table_set_rows(t, rows);
	tui_table_set_height(t, height);
	return t;
}

static void
expect_pos(struct tui_table *t, long cursor, long top)
{
	assert_int_equal(tui_table_cursor(t), cursor);
	assert_int_equal(tui_table_top(t), top);
}

static void
test_scroll_million(void **state)
{
	(void)state;
	struct source src;
	struct tui_table *t = table_new(&src, 1000000, 20);
	expect_pos(t, 0, 0);
	tui_table_command(t, CMD_UP);            /* at the top: stays */
	expect_pos(t, 0, 0);
	for (int i = 0; i < 19; i++)
		tui_table_command(t, CMD_DOWN);
	expect_pos(t, 19, 0);
	tui_table_command(t, CMD_DOWN);          /* one past the page: scrolls by one */
	expect_pos(t, 20, 1);
	tui_table_command(t, CMD_HOME);
	expect_pos(t, 0, 0);
	tui_table_command(t, CMD_PAGE_DOWN);
	expect_pos(t, 20, 20);
	tui_table_command(t, CMD_PAGE_DOWN);
	expect_pos(t, 40, 40);
	tui_table_command(t, CMD_PAGE_UP);
	expect_pos(t, 20, 20);
	tui_table_command(t, CMD_END);
	expect_pos(t, 999999, 999980);
	tui_table_command(t, CMD_DOWN);          /* at the end: stays */
	expect_pos(t, 999999, 999980);
	tui_table_command(t, CMD_PAGE_DOWN);
	expect_pos(t, 999999, 999980);
	tui_table_command(t, CMD_PAGE_UP);
	expect_pos(t, 999979, 999960);
	tui_table_command(t, CMD_UP);
	expect_pos(t, 999978, 999960);
	for (int i = 0; i < 50000; i++)
		tui_table_command(t, CMD_PAGE_UP);
	expect_pos(t, 0, 0);
	/* Nothing of this materialised a row. */
	assert_int_equal(src.calls, 0);

	/* Fewer rows than a page. */
	tui_table_set_cursor(t, 500000);
	tui_table_set_rows(t, 10);
	expect_pos(t, 9, 0);
	tui_table_command(t, CMD_PAGE_DOWN);
	expect_pos(t, 9, 0);
	tui_table_command(t, CMD_END);
	expect_pos(t, 9, 0);
	/* No rows at all. */
	tui_table_set_rows(t, 0);
	assert_int_equal(tui_table_cursor(t), -1);
	tui_table_command(t, CMD_END);
	tui_table_command(t, CMD_DOWN);
	assert_int_equal(tui_table_cursor(t), -1);
	/* A smaller view keeps the cursor visible. */
	tui_table_set_rows(t, 1000);
	tui_table_set_cursor(t, 500);
	tui_table_set_height(t, 5);
	assert_true(tui_table_top(t) <= 500 && 500 < tui_table_top(t) + 5);
	tui_table_free(t);
}

static void
test_find_wraps(void **state)
{
	(void)state;
	struct source src;
	struct tui_table *t = table_new(&src, 1000000, 20);
	long found = -1;
	bool wrapped = true;
	assert_true(tui_table_find(t, "name0500000", 0, +1, &found, &wrapped));
	assert_int_equal(found, 499999);
	assert_false(wrapped);
	assert_true(tui_table_find(t, "name0500000", 600000, +1, &found, &wrapped));
	assert_int_equal(found, 499999);
	assert_true(wrapped);
	assert_true(tui_table_find(t, "name0500000", 400000, -1, &found, &wrapped));
	assert_int_equal(found, 499999);
	assert_true(wrapped);
	/* The start row itself counts. */
	assert_true(tui_table_find(t, "name0000001", 0, +1, &found, &wrapped));
	assert_int_equal(found, 0);
	/* Case-sensitive, any cell, substrings. */
	assert_false(tui_table_find(t, "NAME0000001", 0, +1, &found, &wrapped));
	assert_true(tui_table_find(t, "failed", 0, +1, &found, &wrapped));
	assert_int_equal(found, 2);
	assert_true(tui_table_find(t, "l7-01", 10, +1, &found, &wrapped));   /* "tail7-01..." only */
	assert_int_equal(found, 6);
	assert_true(wrapped);
	/* Not found visits every row once and says so. */
	src.calls = 0;
	assert_false(tui_table_find(t, "nowhere", 123, +1, &found, &wrapped));
	assert_int_equal(src.calls, 1000000);
	assert_false(tui_table_find(t, "", 0, +1, &found, &wrapped));
	tui_table_free(t);
}

static void
type(struct tui_table *t, const char *s)
{
	for (; *s; s++)
		assert_int_equal(tui_table_key(t, CMD_NONE, (unsigned char)*s), KEY_RESULT_HANDLED);
}

static void
test_search_keys(void **state)
{
	(void)state;
	struct source src;
	struct tui_table *t = table_new(&src, 1000000, 20);
	tui_table_set_cursor(t, 800000);
	assert_int_equal(tui_table_key(t, CMD_SEARCH, '/'), KEY_RESULT_HANDLED);
	assert_true(tui_table_searching(t));
	/* While the prompt is open, even q and n are text. */
	src.calls = 0;
	type(t, "name07");
	assert_int_equal(tui_table_cursor(t), 699999);    /* nothing from row 800000 on: wraps to name0700000 */
	type(t, "77777");
	assert_int_equal(tui_table_cursor(t), 777776);
	assert_string_equal(tui_table_message(t), "search wrapped to the top");
	/* Growing the needle continues from the match: about one pass over the rows, not eleven. */
	assert_true(src.calls < 1300000);
	type(t, "x");
	assert_int_equal(tui_table_cursor(t), 800000);    /* no match: back at the start */
	assert_string_equal(tui_table_message(t), "not found: name0777777x");
	tui_table_key(t, CMD_NONE, TUI_KEY_BACKSPACE);
	assert_int_equal(tui_table_cursor(t), 777776);
	tui_table_key(t, CMD_SELECT, '\n');               /* Enter keeps the match */
	assert_false(tui_table_searching(t));
	assert_int_equal(tui_table_cursor(t), 777776);
	/* n and N search again, wrapping. */
	assert_int_equal(tui_table_key(t, CMD_SEARCH_NEXT, 'n'), KEY_RESULT_HANDLED);
	assert_int_equal(tui_table_cursor(t), 777776);    /* the only match: found again after wrapping */
	assert_string_equal(tui_table_message(t), "search wrapped to the top");

	tui_table_key(t, CMD_SEARCH, '/');
	type(t, "name09999");
	tui_table_key(t, CMD_SELECT, '\n');
	assert_int_equal(tui_table_cursor(t), 999899);
	tui_table_key(t, CMD_SEARCH_NEXT, 'n');
	assert_int_equal(tui_table_cursor(t), 999900);
	tui_table_key(t, CMD_END, TUI_KEY(KEY_END));
	tui_table_key(t, CMD_SEARCH_NEXT, 'n');           /* past the end: wraps to the first */
	assert_int_equal(tui_table_cursor(t), 999899);
	assert_string_equal(tui_table_message(t), "search wrapped to the top");
	tui_table_key(t, CMD_SEARCH_PREV, 'N');           /* before the first: wraps to the last */
	assert_int_equal(tui_table_cursor(t), 999998);
	assert_string_equal(tui_table_message(t), "search wrapped to the bottom");

	/* Esc goes back to where the search started. */
	tui_table_set_cursor(t, 10);
	tui_table_key(t, CMD_SEARCH, '/');
	type(t, "name05");
	assert_int_equal(tui_table_cursor(t), 499999);
	tui_table_key(t, CMD_CANCEL, TUI_KEY_ESC);
	assert_false(tui_table_searching(t));
	assert_int_equal(tui_table_cursor(t), 10);
	/* Other keys pass. */
	assert_int_equal(tui_table_key(t, CMD_QUIT, 'q'), KEY_RESULT_PASS);
	tui_table_free(t);
}

/* Drawing needs curses: a terminal writing to /dev/null. */
static SCREEN *scr;
static FILE *scr_out, *scr_in;

static int
curses_up(void **state)
{
	(void)state;
	setenv("LINES", "40", 1);
	setenv("COLUMNS", "120", 1);
	scr_out = fopen("/dev/null", "w");
	scr_in = fopen("/dev/null", "r");
	scr = newterm("xterm", scr_out, scr_in);
	if (scr == NULL)
		return -1;
	set_term(scr);
	return 0;
}

static int
curses_down(void **state)
{
	(void)state;
	endwin();
	delscreen(scr);
	fclose(scr_out);
	fclose(scr_in);
	return 0;
}

static char *
line(WINDOW *w, int y, char *buf, int n)
{
	mvwinnstr(w, y, 0, buf, n);
	/* Trim trailing spaces for comparison. */
	size_t len = strlen(buf);
	while (len > 0 && buf[len - 1] == ' ')
		buf[--len] = '\0';
	return buf;
}

static void
test_draw_visible_only(void **state)
{
	(void)state;
	struct source src;
	struct tui_table *t = table_new(&src, 1000000, 20);
	WINDOW *w = newwin(22, 60, 0, 0);
	char buf[128];
	struct tui_rect r = { 0, 0, 22, 60 };

	tui_table_draw(t, w, r);
	assert_int_equal(src.calls, 20);                  /* 22 lines: header, 20 rows, status */
	assert_int_equal(src.lo, 0);
	assert_int_equal(src.hi, 19);
	assert_string_equal(line(w, 0, buf, 60), "id name        state  note");
	assert_string_equal(line(w, 1, buf, 60), " 1 name0000001 ok     tail1-012345");
	assert_true(strstr(line(w, 21, buf, 60), "row 1 of 1000000") != NULL);
	/* The cursor row is drawn in the cursor role (reverse video in mono). */
	assert_true(mvwinch(w, 1, 5) & A_REVERSE);
	assert_false(mvwinch(w, 2, 5) & A_REVERSE);
	/* Per-cell roles: row 3 is "failed", in the danger role. */
	assert_true((mvwinch(w, 3, 15) & A_ATTRIBUTES) == tui_attr(TUI_ROLE_DANGER));

	src.calls = 0;
	src.lo = 1000000;
	src.hi = -1;
	tui_table_command(t, CMD_END);
	tui_table_draw(t, w, r);
	assert_int_equal(src.calls, 20);
	assert_int_equal(src.lo, 999980);
	assert_int_equal(src.hi, 999999);
	assert_string_equal(line(w, 20, buf, 60), "1000000 name1000000 ok     tail1000000-");
	assert_true(strstr(line(w, 21, buf, 60), "row 1000000 of 1000000") != NULL);
	assert_true(mvwinch(w, 20, 0) & A_REVERSE);
	/* The id column grew to fit (auto widths only grow) and stays right-aligned. */
	tui_table_command(t, CMD_HOME);
	tui_table_draw(t, w, r);
	assert_string_equal(line(w, 1, buf, 60), "      1 name0000001 ok     tail1-012345");

	/* Horizontal scroll by 8 columns, only when the columns are wider than the view. */
	tui_table_command(t, CMD_RIGHT);
	assert_int_equal(tui_table_xoff(t), 0);
	struct tui_rect narrow = { 0, 0, 22, 30 };
	werase(w);
	tui_table_draw(t, w, narrow);
	tui_table_command(t, CMD_RIGHT);
	assert_int_equal(tui_table_xoff(t), 8);
	tui_table_draw(t, w, narrow);
	assert_string_equal(line(w, 1, buf, 30), "name0000001 ok     tail1-01234");
	assert_string_equal(line(w, 0, buf, 30), "name        state  note");
	tui_table_command(t, CMD_RIGHT);                  /* clamped at the right edge: 39 - 30 */
	tui_table_draw(t, w, narrow);
	assert_int_equal(tui_table_xoff(t), 9);
	tui_table_command(t, CMD_LEFT);
	tui_table_command(t, CMD_LEFT);
	assert_int_equal(tui_table_xoff(t), 0);

	/* The search prompt and a message show on the status line. */
	tui_table_key(t, CMD_SEARCH, '/');
	type(t, "zzz");
	tui_table_draw(t, w, r);
	assert_true(strncmp(line(w, 21, buf, 60), "/zzz", 4) == 0);
	assert_true(strstr(buf, "not found: zzz") != NULL);
	tui_table_key(t, CMD_CANCEL, TUI_KEY_ESC);

	/* No rows. */
	tui_table_set_rows(t, 0);
	tui_table_draw(t, w, r);
	assert_true(strstr(line(w, 21, buf, 60), "no rows") != NULL);
	delwin(w);
	tui_table_free(t);
}

static void
fill_long(void *ud, long row, struct tui_table_row *r)
{
	(void)ud;
	char big[1000];
	memset(big, 'a', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	tui_table_row_setf(r, 0, "%s%ld", big, row);   /* longer than setf's stack buffer */
	tui_table_row_set(r, 5, "ignored");             /* out of range: no effect */
	tui_table_row_role(r, 7, TUI_ROLE_WARN);
}

static void
test_long_cell(void **state)
{
	(void)state;
	struct tui_table_column c = { "x", 0, 0, 0, false };
	struct tui_table *t = tui_table_new(&c, 1, fill_long, NULL);
	tui_table_set_rows(t, 100);
	long found;
	bool wrapped;
	assert_true(tui_table_find(t, "aaaa42", 0, +1, &found, &wrapped));
	assert_int_equal(found, 42);
	tui_table_free(t);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_scroll_million),
		cmocka_unit_test(test_find_wraps),
		cmocka_unit_test(test_search_keys),
		cmocka_unit_test(test_long_cell),
		cmocka_unit_test_setup_teardown(test_draw_visible_only, curses_up, curses_down),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
