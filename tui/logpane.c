/* logpane.c: the log pane's ring buffer and drawing. */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "tui/logpane.h"
#include "tui/text.h"
#include "tui/theme.h"

struct log_line {
	char              *text;
	time_t             when;
	enum tui_log_level level;
};

struct tui_log {
	struct log_line *ring;
	size_t           cap;
	size_t           start;   /* index of the oldest line */
	size_t           n;
};

struct tui_log *
tui_log_new(size_t capacity)
{
	struct tui_log *l = xcalloc(1, sizeof *l);
	l->cap = capacity ? capacity : 1;
	l->ring = xcalloc(l->cap, sizeof *l->ring);
	return l;
}

void
tui_log_free(struct tui_log *l)
{
	if (l == NULL)
		return;
	for (size_t i = 0; i < l->cap; i++)
		free(l->ring[i].text);
	free(l->ring);
	free(l);
}

static void
push(struct tui_log *l, enum tui_log_level level, time_t when, const char *text, size_t len)
{
	struct log_line *slot;
	if (l->n < l->cap) {
		slot = &l->ring[(l->start + l->n) % l->cap];
		l->n++;
	} else {
		slot = &l->ring[l->start];
		l->start = (l->start + 1) % l->cap;
		free(slot->text);
	}
	slot->text = xstrndup(text, len);
	slot->when = when;
	slot->level = level;
}

void
tui_log_add_at(struct tui_log *l, enum tui_log_level level, time_t when, const char *text)
{
	const char *p = text ? text : "";
	do {
		size_t n = strcspn(p, "\n");
		push(l, level, when, p, n);
		p += n;
	} while (*p++ == '\n' && *p != '\0');
}

void
tui_log_add(struct tui_log *l, enum tui_log_level level, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *s = xvasprintf(fmt, ap);
	va_end(ap);
	tui_log_add_at(l, level, time(NULL), s);
	free(s);
}

size_t
tui_log_count(const struct tui_log *l)
{
	return l->n;
}

const char *
tui_log_text(const struct tui_log *l, size_t i)
{
	return i < l->n ? l->ring[(l->start + i) % l->cap].text : NULL;
}

enum tui_log_level
tui_log_level_of(const struct tui_log *l, size_t i)
{
	return i < l->n ? l->ring[(l->start + i) % l->cap].level : TUI_LOG_INFO;
}

static enum tui_role
level_role(enum tui_log_level level)
{
	switch (level) {
	case TUI_LOG_DEBUG:
		return TUI_ROLE_MUTED;
	case TUI_LOG_OK:
		return TUI_ROLE_OK;
	case TUI_LOG_WARN:
		return TUI_ROLE_WARN;
	case TUI_LOG_ERROR:
		return TUI_ROLE_DANGER;
	case TUI_LOG_INFO:
	default:
		return TUI_ROLE_NORMAL;
	}
}

void
tui_log_draw(const struct tui_log *l, WINDOW *win, struct tui_rect r)
{
	size_t shown = l->n < (size_t)(r.h > 0 ? r.h : 0) ? l->n : (size_t)r.h;
	int blank = r.h - (int)shown;
	for (int y = 0; y < blank; y++)
		tui_text_fill(win, r.y + y, r.x, r.w, tui_attr(TUI_ROLE_NORMAL));
	for (size_t k = 0; k < shown; k++) {
		const struct log_line *ln = &l->ring[(l->start + l->n - shown + k) % l->cap];
		struct tm tm;
		char stamp[16];
		localtime_r(&ln->when, &tm);
		strftime(stamp, sizeof stamp, "%H:%M:%S ", &tm);
		int y = r.y + blank + (int)k;
		int sw = (int)strlen(stamp) < r.w ? (int)strlen(stamp) : r.w;
		tui_text_put(win, y, r.x, stamp, 0, sw, tui_attr(TUI_ROLE_MUTED), false);
		tui_text_put(win, y, r.x + sw, ln->text, 0, r.w - sw, tui_attr(level_role(ln->level)), true);
	}
}
