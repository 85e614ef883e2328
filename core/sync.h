/* sync.h: data sync: resolving a plan table on both sides and the exact streaming diff of one table. */
#ifndef PGRUNBOOK_SYNC_H
#define PGRUNBOOK_SYNC_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ctx.h"
#include "error.h"
#include "plan.h"

/*
 * How the client orders the values of one key column; the server's ORDER BY is chosen to match:
 *   SYNC_KEY_BYTES   text, varchar, name (ORDER BY "k" COLLATE "C"), uuid and bool (native order,
 *                    which is their text's byte order): memcmp, then the shorter first.
 *   SYNC_KEY_BPCHAR  character(n) (ORDER BY "k" COLLATE "C"): bytes with trailing spaces ignored.
 *   SYNC_KEY_INT     smallint, integer, bigint (native order): by value.
 *   SYNC_KEY_NUMERIC numeric (native order): by decimal value (1.0 = 1.00), -Infinity < finite <
 *                    Infinity < NaN.
 *   SYNC_KEY_TEXT    any other type: the key is read as "k"::text and ordered by it COLLATE "C";
 *                    compared as bytes.
 */
enum sync_key_order {
	SYNC_KEY_BYTES,
	SYNC_KEY_BPCHAR,
	SYNC_KEY_INT,
	SYNC_KEY_NUMERIC,
	SYNC_KEY_TEXT,
};

struct sync_column {
	char               *name;
	char               *type;   /* format_type() on the source, the same on the target */
	bool                key;
	enum sync_key_order order;  /* key columns only */
};

/*
 * One table, resolved on both sides. cols[0 .. nkey) are the key columns in key order, then the
 * other compared columns; the diff's COPY rows hold exactly these fields in this order.
 */
struct sync_spec {
	char                 *plan_name;   /* the table as the plan writes it */
	char                 *schema;
	char                 *table;
	char                 *display;     /* "schema.table" */
	enum plan_sync_mode   mode;
	enum plan_on_conflict on_conflict;
	bool                  delete_rows;
	bool                  protected_;
	bool                  key_from_plan; /* false: the primary key */
	struct sync_column   *cols;
	size_t                ncols;
	size_t                nkey;
	char                 *copy_sql;    /* COPY (SELECT ... ORDER BY ...) TO STDOUT, the same on both sides */
};

/*
 * "schema.table" for a plan table name: "schema.Table" as written, else the plan's
 * migrations.schema (default "public") and the name. Caller frees.
 */
char *sync_table_display(const struct plan *plan, const char *name);

/* Frees everything the spec owns and the spec itself; accepts NULL. */
void sync_spec_free(struct sync_spec *spec);

/*
 * Finds the plan table t on both sides (schema from "schema.Table", else the plan's
 * migrations.schema, else "public"; ordinary and partitioned tables), reads its columns (generated
 * columns left out), the key (t's key, else the primary key of the source, else of the target)
 * and the compared columns (t's columns, else every column, which must then exist on both sides),
 * and checks each compared column has the same type on both sides. Read-only catalog queries.
 * On success stores a new spec in *spec_out (caller frees with sync_spec_free()). On failure
 * returns false with err set (code RB_EXIT_STEP; a missing table, a column on one side only, a
 * type mismatch naming both types, a table without a key, a generated column listed by the plan).
 */
bool sync_table_resolve(PGconn *src, PGconn *dst, const struct plan *plan,
                        const struct plan_sync_table *t, const struct rb_ctx *ctx,
                        struct sync_spec **spec_out, struct rb_error *err);

/*
 * Appends to out the "schema.table" names of the ordinary and partitioned tables of conn (no
 * partitions, no system schemas), sorted. False with err set when the catalog cannot be read.
 */
bool sync_list_tables(PGconn *conn, const struct rb_ctx *ctx, struct strlist *out, struct rb_error *err);

/* What the diff found for one key. */
enum sync_kind {
	SYNC_INSERT,        /* only in the source */
	SYNC_UPDATE,        /* in both, different, upsert + local_wins: the target will be overwritten */
	SYNC_DELETE,        /* only in the target: reported; deleted only with delete: true */
	SYNC_CONFLICT,      /* in both, different, on_conflict error_on_conflict (any mode) */
	SYNC_DIFFERS_KEPT,  /* in both, different, append or prod_wins: the target's row is kept */
	SYNC_UNCHANGED,     /* in both, equal */
	SYNC_KIND_COUNT,
};
/* "insert", "update", "delete", "conflict", "differs_kept", "unchanged". */
const char *sync_kind_name(enum sync_kind k);

/* A decoded field: the exact bytes of the value's text (NUL-terminated), or data NULL for SQL NULL. */
struct sync_value {
	const char *data;
	size_t      len;
};

/*
 * One reported row. src and dst hold spec->ncols values each (dst is NULL for an insert, src for
 * a delete); changed[i] tells whether column i differs (NULL unless both sides are present).
 * Everything is borrowed and valid only during the callback.
 */
struct sync_row {
	enum sync_kind           kind;
	const struct sync_value *src;
	const struct sync_value *dst;
	const bool              *changed;
	size_t                   ncols;
	/* The raw COPY text lines (no newline) behind src and dst; NULL/0 where that side is absent. */
	const char              *src_line;
	size_t                   src_len;
	const char              *dst_line;
	size_t                   dst_len;
};

typedef void (*sync_row_fn)(const struct sync_spec *spec, const struct sync_row *row, void *userdata);

struct sync_counts {
	int64_t n[SYNC_KIND_COUNT];
	int64_t source_rows;
	int64_t target_rows;
};

/*
 * What a diff reports while it runs, all optional. row: every row that is not unchanged, in key
 * order. progress: the counts so far, every SYNC_PROGRESS_ROWS keys merged and
 * once at the end. Both run in the diffing thread and should return quickly.
 */
#define SYNC_PROGRESS_ROWS 16384
struct sync_diff_hooks {
	sync_row_fn row;
	void      (*progress)(const struct sync_spec *spec, const struct sync_counts *counts, void *userdata);
	void       *userdata;
};

/*
 * Diffs one table: starts spec->copy_sql on both connections and reads both streams at the same
 * time (non-blocking, polling both sockets), merging them by key in constant memory (the current
 * row of each side only). Rows compare as the exact bytes of their text under db_connect()'s
 * session settings, so NULL and '' differ and 1.0 and 1.00 differ. Calls hooks (may be NULL) as
 * struct sync_diff_hooks says, and fills *counts. digest_out receives the
 * SHA-256 (hex) of what the changes depend on, in key order: for each insert "I" and the
 * source's key fields as COPY text; for each update, conflict or delete "U", "C" or "D" and the
 * target's whole COPY line; each record ends with a newline. Rows whose target is kept
 * (differs_kept), and rows only in the target when the spec does not delete them, are not part
 * of it. A duplicate key or a NULL key on either side, a skip-mode
 * spec, a server error or ctx's cancel flag (both statements are cancelled) end it: false with
 * err set (code RB_EXIT_STEP). Both connections are left idle and in blocking mode.
 */
bool sync_diff_table(PGconn *src, PGconn *dst, const struct sync_spec *spec,
                     const struct rb_ctx *ctx, const struct sync_diff_hooks *hooks,
                     struct sync_counts *counts, char digest_out[65], struct rb_error *err);


/*
 * Decodes one field of COPY's text format in[0 .. len) into out, which may be in itself (the
 * result is never longer). "\N" alone is NULL (*is_null set, returns 0); backslash escapes \b \f
 * \n \r \t \v, \ooo (octal, 1-3 digits), \xh and \xhh are decoded, a backslash before any other
 * character yields that character. Returns the decoded length (no NUL is added).
 */
size_t sync_copy_decode(const char *in, size_t len, char *out, bool *is_null);

/*
 * Compares two decoded key values under a key order: negative, 0 or positive. Values that do
 * not parse under SYNC_KEY_INT or SYNC_KEY_NUMERIC compare as bytes after every valid value.
 */
int sync_key_compare(enum sync_key_order order, const char *a, size_t alen, const char *b, size_t blen);

#endif
