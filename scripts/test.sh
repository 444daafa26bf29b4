#!/usr/bin/env bash
# The project's test command (README: "Test"). Installs what the tests need, then runs
# every check CI runs: formatting, lints, the release build, the Rust tests (unit,
# golden, end-to-end against the real binary, real DNS servers, real logrotate), the
# alerting rules and dashboard checks, and the deployment file checks.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "installing test dependencies"
./scripts/install-test-deps.sh
# the Python tools (hadolint, check-jsonschema, PyYAML, kubernetes) live in the venv
export PATH="${MAILROUTE_VENV:-$PWD/.venv}/bin:$PATH"

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --all-targets --locked -- -D warnings

step "release build (the same command as the Dockerfile)"
cargo build --release --locked

step "DNS lab (NSD, Knot, BIND, Unbound on 127.0.53.x)"
lab/dns/lab.sh start
trap 'lab/dns/lab.sh stop >/dev/null 2>&1 || true' EXIT

step "cargo test"
cargo test --locked --all-targets

step "alerting rules, Alertmanager route, dashboard"
bash tests/alerts_check.sh

step "Dockerfile, systemd unit, compose, Kubernetes, Prometheus config"
bash tests/deploy_check.sh

printf '\nall checks passed\n'
