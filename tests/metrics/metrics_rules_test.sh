#!/usr/bin/env bash
# Checks the Prometheus side of xgw (docs/monitoring.md):
# - metrics/alerts/xgw-rules.yml passes `promtool check rules` and its unit
#   tests (`promtool test rules`), and every alert has a test where it fires
#   and one where it stays silent;
# - every xgw_ metric the rules and the dashboard use is documented;
# - metrics/grafana/xgw-dashboard.json is valid JSON whose queries parse as
#   PromQL and use only recording rules that xgw-rules.yml defines;
# - the prometheus.yml example of docs/monitoring.md passes
#   `promtool check config` with the rules next to it.
# Exit 77 (skip) when promtool is missing, unless XGW_REQUIRE_PRIVILEGED=1
# (scripts/test, CI), where scripts/install-deps has installed prometheus.
set -uo pipefail # no -e: every check runs and failures are counted

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
rules=$root/metrics/alerts/xgw-rules.yml
rules_test=$root/metrics/alerts/xgw-rules.test.yml
dashboard=$root/metrics/grafana/xgw-dashboard.json
doc=$root/docs/monitoring.md
promtool=${PROMTOOL:-promtool}

if ! command -v "$promtool" >/dev/null 2>&1; then
  if [ "${XGW_REQUIRE_PRIVILEGED:-0}" = 1 ]; then
    echo "FAIL: $promtool not found (scripts/install-deps installs prometheus)" >&2
    exit 1
  fi
  echo "SKIP: $promtool not found (apt-get install prometheus)" >&2
  exit 77
fi

# shellcheck source=../lib/checks.sh
. "$here/../lib/checks.sh"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

expect_ok "promtool check rules xgw-rules.yml" "$promtool" check rules "$rules"
expect_ok "promtool test rules xgw-rules.test.yml" "$promtool" test rules "$rules_test"

# --- every alert: one test where it fires, one where it is silent ----------
mapfile -t alerts < <(sed -n 's/^ *- alert: *\([A-Za-z0-9_]*\).*/\1/p' "$rules")
expect_eq "alerts defined" "${#alerts[@]}" 8
# "alertname: X" followed by "exp_alerts: []" is a silent case, by
# "exp_alerts:" and a list a firing one.
awk '
  /^ *alertname:/ { name = $2; next }
  name != "" && /^ *exp_alerts: *\[\] *$/ { print name, "silent"; name = ""; next }
  name != "" && /^ *exp_alerts: *$/ { print name, "fires"; name = ""; next }
' "$rules_test" | sort -u >"$tmp/cases"
for a in "${alerts[@]}"; do
  check "$a has a firing test" grep -qx "$a fires" "$tmp/cases"
  check "$a has a silent test" grep -qx "$a silent" "$tmp/cases"
done

# --- names: recording rules, documented metrics ----------------------------
sed -n 's/^ *- record: *\([A-Za-z0-9_:]*\).*/\1/p' "$rules" | sort -u >"$tmp/records"
# shellcheck disable=SC2016 # backquotes of Markdown, not a command
grep -o '^| `xgw_[a-z0-9_]*`' "$doc" | tr -d '|` ' | sort -u >"$tmp/documented"
expect_eq "metrics documented in docs/monitoring.md" "$(wc -l <"$tmp/documented")" 29

# names_in FILE: every metric-like identifier in FILE.
names_in() { grep -oE '[A-Za-z_:][A-Za-z0-9_:]*' "$1" | sort -u; }
# check_names WHAT FILE: recording-rule names (with ':') must be defined,
# xgw_ metrics documented.
check_names() {
  local what=$1 file=$2 n missing=()
  while read -r n; do
    case $n in
      :* | *:) ;; # a YAML key or a word before a colon, not a name
      *:*) grep -qx -- "$n" "$tmp/records" || missing+=("$n") ;;
      xgw_*) grep -qx -- "$n" "$tmp/documented" || missing+=("$n") ;;
    esac
  done < <(names_in "$file")
  if [ ${#missing[@]} -eq 0 ]; then
    pass "$what: every name is a recording rule or a documented metric"
  else
    fail "$what: unknown names: ${missing[*]}"
  fi
}
# Only the expressions of the rules file (comments mention file names).
grep -v '^ *#' "$rules" | grep -vE '^ *(- )?(record|alert):' >"$tmp/rules-body"
check_names "xgw-rules.yml" "$tmp/rules-body"

# --- the dashboard ----------------------------------------------------------
if jq -e . "$dashboard" >/dev/null 2>"$tmp/jq.err"; then
  pass "dashboard is valid JSON"
  jq -r '.. | objects | select(has("expr")) | .expr' "$dashboard" >"$tmp/exprs"
  jq -r '.templating.list[] | select(.type == "query") | .definition' "$dashboard" >"$tmp/vars"
  check "dashboard has queries" test -s "$tmp/exprs"
  expect_eq "dashboard panel ids unique" \
    "$(jq '[.panels[].id] | length == (unique | length)' "$dashboard")" true
  check_names "dashboard queries" "$tmp/exprs"
  check_names "dashboard variables" "$tmp/vars"
  # Each query, with Grafana's variables filled in, as a recording rule:
  # promtool check rules parses its PromQL.
  {
    echo "groups:"
    echo "  - name: dashboard"
    echo "    rules:"
    i=0
    while IFS= read -r e; do
      i=$((i + 1))
      # shellcheck disable=SC2016 # Grafana variables, replaced literally
      e=$(printf '%s' "$e" | sed -e 's/\$__rate_interval/1m/g' -e 's/\$__range/1h/g' \
        -e 's/\$[a-z_]*/.*/g')
      printf '      - record: dashboard:query_%d:check\n        expr: |\n          %s\n' "$i" "$e"
    done <"$tmp/exprs"
  } >"$tmp/dashboard-rules.yml"
  expect_ok "dashboard queries parse as PromQL" "$promtool" check rules "$tmp/dashboard-rules.yml"
else
  fail "dashboard is valid JSON: $(cat "$tmp/jq.err")"
fi

# --- the prometheus.yml of docs/monitoring.md -------------------------------
awk '/^```yaml$/ { inblock = 1; first = 1; next }
     /^```$/ { inblock = 0; next }
     inblock && first { take = ($0 == "# prometheus.yml"); first = 0 }
     inblock && take' "$doc" >"$tmp/prometheus.yml"
check "docs/monitoring.md has a prometheus.yml example" grep -q 'job_name: xgw' "$tmp/prometheus.yml"
cp "$rules" "$tmp/xgw-rules.yml"
expect_ok "promtool check config on the documented prometheus.yml" \
  "$promtool" check config "$tmp/prometheus.yml"
expect_eq "documented scrape interval of job xgw" \
  "$(sed -n '/job_name: xgw/,/static_configs/s/^ *scrape_interval: *\([0-9a-z]*\).*/\1/p' "$tmp/prometheus.yml")" 5s

checks_done
