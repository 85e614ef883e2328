# wizard.sh: the wizard (`pgrunbook --plan FILE`, `pgrunbook resume`) in tmux on a demo cluster:
# header and stages, preflight live to done, the checklist gate and its journaled ticks, the
# backup screen (compared with an expected screen), help, resize, quit, resume to the same
# stage, refusals to reopen, and SIGTERM both at idle and while preflight waits on a slow server.
. "$top_srcdir/tests/lib.sh"

command -v tmux >/dev/null || t_skip "tmux is not installed (Debian package tmux)"
command -v jq >/dev/null || t_skip "jq is not installed (Debian package jq)"
command -v perl >/dev/null || t_skip "perl is not installed"

export TERM=xterm-256color LANG=C.UTF-8 LC_ALL=C.UTF-8 TZ=UTC HOME XDG_STATE_HOME
sock="pgrbw$$"
D=$T_TMP/demo
slow_pid=""
cleanup() {
	tmux -L "$sock" kill-server >/dev/null 2>&1
	[ -n "$slow_pid" ] && kill "$slow_pid" 2>/dev/null
	"$PGRUNBOOK" demo --stop --dir "$D" >/dev/null 2>&1
}
trap cleanup EXIT

. "$top_srcdir/tests/tui/lib.sh"
wizard_pid() { pgrep -P "$(tm display-message -p -t d '#{pane_pid}')" -x pgrunbook; }
restored() { tm display-message -p -t d '#{alternate_on} #{cursor_flag}'; }
newest_run() { ls -1 "$XDG_STATE_HOME/pgrunbook/runs" | sort | tail -n 1; }
journal() { cat "$XDG_STATE_HOME/pgrunbook/runs/$1/journal.jsonl"; }
# mask: what changes from run to run (times, run id, socket path, server version, user).
mask() {
	sed -E -e 's/run [0-9]{8}T[0-9]{6}\.[0-9]{3}Z-[0-9a-f]+/run RUN-ID/' \
	       -e 's/  host .*/  host HOST/' \
	       -e 's/PostgreSQL [0-9][0-9.]*/PostgreSQL N/' \
	       -e 's/role [^ ]+ \(superuser\)/role USER (superuser)/' \
	       -e 's/^[0-9]{2}:[0-9]{2}:[0-9]{2} /HH:MM:SS /' \
	       -e 's/^(    )[0-9]+:[0-9]{2}( +│)/\1M:SS\2/' \
	       -e 's/ by [^ :]+: / by USER: /' \
	       -e 's/ +$//'
}

# --- before the terminal: invalid plans and missing terminals ---
printf 'name: x\nenvironments: {}\n' >"$T_TMP/bad.yaml"
t_run 4 "an invalid plan exits 4 before anything else" "$PGRUNBOOK" --plan "$T_TMP/bad.yaml"
t_match "it names file and line" "$err" 'bad\.yaml:[0-9]+:[0-9]+:'
t_run 1 "--plan without FILE is a usage error" "$PGRUNBOOK" --plan

t_run 0 "demo --no-wizard starts the demo cluster" "$PGRUNBOOK" demo --dir "$D" --no-wizard --rows 50
PLAN=$D/plan/demo.yaml
t_run 1 "the wizard needs a terminal" "$PGRUNBOOK" --plan "$PLAN"
t_match "and says so" "$err" 'needs a terminal'
t_eq "no run was recorded without a terminal" "$(ls "$XDG_STATE_HOME/pgrunbook/runs" 2>/dev/null | wc -l)" "0"
t_run 3 "resume with no run at all exits 3" "$PGRUNBOOK" resume
t_match "and says there is none" "$err" 'no run to resume'

# --- 80x24: a new run ---
start 80 24 --plan "$PLAN"
expect "the header names the plan" '^ pgrunbook  demo shop release +run [0-9]{8}T'
expect "the header names the target" '^ target prod '
expect "preflight runs on opening and reaches done" '^done: 3 environments ready|│  done: 3 environments ready' 30
t_match "the header shows the target's database, version and role after preflight" "$screen" \
	'target prod  db shop_prod  PostgreSQL [0-9.]+  role [^ ]+ \((not )?superuser\)'
t_match "the sidebar shows preflight done" "$screen" '^> preflight +done +│'
t_match "the sidebar shows the checklist before backup" "$screen" '^  checklist +0/4 ticked +│'
t_match "the sidebar shows backup pending with its budget" "$screen" '^  backup +pending +│'
t_match "the budget of backup" "$screen" '^    - / 10:00 +│'
t_match "the sidebar lists maintenance_off" "$screen" '^  maintenance_off pending +│'
t_match "the sidebar lists report pending" "$screen" '^  report +pending +│'
t_match "the preflight table has the prod row ready" "$screen" '│  prod +ready +target '
t_match "the dev row" "$screen" '│  dev +ready +source '
t_match "blockers and warnings are listed below" "$screen" 'Blockers and warnings:'
t_match "the log pane got the stage events" "$screen" '^[0-9:]{8} preflight: done: 3 environments ready'
t_match "the key bar is drawn" "$screen" '^1Help 2Run 3Search 4Confirm 5Refresh 6Prev 7Next 8Rollback 10Quit'
RUN=$(newest_run)
t_match "a run was recorded" "$RUN" '^[0-9]{8}T[0-9]{6}\.[0-9]{3}Z-'
t_eq "the journal has preflight started and done" \
	"$(journal "$RUN" | jq -r 'select(.stage=="preflight" and (.type=="stage_started" or .type=="stage_done")) | .type' | tr '\n' ' ')" \
	"stage_started stage_done "

keys ']'
expect "] opens the checklist" 'Checklist before the first change'
t_match "it lists the items unticked" "$screen" '│  \[ \] Users were told about the maintenance'
t_match "the selection moved" "$screen" '^> checklist +0/4 ticked'
keys ']'
expect "moving to backup before ticking lands on the checklist with the reason" \
	'backup cannot open yet: every checklist item'
t_match "still on the checklist" "$screen" '^> checklist '
keys F7
expect "F7 is refused the same way" 'backup cannot open yet'
keys Space
expect "Space ticks the first item" '│  \[x\] Users were told about the maintenance'
t_match "the sidebar counts it" "$screen" '^> checklist +1/4 ticked'
keys Space Space Space
expect "all four ticked" 'All 4 ticked: the changing stages can open'
t_match "the sidebar says done" "$screen" '^> checklist +done'
t_eq "four checklist_tick records, each with item, index, ticked, user and time" \
	"$(journal "$RUN" | jq -r 'select(.type=="checklist_tick") | .data | select(.ticked == true and .user == "tester" and (.at | test("^[0-9]{4}-[0-9]{2}-[0-9]{2}T")) and (.item | length > 0)) | .index' | tr '\n' ' ')" \
	"0 1 2 3 "
keys Up Space
expect "Space on a ticked item unticks it" '3/4 ticked'
t_eq "the untick is journaled" \
	"$(journal "$RUN" | jq -r 'select(.type=="checklist_tick") | .data.ticked' | tail -n 1)" "false"
keys Space
expect "and ticks again" 'All 4 ticked'

keys ']'
expect "] now opens backup" 'Stage: backup'
t_match "it says what backup will do, from the plan" "$screen" 'pg_dump custom format'
t_match "and that F2 takes it" "$(main_text)" 'F2 \(or r\) takes it'
t_match "it offers only the typed waiver" "$screen" 'Migrate and sync need a verified backup'
sleep 0.3  # let the clock in the log pane settle on one second before the whole-screen capture
wait_for 'Stage: backup'
got=$(printf '%s\n' "$screen" | mask)
# UPDATE_EXPECTED=1 rewrites the expected capture (then read the diff before committing it).
[ -n "${UPDATE_EXPECTED:-}" ] && printf '%s\n' "$got" >"$top_srcdir/tests/tui/expected/wizard-backup-80x24.txt"
want=$(cat "$top_srcdir/tests/tui/expected/wizard-backup-80x24.txt")
t_eq "the backup screen at 80x24 matches the expected capture" "$got" "$want"

keys F1
expect "F1 opens the help" 'Help: keys'
wait_for 'F6, \[ +Go to the previous stage' 5
t_match "help lists the next-stage keys" "$screen" 'F7, \] +Go to the next stage'
got=$(printf '%s\n' "$screen" | mask)
[ -n "${UPDATE_EXPECTED:-}" ] && printf '%s\n' "$got" >"$top_srcdir/tests/tui/expected/wizard-help-80x24.txt"
t_eq "the help screen at 80x24 matches the expected capture" "$got" \
	"$(cat "$top_srcdir/tests/tui/expected/wizard-help-80x24.txt")"
keys ']'
expect "] inside help does not switch stages" 'Help: keys'
keys q
expect "q closes the help, not the wizard" 'Stage: backup'
keys '?'
expect "? opens the help too" 'Help: keys'
keys Escape
expect "Esc closes it" 'Stage: backup'

tm resize-window -t d -x 60 -y 20
expect "60x20 shows the too-small banner" 'terminal too small \(60x20, need 80x24\)'
tm resize-window -t d -x 80 -y 24
expect "80x24 again restores the stage" 'Stage: backup'
t_match "and the sidebar selection" "$screen" '^> backup +pending'

keys q
expect "q quits with status 0" 'wizard finished: 0'
t_eq "the terminal is restored" "$(restored)" "0 1"
t_match "it says how to resume" "$(printf '%s' "$screen" | tr -d '\n')" "resume it with \"pgrunbook resume $RUN\""
t_eq "the quit journaled where the wizard was" \
	"$(journal "$RUN" | jq -r 'select(.type=="log" and .data.wizard_stage != null) | .data.wizard_stage' | tail -n 1)" "backup"
t_eq "a quit run is not finished" "$(journal "$RUN" | jq -r 'select(.type=="run_finished") | .type')" ""

# --- 120x40: resume returns to the same stage with the ticks ---
start 120 40 resume
expect "resume returns to the same stage" 'Stage: backup'
t_match "the sidebar shows backup selected and the time against its budget" "$screen" '^> backup +pending +- / 10:00'
t_match "preflight is still done" "$screen" '^  preflight +done +[0-9]+:[0-9]{2} '
t_match "the header still shows the target from the last preflight" "$screen" 'target prod  db shop_prod  PostgreSQL'
t_match "the log pane was restored from the journal" "$screen" 'checklist: ticked by tester: Users were told'
keys '['
expect "the checklist is ticked as it was" 'All 4 ticked'
for item in 'Users were told' 'The migrations in prisma' 'The sync tables' 'Someone who can restore'; do
	t_match "ticked: $item" "$screen" "│  \[x\] $item"
done
t_match "with who and when" "$screen" 'ticked by tester at [0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2} UTC'
# The typed confirmation: waiving the backup needs "waive-backup <target database>".
keys ']'
expect "] opens backup again" 'Stage: backup'
t_match "backup offers the waiver" "$screen" 'Migrate and sync need a verified backup'
keys F4
expect "F4 opens the typed confirmation" 'Confirm: Waive the backup'
t_match "it shows the phrase core computed" "$screen" 'waive-backup shop_prod'
t_match "a long warning wraps instead of being cut at the box's edge" "$screen" 'restore\.'
t_match "so does the action" "$screen" 'waived\)'
t_match "it shows the target environment" "$screen" 'Environment: +prod'
t_match "and the target's host/db (the socket path)" "$screen" 'Target: +/.*/sock:[0-9]+/'  # cut at the box edge
keys Enter
t_match "Enter on empty input does nothing (no default)" "$(tm capture-pane -p -t d)" 'Confirm: Waive the backup'
tm send-keys -t d -l -- 'waive-backup shop_prod '
keys Enter
expect "a trailing space is a miss" 'Wrong phrase \(1 of 3\): nothing ran'
tm send-keys -t d -l -- 'Waive-Backup shop_prod'
keys Enter
expect "another letter case is a miss" 'Wrong phrase \(2 of 3\): nothing ran'
tm send-keys -t d -l -- 'apply shop_prod'
keys Enter
expect "a phrase of another prompt is the third miss, and the prompt closes" 'backup waiver refused after 3 wrong phrases'
t_match "backup is not waived" "$screen" '^> backup +pending'
t_eq "the three misses are journaled with their reasons" \
	"$(journal "$RUN" | jq -r 'select(.type=="confirm_miss") | .data.reason' | tr '\n' '|')" \
	"the phrase has extra or missing spaces|the phrase differs in letter case|the phrase is different|"
t_eq "the typed text is never journaled" "$(journal "$RUN" | grep -c 'Waive-Backup')" "0"
t_eq "nothing was waived" "$(journal "$RUN" | jq -r 'select(.type=="stage_waived") | .type')" ""
keys c
expect "c opens it again" 'Confirm: Waive the backup'
keys C-c
expect "Ctrl-C answers no" 'backup waiver cancelled; nothing changed'
keys F4
expect "F4 once more" 'Confirm: Waive the backup'
tm send-keys -t d -l -- 'waive-backup shop_prod'
keys Enter
expect "the exact phrase waives the backup" '^> backup +waived'
t_eq "journaled: the confirmation, then the waiver" \
	"$(journal "$RUN" | jq -r 'select(.type=="confirm_ok" or .type=="stage_waived") | .type' | tr '\n' ' ')" \
	"confirm_ok stage_waived "
t_eq "the waiver names who" "$(journal "$RUN" | jq -r 'select(.type=="stage_waived") | .data.user')" "tester"
keys '['
expect "[ back to the checklist" 'All 4 ticked'
keys '[' r
expect "preflight runs again on F2/r" 'done: 3 environments ready'
keys q
expect "q quits the resumed run" 'wizard finished: 0'
t_eq "the resumed run is the same one" "$(newest_run)" "$RUN"
t_eq "it was journaled as resumed" "$(journal "$RUN" | jq -r 'select(.type=="log" and .message=="wizard resumed") | .message')" "wizard resumed"

# --- refusals to reopen: nothing touches the terminal, exit 3 ---
sed 's/^name: demo shop release/name: demo shop release, edited/' "$PLAN" >"$T_TMP/changed.yaml"
t_run 3 "resume refuses a changed plan" "$PGRUNBOOK" resume "$RUN" --plan "$T_TMP/changed.yaml"
t_match "and says why" "$err" 'plan'
t_run 0 "pgrunbook preflight records a finished run" "$PGRUNBOOK" preflight --plan "$PLAN"
FIN=$(newest_run)
t_run 3 "--run refuses a finished run" "$PGRUNBOOK" --plan "$PLAN" --run "$FIN"
t_match "and says it is finished" "$err" 'finished'
cp -a "$XDG_STATE_HOME/pgrunbook/runs/$RUN" "$T_TMP/saved-run"
sed -i 's/"wizard resumed"/"wizard resumeD"/' "$XDG_STATE_HOME/pgrunbook/runs/$RUN/journal.jsonl"
t_run 3 "resume refuses a damaged journal" "$PGRUNBOOK" resume "$RUN"
t_match "and says what is wrong" "$err" 'checksum|corrupt|damaged'
rm -rf "$XDG_STATE_HOME/pgrunbook/runs/$RUN"
cp -a "$T_TMP/saved-run" "$XDG_STATE_HOME/pgrunbook/runs/$RUN"

# --- SIGTERM at idle: terminal restored, exit 3, the interruption journaled ---
start 80 24 --plan "$PLAN" --run "$RUN"
expect "--run reopens the run where it was left (preflight)" 'Preflight: read-only checks'
kill -TERM "$(wizard_pid)"
expect "SIGTERM at idle exits 3" 'wizard finished: 3'
t_match "it says the run stays resumable" "$(printf '%s' "$screen" | tr -d '\n')" "interrupted by signal 15; run $RUN stays resumable"
t_eq "the terminal is restored after SIGTERM" "$(restored)" "0 1"
t_eq "the interruption is journaled" \
	"$(journal "$RUN" | jq -r 'select(.type=="log" and .level=="warn") | .message' | tail -n 1)" \
	"wizard interrupted by signal 15 on stage preflight"

# --- SIGTERM while preflight waits on a slow server (accepts, never answers) ---
perl -MIO::Socket::INET -e '
	my $s = IO::Socket::INET->new(LocalAddr => "127.0.0.1", LocalPort => 0, Listen => 5, ReuseAddr => 1) or die;
	open(my $f, ">", $ARGV[0]) or die; print $f $s->sockport, "\n"; close $f;
	my @held; while (my $c = $s->accept) { push @held, $c }' "$T_TMP/slow.port" &
slow_pid=$!
for _ in $(seq 100); do [ -s "$T_TMP/slow.port" ] && break; sleep 0.05; done
SLOW=$(cat "$T_TMP/slow.port")
PRODCI=$(sed -n 's/^  prod: *{ conninfo: "\(.*\)" }$/\1/p' "$PLAN")
cat >"$T_TMP/slow.yaml" <<EOF
name: slow source
environments:
  slow: { conninfo: "host=127.0.0.1 port=$SLOW dbname=x user=x sslmode=disable connect_timeout=10" }
  prod: { conninfo: "$PRODCI" }
source: slow
target: prod
checklist: { before: ["Someone is on call"] }
EOF
start 80 24 --plan "$T_TMP/slow.yaml"
expect "preflight shows the slow environment being checked" '│  slow +checking' 10
t_match "and the next one waiting" "$screen" '│  prod +waiting'
t_match "the sidebar shows preflight running" "$screen" '^> preflight +running'
keys q
expect "q while a stage runs asks first" 'A stage is running\. Quit anyway\?'
keys Enter
expect "Enter is not an answer" 'Press y or n: there is no default'
keys C-c
expect "Ctrl-C at the question means no" 'still here: the running stage goes on'
t_match "the wizard is still running preflight" "$screen" '│  slow +checking'
SRUN=$(newest_run)
kill -TERM "$(wizard_pid)"
expect "SIGTERM while preflight waits exits 3 once the worker stopped" 'wizard finished: 3' 25
t_eq "the terminal is restored" "$(restored)" "0 1"
t_eq "preflight was cancelled before the next environment" \
	"$(journal "$SRUN" | jq -r 'select(.type=="stage_failed") | .message')" "cancelled after 1 of 2 environments"
t_match "the interruption is journaled" \
	"$(journal "$SRUN" | jq -r 'select(.type=="log") | .message')" 'wizard interrupted by signal 15 on stage preflight'
t_eq "the interrupted run is not finished" "$(journal "$SRUN" | jq -r 'select(.type=="run_finished") | .type')" ""
# --- live rows: an environment's findings show while the next one is still being checked ---
cat >"$T_TMP/live.yaml" <<EOF
name: live rows
environments:
  prod: { conninfo: "$PRODCI" }
  slow: { conninfo: "host=127.0.0.1 port=$SLOW dbname=x user=x sslmode=disable connect_timeout=10" }
source: slow
target: prod
EOF
start 100 30 --plan "$T_TMP/live.yaml"
expect "the slow environment is being checked" '│  slow +checking' 10
t_match "prod's row is already filled in: ready, version, migrations, lock" "$screen" \
	'│  prod +ready +target +[0-9]+\.[0-9]+ +4/0 +free'
keys q
expect "q asks while preflight runs" 'Quit anyway\?'
keys y
expect "y quits; the worker is cancelled at once" 'wizard finished: 0' 5
t_done
