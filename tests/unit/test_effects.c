/* test_effects.c: unit tests for core/effects.c's JSON and core/recover.c's rules, previews and names. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/effects.h"
#include "core/recover.h"

/* Adds one effect to e (strings copied). */
static void
add(struct effects *e, size_t stmt, const char *kind, enum effect_seen seen, bool invalid, const char *what)
{
	e->items = xrealloc(e->items, (e->n + 1) * sizeof *e->items);
	struct effect *x = &e->items[e->n++];
	memset(x, 0, sizeof *x);
	x->stmt = stmt;
	x->line = (int)stmt + 1;
	x->kind = xstrdup(kind);
	x->object = xstrdup("\"public\".\"T\"");
	x->expect_present = true;
	x->seen = seen;
	x->invalid_index = invalid;
	x->what = xstrdup(what);
	if (seen == EFFECT_DONE)
		e->done++;
	else if (seen == EFFECT_NOT_DONE)
		e->not_done++;
	else
		e->unknown++;
	if (invalid)
		e->invalid_indexes++;
}

static void
info_init(struct recover_info *ri, enum mig_state state)
{
	memset(ri, 0, sizeof *ri);
	ri->env = xstrdup("prod");
	ri->database = xstrdup("shop_prod");
	ri->schema = xstrdup("public");
	ri->name = xstrdup("20250101000000_x");
	ri->state = state;
	ri->lock_timeout_ms = 2000;
	ri->statement_timeout_ms = 15 * 60 * 1000;
}

static void
test_names(void **state)
{
	(void)state;
	const char *names[] = { "mark-rolled-back", "mark-applied", "run-sql", "rollback" };
	for (int a = RECOVER_MARK_ROLLED_BACK; a <= RECOVER_ROLLBACK; a++) {
		enum recover_action back;
		assert_string_equal(recover_action_name((enum recover_action)a), names[a]);
		assert_true(recover_action_from_name(names[a], &back));
		assert_int_equal(back, a);
	}
	enum recover_action x;
	assert_false(recover_action_from_name("restore", &x));
	assert_false(recover_action_from_name(NULL, &x));
	assert_string_equal(effect_seen_name(EFFECT_DONE), "done");
	assert_string_equal(effect_seen_name(EFFECT_NOT_DONE), "not_done");
	assert_string_equal(effect_seen_name(EFFECT_UNKNOWN), "unknown");
}

static void
test_effects_json(void **state)
{
	(void)state;
	struct effects e = {0};
	add(&e, 0, "table", EFFECT_DONE, false, "table \"public\".\"T\" exists");
	add(&e, 1, "index", EFFECT_NOT_DONE, true, "index exists but is INVALID");
	add(&e, 2, "data", EFFECT_UNKNOWN, false, "INSERT: data changes cannot be checked");
	free(e.items[2].object);
	e.items[2].object = NULL;
	json_t *j = effects_to_json(&e);
	char *text = json_dumps(j, JSON_SORT_KEYS | JSON_COMPACT);
	assert_string_equal(text,
		"{\"done\":1,\"effects\":["
		"{\"expect_present\":true,\"invalid_index\":false,\"kind\":\"table\",\"line\":1,"
		"\"object\":\"\\\"public\\\".\\\"T\\\"\",\"seen\":\"done\",\"statement\":0,"
		"\"what\":\"table \\\"public\\\".\\\"T\\\" exists\"},"
		"{\"expect_present\":true,\"invalid_index\":true,\"kind\":\"index\",\"line\":2,"
		"\"object\":\"\\\"public\\\".\\\"T\\\"\",\"seen\":\"not_done\",\"statement\":1,"
		"\"what\":\"index exists but is INVALID\"},"
		"{\"expect_present\":true,\"invalid_index\":false,\"kind\":\"data\",\"line\":3,"
		"\"object\":null,\"seen\":\"unknown\",\"statement\":2,"
		"\"what\":\"INSERT: data changes cannot be checked\"}],"
		"\"invalid_indexes\":1,\"not_done\":1,\"unknown\":1}");
	free(text);
	json_decref(j);
	effects_free(&e);
	assert_int_equal(e.n, 0);
	effects_free(&e);   /* twice is fine */
	effects_free(NULL);
}

static void
test_rules_partial(void **state)
{
	(void)state;
	struct recover_info ri;
	info_init(&ri, MIG_FAILED);
	add(&ri.effects, 0, "table", EFFECT_DONE, false, "table \"public\".\"T\" exists");
	add(&ri.effects, 1, "column", EFFECT_NOT_DONE, false, "column \"public\".\"T\".\"c\" does not exist");
	recover_decide(&ri);
	assert_false(ri.allowed[RECOVER_MARK_ROLLED_BACK]);
	assert_non_null(strstr(ri.why_not[RECOVER_MARK_ROLLED_BACK], "1 of its effects is present (first: table"));
	assert_false(ri.allowed[RECOVER_MARK_APPLIED]);
	assert_non_null(strstr(ri.why_not[RECOVER_MARK_APPLIED], "1 of its effects is missing (first: column"));
	assert_true(ri.allowed[RECOVER_RUN_SQL]);
	assert_null(ri.why_not[RECOVER_RUN_SQL]);
	assert_false(ri.allowed[RECOVER_ROLLBACK]);
	assert_non_null(strstr(ri.why_not[RECOVER_ROLLBACK], "`pgrunbook rollback --plan FILE [--run RUN]`"));
	assert_non_null(strstr(ri.why_not[RECOVER_ROLLBACK], "the run's backup"));
	assert_string_equal(ri.phrase[RECOVER_MARK_ROLLED_BACK], "resolve shop_prod");
	assert_string_equal(ri.phrase[RECOVER_MARK_APPLIED], "resolve shop_prod");
	assert_string_equal(ri.phrase[RECOVER_RUN_SQL], "deploy shop_prod");
	assert_string_equal(ri.phrase[RECOVER_ROLLBACK], "rollback shop_prod");
	recover_decide(&ri);   /* again: replaces, does not leak */
	assert_false(ri.allowed[RECOVER_MARK_APPLIED]);
	recover_info_free(&ri);
}

static void
test_rules_invalid_index(void **state)
{
	(void)state;
	struct recover_info ri;
	info_init(&ri, MIG_FAILED);
	add(&ri.effects, 0, "index", EFFECT_NOT_DONE, true, "index \"public\".\"i\" exists but is INVALID");
	recover_decide(&ri);
	/* Nothing done, but the INVALID index blocks both marks. */
	assert_false(ri.allowed[RECOVER_MARK_ROLLED_BACK]);
	assert_non_null(strstr(ri.why_not[RECOVER_MARK_ROLLED_BACK], "INVALID (line 1): drop it first"));
	assert_false(ri.allowed[RECOVER_MARK_APPLIED]);
	assert_non_null(strstr(ri.why_not[RECOVER_MARK_APPLIED], "INVALID (line 1): drop it and build it again"));
	recover_info_free(&ri);
}

static void
test_rules_unknown(void **state)
{
	(void)state;
	struct recover_info ri;
	info_init(&ri, MIG_FAILED);
	add(&ri.effects, 0, "table", EFFECT_DONE, false, "table exists");
	add(&ri.effects, 1, "data", EFFECT_UNKNOWN, false, "INSERT: data changes cannot be checked");
	recover_decide(&ri);
	assert_true(ri.allowed[RECOVER_MARK_APPLIED]);
	assert_non_null(strstr(ri.warning[RECOVER_MARK_APPLIED], "1 effect cannot be checked (data changes cannot be checked)"));
	assert_false(ri.allowed[RECOVER_MARK_ROLLED_BACK]);
	assert_null(ri.warning[RECOVER_MARK_ROLLED_BACK]);
	recover_info_free(&ri);

	/* Nothing checkable at all: both marks allowed, each with its warning. */
	info_init(&ri, MIG_FAILED);
	add(&ri.effects, 0, "data", EFFECT_UNKNOWN, false, "UPDATE: data changes cannot be checked");
	recover_decide(&ri);
	assert_true(ri.allowed[RECOVER_MARK_ROLLED_BACK]);
	assert_non_null(strstr(ri.warning[RECOVER_MARK_ROLLED_BACK], "data changes cannot be checked"));
	assert_true(ri.allowed[RECOVER_MARK_APPLIED]);
	assert_non_null(ri.warning[RECOVER_MARK_APPLIED]);
	recover_info_free(&ri);

	/* No effects at all (an empty script): mark-applied says none can be checked. */
	info_init(&ri, MIG_FAILED);
	recover_decide(&ri);
	assert_true(ri.allowed[RECOVER_MARK_ROLLED_BACK]);
	assert_null(ri.warning[RECOVER_MARK_ROLLED_BACK]);
	assert_string_equal(ri.warning[RECOVER_MARK_APPLIED], "none of its effects can be checked");
	recover_info_free(&ri);
}

static void
test_rules_not_failed(void **state)
{
	(void)state;
	enum mig_state states[] = { MIG_APPLIED, MIG_PENDING, MIG_MODIFIED, MIG_MISSING_LOCALLY };
	for (size_t i = 0; i < sizeof states / sizeof states[0]; i++) {
		struct recover_info ri;
		info_init(&ri, states[i]);
		recover_decide(&ri);
		for (int a = RECOVER_MARK_ROLLED_BACK; a <= RECOVER_ROLLBACK; a++)
			assert_false(ri.allowed[a]);
		assert_non_null(strstr(ri.why_not[RECOVER_MARK_APPLIED], "not failed: there is nothing to recover"));
		assert_non_null(strstr(ri.why_not[RECOVER_RUN_SQL], migrations_state_name(states[i])));
		recover_info_free(&ri);
	}
}

static void
test_rules_unparsable(void **state)
{
	(void)state;
	struct recover_info ri;
	info_init(&ri, MIG_FAILED);
	ri.lint_error = xstrdup("x:3:5: syntax error at or near \"NUL\"");
	recover_decide(&ri);
	assert_false(ri.allowed[RECOVER_MARK_APPLIED]);
	assert_non_null(strstr(ri.why_not[RECOVER_MARK_APPLIED], "does not parse"));
	assert_true(ri.allowed[RECOVER_MARK_ROLLED_BACK]);
	assert_non_null(strstr(ri.warning[RECOVER_MARK_ROLLED_BACK], "does not parse past x:3:5"));
	recover_info_free(&ri);
}

static void
test_preview(void **state)
{
	(void)state;
	struct recover_info ri;
	info_init(&ri, MIG_FAILED);
	char *p = recover_preview(&ri, RECOVER_MARK_ROLLED_BACK, NULL);
	assert_non_null(strstr(p, "Sets rolled_back_at on the failed row of 20250101000000_x in "
	                          "\"public\"._prisma_migrations of shop_prod"));
	free(p);
	p = recover_preview(&ri, RECOVER_MARK_APPLIED, NULL);
	assert_non_null(strstr(p, "the next deploy skips this migration"));
	free(p);
	p = recover_preview(&ri, RECOVER_RUN_SQL, NULL);
	assert_non_null(strstr(p, "Runs a compensating SQL file (--sql FILE) on shop_prod"));
	assert_non_null(strstr(p, "under lock_timeout 2s and statement_timeout 15min"));
	free(p);

	char path[] = "/tmp/test_effects_XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	const char *sql = "DROP INDEX CONCURRENTLY \"i\";\nALTER TABLE \"T\" DROP COLUMN \"c\";\n";
	assert_int_equal(write(fd, sql, strlen(sql)), (ssize_t)strlen(sql));
	close(fd);
	p = recover_preview(&ri, RECOVER_RUN_SQL, path);
	assert_non_null(strstr(p, "\n  line 1: safe  DROP INDEX CONCURRENTLY \"i\""));
	assert_non_null(strstr(p, "\n  line 2: risky PG107  ALTER TABLE \"T\" DROP COLUMN \"c\""));
	assert_non_null(strstr(p, "This file cannot run as it is: line 1 cannot run in a transaction block"));
	free(p);
	unlink(path);
	p = recover_preview(&ri, RECOVER_RUN_SQL, path);
	assert_non_null(strstr(p, "cannot read"));
	free(p);

	p = recover_preview(&ri, RECOVER_ROLLBACK, NULL);
	assert_non_null(strstr(p, "run `pgrunbook rollback --plan FILE`, not recover."));
	free(p);
	recover_info_free(&ri);
}

static void
test_info_json(void **state)
{
	(void)state;
	struct recover_info ri;
	info_init(&ri, MIG_FAILED);
	add(&ri.effects, 0, "table", EFFECT_NOT_DONE, false, "table does not exist");
	recover_decide(&ri);
	json_t *j = recover_info_json(&ri);
	assert_string_equal(json_string_value(json_object_get(j, "state")), "failed");
	assert_string_equal(json_string_value(json_object_get(j, "database")), "shop_prod");
	assert_true(json_is_null(json_object_get(j, "logs")));
	assert_true(json_is_array(json_object_get(j, "statements")));
	json_t *acts = json_object_get(j, "actions");
	assert_int_equal(json_array_size(acts), 4);
	assert_true(json_is_true(json_object_get(json_array_get(acts, 0), "allowed")));
	assert_true(json_is_null(json_object_get(json_array_get(acts, 0), "why_not")));
	assert_false(json_is_true(json_object_get(json_array_get(acts, 1), "allowed")));
	assert_string_equal(json_string_value(json_object_get(json_array_get(acts, 2), "phrase")), "deploy shop_prod");
	json_decref(j);
	recover_info_free(&ri);
	lint_shutdown();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_effects_json),
		cmocka_unit_test(test_rules_partial),
		cmocka_unit_test(test_rules_invalid_index),
		cmocka_unit_test(test_rules_unknown),
		cmocka_unit_test(test_rules_not_failed),
		cmocka_unit_test(test_rules_unparsable),
		cmocka_unit_test(test_preview),
		cmocka_unit_test(test_info_json),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
