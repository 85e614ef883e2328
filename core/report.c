/* report.c: renders the Markdown report of a run from its replayed journal, nothing else. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "notify.h"
#include "report.h"
#include "util.h"

/* ---- text helpers ---- */

/* Text for a Markdown table cell: '|' escaped, line breaks as <br>. */
static void
md_cell(struct strbuf *sb, const char *s)
{
	if (s == NULL)
		return;
	for (; *s; s++) {
		if (*s == '|')
			strbuf_adds(sb, "\\|");
		else if (*s == '\n')
			strbuf_adds(sb, "<br>");
		else if (*s == '\r')
			continue;
		else if (*s == '\t')
			strbuf_addc(sb, ' ');
		else
			strbuf_addc(sb, *s);
	}
}

/* Text for a line of prose (heading, bullet, quote): line breaks become spaces. */
static void
md_inline(struct strbuf *sb, const char *s)
{
	if (s == NULL)
		return;
	for (; *s; s++) {
		if (*s == '\n' || *s == '\r' || *s == '\t')
			strbuf_addc(sb, ' ');
		else
			strbuf_addc(sb, *s);
	}
}

/* `s` as inline code when it holds no backtick or line break, plain text otherwise. */
static void
md_code(struct strbuf *sb, const char *s, bool in_table)
{
	if (s == NULL || s[0] == '\0') {
		strbuf_adds(sb, "-");
		return;
	}
	if (strpbrk(s, "`\n\r|") == NULL) {
		strbuf_addf(sb, "`%s`", s);
		return;
	}
	if (in_table)
		md_cell(sb, s);
	else
		md_inline(sb, s);
}

static bool
elapsed_between(const char *from, const char *to, char *out, size_t outlen)
{
	long long a, b;
	if (!time_parse_rfc3339(from, &a) || !time_parse_rfc3339(to, &b))
		return false;
	time_format_elapsed(b - a, out, outlen);
	return true;
}

/* ---- JSON values as text ---- */

static bool
is_scalar(const json_t *v)
{
	return v == NULL || !(json_is_object(v) || json_is_array(v));
}

static bool
is_scalar_array(const json_t *v)
{
	if (!json_is_array(v))
		return false;
	size_t i;
	json_t *e;
	json_array_foreach(v, i, e)
		if (!is_scalar(e))
			return false;
	return true;
}

static bool
is_object_array(const json_t *v)
{
	if (!json_is_array(v) || json_array_size(v) == 0)
		return false;
	size_t i;
	json_t *e;
	json_array_foreach(v, i, e)
		if (!json_is_object(e))
			return false;
	return true;
}

/* A value as plain text (not yet escaped): scalars readable, scalar arrays comma-joined. */
static char *
value_text(const json_t *v)
{
	if (v == NULL || json_is_null(v))
		return xstrdup("-");
	if (json_is_string(v))
		return xstrdup(json_string_value(v));
	if (json_is_true(v))
		return xstrdup("yes");
	if (json_is_false(v))
		return xstrdup("no");
	if (json_is_integer(v))
		return xasprintf("%" JSON_INTEGER_FORMAT, json_integer_value(v));
	if (json_is_real(v))
		return xasprintf("%g", json_real_value(v));
	if (is_scalar_array(v)) {
		if (json_array_size(v) == 0)
			return xstrdup("(none)");
		struct strbuf sb = {0};
		size_t i;
		json_t *e;
		json_array_foreach(v, i, e) {
			char *t = value_text(e);
			if (i > 0)
				strbuf_adds(&sb, ", ");
			strbuf_adds(&sb, t);
			free(t);
		}
		return strbuf_detach(&sb);
	}
	char *s = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
	return s ? s : xstrdup("?");
}

static void
add_value_cell(struct strbuf *sb, const json_t *v)
{
	char *t = value_text(v);
	md_cell(sb, t);
	free(t);
}

/* A Markdown table of an array of objects; columns are the keys in order of first appearance. */
static void
render_object_table(struct strbuf *sb, const json_t *arr)
{
	struct strlist cols = {0};
	size_t i;
	json_t *row;
	json_array_foreach(arr, i, row) {
		const char *key;
		json_t *v;
		json_object_foreach((json_t *)row, key, v)
			if (!strlist_contains(&cols, key))
				strlist_push(&cols, key);
	}
	strbuf_adds(sb, "|");
	for (size_t c = 0; c < cols.len; c++) {
		strbuf_addc(sb, ' ');
		md_cell(sb, cols.items[c]);
		strbuf_adds(sb, " |");
	}
	strbuf_adds(sb, "\n|");
	for (size_t c = 0; c < cols.len; c++)
		strbuf_adds(sb, "---|");
	strbuf_addc(sb, '\n');
	json_array_foreach(arr, i, row) {
		strbuf_adds(sb, "|");
		for (size_t c = 0; c < cols.len; c++) {
			strbuf_addc(sb, ' ');
			json_t *v = json_object_get(row, cols.items[c]);
			if (v != NULL)
				add_value_cell(sb, v);
			strbuf_adds(sb, " |");
		}
		strbuf_addc(sb, '\n');
	}
	strbuf_addc(sb, '\n');
	strlist_free(&cols);
}

static void
indent(struct strbuf *sb, int depth)
{
	for (int i = 0; i < depth; i++)
		strbuf_adds(sb, "  ");
}

/* Scalar and nested members of obj as a bullet list (arrays of objects are left out). */
static void
render_bullets(struct strbuf *sb, const json_t *obj, int depth)
{
	const char *key;
	json_t *v;
	json_object_foreach((json_t *)obj, key, v) {
		if (depth == 0 && is_object_array(v))
			continue;  /* rendered as tables by the caller */
		indent(sb, depth);
		strbuf_adds(sb, "- **");
		md_inline(sb, key);
		strbuf_adds(sb, "**:");
		if (json_is_object(v) && json_object_size(v) > 0 && depth < 3) {
			strbuf_addc(sb, '\n');
			render_bullets(sb, v, depth + 1);
			continue;
		}
		char *t = json_is_object(v) && json_object_size(v) == 0 ? xstrdup("(none)") :
		          value_text(v);
		strbuf_addc(sb, ' ');
		md_inline(sb, t);
		free(t);
		strbuf_addc(sb, '\n');
	}
}

/* Any JSON value as Markdown: objects as bullets plus tables, arrays of objects as tables. */
static void
render_generic(struct strbuf *sb, const json_t *v)
{
	if (json_is_object(v)) {
		bool any_bullet = false;
		const char *key;
		json_t *m;
		json_object_foreach((json_t *)v, key, m)
			if (!is_object_array(m))
				any_bullet = true;
		if (any_bullet) {
			render_bullets(sb, v, 0);
			strbuf_addc(sb, '\n');
		}
		json_object_foreach((json_t *)v, key, m) {
			if (!is_object_array(m))
				continue;
			strbuf_adds(sb, "**");
			md_inline(sb, key);
			strbuf_adds(sb, "**\n\n");
			render_object_table(sb, m);
		}
	} else if (is_object_array(v)) {
		render_object_table(sb, v);
	} else {
		char *t = value_text(v);
		md_inline(sb, t);
		free(t);
		strbuf_adds(sb, "\n\n");
	}
}

/* ---- the preflight result ---- */

/*
 * The preflight result (core/preflight.c, preflight_to_json()) nests prisma, lock and sessions
 * objects; the flat spelling (prisma_applied, lock_held, sessions_total...) is read too.
 */
static const char *const preflight_known[] = {
	"name", "roles", "reachable", "error", "where", "server_version", "server_version_num",
	"current_user", "superuser", "db_size_bytes", "tables", "ntables", "standby", "prisma",
	"prisma_table", "prisma_applied", "prisma_failed", "lock", "lock_held", "lock_pid",
	"lock_application", "sessions", "sessions_total", "sessions_active", "blockers", "warnings",
};

static bool
preflight_is_known(const char *key)
{
	for (size_t i = 0; i < RB_ARRAY_LEN(preflight_known); i++)
		if (strcmp(preflight_known[i], key) == 0)
			return true;
	return false;
}

/* env.group.key when env has that object, else env.flat (either may be absent: NULL). */
static json_t *
pf_get(const json_t *env, const char *group, const char *key, const char *flat)
{
	json_t *g = json_object_get(env, group);
	if (json_is_object(g))
		return json_object_get(g, key);
	return flat ? json_object_get(env, flat) : NULL;
}

static void
preflight_row(struct strbuf *sb, const json_t *env, const struct strlist *extra)
{
	char buf[64];
	json_t *reach = json_object_get(env, "reachable");
	bool reachable = json_is_true(reach);

	strbuf_adds(sb, "| ");
	add_value_cell(sb, json_object_get(env, "name"));
	strbuf_adds(sb, " | ");
	add_value_cell(sb, json_object_get(env, "roles"));
	strbuf_adds(sb, " | ");
	strbuf_adds(sb, reach == NULL ? "-" : reachable ? "yes" : "**no**");
	strbuf_adds(sb, " | ");
	add_value_cell(sb, json_object_get(env, "where"));
	strbuf_adds(sb, " | ");
	add_value_cell(sb, json_object_get(env, "server_version"));
	strbuf_adds(sb, " | ");
	json_t *user = json_object_get(env, "current_user");
	add_value_cell(sb, user);
	if (json_is_true(json_object_get(env, "superuser")))
		strbuf_adds(sb, " (superuser)");
	strbuf_adds(sb, " | ");
	json_t *size = json_object_get(env, "db_size_bytes");
	if (json_is_integer(size)) {
		format_bytes((long long)json_integer_value(size), buf, sizeof buf);
		strbuf_adds(sb, buf);
	} else {
		strbuf_adds(sb, "-");
	}
	strbuf_adds(sb, " | ");
	json_t *ntables = json_object_get(env, "tables");
	add_value_cell(sb, ntables ? ntables : json_object_get(env, "ntables"));
	strbuf_adds(sb, " | ");
	json_t *ptable = pf_get(env, "prisma", "table", "prisma_table");
	if (json_is_false(ptable)) {
		strbuf_adds(sb, "no migrations table");
	} else if (json_is_true(ptable)) {
		json_t *applied = pf_get(env, "prisma", "applied", "prisma_applied");
		json_t *failed = pf_get(env, "prisma", "failed", "prisma_failed");
		json_t *rolled = pf_get(env, "prisma", "rolled_back", NULL);
		strbuf_addf(sb, "%" JSON_INTEGER_FORMAT " applied", json_integer_value(applied));
		if (json_integer_value(failed) > 0) {
			strbuf_addf(sb, ", **%" JSON_INTEGER_FORMAT " failed**",
			            json_integer_value(failed));
			json_t *names = pf_get(env, "prisma", "failed_migrations", NULL);
			if (json_is_array(names) && json_array_size(names) > 0) {
				strbuf_adds(sb, " (");
				add_value_cell(sb, names);
				strbuf_adds(sb, ")");
			}
		}
		if (json_integer_value(rolled) > 0)
			strbuf_addf(sb, ", %" JSON_INTEGER_FORMAT " rolled back",
			            json_integer_value(rolled));
	} else {
		strbuf_adds(sb, "-");
	}
	strbuf_adds(sb, " | ");
	json_t *lock = pf_get(env, "lock", "held", "lock_held");
	if (json_is_true(lock)) {
		strbuf_adds(sb, "**held**");
		json_t *pid = pf_get(env, "lock", "pid", "lock_pid");
		if (json_is_integer(pid))
			strbuf_addf(sb, " by pid %" JSON_INTEGER_FORMAT, json_integer_value(pid));
		const char *app = json_string_value(pf_get(env, "lock", "application",
		                                           "lock_application"));
		if (app != NULL && app[0] != '\0') {
			strbuf_adds(sb, " (");
			md_cell(sb, app);
			strbuf_adds(sb, ")");
		}
	} else {
		strbuf_adds(sb, json_is_false(lock) ? "free" : "-");
	}
	strbuf_adds(sb, " | ");
	json_t *total = pf_get(env, "sessions", "total", "sessions_total");
	json_t *active = pf_get(env, "sessions", "active", "sessions_active");
	if (json_is_integer(total))
		strbuf_addf(sb, "%" JSON_INTEGER_FORMAT " (%" JSON_INTEGER_FORMAT " active)",
		            json_integer_value(total), json_integer_value(active));
	else if (json_is_integer(active))
		strbuf_addf(sb, "%" JSON_INTEGER_FORMAT " active", json_integer_value(active));
	else
		strbuf_adds(sb, "-");
	strbuf_adds(sb, " | ");
	add_value_cell(sb, json_object_get(env, "standby"));
	strbuf_adds(sb, " |");
	for (size_t i = 0; i < extra->len; i++) {
		strbuf_addc(sb, ' ');
		json_t *v = json_object_get(env, extra->items[i]);
		if (v != NULL)
			add_value_cell(sb, v);
		strbuf_adds(sb, " |");
	}
	strbuf_addc(sb, '\n');
}

/* "Title:" and a bullet per environment and item of env[key] (a string or an array). */
static void
preflight_list(struct strbuf *sb, const json_t *envs, const char *key, const char *title)
{
	bool header = false;
	size_t i;
	json_t *env;
	json_array_foreach(envs, i, env) {
		json_t *items = json_object_get(env, key);
		json_t *one = json_is_string(items) ? json_array() : NULL;
		if (one != NULL) {
			json_array_append(one, items);
			items = one;
		}
		size_t k;
		json_t *b;
		json_array_foreach(items, k, b) {
			if (!header) {
				strbuf_addf(sb, "%s:\n\n", title);
				header = true;
			}
			strbuf_adds(sb, "- **");
			char *name = value_text(json_object_get(env, "name"));
			md_inline(sb, name);
			free(name);
			strbuf_adds(sb, "**: ");
			const char *msg = json_string_value(json_object_get(b, "message"));
			char *t = msg ? xstrdup(msg) : value_text(b);
			md_inline(sb, t);
			free(t);
			strbuf_addc(sb, '\n');
		}
		json_decref(one);
	}
	if (header)
		strbuf_addc(sb, '\n');
}

static void
render_preflight(struct strbuf *sb, const json_t *data)
{
	json_t *envs = json_object_get(data, "environments");
	struct strlist extra = {0};
	size_t i;
	json_t *env;
	json_array_foreach(envs, i, env) {
		const char *key;
		json_t *v;
		json_object_foreach(env, key, v)
			if (!preflight_is_known(key) && !strlist_contains(&extra, key))
				strlist_push(&extra, key);
	}

	json_t *blocked = json_object_get(data, "blocked");
	if (json_is_boolean(blocked))
		strbuf_addf(sb, "**Release blocked: %s**\n\n", json_is_true(blocked) ? "yes" : "no");

	strbuf_adds(sb, "| Environment | Roles | Reachable | Where | Server | User | Size | Tables "
	            "| Prisma migrations | Advisory lock | Sessions | Standby |");
	for (size_t c = 0; c < extra.len; c++) {
		strbuf_addc(sb, ' ');
		md_cell(sb, extra.items[c]);
		strbuf_adds(sb, " |");
	}
	strbuf_adds(sb, "\n|---|---|---|---|---|---|---:|---:|---|---|---|---|");
	for (size_t c = 0; c < extra.len; c++)
		strbuf_adds(sb, "---|");
	strbuf_addc(sb, '\n');
	json_array_foreach(envs, i, env)
		if (json_is_object(env))
			preflight_row(sb, env, &extra);
	strbuf_addc(sb, '\n');
	strlist_free(&extra);

	preflight_list(sb, envs, "error", "Errors");
	preflight_list(sb, envs, "blockers", "Blockers");
	preflight_list(sb, envs, "warnings", "Warnings");

	/* Anything else the result holds. */
	json_t *rest = json_deep_copy(data);
	json_object_del(rest, "environments");
	json_object_del(rest, "blocked");
	if (json_object_size(rest) > 0)
		render_generic(sb, rest);
	json_decref(rest);
}

/* ---- sections ---- */

static void
render_header(struct strbuf *sb, const struct run_state *st)
{
	strbuf_adds(sb, "# Run report: ");
	md_inline(sb, st->plan_name ? st->plan_name : "(unknown plan)");
	strbuf_adds(sb, "\n\n");

	if (st->torn) {
		strbuf_adds(sb, "> **WARNING: the journal of this run is damaged.**\n> ");
		md_inline(sb, st->torn_message ? st->torn_message : "unreadable");
		strbuf_adds(sb, "\n>\n");
		if (st->torn_line > 1)
			strbuf_addf(sb, "> Only lines 1 to %ld are shown. The run may have done more "
			            "than this report says: check the databases themselves before relying "
			            "on it.\n", st->torn_line - 1);
		else
			strbuf_adds(sb, "> Nothing could be read from the journal: the run may have "
			            "done things this report does not show.\n");
		strbuf_adds(sb, "> The journal is ");
		char *p = xasprintf("%s/journal.jsonl", st->dir ? st->dir : ".");
		md_code(sb, p, false);
		free(p);
		strbuf_adds(sb, ".\n\n");
	}
	if (st->in_use) {
		strbuf_adds(sb, "> **Note:** a pgrunbook process");
		if (st->in_use_pid > 0)
			strbuf_addf(sb, " (pid %ld)", st->in_use_pid);
		strbuf_adds(sb, " still has this run open; this is the state so far.\n\n");
	}

	strbuf_adds(sb, "| | |\n|---|---|\n");
	strbuf_adds(sb, "| Run | ");
	md_code(sb, st->id, true);
	strbuf_adds(sb, " |\n| Plan | ");
	md_cell(sb, st->plan_name ? st->plan_name : "-");
	strbuf_adds(sb, " |\n| Plan file | ");
	md_code(sb, st->plan_path, true);
	strbuf_adds(sb, " |\n| Plan hash | ");
	md_code(sb, st->plan_hash, true);
	strbuf_adds(sb, " |\n| Run by | ");
	md_cell(sb, st->user ? st->user : "-");
	if (st->host && st->host[0]) {
		strbuf_adds(sb, " on ");
		md_cell(sb, st->host);
	}
	if (st->pid > 0)
		strbuf_addf(sb, " (pid %ld)", st->pid);
	strbuf_adds(sb, " |\n| Started | ");
	md_cell(sb, st->started ? st->started : "-");
	strbuf_adds(sb, " |\n| Finished | ");
	md_cell(sb, st->finished ? st->finished : "not finished");
	strbuf_adds(sb, " |\n| Duration | ");
	char buf[64];
	if (st->finished && elapsed_between(st->started, st->finished, buf, sizeof buf)) {
		strbuf_adds(sb, buf);
	} else if (st->nrecords > 0 &&
	           elapsed_between(st->started, st->records[st->nrecords - 1].ts, buf, sizeof buf)) {
		strbuf_addf(sb, "%s so far (up to the last record)", buf);
	} else {
		strbuf_adds(sb, "-");
	}
	strbuf_adds(sb, " |\n| State | **");
	md_cell(sb, st->state ? st->state : "unknown");
	strbuf_adds(sb, "** |\n| Last stage | ");
	md_cell(sb, st->last_stage ? st->last_stage : "-");
	strbuf_adds(sb, " |\n| pgrunbook | ");
	md_cell(sb, st->version ? st->version : "-");
	strbuf_adds(sb, " |\n\n");
}

/* Whether the journal holds an over_budget record for the stage. */
static bool
stage_over_budget(const struct run_state *st, const char *stage)
{
	for (size_t i = 0; i < st->nrecords; i++)
		if (st->records[i].type == EV_OVER_BUDGET && st->records[i].stage && strcmp(st->records[i].stage, stage) == 0)
			return true;
	return false;
}

static void
render_stages(struct strbuf *sb, const struct run_state *st, const struct plan *plan)
{
	strbuf_adds(sb, "## Stages\n\n"
	            "| Stage | Status | Started | Finished | Elapsed | Budget | Message |\n"
	            "|---|---|---|---|---:|---:|---|\n");
	for (int i = 0; i < PLAN_STAGE_COUNT; i++) {
		const struct run_stage_state *ss = &st->stages[i];
		const char *name = journal_stage_name((enum plan_stage)i);
		char buf[64] = "-", budget[32] = "-";
		long long el = -1;
		if (ss->finished && elapsed_between(ss->started, ss->finished, buf, sizeof buf)) {
			long long a, b;
			if (time_parse_rfc3339(ss->started, &a) && time_parse_rfc3339(ss->finished, &b))
				el = b - a;
		}
		int64_t bud = plan ? plan->budget_ms[i] : 0;
		if (bud > 0)
			plan_format_duration(bud, budget, sizeof budget);
		bool over = stage_over_budget(st, name) || (bud > 0 && el > bud);
		strbuf_addf(sb, "| %s | ", name);
		if (ss->status == STAGE_FAILED)
			strbuf_adds(sb, "**failed**");
		else
			strbuf_adds(sb, journal_stage_status_name(ss->status));
		strbuf_adds(sb, " | ");
		md_cell(sb, ss->started ? ss->started : "-");
		strbuf_adds(sb, " | ");
		md_cell(sb, ss->finished ? ss->finished : "-");
		strbuf_addf(sb, " | %s | %s%s | ", buf, budget, over ? " **over budget**" : "");
		md_cell(sb, ss->message ? ss->message : "");
		strbuf_adds(sb, " |\n");
	}
	if (plan && plan->budget_total_ms > 0) {
		char total[32], el[64] = "";
		plan_format_duration(plan->budget_total_ms, total, sizeof total);
		const char *end = st->finished ? st->finished : st->nrecords ? st->records[st->nrecords - 1].ts : NULL;
		bool over = false;
		long long a, b;
		if (end && elapsed_between(st->started, end, el, sizeof el) && time_parse_rfc3339(st->started, &a) && time_parse_rfc3339(end, &b))
			over = b - a > plan->budget_total_ms;
		strbuf_addf(sb, "\nTotal: %s of a budget of %s%s.\n", el[0] ? el : "-", total, over ? " (**over budget**)" : "");
	}
	strbuf_addc(sb, '\n');
}

/* Whether a verify stage_result has verify_run()'s shape (the Verify section renders it). */
static bool
verify_shaped(const json_t *res)
{
	return json_is_object(json_object_get(res, "summary")) && json_is_array(json_object_get(res, "checks"));
}

static void
render_results(struct strbuf *sb, const struct run_state *st)
{
	bool any = false;
	for (int i = 0; i < PLAN_STAGE_COUNT; i++)
		if (st->stages[i].result != NULL && !(i == PLAN_STAGE_VERIFY && verify_shaped(st->stages[i].result)))
			any = true;
	if (!any)
		return;
	strbuf_adds(sb, "## Results\n\n");
	for (int i = 0; i < PLAN_STAGE_COUNT; i++) {
		const json_t *res = st->stages[i].result;
		if (res == NULL || (i == PLAN_STAGE_VERIFY && verify_shaped(res)))
			continue;
		strbuf_addf(sb, "### %s\n\n", journal_stage_name((enum plan_stage)i));
		if (i == PLAN_STAGE_PREFLIGHT && json_is_object(res) &&
		    json_is_array(json_object_get(res, "environments")))
			render_preflight(sb, res);
		else
			render_generic(sb, res);
	}
}

/* A table row "| ts | stage | what | message |". */
static void
record_row(struct strbuf *sb, const struct journal_record *r, const char *what)
{
	strbuf_adds(sb, "| ");
	md_cell(sb, r->ts);
	strbuf_adds(sb, " | ");
	md_cell(sb, r->stage ? r->stage : "-");
	strbuf_adds(sb, " | ");
	strbuf_adds(sb, what);
	strbuf_adds(sb, " | ");
	md_cell(sb, r->message ? r->message : "");
	strbuf_adds(sb, " |\n");
}

/*
 * A section listing the records `classify` names (it returns the row's outcome text, or NULL to
 * leave the record out); nothing at all when no record qualifies.
 */
static void
render_record_table(struct strbuf *sb, const struct run_state *st, const char *title,
                    const char *column, const char *(*classify)(const struct journal_record *))
{
	bool header = false;
	for (size_t i = 0; i < st->nrecords; i++) {
		const struct journal_record *r = &st->records[i];
		const char *what = classify(r);
		if (what == NULL)
			continue;
		if (!header) {
			strbuf_addf(sb, "## %s\n\n| Time | Stage | %s | Message |\n|---|---|---|---|\n",
			            title, column);
			header = true;
		}
		record_row(sb, r, what);
	}
	if (header)
		strbuf_addc(sb, '\n');
}

static const char *
classify_confirmation(const struct journal_record *r)
{
	return r->type == EV_CONFIRM_NEEDED ? "asked" :
	       r->type == EV_CONFIRM_OK ? "confirmed" :
	       r->type == EV_CONFIRM_MISS ? "**did not match: refused**" : NULL;
}

/* Every typed confirmation: when, which stage, who typed it, the outcome, the phrase. */
static void
render_confirmations(struct strbuf *sb, const struct run_state *st)
{
	bool header = false;
	for (size_t i = 0; i < st->nrecords; i++) {
		const struct journal_record *r = &st->records[i];
		const char *what = classify_confirmation(r);
		if (what == NULL)
			continue;
		if (!header) {
			strbuf_adds(sb, "## Confirmations\n\n| Time | Stage | Who | Outcome | Message |\n|---|---|---|---|---|\n");
			header = true;
		}
		const char *who = json_string_value(json_object_get(r->data, "who"));
		strbuf_adds(sb, "| ");
		md_cell(sb, r->ts);
		strbuf_adds(sb, " | ");
		md_cell(sb, r->stage ? r->stage : "-");
		strbuf_adds(sb, " | ");
		md_cell(sb, who ? who : st->user ? st->user : "-");
		strbuf_addf(sb, " | %s | ", what);
		md_cell(sb, r->message ? r->message : "");
		strbuf_adds(sb, " |\n");
	}
	if (header)
		strbuf_addc(sb, '\n');
}

static const char *
classify_problem(const struct journal_record *r)
{
	if (r->type == EV_LOG && r->level == LOG_LEVEL_WARN)
		return "warning";
	if (r->type == EV_LOG && r->level == LOG_LEVEL_ERROR)
		return "**error**";
	switch (r->type) {
	case EV_STAGE_FAILED:
		return "**stage failed**";
	case EV_OVER_BUDGET:
		return "over budget";
	case EV_CONFIRM_MISS:
		return "confirmation refused";
	case EV_ROLLBACK_STARTED:
		return "rollback started";
	default:
		return NULL;
	}
}

/* Migration steps: each migration's outcome, lock timeouts, cleanups, resolves and recoveries. */
static const char *
classify_migration(const struct journal_record *r)
{
	if (r->type != EV_STEP)
		return NULL;
	const char *kind = json_string_value(json_object_get(r->data, "kind"));
	const char *state = json_string_value(json_object_get(r->data, "state"));
	if (kind == NULL || state == NULL)
		return NULL;
	if (strcmp(kind, "migration") == 0) {
		if (strcmp(state, "applied") == 0)
			return "applied";
		if (strcmp(state, "failed") == 0)
			return "**failed**";
		if (strcmp(state, "not_applied") == 0)
			return "not applied (rolled back, nothing changed)";
		if (strcmp(state, "unknown") == 0)
			return "**outcome unknown**";
		return NULL;
	}
	if (strcmp(kind, "statement") == 0 && strcmp(state, "lock_timeout") == 0)
		return "lock timeout";
	if (strcmp(kind, "cleanup") == 0)
		return "INVALID index dropped";
	if (strcmp(kind, "resolve") == 0)
		return strcmp(state, "done") == 0 ? "resolved" : "**resolve failed**";
	if (strcmp(kind, "recover") == 0)
		return strcmp(state, "done") == 0 ? "recovery step" : "**recovery step failed**";
	return NULL;
}

static json_int_t
jint(const json_t *o, const char *k)
{
	return json_integer_value(json_object_get(o, k));
}

static const char *
jstr_or(const json_t *o, const char *k, const char *dflt)
{
	const char *s = json_string_value(json_object_get(o, k));
	return s ? s : dflt;
}

/* Whether a sync_table step for table ends (applied or failed) after record i. */
static bool
sync_table_ended(const struct run_state *st, size_t i, const char *table)
{
	for (size_t k = i + 1; k < st->nrecords; k++) {
		const json_t *d = st->records[k].data;
		if (st->records[k].type != EV_STEP || strcmp(jstr_or(d, "kind", ""), "sync_table") != 0 ||
		    strcmp(jstr_or(d, "table", ""), table) != 0)
			continue;
		const char *state = jstr_or(d, "state", "");
		if (strcmp(state, "applied") == 0 || strcmp(state, "failed") == 0 || strcmp(state, "unknown") == 0)
			return true;
		if (strcmp(state, "started") == 0)
			return false;
	}
	return false;
}

/*
 * Data sync: each saved review (per table counts, the tables skipped) and each table's apply
 * (applied, failed and rolled back, or never finished).
 */
static void
render_sync(struct strbuf *sb, const struct run_state *st)
{
	bool header = false;
	struct strbuf apply = {0};
	for (size_t i = 0; i < st->nrecords; i++) {
		const struct journal_record *r = &st->records[i];
		const json_t *d = r->data;
		const char *kind = jstr_or(d, "kind", "");
		bool review = r->type == EV_STEP && strcmp(kind, "sync_review") == 0;
		bool started = r->type == EV_STAGE_STARTED && r->stage && strcmp(r->stage, "sync") == 0;
		bool table = r->type == EV_STEP && strcmp(kind, "sync_table") == 0;
		bool marked = r->type == EV_STEP && strcmp(kind, "sync_reviewed") == 0;
		if (!review && !started && !table && !marked)
			continue;
		if (!header) {
			strbuf_adds(sb, "## Sync\n\n");
			header = true;
		}
		if (review) {
			strbuf_adds(sb, "Review saved to ");
			md_code(sb, jstr_or(d, "path", "?"), false);
			strbuf_adds(sb, " at ");
			md_inline(sb, r->ts);
			strbuf_adds(sb, ":\n\n| Table | Mode | On conflict | Protected | To insert | To update | To delete | "
			            "Conflicts | Differs, kept | Unchanged |\n|---|---|---|---|---:|---:|---:|---:|---:|---:|\n");
			size_t k;
			json_t *t;
			json_array_foreach(json_object_get(d, "tables"), k, t) {
				json_t *c = json_object_get(t, "counts");
				strbuf_adds(sb, "| ");
				md_cell(sb, jstr_or(t, "table", "?"));
				strbuf_adds(sb, " | ");
				md_cell(sb, jstr_or(t, "mode", "?"));
				strbuf_adds(sb, " | ");
				md_cell(sb, jstr_or(t, "on_conflict", "?"));
				strbuf_addf(sb, " | %s | ", json_is_true(json_object_get(t, "protected")) ? "yes" : "no");
				if (json_is_object(c))
					strbuf_addf(sb, "%" JSON_INTEGER_FORMAT " | %" JSON_INTEGER_FORMAT " | %" JSON_INTEGER_FORMAT
					            " | %" JSON_INTEGER_FORMAT " | %" JSON_INTEGER_FORMAT " | %" JSON_INTEGER_FORMAT " |\n",
					            jint(c, "to_insert"), jint(c, "to_update"), jint(c, "to_delete"),
					            jint(c, "conflicts"), jint(c, "differs_kept"), jint(c, "unchanged"));
				else
					strbuf_adds(sb, "failed | | | | | |\n");
			}
			strbuf_addc(sb, '\n');
		}
		json_t *skipped = json_object_get(d, "skipped");
		if ((review || started) && json_array_size(skipped) > 0) {
			strbuf_adds(sb, review ? "Skipped (not synced): " : "Skipped by the applied review: ");
			size_t k;
			json_t *s;
			json_array_foreach(skipped, k, s) {
				if (k)
					strbuf_adds(sb, ", ");
				if (json_is_string(s)) {
					md_inline(sb, json_string_value(s));
				} else {
					md_inline(sb, jstr_or(s, "table", "?"));
					strbuf_adds(sb, " (");
					md_inline(sb, jstr_or(s, "reason", "?"));
					strbuf_adds(sb, ")");
				}
			}
			strbuf_adds(sb, ".\n\n");
		}
		if (marked) {
			/* A table marked reviewed on the sync screen. */
			char *what = xasprintf("reviewed by %s (%" JSON_INTEGER_FORMAT " of %" JSON_INTEGER_FORMAT " rows shown)",
			                       jstr_or(d, "by", "?"), jint(d, "rows_shown"), jint(d, "rows"));
			if (apply.len == 0)
				strbuf_adds(&apply, "| Time | Table | Outcome | Message |\n|---|---|---|---|\n");
			strbuf_adds(&apply, "| ");
			md_cell(&apply, r->ts);
			strbuf_adds(&apply, " | ");
			md_cell(&apply, jstr_or(d, "table", "?"));
			strbuf_adds(&apply, " | ");
			md_cell(&apply, what);
			strbuf_adds(&apply, " | ");
			md_cell(&apply, r->message ? r->message : "");
			strbuf_adds(&apply, " |\n");
			free(what);
		}
		if (table) {
			const char *state = jstr_or(d, "state", "");
			const char *tname = jstr_or(d, "table", "?");
			char *what = NULL;
			if (strcmp(state, "applied") == 0)
				what = xasprintf("applied: %" JSON_INTEGER_FORMAT " inserted, %" JSON_INTEGER_FORMAT " updated, %"
				                 JSON_INTEGER_FORMAT " deleted", jint(d, "inserted"), jint(d, "updated"),
				                 jint(d, "deleted"));
			else if (strcmp(state, "failed") == 0)
				what = xstrdup("**failed: rolled back, nothing of it written**");
			else if (strcmp(state, "unknown") == 0)
				what = xstrdup("**outcome unknown**: the connection was lost during COMMIT; whether it was "
				               "written is unknown (sync diff shows the target as it is; rollback counts it as written)");
			else if (strcmp(state, "started") == 0 && !sync_table_ended(st, i, tname))
				what = xstrdup("**never finished**: pgrunbook stopped before recording the outcome; its "
				               "transaction rolled back unless it had just committed (sync diff shows which)");
			if (what) {
				if (apply.len == 0)
					strbuf_adds(&apply, "| Time | Table | Outcome | Message |\n|---|---|---|---|\n");
				strbuf_adds(&apply, "| ");
				md_cell(&apply, r->ts);
				strbuf_adds(&apply, " | ");
				md_cell(&apply, tname);
				strbuf_addf(&apply, " | %s | ", what);
				md_cell(&apply, r->message ? r->message : "");
				strbuf_adds(&apply, " |\n");
				free(what);
			}
		}
	}
	if (apply.len) {
		strbuf_adds(sb, "Review marks and apply:\n\n");
		strbuf_add(sb, apply.buf, apply.len);
		strbuf_addc(sb, '\n');
	}
	strbuf_release(&apply);
}

/*
 * The checklist as it ended: each item once (in the order first ticked), its final state with
 * where, when and who changed it last, how often it changed, and a warning when it was last
 * ticked after a stage that changes the target had started (the list is for before them).
 */
static void
render_checklist(struct strbuf *sb, const struct run_state *st)
{
	json_t *items = json_array();   /* [{item, record index of the last change, changes}] */
	for (size_t i = 0; i < st->nrecords; i++) {
		const struct journal_record *r = &st->records[i];
		if (r->type != EV_CHECKLIST_TICK)
			continue;
		const char *item = r->message ? r->message : json_string_value(json_object_get(r->data, "item"));
		if (item == NULL)
			item = "(no text)";
		json_t *e = NULL, *x;
		size_t k;
		json_array_foreach(items, k, x)
			if (strcmp(json_string_value(json_object_get(x, "item")), item) == 0)
				e = x;
		if (e == NULL) {
			e = json_pack("{s:s, s:I}", "item", item, "changes", (json_int_t)0);
			json_array_append_new(items, e);
		}
		json_object_set_new(e, "last", json_integer((json_int_t)i));
		json_object_set_new(e, "changes", json_integer(jint(e, "changes") + 1));
	}
	/* The first record of a stage that changes the target (maintenance, migrate, sync). */
	size_t changing = st->nrecords;
	const char *changing_stage = NULL;
	for (size_t i = 0; i < st->nrecords && changing == st->nrecords; i++) {
		const struct journal_record *r = &st->records[i];
		if (r->type == EV_STAGE_STARTED && r->stage &&
		    (strcmp(r->stage, "maintenance") == 0 || strcmp(r->stage, "migrate") == 0 || strcmp(r->stage, "sync") == 0)) {
			changing = i;
			changing_stage = r->stage;
		}
	}
	size_t k;
	json_t *e;
	json_array_foreach(items, k, e) {
		if (k == 0)
			strbuf_adds(sb, "## Checklist\n\nEach item as the run left it (the last change).\n\n");
		const struct journal_record *r = &st->records[jint(e, "last")];
		bool ticked = !json_is_false(json_object_get(r->data, "ticked"));
		const char *who = json_string_value(json_object_get(r->data, "user"));
		strbuf_adds(sb, ticked ? "- [x] " : "- [ ] ");
		md_inline(sb, json_string_value(json_object_get(e, "item")));
		strbuf_adds(sb, " (");
		if (r->stage) {
			md_inline(sb, r->stage);
			strbuf_adds(sb, ", ");
		}
		md_inline(sb, r->ts);
		if (who) {
			strbuf_adds(sb, ", by ");
			md_inline(sb, who);
		}
		if (jint(e, "changes") > 1)
			strbuf_addf(sb, "; changed %" JSON_INTEGER_FORMAT " times", jint(e, "changes"));
		if (ticked && (size_t)jint(e, "last") > changing)
			strbuf_addf(sb, "; **ticked after %s had started**", changing_stage);
		strbuf_adds(sb, ")\n");
	}
	if (json_array_size(items) > 0)
		strbuf_addc(sb, '\n');
	json_decref(items);
}

static void
render_timeline(struct strbuf *sb, const struct run_state *st)
{
	if (st->nrecords == 0)
		return;
	strbuf_adds(sb, "## Timeline\n\n| # | Time | Stage | Record | Message |\n"
	            "|---:|---|---|---|---|\n");
	for (size_t i = 0; i < st->nrecords; i++) {
		const struct journal_record *r = &st->records[i];
		strbuf_addf(sb, "| %ld ", r->seq);
		const char *type = events_type_name(r->type);
		if (r->type == EV_LOG && r->level != LOG_LEVEL_INFO) {
			char *t = xasprintf("log (%s)", events_level_name(r->level));
			record_row(sb, r, t);
			free(t);
		} else {
			record_row(sb, r, type);
		}
	}
	strbuf_addc(sb, '\n');
}

/* Verify: the summary, then every check that did not pass, then the notes. */
static void
render_verify(struct strbuf *sb, const json_t *res)
{
	json_t *sum = json_object_get(res, "summary");
	strbuf_addf(sb, "%" JSON_INTEGER_FORMAT " checks: %" JSON_INTEGER_FORMAT " passed, %" JSON_INTEGER_FORMAT
	            " failed, %" JSON_INTEGER_FORMAT " not run.", jint(sum, "checks"), jint(sum, "passed"),
	            jint(sum, "failed"), jint(sum, "not_run"));
	json_t *bl = json_object_get(res, "baseline");
	if (json_is_object(bl)) {
		strbuf_adds(sb, " Row counts compared with ");
		md_code(sb, jstr_or(bl, "path", "-"), false);
		strbuf_addf(sb, " (%s", jstr_or(bl, "source", "baseline"));
		if (json_string_value(json_object_get(bl, "taken_at")))
			strbuf_addf(sb, ", taken %s", jstr_or(bl, "taken_at", ""));
		strbuf_adds(sb, ").");
	} else {
		strbuf_adds(sb, " No baseline: row counts were not compared.");
	}
	strbuf_adds(sb, "\n\n| Check | Object | Result | Detail |\n|---|---|---|---|\n");
	size_t shown = 0, i;
	json_t *c;
	json_array_foreach(json_object_get(res, "checks"), i, c) {
		const char *result = jstr_or(c, "result", "");
		if (strcmp(result, "pass") == 0)
			continue;
		strbuf_adds(sb, "| ");
		md_cell(sb, jstr_or(c, "kind", "-"));
		strbuf_adds(sb, " | ");
		md_cell(sb, jstr_or(c, "object", "-"));
		strbuf_adds(sb, strcmp(result, "fail") == 0 ? " | **fail** | " : " | ");
		if (strcmp(result, "fail") != 0) {
			md_cell(sb, result);
			strbuf_adds(sb, " | ");
		}
		md_cell(sb, jstr_or(c, "detail", ""));
		strbuf_adds(sb, " |\n");
		shown++;
	}
	if (shown == 0)
		strbuf_adds(sb, "| every check | - | pass | - |\n");
	strbuf_addc(sb, '\n');
}

/*
 * Row counts before (the run's backup, counted in the dump's snapshot) and after (verify's
 * row_counts checks), one table per line; nothing when neither is known.
 */
static void
render_counts(struct strbuf *sb, const struct run_state *st)
{
	const json_t *bk = st->stages[PLAN_STAGE_BACKUP].result, *vf = st->stages[PLAN_STAGE_VERIFY].result;
	json_t *before = json_object_get(bk, "tables");
	json_t *after = json_object();
	size_t i;
	json_t *c;
	json_array_foreach(json_object_get(vf, "checks"), i, c) {
		const char *kind = jstr_or(c, "kind", "");
		const char *table = json_string_value(json_object_get(c, "table"));
		if (strcmp(kind, "row_counts") == 0 && table)
			json_object_set(after, table, c);
	}
	if (json_object_size(before) == 0 && json_object_size(after) == 0) {
		json_decref(after);
		return;
	}
	strbuf_adds(sb, "## Row counts\n\nBefore: the backup of this run (counted in the snapshot it dumped). "
	            "After: verify.\n\n| Table | Before | After | Change |\n|---|---:|---:|---|\n");
	const char *k;
	json_t *v;
	json_object_foreach(before, k, v) {
		json_t *a = json_object_get(after, k);
		strbuf_adds(sb, "| ");
		md_cell(sb, k);
		strbuf_addf(sb, " | %" JSON_INTEGER_FORMAT " | ", json_integer_value(v));
		if (a && json_object_get(a, "after") && !json_is_null(json_object_get(a, "after"))) {
			json_int_t n = jint(a, "after");
			strbuf_addf(sb, "%" JSON_INTEGER_FORMAT " | %s%s", n, jstr_or(a, "status", "-"),
			            json_is_true(json_object_get(a, "ok")) ? "" : " **fail**");
		} else if (a) {
			strbuf_addf(sb, "- | %s", jstr_or(a, "status", "-"));
		} else {
			strbuf_adds(sb, "- | -");
		}
		strbuf_adds(sb, " |\n");
	}
	json_object_foreach(after, k, v) {
		if (json_object_get(before, k))
			continue;
		strbuf_adds(sb, "| ");
		md_cell(sb, k);
		strbuf_addf(sb, " | - | %" JSON_INTEGER_FORMAT " | %s |\n", jint(v, "after"), jstr_or(v, "status", "-"));
	}
	strbuf_addc(sb, '\n');
	json_decref(after);
}

/* Maintenance layers (freeze and thaw steps) and rollback steps. */
static const char *
classify_maintenance(const struct journal_record *r)
{
	if (r->type != EV_STEP)
		return NULL;
	const char *kind = json_string_value(json_object_get(r->data, "kind"));
	const char *state = json_string_value(json_object_get(r->data, "state"));
	if (kind == NULL || state == NULL || (strcmp(kind, "freeze") != 0 && strcmp(kind, "thaw") != 0))
		return NULL;
	if (strcmp(state, "applying") == 0 || strcmp(state, "undoing") == 0)
		return NULL;   /* the undo record before the layer: the outcome follows */
	static char buf[96];
	snprintf(buf, sizeof buf, "%s %s: %s", kind, jstr_or(r->data, "layer", "?"), state);
	return buf;
}

static const char *
classify_rollback(const struct journal_record *r)
{
	if (r->type == EV_ROLLBACK_STARTED)
		return "rollback started";
	if (r->type == EV_ROLLBACK_DONE)
		return "rollback done";
	if (r->stage == NULL || strcmp(r->stage, "rollback") != 0)
		return NULL;
	if (r->type == EV_STAGE_FAILED)
		return "**rollback failed**";
	if (r->type != EV_STEP)
		return NULL;
	static char buf[96];
	if (strcmp(jstr_or(r->data, "kind", ""), "thaw") == 0)
		snprintf(buf, sizeof buf, "freeze %s left behind: %s", jstr_or(r->data, "layer", "?"),
		         jstr_or(r->data, "state", "?"));
	else
		snprintf(buf, sizeof buf, "%s: %s", jstr_or(r->data, "step", "step"), jstr_or(r->data, "state", "?"));
	return buf;
}

/* The staging rehearsal's migrate estimate, when the run has one. */
static void
render_staging(struct strbuf *sb, const struct run_state *st)
{
	const json_t *res = st->stages[PLAN_STAGE_STAGING].result;
	json_t *est = json_object_get(res, "estimate");
	if (!json_is_object(est))
		return;
	char m[32], l[32];
	time_format_elapsed(jint(est, "migrate_ms"), m, sizeof m);
	time_format_elapsed(jint(est, "lock_wait_ms"), l, sizeof l);
	strbuf_addf(sb, "## Staging rehearsal\n\nThe migrations took %s on ", m);
	md_code(sb, jstr_or(res, "database", "staging"), false);
	strbuf_addf(sb, " (%s of it waiting for locks): the estimate for the target.\n\n", l);
	json_t *migs = json_object_get(res, "migrations"), *mg;
	size_t i;
	if (json_array_size(migs) == 0)
		return;
	strbuf_adds(sb, "| Migration | Time | Waiting for locks |\n|---|---:|---:|\n");
	json_array_foreach(migs, i, mg) {
		time_format_elapsed(jint(mg, "ms"), m, sizeof m);
		time_format_elapsed(jint(mg, "lock_wait_ms"), l, sizeof l);
		strbuf_adds(sb, "| ");
		md_cell(sb, jstr_or(mg, "name", "-"));
		strbuf_addf(sb, " | %s | %s |\n", m, l);
	}
	strbuf_addc(sb, '\n');
}

/* The webhook outbox as it is now (the variables' names only; never a URL). */
static void
render_notifications(struct strbuf *sb, const struct run_state *st)
{
	json_t *sum = st->dir ? notify_outbox_summary(st->dir) : NULL;
	if (sum == NULL)
		return;
	strbuf_addf(sb, "## Notifications\n\nThe webhook outbox when this report was written: %" JSON_INTEGER_FORMAT
	            " sent, %" JSON_INTEGER_FORMAT " pending, %" JSON_INTEGER_FORMAT " failed.\n\n"
	            "| Endpoint | Format | State | Sent | Pending | Failed | Last error |\n|---|---|---|---|---|---|---|\n",
	            json_integer_value(json_object_get(sum, "sent")), json_integer_value(json_object_get(sum, "pending")),
	            json_integer_value(json_object_get(sum, "failed")));
	size_t i;
	json_t *e;
	json_array_foreach(json_object_get(sum, "endpoints"), i, e) {
		strbuf_addf(sb, "| notify[%" JSON_INTEGER_FORMAT "] ", json_integer_value(json_object_get(e, "index")));
		md_code(sb, jstr_or(e, "url_env", "-"), true);
		strbuf_adds(sb, " | ");
		md_cell(sb, jstr_or(e, "format", "-"));
		strbuf_adds(sb, " | ");
		md_cell(sb, jstr_or(e, "state", "-"));
		strbuf_addf(sb, " | %" JSON_INTEGER_FORMAT " | %" JSON_INTEGER_FORMAT " | %" JSON_INTEGER_FORMAT " | ",
		            json_integer_value(json_object_get(e, "sent")), json_integer_value(json_object_get(e, "pending")),
		            json_integer_value(json_object_get(e, "failed")));
		json_t *ls = json_object_get(e, "last_status");
		const char *le = jstr_or(e, "last_error", NULL);
		if (json_is_integer(ls) && json_integer_value(ls) >= 300)
			strbuf_addf(sb, "HTTP %" JSON_INTEGER_FORMAT "%s", json_integer_value(ls), le ? ": " : "");
		md_cell(sb, le ? le : json_is_integer(ls) && json_integer_value(ls) >= 300 ? "" : "-");
		strbuf_adds(sb, " |\n");
	}
	strbuf_adds(sb, "\n");
	json_decref(sum);
}

char *
report_markdown(const struct run_state *st, const struct plan *plan)
{
	struct strbuf sb = {0};
	render_header(&sb, st);
	render_stages(&sb, st, plan);
	render_staging(&sb, st);
	render_record_table(&sb, st, "Maintenance", "Layer", classify_maintenance);
	render_record_table(&sb, st, "Migrations", "Outcome", classify_migration);
	render_sync(&sb, st);
	render_counts(&sb, st);
	if (verify_shaped(st->stages[PLAN_STAGE_VERIFY].result)) {
		strbuf_adds(&sb, "## Verify\n\n");
		render_verify(&sb, st->stages[PLAN_STAGE_VERIFY].result);
	}
	render_record_table(&sb, st, "Rollback", "Step", classify_rollback);
	render_confirmations(&sb, st);
	render_checklist(&sb, st);
	render_record_table(&sb, st, "Warnings and errors", "Kind", classify_problem);
	render_notifications(&sb, st);
	render_results(&sb, st);
	render_timeline(&sb, st);
	if (st->torn) {
		strbuf_adds(&sb, "---\n\n**This report is incomplete: ");
		md_inline(&sb, st->torn_message ? st->torn_message : "the journal is damaged");
		strbuf_adds(&sb, ".**\n");
	}
	/* One trailing newline. */
	while (sb.len >= 2 && sb.buf[sb.len - 1] == '\n' && sb.buf[sb.len - 2] == '\n')
		sb.buf[--sb.len] = '\0';
	return strbuf_detach(&sb);
}

char *
report_write_run(const char *dir, const struct plan *plan, char **md_out, struct rb_error *err)
{
	if (md_out)
		*md_out = NULL;
	struct run_state st;
	char *path = NULL;
	if (journal_replay(dir, &st, err)) {
		st.in_use = false;   /* held by the caller, which is writing the report */
		char *md = report_markdown(&st, plan);
		path = xasprintf("%s/report.md", dir);
		if (!report_write(path, md, err)) {
			free(path);
			path = NULL;
		}
		if (md_out)
			*md_out = md;
		else
			free(md);
	}
	run_state_free(&st);
	return path;
}

bool
report_write(const char *path, const char *md, struct rb_error *err)
{
	char *why = NULL;
	bool ok = util_write_file_atomic(path, md, strlen(md), &why);
	if (!ok)
		rb_error_setc(err, RB_EXIT_STEP, "could not write the report %s: %s", path, why);
	free(why);
	return ok;
}
