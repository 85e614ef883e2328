/* app.h: the TUI application: event loop, screen stack, frame (chrome), resize and signals. */
#ifndef PGRUNBOOK_TUI_APP_H
#define PGRUNBOOK_TUI_APP_H

#include <curses.h>
#include <stdbool.h>
#include <stddef.h>

#include "tui/commands.h"
#include "tui/queue.h"

/* The smallest terminal the app draws in; below it a "terminal too small" banner is shown. */
#define TUI_MIN_W 80
#define TUI_MIN_H 24

/* tui_app_run() results other than the code passed to tui_app_quit(). */
#define TUI_RUN_ERROR  (-1)   /* the terminal failed or tui_app_fail() was called */
#define TUI_RUN_SIGNAL (-2)   /* SIGTERM, SIGHUP or SIGINT stopped the loop; see tui_app_signal() */

struct tui_app;
struct screen;

struct tui_rect {
	int y, x, h, w;
};

enum key_result {
	KEY_RESULT_PASS,      /* not mine: the frame, then the toolkit's defaults get the key */
	KEY_RESULT_HANDLED,
};

/*
 * A screen is a const ops table (STYLE.md, tmux's window_mode); every slot may be NULL.
 * The manager calls:
 *   enter   once when pushed, with the push argument; priv is zeroed. Non-zero: the push fails
 *           (leave is not called).
 *   draw    each frame, into s->win (the main region), which the manager has erased. Screens do
 *           not call refresh, wrefresh or doupdate: the manager calls wnoutrefresh(s->win) and the
 *           single doupdate(). A screen with windows of its own wnoutrefresh()es them itself.
 *           Overlay screens (tui_screen_set_overlay) are drawn over the screens below them.
 *   key     for the top screen: cmd is the command bound to the key (CMD_NONE if unbound), raw
 *           the key itself (commands.h), for text input.
 *   event   for every screen on the stack, top first: an item taken from the app's queue (borrowed: the manager frees
 *           it after the frame and the screen have seen it). STYLE.md's draft passed a
 *           `const struct rb_event *`; the toolkit knows nothing of core, so the app defines the
 *           item type (for example a copy of an rb_event).
 *   resize  right after enter (while the loop runs) and for every screen on the stack when the
 *           main region changes size (h x w); not while the terminal is too small.
 *   leave   once when popped or when the app ends; free what enter allocated (not priv itself).
 */
struct screen_ops {
	const char *name;
	size_t      priv_size;
	int       (*enter)(struct screen *, void *arg);
	void      (*draw)(struct screen *);
	enum key_result (*key)(struct screen *, enum command, int raw);
	void      (*event)(struct screen *, void *item);
	void      (*resize)(struct screen *, int h, int w);
	void      (*leave)(struct screen *);
};

/* A screen on the stack. Screens read these fields; only the manager writes them. */
struct screen {
	const struct screen_ops *ops;
	struct tui_app          *app;
	void                    *priv;  /* ops->priv_size zeroed bytes, freed after leave */
	WINDOW                  *win;   /* the main region; changes on resize; NULL until the first
	                                   layout (before tui_app_run(), or while it starts too small) */
	bool                     overlay;
};

/*
 * The app's chrome around the top screen (header, sidebar, log pane, key bar). Every slot may be
 * NULL; with no frame at all, screens get the whole terminal.
 *   layout  places the chrome in an h x w terminal (at least TUI_MIN_H x TUI_MIN_W) and sets
 *           *main, the region screens draw in (preset to the whole terminal). The frame owns its
 *           windows: create or move them here.
 *   draw    each frame, before the screens: redraw the chrome completely (werase first) and
 *           wnoutrefresh() its windows, never doupdate().
 *   key     keys the top screen passed on.
 *   event   each queue item, before the top screen sees it.
 *   tick    every tick (tui_app_set_tick), for clocks and elapsed times; a redraw follows.
 *   signal  SIGTERM, SIGHUP or SIGINT arrived: cancel the running statement, journal it. Called
 *           from the loop (not the handler) after the terminal is restored and the previous
 *           signal handlers are back (a second signal ends the process); then the manager leaves
 *           every screen and returns TUI_RUN_SIGNAL. Draw nothing here.
 *   leave   once at the end of tui_app_run(), after the screens left: free the windows.
 */
struct tui_frame_ops {
	void (*layout)(struct tui_app *, int h, int w, struct tui_rect *main);
	void (*draw)(struct tui_app *);
	enum key_result (*key)(struct tui_app *, enum command, int raw);
	void (*event)(struct tui_app *, void *item);
	void (*tick)(struct tui_app *);
	void (*signal)(struct tui_app *, int signo);
	void (*leave)(struct tui_app *);
};

/*
 * A new app (no terminal yet). frame may be NULL; userdata is the app's own (tui_app_userdata).
 * item_free frees queue items (NULL when items need no freeing). Free with tui_app_free().
 * Returns NULL when the queue's pipe cannot be created.
 */
struct tui_app *tui_app_new(const struct tui_frame_ops *frame, void *userdata, tui_item_free_fn item_free);
/* Frees the app and its queue (items left in it too). Join every worker first. Accepts NULL. */
void tui_app_free(struct tui_app *app);
void *tui_app_userdata(struct tui_app *app);
/* The queue other threads post items to (tui_queue_post); the loop delivers them. */
struct tui_queue *tui_app_queue(struct tui_app *app);
/* Milliseconds between ticks (default 250; 0: no ticks). */
void tui_app_set_tick(struct tui_app *app, int ms);

/*
 * Takes the terminal (sets LC_CTYPE from the environment, newterm, raw mode so Ctrl-C is a key,
 * keypad, colours unless NO_COLOR), pushes `first` with arg and runs the loop until
 * tui_app_quit(), the stack becomes empty, tui_app_fail() or a signal. Always restores the
 * terminal before returning. Returns the code given to tui_app_quit() (0 when the stack
 * emptied), TUI_RUN_ERROR (see tui_app_error()) or TUI_RUN_SIGNAL (see tui_app_signal()).
 * Never exits the process.
 */
int tui_app_run(struct tui_app *app, const struct screen_ops *first, void *arg);
/* Ends the loop after the current frame; tui_app_run() returns code (>= 0). */
void tui_app_quit(struct tui_app *app, int code);
/*
 * The toolkit's die(): ends the loop with TUI_RUN_ERROR and keeps the message (tui_app_error())
 * for main() to print after the terminal is restored. Does not exit.
 */
void tui_app_fail(struct tui_app *app, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The message of tui_app_fail() or of a terminal failure; NULL when none. Borrowed. */
const char *tui_app_error(const struct tui_app *app);
/* The signal that ended the loop (0 when none). */
int tui_app_signal(const struct tui_app *app);
/* Restores the terminal (endwin) if the toolkit holds it; safe to call at any time, repeatedly. */
void tui_terminal_restore(void);

/*
 * Pushes a new screen on top: allocates priv, calls enter(s, arg). Returns the screen, or NULL
 * when enter failed. Callable from any slot, also before tui_app_run() (then s->win is NULL
 * until the loop starts and calls resize).
 */
struct screen *tui_push(struct tui_app *app, const struct screen_ops *ops, void *arg);
/*
 * Pops the top screen: calls its leave at once; its memory lives until the end of the current
 * frame, so a screen may pop itself from its own key or event slot and return.
 */
void tui_pop(struct tui_app *app);
/* The top screen (NULL when the stack is empty) and the stack depth. */
struct screen *tui_top(struct tui_app *app);
int tui_depth(const struct tui_app *app);
/* The region screens draw in, in terminal coordinates (the last layout's while too small). */
struct tui_rect tui_app_main_rect(const struct tui_app *app);
/* True while the terminal is below TUI_MIN_W x TUI_MIN_H. */
bool tui_app_too_small(const struct tui_app *app);

/* Marks the screen as an overlay (a dialog): the screens below it are drawn first. */
void tui_screen_set_overlay(struct screen *s, bool overlay);
/* During draw: show the terminal cursor at (y, x) of s->win (for text input) this frame. */
void tui_screen_show_cursor(struct screen *s, int y, int x);
/* Asks for a full repaint of the terminal on the next frame (Ctrl-L). */
void tui_app_repaint(struct tui_app *app);

/*
 * The "terminal too small" banner text for a terminal of w x h into buf:
 * "terminal too small (WxH, need 80x24)". Returns buf.
 */
char *tui_too_small_text(int w, int h, char *buf, size_t size);

#endif
