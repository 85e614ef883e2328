# toolkit.sh: the tui toolkit in tmux, through tests/tui/tuidriver: a million-row table, search,
# help from the command list, typed confirmation, yes/no, progress on a worker thread, resize,
# NO_COLOR, signals, and the terminal restored at the end. Screens are polled with deadlines.
. "$top_srcdir/tests/lib.sh"

command -v tmux >/dev/null || t_skip "tmux is not installed (Debian package tmux)"
drv="$top_builddir/tests/tui/tuidriver"
[ -x "$drv" ] || t_skip "$drv is not built (make check builds it)"

export TERM=xterm-256color LANG=C.UTF-8 LC_ALL=C.UTF-8 TZ=UTC HOME
nstart=0
sock="t$$-$nstart"
. "$top_srcdir/tests/tui/lib.sh"  # tm, wait_for, expect, keys (start is the driver's, below)
trap 'tmux -L "$sock" kill-server >/dev/null 2>&1' EXIT
dlog="$T_TMP/driver.log"
dpid="$T_TMP/driver.pid"

# start W H [VAR=value...]: the driver alone in a fresh tmux server, then a marker and a shell
# that keeps the pane (and what the driver left on it) alive.
start() {
	local w=$1 h=$2
	shift 2
	tm kill-server >/dev/null 2>&1
	# A fresh socket for each server: one still going away cannot fail the next start.
	nstart=$((nstart + 1))
	sock="t$$-$nstart"
	rm -f "$dlog" "$dpid"
	tm new-session -d -s d -x "$w" -y "$h" \
		"env TERM=xterm-256color LANG=C.UTF-8 LC_ALL=C.UTF-8 TZ=UTC HOME='$HOME' $* \
		 TUIDRIVER_LOG='$dlog' TUIDRIVER_PIDFILE='$dpid' '$drv'; echo \"tuidriver finished: \$?\"; exec sleep 3600"
}

# expect_not DESC ERE: the current screen (captured now) does not match.
expect_not() {
	screen=$(tm capture-pane -p -t d)
	t_nomatch "$1" "$screen" "$2"
}
text() { type_text "$1"; }
logged() {  # DESC ERE: the log pane shows a line
	expect "$1" "^[0-9]{2}:[0-9]{2}:[0-9]{2} $2"
}
commands=$(sed -n 's/^\t_(\([A-Z_]*\),.*/\1/p' "$top_srcdir/tui/commands.h")

# --- 80x24 ---
start 80 24
expect "80x24: the table shows its header and first row" '^ *id name +email +amount status +note'
expect "80x24: the status line counts a million rows" 'row 1 of 1000000'
expect "80x24: the key bar comes from the command list" '^1Help 2Run 3Search 4Confirm 5Refresh 6Prev 7Next 8Rollback 10Quit'
expect "80x24: the header names the prod target" 'target prod +db\.example:5432/shop_prod'

t0=$(now_ms)
keys End
if wait_for 'row 1000000 of 1000000' 5; then
	el=$(($(now_ms) - t0))
	if [ "$el" -lt 2000 ]; then t_ok "End reaches row 1000000 quickly (${el} ms)"; else t_fail "End took ${el} ms"; fi
else
	t_fail "End reaches row 1000000" "$screen"
fi
t_match "the last row is on screen" "$screen" '^ *1000000 user1000000 '
keys C-c Home
expect "Ctrl-C does not quit; Home goes back to row 1" 'row 1 of 1000000'
keys j j
expect "j moves the cursor" 'row 3 of 1000000'

keys /
text user0777777
expect "incremental search finds the row" 'row 777777 of 1000000'
t_match "the prompt shows the search text" "$screen" '^/user0777777 '
t_match "the found row is visible" "$screen" '^ *777777 user0777777 '
keys Enter
keys n
expect "n searches again and wraps" 'search wrapped to the top +row 777777 of 1000000'
keys /
text nothing-like-this
expect "a missing text is reported" 'not found: nothing-like-this'
keys Escape
expect "Esc leaves the search where it started" '^ +row 777777 of 1000000'

keys F1
expect "F1 opens the help" 'Help: keys'
# The first page is complete once its last command is drawn (a capture can land mid-frame).
wait_for ' QUIT +[A-Z]' 5
help=$screen
keys PgDn
wait_for 'Esc or q closes this help' 5
help="$help
$screen"
for c in $commands; do
	t_match "help lists $c" "$help" " $c +[A-Z]"
done
keys q
expect "q closes the help, not the app" 'row 777777 of 1000000'

# Typed confirmation: exact bytes, misses counted and reported, refusal after three.
keys c
expect "c opens the typed confirmation" 'To go ahead, type exactly:'
t_match "the prompt shows the environment, target and rows touched" "$screen" 'Environment: +prod'
t_match "the prompt shows the target" "$screen" 'Target: +db\.example:5432/shop_prod'
t_match "the prompt shows the rows touched" "$screen" 'rows touched: 3 inserted'
keys Enter
text "x"
expect "Enter on empty input leaves the prompt open" '> x +'
expect_not "Enter on empty input is not an answer" 'Wrong phrase|confirm:'
keys C-u
text "deploy shop_prod "
keys Enter
expect "a trailing space is a miss" 'Wrong phrase \(1 of 3\)'
logged "the miss is reported to the caller" 'confirm miss 1: "deploy shop_prod "'
text "Deploy shop_prod"
keys Enter
logged "another case is a miss" 'confirm miss 2: "Deploy shop_prod"'
text "apply shop_prod"
keys Enter
logged "the previous phrase is a miss" 'confirm miss 3: "apply shop_prod"'
logged "three misses refuse" 'confirm: refused after 3 misses, nothing ran'
expect_not "the prompt closed after three misses" 'type exactly:'
keys c
expect "the prompt opens again" 'To go ahead, type exactly:'
text "quit"
keys C-u
text "deploy shop_pro"
keys BSpace
text "od"
keys Enter
logged "the exact phrase (after editing) is accepted" 'confirm: ok, would deploy'
keys c
expect "the prompt opens a third time" 'To go ahead, type exactly:'
keys C-c
logged "Ctrl-C at the prompt means no" 'confirm: cancelled'
expect_not "and does not quit" 'tuidriver finished'

# Yes/no without a default.
keys F8
expect "F8 asks a yes/no question" 'Roll back shop_prod'
keys Enter
expect "Enter is not an answer" 'Press y or n: there is no default answer'
keys n
logged "n answers no" 'rollback answer: no'
keys F8
expect "the question opens again" 'Roll back shop_prod'
keys y
logged "y answers yes" 'rollback answer: yes'
keys F8
wait_for 'Roll back shop_prod' 5
keys Escape
expect "Esc answers no" 'rollback answer: no$'

# Progress on a worker thread, events through the queue.
keys r
expect "the progress bar shows a rate and an ETA" '\[#*\.*\] +[0-9]+%  [0-9]+/3000  [0-9.]+k?/s  ETA [0-9]+:[0-9]{2}'
logged "the worker's event reached the frame" 'worker: counting to 3000'
expect "the worker finishes" '100%  3000/3000 .*ETA 0:00' 60
expect "its completion was delivered" 'state: done'
logged "and logged" 'worker: done at 3000'
keys Escape
expect "Esc goes back to the table" 'row 777777 of 1000000'

# A worker that finishes while help covers its screen is still seen by that screen.
keys r
wait_for 'state: running' 10
keys F1
wait_for 'Esc or q closes this help' 5
# The log pane stays visible below help: wait there for the worker's last line (about 3 s).
if wait_for 'worker: done at 3000' 20; then t_ok "the worker finished while help was open"; else t_fail "the worker did not finish under help"; fi
keys Escape
expect "the completion that arrived under help was delivered" 'state: done' 10
keys Escape
expect "back to the table" 'row 777777 of 1000000'

# The text view with margin classes.
keys Enter
expect "Enter opens the text view" 'SQL for the row'
t_match "the margin shows the lint class" "$screen" 'DANGER +ALTER TABLE "User" DROP COLUMN'
t_match "the text view shows the row" "$screen" 'WHERE id = 777777;'
keys Escape
expect "Esc closes it" 'row 777777 of 1000000'

# Resize: too small keeps the state, growing back restores it.
tm resize-window -t d -x 60 -y 20
expect "60x20 shows the too-small banner" 'terminal too small \(60x20, need 80x24\)'
keys j Enter
tm resize-window -t d -x 100 -y 30
expect "100x30 restores the table with its cursor" 'row 777777 of 1000000'
t_nomatch "keys were ignored while too small" "$screen" 'row 777778 of|SQL for the row'
t_match "the table uses the new width" "$screen" '^ *777777 user0777777 .{60,}'
t_nomatch "the banner is gone" "$screen" 'terminal too small'

keys q
expect "q quits with status 0" 'tuidriver finished: 0'
t_match "the driver reported its exit" "$screen" 'tuidriver: exit 0'
state=$(tm display-message -p -t d '#{alternate_on} #{cursor_flag}')
t_eq "the terminal is restored (main screen, cursor visible)" "$state" "0 1"
t_match "the log reached the caller" "$(cat "$dlog")" 'confirm: ok, would deploy'

# Colours are on by default.
start 80 24
expect "a second start" 'row 1 of 1000000'
keys j
expect "cursor on row 2" 'row 2 of 1000000'
esc=$(tm capture-pane -p -e -t d)
t_match "colours are used by default" "$esc" $'\e\\[(3[0-7]|4[0-7])m'
# q still quits while the terminal is too small (no prompt is open): never stuck in a small pane.
tm resize-window -t d -x 60 -y 20
expect "too small again" 'terminal too small'
keys q
expect "q quits even while too small" 'tuidriver finished: 0'

# --- NO_COLOR: mono, the cursor row in reverse video ---
start 80 24 NO_COLOR=1
expect "NO_COLOR: the table shows" 'row 1 of 1000000'
keys j
expect "NO_COLOR: cursor on row 2" 'row 2 of 1000000'
esc=$(tm capture-pane -p -e -t d)
t_match "NO_COLOR: the cursor row is in reverse video" "$esc" $'\e\\[([0-9;]*;)?7m +2 user0000002 '
t_nomatch "NO_COLOR: no other row is reversed" "$(printf '%s\n' "$esc" | grep -v ' 2 user0000002 ' | grep 'user000')" $'\e\\[([0-9;]*;)?7m'
t_nomatch "NO_COLOR: no colours" "$esc" $'\e\\[([0-9;]*;)?(3[0-7]|4[0-7]|38;5;[0-9]+|48;5;[0-9]+)m'
keys q
expect "NO_COLOR: q quits" 'tuidriver finished: 0'

# --- SIGTERM while the worker runs: the app hook runs, the terminal is restored, status 3 ---
start 80 24
expect "SIGTERM run: started" 'row 1 of 1000000'
keys r
logged "the worker runs" 'worker: counting to 3000'
kill -TERM "$(cat "$dpid")"
expect "SIGTERM stops the loop after the app's hook" 'tuidriver: stopped by signal 15, hook ran'
expect "with a distinct status" 'tuidriver finished: 3'
t_eq "the terminal is restored after SIGTERM" "$(tm display-message -p -t d '#{alternate_on} #{cursor_flag}')" "0 1"
t_nomatch "the worker was cancelled, not finished" "$(cat "$dlog")" 'worker: done'

# --- 120x40 ---
start 120 40
expect "120x40: the table shows" 'row 1 of 1000000'
t_match "120x40: wide columns fit" "$screen" '^ *1 user0000001 user0000001@example.com +7919\.01 ok +note for 1: the far right end'
keys End
expect "120x40: End" 'row 1000000 of 1000000'
keys '?'
expect "120x40: ? opens the help" 'Help: keys'
for c in $commands; do
	t_match "120x40: help lists $c on one page" "$screen" " $c +[A-Z]"
done
keys Escape
expect "120x40: Esc closes the help" 'row 1000000 of 1000000'
kill -HUP "$(cat "$dpid")"
expect "SIGHUP is handled like SIGTERM" 'tuidriver: stopped by signal 1, hook ran'
t_eq "the terminal is restored after SIGHUP" "$(tm display-message -p -t d '#{alternate_on} #{cursor_flag}')" "0 1"
t_done
