#!/usr/bin/env bash
# Soak: 5 million lines through a tailed file with 64 hosts and 200 local domains;
# RSS must plateau and a full /metrics must take under 5 ms. See bench/soak.py.
#
#   bench/soak.sh                     unthrottled, RSS sampled every 0.1 s
#   bench/soak.sh --rate 100000       paced (about 50 s), sampled every second
#   bench/soak.sh --lines 1000000     a smaller input
#
# Needs ~800 MB in $BENCH_DIR (default /tmp/mailroute-bench) for the 5M-line input,
# which is generated once (about a minute) and reused.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -q --bins --example gen
exec python3 bench/soak.py "$@"
