#!/usr/bin/env bash
# connect.sh: how pgrunbook connects: conninfo, service file, URI in a variable, .pgpass over
# TCP with scram-sha-256, refused passwords that never show anywhere, session settings.
. "$top_srcdir/tests/lib.sh"

unset PGAPPNAME PGCONNECT_TIMEOUT
runs="$XDG_STATE_HOME/pgrunbook/runs"

sql_do() {  # SQL: runs SQL, a failure is a visible test failure
	local res
	if ! res=$(psql -X -q -v ON_ERROR_STOP=1 -d "$PGDATABASE" -c "$1" 2>&1); then
		t_fail "sql: $1" "$res"
		return 1
	fi
}

plan() {  # file env-yaml: a plan with one target environment
	cat >"$1" <<EOF
name: connect test
environments:
  db: $2
target: db
EOF
}

# --- session settings, application_name, connect_timeout: the C tests against this cluster ---
t_run 0 "db_connect tests against the real cluster" \
	env PGRUNBOOK_TEST_REQUIRE_SERVER=1 CMOCKA_MESSAGE_OUTPUT=STDOUT "$top_builddir/tests/unit/test_db"
t_nomatch "no db_connect test was skipped" "$out" 'SKIPPED|FAILED'

# --- conninfo ---
plan "$T_TMP/conninfo.yaml" "{ conninfo: \"host=$PGHOST port=$PGPORT dbname=$T_DB\" }"
t_run 0 "conninfo environment" "$PGRUNBOOK" preflight --plan "$T_TMP/conninfo.yaml" --no-journal
t_match "shows where it connected" "$out" "where: +$PGHOST:$PGPORT/$T_DB\$"

# --- service file ---
cat >"$T_TMP/pg_service.conf" <<EOF
[rbtest]
host=$PGHOST
port=$PGPORT
dbname=$T_DB
EOF
plan "$T_TMP/service.yaml" "{ service: rbtest }"
t_run 0 "service environment" env PGSERVICEFILE="$T_TMP/pg_service.conf" \
	"$PGRUNBOOK" preflight --plan "$T_TMP/service.yaml" --no-journal
t_match "service resolved through PGSERVICEFILE" "$out" "where: +$PGHOST:$PGPORT/$T_DB\$"
sed -i 's/^\[rbtest\]/[other]/' "$T_TMP/pg_service.conf"
t_run 2 "service missing from the service file: exit 2" env PGSERVICEFILE="$T_TMP/pg_service.conf" \
	"$PGRUNBOOK" preflight --plan "$T_TMP/service.yaml" --no-journal
t_match "libpq's message about the service" "$out$err" 'definition of service "rbtest" not found'

# --- URI in a variable ---
plan "$T_TMP/dsn.yaml" "{ dsn_env: RB_TEST_URL }"
t_run 0 "dsn_env URI" env RB_TEST_URL="postgresql://$PGUSER@/$T_DB?host=$PGHOST&port=$PGPORT" \
	"$PGRUNBOOK" preflight --plan "$T_TMP/dsn.yaml" --no-journal
t_match "dsn_env connected to the test database" "$out" "/$T_DB\$"
t_run 2 "dsn_env variable unset: exit 2" env -u RB_TEST_URL \
	"$PGRUNBOOK" preflight --plan "$T_TMP/dsn.yaml" --no-journal
t_match "names the unset variable" "$out$err" 'variable "RB_TEST_URL" of environment "db" is not set'
t_match "hint on what to set" "$err" 'HINT: +Set RB_TEST_URL to a connection URI'

# --- a password in the URI is refused and shows nowhere ---
secret='Pl3ase-N0t-Here'
t_run 2 "dsn_env URI with a password: refused" \
	env RB_TEST_URL="postgresql://$PGUSER:$secret@127.0.0.1:$PGPORT/$T_DB" \
	"$PGRUNBOOK" preflight --plan "$T_TMP/dsn.yaml"
t_match "refusal names the variable" "$out$err" 'connection string in variable RB_TEST_URL of environment "db" contains a password'
t_match "hint shows the .pgpass line with the literal PASSWORD" "$out$err" \
	"127\\.0\\.0\\.1:$PGPORT:$T_DB:$PGUSER:PASSWORD"
t_nomatch "password not in stdout" "$out" "$secret"
t_nomatch "password not in stderr" "$err" "$secret"
if grep -rq -- "$secret" "$runs" 2>/dev/null; then
	t_fail "password not in the journal" "$(grep -r -- "$secret" "$runs" | head -3)"
else
	t_ok "password not in the journal"
fi
t_match "the refused run was journaled" "$(cat "$runs"/*/journal.jsonl 2>/dev/null)" 'stage_failed'

# percent-encoded password with '@' and ':' in it, as a conninfo in the variable
t_run 2 "URI with a percent-encoded password: refused" \
	env RB_TEST_URL="postgresql://$PGUSER:p%40ss%3A$secret@127.0.0.1:$PGPORT/$T_DB" \
	"$PGRUNBOOK" preflight --plan "$T_TMP/dsn.yaml" --json
t_nomatch "encoded password not in the output" "$out$err" "$secret"
t_run 2 "conninfo with password= in the variable: refused" \
	env RB_TEST_URL="host=127.0.0.1 port=$PGPORT dbname=$T_DB password='$secret x'" \
	"$PGRUNBOOK" preflight --plan "$T_TMP/dsn.yaml" --json
t_nomatch "quoted password not in the output" "$out$err" "$secret"
if grep -rq -- "$secret" "$runs" "$T_TMP/home" 2>/dev/null; then
	t_fail "no password in any journal"
else
	t_ok "no password in any journal"
fi

plan "$T_TMP/uri.yaml" "{ dsn_env: PROD_URL }"

# --- .pgpass over TCP (the cluster uses scram-sha-256 on 127.0.0.1) ---
sql_do "drop role if exists rb_pw_user"
sql_do "create role rb_pw_user login password 'S3cr3t-pw'"
plan "$T_TMP/tcp.yaml" "{ conninfo: \"host=127.0.0.1 port=$PGPORT dbname=$T_DB user=rb_pw_user\" }"
printf '127.0.0.1:%s:%s:rb_pw_user:S3cr3t-pw\n' "$PGPORT" "$T_DB" >"$T_TMP/pgpass"
chmod 0600 "$T_TMP/pgpass"
t_run 0 "TCP with the password from PGPASSFILE" env PGPASSFILE="$T_TMP/pgpass" \
	"$PGRUNBOOK" preflight --plan "$T_TMP/tcp.yaml" --no-journal
t_match "connected as rb_pw_user" "$out" 'user: +rb_pw_user \(superuser: no\)'
t_match "warns that the target role is not a superuser" "$out" 'WARNING: role "rb_pw_user" on target "db" is not a superuser'
t_run 2 "TCP without a password file: exit 2" env -u PGPASSFILE \
	"$PGRUNBOOK" preflight --plan "$T_TMP/tcp.yaml" --no-journal
t_match "libpq says no password was supplied" "$out$err" 'no password supplied'
t_match "hint names .pgpass and PGPASSFILE" "$out$err" 'pgpass.*PGPASSFILE'
printf '127.0.0.1:%s:%s:rb_pw_user:Wr0ng-pw\n' "$PGPORT" "$T_DB" >"$T_TMP/pgpass"
t_run 2 "TCP with a wrong password: exit 2" env PGPASSFILE="$T_TMP/pgpass" \
	"$PGRUNBOOK" preflight --plan "$T_TMP/tcp.yaml"
t_match "server says authentication failed" "$out$err" 'password authentication failed for user "rb_pw_user"'
t_nomatch "wrong password not shown" "$out$err" 'Wr0ng-pw'
if grep -rq -- 'Wr0ng-pw' "$runs"; then t_fail "wrong password not journaled"; else t_ok "wrong password not journaled"; fi
t_run 2 "PGPASSWORD is refused even when it is right" env -u PGPASSFILE PGPASSWORD=S3cr3t-pw \
	"$PGRUNBOOK" preflight --plan "$T_TMP/tcp.yaml" --no-journal
t_match "the refusal names PGPASSWORD and .pgpass" "$out$err" 'PGPASSWORD is set.*|HINT: .*pgpass'
t_nomatch "the refused password is not shown" "$out$err" 'S3cr3t-pw'
# A password libpq would misread as host:port must never be quoted back.
t_run 2 "a URI whose password holds a slash is refused" env PROD_URL='postgresql://admin:Xy7/Qp9@localhost/db' \
	"$PGRUNBOOK" preflight --plan "$T_TMP/uri.yaml" --no-journal
t_nomatch "that password is not shown" "$out$err" 'Xy7|Qp9'
t_match "it is refused as a password" "$out$err" 'contains a password'
sql_do "drop role rb_pw_user"

t_done
