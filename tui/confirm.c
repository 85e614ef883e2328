/* confirm.c: the typed-confirmation prompt: exact byte comparison, miss counting, no default. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "tui/confirm.h"
#include "tui/dialog.h"
#include "tui/text.h"
#include "tui/theme.h"

bool
tui_confirm_matches(const char *phrase, const char *typed, size_t typed_len)
{
	size_t n = strlen(phrase);
	return n == typed_len && memcmp(phrase, typed, n) == 0;
}

void
tui_confirm_state_init(struct tui_confirm_state *st, const char *phrase, int max_misses,
                       void (*miss)(void *ud, const char *typed, int misses), void *ud)
{
	memset(st, 0, sizeof *st);
	st->phrase = phrase;
	st->max_misses = max_misses > 0 ? max_misses : TUI_CONFIRM_MAX_MISSES;
	st->miss = miss;
	st->ud = ud;
}

enum tui_confirm_result
tui_confirm_state_key(struct tui_confirm_state *st, int raw)
{
	if (raw == TUI_KEY_ESC || raw == TUI_CTRL('c'))
		return TUI_CONFIRM_CANCELLED;
	if (raw == TUI_KEY_ENTER) {
		if (st->len == 0)
			return TUI_CONFIRM_PENDING;
		/* Input that did not fit was not kept whole, so it cannot be the phrase. */
		if (!st->overflow && tui_confirm_matches(st->phrase, st->input, st->len))
			return TUI_CONFIRM_OK;
		st->misses++;
		st->input[st->len] = '\0';
		if (st->miss)
			st->miss(st->ud, st->input, st->misses);
		st->len = 0;
		st->input[0] = '\0';
		st->overflow = false;
		return st->misses >= st->max_misses ? TUI_CONFIRM_REFUSED : TUI_CONFIRM_PENDING;
	}
	if (raw == TUI_KEY_BACKSPACE) {
		st->len = tui_text_prev(st->input, st->len);
		st->input[st->len] = '\0';
	} else if (raw == TUI_CTRL('u')) {
		st->len = 0;
		st->input[0] = '\0';
		st->overflow = false;
	} else if (tui_key_is_text(raw)) {
		char enc[5];
		size_t k = tui_text_encode(raw, enc);
		if (st->len + k < sizeof st->input) {
			memcpy(st->input + st->len, enc, k);
			st->len += k;
			st->input[st->len] = '\0';
		} else {
			st->overflow = true;
		}
	}
	return TUI_CONFIRM_PENDING;
}

struct confirm {
	struct tui_confirm_state st;
	char                    *title, *action, *environment, *target, *phrase;
	struct strlist           details;
	bool                     prod;
	char                    *last_miss;
	void                   (*miss)(void *ud, const char *typed, int misses);
	void                   (*done)(void *ud, enum tui_confirm_result result, const char *typed);
	void                    *ud;
	int                      dtop;     /* the first detail line shown (Up/Down/PgUp/PgDn scroll them) */
	int                      dmax;     /* the largest dtop of the last drawing */
	int                      drows;    /* the detail rows of the last drawing */
};

static void
on_miss(void *ud, const char *typed, int misses)
{
	struct confirm *c = ud;
	free(c->last_miss);
	c->last_miss = xstrdup(typed);
	if (c->miss)
		c->miss(c->ud, typed, misses);
}

static char *
dup_or_empty(const char *s)
{
	return xstrdup(s ? s : "");
}

static int
confirm_enter(struct screen *s, void *arg)
{
	const struct tui_confirm_opts *o = arg;
	struct confirm *c = s->priv;
	c->title = dup_or_empty(o->title);
	c->action = dup_or_empty(o->action);
	c->environment = dup_or_empty(o->environment);
	c->target = dup_or_empty(o->target);
	c->phrase = dup_or_empty(o->phrase);
	c->prod = o->prod;
	for (const char *const *d = o->details; d && *d; d++)
		strlist_push(&c->details, *d);
	c->miss = o->miss;
	c->done = o->done;
	c->ud = o->ud;
	tui_confirm_state_init(&c->st, c->phrase, o->max_misses, on_miss, c);
	tui_screen_set_overlay(s, true);
	return 0;
}

static void
put_field(WINDOW *w, int y, int x, int width, const char *label, const char *value, enum tui_role role)
{
	int lw = label == NULL ? 0 : 14 < width ? 14 : width;   /* NULL: the value takes the whole row */
	if (lw == 0) {
		tui_text_put(w, y, x, value, 0, width, tui_attr(role), true);
		return;
	}
	tui_text_put(w, y, x, label, 0, lw, tui_attr(TUI_ROLE_MUTED), true);
	tui_text_put(w, y, x + lw, value, 0, width - lw, tui_attr(role), true);
}

/* One line of the dialog's fields: a label (on a field's first line only) and wrapped text. */
struct field_line {
	const char   *label;
	char         *text;
	enum tui_role role;
};

/* Wraps value to the value column and appends its lines (the label on the first). */
static void
add_field(struct field_line **lines, size_t *n, int width, const char *label, const char *value,
          enum tui_role role)
{
	struct strlist wrapped = {0};
	tui_text_wrap(value ? value : "", label == NULL ? width : width > 14 ? width - 14 : 1, &wrapped);
	if (wrapped.len == 0)
		strlist_push(&wrapped, "");
	*lines = xrealloc(*lines, (*n + wrapped.len) * sizeof **lines);
	for (size_t i = 0; i < wrapped.len; i++)
		(*lines)[(*n)++] = (struct field_line){ i == 0 || label == NULL ? label : "", xstrdup(wrapped.items[i]), role };
	strlist_free(&wrapped);
}

static void
confirm_draw(struct screen *s)
{
	struct confirm *c = s->priv;
	int wh, ww;
	getmaxyx(s->win, wh, ww);
	int width = ww - 4 < 76 ? ww - 4 : 76;
	int inner = width - 4;
	/* Every field wraps, so a long warning is read whole, never cut at the box's edge. */
	struct field_line *lines = NULL;
	size_t nlines = 0, nfixed;
	add_field(&lines, &nlines, inner, "Action:", c->action, TUI_ROLE_NORMAL);
	add_field(&lines, &nlines, inner, "Environment:", c->environment, c->prod ? TUI_ROLE_PROD : TUI_ROLE_NORMAL);
	add_field(&lines, &nlines, inner, "Target:", c->target, TUI_ROLE_NORMAL);
	nfixed = nlines;
	for (size_t i = 0; i < c->details.len; i++)
		add_field(&lines, &nlines, inner, NULL, c->details.items[i], TUI_ROLE_NORMAL);
	/* The phrase is never cut: it wraps at its spaces onto as many rows as it needs. */
	struct strlist phrase = {0};
	tui_text_wrap(c->phrase, inner - 2 > 1 ? inner - 2 : 1, &phrase);
	if (phrase.len == 0)
		strlist_push(&phrase, "");
	int prows = (int)phrase.len;
	int h = 7 + prows + (int)nlines;
	if (h > wh)
		h = wh;
	struct tui_rect r = tui_dialog_center(s->win, h, width);
	char *title = xasprintf("Confirm: %s", c->title);
	tui_dialog_frame(s->win, r, title, c->prod ? TUI_ROLE_DANGER : TUI_ROLE_WARN);
	free(title);
	int x = r.x + 2, y = r.y + 1, last = r.y + r.h - 2;
	/* The phrase, the input and the miss line always keep their rows: details give way and scroll. */
	int details_last = last - 5 - prows;
	for (size_t i = 0; i < nfixed && y <= last; i++)
		put_field(s->win, y++, x, inner, lines[i].label, lines[i].text, lines[i].role);
	int ndet = (int)(nlines - nfixed);
	int rows = details_last - y + 1;
	if (ndet > rows)
		rows++;   /* cut: the blank row before the phrase goes to them too */
	if (rows < 1)
		rows = 1;
	if (ndet > rows && rows > 1)
		rows--;   /* the last row says what is hidden and how to see it */
	c->drows = rows;
	c->dmax = ndet > rows ? ndet - rows : 0;
	if (c->dtop > c->dmax)
		c->dtop = c->dmax;
	if (c->dtop < 0)
		c->dtop = 0;
	for (int i = c->dtop; i < ndet && i < c->dtop + rows && y <= last; i++)
		put_field(s->win, y++, x, inner, NULL, lines[nfixed + (size_t)i].text, lines[nfixed + (size_t)i].role);
	bool cut = ndet > rows;
	if (cut && y <= last) {
		int below = ndet - c->dtop - rows;
		char *more = xasprintf("(%d above, %d below: Up/Down PgUp/PgDn)", c->dtop, below > 0 ? below : 0);
		put_field(s->win, y++, x, inner, NULL, more, TUI_ROLE_MUTED);
		free(more);
	}
	for (size_t i = 0; i < nlines; i++)
		free(lines[i].text);
	free(lines);
	if (!cut)
		y++;
	if (y <= last) {
		tui_text_put(s->win, y, x, "To go ahead, type exactly:", 0, inner, tui_attr(TUI_ROLE_NORMAL), true);
		y++;
	}
	for (size_t i = 0; i < phrase.len && y <= last; i++)
		tui_text_put(s->win, y++, x + 2, phrase.items[i], 0, inner - 2, tui_attr(TUI_ROLE_WARN) | A_BOLD, true);
	strlist_free(&phrase);
	if (y <= last) {
		/* The input line; show its tail when it is wider than the box. */
		tui_text_put(s->win, y, x, "> ", 0, 2, tui_attr(TUI_ROLE_NORMAL), false);
		c->st.input[c->st.len] = '\0';
		int iw = tui_text_width(c->st.input);
		int room = inner - 3;
		int skip = iw > room ? iw - room : 0;
		int used = tui_text_put(s->win, y, x + 2, c->st.input, skip, room + 1, tui_attr(TUI_ROLE_NORMAL), true);
		tui_screen_show_cursor(s, y, x + 2 + used);
		y++;
	}
	if (y <= last) {
		if (c->st.misses > 0) {
			/* What was typed when the row has room for it: the count and "nothing ran" always. */
			char *m = xasprintf("Wrong phrase (%d of %d): nothing ran. You typed \"%s\".", c->st.misses,
			                    c->st.max_misses, c->last_miss ? c->last_miss : "");
			if (tui_text_width(m) > inner) {
				free(m);
				m = xasprintf("Wrong phrase (%d of %d): nothing ran.", c->st.misses, c->st.max_misses);
			}
			tui_text_put(s->win, y, x, m, 0, inner, tui_attr(TUI_ROLE_DANGER), true);
			free(m);
		}
		y++;
	}
	tui_text_put(s->win, last, x, "Enter submits   Esc cancels (no)", 0, inner, tui_attr(TUI_ROLE_MUTED), true);
}

static enum key_result
confirm_key(struct screen *s, enum command cmd, int raw)
{
	struct confirm *c = s->priv;
	/* The arrow and page keys scroll the details; their letter keys (j, k) are typed text. */
	if ((cmd == CMD_UP || cmd == CMD_DOWN || cmd == CMD_PAGE_UP || cmd == CMD_PAGE_DOWN) &&
	    (raw == TUI_KEY(KEY_UP) || raw == TUI_KEY(KEY_DOWN) || raw == TUI_KEY(KEY_PPAGE) ||
	     raw == TUI_KEY(KEY_NPAGE))) {
		int page = c->drows > 1 ? c->drows - 1 : 1;
		c->dtop += cmd == CMD_UP ? -1 : cmd == CMD_DOWN ? 1 : cmd == CMD_PAGE_UP ? -page : page;
		if (c->dtop > c->dmax)
			c->dtop = c->dmax;
		if (c->dtop < 0)
			c->dtop = 0;
		return KEY_RESULT_HANDLED;
	}
	enum tui_confirm_result r = tui_confirm_state_key(&c->st, raw);
	if (r != TUI_CONFIRM_PENDING) {
		void (*done)(void *, enum tui_confirm_result, const char *) = c->done;
		void *ud = c->ud;
		/* A copy: popping may free the prompt before done runs. */
		c->st.input[c->st.len] = '\0';
		char *typed = r == TUI_CONFIRM_OK ? xstrdup(c->st.input) : NULL;
		if (tui_top(s->app) == s)  /* the miss callback may have closed the prompt already */
			tui_pop(s->app);
		if (done)
			done(ud, r, typed);
		free(typed);
	}
	return KEY_RESULT_HANDLED;
}

static void
confirm_leave(struct screen *s)
{
	struct confirm *c = s->priv;
	free(c->title);
	free(c->action);
	free(c->environment);
	free(c->target);
	free(c->phrase);
	free(c->last_miss);
	strlist_free(&c->details);
	memset(&c->st, 0, sizeof c->st);
}

static const struct screen_ops confirm_screen = {
	.name = "confirm",
	.priv_size = sizeof(struct confirm),
	.enter = confirm_enter,
	.draw = confirm_draw,
	.key = confirm_key,
	.leave = confirm_leave,
};

struct screen *
tui_confirm(struct tui_app *app, const struct tui_confirm_opts *opts)
{
	if (opts == NULL || opts->phrase == NULL || opts->phrase[0] == '\0')
		return NULL;
	return tui_push(app, &confirm_screen, (void *)opts);
}
