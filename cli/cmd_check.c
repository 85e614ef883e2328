/* cmd_check.c: "pgrunbook check": validates a plan and prints its summary and hash. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "core/error.h"
#include "core/plan.h"

static void
check_usage(FILE *f)
{
	fputs("pgrunbook check validates a plan without connecting to any database and prints\n"
	      "what it would do: environments, stages and budgets, sync tables, the plan hash.\n\n"
	      "Usage:\n"
	      "  pgrunbook check --plan FILE [--json]\n\n"
	      "Options:\n"
	      "  --plan FILE  the plan file (YAML, see pgrunbook-plan(5))\n"
	      "  --json       print the summary and the normalised plan as JSON\n"
	      "  --help       show this help and exit\n\n"
	      "Exit codes: 0 valid, 1 usage error, 4 invalid plan (every problem is printed to\n"
	      "stderr as FILE:LINE:COLUMN: what was found; what was expected).\n", f);
}

static const char *
budget_text(int64_t ms, char *buf, size_t len)
{
	if (ms <= 0)
		return "(none)";
	plan_format_duration(ms, buf, len);
	return buf;
}

static char *
join_list(const struct strlist *l, const char *empty)
{
	if (l->len == 0)
		return xstrdup(empty);
	struct strbuf sb = {0};
	for (size_t i = 0; i < l->len; i++) {
		if (i)
			strbuf_addc(&sb, ',');
		strbuf_adds(&sb, l->items[i]);
	}
	return strbuf_detach(&sb);
}

/* The sync tables a glob matches, in plan order. */
static void
glob_matches(const struct plan *p, const char *glob, struct strlist *out)
{
	const char *schema = p->migrations.schema ? p->migrations.schema : "public";
	for (size_t i = 0; i < p->sync.ntables; i++)
		if (plan_glob_matches(glob, p->sync.tables[i].name, schema))
			strlist_push(out, p->sync.tables[i].name);
}

static int
width_of(size_t w, const char *s)
{
	size_t n = strlen(s);
	return (int)(n > w ? n : w);
}

/* Prints line without trailing blanks, then a newline. */
static void
print_trimmed(const char *line)
{
	size_t n = strlen(line);
	while (n > 0 && line[n - 1] == ' ')
		n--;
	printf("%.*s\n", (int)n, line);
}

static void
print_human(const struct plan *p)
{
	char buf[64];
	int w;

	printf("plan: %s\n", p->name);
	if (p->description)
		printf("description: %s\n", p->description);

	printf("environments:\n");
	w = 0;
	for (size_t i = 0; i < p->nenvs; i++)
		w = width_of((size_t)w, p->envs[i].name);
	for (size_t i = 0; i < p->nenvs; i++)
		printf("  %-*s  %-8s  %s\n", w, p->envs[i].name, plan_env_kind_name(p->envs[i].kind),
		       p->envs[i].value);
	printf("source -> target: %s -> %s\n", p->source ? p->source : "(none)", p->target);

	printf("stages:\n");
	for (int s = 0; s < PLAN_STAGE_COUNT; s++) {
		if (!plan_stage_enabled(p, (enum plan_stage)s))
			continue;
		printf("  %-16s budget %s\n", plan_stage_name((enum plan_stage)s),
		       budget_text(p->budget_ms[s], buf, sizeof buf));
	}
	printf("  %-16s budget %s\n", "total", budget_text(p->budget_total_ms, buf, sizeof buf));

	if (p->sync.present) {
		printf("sync tables (default mode %s, on_conflict %s):\n", plan_mode_name(p->sync.default_mode),
		       plan_on_conflict_name(p->sync.default_on_conflict));
		if (p->sync.ntables == 0)
			printf("  (none)\n");
		w = 0;
		int kw = 0;
		char **keys = xcalloc(p->sync.ntables + 1, sizeof(*keys));
		for (size_t i = 0; i < p->sync.ntables; i++) {
			w = width_of((size_t)w, p->sync.tables[i].name);
			keys[i] = join_list(&p->sync.tables[i].key, "(primary key)");
			kw = width_of((size_t)kw, keys[i]);
		}
		for (size_t i = 0; i < p->sync.ntables; i++) {
			const struct plan_sync_table *t = &p->sync.tables[i];
			char *line = xasprintf("  %-*s  %-6s  key %-*s  %-17s%s%s", w, t->name,
			                       plan_mode_name(t->mode), kw, keys[i],
			                       plan_on_conflict_name(t->on_conflict),
			                       t->delete_rows ? "  DELETE" : "", t->protected_ ? "  PROTECTED" : "");
			print_trimmed(line);
			free(line);
			free(keys[i]);
		}
		free(keys);
		printf("protected globs:\n");
		if (p->sync.protected_globs.len == 0)
			printf("  (none)\n");
		w = 0;
		for (size_t i = 0; i < p->sync.protected_globs.len; i++)
			w = width_of((size_t)w, p->sync.protected_globs.items[i]);
		for (size_t i = 0; i < p->sync.protected_globs.len; i++) {
			struct strlist m = {0};
			glob_matches(p, p->sync.protected_globs.items[i], &m);
			char *list = join_list(&m, "(no listed table)");
			printf("  %-*s  matches %s\n", w, p->sync.protected_globs.items[i], list);
			free(list);
			strlist_free(&m);
		}
	}
	if (p->verify.present)
		printf("verify checks: %zu\n", p->verify.nchecks);
	printf("notify:%s\n", p->nnotify ? "" : " (none)");
	for (size_t i = 0; i < p->nnotify; i++)
		printf("  %-9s  %s\n", plan_notify_format_name(p->notify[i].format), p->notify[i].url_env);
	printf("checklist: %zu before, %zu after\n", p->checklist_before.len, p->checklist_after.len);
	printf("plan hash: %s\n", p->hash);
}

static json_t *
json_list(const struct strlist *l)
{
	json_t *a = json_array();
	for (size_t i = 0; i < l->len; i++)
		json_array_append_new(a, json_string(l->items[i]));
	return a;
}

static json_t *
json_opt(const char *s)
{
	return s ? json_string(s) : json_null();
}

static json_t *
summary_json(const struct plan *p)
{
	json_t *o = json_object();
	json_object_set_new(o, "plan", json_string(p->name));
	json_object_set_new(o, "description", json_opt(p->description));
	json_object_set_new(o, "path", json_string(p->path));

	json_t *envs = json_array();
	for (size_t i = 0; i < p->nenvs; i++)
		json_array_append_new(envs, json_pack("{s:s, s:s, s:s}", "name", p->envs[i].name,
		                      "kind", plan_env_kind_name(p->envs[i].kind), "value", p->envs[i].value));
	json_object_set_new(o, "environments", envs);
	json_object_set_new(o, "source", json_opt(p->source));
	json_object_set_new(o, "target", json_string(p->target));

	json_t *stages = json_array();
	for (int s = 0; s < PLAN_STAGE_COUNT; s++) {
		if (!plan_stage_enabled(p, (enum plan_stage)s))
			continue;
		json_array_append_new(stages, json_pack("{s:s, s:I}", "name",
		                      plan_stage_name((enum plan_stage)s), "budget_ms",
		                      (json_int_t)p->budget_ms[s]));
	}
	json_object_set_new(o, "stages", stages);
	json_object_set_new(o, "budget_total_ms", json_integer(p->budget_total_ms));

	json_t *tables = json_array();
	for (size_t i = 0; i < p->sync.ntables; i++) {
		const struct plan_sync_table *t = &p->sync.tables[i];
		json_array_append_new(tables, json_pack("{s:s, s:s, s:o, s:s, s:o, s:b, s:b}",
		                      "name", t->name, "mode", plan_mode_name(t->mode), "key", json_list(&t->key),
		                      "on_conflict", plan_on_conflict_name(t->on_conflict),
		                      "columns", json_list(&t->columns), "delete", t->delete_rows,
		                      "protected", t->protected_));
	}
	json_object_set_new(o, "sync_tables", tables);

	json_t *globs = json_array();
	for (size_t i = 0; i < p->sync.protected_globs.len; i++) {
		struct strlist m = {0};
		glob_matches(p, p->sync.protected_globs.items[i], &m);
		json_array_append_new(globs, json_pack("{s:s, s:o}", "glob", p->sync.protected_globs.items[i],
		                      "matches", json_list(&m)));
		strlist_free(&m);
	}
	json_object_set_new(o, "protected_globs", globs);
	json_object_set_new(o, "verify_checks", json_integer((json_int_t)p->verify.nchecks));

	json_t *notify = json_array();
	for (size_t i = 0; i < p->nnotify; i++)
		json_array_append_new(notify, json_pack("{s:s, s:s}", "format",
		                      plan_notify_format_name(p->notify[i].format), "url_env",
		                      p->notify[i].url_env));
	json_object_set_new(o, "notify", notify);
	json_object_set_new(o, "checklist", json_pack("{s:I, s:I}",
	                    "before", (json_int_t)p->checklist_before.len,
	                    "after", (json_int_t)p->checklist_after.len));
	json_object_set_new(o, "hash", json_string(p->hash));

	char *text = plan_normalised_json(p);
	json_error_t jerr;
	json_t *norm = json_loads(text, 0, &jerr);
	free(text);
	json_object_set_new(o, "normalised", norm ? norm : json_null());
	return o;
}

int
cmd_check(int argc, char **argv)
{
	const char *plan_file = NULL;
	bool as_json = false;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			check_usage(stdout);
			return RB_EXIT_OK;
		} else if (strcmp(a, "--json") == 0) {
			as_json = true;
		} else if (strcmp(a, "--plan") == 0) {
			if (i + 1 >= argc)
				return cli_usage_error("check", "option --plan needs a file name");
			plan_file = argv[++i];
		} else if (strncmp(a, "--plan=", 7) == 0) {
			plan_file = a + 7;
		} else if (a[0] == '-') {
			return cli_usage_error("check", "unknown option \"%s\"", a);
		} else {
			return cli_usage_error("check", "unexpected argument \"%s\"", a);
		}
	}
	if (plan_file == NULL || plan_file[0] == '\0')
		return cli_usage_error("check", "no plan given; use --plan FILE");

	struct plan *p = cli_load_plan(plan_file);
	if (p == NULL)
		return RB_EXIT_PLAN;
	if (as_json)
		cli_print_json(summary_json(p));
	else
		print_human(p);
	plan_free(p);
	return RB_EXIT_OK;
}
