/* theme.c: maps colour roles to curses attributes; honours NO_COLOR. */
#include "config.h"

#include "tui/theme.h"

struct role_style {
	const char *name;
	short       fg, bg;     /* -1: the terminal's default */
	attr_t      color_attr; /* added to the colour pair */
	attr_t      mono_attr;
};

static const struct role_style styles[TUI_ROLE__COUNT] = {
	[TUI_ROLE_NORMAL] = { "normal", -1, -1, A_NORMAL, A_NORMAL },
	[TUI_ROLE_CURSOR] = { "cursor", COLOR_BLACK, COLOR_CYAN, A_NORMAL, A_REVERSE },
	[TUI_ROLE_OK]     = { "ok", COLOR_GREEN, -1, A_NORMAL, A_NORMAL },
	[TUI_ROLE_WARN]   = { "warn", COLOR_YELLOW, -1, A_BOLD, A_BOLD },
	[TUI_ROLE_DANGER] = { "danger", COLOR_RED, -1, A_BOLD, A_BOLD | A_UNDERLINE },
	[TUI_ROLE_PROD]   = { "prod", COLOR_WHITE, COLOR_RED, A_BOLD, A_REVERSE | A_BOLD | A_UNDERLINE },
	[TUI_ROLE_MUTED]  = { "muted", COLOR_BLUE, -1, A_NORMAL, A_DIM },
	[TUI_ROLE_HEADER] = { "header", COLOR_WHITE, COLOR_BLUE, A_BOLD, A_UNDERLINE },
	[TUI_ROLE_KEYBAR] = { "keybar", COLOR_BLACK, COLOR_WHITE, A_NORMAL, A_REVERSE },
};

static bool theme_color;
static attr_t theme_attrs[TUI_ROLE__COUNT];
static bool theme_ready;

bool
tui_theme_want_color(const char *no_color, bool has_colors)
{
	if (no_color != NULL && no_color[0] != '\0')
		return false;
	return has_colors;
}

void
tui_theme_init(bool color)
{
	theme_color = false;
	if (color && start_color() == OK) {
		bool dflt = use_default_colors() == OK;
		theme_color = true;
		for (int r = 0; r < TUI_ROLE__COUNT; r++) {
			short fg = styles[r].fg, bg = styles[r].bg;
			if (!dflt) {
				if (fg < 0)
					fg = COLOR_WHITE;
				if (bg < 0)
					bg = COLOR_BLACK;
			}
			if (init_pair((short)(r + 1), fg, bg) != OK) {
				theme_color = false;
				break;
			}
			theme_attrs[r] = COLOR_PAIR(r + 1) | styles[r].color_attr;
		}
	}
	if (!theme_color) {
		for (int r = 0; r < TUI_ROLE__COUNT; r++)
			theme_attrs[r] = styles[r].mono_attr;
	}
	theme_ready = true;
}

bool
tui_theme_is_color(void)
{
	return theme_color;
}

attr_t
tui_attr(enum tui_role role)
{
	if ((unsigned)role >= TUI_ROLE__COUNT)
		role = TUI_ROLE_NORMAL;
	return theme_ready ? theme_attrs[role] : styles[role].mono_attr;
}

attr_t
tui_theme_mono_attr(enum tui_role role)
{
	if ((unsigned)role >= TUI_ROLE__COUNT)
		role = TUI_ROLE_NORMAL;
	return styles[role].mono_attr;
}

const char *
tui_role_name(enum tui_role role)
{
	if ((unsigned)role >= TUI_ROLE__COUNT)
		return "unknown";
	return styles[role].name;
}
