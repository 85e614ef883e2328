#!/usr/bin/env bash
# plan_check.sh: "pgrunbook check" over the plan corpus: exact diagnostics for every bad plan,
# summaries and hashes of the good ones, --json, and usage errors. Connects to no database.
. "$top_srcdir/tests/lib.sh"

bad="$top_srcdir/tests/plans/bad"
good="$top_srcdir/tests/plans/good"

# Bad plans: run from inside the corpus directory with a relative path, so that the messages
# ("NN-name.yaml:LINE:COL: ...") do not depend on where the source tree is.
n=0
for plan in "$bad"/*.yaml; do
	name=$(basename "$plan")
	n=$((n + 1))
	t_run 4 "$name: exit 4" bash -c 'cd "$1" && exec "$PGRUNBOOK" check --plan "$2"' _ "$bad" "$name"
	t_eq "$name: stderr is exactly ${name%.yaml}.expected" "$err" "$(cat "$bad/${name%.yaml}.expected")"
	t_eq "$name: nothing on stdout" "$out" ""
	t_nomatch "$name: no secret echoed" "$err" 'hunter2|s3cret|SECRET'
done
if [ "$n" -ge 35 ]; then t_ok "corpus has $n bad plans"; else t_fail "corpus has only $n bad plans"; fi

# Every fixture is shipped (Automake has no wildcards: they are listed in Makefile.am).
unlisted=""
for f in "$bad"/* "$good"/*; do
	rel="tests/plans/$(basename "$(dirname "$f")")/$(basename "$f")"
	grep -qF "	$rel" "$top_srcdir/Makefile.am" || unlisted="$unlisted $rel"
done
t_eq "every fixture is in EXTRA_DIST" "$unlisted" ""

# Good plans.
t_run 0 "minimal.yaml is valid" "$PGRUNBOOK" check --plan "$good/minimal.yaml"
t_eq "minimal.yaml: no stderr" "$err" ""
t_match "minimal.yaml: plan name" "$out" '^plan: minimal$'
t_match "minimal.yaml: environment" "$out" '^  prod  service   prod$'
t_match "minimal.yaml: no source" "$out" '^source -> target: \(none\) -> prod$'
t_eq "minimal.yaml: stages are preflight and report" \
	"$(printf '%s\n' "$out" | sed -n '/^stages:/,/^  total/p')" \
	"$(printf 'stages:\n  preflight        budget (none)\n  report           budget (none)\n  total            budget (none)')"
t_match "minimal.yaml: plan hash" "$out" '^plan hash: [0-9a-f]{64}$'
minimal_hash=$(printf '%s\n' "$out" | sed -n 's/^plan hash: //p')

t_run 0 "full.yaml is valid" "$PGRUNBOOK" check --plan "$good/full.yaml"
full_out=$out
t_match "full.yaml: conninfo shown" "$out" '^  prod     conninfo  host=db.internal port=5432 dbname=shop_prod user=release sslmode=verify-full$'
t_match "full.yaml: dsn_env shown" "$out" '^  dev      dsn_env   DEV_DATABASE_URL$'
t_match "full.yaml: source -> target" "$out" '^source -> target: dev -> prod$'
t_eq "full.yaml: stages in order with budgets" \
	"$(printf '%s\n' "$out" | sed -n '/^stages:/,/^  total/p')" \
	"stages:
  preflight        budget 2min
  backup           budget 30min
  staging          budget 20min
  maintenance      budget 1min
  migrate          budget 45min
  sync             budget 10min
  verify           budget 30min
  maintenance_off  budget 1min
  report           budget (none)
  total            budget 2h30min"
t_match "full.yaml: upsert table" "$out" '^  Ingredient  upsert  key id +local_wins$'
t_match "full.yaml: table from defaults, protected" "$out" '^  OrderItem   skip    key \(primary key\)  prod_wins +PROTECTED$'
t_match "full.yaml: schema-qualified glob protects" "$out" '^  AuditLog +append +key id +error_on_conflict +PROTECTED$'
t_match "full.yaml: delete flag" "$out" '^  Product .* DELETE$'
t_match "full.yaml: glob matches" "$out" '^  Order\* +matches OrderItem$'
t_match "full.yaml: glob matching nothing" "$out" '^  StripeEvent +matches \(no listed table\)$'
t_match "full.yaml: verify checks" "$out" '^verify checks: 2$'
t_match "full.yaml: notify endpoint" "$out" '^  pagerduty  PAGERDUTY_ROUTING_KEY$'
t_match "full.yaml: checklist" "$out" '^checklist: 2 before, 1 after$'
full_hash=$(printf '%s\n' "$out" | sed -n 's/^plan hash: //p')
t_match "full.yaml: hash" "$full_hash" '^[0-9a-f]{64}$'
t_run 0 "full.yaml: second run" "$PGRUNBOOK" check --plan "$good/full.yaml"
t_eq "full.yaml: output is deterministic" "$out" "$full_out"

t_run 0 "full-reordered.yaml is valid" "$PGRUNBOOK" check --plan "$good/full-reordered.yaml"
t_eq "reordering, quoting and comments keep the hash" \
	"$(printf '%s\n' "$out" | sed -n 's/^plan hash: //p')" "$full_hash"
if [ "$full_hash" != "$minimal_hash" ]; then t_ok "different plans, different hashes"; else t_fail "same hash"; fi

# A one-value change changes the hash.
sed 's/jobs: 4/jobs: 3/' "$good/full.yaml" >"$T_TMP/changed.yaml"
t_run 0 "changed plan is valid" "$PGRUNBOOK" check --plan "$T_TMP/changed.yaml"
changed_hash=$(printf '%s\n' "$out" | sed -n 's/^plan hash: //p')
if [ -n "$changed_hash" ] && [ "$changed_hash" != "$full_hash" ]; then
	t_ok "jobs 4 -> 3 changes the hash"
else
	t_fail "jobs 4 -> 3 kept the hash"
fi

# --json
t_run 0 "full.yaml --json" "$PGRUNBOOK" check --plan "$good/full.yaml" --json
json=$out
command -v jq >/dev/null || t_fail "jq is missing (packages.debian installs it)"
if printf '%s\n' "$json" | jq -e . >/dev/null 2>&1; then t_ok "--json parses"; else t_fail "--json does not parse" "$json"; fi
{
	t_eq "--json: hash" "$(printf '%s' "$json" | jq -r .hash)" "$full_hash"
	t_eq "--json: plan" "$(printf '%s' "$json" | jq -r .plan)" "shop release 2026-11"
	t_eq "--json: stages" "$(printf '%s' "$json" | jq -r '[.stages[].name] | join(",")')" \
		"preflight,backup,staging,maintenance,migrate,sync,verify,maintenance_off,report"
	t_eq "--json: backup budget" "$(printf '%s' "$json" | jq -r '.stages[1].budget_ms')" "1800000"
	t_eq "--json: protected tables" \
		"$(printf '%s' "$json" | jq -r '[.sync_tables[] | select(.protected) | .name] | join(",")')" "OrderItem,AuditLog"
	t_eq "--json: glob matches" "$(printf '%s' "$json" | jq -r '.protected_globs[0].matches | join(",")')" "OrderItem"
	t_eq "--json: normalised durations in ms" \
		"$(printf '%s' "$json" | jq -r '.normalised.migrations.statement_timeout_ms')" "5400000"
	t_eq "--json: hash is SHA-256 of the compact normalised plan" \
		"$(printf '%s' "$json" | jq -cjS .normalised | sha256sum | cut -d' ' -f1)" "$full_hash"
	t_eq "--json: notify shows format and variable only" \
		"$(printf '%s' "$json" | jq -c '.notify[0]')" '{"format":"slack","url_env":"SLACK_WEBHOOK_URL"}'
}

# pgrunbook-plan(5) documents every key and every value the loader accepts (read from the code).
man5="$top_srcdir/man/pgrunbook-plan.5"
words=$(awk '/^static const char \*const [a-z_]*_(keys|names)\[\] = \{/,/\};/' "$top_srcdir/core/plan.c" |
	grep -o '"[a-z_]*"' | tr -d '"' | sort -u)
t_match "keys were found in core/plan.c" "$words" '^on_conflict$'
undocumented=""
for w in $words; do
	grep -Eq "^\.(B|BR|BI) $w( |\$)|^\.BR [a-z_]+ \"?, $w|[ (|]$w[ )|;]" "$man5" || undocumented="$undocumented $w"
done
t_eq "pgrunbook-plan(5) mentions every key and value" "$undocumented" ""

# Usage errors and help.
t_run 1 "no --plan: exit 1" "$PGRUNBOOK" check
t_match "no --plan: says so" "$err" 'no plan given'
t_run 1 "--plan without a value: exit 1" "$PGRUNBOOK" check --plan
t_run 1 "unknown option: exit 1" "$PGRUNBOOK" check --plan "$good/minimal.yaml" --frobnicate
t_match "unknown option: named" "$err" 'unknown option "--frobnicate"'
t_run 1 "extra argument: exit 1" "$PGRUNBOOK" check --plan "$good/minimal.yaml" extra
t_run 0 "--help: exit 0" "$PGRUNBOOK" check --help
t_match "--help: usage" "$out" 'pgrunbook check --plan FILE \[--json\]'
t_run 4 "missing plan file: exit 4" "$PGRUNBOOK" check --plan "$T_TMP/nope.yaml"
t_eq "missing plan file: message" "$err" "pgrunbook: could not read plan file \"$T_TMP/nope.yaml\": No such file or directory"

t_done
