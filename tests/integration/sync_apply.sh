#!/usr/bin/env bash
# sync_apply.sh: `pgrunbook sync diff --out` and `pgrunbook sync apply` against two real databases:
# each mode applied exactly (append, prod_wins, local_wins with NULL vs '' and a composite key),
# foreign-key order, sequences moved forward only, tables outside the plan untouched, every
# refusal writing nothing in any table, delete: true, rows changed after the review, a failing
# table, kill -9 mid-apply, the JSON shape, the journal and the absence of secrets.
# Expected results are computed independently in SQL from copies of the target taken before.
. "$top_srcdir/tests/lib.sh"

unset PGAPPNAME
S="${T_DB}_src"
T="${T_DB}_dst"
W=$T_TMP/w
P=$W/plan.yaml
R=$W/review
runs="$XDG_STATE_HOME/pgrunbook/runs"
bg_pids=()
mkdir -p "$W"

cleanup() {
	local p
	for p in "${bg_pids[@]}"; do kill -9 "$p" 2>/dev/null; done
	"$PSQL" -X -q -d postgres -c "drop database if exists \"$S\" with (force)" \
		-c "drop database if exists \"$T\" with (force)" -c "drop database if exists \"${T}2\" with (force)" >/dev/null 2>&1
}
trap cleanup EXIT

t_createdb "$S"
t_createdb "$T"

both() { t_sql_do "$1" "$S" && t_sql_do "$1" "$T"; }
src() { t_sql_do "$1" "$S"; }
dst() { t_sql_do "$1" "$T"; }

plan() {  # FILE TABLES-YAML [DEFAULTS] [NAME]
	cat >"$1" <<EOF
name: ${4:-sync apply test}
environments:
  dev:  { conninfo: "host=$PGHOST port=$PGPORT dbname=$S" }
  prod: { conninfo: "host=$PGHOST port=$PGPORT dbname=$T" }
source: dev
target: prod
sync:
  defaults: { ${3:-mode: skip} }
  protected: ["Order*"]
  tables:
$2
EOF
}

review() {  # DESC [PLAN]: sync diff --out $R (JSON in $dj)
	rm -f "$R"
	t_run 0 "$1: sync diff --out" "$PGRUNBOOK" sync diff --plan "${2:-$P}" --out "$R" --json
	dj=$out
	[ -s "$R" ] || t_fail "$1: no review file written"
}
apply() { "$PGRUNBOOK" sync apply --plan "$P" --review "$R" "$@"; }
OK=(--confirm "apply $T" --waive-backup "waive-backup $T")

# The target's state: one line per table (md5 of its rows), then each sequence's last_value.
CKS_Q="select string_agg(format('select %L || '' '' || coalesce((select md5(string_agg(zz::text, '','' order by zz::text)) from %I.%I zz), ''empty'')', c.relname, n.nspname, c.relname), ' union all ') from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace where c.relkind in ('r', 'p') and n.nspname = 'public'"
cks() {  # [DB]
	local q db=${1:-$T}
	q=$(t_sql "$CKS_Q" "$db") || return
	t_sql "$q" "$db" | sort
	t_sql "select schemaname || '.' || sequencename || ' ' || coalesce(last_value::text, 'unused') from pg_catalog.pg_sequences order by 1" "$db"
}
tcks() {  # TABLE [DB]: md5 of one table's rows
	t_sql "select coalesce(md5(string_agg(zz::text, ',' order by zz::text)), 'empty') from \"$1\" zz" "${2:-$T}"
}
# snap TABLE: copies the target's rows into expect."TABLE" in the source database.
src "create schema expect"
snap() {
	t_sql_do "drop table if exists expect.\"$1\"; create table expect.\"$1\" (like public.\"$1\")" "$S"
	"$PSQL" -X -q -d "$T" -c "copy \"$1\" to stdout" | "$PSQL" -X -q -d "$S" -c "copy expect.\"$1\" from stdin"
}
# The rows the target must hold after an apply, as md5, computed in the source database from the
# snapshot: append/prod_wins = target + source rows with new keys; local_wins = source + target-only.
exp_append() {  # TABLE JOIN-CONDITION(s, e)
	t_sql "select md5(string_agg(zz::text, ',' order by zz::text)) from (select * from expect.\"$1\" union all
		select * from public.\"$1\" s where not exists (select from expect.\"$1\" e where $2)) zz" "$S"
}
exp_local() {  # TABLE JOIN-CONDITION(s, e)
	t_sql "select md5(string_agg(zz::text, ',' order by zz::text)) from (select * from public.\"$1\" union all
		select * from expect.\"$1\" e where not exists (select from public.\"$1\" s where $2)) zz" "$S"
}
jtab() {  # JSON TABLE FILTER: a field of one table of an apply's JSON
	printf '%s' "$1" | jq -c --arg t "$2" ".tables[] | select(.table == \$t) | $3"
}
dcounts() {  # JSON TABLE: a diff's "to_insert to_update to_delete conflicts"
	printf '%s' "$1" | jq -r --arg t "$2" '.tables[] | select(.table == $t) | .counts |
		"\(.to_insert) \(.to_update) \(.to_delete) \(.conflicts)"'
}
# (the contract's member is "run"; "run_id" is read too so that the journal is still checked)
journal_of() { printf '%s/%s/journal.jsonl' "$runs" "$(printf '%s' "$1" | jq -r .run_id)"; }
steps() {  # JOURNAL: "table state" of each sync_table step, in order
	jq -r 'select(.type == "step" and .data.kind == "sync_table") | "\(.data.table) \(.data.state)"' "$1"
}
why() { printf '%s\n%s\n' "$err" "$(printf '%s' "$out" | jq -r '.error.message? // empty' 2>/dev/null)"; }

# refused DESC MATCH ARGS...: apply (with --json) exits 3, says MATCH, writes nothing in any table.
refused() {
	local desc=$1 re=$2 before
	shift 2
	before=$(cks)
	t_run 3 "refused: $desc" apply "$@" --json
	t_match "$desc: says why" "$(why)" "$re"
	_t_show why "$(why | grep -v '^run .*: journaled in' | grep . | head -n 3)"
	t_eq "$desc: JSON refused, not ok, exit_code 3" \
		"$(printf '%s' "$out" | jq -c '[.refused, .ok, .exit_code]' 2>&1)" '[true,false,3]'
	t_eq "$desc: no table applied" "$(printf '%s' "$out" | jq -c '[.tables[]? | select(.state == "applied" or .state == "failed")] | length' 2>&1)" 0
	t_eq "$desc: nothing written in any table" "$(cks)" "$before"
}

# ======================================================================= 1. the happy path
both "create table parent(id serial primary key, name text not null)"
both "create table child(id bigint generated by default as identity primary key,
	parent_id int not null references parent(id), note text)"
both "create table gal(id int generated always as identity primary key, v text)"
both "create table app(k int primary key, v text)"
both "create table pw(k int primary key, v text)"
both "create table lw(a int, b text, v text, w int, primary key (a, b))"
both "create table ahead(id serial primary key, v text)"
both "create table notlisted(id int primary key, v text)"
both "create table skipped_t(id int primary key, v text)"
src "insert into parent(name) select 'p' || g from generate_series(1, 10) g"
dst "insert into parent(name) select 'p' || g from generate_series(1, 3) g; update parent set name = 'p2-prod' where id = 2"
src "insert into child(parent_id, note) select g % 10 + 1, 'c' || g from generate_series(1, 20) g"
dst "insert into child(parent_id, note) select 1, 'old' || g from generate_series(1, 5) g"
src "insert into gal(v) select 'g' || g from generate_series(1, 8) g"
dst "insert into gal(v) select 'g' || g from generate_series(1, 2) g"
for t in app pw; do
	src "insert into $t select g, 'a' || g from generate_series(1, 10) g"
	dst "insert into $t select g, 'a' || g from generate_series(1, 5) g; update $t set v = 'changed' where k = 3;
		insert into $t values (50, 'target only')"
done
src "insert into lw values (1, 'x', null, 1), (1, 'y', '', 2), (1, 'z', 'same', 3), (2, 'x', 'new', 4),
	(2, 'y', 'v', null), (3, 'a b', E'tab\\there', 5)"
dst "insert into lw values (1, 'x', '', 1), (1, 'y', null, 2), (1, 'z', 'same', 3), (2, 'y', 'v', 0),
	(9, 't', 'target only', 9)"
src "insert into ahead(v) select 'h' || g from generate_series(1, 6) g"
dst "insert into ahead(v) select 'h' || g from generate_series(1, 3) g; select setval('ahead_id_seq', 1000)"
src "insert into notlisted values (1, 's'), (3, 's')"
dst "insert into notlisted values (1, 't'), (2, 't')"
src "insert into skipped_t values (1, 's')"
dst "insert into skipped_t values (2, 't')"
for t in parent child gal app pw lw ahead; do snap "$t"; done

# The plan lists the child before its parent.
plan "$P" "    child: { mode: upsert, on_conflict: local_wins }
    gal: { mode: append }
    app: { mode: append }
    pw: { mode: upsert, on_conflict: prod_wins }
    lw: { mode: upsert, on_conflict: local_wins }
    ahead: { mode: append }
    parent: { mode: append }
    skipped_t: { mode: skip }"

t_eq "precondition: the target's sequences are behind the source's keys" \
	"$(t_sql "select (select last_value from parent_id_seq) < 10, (select last_value from pg_sequences where sequencename = 'child_id_seq') < 20,
		(select last_value from pg_sequences where sequencename = 'gal_id_seq') < 8" "$T")" "t|t|t"
ins_of() {  # TABLE JOIN: source rows with keys absent in the target's snapshot
	t_sql "select count(*) from public.\"$1\" s where not exists (select from expect.\"$1\" e where $2)" "$S"
}
upd_of() {  # TABLE JOIN: rows on both sides that differ
	t_sql "select count(*) from public.\"$1\" s join expect.\"$1\" e on $2 where s is distinct from e" "$S"
}
declare -A JOIN=([parent]="e.id = s.id" [child]="e.id = s.id" [gal]="e.id = s.id" [app]="e.k = s.k" [pw]="e.k = s.k"
	[lw]="(e.a, e.b) = (s.a, s.b)" [ahead]="e.id = s.id")
declare -A EXP EXP_INS EXP_UPD
for t in parent gal app pw ahead; do
	EXP[$t]=$(exp_append "$t" "${JOIN[$t]}")
	EXP_INS[$t]=$(ins_of "$t" "${JOIN[$t]}")
	EXP_UPD[$t]=0
done
for t in child lw; do
	EXP[$t]=$(exp_local "$t" "${JOIN[$t]}")
	EXP_INS[$t]=$(ins_of "$t" "${JOIN[$t]}")
	EXP_UPD[$t]=$(upd_of "$t" "${JOIN[$t]}")
done
t_eq "the fixture: inserts and updates per table (independent SQL)" \
	"$(for t in parent child gal app pw lw ahead; do printf '%s:%s/%s ' "$t" "${EXP_INS[$t]}" "${EXP_UPD[$t]}"; done)" \
	"parent:7/0 child:15/5 gal:6/0 app:5/0 pw:5/0 lw:2/3 ahead:3/0 "
notlisted_before=$(tcks notlisted)
skipped_before=$(tcks skipped_t)

# --- sync diff --out ---
t_run 0 "sync diff without --out" "$PGRUNBOOK" sync diff --plan "$P" --json
t_eq "review_file is null without --out" "$(printf '%s' "$out" | jq -c .review_file)" null
t_run 0 "sync diff --out as text" "$PGRUNBOOK" sync diff --plan "$P" --out "$R"
t_eq "the text ends with the review's path" "$(printf '%s\n' "$out" | tail -n 1)" "review saved to $R"
review "happy path"
t_eq "JSON names the review file" "$(printf '%s' "$dj" | jq -r .review_file)" "$R"
t_eq "the review file is mode 0600" "$(stat -c %a "$R")" 600
t_eq "and begins with the magic line" "$(head -n 1 "$R")" "pgrunbook-review 1"
t_eq "no temporary file is left" "$(ls "$W" | grep -c '\.tmp')" 0
t_eq "the diff's counts are the SQL's (lw)" "$(dcounts "$dj" public.lw)" "${EXP_INS[lw]} ${EXP_UPD[lw]} 1 0"
t_eq "the review has no password in it" "$(grep -ci password "$R")" 0
# A diff that fails for a table writes no review.
plan "$W/bad.yaml" "    app: { mode: append }
    nosuch: { mode: append }"
t_run 3 "a diff with a failing table" "$PGRUNBOOK" sync diff --plan "$W/bad.yaml" --out "$W/bad.review"
t_eq "writes no review file (nor its .tmp)" "$(ls "$W" | grep -c '^bad\.review')" 0

# --- apply ---
t_run 0 "apply the happy path" apply "${OK[@]}" --json
a=$out
t_eq "JSON: database, refused, ok, exit_code" "$(printf '%s' "$a" | jq -c '[.database, .refused, .ok, .exit_code]')" \
	"[\"$T\",false,true,0]"
t_eq "JSON: no error member when it succeeded" "$(printf '%s' "$a" | jq -c 'has("error")')" false
t_match "JSON: the run id" "$(printf '%s' "$a" | jq -r .run_id)" '^[0-9]{8}T[0-9]{6}'
t_eq "the run's journal exists" "$(test -s "$(journal_of "$a")" && echo yes)" yes
t_eq "JSON: each table's members" "$(printf '%s' "$a" | jq -c '[.tables[] | keys] | unique')" \
	'[["deleted","error","inserted","ms","sequences_moved","state","table","updated"]]'
t_eq "JSON: the applied tables, every one applied, no error" \
	"$(printf '%s' "$a" | jq -c '[.tables[] | [.table, .state, .error]] | sort')" \
	'[["public.ahead","applied",null],["public.app","applied",null],["public.child","applied",null],["public.gal","applied",null],["public.lw","applied",null],["public.parent","applied",null],["public.pw","applied",null]]'
t_eq "JSON: the parent comes before its child" \
	"$(printf '%s' "$a" | jq '[.tables[].table] | index("public.parent") < index("public.child")')" true
t_eq "JSON: ms is a number" "$(printf '%s' "$a" | jq -c '[.tables[].ms | type] | unique')" '["number"]'
for t in parent child gal app pw lw ahead; do
	t_eq "$t: inserted / updated / deleted as counted in SQL" "$(jtab "$a" "public.$t" '[.inserted, .updated, .deleted]')" \
		"[${EXP_INS[$t]},${EXP_UPD[$t]},0]"
	t_eq "$t: the target holds exactly the expected rows" "$(tcks "$t")" "${EXP[$t]}"
done
t_eq "parent: one sequence moved" "$(jtab "$a" public.parent .sequences_moved)" 1
t_eq "child (identity): one sequence moved" "$(jtab "$a" public.child .sequences_moved)" 1
t_eq "lw: every value exactly, NULL vs '' kept apart" \
	"$(t_sql "select string_agg(format('%s|%s|%s|%s', a, b, coalesce(quote_literal(translate(v, E'\\t', '~')), 'NULL'), coalesce(w::text, 'NULL')), ' ; ' order by a, b) from lw" "$T")" \
	"1|x|NULL|1 ; 1|y|''|2 ; 1|z|'same'|3 ; 2|x|'new'|4 ; 2|y|'v'|NULL ; 3|a b|'tab~here'|5 ; 9|t|'target only'|9"
t_eq "app (append): the differing row and the target-only row are kept" \
	"$(t_sql "select string_agg(k || '=' || v, ',' order by k) from app where k in (3, 50)" "$T")" "3=changed,50=target only"
t_eq "pw (prod_wins): the same as append" "$(t_sql "select string_agg(k || '=' || v, ',' order by k) from pw where k in (3, 50)" "$T")" \
	"3=changed,50=target only"
t_eq "parent (append): the target's differing name kept" "$(t_sql "select name from parent where id = 2" "$T")" p2-prod
t_eq "child (local_wins): rows now point to the new parents" \
	"$(t_sql "select string_agg(id || '>' || parent_id || ':' || note, ',' order by id) from child where id <= 5" "$T")" \
	"1>2:c1,2>3:c2,3>4:c3,4>5:c4,5>6:c5"
t_eq "a table not in the plan is untouched" "$(tcks notlisted)" "$notlisted_before"
t_eq "a skip-mode table is untouched" "$(tcks skipped_t)" "$skipped_before"
t_eq "sequences moved past the new maximum (serial, identity by default, identity always)" \
	"$(t_sql "select nextval('parent_id_seq') > (select max(id) from parent),
		nextval(pg_get_serial_sequence('child', 'id')) > (select max(id) from child),
		nextval(pg_get_serial_sequence('gal', 'id')) > (select max(id) from gal)" "$T")" "t|t|t"
t_eq "a sequence already ahead is not moved back" "$(t_sql "select nextval('ahead_id_seq')" "$T")" 1001
t_eq "new rows get fresh ids from the sequences" \
	"$(t_sql "insert into parent(name) values ('fresh') returning id > 10" "$T") $(t_sql "insert into gal(v) values ('fresh') returning id > 8" "$T")" "t t"
dst "delete from parent where name = 'fresh'; delete from gal where v = 'fresh'"

J=$(journal_of "$a")
t_eq "journal: each table started, then applied" \
	"$(steps "$J" | sort | uniq -c | awk '{ print $2, $3, $1 }' | tr '\n' ';')" \
	"public.ahead applied 1;public.ahead started 1;public.app applied 1;public.app started 1;public.child applied 1;public.child started 1;public.gal applied 1;public.gal started 1;public.lw applied 1;public.lw started 1;public.parent applied 1;public.parent started 1;public.pw applied 1;public.pw started 1;"
t_eq "journal: the parent is applied before the child starts" \
	"$(steps "$J" | grep -nE '^public\.(parent applied|child started)' | cut -d: -f2 | tr '\n' ';')" \
	"public.parent applied;public.child started;"
t_eq "journal: applied steps carry the counts" \
	"$(jq -c 'select(.type == "step" and .data.kind == "sync_table" and .data.state == "applied" and .data.table == "public.lw") | [.data.inserted, .data.updated, .data.deleted]' "$J")" \
	"[${EXP_INS[lw]},${EXP_UPD[lw]},0]"
t_eq "journal: the waiver is journaled" "$(jq -c 'select(.type == "stage_waived")' "$J" | wc -l)" 1
t_eq "journal: the run is finished" "$(jq -c 'select(.type == "run_finished")' "$J" | wc -l)" 1

t_run 0 "a new diff after the apply" "$PGRUNBOOK" sync diff --plan "$P" --json
t_eq "local_wins tables: nothing left to insert or update" \
	"$(dcounts "$out" public.child | cut -d' ' -f1-2) $(dcounts "$out" public.lw | cut -d' ' -f1-2)" "0 0 0 0"
t_eq "append tables: nothing left to insert" \
	"$(for t in parent gal app pw ahead; do dcounts "$out" "public.$t" | cut -d' ' -f1; done | tr '\n' ' ')" "0 0 0 0 0 "

# The same review again: its rows are no longer what it saw.
before=$(cks)
t_run 3 "the same review applied twice: aborted" apply "${OK[@]}"
t_match "says the target changed since the review" "$err" "review"
t_eq "nothing written" "$(cks)" "$before"

# ======================================================================= 2. refusals
both "create table rc1(id int primary key, v text, x int)"
both "create table rc2(id int primary key, v text)"
both "create table \"OrderLine\"(id int primary key, v text)"
both "create table \"OrderNote\"(id int primary key, v text)"
both "create table \"OrderGone\"(id int primary key, v text)"
both "create table rconf(id int primary key, v text)"
src "insert into rc1 select g, 'v' || g from generate_series(1, 5) g"
dst "insert into rc1 select g, 'v' || g from generate_series(1, 3) g"
src "insert into rc2 values (1, 'a'), (2, 'b')"
dst "insert into rc2 values (1, 'a'), (2, 'old')"
src "insert into \"OrderLine\" values (1, 'x'), (2, 'y'), (3, 'z')"
dst "insert into \"OrderLine\" values (1, 'x'), (2, 'old')"
src "insert into \"OrderNote\" values (1, 'n1'), (2, 'n2'), (3, 'n3')"
dst "insert into \"OrderNote\" values (1, 'n1')"
src "insert into \"OrderGone\" values (1, 'g')"
dst "insert into \"OrderGone\" values (1, 'g'), (2, 'gone')"
src "insert into rconf values (1, 'a'), (2, 'b'), (3, 'c')"
dst "insert into rconf values (1, 'a'), (2, 'X')"
BASE="    rc1: { mode: append }
    rc2: { mode: upsert, on_conflict: local_wins }"

plan "$P" "$BASE"
review "refusals"
refused "a wrong phrase" "apply $T" --confirm "apply wrongdb" --waive-backup "waive-backup $T"
t_eq "the miss is journaled" "$(jq -c 'select(.type == "confirm_miss")' "$(journal_of "$out")" | wc -l)" 1
t_eq "without the typed text" "$(grep -c wrongdb "$(journal_of "$out")")" 0
refused "the phrase with a trailing space" "apply $T" --confirm "apply $T " --waive-backup "waive-backup $T"
refused "the phrase in another case" "apply $T" --confirm "Apply $T" --waive-backup "waive-backup $T"
refused "no --confirm" "apply $T" --waive-backup "waive-backup $T"
refused "no backup and no waiver" "waive-backup $T" --confirm "apply $T"
refused "a wrong waiver" "waive-backup $T" --confirm "apply $T" --waive-backup "waive-backup wrongdb"

# The plan edited after the review: its hash differs.
cp "$P" "$W/plan.orig"
plan "$P" "$BASE" "" "sync apply test (edited)"
refused "a review of another plan (renamed)" "sync diff .*--out" "${OK[@]}"
plan "$P" "$BASE
    rconf: { mode: append }"
refused "a review of another plan (a table added)" "sync diff .*--out" "${OK[@]}"
cp "$W/plan.orig" "$P"

# Damaged review files.
cp "$R" "$W/review.good"
head -c $(( $(stat -c %s "$R") / 2 )) "$W/review.good" >"$R"
refused "a review cut in half" "sync diff .*--out" "${OK[@]}"
head -n -1 "$W/review.good" >"$R"
refused "a review without its last line" "sync diff .*--out" "${OK[@]}"
cp "$W/review.good" "$R"
off=$(grep -b -m 1 -P '^I\t' "$R" | cut -d: -f1)
python3 - "$R" "$((off + 2))" <<'EOF'
import sys
p, o = sys.argv[1], int(sys.argv[2])
b = bytearray(open(p, 'rb').read())
b[o] = ord('9') if b[o] != ord('9') else ord('8')
open(p, 'wb').write(bytes(b))
EOF
t_eq "the edited review differs from the original in exactly one byte" "$(cmp -l "$R" "$W/review.good" | wc -l)" 1
refused "a review with one byte changed" "sync diff .*--out" "${OK[@]}"
cp "$W/review.good" "$R"
rm -f "$W/nosuch.review"
t_run 3 "a review file that does not exist" "$PGRUNBOOK" sync apply --plan "$P" --review "$W/nosuch.review" "${OK[@]}"

# The same plan (same hash) whose target environment now reaches another database.
T2="${T_DB}_dst2"
t_createdb "$T2"
"$PG_BINDIR/pg_dump" -h "$PGHOST" -p "$PGPORT" "$T" | "$PSQL" -X -q -d "$T2" >/dev/null
plan "$W/env.yaml" "$BASE"
sed -i "s|  prod: .*|  prod: { dsn_env: SYNC_APPLY_TEST_TARGET }|" "$W/env.yaml"
export SYNC_APPLY_TEST_TARGET="postgresql:///$T?host=$PGHOST&port=$PGPORT"
review "a plan whose target comes from the environment" "$W/env.yaml"
export SYNC_APPLY_TEST_TARGET="postgresql:///$T2?host=$PGHOST&port=$PGPORT"
for db in "$T" "$T2"; do
	before=$(cks "$T2")
	t_run 3 "a review of another target database (phrase \"apply $db\"): refused" \
		"$PGRUNBOOK" sync apply --plan "$W/env.yaml" --review "$R" --confirm "apply $db" --waive-backup "waive-backup $db"
	if [ "$db" = "$T" ]; then
		t_match "says the target is now another database" "$err" "$T2"
	else
		t_match "names the review's database" "$err" "$T([^2]|\$)"
	fi
	t_eq "nothing written in the other database" "$(cks "$T2")" "$before"
done
unset SYNC_APPLY_TEST_TARGET
"$PSQL" -X -q -d postgres -c "drop database \"$T2\" with (force)" >/dev/null 2>&1
review "refusals, again"

# The target's columns changed after the review.
dst "alter table rc1 drop column x"
refused "a reviewed column dropped on the target" 'column "?x"?' "${OK[@]}"
dst "alter table rc1 add column x int"
dst "alter table rc1 alter column x type bigint"
refused "a reviewed column retyped on the target" 'column "?x"?' "${OK[@]}"
dst "alter table rc1 alter column x type int"

# A conflict in one table while the others are clean.
plan "$P" "$BASE
    rconf: { mode: upsert, on_conflict: error_on_conflict }"
review "a conflict"
t_eq "the diff reports the conflict (and exits 0)" "$(dcounts "$dj" public.rconf)" "1 0 0 1"
refused "a review holding a conflict" "rconf" "${OK[@]}"

# Protected tables.
plan "$P" "$BASE
    OrderLine: { mode: upsert, on_conflict: local_wins }"
review "a protected table with updates"
t_eq "the diff marks it protected" "$(printf '%s' "$dj" | jq -c '.tables[] | select(.table == "public.OrderLine") | .protected')" true
refused "protected updates without the override" "I_UNDERSTAND_PROD_OVERWRITE|allow-protected-overwrite" "${OK[@]}"
refused "protected updates with --allow-protected-overwrite only" "I_UNDERSTAND_PROD_OVERWRITE|confirm-overwrite" \
	"${OK[@]}" --allow-protected-overwrite
before=$(cks)
t_run 3 "refused: protected updates with --confirm-overwrite only" apply "${OK[@]}" --confirm-overwrite I_UNDERSTAND_PROD_OVERWRITE
t_match "protected updates with --confirm-overwrite only: says why" "$err" "allow-protected-overwrite"
t_eq "protected updates with --confirm-overwrite only: nothing written in any table" "$(cks)" "$before"
refused "protected updates with a wrong overwrite phrase" "I_UNDERSTAND_PROD_OVERWRITE" \
	"${OK[@]}" --allow-protected-overwrite --confirm-overwrite i_understand_prod_overwrite

plan "$P" "    rc1: { mode: append }
    OrderNote: { on_conflict: prod_wins }" "mode: append"
review "a protected table whose mode comes from sync.defaults"
t_eq "the diff would insert into it" "$(dcounts "$dj" public.OrderNote)" "2 0 0 0"
refused "protected appends, mode inherited" "OrderNote" "${OK[@]}"
refused "protected appends, mode inherited, even with the override" "OrderNote" "${OK[@]}" \
	--allow-protected-overwrite --confirm-overwrite I_UNDERSTAND_PROD_OVERWRITE
# A review taken while the entry set mode itself, the plan then edited to inherit it (the same
# effective settings): the plan given to apply decides.
plan "$P" "    rc1: { mode: append }
    OrderNote: { mode: append, on_conflict: prod_wins }" "mode: append"
review "a protected table with its own mode"
plan "$P" "    rc1: { mode: append }
    OrderNote: { on_conflict: prod_wins }" "mode: append"
refused "protected appends: the plan no longer sets mode after the review" "OrderNote|sync diff .*--out" "${OK[@]}"
# (should the case above have written, the fixture is put back for what follows)
dst "delete from rc1 where id > 3; delete from \"OrderNote\" where id > 1"

plan "$P" "    rc1: { mode: append }
    OrderGone: { mode: append, delete: true }"
review "a protected table deleting rows"
refused "protected deletes without the override" "I_UNDERSTAND_PROD_OVERWRITE|allow-protected-overwrite" \
	"${OK[@]}" --confirm-delete "delete $T"

# The advisory lock of another writer.
PGAPPNAME=other_writer "$PSQL" -X -q -d "$T" -c 'select pg_advisory_lock(72707369); select pg_sleep(60)' >/dev/null 2>&1 &
holder=$!
bg_pids+=("$holder")
for _ in $(seq 100); do
	[ "$(t_sql "select count(*) from pg_locks where locktype = 'advisory' and objid = 72707369 and granted" "$T")" = 1 ] && break
	sleep 0.1
done
plan "$P" "$BASE"
review "the one-writer lock"
refused "another writer holds the advisory lock" "lock|other_writer" "${OK[@]}" --lock-wait 1
kill "$holder" 2>/dev/null
t_sql_do "select pg_terminate_backend(pid) from pg_stat_activity where application_name = 'other_writer'" "$T"
wait "$holder" 2>/dev/null

# The refused fixtures do apply once everything is in order.
plan "$P" "$BASE"
review "the refusal fixture, in order"
t_run 0 "the same tables apply with the phrase and the waiver" apply "${OK[@]}" --json
t_eq "rc1 and rc2 applied" "$(printf '%s' "$out" | jq -c '[.tables[] | [.table, .state, .inserted, .updated]] | sort')" \
	'[["public.rc1","applied",2,0],["public.rc2","applied",0,1]]'
t_eq "rc2 overwritten" "$(t_sql "select v from rc2 where id = 2" "$T")" b
plan "$P" "    OrderLine: { mode: upsert, on_conflict: local_wins }"
review "a protected table"
t_run 0 "protected updates with both the flag and the phrase" apply "${OK[@]}" --allow-protected-overwrite \
	--confirm-overwrite I_UNDERSTAND_PROD_OVERWRITE
t_eq "OrderLine now holds the source's rows" "$(tcks OrderLine)" "$(tcks OrderLine "$S")"
plan "$P" "    OrderNote: { mode: append }" "mode: append"
review "a protected table that sets its mode"
t_run 0 "protected appends when the entry sets mode itself (no override needed)" apply "${OK[@]}"
t_eq "OrderNote now holds the source's rows" "$(tcks OrderNote)" "$(tcks OrderNote "$S")"

# ======================================================================= 3. delete: true
both "create table d1(id int primary key, v text)"
both "create table d2(id int primary key, v text)"
src "insert into d1 select g, 'd' from generate_series(1, 5) g; insert into d2 select g, 'd' from generate_series(1, 5) g"
dst "insert into d1 select g, 'd' from generate_series(1, 8) g; insert into d2 select g, 'd' from generate_series(1, 8) g"
plan "$P" "    d1: { mode: append, delete: true }
    d2: { mode: append }"
review "delete: true"
t_eq "the diff counts the target-only rows" "$(dcounts "$dj" public.d1) / $(dcounts "$dj" public.d2)" "0 0 3 0 / 0 0 3 0"
refused "delete: true without --confirm-delete" "delete $T" "${OK[@]}"
refused "delete: true with a wrong delete phrase" "delete $T" "${OK[@]}" --confirm-delete "delete wrongdb"
refused "delete: true with the apply phrase as the delete phrase" "delete $T" "${OK[@]}" --confirm-delete "apply $T"
t_run 0 "delete: true with the phrase (text output)" apply "${OK[@]}" --confirm-delete "delete $T"
t_match "d1's line" "$out" '^  public\.d1: applied \(0 inserted, 0 updated, 3 deleted\)$'
t_match "d2's line" "$out" '^  public\.d2: applied \(0 inserted, 0 updated, 0 deleted\)$'
t_eq "the last line" "$(printf '%s\n' "$out" | tail -n 1)" "sync apply: done"
t_eq "d1: exactly the target-only rows deleted" "$(t_sql "select string_agg(id::text, ',' order by id) from d1" "$T")" "1,2,3,4,5"
t_eq "d2 (no delete): the target-only rows stay" "$(t_sql "select string_agg(id::text, ',' order by id) from d2" "$T")" "1,2,3,4,5,6,7,8"

# ======================================================================= 4. rows changed after the review
for t in ch1 ch2 ch3; do
	both "create table $t(id int primary key, v text)"
	src "insert into $t select g, 'new' || g from generate_series(1, 5) g"
	dst "insert into $t select g, 'old' || g from generate_series(1, 4) g"
done
plan "$P" "    ch1: { mode: upsert, on_conflict: local_wins }
    ch2: { mode: upsert, on_conflict: local_wins }
    ch3: { mode: upsert, on_conflict: local_wins }"
review "three tables"
dst "update ch2 set v = 'changed after the review' where id = 3"
ch2_before=$(tcks ch2)
ch3_before=$(tcks ch3)
t_run 3 "a row of the second table changed after the review: aborted" apply "${OK[@]}" --json
c=$out
t_match "says the table changed since the review" "$(why)" "public\.ch2.*changed since the review|changed since the review.*public\.ch2"
t_match "and to run the diff again" "$(why)" "sync diff .*--out"
t_eq "JSON states: applied, failed, not reached" \
	"$(printf '%s' "$c" | jq -c '[.tables[] | [.table, .state]]')" \
	'[["public.ch1","applied"],["public.ch2","failed"],["public.ch3","not reached"]]'
t_eq "JSON: not refused (the first table was written), not ok, exit 3" "$(printf '%s' "$c" | jq -c '[.refused, .ok, .exit_code]')" '[false,false,3]'
t_match "JSON: the failed table says why" "$(jtab "$c" public.ch2 .error)" "review"
t_eq "JSON: the failed table counts nothing" "$(jtab "$c" public.ch2 '[.inserted, .updated, .deleted]')" '[0,0,0]'
t_eq "the first table was applied" "$(tcks ch1)" "$(tcks ch1 "$S")"
t_eq "the second was rolled back" "$(tcks ch2)" "$ch2_before"
t_eq "the third was not touched" "$(tcks ch3)" "$ch3_before"
J=$(journal_of "$c")
t_eq "journal: ch2 started and failed, ch3 never started" "$(steps "$J" | grep -E 'public\.ch[23]' | tr '\n' ';')" \
	"public.ch2 started;public.ch2 failed;"

# A key the review inserts appears in the target; a row the review updates is deleted.
for t in chi chd; do
	both "create table $t(id int primary key, v text)"
	src "insert into $t select g, 'new' from generate_series(1, 5) g"
	dst "insert into $t select g, 'old' from generate_series(1, 3) g"
	plan "$P" "    $t: { mode: upsert, on_conflict: local_wins }"
	review "$t"
	if [ "$t" = chi ]; then
		dst "insert into chi values (5, 'new')"
		desc="a key the review inserts was inserted in the target meanwhile"
	else
		dst "delete from chd where id = 2"
		desc="a row the review overwrites was deleted in the target meanwhile"
	fi
	before=$(cks)
	t_run 3 "$desc: aborted" apply "${OK[@]}"
	t_match "$desc: says so" "$err" "review"
	t_match "$desc: the summary names the table" "$(printf '%s\n' "$out" | tail -n 1)" "^sync apply: stopped at public\.$t; later tables were not touched$"
	t_eq "$desc: nothing written" "$(cks)" "$before"
done

# ======================================================================= 5. a failing table
for t in f1 f2 f3; do
	both "create table $t(id int primary key, v text)"
	src "insert into $t select g, 'v' from generate_series(1, 5) g"
	dst "insert into $t select g, 'v' from generate_series(1, 2) g"
done
src "update f2 set v = 'bad' where id = 4"
dst "alter table f2 add constraint f2_no_bad check (v <> 'bad')"
plan "$P" "    f1: { mode: append }
    f2: { mode: append }
    f3: { mode: append }"
review "a table the target will refuse"
f2_before=$(tcks f2)
f3_before=$(tcks f3)
t_run 3 "a CHECK violation in the second table stops the apply" apply "${OK[@]}"
t_match "f1's line" "$out" '^  public\.f1: applied \(3 inserted, 0 updated, 0 deleted\)$'
t_match "f2's line says why" "$out" '^  public\.f2: failed and rolled back: .*f2_no_bad'
t_match "f3's line" "$out" '^  public\.f3: not reached$'
t_eq "the last line" "$(printf '%s\n' "$out" | tail -n 1)" "sync apply: stopped at public.f2; later tables were not touched"
t_eq "f1 applied" "$(tcks f1)" "$(tcks f1 "$S")"
t_eq "f2 unchanged (rolled back)" "$(tcks f2)" "$f2_before"
t_eq "f3 untouched" "$(tcks f3)" "$f3_before"
review "the failing table again"
t_run 3 "again, as JSON" apply "${OK[@]}" --json
t_eq "JSON states" "$(printf '%s' "$out" | jq -c '[.tables[] | [.table, .state, .inserted]]')" \
	'[["public.f1","applied",0],["public.f2","failed",0],["public.f3","not reached",0]]'
t_match "JSON: f2's error names the constraint" "$(jtab "$out" public.f2 .error)" f2_no_bad
t_match "JSON: the error member" "$(printf '%s' "$out" | jq -r '.error.message')" "f2"
t_eq "f2 still unchanged" "$(tcks f2)" "$f2_before"

# ======================================================================= 6. kill -9 mid-apply
for t in k_pre k_slow k_post; do
	both "create table $t(id int primary key, v text)"
done
src "insert into k_pre select g, 'v' from generate_series(1, 10) g;
	insert into k_slow select g, 'v' from generate_series(1, 300) g;
	insert into k_post select g, 'v' from generate_series(1, 10) g"
dst "create function slow_row() returns trigger language plpgsql as \$\$ begin perform pg_sleep(0.05); return new; end \$\$;
	create trigger slow before insert on k_slow for each row execute function slow_row()"
# The server notices a vanished client while a statement runs (rather than at its end).
t_sql_do "alter database \"$T\" set client_connection_check_interval = '200ms'" postgres
plan "$P" "    k_pre: { mode: append }
    k_slow: { mode: append }
    k_post: { mode: append }"
review "a slow table"
ls "$runs" >"$T_TMP/runs.before" 2>/dev/null
slow_before=$(tcks k_slow)
post_before=$(tcks k_post)
"$PGRUNBOOK" sync apply --plan "$P" --review "$R" "${OK[@]}" >"$T_TMP/kill.out" 2>"$T_TMP/kill.err" &
ap=$!
bg_pids+=("$ap")
kj=""
for _ in $(seq 200); do
	kr=$(ls "$runs" 2>/dev/null | grep -vxF -f "$T_TMP/runs.before" | head -n 1)
	[ -n "$kr" ] && kj="$runs/$kr/journal.jsonl"
	[ -n "$kj" ] && [ "$(steps "$kj" 2>/dev/null | grep -c '^public\.k_slow started$')" = 1 ] &&
		[ "$(t_sql "select count(*) from pg_stat_activity where datname = '$T' and wait_event = 'PgSleep'" "$T")" = 1 ] && break
	sleep 0.1
done
spid=$(t_sql "select pid from pg_stat_activity where datname = '$T' and wait_event = 'PgSleep'" "$T")
t_match "the slow table's insert is running (journal: started; the server: in the trigger)" "$spid" '^[0-9]+$'
kill -9 "$ap"
wait "$ap" 2>/dev/null
t_eq "pgrunbook was killed" "$?" 137
for _ in $(seq 300); do
	[ "$(t_sql "select count(*) from pg_stat_activity where datname = '$T' and pid <> pg_backend_pid() and backend_type = 'client backend'" "$T")" = 0 ] && break
	sleep 0.1
done
t_eq "its sessions ended on the server" \
	"$(t_sql "select count(*) from pg_stat_activity where datname = '$T' and pid <> pg_backend_pid() and backend_type = 'client backend'" "$T")" 0
t_eq "the slow table is unchanged: its transaction rolled back" "$(tcks k_slow)" "$slow_before"
t_eq "the table before it was applied" "$(tcks k_pre)" "$(tcks k_pre "$S")"
t_eq "the table after it was not touched" "$(tcks k_post)" "$post_before"
t_eq "the advisory lock went with the session" "$(t_sql "select count(*) from pg_locks where locktype = 'advisory' and objid = 72707369" "$T")" 0
t_eq "journal: k_pre applied, k_slow started without an outcome, k_post never started" \
	"$(steps "$kj" | tr '\n' ';')" "public.k_pre started;public.k_pre applied;public.k_slow started;"
t_eq "journal: no run_finished" "$(jq -c 'select(.type == "run_finished")' "$kj" | wc -l)" 0
t_run 0 "pgrunbook runs" "$PGRUNBOOK" runs
t_match "lists the run as interrupted" "$out" "^$kr .* interrupted\$"
t_sql_do "alter database \"$T\" reset client_connection_check_interval" postgres
dst "drop trigger slow on k_slow"
review "after the kill"
t_run 0 "a new review applies the rest" apply "${OK[@]}" --json
t_eq "k_slow and k_post inserted now" "$(printf '%s' "$out" | jq -c '[.tables[] | [.table, .inserted]]')" \
	'[["public.k_pre",0],["public.k_slow",300],["public.k_post",10]]'

# ============================================= 6b. the connection lost during COMMIT: unknown
# A deferred constraint trigger ends its own session at COMMIT: the client sees the connection
# drop during COMMIT and cannot know whether the table was written; the journal says "unknown"
# (a rollback counts it as written), never "failed".
both "create table c_lost(id int primary key, v text)"
src "insert into c_lost select g, 'v' from generate_series(1, 3) g"
dst "create function die_at_commit() returns trigger language plpgsql as \$\$ begin
		perform pg_terminate_backend(pg_backend_pid()); perform pg_sleep(5); return null; end \$\$;
	create constraint trigger die after insert on c_lost deferrable initially deferred
		for each row execute function die_at_commit()"
plan "$P" "    c_lost: { mode: append }"
review "a table whose COMMIT loses the connection"
ls "$runs" >"$T_TMP/runs.before" 2>/dev/null
t_run 2 "the connection lost during COMMIT: exit 2 (the connection failed)" apply "${OK[@]}"
t_match "says whether it was written is unknown" "$out$err" "whether public\\.c_lost was written is unknown"
cr=$(ls "$runs" | grep -vxF -f "$T_TMP/runs.before" | head -n 1)
t_eq "journal: started, then unknown (not failed)" \
	"$(jq -r 'select(.type == "step" and .data.kind == "sync_table" and .data.table == "public.c_lost") | .data.state' \
	   "$runs/$cr/journal.jsonl" | tr '\n' ' ')" "started unknown "
dst "drop table c_lost; drop function die_at_commit()"

# ======================================================================= 7. secrets
t_eq "no journal mentions a password" "$(grep -rli password "$runs" | wc -l)" 0
t_eq "no review mentions one" "$(grep -li password "$W"/review* | wc -l)" 0

t_done
