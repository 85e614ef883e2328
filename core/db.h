/* db.h: connections to the plan's environments (libpq lives only in core/). */
#ifndef PGRUNBOOK_DB_H
#define PGRUNBOOK_DB_H

/*
 * Catalog queries: the session's search_path is left as the user set it (migrations need it),
 * so every catalog query in core names its relations and functions fully qualified
 * (pg_catalog.pg_class, pg_catalog.pg_database_size(...)) instead of clearing search_path.
 * pg_catalog is searched first unless a search_path names it later explicitly.
 */

#include <libpq-fe.h>
#include <stdbool.h>

#include "ctx.h"
#include "error.h"
#include "plan.h"

/*
 * Connects to the named environment of the plan with PQconnectdbParams (expand_dbname,
 * fallback_application_name "pgrunbook"), then applies the fixed session settings (TimeZone=UTC,
 * DateStyle=ISO, extra_float_digits=3, bytea_output=hex, IntervalStyle=postgres,
 * default_transaction_read_only=off; client_encoding UTF8; connect_timeout=10 unless the
 * conninfo, its service or PGCONNECT_TIMEOUT sets one). A password in the connection string (a dsn_env URI, say) is refused: passwords come only from .pgpass,
 * PGPASSFILE or a service file. On failure returns NULL with err set (code RB_EXIT_CONNECT, the
 * message carries libpq's text, never a password). Caller closes with PQfinish().
 */
PGconn *db_connect(const struct plan *p, const char *env_name, struct rb_error *err);
/*
 * The same, abandoning the attempt as soon as ctx's cancel flag is set (err: "was cancelled",
 * code RB_EXIT_STEP); the plan's connect_timeout is enforced here (code RB_EXIT_CONNECT).
 */
PGconn *db_connect_ctx(const struct plan *p, const char *env_name, const struct rb_ctx *ctx,
                       struct rb_error *err);

/*
 * Runs sql (with $n parameters when nparams > 0, else as a simple query that may hold several
 * statements) without blocking past ctx's cancel flag: once it is set, the statement is cancelled
 * with PQcancel and the server's error (SQLSTATE 57014) comes back. Returns the first failed
 * result or the last one; never NULL. Caller PQclear()s it. ctx may be NULL.
 */
PGresult *db_exec(PGconn *conn, const char *sql, int nparams, const char *const *params,
                  const struct rb_ctx *ctx);

/*
 * db_exec() for a statement whose rows (if any) are not wanted: true when it succeeded, else
 * false with err (may be NULL) filled from the server's error (RB_EXIT_STEP).
 */
bool db_run(PGconn *conn, const char *sql, int nparams, const char *const *params, const struct rb_ctx *ctx,
            struct rb_error *err);

/*
 * The same for one statement, always with the extended protocol (no parameters): the text can
 * hold a single statement only, so it cannot end a transaction and go on ("COMMIT; DELETE ...").
 */
PGresult *db_exec_one(PGconn *conn, const char *sql, const struct rb_ctx *ctx);

/*
 * The connection string for an environment as libpq will get it (service=..., the variable's
 * value, or the conninfo), or NULL with err set (unset variable, password present). Caller frees.
 */
char *db_env_conninfo(const struct plan_env *env, struct rb_error *err);

/*
 * Whether a conninfo string or URI carries a secret: a password or sslpassword option, or
 * anything db_redact() would hide (a "user:secret@" that libpq might misread as host:port).
 */
bool db_conninfo_has_password(const char *conninfo);
/* Whether every port in the conninfo is a number (true when it does not parse at all). */
bool db_conninfo_port_valid(const char *conninfo);

/*
 * A copy of s with every password removed: URI userinfo "user:secret@" becomes "user:***@",
 * "password=..." becomes "password=***" (also inside longer text). Caller frees.
 */
char *db_redact(const char *s);

/* "host:port/dbname" of an open connection (socket paths kept). Caller frees. */
char *db_describe(PGconn *conn);

/* Runs a query that returns one value; the copied text (caller frees) or NULL with err set. */
char *db_query_value(PGconn *conn, const char *sql, struct rb_error *err);

/* s as a quoted SQL identifier (PQescapeIdentifier; "" when that fails). Caller frees. */
char *db_quote_ident(PGconn *conn, const char *s);

/* Fills err from a failed result (message, detail, hint, SQLSTATE) with the given exit code. */
void db_error_from_result(struct rb_error *err, const PGresult *res, int code);

#endif
