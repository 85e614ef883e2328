/* demo.c: `pgrunbook demo`: starts a throwaway cluster with the demo shop databases and writes its plan. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "db.h"
#include "demo.h"
#include "migrations.h"
#include "events.h"

/* shop_prod (and so shop_staging) has this many of the migrations applied; shop_dev has all. */
#define DEMO_PROD_MIGRATIONS 4

#define MIGRATIONS_PREFIX "demo/prisma/migrations/"
#define MIGRATION_FILE    "/migration.sql"
#define DATA_PREFIX       "demo/data/"
#define MARKER_FILE       "pgrunbook-demo"
#define PLAN_SUBDIR       "plan"

const char *const demo_counted_tables[DEMO_NTABLES] = {
	"User", "Unit", "Ingredient", "IngredientPackaging", "Product",
	"Order", "OrderItem", "StripeEvent", "NotificationLog",
};

static const char *const db_names[DEMO_DB_COUNT] = { "shop_dev", "shop_staging", "shop_prod" };


const char *
demo_db_name(enum demo_db db)
{
	return (unsigned)db < DEMO_DB_COUNT ? db_names[db] : "?";
}

const struct demo_file *
demo_file_find(const char *path)
{
	for (size_t i = 0; i < demo_nfiles; i++)
		if (strcmp(demo_files[i].path, path) == 0)
			return &demo_files[i];
	return NULL;
}

char *
demo_default_dir(void)
{
	const char *tmp = getenv("TMPDIR");
	return xasprintf("%s/pgrunbook-demo-%lu", tmp && *tmp ? tmp : "/tmp", (unsigned long)getuid());
}

static bool
dir_is_empty(const char *path)
{
	DIR *d = opendir(path);
	if (d == NULL)
		return false;
	struct dirent *de;
	bool empty = true;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) {
			empty = false;
			break;
		}
	}
	closedir(d);
	return empty;
}

static bool
file_exists_in(const char *dir, const char *name)
{
	char *p = xasprintf("%s/%s", dir, name);
	bool ok = access(p, F_OK) == 0;
	free(p);
	return ok;
}

static PGconn *
connect_db(const struct cluster *c, const char *dbname)
{
	char *conninfo = cluster_conninfo(c, dbname);
	const char *const keys[] = { "dbname", "fallback_application_name", "connect_timeout", NULL };
	const char *const vals[] = { conninfo, "pgrunbook", "10", NULL };
	PGconn *conn = PQconnectdbParams(keys, vals, 1);
	free(conninfo);
	return conn;
}

static bool
server_answers(const struct cluster *c)
{
	char *conninfo = cluster_conninfo(c, "postgres");
	const char *const keys[] = { "dbname", "connect_timeout", NULL };
	const char *const vals[] = { conninfo, "5", NULL };
	PGPing ping = PQpingParams(keys, vals, 1);
	free(conninfo);
	return ping == PQPING_OK || ping == PQPING_REJECT;
}

enum demo_state
demo_probe(const char *dir)
{
	struct stat st;
	if (stat(dir, &st) != 0)
		return errno == ENOENT ? DEMO_STATE_ABSENT : DEMO_STATE_FOREIGN;
	if (!S_ISDIR(st.st_mode))
		return DEMO_STATE_FOREIGN;
	if (dir_is_empty(dir))
		return DEMO_STATE_ABSENT;
	if (!file_exists_in(dir, MARKER_FILE) || !file_exists_in(dir, "cluster.json"))
		return DEMO_STATE_FOREIGN;
	struct rb_error err = {0};
	struct cluster *c = cluster_load(dir, &err);
	rb_error_clear(&err);
	if (c == NULL)
		return DEMO_STATE_FOREIGN;
	enum demo_state state = server_answers(c) ? DEMO_STATE_RUNNING : DEMO_STATE_STOPPED;
	cluster_free(c);
	return state;
}

/* Refuses a directory that holds anything; removes an empty one so cluster_create() can make it. */
static bool
check_dir_free(const char *dir, struct rb_error *err)
{
	if (strpbrk(dir, "\n\r") != NULL)
		return rb_error_setc(err, RB_EXIT_USAGE, "the demo directory name must not contain a line break");
	switch (demo_probe(dir)) {
	case DEMO_STATE_RUNNING:
		rb_error_setc(err, RB_EXIT_STEP, "a demo is already running in %s", dir);
		rb_error_hint(err, "Stop it with \"pgrunbook demo --stop --dir %s\", or choose another "
		              "directory with --dir.", dir);
		return false;
	case DEMO_STATE_STOPPED:
		rb_error_setc(err, RB_EXIT_STEP, "%s holds a demo whose server is not running", dir);
		rb_error_hint(err, "Remove it with \"pgrunbook demo --stop --dir %s\", or choose another "
		              "directory with --dir.", dir);
		return false;
	case DEMO_STATE_FOREIGN:
		rb_error_setc(err, RB_EXIT_STEP, "%s already exists and is not a pgrunbook demo", dir);
		rb_error_hint(err, "Choose another directory with --dir; pgrunbook leaves this one alone.");
		return false;
	case DEMO_STATE_ABSENT:
		break;
	}
	if (rmdir(dir) != 0 && errno != ENOENT)
		return rb_error_setc(err, RB_EXIT_STEP, "could not use directory %s: %s", dir, strerror(errno));
	/* Create missing parents (searchable by everyone: the server may run as another user). */
	char *parent = xstrdup(dir);
	char *slash = strrchr(parent, '/');
	bool ok = true;
	if (slash && slash != parent) {
		*slash = '\0';
		if (!mkdir_p(parent, 0755))
			ok = rb_error_setc(err, RB_EXIT_STEP, "could not create directory %s: %s", parent,
			                   strerror(errno));
	}
	free(parent);
	return ok;
}

static void
quiet_notices(void *arg, const char *message)
{
	(void)arg;
	(void)message;
}

/* Runs SQL (one statement or a script run as one implicit transaction) and checks the result. */
static bool
exec_sql(PGconn *conn, const char *sql, struct rb_error *err)
{
	PGresult *res = PQexec(conn, sql);
	ExecStatusType st = PQresultStatus(res);
	bool ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
	if (!ok)
		db_error_from_result(err, res, RB_EXIT_STEP);
	PQclear(res);
	return ok;
}

static bool
exec_file(PGconn *conn, const char *dbname, const char *path, struct rb_error *err)
{
	const struct demo_file *f = demo_file_find(path);
	if (f == NULL)
		return rb_error_setc(err, RB_EXIT_USAGE, "demo file %s is missing from this build", path);
	if (exec_sql(conn, (const char *)f->data, err))
		return true;
	rb_error_prefix(err, "could not load %s into %s", path, dbname);
	return false;
}

static PGconn *
open_db(const struct cluster *c, const char *dbname, struct rb_error *err)
{
	PGconn *conn = connect_db(c, dbname);
	if (PQstatus(conn) != CONNECTION_OK) {
		char *msg = xstrdup(PQerrorMessage(conn));
		msg[strcspn(msg, "\n")] = '\0';
		rb_error_setc(err, RB_EXIT_STEP, "could not connect to %s in the demo cluster: %s", dbname, msg);
		free(msg);
		PQfinish(conn);
		return NULL;
	}
	PQsetNoticeProcessor(conn, quiet_notices, NULL);
	if (!exec_sql(conn, "SET TimeZone = 'UTC'; SET DateStyle = 'ISO'; "
	              "SET client_min_messages = warning", err)) {
		PQfinish(conn);
		return NULL;
	}
	return conn;
}

static int
cmp_file_ptr(const void *a, const void *b)
{
	const struct demo_file *const *fa = a;
	const struct demo_file *const *fb = b;
	return strcmp((*fa)->path, (*fb)->path);
}

/* The embedded migration.sql files in Prisma's order (by folder name). Caller frees the array. */
static const struct demo_file **
list_migrations(size_t *n_out)
{
	const struct demo_file **list = xcalloc(demo_nfiles + 1, sizeof *list);
	size_t n = 0;
	size_t plen = strlen(MIGRATIONS_PREFIX), slen = strlen(MIGRATION_FILE);
	for (size_t i = 0; i < demo_nfiles; i++) {
		const char *p = demo_files[i].path;
		size_t len = strlen(p);
		if (len > plen + slen && strncmp(p, MIGRATIONS_PREFIX, plen) == 0 &&
		    strcmp(p + len - slen, MIGRATION_FILE) == 0)
			list[n++] = &demo_files[i];
	}
	qsort(list, n, sizeof *list, cmp_file_ptr);
	*n_out = n;
	return list;
}

/* "<ts>_<name>" of a migration file path. Caller frees. */
static char *
migration_name(const struct demo_file *f)
{
	const char *start = f->path + strlen(MIGRATIONS_PREFIX);
	return xstrndup(start, strlen(start) - strlen(MIGRATION_FILE));
}

/*
 * Applies the first n migrations the way `prisma migrate deploy` does: each script as one batch,
 * then its row in _prisma_migrations (SHA-256 of the file, one applied step). The timestamps are
 * derived from the migration's name (dev ran it a minute after writing it, prod days later) so
 * that every load is identical.
 */
static bool
apply_migrations(PGconn *conn, const char *dbname, const struct demo_file **migs, size_t n,
                 const char *deployed_after, struct rb_error *err)
{
	if (!exec_sql(conn, migrations_table_ddl, err)) {
		rb_error_prefix(err, "could not create _prisma_migrations in %s", dbname);
		return false;
	}
	for (size_t i = 0; i < n; i++) {
		char *name = migration_name(migs[i]);
		if (!exec_sql(conn, (const char *)migs[i]->data, err)) {
			rb_error_prefix(err, "migration %s failed in %s", name, dbname);
			free(name);
			return false;
		}
		char checksum[65];
		sha256_hex(migs[i]->data, migs[i]->len, checksum);
		char *idseed = xasprintf("%s/%s", dbname, name);
		const char *params[] = { idseed, checksum, name, deployed_after };
		PGresult *res = PQexecParams(conn,
			"INSERT INTO \"_prisma_migrations\" (\"id\", \"checksum\", \"finished_at\", "
			"\"migration_name\", \"logs\", \"rolled_back_at\", \"started_at\", \"applied_steps_count\") "
			"SELECT md5($1)::uuid::text, $2, t + interval '1 second', $3, NULL, NULL, t, 1 "
			"FROM (SELECT to_timestamp(left($3, 14), 'YYYYMMDDHH24MISS') + $4::interval AS t) AS s",
			4, NULL, params, NULL, NULL, 0);
		bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
		if (!ok) {
			db_error_from_result(err, res, RB_EXIT_STEP);
			rb_error_prefix(err, "could not record migration %s in %s", name, dbname);
		}
		PQclear(res);
		free(idseed);
		free(name);
		if (!ok)
			return false;
	}
	return true;
}

static void RB_PRINTF(2, 3)
progress(struct rb_ctx *ctx, const char *fmt, ...)
{
	if (ctx == NULL || ctx->bus == NULL)
		return;
	va_list ap;
	va_start(ap, fmt);
	char *line = xvasprintf(fmt, ap);
	va_end(ap);
	events_log(ctx->bus, LOG_LEVEL_INFO, "demo", "%s", line);
	free(line);
}

static bool
check_cancel(struct rb_ctx *ctx, struct rb_error *err)
{
	if (!rb_ctx_cancelled(ctx))
		return true;
	return rb_error_setc(err, RB_EXIT_STEP, "demo cancelled");
}

/* Creates one shop database and loads it: migrations, the shared data, then its own script. */
static bool
load_shop(const struct cluster *c, PGconn *admin, const char *dbname, const struct demo_file **migs,
          size_t nmigs, const char *deployed_after, const char *own_script, int rows,
          struct rb_error *err)
{
	char *sql = xasprintf("CREATE DATABASE %s", dbname);
	bool ok = exec_sql(admin, sql, err);
	free(sql);
	if (!ok)
		return false;
	PGconn *conn = open_db(c, dbname, err);
	if (conn == NULL)
		return false;
	char *set_rows = xasprintf("SET pgrunbook.demo_rows = '%d'", rows);
	ok = apply_migrations(conn, dbname, migs, nmigs, deployed_after, err) &&
	     exec_file(conn, dbname, DATA_PREFIX "functions.sql", err) &&
	     exec_sql(conn, set_rows, err) &&
	     exec_file(conn, dbname, DATA_PREFIX "common.sql", err) &&
	     exec_file(conn, dbname, own_script, err) &&
	     exec_sql(conn, "ANALYZE", err);
	free(set_rows);
	PQfinish(conn);
	return ok;
}

/* Fills d's migration and row counts of one database. */
static bool
count_rows(struct demo *d, enum demo_db db, struct rb_error *err)
{
	PGconn *conn = open_db(d->cluster, db_names[db], err);
	if (conn == NULL)
		return false;
	bool ok = true;
	if (d->server_version == NULL) {
		const char *v = PQparameterStatus(conn, "server_version");
		d->server_version = xstrdup(v ? v : "?");
		d->server_version[strcspn(d->server_version, " ")] = '\0';   /* "15.8 (Debian ...)" */
	}
	char *v = db_query_value(conn, "SELECT count(*) FROM \"_prisma_migrations\" "
	                         "WHERE \"finished_at\" IS NOT NULL AND \"rolled_back_at\" IS NULL", err);
	if (v == NULL)
		ok = false;
	else
		d->migrations_applied[db] = atoi(v);
	free(v);
	for (size_t t = 0; ok && t < DEMO_NTABLES; t++) {
		const char *table = demo_counted_tables[t];
		char *ident = PQescapeIdentifier(conn, table, strlen(table));
		char *q = xasprintf("SELECT to_regclass('public.%s') IS NOT NULL", ident);
		char *exists = db_query_value(conn, q, err);
		free(q);
		ok = exists != NULL;
		if (ok && strcmp(exists, "t") != 0) {
			d->counts[db][t] = -1;
		} else if (ok) {
			q = xasprintf("SELECT count(*) FROM public.%s", ident);
			char *val = db_query_value(conn, q, err);
			free(q);
			ok = val != NULL;
			if (ok)
				d->counts[db][t] = atoll(val);
			free(val);
		}
		free(exists);
		PQfreemem(ident);
	}
	if (!ok)
		rb_error_prefix(err, "could not count the rows of %s", db_names[db]);
	PQfinish(conn);
	return ok;
}

struct demo *
demo_start(const char *dir, int rows, struct rb_ctx *ctx, struct rb_error *err)
{
	if (rows < DEMO_ROWS_MIN || rows > DEMO_ROWS_MAX) {
		rb_error_setc(err, RB_EXIT_USAGE, "rows must be between %d and %d, not %d",
		              DEMO_ROWS_MIN, DEMO_ROWS_MAX, rows);
		return NULL;
	}
	if (!check_dir_free(dir, err))
		return NULL;

	progress(ctx, "creating a PostgreSQL cluster in %s", dir);
	struct cluster *c = cluster_create(dir, err);
	if (c == NULL) {
		/*
		 * The directory was free before; what cluster_create() left in it (its sock/ is made
		 * first) is of no further use. A server that is somehow up is stopped first.
		 */
		if (err && err->code == RB_EXIT_USAGE)
			err->code = RB_EXIT_STEP;
		if (file_exists_in(dir, "sock") && !file_exists_in(dir, MARKER_FILE)) {
			struct rb_error ignored = {0};
			struct cluster *left = cluster_load(dir, &ignored);
			if (left)
				cluster_stop(left, &ignored);
			cluster_free(left);
			rb_error_clear(&ignored);
			remove_tree(dir);
		}
		return NULL;
	}

	struct demo *d = xcalloc(1, sizeof *d);
	d->cluster = c;
	d->dir = xstrdup(c->base);
	d->rows = rows;
	char *plan_dir = xasprintf("%s/%s", d->dir, PLAN_SUBDIR);
	d->plan_path = xasprintf("%s/demo.yaml", plan_dir);
	d->migrations_dir = xasprintf("%s/%s", plan_dir, "demo/prisma/migrations");

	size_t nmigs = 0;
	const struct demo_file **migs = list_migrations(&nmigs);
	d->migrations_total = (int)nmigs;
	size_t nprod = nmigs < DEMO_PROD_MIGRATIONS ? nmigs : DEMO_PROD_MIGRATIONS;

	PGconn *admin = NULL;
	char *marker = xasprintf("%s/%s", d->dir, MARKER_FILE);
	FILE *mf = fopen(marker, "w");
	bool ok = mf != NULL;
	if (mf) {
		fputs("This directory is a pgrunbook demo; \"pgrunbook demo --stop\" removes it.\n", mf);
		ok = fclose(mf) == 0;
	}
	if (!ok)
		rb_error_setc(err, RB_EXIT_STEP, "could not write %s: %s", marker, strerror(errno));
	free(marker);

	if (ok) {
		admin = open_db(c, "postgres", err);
		ok = admin != NULL;
	}
	if (ok) {
		progress(ctx, "loading %s (%zu migrations)", db_names[DEMO_DB_DEV], nmigs);
		ok = check_cancel(ctx, err) &&
		     load_shop(c, admin, db_names[DEMO_DB_DEV], migs, nmigs, "1 minute",
		               DATA_PREFIX "dev.sql", rows, err);
	}
	if (ok) {
		progress(ctx, "loading %s (%zu of %zu migrations, %d orders)", db_names[DEMO_DB_PROD],
		         nprod, nmigs, rows);
		ok = check_cancel(ctx, err) &&
		     load_shop(c, admin, db_names[DEMO_DB_PROD], migs, nprod, "2 days 3 hours",
		               DATA_PREFIX "prod.sql", rows, err);
	}
	if (ok) {
		progress(ctx, "copying %s to %s", db_names[DEMO_DB_PROD], db_names[DEMO_DB_STAGING]);
		char *sql = xasprintf("CREATE DATABASE %s TEMPLATE %s", db_names[DEMO_DB_STAGING],
		                      db_names[DEMO_DB_PROD]);
		ok = check_cancel(ctx, err) && exec_sql(admin, sql, err);
		free(sql);
	}
	PQfinish(admin);
	free(migs);
	for (int db = 0; ok && db < DEMO_DB_COUNT; db++)
		ok = count_rows(d, (enum demo_db)db, err);
	if (ok) {
		progress(ctx, "writing the plan to %s", d->plan_path);
		ok = demo_write_plan(plan_dir, c, err);
	}
	free(plan_dir);
	if (ok)
		return d;

	/* Leave nothing running behind a failed start. */
	struct rb_error stop_err = {0};
	if (!cluster_destroy(c, &stop_err) && err) {
		char *why = rb_error_format(&stop_err);
		rb_error_hint(err, "The demo cluster in %s could not be removed: %s", d->dir, why);
		free(why);
	}
	rb_error_clear(&stop_err);
	demo_free(d);
	return NULL;
}

bool
demo_stop(const char *dir, bool *found, struct rb_error *err)
{
	*found = false;
	enum demo_state state = demo_probe(dir);
	if (state == DEMO_STATE_ABSENT)
		return true;
	if (state == DEMO_STATE_FOREIGN) {
		rb_error_setc(err, RB_EXIT_STEP, "%s is not a pgrunbook demo; leaving it alone", dir);
		rb_error_hint(err, "Only a directory made by \"pgrunbook demo\" is stopped and removed.");
		return false;
	}
	struct cluster *c = cluster_load(dir, err);
	if (c == NULL)
		return false;
	/* cluster.json names the directory it was made in: a moved or copied demo is not removed. */
	char *real = realpath(dir, NULL);
	if (real == NULL || strcmp(real, c->base) != 0) {
		rb_error_setc(err, RB_EXIT_STEP, "%s was made as %s; not removing it", dir, c->base);
		free(real);
		cluster_free(c);
		return false;
	}
	free(real);
	*found = true;
	bool ok = cluster_destroy(c, err);
	cluster_free(c);
	return ok;
}

/* Appends v to sb as a conninfo value, quoted when it needs to be. */
static void
add_conninfo_value(struct strbuf *sb, const char *v)
{
	bool plain = *v != '\0';
	for (const char *p = v; *p; p++)
		if (!(('a' <= *p && *p <= 'z') || ('A' <= *p && *p <= 'Z') || ('0' <= *p && *p <= '9') ||
		      strchr("_./-+:@", *p) != NULL))
			plain = false;
	if (plain) {
		strbuf_adds(sb, v);
		return;
	}
	strbuf_addc(sb, '\'');
	for (const char *p = v; *p; p++) {
		if (*p == '\'' || *p == '\\')
			strbuf_addc(sb, '\\');
		strbuf_addc(sb, *p);
	}
	strbuf_addc(sb, '\'');
}

/* Appends s to sb escaped for the inside of a YAML double-quoted scalar. */
static void
add_yaml_dq(struct strbuf *sb, const char *s)
{
	for (const char *p = s; *p; p++) {
		if (*p == '"' || *p == '\\')
			strbuf_addc(sb, '\\');
		strbuf_addc(sb, *p);
	}
}

/*
 * The template plan with the cluster filled in: the first comment paragraph (up to the first bare
 * "#" line) becomes a note about where the file came from, and each `"dbname=` gains the host,
 * port and user. Caller frees.
 */
static char *
plan_for_cluster(const struct demo_file *tmpl, const struct cluster *c)
{
	const char *text = (const char *)tmpl->data;
	const char *body = text;
	while (*body == '#') {
		const char *eol = strchr(body, '\n');
		if (eol == NULL)
			break;
		if (eol - body == 1)   /* a bare "#" line ends the paragraph */
			break;
		body = eol + 1;
	}

	struct strbuf prefix = {0};
	strbuf_adds(&prefix, "\"host=");
	add_conninfo_value(&prefix, c->sockdir);
	strbuf_addf(&prefix, " port=%d user=", c->port);
	add_conninfo_value(&prefix, c->superuser);
	strbuf_adds(&prefix, " dbname=");
	struct strbuf yprefix = {0};
	strbuf_addc(&yprefix, '"');
	add_yaml_dq(&yprefix, prefix.buf + 1);

	struct strbuf out = {0};
	strbuf_addf(&out,
	            "# demo.yaml: written by `pgrunbook demo` for its throwaway cluster in %s.\n"
	            "# The environments below name that cluster's socket directory, port and user.\n"
	            "# Stop the cluster and remove the directory (this plan too) with:\n"
	            "#   pgrunbook demo --stop --dir %s\n"
	            "# pgrunbook's sources hold the same plan as plans/demo.yaml, without the server details.\n",
	            c->base, c->base);
	const char *needle = "\"dbname=";
	const char *p = body;
	const char *hit;
	while ((hit = strstr(p, needle)) != NULL) {
		strbuf_add(&out, p, (size_t)(hit - p));
		strbuf_adds(&out, yprefix.buf);
		p = hit + strlen(needle);
	}
	strbuf_adds(&out, p);
	strbuf_release(&prefix);
	strbuf_release(&yprefix);
	return strbuf_detach(&out);
}

static bool
write_file(const char *path, const void *data, size_t len, struct rb_error *err)
{
	char *dir = xstrdup(path);
	char *slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = '\0';
		if (!mkdir_p(dir, 0755)) {
			rb_error_setc(err, RB_EXIT_STEP, "could not create directory %s: %s", dir, strerror(errno));
			free(dir);
			return false;
		}
	}
	free(dir);
	FILE *f = fopen(path, "wb");
	if (f == NULL)
		return rb_error_setc(err, RB_EXIT_STEP, "could not write %s: %s", path, strerror(errno));
	bool ok = fwrite(data, 1, len, f) == len;
	if (fclose(f) != 0)
		ok = false;
	if (!ok)
		return rb_error_setc(err, RB_EXIT_STEP, "could not write %s: %s", path, strerror(errno));
	return true;
}

bool
demo_write_plan(const char *plan_dir, const struct cluster *c, struct rb_error *err)
{
	for (size_t i = 0; i < demo_nfiles; i++) {
		const struct demo_file *f = &demo_files[i];
		if (strncmp(f->path, DATA_PREFIX, strlen(DATA_PREFIX)) == 0)
			continue;
		char *path = xasprintf("%s/%s", plan_dir, f->path);
		bool ok;
		if (c != NULL && strcmp(f->path, "demo.yaml") == 0) {
			char *text = plan_for_cluster(f, c);
			ok = write_file(path, text, strlen(text), err);
			free(text);
		} else {
			ok = write_file(path, f->data, f->len, err);
		}
		free(path);
		if (!ok)
			return false;
	}
	return true;
}

void
demo_free(struct demo *d)
{
	if (d == NULL)
		return;
	cluster_free(d->cluster);
	free(d->dir);
	free(d->plan_path);
	free(d->migrations_dir);
	free(d->server_version);
	free(d);
}
