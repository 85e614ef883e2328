/* common.c: plan loading with diagnostics, error and JSON printing for the subcommands. */
#include "config.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "core/error.h"

struct plan *
cli_load_plan(const char *path)
{
	struct plan_diags diags = {0};
	struct rb_error err = {0};
	struct plan *p = plan_load(path, &diags, &err);
	if (p == NULL) {
		for (size_t i = 0; i < diags.len; i++)
			fprintf(stderr, "%s\n", diags.items[i].message);
		if (diags.len == 0 || diags.len > 1)
			cli_print_error(&err);
	}
	plan_diags_free(&diags);
	rb_error_clear(&err);
	return p;
}

void
cli_print_error(const struct rb_error *err)
{
	char *s = rb_error_format(err);
	fprintf(stderr, "pgrunbook: %s\n", s);
	free(s);
}

void
cli_print_json(json_t *v)
{
	json_dumpf(v, stdout, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_ENSURE_ASCII);
	fputc('\n', stdout);
	json_decref(v);
}

int
cli_usage_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("pgrunbook: ", stderr);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	if (cmd)
		fprintf(stderr, "\nTry \"pgrunbook %s --help\" for more information.\n", cmd);
	else
		fputs("\nTry \"pgrunbook --help\" for more information.\n", stderr);
	return RB_EXIT_USAGE;
}

static atomic_int cancel_flag;  /* lock-free: safe to store from a signal handler */
static struct sigaction old_int, old_term;

static void
on_cancel_signal(int sig)
{
	(void)sig;
	cancel_flag = 1;
}

atomic_int *
cli_cancel_begin(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_cancel_signal;
	sa.sa_flags = SA_RESETHAND;  /* a second Ctrl-C ends the program at once */
	sigemptyset(&sa.sa_mask);
	cancel_flag = 0;
	sigaction(SIGINT, &sa, &old_int);
	sigaction(SIGTERM, &sa, &old_term);
	return &cancel_flag;
}

void
cli_cancel_end(void)
{
	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGTERM, &old_term, NULL);
}
