/* dialog.h: modal dialogs drawn over the screen below: a message box and a yes/no question. */
#ifndef PGRUNBOOK_TUI_DIALOG_H
#define PGRUNBOOK_TUI_DIALOG_H

#include <curses.h>
#include <stdbool.h>

#include "tui/app.h"
#include "tui/theme.h"

/*
 * Pushes a message box (title and text copied; text wraps, '\n' breaks lines) drawn with a
 * border in role. Enter, Esc, Space or q closes it; then done(ud) runs (done may be NULL).
 * Returns the dialog's screen.
 */
struct screen *tui_message(struct tui_app *app, const char *title, const char *text, enum tui_role role,
                           void (*done)(void *ud), void *ud);
/*
 * Pushes a yes/no question without a default: y answers yes; n, Esc and Ctrl-C answer no; Enter
 * and every other key do nothing but remind that y or n is needed. done(ud, yes) runs after the
 * dialog closed (done may be NULL). Returns the dialog's screen.
 */
struct screen *tui_ask(struct tui_app *app, const char *title, const char *question,
                       void (*done)(void *ud, bool yes), void *ud);
/* The answer a raw key gives to tui_ask(): 1 yes, 0 no, -1 none (the dialog stays). */
int tui_ask_answer(int raw);

/* A rectangle of h x w centred in win (clamped to it). */
struct tui_rect tui_dialog_center(WINDOW *win, int h, int w);
/* Clears rect r of win and draws a border in role with the title on its top edge. */
void tui_dialog_frame(WINDOW *win, struct tui_rect r, const char *title, enum tui_role role);

#endif
