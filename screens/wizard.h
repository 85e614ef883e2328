/* wizard.h: the wizard's model and frame (header, stage sidebar, log pane, key bar) and its screens. */
#ifndef PGRUNBOOK_SCREENS_WIZARD_H
#define PGRUNBOOK_SCREENS_WIZARD_H

#include <jansson.h>
#include <signal.h>
#include <stdbool.h>
#include <time.h>

#include "core/events.h"
#include "core/journal.h"
#include "core/plan.h"
#include "tui/app.h"
#include "tui/logpane.h"

/* One entry of the sidebar: a stage of the plan, or the checklist before the first change. */
enum wiz_entry_kind { WIZ_ENTRY_STAGE, WIZ_ENTRY_CHECKLIST };

struct wiz_entry {
	enum wiz_entry_kind kind;
	enum plan_stage     stage;       /* for WIZ_ENTRY_STAGE */
	const char         *name;        /* "preflight", "checklist", ... */
	bool                available;   /* this build can run it (preflight, report, checklist) */
};

struct wiz_stage {
	enum run_stage_status status;
	bool                  interrupted;  /* replayed as running: the process ended while it ran */
	long long             elapsed_ms;   /* of the last finished attempt */
	long long             running_since;/* monotonic ms while running, 0 otherwise */
	char                 *message;      /* last done/failed message, or NULL */
};

struct wiz_tick {
	bool  ticked;
	char *user;   /* who ticked or unticked last, or NULL */
	char *at;     /* RFC 3339, or NULL */
};

/* Queue items: copies of bus events (made in the emitting thread) and worker completions. */
enum wiz_item_kind { WIZ_ITEM_EVENT, WIZ_ITEM_PREFLIGHT_DONE };

struct wiz_item {
	enum wiz_item_kind kind;
	enum rb_event_type type;
	char              *stage;
	char              *message;
	enum rb_log_level  level;
	json_t            *data;
	time_t             when;
};

/*
 * The wizard: the plan, the run and what the screens show. Owned by cli/cmd_wizard.c; the frame
 * and the screens reach it through tui_app_userdata(). Everything here is touched on the UI
 * thread only, except `bus` (emitting is thread-safe) and `cancel`, which the worker reads.
 */
struct wizard {
	struct tui_app       *app;
	const struct plan    *plan;       /* borrowed */
	struct journal       *journal;    /* borrowed */
	struct events        *bus;        /* borrowed; the journal and the wizard subscribe to it */
	const char           *run_id;     /* borrowed from the journal */
	struct tui_log       *log;

	struct wiz_entry      entries[PLAN_STAGE_COUNT + 1];
	int                   nentries;
	int                   current;    /* index of the open entry */
	struct wiz_stage      stages[PLAN_STAGE_COUNT];
	struct wiz_tick      *ticks;      /* plan->checklist_before.len of them */
	char                 *notice;     /* a message for the checklist screen (why it opened), or NULL */

	json_t               *preflight;  /* the latest preflight result (stage_result data) or NULL */
	json_t               *pf_partial; /* the running preflight's environments checked so far (array) */
	char                **pf_lines;   /* per plan environment: its line of the running preflight */
	enum rb_log_level    *pf_levels;
	unsigned              pf_gen;     /* changes whenever anything preflight shows changes */
	bool                  pf_ran;     /* preflight was started in this session */

	struct tui_worker    *worker;     /* the running preflight, or NULL */
	struct rb_error       worker_err; /* the last preflight error (message empty when none) */

	int                   signo;      /* the signal that stopped the wizard, 0 if none */
	WINDOW               *header, *sidebar, *logwin, *keybar;
};

/* The frame (chrome) of the wizard app. */
extern const struct tui_frame_ops wizard_frame;

/* The stage screens; each is in its own screens/<name>.c. */
extern const struct screen_ops wiz_preflight_screen;
extern const struct screen_ops wiz_checklist_screen;
extern const struct screen_ops wiz_unavailable_screen;
extern const struct screen_ops wiz_report_screen;

/*
 * Sets up w for the plan and run (entries, pending stages, unticked checklist, the log). When st
 * is not NULL (a resumed run), restores the stage states, the checklist ticks, the latest
 * preflight result, the log and the open stage from it. Free with wizard_release().
 */
void wizard_init(struct wizard *w, const struct plan *plan, struct journal *j, struct events *bus,
                 const struct run_state *st);
/* Frees what wizard_init allocated (not w itself). Join the worker first (wizard_stop_worker). */
void wizard_release(struct wizard *w);
/* The bus subscriber: copies the event into a wiz_item and posts it to the app's queue. */
void wizard_on_event(const struct rb_event *ev, void *userdata);
/* Frees a wiz_item (the app's item_free). */
void wizard_item_free(void *item);
/* The screen ops and push argument for entry i. */
const struct screen_ops *wizard_entry_ops(const struct wizard *w, int i);
/*
 * The entry that opens when i is asked for: i itself, or the checklist (with w->notice saying
 * why) when i is a changing stage and the checklist is not fully ticked.
 */
int wizard_gate(struct wizard *w, int i);
/* Opens entry wizard_gate(w, i) in the main region (replacing the open stage screen). */
void wizard_open(struct wizard *w, int i);
/* The index of the checklist entry, -1 when the plan has none. */
int wizard_checklist_index(const struct wizard *w);
/* How many checklist items are ticked. */
size_t wizard_ticked_count(const struct wizard *w);
/* Ticks or unticks item i and journals it (checklist_tick with item, index, ticked, user, at). */
void wizard_tick(struct wizard *w, size_t i, bool ticked);
/* Starts preflight on a worker unless one runs; false (and a log line) when it cannot start. */
bool wizard_preflight_start(struct wizard *w);
/* Cancels the worker, if any, and waits for it. */
void wizard_stop_worker(struct wizard *w);
/* Journals where the wizard stands (for resume) with a reason ("closed", "interrupted ..."). */
void wizard_journal_position(struct wizard *w, enum rb_log_level level, const char *why);
/* True when every enabled stage is done. */
bool wizard_all_done(const struct wizard *w);
/* The target environment's entry of the preflight result, or NULL. Borrowed. */
json_t *wizard_target_result(const struct wizard *w);
/* "0:12" for milliseconds into buf. */
char *wizard_duration(long long ms, char *buf, size_t size);

#endif
