/* cmd_demo.c: `pgrunbook demo`: start or stop the throwaway shop cluster and say how to use it. */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/commands.h"
#include "core/demo.h"
#include "core/error.h"
#include "core/events.h"

static void
usage(FILE *f)
{
	fprintf(f,
	        "Usage: pgrunbook demo [--rows N] [--dir DIR] [--no-wizard]\n"
	        "       pgrunbook demo --stop [--dir DIR]\n\n"
	        "Starts a throwaway PostgreSQL cluster in DIR with three databases of a small shop:\n"
	        "shop_dev (every Prisma migration applied, new and edited reference data), shop_prod\n"
	        "(three migrations pending, one of them destructive; orders, Stripe events and\n"
	        "notifications) and shop_staging (a copy of shop_prod). Writes a plan for them to\n"
	        "DIR/plan/demo.yaml, opens the wizard on it when run in a terminal and prints how to\n"
	        "try it.\n\n"
	        "Options:\n"
	        "  --rows N    orders in shop_prod (%d..%d, default %d); users and items scale with it\n"
	        "  --dir DIR   where the cluster lives (default ${TMPDIR:-/tmp}/pgrunbook-demo-<uid>)\n"
	        "  --no-wizard do not open the wizard, only print how to use the demo\n"
	        "  --stop      stop the demo cluster in DIR and remove DIR\n"
	        "\nExit codes: 0 ok (also --stop when no demo runs), 1 usage, 3 the cluster could not\n"
	        "be created or loaded, or a demo already runs in DIR.\n",
	        DEMO_ROWS_MIN, DEMO_ROWS_MAX, DEMO_ROWS_DEFAULT);
}

/* s quoted for a POSIX shell when it needs to be. Caller frees. */
static char *
shell_quote(const char *s)
{
	bool plain = *s != '\0';
	for (const char *p = s; *p; p++)
		if (!(('a' <= *p && *p <= 'z') || ('A' <= *p && *p <= 'Z') || ('0' <= *p && *p <= '9') ||
		      strchr("_./-+=:@,%", *p) != NULL))
			plain = false;
	if (plain)
		return xstrdup(s);
	struct strbuf sb = {0};
	strbuf_addc(&sb, '\'');
	for (const char *p = s; *p; p++) {
		if (*p == '\'')
			strbuf_adds(&sb, "'\\''");
		else
			strbuf_addc(&sb, *p);
	}
	strbuf_addc(&sb, '\'');
	return strbuf_detach(&sb);
}

static void
print_progress(const struct rb_event *ev, void *userdata)
{
	(void)userdata;
	if (ev->type == EV_LOG && ev->message)
		fprintf(stderr, "pgrunbook demo: %s\n", ev->message);
}

static void
print_counts(const struct demo *d)
{
	printf("  %-20s", "");
	for (int db = 0; db < DEMO_DB_COUNT; db++)
		printf(" %14s", demo_db_name((enum demo_db)db));
	printf("\n  %-20s", "Prisma migrations");
	for (int db = 0; db < DEMO_DB_COUNT; db++) {
		char buf[32];
		snprintf(buf, sizeof buf, "%d/%d", d->migrations_applied[db], d->migrations_total);
		printf(" %14s", buf);
	}
	printf("\n");
	for (size_t t = 0; t < DEMO_NTABLES; t++) {
		printf("  %-20s", demo_counted_tables[t]);
		for (int db = 0; db < DEMO_DB_COUNT; db++) {
			if (d->counts[db][t] < 0)
				printf(" %14s", "-");
			else
				printf(" %14lld", d->counts[db][t]);
		}
		printf("\n");
	}
}

static void
print_usage_notes(const struct demo *d, bool default_dir, bool wizard_shown)
{
	char *plan = shell_quote(d->plan_path);
	char *dir = shell_quote(d->dir);
	char *host = shell_quote(d->cluster->sockdir);
	char *user = shell_quote(d->cluster->superuser);
	char *stop = default_dir ? xstrdup("pgrunbook demo --stop")
	                         : xasprintf("pgrunbook demo --stop --dir %s", dir);

	printf("pgrunbook demo: a throwaway shop cluster is running in %s\n\n", d->dir);
	printf("  server      PostgreSQL %s, socket directory %s, port %d, superuser %s\n",
	       d->server_version, d->cluster->sockdir, d->cluster->port, d->cluster->superuser);
	printf("  plan        %s\n", d->plan_path);
	printf("  migrations  %s (%d, %d pending on shop_prod)\n\n", d->migrations_dir,
	       d->migrations_total, d->migrations_total - d->migrations_applied[DEMO_DB_PROD]);
	print_counts(d);
	printf("\nTry:\n");
	printf("  pgrunbook check --plan %s\n", plan);
	printf("  pgrunbook preflight --plan %s\n", plan);
	for (int db = DEMO_DB_COUNT - 1; db >= 0; db--)
		printf("  psql -h %s -p %d -U %s -d %s\n", host, d->cluster->port, user,
		       demo_db_name((enum demo_db)db));
	printf("\nTo reach the demo with psql or with the repository's plans/demo.yaml:\n");
	printf("  export PGHOST=%s PGPORT=%d PGUSER=%s\n", host, d->cluster->port, user);
	if (wizard_shown)
		printf("\nOpen the wizard again (a new run), or resume the last one:\n"
		       "  pgrunbook --plan %s\n  pgrunbook resume\n", plan);
	else
		printf("\nWalk the release in the wizard:\n  pgrunbook --plan %s\n", plan);
	printf("\nStop the cluster and remove %s:\n  %s\n", d->dir, stop);
	free(plan);
	free(dir);
	free(host);
	free(user);
	free(stop);
}

static int
do_stop(const char *dir)
{
	struct rb_error err = {0};
	bool found = false;
	if (!demo_stop(dir, &found, &err)) {
		cli_print_error(&err);
		int code = err.code ? err.code : RB_EXIT_STEP;
		rb_error_clear(&err);
		return code;
	}
	if (found)
		printf("pgrunbook demo: stopped the demo cluster and removed %s\n", dir);
	else
		printf("pgrunbook demo: no demo running in %s\n", dir);
	return RB_EXIT_OK;
}

int
cmd_demo(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "rows", required_argument, NULL, 'r' },
		{ "dir",  required_argument, NULL, 'd' },
		{ "stop", no_argument,       NULL, 's' },
		{ "no-wizard", no_argument,  NULL, 'n' },
		{ "help", no_argument,       NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int rows = DEMO_ROWS_DEFAULT;
	bool rows_given = false, stop = false, no_wizard = false;
	const char *dir_opt = NULL;
	int c;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+h", longopts, NULL)) != -1) {
		switch (c) {
		case 'r': {
			char *end;
			errno = 0;
			long v = strtol(optarg, &end, 10);
			if (errno != 0 || end == optarg || *end != '\0' || v < DEMO_ROWS_MIN || v > DEMO_ROWS_MAX)
				return cli_usage_error("demo", "--rows must be a number from %d to %d, not \"%s\"",
				                       DEMO_ROWS_MIN, DEMO_ROWS_MAX, optarg);
			rows = (int)v;
			rows_given = true;
			break;
		}
		case 'd':
			if (optarg[0] == '\0')
				return cli_usage_error("demo", "--dir must not be empty");
			dir_opt = optarg;
			break;
		case 's':
			stop = true;
			break;
		case 'n':
			no_wizard = true;
			break;
		case 'h':
			usage(stdout);
			return RB_EXIT_OK;
		default:
			if (optopt)
				return cli_usage_error("demo", "option -%c is not known here", optopt);
			return cli_usage_error("demo", "option \"%s\" is not known or lacks its value",
			                       argv[optind - 1]);
		}
	}
	if (optind < argc)
		return cli_usage_error("demo", "unexpected argument \"%s\"", argv[optind]);
	if (stop && rows_given)
		return cli_usage_error("demo", "--rows makes no sense with --stop");

	char *dir = dir_opt ? xstrdup(dir_opt) : demo_default_dir();
	if (stop) {
		int code = do_stop(dir);
		free(dir);
		return code;
	}

	struct events *bus = events_new();
	events_subscribe(bus, print_progress, NULL);
	struct rb_ctx ctx = { .bus = bus, .cancel = cli_cancel_begin() };

	struct rb_error err = {0};
	struct demo *d = demo_start(dir, rows, &ctx, &err);

	cli_cancel_end();
	events_free(bus);

	int code = RB_EXIT_OK;
	if (d == NULL) {
		cli_print_error(&err);
		code = err.code ? err.code : RB_EXIT_STEP;
	} else if (!no_wizard && isatty(STDIN_FILENO) && isatty(STDOUT_FILENO)) {
		/* The newcomer's first run: the wizard on the demo plan, then how to go on. */
		code = cli_wizard_run(d->plan_path, NULL);
		print_usage_notes(d, dir_opt == NULL, true);
	} else {
		print_usage_notes(d, dir_opt == NULL, false);
	}
	rb_error_clear(&err);
	demo_free(d);
	free(dir);
	return code;
}
