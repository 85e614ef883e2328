/* plan.c: loads a runbook plan (YAML, via libyaml events), validates all of it, and hashes it. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fnmatch.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <libpq-fe.h>
#include <yaml.h>

#include "events.h"
#include "db.h"
#include "plan.h"

#define PLAN_MAX_DIAGS 50
#define PLAN_MAX_DEPTH 64

/* ---------------------------------------------------------------- names */

static const char *const mode_names[] = { "skip", "append", "upsert" };
static const char *const conflict_names[] = { "prod_wins", "local_wins", "error_on_conflict" };
static const char *const backup_format_names[] = { "custom", "directory" };
static const char *const terminate_names[] = { "ask", "never" };
static const char *const migrations_format_names[] = { "prisma", "sql" };
static const char *const notify_format_names[] = { "slack", "generic", "pagerduty" };
static const char *const env_kind_names[] = { "service", "dsn_env", "conninfo" };
static const char *const row_counts_names[] = { "shrink_forbidden", "off" };
static const char *const orphans_names[] = { "auto", "off" };
#define PLAN_EVENT_NAME(id, name) name,
static const char *const event_names[] = { EVENT_TYPES(PLAN_EVENT_NAME) };
#undef PLAN_EVENT_NAME
#define PLAN_STAGE_NAME(id, name) name,
static const char *const stage_names[] = { PLAN_STAGES(PLAN_STAGE_NAME) };
#undef PLAN_STAGE_NAME

static const char *const top_keys[] = {
	"name", "description", "version", "environments", "source", "target", "backup", "staging",
	"maintenance", "migrations", "sync", "verify", "notify", "checklist", "budgets",
};
static const char *const env_keys[] = { "service", "dsn_env", "conninfo" };
static const char *const backup_keys[] = { "dir", "format", "jobs", "max_age" };
static const char *const staging_keys[] = { "environment" };
static const char *const maintenance_keys[] = {
	"block_connections", "read_only", "terminate_sessions", "hooks", "pgbouncer",
};
static const char *const hooks_keys[] = { "on_sql", "off_sql", "on_command", "off_command" };
static const char *const pgbouncer_keys[] = { "admin_dsn_env" };
static const char *const migrations_keys[] = {
	"dir", "format", "schema", "lock_timeout", "statement_timeout", "retries",
};
static const char *const sync_keys[] = { "defaults", "protected", "tables" };
static const char *const sync_defaults_keys[] = { "mode", "on_conflict" };
static const char *const table_keys[] = { "mode", "key", "on_conflict", "columns", "delete" };
static const char *const verify_keys[] = { "row_counts", "orphans", "checks" };
static const char *const tolerance_keys[] = { "tolerance" };
static const char *const check_keys[] = { "name", "sql", "expect" };
static const char *const notify_keys[] = { "url_env", "format", "events", "secret_env", "events_url_env",
	"timeout", "connect_timeout", "backoff", "max_attempts" };
static const char *const checklist_keys[] = { "before", "after" };
static const char *const budget_keys[] = {
	"preflight", "backup", "staging", "maintenance", "migrate", "sync", "verify",
	"maintenance_off", "total",
};

const char *
plan_stage_name(enum plan_stage s)
{
	return (unsigned)s < PLAN_STAGE_COUNT ? stage_names[s] : "?";
}

const char *
plan_mode_name(enum plan_sync_mode m)
{
	return (unsigned)m < RB_ARRAY_LEN(mode_names) ? mode_names[m] : "?";
}

const char *
plan_on_conflict_name(enum plan_on_conflict c)
{
	return (unsigned)c < RB_ARRAY_LEN(conflict_names) ? conflict_names[c] : "?";
}

const char *
plan_env_kind_name(enum plan_env_kind k)
{
	return (unsigned)k < RB_ARRAY_LEN(env_kind_names) ? env_kind_names[k] : "?";
}

const char *
plan_notify_format_name(enum plan_notify_format f)
{
	return (unsigned)f < RB_ARRAY_LEN(notify_format_names) ? notify_format_names[f] : "?";
}

const char *
plan_backup_format_name(enum plan_backup_format f)
{
	return (unsigned)f < RB_ARRAY_LEN(backup_format_names) ? backup_format_names[f] : "?";
}

const char *
plan_migrations_format_name(enum plan_migrations_format f)
{
	return (unsigned)f < RB_ARRAY_LEN(migrations_format_names) ? migrations_format_names[f] : "?";
}

/* ---------------------------------------------------------------- durations */

struct duration_unit {
	const char *name;
	int64_t     ms;
};

/* Longest names first so that "min" and "ms" win over "m" and "s". */
static const struct duration_unit duration_units[] = {
	{ "min", 60000 }, { "ms", 1 }, { "d", 86400000 }, { "h", 3600000 }, { "s", 1000 },
};

enum duration_problem { DUR_OK, DUR_EMPTY, DUR_BARE, DUR_M, DUR_UNIT, DUR_ORDER, DUR_RANGE };

static enum duration_problem
duration_parse(const char *s, int64_t *ms_out)
{
	int64_t total = 0;
	int64_t last_unit = INT64_MAX;
	const char *p = s;

	if (*p == '\0')
		return DUR_EMPTY;
	while (*p) {
		if (!isdigit((unsigned char)*p))
			return DUR_UNIT;
		int64_t n = 0;
		while (isdigit((unsigned char)*p)) {
			if (n > 1000000000000LL)
				return DUR_RANGE;
			n = n * 10 + (*p - '0');
			p++;
		}
		if (*p == '\0')
			return DUR_BARE;
		const struct duration_unit *u = NULL;
		for (size_t i = 0; i < RB_ARRAY_LEN(duration_units); i++) {
			size_t len = strlen(duration_units[i].name);
			if (strncmp(p, duration_units[i].name, len) == 0 && !isalpha((unsigned char)p[len])) {
				u = &duration_units[i];
				break;
			}
		}
		if (u == NULL)
			return (*p == 'm' && !isalpha((unsigned char)p[1])) ? DUR_M : DUR_UNIT;
		if (u->ms >= last_unit)
			return DUR_ORDER;
		last_unit = u->ms;
		p += strlen(u->name);
		int64_t part;
		if (__builtin_mul_overflow(n, u->ms, &part) || __builtin_add_overflow(total, part, &total))
			return DUR_RANGE;
	}
	if (total > 100LL * 365 * 86400000LL)
		return DUR_RANGE;
	*ms_out = total;
	return DUR_OK;
}

bool
plan_parse_duration(const char *s, int64_t *ms_out)
{
	int64_t ms;
	if (s == NULL || duration_parse(s, &ms) != DUR_OK)
		return false;
	*ms_out = ms;
	return true;
}

void
plan_format_duration(int64_t ms, char *out, size_t outlen)
{
	static const struct duration_unit order[] = {
		{ "d", 86400000 }, { "h", 3600000 }, { "min", 60000 }, { "s", 1000 }, { "ms", 1 },
	};
	size_t used = 0;

	if (outlen == 0)
		return;
	out[0] = '\0';
	if (ms <= 0) {
		snprintf(out, outlen, ms == 0 ? "0s" : "-");
		return;
	}
	for (size_t i = 0; i < RB_ARRAY_LEN(order); i++) {
		int64_t n = ms / order[i].ms;
		if (n == 0)
			continue;
		ms -= n * order[i].ms;
		int w = snprintf(out + used, outlen - used, "%lld%s", (long long)n, order[i].name);
		if (w < 0 || (size_t)w >= outlen - used)
			return;
		used += (size_t)w;
	}
}

/* ---------------------------------------------------------------- the YAML node tree */

enum ynode_kind { YN_SCALAR, YN_MAP, YN_SEQ };

struct ynode {
	enum ynode_kind   kind;
	struct plan_mark  mark;
	bool              quoted;  /* quoted or block scalar: always a string */
	bool              bad;     /* already reported (an alias): say nothing more about it */
	char             *text;    /* scalar value */
	struct ynode    **kids;    /* sequence items; mapping keys and values, alternating */
	size_t            nkids;
	size_t            cap;
};

static void
ynode_free(struct ynode *n)
{
	if (n == NULL)
		return;
	for (size_t i = 0; i < n->nkids; i++)
		ynode_free(n->kids[i]);
	free(n->kids);
	free(n->text);
	free(n);
}

static void
ynode_push(struct ynode *n, struct ynode *kid)
{
	if (n->nkids == n->cap) {
		n->cap = n->cap ? n->cap * 2 : 8;
		n->kids = xrealloc(n->kids, n->cap * sizeof(*n->kids));
	}
	n->kids[n->nkids++] = kid;
}

static size_t
ynode_npairs(const struct ynode *map)
{
	return map->nkids / 2;
}

enum scalar_type { ST_NULL, ST_BOOL, ST_INT, ST_FLOAT, ST_STR };

static bool
is_int_text(const char *s)
{
	if (*s == '-' || *s == '+')
		s++;
	if (!isdigit((unsigned char)*s))
		return false;
	while (isdigit((unsigned char)*s))
		s++;
	return *s == '\0';
}

static bool
is_float_text(const char *s)
{
	static const char *const special[] = {
		".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", "-.inf", "-.Inf", "-.INF",
		".nan", ".NaN", ".NAN",
	};
	for (size_t i = 0; i < RB_ARRAY_LEN(special); i++)
		if (strcmp(s, special[i]) == 0)
			return true;
	if (*s == '-' || *s == '+')
		s++;
	bool digits = false;
	while (isdigit((unsigned char)*s)) {
		s++;
		digits = true;
	}
	if (*s == '.') {
		s++;
		while (isdigit((unsigned char)*s)) {
			s++;
			digits = true;
		}
	}
	if (!digits)
		return false;
	if (*s == 'e' || *s == 'E') {
		s++;
		if (*s == '-' || *s == '+')
			s++;
		if (!isdigit((unsigned char)*s))
			return false;
		while (isdigit((unsigned char)*s))
			s++;
	}
	return *s == '\0';
}

/* The YAML 1.2 core schema type of a scalar; quoted and block scalars are always strings. */
static enum scalar_type
scalar_type(const struct ynode *n)
{
	const char *t = n->text;
	if (n->quoted)
		return ST_STR;
	if (*t == '\0' || strcmp(t, "~") == 0 || strcmp(t, "null") == 0 || strcmp(t, "Null") == 0 ||
	    strcmp(t, "NULL") == 0)
		return ST_NULL;
	if (strcmp(t, "true") == 0 || strcmp(t, "True") == 0 || strcmp(t, "TRUE") == 0 ||
	    strcmp(t, "false") == 0 || strcmp(t, "False") == 0 || strcmp(t, "FALSE") == 0)
		return ST_BOOL;
	if (is_int_text(t))
		return ST_INT;
	if (is_float_text(t))
		return ST_FLOAT;
	return ST_STR;
}

/* ---------------------------------------------------------------- diagnostics */

struct diag_item {
	struct plan_diag d;
	size_t           seq;
};

struct loader {
	const char       *file;
	yaml_parser_t     parser;
	struct diag_item *items;
	size_t            len;
	size_t            cap;
	bool              stop;     /* the YAML could not be read to the end */
	struct plan      *p;
	bool              envs_ok;  /* environments is a mapping: names can be checked */
	const char       *text;     /* the raw file, for positions libyaml gives as byte offsets */
	size_t            text_len;
	int               syntax_line; /* line of the YAML syntax error, 0 if none */
};

static void
diag_add(struct loader *L, struct plan_mark m, const char *fmt, ...) RB_PRINTF(3, 4);

static void
diag_add(struct loader *L, struct plan_mark m, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *text = xvasprintf(fmt, ap);
	va_end(ap);
	if (L->len == L->cap) {
		L->cap = L->cap ? L->cap * 2 : 16;
		L->items = xrealloc(L->items, L->cap * sizeof(*L->items));
	}
	struct diag_item *it = &L->items[L->len];
	it->d.mark = m;
	it->d.message = xasprintf("%s:%d:%d: %s", L->file, m.line, m.column, text);
	it->seq = L->len;
	L->len++;
	free(text);
}

static int
diag_cmp(const void *a, const void *b)
{
	const struct diag_item *x = a, *y = b;
	if (x->d.mark.line != y->d.mark.line)
		return x->d.mark.line < y->d.mark.line ? -1 : 1;
	if (x->d.mark.column != y->d.mark.column)
		return x->d.mark.column < y->d.mark.column ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

void
plan_diags_free(struct plan_diags *d)
{
	if (d == NULL)
		return;
	for (size_t i = 0; i < d->len; i++)
		free(d->items[i].message);
	free(d->items);
	d->items = NULL;
	d->len = 0;
}

static struct plan_mark
mark_of(yaml_mark_t m)
{
	struct plan_mark pm = { (int)m.line + 1, (int)m.column + 1 };
	return pm;
}

/* Levenshtein distance, case-insensitive, for "did you mean" suggestions. */
static size_t
edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	if (la > 64 || lb > 64)
		return 99;
	size_t row[65];
	for (size_t j = 0; j <= lb; j++)
		row[j] = j;
	for (size_t i = 1; i <= la; i++) {
		size_t diag = row[0];
		row[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t up = row[j];
			size_t cost = tolower((unsigned char)a[i - 1]) != tolower((unsigned char)b[j - 1]);
			size_t best = diag + cost;
			if (up + 1 < best)
				best = up + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			row[j] = best;
			diag = up;
		}
	}
	return row[lb];
}

/* " (did you mean "x"?)" for the closest name within a small distance, or "". Caller frees. */
static char *
suggest(const char *word, const char *const *names, size_t n)
{
	size_t best = 99, besti = 0;
	for (size_t i = 0; i < n; i++) {
		size_t d = edit_distance(word, names[i]);
		if (d < best) {
			best = d;
			besti = i;
		}
	}
	size_t len = strlen(word);
	size_t limit = len <= 3 ? 1 : len <= 6 ? 2 : 3;
	if (n == 0 || best > limit || best >= len)
		return xstrdup("");
	return xasprintf(" (did you mean \"%s\"?)", names[besti]);
}

static char *
join_names(const char *const *names, size_t n)
{
	struct strbuf sb = {0};
	for (size_t i = 0; i < n; i++) {
		if (i)
			strbuf_adds(&sb, ", ");
		strbuf_adds(&sb, names[i]);
	}
	return strbuf_detach(&sb);
}

/* Whether text may carry a secret (a password in a URI or conninfo, a webhook URL). */
static bool
looks_secret(const char *s)
{
	if (strstr(s, "://") != NULL || strchr(s, '@') != NULL)
		return true;
	for (const char *p = s; *p; p++)
		if (strncasecmp(p, "password", 8) == 0)
			return true;
	return false;
}

/* A short text for a found value, for "found X; expected Y". Never shows a secret. Caller frees. */
static char *
describe(const struct ynode *n)
{
	switch (n->kind) {
	case YN_MAP:
		return xstrdup(n->nkids ? "a mapping" : "an empty mapping");
	case YN_SEQ:
		return xstrdup(n->nkids ? "a list" : "an empty list");
	case YN_SCALAR:
		break;
	}
	switch (scalar_type(n)) {
	case ST_NULL:
		return xstrdup("an empty value");
	case ST_BOOL:
		return xasprintf("the boolean %s", n->text);
	case ST_INT:
	case ST_FLOAT:
		return xasprintf("the number %s", n->text);
	case ST_STR:
		break;
	}
	if (looks_secret(n->text))
		return xstrdup(n->quoted ? "a quoted string that looks like a URL or connection string (not shown)"
		                         : "a string that looks like a URL or connection string (not shown)");
	if (n->text[0] == '\0')
		return xstrdup("an empty string");
	struct strbuf sb = {0};
	strbuf_adds(&sb, n->quoted ? "the quoted string \"" : "the string \"");
	size_t i = 0;
	for (const unsigned char *p = (const unsigned char *)n->text; *p; p++, i++) {
		if (i == 40) {
			strbuf_adds(&sb, "...");
			break;
		}
		if (*p < 0x20 || *p == 0x7f)
			strbuf_addc(&sb, '?');
		else if (*p == '"' || *p == '\\')
			strbuf_addf(&sb, "\\%c", *p);
		else
			strbuf_addc(&sb, (char)*p);
	}
	strbuf_addc(&sb, '"');
	return strbuf_detach(&sb);
}

static void
diag_found(struct loader *L, const struct ynode *n, const char *path, const char *expected)
{
	if (n->bad)
		return;
	char *what = describe(n);
	diag_add(L, n->mark, "%s: found %s; expected %s", path, what, expected);
	free(what);
}

/* "PATH.key", quoting keys that are not plain identifiers. Caller frees. */
static char *
path_key(const char *path, const char *key)
{
	bool plain = *key != '\0';
	for (const char *k = key; *k; k++)
		if (!isalnum((unsigned char)*k) && *k != '_' && *k != '-')
			plain = false;
	const char *q = plain ? "" : "\"";
	return *path ? xasprintf("%s.%s%s%s", path, q, key, q) : xasprintf("%s%s%s", q, key, q);
}

static char *
path_index(const char *path, size_t i)
{
	return xasprintf("%s[%zu]", path, i);
}

/* "in PATH", or "at top level" when path is empty. Caller frees. */
static char *
where(const char *path)
{
	return *path ? xasprintf("in %s", path) : xstrdup("at top level");
}

/* ---------------------------------------------------------------- reading YAML */

static void
syntax_error(struct loader *L)
{
	yaml_parser_t *y = &L->parser;
	struct plan_mark m;

	if (y->error == YAML_READER_ERROR) {
		/* The reader gives a byte offset: count lines and characters up to it. */
		size_t off = y->problem_offset;
		if (y->problem && strstr(y->problem, "trailing")) {
			/* The offset is that of the bad trailing byte: point at its character's start. */
			for (size_t back = 1; back <= 3 && back <= off && off - back < L->text_len; back++) {
				unsigned char c = (unsigned char)L->text[off - back];
				if (c >= 0xc0) {
					off -= back;
					break;
				}
				if ((c & 0xc0) != 0x80)
					break;
			}
		}
		m.line = 1;
		m.column = 1;
		for (size_t i = 0; i < off && i < L->text_len; i++) {
			unsigned char c = (unsigned char)L->text[i];
			if (c == '\n') {
				m.line++;
				m.column = 1;
			} else if ((c & 0xc0) != 0x80) {
				m.column++;
			}
		}
		diag_add(L, m, "the file is not valid UTF-8 text (%s); expected a UTF-8 YAML file",
		         y->problem ? y->problem : "unreadable");
		L->stop = true;
		L->syntax_line = m.line;
		return;
	}
	if (y->error == YAML_MEMORY_ERROR) {
		fprintf(stderr, "pgrunbook: out of memory in libyaml\n");
		abort();
	}
	m = mark_of(y->problem_mark);
	L->syntax_line = m.line;
	if (y->context)
		diag_add(L, m, "invalid YAML: %s, %s that starts at line %d, column %d; expected valid "
		         "YAML (check the indentation, colons and quotes here)", y->problem ? y->problem : "error",
		         y->context, (int)y->context_mark.line + 1, (int)y->context_mark.column + 1);
	else
		diag_add(L, m, "invalid YAML: %s; expected valid YAML (check the indentation, colons and "
		         "quotes here)", y->problem ? y->problem : "error");
	L->stop = true;
}

static bool
next_event(struct loader *L, yaml_event_t *ev)
{
	if (!yaml_parser_parse(&L->parser, ev)) {
		syntax_error(L);
		return false;
	}
	return true;
}

static void
check_anchor_tag(struct loader *L, const yaml_event_t *ev, const yaml_char_t *anchor,
                 const yaml_char_t *tag)
{
	struct plan_mark m = mark_of(ev->start_mark);
	if (anchor)
		diag_add(L, m, "YAML anchor \"&%s\"; expected every value written out in full (anchors "
		         "and aliases are not supported)", (const char *)anchor);
	if (tag)
		diag_add(L, m, "YAML tag \"%s\"; expected a value without a tag", (const char *)tag);
}

/* Builds a node from ev (consumed) and the events that follow; NULL when the YAML is broken. */
static struct ynode *
parse_node(struct loader *L, yaml_event_t *ev, int depth)
{
	struct ynode *n = xcalloc(1, sizeof *n);
	n->mark = mark_of(ev->start_mark);

	switch (ev->type) {
	case YAML_SCALAR_EVENT:
		n->kind = YN_SCALAR;
		n->text = xstrndup((const char *)ev->data.scalar.value, ev->data.scalar.length);
		n->quoted = ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE;
		check_anchor_tag(L, ev, ev->data.scalar.anchor, ev->data.scalar.tag);
		if (strlen(n->text) != ev->data.scalar.length) {
			diag_add(L, n->mark, "a string with a NUL character; expected text without NUL");
			n->bad = true;
		}
		yaml_event_delete(ev);
		return n;
	case YAML_ALIAS_EVENT:
		n->kind = YN_SCALAR;
		n->text = xstrdup("");
		n->bad = true;
		diag_add(L, n->mark, "YAML alias \"*%s\"; expected every value written out in full "
		         "(anchors and aliases are not supported)", (const char *)ev->data.alias.anchor);
		yaml_event_delete(ev);
		return n;
	case YAML_SEQUENCE_START_EVENT:
	case YAML_MAPPING_START_EVENT: {
		bool seq = ev->type == YAML_SEQUENCE_START_EVENT;
		yaml_event_type_t end = seq ? YAML_SEQUENCE_END_EVENT : YAML_MAPPING_END_EVENT;
		n->kind = seq ? YN_SEQ : YN_MAP;
		if (seq)
			check_anchor_tag(L, ev, ev->data.sequence_start.anchor, ev->data.sequence_start.tag);
		else
			check_anchor_tag(L, ev, ev->data.mapping_start.anchor, ev->data.mapping_start.tag);
		yaml_event_delete(ev);
		if (depth >= PLAN_MAX_DEPTH) {
			diag_add(L, n->mark, "values nested more than %d levels deep; expected a plan "
			         "nested a few levels deep", PLAN_MAX_DEPTH);
			L->stop = true;
			ynode_free(n);
			return NULL;
		}
		for (;;) {
			yaml_event_t kid;
			if (!next_event(L, &kid)) {
				ynode_free(n);
				return NULL;
			}
			if (kid.type == end) {
				yaml_event_delete(&kid);
				return n;
			}
			struct ynode *k = parse_node(L, &kid, depth + 1);
			if (k == NULL) {
				ynode_free(n);
				return NULL;
			}
			ynode_push(n, k);
		}
	}
	default:
		diag_add(L, n->mark, "unexpected YAML event %d; expected a value", (int)ev->type);
		yaml_event_delete(ev);
		L->stop = true;
		ynode_free(n);
		return NULL;
	}
}

/* Records every line whose indentation contains a tab (the first tab's position). */
static void
scan_tabs(const char *text, struct plan_mark **out, size_t *nout)
{
	int line = 1;
	const char *p = text;
	*out = NULL;
	*nout = 0;
	while (*p) {
		const char *s = p;
		const char *tab = NULL;
		while (*s == ' ' || *s == '\t') {
			if (*s == '\t' && tab == NULL)
				tab = s;
			s++;
		}
		if (tab && *s != '\n' && *s != '\r' && *s != '#' && *s != '\0') {
			*out = xrealloc(*out, (*nout + 1) * sizeof(**out));
			(*out)[*nout].line = line;
			(*out)[*nout].column = (int)(tab - p) + 1;
			(*nout)++;
		}
		const char *nl = strchr(s, '\n');
		if (nl == NULL)
			break;
		p = nl + 1;
		line++;
	}
}

/* Reads the one document of the stream into a tree; NULL when empty or broken (diagnosed). */
static struct ynode *
read_document(struct loader *L, const char *text, size_t len)
{
	yaml_event_t ev;
	struct ynode *root = NULL;
	struct plan_mark start = { 1, 1 };

	yaml_parser_set_input_string(&L->parser, (const unsigned char *)text, len);
	if (!next_event(L, &ev))
		return NULL;
	yaml_event_delete(&ev);   /* stream start */
	if (!next_event(L, &ev))
		return NULL;
	if (ev.type == YAML_STREAM_END_EVENT) {
		yaml_event_delete(&ev);
		diag_add(L, start, "an empty plan file; expected a mapping with at least name, "
		         "environments and target");
		return NULL;
	}
	yaml_event_delete(&ev);   /* document start */
	if (!next_event(L, &ev))
		return NULL;
	root = parse_node(L, &ev, 0);
	if (root == NULL)
		return NULL;
	if (!next_event(L, &ev)) {
		ynode_free(root);
		return NULL;
	}
	yaml_event_delete(&ev);   /* document end */
	if (!next_event(L, &ev)) {
		ynode_free(root);
		return NULL;
	}
	if (ev.type == YAML_DOCUMENT_START_EVENT)
		diag_add(L, mark_of(ev.start_mark), "a second YAML document; expected exactly one "
		         "document in a plan file (remove the \"---\" line and what follows)");
	yaml_event_delete(&ev);
	return root;
}

/* ---------------------------------------------------------------- typed access */

/* The value for key in map (first occurrence), its key's mark in *km when not NULL. */
static const struct ynode *
map_get(const struct ynode *map, const char *key, struct plan_mark *km)
{
	for (size_t i = 0; i + 1 < map->nkids; i += 2) {
		const struct ynode *k = map->kids[i];
		if (k->kind == YN_SCALAR && !k->bad && strcmp(k->text, key) == 0) {
			if (km)
				*km = k->mark;
			return map->kids[i + 1];
		}
	}
	return NULL;
}

/*
 * Reports non-scalar, empty and duplicate keys and, when allowed is not NULL, unknown keys.
 */
static void
map_scan(struct loader *L, const struct ynode *map, const char *path, const char *const *allowed,
         size_t nallowed)
{
	for (size_t i = 0; i + 1 < map->nkids; i += 2) {
		const struct ynode *k = map->kids[i];
		char *w = where(path);
		if (k->bad) {
			free(w);
			continue;
		}
		if (k->kind != YN_SCALAR) {
			char *d = describe(k);
			diag_add(L, k->mark, "%s used as a key %s; expected a plain key name", d, w);
			free(d);
			free(w);
			continue;
		}
		if (k->text[0] == '\0') {
			diag_add(L, k->mark, "an empty key %s; expected a key name", w);
			free(w);
			continue;
		}
		bool dup = false;
		for (size_t j = 0; j < i; j += 2) {
			const struct ynode *e = map->kids[j];
			if (e->kind == YN_SCALAR && !e->bad && strcmp(e->text, k->text) == 0) {
				diag_add(L, k->mark, "duplicate key \"%s\" %s; expected each key once (the "
				         "first \"%s\" is at line %d)", k->text, w, k->text, e->mark.line);
				dup = true;
				break;
			}
		}
		if (!dup && allowed) {
			bool known = false;
			for (size_t j = 0; j < nallowed; j++)
				if (strcmp(allowed[j], k->text) == 0)
					known = true;
			if (!known) {
				char *list = join_names(allowed, nallowed);
				char *hint = suggest(k->text, allowed, nallowed);
				diag_add(L, k->mark, "unknown key \"%s\" %s; expected one of: %s%s", k->text, w,
				         list, hint);
				free(list);
				free(hint);
			}
		}
		free(w);
	}
}

static void
missing(struct loader *L, struct plan_mark at, const char *path, const char *key,
        const char *example)
{
	char *w = where(path);
	diag_add(L, at, "missing required key \"%s\" %s; expected \"%s: %s\"", key, w, key, example);
	free(w);
}

static bool
want_map(struct loader *L, const struct ynode *n, const char *path, const char *expected)
{
	if (n->kind == YN_MAP)
		return true;
	diag_found(L, n, path, expected ? expected : "a mapping");
	return false;
}

static bool
want_seq(struct loader *L, const struct ynode *n, const char *path, const char *expected)
{
	if (n->kind == YN_SEQ)
		return true;
	diag_found(L, n, path, expected);
	return false;
}

/* A non-empty string (numbers are taken as written); borrowed from the node, or NULL. */
static const char *
want_str(struct loader *L, const struct ynode *n, const char *path, const char *expected)
{
	if (n->kind == YN_SCALAR && !n->bad) {
		enum scalar_type t = scalar_type(n);
		if ((t == ST_STR || t == ST_INT || t == ST_FLOAT) && n->text[0] != '\0')
			return n->text;
	}
	diag_found(L, n, path, expected);
	return NULL;
}

static bool
want_bool(struct loader *L, const struct ynode *n, const char *path, bool *out)
{
	if (n->kind == YN_SCALAR && !n->bad && scalar_type(n) == ST_BOOL) {
		*out = tolower((unsigned char)n->text[0]) == 't';
		return true;
	}
	diag_found(L, n, path, "true or false (without quotes)");
	return false;
}

static bool
want_int(struct loader *L, const struct ynode *n, const char *path, long min, long max,
         const char *expected, int *out)
{
	if (n->kind == YN_SCALAR && !n->bad && scalar_type(n) == ST_INT) {
		errno = 0;
		long v = strtol(n->text, NULL, 10);
		if (errno == 0 && v >= min && v <= max) {
			*out = (int)v;
			return true;
		}
	}
	diag_found(L, n, path, expected);
	return false;
}

static bool
want_enum(struct loader *L, const struct ynode *n, const char *path, const char *const *names,
          size_t nnames, int *out)
{
	if (n->kind == YN_SCALAR && !n->bad && scalar_type(n) == ST_STR) {
		for (size_t i = 0; i < nnames; i++) {
			if (strcmp(n->text, names[i]) == 0) {
				*out = (int)i;
				return true;
			}
		}
	}
	if (n->bad)
		return false;
	char *list = join_names(names, nnames);
	char *hint = (n->kind == YN_SCALAR && !looks_secret(n->text)) ? suggest(n->text, names, nnames)
	                                                               : xstrdup("");
	char *exp = xasprintf("one of: %s%s", list, hint);
	diag_found(L, n, path, exp);
	free(exp);
	free(list);
	free(hint);
	return false;
}

static bool
valid_env_var(const char *s)
{
	if (!isalpha((unsigned char)*s) && *s != '_')
		return false;
	for (s++; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '_')
			return false;
	return true;
}

/* The name of an environment variable ([A-Za-z_][A-Za-z0-9_]*), borrowed, or NULL. */
static const char *
want_env_var(struct loader *L, const struct ynode *n, const char *path)
{
	static const char expected[] = "the name of an environment variable ([A-Za-z_][A-Za-z0-9_]*)";
	if (n->kind == YN_SCALAR && !n->bad && scalar_type(n) == ST_STR && valid_env_var(n->text))
		return n->text;
	diag_found(L, n, path, expected);
	return NULL;
}

static bool
want_duration(struct loader *L, const struct ynode *n, const char *path, int64_t *out)
{
	const char *extra = "";
	if (n->kind == YN_SCALAR && !n->bad) {
		enum scalar_type t = scalar_type(n);
		if (t == ST_STR || t == ST_INT || t == ST_FLOAT) {
			int64_t ms = 0;
			switch (duration_parse(n->text, &ms)) {
			case DUR_OK:
				if (ms > 0) {
					*out = ms;
					return true;
				}
				extra = " (it must be more than zero)";
				break;
			case DUR_BARE:
				extra = " (a number needs a unit: ms, s, min, h or d)";
				break;
			case DUR_M:
				extra = " (use min for minutes)";
				break;
			case DUR_ORDER:
				extra = " (units go from largest to smallest, each at most once)";
				break;
			case DUR_RANGE:
				extra = " (at most 100 years)";
				break;
			case DUR_EMPTY:
			case DUR_UNIT:
				extra = " (units: ms, s, min, h, d)";
				break;
			}
		}
	}
	char *exp = xasprintf("a duration such as 30s, 15min, 2h or 1h30min%s", extra);
	diag_found(L, n, path, exp);
	free(exp);
	return false;
}

/* A list of non-empty strings, no duplicates when unique; false after a diagnostic. */
static bool
want_strlist(struct loader *L, const struct ynode *n, const char *path, const char *item_what,
             bool allow_empty, bool unique, struct strlist *out)
{
	char *exp = xasprintf("a list of %s", item_what);
	bool ok = want_seq(L, n, path, exp);
	free(exp);
	if (!ok)
		return false;
	if (n->nkids == 0 && !allow_empty) {
		char *e = xasprintf("a non-empty list of %s", item_what);
		diag_found(L, n, path, e);
		free(e);
		return false;
	}
	for (size_t i = 0; i < n->nkids; i++) {
		char *ip = path_index(path, i);
		const char *s = want_str(L, n->kids[i], ip, item_what);
		if (s == NULL) {
			ok = false;
		} else if (unique && strlist_contains(out, s)) {
			diag_add(L, n->kids[i]->mark, "%s: found \"%s\" a second time; expected each name once", ip, s);
			ok = false;
		} else {
			strlist_push(out, s);
		}
		free(ip);
	}
	return ok;
}

/* ---------------------------------------------------------------- sections */

static void
load_environments(struct loader *L, const struct ynode *v)
{
	struct plan *p = L->p;
	if (!want_map(L, v, "environments", "a mapping of environment names to connections"))
		return;
	L->envs_ok = ynode_npairs(v) > 0;
	map_scan(L, v, "environments", NULL, 0);
	if (ynode_npairs(v) == 0) {
		diag_found(L, v, "environments", "at least one environment");
		return;
	}
	p->envs = xcalloc(ynode_npairs(v), sizeof(*p->envs));
	for (size_t i = 0; i + 1 < v->nkids; i += 2) {
		const struct ynode *k = v->kids[i], *e = v->kids[i + 1];
		if (k->kind != YN_SCALAR || k->bad || k->text[0] == '\0' ||
		    plan_env_find(p, k->text) != NULL)
			continue;
		struct plan_env *env = &p->envs[p->nenvs++];
		env->name = xstrdup(k->text);
		env->mark = k->mark;
		env->kind = PLAN_ENV_SERVICE;
		char *path = path_key("environments", k->text);
		if (!want_map(L, e, path, "a mapping with one of: service, dsn_env, conninfo")) {
			free(path);
			continue;
		}
		map_scan(L, e, path, env_keys, RB_ARRAY_LEN(env_keys));
		const char *first = NULL;
		for (size_t j = 0; j + 1 < e->nkids; j += 2) {
			const struct ynode *ek = e->kids[j], *ev = e->kids[j + 1];
			int kind = -1;
			for (size_t x = 0; x < RB_ARRAY_LEN(env_keys); x++)
				if (ek->kind == YN_SCALAR && strcmp(ek->text, env_keys[x]) == 0)
					kind = (int)x;
			if (kind < 0 || map_get(e, ek->text, NULL) != ev)
				continue;   /* unknown or duplicate: reported by map_scan */
			if (first) {
				diag_add(L, ek->mark, "%s has both %s and %s; expected exactly one of: service, "
				         "dsn_env, conninfo", path, first, ek->text);
				continue;
			}
			first = env_keys[kind];
			env->kind = (enum plan_env_kind)kind;
			char *kp = path_key(path, ek->text);
			const char *s = NULL;
			if (kind == PLAN_ENV_SERVICE)
				s = want_str(L, ev, kp, "a service name from pg_service.conf");
			else if (kind == PLAN_ENV_DSN_ENV)
				s = want_env_var(L, ev, kp);
			else
				s = want_str(L, ev, kp, "a conninfo string or postgresql:// URI without a password");
			if (s && kind == PLAN_ENV_CONNINFO) {
				char *msg = NULL;
				PQconninfoOption *opts = PQconninfoParse(s, &msg);
				if (db_conninfo_has_password(s)) {
					diag_add(L, ev->mark, "%s: a conninfo with a password; expected a "
					         "conninfo without one (put the password in ~/.pgpass or "
					         "the file PGPASSFILE names)", kp);
					s = NULL;
					PQconninfoFree(opts);
				} else if (!db_conninfo_port_valid(s)) {
					diag_add(L, ev->mark, "%s: a conninfo whose port is not a number; expected "
					         "a port like 5432", kp);
					s = NULL;
					PQconninfoFree(opts);
				} else if (opts == NULL) {
					if (msg && !looks_secret(s) && strchr(s, '%') == NULL) {
						size_t ml = strlen(msg);
						while (ml && (msg[ml - 1] == '\n' || msg[ml - 1] == ' '))
							msg[--ml] = '\0';
						diag_add(L, ev->mark, "%s: a conninfo libpq cannot parse (%s); expected "
						         "key=value pairs or a postgresql:// URI", kp, msg);
					} else {
						diag_add(L, ev->mark, "%s: a conninfo libpq cannot parse; expected "
						         "key=value pairs or a postgresql:// URI", kp);
					}
					s = NULL;
				} else {
					PQconninfoFree(opts);
				}
				if (msg)
					PQfreemem(msg);
			}
			if (s)
				env->value = xstrdup(s);
			free(kp);
		}
		if (first == NULL && e->kind == YN_MAP)
			diag_add(L, k->mark, "environment \"%s\" has no connection; expected exactly one of: "
			         "service, dsn_env, conninfo", k->text);
		free(path);
	}
}

/* Checks that v names an environment; returns the name (borrowed) or NULL. */
static const char *
want_env_name(struct loader *L, const struct ynode *v, const char *path)
{
	const char *s = want_str(L, v, path, "the name of an environment");
	if (s == NULL || !L->envs_ok)
		return s;
	if (plan_env_find(L->p, s) != NULL)
		return s;
	const char **names = xcalloc(L->p->nenvs + 1, sizeof(*names));
	for (size_t i = 0; i < L->p->nenvs; i++)
		names[i] = L->p->envs[i].name;
	char *list = join_names(names, L->p->nenvs);
	char *hint = suggest(s, names, L->p->nenvs);
	diag_add(L, v->mark, "%s: unknown environment \"%s\"; expected one of: %s%s", path, s,
	         L->p->nenvs ? list : "(none defined)", hint);
	free(list);
	free(hint);
	free(names);
	return NULL;
}

static void
load_backup(struct loader *L, const struct ynode *v, struct plan_mark at)
{
	struct plan_backup *b = &L->p->backup;
	b->format = PLAN_BACKUP_CUSTOM;
	b->jobs = 1;
	b->max_age_ms = 24LL * 3600 * 1000;
	if (v == NULL || !want_map(L, v, "backup", NULL))
		return;
	b->present = true;
	map_scan(L, v, "backup", backup_keys, RB_ARRAY_LEN(backup_keys));
	const struct ynode *n;
	const char *s;
	if ((n = map_get(v, "dir", NULL)) == NULL)
		missing(L, at, "backup", "dir", "<directory for the backup files>");
	else if ((s = want_str(L, n, "backup.dir", "a directory path")) != NULL)
		b->dir = xstrdup(s);
	int x;
	if ((n = map_get(v, "format", NULL)) &&
	    want_enum(L, n, "backup.format", backup_format_names, RB_ARRAY_LEN(backup_format_names), &x))
		b->format = (enum plan_backup_format)x;
	const struct ynode *jobs = map_get(v, "jobs", NULL);
	bool jobs_ok = jobs && want_int(L, jobs, "backup.jobs", 1, 64, "a whole number from 1 to 64",
	                                &b->jobs);
	if ((n = map_get(v, "max_age", NULL)))
		want_duration(L, n, "backup.max_age", &b->max_age_ms);
	if (jobs_ok && b->jobs > 1 && b->format != PLAN_BACKUP_DIRECTORY)
		diag_add(L, jobs->mark, "backup.jobs: found %d jobs with format custom; expected jobs: 1, "
		         "or format: directory (pg_dump runs parallel jobs only for the directory format)",
		         b->jobs);
}

static void
load_staging(struct loader *L, const struct ynode *v, struct plan_mark at)
{
	if (!want_map(L, v, "staging", NULL))
		return;
	L->p->staging.present = true;
	map_scan(L, v, "staging", staging_keys, RB_ARRAY_LEN(staging_keys));
	const struct ynode *n = map_get(v, "environment", NULL);
	if (n == NULL) {
		missing(L, at, "staging", "environment", "<environment to rehearse on>");
		return;
	}
	const char *s = want_env_name(L, n, "staging.environment");
	if (s == NULL)
		return;
	L->p->staging.environment = xstrdup(s);
}

static void
load_maintenance(struct loader *L, const struct ynode *v)
{
	struct plan_maintenance *m = &L->p->maintenance;
	m->block_connections = true;
	m->read_only = true;
	m->terminate_sessions = PLAN_TERMINATE_ASK;
	if (v == NULL || !want_map(L, v, "maintenance", NULL))
		return;
	m->present = true;
	map_scan(L, v, "maintenance", maintenance_keys, RB_ARRAY_LEN(maintenance_keys));
	const struct ynode *n;
	struct plan_mark km;
	int x;
	if ((n = map_get(v, "block_connections", NULL)))
		want_bool(L, n, "maintenance.block_connections", &m->block_connections);
	if ((n = map_get(v, "read_only", NULL)))
		want_bool(L, n, "maintenance.read_only", &m->read_only);
	if ((n = map_get(v, "terminate_sessions", NULL)) &&
	    want_enum(L, n, "maintenance.terminate_sessions", terminate_names,
	              RB_ARRAY_LEN(terminate_names), &x))
		m->terminate_sessions = (enum plan_terminate)x;
	if ((n = map_get(v, "hooks", &km)) && want_map(L, n, "maintenance.hooks", NULL)) {
		map_scan(L, n, "maintenance.hooks", hooks_keys, RB_ARRAY_LEN(hooks_keys));
		char **slots[] = { &m->on_sql, &m->off_sql, &m->on_command, &m->off_command };
		for (size_t i = 0; i < RB_ARRAY_LEN(hooks_keys); i++) {
			const struct ynode *h = map_get(n, hooks_keys[i], NULL);
			if (h == NULL)
				continue;
			char *hp = path_key("maintenance.hooks", hooks_keys[i]);
			const char *s = want_str(L, h, hp, i < 2 ? "an SQL statement" : "a shell command");
			if (s)
				*slots[i] = xstrdup(s);
			free(hp);
		}
		for (size_t i = 0; i < 4; i += 2) {
			bool on = map_get(n, hooks_keys[i], NULL) != NULL;
			bool off = map_get(n, hooks_keys[i + 1], NULL) != NULL;
			if (on != off)
				diag_add(L, km, "maintenance.hooks has %s but no %s; expected both or neither",
				         hooks_keys[on ? i : i + 1], hooks_keys[on ? i + 1 : i]);
		}
	}
	if ((n = map_get(v, "pgbouncer", &km)) && want_map(L, n, "maintenance.pgbouncer", NULL)) {
		map_scan(L, n, "maintenance.pgbouncer", pgbouncer_keys, RB_ARRAY_LEN(pgbouncer_keys));
		const struct ynode *a = map_get(n, "admin_dsn_env", NULL);
		const char *s;
		if (a == NULL)
			missing(L, km, "maintenance.pgbouncer", "admin_dsn_env",
			        "<variable holding the pgbouncer admin console URI>");
		else if ((s = want_env_var(L, a, "maintenance.pgbouncer.admin_dsn_env")))
			m->pgbouncer_dsn_env = xstrdup(s);
	}
}

static void
load_migrations(struct loader *L, const struct ynode *v, struct plan_mark at)
{
	struct plan_migrations *m = &L->p->migrations;
	m->format = PLAN_MIGRATIONS_PRISMA;
	m->lock_timeout_ms = 2000;
	m->statement_timeout_ms = 15 * 60000;
	m->retries = 5;
	m->schema = xstrdup("public");
	if (v == NULL || !want_map(L, v, "migrations", NULL))
		return;
	m->present = true;
	map_scan(L, v, "migrations", migrations_keys, RB_ARRAY_LEN(migrations_keys));
	const struct ynode *n;
	const char *s;
	int x;
	if ((n = map_get(v, "dir", NULL)) == NULL)
		missing(L, at, "migrations", "dir", "<directory of the migrations>");
	else if ((s = want_str(L, n, "migrations.dir", "a directory path")))
		m->dir = xstrdup(s);
	if ((n = map_get(v, "format", NULL)) &&
	    want_enum(L, n, "migrations.format", migrations_format_names,
	              RB_ARRAY_LEN(migrations_format_names), &x))
		m->format = (enum plan_migrations_format)x;
	if ((n = map_get(v, "schema", NULL)) && (s = want_str(L, n, "migrations.schema", "a schema name"))) {
		free(m->schema);
		m->schema = xstrdup(s);
	}
	if ((n = map_get(v, "lock_timeout", NULL)))
		want_duration(L, n, "migrations.lock_timeout", &m->lock_timeout_ms);
	if ((n = map_get(v, "statement_timeout", NULL)))
		want_duration(L, n, "migrations.statement_timeout", &m->statement_timeout_ms);
	if ((n = map_get(v, "retries", NULL)))
		want_int(L, n, "migrations.retries", 0, 100, "a whole number from 0 to 100", &m->retries);
}

static void
load_sync_table(struct loader *L, const struct ynode *k, const struct ynode *v,
                struct plan_sync_table *t)
{
	struct plan_sync *s = &L->p->sync;
	t->name = xstrdup(k->text);
	t->mark = k->mark;
	t->mode = s->default_mode;
	t->on_conflict = s->default_on_conflict;
	char *path = path_key("sync.tables", k->text);
	if (!want_map(L, v, path, "a mapping with mode, key, on_conflict, columns, delete")) {
		free(path);
		return;
	}
	map_scan(L, v, path, table_keys, RB_ARRAY_LEN(table_keys));
	const struct ynode *n;
	char *kp;
	int x;
	if ((n = map_get(v, "mode", NULL))) {
		kp = path_key(path, "mode");
		if (want_enum(L, n, kp, mode_names, RB_ARRAY_LEN(mode_names), &x)) {
			t->mode = (enum plan_sync_mode)x;
			t->mode_explicit = true;
		}
		free(kp);
	}
	if ((n = map_get(v, "on_conflict", NULL))) {
		kp = path_key(path, "on_conflict");
		if (want_enum(L, n, kp, conflict_names, RB_ARRAY_LEN(conflict_names), &x))
			t->on_conflict = (enum plan_on_conflict)x;
		free(kp);
	}
	bool key_ok = false;
	const struct ynode *keyn = map_get(v, "key", NULL);
	if (keyn) {
		kp = path_key(path, "key");
		key_ok = want_strlist(L, keyn, kp, "column names", false, true, &t->key);
		free(kp);
	}
	if ((n = map_get(v, "columns", NULL))) {
		kp = path_key(path, "columns");
		want_strlist(L, n, kp, "column names", false, true, &t->columns);
		free(kp);
	}
	if ((n = map_get(v, "delete", NULL))) {
		kp = path_key(path, "delete");
		want_bool(L, n, kp, &t->delete_rows);
		free(kp);
	}
	if (key_ok && t->columns.len > 0) {
		for (size_t i = 0; i < t->key.len; i++) {
			if (!strlist_contains(&t->columns, t->key.items[i]))
				diag_add(L, keyn->kids[i]->mark, "%s.key[%zu]: key column \"%s\" is not in "
				         "columns; expected every key column in the columns list", path, i,
				         t->key.items[i]);
		}
	}
	free(path);
}

static void
load_sync(struct loader *L, const struct ynode *v)
{
	struct plan_sync *s = &L->p->sync;
	s->default_mode = PLAN_MODE_SKIP;
	s->default_on_conflict = PLAN_CONFLICT_PROD_WINS;
	if (v == NULL || !want_map(L, v, "sync", NULL))
		return;
	s->present = true;
	map_scan(L, v, "sync", sync_keys, RB_ARRAY_LEN(sync_keys));
	const struct ynode *n;
	int x;
	if ((n = map_get(v, "defaults", NULL)) && want_map(L, n, "sync.defaults", NULL)) {
		const struct ynode *d;
		map_scan(L, n, "sync.defaults", sync_defaults_keys, RB_ARRAY_LEN(sync_defaults_keys));
		if ((d = map_get(n, "mode", NULL)) &&
		    want_enum(L, d, "sync.defaults.mode", mode_names, RB_ARRAY_LEN(mode_names), &x))
			s->default_mode = (enum plan_sync_mode)x;
		if ((d = map_get(n, "on_conflict", NULL)) &&
		    want_enum(L, d, "sync.defaults.on_conflict", conflict_names,
		              RB_ARRAY_LEN(conflict_names), &x))
			s->default_on_conflict = (enum plan_on_conflict)x;
	}
	if ((n = map_get(v, "protected", NULL)))
		want_strlist(L, n, "sync.protected", "table name globs", true, true, &s->protected_globs);
	if ((n = map_get(v, "tables", NULL)) &&
	    want_map(L, n, "sync.tables", "a mapping of table names to their sync rules")) {
		map_scan(L, n, "sync.tables", NULL, 0);
		s->tables = xcalloc(ynode_npairs(n) + 1, sizeof(*s->tables));
		for (size_t i = 0; i + 1 < n->nkids; i += 2) {
			const struct ynode *k = n->kids[i];
			if (k->kind != YN_SCALAR || k->bad || k->text[0] == '\0' ||
			    map_get(n, k->text, NULL) != n->kids[i + 1])
				continue;
			load_sync_table(L, k, n->kids[i + 1], &s->tables[s->ntables++]);
		}
	}
}

/* Parses "5%" or "2.5%" (0 to 100). */
static bool
parse_percent(const char *s, double *out)
{
	size_t len = strlen(s);
	if (len < 2 || s[len - 1] != '%')
		return false;
	char *num = xstrndup(s, len - 1);
	bool ok = is_float_text(num) && isdigit((unsigned char)num[0]);
	double d = ok ? strtod(num, NULL) : 0;
	free(num);
	if (!ok || !(d >= 0 && d <= 100))
		return false;
	*out = d;
	return true;
}

static void
load_verify(struct loader *L, const struct ynode *v)
{
	struct plan_verify *vf = &L->p->verify;
	vf->row_counts = PLAN_ROWCOUNT_SHRINK_FORBIDDEN;
	vf->orphans = true;
	if (v == NULL || !want_map(L, v, "verify", NULL))
		return;
	vf->present = true;
	map_scan(L, v, "verify", verify_keys, RB_ARRAY_LEN(verify_keys));
	const struct ynode *n;
	struct plan_mark km;
	int x;
	if ((n = map_get(v, "row_counts", &km))) {
		if (n->kind == YN_MAP) {
			map_scan(L, n, "verify.row_counts", tolerance_keys, RB_ARRAY_LEN(tolerance_keys));
			const struct ynode *t = map_get(n, "tolerance", NULL);
			if (t == NULL) {
				missing(L, km, "verify.row_counts", "tolerance", "<percentage such as 5%>");
			} else if (t->kind == YN_SCALAR && !t->bad && scalar_type(t) == ST_STR &&
			           parse_percent(t->text, &vf->tolerance_percent)) {
				vf->row_counts = PLAN_ROWCOUNT_TOLERANCE;
			} else {
				diag_found(L, t, "verify.row_counts.tolerance",
				           "a percentage from 0% to 100% such as \"5%\"");
			}
		} else if (n->kind == YN_SEQ) {
			diag_found(L, n, "verify.row_counts", "shrink_forbidden, off, or {tolerance: \"5%\"}");
		} else if (want_enum(L, n, "verify.row_counts", row_counts_names,
		                     RB_ARRAY_LEN(row_counts_names), &x)) {
			vf->row_counts = x == 0 ? PLAN_ROWCOUNT_SHRINK_FORBIDDEN : PLAN_ROWCOUNT_OFF;
		}
	}
	if ((n = map_get(v, "orphans", NULL)) &&
	    want_enum(L, n, "verify.orphans", orphans_names, RB_ARRAY_LEN(orphans_names), &x))
		vf->orphans = x == 0;
	if ((n = map_get(v, "checks", NULL)) &&
	    want_seq(L, n, "verify.checks", "a list of checks, each with name, sql and expect")) {
		vf->checks = xcalloc(n->nkids + 1, sizeof(*vf->checks));
		for (size_t i = 0; i < n->nkids; i++) {
			const struct ynode *c = n->kids[i];
			char *cp = path_index("verify.checks", i);
			if (!want_map(L, c, cp, "a mapping with name, sql and expect")) {
				free(cp);
				continue;
			}
			struct plan_check *ck = &vf->checks[vf->nchecks++];
			ck->mark = c->mark;
			map_scan(L, c, cp, check_keys, RB_ARRAY_LEN(check_keys));
			const struct ynode *f;
			const char *s;
			char *fp;
			if ((f = map_get(c, "name", NULL)) == NULL) {
				missing(L, c->mark, cp, "name", "<what the check proves>");
			} else {
				fp = path_key(cp, "name");
				if ((s = want_str(L, f, fp, "a check name"))) {
					for (size_t j = 0; j + 1 < vf->nchecks; j++)
						if (vf->checks[j].name && strcmp(vf->checks[j].name, s) == 0)
							diag_add(L, f->mark, "%s: found \"%s\" a second time (the first is at line %d); "
							         "expected a different name for each check", fp, s,
							         vf->checks[j].mark.line);
					ck->name = xstrdup(s);
				}
				free(fp);
			}
			if ((f = map_get(c, "sql", NULL)) == NULL) {
				missing(L, c->mark, cp, "sql", "<query returning one value>");
			} else {
				fp = path_key(cp, "sql");
				if ((s = want_str(L, f, fp, "an SQL query returning one value")))
					ck->sql = xstrdup(s);
				free(fp);
			}
			if ((f = map_get(c, "expect", NULL)) == NULL) {
				missing(L, c->mark, cp, "expect", "<the value the query must return>");
			} else {
				fp = path_key(cp, "expect");
				if (f->kind == YN_SCALAR && !f->bad && scalar_type(f) == ST_BOOL)
					diag_found(L, f, fp, "the value as PostgreSQL prints it (booleans are t or f)");
				else if (f->kind == YN_SCALAR && !f->bad && f->quoted)
					ck->expect = xstrdup(f->text);
				else if ((s = want_str(L, f, fp, "a single value such as 0 or \"ok\"")))
					ck->expect = xstrdup(s);
				free(fp);
			}
			free(cp);
		}
	}
}

static void
load_notify(struct loader *L, const struct ynode *v)
{
	struct plan *p = L->p;
	if (!want_seq(L, v, "notify", "a list of endpoints, each with url_env and format"))
		return;
	p->notify = xcalloc(v->nkids + 1, sizeof(*p->notify));
	for (size_t i = 0; i < v->nkids; i++) {
		const struct ynode *e = v->kids[i];
		char *np = path_index("notify", i);
		if (!want_map(L, e, np, "a mapping with url_env, format, events, secret_env")) {
			free(np);
			continue;
		}
		struct plan_notify *nt = &p->notify[p->nnotify++];
		nt->mark = e->mark;
		nt->format = PLAN_NOTIFY_GENERIC;
		nt->timeout_ms = 10000;
		nt->connect_timeout_ms = 5000;
		nt->backoff_ms = 1000;
		nt->max_attempts = 10;
		map_scan(L, e, np, notify_keys, RB_ARRAY_LEN(notify_keys));
		const struct ynode *f;
		const char *s;
		char *fp;
		int x;
		if ((f = map_get(e, "url_env", NULL)) == NULL) {
			missing(L, e->mark, np, "url_env", "<variable holding the webhook URL>");
		} else {
			fp = path_key(np, "url_env");
			if ((s = want_env_var(L, f, fp)))
				nt->url_env = xstrdup(s);
			free(fp);
		}
		if ((f = map_get(e, "format", NULL))) {
			fp = path_key(np, "format");
			if (want_enum(L, f, fp, notify_format_names, RB_ARRAY_LEN(notify_format_names), &x))
				nt->format = (enum plan_notify_format)x;
			free(fp);
		}
		if ((f = map_get(e, "events", NULL))) {
			fp = path_key(np, "events");
			if (want_seq(L, f, fp, "a list of event names")) {
				if (f->nkids == 0)
					diag_found(L, f, fp, "at least one event name (leave events out for the default set)");
				for (size_t j = 0; j < f->nkids; j++) {
					char *ep = path_index(fp, j);
					/* every event name but progress (not journaled, many times a second) */
					const char *names[RB_ARRAY_LEN(event_names)];
					size_t nnames = 0;
					for (size_t k = 0; k < RB_ARRAY_LEN(event_names); k++)
						if (strcmp(event_names[k], "progress") != 0)
							names[nnames++] = event_names[k];
					const struct ynode *ev = f->kids[j];
					if (ev->kind == YN_SCALAR && !ev->bad && strcmp(ev->text, "progress") == 0)
						diag_found(L, ev, ep, "an event name other than progress (progress is not journaled "
						           "and comes many times a second)");
					else if (want_enum(L, ev, ep, names, nnames, &x) && !strlist_contains(&nt->events, names[x]))
						strlist_push(&nt->events, names[x]);
					free(ep);
				}
			}
			free(fp);
		}
		if ((f = map_get(e, "secret_env", NULL))) {
			fp = path_key(np, "secret_env");
			if ((s = want_env_var(L, f, fp)))
				nt->secret_env = xstrdup(s);
			if (s && nt->format != PLAN_NOTIFY_GENERIC)
				diag_found(L, f, fp, "no secret_env for this format (only generic payloads are signed)");
			free(fp);
		}
		if ((f = map_get(e, "events_url_env", NULL))) {
			fp = path_key(np, "events_url_env");
			if ((s = want_env_var(L, f, fp)))
				nt->events_url_env = xstrdup(s);
			if (s && nt->format != PLAN_NOTIFY_PAGERDUTY)
				diag_found(L, f, fp, "no events_url_env for this format (it names the PagerDuty Events API URL; "
				           "url_env holds the URL of other formats)");
			free(fp);
		}
		static const struct { const char *key; size_t off; } durs[] = {
			{ "timeout", offsetof(struct plan_notify, timeout_ms) },
			{ "connect_timeout", offsetof(struct plan_notify, connect_timeout_ms) },
			{ "backoff", offsetof(struct plan_notify, backoff_ms) },
		};
		for (size_t k = 0; k < RB_ARRAY_LEN(durs); k++) {
			if ((f = map_get(e, durs[k].key, NULL))) {
				fp = path_key(np, durs[k].key);
				int64_t ms;
				if (want_duration(L, f, fp, &ms)) {
					if (ms > 3600000)
						diag_found(L, f, fp, "a duration of at most 1h");
					else
						*(int64_t *)((char *)nt + durs[k].off) = ms;
				}
				free(fp);
			}
		}
		if ((f = map_get(e, "max_attempts", NULL))) {
			fp = path_key(np, "max_attempts");
			want_int(L, f, fp, 1, 100, "a whole number from 1 to 100", &nt->max_attempts);
			free(fp);
		}
		free(np);
	}
}

static void
load_checklist(struct loader *L, const struct ynode *v)
{
	if (!want_map(L, v, "checklist", NULL))
		return;
	map_scan(L, v, "checklist", checklist_keys, RB_ARRAY_LEN(checklist_keys));
	const struct ynode *n;
	if ((n = map_get(v, "before", NULL)))
		want_strlist(L, n, "checklist.before", "checklist items", true, false, &L->p->checklist_before);
	if ((n = map_get(v, "after", NULL)))
		want_strlist(L, n, "checklist.after", "checklist items", true, false, &L->p->checklist_after);
}

static void
load_budgets(struct loader *L, const struct ynode *v)
{
	struct plan *p = L->p;
	if (!want_map(L, v, "budgets", NULL))
		return;
	map_scan(L, v, "budgets", budget_keys, RB_ARRAY_LEN(budget_keys));
	for (size_t i = 0; i < RB_ARRAY_LEN(budget_keys); i++) {
		struct plan_mark km;
		const struct ynode *n = map_get(v, budget_keys[i], &km);
		if (n == NULL)
			continue;
		char *bp = path_key("budgets", budget_keys[i]);
		int64_t ms = 0;
		if (want_duration(L, n, bp, &ms)) {
			if (strcmp(budget_keys[i], "total") == 0) {
				p->budget_total_ms = ms;
			} else {
				for (int s = 0; s < PLAN_STAGE_COUNT; s++) {
					if (strcmp(stage_names[s], budget_keys[i]) != 0)
						continue;
					if (!plan_stage_enabled(p, (enum plan_stage)s))
						diag_add(L, km, "%s: a budget for a stage this plan does not enable; "
						         "expected budgets only for enabled stages", bp);
					else
						p->budget_ms[s] = ms;
				}
			}
		}
		free(bp);
	}
}

static void
load_root(struct loader *L, const struct ynode *root)
{
	struct plan *p = L->p;
	struct plan_mark at = root->mark;
	const struct ynode *n;
	struct plan_mark km = { 0, 0 };
	const char *s;

	if (root->kind == YN_SCALAR && !root->bad && scalar_type(root) == ST_NULL) {
		diag_add(L, root->mark, "an empty plan; expected a mapping with at least name, "
		         "environments and target");
		return;
	}
	if (root->kind != YN_MAP) {
		char *d = describe(root);
		diag_add(L, root->mark, "%s at top level; expected a mapping with at least name, "
		         "environments and target", d);
		free(d);
		return;
	}
	map_scan(L, root, "", top_keys, RB_ARRAY_LEN(top_keys));

	if ((n = map_get(root, "name", NULL)) == NULL)
		missing(L, at, "", "name", "<what this release is>");
	else if ((s = want_str(L, n, "name", "the plan's name")))
		p->name = xstrdup(s);
	if ((n = map_get(root, "description", NULL)) && (s = want_str(L, n, "description", "a one-line description")))
		p->description = xstrdup(s);
	int version = 1;
	if ((n = map_get(root, "version", NULL)))
		want_int(L, n, "version", 1, 1, "1 (the only plan format version)", &version);

	if ((n = map_get(root, "environments", NULL)) == NULL)
		missing(L, at, "", "environments", "<mapping of environment names to connections>");
	else
		load_environments(L, n);

	/* Sections before the source/target checks: those need backup, staging and sync. */
	struct plan_mark sync_mark = { 0, 0 };
	if ((n = map_get(root, "backup", &km)))
		load_backup(L, n, km);
	else
		load_backup(L, NULL, km);
	if ((n = map_get(root, "staging", &km)))
		load_staging(L, n, km);
	if ((n = map_get(root, "maintenance", NULL)))
		load_maintenance(L, n);
	else
		load_maintenance(L, NULL);
	if ((n = map_get(root, "migrations", &km)))
		load_migrations(L, n, km);
	else
		load_migrations(L, NULL, km);
	if ((n = map_get(root, "sync", &sync_mark)))
		load_sync(L, n);
	else
		load_sync(L, NULL);
	if ((n = map_get(root, "verify", NULL)))
		load_verify(L, n);
	else
		load_verify(L, NULL);
	if ((n = map_get(root, "notify", NULL)))
		load_notify(L, n);
	if ((n = map_get(root, "checklist", NULL)))
		load_checklist(L, n);

	const struct ynode *tn = map_get(root, "target", NULL);
	const struct ynode *sn = map_get(root, "source", NULL);
	if (tn == NULL)
		missing(L, at, "", "target", "<environment the release goes to>");
	else if ((s = want_env_name(L, tn, "target")))
		p->target = xstrdup(s);
	if (sn && (s = want_env_name(L, sn, "source")))
		p->source = xstrdup(s);
	if (p->source && p->target && strcmp(p->source, p->target) == 0)
		diag_add(L, tn->mark, "target: \"%s\" is also the source; expected a target different "
		         "from the source", p->target);
	if (p->sync.present && sn == NULL)
		diag_add(L, sync_mark, "sync without a source; expected \"source: <environment>\" at top "
		         "level (sync copies rows from the source to the target)");
	if (p->staging.environment && p->target && strcmp(p->staging.environment, p->target) == 0)
		diag_add(L, map_get(map_get(root, "staging", NULL), "environment", NULL)->mark,
		         "staging.environment: \"%s\" is the target; expected a separate environment to "
		         "rehearse on", p->target);
	else if (p->staging.environment && p->source && strcmp(p->staging.environment, p->source) == 0)
		diag_add(L, map_get(map_get(root, "staging", NULL), "environment", NULL)->mark,
		         "staging.environment: \"%s\" is the source; expected a separate environment to "
		         "rehearse on (the rehearsal overwrites it)", p->source);

	if ((n = map_get(root, "budgets", NULL)))
		load_budgets(L, n);
}

/* ---------------------------------------------------------------- normalised JSON and hash */

static json_t *
jstr(const char *s)
{
	if (s == NULL)
		return json_null();
	json_t *j = json_string(s);
	return j ? j : json_string_nocheck(s);
}

static json_t *
jlist(const struct strlist *l)
{
	json_t *a = json_array();
	for (size_t i = 0; i < l->len; i++)
		json_array_append_new(a, jstr(l->items[i]));
	return a;
}

static json_t *
normalised(const struct plan *p)
{
	json_t *o = json_object();
	json_object_set_new(o, "version", json_integer(1));
	json_object_set_new(o, "name", jstr(p->name));
	json_object_set_new(o, "description", jstr(p->description));

	json_t *envs = json_object();
	for (size_t i = 0; i < p->nenvs; i++)
		json_object_set_new(envs, p->envs[i].name,
		                    json_pack("{s:s, s:o}", "kind", plan_env_kind_name(p->envs[i].kind),
		                              "value", jstr(p->envs[i].value)));
	json_object_set_new(o, "environments", envs);
	json_object_set_new(o, "source", jstr(p->source));
	json_object_set_new(o, "target", jstr(p->target));

	if (p->backup.present)
		json_object_set_new(o, "backup", json_pack("{s:o, s:s, s:i, s:I}", "dir", jstr(p->backup.dir),
		                    "format", plan_backup_format_name(p->backup.format), "jobs", p->backup.jobs,
		                    "max_age_ms", (json_int_t)p->backup.max_age_ms));
	else
		json_object_set_new(o, "backup", json_null());

	if (p->staging.present)
		json_object_set_new(o, "staging", json_pack("{s:o}", "environment",
		                                            jstr(p->staging.environment)));
	else
		json_object_set_new(o, "staging", json_null());

	const struct plan_maintenance *m = &p->maintenance;
	if (m->present)
		json_object_set_new(o, "maintenance", json_pack(
			"{s:b, s:b, s:s, s:{s:o, s:o, s:o, s:o}, s:{s:o}}",
			"block_connections", m->block_connections, "read_only", m->read_only,
			"terminate_sessions", terminate_names[m->terminate_sessions],
			"hooks", "on_sql", jstr(m->on_sql), "off_sql", jstr(m->off_sql),
			"on_command", jstr(m->on_command), "off_command", jstr(m->off_command),
			"pgbouncer", "admin_dsn_env", jstr(m->pgbouncer_dsn_env)));
	else
		json_object_set_new(o, "maintenance", json_null());

	const struct plan_migrations *mg = &p->migrations;
	if (mg->present)
		json_object_set_new(o, "migrations", json_pack("{s:o, s:s, s:o, s:I, s:I, s:i}",
			"dir", jstr(mg->dir), "format", plan_migrations_format_name(mg->format),
			"schema", jstr(mg->schema), "lock_timeout_ms", (json_int_t)mg->lock_timeout_ms,
			"statement_timeout_ms", (json_int_t)mg->statement_timeout_ms, "retries", mg->retries));
	else
		json_object_set_new(o, "migrations", json_null());

	const struct plan_sync *s = &p->sync;
	if (s->present) {
		json_t *tables = json_object();
		for (size_t i = 0; i < s->ntables; i++) {
			const struct plan_sync_table *t = &s->tables[i];
			json_object_set_new(tables, t->name, json_pack("{s:s, s:s, s:o, s:o, s:b, s:b}",
				"mode", plan_mode_name(t->mode), "on_conflict", plan_on_conflict_name(t->on_conflict),
				"key", jlist(&t->key), "columns", jlist(&t->columns), "delete", t->delete_rows,
				"protected", t->protected_));
		}
		json_object_set_new(o, "sync", json_pack("{s:{s:s, s:s}, s:o, s:o}",
			"defaults", "mode", plan_mode_name(s->default_mode),
			"on_conflict", plan_on_conflict_name(s->default_on_conflict),
			"protected", jlist(&s->protected_globs), "tables", tables));
	} else {
		json_object_set_new(o, "sync", json_null());
	}

	const struct plan_verify *v = &p->verify;
	if (v->present) {
		json_t *checks = json_array();
		for (size_t i = 0; i < v->nchecks; i++)
			json_array_append_new(checks, json_pack("{s:o, s:o, s:o}", "name",
				jstr(v->checks[i].name), "sql", jstr(v->checks[i].sql), "expect",
				jstr(v->checks[i].expect)));
		json_t *vo = json_pack("{s:s, s:s, s:o}",
			"row_counts", v->row_counts == PLAN_ROWCOUNT_OFF ? "off" :
			              v->row_counts == PLAN_ROWCOUNT_TOLERANCE ? "tolerance" : "shrink_forbidden",
			"orphans", v->orphans ? "auto" : "off", "checks", checks);
		if (v->row_counts == PLAN_ROWCOUNT_TOLERANCE) {
			/* As text ("5", "2.5"): JSON tools print reals differently, and the hash must be reproducible. */
			char pct[32];
			snprintf(pct, sizeof pct, "%.6g", v->tolerance_percent);
			json_object_set_new(vo, "tolerance_percent", json_string(pct));
		}
		json_object_set_new(o, "verify", vo);
	} else {
		json_object_set_new(o, "verify", json_null());
	}

	json_t *notify = json_array();
	for (size_t i = 0; i < p->nnotify; i++) {
		const struct plan_notify *nt = &p->notify[i];
		json_array_append_new(notify, json_pack("{s:o, s:s, s:o, s:o, s:o, s:I, s:I, s:I, s:i}", "url_env",
			jstr(nt->url_env), "format", plan_notify_format_name(nt->format), "events", jlist(&nt->events),
			"secret_env", jstr(nt->secret_env), "events_url_env", jstr(nt->events_url_env),
			"timeout_ms", (json_int_t)nt->timeout_ms, "connect_timeout_ms", (json_int_t)nt->connect_timeout_ms,
			"backoff_ms", (json_int_t)nt->backoff_ms, "max_attempts", nt->max_attempts));
	}
	json_object_set_new(o, "notify", notify);
	json_object_set_new(o, "checklist", json_pack("{s:o, s:o}", "before", jlist(&p->checklist_before),
	                                              "after", jlist(&p->checklist_after)));

	json_t *budgets = json_object();
	for (int i = 0; i < PLAN_STAGE_COUNT; i++)
		if (p->budget_ms[i] > 0)
			json_object_set_new(budgets, stage_names[i], json_integer(p->budget_ms[i]));
	if (p->budget_total_ms > 0)
		json_object_set_new(budgets, "total", json_integer(p->budget_total_ms));
	json_object_set_new(o, "budgets", budgets);
	return o;
}

char *
plan_normalised_json(const struct plan *p)
{
	json_t *o = normalised(p);
	char *text = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(o);
	if (text == NULL) {
		fprintf(stderr, "pgrunbook: could not serialise the plan\n");
		abort();
	}
	char *copy = xstrdup(text);
	free(text);
	return copy;
}

/* ---------------------------------------------------------------- loading */

void
plan_free(struct plan *p)
{
	if (p == NULL)
		return;
	free(p->path);
	free(p->base_dir);
	free(p->name);
	free(p->description);
	for (size_t i = 0; i < p->nenvs; i++) {
		free(p->envs[i].name);
		free(p->envs[i].value);
	}
	free(p->envs);
	free(p->source);
	free(p->target);
	free(p->backup.dir);
	free(p->staging.environment);
	free(p->maintenance.on_sql);
	free(p->maintenance.off_sql);
	free(p->maintenance.on_command);
	free(p->maintenance.off_command);
	free(p->maintenance.pgbouncer_dsn_env);
	free(p->migrations.dir);
	free(p->migrations.schema);
	strlist_free(&p->sync.protected_globs);
	for (size_t i = 0; i < p->sync.ntables; i++) {
		free(p->sync.tables[i].name);
		strlist_free(&p->sync.tables[i].key);
		strlist_free(&p->sync.tables[i].columns);
	}
	free(p->sync.tables);
	for (size_t i = 0; i < p->verify.nchecks; i++) {
		free(p->verify.checks[i].name);
		free(p->verify.checks[i].sql);
		free(p->verify.checks[i].expect);
	}
	free(p->verify.checks);
	for (size_t i = 0; i < p->nnotify; i++) {
		free(p->notify[i].url_env);
		free(p->notify[i].secret_env);
		free(p->notify[i].events_url_env);
		strlist_free(&p->notify[i].events);
	}
	free(p->notify);
	strlist_free(&p->checklist_before);
	strlist_free(&p->checklist_after);
	free(p);
}

static char *
dir_of(const char *path)
{
	const char *slash = strrchr(path, '/');
	if (slash == NULL)
		return xstrdup(".");
	if (slash == path)
		return xstrdup("/");
	return xstrndup(path, (size_t)(slash - path));
}

struct plan *
plan_load(const char *path, struct plan_diags *diags, struct rb_error *err)
{
	struct loader L;
	size_t len = 0;

	if (diags) {
		diags->items = NULL;
		diags->len = 0;
	}
	char *text = file_read_all(path, &len);
	if (text == NULL) {
		rb_error_setc(err, RB_EXIT_PLAN, "could not read plan file \"%s\": %s", path, strerror(errno));
		return NULL;
	}

	memset(&L, 0, sizeof L);
	L.file = path;
	L.text = text;
	L.text_len = len;
	L.p = xcalloc(1, sizeof *L.p);
	L.p->path = xstrdup(path);
	L.p->base_dir = dir_of(path);
	if (!yaml_parser_initialize(&L.parser)) {
		fprintf(stderr, "pgrunbook: could not initialise libyaml\n");
		abort();
	}
	struct ynode *root = read_document(&L, text, len);
	yaml_parser_delete(&L.parser);

	if (L.stop) {
		/* libyaml's message for a tab in indentation is poor: say what is wrong instead. */
		struct plan_mark *tabs;
		size_t ntabs;
		scan_tabs(text, &tabs, &ntabs);
		if (ntabs > 0 && L.syntax_line >= tabs[0].line) {
			for (size_t i = 0; i < L.len; i++)
				free(L.items[i].d.message);
			L.len = 0;
			for (size_t i = 0; i < ntabs; i++)
				diag_add(&L, tabs[i], "a tab character in the indentation; expected spaces (YAML "
				         "does not allow tabs for indentation)");
		}
		free(tabs);
	} else if (root != NULL) {
		load_root(&L, root);
	}
	ynode_free(root);
	free(text);

	struct plan *p = L.p;
	if (L.len == 0) {
		for (size_t i = 0; i < p->sync.ntables; i++)
			p->sync.tables[i].protected_ = plan_table_protected(p, p->sync.tables[i].name);
		char *json = plan_normalised_json(p);
		sha256_hex(json, strlen(json), p->hash);
		free(json);
		free(L.items);
		return p;
	}

	plan_free(p);
	qsort(L.items, L.len, sizeof(*L.items), diag_cmp);
	size_t shown = L.len > PLAN_MAX_DIAGS ? PLAN_MAX_DIAGS : L.len;
	if (L.len > shown)
		rb_error_setc(err, RB_EXIT_PLAN, "%s: %zu problems (the first %d are shown); the plan was "
		              "not loaded", path, L.len, PLAN_MAX_DIAGS);
	else
		rb_error_setc(err, RB_EXIT_PLAN, "%s: %zu problem%s; the plan was not loaded", path, L.len,
		              L.len == 1 ? "" : "s");
	if (diags) {
		diags->items = xcalloc(shown, sizeof(*diags->items));
		diags->len = shown;
	}
	for (size_t i = 0; i < L.len; i++) {
		if (diags && i < shown)
			diags->items[i] = L.items[i].d;
		else
			free(L.items[i].d.message);
	}
	free(L.items);
	return NULL;
}

/* ---------------------------------------------------------------- queries */

const struct plan_env *
plan_env_find(const struct plan *p, const char *name)
{
	for (size_t i = 0; i < p->nenvs; i++)
		if (strcmp(p->envs[i].name, name) == 0)
			return &p->envs[i];
	return NULL;
}

bool
plan_stage_enabled(const struct plan *p, enum plan_stage s)
{
	switch (s) {
	case PLAN_STAGE_PREFLIGHT:
	case PLAN_STAGE_REPORT:
		return true;
	case PLAN_STAGE_BACKUP:
		return p->backup.present;
	case PLAN_STAGE_STAGING:
		return p->staging.present;
	case PLAN_STAGE_MAINT_ON:
	case PLAN_STAGE_MAINT_OFF:
		return p->maintenance.present;
	case PLAN_STAGE_MIGRATE:
		return p->migrations.present;
	case PLAN_STAGE_SYNC:
		return p->sync.present;
	case PLAN_STAGE_VERIFY:
		return p->verify.present;
	case PLAN_STAGE_COUNT:
		break;
	}
	return false;
}

bool
plan_glob_matches(const char *glob, const char *table, const char *schema)
{
	if (fnmatch(glob, table, 0) == 0)
		return true;
	const char *dot = strrchr(table, '.');
	if (dot != NULL)
		return fnmatch(glob, dot + 1, 0) == 0;
	char *qualified = xasprintf("%s.%s", schema ? schema : "public", table);
	bool match = fnmatch(glob, qualified, 0) == 0;
	free(qualified);
	return match;
}

bool
plan_table_protected(const struct plan *p, const char *table)
{
	const char *schema = p->migrations.schema ? p->migrations.schema : "public";
	for (size_t i = 0; i < p->sync.protected_globs.len; i++)
		if (plan_glob_matches(p->sync.protected_globs.items[i], table, schema))
			return true;
	return false;
}

char *
plan_path(const struct plan *p, const char *rel)
{
	if (rel[0] == '/' || p->base_dir == NULL || strcmp(p->base_dir, ".") == 0)
		return xstrdup(rel);
	return xasprintf("%s/%s", p->base_dir, rel);
}
