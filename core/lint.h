/* lint.h: splits a migration script with libpg_query and classifies each statement safe / risky / dangerous. */
#ifndef PGRUNBOOK_LINT_H
#define PGRUNBOOK_LINT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "error.h"

enum lint_class {
	LINT_SAFE,
	LINT_RISKY,       /* may lock, rewrite, fail on existing rows or break running code */
	LINT_DANGEROUS,   /* loses data or changes identity; deploying needs a typed confirmation */
};

/*
 * The rule catalogue. Codes are stable: PG1xx lose data, PG2xx break running code or fail on
 * existing rows, PG3xx take a long lock or rewrite the table.
 *
 * "Existing table" means a table not created by an earlier statement of the same script: rules
 * marked (*) do not fire on a table the script itself created, since it is empty and unseen.
 *
 *   code   class      fires on / why / safer alternative
 *   PG101  dangerous  DROP TABLE: deletes the table and every row.
 *                     Stop using it in one release, back it up, drop it in a later release.
 *   PG102  dangerous  TRUNCATE: deletes every row under an ACCESS EXCLUSIVE lock.
 *                     DELETE the rows you mean with a WHERE clause, in batches.
 *   PG103  dangerous  UPDATE without WHERE: rewrites every row of the table in one transaction.
 *                     Add a WHERE clause; backfill large tables in batches.
 *   PG104  dangerous  DELETE without WHERE: deletes every row of the table.
 *                     Add a WHERE clause; delete in batches.
 *   PG105  dangerous  primary key change: ALTER TABLE ... DROP CONSTRAINT <x>_pkey, or ADD PRIMARY
 *                     KEY on an existing table; breaks references and identity, rebuilds the index
 *                     under an ACCESS EXCLUSIVE lock.
 *                     Add a new unique key next to the old one (CREATE UNIQUE INDEX CONCURRENTLY),
 *                     move references, then switch in a later release.
 *   PG106  dangerous  DROP SCHEMA or DROP DATABASE: deletes every object in it.
 *                     Drop the objects one by one after a backup, in a later release.
 *   PG107  risky      DROP COLUMN: the column's data is lost and code still reading it fails.
 *                     Stop reading and writing it first; drop it in a later release.
 *   PG201  risky      RENAME COLUMN: running code using the old name fails.
 *                     Add the new column, write both, backfill, switch readers, drop the old.
 *   PG202  risky      RENAME of a table or view: running code using the old name fails.
 *                     Create the new name (or a view under the old one) and switch readers first.
 *   PG203  risky (*)  ALTER COLUMN TYPE: most type changes rewrite the table and its indexes under
 *                     an ACCESS EXCLUSIVE lock, and can fail on existing values.
 *                     Add a new column of the new type, backfill in batches, switch, drop the old.
 *   PG204  risky (*)  ADD COLUMN ... NOT NULL without DEFAULT: fails as soon as the table has a row.
 *                     Add it with a constant DEFAULT, or nullable, backfill, then add the constraint.
 *   PG205  risky      ALTER TABLE ... DROP CONSTRAINT (not the primary key): data the constraint
 *                     kept out can come in, and code may rely on it.
 *                     Make sure nothing relies on it; keep it NOT VALID rather than dropping.
 *   PG206  risky      DROP of another object (view, materialized view, type, function, sequence,
 *                     ...): code using it fails.
 *                     Stop using it in one release, drop it in a later one.
 *   PG301  risky (*)  CREATE INDEX without CONCURRENTLY: blocks writes to the table while it builds.
 *                     CREATE INDEX CONCURRENTLY (outside a transaction block).
 *   PG302  risky      DROP INDEX without CONCURRENTLY: takes an ACCESS EXCLUSIVE lock on the table.
 *                     DROP INDEX CONCURRENTLY.
 *   PG303  risky (*)  FOREIGN KEY without NOT VALID: scans the table and locks both tables while
 *                     it validates every row.
 *                     ADD CONSTRAINT ... NOT VALID, then VALIDATE CONSTRAINT in a second statement.
 *   PG304  risky (*)  CHECK without NOT VALID: scans the whole table under an ACCESS EXCLUSIVE lock.
 *                     ADD CONSTRAINT ... NOT VALID, then VALIDATE CONSTRAINT in a second statement.
 *   PG305  risky (*)  SET NOT NULL: scans the whole table under an ACCESS EXCLUSIVE lock.
 *                     Add CHECK (col IS NOT NULL) NOT VALID, VALIDATE it, then SET NOT NULL (PG 12+
 *                     uses the valid check and skips the scan), and drop the check.
 *   PG306  risky (*)  ADD COLUMN with a volatile default (random(), gen_random_uuid(),
 *                     clock_timestamp(), nextval(), serial types, a function not known to be
 *                     stable), or a stored generated or identity column: rewrites the whole table
 *                     under an ACCESS EXCLUSIVE lock (constant and stable defaults such as now() do
 *                     not, since PostgreSQL 11).
 *                     Add the column nullable or with a constant default, then backfill in batches.
 *   PG307  risky (*)  ADD UNIQUE without USING INDEX: builds the index while blocking writes.
 *                     CREATE UNIQUE INDEX CONCURRENTLY, then ADD CONSTRAINT ... UNIQUE USING INDEX.
 *
 * Everything else is safe: CREATE TABLE, ADD COLUMN nullable or with a constant default, CREATE
 * INDEX CONCURRENTLY, ADD ... UNIQUE USING INDEX, NOT VALID constraints, VALIDATE CONSTRAINT, ...
 */
struct lint_rule {
	const char     *code;         /* "PG107" */
	enum lint_class class;
	const char     *summary;      /* "drop column" */
	const char     *why;          /* one line */
	const char     *alternative;  /* one line */
};

/* The whole catalogue, in code order (static storage); *n receives its length. */
const struct lint_rule *lint_rules(size_t *n);
/* The rule with that code, or NULL. */
const struct lint_rule *lint_rule_find(const char *code);
/* "safe", "risky", "dangerous". */
const char *lint_class_name(enum lint_class c);

/* One rule firing on one statement; detail names the object ("column \"senderPhone\" of \"Order\""). */
struct lint_finding {
	const struct lint_rule *rule;   /* borrowed from the catalogue */
	char                   *detail;
};

struct lint_stmt {
	char                *text;            /* the statement, from its first token to its end,
	                                         without the terminating semicolon */
	int                  line;            /* 1-based line of its first token in the script */
	int                  column;          /* 1-based column (characters) of its first token */
	enum lint_class      class;           /* the worst of its findings; LINT_SAFE when none */
	const char          *code;            /* the code of the worst finding; NULL when safe */
	struct lint_finding *findings;        /* in the order they were found */
	size_t               n_findings;
	bool                 no_transaction;  /* cannot run inside a transaction block (CREATE/DROP
	                                         INDEX CONCURRENTLY, REINDEX CONCURRENTLY, VACUUM,
	                                         ALTER SYSTEM, CREATE/DROP DATABASE, ...) */
	bool                 transaction_control; /* BEGIN, COMMIT, ROLLBACK, SAVEPOINT, ...: the
	                                         script manages its own transactions */
	bool                 client_copy;     /* COPY FROM STDIN / TO STDOUT: needs client data a
	                                         migration cannot give */
	char                *concurrent_index;/* CREATE INDEX CONCURRENTLY: the index's name as
	                                         written (NULL when it has none) */
	char                *concurrent_schema;/* and the schema of its table, NULL when unqualified */
};

struct lint_result {
	char             *name;                  /* the migration name given to lint_script() */
	struct lint_stmt *stmts;
	size_t            n_stmts;
	enum lint_class   class;                 /* the worst statement class */
	bool              needs_statement_mode;  /* some statement has no_transaction: the script
	                                            cannot run as one simple-query batch */
	/* Set when lint_script() failed on a syntax error; 0 otherwise. */
	int               error_line;            /* 1-based */
	int               error_column;          /* 1-based, in characters */
};

/*
 * Splits the script (NUL-terminated SQL) into statements with libpg_query's parser and classifies
 * each one. `name` names the migration in messages. `out` is always initialised and owns
 * everything; the caller frees it with lint_result_free() whatever the return value.
 *
 * On a syntax error returns false with out->error_line/error_column set and err->message as
 * "<name>:<line>:<column>: <parser message>" (code RB_EXIT_STEP), and a detail quoting the line.
 * Needs no database and changes nothing.
 */
bool lint_script(const char *name, const char *sql, struct lint_result *out, struct rb_error *err);

/* Frees what lint_script() filled and zeroes the struct; accepts a zeroed struct. */
void lint_result_free(struct lint_result *r);

/*
 * The result as JSON (caller decrefs):
 * {"migration": name, "class": "risky", "needs_statement_mode": false,
 *  "statements": [{"line": 8, "column": 1, "class": "risky", "code": "PG107", "no_transaction": false,
 *                  "sql": "...", "findings": [{"code", "class", "summary", "why", "alternative",
 *                  "detail"}]}]}
 */
json_t *lint_to_json(const struct lint_result *r);

/*
 * Frees libpg_query's per-thread memory; call once when done linting (keeps leak checkers quiet).
 * Only in a thread that lives on (the main thread): libpg_query frees a thread's memory itself
 * when the thread ends, and calling this first in such a thread frees it twice.
 */
void lint_shutdown(void);

#endif
