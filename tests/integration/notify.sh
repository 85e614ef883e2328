#!/usr/bin/env bash
# notify.sh: webhook notifications of journaled commands against a real listener
# (tests/harness/webhookd) and the real cluster: generic payloads with verified Standard Webhooks
# signatures, Slack and PagerDuty payloads, at-least-once retries (500, reset), Retry-After on 429,
# 410 and 400, 302, a hanging endpoint that holds up neither the command nor the other endpoints,
# `notify test` (endpoints in parallel),
# `notify flush` after the endpoint recovers (the same ids), a variable that is not set, and no
# URL, routing key or secret in the run directory, the output or the report.
. "$top_srcdir/tests/lib.sh"

unset PGAPPNAME PGCONNECT_TIMEOUT
WEBHOOKD="$top_builddir/tests/harness/webhookd"
runs="$XDG_STATE_HOME/pgrunbook/runs"
outputs="$T_TMP/outputs"   # every command's stdout and stderr, for the secrets check
: >"$outputs"
wh_pid=""

cleanup() {
	[ -n "$wh_pid" ] && kill -TERM "$wh_pid" 2>/dev/null && wait "$wh_pid" 2>/dev/null
	return 0
}
trap cleanup EXIT

command -v openssl >/dev/null || t_skip "openssl is not installed"
command -v jq >/dev/null || t_skip "jq is not installed"

wait_for() {  # wait_for SECONDS CMD...: polls until CMD succeeds
	local end=$((SECONDS + $1))
	shift
	while ! "$@" >/dev/null 2>&1; do
		[ "$SECONDS" -ge "$end" ] && return 1
		sleep 0.1
	done
}
now_ms() { echo $(($(date +%s%N) / 1000000)); }

# run_cmd WANT DESC CMD...: t_run, keeping the output for the secrets check; $ms: elapsed.
run_cmd() {
	local t0
	t0=$(now_ms)
	t_run "$@"
	ms=$(($(now_ms) - t0))
	printf '%s\n%s\n' "$out" "$err" >>"$outputs"
}

# --- the listener --------------------------------------------------------------------------
ROUTES=(
	--route /hook=200 --route /slack=200 --route /pd=202 --route /pdfail=202
	--route /c_ok=200 --route /flaky=500,200 --route /slow429=429:2,200 --route /slow503=503:@2,200 --route /gone=410
	--route /bad=400 --route /reset=reset,200
	--route /hang=hang --route /d_ok=200
	--route /t_hook=200 --route /t_slack=200 --route /t_pd=202 --route /t_bad=500
	--route /h_ok=200 --route /h_ok2=200
	--route /m_ok=200 --route /r_ok=200
	--route /redir=302 --route /t_hang=hang --route /p_ok=200
)
port=0
LOG=""
start_webhookd() {  # start_webhookd LOG PORT ROUTE-ARGS...: sets $port
	LOG=$1
	local want=$2
	shift 2
	rm -f "$T_TMP/wh.port"
	"$WEBHOOKD" --port "$want" --port-file "$T_TMP/wh.port" --log "$LOG" "$@" 2>>"$T_TMP/webhookd.err" &
	wh_pid=$!
	if ! wait_for 10 test -s "$T_TMP/wh.port"; then
		t_fail "webhookd listens" "$(cat "$T_TMP/webhookd.err")"
		t_done
	fi
	port=$(cat "$T_TMP/wh.port")
}
stop_webhookd() {
	kill -TERM "$wh_pid"
	wait "$wh_pid"
	local st=$?
	wh_pid=""
	return $st
}
reqs() { [ -f "$LOG" ] && jq -c --arg p "$1" 'select(.path == $p)' "$LOG"; }   # PATH: its requests
nreq() { reqs "$1" | wc -l; }
req() { reqs "$1" | sed -n "${2}p" | jq -r "$3"; }                            # PATH N FILTER
body() { reqs "$1" | sed -n "${2}p" | jq -r '.body' | jq -r "$3"; }           # PATH N FILTER (on the body)

start_webhookd "$T_TMP/wh1.log" 0 "${ROUTES[@]}"
t_match "webhookd listens on a port the kernel picked" "$port" '^[0-9]+$'

# --- secrets and variables -----------------------------------------------------------------
base="http://127.0.0.1:$port"
openssl rand 32 >"$T_TMP/hook.key"
hook_key_hex=$(od -An -tx1 -v "$T_TMP/hook.key" | tr -d ' \n')
hook_key_b64=$(base64 -w0 "$T_TMP/hook.key")
rm -f "$T_TMP/hook.key"
export HOOK_URL="$base/hook?token=hooktok$RANDOM$RANDOM"
export HOOK_SECRET="whsec_$hook_key_b64"
export SLACK_URL="$base/slack?t=slacktok$RANDOM$RANDOM"
export PD_KEY="pdroutingkey$RANDOM$RANDOM$RANDOM"
export PD_EVENTS_URL="$base/pd"
export PD_FAIL_URL="$base/pdfail"
who=${USER:-}
[ -n "$who" ] || who=$(id -un)
fast="timeout: 1s, connect_timeout: 1s, backoff: 100ms, max_attempts: 4"

# verify_sig LOGLINE [HEXKEY]: the request's webhook-signature is the HMAC of id.timestamp.body.
verify_sig() {
	local line=$1 key=${2:-$hook_key_hex} id ts sig want
	id=$(jq -r '.headers["webhook-id"]' <<<"$line")
	ts=$(jq -r '.headers["webhook-timestamp"]' <<<"$line")
	sig=$(jq -r '.headers["webhook-signature"] // ""' <<<"$line")
	want="v1,$({ printf '%s.%s.' "$id" "$ts"; jq -j '.body' <<<"$line"; } |
		openssl dgst -sha256 -mac HMAC -macopt "hexkey:$key" -binary | base64 -w0)"
	# The header may list several space-separated signatures.
	[[ " $sig " == *" $want "* ]]
}

write_plan() {  # FILE DB ENDPOINT-LINES
	cat >"$1" <<EOF
name: notify test
environments:
  prod: { conninfo: "host=$PGHOST port=$PGPORT dbname=$2" }
target: prod
notify:
$3
EOF
}
write_bare_plan() {  # FILE DB: the same plan without notify
	cat >"$1" <<EOF
name: notify test
environments:
  prod: { conninfo: "host=$PGHOST port=$PGPORT dbname=$2" }
target: prod
EOF
}
outbox_msg() { jq -r "$3" "$runs/$1/outbox/$(printf '%08d' "$2")-$4.json"; }   # RUN SEQ FILTER ENDPOINT
# ep_state RUN INDEX: the endpoint's state in endpoints.json (an array, or an object holding one).
ep_state() {
	jq -r --argjson i "$2" '(if type == "array" then . elif has("endpoints") then .endpoints else [.[]] end)
		| map(select(.index == $i)) | .[0].state' "$runs/$1/outbox/endpoints.json"
}

# What the commands do without webhooks: the exit codes each case must keep.
write_bare_plan "$T_TMP/bare-ok.yaml" "$T_DB"
write_bare_plan "$T_TMP/bare-fail.yaml" "${T_DB}_nosuch"
"$PGRUNBOOK" preflight --plan "$T_TMP/bare-ok.yaml" --no-journal >/dev/null 2>&1
rc_ok=$?
"$PGRUNBOOK" preflight --plan "$T_TMP/bare-fail.yaml" --no-journal >/dev/null 2>&1
rc_fail=$?
t_eq "without webhooks: preflight of the test database succeeds" "$rc_ok" 0
t_match "without webhooks: preflight of a missing database fails" "$rc_fail" '^[1-9]'

# --- A: 200: generic (signed), slack and pagerduty ------------------------------------------
write_plan "$T_TMP/a.yaml" "$T_DB" "  - { url_env: HOOK_URL, format: generic, secret_env: HOOK_SECRET, $fast }
  - { url_env: SLACK_URL, format: slack, $fast }
  - { url_env: PD_KEY, format: pagerduty, events_url_env: PD_EVENTS_URL, $fast }"
run_cmd "$rc_ok" "A: preflight with three endpoints exits as without them" \
	"$PGRUNBOOK" preflight --plan "$T_TMP/a.yaml" --json
run_a=$(jq -r .run_id <<<"$out")
t_match "A: a journaled run" "$run_a" '^[0-9]{8}T[0-9]{6}\.[0-9]{3}Z-[0-9a-f]{6}$'
t_match "A: the end line counts every message sent" "$err" '^notify: 7 sent, 0 pending, 0 failed$'
t_eq "A: generic: one request per default event (stage_started, stage_done, run_finished)" "$(nreq /hook)" 3
t_eq "A: generic: the event types in order" "$(reqs /hook | jq -r '.body | fromjson | .type' | tr '\n' ' ')" \
	"stage_started stage_done run_finished "
t_eq "A: generic: ids are <run id>.<start>.<seq>" "$(reqs /hook | jq -r '.body | fromjson | .id' | tr '\n' ' ')" \
	"$run_a.1.1 $run_a.1.2 $run_a.1.3 "
t_eq "A: generic: webhook-id is the body's id" \
	"$(reqs /hook | jq -r '.headers["webhook-id"] == (.body | fromjson | .id)' | sort -u)" true
t_eq "A: generic: POST with JSON" "$(reqs /hook | jq -r '.method + " " + .headers["content-type"]' | sort -u)" \
	"POST application/json"
t_eq "A: generic: run_id, plan, environment, database, who" \
	"$(body /hook 2 '[.run_id, .plan, .environment, .database, .who] | join(" ")')" \
	"$run_a notify test prod $T_DB $who"
t_eq "A: generic: the stage of stage events, null on run_finished" \
	"$(reqs /hook | jq -r '.body | fromjson | .stage // "null"' | tr '\n' ' ')" "preflight preflight null "
t_match "A: generic: stage_done has a duration in ms" "$(body /hook 2 '.duration_ms')" '^[0-9]+$'
t_match "A: generic: a message, a level, an RFC 3339 timestamp" \
	"$(body /hook 2 '[.message, .level, .timestamp] | join("|")')" \
	'^.+\|[a-z]+\|[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?Z$'
t_eq "A: generic: run_finished's data holds the state" "$(body /hook 3 '.data.state')" "done"
now=$(date +%s)
t_eq "A: generic: webhook-timestamp is now (unix seconds)" \
	"$(reqs /hook | jq -r --argjson now "$now" '.headers["webhook-timestamp"] | tonumber | (. <= $now and . >= $now - 30)' | sort -u)" true
sig_ok=0
while IFS= read -r line; do verify_sig "$line" && sig_ok=$((sig_ok + 1)); done < <(reqs /hook)
t_eq "A: generic: every webhook-signature verifies with the secret" "$sig_ok" 3
t_match "A: generic: the signature header is v1,<base64>" "$(req /hook 1 '.headers["webhook-signature"]')" \
	'^v1,[A-Za-z0-9+/]{43}=$'
if verify_sig "$(reqs /hook | head -n 1)" "$(openssl rand -hex 32)"; then
	t_fail "A: a signature does not verify with another key"
else
	t_ok "A: a signature does not verify with another key"
fi
t_eq "A: slack: one request per event" "$(nreq /slack)" 3
t_eq "A: slack: text and blocks" "$(reqs /slack | jq -r '.body | fromjson | (.text | type) + " " + (.blocks | type)' | sort -u)" \
	"string array"
t_match "A: slack: the text names the plan and the stage" "$(body /slack 2 '.text')" 'notify test.*preflight|preflight.*notify test'
t_match "A: slack: <plan>: <stage> <result> in <duration> (<environment>, by <who>)" "$(body /slack 2 '.text')" \
	"^notify test: preflight done in [0-9.]+ (ms|s) \\(prod, by $who\\)\$"
t_match "A: slack: run_finished says the run's result and message" "$(body /slack 3 '.text')" \
	"^notify test: run done in [0-9.]+ (ms|s) \\(prod, by $who\\): .+"
t_match "A: slack: a fields section with Plan, Environment, Stage, Result, Duration, Who, Run" \
	"$(body /slack 2 '[.blocks[] | .fields // [] | .[] | .text] | join("|") | gsub("\n"; " ")')" \
	'Plan.*Environment.*Stage.*Result.*Duration.*Who.*Run'
t_eq "A: pagerduty: only run_finished (done) is sent, as a resolve" "$(nreq /pd)" 1
t_eq "A: pagerduty: resolve with the routing key and the run's dedup key" \
	"$(body /pd 1 '[.event_action, .routing_key == env.PD_KEY, .dedup_key] | map(tostring) | join(" ")')" \
	"resolve true pgrunbook-$run_a"
ob="$runs/$run_a/outbox"
t_eq "A: the outbox is private (0700)" "$(stat -c %a "$ob")" 700
t_eq "A: one message file per endpoint and event it sends (3 + 3 + 1)" \
	"$(ls "$ob" | grep -Ec '^[0-9]{8}-[0-9]+\.json$')" 7
t_eq "A: message files are 0600" "$(stat -c %a "$ob"/*-*.json | sort -u)" 600
t_eq "A: every message is sent after one attempt" \
	"$(jq -r '[.state, .attempts, .last_status] | map(tostring) | join(" ")' "$ob"/*-*.json | sort | uniq -c | sed 's/^ *//')" \
	"6 sent 1 200
1 sent 1 202"
t_eq "A: the outbox names the variable, not the URL" "$(outbox_msg "$run_a" 1 .url_env 0) $(outbox_msg "$run_a" 1 .url_env 1)" \
	"HOOK_URL SLACK_URL"
t_eq "A: the stored body is the body sent" "$(outbox_msg "$run_a" 2 '.body' 0 | jq -cS .)" \
	"$(req /hook 2 .body | jq -cS .)"
t_eq "A: every endpoint ok" "$(ep_state "$run_a" 0) $(ep_state "$run_a" 1) $(ep_state "$run_a" 2)" "ok ok ok"

# --- B: a failing stage triggers pagerduty ----------------------------------------------------
write_plan "$T_TMP/b.yaml" "${T_DB}_nosuch" "  - { url_env: PD_KEY, format: pagerduty, events_url_env: PD_FAIL_URL, $fast }"
run_cmd "$rc_fail" "B: preflight of a missing database exits as without webhooks" \
	"$PGRUNBOOK" preflight --plan "$T_TMP/b.yaml" --json
run_b=$(jq -r .run_id <<<"$out")
t_eq "B: pagerduty: one request, the trigger (no resolve for a failed run)" "$(nreq /pdfail)" 1
t_eq "B: pagerduty: trigger, routing key, dedup key, severity error" \
	"$(body /pdfail 1 '[.event_action, .routing_key == env.PD_KEY, .dedup_key, .payload.severity] | map(tostring) | join(" ")')" \
	"trigger true pgrunbook-$run_b error"
t_match "B: pagerduty: a summary and a source" "$(body /pdfail 1 '[.payload.summary, .payload.source] | join("|")')" '^.+\|.+$'
t_match "B: the end line" "$err" '^notify: 1 sent, 0 pending, 0 failed$'

# --- C: 500 then 200, 429 with Retry-After, 410, 400, reset -----------------------------------
write_plan "$T_TMP/c.yaml" "$T_DB" "  - { url_env: C_OK_URL, $fast }
  - { url_env: FLAKY_URL, $fast }
  - { url_env: SLOW_URL, $fast }
  - { url_env: GONE_URL, $fast }
  - { url_env: BAD_URL, $fast }
  - { url_env: RESET_URL, $fast }
  - { url_env: DATE503_URL, $fast }"
export DATE503_URL="$base/slow503"
export C_OK_URL="$base/c_ok" FLAKY_URL="$base/flaky" SLOW_URL="$base/slow429" GONE_URL="$base/gone" \
	BAD_URL="$base/bad" RESET_URL="$base/reset"
run_cmd "$rc_ok" "C: preflight with failing endpoints exits as without them" \
	"$PGRUNBOOK" preflight --plan "$T_TMP/c.yaml" --json
run_c=$(jq -r .run_id <<<"$out")
c_ms=$ms
t_match "C: the end line: 15 sent, 6 failed (410, 400), the first endpoint refusing" "$err" \
	'^notify: 15 sent, 0 pending, 6 failed; notify\[3\] \(GONE_URL\) gone: HTTP 410 \+1 more$'
t_eq "C: 200: three requests" "$(nreq /c_ok)" 3
# 500, then 200: the same id twice
t_eq "C: 500 then 200: four requests (one retry)" "$(nreq /flaky)" 4
t_eq "C: 500 then 200: the answers" "$(reqs /flaky | jq -r .answer | tr '\n' ' ')" "500 200 200 200 "
t_eq "C: 500 then 200: the retry carries the same webhook-id and body" \
	"$(reqs /flaky | head -n 2 | jq -r '.headers["webhook-id"] + " " + .body' | sort -u | wc -l)" 1
t_eq "C: 500 then 200: and it is the first event's id" "$(req /flaky 2 '.headers["webhook-id"]')" "$run_c.1.1"
t_eq "C: 500 then 200: the message is sent after 2 attempts" "$(outbox_msg "$run_c" 1 '[.state, .attempts, .last_status] | map(tostring) | join(" ")' 1)" \
	"sent 2 200"
t_eq "C: 500 then 200: the endpoint is ok again" "$(ep_state "$run_c" 1)" ok
t_match "C: 500 then 200: the retry waited about the backoff (100ms, jittered)" \
	"$(reqs /flaky | head -n 2 | jq -s '.[1].t_ms - .[0].t_ms')" '^([4-9][0-9]|[1-9][0-9]{2})$'
# 429 with Retry-After: 2
t_eq "C: 429: four requests (one retry)" "$(nreq /slow429)" 4
gap=$(reqs /slow429 | head -n 2 | jq -s '.[1].t_ms - .[0].t_ms')
if [ "$gap" -ge 1900 ] && [ "$gap" -le 3500 ]; then
	t_ok "C: 429: the retry honoured Retry-After: 2 (${gap} ms later, not the 100ms backoff)"
else
	t_fail "C: 429: the retry honoured Retry-After: 2" "the retry came ${gap} ms after the 429"
fi
t_eq "C: 429: the same id retried" "$(reqs /slow429 | head -n 2 | jq -r '.headers["webhook-id"]' | sort -u)" "$run_c.1.1"
t_eq "C: 429: the later messages waited behind it (in seq order)" \
	"$(reqs /slow429 | jq -r '.headers["webhook-id"]' | tr '\n' ' ')" "$run_c.1.1 $run_c.1.1 $run_c.1.2 $run_c.1.3 "
t_eq "C: 429: sent after 2 attempts" "$(outbox_msg "$run_c" 1 '[.state, .attempts] | map(tostring) | join(" ")' 2)" "sent 2"
# 503 with Retry-After as an HTTP date 2 s ahead (whole seconds: 1 to 2 s)
gap=$(reqs /slow503 | head -n 2 | jq -s '.[1].t_ms - .[0].t_ms')
if [ "$(nreq /slow503)" = 4 ] && [ "$gap" -ge 900 ] && [ "$gap" -le 3500 ]; then
	t_ok "C: 503: the retry honoured Retry-After as an HTTP date (${gap} ms later)"
else
	t_fail "C: 503: the retry honoured Retry-After as an HTTP date" "$(nreq /slow503) requests, the retry ${gap} ms after the 503"
fi
# 410
t_eq "C: 410: one request only, none for the later events" "$(nreq /gone)" 1
t_eq "C: 410: the endpoint is gone" "$(ep_state "$run_c" 3)" gone
t_eq "C: 410: its messages failed (the later ones without a request)" \
	"$(for s in 1 2 3; do outbox_msg "$run_c" "$s" '[.state, .attempts] | map(tostring) | join(" ")' 3; done | tr '\n' ',')" \
	"failed 1,failed 0,failed 0,"
# 400
t_eq "C: 400: no retry: one request per event" "$(nreq /bad)" 3
t_eq "C: 400: three different ids" "$(reqs /bad | jq -r '.headers["webhook-id"]' | sort -u | wc -l)" 3
t_eq "C: 400: the endpoint is rejected" "$(ep_state "$run_c" 4)" rejected
t_eq "C: 400: the message failed after one attempt" "$(outbox_msg "$run_c" 1 '[.state, .attempts, .last_status] | map(tostring) | join(" ")' 4)" \
	"failed 1 400"
# reset
t_eq "C: reset: retried (four requests)" "$(nreq /reset)" 4
t_eq "C: reset: the retry has the same id" "$(reqs /reset | head -n 2 | jq -r '.headers["webhook-id"]' | sort -u)" "$run_c.1.1"
t_eq "C: reset: sent after 2 attempts" "$(outbox_msg "$run_c" 1 '[.state, .attempts] | map(tostring) | join(" ")' 5)" "sent 2"
t_match "C: the last error names no URL" "$(jq -r '.last_error // ""' "$runs/$run_c/outbox/"*-5.json)" '^[^/]*$'
if [ "$c_ms" -lt 6000 ]; then
	t_ok "C: the command waited only for the due retries (${c_ms} ms)"
else
	t_fail "C: the command waited only for the due retries" "it took ${c_ms} ms"
fi

# --- D: an endpoint that never answers -----------------------------------------------------------
export HANG_URL="$base/hang" D_OK_URL="$base/d_ok"
write_plan "$T_TMP/d.yaml" "$T_DB" "  - { url_env: HANG_URL, timeout: 3s, connect_timeout: 1s, backoff: 100ms, max_attempts: 4 }
  - { url_env: D_OK_URL, $fast }"
run_cmd "$rc_ok" "D: preflight with a hanging endpoint exits as without it" \
	"$PGRUNBOOK" preflight --plan "$T_TMP/d.yaml" --json
run_d=$(jq -r .run_id <<<"$out")
# Would-be total: 3 events x 4 attempts x 3 s; the drain is the timeout + 2 s.
if [ "$ms" -lt 9000 ]; then
	t_ok "D: the command ended after the drain (${ms} ms), not after every attempt (36 s+)"
else
	t_fail "D: the command ended after the drain" "it took ${ms} ms"
fi
t_eq "D: the other endpoint got its three messages" "$(nreq /d_ok)" 3
# Each endpoint has its own sender: the ok endpoint's messages do not wait for the hang's 3 s timeout.
d_lag=$(jq -s '(map(select(.path == "/d_ok")) | max_by(.t_ms).t_ms) - (map(select(.path == "/hang")) | min_by(.t_ms).t_ms)' "$LOG")
if [ "$d_lag" -lt 2000 ]; then
	t_ok "D: the ok endpoint's last message came ${d_lag} ms after the hanging endpoint's first request (its timeout: 3 s)"
else
	t_fail "D: the ok endpoint's messages came promptly" "its last one ${d_lag} ms after the hanging request"
fi
t_match "D: the hanging endpoint was tried, with the timeout" "$(nreq /hang)" '^[1-4]$'
t_match "D: before the drain, stderr says what it waits for and how to stop" "$err" \
	"^notify: delivering [3-6] pending notifications \\(up to 5 s; Ctrl-C stops waiting: pgrunbook notify flush $run_d delivers the rest\\)\$"
t_match "D: the end line: 3 sent, the rest pending, the endpoint's error, the flush command" "$err" \
	"^notify: 3 sent, 3 pending, 0 failed; notify\\[0\\] \\(HANG_URL\\) failing: [^;/]*; deliver the rest with: pgrunbook notify flush $run_d\$"
t_eq "D: the hanging endpoint is failing" "$(ep_state "$run_d" 0)" failing
t_eq "D: its messages are pending in the outbox" \
	"$(for s in 1 2 3; do outbox_msg "$run_d" "$s" .state 0; done | tr '\n' ' ')" "pending pending pending "
t_match "D: the timeout is the last error (no URL in it)" "$(outbox_msg "$run_d" 1 '.last_error // ""' 0)" '^[^/]*[Tt]ime'

# Ctrl-C during the drain stops the wait; what is left is in the outbox for notify flush.
write_plan "$T_TMP/d2.yaml" "$T_DB" "  - { url_env: HANG_URL, timeout: 8s, connect_timeout: 1s, backoff: 100ms, max_attempts: 4 }"
"$PGRUNBOOK" preflight --plan "$T_TMP/d2.yaml" --json >"$T_TMP/d2.out" 2>"$T_TMP/d2.err" &
d2_pid=$!
if wait_for 20 grep -q '^notify: delivering' "$T_TMP/d2.err"; then
	sleep 0.3
	t0=$(now_ms)
	kill -INT "$d2_pid"
	wait "$d2_pid"
	d2_rc=$?
	d2_ms=$(($(now_ms) - t0))
	d2_err=$(cat "$T_TMP/d2.err")
	printf '%s\n' "$d2_err" >>"$outputs"
	run_d2=$(jq -r .run_id "$T_TMP/d2.out")
	t_eq "D: Ctrl-C during the drain: the command exits as without webhooks" "$d2_rc" "$rc_ok"
	if [ "$d2_ms" -lt 2000 ]; then
		t_ok "D: Ctrl-C stopped the wait (${d2_ms} ms later; the drain would have been 10 s)"
	else
		t_fail "D: Ctrl-C stopped the wait" "the command ended ${d2_ms} ms after it"
	fi
	t_match "D: Ctrl-C: the end line names what is left and the flush command" "$d2_err" \
		"^notify: 0 sent, 3 pending, 0 failed; notify\\[0\\] \\(HANG_URL\\) failing: [^;]*; deliver the rest with: pgrunbook notify flush $run_d2\$"
	t_eq "D: Ctrl-C: every message is pending in the outbox" \
		"$(for s in 1 2 3; do outbox_msg "$run_d2" "$s" .state 0; done | tr '\n' ' ')" "pending pending pending "
else
	kill "$d2_pid" 2>/dev/null
	wait "$d2_pid"
	t_fail "D: the drain began" "$(cat "$T_TMP/d2.err")"
fi

# --- E: a redirect is not followed --------------------------------------------------------------
export REDIR_URL="$base/redir"
write_plan "$T_TMP/e.yaml" "$T_DB" "  - { url_env: REDIR_URL, $fast }"
run_cmd "$rc_ok" "E: preflight with an endpoint answering 302 exits as without it" \
	"$PGRUNBOOK" preflight --plan "$T_TMP/e.yaml" --json
run_e=$(jq -r .run_id <<<"$out")
t_eq "E: 302: one request per event, no retry, not followed" "$(nreq /redir)" 3
t_eq "E: 302: refused, with the reason" "$(outbox_msg "$run_e" 1 '[.state, .failure, .last_status, .last_error] | map(tostring) | join("|")' 0)" \
	"failed|rejected|302|HTTP 302: redirects are not followed; give the final URL"
t_match "E: the end line says why" "$err" \
	'^notify: 0 sent, 0 pending, 3 failed; notify\[0\] \(REDIR_URL\) rejected: HTTP 302: redirects are not followed; give the final URL$'

# --- F: notify test ----------------------------------------------------------------------------
export T_HOOK_URL="$base/t_hook" T_SLACK_URL="$base/t_slack" T_PD_URL="$base/t_pd" T_BAD_URL="$base/t_bad"
write_plan "$T_TMP/t.yaml" "$T_DB" "  - { url_env: T_HOOK_URL, secret_env: HOOK_SECRET, $fast }
  - { url_env: T_SLACK_URL, format: slack, $fast }
  - { url_env: PD_KEY, format: pagerduty, events_url_env: T_PD_URL, $fast }"
nruns=$(ls "$runs" | wc -l)
run_cmd 0 "F: notify test: every endpoint answers 2xx: exit 0" "$PGRUNBOOK" notify test --plan "$T_TMP/t.yaml" --json
t_eq "F: --json: one object per endpoint" \
	"$(jq -c '[.endpoints[] | [.endpoint, .url_env, .format, .ok, .status]]' <<<"$out")" \
	'[[0,"T_HOOK_URL","generic",true,200],[1,"T_SLACK_URL","slack",true,200],[2,"PD_KEY","pagerduty",true,202]]'
t_eq "F: --json: ok, and each endpoint's time" "$(jq -r '[.ok, (.endpoints | map(.ms | type == "number") | all)] | map(tostring) | join(" ")' <<<"$out")" \
	"true true"
t_eq "F: generic: one request, a signed test event" "$(nreq /t_hook) $(body /t_hook 1 .type)" "1 test"
t_eq "F: generic: the test's signature verifies" "$(verify_sig "$(reqs /t_hook)" && echo yes)" yes
t_eq "F: slack: one request" "$(nreq /t_slack)" 1
t_eq "F: pagerduty: a trigger and its resolve" "$(reqs /t_pd | jq -r '.body | fromjson | .event_action' | tr '\n' ' ')" "trigger resolve "
t_match "F: pagerduty: one test dedup key for both" "$(reqs /t_pd | jq -r '.body | fromjson | .dedup_key' | sort -u)" '^pgrunbook-test-[^ ]+$'
t_eq "F: notify test journals no run" "$(ls "$runs" | wc -l)" "$nruns"
write_plan "$T_TMP/t2.yaml" "$T_DB" "  - { url_env: T_HOOK_URL, secret_env: HOOK_SECRET, $fast }
  - { url_env: T_BAD_URL, $fast }"
run_cmd 3 "F: notify test: an endpoint answers 500: exit 3" "$PGRUNBOOK" notify test --plan "$T_TMP/t2.yaml" --json
t_eq "F: --json: the failing endpoint and its status" \
	"$(jq -c '[.ok, [.endpoints[] | [.ok, .status]]]' <<<"$out")" '[false,[[true,200],[false,500]]]'
t_eq "F: one attempt only (no retry)" "$(nreq /t_bad)" 1
run_cmd 3 "F: notify test as text" "$PGRUNBOOK" notify test --plan "$T_TMP/t2.yaml"
t_match "F: the text marks the failing endpoint with its variable" "$out" 'notify\[1\].*T_BAD_URL.*FAIL.*HTTP 500'
export T_HANG_URL="$base/t_hang"
write_plan "$T_TMP/t3.yaml" "$T_DB" "  - { url_env: T_HANG_URL, timeout: 2s, connect_timeout: 1s }
  - { url_env: T_HANG_URL, timeout: 2s, connect_timeout: 1s }
  - { url_env: T_HOOK_URL, secret_env: HOOK_SECRET, $fast }"
run_cmd 3 "F: notify test with two hanging endpoints: exit 3" "$PGRUNBOOK" notify test --plan "$T_TMP/t3.yaml" --json
t_eq "F: the hanging endpoints failed, the other one answered" "$(jq -c '[.endpoints[] | .ok]' <<<"$out")" '[false,false,true]'
if [ "$ms" -lt 3800 ]; then
	t_ok "F: the endpoints are tried in parallel (${ms} ms for two 2 s timeouts)"
else
	t_fail "F: the endpoints are tried in parallel" "it took ${ms} ms for two 2 s timeouts"
fi

# --- H: a variable that is not set -----------------------------------------------------------
unset NOTIFY_UNSET_URL NOTIFY_UNSET_SECRET
export H_OK_URL="$base/h_ok" H_OK2_URL="$base/h_ok2"
write_plan "$T_TMP/h.yaml" "$T_DB" "  - { url_env: NOTIFY_UNSET_URL, $fast }
  - { url_env: H_OK_URL, $fast }
  - { url_env: H_OK2_URL, secret_env: NOTIFY_UNSET_SECRET, $fast }"
before=$(wc -l <"$LOG")
run_cmd "$rc_ok" "H: an unset variable: the command runs and exits as without webhooks" \
	"$PGRUNBOOK" preflight --plan "$T_TMP/h.yaml" --json
run_h=$(jq -r .run_id <<<"$out")
t_match "H: stderr warns, naming the URL variable" "$err" 'notify\[0\].*NOTIFY_UNSET_URL'
t_match "H: stderr warns, naming the secret variable" "$err" 'notify\[2\].*NOTIFY_UNSET_SECRET'
t_match "H: the journal has the warning" "$(jq -r 'select(.type == "log") | .message' "$runs/$run_h/journal.jsonl")" \
	'NOTIFY_UNSET_URL'
t_eq "H: the endpoint that is set got its messages" "$(nreq /h_ok)" 3
t_eq "H: nothing else was requested (the unset secret's endpoint neither)" "$(($(wc -l <"$LOG") - before)) $(nreq /h_ok2)" "3 0"
t_eq "H: the unset endpoints' messages failed without a request" \
	"$(for e in 0 2; do outbox_msg "$run_h" 1 '[.state, .attempts, .failure] | map(tostring) | join(" ")' "$e"; done | tr '\n' ',')" \
	"failed 0 unset,failed 0 unset,"
t_eq "H: the unset endpoints are \"unset\"" "$(ep_state "$run_h" 0) $(ep_state "$run_h" 2)" "unset unset"
t_match "H: the end line: unset messages are not counted failed, the variable is named" "$err" \
	'^notify: 3 sent, 0 pending, 0 failed; NOTIFY_UNSET_URL not set \(3 not sent\) \+1 more$'


# --- R: pgrunbook run (the whole runbook: preflight and report) ---------------------------------
export R_OK_URL="$base/r_ok"
"$PGRUNBOOK" run --plan "$T_TMP/bare-ok.yaml" >/dev/null 2>&1
rc_run=$?
write_plan "$T_TMP/r.yaml" "$T_DB" "  - { url_env: R_OK_URL, secret_env: HOOK_SECRET, events: [run_started, stage_started, stage_done, run_finished], $fast }
  - { url_env: NOTIFY_UNSET_URL, $fast }"
run_cmd "$rc_run" "R: pgrunbook run with webhooks exits as without them ($rc_run)" \
	"$PGRUNBOOK" run --plan "$T_TMP/r.yaml"
run_r=$(basename "$(ls -1d "$runs"/*/ | sort | tail -n 1)")
t_match "R: the output warns about the unset variable by name" "$out
$err" 'notify\[1\].*NOTIFY_UNSET_URL'
r_events=$(reqs /r_ok | jq -r '.body | fromjson | .type + ":" + (.stage // "-")' | tr '\n' ' ')
t_eq "R: the stage events and run_finished, in order" "${r_events#run_started:- }" \
	"stage_started:preflight stage_done:preflight stage_started:report stage_done:report run_finished:- "
t_match "R: run_started, which the endpoint selects, is sent first" "$r_events" '^run_started:- '
t_eq "R: all of the run's, signed" \
	"$(reqs /r_ok | while IFS= read -r l; do verify_sig "$l" && jq -r '.body | fromjson | .run_id' <<<"$l"; done | sort | uniq -c | sed 's/^ *//')" \
	"$(nreq /r_ok) $run_r"
t_eq "R: run_finished says done" "$(reqs /r_ok | tail -n 1 | jq -r '.body | fromjson | .data.state')" \
	"$([ "$rc_run" = 0 ] && echo done || echo failed)"
t_match "R: the end line" "$err" '^notify: [0-9]+ sent, 0 pending, [0-9]+ failed'

# --- P: notifications do not slow the database work ---------------------------------------------
# A migration of 2501 statements (a step event each) with no endpoint, and with one endpoint that
# selects step events and answers 200, 3 runs each, interleaved, in new databases: every step
# event is delivered, once.
PM=$T_TMP/p/prisma/migrations
mkdir -p "$PM/20250101000000_many"
printf '# Prisma Migrate lockfile\nprovider = "postgresql"\n' >"$PM/migration_lock.toml"
{ echo 'CREATE TABLE bench (i int);'; seq 2500 | sed 's/.*/INSERT INTO bench VALUES (&);/'; } >"$PM/20250101000000_many/migration.sql"
export P_OK_URL="$base/p_ok"
p_run() {  # p_run MODE ROUND: the migration into a new database; sets $ms and $err
	local db="${T_DB}_p$2_$1"
	t_createdb "$db"
	{
		printf 'name: bench\nenvironments:\n  prod: { conninfo: "host=%s port=%s dbname=%s" }\n' "$PGHOST" "$PGPORT" "$db"
		printf 'target: prod\nmigrations: { dir: prisma/migrations }\n'
		[ "$1" = notify ] && printf 'notify:\n  - { url_env: P_OK_URL, events: [step], %s }\n' "$fast"
	} >"$T_TMP/p/plan.yaml"
	local t0
	t0=$(now_ms)
	"$PGRUNBOOK" migrate deploy --plan "$T_TMP/p/plan.yaml" --waive-backup "waive-backup $db" >/dev/null 2>"$T_TMP/p/err"
	p_rc=$?
	ms=$(($(now_ms) - t0))
	err=$(cat "$T_TMP/p/err")
}
median3() { printf '%s\n' "$@" | sort -n | sed -n 2p; }
p_none=() p_notify=() p_bad=""
for round in 1 2 3; do
	p_run none "$round"
	[ "$p_rc" = 0 ] || p_bad="$p_bad none:$p_rc"
	p_none+=("$ms")
	p_run notify "$round"
	[ "$p_rc" = 0 ] || p_bad="$p_bad notify:$p_rc"
	p_notify+=("$ms")
	p_end=$(grep '^notify: [0-9]* sent' <<<"$err")
done
t_eq "P: the migrations ran" "$p_bad" ""
t_match "P: every step event was delivered" "$p_end" '^notify: 250[0-9] sent, 0 pending, 0 failed$'
t_eq "P: one request per message sent" "$(nreq /p_ok)" "$((3 * $(sed 's/^notify: \([0-9]*\) sent.*/\1/' <<<"$p_end")))"
p_n=$(median3 "${p_none[@]}") p_w=$(median3 "${p_notify[@]}")
# Not a pass/fail check: on a loaded test machine the ratio is too noisy, and the cost that is left
# (the writer thread creating one file per message; the command waits for it at its end) depends
# on the file system. The numbers are in the log.
echo "# P: with notify ${p_w} ms, without ${p_n} ms (medians of 3: ${p_notify[*]} / ${p_none[*]})"

# --- flush of a run that has no outbox ---------------------------------------------------------
run_cmd "$rc_ok" "a journaled preflight without webhooks" "$PGRUNBOOK" preflight --plan "$T_TMP/bare-ok.yaml" --json
run_n=$(jq -r .run_id <<<"$out")
run_cmd 3 "notify flush of a run without an outbox: exit 3" "$PGRUNBOOK" notify flush "$run_n" --wait 1
t_match "it names the run by its id, not its directory" "$err" "run $run_n has no outbox"
t_nomatch "no directory in the message" "$err" "$runs"

# --- G: notify flush after the endpoint recovers ----------------------------------------------
export DOWN_URL="$base/down" M_OK_URL="$base/m_ok"
write_plan "$T_TMP/g.yaml" "$T_DB" "  - { url_env: DOWN_URL, timeout: 1s, connect_timeout: 1s, backoff: 100ms, max_attempts: 2 }
  - { url_env: M_OK_URL, $fast }"
stop_webhookd
t_eq "webhookd stops on SIGTERM with exit 0" "$?" 0
start_webhookd "$T_TMP/wh2.log" "$port" "${ROUTES[@]}" --route /down=500
run_cmd "$rc_ok" "G: preflight with an endpoint answering 500 exits as without it" \
	"$PGRUNBOOK" preflight --plan "$T_TMP/g.yaml" --json
run_g=$(jq -r .run_id <<<"$out")
t_match "G: the end line: the 500 endpoint's messages failed" "$err" \
	"^notify: 3 sent, 0 pending, 3 failed; notify\\[0\\] \\(DOWN_URL\\) failing: HTTP 500; deliver the rest with: pgrunbook notify flush $run_g\$"
t_eq "G: two attempts per message" "$(nreq /down)" 6
g_ids=$(reqs /down | jq -r '.headers["webhook-id"]' | sort -u | tr '\n' ' ')
t_eq "G: the failed messages' ids" "$g_ids" "$run_g.1.1 $run_g.1.2 $run_g.1.3 "
stop_webhookd
start_webhookd "$T_TMP/wh3.log" "$port" "${ROUTES[@]}" --route /down=200
t_eq "G: webhookd restarted on the same port" "$port" "$(cat "$T_TMP/wh.port")"
run_cmd 0 "G: notify flush delivers what was left" "$PGRUNBOOK" notify flush "$run_g" --wait 10 --json
t_eq "G: flush --json: everything sent" "$(jq -c '[.done, .pending, .failed]' <<<"$out")" '[true,0,0]'
t_eq "G: the same ids were delivered again" "$(reqs /down | jq -r '.headers["webhook-id"]' | sort -u | tr '\n' ' ')" "$g_ids"
t_eq "G: once each" "$(nreq /down)" 3
t_eq "G: the messages already sent were not sent again" "$(nreq /m_ok)" 0
t_eq "G: the outbox: sent, after 3 attempts" \
	"$(for s in 1 2 3; do outbox_msg "$run_g" "$s" '[.state, .attempts] | map(tostring) | join(" ")' 0; done | tr '\n' ',')" \
	"sent 3,sent 3,sent 3,"
t_eq "G: the endpoint is ok" "$(ep_state "$run_g" 0)" ok
run_cmd 0 "G: a second flush has nothing to do" "$PGRUNBOOK" notify flush "$run_g" --wait 1
t_eq "G: and sends nothing" "$(nreq /down)" 3
run_cmd 3 "G: notify flush without RUN takes the newest run with messages it can send (D's pending ones)" \
	"$PGRUNBOOK" notify flush --wait 1
t_match "G: it names that run (not R, whose unset variable is still unset) and what is left" "$out" \
	"^run $run_d2: 0 sent, 3 pending, 0 failed"
"$PGRUNBOOK" report "$run_g" >"$T_TMP/g-report.md" 2>&1
t_match "G: the report lists the outbox per endpoint (variable names only)" "$(cat "$T_TMP/g-report.md")" \
	'\| notify\[0\] `DOWN_URL` \| generic \| ok \| 3 \| 0 \| 0 \| - \|'
t_match "G: with the totals" "$(cat "$T_TMP/g-report.md")" 'The webhook outbox when this report was written: 6 sent, 0 pending, 0 failed\.'

# --- secrets: never in the run directories, the output or the reports ---------------------------
for r in "$run_a" "$run_b" "$run_c" "$run_d" "$run_h" "$run_r" "$run_g"; do
	"$PGRUNBOOK" report "$r" >>"$T_TMP/reports" 2>&1
done
t_match "the reports were written" "$(cat "$T_TMP/reports")" "$run_a"
leaks=""
for s in "$HOOK_URL" "$SLACK_URL" "$PD_KEY" "$HOOK_SECRET" "$hook_key_b64" "$base/" "127.0.0.1:$port"; do
	for f in "$runs" "$outputs" "$T_TMP/reports"; do
		grep -rqF -- "$s" "$f" && leaks="$leaks
$(grep -rlF -- "$s" "$f" | head -n 3) holds ${s:0:12}..."
	done
done
t_eq "no URL, routing key or secret in the journals, outboxes, output or reports" "$leaks" ""
t_eq "the secrets check can see them (the listener got the routing key)" "$(grep -cF -- "$PD_KEY" "$T_TMP/wh1.log")" 4

stop_webhookd
t_eq "webhookd stops cleanly" "$?" 0
t_eq "webhookd reported nothing but its ports (no error, no sanitizer report)" \
	"$(grep -v '^webhookd: listening on 127\.0\.0\.1:[0-9]*$' "$T_TMP/webhookd.err")" ""
t_done
