# lib.sh: driving the real pgrunbook binary in tmux (sourced by the TUI tests after tests/lib.sh).
# The test sets $sock (a private tmux server name) before sourcing; the session is "d".
tm() { tmux -L "$sock" -f /dev/null "$@"; }

# start W H ARGS...: pgrunbook ARGS alone in a fresh tmux server; a marker with its exit status
# ("wizard finished: N") and a shell keep the pane alive after it ends.
start() {
	local w=$1 h=$2 args="" a
	shift 2
	for a in "$@"; do args="$args '$a'"; done
	tm kill-server >/dev/null 2>&1
	# A server that is still going away can make the next one fail to start: retry a few times.
	for _ in 1 2 3 4 5; do
		tm new-session -d -s d -x "$w" -y "$h" \
			"env TERM=xterm-256color LANG=C.UTF-8 LC_ALL=C.UTF-8 TZ=UTC HOME='$HOME' \
			 XDG_STATE_HOME='$XDG_STATE_HOME' USER=tester '$PGRUNBOOK' $args; \
			 echo \"wizard finished: \$?\"; exec sleep 3600" 2>/dev/null && return 0
		sleep 0.3
	done
	t_fail "tmux could not start a session"
}

now_ms() { date +%s%3N; }
screen=""
# wait_for ERE [SECONDS]: polls the pane until it matches; $screen holds the last capture.
wait_for() {
	local deadline=$(($(now_ms) + ${2:-15} * 1000))
	while :; do
		screen=$(tm capture-pane -p -t d 2>/dev/null)
		if printf '%s\n' "$screen" | grep -Eq -- "$1"; then
			# A capture can land mid-frame: take the match when a second capture shows it too.
			sleep 0.05
			screen=$(tm capture-pane -p -t d 2>/dev/null)
			printf '%s\n' "$screen" | grep -Eq -- "$1" && return 0
			continue
		fi
		[ "$(now_ms)" -ge "$deadline" ] && return 1
		sleep 0.05
	done
}
# expect DESC ERE [SECONDS]: a TAP line, ok when the pane shows ERE in time.
expect() {
	if wait_for "$2" "${3:-15}"; then t_ok "$1"; else t_fail "$1" "no /$2/ on the screen:
$screen"; fi
}
keys() { tm send-keys -t d "$@"; }
type_text() { tm send-keys -t d -l -- "$1"; }
# main_text: the stage screen's column of $screen (right of the sidebar; inside a dialog's
# borders where there is one) as one line, for text that wraps.
main_text() { printf '%s\n' "$screen" | sed -e 's/^[^│]*│//' -e 's/^[^│]*│\(.*\)│[^│]*$/\1/' | tr -s ' \n' ' '; }
