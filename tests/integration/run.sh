#!/usr/bin/env bash
# run.sh: the demo release end to end through `pgrunbook run` and headless `resume`: every stage in
# plan order in one journal, stops at each missing phrase and at the sync review (nothing done past
# it), the freeze in place while migrate and sync run and gone at the end, the report. Then a second
# run killed with SIGKILL during the freeze: `resume --headless` thaws what the journal recorded,
# freezes again, finishes, and the database ends thawed.
. "$top_srcdir/tests/lib.sh"

D=$T_TMP/demo
cleanup() {
	[ -n "${bgpid:-}" ] && kill -9 "$bgpid" 2>/dev/null
	"$PGRUNBOOK" demo --stop --dir "$D" >/dev/null 2>&1
}
trap cleanup EXIT

t_run 0 "the demo starts (200 orders)" "$PGRUNBOOK" demo --dir "$D" --rows 200 --no-wizard
P=$D/plan/demo.yaml
[ -f "$P" ] || { t_fail "the demo wrote its plan" "$out"; t_done; }
PGPORT=$(sed -n 's/.*"port": *\([0-9]*\).*/\1/p' "$D/cluster.json")
PGHOST=$(sed -n 's/.*"sockdir": *"\([^"]*\)".*/\1/p' "$D/cluster.json")
PGUSER=$(sed -n 's/.*"superuser": *"\([^"]*\)".*/\1/p' "$D/cluster.json")
export PGHOST PGPORT PGUSER
# The test's own sessions write while the target is frozen (read_only layer): like pgrunbook's.
export PGOPTIONS="-c default_transaction_read_only=off"
TGT=shop_prod STG=shop_staging SRC=shop_dev

# The state of the freeze layers on a database: "connection_limit read_only_setting app_flag".
freeze_state() {
	local db=${1:-$TGT}
	printf '%s %s %s' \
		"$(t_sql "select datconnlimit from pg_database where datname = '$db'" postgres)" \
		"$(t_sql "select coalesce((select string_agg(c, ',' order by c) from pg_db_role_setting s, unnest(s.setconfig) c
			where s.setdatabase = (select oid from pg_database where datname = '$db') and s.setrole = 0
			and c like 'default_transaction_read_only%'), 'none')" postgres)" \
		"$(t_sql "select value from \"AppSetting\" where key = 'maintenance'" "$db")"
}
tables_sum() {  # DB: md5 of every user table's rows, in order
	t_sql "select string_agg(format('%s %s', c.oid::regclass, (xpath('/row/m/text()',
		query_to_xml(format('select md5(coalesce(string_agg(t::text, ''|'' order by t::text), '''')) as m from %s t',
		c.oid::regclass), false, false, '')))[1]::text), ' ' order by c.oid::regclass::text)
		from pg_class c join pg_namespace n on n.oid = c.relnamespace
		where c.relkind = 'r' and n.nspname = 'public'" "$1"
}
pending() {
	"$PGRUNBOOK" migrate status --plan "$P" --json | jq -r '[.migrations[] | select(.state == "pending")] | length'
}

t_eq "not frozen before the run" "$(freeze_state)" "-1 none off"
n_pending=$(pending)
t_match "shop_prod has pending migrations" "$n_pending" '^[1-9]'
stg_before=$(tables_sum "$STG")
prod_before=$(tables_sum "$TGT")

# --- 1. run without phrases: preflight and backup done, stops at staging; nothing else changed ---
t_run 3 "run stops at the first stage that needs a phrase" "$PGRUNBOOK" run --plan "$P" --json
j=$out
RUN=$(printf '%s' "$j" | jq -r .run_id)
t_match "the run has an id" "$RUN" '^[0-9]{8}T[0-9.]+Z-[0-9a-f]+$'
t_eq "stopped at staging" "$(printf '%s' "$j" | jq -r .stopped_at)" "staging"
t_eq "stages: preflight and backup done, staging failed" \
	"$(printf '%s' "$j" | jq -r '[.stages[] | "\(.stage)=\(.status)"] | join(" ")')" "preflight=done backup=done staging=failed"
t_match "the refusal names the phrase" "$(printf '%s' "$j" | jq -r '.stages[-1].error.message, .stages[-1].error.hint')" \
	"replace $STG"
t_eq "the backup is verified" "$(printf '%s' "$j" | jq -r '.stages[1].result.verified')" "true"
t_match "budgets are reported per stage" "$(printf '%s' "$j" | jq -r '.stages[1] | "\(.budget_ms) \(.over_budget) \(.ms)"')" \
	'^600000 false [0-9]+$'
t_eq "staging untouched" "$(tables_sum "$STG")" "$stg_before"
t_eq "prod untouched" "$(tables_sum "$TGT")" "$prod_before"
t_eq "prod not frozen" "$(freeze_state)" "-1 none off"
t_eq "no migration applied" "$(pending)" "$n_pending"
t_run 0 "runs lists the run as failed (resumable)" "$PGRUNBOOK" runs --json
t_eq "the run is not finished" "$(printf '%s' "$out" | jq -r --arg r "$RUN" '.[] | select(.id == $r) | "\(.state) \(.finished)"')" \
	"failed null"

# --- over budget: a plan whose backup budget is 1 ms ---
P1=$D/plan/demo-tight.yaml
sed 's/^  backup: 10min$/  backup: 1ms/' "$P" >"$P1"
t_match "the tight plan has a 1 ms backup budget" "$(cat "$P1")" '^  backup: 1ms$'
t_run 3 "a run of the tight plan (stops at staging)" "$PGRUNBOOK" run --plan "$P1" --json
t_eq "backup flagged over budget" "$(printf '%s' "$out" | jq -r '.stages[] | select(.stage == "backup") | "\(.budget_ms) \(.over_budget)"')" \
	"1 true"
t_eq "preflight has no budget" "$(printf '%s' "$out" | jq -r '.stages[] | select(.stage == "preflight") | "\(.budget_ms) \(.over_budget)"')" \
	"null false"
RUN1=$(printf '%s' "$out" | jq -r .run_id)
BK1=$(printf '%s' "$out" | jq -r '.stages[] | select(.stage == "backup") | .result.path')
t_run 0 "report of the tight run" "$PGRUNBOOK" report "$RUN1"
t_match "the report flags the backup stage" "$out" '^\| backup \| done \| .* \| 1ms \*\*over budget\*\* \| '
t_match "the over_budget record is listed" "$out" '\| backup \| over budget \| backup took '
"$PGRUNBOOK" run --plan "$P1" >"$T_TMP/tight.out" 2>&1
t_match "text mode: OVER BUDGET after the backup" "$(cat "$T_TMP/tight.out")" 'time: .* of 1ms  OVER BUDGET'
# The run's own backup damaged after the run: resume re-checks it (not some later backup) and says so.
t_match "the tight run's backup is a file" "$BK1" '\.dump$'
printf 'x' >>"$BK1"
t_run 3 "resume of a run whose backup was damaged (stops at staging again)" "$PGRUNBOOK" resume "$RUN1" --headless
t_match "resume says the run's backup no longer counts, and why" "$out$err" \
	"the run's backup ${BK1//./\\.} no longer counts: .*(SHA-256|checksum|size)"
t_nomatch "it is not reported intact" "$out" "still verified and intact"
rm -f "$BK1"
t_run 3 "resume of a run whose backup was deleted" "$PGRUNBOOK" resume "$RUN1" --headless
t_match "resume says the deleted backup no longer counts" "$out$err" "the run's backup ${BK1//./\\.} no longer counts"

# --- 2. resume with the phrases: staging, the freeze, migrate, then the sync diff waits for review ---
t_run 3 "resume --headless runs on to the sync review" "$PGRUNBOOK" resume "$RUN" --headless \
	--confirm "replace $STG" --confirm "freeze $TGT" --confirm "deploy $TGT"
t_match "it says where it resumed" "$out" "resuming .* at staging"
t_match "the staging estimate is printed" "$out" "migrate estimate for prod: .* \(measured on staging\)"
t_match "the review file is named" "$out$err" "sync-review\.txt"
REVIEW=$(printf '%s' "$out$err" | grep -o '/[^ ]*/sync-review\.txt' | head -1)
[ -f "$REVIEW" ] && t_ok "the review file exists" || t_fail "the review file exists" "$out$err"
t_eq "migrations applied on prod" "$(pending)" "0"
t_eq "staging got the migrations too" \
	"$(t_sql "select count(*) from _prisma_migrations where finished_at is not null and rolled_back_at is null" "$STG")" \
	"$(t_sql "select count(*) from _prisma_migrations where finished_at is not null and rolled_back_at is null" "$TGT")"
t_eq "prod frozen while the run waits: no connections, read-only, the app's flag on" "$(freeze_state)" \
	"0 default_transaction_read_only=on on"
t_match "the run tells it is still frozen" "$out" "the target \(prod\) is still frozen by this run"
t_sql_do "do \$\$ begin if not exists (select from pg_roles where rolname = 'app_user') then create role app_user login; end if; end \$\$" postgres
t_run 2 "an application role cannot connect while frozen" "$PSQL" -X -d "$TGT" -U app_user -c 'select 1'
t_match "refused by the connection limit" "$err" "too many connections"
t_eq "the new sync rows are not there yet" "$(t_sql "select count(*) from \"IngredientPackaging\"" "$TGT")" "0"

# --- 3. resume with the review: sync applied, verify, thaw, report; the run is done ---
t_run 0 "resume --headless with the review finishes the run" "$PGRUNBOOK" resume "$RUN" --headless \
	--review "$REVIEW" --confirm "apply $TGT" --json
j=$out
t_eq "every remaining stage done" "$(printf '%s' "$j" | jq -r '[.stages[] | "\(.stage)=\(.status)"] | join(" ")')" \
	"sync=done verify=done maintenance_off=done report=done"
t_eq "rows synced" "$(t_sql "select count(*) from \"IngredientPackaging\"" "$TGT")" \
	"$(t_sql "select count(*) from \"IngredientPackaging\"" "$SRC")"
t_eq "verify compared row counts with the backup" "$(printf '%s' "$j" | jq -r '.stages[1].result.baseline.source')" \
	"backup_manifest"
t_eq "thawed: connections, read-only setting and the app's flag as before" "$(freeze_state)" "-1 none off"
t_run 0 "an application role connects again" "$PSQL" -X -d "$TGT" -U app_user -c 'select 1'
t_run 0 "runs: the run is done" "$PGRUNBOOK" runs --json
t_eq "state done" "$(printf '%s' "$out" | jq -r --arg r "$RUN" '.[] | select(.id == $r) | .state')" "done"
RDIR=$(printf '%s' "$j" | jq -r .run_dir)
[ -f "$RDIR/report.md" ] && t_ok "report.md written" || t_fail "report.md written" "$RDIR"
md=$(cat "$RDIR/report.md" 2>/dev/null)
t_match "report: stages with budgets" "$md" '^\| migrate \| done \| .* \| 10min \| '
t_match "report: row counts before and after" "$md" '^\| public\.Order \| 200 \| 200 \| same \|$'
t_match "report: verify" "$md" '^## Verify$'
t_match "report: maintenance layers" "$md" 'freeze block: applied'
t_match "report: thaw" "$md" 'thaw block: undone'
t_match "report: confirmations" "$md" 'confirmed'
t_match "report: staging" "$md" '^## Staging rehearsal$'
t_run 3 "a finished run cannot be resumed" "$PGRUNBOOK" resume "$RUN" --headless
t_match "it says so" "$err" "is finished"

# --- 4. kill -9 during the freeze, then resume thaws and finishes ---
"$PGRUNBOOK" run --plan "$P" --confirm "replace $STG" --confirm "freeze $TGT" >"$T_TMP/run2.out" 2>&1 &
bgpid=$!
for _ in $(seq 1 600); do
	[ "$(t_sql "select datconnlimit from pg_database where datname = '$TGT'" postgres)" = 0 ] && break
	kill -0 "$bgpid" 2>/dev/null || break
	sleep 0.1
done
kill -9 "$bgpid" 2>/dev/null
wait "$bgpid" 2>/dev/null
bgpid=
RUN2=$(sed -n 's/^run \([^ :]*\): .*/\1/p' "$T_TMP/run2.out" | head -1)
t_match "the second run started" "$RUN2" '^[0-9]{8}T[0-9.]+Z-[0-9a-f]+$'
t_match "killed while frozen: the connection limit is 0" "$(freeze_state)" '^0 '
t_run 0 "maintenance status says frozen by the killed run" "$PGRUNBOOK" maintenance status --plan "$P" --json
t_eq "frozen by run 2" "$(printf '%s' "$out" | jq -r '"\(.frozen) \(.run)"')" "true $RUN2"
t_run 0 "resume --headless after the kill" "$PGRUNBOOK" resume "$RUN2" --headless \
	--confirm "freeze $TGT" --json
j=$out
t_eq "first the interrupted freeze is thawed, then every stage from maintenance on" \
	"$(printf '%s' "$j" | jq -r '[.stages[] | "\(.stage)=\(.status)"] | join(" ")')" \
	"thaw_interrupted=done maintenance=done migrate=done sync=done verify=done maintenance_off=done report=done"
t_eq "thawed at the end" "$(freeze_state)" "-1 none off"
jr=$("$PGRUNBOOK" report "$RUN2")
t_match "the report shows the thaw of the interrupted freeze" "$jr" 'thaw block: undone'
journal=$(find "$XDG_STATE_HOME" -path "*$RUN2*" -name journal.jsonl | head -1)
undone=$(grep -n '"kind":"thaw"' "$journal" | grep '"state":"undone"' | head -1 | cut -d: -f1)
refrozen=$(grep -n '"kind":"freeze"' "$journal" | grep '"state":"applied"' | grep '"layer":"block"' | tail -1 | cut -d: -f1)
[ -n "$undone" ] && [ -n "$refrozen" ] && [ "$undone" -lt "$refrozen" ] && t_ok "thaw then freeze" ||
	t_fail "thaw then freeze" "undone at $undone, refrozen at $refrozen"

# --- 5. a restore rollback of a run that is frozen at the sync review: the run's freeze layers stay
# with the failed database and are journaled as thawed for the target; maintenance off ends the rest ---
t_sql_do "insert into \"Unit\" (code, name, \"createdAt\") values ('RB_T5', 'run.sh unit', now())" "$SRC"
mkdir -p "$D/plan/demo/prisma/migrations/20991231000000_t5_note"
printf 'ALTER TABLE "Unit" ADD COLUMN "t5Note" text;\n' >"$D/plan/demo/prisma/migrations/20991231000000_t5_note/migration.sql"
t_run 3 "run 3 stops frozen at the sync review" "$PGRUNBOOK" run --plan "$P" --confirm "replace $STG" \
	--confirm "freeze $TGT" --json
RUN3=$(printf '%s' "$out" | jq -r .run_id)
t_eq "run 3 waits at the sync review" "$(printf '%s' "$out" | jq -r .stopped_at)" "sync"
t_match "the target is frozen by run 3" "$(freeze_state)" '^0 default_transaction_read_only=on on$'
t_run 0 "restore rollback of run 3" "$PGRUNBOOK" rollback --plan "$P" --run "$RUN3" --restore \
	--confirm "restore $TGT" --json
RB=$(printf '%s' "$out" | jq -r .run_id)
t_eq "the restored target opens: connections, no read-only default, the app flag as in the backup" \
	"$(freeze_state)" "-1 none off"
failed=$(t_sql "select datname from pg_database where datname like '${TGT}\_failed\_%' order by oid desc limit 1" postgres)
t_match "the failed database keeps the freeze" "$(freeze_state "$failed")" '^0 default_transaction_read_only=on on$'
rbj=$(find "$XDG_STATE_HOME" -path "*$RB*" -name journal.jsonl | head -1)
t_eq "the rollback journals the run's layers on the database as thawed by the restore" \
	"$(jq -r 'select(.type == "step" and .data.kind == "thaw") | .data.layer + ":" + .data.state' "$rbj" | sort | paste -sd' ')" \
	"block:undone marker:undone read_only:undone"
t_run 0 "maintenance status after the rollback" "$PGRUNBOOK" maintenance status --plan "$P" --json
t_eq "no layer on the restored database; the app's hook is still to undo (run 3's)" \
	"$(printf '%s' "$out" | jq -c '[.frozen, .layers_in_place, .pending_layers, .run]')" "[true,[],[\"hook_sql\"],\"$RUN3\"]"
t_run 0 "maintenance off ends what is left of run 3's freeze (the hook)" "$PGRUNBOOK" maintenance off --plan "$P" \
	--run "$RUN3" --json
t_eq "still open afterwards" "$(freeze_state)" "-1 none off"
t_run 0 "maintenance status after the thaw" "$PGRUNBOOK" maintenance status --plan "$P" --json
t_eq "not frozen any more" "$(printf '%s' "$out" | jq -r .frozen)" "false"
t_eq "the restored target has no t5Note column (the backup's schema)" \
	"$(t_sql "select count(*) from information_schema.columns where column_name = 't5Note'" "$TGT")" 0
[ -n "$failed" ] && t_sql_do "drop database \"$failed\"" postgres

t_done
