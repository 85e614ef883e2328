#!/usr/bin/env bash
# maintenance.sh: `pgrunbook maintenance on|off|status` against a real server: every layer and its
# exact undo (connection limit, grants, database settings), the typed phrases, terminating listed
# sessions, hooks (SQL and shell, a failing one), a real pgbouncer paused and resumed, the
# non-superuser REVOKE path, a freeze of another run refused, slipped writes, kill -9 during the
# freeze then off, and no secret in the journal.
. "$top_srcdir/tests/lib.sh"

unset PGAPPNAME PGOPTIONS
runs="$XDG_STATE_HOME/pgrunbook/runs"
run_user=${T_CLUSTER_USER:-}
app="${T_DB}_app"
owner="${T_DB}_owner"
nsdb="${T_DB}_ns"
bg_pids=()
pgb_dir="$T_TMP/pgb"

cleanup() {
	local p
	for p in "${bg_pids[@]}"; do kill "$p" 2>/dev/null; done
	[ -f "$pgb_dir/pgb.pid" ] && kill "$(cat "$pgb_dir/pgb.pid")" 2>/dev/null
	[ -f "$T_TMP/hook.pid" ] && kill -- "-$(cat "$T_TMP/hook.pid")" 2>/dev/null
	psql -X -q -d postgres -c "alter database \"$T_DB\" connection limit -1" \
		-c "drop database if exists \"$nsdb\" with (force)" >/dev/null 2>&1
	psql -X -q -d postgres -c "drop role if exists \"$app\"" -c "drop role if exists \"$owner\"" >/dev/null 2>&1
}
trap cleanup EXIT

last_run() { ls -d "$runs"/* | sort | tail -n 1; }
jqo() { printf '%s' "$out" | jq -r "$1"; }
# state DB: connection limit, ACL and the database's own settings, as one comparable text
state() {
	t_sql "select d.datconnlimit || ' ' || coalesce(d.datacl::text, 'NULL') || ' ' ||
	       coalesce((select s.setconfig::text from pg_db_role_setting s where s.setdatabase = d.oid and s.setrole = 0), 'NOSETTINGS')
	       from pg_database d where d.datname = '$1'" postgres
}
as_app() { PGUSER="$app" PGAPPNAME=app psql -X -A -t -q -v ON_ERROR_STOP=1 "$@"; }
wait_for() {  # wait_for SECONDS CMD...: polls until CMD succeeds
	local end=$((SECONDS + $1))
	shift
	while ! "$@" >/dev/null 2>&1; do
		[ "$SECONDS" -ge "$end" ] && return 1
		sleep 0.1
	done
}
app_sessions() { t_sql "select count(*) from pg_stat_activity where datname = '$T_DB' and usename = '$app'" postgres; }
app_session_up() { [ "$(app_sessions)" = 1 ]; }
no_app_session() { [ "$(app_sessions)" = 0 ]; }

# --- fixture ---------------------------------------------------------------------------------
t_sql_do "create role \"$app\" login; create role \"$owner\" login" postgres
t_sql_do "create table app_flags (maintenance boolean not null); insert into app_flags values (false);
          create table orders (id int primary key, note text);
          grant select, insert on orders, app_flags to \"$app\";
          alter database \"$T_DB\" connection limit 50;
          alter database \"$T_DB\" set work_mem = '7MB';
          alter database \"$T_DB\" set default_transaction_read_only = off;
          revoke connect on database \"$T_DB\" from public;
          grant connect on database \"$T_DB\" to \"$app\""
before=$(state "$T_DB")
t_match "fixture: a limit, an ACL and two settings" "$before" "^50 .*$app=c/.* \{work_mem=7MB,default_transaction_read_only=off\}$"

# A webhook receiver: its connection is open while the hooks run (they must not inherit it).
"$top_builddir/tests/harness/webhookd" --port-file "$T_TMP/hook.port" --log "$T_TMP/hook.req" --route /ok=200 2>/dev/null &
bg_pids+=($!)
for _ in $(seq 1 100); do [ -s "$T_TMP/hook.port" ] && break; sleep 0.05; done
export MAINT_HOOK_URL="http://127.0.0.1:$(cat "$T_TMP/hook.port")/ok"

cat >"$T_TMP/plan.yaml" <<EOF
name: maintenance test
environments:
  prod: { conninfo: "host=$PGHOST port=$PGPORT dbname=$T_DB" }
target: prod
notify:
  - { url_env: MAINT_HOOK_URL, events: [stage_started, step, log, stage_done], backoff: 100ms, timeout: 2s }
maintenance:
  block_connections: true
  read_only: true
  terminate_sessions: ask
  hooks:
    on_sql: "update app_flags set maintenance = true"
    off_sql: "update app_flags set maintenance = false"
    on_command: "echo \"on \$PGRUNBOOK_DATABASE \$PGRUNBOOK_ENVIRONMENT \$PGRUNBOOK_RUN_ID\" >> '$T_TMP/hooks.log'; readlink /proc/\$\$/fd/* >> '$T_TMP/hook-fds.log'; echo hook says hello"
    off_command: "echo \"off \$PGRUNBOOK_DATABASE\" >> '$T_TMP/hooks.log'"
EOF
plan="$T_TMP/plan.yaml"
M() { "$PGRUNBOOK" maintenance "$@"; }

t_run 0 "status of a database not frozen" M status --plan "$plan" --json
t_eq "status: not frozen" "$(jqo .frozen)" "false"
t_eq "status: connection limit read from the server" "$(jqo .layers.connection_limit)" "50"
nruns=$(ls "$runs" 2>/dev/null | wc -l)
t_eq "status is not journaled" "$nruns" "0"

# --- the phrase ------------------------------------------------------------------------------
t_run 3 "on without the phrase is refused" M on --plan "$plan" --settle 0.2
t_match "the refusal prints the phrase" "$err" "freeze $T_DB"
t_run 3 "on with a wrong phrase is refused" M on --plan "$plan" --confirm "freeze ${T_DB}x" --settle 0.2
t_eq "nothing changed after the refusals" "$(state "$T_DB")" "$before"
t_eq "hooks did not run" "$(test -f "$T_TMP/hooks.log" && echo ran || echo no)" "no"

# --- terminate: listed, refused without and with a wrong phrase -------------------------------
as_app -d "$T_DB" -c "select pg_sleep(60)" >/dev/null 2>&1 &
sleeper=$!
bg_pids+=("$sleeper")
wait_for 10 app_session_up || t_fail "the app session did not start"
spid=$(t_sql "select pid from pg_stat_activity where usename = '$app' and datname = '$T_DB'" postgres)
t_run 3 "on with another session but no --confirm-terminate is refused" \
	M on --plan "$plan" --confirm "freeze $T_DB" --settle 0.2
t_match "the refusal lists the session (pid, user, application, client, state, query start)" "$err" \
	"pid $spid, user $app, application app, client local, state active, query start [0-9-]+T[0-9:]+Z"
t_match "the refusal gives the terminate phrase" "$err" "terminate 1 sessions on $T_DB list [0-9a-f]{4}"
code=$(grep -o -m1 "sessions on $T_DB list [0-9a-f]\{4\}" <<<"$err" | sed 's/.* //')
# The code: the first 4 hex digits of the SHA-256 of "pid backend_start" lines, sorted by pid.
t_eq "the code names the listed session (pid and start time)" "$code" "$(t_sql "select pid || ' ' ||
	to_char(backend_start at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') from pg_stat_activity
	where usename = '$app' and datname = '$T_DB' order by pid" postgres | awk '{ print }' | sha256sum | cut -c1-4)"
t_eq "the app session is still there" "$(app_sessions)" "1"
t_eq "nothing changed" "$(state "$T_DB")" "$before"
t_eq "hooks did not run either" "$(test -f "$T_TMP/hooks.log" && echo ran || echo no)" "no"
t_run 3 "a wrong session count is refused" \
	M on --plan "$plan" --confirm "freeze $T_DB" --confirm-terminate "terminate 2 sessions on $T_DB list $code" --settle 0.2
t_eq "still nothing changed" "$(state "$T_DB")" "$before"
t_eq "the app session survived the wrong phrase" "$(app_sessions)" "1"
# The listed session replaced by another one (the same count): the old phrase no longer confirms.
kill "$sleeper" 2>/dev/null
t_sql "select pg_terminate_backend(pid) from pg_stat_activity where usename = '$app' and datname = '$T_DB'" postgres >/dev/null
wait "$sleeper" 2>/dev/null
wait_for 10 no_app_session || t_fail "the first app session did not end"
sleep 1  # another backend_start second, even if the pid came back
as_app -d "$T_DB" -c "select pg_sleep(60)" >/dev/null 2>&1 &
sleeper=$!
bg_pids+=("$sleeper")
wait_for 10 app_session_up || t_fail "the second app session did not start"
spid=$(t_sql "select pid from pg_stat_activity where usename = '$app' and datname = '$T_DB'" postgres)
t_run 3 "the phrase of the old list (same count, another session) is refused" \
	M on --plan "$plan" --confirm "freeze $T_DB" --confirm-terminate "terminate 1 sessions on $T_DB list $code" --settle 0.2
t_eq "the new session survived the old list's phrase" "$(app_sessions)" "1"
t_eq "nothing changed by the old list's phrase" "$(state "$T_DB")" "$before"
new_code=$(grep -o -m1 "sessions on $T_DB list [0-9a-f]\{4\}" <<<"$err" | sed 's/.* //')
t_match "the refusal gives the new list's phrase" "$new_code" '^[0-9a-f]{4}$'
t_nomatch "the new list has another code" "$new_code" "^$code\$"
code=$new_code

# --- on ---------------------------------------------------------------------------------------
t_run 0 "on with both phrases freezes" \
	M on --plan "$plan" --confirm "freeze $T_DB" --confirm-terminate "terminate 1 sessions on $T_DB list $code" --settle 0.5
on_out=$out
on_run=$(basename "$(last_run)")
wait "$sleeper"
t_eq "the listed session was terminated (its psql failed)" "$?" "2"
t_eq "no app session left" "$(app_sessions)" "0"
t_match "on reports the layers" "$on_out" "block +applied +connection limit 0"
t_match "on reports the terminated pid" "$on_out" "terminated: $spid"
t_match "on reports the superuser that is not blocked" "$on_out" "not blocked: role $PGUSER \\(superuser\\)"
t_match "hook output is shown" "$on_out" "\\| hook says hello"
t_eq "hook output is not journaled" "$(grep -c 'hook says hello' "$(last_run)/journal.jsonl")" "0"
t_eq "on_sql ran" "$(t_sql "select maintenance from app_flags")" "t"
t_eq "on_command ran with the database, environment and run id" "$(cat "$T_TMP/hooks.log")" "on $T_DB prod $on_run"
t_match "the hook saw its stdin, stdout and stderr" "$(cat "$T_TMP/hook-fds.log")" '/dev/null'
t_eq "the hook inherited no socket (libcurl's or libpq's), journal or outbox file of pgrunbook's" \
	"$(grep -c -E 'socket:|journal|outbox|\.lock' "$T_TMP/hook-fds.log")" 0
t_match "the webhook got the freeze's events (its connection was open)" "$(cat "$T_TMP/hook.req")" '"path":"/ok"'
frozen=$(state "$T_DB")
t_match "frozen: limit 0, ACL untouched, read-only and marker added, other settings kept" "$frozen" \
	"^0 $(printf '%s' "$before" | cut -d' ' -f2 | sed 's/[][\\.*^${}()|+?]/\\&/g') \{work_mem=7MB,default_transaction_read_only=on,\"pgrunbook.frozen_by=$on_run [0-9-]+T[0-9:.]+Z [^ ]+\"\}$"
jr=$(last_run)/journal.jsonl
t_eq "each layer's undo journaled before it applied" \
	"$(jq -r 'select(.type == "step" and .data.kind == "freeze" and (.data.state == "applying" or .data.state == "applied")) | .data.layer + " " + .data.state' "$jr" | tr '\n' ' ')" \
	"hook_sql applying hook_sql applied hook_command applying hook_command applied block applying block applied read_only applying read_only applied terminate applying terminate applied marker applying marker applied "
t_eq "the block undo records the previous connection limit" \
	"$(jq -r 'select(.data.kind == "freeze" and .data.layer == "block" and .data.state == "applying") | .data.undo.connection_limit' "$jr")" "50"
t_eq "the read_only undo records the previous value" \
	"$(jq -r 'select(.data.kind == "freeze" and .data.layer == "read_only" and .data.state == "applying") | .data.undo.previous' "$jr")" "off"

# who can connect now
t_run 2 "the app role cannot connect while frozen" as_app -d "$T_DB" -c "select 1"
t_match "refused by the connection limit" "$err" "too many connections for database"
t_run 0 "a new superuser session connects and writes with default_transaction_read_only off" \
	env PGOPTIONS="-c default_transaction_read_only=off" psql -X -q -v ON_ERROR_STOP=1 -d "$T_DB" \
	-c "insert into orders values (1, 'slipped')"
t_run 1 "a new session without it is read-only" psql -X -q -v ON_ERROR_STOP=1 -d "$T_DB" -c "insert into orders values (2, 'x')"
t_match "read-only transaction" "$err" "read-only transaction"

# status (the insert above is a write since the freeze; the superuser session has ended)
sleep 1.2
t_run 0 "status while frozen" M status --plan "$plan" --json
t_eq "status: frozen" "$(jqo .frozen)" "true"
t_eq "status: by the on run" "$(jqo .run)" "$on_run"
t_eq "status: who" "$(jqo .who)" "$(jq -r 'select(.type == "run_started") | .data.user' "$jr")"
t_match "status: since an RFC 3339 time" "$(jqo .since)" '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z$'
t_eq "status: the marker" "$(jqo .layers.marker | cut -d' ' -f1)" "$on_run"
t_eq "status: read_only on" "$(jqo .layers.read_only)" "true"
t_eq "status: connection limit 0" "$(jqo .layers.connection_limit)" "0"
t_eq "status: the slipped insert is a write since the freeze" \
	"$(jqo '.writes_since_freeze.tables[] | select(.table == "public.orders") | .inserted')" "1"
t_run 0 "status as text" M status --plan "$plan"
t_match "text status: frozen since, run, who" "$out" "frozen"$'\n'"  since: .*"$'\n'"  run: +$on_run"
t_match "text status: the write" "$out" "public.orders: 1 inserted"

# another freeze is refused
t_run 3 "on while another run's freeze is not thawed is refused" M on --plan "$plan" --confirm "freeze $T_DB" --settle 0.2
t_match "refusal names the run" "$err" "frozen by another run \\($on_run\\)"
t_eq "the refused on changed nothing" "$(state "$T_DB")" "$frozen"

# --- off -------------------------------------------------------------------------------------
t_run 0 "off thaws" M off --plan "$plan"
off_out=$out
t_eq "off restores the exact previous state" "$(state "$T_DB")" "$before"
t_eq "off_sql ran" "$(t_sql "select maintenance from app_flags")" "f"
t_eq "off_command ran" "$(tail -n 1 "$T_TMP/hooks.log")" "off $T_DB"
t_match "off reports the writes since the freeze" "$off_out" "public.orders: 1 inserted"
ojr=$(last_run)/journal.jsonl
t_eq "off records which run's freeze it thawed" \
	"$(jq -r 'select(.data.kind == "thaw" and .data.state == "undone") | .data.freeze_run' "$ojr" | sort -u)" "$on_run"
t_eq "thaw order: newest layer first" \
	"$(jq -r 'select(.data.kind == "thaw" and .data.state != "undoing") | .data.layer' "$ojr" | tr '\n' ' ')" \
	"marker read_only block hook_command hook_sql "
t_run 0 "the app role connects after off" as_app -d "$T_DB" -c "select 1"
t_run 3 "a second off finds nothing to thaw" M off --plan "$plan"
t_match "it says so" "$err" "no freeze of database $T_DB was found"
t_run 0 "status after off" M status --plan "$plan" --json
t_eq "status: not frozen after off" "$(jqo .frozen)" "false"

# --- a write slipping through during the settle time is reported by on -------------------------
sed -e '/hooks:/,$d' "$plan" >"$T_TMP/plain.yaml"
"$PGRUNBOOK" maintenance on --plan "$T_TMP/plain.yaml" --confirm "freeze $T_DB" --settle 4 --json >"$T_TMP/slip.json" 2>"$T_TMP/slip.err" &
slip=$!
counters_recorded() { grep -qs '"kind":"freeze_counters"' "$(last_run)/journal.jsonl"; }
wait_for 20 counters_recorded || t_fail "on did not record its counters"
# a superuser session is not blocked: it writes after the freeze and disconnects
env PGOPTIONS="-c default_transaction_read_only=off" psql -X -q -d "$T_DB" -c "insert into orders values (3, 'slipped'), (4, 'slipped')"
wait "$slip"
t_eq "on with a slipped write still succeeds" "$?" "0"
out=$(cat "$T_TMP/slip.json")
t_eq "on reports the slipped write" "$(jqo '.slipped[] | select(.table == "public.orders") | .inserted')" "2"
t_match "and journals a warning about it" "$(jq -r 'select(.type == "log" and .level == "warn") | .message' "$(last_run)/journal.jsonl")" \
	"write slipped through the freeze: public.orders \(2 inserted"
sliprun=$(basename "$(last_run)")
t_run 3 "off --run with a run that froze nothing is refused" M off --plan "$T_TMP/plain.yaml" --run "$on_run"
t_match "it says the run holds no freeze" "$err" "run $on_run holds no freeze of database $T_DB"
t_run 0 "off after the slipped write (--run names the freeze)" M off --plan "$T_TMP/plain.yaml" --run "$sliprun" --json
t_eq "off reports it as a write since the freeze" \
	"$(jqo '.writes_since_freeze.tables[] | select(.table == "public.orders") | .inserted')" "2"
t_eq "state as before after the slipped round" "$(state "$T_DB")" "$before"

# --- cancelled (SIGTERM) while watching for slipped writes: the freeze is undone -----------------
"$PGRUNBOOK" maintenance on --plan "$T_TMP/plain.yaml" --confirm "freeze $T_DB" --settle 60 >/dev/null 2>"$T_TMP/cancel.err" &
cancelled=$!
wait_for 20 counters_recorded || t_fail "on did not record its counters"
kill -TERM "$cancelled"
wait "$cancelled"
t_eq "a cancelled on exits 3" "$?" "3"
t_match "it says it was cancelled" "$(cat "$T_TMP/cancel.err")" "maintenance on was cancelled"
t_eq "the cancelled freeze was undone at once" "$(state "$T_DB")" "$before"
t_eq "its thaw is journaled, newest layer first" \
	"$(jq -r 'select(.data.kind == "thaw" and .data.state != "undoing") | .data.layer + " " + .data.state' "$(last_run)/journal.jsonl" | tr '\n' ' ')" \
	"marker undone read_only undone block undone "

# --- read_only only affects new sessions; terminate_sessions: never ----------------------------
sed -e 's/terminate_sessions: ask/terminate_sessions: never/' -e '/hooks:/,$d' "$plan" >"$T_TMP/never.yaml"
mkfifo "$T_TMP/app.fifo"
as_app -d "$T_DB" <"$T_TMP/app.fifo" >"$T_TMP/app.out" 2>&1 &
app_psql=$!
bg_pids+=("$app_psql")
exec 3>"$T_TMP/app.fifo"
echo "select 'connected';" >&3
wait_for 10 grep -q connected "$T_TMP/app.out" || t_fail "the app session did not connect"
t_run 0 "on with terminate_sessions: never needs no terminate phrase" \
	M on --plan "$T_TMP/never.yaml" --confirm "freeze $T_DB" --settle 0.2
t_match "the session is reported, not terminated" "$out" "terminate +skipped +terminate_sessions: never; 1 other sessions left connected"
echo "insert into orders values (10, 'old session'); select 'inserted';" >&3
wait_for 10 grep -q inserted "$T_TMP/app.out"
t_eq "an already connected app session can still write (read_only is for new sessions)" \
	"$(t_sql "select count(*) from orders where id = 10")" "1"
t_run 0 "off" M off --plan "$T_TMP/never.yaml"
exec 3>&-
wait "$app_psql"
t_eq "state restored after the never plan" "$(state "$T_DB")" "$before"

# --- a failing on_command: the layers before it are undone --------------------------------------
sed -e "s|on_command: .*|on_command: \"echo broken; exit 7\"|" "$plan" >"$T_TMP/fail.yaml"
t_run 3 "a failing on_command fails on" M on --plan "$T_TMP/fail.yaml" --confirm "freeze $T_DB" --settle 0.2
t_match "the error names the hook and its status" "$err" "on_command failed with exit status 7"
t_eq "on_sql undone (off_sql ran)" "$(t_sql "select maintenance from app_flags")" "f"
t_eq "nothing else applied" "$(state "$T_DB")" "$before"
t_eq "the undo is journaled" \
	"$(jq -r 'select(.data.kind == "thaw" and .data.state != "undoing") | .data.layer + " " + .data.state' "$(last_run)/journal.jsonl" | tr '\n' ' ')" \
	"hook_command undone hook_sql undone "
t_run 0 "status: not frozen after the failed on" M status --plan "$plan" --json
t_eq "nothing pending" "$(jqo .frozen)" "false"

# --- kill -9 during on, then off -----------------------------------------------------------------
sed -e "s|on_command: .*|on_command: \"echo \$\$ > '$T_TMP/hook.pid'; sleep 30\"|" "$plan" >"$T_TMP/slow.yaml"
"$PGRUNBOOK" maintenance on --plan "$T_TMP/slow.yaml" --confirm "freeze $T_DB" --settle 0.2 >"$T_TMP/slow.out" 2>&1 &
slow=$!
wait_for 20 test -s "$T_TMP/hook.pid" || t_fail "the slow hook did not start"
kill -9 "$slow"
wait "$slow" 2>/dev/null
kill -- "-$(cat "$T_TMP/hook.pid")" 2>/dev/null
rm -f "$T_TMP/hook.pid"
krun=$(basename "$(last_run)")
kjr="$runs/$krun/journal.jsonl"
t_eq "the killed run journaled applying records" \
	"$(jq -r 'select(.data.kind == "freeze") | .data.layer + " " + .data.state' "$kjr" | tr '\n' ' ')" \
	"hook_sql applying hook_sql applied hook_command applying "
t_run 0 "status after the kill" M status --plan "$plan" --json
t_eq "status: frozen by the killed run" "$(jqo '.frozen, .run')" "true
$krun"
t_run 3 "on is refused while the killed run's freeze is pending" M on --plan "$plan" --confirm "freeze $T_DB" --settle 0.2
t_run 0 "off (no --run) thaws the killed run's freeze" M off --plan "$plan"
t_match "off names the killed run" "$out" "freeze of run $krun"
t_eq "off_command ran for the interrupted hook" "$(tail -n 1 "$T_TMP/hooks.log")" "off $T_DB"
t_eq "off_sql ran" "$(t_sql "select maintenance from app_flags")" "f"
t_eq "state as before" "$(state "$T_DB")" "$before"
t_run 0 "status after thawing the killed run" M status --plan "$plan" --json
t_eq "not frozen" "$(jqo .frozen)" "false"

# --- kill -9 while the block layer waits on a lock held by another session ------------------------
# The killed client's backend still waits; off must end it (or it commits CONNECTION LIMIT 0 after
# the thaw) and must run its undo even though the committed limit still looks like the old one.
sed -e 's/terminate_sessions: ask/terminate_sessions: never/' -e '/hooks:/,$d' "$plan" >"$T_TMP/lock.yaml"
psql -X -q -d postgres -c "begin" -c "alter database \"$T_DB\" connection limit 5" -c "select pg_sleep(4)" \
	-c "commit" >/dev/null 2>&1 &
blocker=$!
bg_pids+=("$blocker")
blocker_up() { test "$(t_sql "select count(*) from pg_stat_activity where query = 'select pg_sleep(4)'" postgres)" = 1; }
wait_for 10 blocker_up ||
	t_fail "the blocking session did not start"
"$PGRUNBOOK" maintenance on --plan "$T_TMP/lock.yaml" --confirm "freeze $T_DB" --settle 0.2 >"$T_TMP/lock.out" 2>&1 &
locked=$!
waiting_on_lock() {
	test "$(t_sql "select count(*) from pg_stat_activity where application_name like 'pgrunbook%'
	              and wait_event_type = 'Lock' and query ~* 'alter database'" postgres)" = 1
}
wait_for 10 waiting_on_lock || t_fail "maintenance on did not wait on the lock" "$(cat "$T_TMP/lock.out")"
kill -9 "$locked"
wait "$locked" 2>/dev/null
t_match "the killed run journaled the block layer as applying" \
	"$(jq -r 'select(.data.kind == "freeze") | .data.layer + " " + .data.state' "$(last_run)/journal.jsonl" | tr '\n' ' ')" \
	"block applying $"
t_run 0 "off after the kill while the layer waited on the lock" M off --plan "$T_TMP/lock.yaml"
t_match "the block layer's undo ran" "$out" "block +(undone|nothing) +connection limit 50"
wait "$blocker"
sleep 0.5
t_eq "state as before once the blocking transaction ended (no late CONNECTION LIMIT 0)" "$(state "$T_DB")" "$before"
t_run 0 "status after it" M status --plan "$plan" --json
t_eq "not frozen" "$(jqo .frozen)" "false"

# --- two concurrent freezes: the second is refused by the freeze lock ----------------------------
rm -f "$T_TMP/hook.pid"
"$PGRUNBOOK" maintenance on --plan "$T_TMP/slow.yaml" --confirm "freeze $T_DB" --settle 0.2 >"$T_TMP/slow2.out" 2>&1 &
slow=$!
wait_for 20 test -s "$T_TMP/hook.pid" || t_fail "the slow hook did not start"
t_run 3 "a second concurrent on is refused" M on --plan "$T_TMP/lock.yaml" --confirm "freeze $T_DB" --settle 0.2
t_match "by the freeze lock, naming the holder" "$err" "another pgrunbook is freezing or thawing database $T_DB \(pid [0-9]+, application pgrunbook"
t_eq "the refused run journaled no freeze layer" \
	"$(jq -r 'select(.data.kind == "freeze") | .data.layer' "$(last_run)/journal.jsonl" | wc -l)" "0"
kill -- "-$(cat "$T_TMP/hook.pid")" 2>/dev/null
rm -f "$T_TMP/hook.pid"
wait "$slow"
t_eq "the first on fails once its hook is killed" "$?" "3"
t_eq "and undid itself: state as before" "$(state "$T_DB")" "$before"
t_run 0 "status" M status --plan "$plan" --json
t_eq "not frozen" "$(jqo .frozen)" "false"

# --- the non-superuser path: REVOKE, exact grants back, no marker --------------------------------
t_sql_do "create database \"$nsdb\" owner \"$owner\"" postgres
t_sql_do "grant connect on database \"$nsdb\" to \"$app\"; alter database \"$nsdb\" set work_mem = '3MB'" postgres
nsbefore=$(state "$nsdb")
t_match "fixture: PUBLIC and the app hold CONNECT" "$nsbefore" "\{=Tc/$owner,$owner=CTc/$owner,$app=c/$owner\}"
cat >"$T_TMP/ns.yaml" <<EOF
name: maintenance non-superuser
environments:
  prod: { conninfo: "host=$PGHOST port=$PGPORT dbname=$nsdb user=$owner" }
target: prod
maintenance: { block_connections: true, read_only: true, terminate_sessions: ask }
EOF
t_run 0 "non-superuser on" M on --plan "$T_TMP/ns.yaml" --confirm "freeze $nsdb" --settle 0.2
t_match "it revoked CONNECT from PUBLIC and the app" "$out" "CONNECT revoked from PUBLIC, $app"
t_match "the marker is skipped" "$out" "marker +skipped +not a superuser"
nsfrozen=$(state "$nsdb")
t_match "frozen ACL: only the owner keeps CONNECT, limit unchanged" "$nsfrozen" "^-1 \{=T/$owner,$owner=CTc/$owner\} \{work_mem=3MB,default_transaction_read_only=on\}$"
t_run 2 "the app role cannot connect" as_app -d "$nsdb" -c "select 1"
t_match "permission denied" "$err" "permission denied for database"
t_run 0 "the owner (pgrunbook's role) still connects" env PGUSER="$owner" psql -X -q -d "$nsdb" -c "select 1"
t_run 0 "status: frozen, journal only" M status --plan "$T_TMP/ns.yaml" --json
t_eq "frozen without a marker" "$(jqo '.frozen, .layers.marker')" "true
null"
t_eq "status lists the revoked grants" "$(jqo '.layers.revoked | join(",")')" "PUBLIC,$app"
t_run 0 "non-superuser off" M off --plan "$T_TMP/ns.yaml"
t_eq "grants and settings restored exactly" "$(state "$nsdb")" "$nsbefore"
t_run 0 "the app role connects again" as_app -d "$nsdb" -c "select 1"

# --- the database replaced while frozen (a restore rollback): status says what the server shows ----
t_run 0 "superuser on (for the replacement)" M on --plan "$T_TMP/lock.yaml" --confirm "freeze $T_DB" --settle 0.2
reprun=$(basename "$(last_run)")
t_run 0 "writes while frozen (a superuser session, read-write)" env PGOPTIONS="-c default_transaction_read_only=off" \
	psql -X -q -v ON_ERROR_STOP=1 -d "$T_DB" -c "insert into orders select g, 'w' from generate_series(100, 119) g" \
	-c "update orders set note = 'u' where id >= 100"
t_run 0 "status while frozen" M status --plan "$plan" --json
t_eq "frozen, with its layers in place" "$(jqo '.frozen, (.layers_in_place | sort | join(","))')" "true
block,marker,read_only"
sleep 0.7  # the statistics of the writes above are flushed
# the counters of a statistics reset are not comparable: never negative counts
t_sql_do "select pg_stat_reset()"
t_run 0 "status after a statistics reset" M status --plan "$plan" --json
t_eq "writes since the freeze: not comparable" "$(jqo .writes_since_freeze.error)" "not comparable (the statistics were reset)"
t_eq "no negative count anywhere" "$(printf '%s' "$out" | jq '[.. | numbers | select(. < 0 and . != -1)] | length')" "0"
# replace the database by hand: a copy without the freeze settings, under the same name
psql -X -q -d postgres -c "alter database \"$T_DB\" rename to \"${T_DB}_old\"" \
	-c "create database \"$T_DB\" template \"${T_DB}_old\"" \
	-c "alter database \"$T_DB\" connection limit 50" \
	-c "revoke connect on database \"$T_DB\" from public" -c "grant connect on database \"$T_DB\" to \"$app\"" \
	-c "alter database \"$T_DB\" set work_mem = '7MB'" -c "alter database \"$T_DB\" set default_transaction_read_only = off" \
	>/dev/null 2>&1 || t_fail "could not replace the database"
t_run 0 "status after the database was replaced" M status --plan "$plan" --json
t_eq "not frozen: no layer in place" "$(jqo '.frozen, (.layers_in_place | length)')" "false
0"
t_eq "the journal freeze is reported apart" "$(jqo '.journal, .journal_freeze.run')" "true
$reprun"
t_match "and the disagreement said" "$(jqo .disagreement)" "journaled freeze of run $reprun but no layer in place: thawed outside pgrunbook"
t_eq "writes since the freeze: not comparable" "$(jqo .writes_since_freeze.error)" "not comparable (the database was replaced)"
t_run 0 "status as text" M status --plan "$plan"
t_match "says not frozen" "$out" "^$T_DB \(prod\): not frozen$"
t_match "and why" "$out" "warning: journaled freeze of run $reprun but no layer in place"
t_nomatch "no negative count" "$out" " -[0-9]"
t_run 0 "off counts the layers already gone as done" M off --plan "$plan"
t_match "nothing to undo for read_only" "$out" "read_only +nothing"
t_eq "the replacement's state is left as it is" "$(state "$T_DB")" "$before"
psql -X -q -d postgres -c "drop database \"${T_DB}_old\" with (force)" >/dev/null 2>&1

# --- pgbouncer -----------------------------------------------------------------------------------
if [ ! -x /usr/sbin/pgbouncer ]; then
	t_fail "pgbouncer is not installed (/usr/sbin/pgbouncer); install the pgbouncer package"
	t_done
fi
mkdir -p "$pgb_dir"
pgb_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$pgb_dir/pgbouncer.ini" <<EOF
[databases]
$T_DB = host=$PGHOST port=$PGPORT dbname=$T_DB
[pgbouncer]
listen_addr =
listen_port = $pgb_port
unix_socket_dir = $pgb_dir
auth_type = trust
auth_file = $pgb_dir/users.txt
admin_users = $PGUSER
pool_mode = session
logfile = $pgb_dir/pgbouncer.log
pidfile = $pgb_dir/pgb.pid
EOF
printf '"%s" ""\n' "$PGUSER" >"$pgb_dir/users.txt"
[ -n "$run_user" ] && chown -R "$run_user" "$pgb_dir"
if [ -n "$run_user" ]; then
	runuser -u "$run_user" -- /usr/sbin/pgbouncer -d "$pgb_dir/pgbouncer.ini" >/dev/null 2>&1
else
	/usr/sbin/pgbouncer -d "$pgb_dir/pgbouncer.ini" >/dev/null 2>&1
fi
wait_for 10 test -S "$pgb_dir/.s.PGSQL.$pgb_port" || t_fail "pgbouncer did not start" "$(cat "$pgb_dir/pgbouncer.log" 2>/dev/null)"
via_pgb() { psql -X -A -t -q -h "$pgb_dir" -p "$pgb_port" -d "$T_DB" "$@"; }
t_run 0 "a client through pgbouncer works" via_pgb -c "select 1"
export RB_PGB_ADMIN="postgresql://$PGUSER@/pgbouncer?host=$pgb_dir&port=$pgb_port"
# terminate_sessions: never: pgbouncer's own idle server connection would otherwise need the phrase
sed -e 's/terminate_sessions: ask/terminate_sessions: never/' -e '/hooks:/,$d' "$plan" >"$T_TMP/pgb.yaml"
echo "  pgbouncer: { admin_dsn_env: RB_PGB_ADMIN }" >>"$T_TMP/pgb.yaml"
t_run 0 "on with pgbouncer" M on --plan "$T_TMP/pgb.yaml" --confirm "freeze $T_DB" --settle 0.2
t_match "pgbouncer paused" "$out" "pgbouncer +applied +PAUSE sent"
pgbrun=$(basename "$(last_run)")
t_run 124 "a client through pgbouncer blocks while paused" timeout 2 psql -X -A -t -q -h "$pgb_dir" -p "$pgb_port" -d "$T_DB" -c "select 1"
psql -X -A -t -q -h "$pgb_dir" -p "$pgb_port" -d "$T_DB" -c "select 'through pgbouncer'" >"$T_TMP/pgb_client.out" 2>&1 &
waiting=$!
bg_pids+=("$waiting")
sleep 1
t_eq "the waiting client has no answer yet" "$(cat "$T_TMP/pgb_client.out")" ""
t_run 0 "off resumes pgbouncer" M off --plan "$T_TMP/pgb.yaml"
t_match "RESUME sent" "$out" "pgbouncer +undone +RESUME sent"
wait "$waiting"
t_eq "the waiting client proceeds after off" "$?" "0"
t_eq "and got its answer" "$(cat "$T_TMP/pgb_client.out")" "through pgbouncer"
t_eq "state as before after the pgbouncer round" "$(state "$T_DB")" "$before"
# a pool resumed behind pgrunbook's back (a crash after RESUME, before its record) is tolerated
t_run 0 "on with pgbouncer again" M on --plan "$T_TMP/pgb.yaml" --confirm "freeze $T_DB" --settle 0.2
t_run 0 "RESUME by hand on the admin console" psql -X -q -d "$RB_PGB_ADMIN" -c "RESUME $T_DB"
t_run 0 "off still thaws" M off --plan "$T_TMP/pgb.yaml"
t_match "the pgbouncer layer had nothing to do" "$out" "pgbouncer +nothing +pgbouncer was not paused"
t_eq "state as before" "$(state "$T_DB")" "$before"
# a URI with a password is refused before anything is paused
export RB_PGB_ADMIN="postgresql://$PGUSER:sekrit@/pgbouncer?host=$pgb_dir&port=$pgb_port"
t_run 3 "a pgbouncer URI carrying a password is refused" M on --plan "$T_TMP/pgb.yaml" --confirm "freeze $T_DB" --settle 0.2
t_match "the error says why" "$err" "carries a password"
t_nomatch "the password is not printed" "$out$err" "sekrit"
t_eq "nothing left frozen" "$(state "$T_DB")" "$before"

# an unusable URI is refused before any layer: no hook runs
sed -e 's/terminate_sessions: ask/terminate_sessions: never/' "$plan" >"$T_TMP/pgbh.yaml"
echo "  pgbouncer: { admin_dsn_env: RB_PGB_ADMIN }" >>"$T_TMP/pgbh.yaml"
hooks_before=$(wc -l <"$T_TMP/hooks.log")
t_run 3 "a password URI is refused before the hooks" M on --plan "$T_TMP/pgbh.yaml" --confirm "freeze $T_DB" --settle 0.2
t_match "the error says why" "$err" "carries a password"
t_run 3 "an unset variable is refused before the hooks" env -u RB_PGB_ADMIN "$PGRUNBOOK" maintenance on \
	--plan "$T_TMP/pgbh.yaml" --confirm "freeze $T_DB" --settle 0.2
t_match "the error names the variable" "$err" "RB_PGB_ADMIN .*is not set"
t_eq "no hook ran" "$(wc -l <"$T_TMP/hooks.log")" "$hooks_before"
t_eq "no layer journaled" "$(jq -r 'select(.data.kind == "freeze") | .data.layer' "$(last_run)/journal.jsonl" | wc -l)" "0"
# an unreachable console: PAUSE never sent, so its undo is "nothing" and no phantom freeze is left
export RB_PGB_ADMIN="postgresql://$PGUSER@/pgbouncer?host=$pgb_dir&port=1"
t_run 3 "an unreachable pgbouncer fails on" M on --plan "$T_TMP/pgbh.yaml" --confirm "freeze $T_DB" --settle 0.2
t_match "the pgbouncer undo had nothing to do" "$out" "undo pgbouncer +nothing +PAUSE was never sent"
t_eq "state as before" "$(state "$T_DB")" "$before"
t_eq "off_sql ran" "$(t_sql "select maintenance from app_flags")" "f"
t_run 0 "status" M status --plan "$plan" --json
t_eq "no phantom freeze" "$(jqo .frozen)" "false"
t_run 3 "off finds nothing to thaw" M off --plan "$plan"

# --- secrets ----------------------------------------------------------------------------------
t_eq "no password anywhere in the journals" "$(grep -rl sekrit "$runs" | wc -l)" "0"
t_eq "no session query text in the journals" "$(grep -rl 'pg_sleep' "$runs" | wc -l)" "0"
t_eq "no pgbouncer URI in the journals" "$(grep -rlF "$pgb_dir&port" "$runs" | wc -l)" "0"
t_done
