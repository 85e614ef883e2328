/* migrations.c: the Prisma migrations folder, Prisma-compatible checksums, _prisma_migrations state. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "db.h"
#include "migrations.h"

#define MIGRATION_FILE "migration.sql"
#define LOCK_FILE      "migration_lock.toml"

static int
cmp_local(const void *a, const void *b)
{
	return strcmp(((const struct mig_local *)a)->name, ((const struct mig_local *)b)->name);
}

/* The value of `provider = "..."` in migration_lock.toml (comments and blank lines skipped). */
static char *
lock_provider(const char *text)
{
	for (const char *line = text; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
		while (*line == ' ' || *line == '\t')
			line++;
		if (strncmp(line, "provider", 8) != 0)
			continue;
		const char *q = strchr(line, '"');
		const char *nl = strchr(line, '\n');
		if (q == NULL || (nl && q > nl))
			continue;
		const char *end = strchr(q + 1, '"');
		if (end == NULL || (nl && end > nl))
			continue;
		return xstrndup(q + 1, (size_t)(end - q - 1));
	}
	return NULL;
}

bool
migrations_load(const char *dir, struct mig_set *out, struct rb_error *err)
{
	memset(out, 0, sizeof *out);
	out->dir = xstrdup(dir);
	DIR *d = opendir(dir);
	if (d == NULL) {
		rb_error_setc(err, RB_EXIT_STEP, "could not open the migrations folder \"%s\": %s", dir,
		              strerror(errno));
		rb_error_hint(err, "migrations.dir in the plan is relative to the plan file.");
		return false;
	}
	size_t cap = 0;
	struct dirent *de;
	bool ok = true;
	while (ok && (de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		char *sub = xasprintf("%s/%s", dir, de->d_name);
		struct stat st;
		if (stat(sub, &st) != 0 || !S_ISDIR(st.st_mode)) {
			free(sub);
			continue;  /* migration_lock.toml and other files */
		}
		char *path = xasprintf("%s/" MIGRATION_FILE, sub);
		free(sub);
		size_t len = 0;
		char *sql = file_read_all(path, &len);
		if (sql == NULL) {
			rb_error_setc(err, RB_EXIT_STEP, "migration \"%s\" has no readable %s: %s", de->d_name,
			              MIGRATION_FILE, strerror(errno));
			rb_error_detail(err, "Looked for %s.", path);
			free(path);
			ok = false;
			break;
		}
		if (out->n == cap) {
			cap = cap ? cap * 2 : 16;
			out->items = xrealloc(out->items, cap * sizeof *out->items);
		}
		struct mig_local *m = &out->items[out->n++];
		m->name = xstrdup(de->d_name);
		m->path = path;
		m->sql = sql;
		m->len = len;
		sha256_hex(sql, len, m->checksum);
	}
	closedir(d);
	if (!ok)
		return false;
	qsort(out->items, out->n, sizeof *out->items, cmp_local);

	char *lock = xasprintf("%s/" LOCK_FILE, dir);
	char *text = file_read_all(lock, NULL);
	if (text) {
		out->provider = lock_provider(text);
		free(text);
		if (out->provider == NULL || strcmp(out->provider, "postgresql") != 0) {
			rb_error_setc(err, RB_EXIT_STEP, "%s names provider \"%s\"; pgrunbook deploys to "
			              "postgresql only", lock, out->provider ? out->provider : "(none)");
			free(lock);
			return false;
		}
	}
	free(lock);
	return true;
}

void
migrations_free(struct mig_set *s)
{
	if (s == NULL)
		return;
	for (size_t i = 0; i < s->n; i++) {
		free(s->items[i].name);
		free(s->items[i].path);
		free(s->items[i].sql);
	}
	free(s->items);
	free(s->dir);
	free(s->provider);
	memset(s, 0, sizeof *s);
}

/* The script with CRLF turned into LF (crlf false) or every lone LF into CRLF (crlf true). */
static char *
convert_endings(const char *sql, size_t len, bool crlf, size_t *out_len)
{
	struct strbuf sb = {0};
	for (size_t i = 0; i < len; i++) {
		if (!crlf && sql[i] == '\r' && i + 1 < len && sql[i + 1] == '\n')
			continue;
		if (crlf && sql[i] == '\n' && (i == 0 || sql[i - 1] != '\r'))
			strbuf_addc(&sb, '\r');
		strbuf_addc(&sb, sql[i]);
	}
	*out_len = sb.len;
	return strbuf_detach(&sb);
}

bool
migrations_checksum_matches(const char *sql, size_t len, const char *stored)
{
	char hex[65];
	sha256_hex(sql, len, hex);
	if (strcmp(hex, stored) == 0)
		return true;
	for (int crlf = 0; crlf <= 1; crlf++) {
		size_t n;
		char *conv = convert_endings(sql, len, crlf, &n);
		sha256_hex(conv, n, hex);
		free(conv);
		if (strcmp(hex, stored) == 0)
			return true;
	}
	return false;
}

const char *
migrations_state_name(enum mig_state s)
{
	switch (s) {
	case MIG_APPLIED:
		return "applied";
	case MIG_PENDING:
		return "pending";
	case MIG_FAILED:
		return "failed";
	case MIG_MODIFIED:
		return "modified";
	case MIG_MISSING_LOCALLY:
		return "missing locally";
	}
	return "?";
}

struct db_row {
	char *name, *checksum, *started, *finished, *logs;
	bool  rolled_back;
	int   steps;
};

static char *
dup_value(const PGresult *res, int r, int c)
{
	return PQgetisnull(res, r, c) ? NULL : xstrdup(PQgetvalue(res, r, c));
}

static struct mig_status_item *
add_item(struct mig_status *st, const char *name, enum mig_state state)
{
	st->items = xrealloc(st->items, (st->n + 1) * sizeof *st->items);
	struct mig_status_item *it = &st->items[st->n++];
	memset(it, 0, sizeof *it);
	it->name = xstrdup(name);
	it->state = state;
	return it;
}

/*
 * Applies the rows of one migration (in start order) to its item: the latest finished and not
 * rolled back row makes it applied (or modified), else an unfinished one failed.
 */
static void
judge(struct mig_status_item *it, const struct mig_local *local, struct db_row *rows, size_t nrows)
{
	const struct db_row *applied = NULL, *failed = NULL;
	for (size_t i = 0; i < nrows; i++) {
		if (rows[i].rolled_back)
			it->rolled_back++;
		else if (rows[i].finished)
			applied = &rows[i];
		else
			failed = &rows[i];
	}
	const struct db_row *shown = applied ? applied : failed;
	if (applied)
		it->state = local && !migrations_checksum_matches(local->sql, local->len, applied->checksum)
		            ? MIG_MODIFIED : MIG_APPLIED;
	else if (failed)
		it->state = MIG_FAILED;
	if (shown) {
		it->started_at = shown->started ? xstrdup(shown->started) : NULL;
		it->finished_at = shown->finished ? xstrdup(shown->finished) : NULL;
		it->logs = shown->logs ? xstrdup(shown->logs) : NULL;
		it->applied_steps = shown->steps;
	}
}

/* Whether <schema>._prisma_migrations exists: 1 yes, 0 no, -1 error (err set). */
static int
table_exists(PGconn *conn, const char *schema, const struct rb_ctx *ctx, struct rb_error *err)
{
	const char *params[1] = { schema };
	PGresult *res = db_exec(conn, "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n"
	                        " ON n.oid OPERATOR(pg_catalog.=) c.relnamespace"
	                        " WHERE n.nspname OPERATOR(pg_catalog.=) $1"
	                        " AND c.relname OPERATOR(pg_catalog.=) '_prisma_migrations')", 1, params, ctx);
	int r = -1;
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		db_error_from_result(err, res, RB_EXIT_STEP);
	else
		r = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	PQclear(res);
	return r;
}

bool
migrations_status(PGconn *conn, const char *schema, const struct mig_set *local,
                  const struct rb_ctx *ctx, struct mig_status *out, struct rb_error *err)
{
	memset(out, 0, sizeof *out);
	/* Read-only, and with an empty search_path: only pg_catalog resolves (see preflight). */
	PGresult *res = db_exec(conn, "BEGIN READ ONLY; SELECT pg_catalog.set_config('search_path', '', true)",
	                        0, NULL, ctx);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		db_error_from_result(err, res, RB_EXIT_STEP);
		PQclear(res);
		return false;
	}
	PQclear(res);
	bool ok = false;
	struct db_row *rows = NULL;
	int nrows = 0;
	res = NULL;
	int exists = table_exists(conn, schema, ctx, err);
	if (exists < 0)
		goto done;
	out->table_exists = exists == 1;
	if (out->table_exists) {
		char *q = PQescapeIdentifier(conn, schema, strlen(schema));
		char *sql = xasprintf(
			"SELECT migration_name, checksum,"
			" pg_catalog.to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"
			" pg_catalog.to_char(finished_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"
			" logs, rolled_back_at IS NOT NULL, applied_steps_count"
			" FROM %s._prisma_migrations ORDER BY started_at, id", q);
		PQfreemem(q);
		res = db_exec(conn, sql, 0, NULL, ctx);
		free(sql);
		if (PQresultStatus(res) != PGRES_TUPLES_OK) {
			db_error_from_result(err, res, RB_EXIT_STEP);
			goto done;
		}
		nrows = PQntuples(res);
		rows = xcalloc((size_t)nrows + 1, sizeof *rows);
		for (int r = 0; r < nrows; r++) {
			rows[r].name = dup_value(res, r, 0);
			rows[r].checksum = dup_value(res, r, 1);
			rows[r].started = dup_value(res, r, 2);
			rows[r].finished = dup_value(res, r, 3);
			rows[r].logs = dup_value(res, r, 4);
			rows[r].rolled_back = strcmp(PQgetvalue(res, r, 5), "t") == 0;
			rows[r].steps = atoi(PQgetvalue(res, r, 6));
		}
		PQclear(res);
		res = NULL;
	}

	/* Local migrations in order, with the rows that name them. */
	struct db_row *mine = xcalloc((size_t)nrows + 1, sizeof *mine);
	for (size_t i = 0; i < local->n; i++) {
		size_t k = 0;
		for (int r = 0; r < nrows; r++)
			if (rows[r].name && strcmp(rows[r].name, local->items[i].name) == 0)
				mine[k++] = rows[r];
		struct mig_status_item *it = add_item(out, local->items[i].name, MIG_PENDING);
		judge(it, &local->items[i], mine, k);
	}
	/* Then what the database knows and the folder does not (applied or failed rows only). */
	for (int r = 0; r < nrows; r++) {
		if (rows[r].name == NULL)
			continue;
		bool known = false;
		for (size_t i = 0; i < out->n && !known; i++)
			known = strcmp(out->items[i].name, rows[r].name) == 0;
		if (known)
			continue;
		size_t k = 0;
		for (int s = r; s < nrows; s++)
			if (rows[s].name && strcmp(rows[s].name, rows[r].name) == 0)
				mine[k++] = rows[s];
		struct mig_status_item tmp = {0};
		judge(&tmp, NULL, mine, k);
		bool live = false;
		for (size_t s = 0; s < k; s++)
			live = live || !mine[s].rolled_back;
		if (live) {
			struct mig_status_item *it = add_item(out, rows[r].name, MIG_MISSING_LOCALLY);
			it->started_at = tmp.started_at;
			it->finished_at = tmp.finished_at;
			it->logs = tmp.logs;
			it->applied_steps = tmp.applied_steps;
			it->rolled_back = tmp.rolled_back;
		} else {
			free(tmp.started_at);
			free(tmp.finished_at);
			free(tmp.logs);
		}
	}
	free(mine);
	for (size_t i = 0; i < out->n; i++)
		out->count[out->items[i].state]++;
	ok = true;
done:
	PQclear(res);
	for (int r = 0; r < nrows; r++) {
		free(rows[r].name);
		free(rows[r].checksum);
		free(rows[r].started);
		free(rows[r].finished);
		free(rows[r].logs);
	}
	free(rows);
	res = db_exec(conn, "COMMIT", 0, NULL, NULL);
	PQclear(res);
	if (!ok)
		migrations_status_free(out);
	return ok;
}

void
migrations_status_free(struct mig_status *st)
{
	if (st == NULL)
		return;
	for (size_t i = 0; i < st->n; i++) {
		free(st->items[i].name);
		free(st->items[i].started_at);
		free(st->items[i].finished_at);
		free(st->items[i].logs);
	}
	free(st->items);
	memset(st, 0, sizeof *st);
}

bool
migrations_up_to_date(const struct mig_status *st)
{
	return st->count[MIG_PENDING] == 0 && st->count[MIG_FAILED] == 0 &&
	       st->count[MIG_MODIFIED] == 0 && st->count[MIG_MISSING_LOCALLY] == 0;
}

json_t *
migrations_status_json(const struct mig_status *st)
{
	json_t *counts = json_object();
	for (int s = MIG_APPLIED; s <= MIG_MISSING_LOCALLY; s++)
		json_object_set_new(counts, migrations_state_name((enum mig_state)s),
		                    json_integer((json_int_t)st->count[s]));
	json_t *list = json_array();
	for (size_t i = 0; i < st->n; i++) {
		const struct mig_status_item *it = &st->items[i];
		json_t *o = json_pack("{s:s, s:s, s:i, s:i}", "name", it->name,
		                      "state", migrations_state_name(it->state),
		                      "applied_steps", it->applied_steps, "rolled_back_rows", it->rolled_back);
		json_object_set_new(o, "started_at", it->started_at ? json_string(it->started_at) : json_null());
		json_object_set_new(o, "finished_at", it->finished_at ? json_string(it->finished_at) : json_null());
		json_object_set_new(o, "logs", it->logs ? json_string(it->logs) : json_null());
		json_array_append_new(list, o);
	}
	return json_pack("{s:b, s:b, s:o, s:o}", "up_to_date", migrations_up_to_date(st),
	                 "table_exists", st->table_exists, "counts", counts, "migrations", list);
}

/* --- writing _prisma_migrations the way Prisma's engine does --- */

const char migrations_table_ddl[] =
	"CREATE TABLE \"_prisma_migrations\" (\n"
	"    \"id\"                    VARCHAR(36) PRIMARY KEY NOT NULL,\n"
	"    \"checksum\"              VARCHAR(64) NOT NULL,\n"
	"    \"finished_at\"           TIMESTAMPTZ,\n"
	"    \"migration_name\"        VARCHAR(255) NOT NULL,\n"
	"    \"logs\"                  TEXT,\n"
	"    \"rolled_back_at\"        TIMESTAMPTZ,\n"
	"    \"started_at\"            TIMESTAMPTZ NOT NULL DEFAULT now(),\n"
	"    \"applied_steps_count\"   INTEGER NOT NULL DEFAULT 0\n"
	");";

/* Runs sql (no parameters unless given); false with err set (RB_EXIT_STEP) unless it succeeded. */
static void
rollback_quietly(PGconn *conn)
{
	if (PQtransactionStatus(conn) == PQTRANS_INERROR || PQtransactionStatus(conn) == PQTRANS_INTRANS)
		PQclear(db_exec(conn, "ROLLBACK", 0, NULL, NULL));
}

bool
migrations_ensure_table(PGconn *conn, const char *schema, const struct rb_ctx *ctx, struct rb_error *err)
{
	if (!db_run(conn, "BEGIN", 0, NULL, ctx, err))
		return false;
	/* Prisma's connection has the schema as its search_path and creates the table unqualified. */
	char *q = PQescapeIdentifier(conn, schema, strlen(schema));
	char *quoted = xstrdup(q);
	PQfreemem(q);
	const char *qp[1] = { quoted };
	bool ok = db_run(conn, "SELECT pg_catalog.set_config('search_path', $1, true)", 1, qp, ctx, err);
	free(quoted);
	if (ok) {
		int exists = table_exists(conn, schema, ctx, err);
		ok = exists == 1 || (exists == 0 && db_run(conn, migrations_table_ddl, 0, NULL, ctx, err));
	}
	if (ok)
		ok = db_run(conn, "COMMIT", 0, NULL, ctx, err);
	if (!ok) {
		rb_error_prefix(err, "could not create %s._prisma_migrations", schema);
		rollback_quietly(conn);
	}
	return ok;
}

void
migrations_new_id(char out[37])
{
	unsigned char b[16];
	ssize_t n = getrandom(b, sizeof b, 0);
	if (n != (ssize_t)sizeof b) {
		/* getrandom(2) does not fail for 16 bytes once the pool is ready; be safe anyway. */
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		unsigned long long v = (unsigned long long)ts.tv_nsec ^ ((unsigned long long)ts.tv_sec << 20) ^
		                       (unsigned long long)getpid();
		for (size_t i = 0; i < sizeof b; i++)
			b[i] = (unsigned char)(v >> ((i % 8) * 8)) ^ (unsigned char)(i * 37);
	}
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);  /* version 4 */
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);  /* RFC 4122 variant */
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;
	for (size_t i = 0; i < sizeof b; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			out[o++] = '-';
		out[o++] = hex[b[i] >> 4];
		out[o++] = hex[b[i] & 0x0f];
	}
	out[o] = '\0';
}

/*
 * Locks the migration's rows (FOR UPDATE) inside the open transaction and counts them: all, finished
 * (not rolled back) and failed (neither finished nor rolled back). False with err set on failure.
 */
static bool
count_rows(PGconn *conn, const char *qschema, const char *name, const struct rb_ctx *ctx, int *all,
           int *finished, int *failed, struct rb_error *err)
{
	char *sql = xasprintf("SELECT finished_at IS NOT NULL AND rolled_back_at IS NULL,"
	                      " finished_at IS NULL AND rolled_back_at IS NULL"
	                      " FROM %s._prisma_migrations WHERE migration_name OPERATOR(pg_catalog.=) $1"
	                      " FOR UPDATE", qschema);
	const char *params[1] = { name };
	PGresult *res = db_exec(conn, sql, 1, params, ctx);
	free(sql);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		db_error_from_result(err, res, RB_EXIT_STEP);
		PQclear(res);
		return false;
	}
	*all = PQntuples(res);
	*finished = *failed = 0;
	for (int r = 0; r < *all; r++) {
		*finished += strcmp(PQgetvalue(res, r, 0), "t") == 0;
		*failed += strcmp(PQgetvalue(res, r, 1), "t") == 0;
	}
	PQclear(res);
	return true;
}

bool
migrations_mark_applied(PGconn *conn, const char *schema, const struct mig_local *m,
                        const struct rb_ctx *ctx, struct rb_error *err)
{
	if (!migrations_ensure_table(conn, schema, ctx, err))
		return false;
	char *qs = PQescapeIdentifier(conn, schema, strlen(schema));
	char *q = xstrdup(qs);
	PQfreemem(qs);
	int all, finished, failed;
	bool ok = db_run(conn, "BEGIN", 0, NULL, ctx, err) &&
	          count_rows(conn, q, m->name, ctx, &all, &finished, &failed, err);
	if (ok && finished > 0) {
		rb_error_setc(err, RB_EXIT_STEP, "migration %s is already recorded as applied in the database",
		              m->name);
		rb_error_hint(err, "Nothing was changed. \"pgrunbook migrate status\" shows each migration's state.");
		ok = false;
	}
	if (ok && failed > 0) {
		char *sql = xasprintf("UPDATE %s._prisma_migrations SET rolled_back_at = pg_catalog.now()"
		                      " WHERE migration_name OPERATOR(pg_catalog.=) $1 AND finished_at IS NULL"
		                      " AND rolled_back_at IS NULL", q);
		const char *params[1] = { m->name };
		ok = db_run(conn, sql, 1, params, ctx, err);
		free(sql);
	}
	if (ok) {
		char id[37];
		migrations_new_id(id);
		char *sql = xasprintf("INSERT INTO %s._prisma_migrations (id, checksum, started_at, finished_at,"
		                      " migration_name, logs, rolled_back_at, applied_steps_count)"
		                      " VALUES ($1, $2, pg_catalog.now(), pg_catalog.now(), $3, '', NULL, 0)", q);
		const char *params[3] = { id, m->checksum, m->name };
		ok = db_run(conn, sql, 3, params, ctx, err);
		free(sql);
	}
	if (ok)
		ok = db_run(conn, "COMMIT", 0, NULL, ctx, err);
	if (!ok)
		rollback_quietly(conn);
	free(q);
	return ok;
}

bool
migrations_mark_rolled_back(PGconn *conn, const char *schema, const char *name,
                            const struct rb_ctx *ctx, struct rb_error *err)
{
	char *qs = PQescapeIdentifier(conn, schema, strlen(schema));
	char *q = xstrdup(qs);
	PQfreemem(qs);
	int all = 0, finished = 0, failed = 0;
	bool ok = db_run(conn, "BEGIN", 0, NULL, ctx, err);
	if (ok) {
		/* A missing table means the migration was never applied. */
		int exists = table_exists(conn, schema, ctx, err);
		ok = exists == 0 || (exists == 1 && count_rows(conn, q, name, ctx, &all, &finished, &failed, err));
	}
	if (ok && all == 0) {
		rb_error_setc(err, RB_EXIT_STEP, "migration %s cannot be rolled back because it was never applied "
		              "to the database", name);
		rb_error_hint(err, "Nothing was changed. A pending migration needs no resolving.");
		ok = false;
	} else if (ok && failed == 0) {
		rb_error_setc(err, RB_EXIT_STEP, "migration %s cannot be rolled back because it is not in a failed "
		              "state", name);
		rb_error_hint(err, "Nothing was changed. Only a failed migration can be marked rolled back; "
		              "undo an applied one with a new migration.");
		ok = false;
	}
	if (ok) {
		char *sql = xasprintf("UPDATE %s._prisma_migrations SET rolled_back_at = pg_catalog.now()"
		                      " WHERE migration_name OPERATOR(pg_catalog.=) $1 AND finished_at IS NULL"
		                      " AND rolled_back_at IS NULL", q);
		const char *params[1] = { name };
		ok = db_run(conn, sql, 1, params, ctx, err);
		free(sql);
	}
	if (ok)
		ok = db_run(conn, "COMMIT", 0, NULL, ctx, err);
	if (!ok)
		rollback_quietly(conn);
	free(q);
	return ok;
}
