/* commands.h: the one list of commands with their keys, F-key labels and help (STYLE.md). */
#ifndef PGRUNBOOK_TUI_COMMANDS_H
#define PGRUNBOOK_TUI_COMMANDS_H

#include <curses.h>
#include <stdbool.h>
#include <stddef.h>

/*
 * _(ID, "default keys", "F-key bar label" or NULL, "help text")
 *
 * This list generates the command enum, the help screen (tui/help.c), the F-key bar and the key
 * table in man/pgrunbook.1 (tui/keytable.c; tests/tui/keytable.sh keeps the page in sync), so they
 * cannot drift apart. Keys are names separated by single spaces, as tui_key_parse() reads them;
 * a key belongs to at most one command (the first one listed wins). A command whose keys include
 * an F-key appears on the key bar under its label. Ctrl-C is never bound to QUIT: at a prompt it
 * means "no", which is CANCEL.
 */
#define COMMAND_INFO(_) \
	_(HELP,        "F1 ?",         "Help",     "Show this list of keys") \
	_(RUN_STAGE,   "F2 r",         "Run",      "Run the current stage") \
	_(SEARCH,      "F3 /",         "Search",   "Search the table (type text, Enter keeps the match, Esc goes back)") \
	_(CONFIRM,     "F4 c",         "Confirm",  "Confirm the highlighted dangerous step (asks for a typed phrase)") \
	_(REFRESH,     "F5 C-l",       "Refresh",  "Refresh the data shown and redraw the screen") \
	_(PREV_STAGE,  "F6 [",         "Prev",     "Go to the previous stage") \
	_(NEXT_STAGE,  "F7 ]",         "Next",     "Go to the next stage") \
	_(ROLLBACK,    "F8",           "Rollback", "Open guided rollback") \
	_(QUIT,        "F10 q",        "Quit",     "Quit (asks first while a stage runs or this run holds a freeze)") \
	_(UP,          "Up k",         NULL,       "Move up one line") \
	_(DOWN,        "Down j",       NULL,       "Move down one line") \
	_(LEFT,        "Left h",       NULL,       "Scroll left") \
	_(RIGHT,       "Right l",      NULL,       "Scroll right") \
	_(PAGE_UP,     "PgUp C-b",     NULL,       "Move up one page") \
	_(PAGE_DOWN,   "PgDn C-f",     NULL,       "Move down one page") \
	_(HOME,        "Home g",       NULL,       "Go to the first line") \
	_(END,         "End G",        NULL,       "Go to the last line") \
	_(SEARCH_NEXT, "n",            NULL,       "Find the next match of the last search (wraps)") \
	_(SEARCH_PREV, "N",            NULL,       "Find the previous match of the last search (wraps)") \
	_(SELECT,      "Enter",        NULL,       "Open the highlighted item") \
	_(TOGGLE,      "Space",        NULL,       "Tick or untick the highlighted checklist item") \
	_(RECOVER,     "v",            NULL,       "Recover the highlighted failed migration (what is known, the ways out)") \
	_(FOCUS_NEXT,  "Tab",          NULL,       "Move the focus to the next pane") \
	_(CANCEL,      "Esc C-c",      NULL,       "Close the dialog or answer no; cancel what is running")

/* Commands start at KEY_MAX + 1, so they never collide with a curses key code. */
#define COMMAND_ENUM(id, keys, label, help) CMD_##id,
enum command {
	CMD_NONE = 0,      /* a key bound to nothing */
	CMD__BASE = KEY_MAX,
	COMMAND_INFO(COMMAND_ENUM)
	CMD__END
};
#undef COMMAND_ENUM
#define CMD__FIRST (CMD__BASE + 1)
#define CMD__COUNT (CMD__END - CMD__FIRST)

/*
 * Raw keys as screens see them: a Unicode code point for a character (Ctrl-X is 0x18, Enter is
 * '\n', Backspace is 0x7f, Esc is 0x1b), or TUI_KEY(KEY_xxx) for a curses function key. The flag
 * keeps function keys apart from characters above U+0100.
 */
#define TUI_KEY_FUNC   0x01000000
#define TUI_KEY(k)     ((k) | TUI_KEY_FUNC)
#define TUI_CTRL(c)    ((c) & 0x1f)
#define TUI_KEY_ENTER  '\n'
#define TUI_KEY_ESC    0x1b
#define TUI_KEY_BACKSPACE 0x7f

/* True when raw is a printable character (text input), false for control and function keys. */
bool tui_key_is_text(int raw);
/*
 * Turns what wget_wch() returned (a character, or a key code when is_code) into a raw key:
 * '\r' and KEY_ENTER become '\n', Ctrl-H and KEY_BACKSPACE become 0x7f, and KEY_FIND/KEY_SELECT
 * (what "ESC [1~" / "ESC [4~" mean in xterm's terminfo, sent by tmux, screen and rxvt) become
 * Home/End.
 */
int tui_key_normalize(int ch, bool is_code);
/*
 * Parses one key name: a single UTF-8 character ("q", "/", "ä"), "Space", "Enter", "Tab",
 * "S-Tab", "Esc", "Backspace", "Up", "Down", "Left", "Right", "PgUp", "PgDn", "Home", "End",
 * "Ins", "Del", "F1".."F12", or "C-x" for Ctrl and a letter. False when the name is not one.
 */
bool tui_key_parse(const char *name, int *raw);
/* Writes the canonical name of a raw key (as tui_key_parse reads it) into buf; returns buf. */
char *tui_key_name(int raw, char *buf, size_t size);

/* "NEXT_STAGE"; NULL for a value that is not a command. */
const char *command_name(enum command cmd);
/* The default key names ("F7 ]"), the key-bar label (NULL when none) and the help text. */
const char *command_keys(enum command cmd);
const char *command_label(enum command cmd);
const char *command_help(enum command cmd);
/* The keys for people: "F1, ?" (the key names joined by ", ") into buf; returns buf. */
char *command_keys_text(enum command cmd, char *buf, size_t size);
/* The F-key number (1-12) among the command's keys, 0 when it has none. */
int command_fkey(enum command cmd);
/* The command bound to a raw key, CMD_NONE when the key is bound to nothing. */
enum command command_for_key(int raw);
/* The command with this name (as command_name() spells it); false when there is none. */
bool command_from_name(const char *name, enum command *out);

#endif
