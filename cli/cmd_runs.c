/* cmd_runs.c: "pgrunbook runs" lists recorded runs; "pgrunbook report" renders one as Markdown. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>

#include "cli/commands.h"
#include "core/error.h"
#include "core/journal.h"
#include "core/report.h"
#include "core/util.h"

static void
runs_help(void)
{
	fputs("Usage: pgrunbook runs [--json]\n\n"
	      "Lists the runs recorded in $XDG_STATE_HOME/pgrunbook/runs (default\n"
	      "~/.local/state/pgrunbook/runs), newest first: id, plan, start time, last stage\n"
	      "and state (running, done, failed, aborted, or corrupt when the journal is damaged).\n"
	      "A run whose process is gone before it finished shows as \"interrupted\".\n\n"
	      "Options:\n"
	      "  --json    print a JSON array instead of a table\n"
	      "  --help    show this help\n", stdout);
}

static void
report_help(void)
{
	fputs("Usage: pgrunbook report RUN [--out FILE]\n\n"
	      "Prints the Markdown report of a run, rendered from its journal (notifications: from its\n"
	      "webhook outbox). RUN is a run id, a unique prefix of one, or the path of a run directory.\n\n"
	      "Options:\n"
	      "  --out FILE   write the report to FILE instead of standard output\n"
	      "  --help       show this help\n\n"
	      "Exit status: 0 when the report was written; 3 when the run is not found, or when\n"
	      "its journal is damaged (the report is still written, with a warning).\n", stdout);
}

/* Display width of UTF-8 text in terminal columns (bytes when the locale cannot tell). */
static size_t
text_width(const char *s)
{
	mbstate_t ps;
	memset(&ps, 0, sizeof ps);
	size_t width = 0;
	const char *p = s;
	size_t left = strlen(s);
	while (left > 0) {
		wchar_t wc;
		size_t n = mbrtowc(&wc, p, left, &ps);
		if (n == (size_t)-1 || n == (size_t)-2)
			return strlen(s);
		if (n == 0)
			break;
		int w = wcwidth(wc);
		width += w > 0 ? (size_t)w : 0;
		p += n;
		left -= n;
	}
	return width;
}

static void
print_cell(const char *s, size_t width, bool last)
{
	fputs(s, stdout);
	if (last)
		return;
	for (size_t w = text_width(s); w < width + 2; w++)
		fputc(' ', stdout);
}

/* The state shown in the table: a running run nobody holds any more is "interrupted". */
static const char *
display_state(const struct run_state *st)
{
	const char *state = st->state ? st->state : "corrupt";
	if (strcmp(state, "running") == 0 && !st->in_use)
		return "interrupted";
	return state;
}

/* A plan name on one line. */
static char *
one_line(const char *s)
{
	char *t = xstrdup(s ? s : "-");
	for (char *p = t; *p; p++)
		if (*p == '\n' || *p == '\r' || *p == '\t')
			*p = ' ';
	return t;
}

static json_t *
nullable(const char *s)
{
	return s ? json_string(s) : json_null();
}

static json_t *
run_json(const struct run_state *st)
{
	json_t *o = json_object();
	json_object_set_new(o, "id", nullable(st->id));
	json_object_set_new(o, "dir", nullable(st->dir));
	json_object_set_new(o, "plan_name", nullable(st->plan_name));
	json_object_set_new(o, "plan_path", nullable(st->plan_path));
	json_object_set_new(o, "plan_hash", nullable(st->plan_hash));
	json_object_set_new(o, "user", nullable(st->user));
	json_object_set_new(o, "host", nullable(st->host));
	json_object_set_new(o, "started", nullable(st->started));
	json_object_set_new(o, "finished", nullable(st->finished));
	json_object_set_new(o, "last_stage", nullable(st->last_stage));
	json_object_set_new(o, "state", nullable(st->state));
	json_object_set_new(o, "in_use", json_boolean(st->in_use));
	json_object_set_new(o, "in_use_pid", st->in_use ? json_integer(st->in_use_pid) : json_null());
	json_object_set_new(o, "records", json_integer((json_int_t)st->nrecords));
	json_object_set_new(o, "torn", json_boolean(st->torn));
	json_object_set_new(o, "torn_line", st->torn ? json_integer(st->torn_line) : json_null());
	json_object_set_new(o, "torn_message", nullable(st->torn_message));
	return o;
}

int
cmd_runs(int argc, char **argv)
{
	bool as_json = false;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			runs_help();
			return RB_EXIT_OK;
		} else if (strcmp(argv[i], "--json") == 0) {
			as_json = true;
		} else {
			return cli_usage_error("runs", "unexpected argument \"%s\"", argv[i]);
		}
	}

	char *dir = journal_runs_dir();
	struct run_state *runs = NULL;
	size_t n = 0;
	struct rb_error err = {0};
	if (!journal_list_runs(dir, &runs, &n, &err)) {
		cli_print_error(&err);
		int code = err.code ? err.code : RB_EXIT_USAGE;
		rb_error_clear(&err);
		free(dir);
		return code;
	}

	if (as_json) {
		json_t *arr = json_array();
		for (size_t i = 0; i < n; i++)
			json_array_append_new(arr, run_json(&runs[i]));
		cli_print_json(arr);
	} else if (n == 0) {
		printf("no runs yet in %s\n", dir);
	} else {
		static const char *const head[] = { "ID", "PLAN", "STARTED", "LAST STAGE", "STATE" };
		enum { NCOLS = 5 };
		char **cells = xcalloc(n * NCOLS, sizeof(*cells));
		size_t width[NCOLS];
		for (int c = 0; c < NCOLS; c++)
			width[c] = strlen(head[c]);
		for (size_t i = 0; i < n; i++) {
			const struct run_state *st = &runs[i];
			char **row = cells + i * NCOLS;
			row[0] = xstrdup(st->id ? st->id : "?");
			row[1] = one_line(st->plan_name);
			row[2] = xstrdup(st->started ? st->started : "-");
			row[3] = xstrdup(st->last_stage ? st->last_stage : "-");
			row[4] = xstrdup(display_state(st));
			for (int c = 0; c < NCOLS; c++) {
				size_t w = text_width(row[c]);
				if (w > width[c])
					width[c] = w;
			}
		}
		for (int c = 0; c < NCOLS; c++)
			print_cell(head[c], width[c], c == NCOLS - 1);
		fputc('\n', stdout);
		for (size_t i = 0; i < n; i++) {
			for (int c = 0; c < NCOLS; c++)
				print_cell(cells[i * NCOLS + c], width[c], c == NCOLS - 1);
			fputc('\n', stdout);
		}
		for (size_t i = 0; i < n * NCOLS; i++)
			free(cells[i]);
		free(cells);
	}

	for (size_t i = 0; i < n; i++)
		run_state_free(&runs[i]);
	free(runs);
	free(dir);
	return RB_EXIT_OK;
}

int
cmd_report(int argc, char **argv)
{
	const char *run = NULL;
	const char *out = NULL;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			report_help();
			return RB_EXIT_OK;
		} else if (strcmp(argv[i], "--out") == 0 || strcmp(argv[i], "-o") == 0) {
			if (i + 1 >= argc)
				return cli_usage_error("report", "option \"%s\" needs a file name", argv[i]);
			out = argv[++i];
		} else if (strncmp(argv[i], "--out=", 6) == 0) {
			out = argv[i] + 6;
		} else if (argv[i][0] == '-' && argv[i][1] != '\0') {
			return cli_usage_error("report", "unknown option \"%s\"", argv[i]);
		} else if (run == NULL) {
			run = argv[i];
		} else {
			return cli_usage_error("report", "unexpected argument \"%s\"", argv[i]);
		}
	}
	if (run == NULL)
		return cli_usage_error("report", "which run? Give a run id (see \"pgrunbook runs\")");
	if (out != NULL && out[0] == '\0')
		return cli_usage_error("report", "option \"--out\" needs a file name");

	struct rb_error err = {0};
	char *dir = journal_find_run(NULL, run, &err);
	if (dir == NULL) {
		cli_print_error(&err);
		int code = err.code ? err.code : RB_EXIT_USAGE;
		rb_error_clear(&err);
		return code;
	}
	struct run_state st;
	if (!journal_replay(dir, &st, &err)) {
		cli_print_error(&err);
		rb_error_clear(&err);
		run_state_free(&st);
		free(dir);
		return RB_EXIT_STEP;
	}
	free(dir);

	/* The plan gives the budgets; only when its file still holds the plan the run was made with. */
	struct plan *plan = NULL;
	if (st.plan_path && st.plan_hash) {
		struct plan_diags diags = {0};
		plan = plan_load(st.plan_path, &diags, &err);
		plan_diags_free(&diags);
		rb_error_clear(&err);
		if (plan && strcmp(plan->hash, st.plan_hash) != 0) {
			plan_free(plan);
			plan = NULL;
		}
	}
	char *md = report_markdown(&st, plan);
	plan_free(plan);
	int code = RB_EXIT_OK;
	if (out != NULL) {
		FILE *f = fopen(out, "w");
		if (f == NULL) {
			fprintf(stderr, "pgrunbook: could not open \"%s\" for writing: %s\n", out,
			        strerror(errno));
			code = RB_EXIT_USAGE;
		} else {
			fputs(md, f);
			if (fclose(f) != 0) {
				fprintf(stderr, "pgrunbook: could not write \"%s\": %s\n", out,
				        strerror(errno));
				code = RB_EXIT_USAGE;
			}
		}
	} else {
		fputs(md, stdout);
		if (fflush(stdout) != 0)
			code = RB_EXIT_USAGE;
	}
	if (code == RB_EXIT_OK && st.torn) {
		fprintf(stderr, "pgrunbook: the journal of run %s is damaged: %s\n"
		        "DETAIL: The report shows only what was recorded before the damage.\n",
		        st.id, st.torn_message ? st.torn_message : "unreadable");
		code = RB_EXIT_STEP;
	}
	free(md);
	run_state_free(&st);
	return code;
}
