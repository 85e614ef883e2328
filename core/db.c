/* db.c: connections to the plan's environments, password redaction, small query helpers. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "db.h"

/*
 * Session settings for canonical text output, sent as one simple-query batch right after the
 * connection is made (the `options` startup parameter is avoided: a conninfo may set its own
 * options, and poolers such as PgBouncer reject it). default_transaction_read_only is turned off
 * because maintenance's read_only layer sets it on for the database's new sessions, and
 * pgrunbook's own later stages (migrate, sync, rollback) must still write; the queries that
 * must not write ask for READ ONLY themselves.
 */
static const char session_settings_sql[] =
	"SET TimeZone = 'UTC'; "
	"SET DateStyle = 'ISO, MDY'; "
	"SET extra_float_digits = 3; "
	"SET bytea_output = 'hex'; "
	"SET IntervalStyle = 'postgres'; "
	"SET default_transaction_read_only = off";

/* ---- redaction ---- */

static bool
is_word_char(char c)
{
	return isalnum((unsigned char)c) || c == '_';
}

/*
 * Where a URI ends inside longer text. Only blanks end it: a raw quote may be part of a password,
 * and reading too far can only redact too much, never too little.
 */
static bool
is_uri_stop(char c)
{
	return c == '\0' || isspace((unsigned char)c);
}

/*
 * At s (just after "scheme://"), finds the password of the URI's userinfo. The userinfo ends at
 * the last '@' before the first '/', '?' or '#' that follows the first '@' (so an unencoded '@',
 * '/' or '?' inside the password still counts as password); the password starts after the first
 * ':' of the userinfo. Returns false when the URI has none.
 */
static bool
uri_password_span(const char *s, size_t *start, size_t *end)
{
	size_t len = 0;
	while (!is_uri_stop(s[len]))
		len++;
	const char *first_at = memchr(s, '@', len);
	if (first_at == NULL)
		return false;
	size_t limit = len;
	for (size_t i = (size_t)(first_at - s) + 1; i < len; i++)
		if (s[i] == '/' || s[i] == '?' || s[i] == '#') {
			limit = i;
			break;
		}
	size_t at = (size_t)(first_at - s);
	for (size_t i = at + 1; i < limit; i++)
		if (s[i] == '@')
			at = i;
	/* The ':' must come before anything that cannot be part of a user name. */
	for (size_t i = 0; i < at; i++) {
		if (s[i] == ':') {
			*start = i + 1;
			*end = at;
			return *end > *start;
		}
		if (s[i] == '/' || s[i] == '?' || s[i] == '#' || s[i] == '[')
			return false;
	}
	return false;
}

/*
 * At s (just after "password" and optional blanks and '='), the length of the value: in a URI
 * query (uri_query) up to '&' or '#'; in a conninfo a single-quoted value with backslash escapes
 * or an unquoted one (backslash escapes allowed) up to whitespace.
 */
static size_t
kv_value_len(const char *s, bool uri_query)
{
	size_t i = 0;
	if (uri_query) {
		while (!is_uri_stop(s[i]) && s[i] != '&' && s[i] != '#')
			i++;
		return i;
	}
	if (s[0] == '\'') {
		i = 1;
		while (s[i] != '\0' && s[i] != '\'') {
			if (s[i] == '\\' && s[i + 1] != '\0')
				i++;
			i++;
		}
		if (s[i] == '\'')
			i++;
		return i;
	}
	while (s[i] != '\0' && !isspace((unsigned char)s[i])) {
		if (s[i] == '\\' && s[i + 1] != '\0')
			i++;
		i++;
	}
	return i;
}

/* Whether s starts with prefix, ignoring ASCII case. */
static bool
starts_with_ci(const char *s, const char *prefix)
{
	return strncasecmp(s, prefix, strlen(prefix)) == 0;
}

char *
db_redact(const char *s)
{
	struct strbuf sb = {0};
	if (s == NULL)
		return xstrdup("");
	size_t i = 0;
	size_t n = strlen(s);
	while (i < n) {
		/* URI userinfo password */
		size_t scheme = 0;
		if ((i == 0 || !is_word_char(s[i - 1])) && starts_with_ci(s + i, "postgresql://"))
			scheme = strlen("postgresql://");
		else if ((i == 0 || !is_word_char(s[i - 1])) && starts_with_ci(s + i, "postgres://"))
			scheme = strlen("postgres://");
		if (scheme) {
			size_t ps, pe;
			strbuf_add(&sb, s + i, scheme);
			i += scheme;
			if (uri_password_span(s + i, &ps, &pe)) {
				strbuf_add(&sb, s + i, ps);
				strbuf_adds(&sb, "***");
				i += pe;
			}
			continue;
		}
		/* password=..., PGPASSWORD=..., also as a URI query parameter */
		size_t kw = 0;
		if (i == 0 || !is_word_char(s[i - 1])) {
			if (starts_with_ci(s + i, "password"))
				kw = strlen("password");
			else if (starts_with_ci(s + i, "sslpassword"))
				kw = strlen("sslpassword");
			else if (starts_with_ci(s + i, "pgpassword"))
				kw = strlen("pgpassword");
		}
		if (kw && !is_word_char(s[i + kw])) {
			size_t j = i + kw;
			while (s[j] == ' ' || s[j] == '\t')
				j++;
			if (s[j] == '=') {
				bool uri_query = i > 0 && (s[i - 1] == '?' || s[i - 1] == '&');
				j++;
				if (!uri_query)
					while (s[j] == ' ' || s[j] == '\t')
						j++;
				size_t vlen = kv_value_len(s + j, uri_query);
				strbuf_add(&sb, s + i, j - i);
				if (vlen > 0)
					strbuf_adds(&sb, "***");
				i = j + vlen;
				continue;
			}
		}
		strbuf_addc(&sb, s[i]);
		i++;
	}
	return strbuf_detach(&sb);
}

bool
db_conninfo_has_password(const char *conninfo)
{
	/* Whatever db_redact() would hide counts, also when libpq would read it otherwise. */
	char *redacted = db_redact(conninfo);
	bool found = strcmp(redacted, conninfo) != 0;
	free(redacted);
	if (found)
		return true;
	char *errmsg = NULL;
	PQconninfoOption *opts = PQconninfoParse(conninfo, &errmsg);
	if (opts == NULL) {
		PQfreemem(errmsg);
		return false;
	}
	for (PQconninfoOption *o = opts; o->keyword; o++)
		if ((strcmp(o->keyword, "password") == 0 || strcmp(o->keyword, "sslpassword") == 0) &&
		    o->val && o->val[0] != '\0')
			found = true;
	PQconninfoFree(opts);
	return found;
}

bool
db_conninfo_port_valid(const char *conninfo)
{
	char *errmsg = NULL;
	PQconninfoOption *opts = PQconninfoParse(conninfo, &errmsg);
	if (opts == NULL) {
		PQfreemem(errmsg);
		return true;  /* not this function's question */
	}
	bool ok = true;
	for (PQconninfoOption *o = opts; o->keyword; o++) {
		if (strcmp(o->keyword, "port") != 0 || o->val == NULL)
			continue;
		for (const char *c = o->val; *c; c++)
			if (!(*c >= '0' && *c <= '9') && *c != ',')
				ok = false;
	}
	PQconninfoFree(opts);
	return ok;
}

/* ---- environment to conninfo ---- */

/* Appends a conninfo value in single quotes with backslash escapes. */
static void
add_quoted(struct strbuf *sb, const char *v)
{
	strbuf_addc(sb, '\'');
	for (const char *c = v; *c; c++) {
		if (*c == '\'' || *c == '\\')
			strbuf_addc(sb, '\\');
		strbuf_addc(sb, *c);
	}
	strbuf_addc(sb, '\'');
}

/* Appends a .pgpass field, escaping ':' and '\'. */
static void
add_pgpass_field(struct strbuf *sb, const char *v)
{
	for (const char *c = v; *c; c++) {
		if (*c == ':' || *c == '\\')
			strbuf_addc(sb, '\\');
		strbuf_addc(sb, *c);
	}
}

static const char *
opt_value(const PQconninfoOption *opts, const char *keyword)
{
	for (const PQconninfoOption *o = opts; o && o->keyword; o++)
		if (strcmp(o->keyword, keyword) == 0)
			return (o->val && o->val[0] != '\0') ? o->val : NULL;
	return NULL;
}

/*
 * The .pgpass line for a parsed conninfo with the literal word PASSWORD in place of the secret:
 * missing fields come from libpq's defaults (PGHOST, PGPORT, PGUSER...), a socket directory
 * becomes "localhost" as libpq matches it.
 */
static char *
pgpass_line(const char *host, const char *port, const char *db, const char *user)
{
	PQconninfoOption *defs = PQconndefaults();
	if (host != NULL && host[0] == '\0')
		host = NULL;
	if (host == NULL)
		host = opt_value(defs, "host");
	if (host == NULL || host[0] == '/' || host[0] == '@')
		host = "localhost";
	if (port == NULL)
		port = opt_value(defs, "port");
	if (port == NULL)
		port = "5432";
	if (user == NULL)
		user = opt_value(defs, "user");
	if (user == NULL)
		user = "*";
	if (db == NULL)
		db = opt_value(defs, "dbname");
	if (db == NULL)
		db = user;
	struct strbuf sb = {0};
	add_pgpass_field(&sb, host);
	strbuf_addc(&sb, ':');
	add_pgpass_field(&sb, port);
	strbuf_addc(&sb, ':');
	add_pgpass_field(&sb, db);
	strbuf_addc(&sb, ':');
	add_pgpass_field(&sb, user);
	strbuf_adds(&sb, ":PASSWORD");
	if (defs)
		PQconninfoFree(defs);
	return strbuf_detach(&sb);
}

/* Whether libpq parses a password or sslpassword option out of conninfo. */
static bool
has_plain_password(const char *conninfo)
{
	char *errmsg = NULL;
	PQconninfoOption *opts = PQconninfoParse(conninfo, &errmsg);
	if (opts == NULL) {
		PQfreemem(errmsg);
		return false;
	}
	bool found = opt_value(opts, "password") != NULL || opt_value(opts, "sslpassword") != NULL;
	PQconninfoFree(opts);
	return found;
}

/*
 * Checks a conninfo or URI taken from the plan or a variable: it must parse and carry no
 * password. what names where it came from, for the messages.
 */
static bool
check_conninfo(const struct plan_env *env, const char *conninfo, const char *what,
               struct rb_error *err)
{
	if (db_conninfo_has_password(conninfo) && !has_plain_password(conninfo)) {
		/* Something that reads as a password, which libpq may take for host:port. */
		rb_error_setc(err, RB_EXIT_CONNECT, "the connection string in %s of environment \"%s\" "
		              "contains a password", what, env->name);
		rb_error_detail(err, "pgrunbook refuses passwords in connection strings so that they "
		                "never reach process listings, logs or the journal.");
		rb_error_hint(err, "Remove the password from %s and put it in ~/.pgpass (mode 0600) "
		              "or in the file named by PGPASSFILE.", what);
		return false;
	}
	if (!db_conninfo_port_valid(conninfo)) {
		rb_error_setc(err, RB_EXIT_CONNECT, "the port in %s of environment \"%s\" is not a number",
		              what, env->name);
		rb_error_hint(err, "A URI reads postgresql://user@host:5432/dbname; a password never "
		              "belongs in it (use ~/.pgpass).");
		return false;
	}
	char *errmsg = NULL;
	PQconninfoOption *opts = PQconninfoParse(conninfo, &errmsg);
	if (opts == NULL) {
		rb_error_setc(err, RB_EXIT_CONNECT, "invalid connection string in %s of environment \"%s\"",
		              what, env->name);
		/* libpq quotes pieces of the input; show them only when they cannot hold a secret. */
		char *redacted = db_redact(conninfo);
		if (errmsg && strcmp(redacted, conninfo) == 0 && strchr(conninfo, '%') == NULL) {
			size_t l = strlen(errmsg);
			while (l > 0 && (errmsg[l - 1] == '\n' || errmsg[l - 1] == ' '))
				errmsg[--l] = '\0';
			rb_error_detail(err, "libpq says: %s.", errmsg);
		}
		free(redacted);
		PQfreemem(errmsg);
		rb_error_hint(err, "Use a URI such as postgresql://user@host:5432/dbname or a conninfo "
		              "such as \"host=... port=... dbname=... user=...\".");
		return false;
	}
	const char *pw = opt_value(opts, "password");
	if (pw == NULL)
		pw = opt_value(opts, "sslpassword");
	if (pw != NULL) {
		char *line = pgpass_line(opt_value(opts, "host"), opt_value(opts, "port"),
		                         opt_value(opts, "dbname"), opt_value(opts, "user"));
		rb_error_setc(err, RB_EXIT_CONNECT, "the connection string in %s of environment \"%s\" "
		              "contains a password", what, env->name);
		rb_error_detail(err, "pgrunbook refuses passwords in connection strings so that they "
		                "never reach process listings, logs or the journal.");
		rb_error_hint(err, "Remove the password from %s and put it in ~/.pgpass (mode 0600) "
		              "or in the file named by PGPASSFILE, as the line %s (with the real "
		              "password in place of PASSWORD).", what, line);
		free(line);
		PQconninfoFree(opts);
		return false;
	}
	PQconninfoFree(opts);
	return true;
}

char *
db_env_conninfo(const struct plan_env *env, struct rb_error *err)
{
	struct strbuf sb = {0};
	switch (env->kind) {
	case PLAN_ENV_SERVICE:
		strbuf_adds(&sb, "service=");
		add_quoted(&sb, env->value);
		return strbuf_detach(&sb);
	case PLAN_ENV_DSN_ENV: {
		const char *v = getenv(env->value);
		if (v == NULL || v[0] == '\0') {
			rb_error_setc(err, RB_EXIT_CONNECT,
			              "environment variable \"%s\" of environment \"%s\" is %s", env->value,
			              env->name, v == NULL ? "not set" : "empty");
			rb_error_hint(err, "Set %s to a connection URI without a password, such as "
			              "postgresql://user@host:5432/dbname, or change environment \"%s\" in "
			              "the plan.", env->value, env->name);
			return NULL;
		}
		char *what = xasprintf("variable %s", env->value);
		bool ok = check_conninfo(env, v, what, err);
		free(what);
		return ok ? xstrdup(v) : NULL;
	}
	case PLAN_ENV_CONNINFO:
		if (!check_conninfo(env, env->value, "the plan", err))
			return NULL;
		return xstrdup(env->value);
	}
	rb_error_setc(err, RB_EXIT_USAGE, "environment \"%s\" has an unknown kind", env->name);
	return NULL;
}

/* ---- connect ---- */

static const struct plan_env *
find_env(const struct plan *p, const char *name)
{
	for (size_t i = 0; i < p->nenvs; i++)
		if (strcmp(p->envs[i].name, name) == 0)
			return &p->envs[i];
	return NULL;
}

/*
 * Whether the service file (as libpq finds it: PGSERVICEFILE or ~/.pg_service.conf first, then
 * PGSYSCONFDIR/pg_service.conf) sets keyword in section service. Explicit connection keywords
 * override service file entries, so db_connect asks before adding its own connect_timeout.
 */
static bool
service_sets(const char *service, const char *keyword)
{
	char *files[2] = {NULL, NULL};
	const char *e = getenv("PGSERVICEFILE");
	if (e && *e)
		files[0] = xstrdup(e);
	else if ((e = getenv("HOME")) && *e)
		files[0] = xasprintf("%s/.pg_service.conf", e);
	e = getenv("PGSYSCONFDIR");
	files[1] = xasprintf("%s/pg_service.conf", (e && *e) ? e : "/etc/postgresql-common");
	bool found_service = false, found_key = false;
	for (int f = 0; f < 2 && !found_service; f++) {
		FILE *fp = files[f] ? fopen(files[f], "r") : NULL;
		if (fp == NULL)
			continue;
		char line[1024];
		bool in_section = false;
		while (fgets(line, sizeof line, fp)) {
			char *s = line;
			while (isspace((unsigned char)*s))
				s++;
			size_t l = strlen(s);
			while (l > 0 && isspace((unsigned char)s[l - 1]))
				s[--l] = '\0';
			if (*s == '\0' || *s == '#')
				continue;
			if (*s == '[') {
				in_section = l >= 2 && s[l - 1] == ']' && l - 2 == strlen(service) &&
				             strncmp(s + 1, service, l - 2) == 0;
				found_service |= in_section;
				continue;
			}
			size_t kl = strlen(keyword);
			if (in_section && strncmp(s, keyword, kl) == 0 &&
			    (s[kl] == '=' || isspace((unsigned char)s[kl])))
				found_key = true;
		}
		fclose(fp);
	}
	free(files[0]);
	free(files[1]);
	return found_key;
}

/* Whether libpq would get a connect_timeout from the conninfo, its service or PGCONNECT_TIMEOUT. */
static bool
has_connect_timeout(const char *conninfo)
{
	const char *e = getenv("PGCONNECT_TIMEOUT");
	if (e && *e)
		return true;
	PQconninfoOption *opts = PQconninfoParse(conninfo, NULL);
	if (opts == NULL)
		return false;
	bool has = opt_value(opts, "connect_timeout") != NULL;
	const char *service = opt_value(opts, "service");
	if (!has && service == NULL && (e = getenv("PGSERVICE")) && *e)
		service = e;
	if (!has && service)
		has = service_sets(service, "connect_timeout");
	PQconninfoFree(opts);
	return has;
}

/* Trims trailing newlines and blanks of a libpq message in place. */
static void
trim_message(char *s)
{
	size_t l = strlen(s);
	while (l > 0 && isspace((unsigned char)s[l - 1]))
		s[--l] = '\0';
}

/*
 * Fills err from a failed connection: the first line of libpq's message goes into the message,
 * further lines (libpq's "Is the server running...?" or the other hosts tried) into the detail.
 */
static void
set_connect_error(struct rb_error *err, PGconn *conn, const char *env_name)
{
	char *where = conn ? db_describe(conn) : xstrdup("?");
	char *msg = xstrdup(conn ? PQerrorMessage(conn) : "out of memory");
	trim_message(msg);
	char *nl = strchr(msg, '\n');
	char *rest = NULL;
	if (nl) {
		*nl = '\0';
		struct strbuf sb = {0};
		for (char *line = nl + 1; line && *line;) {
			char *next = strchr(line, '\n');
			if (next)
				*next++ = '\0';
			while (*line == '\t' || *line == ' ')
				line++;
			if (*line) {
				if (sb.len)
					strbuf_addc(&sb, ' ');
				strbuf_adds(&sb, line);
			}
			line = next;
		}
		rest = strbuf_detach(&sb);
	}
	char *full = xasprintf("could not connect to environment \"%s\" (%s): %s", env_name, where, msg);
	char *red = db_redact(full);
	rb_error_setc(err, RB_EXIT_CONNECT, "%s", red);
	if (rest && *rest) {
		char *rrest = db_redact(rest);
		rb_error_detail(err, "%s", rrest);
		free(rrest);
	}
	if (conn && PQconnectionNeedsPassword(conn)) {
		char *line = pgpass_line(PQhost(conn), PQport(conn), PQdb(conn), PQuser(conn));
		rb_error_hint(err, "Put the password in ~/.pgpass (mode 0600) or in the file named by "
		              "PGPASSFILE, as the line %s (with the real password in place of "
		              "PASSWORD); pgrunbook never takes one on the command line or in the plan.",
		              line);
		free(line);
	}
	free(red);
	free(full);
	free(rest);
	free(msg);
	free(where);
}

/* Waits until the connection's socket is ready: 1 ready, 0 cancelled, -1 deadline passed, -2 error. */
static int
wait_socket(PGconn *conn, bool for_write, const struct rb_ctx *ctx, long long deadline_ms)
{
	for (;;) {
		if (rb_ctx_cancelled(ctx))
			return 0;
		int slice = 100;  /* how often the cancel flag is looked at */
		if (deadline_ms > 0) {
			long long left = deadline_ms - time_monotonic_ms();
			if (left <= 0)
				return -1;
			if (left < slice)
				slice = (int)left;
		}
		struct pollfd pfd = { .fd = PQsocket(conn), .events = for_write ? POLLOUT : POLLIN };
		if (pfd.fd < 0)
			return -2;
		int n = poll(&pfd, 1, slice);
		if (n > 0)
			return 1;
		if (n < 0 && errno != EINTR)
			return -2;
	}
}

/* The connect_timeout libpq settled on (conninfo, service, PGCONNECT_TIMEOUT), in ms; 0 = none. */
static long long
effective_connect_timeout_ms(PGconn *conn)
{
	long long ms = 0;
	PQconninfoOption *opts = PQconninfo(conn);
	const char *v = opt_value(opts, "connect_timeout");
	if (v) {
		long secs = strtol(v, NULL, 10);
		/* libpq treats 1 as 2 seconds; anything below that as no timeout */
		ms = secs <= 0 ? 0 : (secs < 2 ? 2 : secs) * 1000LL;
	}
	PQconninfoFree(opts);
	return ms;
}

/*
 * PQconnectStartParams + PQconnectPoll, so that a set cancel flag abandons the attempt at once
 * (a blocking connect would wait for connect_timeout). Returns the connection in any state, or
 * NULL when cancelled (err set).
 */
static PGconn *
connect_polling(const char *const *keywords, const char *const *values, const struct rb_ctx *ctx,
                const char *env_name, struct rb_error *err)
{
	PGconn *conn = PQconnectStartParams(keywords, values, 1);
	if (conn == NULL || PQstatus(conn) == CONNECTION_BAD)
		return conn;
	long long timeout = effective_connect_timeout_ms(conn);
	long long deadline = timeout > 0 ? time_monotonic_ms() + timeout : 0;
	PostgresPollingStatusType st = PGRES_POLLING_WRITING;
	while (st != PGRES_POLLING_OK && st != PGRES_POLLING_FAILED) {
		int w = wait_socket(conn, st == PGRES_POLLING_WRITING, ctx, deadline);
		if (w == 0) {
			rb_error_setc(err, RB_EXIT_STEP, "connecting to environment \"%s\" was cancelled",
			              env_name);
			PQfinish(conn);
			return NULL;
		}
		if (w == -1) {
			char *where = db_describe(conn);
			rb_error_setc(err, RB_EXIT_CONNECT, "could not connect to environment \"%s\" (%s): "
			              "timeout expired after %lld s", env_name, where, timeout / 1000);
			rb_error_hint(err, "The server did not answer; check the host, the port and any "
			              "firewall, or raise connect_timeout.");
			free(where);
			PQfinish(conn);
			return NULL;
		}
		if (w == -2)
			break;  /* PQconnectPoll reports the socket's error */
		st = PQconnectPoll(conn);
	}
	return conn;
}

static PGresult *db_exec_wait(PGconn *conn, int sent, const struct rb_ctx *ctx);

PGresult *
db_exec(PGconn *conn, const char *sql, int nparams, const char *const *params,
        const struct rb_ctx *ctx)
{
	int sent = nparams > 0 ? PQsendQueryParams(conn, sql, nparams, NULL, params, NULL, NULL, 0)
	                       : PQsendQuery(conn, sql);
	return db_exec_wait(conn, sent, ctx);
}

PGresult *
db_exec_one(PGconn *conn, const char *sql, const struct rb_ctx *ctx)
{
	return db_exec_wait(conn, PQsendQueryParams(conn, sql, 0, NULL, NULL, NULL, NULL, 0), ctx);
}

/* What db_exec() does once the statement was sent (sent: PQsend*'s return). */
static PGresult *
db_exec_wait(PGconn *conn, int sent, const struct rb_ctx *ctx)
{
	if (!sent)
		return PQmakeEmptyPGresult(conn, PGRES_FATAL_ERROR);
	bool cancel_sent = false;
	while (PQisBusy(conn)) {
		if (!cancel_sent && rb_ctx_cancelled(ctx)) {
			PGcancel *c = PQgetCancel(conn);
			char errbuf[256];
			if (c) {
				PQcancel(c, errbuf, sizeof errbuf);
				PQfreeCancel(c);
			}
			cancel_sent = true;  /* the server now ends the statement with 57014 */
		}
		struct pollfd pfd = { .fd = PQsocket(conn), .events = POLLIN };
		if (pfd.fd < 0 || (poll(&pfd, 1, 100) < 0 && errno != EINTR))
			break;
		if (!PQconsumeInput(conn))
			break;
	}
	/* The first failed result wins; otherwise the last one (several statements in one batch). */
	PGresult *keep = NULL, *r;
	while ((r = PQgetResult(conn)) != NULL) {
		ExecStatusType rs = PQresultStatus(r);
		if (rs == PGRES_COPY_IN) {
			/* No client data to send: end it, the server answers with an error. */
			PQputCopyEnd(conn, "pgrunbook does not send data to COPY FROM STDIN");
			PQclear(r);
			continue;
		}
		if (rs == PGRES_COPY_OUT || rs == PGRES_COPY_BOTH) {
			/* Read and drop the rows; PQgetResult would otherwise return this result forever. */
			char *buf;
			int n;
			while ((n = PQgetCopyData(conn, &buf, 0)) > 0)
				PQfreemem(buf);
			PQclear(r);
			if (n == -2)
				break;
			continue;
		}
		bool failed = rs == PGRES_FATAL_ERROR || rs == PGRES_BAD_RESPONSE;
		bool keep_failed = keep && (PQresultStatus(keep) == PGRES_FATAL_ERROR ||
		                            PQresultStatus(keep) == PGRES_BAD_RESPONSE);
		if (keep_failed && !failed) {
			PQclear(r);
			continue;
		}
		PQclear(keep);
		keep = r;
	}
	return keep ? keep : PQmakeEmptyPGresult(conn, PGRES_FATAL_ERROR);
}

PGconn *
db_connect(const struct plan *p, const char *env_name, struct rb_error *err)
{
	return db_connect_ctx(p, env_name, NULL, err);
}

PGconn *
db_connect_ctx(const struct plan *p, const char *env_name, const struct rb_ctx *ctx,
               struct rb_error *err)
{
	const struct plan_env *env = find_env(p, env_name);
	if (env == NULL) {
		rb_error_setc(err, RB_EXIT_USAGE, "the plan has no environment \"%s\"", env_name);
		return NULL;
	}
	const char *envpw = getenv("PGPASSWORD");
	if (envpw != NULL && envpw[0] != '\0') {
		rb_error_setc(err, RB_EXIT_CONNECT, "PGPASSWORD is set; pgrunbook does not take passwords "
		              "from the environment");
		rb_error_hint(err, "Unset PGPASSWORD and put the password in ~/.pgpass (mode 0600), the "
		              "file named by PGPASSFILE, or a service file.");
		return NULL;
	}
	char *conninfo = db_env_conninfo(env, err);
	if (conninfo == NULL)
		return NULL;

	/*
	 * Keywords are applied in order and a later one wins: connect_timeout comes before dbname so
	 * that one in the conninfo overrides it; client_encoding comes after so that it always holds.
	 */
	const char *keywords[5];
	const char *values[5];
	int k = 0;
	if (!has_connect_timeout(conninfo)) {
		keywords[k] = "connect_timeout";
		values[k++] = "10";
	}
	keywords[k] = "dbname";
	values[k++] = conninfo;
	keywords[k] = "fallback_application_name";
	values[k++] = "pgrunbook";
	keywords[k] = "client_encoding";
	values[k++] = "UTF8";
	keywords[k] = NULL;
	values[k] = NULL;

	struct rb_error cerr = {0};
	PGconn *conn = connect_polling(keywords, values, ctx, env_name, &cerr);
	free(conninfo);
	if (cerr.message) {
		rb_error_clear(err);
		*err = cerr;  /* cancelled or timed out; conn is already closed */
		return NULL;
	}
	if (conn == NULL || PQstatus(conn) != CONNECTION_OK) {
		set_connect_error(err, conn, env_name);
		PQfinish(conn);
		return NULL;
	}
	PGresult *res = db_exec(conn, session_settings_sql, 0, NULL, ctx);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		db_error_from_result(err, res, RB_EXIT_CONNECT);
		char *m = xasprintf("could not set up the session for environment \"%s\": %s", env_name,
		                    err->message ? err->message : "unknown error");
		free(err->message);
		err->message = m;
		PQclear(res);
		PQfinish(conn);
		return NULL;
	}
	PQclear(res);
	return conn;
}

char *
db_describe(PGconn *conn)
{
	const char *host = PQhost(conn);
	const char *port = PQport(conn);
	const char *db = PQdb(conn);
	return xasprintf("%s:%s/%s", (host && *host) ? host : "localhost",
	                 (port && *port) ? port : "5432", db ? db : "");
}

void
db_error_from_result(struct rb_error *err, const PGresult *res, int code)
{
	if (err == NULL)
		return;
	const char *primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
	char *msg;
	if (primary)
		msg = xstrdup(primary);
	else if (res && PQresultErrorMessage(res)[0] != '\0')
		msg = xstrdup(PQresultErrorMessage(res));
	else if (res)
		msg = xasprintf("unexpected result status %s", PQresStatus(PQresultStatus(res)));
	else
		msg = xstrdup("no result from the server (connection lost?)");
	trim_message(msg);
	char *red = db_redact(msg);
	rb_error_setc(err, code, "%s", red);
	free(red);
	free(msg);
	if (res == NULL)
		return;
	const char *detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
	const char *hint = PQresultErrorField(res, PG_DIAG_MESSAGE_HINT);
	const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	if (detail) {
		red = db_redact(detail);
		rb_error_detail(err, "%s", red);
		free(red);
	}
	if (hint) {
		red = db_redact(hint);
		rb_error_hint(err, "%s", red);
		free(red);
	}
	if (state) {
		snprintf(err->sqlstate, sizeof err->sqlstate, "%s", state);
	}
}

char *
db_query_value(PGconn *conn, const char *sql, struct rb_error *err)
{
	PGresult *res = PQexec(conn, sql);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		db_error_from_result(err, res, RB_EXIT_STEP);
		PQclear(res);
		return NULL;
	}
	if (PQntuples(res) != 1 || PQnfields(res) != 1) {
		rb_error_setc(err, RB_EXIT_STEP, "query returned %d rows and %d columns, expected one value",
		              PQntuples(res), PQnfields(res));
		PQclear(res);
		return NULL;
	}
	if (PQgetisnull(res, 0, 0)) {
		rb_error_setc(err, RB_EXIT_STEP, "query returned null, expected one value");
		PQclear(res);
		return NULL;
	}
	char *v = xstrdup(PQgetvalue(res, 0, 0));
	PQclear(res);
	return v;
}

char *
db_quote_ident(PGconn *conn, const char *s)
{
	char *q = PQescapeIdentifier(conn, s, strlen(s));
	char *r = xstrdup(q ? q : "\"\"");
	PQfreemem(q);
	return r;
}

bool
db_run(PGconn *conn, const char *sql, int nparams, const char *const *params, const struct rb_ctx *ctx,
       struct rb_error *err)
{
	PGresult *res = db_exec(conn, sql, nparams, params, ctx);
	ExecStatusType st = PQresultStatus(res);
	bool ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
	if (!ok)
		db_error_from_result(err, res, RB_EXIT_STEP);
	PQclear(res);
	return ok;
}
