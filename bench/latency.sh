#!/usr/bin/env bash
# Append-to-/metrics latency of the release binary: bench/latency.py (p50/p90/p99
# over 50 trials; exits 1 when p99 is above 20 ms; --state-file with a state file). Arguments go to latency.py.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x target/release/mailroute_exporter ] || cargo build --release --locked -q
exec python3 bench/latency.py "$@"
