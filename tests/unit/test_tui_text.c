/* test_tui_text.c: unit tests for tui/text.c: UTF-8 decoding, widths, wrapping, clipped drawing. */
#include "config.h"

#include <locale.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/util.h"
#include "tui/text.h"

static void
test_decode_encode(void **state)
{
	(void)state;
	int cp;
	assert_int_equal(tui_text_decode("a", 1, &cp), 1);
	assert_int_equal(cp, 'a');
	assert_int_equal(tui_text_decode("\xc3\xa4", 2, &cp), 2);
	assert_int_equal(cp, 0xe4);
	assert_int_equal(tui_text_decode("\xf0\x9f\x98\x80", 4, &cp), 4);
	assert_int_equal(cp, 0x1f600);
	assert_int_equal(tui_text_decode("\xc3", 1, &cp), 1);      /* truncated */
	assert_int_equal(cp, -1);
	assert_int_equal(tui_text_decode("\xff", 1, &cp), 1);
	assert_int_equal(cp, -1);
	assert_int_equal(tui_text_decode("\xc0\xaf", 2, &cp), 1);  /* overlong */
	assert_int_equal(cp, -1);
	char out[5];
	assert_int_equal(tui_text_encode(0x20ac, out), 3);
	assert_string_equal(out, "\xe2\x82\xac");
	assert_int_equal(tui_text_encode('x', out), 1);
	assert_int_equal(tui_text_encode(0xd800, out), 3);         /* replaced by U+FFFD */
	assert_string_equal(out, "\xef\xbf\xbd");
}

static void
test_width_prev(void **state)
{
	(void)state;
	assert_int_equal(tui_text_width(""), 0);
	assert_int_equal(tui_text_width("abc"), 3);
	assert_int_equal(tui_text_width("caf\xc3\xa9"), 4);
	assert_int_equal(tui_text_width("\xe6\x97\xa5\xe6\x9c\xac"), 4);  /* two wide CJK characters */
	assert_int_equal(tui_text_width("a\xffz"), 3);
	assert_int_equal(tui_text_width("a\tb"), 3);                      /* a control shows as '?' */
	const char *s = "a\xc3\xa4\xe2\x82\xac";
	assert_int_equal(tui_text_prev(s, 6), 3);
	assert_int_equal(tui_text_prev(s, 3), 1);
	assert_int_equal(tui_text_prev(s, 1), 0);
	assert_int_equal(tui_text_prev(s, 0), 0);
	assert_int_equal(tui_text_prev("a\x80", 2), 1);                   /* a stray continuation byte */
}

static void
expect_wrap(const char *s, int width, const char *const *want, size_t n)
{
	struct strlist l = { 0 };
	tui_text_wrap(s, width, &l);
	if (l.len != n) {
		for (size_t i = 0; i < l.len; i++)
			print_message("line %zu: \"%s\"\n", i, l.items[i]);
	}
	assert_int_equal(l.len, n);
	for (size_t i = 0; i < n; i++)
		assert_string_equal(l.items[i], want[i]);
	strlist_free(&l);
}

static void
test_wrap(void **state)
{
	(void)state;
	expect_wrap("roll back shop_prod now", 10, (const char *[]){ "roll back", "shop_prod", "now" }, 3);
	expect_wrap("a\nb c", 10, (const char *[]){ "a", "b c" }, 2);
	expect_wrap("abcdefghijkl", 5, (const char *[]){ "abcde", "fghij", "kl" }, 3);
	expect_wrap("", 5, (const char *[]){ "" }, 1);
	expect_wrap("  indented text", 40, (const char *[]){ "  indented text" }, 1);
}

/* Drawing: a terminal writing to /dev/null. */
static SCREEN *scr;
static FILE *scr_out, *scr_in;

static int
curses_up(void **state)
{
	(void)state;
	setlocale(LC_CTYPE, "C.UTF-8");
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
row(WINDOW *w, int y, int n, char *buf)
{
	wchar_t wbuf[64];
	mvwinnwstr(w, y, 0, wbuf, n);
	wcstombs(buf, wbuf, 256);
	return buf;
}

static void
test_put(void **state)
{
	(void)state;
	WINDOW *w = newwin(4, 12, 0, 0);
	char buf[256];
	assert_int_equal(tui_text_put(w, 0, 0, "hello world, too long", 0, 10, A_NORMAL, true), 10);
	assert_string_equal(row(w, 0, 12, buf), "hello worl  ");
	assert_int_equal(tui_text_put(w, 1, 0, "hello", 2, 10, A_BOLD, true), 3);
	assert_string_equal(row(w, 1, 12, buf), "llo         ");
	assert_true(mvwinch(w, 1, 0) & A_BOLD);
	/* A wide character cut by the right edge becomes a space; controls show as '?'. */
	tui_text_put(w, 2, 0, "ab\xe6\x97\xa5", 0, 3, A_NORMAL, true);
	assert_string_equal(row(w, 2, 4, buf), "ab  ");
	tui_text_put(w, 3, 0, "a\x01" "b", 0, 5, A_NORMAL, true);
	assert_string_equal(row(w, 3, 5, buf), "a?b  ");
	delwin(w);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_decode_encode),
		cmocka_unit_test(test_width_prev),
		cmocka_unit_test(test_wrap),
		cmocka_unit_test_setup_teardown(test_put, curses_up, curses_down),
	};
	setlocale(LC_CTYPE, "C.UTF-8");
	return cmocka_run_group_tests(tests, NULL, NULL);
}
