/* cmd_notify.c: `pgrunbook notify test` and `pgrunbook notify flush`: the plan's webhooks by hand. */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "core/error.h"
#include "core/journal.h"
#include "core/notify.h"

static void
usage(FILE *f)
{
	fputs("Usage: pgrunbook notify test --plan FILE [--json]\n"
	      "       pgrunbook notify flush [RUN] [--wait SECONDS] [--json]\n\n"
	      "Every journaled run writes the events each of the plan's notify endpoints selects to an\n"
	      "outbox in its run directory (outbox/, no URL or secret in it) and delivers them from one\n"
	      "sender thread per endpoint with retries, so a slow or failing endpoint never holds up the\n"
	      "run or another endpoint. At its end a command waits at most 10 s for deliveries that are due\n"
	      "(Ctrl-C stops waiting), then leaves the rest in the outbox.\n\n"
	      "test sends one event of type \"test\" to each endpoint now, one attempt each (pagerduty: a\n"
	      "trigger and its resolve), and prints each endpoint's answer. The URLs, routing keys and\n"
	      "secrets come from the variables the plan names; they are never printed.\n\n"
	      "flush delivers what a run left in its outbox (RUN: id, prefix or directory; default the\n"
	      "newest run whose outbox holds messages a flush would send), with the same ids, the URLs and\n"
	      "secrets read from the environment now, retrying as the plan said (each endpoint on its own)\n"
	      "until everything is sent or has failed or --wait SECONDS (default 60) has passed. Messages\n"
	      "that failed for want of attempts (timeouts, 5xx, 429, refused connections) or of a variable\n"
	      "get the plan's max_attempts again; those an endpoint refused (3xx, 4xx) and every message to\n"
	      "an endpoint that answered 410 Gone are not sent again. Refused while another process delivers\n"
	      "the outbox (the run is still going).\n\n"
	      "Options:\n"
	      "  --plan FILE          test: the plan\n"
	      "  --wait SECONDS       flush: how long to keep trying (default 60)\n"
	      "  --json               print JSON instead of text\n\n"
	      "Exit codes: 0 every endpoint answered 2xx (flush: everything sent), 1 usage, 3 an endpoint\n"
	      "failed (flush: messages are left or failed; no outbox; the outbox is in use), 4 invalid plan.\n",
	      f);
}

static int
notify_test_cmd(const char *plan_path, bool json)
{
	struct plan *plan = cli_load_plan(plan_path);
	if (plan == NULL)
		return RB_EXIT_PLAN;
	if (plan->nnotify == 0) {
		struct rb_error err = {0};
		rb_error_setc(&err, RB_EXIT_STEP, "the plan has no notify endpoints");
		rb_error_hint(&err, "Add \"notify: [{ url_env: SLACK_WEBHOOK_URL, format: slack }]\" to the plan "
		              "(see pgrunbook-plan(5)).");
		cli_print_error(&err);
		rb_error_clear(&err);
		plan_free(plan);
		return RB_EXIT_STEP;
	}
	json_t *res = notify_test(plan, util_user_name());
	bool all_ok = true;
	size_t i;
	json_t *e;
	json_array_foreach(res, i, e) {
		if (!json_is_true(json_object_get(e, "ok")))
			all_ok = false;
	}
	if (json) {
		cli_print_json(json_pack("{s:O, s:b}", "endpoints", res, "ok", all_ok));
	} else {
		json_array_foreach(res, i, e) {
			json_t *st = json_object_get(e, "status");
			const char *error = json_string_value(json_object_get(e, "error"));
			char status[32] = "-";
			if (json_is_integer(st))
				snprintf(status, sizeof status, "HTTP %" JSON_INTEGER_FORMAT, json_integer_value(st));
			printf("notify[%" JSON_INTEGER_FORMAT "] %-9s %-24s %-4s %-9s %5" JSON_INTEGER_FORMAT " ms%s%s\n",
			       json_integer_value(json_object_get(e, "endpoint")),
			       json_string_value(json_object_get(e, "format")),
			       json_string_value(json_object_get(e, "url_env")),
			       json_is_true(json_object_get(e, "ok")) ? "ok" : "FAIL", status,
			       json_integer_value(json_object_get(e, "ms")), error ? "  " : "", error ? error : "");
		}
		printf("%s\n", all_ok ? "every endpoint answered" : "an endpoint failed");
	}
	json_decref(res);
	plan_free(plan);
	return all_ok ? RB_EXIT_OK : RB_EXIT_STEP;
}

/* The newest run whose outbox holds a message a flush would send; NULL (err set) when none. */
static char *
newest_with_outbox(struct rb_error *err)
{
	struct run_state *runs = NULL;
	size_t n = 0;
	if (!journal_list_runs(NULL, &runs, &n, err))
		return NULL;
	char *found = NULL;
	for (size_t i = 0; i < n && found == NULL; i++) {
		json_t *sum = notify_outbox_summary(runs[i].dir);
		/* what a flush can still deliver: not the messages an endpoint refused for good */
		if (sum && (json_integer_value(json_object_get(sum, "pending")) > 0 ||
		            json_integer_value(json_object_get(sum, "retryable")) > 0))
			found = xstrdup(runs[i].dir);
		json_decref(sum);
	}
	for (size_t i = 0; i < n; i++)
		run_state_free(&runs[i]);
	free(runs);
	if (found == NULL)
		rb_error_setc(err, RB_EXIT_STEP, "no run has messages left in its outbox that a flush would send");
	return found;
}

static int
notify_flush_cmd(const char *run, long long wait_ms, bool json)
{
	struct rb_error err = {0};
	char *dir = run ? journal_find_run(NULL, run, &err) : newest_with_outbox(&err);
	if (dir == NULL) {
		cli_print_error(&err);
		int code = err.code ? err.code : RB_EXIT_STEP;
		rb_error_clear(&err);
		return code;
	}
	struct notify_counts c = {0};
	bool ok = notify_flush(dir, wait_ms, &c, &err);
	const char *slash = strrchr(dir, '/');
	const char *id = slash && slash[1] ? slash + 1 : dir;
	bool done = ok && c.pending == 0 && c.failed == 0;
	if (!ok) {
		cli_print_error(&err);
	} else if (json) {
		cli_print_json(json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:b}", "run_id", id, "dir", dir, "sent",
		                         (json_int_t)c.sent, "pending", (json_int_t)c.pending, "failed", (json_int_t)c.failed,
		                         "endpoints", (json_int_t)c.endpoints, "failing_endpoints",
		                         (json_int_t)c.failing_endpoints, "done", done));
	} else {
		printf("run %s: %u sent, %u pending, %u failed\n", id, c.sent, c.pending, c.failed);
		/* each endpoint: what is left there and why */
		json_t *sum = notify_outbox_summary(dir);
		size_t i;
		json_t *e;
		bool retry = c.pending > 0;
		json_array_foreach(json_object_get(sum, "endpoints"), i, e) {
			const char *state = json_string_value(json_object_get(e, "state"));
			const char *le = json_string_value(json_object_get(e, "last_error"));
			json_t *ls = json_object_get(e, "last_status");
			printf("  notify[%" JSON_INTEGER_FORMAT "] %-24s %-8s %" JSON_INTEGER_FORMAT " sent, %" JSON_INTEGER_FORMAT
			       " pending, %" JSON_INTEGER_FORMAT " failed",
			       json_integer_value(json_object_get(e, "index")), json_string_value(json_object_get(e, "url_env")),
			       state ? state : "-", json_integer_value(json_object_get(e, "sent")),
			       json_integer_value(json_object_get(e, "pending")), json_integer_value(json_object_get(e, "failed")));
			if (json_is_integer(ls) && json_integer_value(ls) >= 300)
				printf("; last answer HTTP %" JSON_INTEGER_FORMAT, json_integer_value(ls));
			if (le)
				printf("; %s", le);
			putchar('\n');
			/* what failed for want of attempts can be flushed again; a 4xx or 410 cannot */
			if (json_integer_value(json_object_get(e, "failed")) > 0 && state && strcmp(state, "gone") != 0 &&
			    strcmp(state, "rejected") != 0)
				retry = true;
		}
		json_decref(sum);
		if (!done)
			printf(retry ? "not everything was delivered: run \"pgrunbook notify flush %s\" again later\n"
			             : "not everything was delivered; what is left was refused by its endpoint (4xx or 410 "
			               "Gone) and is not sent again (run %s)\n", id);
	}
	int code = !ok ? (err.code ? err.code : RB_EXIT_STEP) : done ? RB_EXIT_OK : RB_EXIT_STEP;
	rb_error_clear(&err);
	free(dir);
	return code;
}

int
cmd_notify(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "plan", required_argument, NULL, 'p' },
		{ "wait", required_argument, NULL, 'w' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *plan_path = NULL;
	const char *wait_arg = NULL;
	bool json = false;
	int c;
	optind = 1;
	opterr = 0;
	/* GNU getopt permutes: options may come before or after the action and RUN */
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'p': plan_path = optarg; break;
		case 'w': wait_arg = optarg; break;
		case 'j': json = true; break;
		case 'h': usage(stdout); return RB_EXIT_OK;
		default:
			return cli_usage_error("notify", "unknown option or missing argument: %s", argv[optind - 1]);
		}
	}
	const char *action = optind < argc ? argv[optind++] : NULL;
	const char *run = optind < argc ? argv[optind++] : NULL;
	if (optind < argc)
		return cli_usage_error("notify", "unexpected argument: %s", argv[optind]);
	if (action == NULL)
		return cli_usage_error("notify", "which one: notify test or notify flush");
	if (strcmp(action, "test") == 0) {
		if (run)
			return cli_usage_error("notify", "notify test takes no RUN");
		if (wait_arg)
			return cli_usage_error("notify", "--wait belongs to notify flush");
		if (plan_path == NULL)
			return cli_usage_error("notify", "notify test needs --plan FILE");
		return notify_test_cmd(plan_path, json);
	}
	if (strcmp(action, "flush") == 0) {
		if (plan_path)
			return cli_usage_error("notify", "notify flush takes no --plan (the outbox names its endpoints)");
		long long wait_ms = 60000;
		if (wait_arg && !cli_parse_seconds(wait_arg, 86400, &wait_ms))
			return cli_usage_error("notify", "--wait takes seconds (0 to 86400), not \"%s\"", wait_arg);
		return notify_flush_cmd(run, wait_ms, json);
	}
	return cli_usage_error("notify", "unknown action \"%s\": notify test or notify flush", action);
}
