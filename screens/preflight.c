/* preflight.c: the preflight stage screen: every environment live, then blockers and warnings. */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "screens/wizard.h"
#include "tui/table.h"
#include "tui/text.h"
#include "tui/textview.h"
#include "tui/theme.h"

enum {
	/* What decides a release first; the long host/db last (it is in the header for the target). */
	COL_ENV, COL_STATE, COL_ROLES, COL_VERSION, COL_PRISMA, COL_LOCK, COL_SESSIONS, COL_STANDBY,
	COL_USER, COL_SIZE, COL_TABLES, COL_WHERE, NCOLS
};

static const struct tui_table_column columns[NCOLS] = {
	[COL_ENV]      = { "environment", 0, 0, 16, false },
	[COL_STATE]    = { "state", 0, 0, 12, false },
	[COL_ROLES]    = { "roles", 0, 0, 24, false },
	[COL_WHERE]    = { "where", 0, 0, 40, false },
	[COL_VERSION]  = { "version", 0, 0, 12, false },
	[COL_USER]     = { "user", 0, 0, 20, false },
	[COL_SIZE]     = { "size", 0, 0, 10, true },
	[COL_TABLES]   = { "tables", 0, 0, 0, true },
	[COL_PRISMA]   = { "prisma applied/failed", 0, 0, 0, false },
	[COL_LOCK]     = { "lock", 0, 0, 24, false },
	[COL_SESSIONS] = { "sessions", 0, 0, 0, false },
	[COL_STANDBY]  = { "standby", 0, 0, 0, false },
};

struct pf_screen {
	struct wizard       *wz;
	struct tui_table    *table;
	struct tui_textview *tv;
	unsigned             seen_gen;
	int                  seen_width;
};

/* The environment named name in a JSON array of environment results, or NULL. */
static json_t *
env_in(json_t *envs, const char *name)
{
	size_t i;
	json_t *e;
	json_array_foreach(envs, i, e) {
		const char *n = json_string_value(json_object_get(e, "name"));
		if (n && strcmp(n, name) == 0)
			return e;
	}
	return NULL;
}

static json_t *
env_result(const struct wizard *wz, const char *name)
{
	return env_in(json_object_get(wz->preflight, "environments"), name);
}

static int64_t
jint(json_t *o, const char *a, const char *b)
{
	json_t *v = json_object_get(o, a);
	if (b)
		v = json_object_get(v, b);
	return (int64_t)json_integer_value(v);
}

static const char *
jstr(json_t *o, const char *a, const char *b)
{
	json_t *v = json_object_get(o, a);
	if (b)
		v = json_object_get(v, b);
	return json_string_value(v);
}

static void
fill(void *ud, long row, struct tui_table_row *r)
{
	struct pf_screen *ps = ud;
	struct wizard *wz = ps->wz;
	const char *name = wz->plan->envs[row].name;
	tui_table_row_set(r, COL_ENV, name);
	if (strcmp(name, wz->plan->target) == 0)
		tui_table_row_role(r, COL_ENV, TUI_ROLE_PROD);

	json_t *e = NULL;
	if (wizard_running(wz, PLAN_STAGE_PREFLIGHT) && (e = env_in(wz->pf_partial, name)) == NULL) {
		const char *line = wz->pf_lines[row];
		bool checking = line == NULL && (row == 0 || wz->pf_lines[row - 1] != NULL);
		if (line) {
			bool bad = wz->pf_levels[row] != LOG_LEVEL_INFO;
			tui_table_row_set(r, COL_STATE, bad ? "problem" : "checked");
			tui_table_row_role(r, COL_STATE, bad ? TUI_ROLE_DANGER : TUI_ROLE_OK);
		} else {
			tui_table_row_set(r, COL_STATE, checking ? "checking" : "waiting");
			tui_table_row_role(r, COL_STATE, checking ? TUI_ROLE_WARN : TUI_ROLE_MUTED);
		}
		return;
	}
	if (e == NULL)
		e = env_result(wz, name);
	if (e == NULL) {
		tui_table_row_set(r, COL_STATE, "not checked");
		tui_table_row_role(r, COL_STATE, TUI_ROLE_MUTED);
		return;
	}
	bool reachable = json_is_true(json_object_get(e, "reachable"));
	size_t nblock = json_array_size(json_object_get(e, "blockers"));
	size_t nwarn = json_array_size(json_object_get(e, "warnings"));
	if (!reachable) {
		tui_table_row_set(r, COL_STATE, "unreachable");
		tui_table_row_role(r, COL_STATE, TUI_ROLE_DANGER);
	} else if (nblock) {
		tui_table_row_set(r, COL_STATE, "blocked");
		tui_table_row_role(r, COL_STATE, TUI_ROLE_DANGER);
	} else if (nwarn) {
		tui_table_row_set(r, COL_STATE, "warning");
		tui_table_row_role(r, COL_STATE, TUI_ROLE_WARN);
	} else {
		tui_table_row_set(r, COL_STATE, "ready");
		tui_table_row_role(r, COL_STATE, TUI_ROLE_OK);
	}
	struct strbuf roles = {0};
	size_t i;
	json_t *v;
	json_array_foreach(json_object_get(e, "roles"), i, v) {
		if (i)
			strbuf_adds(&roles, ", ");
		strbuf_adds(&roles, json_string_value(v) ? json_string_value(v) : "");
	}
	tui_table_row_set(r, COL_ROLES, roles.buf ? roles.buf : "-");
	strbuf_release(&roles);
	const char *where = jstr(e, "where", NULL);
	tui_table_row_set(r, COL_WHERE, where ? where : "-");
	if (!reachable || jstr(e, "server_version", NULL) == NULL)
		return;
	tui_table_row_set(r, COL_VERSION, jstr(e, "server_version", NULL));
	bool su = json_is_true(json_object_get(e, "superuser"));
	tui_table_row_setf(r, COL_USER, "%s%s", jstr(e, "current_user", NULL) ? jstr(e, "current_user", NULL) : "?",
	                   su ? " (superuser)" : "");
	char size[32];
	format_bytes((long long)jint(e, "db_size_bytes", NULL), size, sizeof size);
	tui_table_row_set(r, COL_SIZE, size);
	tui_table_row_setf(r, COL_TABLES, "%" PRId64, jint(e, "tables", NULL));
	bool inspected = jstr(e, "error", NULL) == NULL;
	if (!inspected) {
		tui_table_row_set(r, COL_PRISMA, "unknown");
		tui_table_row_set(r, COL_LOCK, "unknown");
		tui_table_row_role(r, COL_PRISMA, TUI_ROLE_WARN);
		tui_table_row_role(r, COL_LOCK, TUI_ROLE_WARN);
	} else {
		if (json_is_true(json_object_get(json_object_get(e, "prisma"), "table"))) {
			int64_t failed = jint(e, "prisma", "failed");
			tui_table_row_setf(r, COL_PRISMA, "%" PRId64 "/%" PRId64, jint(e, "prisma", "applied"), failed);
			if (failed)
				tui_table_row_role(r, COL_PRISMA, TUI_ROLE_DANGER);
		} else {
			tui_table_row_set(r, COL_PRISMA, "none");
		}
		if (json_is_true(json_object_get(json_object_get(e, "lock"), "held"))) {
			tui_table_row_setf(r, COL_LOCK, "held by pid %" PRId64, jint(e, "lock", "pid"));
			tui_table_row_role(r, COL_LOCK, TUI_ROLE_DANGER);
		} else {
			tui_table_row_set(r, COL_LOCK, "free");
		}
	}
	tui_table_row_setf(r, COL_SESSIONS, "%" PRId64 " (%" PRId64 " active)", jint(e, "sessions", "total"),
	                   jint(e, "sessions", "active"));
	bool standby = json_is_true(json_object_get(e, "standby"));
	tui_table_row_set(r, COL_STANDBY, standby ? "yes" : "no");
	if (standby)
		tui_table_row_role(r, COL_STANDBY, TUI_ROLE_DANGER);
}

/* Adds text wrapped to width, continuation lines indented, all in role. */
static void
add_wrapped(struct tui_textview *tv, const char *text, int width, enum tui_role role)
{
	struct strlist lines = {0};
	tui_text_wrap(text, width > 8 ? width - 2 : 6, &lines);
	for (size_t i = 0; i < lines.len; i++) {
		char *l = i ? xasprintf("  %s", lines.items[i]) : xstrdup(lines.items[i]);
		tui_textview_add_line(tv, l, role);
		free(l);
	}
	strlist_free(&lines);
}

static void
add_list(struct tui_textview *tv, json_t *e, const char *key, const char *label, int width, enum tui_role role)
{
	size_t i;
	json_t *v;
	const char *name = jstr(e, "name", NULL);
	json_array_foreach(json_object_get(e, key), i, v) {
		char *t = xasprintf("%s %s: %s", label, name ? name : "?", json_string_value(v) ? json_string_value(v) : "");
		add_wrapped(tv, t, width, role);
		free(t);
	}
}

static void
rebuild(struct pf_screen *ps, int width)
{
	struct wizard *wz = ps->wz;
	tui_textview_set_text(ps->tv, "");
	if (wizard_running(wz, PLAN_STAGE_PREFLIGHT)) {
		for (size_t i = 0; i < wz->plan->nenvs; i++) {
			if (wz->pf_lines[i] == NULL)
				continue;
			enum rb_log_level l = wz->pf_levels[i];
			add_wrapped(ps->tv, wz->pf_lines[i], width,
			            l == LOG_LEVEL_ERROR ? TUI_ROLE_DANGER : l == LOG_LEVEL_WARN ? TUI_ROLE_WARN : TUI_ROLE_NORMAL);
		}
	} else if (wz->preflight) {
		size_t n = 0, i;
		json_t *e;
		json_t *envs = json_object_get(wz->preflight, "environments");
		json_array_foreach(envs, i, e) {
			n += json_array_size(json_object_get(e, "blockers")) + json_array_size(json_object_get(e, "warnings"));
			add_list(ps->tv, e, "blockers", "BLOCKED", width, TUI_ROLE_DANGER);
		}
		json_array_foreach(envs, i, e) {
			const char *err = jstr(e, "error", NULL), *detail = jstr(e, "error_detail", NULL);
			if (err) {
				char *t = xasprintf("error %s: %s%s%s", jstr(e, "name", NULL), err, detail ? " " : "",
				                    detail ? detail : "");
				add_wrapped(ps->tv, t, width, TUI_ROLE_DANGER);
				free(t);
			}
		}
		json_array_foreach(envs, i, e)
			add_list(ps->tv, e, "warnings", "WARNING", width, TUI_ROLE_WARN);
		if (n == 0)
			add_wrapped(ps->tv, "Nothing blocks the release and nothing needs a warning.", width, TUI_ROLE_OK);
	} else {
		add_wrapped(ps->tv, "Not checked yet. F2 (or r) runs preflight: it connects to every environment "
		            "read-only and changes nothing.", width, TUI_ROLE_MUTED);
	}
	ps->seen_gen = wz->pf_gen;
	ps->seen_width = width;
}

static int
pf_enter(struct screen *s, void *arg)
{
	(void)arg;
	struct pf_screen *ps = s->priv;
	ps->wz = tui_app_userdata(s->app);
	ps->table = tui_table_new(columns, NCOLS, fill, ps);
	tui_table_set_rows(ps->table, (long)ps->wz->plan->nenvs);
	ps->tv = tui_textview_new();
	ps->seen_gen = ps->wz->pf_gen - 1;
	if (!ps->wz->pf_ran)
		wizard_preflight_start(ps->wz);
	return 0;
}

static void
pf_draw(struct screen *s)
{
	struct pf_screen *ps = s->priv;
	struct wizard *wz = ps->wz;
	int h, w;
	getmaxyx(s->win, h, w);
	const struct wiz_stage *st = &wz->stages[PLAN_STAGE_PREFLIGHT];
	tui_text_put(s->win, 0, 1, "Preflight: read-only checks of every environment", 0, w - 1,
	             tui_attr(TUI_ROLE_HEADER), true);
	char *status;
	enum tui_role role = TUI_ROLE_NORMAL;
	if (wizard_running(wz, PLAN_STAGE_PREFLIGHT)) {
		status = xstrdup("running...  (q asks before quitting)");
		role = TUI_ROLE_WARN;
	} else if (st->status == STAGE_DONE) {
		status = xasprintf("done: %s. Next stage: F7 or ]", st->message ? st->message : "ready");
		role = TUI_ROLE_OK;
	} else if (st->status == STAGE_FAILED) {
		status = xasprintf("failed: %s  (F2 runs it again)", st->message ? st->message : "see below");
		role = TUI_ROLE_DANGER;
	} else {
		status = xstrdup("pending");
	}
	tui_text_put(s->win, 1, 1, status, 0, w - 1, tui_attr(role), true);
	free(status);

	int th = (int)wz->plan->nenvs + 2;
	if (th > h / 2)
		th = h / 2;
	tui_table_draw(ps->table, s->win, (struct tui_rect){ 2, 1, th, w - 1 });
	int y = 2 + th;
	if (y >= h)
		return;
	tui_text_put(s->win, y, 1, wizard_running(wz, PLAN_STAGE_PREFLIGHT) ? "As each environment is checked:"
	             : "Blockers and warnings:", 0,
	             w - 1, tui_attr(TUI_ROLE_HEADER), true);
	if (ps->seen_gen != wz->pf_gen || ps->seen_width != w - 2)
		rebuild(ps, w - 2);
	if (y + 1 < h)
		tui_textview_draw(ps->tv, s->win, (struct tui_rect){ y + 1, 1, h - y - 1, w - 2 });
}

static enum key_result
pf_key(struct screen *s, enum command cmd, int raw)
{
	struct pf_screen *ps = s->priv;
	if (tui_table_searching(ps->table))
		return tui_table_key(ps->table, cmd, raw);
	switch (cmd) {
	case CMD_RUN_STAGE:
	case CMD_REFRESH:
		if (ps->wz->worker == NULL)
			wizard_preflight_start(ps->wz);
		if (cmd == CMD_REFRESH)
			tui_app_repaint(s->app);
		return KEY_RESULT_HANDLED;
	case CMD_LEFT:
	case CMD_RIGHT:
	case CMD_SEARCH:
	case CMD_SEARCH_NEXT:
	case CMD_SEARCH_PREV:
		return tui_table_key(ps->table, cmd, raw);
	default:
		return tui_textview_command(ps->tv, cmd) ? KEY_RESULT_HANDLED : KEY_RESULT_PASS;
	}
}

static void
pf_leave(struct screen *s)
{
	struct pf_screen *ps = s->priv;
	tui_table_free(ps->table);
	tui_textview_free(ps->tv);
}

const struct screen_ops wiz_preflight_screen = {
	.name = "preflight",
	.priv_size = sizeof(struct pf_screen),
	.enter = pf_enter,
	.draw = pf_draw,
	.key = pf_key,
	.leave = pf_leave,
};
