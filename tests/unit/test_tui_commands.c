/* test_tui_commands.c: unit tests for tui/commands.c: key names, bindings, the command list. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "tui/commands.h"

static int
parse(const char *name)
{
	int raw = -12345;
	assert_true(tui_key_parse(name, &raw));
	return raw;
}

static void
test_key_parse(void **state)
{
	(void)state;
	assert_int_equal(parse("q"), 'q');
	assert_int_equal(parse("/"), '/');
	assert_int_equal(parse("?"), '?');
	assert_int_equal(parse("G"), 'G');
	assert_int_equal(parse("F"), 'F');
	assert_int_equal(parse("F1"), TUI_KEY(KEY_F(1)));
	assert_int_equal(parse("F10"), TUI_KEY(KEY_F(10)));
	assert_int_equal(parse("F12"), TUI_KEY(KEY_F(12)));
	assert_int_equal(parse("C-l"), 12);
	assert_int_equal(parse("C-c"), 3);
	assert_int_equal(parse("Enter"), '\n');
	assert_int_equal(parse("Space"), ' ');
	assert_int_equal(parse("Tab"), '\t');
	assert_int_equal(parse("S-Tab"), TUI_KEY(KEY_BTAB));
	assert_int_equal(parse("Esc"), 0x1b);
	assert_int_equal(parse("Backspace"), 0x7f);
	assert_int_equal(parse("PgUp"), TUI_KEY(KEY_PPAGE));
	assert_int_equal(parse("PgDn"), TUI_KEY(KEY_NPAGE));
	assert_int_equal(parse("Home"), TUI_KEY(KEY_HOME));
	assert_int_equal(parse("End"), TUI_KEY(KEY_END));
	assert_int_equal(parse("Up"), TUI_KEY(KEY_UP));
	assert_int_equal(parse("\xc3\xa4"), 0xe4);          /* ä */
	assert_int_equal(parse("\xe2\x82\xac"), 0x20ac);    /* € */

	int raw = 77;
	const char *bad[] = { "", "F0", "F13", "F1x", "C-", "C-L", "C-ab", "ab", "Enterx", " ", "\xff",
	                      "\xc3", "\xc3\xa4x", "\xed\xa0\x80" /* surrogate */, "\xc0\xaf" /* overlong */ };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		if (tui_key_parse(bad[i], &raw))
			fail_msg("key name \"%s\" should not parse", bad[i]);
	}
	assert_false(tui_key_parse(NULL, &raw));
	assert_int_equal(raw, 77);
}

static void
test_key_name_roundtrip(void **state)
{
	(void)state;
	const char *names[] = { "q", "F1", "F10", "C-l", "Enter", "Space", "Tab", "S-Tab", "Esc", "Backspace",
	                        "PgUp", "PgDn", "Home", "End", "Up", "Down", "Left", "Right", "Ins", "Del",
	                        "\xc3\xa4", "\xe2\x82\xac", "\xf0\x9f\x98\x80" };
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		char buf[32];
		assert_string_equal(tui_key_name(parse(names[i]), buf, sizeof buf), names[i]);
	}
	char buf[32];
	assert_string_equal(tui_key_name(TUI_KEY(KEY_F(5)), buf, sizeof buf), "F5");
	assert_string_equal(tui_key_name(TUI_CTRL('u'), buf, sizeof buf), "C-u");
	/* A tiny buffer truncates, never overflows. */
	char small[3];
	assert_string_equal(tui_key_name(TUI_KEY_BACKSPACE, small, sizeof small), "Ba");
}

static void
test_normalize(void **state)
{
	(void)state;
	assert_int_equal(tui_key_normalize('\r', false), '\n');
	assert_int_equal(tui_key_normalize('\n', false), '\n');
	assert_int_equal(tui_key_normalize(8, false), 0x7f);
	assert_int_equal(tui_key_normalize('a', false), 'a');
	assert_int_equal(tui_key_normalize(0x102, false), 0x102);   /* a character, not KEY_DOWN */
	assert_int_equal(tui_key_normalize(KEY_ENTER, true), '\n');
	assert_int_equal(tui_key_normalize(KEY_BACKSPACE, true), 0x7f);
	assert_int_equal(tui_key_normalize(KEY_FIND, true), TUI_KEY(KEY_HOME));
	assert_int_equal(tui_key_normalize(KEY_SELECT, true), TUI_KEY(KEY_END));
	assert_int_equal(tui_key_normalize(KEY_DOWN, true), TUI_KEY(KEY_DOWN));
	assert_int_not_equal(tui_key_normalize(KEY_DOWN, true), tui_key_normalize(KEY_DOWN, false));

	assert_true(tui_key_is_text('a'));
	assert_true(tui_key_is_text(' '));
	assert_true(tui_key_is_text(0xe4));
	assert_true(tui_key_is_text(0x1f600));
	assert_false(tui_key_is_text(0x1b));
	assert_false(tui_key_is_text('\n'));
	assert_false(tui_key_is_text(0x7f));
	assert_false(tui_key_is_text(0x85));
	assert_false(tui_key_is_text(TUI_KEY(KEY_UP)));
	assert_false(tui_key_is_text(0xd800));
}

static void
test_bindings(void **state)
{
	(void)state;
	assert_int_equal(CMD__FIRST, KEY_MAX + 1);
	assert_int_equal(command_for_key('q'), CMD_QUIT);
	assert_int_equal(command_for_key(TUI_KEY(KEY_F(10))), CMD_QUIT);
	assert_int_equal(command_for_key(TUI_KEY(KEY_F(1))), CMD_HELP);
	assert_int_equal(command_for_key('?'), CMD_HELP);
	assert_int_equal(command_for_key(TUI_CTRL('c')), CMD_CANCEL);
	assert_int_equal(command_for_key(0x1b), CMD_CANCEL);
	assert_int_equal(command_for_key('/'), CMD_SEARCH);
	assert_int_equal(command_for_key('n'), CMD_SEARCH_NEXT);
	assert_int_equal(command_for_key('N'), CMD_SEARCH_PREV);
	assert_int_equal(command_for_key(' '), CMD_TOGGLE);
	assert_int_equal(command_for_key('\n'), CMD_SELECT);
	assert_int_equal(command_for_key('\t'), CMD_FOCUS_NEXT);
	assert_int_equal(command_for_key(TUI_KEY(KEY_END)), CMD_END);
	assert_int_equal(command_for_key('G'), CMD_END);
	assert_int_equal(command_for_key(']'), CMD_NEXT_STAGE);
	assert_int_equal(command_for_key('['), CMD_PREV_STAGE);
	assert_int_equal(command_for_key('x'), CMD_NONE);
	assert_int_equal(command_for_key(TUI_KEY(KEY_F(11))), CMD_NONE);

	assert_int_equal(command_fkey(CMD_HELP), 1);
	assert_int_equal(command_fkey(CMD_QUIT), 10);
	assert_int_equal(command_fkey(CMD_UP), 0);
	assert_string_equal(command_name(CMD_NEXT_STAGE), "NEXT_STAGE");
	assert_null(command_name(CMD_NONE));
	assert_null(command_name((enum command)CMD__END));
	enum command c;
	assert_true(command_from_name("ROLLBACK", &c));
	assert_int_equal(c, CMD_ROLLBACK);
	assert_false(command_from_name("rollback", &c));
	char buf[64];
	assert_string_equal(command_keys_text(CMD_CANCEL, buf, sizeof buf), "Esc, C-c");
	assert_string_equal(command_keys_text(CMD_ROLLBACK, buf, sizeof buf), "F8");
}

/* The list itself: every key parses, no key is bound twice, Ctrl-C never quits, labels need F-keys. */
static void
test_list_consistent(void **state)
{
	(void)state;
	int seen[256];
	int nseen = 0;
	for (int c = CMD__FIRST; c < CMD__END; c++) {
		const char *keys = command_keys((enum command)c);
		assert_true(strlen(keys) > 0);
		assert_true(strlen(command_help((enum command)c)) > 0);
		char copy[64];
		snprintf(copy, sizeof copy, "%s", keys);
		for (char *tok = strtok(copy, " "); tok; tok = strtok(NULL, " ")) {
			int raw;
			if (!tui_key_parse(tok, &raw))
				fail_msg("%s: key \"%s\" does not parse", command_name((enum command)c), tok);
			for (int i = 0; i < nseen; i++) {
				if (seen[i] == raw)
					fail_msg("%s: key \"%s\" is bound twice", command_name((enum command)c), tok);
			}
			seen[nseen++] = raw;
			assert_int_equal(command_for_key(raw), c);
			if (c == CMD_QUIT)
				assert_int_not_equal(raw, TUI_CTRL('c'));
		}
		if (command_label((enum command)c) != NULL)
			assert_true(command_fkey((enum command)c) > 0);
	}
	assert_true(nseen > CMD__COUNT);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_key_parse),
		cmocka_unit_test(test_key_name_roundtrip),
		cmocka_unit_test(test_normalize),
		cmocka_unit_test(test_bindings),
		cmocka_unit_test(test_list_consistent),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
