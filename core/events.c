/* events.c: the event bus: an ordered subscriber list, delivery serialised by a recursive mutex. */
#include "config.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "events.h"
#include "util.h"

struct subscriber {
	events_fn  fn;
	void      *userdata;
	bool       dead;   /* unsubscribed during a delivery; removed once delivery ends */
};

struct events {
	pthread_mutex_t    mu;      /* recursive: a subscriber may emit */
	struct subscriber *subs;
	size_t             nsubs;
	size_t             cap;
	int                depth;   /* nested deliveries under way (holding mu) */
	bool               any_dead;   /* some entry is dead */
};

#define EVENT_NAME(id, name) name,
static const char *const event_names[] = { EVENT_TYPES(EVENT_NAME) };
#undef EVENT_NAME

static const char *const level_names[] = { "info", "warn", "error" };

struct events *
events_new(void)
{
	struct events *bus = xcalloc(1, sizeof(*bus));
	pthread_mutexattr_t attr;
	pthread_mutexattr_init(&attr);
	pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
	pthread_mutex_init(&bus->mu, &attr);
	pthread_mutexattr_destroy(&attr);
	return bus;
}

void
events_free(struct events *bus)
{
	if (bus == NULL)
		return;
	pthread_mutex_destroy(&bus->mu);
	free(bus->subs);
	free(bus);
}

void
events_subscribe(struct events *bus, events_fn fn, void *userdata)
{
	pthread_mutex_lock(&bus->mu);
	if (bus->nsubs == bus->cap) {
		bus->cap = bus->cap ? bus->cap * 2 : 4;
		bus->subs = xrealloc(bus->subs, bus->cap * sizeof(*bus->subs));
	}
	bus->subs[bus->nsubs].fn = fn;
	bus->subs[bus->nsubs].userdata = userdata;
	bus->subs[bus->nsubs].dead = false;
	bus->nsubs++;
	pthread_mutex_unlock(&bus->mu);
}

bool
events_unsubscribe(struct events *bus, events_fn fn, void *userdata)
{
	bool found = false;
	pthread_mutex_lock(&bus->mu);
	for (size_t i = 0; i < bus->nsubs; i++) {
		struct subscriber *s = &bus->subs[i];
		if (s->dead || s->fn != fn || s->userdata != userdata)
			continue;
		if (bus->depth > 0) {
			/* A delivery is walking the array: only mark it, compact afterwards. */
			s->dead = true;
			bus->any_dead = true;
		} else {
			memmove(s, s + 1, (bus->nsubs - i - 1) * sizeof(*bus->subs));
			bus->nsubs--;
		}
		found = true;
		break;
	}
	pthread_mutex_unlock(&bus->mu);
	return found;
}

void
events_emit(struct events *bus, const struct rb_event *ev)
{
	if (bus == NULL || ev == NULL)
		return;
	pthread_mutex_lock(&bus->mu);
	/*
	 * Index loop: a nested subscribe may move the array (realloc). Entries are never removed
	 * while depth > 0, only marked dead, so indices stay valid; subscribers added during this
	 * delivery sit past n and get the next event.
	 */
	size_t n = bus->nsubs;
	bus->depth++;
	for (size_t i = 0; i < n; i++) {
		struct subscriber s = bus->subs[i];
		if (!s.dead)
			s.fn(ev, s.userdata);
	}
	if (--bus->depth == 0 && bus->any_dead) {
		size_t k = 0;
		for (size_t i = 0; i < bus->nsubs; i++)
			if (!bus->subs[i].dead)
				bus->subs[k++] = bus->subs[i];
		bus->nsubs = k;
		bus->any_dead = false;
	}
	pthread_mutex_unlock(&bus->mu);
}

/* Emits an event with a message formatted from fmt/ap (no message when fmt is NULL). */
static void __attribute__((format(printf, 6, 0)))
emit_formatted(struct events *bus, enum rb_event_type type, enum rb_log_level level,
               const char *stage, json_t *data, const char *fmt, va_list ap)
{
	char *message = fmt ? xvasprintf(fmt, ap) : NULL;
	struct rb_event ev = {
		.type = type,
		.stage = stage,
		.message = message,
		.level = level,
		.data = data,
	};
	events_emit(bus, &ev);
	free(message);
}

void
events_emitf(struct events *bus, enum rb_event_type type, const char *stage, json_t *data,
             const char *fmt, ...)
{
	if (bus == NULL)
		return;
	va_list ap;
	va_start(ap, fmt);
	emit_formatted(bus, type, LOG_LEVEL_INFO, stage, data, fmt, ap);
	va_end(ap);
}

void
events_relay_fn(const struct rb_event *ev, void *userdata)
{
	struct events_relay *r = userdata;
	if (r->also)
		r->also(ev, r->also_userdata);
	switch (ev->type) {
	case EV_STAGE_STARTED: case EV_STAGE_DONE: case EV_STAGE_FAILED: case EV_STAGE_SKIPPED:
	case EV_STAGE_WAIVED: case EV_STAGE_RESULT: case EV_RUN_STARTED: case EV_RUN_FINISHED:
		return;
	default:
		break;
	}
	json_t *data = json_is_object(ev->data) ? json_copy(ev->data) : json_object();
	json_object_set_new(data, "phase", json_string(r->phase));
	struct rb_event out = { .type = ev->type, .stage = r->stage, .message = ev->message, .level = ev->level,
	                        .data = data };
	events_emit(r->to, &out);
	json_decref(data);
}

void
events_log(struct events *bus, enum rb_log_level level, const char *stage, const char *fmt, ...)
{
	if (bus == NULL)
		return;
	va_list ap;
	va_start(ap, fmt);
	emit_formatted(bus, EV_LOG, level, stage, NULL, fmt, ap);
	va_end(ap);
}

const char *
events_type_name(enum rb_event_type t)
{
	if ((int)t < 0 || t >= EV__COUNT)
		return "unknown";
	return event_names[t];
}

bool
events_type_from_name(const char *name, enum rb_event_type *out)
{
	for (int i = 0; i < EV__COUNT; i++) {
		if (strcmp(event_names[i], name) == 0) {
			*out = (enum rb_event_type)i;
			return true;
		}
	}
	return false;
}

const char *
events_level_name(enum rb_log_level l)
{
	if ((int)l < 0 || (size_t)l >= RB_ARRAY_LEN(level_names))
		return "info";
	return level_names[l];
}

bool
events_level_from_name(const char *name, enum rb_log_level *out)
{
	for (size_t i = 0; i < RB_ARRAY_LEN(level_names); i++) {
		if (strcmp(level_names[i], name) == 0) {
			*out = (enum rb_log_level)i;
			return true;
		}
	}
	return false;
}
