/* progress.c: progress arithmetic (smoothed rate, ETA) and the bar's drawing. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "tui/progress.h"
#include "tui/text.h"
#include "tui/theme.h"

void
tui_progress_start(struct tui_progress *p, long long total, long long now_ms)
{
	p->total = total;
	p->done = 0;
	p->start_ms = now_ms;
	p->sample_ms = now_ms;
	p->sample_done = 0;
	p->rate = -1;
}

static double
blend(double rate, double inst, long long dt)
{
	if (rate < 0)
		return inst;
	double alpha = (double)dt / ((double)dt + TUI_PROGRESS_TAU_MS);
	return rate + alpha * (inst - rate);
}

void
tui_progress_update(struct tui_progress *p, long long done, long long now_ms)
{
	p->done = done;
	long long dt = now_ms - p->sample_ms;
	if (dt >= TUI_PROGRESS_SAMPLE_MS) {
		double inst = (double)(done - p->sample_done) * 1000.0 / (double)dt;
		if (inst < 0)
			inst = 0;
		p->rate = blend(p->rate, inst, dt);
		p->sample_ms = now_ms;
		p->sample_done = done;
	}
}

void
tui_progress_set_total(struct tui_progress *p, long long total)
{
	p->total = total;
}

double
tui_progress_rate(const struct tui_progress *p, long long now_ms)
{
	long long dt = now_ms - p->sample_ms;
	if (dt < TUI_PROGRESS_SAMPLE_MS)
		return p->rate;
	double inst = (double)(p->done - p->sample_done) * 1000.0 / (double)dt;
	if (inst < 0)
		inst = 0;
	/* Only a slowdown is taken from the open interval: a partial batch must not inflate it. */
	if (p->rate >= 0 && inst >= p->rate)
		return p->rate;
	return blend(p->rate, inst, dt);
}

long long
tui_progress_eta_ms(const struct tui_progress *p, long long now_ms)
{
	if (p->total <= 0)
		return -1;
	if (p->done >= p->total)
		return 0;
	double rate = tui_progress_rate(p, now_ms);
	if (!(rate > 1e-9))
		return -1;
	double eta = (double)(p->total - p->done) * 1000.0 / rate + 0.5;
	/* A stall makes the rate decay towards zero: past 100 hours the estimate means "unknown". */
	if (eta > 100.0 * 3600.0 * 1000.0)
		return -1;
	return (long long)eta;
}

int
tui_progress_percent(const struct tui_progress *p)
{
	if (p->total <= 0)
		return -1;
	if (p->done >= p->total)
		return 100;
	if (p->done <= 0)
		return 0;
	return (int)(p->done * 100 / p->total);
}

char *
tui_progress_duration(long long ms, char *buf, size_t size)
{
	if (ms < 0) {
		snprintf(buf, size, "--:--");
		return buf;
	}
	long long s = (ms + 999) / 1000;
	if (s >= 3600)
		snprintf(buf, size, "%lld:%02lld:%02lld", s / 3600, s / 60 % 60, s % 60);
	else
		snprintf(buf, size, "%lld:%02lld", s / 60, s % 60);
	return buf;
}

char *
tui_progress_rate_text(double rate, char *buf, size_t size)
{
	if (rate < 0)
		snprintf(buf, size, "-");
	else if (rate < 1000)
		snprintf(buf, size, "%.0f/s", rate);
	else if (rate < 1e6)
		snprintf(buf, size, "%.1fk/s", rate / 1e3);
	else
		snprintf(buf, size, "%.2fM/s", rate / 1e6);
	return buf;
}

void
tui_progress_draw(const struct tui_progress *p, WINDOW *win, int y, int x, int w, long long now_ms)
{
	char info[160], rate[32], eta[32];
	tui_progress_rate_text(tui_progress_rate(p, now_ms), rate, sizeof rate);
	int pct = tui_progress_percent(p);
	if (pct >= 0) {
		tui_progress_duration(tui_progress_eta_ms(p, now_ms), eta, sizeof eta);
		snprintf(info, sizeof info, " %3d%%  %lld/%lld  %s  ETA %s", pct, p->done, p->total, rate, eta);
	} else {
		snprintf(info, sizeof info, " %lld done  %s", p->done, rate);
	}
	int iw = (int)strlen(info);
	int bw = w - iw - 2;
	int cx = x;
	if (bw >= 5) {
		int filled = pct > 0 ? (int)((long long)bw * pct / 100) : 0;
		tui_text_put(win, y, cx, "[", 0, 1, tui_attr(TUI_ROLE_NORMAL), false);
		cx++;
		wattrset(win, tui_attr(TUI_ROLE_OK));
		for (int i = 0; i < filled; i++)
			mvwaddch(win, y, cx + i, '#');
		wattrset(win, tui_attr(TUI_ROLE_MUTED));
		for (int i = filled; i < bw; i++)
			mvwaddch(win, y, cx + i, '.');
		cx += bw;
		tui_text_put(win, y, cx, "]", 0, 1, tui_attr(TUI_ROLE_NORMAL), false);
		cx++;
	}
	int left = w - (cx - x);
	if (left > 0)
		tui_text_put(win, y, cx, info, 0, left, tui_attr(pct == 100 ? TUI_ROLE_OK : TUI_ROLE_NORMAL), true);
}
