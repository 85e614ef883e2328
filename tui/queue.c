/* queue.c: the mutex-protected item queue with a self-pipe, and pthread workers posting to it. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#include "core/util.h"
#include "tui/queue.h"

struct queue_node {
	struct queue_node *next;
	void              *item;
};

struct tui_queue {
	pthread_mutex_t    lock;
	struct queue_node *head, *tail;
	int                pipe_rd, pipe_wr;
	tui_item_free_fn   item_free;
};

struct tui_worker {
	pthread_t             thread;
	struct tui_queue     *queue;
	tui_worker_fn         fn;
	void                 *arg;
	void                 *done_item;
	void                 *result;
	atomic_int cancel;
	atomic_bool           finished;
};

struct tui_queue *
tui_queue_new(tui_item_free_fn item_free)
{
	int fds[2];
	if (pipe(fds) != 0)
		return NULL;
	for (int i = 0; i < 2; i++) {
		int fl = fcntl(fds[i], F_GETFL);
		fcntl(fds[i], F_SETFL, fl | O_NONBLOCK);
		fcntl(fds[i], F_SETFD, FD_CLOEXEC);
	}
	struct tui_queue *q = xcalloc(1, sizeof *q);
	pthread_mutex_init(&q->lock, NULL);
	q->pipe_rd = fds[0];
	q->pipe_wr = fds[1];
	q->item_free = item_free;
	return q;
}

void
tui_queue_free(struct tui_queue *q)
{
	if (q == NULL)
		return;
	void *item;
	while ((item = tui_queue_pop(q)) != NULL) {
		if (q->item_free)
			q->item_free(item);
	}
	close(q->pipe_rd);
	close(q->pipe_wr);
	pthread_mutex_destroy(&q->lock);
	free(q);
}

void
tui_queue_wake(struct tui_queue *q)
{
	int saved = errno;
	/* A full pipe already means "wake up"; the failed write is fine. */
	ssize_t r = write(q->pipe_wr, "x", 1);
	(void)r;
	errno = saved;
}

void
tui_queue_post(struct tui_queue *q, void *item)
{
	if (item == NULL)
		return;
	struct queue_node *n = xmalloc(sizeof *n);
	n->next = NULL;
	n->item = item;
	pthread_mutex_lock(&q->lock);
	if (q->tail)
		q->tail->next = n;
	else
		q->head = n;
	q->tail = n;
	pthread_mutex_unlock(&q->lock);
	tui_queue_wake(q);
}

void *
tui_queue_pop(struct tui_queue *q)
{
	pthread_mutex_lock(&q->lock);
	struct queue_node *n = q->head;
	if (n) {
		q->head = n->next;
		if (q->head == NULL)
			q->tail = NULL;
	}
	pthread_mutex_unlock(&q->lock);
	if (n == NULL)
		return NULL;
	void *item = n->item;
	free(n);
	return item;
}

tui_item_free_fn
tui_queue_item_free(const struct tui_queue *q)
{
	return q->item_free;
}

int
tui_queue_fd(const struct tui_queue *q)
{
	return q->pipe_rd;
}

int
tui_queue_wake_fd(const struct tui_queue *q)
{
	return q->pipe_wr;
}

void
tui_queue_drain_fd(struct tui_queue *q)
{
	char buf[256];
	while (read(q->pipe_rd, buf, sizeof buf) > 0)
		;
}

static void *
worker_main(void *p)
{
	struct tui_worker *w = p;
	w->result = w->fn(w->arg, &w->cancel);
	void *item = w->done_item;
	atomic_store(&w->finished, true);
	/* After this post the UI may join; w stays valid until it does. */
	tui_queue_post(w->queue, item);
	return NULL;
}

struct tui_worker *
tui_worker_start(struct tui_queue *q, tui_worker_fn fn, void *arg, void *done_item)
{
	struct tui_worker *w = xcalloc(1, sizeof *w);
	w->queue = q;
	w->fn = fn;
	w->arg = arg;
	w->done_item = done_item;
	w->cancel = 0;
	atomic_init(&w->finished, false);
	/* Workers must not take the UI's signals (SIGWINCH, SIGTERM): block them in the thread. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int rc = pthread_create(&w->thread, NULL, worker_main, w);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		free(w);
		errno = rc;
		return NULL;
	}
	return w;
}

void
tui_worker_cancel(struct tui_worker *w)
{
	if (w)
		w->cancel = 1;
}

bool
tui_worker_finished(struct tui_worker *w)
{
	return w && atomic_load(&w->finished);
}

void *
tui_worker_join(struct tui_worker *w)
{
	if (w == NULL)
		return NULL;
	pthread_join(w->thread, NULL);
	void *result = w->result;
	free(w);
	return result;
}
