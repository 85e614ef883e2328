/* wizard.h: the wizard's model and frame (header, stage sidebar, log pane, key bar) and its screens. */
#ifndef PGRUNBOOK_SCREENS_WIZARD_H
#define PGRUNBOOK_SCREENS_WIZARD_H

#include <jansson.h>
#include <signal.h>
#include <stdbool.h>
#include <time.h>

#include "core/error.h"
#include "core/events.h"
#include "core/journal.h"
#include "core/plan.h"
#include "tui/app.h"
#include "tui/logpane.h"
#include "tui/theme.h"

/* One entry of the sidebar: a stage of the plan, or the checklist before the first change. */
enum wiz_entry_kind { WIZ_ENTRY_STAGE, WIZ_ENTRY_CHECKLIST };

struct wiz_entry {
	enum wiz_entry_kind kind;
	enum plan_stage     stage;       /* for WIZ_ENTRY_STAGE */
	const char         *name;        /* "preflight", "checklist", ... */
	bool                available;   /* this build can run it (every stage can now) */
};

struct wiz_stage {
	enum run_stage_status status;
	bool                  interrupted;  /* replayed as running: the process ended while it ran */
	long long             elapsed_ms;   /* of the last finished attempt */
	long long             running_since;/* monotonic ms while running, 0 otherwise */
	bool                  over_flagged; /* over_budget journaled for the running attempt */
	char                 *message;      /* last done/failed message, or NULL */
};

struct wiz_tick {
	bool  ticked;
	char *user;   /* who ticked or unticked last, or NULL */
	char *at;     /* RFC 3339, or NULL */
};

/* Queue items: copies of bus events (made in the emitting thread) and worker completions. */
enum wiz_item_kind { WIZ_ITEM_EVENT, WIZ_ITEM_WORKER_DONE };

struct wiz_item {
	enum wiz_item_kind kind;
	enum rb_event_type type;
	char              *stage;
	char              *message;
	enum rb_log_level  level;
	json_t            *data;
	time_t             when;
};

struct wizard;
struct deploy_preview;

/*
 * Runs on the UI thread once the worker is joined, with what its function returned (the collect
 * function owns it). stopped: the wizard is ending (wizard_stop_worker): start nothing new.
 */
typedef void (*wiz_collect_fn)(struct wizard *w, void *result, bool stopped);

/*
 * The migrate stage as its screen shows it. Kept in the wizard (not the screen) so that a deploy
 * is followed while another stage is open. Written on the UI thread only (screens/migrate.c).
 */
struct wiz_migrate {
	struct deploy_preview *pv;        /* the latest preview, or NULL */
	char                  *pv_error;  /* why the latest preview failed, or NULL */
	bool                   pv_ran;    /* a preview was started in this session */
	bool                   deploying; /* the worker runs deploy_run (not a preview) */
	bool                   deployed;  /* a deploy ended in this session: run_ok, result, run_err */
	bool                   run_ok;
	bool                   ask_retry; /* the deploy gave up on a lock: ask to try again once the
	                                     state has been read again */
	json_t                *result;    /* the last deploy's stage_result, or NULL */
	struct rb_error        run_err;   /* the last deploy's error (message empty when none) */
	/* The running (or last) deploy, from its events; reset by its stage_started. */
	json_t                *states;    /* {migration: its last "migration" step state} */
	json_t                *cur_mig;   /* the last "migration" step's data, or NULL */
	json_t                *cur_stmt;  /* the last "statement" step's data, or NULL */
	json_t                *lock_step; /* the last "lock_timeout" statement step, or NULL */
	json_t                *waiting;   /* the last "waiting" progress with blockers, or NULL */
	json_t                *advisory;  /* the last "advisory_lock" progress with a holder, or NULL */
	unsigned               gen;       /* changes whenever anything here changes */
};

/*
 * The recover view of one failed migration (screens/recover.c). Kept in the wizard, not the
 * screen, so that a worker's result finds it whatever the stack holds. UI thread only.
 */
struct wiz_recover {
	char                  *name;      /* the migration the view is open for, or NULL when closed */
	bool                   busy;      /* a recover worker runs */
	bool                   acting;    /* ... and it runs an action (not a look) */
	void                  *queued;    /* a recover job waiting for another stage's worker to end
	                                     (screens/recover.c owns it), or NULL */
	json_t                *info;      /* recover_info_json() of the latest look, or an action's
	                                     state afterwards; NULL before the first look */
	char                  *error;     /* why the latest look failed, or NULL */
	bool                   acted;     /* an action ended while the view was open: */
	int                    act;       /* its enum recover_action */
	bool                   act_ok;
	struct rb_error        act_err;   /* its error (message empty when it succeeded) */
	unsigned               gen;       /* changes whenever anything here changes */
};

/*
 * The sync stage as its screen shows it (screens/sync.c): the plan's tables with their diff
 * counts, the rows kept for the drill-down, what was reviewed, the review file and the apply.
 * Kept in the wizard, not the screen, so that a diff or an apply is followed while another
 * stage is open. UI thread only; st is NULL until the sync screen first opens.
 */
struct wiz_sync_state;
struct wiz_sync {
	struct wiz_sync_state *st;
	unsigned               gen;       /* changes whenever anything here changes */
};

/*
 * The backup and verify stages as their screens show them (screens/backup.c, screens/verify.c).
 * Kept in the wizard so that a backup is followed while another stage is open, and so that
 * verify finds this run's backup (its stage_result, restored from the journal on resume). UI
 * thread only.
 */
struct wiz_backup {
	json_t         *result;    /* the latest backup stage_result (backup_result_json()), or NULL */
	json_t         *progress;  /* the running backup's last progress data, or NULL */
	char           *step;      /* the running backup's last step message, or NULL */
	bool            ran;       /* a backup was started in this session */
	bool            ok;        /* ... and the last one ended verified */
	struct rb_error err;       /* the last one's error (message empty when none) */
	unsigned        gen;       /* changes whenever anything here changes */
};

struct wiz_verify {
	json_t         *result;    /* the latest verify stage_result, or NULL */
	bool            ran;       /* verify was started in this session */
	bool            baseline;  /* ... with this run's backup as the row count baseline */
	struct rb_error err;       /* the last run's error (message empty when none) */
	unsigned        gen;
};

/*
 * The action stages as their screen shows them (screens/action.c, one screen for all four):
 * the staging rehearsal, maintenance on and off, and the guided rollback of the run (not a plan
 * stage: its worker runs as WIZ_ROLLBACK_STAGE, its events have stage "rollback"). Kept in the
 * wizard so that a run is followed while another stage is open and the migrate screen finds the
 * staging estimate. UI thread only.
 */
enum wiz_act { WIZ_ACT_STAGING, WIZ_ACT_MAINT_ON, WIZ_ACT_MAINT_OFF, WIZ_ACT_ROLLBACK, WIZ_ACT_COUNT };

/* The worker "stage" of a rollback: wizard_running(w, WIZ_ROLLBACK_STAGE). */
#define WIZ_ROLLBACK_STAGE PLAN_STAGE_COUNT

struct wiz_action {
	json_t         *look;       /* what the last read-only look found, or NULL: maintenance
	                               {"status", "sessions", "phrase"}; rollback_choice_json() */
	char           *look_error; /* why the last look failed, or NULL */
	void           *choice;     /* rollback: the look's struct rollback_choice (action.c owns it) */
	bool            looking;    /* the worker runs a look */
	bool            ask;        /* ... started by F2: when it ends, the confirmation opens */
	json_t         *steps;      /* the running or last run's own steps: [{"text", "failed"}] */
	char           *now;        /* its latest other line (a statement, a hook's output), or NULL */
	json_t         *result;     /* the last run's result (on resume: the journal's), or NULL */
	bool            ran, ok;    /* a run ended in this session, and how */
	struct rb_error err;        /* its error (message empty when none) */
	unsigned        gen;        /* changes whenever anything here changes */
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
	char                 *exit_note;  /* printed (stderr) by wizard_release(): the freeze left on quit */
	struct notifier      *notifier;   /* borrowed; NULL without webhooks: the header shows its outbox */
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

	/* One worker at a time: a stage cannot start while another one's worker runs. */
	struct tui_worker    *worker;     /* the running worker, or NULL */
	enum plan_stage       worker_stage;   /* the stage it works for */
	wiz_collect_fn        worker_collect; /* called once it is joined */
	struct rb_error       worker_err; /* the last preflight error (message empty when none) */

	struct wiz_migrate    mig;
	struct wiz_recover    rec;
	struct wiz_sync       sync;
	struct wiz_backup     bk;
	struct wiz_verify     vf;
	struct wiz_action     act[WIZ_ACT_COUNT];

	int                   signo;      /* the signal that stopped the wizard, 0 if none */
	WINDOW               *header, *sidebar, *logwin, *keybar;
};

/* The frame (chrome) of the wizard app. */
extern const struct tui_frame_ops wizard_frame;

/* The stage screens; each is in its own screens/<name>.c. */
extern const struct screen_ops wiz_preflight_screen;
extern const struct screen_ops wiz_checklist_screen;
extern const struct screen_ops wiz_migrate_screen;
extern const struct screen_ops wiz_report_screen;
/*
 * The sync stage: the table of tables, the diff on the worker with live counts, the drill-down
 * into a table's rows (reviewing it), and the apply of the reviewed diff behind its phrases.
 */
extern const struct screen_ops wiz_sync_screen;
/*
 * The backup stage: the plan's backup settings, backup_take() on the worker with its progress
 * (F2), the result; the typed waiver (F4). In screens/backup.c.
 */
extern const struct screen_ops wiz_backup_screen;
/*
 * The verify stage: verify_run() on the worker (F2) with this run's backup as the row count
 * baseline, the checks with failures first. In screens/verify.c.
 */
extern const struct screen_ops wiz_verify_screen;
/*
 * The action stages (screens/action.c): staging, maintenance, maintenance_off, and the rollback
 * view pushed over a stage screen (push argument NULL; wizard_rollback_open). Each shows what it
 * will do, asks the phrase core names (F2), runs on the worker with its steps, then the result.
 */
extern const struct screen_ops wiz_action_screen;
/*
 * Pushed over the migrate screen for a failed migration; the push argument is its name (copied).
 * It looks at the migration on the wizard's worker and offers the ways out of core/recover.h.
 */
extern const struct screen_ops wiz_recover_screen;

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
/*
 * Starts fn(arg, cancel) as the wizard's worker for stage; collect(w, result, stopped) runs on the
 * UI thread once it is joined (when its completion reaches the queue, or in wizard_stop_worker).
 * False (and a log line) when a worker runs already or no thread can be created; arg stays the
 * caller's then.
 */
bool wizard_worker_start(struct wizard *w, enum plan_stage stage, tui_worker_fn fn, void *arg,
                         wiz_collect_fn collect);
/* True while the worker runs for stage. */
bool wizard_running(const struct wizard *w, enum plan_stage stage);
/*
 * Starts preflight on a worker unless it runs already (true); false (and a log line) when it
 * cannot start, also while another stage's worker runs.
 */
bool wizard_preflight_start(struct wizard *w);
/* Cancels the worker, if any, and waits for it; its collect runs with stopped = true. */
void wizard_stop_worker(struct wizard *w);
/* Follows a migrate event (a queue item of stage "migrate") into w->mig. In screens/migrate.c. */
void wizard_migrate_track(struct wizard *w, const struct wiz_item *it);
/* Frees what w->mig holds. In screens/migrate.c. */
void wizard_migrate_release(struct wizard *w);
/*
 * Reads the migrations and their state again on the worker (the migrate table refreshes); does
 * nothing while a worker runs. In screens/migrate.c.
 */
void wizard_migrate_refresh(struct wizard *w);
/* Frees what w->rec holds (a queued job too) and clears it. In screens/recover.c. */
void wizard_recover_release(struct wizard *w);
/*
 * Follows a sync event (a queue item of stage "sync": an apply's steps and progress) into w->sync.
 * In screens/sync.c.
 */
void wizard_sync_track(struct wizard *w, const struct wiz_item *it);
/* Frees what w->sync holds. Join the worker first. In screens/sync.c. */
void wizard_sync_release(struct wizard *w);
/*
 * Follows a backup event (a queue item of stage "backup": progress, steps, the result) into
 * w->bk. In screens/backup.c.
 */
void wizard_backup_track(struct wizard *w, const struct wiz_item *it);
/* Frees what w->bk holds. Join the worker first. In screens/backup.c. */
void wizard_backup_release(struct wizard *w);
/* Follows a verify event (its stage_result) into w->vf. In screens/verify.c. */
void wizard_verify_track(struct wizard *w, const struct wiz_item *it);
/* Frees what w->vf holds. Join the worker first. In screens/verify.c. */
void wizard_verify_release(struct wizard *w);
/*
 * Follows an event of an action stage (stage "staging", "maintenance", "maintenance_off" or
 * "rollback") into w->act[a]. In screens/action.c.
 */
void wizard_action_track(struct wizard *w, enum wiz_act a, const struct wiz_item *it);
/* Frees what w->act holds. Join the worker first. In screens/action.c. */
void wizard_action_release(struct wizard *w);
/*
 * The migrate estimate of this run's last complete staging rehearsal (its stage_result, restored
 * from the journal on resume): false when there is none. In screens/action.c.
 */
bool wizard_staging_estimate(const struct wizard *w, long long *migrate_ms, long long *lock_wait_ms);
/* True when guided rollback is offered on the open entry (a stage after backup). */
bool wizard_rollback_offered(const struct wizard *w);
/* True when the rollback view is the top screen. In screens/action.c. */
/*
 * Whether this run froze the target and has not thawed it: maintenance done, maintenance_off not,
 * and no restore rollback of it succeeded.
 */
bool wizard_frozen_by_run(const struct wizard *w);
bool wizard_rollback_shown(const struct wizard *w);
/* Pushes the rollback view over the stage screen (once), which looks at the run at once. */
void wizard_rollback_open(struct wizard *w);

/*
 * The typed backup waiver ("waive-backup <db>"), shared by every screen that offers it: a wrong
 * phrase is journaled by core (confirm_check, never the typed text) and nothing changes; a match
 * in the prompt is compared again by core (the typed text), journaled, and the backup stage of the
 * run is waived (stage_waived with the phrase and who). wizard_waive_backup returns true when the
 * backup is now waived.
 */
/* A wrong phrase typed in any prompt of stage: core journals the miss (never the typed text). */
void wizard_confirm_miss(struct wizard *w, const char *stage, const char *phrase, const char *typed);
bool wizard_waive_backup(struct wizard *w, const char *phrase, const char *typed);

/*
 * The backup precondition as a changing stage's screen words it. wizard_backup_missing: NULL when
 * the run's backup is done or waived, else why not and how to meet it ("<doing> needs a verified
 * backup ... <nothing>"); caller frees. wizard_backup_waiver_open: for a plan without a backup
 * stage, the typed waiver prompt right there ("waive-backup <db>"; details, NULL-terminated, and
 * action describe the step); a wrong phrase is journaled by core; on a waiver that core accepted,
 * go(w) runs. nothing ends the log line of a refused or cancelled waiver ("nothing ran").
 */
char *wizard_backup_missing(const struct wizard *w, const char *db, const char *doing, const char *nothing);
void wizard_backup_waiver_open(struct wizard *w, const char *db, const char *action, const char *const *details,
                               const char *nothing, void (*go)(struct wizard *w));

/*
 * After a stage's worker ended: a stage still shown running (its core call emitted no end, which
 * it always should) is ended as end (STAGE_FAILED or STAGE_DONE) with its elapsed time.
 */
void wizard_stage_end_guard(struct wizard *w, enum plan_stage stage, enum run_stage_status end);

/* Journals where the wizard stands (for resume) with a reason ("closed", "interrupted ..."). */
void wizard_journal_position(struct wizard *w, enum rb_log_level level, const char *why);
/* True when every enabled stage is done. */
bool wizard_all_done(const struct wizard *w);
/* The target environment's entry of the preflight result, or NULL. Borrowed. */
json_t *wizard_target_result(const struct wizard *w);
/* The entry of environment env in the preflight result, or NULL. Borrowed. */
json_t *wizard_env_result(const struct wizard *w, const char *env);
/* The name of a worker's stage: plan_stage_name(), "rollback" for WIZ_ROLLBACK_STAGE. */
const char *wizard_worker_name(enum plan_stage stage);
/*
 * Writes the formatted text wrapped at w - 2 columns into win at column 1 from row *y, advancing
 * *y, stopping before row h (the rest is not shown).
 */
void wizard_put(WINDOW *win, int *y, int h, int w, enum tui_role role, const char *fmt, ...)
	__attribute__((format(printf, 6, 7)));
/* "0:12" for milliseconds into buf. */
char *wizard_duration(long long ms, char *buf, size_t size);
/*
 * How long ago the RFC 3339 UTC time `when` was, in words ("5 min ago", "3 h 10 min ago",
 * "2 days ago") into buf; "at an unknown time" when when is NULL or unparseable. Returns buf.
 */
char *wizard_age(const char *when, char *buf, size_t size);

#endif
