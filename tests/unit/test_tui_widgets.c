/* test_tui_widgets.c: unit tests for the log pane, text view, theme and dialog answers. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "tui/dialog.h"
#include "tui/logpane.h"
#include "tui/textview.h"
#include "tui/theme.h"

static void
test_log_ring(void **state)
{
	(void)state;
	struct tui_log *l = tui_log_new(3);
	assert_int_equal(tui_log_count(l), 0);
	assert_null(tui_log_text(l, 0));
	tui_log_add(l, TUI_LOG_INFO, "one %d", 1);
	tui_log_add(l, TUI_LOG_WARN, "two");
	assert_int_equal(tui_log_count(l), 2);
	assert_string_equal(tui_log_text(l, 0), "one 1");
	assert_int_equal(tui_log_level_of(l, 1), TUI_LOG_WARN);
	tui_log_add(l, TUI_LOG_ERROR, "three\nfour");   /* two lines */
	assert_int_equal(tui_log_count(l), 3);
	assert_string_equal(tui_log_text(l, 0), "two");
	assert_string_equal(tui_log_text(l, 1), "three");
	assert_string_equal(tui_log_text(l, 2), "four");
	assert_int_equal(tui_log_level_of(l, 2), TUI_LOG_ERROR);
	for (int i = 0; i < 100; i++)
		tui_log_add(l, TUI_LOG_INFO, "n%d", i);
	assert_int_equal(tui_log_count(l), 3);
	assert_string_equal(tui_log_text(l, 0), "n97");
	assert_string_equal(tui_log_text(l, 2), "n99");
	tui_log_add_at(l, TUI_LOG_OK, 0, "replayed");
	assert_string_equal(tui_log_text(l, 2), "replayed");
	tui_log_free(l);
	tui_log_free(NULL);
}

static void
test_textview(void **state)
{
	(void)state;
	struct tui_textview *tv = tui_textview_new();
	tui_textview_set_text(tv, "BEGIN;\r\n\tALTER TABLE x;\nCOMMIT;\n");
	assert_int_equal(tui_textview_count(tv), 3);
	assert_string_equal(tui_textview_line(tv, 0), "BEGIN;");
	assert_string_equal(tui_textview_line(tv, 1), "        ALTER TABLE x;");
	assert_null(tui_textview_line(tv, 3));
	tui_textview_set_margin(tv, 1, "DANGER", TUI_ROLE_DANGER);
	tui_textview_set_margin(tv, 9, "ignored", TUI_ROLE_DANGER);
	tui_textview_set_role(tv, 9, TUI_ROLE_DANGER);

	/* Scrolling against a 10-line page (the default before a draw). */
	tui_textview_set_text(tv, "");
	for (int i = 0; i < 100; i++)
		tui_textview_add_line(tv, "x", TUI_ROLE_NORMAL);
	assert_true(tui_textview_command(tv, CMD_END));
	assert_int_equal(tui_textview_top(tv), 90);
	tui_textview_command(tv, CMD_DOWN);
	assert_int_equal(tui_textview_top(tv), 90);
	tui_textview_command(tv, CMD_PAGE_UP);
	assert_int_equal(tui_textview_top(tv), 81);
	tui_textview_command(tv, CMD_HOME);
	assert_int_equal(tui_textview_top(tv), 0);
	tui_textview_show(tv, 50);
	assert_int_equal(tui_textview_top(tv), 48);
	tui_textview_show(tv, 52);          /* already visible: no move */
	assert_int_equal(tui_textview_top(tv), 48);
	assert_false(tui_textview_command(tv, CMD_QUIT));
	tui_textview_free(tv);
}

static void
test_theme(void **state)
{
	(void)state;
	assert_true(tui_theme_want_color(NULL, true));
	assert_true(tui_theme_want_color("", true));      /* empty NO_COLOR does not count */
	assert_false(tui_theme_want_color("1", true));
	assert_false(tui_theme_want_color("0", true));    /* any non-empty value */
	assert_false(tui_theme_want_color(NULL, false));
	/* Mono stays usable: the cursor is reverse video, alarms stand out, prod differs from danger. */
	assert_true(tui_theme_mono_attr(TUI_ROLE_CURSOR) & A_REVERSE);
	assert_int_not_equal(tui_theme_mono_attr(TUI_ROLE_DANGER), A_NORMAL);
	assert_int_not_equal(tui_theme_mono_attr(TUI_ROLE_WARN), A_NORMAL);
	assert_int_not_equal(tui_theme_mono_attr(TUI_ROLE_PROD), tui_theme_mono_attr(TUI_ROLE_DANGER));
	assert_int_not_equal(tui_theme_mono_attr(TUI_ROLE_DANGER), tui_theme_mono_attr(TUI_ROLE_WARN));
	assert_int_not_equal(tui_theme_mono_attr(TUI_ROLE_HEADER), tui_theme_mono_attr(TUI_ROLE_DANGER));
	/* Before a terminal exists, tui_attr gives the mono attributes. */
	assert_int_equal(tui_attr(TUI_ROLE_CURSOR), tui_theme_mono_attr(TUI_ROLE_CURSOR));
	assert_string_equal(tui_role_name(TUI_ROLE_PROD), "prod");
	assert_string_equal(tui_role_name(TUI_ROLE__COUNT), "unknown");
}

static void
test_ask_answer(void **state)
{
	(void)state;
	assert_int_equal(tui_ask_answer('y'), 1);
	assert_int_equal(tui_ask_answer('Y'), 1);
	assert_int_equal(tui_ask_answer('n'), 0);
	assert_int_equal(tui_ask_answer('N'), 0);
	assert_int_equal(tui_ask_answer(TUI_KEY_ESC), 0);
	assert_int_equal(tui_ask_answer(TUI_CTRL('c')), 0);
	/* No default: Enter, Space and anything else answer nothing. */
	assert_int_equal(tui_ask_answer(TUI_KEY_ENTER), -1);
	assert_int_equal(tui_ask_answer(' '), -1);
	assert_int_equal(tui_ask_answer('q'), -1);
	assert_int_equal(tui_ask_answer(TUI_KEY(KEY_F(4))), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_log_ring),
		cmocka_unit_test(test_textview),
		cmocka_unit_test(test_theme),
		cmocka_unit_test(test_ask_answer),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
