/* cmd_wizard.c: `pgrunbook --plan FILE` and `pgrunbook resume`: the interactive wizard. */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/commands.h"
#include "core/error.h"
#include "core/events.h"
#include "core/journal.h"
#include "screens/wizard.h"
#include "tui/app.h"

static void
wizard_usage(FILE *f)
{
	fputs("Usage: pgrunbook --plan FILE [--run RUN]\n\n"
	      "Opens the interactive wizard on the plan: a header with the target, a sidebar of the\n"
	      "plan's stages with their state and time against the budget, the stage screen, a log\n"
	      "pane and the F-key bar (F1 lists every key). Without --run a new run is recorded; with\n"
	      "--run RUN (an id, a unique prefix or a run directory) that run is reopened and the\n"
	      "wizard returns to the stage it was on, with the checklist as it was ticked.\n\n"
	      "Exit codes: 0 quit, 1 usage or no terminal, 3 the run could not be reopened (finished,\n"
	      "changed plan, damaged journal, in use) or a signal stopped the wizard, 4 invalid plan.\n", f);
}

static void
resume_usage(FILE *f)
{
	fputs("Usage: pgrunbook resume [RUN] [--plan FILE]\n"
	      "       pgrunbook resume [RUN] --headless [--plan FILE] [--confirm PHRASE]... [--review REVIEW] [--json]\n\n"
	      "Reopens a run in the wizard where it was left. RUN is a run id, a unique prefix of one or\n"
	      "a run directory; without it, the newest run that is not finished. The plan is the one the\n"
	      "run recorded unless --plan names it (it must be unchanged: its hash is checked).\n"
	      "With --headless the run is continued without the wizard from its first stage not done, as\n"
	      "pgrunbook run would, with the same options (see pgrunbook run --help).\n\n"
	      "Exit codes: 0 quit, 1 usage or no terminal, 3 no run to resume or it cannot be reopened\n"
	      "(finished, changed plan, damaged journal, in use) or a signal stopped the wizard,\n"
	      "4 invalid plan.\n", f);
}

static int
error_exit(struct rb_error *err, int fallback)
{
	cli_print_error(err);
	int code = err->code ? err->code : fallback;
	rb_error_clear(err);
	return code;
}

int
cli_wizard_run(const char *plan_path, const char *run)
{
	struct plan *plan = cli_load_plan(plan_path);
	if (plan == NULL)
		return RB_EXIT_PLAN;

	struct rb_error err = {0};
	struct journal *j = NULL;
	struct run_state st;
	bool resumed = run != NULL;
	if (resumed) {
		j = journal_open(NULL, run, plan, &err);
		if (j == NULL) {
			plan_free(plan);
			return error_exit(&err, RB_EXIT_STEP);
		}
		if (!journal_replay(journal_dir(j), &st, &err) || st.torn) {
			if (st.torn && err.message == NULL)
				rb_error_setc(&err, RB_EXIT_STEP, "the journal of run %s is damaged: %s",
				              journal_run_id(j), st.torn_message ? st.torn_message : "unreadable");
			run_state_free(&st);
			journal_close(j);
			plan_free(plan);
			return error_exit(&err, RB_EXIT_STEP);
		}
	}
	if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO)) {
		fprintf(stderr, "pgrunbook: the wizard needs a terminal on standard input and output\n"
		        "HINT: Use \"pgrunbook check\" and \"pgrunbook preflight\" in scripts.\n");
		if (resumed) {
			run_state_free(&st);
			journal_close(j);
		}
		plan_free(plan);
		return RB_EXIT_USAGE;
	}
	if (!resumed) {
		j = journal_create(NULL, plan, &err);
		if (j == NULL) {
			plan_free(plan);
			return error_exit(&err, RB_EXIT_USAGE);
		}
	}

	struct events *bus = events_new();
	journal_attach(j, bus);
	struct wizard *wz = xmalloc(sizeof *wz);
	wizard_init(wz, plan, j, bus, resumed ? &st : NULL);
	if (resumed)
		run_state_free(&st);
	struct tui_app *app = tui_app_new(&wizard_frame, wz, wizard_item_free);
	int code = RB_EXIT_OK;
	if (app == NULL) {
		fprintf(stderr, "pgrunbook: cannot create the wizard's event queue\n");
		code = RB_EXIT_USAGE;
	} else {
		wz->app = app;
		events_subscribe(bus, wizard_on_event, wz);
		/* after the wizard: the notifier's warnings (a variable not set) reach its log pane */
		wz->notifier = cli_notify_attach(plan, j, bus, false, !resumed);
		events_log(bus, LOG_LEVEL_INFO, NULL, "wizard %s", resumed ? "resumed" : "opened");
		int first = wizard_gate(wz, wz->current);
		wz->current = first;
		int r = tui_app_run(app, wizard_entry_ops(wz, first), &wz->entries[first]);
		/* The terminal is restored here. */
		wizard_stop_worker(wz);
		if (r == TUI_RUN_SIGNAL) {
			fprintf(stderr, "pgrunbook: interrupted by signal %d; run %s stays resumable: "
			        "pgrunbook resume %s\n", tui_app_signal(app), journal_run_id(j), journal_run_id(j));
			code = RB_EXIT_STEP;
		} else if (r == TUI_RUN_ERROR) {
			fprintf(stderr, "pgrunbook: %s\n", tui_app_error(app) ? tui_app_error(app) : "the terminal failed");
			code = RB_EXIT_USAGE;
		} else {
			code = r;
		}
		events_unsubscribe(bus, wizard_on_event, wz);
		wz->app = NULL;
	}
	/* the terminal is back: the notifier's last deliveries and its line are seen */
	wz->notifier = NULL;
	cli_notify_detach();
	events_free(bus);
	struct rb_error jerr = {0};
	if (journal_failed(j, &jerr)) {
		char *m = xasprintf("the journal of run %s could not be written: %s", journal_run_id(j),
		                    jerr.message ? jerr.message : "unknown error");
		free(jerr.message);
		jerr.message = m;
		cli_print_error(&jerr);
		rb_error_clear(&jerr);
		if (code == RB_EXIT_OK)
			code = RB_EXIT_STEP;
	} else if (code == RB_EXIT_OK) {
		printf("run %s: journaled in %s; resume it with \"pgrunbook resume %s\"\n", journal_run_id(j),
		       journal_dir(j), journal_run_id(j));
	}
	tui_app_free(app);
	wizard_release(wz);
	free(wz);
	journal_close(j);
	plan_free(plan);
	return code;
}

int
cmd_wizard(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "plan", required_argument, NULL, 'p' },
		{ "run",  required_argument, NULL, 'r' },
		{ "help", no_argument,       NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *plan_path = NULL, *run = NULL;
	int c;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		switch (c) {
		case 'p': plan_path = optarg; break;
		case 'r': run = optarg; break;
		case 'h': wizard_usage(stdout); return RB_EXIT_OK;
		case ':': return cli_usage_error(NULL, "option \"%s\" needs a value", argv[optind - 1]);
		default: return cli_usage_error(NULL, "unknown option \"%s\"", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return cli_usage_error(NULL, "unexpected argument \"%s\"", argv[optind]);
	if (plan_path == NULL)
		return cli_usage_error(NULL, "--plan FILE is required");
	if (run != NULL && run[0] == '\0')
		return cli_usage_error(NULL, "--run needs a run id");
	return cli_wizard_run(plan_path, run);
}

int
cmd_resume(int argc, char **argv)
{
	/* Without the wizard: cli/cmd_run.c continues the run as `pgrunbook run` would. */
	for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
		if (strcmp(argv[i], "--headless") == 0)
			return cli_run_resume(argc, argv);
	static const struct option longopts[] = {
		{ "plan", required_argument, NULL, 'p' },
		{ "help", no_argument,       NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *plan_path = NULL, *run = NULL;
	int c;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		switch (c) {
		case 'p': plan_path = optarg; break;
		case 'h': resume_usage(stdout); return RB_EXIT_OK;
		case ':': return cli_usage_error("resume", "option \"%s\" needs a value", argv[optind - 1]);
		default: return cli_usage_error("resume", "unknown option \"%s\"", argv[optind - 1]);
		}
	}
	if (optind < argc)
		run = argv[optind++];
	if (optind < argc)
		return cli_usage_error("resume", "unexpected argument \"%s\"", argv[optind]);

	struct rb_error err = {0};
	char *dir = NULL;
	if (run != NULL) {
		dir = journal_find_run(NULL, run, &err);
		if (dir == NULL)
			return error_exit(&err, RB_EXIT_STEP);
	} else {
		struct run_state *runs = NULL;
		size_t n = 0;
		if (!journal_list_runs(NULL, &runs, &n, &err))
			return error_exit(&err, RB_EXIT_USAGE);
		for (size_t i = 0; i < n && dir == NULL; i++)
			if (runs[i].finished == NULL)
				dir = xstrdup(runs[i].dir);
		for (size_t i = 0; i < n; i++)
			run_state_free(&runs[i]);
		free(runs);
		if (dir == NULL) {
			rb_error_setc(&err, RB_EXIT_STEP, "no run to resume");
			rb_error_detail(&err, "Every recorded run is finished, or there is none yet.");
			rb_error_hint(&err, "Start a new run with \"pgrunbook --plan FILE\".");
			return error_exit(&err, RB_EXIT_STEP);
		}
	}
	char *recorded = NULL;
	if (plan_path == NULL) {
		struct run_state st;
		if (!journal_replay(dir, &st, &err)) {
			run_state_free(&st);
			free(dir);
			return error_exit(&err, RB_EXIT_STEP);
		}
		if (st.plan_path == NULL) {
			rb_error_setc(&err, RB_EXIT_STEP, "run %s does not name its plan", st.id);
			rb_error_hint(&err, "Give the plan with --plan FILE.");
			run_state_free(&st);
			free(dir);
			return error_exit(&err, RB_EXIT_STEP);
		}
		recorded = xstrdup(st.plan_path);
		run_state_free(&st);
	}
	int code = cli_wizard_run(plan_path ? plan_path : recorded, dir);
	free(recorded);
	free(dir);
	return code;
}
