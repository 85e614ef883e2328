/* test_lint.c: unit tests for core/lint.c: every rule and its safe variant, splitting, syntax errors, the demo migrations. */
#include "config.h"

#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>
#include <pg_query.h>

#include "core/error.h"
#include "core/lint.h"
#include "core/util.h"

static const char *
srcdir(void)
{
	const char *s = getenv("top_srcdir");
	return s && *s ? s : ".";
}

/* Lints a script that must parse; fails the test with the error otherwise. */
static void
lint_ok(const char *sql, struct lint_result *r)
{
	struct rb_error err = {0};

	if (!lint_script("test", sql, r, &err)) {
		print_error("lint failed on <%s>: %s\n", sql, err.message ? err.message : "?");
		rb_error_clear(&err);
		lint_result_free(r);
		fail();
	}
	rb_error_clear(&err);
}

struct rule_case {
	const char     *code;     /* expected on the last statement of `fires` */
	enum lint_class class;    /* expected class of that statement */
	const char     *fires;
	const char     *safe;     /* last statement must be safe */
};

static const struct rule_case cases[] = {
	{"PG101", LINT_DANGEROUS, "DROP TABLE t", "CREATE TABLE t (a int)"},
	{"PG101", LINT_DANGEROUS, "DROP TABLE IF EXISTS app.t CASCADE", "CREATE TABLE app.t (a int)"},
	{"PG102", LINT_DANGEROUS, "TRUNCATE t", "DELETE FROM t WHERE id = 1"},
	{"PG103", LINT_DANGEROUS, "UPDATE t SET a = 1", "UPDATE t SET a = 1 WHERE id = 2"},
	{"PG104", LINT_DANGEROUS, "DELETE FROM t", "DELETE FROM t WHERE id = 1"},
	{"PG105", LINT_DANGEROUS, "ALTER TABLE t DROP CONSTRAINT \"t_pkey\"",
	 "ALTER TABLE t RENAME CONSTRAINT t_pkey TO t_pk"},
	{"PG105", LINT_DANGEROUS, "ALTER TABLE t ADD PRIMARY KEY (id)",
	 "CREATE TABLE t (id int); ALTER TABLE t ADD PRIMARY KEY (id)"},
	{"PG105", LINT_DANGEROUS, "ALTER TABLE t ADD CONSTRAINT t_pkey PRIMARY KEY USING INDEX t_new",
	 "CREATE TABLE t (id int); ALTER TABLE t ADD CONSTRAINT t_pkey PRIMARY KEY (id)"},
	{"PG106", LINT_DANGEROUS, "DROP SCHEMA app CASCADE", "CREATE SCHEMA app"},
	{"PG107", LINT_RISKY, "ALTER TABLE t DROP COLUMN a", "ALTER TABLE t ADD COLUMN a int"},
	{"PG201", LINT_RISKY, "ALTER TABLE t RENAME COLUMN a TO b", "ALTER INDEX i RENAME TO j"},
	{"PG202", LINT_RISKY, "ALTER TABLE t RENAME TO u", "ALTER INDEX i RENAME TO j"},
	{"PG203", LINT_RISKY, "ALTER TABLE t ALTER COLUMN a TYPE bigint",
	 "CREATE TABLE t (a int); ALTER TABLE t ALTER COLUMN a TYPE bigint"},
	{"PG204", LINT_RISKY, "ALTER TABLE t ADD COLUMN a int NOT NULL",
	 "ALTER TABLE t ADD COLUMN a int NOT NULL DEFAULT 0"},
	{"PG205", LINT_RISKY, "ALTER TABLE t DROP CONSTRAINT t_a_check",
	 "ALTER TABLE t ADD CONSTRAINT t_a_check CHECK (a > 0) NOT VALID"},
	{"PG206", LINT_RISKY, "DROP VIEW v", "CREATE VIEW v AS SELECT 1"},
	{"PG301", LINT_RISKY, "CREATE INDEX i ON t (a)", "CREATE INDEX CONCURRENTLY i ON t (a)"},
	{"PG301", LINT_RISKY, "CREATE TABLE u (a int); CREATE UNIQUE INDEX i ON t (a)",
	 "CREATE TABLE t (a int); CREATE UNIQUE INDEX i ON t (a)"},
	{"PG302", LINT_RISKY, "DROP INDEX i", "DROP INDEX CONCURRENTLY i"},
	{"PG303", LINT_RISKY, "ALTER TABLE t ADD CONSTRAINT f FOREIGN KEY (u) REFERENCES u (id)",
	 "ALTER TABLE t ADD CONSTRAINT f FOREIGN KEY (u) REFERENCES u (id) NOT VALID"},
	{"PG303", LINT_RISKY, "ALTER TABLE t ADD COLUMN u int REFERENCES u (id)",
	 "CREATE TABLE t (a int); ALTER TABLE t ADD CONSTRAINT f FOREIGN KEY (a) REFERENCES u (id)"},
	{"PG304", LINT_RISKY, "ALTER TABLE t ADD CONSTRAINT c CHECK (a > 0)",
	 "ALTER TABLE t ADD CONSTRAINT c CHECK (a > 0) NOT VALID"},
	{"PG305", LINT_RISKY, "ALTER TABLE t ALTER COLUMN a SET NOT NULL",
	 "ALTER TABLE t ALTER COLUMN a DROP NOT NULL"},
	{"PG306", LINT_RISKY, "ALTER TABLE t ADD COLUMN u uuid DEFAULT gen_random_uuid()",
	 "ALTER TABLE t ADD COLUMN c timestamptz DEFAULT now()"},
	{"PG306", LINT_RISKY, "ALTER TABLE t ADD COLUMN r float8 NOT NULL DEFAULT random()",
	 "ALTER TABLE t ADD COLUMN r float8 NOT NULL DEFAULT 0.5"},
	{"PG306", LINT_RISKY, "ALTER TABLE t ADD COLUMN c timestamptz DEFAULT clock_timestamp()",
	 "ALTER TABLE t ADD COLUMN c timestamptz DEFAULT CURRENT_TIMESTAMP"},
	{"PG306", LINT_RISKY, "ALTER TABLE t ADD COLUMN n bigserial",
	 "ALTER TABLE t ADD COLUMN n bigint"},
	{"PG306", LINT_RISKY, "ALTER TABLE t ADD COLUMN n int GENERATED ALWAYS AS IDENTITY",
	 "CREATE TABLE t (a int); ALTER TABLE t ADD COLUMN n int GENERATED ALWAYS AS IDENTITY"},
	{"PG307", LINT_RISKY, "ALTER TABLE t ADD CONSTRAINT u UNIQUE (a)",
	 "ALTER TABLE t ADD CONSTRAINT u UNIQUE USING INDEX i"},
};

/* The code of the last statement of sql (NULL when safe) and its class. */
static const char *
last_code(const char *sql, enum lint_class *class, struct lint_result *r)
{
	struct lint_stmt *st;

	lint_ok(sql, r);
	assert_true(r->n_stmts > 0);
	st = &r->stmts[r->n_stmts - 1];
	*class = st->class;
	return st->code;
}

static void
test_rules(void **state)
{
	(void)state;
	for (size_t i = 0; i < RB_ARRAY_LEN(cases); i++) {
		const struct rule_case *k = &cases[i];
		struct lint_result r;
		enum lint_class class;
		const char *code;
		const struct lint_rule *rule = lint_rule_find(k->code);

		assert_non_null(rule);
		assert_int_equal(rule->class, k->class);
		code = last_code(k->fires, &class, &r);
		if (code == NULL || strcmp(code, k->code) != 0)
			print_error("<%s>: got %s, want %s\n", k->fires, code ? code : "safe", k->code);
		assert_non_null(code);
		assert_string_equal(code, k->code);
		assert_int_equal(class, k->class);
		assert_true(r.stmts[r.n_stmts - 1].n_findings >= 1);
		assert_non_null(r.stmts[r.n_stmts - 1].findings[0].detail);
		lint_result_free(&r);

		code = last_code(k->safe, &class, &r);
		if (code != NULL)
			print_error("<%s>: got %s, want safe\n", k->safe, code);
		assert_null(code);
		assert_int_equal(class, LINT_SAFE);
		lint_result_free(&r);
	}
}

static void
test_catalogue(void **state)
{
	size_t n;
	const struct lint_rule *all = lint_rules(&n);

	(void)state;
	assert_true(n >= 20);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(strlen(all[i].code), 5);
		assert_true(all[i].why[0] != '\0' && all[i].alternative[0] != '\0');
		assert_ptr_equal(lint_rule_find(all[i].code), &all[i]);
		if (i > 0)
			assert_true(strcmp(all[i - 1].code, all[i].code) < 0);
	}
	assert_null(lint_rule_find("PG999"));
}

/* Dropping the primary key is dangerous, another constraint only risky. */
static void
test_drop_constraint(void **state)
{
	struct lint_result r;
	enum lint_class class;

	(void)state;
	assert_string_equal(last_code("ALTER TABLE \"Order\" DROP CONSTRAINT \"Order_pkey\"", &class, &r),
	    "PG105");
	assert_int_equal(class, LINT_DANGEROUS);
	lint_result_free(&r);
	assert_string_equal(last_code("ALTER TABLE \"Order\" DROP CONSTRAINT \"Order_userId_fkey\"",
	    &class, &r), "PG205");
	assert_int_equal(class, LINT_RISKY);
	lint_result_free(&r);
}

/* Several commands in one ALTER TABLE: every finding kept, the worst one decides. */
static void
test_worst_finding(void **state)
{
	struct lint_result r;

	(void)state;
	lint_ok("ALTER TABLE t DROP COLUMN a, DROP CONSTRAINT t_pkey, ALTER COLUMN b SET NOT NULL", &r);
	assert_int_equal(r.n_stmts, 1);
	assert_int_equal(r.stmts[0].n_findings, 3);
	assert_string_equal(r.stmts[0].findings[0].rule->code, "PG107");
	assert_string_equal(r.stmts[0].findings[1].rule->code, "PG105");
	assert_string_equal(r.stmts[0].findings[2].rule->code, "PG305");
	assert_string_equal(r.stmts[0].code, "PG105");
	assert_int_equal(r.stmts[0].class, LINT_DANGEROUS);
	assert_int_equal(r.class, LINT_DANGEROUS);
	assert_string_equal(r.stmts[0].findings[0].detail, "column \"a\" of \"t\"");
	lint_result_free(&r);
}

static void
test_no_transaction(void **state)
{
	static const struct {
		const char *sql;
		bool        no_tx;
	} k[] = {
		{"CREATE INDEX CONCURRENTLY i ON t (a)", true},
		{"CREATE INDEX i ON t (a)", false},
		{"DROP INDEX CONCURRENTLY i", true},
		{"DROP INDEX i", false},
		{"REINDEX INDEX CONCURRENTLY i", true},
		{"REINDEX INDEX i", false},
		{"VACUUM t", true},
		{"ANALYZE t", false},
		{"ALTER SYSTEM SET work_mem = '64MB'", true},
		{"CREATE DATABASE d", true},
		{"ALTER TYPE \"Role\" ADD VALUE 'GUEST'", false},
		{"CREATE TABLE t (a int)", false},
	};
	struct lint_result r;

	(void)state;
	for (size_t i = 0; i < RB_ARRAY_LEN(k); i++) {
		lint_ok(k[i].sql, &r);
		if (r.stmts[0].no_transaction != k[i].no_tx)
			print_error("<%s>: no_transaction %d\n", k[i].sql, r.stmts[0].no_transaction);
		assert_int_equal(r.stmts[0].no_transaction, k[i].no_tx);
		assert_int_equal(r.needs_statement_mode, k[i].no_tx);
		lint_result_free(&r);
	}
	lint_ok("CREATE TABLE t (a int);\nCREATE INDEX CONCURRENTLY i ON t (a);\nSELECT 1;", &r);
	assert_true(r.needs_statement_mode);
	assert_false(r.stmts[0].no_transaction);
	assert_true(r.stmts[1].no_transaction);
	lint_result_free(&r);
}

static void
test_split(void **state)
{
	static const char script[] =
	    "-- leading comment; with a semicolon\n"                         /* 1 */
	    "CREATE TABLE a (id int, note text DEFAULT 'x;y');\n"          /* 2 */
	    "\n"                                                             /* 3 */
	    "/* block ; comment /* nested; */ still */\n"                    /* 4 */
	    "CREATE FUNCTION f() RETURNS trigger AS $body$\n"                /* 5 */
	    "BEGIN\n"                                                        /* 6 */
	    "  UPDATE a SET id = 1; -- ;\n"                                  /* 7 */
	    "  RETURN NEW;\n"                                                /* 8 */
	    "END $body$ LANGUAGE plpgsql;\n"                                 /* 9 */
	    "  INSERT INTO a VALUES (1, $$it's; fine$$);   -- trailing\n"   /* 10 */
	    "\r\n"                                                           /* 11 */
	    "SELECT 1\n";                                                    /* 12 */
	struct lint_result r;

	(void)state;
	lint_ok(script, &r);
	assert_int_equal(r.n_stmts, 4);
	assert_int_equal(r.stmts[0].line, 2);
	assert_int_equal(r.stmts[0].column, 1);
	assert_string_equal(r.stmts[0].text, "CREATE TABLE a (id int, note text DEFAULT 'x;y')");
	assert_int_equal(r.stmts[1].line, 5);
	assert_true(strncmp(r.stmts[1].text, "CREATE FUNCTION f()", 19) == 0);
	assert_non_null(strstr(r.stmts[1].text, "END $body$ LANGUAGE plpgsql"));
	/* The UPDATE inside the function body is not a statement of the script. */
	assert_null(r.stmts[1].code);
	assert_int_equal(r.stmts[2].line, 10);
	assert_int_equal(r.stmts[2].column, 3);
	assert_string_equal(r.stmts[2].text, "INSERT INTO a VALUES (1, $$it's; fine$$)");
	assert_int_equal(r.stmts[3].line, 12);
	assert_string_equal(r.stmts[3].text, "SELECT 1");
	assert_int_equal(r.class, LINT_SAFE);
	assert_false(r.needs_statement_mode);
	lint_result_free(&r);

	/* Only comments: no statement, no error (Prisma's empty migration). */
	lint_ok("-- This is an empty migration.\n", &r);
	assert_int_equal(r.n_stmts, 0);
	lint_result_free(&r);
}

static void
test_syntax_error(void **state)
{
	struct rb_error err = {0};
	struct lint_result r;

	(void)state;
	assert_false(lint_script("20251201000000_bad", "SELECT 1;\nSELECT 2;\n    SELEC 3;\nSELECT 4;\n",
	    &r, &err));
	assert_int_equal(r.error_line, 3);
	assert_int_equal(r.error_column, 5);
	assert_string_equal(err.message,
	    "20251201000000_bad:3:5: syntax error at or near \"SELEC\"");
	assert_non_null(err.detail);
	assert_non_null(strstr(err.detail, "    SELEC 3;"));
	assert_int_equal(err.code, RB_EXIT_STEP);
	rb_error_clear(&err);
	lint_result_free(&r);

	/* Columns count characters, not bytes. */
	assert_false(lint_script("m", "-- é\nSELECT 'héllo' FROM WHERE;\n", &r, &err));
	assert_int_equal(r.error_line, 2);
	assert_int_equal(r.error_column, 21);
	assert_string_equal(err.message, "m:2:21: syntax error at or near \"WHERE\"");
	rb_error_clear(&err);
	lint_result_free(&r);

	/* An error at the end of the input points just past the last character. */
	assert_false(lint_script("m", "CREATE TABLE t (\n  a int", &r, &err));
	assert_int_equal(r.error_line, 2);
	assert_int_equal(r.error_column, 8);
	rb_error_clear(&err);
	lint_result_free(&r);
}

static void
test_json(void **state)
{
	struct lint_result r;
	json_t *j, *st;

	(void)state;
	lint_ok("CREATE TABLE t (a int);\nALTER TABLE u DROP COLUMN b;", &r);
	j = lint_to_json(&r);
	assert_non_null(j);
	assert_string_equal(json_string_value(json_object_get(j, "migration")), "test");
	assert_string_equal(json_string_value(json_object_get(j, "class")), "risky");
	assert_true(json_is_false(json_object_get(j, "needs_statement_mode")));
	assert_int_equal(json_array_size(json_object_get(j, "statements")), 2);
	st = json_array_get(json_object_get(j, "statements"), 0);
	assert_true(json_is_null(json_object_get(st, "code")));
	assert_string_equal(json_string_value(json_object_get(st, "class")), "safe");
	st = json_array_get(json_object_get(j, "statements"), 1);
	assert_int_equal(json_integer_value(json_object_get(st, "line")), 2);
	assert_string_equal(json_string_value(json_object_get(st, "code")), "PG107");
	assert_string_equal(json_string_value(json_object_get(st, "sql")), "ALTER TABLE u DROP COLUMN b");
	st = json_array_get(json_object_get(st, "findings"), 0);
	assert_string_equal(json_string_value(json_object_get(st, "summary")), "drop column");
	assert_string_equal(json_string_value(json_object_get(st, "detail")), "column \"b\" of \"u\"");
	json_decref(j);
	lint_result_free(&r);
}

static int
by_name(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

static void
test_demo_migrations(void **state)
{
	char *dir = xasprintf("%s/plans/demo/prisma/migrations", srcdir());
	struct dirent **ents;
	int n = scandir(dir, &ents, NULL, by_name);
	int linted = 0;
	bool saw_drop = false;

	(void)state;
	assert_true(n > 0);
	for (int i = 0; i < n; i++) {
		const char *name = ents[i]->d_name;
		char *path = xasprintf("%s/%s/migration.sql", dir, name);
		char *sql = name[0] == '.' ? NULL : file_read_all(path, NULL);
		struct rb_error err = {0};
		struct lint_result r;

		if (sql != NULL) {
			if (!lint_script(name, sql, &r, &err))
				print_error("%s\n", err.message);
			assert_null(err.message);
			assert_true(r.n_stmts > 0);
			linted++;
			if (strcmp(name, "20250615120108_init") == 0) {
				/* Tables, indexes and foreign keys on tables it creates itself: all safe. */
				assert_int_equal(r.class, LINT_SAFE);
			}
			if (strcmp(name, "20251112090000_drop_sender_phone") == 0) {
				saw_drop = true;
				assert_int_equal(r.n_stmts, 1);
				assert_int_equal(r.stmts[0].line, 8);
				assert_int_equal(r.stmts[0].class, LINT_RISKY);
				assert_string_equal(r.stmts[0].code, "PG107");
				assert_string_equal(r.stmts[0].findings[0].detail,
				    "column \"senderPhone\" of \"Order\"");
				assert_int_equal(r.class, LINT_RISKY);
			}
			lint_result_free(&r);
		}
		free(sql);
		free(path);
		free(ents[i]);
	}
	free(ents);
	free(dir);
	assert_true(linted >= 7);
	assert_true(saw_drop);
}

static int
teardown_pg_query(void **state)
{
	(void)state;
	pg_query_exit();
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_catalogue),
		cmocka_unit_test(test_rules),
		cmocka_unit_test(test_drop_constraint),
		cmocka_unit_test(test_worst_finding),
		cmocka_unit_test(test_no_transaction),
		cmocka_unit_test(test_split),
		cmocka_unit_test(test_syntax_error),
		cmocka_unit_test(test_json),
		cmocka_unit_test(test_demo_migrations),
	};
	return cmocka_run_group_tests(tests, NULL, teardown_pg_query);
}
