/* test_confirm.c: unit tests for core/confirm.c (exact comparison, reasons, journaled events). */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/confirm.h"
#include "core/events.h"

static void
test_phrase(void **state)
{
	(void)state;
	char *p = confirm_phrase("deploy", "shop_prod");
	assert_string_equal(p, "deploy shop_prod");
	free(p);
}

static void
test_compare(void **state)
{
	(void)state;
	assert_int_equal(confirm_compare("deploy shop_prod", "deploy shop_prod"), CONFIRM_MATCH);
	assert_int_equal(confirm_compare("deploy shop_prod", "deploy shop_prod "), CONFIRM_MISS_WHITESPACE);
	assert_int_equal(confirm_compare("deploy shop_prod", " deploy shop_prod"), CONFIRM_MISS_WHITESPACE);
	assert_int_equal(confirm_compare("deploy shop_prod", "deploy  shop_prod"), CONFIRM_MISS_WHITESPACE);
	assert_int_equal(confirm_compare("deploy shop_prod", "deploy shop_prod\n"), CONFIRM_MISS_WHITESPACE);
	assert_int_equal(confirm_compare("deploy shop_prod", "Deploy shop_prod"), CONFIRM_MISS_CASE);
	assert_int_equal(confirm_compare("deploy shop_prod", "DEPLOY SHOP_PROD "), CONFIRM_MISS_CASE);
	assert_int_equal(confirm_compare("deploy shop_prod", "apply shop_prod"), CONFIRM_MISS_OTHER);
	assert_int_equal(confirm_compare("deploy shop_prod", "deploy shop_pro"), CONFIRM_MISS_OTHER);
	assert_int_equal(confirm_compare("deploy shop_prod", ""), CONFIRM_MISS_EMPTY);
	assert_int_equal(confirm_compare("deploy shop_prod", NULL), CONFIRM_MISS_EMPTY);
	/* Non-ASCII names compare byte for byte: a decomposed é is not the precomposed one. */
	assert_int_equal(confirm_compare("restore caf\xc3\xa9", "restore caf\xc3\xa9"), CONFIRM_MATCH);
	assert_int_equal(confirm_compare("restore caf\xc3\xa9", "restore cafe\xcc\x81"), CONFIRM_MISS_OTHER);
	/* A prefix of the phrase is not the phrase. */
	assert_int_equal(confirm_compare("deploy shop_prod", "deploy shop"), CONFIRM_MISS_OTHER);
	assert_int_equal(confirm_compare(CONFIRM_OVERWRITE_PHRASE, "i_understand_prod_overwrite"), CONFIRM_MISS_CASE);
}

struct seen {
	int             n;
	enum rb_event_type type[4];
	char           *dump[4];
};

static void
collect(const struct rb_event *ev, void *ud)
{
	struct seen *s = ud;
	if (s->n < 4) {
		s->type[s->n] = ev->type;
		s->dump[s->n] = ev->data ? json_dumps(ev->data, JSON_SORT_KEYS | JSON_COMPACT) : strdup("");
	}
	s->n++;
}

static void
test_check_events(void **state)
{
	(void)state;
	struct events *bus = events_new();
	struct seen s = {0};
	events_subscribe(bus, collect, &s);
	struct rb_ctx ctx = { .bus = bus };
	struct rb_error err = {0};

	assert_false(confirm_check(&ctx, "migrate", "deploy shop_prod", "Deploy shop_prod", &err));
	assert_int_equal(err.code, RB_EXIT_STEP);
	assert_non_null(strstr(err.message, "letter case"));
	assert_non_null(strstr(err.hint, "--confirm \"deploy shop_prod\""));
	rb_error_clear(&err);
	assert_false(confirm_check(&ctx, "migrate", "deploy shop_prod", "hunter2-secret", &err));
	rb_error_clear(&err);
	assert_true(confirm_check(&ctx, "migrate", "deploy shop_prod", "deploy shop_prod", &err));
	assert_null(err.message);

	assert_int_equal(s.n, 3);
	assert_int_equal(s.type[0], EV_CONFIRM_MISS);
	assert_int_equal(s.type[1], EV_CONFIRM_MISS);
	assert_int_equal(s.type[2], EV_CONFIRM_OK);
	assert_non_null(strstr(s.dump[1], "\"typed_length\":14"));
	assert_null(strstr(s.dump[1], "hunter2"));     /* the typed text is never recorded */
	assert_non_null(strstr(s.dump[0], "\"phrase\":\"deploy shop_prod\""));
	for (int i = 0; i < 3; i++)
		free(s.dump[i]);
	events_free(bus);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_phrase),
		cmocka_unit_test(test_compare),
		cmocka_unit_test(test_check_events),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
