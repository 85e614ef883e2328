/* effects.c: re-parses a migration's statements and looks in the catalog for what each one changes. */
#include "config.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <pg_query.h>

#include "db.h"
#include "effects.h"
#include "util.h"


/* What kind of catalog object an effect is about. */
enum obj {
	OBJ_NONE,        /* nothing to look up (unknown_why says why) */
	OBJ_REL,         /* pg_class: table, index, view, sequence, ... (relkinds) */
	OBJ_COLUMN,      /* name = table, sub = column */
	OBJ_CONSTRAINT,  /* name = table, sub = constraint */
	OBJ_TYPE,        /* pg_type */
	OBJ_ENUMVAL,     /* name = type, sub = label */
	OBJ_SCHEMA,      /* name */
	OBJ_EXTENSION,   /* name */
	OBJ_FUNCTION,    /* name, nargs (-1: any) */
};

/* Which property of the object the statement sets. */
enum aspect {
	ASP_PRESENCE,  /* it exists (want) or is gone (!want) */
	ASP_RENAME,    /* old name (sub or name) gone, newname there */
	ASP_TYPE,      /* a column has the type */
	ASP_NOTNULL,   /* a column is NOT NULL (want) or nullable */
	ASP_VALID,     /* a constraint is validated */
};

/* One effect while it is being worked out; becomes a struct effect. */
struct cand {
	size_t      stmt;
	int         line;
	const char *kind;
	enum obj    obj;
	enum aspect asp;
	char       *schema, *name, *sub, *newname;
	const char *relkinds;   /* OBJ_REL: the pg_class relkinds that count */
	const char *relword;    /* OBJ_REL: "table", "index", ... for messages */
	char       *parent;     /* OBJ_REL index: its table's name (same schema), or NULL */
	int         nargs;
	bool        want;
	char       *typ_pg, *typ_schema, *typ_text;  /* ASP_TYPE: the type, two ways to resolve it */
	int         typmod;
	bool        typmod_known;
	bool        typmod_unknown;   /* ASP_TYPE: modifiers given that are not worked out here */
	char        typtype[2];       /* OBJ_TYPE: the pg_type.typtype it creates ("e", "d", "c"), "" any */
	char       *ambiguous;        /* set: when present, something else may carry the name (why) */
	char       *unknown_why;  /* set: seen unknown without a lookup */
	char       *object;
	/* After the end-state pass: a later statement changes it again (its line), or 0. */
	int         undone_by;
	/* A drop of what an earlier statement of the script creates (its line), or 0. */
	int         made_by;
	/* A create (or rename to) of a name an earlier statement drops or renames away, or 0. */
	int         freed_by;
};

struct collector {
	struct cand *items;
	size_t       n;
	const char  *default_schema;
	size_t       stmt;
	int          line;
	bool         quiet;  /* the statement has no lasting effect (BEGIN, COMMIT, SET) */
};

/* ---- parse tree helpers (the JSON form of libpg_query's tree) ---- */

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

static const char *
sval(json_t *node)
{
	json_t *s = node_as(node, "String");
	return s ? str_of(s, "sval") : NULL;
}

/* Identifier quoted for display ("a""b" for a"b). Caller frees. */
static char *
qi(const char *s)
{
	struct strbuf sb = {0};
	strbuf_addc(&sb, '"');
	for (; s && *s; s++) {
		if (*s == '"')
			strbuf_addc(&sb, '"');
		strbuf_addc(&sb, *s);
	}
	strbuf_addc(&sb, '"');
	return strbuf_detach(&sb);
}

/* "schema"."name" or "schema"."name"."sub" for display. Caller frees. */
static char *
display(const char *schema, const char *name, const char *sub)
{
	struct strbuf sb = {0};
	char *q;
	if (schema) {
		q = qi(schema);
		strbuf_adds(&sb, q);
		free(q);
	}
	if (name) {
		q = qi(name);
		strbuf_addf(&sb, "%s%s", sb.len ? "." : "", q);
		free(q);
	}
	if (sub) {
		q = qi(sub);
		strbuf_addf(&sb, "%s%s", sb.len ? "." : "", q);
		free(q);
	}
	return strbuf_detach(&sb);
}

static struct cand *
cand_new(struct collector *c, const char *kind, enum obj obj, enum aspect asp, const char *schema,
         const char *name, const char *sub)
{
	c->items = xrealloc(c->items, (c->n + 1) * sizeof *c->items);
	struct cand *k = &c->items[c->n++];
	memset(k, 0, sizeof *k);
	k->stmt = c->stmt;
	k->line = c->line;
	k->kind = kind;
	k->obj = obj;
	k->asp = asp;
	k->schema = schema ? xstrdup(schema) : NULL;
	k->name = name ? xstrdup(name) : NULL;
	k->sub = sub ? xstrdup(sub) : NULL;
	k->want = true;
	k->nargs = -1;
	k->object = (name || schema) ? display(schema, name, sub) : NULL;
	return k;
}

/* An effect that cannot be checked in the catalog. */
static void
add_unknown(struct collector *c, const char *kind, const char *schema, const char *name, char *why)
{
	struct cand *k = cand_new(c, kind, OBJ_NONE, ASP_PRESENCE, schema, name, NULL);
	k->unknown_why = why;
}

static void
cand_free(struct cand *k)
{
	free(k->schema);
	free(k->name);
	free(k->sub);
	free(k->newname);
	free(k->parent);
	free(k->typ_pg);
	free(k->typ_schema);
	free(k->typ_text);
	free(k->unknown_why);
	free(k->ambiguous);
	free(k->object);
}

/* The schema of a RangeVar body, or the default. Borrowed. */
static const char *
rv_schema(struct collector *c, json_t *rv)
{
	const char *s = str_of(rv, "schemaname");
	return s ? s : c->default_schema;
}

/*
 * A qualified name given as a list of String nodes (List items or a plain array): the last is the
 * name, the one before it the schema (default when absent). False when it is not such a list.
 */
static bool
qualified(struct collector *c, json_t *list, const char **schema, const char **name)
{
	json_t *l = node_as(list, "List");
	if (l)
		list = json_object_get(l, "items");
	size_t n = json_array_size(list);
	if (n == 0)
		return false;
	*name = sval(json_array_get(list, n - 1));
	*schema = n >= 2 ? sval(json_array_get(list, n - 2)) : c->default_schema;
	return *name != NULL && *schema != NULL;
}

/* ---- types ---- */

static int
const_int(json_t *node)
{
	json_t *c = node_as(node, "A_Const");
	json_t *iv = c ? json_object_get(c, "ival") : NULL;
	if (iv == NULL)
		return -1;
	return (int)json_integer_value(json_object_get(iv, "ival"));  /* 0 is left out of the tree */
}

/* Quoted "schema"."name" plus [] per array bound, for to_regtype(). Caller frees. */
static char *
type_string(const char *schema, const char *name, size_t bounds)
{
	struct strbuf sb = {0};
	char *qs = qi(schema), *qn = qi(name);
	strbuf_addf(&sb, "%s.%s", qs, qn);
	free(qs);
	free(qn);
	for (size_t i = 0; i < bounds; i++)
		strbuf_adds(&sb, "[]");
	return strbuf_detach(&sb);
}

/*
 * Fills the type of an ASP_TYPE candidate from a TypeName body: the two ways it may resolve
 * (pg_catalog first, as on a connection whose search_path is the migrations schema, then that
 * schema) and the typmod when it is one PostgreSQL computes simply.
 */
static void
cand_set_type(struct collector *c, struct cand *k, json_t *tn)
{
	json_t *names = json_object_get(tn, "names");
	size_t nn = json_array_size(names);
	const char *name = sval(json_array_get(names, nn - 1));
	const char *schema = nn >= 2 ? sval(json_array_get(names, nn - 2)) : NULL;
	size_t bounds = json_array_size(json_object_get(tn, "arrayBounds"));
	json_t *mods = json_object_get(tn, "typmods");
	size_t nm = json_array_size(mods);

	if (name == NULL) {
		k->unknown_why = xstrdup("the type could not be read from the statement");
		return;
	}
	k->typ_pg = type_string(schema ? schema : "pg_catalog", name, bounds);
	k->typ_schema = type_string(schema ? schema : c->default_schema, name, bounds);
	k->typmod = -1;
	k->typmod_known = true;
	bool builtin = schema == NULL || strcmp(schema, "pg_catalog") == 0;
	int m0 = nm > 0 ? const_int(json_array_get(mods, 0)) : -1;
	if (nm == 0) {
		k->typmod = -1;
	} else if (builtin && m0 >= 0 && (strcmp(name, "varchar") == 0 || strcmp(name, "bpchar") == 0)) {
		k->typmod = m0 + 4;   /* VARHDRSZ */
	} else if (builtin && m0 >= 0 && (strcmp(name, "numeric") == 0 || strcmp(name, "decimal") == 0)) {
		/*
		 * The scale: libpg_query's JSON leaves 0 out and writes a negative one (PostgreSQL 15
		 * allows numeric(5,-2)) the same way, so an absent value cannot be read: unknown then.
		 */
		json_t *sc = nm > 1 ? node_as(json_array_get(mods, 1), "A_Const") : NULL;
		json_t *sv = sc ? json_object_get(sc, "ival") : NULL;
		int scale = nm > 1 ? const_int(json_array_get(mods, 1)) : 0;
		if (nm > 1 && (sv == NULL || json_object_get(sv, "ival") == NULL || scale < 0)) {
			k->typmod_known = false;
			k->typmod_unknown = true;
		} else {
			k->typmod = ((m0 << 16) | scale) + 4;
		}
	} else if (builtin && m0 >= 0 && nm == 1 &&
	           (strcmp(name, "timestamp") == 0 || strcmp(name, "timestamptz") == 0 ||
	            strcmp(name, "time") == 0 || strcmp(name, "timetz") == 0 ||
	            strcmp(name, "bit") == 0 || strcmp(name, "varbit") == 0)) {
		k->typmod = m0;
	} else {
		k->typmod_known = false;
		k->typmod_unknown = true;  /* the type may match while its modifier does not: say unknown */
	}
	struct strbuf sb = {0};
	strbuf_adds(&sb, name);
	if (nm > 0) {
		strbuf_addc(&sb, '(');
		for (size_t i = 0; i < nm; i++)
			strbuf_addf(&sb, "%s%d", i ? "," : "", const_int(json_array_get(mods, i)));
		strbuf_addc(&sb, ')');
	}
	for (size_t i = 0; i < bounds; i++)
		strbuf_adds(&sb, "[]");
	k->typ_text = strbuf_detach(&sb);
}

/* ---- statements -> candidates ---- */

static void
add_rel(struct collector *c, const char *kind, const char *relkinds, const char *schema,
        const char *name, bool want)
{
	struct cand *k = cand_new(c, kind, OBJ_REL, ASP_PRESENCE, schema, name, NULL);
	k->relkinds = relkinds;
	k->relword = kind;
	k->want = want;
}

/* A constraint added to table (from ADD CONSTRAINT or a column's inline constraint). */
static void
add_constraint(struct collector *c, const char *schema, const char *table, const char *col, json_t *con)
{
	const char *contype = str_of(con, "contype");
	if (contype == NULL || strcmp(contype, "CONSTR_NOTNULL") == 0 || strcmp(contype, "CONSTR_NULL") == 0 ||
	    strcmp(contype, "CONSTR_DEFAULT") == 0 || strcmp(contype, "CONSTR_IDENTITY") == 0 ||
	    strcmp(contype, "CONSTR_GENERATED") == 0 || strncmp(contype, "CONSTR_ATTR_", 12) == 0)
		return;
	const char *given = str_of(con, "conname");
	if (given == NULL)
		given = str_of(con, "indexname");  /* ADD ... USING INDEX keeps the index's name */
	/*
	 * An unnamed constraint's name cannot be predicted reliably (PostgreSQL appends a digit when
	 * the default name is taken, and names CHECKs after the columns of their expression), and a
	 * wrong guess would let a mark be allowed wrongly: such a constraint is unknown.
	 */
	(void)col;
	char *name = given ? xstrdup(given) : NULL;
	if (name == NULL) {
		char *t = display(schema, table, NULL);
		add_unknown(c, "constraint", schema, table,
		            xasprintf("an unnamed constraint on %s: its name cannot be predicted reliably, so it "
		                      "cannot be checked", t));
		free(t);
		return;
	}
	cand_new(c, "constraint", OBJ_CONSTRAINT, ASP_PRESENCE, schema, table, name);
	free(name);
}

static void
collect_alter_table(struct collector *c, json_t *ats)
{
	json_t *rv = json_object_get(ats, "relation");
	const char *objtype = str_of(ats, "objtype");
	if (rv == NULL || objtype == NULL || strcmp(objtype, "OBJECT_TABLE") != 0) {
		add_unknown(c, "other", rv ? rv_schema(c, rv) : NULL, rv ? str_of(rv, "relname") : NULL,
		            xasprintf("ALTER %s cannot be checked",
		                      objtype && strncmp(objtype, "OBJECT_", 7) == 0 ? objtype + 7 : "?"));
		return;
	}
	const char *schema = rv_schema(c, rv);
	const char *table = str_of(rv, "relname");
	json_t *cmd;
	size_t i;
	json_array_foreach(json_object_get(ats, "cmds"), i, cmd) {
		json_t *k = node_as(cmd, "AlterTableCmd");
		const char *sub = k ? str_of(k, "subtype") : NULL;
		const char *name = k ? str_of(k, "name") : NULL;
		if (sub == NULL)
			continue;
		if (strcmp(sub, "AT_AddColumn") == 0) {
			json_t *def = node_as(json_object_get(k, "def"), "ColumnDef");
			const char *col = def ? str_of(def, "colname") : NULL;
			if (col == NULL)
				continue;
			cand_new(c, "column", OBJ_COLUMN, ASP_PRESENCE, schema, table, col);
			json_t *con;
			size_t j;
			json_array_foreach(json_object_get(def, "constraints"), j, con) {
				json_t *b = node_as(con, "Constraint");
				if (b)
					add_constraint(c, schema, table, col, b);
			}
		} else if (strcmp(sub, "AT_DropColumn") == 0 && name) {
			cand_new(c, "column", OBJ_COLUMN, ASP_PRESENCE, schema, table, name)->want = false;
		} else if (strcmp(sub, "AT_AlterColumnType") == 0 && name) {
			json_t *def = node_as(json_object_get(k, "def"), "ColumnDef");
			struct cand *t = cand_new(c, "column", OBJ_COLUMN, ASP_TYPE, schema, table, name);
			if (def && json_object_get(def, "typeName"))
				cand_set_type(c, t, json_object_get(def, "typeName"));
			else
				t->unknown_why = xstrdup("the new type could not be read from the statement");
		} else if ((strcmp(sub, "AT_SetNotNull") == 0 || strcmp(sub, "AT_DropNotNull") == 0) && name) {
			cand_new(c, "column", OBJ_COLUMN, ASP_NOTNULL, schema, table, name)->want = sub[3] == 'S';
		} else if (strcmp(sub, "AT_AddConstraint") == 0) {
			json_t *con = node_as(json_object_get(k, "def"), "Constraint");
			if (con)
				add_constraint(c, schema, table, NULL, con);
		} else if (strcmp(sub, "AT_DropConstraint") == 0 && name) {
			cand_new(c, "constraint", OBJ_CONSTRAINT, ASP_PRESENCE, schema, table, name)->want = false;
		} else if (strcmp(sub, "AT_ValidateConstraint") == 0 && name) {
			cand_new(c, "constraint", OBJ_CONSTRAINT, ASP_VALID, schema, table, name);
		} else {
			char *t = display(schema, table, NULL);
			add_unknown(c, "other", schema, table,
			            xasprintf("ALTER TABLE %s: %s cannot be checked", t,
			                      strcmp(sub, "AT_ColumnDefault") == 0 ? "SET or DROP DEFAULT" : sub + 3));
			free(t);
		}
	}
}

static void
collect_index(struct collector *c, json_t *is)
{
	json_t *rv = json_object_get(is, "relation");
	const char *schema = rv ? rv_schema(c, rv) : c->default_schema;
	const char *table = rv ? str_of(rv, "relname") : NULL;
	const char *idx = str_of(is, "idxname");
	/*
	 * An unnamed index's name cannot be predicted reliably (idx or key, INCLUDE columns,
	 * expressions, a digit when the default name is taken): it is unknown rather than guessed.
	 */
	char *name = idx ? xstrdup(idx) : NULL;
	if (name == NULL) {
		char *t = display(schema, table, NULL);
		add_unknown(c, "index", schema, table, xasprintf("an unnamed index on %s: its name cannot be predicted "
		                                                 "reliably, so it cannot be checked", t));
		free(t);
		return;
	}
	add_rel(c, "index", "iI", schema, name, true);
	struct cand *k = &c->items[c->n - 1];
	k->parent = table ? xstrdup(table) : NULL;
	free(name);
}

/* What a DROP of one object type looks up: the relkinds for relations, or another object. */
static void
collect_drop(struct collector *c, json_t *ds)
{
	const char *type = str_of(ds, "removeType");
	static const struct {
		const char *type, *kind, *relkinds;
	} rels[] = {
		{"OBJECT_TABLE", "table", "rp"}, {"OBJECT_INDEX", "index", "iI"},
		{"OBJECT_VIEW", "view", "v"}, {"OBJECT_MATVIEW", "view", "m"},
		{"OBJECT_SEQUENCE", "sequence", "S"}, {"OBJECT_FOREIGN_TABLE", "table", "f"},
	};
	json_t *obj;
	size_t i;
	if (type == NULL)
		return;
	json_array_foreach(json_object_get(ds, "objects"), i, obj) {
		const char *schema = NULL, *name = NULL;
		bool done = false;
		for (size_t r = 0; r < RB_ARRAY_LEN(rels) && !done; r++) {
			if (strcmp(type, rels[r].type) != 0)
				continue;
			done = true;
			if (qualified(c, obj, &schema, &name))
				add_rel(c, rels[r].kind, rels[r].relkinds, schema, name, false);
		}
		if (done)
			continue;
		if (strcmp(type, "OBJECT_TYPE") == 0 || strcmp(type, "OBJECT_DOMAIN") == 0) {
			json_t *tn = node_as(obj, "TypeName");
			if (tn && qualified(c, json_object_get(tn, "names"), &schema, &name))
				cand_new(c, "type", OBJ_TYPE, ASP_PRESENCE, schema, name, NULL)->want = false;
		} else if (strcmp(type, "OBJECT_SCHEMA") == 0 && sval(obj)) {
			cand_new(c, "schema", OBJ_SCHEMA, ASP_PRESENCE, NULL, sval(obj), NULL)->want = false;
		} else if (strcmp(type, "OBJECT_EXTENSION") == 0 && sval(obj)) {
			cand_new(c, "extension", OBJ_EXTENSION, ASP_PRESENCE, NULL, sval(obj), NULL)->want = false;
		} else if (strcmp(type, "OBJECT_FUNCTION") == 0 || strcmp(type, "OBJECT_PROCEDURE") == 0 ||
		           strcmp(type, "OBJECT_ROUTINE") == 0) {
			json_t *owa = node_as(obj, "ObjectWithArgs");
			if (owa && qualified(c, json_object_get(owa, "objname"), &schema, &name)) {
				struct cand *k = cand_new(c, "function", OBJ_FUNCTION, ASP_PRESENCE, schema, name, NULL);
				k->ambiguous = xstrdup("functions are told apart by their argument types, which are not "
				                       "compared here");
				k->want = false;
				if (!json_is_true(json_object_get(owa, "args_unspecified")))
					k->nargs = (int)json_array_size(json_object_get(owa, "objargs"));
			}
		} else {
			add_unknown(c, "other", NULL, NULL,
			            xasprintf("DROP %s cannot be checked", strncmp(type, "OBJECT_", 7) == 0 ? type + 7 : type));
		}
	}
}

static void
collect_rename(struct collector *c, json_t *rs)
{
	const char *type = str_of(rs, "renameType");
	json_t *rv = json_object_get(rs, "relation");
	const char *newname = str_of(rs, "newname");
	const char *subname = str_of(rs, "subname");
	static const struct {
		const char *type, *kind, *relkinds;
	} rels[] = {
		{"OBJECT_TABLE", "table", "rp"}, {"OBJECT_INDEX", "index", "iI"},
		{"OBJECT_VIEW", "view", "v"}, {"OBJECT_MATVIEW", "view", "m"},
		{"OBJECT_SEQUENCE", "sequence", "S"}, {"OBJECT_FOREIGN_TABLE", "table", "f"},
	};
	struct cand *k = NULL;
	if (type == NULL || newname == NULL)
		goto unknown;
	for (size_t r = 0; r < RB_ARRAY_LEN(rels); r++) {
		if (strcmp(type, rels[r].type) == 0 && rv && str_of(rv, "relname")) {
			k = cand_new(c, rels[r].kind, OBJ_REL, ASP_RENAME, rv_schema(c, rv), str_of(rv, "relname"), NULL);
			k->relkinds = rels[r].relkinds;
			k->relword = rels[r].kind;
		}
	}
	if (k == NULL && rv && str_of(rv, "relname") && subname) {
		if (strcmp(type, "OBJECT_COLUMN") == 0)
			k = cand_new(c, "column", OBJ_COLUMN, ASP_RENAME, rv_schema(c, rv), str_of(rv, "relname"), subname);
		else if (strcmp(type, "OBJECT_TABCONSTRAINT") == 0)
			k = cand_new(c, "constraint", OBJ_CONSTRAINT, ASP_RENAME, rv_schema(c, rv), str_of(rv, "relname"),
			             subname);
	}
	if (k == NULL && strcmp(type, "OBJECT_SCHEMA") == 0 && subname)
		k = cand_new(c, "schema", OBJ_SCHEMA, ASP_RENAME, NULL, subname, NULL);
	if (k == NULL && (strcmp(type, "OBJECT_TYPE") == 0 || strcmp(type, "OBJECT_DOMAIN") == 0)) {
		const char *schema, *name;
		if (qualified(c, json_object_get(rs, "object"), &schema, &name))
			k = cand_new(c, "type", OBJ_TYPE, ASP_RENAME, schema, name, NULL);
	}
	if (k) {
		k->newname = xstrdup(newname);
		return;
	}
unknown:
	add_unknown(c, "other", NULL, NULL, xasprintf("RENAME of %s cannot be checked",
	            type && strncmp(type, "OBJECT_", 7) == 0 ? type + 7 : "?"));
}

/* A statement node's name without "Stmt", for messages ("Insert", "VariableSet"). */
static char *
stmt_word(json_t *node)
{
	void *it = json_object_iter(node);
	const char *key = it ? json_object_iter_key(it) : NULL;
	if (key == NULL)
		return xstrdup("statement");
	size_t n = strlen(key);
	if (n > 4 && strcmp(key + n - 4, "Stmt") == 0)
		n -= 4;
	return xstrndup(key, n);
}

static void
collect_stmt(struct collector *c, json_t *node)
{
	json_t *b;
	const char *schema, *name;
	if ((b = node_as(node, "CreateStmt")) != NULL) {
		json_t *rv = json_object_get(b, "relation");
		if (rv && str_of(rv, "relname"))
			add_rel(c, "table", "rp", rv_schema(c, rv), str_of(rv, "relname"), true);
	} else if ((b = node_as(node, "CreateTableAsStmt")) != NULL) {
		json_t *into = node_as(json_object_get(b, "into"), "IntoClause");
		json_t *rv = into ? json_object_get(into, "rel") : NULL;
		bool mat = str_of(b, "objtype") && strcmp(str_of(b, "objtype"), "OBJECT_MATVIEW") == 0;
		if (rv && str_of(rv, "relname"))
			add_rel(c, mat ? "view" : "table", mat ? "m" : "rp", rv_schema(c, rv), str_of(rv, "relname"), true);
	} else if ((b = node_as(node, "AlterTableStmt")) != NULL) {
		collect_alter_table(c, b);
	} else if ((b = node_as(node, "IndexStmt")) != NULL) {
		collect_index(c, b);
	} else if ((b = node_as(node, "DropStmt")) != NULL) {
		collect_drop(c, b);
	} else if ((b = node_as(node, "RenameStmt")) != NULL) {
		collect_rename(c, b);
	} else if ((b = node_as(node, "CreateEnumStmt")) != NULL) {
		/* typtype tells an enum from a table's row type of the same name. */
		if (qualified(c, json_object_get(b, "typeName"), &schema, &name))
			strcpy(cand_new(c, "type", OBJ_TYPE, ASP_PRESENCE, schema, name, NULL)->typtype, "e");
	} else if ((b = node_as(node, "CompositeTypeStmt")) != NULL) {
		json_t *rv = json_object_get(b, "typevar");
		if (rv && str_of(rv, "relname"))
			strcpy(cand_new(c, "type", OBJ_TYPE, ASP_PRESENCE, rv_schema(c, rv), str_of(rv, "relname"),
			                NULL)->typtype, "C");  /* composite of a CREATE TYPE: relkind c */
	} else if ((b = node_as(node, "CreateDomainStmt")) != NULL) {
		if (qualified(c, json_object_get(b, "domainname"), &schema, &name))
			strcpy(cand_new(c, "type", OBJ_TYPE, ASP_PRESENCE, schema, name, NULL)->typtype, "d");
	} else if ((b = node_as(node, "AlterEnumStmt")) != NULL) {
		if (!qualified(c, json_object_get(b, "typeName"), &schema, &name) || str_of(b, "newVal") == NULL)
			return;
		const char *oldval = str_of(b, "oldVal");
		struct cand *k = cand_new(c, "enum value", OBJ_ENUMVAL, oldval ? ASP_RENAME : ASP_PRESENCE,
		                          schema, name, oldval ? oldval : str_of(b, "newVal"));
		if (oldval)
			k->newname = xstrdup(str_of(b, "newVal"));
		/* the display of a label is 'label', not an identifier */
		free(k->object);
		char *t = display(schema, name, NULL);
		k->object = xasprintf("%s.'%s'", t, oldval ? oldval : str_of(b, "newVal"));
		free(t);
	} else if ((b = node_as(node, "CreateSeqStmt")) != NULL) {
		json_t *rv = json_object_get(b, "sequence");
		if (rv && str_of(rv, "relname"))
			add_rel(c, "sequence", "S", rv_schema(c, rv), str_of(rv, "relname"), true);
	} else if ((b = node_as(node, "ViewStmt")) != NULL) {
		json_t *rv = json_object_get(b, "view");
		if (rv && str_of(rv, "relname")) {
			add_rel(c, "view", "v", rv_schema(c, rv), str_of(rv, "relname"), true);
			if (json_is_true(json_object_get(b, "replace")))
				c->items[c->n - 1].ambiguous = xstrdup("CREATE OR REPLACE: the view existing does not show "
				                                       "whether this definition replaced the old one");
		}
	} else if ((b = node_as(node, "CreateSchemaStmt")) != NULL) {
		if (str_of(b, "schemaname"))
			cand_new(c, "schema", OBJ_SCHEMA, ASP_PRESENCE, NULL, str_of(b, "schemaname"), NULL);
		else
			add_unknown(c, "schema", NULL, NULL, xstrdup("CREATE SCHEMA AUTHORIZATION cannot be checked"));
	} else if ((b = node_as(node, "CreateExtensionStmt")) != NULL) {
		if (str_of(b, "extname"))
			cand_new(c, "extension", OBJ_EXTENSION, ASP_PRESENCE, NULL, str_of(b, "extname"), NULL);
	} else if ((b = node_as(node, "CreateFunctionStmt")) != NULL) {
		if (!qualified(c, json_object_get(b, "funcname"), &schema, &name))
			return;
		struct cand *k = cand_new(c, "function", OBJ_FUNCTION, ASP_PRESENCE, schema, name, NULL);
		k->ambiguous = xstrdup(json_is_true(json_object_get(b, "replace")) ?
		                       "CREATE OR REPLACE: a function existing does not show whether this definition "
		                       "replaced the old one" :
		                       "functions are told apart by their argument types, which are not compared here");
		json_t *p;
		size_t i;
		k->nargs = 0;
		json_array_foreach(json_object_get(b, "parameters"), i, p) {
			json_t *fp = node_as(p, "FunctionParameter");
			const char *mode = fp ? str_of(fp, "mode") : NULL;
			if (mode && (strcmp(mode, "FUNC_PARAM_OUT") == 0 || strcmp(mode, "FUNC_PARAM_TABLE") == 0))
				continue;
			k->nargs++;
		}
	} else if ((b = node_as(node, "InsertStmt")) != NULL || (b = node_as(node, "UpdateStmt")) != NULL ||
	           (b = node_as(node, "DeleteStmt")) != NULL) {
		json_t *rv = json_object_get(b, "relation");
		char *w = stmt_word(node);
		for (char *s = w; *s; s++)
			*s = (char)toupper((unsigned char)*s);
		add_unknown(c, "data", rv ? rv_schema(c, rv) : NULL, rv ? str_of(rv, "relname") : NULL,
		            xasprintf("%s: data changes cannot be checked", w));
		free(w);
	} else if ((b = node_as(node, "TruncateStmt")) != NULL || node_as(node, "CopyStmt") != NULL ||
	           node_as(node, "SelectStmt") != NULL) {
		char *w = stmt_word(node);
		for (char *s = w; *s; s++)
			*s = (char)toupper((unsigned char)*s);
		add_unknown(c, "data", NULL, NULL, xasprintf("%s: data changes cannot be checked", w));
		free(w);
	} else if (node_as(node, "TransactionStmt") != NULL || node_as(node, "VariableSetStmt") != NULL ||
	           node_as(node, "VariableShowStmt") != NULL) {
		c->quiet = true;  /* BEGIN, COMMIT, SET: nothing lasting to look for */
	} else {
		char *w = stmt_word(node);
		add_unknown(c, "other", NULL, NULL, xasprintf("%s statement: its effect cannot be checked", w));
		free(w);
	}
}

/* Parses one statement text and collects its candidates (a parse error gives one unknown). */
static void
collect_text(struct collector *c, const char *text)
{
	PgQueryParseResult pr = pg_query_parse(text);
	if (pr.error != NULL) {
		add_unknown(c, "other", NULL, NULL, xasprintf("the statement does not parse: %s",
		            pr.error->message ? pr.error->message : "syntax error"));
		pg_query_free_parse_result(pr);
		return;
	}
	json_t *root = json_loads(pr.parse_tree, 0, NULL);
	pg_query_free_parse_result(pr);
	json_t *s;
	size_t i;
	size_t before = c->n;
	c->quiet = false;
	json_array_foreach(json_object_get(root, "stmts"), i, s)
		collect_stmt(c, json_object_get(s, "stmt"));
	json_decref(root);
	if (c->n == before && !c->quiet)
		add_unknown(c, "other", NULL, NULL, xstrdup("the statement's effect cannot be checked"));
}

/* ---- the end state of the script ---- */

/* An identity key for what a candidate is about: "r|schema|name", "c|schema|table|col", ... */
static char *
ident(const struct cand *k, const char *name, const char *sub)
{
	char tag = '?';
	switch (k->obj) {
	case OBJ_REL: tag = 'r'; break;
	case OBJ_COLUMN: tag = 'c'; break;
	case OBJ_CONSTRAINT: tag = 'k'; break;
	case OBJ_TYPE: tag = 't'; break;
	case OBJ_ENUMVAL: tag = 'e'; break;
	case OBJ_SCHEMA: tag = 's'; break;
	case OBJ_EXTENSION: tag = 'x'; break;
	case OBJ_FUNCTION: tag = 'f'; break;
	case OBJ_NONE: return NULL;
	}
	return xasprintf("%c|%s|%s|%s", tag, k->schema ? k->schema : "", name ? name : "", sub ? sub : "");
}

/* The idents a candidate names: now (the new name of a rename), before (the old name), parents. */
struct idents {
	char *now, *before, *parent, *schema;
};

static void
idents_of(const struct cand *k, struct idents *id)
{
	memset(id, 0, sizeof *id);
	if (k->obj == OBJ_NONE)
		return;
	bool sub_named = k->obj == OBJ_COLUMN || k->obj == OBJ_CONSTRAINT || k->obj == OBJ_ENUMVAL;
	if (k->asp == ASP_RENAME) {
		id->before = ident(k, k->name, k->sub);
		id->now = sub_named ? ident(k, k->name, k->newname) : ident(k, k->newname, NULL);
	} else {
		id->now = ident(k, k->name, k->sub);
	}
	if (sub_named || (k->obj == OBJ_REL && k->parent)) {
		struct cand p = *k;
		p.obj = k->obj == OBJ_ENUMVAL ? OBJ_TYPE : OBJ_REL;
		id->parent = ident(&p, sub_named ? k->name : k->parent, NULL);
	}
	if (k->schema)
		id->schema = xasprintf("s||%s|", k->schema);
}

static void
idents_free(struct idents *id)
{
	free(id->now);
	free(id->before);
	free(id->parent);
	free(id->schema);
}

static bool
same(const char *a, const char *b)
{
	return a && b && strcmp(a, b) == 0;
}

/* Whether the later candidate j changes what candidate i would be judged by. */
static bool
undoes(const struct cand *i, const struct idents *ii, const struct cand *j, const struct idents *ij)
{
	const char *removed = NULL, *created = NULL;
	if (j->asp == ASP_PRESENCE && j->want)
		created = ij->now;
	else if (j->asp == ASP_PRESENCE)
		removed = ij->now;
	else if (j->asp == ASP_RENAME) {
		removed = ij->before;
		created = ij->now;
	}
	if (removed && (same(removed, ii->now) || same(removed, ii->before) || same(removed, ii->parent) ||
	                same(removed, ii->schema)))
		return true;
	if (created && (same(created, ii->before) ||
	                (same(created, ii->now) && i->asp == ASP_PRESENCE && !i->want)))
		return true;
	if (i->asp != ASP_PRESENCE && i->asp != ASP_RENAME && i->asp == j->asp && same(ii->now, ij->now))
		return true;
	return false;
}

static void
mark_end_state(struct collector *c)
{
	struct idents *ids = xcalloc(c->n + 1, sizeof *ids);
	for (size_t i = 0; i < c->n; i++)
		idents_of(&c->items[i], &ids[i]);
	for (size_t i = 0; i < c->n; i++) {
		if (c->items[i].obj == OBJ_NONE)
			continue;
		for (size_t j = i + 1; j < c->n && !c->items[i].undone_by; j++)
			if (c->items[j].obj != OBJ_NONE && undoes(&c->items[i], &ids[i], &c->items[j], &ids[j]))
				c->items[i].undone_by = c->items[j].line;
	}
	/* A drop of something the script itself created: both are judged by the end state alone. */
	for (size_t i = 0; i < c->n; i++) {
		struct cand *k = &c->items[i];
		if (k->obj == OBJ_NONE || k->asp != ASP_PRESENCE || k->want || k->undone_by)
			continue;
		for (size_t j = 0; j < i && !k->made_by; j++) {
			const struct cand *m = &c->items[j];
			if (m->obj != OBJ_NONE && ((m->asp == ASP_PRESENCE && m->want) || m->asp == ASP_RENAME) &&
			    same(ids[j].now, ids[i].now))
				k->made_by = m->line;
		}
	}
	/*
	 * A create of a name the script dropped or renamed away before: what is found may be the old
	 * object (DROP TABLE t; CREATE TABLE t, or the enum swap Prisma writes).
	 */
	for (size_t i = 0; i < c->n; i++) {
		struct cand *k = &c->items[i];
		if (k->obj == OBJ_NONE || k->undone_by || !((k->asp == ASP_PRESENCE && k->want) || k->asp == ASP_RENAME))
			continue;
		for (size_t j = 0; j < i && !k->freed_by; j++) {
			const struct cand *m = &c->items[j];
			const char *gone = m->asp == ASP_RENAME ? ids[j].before
			                 : m->asp == ASP_PRESENCE && !m->want ? ids[j].now : NULL;
			if (m->obj != OBJ_NONE && same(gone, ids[i].now))
				k->freed_by = m->line;
		}
	}
	for (size_t i = 0; i < c->n; i++)
		idents_free(&ids[i]);
	free(ids);
}

/* ---- catalog lookups ---- */

#define Q_NS_JOIN " JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) "

/* Runs a read query; NULL with err set on failure. */
static PGresult *
query(PGconn *conn, const char *sql, int n, const char *const *params, const struct rb_ctx *ctx,
      struct rb_error *err)
{
	PGresult *res = db_exec(conn, sql, n, params, ctx);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		db_error_from_result(err, res, RB_EXIT_STEP);
		PQclear(res);
		return NULL;
	}
	return res;
}

enum probe { PROBE_ABSENT, PROBE_PRESENT, PROBE_NO_PARENT, PROBE_ERROR };

/* What one lookup found besides presence. */
struct found {
	bool  invalid;     /* an index with indisvalid false */
	bool  notnull;
	bool  validated;
	bool  type_ok;     /* ASP_TYPE: the column has the type */
	bool  type_known;  /* the wanted type resolved */
	char *type_now;    /* format_type of the column */
	char *type_want;   /* format_type of the wanted type */
	char  relkind;
};

static void
found_free(struct found *f)
{
	free(f->type_now);
	free(f->type_want);
}

static bool
relkind_in(char kind, const char *kinds)
{
	return kind != '\0' && strchr(kinds, kind) != NULL;
}

/* Looks up the object of k under the names name/sub (the old or new name of a rename). */
static enum probe
probe(PGconn *conn, const struct cand *k, const char *name, const char *sub, const struct rb_ctx *ctx,
      struct found *f, struct rb_error *err)
{
	PGresult *res = NULL;
	enum probe pr = PROBE_ABSENT;
	char nargs[16];
	memset(f, 0, sizeof *f);
	switch (k->obj) {
	case OBJ_REL: {
		const char *p[2] = { k->schema, name };
		res = query(conn, "SELECT c.relkind, i.indisvalid FROM pg_catalog.pg_class c"
		            Q_NS_JOIN "c.relnamespace"
		            " LEFT JOIN pg_catalog.pg_index i ON i.indexrelid OPERATOR(pg_catalog.=) c.oid"
		            " WHERE n.nspname OPERATOR(pg_catalog.=) $1 AND c.relname OPERATOR(pg_catalog.=) $2",
		            2, p, ctx, err);
		if (res && PQntuples(res) > 0) {
			f->relkind = PQgetvalue(res, 0, 0)[0];
			if (relkind_in(f->relkind, k->relkinds)) {
				pr = PROBE_PRESENT;
				f->invalid = !PQgetisnull(res, 0, 1) && strcmp(PQgetvalue(res, 0, 1), "f") == 0;
			}
		}
		break;
	}
	case OBJ_COLUMN: {
		char typmod[16];
		snprintf(typmod, sizeof typmod, "%d", k->typmod);
		const char *p[6] = { k->schema, name, sub, k->typ_pg, k->typ_schema, typmod };  /* NULL: no type */
		res = query(conn, "SELECT a.attnum IS NOT NULL, a.attnotnull,"
		            " pg_catalog.format_type(a.atttypid, a.atttypmod),"
		            " a.atttypid OPERATOR(pg_catalog.=) t.oid, a.atttypmod, t.oid IS NOT NULL,"
		            " pg_catalog.format_type(t.oid, $6::pg_catalog.int4)"
		            " FROM pg_catalog.pg_class c" Q_NS_JOIN "c.relnamespace"
		            " LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) c.oid"
		            "  AND a.attname OPERATOR(pg_catalog.=) $3 AND a.attnum OPERATOR(pg_catalog.>) 0"
		            "  AND NOT a.attisdropped"
		            " LEFT JOIN pg_catalog.pg_type t ON t.oid OPERATOR(pg_catalog.=) COALESCE("
		            "  pg_catalog.to_regtype($4), pg_catalog.to_regtype($5))"
		            " WHERE n.nspname OPERATOR(pg_catalog.=) $1 AND c.relname OPERATOR(pg_catalog.=) $2"
		            " AND c.relkind OPERATOR(pg_catalog.=) ANY ('{r,p,v,m,f}'::pg_catalog.\"char\"[])",
		            6, p, ctx, err);
		if (res && PQntuples(res) == 0) {
			pr = PROBE_NO_PARENT;
		} else if (res && strcmp(PQgetvalue(res, 0, 0), "t") == 0) {
			pr = PROBE_PRESENT;
			f->notnull = strcmp(PQgetvalue(res, 0, 1), "t") == 0;
			f->type_now = xstrdup(PQgetvalue(res, 0, 2));
			f->type_known = k->typ_pg != NULL && strcmp(PQgetvalue(res, 0, 5), "t") == 0;
			if (f->type_known) {
				f->type_want = xstrdup(PQgetvalue(res, 0, 6));
				f->type_ok = strcmp(PQgetvalue(res, 0, 3), "t") == 0 &&
				             (!k->typmod_known || atoi(PQgetvalue(res, 0, 4)) == k->typmod);
			}
		}
		break;
	}
	case OBJ_CONSTRAINT: {
		const char *p[3] = { k->schema, name, sub };
		res = query(conn, "SELECT con.oid IS NOT NULL, con.convalidated FROM pg_catalog.pg_class c"
		            Q_NS_JOIN "c.relnamespace"
		            " LEFT JOIN pg_catalog.pg_constraint con ON con.conrelid OPERATOR(pg_catalog.=) c.oid"
		            "  AND con.conname OPERATOR(pg_catalog.=) $3"
		            " WHERE n.nspname OPERATOR(pg_catalog.=) $1 AND c.relname OPERATOR(pg_catalog.=) $2"
		            " AND c.relkind OPERATOR(pg_catalog.=) ANY ('{r,p,f}'::pg_catalog.\"char\"[])",
		            3, p, ctx, err);
		if (res && PQntuples(res) == 0) {
			pr = PROBE_NO_PARENT;
		} else if (res && strcmp(PQgetvalue(res, 0, 0), "t") == 0) {
			pr = PROBE_PRESENT;
			f->validated = strcmp(PQgetvalue(res, 0, 1), "t") == 0;
		}
		break;
	}
	case OBJ_TYPE: {
		/* typtype "C": a composite type of its own (not a table's row type). */
		const char *p[3] = { k->schema, name, k->typtype };
		res = query(conn, "SELECT 1 FROM pg_catalog.pg_type t" Q_NS_JOIN "t.typnamespace"
		            " LEFT JOIN pg_catalog.pg_class r ON r.oid OPERATOR(pg_catalog.=) t.typrelid"
		            " WHERE n.nspname OPERATOR(pg_catalog.=) $1 AND t.typname OPERATOR(pg_catalog.=) $2"
		            " AND ($3 OPERATOR(pg_catalog.=) ''"
		            "  OR ($3 OPERATOR(pg_catalog.=) 'C' AND t.typtype OPERATOR(pg_catalog.=) 'c'"
		            "      AND r.relkind OPERATOR(pg_catalog.=) 'c')"
		            "  OR t.typtype::pg_catalog.text OPERATOR(pg_catalog.=) $3)",
		            3, p, ctx, err);
		if (res && PQntuples(res) > 0)
			pr = PROBE_PRESENT;
		break;
	}
	case OBJ_ENUMVAL: {
		const char *p[3] = { k->schema, name, sub };
		res = query(conn, "SELECT e.oid IS NOT NULL FROM pg_catalog.pg_type t" Q_NS_JOIN "t.typnamespace"
		            " LEFT JOIN pg_catalog.pg_enum e ON e.enumtypid OPERATOR(pg_catalog.=) t.oid"
		            "  AND e.enumlabel OPERATOR(pg_catalog.=) $3"
		            " WHERE n.nspname OPERATOR(pg_catalog.=) $1 AND t.typname OPERATOR(pg_catalog.=) $2",
		            3, p, ctx, err);
		if (res && PQntuples(res) == 0)
			pr = PROBE_NO_PARENT;
		else if (res && strcmp(PQgetvalue(res, 0, 0), "t") == 0)
			pr = PROBE_PRESENT;
		break;
	}
	case OBJ_SCHEMA: {
		const char *p[1] = { name };
		res = query(conn, "SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname OPERATOR(pg_catalog.=) $1",
		            1, p, ctx, err);
		if (res && PQntuples(res) > 0)
			pr = PROBE_PRESENT;
		break;
	}
	case OBJ_EXTENSION: {
		const char *p[1] = { name };
		res = query(conn, "SELECT 1 FROM pg_catalog.pg_extension WHERE extname OPERATOR(pg_catalog.=) $1",
		            1, p, ctx, err);
		if (res && PQntuples(res) > 0)
			pr = PROBE_PRESENT;
		break;
	}
	case OBJ_FUNCTION: {
		snprintf(nargs, sizeof nargs, "%d", k->nargs);
		const char *p[3] = { k->schema, name, nargs };
		res = query(conn, "SELECT 1 FROM pg_catalog.pg_proc p" Q_NS_JOIN "p.pronamespace"
		            " WHERE n.nspname OPERATOR(pg_catalog.=) $1 AND p.proname OPERATOR(pg_catalog.=) $2"
		            " AND ($3::pg_catalog.int4 OPERATOR(pg_catalog.<) 0"
		            "  OR p.pronargs OPERATOR(pg_catalog.=) $3::pg_catalog.int4)",
		            3, p, ctx, err);
		if (res && PQntuples(res) > 0)
			pr = PROBE_PRESENT;
		break;
	}
	case OBJ_NONE:
		return PROBE_ABSENT;
	}
	if (res == NULL)
		return PROBE_ERROR;
	PQclear(res);
	return pr;
}

/* The parent of a column/constraint/enum value for messages: "table "s"."t"". Caller frees. */
static char *
parent_text(const struct cand *k)
{
	char *d = display(k->schema, k->name, NULL);
	char *s = xasprintf("%s %s", k->obj == OBJ_ENUMVAL ? "type" : "table", d);
	free(d);
	return s;
}

/* Judges one candidate against the catalog into e (seen, invalid_index, what). */
static bool
judge(PGconn *conn, const struct cand *k, const struct rb_ctx *ctx, struct effect *e, struct rb_error *err)
{
	struct found f, g;
	const char *word = k->obj == OBJ_REL ? k->relword : k->kind;
	e->seen = EFFECT_UNKNOWN;
	if (k->unknown_why) {
		e->what = xstrdup(k->unknown_why);
		return true;
	}
	if (k->undone_by) {
		e->what = xasprintf("%s %s: a later statement (line %d) changes it again; only the end state "
		                    "of the script can be checked", word, k->object, k->undone_by);
		/* An INVALID index is worth knowing about even so. */
		if (k->obj == OBJ_REL && strchr(k->relkinds, 'i') && k->asp == ASP_PRESENCE) {
			enum probe pr = probe(conn, k, k->name, k->sub, ctx, &f, err);
			if (pr == PROBE_ERROR)
				return false;
			if (pr == PROBE_PRESENT && f.invalid) {
				e->invalid_index = true;
				free(e->what);
				e->what = xasprintf("index %s exists but is INVALID (a later statement, line %d, "
				                    "changes it again)", k->object, k->undone_by);
			}
			found_free(&f);
		}
		return true;
	}
	if (k->freed_by) {
		e->what = xasprintf("%s %s: an earlier statement (line %d) drops or renames away that name, so "
		                    "what is found may be the old one; only the end state of the script can be "
		                    "checked", word, k->object, k->freed_by);
		return true;
	}
	if (k->made_by) {
		e->what = xasprintf("%s %s: an earlier statement (line %d) creates it; only the end state of "
		                    "the script can be checked", word, k->object, k->made_by);
		return true;
	}
	if (k->asp == ASP_RENAME) {
		bool subn = k->obj == OBJ_COLUMN || k->obj == OBJ_CONSTRAINT || k->obj == OBJ_ENUMVAL;
		enum probe old = probe(conn, k, k->name, k->sub, ctx, &f, err);
		found_free(&f);
		if (old == PROBE_ERROR)
			return false;
		enum probe new = probe(conn, k, subn ? k->name : k->newname, subn ? k->newname : NULL, ctx, &g, err);
		found_free(&g);
		if (new == PROBE_ERROR)
			return false;
		char *to = subn ? display(NULL, NULL, k->newname) : display(k->schema, k->newname, NULL);
		if (k->obj == OBJ_ENUMVAL) {
			free(to);
			to = xasprintf("'%s'", k->newname);
		}
		if (old == PROBE_NO_PARENT || new == PROBE_NO_PARENT) {
			char *p = parent_text(k);
			e->what = xasprintf("%s does not exist, so the rename of %s %s cannot be checked", p, word, k->object);
			free(p);
		} else if (old == PROBE_ABSENT && new == PROBE_PRESENT) {
			e->seen = EFFECT_DONE;
			e->what = xasprintf("%s %s is renamed to %s", word, k->object, to);
		} else if (old == PROBE_PRESENT && new == PROBE_ABSENT) {
			e->seen = EFFECT_NOT_DONE;
			e->what = xasprintf("%s %s still has its old name (no %s)", word, k->object, to);
		} else {
			e->what = xasprintf("%s %s and %s %s: cannot tell whether the rename ran", word, k->object, to,
			                    old == PROBE_PRESENT ? "both exist" : "neither exists");
		}
		free(to);
		return true;
	}
	enum probe pr = probe(conn, k, k->name, k->sub, ctx, &f, err);
	if (pr == PROBE_ERROR)
		return false;
	if (pr == PROBE_NO_PARENT) {
		char *p = parent_text(k);
		if (k->asp == ASP_PRESENCE && k->want) {
			e->seen = EFFECT_NOT_DONE;
			e->what = xasprintf("%s %s does not exist (nor does %s)", word, k->object, p);
		} else {
			e->what = xasprintf("%s does not exist, so %s %s cannot be checked", p, word, k->object);
		}
		free(p);
		found_free(&f);
		return true;
	}
	bool present = pr == PROBE_PRESENT;
	if (present && k->ambiguous && k->asp == ASP_PRESENCE) {
		e->what = xasprintf("%s %s exists, but that does not settle it: %s", word, k->object, k->ambiguous);
		found_free(&f);
		return true;
	}
	switch (k->asp) {
	case ASP_PRESENCE:
		e->seen = present == k->want ? EFFECT_DONE : EFFECT_NOT_DONE;
		if (present && f.invalid) {
			e->seen = EFFECT_NOT_DONE;  /* the build did not finish; a drop did not either */
			e->invalid_index = true;
			e->what = xasprintf("index %s exists but is INVALID", k->object);
		} else if (k->want) {
			e->what = xasprintf("%s %s %s", word, k->object, present ? "exists" : "does not exist");
		} else {
			e->what = xasprintf("%s %s %s", word, k->object, present ? "still exists" : "is gone");
		}
		break;
	case ASP_TYPE:
		if (!present) {
			e->what = xasprintf("column %s does not exist, so its type cannot be checked", k->object);
		} else if (!f.type_known) {
			e->what = xasprintf("column %s is %s; the type %s does not resolve here", k->object, f.type_now,
			                    k->typ_text ? k->typ_text : "?");
		} else if (f.type_ok && k->typmod_unknown) {
			e->what = xasprintf("column %s is %s; whether its type modifier matches %s cannot be checked here",
			                    k->object, f.type_now, k->typ_text ? k->typ_text : "?");
		} else {
			e->seen = f.type_ok ? EFFECT_DONE : EFFECT_NOT_DONE;
			if (f.type_ok)
				e->what = xasprintf("column %s is %s", k->object, f.type_now);
			else
				e->what = xasprintf("column %s is %s, not %s", k->object, f.type_now, f.type_want);
		}
		break;
	case ASP_NOTNULL:
		if (!present) {
			e->what = xasprintf("column %s does not exist, so NOT NULL cannot be checked", k->object);
		} else {
			e->seen = f.notnull == k->want ? EFFECT_DONE : EFFECT_NOT_DONE;
			e->what = xasprintf("column %s is %s", k->object, f.notnull ? "NOT NULL" : "nullable");
		}
		break;
	case ASP_VALID:
		if (!present) {
			e->what = xasprintf("constraint %s does not exist, so its validation cannot be checked", k->object);
		} else {
			e->seen = f.validated ? EFFECT_DONE : EFFECT_NOT_DONE;
			e->what = xasprintf("constraint %s is %s", k->object, f.validated ? "validated" : "NOT VALID");
		}
		break;
	case ASP_RENAME:
		break;
	}
	found_free(&f);
	return true;
}

bool
effects_check(PGconn *conn, const char *default_schema, const struct lint_result *lr,
              const struct rb_ctx *ctx, struct effects *out, struct rb_error *err)
{
	memset(out, 0, sizeof *out);
	struct collector c = { .default_schema = default_schema ? default_schema : "public" };
	for (size_t i = 0; i < lr->n_stmts; i++) {
		c.stmt = i;
		c.line = lr->stmts[i].line;
		collect_text(&c, lr->stmts[i].text);
	}
	mark_end_state(&c);

	bool ok = true;
	PGresult *res = db_exec(conn, "BEGIN READ ONLY; SELECT pg_catalog.set_config('search_path', '', true)",
	                        0, NULL, ctx);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		db_error_from_result(err, res, RB_EXIT_STEP);
		ok = false;
	}
	PQclear(res);
	out->items = xcalloc(c.n + 1, sizeof *out->items);
	for (size_t i = 0; i < c.n && ok; i++) {
		struct cand *k = &c.items[i];
		struct effect *e = &out->items[out->n++];
		e->stmt = k->stmt;
		e->line = k->line;
		e->kind = xstrdup(k->kind);
		e->object = k->object ? xstrdup(k->object) : NULL;
		e->expect_present = k->asp == ASP_PRESENCE ? k->want : true;
		ok = judge(conn, k, ctx, e, err);
		if (!ok)
			break;
		if (e->seen == EFFECT_DONE)
			out->done++;
		else if (e->seen == EFFECT_NOT_DONE)
			out->not_done++;
		else
			out->unknown++;
		if (e->invalid_index)
			out->invalid_indexes++;
	}
	res = db_exec(conn, ok ? "COMMIT" : "ROLLBACK", 0, NULL, NULL);
	PQclear(res);
	for (size_t i = 0; i < c.n; i++)
		cand_free(&c.items[i]);
	free(c.items);
	if (!ok)
		effects_free(out);
	return ok;
}

void
effects_free(struct effects *e)
{
	if (e == NULL)
		return;
	for (size_t i = 0; i < e->n; i++) {
		free(e->items[i].kind);
		free(e->items[i].object);
		free(e->items[i].what);
	}
	free(e->items);
	memset(e, 0, sizeof *e);
}

const char *
effect_seen_name(enum effect_seen s)
{
	switch (s) {
	case EFFECT_DONE:
		return "done";
	case EFFECT_NOT_DONE:
		return "not_done";
	case EFFECT_UNKNOWN:
		break;
	}
	return "unknown";
}

json_t *
effects_to_json(const struct effects *e)
{
	json_t *list = json_array();
	for (size_t i = 0; i < e->n; i++) {
		const struct effect *x = &e->items[i];
		json_array_append_new(list, json_pack("{s:I, s:i, s:s, s:s?, s:b, s:s, s:b, s:s?}",
		                      "statement", (json_int_t)x->stmt, "line", x->line, "kind", x->kind,
		                      "object", x->object, "expect_present", x->expect_present,
		                      "seen", effect_seen_name(x->seen), "invalid_index", x->invalid_index,
		                      "what", x->what));
	}
	return json_pack("{s:I, s:I, s:I, s:I, s:o}", "done", (json_int_t)e->done,
	                 "not_done", (json_int_t)e->not_done, "unknown", (json_int_t)e->unknown,
	                 "invalid_indexes", (json_int_t)e->invalid_indexes, "effects", list);
}
