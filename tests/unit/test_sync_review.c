/* test_sync_review.c: the review file (write, load, refuse damaged ones) and what an apply of it needs. */
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

#include "core/sync_apply.h"
#include "core/sync_review.h"
#include "core/util.h"

static char dir[] = "/tmp/test_sync_review.XXXXXX";

struct fixture {
	struct plan      plan;
	struct plan_sync_table pt;   /* the plan's entry for the table */
	struct sync_spec spec;
	struct sync_column cols[3];
	char             path[256];
};

static void
fixture_init(struct fixture *f, const char *name)
{
	memset(f, 0, sizeof *f);
	memset(f->plan.hash, 'a', 64);
	f->plan.name = (char *)"unit plan";
	f->plan.path = (char *)"/dev/null";
	f->plan.source = (char *)"dev";
	f->plan.target = (char *)"prod";
	f->cols[0] = (struct sync_column){ .name = (char *)"id", .type = (char *)"integer", .key = true,
	                                   .order = SYNC_KEY_INT };
	f->cols[1] = (struct sync_column){ .name = (char *)"v", .type = (char *)"text" };
	f->cols[2] = (struct sync_column){ .name = (char *)"w", .type = (char *)"text" };
	f->spec = (struct sync_spec){ .plan_name = (char *)"T", .schema = (char *)"public", .table = (char *)"T",
	                              .display = (char *)"public.T", .mode = PLAN_MODE_UPSERT,
	                              .on_conflict = PLAN_CONFLICT_LOCAL_WINS, .cols = f->cols, .ncols = 3, .nkey = 1 };
	snprintf(f->path, sizeof f->path, "%s/%s", dir, name);
	f->plan.sync.present = true;
	f->plan.sync.tables = &f->pt;
	f->plan.sync.ntables = 1;
}

/* The plan's entry as the spec has it (the loader checks the review against it). */
static void
plan_entry_from_spec(struct fixture *f, bool mode_explicit)
{
	f->pt.name = f->spec.plan_name;
	f->pt.mode = f->spec.mode;
	f->pt.mode_explicit = mode_explicit;
	f->pt.on_conflict = f->spec.on_conflict;
	f->pt.delete_rows = f->spec.delete_rows;
	f->pt.protected_ = f->spec.protected_;
}

static void
row(struct sync_review_writer *w, enum sync_kind k, const char *src, const char *dst)
{
	struct sync_row r = { .kind = k, .src_line = src, .src_len = src ? strlen(src) : 0,
	                      .dst_line = dst, .dst_len = dst ? strlen(dst) : 0, .ncols = 3 };
	struct rb_error err = {0};
	assert_true(sync_review_row(w, &r, &err));
}

/* What the diff's digest is for these records (sync.h: "I" key, "U"/"C"/"D" target line). */
static void
digest_of(const char *records, char out[65])
{
	sha256_hex(records, strlen(records), out);
}

/* A review of one table: 2 inserts, 1 update, 1 delete, 1 kept; the digest as the diff computes it. */
static void
write_review(struct fixture *f, enum plan_on_conflict oc, bool conflict)
{
	struct rb_error err = {0};
	f->spec.on_conflict = oc;
	plan_entry_from_spec(f, true);
	struct sync_review_writer *w = sync_review_create(f->path, &f->plan, "shop_prod", "tester", &err);
	assert_non_null(w);
	assert_true(sync_review_table_begin(w, &f->spec, true, &err));
	row(w, SYNC_INSERT, "1\tone\t\\N", NULL);
	row(w, conflict ? SYNC_CONFLICT : SYNC_UPDATE, "2\tnew\tx", "2\told\tx");
	row(w, SYNC_DIFFERS_KEPT, "3\ta\tb", "3\ta\tc");
	row(w, SYNC_DELETE, NULL, "4\tgone\t");
	row(w, SYNC_INSERT, "10\tten\t\\\\t", NULL);
	struct sync_counts c = { .source_rows = 4, .target_rows = 3 };
	c.n[SYNC_INSERT] = 2;
	c.n[conflict ? SYNC_CONFLICT : SYNC_UPDATE] = 1;
	c.n[SYNC_DIFFERS_KEPT] = 1;
	c.n[SYNC_DELETE] = 1;
	char dg[65];
	/* The target-only row is part of the digest only when the table deletes it. */
	char *rec = xasprintf("I1\n%c2\told\tx\n%sI10\n", conflict ? 'C' : 'U', f->spec.delete_rows ? "D4\tgone\t\n" : "");
	digest_of(rec, dg);
	free(rec);
	assert_true(sync_review_table_end(w, &c, dg, &err));
	sync_review_skipped(w, "public.Order", "not in the plan");
	assert_true(sync_review_commit(w, &err));
	rb_error_clear(&err);
}

static void
test_roundtrip(void **state)
{
	(void)state;
	struct fixture f;
	fixture_init(&f, "ok.review");
	write_review(&f, PLAN_CONFLICT_LOCAL_WINS, false);
	struct stat sb;
	assert_int_equal(stat(f.path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	char tmp[300];
	snprintf(tmp, sizeof tmp, "%s.tmp", f.path);
	assert_int_not_equal(access(tmp, F_OK), 0);

	struct sync_review rv;
	struct rb_error err = {0};
	assert_true(sync_review_load(f.path, &f.plan, &rv, &err));
	assert_string_equal(rv.target_db, "shop_prod");
	assert_string_equal(rv.created_by, "tester");
	assert_int_equal(rv.ntables, 1);
	const struct sync_review_table *t = &rv.tables[0];
	assert_string_equal(t->display, "public.T");
	assert_int_equal(t->nkey, 1);
	assert_int_equal(t->ncols, 3);
	assert_int_equal(t->cols[0].order, SYNC_KEY_INT);
	assert_int_equal(t->counts.n[SYNC_INSERT], 2);
	assert_int_equal(t->counts.n[SYNC_UPDATE], 1);
	assert_int_equal(t->counts.n[SYNC_DELETE], 1);
	assert_int_equal(t->records, 5);   /* I, U, u, D, I: the kept row is not stored */
	assert_int_equal(rv.skipped.len, 1);
	assert_string_equal(rv.skipped.items[0], "public.Order (not in the plan)");

	struct sync_review_cursor *c = sync_review_open(&rv, t, &err);
	assert_non_null(c);
	const char *want[] = { "I1\tone\t\\N", "U2\tnew\tx", "u2\told\tx", "D4\tgone\t", "I10\tten\t\\\\t" };
	char kind;
	const char *line;
	size_t len;
	for (size_t i = 0; i < 5; i++) {
		assert_int_equal(sync_review_next(c, &kind, &line, &len, &err), 1);
		assert_int_equal(kind, want[i][0]);
		assert_int_equal(len, strlen(want[i] + 1));
		assert_memory_equal(line, want[i] + 1, len);
	}
	assert_int_equal(sync_review_next(c, &kind, &line, &len, &err), 0);
	sync_review_close(c);

	/* The file changed after it was loaded: a cursor that reads it to the end says so. */
	size_t flen;
	char *bytes = file_read_all(f.path, &flen);
	assert_non_null(bytes);
	char *p = memmem(bytes, flen, "\tnew\t", 5);
	assert_non_null(p);
	p[1] = 'N';
	FILE *o = fopen(f.path, "w");
	assert_non_null(o);
	assert_int_equal(fwrite(bytes, 1, flen, o), flen);
	fclose(o);
	c = sync_review_open(&rv, t, &err);
	assert_non_null(c);
	int r;
	while ((r = sync_review_next(c, &kind, &line, &len, &err)) > 0)
		;
	assert_int_equal(r, -1);
	assert_non_null(strstr(err.message, "changed since it was checked"));
	sync_review_close(c);
	rb_error_clear(&err);
	p[1] = 'n';
	o = fopen(f.path, "w");
	assert_non_null(o);
	assert_int_equal(fwrite(bytes, 1, flen, o), flen);
	fclose(o);
	free(bytes);

	/* Another plan (hash), another target. */
	struct plan other = f.plan;
	other.hash[0] = 'b';
	struct sync_review rv2;
	assert_false(sync_review_load(f.path, &other, &rv2, &err));
	assert_non_null(strstr(err.message, "another version of the plan"));
	sync_review_free(&rv2);
	rb_error_clear(&err);
	other = f.plan;
	other.target = (char *)"staging";
	assert_false(sync_review_load(f.path, &other, &rv2, &err));
	assert_non_null(strstr(err.message, "dev -> prod"));
	sync_review_free(&rv2);
	rb_error_clear(&err);
	/* The plan's rules decide, not the file's: a protected table in the plan, not in the file. */
	other = f.plan;
	struct plan_sync_table pt = f.pt;
	pt.protected_ = true;
	other.sync.tables = &pt;
	assert_false(sync_review_load(f.path, &other, &rv2, &err));
	assert_non_null(strstr(err.message, "other rules"));
	sync_review_free(&rv2);
	rb_error_clear(&err);
	/* A table the plan does not list. */
	pt = f.pt;
	pt.name = (char *)"Other";
	assert_false(sync_review_load(f.path, &other, &rv2, &err));
	assert_non_null(strstr(err.message, "not a sync table of the plan"));
	sync_review_free(&rv2);
	rb_error_clear(&err);
	sync_review_free(&rv);
}

/* Rewrites the file with fn applied to its bytes; the load must fail with a message holding want. */
static void
expect_damaged(const struct fixture *f, void (*fn)(char *buf, size_t *len), const char *want)
{
	size_t len;
	char *buf = file_read_all(f->path, &len);
	assert_non_null(buf);
	char *copy = xmalloc(len + 64);
	memcpy(copy, buf, len);
	fn(copy, &len);
	char bad[300];
	snprintf(bad, sizeof bad, "%s.bad", f->path);
	FILE *o = fopen(bad, "w");
	assert_non_null(o);
	assert_int_equal(fwrite(copy, 1, len, o), len);
	fclose(o);
	struct sync_review rv;
	struct rb_error err = {0};
	assert_false(sync_review_load(bad, &f->plan, &rv, &err));
	if (strstr(err.message, want) == NULL)
		fail_msg("wanted \"%s\" in \"%s\"", want, err.message);
	assert_non_null(err.hint);
	sync_review_free(&rv);
	rb_error_clear(&err);
	free(copy);
	free(buf);
}

static void
cut_last_line(char *buf, size_t *len)
{
	(void)buf;
	*len -= 10;
}

static void
cut_half(char *buf, size_t *len)
{
	(void)buf;
	*len /= 2;
	while (*len && buf[*len - 1] != '\n')
		(*len)--;
}

static void
flip_row_byte(char *buf, size_t *len)
{
	char *p = memmem(buf, *len, "\tnew\t", 5);
	assert_non_null(p);
	p[1] = 'N';
}

static void
drop_row_keep_checksum(char *buf, size_t *len)
{
	/* Remove the "D" record and recompute the file checksum: the counts and digest still catch it. */
	char *p = memmem(buf, *len, "\nD\t4", 4);
	assert_non_null(p);
	char *e = memchr(p + 1, '\n', *len - (size_t)(p + 1 - buf));
	size_t cut = (size_t)(e - p);
	memmove(p, e, *len - (size_t)(e - buf));
	*len -= cut;
	char *z = memmem(buf, *len, "\nZ ", 3);
	assert_non_null(z);
	char hex[65];
	sha256_hex(buf, (size_t)(z + 1 - buf), hex);
	memcpy(z + 3, hex, 64);
}

static void
test_damaged(void **state)
{
	(void)state;
	struct fixture f;
	fixture_init(&f, "damaged.review");
	write_review(&f, PLAN_CONFLICT_LOCAL_WINS, false);
	expect_damaged(&f, cut_last_line, "cut off");
	expect_damaged(&f, cut_half, "cut off");
	expect_damaged(&f, flip_row_byte, "checksum does not match");
	expect_damaged(&f, drop_row_keep_checksum, "counts do not match");
	struct sync_review rv;
	struct rb_error err = {0};
	char missing[300];
	snprintf(missing, sizeof missing, "%s/none.review", dir);
	assert_false(sync_review_load(missing, &f.plan, &rv, &err));
	assert_non_null(strstr(err.message, "could not open"));
	sync_review_free(&rv);
	rb_error_clear(&err);
}

static void
test_needs(void **state)
{
	(void)state;
	struct fixture f;
	struct sync_review rv;
	struct sync_apply_needs n;
	struct rb_error err = {0};

	/* Plain upsert: the apply phrase only. */
	fixture_init(&f, "needs1.review");
	write_review(&f, PLAN_CONFLICT_LOCAL_WINS, false);
	assert_true(sync_review_load(f.path, &f.plan, &rv, &err));
	sync_apply_needs_compute(&rv, &n);
	assert_string_equal(n.phrase, "apply shop_prod");
	assert_null(n.delete_phrase);        /* delete: false: the target-only row stays */
	assert_int_equal(n.refusals.len, 0);
	assert_int_equal(n.overwrite_tables.len, 0);
	assert_int_equal(n.inserts, 2);
	assert_int_equal(n.updates, 1);
	assert_int_equal(n.deletes, 0);
	sync_apply_needs_free(&n);
	sync_review_free(&rv);

	/* Protected with updates, delete: true. */
	fixture_init(&f, "needs2.review");
	f.spec.protected_ = true;
	f.spec.delete_rows = true;
	write_review(&f, PLAN_CONFLICT_LOCAL_WINS, false);
	assert_true(sync_review_load(f.path, &f.plan, &rv, &err));
	sync_apply_needs_compute(&rv, &n);
	assert_int_equal(n.overwrite_tables.len, 1);
	assert_string_equal(n.overwrite_tables.items[0], "public.T");
	assert_non_null(n.delete_phrase);
	assert_string_equal(n.delete_phrase, "delete shop_prod");
	assert_int_equal(n.deletes, 1);
	assert_int_equal(n.refusals.len, 0);   /* the entry sets its mode: appends allowed */
	sync_apply_needs_free(&n);
	sync_review_free(&rv);

	/* A conflict refuses the whole apply. */
	fixture_init(&f, "needs3.review");
	f.spec.mode = PLAN_MODE_UPSERT;
	write_review(&f, PLAN_CONFLICT_ERROR, true);
	assert_true(sync_review_load(f.path, &f.plan, &rv, &err));
	sync_apply_needs_compute(&rv, &n);
	assert_int_equal(n.refusals.len, 1);
	assert_non_null(strstr(n.refusals.items[0], "1 conflict"));
	sync_apply_needs_free(&n);
	sync_review_free(&rv);
	rb_error_clear(&err);
}

/* A protected table whose entry takes its mode from sync.defaults gets no appends. */
static void
test_protected_default_mode(void **state)
{
	(void)state;
	struct fixture f;
	fixture_init(&f, "needs4.review");
	f.spec.protected_ = true;
	plan_entry_from_spec(&f, false);
	struct rb_error err = {0};
	struct sync_review_writer *w = sync_review_create(f.path, &f.plan, "shop_prod", NULL, &err);
	assert_non_null(w);
	assert_true(sync_review_table_begin(w, &f.spec, false, &err));
	row(w, SYNC_INSERT, "1\tone\t\\N", NULL);
	struct sync_counts c = {0};
	c.n[SYNC_INSERT] = 1;
	char dg[65];
	digest_of("I1\n", dg);
	assert_true(sync_review_table_end(w, &c, dg, &err));
	assert_true(sync_review_commit(w, &err));
	struct sync_review rv;
	assert_true(sync_review_load(f.path, &f.plan, &rv, &err));
	struct sync_apply_needs n;
	sync_apply_needs_compute(&rv, &n);
	assert_int_equal(n.refusals.len, 1);
	assert_non_null(strstr(n.refusals.items[0], "sync.defaults"));
	sync_apply_needs_free(&n);
	sync_review_free(&rv);
	rb_error_clear(&err);
}

static int
setup(void **state)
{
	(void)state;
	return mkdtemp(dir) ? 0 : -1;
}

static int
teardown(void **state)
{
	(void)state;
	return remove_tree(dir) ? 0 : -1;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_damaged),
		cmocka_unit_test(test_needs),
		cmocka_unit_test(test_protected_default_mode),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
