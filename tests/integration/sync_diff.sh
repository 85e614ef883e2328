#!/usr/bin/env bash
# sync_diff.sh: `pgrunbook sync diff` against two real databases (source and target): the issue's
# fixture with counts computed independently in SQL, value edge cases (NULL vs '', float -0 / NaN /
# Infinity, time zones, numeric scale, bytea, jsonb, arrays, escapes), composite / collated /
# numeric / date keys, generated columns, and the refusals (duplicate or NULL key, type mismatch,
# no key, a column on one side only).
. "$top_srcdir/tests/lib.sh"

S="${T_DB}_src"
T="${T_DB}_dst"
N=${SYNC_TEST_ROWS:-20000}

# Both databases with an ICU collation, so that the default text order differs from byte order.
have_icu=$(t_sql "select count(*) from pg_catalog.pg_collation where collname = 'en-x-icu'" postgres)
if [ "$have_icu" = 1 ]; then
	for db in "$S" "$T"; do
		t_sql_do "create database \"$db\" template template0 locale_provider icu icu_locale 'en-US' locale 'C'" postgres
	done
	t_eq "the databases sort text by ICU rules, not by bytes" \
		"$(t_sql "select string_agg(x, ',' order by x) from (values ('a'), ('B'), ('b'), ('_')) v(x)" "$S")" "_,a,b,B"
else
	t_fail "this server has no ICU collations (en-x-icu): the collation case cannot be tested"
	t_createdb "$S"
	t_createdb "$T"
fi

both() {  # SQL: runs SQL in both databases
	t_sql_do "$1" "$S" && t_sql_do "$1" "$T"
}

plan() {  # FILE TABLES-YAML
	cat >"$1" <<EOF
name: sync diff test
environments:
  dev:  { conninfo: "host=$PGHOST port=$PGPORT dbname=$S" }
  prod: { conninfo: "host=$PGHOST port=$PGPORT dbname=$T" }
source: dev
target: prod
sync:
  protected: ["Order*"]
  tables:
$2
EOF
}

counts() {  # JSON TABLE: "to_insert to_update to_delete conflicts differs_kept unchanged"
	printf '%s' "$1" | jq -r --arg t "$2" '.tables[] | select(.table == $t) | .counts |
		"\(.to_insert) \(.to_update) \(.to_delete) \(.conflicts) \(.differs_kept) \(.unchanged)"'
}

# ---------------------------------------------------------------- the issue's fixture
both "create table t(id bigint primary key, a int, b text, c float8, d timestamptz, e bool, f numeric(12,2))"
t_sql_do "select setseed(0.25); insert into t select g, (random() * 1e6)::int, md5(g::text),
	random() * 1000, timestamptz '2026-01-01' + random() * interval '300 days', random() < 0.5,
	round((random() * 10000)::numeric, 2) from generate_series(1, $N) g" "$S"
psql -X -q -d "$S" -c "copy t to stdout" | psql -X -q -d "$T" -c "copy t from stdin"
# 1 % updated (one to three columns each, some to NULL), 0.5 % deleted, 0.5 % new.
t_sql_do "select setseed(0.5);
	create temp table pick as select id, random() r, random() s from t;
	update t set a = a + 1 from pick where pick.id = t.id and pick.r < 0.0025;
	update t set b = case when pick.s < 0.5 then null else b || 'x' end, e = not e
		from pick where pick.id = t.id and pick.r >= 0.0025 and pick.r < 0.005;
	update t set c = c * 2, d = d + interval '1 second' from pick where pick.id = t.id and pick.r >= 0.005 and pick.r < 0.0075;
	update t set f = f + 0.01 from pick where pick.id = t.id and pick.r >= 0.0075 and pick.r < 0.01;
	delete from t using pick where pick.id = t.id and pick.r >= 0.01 and pick.r < 0.015;
	insert into t select g, 1, 'new', 0.5, now(), true, 1.5 from generate_series($N + 1, $N + $N / 200) g" "$T"
both "create table other(x int)"

# Expected counts, independently: the target's rows copied next to the source's, joined in SQL.
t_sql_do "create table t_target (like t)" "$S"
psql -X -q -d "$T" -c "copy t to stdout" | psql -X -q -d "$S" -c "copy t_target from stdin"
exp_ins=$(t_sql "select count(*) from t where not exists (select from t_target x where x.id = t.id)" "$S")
exp_del=$(t_sql "select count(*) from t_target x where not exists (select from t where t.id = x.id)" "$S")
exp_diff=$(t_sql "select count(*) from t join t_target x using (id) where (t.a, t.b, t.c, t.d, t.e, t.f) is distinct from (x.a, x.b, x.c, x.d, x.e, x.f)" "$S")
exp_same=$(t_sql "select count(*) from t join t_target x using (id) where (t.a, t.b, t.c, t.d, t.e, t.f) is not distinct from (x.a, x.b, x.c, x.d, x.e, x.f)" "$S")
t_sql_do "drop table t_target" "$S"
t_match "the fixture has updates, deletes and inserts" "$exp_ins $exp_del $exp_diff $exp_same" '^[1-9][0-9]* [1-9][0-9]* [1-9][0-9]* [1-9][0-9]*$'

P=$T_TMP/plan.yaml
plan "$P" "    t: { mode: upsert, on_conflict: local_wins }
    Orders: { mode: skip }"
t_run 0 "sync diff of the fixture (upsert, local_wins)" "$PGRUNBOOK" sync diff --plan "$P" --json
j=$out
t_eq "exact counts: to_insert to_update to_delete conflicts differs_kept unchanged" "$(counts "$j" public.t)" \
	"$exp_ins $exp_diff $exp_del 0 0 $exp_same"
t_eq "rows read on each side" "$(printf '%s' "$j" | jq -r '.tables[0] | "\(.source_rows) \(.target_rows)"')" \
	"$N $((N - exp_ins + exp_del))"
t_eq "key and its origin" "$(printf '%s' "$j" | jq -c '.tables[0] | [.key, .key_from, .mode, .on_conflict, .protected]')" \
	'[["id"],"primary key","upsert","local_wins",false]'
t_eq "skipped: the skip-mode table and the target's tables not in the plan" \
	"$(printf '%s' "$j" | jq -c '.skipped')" \
	'[{"reason":"mode skip","table":"public.Orders"},{"reason":"not in the plan","table":"public.other"}]'
t_match "a digest" "$(printf '%s' "$j" | jq -r '.tables[0].digest')" '^[0-9a-f]{64}$'
digest1=$(printf '%s' "$j" | jq -r '.tables[0].digest')
t_run 0 "the same diff again" "$PGRUNBOOK" sync diff --plan "$P" --json
t_eq "gives the same digest" "$(printf '%s' "$out" | jq -r '.tables[0].digest')" "$digest1"

t_run 0 "human output" "$PGRUNBOOK" sync diff --plan "$P"
t_match "names the table and key" "$out" '^public\.t$'
t_match "to_update" "$out" "^  to_update: +$exp_diff\$"
t_match "unchanged" "$out" "^  unchanged: +$exp_same\$"
t_match "to_delete is reported only" "$out" "^  to_delete: +$exp_del \(reported only"
t_match "lists the skipped tables" "$out" '^  public\.other \(not in the plan\)$'

# The other modes on the same data.
plan "$P" "    t: { mode: upsert, on_conflict: prod_wins }"
t_run 0 "upsert, prod_wins" "$PGRUNBOOK" sync diff --plan "$P" --json
t_eq "differing rows are kept, not conflicts" "$(counts "$out" public.t)" "$exp_ins 0 $exp_del 0 $exp_diff $exp_same"
plan "$P" "    t: { mode: append }"
t_run 0 "append" "$PGRUNBOOK" sync diff --plan "$P" --json
t_eq "append: inserts only, differing rows kept" "$(counts "$out" public.t)" "$exp_ins 0 $exp_del 0 $exp_diff $exp_same"
plan "$P" "    t: { mode: upsert, on_conflict: error_on_conflict }"
t_run 0 "error_on_conflict" "$PGRUNBOOK" sync diff --plan "$P" --json
t_eq "every differing row is a conflict" "$(counts "$out" public.t)" "$exp_ins 0 $exp_del $exp_diff 0 $exp_same"

# Every changed row is listed, with exactly the changed columns; checked against SQL.
plan "$P" "    t: { mode: upsert, on_conflict: local_wins }"
upd_id=$(t_sql "select id from t where a is not null order by id limit 1 offset 0" "$T")
t_sql_do "update t set a = 123456789 where id = $upd_id" "$T"
old_a=$(t_sql "select a from t where id = $upd_id" "$S")
t_run 0 "--rows" "$PGRUNBOOK" sync diff --plan "$P" --rows --json
rows=$out
t_eq "one row per change" "$(printf '%s' "$rows" | jq '.tables[0].rows | length')" \
	"$(printf '%s' "$rows" | jq '.tables[0].counts | .to_insert + .to_update + .to_delete')"
t_eq "the changed column, old (target) and new (source)" \
	"$(printf '%s' "$rows" | jq -c --arg id "$upd_id" '.tables[0].rows[] | select(.key.id == $id) | [.kind, .changed, .target.a, .source.a]')" \
	"[\"update\",[\"a\"],\"123456789\",\"$old_a\"]"
t_eq "rows come in key order" "$(printf '%s' "$rows" | jq '[.tables[0].rows[].key.id | tonumber] | . == sort')" true
t_eq "the digest moved: a target row it depends on changed" \
	"$(test "$(printf '%s' "$rows" | jq -r '.tables[0].digest')" != "$digest1" && echo moved)" moved
t_run 0 "--rows as text" "$PGRUNBOOK" sync diff --plan "$P" --rows --table t
t_match "shows old -> new" "$out" "^      a: '123456789' -> '$old_a'\$"


# ---------------------------------------------------------------- value edge cases
both "create table edge(id int primary key, v text, fl float8, ts timestamptz, n numeric, by bytea, j jsonb, arr int[])"
ins_edge() {  # DB TZ VALUES
	t_sql_do "set timezone = '$2'; insert into edge values $3" "$1"
}
ins_edge "$S" America/New_York "
	(1, null, null, null, null, null, null, null), (2, '', null, null, null, null, null, null),
	(3, null, '-0', null, null, null, null, null), (4, null, 'NaN', null, null, null, null, null),
	(5, null, 'Infinity', null, null, null, null, null), (6, null, 'Infinity', null, null, null, null, null),
	(7, null, null, '2026-01-01 10:00', null, null, null, null), (8, null, null, '2026-01-01 10:00', null, null, null, null),
	(9, null, null, null, 1.0, null, null, null), (10, null, null, null, 1.50, null, null, null),
	(11, null, null, null, null, '\\x00ff', null, null), (12, null, null, null, null, '\\x00', null, null),
	(13, null, null, null, null, null, '{\"a\": 1, \"b\": 2}', null), (14, null, null, null, null, null, '{\"a\": 1}', null),
	(15, null, null, null, null, null, null, '{1,2}'), (16, null, null, null, null, null, null, '{1,NULL}'),
	(17, E'a\\tb\\\\c\\nd', null, null, null, null, null, null), (18, E'a\\tb', null, null, null, null, null, null)"
ins_edge "$T" Europe/Berlin "
	(1, '', null, null, null, null, null, null), (2, '', null, null, null, null, null, null),
	(3, null, '0', null, null, null, null, null), (4, null, 'NaN', null, null, null, null, null),
	(5, null, 'Infinity', null, null, null, null, null), (6, null, '-Infinity', null, null, null, null, null),
	(7, null, null, '2026-01-01 16:00', null, null, null, null), (8, null, null, '2026-01-01 10:00', null, null, null, null),
	(9, null, null, null, 1.00, null, null, null), (10, null, null, null, 1.50, null, null, null),
	(11, null, null, null, null, '\\x00ff', null, null), (12, null, null, null, null, '\\x0000', null, null),
	(13, null, null, null, null, null, '{\"b\": 2, \"a\": 1}', null), (14, null, null, null, null, null, '{\"a\": 1.0}', null),
	(15, null, null, null, null, null, null, '{1,2}'), (16, null, null, null, null, null, null, '{1}'),
	(17, E'a\\tb\\\\c\\nd', null, null, null, null, null, null), (18, 'a b', null, null, null, null, null, null)"
t_eq "the same instant from two time zones is equal in SQL" \
	"$(t_sql "select ts from edge where id = 7" "$S")" "$(t_sql "select ts from edge where id = 7" "$T")"
plan "$P" "    edge: { mode: upsert, on_conflict: local_wins }"
t_run 0 "edge cases" "$PGRUNBOOK" sync diff --plan "$P" --rows --json
e=$out
t_eq "differing: NULL vs '', -0, -Infinity, another instant, scale, bytea, jsonb 1 vs 1.0, array, tab" \
	"$(printf '%s' "$e" | jq -c '[.tables[0].rows[] | .key.id | tonumber]')" '[1,3,6,8,9,12,14,16,18]'
t_eq "counts" "$(counts "$e" public.edge)" "0 9 0 0 0 9"
t_eq "NULL and '' differ" "$(printf '%s' "$e" | jq -c '.tables[0].rows[0] | [.changed, .source.v, .target.v]')" '[["v"],null,""]'
t_eq "-0 is not 0" "$(printf '%s' "$e" | jq -c '.tables[0].rows[1] | [.changed, .source.fl, .target.fl]')" '[["fl"],"-0","0"]'
t_eq "numeric scale counts" "$(printf '%s' "$e" | jq -c '.tables[0].rows[4] | [.changed, .source.n, .target.n]')" '[["n"],"1.0","1.00"]'
t_eq "bytea in hex" "$(printf '%s' "$e" | jq -c '.tables[0].rows[5] | [.source.by, .target.by]')" '["\\x00","\\x0000"]'
t_eq "escapes decoded (tab vs space)" "$(printf '%s' "$e" | jq -c '.tables[0].rows[8] | [.source.v, .target.v]')" '["a\tb","a b"]'
t_eq "timestamps shown in UTC" "$(printf '%s' "$e" | jq -r '.tables[0].rows[3] | "\(.source.ts) \(.target.ts)"')" \
	"2026-01-01 15:00:00+00 2026-01-01 09:00:00+00"

# ---------------------------------------------------------------- keys
both "create table ck(a int, b text, v int, primary key (a, b))"
t_sql_do "insert into ck values (1, 'x', 1), (1, 'y', 1), (2, 'a', 1), (10, 'a', 1)" "$S"
t_sql_do "insert into ck values (1, 'y', 2), (2, 'a', 1), (2, 'b', 1), (10, 'a', 1)" "$T"
both "create table tk(k text primary key, v int)"
t_sql_do "insert into tk values ('a', 1), ('B', 1), ('b', 1), ('é', 1), ('Z', 1), ('_', 1), ('a b', 1), ('ab', 1)" "$S"
t_sql_do "insert into tk values ('a', 1), ('C', 1), ('b', 1), ('é', 2), ('Z', 1), ('_', 1), ('a b', 1), ('ab', 1)" "$T"
both "create table vk(k varchar(10) collate \"en-x-icu\" primary key, v int)"
t_sql_do "insert into vk select chr(g), g from generate_series(65, 122) g" "$S"
t_sql_do "insert into vk select chr(g), g from generate_series(66, 122) g" "$T"
both "create table nk(k numeric primary key, v int)"
t_sql_do "insert into nk values (1.0, 1), (2, 1), (-1.5, 1), (10, 1)" "$S"
t_sql_do "insert into nk values (1.00, 1), (2, 1), (10.5, 1)" "$T"
both "create table dk(k date primary key, v int)"
t_sql_do "insert into dk values ('2026-01-02', 1), ('2026-01-10', 1)" "$S"
t_sql_do "insert into dk values ('2026-01-10', 1), ('2026-02-01', 1)" "$T"
both "create table uk(k uuid primary key, v int)"
t_sql_do "insert into uk select md5(g::text)::uuid, g from generate_series(1, 300) g" "$S"
t_sql_do "insert into uk select md5(g::text)::uuid, g from generate_series(2, 301) g" "$T"
both "create table gen(id int primary key, a int)"
t_sql_do "alter table gen add column g int generated always as (a * 2) stored" "$S"
t_sql_do "alter table gen add column g int generated always as (a * 3) stored" "$T"
both "insert into gen (id, a) values (1, 1), (2, 2)"
plan "$P" "    ck: { mode: upsert, on_conflict: local_wins }
    tk: { mode: upsert, on_conflict: local_wins }
    vk: { mode: upsert, on_conflict: local_wins }
    nk: { mode: upsert, on_conflict: local_wins }
    dk: { mode: append }
    uk: { mode: append }
    gen: { mode: upsert, on_conflict: local_wins }"
t_run 0 "composite, collated, numeric, date, uuid keys and a generated column" "$PGRUNBOOK" sync diff --plan "$P" --json --rows
k=$out
t_eq "composite key" "$(counts "$k" public.ck)" "1 1 1 0 0 2"
t_eq "composite key rows" "$(printf '%s' "$k" | jq -c '[.tables[] | select(.table == "public.ck") | .rows[] | [.kind, .key.a, .key.b]]')" \
	'[["insert","1","x"],["update","1","y"],["delete","2","b"]]'
t_eq "text keys whose collation order is not byte order" "$(counts "$k" public.tk)" "1 1 1 0 0 6"
t_eq "text key rows" "$(printf '%s' "$k" | jq -c '[.tables[] | select(.table == "public.tk") | .rows[] | [.kind, .key.k]]')" \
	'[["insert","B"],["delete","C"],["update","é"]]'
t_eq "varchar key with an ICU column collation" "$(counts "$k" public.vk)" "1 0 0 0 0 57"
t_eq "numeric key: 1.0 and 1.00 are the same key, the text differs" "$(counts "$k" public.nk)" "2 1 1 0 0 1"
t_eq "numeric key rows" "$(printf '%s' "$k" | jq -c '[.tables[] | select(.table == "public.nk") | .rows[] | [.kind, .key.k, .changed]]')" \
	'[["insert","-1.5",[]],["update","1.0",["k"]],["insert","10",[]],["delete","10.5",[]]]'
t_eq "date key (ordered by its text)" "$(counts "$k" public.dk)" "1 0 1 0 0 1"
t_eq "uuid key" "$(counts "$k" public.uk)" "1 0 1 0 0 299"
t_eq "generated columns are left out" "$(counts "$k" public.gen)" "0 0 0 0 0 2"
t_eq "gen compares id and a only" "$(printf '%s' "$k" | jq -c '[.tables[] | select(.table == "public.gen") | .columns[].name]')" '["id","a"]'

# ---------------------------------------------------------------- refusals
both "create table dup(id int, v int)"
t_sql_do "insert into dup values (1, 1), (2, 1), (2, 2), (3, 1)" "$S"
t_sql_do "insert into dup values (1, 1)" "$T"
both "create table tm(id int primary key, v int)"
t_sql_do "alter table tm alter column v type bigint" "$T"
both "create table nokey(x int)"
both "create table nullkey(id int, v int)"
t_sql_do "insert into nullkey values (1, 1), (null, 2)" "$T"
both "create table extra(id int primary key, v int)"
t_sql_do "alter table extra add column only_here text" "$S"
plan "$P" "    dup: { mode: upsert, key: [id], on_conflict: local_wins }
    tm: { mode: upsert, on_conflict: local_wins }
    nokey: { mode: append }
    nullkey: { mode: append, key: [id] }
    extra: { mode: append }
    missing: { mode: append }
    ck: { mode: append }"
t_run 3 "failing tables: exit 3" "$PGRUNBOOK" sync diff --plan "$P" --json
r=$out
err_of() { printf '%s' "$r" | jq -r --arg t "$1" '.tables[] | select(.table == $t) | .error.message'; }
t_eq "a key present twice in the source" "$(err_of public.dup)" 'key (id)=(2) appears more than once in the source table public.dup'
t_eq "a type mismatch names both types" "$(err_of public.tm)" 'column "v" of table public.tm has type integer in the source and bigint in the target'
t_eq "a table without a key" "$(err_of public.nokey)" 'table public.nokey has no primary key and the plan names no key'
t_eq "a NULL key" "$(err_of public.nullkey)" 'the target table public.nullkey has a NULL in key column "id"'
t_eq "a column on one side only" "$(err_of public.extra)" 'column "only_here" of table public.extra exists only in the source'
t_eq "a missing table" "$(err_of public.missing)" 'table public.missing does not exist in the source'
t_eq "the other tables are still diffed" "$(counts "$r" public.ck)" "1 0 1 0 1 2"
t_match "errors go to stderr too" "$err" 'appears more than once'
plan "$P" "    extra: { mode: append, columns: [id, v] }"
t_run 0 "the plan's columns: the extra column is not compared" "$PGRUNBOOK" sync diff --plan "$P" --json
t_eq "counts" "$(counts "$out" public.extra)" "0 0 0 0 0 0"
plan "$P" "    dup: { mode: upsert, key: [id], on_conflict: local_wins }"
t_run 3 "human output of a failing table" "$PGRUNBOOK" sync diff --plan "$P"
t_match "says so" "$out" '^  error: +key \(id\)=\(2\) appears more than once'
t_match "and in the summary" "$out" '^sync diff: failed for at least one table$'
t_run 1 "--table not in the plan" "$PGRUNBOOK" sync diff --plan "$P" --table nope
t_run 1 "no subcommand" "$PGRUNBOOK" sync

# ---------------------------------------------------------------- cancel
# The target's table is locked, so its COPY waits; SIGINT cancels the statements on both sides.
psql -X -q -d "$T" -c "begin; lock table t in access exclusive mode; select pg_sleep(120)" >/dev/null 2>&1 &
lockpid=$!
for _ in $(seq 100); do
	[ "$(t_sql "select count(*) from pg_catalog.pg_locks l join pg_catalog.pg_class c on c.oid = l.relation
		where c.relname = 't' and l.mode = 'AccessExclusiveLock' and l.granted" "$T")" = 1 ] && break
	sleep 0.1
done
plan "$P" "    t: { mode: append }"
"$PGRUNBOOK" sync diff --plan "$P" >"$T_TMP/cancel.out" 2>"$T_TMP/cancel.err" &
pid=$!
for _ in $(seq 100); do
	[ "$(t_sql "select count(*) from pg_catalog.pg_stat_activity where application_name = 'pgrunbook'
		and wait_event_type = 'Lock'" "$T")" = 1 ] && break
	sleep 0.1
done
start=$SECONDS
kill -INT "$pid"
wait "$pid"
rc=$?
t_eq "SIGINT while the target's COPY waits for a lock: exit 3" "$rc" 3
t_eq "at once, not after the lock is released" "$(( SECONDS - start < 10 ))" 1
t_match "says the diff was cancelled" "$(cat "$T_TMP/cancel.err")" 'the diff of table public\.t was cancelled'
t_match "the summary says cancelled" "$(cat "$T_TMP/cancel.out")" '^sync diff: cancelled$'
t_sql "select count(pg_catalog.pg_terminate_backend(pid)) from pg_catalog.pg_stat_activity
	where query like '%pg_sleep(120)%' and pid <> pg_catalog.pg_backend_pid()" "$T" >/dev/null
wait "$lockpid" 2>/dev/null

t_done
