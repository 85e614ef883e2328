/* logpane.h: the log pane: a ring buffer of lines, newest at the bottom, coloured by level. */
#ifndef PGRUNBOOK_TUI_LOGPANE_H
#define PGRUNBOOK_TUI_LOGPANE_H

#include <curses.h>
#include <stddef.h>
#include <time.h>

#include "tui/app.h"

enum tui_log_level {
	TUI_LOG_DEBUG,   /* muted */
	TUI_LOG_INFO,    /* normal */
	TUI_LOG_OK,      /* ok role */
	TUI_LOG_WARN,    /* warn role */
	TUI_LOG_ERROR,   /* danger role */
};

struct tui_log;

/* A new pane keeping the newest `capacity` lines (at least 1); free with tui_log_free(). */
struct tui_log *tui_log_new(size_t capacity);
void tui_log_free(struct tui_log *l);
/*
 * Appends a line stamped with the current time; a message with '\n' becomes several lines.
 * UI thread only: another thread posts an item to the app's queue and the UI logs it.
 */
void tui_log_add(struct tui_log *l, enum tui_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Same, with an explicit time (for lines replayed from a journal); text is copied. */
void tui_log_add_at(struct tui_log *l, enum tui_log_level level, time_t when, const char *text);
/* Lines kept (at most the capacity); index 0 is the oldest kept. */
size_t tui_log_count(const struct tui_log *l);
/* A kept line's text (borrowed until it drops out of the ring) and level; NULL/INFO out of range. */
const char *tui_log_text(const struct tui_log *l, size_t i);
enum tui_log_level tui_log_level_of(const struct tui_log *l, size_t i);
/* Draws the newest r.h lines into rect r of win, newest at the bottom, each "HH:MM:SS text". */
void tui_log_draw(const struct tui_log *l, WINDOW *win, struct tui_rect r);

#endif
