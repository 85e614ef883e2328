/* cmd_staging.c: `pgrunbook staging`: the rehearsal on staging, headless, with the migrate estimate for prod. */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "core/error.h"
#include "core/events.h"
#include "core/journal.h"
#include "core/staging.h"

static void
usage(FILE *f)
{
	fputs("Usage: pgrunbook staging --plan FILE [--backup BACKUP] [--confirm \"replace DB\"] [--json]\n\n"
	      "staging rehearses the release on the plan's staging environment (staging.environment):\n"
	      "  1. backup    the backup to rehearse with: --backup (the archive or its .json manifest), else\n"
	      "               the newest verified backup of the target within backup.max_age;\n"
	      "  2. confirm   the staging database DB is replaced: this needs --confirm \"replace DB\".\n"
	      "               Without it (or with another phrase) it prints what it would do (the backup, the\n"
	      "               database replaced, the target's pending migrations) and changes nothing;\n"
	      "  3. restore   the backup is restored into a new database DB_pgrunbook_new_<random> on the\n"
	      "               staging server (its SHA-256 and row counts checked; without owners and grants\n"
	      "               when staging is another server than the backup's), then DB is dropped\n"
	      "               (WITH (FORCE): its sessions are ended) and the copy renamed to DB. A failed\n"
	      "               restore leaves DB untouched. DB's own database settings are not kept;\n"
	      "  4. migrate   the pending migrations are deployed on staging (the copy is its own backup;\n"
	      "               the typed phrase covers dangerous ones there), each statement's duration and\n"
	      "               lock waits recorded: the estimate \"migrate on prod: about N s, of which M s\n"
	      "               waiting for locks\" (the migrate stage shows it for prod);\n"
	      "  5. sync      the plan's sync tables diffed source -> staging (counts only, no review);\n"
	      "  6. verify    verify on staging with the backup's row counts as the baseline.\n"
	      "It stops at the first failing step. The rehearsal is journaled as a run.\n\n"
	      "Options:\n"
	      "  --plan FILE        the plan\n"
	      "  --backup BACKUP    the backup to restore (default: the newest verified one of the target)\n"
	      "  --confirm PHRASE   \"replace DB\", DB being the staging database\n"
	      "  --json             print JSON instead of text\n\n"
	      "Exit codes: 0 rehearsed, 1 usage, 2 connection failure, 3 refused (no phrase, no backup),\n"
	      "a step failed or cancelled, 4 invalid plan (or no staging section).\n", f);
}

static void
print_event(const struct rb_event *ev, void *userdata)
{
	(void)userdata;
	if (ev->type == EV_STEP && ev->message && ev->data) {
		const char *kind = json_string_value(json_object_get(ev->data, "kind"));
		const char *state = json_string_value(json_object_get(ev->data, "state"));
		if (kind == NULL)
			return;
		if (strcmp(kind, "staging") == 0)
			printf("%s\n", ev->message);
		else if (strcmp(kind, "restore") == 0 || strcmp(kind, "migration") == 0 ||
		         (strcmp(kind, "statement") == 0 && state && strcmp(state, "lock_timeout") == 0))
			printf("  %s\n", ev->message);
	} else if (ev->type == EV_LOG && ev->level >= LOG_LEVEL_WARN && ev->message) {
		fprintf(stderr, "pgrunbook: %s\n", ev->message);
	}
	fflush(stdout);
}

static const char *
str(const json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));
	return s ? s : "-";
}

/* What the rehearsal would do, when it was refused before changing anything. */
static void
print_would(const json_t *res)
{
	const json_t *b = json_object_get(res, "backup");
	printf("\nstaging rehearsal on %s: nothing was changed\n", str(res, "environment"));
	if (json_is_object(b))
		printf("  backup:    %s (database %s, finished %s)\n", str(b, "path"), str(b, "database"), str(b, "finished"));
	if (json_is_string(json_object_get(res, "database")))
		printf("  replaces:  database %s of %s, by a copy of the backup (restored as a new database, then\n"
		       "             renamed to %s once the old one is dropped)\n", str(res, "database"),
		       str(res, "environment"), str(res, "database"));
	if (!json_is_string(json_object_get(res, "phrase")))
		return;  /* it stopped before it knew more */
	const json_t *pend = json_object_get(res, "pending");
	if (json_is_array(pend)) {
		printf("  pending:   %zu migration%s on the target, to be deployed on the copy%s\n", json_array_size(pend),
		       json_array_size(pend) == 1 ? "" : "s", json_array_size(pend) ? ":" : "");
		size_t i;
		json_t *v;
		json_array_foreach(pend, i, v)
			printf("               %s\n", json_string_value(v));
	} else {
		printf("  pending:   unknown (the target's migrations could not be read)\n");
	}
	printf("  then:      the sync diff against staging, and verify with the backup's row counts\n");
	printf("to go ahead: --confirm \"%s\"\n", str(res, "phrase"));
}

static void
print_result(const json_t *res)
{
	size_t i;
	json_t *v;
	printf("\nsteps:\n");
	json_array_foreach(json_object_get(res, "steps"), i, v)
		printf("  %-8s %-7s %8" JSON_INTEGER_FORMAT " ms  %s\n", str(v, "step"), str(v, "state"),
		       json_integer_value(json_object_get(v, "ms")), str(v, "detail"));
	const json_t *migs = json_object_get(res, "migrations");
	if (json_array_size(migs)) {
		printf("\nmigrations on staging:\n");
		json_array_foreach(migs, i, v) {
			printf("  %s: %s, %" JSON_INTEGER_FORMAT " ms (%" JSON_INTEGER_FORMAT " ms waiting for locks)\n",
			       str(v, "name"), str(v, "state"), json_integer_value(json_object_get(v, "ms")),
			       json_integer_value(json_object_get(v, "lock_wait_ms")));
			size_t k;
			json_t *s;
			json_array_foreach(json_object_get(v, "statements"), k, s)
				printf("    %3" JSON_INTEGER_FORMAT " line %-4" JSON_INTEGER_FORMAT " %7" JSON_INTEGER_FORMAT
				       " ms  lock wait %6" JSON_INTEGER_FORMAT " ms  %s\n",
				       json_integer_value(json_object_get(s, "statement")),
				       json_integer_value(json_object_get(s, "line")), json_integer_value(json_object_get(s, "ms")),
				       json_integer_value(json_object_get(s, "lock_wait_ms")), str(s, "sql"));
		}
	}
	const json_t *est = json_object_get(res, "estimate");
	if (json_is_object(est)) {
		double ms = (double)json_integer_value(json_object_get(est, "migrate_ms"));
		double w = (double)json_integer_value(json_object_get(est, "lock_wait_ms"));
		if (json_is_true(json_object_get(est, "complete")))
			printf("\nmigrate on prod: about %.1f s, of which %.1f s waiting for locks, measured on staging\n",
			       ms / 1000.0, w / 1000.0);
		else
			printf("\nmigrate on prod: no estimate: the migrations did not all apply on staging (%.1f s measured "
			       "before the failure)\n", ms / 1000.0);
	}
	const json_t *sync = json_object_get(res, "sync");
	if (json_is_object(sync)) {
		printf("\nsync diff source -> staging:\n");
		printf("  %-32s %9s %9s %9s %9s %12s %9s\n", "table", "to_insert", "to_update", "to_delete", "conflicts",
		       "differs_kept", "unchanged");
		json_array_foreach(json_object_get(sync, "tables"), i, v) {
			const json_t *c = json_object_get(v, "counts");
			if (!json_is_object(c)) {
				printf("  %-32s failed: %s\n", str(v, "table"),
				       str(json_object_get(v, "error"), "message"));
				continue;
			}
			printf("  %-32s %9" JSON_INTEGER_FORMAT " %9" JSON_INTEGER_FORMAT " %9" JSON_INTEGER_FORMAT
			       " %9" JSON_INTEGER_FORMAT " %12" JSON_INTEGER_FORMAT " %9" JSON_INTEGER_FORMAT "\n", str(v, "table"),
			       json_integer_value(json_object_get(c, "to_insert")), json_integer_value(json_object_get(c, "to_update")),
			       json_integer_value(json_object_get(c, "to_delete")), json_integer_value(json_object_get(c, "conflicts")),
			       json_integer_value(json_object_get(c, "differs_kept")),
			       json_integer_value(json_object_get(c, "unchanged")));
		}
	}
	const json_t *ver = json_object_get(res, "verify");
	if (json_is_object(ver)) {
		const json_t *sum = json_object_get(ver, "summary");
		printf("\nverify on staging: %s: %" JSON_INTEGER_FORMAT " checks, %" JSON_INTEGER_FORMAT " passed, %"
		       JSON_INTEGER_FORMAT " failed, %" JSON_INTEGER_FORMAT " not run, %" JSON_INTEGER_FORMAT " notes\n",
		       json_is_true(json_object_get(ver, "ok")) ? "ok" : "FAILED",
		       json_integer_value(json_object_get(sum, "checks")), json_integer_value(json_object_get(sum, "passed")),
		       json_integer_value(json_object_get(sum, "failed")), json_integer_value(json_object_get(sum, "not_run")),
		       json_integer_value(json_object_get(sum, "notes")));
		size_t k;
		json_t *c;
		json_array_foreach(json_object_get(ver, "checks"), k, c)
			if (json_is_false(json_object_get(c, "ok")))
				printf("  %s %s: %s\n", str(c, "kind"), str(c, "object"), str(c, "detail"));
	}
}

int
cmd_staging(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"plan", required_argument, NULL, 'p'},
		{"backup", required_argument, NULL, 'b'},
		{"confirm", required_argument, NULL, 'c'},
		{"json", no_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *plan_file = NULL;
	struct staging_opts opts = { .who = util_user_name() };
	bool json = false;
	int c;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		switch (c) {
		case 'p': plan_file = optarg; break;
		case 'b': opts.backup = optarg; break;
		case 'c': opts.confirm = optarg; break;
		case 'j': json = true; break;
		case 'h': usage(stdout); return RB_EXIT_OK;
		case ':': return cli_usage_error("staging", "option \"%s\" needs a value", argv[optind - 1]);
		default: return cli_usage_error("staging", "unknown option \"%s\"", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return cli_usage_error("staging", "unexpected argument \"%s\"", argv[optind]);
	if (plan_file == NULL)
		return cli_usage_error("staging", "--plan FILE is required");
	struct plan *plan = cli_load_plan(plan_file);
	if (plan == NULL)
		return RB_EXIT_PLAN;
	struct rb_error err = {0}, jerr = {0};
	if (!plan->staging.present) {
		rb_error_setc(&err, RB_EXIT_PLAN, "the plan has no staging section");
		rb_error_hint(&err, "Add \"staging: { environment: NAME }\" to the plan (see pgrunbook-plan(5)).");
		cli_print_error(&err);
		rb_error_clear(&err);
		plan_free(plan);
		return RB_EXIT_PLAN;
	}
	struct events *bus = events_new();
	int code = RB_EXIT_OK;
	struct journal *j = cli_run_open(plan, bus, &code);
	if (j == NULL) {
		events_free(bus);
		plan_free(plan);
		return code;
	}
	if (!json)
		events_subscribe(bus, print_event, NULL);
	events_log(bus, LOG_LEVEL_INFO, STAGING_STAGE, "pgrunbook staging on %s, by %s", plan->staging.environment,
	           util_user_name());
	struct rb_ctx ctx = { .bus = bus, .cancel = cli_cancel_begin() };
	json_t *res = NULL;
	bool ok = staging_run(plan, &opts, &ctx, &res, &err);
	cli_cancel_end();
	code = ok ? RB_EXIT_OK : err.code ? err.code : RB_EXIT_STEP;
	code = cli_run_finish(j, bus, code, ok ? "staging rehearsal done" : "staging rehearsal failed", &jerr);
	if (json) {
		json_object_set_new(res, "run_id", json_string(journal_run_id(j)));
		json_object_set_new(res, "exit_code", json_integer(code));
		cli_print_json(res);
		res = NULL;
	} else {
		/* Refused before the restore: nothing changed, say what it would do. */
		bool confirmed = false;  /* it went past the confirmation */
		size_t i;
		json_t *v;
		json_array_foreach(json_object_get(res, "steps"), i, v)
			if (strcmp(str(v, "step"), "restore") == 0)
				confirmed = true;
		if (!confirmed)
			print_would(res);
		else
			print_result(res);
		printf("\nstaging: %s\n", ok ? "rehearsed" : confirmed ? "FAILED" : "refused");
	}
	fflush(stdout);
	if (!ok)
		cli_print_error(&err);
	cli_run_report(j, &jerr);
	rb_error_clear(&jerr);
	rb_error_clear(&err);
	json_decref(res);
	events_free(bus);
	journal_close(j);
	plan_free(plan);
	return code;
}
