#!/usr/bin/env bash
# backup.sh: `pgrunbook backup` and `backup verify` against the real cluster: custom and directory
# formats, counts taken in the dump's snapshot, manifest, checksums, damaged backups rejected,
# a dump stopped by the file size limit and by SIGTERM, a full file system, the scratch
# database always dropped, and `backup verify --latest` (backup_find_recent).
. "$top_srcdir/tests/lib.sh"

unset PGAPPNAME PGCONNECT_TIMEOUT
runs="$XDG_STATE_HOME/pgrunbook/runs"
mnt=""
bg_pid=""

cleanup() {
	[ -n "$bg_pid" ] && kill -KILL "$bg_pid" 2>/dev/null
	[ -n "$mnt" ] && umount "$mnt" 2>/dev/null
	"$PSQL" -X -q -d postgres -c "drop role if exists rb_bk_pw" >/dev/null 2>&1
}
trap cleanup EXIT

last_run() { ls -1d "$runs"/*/ | sort | tail -n 1; }
journal() { jq -c "$1" "$(last_run)/journal.jsonl"; }

# No scratch database may survive any case.
no_scratch() {
	t_eq "$1: no scratch database left" \
		"$(t_sql "select count(*) from pg_database where datname like '%\\_pgrunbook\\_verify\\_%'" postgres)" 0
}

plan() {  # plan FILE DIR FORMAT JOBS
	cat >"$1" <<EOF
name: backup test
environments:
  prod: { conninfo: "host=$PGHOST port=$PGPORT dbname=$T_DB" }
target: prod
backup: { dir: $2, format: $3, jobs: $4 }
EOF
}

# --- the fixture: several tables, a partitioned one, a mixed-case name, an empty and an
# unlogged table, inheritance, and a large-ish table so the dump takes a moment ---
t_sql_do "
create schema app;
create table users (id serial primary key, name text not null);
insert into users (name) select 'user ' || g from generate_series(1, 1000) g;
create table app.\"Order\" (id bigint primary key, user_id int references users, total numeric(12,2));
insert into app.\"Order\" select g, 1 + g % 1000, g * 1.5 from generate_series(1, 537) g;
create table events (id int, at date not null) partition by range (at);
create table events_2025 partition of events for values from ('2025-01-01') to ('2026-01-01');
create table events_2026 partition of events for values from ('2026-01-01') to ('2027-01-01');
create table events_other partition of events default;
insert into events select g, date '2025-06-01' + (g % 600) from generate_series(1, 3001) g;
insert into events values (0, date '2030-01-01');
create table empty_one (x int);
create unlogged table scratchpad (x int);
insert into scratchpad select generate_series(1, 17);
create table parent_t (x int);
create table child_t () inherits (parent_t);
insert into parent_t values (1), (2);
insert into child_t values (3);
create table big (id int, payload text);
insert into big select g, md5(g::text) || md5((g * 7)::text) || md5((g * 13)::text) from generate_series(1, 1200000) g;
" || t_done

plan "$T_TMP/plan.yaml" ./backups custom 1
plan "$T_TMP/plan-dir.yaml" ./backups directory 2

# --- a full backup, text output: progress, steps, verified ---
t_run 0 "backup (custom format): exit 0" "$PGRUNBOOK" backup --plan "$T_TMP/plan.yaml"
t_match "progress lines: tables done of total, bytes, rate" "$out" \
	'progress: [0-9]+ of 10 tables, [0-9.]+ (kB|MB) written, [0-9.]+ (bytes|kB|MB|GB)/s'
t_match "the free-space check is shown" "$out" 'free space: [0-9.]+ [kMGT]?B in .*, database [0-9.]+ [kM]B'
t_match "the snapshot step names the counted tables" "$out" 'snapshot [0-9A-F-]+ exported; rows of 11 tables counted'
t_match "test restore reported" "$out" "test restore into ${T_DB}_pgrunbook_verify_[0-9a-f]{6}: done"
t_match "counts reported matching" "$out" 'row counts: all 11 tables of the test restore match'
t_match "verified" "$out" '^backup verified$'
no_scratch "custom backup"
dump=$(ls "$T_TMP"/backups/*.dump)
t_match "file name <db>-<UTC yyyymmddThhmmssZ>.dump" "$(basename "$dump")" "^${T_DB}-[0-9]{8}T[0-9]{6}Z\\.dump\$"
t_eq "backup file mode 0600" "$(stat -c %a "$dump")" 600
t_eq "backup directory mode 0700 (created)" "$(stat -c %a "$T_TMP/backups")" 700
m="$dump.json"
t_eq "manifest mode 0600" "$(stat -c %a "$m")" 600
t_eq "no .partial or .tmp left" "$(ls "$T_TMP/backups" | grep -c -E '\.(partial|tmp|failed)$')" 0
t_eq "manifest sha256 = sha256sum of the file" "$(jq -r .sha256 "$m")" "$(sha256sum "$dump" | cut -d' ' -f1)"
t_eq "manifest size = the file's size" "$(jq -r .size "$m")" "$(stat -c %s "$dump")"
t_eq "manifest database, environment, format, verified" \
	"$(jq -r '[.database, .environment, .format, .verified, .file] | join(" ")' "$m")" \
	"$T_DB prod custom true $(basename "$dump")"
t_eq "manifest server port and system identifier" \
	"$(jq -r '[.server.port, .server.system_identifier] | join(" ")' "$m")" \
	"$PGPORT $(t_sql "select system_identifier from pg_control_system()")"
t_eq "manifest run id is the journal's run" "$(jq -r .run_id "$m")" "$(basename "$(last_run)")"
t_eq "manifest plan hash is the plan's" "$(jq -r .plan_hash "$m")" \
	"$("$PGRUNBOOK" check --plan "$T_TMP/plan.yaml" --json | jq -r .hash)"
t_eq "manifest who" "$(jq -r .who "$m")" "${USER:-$(id -un)}"
t_match "manifest started/finished are UTC times" "$(jq -r '.started + " " + .finished' "$m")" \
	'^[0-9-]{10}T[0-9:.]{12}Z [0-9-]{10}T[0-9:.]{12}Z$'
t_match "manifest says why it is verified" "$(jq -r .verification.why "$m")" 'test restore'

# Counts in the manifest equal the SQL counts, table by table, and name every table.
sql_tables=$(t_sql "select n.nspname || '.' || c.relname || ' ' ||
	(xpath('/row/c/text()', query_to_xml(format('select count(*) as c from %s %I.%I',
	  case when c.relkind = 'p' then '' else 'only' end, n.nspname, c.relname), false, true, '')))[1]::text
	from pg_class c join pg_namespace n on n.oid = c.relnamespace
	where c.relkind in ('r', 'p') and n.nspname not in ('pg_catalog', 'information_schema')
	order by 1")
t_eq "manifest tables and counts = SQL counts" \
	"$(jq -r '.tables | to_entries[] | "\(.key) \(.value)"' "$m" | LC_ALL=C sort)" "$(LC_ALL=C sort <<<"$sql_tables")"
t_eq "big table counted" "$(jq -r '.tables["public.big"]' "$m")" 1200000
t_eq "partitioned table counts all its partitions" "$(jq -r '.tables["public.events"]' "$m")" 3002
t_eq "inheritance parent counts only its own rows" "$(jq -r '.tables["public.parent_t"]' "$m")" 2
t_eq "table_list kinds" "$(jq -r '[.table_list[] | select(.kind == "partitioned") | .name] | join(",")' "$m")" events

# The journal: stage_started, steps, stage_result, stage_done with stage backup.
t_eq "journal: backup stage records in order" \
	"$(journal 'select(.stage == "backup" and (.type | startswith("stage_"))) | .type' | tr -d '"' | paste -sd' ')" \
	"stage_started stage_result stage_done"
t_eq "journal: steps" \
	"$(journal 'select(.stage == "backup" and .type == "step") | .data.step + ":" + .data.state' | tr -d '"' | paste -sd' ')" \
	"space:done snapshot:done dump:done checksum:done list:done restore:done counts:done manifest:done"
t_eq "journal: stage_result holds path, sha256, verified, counts" \
	"$(journal 'select(.type == "stage_result") | [.data.path, .data.sha256, .data.verified, .data.tables["app.Order"]]')" \
	"$(jq -c --arg p "$dump" '[$p, .sha256, true, 537]' "$m")"
t_eq "journal: no progress records" "$(journal 'select(.type == "progress")' | wc -l)" 0

# --- JSON output, directory format with 2 jobs ---
t_run 0 "backup (directory format, jobs 2) --json: exit 0" "$PGRUNBOOK" backup --plan "$T_TMP/plan-dir.yaml" --json
json=$out
ddir=$(jq -r .path <<<"$json")
t_match "directory backup name" "$(basename "$ddir")" "^${T_DB}-[0-9]{8}T[0-9]{6}Z\\.dir\$"
t_eq "JSON: verified, format, exit code, no error" "$(jq -c '[.verified, .format, .exit_code, .error]' <<<"$json")" \
	'[true,"directory",0,null]'
t_eq "directory backup mode 0700" "$(stat -c %a "$ddir")" 700
t_eq "directory files mode 0600" "$(find "$ddir" -type f ! -perm 600 | wc -l)" 0
t_eq "directory sha256 = sha256 of the sorted \"sha256  path\" list" "$(jq -r .sha256 <<<"$json")" \
	"$(cd "$ddir" && find . -type f | sed 's|^\./||' | LC_ALL=C sort | xargs sha256sum | sha256sum | cut -d' ' -f1)"
t_eq "directory size = sum of its files" "$(jq -r .size <<<"$json")" \
	"$(find "$ddir" -type f -printf '%s\n' | awk '{ s += $1 } END { print s }')"
t_eq "JSON tables = the custom backup's counts" "$(jq -c .tables <<<"$json")" "$(jq -c .tables "$m")"
t_eq "directory manifest: jobs 2" "$(jq -r .jobs "$ddir.json")" 2
no_scratch "directory backup"

# --- backup verify ---
t_run 0 "backup verify of the good custom backup: exit 0" "$PGRUNBOOK" backup verify --plan "$T_TMP/plan.yaml" "$dump"
t_match "verify says verified" "$out" '^backup verified$'
t_run 0 "backup verify of the directory backup via its manifest, --json" \
	"$PGRUNBOOK" backup verify --plan "$T_TMP/plan.yaml" "$ddir.json" --json
t_eq "verify JSON: verified" "$(jq -c '[.verified, .path]' <<<"$out")" "[true,\"$ddir\"]"
no_scratch "verify good"

# A truncated copy (the manifest copied alongside).
cp "$dump" "$T_TMP/trunc.dump"
cp "$m" "$T_TMP/trunc.dump.json"
size=$(stat -c %s "$dump")
truncate -s $((size / 2)) "$T_TMP/trunc.dump"
t_run 3 "truncated backup rejected: exit 3" "$PGRUNBOOK" backup verify --plan "$T_TMP/plan.yaml" "$T_TMP/trunc.dump"
t_match "says it was cut off (sizes)" "$err" "is $((size / 2)) bytes, the manifest says $size"
t_eq "its manifest now says not verified" "$(jq -r .verified "$T_TMP/trunc.dump.json")" false
t_eq "journal: stage_failed" "$(journal 'select(.type == "stage_failed") | .stage' | tr -d '"')" backup

# A byte flipped in the middle.
cp "$dump" "$T_TMP/flip.dump"
cp "$m" "$T_TMP/flip.dump.json"
off=$((size / 2))
orig=$(od -An -tu1 -j "$off" -N1 "$T_TMP/flip.dump" | tr -d ' ')
printf "$(printf '\\%03o' $(((orig + 1) % 256)))" | dd of="$T_TMP/flip.dump" bs=1 seek="$off" conv=notrunc 2>/dev/null
t_eq "the byte changed, the size did not" "$(stat -c %s "$T_TMP/flip.dump")" "$size"
t_run 3 "byte-flipped backup rejected: exit 3" "$PGRUNBOOK" backup verify --plan "$T_TMP/plan.yaml" "$T_TMP/flip.dump"
t_match "says checksum mismatch" "$err" 'checksum mismatch'
no_scratch "damaged archives"

# Counts that the restore cannot reproduce (the manifest's count edited): the restore check fails.
cp "$dump" "$T_TMP/count.dump"
jq '.tables["public.users"] = 999' "$m" >"$T_TMP/count.dump.json"
t_run 3 "a count the test restore does not reproduce: exit 3" \
	"$PGRUNBOOK" backup verify --plan "$T_TMP/plan.yaml" "$T_TMP/count.dump"
t_match "names the table and both counts" "$err" 'public\.users: 1000 rows restored, 999 at dump time'
no_scratch "failed verify"

# Data damaged behind a manifest that matches it (size and SHA-256 recomputed): the checksum and
# the list pass, the test restore fails, and the scratch database is dropped all the same.
cp "$T_TMP/flip.dump" "$T_TMP/deep.dump"
jq --arg s "$(sha256sum "$T_TMP/deep.dump" | cut -d' ' -f1)" '.sha256 = $s' "$m" >"$T_TMP/deep.dump.json"
t_run 3 "damaged data under a matching manifest: exit 3" \
	"$PGRUNBOOK" backup verify --plan "$T_TMP/plan.yaml" "$T_TMP/deep.dump"
t_match "the test restore failed, with pg_restore's error" "$err" \
	"the test restore into ${T_DB}_pgrunbook_verify_[0-9a-f]{6} failed: pg_restore exited with status 1"
t_eq "journal: the restore step failed, no counts step" \
	"$(journal 'select(.type == "step") | .data.step + ":" + .data.state' | tr -d '"' | paste -sd' ')" \
	"checksum:done list:done restore:failed"
no_scratch "failed restore"

# A table missing from the archive's list: pg_restore --list must show its data.
jq '.table_list += [{"schema": "public", "name": "ghost", "kind": "table", "rows": 0}] | .tables["public.ghost"] = 0' \
	"$m" >"$T_TMP/count.dump.json"
t_run 3 "a counted table the archive does not hold: exit 3" \
	"$PGRUNBOOK" backup verify --plan "$T_TMP/plan.yaml" "$T_TMP/count.dump"
t_match "pg_restore --list names it" "$err" 'does not list the data of 1 table counted at dump time: public\.ghost'
t_run 3 "no manifest: exit 3" "$PGRUNBOOK" backup verify --plan "$T_TMP/plan.yaml" "$T_TMP/nothing.dump"
t_match "says the manifest is missing" "$err" 'has no manifest'

# SIGTERM (and SIGHUP: a lost terminal) during the test restore: pg_restore stopped, the scratch
# database dropped, the manifest left as it was (a cancelled check says nothing about the backup).
for sig in TERM HUP; do
cp "$dump" "$T_TMP/cancel.dump"
cp "$m" "$T_TMP/cancel.dump.json"
"$PGRUNBOOK" backup verify --plan "$T_TMP/plan.yaml" "$T_TMP/cancel.dump" >/dev/null 2>"$T_TMP/cancel.err" &
bg_pid=$!
seen=0
for _ in $(seq 1 400); do
	n=$("$PSQL" -X -A -t -d postgres -c "select count(*) from pg_database where datname like '${T_DB}\_pgrunbook\_verify\_%'")
	[ "$n" = 1 ] && seen=1 && break
	sleep 0.05
done
t_eq "SIG$sig: the test restore's scratch database appeared" "$seen" 1
sleep 0.1
kill -"$sig" "$bg_pid"
wait "$bg_pid"
t_eq "SIG$sig during the test restore: exit 3" "$?" 3
bg_pid=""
t_match "SIG$sig: says it was cancelled" "$(cat "$T_TMP/cancel.err")" 'cancelled'
t_eq "SIG$sig: the manifest still says verified (from the backup)" "$(jq -r .verified "$T_TMP/cancel.dump.json")" true
t_eq "SIG$sig: no pg_restore left running" "$(pgrep -f -- "$T_TMP/cancel.dump" | wc -l)" 0
no_scratch "SIG$sig during verify"
done

# --- backup verify --latest (backup_find_recent) ---
t_run 0 "--latest: exit 0" "$PGRUNBOOK" backup verify --latest --plan "$T_TMP/plan.yaml" --json
t_eq "--latest picks the newest verified one (the directory backup)" "$(jq -r .path <<<"$out")" "$ddir"
# Damage the newest: its checksum is re-checked, the older custom backup is chosen.
f=$(find "$ddir" -type f -name '*.dat.gz' | head -n 1)
printf 'x' >>"$f"
t_run 0 "--latest with the newest damaged: exit 0" "$PGRUNBOOK" backup verify --latest --plan "$T_TMP/plan.yaml" --json
t_eq "--latest skips the damaged one" "$(jq -r .path <<<"$out")" "$dump"
sleep 2
t_run 3 "--latest --max-age 1s: none young enough, exit 3" \
	"$PGRUNBOOK" backup verify --latest --max-age 1s --plan "$T_TMP/plan.yaml"
t_match "says what it found instead" "$err" 'Found: 2 older, 0 not verified, 0 of another database or server'
# Another database (same server): not this target's backup.
sed "s/dbname=$T_DB/dbname=postgres/" "$T_TMP/plan.yaml" >"$T_TMP/plan-other.yaml"
t_run 3 "--latest for another database: exit 3" "$PGRUNBOOK" backup verify --latest --plan "$T_TMP/plan-other.yaml"
t_match "counted as another database" "$err" '[1-9] of another database or server'
# Two backups finished in the same second: the later by its milliseconds, not by name
# ("X.dump" sorts after "X-2.dump").
ts=$(date -u +%Y%m%dT%H%M%SZ)
sec=$(date -u +%Y-%m-%dT%H:%M:%S)
same_second() {  # FILE FINISHED: a copy of the custom backup under FILE, finished at FINISHED
	cp "$dump" "$T_TMP/backups/$1"
	jq --arg f "$1" --arg fin "$2" '.file = $f | .finished = $fin' "$m" >"$T_TMP/backups/$1.json"
}
same_second "${T_DB}-$ts.dump" "$sec.100Z"
same_second "${T_DB}-$ts-2.dump" "$sec.900Z"
t_run 0 "--latest with two backups of the same second: exit 0" \
	"$PGRUNBOOK" backup verify --latest --plan "$T_TMP/plan.yaml" --json
t_eq "--latest picks the one that finished later in that second" "$(jq -r .path <<<"$out")" \
	"$T_TMP/backups/${T_DB}-$ts-2.dump"
# and the other way round
same_second "${T_DB}-$ts-2.dump" "$sec.050Z"
t_run 0 "--latest, the first-named finished later: exit 0" \
	"$PGRUNBOOK" backup verify --latest --plan "$T_TMP/plan.yaml" --json
t_eq "--latest picks it" "$(jq -r .path <<<"$out")" "$T_TMP/backups/${T_DB}-$ts.dump"
rm -f "$T_TMP/backups/${T_DB}-$ts.dump"* "$T_TMP/backups/${T_DB}-$ts-2.dump"*

# --- a dump stopped by the file size limit (pg_dump gets SIGXFSZ) ---
plan "$T_TMP/plan-fail.yaml" ./bfail custom 1
t_run 3 "backup under ulimit -f 512: exit 3" \
	bash -c 'ulimit -f 512; exec "$0" backup --plan "$1"' "$PGRUNBOOK" "$T_TMP/plan-fail.yaml"
t_match "says pg_dump hit the file size limit" "$err" 'pg_dump was terminated by signal 25|file size limit'
t_eq "no file under a final name, no manifest, no .partial" \
	"$(ls "$T_TMP/bfail" | grep -c -E '\.(dump|json|partial)$')" 0
t_eq "what it wrote is kept as .failed" "$(ls "$T_TMP/bfail" | grep -c -E "^${T_DB}-[0-9]{8}T[0-9]{6}Z\\.dump\\.failed\$")" 1
t_eq "journal: stage_failed, the dump step failed" \
	"$(journal 'select(.stage == "backup" and (.type == "stage_failed" or (.type == "step" and .data.state == "failed"))) | .type + ":" + (.data.step // "")' | tr -d '"' | paste -sd' ')" \
	"step:dump stage_failed:"
t_eq "stage_result: not verified" "$(journal 'select(.type == "stage_result") | .data.verified')" false
no_scratch "file size limit"

# --- SIGTERM during a dump: the child is stopped, nothing valid-looking stays ---
plan "$T_TMP/plan-term.yaml" ./bterm custom 1
mkdir -p "$T_TMP/bterm"
"$PGRUNBOOK" backup --plan "$T_TMP/plan-term.yaml" >"$T_TMP/term.out" 2>"$T_TMP/term.err" &
bg_pid=$!
for _ in $(seq 1 400); do
	p=$(ls "$T_TMP"/bterm/*.partial 2>/dev/null)
	[ -n "$p" ] && [ "$(stat -c %s "$p" 2>/dev/null || echo 0)" -gt 0 ] && break
	sleep 0.05
done
if [ -n "$p" ]; then t_ok "the dump started writing $(basename "$p")"; else t_fail "no .partial appeared"; fi
kill -TERM "$bg_pid"
wait "$bg_pid"
t_eq "SIGTERM: exit 3" "$?" 3
bg_pid=""
t_match "says it was cancelled" "$(cat "$T_TMP/term.err")" 'the backup was cancelled'
t_eq "SIGTERM: no final name, no manifest, no .partial" "$(ls "$T_TMP/bterm" | grep -c -E '\.(dump|json|partial)$')" 0
t_eq "SIGTERM: at most a .failed" "$(ls "$T_TMP/bterm" | grep -c -v -E '\.dump\.failed$')" 0
t_eq "SIGTERM: no pg_dump left running" "$(pgrep -f -- "--file=$T_TMP/bterm" | wc -l)" 0
for _ in $(seq 1 100); do  # a killed client's backend ends as soon as it notices
	left=$(t_sql "select count(*) from pg_stat_activity where datname = '$T_DB'" postgres)
	[ "$left" = 0 ] && break
	sleep 0.05
done
t_eq "SIGTERM: no session left on the database (pg_dump's or the snapshot's)" "$left" 0
t_eq "SIGTERM: journal stage_failed" "$(journal 'select(.type == "stage_failed") | .stage' | tr -d '"')" backup
no_scratch "SIGTERM"

# --- a full file system (tmpfs), where this host lets the test mount one ---
mkdir -p "$T_TMP/small"
dbsize=$(t_sql "select pg_database_size(current_database())")
if mount -t tmpfs -o size=1m tmpfs "$T_TMP/small" 2>/dev/null; then
	mnt="$T_TMP/small"
	plan "$T_TMP/plan-small.yaml" "$T_TMP/small/b" custom 1
	t_run 3 "1 MB free for a ${dbsize}-byte database: refused, exit 3" "$PGRUNBOOK" backup --plan "$T_TMP/plan-small.yaml"
	t_match "refusal gives both numbers and the estimate" "$err" \
		"not enough free space .*: [0-9.]+ [kM]B free, the database is [0-9.]+ MB"
	t_match "and explains the estimate" "$err" "pg_database_size, $dbsize bytes"
	t_eq "refused: nothing written" "$(ls -A "$T_TMP/small/b" | wc -l)" 0
	umount "$mnt"
	# Room by the estimate (a quarter of the database and 1 MB more), but less than the dump needs.
	room=$((dbsize / 4 / 1024 + 1024))
	if [ "$size" -gt $((room * 1024 + 1048576)) ] && mount -t tmpfs -o size=${room}k tmpfs "$T_TMP/small"; then
		t_run 3 "disk full during the dump: exit 3" "$PGRUNBOOK" backup --plan "$T_TMP/plan-small.yaml"
		t_match "pg_dump's own error is shown" "$err" 'No space left on device|could not write'
		t_eq "disk full: no final name, no manifest, no .partial" \
			"$(ls "$T_TMP/small/b" | grep -c -E '\.(dump|json|partial)$')" 0
		t_eq "disk full: journal stage_failed" "$(journal 'select(.type == "stage_failed") | .stage' | tr -d '"')" backup
		umount "$mnt"
	else
		echo "# the dump ($size bytes) fits in ${room} kB: the disk-full case is not reachable here"
	fi
	mnt=""
else
	echo "# tmpfs cannot be mounted here; the file size limit case above covers a dump that cannot finish"
fi
no_scratch "full file system"

# --- a password from PGPASSFILE over TCP (scram-sha-256): never in pg_dump's argv or environment;
# a pg_dump older than the server (first in PG_BINDIR) is passed over for the server's own ---
secret="Bk-S3cr3t-$$"
t_sql_do "create role rb_bk_pw login createdb password '$secret'; grant pg_read_all_data to rb_bk_pw"
printf '127.0.0.1:%s:*:rb_bk_pw:%s\n' "$PGPORT" "$secret" >"$T_TMP/pgpass"
chmod 0600 "$T_TMP/pgpass"
mkdir -p "$T_TMP/oldbin"
for tool in pg_dump pg_restore; do
	printf '#!/bin/sh\necho "%s (PostgreSQL) 14.9"\n' "$tool" >"$T_TMP/oldbin/$tool"
	chmod 0755 "$T_TMP/oldbin/$tool"
done
cat >"$T_TMP/plan-pw.yaml" <<EOF
name: backup test
environments:
  prod: { conninfo: "host=127.0.0.1 port=$PGPORT dbname=$T_DB user=rb_bk_pw" }
target: prod
backup: { dir: ./bpw }
EOF
PGPASSFILE="$T_TMP/pgpass" PG_BINDIR="$T_TMP/oldbin" \
	"$PGRUNBOOK" backup --plan "$T_TMP/plan-pw.yaml" --json >"$T_TMP/pw.out" 2>"$T_TMP/pw.err" &
bg_pid=$!
cmdline="" environ=""
for _ in $(seq 1 400); do
	for c in $(pgrep -P "$bg_pid"); do
		cl=$(tr '\0' ' ' <"/proc/$c/cmdline" 2>/dev/null)
		case "$cl" in *--snapshot=*) cmdline=$cl; environ=$(tr '\0' '\n' <"/proc/$c/environ" 2>/dev/null) ;; esac
	done
	[ -n "$cmdline" ] && break
	sleep 0.05
done
wait "$bg_pid"
t_eq "backup over TCP with the password from PGPASSFILE: exit 0" "$?" 0
bg_pid=""
t_match "pg_dump was seen running, with the connection in -d" "$cmdline" \
	"pg_dump .*--dbname .*user='rb_bk_pw'.*host='127\\.0\\.0\\.1'"
t_nomatch "pg_dump's argv holds no password" "$cmdline" "$secret|password="
t_match "pg_dump's environment passes PGPASSFILE" "$environ" "^PGPASSFILE="
t_nomatch "pg_dump's environment holds no password" "$environ" "$secret|^PGPASSWORD="
t_eq "verified" "$(jq -r .verified "$T_TMP/pw.out")" true
t_match "the 14.9 pg_dump in PG_BINDIR was passed over" "$(jq -r .pg_dump "$T_TMP"/bpw/*.json)" \
	'^pg_dump \(PostgreSQL\) 15\.'
if grep -rq -- "$secret" "$T_TMP/bpw" "$runs" "$T_TMP/pw.out" "$T_TMP/pw.err"; then
	t_fail "the password is in no backup file, manifest, journal or output"
else
	t_ok "the password is in no backup file, manifest, journal or output"
fi
no_scratch "PGPASSFILE"

# --- usage ---
t_run 1 "backup verify without BACKUP: usage error" "$PGRUNBOOK" backup verify --plan "$T_TMP/plan.yaml"
t_run 1 "--latest belongs to verify" "$PGRUNBOOK" backup --latest --plan "$T_TMP/plan.yaml"
cat >"$T_TMP/plan-none.yaml" <<EOF
name: no backup
environments:
  prod: { conninfo: "host=$PGHOST port=$PGPORT dbname=$T_DB" }
target: prod
EOF
t_run 4 "a plan without a backup section: exit 4" "$PGRUNBOOK" backup --plan "$T_TMP/plan-none.yaml"

t_done
