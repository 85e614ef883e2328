# migrate_deploy.sh: `pgrunbook migrate deploy` and `resolve` against a real server: Prisma's rows,
# preconditions, typed confirmation, lock_timeout retries with the blocker, the advisory lock,
# statement mode with INVALID index cleanup, failed scripts, a lost connection, cancel.
. "$top_srcdir/tests/lib.sh"

W=$T_TMP/w
M=$W/prisma/migrations
mkdir -p "$M"
printf '# Prisma Migrate lockfile\nprovider = "postgresql"\n' >"$M/migration_lock.toml"
plan() {  # plan [lock_timeout] [retries]
	cat >"$W/plan.yaml" <<EOF

name: deploy test
environments:
  prod: { conninfo: "host=$PGHOST port=$PGPORT dbname=$T_DB" }
target: prod
migrations: { dir: prisma/migrations, lock_timeout: ${1:-2s}, retries: ${2:-5} }
EOF
}
plan
mig() {  # mig NAME SQL
	mkdir -p "$M/$1"
	printf '%s\n' "$2" >"$M/$1/migration.sql"
}
deploy() { "$PGRUNBOOK" migrate deploy --plan "$W/plan.yaml" "$@"; }
WAIVE="waive-backup $T_DB"
rows() {  # rows NAME: finished?, rolled back?, steps, logs present? of each row in order
	t_sql "select (finished_at is not null)::text || ',' || (rolled_back_at is not null)::text || ',' ||
	       applied_steps_count || ',' || (logs is not null)::text
	       from _prisma_migrations where migration_name = '$1' order by started_at, id"
}
last_run() { ls -d "$XDG_STATE_HOME"/pgrunbook/runs/* | sort | tail -n 1; }
wait_one() {  # SQL: polls (up to 10 s) until the count query returns 1
	for _ in $(seq 100); do
		[ "$(t_sql "$1")" = 1 ] && return 0
		sleep 0.1
	done
	return 1
}
wait_sleeping() {  # APP: until a session of that application_name sits in pg_sleep
	wait_one "select count(*) from pg_stat_activity where application_name = '$1' and wait_event = 'PgSleep'"
}
journal_has() {  # journal_has JQ-FILTER: how many records of the latest run match
	jq -c "select($1)" "$(last_run)/journal.jsonl" | wc -l
}

mig 20250101000000_init 'CREATE TABLE "User" ("id" SERIAL PRIMARY KEY, "email" TEXT NOT NULL, "phone" TEXT);
CREATE TABLE "Order" ("id" SERIAL PRIMARY KEY, "userId" INTEGER NOT NULL REFERENCES "User"("id"));
INSERT INTO "User" ("email", "phone") VALUES ('"'"'a@x'"'"', '"'"'1'"'"'), ('"'"'b@x'"'"', '"'"'1'"'"');'
mig 20250102000000_add_note 'ALTER TABLE "User" ADD COLUMN "note" TEXT;'
mig 20250103000000_email_idx 'CREATE INDEX CONCURRENTLY "User_email_idx" ON "User"("email");'

# --- preconditions: nothing runs without a backup or a typed waiver ---
t_run 3 "no backup and no waiver: refused" deploy
t_match "says why" "$err" "no verified backup of $T_DB in this run; nothing was run"
t_match "names the waiver phrase" "$err" "--waive-backup \"$WAIVE\""
t_eq "nothing touched the database" "$(t_sql "select count(*) from pg_class where relname in ('_prisma_migrations', 'User')")" 0
t_run 3 "a wrong waiver: refused" deploy --waive-backup "waive-backup $T_DB "
t_match "the miss is explained" "$err" "extra or missing spaces"
t_eq "still nothing" "$(t_sql "select count(*) from pg_class where relname = 'User'")" 0
t_eq "the miss is journaled without the typed text" "$(journal_has '.type == "confirm_miss" and .data.typed_length == '$((${#WAIVE} + 1)))" 1

# --- a first deploy: three migrations, one of them statement by statement ---
t_run 0 "deploy with the waiver" deploy --waive-backup "$WAIVE"
t_match "reports the count" "$out" "3 migrations applied to prod \\($T_DB\\)"
t_match "says the index runs statement by statement" "$out" "20250103000000_email_idx: started \\(3 of 3, statement by statement"
t_eq "Prisma's table, Prisma's columns" \
	"$(t_sql "select string_agg(column_name || ' ' || data_type || coalesce('(' || character_maximum_length || ')', '') || ' ' || is_nullable || coalesce(' ' || column_default, ''), ', ' order by ordinal_position) from information_schema.columns where table_name = '_prisma_migrations'")" \
	"id character varying(36) NO, checksum character varying(64) NO, finished_at timestamp with time zone YES, migration_name character varying(255) NO, logs text YES, rolled_back_at timestamp with time zone YES, started_at timestamp with time zone NO now(), applied_steps_count integer NO 0"
t_eq "one finished row each, one step, no logs" "$(rows 20250101000000_init) $(rows 20250102000000_add_note) $(rows 20250103000000_email_idx)" \
	"true,false,1,false true,false,1,false true,false,1,false"
t_eq "checksums are SHA-256 of the scripts" "$(t_sql "select checksum from _prisma_migrations where migration_name = '20250101000000_init'")" \
	"$(sha256sum <"$M/20250101000000_init/migration.sql" | cut -d' ' -f1)"
t_eq "ids are version 4 UUIDs" "$(t_sql "select count(*) from _prisma_migrations where id ~ '^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$'")" 3
t_eq "finished after started" "$(t_sql "select bool_and(finished_at >= started_at) from _prisma_migrations")" t
t_eq "the index exists and is valid" "$(t_sql "select indisvalid from pg_index where indexrelid = '\"User_email_idx\"'::regclass")" t
t_eq "the waiver is journaled" "$(journal_has '.type == "stage_waived" and .stage == "backup"')" 1
t_eq "the statement-mode statement is journaled before and after" \
	"$(journal_has '.type == "step" and .data.migration == "20250103000000_email_idx" and .data.kind == "statement" and (.data.state == "start" or .data.state == "done")')" 2
t_eq "the batch statements are journaled as done" \
	"$(journal_has '.type == "step" and .data.migration == "20250101000000_init" and .data.kind == "statement" and .data.state == "done"')" 3
t_run 0 "the run's report" "$PGRUNBOOK" report "$(basename "$(last_run)")"
t_eq "lists each migration applied, in order" "$(printf '%s\n' "$out" | awk '/^## /{on = ($0 == "## Migrations")} on' | grep -c '| migrate | applied |')" 3
t_match "with the waiver among the confirmations" "$out" '\| backup \| [^|]+ \| confirmed \| confirmed "waive-backup '"$T_DB"'"'
t_run 0 "status: up to date" "$PGRUNBOOK" migrate status --plan "$W/plan.yaml"
t_run 0 "deploy again: nothing to do, no waiver needed" deploy
t_match "says so" "$out" "prod is up to date: nothing to deploy"
t_eq "the advisory lock was released" "$(t_sql "select count(*) from pg_locks where locktype = 'advisory' and objid = 72707369")" 0

# --- a dangerous migration needs "deploy <db>" ---
mig 20250104000000_drop_order 'DROP TABLE "Order";'
t_run 3 "a dangerous migration without --confirm: refused" deploy --waive-backup "$WAIVE"
t_match "names the statement and rule" "$err" "20250104000000_drop_order:1 PG101 drop table"
t_match "names the phrase" "$err" "\"deploy $T_DB\""
t_eq "the table is still there" "$(t_sql "select count(*) from pg_class where relname = 'Order'")" 1
t_eq "no row was written" "$(t_sql "select count(*) from _prisma_migrations where migration_name = '20250104000000_drop_order'")" 0
t_run 3 "the wrong database in the phrase: refused" deploy --waive-backup "$WAIVE" --confirm "deploy postgres"
t_eq "the table is still there" "$(t_sql "select count(*) from pg_class where relname = 'Order'")" 1
t_run 0 "the right phrase deploys it" deploy --waive-backup "$WAIVE" --confirm "deploy $T_DB"
t_eq "the table is gone" "$(t_sql "select count(*) from pg_class where relname = 'Order'")" 0
t_eq "confirm_needed and confirm_ok are journaled" "$(journal_has '.type == "confirm_needed" or (.type == "confirm_ok" and .stage == "migrate")')" 2

# --- lock_timeout: retried with backoff, the blocker shown, then a clean stop ---
plan 200ms 1
mig 20250105000000_add_age 'ALTER TABLE "User" ADD COLUMN "age" INTEGER;'
PGAPPNAME=blocker_test "$PSQL" -X -q -c 'begin; lock table "User" in access share mode; select pg_sleep(60)' >/dev/null 2>&1 &
blocker=$!
wait_sleeping blocker_test
bpid=$(t_sql "select pid from pg_stat_activity where application_name = 'blocker_test'")
t_run 3 "a held lock: exit 3 after the retries" deploy --waive-backup "$WAIVE" --json
t_eq "outcome lock_timeout" "$(printf '%s' "$out" | jq -r .outcome)" lock_timeout
t_eq "the blocker's pid and application" "$(printf '%s' "$out" | jq -r '.blockers[0] | "\(.pid) \(.application)"')" "$bpid blocker_test"
t_match "the blocker's query" "$(printf '%s' "$out" | jq -r '.blockers[0].query')" "lock table \"User\""
t_match "the message names the blocker" "$err" "pid $bpid \\(application \"blocker_test\""
t_match "and says nothing was applied" "$err" "nothing of it was applied"
t_eq "two tries journaled: a retry after 1 s (+ jitter), then the last" \
	"$(jq -c 'select(.type == "step" and .data.state == "lock_timeout") | [.data.attempt, .data.attempts, (.data.retry_in_ms >= 1000 and .data.retry_in_ms <= 1250) or .data.retry_in_ms == 0]' "$(last_run)/journal.jsonl" | tr -d '\n')" \
	"[1,2,true][2,2,true]"
t_eq "the attempt's row is gone: nothing was applied, the migration is pending for Prisma too" "$(rows 20250105000000_add_age)" ""
t_eq "the attempt is journaled with the SQLSTATE" "$(journal_has '.type == "step" and .data.kind == "statement" and .data.state == "lock_timeout" and .data.sqlstate == "55P03" and .data.attempt == 2')" 1
t_eq "the column was not added" "$(t_sql "select count(*) from information_schema.columns where table_name = 'User' and column_name = 'age'")" 0
t_run 3 "status: pending again" "$PGRUNBOOK" migrate status --plan "$W/plan.yaml"
t_match "pending, not failed" "$out" "not up to date: 1 pending"
kill "$blocker" 2>/dev/null
t_sql_do "select pg_terminate_backend($bpid)"
wait "$blocker" 2>/dev/null
# A blocker whose query mentions a password: shown and journaled without its text.
PGAPPNAME=blocker_secret "$PSQL" -X -q -c "begin; lock table \"User\" in access share mode; select pg_sleep(60) /* alter role app password 'hunter2' */" >/dev/null 2>&1 &
blocker=$!
wait_sleeping blocker_secret
t_run 3 "a blocker with a secret in its query" deploy --waive-backup "$WAIVE" --json
t_eq "its query is hidden" "$(printf '%s' "$out" | jq -r '.blockers[0] | "\(.application): \(.query)"')" \
	"blocker_secret: (hidden: the query mentions a password or secret)"
t_eq "the secret is nowhere in the output or the journals" "$(printf '%s\n%s\n' "$out" "$err" | grep -c hunter2; grep -rl hunter2 "$XDG_STATE_HOME" | wc -l)" "0
0"
kill "$blocker" 2>/dev/null
t_sql_do "select pg_terminate_backend(pid) from pg_stat_activity where application_name = 'blocker_secret'"
wait "$blocker" 2>/dev/null
t_run 0 "the blocker gone: deploy applies it" deploy --waive-backup "$WAIVE"
t_eq "one finished row" "$(rows 20250105000000_add_age)" "true,false,1,false"

# --- the advisory lock: another deployer holds it ---
mig 20250106000000_add_city 'ALTER TABLE "User" ADD COLUMN "city" TEXT;'
PGAPPNAME=other_deployer "$PSQL" -X -q -c 'select pg_advisory_lock(72707369); select pg_sleep(60)' >/dev/null 2>&1 &
holder=$!
wait_one "select count(*) from pg_locks where locktype = 'advisory' and objid = 72707369 and granted"
hpid=$(t_sql "select pid from pg_stat_activity where application_name = 'other_deployer'")
t_run 3 "the migration lock is held: refused after --lock-wait" deploy --waive-backup "$WAIVE" --lock-wait 1
t_match "says so" "$err" "another session holds the migration lock \\(advisory lock 72707369\\); nothing was run"
t_match "names the holder" "$err" "Held by pid $hpid \\(application \"other_deployer\""
t_match "said while waiting" "$out" "waiting for the migration lock, held by pid $hpid"
t_eq "nothing was recorded" "$(t_sql "select count(*) from _prisma_migrations where migration_name = '20250106000000_add_city'")" 0
kill "$holder" 2>/dev/null
t_sql_do "select pg_terminate_backend($hpid)"
wait "$holder" 2>/dev/null
t_run 0 "released: deploy goes through" deploy --waive-backup "$WAIVE"

# --- a failing script: one transaction, rolled back by the server, recorded failed like Prisma ---
mig 20250107000000_bad 'ALTER TABLE "User" ADD COLUMN "zip" TEXT;
SELECT 1 / 0;'
t_run 3 "a failing script: exit 3" deploy --waive-backup "$WAIVE"
t_match "names migration, statement and line" "$err" "migration 20250107000000_bad failed at statement 2 \\(line 2\\): division by zero"
t_eq "the row: not finished, not rolled back, 0 steps, logs" "$(rows 20250107000000_bad)" "false,false,0,true"
t_match "the logs: Prisma's shape" "$(t_sql "select logs from _prisma_migrations where migration_name = '20250107000000_bad'")" \
	"Database error code: 22012"
t_eq "its first statement was rolled back too" "$(t_sql "select count(*) from information_schema.columns where table_name = 'User' and column_name = 'zip'")" 0
t_run 3 "status: failed" "$PGRUNBOOK" migrate status --plan "$W/plan.yaml"
t_match "failed" "$out" "failed +20250107000000_bad"
t_run 3 "deploy refuses while a migration is failed" deploy --waive-backup "$WAIVE"
t_match "and says how to proceed" "$err" "migration 20250107000000_bad failed: inspect it with \"pgrunbook migrate recover 20250107000000_bad\""

# --- resolve, as Prisma does it ---
t_run 3 "resolve without the phrase: refused" "$PGRUNBOOK" migrate resolve --rolled-back 20250107000000_bad --plan "$W/plan.yaml"
t_eq "the row is unchanged" "$(rows 20250107000000_bad)" "false,false,0,true"
t_run 3 "resolve --rolled-back of an applied migration: refused" "$PGRUNBOOK" migrate resolve --rolled-back 20250101000000_init \
	--plan "$W/plan.yaml" --confirm "resolve $T_DB"
t_match "not failed" "$err" "cannot be rolled back because it is not in a failed state"
t_run 3 "resolve --applied of an applied migration: refused" "$PGRUNBOOK" migrate resolve --applied 20250101000000_init \
	--plan "$W/plan.yaml" --confirm "resolve $T_DB"
t_match "already applied" "$err" "already recorded as applied"
t_run 0 "resolve --rolled-back" "$PGRUNBOOK" migrate resolve --rolled-back 20250107000000_bad --plan "$W/plan.yaml" --confirm "resolve $T_DB"
t_eq "the row is rolled back" "$(rows 20250107000000_bad)" "false,true,0,true"
t_eq "the resolve is journaled" "$(journal_has '.type == "step" and .data.kind == "resolve" and .data.state == "done"')" 1
printf 'ALTER TABLE "User" ADD COLUMN "zip" TEXT;\n' >"$M/20250107000000_bad/migration.sql"
t_run 0 "fixed script: deploy applies it" deploy --waive-backup "$WAIVE"
t_eq "a rolled-back row, then a finished one" "$(rows 20250107000000_bad | tr '\n' ' ')" "false,true,0,true true,false,1,false "

# resolve --applied of a failed migration: its failed row is rolled back, a finished row added.
mig 20250108000000_manual 'CREATE TABLE "Manual" ("id" INTEGER); SELECT 1 / 0;'
t_run 3 "another failure" deploy --waive-backup "$WAIVE"
t_sql_do 'CREATE TABLE "Manual" ("id" INTEGER)'
t_run 0 "resolve --applied after fixing by hand" "$PGRUNBOOK" migrate resolve --applied 20250108000000_manual --plan "$W/plan.yaml" --confirm "resolve $T_DB" --json
t_eq "--json" "$(printf '%s' "$out" | jq -c '[.migration, .as, .done]')" '["20250108000000_manual","applied",true]'
t_eq "the failed row rolled back, a finished row with 0 steps and empty logs (as Prisma 6)" "$(rows 20250108000000_manual | tr '\n' ' ')" "false,true,0,true true,false,0,true "
t_eq "empty logs, started = finished" "$(t_sql "select logs = '' and started_at = finished_at from _prisma_migrations where migration_name = '20250108000000_manual' and finished_at is not null")" t
t_eq "the new row carries the local checksum" "$(t_sql "select checksum from _prisma_migrations where migration_name = '20250108000000_manual' and finished_at is not null")" \
	"$(sha256sum <"$M/20250108000000_manual/migration.sql" | cut -d' ' -f1)"
t_run 0 "status: up to date" "$PGRUNBOOK" migrate status --plan "$W/plan.yaml"

# --- statement mode: a failed CREATE UNIQUE INDEX CONCURRENTLY leaves an INVALID index; the retry drops it ---
mig 20250109000000_phone_key 'CREATE UNIQUE INDEX CONCURRENTLY "User_phone_key" ON "User"("phone");'
t_run 3 "duplicates: the concurrent index fails" deploy --waive-backup "$WAIVE"
t_match "the unique violation" "$err" "could not create unique index"
t_eq "an INVALID index is left behind" "$(t_sql "select indisvalid from pg_index where indexrelid = '\"User_phone_key\"'::regclass")" f
t_eq "the row is failed with 0 steps" "$(rows 20250109000000_phone_key)" "false,false,0,true"
t_sql_do "update \"User\" set phone = '2' where email = 'b@x'"
t_run 0 "resolve --rolled-back" "$PGRUNBOOK" migrate resolve --rolled-back 20250109000000_phone_key --plan "$W/plan.yaml" --confirm "resolve $T_DB"
t_run 0 "deploy again: drops the INVALID index, then builds it" deploy --waive-backup "$WAIVE"
t_match "says it dropped the leftover" "$out" "dropped the INVALID index \"public\".\"User_phone_key\""
t_eq "the cleanup is journaled" "$(journal_has '.type == "step" and .data.kind == "cleanup" and .data.state == "dropped"')" 1
t_eq "the index is valid now" "$(t_sql "select indisvalid from pg_index where indexrelid = '\"User_phone_key\"'::regclass")" t

# --- a lost connection: the outcome is unknown, reported, never re-run on its own ---
mig 20250110000000_slow 'SELECT pg_sleep(20);
CREATE TABLE "AfterSleep" ("id" INTEGER);'
deploy --waive-backup "$WAIVE" >"$T_TMP/lost.out" 2>"$T_TMP/lost.err" &
dep=$!
wpid=""
for _ in $(seq 100); do
	wpid=$(t_sql "select pid from pg_stat_activity where application_name = 'pgrunbook deploy' and wait_event = 'PgSleep'")
	[ -n "$wpid" ] && break
	sleep 0.1
done
if [ -n "$wpid" ]; then t_ok "the deploy's work session is visible as \"pgrunbook deploy\""; else t_fail "no work session seen"; fi
t_sql_do "select pg_terminate_backend($wpid)"
wait "$dep"
t_eq "exit 3" "$?" 3
t_match "the outcome is unknown" "$(cat "$T_TMP/lost.err")" "the connection was lost while migration 20250110000000_slow ran \\(statement 1 of 2\\); its outcome is unknown"
t_match "it reconnected and read the state" "$(cat "$T_TMP/lost.err")" "After reconnecting: 20250110000000_slow is failed"
t_match "and what the catalog shows" "$(cat "$T_TMP/lost.err")" "The catalog shows 0 of the 1 checkable effects of its statements as done \\(1 cannot be checked\\)"
t_match "and points to recover" "$(cat "$T_TMP/lost.err")" "pgrunbook migrate recover 20250110000000_slow"
t_eq "the row stays failed with the reason" "$(rows 20250110000000_slow)" "false,false,0,true"
t_match "logs say why" "$(t_sql "select logs from _prisma_migrations where migration_name = '20250110000000_slow'")" "connection was lost"
t_eq "the rest of the script did not run" "$(t_sql "select count(*) from pg_class where relname = 'AfterSleep'")" 0
t_run 3 "a second deploy does not re-run it" deploy --waive-backup "$WAIVE"
t_eq "still one row" "$(t_sql "select count(*) from _prisma_migrations where migration_name = '20250110000000_slow'")" 1
t_sql_do "delete from _prisma_migrations where migration_name = '20250110000000_slow'"

# --- the lock connection is lost mid-script: the script is stopped, not run unprotected ---
printf 'CREATE TABLE "Unprotected" ("id" INTEGER);\nSELECT pg_sleep(20);\n' >"$M/20250110000000_slow/migration.sql"
"$PGRUNBOOK" migrate deploy --plan "$W/plan.yaml" --waive-backup "$WAIVE" >"$T_TMP/ctl.out" 2>"$T_TMP/ctl.err" &
dep=$!
wait_sleeping "pgrunbook deploy"
t_sql_do "select pg_terminate_backend(pid) from pg_stat_activity where application_name = 'pgrunbook deploy (lock)'"
wait "$dep"
t_eq "the lock connection lost: exit 3" "$?" 3
t_match "says why, and that the script was stopped and rolled back" "$(cat "$T_TMP/ctl.err")" \
	"the connection holding the migration lock was lost while migration 20250110000000_slow ran \\(statement 2 of 2\\); the script was stopped and rolled back"
t_eq "nothing of the script remains" "$(t_sql "select count(*) from pg_class where relname = 'Unprotected'")" 0
t_eq "no row: still pending" "$(rows 20250110000000_slow)" ""
t_eq "the lock is free again" "$(t_sql "select count(*) from pg_locks where locktype = 'advisory' and objid = 72707369")" 0

# --- a signal during a batch (SIGTERM; a background job ignores SIGINT): cancelled, rolled back ---
printf 'CREATE TABLE "Cancelled" ("id" INTEGER);\nSELECT pg_sleep(20);\n' >"$M/20250110000000_slow/migration.sql"
"$PGRUNBOOK" migrate deploy --plan "$W/plan.yaml" --waive-backup "$WAIVE" >"$T_TMP/int.out" 2>"$T_TMP/int.err" &
dep=$!
wait_sleeping "pgrunbook deploy"
kill -TERM "$dep"
wait "$dep"
t_eq "SIGTERM: exit 3" "$?" 3
t_match "says it was cancelled and rolled back" "$(cat "$T_TMP/int.err")" "cancelled while migration 20250110000000_slow ran .*the script was stopped and rolled back"
t_eq "the attempt's row is gone: pending again" "$(rows 20250110000000_slow)" ""
t_run 3 "status: pending" "$PGRUNBOOK" migrate status --plan "$W/plan.yaml"
t_match "pending" "$out" "pending +20250110000000_slow"
t_eq "nothing of the script remains" "$(t_sql "select count(*) from pg_class where relname = 'Cancelled'")" 0

# --- resolve waits for the migration lock like a deploy (never beside a running deploy) ---
mig 20250112000000_leaves_open 'BEGIN;
CREATE TABLE "LeftOpen" ("id" INTEGER);'
t_run 3 "a script that leaves a transaction open: failed, not applied" deploy --waive-backup "$WAIVE"
t_match "says so" "$err" "left a transaction open \\(BEGIN without COMMIT\\); pgrunbook rolled that transaction back"
t_eq "its table does not exist" "$(t_sql "select count(*) from pg_class where relname = 'LeftOpen'")" 0
t_eq "the row is failed, not finished" "$(rows 20250112000000_leaves_open)" "false,false,0,true"
PGAPPNAME=other_deployer "$PSQL" -X -q -c 'select pg_advisory_lock(72707369); select pg_sleep(60)' >/dev/null 2>&1 &
holder=$!
wait_one "select count(*) from pg_locks where locktype = 'advisory' and objid = 72707369 and granted"
t_run 3 "resolve while the migration lock is held: refused" "$PGRUNBOOK" migrate resolve --rolled-back 20250112000000_leaves_open \
	--plan "$W/plan.yaml" --confirm "resolve $T_DB" --lock-wait 0.5
t_match "names the holder" "$err" "application \"other_deployer\""
t_eq "the row is unchanged" "$(rows 20250112000000_leaves_open)" "false,false,0,true"
kill "$holder" 2>/dev/null
t_sql_do "select pg_terminate_backend(pid) from pg_stat_activity where application_name = 'other_deployer'"
wait "$holder" 2>/dev/null
t_run 0 "the lock free: resolve --rolled-back" "$PGRUNBOOK" migrate resolve --rolled-back 20250112000000_leaves_open \
	--plan "$W/plan.yaml" --confirm "resolve $T_DB"
rm -rf "$M/20250112000000_leaves_open"

# --- client COPY cannot run in a migration: refused before anything runs ---
mig 20250113000000_copy 'COPY "User" ("email") FROM STDIN;'
t_run 3 "COPY FROM STDIN: refused" deploy --waive-backup "$WAIVE"
t_match "says why" "$err" "migration 20250113000000_copy line 1: COPY FROM STDIN or TO STDOUT needs data from the client"
t_eq "no row" "$(rows 20250113000000_copy)" ""
rm -rf "$M/20250113000000_copy"

# --- a cancel between migrations: the one running ends, the next never starts ---
mig 20250114000000_shrugs 'DO $$ BEGIN PERFORM pg_sleep(5); EXCEPTION WHEN query_canceled THEN NULL; END $$;'
mig 20250115000000_second 'CREATE TABLE "Second" ("id" INTEGER);'
"$PGRUNBOOK" migrate deploy --plan "$W/plan.yaml" --waive-backup "$WAIVE" >"$T_TMP/between.out" 2>"$T_TMP/between.err" &
dep=$!
wait_sleeping "pgrunbook deploy"
kill -TERM "$dep"
wait "$dep"
t_eq "exit 3" "$?" 3
t_match "says the next did not start" "$(cat "$T_TMP/between.err")" "cancelled before migration 20250115000000_second; it did not start"
t_eq "the first, which swallowed the cancel, is applied" "$(rows 20250114000000_shrugs)" "true,false,1,false"
t_eq "the second has no row" "$(rows 20250115000000_second)" ""
t_eq "and no table" "$(t_sql "select count(*) from pg_class where relname = 'Second'")" 0
t_run 0 "deploy again applies the second" deploy --waive-backup "$WAIVE"

# --- statement mode: the lock connection lost between statements stops before the next one ---
mig 20250116000000_two_steps 'DO $$ BEGIN PERFORM pg_sleep(5); EXCEPTION WHEN query_canceled THEN NULL; END $$;
CREATE INDEX CONCURRENTLY "User_note_idx" ON "User"("note");'
"$PGRUNBOOK" migrate deploy --plan "$W/plan.yaml" --waive-backup "$WAIVE" >"$T_TMP/sm.out" 2>"$T_TMP/sm.err" &
dep=$!
wait_sleeping "pgrunbook deploy"
t_sql_do "select pg_terminate_backend(pid) from pg_stat_activity where application_name = 'pgrunbook deploy (lock)'"
wait "$dep"
t_eq "exit 3" "$?" 3
t_match "stopped before the second statement" "$(cat "$T_TMP/sm.err")" \
	"the connection holding the migration lock was lost; migration 20250116000000_two_steps stopped before statement 2 of 2"
t_eq "the index was not built without the lock" "$(t_sql "select count(*) from pg_class where relname = 'User_note_idx'")" 0
t_eq "the row is failed with the one step that ran" "$(rows 20250116000000_two_steps)" "false,false,1,true"
t_match "its logs say why" "$(t_sql "select logs from _prisma_migrations where migration_name = '20250116000000_two_steps'")" \
	"connection holding the migration lock was lost"
t_sql_do "delete from _prisma_migrations where migration_name = '20250116000000_two_steps'"
rm -rf "$M/20250116000000_two_steps"

# --- another deploy at work (lock held, its row unfinished): wait for it, then judge again ---
mig 20250117000000_by_other 'CREATE TABLE "ByOther" ("id" INTEGER);'
sum=$(sha256sum <"$M/20250117000000_by_other/migration.sql" | cut -d' ' -f1)
PGAPPNAME=other_deployer "$PSQL" -X -q -v ON_ERROR_STOP=1 >/dev/null 2>&1 <<SQL &
select pg_advisory_lock(72707369);
insert into _prisma_migrations (id, checksum, migration_name) values ('00000000-0000-4000-8000-000000000001', '$sum', '20250117000000_by_other');
select pg_sleep(2);
create table "ByOther" ("id" integer);
update _prisma_migrations set finished_at = now(), applied_steps_count = 1 where migration_name = '20250117000000_by_other';
SQL
other=$!
wait_one "select count(*) from _prisma_migrations where migration_name = '20250117000000_by_other'"
t_run 0 "a deploy in progress elsewhere: wait for its lock, then nothing is left to do" deploy --waive-backup "$WAIVE"
t_match "says it waits for the other deploy" "$out" 'waiting for the migration lock, held by pid [0-9]+ \(application "other_deployer"\)'
t_eq "and journals why" "$(journal_has '.type == "log" and (.message | test("another deploy is at work")) ')" 1
t_match "then finds it up to date" "$out" "prod is up to date: nothing to deploy"
wait "$other"
t_eq "one finished row, written by the other deploy" "$(rows 20250117000000_by_other)" "true,false,1,false"
t_run 0 "status: up to date" "$PGRUNBOOK" migrate status --plan "$W/plan.yaml"

# --- syntax errors stop before any connection ---
rm -rf "$M/20250110000000_slow"
mig 20250111000000_typo 'ALTER TABLE "User" ADD COLUMN "x" INTEGR NOT NULL DEFAULT;'
sed "s/port=$PGPORT/port=1/" "$W/plan.yaml" >"$W/unreachable.yaml"
t_run 3 "a syntax error: refused before connecting (exit 3, not 2)" "$PGRUNBOOK" migrate deploy --plan "$W/unreachable.yaml" --waive-backup "$WAIVE"
t_match "migration:line:column" "$err" "20250111000000_typo:1:"

t_done
