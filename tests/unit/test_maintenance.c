/* test_maintenance.c: maint_pending_undo() on replayed journals (what resume thaws after a crash). */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/journal.h"
#include "core/maintenance.h"
#include "core/util.h"

struct fixture {
	char        *tmp;
	struct plan  plan;
};

static int
setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof(*f));
	char tmpl[] = "/tmp/test_maintenance.XXXXXX";
	assert_non_null(mkdtemp(tmpl));
	f->tmp = xstrdup(tmpl);
	char *st = xasprintf("%s/state", f->tmp);
	setenv("XDG_STATE_HOME", st, 1);
	free(st);
	f->plan.name = (char *)"maintenance unit";
	f->plan.path = (char *)"/nonexistent/plan.yaml";
	sha256_hex("plan", 4, f->plan.hash);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;
	assert_true(remove_tree(f->tmp));
	free(f->tmp);
	free(f);
	return 0;
}

/* Appends a freeze or thaw step; undo NULL means a JSON null undo (terminate). */
static void
step(struct journal *j, const char *kind, const char *layer, const char *state, json_t *undo,
     const char *freeze_run)
{
	json_t *d = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "kind", kind, "layer", layer, "state", state,
	                      "database", "shop_prod", "environment", "prod", "server", "/tmp:5432",
	                      "freeze_at", "2026-11-24T00:00:00.000Z");
	if (strcmp(kind, "freeze") == 0 && strcmp(state, "applying") == 0)
		json_object_set_new(d, "undo", undo ? undo : json_null());
	if (freeze_run)
		json_object_set_new(d, "freeze_run", json_string(freeze_run));
	struct rb_error err = {0};
	assert_true(journal_append(j, EV_STEP, strcmp(kind, "thaw") == 0 ? MAINT_STAGE_OFF : MAINT_STAGE_ON, NULL, d,
	                           &err));
	json_decref(d);
}

static json_t *
pending_of(struct journal *j)
{
	struct run_state st;
	struct rb_error err = {0};
	assert_true(journal_replay(journal_dir(j), &st, &err));
	json_t *p = maint_pending_undo(&st);
	run_state_free(&st);
	return p;
}

static const char *
layer_at(json_t *a, size_t i)
{
	return json_string_value(json_object_get(json_array_get(a, i), "layer"));
}

/* A run killed during the freeze: every "applying" record with an undo is pending, newest first. */
static void
test_killed_during_freeze(void **state)
{
	struct fixture *f = *state;
	struct rb_error err = {0};
	struct journal *j = journal_create(NULL, &f->plan, &err);
	assert_non_null(j);
	json_t *p = pending_of(j);
	assert_int_equal(json_array_size(p), 0);
	json_decref(p);
	step(j, "freeze", "hook_sql", "applying", json_pack("{s:s}", "off_sql", "select 1"), NULL);
	step(j, "freeze", "hook_sql", "applied", NULL, NULL);
	step(j, "freeze", "block", "applying", json_pack("{s:s, s:i}", "method", "connection_limit", "connection_limit", 50),
	     NULL);
	step(j, "freeze", "terminate", "applying", NULL, NULL);  /* no undo: never pending */
	step(j, "freeze", "read_only", "applying", json_pack("{s:n}", "previous"), NULL);
	p = pending_of(j);
	assert_int_equal(json_array_size(p), 3);
	assert_string_equal(layer_at(p, 0), "read_only");
	assert_string_equal(layer_at(p, 1), "block");
	assert_string_equal(layer_at(p, 2), "hook_sql");
	assert_string_equal(json_string_value(json_object_get(json_array_get(p, 0), "freeze_run")), journal_run_id(j));
	assert_int_equal(json_integer_value(json_object_get(json_object_get(json_array_get(p, 1), "undo"),
	                                                    "connection_limit")), 50);
	json_decref(p);

	/* a thaw of read_only (undone) and block (nothing) in this run leaves hook_sql; a failed one counts not */
	step(j, "thaw", "read_only", "undoing", NULL, journal_run_id(j));
	step(j, "thaw", "read_only", "undone", NULL, journal_run_id(j));
	step(j, "thaw", "block", "nothing", NULL, journal_run_id(j));
	step(j, "thaw", "hook_sql", "failed", NULL, journal_run_id(j));
	p = pending_of(j);
	assert_int_equal(json_array_size(p), 1);
	assert_string_equal(layer_at(p, 0), "hook_sql");
	json_decref(p);

	/* a thaw naming another run's freeze does not count for this one */
	step(j, "thaw", "hook_sql", "undone", NULL, "20260101T000000Z-other");
	p = pending_of(j);
	assert_int_equal(json_array_size(p), 1);
	json_decref(p);
	step(j, "thaw", "hook_sql", "undone", NULL, journal_run_id(j));
	p = pending_of(j);
	assert_int_equal(json_array_size(p), 0);
	json_decref(p);
	journal_close(j);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_killed_during_freeze, setup, teardown),
	};
	return cmocka_run_group_tests_name("maintenance", tests, NULL, NULL);
}
