/* rollback.c: undo a run's changes: down SQL when provably enough, else restore the backup and swap database names. */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#include "backup.h"
#include "confirm.h"
#include "db.h"
#include "events.h"
#include "lint.h"
#include "maintenance.h"
#include "migrations.h"
#include "rollback.h"
#include "util.h"
#include "verify.h"

#define STAGE ROLLBACK_STAGE
#define DEFAULT_LOCK_WAIT_MS 10000

const char *
rollback_path_name(enum rollback_path p)
{
	switch (p) {
	case ROLLBACK_DOWN_SQL:
		return "down_sql";
	case ROLLBACK_RESTORE:
		return "restore";
	case ROLLBACK_NONE:
		break;
	}
	return "none";
}

void
rollback_choice_free(struct rollback_choice *c)
{
	if (c == NULL)
		return;
	free(c->why);
	free(c->database);
	free(c->phrase);
	free(c->backup);
	free(c->run_id);
	free(c->backup_finished);
	json_decref(c->migrations);
	json_decref(c->revoked_grants);
	json_decref(c->restore_thaws);
	memset(c, 0, sizeof *c);
}

json_t *
rollback_choice_json(const struct rollback_choice *c)
{
	return json_pack("{s:s, s:s?, s:s?, s:s?, s:s?, s:O?, s:b, s:s?}", "path", rollback_path_name(c->path), "why",
	                 c->why, "database", c->database, "phrase", c->phrase, "backup", c->backup, "migrations",
	                 c->migrations, "synced", c->synced, "run", c->run_id);
}

/* --- reading the run --- */

static const char *
jstr(const json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

static bool
is_step(const struct journal_record *r, const char *kind)
{
	const char *k = jstr(r->data, "kind");
	return r->type == EV_STEP && k && strcmp(k, kind) == 0;
}

/*
 * The migrations the run applied, in order of application: [{"name", "id", "applied_at"}]. A
 * migration applied more than once (applied, rolled back, applied again) is listed once, at
 * its last application.
 */
static json_t *
run_applied_migrations(const struct run_state *st)
{
	json_t *list = json_array();
	for (size_t i = 0; st && i < st->nrecords; i++) {
		const struct journal_record *r = &st->records[i];
		if (r->stage == NULL || strcmp(r->stage, "migrate") != 0 || !is_step(r, "migration"))
			continue;
		const char *state = jstr(r->data, "state"), *name = jstr(r->data, "migration");
		if (state == NULL || name == NULL || strcmp(state, "applied") != 0)
			continue;
		size_t k;
		json_t *m;
		json_array_foreach(list, k, m) {
			if (strcmp(jstr(m, "name"), name) == 0) {
				json_array_remove(list, k);
				break;
			}
		}
		json_array_append_new(list, json_pack("{s:s, s:s?, s:s?}", "name", name, "id", jstr(r->data, "id"),
		                                      "applied_at", r->ts));
	}
	return list;
}

/* Whether the run wrote data with sync apply: a table applied, or started without a recorded end. */
static bool
run_synced(const struct run_state *st)
{
	for (size_t i = 0; st && i < st->nrecords; i++) {
		const struct journal_record *r = &st->records[i];
		if (!is_step(r, "sync_table"))
			continue;
		const char *state = jstr(r->data, "state"), *table = jstr(r->data, "table");
		if (state == NULL)
			continue;
		if (strcmp(state, "applied") == 0 || strcmp(state, "unknown") == 0)   /* unknown: lost during COMMIT */
			return true;
		if (strcmp(state, "failed") == 0 || strcmp(state, "not reached") == 0 || strcmp(state, "pending") == 0)
			continue;
		/* started or running: written unless a later record of the table says how it ended */
		bool ended = false;
		for (size_t k = i + 1; k < st->nrecords && !ended; k++) {
			const struct journal_record *q = &st->records[k];
			const char *s2 = jstr(q->data, "state"), *t2 = jstr(q->data, "table");
			if (is_step(q, "sync_table") && s2 && t2 && table && strcmp(t2, table) == 0 &&
			    (strcmp(s2, "applied") == 0 || strcmp(s2, "failed") == 0))
				ended = true;
		}
		if (!ended)
			return true;
	}
	return false;
}

/* The run's verified backup: its backup stage's result, else the backup its migrate or sync relied on. */
static const char *
run_backup(const struct run_state *st)
{
	if (st == NULL)
		return NULL;
	const json_t *res = st->stages[PLAN_STAGE_BACKUP].result;
	if (res && json_is_true(json_object_get(res, "verified")) && jstr(res, "path"))
		return jstr(res, "path");
	const char *found = NULL;
	for (size_t i = 0; i < st->nrecords; i++)
		if (is_step(&st->records[i], "backup_found") && jstr(st->records[i].data, "path"))
			found = jstr(st->records[i].data, "path");
	return found;
}

/* The folder of each local migration, by name: "<dir>/<name>/down.sql" when that file exists. */
static char *
down_sql_path(const struct mig_set *set, const char *name)
{
	for (size_t i = 0; i < set->n; i++) {
		if (strcmp(set->items[i].name, name) != 0)
			continue;
		char *dir = xstrdup(set->items[i].path);
		char *slash = strrchr(dir, '/');
		if (slash)
			*slash = '\0';
		char *p = xasprintf("%s/down.sql", slash ? dir : ".");
		free(dir);
		FILE *f = fopen(p, "r");
		if (f) {
			fclose(f);
			return p;
		}
		free(p);
		return NULL;
	}
	return NULL;
}

/*
 * Whether the migration's row in _prisma_migrations (by id when known, else the newest finished
 * row of the name) is still applied (finished, not rolled back) with the checksum of the local
 * file. why receives the reason when not (caller frees).
 */
static bool
still_applied(PGconn *conn, const char *schema, const struct mig_set *set, const json_t *m, char **why)
{
	const char *name = jstr(m, "name"), *id = jstr(m, "id");
	const struct mig_local *local = NULL;
	for (size_t i = 0; i < set->n; i++)
		if (strcmp(set->items[i].name, name) == 0)
			local = &set->items[i];
	if (local == NULL) {
		*why = xasprintf("%s is no longer in the migrations folder", name);
		return false;
	}
	char *qs = db_quote_ident(conn, schema);
	char *sql = xasprintf("SELECT checksum, finished_at IS NOT NULL, rolled_back_at IS NOT NULL FROM %s._prisma_migrations "
	                      "WHERE %s ORDER BY started_at DESC LIMIT 1", qs,
	                      id ? "id OPERATOR(pg_catalog.=) $1" : "migration_name OPERATOR(pg_catalog.=) $1");
	free(qs);
	const char *params[1] = { id ? id : name };
	PGresult *res = db_exec(conn, sql, 1, params, NULL);
	free(sql);
	bool ok = false;
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		*why = xasprintf("its row in _prisma_migrations could not be read: %s",
		                 PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : "?");
	else if (PQntuples(res) == 0)
		*why = xasprintf("%s has no row in _prisma_migrations any more", name);
	else if (PQgetvalue(res, 0, 1)[0] != 't' || PQgetvalue(res, 0, 2)[0] == 't')
		*why = xasprintf("%s is no longer recorded as applied in _prisma_migrations", name);
	else if (!migrations_checksum_matches(local->sql, local->len, PQgetvalue(res, 0, 0)))
		*why = xasprintf("the migration.sql of %s has changed since it was applied", name);
	else
		ok = true;
	PQclear(res);
	return ok;
}

/* Whether the run froze the target with a read_only layer (its default_transaction_read_only is pgrunbook's). */
static bool
run_froze_read_only(const struct run_state *st)
{
	for (size_t i = 0; st && i < st->nrecords; i++)
		if (is_step(&st->records[i], "freeze") && jstr(st->records[i].data, "layer") &&
		    strcmp(jstr(st->records[i].data, "layer"), "read_only") == 0)
			return true;
	return false;
}

/* The CONNECT grants the run's block layer revoked ([{"grantee", "grantable"}]; caller decrefs). */
static json_t *
run_revoked_grants(const struct run_state *st)
{
	json_t *out = json_array();
	for (size_t i = 0; st && i < st->nrecords; i++) {
		const json_t *d = st->records[i].data;
		const json_t *undo = json_object_get(d, "undo");
		const char *method = jstr(undo, "method");
		if (!is_step(&st->records[i], "freeze") || jstr(d, "layer") == NULL || strcmp(jstr(d, "layer"), "block") != 0 ||
		    method == NULL || strcmp(method, "revoke") != 0 || json_array_size(out) > 0)
			continue;
		size_t k;
		json_t *g;
		json_array_foreach(json_object_get(undo, "grants"), k, g)
			if (jstr(g, "grantee"))
				json_array_append_new(out, json_pack("{s:s, s:b}", "grantee", jstr(g, "grantee"), "grantable",
				                                     json_is_true(json_object_get(g, "grantable"))));
	}
	return out;
}

/* The connection limit before the run's block layer, when its undo record names one. */
static bool
run_connlimit_before(const struct run_state *st, int64_t *out)
{
	for (size_t i = 0; st && i < st->nrecords; i++) {
		const json_t *d = st->records[i].data;
		if (!is_step(&st->records[i], "freeze") || jstr(d, "layer") == NULL || strcmp(jstr(d, "layer"), "block") != 0)
			continue;
		json_t *v = json_object_get(json_object_get(d, "undo"), "connection_limit");
		if (json_is_integer(v)) {
			*out = json_integer_value(v);
			return true;
		}
	}
	return false;
}

/* Whether a database of that name exists on the server; -1 when that cannot be read. */
static int
database_exists(PGconn *conn, const char *name)
{
	const char *params[1] = { name };
	PGresult *res = db_exec(conn, "SELECT 1 FROM pg_catalog.pg_database WHERE datname OPERATOR(pg_catalog.=) $1", 1,
	                        params, NULL);
	int n = PQresultStatus(res) == PGRES_TUPLES_OK ? (PQntuples(res) > 0) : -1;
	PQclear(res);
	return n;
}

/*
 * A swap left half done by an earlier rollback of db (killed between its two renames): the
 * newest journaled rollback step rename_old "done" from db with neither rename_new "done" nor
 * rename_back "done" after it in the same run, whose renamed database still exists. Called only
 * when no database is named db. Returns the sentence saying what to do (caller frees), naming
 * the exact statements; never NULL.
 */
static char *
half_done_swap(PGconn *conn, const char *db)
{
	struct run_state *runs = NULL;
	size_t n = 0;
	struct rb_error e = {0};
	char *failed = NULL, *copy = NULL, *run = NULL;
	if (journal_list_runs(NULL, &runs, &n, &e)) {
		for (size_t i = 0; i < n && failed == NULL; i++) {   /* newest first */
			const struct run_state *st = &runs[i];
			for (size_t k = st->nrecords; k-- > 0 && failed == NULL;) {
				const struct journal_record *r = &st->records[k];
				const char *stp = jstr(r->data, "step"), *state = jstr(r->data, "state");
				const char *from = jstr(r->data, "from"), *to = jstr(r->data, "to");
				if (!is_step(r, "rollback") || stp == NULL || state == NULL || strcmp(stp, "rename_old") != 0 ||
				    strcmp(state, "done") != 0 || from == NULL || to == NULL || strcmp(from, db) != 0)
					continue;
				bool finished = false;
				const char *newdb = NULL;
				for (size_t q = k + 1; q < st->nrecords; q++) {
					const struct journal_record *r2 = &st->records[q];
					const char *s2 = jstr(r2->data, "step"), *st2 = jstr(r2->data, "state");
					if (!is_step(r2, "rollback") || s2 == NULL || st2 == NULL)
						continue;
					if (strcmp(s2, "rename_new") == 0 && strcmp(st2, "started") == 0)
						newdb = jstr(r2->data, "from");
					if ((strcmp(s2, "rename_new") == 0 || strcmp(s2, "rename_back") == 0) && strcmp(st2, "done") == 0)
						finished = true;
				}
				if (finished || database_exists(conn, to) != 1)
					break;   /* this run's swap ended (or its database is gone): look at older runs */
				failed = xstrdup(to);
				copy = newdb && database_exists(conn, newdb) == 1 ? xstrdup(newdb) : NULL;
				run = xstrdup(st->id);
			}
		}
		for (size_t i = 0; i < n; i++)
			run_state_free(&runs[i]);
		free(runs);
	}
	rb_error_clear(&e);
	char *out;
	if (failed) {
		char *qf = db_quote_ident(conn, failed), *qd = db_quote_ident(conn, db);
		out = xasprintf("no database is named %s: the rollback run %s was stopped between its two renames, leaving "
		                "the original database as %s (connections blocked)%s%s%s. Put the original back first, then "
		                "run the rollback again: ALTER DATABASE %s RENAME TO %s; ALTER DATABASE %s ALLOW_CONNECTIONS "
		                "true", db, run, failed, copy ? " and its restored copy as " : "", copy ? copy : "",
		                copy ? " (drop it when done)" : "", qf, qd, qd);
		free(qf);
		free(qd);
	} else {
		out = xasprintf("no database is named %s on the server, and no interrupted rollback of it is journaled: "
		                "nothing can be rolled back until %s exists again", db, db);
	}
	free(failed);
	free(copy);
	free(run);
	return out;
}

/* lint codes whose statements lose data that down SQL cannot bring back */
static bool
loses_data(const char *code)
{
	static const char *const codes[] = { "PG101", "PG102", "PG103", "PG104", "PG106", "PG107", "PG203", NULL };
	for (int i = 0; code && codes[i]; i++)
		if (strcmp(code, codes[i]) == 0)
			return true;
	return false;
}

/*
 * The data-losing statements of the applied migrations, classified with the linter: "<migration>
 * (<summary>: <detail>[, ...])[; ...]", or NULL when none loses data. Caller frees.
 */
static char *
applied_data_loss(const struct mig_set *set, const json_t *migrations)
{
	struct strbuf sb = {0};
	size_t k;
	json_t *m;
	json_array_foreach(migrations, k, m) {
		const char *name = jstr(m, "name");
		for (size_t i = 0; i < set->n; i++) {
			if (strcmp(set->items[i].name, name) != 0)
				continue;
			struct lint_result lr;
			struct rb_error e = {0};
			lint_script(name, set->items[i].sql, &lr, &e);
			rb_error_clear(&e);
			size_t found = 0;
			for (size_t s = 0; s < lr.n_stmts; s++)
				for (size_t f = 0; f < lr.stmts[s].n_findings; f++) {
					const struct lint_finding *fd = &lr.stmts[s].findings[f];
					if (!loses_data(fd->rule->code))
						continue;
					if (found == 0)
						strbuf_addf(&sb, "%s%s (", sb.len ? "; " : "", name);
					strbuf_addf(&sb, "%s%s%s%s", found ? ", " : "", fd->rule->summary, fd->detail ? ": " : "",
					            fd->detail ? fd->detail : "");
					found++;
				}
			if (found)
				strbuf_adds(&sb, ")");
			lint_result_free(&lr);
		}
	}
	if (sb.len == 0) {
		strbuf_release(&sb);
		return NULL;
	}
	return strbuf_detach(&sb);
}

bool
rollback_choose(const struct plan *p, const struct run_state *st, const struct rollback_opts *o,
                const struct rb_ctx *ctx, struct rollback_choice *out, struct rb_error *err)
{
	memset(out, 0, sizeof *out);
	const char *env = o->env ? o->env : p->target;
	PGconn *admin = backup_connect_server(p, env, NULL, &out->database, err);
	if (admin == NULL)
		return false;
	if (database_exists(admin, out->database) == 0) {
		/* a swap left half done (a rollback killed between its renames) is put right first */
		out->path = ROLLBACK_NONE;
		out->why = half_done_swap(admin, out->database);
		out->migrations = json_array();
		out->revoked_grants = json_array();
		out->run_id = st && st->id ? xstrdup(st->id) : NULL;
		PQfinish(admin);
		return true;
	}
	backup_warn_leftovers(admin, ctx ? ctx->bus : NULL, STAGE, out->database, "_rollback_", "[0-9]{8}T[0-9]{6}",
	               "rollback (killed, or its swap failed)");
	PQfinish(admin);
	out->migrations = run_applied_migrations(st);
	out->synced = run_synced(st);
	out->froze_read_only = run_froze_read_only(st);
	out->connlimit_known = run_connlimit_before(st, &out->connlimit_before);
	out->revoked_grants = run_revoked_grants(st);
	out->run_id = st && st->id ? xstrdup(st->id) : NULL;
	out->restore_thaws = json_array();
	if (st) {
		json_t *pending = maint_pending_undo(st);
		size_t pi;
		json_t *rec;
		json_array_foreach(pending, pi, rec) {
			const char *layer = jstr(rec, "layer"), *rdb = jstr(rec, "database");
			if (layer && (strcmp(layer, "marker") == 0 || strcmp(layer, "read_only") == 0 ||
			              strcmp(layer, "block") == 0) && (rdb == NULL || strcmp(rdb, out->database) == 0))
				json_array_append(out->restore_thaws, rec);
		}
		json_decref(pending);
	}
	size_t napplied = json_array_size(out->migrations);

	/* down SQL: every applied migration has one, nothing synced, every row still as applied */
	char *no_down = NULL;   /* why down SQL does not do */
	struct mig_set set = {0};
	if (napplied == 0) {
		no_down = xstrdup(st ? "the run applied no migration" : "no run was given");
	} else if (!p->migrations.present) {
		no_down = xstrdup("the plan has no migrations section");
	} else {
		char *dir = plan_path(p, p->migrations.dir);
		struct rb_error e = {0};
		if (!migrations_load(dir, &set, &e))
			no_down = xasprintf("the migrations folder cannot be read: %s", e.message);
		rb_error_clear(&e);
		free(dir);
	}
	struct strbuf missing = {0};
	size_t k;
	json_t *m;
	json_array_foreach(out->migrations, k, m) {
		char *down = no_down ? NULL : down_sql_path(&set, jstr(m, "name"));
		json_object_set_new(m, "down_sql", down ? json_string(down) : json_null());
		if (down == NULL && no_down == NULL)
			strbuf_addf(&missing, "%s%s", missing.len ? ", " : "", jstr(m, "name"));
		free(down);
	}
	if (no_down == NULL && missing.len)
		no_down = xasprintf("%s %s no down.sql", missing.buf, strchr(missing.buf, ',') ? "have" : "has");
	/* statements that lose data: down SQL recreates the objects, not their data */
	char *loss = no_down == NULL ? applied_data_loss(&set, out->migrations) : NULL;
	if (no_down == NULL && out->synced)
		no_down = xstrdup("the run also wrote data with sync apply, which down SQL does not undo");
	if (no_down == NULL && o->force_restore)
		no_down = xstrdup("a restore was asked for (--restore)");
	if (no_down == NULL) {
		PGconn *conn = db_connect(p, env, err);
		if (conn == NULL) {
			strbuf_release(&missing);
			migrations_free(&set);
			free(loss);
			return false;
		}
		json_array_foreach(out->migrations, k, m) {
			if (no_down == NULL && !still_applied(conn, p->migrations.schema, &set, m, &no_down))
				break;
		}
		PQfinish(conn);
	}
	strbuf_release(&missing);
	migrations_free(&set);

	if (no_down == NULL && loss) {
		/* the down scripts would bring the schema back but not the data: restore when a backup proves good */
		const char *bk = o->backup ? o->backup : run_backup(st);
		struct backup_result lbr;
		memset(&lbr, 0, sizeof lbr);
		struct rb_error le = {0};
		bool good = bk && backup_check(p, env, bk, &lbr, &le);
		if (bk && le.code == RB_EXIT_CONNECT) {
			*err = le;
			backup_result_free(&lbr);
			free(loss);
			return false;
		}
		if (good) {
			no_down = xasprintf("the run's migrations lose data their down.sql cannot bring back: %s", loss);
		} else {
			out->path = ROLLBACK_DOWN_SQL;
			out->phrase = confirm_phrase("rollback", out->database);
			out->why = xasprintf("every migration this run applied (%zu) has a down.sql and is still recorded as "
			                     "applied, but no verified backup is known (%s), so down SQL is the only way back. "
			                     "It restores the schema, not the data these statements removed, which stays lost: %s",
			                     napplied, bk ? le.message : "the run took none and --backup was not given", loss);
			rb_error_clear(&le);
			backup_result_free(&lbr);
			free(loss);
			return true;
		}
		rb_error_clear(&le);
		backup_result_free(&lbr);
	}
	free(loss);
	if (no_down == NULL) {
		out->path = ROLLBACK_DOWN_SQL;
		out->phrase = confirm_phrase("rollback", out->database);
		out->why = xasprintf("every migration this run applied (%zu) has a down.sql, is still recorded as applied "
		                     "with the checksum of its file, none of their statements loses data, and the run "
		                     "synced no data: running the down scripts in reverse order undoes exactly the run's "
		                     "changes without losing later writes", napplied);
		return true;
	}

	bool anything = napplied > 0 || out->synced || o->backup != NULL;
	if (!anything) {
		out->path = ROLLBACK_NONE;
		out->why = xstrdup(st ? "nothing to roll back: the run applied no migration and synced no data" :
		                   "nothing to roll back: no run of this plan applied migrations or synced data (give "
		                   "--run, or --backup to restore a backup anyway)");
		free(no_down);
		return true;
	}
	const char *backup = o->backup ? o->backup : run_backup(st);
	if (backup == NULL) {
		out->path = ROLLBACK_NONE;
		out->why = xasprintf("down SQL does not do (%s) and no verified backup is known for a restore: the run took "
		                     "none and --backup was not given", no_down);
		free(no_down);
		return true;
	}
	struct backup_result br;
	struct rb_error e = {0};
	if (!backup_check(p, env, backup, &br, &e)) {
		if (e.code == RB_EXIT_CONNECT) {
			*err = e;
			backup_result_free(&br);
			free(no_down);
			return false;
		}
		out->path = ROLLBACK_NONE;
		out->why = xasprintf("down SQL does not do (%s) and the backup %s cannot be restored: %s%s%s", no_down, backup,
		                     e.message, e.detail ? " " : "", e.detail ? e.detail : "");
		rb_error_clear(&e);
		backup_result_free(&br);
		free(no_down);
		return true;
	}
	const char *finished = jstr(br.manifest, "finished");
	long long fin_ms = 0, lra_ms = 0, lrb_ms = 0;
	bool undone_by_restore = o->last_restore_at && o->last_restore_backup_finished &&
	                         time_parse_rfc3339(finished, &fin_ms) && time_parse_rfc3339(o->last_restore_at, &lra_ms) &&
	                         time_parse_rfc3339(o->last_restore_backup_finished, &lrb_ms) && fin_ms >= lrb_ms &&
	                         fin_ms < lra_ms && !(o->last_restore_backup && strcmp(o->last_restore_backup, br.path) == 0);
	if (undone_by_restore && o->backup == NULL) {
		out->path = ROLLBACK_NONE;
		out->why = xasprintf("the backup %s (finished %s) holds changes the restore of %s rolled back (it restored a "
		                     "backup finished %s): restoring it would bring them back. Give it with --backup to "
		                     "restore it anyway", br.path, finished, o->last_restore_at,
		                     o->last_restore_backup_finished);
		backup_result_free(&br);
		free(no_down);
		return true;
	}
	out->backup_finished = finished ? xstrdup(finished) : NULL;
	out->path = ROLLBACK_RESTORE;
	out->backup = xstrdup(br.path);
	out->phrase = confirm_phrase("restore", out->database);
	out->why = xasprintf("down SQL does not do: %s. Restoring the verified backup %s (finished %s%s) brings %s back "
	                     "to that moment; everything written to %s after it is lost (it stays readable in the "
	                     "failed database, which is kept)", no_down, br.path, finished ? finished : "?",
	                     o->backup ? ", given with --backup" : ", the run's", out->database, out->database);
	if (undone_by_restore) {
		char *w = xasprintf("%s. Warning: this backup holds changes the restore of %s rolled back (it restored a "
		                    "backup finished %s); restoring it brings them back", out->why, o->last_restore_at,
		                    o->last_restore_backup_finished);
		free(out->why);
		out->why = w;
	}
	backup_result_free(&br);
	free(no_down);
	return true;
}

/* --- doing it --- */

struct rb_run {
	const struct plan   *p;
	const struct rollback_opts *o;
	struct rb_ctx       *ctx;
	const char          *env;
	const char          *db;
	json_t              *steps;   /* [{"step", "state", "detail"}] */
	int64_t              wait_ms;
};

/* Journals a step of the rollback and records it in the result. */
static void
step(struct rb_run *r, const char *name, const char *state, json_t *fields, const char *fmt, ...) RB_PRINTF(5, 6);

static void
step(struct rb_run *r, const char *name, const char *state, json_t *fields, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *msg = xvasprintf(fmt, ap);
	va_end(ap);
	json_t *data = fields ? fields : json_object();
	json_object_set_new(data, "kind", json_string("rollback"));
	json_object_set_new(data, "step", json_string(name));
	json_object_set_new(data, "state", json_string(state));
	json_object_set_new(data, "database", json_string(r->db));
	events_emitf(r->ctx->bus, EV_STEP, STAGE, data, "%s: %s", name, msg);
	json_decref(data);
	if (strcmp(state, "started") != 0)
		json_array_append_new(r->steps, json_pack("{s:s, s:s, s:s}", "step", name, "state", state, "detail", msg));
	free(msg);
}

static void
sleep_ms(int64_t ms, const struct rb_ctx *ctx)
{
	while (ms > 0 && !rb_ctx_cancelled(ctx)) {
		int64_t n = ms > 100 ? 100 : ms;
		struct timespec ts = { 0, (long)n * 1000000L };
		nanosleep(&ts, NULL);
		ms -= n;
	}
}

/* down SQL of one migration with its rolled_back_at, in one transaction, retried on lock timeouts. */
static bool
down_one(struct rb_run *r, PGconn *conn, const json_t *m, struct rb_error *err)
{
	const char *name = jstr(m, "name"), *id = jstr(m, "id"), *path = jstr(m, "down_sql");
	size_t len = 0;
	char *sql = file_read_all(path, &len);
	if (sql == NULL)
		return rb_error_setc(err, RB_EXIT_STEP, "could not read %s: %s", path, strerror(errno));
	char *qs = db_quote_ident(conn, r->p->migrations.schema);
	char *mark = xasprintf("UPDATE %s._prisma_migrations SET rolled_back_at = pg_catalog.now() WHERE %s "
	                       "AND finished_at IS NOT NULL AND rolled_back_at IS NULL", qs,
	                       id ? "id OPERATOR(pg_catalog.=) $1" : "migration_name OPERATOR(pg_catalog.=) $1");
	char lt[32];
	snprintf(lt, sizeof lt, "%" PRId64, r->p->migrations.lock_timeout_ms);
	const char *sp[2] = { r->p->migrations.schema, lt };
	const char *mp[1] = { id ? id : name };
	bool ok = false;
	int retries = r->p->migrations.retries;
	for (int attempt = 0;; attempt++) {
		rb_error_clear(err);
		ok = db_run(conn, "BEGIN", 0, NULL, r->ctx, err) &&
		     db_run(conn, "SELECT pg_catalog.set_config('search_path', $1, true), "
		            "pg_catalog.set_config('lock_timeout', $2, true)", 2, sp, r->ctx, err) &&
		     db_run(conn, sql, 0, NULL, r->ctx, err);
		if (ok) {
			PGresult *res = db_exec(conn, mark, 1, mp, r->ctx);
			if (PQresultStatus(res) != PGRES_COMMAND_OK) {
				db_error_from_result(err, res, RB_EXIT_STEP);
				ok = false;
			} else if (strcmp(PQcmdTuples(res), "1") != 0) {
				ok = rb_error_setc(err, RB_EXIT_STEP, "%s is no longer recorded as applied in _prisma_migrations", name);
			}
			PQclear(res);
		}
		if (ok)
			ok = db_run(conn, "COMMIT", 0, NULL, r->ctx, err);
		if (ok)
			break;
		db_run(conn, "ROLLBACK", 0, NULL, NULL, NULL);
		bool lock = err->sqlstate[0] && strcmp(err->sqlstate, "55P03") == 0;
		if (!lock || attempt >= retries || rb_ctx_cancelled(r->ctx))
			break;
		int64_t wait = (int64_t)1000 << (attempt < 4 ? attempt : 4);
		step(r, "down_sql", "lock_timeout", json_pack("{s:s, s:i, s:I}", "migration", name, "attempt", attempt + 1,
		     "retry_in_ms", (json_int_t)wait), "%s: lock timeout (attempt %d of %d), trying again in %" PRId64 " s",
		     name, attempt + 1, retries + 1, wait / 1000);
		sleep_ms(wait, r->ctx);
	}
	free(mark);
	free(qs);
	free(sql);
	return ok;
}

static bool
run_down_sql(struct rb_run *r, const struct rollback_choice *c, json_t *result, struct rb_error *err)
{
	PGconn *conn = db_connect_ctx(r->p, r->env, r->ctx, err);
	if (conn == NULL)
		return false;
	size_t n = json_array_size(c->migrations), undone = 0;
	bool ok = true;
	for (size_t i = n; ok && i-- > 0;) {
		const json_t *m = json_array_get(c->migrations, i);
		const char *name = jstr(m, "name");
		step(r, "down_sql", "started", json_pack("{s:s, s:s}", "migration", name, "path", jstr(m, "down_sql")),
		     "running the down.sql of %s", name);
		ok = down_one(r, conn, m, err);
		if (ok) {
			undone++;
			step(r, "down_sql", "done", json_pack("{s:s}", "migration", name),
			     "%s undone; its _prisma_migrations row is marked rolled back", name);
		} else {
			step(r, "down_sql", "failed", json_pack("{s:s, s:s}", "migration", name, "error", err->message),
			     "%s: %s (rolled back, nothing of it changed)", name, err->message);
			rb_error_prefix(err, "the down.sql of %s failed", name);
		}
	}
	PQfinish(conn);
	char *state = ok ? xasprintf("%s is back to its schema before the run: %zu migration%s undone and pending again",
	                             r->db, undone, undone == 1 ? "" : "s")
	                 : xasprintf("%zu of %zu migrations undone (the newest first); the failed one and those older "
	                             "than it are still applied on %s", undone, n, r->db);
	json_object_set_new(result, "state", json_string(state));
	if (!ok)
		rb_error_detail(err, "%c%s.", state[0], state + 1);
	free(state);
	return ok;
}

/* "<db><suffix><yyyymmddThhmmss>" within 63 bytes. Caller frees. */
static char *
stamped_name(const char *db, const char *suffix, const char *ts)
{
	size_t max = 63 - strlen(suffix) - strlen(ts), len = strlen(db);
	if (len > max) {
		len = max;
		while (len > 0 && ((unsigned char)db[len] & 0xC0) == 0x80)
			len--;
	}
	return xasprintf("%.*s%s%s", (int)len, db, suffix, ts);
}

static bool
admin_run(struct rb_run *r, PGconn *conn, const char *sql, struct rb_error *err)
{
	return db_run(conn, sql, 0, NULL, r->ctx, err);
}

/* GUCs whose values are lists of quoted items: copied with SET ... FROM CURRENT (see copy_settings). */
static bool
list_guc(const char *name)
{
	static const char *const names[] = { "search_path", "temp_tablespaces", "session_preload_libraries",
	                                      "local_preload_libraries", "shared_preload_libraries", NULL };
	for (int i = 0; names[i]; i++)
		if (strcasecmp(name, names[i]) == 0)
			return true;
	return false;
}

/*
 * Step 2: the target's database-level properties onto the new database: owner, grants,
 * connection limit, ALTER DATABASE SET and ALTER ROLE .. IN DATABASE SET settings, comment.
 * A setting of a list GUC is set in this transaction with set_config() and stored with SET ..
 * FROM CURRENT, so its stored text is exactly what the server made of the original (a quoted
 * literal would turn "a, b" into one item); every other value is stored as a literal.
 */
static bool
copy_settings(struct rb_run *r, PGconn *conn, const struct rollback_choice *c, const char *newdb,
              struct rb_error *err)
{
	const char *params[1] = { r->db };
	PGresult *res = db_exec(conn,
		"SELECT pg_catalog.pg_get_userbyid(d.datdba), d.datconnlimit, d.datacl IS NULL, "
		"pg_catalog.shobj_description(d.oid, 'pg_database') FROM pg_catalog.pg_database d "
		"WHERE d.datname OPERATOR(pg_catalog.=) $1", 1, params, r->ctx);
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
		if (PQresultStatus(res) != PGRES_TUPLES_OK)
			db_error_from_result(err, res, RB_EXIT_STEP);
		else
			rb_error_setc(err, RB_EXIT_STEP, "database %s does not exist", r->db);
		PQclear(res);
		return false;
	}
	char *owner = xstrdup(PQgetvalue(res, 0, 0));
	int64_t connlimit = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
	bool default_acl = PQgetvalue(res, 0, 2)[0] == 't';
	char *comment = PQgetisnull(res, 0, 3) ? NULL : xstrdup(PQgetvalue(res, 0, 3));
	PQclear(res);
	if (c->connlimit_known)
		connlimit = c->connlimit_before;
	bool skip_ro = c->froze_read_only;

	struct strbuf sql = {0};
	char *qn = db_quote_ident(conn, newdb), *qo = db_quote_ident(conn, owner);
	strbuf_addf(&sql, "BEGIN;\nALTER DATABASE %s OWNER TO %s;\nALTER DATABASE %s CONNECTION LIMIT %" PRId64 ";\n", qn,
	            qo, qn, connlimit);
	if (!default_acl) {
		strbuf_addf(&sql, "REVOKE ALL ON DATABASE %s FROM PUBLIC;\nREVOKE ALL ON DATABASE %s FROM %s;\n", qn, qn, qo);
		res = db_exec(conn, "SELECT CASE WHEN a.grantee OPERATOR(pg_catalog.=) 0 THEN 'PUBLIC' ELSE "
		              "pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(a.grantee)) END, a.privilege_type, "
		              "a.is_grantable FROM pg_catalog.pg_database d, "
		              "LATERAL pg_catalog.aclexplode(d.datacl) a WHERE d.datname OPERATOR(pg_catalog.=) $1", 1,
		              params, r->ctx);
		if (PQresultStatus(res) != PGRES_TUPLES_OK) {
			db_error_from_result(err, res, RB_EXIT_STEP);
			PQclear(res);
			goto fail;
		}
		for (int i = 0; i < PQntuples(res); i++)
			strbuf_addf(&sql, "GRANT %s ON DATABASE %s TO %s%s;\n", PQgetvalue(res, i, 1), qn, PQgetvalue(res, i, 0),
			            PQgetvalue(res, i, 2)[0] == 't' ? " WITH GRANT OPTION" : "");
		PQclear(res);
	}
	size_t gi;
	json_t *g;
	json_array_foreach(c->revoked_grants, gi, g) {  /* what the run's freeze revoked, as before it */
		const char *grantee = jstr(g, "grantee");
		char *q = strcmp(grantee, "PUBLIC") == 0 ? xstrdup("PUBLIC") : db_quote_ident(conn, grantee);
		strbuf_addf(&sql, "GRANT CONNECT ON DATABASE %s TO %s%s;\n", qn, q,
		            json_is_true(json_object_get(g, "grantable")) ? " WITH GRANT OPTION" : "");
		free(q);
	}
	if (comment) {
		char *lit = PQescapeLiteral(conn, comment, strlen(comment));
		strbuf_addf(&sql, "COMMENT ON DATABASE %s IS %s;\n", qn, lit ? lit : "NULL");
		PQfreemem(lit);
	}
	res = db_exec(conn, "SELECT CASE WHEN s.setrole OPERATOR(pg_catalog.=) 0 THEN NULL ELSE "
	              "pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(s.setrole)) END, c.cfg "
	              "FROM pg_catalog.pg_db_role_setting s JOIN pg_catalog.pg_database d ON d.oid OPERATOR(pg_catalog.=) "
	              "s.setdatabase, LATERAL pg_catalog.unnest(s.setconfig) c(cfg) "
	              "WHERE d.datname OPERATOR(pg_catalog.=) $1", 1, params, r->ctx);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		db_error_from_result(err, res, RB_EXIT_STEP);
		PQclear(res);
		goto fail;
	}
	int nset = 0;
	for (int i = 0; i < PQntuples(res); i++) {
		const char *cfg = PQgetvalue(res, i, 1);
		const char *eq = strchr(cfg, '=');
		if (eq == NULL)
			continue;
		char *name = xstrndup(cfg, (size_t)(eq - cfg));
		const char *value = eq + 1;
		bool db_level = PQgetisnull(res, i, 0);
		if (db_level && (strcmp(name, "pgrunbook.frozen_by") == 0 ||
		                 (skip_ro && strcmp(name, "default_transaction_read_only") == 0))) {
			free(name);
			continue;
		}
		char *qname = db_quote_ident(conn, name);
		char *target = db_level ? xasprintf("DATABASE %s", qn) : xasprintf("ROLE %s IN DATABASE %s",
		                                                                  PQgetvalue(res, i, 0), qn);
		char *lv = PQescapeLiteral(conn, value, strlen(value));
		if (list_guc(name)) {
			char *ln = PQescapeLiteral(conn, name, strlen(name));
			strbuf_addf(&sql, "SELECT pg_catalog.set_config(%s, %s, true);\nALTER %s SET %s FROM CURRENT;\n", ln,
			            lv ? lv : "''", target, qname);
			PQfreemem(ln);
		} else {
			strbuf_addf(&sql, "ALTER %s SET %s TO %s;\n", target, qname, lv ? lv : "''");
		}
		PQfreemem(lv);
		free(target);
		free(qname);
		free(name);
		nset++;
	}
	PQclear(res);
	strbuf_adds(&sql, "COMMIT");
	bool ok = admin_run(r, conn, sql.buf, err);
	if (!ok)
		db_run(conn, "ROLLBACK", 0, NULL, NULL, NULL);
	else
		step(r, "settings", "done", json_pack("{s:s, s:s, s:I, s:i, s:b}", "restored", newdb, "owner", owner,
		     "connection_limit", (json_int_t)connlimit, "settings", nset, "grants_copied", !default_acl),
		     "owner %s, %s, connection limit %" PRId64 ", %d setting%s%s copied to %s", owner,
		     default_acl ? "default privileges" : "grants", connlimit, nset, nset == 1 ? "" : "s",
		     comment ? ", comment" : "", newdb);
	strbuf_release(&sql);
	free(qn);
	free(qo);
	free(owner);
	free(comment);
	return ok;
fail:
	strbuf_release(&sql);
	free(qn);
	free(qo);
	free(owner);
	free(comment);
	return false;
}

/* Sessions still connected to db (not this one). */
static int
sessions_on(PGconn *conn, const char *db)
{
	const char *params[1] = { db };
	PGresult *res = db_exec(conn, "SELECT pg_catalog.count(*) FROM pg_catalog.pg_stat_activity WHERE datname "
	                        "OPERATOR(pg_catalog.=) $1 AND pid OPERATOR(pg_catalog.<>) pg_catalog.pg_backend_pid()",
	                        1, params, NULL);
	int n = PQresultStatus(res) == PGRES_TUPLES_OK ? atoi(PQgetvalue(res, 0, 0)) : -1;
	PQclear(res);
	return n;
}

/*
 * Who keeps db from being renamed: sessions holding a lock on the database object
 * (pg_locks.locktype 'object', classid pg_database: COMMENT ON DATABASE or the like in an open
 * transaction elsewhere) and sessions still connected to it. [{"pid", "user", "database",
 * "application", "state", "query", "lock_mode"|null}]; caller decrefs.
 */
static json_t *
rename_blockers(PGconn *conn, const char *db)
{
	const char *params[1] = { db };
	PGresult *res = db_exec(conn,
		"SELECT a.pid, a.usename, a.datname, a.application_name, a.state, pg_catalog.\"left\"(a.query, 200), l.mode "
		"FROM pg_catalog.pg_locks l JOIN pg_catalog.pg_stat_activity a ON a.pid OPERATOR(pg_catalog.=) l.pid "
		"JOIN pg_catalog.pg_database d ON d.oid OPERATOR(pg_catalog.=) l.objid "
		"WHERE l.locktype OPERATOR(pg_catalog.=) 'object' AND l.granted "
		"AND l.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_database'::pg_catalog.regclass "
		"AND d.datname OPERATOR(pg_catalog.=) $1 AND a.pid OPERATOR(pg_catalog.<>) pg_catalog.pg_backend_pid() "
		"UNION ALL "
		"SELECT a.pid, a.usename, a.datname, a.application_name, a.state, pg_catalog.\"left\"(a.query, 200), NULL "
		"FROM pg_catalog.pg_stat_activity a WHERE a.datname OPERATOR(pg_catalog.=) $1 "
		"AND a.pid OPERATOR(pg_catalog.<>) pg_catalog.pg_backend_pid() ORDER BY 1",
		1, params, NULL);
	json_t *list = json_array();
	for (int i = 0; PQresultStatus(res) == PGRES_TUPLES_OK && i < PQntuples(res); i++) {
		const char *q = PQgetvalue(res, i, 5);
		bool secret = strcasestr(q, "password") != NULL;
		json_array_append_new(list, json_pack("{s:i, s:s, s:s?, s:s, s:s, s:s, s:s?}", "pid",
		                      atoi(PQgetvalue(res, i, 0)), "user", PQgetvalue(res, i, 1),
		                      "database", PQgetisnull(res, i, 2) ? NULL : PQgetvalue(res, i, 2), "application",
		                      PQgetvalue(res, i, 3), "state", PQgetvalue(res, i, 4), "query",
		                      secret ? "(hidden: it mentions a password)" : q, "lock_mode",
		                      PQgetisnull(res, i, 6) ? NULL : PQgetvalue(res, i, 6)));
	}
	PQclear(res);
	return list;
}

static char *
blockers_text(const json_t *list)
{
	struct strbuf sb = {0};
	size_t i;
	json_t *b;
	json_array_foreach(list, i, b) {
		const char *mode = jstr(b, "lock_mode"), *db = jstr(b, "database");
		if (mode)
			strbuf_addf(&sb, "%spid %" JSON_INTEGER_FORMAT " holds %s on the database (user %s, connected to %s, "
			            "%s, query: %s)", i ? "; " : "", json_integer_value(json_object_get(b, "pid")), mode,
			            jstr(b, "user"), db ? db : "no database", jstr(b, "state"), jstr(b, "query"));
		else
			strbuf_addf(&sb, "%spid %" JSON_INTEGER_FORMAT " is still connected to it (user %s, %s, query: %s)",
			            i ? "; " : "", json_integer_value(json_object_get(b, "pid")), jstr(b, "user"),
			            jstr(b, "state"), jstr(b, "query"));
	}
	return strbuf_detach(&sb);
}

static bool
set_allow(struct rb_run *r, PGconn *conn, const char *db, bool allow, struct rb_error *err)
{
	char *q = db_quote_ident(conn, db);
	char *sql = xasprintf("ALTER DATABASE %s ALLOW_CONNECTIONS %s", q, allow ? "true" : "false");
	/* allowing connections again is recovery: it must run even after a cancel (Ctrl-C) */
	bool ok = allow ? db_run(conn, sql, 0, NULL, NULL, err) : admin_run(r, conn, sql, err);
	free(sql);
	free(q);
	return ok;
}

static bool
rename_db(struct rb_run *r, PGconn *conn, const char *from, const char *to, bool recovery, struct rb_error *err)
{
	char *qf = db_quote_ident(conn, from), *qt = db_quote_ident(conn, to);
	char *sql = xasprintf("ALTER DATABASE %s RENAME TO %s", qf, qt);
	/* a recovery statement (the rename back) runs with no ctx: a cancel must not stop it */
	bool ok = recovery ? db_run(conn, sql, 0, NULL, NULL, err) : admin_run(r, conn, sql, err);
	free(sql);
	free(qf);
	free(qt);
	return ok;
}

/* Sets result's "state" and, on failure, err's detail to the same sentence. */
static void
set_state(json_t *result, struct rb_error *err, bool ok, const char *fmt, ...) RB_PRINTF(4, 5);

static void
set_state(json_t *result, struct rb_error *err, bool ok, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *s = xvasprintf(fmt, ap);
	va_end(ap);
	json_object_set_new(result, "state", json_string(s));
	if (!ok && err)
		rb_error_detail(err, "%s", s);
	free(s);
}

static bool
run_restore(struct rb_run *r, const struct rollback_choice *c, json_t *result, struct rb_error *err)
{
	const char *db = r->db;
	PGconn *admin = backup_connect_server(r->p, r->env, NULL, NULL, err);
	if (admin == NULL) {
		set_state(result, err, false, "Nothing was changed: %s is untouched.", db);
		return false;
	}
	/* no statement about the databases waits longer than lock_wait for a lock */
	char lt[32];
	snprintf(lt, sizeof lt, "%" PRId64, r->wait_ms);
	const char *ltp[1] = { lt };
	if (!db_run(admin, "SELECT pg_catalog.set_config('lock_timeout', $1, false)", 1, ltp, r->ctx, err)) {
		set_state(result, err, false, "Nothing was changed: %s is untouched.", db);
		PQfinish(admin);
		return false;
	}
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	char ts[32];
	strftime(ts, sizeof ts, "%Y%m%dT%H%M%S", &tm);
	char *newdb = stamped_name(db, "_rollback_", ts);
	char *faildb = stamped_name(db, "_failed_", ts);
	json_object_set_new(result, "restored_database", json_string(newdb));
	json_object_set_new(result, "restored_from", json_string(c->backup));
	bool ok = false;
	struct rb_error e = {0};

	/* 1. restore */
	step(r, "restore", "started", json_pack("{s:s, s:s}", "restored", newdb, "backup", c->backup),
	     "restoring %s into the new database %s", c->backup, newdb);
	struct backup_restore_opts bo = { .env = r->env, .dbname = newdb, .no_owner = false, .stage = STAGE };
	json_t *counts = NULL;
	if (!backup_restore(r->p, c->backup, &bo, r->ctx, &counts, err)) {
		step(r, "restore", "failed", json_pack("{s:s, s:s}", "restored", newdb, "error", err->message), "%s",
		     err->message);
		if (database_exists(admin, db) == 1)
			set_state(result, err, false, "Nothing was changed: %s is untouched; the partly restored %s was "
			          "dropped.", db, newdb);
		else
			set_state(result, err, false, "No database is named %s on the server (it was missing before this "
			          "rollback started); nothing else was changed.", db);
		goto out;
	}
	step(r, "restore", "done", json_pack("{s:s, s:i}", "restored", newdb, "tables", (int)json_object_size(counts)),
	     "%s restored into %s, the row counts of all %zu tables equal the backup's", c->backup, newdb,
	     json_object_size(counts));
	json_decref(counts);

	/* 2. settings */
	step(r, "settings", "started", json_pack("{s:s}", "restored", newdb),
	     "copying the database-level properties of %s to %s", db, newdb);
	if (!copy_settings(r, admin, c, newdb, err)) {
		step(r, "settings", "failed", json_pack("{s:s}", "error", err->message), "%s", err->message);
		set_state(result, err, false, "%s is untouched. The restored copy is kept as %s (drop it, or run the "
		          "rollback again).", db, newdb);
		goto out;
	}

	/* 3. block: not after a cancel (nothing of the target changed yet) */
	if (rb_ctx_cancelled(r->ctx)) {
		rb_error_setc(err, RB_EXIT_STEP, "cancelled before the swap");
		step(r, "block", "failed", json_pack("{s:s}", "error", err->message), "%s", err->message);
		set_state(result, err, false, "%s is untouched. The restored copy is kept as %s (drop it, or run the "
		          "rollback again).", db, newdb);
		goto out;
	}
	step(r, "block", "started", json_pack("{s:{s:b}}", "undo", "allow_connections", true),
	     "ALTER DATABASE %s ALLOW_CONNECTIONS false", db);
	if (!set_allow(r, admin, db, false, err)) {
		step(r, "block", "failed", json_pack("{s:s}", "error", err->message), "%s", err->message);
		set_state(result, err, false, "%s is untouched and accepts connections. The restored copy is kept as %s.",
		          db, newdb);
		goto out;
	}
	step(r, "block", "done", NULL, "new connections to %s are refused", db);

	/* 4. terminate */
	step(r, "terminate", "started", NULL, "terminating the sessions on %s", db);
	const char *params[1] = { db };
	PGresult *res = db_exec(admin, "SELECT pg_catalog.count(*) FILTER (WHERE pg_catalog.pg_terminate_backend(pid)) "
	                        "FROM pg_catalog.pg_stat_activity WHERE datname OPERATOR(pg_catalog.=) $1 "
	                        "AND pid OPERATOR(pg_catalog.<>) pg_catalog.pg_backend_pid()", 1, params, r->ctx);
	int terminated = PQresultStatus(res) == PGRES_TUPLES_OK ? atoi(PQgetvalue(res, 0, 0)) : 0;
	PQclear(res);
	long long t0 = time_monotonic_ms();
	int left = sessions_on(admin, db);
	while (left > 0 && time_monotonic_ms() - t0 < r->wait_ms && !rb_ctx_cancelled(r->ctx)) {
		sleep_ms(100, r->ctx);
		left = sessions_on(admin, db);
	}
	step(r, "terminate", "done", json_pack("{s:i, s:i}", "terminated", terminated, "left", left),
	     "%d session%s terminated, %d left", terminated, terminated == 1 ? "" : "s", left);

	/* 5. rename_old */
	step(r, "rename_old", "started", json_pack("{s:s, s:s}", "from", db, "to", faildb),
	     "ALTER DATABASE %s RENAME TO %s (lock_timeout %" PRId64 " ms)", db, faildb, r->wait_ms);
	if (!rename_db(r, admin, db, faildb, false, err)) {
		json_t *blockers = rename_blockers(admin, db);
		char *who = blockers_text(blockers);
		step(r, "rename_old", "failed", json_pack("{s:s, s:O}", "error", err->message, "blockers", blockers),
		     "%s%s%s", err->message, *who ? "; " : "", who);
		json_object_set_new(result, "blockers", blockers);
		rb_error_prefix(err, "could not rename %s to %s", db, faildb);
		step(r, "reopen", "started", NULL, "ALTER DATABASE %s ALLOW_CONNECTIONS true", db);
		bool back = set_allow(r, admin, db, true, &e);
		step(r, "reopen", back ? "done" : "failed", NULL, "%s", back ? "connections allowed again" : e.message);
		if (*who)
			rb_error_hint(err, "Blocking the rename: %s. End that session or its transaction, then run the "
			              "rollback again.", who);
		set_state(result, err, false, "Nothing was renamed: %s is intact under its own name%s. The restored copy "
		          "is kept as %s for inspection: drop it when done (running the rollback again restores a fresh copy).", db,
		          back ? " and accepts connections again" : ", but its connections are still blocked "
		          "(ALTER DATABASE ... ALLOW_CONNECTIONS true failed)", newdb);
		free(who);
		goto out;
	}
	step(r, "rename_old", "done", json_pack("{s:s, s:s}", "from", db, "to", faildb), "%s is now %s", db, faildb);
	json_object_set_new(result, "failed_database", json_string(faildb));

	/* 6. rename_new */
	step(r, "rename_new", "started", json_pack("{s:s, s:s}", "from", newdb, "to", db),
	     "ALTER DATABASE %s RENAME TO %s", newdb, db);
	if (!rename_db(r, admin, newdb, db, false, err)) {
		step(r, "rename_new", "failed", json_pack("{s:s}", "error", err->message), "%s", err->message);
		rb_error_prefix(err, "could not rename %s to %s", newdb, db);
		step(r, "rename_back", "started", json_pack("{s:s, s:s}", "from", faildb, "to", db),
		     "ALTER DATABASE %s RENAME TO %s", faildb, db);
		bool back = rename_db(r, admin, faildb, db, true, &e);
		step(r, "rename_back", back ? "done" : "failed", NULL, "%s", back ? "the original name is back" : e.message);
		if (back) {
			bool open = set_allow(r, admin, db, true, NULL);
			json_object_set_new(result, "failed_database", json_null());
			set_state(result, err, false, "%s is the original database again, under its own name%s. The restored "
			          "copy is kept as %s.", db, open ? ", accepting connections" : " (connections still blocked)",
			          newdb);
		} else {
			set_state(result, err, false, "No database is named %s now: the original is %s (connections blocked) "
			          "and the restored copy is %s. Rename one of them to %s by hand (ALTER DATABASE ... RENAME "
			          "TO %s).", db, faildb, newdb, db, db);
		}
		goto out;
	}
	step(r, "rename_new", "done", json_pack("{s:s, s:s}", "from", newdb, "to", db), "%s is now %s", newdb, db);
	/* the run's freeze layers stayed with the failed database: journaled as thawed for the target */
	size_t ti;
	json_t *fr;
	json_array_foreach(c->restore_thaws, ti, fr) {
		json_t *d = json_pack("{s:s, s:s, s:s?, s:s?, s:s, s:s, s:s?}", "kind", "thaw", "layer", jstr(fr, "layer"),
		                      "freeze_run", jstr(fr, "freeze_run"), "freeze_at", jstr(fr, "freeze_at"), "state",
		                      "undone", "by", "rollback", "who", r->o->who);
		json_object_set_new(d, "database", json_string(db));
		events_emitf(r->ctx->bus, EV_STEP, STAGE, d, "thaw %s: undone by the restore (the layer stays with %s)",
		             jstr(fr, "layer"), faildb);
		json_decref(d);
	}

	/* 7. reopen */
	step(r, "reopen", "started", NULL, "ALTER DATABASE ... ALLOW_CONNECTIONS true on %s and %s", db, faildb);
	bool o1 = set_allow(r, admin, db, true, err);
	bool o2 = o1 && set_allow(r, admin, faildb, true, err);
	if (!o2) {
		step(r, "reopen", "failed", json_pack("{s:s}", "error", err->message), "%s", err->message);
		set_state(result, err, false, "The swap is done: %s is the restored copy and %s the failed database, but "
		          "connections could not be allowed again on %s.", db, faildb, o1 ? faildb : db);
		goto out;
	}
	step(r, "reopen", "done", NULL, "%s and %s accept connections", db, faildb);

	/* 8. verify */
	step(r, "verify", "started", NULL, "verify on %s with the backup's row counts as the baseline", db);
	char *mpath = xasprintf("%s.json", c->backup);
	json_t *baseline = verify_baseline_load(mpath, err);
	free(mpath);
	json_t *vres = NULL;
	/* verify reports as its own stage: relayed as this stage's, so the run's verify stays as it was. */
	struct events *vbus = events_new();
	struct events_relay relay = { .to = r->ctx->bus, .stage = ROLLBACK_STAGE, .phase = "verify" };
	events_subscribe(vbus, events_relay_fn, &relay);
	struct rb_ctx vctx = { .bus = vbus, .cancel = r->ctx->cancel };
	ok = baseline != NULL && verify_run(r->p, r->env, baseline, &vctx, &vres, err);
	events_free(vbus);
	json_decref(baseline);
	if (vres)
		json_object_set(result, "verify", json_object_get(vres, "summary"));
	json_decref(vres);
	if (!ok) {
		step(r, "verify", "failed", json_pack("{s:s}", "error", err->message), "%s", err->message);
		set_state(result, err, false, "The swap is done: %s is the restored copy and %s the failed database (kept), "
		          "but verify failed on %s.", db, faildb, db);
		goto out;
	}
	step(r, "verify", "done", NULL, "every check passed on %s", db);
	set_state(result, NULL, true, "%s is the backup %s restored (row counts verified); the failed database is kept "
	          "as %s, never dropped.", db, c->backup, faildb);
out:
	rb_error_clear(&e);
	PQfinish(admin);
	free(newdb);
	free(faildb);
	return ok;
}

bool
rollback_run(const struct plan *p, const struct rollback_choice *c, const struct rollback_opts *o,
             struct rb_ctx *ctx, json_t **result, struct rb_error *err)
{
	struct rb_ctx none = {0};
	if (ctx == NULL)
		ctx = &none;
	if (result)
		*result = NULL;
	struct rb_run r = { .p = p, .o = o, .ctx = ctx, .env = o->env ? o->env : p->target, .db = c->database,
	                    .steps = json_array(), .wait_ms = o->lock_wait_ms > 0 ? o->lock_wait_ms : DEFAULT_LOCK_WAIT_MS };
	json_t *res = json_pack("{s:b, s:s, s:s?, s:s?, s:n, s:s?, s:O}", "ok", false, "path", rollback_path_name(c->path),
	                        "database", c->database, "why", c->why, "failed_database", "restored_from", c->backup,
	                        "steps", r.steps);
	bool ok = false;
	if (c->path == ROLLBACK_NONE) {
		rb_error_setc(err, RB_EXIT_STEP, "nothing can be rolled back");
		set_state(res, err, false, "Nothing was changed: %s.", c->why ? c->why : "no path");
		goto out;
	}
	if (!confirm_check(ctx, STAGE, c->phrase, o->confirm, err)) {
		json_object_set_new(res, "state", json_string(o->confirm ? "Nothing was changed: the typed phrase does not match."
		                                                       : "Nothing was changed: no phrase was given."));
		goto out;
	}
	json_t *started = rollback_choice_json(c);
	json_object_set_new(started, "who", o->who ? json_string(o->who) : json_null());
	events_emitf(ctx->bus, EV_ROLLBACK_STARTED, STAGE, started, "rollback of %s by %s (%s)", c->database,
	             o->who ? o->who : "?", rollback_path_name(c->path));
	json_decref(started);
	if (c->path == ROLLBACK_DOWN_SQL)
		ok = run_down_sql(&r, c, res, err);
	else
		ok = run_restore(&r, c, res, err);
	if (!ok && err->code == 0)
		err->code = RB_EXIT_STEP;
	json_object_set_new(res, "ok", json_boolean(ok));
	if (c->path == ROLLBACK_RESTORE && c->backup_finished)
		json_object_set_new(res, "backup_finished", json_string(c->backup_finished));
	json_t *done = json_deep_copy(res);
	json_object_set_new(done, "run", c->run_id ? json_string(c->run_id) : json_null());
	events_emitf(ctx->bus, EV_ROLLBACK_DONE, STAGE, done, "rollback of %s %s: %s", c->database,
	             ok ? "done" : "failed", jstr(res, "state") ? jstr(res, "state") : "");
	json_decref(done);
out:
	json_decref(r.steps);
	if (result)
		*result = res;
	else
		json_decref(res);
	return ok;
}
