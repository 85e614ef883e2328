/* test_util.c: unit tests for core/util.c and core/error.c. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/error.h"
#include "core/util.h"

static void
test_strbuf(void **state)
{
	(void)state;
	struct strbuf sb = {0};
	for (int i = 0; i < 1000; i++)
		strbuf_addf(&sb, "%d,", i);
	assert_int_equal(sb.len, strlen(sb.buf));
	assert_memory_equal(sb.buf, "0,1,2,", 6);
	assert_string_equal(sb.buf + sb.len - 4, "999,");
	strbuf_reset(&sb);
	assert_int_equal(sb.len, 0);
	strbuf_add(&sb, "a\0b", 3);
	assert_int_equal(sb.len, 3);
	char *s = strbuf_detach(&sb);
	assert_memory_equal(s, "a\0b", 4);
	assert_null(sb.buf);
	free(s);
	s = strbuf_detach(&sb);
	assert_string_equal(s, "");
	free(s);
}

static void
test_sha256(void **state)
{
	(void)state;
	char hex[65];
	sha256_hex("abc", 3, hex);
	assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	sha256_hex("", 0, hex);
	assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

static void
test_strlist(void **state)
{
	(void)state;
	struct strlist l = {0};
	strlist_push(&l, "a");
	strlist_push_owned(&l, xasprintf("%s-%d", "b", 2));
	assert_int_equal(l.len, 2);
	assert_true(strlist_contains(&l, "b-2"));
	assert_false(strlist_contains(&l, "c"));
	strlist_free(&l);
	assert_int_equal(l.len, 0);
}

static void
test_dirs(void **state)
{
	(void)state;
	char templ[] = "/tmp/pgrb-util-XXXXXX";
	assert_non_null(mkdtemp(templ));
	char *deep = xasprintf("%s/a/b/c", templ);
	assert_true(mkdir_p(deep, 0700));
	struct stat st;
	assert_int_equal(stat(deep, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	assert_true(mkdir_p(deep, 0700)); /* existing is fine */
	char *file = xasprintf("%s/f", deep);
	FILE *f = fopen(file, "w");
	assert_non_null(f);
	fputs("hello", f);
	fclose(f);
	size_t len = 0;
	char *text = file_read_all(file, &len);
	assert_int_equal(len, 5);
	assert_string_equal(text, "hello");
	free(text);
	assert_false(mkdir_p(file, 0700)); /* a file in the way */
	assert_true(remove_tree(templ));
	assert_int_not_equal(access(templ, F_OK), 0);
	free(file);
	free(deep);
}

static void
test_error_format(void **state)
{
	(void)state;
	struct rb_error err = {0};
	assert_false(rb_error_setc(&err, RB_EXIT_CONNECT, "could not connect to %s", "prod"));
	rb_error_detail(&err, "The server said no.");
	rb_error_hint(&err, "Check the service file.");
	assert_int_equal(err.code, RB_EXIT_CONNECT);
	char *s = rb_error_format(&err);
	assert_string_equal(s, "could not connect to prod\nDETAIL:  The server said no.\nHINT:  Check the service file.");
	free(s);
	rb_error_set(&err, "second");
	assert_null(err.detail);
	assert_int_equal(err.code, RB_EXIT_USAGE);
	rb_error_clear(&err);
	assert_null(err.message);
}

static void
test_format_bytes(void **state)
{
	(void)state;
	char buf[32];
	format_bytes(0, buf, sizeof buf);
	assert_string_equal(buf, "0 bytes");
	format_bytes(10239, buf, sizeof buf);
	assert_string_equal(buf, "10239 bytes");
	format_bytes(10240, buf, sizeof buf);
	assert_string_equal(buf, "10.0 kB");
	format_bytes(52428800, buf, sizeof buf);
	assert_string_equal(buf, "50.0 MB");
	format_bytes(3LL << 40, buf, sizeof buf);
	assert_string_equal(buf, "3.0 TB");
}

static void
test_time(void **state)
{
	(void)state;
	char ts[32];
	time_now_rfc3339(ts);
	assert_int_equal(strlen(ts), 24);
	assert_int_equal(ts[10], 'T');
	assert_int_equal(ts[23], 'Z');
	long long a = time_monotonic_ms();
	usleep(20000);
	assert_true(time_monotonic_ms() - a >= 19);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_strbuf),
		cmocka_unit_test(test_sha256),
		cmocka_unit_test(test_strlist),
		cmocka_unit_test(test_dirs),
		cmocka_unit_test(test_error_format),
		cmocka_unit_test(test_format_bytes),
		cmocka_unit_test(test_time),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
