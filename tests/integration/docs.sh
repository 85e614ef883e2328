# docs.sh: --help, the man pages and the README describe the same commands and exit codes.
. "$top_srcdir/tests/lib.sh"

t_run 0 "pgrunbook --help exits 0" "$PGRUNBOOK" --help
help=$out
man1=$(cat "$top_srcdir/man/pgrunbook.1")
readme=$(cat "$top_srcdir/README.md")

cmds=$(printf '%s\n' "$help" | sed -n '/^Commands:/,/^$/p' | awk 'NF > 1 && $1 != "Commands:" {print $1}')
t_match "--help lists commands" "$cmds" '^check$'
for c in $cmds; do
	t_match "pgrunbook(1) has a synopsis for $c" "$man1" "^\.B pgrunbook $c( |\$)"
	t_match "pgrunbook(1) describes $c" "$man1" "^\.B $c( |\$)"
	t_match "README mentions pgrunbook $c" "$readme" "pgrunbook $c"
	t_run 0 "pgrunbook $c --help exits 0" "$PGRUNBOOK" "$c" --help
	t_match "pgrunbook $c --help shows its usage" "$out" "pgrunbook $c"
done
# Commands the man page documents must exist.
for c in $(sed -n 's/^\.B pgrunbook \([a-z]*\).*/\1/p' "$top_srcdir/man/pgrunbook.1" | sort -u); do
	t_match "man page command $c exists in --help" "$cmds" "^$c\$"
done

for code in 0 1 2 3 4; do
	t_match "--help documents exit code $code" "$help" "^  $code  "
	t_match "pgrunbook(1) documents exit code $code" "$man1" "^\.B $code\$"
done
t_match "README documents the exit codes" "$readme" '0 ok, 1 usage or internal error, 2 connection failure, 3 a step failed, was refused or\s*$'

# The lint rule catalogue in pgrunbook(1) is the one the binary holds (pgrunbook migrate lint --rules).
t_run 0 "migrate lint --rules" "$PGRUNBOOK" migrate lint --rules
block=$(sed -n '/LINTRULES BEGIN/,/LINTRULES END/p' "$top_srcdir/man/pgrunbook.1")
nrules=0
while IFS= read -r line; do
	case "$line" in
	PG[0-9][0-9][0-9]\ *)
		nrules=$((nrules + 1))
		code=${line%% *}; rest=${line#* }; class=${rest%% *}; summary=${rest#* }
		printf '%s\n' "$block" | grep -Fqx ".B $code $class: $summary" ||
			t_fail "pgrunbook(1) lists $code as in the binary" "wanted: .B $code $class: $summary" ;;
	esac
done <<<"$out"
t_match "the binary has rules" "$nrules" '^[1-9][0-9]*$'
t_eq "pgrunbook(1) lists as many rules as the binary" "$(printf '%s\n' "$block" | grep -c '^\.B PG')" "$nrules"

t_run 1 "an unknown command is a usage error" "$PGRUNBOOK" frobnicate
t_match "the usage error names the command" "$err" 'unknown command "frobnicate"'
t_run 1 "no arguments is a usage error" "$PGRUNBOOK"
t_run 0 "--version" "$PGRUNBOOK" --version
t_match "--version prints the version" "$out" '^pgrunbook [0-9]+\.[0-9]+\.[0-9]+$'

# The README's quick start is exactly two commands.
qs=$(printf '%s\n' "$readme" | sed -n '/^## Quick start/,/^## /p' | grep -E '^    [^ ]')
t_eq "README quick start has two commands" "$(printf '%s\n' "$qs" | wc -l)" "2"
t_match "first command installs, builds and runs the demo" "$qs" 'apt-get install -y.*make.*pgrunbook demo$'
t_match "second command runs the suite" "$qs" '^    make check$'
t_done
