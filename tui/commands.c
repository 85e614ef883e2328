/* commands.c: key names, key-to-command lookup and the tables generated from COMMAND_INFO. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "tui/commands.h"
#include "tui/text.h"

struct command_info {
	const char *name;
	const char *keys;
	const char *label;
	const char *help;
};

#define COMMAND_ROW(id, keys, label, help) { #id, keys, label, help },
static const struct command_info commands[] = { COMMAND_INFO(COMMAND_ROW) };
#undef COMMAND_ROW

static const struct {
	const char *name;
	int         raw;
} key_names[] = {
	{ "Enter", TUI_KEY_ENTER },
	{ "Tab", '\t' },
	{ "S-Tab", TUI_KEY(KEY_BTAB) },
	{ "Esc", TUI_KEY_ESC },
	{ "Space", ' ' },
	{ "Backspace", TUI_KEY_BACKSPACE },
	{ "Up", TUI_KEY(KEY_UP) },
	{ "Down", TUI_KEY(KEY_DOWN) },
	{ "Left", TUI_KEY(KEY_LEFT) },
	{ "Right", TUI_KEY(KEY_RIGHT) },
	{ "PgUp", TUI_KEY(KEY_PPAGE) },
	{ "PgDn", TUI_KEY(KEY_NPAGE) },
	{ "Home", TUI_KEY(KEY_HOME) },
	{ "End", TUI_KEY(KEY_END) },
	{ "Ins", TUI_KEY(KEY_IC) },
	{ "Del", TUI_KEY(KEY_DC) },
};

static const struct command_info *
info(enum command cmd)
{
	if ((int)cmd < CMD__FIRST || (int)cmd >= CMD__END)
		return NULL;
	return &commands[cmd - CMD__FIRST];
}

bool
tui_key_is_text(int raw)
{
	return raw >= 0x20 && raw != 0x7f && !(raw >= 0x80 && raw < 0xa0) && raw <= 0x10ffff &&
	       !(raw >= 0xd800 && raw <= 0xdfff);
}

int
tui_key_normalize(int ch, bool is_code)
{
	if (!is_code) {
		if (ch == '\r')
			return TUI_KEY_ENTER;
		if (ch == TUI_CTRL('h'))
			return TUI_KEY_BACKSPACE;
		return ch;
	}
	switch (ch) {
	case KEY_ENTER:
		return TUI_KEY_ENTER;
	case KEY_BACKSPACE:
		return TUI_KEY_BACKSPACE;
	case KEY_FIND:
		return TUI_KEY(KEY_HOME);
	case KEY_SELECT:
		return TUI_KEY(KEY_END);
	default:
		return TUI_KEY(ch);
	}
}

bool
tui_key_parse(const char *name, int *raw)
{
	if (name == NULL || name[0] == '\0')
		return false;
	for (size_t i = 0; i < RB_ARRAY_LEN(key_names); i++) {
		if (strcmp(name, key_names[i].name) == 0) {
			*raw = key_names[i].raw;
			return true;
		}
	}
	if (name[0] == 'F' && name[1] >= '1' && name[1] <= '9') {
		char *end;
		long n = strtol(name + 1, &end, 10);
		if (*end != '\0' || n > 12)
			return false;
		*raw = TUI_KEY(KEY_F((int)n));
		return true;
	}
	if (name[0] == 'C' && name[1] == '-' && name[2] >= 'a' && name[2] <= 'z' && name[3] == '\0') {
		*raw = TUI_CTRL(name[2]);
		return true;
	}
	int cp;
	size_t len = strlen(name);
	if (tui_text_decode(name, len, &cp) == len && tui_key_is_text(cp) && cp != ' ') {
		*raw = cp;
		return true;
	}
	return false;
}

char *
tui_key_name(int raw, char *buf, size_t size)
{
	char tmp[32];
	tmp[0] = '\0';
	for (size_t i = 0; i < RB_ARRAY_LEN(key_names); i++) {
		if (key_names[i].raw == raw) {
			snprintf(tmp, sizeof tmp, "%s", key_names[i].name);
			break;
		}
	}
	if (tmp[0] != '\0') {
		/* found */
	} else if (raw & TUI_KEY_FUNC) {
		int k = raw & ~TUI_KEY_FUNC;
		if (k >= KEY_F(1) && k <= KEY_F(12))
			snprintf(tmp, sizeof tmp, "F%d", k - KEY_F0);
		else
			snprintf(tmp, sizeof tmp, "key-%d", k);
	} else if (raw >= 1 && raw <= 26) {
		snprintf(tmp, sizeof tmp, "C-%c", 'a' + raw - 1);
	} else if (tui_key_is_text(raw)) {
		tui_text_encode(raw, tmp);
	} else {
		snprintf(tmp, sizeof tmp, "U+%04X", (unsigned)raw);
	}
	snprintf(buf, size, "%s", tmp);
	return buf;
}

const char *
command_name(enum command cmd)
{
	const struct command_info *ci = info(cmd);
	return ci ? ci->name : NULL;
}

const char *
command_keys(enum command cmd)
{
	const struct command_info *ci = info(cmd);
	return ci ? ci->keys : "";
}

const char *
command_label(enum command cmd)
{
	const struct command_info *ci = info(cmd);
	return ci ? ci->label : NULL;
}

const char *
command_help(enum command cmd)
{
	const struct command_info *ci = info(cmd);
	return ci ? ci->help : "";
}

/* Calls fn for each key of the command's list; stops when fn returns true and returns that. */
static bool
each_key(const char *keys, bool (*fn)(int raw, void *ud), void *ud)
{
	char name[32];
	const char *p = keys;
	while (*p) {
		size_t n = strcspn(p, " ");
		if (n > 0 && n < sizeof name) {
			memcpy(name, p, n);
			name[n] = '\0';
			int raw;
			if (tui_key_parse(name, &raw) && fn(raw, ud))
				return true;
		}
		p += n;
		while (*p == ' ')
			p++;
	}
	return false;
}

static bool
find_fkey(int raw, void *ud)
{
	int k = raw & ~TUI_KEY_FUNC;
	if ((raw & TUI_KEY_FUNC) && k >= KEY_F(1) && k <= KEY_F(12)) {
		*(int *)ud = k - KEY_F0;
		return true;
	}
	return false;
}

int
command_fkey(enum command cmd)
{
	int n = 0;
	const struct command_info *ci = info(cmd);
	if (ci)
		each_key(ci->keys, find_fkey, &n);
	return n;
}

static bool
same_key(int raw, void *ud)
{
	return raw == *(int *)ud;
}

enum command
command_for_key(int raw)
{
	for (int c = CMD__FIRST; c < CMD__END; c++) {
		if (each_key(commands[c - CMD__FIRST].keys, same_key, &raw))
			return (enum command)c;
	}
	return CMD_NONE;
}

bool
command_from_name(const char *name, enum command *out)
{
	for (int c = CMD__FIRST; c < CMD__END; c++) {
		if (strcmp(commands[c - CMD__FIRST].name, name) == 0) {
			*out = (enum command)c;
			return true;
		}
	}
	return false;
}

char *
command_keys_text(enum command cmd, char *buf, size_t size)
{
	size_t len = 0;
	const char *p = command_keys(cmd);
	if (size == 0)
		return buf;
	buf[0] = '\0';
	while (*p) {
		size_t n = strcspn(p, " ");
		int w = snprintf(buf + len, size - len, "%s%.*s", len ? ", " : "", (int)n, p);
		if (w < 0 || (size_t)w >= size - len)
			break;
		len += (size_t)w;
		p += n;
		while (*p == ' ')
			p++;
	}
	return buf;
}
