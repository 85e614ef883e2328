/* cmd_backup.c: `pgrunbook backup` and `pgrunbook backup verify`: verified pg_dump backups, headless. */
#include "config.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "core/backup.h"
#include "core/error.h"
#include "core/events.h"
#include "core/journal.h"

static void
usage(FILE *f)
{
	fputs("Usage: pgrunbook backup --plan FILE [--env NAME] [--json]\n"
	      "       pgrunbook backup verify --plan FILE BACKUP [--json]\n"
	      "       pgrunbook backup verify --latest --plan FILE [--env NAME] [--max-age DURATION] [--json]\n\n"
	      "backup dumps the environment's database (default: the plan's target) with pg_dump into the\n"
	      "plan's backup.dir: <db>-<yyyymmddThhmmssZ>.dump (custom format) or .dir (directory format,\n"
	      "backup.jobs parallel jobs), with a manifest <backup>.json (mode 0600). Before it starts it\n"
	      "checks the free space against the database size. The rows of every table are counted in the\n"
	      "snapshot pg_dump uses, so the counts are exactly what the dump holds. The dump is written as\n"
	      "<backup>.partial and renamed only when pg_dump succeeds; a failed or interrupted dump is left\n"
	      "as <backup>.failed. Then the backup is verified: its SHA-256, pg_restore --list listing every\n"
	      "table's data, and a test restore into a scratch database <db>_pgrunbook_verify_<random> on the\n"
	      "same server (always dropped) whose row counts must equal the dump-time counts. Only a\n"
	      "verified backup counts for migrate and sync. The backup is journaled as a run.\n\n"
	      "verify checks an existing backup (the archive or its .json manifest) the same way and records\n"
	      "the outcome in its manifest. With --latest it restores nothing: it prints the newest backup\n"
	      "of the environment's database and server whose manifest says verified, younger than\n"
	      "backup.max_age (or --max-age), after checking its SHA-256 again: the backup migrate and sync\n"
	      "accept when run on their own.\n\n"
	      "Options:\n"
	      "  --plan FILE         the plan\n"
	      "  --env NAME          the environment (default: the target)\n"
	      "  --json              print JSON instead of text\n"
	      "  --latest            verify: print the newest verified backup instead of verifying one\n"
	      "  --max-age DURATION  with --latest: how old it may be (\"24h\", \"30min\")\n\n"
	      "Exit codes: 0 verified (found, with --latest), 1 usage, 2 connection failure, 3 refused,\n"
	      "failed, cancelled or not verified (none found), 4 invalid plan.\n", f);
}

struct printer {
	bool      json;
	long long last_done;
	long long last_ms;
};

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
		if (kind && strcmp(kind, "backup") == 0) {
			long long done = json_integer_value(json_object_get(ev->data, "tables_done"));
			long long now = time_monotonic_ms();
			if (done == pr->last_done && now - pr->last_ms < 2000)
				return;
			pr->last_done = done;
			pr->last_ms = now;
			char bytes[32], rate[32];
			format_bytes(json_integer_value(json_object_get(ev->data, "bytes")), bytes, sizeof bytes);
			format_bytes(json_integer_value(json_object_get(ev->data, "rate")), rate, sizeof rate);
			printf("  progress: %lld of %" JSON_INTEGER_FORMAT " tables, %s written, %s/s\n", done,
			       json_integer_value(json_object_get(ev->data, "tables_total")), bytes, rate);
		} else if (kind && strcmp(kind, "verify") == 0 && ev->message) {
			printf("  %s\n", ev->message);
		}
	} else if (ev->type == EV_LOG && ev->level >= LOG_LEVEL_WARN && ev->message) {
		fprintf(stderr, "pgrunbook: %s\n", ev->message);
	}
	fflush(stdout);
}

static void
print_summary(const struct backup_result *r)
{
	char size[32];
	format_bytes(r->size, size, sizeof size);
	json_t *tables = r->manifest ? json_object_get(r->manifest, "tables") : NULL;
	printf("backup %s\n", r->verified ? "verified" : "NOT verified");
	printf("  path:     %s\n", r->path ? r->path : "-");
	if (r->manifest_path)
		printf("  manifest: %s\n", r->manifest_path);
	printf("  database: %s (%s)\n", r->database ? r->database : "-", r->environment ? r->environment : "-");
	printf("  format:   %s, %s (%" PRId64 " bytes)\n", r->format ? r->format : "-", size, r->size);
	if (r->sha256[0])
		printf("  sha256:   %s\n", r->sha256);
	if (tables)
		printf("  tables:   %zu\n", json_object_size(tables));
	if (r->why)
		printf("  why:      %s\n", r->why);
}

static int
backup_run(const struct plan *plan, const char *env, const char *path, bool json)
{
	struct events *bus = events_new();
	int code = RB_EXIT_OK;
	struct journal *j = cli_run_open(plan, bus, &code);
	if (j == NULL) {
		events_free(bus);
		return code;
	}
	struct printer pr = { .json = json, .last_done = -1 };
	events_subscribe(bus, print_event, &pr);
	if (path)
		events_log(bus, LOG_LEVEL_INFO, NULL, "pgrunbook backup verify %s, by %s", path, util_user_name());
	else
		events_log(bus, LOG_LEVEL_INFO, NULL, "pgrunbook backup of %s, by %s", env, util_user_name());
	struct rb_ctx ctx = { .bus = bus, .cancel = cli_cancel_begin() };
	struct backup_opts opts = { .env = env, .who = util_user_name(), .run_id = journal_run_id(j) };
	struct rb_error err = {0};
	struct backup_result r;
	bool ok = path ? backup_verify(plan, path, &ctx, &r, &err) : backup_take(plan, &opts, &ctx, &r, &err);
	cli_cancel_end();
	code = ok ? RB_EXIT_OK : err.code ? err.code : RB_EXIT_STEP;
	struct rb_error jerr = {0};
	const char *what = path ? "backup verify" : "backup";
	char *msg = xasprintf("%s %s", what, ok ? "done" : "failed");
	code = cli_run_finish(j, bus, code, msg, &jerr);
	free(msg);
	if (json) {
		json_t *o = backup_result_json(&r);
		json_object_set_new(o, "run_id", json_string(journal_run_id(j)));
		json_object_set_new(o, "exit_code", json_integer(code));
		json_object_set_new(o, "error", ok ? json_null() : json_string(err.message ? err.message : ""));
		cli_print_json(o);
	} else if (r.path || r.manifest) {
		print_summary(&r);
	}
	fflush(stdout);
	if (!ok)
		cli_print_error(&err);
	cli_run_report(j, &jerr);
	rb_error_clear(&jerr);
	rb_error_clear(&err);
	backup_result_free(&r);
	events_free(bus);
	journal_close(j);
	return code;
}

static int
backup_latest(const struct plan *plan, const char *env, int64_t max_age_ms, bool json)
{
	struct backup_result r;
	struct rb_error err = {0};
	bool ok = backup_find_recent(plan, env, max_age_ms, &r, &err);
	int code = ok ? RB_EXIT_OK : err.code ? err.code : RB_EXIT_STEP;
	if (json) {
		json_t *o = ok ? backup_result_json(&r) : json_object();
		json_object_set_new(o, "found", json_boolean(ok));
		if (ok)
			json_object_set(o, "finished", json_object_get(r.manifest, "finished"));
		json_object_set_new(o, "exit_code", json_integer(code));
		json_object_set_new(o, "error", ok ? json_null() : json_string(err.message ? err.message : ""));
		cli_print_json(o);
	} else if (ok) {
		print_summary(&r);
		printf("  finished: %s\n", json_string_value(json_object_get(r.manifest, "finished")));
	}
	if (!ok)
		cli_print_error(&err);
	rb_error_clear(&err);
	backup_result_free(&r);
	return code;
}

int
cmd_backup(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"plan", required_argument, NULL, 'p'},
		{"env", required_argument, NULL, 'e'},
		{"json", no_argument, NULL, 'j'},
		{"latest", no_argument, NULL, 'l'},
		{"max-age", required_argument, NULL, 'm'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	bool verify = argc >= 2 && strcmp(argv[1], "verify") == 0;
	const char *plan_file = NULL, *env = NULL, *max_age = NULL;
	bool json = false, latest = false;
	int c;
	optind = verify ? 2 : 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		switch (c) {
		case 'p': plan_file = optarg; break;
		case 'e': env = optarg; break;
		case 'j': json = true; break;
		case 'l': latest = true; break;
		case 'm': max_age = optarg; break;
		case 'h': usage(stdout); return RB_EXIT_OK;
		case ':': return cli_usage_error("backup", "option \"%s\" needs a value", argv[optind - 1]);
		default: return cli_usage_error("backup", "unknown option \"%s\"", argv[optind - 1]);
		}
	}
	const char *path = NULL;
	if (verify && !latest && optind < argc)
		path = argv[optind++];
	if (optind < argc)
		return cli_usage_error("backup", "unexpected argument \"%s\"", argv[optind]);
	if (plan_file == NULL)
		return cli_usage_error("backup", "--plan FILE is required");
	if (!verify && (latest || max_age))
		return cli_usage_error("backup", "--latest and --max-age belong to \"backup verify\"");
	if (verify && !latest && path == NULL)
		return cli_usage_error("backup", "backup verify needs the BACKUP to verify (or --latest)");
	if (verify && !latest && (env || max_age))
		return cli_usage_error("backup", "--env and --max-age belong to \"backup\" and \"backup verify --latest\"");
	int64_t max_age_ms = 0;
	if (max_age && (!plan_parse_duration(max_age, &max_age_ms) || max_age_ms <= 0))
		return cli_usage_error("backup", "--max-age takes a duration such as 24h or 30min, not \"%s\"", max_age);
	struct plan *plan = cli_load_plan(plan_file);
	if (plan == NULL)
		return RB_EXIT_PLAN;
	int code;
	if (env && plan_env_find(plan, env) == NULL)
		code = cli_usage_error("backup", "the plan has no environment \"%s\"", env);
	else if (!plan->backup.present) {
		fprintf(stderr, "pgrunbook: the plan has no backup section\n"
		        "HINT: Add \"backup: { dir: ./backups }\" to the plan (see pgrunbook-plan(5)).\n");
		code = RB_EXIT_PLAN;
	} else if (latest)
		code = backup_latest(plan, env ? env : plan->target, max_age_ms, json);
	else
		code = backup_run(plan, env ? env : plan->target, path, json);
	plan_free(plan);
	return code;
}
