/* journal.h: per-run directories with an append-only, fsync'd, checksummed JSON-lines journal. */
#ifndef PGRUNBOOK_JOURNAL_H
#define PGRUNBOOK_JOURNAL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "error.h"
#include "events.h"
#include "plan.h"

struct journal;

/*
 * The directory holding run directories: $XDG_STATE_HOME/pgrunbook/runs, or
 * $HOME/.local/state/pgrunbook/runs. Caller frees.
 */
char *journal_runs_dir(void);

/*
 * Creates a new run for the plan under runs_dir (NULL: journal_runs_dir()), mode 0700, and
 * writes its run_started record (plan name, path, hash, user, host, pid). Caller closes with
 * journal_close(). Fails (code RB_EXIT_USAGE) when the directory cannot be created or written.
 */
struct journal *journal_create(const char *runs_dir, const struct plan *plan, struct rb_error *err);

/*
 * Opens an existing run for appending (resume); `run` is a run id under runs_dir or a path.
 * Refuses a journal with a torn or corrupt tail, and one whose plan hash differs from plan's.
 */
struct journal *journal_open(const char *runs_dir, const char *run, const struct plan *plan,
                             struct rb_error *err);

/* Appends one record and fsyncs it. data is borrowed. Thread-safe. */
bool journal_append(struct journal *j, enum rb_event_type type, const char *stage,
                    const char *message, json_t *data, struct rb_error *err);
/* Subscribes the journal to the bus: every event but PROGRESS is appended. */
void journal_attach(struct journal *j, struct events *bus);
const char *journal_run_id(const struct journal *j);
const char *journal_dir(const struct journal *j);
/* Closes the journal (NULL accepted). A write error seen by a subscriber is reported to stderr. */
void journal_close(struct journal *j);

enum run_stage_status {
	STAGE_PENDING, STAGE_RUNNING, STAGE_DONE, STAGE_FAILED, STAGE_SKIPPED, STAGE_WAIVED
};
const char *journal_stage_status_name(enum run_stage_status s);

struct run_stage_state {
	enum run_stage_status status;
	char                 *started;   /* RFC 3339 or NULL */
	char                 *finished;  /* RFC 3339 or NULL */
	char                 *message;   /* last done/failed message or NULL */
	json_t               *result;    /* last stage_result data or NULL */
};

struct journal_record {
	long                seq;
	char               *ts;
	enum rb_event_type  type;
	char               *stage;    /* may be NULL */
	char               *message;  /* may be NULL */
	json_t             *data;     /* may be NULL */
};

/* The state of a run rebuilt by replaying its journal. */
struct run_state {
	char                   *id;
	char                   *dir;
	char                   *plan_name;
	char                   *plan_path;
	char                   *plan_hash;
	char                   *user;
	char                   *started;
	char                   *finished;    /* NULL while running */
	char                   *state;       /* "running", "done", "failed", "aborted", "corrupt" */
	char                   *last_stage;  /* NULL before any stage */
	struct run_stage_state  stages[PLAN_STAGE_COUNT];
	struct journal_record  *records;
	size_t                  nrecords;
	bool                    torn;          /* a torn or corrupt tail was found */
	long                    torn_line;     /* 1-based line of the first bad record */
	char                   *torn_message;  /* what is wrong with it */
};

/*
 * Replays the journal in run_dir into out (free with run_state_free()). Records up to the first
 * bad one are applied; a torn or corrupt record sets out->torn and the message and is never
 * skipped silently. Returns false (err set) only when the journal cannot be read at all.
 */
bool journal_replay(const char *run_dir, struct run_state *out, struct rb_error *err);
void run_state_free(struct run_state *st);

/*
 * Lists every run under runs_dir (NULL: default), newest first. Caller frees each with
 * run_state_free() and the array with free(). An empty or missing directory gives 0 runs.
 */
bool journal_list_runs(const char *runs_dir, struct run_state **out, size_t *n, struct rb_error *err);

/* Resolves a run id (or unique id prefix, or a path) to its directory. Caller frees. */
char *journal_find_run(const char *runs_dir, const char *run, struct rb_error *err);

#endif
