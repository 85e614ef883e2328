/* unavailable.c: the screen of a stage this build cannot run yet: its name and what it will do. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "screens/wizard.h"
#include "tui/text.h"
#include "tui/theme.h"

struct un_screen {
	const struct wiz_entry *entry;
};

/* One line from the plan: what the stage will do. Caller frees. */
static char *
stage_purpose(const struct plan *p, enum plan_stage s)
{
	char d1[32], d2[32];
	switch (s) {
	case PLAN_STAGE_BACKUP:
		return xasprintf("pg_dump %s format of %s to %s%s", plan_backup_format_name(p->backup.format),
		                 p->target, p->backup.dir ? p->backup.dir : ".",
		                 p->backup.jobs > 1 ? " (parallel jobs)" : "");
	case PLAN_STAGE_STAGING:
		return xasprintf("rehearse the migrations and the sync on %s before %s",
		                 p->staging.environment ? p->staging.environment : "staging", p->target);
	case PLAN_STAGE_MAINT_ON:
		return xasprintf("maintenance on %s:%s%s terminate sessions: %s", p->target,
		                 p->maintenance.block_connections ? " block new connections," : "",
		                 p->maintenance.read_only ? " read only," : "",
		                 p->maintenance.terminate_sessions == PLAN_TERMINATE_ASK ? "ask" : "never");
	case PLAN_STAGE_MIGRATE:
		plan_format_duration(p->migrations.lock_timeout_ms, d1, sizeof d1);
		plan_format_duration(p->migrations.statement_timeout_ms, d2, sizeof d2);
		return xasprintf("apply the %s migrations in %s to %s (lock_timeout %s, statement_timeout %s)",
		                 plan_migrations_format_name(p->migrations.format),
		                 p->migrations.dir ? p->migrations.dir : "?", p->target, d1, d2);
	case PLAN_STAGE_SYNC:
		return xasprintf("sync %zu table%s from %s to %s (default mode %s, protected tables refused)",
		                 p->sync.ntables, p->sync.ntables == 1 ? "" : "s", p->source ? p->source : "?",
		                 p->target, plan_mode_name(p->sync.default_mode));
	case PLAN_STAGE_VERIFY:
		return xasprintf("verify %s: row counts, orphaned rows%s and %zu check%s", p->target,
		                 p->verify.orphans ? "" : " (off)", p->verify.nchecks,
		                 p->verify.nchecks == 1 ? "" : "s");
	case PLAN_STAGE_MAINT_OFF:
		return xasprintf("end maintenance on %s: allow connections again, leave read-only mode", p->target);
	default:
		return xasprintf("the %s stage", plan_stage_name(s));
	}
}

static int
un_enter(struct screen *s, void *arg)
{
	struct un_screen *u = s->priv;
	u->entry = arg;
	return 0;
}

static void
un_draw(struct screen *s)
{
	struct un_screen *u = s->priv;
	struct wizard *wz = tui_app_userdata(s->app);
	int h, w;
	getmaxyx(s->win, h, w);
	int y = 0;
	char *title = xasprintf("Stage: %s", u->entry->name);
	tui_text_put(s->win, y++, 1, title, 0, w - 1, tui_attr(TUI_ROLE_HEADER), true);
	free(title);
	y++;
	char *what = stage_purpose(wz->plan, u->entry->stage);
	char *line = xasprintf("What it will do: %s.", what);
	struct strlist l = {0};
	tui_text_wrap(line, w - 2, &l);
	for (size_t i = 0; i < l.len && y < h; i++)
		tui_text_put(s->win, y++, 1, l.items[i], 0, w - 1, tui_attr(TUI_ROLE_NORMAL), true);
	strlist_free(&l);
	free(line);
	free(what);
	y++;
	if (y < h)
		tui_text_put(s->win, y++, 1, "Not available in this build.", 0, w - 1, tui_attr(TUI_ROLE_WARN), true);
	line = xasprintf("Nothing runs from this screen. F6 and F7 (or [ and ]) move between stages.");
	tui_text_wrap(line, w - 2, &l);
	for (size_t i = 0; i < l.len && y < h; i++)
		tui_text_put(s->win, y++, 1, l.items[i], 0, w - 1, tui_attr(TUI_ROLE_MUTED), true);
	strlist_free(&l);
	free(line);
}

const struct screen_ops wiz_unavailable_screen = {
	.name = "unavailable",
	.priv_size = sizeof(struct un_screen),
	.enter = un_enter,
	.draw = un_draw,
};
