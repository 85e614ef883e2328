/* sync_review.h: the review file: a saved sync diff, the exact rows `sync apply` writes. */
#ifndef PGRUNBOOK_SYNC_REVIEW_H
#define PGRUNBOOK_SYNC_REVIEW_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "error.h"
#include "plan.h"
#include "sync.h"

/*
 * The file (text, mode 0600, written to PATH.tmp, fsynced and renamed, so a file under its name
 * is always whole):
 *
 *   pgrunbook-review 1
 *   H <JSON: plan_hash, plan_name, plan_path, source, target, target_database, created_at, created_by>
 *   T <JSON: one table: table, plan_name, schema, name, mode, on_conflict, delete, protected,
 *      mode_explicit, key_from_plan, columns [{name, type, key, order}]>
 *   I\t<the source's COPY line>      a row to insert
 *   U\t<the source's COPY line>      a row to overwrite (upsert + local_wins) ...
 *   u\t<the target's COPY line>      ... and the target's row it replaces (as reviewed)
 *   C\t<the source's COPY line>      a conflict (error_on_conflict) ...
 *   c\t<the target's COPY line>      ... and the target's row
 *   D\t<the target's COPY line>      a row only in the target
 *   E <JSON: counts {insert, update, delete, conflict, differs_kept, unchanged, source_rows,
 *      target_rows}, digest, records>
 *   ... more T .. E blocks, in the order diffed ...
 *   S <JSON: skipped [{table, why}]>
 *   Z <SHA-256 hex of every byte before this line>
 *
 * Lines are COPY text lines as the diff read them, so every field is already escaped (no raw tab
 * or newline). Records are in key order. Rows that differ but are kept (append, prod_wins) and
 * unchanged rows are counted, not stored.
 */
#define SYNC_REVIEW_MAGIC "pgrunbook-review 1"

struct sync_review_writer;

/*
 * Starts a review for plan's source -> target, the target database being target_db (its
 * current_database()). Creates path.tmp (refusing to follow a symlink); false with err set when
 * it cannot.
 */
struct sync_review_writer *sync_review_create(const char *path, const struct plan *plan,
                                              const char *target_db, const char *who,
                                              struct rb_error *err);
/* Begins a table's block. */
bool sync_review_table_begin(struct sync_review_writer *w, const struct sync_spec *spec, bool mode_explicit,
                             struct rb_error *err);
/* Stores one reported row (a struct sync_diff_hooks row callback may call it); differs_kept is not stored. */
bool sync_review_row(struct sync_review_writer *w, const struct sync_row *row, struct rb_error *err);
/* Ends the table's block with the diff's counts and digest. */
bool sync_review_table_end(struct sync_review_writer *w, const struct sync_counts *counts,
                           const char digest[65], struct rb_error *err);
/* Records a table that was not synced and why ("not in the plan", "mode skip"). */
void sync_review_skipped(struct sync_review_writer *w, const char *table, const char *why);
/*
 * Writes the S and Z lines, fsyncs, renames path.tmp to path and fsyncs the directory; frees w.
 * False with err set (the .tmp file removed) when any earlier write or this one failed.
 */
bool sync_review_commit(struct sync_review_writer *w, struct rb_error *err);
/* Removes path.tmp and frees w; accepts NULL. */
void sync_review_abort(struct sync_review_writer *w);

struct sync_review_column {
	char               *name;
	char               *type;
	bool                key;
	enum sync_key_order order;
};

struct sync_review_table {
	char                      *display;     /* "schema.table" */
	char                      *plan_name;
	char                      *schema;
	char                      *name;
	enum plan_sync_mode        mode;
	enum plan_on_conflict      on_conflict;
	bool                       delete_rows;
	bool                       protected_;
	bool                       mode_explicit; /* the plan's entry sets mode itself */
	bool                       key_from_plan;
	struct sync_review_column *cols;
	size_t                     ncols;
	size_t                     nkey;
	struct sync_counts         counts;
	char                       digest[65];
	int64_t                    records;      /* record lines stored (I, U, u, C, c, D) */
	long                       offset;       /* file offset of the first record line */
	char                       records_sha256[65]; /* of the record lines as loaded: a cursor that
	                                                  reads other bytes fails at the table's end */
};

struct sync_review {
	char                     *path;
	char                      plan_hash[65];
	char                     *plan_name;
	char                     *source;       /* environment names */
	char                     *target;
	char                     *target_db;
	char                     *created_by;
	int64_t                   created_at;   /* Unix seconds */
	char                      file_sha256[65];
	struct sync_review_table *tables;
	size_t                    ntables;
	struct strlist            skipped;      /* "schema.table (why)" */
};

/*
 * Reads and checks a review: the magic line, the final checksum over the whole file (a
 * truncated or edited file is refused), every line's shape, each table's counts and digest
 * against its rows; with plan given, that its hash, source and target match and that every table
 * is one of the plan's sync tables with the plan's mode, on_conflict, delete and protection (the
 * file's own flags are never trusted alone), holding only rows its mode can produce. False
 * with err set (code RB_EXIT_STEP) saying what is wrong and to run `pgrunbook sync diff --out`
 * again. Caller frees with sync_review_free(); on failure *out is left empty.
 */
bool sync_review_load(const char *path, const struct plan *plan, struct sync_review *out,
                      struct rb_error *err);
void sync_review_free(struct sync_review *rv);

/* Iterates the record lines of one table in file order. */
struct sync_review_cursor;
struct sync_review_cursor *sync_review_open(const struct sync_review *rv, const struct sync_review_table *t,
                                            struct rb_error *err);
/*
 * The next record: its kind letter ('I', 'U', 'u', 'C', 'c', 'D') and the COPY line after the
 * tab (borrowed until the next call, no newline). Returns 1, 0 at the table's end, -1 on a read
 * error (err set). At the table's end the lines read are checked against the table's
 * records_sha256: a file changed since it was loaded returns -1 there ("changed since it was
 * checked"), so a caller that reads to the end before committing never writes changed rows.
 */
int sync_review_next(struct sync_review_cursor *c, char *kind, const char **line, size_t *len,
                     struct rb_error *err);
void sync_review_close(struct sync_review_cursor *c);

/* {"path", "plan_hash", "source", "target", "target_database", "created_at", "created_by",
 *  "tables": [{"table", "mode", "on_conflict", "protected", "delete", "counts": {...}, "digest"}],
 *  "skipped": [...]} */
json_t *sync_review_json(const struct sync_review *rv);

#endif
