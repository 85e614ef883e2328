/* common.c: plan loading with diagnostics, error and JSON printing for the subcommands. */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "core/error.h"
#include "core/notify.h"

struct plan *
cli_load_plan(const char *path)
{
	struct plan_diags diags = {0};
	struct rb_error err = {0};
	struct plan *p = plan_load(path, &diags, &err);
	if (p == NULL) {
		for (size_t i = 0; i < diags.len; i++)
			fprintf(stderr, "%s\n", diags.items[i].message);
		if (diags.len == 0 || diags.len > 1)
			cli_print_error(&err);
	}
	plan_diags_free(&diags);
	rb_error_clear(&err);
	return p;
}

void
cli_print_error(const struct rb_error *err)
{
	char *s = rb_error_format(err);
	fprintf(stderr, "pgrunbook: %s\n", s);
	free(s);
}

void
cli_print_json(json_t *v)
{
	json_dumpf(v, stdout, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_ENSURE_ASCII);
	fputc('\n', stdout);
	json_decref(v);
}

int
cli_usage_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("pgrunbook: ", stderr);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	if (cmd)
		fprintf(stderr, "\nTry \"pgrunbook %s --help\" for more information.\n", cmd);
	else
		fputs("\nTry \"pgrunbook --help\" for more information.\n", stderr);
	return RB_EXIT_USAGE;
}

static atomic_int cancel_flag;  /* lock-free: safe to store from a signal handler */
static struct sigaction old_int, old_term, old_hup;

static void
on_cancel_signal(int sig)
{
	(void)sig;
	cancel_flag = 1;
}

atomic_int *
cli_cancel_begin(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_cancel_signal;
	sa.sa_flags = SA_RESETHAND;  /* a second Ctrl-C ends the program at once */
	sigemptyset(&sa.sa_mask);
	cancel_flag = 0;
	sigaction(SIGINT, &sa, &old_int);
	sigaction(SIGTERM, &sa, &old_term);
	/* A lost terminal (an ssh session that dropped) cancels cleanly too: children stopped, nothing half-left. */
	sigaction(SIGHUP, &sa, &old_hup);
	return &cancel_flag;
}

void
cli_cancel_end(void)
{
	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGTERM, &old_term, NULL);
	sigaction(SIGHUP, &old_hup, NULL);
}

struct journal *
cli_run_open(const struct plan *plan, struct events *bus, int *code)
{
	struct rb_error err = {0};
	struct journal *j = journal_create(NULL, plan, &err);
	if (j == NULL) {
		cli_print_error(&err);
		*code = err.code ? err.code : RB_EXIT_USAGE;
		rb_error_clear(&err);
		return NULL;
	}
	journal_attach(j, bus);
	cli_notify_attach(plan, j, bus, true, true);
	return j;
}

/* The command's notifier: one run per process (the wizard's or a headless command's). */
static struct notifier *cli_notifier;
static int64_t cli_notifier_drain_ms;
static char *cli_notifier_run;

/* Subscribed instead of notifier_event_fn itself: after cli_notify_detach() events go nowhere, and
 * nothing needs the bus (some commands free it before their last report). */
static void
cli_notify_event(const struct rb_event *ev, void *userdata)
{
	(void)userdata;
	if (cli_notifier)
		notifier_event_fn(ev, cli_notifier);
}

struct notifier *
cli_notify_attach(const struct plan *plan, struct journal *j, struct events *bus, bool echo, bool new_run)
{
	if (plan->nnotify == 0 || cli_notifier != NULL)
		return cli_notifier;
	struct strlist warnings = {0};
	struct rb_error err = {0};
	cli_notifier = notifier_start(plan, journal_dir(j), journal_run_id(j), util_user_name(), &warnings, &err);
	for (size_t i = 0; i < warnings.len; i++) {
		/* journaled once per run (a resumed run's journal has them from its start) */
		if (new_run)
			events_log(bus, LOG_LEVEL_WARN, NULL, "%s", warnings.items[i]);
		if (echo)
			fprintf(stderr, "pgrunbook: warning: %s\n", warnings.items[i]);
	}
	strlist_free(&warnings);
	if (cli_notifier == NULL) {
		events_log(bus, LOG_LEVEL_WARN, NULL, "webhook notifications are off for this run: %s",
		           err.message ? err.message : "the notifier could not start");
		if (echo)
			fprintf(stderr, "pgrunbook: warning: webhook notifications are off for this run: %s\n",
			        err.message ? err.message : "the notifier could not start");
		rb_error_clear(&err);
		return NULL;
	}
	events_subscribe(bus, cli_notify_event, NULL);
	if (new_run) {
		/* journal_create() wrote run_started before the notifier existed: the notifier alone gets it */
		json_t *d = json_pack("{s:s, s:s, s:s}", "plan", plan->name, "target", plan->target, "user",
		                      util_user_name());
		struct rb_event ev = { .type = EV_RUN_STARTED, .message = plan->name, .level = LOG_LEVEL_INFO, .data = d };
		notifier_event_fn(&ev, cli_notifier);
		json_decref(d);
	}
	cli_notifier_drain_ms = notify_drain_ms(plan);
	cli_notifier_run = xstrdup(journal_run_id(j));
	return cli_notifier;
}

void
cli_notify_detach(void)
{
	if (cli_notifier == NULL)
		return;
	struct notifier *n = cli_notifier;
	cli_notifier = NULL;
	/* Ctrl-C ends the wait (the handler only sets the flag; what is left is written for notify flush),
	 * whatever handler the command has: it is put back after. Installed before the line that says
	 * so, and as cli_cancel_begin() does, also where SIGINT was ignored. */
	int was = cancel_flag;
	cancel_flag = 0;
	struct sigaction sa, old;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_cancel_signal;
	sa.sa_flags = SA_RESETHAND;  /* a second Ctrl-C ends the program at once */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, &old);
	struct notify_counts c = {0};
	notifier_counts(n, &c);
	if (c.pending > 0)
		fprintf(stderr, "notify: delivering %u pending notification%s (up to %lld s; Ctrl-C stops waiting: "
		        "pgrunbook notify flush %s delivers the rest)\n", c.pending, c.pending == 1 ? "" : "s",
		        (long long)((cli_notifier_drain_ms + 999) / 1000), cli_notifier_run);
	notifier_cancel_on(n, &cancel_flag);
	char *line = notifier_stop(n, cli_notifier_drain_ms, NULL);
	sigaction(SIGINT, &old, NULL);
	cancel_flag = was || cancel_flag;
	if (line)
		fprintf(stderr, "%s\n", line);
	free(line);
	free(cli_notifier_run);
	cli_notifier_run = NULL;
}

int
cli_run_finish(struct journal *j, struct events *bus, int code, const char *message, struct rb_error *jerr)
{
	json_t *fin = json_pack("{s:s}", "state", code == RB_EXIT_OK ? "done" : "failed");
	events_emitf(bus, EV_RUN_FINISHED, NULL, fin, "%s", message);
	json_decref(fin);
	if (j == NULL || !journal_failed(j, jerr))
		return code;
	if (jerr->message == NULL)
		rb_error_setc(jerr, RB_EXIT_STEP, "unknown error");
	return code == RB_EXIT_OK ? RB_EXIT_STEP : code;
}

void
cli_run_report(const struct journal *j, const struct rb_error *jerr)
{
	if (j == NULL) {
		cli_notify_detach();
		return;
	}
	if (jerr->message) {
		char *m = xasprintf("the journal of run %s could not be written: %s", journal_run_id(j), jerr->message);
		struct rb_error e = { .message = m, .detail = jerr->detail, .hint = jerr->hint };
		cli_print_error(&e);
		free(m);
		cli_notify_detach();
		return;
	}
	fprintf(stderr, "run %s: journaled in %s\n", journal_run_id(j), journal_dir(j));
	cli_notify_detach();
}

bool
cli_parse_seconds(const char *s, double max, long long *ms)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || *end != '\0' || !(v >= 0 && v <= max))
		return false;
	*ms = (long long)(v * 1000.0);
	return true;
}
