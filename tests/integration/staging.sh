#!/usr/bin/env bash
# staging.sh: `pgrunbook staging` on the real cluster: prod, staging and dev databases; prod's
# backup restored over staging only with the typed phrase (refused without it or with another,
# staging untouched), the pending migrations applied there and timed per statement (the estimate
# is their sum), prod untouched, the sync counts equal SQL's and `sync diff --json` against
# staging, verify run; a migration waiting for a lock held on staging records the wait; a failing
# migration gives no complete estimate; a damaged archive is refused with staging intact.
. "$top_srcdir/tests/lib.sh"

unset PGAPPNAME PGCONNECT_TIMEOUT
PROD="${T_DB}_prod"
STG="${T_DB}_stg"
DEV="${T_DB}_dev"
runs="$XDG_STATE_HOME/pgrunbook/runs"
W=$T_TMP
lockpid=""
bgpid=""
cleanup() {
	[ -n "$lockpid" ] && kill "$lockpid" 2>/dev/null
	[ -n "$bgpid" ] && kill "$bgpid" 2>/dev/null
	wait 2>/dev/null
}
trap cleanup EXIT

for db in "$PROD" "$STG" "$DEV"; do t_createdb "$db"; done

# --- migrations folders: the applied base, and the releases rehearsed ---
mig() {  # DIR NAME SQL
	mkdir -p "$W/$1/$2"
	printf '%s\n' "$3" >"$W/$1/$2/migration.sql"
	printf 'provider = "postgresql"\n' >"$W/$1/migration_lock.toml"
}
INIT='CREATE TABLE "Product" (id int PRIMARY KEY, name text NOT NULL, price numeric(10,2) NOT NULL);
CREATE TABLE "Unit" (code text PRIMARY KEY, name text NOT NULL);'
for d in base migs lock fail; do mig "$d" 20250101000000_init "$INIT"; done
mig migs 20250201000000_add_sku 'ALTER TABLE "Product" ADD COLUMN sku text NOT NULL DEFAULT md5(random()::text);
UPDATE "Product" SET sku = '"'P'"' || id;'
mig migs 20250202000000_sku_index 'CREATE INDEX product_sku_idx ON "Product" (sku);'
mig migs 20250203000000_timed 'SELECT 1;
SELECT pg_sleep(0.5);'
mig lock 20250301000000_slow 'SELECT pg_sleep(2);'
mig lock 20250302000000_note 'ALTER TABLE "Product" ADD COLUMN note text;'
mig fail 20250401000000_broken 'ALTER TABLE "Product" ADD COLUMN ok_col int;
ALTER TABLE "NoSuchTable" ADD COLUMN x int;'

plan() {  # FILE MIGDIR [extra YAML]
	cat >"$1" <<EOF
name: staging test
environments:
  prod:    { conninfo: "host=$PGHOST port=$PGPORT dbname=$PROD" }
  staging: { conninfo: "host=$PGHOST port=$PGPORT dbname=$STG" }
  dev:     { conninfo: "host=$PGHOST port=$PGPORT dbname=$DEV" }
source: dev
target: ${TARGET:-prod}
backup: { dir: $W/backups }
${STAGING-staging: { environment: staging \}}
migrations: { dir: $W/$2, format: prisma, lock_timeout: 300ms }
${3:-}
EOF
}
SYNC='sync:
  tables:
    Product: { mode: upsert, key: [id], on_conflict: local_wins }
    Unit: { mode: append, key: [code] }'
plan "$W/base.yaml" base
plan "$W/plan.yaml" migs "$SYNC"
plan "$W/lock.yaml" lock
plan "$W/fail.yaml" fail
TARGET=staging STAGING="" plan "$W/stg-target.yaml" migs "$SYNC"

# --- data: prod and dev share most rows; staging holds something else (and a marker) ---
for env in prod staging dev; do
	db=$PROD; [ $env = staging ] && db=$STG; [ $env = dev ] && db=$DEV
	t_run 0 "base migration on $env" "$PGRUNBOOK" migrate deploy --plan "$W/base.yaml" --env $env \
		--waive-backup "waive-backup $db"
done
t_sql_do "insert into \"Product\" select g, 'product ' || g, g % 1000 + 0.5 from generate_series(1, 200000) g;
	insert into \"Product\" select g, 'old ' || g, 1 from generate_series(200100, 200104) g;
	insert into \"Unit\" values ('a', 'gram'), ('b', 'kilo'), ('c', 'litre');" "$PROD"
t_sql_do "insert into \"Product\" select g, case when g <= 30 then 'renamed ' else 'product ' end || g, g % 1000 + 0.5
		from generate_series(1, 200025) g;
	insert into \"Unit\" values ('a', 'gram'), ('b', 'kilogram'), ('c', 'litre'), ('d', 'piece');" "$DEV"
t_run 0 "dev has every migration" "$PGRUNBOOK" migrate deploy --plan "$W/plan.yaml" --env dev \
	--waive-backup "waive-backup $DEV" --confirm "deploy $DEV"
t_sql_do "insert into \"Product\" values (1, 'staging junk', 9);
	create table staging_marker (x int); insert into staging_marker select generate_series(1, 77);" "$STG"

sum_of() {  # DB TABLE: an md5 over the table's rows in key order
	t_sql "select md5(coalesce(string_agg(t::text, '|' order by t::text), '')) from \"$2\" t" "$1"
}
migs_of() {  # DB: finished migrations, one line
	t_sql "select string_agg(migration_name, ' ' order by migration_name) from _prisma_migrations
		where finished_at is not null and rolled_back_at is null" "$1"
}
prod_state() { echo "$(sum_of "$PROD" Product) $(sum_of "$PROD" Unit) $(migs_of "$PROD")"; }
marker() { t_sql "select count(*) || ':' || sum(x) from staging_marker" "$STG"; }
copies() { t_sql "select count(*) from pg_database where datname like '%\\_pgrunbook\\_new\\_%'" postgres; }
stg_oid() { t_sql "select oid from pg_database where datname = '$STG'" postgres; }

t_run 0 "backup of prod" "$PGRUNBOOK" backup --plan "$W/plan.yaml"
archive=$(ls "$W"/backups/*.dump)
prod_before=$(prod_state)
marker_before=$(marker)
oid_before=$(stg_oid)

# --- refused: no phrase, a wrong one ---
t_run 3 "without --confirm: exit 3" "$PGRUNBOOK" staging --plan "$W/plan.yaml"
t_match "names the backup" "$out" "backup: +$archive \\(database $PROD"
t_match "names the database replaced" "$out" "replaces: +database $STG of staging"
t_match "lists the pending migrations" "$out" "pending: +3 migrations on the target"
t_match "  ... by name" "$out" '^ +20250202000000_sku_index$'
t_match "says how to go ahead" "$out" "--confirm \"replace $STG\""
t_match "says nothing was changed" "$out" 'nothing was changed'
t_run 3 "a wrong phrase: exit 3" "$PGRUNBOOK" staging --plan "$W/plan.yaml" --confirm "replace $PROD" --json
t_eq "JSON: refused at confirm" "$(printf '%s' "$out" | jq -c '[.ok, .exit_code, [.steps[] | .step + ":" + .state]]')" \
	'[false,3,["backup:done","confirm:failed"]]'
t_eq "the phrase it wants" "$(printf '%s' "$out" | jq -r .phrase)" "replace $STG"
t_eq "the miss is journaled" "$(cat "$runs"/*/journal.jsonl | jq -c 'select(.type == "confirm_miss") | .stage' | sort | uniq -c | awk '{print $1, $2}')" '2 "staging"'
t_eq "  ... without the typed text" "$(cat "$runs"/*/journal.jsonl | grep -c "replace $PROD")" 0
t_eq "staging untouched (marker)" "$(marker)" "$marker_before"
t_eq "staging untouched (same database)" "$(stg_oid)" "$oid_before"
t_eq "no copy made" "$(copies)" 0

# --- the rehearsal ---
t_run 0 "staging with the phrase: exit 0" "$PGRUNBOOK" staging --plan "$W/plan.yaml" --confirm "replace $STG" --json
R=$out
t_eq "steps" "$(printf '%s' "$R" | jq -c '[.steps[] | .step + ":" + .state]')" \
	'["backup:done","confirm:done","restore:done","swap:done","migrate:done","sync:done","verify:done"]'
t_eq "staging was replaced (a new database under its name)" "$([ "$(stg_oid)" != "$oid_before" ] && echo yes)" yes
t_eq "the marker is gone (prod has none)" "$(t_sql "select count(*) from pg_class where relname = 'staging_marker'" "$STG")" 0
t_eq "no copy left under its temporary name" "$(copies)" 0
t_eq "staging: the release's migrations applied on prod's" "$(migs_of "$STG")" \
	"20250101000000_init 20250201000000_add_sku 20250202000000_sku_index 20250203000000_timed"
t_eq "staging holds prod's rows" "$(t_sql "select count(*) || ' ' || sum(id) from \"Product\"" "$STG")" \
	"$(t_sql "select count(*) || ' ' || sum(id) from \"Product\"" "$PROD")"
t_eq "  ... and units" "$(sum_of "$STG" Unit)" "$(sum_of "$PROD" Unit)"
t_eq "  ... names and prices as prod's" \
	"$(t_sql "select md5(string_agg(id || name || price, ',' order by id)) from \"Product\"" "$STG")" \
	"$(t_sql "select md5(string_agg(id || name || price, ',' order by id)) from \"Product\"" "$PROD")"
t_eq "  ... with the new column filled" "$(t_sql "select count(*) from \"Product\" where sku = 'P' || id" "$STG")" 200005
t_eq "prod untouched (rows and migrations)" "$(prod_state)" "$prod_before"
t_eq "prod has no sku column" "$(t_sql "select count(*) from information_schema.columns where column_name = 'sku'" "$PROD")" 0

# Timings: every statement measured; the estimate is their sum.
t_eq "three migrations timed" "$(printf '%s' "$R" | jq -c '[.migrations[] | .name + ":" + .state]')" \
	'["20250201000000_add_sku:applied","20250202000000_sku_index:applied","20250203000000_timed:applied"]'
# Each statement is sent on its own inside the script's one transaction: its own time is real (a
# simple-query batch would deliver every result at the end, the time all on the first).
t_eq "every statement has ms >= 0 and its line" \
	"$(printf '%s' "$R" | jq -c '[.migrations[].statements[] | select(.ms >= 0) | .line]')" '[1,2,1,1,2]'
t_eq "every migration has ms > 0" \
	"$(printf '%s' "$R" | jq '[.migrations[] | select(.ms > 0)] | length')" 3
t_eq "each statement's own time: SELECT 1 quick, then pg_sleep(0.5) at least 500 ms" \
	"$(printf '%s' "$R" | jq -c '.migrations[2].statements | [.[0].ms < 400, .[1].ms >= 500]')" '[true,true]'
t_eq "a migration's ms is its statements' sum" \
	"$(printf '%s' "$R" | jq '[.migrations[] | select(.ms == ([.statements[].ms] | add))] | length')" 3
t_eq "the estimate is the sum of the statements" \
	"$(printf '%s' "$R" | jq '.estimate.migrate_ms == ([.migrations[].statements[].ms] | add)')" true
t_eq "  ... complete, and lock waits summed too" \
	"$(printf '%s' "$R" | jq -c '[.estimate.complete, .estimate.lock_wait_ms == ([.migrations[].statements[].lock_wait_ms] | add)]')" \
	'[true,true]'

# Sync counts: SQL's, computed with staging's tables copied next to dev's.
t_sql_do "create table stg_product (like \"Product\"); create table stg_unit (like \"Unit\")" "$DEV"
psql -X -q -d "$STG" -c 'copy "Product" to stdout' | psql -X -q -d "$DEV" -c 'copy stg_product from stdin'
psql -X -q -d "$STG" -c 'copy "Unit" to stdout' | psql -X -q -d "$DEV" -c 'copy stg_unit from stdin'
exp_p=$(t_sql "select (select count(*) from \"Product\" d where not exists (select from stg_product s where s.id = d.id))
	|| ' ' || (select count(*) from \"Product\" d join stg_product s using (id) where (d.name, d.price, d.sku) is distinct from (s.name, s.price, s.sku))
	|| ' ' || (select count(*) from stg_product s where not exists (select from \"Product\" d where d.id = s.id))
	|| ' 0 0 ' || (select count(*) from \"Product\" d join stg_product s using (id) where (d.name, d.price, d.sku) is not distinct from (s.name, s.price, s.sku))" "$DEV")
exp_u=$(t_sql "select (select count(*) from \"Unit\" d where not exists (select from stg_unit s where s.code = d.code))
	|| ' 0 ' || (select count(*) from stg_unit s where not exists (select from \"Unit\" d where d.code = s.code))
	|| ' 0 ' || (select count(*) from \"Unit\" d join stg_unit s using (code) where d.name <> s.name)
	|| ' ' || (select count(*) from \"Unit\" d join stg_unit s using (code) where d.name = s.name)" "$DEV")
t_eq "the fixture differs (inserts, updates, target-only rows)" "$exp_p" "25 30 5 0 0 199970"
counts() {  # JSON TABLE
	printf '%s' "$1" | jq -r --arg t "$2" '.tables[] | select(.table == $t) | .counts |
		"\(.to_insert) \(.to_update) \(.to_delete) \(.conflicts) \(.differs_kept) \(.unchanged)"'
}
t_eq "sync counts of Product are SQL's" "$(counts "$(printf '%s' "$R" | jq .sync)" public.Product)" "$exp_p"
t_eq "sync counts of Unit are SQL's" "$(counts "$(printf '%s' "$R" | jq .sync)" public.Unit)" "$exp_u"
t_sql_do "drop table stg_product, stg_unit" "$DEV"
t_run 0 "sync diff --json against staging" "$PGRUNBOOK" sync diff --plan "$W/stg-target.yaml" --json
t_eq "  ... says the same" "$(printf '%s' "$out" | jq -c '[.tables[] | [.table, .counts, .digest]]')" \
	"$(printf '%s' "$R" | jq -c '[.sync.tables[] | [.table, .counts, .digest]]')"

t_eq "verify ran on staging with the backup's counts" \
	"$(printf '%s' "$R" | jq -c '[.verify.ok, .verify.database, .verify.summary.failed, ([.verify.checks[] | select(.kind == "row_counts")] | length > 0)]')" \
	"[true,\"$STG\",0,true]"
J=$(grep -l '"kind":"staging"' "$runs"/*/journal.jsonl | xargs ls -t | head -n 1)
t_eq "journal: the staging stage is done" "$(jq -r 'select(.type == "stage_done") | .stage' "$J")" staging
t_eq "journal: no migrate or verify stage records (they belong to prod)" \
	"$(jq -r 'select(.type | startswith("stage_")) | .stage' "$J" | sort -u | tr '\n' ' ')" "staging "
t_eq "journal: the statements are there, as staging's" \
	"$(jq -c 'select(.type == "step" and .data.kind == "statement" and .data.state == "done") | .stage' "$J" | sort -u)" '"staging"'

# Text output.
t_run 0 "text output" "$PGRUNBOOK" staging --plan "$W/plan.yaml" --confirm "replace $STG"
t_match "the estimate line" "$out" \
	'^migrate on prod: about [0-9]+\.[0-9] s, of which [0-9]+\.[0-9] s waiting for locks, measured on staging$'
t_match "the sync counts per table" "$out" '^  public\.Product +25 +30 +5 +0 +0 +199970$'
t_match "the verify summary" "$out" '^verify on staging: ok: '
t_match "the end" "$out" '^staging: rehearsed$'

# --- a lock held on staging: the wait is recorded ---
"$PGRUNBOOK" staging --plan "$W/lock.yaml" --confirm "replace $STG" --json >"$W/lock.json" 2>"$W/lock.err" &
bgpid=$!
got=""
for _ in $(seq 1200); do
	[ "$(t_sql "select count(*) from pg_stat_activity where datname = '$STG' and application_name = 'pgrunbook deploy'
		and query like '%pg_sleep(2)%'" postgres)" = 1 ] && { got=1; break; }
	sleep 0.05
done
t_eq "the slow migration runs on staging" "$got" 1
psql -X -q -d "$STG" -c 'begin; lock table "Product" in access exclusive mode; select pg_sleep(3); commit' \
	>/dev/null 2>&1 &
lockpid=$!
wait "$bgpid"
rc=$?
bgpid=""
wait "$lockpid" 2>/dev/null
lockpid=""
L=$(cat "$W/lock.json")
t_eq "the rehearsal waited and finished: exit 0" "$rc" 0
t_match "the ALTER waited for its lock" \
	"$(printf '%s' "$L" | jq '.migrations[] | select(.name == "20250302000000_note") | .statements[0].lock_wait_ms')" \
	'^[1-9][0-9]{2,}$'
t_eq "the estimate's lock wait is the statements' sum, and > 0" \
	"$(printf '%s' "$L" | jq -c '[.estimate.lock_wait_ms == ([.migrations[].statements[].lock_wait_ms] | add), .estimate.lock_wait_ms > 0, .estimate.migrate_ms == ([.migrations[].statements[].ms] | add)]')" \
	'[true,true,true]'
t_match "the lock_timeout retries are journaled as staging's" \
	"$(jq -c 'select(.data.kind == "statement" and .data.state == "lock_timeout") | .stage' "$runs"/*/journal.jsonl | sort -u)" '^"staging"$'

# --- a failing migration: exit 3, no complete estimate ---
t_run 3 "a migration that fails on staging: exit 3" "$PGRUNBOOK" staging --plan "$W/fail.yaml" \
	--confirm "replace $STG" --json
t_eq "stops at migrate" "$(printf '%s' "$out" | jq -c '[.steps[-1].step, .steps[-1].state, .estimate.complete, .sync, .verify]')" \
	'["migrate","failed",false,null,null]'
t_run 3 "as text" "$PGRUNBOOK" staging --plan "$W/fail.yaml" --confirm "replace $STG"
t_match "says there is no estimate" "$out" '^migrate on prod: no estimate'
t_nomatch "and gives none" "$out" 'migrate on prod: about'
t_eq "prod still untouched" "$(prod_state)" "$prod_before"

# --- a damaged archive: refused, staging intact ---
t_sql_do "create table staging_marker (x int); insert into staging_marker select generate_series(1, 5)" "$STG"
marker_before=$(marker)
oid_before=$(stg_oid)
cp "$archive" "$W/damaged.dump"
cp "$archive.json" "$W/damaged.dump.json"
printf 'X' | dd of="$W/damaged.dump" bs=1 seek=200 conv=notrunc 2>/dev/null
t_run 3 "a damaged archive: exit 3" "$PGRUNBOOK" staging --plan "$W/plan.yaml" --backup "$W/damaged.dump" \
	--confirm "replace $STG"
t_match "says the checksum does not match" "$err" 'checksum mismatch'
t_match "and that staging was not touched" "$err" "staging database $STG was not touched"
t_eq "staging intact (marker)" "$(marker)" "$marker_before"
t_eq "staging intact (same database)" "$(stg_oid)" "$oid_before"
t_eq "no copy left" "$(copies)" 0

sed "s/port=$PGPORT dbname=$STG/port=1 dbname=$STG/" "$W/plan.yaml" >"$W/unreachable.yaml"
t_run 2 "staging unreachable: exit 2" "$PGRUNBOOK" staging --plan "$W/unreachable.yaml" --confirm "replace $STG" --json
t_eq "  ... after finding the backup, before anything changed" \
	"$(printf '%s' "$out" | jq -c '[.steps[] | .step + ":" + .state]')" '["backup:done","connect:failed"]'
t_eq "  ... staging intact" "$(marker) $(stg_oid)" "$marker_before $oid_before"
sed "s/port=$PGPORT dbname=$STG/port=$PGPORT dbname=$PROD/" "$W/plan.yaml" >"$W/clash.yaml"
t_run 3 "a staging environment that is prod's database: refused" "$PGRUNBOOK" staging --plan "$W/clash.yaml" \
	--confirm "replace $PROD"
t_match "  ... saying why" "$err" "the staging environment \"staging\" is the target's own database $PROD"
t_eq "  ... prod untouched" "$(prod_state)" "$prod_before"
t_eq "  ... no copy made" "$(copies)" 0
t_createdb "${STG}_pgrunbook_new_abc123"
t_run 3 "a copy left by a killed staging: listed" "$PGRUNBOOK" staging --plan "$W/plan.yaml"
t_match "  ... with the DROP to run" "$err" "the database ${STG}_pgrunbook_new_abc123 is left over from an earlier staging .*DROP DATABASE"
t_eq "  ... not dropped" "$(t_sql "select count(*) from pg_database where datname = '${STG}_pgrunbook_new_abc123'" postgres)" 1
t_sql_do "drop database \"${STG}_pgrunbook_new_abc123\"" postgres
sed "/^  prod:/s/port=$PGPORT/port=1/" "$W/clash.yaml" >"$W/clash-unreachable.yaml"
prod_oid=$(t_sql "select oid from pg_database where datname = '$PROD'" postgres)
sed "s|backup: { dir: $W/backups }|backup: { dir: $W/devbackups }|" "$W/plan.yaml" >"$W/devbackup.yaml"
t_run 0 "a backup of dev (another database than the target's)" "$PGRUNBOOK" backup --plan "$W/devbackup.yaml" --env dev
t_run 3 "a target that cannot be reached, staging naming its database: refused" "$PGRUNBOOK" staging \
	--plan "$W/clash-unreachable.yaml" --backup "$(ls "$W"/devbackups/*.dump | head -n 1)" --confirm "replace $PROD"
t_match "  ... saying why" "$err" "cannot tell whether the staging database $PROD is the target's"
t_eq "  ... prod untouched" "$(prod_state)" "$prod_before"
t_eq "  ... prod is the same database (not dropped and replaced)" \
	"$(t_sql "select oid from pg_database where datname = '$PROD'" postgres)" "$prod_oid"
t_nomatch "  ... no swap" "$out" "swap: done"
t_eq "  ... no copy made" "$(copies)" 0
sed "s|backup: { dir: $W/backups }|backup: { dir: $W/nobackups }|" "$W/plan.yaml" >"$W/nobackup.yaml"
t_run 3 "no verified backup of the target: exit 3" "$PGRUNBOOK" staging --plan "$W/nobackup.yaml" \
	--confirm "replace $STG"
t_match "  ... saying so and how to take one" "$err" 'no backup to rehearse with.*'
t_match "  ... (the hint)" "$err" 'HINT: .*pgrunbook backup --plan'
t_eq "  ... staging intact" "$(marker) $(stg_oid)" "$marker_before $oid_before"
sed -i '/^staging:/d' "$W/base.yaml"
t_run 4 "a plan without a staging section: exit 4" "$PGRUNBOOK" staging --plan "$W/base.yaml"
t_match "  ... saying so" "$err" 'no staging section'
t_run 1 "an unknown option" "$PGRUNBOOK" staging --plan "$W/plan.yaml" --bogus
t_run 0 "--help" "$PGRUNBOOK" staging --help
t_match "  ... shows usage" "$out" '^Usage: pgrunbook staging --plan FILE'

t_done
