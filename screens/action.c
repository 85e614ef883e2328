/* action.c: the action stages (staging, maintenance on and off) and guided rollback: one screen, a table of kinds. */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/backup.h"
#include "core/confirm.h"
#include "core/maintenance.h"
#include "core/rollback.h"
#include "core/staging.h"
#include "core/util.h"
#include "screens/wizard.h"
#include "tui/confirm.h"
#include "tui/dialog.h"
#include "tui/text.h"
#include "tui/theme.h"

/*
 * Every kind has the same shape: what it will do (and, for maintenance and rollback, a read-only
 * look on the worker: the freeze's status and the other sessions, or the rollback's choice), F2
 * asks the phrase core names and runs the core call on the worker, its own steps are listed as
 * they arrive, then the result. What differs is in the table `kinds` below.
 */

struct act_work;

/*
 * Drawing into the main region: y counts the rows of the whole text (drawn or not), the rows
 * skip.. skip + h - 1 of it are drawn, text wrapped at w - 2 columns.
 */
struct canvas {
	WINDOW *win;
	int     y, h, w;
	int     skip;
};

/* Whether the canvas row y is on the screen; its screen row in *row. */
static bool
canvas_row(const struct canvas *c, int *row)
{
	*row = c->y - c->skip;
	return *row >= 0 && *row < c->h;
}

struct act_kind {
	const char     *stage;     /* the journal stage of its events and confirm misses */
	enum plan_stage worker;    /* the worker's stage */
	/* worker: read-only; fills job->info (and job->choice); NULL: no look */
	bool          (*look)(struct act_work *job, struct rb_ctx *ctx);
	/* worker: the core call with what was typed; fills job->result */
	bool          (*run)(struct act_work *job, struct rb_ctx *ctx);
	/* UI: F2 once the look (when there is one) is in: open the confirmation or run */
	void          (*ask)(struct wizard *w);
	/* UI: the title, what it will do and the look */
	void          (*intro)(struct wizard *w, struct canvas *c);
	/* UI: the last run's result */
	void          (*result)(struct wizard *w, struct canvas *c);
	const char     *hint;      /* the keys, when nothing runs */
	bool            cancel;    /* Esc cancels a running run (rollback: it only closes the view) */
};

static const struct act_kind kinds[WIZ_ACT_COUNT];
static const char *rollback_loss(const struct rollback_choice *ch);

/* --- drawing helpers --- */

static void
put(struct canvas *c, enum tui_role role, const char *fmt, ...) RB_PRINTF(3, 4);

static void
put(struct canvas *c, enum tui_role role, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *t = xvasprintf(fmt, ap);
	va_end(ap);
	struct strlist l = {0};
	tui_text_wrap(t, c->w - 2, &l);
	for (size_t i = 0; i < l.len; i++, c->y++) {
		int row;
		if (canvas_row(c, &row))
			tui_text_put(c->win, row, 1, l.items[i], 0, c->w - 1, tui_attr(role), true);
	}
	strlist_free(&l);
	free(t);
}

/* One line, cut at the edge (lists that would take too many rows wrapped). */
static void
put1(struct canvas *c, enum tui_role role, const char *fmt, ...) RB_PRINTF(3, 4);

static void
put1(struct canvas *c, enum tui_role role, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *t = xvasprintf(fmt, ap);
	va_end(ap);
	int row;
	if (canvas_row(c, &row))
		tui_text_put(c->win, row, 1, t, 0, c->w - 1, tui_attr(role), true);
	c->y++;
	free(t);
}

static void
gap(struct canvas *c)
{
	c->y++;
}

static const char *
jstr(const json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

static long long
jint(const json_t *o, const char *k)
{
	return (long long)json_integer_value(json_object_get(o, k));
}

static const char *
or_(const char *s, const char *dflt)
{
	return s ? s : dflt;
}

/* "shop_prod" from the preflight result of env, or NULL. */
static const char *
env_db(const struct wizard *w, const char *env)
{
	return jstr(wizard_env_result(w, env), "dbname");
}

/* --- the model: followed from the events --- */

void
wizard_action_track(struct wizard *w, enum wiz_act a, const struct wiz_item *it)
{
	struct wiz_action *x = &w->act[a];
	x->gen++;
	const char *kind = jstr(it->data, "kind");
	bool own = kind && (strcmp(kind, "staging") == 0 || strcmp(kind, "freeze") == 0 || strcmp(kind, "thaw") == 0 ||
	                    strcmp(kind, "rollback") == 0);
	switch (it->type) {
	case EV_STAGE_STARTED:
	case EV_ROLLBACK_STARTED:
		json_decref(x->steps);
		x->steps = json_array();
		free(x->now);
		x->now = NULL;
		break;
	case EV_STEP:
	case EV_PROGRESS:
		if (it->type == EV_STEP && own && it->message) {
			/* A layer's or step's later state replaces its earlier line ("applying" -> "applied"). */
			const char *state = jstr(it->data, "state");
			char *key = xasprintf("%s:%s", kind, or_(jstr(it->data, "layer"), or_(jstr(it->data, "step"), "")));
			json_t *line = json_pack("{s:s, s:s, s:b}", "text", it->message, "key", key, "failed",
			                         state && strcmp(state, "failed") == 0);
			free(key);
			if (x->steps == NULL)
				x->steps = json_array();
			size_t n = json_array_size(x->steps);
			const char *lk = n ? jstr(json_array_get(x->steps, n - 1), "key") : NULL;
			if (lk && strcmp(lk, jstr(line, "key")) == 0)
				json_array_set_new(x->steps, n - 1, line);
			else
				json_array_append_new(x->steps, line);
		} else if (it->message && *it->message) {
			free(x->now);
			x->now = xstrdup(it->message);
		}
		break;
	case EV_STAGE_RESULT:
	case EV_ROLLBACK_DONE:
		if (it->data) {
			json_decref(x->result);
			x->result = json_incref(it->data);
		}
		break;
	default:
		break;
	}
}

void
wizard_action_release(struct wizard *w)
{
	for (int a = 0; a < WIZ_ACT_COUNT; a++) {
		struct wiz_action *x = &w->act[a];
		json_decref(x->look);
		free(x->look_error);
		if (x->choice) {
			rollback_choice_free(x->choice);
			free(x->choice);
		}
		json_decref(x->steps);
		free(x->now);
		json_decref(x->result);
		rb_error_clear(&x->err);
		memset(x, 0, sizeof *x);
	}
}

bool
wizard_staging_estimate(const struct wizard *w, long long *migrate_ms, long long *lock_wait_ms)
{
	const json_t *r = w->act[WIZ_ACT_STAGING].result;
	const json_t *est = json_object_get(r, "estimate");
	if (!json_is_true(json_object_get(r, "ok")) || !json_is_true(json_object_get(est, "complete")))
		return false;
	*migrate_ms = jint(est, "migrate_ms");
	*lock_wait_ms = jint(est, "lock_wait_ms");
	return true;
}

/* --- the worker --- */

struct act_work {
	struct wizard          *wz;
	enum wiz_act            a;
	bool                    look;     /* a look, not a run */
	char                   *typed;    /* the phrase typed */
	char                   *typed2;   /* maintenance: the terminate phrase typed, or NULL */
	char                   *backup;   /* staging: this run's archive, or NULL */
	char                   *who;
	struct rollback_choice *choice;   /* rollback: a look's new one; a run's, borrowed from w->act */
	json_t                 *info;     /* a look's finding */
	json_t                 *result;   /* a run's result */
	bool                    ok;
	struct rb_error         err;
};

static void
work_free(struct act_work *job)
{
	free(job->typed);
	free(job->typed2);
	free(job->backup);
	free(job->who);
	json_decref(job->info);
	json_decref(job->result);
	rb_error_clear(&job->err);
	free(job);
}

static void *
act_main(void *arg, atomic_int *cancel)
{
	struct act_work *job = arg;
	struct rb_ctx ctx = { .bus = job->wz->bus, .cancel = cancel };
	const struct act_kind *k = &kinds[job->a];
	job->ok = job->look ? k->look(job, &ctx) : k->run(job, &ctx);
	return job;
}

static void act_start(struct wizard *w, enum wiz_act a, bool look, char *typed, char *typed2);

static void
act_collect(struct wizard *w, void *result, bool stopped)
{
	struct act_work *job = result;
	if (job == NULL)
		return;
	struct wiz_action *x = &w->act[job->a];
	const struct act_kind *k = &kinds[job->a];
	enum wiz_act a = job->a;
	bool look = job->look;
	x->gen++;
	if (look) {
		x->looking = false;
		free(x->look_error);
		x->look_error = NULL;
		if (job->ok) {
			json_decref(x->look);
			x->look = job->info;
			job->info = NULL;
			if (job->choice) {
				if (x->choice) {
					rollback_choice_free(x->choice);
					free(x->choice);
				}
				x->choice = job->choice;
				job->choice = NULL;
			}
		} else {
			x->look_error = xstrdup(or_(job->err.message, "the look failed"));
		}
		if (job->choice) {
			rollback_choice_free(job->choice);
			free(job->choice);
		}
	} else {
		x->ran = true;
		x->ok = job->ok;
		if (job->result) {
			json_decref(x->result);
			x->result = job->result;
			job->result = NULL;
		}
		rb_error_clear(&x->err);
		x->err = job->err;
		memset(&job->err, 0, sizeof job->err);
		if (k->worker != WIZ_ROLLBACK_STAGE)
			wizard_stage_end_guard(w, k->worker, STAGE_FAILED);
	}
	bool ask = look && job->ok && x->ask;
	x->ask = false;
	work_free(job);
	if (stopped)
		return;
	if (ask)
		k->ask(w);
	else if (!look && k->look && a != WIZ_ACT_ROLLBACK)
		act_start(w, a, true, NULL, NULL);   /* the status after the freeze or the thaw */
}

/* Starts a look or a run of kind a on the worker; takes typed and typed2. */
/* This run's verified backup, or NULL. */
static const char *
staging_own_backup(const struct wizard *w)
{
	if (w->stages[PLAN_STAGE_BACKUP].status == STAGE_DONE && json_is_true(json_object_get(w->bk.result, "verified")))
		return jstr(w->bk.result, "path");
	return NULL;
}

static void
act_start(struct wizard *w, enum wiz_act a, bool look, char *typed, char *typed2)
{
	const struct act_kind *k = &kinds[a];
	struct act_work *job = xcalloc(1, sizeof *job);
	job->wz = w;
	job->a = a;
	job->look = look;
	job->typed = typed;
	job->typed2 = typed2;
	job->who = xstrdup(util_user_name());
	if (!look && a == WIZ_ACT_ROLLBACK)
		job->choice = w->act[a].choice;   /* borrowed: no look replaces it while the worker runs */
	if (a == WIZ_ACT_STAGING && staging_own_backup(w))
		job->backup = xstrdup(staging_own_backup(w));
	else if (!look && a == WIZ_ACT_STAGING && jstr(w->act[a].look, "backup"))
		job->backup = xstrdup(jstr(w->act[a].look, "backup"));   /* the one the screen named */
	if (!wizard_worker_start(w, k->worker, act_main, job, act_collect)) {
		job->choice = NULL;
		work_free(job);
		return;
	}
	struct wiz_action *x = &w->act[a];
	x->gen++;
	if (look) {
		x->looking = true;
	} else {
		x->ok = false;
		rb_error_clear(&x->err);
		json_decref(x->steps);
		x->steps = json_array();
		free(x->now);
		x->now = NULL;
	}
}

/* F2: the look first when the kind has one and none is in (or it failed), then the question. */
static void
act_f2(struct wizard *w, enum wiz_act a)
{
	const struct act_kind *k = &kinds[a];
	struct wiz_action *x = &w->act[a];
	if (w->worker) {
		if (x->looking)
			x->ask = true;   /* the question opens when the look is in */
		else
			tui_log_add(w->log, TUI_LOG_WARN, "%s: cannot start while %s runs", k->stage,
			            wizard_worker_name(w->worker_stage));
		return;
	}
	/* Maintenance looks again each time: the sessions listed must be the ones now. */
	if (k->look && (x->look == NULL || a == WIZ_ACT_MAINT_ON)) {
		x->ask = true;
		act_start(w, a, true, NULL, NULL);
		return;
	}
	k->ask(w);
}

/* --- the typed confirmations --- */

struct act_ask {
	struct wizard *w;
	enum wiz_act   a;
	char          *phrase;
	char          *first;   /* maintenance: the freeze phrase typed, while the terminate one is asked */
};

static void
ask_free(struct act_ask *q)
{
	free(q->phrase);
	free(q->first);
	free(q);
}

static void
ask_miss(void *ud, const char *typed, int misses)
{
	(void)misses;
	struct act_ask *q = ud;
	wizard_confirm_miss(q->w, kinds[q->a].stage, q->phrase, typed);
}

static void maint_terminate_ask(struct act_ask *q);

static void
ask_done(void *ud, enum tui_confirm_result r, const char *typed)
{
	struct act_ask *q = ud;
	struct wizard *w = q->w;
	const char *stage = kinds[q->a].stage;
	if (r != TUI_CONFIRM_OK) {
		events_log(w->bus, r == TUI_CONFIRM_REFUSED ? LOG_LEVEL_WARN : LOG_LEVEL_INFO, stage, "%s at the "
		           "confirmation; nothing ran", r == TUI_CONFIRM_REFUSED ? "refused after 3 wrong phrases" : "cancelled");
		ask_free(q);
		return;
	}
	json_t *sessions = json_object_get(w->act[q->a].look, "sessions");
	if (q->a == WIZ_ACT_MAINT_ON && q->first == NULL && json_array_size(sessions) > 0 &&
	    w->plan->maintenance.terminate_sessions == PLAN_TERMINATE_ASK) {
		q->first = xstrdup(typed);
		maint_terminate_ask(q);
		return;
	}
	/* The prompt compared; core compares what was typed again (and journals it). */
	if (q->first)
		act_start(w, q->a, false, xstrdup(q->first), xstrdup(typed));
	else
		act_start(w, q->a, false, xstrdup(typed), NULL);
	ask_free(q);
}

/* Opens the prompt for phrase (taken); env and where name the environment and its database. */
static void
ask_open(struct wizard *w, enum wiz_act a, char *phrase, struct act_ask *q, const char *title, const char *action,
         const char *env, const char *where, const struct strlist *details)
{
	if (q == NULL) {
		q = xcalloc(1, sizeof *q);
		q->w = w;
		q->a = a;
	}
	free(q->phrase);
	q->phrase = phrase;
	const char **d = xcalloc(details->len + 1, sizeof *d);
	for (size_t i = 0; i < details->len; i++)
		d[i] = details->items[i];
	json_t *t = wizard_env_result(w, env);
	const char *host = jstr(t, "where");
	struct tui_confirm_opts o = {
		.title = title,
		.action = action,
		.environment = env,
		.prod = strcmp(env, w->plan->target) == 0,
		.target = host ? host : where,
		.details = d,
		.phrase = q->phrase,
		.miss = ask_miss,
		.done = ask_done,
		.ud = q,
	};
	if (tui_confirm(w->app, &o) == NULL)
		ask_free(q);
	free(d);
}

static const char *
base_name(const char *path)
{
	return path && strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
}

/* Which backup the rehearsal restores, with its age; whether it is this run's (else a warning). */
static char *
staging_backup_text(const struct wizard *w)
{
	const json_t *look = w->act[WIZ_ACT_STAGING].look;
	const char *own = staging_own_backup(w), *found = jstr(look, "backup");
	char age[64];
	if (own) {
		bool same = found && strcmp(found, own) == 0;
		return xasprintf("Backup: %s (this run's%s%s)", base_name(own), same ? ", finished " : "",
		                 same ? wizard_age(jstr(look, "finished"), age, sizeof age) : "");
	}
	if (found)
		return xasprintf("Backup: %s, finished %s: NOT this run's (this run has no verified backup)",
		                 base_name(found), wizard_age(jstr(look, "finished"), age, sizeof age));
	if (jstr(look, "error"))
		return xasprintf("Backup: none usable (this run has none): %s", jstr(look, "error"));
	return xasprintf("Backup: the newest verified backup of %s (none in this run)", w->plan->target);
}

static void
staging_ask(struct wizard *w)
{
	const char *env = w->plan->staging.environment;
	const char *db = env_db(w, env);
	if (db == NULL) {
		tui_message(w->app, "Staging rehearsal", "Run preflight first: the phrase names the staging database, "
		            "which preflight reads from the server.", TUI_ROLE_WARN, NULL, NULL);
		return;
	}
	struct strlist d = {0};
	strlist_push_owned(&d, staging_backup_text(w));
	strlist_push_owned(&d, xasprintf("Everything in %s is replaced; then the migrations are timed there, the "
	                                 "sync diffed and verify run.", db));
	char *action = xasprintf("replace the staging database %s with a copy of the backup", db);
	ask_open(w, WIZ_ACT_STAGING, confirm_phrase("replace", db), NULL, "Staging rehearsal", action, env, db, &d);
	free(action);
	strlist_free(&d);
}

/* "pid 123 alice psql 10.0.0.5 idle" lines for the sessions, at most max and a "... more" line. */
static void
session_lines(json_t *sessions, size_t max, struct strlist *out)
{
	size_t i;
	json_t *s;
	json_array_foreach(sessions, i, s) {
		if (i == max) {
			strlist_push_owned(out, xasprintf("... and %zu more", json_array_size(sessions) - max));
			break;
		}
		strlist_push_owned(out, xasprintf("pid %lld %s \"%s\" %s %s", jint(s, "pid"), or_(jstr(s, "user"), "?"),
		                                  or_(jstr(s, "application"), ""), or_(jstr(s, "client"), "local"),
		                                  or_(jstr(s, "state"), "?")));
	}
}

/* The plan's layers in the order they are applied, as the screen names them. */
static char *
maint_layers(const struct plan *p)
{
	const struct plan_maintenance *m = &p->maintenance;
	struct strbuf sb = {0};
	strbuf_addf(&sb, "%s%s%s%s%s", m->on_sql ? "hook_sql, " : "", m->on_command ? "hook_command, " : "",
	            m->pgbouncer_dsn_env ? "pgbouncer, " : "", m->block_connections ? "block, " : "",
	            m->read_only ? "read_only, " : "");
	strbuf_addf(&sb, "terminate (%s), marker", m->terminate_sessions == PLAN_TERMINATE_ASK ? "ask" : "never");
	return strbuf_detach(&sb);
}

static void
maint_ask(struct wizard *w)
{
	const struct wiz_action *x = &w->act[WIZ_ACT_MAINT_ON];
	json_t *status = json_object_get(x->look, "status");
	const char *db = jstr(status, "database");
	if (db == NULL)
		return;
	const char *by = jstr(status, "run");
	if (json_is_true(json_object_get(status, "frozen")) && by && strcmp(by, w->run_id) == 0) {
		char *t = xasprintf("%s is already frozen by this run (since %s). The maintenance_off stage thaws it.", db,
		                    or_(jstr(status, "since"), "?"));
		tui_message(w->app, "Maintenance on", t, TUI_ROLE_NORMAL, NULL, NULL);
		free(t);
		return;
	}
	json_t *sessions = json_object_get(x->look, "sessions");
	size_t n = json_array_size(sessions);
	struct strlist d = {0};
	if (n == 0)
		strlist_push(&d, "No other sessions are connected.");
	else if (w->plan->maintenance.terminate_sessions == PLAN_TERMINATE_ASK)
		strlist_push_owned(&d, xasprintf("%zu other session%s connected: listed next, terminating them needs its "
		                                 "own phrase.", n, n == 1 ? " is" : "s are"));
	else
		strlist_push_owned(&d, xasprintf("%zu other session%s connected (left alone: terminate_sessions is never).", n,
		                                 n == 1 ? " is" : "s are"));
	char *layers = maint_layers(w->plan);
	strlist_push_owned(&d, xasprintf("Layers: %s.", layers));
	free(layers);
	char *action = xasprintf("freeze writes to %s (undone by maintenance_off)", db);
	ask_open(w, WIZ_ACT_MAINT_ON, confirm_phrase(MAINT_VERB, db), NULL, "Maintenance on", action, w->plan->target, db, &d);
	free(action);
	strlist_free(&d);
}

static void
maint_terminate_ask(struct act_ask *q)
{
	struct wizard *w = q->w;
	const struct wiz_action *x = &w->act[WIZ_ACT_MAINT_ON];
	json_t *sessions = json_object_get(x->look, "sessions");
	const char *db = jstr(json_object_get(x->look, "status"), "database");
	struct strlist d = {0};
	session_lines(sessions, 6, &d);
	char *action = xasprintf("terminate the %zu other sessions on %s after the freeze", json_array_size(sessions), db);
	ask_open(w, WIZ_ACT_MAINT_ON, xstrdup(or_(jstr(x->look, "phrase"), "")), q, "Terminate sessions", action,
	         w->plan->target, db, &d);
	free(action);
	strlist_free(&d);
}

static void
maint_off_ask(struct wizard *w)
{
	act_start(w, WIZ_ACT_MAINT_OFF, false, NULL, NULL);   /* thawing needs no phrase */
}

static void
rollback_ask(struct wizard *w)
{
	const struct rollback_choice *c = w->act[WIZ_ACT_ROLLBACK].choice;
	if (c == NULL)
		return;
	if (c->path == ROLLBACK_NONE || c->phrase == NULL) {
		tui_message(w->app, "Rollback", or_(c->why, "Nothing can be rolled back."), TUI_ROLE_WARN, NULL, NULL);
		return;
	}
	struct strlist d = {0};
	/* First what must not be missed: the backup, its age and what is lost; the why after. */
	if (c->path == ROLLBACK_RESTORE) {
		char age[64];
		const char *base = c->backup && strrchr(c->backup, '/') ? strrchr(c->backup, '/') + 1 : or_(c->backup, "?");
		wizard_age(jstr(w->act[WIZ_ACT_ROLLBACK].look, "backup_finished"), age, sizeof age);
		strlist_push_owned(&d, xasprintf("Data loss: writes to %s after the backup (finished %s) are lost, kept "
		                                 "only in %s_failed_<time>.", c->database, age, c->database));
		strlist_push_owned(&d, xasprintf("From the backup %s, finished %s.", base, age));
		strlist_push_owned(&d, xasprintf("%s is renamed %s_failed_<time> and kept.", c->database, c->database));
	}
	strlist_push_owned(&d, xasprintf("Path: %s. %s", rollback_path_name(c->path), or_(c->why, "")));
	char *action = xasprintf("roll %s back (%s)", c->database, rollback_path_name(c->path));
	ask_open(w, WIZ_ACT_ROLLBACK, xstrdup(c->phrase), NULL, "Rollback", action, w->plan->target, c->database, &d);
	free(action);
	strlist_free(&d);
}

/* --- the core calls (worker thread) --- */

static bool
staging_do(struct act_work *job, struct rb_ctx *ctx)
{
	struct staging_opts o = { .backup = job->backup, .confirm = job->typed, .who = job->who };
	return staging_run(job->wz->plan, &o, ctx, &job->result, &job->err);
}

/* The backup the rehearsal would restore: this run's, else the newest verified one, with its age. */
static bool
staging_look(struct act_work *job, struct rb_ctx *ctx)
{
	(void)ctx;
	job->info = json_object();
	if (job->backup) {
		char *mp = xasprintf("%s.json", job->backup);
		json_t *m = json_load_file(mp, 0, NULL);
		json_object_set_new(job->info, "backup", json_string(job->backup));
		if (json_is_string(json_object_get(m, "finished")))
			json_object_set(job->info, "finished", json_object_get(m, "finished"));
		json_decref(m);
		free(mp);
		return true;
	}
	struct backup_result br;
	memset(&br, 0, sizeof br);
	struct rb_error e = {0};
	if (backup_find_recent(job->wz->plan, NULL, 0, &br, &e)) {
		json_object_set_new(job->info, "backup", json_string(br.path));
		if (json_is_string(json_object_get(br.manifest, "finished")))
			json_object_set(job->info, "finished", json_object_get(br.manifest, "finished"));
	} else {
		json_object_set_new(job->info, "error", json_string(or_(e.message, "none found")));
	}
	backup_result_free(&br);
	rb_error_clear(&e);
	return true;   /* none is not a failure of the look: the rehearsal says so too */
}

static bool
maint_look(struct act_work *job, struct rb_ctx *ctx)
{
	const struct plan *p = job->wz->plan;
	json_t *status = NULL, *sessions = NULL;
	char *phrase = NULL;
	if (!maint_status(p, p->target, ctx, &status, &job->err))
		return false;
	if (job->a == WIZ_ACT_MAINT_ON && !maint_sessions(p, p->target, ctx, &sessions, &phrase, &job->err)) {
		json_decref(status);
		return false;
	}
	job->info = json_pack("{s:o, s:o, s:s?}", "status", status, "sessions", sessions ? sessions : json_array(),
	                      "phrase", phrase);
	free(phrase);
	return true;
}

static bool
maint_on_do(struct act_work *job, struct rb_ctx *ctx)
{
	struct wizard *w = job->wz;
	struct maint_opts o = { .confirm = job->typed, .confirm_terminate = job->typed2, .who = job->who,
	                        .run_id = w->run_id };
	return maint_on(w->plan, &o, w->journal, ctx, &job->result, &job->err);
}

static bool
maint_off_do(struct act_work *job, struct rb_ctx *ctx)
{
	struct wizard *w = job->wz;
	return maint_off(w->plan, NULL, journal_dir(w->journal), job->who, w->journal, ctx, &job->result, &job->err);
}

static bool
rollback_look(struct act_work *job, struct rb_ctx *ctx)
{
	struct wizard *w = job->wz;
	struct run_state st;
	memset(&st, 0, sizeof st);
	if (!journal_replay(journal_dir(w->journal), &st, &job->err)) {
		run_state_free(&st);
		return false;
	}
	struct rollback_opts o = { .who = job->who };
	job->choice = xcalloc(1, sizeof *job->choice);
	bool ok = rollback_choose(w->plan, &st, &o, ctx, job->choice, &job->err);
	run_state_free(&st);
	if (!ok) {
		rollback_choice_free(job->choice);   /* whatever it filled before failing */
		free(job->choice);
		job->choice = NULL;
		return false;
	}
	job->info = rollback_choice_json(job->choice);
	if (job->choice->backup) {   /* its age, from the manifest next to it */
		char *mp = xasprintf("%s.json", job->choice->backup);
		json_t *m = json_load_file(mp, 0, NULL);
		if (json_is_string(json_object_get(m, "finished")))
			json_object_set(job->info, "backup_finished", json_object_get(m, "finished"));
		json_decref(m);
		free(mp);
	}
	return true;
}

static bool
rollback_do(struct act_work *job, struct rb_ctx *ctx)
{
	struct rollback_opts o = { .confirm = job->typed, .who = job->who };
	return rollback_run(job->wz->plan, job->choice, &o, ctx, &job->result, &job->err);
}

/* --- what each kind shows --- */

static void
staging_intro(struct wizard *w, struct canvas *c)
{
	const char *env = w->plan->staging.environment;
	const char *db = env_db(w, env);
	put1(c, TUI_ROLE_HEADER, "Stage: staging (rehearsal)");
	char *bt = staging_backup_text(w);
	put(c, staging_own_backup(w) ? TUI_ROLE_NORMAL : TUI_ROLE_WARN, "%s", bt);
	free(bt);
	if (w->act[WIZ_ACT_STAGING].result)
		put(c, TUI_ROLE_NORMAL, "Into: %s (%s), replaced", or_(db, "? (run preflight)"), or_(env, "?"));
	else
		put(c, TUI_ROLE_NORMAL, "Into: %s (%s), replaced; then the migrations timed there, the sync diffed, "
		    "verify.", or_(db, "? (run preflight)"), or_(env, "?"));
}

static void
staging_result(struct wizard *w, struct canvas *c)
{
	json_t *r = w->act[WIZ_ACT_STAGING].result;
	bool ok = json_is_true(json_object_get(r, "ok"));
	const char *db = jstr(r, "database");
	if (ok)
		put(c, TUI_ROLE_OK, "Rehearsal done on %s.", or_(db, "staging"));
	else
		put(c, TUI_ROLE_DANGER, "Rehearsal failed%s%s", w->act[WIZ_ACT_STAGING].ran ? "." : ": ",
		    w->act[WIZ_ACT_STAGING].ran ? "" : or_(jstr(r, "error"), "?"));   /* this session's: "Failed:" below */
	json_t *est = json_object_get(r, "estimate");
	if (json_is_object(est)) {
		char d[24];
		put(c, json_is_true(json_object_get(est, "complete")) ? TUI_ROLE_NORMAL : TUI_ROLE_WARN,
		    "Estimate: migrate on %s about %s (%lld ms), %lld ms waiting for locks%s", w->plan->target,
		    wizard_duration(jint(est, "migrate_ms"), d, sizeof d), jint(est, "migrate_ms"), jint(est, "lock_wait_ms"),
		    json_is_true(json_object_get(est, "complete")) ? "" : " (incomplete)");
	}
	json_t *sync = json_object_get(r, "sync");
	if (json_is_object(sync)) {
		long long ins = 0, upd = 0, del = 0, conf = 0;
		size_t i;
		json_t *t;
		json_array_foreach(json_object_get(sync, "tables"), i, t) {
			json_t *n = json_object_get(t, "counts");
			ins += jint(n, "to_insert");
			upd += jint(n, "to_update");
			del += jint(n, "to_delete");
			conf += jint(n, "conflicts");
		}
		put(c, json_is_true(json_object_get(sync, "ok")) ? TUI_ROLE_NORMAL : TUI_ROLE_WARN,
		    "Sync diff: %zu tables, %lld to insert, %lld to update, %lld to delete, %lld conflicts",
		    json_array_size(json_object_get(sync, "tables")), ins, upd, del, conf);
	}
	json_t *ver = json_object_get(r, "verify");
	if (json_is_object(ver)) {
		json_t *sum = json_object_get(ver, "summary");
		put(c, jint(sum, "failed") ? TUI_ROLE_DANGER : TUI_ROLE_OK, "Verify on staging: %lld checks, %lld passed, "
		    "%lld failed", jint(sum, "checks"), jint(sum, "passed"), jint(sum, "failed"));
	}
}

/* The freeze's status from the look: frozen since when, by which run. */
static void
maint_status_line(struct wizard *w, enum wiz_act a, struct canvas *c)
{
	const struct wiz_action *x = &w->act[a];
	json_t *st = json_object_get(x->look, "status");
	if (x->look_error) {
		put(c, TUI_ROLE_DANGER, "Status unknown: %s", x->look_error);
	} else if (st == NULL) {
		put(c, TUI_ROLE_MUTED, x->looking ? "Reading the status..." : "Status not read yet (F5 reads it).");
	} else if (json_is_true(json_object_get(st, "frozen"))) {
		const char *run = jstr(st, "run");
		put(c, TUI_ROLE_WARN, "Status: frozen since %s by run %s%s%s", or_(jstr(st, "since"), "?"), or_(run, "?"),
		    run && strcmp(run, w->run_id) == 0 ? " (this run)" : "", json_is_true(json_object_get(st, "journal")) ?
		    "" : " (marker only)");
	} else {
		put(c, TUI_ROLE_NORMAL, "Status: not frozen; %lld other session%s", jint(st, "sessions"),
		    jint(st, "sessions") == 1 ? "" : "s");
	}
}

static void
maint_on_intro(struct wizard *w, struct canvas *c)
{
	json_t *st = json_object_get(w->act[WIZ_ACT_MAINT_ON].look, "status");
	const char *db = jstr(st, "database") ? jstr(st, "database") : env_db(w, w->plan->target);
	put1(c, TUI_ROLE_HEADER, "Stage: maintenance (write freeze)");
	if (w->act[WIZ_ACT_MAINT_ON].result == NULL) {   /* afterwards the result lists the layers */
		char *layers = maint_layers(w->plan);
		put(c, TUI_ROLE_NORMAL, "Freeze %s (%s): %s", or_(db, "?"), w->plan->target, layers);
		free(layers);
	}
	maint_status_line(w, WIZ_ACT_MAINT_ON, c);
}

/* The layers of a freeze or thaw result, one line each; those skipped or with nothing to do on one. */
static void
layer_lines(json_t *r, struct canvas *c)
{
	size_t i;
	json_t *l;
	struct strbuf idle = {0};
	json_array_foreach(json_object_get(r, "layers"), i, l) {
		const char *state = or_(jstr(l, "state"), "?");
		if (strcmp(state, "skipped") == 0 || strcmp(state, "nothing") == 0) {
			strbuf_addf(&idle, "%s%s", idle.len ? ", " : "", or_(jstr(l, "layer"), "?"));
			continue;
		}
		bool bad = strcmp(state, "failed") == 0;
		put1(c, bad ? TUI_ROLE_DANGER : TUI_ROLE_NORMAL, "  %-10s %-7s %s", or_(jstr(l, "layer"), "?"), state,
		     or_(jstr(l, "detail"), ""));
	}
	if (idle.len)
		put(c, TUI_ROLE_MUTED, "  nothing to do: %s", idle.buf);
	strbuf_release(&idle);
}

/* "t1 +2 ~0 -1, t2 ..." of a list of {table, inserted, updated, deleted}. Caller frees. */
static char *
writes_text(json_t *tables)
{
	struct strbuf sb = {0};
	size_t i;
	json_t *t;
	json_array_foreach(tables, i, t)
		strbuf_addf(&sb, "%s%s (%lld inserted, %lld updated, %lld deleted)", i ? ", " : "", or_(jstr(t, "table"), "?"),
		            jint(t, "inserted"), jint(t, "updated"), jint(t, "deleted"));
	return strbuf_detach(&sb);
}

static void
maint_on_result(struct wizard *w, struct canvas *c)
{
	json_t *r = w->act[WIZ_ACT_MAINT_ON].result;
	bool ok = json_is_true(json_object_get(r, "ok"));
	put(c, ok ? TUI_ROLE_OK : TUI_ROLE_DANGER, "%s %s.", ok ? "Frozen:" : "Freeze not applied:", or_(jstr(r, "database"), "?"));
	layer_lines(r, c);
	size_t i;
	json_t *v;
	json_array_foreach(json_object_get(r, "not_blocked"), i, v)
		put(c, TUI_ROLE_WARN, "Not blocked: %s", or_(json_string_value(v), "?"));
	if (ok) {
		json_t *sl = json_object_get(r, "slipped");
		char *t = writes_text(sl);
		put(c, json_array_size(sl) ? TUI_ROLE_WARN : TUI_ROLE_OK, "Slipped writes: %s", json_array_size(sl) ? t : "none");
		free(t);
	}
}

static void
maint_off_intro(struct wizard *w, struct canvas *c)
{
	put1(c, TUI_ROLE_HEADER, "Stage: maintenance_off (thaw)");
	if (w->act[WIZ_ACT_MAINT_OFF].result == NULL)
		put(c, TUI_ROLE_NORMAL, "Undo this run's freeze of %s, layer by layer in reverse order.", w->plan->target);
	maint_status_line(w, WIZ_ACT_MAINT_OFF, c);
}

static void
maint_off_result(struct wizard *w, struct canvas *c)
{
	json_t *r = w->act[WIZ_ACT_MAINT_OFF].result;
	bool ok = json_is_true(json_object_get(r, "ok"));
	put(c, ok ? TUI_ROLE_OK : TUI_ROLE_DANGER, "%s %s.", ok ? "Thawed:" : "Thaw not complete:", or_(jstr(r, "database"), "?"));
	layer_lines(r, c);
	json_t *ws = json_object_get(r, "writes_since_freeze");
	if (json_is_object(ws) && jstr(ws, "error")) {
		put(c, TUI_ROLE_WARN, "Writes since the freeze: unknown (%s)", jstr(ws, "error"));
	} else if (json_is_object(ws)) {
		char *t = writes_text(json_object_get(ws, "tables"));
		put(c, TUI_ROLE_NORMAL, "Writes since the freeze (pgrunbook's own included): %lld transactions%s%s",
		    jint(ws, "xact_commit_delta"), *t ? "; " : "", t);
		free(t);
	}
}

/* The sentence of a restore's why that says what is lost, or NULL. */
static const char *
rollback_loss(const struct rollback_choice *ch)
{
	if (ch->path != ROLLBACK_RESTORE || ch->why == NULL)
		return NULL;
	const char *l = strstr(ch->why, "everything written to");
	return l;
}

static void
rollback_intro(struct wizard *w, struct canvas *c)
{
	const struct wiz_action *x = &w->act[WIZ_ACT_ROLLBACK];
	put1(c, TUI_ROLE_HEADER, "Rollback of this run");
	/* Afterwards, first of all: where things are now. */
	const char *state = jstr(x->result, "state");
	if (state) {
		put(c, json_is_true(json_object_get(x->result, "ok")) ? TUI_ROLE_OK : TUI_ROLE_DANGER, "State: %s", state);
		gap(c);
	}
	const struct rollback_choice *ch = x->choice;
	if (x->look_error)
		put(c, TUI_ROLE_DANGER, "Could not choose: %s", x->look_error);
	if (ch == NULL) {
		if (x->looking || x->look_error == NULL)
			put(c, TUI_ROLE_MUTED, "Looking at the run and %s...", w->plan->target);
		return;
	}
	/* First what matters most: the path, the backup and its age, and what is lost. */
	if (ch->path == ROLLBACK_NONE)
		put(c, TUI_ROLE_WARN, "Path: none (nothing is done)");
	else
		put(c, TUI_ROLE_NORMAL, "Path: %s of %s%s", rollback_path_name(ch->path), ch->database,
		    ch->path == ROLLBACK_RESTORE ? " (a restore and a name swap)" : " (the migrations' down.sql)");
	if (ch->path == ROLLBACK_RESTORE && ch->backup && state == NULL) {
		char age[64];
		const char *base = strrchr(ch->backup, '/') ? strrchr(ch->backup, '/') + 1 : ch->backup;
		put(c, TUI_ROLE_NORMAL, "Backup: %s, finished %s", base,
		    wizard_age(jstr(x->look, "backup_finished"), age, sizeof age));
	}
	const char *loss = rollback_loss(ch);
	if (loss && state == NULL)
		put(c, TUI_ROLE_DANGER, "Data loss: %c%s.", 'E', loss + 1);
	if (state || wizard_running(w, WIZ_ROLLBACK_STAGE))   /* the steps are listed below */
		return;
	if (ch->phrase)
		put(c, TUI_ROLE_WARN, "Phrase: %s", ch->phrase);
	if (ch->path == ROLLBACK_DOWN_SQL) {
		struct strbuf sb = {0};
		for (size_t i = json_array_size(ch->migrations); i-- > 0;)
			strbuf_addf(&sb, "%s%s", sb.len ? ", " : "", or_(jstr(json_array_get(ch->migrations, i), "name"), "?"));
		put(c, TUI_ROLE_NORMAL, "Steps: down.sql of %s (newest first), each in one transaction with its "
		    "_prisma_migrations row marked rolled back.", sb.buf ? sb.buf : "");
		strbuf_release(&sb);
	} else if (ch->path == ROLLBACK_RESTORE) {
		put(c, TUI_ROLE_NORMAL, "Steps: restore (into %s_rollback_<ts>), settings, block, terminate, rename_old "
		    "(to %s_failed_<ts>, kept), rename_new, reopen, verify.", ch->database, ch->database);
	}
	put(c, TUI_ROLE_NORMAL, "Why: %s", or_(ch->why, "?"));
}

static void
rollback_result(struct wizard *w, struct canvas *c)
{
	json_t *r = w->act[WIZ_ACT_ROLLBACK].result;
	size_t i;
	json_t *s;
	struct strbuf sb = {0};
	json_array_foreach(json_object_get(r, "steps"), i, s)
		strbuf_addf(&sb, "%s%s %s", i ? ", " : "", or_(jstr(s, "step"), "?"), or_(jstr(s, "state"), "?"));
	if (sb.len)
		put(c, TUI_ROLE_NORMAL, "Steps: %s", sb.buf);
	strbuf_release(&sb);
	json_array_foreach(json_object_get(r, "steps"), i, s)   /* a failure in full */
		if (strcmp(or_(jstr(s, "state"), ""), "failed") == 0)
			put(c, TUI_ROLE_DANGER, "%s: %s", or_(jstr(s, "step"), "?"), or_(jstr(s, "detail"), ""));
}

static const struct act_kind kinds[WIZ_ACT_COUNT] = {
	[WIZ_ACT_STAGING] = {
		.stage = STAGING_STAGE, .worker = PLAN_STAGE_STAGING, .look = staging_look, .run = staging_do, .ask = staging_ask,
		.intro = staging_intro, .result = staging_result, .cancel = true,
		.hint = "F2 (or r) asks the phrase, then rehearses.",
	},
	[WIZ_ACT_MAINT_ON] = {
		.stage = MAINT_STAGE_ON, .worker = PLAN_STAGE_MAINT_ON, .look = maint_look, .run = maint_on_do,
		.ask = maint_ask, .intro = maint_on_intro, .result = maint_on_result, .cancel = true,
		.hint = "F2 (or r) asks the phrases, then freezes.",
	},
	[WIZ_ACT_MAINT_OFF] = {
		.stage = MAINT_STAGE_OFF, .worker = PLAN_STAGE_MAINT_OFF, .look = maint_look, .run = maint_off_do,
		.ask = maint_off_ask, .intro = maint_off_intro, .result = maint_off_result, .cancel = true,
		.hint = "F2 (or r) thaws. F5 reads the status again.",
	},
	[WIZ_ACT_ROLLBACK] = {
		.stage = ROLLBACK_STAGE, .worker = WIZ_ROLLBACK_STAGE, .look = rollback_look, .run = rollback_do,
		.ask = rollback_ask, .intro = rollback_intro, .result = rollback_result, .cancel = false,
		.hint = "F2 (or r) asks the phrase, then rolls back. F5 chooses again, Esc goes back.",
	},
};

/* --- the screen --- */

struct act_screen {
	struct wizard *wz;
	enum wiz_act   a;
	bool           want_look;   /* the look waits for the worker to be free */
	int            top;         /* the first row of the text shown (Up/Down/PgUp/PgDn scroll) */
	int            max_top;     /* the largest top of the last drawing */
	int            page;        /* the text rows of the last drawing */
};

/* The read-only look, once the worker is free. */
static void
try_look(struct act_screen *as)
{
	if (as->want_look && as->wz->worker == NULL) {
		as->want_look = false;
		act_start(as->wz, as->a, true, NULL, NULL);
	}
}

static enum wiz_act
act_of(const struct wiz_entry *e)
{
	if (e == NULL)
		return WIZ_ACT_ROLLBACK;
	return e->stage == PLAN_STAGE_STAGING ? WIZ_ACT_STAGING : e->stage == PLAN_STAGE_MAINT_ON ? WIZ_ACT_MAINT_ON :
	       WIZ_ACT_MAINT_OFF;
}

static int
act_enter(struct screen *s, void *arg)
{
	struct act_screen *as = s->priv;
	as->wz = tui_app_userdata(s->app);
	as->a = act_of(arg);
	struct wiz_action *x = &as->wz->act[as->a];
	/* The read-only look at once, or when the worker is free (the rollback always chooses afresh). */
	as->want_look = kinds[as->a].look && (x->look == NULL || as->a == WIZ_ACT_ROLLBACK);
	try_look(as);
	return 0;
}

static void
act_event(struct screen *s, void *item)
{
	const struct wiz_item *it = item;
	if (it->kind == WIZ_ITEM_WORKER_DONE)
		try_look(s->priv);
}

/* The text above the keys: the kind's intro, its steps, its result. */
static void
act_text_body(struct wizard *w, const struct act_kind *k, const struct wiz_action *x, bool running, struct canvas *c)
{
	k->intro(w, c);
	gap(c);
	size_t i;
	json_t *l;
	bool steps = running || (x->ran && !x->ok) || x->result == NULL;
	if (steps)
		json_array_foreach(x->steps, i, l)
			put1(c, json_is_true(json_object_get(l, "failed")) ? TUI_ROLE_DANGER : TUI_ROLE_NORMAL, "%s",
			     or_(jstr(l, "text"), ""));
	if (running)
		return;
	if (x->result)
		k->result(w, c);
	if (x->ran && !x->ok && x->err.message) {
		put(c, TUI_ROLE_DANGER, "Failed: %s", x->err.message);
		if (x->err.hint)
			put(c, TUI_ROLE_MUTED, "%s", x->err.hint);
	}
	/* The steps of a successful run when the terminal has the rows for them. */
	if (!steps && json_array_size(x->steps) > 0 && c->h - c->y > (int)json_array_size(x->steps)) {
		gap(c);
		json_array_foreach(x->steps, i, l)
			put1(c, TUI_ROLE_MUTED, "%s", or_(jstr(l, "text"), ""));
	}
}


static void
act_draw(struct screen *s)
{
	struct act_screen *as = s->priv;
	struct wizard *w = as->wz;
	const struct act_kind *k = &kinds[as->a];
	const struct wiz_action *x = &w->act[as->a];
	int h, wd;
	getmaxyx(s->win, h, wd);
	bool running = wizard_running(w, k->worker) && !x->looking;
	/* The bottom rows: what runs now, or the keys; the rest above is the kind's. */
	struct strlist foot = {0};
	if (running) {
		if (x->now)
			strlist_push(&foot, x->now);
		strlist_push(&foot, k->cancel ? "Running...  (Esc cancels)" :
		             "Running...  (Esc closes this view; the rollback goes on, F8 shows it)");
	} else {
		strlist_push(&foot, k->hint);
	}
	struct strlist fl = {0};
	for (size_t i = 0; i < foot.len; i++)
		tui_text_wrap(foot.items[i], wd - 2, &fl);
	int fy = h - (int)fl.len > 4 ? h - (int)fl.len : 4;
	for (size_t i = 0; i < fl.len && fy + (int)i < h; i++)
		tui_text_put(s->win, fy + (int)i, 1, fl.items[i], 0, wd - 1,
		             tui_attr(running ? (i + 1 == fl.len ? TUI_ROLE_WARN : TUI_ROLE_MUTED) : TUI_ROLE_MUTED), true);
	strlist_free(&fl);
	strlist_free(&foot);

	struct canvas c = { .win = s->win, .h = fy - 1, .w = wd, .skip = as->top };
	act_text_body(w, k, x, running, &c);
	/* Scrolled: what is hidden, on the free row above the keys. */
	as->page = c.h;
	as->max_top = c.y > c.h ? c.y - c.h : 0;
	if (as->top > as->max_top)
		as->top = as->max_top;
	if (as->max_top > 0 && fy - 1 >= 0) {
		int below = c.y - as->top - c.h;
		char *m = xasprintf("-- %d above, %d below: Up/Down PgUp/PgDn --", as->top, below > 0 ? below : 0);
		tui_text_put(s->win, fy - 1, 1, m, 0, wd - 1, tui_attr(TUI_ROLE_WARN), true);
		free(m);
	}
}

static enum key_result
act_key(struct screen *s, enum command cmd, int raw)
{
	(void)raw;
	struct act_screen *as = s->priv;
	struct wizard *w = as->wz;
	const struct act_kind *k = &kinds[as->a];
	struct wiz_action *x = &w->act[as->a];
	bool mine = wizard_running(w, k->worker);
	switch (cmd) {
	case CMD_RUN_STAGE:
		if (!mine || x->looking)
			act_f2(w, as->a);
		return KEY_RESULT_HANDLED;
	case CMD_REFRESH:
		as->want_look = k->look != NULL;
		try_look(as);
		return KEY_RESULT_PASS;   /* the toolkit redraws too */
	case CMD_ROLLBACK:
		return as->a == WIZ_ACT_ROLLBACK ? KEY_RESULT_HANDLED : KEY_RESULT_PASS;
	case CMD_UP:
	case CMD_DOWN:
	case CMD_PAGE_UP:
	case CMD_PAGE_DOWN:
	case CMD_HOME:
	case CMD_END: {
		int page = as->page > 1 ? as->page - 1 : 1;
		as->top += cmd == CMD_UP ? -1 : cmd == CMD_DOWN ? 1 : cmd == CMD_PAGE_UP ? -page :
		           cmd == CMD_PAGE_DOWN ? page : cmd == CMD_HOME ? -as->max_top - 1 : as->max_top;
		if (as->top > as->max_top)
			as->top = as->max_top;
		if (as->top < 0)
			as->top = 0;
		return KEY_RESULT_HANDLED;
	}
	case CMD_CANCEL:
		if (mine && x->looking) {
			x->ask = false;
			tui_worker_cancel(w->worker);
			return KEY_RESULT_HANDLED;
		}
		if (mine && k->cancel) {
			tui_worker_cancel(w->worker);
			tui_log_add(w->log, TUI_LOG_WARN, "%s: cancelling", k->stage);
			return KEY_RESULT_HANDLED;
		}
		if (as->a == WIZ_ACT_ROLLBACK) {
			tui_pop(s->app);
			return KEY_RESULT_HANDLED;
		}
		return KEY_RESULT_PASS;
	default:
		return KEY_RESULT_PASS;
	}
}

const struct screen_ops wiz_action_screen = {
	.name = "action",
	.priv_size = sizeof(struct act_screen),
	.enter = act_enter,
	.draw = act_draw,
	.key = act_key,
	.event = act_event,
};

bool
wizard_rollback_shown(const struct wizard *w)
{
	const struct screen *top = w->app ? tui_top(w->app) : NULL;
	return top && top->ops == &wiz_action_screen && ((const struct act_screen *)top->priv)->a == WIZ_ACT_ROLLBACK;
}

void
wizard_rollback_open(struct wizard *w)
{
	if (!wizard_rollback_shown(w))
		tui_push(w->app, &wiz_action_screen, NULL);
}
