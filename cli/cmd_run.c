/* cmd_run.c: `pgrunbook run` and headless `pgrunbook resume`: every stage of the plan in order, one journal. */
#include "config.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "cli/commands.h"
#include "core/backup.h"
#include "core/confirm.h"
#include "core/deploy.h"
#include "core/error.h"
#include "core/events.h"
#include "core/journal.h"
#include "core/lint.h"
#include "core/maintenance.h"
#include "core/preflight.h"
#include "core/report.h"
#include "core/staging.h"
#include "core/sync_apply.h"
#include "core/sync_plan.h"
#include "core/sync_review.h"
#include "core/verify.h"

static void
usage(FILE *f)
{
	fputs("Usage: pgrunbook run --plan FILE [--confirm PHRASE]... [--review REVIEW] [options]\n"
	      "       pgrunbook resume [RUN] --headless [--plan FILE] [--confirm PHRASE]... [--review REVIEW] [options]\n\n"
	      "run carries out every stage the plan enables, in order, without the wizard, as one journaled\n"
	      "run: preflight, backup, staging, maintenance (freeze), migrate, sync, verify,\n"
	      "maintenance_off (thaw), report. Each stage does what its own command does (pgrunbook\n"
	      "preflight, backup, staging, maintenance on, migrate deploy, sync apply, verify, maintenance\n"
	      "off) and needs the same typed phrases, given with --confirm, once each:\n"
	      "  \"replace <staging db>\"             staging: replace the staging database\n"
	      "  \"freeze <db>\"                      maintenance: freeze the target\n"
	      "  \"terminate <N> sessions on <db> list <code>\"\n"
	      "                                    maintenance: terminate the sessions it lists\n"
	      "  \"deploy <db>\"                      migrate: a pending migration is dangerous\n"
	      "  \"apply <db>\"                       sync: apply the review\n"
	      "  \"delete <db>\"                      sync: the review deletes rows\n"
	      "  I_UNDERSTAND_PROD_OVERWRITE        sync: with --allow-protected-overwrite\n"
	      "A phrase is matched to its step by its first word; the step itself checks it exactly.\n"
	      "The sync stage applies only a reviewed diff: without --review, run diffs the plan's tables\n"
	      "into <run directory>/sync-review.txt and stops there (exit 3) when the diff would write\n"
	      "anything; read it (or `pgrunbook sync diff --rows`), then resume the run with\n"
	      "--review <that file> --confirm \"apply <db>\". A review that writes nothing ends the stage.\n"
	      "verify uses the run's backup manifest as its row count baseline. Every stage's time is\n"
	      "compared with its budget (plan budgets); over budget is printed and journaled.\n"
	      "run stops at the first stage that fails or is refused, with exit 3, and leaves the run open:\n"
	      "a target frozen by the run stays frozen (thaw: pgrunbook maintenance off; undo the change:\n"
	      "pgrunbook rollback --run RUN). The report is written to <run directory>/report.md.\n\n"
	      "resume --headless continues such a run (or one killed, or left by the wizard; without RUN\n"
	      "the newest run that is not finished) at its first stage not done, after checking again\n"
	      "what that stage needs: a freeze the run left half\n"
	      "applied (killed during maintenance) is thawed from the journal and taken again; a freeze\n"
	      "that is no longer in place is taken again before migrate or sync; migrate and sync need a\n"
	      "verified backup still on disk (or --waive-backup); the plan must be unchanged.\n\n"
	      "Options:\n"
	      "  --plan FILE                 the plan (resume: default the run's own)\n"
	      "  --confirm PHRASE            a typed phrase (repeat for each step that needs one)\n"
	      "  --review REVIEW             sync: the reviewed diff to apply (pgrunbook sync diff --out)\n"
	      "  --backup ARCHIVE            staging: restore this backup instead of the run's\n"
	      "  --waive-backup PHRASE       \"waive-backup <db>\": migrate and sync without a verified backup\n"
	      "  --allow-protected-overwrite sync: allow overwriting protected tables (with the phrase)\n"
	      "  --lock-wait S               seconds to wait for the migration lock (default 10)\n"
	      "  --json                      print one JSON document at the end instead of text\n\n"
	      "Exit codes: 0 every stage done, 1 usage, 2 connection failure, 3 a stage failed, was refused\n"
	      "or waits for a review, 4 invalid plan.\n", f);
}

struct run_opts {
	struct strlist confirms;
	const char    *review;
	const char    *backup;
	const char    *waive_backup;
	bool           allow_overwrite;
	long long      lock_wait_ms;
	bool           json;
};

/* The --confirm phrase whose first word is verb (case-insensitive, so a case slip is reported as one). */
static const char *
phrase_for(const struct run_opts *o, const char *verb)
{
	size_t n = strlen(verb);
	for (size_t i = 0; i < o->confirms.len; i++) {
		const char *c = o->confirms.items[i];
		while (*c == ' ' || *c == '\t')
			c++;
		if (strncasecmp(c, verb, n) == 0 && (c[n] == '\0' || c[n] == ' ' || c[n] == '\t'))
			return o->confirms.items[i];
	}
	return NULL;
}

struct runner {
	const struct plan *plan;
	struct journal    *j;
	struct events     *bus;
	struct rb_ctx      ctx;
	struct run_opts   *o;
	bool               backup_ok;     /* the run holds a verified backup (or a journaled waiver) */
	char              *backup_path;   /* the run's backup archive, or NULL */
	char              *manifest_path; /* its manifest, or NULL */
	json_t            *stages;        /* what was done, for --json and the summary */
	long long          t0;
};

/* Prints steps and warnings as they happen (text mode). */
static void
print_event(const struct rb_event *ev, void *userdata)
{
	const struct runner *r = userdata;
	if (r->o->json)
		return;
	if (ev->type == EV_STEP && ev->message)
		printf("  %s\n", ev->message);
	else if (ev->type == EV_LOG && ev->level >= LOG_LEVEL_WARN && ev->message)
		fprintf(stderr, "pgrunbook: %s\n", ev->message);
	else if (ev->type == EV_CONFIRM_MISS && ev->message)
		fprintf(stderr, "pgrunbook: %s\n", ev->message);
	fflush(stdout);
}

/* An elapsed time for people: "850 ms", "12.4 s", "3 min 05 s", "1 h 02 min". */
/* Journals and prints a stage's time against its budget. */
static void
stage_timing(struct runner *r, enum plan_stage s, long long ms, json_t *entry)
{
	int64_t budget = r->plan->budget_ms[s];
	char el[32], bd[32];
	time_format_elapsed(ms, el, sizeof el);
	json_object_set_new(entry, "ms", json_integer(ms));
	json_object_set_new(entry, "budget_ms", budget > 0 ? json_integer(budget) : json_null());
	bool over = budget > 0 && ms > budget;
	json_object_set_new(entry, "over_budget", json_boolean(over));
	if (budget > 0)
		plan_format_duration(budget, bd, sizeof bd);
	if (over) {
		json_t *d = json_pack("{s:s, s:I, s:I}", "stage", plan_stage_name(s), "elapsed_ms", (json_int_t)ms,
		                      "budget_ms", (json_int_t)budget);
		events_emitf(r->bus, EV_OVER_BUDGET, plan_stage_name(s), d, "%s took %s, over its budget of %s",
		             plan_stage_name(s), el, bd);
		json_decref(d);
	}
	if (!r->o->json) {
		if (budget > 0)
			printf("  time: %s of %s%s\n", el, bd, over ? "  OVER BUDGET" : "");
		else
			printf("  time: %s (no budget)\n", el);
	}
}

static void
print_error_lines(const struct runner *r, const struct rb_error *err)
{
	if (!r->o->json && err->message)
		cli_print_error(err);
}

/* --- the stages --- */

static int
do_preflight(struct runner *r, json_t *entry, struct rb_error *err)
{
	struct preflight_result res = {0};
	bool ok = preflight_run(r->plan, &r->ctx, &res, err);
	if (ok && res.any_blocker) {
		struct strbuf sb = {0};
		for (size_t i = 0; i < res.nenvs; i++)
			for (size_t k = 0; k < res.envs[i].blockers.len; k++)
				strbuf_addf(&sb, "%s%s: %s", sb.len ? "\n" : "", res.envs[i].name, res.envs[i].blockers.items[k]);
		rb_error_setc(err, RB_EXIT_STEP, "preflight found blockers");
		rb_error_detail(err, "%s", sb.buf ? sb.buf : "");
		rb_error_hint(err, "See pgrunbook preflight --plan FILE; resume the run once they are resolved.");
		strbuf_release(&sb);
		ok = false;
	}
	json_object_set_new(entry, "result", preflight_to_json(&res));
	preflight_result_free(&res);
	return ok ? RB_EXIT_OK : err->code ? err->code : RB_EXIT_STEP;
}

static int
do_backup(struct runner *r, json_t *entry, struct rb_error *err)
{
	struct backup_opts bo = { .who = util_user_name(), .run_id = journal_run_id(r->j) };
	struct backup_result res = {0};
	bool ok = backup_take(r->plan, &bo, &r->ctx, &res, err);
	json_object_set_new(entry, "result", backup_result_json(&res));
	if (ok) {
		r->backup_ok = true;
		free(r->backup_path);
		free(r->manifest_path);
		r->backup_path = xstrdup(res.path);
		r->manifest_path = res.manifest_path ? xstrdup(res.manifest_path) : NULL;
		if (!r->o->json)
			printf("  backup: %s (verified)\n", res.path);
	}
	backup_result_free(&res);
	return ok ? RB_EXIT_OK : err->code ? err->code : RB_EXIT_STEP;
}

static int
do_staging(struct runner *r, json_t *entry, struct rb_error *err)
{
	struct staging_opts so = { .backup = r->o->backup ? r->o->backup : r->backup_path,
	                           .confirm = phrase_for(r->o, "replace"), .who = util_user_name() };
	json_t *res = NULL;
	bool ok = staging_run(r->plan, &so, &r->ctx, &res, err);
	if (res) {
		json_t *est = json_object_get(res, "estimate");
		if (ok && est && !r->o->json) {
			char m[32], l[32];
			time_format_elapsed(json_integer_value(json_object_get(est, "migrate_ms")), m, sizeof m);
			time_format_elapsed(json_integer_value(json_object_get(est, "lock_wait_ms")), l, sizeof l);
			printf("  migrate estimate for %s: %s, of which %s waiting for locks (measured on staging)\n",
			       r->plan->target, m, l);
		}
		json_object_set_new(entry, "result", res);
	}
	return ok ? RB_EXIT_OK : err->code ? err->code : RB_EXIT_STEP;
}

static int
do_freeze(struct runner *r, json_t *entry, struct rb_error *err)
{
	struct maint_opts mo = { .confirm = phrase_for(r->o, MAINT_VERB), .confirm_terminate = phrase_for(r->o, "terminate"),
	                         .who = util_user_name(), .run_id = journal_run_id(r->j) };
	json_t *res = NULL;
	bool ok = maint_on(r->plan, &mo, r->j, &r->ctx, &res, err);
	if (res)
		json_object_set_new(entry, "result", res);
	return ok ? RB_EXIT_OK : err->code ? err->code : RB_EXIT_STEP;
}

static int
do_migrate(struct runner *r, json_t *entry, struct rb_error *err)
{
	struct deploy_opts dop = { .confirm = phrase_for(r->o, "deploy"), .backup_ok = r->backup_ok,
	                           .waive_backup = r->o->waive_backup, .who = util_user_name(),
	                           .advisory_wait_ms = r->o->lock_wait_ms > 0 ? r->o->lock_wait_ms : 0 };
	json_t *res = NULL;
	bool ok = deploy_run(r->plan, &dop, &r->ctx, &res, err);
	lint_shutdown();
	if (res)
		json_object_set_new(entry, "result", res);
	return ok ? RB_EXIT_OK : err->code ? err->code : RB_EXIT_STEP;
}

/* Whether a diff result would write anything (inserts, updates, deletes or conflicts). */
static bool
diff_writes(const json_t *res)
{
	json_t *tables = json_object_get(res, "tables"), *t;
	size_t i;
	json_array_foreach(tables, i, t) {
		json_t *c = json_object_get(t, "counts");
		const char *keys[] = { "to_insert", "to_update", "conflicts" };
		for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++)
			if (json_integer_value(json_object_get(c, keys[k])) > 0)
				return true;
		if (json_is_true(json_object_get(t, "delete")) && json_integer_value(json_object_get(c, "to_delete")) > 0)
			return true;
	}
	return false;
}

static int
do_sync(struct runner *r, json_t *entry, struct rb_error *err)
{
	if (r->o->review == NULL) {
		char *path = xasprintf("%s/sync-review.txt", journal_dir(r->j));
		/* A review left by an earlier attempt of this run is replaced only through a new name. */
		for (int n = 2; access(path, F_OK) == 0; n++) {
			free(path);
			path = xasprintf("%s/sync-review-%d.txt", journal_dir(r->j), n);
		}
		events_emitf(r->bus, EV_STAGE_STARTED, "sync", NULL, "diffing the sync tables into %s", path);
		struct sync_plan_opts so = { .review_path = path, .who = util_user_name() };
		json_t *res = NULL;
		bool ok = sync_diff_plan(r->plan, &so, &r->ctx, &res, err);
		bool writes = ok && diff_writes(res);
		if (res)
			json_object_set_new(entry, "diff", res);
		int code = RB_EXIT_OK;
		if (!ok) {
			events_emitf(r->bus, EV_STAGE_FAILED, "sync", NULL, "the sync diff failed: %s", err->message);
			code = err->code ? err->code : RB_EXIT_STEP;
		} else if (writes) {
			json_object_set_new(entry, "review_file", json_string(path));
			rb_error_setc(err, RB_EXIT_STEP, "the sync diff is saved for review in %s", path);
			rb_error_detail(err, "The sync stage applies only a reviewed diff; this one would change rows of the "
			                "target.");
			const char *db = json_string_value(json_object_get(res, "database"));
			rb_error_hint(err, "Read it (or run pgrunbook sync diff --plan %s --rows), then run: pgrunbook resume "
			              "%s --headless --review %s --confirm \"apply %s\"", r->plan->path, journal_run_id(r->j), path,
			              db ? db : "<database>");
			/* Not a failure: the run waits for a person (notifiers treat it as a confirmation needed). */
			json_t *cd = json_pack("{s:s, s:s, s:s}", "kind", "review", "review_file", path, "phrase",
			                       db ? db : "");
			char *phrase = xasprintf("apply %s", db ? db : "<database>");
			json_object_set_new(cd, "phrase", json_string(phrase));
			events_emitf(r->bus, EV_CONFIRM_NEEDED, "sync", cd, "the sync diff waits for a review of %s, then "
			             "\"%s\"", path, phrase);
			json_decref(cd);
			free(phrase);
			json_t *fd = json_pack("{s:s, s:s}", "waiting", "review", "review_file", path);
			events_emitf(r->bus, EV_STAGE_FAILED, "sync", fd, "waiting for a review of %s", path);
			json_decref(fd);
			code = RB_EXIT_STEP;
		} else {
			events_emitf(r->bus, EV_STAGE_DONE, "sync", NULL, "nothing to apply: the target already has every "
			             "row the plan syncs");
		}
		free(path);
		return code;
	}
	struct sync_review rv = {0};
	if (!sync_review_load(r->o->review, r->plan, &rv, err)) {
		events_emitf(r->bus, EV_STAGE_FAILED, "sync", NULL, "the review %s cannot be applied: %s", r->o->review,
		             err->message);
		return err->code ? err->code : RB_EXIT_STEP;
	}
	struct sync_apply_opts ao = {
		.confirm = phrase_for(r->o, SYNC_APPLY_VERB), .allow_protected_overwrite = r->o->allow_overwrite,
		.confirm_overwrite = phrase_for(r->o, CONFIRM_OVERWRITE_PHRASE),
		.confirm_delete = phrase_for(r->o, SYNC_DELETE_VERB), .backup_ok = r->backup_ok,
		.waive_backup = r->o->waive_backup, .who = util_user_name(),
		.lock_wait_ms = r->o->lock_wait_ms > 0 ? r->o->lock_wait_ms : 0,
	};
	struct sync_apply_result res = {0};
	bool ok = sync_apply(r->plan, &rv, &ao, &r->ctx, &res, err);
	json_object_set_new(entry, "result", sync_apply_result_json(&res));
	sync_apply_result_free(&res);
	sync_review_free(&rv);
	return ok ? RB_EXIT_OK : err->code ? err->code : RB_EXIT_STEP;
}

static int
do_verify(struct runner *r, json_t *entry, struct rb_error *err)
{
	json_t *baseline = NULL;
	if (r->manifest_path) {
		baseline = verify_baseline_load(r->manifest_path, err);
		if (baseline == NULL) {
			rb_error_prefix(err, "the run's backup manifest cannot be the baseline");
			return RB_EXIT_STEP;
		}
	}
	json_t *res = NULL;
	bool ok = verify_run(r->plan, NULL, baseline, &r->ctx, &res, err);
	json_decref(baseline);
	if (res) {
		if (!r->o->json) {
			json_t *sum = json_object_get(res, "summary");
			printf("  verify: %" JSON_INTEGER_FORMAT " checks, %" JSON_INTEGER_FORMAT " passed, %" JSON_INTEGER_FORMAT
			       " failed, %" JSON_INTEGER_FORMAT " not run%s\n",
			       json_integer_value(json_object_get(sum, "checks")), json_integer_value(json_object_get(sum, "passed")),
			       json_integer_value(json_object_get(sum, "failed")), json_integer_value(json_object_get(sum, "not_run")),
			       r->manifest_path ? "" : " (no backup in this run: row counts not compared)");
			json_t *c;
			size_t i;
			json_array_foreach(json_object_get(res, "checks"), i, c)
				if (!json_is_true(json_object_get(c, "ok")))
					printf("  FAILED %s %s: %s\n", json_string_value(json_object_get(c, "kind")),
					       json_string_value(json_object_get(c, "object")) ? json_string_value(json_object_get(c, "object")) : "-",
					       json_string_value(json_object_get(c, "detail")) ? json_string_value(json_object_get(c, "detail")) : "");
		}
		json_object_set_new(entry, "result", res);
	}
	if (!ok && err->code == RB_EXIT_STEP)
		rb_error_hint(err, "Undo the change with: pgrunbook rollback --plan %s --run %s", r->plan->path,
		              journal_run_id(r->j));
	return ok ? RB_EXIT_OK : err->code ? err->code : RB_EXIT_STEP;
}

static int
do_thaw(struct runner *r, json_t *entry, struct rb_error *err)
{
	json_t *res = NULL;
	bool ok = maint_off(r->plan, NULL, journal_dir(r->j), util_user_name(), r->j, &r->ctx, &res, err);
	if (res)
		json_object_set_new(entry, "result", res);
	return ok ? RB_EXIT_OK : err->code ? err->code : RB_EXIT_STEP;
}

static int
do_report(struct runner *r, json_t *entry, struct rb_error *err)
{
	events_emitf(r->bus, EV_STAGE_STARTED, "report", NULL, "writing the report");
	char *path = report_write_run(journal_dir(r->j), r->plan, NULL, err);
	bool ok = path != NULL;
	if (ok) {
		events_emitf(r->bus, EV_STAGE_DONE, "report", NULL, "report written to %s", path);
		json_object_set_new(entry, "path", json_string(path));
		if (!r->o->json)
			printf("  report: %s\n", path);
	} else {
		events_emitf(r->bus, EV_STAGE_FAILED, "report", NULL, "the report could not be written: %s", err->message);
	}
	free(path);
	return ok ? RB_EXIT_OK : RB_EXIT_STEP;
}

typedef int (*stage_fn)(struct runner *r, json_t *entry, struct rb_error *err);

static stage_fn
stage_function(enum plan_stage s)
{
	switch (s) {
	case PLAN_STAGE_PREFLIGHT: return do_preflight;
	case PLAN_STAGE_BACKUP:    return do_backup;
	case PLAN_STAGE_STAGING:   return do_staging;
	case PLAN_STAGE_MAINT_ON:  return do_freeze;
	case PLAN_STAGE_MIGRATE:   return do_migrate;
	case PLAN_STAGE_SYNC:      return do_sync;
	case PLAN_STAGE_VERIFY:    return do_verify;
	case PLAN_STAGE_MAINT_OFF: return do_thaw;
	case PLAN_STAGE_REPORT:    return do_report;
	case PLAN_STAGE_COUNT:     break;
	}
	return NULL;
}

/* Runs the enabled stages from `from` on; returns the exit code of the first that fails, else 0. */
static int
run_stages(struct runner *r, enum plan_stage from, enum plan_stage *stopped)
{
	for (int s = from; s < PLAN_STAGE_COUNT; s++) {
		if (!plan_stage_enabled(r->plan, (enum plan_stage)s))
			continue;
		const char *name = plan_stage_name((enum plan_stage)s);
		if (!r->o->json)
			printf("\n== %s\n", name);
		fflush(stdout);
		json_t *entry = json_pack("{s:s}", "stage", name);
		json_array_append_new(r->stages, entry);
		struct rb_error err = {0};
		long long t0 = time_monotonic_ms();
		int code = stage_function((enum plan_stage)s)(r, entry, &err);
		if (rb_ctx_cancelled(&r->ctx) && code == RB_EXIT_OK)
			code = RB_EXIT_STEP;
		stage_timing(r, (enum plan_stage)s, time_monotonic_ms() - t0, entry);
		json_object_set_new(entry, "status", json_string(code == RB_EXIT_OK ? "done" : "failed"));
		if (code != RB_EXIT_OK) {
			json_object_set_new(entry, "error", json_pack("{s:s?, s:s?, s:s?}", "message", err.message, "detail",
			                                              err.detail, "hint", err.hint));
			if (!r->o->json) {
				print_error_lines(r, &err);
				printf("  %s: FAILED\n", name);
			}
			rb_error_clear(&err);
			*stopped = (enum plan_stage)s;
			return code;
		}
		if (!r->o->json)
			printf("  %s: done\n", name);
		rb_error_clear(&err);
	}
	return RB_EXIT_OK;
}

/* Ends the run: finished when every stage is done; left open (resumable) when one stopped it. */
static int
run_end(struct runner *r, int code, enum plan_stage stopped, bool any)
{
	struct rb_error jerr = {0};
	/* The time of this invocation (a resumed run counts each part against the total on its own). */
	long long total = time_monotonic_ms() - r->t0;
	bool over_total = r->plan->budget_total_ms > 0 && total > r->plan->budget_total_ms;
	if (over_total) {
		char el[32], bd[32];
		time_format_elapsed(total, el, sizeof el);
		plan_format_duration(r->plan->budget_total_ms, bd, sizeof bd);
		json_t *d = json_pack("{s:s, s:I, s:I}", "stage", "total", "elapsed_ms", (json_int_t)total, "budget_ms",
		                      (json_int_t)r->plan->budget_total_ms);
		events_emitf(r->bus, EV_OVER_BUDGET, NULL, d, "the run took %s, over its total budget of %s", el, bd);
		json_decref(d);
	}
	if (code == RB_EXIT_OK) {
		code = cli_run_finish(r->j, r->bus, code, "every stage done", &jerr);
		/* The report again, now that the run is finished (the report stage wrote it just before). */
		struct rb_error e = {0};
		if (code == RB_EXIT_OK) {
			char *path = report_write_run(journal_dir(r->j), r->plan, NULL, &e);
			if (path == NULL)
				cli_print_error(&e);
			free(path);
		}
		rb_error_clear(&e);
	} else if (journal_failed(r->j, &jerr)) {
		code = RB_EXIT_STEP;
	}
	if (r->o->json) {
		json_t *o = json_pack("{s:s, s:s, s:b, s:s?, s:O, s:I, s:o, s:b, s:i}", "run_id", journal_run_id(r->j),
		                      "run_dir", journal_dir(r->j), "ok", code == RB_EXIT_OK,
		                      "stopped_at", code == RB_EXIT_OK || !any ? NULL : plan_stage_name(stopped),
		                      "stages", r->stages, "ms", (json_int_t)total,
		                      "budget_total_ms", r->plan->budget_total_ms > 0 ? json_integer(r->plan->budget_total_ms)
		                                                                      : json_null(),
		                      "over_budget", over_total, "exit_code", code);
		cli_print_json(o);
	} else {
		char el[32], bd[32];
		time_format_elapsed(total, el, sizeof el);
		if (r->plan->budget_total_ms > 0) {
			plan_format_duration(r->plan->budget_total_ms, bd, sizeof bd);
			printf("\ntotal time: %s of %s%s\n", el, bd, over_total ? "  OVER BUDGET" : "");
		} else {
			printf("\ntotal time: %s\n", el);
		}
		if (code == RB_EXIT_OK) {
			printf("run %s: every stage done\n", journal_run_id(r->j));
		} else if (any) {
			printf("run %s: stopped at %s; the run stays open: pgrunbook resume %s --headless ...\n",
			       journal_run_id(r->j), plan_stage_name(stopped), journal_run_id(r->j));
			if (stopped > PLAN_STAGE_MAINT_ON && stopped < PLAN_STAGE_MAINT_OFF &&
			    plan_stage_enabled(r->plan, PLAN_STAGE_MAINT_ON))
				printf("the target (%s) is still frozen by this run: pgrunbook maintenance off --plan %s; or undo "
				       "the change first: pgrunbook rollback --plan %s --run %s\n", r->plan->target, r->plan->path,
				       r->plan->path, journal_run_id(r->j));
		}
		cli_run_report(r->j, &jerr);
	}
	rb_error_clear(&jerr);
	return code;
}

static void
runner_free(struct runner *r)
{
	free(r->backup_path);
	free(r->manifest_path);
	json_decref(r->stages);
}

/* --- options --- */

enum { OPT_REVIEW = 256, OPT_BACKUP, OPT_WAIVE, OPT_OVERWRITE, OPT_LOCK_WAIT, OPT_HEADLESS };

/* Parses the options run and headless resume share; returns -1 when fine, else an exit code. */
static int
parse_opts(const char *cmd, int argc, char **argv, struct run_opts *o, const char **plan_path, const char **run,
           bool *headless)
{
	static const struct option longopts[] = {
		{"plan", required_argument, NULL, 'p'},
		{"confirm", required_argument, NULL, 'c'},
		{"review", required_argument, NULL, OPT_REVIEW},
		{"backup", required_argument, NULL, OPT_BACKUP},
		{"waive-backup", required_argument, NULL, OPT_WAIVE},
		{"allow-protected-overwrite", no_argument, NULL, OPT_OVERWRITE},
		{"lock-wait", required_argument, NULL, OPT_LOCK_WAIT},
		{"headless", no_argument, NULL, OPT_HEADLESS},
		{"json", no_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int c;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		switch (c) {
		case 'p': *plan_path = optarg; break;
		case 'c': strlist_push(&o->confirms, optarg); break;
		case OPT_REVIEW: o->review = optarg; break;
		case OPT_BACKUP: o->backup = optarg; break;
		case OPT_WAIVE: o->waive_backup = optarg; break;
		case OPT_OVERWRITE: o->allow_overwrite = true; break;
		case OPT_LOCK_WAIT:
			if (!cli_parse_seconds(optarg, 86400, &o->lock_wait_ms))
				return cli_usage_error(cmd, "--lock-wait wants seconds, not \"%s\"", optarg);
			break;
		case OPT_HEADLESS:
			if (headless == NULL)
				return cli_usage_error(cmd, "unknown option \"--headless\"");
			*headless = true;
			break;
		case 'j': o->json = true; break;
		case 'h': usage(stdout); return RB_EXIT_OK;
		case ':': return cli_usage_error(cmd, "option \"%s\" needs a value", argv[optind - 1]);
		default: return cli_usage_error(cmd, "unknown option \"%s\"", argv[optind - 1]);
		}
	}
	if (run && optind < argc)
		*run = argv[optind++];
	if (optind < argc)
		return cli_usage_error(cmd, "unexpected argument \"%s\"", argv[optind]);
	return -1;
}

int
cmd_run(int argc, char **argv)
{
	struct run_opts o = {0};
	const char *plan_path = NULL;
	int code = parse_opts("run", argc, argv, &o, &plan_path, NULL, NULL);
	if (code >= 0) {
		strlist_free(&o.confirms);
		return code;
	}
	if (plan_path == NULL) {
		strlist_free(&o.confirms);
		return cli_usage_error("run", "--plan FILE is required");
	}
	struct plan *plan = cli_load_plan(plan_path);
	if (plan == NULL) {
		strlist_free(&o.confirms);
		return RB_EXIT_PLAN;
	}
	struct runner r = { .plan = plan, .bus = events_new(), .o = &o, .stages = json_array(),
	                    .t0 = time_monotonic_ms() };
	code = RB_EXIT_OK;
	r.j = cli_run_open(plan, r.bus, &code);
	if (r.j == NULL) {
		events_free(r.bus);
		runner_free(&r);
		plan_free(plan);
		strlist_free(&o.confirms);
		return code;
	}
	events_subscribe(r.bus, print_event, &r);
	events_log(r.bus, LOG_LEVEL_INFO, NULL, "pgrunbook run of %s on %s, by %s", plan->name, plan->target,
	           util_user_name());
	if (!o.json)
		printf("run %s: %s (%s), target %s\n", journal_run_id(r.j), plan->name, plan->path, plan->target);
	r.ctx = (struct rb_ctx){ .bus = r.bus, .cancel = cli_cancel_begin() };
	enum plan_stage stopped = PLAN_STAGE_PREFLIGHT;
	code = run_stages(&r, PLAN_STAGE_PREFLIGHT, &stopped);
	cli_cancel_end();
	code = run_end(&r, code, stopped, true);
	cli_notify_detach();
	journal_close(r.j);
	events_free(r.bus);
	runner_free(&r);
	plan_free(plan);
	strlist_free(&o.confirms);
	return code;
}

/* --- headless resume --- */

static bool
stage_finished(enum run_stage_status s)
{
	return s == STAGE_DONE || s == STAGE_SKIPPED || s == STAGE_WAIVED;
}

/*
 * Re-checks what the stage `from` needs after a break, on the replayed run st. May move `from`
 * back (a freeze to take again). Fills the runner's backup state from the journal.
 */
static bool
resume_prepare(struct runner *r, const struct run_state *st, enum plan_stage *from, struct rb_error *err)
{
	/* The run's backup: its last backup stage_result, when the stage is done. */
	json_t *bres = st->stages[PLAN_STAGE_BACKUP].result;
	if (st->stages[PLAN_STAGE_BACKUP].status == STAGE_DONE && bres) {
		const char *path = json_string_value(json_object_get(bres, "path"));
		const char *man = json_string_value(json_object_get(bres, "manifest"));
		r->backup_path = path ? xstrdup(path) : NULL;
		r->manifest_path = man ? xstrdup(man) : NULL;
	}
	if (*from > PLAN_STAGE_BACKUP && *from <= PLAN_STAGE_SYNC && plan_stage_enabled(r->plan, PLAN_STAGE_BACKUP)) {
		/* The run's own backup must still be there and intact (not merely some later backup). */
		struct backup_result found = {0};
		struct rb_error e = {0};
		if (r->backup_path && backup_check(r->plan, NULL, r->backup_path, &found, &e)) {
			r->backup_ok = true;
			if (!r->o->json)
				printf("  backup: %s still verified and intact\n", r->backup_path);
		} else if (r->backup_path) {
			events_log(r->bus, LOG_LEVEL_WARN, "backup", "the run's backup %s no longer counts: %s (migrate and sync "
			           "now need --waive-backup, or a new run with a new backup)", r->backup_path,
			           e.message ? e.message : "not found");
		}
		backup_result_free(&found);
		rb_error_clear(&e);
	}
	if (st->stages[PLAN_STAGE_BACKUP].status == STAGE_WAIVED)
		r->backup_ok = true;

	if (!plan_stage_enabled(r->plan, PLAN_STAGE_MAINT_ON))
		return true;
	/* A freeze the run left half applied (killed during maintenance on): thaw it, take it again. */
	json_t *undo = maint_pending_undo(st);
	bool half = st->stages[PLAN_STAGE_MAINT_ON].status != STAGE_DONE && json_array_size(undo) > 0;
	bool ok = true;
	if (half) {
		if (!r->o->json)
			printf("\n== thaw of the interrupted freeze\n");
		events_log(r->bus, LOG_LEVEL_WARN, MAINT_STAGE_ON, "the run was interrupted during maintenance on: thawing "
		           "the %zu layer%s it recorded before freezing again", json_array_size(undo),
		           json_array_size(undo) == 1 ? "" : "s");
		json_t *res = NULL;
		ok = maint_thaw_records(r->plan, NULL, undo, util_user_name(), r->j, &r->ctx, &res, err);
		json_t *entry = json_pack("{s:s, s:s, s:o?}", "stage", "thaw_interrupted", "status", ok ? "done" : "failed",
		                          "result", res);
		json_array_append_new(r->stages, entry);
		if (ok && *from > PLAN_STAGE_MAINT_ON)
			*from = PLAN_STAGE_MAINT_ON;
	} else if (st->stages[PLAN_STAGE_MAINT_ON].status == STAGE_DONE && *from > PLAN_STAGE_MAINT_ON &&
	           *from < PLAN_STAGE_MAINT_OFF) {
		/* Frozen by this run: still? Someone may have thawed it while the run was away. */
		json_t *status = NULL;
		ok = maint_status(r->plan, NULL, &r->ctx, &status, err);
		const char *by = json_string_value(json_object_get(status, "run"));
		bool ours = json_is_true(json_object_get(status, "frozen")) && by && strcmp(by, st->id) == 0;
		if (ok && !ours) {
			events_log(r->bus, LOG_LEVEL_WARN, MAINT_STAGE_ON, "%s is no longer frozen by this run%s%s: freezing it "
			           "again before %s", r->plan->target, by ? " (the freeze is run " : "", by ? by : "",
			           plan_stage_name(*from));
			*from = PLAN_STAGE_MAINT_ON;
		} else if (ok && !r->o->json) {
			printf("  %s is still frozen by this run\n", r->plan->target);
		}
		json_decref(status);
	}
	json_decref(undo);
	return ok;
}

/* `pgrunbook resume RUN --headless ...`: continues the run at its first stage not done. */
int
cli_run_resume(int argc, char **argv)
{
	struct run_opts o = {0};
	const char *plan_path = NULL, *run = NULL;
	bool headless = false;
	int code = parse_opts("resume", argc, argv, &o, &plan_path, &run, &headless);
	if (code >= 0) {
		strlist_free(&o.confirms);
		return code;
	}
	struct rb_error err = {0};
	char *dir = NULL;
	if (run == NULL) {
		/* The newest run that is not finished, as the wizard's resume picks it. */
		struct run_state *runs = NULL;
		size_t n = 0;
		if (journal_list_runs(NULL, &runs, &n, &err))
			for (size_t i = 0; i < n && dir == NULL; i++)
				if (runs[i].finished == NULL)
					dir = xstrdup(runs[i].dir);
		for (size_t i = 0; i < n; i++)
			run_state_free(&runs[i]);
		free(runs);
		if (dir == NULL && err.message == NULL) {
			rb_error_setc(&err, RB_EXIT_STEP, "no run to resume");
			rb_error_detail(&err, "Every recorded run is finished, or there is none yet.");
			rb_error_hint(&err, "Start one with \"pgrunbook run --plan FILE\".");
		}
	} else {
		dir = journal_find_run(NULL, run, &err);
	}
	struct run_state st = {0};
	bool replayed = dir && journal_replay(dir, &st, &err);
	struct plan *plan = NULL;
	if (replayed) {
		if (st.torn) {
			rb_error_setc(&err, RB_EXIT_STEP, "run %s has a damaged journal: %s", st.id, st.torn_message);
			replayed = false;
		} else if (plan_path == NULL && st.plan_path == NULL) {
			rb_error_setc(&err, RB_EXIT_STEP, "run %s does not name its plan", st.id);
			rb_error_hint(&err, "Give the plan with --plan FILE.");
			replayed = false;
		}
	}
	if (!replayed) {
		cli_print_error(&err);
		rb_error_clear(&err);
		run_state_free(&st);
		free(dir);
		strlist_free(&o.confirms);
		return RB_EXIT_STEP;
	}
	plan = cli_load_plan(plan_path ? plan_path : st.plan_path);
	if (plan == NULL) {
		run_state_free(&st);
		free(dir);
		strlist_free(&o.confirms);
		return RB_EXIT_PLAN;
	}
	struct runner r = { .plan = plan, .bus = events_new(), .o = &o, .stages = json_array(),
	                    .t0 = time_monotonic_ms() };
	r.j = journal_open(NULL, dir, plan, &err);
	if (r.j == NULL) {
		cli_print_error(&err);
		code = err.code ? err.code : RB_EXIT_STEP;
		rb_error_clear(&err);
		events_free(r.bus);
		runner_free(&r);
		run_state_free(&st);
		plan_free(plan);
		free(dir);
		strlist_free(&o.confirms);
		return code;
	}
	journal_attach(r.j, r.bus);
	cli_notify_attach(plan, r.j, r.bus, true, false);
	events_subscribe(r.bus, print_event, &r);
	r.ctx = (struct rb_ctx){ .bus = r.bus, .cancel = cli_cancel_begin() };
	/* The total counts from the run's start, not this invocation's (the budget is the run's). */
	long long started;
	if (time_parse_rfc3339(st.started, &started))
		r.t0 -= time_now_ms() - started;

	enum plan_stage from = PLAN_STAGE_COUNT;
	for (int s = 0; s < PLAN_STAGE_COUNT && from == PLAN_STAGE_COUNT; s++)
		if (plan_stage_enabled(plan, (enum plan_stage)s) && !stage_finished(st.stages[s].status))
			from = (enum plan_stage)s;
	events_log(r.bus, LOG_LEVEL_INFO, NULL, "pgrunbook resume --headless by %s at %s", util_user_name(),
	           from < PLAN_STAGE_COUNT ? plan_stage_name(from) : "the end");
	if (!o.json)
		printf("run %s: resuming %s at %s\n", st.id, plan->name, from < PLAN_STAGE_COUNT ? plan_stage_name(from) :
		       "the end (every stage is done)");
	enum plan_stage stopped = from;
	bool prepared = resume_prepare(&r, &st, &from, &err);
	if (!prepared) {
		print_error_lines(&r, &err);
		code = err.code ? err.code : RB_EXIT_STEP;
		rb_error_clear(&err);
		stopped = PLAN_STAGE_MAINT_ON;
	} else {
		code = from < PLAN_STAGE_COUNT ? run_stages(&r, from, &stopped) : RB_EXIT_OK;
	}
	cli_cancel_end();
	code = run_end(&r, code, stopped, true);
	cli_notify_detach();
	journal_close(r.j);
	events_free(r.bus);
	runner_free(&r);
	run_state_free(&st);
	plan_free(plan);
	free(dir);
	strlist_free(&o.confirms);
	return code;
}
