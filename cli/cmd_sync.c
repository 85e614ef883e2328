/* cmd_sync.c: `pgrunbook sync diff`: the exact diff of the plan's sync tables, as text or JSON. */
#include "config.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "core/db.h"
#include "core/error.h"
#include "core/events.h"
#include "core/journal.h"
#include "core/sync.h"
#include "core/sync_apply.h"
#include "core/sync_plan.h"
#include "core/sync_review.h"
#include "core/util.h"

static void
usage(FILE *f)
{
	fputs("Usage: pgrunbook sync diff --plan FILE [--table T] [--rows] [--out REVIEW] [--json]\n"
	      "       pgrunbook sync apply --plan FILE --review REVIEW --confirm \"apply DB\"\n"
	      "                            [--allow-protected-overwrite --confirm-overwrite I_UNDERSTAND_PROD_OVERWRITE]\n"
	      "                            [--confirm-delete \"delete DB\"] [--waive-backup \"waive-backup DB\"]\n"
	      "                            [--lock-wait SECONDS] [--json]\n\n"
	      "diff compares the plan's sync tables between the source and the target, row by row and\n"
	      "column by column (read-only). Tables the plan does not list, and tables in skip mode,\n"
	      "are skipped and named. For each table: mode, key, on_conflict, protected and the\n"
	      "counts to_insert, to_update, to_delete, conflicts, differs_kept (rows that differ but\n"
	      "where the target's row is kept: append, prod_wins) and unchanged. With --out it saves\n"
	      "the review file (the plan's hash, each table's counts, the rows to write and the target\n"
	      "rows they replace, a digest of those) and records the diff as a run in the journal.\n\n"
	      "apply writes exactly what a review holds to the target (DB is the target database's\n"
	      "name). It refuses, writing nothing, when the review is of another plan or target, was\n"
	      "changed, holds a conflict, changes rows of a protected table without\n"
	      "--allow-protected-overwrite and --confirm-overwrite, appends to a protected table whose\n"
	      "plan entry does not set mode itself, or would delete rows (delete: true) without\n"
	      "--confirm-delete. Without a verified backup of the target taken by \"pgrunbook backup\"\n"
	      "within backup.max_age it needs --waive-backup. Tables are applied parents first\n"
	      "(foreign keys), one transaction each: one INSERT, UPDATE and DELETE each touch exactly\n"
	      "the reviewed rows, the rows updated or deleted must be as reviewed (else the table\n"
	      "rolls back: diff again), and sequences behind serial and identity\n"
	      "columns are moved past the new maximum. The first failing table is rolled back and the\n"
	      "later ones are not touched.\n\n"
	      "Options:\n"
	      "  --plan FILE    the runbook plan\n"
	      "  --table T      diff: only this table (as the plan writes it, or schema.table)\n"
	      "  --rows         diff: also list each changed row with its changed columns (old -> new);\n"
	      "                 as text they stream out, with --json they are held in memory\n"
	      "  --out REVIEW   diff: save the review file to REVIEW (only when every table diffed)\n"
	      "  --review FILE  apply: the review file to apply\n"
	      "  --confirm PHRASE            apply: \"apply DB\"\n"
	      "  --allow-protected-overwrite apply: allow changing rows of protected tables ...\n"
	      "  --confirm-overwrite PHRASE  ... with the phrase I_UNDERSTAND_PROD_OVERWRITE\n"
	      "  --confirm-delete PHRASE     apply: \"delete DB\" when the review deletes rows\n"
	      "  --waive-backup PHRASE       apply: without a verified backup (\"waive-backup DB\")\n"
	      "  --lock-wait SECONDS         apply: wait this long for the one-writer lock (default 10)\n"
	      "  --json         print the result as JSON\n"
	      "\nExit codes: 0 done, 1 usage, 2 connection failure, 3 a table could not be diffed\n"
	      "(missing table, no key, type mismatch, duplicate key), apply refused or a table failed\n"
	      "(rolled back), or cancelled, 4 invalid plan.\n", f);
}

struct table_out {
	bool    json;
	bool    rows;
	bool    out;      /* a review file is asked for */
	bool    started;  /* both sides connected: the diff's output begins */
	json_t *jrows;    /* --json --rows: the current table's rows */
};

/* A value for people: NULL, or single-quoted with quotes doubled and control characters escaped. */
static void
print_value(const struct sync_value *v)
{
	if (v->data == NULL) {
		fputs("NULL", stdout);
		return;
	}
	putchar('\'');
	for (size_t i = 0; i < v->len; i++) {
		unsigned char c = (unsigned char)v->data[i];
		if (c == '\'')
			fputs("''", stdout);
		else if (c == '\n')
			fputs("\\n", stdout);
		else if (c == '\t')
			fputs("\\t", stdout);
		else if (c == '\r')
			fputs("\\r", stdout);
		else if (c < 0x20 || c == 0x7f)
			printf("\\x%02x", c);
		else
			putchar(c);
	}
	putchar('\'');
}

static json_t *
json_value(const struct sync_value *v)
{
	if (v->data == NULL)
		return json_null();
	json_t *s = json_stringn(v->data, v->len);
	return s ? s : json_string("(not valid UTF-8)");
}

static void
print_key(const struct sync_spec *spec, const struct sync_value *vals)
{
	putchar('(');
	for (size_t i = 0; i < spec->nkey; i++)
		printf("%s%s", i ? ", " : "", spec->cols[i].name);
	fputs(")=(", stdout);
	for (size_t i = 0; i < spec->nkey; i++) {
		if (i)
			fputs(", ", stdout);
		fwrite(vals[i].data ? vals[i].data : "NULL", 1, vals[i].data ? vals[i].len : 4, stdout);
	}
	putchar(')');
}

static void
on_row(const struct sync_spec *spec, const struct sync_row *row, void *userdata)
{
	struct table_out *o = userdata;
	const struct sync_value *keyvals = row->src ? row->src : row->dst;
	if (o->json) {
		json_t *r = json_object();
		json_object_set_new(r, "kind", json_string(sync_kind_name(row->kind)));
		json_t *key = json_object(), *changed = json_array();
		for (size_t i = 0; i < spec->nkey; i++)
			json_object_set_new(key, spec->cols[i].name, json_value(&keyvals[i]));
		json_object_set_new(r, "key", key);
		for (size_t i = 0; row->changed && i < row->ncols; i++)
			if (row->changed[i])
				json_array_append_new(changed, json_string(spec->cols[i].name));
		json_object_set_new(r, "changed", changed);
		for (int side = 0; side < 2; side++) {
			const struct sync_value *vals = side == 0 ? row->src : row->dst;
			json_t *v = json_null();
			if (vals) {
				v = json_object();
				for (size_t i = 0; i < row->ncols; i++)
					json_object_set_new(v, spec->cols[i].name, json_value(&vals[i]));
			}
			json_object_set_new(r, side == 0 ? "source" : "target", v);
		}
		json_array_append_new(o->jrows, r);
		return;
	}
	printf("  %s ", sync_kind_name(row->kind));
	print_key(spec, keyvals);
	putchar('\n');
	for (size_t i = spec->nkey; i < row->ncols; i++) {
		if (row->changed) {
			if (!row->changed[i])
				continue;
			printf("      %s: ", spec->cols[i].name);
			print_value(&row->dst[i]);
			fputs(" -> ", stdout);
			print_value(&row->src[i]);
		} else {
			printf("      %s: ", spec->cols[i].name);
			print_value(row->src ? &row->src[i] : &row->dst[i]);
		}
		putchar('\n');
	}
	for (size_t i = 0; row->changed && i < spec->nkey; i++)
		if (row->changed[i]) {
			printf("      %s (key, same value): ", spec->cols[i].name);
			print_value(&row->dst[i]);
			fputs(" -> ", stdout);
			print_value(&row->src[i]);
			putchar('\n');
		}
}

static const char *
key_list(const struct sync_spec *spec, char *buf, size_t len)
{
	size_t w = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < spec->nkey && w < len; i++)
		w += (size_t)snprintf(buf + w, len - w, "%s%s", i ? ", " : "", spec->cols[i].name);
	return buf;
}

static void
print_header(const struct plan_sync_table *t, const struct sync_spec *spec, const char *display)
{
	printf("%s\n", display);
	printf("  mode:         %s\n", plan_mode_name(t->mode));
	if (spec) {
		char kb[512];
		printf("  key:          %s (%s)\n", key_list(spec, kb, sizeof kb),
		       spec->key_from_plan ? "plan" : "primary key");
	}
	printf("  on_conflict:  %s\n", plan_on_conflict_name(t->on_conflict));
	printf("  protected:    %s\n", t->protected_ ? "yes" : "no");
	printf("  delete:       %s\n", t->delete_rows ? "yes" : "no");
}

static json_t *
json_error(const struct rb_error *err)
{
	return json_pack("{s:s?, s:s?, s:s?}", "message", err->message, "detail", err->detail,
	                 "hint", err->hint);
}

/* The front end's side of sync_diff_plan(): it prints as the diff goes. */
static void
diff_begin(const char *source, const char *target, const char *database, void *userdata)
{
	struct table_out *o = userdata;
	(void)database;
	o->started = true;
	if (!o->json)
		printf("sync diff: %s -> %s (read-only%s)\n", source, target, o->out ? "" : "; no review file saved");
}

static void
diff_table_begin(const struct plan_sync_table *t, const char *display, const struct sync_spec *spec,
                 void *userdata)
{
	struct table_out *o = userdata;
	json_decref(o->jrows);
	o->jrows = o->json && o->rows ? json_array() : NULL;
	if (o->json)
		return;
	putchar('\n');
	print_header(t, spec, display);
	if (spec && o->rows)
		fflush(stdout);
}

static json_int_t
count_of(const json_t *table, const char *name)
{
	return json_integer_value(json_object_get(json_object_get(table, "counts"), name));
}

static void
diff_table_end(const struct plan_sync_table *t, const struct sync_spec *spec, json_t *table,
               const struct rb_error *err, void *userdata)
{
	struct table_out *o = userdata;
	(void)spec;
	if (err == NULL && o->jrows) {
		json_object_set_new(table, "rows", o->jrows);
		o->jrows = NULL;
	}
	json_decref(o->jrows);
	o->jrows = NULL;
	if (!o->json && err == NULL) {
		printf("  to_insert:    %" JSON_INTEGER_FORMAT "\n", count_of(table, "to_insert"));
		printf("  to_update:    %" JSON_INTEGER_FORMAT "\n", count_of(table, "to_update"));
		printf("  to_delete:    %" JSON_INTEGER_FORMAT "%s\n", count_of(table, "to_delete"),
		       count_of(table, "to_delete") && !t->delete_rows ? " (reported only; the plan does not delete)" : "");
		printf("  conflicts:    %" JSON_INTEGER_FORMAT "\n", count_of(table, "conflicts"));
		printf("  differs_kept: %" JSON_INTEGER_FORMAT "\n", count_of(table, "differs_kept"));
		printf("  unchanged:    %" JSON_INTEGER_FORMAT "\n", count_of(table, "unchanged"));
		printf("  digest:       %s\n", json_string_value(json_object_get(table, "digest")));
	} else if (!o->json) {
		char *m = rb_error_format(err);
		printf("  error:        %s\n", m);
		free(m);
	}
	if (err) {
		fflush(stdout);
		cli_print_error(err);
	}
}

static int
sync_diff(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"plan", required_argument, NULL, 'p'},
		{"table", required_argument, NULL, 't'},
		{"rows", no_argument, NULL, 'r'},
		{"out", required_argument, NULL, 'o'},
		{"json", no_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *plan_path = NULL, *only = NULL, *out_path = NULL;
	bool json = false, rows = false;
	int c;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		switch (c) {
		case 'p': plan_path = optarg; break;
		case 't': only = optarg; break;
		case 'r': rows = true; break;
		case 'o': out_path = optarg; break;
		case 'j': json = true; break;
		case 'h': usage(stdout); return RB_EXIT_OK;
		case ':': return cli_usage_error("sync", "option \"%s\" needs a value", argv[optind - 1]);
		default: return cli_usage_error("sync", "unknown option \"%s\"", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return cli_usage_error("sync", "unexpected argument \"%s\"", argv[optind]);
	if (plan_path == NULL)
		return cli_usage_error("sync", "--plan FILE is required");

	struct plan *plan = cli_load_plan(plan_path);
	if (plan == NULL)
		return RB_EXIT_PLAN;
	struct rb_error err = {0}, jerr = {0};
	if (only) {
		bool found = false;
		for (size_t i = 0; i < plan->sync.ntables && !found; i++) {
			char *q = sync_table_display(plan, plan->sync.tables[i].name);
			found = strcmp(plan->sync.tables[i].name, only) == 0 || strcmp(q, only) == 0;
			free(q);
		}
		if (!found && plan->sync.present && plan->source) {
			plan_free(plan);
			return cli_usage_error("sync", "table \"%s\" is not in the plan's sync tables", only);
		}
	}

	int code = RB_EXIT_OK;
	struct events *bus = events_new();
	struct journal *j = NULL;
	if (out_path && plan->sync.present && plan->source) {
		j = cli_run_open(plan, bus, &code);
		if (j == NULL) {
			events_free(bus);
			plan_free(plan);
			return code;
		}
		events_log(bus, LOG_LEVEL_INFO, "sync", "pgrunbook sync diff %s -> %s by %s, review file %s", plan->source,
		           plan->target, util_user_name(), out_path);
	}

	struct table_out to = { .json = json, .rows = rows, .out = out_path != NULL };
	struct sync_diff_hooks hooks = { .row = rows ? on_row : NULL, .userdata = &to };
	struct sync_plan_opts opts = {
		.only = only, .review_path = out_path, .who = util_user_name(),
		.begin = diff_begin, .table_begin = diff_table_begin, .table_end = diff_table_end,
		.hooks = &hooks, .userdata = &to,
	};
	struct rb_ctx ctx = { .bus = bus, .cancel = cli_cancel_begin() };
	json_t *res = NULL;
	bool ok = sync_diff_plan(plan, &opts, &ctx, &res, &err);
	bool cancelled = rb_ctx_cancelled(&ctx);
	cli_cancel_end();
	json_decref(to.jrows);
	code = ok ? RB_EXIT_OK : err.code ? err.code : RB_EXIT_STEP;
	bool saved = json_is_string(json_object_get(res, "review_file"));
	/* A table's error was printed with the table; a failure of the whole is printed here. */
	if (!ok && (!to.started || !json_is_null(json_object_get(res, "error")))) {
		fflush(stdout);
		cli_print_error(&err);
	}
	if (j)
		code = cli_run_finish(j, bus, code, saved ? "sync diff: review saved" : "sync diff failed", &jerr);
	if (!to.started) {
		/* Nothing was diffed (a plan without sync, a connection or review file failure). */
	} else if (json) {
		json_object_set_new(res, "ok", json_boolean(code == RB_EXIT_OK));
		json_object_set_new(res, "exit_code", json_integer(code));
		if (j)
			json_object_set_new(res, "run_id", json_string(journal_run_id(j)));
		cli_print_json(res);
		res = NULL;
	} else {
		json_t *jskipped = json_object_get(res, "skipped");
		printf("\nskipped:");
		size_t n = json_array_size(jskipped);
		if (n == 0)
			printf(" none");
		putchar('\n');
		for (size_t i = 0; i < n; i++) {
			json_t *s = json_array_get(jskipped, i);
			printf("  %s (%s)\n", json_string_value(json_object_get(s, "table")),
			       json_string_value(json_object_get(s, "reason")));
		}
		printf("\nsync diff: %s\n", code == RB_EXIT_OK ? "done" :
		       cancelled ? "cancelled" : "failed for at least one table");
		if (saved)
			printf("review saved to %s\n", out_path);
		else if (out_path)
			printf("no review file saved\n");
	}
	fflush(stdout);
	if (j) {
		cli_run_report(j, &jerr);
		journal_close(j);
	}
	json_decref(res);
	rb_error_clear(&jerr);
	rb_error_clear(&err);
	events_free(bus);
	plan_free(plan);
	return code;
}

/* Prints each table's apply as it ends (text mode). */
static void
print_apply_event(const struct rb_event *ev, void *userdata)
{
	(void)userdata;
	if (ev->type == EV_STEP && ev->data && ev->message) {
		const char *state = json_string_value(json_object_get(ev->data, "state"));
		if (state && strcmp(state, "started") != 0)
			printf("  %s\n", ev->message);
		else if (state == NULL)
			printf("  %s\n", ev->message);
		fflush(stdout);
	} else if (ev->type == EV_LOG && ev->level >= LOG_LEVEL_WARN && ev->message) {
		fprintf(stderr, "pgrunbook: %s\n", ev->message);
	}
}

static int
sync_apply_cmd(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"plan", required_argument, NULL, 'p'},
		{"review", required_argument, NULL, 'r'},
		{"confirm", required_argument, NULL, 'c'},
		{"allow-protected-overwrite", no_argument, NULL, 'a'},
		{"confirm-overwrite", required_argument, NULL, 'o'},
		{"confirm-delete", required_argument, NULL, 'd'},
		{"waive-backup", required_argument, NULL, 'w'},
		{"lock-wait", required_argument, NULL, 'l'},
		{"json", no_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *plan_path = NULL, *review_path = NULL;
	struct sync_apply_opts opts = { .who = util_user_name() };
	bool json = false;
	int c;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		switch (c) {
		case 'p': plan_path = optarg; break;
		case 'r': review_path = optarg; break;
		case 'c': opts.confirm = optarg; break;
		case 'a': opts.allow_protected_overwrite = true; break;
		case 'o': opts.confirm_overwrite = optarg; break;
		case 'd': opts.confirm_delete = optarg; break;
		case 'w': opts.waive_backup = optarg; break;
		case 'l': {
			long long ms;
			if (!cli_parse_seconds(optarg, 3600, &ms))
				return cli_usage_error("sync", "--lock-wait takes seconds from 0 to 3600, not \"%s\"", optarg);
			opts.lock_wait_ms = ms > 0 ? ms : 1;
			break;
		}
		case 'j': json = true; break;
		case 'h': usage(stdout); return RB_EXIT_OK;
		case ':': return cli_usage_error("sync", "option \"%s\" needs a value", argv[optind - 1]);
		default: return cli_usage_error("sync", "unknown option \"%s\"", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return cli_usage_error("sync", "unexpected argument \"%s\"", argv[optind]);
	if (plan_path == NULL)
		return cli_usage_error("sync", "--plan FILE is required");
	if (review_path == NULL)
		return cli_usage_error("sync", "--review FILE is required (make one with: pgrunbook sync diff --plan "
		                       "FILE --out REVIEW)");

	struct plan *plan = cli_load_plan(plan_path);
	if (plan == NULL)
		return RB_EXIT_PLAN;
	struct rb_error err = {0}, jerr = {0};
	if (!plan->sync.present || plan->source == NULL) {
		rb_error_setc(&err, RB_EXIT_PLAN, "the plan has no %s", plan->sync.present ? "source to sync from" :
		              "sync section");
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
		events_subscribe(bus, print_apply_event, NULL);
	events_log(bus, LOG_LEVEL_INFO, "sync", "pgrunbook sync apply of %s to %s, by %s", review_path, plan->target,
	           util_user_name());
	struct sync_review rv;
	struct sync_apply_result res = {0};
	bool loaded = sync_review_load(review_path, plan, &rv, &err), ok = false;
	if (loaded) {
		if (!json)
			printf("sync apply: %s -> %s (database %s), review %s\n", rv.source, rv.target, rv.target_db,
			       review_path);
		fflush(stdout);
		struct rb_ctx ctx = { .bus = bus, .cancel = cli_cancel_begin() };
		ok = sync_apply(plan, &rv, &opts, &ctx, &res, &err);
		cli_cancel_end();
	} else {
		events_emitf(bus, EV_STAGE_FAILED, "sync", NULL, "%s", err.message ? err.message : "bad review file");
		res.refused = true;
	}
	code = ok ? RB_EXIT_OK : err.code ? err.code : RB_EXIT_STEP;
	code = cli_run_finish(j, bus, code, ok ? "sync apply done" : "sync apply failed", &jerr);
	if (json) {
		json_t *o = loaded ? sync_apply_result_json(&res) : json_pack("{s:n, s:b, s:[]}", "database", "refused", 1,
		                                                               "tables");
		json_object_set_new(o, "ok", json_boolean(code == RB_EXIT_OK));
		json_object_set_new(o, "exit_code", json_integer(code));
		json_object_set_new(o, "run_id", json_string(journal_run_id(j)));
		if (!ok)
			json_object_set_new(o, "error", json_error(&err));
		cli_print_json(o);
	} else {
		const char *stopped = NULL;
		for (size_t i = 0; i < res.ntables; i++) {
			const struct sync_apply_table *t = &res.tables[i];
			if (t->state == SYNC_TABLE_NOT_REACHED)
				printf("  %s: not reached\n", t->display);
			if (t->state == SYNC_TABLE_FAILED && !stopped)
				stopped = t->display;
		}
		if (ok)
			printf("sync apply: done\n");
		else if (res.refused)
			printf("sync apply: refused; nothing was written\n");
		else if (stopped)
			printf("sync apply: stopped at %s; later tables were not touched\n", stopped);
		else
			printf("sync apply: failed\n");
	}
	fflush(stdout);
	if (!ok)
		cli_print_error(&err);
	cli_run_report(j, &jerr);
	rb_error_clear(&jerr);
	rb_error_clear(&err);
	if (loaded)
		sync_review_free(&rv);
	sync_apply_result_free(&res);
	events_free(bus);
	journal_close(j);
	plan_free(plan);
	return code;
}

int
cmd_sync(int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? RB_EXIT_USAGE : RB_EXIT_OK;
	}
	if (strcmp(argv[1], "diff") == 0)
		return sync_diff(argc - 1, argv + 1);
	if (strcmp(argv[1], "apply") == 0)
		return sync_apply_cmd(argc - 1, argv + 1);
	return cli_usage_error("sync", "unknown sync command \"%s\" (expected diff or apply)", argv[1]);
}
