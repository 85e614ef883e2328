/* recover.c: the recover view: what is known of a failed migration, and the four ways out. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/confirm.h"
#include "core/recover.h"
#include "core/util.h"
#include "screens/wizard.h"
#include "tui/confirm.h"
#include "tui/dialog.h"
#include "tui/text.h"
#include "tui/textview.h"
#include "tui/theme.h"

#define NACTIONS (RECOVER_ROLLBACK + 1)
/* The journal stage of everything recovery does (core/recover.h). */
#define RECOVER_STAGE "migrate"
/* The column where an action's why, warning and phrase start. */
#define ACTION_INDENT 20

static const char *
jstr(json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

static long long
jint(json_t *o, const char *key)
{
	return (long long)json_integer_value(json_object_get(o, key));
}

static json_t *
action_json(const struct wizard *wz, int a)
{
	return json_array_get(json_object_get(wz->rec.info, "actions"), (size_t)a);
}

/* --- the worker: a look, a look with run-sql's preview, an action --- */

enum rc_job_kind { RC_INSPECT, RC_PREVIEW_SQL, RC_APPLY };

struct rc_job {
	struct wizard       *wz;
	enum rc_job_kind     kind;
	char                *name;
	enum recover_action  action;
	char                *sql_file;   /* RC_PREVIEW_SQL, RC_APPLY of run-sql */
	char                 sql_sum[65];/* SHA-256 of the file as previewed ("" when unread) */
	char                *confirm;    /* RC_APPLY: the typed phrase */
	/* Filled by the worker. */
	bool                 ok;
	struct rb_error      err;
	json_t              *info;       /* the look; for RC_APPLY the state afterwards (may be NULL) */
	char                *preview;    /* RC_PREVIEW_SQL */
};

static void
job_free(struct rc_job *job)
{
	if (job == NULL)
		return;
	free(job->name);
	free(job->sql_file);
	free(job->confirm);
	rb_error_clear(&job->err);
	json_decref(job->info);
	free(job->preview);
	free(job);
}

static struct rc_job *
job_new(struct wizard *wz, enum rc_job_kind kind)
{
	struct rc_job *job = xcalloc(1, sizeof *job);
	job->wz = wz;
	job->kind = kind;
	job->name = xstrdup(wz->rec.name);
	return job;
}

/* SHA-256 hex of a file's bytes into sum; false (sum "") when it cannot be read. */
static bool
file_sum(const char *path, char sum[65])
{
	size_t len = 0;
	char *b = path ? file_read_all(path, &len) : NULL;
	sum[0] = '\0';
	if (b == NULL)
		return false;
	sha256_hex(b, len, sum);
	free(b);
	return true;
}

static void *
rc_main(void *arg, atomic_int *cancel)
{
	struct rc_job *job = arg;
	struct rb_ctx ctx = { .bus = job->wz->bus, .cancel = cancel };
	if (job->kind == RC_APPLY) {
		/* What was previewed is what runs: a file changed since its preview is refused. */
		char now[65] = "";
		if (job->action == RECOVER_RUN_SQL && job->sql_file && !file_sum(job->sql_file, now)) {
			rb_error_setc(&job->err, RB_EXIT_STEP, "cannot read %s any more; nothing ran", job->sql_file);
			return job;
		}
		if (job->action == RECOVER_RUN_SQL && strcmp(now, job->sql_sum) != 0) {
			rb_error_setc(&job->err, RB_EXIT_STEP, "%s changed after its preview was shown; nothing ran",
			              job->sql_file);
			events_log(job->wz->bus, LOG_LEVEL_WARN, "migrate", "run-sql of %s refused: %s changed after its "
			           "preview was shown; nothing ran", job->name, job->sql_file);
			rb_error_hint(&job->err, "Choose run-sql again to see what the file holds now.");
			return job;
		}
		job->ok = recover_apply(job->wz->plan, NULL, job->name, job->action, job->sql_file, job->confirm,
		                        &ctx, &job->info, &job->err);
		return job;
	}
	struct recover_info ri;
	job->ok = recover_inspect(job->wz->plan, NULL, job->name, &ctx, &ri, &job->err);
	if (job->ok) {
		job->info = recover_info_json(&ri);
		if (job->kind == RC_PREVIEW_SQL) {
			file_sum(job->sql_file, job->sql_sum);  /* before reading it for the preview */
			job->preview = recover_preview(&ri, RECOVER_RUN_SQL, job->sql_file);
		}
	}
	recover_info_free(&ri);
	/* No lint_shutdown(): libpg_query frees this thread's memory when the thread ends. */
	return job;
}

/* "message. detail hint" of an error. Caller frees. */
static char *
error_text(const struct rb_error *err)
{
	struct strbuf sb = { 0 };
	strbuf_adds(&sb, err->message ? err->message : "unknown error");
	if (err->detail)
		strbuf_addf(&sb, ". %s", err->detail);
	if (err->hint)
		strbuf_addf(&sb, " %s", err->hint);
	return strbuf_detach(&sb);
}

static void run_sql_confirm(struct wizard *wz, const char *sql_file, const char *sum, const char *preview);

static void
rc_collect(struct wizard *w, void *result, bool stopped)
{
	struct rc_job *job = result;
	struct wiz_recover *r = &w->rec;
	r->busy = false;
	r->acting = false;
	r->gen++;
	if (job == NULL)
		return;
	if (stopped || r->name == NULL || strcmp(r->name, job->name) != 0) {
		job_free(job);
		return;
	}
	if (job->kind == RC_APPLY) {
		r->acted = true;
		r->act = (int)job->action;
		r->act_ok = job->ok;
		rb_error_clear(&r->act_err);
		r->act_err = job->err;
		memset(&job->err, 0, sizeof job->err);
		if (job->info) {
			json_decref(r->info);
			r->info = job->info;
			job->info = NULL;
		}
		job_free(job);
		wizard_migrate_refresh(w);   /* the migrate table shows what the action left */
		return;
	}
	free(r->error);
	r->error = NULL;
	if (job->ok) {
		json_decref(r->info);
		r->info = job->info;
		job->info = NULL;
	} else {
		r->error = error_text(&job->err);
	}
	if (job->kind == RC_PREVIEW_SQL) {
		if (job->ok)
			run_sql_confirm(w, job->sql_file, job->sql_sum, job->preview);
		else
			tui_message(w->app, "run-sql", r->error, TUI_ROLE_DANGER, NULL, NULL);
	}
	job_free(job);
}

/* Starts job on the worker, or queues it until the running worker ends (the newest one wins). */
static void
job_start(struct wizard *wz, struct rc_job *job)
{
	struct wiz_recover *r = &wz->rec;
	r->gen++;
	if (wz->worker) {
		job_free(r->queued);
		r->queued = job;
		return;
	}
	if (!wizard_worker_start(wz, PLAN_STAGE_MIGRATE, rc_main, job, rc_collect)) {
		job_free(job);
		return;
	}
	r->busy = true;
	r->acting = job->kind == RC_APPLY;
}

static void
inspect_start(struct wizard *wz)
{
	job_start(wz, job_new(wz, RC_INSPECT));
}

void
wizard_recover_release(struct wizard *w)
{
	struct wiz_recover *r = &w->rec;
	free(r->name);
	job_free(r->queued);
	json_decref(r->info);
	free(r->error);
	rb_error_clear(&r->act_err);
	memset(r, 0, sizeof *r);
}

/* --- the typed confirmation and the action --- */

struct rc_confirm {
	struct wizard       *wz;
	char                *name;
	enum recover_action  action;
	char                *sql_file;
	char                 sql_sum[65];  /* of the file as previewed */
	char                *phrase;
};

static void
rc_confirm_free(struct rc_confirm *c)
{
	free(c->name);
	free(c->sql_file);
	free(c->phrase);
	free(c);
}

static void
confirm_miss_cb(void *ud, const char *typed, int misses)
{
	(void)misses;
	struct rc_confirm *c = ud;
	wizard_confirm_miss(c->wz, RECOVER_STAGE, c->phrase, typed);
}

static void
confirm_done_cb(void *ud, enum tui_confirm_result res, const char *typed)
{
	struct rc_confirm *c = ud;
	struct wizard *wz = c->wz;
	const char *what = recover_action_name(c->action);
	if (res == TUI_CONFIRM_OK && wz->rec.name && strcmp(wz->rec.name, c->name) == 0) {
		struct rc_job *job = job_new(wz, RC_APPLY);
		job->action = c->action;
		job->sql_file = c->sql_file ? xstrdup(c->sql_file) : NULL;
		memcpy(job->sql_sum, c->sql_sum, sizeof job->sql_sum);
		job->confirm = xstrdup(typed ? typed : "");   /* core compares what was typed again */
		wz->rec.acted = false;
		job_start(wz, job);
	} else if (res == TUI_CONFIRM_REFUSED) {
		events_log(wz->bus, LOG_LEVEL_WARN, RECOVER_STAGE, "recover %s: %s refused after 3 wrong phrases; "
		           "nothing ran", c->name, what);
	} else {
		events_log(wz->bus, LOG_LEVEL_INFO, RECOVER_STAGE, "recover %s: %s cancelled at the confirmation; "
		           "nothing ran", c->name, what);
	}
	rc_confirm_free(c);
}

/* Opens the typed confirmation of action a (allowed in the latest look) with its preview. */
static void
confirm_open(struct wizard *wz, enum recover_action a, const char *sql_file, const char *sum,
             const char *preview)
{
	json_t *aj = action_json(wz, (int)a);
	const char *phrase = jstr(aj, "phrase");
	if (phrase == NULL)
		return;
	struct strlist details = { 0 };
	struct strlist parts = { 0 };
	tui_text_wrap(preview ? preview : "", 200, &parts);   /* split at its line breaks */
	for (size_t i = 0; i < parts.len; i++)
		strlist_push(&details, parts.items[i]);
	strlist_free(&parts);
	if (jstr(aj, "warning"))
		strlist_push_owned(&details, xasprintf("Warning: %s", jstr(aj, "warning")));
	const char **lines = xcalloc(details.len + 1, sizeof *lines);   /* NULL-terminated */
	for (size_t i = 0; i < details.len; i++)
		lines[i] = details.items[i];
	struct rc_confirm *c = xcalloc(1, sizeof *c);
	c->wz = wz;
	c->name = xstrdup(wz->rec.name);
	snprintf(c->sql_sum, sizeof c->sql_sum, "%s", sum ? sum : "");
	c->action = a;
	c->sql_file = sql_file ? xstrdup(sql_file) : NULL;
	c->phrase = xstrdup(phrase);
	char *title = xasprintf("Recover: %s", recover_action_name(a));
	char *action = a == RECOVER_RUN_SQL ? xasprintf("run %s on %s, then look again (it marks nothing)",
	                                                sql_file, jstr(wz->rec.info, "database")) :
	               xasprintf("%s %s in _prisma_migrations", a == RECOVER_MARK_APPLIED ? "mark applied:" :
	                         "mark rolled back:", wz->rec.name);
	json_t *t = wizard_target_result(wz);
	const char *where = t ? jstr(t, "where") : NULL;
	const char *env = jstr(wz->rec.info, "environment");
	struct tui_confirm_opts o = {
		.title = title,
		.action = action,
		.environment = env ? env : wz->plan->target,
		.prod = true,
		.target = where ? where : jstr(wz->rec.info, "database"),
		.details = lines,
		.phrase = c->phrase,
		.miss = confirm_miss_cb,
		.done = confirm_done_cb,
		.ud = c,
	};
	if (tui_confirm(wz->app, &o) == NULL)
		rc_confirm_free(c);
	free(title);
	free(action);
	free(lines);
	strlist_free(&details);
}

/* After run-sql's preview came back: confirm it when run-sql is still allowed. */
static void
run_sql_confirm(struct wizard *wz, const char *sql_file, const char *sum, const char *preview)
{
	json_t *aj = action_json(wz, RECOVER_RUN_SQL);
	if (!json_is_true(json_object_get(aj, "allowed"))) {
		char *t = xasprintf("%s.\n\nNothing ran.", jstr(aj, "why_not") ? jstr(aj, "why_not") : "not allowed now");
		tui_message(wz->app, "run-sql refused", t, TUI_ROLE_DANGER, NULL, NULL);
		free(t);
		return;
	}
	confirm_open(wz, RECOVER_RUN_SQL, sql_file, sum, preview);
}

/* --- a one-line text prompt (the SQL file's path) --- */

#define PROMPT_MAX 1024

struct rc_prompt_opts {
	const char *title;
	const char *label;
	void      (*done)(struct wizard *wz, const char *text);   /* text NULL: cancelled */
};

struct rc_prompt {
	struct wizard *wz;
	char          *title, *label;
	void         (*done)(struct wizard *wz, const char *text);
	char           input[PROMPT_MAX];
	size_t         len;
};

static int
pr_enter(struct screen *s, void *arg)
{
	const struct rc_prompt_opts *o = arg;
	struct rc_prompt *p = s->priv;
	p->wz = tui_app_userdata(s->app);
	p->title = xstrdup(o->title);
	p->label = xstrdup(o->label);
	p->done = o->done;
	tui_screen_set_overlay(s, true);
	return 0;
}

static void
pr_draw(struct screen *s)
{
	struct rc_prompt *p = s->priv;
	int h, w;
	getmaxyx(s->win, h, w);
	(void)h;
	int bw = w - 4 < 76 ? w - 4 : 76;
	struct strlist l = { 0 };
	tui_text_wrap(p->label, bw - 4, &l);
	int bh = (int)l.len + 6;
	struct tui_rect r = tui_dialog_center(s->win, bh, bw);
	tui_dialog_frame(s->win, r, p->title, TUI_ROLE_NORMAL);
	int y = r.y + 1;
	for (size_t i = 0; i < l.len; i++)
		tui_text_put(s->win, y++, r.x + 2, l.items[i], 0, r.w - 4, tui_attr(TUI_ROLE_NORMAL), true);
	strlist_free(&l);
	y++;
	/* The input's tail that fits, then the cursor after it. */
	int room = r.w - 6;
	int width = tui_text_width(p->input);
	int skip = width > room ? width - room : 0;
	tui_text_put(s->win, y, r.x + 2, "> ", 0, 2, tui_attr(TUI_ROLE_HEADER), false);
	int n = tui_text_put(s->win, y, r.x + 4, p->input, skip, room, tui_attr(TUI_ROLE_NORMAL), true);
	tui_screen_show_cursor(s, y, r.x + 4 + n);
	tui_text_put(s->win, r.y + r.h - 2, r.x + 2, "Enter takes it, Esc goes back", 0, r.w - 4,
	             tui_attr(TUI_ROLE_MUTED), true);
}

static enum key_result
pr_key(struct screen *s, enum command cmd, int raw)
{
	(void)cmd;
	struct rc_prompt *p = s->priv;
	if (raw == TUI_KEY_ESC || raw == TUI_CTRL('c')) {
		void (*done)(struct wizard *, const char *) = p->done;
		struct wizard *wz = p->wz;
		tui_pop(s->app);
		done(wz, NULL);
	} else if (raw == TUI_KEY_ENTER) {
		if (p->len == 0)
			return KEY_RESULT_HANDLED;
		char *text = xstrdup(p->input);
		void (*done)(struct wizard *, const char *) = p->done;
		struct wizard *wz = p->wz;
		tui_pop(s->app);
		done(wz, text);
		free(text);
	} else if (raw == TUI_KEY_BACKSPACE) {
		p->len = tui_text_prev(p->input, p->len);
		p->input[p->len] = '\0';
	} else if (raw == TUI_CTRL('u')) {
		p->len = 0;
		p->input[0] = '\0';
	} else if (tui_key_is_text(raw)) {
		char enc[5];
		size_t n = tui_text_encode(raw, enc);
		if (p->len + n < sizeof p->input) {
			memcpy(p->input + p->len, enc, n + 1);
			p->len += n;
		}
	}
	return KEY_RESULT_HANDLED;   /* modal: nothing reaches the screens below */
}

static void
pr_leave(struct screen *s)
{
	struct rc_prompt *p = s->priv;
	free(p->title);
	free(p->label);
}

static const struct screen_ops rc_prompt_screen = {
	.name = "recover-prompt",
	.priv_size = sizeof(struct rc_prompt),
	.enter = pr_enter,
	.draw = pr_draw,
	.key = pr_key,
	.leave = pr_leave,
};

static void
sql_file_done(struct wizard *wz, const char *path)
{
	if (path == NULL || wz->rec.name == NULL)
		return;
	if (wz->rec.busy) {
		tui_message(wz->app, "run-sql", "Wait until the running look or action ends.", TUI_ROLE_WARN, NULL, NULL);
		return;
	}
	/* A fresh look, and the file's statements with their lint class, on the worker. */
	struct rc_job *job = job_new(wz, RC_PREVIEW_SQL);
	job->sql_file = xstrdup(path);
	job_start(wz, job);
}

/* --- the view --- */

struct rc_screen {
	struct wizard       *wz;
	struct tui_textview *tv;
	int                  cursor;       /* the highlighted action */
	bool                 built;
	unsigned             built_gen;
	int                  built_width, built_cursor;
	size_t               action_line[NACTIONS];
};

/* Appends text wrapped to width; continuation lines are indented by indent more columns. */
static void
add_wrapped(struct tui_textview *tv, const char *text, int width, int indent, int more, enum tui_role role)
{
	struct strlist parts = { 0 };
	int room = width - indent - more;
	tui_text_wrap(text, room > 10 ? room : 10, &parts);
	for (size_t i = 0; i < parts.len; i++) {
		char *t = xasprintf("%*s%s", indent + (i ? more : 0), "", parts.items[i]);
		tui_textview_add_line(tv, t, role);
		free(t);
	}
	if (parts.len == 0)
		tui_textview_add_line(tv, "", role);
	strlist_free(&parts);
}

static const char *
seen_text(json_t *e, enum tui_role *role)
{
	const char *seen = jstr(e, "seen");
	if (json_is_true(json_object_get(e, "invalid_index"))) {
		*role = TUI_ROLE_DANGER;
		return "INVALID";
	}
	if (seen && strcmp(seen, "done") == 0) {
		*role = TUI_ROLE_NORMAL;
		return "done";
	}
	if (seen && strcmp(seen, "not_done") == 0) {
		*role = TUI_ROLE_MUTED;
		return "not done";
	}
	*role = TUI_ROLE_WARN;
	return "unknown";
}

static enum tui_role
class_role(const char *cls)
{
	if (cls && strcmp(cls, "dangerous") == 0)
		return TUI_ROLE_DANGER;
	if (cls && strcmp(cls, "risky") == 0)
		return TUI_ROLE_WARN;
	return TUI_ROLE_NORMAL;
}

/* How to get past a refused action. */
static const char *
refused_hint(enum recover_action a)
{
	switch (a) {
	case RECOVER_MARK_ROLLED_BACK:
		return "Undo what remains first: choose run-sql with a compensating SQL file (for example DROP INDEX "
		       "of the INVALID index), then mark-rolled-back again.";
	case RECOVER_MARK_APPLIED:
		return "Complete what is missing first (run-sql with a file that does it; an INVALID index is "
		       "dropped and built again), then mark-applied again.";
	case RECOVER_RUN_SQL:
		return "Only a failed migration can be recovered; F5 looks again.";
	case RECOVER_ROLLBACK:
		return "";
	}
	return "";
}

/* The outcome of the last action, from w->rec. */
static void
add_outcome(struct tui_textview *tv, const struct wiz_recover *r, int width)
{
	const char *what = recover_action_name((enum recover_action)r->act);
	char *s;
	if (r->act_ok) {
		s = xasprintf("%s done.", what);
		add_wrapped(tv, s, width, 0, 2, TUI_ROLE_OK);
	} else {
		s = xasprintf("%s failed: %s", what, r->act_err.message ? r->act_err.message : "see the log");
		add_wrapped(tv, s, width, 0, 2, TUI_ROLE_DANGER);
		if (r->act_err.detail)
			add_wrapped(tv, r->act_err.detail, width, 2, 2, TUI_ROLE_NORMAL);
		if (r->act_err.hint)
			add_wrapped(tv, r->act_err.hint, width, 2, 2, TUI_ROLE_MUTED);
	}
	free(s);
	json_t *o = r->info;
	if (o) {
		json_t *e = json_object_get(o, "effects");
		s = xasprintf("State afterwards: %s is %s; effects %lld done, %lld not done, %lld unknown, %lld INVALID "
		              "index%s.", jstr(o, "migration"), jstr(o, "state"), jint(e, "done"), jint(e, "not_done"),
		              jint(e, "unknown"), jint(e, "invalid_indexes"), jint(e, "invalid_indexes") == 1 ? "" : "es");
		add_wrapped(tv, s, width, 0, 2, r->act_ok ? TUI_ROLE_OK : TUI_ROLE_WARN);
		free(s);
	}
	tui_textview_add_line(tv, "", TUI_ROLE_NORMAL);
}

static void
build(struct rc_screen *rs, int width)
{
	struct wizard *wz = rs->wz;
	struct wiz_recover *r = &wz->rec;
	struct tui_textview *tv = rs->tv;
	rs->built = true;
	rs->built_gen = r->gen;
	rs->built_width = width;
	rs->built_cursor = rs->cursor;
	tui_textview_set_text(tv, "");
	for (int a = 0; a < NACTIONS; a++)
		rs->action_line[a] = 0;
	char *s;
	if (r->acted)
		add_outcome(tv, r, width);
	json_t *o = r->info;
	if (o == NULL) {
		if (r->error) {
			s = xasprintf("Could not look at %s: %s  (F5 tries again)", r->name, r->error);
			add_wrapped(tv, s, width, 0, 2, TUI_ROLE_DANGER);
			free(s);
		}
		return;
	}
	if (r->error) {
		s = xasprintf("The last look failed: %s  (what follows is older)", r->error);
		add_wrapped(tv, s, width, 0, 2, TUI_ROLE_DANGER);
		free(s);
	}
	const char *state = jstr(o, "state");
	bool failed = state && strcmp(state, "failed") == 0;
	s = xasprintf("Migration %s in %s (database %s, schema %s): %s", jstr(o, "migration"), jstr(o, "environment"),
	              jstr(o, "database"), jstr(o, "schema"), state ? state : "?");
	add_wrapped(tv, s, width, 0, 2, failed ? TUI_ROLE_DANGER : TUI_ROLE_OK);
	free(s);
	json_t *eff = json_object_get(o, "effects");
	s = xasprintf("Started %s; applied steps %lld; effects %lld done, %lld not done, %lld unknown%s%lld INVALID "
	              "index%s", jstr(o, "started_at") ? jstr(o, "started_at") : "?", jint(o, "applied_steps"),
	              jint(eff, "done"), jint(eff, "not_done"), jint(eff, "unknown"), "; ",
	              jint(eff, "invalid_indexes"), jint(eff, "invalid_indexes") == 1 ? "" : "es");
	add_wrapped(tv, s, width, 0, 2, jint(eff, "invalid_indexes") > 0 ? TUI_ROLE_WARN : TUI_ROLE_NORMAL);
	free(s);

	tui_textview_add_line(tv, "", TUI_ROLE_NORMAL);
	tui_textview_add_line(tv, "Ways out (Up/Down select, Enter or F4 chooses; each asks for its phrase):",
	                      TUI_ROLE_HEADER);
	for (int a = 0; a < NACTIONS; a++) {
		json_t *aj = action_json(wz, a);
		bool allowed = json_is_true(json_object_get(aj, "allowed"));
		rs->action_line[a] = tui_textview_count(tv);
		s = xasprintf("%s %-17s %s%s", a == rs->cursor ? ">" : " ", recover_action_name((enum recover_action)a),
		              allowed ? "allowed" : "refused: ", allowed ? "" : jstr(aj, "why_not") ?
		              jstr(aj, "why_not") : "?");
		add_wrapped(tv, s, width, 0, ACTION_INDENT, a == rs->cursor ? TUI_ROLE_CURSOR :
		            allowed ? TUI_ROLE_OK : TUI_ROLE_DANGER);
		free(s);
		if (jstr(aj, "warning")) {
			s = xasprintf("warning: %s", jstr(aj, "warning"));
			add_wrapped(tv, s, width, ACTION_INDENT, 2, TUI_ROLE_WARN);
			free(s);
		}
		s = xasprintf("phrase: %s", jstr(aj, "phrase") ? jstr(aj, "phrase") : "?");
		add_wrapped(tv, s, width, ACTION_INDENT, 2, TUI_ROLE_MUTED);
		free(s);
	}

	tui_textview_add_line(tv, "", TUI_ROLE_NORMAL);
	const char *logs = jstr(o, "logs");
	if (logs) {
		tui_textview_add_line(tv, "Logs of the failed row:", TUI_ROLE_HEADER);
		struct strlist l = { 0 };
		tui_text_wrap(logs, width - 4 > 10 ? width - 4 : 10, &l);
		for (size_t i = 0; i < l.len; i++) {
			s = xasprintf("  | %s", l.items[i]);
			tui_textview_add_line(tv, s, TUI_ROLE_MUTED);
			free(s);
		}
		strlist_free(&l);
	} else {
		tui_textview_add_line(tv, "The failed row has no logs.", TUI_ROLE_MUTED);
	}
	if (jstr(o, "lint_error")) {
		s = xasprintf("The script does not parse: %s", jstr(o, "lint_error"));
		add_wrapped(tv, s, width, 0, 2, TUI_ROLE_DANGER);
		free(s);
	}

	tui_textview_add_line(tv, "", TUI_ROLE_NORMAL);
	tui_textview_add_line(tv, "Statements and their effects in the catalog:", TUI_ROLE_HEADER);
	json_t *stmts = json_object_get(o, "statements"), *list = json_object_get(eff, "effects");
	json_t *st, *e;
	size_t i, k;
	json_array_foreach(stmts, i, st) {
		const char *sql = jstr(st, "sql") ? jstr(st, "sql") : "";
		size_t eol = strcspn(sql, "\n");
		char cls[40];
		snprintf(cls, sizeof cls, "%s%s%s", jstr(st, "class") ? jstr(st, "class") : "?", jstr(st, "code") ? " " : "",
		         jstr(st, "code") ? jstr(st, "code") : "");
		int room = width - 28 > 20 ? width - 28 : 20;
		s = xasprintf("line %-4lld %-15s %.*s%s", jint(st, "line"), cls, (int)((int)eol > room ? (size_t)room : eol),
		              sql, (int)eol > room || sql[eol] ? " ..." : "");
		tui_textview_add_line(tv, s, class_role(jstr(st, "class")));
		free(s);
		json_array_foreach(list, k, e) {
			if ((size_t)jint(e, "statement") != i)
				continue;
			enum tui_role role;
			const char *seen = seen_text(e, &role);
			s = xasprintf("%-10s%-10s%s", "", seen, jstr(e, "what") ? jstr(e, "what") : "?");
			add_wrapped(tv, s, width, 0, 22, role);
			free(s);
		}
	}
	if (json_array_size(stmts) == 0)
		tui_textview_add_line(tv, "  (none)", TUI_ROLE_MUTED);
}

static int
rc_enter(struct screen *s, void *arg)
{
	struct rc_screen *rs = s->priv;
	struct wizard *wz = tui_app_userdata(s->app);
	const char *name = arg;
	if (name == NULL)
		return -1;
	rs->wz = wz;
	wizard_recover_release(wz);
	wz->rec.name = xstrdup(name);
	rs->tv = tui_textview_new();
	inspect_start(wz);
	return 0;
}

static char *
status_text(const struct wizard *wz, enum tui_role *role)
{
	const struct wiz_recover *r = &wz->rec;
	*role = TUI_ROLE_MUTED;
	if (r->busy && r->acting) {
		*role = TUI_ROLE_WARN;
		return xstrdup("Running the action...  (Esc cancels)");
	}
	if (r->busy)
		return xstrdup("Looking at _prisma_migrations and the catalog (read-only)...");
	if (r->queued)
		return xasprintf("Waiting for %s's worker to end...", wizard_worker_name(wz->worker_stage));
	if (wz->worker)
		return xasprintf("%s is reading the migrations again; choose once it ends.",
		                 wizard_worker_name(wz->worker_stage));
	*role = TUI_ROLE_NORMAL;
	return xstrdup("F5 looks again; Esc goes back to the migrate table.");
}

static void
rc_draw(struct screen *s)
{
	struct rc_screen *rs = s->priv;
	struct wizard *wz = rs->wz;
	int h, w;
	getmaxyx(s->win, h, w);
	int cw = w - 2;
	int y = 0;
	char *t = xasprintf("Recover: %s", wz->rec.name ? wz->rec.name : "?");
	tui_text_put(s->win, y++, 1, t, 0, cw, tui_attr(TUI_ROLE_HEADER), true);
	free(t);
	enum tui_role role;
	t = status_text(wz, &role);
	tui_text_put(s->win, y++, 1, t, 0, cw, tui_attr(role), true);
	free(t);
	if (!rs->built || rs->built_gen != wz->rec.gen || rs->built_width != cw || rs->built_cursor != rs->cursor) {
		bool moved = rs->built && rs->built_cursor != rs->cursor;
		build(rs, cw);
		if (moved)
			tui_textview_show(rs->tv, rs->action_line[rs->cursor]);
	}
	if (y < h)
		tui_textview_draw(rs->tv, s->win, (struct tui_rect){ y, 1, h - y, cw });
}

/* The highlighted action was chosen: refused with why and how to go on, or its phrase. */
static void
choose(struct screen *s)
{
	struct rc_screen *rs = s->priv;
	struct wizard *wz = rs->wz;
	struct wiz_recover *r = &wz->rec;
	enum recover_action a = (enum recover_action)rs->cursor;
	const char *what = recover_action_name(a);
	if (r->busy || r->queued) {
		tui_message(s->app, what, "Wait until the running look or action ends.", TUI_ROLE_WARN, NULL, NULL);
		return;
	}
	if (r->info == NULL) {
		tui_message(s->app, what, "Nothing is known of the migration yet. F5 looks again.", TUI_ROLE_WARN, NULL, NULL);
		return;
	}
	json_t *aj = action_json(wz, rs->cursor);
	if (!json_is_true(json_object_get(aj, "allowed"))) {
		const char *why = jstr(aj, "why_not") ? jstr(aj, "why_not") : "not allowed now";
		const char *hint = refused_hint(a);
		char *text = xasprintf("%s.\n\n%s%sNothing ran.", why, hint, *hint ? " " : "");
		char *title = xasprintf("%s refused", what);
		tui_message(s->app, title, text, TUI_ROLE_DANGER, NULL, NULL);
		events_log(wz->bus, LOG_LEVEL_INFO, RECOVER_STAGE, "recover %s: %s refused: %s; nothing ran", r->name,
		           what, why);
		free(title);
		free(text);
		return;
	}
	if (a == RECOVER_RUN_SQL) {
		char *label = xasprintf("The compensating SQL file to run on %s (its statements and their lint "
		                        "class are shown before anything runs):", jstr(r->info, "database"));
		struct rc_prompt_opts o = { .title = "run-sql: the SQL file", .label = label, .done = sql_file_done };
		tui_push(s->app, &rc_prompt_screen, &o);
		free(label);
		return;
	}
	confirm_open(wz, a, NULL, NULL, jstr(aj, "preview"));
}

static enum key_result
rc_key(struct screen *s, enum command cmd, int raw)
{
	(void)raw;
	struct rc_screen *rs = s->priv;
	struct wizard *wz = rs->wz;
	struct wiz_recover *r = &wz->rec;
	switch (cmd) {
	case CMD_UP:
		if (rs->cursor > 0)
			rs->cursor--;
		return KEY_RESULT_HANDLED;
	case CMD_DOWN:
		if (rs->cursor + 1 < NACTIONS)
			rs->cursor++;
		return KEY_RESULT_HANDLED;
	case CMD_SELECT:
	case CMD_CONFIRM:
		choose(s);
		return KEY_RESULT_HANDLED;
	case CMD_REFRESH:
		if (!r->busy)
			inspect_start(wz);
		tui_app_repaint(s->app);
		return KEY_RESULT_HANDLED;
	case CMD_RUN_STAGE:
		tui_message(s->app, "Deploy", "F2 deploys from the migrate table: Esc goes back there.", TUI_ROLE_NORMAL,
		            NULL, NULL);
		return KEY_RESULT_HANDLED;
	case CMD_CANCEL:
		if (r->busy) {
			tui_worker_cancel(wz->worker);
			tui_log_add(wz->log, TUI_LOG_WARN, "migrate: cancelling the recover %s", r->acting ? "action" : "look");
			return KEY_RESULT_HANDLED;
		}
		tui_pop(s->app);
		return KEY_RESULT_HANDLED;
	default:
		return tui_textview_command(rs->tv, cmd) ? KEY_RESULT_HANDLED : KEY_RESULT_PASS;
	}
}

static void
rc_event(struct screen *s, void *item)
{
	(void)item;
	struct rc_screen *rs = s->priv;
	struct wizard *wz = rs->wz;
	struct wiz_recover *r = &wz->rec;
	/* Another stage's worker ended: start the job that waited for it. */
	if (r->queued && wz->worker == NULL) {
		struct rc_job *job = r->queued;
		r->queued = NULL;
		job_start(wz, job);
	}
}

static void
rc_leave(struct screen *s)
{
	struct rc_screen *rs = s->priv;
	tui_textview_free(rs->tv);
	/* A worker still running (only while the wizard ends) finds no name and drops its result. */
	wizard_recover_release(rs->wz);
}

const struct screen_ops wiz_recover_screen = {
	.name = "recover",
	.priv_size = sizeof(struct rc_screen),
	.enter = rc_enter,
	.draw = rc_draw,
	.key = rc_key,
	.event = rc_event,
	.leave = rc_leave,
};
