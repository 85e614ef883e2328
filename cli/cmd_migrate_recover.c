/* cmd_migrate_recover.c: `pgrunbook migrate recover`: what is known of a failed migration, and the ways out. */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "core/error.h"
#include "core/events.h"
#include "core/journal.h"
#include "core/recover.h"

static void
usage(FILE *f)
{
	fputs("Usage: pgrunbook migrate recover NAME --plan FILE [--env NAME] [--sql FILE] [--json]\n"
	      "                 [--no-journal]\n"
	      "       pgrunbook migrate recover NAME --plan FILE [--env NAME] --action ACTION\n"
	      "                 [--sql FILE] --confirm \"PHRASE\" [--json]\n\n"
	      "Shows what is known of the failed migration NAME in the environment (default: the\n"
	      "plan's target): its logs and applied steps from _prisma_migrations, each statement with\n"
	      "its lint class, and which of the statements' effects the catalog shows (tables, columns,\n"
	      "types, NOT NULL, indexes and INVALID indexes, constraints, renames, drops; data changes\n"
	      "cannot be checked). Then the ways out, each with whether it is allowed now, what it does\n"
	      "and the phrase it needs:\n\n"
	      "  mark-rolled-back  when none of its effects remain and no INVALID index is left\n"
	      "                    (phrase \"resolve <database>\")\n"
	      "  mark-applied      when every effect that can be checked is present\n"
	      "                    (phrase \"resolve <database>\")\n"
	      "  run-sql           runs a compensating SQL file (--sql FILE) as one transaction under\n"
	      "                    the plan's lock_timeout and statement_timeout, then looks again; it\n"
	      "                    marks nothing (phrase \"deploy <database>\")\n"
	      "  rollback          restore from the backup: a command of its own, pgrunbook rollback\n\n"
	      "Options:\n"
	      "  --plan FILE        the plan\n"
	      "  --env NAME         the environment (default: the target)\n"
	      "  --action ACTION    run one of the actions above\n"
	      "  --sql FILE         the compensating SQL file for run-sql (without --action: its\n"
	      "                     statements are listed in run-sql's preview)\n"
	      "  --confirm PHRASE   the typed confirmation the action needs\n"
	      "  --json             print JSON instead of text\n"
	      "  --no-journal       do not record a run (only without --action)\n\n"
	      "Exit codes: 0 the report was made, or the action ran; 1 usage; 2 connection failure;\n"
	      "3 the migration is not failed or not known, the action was refused (wrong phrase,\n"
	      "not allowed now) or failed; 4 invalid plan.\n", f);
}

/* Prints text line by line: the first after `first`, the others after as many spaces. */
static void
print_indented(const char *first, const char *text)
{
	const char *s = text;
	bool started = false;
	while (*s) {
		size_t n = strcspn(s, "\n");
		printf("%*s%.*s\n", started ? -(int)strlen(first) : 0, started ? "" : first, (int)n, s);
		started = true;
		s += n;
		if (*s == '\n')
			s++;
	}
}

/* The failed row's logs, each line marked. */
static void
print_logs(const char *logs)
{
	const char *s = logs;
	while (*s) {
		size_t n = strcspn(s, "\n");
		printf("    | %.*s\n", (int)n, s);
		s += n;
		if (*s == '\n')
			s++;
	}
}

static const char *
jstr(json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

static long long
jint(json_t *o, const char *key)
{
	return (long long)json_integer_value(json_object_get(o, key));
}

static const char *
seen_text(const char *seen)
{
	if (strcmp(seen, "done") == 0)
		return "done";
	if (strcmp(seen, "not_done") == 0)
		return "not done";
	return "unknown";
}

/* The whole report, from recover_info_json(). */
static void
print_info(json_t *o)
{
	printf("migration %s in %s (database %s, schema %s): %s\n", jstr(o, "migration"), jstr(o, "environment"),
	       jstr(o, "database"), jstr(o, "schema"), jstr(o, "state"));
	if (jstr(o, "started_at"))
		printf("  started:        %s\n", jstr(o, "started_at"));
	printf("  applied steps:  %lld\n", jint(o, "applied_steps"));
	if (jstr(o, "logs")) {
		printf("  logs:\n");
		print_logs(jstr(o, "logs"));
	}
	if (jstr(o, "lint_error"))
		printf("  the script does not parse: %s\n", jstr(o, "lint_error"));

	json_t *stmts = json_object_get(o, "statements");
	json_t *effects = json_object_get(o, "effects");
	json_t *list = json_object_get(effects, "effects");
	printf("statements and their effects:\n");
	json_t *st, *e;
	size_t i, k;
	json_array_foreach(stmts, i, st) {
		const char *sql = jstr(st, "sql");
		size_t eol = strcspn(sql, "\n");
		char cls[32];
		snprintf(cls, sizeof cls, "%s%s%s", jstr(st, "class"), jstr(st, "code") ? " " : "",
		         jstr(st, "code") ? jstr(st, "code") : "");
		printf("  line %-4lld %-15s %.*s%s\n", jint(st, "line"), cls, (int)(eol > 60 ? 60 : eol), sql,
		       eol > 60 || sql[eol] ? " ..." : "");
		json_array_foreach(list, k, e) {
			if ((size_t)jint(e, "statement") != i)
				continue;
			printf("            %-15s %s\n", json_is_true(json_object_get(e, "invalid_index")) ? "INVALID"
			       : seen_text(jstr(e, "seen")), jstr(e, "what"));
		}
	}
	if (json_array_size(stmts) == 0)
		printf("  (none)\n");
	printf("effects: %lld done, %lld not done, %lld unknown", jint(effects, "done"), jint(effects, "not_done"),
	       jint(effects, "unknown"));
	if (jint(effects, "invalid_indexes") > 0)
		printf("; %lld INVALID index%s", jint(effects, "invalid_indexes"),
		       jint(effects, "invalid_indexes") == 1 ? "" : "es");
	printf("\nactions:\n");
	json_t *a;
	json_array_foreach(json_object_get(o, "actions"), i, a) {
		bool allowed = json_is_true(json_object_get(a, "allowed"));
		printf("  %-17s %s%s\n", jstr(a, "action"), allowed ? "allowed" : "refused: ",
		       allowed ? "" : jstr(a, "why_not"));
		if (jstr(a, "warning"))
			printf("  %-17s warning: %s\n", "", jstr(a, "warning"));
		print_indented("                    does: ", jstr(a, "preview"));
		printf("  %-17s phrase: %s\n", "", jstr(a, "phrase"));
	}
}

/* One line of the state afterwards. */
static void
print_after(json_t *o)
{
	json_t *e = json_object_get(o, "effects");
	printf("now: %s is %s; effects %lld done, %lld not done, %lld unknown, %lld INVALID index%s\n",
	       jstr(o, "migration"), jstr(o, "state"), jint(e, "done"), jint(e, "not_done"), jint(e, "unknown"),
	       jint(e, "invalid_indexes"), jint(e, "invalid_indexes") == 1 ? "" : "es");
	json_t *x;
	size_t i;
	json_array_foreach(json_object_get(e, "effects"), i, x)
		printf("  line %-4lld %-9s %s\n", jint(x, "line"), json_is_true(json_object_get(x, "invalid_index"))
		       ? "INVALID" : seen_text(jstr(x, "seen")), jstr(x, "what"));
}

static json_t *
error_json(const struct rb_error *err)
{
	if (err->message == NULL)
		return json_null();
	return json_pack("{s:s, s:s?, s:s?}", "message", err->message, "detail", err->detail, "hint", err->hint);
}

int
cmd_migrate_recover(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"plan", required_argument, NULL, 'p'},
		{"env", required_argument, NULL, 'e'},
		{"json", no_argument, NULL, 'j'},
		{"action", required_argument, NULL, 'a'},
		{"sql", required_argument, NULL, 's'},
		{"confirm", required_argument, NULL, 'c'},
		{"no-journal", no_argument, NULL, 'n'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *plan_file = NULL, *env = NULL, *action = NULL, *sql_file = NULL, *confirm = NULL;
	bool json = false, no_journal = false, confirm_given = false;
	int c;
	optind = 2;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		switch (c) {
		case 'p': plan_file = optarg; break;
		case 'e': env = optarg; break;
		case 'j': json = true; break;
		case 'a': action = optarg; break;
		case 's': sql_file = optarg; break;
		case 'c': confirm = optarg; confirm_given = true; break;
		case 'n': no_journal = true; break;
		case 'h': usage(stdout); return RB_EXIT_OK;
		case ':': return cli_usage_error("migrate", "option \"%s\" needs a value", argv[optind - 1]);
		default: return cli_usage_error("migrate", "unknown option \"%s\"", argv[optind - 1]);
		}
	}
	if (optind >= argc)
		return cli_usage_error("migrate", "recover needs the name of the failed migration");
	const char *name = argv[optind++];
	if (optind < argc)
		return cli_usage_error("migrate", "unexpected argument \"%s\"", argv[optind]);
	if (plan_file == NULL)
		return cli_usage_error("migrate", "--plan FILE is required");
	enum recover_action act = RECOVER_MARK_ROLLED_BACK;
	if (action && !recover_action_from_name(action, &act))
		return cli_usage_error("migrate", "--action takes mark-rolled-back, mark-applied, run-sql or "
		                       "rollback, not \"%s\"", action);
	if (action == NULL && confirm_given)
		return cli_usage_error("migrate", "--confirm belongs to an action (--action)");
	if (action && sql_file && act != RECOVER_RUN_SQL)
		return cli_usage_error("migrate", "--sql belongs to --action run-sql");
	if (action && act == RECOVER_RUN_SQL && sql_file == NULL)
		return cli_usage_error("migrate", "--action run-sql needs --sql FILE");
	if (action && no_journal)
		return cli_usage_error("migrate", "an action is always journaled; --no-journal is for the report");

	struct plan *plan = cli_load_plan(plan_file);
	if (plan == NULL)
		return RB_EXIT_PLAN;
	if (env && plan_env_find(plan, env) == NULL) {
		plan_free(plan);
		return cli_usage_error("migrate", "the plan has no environment \"%s\"", env);
	}
	if (!plan->migrations.present) {
		fprintf(stderr, "pgrunbook: the plan has no migrations section\n");
		plan_free(plan);
		return RB_EXIT_PLAN;
	}

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
	struct rb_ctx ctx = { .bus = bus, .cancel = cli_cancel_begin() };
	const char *where = env ? env : plan->target;
	int code;
	json_t *out = NULL;     /* what --json prints */
	json_t *report = NULL;  /* the report or the state afterwards */
	struct recover_info ri;
	memset(&ri, 0, sizeof ri);
	bool ok;

	if (action == NULL) {
		ok = recover_inspect(plan, env, name, &ctx, &ri, &err);
		if (ok) {
			report = recover_info_json(&ri);
			if (sql_file) {
				/* run-sql's preview lists the file's statements */
				char *pv = recover_preview(&ri, RECOVER_RUN_SQL, sql_file);
				json_object_set_new(json_array_get(json_object_get(report, "actions"), RECOVER_RUN_SQL),
				                    "preview", json_string(pv));
				free(pv);
			}
			code = ri.state == MIG_FAILED ? RB_EXIT_OK : RB_EXIT_STEP;
			if (code != RB_EXIT_OK)
				rb_error_setc(&err, RB_EXIT_STEP, "migration \"%s\" is %s, not failed: there is "
				              "nothing to recover", name, migrations_state_name(ri.state));
			events_log(bus, code ? LOG_LEVEL_WARN : LOG_LEVEL_INFO, "migrate",
			           "recover: %s in %s is %s; effects %zu done, %zu not done, %zu unknown, %zu INVALID",
			           name, where, migrations_state_name(ri.state), ri.effects.done, ri.effects.not_done,
			           ri.effects.unknown, ri.effects.invalid_indexes);
		} else {
			code = err.code ? err.code : RB_EXIT_STEP;
		}
	} else {
		events_log(bus, LOG_LEVEL_INFO, "migrate", "recover: %s %s in %s", action, name, where);
		ok = recover_apply(plan, env, name, act, sql_file, confirm, &ctx, &report, &err);
		code = ok ? RB_EXIT_OK : err.code ? err.code : RB_EXIT_STEP;
	}
	cli_cancel_end();
	lint_shutdown();

	struct rb_error jerr = {0};
	char *fin = xasprintf("migrate recover %s%s%s", name, action ? " " : "", action ? action : "");
	code = cli_run_finish(j, bus, code, fin, &jerr);
	free(fin);
	events_free(bus);

	if (json) {
		if (action == NULL) {
			out = report ? json_incref(report) : json_object();
		} else {
			out = json_pack("{s:s, s:s, s:s?, s:b}", "action", action, "migration", name,
			                "environment", where, "ok", ok);
			json_object_set(out, "after", report ? report : json_null());
		}
		json_object_set_new(out, "exit_code", json_integer(code));
		json_object_set_new(out, "run_id", j ? json_string(journal_run_id(j)) : json_null());
		json_object_set_new(out, "error", error_json(&err));
		cli_print_json(out);
	} else if (action == NULL) {
		if (report)
			print_info(report);
		if (report && code == RB_EXIT_OK)
			printf("run one with: pgrunbook migrate recover %s --plan %s%s%s --action ACTION [--sql FILE] "
			       "--confirm \"PHRASE\"\n", name, plan_file, env ? " --env " : "", env ? env : "");
	} else {
		if (ok)
			printf("%s %s: done\n", action, name);
		if (report)
			print_after(report);
	}
	fflush(stdout);
	if (err.message)
		cli_print_error(&err);
	cli_run_report(j, &jerr);
	rb_error_clear(&jerr);
	journal_close(j);
	json_decref(report);
	recover_info_free(&ri);
	rb_error_clear(&err);
	plan_free(plan);
	return code;
}
