#!/usr/bin/env bash
# Checks everything under alerts/ and dashboards/:
#   promtool check rules, promtool test rules, amtool check-config plus the routing of each
#   severity, and the dashboard linter (including its expression listing).
# Runs every step, prints the output of the failing ones, ends with a one-line summary and
# exits non-zero if any step failed. Needs promtool, amtool and python3 on PATH.
set -euo pipefail

# The Python tools scripts/install-test-deps.sh puts in the repository's venv come first.
venv="${MAILROUTE_VENV:-"$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.venv"}"
if [ -d "$venv/bin" ]; then PATH="$venv/bin:$PATH"; fi

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

for tool in promtool amtool python3; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "alerts_check: $tool not found (scripts/install-test-deps.sh installs it)" >&2
    exit 2
  fi
done

am_config=alerts/alertmanager.example.yml
out="$(mktemp)"
trap 'rm -f "$out"' EXIT
passed=0
failed=()

step() {
  local name="$1"
  shift
  if "$@" >"$out" 2>&1; then
    passed=$((passed + 1))
  else
    failed+=("$name")
    echo "--- FAILED: $name: $*" >&2
    cat "$out" >&2
  fi
}

# amtool prints the receiver the labels route to; compare with the expected one.
route_is() {
  local want="$1"
  shift
  local got
  got="$(amtool config routes test --config.file="$am_config" "$@" 2>/dev/null)"
  if [ "$got" != "$want" ]; then
    echo "labels $* route to '$got', expected '$want'"
    return 1
  fi
}

# At least one expression per dashboard panel query and per rule, all valid JSON lines.
exprs_listed() {
  local n
  n="$(python3 tests/dashboards_lint.py --print-exprs --substitute \
         dashboards/mailroute.json alerts/mailroute.rules.yml \
       | python3 -c 'import json, sys; print(sum(1 for l in sys.stdin if json.loads(l)["expr"]))')"
  if [ "$n" -lt 20 ]; then
    echo "only $n expressions listed"
    return 1
  fi
}

step "promtool check rules" promtool check rules alerts/mailroute.rules.yml
step "promtool test rules" promtool test rules alerts/*_test.yml
step "amtool check-config" amtool check-config "$am_config"
step "critical pages" route_is pager severity=critical alertname=MailMisrouteSpike domain=nmrc.org
step "warning tickets" route_is ticket severity=warning alertname=MailDNSCheckFailed domain=nmrc.org
step "info tickets" route_is ticket severity=info alertname=MailDNSCheckFailed domain=nmrc.org
step "dashboard lint" python3 tests/dashboards_lint.py dashboards/mailroute.json
step "expression listing" exprs_listed

if [ "${#failed[@]}" -eq 0 ]; then
  echo "alerts_check: OK, $passed checks passed (rules, rule unit tests, alertmanager config and routes, dashboard lint)"
else
  echo "alerts_check: FAILED ${#failed[@]} of $((passed + ${#failed[@]})): ${failed[*]}" >&2
  exit 1
fi
