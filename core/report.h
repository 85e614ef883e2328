/* report.h: the Markdown report of a run, rendered from what its journal holds (and its webhook outbox). */
#ifndef PGRUNBOOK_REPORT_H
#define PGRUNBOOK_REPORT_H

#include <stdbool.h>

#include "error.h"
#include "journal.h"
#include "plan.h"

/*
 * Renders st as Markdown (the migration log of seed 003): the run, its stages with their times
 * against the plan's budgets (plan may be NULL: the plan file is gone or changed; then only the
 * over_budget records mark a stage), the staging estimate, maintenance layers, migrations, sync,
 * row counts before (the run's backup) and after (verify), verify's checks, rollback steps,
 * confirmations, the checklist, warnings, each stage's result and the timeline. Caller frees.
 */
char *report_markdown(const struct run_state *st, const struct plan *plan);
/* Writes a report to path (mode 0600; a temporary file, fsync, rename). */
bool report_write(const char *path, const char *md, struct rb_error *err);
/*
 * Replays the run in dir (held by this process: st.in_use is cleared), renders it and writes
 * dir/report.md. Returns the path (caller frees) or NULL with err set; *md_out (may be NULL)
 * gets the Markdown when the replay worked, written or not (caller frees).
 */
char *report_write_run(const char *dir, const struct plan *plan, char **md_out, struct rb_error *err);

#endif
