/* sync.c: data sync: resolving a plan table on both sides and the exact streaming diff of one table. */
#include "config.h"

#include <errno.h>
#include <openssl/evp.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "db.h"
#include "sync.h"

/* Built-in type OIDs (stable across PostgreSQL versions, pg_type_d.h). */
#define OID_BOOL    16
#define OID_NAME    19
#define OID_INT8    20
#define OID_INT2    21
#define OID_INT4    23
#define OID_TEXT    25
#define OID_BPCHAR  1042
#define OID_VARCHAR 1043
#define OID_NUMERIC 1700
#define OID_UUID    2950

/* How many reads of the side that is not waited for may pile up in libpq before it is left alone. */
#define SYNC_READ_AHEAD 32

static const char *const kind_names[SYNC_KIND_COUNT] = {
	"insert", "update", "delete", "conflict", "differs_kept", "unchanged",
};

const char *
sync_kind_name(enum sync_kind k)
{
	return (unsigned)k < SYNC_KIND_COUNT ? kind_names[k] : "unknown";
}

void
sync_spec_free(struct sync_spec *spec)
{
	if (spec == NULL)
		return;
	for (size_t i = 0; i < spec->ncols; i++) {
		free(spec->cols[i].name);
		free(spec->cols[i].type);
	}
	free(spec->cols);
	free(spec->plan_name);
	free(spec->schema);
	free(spec->table);
	free(spec->display);
	free(spec->copy_sql);
	free(spec);
}

/* ---------- COPY text format and key comparison ---------- */

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

size_t
sync_copy_decode(const char *in, size_t len, char *out, bool *is_null)
{
	*is_null = false;
	if (len == 2 && in[0] == '\\' && in[1] == 'N') {
		*is_null = true;
		return 0;
	}
	size_t w = 0;
	for (size_t r = 0; r < len; ) {
		char c = in[r++];
		if (c != '\\' || r == len) {
			out[w++] = c;
			continue;
		}
		c = in[r++];
		switch (c) {
		case 'b': out[w++] = '\b'; break;
		case 'f': out[w++] = '\f'; break;
		case 'n': out[w++] = '\n'; break;
		case 'r': out[w++] = '\r'; break;
		case 't': out[w++] = '\t'; break;
		case 'v': out[w++] = '\v'; break;
		case '0': case '1': case '2': case '3': case '4': case '5': case '6': case '7': {
			int v = c - '0';
			for (int k = 0; k < 2 && r < len && in[r] >= '0' && in[r] <= '7'; k++)
				v = v * 8 + (in[r++] - '0');
			out[w++] = (char)(v & 0xff);
			break;
		}
		case 'x':
			if (r < len && hexval(in[r]) >= 0) {
				int v = hexval(in[r++]);
				if (r < len && hexval(in[r]) >= 0)
					v = v * 16 + hexval(in[r++]);
				out[w++] = (char)v;
			} else {
				out[w++] = 'x';
			}
			break;
		default:
			out[w++] = c;
			break;
		}
	}
	return w;
}

static inline int
bytes_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
	int c = memcmp(a, b, alen < blen ? alen : blen);
	if (c != 0)
		return c < 0 ? -1 : 1;
	return alen < blen ? -1 : alen > blen ? 1 : 0;
}

/* Parses a decimal int64; false when s is not one. */
static bool
parse_int64(const char *s, size_t len, int64_t *out)
{
	size_t i = 0;
	bool neg = false;
	if (i < len && (s[i] == '-' || s[i] == '+'))
		neg = s[i++] == '-';
	if (i == len)
		return false;
	uint64_t v = 0;
	for (; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		unsigned d = (unsigned)(s[i] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return false;
		v = v * 10 + d;
	}
	if (neg) {
		if (v > (uint64_t)INT64_MAX + 1)
			return false;
		*out = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
	} else {
		if (v > (uint64_t)INT64_MAX)
			return false;
		*out = (int64_t)v;
	}
	return true;
}

struct decimal {
	int         cls;    /* 0 -Infinity, 1 finite, 2 Infinity, 3 NaN */
	int         sign;   /* finite: -1, 0, 1 */
	const char *ip;     /* integer digits without leading zeros */
	size_t      ilen;
	const char *fp;     /* fraction digits without trailing zeros */
	size_t      flen;
};

static bool
parse_decimal(const char *s, size_t len, struct decimal *d)
{
	memset(d, 0, sizeof *d);
	if (len == 3 && memcmp(s, "NaN", 3) == 0) {
		d->cls = 3;
		return true;
	}
	if (len == 8 && memcmp(s, "Infinity", 8) == 0) {
		d->cls = 2;
		return true;
	}
	if (len == 9 && memcmp(s, "-Infinity", 9) == 0) {
		d->cls = 0;
		return true;
	}
	d->cls = 1;
	size_t i = 0;
	bool neg = false;
	if (i < len && (s[i] == '-' || s[i] == '+'))
		neg = s[i++] == '-';
	size_t istart = i;
	while (i < len && s[i] >= '0' && s[i] <= '9')
		i++;
	size_t iend = i, fstart = i, fend = i;
	if (i < len && s[i] == '.') {
		fstart = ++i;
		while (i < len && s[i] >= '0' && s[i] <= '9')
			i++;
		fend = i;
	}
	if (i != len || (iend == istart && fend == fstart))
		return false;
	while (istart < iend && s[istart] == '0')
		istart++;
	while (fend > fstart && s[fend - 1] == '0')
		fend--;
	d->ip = s + istart;
	d->ilen = iend - istart;
	d->fp = s + fstart;
	d->flen = fend - fstart;
	d->sign = (d->ilen == 0 && d->flen == 0) ? 0 : neg ? -1 : 1;
	return true;
}

static int
decimal_cmp(const struct decimal *a, const struct decimal *b)
{
	if (a->cls != b->cls)
		return a->cls < b->cls ? -1 : 1;
	if (a->cls != 1)
		return 0;
	if (a->sign != b->sign)
		return a->sign < b->sign ? -1 : 1;
	if (a->sign == 0)
		return 0;
	int c;
	if (a->ilen != b->ilen)
		c = a->ilen < b->ilen ? -1 : 1;
	else if ((c = memcmp(a->ip, b->ip, a->ilen)) != 0)
		c = c < 0 ? -1 : 1;
	else
		c = bytes_cmp(a->fp, a->flen, b->fp, b->flen);
	return a->sign < 0 ? -c : c;
}

int
sync_key_compare(enum sync_key_order order, const char *a, size_t alen, const char *b, size_t blen)
{
	switch (order) {
	case SYNC_KEY_INT: {
		int64_t x, y;
		bool okx = parse_int64(a, alen, &x), oky = parse_int64(b, blen, &y);
		if (okx && oky)
			return x < y ? -1 : x > y ? 1 : 0;
		if (okx != oky)
			return okx ? -1 : 1;
		break;
	}
	case SYNC_KEY_NUMERIC: {
		struct decimal x, y;
		bool okx = parse_decimal(a, alen, &x), oky = parse_decimal(b, blen, &y);
		if (okx && oky)
			return decimal_cmp(&x, &y);
		if (okx != oky)
			return okx ? -1 : 1;
		break;
	}
	case SYNC_KEY_BPCHAR:
		while (alen > 0 && a[alen - 1] == ' ')
			alen--;
		while (blen > 0 && b[blen - 1] == ' ')
			blen--;
		break;
	case SYNC_KEY_BYTES:
	case SYNC_KEY_TEXT:
		break;
	}
	return bytes_cmp(a, alen, b, blen);
}

/* ---------- resolving a table ---------- */

struct side_table {
	struct strlist names;
	struct strlist types;
	unsigned      *typoids;
	bool          *generated;
	struct strlist pk;
};

static void
side_table_free(struct side_table *s)
{
	strlist_free(&s->names);
	strlist_free(&s->types);
	free(s->typoids);
	free(s->generated);
	strlist_free(&s->pk);
}

static ssize_t
side_find(const struct side_table *s, const char *name)
{
	for (size_t i = 0; i < s->names.len; i++)
		if (strcmp(s->names.items[i], name) == 0)
			return (ssize_t)i;
	return -1;
}

static bool
query_failed(PGresult *res, ExecStatusType want, const char *what, const char *side,
             struct rb_error *err)
{
	if (PQresultStatus(res) == want)
		return false;
	db_error_from_result(err, res, RB_EXIT_STEP);
	rb_error_prefix(err, "could not read %s in the %s", what, side);
	PQclear(res);
	return true;
}

static bool
read_side(PGconn *conn, const char *side, const char *schema, const char *table, const char *display,
          const struct rb_ctx *ctx, struct side_table *out, struct rb_error *err)
{
	static const char rel_sql[] =
		"SELECT c.oid FROM pg_catalog.pg_class c"
		" JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace"
		" WHERE n.nspname OPERATOR(pg_catalog.=) $1 AND c.relname OPERATOR(pg_catalog.=) $2"
		" AND c.relkind OPERATOR(pg_catalog.=) ANY (ARRAY['r', 'p']::pg_catalog.\"char\"[])";
	static const char col_sql[] =
		"SELECT a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod),"
		" a.atttypid::pg_catalog.int8, a.attgenerated::pg_catalog.text"
		" FROM pg_catalog.pg_attribute a"
		" WHERE a.attrelid OPERATOR(pg_catalog.=) $1::pg_catalog.oid"
		" AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped ORDER BY a.attnum";
	static const char pk_sql[] =
		"SELECT a.attname FROM pg_catalog.pg_index i"
		" CROSS JOIN LATERAL pg_catalog.unnest(i.indkey::pg_catalog.int2[]) WITH ORDINALITY AS k(attnum, ord)"
		" JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) i.indrelid"
		"  AND a.attnum OPERATOR(pg_catalog.=) k.attnum"
		" WHERE i.indrelid OPERATOR(pg_catalog.=) $1::pg_catalog.oid AND i.indisprimary"
		" ORDER BY k.ord";
	const char *p2[2] = { schema, table };
	PGresult *res = db_exec(conn, rel_sql, 2, p2, ctx);
	if (query_failed(res, PGRES_TUPLES_OK, "the table", side, err))
		return false;
	if (PQntuples(res) != 1) {
		PQclear(res);
		rb_error_setc(err, RB_EXIT_STEP, "table %s does not exist in the %s", display, side);
		return false;
	}
	char *oid = xstrdup(PQgetvalue(res, 0, 0));
	PQclear(res);

	const char *p1[1] = { oid };
	res = db_exec(conn, col_sql, 1, p1, ctx);
	if (query_failed(res, PGRES_TUPLES_OK, "the columns", side, err)) {
		free(oid);
		return false;
	}
	int n = PQntuples(res);
	out->typoids = xcalloc((size_t)n + 1, sizeof *out->typoids);
	out->generated = xcalloc((size_t)n + 1, sizeof *out->generated);
	for (int i = 0; i < n; i++) {
		strlist_push(&out->names, PQgetvalue(res, i, 0));
		strlist_push(&out->types, PQgetvalue(res, i, 1));
		out->typoids[i] = (unsigned)strtoul(PQgetvalue(res, i, 2), NULL, 10);
		out->generated[i] = PQgetvalue(res, i, 3)[0] != '\0';
	}
	PQclear(res);

	res = db_exec(conn, pk_sql, 1, p1, ctx);
	free(oid);
	if (query_failed(res, PGRES_TUPLES_OK, "the primary key", side, err))
		return false;
	for (int i = 0; i < PQntuples(res); i++)
		strlist_push(&out->pk, PQgetvalue(res, i, 0));
	PQclear(res);
	return true;
}

static enum sync_key_order
key_order_for(unsigned typoid)
{
	switch (typoid) {
	case OID_TEXT: case OID_VARCHAR: case OID_NAME: case OID_UUID: case OID_BOOL:
		return SYNC_KEY_BYTES;
	case OID_BPCHAR:
		return SYNC_KEY_BPCHAR;
	case OID_INT2: case OID_INT4: case OID_INT8:
		return SYNC_KEY_INT;
	case OID_NUMERIC:
		return SYNC_KEY_NUMERIC;
	default:
		return SYNC_KEY_TEXT;
	}
}


static void
add_column(struct sync_spec *spec, const char *name, const char *type, unsigned typoid, bool key)
{
	struct sync_column *c = &spec->cols[spec->ncols++];
	c->name = xstrdup(name);
	c->type = xstrdup(type);
	c->key = key;
	c->order = key ? key_order_for(typoid) : SYNC_KEY_BYTES;
}

/* Checks a compared column on both sides; its index in src, or -1 with err set. */
static ssize_t
check_column(const struct sync_spec *spec, const struct side_table *s, const struct side_table *d,
             const char *name, const char *why, struct rb_error *err)
{
	ssize_t si = side_find(s, name), di = side_find(d, name);
	if (si < 0 || di < 0) {
		rb_error_setc(err, RB_EXIT_STEP, "%scolumn \"%s\" of table %s does not exist in the %s", why,
		              name, spec->display, si < 0 ? "source" : "target");
		return -1;
	}
	if (s->generated[si] || d->generated[di]) {
		rb_error_setc(err, RB_EXIT_STEP, "%scolumn \"%s\" of table %s is a generated column in the %s",
		              why, name, spec->display, s->generated[si] ? "source" : "target");
		rb_error_detail(err, "Generated columns are computed by each server and are not synced.");
		return -1;
	}
	if (strcmp(s->types.items[si], d->types.items[di]) != 0) {
		rb_error_setc(err, RB_EXIT_STEP,
		              "column \"%s\" of table %s has type %s in the source and %s in the target",
		              name, spec->display, s->types.items[si], d->types.items[di]);
		rb_error_hint(err, "Migrate both databases to the same schema before syncing data.");
		return -1;
	}
	return si;
}

/* COPY (SELECT <cols> FROM <table> ORDER BY <key order>) TO STDOUT. */
static void
build_copy_sql(PGconn *conn, struct sync_spec *spec)
{
	struct strbuf sb = {0};
	strbuf_adds(&sb, "COPY (SELECT ");
	for (size_t i = 0; i < spec->ncols; i++) {
		char *q = db_quote_ident(conn, spec->cols[i].name);
		if (i)
			strbuf_adds(&sb, ", ");
		if (spec->cols[i].key && spec->cols[i].order == SYNC_KEY_TEXT)
			strbuf_addf(&sb, "(%s)::pg_catalog.text", q);
		else
			strbuf_adds(&sb, q);
		free(q);
	}
	char *qs = db_quote_ident(conn, spec->schema), *qt = db_quote_ident(conn, spec->table);
	strbuf_addf(&sb, " FROM %s.%s ORDER BY ", qs, qt);
	free(qs);
	free(qt);
	for (size_t i = 0; i < spec->nkey; i++) {
		const struct sync_column *c = &spec->cols[i];
		char *q = db_quote_ident(conn, c->name);
		if (i)
			strbuf_adds(&sb, ", ");
		if (c->order == SYNC_KEY_TEXT)
			strbuf_addf(&sb, "(%s)::pg_catalog.text COLLATE pg_catalog.\"C\"", q);
		else if (c->order == SYNC_KEY_BPCHAR || (c->order == SYNC_KEY_BYTES &&
		         strcmp(c->type, "uuid") != 0 && strcmp(c->type, "boolean") != 0))
			strbuf_addf(&sb, "%s COLLATE pg_catalog.\"C\"", q);
		else
			strbuf_adds(&sb, q);
		free(q);
	}
	strbuf_adds(&sb, ") TO STDOUT");
	spec->copy_sql = strbuf_detach(&sb);
}

char *
sync_table_display(const struct plan *plan, const char *name)
{
	if (strchr(name, '.'))
		return xstrdup(name);
	const char *schema = plan->migrations.schema && plan->migrations.schema[0] ? plan->migrations.schema : "public";
	return xasprintf("%s.%s", schema, name);
}

bool
sync_table_resolve(PGconn *src, PGconn *dst, const struct plan *plan,
                   const struct plan_sync_table *t, const struct rb_ctx *ctx,
                   struct sync_spec **spec_out, struct rb_error *err)
{
	*spec_out = NULL;
	struct sync_spec *spec = xcalloc(1, sizeof *spec);
	spec->plan_name = xstrdup(t->name);
	const char *dot = strchr(t->name, '.');
	if (dot) {
		spec->schema = xstrndup(t->name, (size_t)(dot - t->name));
		spec->table = xstrdup(dot + 1);
	} else {
		spec->schema = xstrdup(plan->migrations.schema && plan->migrations.schema[0] ? plan->migrations.schema :
		                       "public");
		spec->table = xstrdup(t->name);
	}
	spec->display = sync_table_display(plan, t->name);
	spec->mode = t->mode;
	spec->on_conflict = t->on_conflict;
	spec->delete_rows = t->delete_rows;
	spec->protected_ = t->protected_;

	struct side_table s = {0}, d = {0};
	bool ok = false;
	if (!read_side(src, "source", spec->schema, spec->table, spec->display, ctx, &s, err) ||
	    !read_side(dst, "target", spec->schema, spec->table, spec->display, ctx, &d, err))
		goto out;

	/* The key. */
	const struct strlist *key = &t->key;
	spec->key_from_plan = key->len > 0;
	if (key->len == 0)
		key = s.pk.len ? &s.pk : &d.pk;
	if (key->len == 0) {
		rb_error_setc(err, RB_EXIT_STEP, "table %s has no primary key and the plan names no key",
		              spec->display);
		rb_error_hint(err, "Give the table a key in the plan: key: [column, ...].");
		goto out;
	}

	/* The compared columns: the plan's, else every column, which both sides must have. */
	size_t cap = (t->columns.len ? t->columns.len : s.names.len) + key->len;
	spec->cols = xcalloc(cap + 1, sizeof *spec->cols);
	for (size_t i = 0; i < key->len; i++) {
		const char *name = key->items[i];
		if (t->columns.len && !strlist_contains(&t->columns, name)) {
			rb_error_setc(err, RB_EXIT_STEP, "key column \"%s\" of table %s is not among the plan's columns",
			              name, spec->display);
			goto out;
		}
		ssize_t si = check_column(spec, &s, &d, name, "key ", err);
		if (si < 0)
			goto out;
		add_column(spec, name, s.types.items[si], s.typoids[si], true);
	}
	spec->nkey = spec->ncols;
	if (t->columns.len) {
		for (size_t i = 0; i < t->columns.len; i++) {
			const char *name = t->columns.items[i];
			if (strlist_contains(key, name))
				continue;
			ssize_t si = check_column(spec, &s, &d, name, "", err);
			if (si < 0)
				goto out;
			add_column(spec, name, s.types.items[si], s.typoids[si], false);
		}
	} else {
		for (size_t i = 0; i < d.names.len; i++) {
			if (d.generated[i])
				continue;
			ssize_t si = side_find(&s, d.names.items[i]);
			if (si < 0 || s.generated[si]) {
				rb_error_setc(err, RB_EXIT_STEP, "column \"%s\" of table %s exists only in the target",
				              d.names.items[i], spec->display);
				rb_error_hint(err, "Name the columns to sync in the plan (columns: [...]).");
				goto out;
			}
		}
		for (size_t i = 0; i < s.names.len; i++) {
			const char *name = s.names.items[i];
			if (s.generated[i] || strlist_contains(key, name))
				continue;
			ssize_t di = side_find(&d, name);
			if (di < 0 || d.generated[di]) {
				rb_error_setc(err, RB_EXIT_STEP, "column \"%s\" of table %s exists only in the source",
				              name, spec->display);
				rb_error_hint(err, "Name the columns to sync in the plan (columns: [...]).");
				goto out;
			}
			if (check_column(spec, &s, &d, name, "", err) < 0)
				goto out;
			add_column(spec, name, s.types.items[i], s.typoids[i], false);
		}
	}
	build_copy_sql(src, spec);
	ok = true;
out:
	side_table_free(&s);
	side_table_free(&d);
	if (!ok) {
		sync_spec_free(spec);
		return false;
	}
	*spec_out = spec;
	return true;
}

/* ---------- the diff ---------- */

struct keyset {
	const char **p;
	size_t      *len;
	ssize_t     *off;   /* offset in buf when decoded there, else -1 */
	int64_t     *iv;    /* SYNC_KEY_INT values */
	struct strbuf buf;
};

struct side {
	PGconn        *conn;
	const char    *label;
	char          *line;     /* the current row without its newline (libpq's buffer); NULL at the end */
	size_t         len;
	size_t         keyend;   /* length of the key fields in line */
	bool           started, done;
	int            ahead;    /* reads into libpq since this side was last drained */
	struct keyset  ks[2];
	int            cur;
	int64_t        rows;
	size_t        *foff, *flen;  /* raw field positions (reported rows) */
	struct sync_value *vals;
	struct strbuf  scratch;
};

struct diff {
	const struct sync_spec *spec;
	const struct rb_ctx    *ctx;
	struct side             s[2];   /* 0 source, 1 target */
	bool                   *changed;
	EVP_MD_CTX             *md;
	struct rb_error        *err;
};

static void
keyset_init(struct keyset *k, size_t n)
{
	k->p = xcalloc(n + 1, sizeof *k->p);
	k->len = xcalloc(n + 1, sizeof *k->len);
	k->off = xcalloc(n + 1, sizeof *k->off);
	k->iv = xcalloc(n + 1, sizeof *k->iv);
	strbuf_init(&k->buf);
}

static void
keyset_free(struct keyset *k)
{
	free(k->p);
	free(k->len);
	free(k->off);
	free(k->iv);
	strbuf_release(&k->buf);
}

/* "(a, b)=(1, x)" for messages; caller frees. */
static char *
key_text(const struct sync_spec *spec, const struct keyset *k)
{
	struct strbuf sb = {0};
	strbuf_addc(&sb, '(');
	for (size_t i = 0; i < spec->nkey; i++)
		strbuf_addf(&sb, "%s%s", i ? ", " : "", spec->cols[i].name);
	strbuf_adds(&sb, ")=(");
	for (size_t i = 0; i < spec->nkey; i++) {
		if (i)
			strbuf_adds(&sb, ", ");
		strbuf_add(&sb, k->p[i], k->len[i] > 200 ? 200 : k->len[i]);
	}
	strbuf_addc(&sb, ')');
	return strbuf_detach(&sb);
}

/* Splits and decodes the key fields of line into k; false with err set on a NULL key. */
static bool
parse_keys(struct diff *d, struct side *s, const char *line, size_t len, struct keyset *k,
           size_t *keyend)
{
	const struct sync_spec *spec = d->spec;
	size_t pos = 0, end = 0;
	strbuf_reset(&k->buf);
	for (size_t i = 0; i < spec->nkey; i++) {
		if (pos > len)
			return rb_error_setc(d->err, RB_EXIT_STEP, "the %s sent a row of table %s with too few fields",
			                     s->label, spec->display);
		const char *f = line + pos;
		const char *tab = memchr(f, '\t', len - pos);
		end = tab ? (size_t)(tab - line) : len;
		size_t flen = end - pos;
		bool is_null = false;
		if (memchr(f, '\\', flen)) {
			size_t off = k->buf.len;
			strbuf_add(&k->buf, f, flen);
			size_t n = sync_copy_decode(k->buf.buf + off, flen, k->buf.buf + off, &is_null);
			k->buf.len = off + n;
			k->off[i] = (ssize_t)off;
			k->len[i] = n;
		} else {
			k->off[i] = -1;
			k->p[i] = f;
			k->len[i] = flen;
		}
		if (is_null) {
			rb_error_setc(d->err, RB_EXIT_STEP, "the %s table %s has a NULL in key column \"%s\"",
			              s->label, spec->display, spec->cols[i].name);
			rb_error_hint(d->err, "Give the table a key without NULLs in the plan: key: [column, ...].");
			return false;
		}
		pos = end + 1;
	}
	for (size_t i = 0; i < spec->nkey; i++) {
		if (k->off[i] >= 0)
			k->p[i] = k->buf.buf + k->off[i];
		if (spec->cols[i].order == SYNC_KEY_INT && !parse_int64(k->p[i], k->len[i], &k->iv[i])) {
			rb_error_setc(d->err, RB_EXIT_STEP, "the %s sent key value \"%.*s\" that is not an integer",
			              s->label, (int)(k->len[i] > 100 ? 100 : k->len[i]), k->p[i]);
			return false;
		}
	}
	*keyend = end;
	return true;
}

static int
keys_cmp(const struct sync_spec *spec, const struct keyset *a, const struct keyset *b)
{
	for (size_t i = 0; i < spec->nkey; i++) {
		int c;
		switch (spec->cols[i].order) {
		case SYNC_KEY_INT:
			c = a->iv[i] < b->iv[i] ? -1 : a->iv[i] > b->iv[i];
			break;
		case SYNC_KEY_BYTES:
		case SYNC_KEY_TEXT:
			c = bytes_cmp(a->p[i], a->len[i], b->p[i], b->len[i]);
			break;
		default:
			c = sync_key_compare(spec->cols[i].order, a->p[i], a->len[i], b->p[i], b->len[i]);
			break;
		}
		if (c != 0)
			return c;
	}
	return 0;
}

static void
cancel_conn(PGconn *conn)
{
	PGcancel *c = PQgetCancel(conn);
	char errbuf[256];
	if (c) {
		PQcancel(c, errbuf, sizeof errbuf);
		PQfreeCancel(c);
	}
}

static bool
conn_error(struct diff *d, struct side *s, const char *what)
{
	const char *m = PQerrorMessage(s->conn);
	size_t n = strlen(m);
	while (n > 0 && (m[n - 1] == '\n' || m[n - 1] == ' '))
		n--;
	rb_error_setc(d->err, RB_EXIT_STEP, "%s the %s of table %s: %.*s", what, s->label,
	              d->spec->display, (int)n, m);
	return false;
}

/* Waits until conn's socket is readable (or 100 ms pass) and reads what came; false on failure. */
static bool
wait_input(struct diff *d, struct side *s)
{
	if (rb_ctx_cancelled(d->ctx)) {
		rb_error_setc(d->err, RB_EXIT_STEP, "the diff of table %s was cancelled", d->spec->display);
		return false;
	}
	struct side *o = &d->s[s == &d->s[0]];
	struct pollfd pfd[2] = {
		{ .fd = PQsocket(s->conn), .events = POLLIN },
		{ .fd = -1, .events = POLLIN },
	};
	/* Keep the other server streaming while this one is waited for, within a bound. */
	if (o->started && !o->done && o->ahead < SYNC_READ_AHEAD)
		pfd[1].fd = PQsocket(o->conn);
	if (poll(pfd, 2, 100) < 0 && errno != EINTR) {
		rb_error_setc(d->err, RB_EXIT_STEP, "could not wait for the servers: %s", strerror(errno));
		return false;
	}
	if ((pfd[0].revents & (POLLIN | POLLHUP | POLLERR)) && !PQconsumeInput(s->conn))
		return conn_error(d, s, "could not read");
	if (pfd[1].fd >= 0 && (pfd[1].revents & (POLLIN | POLLHUP | POLLERR))) {
		if (!PQconsumeInput(o->conn))
			return conn_error(d, o, "could not read");
		o->ahead++;
	}
	return true;
}

/* Reads results until none is left; the first one must have status want. */
static bool
read_result(struct diff *d, struct side *s, ExecStatusType want)
{
	while (PQisBusy(s->conn))
		if (!wait_input(d, s))
			return false;
	PGresult *r = PQgetResult(s->conn);
	if (PQresultStatus(r) != want) {
		db_error_from_result(d->err, r, RB_EXIT_STEP);
		rb_error_prefix(d->err, "could not read table %s in the %s", d->spec->display, s->label);
		PQclear(r);
		return false;
	}
	PQclear(r);
	if (want == PGRES_COPY_OUT)
		return true;
	for (;;) {
		while (PQisBusy(s->conn))
			if (!wait_input(d, s))
				return false;
		if ((r = PQgetResult(s->conn)) == NULL)
			return true;
		PQclear(r);
	}
}

/* The next row: its length (> 0), 0 at the end of the COPY, -1 on failure (err set). */
static int
side_get(struct diff *d, struct side *s, char **buf)
{
	for (;;) {
		int n = PQgetCopyData(s->conn, buf, 1);
		if (n > 0)
			return n;
		if (n == -1) {
			s->done = true;
			return read_result(d, s, PGRES_COMMAND_OK) ? 0 : -1;
		}
		if (n == -2) {
			conn_error(d, s, "could not read");
			return -1;
		}
		s->ahead = 0;
		if (!wait_input(d, s))
			return -1;
	}
}

/* Moves a side to its next row, checking the order; false with err set. */
static bool
side_advance(struct diff *d, struct side *s)
{
	char *buf = NULL;
	int n = side_get(d, s, &buf);
	if (n < 0)
		return false;
	if (n == 0) {
		PQfreemem(s->line);
		s->line = NULL;
		s->len = 0;
		return true;
	}
	size_t len = (size_t)n;
	if (buf[len - 1] == '\n')
		len--;
	struct keyset *nk = &s->ks[!s->cur];
	size_t keyend = 0;
	if (!parse_keys(d, s, buf, len, nk, &keyend)) {
		PQfreemem(buf);
		return false;
	}
	if (s->line) {
		int c = keys_cmp(d->spec, &s->ks[s->cur], nk);
		if (c >= 0) {
			char *kt = key_text(d->spec, nk);
			if (c == 0) {
				rb_error_setc(d->err, RB_EXIT_STEP, "key %s appears more than once in the %s table %s",
				              kt, s->label, d->spec->display);
				rb_error_detail(d->err, "Sync needs a key that identifies one row.");
				rb_error_hint(d->err, "Name a unique key for the table in the plan: key: [column, ...].");
			} else {
				rb_error_setc(d->err, RB_EXIT_STEP, "the %s returned table %s out of key order at %s",
				              s->label, d->spec->display, kt);
			}
			free(kt);
			PQfreemem(buf);
			return false;
		}
	}
	PQfreemem(s->line);
	s->line = buf;
	s->len = len;
	s->keyend = keyend;
	s->cur = !s->cur;
	s->rows++;
	return true;
}

/* Splits the current row of s into fields and decodes them into s->vals. */
static void
side_decode(const struct sync_spec *spec, struct side *s)
{
	size_t pos = 0;
	for (size_t i = 0; i < spec->ncols; i++) {
		const char *tab = pos <= s->len ? memchr(s->line + pos, '\t', s->len - pos) : NULL;
		size_t end = tab ? (size_t)(tab - s->line) : s->len;
		s->foff[i] = pos;
		s->flen[i] = end >= pos ? end - pos : 0;
		pos = end + 1;
	}
	strbuf_reset(&s->scratch);
	strbuf_add(&s->scratch, s->line, s->len);
	strbuf_addc(&s->scratch, '\0');
	char *base = s->scratch.buf;
	size_t w = 0;
	for (size_t i = 0; i < spec->ncols; i++) {
		bool is_null;
		size_t n = sync_copy_decode(base + s->foff[i], s->flen[i], base + w, &is_null);
		s->vals[i].data = is_null ? NULL : base + w;
		s->vals[i].len = n;
		w += n;
		base[w++] = '\0';
	}
}

static void
digest_add(struct diff *d, char tag, const char *data, size_t len)
{
	EVP_DigestUpdate(d->md, &tag, 1);
	EVP_DigestUpdate(d->md, data, len);
	EVP_DigestUpdate(d->md, "\n", 1);
}

static void
report(struct diff *d, enum sync_kind kind, sync_row_fn fn, void *userdata)
{
	const struct sync_spec *spec = d->spec;
	struct side *s = &d->s[0], *t = &d->s[1];
	bool both = kind != SYNC_INSERT && kind != SYNC_DELETE;
	if (kind != SYNC_DELETE)
		side_decode(spec, s);
	if (kind != SYNC_INSERT)
		side_decode(spec, t);
	if (both)
		for (size_t i = 0; i < spec->ncols; i++)
			d->changed[i] = s->flen[i] != t->flen[i] ||
			                memcmp(s->line + s->foff[i], t->line + t->foff[i], s->flen[i]) != 0;
	struct sync_row row = {
		.kind = kind,
		.src = kind == SYNC_DELETE ? NULL : s->vals,
		.dst = kind == SYNC_INSERT ? NULL : t->vals,
		.changed = both ? d->changed : NULL,
		.ncols = spec->ncols,
		.src_line = kind == SYNC_DELETE ? NULL : s->line,
		.src_len = kind == SYNC_DELETE ? 0 : s->len,
		.dst_line = kind == SYNC_INSERT ? NULL : t->line,
		.dst_len = kind == SYNC_INSERT ? 0 : t->len,
	};
	fn(spec, &row, userdata);
}

/* Ends both statements after a failure and leaves the connections idle. */
static void
abandon(struct diff *d)
{
	for (int i = 0; i < 2; i++) {
		struct side *s = &d->s[i];
		if (!s->started)
			continue;
		if (!s->done)
			cancel_conn(s->conn);
		PQsetnonblocking(s->conn, 0);
		char *buf;
		int n;
		while (!s->done && (n = PQgetCopyData(s->conn, &buf, 0)) > 0)
			PQfreemem(buf);
		PGresult *r;
		while ((r = PQgetResult(s->conn)) != NULL) {
			if (PQresultStatus(r) == PGRES_COPY_OUT) {
				while ((n = PQgetCopyData(s->conn, &buf, 0)) > 0)
					PQfreemem(buf);
			}
			PQclear(r);
		}
	}
}

static bool
start_copy(struct diff *d, struct side *s)
{
	if (PQsetnonblocking(s->conn, 1) != 0 || !PQsendQuery(s->conn, d->spec->copy_sql))
		return conn_error(d, s, "could not start reading");
	s->started = true;
	int f;
	while ((f = PQflush(s->conn)) == 1) {
		struct pollfd pfd = { .fd = PQsocket(s->conn), .events = POLLOUT | POLLIN };
		if (poll(&pfd, 1, 100) < 0 && errno != EINTR)
			break;
		if ((pfd.revents & POLLIN) && !PQconsumeInput(s->conn))
			return conn_error(d, s, "could not start reading");
	}
	if (f < 0)
		return conn_error(d, s, "could not start reading");
	return true;
}

/* Runs both statements and merges them; false with err set. */
static bool
diff_run(struct diff *d, const struct sync_diff_hooks *hooks, struct sync_counts *counts)
{
	sync_row_fn row_fn = hooks ? hooks->row : NULL;
	void *userdata = hooks ? hooks->userdata : NULL;
	const struct sync_spec *spec = d->spec;
	struct side *s = &d->s[0], *t = &d->s[1];
	/* Both statements run before either is read. */
	if (!start_copy(d, s) || !start_copy(d, t) ||
	    !read_result(d, s, PGRES_COPY_OUT) || !read_result(d, t, PGRES_COPY_OUT))
		return false;
	if (!side_advance(d, s) || !side_advance(d, t))
		return false;

	const bool differ_is_conflict = spec->on_conflict == PLAN_CONFLICT_ERROR;
	const bool overwrite = spec->mode == PLAN_MODE_UPSERT && spec->on_conflict == PLAN_CONFLICT_LOCAL_WINS;
	unsigned tick = 0;
	while (s->line || t->line) {
		if ((++tick & 0x3ff) == 0 && rb_ctx_cancelled(d->ctx))
			return rb_error_setc(d->err, RB_EXIT_STEP, "the diff of table %s was cancelled",
			                     spec->display);
		if (hooks && hooks->progress && (tick % SYNC_PROGRESS_ROWS) == 0) {
			counts->source_rows = s->rows;
			counts->target_rows = t->rows;
			hooks->progress(spec, counts, hooks->userdata);
		}
		int c = s->line == NULL ? 1 : t->line == NULL ? -1 :
		        keys_cmp(spec, &s->ks[s->cur], &t->ks[t->cur]);
		if (c < 0) {
			counts->n[SYNC_INSERT]++;
			digest_add(d, 'I', s->line, s->keyend);
			if (row_fn)
				report(d, SYNC_INSERT, row_fn, userdata);
			if (!side_advance(d, s))
				return false;
		} else if (c > 0) {
			counts->n[SYNC_DELETE]++;
			if (spec->delete_rows)
				digest_add(d, 'D', t->line, t->len);
			if (row_fn)
				report(d, SYNC_DELETE, row_fn, userdata);
			if (!side_advance(d, t))
				return false;
		} else {
			if (s->len == t->len && memcmp(s->line, t->line, s->len) == 0) {
				counts->n[SYNC_UNCHANGED]++;
			} else {
				enum sync_kind k = differ_is_conflict ? SYNC_CONFLICT :
				                   overwrite ? SYNC_UPDATE : SYNC_DIFFERS_KEPT;
				counts->n[k]++;
				if (k != SYNC_DIFFERS_KEPT)
					digest_add(d, k == SYNC_UPDATE ? 'U' : 'C', t->line, t->len);
				if (row_fn)
					report(d, k, row_fn, userdata);
			}
			if (!side_advance(d, s) || !side_advance(d, t))
				return false;
		}
	}
	counts->source_rows = s->rows;
	counts->target_rows = t->rows;
	if (hooks && hooks->progress)
		hooks->progress(spec, counts, hooks->userdata);
	return true;
}

bool
sync_diff_table(PGconn *src, PGconn *dst, const struct sync_spec *spec,
                const struct rb_ctx *ctx, const struct sync_diff_hooks *hooks,
                struct sync_counts *counts, char digest_out[65], struct rb_error *err)
{
	memset(counts, 0, sizeof *counts);
	digest_out[0] = '\0';
	if (spec->mode == PLAN_MODE_SKIP)
		return rb_error_setc(err, RB_EXIT_USAGE, "table %s is in skip mode: there is nothing to diff",
		                     spec->display);
	if (PQtransactionStatus(src) != PQTRANS_IDLE || PQtransactionStatus(dst) != PQTRANS_IDLE)
		return rb_error_setc(err, RB_EXIT_USAGE, "a connection is busy: cannot diff table %s",
		                     spec->display);

	struct diff d = { .spec = spec, .ctx = ctx, .err = err };
	d.s[0].conn = src;
	d.s[0].label = "source";
	d.s[1].conn = dst;
	d.s[1].label = "target";
	for (int i = 0; i < 2; i++) {
		keyset_init(&d.s[i].ks[0], spec->nkey);
		keyset_init(&d.s[i].ks[1], spec->nkey);
		d.s[i].foff = xcalloc(spec->ncols + 1, sizeof *d.s[i].foff);
		d.s[i].flen = xcalloc(spec->ncols + 1, sizeof *d.s[i].flen);
		d.s[i].vals = xcalloc(spec->ncols + 1, sizeof *d.s[i].vals);
		strbuf_init(&d.s[i].scratch);
	}
	d.changed = xcalloc(spec->ncols + 1, sizeof *d.changed);
	d.md = EVP_MD_CTX_new();
	bool ok;
	if (d.md == NULL || EVP_DigestInit_ex(d.md, EVP_sha256(), NULL) != 1)
		ok = rb_error_setc(err, RB_EXIT_USAGE, "could not start SHA-256 in libcrypto");
	else
		ok = diff_run(&d, hooks, counts);
	if (ok) {
		unsigned char md[EVP_MAX_MD_SIZE];
		unsigned int mdlen = 0;
		if (EVP_DigestFinal_ex(d.md, md, &mdlen) == 1 && mdlen == 32)
			hex_encode(md, 32, digest_out);
		else
			ok = rb_error_setc(err, RB_EXIT_USAGE, "SHA-256 failed in libcrypto");
	}
	if (!ok)
		abandon(&d);
	for (int i = 0; i < 2; i++) {
		PQsetnonblocking(d.s[i].conn, 0);
		PQfreemem(d.s[i].line);
		keyset_free(&d.s[i].ks[0]);
		keyset_free(&d.s[i].ks[1]);
		free(d.s[i].foff);
		free(d.s[i].flen);
		free(d.s[i].vals);
		strbuf_release(&d.s[i].scratch);
	}
	free(d.changed);
	EVP_MD_CTX_free(d.md);
	return ok;
}

bool
sync_list_tables(PGconn *conn, const struct rb_ctx *ctx, struct strlist *out, struct rb_error *err)
{
	static const char sql[] =
		"SELECT n.nspname OPERATOR(pg_catalog.||) '.' OPERATOR(pg_catalog.||) c.relname"
		" FROM pg_catalog.pg_class c"
		" JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace"
		" WHERE c.relkind OPERATOR(pg_catalog.=) ANY (ARRAY['r', 'p']::pg_catalog.\"char\"[])"
		" AND NOT c.relispartition"
		" AND n.nspname OPERATOR(pg_catalog.<>) 'information_schema'"
		" AND NOT pg_catalog.starts_with(n.nspname, 'pg_')"
		" ORDER BY n.nspname COLLATE pg_catalog.\"C\", c.relname COLLATE pg_catalog.\"C\"";
	PGresult *res = db_exec(conn, sql, 0, NULL, ctx);
	if (query_failed(res, PGRES_TUPLES_OK, "the tables", "database", err))
		return false;
	for (int i = 0; i < PQntuples(res); i++)
		strlist_push(out, PQgetvalue(res, i, 0));
	PQclear(res);
	return true;
}
