/*
 * journal.h: per-run directories with an append-only, fsync'd, checksummed JSON-lines journal.
 *
 * The journal stores exactly what callers give it, forever, in a file other people may read
 * (reports are rendered from it). Callers pass redacted data: never a password, a conninfo with
 * a password, a webhook URL or a token, in a message or in data.
 *
 * Format (one record a line, compact JSON, keys sorted):
 *   {"checksum":"<hex>","data":{...},"level":"warn","message":"...","seq":N,"stage":"...",
 *    "ts":"2026-11-23T15:49:24.123Z","type":"stage_done"}
 * data, level (log records only), message and stage are left out when absent. seq counts from
 * 1. checksum is the SHA-256 hex of the previous record's checksum (64 zeros for the first)
 * followed by the record's text without the checksum member, i.e. "{" followed by everything
 * after the `"checksum":"<hex>",` prefix. The chain makes an altered, deleted, reordered or
 * partially written record detectable; the first record is always run_started. What the
 * chain cannot show, whole records cut off the end (a file restored from an older copy), the
 * sidecar journal.head shows: after each record is fsync'd, its seq and checksum are written
 * there (one pwrite of a fixed-size, self-checked slot, two alternating slots, fdatasync).
 * Replay requires the head to be present and to match: the head may lag the journal by one
 * record (a crash between the two writes), never more, and never be ahead.
 *
 * One writer: a process with the run open holds an OFD write lock (fcntl F_OFD_SETLK, released
 * by the kernel when the process dies) on journal.jsonl and notes its pid in owner.pid. Readers
 * test the lock with F_OFD_GETLK and never take it, so listing runs cannot block a resume.
 */
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
 * writes its run_started record (plan name, path, hash, user, host, pid, version). The run id
 * sorts by time: "20261123T154900Z-1a2b3c". Caller closes with journal_close(). Fails (code
 * RB_EXIT_USAGE) when the directory cannot be created or written; a run directory it created
 * is then removed again. Only plan->name, path and hash are read.
 */
struct journal *journal_create(const char *runs_dir, const struct plan *plan, struct rb_error *err);

/*
 * Opens an existing run for appending (resume); `run` is a run id, a unique id prefix, or a run
 * directory path (see journal_find_run()). Refuses (code RB_EXIT_STEP) a run another process has
 * open, a journal with a torn or corrupt record (journal.head included), a finished run (one
 * with a run_finished record: "run X is finished; start a new run"), and one whose plan hash
 * differs from plan's.
 */
struct journal *journal_open(const char *runs_dir, const char *run, const struct plan *plan,
                             struct rb_error *err);

/*
 * Appends one record, writes it with one write() and fsyncs it before returning. data is
 * borrowed (a JSON object or NULL). Thread-safe. When a write fails the partial line is cut off
 * again, so the file stays a valid journal. After any failed append (write, fsync or
 * journal.head) the journal refuses every later append, so a lost record can never be hidden
 * behind later ones; journal_failed() keeps the first failure of the bus subscriber.
 */
bool journal_append(struct journal *j, enum rb_event_type type, const char *stage,
                    const char *message, json_t *data, struct rb_error *err);
/* Same, from an event; a log event also records its level. */
bool journal_append_event(struct journal *j, const struct rb_event *ev, struct rb_error *err);
/*
 * Subscribes the journal to the bus: every event but PROGRESS is appended. A failed append
 * cannot be returned to the emitter; the first one is kept for journal_failed(). The journal
 * must stay open while the bus can still emit: free the bus (or stop emitting) before
 * journal_close().
 */
void journal_attach(struct journal *j, struct events *bus);
/*
 * Whether an append made by the bus subscriber failed (appends made directly report their own
 * failure to the caller, and make every later append fail). When it did and err is not NULL, err gets
 * a copy of the first failure. Front ends check this before journal_close() and report it.
 */
bool journal_failed(const struct journal *j, struct rb_error *err);
/* Borrowed; valid until journal_close(). */
const char *journal_run_id(const struct journal *j);
const char *journal_dir(const struct journal *j);
/* Closes the journal and releases the run (NULL accepted). Prints nothing. */
void journal_close(struct journal *j);

enum run_stage_status {
	STAGE_PENDING, STAGE_RUNNING, STAGE_DONE, STAGE_FAILED, STAGE_SKIPPED, STAGE_WAIVED
};
/* "pending", "running", "done", "failed", "skipped", "waived". */
const char *journal_stage_status_name(enum run_stage_status s);
/* The stage for a journal stage name (plan_stage_name() strings); false when unknown. */
bool journal_stage_from_name(const char *name, enum plan_stage *out);
/* A JSON string for text that may not be valid UTF-8 (bad bytes become '?'); null for NULL. */
json_t *journal_json_text(const char *s);
/* The journal name of a stage (same strings as plan_stage_name(), without needing plan.c). */
const char *journal_stage_name(enum plan_stage s);

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
	enum rb_log_level   level;    /* for log records; info otherwise */
};

/* The state of a run rebuilt by replaying its journal. */
struct run_state {
	char                   *id;
	char                   *dir;
	char                   *plan_name;
	char                   *plan_path;
	char                   *plan_hash;
	char                   *user;
	char                   *host;
	long                    pid;         /* of the process that started the run */
	char                   *version;     /* pgrunbook version that started the run */
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
	bool                    in_use;        /* a live pgrunbook process has the run open */
	long                    in_use_pid;    /* its pid, when in_use */
};

/*
 * Replays the journal in run_dir into out (free with run_state_free()). Records up to the first
 * bad one are applied; a torn or corrupt record sets out->torn, torn_line and torn_message
 * ("line 7: checksum mismatch (record altered or written partially)"), state "corrupt", and
 * nothing after it is applied. state is "running" until run_finished (then its data.state:
 * "done", "failed" or "aborted"), or "failed" when the last stage record is a stage_failed.
 * Stage names are plan_stage_name() strings; records for other names are kept in records but
 * not in stages[]. The lock is tested before anything is read: an incomplete last line while a
 * live process has the run open is a write in progress and is ignored (in_use is set); damage
 * found while no one held the lock is checked again once if a writer holds it afterwards.
 * journal.head problems are damage too: missing ("journal.head is missing"), ahead of the
 * journal ("journal ends at record N but record M was acknowledged: records were removed"),
 * naming another record at its seq, or more than one record behind; torn_line is then the line
 * after the last record shown. Returns false (err set) only when the journal or its head
 * cannot be read at all.
 */
bool journal_replay(const char *run_dir, struct run_state *out, struct rb_error *err);
void run_state_free(struct run_state *st);

/*
 * Lists every run under runs_dir (NULL: default), newest first (by id). Caller frees each with
 * run_state_free() and the array with free(). An empty or missing directory gives 0 runs. A run
 * directory whose journal cannot be read is listed with state "corrupt" and the reason in
 * torn_message, not dropped.
 */
bool journal_list_runs(const char *runs_dir, struct run_state **out, size_t *n, struct rb_error *err);

/*
 * Resolves a run id (or unique id prefix, or a path containing '/') to its directory. Caller
 * frees. Not found and an ambiguous prefix (the detail lists the candidates) fail with code
 * RB_EXIT_STEP.
 */
char *journal_find_run(const char *runs_dir, const char *run, struct rb_error *err);

#endif
