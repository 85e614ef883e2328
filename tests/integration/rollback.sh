#!/usr/bin/env bash
# rollback.sh: `pgrunbook rollback` against the real server: a migration that fails halfway on
# prod, then a guided restore that leaves the target byte-identical to the backup (per-table
# checksums) with its database-level settings, the failed database kept; the down SQL path; a
# session holding a lock on the database blocks the rename and nothing is lost; a tampered
# archive is refused by backup_restore() before anything is created.
. "$top_srcdir/tests/lib.sh"

unset PGAPPNAME PGCONNECT_TIMEOUT
runs="$XDG_STATE_HOME/pgrunbook/runs"
ROLE="rb_rollback_$$"
ROLE2="rb_rollback_app_$$"
DN="${T_DB}_dn"
PROBE="$top_builddir/tests/harness/restoreprobe"
bg_pids=()

cleanup() {
	for p in "${bg_pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
	for d in $("$PSQL" -X -A -t -q -d postgres -c "select quote_ident(datname) from pg_database
	          where datname like '${T_DB}\\_%'" 2>/dev/null); do
		"$PSQL" -X -q -d postgres -c "drop database if exists $d with (force)" >/dev/null 2>&1
	done
	"$PSQL" -X -q -d postgres -c "drop database if exists \"$T_DB\" with (force)" >/dev/null 2>&1
	"$PSQL" -X -q -d postgres -c "drop role if exists $ROLE" -c "drop role if exists $ROLE2" >/dev/null 2>&1
}
trap cleanup EXIT

last_run() { ls -1d "$runs"/*/ | sort | tail -n 1; }
journal() { jq -c "$1" "$(last_run)/journal.jsonl"; }

# checksums DB: per table (ordered by its primary key) the md5 of its rows, plus the table list
# and every sequence's last value: equal output means byte-identical data.
checksums() {
	local db=$1 t pk
	for t in $(t_sql "select format('%I.%I', n.nspname, c.relname) from pg_class c join pg_namespace n
	                  on n.oid = c.relnamespace where c.relkind = 'r' and n.nspname not in
	                  ('pg_catalog', 'information_schema') and n.nspname !~ '^pg_toast' order by 1" "$db"); do
		pk=$(t_sql "select string_agg(format('%I', a.attname), ', ' order by k.i) from pg_index x
		            cross join lateral unnest(x.indkey) with ordinality k(attnum, i)
		            join pg_attribute a on a.attrelid = x.indrelid and a.attnum = k.attnum
		            where x.indrelid = '$t'::regclass and x.indisprimary" "$db")
		[ -n "$pk" ] || pk="t::text"
		echo "$t $(t_sql "select md5(coalesce(string_agg(t::text, E'\\n' order by $pk), '')) || ' ' || count(*)
		                  from $t t" "$db")"
	done
	echo "sequences: $(t_sql "select string_agg(format('%I.%I=%s', schemaname, sequencename,
	                          coalesce(last_value::text, 'null')), ', ' order by schemaname, sequencename) from pg_sequences" "$db")"
}

dbs_like() {  # the databases named <prefix>%, sorted
	t_sql "select coalesce(string_agg(datname, ' ' order by datname), '') from pg_database
	       where datname like '$1%'" postgres
}

# --- the project: a Prisma migrations folder and a plan for the harness cluster ---
W=$T_TMP/w
M=$W/prisma/migrations
mkdir -p "$M"
printf '# Prisma Migrate lockfile\nprovider = "postgresql"\n' >"$M/migration_lock.toml"
cat >"$W/plan.yaml" <<EOF
name: rollback test
environments:
  prod: { conninfo: "host=$PGHOST port=$PGPORT dbname=$T_DB" }
target: prod
backup: { dir: ./backups }
migrations: { dir: prisma/migrations, lock_timeout: 1s, retries: 1 }
EOF
mig() {  # mig NAME SQL [DOWN-SQL]
	mkdir -p "$M/$1"
	printf '%s\n' "$2" >"$M/$1/migration.sql"
	[ -z "${3:-}" ] || printf '%s\n' "$3" >"$M/$1/down.sql"
}
rb() { "$PGRUNBOOK" rollback --plan "$W/plan.yaml" "$@"; }

mig 20250101000000_init 'CREATE TABLE "User" ("id" SERIAL PRIMARY KEY, "email" TEXT NOT NULL, "phone" TEXT);
CREATE TABLE "Order" ("id" BIGSERIAL PRIMARY KEY, "userId" INTEGER NOT NULL REFERENCES "User"("id"), "total" NUMERIC(12,2));
CREATE TABLE "Setting" ("key" TEXT PRIMARY KEY, "value" JSONB);'
t_run 0 "the initial schema is deployed" "$PGRUNBOOK" migrate deploy --plan "$W/plan.yaml" --waive-backup "waive-backup $T_DB"

# prod data, and database-level properties the restore must carry over
t_sql_do "
insert into \"User\" (email, phone) select 'user' || g || '@example.com', '555-' || (g % 40) from generate_series(1, 300) g;
insert into \"Order\" (\"userId\", total) select 1 + g % 300, g * 1.25 from generate_series(1, 900) g;
insert into \"Setting\" values ('theme', '{\"dark\": true}'), ('motd', null);
create role $ROLE nologin;
create role $ROLE2 nologin;
alter database \"$T_DB\" owner to $ROLE;
revoke connect, temporary on database \"$T_DB\" from public;
grant connect on database \"$T_DB\" to $ROLE2;
alter database \"$T_DB\" set work_mem = '7MB';
alter database \"$T_DB\" set search_path = app, \"\$user\", public;
alter role $ROLE in database \"$T_DB\" set statement_timeout = '42s';
comment on database \"$T_DB\" is 'shop prod, do not touch';
"
settings() {  # the database-level properties of DB, one text
	t_sql "select pg_get_userbyid(d.datdba) || ' | ' || coalesce(d.datacl::text, 'default') || ' | ' ||
	       d.datconnlimit || ' | ' || coalesce(shobj_description(d.oid, 'pg_database'), '-') || ' | ' ||
	       coalesce((select string_agg(coalesce(pg_get_userbyid(nullif(s.setrole, 0)), '*') || ':' ||
	                 array_to_string(s.setconfig, ','), '; ' order by s.setrole)
	                 from pg_db_role_setting s where s.setdatabase = d.oid), '-')
	       from pg_database d where d.datname = '$1'" postgres
}
settings_before=$(settings "$T_DB")
t_match "the fixture's settings are in place" "$settings_before" "^$ROLE \\| .*$ROLE2=c/$ROLE.* \\| -1 \\| shop prod.*work_mem=7MB.*statement_timeout=42s"

# --- the backup ---
t_run 0 "backup of prod" "$PGRUNBOOK" backup --plan "$W/plan.yaml"
archive=$(ls "$W"/backups/*.dump)
sums_backup=$(checksums "$T_DB")
t_match "checksums cover the tables" "$sums_backup" '^public\."Order" [0-9a-f]{32} 900$'
t_match "and the sequences" "$sums_backup" '^sequences: .*User_id_seq"=300$'

# --- a release that fails halfway: the first migration applies (no down.sql), the second runs
# statement by statement (CREATE INDEX CONCURRENTLY): its index and update commit, then the
# unique constraint fails on duplicate phones ---
mig 20250201000000_normalize 'UPDATE "User" SET "email" = upper("email");
ALTER TABLE "User" ADD COLUMN "verified" BOOLEAN NOT NULL DEFAULT false;'
mig 20250202000000_phone_unique 'CREATE INDEX CONCURRENTLY "User_phone_idx" ON "User"("phone");
UPDATE "User" SET "phone" = '"'"'+1 '"'"' || "phone";
ALTER TABLE "User" ADD CONSTRAINT "User_phone_key" UNIQUE ("phone");'
t_run 3 "the release fails on prod" "$PGRUNBOOK" migrate deploy --plan "$W/plan.yaml" --confirm "deploy $T_DB"
t_match "the unique constraint failed" "$out$err" 'could not create unique index|duplicate'
deploy_run=$(basename "$(last_run)")
t_eq "the first migration was applied" \
	"$(t_sql "select count(*) from _prisma_migrations where migration_name = '20250201000000_normalize' and finished_at is not null")" 1
t_eq "the half-done statements committed" "$(t_sql "select count(*) from \"User\" where phone like '+1 %'")" \
	"$(t_sql "select count(*) from \"User\"")"
t_sql_do "insert into \"Setting\" values ('after_backup', '1')"  # a write after the backup: lost by the restore
sums_failed=$(checksums "$T_DB")
if [ "$sums_failed" != "$sums_backup" ]; then t_ok "the failed state differs from the backup"; else t_fail "the failed state differs from the backup"; fi

# --- the choice, without --confirm: printed, nothing changed, journaled as a refusal ---
dbs_before=$(dbs_like "$T_DB")
t_run 3 "without --confirm: the choice only" rb
t_match "names the run it picked" "$out" "run: +$deploy_run \\(the newest run of this plan that applied"
t_match "restore is chosen" "$out" 'path: +restore'
t_match "why names the migration without down.sql" "$out" 'why: .*20250201000000_normalize has no down\.sql'
t_match "why says later writes are lost" "$out" 'after it is lost'
t_match "names the backup" "$out" "backup: +$archive"
t_match "lists the steps" "$out" '5\. rename_old .*_failed_<ts> \(kept, never dropped\)'
t_match "names the phrase" "$out" "phrase: +restore $T_DB"
t_match "says nothing was changed" "$err" "nothing was changed"
t_match "and how to go ahead" "$err" "--run $deploy_run --confirm \"restore $T_DB\""
t_eq "no database was created" "$(dbs_like "$T_DB")" "$dbs_before"
t_eq "prod is unchanged" "$(checksums "$T_DB")" "$sums_failed"
t_eq "the refusal is journaled" "$(journal 'select(.type == "confirm_miss" and .stage == "rollback")' | wc -l)" 1
t_eq "and no rollback started" "$(journal 'select(.type == "rollback_started")' | wc -l)" 0

t_run 3 "a wrong phrase: refused" rb --confirm "restore ${T_DB}x"
t_match "says what was expected" "$err" "restore $T_DB"
t_eq "still no database created" "$(dbs_like "$T_DB")" "$dbs_before"
t_eq "prod still unchanged" "$(checksums "$T_DB")" "$sums_failed"

# --- the restore ---
t_run 0 "the right phrase: rolled back" rb --confirm "restore $T_DB"
t_match "the restore is reported" "$out" "restore: .* restored into ${T_DB}_rollback_[0-9]{8}T[0-9]{6}, the row counts of all 4 tables equal"
t_match "the settings step names the owner" "$out" "settings: owner $ROLE, grants"
t_match "the old database was renamed" "$out" "rename_old: $T_DB is now ${T_DB}_failed_[0-9]{8}T[0-9]{6}"
t_match "says where things are" "$out" "rollback done: $T_DB is the backup .* restored"
t_eq "prod now holds the backup's data, byte for byte" "$(checksums "$T_DB")" "$sums_backup"
failed=$(t_sql "select datname from pg_database where datname ~ '^${T_DB}_failed_[0-9]{8}T[0-9]{6}\$'" postgres)
t_match "the failed database is kept" "$failed" "^${T_DB}_failed_"
t_eq "it holds the failed state" "$(checksums "$failed")" "$sums_failed"
t_eq "no restored copy is left under another name" "$(dbs_like "${T_DB}_rollback_")" ""
t_eq "owner, grants, connection limit, comment and settings carried over" "$(settings "$T_DB")" "$settings_before"
t_eq "the role may connect to the restored prod" \
	"$(t_sql "select has_database_privilege('$ROLE2', '$T_DB', 'CONNECT')::text || ',' || has_database_privilege('public', '$T_DB', 'CONNECT')::text" postgres)" "true,false"
t_eq "both accept connections" "$(t_sql "select string_agg(datallowconn::text, ',') from pg_database where datname in ('$T_DB', '$failed')" postgres)" "true,true"
t_eq "the search_path setting works in a new session" "$(t_sql "show search_path")" 'app, "$user", public'
t_eq "the migration is pending again for Prisma's table" \
	"$(t_sql "select count(*) from _prisma_migrations where migration_name like '202502%'")" 0
t_eq "rollback_started and rollback_done journaled" \
	"$(journal 'select(.type == "rollback_started" or (.type == "rollback_done" and .data.ok == true)) | .type' | tr '\n' ' ')" \
	'"rollback_started" "rollback_done" '
t_eq "each step journaled before it ran" \
	"$(journal 'select(.type == "step" and .data.kind == "rollback" and .data.state == "started") | .data.step' | tr -d '"' | tr '\n' ' ')" \
	"restore settings block terminate rename_old rename_new reopen verify "
t_eq "the rolled-back run is recorded" "$(journal 'select(.type == "rollback_done") | .data.run' | tr -d '"')" "$deploy_run"
t_run 3 "the rolled-back run is not picked again" rb
t_nomatch "another run is picked" "$out" "run: +$deploy_run"

# --- a session holding a lock on the database blocks the rename: nothing is lost ---
sums_now=$(checksums "$T_DB")
t_createdb "${T_DB}_other"
"$PSQL" -X -q -d "${T_DB}_other" -c "begin" -c "comment on database \"$T_DB\" is 'being edited'" \
	-c "select pg_sleep(60)" -c "rollback" >/dev/null 2>&1 &
bg_pids+=($!)
"$PSQL" -X -q -d "$T_DB" -c "select pg_sleep(60)" >/dev/null 2>&1 &  # an app session: terminated
bg_pids+=($!)
for _ in $(seq 100); do
	[ "$(t_sql "select count(*) from pg_locks l join pg_database d on d.oid = l.objid where l.locktype = 'object'
	            and l.classid = 'pg_database'::regclass and d.datname = '$T_DB' and l.granted" postgres)" = 1 ] &&
	[ "$(t_sql "select count(*) from pg_stat_activity where datname = '$T_DB' and wait_event = 'PgSleep'" postgres)" = 1 ] && break
	sleep 0.1
done
blocker=$(t_sql "select l.pid from pg_locks l join pg_database d on d.oid = l.objid where l.locktype = 'object'
                 and l.classid = 'pg_database'::regclass and d.datname = '$T_DB'" postgres)
t_match "a session in another database holds a lock on $T_DB" "$blocker" '^[0-9]+$'
t_run 3 "the rename is blocked: the rollback fails" rb --run "$deploy_run" --restore --lock-wait 1 --confirm "restore $T_DB"
t_match "names the blocker's pid" "$err" "pid $blocker holds ShareUpdateExclusiveLock on the database"
t_match "names its query" "$err" 'select pg_sleep\(60\)'
t_match "says the target is intact and the copy kept" "$err$out" "$T_DB is intact under its own name and accepts connections again.*kept as ${T_DB}_rollback_"
t_match "the app session was terminated first" "$out" 'terminate: 1 session terminated'
t_eq "the target is connectable and unchanged" "$(checksums "$T_DB")" "$sums_now"
t_eq "it accepts connections" "$(t_sql "select datallowconn from pg_database where datname = '$T_DB'" postgres)" t
t_match "the restored copy is kept" "$(dbs_like "${T_DB}_rollback_")" "^${T_DB}_rollback_[0-9]{8}T[0-9]{6}\$"
t_eq "no second failed database" "$(dbs_like "${T_DB}_failed_")" "$failed"
t_eq "the blocker is journaled" "$(journal 'select(.type == "step" and .data.step == "rename_old" and .data.state == "failed") | .data.blockers[0].pid')" "$blocker"
t_run 3 "the next choice" rb --run "$deploy_run"
t_match "warns about the copy left over, naming the DROP to run" "$err" \
	"the database $(dbs_like "${T_DB}_rollback_") is left over from an earlier rollback .*DROP DATABASE \"?$(dbs_like "${T_DB}_rollback_")"
t_match "and keeps it" "$(dbs_like "${T_DB}_rollback_")" "^${T_DB}_rollback_[0-9]{8}T[0-9]{6}\$"
{ kill -KILL "${bg_pids[@]}"; wait "${bg_pids[@]}"; } 2>/dev/null
bg_pids=()
t_sql_do "select pg_terminate_backend($blocker)" postgres  # its server process outlives the killed psql
for _ in $(seq 100); do
	[ "$(t_sql "select count(*) from pg_stat_activity where pid = $blocker" postgres)" = 0 ] && break
	sleep 0.1
done
t_sql_do "drop database \"$(dbs_like "${T_DB}_rollback_")\" with (force)" postgres

# --- Ctrl-C while the rename waits for its lock: the target keeps its name and data and accepts
# connections again; the restored copy is kept and named ---
"$PSQL" -X -q -d "${T_DB}_other" -c "begin" -c "comment on database \"$T_DB\" is 'being edited'" \
	-c "select pg_sleep(60)" -c "rollback" >/dev/null 2>&1 &
bg_pids+=($!)
# the binary itself in the background (not the rb function: its subshell would get the signal)
"$PGRUNBOOK" rollback --plan "$W/plan.yaml" --run "$deploy_run" --restore --lock-wait 60 --confirm "restore $T_DB" \
	>"$T_TMP/ci.out" 2>"$T_TMP/ci.err" &
rb_pid=$!
waiting=0
for _ in $(seq 300); do
	[ "$(t_sql "select count(*) from pg_stat_activity where wait_event_type = 'Lock'
	            and query ilike 'alter database%rename%'" postgres)" = 1 ] && { waiting=1; break; }
	sleep 0.1
done
t_eq "the rename waits for the lock" "$waiting" 1
kill -INT "$rb_pid"
wait "$rb_pid"
t_eq "Ctrl-C while the rename waits: exit 3" "$?" 3
t_match "says it was cancelled" "$(cat "$T_TMP/ci.err" "$T_TMP/ci.out")" 'cancel'
t_match "says the target is intact and where the copy is" "$(cat "$T_TMP/ci.err" "$T_TMP/ci.out")" \
	"$T_DB is intact under its own name and accepts connections again.*kept as ${T_DB}_rollback_"
t_eq "the target is unchanged" "$(checksums "$T_DB")" "$sums_now"
t_eq "it accepts connections again" "$(t_sql "select datallowconn from pg_database where datname = '$T_DB'" postgres)" t
t_eq "no second failed database" "$(dbs_like "${T_DB}_failed_")" "$failed"
t_eq "no rename of ours is left waiting" \
	"$(t_sql "select count(*) from pg_stat_activity where query ilike 'alter database%rename%' and state <> 'idle'" postgres)" 0
{ kill -KILL "${bg_pids[@]}"; wait "${bg_pids[@]}"; } 2>/dev/null
bg_pids=()
t_sql_do "select pg_terminate_backend(pid) from pg_stat_activity where datname = '${T_DB}_other'" postgres
for c in $(dbs_like "${T_DB}_rollback_"); do t_sql_do "drop database \"$c\" with (force)" postgres; done

# --- the second rename fails (a session connected to the restored copy): the original gets its
# name back, so the target's name never goes missing ---
"$PSQL" -X -q -d "${T_DB}_other" -c "begin" -c "comment on database \"$T_DB\" is 'being edited'" \
	-c "select pg_sleep(3)" -c "rollback" >/dev/null 2>&1 &
bg_pids+=($!)
rb --run "$deploy_run" --restore --lock-wait 10 --confirm "restore $T_DB" >"$T_TMP/rn.out" 2>"$T_TMP/rn.err" &
rb_pid=$!
copy=""
for _ in $(seq 200); do
	copy=$(dbs_like "${T_DB}_rollback_")
	[ -n "$copy" ] && break
	sleep 0.05
done
"$PSQL" -X -q -d "$copy" -c "select pg_sleep(30)" >/dev/null 2>&1 &  # holds the restored copy open
bg_pids+=($!)
wait "$rb_pid"
t_eq "the second rename fails: exit 3" "$?" 3
t_match "the first rename waited for the lock and succeeded" "$(cat "$T_TMP/rn.out")" "rename_old: $T_DB is now ${T_DB}_failed_"
t_match "the second rename failed: the copy is in use" "$(cat "$T_TMP/rn.out")" "rename_new: .*being accessed by other users"
t_match "the original was renamed back" "$(cat "$T_TMP/rn.out")" "rename_back: the original name is back"
t_match "says the original has its name again" "$(cat "$T_TMP/rn.err")" "$T_DB is the original database again, under its own name, accepting connections. The restored copy is kept as $copy"
t_eq "the target is the original, unchanged" "$(checksums "$T_DB")" "$sums_now"
t_eq "it accepts connections" "$(t_sql "select datallowconn from pg_database where datname = '$T_DB'" postgres)" t
t_eq "no second failed database" "$(dbs_like "${T_DB}_failed_")" "$failed"
t_eq "the copy is kept" "$(dbs_like "${T_DB}_rollback_")" "$copy"
{ kill -KILL "${bg_pids[@]}"; wait "${bg_pids[@]}"; } 2>/dev/null
bg_pids=()
t_sql_do "drop database \"$copy\" with (force)" postgres

# --- kill -9 between the two renames: no database has the target's name; the next rollback
# refuses and names the statements that put the original back (it neither restores again nor
# claims the target is untouched) ---
"$PSQL" -X -q -d "${T_DB}_other" -c "begin" -c "comment on database \"$T_DB\" is 'being edited'" \
	-c "select pg_sleep(3)" -c "rollback" >/dev/null 2>&1 &
bg_pids+=($!)
rb --run "$deploy_run" --restore --lock-wait 30 --confirm "restore $T_DB" >"$T_TMP/k9.out" 2>"$T_TMP/k9.err" &
rb_pid=$!
renaming() {  # the number of ALTER DATABASE .. RENAME statements waiting for a lock
	t_sql "select count(*) from pg_stat_activity where query like 'ALTER DATABASE%RENAME TO%'
	       and wait_event_type = 'Lock'" postgres
}
for _ in $(seq 600); do [ "$(renaming)" = 1 ] && break; sleep 0.05; done
copy=$(dbs_like "${T_DB}_rollback_")
t_match "the first rename waits for the lock, the copy is restored" "$copy" "^${T_DB}_rollback_"
"$PSQL" -X -q -d "${T_DB}_other" -c "begin" -c "comment on database \"$copy\" is 'held'" \
	-c "select pg_sleep(60)" -c "rollback" >/dev/null 2>&1 &
bg_pids+=($!)
for _ in $(seq 600); do
	[ "$(journal 'select(.data.step == "rename_new" and .data.state == "started")' | wc -l)" = 1 ] &&
	[ "$(renaming)" = 1 ] && break
	sleep 0.05
done
kill -KILL "$rb_pid"
wait "$rb_pid" 2>/dev/null
t_sql_do "select pg_terminate_backend(pid) from pg_stat_activity where query like 'ALTER DATABASE%RENAME TO%'
          or query like 'comment on database%'" postgres
{ kill -KILL "${bg_pids[@]}"; wait "${bg_pids[@]}"; } 2>/dev/null
bg_pids=()
for _ in $(seq 100); do [ "$(renaming)" = 0 ] && break; sleep 0.1; done
failed2=$(dbs_like "${T_DB}_failed_" | tr ' ' '\n' | grep -vx "$failed")
t_match "killed after the first rename: the original is ${T_DB}_failed_<ts>" "$failed2" "^${T_DB}_failed_[0-9]{8}T[0-9]{6}\$"
t_eq "and no database is named $T_DB" "$(t_sql "select count(*) from pg_database where datname = '$T_DB'" postgres)" 0
t_run 3 "the next rollback refuses" rb --run "$deploy_run" --restore --confirm "restore $T_DB"
t_match "says the swap was left half done, naming the original" "$out$err" \
	"no database is named $T_DB: the rollback run [^ ]+ was stopped between its two renames, leaving the original database as $failed2"
t_match "and the exact statements that put it back" "$out$err" \
	"ALTER DATABASE \"$failed2\" RENAME TO \"$T_DB\"; ALTER DATABASE \"$T_DB\" ALLOW_CONNECTIONS true\\."
t_nomatch "does not claim the target is untouched" "$err" "$T_DB is untouched"
t_eq "no second copy was restored" "$(dbs_like "${T_DB}_rollback_")" "$copy"
t_sql_do "ALTER DATABASE \"$failed2\" RENAME TO \"$T_DB\"; ALTER DATABASE \"$T_DB\" ALLOW_CONNECTIONS true;" postgres
t_eq "the statements give the original back" "$(checksums "$T_DB")" "$sums_now"
t_sql_do "drop database \"$copy\" with (force)" postgres

# --- a tampered or truncated archive: refused by backup_restore() before anything is created ---
cp "$archive" "$T_TMP/cut.dump"
cp "$archive.json" "$T_TMP/cut.dump.json"
truncate -s $(( $(stat -c %s "$archive") / 2 )) "$T_TMP/cut.dump"
t_run 3 "backup_restore of a truncated archive" "$PROBE" "$W/plan.yaml" "$T_TMP/cut.dump" "${T_DB}_probe"
t_match "says it was cut off" "$err" "is $(( $(stat -c %s "$archive") / 2 )) bytes, the manifest says $(stat -c %s "$archive")"
t_match "the checksum step failed" "$out" '"step":"checksum"'
t_nomatch "nothing was created" "$out" '"step":"create"'
t_eq "no database" "$(dbs_like "${T_DB}_probe")" ""
cp "$archive" "$T_TMP/bad.dump"
cp "$archive.json" "$T_TMP/bad.dump.json"
printf 'X' | dd of="$T_TMP/bad.dump" bs=1 seek=100 conv=notrunc status=none
t_run 3 "backup_restore of a tampered archive" "$PROBE" "$W/plan.yaml" "$T_TMP/bad.dump" "${T_DB}_probe"
t_match "says checksum mismatch" "$err" 'checksum mismatch'
t_eq "no database" "$(dbs_like "${T_DB}_probe")" ""
t_run 3 "rollback with the tampered archive: refused at the choice" rb --run "$deploy_run" --backup "$T_TMP/bad.dump" --confirm "restore $T_DB"
t_match "the choice says why" "$out" 'path: +none.*|cannot be restored: the archive .* no longer matches'
t_eq "no database" "$(dbs_like "${T_DB}_rollback_")" ""
t_run 0 "backup_restore of the intact archive" "$PROBE" "$W/plan.yaml" "$archive" "${T_DB}_probe"
t_eq "checksum, create, restore, counts" "$(printf '%s' "$out" | grep -o '"state":"done","step":"[a-z]*"' | tr '\n' ' ')" \
	'"state":"done","step":"checksum" "state":"done","step":"create" "state":"done","step":"restore" "state":"done","step":"counts" '
t_eq "the copy equals the backup" "$(checksums "${T_DB}_probe")" "$sums_backup"
t_eq "the copy sorts like the original" "$(t_sql "select datcollate || datctype || encoding from pg_database where datname = '${T_DB}_probe'" postgres)" \
	"$(t_sql "select datcollate || datctype || encoding from pg_database where datname = '$T_DB'" postgres)"
t_run 3 "backup_restore into an existing database: refused" "$PROBE" "$W/plan.yaml" "$archive" "${T_DB}_probe"
t_match "says it exists" "$err" "database ${T_DB}_probe already exists"
t_eq "the existing one is untouched" "$(checksums "${T_DB}_probe")" "$sums_backup"

# --- the server cannot be reached: exit 2, nothing done ---
sed "s/port=$PGPORT/port=1/" "$W/plan.yaml" >"$T_TMP/down.yaml"
t_run 2 "an unreachable server: exit 2" "$PGRUNBOOK" rollback --plan "$T_TMP/down.yaml" --backup "$archive" --confirm "restore $T_DB"
t_match "says it could not connect" "$err" 'could not connect'

# --- the down SQL path: two migrations with down.sql, nothing synced ---
W2=$T_TMP/dn
M2=$W2/prisma/migrations
mkdir -p "$M2"
cp "$M/migration_lock.toml" "$M2/"
cat >"$W2/plan.yaml" <<EOF
name: rollback down test
environments:
  prod: { conninfo: "host=$PGHOST port=$PGPORT dbname=$DN" }
  staging: { conninfo: "host=$PGHOST port=$PGPORT dbname=${DN}_stg" }
target: prod
backup: { dir: ./backups }
staging: { environment: staging }
migrations: { dir: prisma/migrations, lock_timeout: 1s, retries: 1 }
EOF
t_createdb "$DN"
mkdir -p "$M2/20250101000000_init" && cp "$M/20250101000000_init/migration.sql" "$M2/20250101000000_init/"
t_run 0 "down: the initial schema" "$PGRUNBOOK" migrate deploy --plan "$W2/plan.yaml" --waive-backup "waive-backup $DN"
t_sql_do "insert into \"User\" (email) values ('a@x'), ('b@x')" "$DN"
schema() {
	t_sql "select string_agg(table_name || '.' || column_name || ':' || data_type, ',' order by table_name, column_name)
	       from information_schema.columns where table_schema = 'public' and table_name <> '_prisma_migrations'" "$DN"
}
schema_before=$(schema)
mkdir -p "$M2/20250301000000_note" "$M2/20250302000000_tag"
printf 'ALTER TABLE "User" ADD COLUMN "note" TEXT;\n' >"$M2/20250301000000_note/migration.sql"
printf 'ALTER TABLE "User" DROP COLUMN "note";\n' >"$M2/20250301000000_note/down.sql"
printf 'CREATE TABLE "Tag" ("id" INTEGER PRIMARY KEY, "userId" INTEGER REFERENCES "User"("id"));\n' >"$M2/20250302000000_tag/migration.sql"
printf 'DROP TABLE "Tag";\n' >"$M2/20250302000000_tag/down.sql"
t_run 0 "down: two migrations deployed" "$PGRUNBOOK" migrate deploy --plan "$W2/plan.yaml" --waive-backup "waive-backup $DN"
t_nomatch "the schema changed" "$(schema)" "^$schema_before\$"
t_run 3 "down: the choice" "$PGRUNBOOK" rollback --plan "$W2/plan.yaml"
t_match "down SQL is chosen" "$out" 'path: +down_sql'
t_match "why: every migration has a down.sql and nothing was synced" "$out" 'every migration this run applied \(2\) has a down\.sql.*synced no data'
t_match "newest first" "$out" '1\. 20250302000000_tag: run .*/down\.sql'
t_match "phrase" "$out" "phrase: +rollback $DN"
t_run 3 "down: the choice as JSON" "$PGRUNBOOK" rollback --plan "$W2/plan.yaml" --json
t_eq "path, phrase and the migrations newest last" \
	"$(printf '%s' "$out" | jq -r '[.choice.path, .choice.phrase, (.choice.migrations | map(.name) | join(",")), .result.state] | join(" | ")')" \
	"down_sql | rollback $DN | 20250301000000_note,20250302000000_tag | Nothing was changed: no phrase was given."
t_run 0 "down: rolled back" "$PGRUNBOOK" rollback --plan "$W2/plan.yaml" --confirm "rollback $DN"
t_match "says so" "$out" "rollback done: $DN is back to its schema before the run: 2 migrations undone"
t_eq "the schema is back" "$(schema)" "$schema_before"
t_eq "the data is kept" "$(t_sql "select string_agg(email, ',' order by id) from \"User\"" "$DN")" "a@x,b@x"
t_eq "both rows marked rolled back" \
	"$(t_sql "select string_agg(migration_name || ':' || (rolled_back_at is not null)::text, ',' order by migration_name) from _prisma_migrations where migration_name like '202503%'" "$DN")" \
	"20250301000000_note:true,20250302000000_tag:true"
t_eq "no database was created" "$(dbs_like "${DN}_")" ""
t_run 3 "migrate status: both pending again" "$PGRUNBOOK" migrate status --plan "$W2/plan.yaml" --json
t_eq "pending" "$(printf '%s' "$out" | jq -r '[.migrations[] | select(.state == "pending") | .name] | join(",")')" \
	"20250301000000_note,20250302000000_tag"
t_run 0 "and they deploy again" "$PGRUNBOOK" migrate deploy --plan "$W2/plan.yaml" --waive-backup "waive-backup $DN"

# --- a migration that loses data: its down.sql brings the column back, not its values ---
rb2() { "$PGRUNBOOK" rollback --plan "$W2/plan.yaml" "$@"; }
phones() { t_sql "select coalesce(string_agg(coalesce(phone, '-'), ',' order by id), '') from \"User\"" "$DN"; }
t_sql_do "update \"User\" set phone = 'p-' || id" "$DN"
mkdir -p "$M2/20250401000000_drop_phone"
printf 'ALTER TABLE "User" DROP COLUMN "phone";\n' >"$M2/20250401000000_drop_phone/migration.sql"
printf 'ALTER TABLE "User" ADD COLUMN "phone" TEXT;\n' >"$M2/20250401000000_drop_phone/down.sql"
t_run 0 "loss: the column is dropped, no backup taken" "$PGRUNBOOK" migrate deploy --plan "$W2/plan.yaml" \
	--waive-backup "waive-backup $DN"
t_run 3 "loss, no backup: the choice" rb2
t_match "down SQL is the only way back" "$out" 'path: +down_sql'
t_match "the why names the data it cannot bring back" "$out" \
	'why: .*no verified backup is known.*which stays lost: 20250401000000_drop_phone \(drop column'
t_run 0 "loss, no backup: rolled back by down SQL" rb2 --confirm "rollback $DN"
t_eq "the column is back, its values are not" "$(phones)" "-,-"
t_sql_do "update \"User\" set phone = 'p-' || id" "$DN"
t_run 0 "loss: a backup of $DN" "$PGRUNBOOK" backup --plan "$W2/plan.yaml"
b1=$(ls -t "$W2"/backups/*.dump | head -n 1)
t_run 0 "loss: the column is dropped again, the backup relied on" "$PGRUNBOOK" migrate deploy --plan "$W2/plan.yaml"
runA=$(basename "$(last_run)")
t_run 3 "loss, with a backup: the choice" rb2
t_match "the restore is chosen" "$out" 'path: +restore'
t_match "the why names the statement that loses data" "$out" \
	"why: +down SQL does not do: the run's migrations lose data their down\\.sql cannot bring back: 20250401000000_drop_phone \\(drop column"
t_match "and the backup" "$out" "backup: +$b1"

# --- a restore makes the runs before it obsolete: a later rollback does not bring them back ---
sleep 1  # a backup in a later second: in the same second the second one sorts before the first
t_run 0 "a second backup" "$PGRUNBOOK" backup --plan "$W2/plan.yaml"
b2=$(ls -t "$W2"/backups/*.dump | head -n 1)
mkdir -p "$M2/20250402000000_flag"
printf 'ALTER TABLE "User" ADD COLUMN "flag" BOOLEAN;\n' >"$M2/20250402000000_flag/migration.sql"
printf 'ALTER TABLE "User" DROP COLUMN "flag";\n' >"$M2/20250402000000_flag/down.sql"
t_run 0 "a second release, relying on the second backup" "$PGRUNBOOK" migrate deploy --plan "$W2/plan.yaml"
runB=$(basename "$(last_run)")
t_run 0 "the first release restored from the first backup" rb2 --run "$runA" --confirm "restore $DN"
t_eq "the phones are back" "$(phones)" "p-1,p-2"
t_eq "the second release is gone too" "$(t_sql "select count(*) from information_schema.columns where table_name = 'User' and column_name = 'flag'" "$DN")" 0
t_run 3 "a later rollback" rb2
t_nomatch "does not pick the release the restore already undid" "$out" "run: +$runB"
t_match "nothing to roll back" "$out" 'path: +none'
t_run 3 "that release given with --run" rb2 --run "$runB" --confirm "restore $DN"
t_match "its backup is refused" "$out" "path: +none"
t_match "saying it would bring back what the restore undid" "$out" "the backup $b2 .* holds changes the restore of .* rolled back"
t_eq "the phones are still there" "$(phones)" "p-1,p-2"
t_run 3 "with --backup: offered, with a warning" rb2 --run "$runB" --backup "$b2"
t_match "restore, warned" "$out" "path: +restore.*|Warning: this backup holds changes the restore of"
t_match "  ... the warning" "$out" "Warning: this backup holds changes the restore of"

# --- a staging rehearsal after a deploy: the rollback undoes the deploy, not the rehearsal ---
t_createdb "${DN}_stg"
t_run 0 "a third backup" "$PGRUNBOOK" backup --plan "$W2/plan.yaml"
mkdir -p "$M2/20250403000000_tag2"
printf 'CREATE TABLE "Tag2" ("id" INTEGER PRIMARY KEY);\n' >"$M2/20250403000000_tag2/migration.sql"
printf 'DROP TABLE "Tag2";\n' >"$M2/20250403000000_tag2/down.sql"
t_run 0 "a third release" "$PGRUNBOOK" migrate deploy --plan "$W2/plan.yaml"
runC=$(basename "$(last_run)")
b3=$(ls -t "$W2"/backups/*.dump | head -n 1)
t_run 0 "then a staging rehearsal of it" "$PGRUNBOOK" staging --plan "$W2/plan.yaml" --backup "$b3" \
	--confirm "replace ${DN}_stg"
t_run 3 "the rollback's choice" rb2
t_match "picks the deploy, not the rehearsal" "$out" "run: +$runC \\(the newest run"
t_nomatch "something to roll back" "$out" 'path: +none'
t_sql_do "drop database \"$DN\" with (force)" postgres

t_done
