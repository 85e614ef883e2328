/* textview.h: a scrolling text/SQL view with a highlight role per line and a margin column. */
#ifndef PGRUNBOOK_TUI_TEXTVIEW_H
#define PGRUNBOOK_TUI_TEXTVIEW_H

#include <curses.h>
#include <stdbool.h>
#include <stddef.h>

#include "tui/app.h"
#include "tui/theme.h"

struct tui_textview;

/* A new empty view; free with tui_textview_free(). */
struct tui_textview *tui_textview_new(void);
void tui_textview_free(struct tui_textview *tv);
/*
 * Replaces the text (copied): split at '\n' (a trailing '\n' adds no empty line, "\r\n" counts as
 * one), tabs expanded to 8 columns. Roles and margins are reset; the view scrolls to the top.
 */
void tui_textview_set_text(struct tui_textview *tv, const char *text);
/* Appends one line (copied, no '\n' expected) with a role. */
void tui_textview_add_line(struct tui_textview *tv, const char *line, enum tui_role role);
size_t tui_textview_count(const struct tui_textview *tv);
/* The text of a line (borrowed), NULL when out of range. */
const char *tui_textview_line(const struct tui_textview *tv, size_t line);
/* The role of a whole line (for example TUI_ROLE_DANGER for a dangerous statement). */
void tui_textview_set_role(struct tui_textview *tv, size_t line, enum tui_role role);
/*
 * The margin: a column of `width` cells left of the text (0 hides it), and per line a short text
 * (copied; for example a lint class "risky") with its own role.
 */
void tui_textview_set_margin_width(struct tui_textview *tv, int width);
void tui_textview_set_margin(struct tui_textview *tv, size_t line, const char *text, enum tui_role role);
/* Scrolls so that line is visible, a few lines below the top when possible. */
void tui_textview_show(struct tui_textview *tv, size_t line);
/* The first visible line. */
size_t tui_textview_top(const struct tui_textview *tv);
/* UP/DOWN/PAGE_UP/PAGE_DOWN/HOME/END/LEFT/RIGHT scroll; true when cmd was one of them. */
bool tui_textview_command(struct tui_textview *tv, enum command cmd);
/* Draws the visible part into rect r of win (the height also sets the page size). */
void tui_textview_draw(struct tui_textview *tv, WINDOW *win, struct tui_rect r);

#endif
