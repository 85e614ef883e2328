/* test_tui_queue.c: unit tests for the UI queue (threads, self-pipe) and worker threads. */
#include "config.h"

#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "core/util.h"
#include "tui/queue.h"

static int freed;

static void
count_free(void *p)
{
	freed++;
	free(p);
}

static int *
item(int v)
{
	int *p = malloc(sizeof *p);
	*p = v;
	return p;
}

static bool
readable(struct tui_queue *q, int timeout_ms)
{
	struct pollfd pfd = { tui_queue_fd(q), POLLIN, 0 };
	return poll(&pfd, 1, timeout_ms) == 1 && (pfd.revents & POLLIN);
}

static void
test_fifo_and_wake(void **state)
{
	(void)state;
	freed = 0;
	struct tui_queue *q = tui_queue_new(count_free);
	assert_non_null(q);
	assert_false(readable(q, 0));
	assert_null(tui_queue_pop(q));
	tui_queue_post(q, NULL);                 /* ignored */
	assert_false(readable(q, 0));
	for (int i = 0; i < 5; i++)
		tui_queue_post(q, item(i));
	assert_true(readable(q, 0));
	tui_queue_drain_fd(q);
	assert_false(readable(q, 0));
	for (int i = 0; i < 3; i++) {
		int *p = tui_queue_pop(q);
		assert_int_equal(*p, i);
		free(p);
	}
	tui_queue_wake(q);
	assert_true(readable(q, 0));
	/* The two left are freed with the queue. */
	tui_queue_free(q);
	assert_int_equal(freed, 2);
	tui_queue_free(NULL);
}

#define THREADS 4
#define PER_THREAD 20000

struct poster {
	struct tui_queue *q;
	int               id;
};

static void *
post_many(void *arg)
{
	struct poster *p = arg;
	for (int i = 0; i < PER_THREAD; i++)
		tui_queue_post(p->q, item(p->id * PER_THREAD + i));
	return NULL;
}

static void
test_threads(void **state)
{
	(void)state;
	struct tui_queue *q = tui_queue_new(free);
	pthread_t th[THREADS];
	struct poster ps[THREADS];
	for (int i = 0; i < THREADS; i++) {
		ps[i] = (struct poster){ q, i };
		pthread_create(&th[i], NULL, post_many, &ps[i]);
	}
	/* Consume while they post, like the UI loop: poll, drain, pop. */
	int next[THREADS] = { 0 };
	int got = 0;
	while (got < THREADS * PER_THREAD) {
		assert_true(readable(q, 5000));
		tui_queue_drain_fd(q);
		int *p;
		while ((p = tui_queue_pop(q)) != NULL) {
			int t = *p / PER_THREAD, i = *p % PER_THREAD;
			assert_int_equal(i, next[t]);   /* each thread's items arrive in order, once */
			next[t]++;
			got++;
			free(p);
		}
	}
	for (int i = 0; i < THREADS; i++)
		pthread_join(th[i], NULL);
	assert_null(tui_queue_pop(q));
	tui_queue_free(q);
}

static void *
square(void *arg, atomic_int *cancel)
{
	(void)cancel;
	int *r = malloc(sizeof *r);
	*r = *(int *)arg * *(int *)arg;
	return r;
}

static void *
until_cancelled(void *arg, atomic_int *cancel)
{
	long *loops = arg;
	while (!*cancel) {
		struct timespec ts = { 0, 1000000 };
		nanosleep(&ts, NULL);
		(*loops)++;
	}
	return loops;
}

static void
test_worker(void **state)
{
	(void)state;
	struct tui_queue *q = tui_queue_new(free);
	int arg = 12;
	struct tui_worker *w = tui_worker_start(q, square, &arg, item(-1));
	assert_non_null(w);
	/* The done item arrives through the queue; the UI joins then. */
	int *done = NULL;
	while (done == NULL) {
		assert_true(readable(q, 5000));
		tui_queue_drain_fd(q);
		done = tui_queue_pop(q);
	}
	assert_int_equal(*done, -1);
	free(done);
	assert_true(tui_worker_finished(w));
	int *r = tui_worker_join(w);
	assert_int_equal(*r, 144);
	free(r);

	/* A worker that runs until cancelled: not finished, then cancelled, then done. */
	long loops = 0;
	w = tui_worker_start(q, until_cancelled, &loops, item(-2));
	assert_false(readable(q, 50));
	assert_false(tui_worker_finished(w));
	tui_worker_cancel(w);
	assert_true(readable(q, 5000));
	tui_queue_drain_fd(q);
	done = tui_queue_pop(q);
	assert_int_equal(*done, -2);
	free(done);
	assert_ptr_equal(tui_worker_join(w), &loops);
	assert_true(loops > 0);
	assert_null(tui_worker_join(NULL));
	tui_queue_free(q);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fifo_and_wake),
		cmocka_unit_test(test_threads),
		cmocka_unit_test(test_worker),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
