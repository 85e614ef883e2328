/* cmd_verify.c: `pgrunbook verify` and `pgrunbook verify snapshot`: read-only integrity checks after a change. */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "core/error.h"
#include "core/events.h"
#include "core/journal.h"
#include "core/verify.h"

static void
usage(FILE *f)
{
	fputs("Usage: pgrunbook verify --plan FILE [--env NAME] [--baseline SNAPSHOT] [--json]\n"
	      "       pgrunbook verify snapshot --plan FILE [--env NAME] --out SNAPSHOT [--json]\n\n"
	      "verify checks the environment (default: the plan's target) read-only and prints one row per\n"
	      "check (check, object, result, detail):\n"
	      "  row_counts             each table's exact row count against --baseline, by the plan's\n"
	      "                         verify.row_counts (shrink_forbidden, a tolerance, or off); a table\n"
	      "                         gone since the baseline fails, a new one is reported. Without\n"
	      "                         --baseline this check is not run (reported, not a failure).\n"
	      "  orphans                every foreign key, NOT VALID ones too: rows whose key has no parent\n"
	      "                         row, with the count and up to 5 sample keys (verify.orphans).\n"
	      "  invalid_indexes        indexes left INVALID by a failed CREATE INDEX CONCURRENTLY.\n"
	      "  not_valid_constraints  constraints added NOT VALID and never validated.\n"
	      "  prisma_migrations      failed rows in _prisma_migrations (in migrations.schema).\n"
	      "  custom                 the plan's verify.checks: one value each, compared with expect.\n"
	      "Every query runs in a READ ONLY transaction under migrations.statement_timeout. The run is\n"
	      "journaled.\n\n"
	      "verify snapshot saves the exact row count of every table (one REPEATABLE READ snapshot) to\n"
	      "a JSON file (mode 0600) to use as --baseline after the change. A backup manifest with\n"
	      "\"database\" and \"tables\" works as a baseline too.\n\n"
	      "Options:\n"
	      "  --plan FILE          the plan\n"
	      "  --env NAME           the environment (default: the target)\n"
	      "  --baseline FILE      a snapshot or backup manifest to compare row counts with\n"
	      "  --out FILE           snapshot: where to write it\n"
	      "  --json               print JSON instead of text\n\n"
	      "Exit codes: 0 every check passed (snapshot: written), 1 usage (or an unreadable baseline),\n"
	      "2 connection failure, 3 a check failed or verify could not finish, 4 invalid plan.\n", f);
}

/* One printed row. */
struct row {
	const char *check, *object, *result;
	char       *detail;
};

static void
add_row(struct row **rows, size_t *n, const char *check, const char *object, const char *result, char *detail)
{
	*rows = xrealloc(*rows, (*n + 1) * sizeof **rows);
	(*rows)[(*n)++] = (struct row){ check, object ? object : "-", result, detail };
}

/*
 * The human table: every failure, note and "not run" on its own row; passing row counts and
 * foreign keys summed up in one row each (the JSON lists them all).
 */
static void
print_human(const json_t *res)
{
	json_t *checks = json_object_get(res, "checks");
	struct row *rows = NULL;
	size_t n = 0, i;
	json_t *c;
	size_t rc_pass = 0, fk_pass = 0, rc_row = 0, fk_row = 0;
	json_array_foreach(checks, i, c) {
		const char *kind = json_string_value(json_object_get(c, "kind"));
		const char *result = json_string_value(json_object_get(c, "result"));
		bool pass = strcmp(result, "pass") == 0;
		bool named = json_is_string(json_object_get(c, "name"));
		/* The first passing one holds the place of their summary row. */
		if (pass && named && strcmp(kind, "row_counts") == 0) {
			if (rc_pass++ == 0) {
				rc_row = n;
				add_row(&rows, &n, kind, NULL, result, NULL);
			}
			continue;
		}
		if (pass && named && strcmp(kind, "orphans") == 0) {
			if (fk_pass++ == 0) {
				fk_row = n;
				add_row(&rows, &n, kind, NULL, result, NULL);
			}
			continue;
		}
		add_row(&rows, &n, kind, json_string_value(json_object_get(c, "object")), result,
		        xstrdup(json_string_value(json_object_get(c, "detail"))));
	}
	char *s1 = NULL, *s2 = NULL;
	if (rc_pass) {
		s1 = xasprintf("%zu table%s", rc_pass, rc_pass == 1 ? "" : "s");
		rows[rc_row].object = s1;
		rows[rc_row].detail = xstrdup("unchanged, or changed as row_counts allows");
	}
	if (fk_pass) {
		s2 = xasprintf("%zu foreign key%s", fk_pass, fk_pass == 1 ? "" : "s");
		rows[fk_row].object = s2;
		rows[fk_row].detail = xstrdup("no orphaned rows");
	}
	int wc = 5, wo = 6, wr = 6;
	for (size_t k = 0; k < n; k++) {
		int l;
		if ((l = (int)strlen(rows[k].check)) > wc)
			wc = l;
		if ((l = (int)strlen(rows[k].object)) > wo)
			wo = l > 60 ? 60 : l;
		if ((l = (int)strlen(rows[k].result)) > wr)
			wr = l;
	}
	printf("verify %s (%s)\n", json_string_value(json_object_get(res, "environment")),
	       json_string_value(json_object_get(res, "database")));
	json_t *bl = json_object_get(res, "baseline");
	if (json_is_object(bl))
		printf("baseline: %s %s (database %s, taken %s)\n", json_string_value(json_object_get(bl, "source")),
		       json_string_value(json_object_get(bl, "path")), json_string_value(json_object_get(bl, "database")),
		       json_is_string(json_object_get(bl, "taken_at")) ? json_string_value(json_object_get(bl, "taken_at"))
		                                                        : "at an unknown time");
	else
		printf("baseline: none (row counts not compared)\n");
	printf("%-*s  %-*s  %-*s  %s\n", wc, "check", wo, "object", wr, "result", "detail");
	for (size_t k = 0; k < n; k++) {
		printf("%-*s  %-*s  %-*s  %s\n", wc, rows[k].check, wo, rows[k].object, wr, rows[k].result,
		       rows[k].detail);
		free(rows[k].detail);
	}
	free(rows);
	free(s1);
	free(s2);
	json_t *sum = json_object_get(res, "summary");
	json_int_t total = json_integer_value(json_object_get(sum, "checks"));
	json_int_t failed = json_integer_value(json_object_get(sum, "failed"));
	json_int_t not_run = json_integer_value(json_object_get(sum, "not_run"));
	json_int_t notes = json_integer_value(json_object_get(sum, "notes"));
	if (failed)
		printf("FAILED: %" JSON_INTEGER_FORMAT " of %" JSON_INTEGER_FORMAT " checks failed", failed, total);
	else
		printf("ok: %" JSON_INTEGER_FORMAT " checks passed", total - not_run - notes);
	if (not_run)
		printf(", %" JSON_INTEGER_FORMAT " not run", not_run);
	if (notes)
		printf(", %" JSON_INTEGER_FORMAT " note%s", notes, notes == 1 ? "" : "s");
	putchar('\n');
}

static int
verify_checks(const struct plan *plan, const char *env, const char *baseline_path, bool json)
{
	struct rb_error err = {0};
	json_t *baseline = NULL;
	if (baseline_path) {
		baseline = verify_baseline_load(baseline_path, &err);
		if (baseline == NULL) {
			cli_print_error(&err);
			rb_error_clear(&err);
			return RB_EXIT_USAGE;
		}
	}
	struct events *bus = events_new();
	int code = RB_EXIT_OK;
	struct journal *j = cli_run_open(plan, bus, &code);
	if (j == NULL) {
		events_free(bus);
		json_decref(baseline);
		return code;
	}
	events_log(bus, LOG_LEVEL_INFO, NULL, "pgrunbook verify of %s, by %s", env, util_user_name());
	struct rb_ctx ctx = { .bus = bus, .cancel = cli_cancel_begin() };
	json_t *result = NULL;
	bool ok = verify_run(plan, env, baseline, &ctx, &result, &err);
	cli_cancel_end();
	code = ok ? RB_EXIT_OK : err.code ? err.code : RB_EXIT_STEP;
	struct rb_error jerr = {0};
	code = cli_run_finish(j, bus, code, ok ? "verify passed" : "verify failed", &jerr);
	bool ran = json_is_string(json_object_get(result, "database"));
	if (json) {
		json_object_set_new(result, "run_id", json_string(journal_run_id(j)));
		json_object_set_new(result, "exit_code", json_integer(code));
		cli_print_json(result);
		result = NULL;
	} else if (ran) {
		print_human(result);
	}
	fflush(stdout);
	if (!ok)
		cli_print_error(&err);
	cli_run_report(j, &jerr);
	rb_error_clear(&jerr);
	json_decref(result);
	json_decref(baseline);
	rb_error_clear(&err);
	events_free(bus);
	journal_close(j);
	return code;
}

static int
verify_take_snapshot(const struct plan *plan, const char *env, const char *out, bool json)
{
	struct rb_error err = {0};
	struct rb_ctx ctx = { .cancel = cli_cancel_begin() };
	json_t *snap = NULL;
	bool ok = verify_snapshot(plan, env, &ctx, &snap, &err) && verify_snapshot_write(out, snap, &err);
	cli_cancel_end();
	int code = ok ? RB_EXIT_OK : err.code ? err.code : RB_EXIT_STEP;
	if (!ok) {
		cli_print_error(&err);
	} else {
		json_t *tables = json_object_get(snap, "tables");
		json_int_t rows = 0;
		const char *k;
		json_t *v;
		json_object_foreach(tables, k, v)
			rows += json_integer_value(v);
		if (json) {
			json_object_set_new(snap, "path", json_string(out));
			cli_print_json(json_incref(snap));
		} else {
			printf("snapshot of %s (%s): %zu tables, %" JSON_INTEGER_FORMAT " rows, written to %s\n", env,
			       json_string_value(json_object_get(snap, "database")), json_object_size(tables), rows, out);
		}
	}
	json_decref(snap);
	rb_error_clear(&err);
	return code;
}

int
cmd_verify(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"plan", required_argument, NULL, 'p'},
		{"env", required_argument, NULL, 'e'},
		{"baseline", required_argument, NULL, 'b'},
		{"out", required_argument, NULL, 'o'},
		{"json", no_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	bool snapshot = argc >= 2 && strcmp(argv[1], "snapshot") == 0;
	const char *plan_file = NULL, *env = NULL, *baseline = NULL, *out = NULL;
	bool json = false;
	int c;
	optind = snapshot ? 2 : 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		switch (c) {
		case 'p': plan_file = optarg; break;
		case 'e': env = optarg; break;
		case 'b': baseline = optarg; break;
		case 'o': out = optarg; break;
		case 'j': json = true; break;
		case 'h': usage(stdout); return RB_EXIT_OK;
		case ':': return cli_usage_error("verify", "option \"%s\" needs a value", argv[optind - 1]);
		default: return cli_usage_error("verify", "unknown option \"%s\"", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return cli_usage_error("verify", "unexpected argument \"%s\"", argv[optind]);
	if (plan_file == NULL)
		return cli_usage_error("verify", "--plan FILE is required");
	if (snapshot && out == NULL)
		return cli_usage_error("verify", "verify snapshot needs --out FILE");
	if (snapshot && baseline)
		return cli_usage_error("verify", "--baseline belongs to \"verify\", not \"verify snapshot\"");
	if (!snapshot && out)
		return cli_usage_error("verify", "--out belongs to \"verify snapshot\"");
	struct plan *plan = cli_load_plan(plan_file);
	if (plan == NULL)
		return RB_EXIT_PLAN;
	int code;
	if (env && plan_env_find(plan, env) == NULL)
		code = cli_usage_error("verify", "the plan has no environment \"%s\"", env);
	else if (snapshot)
		code = verify_take_snapshot(plan, env ? env : plan->target, out, json);
	else
		code = verify_checks(plan, env ? env : plan->target, baseline, json);
	plan_free(plan);
	return code;
}
