/* app.c: the loop (poll on the terminal and the queue's self-pipe), the screen stack and resize. */
#include "config.h"

#include <errno.h>
#include <locale.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "core/util.h"
#include "tui/app.h"
#include "tui/help.h"
#include "tui/theme.h"

struct tui_app {
	const struct tui_frame_ops *frame;
	void                       *userdata;
	struct tui_queue           *queue;
	int                         tick_ms;

	struct screen             **stack;
	int                         depth, cap;
	struct screen             **graveyard;   /* popped this frame, freed at its end */
	int                         ngrave, capgrave;

	bool                        running;
	bool                        done;
	int                         code;
	int                         signo;
	char                       *error;

	WINDOW                     *main;
	struct tui_rect             main_rect;
	bool                        too_small;
	bool                        dirty;
	bool                        repaint;
	bool                        cursor_req;
	int                         cursor_y, cursor_x;
	int                         cursor_vis;     /* what curs_set() was last given */
};

/* The terminal is one per process: these belong to whichever app is running. */
static SCREEN *term_screen;
static bool term_active;
static volatile sig_atomic_t sig_winch;
static volatile sig_atomic_t sig_stop;
static volatile sig_atomic_t wake_fd = -1;

static const int handled_signals[] = { SIGWINCH, SIGTERM, SIGHUP, SIGINT };
/* What the process had before newterm() (which installs handlers of its own for some of these). */
static const int saved_signals[] = { SIGWINCH, SIGTERM, SIGHUP, SIGINT, SIGTSTP };
static struct sigaction saved_actions[RB_ARRAY_LEN(saved_signals)];

static void
on_signal(int signo)
{
	int saved = errno;
	if (signo == SIGWINCH)
		sig_winch = 1;
	else if (sig_stop == 0)
		sig_stop = signo;
	if (wake_fd >= 0) {
		ssize_t r = write(wake_fd, "s", 1);
		(void)r;
	}
	errno = saved;
}

struct tui_app *
tui_app_new(const struct tui_frame_ops *frame, void *userdata, tui_item_free_fn item_free)
{
	struct tui_queue *q = tui_queue_new(item_free);
	if (q == NULL)
		return NULL;
	struct tui_app *app = xcalloc(1, sizeof *app);
	static const struct tui_frame_ops no_frame;
	app->frame = frame ? frame : &no_frame;
	app->userdata = userdata;
	app->queue = q;
	app->tick_ms = 250;
	app->cursor_vis = -1;
	return app;
}

static void
bury(struct tui_app *app)
{
	for (int i = 0; i < app->ngrave; i++) {
		free(app->graveyard[i]->priv);
		free(app->graveyard[i]);
	}
	app->ngrave = 0;
}

void
tui_app_free(struct tui_app *app)
{
	if (app == NULL)
		return;
	while (app->depth > 0)
		tui_pop(app);
	bury(app);
	free(app->stack);
	free(app->graveyard);
	tui_queue_free(app->queue);
	free(app->error);
	free(app);
}

void *
tui_app_userdata(struct tui_app *app)
{
	return app->userdata;
}

struct tui_queue *
tui_app_queue(struct tui_app *app)
{
	return app->queue;
}

void
tui_app_set_tick(struct tui_app *app, int ms)
{
	app->tick_ms = ms < 0 ? 0 : ms;
}

void
tui_app_quit(struct tui_app *app, int code)
{
	if (!app->done) {
		app->done = true;
		app->code = code;
	}
}

void
tui_app_fail(struct tui_app *app, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *msg = xvasprintf(fmt, ap);
	va_end(ap);
	if (app->error == NULL)
		app->error = msg;
	else
		free(msg);
	app->done = true;
	app->code = TUI_RUN_ERROR;
}

const char *
tui_app_error(const struct tui_app *app)
{
	return app->error;
}

int
tui_app_signal(const struct tui_app *app)
{
	return app->signo;
}

void
tui_terminal_restore(void)
{
	if (term_active) {
		curs_set(1);
		endwin();
		term_active = false;
	}
}

struct screen *
tui_top(struct tui_app *app)
{
	return app->depth > 0 ? app->stack[app->depth - 1] : NULL;
}

int
tui_depth(const struct tui_app *app)
{
	return app->depth;
}

struct tui_rect
tui_app_main_rect(const struct tui_app *app)
{
	return app->main_rect;
}

bool
tui_app_too_small(const struct tui_app *app)
{
	return app->too_small;
}

void
tui_screen_set_overlay(struct screen *s, bool overlay)
{
	s->overlay = overlay;
}

void
tui_screen_show_cursor(struct screen *s, int y, int x)
{
	if (s != tui_top(s->app))
		return;  /* under a dialog the cursor belongs to the dialog */
	s->app->cursor_req = true;
	s->app->cursor_y = y;
	s->app->cursor_x = x;
}

void
tui_app_repaint(struct tui_app *app)
{
	app->repaint = true;
	app->dirty = true;
}

char *
tui_too_small_text(int w, int h, char *buf, size_t size)
{
	snprintf(buf, size, "terminal too small (%dx%d, need %dx%d)", w, h, TUI_MIN_W, TUI_MIN_H);
	return buf;
}

struct screen *
tui_push(struct tui_app *app, const struct screen_ops *ops, void *arg)
{
	struct screen *s = xcalloc(1, sizeof *s);
	s->ops = ops;
	s->app = app;
	s->priv = xcalloc(1, ops->priv_size ? ops->priv_size : 1);
	s->win = app->main;
	if (app->depth == app->cap) {
		app->cap = app->cap ? app->cap * 2 : 8;
		app->stack = xrealloc(app->stack, (size_t)app->cap * sizeof *app->stack);
	}
	app->stack[app->depth++] = s;
	app->dirty = true;
	if (ops->enter && ops->enter(s, arg) != 0) {
		/* Take it out wherever it is now (enter may have pushed others above it). */
		for (int i = 0; i < app->depth; i++) {
			if (app->stack[i] == s) {
				memmove(&app->stack[i], &app->stack[i + 1],
				        (size_t)(app->depth - i - 1) * sizeof *app->stack);
				app->depth--;
				break;
			}
		}
		free(s->priv);
		free(s);
		return NULL;
	}
	if (app->running && !app->too_small && app->main && ops->resize)
		ops->resize(s, app->main_rect.h, app->main_rect.w);
	return s;
}

void
tui_pop(struct tui_app *app)
{
	if (app->depth == 0)
		return;
	struct screen *s = app->stack[--app->depth];
	if (s->ops->leave)
		s->ops->leave(s);
	if (app->ngrave == app->capgrave) {
		app->capgrave = app->capgrave ? app->capgrave * 2 : 8;
		app->graveyard = xrealloc(app->graveyard, (size_t)app->capgrave * sizeof *app->graveyard);
	}
	app->graveyard[app->ngrave++] = s;
	app->dirty = true;
}

/* Lays out the chrome and the main window for the current terminal size. */
static void
layout(struct tui_app *app)
{
	app->too_small = LINES < TUI_MIN_H || COLS < TUI_MIN_W;
	werase(stdscr);
	app->dirty = true;
	if (app->too_small)
		return;
	struct tui_rect r = { 0, 0, LINES, COLS };
	if (app->frame->layout)
		app->frame->layout(app, LINES, COLS, &r);
	if (r.y < 0 || r.y >= LINES)
		r.y = 0;
	if (r.x < 0 || r.x >= COLS)
		r.x = 0;
	if (r.h < 1 || r.y + r.h > LINES)
		r.h = LINES - r.y;
	if (r.w < 1 || r.x + r.w > COLS)
		r.w = COLS - r.x;
	if (app->main)
		delwin(app->main);
	app->main = newwin(r.h, r.w, r.y, r.x);
	if (app->main == NULL) {
		tui_app_fail(app, "cannot create a %dx%d window", r.w, r.h);
		return;
	}
	app->main_rect = r;
	for (int i = 0; i < app->depth; i++)
		app->stack[i]->win = app->main;
	for (int i = 0; i < app->depth; i++) {
		struct screen *s = app->stack[i];
		if (s->ops->resize)
			s->ops->resize(s, r.h, r.w);
	}
}

static void
resize_terminal(struct tui_app *app)
{
	struct winsize ws;
	if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_row > 0 && ws.ws_col > 0) {
		resizeterm(ws.ws_row, ws.ws_col);
	} else {
		endwin();
		refresh();
	}
	app->repaint = true;
	layout(app);
}

static void
set_cursor(struct tui_app *app, int vis)
{
	if (app->cursor_vis != vis) {
		curs_set(vis);
		app->cursor_vis = vis;
	}
}

static void
render(struct tui_app *app)
{
	if (app->repaint) {
		clearok(curscr, TRUE);
		app->repaint = false;
	}
	if (app->too_small) {
		char msg[96];
		tui_too_small_text(COLS, LINES, msg, sizeof msg);
		werase(stdscr);
		int len = (int)strlen(msg);
		int y = LINES / 2, x = COLS > len ? (COLS - len) / 2 : 0;
		wattrset(stdscr, tui_attr(TUI_ROLE_WARN));
		mvwaddnstr(stdscr, y, x, msg, COLS);
		wattrset(stdscr, A_NORMAL);
		set_cursor(app, 0);
		wnoutrefresh(stdscr);
		doupdate();
		return;
	}
	/* stdscr is the blank background; nothing else draws on it. */
	wnoutrefresh(stdscr);
	if (app->frame->draw)
		app->frame->draw(app);
	app->cursor_req = false;
	werase(app->main);
	int start = app->depth - 1;
	while (start > 0 && app->stack[start]->overlay)
		start--;
	for (int i = start < 0 ? 0 : start; i < app->depth; i++) {
		struct screen *s = app->stack[i];
		if (s->ops->draw)
			s->ops->draw(s);
	}
	wattrset(app->main, A_NORMAL);
	if (app->cursor_req) {
		wmove(app->main, app->cursor_y, app->cursor_x);
		set_cursor(app, 1);
	} else {
		set_cursor(app, 0);
	}
	wnoutrefresh(app->main);
	doupdate();
}

static void
default_key(struct tui_app *app, enum command cmd)
{
	struct screen *top = tui_top(app);
	switch (cmd) {
	case CMD_HELP:
		if (top == NULL || top->ops != &tui_help_screen)
			tui_push(app, &tui_help_screen, NULL);
		break;
	case CMD_QUIT:
		tui_app_quit(app, 0);
		break;
	case CMD_CANCEL:
		if (app->depth > 1)
			tui_pop(app);
		break;
	case CMD_REFRESH:
		tui_app_repaint(app);
		break;
	default:
		break;
	}
}

static void
dispatch_key(struct tui_app *app, int raw)
{
	enum command cmd = command_for_key(raw);
	struct screen *top = tui_top(app);
	/*
	 * Too small, nothing is visible: a key could answer a prompt nobody can read. Only QUIT
	 * goes through, and only when no dialog or prompt is open.
	 */
	if (app->too_small && !(cmd == CMD_QUIT && top && !top->overlay))
		return;
	enum key_result r = KEY_RESULT_PASS;
	if (top && top->ops->key)
		r = top->ops->key(top, cmd, raw);
	if (r == KEY_RESULT_PASS && app->frame->key)
		r = app->frame->key(app, cmd, raw);
	if (r == KEY_RESULT_PASS)
		default_key(app, cmd);
	app->dirty = true;
}

static void
read_keys(struct tui_app *app)
{
	wint_t wc;
	int r;
	while (!app->done && !sig_stop && (r = wget_wch(stdscr, &wc)) != ERR) {
		if (r == KEY_CODE_YES && wc == KEY_RESIZE) {
			sig_winch = 1;
			continue;
		}
		if (r == KEY_CODE_YES && wc == KEY_MOUSE)
			continue;
		/* A resize is handled at the top of the loop: keys typed before it keep the old size. */
		dispatch_key(app, tui_key_normalize((int)wc, r == KEY_CODE_YES));
		bury(app);
	}
}

static bool
on_stack(const struct tui_app *app, const struct screen *s)
{
	for (int i = 0; i < app->depth; i++)
		if (app->stack[i] == s)
			return true;
	return false;
}

/*
 * Every screen on the stack sees each item, top first: a stage's worker may finish while the
 * help screen or a dialog is above it. A screen popped meanwhile (its leave has run) is skipped.
 */
static void
deliver_to_stack(struct tui_app *app, void *item)
{
	int n = app->depth;
	if (n == 0)
		return;
	struct screen **snap = xmalloc((size_t)n * sizeof *snap);
	memcpy(snap, app->stack, (size_t)n * sizeof *snap);
	for (int i = n - 1; i >= 0; i--) {
		struct screen *s = snap[i];
		if (s->ops->event && on_stack(app, s))
			s->ops->event(s, item);
	}
	free(snap);
}

static void
deliver_items(struct tui_app *app)
{
	tui_item_free_fn item_free = tui_queue_item_free(app->queue);
	void *item;
	int n = 0;
	while (!app->done && (item = tui_queue_pop(app->queue)) != NULL) {
		if (app->frame->event)
			app->frame->event(app, item);
		deliver_to_stack(app, item);
		if (item_free)
			item_free(item);
		bury(app);
		app->dirty = true;
		if (++n >= 1000) {
			/* Let keys and drawing in between a flood of items. */
			tui_queue_wake(app->queue);
			break;
		}
	}
}

/*
 * Home and End arrive as different sequences depending on the terminal (tmux and screen send
 * "ESC [1~" and "ESC [4~", rxvt "ESC [7~" and "ESC [8~", xterm in normal mode "ESC [H" and
 * "ESC [F"); TERM's entry often lists only one pair. Teach curses the others it does not know.
 */
static void
define_extra_keys(void)
{
	static const struct {
		const char *seq;
		int         key;
	} extra[] = {
		{ "\033[1~", KEY_HOME }, { "\033[7~", KEY_HOME }, { "\033[H", KEY_HOME }, { "\033OH", KEY_HOME },
		{ "\033[4~", KEY_END },  { "\033[8~", KEY_END },  { "\033[F", KEY_END },  { "\033OF", KEY_END },
	};
	for (size_t i = 0; i < RB_ARRAY_LEN(extra); i++) {
		if (key_defined(extra[i].seq) == 0)
			define_key(extra[i].seq, extra[i].key);
	}
}

static void
save_signals(void)
{
	for (size_t i = 0; i < RB_ARRAY_LEN(saved_signals); i++)
		sigaction(saved_signals[i], NULL, &saved_actions[i]);
}

static void
install_signals(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;  /* a resize must not fail a journal write on this thread */
	sig_winch = 0;
	sig_stop = 0;
	for (size_t i = 0; i < RB_ARRAY_LEN(handled_signals); i++)
		sigaction(handled_signals[i], &sa, NULL);
}

/* Back to what the process had before tui_app_run(). */
static void
restore_signals(void)
{
	wake_fd = -1;
	for (size_t i = 0; i < RB_ARRAY_LEN(saved_signals); i++)
		sigaction(saved_signals[i], &saved_actions[i], NULL);
}

static int
run_loop(struct tui_app *app)
{
	struct pollfd fds[2];
	long long next_tick = time_monotonic_ms() + app->tick_ms;
	while (!app->done) {
		if (sig_stop)
			break;
		if (sig_winch) {
			sig_winch = 0;
			resize_terminal(app);
		}
		bury(app);
		if (app->depth == 0) {
			tui_app_quit(app, 0);
			break;
		}
		if (app->dirty && !app->done) {
			render(app);
			app->dirty = false;
		}
		fds[0].fd = STDIN_FILENO;
		fds[0].events = POLLIN;
		fds[0].revents = 0;
		fds[1].fd = tui_queue_fd(app->queue);
		fds[1].events = POLLIN;
		fds[1].revents = 0;
		int timeout = -1;
		if (app->tick_ms > 0) {
			long long left = next_tick - time_monotonic_ms();
			timeout = left < 0 ? 0 : (int)left;
		}
		int n = poll(fds, 2, timeout);
		if (n < 0 && errno != EINTR) {
			tui_app_fail(app, "poll failed: %s", strerror(errno));
			break;
		}
		if (n > 0 && (fds[1].revents & POLLIN))
			tui_queue_drain_fd(app->queue);
		if (sig_stop)
			break;
		deliver_items(app);
		if (n > 0 && (fds[0].revents & (POLLHUP | POLLERR | POLLNVAL))) {
			/* The terminal went away (Linux reports POLLIN with POLLHUP): like SIGHUP. */
			sig_stop = SIGHUP;
			break;
		}
		if (n > 0 && (fds[0].revents & POLLIN))
			read_keys(app);
		if (app->tick_ms > 0 && time_monotonic_ms() >= next_tick) {
			if (app->frame->tick && !app->done)
				app->frame->tick(app);
			app->dirty = true;
			next_tick = time_monotonic_ms() + app->tick_ms;
		}
	}
	if (sig_stop && !app->done) {
		app->signo = sig_stop;
		/*
		 * Give the terminal back and put the old handlers back before the app's hook: if
		 * cancelling hangs (a dead network), a second signal ends the process with a sane tty.
		 */
		restore_signals();
		tui_terminal_restore();
		if (app->frame->signal)
			app->frame->signal(app, app->signo);
		app->code = TUI_RUN_SIGNAL;
		app->done = true;
	}
	return app->code;
}

int
tui_app_run(struct tui_app *app, const struct screen_ops *first, void *arg)
{
	if (term_active) {
		tui_app_fail(app, "the terminal is already in use by another app");
		return TUI_RUN_ERROR;
	}
	setlocale(LC_CTYPE, "");
	if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO)) {
		tui_app_fail(app, "the interactive wizard needs a terminal");
		return TUI_RUN_ERROR;
	}
	const char *term = getenv("TERM");
	save_signals();
	term_screen = newterm(NULL, stdout, stdin);
	if (term_screen == NULL) {
		restore_signals();
		tui_app_fail(app, "cannot use the terminal type \"%s\"", term ? term : "");
		return TUI_RUN_ERROR;
	}
	set_term(term_screen);
	term_active = true;
	raw();
	noecho();
	nonl();
	keypad(stdscr, TRUE);
	nodelay(stdscr, TRUE);
	set_escdelay(25);
	define_extra_keys();
	app->cursor_vis = -1;
	set_cursor(app, 0);
	tui_theme_init(tui_theme_want_color(getenv("NO_COLOR"), has_colors()));

	/* An out-of-memory abort gives the terminal back first. */
	util_set_fatal_hook(tui_terminal_restore);
	/* The queue's self-pipe doubles as the signal handler's wake-up. */
	wake_fd = tui_queue_wake_fd(app->queue);
	install_signals();

	app->running = true;
	app->done = false;
	app->code = 0;
	app->signo = 0;
	layout(app);
	if (first && !app->done && tui_push(app, first, arg) == NULL && app->depth == 0)
		tui_app_fail(app, "the first screen (%s) could not start", first->name);
	int code = app->done ? app->code : run_loop(app);

	while (app->depth > 0)
		tui_pop(app);
	bury(app);
	if (app->frame->leave)
		app->frame->leave(app);
	if (app->main) {
		delwin(app->main);
		app->main = NULL;
	}
	app->running = false;
	tui_terminal_restore();
	delscreen(term_screen);
	term_screen = NULL;
	restore_signals();
	return code;
}
