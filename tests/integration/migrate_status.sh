# migrate_status.sh: `pgrunbook migrate status` against real _prisma_migrations tables (the demo's).
. "$top_srcdir/tests/lib.sh"

D=$T_TMP/demo
t_run 0 "a demo to compare against" "$PGRUNBOOK" demo --no-wizard --dir "$D" --rows 100
trap '"$PGRUNBOOK" demo --stop --dir "$D" >/dev/null 2>&1' EXIT
PLAN=$D/plan/demo.yaml
MIGS=$D/plan/demo/prisma/migrations
port=$(jq -r .port "$D/cluster.json")
dsql() { "$PSQL" -X -A -t -q -v ON_ERROR_STOP=1 -h "$D/sock" -p "$port" -U postgres -d "$1" -c "$2"; }

t_run 3 "prod has pending migrations: exit 3" "$PGRUNBOOK" migrate status --plan "$PLAN"
t_match "the three newest are pending" "$out" 'pending +20251112090000_drop_sender_phone'
t_eq "summary" "$(printf '%s\n' "$out" | tail -n 1)" "not up to date: 3 pending"
t_run 0 "dev is up to date: exit 0" "$PGRUNBOOK" migrate status --plan "$PLAN" --env dev
t_eq "summary" "$(printf '%s\n' "$out" | tail -n 1)" "up to date: 7 applied"
t_run 3 "--json" "$PGRUNBOOK" migrate status --plan "$PLAN" --json
t_eq "--json counts" "$(printf '%s' "$out" | jq -c '[.up_to_date, .counts.applied, .counts.pending]')" "[false,4,3]"
t_eq "--json states in folder order" "$(printf '%s' "$out" | jq -r '[.migrations[].state] | join(",")')" \
	"applied,applied,applied,applied,pending,pending,pending"

# Checksums are Prisma's: the same script with CRLF line endings still matches.
first=$MIGS/20250615120108_init/migration.sql
sed -i 's/$/\r/' "$first"
t_run 0 "CRLF line endings still match the stored checksum" "$PGRUNBOOK" migrate status --plan "$PLAN" --env dev
sed -i 's/\r$//' "$first"
# A changed script is "modified".
echo "-- edited after it was applied" >>"$first"
t_run 3 "an edited applied script: exit 3" "$PGRUNBOOK" migrate status --plan "$PLAN" --env dev
t_match "it is reported modified" "$out" 'modified +20250615120108_init'
sed -i '$d' "$first"
t_run 0 "restored: up to date again" "$PGRUNBOOK" migrate status --plan "$PLAN" --env dev

# Applied in the database but not in the folder: "missing locally".
mv "$MIGS/20251112090000_drop_sender_phone" "$T_TMP/held"
t_run 3 "a migration missing from the folder: exit 3" "$PGRUNBOOK" migrate status --plan "$PLAN" --env dev
t_match "it is reported missing locally" "$out" 'missing locally +20251112090000_drop_sender_phone'
t_run 3 "staging never applied it: not reported there (still pending work)" "$PGRUNBOOK" migrate status --plan "$PLAN" --env staging --json
t_eq "staging lists 6 local migrations, none missing" "$(printf '%s' "$out" | jq -c '[.counts["missing locally"], (.migrations | length)]')" "[0,6]"
mv "$T_TMP/held" "$MIGS/20251112090000_drop_sender_phone"

# A failed row (finished_at and rolled_back_at NULL) is "failed", with its logs; a rolled back one is pending.
dsql shop_staging "insert into \"_prisma_migrations\" (id, checksum, migration_name, logs, started_at, applied_steps_count)
	values ('f0000000-0000-0000-0000-000000000001', 'x', '20251020101500_product_active_index',
	        'Database error: relation \"Product\" does not exist', now(), 0)"
t_run 3 "a failed migration: exit 3" "$PGRUNBOOK" migrate status --plan "$PLAN" --env staging
t_match "it is reported failed" "$out" 'failed +20251020101500_product_active_index +\(started [0-9T:-]+Z, 0 steps applied\)'
t_match "with the first line of its logs" "$out" 'Database error: relation "Product" does not exist'
dsql shop_staging "update \"_prisma_migrations\" set rolled_back_at = now() where id = 'f0000000-0000-0000-0000-000000000001'"
t_run 3 "rolled back: pending again" "$PGRUNBOOK" migrate status --plan "$PLAN" --env staging --json
t_eq "pending, with its rolled back row counted" \
	"$(printf '%s' "$out" | jq -c '.migrations[] | select(.name == "20251020101500_product_active_index") | [.state, .rolled_back_rows]')" '["pending",1]'

# No _prisma_migrations at all: everything pending.
t_createdb rb_empty
printf 'name: empty\nenvironments:\n  db: { conninfo: "host=%s port=%s user=postgres dbname=rb_empty" }\ntarget: db\nmigrations: { dir: %s }\n' \
	"$PGHOST" "$PGPORT" "$MIGS" >"$T_TMP/empty.yaml"
t_run 3 "a database without _prisma_migrations" "$PGRUNBOOK" migrate status --plan "$T_TMP/empty.yaml"
t_match "says every migration is pending" "$out" 'no _prisma_migrations table yet'
t_eq "7 pending" "$(printf '%s\n' "$out" | tail -n 1)" "not up to date: 7 pending"

# The folder itself.
mkdir "$MIGS/20990101000000_broken"
t_run 3 "a migration folder without migration.sql is refused" "$PGRUNBOOK" migrate status --plan "$PLAN"
t_match "naming it" "$err" 'migration "20990101000000_broken" has no readable migration.sql'
rmdir "$MIGS/20990101000000_broken"
sed -i 's/postgresql/mysql/' "$MIGS/migration_lock.toml"
t_run 3 "another provider in migration_lock.toml is refused" "$PGRUNBOOK" migrate status --plan "$PLAN"
t_match "naming the provider" "$err" 'names provider "mysql"'
sed -i 's/mysql/postgresql/' "$MIGS/migration_lock.toml"

# migrate lint: PostgreSQL's parser, no connection.
t_run 0 "migrate lint of the demo migrations" "$PGRUNBOOK" migrate lint --plan "$PLAN"
t_match "the destructive one is risky, with rule, line and why" "$out" '8:1 PG107 risky drop column: column "senderPhone" of "Order"'
t_match "with a safer alternative" "$out" 'instead: stop reading and writing the column first'
t_match "an index on an existing table without CONCURRENTLY is flagged" "$out" 'PG301 risky index without concurrently'
t_match "the init migration is safe" "$out" '^safe +20250615120108_init$'
t_run 3 "--fail-on risky makes risky findings fail" "$PGRUNBOOK" migrate lint --plan "$PLAN" --fail-on risky
t_run 0 "--fail-on dangerous passes: nothing dangerous" "$PGRUNBOOK" migrate lint --plan "$PLAN" --fail-on dangerous
t_run 0 "--json" "$PGRUNBOOK" migrate lint --plan "$PLAN" --json
t_eq "--json: one entry per migration" "$(printf '%s' "$out" | jq '.migrations | length')" "7"
mkdir "$MIGS/20990101000000_typo"
printf 'CREATE TABLE "T" (\n  id int,\n  name text NOT NUL\n);\n' >"$MIGS/20990101000000_typo/migration.sql"
t_run 3 "a syntax error fails lint before anything connects" "$PGRUNBOOK" migrate lint --plan "$PLAN"
t_match "it names migration, line and column" "$err" '20990101000000_typo:3:[0-9]+: syntax error'
printf 'DROP TABLE "NotificationLog";\n' >"$MIGS/20990101000000_typo/migration.sql"
t_run 3 "a dangerous statement fails --fail-on dangerous" "$PGRUNBOOK" migrate lint --plan "$PLAN" --fail-on dangerous
t_match "naming the rule" "$out" 'PG101 dangerous'
rm -r "$MIGS/20990101000000_typo"
t_run 1 "--fail-on takes risky or dangerous" "$PGRUNBOOK" migrate lint --plan "$PLAN" --fail-on safe

t_run 1 "an unknown environment is a usage error" "$PGRUNBOOK" migrate status --plan "$PLAN" --env nope
t_run 1 "an unknown subcommand is a usage error" "$PGRUNBOOK" migrate frobnicate --plan "$PLAN"
t_match "naming it" "$err" 'unknown subcommand "frobnicate"'
sed -i "s/port=$PGPORT/port=1/" "$T_TMP/empty.yaml"
t_run 2 "an unreachable environment: exit 2" "$PGRUNBOOK" migrate status --plan "$T_TMP/empty.yaml"
t_done
