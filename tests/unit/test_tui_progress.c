/* test_tui_progress.c: unit tests for the progress arithmetic: smoothed rate, ETA, formats. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "tui/progress.h"

/* Feeds a constant rate (units per second) in 100 ms steps from the current state for ms. */
static void
run(struct tui_progress *p, long long *now, double per_s, long long ms)
{
	double done = (double)p->done;
	for (long long t = 0; t < ms; t += 100) {
		*now += 100;
		done += per_s / 10.0;
		tui_progress_update(p, (long long)(done + 0.5), *now);
	}
}

static void
test_constant_rate(void **state)
{
	(void)state;
	struct tui_progress p;
	long long now = 1000000;
	tui_progress_start(&p, 10000, now);
	assert_true(tui_progress_rate(&p, now) < 0);
	assert_int_equal(tui_progress_eta_ms(&p, now), -1);   /* no rate yet */
	run(&p, &now, 1000, 400);
	assert_true(tui_progress_rate(&p, now) < 0);          /* less than one sample interval */
	run(&p, &now, 1000, 600);
	assert_int_equal(p.done, 1000);
	assert_float_equal(tui_progress_rate(&p, now), 1000.0, 0.5);
	assert_int_equal(tui_progress_eta_ms(&p, now), 9000);
	assert_int_equal(tui_progress_percent(&p), 10);
	run(&p, &now, 1000, 4000);
	assert_float_equal(tui_progress_rate(&p, now), 1000.0, 0.5);
	assert_int_equal(tui_progress_eta_ms(&p, now), 5000);
}

static void
test_rate_change_smoothed(void **state)
{
	(void)state;
	struct tui_progress p;
	long long now = 0;
	tui_progress_start(&p, 1000000, now);
	run(&p, &now, 1000, 5000);
	assert_float_equal(tui_progress_rate(&p, now), 1000.0, 0.5);
	/* The rate doubles: one second later the estimate moved towards 2000 but not all the way. */
	run(&p, &now, 2000, 1000);
	double r1 = tui_progress_rate(&p, now);
	assert_true(r1 > 1100 && r1 < 1900);
	/* After many time constants it has converged. */
	run(&p, &now, 2000, 30000);
	assert_float_equal(tui_progress_rate(&p, now), 2000.0, 20.0);
	/* A single slow half second does not halve the rate. */
	long long before = p.done;
	now += 500;
	tui_progress_update(&p, before + 100, now);   /* 200/s for one sample */
	double r2 = tui_progress_rate(&p, now);
	assert_true(r2 > 1500);
}

static void
test_stall(void **state)
{
	(void)state;
	struct tui_progress p;
	long long now = 0;
	tui_progress_start(&p, 100000, now);
	run(&p, &now, 1000, 5000);
	long long eta0 = tui_progress_eta_ms(&p, now);
	assert_int_equal(eta0, 95000);
	/* Nothing moves for 10 s: the rate sinks and the ETA grows, computed at the later time. */
	double r = tui_progress_rate(&p, now + 10000);
	assert_true(r < 500);
	assert_true(tui_progress_eta_ms(&p, now + 10000) > 2 * eta0);
	/* A long stall: the estimate becomes unknown instead of overflowing. */
	struct tui_progress q = p;
	long long t = now;
	for (int i = 0; i < 400; i++) {
		t += 500;
		tui_progress_update(&q, q.done, t);
	}
	assert_int_equal(tui_progress_eta_ms(&q, t), -1);
	/* A partial interval that is faster than the rate does not inflate it. */
	tui_progress_update(&p, p.done + 900, now + 200);
	assert_float_equal(tui_progress_rate(&p, now + 300), 1000.0, 0.5);
	assert_float_equal(tui_progress_rate(&p, now + 600), 1000.0, 0.5);
}

static void
test_done_and_unknown(void **state)
{
	(void)state;
	struct tui_progress p;
	long long now = 0;
	tui_progress_start(&p, 500, now);
	run(&p, &now, 1000, 500);
	assert_int_equal(p.done, 500);
	assert_int_equal(tui_progress_eta_ms(&p, now), 0);
	assert_int_equal(tui_progress_percent(&p), 100);

	tui_progress_start(&p, 0, now);    /* unknown total */
	run(&p, &now, 100, 2000);
	assert_int_equal(tui_progress_percent(&p), -1);
	assert_int_equal(tui_progress_eta_ms(&p, now), -1);
	assert_float_equal(tui_progress_rate(&p, now), 100.0, 0.5);
	tui_progress_set_total(&p, 400);
	assert_int_equal(tui_progress_percent(&p), 50);
	assert_int_equal(tui_progress_eta_ms(&p, now), 2000);
}

static void
test_formats(void **state)
{
	(void)state;
	char buf[32];
	assert_string_equal(tui_progress_duration(0, buf, sizeof buf), "0:00");
	assert_string_equal(tui_progress_duration(1, buf, sizeof buf), "0:01");   /* rounds up */
	assert_string_equal(tui_progress_duration(7000, buf, sizeof buf), "0:07");
	assert_string_equal(tui_progress_duration(245000, buf, sizeof buf), "4:05");
	assert_string_equal(tui_progress_duration(3723000, buf, sizeof buf), "1:02:03");
	assert_string_equal(tui_progress_duration(-1, buf, sizeof buf), "--:--");
	assert_string_equal(tui_progress_rate_text(-1, buf, sizeof buf), "-");
	assert_string_equal(tui_progress_rate_text(950, buf, sizeof buf), "950/s");
	assert_string_equal(tui_progress_rate_text(12345, buf, sizeof buf), "12.3k/s");
	assert_string_equal(tui_progress_rate_text(4.5e6, buf, sizeof buf), "4.50M/s");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_constant_rate),
		cmocka_unit_test(test_rate_change_smoothed),
		cmocka_unit_test(test_stall),
		cmocka_unit_test(test_done_and_unknown),
		cmocka_unit_test(test_formats),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
