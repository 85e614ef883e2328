#!/usr/bin/env bash
# preflight.sh: `pgrunbook preflight` against the real cluster: values, Prisma migrations, the
# advisory lock held by another session, unreachable servers, a real streaming standby, JSON, journal.
. "$top_srcdir/tests/lib.sh"

unset PGAPPNAME PGCONNECT_TIMEOUT
src="${T_DB}_src"
stg="${T_DB}_stg"
runs="$XDG_STATE_HOME/pgrunbook/runs"
run_user=${T_CLUSTER_USER:-}
bg_pids=()
standby_data=""

sql_do() {  # SQL [DB]: runs SQL, a failure is a visible test failure
	local res
	if ! res=$(psql -X -q -v ON_ERROR_STOP=1 -d "${2:-$PGDATABASE}" -c "$1" 2>&1); then
		t_fail "sql: ${1:0:60}..." "$res"
		return 1
	fi
}

as_cluster_user() {
	if [ -n "$run_user" ]; then runuser -u "$run_user" -- "$@"; else "$@"; fi
}

cleanup() {
	local p
	for p in "${bg_pids[@]}"; do kill "$p" 2>/dev/null; done
	if [ -n "$standby_data" ] && [ -f "$standby_data/postmaster.pid" ]; then
		as_cluster_user "$PG_BINDIR/pg_ctl" -D "$standby_data" -m immediate -w stop >/dev/null 2>&1
	fi
	psql -X -q -d postgres -c "drop database if exists \"$src\" with (force)" \
		-c "drop database if exists \"$stg\" with (force)" >/dev/null 2>&1
}
trap cleanup EXIT

t_createdb "$src"
t_createdb "$stg"

cat >"$T_TMP/pg_service.conf" <<EOF
[rbstaging]
host=$PGHOST
port=$PGPORT
dbname=$stg
EOF
export PGSERVICEFILE="$T_TMP/pg_service.conf"
export RB_PROD_URL="postgresql://$PGUSER@/$T_DB?host=$PGHOST&port=$PGPORT"

# Three environments, one of each kind: conninfo, service, URI in a variable.
cat >"$T_TMP/plan.yaml" <<EOF
name: preflight test
environments:
  dev:     { conninfo: "host=$PGHOST port=$PGPORT dbname=$src" }
  staging: { service: rbstaging }
  prod:    { dsn_env: RB_PROD_URL }
source: dev
target: prod
staging: { environment: staging }
EOF

jenv() {  # name jq-filter: a field of one environment in $out (JSON)
	printf '%s\n' "$out" | jq -c --arg n "$1" ".environments[] | select(.name == \$n) | $2"
}

# --- a clean database: ready ---
sql_do "create table t1 (id int primary key); create table t2 (id int);
       create table parted (id int) partition by range (id);
       create table parted_1 partition of parted for values from (0) to (10);
       create schema other; create table other.t3 (x text);
       create view v1 as select 1; create materialized view mv1 as select 1 as one;
       create sequence s1"
t_run 0 "all environments reachable: exit 0" "$PGRUNBOOK" preflight --plan "$T_TMP/plan.yaml"
human=$out
want_ver=$(t_sql "show server_version" | cut -d' ' -f1)
t_eq "version shown for all three environments" "$(grep -c "version: *$want_ver\$" <<<"$human")" 3
t_match "prod block with its role" "$human" '^prod \[target\]$'
t_match "staging block with its role" "$human" '^staging \[staging\]$'
t_match "dev block with its role" "$human" '^dev \[source\]$'
t_match "superuser shown" "$human" "user: +$PGUSER \\(superuser: yes\\)"
t_match "size pretty-printed" "$human" 'size: +[0-9]+\.[0-9] (kB|MB|GB)$'
t_match "ready summary" "$human" '^preflight: ready$'
t_nomatch "nothing blocked" "$human" 'BLOCKED'
t_match "run id on stderr" "$err" '^run [0-9]{8}T[0-9]{6}\.[0-9]{3}Z-[0-9a-f]{6}: journaled in /'
run_dir=$(sed -n 's/^run [^:]*: journaled in //p' <<<"$err")
run_id=$(sed -n 's/^run \([^:]*\): journaled in .*/\1/p' <<<"$err")

t_run 0 "--json --no-journal: exit 0" "$PGRUNBOOK" preflight --plan "$T_TMP/plan.yaml" --json --no-journal
if printf '%s\n' "$out" | jq -e . >/dev/null 2>&1; then t_ok "--json parses"; else t_fail "--json parses" "$out"; fi
t_eq "no run id without a journal" "$(jq -c .run_id <<<"$out")" null
t_eq "not blocked" "$(jq -c .blocked <<<"$out")" false
t_eq "environment order as in the plan" "$(jq -c '[.environments[].name]' <<<"$out")" '["dev","staging","prod"]'
t_eq "roles" "$(jq -c '[.environments[].roles]' <<<"$out")" '[["source"],["staging"],["target"]]'
t_eq "server_version_num" "$(jenv prod .server_version_num)" "$(t_sql "show server_version_num")"
t_eq "server_version" "$(jenv prod .server_version)" "\"$want_ver\""
t_eq "current_user" "$(jenv prod .current_user)" "\"$PGUSER\""
t_eq "superuser" "$(jenv prod .superuser)" true
want_tables=$(t_sql "select count(*) from pg_class c join pg_namespace n on n.oid = c.relnamespace
	where c.relkind in ('r','p') and n.nspname not in ('pg_catalog','information_schema')
	  and n.nspname not like 'pg_toast%'")
t_eq "the five tables created (2 plain, partitioned + partition, other.t3)" "$want_tables" 5
t_eq "tables counted on prod" "$(jenv prod .tables)" 5
t_eq "tables counted on staging (empty)" "$(jenv staging .tables)" 0
size=$(jenv prod .db_size_bytes)
want_size=$(t_sql "select pg_database_size('$T_DB')")
if [ "$size" -gt 0 ] && [ $((size * 100 / want_size)) -ge 95 ] && [ $((size * 100 / want_size)) -le 105 ]; then
	t_ok "db size $size close to pg_database_size $want_size"
else
	t_fail "db size $size close to pg_database_size $want_size"
fi
t_eq "where (URI in a variable)" "$(jenv prod .where)" "\"$PGHOST:$PGPORT/$T_DB\""
t_eq "where (service)" "$(jenv staging .where)" "\"$PGHOST:$PGPORT/$stg\""
t_eq "not a standby" "$(jenv prod .standby)" false
t_eq "no _prisma_migrations" "$(jenv prod .prisma.table)" false
t_eq "lock free" "$(jenv prod .lock.held)" false
t_eq "no other sessions" "$(jenv prod .sessions)" '{"active":0,"total":0}'

# --- the journal of the first run ---
journal="$run_dir/journal.jsonl"
if [ -f "$journal" ]; then t_ok "journal file exists"; else t_fail "journal file exists" "$err"; fi
t_eq "run id names its directory" "$(basename "$run_dir")" "$run_id"
t_eq "preflight events in order" \
	"$(jq -r 'select(.stage == "preflight" and .type != "log") | .type' "$journal" | tr '\n' ' ')" \
	"stage_started stage_result stage_done "
t_eq "one log line per environment" "$(jq -r 'select(.type == "log") | .stage' "$journal" | wc -l)" 3
t_eq "run_finished done" "$(jq -c 'select(.type == "run_finished") | .data' "$journal")" '{"state":"done"}'
t_eq "stage_result holds the preflight data" \
	"$(jq -c 'select(.type == "stage_result") | .data.environments | map(.name)' "$journal")" \
	'["dev","staging","prod"]'

# --- Prisma migrations: applied, failed, rolled back ---
prisma_ddl='create table %s (
	id varchar(36) primary key, checksum varchar(64) not null, finished_at timestamptz,
	migration_name varchar(255) not null, logs text, rolled_back_at timestamptz,
	started_at timestamptz not null default now(), applied_steps_count int not null default 0);'
sql_do "$(printf "$prisma_ddl" '"_prisma_migrations"')
	insert into _prisma_migrations (id, checksum, finished_at, migration_name, rolled_back_at, applied_steps_count) values
	('a1', repeat('a', 64), now(), '20260101000000_init', null, 1),
	('a2', repeat('b', 64), now(), '20260102000000_add_users', null, 1),
	('f1', repeat('c', 64), null, '20260103000000_add_orders', null, 0),
	('r1', repeat('d', 64), null, '20260104000000_bad_idea', now(), 0)"
t_run 3 "failed Prisma migration on the target: exit 3" "$PGRUNBOOK" preflight --plan "$T_TMP/plan.yaml" --no-journal
t_match "prisma counts" "$out" 'prisma: +applied 2, failed 1, rolled back 1'
t_match "blocker names the failed migration" "$out" \
	'BLOCKED: target "prod" has 1 failed Prisma migration in public\._prisma_migrations: 20260103000000_add_orders'
t_match "blocked summary" "$out" '^preflight: blocked \(1 blocker\)$'
t_run 3 "same as JSON" "$PGRUNBOOK" preflight --plan "$T_TMP/plan.yaml" --no-journal --json
t_eq "JSON prisma" "$(jenv prod '.prisma | del(.schema)')" \
	'{"applied":2,"failed":1,"failed_migrations":["20260103000000_add_orders"],"rolled_back":1,"table":true}'
t_eq "JSON blocked" "$(jq -c .blocked <<<"$out")" true

# a failed migration on the source only warns
sql_do "$(printf "$prisma_ddl" '"_prisma_migrations"')
	insert into _prisma_migrations (id, checksum, migration_name) values ('x', 'x', '20260105000000_dev_wip')" "$src"
sql_do "update _prisma_migrations set rolled_back_at = now() where id = 'f1'"
t_run 0 "failed migration only on the source: exit 0" "$PGRUNBOOK" preflight --plan "$T_TMP/plan.yaml" --no-journal
t_match "source failure is a warning" "$out" 'WARNING: source "dev" has 1 failed Prisma migration.*20260105000000_dev_wip'
t_match "target counts after marking rolled back" "$out" 'applied 2, failed 0, rolled back 2'

# migrations in another schema
mkdir -p "$T_TMP/migrations"
sed 's/^staging: .*$/&\nmigrations: { dir: migrations, format: prisma, schema: app }/' "$T_TMP/plan.yaml" >"$T_TMP/plan-app.yaml"
t_sql "create schema app; $(printf "$prisma_ddl" 'app._prisma_migrations')
	insert into app._prisma_migrations (id, checksum, finished_at, migration_name) values ('z', 'z', null, 'in_app_schema')"
t_run 3 "migrations.schema is where _prisma_migrations is read" "$PGRUNBOOK" preflight --plan "$T_TMP/plan-app.yaml" --no-journal --json
t_eq "counts from app._prisma_migrations" "$(jenv prod '[.prisma.schema, .prisma.applied, .prisma.failed, .prisma.failed_migrations]')" \
	'["app",0,1,["in_app_schema"]]'
t_eq "the other environments have no app schema" "$(jenv dev .prisma.table)" false
sql_do "drop schema app cascade"

# --- the advisory lock held by another session ---
wait_lock() {  # db: prints the pid holding Prisma's lock in db, waiting up to 20 s
	local i pid
	for i in $(seq 1 100); do
		pid=$(t_sql "select pid from pg_locks where locktype = 'advisory' and classid = 0
			and objid = 72707369 and objsubid = 1 and granted
			and database = (select oid from pg_database where datname = '$1')")
		[ -n "$pid" ] && { echo "$pid"; return 0; }
		sleep 0.2
	done
	return 1
}
PGAPPNAME=rb-lock-holder psql -X -q -d "$src" -c "select pg_advisory_lock(72707369); select pg_sleep(60)" \
	>/dev/null 2>&1 &
bg_pids+=($!)
if src_pid=$(wait_lock "$src"); then t_ok "lock taken in the source database"; else t_fail "lock taken in the source database"; fi
t_run 0 "lock held in another database does not block the target" "$PGRUNBOOK" preflight --plan "$T_TMP/plan.yaml" --no-journal --json
t_eq "target lock free" "$(jenv prod .lock.held)" false
t_eq "source lock held by that pid" "$(jenv dev .lock.pid)" "${src_pid:-none}"
t_eq "source sessions" "$(jenv dev .sessions)" '{"active":1,"total":1}'
kill "${bg_pids[-1]}" 2>/dev/null
sql_do "select pg_terminate_backend(${src_pid:-0})"

PGAPPNAME=rb-lock-holder psql -X -q -d "$T_DB" -c "select pg_advisory_lock(72707369); select pg_sleep(60)" \
	>/dev/null 2>&1 &
bg_pids+=($!)
if lock_pid=$(wait_lock "$T_DB"); then t_ok "lock taken in the target database"; else t_fail "lock taken in the target database"; fi
t_run 3 "lock held on the target: exit 3" "$PGRUNBOOK" preflight --plan "$T_TMP/plan.yaml" --no-journal
t_match "lock line names pid and application" "$out" "lock: +held by pid $lock_pid \\(rb-lock-holder\\)\$"
t_match "blocker names pid, application and since when" "$out" \
	"BLOCKED: advisory lock 72707369 \\(Prisma's migration lock\\) on target \"prod\" is held by another session: pid $lock_pid \\(application \"rb-lock-holder\", connected since [0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z, active since"
t_match "sessions counted" "$out" 'sessions: +1 \(1 active\)'
t_run 3 "lock as JSON" "$PGRUNBOOK" preflight --plan "$T_TMP/plan.yaml" --no-journal --json
t_eq "JSON lock" "$(jenv prod '[.lock.held, .lock.pid, .lock.application, .lock.state]')" \
	"[true,$lock_pid,\"rb-lock-holder\",\"active\"]"
kill "${bg_pids[-1]}" 2>/dev/null
sql_do "select pg_terminate_backend($lock_pid)"
for i in $(seq 1 50); do
	[ -z "$(t_sql "select 1 from pg_locks where locktype = 'advisory' and objid = 72707369")" ] && break
	sleep 0.2
done
t_run 0 "lock released: exit 0 again" "$PGRUNBOOK" preflight --plan "$T_TMP/plan.yaml" --no-journal

# --- an unreachable server ---
free_port() {
	local p
	for p in $(seq $((20000 + RANDOM % 20000)) 65000); do
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
	done
}
port=$(free_port)
sed "s/^  staging: .*\$/  staging: { conninfo: \"host=127.0.0.1 port=$port dbname=gone\" }/" \
	"$T_TMP/plan.yaml" >"$T_TMP/plan-gone.yaml"
t_run 2 "unreachable staging: exit 2" "$PGRUNBOOK" preflight --plan "$T_TMP/plan-gone.yaml"
t_match "libpq's message in the table" "$out" \
	"error: +could not connect to environment \"staging\" \\(127\\.0\\.0\\.1:$port/gone\\): connection to server at \"127\\.0\\.0\\.1\", port $port failed: Connection refused"
t_match "libpq's message on stderr" "$err" "pgrunbook: could not connect to environment \"staging\".*Connection refused"
t_match "blocker says what to do" "$out" 'BLOCKED: staging "staging" is unreachable \(see its error\)\. Check that the server is running'
t_match "the reachable ones are still checked" "$out" "^prod \\[target\\]"
t_match "unreachable summary" "$out" '^preflight: 1 environment unreachable$'
gone_dir=$(sed -n 's/^run [^:]*: journaled in //p' <<<"$err")
t_eq "journal: stage_failed and run_finished failed" \
	"$(jq -r 'select(.type == "stage_failed" or .type == "run_finished") | .type + " " + (.data.state // "-")' "$gone_dir/journal.jsonl" | tr '\n' ' ')" \
	"stage_failed - run_finished failed "
t_run 2 "unreachable as JSON" "$PGRUNBOOK" preflight --plan "$T_TMP/plan-gone.yaml" --json --no-journal
t_eq "JSON reachable false" "$(jenv staging .reachable)" false
t_match "JSON error has libpq's text" "$(jenv staging .error)" 'Connection refused'
t_eq "JSON exit_code" "$(jq .exit_code <<<"$out")" 2

# --- usage and plan errors ---
t_run 1 "no --plan: usage error" "$PGRUNBOOK" preflight
t_run 4 "invalid plan: exit 4" "$PGRUNBOOK" preflight --plan "$T_TMP/nope.yaml"

# --- a real streaming standby built with pg_basebackup -R ---
sb="$T_TMP/standby"
mkdir -p "$sb/sock"
[ -n "$run_user" ] && chown -R "$run_user" "$sb"
chmod 0700 "$sb"
sb_port=$((PGPORT + 1))
if as_cluster_user "$PG_BINDIR/pg_basebackup" -h "$PGHOST" -p "$PGPORT" -U "$PGUSER" \
	-D "$sb/data" -R -X stream -c fast >"$T_TMP/basebackup.log" 2>&1; then
	t_ok "pg_basebackup -R made a standby"
else
	t_fail "pg_basebackup -R made a standby" "$(cat "$T_TMP/basebackup.log")"
fi
standby_data="$sb/data"
if as_cluster_user "$PG_BINDIR/pg_ctl" -D "$sb/data" -l "$sb/log" -w -t 60 \
	-o "-p $sb_port -k $sb/sock -c listen_addresses=''" start >"$T_TMP/pg_ctl.log" 2>&1; then
	t_ok "standby started"
else
	t_fail "standby started" "$(cat "$T_TMP/pg_ctl.log" "$sb/log" 2>/dev/null)"
fi
t_eq "it really is in recovery" "$(psql -XAtq -h "$sb/sock" -p "$sb_port" -d "$T_DB" -c 'select pg_is_in_recovery()')" t
cat >"$T_TMP/plan-standby.yaml" <<EOF
name: standby test
environments:
  primary: { conninfo: "host=$PGHOST port=$PGPORT dbname=$T_DB" }
  replica: { conninfo: "host=$sb/sock port=$sb_port dbname=$T_DB" }
source: replica
target: primary
EOF
t_run 0 "a standby as source only warns" "$PGRUNBOOK" preflight --plan "$T_TMP/plan-standby.yaml" --no-journal
t_match "standby shown" "$out" 'standby: +yes'
t_match "warning for the source standby" "$out" 'WARNING: source "replica" is a standby'
sed -i 's/^source: replica$/source: primary/; s/^target: primary$/target: replica/' "$T_TMP/plan-standby.yaml"
t_run 3 "a standby as target: exit 3" "$PGRUNBOOK" preflight --plan "$T_TMP/plan-standby.yaml" --no-journal
t_match "standby blocker" "$out" 'BLOCKED: target "replica" is a standby \(pg_is_in_recovery\(\) is true\) and cannot take writes'
t_run 3 "standby as JSON" "$PGRUNBOOK" preflight --plan "$T_TMP/plan-standby.yaml" --no-journal --json
t_eq "JSON standby" "$(jenv replica .standby)" true
t_eq "JSON primary not standby" "$(jenv primary .standby)" false
if as_cluster_user "$PG_BINDIR/pg_ctl" -D "$sb/data" -m fast -w stop >/dev/null 2>&1; then
	t_ok "standby stopped"
else
	t_fail "standby stopped"
fi

# A database owner's operator in public must not run with preflight's (superuser) rights.
sql_do "drop database if exists rb_evil"
sql_do "drop role if exists rb_alice"
sql_do "create role rb_alice login"
sql_do "create database rb_evil owner rb_alice"
"$PSQL" -X -q -v ON_ERROR_STOP=1 -U rb_alice -d rb_evil >/dev/null 2>&1 <<'SQL' || t_fail "setting up the hostile database"
create function public.evil_eq(name, name) returns boolean language plpgsql as $f$
begin
	if current_user <> 'rb_alice' then execute 'alter role rb_alice superuser'; end if;
	return $1::text = $2::text;
end $f$;
create operator public.= (leftarg = name, rightarg = name, function = public.evil_eq);
alter database rb_evil set search_path = public, pg_catalog;
SQL
printf 'name: evil\nenvironments:\n  prod: { conninfo: "host=%s port=%s dbname=rb_evil" }\ntarget: prod\n' \
	"$PGHOST" "$PGPORT" >"$T_TMP/evil.yaml"
t_run 0 "preflight of a database with a hostile operator" "$PGRUNBOOK" preflight --no-journal --plan "$T_TMP/evil.yaml"
t_eq "the owner did not become superuser" "$(t_sql "select rolsuper from pg_roles where rolname = 'rb_alice'")" "f"
sql_do "drop database rb_evil with (force)"
sql_do "drop role rb_alice"

# A journal that cannot be written fails the run instead of reporting it done.
printf 'name: jf\nenvironments:\n  prod: { conninfo: "host=%s port=%s dbname=%s" }\ntarget: prod\n' \
	"$PGHOST" "$PGPORT" "$T_DB" >"$T_TMP/jf.yaml"
t_run 0 "preflight of one healthy database" "$PGRUNBOOK" preflight --plan "$T_TMP/jf.yaml"
t_run 3 "the same with a journal that hits the file size limit: exit 3" bash -c \
	'trap "" XFSZ; ulimit -f 2; exec "$0" preflight --plan "$1" >/dev/null' "$PGRUNBOOK" "$T_TMP/jf.yaml"
t_match "the journal failure is named" "$err" 'the journal of run .* could not be written'
t_run 3 "--json with a journal that cannot be written: exit 3" bash -c \
	'trap "" XFSZ; ulimit -f 2; exec "$0" preflight --json --plan "$1" >"$2"' "$PGRUNBOOK" "$T_TMP/jf.yaml" /dev/stdout
t_eq "--json says exit_code 3 too" "$(printf '%s' "$out" | jq -r .exit_code)" "3"

# A staging database whose migrations cannot be read is blocked, not shown as clean.
sql_do "drop role if exists rb_bob"
sql_do "create role rb_bob login"
t_createdb rb_unread
sql_do "$(printf "$prisma_ddl" '"_prisma_migrations"')" rb_unread
sql_do "revoke all on _prisma_migrations from public" rb_unread
printf 'name: unread\nenvironments:\n  prod: { conninfo: "host=%s port=%s dbname=%s" }\n  stage: { conninfo: "host=%s port=%s dbname=rb_unread user=rb_bob" }\ntarget: prod\nstaging: { environment: stage }\n' \
	"$PGHOST" "$PGPORT" "$T_DB" "$PGHOST" "$PGPORT" >"$T_TMP/unread.yaml"
t_run 3 "staging whose migrations cannot be read: blocked" "$PGRUNBOOK" preflight --no-journal --plan "$T_TMP/unread.yaml"
t_match "its prisma state is unknown, not zero" "$out" 'prisma: +unknown'
t_match "the blocker names the staging environment" "$out" 'BLOCKED: could not inspect staging "stage"'
sql_do "drop database rb_unread with (force)"
sql_do "drop role rb_bob"

# Ctrl-C cancels the running statement at once (PQcancel), not after lock_timeout.
sql_do "drop table if exists _prisma_migrations"
sql_do "$(printf "$prisma_ddl" '"_prisma_migrations"')"
printf 'name: cancel\nenvironments:\n  prod: { conninfo: "host=%s port=%s dbname=%s" }\ntarget: prod\n' \
	"$PGHOST" "$PGPORT" "$T_DB" >"$T_TMP/cancel.yaml"
"$PSQL" -X -q -d "$T_DB" -c "begin; lock table _prisma_migrations in access exclusive mode; select pg_sleep(30)" \
	>/dev/null 2>&1 &
locker=$!
for _ in $(seq 50); do
	[ "$(t_sql "select count(*) from pg_locks where mode = 'AccessExclusiveLock' and relation = '_prisma_migrations'::regclass")" = 1 ] && break
	sleep 0.1
done
start=$(date +%s%3N)
"$PGRUNBOOK" preflight --no-journal --plan "$T_TMP/cancel.yaml" >"$T_TMP/cancel.out" 2>&1 &
pf=$!
# Wait until its query is waiting on the lock, then interrupt it.
for _ in $(seq 50); do
	[ "$(t_sql "select count(*) from pg_stat_activity where application_name = 'pgrunbook' and wait_event_type = 'Lock'")" = 1 ] && break
	sleep 0.1
done
kill -INT "$pf"
wait "$pf"
t_eq "an interrupted preflight exits 3" "$?" "3"
elapsed=$(( $(date +%s%3N) - start ))
if [ "$elapsed" -lt 4000 ]; then t_ok "it stopped at once (${elapsed} ms), not after the 5 s lock_timeout"; else t_fail "it took ${elapsed} ms"; fi
t_eq "no pgrunbook query is left on the server" \
	"$(t_sql "select count(*) from pg_stat_activity where application_name = 'pgrunbook'")" "0"
t_match "it says it was cancelled" "$(cat "$T_TMP/cancel.out")" 'cancel'
kill "$locker" 2>/dev/null
wait "$locker" 2>/dev/null
sql_do "select pg_terminate_backend(pid) from pg_stat_activity where query like '%pg_sleep(30)%' and pid <> pg_backend_pid()"

# A server that accepts the connection and never answers: Ctrl-C ends the connect at once.
port=$(perl -MIO::Socket::INET -e '$s=IO::Socket::INET->new(Listen=>5,LocalAddr=>"127.0.0.1",LocalPort=>0) or die; print $s->sockport, "\n"; close STDOUT; sleep 60 while 1' &
       echo $! >"$T_TMP/silent.pid"; sleep 0.5)
silent=$(cat "$T_TMP/silent.pid")
printf 'name: silent\nenvironments:\n  prod: { conninfo: "host=127.0.0.1 port=%s dbname=x user=x connect_timeout=30" }\ntarget: prod\n' \
	"$port" >"$T_TMP/silent.yaml"
start=$(date +%s%3N)
"$PGRUNBOOK" preflight --no-journal --plan "$T_TMP/silent.yaml" >"$T_TMP/silent.out" 2>&1 &
pf=$!
sleep 1
kill -INT "$pf"
wait "$pf"
t_eq "an interrupted connect exits 3" "$?" "3"
elapsed=$(( $(date +%s%3N) - start ))
if [ "$elapsed" -lt 4000 ]; then t_ok "the connect was abandoned at once (${elapsed} ms), not after connect_timeout=30"; else t_fail "it took ${elapsed} ms"; fi
kill "$silent" 2>/dev/null

t_done
