# lib.sh: TAP helpers for integration tests (sourced). The runner (tests/run-suite) provides
# PGRUNBOOK, top_srcdir, top_builddir, PGHOST, PGPORT, PGUSER, PGDATABASE/T_DB, T_TMP, HOME,
# XDG_STATE_HOME, TZ, LANG, PG_BINDIR.
set -u
T_N=0
T_FAILED=0
out=""
err=""
rc=0

: "${PGRUNBOOK:?run integration tests through tests/run-suite (make check)}"
: "${T_TMP:?T_TMP not set}"
PSQL=${PSQL:-psql}

_t_show() {  # label text: prints text as TAP comments
	[ -n "$2" ] || return 0
	printf '%s\n' "$2" | head -n 40 | sed "s/^/#   $1| /"
}

t_ok() {
	T_N=$((T_N + 1))
	echo "ok $T_N - $1"
}

t_fail() {
	T_N=$((T_N + 1))
	T_FAILED=$((T_FAILED + 1))
	echo "not ok $T_N - $1"
	[ $# -ge 2 ] && _t_show info "$2"
	return 0
}

# t_run WANT_EXIT DESC CMD...: runs CMD capturing $out, $err and $rc.
t_run() {
	local want=$1 desc=$2
	shift 2
	local of ef
	of=$(mktemp "$T_TMP/out.XXXXXX")
	ef=$(mktemp "$T_TMP/err.XXXXXX")
	"$@" >"$of" 2>"$ef" </dev/null
	rc=$?
	out=$(cat "$of")
	err=$(cat "$ef")
	rm -f "$of" "$ef"
	if [ "$rc" -eq "$want" ]; then
		t_ok "$desc"
	else
		t_fail "$desc (exit $rc, wanted $want)"
		_t_show cmd "$*"
		_t_show out "$out"
		_t_show err "$err"
	fi
}

t_eq() {
	if [ "$2" = "$3" ]; then
		t_ok "$1"
	else
		t_fail "$1"
		diff <(printf '%s\n' "$3") <(printf '%s\n' "$2") | head -n 40 | sed 's/^/#   diff| /'
	fi
}

t_match() {
	if printf '%s\n' "$2" | grep -Eq -- "$3"; then
		t_ok "$1"
	else
		t_fail "$1" "no match for /$3/"
		_t_show text "$2"
	fi
}

t_nomatch() {
	if printf '%s\n' "$2" | grep -Eq -- "$3"; then
		t_fail "$1" "unexpected match for /$3/"
		_t_show text "$(printf '%s\n' "$2" | grep -E -- "$3")"
	else
		t_ok "$1"
	fi
}

# t_sql SQL [DB]: prints the unaligned, tuples-only result; a psql error counts as a failure.
# Usually called as $(t_sql ...): the failure goes to stderr, which the runner reads too.
t_sql() {
	local res
	if ! res=$("$PSQL" -X -A -t -q -v ON_ERROR_STOP=1 -d "${2:-$PGDATABASE}" -c "$1" 2>&1); then
		t_fail "sql: $1" "$res" >&2
		return 1
	fi
	printf '%s\n' "$res"
}

# t_sql_do SQL [DB]: runs setup SQL in this shell; a psql error is a counted failure.
t_sql_do() {
	local res
	if ! res=$("$PSQL" -X -A -t -q -v ON_ERROR_STOP=1 -d "${2:-$PGDATABASE}" -c "$1" 2>&1); then
		t_fail "sql: $1" "$res"
		return 1
	fi
}

t_createdb() {
	"$PSQL" -X -q -d postgres -c "create database \"$1\"" >/dev/null 2>&1 || t_fail "create database $1"
}

t_skip() {
	echo "1..0 # SKIP $1"
	exit 77
}

t_done() {
	echo "1..$T_N"
	[ "$T_FAILED" -eq 0 ]
	exit $?
}
