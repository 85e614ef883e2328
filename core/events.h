/* events.h: the one event bus; the journal, notifier, TUI and CLI printer subscribe to it. */
#ifndef PGRUNBOOK_EVENTS_H
#define PGRUNBOOK_EVENTS_H

#include <jansson.h>
#include <stdbool.h>

/*
 * Event types, with their journal names. `progress` is for screens and is not journaled; `step`
 * records one unit of work (a migration, a statement) and is.
 */
#define EVENT_TYPES(_) \
	_(RUN_STARTED,      "run_started") \
	_(RUN_FINISHED,     "run_finished") \
	_(STAGE_STARTED,    "stage_started") \
	_(STAGE_DONE,       "stage_done") \
	_(STAGE_FAILED,     "stage_failed") \
	_(STAGE_SKIPPED,    "stage_skipped") \
	_(STAGE_WAIVED,     "stage_waived") \
	_(STAGE_RESULT,     "stage_result") \
	_(PROGRESS,         "progress") \
	_(STEP,             "step") \
	_(LOG,              "log") \
	_(CONFIRM_NEEDED,   "confirm_needed") \
	_(CONFIRM_OK,       "confirm_ok") \
	_(CONFIRM_MISS,     "confirm_miss") \
	_(CHECKLIST_TICK,   "checklist_tick") \
	_(OVER_BUDGET,      "over_budget") \
	_(ROLLBACK_STARTED, "rollback_started") \
	_(ROLLBACK_DONE,    "rollback_done")
#define EVENT_ENUM(id, name) EV_##id,
enum rb_event_type { EVENT_TYPES(EVENT_ENUM) EV__COUNT };
#undef EVENT_ENUM

enum rb_log_level { LOG_LEVEL_INFO, LOG_LEVEL_WARN, LOG_LEVEL_ERROR };

/*
 * One event. Every pointer is borrowed for the duration of the emit call; subscribers copy what
 * they keep. `data` is a JSON object with the event's fields (may be NULL).
 */
struct rb_event {
	enum rb_event_type type;
	const char        *stage;    /* stage name or NULL */
	const char        *message;  /* one human line or NULL */
	enum rb_log_level  level;
	json_t            *data;
};

typedef void (*events_fn)(const struct rb_event *ev, void *userdata);

struct events;

/* A new bus with no subscribers; free with events_free(). Emitting is thread-safe. */
struct events *events_new(void);
void events_free(struct events *bus);
/*
 * Adds a subscriber; they are called in subscription order, in the emitting thread. Delivery is
 * serialised: while one event is being delivered, an emit from another thread waits, so every
 * subscriber sees the same total order and is never called from two threads at once. A
 * subscriber may itself emit (that event is delivered at once, nested); it must not wait for
 * another thread that emits on the same bus, and should return quickly.
 */
void events_subscribe(struct events *bus, events_fn fn, void *userdata);
/*
 * Removes the first subscription with this fn and userdata; false when there was none. May be
 * called from a subscriber during delivery (for itself or another): the removed subscriber is
 * not called again, not even for the event being delivered, and every other one still is.
 * A subscriber added during delivery gets the next event, not the current one.
 */
bool events_unsubscribe(struct events *bus, events_fn fn, void *userdata);
/* Delivers ev to every subscriber. bus may be NULL (then nothing happens). */
void events_emit(struct events *bus, const struct rb_event *ev);
/*
 * Convenience: builds the event (level info) and emits it; data is borrowed (the caller still
 * owns it). fmt may be NULL for an event without a message.
 */
void events_emitf(struct events *bus, enum rb_event_type type, const char *stage, json_t *data,
                  const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* Emits an EV_LOG event: a line at a level for a stage (stage may be NULL), without data. */
void events_log(struct events *bus, enum rb_log_level level, const char *stage, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/*
 * A sub-operation's events passed on as another stage's: subscribe events_relay_fn with a
 * struct events_relay on a private bus given to an operation that reports as its own stage
 * (deploy_run() as "migrate", verify_run() as "verify") when it runs inside another one (staging,
 * rollback). Each event goes to `to` under `stage` with "phase" added to its data, except the
 * stage lifecycle records (stage_started/done/failed/skipped/waived/result, run_*): replayed,
 * those would mark the run's own stage of that name done or failed. `also` (may be NULL) sees
 * every event first, unchanged.
 */
struct events_relay {
	struct events *to;
	const char    *stage;
	const char    *phase;
	events_fn      also;
	void          *also_userdata;
};
void events_relay_fn(const struct rb_event *ev, void *userdata);
/* The journal name of a type ("stage_done"); "unknown" for a value out of range. */
const char *events_type_name(enum rb_event_type t);
/* "info", "warn" or "error". */
const char *events_level_name(enum rb_log_level l);
/* The level for a name; false when unknown. */
bool events_level_from_name(const char *name, enum rb_log_level *out);
/* The type for a journal name; false when unknown. */
bool events_type_from_name(const char *name, enum rb_event_type *out);

#endif
