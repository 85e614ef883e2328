/* commands.h: the subcommands of pgrunbook(1) and helpers they share. */
#ifndef PGRUNBOOK_COMMANDS_H
#define PGRUNBOOK_COMMANDS_H

#include <jansson.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "core/error.h"
#include "core/events.h"
#include "core/journal.h"
#include "core/plan.h"

/* Each returns an exit code (enum rb_exit); argv[0] is the subcommand name. */
int cmd_check(int argc, char **argv);
int cmd_preflight(int argc, char **argv);
int cmd_migrate(int argc, char **argv);
int cmd_migrate_recover(int argc, char **argv);
int cmd_runs(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_demo(int argc, char **argv);
int cmd_sync(int argc, char **argv);
int cmd_backup(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_staging(int argc, char **argv);
int cmd_maintenance(int argc, char **argv);
int cmd_rollback(int argc, char **argv);
int cmd_notify(int argc, char **argv);
/* `pgrunbook --plan FILE [--run RUN]` (argv[0] is the program) and `pgrunbook resume [RUN]`. */
int cmd_wizard(int argc, char **argv);
int cmd_resume(int argc, char **argv);
/* `pgrunbook run --plan FILE ...` and `pgrunbook resume RUN --headless ...` (cli/cmd_run.c). */
int cmd_run(int argc, char **argv);
int cli_run_resume(int argc, char **argv);
/*
 * Opens the wizard on the plan: a new run, or the run `run` (id, prefix or directory) reopened.
 * An invalid plan gives RB_EXIT_PLAN and a run that cannot be reopened RB_EXIT_STEP, both before
 * the terminal is touched. Returns the exit code (RB_EXIT_STEP after a signal).
 */
int cli_wizard_run(const char *plan_path, const char *run);

/*
 * Loads the plan, printing every diagnostic to stderr ("FILE:LINE:COL: ...") on failure.
 * Returns NULL on failure; caller frees with plan_free().
 */
struct plan *cli_load_plan(const char *path);
/* Prints "pgrunbook: <message>" plus DETAIL/HINT lines to stderr. */
void cli_print_error(const struct rb_error *err);
/* Prints a JSON value to stdout (indented, sorted keys, trailing newline) and decrefs it. */
void cli_print_json(json_t *v);
/* Parses seconds (a decimal from 0 to max) into *ms; false when s is not such a number. */
bool cli_parse_seconds(const char *s, double max, long long *ms);
/* Prints "pgrunbook: <fmt>" to stderr with a hint to run --help; returns RB_EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * A headless command's run: a new journal attached to bus. NULL when it cannot be created (the
 * error is printed and *code set to the exit code).
 */
struct journal *cli_run_open(const struct plan *plan, struct events *bus, int *code);
/*
 * Ends the run: a run_finished record (state done or failed from code, message) and whether the
 * journal held. Returns code, or RB_EXIT_STEP when the journal broke (a run whose record is
 * incomplete is never reported done); jerr receives the journal's error then.
 */
int cli_run_finish(struct journal *j, struct events *bus, int code, const char *message,
                   struct rb_error *jerr);
/*
 * After the command's output: where the run is journaled, or why its journal failed (stderr);
 * then cli_notify_detach().
 */
void cli_run_report(const struct journal *j, const struct rb_error *jerr);

struct notifier;
/*
 * Starts the plan's webhook notifier (core/notify.h) for run j, subscribed to bus after the
 * journal; nothing when the plan has no notify endpoints. Its warnings (a variable that is not
 * set) are logged on the bus for a new run (a resumed run's journal has them already), and with
 * echo printed to stderr too (for a command whose printer subscribes later). new_run: j was just created, so the notifier gets its run_started (which
 * journal_create() wrote before anyone could subscribe). Returns it, or NULL (none, or it could not start: a warning on the
 * bus says why; the run goes on without notifications). cli_run_open() calls it.
 */
struct notifier *cli_notify_attach(const struct plan *plan, struct journal *j, struct events *bus, bool echo,
                                   bool new_run);
/*
 * Gives the deliveries that are due notify_drain_ms() to go (at most 10 s; when messages are
 * pending it first says so on stderr: "notify: delivering N pending notifications (up to X s;
 * Ctrl-C stops waiting: pgrunbook notify flush RUN delivers the rest)"), stops the notifier and
 * prints its final status line to stderr (notifier_stop(): "notify: 5 sent, 0 pending, 0 failed",
 * the endpoints' problems, and the flush command when messages are left). During the drain a
 * first Ctrl-C (SIGINT) ends the wait, every message still written to the outbox; the command's
 * own SIGINT handler is put back after. Idempotent; nothing when no notifier is attached.
 */
void cli_notify_detach(void);

/*
 * Installs SIGINT/SIGTERM handlers that set the returned flag (pass it as rb_ctx.cancel); a second
 * signal ends the program at once. cli_cancel_end() restores the previous handlers.
 */
atomic_int *cli_cancel_begin(void);
void cli_cancel_end(void);

#endif
