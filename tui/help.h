/* help.h: the help screen and the F-key bar, both generated from COMMAND_INFO (commands.h). */
#ifndef PGRUNBOOK_TUI_HELP_H
#define PGRUNBOOK_TUI_HELP_H

#include <curses.h>
#include <stdbool.h>

#include "tui/app.h"
#include "tui/commands.h"

/*
 * The help screen: every command with its keys and help text, scrollable. Push it with
 * tui_push(app, &tui_help_screen, NULL); the loop does so itself for an unhandled CMD_HELP.
 * Esc, q, F1, ? and Enter close it.
 */
extern const struct screen_ops tui_help_screen;

/*
 * Draws the F-key bar ("1Help 2Run ... 10Quit", mc style: the number, then the label in the
 * key-bar role) in row y of win from column x, w columns wide; entries that do not fit are left
 * out. enabled (may be NULL) tells which commands apply now; the others are drawn muted.
 */
void tui_keybar_draw(WINDOW *win, int y, int x, int w, bool (*enabled)(enum command, void *ud), void *ud);

#endif
