# sync.sh: the wizard's sync screen in tmux against two real databases (source and target): the
# table of tables with the exact counts of `pgrunbook sync diff --json`, the skipped tables, the
# drill-down with an update's old -> new values, the filter and the search, the apply refused
# before every table with changes is reviewed, the typed phrases in order (a wrong one writes
# nothing), the apply with its per-table states, and what the target holds afterwards.
. "$top_srcdir/tests/lib.sh"

command -v tmux >/dev/null || t_skip "tmux is not installed (Debian package tmux)"
command -v jq >/dev/null || t_skip "jq is not installed (Debian package jq)"

export TERM=xterm-256color LANG=C.UTF-8 LC_ALL=C.UTF-8 TZ=UTC HOME XDG_STATE_HOME
unset PGAPPNAME
sock="pgrbs$$"
locker=""
cleanup() {
	tmux -L "$sock" kill-server >/dev/null 2>&1
	[ -n "$locker" ] && kill "$locker" 2>/dev/null
}
trap cleanup EXIT

. "$top_srcdir/tests/tui/lib.sh"
journal() { cat "$XDG_STATE_HOME"/pgrunbook/runs/*/journal.jsonl; }

S="${T_DB}_src"
T="${T_DB}_dst"
t_createdb "$S"
t_createdb "$T"
both() { t_sql_do "$1" "$S" && t_sql_do "$1" "$T"; }

# --- the fixture: four synced tables (one protected, one append, one with delete: true), a
# skipped one and one the plan does not list ---
both 'create table "Unit" (id int primary key, name text, price numeric(8,2));
	create table "OrderItem" (id int primary key, qty int);
	create table "Note" (id int primary key, body text);
	create table "Tag" (id serial primary key, label text);
	create table "Legacy" (id int primary key)'
t_sql_do 'create table other (x int)' "$T"
t_sql_do "insert into \"Unit\" select g, 'unit ' || g, g + 0.25 from generate_series(1, 12) g;
	update \"Unit\" set name = 'Renamed five' where id = 5;
	update \"Unit\" set price = 1.50 where id = 3;
	insert into \"OrderItem\" select g, g * 10 from generate_series(1, 6) g;
	insert into \"Note\" select g, 'note ' || g from generate_series(1, 4) g;
	insert into \"Tag\" (label) values ('a'), ('b')" "$S"
t_sql_do "insert into \"Unit\" select g, 'unit ' || g, g + 0.25 from generate_series(1, 10) g;
	insert into \"Unit\" values (99, 'only in the target', 9.99);
	insert into \"OrderItem\" select g, g * 10 from generate_series(1, 5) g;
	update \"OrderItem\" set qty = 7 where id = 2;
	insert into \"Note\" select g, 'note ' || g from generate_series(1, 3) g;
	update \"Note\" set body = 'edited in prod' where id = 1;
	insert into \"Tag\" (label) values ('a'), ('b'), ('c')" "$T"

P=$T_TMP/plan.yaml
cat >"$P" <<EOF
name: sync screen
environments:
  dev:  { conninfo: "host=$PGHOST port=$PGPORT dbname=$S" }
  prod: { conninfo: "host=$PGHOST port=$PGPORT dbname=$T" }
source: dev
target: prod
sync:
  protected: ["Order*"]
  tables:
    Unit: { mode: upsert, on_conflict: local_wins }
    OrderItem: { mode: upsert, on_conflict: local_wins }
    Note: { mode: append }
    Tag: { mode: upsert, on_conflict: local_wins, delete: true }
    Legacy: { mode: skip }
EOF

# What the headless diff says about the same data: the screen must show exactly this.
t_run 0 "sync diff --json of the fixture" "$PGRUNBOOK" sync diff --plan "$P" --json
dj=$out
# The target's whole content, to prove a refused apply wrote nothing.
checksum() {
	t_sql "select md5(string_agg(t, '|' order by t)) from (
		select 'U' || u::text t from \"Unit\" u union all select 'O' || o::text from \"OrderItem\" o
		union all select 'N' || n::text from \"Note\" n union all select 'T' || g::text from \"Tag\" g) x" "$T"
}
sum0=$(checksum)

start 160 45 --plan "$P"
expect "preflight runs first" '^> preflight +done' 30
t_match "the sidebar offers sync (not unavailable)" "$screen" '^  sync +pending'
keys ']'
expect "] opens the sync screen" 'Sync: dev -> prod, 4 tables'
t_match "nothing is diffed yet" "$(main_text)" 'Not diffed yet\. F5 \(or d\) compares every table'
t_match "the tables are listed before the diff, pending" "$screen" 'public\.Unit +pending +- +- +- +- +- +upsert +\(pk\) +local_wins +no'
t_match "the skip-mode table is listed as skipped" "$screen" 'public\.Legacy +skipped \(mode skip\) +skip'

keys F2
expect "F2 before any diff is refused" 'Apply refused: nothing is diffed yet'
keys Escape
wait_for 'Not diffed yet' 5

# Another session holds a lock on Tag: the diff shows the tables done so far with their counts
# while it waits on Tag, and Esc cancels it (no review file).
PGAPPNAME=rb-locker "$PSQL" -X -q -d "$T" -c 'begin' -c 'lock table "Tag" in access exclusive mode' \
	-c 'select pg_sleep(120)' >/dev/null 2>&1 &
locker=$!
for _ in $(seq 100); do
	[ "$(t_sql "select count(*) from pg_stat_activity where application_name = 'rb-locker' and wait_event = 'PgSleep'")" = 1 ] && break
	sleep 0.1
done
keys d
expect "d starts the diff; it waits on the locked table" 'Diffing table 4 of 4: public\.Tag \(read-only\)\.\.\.  \(Esc cancels\)' 15
t_match "the tables done so far show their counts" "$screen" \
	"$(printf '%s' "$dj" | jq -r '.tables[0] | "public.Unit +diffed +\(.counts.to_insert) +\(.counts.to_update) +\(.counts.to_delete) +\(.counts.conflicts) +\(.counts.unchanged) +upsert +id +local_wins +no"')"
t_match "the locked one is diffing" "$screen" 'public\.Tag +diffing +- +- +- +- +- +upsert +(id|\(pk\)) +local_wins +no'
keys Escape
expect "Esc cancels the diff" 'Diff failed: the diff was cancelled; no review file was saved'
t_match "the cancelled table says so" "$screen" 'public\.Tag +failed +'
t_eq "no review file" "$(ls "$XDG_STATE_HOME"/pgrunbook/runs/*/sync-review* 2>/dev/null | wc -l)" 0
# Without a review no table can be marked reviewed; a table that failed shows its error.
keys Enter
expect "the rows of a table diffed before the cancel open" 'Sync: rows of public\.Unit'
t_match "the hint says Esc does not mark without a review" "$screen" 'Esc back \(no review loaded: not marked\)'
keys Escape
expect "Esc: not marked, and the status line says why" 'public\.Unit was not marked reviewed: no review is loaded'
t_match "Unit stays diffed" "$screen" 'public\.Unit +diffed '
t_eq "no review mark is journaled" "$(journal | jq -r 'select(.data.kind? == "sync_reviewed") | .data.table' | wc -l)" 0
keys Home Down Down Down
expect "the cursor on the failed table" "public\\.Tag: failed; mode" 5
keys Enter
expect "Enter on the failed table shows its error, not \"not diffed yet\"" 'public\.Tag could not be diffed: '
t_nomatch "it does not say not diffed" "$screen" 'not diffed yet'
keys Escape Home
wait_for 'public\.Unit: diffed; mode' 5
t_eq "the diff's statements are gone from the server" \
	"$(t_sql "select count(*) from pg_stat_activity where query like 'COPY (SELECT%' and pid <> pg_backend_pid()")" 0
kill "$locker" 2>/dev/null
wait "$locker" 2>/dev/null
t_sql_do "select pg_terminate_backend(pid) from pg_stat_activity where application_name = 'rb-locker'"
keys F2
expect "F2 after a failed diff is refused" 'Apply refused: the last diff did not produce a review'
keys Escape
wait_for 'Diff failed' 5

keys F5
expect "F5 diffs every table" 'Diffed in [0-9:]+: ' 30
for tb in Unit OrderItem Note Tag; do
	row=$(printf '%s' "$dj" | jq -r --arg t "public.$tb" '.tables[] | select(.table == $t) |
		"\(.table) +diffed +\(.counts.to_insert) +\(.counts.to_update) +\(.counts.to_delete) +\(.counts.conflicts) +\(.counts.unchanged) +\(.mode) +\(.key | join(",")) +\(.on_conflict) +\(if .protected then "yes" else "no" end)"')
	t_match "public.$tb: mode, key, on_conflict, protected and the exact counts of sync diff --json" "$screen" "$row"
done
t_match "the target's table the plan does not list is skipped" "$screen" 'public\.other +skipped \(not in the plan\) +-'
t_match "the status line sums the changes and asks for the reviews" "$(main_text)" \
	"$(printf '%s' "$dj" | jq -r '[.tables[].counts.to_insert] | add') to insert, $(printf '%s' "$dj" | jq -r '[.tables[].counts.to_update] | add') to update, 1 to delete\\. 4 tables to review"
t_match "the selected table's detail names every count" "$(main_text)" \
	"$(printf '%s' "$dj" | jq -r '.tables[0] | "to_insert \(.counts.to_insert), to_update \(.counts.to_update), to_delete \(.counts.to_delete) \\(reported only\\), conflicts \(.counts.conflicts), differs_kept \(.counts.differs_kept), unchanged \(.counts.unchanged) \\(rows read: source \(.source_rows), target \(.target_rows)\\)"')"
t_match "what F2 will ask is shown, with the review file" "$(main_text)" \
	"F2 asks for \"apply $T\", then I_UNDERSTAND_PROD_OVERWRITE \\(protected tables whose rows change: public\\.OrderItem\\), then \"delete $T\""
t_eq "the review file is in the run directory, numbered" "$(ls "$XDG_STATE_HOME"/pgrunbook/runs/*/sync-review* | sed 's,.*/,,')" \
	"sync-review-1.txt"
review1=$(ls "$XDG_STATE_HOME"/pgrunbook/runs/*/sync-review-1.txt)
t_eq "the review file starts with its magic line" "$(head -n1 "$review1")" "pgrunbook-review 1"

keys F2
expect "F2 before the reviews is refused" 'Apply refused'
t_match "it names the tables not reviewed" "$(main_text)" \
	'4 tables with changes not reviewed yet: public\.Unit, public\.OrderItem, public\.Note, public\.Tag'
keys Escape
wait_for '4 tables to review' 5
t_eq "nothing was written" "$(checksum)" "$sum0"

# The drill-down of Unit: every changed row, an update's old -> new values.
old3=$(t_sql 'select price from "Unit" where id = 3' "$T")
new3=$(t_sql 'select price from "Unit" where id = 3' "$S")
keys Enter
expect "Enter opens the rows of the table" 'Sync: rows of public\.Unit'
t_match "every changed row is there" "$screen" "5 rows shown \\(filter: all\\) of 5"
t_match "an update with its key" "$screen" 'update +id=3'
t_match "its changed column, old (target) -> new (source)" "$screen" "    price: '$old3' -> '$new3'"
t_match "an insert with its values" "$screen" "insert +id=11"
t_match "the row only in the target is reported, not deleted" "$screen" \
	'delete +id=99 +\(only in the target: reported, not deleted\)'
keys 1
expect "1 shows the inserts only" '2 rows shown \(filter: insert\)'
t_nomatch "no update is listed then" "$screen" 'update +id='
keys f
expect "f cycles to the updates" '2 rows shown \(filter: update\)'
t_nomatch "no insert is listed then" "$screen" 'insert +id='
keys 0
expect "0 shows every kind again" '5 rows shown \(filter: all\)'
keys /
type_text "Renamed"
keys Enter
expect "the search narrows to the rows holding the text" '1 row shown \(filter: all, search "Renamed"\)'
t_match "the row that matched" "$screen" 'update +id=5'
t_match "with its new value" "$screen" "name: 'unit 5' -> 'Renamed five'"
t_nomatch "the others are hidden" "$screen" 'id=3'
t_match "the hint says Esc does not mark while the search hides rows" "$screen" 'Esc back \(NOT marked: filter/search on'
keys Escape
expect "Esc with the search on does not mark Unit" 'public\.Unit was not marked reviewed: a filter or search hid rows'
t_match "Unit stays diffed" "$screen" 'public\.Unit +diffed '
keys Enter
expect "the rows of Unit again" 'Sync: rows of public\.Unit'
keys 2
expect "2 shows the updates only" '2 rows shown \(filter: update\)'
keys Escape
expect "Esc with a kind filter does not mark either" 'public\.Unit was not marked reviewed: a filter or search hid rows'
keys Enter
expect "the rows of Unit, every row shown" '5 rows shown \(filter: all\) of 5'
keys C-c
expect "Ctrl-C goes back without marking" 'public\.Unit was not marked reviewed \(Ctrl-C\)'
t_eq "nothing marked so far" "$(journal | jq -r 'select(.data.kind? == "sync_reviewed") | .data.table' | wc -l)" 0
keys Enter
expect "the rows of Unit once more" '5 rows shown \(filter: all\) of 5'
t_match "the hint says Esc marks the table" "$screen" 'Esc back, marks the table reviewed'
keys Escape
expect "Esc with every row shown marks Unit reviewed" 'public\.Unit +reviewed '
t_match "the detail line says so too" "$(main_text)" 'public\.Unit: reviewed; mode upsert, key id \(primary key\)'
t_eq "the mark is a sync_reviewed step with the loaded review's checksum, the table's digest and the rows shown" \
	"$(journal | jq -c 'select(.type == "step" and .data.kind == "sync_reviewed") | .data | [.table, .review, .review_sha256, .digest, .rows_shown, .rows, .by]')" \
	"$(jq -cn --arg r "$review1" --arg sha "$(tail -n1 "$review1" | cut -c3-)" --arg dg "$(printf '%s' "$dj" | jq -r '.tables[0].digest')" \
		'["public.Unit", $r, $sha, $dg, 5, 5, "tester"]')"
t_eq "the review file's checksum is its own bytes' SHA-256" "$(head -n -1 "$review1" | sha256sum | cut -c1-64)" \
	"$(tail -n1 "$review1" | cut -c3-)"

# Ctrl-L only redraws: the review and the mark stay; F5 asks before it drops them, n keeps them.
ndiffs() { journal | jq -r 'select(.type == "log" and .stage == "sync") | .message' | grep -c 'diff of 4 tables from dev to prod started'; }
nd0=$(ndiffs)
keys C-l
sleep 0.5
wait_for 'public\.Unit +reviewed ' 5 && t_ok "Ctrl-L keeps the mark" || t_fail "Ctrl-L keeps the mark" "$screen"
t_eq "Ctrl-L started no diff" "$(ndiffs)" "$nd0"
keys F5
expect "F5 with a table marked asks first" 'Diff again\? The loaded review'
t_match "saying the marks will be lost" "$(main_text)" 'review marks of 1 table will be lost'
keys n
wait_for 'public\.Unit +reviewed ' 5 && t_ok "n keeps the mark" || t_fail "n keeps the mark" "$screen"
t_eq "and started no diff" "$(ndiffs)" "$nd0"
keys d
expect "d asks too" 'Diff again\? The loaded review'
keys Escape
wait_for 'public\.Unit +reviewed ' 5 && t_ok "Esc answers no" || t_fail "Esc answers no" "$screen"
t_eq "still one diff" "$(ndiffs)" "$nd0"

keys F2
expect "F2 with tables still to review is refused" 'Apply refused'
t_match "it names the three left" "$(main_text)" '3 tables with changes not reviewed yet: public\.OrderItem, public\.Note, public\.Tag'
keys Escape
wait_for '3 tables to review' 5
for tb in OrderItem Note Tag; do
	keys Down
	wait_for "public\\.$tb: [a-z ]+; mode" 5
	keys Enter
	expect "rows of $tb" "Sync: rows of public\\.$tb"
	keys Escape
	expect "$tb is reviewed" "public\\.$tb +reviewed "
done
t_eq "each review is journaled as a step with who" \
	"$(journal | jq -r 'select(.type=="step" and .data.kind=="sync_reviewed") | "\(.data.table) \(.data.by)"' | tr '\n' ' ')" \
	"public.Unit tester public.OrderItem tester public.Note tester public.Tag tester "
t_match "every table with changes is reviewed" "$(main_text)" "Every table with changes is reviewed\\. F2 applies"

# No backup stage in this plan: F2 offers the waiver, then the phrases in order.
keys F2
expect "F2 asks for the backup waiver first" 'Confirm: Waive the backup'
type_text "waive-backup $T"
keys Enter
expect "then the apply phrase" 'Confirm: Apply the sync'
t_match "the prompt shows the phrase core computed" "$screen" "apply $T"
t_match "and each table's writes" "$(main_text)" 'public\.OrderItem \(protected\): 1 insert, 1 update, 0 delete public\.Note: 1 insert'
type_text "apply ${T}x"
keys Enter
expect "a wrong phrase is a miss" 'Wrong phrase \(1 of 3\): nothing ran'
t_eq "nothing was written" "$(checksum)" "$sum0"
t_eq "the miss is journaled for sync, with its reason" \
	"$(journal | jq -r 'select(.type=="confirm_miss" and .stage=="sync") | .data.reason')" "the phrase is different"
t_eq "the typed text is not journaled" "$(journal | grep -c "apply ${T}x")" "0"
type_text "apply $T"
keys Enter
expect "the protected overwrite asks its own phrase" 'Confirm: Overwrite protected tables'
t_match "naming the protected table" "$screen" 'protected: public\.OrderItem'
t_match "and the phrase" "$screen" 'I_UNDERSTAND_PROD_OVERWRITE'
type_text "I_UNDERSTAND_PROD_OVERWRITE"
keys Enter
expect "then the delete phrase" 'Confirm: Delete rows'
t_match "naming the table that deletes" "$screen" 'public\.Tag: 1 row deleted'
t_eq "still nothing written" "$(checksum)" "$sum0"
type_text "delete $T"
keys Enter
expect "the apply runs and ends" 'Applied: every table as reviewed' 30
for tb in Unit OrderItem Note Tag; do
	t_match "public.$tb is applied" "$screen" "public\\.$tb +applied "
done
t_match "the sidebar shows sync done" "$screen" '^> sync +done'
t_match "the selected table's apply result (Tag)" "$(main_text)" 'apply: applied \(0 inserted, 0 updated, 1 deleted\)'

# What the target holds now.
rows_of() {  # DB SQL-EXPR TABLE: the table's rows as "expr,expr,..." in id order
	t_sql "select string_agg($2, ',' order by id) from \"$3\"" "$1"
}
t_eq "Unit: the source's rows, the target-only row kept" \
	"$(rows_of "$T" "id || ':' || name || ':' || price" Unit)" \
	"$(rows_of "$S" "id || ':' || name || ':' || price" Unit),99:only in the target:9.99"
t_eq "OrderItem (protected) overwritten and appended" \
	"$(rows_of "$T" "id || ':' || qty" OrderItem)" "$(rows_of "$S" "id || ':' || qty" OrderItem)"
t_eq "Note (append): the new row in, the differing row kept" \
	"$(rows_of "$T" "id || ':' || body" Note)" "1:edited in prod,2:note 2,3:note 3,4:note 4"
t_eq "Tag (delete: true): the target-only row deleted" "$(rows_of "$T" "id || ':' || label" Tag)" "1:a,2:b"
t_eq "the journal has an applied step per table" \
	"$(journal | jq -r 'select(.type=="step" and .data.kind=="sync_table" and .data.state=="applied") | .data.table' | sort | tr '\n' ' ')" \
	"public.Note public.OrderItem public.Tag public.Unit "
t_eq "the phrases were confirmed in core" \
	"$(journal | jq -r 'select(.type=="confirm_ok" and .stage=="sync") | .data.phrase' | tr '\n' ' ')" \
	"apply $T I_UNDERSTAND_PROD_OVERWRITE delete $T "

run1=$(ls "$XDG_STATE_HOME"/pgrunbook/runs)
t_run 0 "the run's report" "$PGRUNBOOK" report "$run1"
t_match "it has the sync section" "$out" '^## Sync$'
t_match "with the review the wizard saved" "$out" "^Review saved to \`$XDG_STATE_HOME/pgrunbook/runs/$run1/sync-review-1.txt\`"
t_match "and each table's counts as sync diff counted them" "$out" \
	"$(printf '%s' "$dj" | jq -r '.tables[] | select(.table == "public.Unit") | "\\| public\\.Unit \\| upsert \\| local_wins \\| no \\| \(.counts.to_insert) \\| \(.counts.to_update) \\| \(.counts.to_delete) \\| \(.counts.conflicts) \\| \(.counts.differs_kept) \\| \(.counts.unchanged) \\|"')"
t_match "the skipped tables" "$out" 'Skipped \(not synced\): public\.Legacy \(mode skip\), public\.other \(not in the plan\)\.'
t_match "and the apply of each table" "$out" 'public\.Tag.*applied: 0 inserted, 0 updated, 1 deleted'

keys F2
expect "a second apply of the same review is refused" 'The last apply used this review\. F5 \(or d\) diffs again'
keys Escape
wait_for 'Applied: every table' 5
keys d
expect "d diffs again (no question: the review was applied): nothing left but kept and reported rows" \
	'Diffed in [0-9:]+: nothing to apply; the sync stage is done' 30
t_match "Unit now has only the target-only row" "$screen" 'public\.Unit +diffed +0 +0 +1 +0 +12 +upsert +id +local_wins +no'
t_eq "each diff has its own review file" "$(ls "$XDG_STATE_HOME"/pgrunbook/runs/*/sync-review* | sed 's,.*/,,' | tr '\n' ' ')" \
	"sync-review-1.txt sync-review-2.txt "
t_eq "the file the apply used is unchanged" "$(journal | jq -r 'select(.type == "step" and .data.kind == "sync_reviewed") | .data.review_sha256' | sort -u)" \
	"$(head -n -1 "$review1" | sha256sum | cut -c1-64)"
t_eq "nothing to apply ends the sync stage as done in the journal, with the new review" \
	"$(journal | jq -c 'select(.type == "stage_done" and .stage == "sync" and .message == "nothing to apply") | .data | [.review, .review_sha256]')" \
	"$(jq -cn --arg r "${review1%-1.txt}-2.txt" --arg s "$(tail -n1 "${review1%-1.txt}-2.txt" | cut -c3-)" '[$r, $s]')"
t_nomatch "the screen does not say F2 asks for a phrase" "$(main_text)" 'F2 asks for "'
t_match "it says F2 asks for none" "$(main_text)" 'Nothing to apply: F2 asks for no phrase; the sync stage is done'
keys F2
expect "F2 says there is nothing to apply" "Nothing to apply: $T already has every row"
keys Escape
wait_for 'nothing to apply; the sync stage is done' 5
t_eq "F2 did not journal the stage twice" "$(journal | jq -r 'select(.type == "stage_done" and .stage == "sync" and .message == "nothing to apply") | .ts' | wc -l)" 1


# A target row changed after the review: that table fails and rolls back, the later ones are not reached.
t_sql_do "update \"Unit\" set price = 77.77 where id = 1; insert into \"Note\" values (5, 'note 5')" "$S"
keys d
expect "the next diff" 'Diffed in [0-9:]+: 1 to insert, 1 to update' 30
for nav in "Unit:Home" "Note:Home Down Down"; do
	tb=${nav%%:*}
	# shellcheck disable=SC2086
	keys ${nav#*:}
	expect "the cursor reaches $tb" "│  public\\.$tb: [a-z ]+; mode"
	keys Enter
	expect "rows of $tb again" "Sync: rows of public\\.$tb"
	keys Escape
	expect "$tb reviewed again" "public\\.$tb +reviewed "
done
expect "every table with changes is reviewed again" 'Every table with changes is reviewed\. F2 applies 1 inserts, 1 updates, 0 deletes'
t_sql_do 'update "Unit" set name = $$changed after the review$$ where id = 1' "$T"
sum1=$(checksum)
keys F2
expect "only the apply phrase is asked this time" 'Confirm: Apply the sync'
type_text "apply $T"
keys Enter
expect "the apply stops" 'Apply stopped: ' 30
t_match "Unit failed" "$screen" 'public\.Unit +failed '
t_match "the later tables were not reached" "$screen" 'public\.Note +not reached '
t_match "the reason names the review" "$(main_text)" 'changed since the review'
t_match "the sidebar shows sync failed" "$screen" '^> sync +failed'
t_eq "nothing was written: Unit rolled back, Note untouched" "$(checksum)" "$sum1"
t_eq "the journal has Unit failed" \
	"$(journal | jq -r 'select(.type=="step" and .data.kind=="sync_table" and .data.state=="failed") | .data.table')" \
	"public.Unit"

keys q
expect "q quits" 'wizard finished: 0'

# A table with more changed rows than the drill-down keeps: the screen says how many it shows.
# Before it a big table the same on both sides: its counts grow on the screen while it is diffed.
both 'create table "Big" (id int primary key, v int); create table "Huge" (id int primary key, v int);
	insert into "Huge" select g, g from generate_series(1, 3000000) g'
t_sql_do 'insert into "Big" select g, g from generate_series(1, 10050) g' "$S"
P2=$T_TMP/plan2.yaml
cat >"$P2" <<EOF
name: sync screen, many rows
environments:
  dev:  { conninfo: "host=$PGHOST port=$PGPORT dbname=$S" }
  prod: { conninfo: "host=$PGHOST port=$PGPORT dbname=$T" }
source: dev
target: prod
sync:
  tables:
    Huge: { mode: append }
    Big: { mode: append }
EOF
start 160 45 --plan "$P2"
expect "the second plan's wizard" '^> preflight +done' 30
keys ']'
expect "its sync screen" 'Sync: dev -> prod, 2 tables'
keys F5
expect "the counts grow while the table is diffed" 'public\.Huge +diffing +0 +0 +0 +0 +[1-9][0-9]* +append +id +prod_wins +no' 20
live=$(printf '%s\n' "$screen" | sed -n 's/.*public\.Huge  *diffing  *0  *0  *0  *0  *\([0-9][0-9]*\) .*/\1/p')
t_match "part of the table so far" "$live" '^[0-9]+$'
[ "${live:-3000000}" -lt 3000000 ] && t_ok "fewer than all 3000000 rows ($live)" || t_fail "fewer than all 3000000 rows ($live)"
expect "then the whole table" 'public\.Huge +diffed +0 +0 +0 +0 +3000000 +append +id +prod_wins +no' 60
keys Down
expect "the diff of Big" 'public\.Big +diffed +10050 +0 +0 +0 +0 +append +id +prod_wins +no' 30
keys Enter
expect "the drill-down says it keeps the first 10000" \
	'10000 rows shown \(filter: all\); first 10000 of 10050 rows kept here \(at most 10000 rows or 8 MB\)'
keys End
expect "End goes to the last row kept" 'row 10000 of 10000'
t_match "which is id 10000" "$screen" 'insert +id=10000 *$'
review2=$(ls -t "$XDG_STATE_HOME"/pgrunbook/runs/*/sync-review-*.txt | head -n1)
t_eq "the review file has every row" "$(grep -c '^I	' "$review2")" 10050
keys Escape
expect "back on the tables" 'public\.Big +reviewed '
t_eq "the mark's journal line says how many rows were shown" \
	"$(journal | jq -r 'select(.type == "step" and .data.kind == "sync_reviewed" and .data.table == "public.Big") | "\(.data.rows_shown) \(.data.rows) \(.message)"')" \
	"10000 10050 public.Big reviewed by tester: 10050 to insert, 0 to update, 0 to delete, 0 conflicts; first 10000 of 10050 rows shown"
keys q
expect "q quits" 'wizard finished: 0'
# --- 80x24: the counts, the detail line and the F2 line visible; a row wider than the page; a
# value longer than the view keeps; a table whose rows pass the drill-down's byte budget ---
both "create table \"Wide\" (id int primary key, $(seq -s, -f 'c%g text' 1 14));
	create table \"Long\" (id int primary key, v text);
	create table \"Mem\" (id int primary key, a text, b text, c text, d text)"
t_sql_do "insert into \"Wide\" values (1, $(seq -s, -f "'new %g'" 1 14));
	insert into \"Long\" values (1, repeat('x', 1000) || 'B');
	insert into \"Mem\" select g, repeat('a', 600), repeat('b', 600), repeat('c', 600), repeat('d', 600)
		from generate_series(1, 5000) g" "$S"
t_sql_do "insert into \"Wide\" values (1, $(seq -s, -f "'old %g'" 1 14));
	insert into \"Long\" values (1, repeat('x', 1000) || 'A')" "$T"
P3=$T_TMP/plan3.yaml
cat >"$P3" <<EOF
name: sync screen, 80x24
environments:
  dev:  { conninfo: "host=$PGHOST port=$PGPORT dbname=$S" }
  prod: { conninfo: "host=$PGHOST port=$PGPORT dbname=$T" }
source: dev
target: prod
sync:
  tables:
    Wide: { mode: upsert, on_conflict: local_wins }
    Long: { mode: upsert, on_conflict: local_wins }
    Mem: { mode: append }
EOF
start 80 24 --plan "$P3"
expect "the 80x24 wizard" '^> preflight +done' 30
keys ']'
expect "its sync screen" 'Sync: dev -> prod, 3 tables'
keys d
expect "the diff at 80x24" 'Diffed in [0-9:]+: ' 30
t_match "table, state and every count visible at 80 columns (Wide)" "$screen" '│  public\.Wide +diffed +0 +1 +0 +0 +0( |$)'
t_match "(Long)" "$screen" '│  public\.Long +diffed +0 +1 +0 +0 +0( |$)'
t_match "(Mem)" "$screen" '│  public\.Mem +diffed +5000 +0 +0 +0 +0( |$)'
t_match "the count titles too" "$screen" 'table +state +ins +upd +del +conf +same'
t_match "the detail line of the selected table is visible" "$screen" '│  public\.Wide: diffed; mode upsert'
t_match "and what F2 asks for" "$screen" "│  F2 asks for \"apply $T\""
keys Enter
expect "the rows of Wide at 80x24" 'Sync: rows of public\.Wide'
t_match "the hint that Esc marks the table fits" "$screen" '│  Esc back, marks the table reviewed  C-c back'
t_match "a row wider than the page says what is not shown" "$screen" '\.\.\. [0-9]+ more changed columns: Enter'
t_nomatch "c14 is not on the page" "$screen" 'c14:'
keys Enter
expect "Enter shows the whole row" 'Old \(target\) -> new \(source\); \* changed'
t_match "from the key" "$screen" "│    id \(key\): '1' \(same\)"
keys End
expect "scrolling to its end shows the last changed column" "│  \\* c14: 'old 14' -> 'new 14'"
keys Escape
expect "Esc goes back to the rows" 'Sync: rows of public\.Wide'
keys Escape
expect "and marks Wide" 'public\.Wide +reviewed '
keys Down Enter
expect "the rows of Long" 'Sync: rows of public\.Long'
t_match "the long value is shown cut, and says so" "$screen" "    v: 'x+$"
# shellcheck disable=SC2046
keys $(printf 'Right %.0s' $(seq 150))
expect "Right scrolls to the end of the widest line and no further" '│ .*bytes shown\) \(first differs at byte 1001\)$'
keys Enter
expect "the whole row of Long" 'Old \(target\) -> new \(source\); \* changed'
keys PageDown
expect "its second page" 'lines 13-'
t_match "the old value is marked as cut" "$(main_text)" "x'\\.\\.\\. \\(cut: 512 of 1001 bytes shown\\) -> 'x"
keys End
expect "its last page" 'lines [0-9]+-([0-9]+) of \1'
t_match "the new value too, with where the two first differ" "$(main_text)" \
	"x'\\.\\.\\. \\(cut: 512 of 1001 bytes shown\\) \\(first differs at byte 1001\\)"
keys Escape Escape
expect "Long reviewed" 'public\.Long +reviewed '
keys Down Enter
expect "the rows of Mem" 'Sync: rows of public\.Mem'
kept=$(main_text | sed -n 's/.*first \([0-9]*\) of 5000 rows kept here (at most 10000 rows or 8 MB).*/\1/p')
t_match "the byte budget keeps fewer rows than the row cap, and says so" "$kept" '^[0-9]+$'
[ "${kept:-5000}" -lt 5000 ] && [ "${kept:-0}" -gt 1000 ] && t_ok "kept $kept of 5000 (8 MB)" || t_fail "kept ${kept:-?} of 5000 (8 MB)"
keys Escape
expect "Mem reviewed" 'public\.Mem +reviewed '
t_eq "its mark says how many rows were shown" \
	"$(journal | jq -r 'select(.type == "step" and .data.kind == "sync_reviewed" and .data.table == "public.Mem") | "\(.data.rows_shown) \(.data.rows)"' | tail -n1)" \
	"$kept 5000"
t_match "its journal line too" "$(journal | jq -r 'select(.type == "step" and .data.kind == "sync_reviewed" and .data.table == "public.Mem") | .message' | tail -n1)" \
	"; first $kept of 5000 rows shown\$"
keys q
expect "q quits" 'wizard finished: 0'

# --- a plan whose sync writes nothing (no table is synced): the diff ends the stage as done ---
P4=$T_TMP/plan4.yaml
cat >"$P4" <<EOF
name: sync screen, nothing to sync
environments:
  dev:  { conninfo: "host=$PGHOST port=$PGPORT dbname=$S" }
  prod: { conninfo: "host=$PGHOST port=$PGPORT dbname=$T" }
source: dev
target: prod
sync:
  tables:
    Legacy: { mode: skip }
EOF
start 80 24 --plan "$P4"
expect "the wizard of a plan that syncs nothing" '^> preflight +done' 30
keys ']'
expect "its sync screen" 'Sync: dev -> prod, 0 tables'
t_match "the sync stage is pending" "$screen" '^> sync +pending'
keys d
expect "the diff says there is nothing to apply" 'Diffed in [0-9:]+: nothing to apply; the sync' 30
expect "the sidebar shows sync done" '^> sync +done'
run4=$(ls -t "$XDG_STATE_HOME"/pgrunbook/runs | head -n1)
t_eq "the journal has the sync stage done: nothing to apply" \
	"$(jq -r 'select(.stage == "sync" and (.type | startswith("stage_"))) | "\(.type) \(.message)"' "$XDG_STATE_HOME/pgrunbook/runs/$run4/journal.jsonl")" \
	"stage_done nothing to apply"
keys q
expect "q quits" 'wizard finished: 0'
t_done
