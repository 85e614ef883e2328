#!/usr/bin/env bash
# runs_report.sh: "pgrunbook runs" and "pgrunbook report" on run journals written through the
# real event bus and journal (tests/harness/mkrun): listing, lookup, locking, damage, modes.
. "$top_srcdir/tests/lib.sh"

MKRUN="$top_builddir/tests/harness/mkrun"
runs="$XDG_STATE_HOME/pgrunbook/runs"
hash_a=$(printf 'plan a' | sha256sum | cut -c1-64)
hash_b=$(printf 'plan b' | sha256sum | cut -c1-64)

# --- nothing yet ---
t_run 0 "runs with no runs" "$PGRUNBOOK" runs
t_eq "says where it looked" "$out" "no runs yet in $runs"
t_run 0 "runs --json with no runs" "$PGRUNBOOK" runs --json
t_eq "an empty JSON array" "$out" "[]"
t_run 0 "runs --help" "$PGRUNBOOK" runs --help
t_match "runs --help shows usage" "$out" '^Usage: pgrunbook runs \[--json\]'
t_run 0 "report --help" "$PGRUNBOOK" report --help
t_match "report --help shows usage" "$out" '^Usage: pgrunbook report RUN \[--out FILE\]'
t_run 1 "runs rejects an unknown argument" "$PGRUNBOOK" runs --bogus
t_match "and says which" "$err" 'unexpected argument "--bogus"'
t_run 1 "report without a run is a usage error" "$PGRUNBOOK" report

# --- run A: preflight done with a result, backup failed ---
preflight='{"blocked":false,"unreachable":false,"environments":[{"name":"prod","roles":["target"],"reachable":true,"where":"db1:5432/shop_prod","server_version":"15.8","current_user":"deploy","superuser":false,"db_size_bytes":52428800,"tables":12,"prisma":{"table":true,"applied":7,"failed":0},"lock":{"held":false},"sessions":{"total":3,"active":1},"standby":false,"blockers":[],"warnings":["connected as a non-superuser"]}]}'
t_run 0 "mkrun writes run A" "$MKRUN" --new "shop release 2026-11" "$hash_a" --path "$T_TMP/plan-a.yaml" \
	stage_started preflight "checking 1 environment" - \
	progress preflight "1/1" - \
	stage_result preflight - "$preflight" \
	log:warn preflight "prod: 3 sessions | 1 active" - \
	checklist_tick preflight "Users told about the window" - \
	stage_done preflight "1 environment ready" - \
	stage_started backup - - \
	stage_failed backup "pg_dump exited with status 1" -
id_a=$out
t_match "run id is time-sortable and random-suffixed" "$id_a" '^[0-9]{8}T[0-9]{6}\.[0-9]{3}Z-[0-9a-f]{6}$'

# --- run B: finished ---
t_run 0 "mkrun writes run B" "$MKRUN" --new "hotfix" "$hash_b" \
	stage_started preflight - - \
	stage_done preflight - - \
	confirm_needed migrate 'type "deploy shop_prod"' - \
	confirm_miss migrate 'typed "deploy shop_dev"' - \
	confirm_ok migrate - - \
	log:error migrate 'lock timeout on "Order"' - \
	run_finished - "done" '{"state":"done"}'
id_b=$out

# --- modes ---
t_eq "state dir is 0700" "$(stat -c %a "$XDG_STATE_HOME/pgrunbook")" 700
t_eq "runs dir is 0700" "$(stat -c %a "$runs")" 700
t_eq "run dir is 0700" "$(stat -c %a "$runs/$id_a")" 700
t_eq "journal is 0600" "$(stat -c %a "$runs/$id_a/journal.jsonl")" 600
t_eq "journal.head is 0600" "$(stat -c %a "$runs/$id_a/journal.head")" 600
t_eq "run A journal has 8 records (progress is not journaled)" \
	"$(wc -l <"$runs/$id_a/journal.jsonl")" 8
t_nomatch "no progress record" "$(cat "$runs/$id_a/journal.jsonl")" '"type":"progress"'

# --- runs ---
t_run 0 "runs lists both" "$PGRUNBOOK" runs
t_match "header" "$out" '^ID +PLAN +STARTED +LAST STAGE +STATE$'
t_match "run A row" "$out" "^$id_a +shop release 2026-11 +[0-9-]+T[0-9:.]+Z +backup +failed\$"
t_match "run B row" "$out" "^$id_b +hotfix +[0-9-]+T[0-9:.]+Z +preflight +done\$"
listed=$(printf '%s\n' "$out" | tail -n +2 | awk '{print $1}')
t_eq "newest first" "$listed" "$(printf '%s\n%s\n' "$id_a" "$id_b" | sort -r)"
t_run 0 "runs --json" "$PGRUNBOOK" runs --json
t_eq "two objects" "$(printf '%s\n' "$out" | grep -c '"id": ')" 2
t_match "run A as JSON" "$out" "\"id\": \"$id_a\""
t_match "failed state in JSON" "$out" '"state": "failed"'
t_match "plan hash in JSON" "$out" "\"plan_hash\": \"$hash_a\""

# --- report ---
t_run 0 "report run A" "$PGRUNBOOK" report "$id_a"
report_a=$out
t_match "title" "$out" '^# Run report: shop release 2026-11$'
t_match "run id" "$out" "^\\| Run \\| \`$id_a\` \\|\$"
t_match "plan hash" "$out" "^\\| Plan hash \\| \`$hash_a\` \\|\$"
t_match "state" "$out" '^\| State \| \*\*failed\*\* \|$'
t_match "preflight stage row" "$out" '^\| preflight \| done \| [0-9T:.Z-]+ \| [0-9T:.Z-]+ \| [0-9.]+ m?s \| - \| 1 environment ready \|$'
t_match "backup stage row" "$out" '^\| backup \| \*\*failed\*\* \| .* \| pg_dump exited with status 1 \|$'
t_match "stages not reached are pending" "$out" '^\| verify \| pending \| - \| - \| - \| - \|  \|$'
t_match "preflight result table" "$out" '^\| prod \| target \| yes \| db1:5432/shop_prod \| 15\.8 \| deploy \| 50\.0 MB \| 12 \| 7 applied \| free \| 3 \(1 active\) \| no \|$'
t_match "preflight warnings listed" "$out" '^- \*\*prod\*\*: connected as a non-superuser$'
t_match "warning with escaped pipe" "$out" '\| preflight \| warning \| prod: 3 sessions \\\| 1 active \|$'
t_match "checklist tick" "$out" '^- \[x\] Users told about the window \(preflight, '
t_nomatch "no damage warning" "$out" 'WARNING'

t_run 0 "report by unique prefix" "$PGRUNBOOK" report "${id_a%??}"
t_eq "same report by prefix" "$out" "$report_a"
t_run 0 "report by directory path" "$PGRUNBOOK" report "$runs/$id_a"
t_eq "same report by path" "$out" "$report_a"
t_run 0 "report --out" "$PGRUNBOOK" report "$id_a" --out "$T_TMP/a.md"
t_eq "--out prints nothing" "$out" ""
t_eq "--out writes the report" "$(cat "$T_TMP/a.md")" "$report_a"

t_run 0 "report run B" "$PGRUNBOOK" report "$id_b"
t_match "finished state" "$out" '^\| State \| \*\*done\*\* \|$'
t_match "duration shown" "$out" '^\| Duration \| [0-9.]+ m?s \|$'
t_match "confirmation miss (who: the run's user)" "$out" '\| migrate \| [^|]+ \| \*\*did not match: refused\*\* \| typed "deploy shop_dev" \|$'
t_match "confirmation ok" "$out" '\| migrate \| [^|]+ \| confirmed \|  \|$'
t_match "error log" "$out" '\| migrate \| \*\*error\*\* \| lock timeout on "Order" \|$'

t_run 3 "report of an unknown run" "$PGRUNBOOK" report 19990101
t_match "says not found" "$err" 'run "19990101" not found'
t_run 3 "report of an ambiguous prefix" "$PGRUNBOOK" report 2
t_match "says ambiguous and lists both" "$err" "ambiguous.*"
t_match "lists run A" "$err" "$id_a"
t_match "lists run B" "$err" "$id_b"

# --- a finished run is not reopened ---
t_run 3 "a finished run cannot be reopened" "$MKRUN" --open "$id_b" "$hash_b"
t_match "says finished" "$err" "run $id_b is finished; start a new run"

# --- one writer: a held run refuses a second writer ---
mkfifo "$T_TMP/hold"
"$MKRUN" --open "$id_a" "$hash_a" --hold <"$T_TMP/hold" >"$T_TMP/hold.out" 2>"$T_TMP/hold.err" &
holder=$!
exec 7>"$T_TMP/hold"   # keeps the holder's stdin open
deadline=$((SECONDS + 20))
until [ -s "$T_TMP/hold.out" ] || [ $SECONDS -ge $deadline ]; do sleep 0.1; done
t_eq "holder reopened run A" "$(cat "$T_TMP/hold.out")" "$id_a"
t_run 3 "a second writer is refused" "$MKRUN" --open "$id_a" "$hash_a"
t_match "names the holder's pid" "$err" "run $id_a is in use by another pgrunbook process \\(pid $holder\\)"
t_run 0 "runs while held" "$PGRUNBOOK" runs
t_match "held failed run shows failed" "$out" "^$id_a .* failed\$"
exec 7>&-
wait "$holder"
t_eq "holder exited cleanly" "$?" 0
t_run 3 "a changed plan is refused" "$MKRUN" --open "$id_a" "$hash_b"
t_match "says the plan changed" "$err" 'the plan changed since the run started'

# An unfinished run whose process is gone shows as interrupted.
t_run 0 "mkrun writes run C (unfinished)" "$MKRUN" --new "hotfix" "$hash_b" stage_started migrate - -
id_c=$out
t_run 0 "runs" "$PGRUNBOOK" runs
t_match "unfinished run without a process is interrupted" "$out" "^$id_c +hotfix .* migrate +interrupted\$"

# --- damage ---
sed -i '3s/"stage_result"/"stage_rexult"/' "$runs/$id_a/journal.jsonl"
t_run 3 "report of a run with an altered record exits 3" "$PGRUNBOOK" report "$id_a"
t_match "prominent warning" "$out" '^> \*\*WARNING: the journal of this run is damaged\.\*\*$'
t_match "names the line" "$out" 'line 3: checksum mismatch \(record altered or written partially\)'
t_match "only the good lines are shown" "$out" 'Only lines 1 to 2 are shown'
t_match "stderr says so too" "$err" "journal of run $id_a is damaged: line 3: checksum mismatch"
t_match "still renders the title" "$out" '^# Run report: shop release 2026-11$'
t_nomatch "records after the damage are not applied" "$out" 'pg_dump exited'

truncate -s -7 "$runs/$id_b/journal.jsonl"
t_run 3 "report of a run with a torn last line exits 3" "$PGRUNBOOK" report "$id_b"
t_match "torn last line explained" "$out" 'line 8: incomplete last record \(no newline\): the process was probably killed while writing'
t_run 3 "a torn run cannot be resumed" "$MKRUN" --open "$id_b" "$hash_b"
t_match "says damaged" "$err" "the journal of run $id_b is damaged"

# Whole records removed at a record boundary: the chain is intact, journal.head is not.
sed -i '$d' "$runs/$id_c/journal.jsonl"
t_run 3 "report of a run cut at a record boundary exits 3" "$PGRUNBOOK" report "$id_c"
t_match "records removed explained" "$out" 'line 2: journal ends at record 1 but record 2 was acknowledged: records were removed'
t_run 3 "a cut run cannot be resumed" "$MKRUN" --open "$id_c" "$hash_b"
t_match "says damaged" "$err" "the journal of run $id_c is damaged"

# A run whose first record cannot be written leaves no directory behind.
before=$(ls "$runs" | sort)
t_run 3 "mkrun fails when the journal cannot be written" bash -c '
	# Only mkrun gets the file size limit: its stderr goes through a pipe to an unlimited cat.
	(trap "" XFSZ; ulimit -f 0; exec "$0" --new x "$1") 2>&1 | cat >&2
	exit "${PIPESTATUS[0]}"' "$MKRUN" "$hash_a"
t_match "says the write failed" "$err" 'could not write to journal'
t_eq "no run directory left behind" "$(ls "$runs" | sort)" "$before"

mkdir -m 0700 "$runs/20000101T000000Z-000000"
t_run 0 "runs with damaged and unreadable runs" "$PGRUNBOOK" runs
t_match "altered run is corrupt" "$out" "^$id_a .* corrupt\$"
t_match "torn run is corrupt" "$out" "^$id_b .* corrupt\$"
t_match "cut run is corrupt" "$out" "^$id_c .* corrupt\$"
t_match "a directory without a journal is listed as corrupt" "$out" '^20000101T000000Z-000000 +- +- +- +corrupt$'
t_run 0 "runs --json with damage" "$PGRUNBOOK" runs --json
t_match "torn message in JSON" "$out" '"torn_message": "line 3: checksum mismatch'

# --- XDG_STATE_HOME and its fallback ---
mkdir -p "$T_TMP/other"
t_run 0 "runs honours XDG_STATE_HOME" env XDG_STATE_HOME="$T_TMP/other" "$PGRUNBOOK" runs
t_eq "nothing there" "$out" "no runs yet in $T_TMP/other/pgrunbook/runs"
t_run 3 "report honours XDG_STATE_HOME" env XDG_STATE_HOME="$T_TMP/other" "$PGRUNBOOK" report "$id_c"
t_run 0 "without XDG_STATE_HOME, ~/.local/state" env -u XDG_STATE_HOME "$PGRUNBOOK" runs
t_eq "uses HOME" "$out" "no runs yet in $HOME/.local/state/pgrunbook/runs"

t_done
