/* lint.c: migration linter: libpg_query splits and parses each statement, rules read the JSON parse tree. */
#include "config.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <pg_query.h>

#include "lint.h"
#include "util.h"

/* Whether this thread has called libpg_query since the last lint_shutdown(). */
static _Thread_local bool parsed_in_thread;

static const struct lint_rule rules[] = {
	{"PG101", LINT_DANGEROUS, "drop table",
	 "DROP TABLE deletes the table and every row in it",
	 "stop using the table in one release, back it up, and drop it in a later release"},
	{"PG102", LINT_DANGEROUS, "truncate",
	 "TRUNCATE deletes every row under an ACCESS EXCLUSIVE lock",
	 "DELETE only the rows you mean, with a WHERE clause, in batches"},
	{"PG103", LINT_DANGEROUS, "update without where",
	 "UPDATE without WHERE rewrites every row of the table in one transaction",
	 "add a WHERE clause, and backfill large tables in batches"},
	{"PG104", LINT_DANGEROUS, "delete without where",
	 "DELETE without WHERE deletes every row of the table",
	 "add a WHERE clause, and delete in batches"},
	{"PG105", LINT_DANGEROUS, "primary key change",
	 "changing the primary key breaks references and identity and rebuilds the index under an "
	 "ACCESS EXCLUSIVE lock",
	 "add the new key next to the old one with CREATE UNIQUE INDEX CONCURRENTLY, move the "
	 "references, then switch in a later release"},
	{"PG106", LINT_DANGEROUS, "drop schema or database",
	 "DROP SCHEMA or DROP DATABASE deletes every object in it",
	 "drop the objects one by one after a backup, in a later release"},
	{"PG107", LINT_RISKY, "drop column",
	 "the column's data is lost and code still reading it fails",
	 "stop reading and writing the column first, and drop it in a later release"},
	{"PG201", LINT_RISKY, "rename column",
	 "running code that uses the old column name fails",
	 "add the new column, write both, backfill, switch readers, then drop the old one"},
	{"PG202", LINT_RISKY, "rename table",
	 "running code that uses the old table or view name fails",
	 "create the new name (or a view under the old one) and switch readers first"},
	{"PG203", LINT_RISKY, "alter column type",
	 "most type changes rewrite the table and its indexes under an ACCESS EXCLUSIVE lock and can "
	 "fail on existing values",
	 "add a column of the new type, backfill it in batches, switch, then drop the old column"},
	{"PG204", LINT_RISKY, "not null column without default",
	 "ADD COLUMN ... NOT NULL without a DEFAULT fails as soon as the table has a row",
	 "add it with a constant DEFAULT, or nullable, backfill, then add the constraint"},
	{"PG205", LINT_RISKY, "drop constraint",
	 "data the constraint kept out can come in, and code may rely on it",
	 "make sure nothing relies on the constraint before dropping it"},
	{"PG206", LINT_RISKY, "drop object",
	 "code that uses the dropped object fails",
	 "stop using the object in one release and drop it in a later one"},
	{"PG301", LINT_RISKY, "index without concurrently",
	 "CREATE INDEX blocks writes to the table while the index builds",
	 "use CREATE INDEX CONCURRENTLY, outside a transaction block"},
	{"PG302", LINT_RISKY, "drop index without concurrently",
	 "DROP INDEX takes an ACCESS EXCLUSIVE lock on the table",
	 "use DROP INDEX CONCURRENTLY"},
	{"PG303", LINT_RISKY, "foreign key without not valid",
	 "adding a FOREIGN KEY validates every row while locking both tables",
	 "add the constraint NOT VALID, then VALIDATE CONSTRAINT in a second statement"},
	{"PG304", LINT_RISKY, "check without not valid",
	 "adding a CHECK scans the whole table under an ACCESS EXCLUSIVE lock",
	 "add the constraint NOT VALID, then VALIDATE CONSTRAINT in a second statement"},
	{"PG305", LINT_RISKY, "set not null",
	 "SET NOT NULL scans the whole table under an ACCESS EXCLUSIVE lock",
	 "add CHECK (col IS NOT NULL) NOT VALID, validate it, then SET NOT NULL and drop the check"},
	{"PG306", LINT_RISKY, "volatile default",
	 "a volatile default, stored generated or identity column rewrites the whole table under an "
	 "ACCESS EXCLUSIVE lock",
	 "add the column nullable or with a constant default, then backfill in batches"},
	{"PG307", LINT_RISKY, "unique without using index",
	 "ADD UNIQUE builds its index while blocking writes to the table",
	 "CREATE UNIQUE INDEX CONCURRENTLY, then ADD CONSTRAINT ... UNIQUE USING INDEX"},
};

/* Functions known not to be volatile: as a default they are evaluated once, with no rewrite. */
static const char *const stable_funcs[] = {
	"now", "transaction_timestamp", "statement_timestamp", "current_date", "lower", "upper",
	"btrim", "trim", "length", "concat", "abs", "round", "date_trunc", "make_date",
	"make_interval", "to_timestamp", "to_jsonb", "to_json", "jsonb_build_object",
	"jsonb_build_array", "json_build_object", "json_build_array", "array_fill", "int4", "int8",
	"numeric", "text",
};

static const char *const serial_types[] = {
	"serial", "bigserial", "smallserial", "serial2", "serial4", "serial8",
};

const struct lint_rule *
lint_rules(size_t *n)
{
	*n = RB_ARRAY_LEN(rules);
	return rules;
}

const struct lint_rule *
lint_rule_find(const char *code)
{
	for (size_t i = 0; i < RB_ARRAY_LEN(rules); i++)
		if (strcmp(rules[i].code, code) == 0)
			return &rules[i];
	return NULL;
}

const char *
lint_class_name(enum lint_class c)
{
	switch (c) {
	case LINT_SAFE:
		return "safe";
	case LINT_RISKY:
		return "risky";
	case LINT_DANGEROUS:
		return "dangerous";
	}
	return "unknown";
}

/* A table created earlier in the script. */
struct created {
	char **schemas;   /* "" when unqualified */
	char **names;
	size_t len;
};

struct checker {
	struct lint_stmt *st;
	struct created   *created;
};

static void
add_finding(struct checker *c, const char *code, char *detail)
{
	const struct lint_rule *rule = lint_rule_find(code);
	struct lint_stmt *st = c->st;

	st->findings = xrealloc(st->findings, (st->n_findings + 1) * sizeof(*st->findings));
	st->findings[st->n_findings].rule = rule;
	st->findings[st->n_findings].detail = detail;
	st->n_findings++;
	if (st->code == NULL || rule->class > st->class) {
		st->class = rule->class;
		st->code = rule->code;
	}
}

/* Returns the body of a node {"Type": {...}} when it is of that type, else NULL. */
static json_t *
node_as(json_t *node, const char *type)
{
	return json_is_object(node) ? json_object_get(node, type) : NULL;
}

static const char *
str_of(json_t *obj, const char *key)
{
	return json_string_value(json_object_get(obj, key));
}

static bool
bool_of(json_t *obj, const char *key)
{
	return json_is_true(json_object_get(obj, key));
}

static bool
str_is(json_t *obj, const char *key, const char *want)
{
	const char *s = str_of(obj, key);
	return s != NULL && strcmp(s, want) == 0;
}

/* The last "sval" of a list of String nodes (a function or type name), or NULL. */
static const char *
last_name(json_t *list)
{
	size_t n = json_array_size(list);
	json_t *s;

	if (n == 0)
		return NULL;
	s = node_as(json_array_get(list, n - 1), "String");
	return s ? str_of(s, "sval") : NULL;
}

/* "Order" or "app"."Order" for a RangeVar body (caller frees). */
static char *
rel_display(json_t *rv)
{
	const char *schema = str_of(rv, "schemaname");
	const char *rel = str_of(rv, "relname");

	if (schema != NULL)
		return xasprintf("\"%s\".\"%s\"", schema, rel ? rel : "?");
	return xasprintf("\"%s\"", rel ? rel : "?");
}

static void
created_add(struct created *cr, json_t *rv)
{
	const char *schema = str_of(rv, "schemaname");
	const char *rel = str_of(rv, "relname");

	if (rel == NULL)
		return;
	cr->schemas = xrealloc(cr->schemas, (cr->len + 1) * sizeof(char *));
	cr->names = xrealloc(cr->names, (cr->len + 1) * sizeof(char *));
	cr->schemas[cr->len] = xstrdup(schema ? schema : "");
	cr->names[cr->len] = xstrdup(rel);
	cr->len++;
}

static void
created_free(struct created *cr)
{
	for (size_t i = 0; i < cr->len; i++) {
		free(cr->schemas[i]);
		free(cr->names[i]);
	}
	free(cr->schemas);
	free(cr->names);
}

/*
 * Whether the RangeVar names a table that existed before the script: not created by an earlier
 * statement. An unqualified name matches a qualified one (search_path is not known here).
 */
static bool
is_existing(struct checker *c, json_t *rv)
{
	const char *schema = str_of(rv, "schemaname");
	const char *rel = str_of(rv, "relname");

	if (rel == NULL)
		return true;
	for (size_t i = 0; i < c->created->len; i++) {
		if (strcmp(c->created->names[i], rel) != 0)
			continue;
		if (schema == NULL || c->created->schemas[i][0] == '\0' ||
		    strcmp(c->created->schemas[i], schema) == 0)
			return false;
	}
	return true;
}

static bool
in_list(const char *s, const char *const *list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strcasecmp(s, list[i]) == 0)
			return true;
	return false;
}

/* Returns the name of the first function call in expr not known to be non-volatile, or NULL. */
static const char *
volatile_call(json_t *expr)
{
	const char *key;
	json_t *val;
	size_t i;

	if (json_is_array(expr)) {
		json_array_foreach(expr, i, val) {
			const char *f = volatile_call(val);
			if (f != NULL)
				return f;
		}
		return NULL;
	}
	if (!json_is_object(expr))
		return NULL;
	json_object_foreach(expr, key, val) {
		const char *f;

		if (strcmp(key, "FuncCall") == 0) {
			const char *name = last_name(json_object_get(val, "funcname"));
			if (name == NULL || !in_list(name, stable_funcs, RB_ARRAY_LEN(stable_funcs)))
				return name ? name : "?";
		}
		f = volatile_call(val);
		if (f != NULL)
			return f;
	}
	return NULL;
}

/* ADD COLUMN on the table rv (existing or created by the script). */
static void
check_add_column(struct checker *c, json_t *rv, json_t *coldef)
{
	bool existing = is_existing(c, rv);
	const char *col = str_of(coldef, "colname");
	const char *type = last_name(json_object_get(json_object_get(coldef, "typeName"), "names"));
	bool serial = type != NULL && in_list(type, serial_types, RB_ARRAY_LEN(serial_types));
	bool not_null = false, has_default = serial, rewrites = false;
	char *table = rel_display(rv);
	json_t *con;
	size_t i;

	json_array_foreach(json_object_get(coldef, "constraints"), i, con) {
		json_t *k = node_as(con, "Constraint");
		const char *contype = k ? str_of(k, "contype") : NULL;

		if (contype == NULL || !existing)
			continue;
		if (strcmp(contype, "CONSTR_NOTNULL") == 0) {
			not_null = true;
		} else if (strcmp(contype, "CONSTR_DEFAULT") == 0) {
			const char *f = volatile_call(json_object_get(k, "raw_expr"));
			has_default = true;
			if (f != NULL) {
				add_finding(c, "PG306", xasprintf("column \"%s\" of %s defaults to %s(), "
				    "which is volatile or not known to be stable", col, table, f));
				rewrites = true;
			}
		} else if (strcmp(contype, "CONSTR_IDENTITY") == 0 ||
		    strcmp(contype, "CONSTR_GENERATED") == 0) {
			has_default = true;
			add_finding(c, "PG306", xasprintf("column \"%s\" of %s is %s", col, table,
			    contype[7] == 'I' ? "an identity column" : "a stored generated column"));
			rewrites = true;
		} else if (strcmp(contype, "CONSTR_PRIMARY") == 0) {
			add_finding(c, "PG105", xasprintf("column \"%s\" becomes the primary key of %s",
			    col, table));
		} else if (strcmp(contype, "CONSTR_UNIQUE") == 0) {
			add_finding(c, "PG307", xasprintf("column \"%s\" of %s", col, table));
		} else if (strcmp(contype, "CONSTR_FOREIGN") == 0) {
			if (!bool_of(k, "skip_validation"))
				add_finding(c, "PG303", xasprintf("column \"%s\" of %s", col, table));
		} else if (strcmp(contype, "CONSTR_CHECK") == 0) {
			if (!bool_of(k, "skip_validation"))
				add_finding(c, "PG304", xasprintf("column \"%s\" of %s", col, table));
		}
	}
	if (existing && serial && !rewrites)
		add_finding(c, "PG306", xasprintf("column \"%s\" of %s is %s (a nextval() default)",
		    col, table, type));
	if (existing && not_null && !has_default)
		add_finding(c, "PG204", xasprintf("column \"%s\" of %s", col, table));
	free(table);
}

static void
check_alter_table(struct checker *c, json_t *ats)
{
	json_t *rv = json_object_get(ats, "relation");
	json_t *cmd;
	size_t i;
	bool existing;
	char *table;

	if (!str_is(ats, "objtype", "OBJECT_TABLE") || rv == NULL)
		return;
	existing = is_existing(c, rv);
	table = rel_display(rv);
	json_array_foreach(json_object_get(ats, "cmds"), i, cmd) {
		json_t *k = node_as(cmd, "AlterTableCmd");
		const char *sub = k ? str_of(k, "subtype") : NULL;
		const char *name = k ? str_of(k, "name") : NULL;

		if (sub == NULL)
			continue;
		if (strcmp(sub, "AT_AddColumn") == 0) {
			json_t *def = node_as(json_object_get(k, "def"), "ColumnDef");
			if (def != NULL)
				check_add_column(c, rv, def);
		} else if (strcmp(sub, "AT_DropColumn") == 0) {
			add_finding(c, "PG107", xasprintf("column \"%s\" of %s", name ? name : "?", table));
		} else if (strcmp(sub, "AT_AlterColumnType") == 0) {
			if (existing)
				add_finding(c, "PG203", xasprintf("column \"%s\" of %s", name ? name : "?",
				    table));
		} else if (strcmp(sub, "AT_SetNotNull") == 0) {
			if (existing)
				add_finding(c, "PG305", xasprintf("column \"%s\" of %s", name ? name : "?",
				    table));
		} else if (strcmp(sub, "AT_DropConstraint") == 0) {
			size_t len = name ? strlen(name) : 0;
			if (len >= 5 && strcmp(name + len - 5, "_pkey") == 0)
				add_finding(c, "PG105", xasprintf("constraint \"%s\" of %s", name, table));
			else
				add_finding(c, "PG205", xasprintf("constraint \"%s\" of %s",
				    name ? name : "?", table));
		} else if (strcmp(sub, "AT_AddConstraint") == 0 && existing) {
			json_t *con = node_as(json_object_get(k, "def"), "Constraint");
			const char *contype = con ? str_of(con, "contype") : NULL;
			const char *conname = con ? str_of(con, "conname") : NULL;
			char *what;

			if (contype == NULL)
				continue;
			what = conname ? xasprintf("constraint \"%s\" on %s", conname, table)
			    : xasprintf("on %s", table);
			if (strcmp(contype, "CONSTR_PRIMARY") == 0) {
				add_finding(c, "PG105", what);
				what = NULL;
			} else if (strcmp(contype, "CONSTR_UNIQUE") == 0 ||
			    strcmp(contype, "CONSTR_EXCLUSION") == 0) {
				if (str_of(con, "indexname") == NULL) {
					add_finding(c, "PG307", what);
					what = NULL;
				}
			} else if (strcmp(contype, "CONSTR_FOREIGN") == 0) {
				if (!bool_of(con, "skip_validation")) {
					add_finding(c, "PG303", what);
					what = NULL;
				}
			} else if (strcmp(contype, "CONSTR_CHECK") == 0) {
				if (!bool_of(con, "skip_validation")) {
					add_finding(c, "PG304", what);
					what = NULL;
				}
			}
			free(what);
		}
	}
	free(table);
}

/* The dotted name of one object of a DropStmt (caller frees). */
static char *
drop_object_name(json_t *obj)
{
	json_t *list = node_as(obj, "List");
	struct strbuf sb = {0};
	json_t *item;
	size_t i;

	if (list == NULL) {
		json_t *s = node_as(obj, "String");
		return xasprintf("\"%s\"", s && str_of(s, "sval") ? str_of(s, "sval") : "?");
	}
	json_array_foreach(json_object_get(list, "items"), i, item) {
		json_t *s = node_as(item, "String");
		strbuf_addf(&sb, "%s\"%s\"", i ? "." : "", s && str_of(s, "sval") ? str_of(s, "sval") : "?");
	}
	return strbuf_detach(&sb);
}

static void
check_drop(struct checker *c, json_t *ds)
{
	const char *type = str_of(ds, "removeType");
	bool concurrent = bool_of(ds, "concurrent");
	const char *code;
	json_t *obj;
	size_t i;

	if (type == NULL)
		return;
	if (concurrent)
		c->st->no_transaction = true;
	if (strcmp(type, "OBJECT_TABLE") == 0)
		code = "PG101";
	else if (strcmp(type, "OBJECT_SCHEMA") == 0)
		code = "PG106";
	else if (strcmp(type, "OBJECT_INDEX") == 0)
		code = concurrent ? NULL : "PG302";
	else
		code = "PG206";
	if (code == NULL)
		return;
	json_array_foreach(json_object_get(ds, "objects"), i, obj) {
		char *name = drop_object_name(obj);
		const char *kind = type + 7;   /* after "OBJECT_" */
		char *lower = xstrdup(kind);

		for (char *p = lower; *p; p++)
			*p = *p == '_' ? ' ' : (char)tolower((unsigned char)*p);
		add_finding(c, code, xasprintf("%s %s", lower, name));
		free(lower);
		free(name);
	}
}

static void
check_rename(struct checker *c, json_t *rs)
{
	const char *type = str_of(rs, "renameType");
	json_t *rv = json_object_get(rs, "relation");
	char *table;

	if (type == NULL || rv == NULL)
		return;
	table = rel_display(rv);
	if (strcmp(type, "OBJECT_COLUMN") == 0)
		add_finding(c, "PG201", xasprintf("column \"%s\" of %s to \"%s\"",
		    str_of(rs, "subname") ? str_of(rs, "subname") : "?", table,
		    str_of(rs, "newname") ? str_of(rs, "newname") : "?"));
	else if (strcmp(type, "OBJECT_TABLE") == 0 || strcmp(type, "OBJECT_VIEW") == 0 ||
	    strcmp(type, "OBJECT_MATVIEW") == 0 || strcmp(type, "OBJECT_FOREIGN_TABLE") == 0)
		add_finding(c, "PG202", xasprintf("%s to \"%s\"", table,
		    str_of(rs, "newname") ? str_of(rs, "newname") : "?"));
	free(table);
}

/* Classifies one statement from its parse tree node {"Type": {...}}. */
static void
check_stmt(struct checker *c, json_t *node)
{
	json_t *b;

	if ((b = node_as(node, "CreateStmt")) != NULL) {
		created_add(c->created, json_object_get(b, "relation"));
	} else if ((b = node_as(node, "CreateTableAsStmt")) != NULL) {
		json_t *into = node_as(json_object_get(b, "into"), "IntoClause");
		if (into != NULL)
			created_add(c->created, json_object_get(into, "rel"));
	} else if ((b = node_as(node, "AlterTableStmt")) != NULL) {
		check_alter_table(c, b);
	} else if ((b = node_as(node, "IndexStmt")) != NULL) {
		json_t *rv = json_object_get(b, "relation");
		if (bool_of(b, "concurrent")) {
			c->st->no_transaction = true;
			if (str_of(b, "idxname") != NULL) {
				c->st->concurrent_index = xstrdup(str_of(b, "idxname"));
				if (rv != NULL && str_of(rv, "schemaname") != NULL)
					c->st->concurrent_schema = xstrdup(str_of(rv, "schemaname"));
			}
		} else if (rv != NULL && is_existing(c, rv)) {
			char *table = rel_display(rv);
			const char *idx = str_of(b, "idxname");
			add_finding(c, "PG301", idx ? xasprintf("index \"%s\" on %s", idx, table)
			    : xasprintf("index on %s", table));
			free(table);
		}
	} else if ((b = node_as(node, "DropStmt")) != NULL) {
		check_drop(c, b);
	} else if (node_as(node, "TransactionStmt") != NULL) {
		c->st->transaction_control = true;
	} else if ((b = node_as(node, "CopyStmt")) != NULL) {
		if (str_of(b, "filename") == NULL && !bool_of(b, "is_program"))
			c->st->client_copy = true;
	} else if ((b = node_as(node, "TruncateStmt")) != NULL) {
		json_t *rel;
		size_t i;
		json_array_foreach(json_object_get(b, "relations"), i, rel) {
			json_t *rv = node_as(rel, "RangeVar");
			if (rv != NULL)
				add_finding(c, "PG102", rel_display(rv));
		}
	} else if ((b = node_as(node, "UpdateStmt")) != NULL) {
		if (json_object_get(b, "whereClause") == NULL)
			add_finding(c, "PG103", rel_display(json_object_get(b, "relation")));
	} else if ((b = node_as(node, "DeleteStmt")) != NULL) {
		if (json_object_get(b, "whereClause") == NULL)
			add_finding(c, "PG104", rel_display(json_object_get(b, "relation")));
	} else if ((b = node_as(node, "RenameStmt")) != NULL) {
		check_rename(c, b);
	} else if ((b = node_as(node, "DropdbStmt")) != NULL) {
		c->st->no_transaction = true;
		add_finding(c, "PG106", xasprintf("database \"%s\"",
		    str_of(b, "dbname") ? str_of(b, "dbname") : "?"));
	} else if ((b = node_as(node, "ReindexStmt")) != NULL) {
		json_t *p;
		size_t i;
		json_array_foreach(json_object_get(b, "params"), i, p) {
			json_t *d = node_as(p, "DefElem");
			if (d != NULL && str_is(d, "defname", "concurrently"))
				c->st->no_transaction = true;
		}
	} else if ((b = node_as(node, "VacuumStmt")) != NULL) {
		if (bool_of(b, "is_vacuumcmd"))
			c->st->no_transaction = true;
	} else if (node_as(node, "AlterSystemStmt") != NULL || node_as(node, "CreatedbStmt") != NULL ||
	    node_as(node, "CreateTableSpaceStmt") != NULL || node_as(node, "DropTableSpaceStmt") != NULL) {
		c->st->no_transaction = true;
	}
}

/* Byte offset of the first token at or after off: skips whitespace, -- and nested block comments. */
static size_t
skip_space(const char *s, size_t off, size_t end)
{
	while (off < end) {
		if (isspace((unsigned char)s[off])) {
			off++;
		} else if (s[off] == '-' && off + 1 < end && s[off + 1] == '-') {
			while (off < end && s[off] != '\n')
				off++;
		} else if (s[off] == '/' && off + 1 < end && s[off + 1] == '*') {
			int depth = 1;
			off += 2;
			while (off < end && depth > 0) {
				if (s[off] == '/' && off + 1 < end && s[off + 1] == '*') {
					depth++;
					off += 2;
				} else if (s[off] == '*' && off + 1 < end && s[off + 1] == '/') {
					depth--;
					off += 2;
				} else {
					off++;
				}
			}
		} else {
			break;
		}
	}
	return off;
}

/* 1-based line and column (in UTF-8 characters) of byte offset off. */
static void
line_col(const char *s, size_t off, int *line, int *col)
{
	*line = 1;
	*col = 1;
	for (size_t i = 0; i < off && s[i] != '\0'; i++) {
		if (s[i] == '\n') {
			(*line)++;
			*col = 1;
		} else if (((unsigned char)s[i] & 0xC0) != 0x80) {
			(*col)++;
		}
	}
}

/* Byte offset of the 1-based character position pos (libpg_query's cursorpos); clamps to the end. */
static size_t
char_to_byte(const char *s, int pos)
{
	size_t i = 0;
	int chars = 0;

	while (s[i] != '\0') {
		if (((unsigned char)s[i] & 0xC0) != 0x80) {
			if (++chars == pos)
				return i;
		}
		i++;
	}
	return i;
}

static bool
syntax_error(const char *name, const char *sql, const PgQueryError *pe, struct lint_result *out,
    struct rb_error *err)
{
	size_t off = pe->cursorpos > 0 ? char_to_byte(sql, pe->cursorpos) : strlen(sql);
	size_t bol = off, eol = off;

	line_col(sql, off, &out->error_line, &out->error_column);
	while (bol > 0 && sql[bol - 1] != '\n')
		bol--;
	while (sql[eol] != '\0' && sql[eol] != '\n' && sql[eol] != '\r')
		eol++;
	rb_error_setc(err, RB_EXIT_STEP, "%s:%d:%d: %s", name, out->error_line, out->error_column,
	    pe->message ? pe->message : "syntax error");
	rb_error_detail(err, "Line %d of migration %s: %.*s", out->error_line, name,
	    (int)(eol - bol), sql + bol);
	return false;
}

/* Lints one statement text; false on a parse error (err filled against the whole script). */
static bool
lint_one(struct checker *c, const char *name, const char *sql, size_t start,
    struct lint_result *out, struct rb_error *err)
{
	PgQueryParseResult pr = pg_query_parse(c->st->text);
	json_t *root, *stmts;
	size_t i;
	json_t *s;

	if (pr.error != NULL) {
		PgQueryError shifted = *pr.error;
		/* Make cursorpos count from the start of the script. */
		int before = 0;
		for (size_t k = 0; k < start; k++)
			if (((unsigned char)sql[k] & 0xC0) != 0x80)
				before++;
		if (shifted.cursorpos > 0)
			shifted.cursorpos += before;
		syntax_error(name, sql, &shifted, out, err);
		pg_query_free_parse_result(pr);
		return false;
	}
	root = json_loads(pr.parse_tree, 0, NULL);
	pg_query_free_parse_result(pr);
	if (root == NULL)
		return rb_error_set(err, "could not read the parse tree of migration %s", name);
	stmts = json_object_get(root, "stmts");
	json_array_foreach(stmts, i, s)
		check_stmt(c, json_object_get(s, "stmt"));
	json_decref(root);
	return true;
}

bool
lint_script(const char *name, const char *sql, struct lint_result *out, struct rb_error *err)
{
	parsed_in_thread = true;
	PgQuerySplitResult sr;
	struct created created = {0};
	size_t len = strlen(sql);
	bool ok = true;

	memset(out, 0, sizeof(*out));
	out->name = xstrdup(name);
	sr = pg_query_split_with_parser(sql);
	if (sr.error != NULL) {
		PgQueryParseResult pr = pg_query_parse(sql);
		if (pr.error != NULL)
			syntax_error(name, sql, pr.error, out, err);
		else
			syntax_error(name, sql, sr.error, out, err);
		pg_query_free_parse_result(pr);
		pg_query_free_split_result(sr);
		return false;
	}
	out->stmts = xcalloc(sr.n_stmts > 0 ? (size_t)sr.n_stmts : 1, sizeof(*out->stmts));
	for (int i = 0; i < sr.n_stmts && ok; i++) {
		size_t loc = (size_t)sr.stmts[i]->stmt_location;
		size_t end = sr.stmts[i]->stmt_len > 0 ? loc + (size_t)sr.stmts[i]->stmt_len : len;
		size_t start = skip_space(sql, loc, end);
		struct lint_stmt *st;
		struct checker c;

		while (end > start && isspace((unsigned char)sql[end - 1]))
			end--;
		if (start >= end)
			continue;
		st = &out->stmts[out->n_stmts++];
		st->text = xstrndup(sql + start, end - start);
		line_col(sql, start, &st->line, &st->column);
		c.st = st;
		c.created = &created;
		ok = lint_one(&c, name, sql, start, out, err);
		if (st->class > out->class)
			out->class = st->class;
		if (st->no_transaction)
			out->needs_statement_mode = true;
	}
	pg_query_free_split_result(sr);
	created_free(&created);
	return ok;
}

void
lint_result_free(struct lint_result *r)
{
	if (r == NULL)
		return;
	for (size_t i = 0; i < r->n_stmts; i++) {
		struct lint_stmt *st = &r->stmts[i];
		for (size_t k = 0; k < st->n_findings; k++)
			free(st->findings[k].detail);
		free(st->findings);
		free(st->text);
		free(st->concurrent_index);
		free(st->concurrent_schema);
	}
	free(r->stmts);
	free(r->name);
	memset(r, 0, sizeof(*r));
}

json_t *
lint_to_json(const struct lint_result *r)
{
	json_t *stmts = json_array();

	for (size_t i = 0; i < r->n_stmts; i++) {
		const struct lint_stmt *st = &r->stmts[i];
		json_t *findings = json_array();

		for (size_t k = 0; k < st->n_findings; k++) {
			const struct lint_finding *f = &st->findings[k];
			json_array_append_new(findings, json_pack("{s:s, s:s, s:s, s:s, s:s, s:s?}",
			    "code", f->rule->code, "class", lint_class_name(f->rule->class),
			    "summary", f->rule->summary, "why", f->rule->why,
			    "alternative", f->rule->alternative, "detail", f->detail));
		}
		json_array_append_new(stmts, json_pack("{s:i, s:i, s:s, s:s?, s:b, s:s, s:o}",
		    "line", st->line, "column", st->column, "class", lint_class_name(st->class),
		    "code", st->code, "no_transaction", st->no_transaction, "sql", st->text,
		    "findings", findings));
	}
	return json_pack("{s:s, s:s, s:b, s:o}", "migration", r->name ? r->name : "",
	    "class", lint_class_name(r->class), "needs_statement_mode", r->needs_statement_mode,
	    "statements", stmts);
}

void
lint_shutdown(void)
{
	/* pg_query_exit() crashes in a thread that never parsed: its memory context does not exist. */
	if (parsed_in_thread)
		pg_query_exit();
	parsed_in_thread = false;
}
