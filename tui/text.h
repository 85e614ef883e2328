/* text.h: UTF-8 text helpers for drawing: display width, clipped and scrolled output, editing. */
#ifndef PGRUNBOOK_TUI_TEXT_H
#define PGRUNBOOK_TUI_TEXT_H

#include <curses.h>
#include <stddef.h>

/*
 * Decodes the UTF-8 character at s (at most n bytes). Returns its length (at least 1 when n > 0)
 * and the code point in *cp; an invalid byte decodes as itself with length 1 and *cp = -1.
 */
size_t tui_text_decode(const char *s, size_t n, int *cp);
/* Encodes a code point as UTF-8 into out (NUL-terminated); returns the number of bytes (1-4). */
size_t tui_text_encode(int cp, char out[5]);
/* Display columns of one code point: 0 for combining marks, 2 for wide characters, else 1. */
int tui_text_cp_width(int cp);
/* Display columns of a UTF-8 string (an invalid byte or control character counts as one). */
int tui_text_width(const char *s);
/* The byte offset of the start of the character before offset len in s (0 when len is 0). */
size_t tui_text_prev(const char *s, size_t len);
/*
 * Draws s at (y, x) of win with attr, leaving out its first `skip` display columns and writing at
 * most `width` columns, then pads with spaces to exactly `width` columns when pad is true.
 * Control characters and invalid bytes show as '?'; a wide character cut by either edge shows as
 * spaces. Returns the columns written before padding.
 */
int tui_text_put(WINDOW *win, int y, int x, const char *s, int skip, int width, attr_t attr, bool pad);
struct strlist;
/*
 * Splits s into lines of at most `width` display columns: at '\n', then at spaces; a word longer
 * than width is cut. Appends the lines (copies) to out.
 */
void tui_text_wrap(const char *s, int width, struct strlist *out);
/*
 * Line drawing that survives every terminal and capture: Unicode box characters in a UTF-8 locale
 * (ncurses would send xterm's alternate charset, which tmux capture-pane shows as "qqq"), the
 * ACS characters otherwise. tui_text_box draws the border of the h x w box at (y, x).
 */
void tui_text_hline(WINDOW *win, int y, int x, int n, attr_t attr);
void tui_text_vline(WINDOW *win, int y, int x, int n, attr_t attr);
void tui_text_box(WINDOW *win, int y, int x, int h, int w, attr_t attr);
/* Writes `width` spaces with attr at (y, x). */
void tui_text_fill(WINDOW *win, int y, int x, int width, attr_t attr);

#endif
