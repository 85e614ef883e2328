/* theme.h: colour roles and the theme that maps them to curses attributes (colour or mono). */
#ifndef PGRUNBOOK_TUI_THEME_H
#define PGRUNBOOK_TUI_THEME_H

#include <curses.h>
#include <stdbool.h>

/* What a piece of text means; the theme decides how it looks. */
enum tui_role {
	TUI_ROLE_NORMAL,
	TUI_ROLE_CURSOR,   /* the highlighted row or item */
	TUI_ROLE_OK,
	TUI_ROLE_WARN,
	TUI_ROLE_DANGER,
	TUI_ROLE_PROD,     /* the production environment's name, wherever it appears */
	TUI_ROLE_MUTED,
	TUI_ROLE_HEADER,   /* title lines and table headers */
	TUI_ROLE_KEYBAR,   /* the F-key bar */
	TUI_ROLE__COUNT
};

/*
 * Decides between colour and mono: mono when NO_COLOR is set to any non-empty value
 * (https://no-color.org) or the terminal has no colours. no_color is getenv("NO_COLOR").
 */
bool tui_theme_want_color(const char *no_color, bool has_colors);
/*
 * Sets up the theme for the running terminal (after initscr/newterm): colour pairs when color is
 * true, attributes only otherwise. In mono every role stays distinguishable through
 * A_REVERSE, A_BOLD, A_UNDERLINE and A_DIM; the cursor is always reverse video.
 */
void tui_theme_init(bool color);
/* True after tui_theme_init(true). */
bool tui_theme_is_color(void);
/* The attributes of a role in the current theme (mono attributes before tui_theme_init). */
attr_t tui_attr(enum tui_role role);
/* The mono attributes of a role (no colour), whatever the current theme. */
attr_t tui_theme_mono_attr(enum tui_role role);
/* "normal", "cursor", ... ; "unknown" out of range. */
const char *tui_role_name(enum tui_role role);

#endif
