/* queue.h: a thread-safe queue that wakes the UI loop, and worker threads that post to it. */
#ifndef PGRUNBOOK_TUI_QUEUE_H
#define PGRUNBOOK_TUI_QUEUE_H

#include <stdatomic.h>
#include <stdbool.h>

struct tui_queue;
typedef void (*tui_item_free_fn)(void *item);

/*
 * A new empty queue with its self-pipe. item_free (may be NULL) frees items the queue still
 * holds when it is freed; the app loop also uses it after delivering each item. Returns NULL
 * when the pipe cannot be created (errno set). Free with tui_queue_free().
 */
struct tui_queue *tui_queue_new(tui_item_free_fn item_free);
/* Frees the queue and, with item_free, every item still in it. Accepts NULL. No thread may post. */
void tui_queue_free(struct tui_queue *q);
/*
 * Appends an item (not NULL) and wakes the loop. Safe from any thread; never blocks on the UI
 * thread (only on a short mutex). Takes ownership of item.
 */
void tui_queue_post(struct tui_queue *q, void *item);
/* Removes and returns the oldest item, or NULL when empty. The caller owns the item. */
void *tui_queue_pop(struct tui_queue *q);
/* The function that frees items (NULL when items need no freeing). */
tui_item_free_fn tui_queue_item_free(const struct tui_queue *q);
/* The read end of the self-pipe: readable after a post or tui_queue_wake(). For poll(). */
int tui_queue_fd(const struct tui_queue *q);
/* The write end of the self-pipe, for a signal handler that writes one byte to wake the loop. */
int tui_queue_wake_fd(const struct tui_queue *q);
/* Wakes the loop without an item. Async-signal-safe (one write(2)). */
void tui_queue_wake(struct tui_queue *q);
/* Empties the self-pipe (after poll said it is readable). UI thread. */
void tui_queue_drain_fd(struct tui_queue *q);

/*
 * Workers: run one function on its own thread so the UI thread never waits on the network or
 * the database. fn receives arg and a cancel flag (suitable for struct rb_ctx.cancel) and returns
 * a result. When fn returns, done_item is posted to the queue; the loop hands it to the screens,
 * and whoever handles it calls tui_worker_join() to collect the result.
 */
struct tui_worker;
typedef void *(*tui_worker_fn)(void *arg, atomic_int *cancel);

/*
 * Starts fn(arg, cancel) on a new thread. done_item (not NULL) is posted when fn returns; the
 * queue owns it from then on. Returns NULL when the thread cannot be created (then done_item is
 * still the caller's). Every started worker must be joined with tui_worker_join().
 */
struct tui_worker *tui_worker_start(struct tui_queue *q, tui_worker_fn fn, void *arg, void *done_item);
/* Asks the worker to stop: sets its cancel flag. Returns at once; fn decides when it stops. */
void tui_worker_cancel(struct tui_worker *w);
/* True once fn has returned (its done_item is posted). */
bool tui_worker_finished(struct tui_worker *w);
/*
 * Waits for the thread to end (at once when tui_worker_finished() is true), frees the worker and
 * returns fn's result. Accepts NULL (returns NULL).
 */
void *tui_worker_join(struct tui_worker *w);

#endif
