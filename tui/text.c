/* text.c: UTF-8 decoding, display width and clipped drawing for the widgets. */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <langinfo.h>
#include <wchar.h>

#include "core/util.h"
#include "tui/text.h"

size_t
tui_text_decode(const char *s, size_t n, int *cp)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t len;
	int c;
	if (n == 0) {
		*cp = -1;
		return 0;
	}
	if (u[0] < 0x80) {
		*cp = u[0];
		return 1;
	} else if ((u[0] & 0xe0) == 0xc0) {
		len = 2;
		c = u[0] & 0x1f;
	} else if ((u[0] & 0xf0) == 0xe0) {
		len = 3;
		c = u[0] & 0x0f;
	} else if ((u[0] & 0xf8) == 0xf0) {
		len = 4;
		c = u[0] & 0x07;
	} else {
		*cp = -1;
		return 1;
	}
	if (len > n) {
		*cp = -1;
		return 1;
	}
	for (size_t i = 1; i < len; i++) {
		if ((u[i] & 0xc0) != 0x80) {
			*cp = -1;
			return 1;
		}
		c = (c << 6) | (u[i] & 0x3f);
	}
	static const int min[] = { 0, 0, 0x80, 0x800, 0x10000 };
	if (c < min[len] || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)) {
		*cp = -1;
		return 1;
	}
	*cp = c;
	return len;
}

size_t
tui_text_encode(int cp, char out[5])
{
	size_t n;
	if (cp < 0 || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		cp = 0xfffd;
	if (cp < 0x80) {
		out[0] = (char)cp;
		n = 1;
	} else if (cp < 0x800) {
		out[0] = (char)(0xc0 | (cp >> 6));
		out[1] = (char)(0x80 | (cp & 0x3f));
		n = 2;
	} else if (cp < 0x10000) {
		out[0] = (char)(0xe0 | (cp >> 12));
		out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		out[2] = (char)(0x80 | (cp & 0x3f));
		n = 3;
	} else {
		out[0] = (char)(0xf0 | (cp >> 18));
		out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
		out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
		out[3] = (char)(0x80 | (cp & 0x3f));
		n = 4;
	}
	out[n] = '\0';
	return n;
}

int
tui_text_cp_width(int cp)
{
	if (cp < 0x20 || (cp >= 0x7f && cp < 0xa0))
		return 1;   /* shown as '?' */
	if (cp < 0x7f)
		return 1;
	int w = wcwidth((wchar_t)cp);
	return w < 0 ? 1 : w;
}

int
tui_text_width(const char *s)
{
	int w = 0;
	size_t n = strlen(s);
	while (n > 0) {
		int cp;
		size_t k = tui_text_decode(s, n, &cp);
		w += cp < 0 ? 1 : tui_text_cp_width(cp);
		s += k;
		n -= k;
	}
	return w;
}

size_t
tui_text_prev(const char *s, size_t len)
{
	if (len == 0)
		return 0;
	size_t i = len - 1;
	/* Step back over at most three continuation bytes to a lead byte that decodes to here. */
	for (size_t back = 0; back < 4 && i > 0 && ((unsigned char)s[i] & 0xc0) == 0x80; back++)
		i--;
	int cp;
	if (tui_text_decode(s + i, len - i, &cp) == len - i)
		return i;
	return len - 1;
}

int
tui_text_put(WINDOW *win, int y, int x, const char *s, int skip, int width, attr_t attr, bool pad)
{
	if (width <= 0)
		return 0;
	wchar_t buf[256];
	int nbuf = 0;
	int col = 0;       /* display column within s */
	int out = 0;       /* columns written */
	size_t n = s ? strlen(s) : 0;
	wattrset(win, attr);
	wmove(win, y, x);
	while (n > 0 && out < width) {
		int cp;
		size_t k = tui_text_decode(s, n, &cp);
		s += k;
		n -= k;
		int cw = cp < 0 ? 1 : tui_text_cp_width(cp);
		if (cp < 0x20 || (cp >= 0x7f && cp < 0xa0))
			cp = '?';
		if (col + cw <= skip) {
			col += cw;
			continue;
		}
		if (col < skip) {
			/* A wide character cut by the left edge. */
			for (int i = 0; i < col + cw - skip && out < width; i++) {
				buf[nbuf++] = L' ';
				out++;
			}
			col += cw;
		} else if (out + cw > width) {
			/* Cut by the right edge. */
			while (out < width) {
				buf[nbuf++] = L' ';
				out++;
			}
			col += cw;
		} else {
			if (cw == 0 && nbuf == 0) {
				col += cw;
				continue;   /* a combining mark with nothing to combine with */
			}
			buf[nbuf++] = (wchar_t)cp;
			out += cw;
			col += cw;
		}
		if (nbuf >= (int)(sizeof buf / sizeof buf[0]) - 4) {
			waddnwstr(win, buf, nbuf);
			nbuf = 0;
		}
	}
	if (nbuf > 0)
		waddnwstr(win, buf, nbuf);
	int written = out;
	if (pad) {
		for (; out < width; out++)
			waddch(win, ' ');
	}
	return written;
}

void
tui_text_fill(WINDOW *win, int y, int x, int width, attr_t attr)
{
	wattrset(win, attr);
	wmove(win, y, x);
	for (int i = 0; i < width; i++)
		waddch(win, ' ');
}

/* Appends one paragraph (no '\n') wrapped to width. */
static void
wrap_para(const char *p, size_t n, int width, struct strlist *out)
{
	struct strbuf line = { 0 };
	int lw = 0;
	size_t i = 0;
	strbuf_adds(&line, "");
	while (i < n) {
		/* The next word and the spaces before it. */
		size_t sp = i;
		while (sp < n && p[sp] == ' ')
			sp++;
		size_t we = sp;
		while (we < n && p[we] != ' ')
			we++;
		char *word = xstrndup(p + sp, we - sp);
		int ww = tui_text_width(word);
		int spaces = lw > 0 ? (int)(sp - i) : 0;
		if (lw > 0 && lw + spaces + ww > width) {
			strlist_push(out, line.buf);
			strbuf_reset(&line);
			lw = 0;
			spaces = 0;
		}
		if (lw == 0 && i == 0)
			spaces = (int)(sp - i);   /* keep indentation of the paragraph's first line */
		for (int k = 0; k < spaces && lw < width; k++, lw++)
			strbuf_addc(&line, ' ');
		/* A word wider than the line is cut into pieces. */
		const char *w = word;
		size_t wl = strlen(word);
		while (wl > 0) {
			int cp;
			size_t k = tui_text_decode(w, wl, &cp);
			int cw = cp < 0 ? 1 : tui_text_cp_width(cp);
			if (lw + cw > width && lw > 0) {
				strlist_push(out, line.buf);
				strbuf_reset(&line);
				lw = 0;
			}
			strbuf_add(&line, w, k);
			lw += cw;
			w += k;
			wl -= k;
		}
		free(word);
		i = we;
	}
	strlist_push(out, line.buf ? line.buf : "");
	strbuf_release(&line);
}

void
tui_text_wrap(const char *s, int width, struct strlist *out)
{
	if (width < 1)
		width = 1;
	const char *p = s ? s : "";
	do {
		size_t n = strcspn(p, "\n");
		wrap_para(p, n, width, out);
		p += n;
	} while (*p++ == '\n');
}

static bool
utf8_locale(void)
{
	const char *cs = nl_langinfo(CODESET);
	return cs && strcmp(cs, "UTF-8") == 0;
}

/* Puts one line-drawing character: the Unicode one (wc) in a UTF-8 locale, else the ACS one. */
static void
put_line_char(WINDOW *win, int y, int x, wchar_t wc, chtype acs, attr_t attr)
{
	if (utf8_locale()) {
		wchar_t s[2] = { wc, L'\0' };
		cchar_t cc;
		setcchar(&cc, s, attr & ~A_COLOR, (short)PAIR_NUMBER(attr), NULL);  /* keep the role's colour */
		mvwadd_wch(win, y, x, &cc);
	} else {
		wattrset(win, attr);
		mvwaddch(win, y, x, acs);
	}
}

void
tui_text_hline(WINDOW *win, int y, int x, int n, attr_t attr)
{
	for (int i = 0; i < n; i++)
		put_line_char(win, y, x + i, L'\x2500', ACS_HLINE, attr);
}

void
tui_text_vline(WINDOW *win, int y, int x, int n, attr_t attr)
{
	for (int i = 0; i < n; i++)
		put_line_char(win, y + i, x, L'\x2502', ACS_VLINE, attr);
}

void
tui_text_box(WINDOW *win, int y, int x, int h, int w, attr_t attr)
{
	if (h < 2 || w < 2)
		return;
	tui_text_hline(win, y, x + 1, w - 2, attr);
	tui_text_hline(win, y + h - 1, x + 1, w - 2, attr);
	tui_text_vline(win, y + 1, x, h - 2, attr);
	tui_text_vline(win, y + 1, x + w - 1, h - 2, attr);
	put_line_char(win, y, x, L'\x250c', ACS_ULCORNER, attr);
	put_line_char(win, y, x + w - 1, L'\x2510', ACS_URCORNER, attr);
	put_line_char(win, y + h - 1, x, L'\x2514', ACS_LLCORNER, attr);
	put_line_char(win, y + h - 1, x + w - 1, L'\x2518', ACS_LRCORNER, attr);
}
