/* checklist.c: the checklist screen: the plan's checklist.before items, ticked and journaled. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "screens/wizard.h"
#include "tui/text.h"
#include "tui/theme.h"

struct cl_screen {
	struct wizard *wz;
	size_t         cursor;
	int            top;     /* first visible line of the item list */
};

static int
cl_enter(struct screen *s, void *arg)
{
	(void)arg;
	struct cl_screen *c = s->priv;
	c->wz = tui_app_userdata(s->app);
	/* Start on the first item still open. */
	for (size_t i = 0; i < c->wz->plan->checklist_before.len; i++) {
		if (!c->wz->ticks[i].ticked) {
			c->cursor = i;
			break;
		}
	}
	return 0;
}

/* "ticked by alice at 2026-11-23 16:55 UTC" into buf. */
static const char *
tick_note(const struct wiz_tick *t, char *buf, size_t size)
{
	if (!t->ticked || t->user == NULL) {
		buf[0] = '\0';
		return buf;
	}
	char when[20] = "";
	if (t->at && strlen(t->at) >= 16)
		snprintf(when, sizeof when, "%.10s %.5s", t->at, t->at + 11);
	snprintf(buf, size, "ticked by %s at %s UTC", t->user, when);
	return buf;
}

static void
cl_draw(struct screen *s)
{
	struct cl_screen *c = s->priv;
	struct wizard *wz = c->wz;
	const struct strlist *items = &wz->plan->checklist_before;
	int h, w;
	getmaxyx(s->win, h, w);
	int y = 0;
	tui_text_put(s->win, y++, 1, "Checklist before the first change", 0, w - 1, tui_attr(TUI_ROLE_HEADER), true);
	size_t n = wizard_ticked_count(wz);
	char *line = n == items->len
	             ? xasprintf("All %zu ticked: the changing stages can open.", items->len)
	             : xasprintf("%zu of %zu ticked; Space ticks or unticks.", n, items->len);
	tui_text_put(s->win, y++, 1, line, 0, w - 1, tui_attr(n == items->len ? TUI_ROLE_OK : TUI_ROLE_NORMAL), true);
	free(line);
	if (wz->notice) {
		struct strlist l = {0};
		tui_text_wrap(wz->notice, w - 2, &l);
		for (size_t i = 0; i < l.len && y < h; i++)
			tui_text_put(s->win, y++, 1, l.items[i], 0, w - 1, tui_attr(TUI_ROLE_WARN), true);
		strlist_free(&l);
	}
	y++;

	/* Every item wrapped; the cursor's item kept visible. */
	struct strlist lines = {0};
	size_t *owner = NULL, cap = 0;
	int cur_first = 0, cur_last = 0;
	for (size_t i = 0; i < items->len; i++) {
		struct strlist l = {0};
		char note[96];
		tui_text_wrap(items->items[i], w - 7 > 10 ? w - 7 : 10, &l);
		if (tick_note(&wz->ticks[i], note, sizeof note)[0])
			strlist_push(&l, note);
		if ((int)i == (int)c->cursor)
			cur_first = (int)lines.len;
		for (size_t k = 0; k < l.len; k++) {
			if (lines.len + 1 > cap) {
				cap = cap ? cap * 2 : 16;
				owner = xrealloc(owner, cap * sizeof *owner);
			}
			owner[lines.len] = i;
			char *t = xasprintf("%s %s", k == 0 ? (wz->ticks[i].ticked ? "[x]" : "[ ]") : "   ",
			                    l.items[k]);
			strlist_push_owned(&lines, t);
		}
		if ((int)i == (int)c->cursor)
			cur_last = (int)lines.len - 1;
		strlist_free(&l);
	}
	int room = h - y;
	if (room < 1)
		room = 1;
	if (cur_first < c->top)
		c->top = cur_first;
	if (cur_last >= c->top + room)
		c->top = cur_last - room + 1;
	for (int k = c->top; k < (int)lines.len && y < h; k++, y++) {
		size_t i = owner[k];
		bool cur = i == c->cursor;
		bool is_note = wz->ticks[i].ticked && (k + 1 == (int)lines.len || owner[k + 1] != i) &&
		               wz->ticks[i].user != NULL;
		enum tui_role role = cur ? TUI_ROLE_CURSOR : is_note ? TUI_ROLE_MUTED :
		                     wz->ticks[i].ticked ? TUI_ROLE_OK : TUI_ROLE_NORMAL;
		tui_text_put(s->win, y, 1, lines.items[k], 0, w - 2, tui_attr(role), true);
	}
	strlist_free(&lines);
	free(owner);
}

static enum key_result
cl_key(struct screen *s, enum command cmd, int raw)
{
	(void)raw;
	struct cl_screen *c = s->priv;
	size_t n = c->wz->plan->checklist_before.len;
	switch (cmd) {
	case CMD_UP:
		if (c->cursor > 0)
			c->cursor--;
		return KEY_RESULT_HANDLED;
	case CMD_DOWN:
		if (c->cursor + 1 < n)
			c->cursor++;
		return KEY_RESULT_HANDLED;
	case CMD_HOME:
		c->cursor = 0;
		return KEY_RESULT_HANDLED;
	case CMD_END:
		c->cursor = n ? n - 1 : 0;
		return KEY_RESULT_HANDLED;
	case CMD_TOGGLE:
	case CMD_SELECT:
		if (c->cursor < n) {
			bool now = !c->wz->ticks[c->cursor].ticked;
			wizard_tick(c->wz, c->cursor, now);
			/* Move on to the next open item after a tick. */
			if (now)
				for (size_t k = 1; k <= n; k++)
					if (!c->wz->ticks[(c->cursor + k) % n].ticked) {
						c->cursor = (c->cursor + k) % n;
						break;
					}
		}
		return KEY_RESULT_HANDLED;
	default:
		return KEY_RESULT_PASS;
	}
}

const struct screen_ops wiz_checklist_screen = {
	.name = "checklist",
	.priv_size = sizeof(struct cl_screen),
	.enter = cl_enter,
	.draw = cl_draw,
	.key = cl_key,
};
