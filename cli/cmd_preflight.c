/* cmd_preflight.c: `pgrunbook preflight`: check every environment, print a table or JSON. */
#include "config.h"

#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"
#include "core/error.h"
#include "core/events.h"
#include "core/journal.h"
#include "core/preflight.h"

static void
usage(FILE *f)
{
	fputs("Usage: pgrunbook preflight --plan FILE [--json] [--no-journal]\n\n"
	      "Connects to every environment of the plan (read-only) and reports what would block a\n"
	      "release: unreachable servers, a standby as target, failed Prisma migrations, the\n"
	      "migration advisory lock held by another session.\n\n"
	      "Options:\n"
	      "  --plan FILE    the runbook plan\n"
	      "  --json         print the result as JSON\n"
	      "  --no-journal   do not record a run\n"
	      "\nExit codes: 0 ready, 1 usage, 2 an environment is unreachable, 3 blocked,\n"
	      "4 invalid plan.\n", f);
}

static void
print_env(const struct preflight_env *e)
{
	printf("%s [%s]\n", e->name, e->roles[0] ? e->roles : "not used by any stage");
	if (e->where)
		printf("  where:     %s\n", e->where);
	if (!e->reachable || e->server_version == NULL) {
		printf("  error:     %s\n", e->error ? e->error : "unknown error");
		if (e->error_detail)
			printf("  detail:    %s\n", e->error_detail);
	} else {
		char size[32];
		format_bytes((long long)e->db_size_bytes, size, sizeof size);
		printf("  version:   %s\n", e->server_version);
		printf("  user:      %s (superuser: %s)\n", e->current_user, e->superuser ? "yes" : "no");
		printf("  size:      %s\n", size);
		printf("  tables:    %" PRId64 "\n", e->ntables);
		if (e->error)  /* the basics were read, the migrations or the lock were not */
			printf("  prisma:    unknown (could not inspect, see error)\n");
		else if (e->prisma_table)
			printf("  prisma:    applied %" PRId64 ", failed %" PRId64 ", rolled back %" PRId64 "\n",
			       e->prisma_applied, e->prisma_failed, e->prisma_rolled_back);
		else
			printf("  prisma:    no _prisma_migrations in schema %s\n", e->prisma_schema);
		if (e->error)
			printf("  lock:      unknown (could not inspect, see error)\n");
		else if (e->lock_held)
			printf("  lock:      held by pid %d (%s)\n", e->lock_pid,
			       e->lock_application && e->lock_application[0] ? e->lock_application : "no application name");
		else
			printf("  lock:      free\n");
		printf("  sessions:  %" PRId64 " (%" PRId64 " active)\n", e->sessions_total, e->sessions_active);
		printf("  standby:   %s\n", e->standby ? "yes" : "no");
		if (e->error)
			printf("  error:     %s\n", e->error);
		if (e->error_detail)
			printf("  detail:    %s\n", e->error_detail);
	}
	for (size_t i = 0; i < e->warnings.len; i++)
		printf("  WARNING: %s\n", e->warnings.items[i]);
	for (size_t i = 0; i < e->blockers.len; i++)
		printf("  BLOCKED: %s\n", e->blockers.items[i]);
}

static void
print_human(const struct preflight_result *r)
{
	size_t nblockers = 0, nunreachable = 0;
	for (size_t i = 0; i < r->nenvs; i++) {
		if (i)
			putchar('\n');
		print_env(&r->envs[i]);
		nblockers += r->envs[i].blockers.len;
		nunreachable += !r->envs[i].reachable;
	}
	putchar('\n');
	if (r->cancelled)
		printf("preflight: cancelled\n");
	else if (nunreachable)
		printf("preflight: %zu environment%s unreachable\n", nunreachable, nunreachable == 1 ? "" : "s");
	else if (nblockers)
		printf("preflight: blocked (%zu blocker%s)\n", nblockers, nblockers == 1 ? "" : "s");
	else
		printf("preflight: ready\n");
}

int
cmd_preflight(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"plan", required_argument, NULL, 'p'},
		{"json", no_argument, NULL, 'j'},
		{"no-journal", no_argument, NULL, 'n'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *plan_path = NULL;
	bool json = false, no_journal = false;
	int c;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		switch (c) {
		case 'p': plan_path = optarg; break;
		case 'j': json = true; break;
		case 'n': no_journal = true; break;
		case 'h': usage(stdout); return RB_EXIT_OK;
		case ':': return cli_usage_error("preflight", "option \"%s\" needs a value", argv[optind - 1]);
		default: return cli_usage_error("preflight", "unknown option \"%s\"", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return cli_usage_error("preflight", "unexpected argument \"%s\"", argv[optind]);
	if (plan_path == NULL)
		return cli_usage_error("preflight", "--plan FILE is required");

	struct plan *plan = cli_load_plan(plan_path);
	if (plan == NULL)
		return RB_EXIT_PLAN;

	struct rb_error err = {0};
	struct events *bus = events_new();
	struct journal *j = NULL;
	if (!no_journal) {
		int code = RB_EXIT_OK;
		j = cli_run_open(plan, bus, &code);
		if (j == NULL) {
			events_free(bus);
			plan_free(plan);
			return code;
		}
	}

	/* SIGINT/SIGTERM: preflight stops before the next environment. */
	atomic_int *cancel = cli_cancel_begin();

	struct rb_ctx ctx = {.bus = bus, .cancel = cancel};
	struct preflight_result res;
	bool ok = preflight_run(plan, &ctx, &res, &err);

	cli_cancel_end();

	int code = RB_EXIT_OK;
	if (res.cancelled)
		code = RB_EXIT_STEP;
	else if (res.any_unreachable)
		code = RB_EXIT_CONNECT;
	else if (res.any_blocker)
		code = RB_EXIT_STEP;
	else if (!ok)
		code = err.code ? err.code : RB_EXIT_USAGE;

	/* Finish the journal first, so the output below already knows whether it holds. */
	struct rb_error jerr = {0};
	char *fin = xasprintf("preflight %s", code == RB_EXIT_OK ? "ready" : res.cancelled ? "cancelled" :
	                      res.any_unreachable ? "found an unreachable environment" : "blocked");
	code = cli_run_finish(j, bus, code, fin, &jerr);
	free(fin);
	events_free(bus);

	if (json) {
		json_t *o = preflight_to_json(&res);
		json_object_set_new(o, "run_id", j ? json_string(journal_run_id(j)) : json_null());
		json_object_set_new(o, "exit_code", json_integer(code));
		cli_print_json(o);
	} else {
		print_human(&res);
	}
	fflush(stdout);
	if (!ok)
		cli_print_error(&err);

	cli_run_report(j, &jerr);
	rb_error_clear(&jerr);
	journal_close(j);
	preflight_result_free(&res);
	rb_error_clear(&err);
	plan_free(plan);
	return code;
}
