/* test_staging.c: staging_estimate() reads the last successful, complete rehearsal of a run. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/staging.h"

/* A stage_result record of stage with data parsed from JSON text (the caller decrefs records' data). */
static struct journal_record
rec(enum rb_event_type type, const char *stage, const char *json)
{
	struct journal_record r;
	memset(&r, 0, sizeof r);
	r.type = type;
	r.stage = (char *)stage;
	r.data = json ? json_loads(json, 0, NULL) : NULL;
	return r;
}

static void
run(struct journal_record *recs, size_t n, bool want, int64_t want_ms, int64_t want_wait)
{
	struct run_state st;
	memset(&st, 0, sizeof st);
	st.records = recs;
	st.nrecords = n;
	int64_t ms = -1, wait = -1;
	assert_int_equal(staging_estimate(&st, &ms, &wait), want);
	if (want) {
		assert_int_equal(ms, want_ms);
		assert_int_equal(wait, want_wait);
	}
	for (size_t i = 0; i < n; i++)
		json_decref(recs[i].data);
}

static void
test_none(void **state)
{
	(void)state;
	int64_t ms, wait;
	assert_false(staging_estimate(NULL, &ms, &wait));
	struct journal_record r[] = {
		rec(EV_STAGE_RESULT, "migrate", "{\"ok\": true, \"estimate\": {\"complete\": true, \"migrate_ms\": 5}}"),
		rec(EV_STEP, "staging", "{\"ok\": true, \"estimate\": {\"complete\": true, \"migrate_ms\": 5}}"),
	};
	run(r, 2, false, 0, 0);
}

static void
test_last_good(void **state)
{
	(void)state;
	struct journal_record r[] = {
		rec(EV_STAGE_RESULT, "staging", "{\"ok\": true, \"estimate\": {\"complete\": true, \"migrate_ms\": 1200, "
		    "\"lock_wait_ms\": 300}}"),
		rec(EV_STAGE_RESULT, "staging", "{\"ok\": true, \"estimate\": {\"complete\": true, \"migrate_ms\": 900, "
		    "\"lock_wait_ms\": 20}}"),
		/* later: a failed rehearsal, and one whose migrations did not all apply */
		rec(EV_STAGE_RESULT, "staging", "{\"ok\": false, \"estimate\": {\"complete\": false, \"migrate_ms\": 7}}"),
		rec(EV_STAGE_RESULT, "staging", "{\"ok\": true, \"estimate\": {\"complete\": false, \"migrate_ms\": 8}}"),
		rec(EV_STAGE_RESULT, "staging", "{\"ok\": true, \"estimate\": null}"),
	};
	run(r, 5, true, 900, 20);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_none),
		cmocka_unit_test(test_last_good),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
