/* test_tui_confirm.c: unit tests for the typed confirmation: exact bytes, misses, no default. */
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
#include "tui/commands.h"
#include "tui/confirm.h"
#include "tui/text.h"

struct misses {
	int            calls;
	int            last_count;
	struct strlist typed;
};

static void
on_miss(void *ud, const char *typed, int misses)
{
	struct misses *m = ud;
	m->calls++;
	m->last_count = misses;
	strlist_push(&m->typed, typed);
}

/* Types a UTF-8 string key by key (code points), without Enter. */
static enum tui_confirm_result
type(struct tui_confirm_state *st, const char *s)
{
	enum tui_confirm_result r = TUI_CONFIRM_PENDING;
	size_t n = strlen(s);
	while (n > 0) {
		int cp;
		size_t k = tui_text_decode(s, n, &cp);
		assert_true(cp >= 0);
		r = tui_confirm_state_key(st, cp);
		assert_int_equal(r, TUI_CONFIRM_PENDING);
		s += k;
		n -= k;
	}
	return r;
}

static enum tui_confirm_result
submit(struct tui_confirm_state *st, const char *s)
{
	type(st, s);
	return tui_confirm_state_key(st, TUI_KEY_ENTER);
}

static void
test_matches(void **state)
{
	(void)state;
	const char *p = "deploy shop_prod";
	assert_true(tui_confirm_matches(p, "deploy shop_prod", 16));
	assert_false(tui_confirm_matches(p, "deploy shop_prod ", 17));   /* trailing space */
	assert_false(tui_confirm_matches(p, " deploy shop_prod", 17));   /* leading space */
	assert_false(tui_confirm_matches(p, "Deploy shop_prod", 16));    /* other case */
	assert_false(tui_confirm_matches(p, "DEPLOY SHOP_PROD", 16));
	assert_false(tui_confirm_matches(p, "deploy shop_pro", 15));     /* prefix */
	assert_false(tui_confirm_matches(p, "deploy  shop_prod", 17));
	assert_false(tui_confirm_matches(p, "apply shop_prod", 15));     /* the previous prompt's phrase */
	assert_false(tui_confirm_matches(p, "", 0));
	/* Length counts, not the NUL: "deploy shop_prod\0x" is not the phrase. */
	assert_false(tui_confirm_matches(p, "deploy shop_prod\0x", 18));
	/* UTF-8: exact bytes; the decomposed form of é is another phrase. */
	assert_true(tui_confirm_matches("restore caf\xc3\xa9", "restore caf\xc3\xa9", 13));
	assert_false(tui_confirm_matches("restore caf\xc3\xa9", "restore cafe\xcc\x81", 14));
}

static void
test_three_misses_refuse(void **state)
{
	(void)state;
	struct misses m = { 0 };
	struct tui_confirm_state st;
	tui_confirm_state_init(&st, "deploy shop_prod", 0, on_miss, &m);
	assert_int_equal(st.max_misses, TUI_CONFIRM_MAX_MISSES);

	assert_int_equal(submit(&st, "deploy shop_prod "), TUI_CONFIRM_PENDING);
	assert_int_equal(m.calls, 1);
	assert_int_equal(m.last_count, 1);
	assert_string_equal(m.typed.items[0], "deploy shop_prod ");
	assert_int_equal(st.len, 0);   /* the input is cleared after a miss */

	assert_int_equal(submit(&st, "Deploy shop_prod"), TUI_CONFIRM_PENDING);
	assert_int_equal(m.calls, 2);
	assert_string_equal(m.typed.items[1], "Deploy shop_prod");

	assert_int_equal(submit(&st, "apply shop_prod"), TUI_CONFIRM_REFUSED);
	assert_int_equal(m.calls, 3);
	assert_int_equal(m.last_count, 3);
	assert_string_equal(m.typed.items[2], "apply shop_prod");
	strlist_free(&m.typed);
}

static void
test_exact_after_misses(void **state)
{
	(void)state;
	struct misses m = { 0 };
	struct tui_confirm_state st;
	tui_confirm_state_init(&st, "deploy shop_prod", 3, on_miss, &m);
	assert_int_equal(submit(&st, "deploy shop_prod "), TUI_CONFIRM_PENDING);
	assert_int_equal(submit(&st, "DEPLOY SHOP_PROD"), TUI_CONFIRM_PENDING);
	assert_int_equal(submit(&st, "deploy shop_prod"), TUI_CONFIRM_OK);
	assert_int_equal(m.calls, 2);
	strlist_free(&m.typed);

	/* UTF-8 input is accepted and compared as bytes. */
	tui_confirm_state_init(&st, "restore caf\xc3\xa9", 3, NULL, NULL);
	assert_int_equal(submit(&st, "restore cafe"), TUI_CONFIRM_PENDING);
	assert_int_equal(st.misses, 1);
	assert_int_equal(submit(&st, "restore caf\xc3\xa9"), TUI_CONFIRM_OK);
}

static void
test_no_default(void **state)
{
	(void)state;
	struct misses m = { 0 };
	struct tui_confirm_state st;
	tui_confirm_state_init(&st, "deploy shop_prod", 3, on_miss, &m);
	/* Enter alone is not an answer and not a miss. */
	for (int i = 0; i < 10; i++)
		assert_int_equal(tui_confirm_state_key(&st, TUI_KEY_ENTER), TUI_CONFIRM_PENDING);
	/* y, Space and function keys are nothing special. */
	assert_int_equal(tui_confirm_state_key(&st, TUI_KEY(KEY_F(4))), TUI_CONFIRM_PENDING);
	assert_int_equal(submit(&st, "y"), TUI_CONFIRM_PENDING);
	assert_int_equal(m.calls, 1);
	/* Ctrl-C and Esc mean no, and are not misses. */
	assert_int_equal(tui_confirm_state_key(&st, TUI_CTRL('c')), TUI_CONFIRM_CANCELLED);
	tui_confirm_state_init(&st, "deploy shop_prod", 3, on_miss, &m);
	type(&st, "deploy shop_prod");
	assert_int_equal(tui_confirm_state_key(&st, TUI_KEY_ESC), TUI_CONFIRM_CANCELLED);
	assert_int_equal(m.calls, 1);
	strlist_free(&m.typed);
}

static void
test_editing(void **state)
{
	(void)state;
	struct tui_confirm_state st;
	tui_confirm_state_init(&st, "deploy shop_prod", 1, NULL, NULL);
	type(&st, "caf\xc3\xa9");
	assert_int_equal(st.len, 5);
	tui_confirm_state_key(&st, TUI_KEY_BACKSPACE);   /* removes the whole é */
	assert_int_equal(st.len, 3);
	assert_string_equal(st.input, "caf");
	tui_confirm_state_key(&st, TUI_CTRL('u'));
	assert_int_equal(st.len, 0);
	tui_confirm_state_key(&st, TUI_KEY_BACKSPACE);   /* on empty input: nothing */
	assert_int_equal(st.len, 0);
	type(&st, "deploy shop_prodd");
	tui_confirm_state_key(&st, TUI_KEY_BACKSPACE);
	assert_int_equal(tui_confirm_state_key(&st, TUI_KEY_ENTER), TUI_CONFIRM_OK);

	/* Long input stops at the buffer, never overflows; with max 1 the miss refuses. */
	tui_confirm_state_init(&st, "deploy shop_prod", 1, NULL, NULL);
	for (int i = 0; i < 1000; i++)
		tui_confirm_state_key(&st, 'x');
	assert_true(st.len < sizeof st.input);
	assert_int_equal(tui_confirm_state_key(&st, TUI_KEY_ENTER), TUI_CONFIRM_REFUSED);

	/* A phrase that fills the buffer, typed with extra text beyond it, is a miss, not a match. */
	char phrase[TUI_CONFIRM_INPUT_MAX];
	memset(phrase, 'p', sizeof phrase - 1);
	phrase[sizeof phrase - 1] = '\0';
	tui_confirm_state_init(&st, phrase, 3, NULL, NULL);
	type(&st, phrase);
	type(&st, " and then some");
	assert_true(st.overflow);
	assert_int_equal(tui_confirm_state_key(&st, TUI_KEY_ENTER), TUI_CONFIRM_PENDING);
	assert_int_equal(st.misses, 1);
	assert_false(st.overflow);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_matches),
		cmocka_unit_test(test_three_misses_refuse),
		cmocka_unit_test(test_exact_after_misses),
		cmocka_unit_test(test_no_default),
		cmocka_unit_test(test_editing),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
