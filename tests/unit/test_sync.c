/* test_sync.c: unit tests for core/sync.c: the COPY text decoder and the key comparators. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/sync.h"

/* Decodes s (a C string) and checks the bytes and the NULL flag. */
static void
check_decode(const char *in, const char *want, size_t wantlen, bool want_null)
{
	char out[256];
	bool is_null = !want_null;
	size_t n = sync_copy_decode(in, strlen(in), out, &is_null);
	assert_int_equal(is_null, want_null);
	assert_int_equal(n, wantlen);
	assert_memory_equal(out, want, wantlen);
}

static void
test_decode_plain_and_null(void **state)
{
	(void)state;
	check_decode("", "", 0, false);
	check_decode("abc", "abc", 3, false);
	check_decode("\\N", "", 0, true);
	/* \N only means NULL as the whole field */
	check_decode("\\Nx", "Nx", 2, false);
	check_decode("x\\N", "xN", 2, false);
	check_decode("\\\\N", "\\N", 2, false);
}

static void
test_decode_escapes(void **state)
{
	(void)state;
	check_decode("a\\tb\\nc\\rd", "a\tb\nc\rd", 7, false);
	check_decode("\\b\\f\\v", "\b\f\v", 3, false);
	check_decode("\\\\", "\\", 1, false);
	check_decode("\\101\\0\\7z", "A\0\az", 4, false);
	check_decode("\\1234", "S4", 2, false);        /* at most three octal digits */
	check_decode("\\x41\\x4a\\x4G", "AJ\x04G", 4, false);
	check_decode("\\xz", "xz", 2, false);          /* \x without a hex digit is x */
	check_decode("\\q\\'", "q'", 2, false);        /* any other character stands for itself */
	check_decode("end\\", "end\\", 4, false);      /* a lone trailing backslash is kept */
	check_decode("h\xc3\xa9llo", "h\xc3\xa9llo", 6, false);
}

static void
test_decode_in_place(void **state)
{
	(void)state;
	char buf[] = "x\\ty\\\\z";
	bool is_null;
	size_t n = sync_copy_decode(buf, strlen(buf), buf, &is_null);
	assert_false(is_null);
	assert_int_equal(n, 5);
	assert_memory_equal(buf, "x\ty\\z", 5);
}

static int
cmp(enum sync_key_order o, const char *a, const char *b)
{
	int c = sync_key_compare(o, a, strlen(a), b, strlen(b));
	int r = sync_key_compare(o, b, strlen(b), a, strlen(a));
	/* antisymmetric */
	assert_int_equal(c < 0, r > 0);
	assert_int_equal(c == 0, r == 0);
	return c;
}

static void
test_bytes(void **state)
{
	(void)state;
	assert_true(cmp(SYNC_KEY_BYTES, "B", "a") < 0);         /* byte order, not a locale's */
	assert_true(cmp(SYNC_KEY_BYTES, "b", "\xc3\xa9") < 0);  /* é after every ASCII letter */
	assert_true(cmp(SYNC_KEY_BYTES, "ab", "abc") < 0);
	assert_true(cmp(SYNC_KEY_BYTES, "", "a") < 0);
	assert_int_equal(cmp(SYNC_KEY_BYTES, "same", "same"), 0);
	assert_true(cmp(SYNC_KEY_BYTES, "a b", "ab") < 0);
	assert_true(cmp(SYNC_KEY_TEXT, "10", "9") < 0);         /* text of any other type: bytes */
	assert_true(cmp(SYNC_KEY_BYTES, "f", "t") < 0);         /* bool: false < true */
	assert_true(cmp(SYNC_KEY_BYTES, "0a000000-0000-0000-0000-000000000000",
	                "a0000000-0000-0000-0000-000000000000") < 0);
	/* bytes beyond 0x7f compare unsigned */
	assert_true(cmp(SYNC_KEY_BYTES, "\x7f", "\x80") < 0);
}

static void
test_bpchar(void **state)
{
	(void)state;
	assert_int_equal(cmp(SYNC_KEY_BPCHAR, "ab  ", "ab"), 0);
	assert_true(cmp(SYNC_KEY_BPCHAR, "a  ", "a\x01") < 0);  /* padding is not a character */
	assert_true(cmp(SYNC_KEY_BYTES, "a  ", "a\x01") > 0);
}

static void
test_int(void **state)
{
	(void)state;
	assert_true(cmp(SYNC_KEY_INT, "9", "10") < 0);
	assert_true(cmp(SYNC_KEY_INT, "-10", "-9") < 0);
	assert_true(cmp(SYNC_KEY_INT, "-1", "0") < 0);
	assert_int_equal(cmp(SYNC_KEY_INT, "42", "42"), 0);
	assert_true(cmp(SYNC_KEY_INT, "-9223372036854775808", "9223372036854775807") < 0);
	assert_true(cmp(SYNC_KEY_INT, "-9223372036854775808", "-9223372036854775807") < 0);
	/* not an integer: after every integer */
	assert_true(cmp(SYNC_KEY_INT, "9223372036854775807", "9223372036854775808") < 0);
	assert_true(cmp(SYNC_KEY_INT, "5", "x") < 0);
	assert_true(cmp(SYNC_KEY_INT, "5", "") < 0);
}

static void
test_numeric(void **state)
{
	(void)state;
	assert_int_equal(cmp(SYNC_KEY_NUMERIC, "1.0", "1.00"), 0);
	assert_int_equal(cmp(SYNC_KEY_NUMERIC, "1", "1.000"), 0);
	assert_int_equal(cmp(SYNC_KEY_NUMERIC, "0", "0.00"), 0);
	assert_int_equal(cmp(SYNC_KEY_NUMERIC, "-0.0", "0"), 0);
	assert_true(cmp(SYNC_KEY_NUMERIC, "9.99", "10") < 0);
	assert_true(cmp(SYNC_KEY_NUMERIC, "10", "10.01") < 0);
	assert_true(cmp(SYNC_KEY_NUMERIC, "0.1", "0.09") > 0);
	assert_true(cmp(SYNC_KEY_NUMERIC, "-2.5", "-2.45") < 0);
	assert_true(cmp(SYNC_KEY_NUMERIC, "-0.01", "0") < 0);
	assert_true(cmp(SYNC_KEY_NUMERIC, "-100", "-99.999") < 0);
	assert_true(cmp(SYNC_KEY_NUMERIC, "0.5", "1") < 0);
	assert_true(cmp(SYNC_KEY_NUMERIC, "123456789012345678901234567890.5",
	                "123456789012345678901234567891") < 0);
	/* -Infinity < finite < Infinity < NaN, as PostgreSQL sorts numeric */
	assert_true(cmp(SYNC_KEY_NUMERIC, "-Infinity", "-1e") < 0);  /* not a number: last */
	assert_true(cmp(SYNC_KEY_NUMERIC, "-Infinity", "-99999999") < 0);
	assert_true(cmp(SYNC_KEY_NUMERIC, "99999999", "Infinity") < 0);
	assert_true(cmp(SYNC_KEY_NUMERIC, "Infinity", "NaN") < 0);
	assert_int_equal(cmp(SYNC_KEY_NUMERIC, "NaN", "NaN"), 0);
}

static void
test_kind_names(void **state)
{
	(void)state;
	assert_string_equal(sync_kind_name(SYNC_INSERT), "insert");
	assert_string_equal(sync_kind_name(SYNC_DIFFERS_KEPT), "differs_kept");
	assert_string_equal(sync_kind_name(SYNC_UNCHANGED), "unchanged");
	assert_string_equal(sync_kind_name(SYNC_KIND_COUNT), "unknown");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_decode_plain_and_null),
		cmocka_unit_test(test_decode_escapes),
		cmocka_unit_test(test_decode_in_place),
		cmocka_unit_test(test_bytes),
		cmocka_unit_test(test_bpchar),
		cmocka_unit_test(test_int),
		cmocka_unit_test(test_numeric),
		cmocka_unit_test(test_kind_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
