/* test_events.c: unit tests of the event bus: order, formatting, names, threads. */
#include "config.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/events.h"
#include "core/util.h"

struct trace {
	struct strbuf log;
};

static void
sub_a(const struct rb_event *ev, void *ud)
{
	struct trace *t = ud;
	strbuf_addf(&t->log, "A:%s:%s;", events_type_name(ev->type), ev->message ? ev->message : "-");
}

static void
sub_b(const struct rb_event *ev, void *ud)
{
	struct trace *t = ud;
	strbuf_addf(&t->log, "B:%s:%s;", events_type_name(ev->type), ev->stage ? ev->stage : "-");
}

static void
test_order(void **state)
{
	(void)state;
	struct trace t = {0};
	struct events *bus = events_new();
	events_subscribe(bus, sub_a, &t);
	events_subscribe(bus, sub_b, &t);
	events_emitf(bus, EV_STAGE_STARTED, "preflight", NULL, "go %d", 1);
	events_emitf(bus, EV_STAGE_DONE, "preflight", NULL, NULL);
	assert_string_equal(t.log.buf,
	                    "A:stage_started:go 1;B:stage_started:preflight;"
	                    "A:stage_done:-;B:stage_done:preflight;");
	assert_true(events_unsubscribe(bus, sub_a, &t));
	assert_false(events_unsubscribe(bus, sub_a, &t));
	strbuf_reset(&t.log);
	events_emitf(bus, EV_RUN_FINISHED, NULL, NULL, "x");
	assert_string_equal(t.log.buf, "B:run_finished:-;");
	events_free(bus);
	strbuf_release(&t.log);
}

struct capture {
	enum rb_event_type type;
	enum rb_log_level  level;
	char              *stage;
	char              *message;
	json_t            *data;
	int                calls;
};

static void
sub_capture(const struct rb_event *ev, void *ud)
{
	struct capture *c = ud;
	c->calls++;
	c->type = ev->type;
	c->level = ev->level;
	free(c->stage);
	free(c->message);
	c->stage = ev->stage ? xstrdup(ev->stage) : NULL;
	c->message = ev->message ? xstrdup(ev->message) : NULL;
	json_decref(c->data);
	c->data = ev->data ? json_incref(ev->data) : NULL;
}

static void
test_emitf_and_log(void **state)
{
	(void)state;
	struct capture c = {0};
	struct events *bus = events_new();
	events_subscribe(bus, sub_capture, &c);

	json_t *data = json_pack("{s:i}", "rows", 42);
	events_emitf(bus, EV_STAGE_RESULT, "sync", data, "%s has %d rows", "Unit", 42);
	assert_int_equal(c.type, EV_STAGE_RESULT);
	assert_int_equal(c.level, LOG_LEVEL_INFO);
	assert_string_equal(c.stage, "sync");
	assert_string_equal(c.message, "Unit has 42 rows");
	assert_ptr_equal(c.data, data);
	/* The caller still owns data: the bus took no reference of its own. */
	assert_int_equal(data->refcount, 2);
	json_decref(c.data);
	c.data = NULL;
	json_decref(data);

	events_log(bus, LOG_LEVEL_WARN, NULL, "lock held by pid %d", 7);
	assert_int_equal(c.type, EV_LOG);
	assert_int_equal(c.level, LOG_LEVEL_WARN);
	assert_null(c.stage);
	assert_null(c.data);
	assert_string_equal(c.message, "lock held by pid 7");
	assert_int_equal(c.calls, 2);

	/* A NULL bus is a no-op. */
	events_emitf(NULL, EV_LOG, NULL, NULL, "nothing");
	events_log(NULL, LOG_LEVEL_ERROR, NULL, "nothing");
	events_emit(NULL, NULL);
	assert_int_equal(c.calls, 2);

	events_free(bus);
	events_free(NULL);
	free(c.stage);
	free(c.message);
}

static void
test_names(void **state)
{
	(void)state;
	for (int i = 0; i < EV__COUNT; i++) {
		enum rb_event_type t;
		const char *name = events_type_name((enum rb_event_type)i);
		assert_string_not_equal(name, "unknown");
		assert_true(events_type_from_name(name, &t));
		assert_int_equal(t, i);
	}
	enum rb_event_type t;
	assert_false(events_type_from_name("stage_exploded", &t));
	assert_string_equal(events_type_name(EV_STAGE_WAIVED), "stage_waived");
	assert_string_equal(events_type_name(EV__COUNT), "unknown");
	enum rb_log_level l;
	assert_true(events_level_from_name("error", &l));
	assert_int_equal(l, LOG_LEVEL_ERROR);
	assert_false(events_level_from_name("fatal", &l));
	assert_string_equal(events_level_name(LOG_LEVEL_WARN), "warn");
}

/* Two threads emit concurrently; the subscriber counts without atomics and checks overlap. */
struct counter {
	long  total;
	long  per_stage[2];
	int   inside;
	bool  overlapped;
	long  last_seen[2];
	bool  out_of_order;
};

static void
sub_count(const struct rb_event *ev, void *ud)
{
	struct counter *c = ud;
	if (c->inside++ != 0)
		c->overlapped = true;
	int who = ev->stage[0] == 'a' ? 0 : 1;
	long n = json_integer_value(json_object_get(ev->data, "n"));
	if (n != c->last_seen[who] + 1)
		c->out_of_order = true;
	c->last_seen[who] = n;
	long t = c->total;
	for (volatile int spin = 0; spin < 20; spin++)
		;  /* widen the window a lost update would need */
	c->total = t + 1;
	c->per_stage[who]++;
	c->inside--;
}

#define PER_THREAD 20000

struct emitter {
	struct events *bus;
	const char    *stage;
};

static void *
emit_many(void *arg)
{
	struct emitter *e = arg;
	for (long i = 1; i <= PER_THREAD; i++) {
		json_t *d = json_pack("{s:I}", "n", (json_int_t)i);
		events_emitf(e->bus, EV_PROGRESS, e->stage, d, NULL);
		json_decref(d);
	}
	return NULL;
}

static void
test_threads(void **state)
{
	(void)state;
	struct counter c = {0};
	struct events *bus = events_new();
	events_subscribe(bus, sub_count, &c);
	struct emitter a = { bus, "a" }, b = { bus, "b" };
	pthread_t ta, tb;
	assert_int_equal(pthread_create(&ta, NULL, emit_many, &a), 0);
	assert_int_equal(pthread_create(&tb, NULL, emit_many, &b), 0);
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	assert_false(c.overlapped);
	assert_false(c.out_of_order);
	assert_int_equal(c.total, 2 * PER_THREAD);
	assert_int_equal(c.per_stage[0], PER_THREAD);
	assert_int_equal(c.per_stage[1], PER_THREAD);
	events_free(bus);
}

/* A subscriber may emit; the nested event reaches every subscriber without deadlock. */
static struct events *nested_bus;

static void
sub_reemit(const struct rb_event *ev, void *ud)
{
	(void)ud;
	if (ev->type == EV_CONFIRM_MISS)
		events_log(nested_bus, LOG_LEVEL_WARN, ev->stage, "refused");
}

static void
test_nested_emit(void **state)
{
	(void)state;
	struct trace t = {0};
	nested_bus = events_new();
	events_subscribe(nested_bus, sub_reemit, NULL);
	events_subscribe(nested_bus, sub_a, &t);
	events_emitf(nested_bus, EV_CONFIRM_MISS, "migrate", NULL, "typed wrong");
	assert_string_equal(t.log.buf, "A:log:refused;A:confirm_miss:typed wrong;");
	events_free(nested_bus);
	strbuf_release(&t.log);
}

/* Subscribers that unsubscribe themselves or others during delivery. */
struct unsub {
	struct events *bus;
	struct trace  *t;
	const char    *name;
	struct unsub  *victim;  /* unsubscribed on the first event; may be this one */
	bool           done;
};

static void
sub_unsub(const struct rb_event *ev, void *ud)
{
	struct unsub *u = ud;
	strbuf_addf(&u->t->log, "%s:%s;", u->name, ev->message ? ev->message : "-");
	if (u->victim != NULL && !u->done) {
		u->done = true;
		assert_true(events_unsubscribe(u->bus, sub_unsub, u->victim));
		/* A second removal of the same subscription finds nothing. */
		assert_false(events_unsubscribe(u->bus, sub_unsub, u->victim));
		if (u->victim != u)
			events_emitf(u->bus, EV_LOG, NULL, NULL, "nested");
	}
}

static void
test_unsubscribe_during_delivery(void **state)
{
	(void)state;
	struct trace t = {0};
	struct events *bus = events_new();
	struct unsub a = { bus, &t, "A", NULL, false }, b = { bus, &t, "B", NULL, false };
	struct unsub c = { bus, &t, "C", NULL, false }, d = { bus, &t, "D", NULL, false };
	a.victim = &a;   /* A removes itself: B must still get the event */
	c.victim = &d;   /* C removes D, which comes after it: D must not get it */
	events_subscribe(bus, sub_unsub, &a);
	events_subscribe(bus, sub_unsub, &b);
	events_subscribe(bus, sub_unsub, &c);
	events_subscribe(bus, sub_unsub, &d);
	events_emitf(bus, EV_LOG, NULL, NULL, "one");
	/* The nested emit from C goes to B and C (A and D are gone), before D's turn. */
	assert_string_equal(t.log.buf, "A:one;B:one;C:one;B:nested;C:nested;");
	strbuf_reset(&t.log);
	events_emitf(bus, EV_LOG, NULL, NULL, "two");
	assert_string_equal(t.log.buf, "B:two;C:two;");
	/* Compacted afterwards: the dead entries are really gone. */
	assert_false(events_unsubscribe(bus, sub_unsub, &a));
	assert_true(events_unsubscribe(bus, sub_unsub, &b));
	strbuf_reset(&t.log);
	events_emitf(bus, EV_LOG, NULL, NULL, "three");
	assert_string_equal(t.log.buf, "C:three;");
	events_free(bus);
	strbuf_release(&t.log);
}

/* A subscriber added during delivery gets the next event, not the current one. */
static struct events *late_bus;
static struct trace late_trace;

static void
sub_adder(const struct rb_event *ev, void *ud)
{
	(void)ev;
	bool *added = ud;
	if (!*added) {
		*added = true;
		events_subscribe(late_bus, sub_a, &late_trace);
	}
}

static void
test_subscribe_during_delivery(void **state)
{
	(void)state;
	bool added = false;
	late_bus = events_new();
	events_subscribe(late_bus, sub_adder, &added);
	events_emitf(late_bus, EV_LOG, NULL, NULL, "first");
	assert_null(late_trace.log.buf == NULL ? NULL : strstr(late_trace.log.buf, "first"));
	events_emitf(late_bus, EV_LOG, NULL, NULL, "second");
	assert_string_equal(late_trace.log.buf, "A:log:second;");
	events_free(late_bus);
	strbuf_release(&late_trace.log);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_order),
		cmocka_unit_test(test_emitf_and_log),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_threads),
		cmocka_unit_test(test_nested_emit),
		cmocka_unit_test(test_unsubscribe_during_delivery),
		cmocka_unit_test(test_subscribe_during_delivery),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
