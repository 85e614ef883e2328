/* test_plan.c: unit tests for core/plan.c: durations, defaults, globs, hashing, the bad-plan corpus. */
#include "config.h"

#include <dirent.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "core/error.h"
#include "core/plan.h"
#include "core/util.h"

static char tmpdir[PATH_MAX];

static const char *
srcdir(void)
{
	const char *s = getenv("top_srcdir");
	return s && *s ? s : ".";
}

static char *
fixture(const char *rel)
{
	return xasprintf("%s/tests/plans/%s", srcdir(), rel);
}

/* Writes text to a file in the test's temporary directory; returns its path (caller frees). */
static char *
write_tmp(const char *name, const char *text)
{
	char *path = xasprintf("%s/%s", tmpdir, name);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	return path;
}

/* Loads a plan that must be valid; fails the test with its diagnostics otherwise. */
static struct plan *
load_ok(const char *path)
{
	struct plan_diags d = {0};
	struct rb_error err = {0};
	struct plan *p = plan_load(path, &d, &err);
	if (p == NULL) {
		for (size_t i = 0; i < d.len; i++)
			print_error("%s\n", d.items[i].message);
		print_error("%s\n", err.message ? err.message : "(no message)");
	}
	assert_non_null(p);
	assert_int_equal(d.len, 0);
	assert_null(err.message);
	plan_diags_free(&d);
	return p;
}

static struct plan *
load_text_ok(const char *text)
{
	char *path = write_tmp("plan.yaml", text);
	struct plan *p = load_ok(path);
	free(path);
	return p;
}

/* Loads text that must be invalid; returns all messages joined by newlines (caller frees). */
static char *
load_text_bad(const char *text)
{
	char *path = write_tmp("bad.yaml", text);
	struct plan_diags d = {0};
	struct rb_error err = {0};
	struct plan *p = plan_load(path, &d, &err);
	assert_null(p);
	assert_int_equal(err.code, RB_EXIT_PLAN);
	assert_true(d.len > 0);
	struct strbuf sb = {0};
	for (size_t i = 0; i < d.len; i++) {
		strbuf_adds(&sb, d.items[i].message);
		strbuf_addc(&sb, '\n');
	}
	plan_diags_free(&d);
	rb_error_clear(&err);
	free(path);
	return strbuf_detach(&sb);
}

static int
setup(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof tmpdir, "%s/test_plan.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	assert_non_null(mkdtemp(tmpdir));
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	remove_tree(tmpdir);
	return 0;
}

/* ---------------------------------------------------------------- durations */

static void
test_durations_valid(void **state)
{
	(void)state;
	static const struct { const char *text; int64_t ms; } cases[] = {
		{ "500ms", 500 }, { "30s", 30000 }, { "15min", 900000 }, { "2h", 7200000 },
		{ "1h30min", 5400000 }, { "2d", 172800000 }, { "1d2h3min4s5ms", 93784005 },
		{ "0s", 0 }, { "90min", 5400000 }, { "1s500ms", 1500 },
	};
	for (size_t i = 0; i < RB_ARRAY_LEN(cases); i++) {
		int64_t ms = -1;
		if (!plan_parse_duration(cases[i].text, &ms))
			fail_msg("\"%s\" did not parse", cases[i].text);
		assert_int_equal(ms, cases[i].ms);
	}
}

static void
test_durations_invalid(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"", "30", "30m", "1h30m", "m", "s", "1h 30min", " 1h", "1h ", "30min1h", "1h1h", "1.5h",
		"-1s", "1H", "1sec", "5mins", "1hour", "10us", "99999999999999999d", "1000000000000000000ms",
		"min", "1e3s", "1h30", "ms30",
	};
	for (size_t i = 0; i < RB_ARRAY_LEN(bad); i++) {
		int64_t ms = 12345;
		if (plan_parse_duration(bad[i], &ms))
			fail_msg("\"%s\" parsed as %lld", bad[i], (long long)ms);
		assert_int_equal(ms, 12345);
	}
}

static void
test_duration_format(void **state)
{
	(void)state;
	static const struct { int64_t ms; const char *text; } cases[] = {
		{ 0, "0s" }, { 250, "250ms" }, { 2000, "2s" }, { 5400000, "1h30min" },
		{ 86400000, "1d" }, { 93784005, "1d2h3min4s5ms" }, { 900000, "15min" },
	};
	char buf[64];
	for (size_t i = 0; i < RB_ARRAY_LEN(cases); i++) {
		plan_format_duration(cases[i].ms, buf, sizeof buf);
		assert_string_equal(buf, cases[i].text);
		int64_t back = -1;
		assert_true(plan_parse_duration(buf, &back));
		assert_int_equal(back, cases[i].ms);
	}
}

static void
test_duration_messages(void **state)
{
	(void)state;
	char *msgs = load_text_bad("name: x\nenvironments: {p: {service: p}}\ntarget: p\n"
	                           "migrations: {dir: m, lock_timeout: 2m, statement_timeout: 15}\n");
	assert_non_null(strstr(msgs, "bad.yaml:4:36: migrations.lock_timeout: found the string \"2m\"; "
	                             "expected a duration such as 30s, 15min, 2h or 1h30min (use min for minutes)"));
	assert_non_null(strstr(msgs, "migrations.statement_timeout: found the number 15; expected a "
	                             "duration such as 30s, 15min, 2h or 1h30min (a number needs a unit"));
	free(msgs);
}

/* ---------------------------------------------------------------- defaults and lookups */

static void
test_defaults(void **state)
{
	(void)state;
	struct plan *p = load_text_ok(
		"name: defaults\n"
		"environments: {dev: {service: dev}, prod: {service: prod}}\n"
		"source: dev\ntarget: prod\n"
		"backup: {dir: ./b}\nmaintenance: {}\nmigrations: {dir: m}\nverify: {}\n"
		"sync:\n  tables:\n    Unit: {}\n    Ingredient: {mode: upsert}\n");
	assert_string_equal(p->name, "defaults");
	assert_null(p->description);
	assert_int_equal(p->backup.format, PLAN_BACKUP_CUSTOM);
	assert_int_equal(p->backup.jobs, 1);
	assert_int_equal(p->backup.max_age_ms, 24LL * 3600 * 1000);
	assert_true(p->maintenance.present);
	assert_true(p->maintenance.block_connections);
	assert_true(p->maintenance.read_only);
	assert_int_equal(p->maintenance.terminate_sessions, PLAN_TERMINATE_ASK);
	assert_null(p->maintenance.on_sql);
	assert_null(p->maintenance.pgbouncer_dsn_env);
	assert_int_equal(p->migrations.format, PLAN_MIGRATIONS_PRISMA);
	assert_string_equal(p->migrations.schema, "public");
	assert_int_equal(p->migrations.lock_timeout_ms, 2000);
	assert_int_equal(p->migrations.statement_timeout_ms, 15 * 60000);
	assert_int_equal(p->migrations.retries, 5);
	assert_int_equal(p->sync.default_mode, PLAN_MODE_SKIP);
	assert_int_equal(p->sync.default_on_conflict, PLAN_CONFLICT_PROD_WINS);
	assert_int_equal(p->sync.ntables, 2);
	assert_string_equal(p->sync.tables[0].name, "Unit");
	assert_int_equal(p->sync.tables[0].mode, PLAN_MODE_SKIP);
	assert_int_equal(p->sync.tables[0].key.len, 0);
	assert_false(p->sync.tables[0].delete_rows);
	assert_int_equal(p->sync.tables[1].mode, PLAN_MODE_UPSERT);
	assert_int_equal(p->sync.tables[1].on_conflict, PLAN_CONFLICT_PROD_WINS);
	assert_int_equal(p->verify.row_counts, PLAN_ROWCOUNT_SHRINK_FORBIDDEN);
	assert_true(p->verify.orphans);
	assert_int_equal(p->verify.nchecks, 0);
	assert_false(p->staging.present);
	for (int s = 0; s < PLAN_STAGE_COUNT; s++)
		assert_int_equal(p->budget_ms[s], 0);
	assert_true(plan_stage_enabled(p, PLAN_STAGE_PREFLIGHT));
	assert_true(plan_stage_enabled(p, PLAN_STAGE_MAINT_OFF));
	assert_false(plan_stage_enabled(p, PLAN_STAGE_STAGING));
	assert_true(plan_stage_enabled(p, PLAN_STAGE_REPORT));
	plan_free(p);

	/* Table settings fall back to sync.defaults, whatever order the keys come in. */
	p = load_text_ok("name: d\nenvironments: {dev: {service: dev}, prod: {service: prod}}\n"
	                 "source: dev\ntarget: prod\nsync:\n  tables: {T: {on_conflict: prod_wins}}\n"
	                 "  defaults: {mode: append, on_conflict: error_on_conflict}\n");
	assert_int_equal(p->sync.tables[0].mode, PLAN_MODE_APPEND);
	assert_int_equal(p->sync.tables[0].on_conflict, PLAN_CONFLICT_PROD_WINS);
	assert_false(plan_stage_enabled(p, PLAN_STAGE_BACKUP));
	plan_free(p);
}

static void
test_full_plan(void **state)
{
	(void)state;
	char *path = fixture("good/full.yaml");
	struct plan *p = load_ok(path);
	free(path);
	assert_string_equal(p->name, "shop release 2026-11");
	assert_int_equal(p->nenvs, 3);
	const struct plan_env *e = plan_env_find(p, "dev");
	assert_non_null(e);
	assert_int_equal(e->kind, PLAN_ENV_DSN_ENV);
	assert_string_equal(e->value, "DEV_DATABASE_URL");
	assert_int_equal(e->mark.line, 6);
	e = plan_env_find(p, "prod");
	assert_non_null(e);
	assert_int_equal(e->kind, PLAN_ENV_CONNINFO);
	assert_null(plan_env_find(p, "Prod"));
	assert_null(plan_env_find(p, "production"));
	assert_string_equal(p->source, "dev");
	assert_string_equal(p->target, "prod");
	assert_int_equal(p->backup.format, PLAN_BACKUP_DIRECTORY);
	assert_int_equal(p->backup.jobs, 4);
	assert_int_equal(p->backup.max_age_ms, 12 * 3600000LL);
	assert_false(p->maintenance.read_only);
	assert_int_equal(p->maintenance.terminate_sessions, PLAN_TERMINATE_NEVER);
	assert_string_equal(p->maintenance.pgbouncer_dsn_env, "PGBOUNCER_ADMIN_URL");
	assert_string_equal(p->maintenance.off_command, "./hooks/banner-off.sh");
	assert_int_equal(p->migrations.statement_timeout_ms, 5400000);
	assert_int_equal(p->migrations.retries, 8);
	assert_int_equal(p->verify.row_counts, PLAN_ROWCOUNT_TOLERANCE);
	assert_true(p->verify.tolerance_percent > 4.99 && p->verify.tolerance_percent < 5.01);
	assert_false(p->verify.orphans);
	assert_int_equal(p->verify.nchecks, 2);
	assert_string_equal(p->verify.checks[0].expect, "0");
	assert_string_equal(p->verify.checks[1].expect, "t");
	assert_int_equal(p->nnotify, 3);
	assert_int_equal(p->notify[0].format, PLAN_NOTIFY_SLACK);
	assert_int_equal(p->notify[0].events.len, 3);
	assert_int_equal(p->notify[2].format, PLAN_NOTIFY_GENERIC);
	assert_string_equal(p->notify[2].secret_env, "HOOK_SECRET");
	assert_int_equal(p->checklist_before.len, 2);
	assert_int_equal(p->budget_ms[PLAN_STAGE_MAINT_OFF], 60000);
	assert_int_equal(p->budget_total_ms, 9000000);
	assert_int_equal(strlen(p->hash), 64);

	char *backups = plan_path(p, p->backup.dir);
	char *want = xasprintf("%s/tests/plans/good/./backups", srcdir());
	assert_string_equal(backups, want);
	free(backups);
	free(want);
	char *abs = plan_path(p, "/var/backups");
	assert_string_equal(abs, "/var/backups");
	free(abs);

	/* The normalised JSON: sorted keys, durations in milliseconds, defaults filled. */
	char *text = plan_normalised_json(p);
	json_error_t jerr;
	json_t *j = json_loads(text, 0, &jerr);
	assert_non_null(j);
	char *again = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
	assert_string_equal(text, again);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "migrations"),
	                                                    "lock_timeout_ms")), 3000);
	json_t *ing = json_object_get(json_object_get(json_object_get(j, "sync"), "tables"), "Ingredient");
	assert_string_equal(json_string_value(json_object_get(ing, "on_conflict")), "local_wins");
	char hash[65];
	sha256_hex(text, strlen(text), hash);
	assert_string_equal(hash, p->hash);
	free(again);
	json_decref(j);
	free(text);
	plan_free(p);
}

static void
test_globs(void **state)
{
	(void)state;
	assert_true(plan_glob_matches("Order*", "Order", "public"));
	assert_true(plan_glob_matches("Order*", "OrderItem", "public"));
	assert_false(plan_glob_matches("Order*", "PurchaseOrder", "public"));
	assert_true(plan_glob_matches("Order*", "shop.OrderItem", "public"));
	assert_true(plan_glob_matches("public.Order*", "OrderItem", "public"));
	assert_false(plan_glob_matches("public.Order*", "OrderItem", "shop"));
	assert_true(plan_glob_matches("shop.*", "shop.Anything", "public"));
	assert_true(plan_glob_matches("StripeEvent", "StripeEvent", "public"));
	assert_false(plan_glob_matches("StripeEvent", "stripeevent", "public"));
	assert_true(plan_glob_matches("Notification?og", "NotificationLog", "public"));
	assert_true(plan_glob_matches("[UV]nit", "Unit", "public"));

	struct plan *p = load_text_ok(
		"name: g\nenvironments: {dev: {service: dev}, prod: {service: prod}}\nsource: dev\n"
		"target: prod\nsync:\n  protected: [\"Order*\", StripeEvent]\n  tables:\n"
		"    Order: {}\n    OrderItem: {mode: append}\n    Unit: {mode: append}\n"
		"    public.StripeEvent: {}\n");
	assert_true(p->sync.tables[0].protected_);
	assert_true(p->sync.tables[1].protected_);
	assert_false(p->sync.tables[2].protected_);
	assert_true(p->sync.tables[3].protected_);
	assert_true(plan_table_protected(p, "OrderLine"));
	assert_false(plan_table_protected(p, "Users"));
	plan_free(p);
}

/* ---------------------------------------------------------------- hashing */

static char *
hash_of_text(const char *text)
{
	struct plan *p = load_text_ok(text);
	char *h = xstrdup(p->hash);
	plan_free(p);
	return h;
}

static void
test_hash_stability(void **state)
{
	(void)state;
	char *a = fixture("good/full.yaml");
	char *b = fixture("good/full-reordered.yaml");
	struct plan *pa = load_ok(a), *pb = load_ok(b);
	assert_string_equal(pa->hash, pb->hash);
	char *ja = plan_normalised_json(pa), *jb = plan_normalised_json(pb);
	assert_string_equal(ja, jb);
	free(ja);
	free(jb);
	plan_free(pa);
	plan_free(pb);
	free(a);
	free(b);

	static const char base[] =
		"name: h\nenvironments:\n  dev: {service: dev}\n  prod: {service: prod}\n"
		"source: dev\ntarget: prod\nbackup: {dir: ./b}\n"
		"migrations: {dir: m, lock_timeout: 2s}\n"
		"sync:\n  tables:\n    Unit: {mode: append, key: [code]}\n";
	static const char same[] =
		"# comment\ntarget: \"prod\"   # where to\nsource: 'dev'\n"
		"migrations:\n  lock_timeout: 2000ms\n  dir: \"m\"\n  schema: public\n"
		"backup:\n  format: custom\n  dir: ./b\n"
		"sync:\n  tables:\n    Unit:\n      key:\n        - code\n      mode: append\n"
		"environments: {prod: {service: prod}, dev: {service: dev}}\nname: \"h\"\nversion: 1\n";
	char *h0 = hash_of_text(base);
	char *h1 = hash_of_text(same);
	assert_string_equal(h0, h1);
	free(h1);

	/* Every semantic change changes the hash. */
	static const struct { const char *from, *to; } changes[] = {
		{ "name: h", "name: h2" },
		{ "dev: {service: dev}", "dev: {service: dev2}" },
		{ "dev: {service: dev}", "dev: {dsn_env: dev}" },
		{ "{dir: ./b}", "{dir: ./b, jobs: 1, format: directory}" },
		{ "{dir: ./b}", "{dir: ./c}" },
		{ "{dir: ./b}", "{dir: ./b, max_age: 23h}" },
		{ "lock_timeout: 2s", "lock_timeout: 3s" },
		{ "lock_timeout: 2s", "lock_timeout: 2s, retries: 4" },
		{ "{mode: append, key: [code]}", "{mode: upsert, key: [code]}" },
		{ "{mode: append, key: [code]}", "{mode: append, key: [code, id]}" },
		{ "{mode: append, key: [code]}", "{mode: append, key: [code], delete: true}" },
		{ "{mode: append, key: [code]}", "{mode: append, key: [code], on_conflict: local_wins}" },
		{ "    Unit:", "    Units:" },
		{ "source: dev\ntarget: prod", "source: prod\ntarget: dev" },
		{ "sync:\n", "budgets: {backup: 1h}\nsync:\n" },
		{ "sync:\n", "verify: {}\nsync:\n" },
		{ "sync:\n", "checklist: {before: [x]}\nsync:\n" },
		{ "sync:\n", "notify: [{url_env: U}]\nsync:\n" },
		{ "sync:\n", "description: d\nsync:\n" },
		{ "sync:\n  tables:", "sync:\n  protected: [Unit]\n  tables:" },
	};
	for (size_t i = 0; i < RB_ARRAY_LEN(changes); i++) {
		const char *at = strstr(base, changes[i].from);
		assert_non_null(at);
		char *text = xasprintf("%.*s%s%s", (int)(at - base), base, changes[i].to,
		                       at + strlen(changes[i].from));
		char *h = hash_of_text(text);
		if (strcmp(h, h0) == 0)
			fail_msg("change %zu (%s -> %s) kept the hash", i, changes[i].from, changes[i].to);
		free(h);
		free(text);
	}
	free(h0);
}

/* ---------------------------------------------------------------- the bad-plan corpus */

static int
name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void
test_bad_corpus(void **state)
{
	(void)state;
	char *dir = fixture("bad");
	char cwd[PATH_MAX];
	assert_non_null(getcwd(cwd, sizeof cwd));
	assert_int_equal(chdir(dir), 0);

	DIR *d = opendir(".");
	assert_non_null(d);
	struct strlist names = {0};
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		size_t n = strlen(de->d_name);
		if (n > 5 && strcmp(de->d_name + n - 5, ".yaml") == 0)
			strlist_push(&names, de->d_name);
	}
	closedir(d);
	qsort(names.items, names.len, sizeof(*names.items), name_cmp);
	assert_true(names.len >= 35);

	for (size_t i = 0; i < names.len; i++) {
		const char *name = names.items[i];
		char *exp_path = xasprintf("%.*s.expected", (int)(strlen(name) - 5), name);
		char *expected = file_read_all(exp_path, NULL);
		if (expected == NULL)
			fail_msg("%s: missing %s", name, exp_path);

		struct plan_diags diags = {0};
		struct rb_error err = {0};
		struct plan *p = plan_load(name, &diags, &err);
		if (p != NULL)
			fail_msg("%s: loaded although it is invalid", name);
		assert_int_equal(err.code, RB_EXIT_PLAN);
		assert_non_null(err.message);

		/* The expected stderr: the diagnostics, then the summary line when there are several. */
		struct strbuf got = {0};
		for (size_t j = 0; j < diags.len; j++) {
			char *prefix = xasprintf("%s:%d:%d: ", name, diags.items[j].mark.line,
			                         diags.items[j].mark.column);
			if (strncmp(diags.items[j].message, prefix, strlen(prefix)) != 0)
				fail_msg("%s: message does not start with %s: %s", name, prefix,
				         diags.items[j].message);
			free(prefix);
			if (j > 0) {
				const struct plan_mark *a = &diags.items[j - 1].mark, *b = &diags.items[j].mark;
				assert_true(a->line < b->line || (a->line == b->line && a->column <= b->column));
			}
			assert_true(strstr(diags.items[j].message, "; expected ") != NULL);
			strbuf_addf(&got, "%s\n", diags.items[j].message);
		}
		if (diags.len != 1)
			strbuf_addf(&got, "pgrunbook: %s\n", err.message);
		if (strcmp(got.buf ? got.buf : "", expected) != 0)
			fail_msg("%s: diagnostics differ\n--- expected\n%s--- got\n%s", name, expected,
			         got.buf ? got.buf : "");
		assert_true(diags.len <= 50);
		/* No secret from the corpus is ever echoed. */
		assert_null(strstr(got.buf, "hunter2"));
		assert_null(strstr(got.buf, "s3cret"));
		assert_null(strstr(got.buf, "SECRET"));

		strbuf_release(&got);
		plan_diags_free(&diags);
		rb_error_clear(&err);
		free(expected);
		free(exp_path);
	}
	strlist_free(&names);
	assert_int_equal(chdir(cwd), 0);
	free(dir);
}

static void
test_problem_cap(void **state)
{
	(void)state;
	struct strbuf sb = {0};
	strbuf_adds(&sb, "name: x\nenvironments: {p: {service: p}}\ntarget: p\nbudgets:\n");
	for (int i = 0; i < 80; i++)
		strbuf_addf(&sb, "  nokey%d: 1h\n", i);
	char *path = write_tmp("many.yaml", sb.buf);
	struct plan_diags d = {0};
	struct rb_error err = {0};
	assert_null(plan_load(path, &d, &err));
	assert_int_equal(d.len, 50);
	assert_non_null(strstr(err.message, "80 problems (the first 50 are shown)"));
	assert_int_equal(d.items[49].mark.line, 54);
	plan_diags_free(&d);
	rb_error_clear(&err);
	strbuf_release(&sb);
	free(path);
}

static void
test_unreadable(void **state)
{
	(void)state;
	struct plan_diags d = {0};
	struct rb_error err = {0};
	assert_null(plan_load("/nonexistent/plan.yaml", &d, &err));
	assert_int_equal(d.len, 0);
	assert_int_equal(err.code, RB_EXIT_PLAN);
	assert_string_equal(err.message,
	                    "could not read plan file \"/nonexistent/plan.yaml\": No such file or directory");
	rb_error_clear(&err);
}

static void
test_conninfo(void **state)
{
	(void)state;
	struct plan *p = load_text_ok(
		"name: c\nenvironments:\n"
		"  a: {conninfo: \"host=/tmp port=5433 dbname=shop user=app\"}\n"
		"  b: {conninfo: \"postgresql://app@db.internal:5432/shop?sslmode=require\"}\n"
		"  c: {conninfo: \"service=prod passfile=/etc/pgpass\"}\n"
		"target: a\n");
	assert_string_equal(plan_env_find(p, "b")->value,
	                    "postgresql://app@db.internal:5432/shop?sslmode=require");
	plan_free(p);

	char *msgs = load_text_bad("name: c\nenvironments:\n"
	                           "  a: {conninfo: \"dbname=shop password='sw0rdfish'\"}\n"
	                           "  b: {conninfo: \"postgres://u:sw0rdfish@h/db\"}\n"
	                           "  c: {conninfo: \"postgres://u:sw0rdfish@h/db%zz\"}\n"
	                           "target: a\n");
	assert_null(strstr(msgs, "sw0rdfish"));
	assert_non_null(strstr(msgs, "bad.yaml:3:17: environments.a.conninfo: a conninfo with a password"));
	assert_non_null(strstr(msgs, "bad.yaml:4:17: environments.b.conninfo: a conninfo with a password"));
	/* Unparseable and holding a password: the password is what gets reported. */
	assert_non_null(strstr(msgs, "bad.yaml:5:17: environments.c.conninfo: a conninfo with a password"));
	free(msgs);
}

static void
test_tabs_where_allowed(void **state)
{
	(void)state;
	/* Tabs inside a block scalar and inside flow collections are legal YAML: no complaint. */
	struct plan *p = load_text_ok(
		"name: t\nenvironments: {\n\tp: {service: p}\n}\ntarget: p\n"
		"verify:\n  checks:\n    - name: x\n      sql: |\n        select\n        \t1\n      expect: 1\n");
	assert_string_equal(p->verify.checks[0].sql, "select\n\t1\n");
	plan_free(p);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_durations_valid),
		cmocka_unit_test(test_durations_invalid),
		cmocka_unit_test(test_duration_format),
		cmocka_unit_test(test_duration_messages),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_full_plan),
		cmocka_unit_test(test_globs),
		cmocka_unit_test(test_hash_stability),
		cmocka_unit_test(test_bad_corpus),
		cmocka_unit_test(test_problem_cap),
		cmocka_unit_test(test_unreadable),
		cmocka_unit_test(test_conninfo),
		cmocka_unit_test(test_tabs_where_allowed),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
