# configure.sh: configure names the Debian package of every missing library.
. "$top_srcdir/tests/lib.sh"

[ -x "$top_srcdir/configure" ] || t_skip "no configure script in $top_srcdir (run autoreconf -fi)"

# configure runs in a copy of what it reads, so an in-tree configured checkout does not matter.
src="$T_TMP/src"
mkdir -p "$src/cli"
cp "$top_srcdir/configure" "$top_srcdir/config.h.in" "$top_srcdir/Makefile.in" "$src/"
cp -r "$top_srcdir/build-aux" "$src/"
cp "$top_srcdir/cli/main.c" "$src/cli/"

# A pkg-config that pretends one module is missing and passes everything else through.
real_pc=$(command -v pkg-config)
fake="$T_TMP/fake-pkg-config"
cat >"$fake" <<FAKE
#!/bin/sh
for a in "\$@"; do
	case "\$a" in "\$HIDE"|"\$HIDE "*) exit 1 ;; esac
done
exec "$real_pc" "\$@"
FAKE
chmod +x "$fake"

check_missing() {  # module package
	mkdir -p "$T_TMP/b-$1" && cd "$T_TMP/b-$1" || return
	t_run 1 "configure fails without $1" env HIDE="$1" PKG_CONFIG="$fake" "$src/configure"
	t_match "configure names $2 when $1 is missing" "$err" "install the Debian package $2"
	cd "$T_TMP" || return
}

check_missing libpq libpq-dev
check_missing yaml-0.1 libyaml-dev
check_missing libcurl libcurl4-openssl-dev
check_missing ncursesw libncurses-dev
check_missing jansson libjansson-dev
check_missing sqlite3 libsqlite3-dev
check_missing libcrypto libssl-dev
check_missing cmocka libcmocka-dev

mkdir -p "$T_TMP/b-pgq" && cd "$T_TMP/b-pgq"
t_run 1 "configure fails without pg_query.h" "$src/configure" ac_cv_header_pg_query_h=no
t_match "configure names libpg-query-dev for the header" "$err" "install the Debian package libpg-query-dev"
t_run 1 "configure fails without libpg_query" "$src/configure" ac_cv_lib_pg_query_pg_query_parse=no
t_match "configure names libpg-query-dev for the library" "$err" "install the Debian package libpg-query-dev"

cd "$T_TMP/b-pgq" || exit 1
t_run 0 "configure succeeds with everything present" "$src/configure"
t_done
