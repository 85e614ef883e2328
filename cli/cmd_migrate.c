/* cmd_migrate.c: `pgrunbook migrate status`: the Prisma migrations folder against an environment. */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "core/db.h"
#include "core/error.h"
#include "core/lint.h"
#include "core/migrations.h"

static void
usage(FILE *f)
{
	fputs("Usage: pgrunbook migrate status --plan FILE [--env NAME] [--json]\n"
	      "       pgrunbook migrate lint --plan FILE [--json] [--fail-on risky|dangerous]\n"
	      "       pgrunbook migrate lint --rules\n\n"
	      "lint parses every migration with PostgreSQL's own parser (libpg_query), without\n"
	      "connecting, and classifies each statement safe, risky or dangerous with a rule code,\n"
	      "why, and a safer alternative (see pgrunbook(1)). A syntax error is reported as\n"
	      "MIGRATION:LINE:COLUMN and exits 3; --fail-on makes findings of that class or worse\n"
	      "exit 3 too.\n\n"
	      "Compares the plan's Prisma migrations folder (migrations.dir) with _prisma_migrations\n"
	      "in the environment (default: the plan's target), read-only: each migration is applied,\n"
	      "pending, failed, modified (its script changed after it was applied) or missing locally.\n"
	      "Checksums are Prisma's (SHA-256 of migration.sql; CRLF and LF line endings both match).\n\n"
	      "Options:\n"
	      "  --plan FILE   the plan\n"
	      "  --env NAME    the environment to compare with (default: the target)\n"
	      "  --json        print JSON instead of a table\n\n"
	      "Exit codes: 0 up to date, 1 usage, 2 connection failure, 3 not up to date (pending,\n"
	      "failed, modified or missing locally) or the folder cannot be read, 4 invalid plan.\n"
	      "deploy, resolve and recover are not part of this build yet.\n", f);
}

static void
print_human(const char *env, const char *where, const struct mig_status *st)
{
	printf("migrations of %s (%s):\n", env, where);
	if (!st->table_exists)
		printf("  (no _prisma_migrations table yet: every migration is pending)\n");
	for (size_t i = 0; i < st->n; i++) {
		const struct mig_status_item *it = &st->items[i];
		printf("  %-16s %s", migrations_state_name(it->state), it->name);
		if (it->state == MIG_FAILED && it->started_at)
			printf("  (started %s, %d step%s applied)", it->started_at, it->applied_steps,
			       it->applied_steps == 1 ? "" : "s");
		else if (it->finished_at && it->state != MIG_PENDING)
			printf("  (%s)", it->finished_at);
		putchar('\n');
		if (it->state == MIG_FAILED && it->logs) {
			char *first = xstrndup(it->logs, strcspn(it->logs, "\n"));
			printf("  %-16s   %s\n", "", first);
			free(first);
		}
	}
	if (migrations_up_to_date(st)) {
		printf("up to date: %zu applied\n", st->count[MIG_APPLIED]);
		return;
	}
	printf("not up to date:");
	const char *sep = " ";
	for (int s = MIG_PENDING; s <= MIG_MISSING_LOCALLY; s++) {
		if (st->count[s] == 0)
			continue;
		printf("%s%zu %s", sep, st->count[s], migrations_state_name((enum mig_state)s));
		sep = ", ";
	}
	putchar('\n');
}

/* Reads the plan's migrations folder; 0 on success, else the exit code (the error is printed). */
static int
load_folder(const struct plan *plan, struct mig_set *local)
{
	memset(local, 0, sizeof *local);
	if (!plan->migrations.present) {
		fprintf(stderr, "pgrunbook: the plan has no migrations section\n");
		return RB_EXIT_PLAN;
	}
	struct rb_error err = {0};
	char *dir = plan_path(plan, plan->migrations.dir);
	bool ok = migrations_load(dir, local, &err);
	free(dir);
	if (ok)
		return 0;
	cli_print_error(&err);
	rb_error_clear(&err);
	migrations_free(local);
	return RB_EXIT_STEP;
}

static int
migrate_status(const struct plan *plan, const char *env, bool json)
{
	struct mig_set local;
	int failed = load_folder(plan, &local);
	if (failed)
		return failed;
	struct rb_error err = {0};
	struct rb_ctx ctx = { .cancel = cli_cancel_begin() };
	PGconn *conn = db_connect_ctx(plan, env, &ctx, &err);
	int code = RB_EXIT_OK;
	if (conn == NULL) {
		cli_print_error(&err);
		code = err.code ? err.code : RB_EXIT_CONNECT;
	} else {
		struct mig_status st;
		if (!migrations_status(conn, plan->migrations.schema, &local, &ctx, &st, &err)) {
			cli_print_error(&err);
			code = RB_EXIT_STEP;
		} else {
			if (json) {
				json_t *o = migrations_status_json(&st);
				json_object_set_new(o, "environment", json_string(env));
				cli_print_json(o);
			} else {
				char *where = db_describe(conn);
				print_human(env, where, &st);
				free(where);
			}
			code = migrations_up_to_date(&st) ? RB_EXIT_OK : RB_EXIT_STEP;
			migrations_status_free(&st);
		}
		PQfinish(conn);
	}
	cli_cancel_end();
	rb_error_clear(&err);
	migrations_free(&local);
	return code;
}

/* Prints one migration's findings: each statement that is not safe, with why and what instead. */
static void
print_lint(const struct lint_result *r)
{
	printf("%-9s %s", lint_class_name(r->class), r->name);
	if (r->needs_statement_mode)
		printf("  (runs statement by statement: it holds statements that cannot run in a transaction)");
	putchar('\n');
	for (size_t i = 0; i < r->n_stmts; i++) {
		const struct lint_stmt *st = &r->stmts[i];
		for (size_t k = 0; k < st->n_findings; k++) {
			const struct lint_finding *f = &st->findings[k];
			printf("  %d:%d %s %s %s%s%s\n", st->line, st->column, f->rule->code,
			       lint_class_name(f->rule->class), f->rule->summary, f->detail ? ": " : "",
			       f->detail ? f->detail : "");
			printf("      why: %s\n      instead: %s\n", f->rule->why, f->rule->alternative);
		}
	}
}

static int
migrate_lint(const struct plan *plan, bool json, int fail_class)
{
	struct mig_set local;
	int failed = load_folder(plan, &local);
	if (failed)
		return failed;
	struct rb_error err = {0};
	int code = RB_EXIT_OK;
	json_t *all = json ? json_array() : NULL;
	for (size_t i = 0; i < local.n; i++) {
		struct lint_result r;
		bool ok = lint_script(local.items[i].name, local.items[i].sql, &r, &err);
		if (!ok) {
			cli_print_error(&err);  /* "name:line:col: syntax error ..." */
			rb_error_clear(&err);
			code = RB_EXIT_STEP;
		} else if ((int)r.class >= fail_class) {
			code = RB_EXIT_STEP;
		}
		if (ok && json)
			json_array_append_new(all, lint_to_json(&r));
		else if (ok)
			print_lint(&r);
		lint_result_free(&r);
	}
	if (json)
		cli_print_json(json_pack("{s:o}", "migrations", all));
	lint_shutdown();
	migrations_free(&local);
	return code;
}

int
cmd_migrate(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"plan", required_argument, NULL, 'p'},
		{"env", required_argument, NULL, 'e'},
		{"json", no_argument, NULL, 'j'},
		{"fail-on", required_argument, NULL, 'f'},
		{"rules", no_argument, NULL, 'r'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		usage(stdout);
		return RB_EXIT_OK;
	}
	if (argc < 2)
		return cli_usage_error("migrate", "a subcommand is required: status or lint");
	const char *sub = argv[1];
	if (strcmp(sub, "status") != 0 && strcmp(sub, "lint") != 0) {
		if (strcmp(sub, "deploy") == 0 || strcmp(sub, "resolve") == 0 || strcmp(sub, "recover") == 0)
			return cli_usage_error("migrate", "\"migrate %s\" is not part of this build yet; "
			                       "\"migrate status\" is", sub);
		return cli_usage_error("migrate", "unknown subcommand \"%s\"", sub);
	}
	const char *plan_file = NULL, *env = NULL, *fail_on = NULL;
	bool json = false, rules = false;
	int c;
	optind = 2;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		switch (c) {
		case 'p': plan_file = optarg; break;
		case 'e': env = optarg; break;
		case 'j': json = true; break;
		case 'f': fail_on = optarg; break;
		case 'r': rules = true; break;
		case 'h': usage(stdout); return RB_EXIT_OK;
		case ':': return cli_usage_error("migrate", "option \"%s\" needs a value", argv[optind - 1]);
		default: return cli_usage_error("migrate", "unknown option \"%s\"", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return cli_usage_error("migrate", "unexpected argument \"%s\"", argv[optind]);
	if (plan_file == NULL && !rules)
		return cli_usage_error("migrate", "--plan FILE is required");
	if (rules) {
		if (strcmp(sub, "lint") != 0)
			return cli_usage_error("migrate", "--rules belongs to \"migrate lint\"");
		size_t n;
		const struct lint_rule *r = lint_rules(&n);
		for (size_t i = 0; i < n; i++)
			printf("%s %s %s\n  why: %s\n  instead: %s\n", r[i].code, lint_class_name(r[i].class),
			       r[i].summary, r[i].why, r[i].alternative);
		return RB_EXIT_OK;
	}
	int fail_class = LINT_DANGEROUS + 1;  /* never */
	if (fail_on) {
		if (strcmp(sub, "lint") != 0)
			return cli_usage_error("migrate", "--fail-on belongs to \"migrate lint\"");
		if (strcmp(fail_on, "risky") == 0)
			fail_class = LINT_RISKY;
		else if (strcmp(fail_on, "dangerous") == 0)
			fail_class = LINT_DANGEROUS;
		else
			return cli_usage_error("migrate", "--fail-on takes risky or dangerous, not \"%s\"", fail_on);
	}
	if (env && strcmp(sub, "lint") == 0)
		return cli_usage_error("migrate", "lint reads no environment; --env belongs to \"migrate status\"");
	struct plan *plan = cli_load_plan(plan_file);
	if (plan == NULL)
		return RB_EXIT_PLAN;
	int code;
	if (strcmp(sub, "lint") == 0)
		code = migrate_lint(plan, json, fail_class);
	else if (env && plan_env_find(plan, env) == NULL)
		code = cli_usage_error("migrate", "the plan has no environment \"%s\"", env);
	else
		code = migrate_status(plan, env ? env : plan->target, json);
	plan_free(plan);
	return code;
}
