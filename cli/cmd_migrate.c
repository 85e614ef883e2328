/* cmd_migrate.c: `pgrunbook migrate status|deploy|resolve|lint`: Prisma migrations against an environment. */
#include "config.h"

#include <getopt.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "core/confirm.h"
#include "core/db.h"
#include "core/deploy.h"
#include "core/error.h"
#include "core/events.h"
#include "core/journal.h"
#include "core/lint.h"
#include "core/migrations.h"

static void
usage(FILE *f)
{
	fputs("Usage: pgrunbook migrate status --plan FILE [--env NAME] [--json]\n"
	      "       pgrunbook migrate deploy --plan FILE [--env NAME] [--json] [--confirm \"deploy DB\"]\n"
	      "                                [--waive-backup \"waive-backup DB\"] [--lock-wait SECONDS]\n"
	      "       pgrunbook migrate resolve --applied NAME|--rolled-back NAME --plan FILE [--env NAME]\n"
	      "                                 --confirm \"resolve DB\" [--lock-wait SECONDS] [--json]\n"
	      "       pgrunbook migrate recover NAME --plan FILE [--env NAME] [--sql FILE] [--json]\n"
	      "       pgrunbook migrate recover NAME --plan FILE [--env NAME] --action ACTION\n"
	      "                                 [--sql FILE] --confirm PHRASE [--json]\n"
	      "       pgrunbook migrate lint --plan FILE [--json] [--fail-on risky|dangerous]\n"
	      "       pgrunbook migrate lint --rules\n\n"
	      "status compares the plan's Prisma migrations folder (migrations.dir) with _prisma_migrations\n"
	      "in the environment (default: the plan's target), read-only: each migration is applied,\n"
	      "pending, failed, modified (its script changed after it was applied) or missing locally.\n"
	      "Checksums are Prisma's (SHA-256 of migration.sql; CRLF and LF line endings both match).\n\n"
	      "deploy applies the pending migrations in order, recording them in _prisma_migrations as\n"
	      "Prisma does, while holding Prisma's advisory lock (72707369). A script runs as one\n"
	      "transaction, or statement by statement when it holds statements that cannot run in one\n"
	      "(CREATE INDEX CONCURRENTLY, ...). Every statement runs under the plan's lock_timeout and\n"
	      "statement_timeout; a lock timeout is retried after 1, 2, 4, 8, 16 s (migrations.retries)\n"
	      "and the blocking sessions are shown. It refuses to start while a migration is failed,\n"
	      "modified or missing locally; dangerous statements (see lint) need --confirm \"deploy DB\";\n"
	      "without a verified backup of the target taken by \"pgrunbook backup\" within\n"
	      "backup.max_age it needs --waive-backup \"waive-backup DB\". The deploy is journaled\n"
	      "as a run.\n\n"
	      "resolve records a migration as applied (--applied) or a failed one as rolled back\n"
	      "(--rolled-back), as \"prisma migrate resolve\" does, under the migration lock; it needs\n"
	      "--confirm \"resolve DB\".\n\n"
	      "recover shows what is known of a failed migration (its logs, its statements, which of\n"
	      "their effects the catalog shows) and the ways out; with --action it runs one:\n"
	      "mark-rolled-back, mark-applied (each only after checking the catalog; --confirm\n"
	      "\"resolve DB\"), run-sql --sql FILE (a compensating script; --confirm \"deploy DB\") or\n"
	      "rollback (restore-based: use pgrunbook rollback).\n\n"
	      "lint parses every migration with PostgreSQL's own parser (libpg_query), without\n"
	      "connecting, and classifies each statement safe, risky or dangerous with a rule code,\n"
	      "why, and a safer alternative (see pgrunbook(1)). A syntax error is reported as\n"
	      "MIGRATION:LINE:COLUMN and exits 3; --fail-on makes findings of that class or worse\n"
	      "exit 3 too.\n\n"
	      "Options:\n"
	      "  --plan FILE            the plan\n"
	      "  --env NAME             the environment (default: the target)\n"
	      "  --json                 print JSON instead of text\n"
	      "  --confirm PHRASE       the typed confirmation a dangerous step needs\n"
	      "  --waive-backup PHRASE  deploy without a verified backup (\"waive-backup DB\")\n"
	      "  --applied NAME         resolve: record NAME as applied\n"
	      "  --rolled-back NAME     resolve: record the failed NAME as rolled back\n"
	      "  --lock-wait SECONDS    how long to wait for the migration lock (default 10)\n\n"
	      "Exit codes: 0 done (status: up to date), 1 usage, 2 connection failure, 3 not up to\n"
	      "date (status), refused, failed or blocked (deploy, resolve, recover), 4 invalid plan.\n", f);
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


/* --- deploy and resolve: journaled runs --- */

struct printer {
	bool json;
	bool waiting_shown;
	bool lock_shown;
};

/* Prints the deploy's progress as it happens (text mode): migration steps, lock waits, warnings. */
static void
print_event(const struct rb_event *ev, void *userdata)
{
	struct printer *pr = userdata;
	if (pr->json)
		return;
	if (ev->type == EV_STEP && ev->message) {
		printf("  %s\n", ev->message);
	} else if (ev->type == EV_PROGRESS && ev->data) {
		const char *kind = json_string_value(json_object_get(ev->data, "kind"));
		json_t *bl = json_object_get(ev->data, "blockers");
		json_t *holder = json_object_get(ev->data, "holder");
		if (kind && strcmp(kind, "waiting") == 0) {
			if (json_array_size(bl) > 0 && !pr->waiting_shown) {
				json_t *b = json_array_get(bl, 0);
				printf("  statement %" JSON_INTEGER_FORMAT " waits for a lock held by pid %" JSON_INTEGER_FORMAT
				       " (application \"%s\", %s): %s\n",
				       json_integer_value(json_object_get(ev->data, "statement")),
				       json_integer_value(json_object_get(b, "pid")),
				       json_string_value(json_object_get(b, "application")),
				       json_string_value(json_object_get(b, "state")),
				       json_string_value(json_object_get(b, "query")));
				pr->waiting_shown = true;
			} else if (json_array_size(bl) == 0) {
				pr->waiting_shown = false;
			}
		} else if (kind && strcmp(kind, "advisory_lock") == 0 && json_is_object(holder) && !pr->lock_shown) {
			printf("  waiting for the migration lock, held by pid %" JSON_INTEGER_FORMAT " (application \"%s\")\n",
			       json_integer_value(json_object_get(holder, "pid")),
			       json_string_value(json_object_get(holder, "application")));
			pr->lock_shown = true;
		}
	} else if (ev->type == EV_LOG && ev->level >= LOG_LEVEL_WARN && ev->message) {
		fprintf(stderr, "pgrunbook: %s\n", ev->message);
	}
	fflush(stdout);
}

static int
migrate_deploy(const struct plan *plan, const char *env, bool json, const char *confirm, const char *waive,
               long long lock_wait_ms)
{
	struct events *bus = events_new();
	int code = RB_EXIT_OK;
	struct journal *j = cli_run_open(plan, bus, &code);
	if (j == NULL) {
		events_free(bus);
		return code;
	}
	struct printer pr = { .json = json };
	events_subscribe(bus, print_event, &pr);
	events_log(bus, LOG_LEVEL_INFO, NULL, "pgrunbook migrate deploy to %s, by %s", env, util_user_name());

	struct rb_ctx ctx = { .bus = bus, .cancel = cli_cancel_begin() };
	struct deploy_opts opts = { .env = env, .confirm = confirm, .waive_backup = waive, .who = util_user_name(),
	                            .advisory_wait_ms = lock_wait_ms > 0 ? lock_wait_ms : lock_wait_ms == 0 ? 1 : 0 };
	struct rb_error err = {0};
	json_t *result = NULL;
	bool ok = deploy_run(plan, &opts, &ctx, &result, &err);
	cli_cancel_end();
	code = ok ? RB_EXIT_OK : err.code ? err.code : RB_EXIT_STEP;
	lint_shutdown();
	struct rb_error jerr = {0};
	code = cli_run_finish(j, bus, code, ok ? "migrate deploy done" : "migrate deploy failed", &jerr);
	if (json) {
		json_object_set_new(result, "run_id", json_string(journal_run_id(j)));
		json_object_set_new(result, "exit_code", json_integer(code));
		cli_print_json(result);
		result = NULL;
	} else if (ok) {
		size_t n = json_array_size(json_object_get(result, "applied"));
		if (n)
			printf("%zu migration%s applied to %s (%s)\n", n, n == 1 ? "" : "s", env,
			       json_string_value(json_object_get(result, "database")));
		else
			printf("%s is up to date: nothing to deploy\n", env);
	}
	fflush(stdout);
	if (!ok)
		cli_print_error(&err);
	cli_run_report(j, &jerr);
	rb_error_clear(&jerr);
	json_decref(result);
	rb_error_clear(&err);
	events_free(bus);
	journal_close(j);
	return code;
}

static int
migrate_resolve(const struct plan *plan, const char *env, bool json, const char *applied,
                const char *rolled_back, const char *confirm, long long lock_wait_ms)
{
	struct mig_set local;
	int code = load_folder(plan, &local);
	if (code)
		return code;
	const char *name = applied ? applied : rolled_back;
	const struct mig_local *m = NULL;
	for (size_t i = 0; i < local.n; i++)
		if (strcmp(local.items[i].name, name) == 0)
			m = &local.items[i];
	if (applied && m == NULL) {
		fprintf(stderr, "pgrunbook: migration %s is not in the migrations folder %s\n"
		        "HINT: --applied records the local script's checksum, so the migration must exist locally.\n",
		        name, local.dir);
		migrations_free(&local);
		return RB_EXIT_STEP;
	}
	struct events *bus = events_new();
	struct journal *j = cli_run_open(plan, bus, &code);
	if (j == NULL) {
		events_free(bus);
		migrations_free(&local);
		return code;
	}
	const char *as = applied ? "applied" : "rolled_back";
	events_log(bus, LOG_LEVEL_INFO, NULL, "pgrunbook migrate resolve --%s %s in %s, by %s",
	           applied ? "applied" : "rolled-back", name, env, util_user_name());
	struct rb_error err = {0};
	struct rb_ctx ctx = { .bus = bus, .cancel = cli_cancel_begin() };
	PGconn *conn = db_connect_ctx(plan, env, &ctx, &err);
	bool ok = conn != NULL;
	char *phrase = NULL;
	if (ok) {
		phrase = confirm_phrase("resolve", PQdb(conn));
		ok = confirm_check(&ctx, "migrate", phrase, confirm, &err);
	}
	/* Never beside a running deploy (pgrunbook's or Prisma's): resolve under the migration lock. */
	if (ok)
		ok = deploy_lock_take(conn, lock_wait_ms > 0 ? lock_wait_ms : lock_wait_ms == 0 ? 1 : 0, &ctx, &err);
	if (ok)
		ok = applied ? migrations_mark_applied(conn, plan->migrations.schema, m, &ctx, &err)
		             : migrations_mark_rolled_back(conn, plan->migrations.schema, name, &ctx, &err);
	json_t *data = json_pack("{s:s, s:s, s:s, s:s}", "kind", "resolve", "migration", name, "as", as,
	                         "state", ok ? "done" : "failed");
	events_emitf(bus, EV_STEP, "migrate", data, "%s %s as %s", ok ? "recorded" : "could not record", name,
	             applied ? "applied" : "rolled back");
	json_decref(data);
	cli_cancel_end();
	code = ok ? RB_EXIT_OK : err.code ? err.code : RB_EXIT_STEP;
	struct rb_error jerr = {0};
	code = cli_run_finish(j, bus, code, ok ? "migrate resolve done" : "migrate resolve failed", &jerr);
	if (json) {
		json_t *o = json_pack("{s:s, s:s, s:s, s:b, s:s, s:i}", "environment", env, "migration", name,
		                      "as", as, "done", ok, "run_id", journal_run_id(j), "exit_code", code);
		json_object_set_new(o, "error", ok ? json_null() : json_string(err.message ? err.message : ""));
		cli_print_json(o);
	} else if (ok) {
		printf("%s is recorded as %s in %s\n", name, applied ? "applied" : "rolled back", PQdb(conn));
	}
	fflush(stdout);
	if (!ok)
		cli_print_error(&err);
	cli_run_report(j, &jerr);
	rb_error_clear(&jerr);
	free(phrase);
	if (conn)
		PQfinish(conn);
	rb_error_clear(&err);
	events_free(bus);
	journal_close(j);
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
		{"confirm", required_argument, NULL, 'c'},
		{"waive-backup", required_argument, NULL, 'w'},
		{"applied", required_argument, NULL, 'a'},
		{"rolled-back", required_argument, NULL, 'b'},
		{"lock-wait", required_argument, NULL, 'L'},
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
	if (strcmp(sub, "recover") == 0)
		return cmd_migrate_recover(argc, argv);
	if (strcmp(sub, "status") != 0 && strcmp(sub, "lint") != 0 && strcmp(sub, "deploy") != 0 &&
	    strcmp(sub, "resolve") != 0)
		return cli_usage_error("migrate", "unknown subcommand \"%s\"", sub);
	const char *plan_file = NULL, *env = NULL, *fail_on = NULL;
	const char *confirm = NULL, *waive = NULL, *applied = NULL, *rolled_back = NULL;
	long long lock_wait_ms = -1;
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
		case 'c': confirm = optarg; break;
		case 'w': waive = optarg; break;
		case 'a': applied = optarg; break;
		case 'b': rolled_back = optarg; break;
		case 'L':
			if (!cli_parse_seconds(optarg, 3600, &lock_wait_ms))
				return cli_usage_error("migrate", "--lock-wait takes seconds from 0 to 3600, not \"%s\"", optarg);
			break;
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
	bool is_deploy = strcmp(sub, "deploy") == 0, is_resolve = strcmp(sub, "resolve") == 0;
	if (confirm && !is_deploy && !is_resolve)
		return cli_usage_error("migrate", "--confirm belongs to \"migrate deploy\" and \"migrate resolve\"");
	if (lock_wait_ms >= 0 && !is_deploy && !is_resolve)
		return cli_usage_error("migrate", "--lock-wait belongs to \"migrate deploy\" and \"migrate resolve\"");
	if (waive && !is_deploy)
		return cli_usage_error("migrate", "--waive-backup belongs to \"migrate deploy\"");
	if ((applied || rolled_back) && !is_resolve)
		return cli_usage_error("migrate", "--applied and --rolled-back belong to \"migrate resolve\"");
	if (is_resolve && (applied == NULL) == (rolled_back == NULL))
		return cli_usage_error("migrate", "resolve needs exactly one of --applied NAME or --rolled-back NAME");
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
	else if (is_deploy)
		code = migrate_deploy(plan, env ? env : plan->target, json, confirm, waive, lock_wait_ms);
	else if (is_resolve)
		code = migrate_resolve(plan, env ? env : plan->target, json, applied, rolled_back, confirm, lock_wait_ms);
	else
		code = migrate_status(plan, env ? env : plan->target, json);
	plan_free(plan);
	return code;
}
