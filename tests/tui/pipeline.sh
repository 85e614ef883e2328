# pipeline.sh: the wizard's action screens in tmux at 80x24 on a demo cluster: staging (a wrong
# phrase runs nothing and leaves the staging database as it was; the right one replaces it, applies
# the migrations there and shows the estimate, which the migrate screen shows too), maintenance (the
# other session listed with its own phrase, the layers, the database really frozen and the session
# terminated), maintenance_off (thawed), and guided rollback from F8 (the path and its phrase, a
# wrong phrase changes nothing, the restore leaves prod with the backup's row counts and keeps the
# failed database), then resume finds the rehearsal again.
. "$top_srcdir/tests/lib.sh"

command -v tmux >/dev/null || t_skip "tmux is not installed (Debian package tmux)"
command -v jq >/dev/null || t_skip "jq is not installed (Debian package jq)"

export TERM=xterm-256color LANG=C.UTF-8 LC_ALL=C.UTF-8 TZ=UTC HOME XDG_STATE_HOME
unset PGAPPNAME
sock="pgrbp$$"
D=$T_TMP/demo
app=""
cleanup() {
	tmux -L "$sock" kill-server >/dev/null 2>&1
	[ -n "$app" ] && kill "$app" 2>/dev/null
	[ -n "${hookd:-}" ] && kill "$hookd" 2>/dev/null
	"$PGRUNBOOK" demo --stop --dir "$D" >/dev/null 2>&1
}
trap cleanup EXIT

. "$top_srcdir/tests/tui/lib.sh"
journal() { cat "$XDG_STATE_HOME"/pgrunbook/runs/*/journal.jsonl; }

t_run 0 "demo --no-wizard starts the demo cluster" "$PGRUNBOOK" demo --dir "$D" --no-wizard --rows 50
PLAN=$D/plan/demo.yaml
# The demo cluster's connection, from the plan's prod environment (socket, port, user).
CI=$(sed -n 's/^ *prod: *{ *conninfo: *"\(.*\) *dbname=shop_prod".*/\1/p' "$PLAN")
[ -n "$CI" ] || t_fail "the demo plan names its cluster" "$(cat "$PLAN")"
dsql() { "$PSQL" -X -q -A -t -d "$CI dbname=$1" -c "$2"; }
connlimit() { dsql postgres "select datconnlimit from pg_database where datname = 'shop_prod'"; }
read_only() { dsql postgres "select count(*) from pg_db_role_setting s join pg_database d on d.oid = s.setdatabase
	where d.datname = 'shop_prod' and s.setrole = 0 and 'default_transaction_read_only=on' = any (s.setconfig)"; }

start 80 24 --plan "$PLAN"
expect "preflight runs first" '^> preflight +done' 30
t_match "staging is offered (not unavailable)" "$screen" '^  staging +pending +│'
t_match "maintenance is offered" "$screen" '^  maintenance +pending +│'
t_match "maintenance_off is offered" "$screen" '^  maintenance_off pending +│'
keys F8
expect "F8 before backup does not open rollback, and says where it opens" 'rollback: opens from the stages after backup'
t_nomatch "no rollback view" "$screen" 'Rollback of this run'

keys ']'
expect "] opens the checklist" 'Checklist before the first change'
keys Space Space Space Space
expect "all four ticked" 'All 4 ticked'
keys ']'
expect "] opens backup" 'Stage: backup'
keys F2
expect "the backup ends verified" 'Backup verified\.' 90
dump=$(ls "$D"/plan/backups/*.dump)
t_eq "one dump" "$(printf '%s\n' "$dump" | grep -c '\.dump$')" 1
RUN=$(ls "$XDG_STATE_HOME/pgrunbook/runs")

# --- staging: the wrong phrase changes nothing, the right one rehearses ---
dsql shop_staging "create table staging_marker (id int)"
keys ']'
expect "] opens staging" 'Stage: staging \(rehearsal\)'
expect "it names this run's backup" "Backup: ${dump##*/} \\(this"
expect "with its age" "finished [0-9]+ s ago\\)"
t_match "this run's" "$(main_text)" "Backup: ${dump##*/} \\(this run's, finished [0-9]+ s ago\\)"
t_match "and the staging database it replaces" "$(main_text)" 'Into: shop_staging \(staging\), replaced'
keys F2
expect "F2 asks for the typed phrase" 'Confirm: Staging rehearsal'
t_match "the phrase names the staging database" "$screen" 'replace shop_staging'
type_text "replace shop_stagin"
keys Enter
expect "a wrong phrase is refused" 'Wrong phrase \(1 of 3\): nothing ran'
keys Escape
expect "Esc: nothing ran" 'staging: cancelled at the confirmation; nothing ran'
t_eq "the staging database is untouched" "$(dsql shop_staging "select to_regclass('public.staging_marker') is not null")" "t"
t_eq "the miss is journaled" "$(journal | jq -r 'select(.type=="confirm_miss" and .stage=="staging") | .type')" "confirm_miss"
t_eq "the typed text is not" "$(journal | grep -c 'shop_stagin"')" 0
t_eq "no rehearsal started" "$(journal | jq -r 'select(.type=="stage_started" and .stage=="staging") | .type')" ""
t_match "the stage is still pending" "$screen" '^> staging +pending'
keys F2
expect "F2 asks again" 'Confirm: Staging rehearsal'
type_text "replace shop_staging"
keys Enter
expect "the rehearsal ends done" 'Rehearsal done on shop_staging\.' 120
expect "the sidebar shows staging done" '^> staging +done'
ms=$(journal | jq -r 'select(.type=="stage_result" and .stage=="staging") | .data.estimate.migrate_ms')
wait_ms=$(journal | jq -r 'select(.type=="stage_result" and .stage=="staging") | .data.estimate.lock_wait_ms')
t_match "the journal has an estimate" "$ms $wait_ms" '^[0-9]+ [0-9]+$'
t_match "the screen shows the estimate for prod" "$(main_text)" \
	"Estimate: migrate on prod about [0-9:]+ \\($ms ms\\), $wait_ms ms waiting for locks"
t_match "the sync diff's counts" "$(main_text)" 'Sync diff: 5 tables, [0-9]+ to insert, [0-9]+ to update, [0-9]+ to delete, [0-9]+ conflicts'
t_match "verify on staging" "$(main_text)" 'Verify on staging: [0-9]+ checks, [0-9]+ passed, 0 failed'
t_eq "the staging database was replaced" "$(dsql shop_staging "select to_regclass('public.staging_marker') is null")" "t"
t_eq "the migrations were applied there" \
	"$(dsql shop_staging 'select count(*) from "_prisma_migrations" where finished_at is not null')" \
	"$(dsql shop_dev 'select count(*) from "_prisma_migrations" where finished_at is not null')"
t_eq "prod has not changed" "$(dsql shop_prod 'select count(*) from "_prisma_migrations"')" 4
t_eq "each step journaled done" \
	"$(journal | jq -r 'select(.type=="step" and .stage=="staging" and .data.kind=="staging") | "\(.data.step)=\(.data.state)"' | tr '\n' ' ')" \
	"backup=done confirm=done restore=done swap=done migrate=done sync=done verify=done "
tm resize-window -t d -x 100 -y 45
expect "with the rows for them, the steps are listed" '│  swap: done: shop_staging dropped'
t_match "the restore step" "$screen" '│  restore: done: into shop_staging_pgrunbook_new_'
tm resize-window -t d -x 80 -y 24
expect "back at 80x24" 'Rehearsal done on shop_staging\.'

# --- maintenance: the other session listed and asked for, the layers, frozen ---
PGAPPNAME=rb-app "$PSQL" -X -q -d "$CI dbname=shop_prod" -c 'select pg_sleep(300)' >/dev/null 2>&1 &
app=$!
for _ in $(seq 100); do
	[ "$(dsql postgres "select count(*) from pg_stat_activity where application_name = 'rb-app' and wait_event = 'PgSleep'")" = 1 ] && break
	sleep 0.1
done
apid=$(dsql postgres "select pid from pg_stat_activity where application_name = 'rb-app'")
keys ']'
expect "] opens maintenance" 'Stage: maintenance \(write freeze\)'
expect "the status: not frozen, the other session counted" 'Status: not frozen; 1 other session( |$)'
t_match "the layers the plan enables" "$(main_text)" 'Freeze shop_prod \(prod\): hook_sql, block, read_only, terminate \(ask\), marker'
t_eq "nothing frozen yet" "$(connlimit)" "-1"
keys F2
expect "F2 asks to freeze" 'Confirm: Maintenance on'
t_match "the phrase" "$screen" 'freeze shop_prod'
t_match "it says a session is connected" "$(main_text)" '1 other session is connected'
type_text "freeze shop_prod"
keys Enter
expect "then the sessions with their own phrase" 'Confirm: Terminate sessions'
t_match "the session is listed" "$(main_text)" "pid $apid postgres \"rb-app\""
# The phrase wraps at 80x24 (the dialog sits right of the sidebar): read it whole, across its rows.
t_match "the terminate phrase names the listed sessions" "$(main_text)" \
	'type exactly: terminate 1 sessions on shop_prod list [0-9a-f]{4} >'
tphrase=$(grep -oE -m1 'terminate 1 sessions on shop_prod list [0-9a-f]{4}' <<<"$(main_text)")
t_eq "still nothing frozen while it asks" "$(connlimit)" "-1"
type_text "$tphrase"
keys Enter
expect "frozen" 'Frozen: shop_prod\.' 60
t_match "the block layer" "$screen" '│    block +applied +connection limit 0'
t_match "the read_only layer" "$screen" '│    read_only +applied '
t_match "the hook" "$screen" '│    hook_sql +applied '
t_match "the terminate layer" "$screen" '│    terminate +applied '
t_match "the slipped writes are reported" "$(main_text)" 'Slipped writes: '
expect "the status after the freeze" "Status: frozen since [-0-9T:.Z]+"
t_match "this run" "$(main_text)" "by run $RUN \\(this run\\)"
t_match "the sidebar shows maintenance done" "$screen" '^> maintenance +done'
t_eq "the database is frozen: connection limit 0" "$(connlimit)" 0
t_eq "and read-only for new sessions" "$(read_only)" 1
t_eq "the app flag is on" "$(dsql shop_prod "select value from \"AppSetting\" where key = 'maintenance'")" "on"
gone=0
for _ in $(seq 50); do
	[ "$(dsql postgres "select count(*) from pg_stat_activity where pid = $apid")" = 0 ] && { gone=1; break; }
	sleep 0.1
done
t_eq "the other session was terminated" "$gone" 1
wait "$app" 2>/dev/null
app=""
keys F2
expect "F2 again: already frozen by this run, nothing runs" 'shop_prod is already frozen by this run'
keys Enter
expect "the message closes" 'Frozen: shop_prod\.'
t_eq "one freeze started, no other" "$(journal | jq -r 'select(.type=="stage_started" and .stage=="maintenance") | .type' | wc -l)" 1
t_eq "still frozen" "$(connlimit)" 0

# --- while frozen, the checklist holds back neither the thaw nor rollback ---
keys '[' '[' '['
expect "back on the checklist" 'All 4 ticked'
keys Space
expect "one item unticked" '3 of 4 ticked'
keys F8
expect "F8 opens rollback from the checklist while this run has a backup" 'Rollback of this run'
expect "it chooses (nothing to roll back yet)" 'Path: none' 30
keys Escape
expect "Esc goes back to the checklist" '3 of 4 ticked'
keys ']'
expect "] goes past the unticked checklist to maintenance_off" 'Stage: maintenance_off \(thaw\)'
keys '['
expect "[ goes back to the checklist" '3 of 4 ticked'
keys Space
expect "ticked again" 'All 4 ticked'

# --- quitting while frozen asks first, and says how to thaw ---
keys ']' ']' ']'
expect "back on maintenance" 'Stage: maintenance \(write freeze\)'
keys q
expect "q while frozen asks first" 'shop_prod is frozen by this run: quit'
t_match "and says the freeze stays" "$(main_text)" 'quit anyway\? The freeze stays'
keys n
expect "n: still here" 'Stage: maintenance \(write freeze\)'
t_nomatch "the question closed" "$screen" 'quit anyway'
keys F10
expect "F10 asks too" 'shop_prod is frozen by this run: quit'
keys y
expect "y quits" 'wizard finished: 0'
t_match "on exit it says the freeze stays and how to thaw" "$(tm capture-pane -p -J -t d | tr -s ' \n' ' ')" \
	"shop_prod is still frozen by run $RUN .*pgrunbook maintenance off --plan $PLAN"
t_eq "the freeze stays" "$(connlimit)" 0
start 80 24 resume
expect "resume opens maintenance again" 'Stage: maintenance \(write freeze\)'

# --- migrate shows the estimate and deploys ---
keys ']'
expect "] opens migrate with the staging estimate" "Staging estimate: [0-9:]+ \\($ms ms\\), $wait_ms ms lock waits" 20
expect "the preview lists the pending migrations" '3 pending on shop_prod' 20
keys F2
expect "F2 asks to deploy" 'Apply 3 pending migrations to prod'
keys y
expect "deployed" 'Deploy done: 3 migrations applied' 60
t_eq "prod has 7 migrations" "$(dsql shop_prod 'select count(*) from "_prisma_migrations"')" 7

# --- maintenance_off: thawed ---
keys ']' ']' ']'
expect "] ] ] opens maintenance_off" 'Stage: maintenance_off \(thaw\)'
expect "its status: frozen" "Status: frozen since [-0-9T:.Z]+"
t_match "by this run" "$(main_text)" "by run $RUN \\(this run\\)"
keys F2
expect "thawed" 'Thawed: shop_prod\.' 60
t_match "the block layer undone" "$screen" '│    block +undone '
t_match "the writes since the freeze" "$(main_text)" 'Writes since the freeze \(pgrunbook.s own included\): [0-9]+ transactions'
expect "the status after the thaw" 'Status: not frozen'
t_eq "connections allowed again" "$(connlimit)" "-1"
t_eq "read-only mode gone" "$(read_only)" 0
t_eq "the app flag is off" "$(dsql shop_prod "select value from \"AppSetting\" where key = 'maintenance'")" "off"
t_match "the sidebar shows maintenance_off done" "$screen" '^> maintenance_off done'

# --- rollback from F8: the choice, a wrong phrase, then the restore ---
keys F8
expect "F8 opens rollback" 'Rollback of this run'
expect "it chose the restore" 'Path: restore of shop_prod' 30
# At 80x24 the first rows say what matters: the backup and its age, and what is lost.
t_match "the backup and its age first" "$(main_text)" "Backup: ${dump##*/}, finished [0-9]+ (s|min) ago"
t_match "the data loss is on the first screen" "$(main_text)" \
	'Data loss: Everything written to shop_prod after it is lost \(it stays readable in the failed database'
t_match "the phrase it names" "$screen" 'Phrase: restore shop_prod'
t_match "the rest is below: it says how to scroll" "$screen" '-- 0 above, [0-9]+ below: Up/Down PgUp/PgDn --'
keys Down Down Down Down
expect "Down scrolls" '-- 4 above, [0-9]+ below'
t_match "the steps" "$(main_text)" 'Steps: restore \(into shop_prod_rollback_<ts>\), settings, block, terminate, rename_old'
keys PageDown
expect "PgDn scrolls to the end" '-- [0-9]+ above, 0 below'
t_match "and why" "$(main_text)" 'Why: .*down\.sql'
t_match "down to the end of the why" "$(main_text)" 'the failed database, which is kept\)'
keys Home
expect "Home goes back to the top" 'Rollback of this run'
keys F2
expect "F2 asks the phrase" 'Confirm: Rollback'
t_match "the dialog says what is lost first" "$(main_text)" \
	'Data loss: writes to shop_prod after the backup \(finished [0-9]+ (s|min) ago\) are lost'
t_match "the rest can be scrolled to" "$(main_text)" '\(0 above, [0-9]+ below: Up/Down PgUp/PgDn\)'
keys Down
expect "Down scrolls the dialog's details" '\(1 above, [0-9]+ below'
for _ in 1 2 3 4 5 6; do wait_for 'From the backup' 1 && break; keys Down; done
expect "Down reaches the backup's name" 'From the backup'
type_text "restore shop_pro"
keys Enter
expect "a wrong phrase is refused" 'Wrong phrase \(1 of 3\): nothing ran'
keys Escape
expect "nothing ran" 'rollback: cancelled at the confirmation; nothing ran'
t_eq "no rollback started" "$(journal | jq -r 'select(.type=="rollback_started") | .type')" ""
t_eq "prod still has 7 migrations" "$(dsql shop_prod 'select count(*) from "_prisma_migrations"')" 7
keys F2
expect "F2 asks again" 'Confirm: Rollback'
type_text "restore shop_prod"
keys Enter
expect "afterwards the state first" 'State: shop_prod is the backup' 180
t_match "the steps, each done" "$(main_text)" \
	'Steps: restore done, settings done, block done, terminate done, rename_old done, rename_new done, reopen done, verify done'

t_eq "prod is back at the backup's migrations" "$(dsql shop_prod 'select count(*) from "_prisma_migrations"')" 4
failed=$(dsql postgres "select datname from pg_database where datname like 'shop\\_prod\\_failed\\_%'")
t_match "the failed database is kept" "$failed" '^shop_prod_failed_[0-9]{8}T[0-9]{6}$'
t_eq "with the deployed migrations" "$(dsql "$failed" 'select count(*) from "_prisma_migrations"')" 7
same=1
while read -r tbl n; do
	got=$(dsql shop_prod "select count(*) from \"${tbl%%.*}\".\"${tbl#*.}\"")
	[ "$got" = "$n" ] || { same=0; t_fail "rows of $tbl" "got $got, the backup has $n"; }
done <<EOF
$(jq -r '.tables | to_entries[] | "\(.key) \(.value)"' "$dump.json")
EOF
t_eq "every table has the backup's row count" "$same" 1
t_eq "the journal has rollback_done ok" "$(journal | jq -r 'select(.type=="rollback_done") | .data.ok')" "true"
keys Escape
expect "Esc goes back to the stage" 'Stage: maintenance_off \(thaw\)'

# --- report: F2 writes report.md and finishes the report stage ---
keys ']'
expect "] opens the report, which says what F2 does" 'F2 \(Run\) writes report\.md'
t_eq "no report.md yet" "$(ls "$XDG_STATE_HOME/pgrunbook/runs/$RUN/report.md" 2>/dev/null)" ""
keys F2
expect "F2 writes it" 'Written: report\.md in the run directory'
expect "the log says where" 'report: .*report written to '
tm resize-window -t d -x 100 -y 45
expect "the sidebar shows report done (with the rows for it)" '^> report +done'
tm resize-window -t d -x 80 -y 24
if test -s "$XDG_STATE_HOME/pgrunbook/runs/$RUN/report.md"; then t_ok "report.md is in the run directory"
else t_fail "report.md is in the run directory" "$(ls "$XDG_STATE_HOME/pgrunbook/runs/$RUN")"; fi
t_match "it is the run's report" "$(cat "$XDG_STATE_HOME/pgrunbook/runs/$RUN/report.md")" "$RUN"
t_eq "the journal has the report stage done" \
	"$(journal | jq -r 'select(.type=="stage_done" and .stage=="report") | .stage')" "report"
keys q
expect "q quits" 'wizard finished: 0'

# --- resume: the rehearsal and its estimate come back from the journal ---
start 80 24 resume
expect "resume opens where it was" 'Report of this run'
keys '[' '[' '[' '['
expect "migrate shows the estimate again" "Staging estimate: [0-9:]+ \\($ms ms\\)" 20
keys '[' '['
expect "staging shows its result again" 'Rehearsal done on shop_staging\.'
t_match "with the estimate" "$(main_text)" "Estimate: migrate on prod about [0-9:]+ \\($ms ms\\)"
keys q
expect "q quits again" 'wizard finished: 0'

# --- a new run without a backup of its own: staging names the older backup, its age, and warns ---
start 80 24 --plan "$PLAN"
expect "a new run: preflight runs first" '^> preflight +done' 30
keys ']'
expect "the checklist" 'Checklist before the first change'
keys Space Space Space Space
expect "all four ticked" 'All 4 ticked'
keys ']' ']'
expect "staging without a backup in this run" 'Stage: staging \(rehearsal\)'
expect "it names the older backup" "Backup: ${dump##*/},"
t_match "its age, and that it is not this run's" "$(main_text)" \
	"Backup: ${dump##*/}, finished [0-9]+ (s|min) ago: NOT this run's \\(this run has no verified backup\\)"
keys F2
expect "the confirmation" 'Confirm: Staging rehearsal'
t_match "its first detail is that backup and the warning" "$(main_text)" \
	"Target: .*Backup: ${dump##*/}, finished [0-9]+ (s|min) ago: NOT this run's"
keys Escape
expect "Esc: nothing ran" 'staging: cancelled at the confirmation; nothing ran'
keys q
expect "q quits" 'wizard finished: 0'

# --- a wizard run with every stage done is recorded finished, and its report.md says so; its
# webhook (a real listener on loopback) gets the events, and the top line shows the outbox ---
"$top_builddir/tests/harness/webhookd" --port-file "$T_TMP/hook.port" --log "$T_TMP/hook.log" \
	--route /ok=200 2>/dev/null &
hookd=$!
for _ in $(seq 1 100); do [ -s "$T_TMP/hook.port" ] && break; sleep 0.05; done
export MINI_HOOK="http://127.0.0.1:$(cat "$T_TMP/hook.port")/ok"
cat >"$T_TMP/mini.yaml" <<EOF
name: mini release
environments:
  prod: { conninfo: "$CI dbname=shop_prod" }
target: prod
notify:
  - { url_env: MINI_HOOK, backoff: 100ms, timeout: 2s }
EOF
start 80 24 --plan "$T_TMP/mini.yaml"
expect "the short plan: preflight runs" '^> preflight +done' 30
expect "80 columns: the top line shows the webhook outbox, short: sent of all" '^ pgrunbook  mini release +notify ([1-9][0-9]*)/\1  run '
tm resize-window -t d -x 120 -y 30
expect "120 columns: in words" '^ pgrunbook  mini release +notify: [1-9][0-9]* sent, 0 pending +run '
tm resize-window -t d -x 80 -y 24
t_match "the listener got preflight's stage_done" "$(jq -r '.body | fromjson | .type + ":" + (.stage // "")' "$T_TMP/hook.log")" \
	'stage_done:preflight'
keys ']'
expect "then the report" 'F2 \(Run\) writes report\.md'
keys F2
expect "F2 writes it" 'Written: report\.md in the run directory'
keys q
expect "q quits" 'wizard finished: 0'
mini=$(ls -1td "$XDG_STATE_HOME"/pgrunbook/runs/*/ | head -n 1)
t_eq "the journal records the run finished, done" \
	"$(jq -r 'select(.type=="run_finished") | .data.state' "$mini/journal.jsonl")" "done"
t_match "report.md was written again after that: finished, state done" \
	"$(tr -d '*\n' <"$mini/report.md")" '\| Finished \| [0-9]{4}-[0-9]{2}-[0-9]{2}T[^|]*\|.*\| State \| done'
t_nomatch "report.md does not say not finished" "$(cat "$mini/report.md")" 'not finished'
t_match "on exit the wizard says what the webhooks got" "$(tm capture-pane -p -J -t d | tr -s ' \n' ' ')" \
	'notify: [1-9][0-9]* sent, 0 pending, 0 failed'
t_match "the run's end reached the listener" "$(jq -r '.body | fromjson | .type' "$T_TMP/hook.log")" 'run_finished'
t_nomatch "the URL is in no file of the run" "$(grep -rl -- "$MINI_HOOK" "$mini" 2>/dev/null)" '.'
kill "$hookd" 2>/dev/null
t_done
