/* effects.h: what a migration's statements change in the catalog, and which of those changes are visible. */
#ifndef PGRUNBOOK_EFFECTS_H
#define PGRUNBOOK_EFFECTS_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

#include "ctx.h"
#include "error.h"
#include "lint.h"

/* Whether the catalog shows a statement's effect as done. */
enum effect_seen {
	EFFECT_DONE,      /* the catalog is as the statement leaves it */
	EFFECT_NOT_DONE,  /* the catalog is as before the statement */
	EFFECT_UNKNOWN,   /* the catalog cannot tell (data changes, settings, ...) */
};

struct effect {
	size_t           stmt;            /* 0-based index into the lint result's statements */
	int              line;            /* the statement's line in the script */
	char            *kind;            /* "table", "column", "index", "constraint", "type",
	                                     "enum value", "sequence", "view", "schema", "extension",
	                                     "function", "data", "other" */
	char            *object;          /* "\"public\".\"Order\"", "\"public\".\"User\".\"phone\"",
	                                     "\"public\".\"Role\".'ADMIN'" for an enum value; NULL
	                                     when the statement names nothing checkable */
	bool             expect_present;  /* the statement creates/adds it (true) or drops it (false) */
	enum effect_seen seen;
	bool             invalid_index;   /* an index that exists but is INVALID (indisvalid false) */
	char            *what;            /* one human line: "index \"public\".\"User_email_key\" exists but is INVALID" */
};

struct effects {
	struct effect *items;   /* in statement order; a statement may have several or none */
	size_t         n;
	size_t         done, not_done, unknown;
	size_t         invalid_indexes;
};

/*
 * Re-parses each statement of lr (libpg_query) and looks in the catalog of conn (read-only,
 * catalog names fully qualified, cancellable through ctx) for each effect it would have:
 * tables, columns (with type when the statement sets one), indexes (and whether INVALID),
 * constraints, types and enum values, sequences, views, schemas, extensions, renames (old name
 * gone, new name there), drops (gone). Unqualified names resolve in default_schema (the plan's
 * migrations.schema). Statements that change data or settings give EFFECT_UNKNOWN. A statement
 * that a later statement of the same script undoes or builds on is judged against the end state
 * of the script: e.g. CREATE TABLE t then DROP TABLE t gives "unknown" for both, and so does a
 * create (or rename to) of a name an earlier statement dropped or renamed away, since what is
 * found may be the old object; a column added to a table the script created is judged normally.
 * Unnamed constraints and indexes are looked up under PostgreSQL's default names (t_col_fkey,
 * t_col_key, t_pkey, t_col_check, t_col_idx, function names for expressions); when that name was
 * already taken PostgreSQL appends a digit, which is not followed. BEGIN, COMMIT and SET have no
 * effect; a statement that does not parse gives one unknown effect of kind "other".
 * out is always initialised; free with effects_free(). False with err set (RB_EXIT_STEP) when a
 * catalog query fails.
 */
bool effects_check(PGconn *conn, const char *default_schema, const struct lint_result *lr,
                   const struct rb_ctx *ctx, struct effects *out, struct rb_error *err);
void effects_free(struct effects *e);
/* {"done", "not_done", "unknown", "invalid_indexes", "effects": [{"statement", "line", "kind",
 *   "object", "expect_present", "seen": "done"|"not_done"|"unknown", "invalid_index", "what"}]} */
json_t *effects_to_json(const struct effects *e);
const char *effect_seen_name(enum effect_seen s);

#endif
