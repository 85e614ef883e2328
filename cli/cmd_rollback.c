/* cmd_rollback.c: `pgrunbook rollback`: undo a run's changes by down SQL or by a restore and a name swap, headless. */
#include "config.h"

#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "core/error.h"
#include "core/events.h"
#include "core/journal.h"
#include "core/lint.h"
#include "core/rollback.h"

static void
usage(FILE *f)
{
	fputs("Usage: pgrunbook rollback --plan FILE [--run RUN] [--backup ARCHIVE] [--restore]\n"
	      "                          [--confirm PHRASE] [--lock-wait S] [--env NAME] [--json]\n\n"
	      "rollback undoes what a run changed on the target (default: the newest run of this plan that\n"
	      "applied migrations or synced data on the target and was not rolled back yet, and started\n"
	      "after the plan's last restore rollback; it says which it picked). It chooses the safest\n"
	      "path it can prove and says why:\n"
	      "  down SQL  when every migration the run applied has a down.sql next to its migration.sql,\n"
	      "            is still recorded as applied with its file's checksum, and no data was synced:\n"
	      "            each down.sql in reverse order, one transaction each, its _prisma_migrations row\n"
	      "            marked rolled back in the same transaction. Phrase \"rollback <db>\". When a\n"
	      "            migration loses data (DROP TABLE or COLUMN, TRUNCATE, a type change, ...) a\n"
	      "            verified backup is restored instead; without one the why names what is lost.\n"
	      "  restore   otherwise: the run's verified backup (or --backup) is restored into a new database\n"
	      "            <db>_rollback_<ts> and its row counts checked; the target's owner, grants,\n"
	      "            connection limit, ALTER DATABASE SET settings and comment are copied to it; new\n"
	      "            connections to the target are refused and its sessions terminated; the target is\n"
	      "            renamed <db>_failed_<ts> (kept, never dropped) and the restored copy takes its name;\n"
	      "            connections are allowed again and verify runs with the backup as baseline. Writes\n"
	      "            made after the backup are lost (they stay in the failed database). Phrase\n"
	      "            \"restore <db>\".\n"
	      "Without --confirm it prints the choice, what will happen and the phrase, and changes nothing.\n"
	      "A rename blocked by a session (a lock on the database, or a session still connected) fails\n"
	      "after --lock-wait seconds naming the blocker's pid; the target then stays intact under its own\n"
	      "name and the restored copy is kept. The rollback is journaled as a run of its own.\n\n"
	      "Options:\n"
	      "  --plan FILE       the plan\n"
	      "  --run RUN         the run to undo (id, unique prefix or directory)\n"
	      "  --backup ARCHIVE  the verified backup to restore (default: the run's)\n"
	      "  --restore         restore even when down SQL would do\n"
	      "  --confirm PHRASE  the phrase the choice names; without it nothing is changed\n"
	      "  --lock-wait S     seconds to wait for sessions to go and for the renames' locks (default 10)\n"
	      "  --env NAME        the environment (default: the target)\n"
	      "  --json            print JSON instead of text\n\n"
	      "Exit codes: 0 rolled back, 1 usage, 2 connection failure, 3 refused (no --confirm, a wrong\n"
	      "phrase, nothing to roll back) or failed (the message says what state things are in),\n"
	      "4 invalid plan.\n", f);
}

static void
print_event(const struct rb_event *ev, void *userdata)
{
	const bool *json = userdata;
	if (*json)
		return;
	const char *kind = ev->data ? json_string_value(json_object_get(ev->data, "kind")) : NULL;
	if (ev->type == EV_STEP && ev->message && ev->data && !(kind && strcmp(kind, "rollback_choice") == 0)) {
		const char *state = json_string_value(json_object_get(ev->data, "state"));
		printf("  %s%s\n", ev->message, state && strcmp(state, "failed") == 0 ? "  [FAILED]" : "");
	} else if (ev->type == EV_LOG && ev->level >= LOG_LEVEL_WARN && ev->message) {
		fprintf(stderr, "pgrunbook: %s\n", ev->message);
	}
	fflush(stdout);
}

static bool
has_changes(const struct run_state *st)
{
	for (size_t i = 0; i < st->nrecords; i++) {
		const struct journal_record *r = &st->records[i];
		const char *kind = json_string_value(json_object_get(r->data, "kind"));
		const char *state = json_string_value(json_object_get(r->data, "state"));
		/* staging's rehearsal applies migrations to the staging database, not the target */
		if (r->type != EV_STEP || kind == NULL || state == NULL || r->stage == NULL ||
		    (strcmp(r->stage, "migrate") != 0 && strcmp(r->stage, "sync") != 0))
			continue;
		if (strcmp(kind, "migration") == 0 && strcmp(state, "applied") == 0)
			return true;
		if (strcmp(kind, "sync_table") == 0 && strcmp(state, "failed") != 0 && strcmp(state, "not reached") != 0 &&
		    strcmp(state, "pending") != 0)
			return true;
	}
	return false;
}

static bool
same_plan(const struct plan *plan, const struct run_state *st)
{
	if (st->plan_hash && strcmp(st->plan_hash, plan->hash) == 0)
		return true;
	if (st->plan_path == NULL)
		return false;
	char a[PATH_MAX], b[PATH_MAX];
	return realpath(st->plan_path, a) && realpath(plan->path, b) && strcmp(a, b) == 0;
}

/*
 * The plan's last successful restore rollback: when it was done and when the backup it restored
 * was finished (*at and *finished receive copies, NULL when none).
 */
static void
last_restore(const struct plan *plan, const struct run_state *runs, size_t n, char **at, char **finished,
             char **archive)
{
	long long best = -1;
	for (size_t i = 0; i < n; i++) {
		if (!same_plan(plan, &runs[i]))
			continue;
		for (size_t k = 0; k < runs[i].nrecords; k++) {
			const struct journal_record *r = &runs[i].records[k];
			const char *path = json_string_value(json_object_get(r->data, "path"));
			long long ms;
			if (r->type != EV_ROLLBACK_DONE || !json_is_true(json_object_get(r->data, "ok")) || path == NULL ||
			    strcmp(path, "restore") != 0 || !time_parse_rfc3339(r->ts, &ms) || ms <= best)
				continue;
			best = ms;
			free(*at);
			free(*finished);
			free(*archive);
			*at = xstrdup(r->ts);
			const char *f = json_string_value(json_object_get(r->data, "backup_finished"));
			*finished = f ? xstrdup(f) : NULL;
			const char *a = json_string_value(json_object_get(r->data, "restored_from"));
			*archive = a ? xstrdup(a) : NULL;
		}
	}
}

/* Whether the run's changes came before a restore done at `at` (the restore made them obsolete). */
static bool
before_restore(const struct run_state *st, const char *at)
{
	long long s, a;
	return at && st->started && time_parse_rfc3339(st->started, &s) && time_parse_rfc3339(at, &a) && s < a;
}

/*
 * The newest run of the plan with changes and no successful rollback since, and not older than
 * the plan's last restore rollback (which undid everything before it); NULL when none. *at and
 * *finished receive that last restore (see last_restore()).
 */
static struct run_state *
pick_run(const struct plan *plan, char **at, char **finished, char **archive, struct rb_error *err)
{
	struct run_state *runs = NULL;
	size_t n = 0;
	if (!journal_list_runs(NULL, &runs, &n, err))
		return NULL;
	last_restore(plan, runs, n, at, finished, archive);
	struct strlist undone = {0};
	for (size_t i = 0; i < n; i++)
		for (size_t k = 0; k < runs[i].nrecords; k++) {
			const struct journal_record *r = &runs[i].records[k];
			const char *id = json_string_value(json_object_get(r->data, "run"));
			if (r->type == EV_ROLLBACK_DONE && id && json_is_true(json_object_get(r->data, "ok")))
				strlist_push(&undone, id);
		}
	struct run_state *pick = NULL;
	for (size_t i = 0; i < n; i++) {
		if (pick == NULL && same_plan(plan, &runs[i]) && has_changes(&runs[i]) &&
		    !strlist_contains(&undone, runs[i].id) && !before_restore(&runs[i], *at)) {
			pick = xmalloc(sizeof *pick);
			*pick = runs[i];
			continue;
		}
		run_state_free(&runs[i]);
	}
	free(runs);
	strlist_free(&undone);
	return pick;
}

static void
print_choice(const struct rollback_choice *c, const char *env, const char *run_note)
{
	printf("rollback of %s (%s)\n", c->database, env);
	printf("  run:     %s\n", run_note);
	printf("  path:    %s\n", rollback_path_name(c->path));
	printf("  why:     %s.\n", c->why);
	if (c->path == ROLLBACK_DOWN_SQL) {
		printf("  what will happen:\n");
		size_t n = json_array_size(c->migrations);
		for (size_t i = n, k = 1; i-- > 0; k++) {
			json_t *m = json_array_get(c->migrations, i);
			printf("    %zu. %s: run %s and mark its _prisma_migrations row rolled back, in one transaction\n", k,
			       json_string_value(json_object_get(m, "name")),
			       json_string_value(json_object_get(m, "down_sql")));
		}
	} else if (c->path == ROLLBACK_RESTORE) {
		printf("  backup:  %s\n", c->backup);
		printf("  what will happen:\n"
		       "    1. restore     the backup into a new database %s_rollback_<ts>, row counts checked\n"
		       "    2. settings    owner, grants, connection limit, ALTER DATABASE SET settings and comment of\n"
		       "                   %s copied to it\n"
		       "    3. block       ALTER DATABASE %s ALLOW_CONNECTIONS false\n"
		       "    4. terminate   the sessions on %s\n"
		       "    5. rename_old  %s renamed %s_failed_<ts> (kept, never dropped)\n"
		       "    6. rename_new  the restored copy renamed %s\n"
		       "    7. reopen      connections allowed on both\n"
		       "    8. verify      every check, the backup's row counts as the baseline\n",
		       c->database, c->database, c->database, c->database, c->database, c->database, c->database);
	}
	if (c->phrase)
		printf("  phrase:  %s\n", c->phrase);
}

static int
rollback_cmd(const struct plan *plan, const char *run, struct rollback_opts *o, bool json)
{
	struct rb_error err = {0};
	struct run_state *st = NULL;
	char *run_note = NULL;
	if (run) {
		char *dir = journal_find_run(NULL, run, &err);
		if (dir) {
			st = xcalloc(1, sizeof *st);
			if (!journal_replay(dir, st, &err)) {
				free(st);
				st = NULL;
			}
			free(dir);
		}
		if (st == NULL) {
			cli_print_error(&err);
			int code = err.code ? err.code : RB_EXIT_STEP;
			rb_error_clear(&err);
			return code;
		}
		run_note = xasprintf("%s (given with --run)", st->id);
	}
	/* the last restore rollback: runs before it are obsolete, backups it undid are refused */
	char *lr_at = NULL, *lr_finished = NULL, *lr_archive = NULL;
	if (run == NULL) {
		st = pick_run(plan, &lr_at, &lr_finished, &lr_archive, &err);
		if (err.message) {
			cli_print_error(&err);
			rb_error_clear(&err);
			free(lr_at);
			free(lr_finished);
			free(lr_archive);
			return RB_EXIT_STEP;
		}
		run_note = st ? xasprintf("%s (the newest run of this plan that applied migrations or synced data)", st->id)
		              : xstrdup("none (no run of this plan applied migrations or synced data)");
	} else {
		struct run_state *runs = NULL;
		size_t n = 0;
		struct rb_error le = {0};
		if (journal_list_runs(NULL, &runs, &n, &le))
			last_restore(plan, runs, n, &lr_at, &lr_finished, &lr_archive);
		for (size_t i = 0; i < n; i++)
			run_state_free(&runs[i]);
		free(runs);
		rb_error_clear(&le);
	}
	o->last_restore_at = lr_at;
	o->last_restore_backup_finished = lr_finished;
	o->last_restore_backup = lr_archive;
	const char *env = o->env ? o->env : plan->target;
	struct events *bus = events_new();
	int code = RB_EXIT_OK;
	struct journal *j = cli_run_open(plan, bus, &code);
	if (j == NULL) {
		events_free(bus);
		if (st)
			run_state_free(st);
		free(st);
		free(run_note);
		free(lr_at);
		free(lr_finished);
		free(lr_archive);
		return code;
	}
	events_subscribe(bus, print_event, &json);
	events_log(bus, LOG_LEVEL_INFO, NULL, "pgrunbook rollback of %s, run %s, by %s", env, st ? st->id : "none",
	           util_user_name());
	struct rb_ctx ctx = { .bus = bus, .cancel = cli_cancel_begin() };
	struct rollback_choice c;
	json_t *result = NULL;
	bool chosen = rollback_choose(plan, st, o, &ctx, &c, &err);
	bool ok = false;
	if (chosen) {
		json_t *cj = rollback_choice_json(&c);
		json_object_set_new(cj, "kind", json_string("rollback_choice"));
		events_emitf(bus, EV_STEP, ROLLBACK_STAGE, cj, "choice: %s: %s", rollback_path_name(c.path), c.why);
		json_decref(cj);
		if (!json)
			print_choice(&c, env, run_note);
		fflush(stdout);
		if (c.path != ROLLBACK_NONE && o->confirm == NULL) {
			/* journaled as a refusal (confirm_miss); nothing is changed */
			ok = rollback_run(plan, &c, o, &ctx, &result, &err);
			rb_error_clear(&err);
			rb_error_setc(&err, RB_EXIT_STEP, "nothing was changed: the rollback needs the typed phrase");
			rb_error_hint(&err, "To go ahead: pgrunbook rollback --plan %s%s%s%s%s --confirm \"%s\"", plan->path,
			              st ? " --run " : "", st ? st->id : "", o->backup ? " --backup " : "",
			              o->backup ? o->backup : "", c.phrase);
		} else {
			ok = rollback_run(plan, &c, o, &ctx, &result, &err);
		}
	}
	cli_cancel_end();
	code = ok ? RB_EXIT_OK : err.code ? err.code : RB_EXIT_STEP;
	struct rb_error jerr = {0};
	char *msg = xasprintf("rollback %s", ok ? "done" : "not done");
	code = cli_run_finish(j, bus, code, msg, &jerr);
	free(msg);
	const char *state = json_string_value(json_object_get(result, "state"));
	if (json) {
		json_t *out = json_pack("{s:o, s:o, s:s, s:s?, s:i, s:o}", "choice", chosen ? rollback_choice_json(&c) :
		                        json_null(), "result", result ? json_incref(result) : json_null(), "run_id",
		                        journal_run_id(j), "rolled_back_run", st ? st->id : NULL, "exit_code", code, "error",
		                        ok ? json_null() : json_string(err.message ? err.message : ""));
		cli_print_json(out);
	} else if (ok) {
		printf("rollback done: %s\n", state ? state : "");
	} else if (state && o->confirm) {
		printf("rollback FAILED: %s\n", state);
	}
	fflush(stdout);
	if (!ok)
		cli_print_error(&err);
	cli_run_report(j, &jerr);
	rb_error_clear(&jerr);
	rb_error_clear(&err);
	json_decref(result);
	if (chosen)
		rollback_choice_free(&c);
	events_free(bus);
	journal_close(j);
	if (st)
		run_state_free(st);
	free(st);
	free(run_note);
	free(lr_at);
	free(lr_finished);
	free(lr_archive);
	lint_shutdown();   /* rollback_choose() lints the applied migrations */
	return code;
}

int
cmd_rollback(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"plan", required_argument, NULL, 'p'},
		{"run", required_argument, NULL, 'r'},
		{"backup", required_argument, NULL, 'b'},
		{"restore", no_argument, NULL, 'R'},
		{"confirm", required_argument, NULL, 'c'},
		{"lock-wait", required_argument, NULL, 'w'},
		{"env", required_argument, NULL, 'e'},
		{"json", no_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *plan_file = NULL, *run = NULL, *wait = NULL;
	struct rollback_opts o = { .who = util_user_name() };
	bool json = false;
	int c;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		switch (c) {
		case 'p': plan_file = optarg; break;
		case 'r': run = optarg; break;
		case 'b': o.backup = optarg; break;
		case 'R': o.force_restore = true; break;
		case 'c': o.confirm = optarg; break;
		case 'w': wait = optarg; break;
		case 'e': o.env = optarg; break;
		case 'j': json = true; break;
		case 'h': usage(stdout); return RB_EXIT_OK;
		case ':': return cli_usage_error("rollback", "option \"%s\" needs a value", argv[optind - 1]);
		default: return cli_usage_error("rollback", "unknown option \"%s\"", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return cli_usage_error("rollback", "unexpected argument \"%s\"", argv[optind]);
	if (plan_file == NULL)
		return cli_usage_error("rollback", "--plan FILE is required");
	long long ms = 0;
	if (wait && (!cli_parse_seconds(wait, 3600, &ms) || ms <= 0))
		return cli_usage_error("rollback", "--lock-wait takes seconds (up to 3600), not \"%s\"", wait);
	o.lock_wait_ms = ms;
	struct plan *plan = cli_load_plan(plan_file);
	if (plan == NULL)
		return RB_EXIT_PLAN;
	int code;
	if (o.env && plan_env_find(plan, o.env) == NULL)
		code = cli_usage_error("rollback", "the plan has no environment \"%s\"", o.env);
	else
		code = rollback_cmd(plan, run, &o, json);
	plan_free(plan);
	return code;
}
