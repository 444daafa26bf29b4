#!/usr/bin/env bash
# Side-by-side benchmark: mailroute_exporter against Debian's mtail (with
# bench/mtail/postfix.mtail) and prometheus-postfix-exporter, on the same generated
# 1M-line Postfix and mixed logs, in one run. Works from a fresh clone:
#
#   bench/compare.sh [--lines N] [--skip mtail,postfix_exporter] [--json FILE]
#
# It builds the release binary, installs the two peers with apt-get when they are
# missing (root, or sudo), then runs bench/compare.py, which prints lines/s, CPU
# seconds per million lines, peak RSS, the ratios ours-vs-peer and each tool's
# reject count against the generator's ground truth; then bench/latency.sh
# (append-to-/metrics latency, p50/p99). Inputs are cached in $BENCH_DIR
# (default /tmp/mailroute-bench). Takes 2-3 minutes on 2 cores after the build.
set -euo pipefail
cd "$(dirname "$0")/.."

sudo_() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
[ -x /usr/bin/time ] || missing+=(time)
command -v mtail >/dev/null 2>&1 || missing+=(mtail)
command -v prometheus-postfix-exporter >/dev/null 2>&1 || missing+=(prometheus-postfix-exporter)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]} (Debian packages)" >&2
  # the packages must not start their daemons (they would take ports 3903 and 9154)
  policy=/usr/sbin/policy-rc.d
  created=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | sudo_ tee "$policy" >/dev/null
    sudo_ chmod +x "$policy"
    created=1
  fi
  sudo_ apt-get update -qq || true
  sudo_ env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  [ "$created" -eq 1 ] && sudo_ rm -f "$policy"
fi

echo "building the release binary" >&2
cargo build --release --locked -q --bins --example gen

timeout 600 python3 bench/compare.py "$@"
echo
timeout 120 bench/latency.sh
