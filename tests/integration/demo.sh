# demo.sh: `pgrunbook demo`: the cluster, its three shop databases, the written plan, --stop.
. "$top_srcdir/tests/lib.sh"

D=$T_TMP/demo
N=500
TD=$T_TMP/td
mkdir -p "$TD"
cleanup() {
	"$PGRUNBOOK" demo --stop --dir "$D" >/dev/null 2>&1
	TMPDIR=$TD "$PGRUNBOOK" demo --stop >/dev/null 2>&1
}
trap cleanup EXIT

# --- usage ---
t_run 0 "demo --help" "$PGRUNBOOK" demo --help
t_match "help names --rows" "$out" '--rows N'
t_match "help names --stop" "$out" '--stop '
t_run 1 "--rows must be a number" "$PGRUNBOOK" demo --rows many --dir "$D"
t_match "the message says what --rows takes" "$err" '--rows must be a number from 20 to'
t_run 1 "--rows below the minimum" "$PGRUNBOOK" demo --rows 5 --dir "$D"
t_run 1 "--rows with --stop" "$PGRUNBOOK" demo --stop --rows 100 --dir "$D"
t_run 1 "an unknown option" "$PGRUNBOOK" demo --bogus
t_run 1 "a stray argument" "$PGRUNBOOK" demo now
[ -e "$D" ] && t_fail "usage errors created $D" || t_ok "usage errors created nothing"

# --- start ---
t_run 0 "demo --rows $N starts" "$PGRUNBOOK" demo --dir "$D" --rows "$N"
start_out=$out
plan=$D/plan/demo.yaml
t_match "prints the plan path" "$out" "plan +$plan\$"
t_match "prints pgrunbook check" "$out" "pgrunbook check --plan $plan\$"
t_match "prints pgrunbook preflight" "$out" "pgrunbook preflight --plan $plan\$"
t_match "prints how to stop it" "$out" "pgrunbook demo --stop --dir $D\$"
t_match "prints psql for shop_prod" "$out" "psql -h [^ ]+ -p [0-9]+ -U [^ ]+ -d shop_prod"
t_match "says how to open the wizard" "$out" "pgrunbook --plan $D/plan/demo.yaml"
t_match "reports progress on stderr" "$err" 'loading shop_prod'

# The connection, from cluster.json, must agree with the export line demo printed.
DP=$(sed -n 's/.*"port": *\([0-9]*\).*/\1/p' "$D/cluster.json")
DH=$(sed -n 's/.*"sockdir": *"\([^"]*\)".*/\1/p' "$D/cluster.json")
DU=$(sed -n 's/.*"superuser": *"\([^"]*\)".*/\1/p' "$D/cluster.json")
t_match "cluster.json names a port" "$DP" '^[0-9]+$'
t_match "the export line matches cluster.json" "$start_out" "^  export PGHOST=$DH PGPORT=$DP PGUSER=$DU\$"
if [ "$DP" = "$PGPORT" ]; then t_fail "the demo uses its own port, not the suite's"; else t_ok "the demo has its own port"; fi

dq() {  # SQL DB: a query against the demo cluster
	PGHOST=$DH PGPORT=$DP PGUSER=$DU t_sql "$1" "$2"
}
dlist() {  # SQL DB: rows to stdout, sorted, for comm/join
	PGHOST=$DH PGPORT=$DP PGUSER=$DU "$PSQL" -X -A -t -q -v ON_ERROR_STOP=1 -d "$2" -c "$1" | LC_ALL=C sort
}

t_eq "the three shop databases exist" \
	"$(dq "select string_agg(datname, ',' order by datname) from pg_database where datname like 'shop%'" postgres)" \
	"shop_dev,shop_prod,shop_staging"

# --- sizes follow --rows ---
items=0; stripe=$((N / 50)); notes=0
for i in $(seq 1 "$N"); do
	items=$((items + 1 + i % 3))
	[ $((i % 10)) -ne 1 ] && stripe=$((stripe + 1))
	notes=$((notes + 1))
	[ $((i % 10)) -ge 6 ] && notes=$((notes + 1))
done
ntest=$((N / 20)); [ "$ntest" -lt 2 ] && ntest=2
for db in shop_prod shop_staging; do
	t_eq "$db: $N orders" "$(dq 'select count(*) from "Order"' $db)" "$N"
	t_eq "$db: order items 1 + (i % 3) an order" "$(dq 'select count(*) from "OrderItem"' $db)" "$items"
	t_eq "$db: N/4 customers" "$(dq "select count(*) from \"User\" where email like 'customer%'" $db)" "$((N / 4))"
	t_eq "$db: Stripe events" "$(dq 'select count(*) from "StripeEvent"' $db)" "$stripe"
	t_eq "$db: notifications" "$(dq 'select count(*) from "NotificationLog"' $db)" "$notes"
done
t_eq "shop_dev: N/20 test orders" "$(dq 'select count(*) from "Order"' shop_dev)" "$ntest"
t_eq "shop_dev: no notification log" "$(dq 'select count(*) from "NotificationLog"' shop_dev)" "0"
t_eq "order totals add up" \
	"$(dq 'select count(*) from "Order" o where o.total <> (select sum(quantity * "unitPrice") from "OrderItem" i where i."orderId" = o.id)' shop_prod)" "0"
t_eq "the Order sequence continues after the loaded rows" \
	"$(dq "select last_value from \"Order_id_seq\"" shop_prod)" "$N"
t_match "the summary shows the order counts" "$start_out" "^  Order +$ntest +$N +$N\$"

# --- migrations ---
mdir=$D/plan/demo/prisma/migrations
migs=$(cd "$mdir" && ls -d 2*_* | LC_ALL=C sort)
nmigs=$(printf '%s\n' "$migs" | wc -l)
t_eq "the written migrations are the repository's" \
	"$(cd "$top_srcdir/plans/demo/prisma/migrations" && ls -d 2*_* | LC_ALL=C sort)" "$migs"
t_eq "shop_dev has every migration applied" "$(dlist 'select migration_name from _prisma_migrations' shop_dev)" "$migs"
nprod=$(dq 'select count(*) from _prisma_migrations' shop_prod)
if [ "$nprod" -lt "$nmigs" ] && [ "$nprod" -gt 0 ]; then
	t_ok "shop_prod has fewer migrations than shop_dev ($nprod < $nmigs)"
else
	t_fail "shop_prod has fewer migrations than shop_dev" "prod $nprod, dev $nmigs"
fi
t_eq "shop_prod has the first ones, in order" \
	"$(dlist 'select migration_name from _prisma_migrations' shop_prod)" "$(printf '%s\n' "$migs" | head -n "$nprod")"
t_eq "shop_staging starts as shop_prod" \
	"$(dlist 'select migration_name, checksum from _prisma_migrations' shop_staging)" \
	"$(dlist 'select migration_name, checksum from _prisma_migrations' shop_prod)"
t_eq "_prisma_migrations has Prisma's columns" \
	"$(dq "select string_agg(column_name || ' ' || data_type || coalesce('(' || character_maximum_length || ')', '') || ' ' || is_nullable || coalesce(' ' || column_default, ''), ', ' order by ordinal_position) from information_schema.columns where table_name = '_prisma_migrations'" shop_prod)" \
	"id character varying(36) NO, checksum character varying(64) NO, finished_at timestamp with time zone YES, migration_name character varying(255) NO, logs text YES, rolled_back_at timestamp with time zone YES, started_at timestamp with time zone NO now(), applied_steps_count integer NO 0"
t_eq "_prisma_migrations' primary key is id" \
	"$(dq "select pg_get_constraintdef(oid) from pg_constraint where conrelid = '_prisma_migrations'::regclass and contype = 'p'" shop_prod)" \
	"PRIMARY KEY (id)"
t_eq "every history row is finished, not rolled back, one step, uuid id" \
	"$(dq "select count(*) from _prisma_migrations where finished_at is not null and rolled_back_at is null and logs is null and applied_steps_count = 1 and id ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\$'" shop_dev)" "$nmigs"
want_sums=$(for m in $migs; do printf '%s|%s\n' "$m" "$(sha256sum <"$mdir/$m/migration.sql" | cut -d' ' -f1)"; done | LC_ALL=C sort)
t_eq "checksums are the SHA-256 of the written migration.sql files" \
	"$(dlist 'select migration_name, checksum from _prisma_migrations' shop_dev)" "$want_sums"
differ=""
for m in $migs; do
	cmp -s "$mdir/$m/migration.sql" "$top_srcdir/plans/demo/prisma/migrations/$m/migration.sql" ||
		differ="$differ $m"
done
t_eq "written migration.sql files equal plans/" "$differ" ""
version=$("$PGRUNBOOK" --version | cut -d' ' -f2)
long=$(cd "$top_srcdir" && find plans/demo plans/demo.yaml -type f | awk -v p="pgrunbook-$version/" 'length(p $0) > 99')
t_eq "plans/demo paths fit the dist tarball's 99-character limit (tar v7)" "$long" ""
t_eq "migration_lock.toml names postgresql" \
	"$(grep '^provider' "$D/plan/demo/prisma/migrations/migration_lock.toml")" 'provider = "postgresql"'
[ -e "$D/plan/demo/data" ] && t_fail "the data scripts were written into the plan" || t_ok "the plan folder holds no data scripts"

# The pending migrations show in the schemas: a safe column, a new table, a dropped column.
col() {  # DB TABLE COLUMN -> 1 or 0
	dq "select count(*) from information_schema.columns where table_schema = 'public' and table_name = '$2' and column_name = '$3'" "$1"
}
t_eq "dev has Product.isActive, prod not" "$(col shop_dev Product isActive)$(col shop_prod Product isActive)" "10"
t_eq "prod still has Order.senderPhone, dev dropped it" "$(col shop_dev Order senderPhone)$(col shop_prod Order senderPhone)" "01"
t_eq "dev has the IngredientPackaging table, prod not" \
	"$(dq "select to_regclass('public.\"IngredientPackaging\"') is not null" shop_dev)$(dq "select to_regclass('public.\"IngredientPackaging\"') is not null" shop_prod)" "tf"
t_match "prod's senderPhone holds data the destructive migration would lose" \
	"$(dq 'select count(*) from "Order" where "senderPhone" is not null' shop_prod)" '^[1-9][0-9]*$'
pending=$(printf '%s\n' "$migs" | tail -n +"$((nprod + 1))")
t_match "a pending migration drops a column" "$(for m in $pending; do cat "$mdir/$m/migration.sql"; done)" 'DROP COLUMN'
t_match "a pending migration adds a column with a default" "$(for m in $pending; do cat "$mdir/$m/migration.sql"; done)" 'ADD COLUMN .* DEFAULT'

# --- foreign keys ---
fk_in() {  # migration dirs... -> number of FOREIGN KEY clauses
	local n=0 m
	for m in "$@"; do n=$((n + $(grep -c 'FOREIGN KEY' "$mdir/$m/migration.sql"))); done
	echo "$n"
}
t_eq "shop_dev has every foreign key of the migrations" \
	"$(dq "select count(*) from pg_constraint where contype = 'f' and convalidated" shop_dev)" "$(fk_in $migs)"
t_eq "shop_prod has the foreign keys of its migrations" \
	"$(dq "select count(*) from pg_constraint where contype = 'f' and convalidated" shop_prod)" \
	"$(fk_in $(printf '%s\n' "$migs" | head -n "$nprod"))"
for db in shop_dev shop_prod; do
	t_eq "$db: no orphans" "$(dq 'select (select count(*) from "OrderItem" i left join "Order" o on o.id = i."orderId" where o.id is null)
		+ (select count(*) from "Order" o left join "User" u on u.id = o."userId" where o."userId" is not null and u.id is null)
		+ (select count(*) from "Ingredient" i left join "Unit" u on u.code = i."unitCode" where u.id is null)' $db)" "0"
done

# --- reference data: dev is ahead; prod has the orders ---
only_dev() {  # SQL: rows shop_dev has and shop_prod lacks
	comm -23 <(dlist "$1" shop_dev) <(dlist "$1" shop_prod)
}
changed() {  # KEYSQL ROWSQL: keys in both databases whose rows differ
	comm -12 <(dlist "$1" shop_dev) <(dlist "$1" shop_prod) >"$T_TMP/both"
	comm -23 <(dlist "$2" shop_dev) <(dlist "$2" shop_prod) | cut -d'|' -f1 | LC_ALL=C sort |
		comm -12 - "$T_TMP/both"
}
t_match "dev has units prod lacks" "$(only_dev 'select code from "Unit"')" 'MILLILITERS'
t_match "dev has ingredients prod lacks" "$(only_dev 'select name from "Ingredient"')" '.'
t_match "dev has products prod lacks" "$(only_dev 'select slug from "Product"')" '.'
t_match "dev changed a unit" "$(changed 'select code from "Unit"' 'select code, name from "Unit"')" '.'
t_match "dev changed ingredients" \
	"$(changed 'select id from "Ingredient"' 'select id, name, "unitCode", "proteinPer100g" from "Ingredient"')" '.'
t_match "dev changed products" "$(changed 'select slug from "Product"' 'select slug, price, image from "Product"')" '.'
t_eq "prod has every dev-only order id beyond dev's" \
	"$(comm -13 <(dlist 'select id from "Order"' shop_dev) <(dlist 'select id from "Order"' shop_prod) | wc -l)" "$((N - ntest))"
t_match "prod has Stripe events dev lacks" "$(comm -13 <(dlist 'select id from "StripeEvent"' shop_dev) <(dlist 'select id from "StripeEvent"' shop_prod) | head -n 1)" '^evt_'

# --- phones in mixed formats ---
shapes=$(dq "select string_agg(s, ' | ' order by s) from (select distinct regexp_replace(phone, '[0-9]', 'd', 'g') as s from \"User\" where phone is not null) x" shop_prod)
for shape in '+d ddd ddd dd dd' 'ddddddddddd' '+ddddddddddd' 'd-ddd-ddd-dd-dd' 'd (ddd) ddd-dd-dd'; do
	case " | $shapes | " in
	*" | $shape | "*) t_ok "user phones include the format $shape" ;;
	*) t_fail "user phones include the format $shape" "$shapes" ;;
	esac
done
t_match "order phones come in several formats" \
	"$(dq "select count(distinct regexp_replace(\"customerPhone\", '[0-9]', 'd', 'g')) from \"Order\"" shop_prod)" '^[5-9]$'
t_match "Prisma-style quoted PascalCase tables" "$(dlist "select tablename from pg_tables where schemaname = 'public'" shop_dev | tr '\n' ' ')" \
	'IngredientPackaging NotificationLog Order OrderItem Product ProductIngredient StripeEvent Unit User _prisma_migrations'

# --- the written plan works ---
t_match "the written plan names the demo's server" "$(cat "$plan")" "conninfo: \"host=$DH port=$DP user=$DU dbname=shop_prod\""
t_run 0 "pgrunbook check accepts the written plan" "$PGRUNBOOK" check --plan "$plan"
t_run 0 "pgrunbook preflight finds the demo ready" "$PGRUNBOOK" preflight --plan "$plan" --no-journal
t_match "preflight sees the pending migrations' history" "$out" "applied $nprod, failed 0"
t_run 0 "pgrunbook check accepts the repository's plans/demo.yaml" "$PGRUNBOOK" check --plan "$top_srcdir/plans/demo.yaml"
PGHOST=$DH PGPORT=$DP PGUSER=$DU t_run 0 "plans/demo.yaml reaches the demo through PGHOST/PGPORT/PGUSER" \
	"$PGRUNBOOK" preflight --plan "$top_srcdir/plans/demo.yaml" --no-journal
cmp -s <(sed '1,/^#$/d' "$plan") <(sed '1,/^#$/d' "$top_srcdir/plans/demo.yaml" | sed "s|\"dbname=|\"host=$DH port=$DP user=$DU dbname=|") &&
	t_ok "the written plan is the repository's with the server filled in" ||
	t_fail "the written plan is the repository's with the server filled in" \
		"$(diff <(sed '1,/^#$/d' "$top_srcdir/plans/demo.yaml") <(sed '1,/^#$/d' "$plan") | head -n 20)"

# --- a second demo: another size, the default directory, same reference data ---
D2=$TD/pgrunbook-demo-$(id -u)
TMPDIR=$TD t_run 0 "a second demo (--rows 40) in the default directory" "$PGRUNBOOK" demo --rows 40
t_match "it says it runs in \${TMPDIR}/pgrunbook-demo-<uid>" "$out" "running in $D2\$"
t_match "its stop hint needs no --dir" "$out" '^  pgrunbook demo --stop$'
P2=$(sed -n 's/.*"port": *\([0-9]*\).*/\1/p' "$D2/cluster.json")
H2=$(sed -n 's/.*"sockdir": *"\([^"]*\)".*/\1/p' "$D2/cluster.json")
dq2() {
	PGHOST=$H2 PGPORT=$P2 PGUSER=$DU t_sql "$1" "$2"
}
t_eq "--rows 40: 40 orders" "$(dq2 'select count(*) from "Order"' shop_prod)" "40"
t_eq "--rows 40: 2 test orders in dev" "$(dq2 'select count(*) from "Order"' shop_dev)" "2"
for table in Unit Ingredient Product ProductIngredient IngredientPackaging; do
	sum="select md5(string_agg(t::text, \$\$;\$\$ order by t::text)) from \"$table\" t"
	t_eq "$table is the same whatever --rows (deterministic)" "$(dq2 "$sum" shop_dev)" "$(dq "$sum" shop_dev)"
done
cust='select id, email, phone, "firstName" from "User" where email in ($$customer1@mail.example$$, $$customer7@mail.example$$) order by id'
t_eq "customer i is the same customer whatever --rows" "$(dq2 "$cust" shop_prod)" "$(dq "$cust" shop_prod)"
# A server that died (kill -9 of the postmaster we started) leaves a stale postmaster.pid.
pm=$(head -n 1 "$D2/data/postmaster.pid")
kill -9 "$pm"
for _ in $(seq 50); do kill -0 "$pm" 2>/dev/null || break; sleep 0.1; done
TMPDIR=$TD t_run 3 "demo refuses a directory whose demo server died" "$PGRUNBOOK" demo --rows 40
t_match "it says the server is not running" "$err" "$D2 holds a demo whose server is not running"
t_match "and how to remove it" "$err" "HINT: +Remove it with \"pgrunbook demo --stop --dir $D2\""
TMPDIR=$TD t_run 0 "demo --stop removes the default one with its dead server" "$PGRUNBOOK" demo --stop
[ -e "$D2" ] && t_fail "the default demo directory is removed" "$D2" || t_ok "the default demo directory is removed"

# --- refusals ---
t_run 3 "demo refuses a directory where a demo runs" "$PGRUNBOOK" demo --dir "$D" --rows 40
t_match "it says a demo is running there" "$err" "a demo is already running in $D"
t_match "and how to stop it" "$err" "pgrunbook demo --stop --dir $D"
F=$T_TMP/foreign
mkdir -p "$F" && echo keep >"$F/file"
t_run 3 "demo refuses a directory that is not a demo" "$PGRUNBOOK" demo --dir "$F"
t_match "it says so" "$err" 'already exists and is not a pgrunbook demo'
t_run 3 "demo --stop refuses a directory that is not a demo" "$PGRUNBOOK" demo --stop --dir "$F"
t_eq "that directory is left alone" "$(cat "$F/file")" "keep"
E=$T_TMP/empty
mkdir -p "$E"
# An empty directory is fine (mktemp -d); a broken PostgreSQL fails with the log in DETAIL.
FB=$T_TMP/fakebin
mkdir -p "$FB"
printf '#!/bin/sh\necho "initdb: error: simulated failure for the test" >&2\nexit 1\n' >"$FB/initdb"
printf '#!/bin/sh\nexit 1\n' >"$FB/pg_ctl"
chmod 0755 "$FB" "$FB/initdb" "$FB/pg_ctl"
PG_BINDIR=$FB t_run 3 "a failing initdb exits 3" "$PGRUNBOOK" demo --dir "$E" --rows 40
t_match "the error shows the log's last lines in DETAIL" "$err" 'DETAIL: .*'
t_match "including initdb's complaint" "$err" 'simulated failure for the test'
[ -e "$E" ] && t_fail "a failed start leaves $E behind" "$(ls -la "$E")" || t_ok "a failed start removes what it created"

# --- stop ---
t_run 0 "demo --stop --dir stops it" "$PGRUNBOOK" demo --stop --dir "$D"
t_match "it says so" "$out" "stopped the demo cluster and removed $D"
[ -e "$D" ] && t_fail "the demo directory is removed" "$D" || t_ok "the demo directory is removed"
pg_isready -q -h 127.0.0.1 -p "$DP" -t 2
t_eq "nothing listens on the demo's port" "$?" "2"
t_run 0 "stopping again is fine" "$PGRUNBOOK" demo --stop --dir "$D"
t_match "and says no demo runs" "$out" "no demo running in $D"

# A planted demo directory must never make pgrunbook run the planter's programs.
evil="$T_TMP/evil"
mkdir -p "$evil/data" "$evil/bin"
printf '#!/bin/sh\nid > "%s/pwned"\n' "$evil" >"$evil/bin/pg_ctl"
chmod 0755 "$evil/bin/pg_ctl"
: >"$evil/pgrunbook-demo"
echo 1 >"$evil/data/postmaster.pid"
printf '{"base":"%s","bindir":"%s/bin","superuser":"postgres","port":1}\n' "$evil" "$evil" >"$evil/cluster.json"
if [ "$(id -u)" -eq 0 ]; then
	chown -R nobody "$evil"
	t_run 3 "demo --stop refuses a cluster.json it did not write" "$PGRUNBOOK" demo --stop --dir "$evil"
	t_match "the refusal says why" "$err" 'not a pgrunbook demo|not written by this user'
fi
chmod 0666 "$evil/cluster.json"
t_run 3 "demo --stop refuses a world-writable cluster.json" "$PGRUNBOOK" demo --stop --dir "$evil"
if [ -e "$evil/pwned" ]; then t_fail "the planted pg_ctl ran" "$(cat "$evil/pwned")"; else t_ok "the planted pg_ctl never ran"; fi
t_eq "the planted directory is left alone" "$(ls "$evil" | sort | tr '\n' ' ')" "bin cluster.json data pgrunbook-demo "

# A directory name with a space works end to end.
t_run 0 "demo in a directory with a space" "$PGRUNBOOK" demo --dir "$T_TMP/de mo" --rows 100
t_run 0 "its plan checks" "$PGRUNBOOK" check --plan "$T_TMP/de mo/plan/demo.yaml"
t_run 0 "its preflight is ready" "$PGRUNBOOK" preflight --no-journal --plan "$T_TMP/de mo/plan/demo.yaml"
t_run 0 "and it stops" "$PGRUNBOOK" demo --stop --dir "$T_TMP/de mo"
t_eq "and is removed" "$(ls -d "$T_TMP/de mo" 2>/dev/null)" ""

t_done
