# keytable.sh: the key table of man/pgrunbook.1 is exactly what tui/keytable prints from the
# command list in tui/commands.h (regenerate with: tui/keytable --update man/pgrunbook.1).
. "$top_srcdir/tests/lib.sh"

kt="$top_builddir/tui/keytable"
man1="$top_srcdir/man/pgrunbook.1"
begin='^\.\\" KEYTABLE BEGIN$'
end='^\.\\" KEYTABLE END$'

t_run 0 "tui/keytable prints the table" "$kt"
want=$out
t_eq "one KEYTABLE BEGIN marker" "$(grep -c "$begin" "$man1")" 1
t_eq "one KEYTABLE END marker" "$(grep -c "$end" "$man1")" 1
got=$(sed -n "/$begin/,/$end/p" "$man1" | sed '1d;$d')
t_eq "man/pgrunbook.1 has the generated key table (fix: tui/keytable --update man/pgrunbook.1)" "$got" "$want"

# The section sits before EXIT STATUS and holds the markers.
sections=$(grep -nE '^\.SH (KEYS|EXIT STATUS)$|KEYTABLE (BEGIN|END)$' "$man1" | cut -d: -f2-)
t_eq "KEYS section with the table comes before EXIT STATUS" "$sections" '.SH KEYS
.\" KEYTABLE BEGIN
.\" KEYTABLE END
.SH EXIT STATUS'

# Independent of the generator: every command of the X-macro appears with its help text and keys.
list=$(sed -n 's/^\t_(\([A-Z_]*\), *"\([^"]*\)", *[^,]*, *"\([^"]*\)") *\\\{0,1\}$/\1|\2|\3/p' \
	"$top_srcdir/tui/commands.h")
n=$(printf '%s\n' "$list" | grep -c .)
t_match "the command list is readable from tui/commands.h" "$n" '^[1-9][0-9]+$'
t_eq "one table entry per command" "$(printf '%s\n' "$got" | grep -c '^\.TP')" "$n"
while IFS='|' read -r id keys help; do
	roff_help=$(printf '%s' "$help" | sed 's/-/\\-/g')
	roff_keys=$(printf '%s' "$keys" | sed 's/ /, /g; s/-/\\-/g')
	if printf '%s\n' "$got" | grep -qxF -- "$roff_help." &&
		printf '%s\n' "$got" | grep -qxF -- ".B \"$roff_keys\""; then
		t_ok "man page lists $id ($keys)"
	else
		t_fail "man page lists $id ($keys)" "wanted .B \"$roff_keys\" and \"$roff_help.\""
	fi
done <<<"$list"

# The rendered page shows the keys (groff parses the block without warnings).
if command -v groff >/dev/null; then
	warn=$(groff -man -ww -z "$man1" 2>&1)
	t_eq "groff has no warnings for pgrunbook.1" "$warn" ""
	text=$(groff -man -Tutf8 "$man1" 2>/dev/null | sed 's/\x1b\[[0-9;]*m//g; s/.\x08//g')
	t_match "rendered page shows F10 for quit" "$text" 'F10, q +Quit'
fi

t_run 1 "keytable rejects unknown arguments" "$kt" --bogus
t_done
