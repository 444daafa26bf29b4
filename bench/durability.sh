#!/usr/bin/env bash
# Durability benchmarks of issue 11 on the release binary with the real logrotate:
#   bench/durability.sh restart        kill -9 every 3 s, 5,000 lines/s, logrotate every 7 s
#   bench/durability.sh copytruncate   copytruncate every 4 s at 10,000 lines/s
#   bench/durability.sh syslog         2,000 TCP senders x 50 lines, peak RSS
#   bench/durability.sh all            the three, one after the other
# Further arguments go to bench/durability.py (see its --help).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x target/release/mailroute_exporter ] || cargo build --release --locked -q
command -v logrotate >/dev/null || { echo "logrotate is missing (apt-get install logrotate)" >&2; exit 2; }
# 2,000 connections on each side of the syslog run
ulimit -n 16384 2>/dev/null || ulimit -n "$(ulimit -Hn)"
if [ "${1:-all}" = all ]; then
  rc=0
  for b in restart copytruncate syslog; do python3 bench/durability.py "$b" || rc=1; done
  exit $rc
fi
exec python3 bench/durability.py "$@"
