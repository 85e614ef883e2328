#!/usr/bin/env bash
# sync_demo.sh: the seed 001 release on `pgrunbook demo`, end to end: migrate deploy, sync diff --out,
# the counts against SQL, a refused apply (a conflict), the conflict resolved, sync apply, and the
# target checked table by table in SQL (synced rows equal, prod-only rows kept, the rest untouched).
. "$top_srcdir/tests/lib.sh"

D=$T_TMP/demo
cleanup() {
	"$PGRUNBOOK" demo --stop --dir "$D" >/dev/null 2>&1
}
trap cleanup EXIT

t_run 0 "the demo starts (200 orders)" "$PGRUNBOOK" demo --dir "$D" --rows 200 --no-wizard
P=$D/plan/demo.yaml
[ -f "$P" ] || { t_fail "the demo wrote its plan" "$out"; t_done; }
# Everything below runs against the demo's cluster, not the suite's.
PGPORT=$(sed -n 's/.*"port": *\([0-9]*\).*/\1/p' "$D/cluster.json")
PGHOST=$(sed -n 's/.*"sockdir": *"\([^"]*\)".*/\1/p' "$D/cluster.json")
PGUSER=$(sed -n 's/.*"superuser": *"\([^"]*\)".*/\1/p' "$D/cluster.json")
export PGHOST PGPORT PGUSER
SRC=$(sed -n 's/^ *dev: *{ *conninfo: *"[^"]*dbname=\([A-Za-z_]*\)".*/\1/p' "$P")
TGT=$(sed -n 's/^ *prod: *{ *conninfo: *"[^"]*dbname=\([A-Za-z_]*\)".*/\1/p' "$P")
t_eq "the plan syncs shop_dev into shop_prod" "$SRC $TGT" "shop_dev shop_prod"
CMP=sync_cmp
t_sql_do "create database $CMP" postgres

# --- the plan's sync tables, read from the plan file: NAME MODE ON_CONFLICT KEY COLUMNS ---
# (KEY and COLUMNS comma-separated; no key: the primary key; no columns: every column)
default_oc=$(sed -n 's/^  defaults: *{.*on_conflict: *\([a-z_]*\).*/\1/p' "$P")
TABLES=()
declare -A MODE OC KEY COLS
in_tables=0
while IFS= read -r line; do
	case $line in
	sync:*) in_tables=1; continue ;;
	[a-z]*) in_tables=0; continue ;;
	esac
	[ "$in_tables" = 1 ] || continue
	[[ $line =~ ^\ \ \ \ ([A-Za-z_][A-Za-z0-9_]*):\ *\{(.*)\}\ *$ ]] || continue
	name=${BASH_REMATCH[1]} body=${BASH_REMATCH[2]}
	TABLES+=("$name")
	[[ $body =~ mode:\ *([a-z_]+) ]] && MODE[$name]=${BASH_REMATCH[1]} || MODE[$name]=skip
	[[ $body =~ on_conflict:\ *([a-z_]+) ]] && OC[$name]=${BASH_REMATCH[1]} || OC[$name]=$default_oc
	[[ $body =~ key:\ *\[([^]]*)\] ]] && KEY[$name]=${BASH_REMATCH[1]// /} || KEY[$name]=
	[[ $body =~ columns:\ *\[([^]]*)\] ]] && COLS[$name]=${BASH_REMATCH[1]// /} || COLS[$name]=
done <"$P"
t_match "the plan lists sync tables" "${#TABLES[@]}" '^[1-9][0-9]*$'
t_match "one of them is error_on_conflict" "${OC[*]}" 'error_on_conflict'
t_match "one of them is local_wins" "${OC[*]}" 'local_wins'

dq() {  # SQL DB
	t_sql "$1" "$2"
}
qc() {  # ALIAS "a,b": ALIAS."a", ALIAS."b"
	local IFS=, c out=""
	for c in $2; do out="$out${out:+, }$1.\"$c\""; done
	printf '%s' "$out"
}
pgq() {  # "a,b": "a", "b"
	local IFS=, c out=""
	for c in $1; do out="$out${out:+, }\"$c\""; done
	printf '%s' "$out"
}

# --- migrate deploy: the sync tables need the new schema (IngredientPackaging, Product.isActive) ---
pending=$("$PGRUNBOOK" migrate status --plan "$P" --json | jq -r '.migrations[] | select(.state == "pending") | .name')
t_match "shop_prod has pending migrations" "$pending" '.'
dangerous=$("$PGRUNBOOK" migrate lint --plan "$P" --json |
	jq -r --arg p "$pending" '[.migrations[] | select(.migration as $m | $p | split("\n") | index($m)) | select(.class == "dangerous")] | length')
deploy=("$PGRUNBOOK" migrate deploy --plan "$P" --waive-backup "waive-backup $TGT")
[ "$dangerous" = 0 ] || deploy+=(--confirm "deploy $TGT")
t_run 0 "migrate deploy ($dangerous dangerous migrations)" "${deploy[@]}"
t_run 0 "migrate status: up to date" "$PGRUNBOOK" migrate status --plan "$P"

# Keys and columns the plan leaves out: the primary key, every column of the source.
for tb in "${TABLES[@]}"; do
	[ -n "${KEY[$tb]}" ] || KEY[$tb]=$(dq "select string_agg(a.attname, ',' order by array_position(i.indkey::int2[], a.attnum))
		from pg_index i join pg_attribute a on a.attrelid = i.indrelid and a.attnum = any(i.indkey)
		where i.indrelid = 'public.\"$tb\"'::regclass and i.indisprimary" "$SRC")
	[ -n "${COLS[$tb]}" ] || COLS[$tb]=$(dq "select string_agg(attname, ',' order by attnum) from pg_attribute
		where attrelid = 'public.\"$tb\"'::regclass and attnum > 0 and not attisdropped and attgenerated = ''" "$SRC")
done

snap() {  # DB SCHEMA: every sync table of DB, all its columns, copied into $CMP.SCHEMA
	local tb cols
	t_sql_do "drop schema if exists $2 cascade; create schema $2" "$CMP"
	for tb in "${TABLES[@]}"; do
		cols=$(dq "select string_agg(format('%I %s', attname, format_type(atttypid, atttypmod)), ', ' order by attnum)
			from pg_attribute where attrelid = 'public.\"$tb\"'::regclass and attnum > 0 and not attisdropped" "$1")
		t_sql_do "create table $2.\"$tb\" ($cols)" "$CMP"
		"$PSQL" -X -q -v ON_ERROR_STOP=1 -d "$1" -c "copy public.\"$tb\" to stdout" |
			"$PSQL" -X -q -v ON_ERROR_STOP=1 -d "$CMP" -c "copy $2.\"$tb\" from stdin" ||
			t_fail "copy $tb from $1 into $CMP.$2"
	done
}
# The expected counts from the snapshots src and dst0:
# "to_insert to_update to_delete conflicts differs_kept unchanged".
expect() {  # TABLE
	local tb=$1 on sc dc r ins del diff same
	on="($(qc s "${KEY[$tb]}")) = ($(qc d "${KEY[$tb]}"))"
	sc=$(qc s "${COLS[$tb]}")
	dc=$(qc d "${COLS[$tb]}")
	r=$(dq "select (select count(*) from src.\"$tb\" s where not exists (select from dst0.\"$tb\" d where $on))
		|| ' ' || (select count(*) from dst0.\"$tb\" d where not exists (select from src.\"$tb\" s where $on))
		|| ' ' || (select count(*) from src.\"$tb\" s join dst0.\"$tb\" d on $on where ($sc) is distinct from ($dc))
		|| ' ' || (select count(*) from src.\"$tb\" s join dst0.\"$tb\" d on $on where ($sc) is not distinct from ($dc))" "$CMP")
	read -r ins del diff same <<<"$r"
	case "${MODE[$tb]} ${OC[$tb]}" in
	"upsert local_wins") echo "$ins $diff $del 0 0 $same" ;;
	"upsert error_on_conflict") echo "$ins 0 $del $diff 0 $same" ;;
	*) echo "$ins 0 $del 0 $diff $same" ;;
	esac
}
counts() {  # JSON TABLE
	printf '%s' "$1" | jq -r --arg t "public.$2" '.tables[] | select(.table == $t) | .counts |
		"\(.to_insert) \(.to_update) \(.to_delete) \(.conflicts) \(.differs_kept) \(.unchanged)"'
}
others_sum() {  # every table of the target that is not synced: "table md5" lines
	local tb list
	list=$(dq "select tablename from pg_tables where schemaname = 'public' order by tablename" "$TGT")
	for tb in $list; do
		case " ${TABLES[*]} " in *" $tb "*) continue ;; esac
		echo "$tb $(dq "select md5(coalesce(string_agg(t::text, E'\n' order by t::text), '')) from public.\"$tb\" t" "$TGT")"
	done
}
all_sum() {  # every table of the target
	local tb
	for tb in $(dq "select tablename from pg_tables where schemaname = 'public' order by tablename" "$TGT"); do
		echo "$tb $(dq "select md5(coalesce(string_agg(t::text, E'\n' order by t::text), '')) from public.\"$tb\" t" "$TGT")"
	done
}

snap "$SRC" src
snap "$TGT" dst0
# --- rows only prod has: the data's own, or one made here in a local_wins table (it must survive) ---
nprod=0
for tb in "${TABLES[@]}"; do
	nprod=$((nprod + $(expect "$tb" | cut -d' ' -f3)))
done
if [ "$nprod" = 0 ]; then
	for tb in "${TABLES[@]}"; do
		k=${KEY[$tb]}
		[ "${OC[$tb]}" = local_wins ] && [ "${k/,/}" = "$k" ] &&
			[ "$(dq "select format_type(atttypid, atttypmod) from pg_attribute where attrelid = 'public.\"$tb\"'::regclass and attname = '$k'" "$TGT")" = text ] &&
			break
	done
	t_sql_do "insert into public.\"$tb\" select (jsonb_populate_record(null::public.\"$tb\",
		to_jsonb(t) || jsonb_build_object('$k', t.\"$k\" || '-prod-only'))).* from public.\"$tb\" t order by t.\"$k\" limit 1" "$TGT"
	snap "$TGT" dst0
	t_eq "$tb now has a row only prod has" "$(expect "$tb" | cut -d' ' -f3)" "1"
else
	t_ok "the target has $nprod rows the source lacks"
fi

# --- the error_on_conflict table: a conflict, the data's own or one made here ---
for tb in "${TABLES[@]}"; do
	[ "${OC[$tb]}" = error_on_conflict ] && [ "${MODE[$tb]}" = upsert ] && CT=$tb
done
natural=$(expect "$CT" | cut -d' ' -f4)
if [ "$natural" = 0 ]; then
	# The demo's recipes agree: prod changes one quantity the two sides share, as an operator might.
	on="($(qc s "${KEY[$CT]}")) = ($(qc d "${KEY[$CT]}"))"
	where=$(dq "select string_agg(format('%I = %L', k, (to_jsonb(d) ->> k)), ' and ')
		from (select d.* from dst0.\"$CT\" d join src.\"$CT\" s on $on order by 1, 2 limit 1) d,
		unnest(string_to_array('${KEY[$CT]}', ',')) k" "$CMP")
	t_match "a row both sides share" "$where" '='
	t_sql_do "update public.\"$CT\" set quantity = quantity + 1 where $where" "$TGT"
	snap "$TGT" dst0
	t_eq "$CT now holds one conflict" "$(expect "$CT" | cut -d' ' -f4)" "1"
else
	t_ok "$CT holds $natural conflicts of its own"
fi

# --- sync diff --out: the counts are SQL's ---
R1=$T_TMP/review1
t_run 0 "sync diff --out (conflicts do not fail the diff)" "$PGRUNBOOK" sync diff --plan "$P" --out "$R1" --json
j=$out
t_eq "the JSON names the review file" "$(printf '%s' "$j" | jq -r '.review_file')" "$R1"
t_eq "the review file is mode 0600" "$(stat -c %a "$R1" 2>&1)" "600"
t_eq "the diff covers the plan's tables" "$(printf '%s' "$j" | jq -r '[.tables[].table] | sort | join(" ")')" \
	"$(printf 'public.%s\n' "${TABLES[@]}" | LC_ALL=C sort | tr '\n' ' ' | sed 's/ $//')"
for tb in "${TABLES[@]}"; do
	t_eq "$tb: mode, on_conflict, key as in the plan" \
		"$(printf '%s' "$j" | jq -r --arg t "public.$tb" '.tables[] | select(.table == $t) | "\(.mode) \(.on_conflict) \(.key | join(","))"')" \
		"${MODE[$tb]} ${OC[$tb]} ${KEY[$tb]}"
	t_eq "$tb: counts (to_insert to_update to_delete conflicts differs_kept unchanged) = SQL's" \
		"$(counts "$j" "$tb")" "$(expect "$tb")"
done
t_match "some rows to insert" "$(printf '%s' "$j" | jq '[.tables[].counts.to_insert] | add')" '^[1-9]'
t_match "some rows to update" "$(printf '%s' "$j" | jq '[.tables[].counts.to_update] | add')" '^[1-9]'
t_match "the protected tables are skipped" "$(printf '%s' "$j" | jq -r '.skipped[].table')" 'public\.StripeEvent'
t_match "rows only prod has are reported" "$(printf '%s' "$j" | jq '[.tables[].counts.to_delete] | add')" '^[1-9]'

# --- the apply refuses while the review holds a conflict, and writes nothing ---
before=$(all_sum)
t_run 3 "sync apply refuses a review with a conflict" "$PGRUNBOOK" sync apply --plan "$P" --review "$R1" \
	--confirm "apply $TGT" --waive-backup "waive-backup $TGT"
t_match "it names the conflict" "$out$err" "$CT"
t_match "it says nothing was written" "$out" '^sync apply: refused; nothing was written$'
t_eq "no table of the target changed" "$(all_sum)" "$before"

# Resolve: the target's conflicting rows take the source's values (a person decided so).
on="($(qc s "${KEY[$CT]}")) = ($(qc d "${KEY[$CT]}"))"
fix=$(dq "select string_agg(format('update public.%I set %s where %s;', '$CT',
		(select string_agg(format('%I = %L', c, to_jsonb(s) ->> c), ', ') from unnest(string_to_array('${COLS[$CT]}', ',')) c),
		(select string_agg(format('%I = %L', k, to_jsonb(s) ->> k), ' and ') from unnest(string_to_array('${KEY[$CT]}', ',')) k)), ' ')
	from src.\"$CT\" s join dst0.\"$CT\" d on $on where ($(qc s "${COLS[$CT]}")) is distinct from ($(qc d "${COLS[$CT]}"))" "$CMP")
t_match "the statements that resolve the conflicts" "$fix" '^update '
t_sql_do "$fix" "$TGT"
snap "$TGT" dst0
t_eq "$CT: no conflict left" "$(expect "$CT" | cut -d' ' -f4)" "0"

R2=$T_TMP/review2
t_run 0 "sync diff --out again" "$PGRUNBOOK" sync diff --plan "$P" --out "$R2" --json
j=$out
for tb in "${TABLES[@]}"; do
	t_eq "$tb: counts = SQL's (after the resolution)" "$(counts "$j" "$tb")" "$(expect "$tb")"
done
t_run 3 "the old review (with the conflict) is still refused" "$PGRUNBOOK" sync apply --plan "$P" --review "$R1" \
	--confirm "apply $TGT" --waive-backup "waive-backup $TGT"

# --- phrases ---
before=$(all_sum)
t_run 3 "sync apply without --confirm is refused" "$PGRUNBOOK" sync apply --plan "$P" --review "$R2" \
	--waive-backup "waive-backup $TGT"
t_run 3 "sync apply with the source's name in the phrase is refused" "$PGRUNBOOK" sync apply --plan "$P" --review "$R2" \
	--confirm "apply $SRC" --waive-backup "waive-backup $TGT"
t_eq "the refusals wrote nothing" "$(all_sum)" "$before"

# --- the apply ---
others_before=$(others_sum)
t_match "the target has tables the plan does not sync (Order*, StripeEvent, ...)" "$others_before" 'StripeEvent [0-9a-f]{32}'
t_run 0 "sync apply" "$PGRUNBOOK" sync apply --plan "$P" --review "$R2" --confirm "apply $TGT" \
	--waive-backup "waive-backup $TGT" --json
a=$out
t_eq "ok" "$(printf '%s' "$a" | jq -r '"\(.ok) \(.refused) \(.exit_code)"')" "true false 0"
t_eq "every table applied" "$(printf '%s' "$a" | jq -r '[.tables[].state] | unique | join(",")')" "applied"
order=" $(printf '%s' "$a" | jq -r '[.tables[].table | sub("^public\\."; "")] | join(" ")') "
pos() { local pre=${order%% "$1" *}; [ "$pre" = "$order" ] && echo 999 || echo "${#pre}"; }
fk=$(dq "select c.conrelid::regclass::text || ' ' || c.confrelid::regclass::text from pg_constraint c
	where c.contype = 'f' and c.conrelid <> c.confrelid" "$TGT" | tr -d '"')
nfk=0
while read -r child parent; do
	case " ${TABLES[*]} " in *" $child "*) ;; *) continue ;; esac
	case " ${TABLES[*]} " in *" $parent "*) ;; *) continue ;; esac
	nfk=$((nfk + 1))
	if [ "$(pos "$parent")" -lt "$(pos "$child")" ]; then
		t_ok "$parent is applied before $child (foreign key)"
	else
		t_fail "$parent is applied before $child (foreign key)" "order:$order"
	fi
done <<<"$fk"
t_match "the synced tables have foreign keys between them" "$nfk" '^[1-9]'

snap "$TGT" dst1
for tb in "${TABLES[@]}"; do
	read -r ins upd del _ <<<"$(expect "$tb")"
	t_eq "$tb: inserted, updated, deleted as reviewed" \
		"$(printf '%s' "$a" | jq -r --arg t "public.$tb" '.tables[] | select(.table == $t) | "\(.inserted) \(.updated) \(.deleted)"')" \
		"$ins $upd 0"
	on0="($(qc s "${KEY[$tb]}")) = ($(qc d "${KEY[$tb]}"))"
	sc=$(qc s "${COLS[$tb]}")
	t_eq "$tb: the target has its rows and the new ones" \
		"$(dq "select count(*) from dst1.\"$tb\"" "$CMP")" "$(dq "select count(*) + $ins from dst0.\"$tb\"" "$CMP")"
	t_eq "$tb: every new row is in the target as in the source" \
		"$(dq "select count(*) from src.\"$tb\" s where not exists (select from dst0.\"$tb\" d where $on0)
			and not exists (select from dst1.\"$tb\" d where ($sc) is not distinct from ($(qc d "${COLS[$tb]}")))" "$CMP")" "0"
	t_eq "$tb: the prod-only rows are kept, unchanged" \
		"$(dq "select count(*) from (select d.* from dst0.\"$tb\" d where not exists (select from src.\"$tb\" s where $on0)
			except all select * from dst1.\"$tb\") x" "$CMP")" "0"
	if [ "${MODE[$tb]} ${OC[$tb]}" = "upsert local_wins" ]; then
		t_eq "$tb (local_wins): every source row is in the target, equal" \
			"$(dq "select count(*) from src.\"$tb\" s where not exists
				(select from dst1.\"$tb\" d where ($sc) is not distinct from ($(qc d "${COLS[$tb]}")))" "$CMP")" "0"
	else
		t_eq "$tb (${MODE[$tb]}, ${OC[$tb]}): the rows the target had are unchanged" \
			"$(dq "select count(*) from (select * from dst0.\"$tb\" except all select * from dst1.\"$tb\") x" "$CMP")" "0"
	fi
done
# Columns the plan leaves out (Unit's id) come from the target: its serial continues.
for tb in "${TABLES[@]}"; do
	seqs=$(dq "select s.oid::regclass::text || '|' || a.attname from pg_depend dep join pg_class s on s.oid = dep.objid and s.relkind = 'S'
		join pg_attribute a on a.attrelid = dep.refobjid and a.attnum = dep.refobjsubid
		where dep.refobjid = 'public.\"$tb\"'::regclass and dep.deptype in ('a', 'i')" "$TGT")
	for sq in $seqs; do
		seq=${sq%%|*} col=${sq#*|}
		t_eq "$tb: the sequence $seq is past max($col)" \
			"$(dq "select coalesce(pg_sequence_last_value('$seq'), 0) >= coalesce(max(\"$col\"), 0) from public.\"$tb\"" "$TGT")" "t"
	done
done
t_eq "the tables the plan does not sync (protected ones included) are untouched" "$(others_sum)" "$others_before"

# --- the journal ---
run=$(printf '%s' "$a" | jq -r '.run_id')
J=$XDG_STATE_HOME/pgrunbook/runs/$run/journal.jsonl
t_eq "the journal has an applied step per table" \
	"$(jq -r 'select(.type == "step" and .data.kind == "sync_table" and .data.state == "applied") | .data.table' "$J" 2>&1 | LC_ALL=C sort | tr '\n' ' ')" \
	"$(printf 'public.%s\n' "${TABLES[@]}" | LC_ALL=C sort | tr '\n' ' ')"

# --- the report: what was applied, and which tables were skipped (default deny) ---
t_run 0 "the apply's report" "$PGRUNBOOK" report "$run"
report=$out
t_match "the report has a Sync section" "$report" '^## Sync$'
for tb in "${TABLES[@]}"; do
	t_match "the report shows $tb applied" "$report" "^\| [^|]* \| public\.$tb \| applied: "
done
skipped_want=$(printf '%s' "$j" | jq -r '.skipped[] | select(.reason == "not in the plan") | .table' | LC_ALL=C sort | tr '\n' ' ')
t_match "the diff named tables it skipped" "$skipped_want" 'public\.'
for sk in $skipped_want; do
	t_match "the report names $sk as skipped" "$report" "^Skipped by the applied review: .*$(printf '%s' "$sk" | sed 's/[.]/\\./g') \(not in the plan\)"
done

# --- nothing left ---
t_run 3 "the same review again: the target changed since (refused)" "$PGRUNBOOK" sync apply --plan "$P" --review "$R2" \
	--confirm "apply $TGT" --waive-backup "waive-backup $TGT"
t_eq "which wrote nothing" "$(others_sum)" "$others_before"
t_run 0 "a second diff" "$PGRUNBOOK" sync diff --plan "$P" --json
for tb in "${TABLES[@]}"; do
	t_eq "$tb: nothing left to insert, update, or resolve" \
		"$(printf '%s' "$out" | jq -r --arg t "public.$tb" '.tables[] | select(.table == $t) | .counts | "\(.to_insert) \(.to_update) \(.conflicts)"')" \
		"0 0 0"
done

t_done
