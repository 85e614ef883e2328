# verify.sh: `pgrunbook verify` and `verify snapshot` against a real server: orphans of every kind of
# foreign key (made with triggers disabled, or under a NOT VALID key), an INVALID index, NOT VALID
# constraints, a failed _prisma_migrations row, custom checks, row counts against snapshots and a
# backup manifest, exit codes, JSON, and nothing written.
. "$top_srcdir/tests/lib.sh"

last_run() { ls -d "$XDG_STATE_HOME"/pgrunbook/runs/* | sort | tail -n 1; }
journal_has() {  # journal_has JQ-FILTER: how many records of the latest run match
	jq -c "select($1)" "$(last_run)/journal.jsonl" | wc -l
}
jqo() { printf '%s' "$out" | jq -r "$1"; }
# check KIND NAME FIELD: a field of one check of the last --json output
check() { printf '%s' "$out" | jq -rc --arg k "$1" --arg n "$2" "[.checks[] | select(.kind == \$k and .name == \$n)] | if length == 1 then .[0]$3 else \"\(length) matches\" end"; }

# --- the fixture: every kind of foreign key, with orphans ---------------------------------------
t_sql_do "
create schema shop; create schema billing; create schema \"Odd \"\"Schema\"\"\";
create table shop.customers (id int primary key, email text);
create table shop.orders (id int primary key, customer_id int references shop.customers (id), note text);
create table shop.products (sku text, region text, primary key (sku, region));
create table shop.order_lines (id int primary key, sku text, region text, qty int,
	constraint order_lines_product_fkey foreign key (sku, region) references shop.products (sku, region));
create table billing.invoices (id int primary key, customer_id int not null,
	constraint invoices_customer_fkey foreign key (customer_id) references shop.customers (id));
create table shop.categories (id int primary key, parent_id int,
	constraint categories_parent_fkey foreign key (parent_id) references shop.categories (id));
create table shop.shipments (id int primary key, sku text, region text,
	constraint shipments_product_fkey foreign key (sku, region) references shop.products (sku, region) match full);
create table shop.big_parent (id bigint primary key);
create table shop.small_child (id int primary key, parent_id int,
	constraint small_child_parent_fkey foreign key (parent_id) references shop.big_parent (id));
create table \"Odd \"\"Schema\"\"\".\"Order Item\" (id int primary key, \"Customer Id\" int,
	constraint \"Order Item Customer\" foreign key (\"Customer Id\") references shop.customers (id));
create table shop.events (id int, at date, customer_id int references shop.customers (id)) partition by range (at);
create table shop.events_2025 partition of shop.events for values from ('2025-01-01') to ('2026-01-01');
create table shop.events_2026 partition of shop.events for values from ('2026-01-01') to ('2027-01-01');
create table shop.reviews (id int primary key, customer_id int);
create table shop.notes (id int primary key, order_id int, constraint notes_order_fkey foreign key (order_id) references shop.orders (id));
create table shop.dups (v int);
create table public.settings (key text primary key, value text);
create table public.\"_prisma_migrations\" (id varchar(36) primary key, checksum varchar(64) not null,
	finished_at timestamptz, migration_name varchar(255) not null, logs text, rolled_back_at timestamptz,
	started_at timestamptz not null default now(), applied_steps_count integer not null default 0);

insert into shop.customers values (1, 'a@example.com'), (2, 'b@example.com'), (3, 'no-at-sign');
insert into shop.orders values (10, 1, 'ok'), (11, 2, 'ok'), (12, null, 'no customer: not an orphan');
insert into shop.products values ('widget', 'eu'), ('widget', 'us'), ('gadget', 'eu');
insert into shop.order_lines values (1, 'widget', 'eu', 1), (2, 'gadget', 'eu', 2);
insert into billing.invoices values (1, 1), (2, 3);
insert into shop.categories values (1, null), (2, 1), (3, 2);
insert into shop.shipments values (1, 'widget', 'us'), (2, null, null);
insert into shop.big_parent values (1), (2);
insert into shop.small_child values (1, 1), (2, 2);
insert into \"Odd \"\"Schema\"\"\".\"Order Item\" values (1, 1);
insert into shop.events values (1, '2025-05-01', 1), (2, '2026-02-01', 2), (3, '2026-03-01', null);
insert into shop.reviews values (1, 1), (2, 4242), (3, null);
insert into shop.dups values (1), (1), (2);
insert into public.settings values ('mode', 'live');
insert into public.\"_prisma_migrations\" (id, checksum, finished_at, migration_name, applied_steps_count)
	values ('00000000-0000-0000-0000-000000000001', 'c1', now(), '20250101000000_init', 1);
insert into public.\"_prisma_migrations\" (id, checksum, migration_name, logs, started_at)
	values ('00000000-0000-0000-0000-000000000002', 'c2', '20250202000000_add_index',
	        E'Database error code: 23505\nmore lines', '2025-02-02 10:00:00+00');
insert into public.\"_prisma_migrations\" (id, checksum, migration_name, rolled_back_at)
	values ('00000000-0000-0000-0000-000000000003', 'c3', '20250203000000_rolled_back', now());
"
# Orphans behind the database's back: superuser, triggers (the RI checks) disabled.
t_sql_do "
set session_replication_role = replica;
insert into shop.orders values (13, 900, 'orphan'), (14, 901, 'orphan');
insert into shop.order_lines values (3, 'nope', 'eu', 1), (4, 'widget', null, 1), (5, 'widget', 'mars', 1);
insert into billing.invoices values (3, 777);
insert into shop.categories values (4, 55);
insert into shop.shipments values (3, null, 'eu'), (4, 'gadget', 'us');
insert into shop.small_child values (3, 3000000);
insert into \"Odd \"\"Schema\"\"\".\"Order Item\" values (2, 66);
insert into shop.events values (4, '2026-04-01', 31337);
insert into shop.notes select g, 100 + g from generate_series(1, 7) g;
"
# A NOT VALID foreign key over bad data, a NOT VALID check, a failed unique index built concurrently.
t_sql_do "alter table shop.reviews add constraint reviews_customer_fkey foreign key (customer_id)
	references shop.customers (id) not valid"
t_sql_do "alter table shop.customers add constraint customers_email_at check (email like '%@%') not valid"
"$PSQL" -X -q -c "create unique index concurrently dups_v_key on shop.dups (v)" >/dev/null 2>&1 &&
	t_fail "the unique index on duplicates should have failed"
t_eq "the failed CREATE INDEX CONCURRENTLY left an INVALID index" \
	"$(t_sql "select count(*) from pg_index where indexrelid = 'shop.dups_v_key'::regclass and not indisvalid")" 1

PLAN=$T_TMP/plan.yaml
cat >"$PLAN" <<EOF
name: verify test
environments:
  db: { conninfo: "host=$PGHOST port=$PGPORT dbname=$T_DB" }
target: db
migrations: { dir: ./migrations, statement_timeout: 2s }
verify:
  row_counts: shrink_forbidden
  orphans: auto
  checks:
    - { name: three customers, sql: "select count(*) from shop.customers", expect: "3" }
    - { name: unqualified in the migrations schema, sql: "select value from settings where key = 'mode'", expect: live }
    - { name: wrong value, sql: "select count(*) from shop.orders", expect: "2" }
    - { name: bad sql, sql: "select nope from shop.nowhere", expect: "0" }
    - { name: two rows, sql: "select 1 union all select 2", expect: "1" }
    - { name: two columns, sql: "select 1, 2", expect: "1" }
    - { name: no write, sql: "delete from shop.customers returning 1", expect: "1" }
    - { name: no escape, sql: "commit; delete from shop.customers", expect: "0" }
    - { name: no program, sql: "copy (select 1) to program 'touch $T_TMP/pwned'", expect: "0" }
    - { name: too slow, sql: "select pg_sleep(5)", expect: "" }
    - { name: a null, sql: "select null::int", expect: "0" }
EOF
mkdir -p "$T_TMP/migrations"

# Checksums of every user table, and the catalog's size, to prove nothing is written.
sums() {
	t_sql "select string_agg(format('%s=%s', c.oid::regclass,
		(xpath('//h/text()', query_to_xml(format('select md5(coalesce(string_agg(t::text, %L order by t::text), %L)) as h from %s t',
		 ',', '', c.oid::regclass), false, false, '')))[1]::text), ' ' order by c.oid::regclass::text)
	 from pg_class c join pg_namespace n on n.oid = c.relnamespace
	 where c.relkind in ('r', 'p') and n.nspname not in ('pg_catalog', 'information_schema') and n.nspname !~ '^pg_toast'"
}
catalog() { t_sql "select count(*), sum(xmin::text::bigint) from pg_class"; }
before=$(sums)
cat_before=$(catalog)
t_match "the checksums cover every table" "$before" 'shop\.orders=[0-9a-f]{32} .*shop\.small_child=[0-9a-f]{32}'

t_run 3 "verify of the fixture: checks fail, exit 3" "$PGRUNBOOK" verify --plan "$PLAN" --json
printf '%s\n' "$out" >"$T_TMP/fixture.json"
t_eq "JSON: ok false, exit_code 3, environment, database" "$(jqo '[.ok, .exit_code, .environment, .database == env.T_DB] | @json')" '[false,3,"db",true]'
t_eq "JSON: summary adds up" "$(jqo '.summary | .checks == .passed + .failed + .not_run + .notes')" true
t_eq "JSON: the summary counts the failed checks" "$(jqo '.summary.failed')" "$(jqo '[.checks[] | select(.ok == false)] | length')"
t_eq "JSON: every check has kind, object, ok, result, detail" \
	"$(jqo '[.checks[] | select((.kind|type) == "string" and has("object") and (.ok|type) == "boolean" and (.result|type) == "string" and (.detail|type) == "string")] | length')" \
	"$(jqo '.checks | length')"
t_eq "JSON: the run id" "$(jqo .run_id)" "$(basename "$(last_run)")"

# Orphans: exact counts and sample keys.
t_eq "single key: 2 orphaned orders, samples 900 and 901" "$(check orphans orders_customer_id_fkey '| [.orphans, .samples, .ok, .match, .child, .parent]')" \
	'[2,[{"customer_id":"900"},{"customer_id":"901"}],false,"simple","shop.orders","shop.customers"]'
t_eq "the orphan count agrees with a LEFT JOIN" "$(t_sql "select count(*) from shop.orders o left join shop.customers c on c.id = o.customer_id where o.customer_id is not null and c.id is null")" 2
t_eq "composite MATCH SIMPLE: a NULL column is not checked; 2 orphans" \
	"$(check orphans order_lines_product_fkey '| [.orphans, .samples, .columns]')" \
	'[2,[{"region":"eu","sku":"nope"},{"region":"mars","sku":"widget"}],["sku","region"]]'
t_eq "cross-schema" "$(check orphans invoices_customer_fkey '| [.orphans, .samples, .child, .parent]')" \
	'[1,[{"customer_id":"777"}],"billing.invoices","shop.customers"]'
t_eq "self-referencing" "$(check orphans categories_parent_fkey '| [.orphans, .samples]')" '[1,[{"parent_id":"55"}]]'
t_eq "MATCH FULL: a partly NULL key is an orphan, an all-NULL one is not" \
	"$(check orphans shipments_product_fkey '| [.orphans, .match, .samples]')" \
	'[2,"full",[{"region":"us","sku":"gadget"},{"region":"eu","sku":null}]]'
t_eq "int referencing bigint (the key's own operator)" "$(check orphans small_child_parent_fkey '| [.orphans, .samples]')" '[1,[{"parent_id":"3000000"}]]'
t_eq "quoted identifiers" "$(check orphans 'Order Item Customer' '| [.orphans, .child, .columns, .samples]')" \
	'[1,"Odd \"Schema\".Order Item",["Customer Id"],[{"Customer Id":"66"}]]'
t_eq "a partitioned table: checked once through its parent" "$(check orphans events_customer_id_fkey '| [.orphans, .samples, .child]')" \
	'[1,[{"customer_id":"31337"}],"shop.events"]'
t_eq "the NOT VALID key over bad data is checked too" "$(check orphans reviews_customer_fkey '| [.orphans, .validated, .samples]')" \
	'[1,false,[{"customer_id":"4242"}]]'
t_eq "7 orphans: the count, and the first 5 keys as samples" "$(check orphans notes_order_fkey '| [.orphans, [.samples[].order_id]]')" \
	'[7,["101","102","103","104","105"]]'
t_match "the detail says there are more" "$(check orphans notes_order_fkey '| .detail')" '^7 orphaned rows: keys such as \(101\), \(102\), \(103\), \(104\), \(105\), \.\.\. without a row in shop\.orders$'
t_eq "foreign keys without orphans pass" "$(printf '%s' "$out" | jq -c '[.checks[] | select(.kind == "orphans" and .ok) | .name]')" '[]'
t_eq "every foreign key is checked, partitions' clones not again" "$(jqo '[.checks[] | select(.kind == "orphans")] | length')" \
	"$(t_sql "select count(*) from pg_constraint where contype = 'f' and conparentid = 0")"

# Catalog state.
t_eq "the INVALID index, named with its table" "$(check invalid_indexes shop.dups_v_key '| [.ok, .table, .index]')" '[false,"shop.dups","shop.dups_v_key"]'
t_eq "NOT VALID constraints: the foreign key and the check" \
	"$(printf '%s' "$out" | jq -c '[.checks[] | select(.kind == "not_valid_constraints") | [.name, .table, .ok]]')" \
	'[["customers_email_at","shop.customers",false],["reviews_customer_fkey","shop.reviews",false]]'
t_eq "the failed migration (not the rolled back one)" \
	"$(printf '%s' "$out" | jq -c '[.checks[] | select(.kind == "prisma_migrations") | [.name, .ok, .started_at]]')" \
	'[["20250202000000_add_index",false,"2025-02-02T10:00:00Z"]]'
t_eq "row counts: not run without a baseline, not a failure" "$(printf '%s' "$out" | jq -c '[.checks[] | select(.kind == "row_counts") | [.result, .ok]]')" \
	'[["not run",true]]'

# Custom checks.
t_eq "a passing check reports the value got" "$(check custom 'three customers' '| [.ok, .got, .detail]')" '[true,"3","got 3"]'
t_eq "custom SQL sees the migrations schema as search_path" "$(check custom 'unqualified in the migrations schema' '| [.ok, .got]')" '[true,"live"]'
t_eq "a wrong value fails with the value got" "$(check custom 'wrong value' '| [.ok, .got, .detail]')" '[false,"5","got 5, expected 2"]'
t_eq "a SQL error fails that check with the server's message" "$(check custom 'bad sql' '| [.ok, .error]')" \
	'[false,"relation \"shop.nowhere\" does not exist"]'
t_match "two rows fail" "$(check custom 'two rows' '| .detail')" 'returned 2 rows of 1 column'
t_match "two columns fail" "$(check custom 'two columns' '| .detail')" 'returned 1 row of 2 columns'
# Checks run as a subquery: only a query parses there.
t_match "a write is refused (not a query)" "$(check custom 'no write' '| .error')" 'syntax error'
t_match "a second statement is refused" "$(check custom 'no escape' '| .error')" 'syntax error'
t_match "COPY TO PROGRAM is refused" "$(check custom 'no program' '| .error')" 'syntax error'
t_eq "and ran no program" "$(test -e "$T_TMP/pwned" && echo ran || echo no)" no
t_match "statement_timeout applies" "$(check custom 'too slow' '| .error')" 'statement timeout'
t_eq "a NULL is not a value" "$(check custom 'a null' '| [.ok, .got, .detail]')" '[false,null,"got NULL, expected 0"]'
t_eq "the checks after an erroring one still ran (all 11)" "$(jqo '[.checks[] | select(.kind == "custom")] | length')" 11

t_eq "nothing written: every table's checksum is unchanged" "$(sums)" "$before"
t_eq "nothing written: no catalog rows changed" "$(catalog)" "$cat_before"
t_eq "the customers are all still there" "$(t_sql "select count(*) from shop.customers")" 3

# The journal: a verify stage with a step per kind, its result, and stage_failed.
t_eq "journal: stage_started, stage_result, stage_failed for verify" \
	"$(jq -r 'select(.stage == "verify" and (.type | test("^stage_"))) | .type' "$(last_run)/journal.jsonl" | tr '\n' ' ')" \
	"stage_started stage_result stage_failed "
t_eq "journal: one step per kind" \
	"$(jq -r 'select(.stage == "verify" and .type == "step") | "\(.data.kind)=\(.data.ok)"' "$(last_run)/journal.jsonl" | tr '\n' ' ')" \
	"row_counts=true orphans=false invalid_indexes=false not_valid_constraints=false prisma_migrations=false custom=false "
t_eq "journal: the run finished failed" "$(journal_has '.type == "run_finished" and .data.state == "failed"')" 1

# The human table.
t_run 3 "the table on screen" "$PGRUNBOOK" verify --plan "$PLAN"
t_match "a header" "$out" '^check +object +result +detail'
t_match "an orphan row" "$out" '^orphans +shop\.orders\(customer_id\) -> shop\.customers\(id\) +fail +2 orphaned rows: keys such as \(900\), \(901\) without a row in shop\.customers'
t_match "no baseline is said clearly" "$out" '^row_counts +- +not run +not run: no baseline'
t_match "the INVALID index row" "$out" '^invalid_indexes +shop\.dups_v_key +fail +INVALID index on shop\.dups'
t_match "the custom check row" "$out" '^custom +wrong value +fail +got 5, expected 2'
t_match "the summary" "$(printf '%s\n' "$out" | tail -n 1)" "^FAILED: $(jq -r .summary.failed "$T_TMP/fixture.json") of $(jq -r .summary.checks "$T_TMP/fixture.json") checks failed, 1 not run$"
t_match "where it is journaled" "$err" '^run [^ ]+: journaled in '

# orphans: off skips the anti-joins.
sed 's/orphans: auto/orphans: off/' "$PLAN" >"$T_TMP/nofk.yaml"
t_run 3 "orphans: off" "$PGRUNBOOK" verify --plan "$T_TMP/nofk.yaml" --json
t_eq "orphans reported not run" "$(printf '%s' "$out" | jq -c '[.checks[] | select(.kind == "orphans") | .result]')" '["not run"]'

# A role that cannot read one table: that key's check fails with the server's message, the others run.
t_sql_do "create role rb_verify_ro login;
	grant usage on schema shop, billing, \"Odd \"\"Schema\"\"\" to rb_verify_ro;
	grant select on all tables in schema shop, billing, \"Odd \"\"Schema\"\"\", public to rb_verify_ro;
	revoke select on shop.small_child from rb_verify_ro"
sed "s/dbname=$T_DB/dbname=$T_DB user=rb_verify_ro/" "$PLAN" >"$T_TMP/ro.yaml"
t_run 3 "verify as a role that cannot read shop.small_child" "$PGRUNBOOK" verify --plan "$T_TMP/ro.yaml" --json
t_eq "that key fails with permission denied" "$(check orphans small_child_parent_fkey '| [.ok, .error]')" \
	'[false,"permission denied for table small_child"]'
t_eq "the keys after it were still checked" "$(check orphans 'Order Item Customer' '| .orphans')" 1
t_eq "and the catalog checks ran" "$(jqo '[.checks[] | select(.kind == "invalid_indexes" or .kind == "prisma_migrations") | .result] | @json')" '["fail","fail"]'
t_run 3 "a snapshot it cannot take: exit 3" "$PGRUNBOOK" verify snapshot --plan "$T_TMP/ro.yaml" --out "$T_TMP/ro.json"
t_match "naming the table" "$err" 'could not count the rows of shop.small_child: permission denied'
t_eq "no file" "$(ls "$T_TMP" | grep -c '^ro\.json')" 0

# Mend the fixture: every check passes, exit 0.
t_sql_do "
delete from shop.orders where id in (13, 14); delete from shop.order_lines where id in (3, 5);
delete from billing.invoices where id = 3; delete from shop.categories where id = 4;
delete from shop.shipments where id in (3, 4); delete from shop.small_child where id = 3;
delete from \"Odd \"\"Schema\"\"\".\"Order Item\" where id = 2; delete from shop.events where id = 4;
delete from shop.reviews where id = 2; delete from shop.notes; alter table shop.reviews validate constraint reviews_customer_fkey;
update shop.customers set email = 'c@example.com' where id = 3; alter table shop.customers validate constraint customers_email_at;
drop index shop.dups_v_key;
update public.\"_prisma_migrations\" set rolled_back_at = now() where finished_at is null;
"
cat >"$T_TMP/good.yaml" <<EOF
name: verify test, good
environments:
  db: { conninfo: "host=$PGHOST port=$PGPORT dbname=$T_DB" }
target: db
verify:
  checks:
    - { name: three customers, sql: "select count(*) from shop.customers", expect: "3" }
EOF
t_run 0 "a clean database passes: exit 0" "$PGRUNBOOK" verify --plan "$T_TMP/good.yaml" --json
t_eq "ok, no failures" "$(jqo '[.ok, .summary.failed, .exit_code, .error] | @json')" '[true,0,0,null]'
t_eq "every foreign key passes" "$(jqo '[.checks[] | select(.kind == "orphans" and .ok and .orphans == 0)] | length')" \
	"$(t_sql "select count(*) from pg_constraint where contype = 'f' and conparentid = 0")"
t_eq "the journal says stage_done" "$(journal_has '.type == "stage_done" and .stage == "verify"')" 1
t_run 0 "human output of a clean run" "$PGRUNBOOK" verify --plan "$T_TMP/good.yaml"
t_match "passing foreign keys summed up" "$out" "^orphans +$(t_sql "select count(*) from pg_constraint where contype = 'f' and conparentid = 0") foreign keys +pass +no orphaned rows"
t_match "ok line" "$(printf '%s\n' "$out" | tail -n 1)" '^ok: [0-9]+ checks passed, 1 not run$'

# --- row counts against a baseline --------------------------------------------------------------
t_createdb rb_counts
t_sql_do "create table a (id int primary key); insert into a select generate_series(1, 100);
	create table b (id int); insert into b select generate_series(1, 50);
	create table c (id int);
	create table p (id int, k int) partition by list (k);
	create table p1 partition of p for values in (1); create table p2 partition of p for values in (2);
	insert into p select g, 1 + g % 2 from generate_series(1, 30) g;
	create table parent_inh (id int); create table child_inh () inherits (parent_inh);
	insert into parent_inh values (1); insert into child_inh values (2), (3);" rb_counts
CP=$T_TMP/counts.yaml
cat >"$CP" <<EOF
name: row counts
environments:
  db: { conninfo: "host=$PGHOST port=$PGPORT dbname=rb_counts" }
  other: { conninfo: "host=$PGHOST port=$PGPORT dbname=$T_DB" }
target: db
verify: { row_counts: shrink_forbidden }
EOF
SNAP=$T_TMP/snap.json
t_run 0 "verify snapshot" "$PGRUNBOOK" verify snapshot --plan "$CP" --out "$SNAP"
t_match "says what it wrote" "$out" "^snapshot of db \\(rb_counts\\): 6 tables, 183 rows, written to $SNAP\$"
t_eq "mode 0600" "$(stat -c %a "$SNAP")" 600
t_eq "no temporary file left" "$(ls "$T_TMP" | grep -c 'snap.json.tmp')" 0
t_eq "snapshot shape" "$(jq -c '[.format, .database, .environment, (.taken_at | test("^[0-9-]+T[0-9:.]+Z$")), .plan_hash == "'"$(jq -r .hash <("$PGRUNBOOK" check --plan "$CP" --json))"'"]' "$SNAP")" \
	'["pgrunbook-snapshot","rb_counts","db",true,true]'
t_eq "exact counts; partitions through their parent; inheritance parents ONLY" "$(jq -c .tables "$SNAP")" \
	"$(t_sql "select json_object_agg('public.' || t, n order by t)::text from (values ('a', (select count(*) from a)), ('b', (select count(*) from b)),
	  ('c', (select count(*) from c)), ('child_inh', (select count(*) from child_inh)), ('p', (select count(*) from p)),
	  ('parent_inh', (select count(*) from only parent_inh))) v(t, n)" rb_counts | jq -c .)"
t_run 0 "--json snapshot" "$PGRUNBOOK" verify snapshot --plan "$CP" --out "$T_TMP/snap2.json" --json
t_eq "prints the document and its path" "$(jqo '[.path, .tables["public.a"]] | @json')" "[\"$T_TMP/snap2.json\",100]"
t_run 0 "snapshot of another environment" "$PGRUNBOOK" verify snapshot --plan "$CP" --env other --out "$T_TMP/other.json"
t_eq "its database and counts" "$(jq -c '[.database, .environment, .tables["shop.customers"], .tables["shop.events"], (.tables | has("shop.events_2025"))]' "$T_TMP/other.json")" \
	"[\"$T_DB\",\"other\",3,3,false]"

t_run 0 "unchanged: exit 0" "$PGRUNBOOK" verify --plan "$CP" --baseline "$SNAP" --json
t_eq "every table compared, all same" "$(jqo '[.checks[] | select(.kind == "row_counts") | "\(.table):\(.status):\(.result)"] | join(" ")')" \
	"public.a:same:pass public.b:same:pass public.c:same:pass public.child_inh:same:pass public.p:same:pass public.parent_inh:same:pass"
t_eq "the baseline is named in the result" "$(jqo '[.baseline.source, .baseline.path, .baseline.database] | @json')" "[\"snapshot\",\"$SNAP\",\"rb_counts\"]"

t_sql_do "delete from a where id <= 3; insert into b values (51)" rb_counts
t_run 3 "shrink_forbidden: a table that lost rows fails" "$PGRUNBOOK" verify --plan "$CP" --baseline "$SNAP" --json
t_eq "naming the table and both counts" "$(check row_counts public.a '| [.ok, .before, .after, .status, .change_percent]')" '[false,100,97,"shrank",-3]'
t_eq "growth is fine" "$(check row_counts public.b '| [.ok, .before, .after, .status]')" '[true,50,51,"grew"]'
t_eq "exit_code 3 and the message" "$(jqo '[.exit_code, .summary.failed] | @json')" '[3,1]'
t_run 3 "shrink_forbidden on screen" "$PGRUNBOOK" verify --plan "$CP" --baseline "$SNAP"
t_match "the table, both counts and why" "$out" '^row_counts +public\.a +fail +100 -> 97 rows \(-3\.0%\), and shrink_forbidden allows no table to lose rows$'
t_eq "the journal's stage_result holds both counts" \
	"$(jq -c 'select(.type == "stage_result" and .stage == "verify") | .data.checks[] | select(.table == "public.a") | [.before, .after]' "$(last_run)/journal.jsonl")" '[100,97]'
t_match "the baseline line" "$out" "^baseline: snapshot $SNAP \\(database rb_counts, taken "
t_match "the error: 1 of 10 (6 tables, 3 catalog checks, no prisma table, no foreign keys)" "$err" '^pgrunbook: 1 of 10 checks failed$'

# tolerance: 10% either way.
sed 's/row_counts: shrink_forbidden/row_counts: { tolerance: "10%" }/' "$CP" >"$T_TMP/tol.yaml"
t_run 0 "new snapshot at 97/51" "$PGRUNBOOK" verify snapshot --plan "$CP" --out "$SNAP"
t_sql_do "delete from a where id between 4 and 8" rb_counts  # 97 -> 92: -5.2%
t_run 0 "tolerance 10%: a 5% drop passes" "$PGRUNBOOK" verify --plan "$T_TMP/tol.yaml" --baseline "$SNAP" --json
t_eq "reported shrank, passing" "$(check row_counts public.a '| [.ok, .before, .after, .status]')" '[true,97,92,"shrank"]'
t_sql_do "delete from a where id between 9 and 23" rb_counts  # 97 -> 77: -20.6%
t_run 3 "tolerance 10%: a 20% drop fails" "$PGRUNBOOK" verify --plan "$T_TMP/tol.yaml" --baseline "$SNAP" --json
t_eq "with its change" "$(check row_counts public.a '| [.ok, .after, .change_percent]')" '[false,77,-20.619]'
t_match "and the tolerance in the detail" "$(check row_counts public.a '| .detail')" 'beyond the 10% tolerance'
t_sql_do "insert into b select generate_series(100, 110)" rb_counts  # 51 -> 62: +21.6%
t_run 3 "tolerance applies to growth too" "$PGRUNBOOK" verify --plan "$T_TMP/tol.yaml" --baseline "$SNAP" --json
t_eq "b grew beyond it" "$(check row_counts public.b '| [.ok, .status]')" '[false,"grew"]'
t_sql_do "insert into c values (1)" rb_counts
t_run 3 "tolerance: an empty table that gets rows fails" "$PGRUNBOOK" verify --plan "$T_TMP/tol.yaml" --baseline "$SNAP" --json
t_eq "c: no percentage" "$(check row_counts public.c '| [.ok, .before, .after, .change_percent]')" '[false,0,1,null]'
sed 's/row_counts: shrink_forbidden/row_counts: off/' "$CP" >"$T_TMP/off.yaml"
t_run 0 "off: no comparison, exit 0" "$PGRUNBOOK" verify --plan "$T_TMP/off.yaml" --baseline "$SNAP" --json
t_eq "row counts not run" "$(jqo '[.checks[] | select(.kind == "row_counts") | .result] | @json')" '["not run"]'

# New and gone tables.
t_run 0 "a fresh snapshot" "$PGRUNBOOK" verify snapshot --plan "$CP" --out "$SNAP"
t_sql_do "create table d (x int); insert into d values (1), (2)" rb_counts
t_run 0 "a new table is a note, not a failure" "$PGRUNBOOK" verify --plan "$CP" --baseline "$SNAP" --json
t_eq "new, with its rows" "$(check row_counts public.d '| [.ok, .result, .status, .before, .after]')" '[true,"note","new",null,2]'
t_sql_do "drop table c" rb_counts
t_run 3 "a table gone since the baseline fails" "$PGRUNBOOK" verify --plan "$CP" --baseline "$SNAP" --json
t_eq "gone" "$(check row_counts public.c '| [.ok, .status, .before, .after]')" '[false,"gone",1,null]'

# A backup manifest as the baseline.
t_sql_do "create table c (id int); insert into c values (1)" rb_counts
cat >"$T_TMP/manifest.json" <<EOF
{ "pgrunbook_backup": 1, "database": "rb_counts", "environment": "db", "format": "custom",
  "started": "2026-11-23T10:00:00.000Z", "finished": "2026-11-23T10:00:05.000Z", "sha256": "00", "verified": true,
  "table_list": [], 
  "tables": { "public.a": 77, "public.b": 62, "public.c": 1, "public.d": 2, "public.p": 30,
              "public.parent_inh": 1, "public.child_inh": 2 } }
EOF
t_run 0 "a backup manifest with the same counts passes" "$PGRUNBOOK" verify --plan "$CP" --baseline "$T_TMP/manifest.json" --json
t_eq "named as a backup manifest, its time" "$(jqo '[.baseline.source, .baseline.taken_at, ([.checks[] | select(.kind == "row_counts" and .status == "same")] | length)] | @json')" \
	'["backup_manifest","2026-11-23T10:00:00.000Z",7]'
jq '.tables["public.p"] = 31' "$T_TMP/manifest.json" >"$T_TMP/manifest2.json"
t_run 3 "a manifest with more rows than now fails" "$PGRUNBOOK" verify --plan "$CP" --baseline "$T_TMP/manifest2.json" --json
t_eq "the partitioned table, counted through its parent" "$(check row_counts public.p '| [.ok, .before, .after]')" '[false,31,30]'
jq '.database = "shop_prod"' "$T_TMP/manifest.json" >"$T_TMP/manifest3.json"
t_run 0 "a baseline of another database: a note, not a failure" "$PGRUNBOOK" verify --plan "$CP" --baseline "$T_TMP/manifest3.json" --json
t_eq "the note names both" "$(jqo '[.checks[] | select(.kind == "row_counts" and .result == "note") | .detail] | @json')" \
	'["the baseline is of database shop_prod, this is rb_counts"]'
echo '{"database": "rb_counts", "tables": {"public.a": "many"}}' >"$T_TMP/bad.json"
t_run 1 "a baseline with a non-count is refused: exit 1" "$PGRUNBOOK" verify --plan "$CP" --baseline "$T_TMP/bad.json"
t_match "naming the table" "$err" 'has no row count for table "public.a"'
echo '{"tables": {}}' >"$T_TMP/bad2.json"
t_run 1 "a baseline of neither shape is refused" "$PGRUNBOOK" verify --plan "$CP" --baseline "$T_TMP/bad2.json"
t_match "saying what a baseline is" "$err" 'neither a snapshot nor a backup manifest'
t_run 1 "a missing baseline file" "$PGRUNBOOK" verify --plan "$CP" --baseline "$T_TMP/nope.json"
t_match "says so" "$err" 'could not read the baseline'

# Usage, plan and connection errors.
t_run 1 "snapshot without --out" "$PGRUNBOOK" verify snapshot --plan "$CP"
t_run 1 "--out without snapshot" "$PGRUNBOOK" verify --plan "$CP" --out x
t_run 1 "an unknown environment" "$PGRUNBOOK" verify --plan "$CP" --env nope
t_run 1 "no --plan" "$PGRUNBOOK" verify
t_run 0 "--help" "$PGRUNBOOK" verify --help
t_match "lists the checks" "$out" 'orphans +every foreign key'
printf 'name: bad\nenvironments: {}\n' >"$T_TMP/badplan.yaml"
t_run 4 "an invalid plan: exit 4" "$PGRUNBOOK" verify --plan "$T_TMP/badplan.yaml"
sed "s/dbname=rb_counts/dbname=rb_does_not_exist/" "$CP" >"$T_TMP/gone.yaml"
t_run 2 "a database that cannot be reached: exit 2" "$PGRUNBOOK" verify --plan "$T_TMP/gone.yaml" --json
t_eq "JSON still printed, with the error" "$(jqo '[.ok, .exit_code, (.error | test("rb_does_not_exist"))] | @json')" '[false,2,true]'
t_run 2 "snapshot: exit 2 too" "$PGRUNBOOK" verify snapshot --plan "$T_TMP/gone.yaml" --out "$T_TMP/x.json"
t_eq "and no file" "$(ls "$T_TMP" | grep -c '^x\.json')" 0

# Cancel: SIGINT during a slow custom check ends it at once and fails the run.
cat >"$T_TMP/slow.yaml" <<EOF
name: slow
environments:
  db: { conninfo: "host=$PGHOST port=$PGPORT dbname=rb_counts" }
target: db
verify:
  checks: [ { name: slow, sql: "select pg_sleep(60)", expect: "" } ]
EOF
"$PGRUNBOOK" verify --plan "$T_TMP/slow.yaml" >"$T_TMP/slow.out" 2>"$T_TMP/slow.err" &
pid=$!
for _ in $(seq 100); do
	[ "$(t_sql "select count(*) from pg_stat_activity where query = 'select pg_sleep(60)'")" = 1 ] && break
	sleep 0.1
done
t0=$(date +%s)
kill -INT $pid
wait $pid
rc=$?
t_eq "cancelled: exit 3" "$rc" 3
t_eq "promptly" "$(( $(date +%s) - t0 < 10 ))" 1
t_match "saying it was cancelled" "$(cat "$T_TMP/slow.err")" 'cancel'
t_eq "the query is gone from the server" "$(t_sql "select count(*) from pg_stat_activity where query = 'select pg_sleep(60)' and state = 'active'")" 0

t_done
