#!/usr/bin/env bash
# backup_precondition.sh: migrate deploy and sync apply run on their own need a verified backup of
# their target taken by `pgrunbook backup` within backup.max_age, or the typed waiver
# (DESIGN.md "Preconditions"): refused without one, accepted with one (journaled as the backup
# used), refused again when it is too old or damaged.
. "$top_srcdir/tests/lib.sh"

unset PGAPPNAME PGCONNECT_TIMEOUT
runs="$XDG_STATE_HOME/pgrunbook/runs"
S=${T_DB}_src
W=$T_TMP/w
mkdir -p "$W/prisma/migrations/20260101000000_add_note" "$W/backups"
cleanup() { "$PSQL" -X -q -d postgres -c "drop database if exists \"$S\"" >/dev/null 2>&1; }
trap cleanup EXIT

printf 'provider = "postgresql"\n' >"$W/prisma/migrations/migration_lock.toml"
printf 'ALTER TABLE "Item" ADD COLUMN note text;\n' >"$W/prisma/migrations/20260101000000_add_note/migration.sql"
t_createdb "$S"
for db in "$S" "$T_DB"; do
	t_sql_do 'create table "Item" (id int primary key, name text not null)' "$db"
done
t_sql_do "insert into \"Item\" select g, 'item ' || g from generate_series(1, 20) g" "$S"
t_sql_do "insert into \"Item\" select g, 'item ' || g from generate_series(1, 10) g" "$T_DB"
t_sql_do "create table ev (id int, k int) partition by list (k);
create table ev_1 partition of ev for values in (1); create table ev_2 partition of ev for values in (2);
insert into ev select g, 1 + g % 2 from generate_series(1, 30) g" "$T_DB"

plan() {  # plan MAX_AGE
	cat >"$W/plan.yaml" <<EOF
name: precondition test
environments:
  dev:  { conninfo: "host=$PGHOST port=$PGPORT dbname=$S" }
  prod: { conninfo: "host=$PGHOST port=$PGPORT dbname=$T_DB" }
  alias: { conninfo: "host=$PGHOST port=$PGPORT dbname=$T_DB application_name=alias" }
source: dev
target: prod
backup: { dir: ./backups, format: custom, max_age: $1 }
migrations: { dir: prisma/migrations }
verify: { row_counts: shrink_forbidden, orphans: auto }
sync:
  tables:
    Item: { mode: append, columns: [id, name] }
EOF
}
plan 24h
P=$W/plan.yaml
last_journal() { printf '%s/journal.jsonl' "$(ls -1d "$runs"/*/ | sort | tail -n 1)"; }

# --- no backup: both refuse and say how to take one ---
t_run 3 "migrate deploy without a backup or waiver" "$PGRUNBOOK" migrate deploy --plan "$P"
t_match "says no backup counts" "$err" "No backup counts"
t_match "says how to take one" "$err" "pgrunbook backup --plan FILE"
t_match "and how to waive it" "$err" "--waive-backup \"waive-backup $T_DB\""
t_eq "nothing was deployed" "$(t_sql "select count(*) from information_schema.columns where table_name = 'Item' and column_name = 'note'")" 0
t_run 0 "sync diff --out" "$PGRUNBOOK" sync diff --plan "$P" --out "$W/review"
t_run 3 "sync apply without a backup or waiver" "$PGRUNBOOK" sync apply --plan "$P" --review "$W/review" \
	--confirm "apply $T_DB"
t_match "says no backup counts" "$err" "No backup counts"
t_eq "nothing was written" "$(t_sql 'select count(*) from "Item"')" 10

# --- a backup of another environment of the plan does not count, even of the same database ---
t_run 0 "pgrunbook backup --env alias" "$PGRUNBOOK" backup --plan "$P" --env alias --json
t_run 3 "migrate deploy: the alias environment's backup does not count for prod" "$PGRUNBOOK" migrate deploy --plan "$P"
t_match "says no backup counts" "$err" "No backup counts"

# --- a verified backup taken by pgrunbook counts ---
t_run 0 "pgrunbook backup" "$PGRUNBOOK" backup --plan "$P" --json
bpath=$(printf '%s' "$out" | jq -r .path)
t_eq "the backup is verified" "$(printf '%s' "$out" | jq -r .verified)" true
t_run 0 "migrate deploy with the verified backup (no waiver)" "$PGRUNBOOK" migrate deploy --plan "$P"
t_eq "the migration ran" "$(t_sql "select count(*) from information_schema.columns where table_name = 'Item' and column_name = 'note'")" 1
t_eq "the journal names the backup used" \
	"$(jq -r 'select(.type == "step" and .data.kind == "backup_found") | .data.path' "$(last_journal)")" "$bpath"
t_eq "and no waiver" "$(jq -c 'select(.type == "stage_waived")' "$(last_journal)" | wc -l)" 0

# The backup's manifest as verify's baseline: partitions (listed by the manifest) are counted
# through their parent by verify, not reported gone.
t_run 0 "verify against the backup's manifest" "$PGRUNBOOK" verify --plan "$P" --baseline "$bpath.json" --json
t_eq "no table is reported gone" "$(printf '%s' "$out" | jq '[.checks[] | select(.status == "gone")] | length')" 0
t_eq "the partitioned table is compared" \
	"$(printf '%s' "$out" | jq -r '.checks[] | select(.kind == "row_counts" and .object == "public.ev") | .result')" pass

t_run 0 "sync diff --out after the migration" "$PGRUNBOOK" sync diff --plan "$P" --out "$W/review"
t_run 0 "sync apply with the verified backup (no waiver)" "$PGRUNBOOK" sync apply --plan "$P" --review "$W/review" \
	--confirm "apply $T_DB"
t_eq "the rows were appended" "$(t_sql 'select count(*) from "Item"')" 20
t_eq "the journal names the backup used" \
	"$(jq -r 'select(.type == "step" and .data.kind == "backup_found") | .data.path' "$(last_journal)")" "$bpath"

# --- too old: max_age 1s ---
t_sql_do "delete from \"Item\" where id > 10"
plan 1s
sleep 2
t_run 0 "sync diff --out with max_age 1s" "$PGRUNBOOK" sync diff --plan "$P" --out "$W/review"
t_run 3 "sync apply: the backup is older than backup.max_age" "$PGRUNBOOK" sync apply --plan "$P" \
	--review "$W/review" --confirm "apply $T_DB"
t_match "says no backup counts" "$err" "No backup counts"
t_eq "nothing was written" "$(t_sql 'select count(*) from "Item"')" 10

# --- damaged: the archive no longer matches its manifest ---
plan 24h
t_run 0 "sync diff --out with max_age 24h" "$PGRUNBOOK" sync diff --plan "$P" --out "$W/review"
printf 'x' | dd of="$bpath" bs=1 seek=100 conv=notrunc status=none
t_run 3 "sync apply: the only backup is damaged" "$PGRUNBOOK" sync apply --plan "$P" --review "$W/review" \
	--confirm "apply $T_DB"
t_match "says no backup counts" "$err" "No backup counts"
t_eq "nothing was written" "$(t_sql 'select count(*) from "Item"')" 10
t_run 0 "the typed waiver still works" "$PGRUNBOOK" sync apply --plan "$P" --review "$W/review" \
	--confirm "apply $T_DB" --waive-backup "waive-backup $T_DB"
t_eq "the rows were appended" "$(t_sql 'select count(*) from "Item"')" 20
t_eq "the waiver is journaled" "$(jq -c 'select(.type == "stage_waived")' "$(last_journal)" | wc -l)" 1

t_done
