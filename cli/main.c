/* main.c: pgrunbook's entry point: dispatches to the subcommands; the only place that exits. */
#include "config.h"

#include <locale.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include <curl/curl.h>

#include "cli/commands.h"
#include "core/error.h"

struct command {
	const char *name;
	int       (*run)(int argc, char **argv);
	const char *synopsis;
	const char *summary;
};

static const struct command commands[] = {
	{ "check",     cmd_check,     "check --plan FILE [--json]",
	  "validate a plan and print its summary and hash" },
	{ "preflight", cmd_preflight, "preflight --plan FILE [--json] [--no-journal]",
	  "connect to every environment and report what would block a release" },
	{ "backup",    cmd_backup,    "backup [verify BACKUP | verify --latest] --plan FILE [--env NAME] [--json]",
	  "pg_dump the target with a manifest, verified by a test restore; verify a backup" },
	{ "staging",   cmd_staging,   "staging --plan FILE [--backup BACKUP] [--confirm \"replace DB\"] [--json]",
	  "rehearse on staging: restore the backup, time the migrations, diff the sync, verify" },
	{ "maintenance", cmd_maintenance, "maintenance on|off|status --plan FILE [--env NAME] [--confirm PHRASE] [--json]",
	  "freeze writes to the target in journaled layers, thaw them, show the freeze" },
	{ "migrate",   cmd_migrate,   "migrate status|deploy|resolve|recover|lint --plan FILE [--env NAME] [--json]",
	  "Prisma migrations: status, deploy under lock discipline, resolve, recover, lint" },
	{ "sync",      cmd_sync,      "sync diff|apply --plan FILE [--out REVIEW | --review REVIEW --confirm PHRASE] [--json]",
	  "diff the plan's sync tables row by row into a review file; apply a reviewed diff" },
	{ "rollback",  cmd_rollback,  "rollback --plan FILE [--run RUN] [--backup ARCHIVE] [--restore] [--confirm PHRASE] [--json]",
	  "undo a run's changes: down SQL when provably enough, else restore the backup and swap names" },
	{ "verify",    cmd_verify,    "verify [snapshot] --plan FILE [--env NAME] [--baseline SNAP | --out SNAP] [--json]",
	  "check row counts, orphans, INVALID indexes, NOT VALID constraints and custom checks" },
	{ "notify",    cmd_notify,    "notify test --plan FILE [--json] | notify flush [RUN] [--wait SECONDS] [--json]",
	  "send a test event to each webhook; deliver what a run left in its outbox" },
	{ "runs",      cmd_runs,      "runs [--json]",
	  "list runs (id, plan, started, last stage, state)" },
	{ "report",    cmd_report,    "report RUN [--out FILE]",
	  "print the Markdown report of a run from its journal" },
	{ "resume",    cmd_resume,    "resume [RUN] [--plan FILE] [--headless ...]",
	  "reopen a run in the wizard where it was left (default: the newest unfinished)" },
	{ "run",       cmd_run,       "run --plan FILE [--confirm PHRASE]... [--review REVIEW] [--json]",
	  "every stage of the plan in order without the wizard; resume RUN --headless continues it" },
	{ "demo",      cmd_demo,      "demo [--rows N] [--dir DIR] [--no-wizard] | demo --stop",
	  "start a throwaway shop cluster with a plan to try everything on" },
};

static void
usage(FILE *f)
{
	fputs("pgrunbook guides a PostgreSQL release or incident runbook, stage by stage.\n\n"
	      "Usage:\n"
	      "  pgrunbook --plan FILE [--run RUN]\n", f);
	for (size_t i = 0; i < RB_ARRAY_LEN(commands); i++)
		fprintf(f, "  pgrunbook %s\n", commands[i].synopsis);
	fputs("\nCommands:\n", f);
	for (size_t i = 0; i < RB_ARRAY_LEN(commands); i++)
		fprintf(f, "  %-11s %s\n", commands[i].name, commands[i].summary);
	fputs("\nExit codes:\n"
	      "  0  ok\n"
	      "  1  usage or internal error\n"
	      "  2  connection failure\n"
	      "  3  a step failed, was refused or aborted\n"
	      "  4  invalid plan\n"
	      "\nRun \"pgrunbook COMMAND --help\" for a command's options; see pgrunbook(1) and\n"
	      "pgrunbook-plan(5).\n", f);
}

int
main(int argc, char **argv)
{
	setlocale(LC_ALL, "");
	signal(SIGPIPE, SIG_IGN);
	/* once, before any thread: the webhook notifier's sender threads use libcurl */
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0) {
		fputs("pgrunbook: libcurl could not be initialised\n", stderr);
		return RB_EXIT_USAGE;
	}

	if (argc < 2) {
		usage(stderr);
		return RB_EXIT_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
		usage(stdout);
		return RB_EXIT_OK;
	}
	if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0) {
		printf("pgrunbook %s\n", PACKAGE_VERSION);
		return RB_EXIT_OK;
	}
	for (size_t i = 0; i < RB_ARRAY_LEN(commands); i++)
		if (strcmp(argv[1], commands[i].name) == 0)
			return commands[i].run(argc - 1, argv + 1);
	if (strncmp(argv[1], "--plan", 6) == 0 || strncmp(argv[1], "--run", 5) == 0)
		return cmd_wizard(argc, argv);
	return cli_usage_error(NULL, "unknown command \"%s\"", argv[1]);
}
