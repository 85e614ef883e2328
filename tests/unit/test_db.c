/* test_db.c: unit tests of core/db.c: redaction, conninfo checks; connections when PGHOST is set. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/db.h"

/* A plan environment over borrowed strings (the struct's fields are not const). */
#define TEST_ENV(n, k, v) {.name = (char *)(n), .kind = (k), .value = (char *)(v)}

/* ---- db_redact ---- */

struct redact_case {
	const char *in;
	const char *want;
};

static const struct redact_case redact_cases[] = {
	/* URIs */
	{"postgresql://user:secret@host/db", "postgresql://user:***@host/db"},
	{"postgres://user:secret@host:5432/db?sslmode=require",
	 "postgres://user:***@host:5432/db?sslmode=require"},
	{"postgresql://u:p%40ss%3Aw0rd@h/db", "postgresql://u:***@h/db"},
	{"postgresql://u:p@ss@h/db", "postgresql://u:***@h/db"},
	{"postgresql://u:pa:ss@h/db", "postgresql://u:***@h/db"},
	{"postgresql://u:p@s:s@w@h:5432/db?x=1", "postgresql://u:***@h:5432/db?x=1"},
	{"postgresql://u:p?w@h/db", "postgresql://u:***@h/db"},
	{"postgresql://u:a/b@h/db", "postgresql://u:***@h/db"},
	{"postgresql://u:pw@h", "postgresql://u:***@h"},
	{"postgresql://u:pw@h?sslmode=require", "postgresql://u:***@h?sslmode=require"},
	{"postgresql://:pw@h/db", "postgresql://:***@h/db"},
	{"postgresql://u:pw@h1:5432,h2:5433/db", "postgresql://u:***@h1:5432,h2:5433/db"},
	{"POSTGRESQL://u:pw@h/db", "POSTGRESQL://u:***@h/db"},
	{"postgresql://u:pw@h/db?application_name=a@b", "postgresql://u:***@h/db?application_name=a@b"},
	{"url \"postgresql://u:pw@h/db\" was given", "url \"postgresql://u:***@h/db\" was given"},
	{"a postgres://a:x@h/1 and postgresql://b:y@h/2 end",
	 "a postgres://a:***@h/1 and postgresql://b:***@h/2 end"},
	{"'postgresql://u:pw@h/db'", "'postgresql://u:***@h/db'"},
	{"{\"url\":\"postgresql://u:pw@h/db\",\"mail\":\"a@b\"}",
	 "{\"url\":\"postgresql://u:***@h/db\",\"mail\":\"a@b\"}"},
	{"postgresql://u:it's\"q@h/db", "postgresql://u:***@h/db"},
	{"DATABASE_URL=postgresql://app:hunter2@db.internal:6432/shop",
	 "DATABASE_URL=postgresql://app:***@db.internal:6432/shop"},
	/* URIs without a password stay as they are */
	{"postgresql://u@h/db", "postgresql://u@h/db"},
	{"postgresql://h:5432/db", "postgresql://h:5432/db"},
	{"postgresql://[::1]:5432/db", "postgresql://[::1]:5432/db"},
	{"postgresql://[::1]/db?application_name=a@b", "postgresql://[::1]/db?application_name=a@b"},
	{"postgresql:///db?host=/tmp&port=5433", "postgresql:///db?host=/tmp&port=5433"},
	{"postgresql://u:@h/db", "postgresql://u:@h/db"},
	{"postgresql://", "postgresql://"},
	/* password in a URI query */
	{"postgresql://u@h/db?password=secret&sslmode=require",
	 "postgresql://u@h/db?password=***&sslmode=require"},
	{"postgresql://u@h/db?sslmode=require&password=s%20t", "postgresql://u@h/db?sslmode=require&password=***"},
	/* conninfo */
	{"host=h password=secret dbname=d", "host=h password=*** dbname=d"},
	{"password=secret", "password=***"},
	{"host=h sslpassword=KeyPass123 dbname=d", "host=h sslpassword=*** dbname=d"},
	{"host=h password='se cret' dbname=d", "host=h password=*** dbname=d"},
	{"password='it\\'s a \\\\ secret' user=u", "password=*** user=u"},
	{"password = secret user=u", "password = *** user=u"},
	{"password=a\\ b user=u", "password=*** user=u"},
	{"host=h\tpassword=x\tuser=u", "host=h\tpassword=***\tuser=u"},
	{"Password=secret", "Password=***"},
	{"PGPASSWORD=secret psql", "PGPASSWORD=*** psql"},
	{"password='unterminated secret", "password=***"},
	{"a password=one b password=two", "a password=*** b password=***"},
	/* look-alikes that are not passwords */
	{"nopassword=x", "nopassword=x"},
	{"password_file=x passfile=/tmp/p", "password_file=x passfile=/tmp/p"},
	{"password authentication failed for user \"u\"", "password authentication failed for user \"u\""},
	{"the password is wrong", "the password is wrong"},
	{"password=", "password="},
	{"", ""},
	{"host=/tmp port=5432 dbname=x", "host=/tmp port=5432 dbname=x"},
};

static void
test_redact_cases(void **state)
{
	(void)state;
	for (size_t i = 0; i < RB_ARRAY_LEN(redact_cases); i++) {
		char *got = db_redact(redact_cases[i].in);
		if (strcmp(got, redact_cases[i].want) != 0)
			fail_msg("db_redact(\"%s\")\n  got:  \"%s\"\n  want: \"%s\"", redact_cases[i].in, got,
			         redact_cases[i].want);
		free(got);
	}
}

static void
test_redact_null(void **state)
{
	(void)state;
	char *got = db_redact(NULL);
	assert_string_equal(got, "");
	free(got);
}

/* Every secret below must vanish from the redacted text, wherever it sits. */
static void
test_redact_never_leaks(void **state)
{
	(void)state;
	static const char *const secrets[] = {"S3cr3t", "p@ss", "pa:ss", "a/b", "x y", "it's"};
	static const char *const forms[] = {
		"postgresql://u:%s@h/db", "postgres://u:%s@h:1/db?x=y", "password='%s'",
		"conn password=%s", "postgresql://u@h/db?password=%s",
	};
	for (size_t s = 0; s < RB_ARRAY_LEN(secrets); s++) {
		for (size_t f = 0; f < RB_ARRAY_LEN(forms); f++) {
			/* Characters that need quoting or encoding in a form are skipped there. */
			if (strchr(secrets[s], ' ') && f != 2)
				continue;
			if (strchr(secrets[s], '\'') && f == 2)
				continue;
			if (f == 4 && strpbrk(secrets[s], "@:/"))
				continue;
			const char *hole = strstr(forms[f], "%s");
			char *in = xasprintf("%.*s%s%s", (int)(hole - forms[f]), forms[f], secrets[s], hole + 2);
			char *got = db_redact(in);
			if (strstr(got, secrets[s]) != NULL)
				fail_msg("secret \"%s\" left in \"%s\" (from \"%s\")", secrets[s], got, in);
			free(got);
			free(in);
		}
	}
}

/* ---- db_conninfo_has_password ---- */

static void
test_has_password(void **state)
{
	(void)state;
	assert_true(db_conninfo_has_password("postgresql://u:pw@h/db"));
	assert_true(db_conninfo_has_password("postgresql://u:p%40w@h/db"));
	assert_true(db_conninfo_has_password("postgresql://u@h/db?password=x"));
	assert_true(db_conninfo_has_password("host=h password=x"));
	assert_true(db_conninfo_has_password("host=h password='a b'"));
	assert_false(db_conninfo_has_password("postgresql://u@h/db"));
	/* libpq would read these as host:port and quote them back in its errors. */
	assert_true(db_conninfo_has_password("postgresql://admin:Xy7/Qp9@localhost/db"));
	assert_true(db_conninfo_has_password("host=h sslpassword=KeyPass123"));
	assert_false(db_conninfo_port_valid("postgresql://user:secret"));
	assert_true(db_conninfo_port_valid("postgresql://h1:5432,h2:5433/db"));
	assert_true(db_conninfo_port_valid("host=h dbname=d"));
	assert_false(db_conninfo_has_password("host=h dbname=d"));
	/* An explicit password keyword is refused even when empty: it has no use here. */
	assert_true(db_conninfo_has_password("host=h password=''"));
	assert_false(db_conninfo_has_password("host='unterminated"));
	assert_false(db_conninfo_has_password(""));
}

/* ---- db_env_conninfo ---- */

static void
test_env_service(void **state)
{
	(void)state;
	struct plan_env env = TEST_ENV("prod", PLAN_ENV_SERVICE, "prod");
	struct rb_error err = {0};
	char *ci = db_env_conninfo(&env, &err);
	assert_non_null(ci);
	assert_string_equal(ci, "service='prod'");
	free(ci);
	env.value = (char *)"we'ird\\name";
	ci = db_env_conninfo(&env, &err);
	assert_string_equal(ci, "service='we\\'ird\\\\name'");
	free(ci);
	assert_null(err.message);
}

static void
test_env_dsn_unset(void **state)
{
	(void)state;
	struct plan_env env = TEST_ENV("dev", PLAN_ENV_DSN_ENV, "PGRB_TEST_UNSET_URL");
	struct rb_error err = {0};
	unsetenv("PGRB_TEST_UNSET_URL");
	assert_null(db_env_conninfo(&env, &err));
	assert_int_equal(err.code, RB_EXIT_CONNECT);
	assert_non_null(strstr(err.message, "\"PGRB_TEST_UNSET_URL\""));
	assert_non_null(strstr(err.message, "not set"));
	assert_non_null(strstr(err.message, "\"dev\""));
	assert_non_null(err.hint);
	rb_error_clear(&err);

	setenv("PGRB_TEST_UNSET_URL", "", 1);
	assert_null(db_env_conninfo(&env, &err));
	assert_int_equal(err.code, RB_EXIT_CONNECT);
	assert_non_null(strstr(err.message, "empty"));
	rb_error_clear(&err);
	unsetenv("PGRB_TEST_UNSET_URL");
}

/* The refusal names the variable and shows the .pgpass line, never the password. */
static void
test_env_dsn_password_refused(void **state)
{
	(void)state;
	struct plan_env env = TEST_ENV("dev", PLAN_ENV_DSN_ENV, "PGRB_TEST_URL");
	struct rb_error err = {0};
	setenv("PGRB_TEST_URL", "postgresql://app:Hunter2-Secret@db.example.com:6432/shop", 1);
	assert_null(db_env_conninfo(&env, &err));
	assert_int_equal(err.code, RB_EXIT_CONNECT);
	char *all = rb_error_format(&err);
	assert_null(strstr(all, "Hunter2"));
	assert_non_null(strstr(err.message, "PGRB_TEST_URL"));
	assert_non_null(strstr(err.message, "password"));
	assert_non_null(strstr(err.hint, "db.example.com:6432:shop:app:PASSWORD"));
	assert_non_null(strstr(err.hint, "PGPASSFILE"));
	assert_non_null(strstr(err.hint, ".pgpass"));
	free(all);
	rb_error_clear(&err);

	/* conninfo form, missing fields from libpq's defaults, ':' escaped */
	char *old_host = getenv("PGHOST") ? xstrdup(getenv("PGHOST")) : NULL;
	char *old_port = getenv("PGPORT") ? xstrdup(getenv("PGPORT")) : NULL;
	setenv("PGHOST", "/tmp/sockdir", 1);
	setenv("PGPORT", "5999", 1);
	setenv("PGRB_TEST_URL", "dbname=a:b user=me password='x y z'", 1);
	assert_null(db_env_conninfo(&env, &err));
	all = rb_error_format(&err);
	assert_null(strstr(all, "x y z"));
	assert_non_null(strstr(err.hint, "localhost:5999:a\\:b:me:PASSWORD"));
	free(all);
	rb_error_clear(&err);
	unsetenv("PGRB_TEST_URL");
	if (old_host)
		setenv("PGHOST", old_host, 1);
	else
		unsetenv("PGHOST");
	if (old_port)
		setenv("PGPORT", old_port, 1);
	else
		unsetenv("PGPORT");
	free(old_host);
	free(old_port);
}

static void
test_env_invalid_uri_hides_secret(void **state)
{
	(void)state;
	struct plan_env env = TEST_ENV("dev", PLAN_ENV_DSN_ENV, "PGRB_TEST_URL");
	struct rb_error err = {0};
	/* libpq would quote the undecodable userinfo, password included, in its message. */
	setenv("PGRB_TEST_URL", "postgresql://u:Sec%zzret@h/db", 1);
	assert_null(db_env_conninfo(&env, &err));
	char *all = rb_error_format(&err);
	assert_null(strstr(all, "Sec"));
	assert_non_null(strstr(err.message, "contains a password"));
	free(all);
	rb_error_clear(&err);

	/* without a secret, libpq's reason is shown */
	setenv("PGRB_TEST_URL", "host=h bogus_keyword=1", 1);
	assert_null(db_env_conninfo(&env, &err));
	assert_non_null(err.detail);
	assert_non_null(strstr(err.detail, "bogus_keyword"));
	rb_error_clear(&err);
	unsetenv("PGRB_TEST_URL");
}

static void
test_env_conninfo(void **state)
{
	(void)state;
	struct plan_env env = TEST_ENV("prod", PLAN_ENV_CONNINFO, "host=h dbname=d");
	struct rb_error err = {0};
	char *ci = db_env_conninfo(&env, &err);
	assert_string_equal(ci, "host=h dbname=d");
	free(ci);
	env.value = (char *)"host=h password=TopSecret dbname=d";
	assert_null(db_env_conninfo(&env, &err));
	assert_int_equal(err.code, RB_EXIT_CONNECT);
	char *all = rb_error_format(&err);
	assert_null(strstr(all, "TopSecret"));
	assert_non_null(strstr(err.hint, "h:"));
	free(all);
	rb_error_clear(&err);
}

/* ---- with a server (PGHOST set; PGRUNBOOK_TEST_REQUIRE_SERVER=1 turns a skip into a failure) ---- */

static bool
have_server(void)
{
	if (getenv("PGHOST") && getenv("PGPORT"))
		return true;
	if (getenv("PGRUNBOOK_TEST_REQUIRE_SERVER"))
		fail_msg("PGHOST/PGPORT are not set but PGRUNBOOK_TEST_REQUIRE_SERVER is");
	return false;
}

static char *
server_conninfo(const char *extra)
{
	const char *db = getenv("PGDATABASE");
	return xasprintf("host='%s' port=%s dbname='%s'%s%s", getenv("PGHOST"), getenv("PGPORT"),
	                 db ? db : "postgres", extra ? " " : "", extra ? extra : "");
}

static PGconn *
connect_env(enum plan_env_kind kind, const char *value, struct rb_error *err)
{
	struct plan_env env = TEST_ENV("t", kind, value);
	struct plan p = {0};
	p.envs = &env;
	p.nenvs = 1;
	return db_connect(&p, "t", err);
}

static void
expect_setting(PGconn *conn, const char *sql, const char *want)
{
	struct rb_error err = {0};
	char *v = db_query_value(conn, sql, &err);
	if (v == NULL)
		fail_msg("%s: %s", sql, err.message);
	if (strcmp(v, want) != 0)
		fail_msg("%s: got \"%s\", want \"%s\"", sql, v, want);
	free(v);
}

static const char *
conn_option(PGconn *conn, const char *keyword, char *buf, size_t len)
{
	PQconninfoOption *opts = PQconninfo(conn);
	buf[0] = '\0';
	for (PQconninfoOption *o = opts; o && o->keyword; o++)
		if (strcmp(o->keyword, keyword) == 0 && o->val)
			snprintf(buf, len, "%s", o->val);
	PQconninfoFree(opts);
	return buf;
}

static void
test_connect_session_settings(void **state)
{
	(void)state;
	if (!have_server())
		skip();
	unsetenv("PGAPPNAME");
	unsetenv("PGCONNECT_TIMEOUT");
	/* settings a server or role might impose are overridden */
	setenv("PGOPTIONS", "-c TimeZone=America/New_York -c DateStyle=German -c extra_float_digits=0 "
	       "-c bytea_output=escape -c IntervalStyle=iso_8601", 1);
	setenv("PGCLIENTENCODING", "LATIN1", 1);
	char *ci = server_conninfo(NULL);
	struct rb_error err = {0};
	PGconn *conn = connect_env(PLAN_ENV_CONNINFO, ci, &err);
	if (conn == NULL)
		fail_msg("db_connect: %s", err.message);
	expect_setting(conn, "SHOW TimeZone", "UTC");
	expect_setting(conn, "SHOW DateStyle", "ISO, MDY");
	expect_setting(conn, "SHOW extra_float_digits", "3");
	expect_setting(conn, "SHOW bytea_output", "hex");
	expect_setting(conn, "SHOW IntervalStyle", "postgres");
	expect_setting(conn, "SHOW client_encoding", "UTF8");
	expect_setting(conn, "SHOW application_name", "pgrunbook");
	expect_setting(conn, "SELECT '2026-11-23 15:49:24+01'::timestamptz::text", "2026-11-23 14:49:24+00");
	expect_setting(conn, "SELECT '\\x00ff'::bytea::text", "\\x00ff");
	expect_setting(conn, "SELECT '1 day 2 hours'::interval::text", "1 day 02:00:00");
	expect_setting(conn, "SELECT (1 / 3::float8)::text", "0.3333333333333333");
	char buf[64];
	assert_string_equal(conn_option(conn, "connect_timeout", buf, sizeof buf), "10");
	char *where = db_describe(conn);
	char *want = xasprintf("%s:%s/%s", getenv("PGHOST"), getenv("PGPORT"),
	                       getenv("PGDATABASE") ? getenv("PGDATABASE") : "postgres");
	assert_string_equal(where, want);
	free(want);
	free(where);
	PQfinish(conn);
	free(ci);
	unsetenv("PGOPTIONS");
	unsetenv("PGCLIENTENCODING");

	/* a user's application_name wins over the fallback; its own connect_timeout too */
	ci = server_conninfo("application_name=mine connect_timeout=3");
	conn = connect_env(PLAN_ENV_CONNINFO, ci, &err);
	assert_non_null(conn);
	expect_setting(conn, "SHOW application_name", "mine");
	assert_string_equal(conn_option(conn, "connect_timeout", buf, sizeof buf), "3");
	PQfinish(conn);
	free(ci);

	setenv("PGCONNECT_TIMEOUT", "7", 1);
	ci = server_conninfo(NULL);
	conn = connect_env(PLAN_ENV_CONNINFO, ci, &err);
	assert_non_null(conn);
	assert_string_equal(conn_option(conn, "connect_timeout", buf, sizeof buf), "7");
	PQfinish(conn);
	free(ci);
	unsetenv("PGCONNECT_TIMEOUT");
}

static void
test_connect_service_and_dsn_env(void **state)
{
	(void)state;
	if (!have_server())
		skip();
	unsetenv("PGAPPNAME");
	unsetenv("PGCONNECT_TIMEOUT");
	char dir[] = "/tmp/test_db.XXXXXX";
	assert_non_null(mkdtemp(dir));
	char *file = xasprintf("%s/pg_service.conf", dir);
	FILE *f = fopen(file, "w");
	assert_non_null(f);
	const char *db = getenv("PGDATABASE") ? getenv("PGDATABASE") : "postgres";
	fprintf(f, "# test\n[other]\nconnect_timeout=1\n\n[rbtest]\nhost=%s\nport=%s\ndbname=%s\n"
	        "  connect_timeout=4  \n[rbtest2]\nhost=%s\nport=%s\ndbname=%s\n",
	        getenv("PGHOST"), getenv("PGPORT"), db, getenv("PGHOST"), getenv("PGPORT"), db);
	fclose(f);
	setenv("PGSERVICEFILE", file, 1);

	struct rb_error err = {0};
	char buf[64];
	PGconn *conn = connect_env(PLAN_ENV_SERVICE, "rbtest", &err);
	if (conn == NULL)
		fail_msg("db_connect(service): %s", err.message);
	expect_setting(conn, "SELECT pg_catalog.current_database()", db);
	expect_setting(conn, "SHOW TimeZone", "UTC");
	assert_string_equal(conn_option(conn, "connect_timeout", buf, sizeof buf), "4");
	PQfinish(conn);
	conn = connect_env(PLAN_ENV_SERVICE, "rbtest2", &err);
	assert_non_null(conn);
	assert_string_equal(conn_option(conn, "connect_timeout", buf, sizeof buf), "10");
	PQfinish(conn);

	/* a URI in a variable */
	char *uri = xasprintf("postgresql:///%s?host=%s&port=%s", db, getenv("PGHOST"), getenv("PGPORT"));
	setenv("PGRB_TEST_URL", uri, 1);
	conn = connect_env(PLAN_ENV_DSN_ENV, "PGRB_TEST_URL", &err);
	if (conn == NULL)
		fail_msg("db_connect(dsn_env): %s", err.message);
	expect_setting(conn, "SHOW IntervalStyle", "postgres");
	PQfinish(conn);
	unsetenv("PGRB_TEST_URL");
	unsetenv("PGSERVICEFILE");
	free(uri);
	unlink(file);
	free(file);
	rmdir(dir);
}

static void
test_connect_failures(void **state)
{
	(void)state;
	if (!have_server())
		skip();
	struct rb_error err = {0};
	/* nobody listens on port 1 */
	PGconn *conn = connect_env(PLAN_ENV_CONNINFO, "host=127.0.0.1 port=1 dbname=x", &err);
	assert_null(conn);
	assert_int_equal(err.code, RB_EXIT_CONNECT);
	assert_non_null(strstr(err.message, "could not connect to environment \"t\" (127.0.0.1:1/x): "));
	assert_non_null(strstr(err.message, "refused"));
	rb_error_clear(&err);

	/* a database that does not exist: the server's message */
	char *ci = xasprintf("host='%s' port=%s dbname=no_such_db_xyz", getenv("PGHOST"), getenv("PGPORT"));
	conn = connect_env(PLAN_ENV_CONNINFO, ci, &err);
	assert_null(conn);
	assert_non_null(strstr(err.message, "no_such_db_xyz"));
	assert_non_null(strstr(err.message, "does not exist"));
	rb_error_clear(&err);
	free(ci);

	/* unknown environment */
	struct plan p = {0};
	assert_null(db_connect(&p, "nope", &err));
	assert_non_null(strstr(err.message, "\"nope\""));
	rb_error_clear(&err);
}

static void
test_query_value(void **state)
{
	(void)state;
	if (!have_server())
		skip();
	char *ci = server_conninfo(NULL);
	struct rb_error err = {0};
	PGconn *conn = connect_env(PLAN_ENV_CONNINFO, ci, &err);
	assert_non_null(conn);
	char *v = db_query_value(conn, "SELECT 6 * 7", &err);
	assert_string_equal(v, "42");
	free(v);
	assert_null(db_query_value(conn, "SELEC 1", &err));
	assert_string_equal(err.sqlstate, "42601");
	assert_non_null(strstr(err.message, "syntax error"));
	rb_error_clear(&err);
	assert_null(db_query_value(conn, "SELECT 1, 2", &err));
	rb_error_clear(&err);
	assert_null(db_query_value(conn, "SELECT NULL", &err));
	rb_error_clear(&err);
	assert_null(db_query_value(conn, "SELECT 1 WHERE false", &err));
	rb_error_clear(&err);
	PQfinish(conn);
	free(ci);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_redact_cases),
		cmocka_unit_test(test_redact_null),
		cmocka_unit_test(test_redact_never_leaks),
		cmocka_unit_test(test_has_password),
		cmocka_unit_test(test_env_service),
		cmocka_unit_test(test_env_dsn_unset),
		cmocka_unit_test(test_env_dsn_password_refused),
		cmocka_unit_test(test_env_invalid_uri_hides_secret),
		cmocka_unit_test(test_env_conninfo),
		cmocka_unit_test(test_connect_session_settings),
		cmocka_unit_test(test_connect_service_and_dsn_env),
		cmocka_unit_test(test_connect_failures),
		cmocka_unit_test(test_query_value),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
