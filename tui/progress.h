/* progress.h: a progress bar with done/total, a smoothed rate and an ETA on a monotonic clock. */
#ifndef PGRUNBOOK_TUI_PROGRESS_H
#define PGRUNBOOK_TUI_PROGRESS_H

#include <curses.h>
#include <stdbool.h>
#include <stddef.h>

/*
 * The state; read the fields, change them only through the functions. Times are milliseconds
 * of a monotonic clock (time_monotonic_ms()), passed in so the arithmetic is testable.
 */
struct tui_progress {
	long long total;       /* <= 0: unknown */
	long long done;
	long long start_ms;
	long long sample_ms;   /* the last rate sample: when, and done at that time */
	long long sample_done;
	double    rate;        /* smoothed units per second; < 0 until the first sample */
};

/* Samples closer together than this are merged; the smoothing time constant. */
#define TUI_PROGRESS_SAMPLE_MS 500
#define TUI_PROGRESS_TAU_MS    3000

/* Starts (or restarts) at 0 of total at now_ms. */
void tui_progress_start(struct tui_progress *p, long long total, long long now_ms);
/*
 * Records that `done` units are finished at now_ms. Once TUI_PROGRESS_SAMPLE_MS have passed since
 * the last sample, the rate of that interval is blended into the smoothed rate with weight
 * dt / (dt + TUI_PROGRESS_TAU_MS) (the first interval sets it), so the rate follows a real change
 * within seconds but a single slow batch does not make the ETA jump.
 */
void tui_progress_update(struct tui_progress *p, long long done, long long now_ms);
/* Changes the total (for example when a count arrives later). */
void tui_progress_set_total(struct tui_progress *p, long long total);
/*
 * The rate at now_ms in units per second, -1 when unknown. A stall since the last sample counts:
 * the open interval is blended in as if it ended now, so the rate sinks while nothing moves.
 */
double tui_progress_rate(const struct tui_progress *p, long long now_ms);
/* The estimated milliseconds left: 0 when done, -1 when unknown (no total or no rate yet). */
long long tui_progress_eta_ms(const struct tui_progress *p, long long now_ms);
/* 0-100, -1 when the total is unknown. */
int tui_progress_percent(const struct tui_progress *p);
/* "0:07", "4:05", "1:02:03" (hours when needed); "--:--" for a negative value. Returns buf. */
char *tui_progress_duration(long long ms, char *buf, size_t size);
/* "950/s", "12.3k/s", "4.50M/s"; "-" when unknown. Returns buf. */
char *tui_progress_rate_text(double rate, char *buf, size_t size);
/*
 * Draws at (y, x) of win, w columns: "[#####.....]  45%  4500/10000  1.2k/s  ETA 0:05" (the bar
 * takes the room the numbers leave; unknown totals show "4500 done"). now_ms for rate and ETA.
 */
void tui_progress_draw(const struct tui_progress *p, WINDOW *win, int y, int x, int w, long long now_ms);

#endif
