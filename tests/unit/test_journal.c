/* test_journal.c: run journals (modes, hash chain, damage, locks, replay, lookup) and reports. */
#include "config.h"

#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/events.h"
#include "core/journal.h"
#include "core/preflight.h"
#include "core/report.h"
#include "core/util.h"

struct fixture {
	char *tmp;       /* removed afterwards */
	char *state;     /* XDG_STATE_HOME (not created beforehand) */
	char *runs;      /* state/pgrunbook/runs */
	struct plan plan;
};

static int
setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof(*f));
	char tmpl[] = "/tmp/test_journal.XXXXXX";
	assert_non_null(mkdtemp(tmpl));
	f->tmp = xstrdup(tmpl);
	f->state = xasprintf("%s/state", f->tmp);
	f->runs = xasprintf("%s/pgrunbook/runs", f->state);
	setenv("XDG_STATE_HOME", f->state, 1);
	f->plan.name = (char *)"shop release 2026-11";
	f->plan.path = (char *)"/nonexistent/plan.yaml";
	sha256_hex("plan v1", 7, f->plan.hash);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;
	assert_true(remove_tree(f->tmp));
	free(f->tmp);
	free(f->state);
	free(f->runs);
	free(f);
	return 0;
}

static mode_t
mode_of(const char *path)
{
	struct stat sb;
	assert_int_equal(stat(path, &sb), 0);
	return sb.st_mode & 07777;
}

static char *
journal_path(const char *dir)
{
	return xasprintf("%s/journal.jsonl", dir);
}

/* A run with run_started plus n-1 log records "msg-2".."msg-n"; returns its directory. */
static char *
make_run(struct fixture *f, int n)
{
	struct rb_error err = {0};
	struct journal *j = journal_create(NULL, &f->plan, &err);
	assert_non_null(j);
	for (int i = 2; i <= n; i++) {
		char msg[32];
		snprintf(msg, sizeof msg, "msg-%d", i);
		assert_true(journal_append(j, EV_LOG, "preflight", msg, NULL, &err));
	}
	char *dir = xstrdup(journal_dir(j));
	journal_close(j);
	return dir;
}

/* The journal's lines (with their newlines); caller frees with strlist_free(). */
static void
read_lines(const char *dir, struct strlist *lines)
{
	char *path = journal_path(dir);
	char *text = file_read_all(path, NULL);
	assert_non_null(text);
	char *p = text;
	while (*p) {
		char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) + 1 : strlen(p);
		strlist_push_owned(lines, xstrndup(p, len));
		p += len;
	}
	free(text);
	free(path);
}

static void
write_lines(const char *dir, const struct strlist *lines)
{
	char *path = journal_path(dir);
	FILE *fp = fopen(path, "w");
	assert_non_null(fp);
	for (size_t i = 0; i < lines->len; i++)
		fputs(lines->items[i], fp);
	assert_int_equal(fclose(fp), 0);
	free(path);
}

static void
test_runs_dir(void **state)
{
	struct fixture *f = *state;
	char *d = journal_runs_dir();
	assert_string_equal(d, f->runs);
	free(d);
	/* A relative XDG_STATE_HOME is invalid per the XDG spec and ignored. */
	setenv("XDG_STATE_HOME", "relative/state", 1);
	setenv("HOME", "/home/someone", 1);
	d = journal_runs_dir();
	assert_string_equal(d, "/home/someone/.local/state/pgrunbook/runs");
	free(d);
	unsetenv("XDG_STATE_HOME");
	d = journal_runs_dir();
	assert_string_equal(d, "/home/someone/.local/state/pgrunbook/runs");
	free(d);
	setenv("XDG_STATE_HOME", f->state, 1);
}

static void
test_create_modes_and_id(void **state)
{
	struct fixture *f = *state;
	mode_t old = umask(022);
	struct rb_error err = {0};
	struct journal *j = journal_create(NULL, &f->plan, &err);
	umask(old);
	assert_non_null(j);
	const char *id = journal_run_id(j);
	/* 20261123T154900.123Z-1a2b3c */
	assert_int_equal(strlen(id), 27);
	assert_int_equal(id[8], 'T');
	assert_int_equal(id[15], '.');
	assert_int_equal(id[19], 'Z');
	assert_int_equal(id[20], '-');
	for (int i = 21; i < 27; i++)
		assert_non_null(strchr("0123456789abcdef", id[i]));

	char *pg = xasprintf("%s/pgrunbook", f->state);
	assert_int_equal(mode_of(f->state), 0700);
	assert_int_equal(mode_of(pg), 0700);
	assert_int_equal(mode_of(f->runs), 0700);
	assert_int_equal(mode_of(journal_dir(j)), 0700);
	char *jp = journal_path(journal_dir(j));
	assert_int_equal(mode_of(jp), 0600);

	char *want_dir = xasprintf("%s/%s", f->runs, id);
	assert_string_equal(journal_dir(j), want_dir);

	/* A second run gets a different id in the same directory, sorting after or equal. */
	struct journal *j2 = journal_create(f->runs, &f->plan, &err);
	assert_non_null(j2);
	assert_string_not_equal(journal_run_id(j), journal_run_id(j2));
	assert_true(strncmp(journal_run_id(j), journal_run_id(j2), 16) <= 0);
	journal_close(j2);

	/* The first record is run_started with the plan and who ran it. */
	struct run_state st;
	assert_true(journal_replay(journal_dir(j), &st, &err));
	assert_false(st.torn);
	assert_int_equal(st.nrecords, 1);
	assert_int_equal(st.records[0].type, EV_RUN_STARTED);
	assert_int_equal(st.records[0].seq, 1);
	assert_string_equal(st.plan_name, "shop release 2026-11");
	assert_string_equal(st.plan_path, "/nonexistent/plan.yaml");
	assert_string_equal(st.plan_hash, f->plan.hash);
	assert_non_null(st.user);
	assert_int_equal(st.pid, (long)getpid());
	assert_string_equal(st.version, PACKAGE_VERSION);
	assert_string_equal(st.state, "running");
	assert_null(st.last_stage);
	assert_non_null(st.started);
	assert_true(st.in_use);
	assert_int_equal(st.in_use_pid, (long)getpid());
	run_state_free(&st);

	journal_close(j);
	assert_true(journal_replay(want_dir, &st, &err));
	assert_false(st.in_use);
	run_state_free(&st);
	free(want_dir);
	free(jp);
	free(pg);
}

static void
test_replay_state(void **state)
{
	struct fixture *f = *state;
	struct rb_error err = {0};
	struct journal *j = journal_create(NULL, &f->plan, &err);
	assert_non_null(j);
	struct events *bus = events_new();
	journal_attach(j, bus);

	json_t *res = json_pack("{s:b, s:[{s:s, s:i}]}", "blocked", 0, "environments", "name",
	                        "prod", "ntables", 12);
	events_emitf(bus, EV_STAGE_STARTED, "preflight", NULL, "checking 3 environments");
	events_emitf(bus, EV_PROGRESS, "preflight", NULL, "1/3");
	events_emitf(bus, EV_STAGE_RESULT, "preflight", res, NULL);
	events_log(bus, LOG_LEVEL_WARN, "preflight", "staging has 3 active sessions");
	events_emitf(bus, EV_STAGE_DONE, "preflight", NULL, "nothing blocks the release");
	events_emitf(bus, EV_STAGE_STARTED, "backup", NULL, NULL);
	events_emitf(bus, EV_STAGE_STARTED, "launch_rockets", NULL, "unknown stage");
	events_emitf(bus, EV_STAGE_FAILED, "backup", NULL, "pg_dump exited with status 1");
	json_decref(res);
	assert_false(journal_failed(j, &err));

	struct run_state st;
	assert_true(journal_replay(journal_dir(j), &st, &err));
	assert_false(st.torn);
	/* run_started + 7 events; the progress event is not journaled. */
	assert_int_equal(st.nrecords, 8);
	for (size_t i = 0; i < st.nrecords; i++) {
		assert_int_equal(st.records[i].seq, (long)i + 1);
		assert_int_not_equal(st.records[i].type, EV_PROGRESS);
	}
	assert_int_equal(st.records[3].type, EV_LOG);
	assert_int_equal(st.records[3].level, LOG_LEVEL_WARN);
	assert_string_equal(st.records[6].stage, "launch_rockets");
	assert_int_equal(st.stages[PLAN_STAGE_PREFLIGHT].status, STAGE_DONE);
	assert_string_equal(st.stages[PLAN_STAGE_PREFLIGHT].message, "nothing blocks the release");
	assert_non_null(st.stages[PLAN_STAGE_PREFLIGHT].started);
	assert_non_null(st.stages[PLAN_STAGE_PREFLIGHT].finished);
	json_t *r = st.stages[PLAN_STAGE_PREFLIGHT].result;
	assert_non_null(r);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(
		json_object_get(r, "environments"), 0), "ntables")), 12);
	assert_int_equal(st.stages[PLAN_STAGE_BACKUP].status, STAGE_FAILED);
	assert_int_equal(st.stages[PLAN_STAGE_MIGRATE].status, STAGE_PENDING);
	assert_string_equal(st.last_stage, "backup");
	assert_string_equal(st.state, "failed");
	assert_null(st.finished);
	run_state_free(&st);

	/* A retry of the failed stage makes the run running again; run_finished ends it. */
	events_emitf(bus, EV_STAGE_STARTED, "backup", NULL, "retry");
	assert_true(journal_replay(journal_dir(j), &st, &err));
	assert_string_equal(st.state, "running");
	assert_int_equal(st.stages[PLAN_STAGE_BACKUP].status, STAGE_RUNNING);
	assert_null(st.stages[PLAN_STAGE_BACKUP].message);
	run_state_free(&st);

	json_t *fin = json_pack("{s:s}", "state", "aborted");
	events_emitf(bus, EV_RUN_FINISHED, NULL, fin, "stopped by the operator");
	json_decref(fin);
	assert_true(journal_replay(journal_dir(j), &st, &err));
	assert_string_equal(st.state, "aborted");
	assert_non_null(st.finished);
	run_state_free(&st);

	events_free(bus);
	journal_close(j);
}

/* Applies a damage to a 6-record run and checks what replay and journal_open say. */
static void
check_damage(struct fixture *f, void (*damage)(struct strlist *), long want_line,
             const char *want_text, size_t want_records)
{
	char *dir = make_run(f, 6);
	struct strlist lines = {0};
	read_lines(dir, &lines);
	assert_int_equal(lines.len, 6);
	damage(&lines);
	write_lines(dir, &lines);
	strlist_free(&lines);

	struct rb_error err = {0};
	struct run_state st;
	assert_true(journal_replay(dir, &st, &err));
	assert_true(st.torn);
	assert_string_equal(st.state, "corrupt");
	assert_int_equal(st.torn_line, want_line);
	char *prefix = xasprintf("line %ld: ", want_line);
	assert_true(strncmp(st.torn_message, prefix, strlen(prefix)) == 0);
	if (strstr(st.torn_message, want_text) == NULL)
		fail_msg("\"%s\" does not contain \"%s\"", st.torn_message, want_text);
	assert_int_equal(st.nrecords, want_records);
	free(prefix);

	/* The report says so prominently. */
	char *md = report_markdown(&st, NULL);
	assert_non_null(strstr(md, "WARNING: the journal of this run is damaged"));
	assert_non_null(strstr(md, st.torn_message));
	free(md);
	run_state_free(&st);

	/* Resuming refuses a damaged journal. */
	struct journal *j = journal_open(NULL, dir, &f->plan, &err);
	assert_null(j);
	assert_non_null(strstr(err.message, "is damaged"));
	assert_non_null(strstr(err.detail, want_text));
	assert_int_equal(err.code, RB_EXIT_STEP);
	rb_error_clear(&err);
	free(dir);
}

static void
dmg_truncate_last(struct strlist *l)
{
	char *last = l->items[5];
	last[strlen(last) - 10] = '\0';  /* cut mid-record, newline gone */
}

static void
dmg_flip_byte(struct strlist *l)
{
	/* Line 3 holds "msg-3": alter the message text, keeping valid JSON. */
	char *m = strstr(l->items[2], "msg-3");
	assert_non_null(m);
	m[4] = '7';
}

static void
dmg_flip_structure(struct strlist *l)
{
	/* A byte flipped in JSON syntax. */
	char *m = strstr(l->items[3], "\"type\"");
	assert_non_null(m);
	m[0] ^= 0x01;
}

static void
dmg_delete_middle(struct strlist *l)
{
	free(l->items[2]);
	memmove(&l->items[2], &l->items[3], 3 * sizeof(char *));
	l->len--;
}

static void
dmg_swap(struct strlist *l)
{
	char *t = l->items[3];
	l->items[3] = l->items[4];
	l->items[4] = t;
}

static void
dmg_renumber_deleted(struct strlist *l)
{
	/* Delete line 3 and renumber line 4 so seq looks right: the chain still breaks. */
	dmg_delete_middle(l);
	char *s = strstr(l->items[2], "\"seq\":4");
	assert_non_null(s);
	s[6] = '3';
}

static void
test_truncated_last_line(void **state)
{
	check_damage(*state, dmg_truncate_last, 6, "incomplete last record (no newline)", 5);
}

static void
test_flipped_byte(void **state)
{
	check_damage(*state, dmg_flip_byte, 3, "checksum mismatch", 2);
}

static void
test_flipped_syntax(void **state)
{
	check_damage(*state, dmg_flip_structure, 4, "not valid JSON", 3);
}

static void
test_deleted_record(void **state)
{
	check_damage(*state, dmg_delete_middle, 3, "out of sequence", 2);
}

static void
test_swapped_records(void **state)
{
	check_damage(*state, dmg_swap, 4, "out of sequence", 3);
}

static void
test_renumbered_deletion(void **state)
{
	check_damage(*state, dmg_renumber_deleted, 3, "checksum mismatch", 2);
}

/*
 * A record copied from another run is valid on its own (same seq, its own checksum right for
 * its own predecessor); only the hash chain tells that it does not belong here.
 */
static void
test_spliced_record(void **state)
{
	struct fixture *f = *state;
	char *d1 = make_run(f, 6);
	char *d2 = make_run(f, 6);
	struct strlist l1 = {0}, l2 = {0};
	read_lines(d1, &l1);
	read_lines(d2, &l2);
	assert_string_not_equal(l1.items[3], l2.items[3]);
	free(l1.items[3]);
	l1.items[3] = xstrdup(l2.items[3]);
	write_lines(d1, &l1);
	strlist_free(&l1);
	strlist_free(&l2);

	struct rb_error err = {0};
	struct run_state st;
	assert_true(journal_replay(d1, &st, &err));
	assert_true(st.torn);
	assert_int_equal(st.torn_line, 4);
	assert_string_equal(st.torn_message,
	                    "line 4: checksum mismatch (record altered or written partially)");
	assert_int_equal(st.nrecords, 3);
	run_state_free(&st);
	free(d1);
	free(d2);
}

static void
test_empty_and_missing_journal(void **state)
{
	struct fixture *f = *state;
	char *dir = make_run(f, 1);
	char *jp = journal_path(dir);
	assert_int_equal(truncate(jp, 0), 0);
	struct rb_error err = {0};
	struct run_state st;
	assert_true(journal_replay(dir, &st, &err));
	assert_true(st.torn);
	assert_int_equal(st.torn_line, 1);
	assert_non_null(strstr(st.torn_message, "empty"));
	run_state_free(&st);

	assert_int_equal(unlink(jp), 0);
	assert_false(journal_replay(dir, &st, &err));
	assert_non_null(strstr(err.message, "could not read journal"));
	rb_error_clear(&err);
	run_state_free(&st);
	free(jp);
	free(dir);
}

static void
test_lock_and_resume(void **state)
{
	struct fixture *f = *state;
	struct rb_error err = {0};
	struct journal *j = journal_create(NULL, &f->plan, &err);
	assert_non_null(j);
	char *id = xstrdup(journal_run_id(j));

	/* A second writer is refused while the first has the run open. */
	struct journal *j2 = journal_open(NULL, id, &f->plan, &err);
	assert_null(j2);
	char *want = xasprintf("run %s is in use by another pgrunbook process (pid %ld)", id,
	                       (long)getpid());
	assert_string_equal(err.message, want);
	assert_int_equal(err.code, RB_EXIT_STEP);
	rb_error_clear(&err);
	free(want);
	assert_true(journal_append(j, EV_STAGE_STARTED, "preflight", NULL, NULL, &err));
	journal_close(j);

	/* Once closed, it can be resumed by a unique prefix; the chain continues. */
	char prefix[21];
	memcpy(prefix, id, 20);
	prefix[20] = '\0';
	j = journal_open(NULL, prefix, &f->plan, &err);
	if (j == NULL)
		fail_msg("%s", err.message);
	assert_string_equal(journal_run_id(j), id);
	assert_true(journal_append(j, EV_STAGE_DONE, "preflight", "ok", NULL, &err));
	j2 = journal_open(NULL, id, &f->plan, &err);
	assert_null(j2);
	assert_non_null(strstr(err.message, "in use by another pgrunbook process"));
	rb_error_clear(&err);
	journal_close(j);

	struct run_state st;
	char *dir = xasprintf("%s/%s", f->runs, id);
	assert_true(journal_replay(dir, &st, &err));
	assert_false(st.torn);
	assert_int_equal(st.nrecords, 3);
	assert_int_equal(st.records[2].seq, 3);
	assert_int_equal(st.stages[PLAN_STAGE_PREFLIGHT].status, STAGE_DONE);
	run_state_free(&st);
	free(dir);
	free(id);
}

static void
test_plan_hash_mismatch(void **state)
{
	struct fixture *f = *state;
	char *dir = make_run(f, 2);
	struct plan changed = f->plan;
	sha256_hex("plan v2", 7, changed.hash);
	struct rb_error err = {0};
	struct journal *j = journal_open(NULL, dir, &changed, &err);
	assert_null(j);
	assert_string_equal(err.message, "the plan changed since the run started");
	assert_int_equal(err.code, RB_EXIT_STEP);
	rb_error_clear(&err);
	j = journal_open(NULL, dir, &f->plan, &err);
	assert_non_null(j);
	journal_close(j);
	free(dir);
}

struct appender {
	struct journal *j;
	const char     *stage;
	int             failures;
};

#define APPENDS 100

static void *
append_many(void *arg)
{
	struct appender *a = arg;
	for (int i = 0; i < APPENDS; i++) {
		struct rb_error err = {0};
		if (!journal_append(a->j, EV_LOG, a->stage, "tick", NULL, &err))
			a->failures++;
		rb_error_clear(&err);
	}
	return NULL;
}

static void
test_concurrent_appends(void **state)
{
	struct fixture *f = *state;
	struct rb_error err = {0};
	struct journal *j = journal_create(NULL, &f->plan, &err);
	assert_non_null(j);
	struct appender a = { j, "sync", 0 }, b = { j, "verify", 0 };
	pthread_t ta, tb;
	assert_int_equal(pthread_create(&ta, NULL, append_many, &a), 0);
	assert_int_equal(pthread_create(&tb, NULL, append_many, &b), 0);
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	assert_int_equal(a.failures + b.failures, 0);
	struct run_state st;
	assert_true(journal_replay(journal_dir(j), &st, &err));
	assert_false(st.torn);
	assert_int_equal(st.nrecords, 1 + 2 * APPENDS);
	run_state_free(&st);
	journal_close(j);
}

/* A write failing half-way (file size limit) is cut off again and reported by journal_failed. */
static void
test_failed_write_is_reported(void **state)
{
	struct fixture *f = *state;
	struct rb_error err = {0};
	struct journal *j = journal_create(NULL, &f->plan, &err);
	assert_non_null(j);
	struct events *bus = events_new();
	journal_attach(j, bus);
	char *jp = journal_path(journal_dir(j));
	struct stat sb;
	assert_int_equal(stat(jp, &sb), 0);

	struct rlimit old, lim;
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	void (*oldsig)(int) = signal(SIGXFSZ, SIG_IGN);
	lim = old;
	lim.rlim_cur = (rlim_t)sb.st_size + 100;
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
	char big[400];
	memset(big, 'x', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	events_log(bus, LOG_LEVEL_INFO, NULL, "%s", big);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	signal(SIGXFSZ, oldsig);

	assert_true(journal_failed(j, &err));
	assert_non_null(strstr(err.message, "could not write to journal"));
	rb_error_clear(&err);
	assert_true(journal_failed(j, NULL));

	/* The partial line was removed: the journal is still valid... */
	struct stat sb2;
	assert_int_equal(stat(jp, &sb2), 0);
	assert_int_equal(sb2.st_size, sb.st_size);
	/* ...but refuses every later append, which would hide the lost record behind its seq. */
	assert_false(journal_append(j, EV_STAGE_STARTED, "preflight", NULL, NULL, &err));
	assert_non_null(strstr(err.message, "cannot be appended to after a failed write"));
	rb_error_clear(&err);
	events_emitf(bus, EV_STAGE_DONE, "preflight", NULL, "later");
	assert_int_equal(stat(jp, &sb2), 0);
	assert_int_equal(sb2.st_size, sb.st_size);
	/* journal_failed still reports the first failure, the write. */
	assert_true(journal_failed(j, &err));
	assert_non_null(strstr(err.message, "could not write to journal"));
	rb_error_clear(&err);
	struct run_state st;
	assert_true(journal_replay(journal_dir(j), &st, &err));
	assert_false(st.torn);
	assert_int_equal(st.nrecords, 1);
	run_state_free(&st);
	events_free(bus);
	journal_close(j);
	free(jp);
}

/* Replays dir, expecting damage whose message contains want at want_line; open refuses. */
static void
expect_torn(struct fixture *f, const char *dir, long want_line, const char *want,
            size_t want_records)
{
	struct rb_error err = {0};
	struct run_state st;
	assert_true(journal_replay(dir, &st, &err));
	if (!st.torn)
		fail_msg("replay of %s is not torn", dir);
	assert_string_equal(st.state, "corrupt");
	if (strstr(st.torn_message, want) == NULL)
		fail_msg("\"%s\" does not contain \"%s\"", st.torn_message, want);
	assert_int_equal(st.torn_line, want_line);
	assert_int_equal(st.nrecords, want_records);
	run_state_free(&st);
	struct journal *j = journal_open(NULL, dir, &f->plan, &err);
	assert_null(j);
	assert_non_null(strstr(err.message, "is damaged"));
	assert_non_null(strstr(err.detail, want));
	rb_error_clear(&err);
}

static void
drop_last_lines(const char *dir, size_t n)
{
	struct strlist lines = {0};
	read_lines(dir, &lines);
	assert_true(lines.len > n);
	for (size_t i = 0; i < n; i++)
		free(lines.items[--lines.len]);
	write_lines(dir, &lines);
	strlist_free(&lines);
}

/* Whole records cut off the end are caught by journal.head. */
static void
test_cut_at_record_boundary(void **state)
{
	struct fixture *f = *state;
	char *dir = make_run(f, 6);
	char *hp = xasprintf("%s/journal.head", dir);
	assert_int_equal(mode_of(hp), 0600);
	free(hp);
	drop_last_lines(dir, 1);
	expect_torn(f, dir, 6, "line 6: journal ends at record 5 but record 6 was acknowledged: "
	            "records were removed", 5);
	drop_last_lines(dir, 3);
	expect_torn(f, dir, 3, "journal ends at record 2 but record 6 was acknowledged", 2);
	free(dir);
}

/* A journal replaced by another run's (valid chain, same length) differs from the head. */
static void
test_replaced_journal(void **state)
{
	struct fixture *f = *state;
	char *d1 = make_run(f, 6);
	char *d2 = make_run(f, 6);
	struct strlist l2 = {0};
	read_lines(d2, &l2);
	write_lines(d1, &l2);
	strlist_free(&l2);
	expect_torn(f, d1, 6, "record 6 is not the one acknowledged in journal.head", 6);
	free(d1);
	free(d2);
}

static void
test_missing_head(void **state)
{
	struct fixture *f = *state;
	char *dir = make_run(f, 3);
	char *hp = xasprintf("%s/journal.head", dir);
	assert_int_equal(unlink(hp), 0);
	expect_torn(f, dir, 4, "journal.head is missing", 3);
	free(hp);
	free(dir);
}

/* Copies journal.head of dir into a buffer (HEAD is tiny). */
static char *
save_head(const char *dir, size_t *len)
{
	char *hp = xasprintf("%s/journal.head", dir);
	char *buf = file_read_all(hp, len);
	assert_non_null(buf);
	free(hp);
	return buf;
}

static void
restore_head(const char *dir, const char *buf, size_t len)
{
	char *hp = xasprintf("%s/journal.head", dir);
	FILE *fp = fopen(hp, "w");
	assert_non_null(fp);
	assert_int_equal(fwrite(buf, 1, len, fp), len);
	assert_int_equal(fclose(fp), 0);
	free(hp);
}

/* A crash between the record and the head leaves the head one behind: that is normal. */
static void
test_head_one_behind(void **state)
{
	struct fixture *f = *state;
	struct rb_error err = {0};
	struct journal *j = journal_create(NULL, &f->plan, &err);
	assert_non_null(j);
	char *dir = xstrdup(journal_dir(j));
	assert_true(journal_append(j, EV_LOG, NULL, "two", NULL, &err));
	size_t l3 = 0, l4 = 0;
	char *h2 = save_head(dir, &l3);
	assert_true(journal_append(j, EV_LOG, NULL, "three", NULL, &err));
	char *h3 = save_head(dir, &l4);
	assert_true(journal_append(j, EV_LOG, NULL, "four", NULL, &err));
	journal_close(j);

	restore_head(dir, h3, l4);  /* head at 3, journal at 4 */
	struct run_state st;
	assert_true(journal_replay(dir, &st, &err));
	if (st.torn)
		fail_msg("%s", st.torn_message);
	assert_int_equal(st.nrecords, 4);
	run_state_free(&st);
	/* Resuming works and the next append brings the head up to date. */
	j = journal_open(NULL, dir, &f->plan, &err);
	if (j == NULL)
		fail_msg("%s", err.message);
	assert_true(journal_append(j, EV_LOG, NULL, "five", NULL, &err));
	journal_close(j);
	drop_last_lines(dir, 1);
	expect_torn(f, dir, 5, "journal ends at record 4 but record 5 was acknowledged", 4);

	/* Two behind is not a crash between two writes. */
	free(h3);
	h3 = NULL;
	restore_head(dir, h2, l3);  /* head at 2, journal at 4 */
	expect_torn(f, dir, 5, "journal.head acknowledges record 2 but the journal holds 4", 4);
	free(h2);
	free(dir);
}

/* A finished run is not reopened. */
static void
test_open_finished(void **state)
{
	struct fixture *f = *state;
	struct rb_error err = {0};
	struct journal *j = journal_create(NULL, &f->plan, &err);
	assert_non_null(j);
	char *id = xstrdup(journal_run_id(j));
	json_t *fin = json_pack("{s:s}", "state", "done");
	assert_true(journal_append(j, EV_RUN_FINISHED, NULL, NULL, fin, &err));
	json_decref(fin);
	journal_close(j);
	j = journal_open(NULL, id, &f->plan, &err);
	assert_null(j);
	char *want = xasprintf("run %s is finished; start a new run", id);
	assert_string_equal(err.message, want);
	assert_int_equal(err.code, RB_EXIT_STEP);
	rb_error_clear(&err);
	free(want);
	free(id);
}

/* A run whose first record cannot be written leaves no directory behind. */
static void
test_failed_create_cleans_up(void **state)
{
	struct fixture *f = *state;
	assert_true(mkdir_p(f->runs, 0700));
	struct rlimit old, lim;
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	void (*oldsig)(int) = signal(SIGXFSZ, SIG_IGN);
	lim = old;
	lim.rlim_cur = 40;  /* owner.pid fits, the run_started record does not */
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
	struct rb_error err = {0};
	struct journal *j = journal_create(NULL, &f->plan, &err);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	signal(SIGXFSZ, oldsig);
	assert_null(j);
	assert_non_null(strstr(err.message, "could not write to journal"));
	rb_error_clear(&err);

	struct run_state *runs = NULL;
	size_t n = 99;
	assert_true(journal_list_runs(NULL, &runs, &n, &err));
	assert_int_equal(n, 0);
	free(runs);
}

/* An incomplete last line while the writer holds the run is a write in progress. */
static void
test_partial_tail_in_use(void **state)
{
	struct fixture *f = *state;
	struct rb_error err = {0};
	struct journal *j = journal_create(NULL, &f->plan, &err);
	assert_non_null(j);
	char *dir = xstrdup(journal_dir(j));
	char *jp = journal_path(dir);
	FILE *fp = fopen(jp, "a");
	assert_non_null(fp);
	fputs("{\"checksum\":\"00", fp);
	assert_int_equal(fclose(fp), 0);
	struct run_state st;
	assert_true(journal_replay(dir, &st, &err));
	assert_true(st.in_use);
	assert_false(st.torn);
	assert_string_equal(st.state, "running");
	run_state_free(&st);
	journal_close(j);
	assert_true(journal_replay(dir, &st, &err));
	assert_false(st.in_use);
	assert_true(st.torn);
	assert_non_null(strstr(st.torn_message, "incomplete last record"));
	run_state_free(&st);
	free(jp);
	free(dir);
}

static void
test_list_and_find(void **state)
{
	struct fixture *f = *state;
	struct rb_error err = {0};
	struct run_state *runs = NULL;
	size_t n = 99;
	/* Missing directory: no runs, no error. */
	assert_true(journal_list_runs(NULL, &runs, &n, &err));
	assert_int_equal(n, 0);
	free(runs);

	char *d1 = make_run(f, 2);
	char *d2 = make_run(f, 3);
	char *d3 = make_run(f, 1);
	char *junk = xasprintf("%s/00000000T000000Z-broken", f->runs);
	assert_int_equal(mkdir(junk, 0700), 0);

	assert_true(journal_list_runs(NULL, &runs, &n, &err));
	assert_int_equal(n, 4);
	for (size_t i = 1; i < n; i++)
		assert_true(strcmp(runs[i - 1].id, runs[i].id) > 0);
	/* The broken directory sorts last and is listed as corrupt, not dropped. */
	assert_string_equal(runs[3].id, "00000000T000000Z-broken");
	assert_string_equal(runs[3].state, "corrupt");
	assert_true(runs[3].torn);
	assert_non_null(strstr(runs[3].torn_message, "could not read journal"));
	for (size_t i = 0; i < 3; i++) {
		assert_string_equal(runs[i].state, "running");
		assert_string_equal(runs[i].plan_name, f->plan.name);
	}
	for (size_t i = 0; i < n; i++)
		run_state_free(&runs[i]);
	free(runs);

	/* Exact id, path, unique prefix, ambiguous prefix, unknown. */
	const char *id2 = strrchr(d2, '/') + 1;
	char *got = journal_find_run(NULL, id2, &err);
	assert_string_equal(got, d2);
	free(got);
	got = journal_find_run(NULL, d1, &err);
	assert_string_equal(got, d1);
	free(got);
	got = journal_find_run(f->runs, "0000", &err);
	assert_string_equal(got, junk);
	free(got);
	got = journal_find_run(NULL, "2", &err);
	assert_null(got);
	assert_non_null(strstr(err.message, "ambiguous"));
	assert_non_null(strstr(err.detail, strrchr(d1, '/') + 1));
	assert_non_null(strstr(err.detail, strrchr(d3, '/') + 1));
	assert_int_equal(err.code, RB_EXIT_STEP);
	rb_error_clear(&err);
	got = journal_find_run(NULL, "1999", &err);
	assert_null(got);
	assert_string_equal(err.message, "run \"1999\" not found");
	assert_int_equal(err.code, RB_EXIT_STEP);
	rb_error_clear(&err);
	got = journal_find_run(NULL, "./nowhere", &err);
	assert_null(got);
	assert_int_equal(err.code, RB_EXIT_STEP);
	rb_error_clear(&err);

	free(d1);
	free(d2);
	free(d3);
	free(junk);
}

static void
test_report(void **state)
{
	struct fixture *f = *state;
	struct rb_error err = {0};
	struct journal *j = journal_create(NULL, &f->plan, &err);
	assert_non_null(j);
	struct events *bus = events_new();
	journal_attach(j, bus);
	json_t *pre = json_loads(
		"{\"blocked\":true,\"environments\":["
		"{\"name\":\"prod\",\"roles\":[\"target\"],\"reachable\":true,"
		"\"where\":\"/tmp/sock:5432\",\"server_version\":\"15.8\",\"current_user\":\"rb\","
		"\"superuser\":true,\"db_size_bytes\":52428800,\"ntables\":12,\"prisma_table\":true,"
		"\"prisma_applied\":7,\"prisma_failed\":1,\"lock_held\":true,\"lock_pid\":4242,"
		"\"lock_application\":\"prisma\",\"sessions_total\":9,\"sessions_active\":2,"
		"\"standby\":false,\"blockers\":[\"a failed migration: 20261101_add_phone\"]},"
		"{\"name\":\"dev\",\"roles\":[\"source\"],\"reachable\":false,\"blockers\":[]}]}",
		0, NULL);
	assert_non_null(pre);
	events_emitf(bus, EV_STAGE_STARTED, "preflight", NULL, NULL);
	events_emitf(bus, EV_STAGE_RESULT, "preflight", pre, NULL);
	events_emitf(bus, EV_STAGE_FAILED, "preflight", NULL, "2 blockers | see\nabove");
	json_decref(pre);
	json_t *vr = json_loads("{\"checks\":[{\"name\":\"no orphans\",\"value\":\"0\"}],"
	                        "\"tables_checked\":4}", 0, NULL);
	events_emitf(bus, EV_STAGE_RESULT, "verify", vr, NULL);
	json_decref(vr);
	events_emitf(bus, EV_CONFIRM_NEEDED, "migrate", NULL, "type \"deploy shop_prod\"");
	events_emitf(bus, EV_CONFIRM_MISS, "migrate", NULL, "typed \"deploy shop_dev\"");
	events_emitf(bus, EV_CHECKLIST_TICK, "preflight", NULL, "Users told about the window");
	events_log(bus, LOG_LEVEL_ERROR, "migrate", "lock timeout on \"Order\"");
	events_log(bus, LOG_LEVEL_INFO, "migrate", "just chatter");
	events_free(bus);

	struct run_state st;
	assert_true(journal_replay(journal_dir(j), &st, &err));
	char *md = report_markdown(&st, NULL);
	journal_close(j);
	assert_true(strncmp(md, "# Run report: shop release 2026-11\n", 35) == 0);
	assert_null(strstr(md, "WARNING"));
	char *want = xasprintf("| Run | `%s` |", st.id);
	assert_non_null(strstr(md, want));
	free(want);
	assert_non_null(strstr(md, "| State | **failed** |"));
	/* The stage table, with | and newlines escaped in the cell. */
	assert_non_null(strstr(md, "| preflight | **failed** | "));
	assert_non_null(strstr(md, "| 2 blockers \\| see<br>above |"));
	assert_non_null(strstr(md, "| migrate | pending | - | - | - | - |  |"));
	/* The preflight result as a readable table. */
	assert_non_null(strstr(md, "**Release blocked: yes**"));
	assert_non_null(strstr(md, "| prod | target | yes | /tmp/sock:5432 | 15.8 | rb (superuser) "
	                           "| 50.0 MB | 12 | 7 applied, **1 failed** | **held** by pid 4242 "
	                           "(prisma) | 9 (2 active) | no |"));
	assert_non_null(strstr(md, "| dev | source | **no** | - |"));
	assert_non_null(strstr(md, "- **prod**: a failed migration: 20261101_add_phone"));
	/* A generic result: bullets plus a table for an array of objects. */
	assert_non_null(strstr(md, "### verify\n\n- **tables_checked**: 4\n"));
	assert_non_null(strstr(md, "| name | value |\n|---|---|\n| no orphans | 0 |"));
	/* Confirmations, checklist, problems. */
	assert_non_null(strstr(md, "## Confirmations"));
	assert_non_null(strstr(md, "| **did not match: refused** | typed \"deploy shop_dev\" |"));
	assert_non_null(strstr(md, "| Time | Stage | Who | Outcome | Message |"));
	assert_non_null(strstr(md, "- [x] Users told about the window (preflight, "));
	assert_non_null(strstr(md, "| migrate | **error** | lock timeout on \"Order\" |"));
	char *problems = strstr(md, "## Warnings and errors");
	assert_non_null(problems);
	char *timeline = strstr(md, "## Timeline");
	assert_non_null(timeline);
	/* Info chatter is in the timeline but not among the problems. */
	char *chatter = strstr(md, "just chatter");
	assert_non_null(chatter);
	assert_true(chatter > timeline);
	free(md);
	run_state_free(&st);
}

/* The result exactly as core/preflight.c emits it renders as a readable table. */
static void
test_report_real_preflight(void **state)
{
	struct fixture *f = *state;
	struct preflight_result pr = {0};
	pr.nenvs = 2;
	pr.envs = xcalloc(2, sizeof(*pr.envs));
	pr.any_blocker = true;
	pr.any_unreachable = true;
	struct preflight_env *e = &pr.envs[0];
	e->name = xstrdup("prod");
	e->roles = xstrdup("target");
	e->reachable = true;
	e->where = xstrdup("/run/pg:5432/shop_prod");
	e->server_version = xstrdup("15.8");
	e->server_version_num = 150008;
	e->current_user = xstrdup("deploy");
	e->db_size_bytes = 3 * 1024 * 1024;
	e->ntables = 14;
	e->prisma_schema = xstrdup("public");
	e->prisma_table = true;
	e->prisma_applied = 5;
	e->prisma_failed = 1;
	strlist_push(&e->failed_migrations, "20261101_add_phone");
	e->lock_held = true;
	e->lock_pid = 777;
	e->lock_application = xstrdup("prisma|migrate");
	e->sessions_total = 4;
	e->sessions_active = 1;
	strlist_push(&e->blockers, "the Prisma lock is held by pid 777");
	strlist_push(&e->warnings, "connected as a non-superuser");
	e = &pr.envs[1];
	e->name = xstrdup("dev");
	e->roles = xstrdup("source");
	e->error = xstrdup("connection refused");
	json_t *data = preflight_to_json(&pr);
	preflight_result_free(&pr);

	struct rb_error err = {0};
	struct journal *j = journal_create(NULL, &f->plan, &err);
	assert_non_null(j);
	assert_true(journal_append(j, EV_STAGE_RESULT, "preflight", NULL, data, &err));
	json_decref(data);
	struct run_state st;
	assert_true(journal_replay(journal_dir(j), &st, &err));
	journal_close(j);
	char *md = report_markdown(&st, NULL);
	run_state_free(&st);
	const char *want[] = {
		"**Release blocked: yes**",
		"| prod | target | yes | /run/pg:5432/shop_prod | 15.8 | deploy | 3.0 MB | 14 | 5 applied, "
		"**1 failed** (20261101_add_phone) | **held** by pid 777 (prisma\\|migrate) "
		"| 4 (1 active) | no |",
		"| dev | source | **no** | - | - | - | - | - | - | - | - | - |",
		"Errors:\n\n- **dev**: connection refused\n",
		"Blockers:\n\n- **prod**: the Prisma lock is held by pid 777\n",
		"Warnings:\n\n- **prod**: connected as a non-superuser\n",
		"- **unreachable**: yes\n",
	};
	for (size_t i = 0; i < RB_ARRAY_LEN(want); i++)
		if (strstr(md, want[i]) == NULL)
			fail_msg("report lacks \"%s\":\n%s", want[i], md);
	/* No raw JSON objects leak into the table. */
	assert_null(strstr(md, "{\""));
	free(md);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_runs_dir, setup, teardown),
		cmocka_unit_test_setup_teardown(test_create_modes_and_id, setup, teardown),
		cmocka_unit_test_setup_teardown(test_replay_state, setup, teardown),
		cmocka_unit_test_setup_teardown(test_truncated_last_line, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flipped_byte, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flipped_syntax, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deleted_record, setup, teardown),
		cmocka_unit_test_setup_teardown(test_swapped_records, setup, teardown),
		cmocka_unit_test_setup_teardown(test_renumbered_deletion, setup, teardown),
		cmocka_unit_test_setup_teardown(test_spliced_record, setup, teardown),
		cmocka_unit_test_setup_teardown(test_empty_and_missing_journal, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lock_and_resume, setup, teardown),
		cmocka_unit_test_setup_teardown(test_plan_hash_mismatch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_appends, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failed_write_is_reported, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cut_at_record_boundary, setup, teardown),
		cmocka_unit_test_setup_teardown(test_replaced_journal, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_head, setup, teardown),
		cmocka_unit_test_setup_teardown(test_head_one_behind, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_finished, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failed_create_cleans_up, setup, teardown),
		cmocka_unit_test_setup_teardown(test_partial_tail_in_use, setup, teardown),
		cmocka_unit_test_setup_teardown(test_list_and_find, setup, teardown),
		cmocka_unit_test_setup_teardown(test_report, setup, teardown),
		cmocka_unit_test_setup_teardown(test_report_real_preflight, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
