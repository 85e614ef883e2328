/* cmd_maintenance.c: `pgrunbook maintenance on|off|status`: the layered write freeze, headless. */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "core/error.h"
#include "core/events.h"
#include "core/journal.h"
#include "core/maintenance.h"

static void
usage(FILE *f)
{
	fputs("Usage: pgrunbook maintenance on --plan FILE [--env NAME] --confirm \"freeze DB\"\n"
	      "                 [--confirm-terminate \"terminate N sessions on DB list CODE\"] [--settle SECONDS] [--json]\n"
	      "       pgrunbook maintenance off --plan FILE [--env NAME] [--run RUN] [--json]\n"
	      "       pgrunbook maintenance status --plan FILE [--env NAME] [--json]\n\n"
	      "on freezes writes to the environment's database (default: the plan's target) in layers,\n"
	      "each one's undo journaled before it is applied: the plan's on_sql and on_command hooks,\n"
	      "pgbouncer PAUSE, blocking new connections (CONNECTION LIMIT 0 when pgrunbook connects as a\n"
	      "superuser, else REVOKE CONNECT from PUBLIC and the roles granted it), default_transaction_read_only\n"
	      "for new sessions, terminating the other sessions (terminate_sessions: ask; they are listed and\n"
	      "need the phrase \"terminate N sessions on DB list CODE\") and the marker pgrunbook.frozen_by (superuser\n"
	      "only). A failing layer undoes the ones before it. Then it watches the write counters for\n"
	      "--settle seconds (default 2) and reports writes that slipped through. Refused when another\n"
	      "run's freeze of the database is not thawed, or while another pgrunbook freezes or thaws it\n"
	      "(advisory lock 1886876258, database oid). Layer statements wait at most 10 s for a lock.\n\n"
	      "off undoes the newest freeze of the database that is not thawed yet (or the freeze of --run\n"
	      "RUN), newest layer first, each undo journaled before it runs, and reports the writes since the\n"
	      "freeze. Undoing is idempotent, so a freeze interrupted by a crash thaws too; a layer already\n"
	      "gone (thawed by hand, the database replaced) counts as done.\n\n"
	      "status (read-only, not journaled) shows whether the database is frozen (a layer really in\n"
	      "place on the server), since when, by which run and whom, the journal's freeze apart (and\n"
	      "when the two disagree), the server's connection limit, read-only setting and marker, and the\n"
	      "writes since the freeze. on and off are journaled as runs.\n\n"
	      "Options:\n"
	      "  --plan FILE                 the plan\n"
	      "  --env NAME                  the environment (default: the target)\n"
	      "  --confirm PHRASE            on: \"freeze DB\"\n"
	      "  --confirm-terminate PHRASE  on: \"terminate N sessions on DB list CODE\" as printed with\n"
	      "                              the sessions listed (CODE names exactly those sessions)\n"
	      "  --settle SECONDS            on: how long to watch for slipped writes (default 2)\n"
	      "  --run RUN                   off: the run whose freeze to undo (id, prefix or directory)\n"
	      "  --json                      print JSON instead of text\n\n"
	      "Exit codes: 0 done (frozen, thawed, status shown), 1 usage, 2 connection failure, 3 refused\n"
	      "or failed (the phrase, other sessions, another run's freeze, a layer), 4 invalid plan.\n", f);
}

static const char *
or_(const char *s, const char *dflt)
{
	return s ? s : dflt;
}

static void
print_event(const struct rb_event *ev, void *userdata)
{
	bool json = *(bool *)userdata;
	if (json)
		return;
	if (ev->type == EV_STEP && ev->message) {
		printf("  %s\n", ev->message);
	} else if (ev->type == EV_PROGRESS && ev->message && ev->data &&
	           strcmp(or_(json_string_value(json_object_get(ev->data, "kind")), ""), "hook_output") == 0) {
		printf("  | %s\n", ev->message);
	} else if (ev->type == EV_LOG && ev->level >= LOG_LEVEL_WARN && ev->message) {
		fprintf(stderr, "pgrunbook: %s\n", ev->message);
	}
	fflush(stdout);
}

static void
print_writes(json_t *w)
{
	if (w == NULL || json_is_null(w))
		return;
	if (json_is_false(json_object_get(w, "comparable"))) {
		printf("  writes since the freeze: %s\n", json_string_value(json_object_get(w, "error")));
		return;
	}
	if (json_object_get(w, "error")) {
		printf("  writes since the freeze: unknown (%s)\n", json_string_value(json_object_get(w, "error")));
		return;
	}
	json_t *tables = json_object_get(w, "tables");
	printf("  writes since the freeze: %zu tables, %" JSON_INTEGER_FORMAT " transactions committed"
	       " (pgrunbook's own included)\n", json_array_size(tables),
	       json_integer_value(json_object_get(w, "xact_commit_delta")));
	size_t i;
	json_t *t;
	json_array_foreach(tables, i, t)
		printf("    %s: %" JSON_INTEGER_FORMAT " inserted, %" JSON_INTEGER_FORMAT " updated, %" JSON_INTEGER_FORMAT
		       " deleted\n", json_string_value(json_object_get(t, "table")),
		       json_integer_value(json_object_get(t, "inserted")), json_integer_value(json_object_get(t, "updated")),
		       json_integer_value(json_object_get(t, "deleted")));
}

static void
print_result(const char *verb, json_t *r)
{
	size_t i;
	json_t *v;
	const char *db = json_string_value(json_object_get(r, "database"));
	bool ok = json_is_true(json_object_get(r, "ok"));
	if (strcmp(verb, "on") == 0)
		printf("maintenance on: %s %s\n", db ? db : "-", ok ? "frozen" : "NOT frozen");
	else
		printf("maintenance off: %s %s\n", db ? db : "-", ok ? "thawed" : "NOT thawed");
	if (json_string_value(json_object_get(r, "run")) && strcmp(verb, "off") == 0)
		printf("  freeze of run %s at %s\n", json_string_value(json_object_get(r, "run")),
		       or_(json_string_value(json_object_get(r, "frozen_at")), "-"));
	json_array_foreach(json_object_get(r, "layers"), i, v)
		printf("  %-14s %-8s %s\n", json_string_value(json_object_get(v, "layer")),
		       json_string_value(json_object_get(v, "state")), or_(json_string_value(json_object_get(v, "detail")), ""));
	if (json_array_size(json_object_get(r, "terminated"))) {
		printf("  terminated:");
		json_array_foreach(json_object_get(r, "terminated"), i, v)
			printf(" %" JSON_INTEGER_FORMAT, json_integer_value(v));
		printf("\n");
	}
	json_array_foreach(json_object_get(r, "not_blocked"), i, v)
		printf("  not blocked: %s\n", json_string_value(v));
	if (strcmp(verb, "on") == 0 && ok) {
		json_t *sl = json_object_get(r, "slipped");
		if (json_array_size(sl) == 0)
			printf("  slipped writes: none\n");
		json_array_foreach(sl, i, v)
			printf("  slipped write: %s: %" JSON_INTEGER_FORMAT " inserted, %" JSON_INTEGER_FORMAT " updated, %"
			       JSON_INTEGER_FORMAT " deleted\n", json_string_value(json_object_get(v, "table")),
			       json_integer_value(json_object_get(v, "inserted")), json_integer_value(json_object_get(v, "updated")),
			       json_integer_value(json_object_get(v, "deleted")));
	}
	print_writes(json_object_get(r, "writes_since_freeze"));
}

static int
maint_run(const struct plan *plan, const char *verb, const struct maint_opts *o, const char *run, bool json)
{
	struct events *bus = events_new();
	int code = RB_EXIT_OK;
	struct journal *j = cli_run_open(plan, bus, &code);
	if (j == NULL) {
		events_free(bus);
		return code;
	}
	events_subscribe(bus, print_event, &json);
	const char *env = o->env ? o->env : plan->target;
	events_log(bus, LOG_LEVEL_INFO, NULL, "pgrunbook maintenance %s of %s, by %s", verb, env, util_user_name());
	struct rb_ctx ctx = { .bus = bus, .cancel = cli_cancel_begin() };
	struct rb_error err = {0};
	json_t *r = NULL;
	bool ok;
	if (strcmp(verb, "on") == 0) {
		struct maint_opts opts = *o;
		opts.run_id = journal_run_id(j);
		ok = maint_on(plan, &opts, j, &ctx, &r, &err);
	} else {
		ok = maint_off(plan, env, run, o->who, j, &ctx, &r, &err);
	}
	cli_cancel_end();
	code = ok ? RB_EXIT_OK : err.code ? err.code : RB_EXIT_STEP;
	struct rb_error jerr = {0};
	char *msg = xasprintf("maintenance %s %s", verb, ok ? "done" : "failed");
	code = cli_run_finish(j, bus, code, msg, &jerr);
	free(msg);
	if (json) {
		json_t *out = r ? json_incref(r) : json_object();
		json_object_set_new(out, "run_id", json_string(journal_run_id(j)));
		json_object_set_new(out, "exit_code", json_integer(code));
		json_object_set_new(out, "error", ok ? json_null() : json_string(err.message ? err.message : ""));
		if (!ok && err.detail)
			json_object_set_new(out, "error_detail", json_string(err.detail));
		if (!ok && err.hint)
			json_object_set_new(out, "error_hint", json_string(err.hint));
		cli_print_json(out);
	} else if (r && json_string_value(json_object_get(r, "database")) &&
	           json_array_size(json_object_get(r, "layers")) > 0) {
		print_result(verb, r);
	}
	fflush(stdout);
	if (!ok)
		cli_print_error(&err);
	cli_run_report(j, &jerr);
	rb_error_clear(&jerr);
	rb_error_clear(&err);
	json_decref(r);
	events_free(bus);
	journal_close(j);
	return code;
}

static int
maint_show_status(const struct plan *plan, const char *env, bool json)
{
	struct rb_error err = {0};
	json_t *st = NULL;
	struct rb_ctx ctx = { .cancel = cli_cancel_begin() };
	bool ok = maint_status(plan, env, &ctx, &st, &err);
	cli_cancel_end();
	int code = ok ? RB_EXIT_OK : err.code ? err.code : RB_EXIT_STEP;
	if (ok && json) {
		cli_print_json(json_incref(st));
	} else if (ok) {
		json_t *l = json_object_get(st, "layers");
		bool frozen = json_is_true(json_object_get(st, "frozen"));
		printf("%s (%s): %s\n", json_string_value(json_object_get(st, "database")),
		       json_string_value(json_object_get(st, "environment")), frozen ? "frozen" : "not frozen");
		if (frozen) {
			printf("  since: %s\n", or_(json_string_value(json_object_get(st, "since")), "-"));
			printf("  run:   %s\n", or_(json_string_value(json_object_get(st, "run")), "-"));
			printf("  who:   %s\n", or_(json_string_value(json_object_get(st, "who")), "-"));
			if (!json_is_true(json_object_get(st, "journal")))
				printf("  (only the marker records it: no journal here holds this freeze)\n");
		}
		size_t i;
		json_t *v;
		if (json_string_value(json_object_get(st, "disagreement")))
			printf("  warning: %s\n", json_string_value(json_object_get(st, "disagreement")));
		if (frozen) {
			printf("  layers in place:");
			json_array_foreach(json_object_get(st, "layers_in_place"), i, v)
				printf(" %s", json_string_value(v));
			if (json_array_size(json_object_get(st, "layers_in_place")) == 0)
				printf(" none the server shows (hooks and pgbouncer cannot be seen from here)");
			printf("\n");
		}
		if (json_array_size(json_object_get(st, "pending_layers"))) {
			printf("  layers to undo:");
			json_array_foreach(json_object_get(st, "pending_layers"), i, v)
				printf(" %s", json_string_value(v));
			printf("\n");
		}
		printf("  connection limit: %" JSON_INTEGER_FORMAT "\n",
		       json_integer_value(json_object_get(l, "connection_limit")));
		if (json_array_size(json_object_get(l, "revoked"))) {
			printf("  CONNECT revoked from:");
			json_array_foreach(json_object_get(l, "revoked"), i, v)
				printf(" %s", json_string_value(v));
			printf("\n");
		}
		printf("  default_transaction_read_only: %s\n", json_is_true(json_object_get(l, "read_only")) ? "on" : "off");
		printf("  marker: %s\n", or_(json_string_value(json_object_get(l, "marker")), "none"));
		printf("  other sessions: %" JSON_INTEGER_FORMAT "\n", json_integer_value(json_object_get(st, "sessions")));
		print_writes(json_object_get(st, "writes_since_freeze"));
	}
	if (!ok)
		cli_print_error(&err);
	rb_error_clear(&err);
	json_decref(st);
	return code;
}

int
cmd_maintenance(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"plan", required_argument, NULL, 'p'},
		{"env", required_argument, NULL, 'e'},
		{"confirm", required_argument, NULL, 'c'},
		{"confirm-terminate", required_argument, NULL, 't'},
		{"settle", required_argument, NULL, 's'},
		{"run", required_argument, NULL, 'r'},
		{"json", no_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *verb = argc >= 2 && argv[1][0] != '-' ? argv[1] : NULL;
	const char *plan_file = NULL, *run = NULL, *settle = NULL;
	struct maint_opts o = { .who = util_user_name() };
	bool json = false;
	int c;
	optind = verb ? 2 : 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		switch (c) {
		case 'p': plan_file = optarg; break;
		case 'e': o.env = optarg; break;
		case 'c': o.confirm = optarg; break;
		case 't': o.confirm_terminate = optarg; break;
		case 's': settle = optarg; break;
		case 'r': run = optarg; break;
		case 'j': json = true; break;
		case 'h': usage(stdout); return RB_EXIT_OK;
		case ':': return cli_usage_error("maintenance", "option \"%s\" needs a value", argv[optind - 1]);
		default: return cli_usage_error("maintenance", "unknown option \"%s\"", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return cli_usage_error("maintenance", "unexpected argument \"%s\"", argv[optind]);
	if (verb == NULL || (strcmp(verb, "on") != 0 && strcmp(verb, "off") != 0 && strcmp(verb, "status") != 0))
		return cli_usage_error("maintenance", "say \"maintenance on\", \"maintenance off\" or \"maintenance status\"");
	if (plan_file == NULL)
		return cli_usage_error("maintenance", "--plan FILE is required");
	bool on = strcmp(verb, "on") == 0, off = strcmp(verb, "off") == 0;
	if (!on && (o.confirm || o.confirm_terminate || settle))
		return cli_usage_error("maintenance", "--confirm, --confirm-terminate and --settle belong to \"maintenance on\"");
	if (!off && run)
		return cli_usage_error("maintenance", "--run belongs to \"maintenance off\"");
	if (settle) {
		long long ms;
		if (!cli_parse_seconds(settle, 3600, &ms))
			return cli_usage_error("maintenance", "--settle takes seconds (0 to 3600), not \"%s\"", settle);
		o.settle_ms = ms > 0 ? ms : 1;
	}
	struct plan *plan = cli_load_plan(plan_file);
	if (plan == NULL)
		return RB_EXIT_PLAN;
	int code;
	if (o.env && plan_env_find(plan, o.env) == NULL) {
		code = cli_usage_error("maintenance", "the plan has no environment \"%s\"", o.env);
	} else if (!plan->maintenance.present) {
		fprintf(stderr, "pgrunbook: the plan has no maintenance section\n"
		        "HINT: Add \"maintenance: { block_connections: true, read_only: true }\" to the plan "
		        "(see pgrunbook-plan(5)).\n");
		code = RB_EXIT_PLAN;
	} else if (strcmp(verb, "status") == 0) {
		code = maint_show_status(plan, o.env ? o.env : plan->target, json);
	} else {
		code = maint_run(plan, verb, &o, run, json);
	}
	plan_free(plan);
	return code;
}
