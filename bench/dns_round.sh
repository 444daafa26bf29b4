#!/usr/bin/env bash
# DNS round benchmark: N domains (default 1000) x 3 authoritative servers (NSD, Knot,
# BIND) of the bench lab, concurrency 64. Prints the first round's duration, the
# exporter's peak RSS, and how long /metrics takes to render with N domains.
#
#   bench/dns_round.sh [N]
#
# The zones are DNSSEC-signed (BENCH_DNSSEC=1, the default; 0 for unsigned zones), so a
# round also asks every server for DNSKEY and the signed RRsets and verifies every RRSIG.
# Signing 1,000 zones adds about 45 s to the bench lab's start.
#
# Targets (issue 3, issue 10 with DNSSEC): round <= 10 s, RSS <= 48 MiB, /metrics <= 20 ms.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000}
BIN=${BIN:-target/release/mailroute_exporter}
[ -x "$BIN" ] || cargo build --release --locked
WORK=$(mktemp -d)
cleanup() {
  [ -n "${PID:-}" ] && kill "$PID" 2>/dev/null || true
  # BENCH_KEEP_LAB=1 leaves the bench lab running for the next run (signing takes a while)
  [ "${BENCH_KEEP_LAB:-0}" = 1 ] || lab/dns/bench.sh stop >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

export BENCH_DNSSEC=${BENCH_DNSSEC:-1}
env_out=$(lab/dns/bench.sh start "$N")
resolver=$(printf '%s\n' "$env_out" | sed -n 's/^BENCH_RESOLVER=//p')
port=$(printf '%s\n' "$env_out" | sed -n 's/^BENCH_PORT=//p')
domains=$(printf '%s\n' "$env_out" | sed -n 's/^BENCH_DOMAINS=//p')
{
  # all N domains share the same three servers: at the default max_qps_per_server (50)
  # the round would take N x ~7 queries / 50 s per server; QPS (default 5000) measures
  # the engine instead of the politeness limit
  printf '[dns]\nresolvers = ["%s"]\nport = %s\ntimeout = "2s"\nconcurrency = 64\ninterval = "1h"\nmax_qps_per_server = %s\n' "$resolver" "$port" "${QPS:-5000}"
  while read -r d; do printf '\n[[dns.domain]]\nname = "%s"\n' "$d"; done < "$domains"
} > "$WORK/config.toml"
: > "$WORK/mail.log"

${PREFIX_ENV:-} "$BIN" serve --config.file="$WORK/config.toml" --maillog.path="$WORK/mail.log" \
  --web.listen-address=127.0.0.1:0 2> "$WORK/stderr" &
PID=$!
addr=""
for _ in $(seq 1 100); do
  addr=$(sed -n 's/.*msg=listening address=\([^ ]*\).*/\1/p' "$WORK/stderr" | head -1)
  addr=${addr#http://}
  [ -n "$addr" ] && break
  sleep 0.1
done
[ -n "$addr" ] || { cat "$WORK/stderr"; exit 1; }
addr=${addr#http://}   # the log line carries the URL
peak=0
for _ in $(seq 1 1200); do
  rss=$(awk '/VmRSS/ {print $2}' "/proc/$PID/status")
  [ "$rss" -gt "$peak" ] && peak=$rss
  grep -q "DNS round finished" "$WORK/stderr" && break
  sleep 0.05
done
# the round's own high-water mark, before any scrape
round_peak=$(awk '/VmHWM/ {print $2}' "/proc/$PID/status")
# CPU the exporter used up to the end of the round (utime + stime, clock ticks)
cpu=$(awk '{ print ($14 + $15) / 100 }' "/proc/$PID/stat")
round=$(sed -n 's/.*msg="DNS round finished".* seconds=\([0-9.]*\).*/\1/p' "$WORK/stderr" | head -1)
failing=$(sed -n 's/.*msg="DNS round finished".*failing_checks=\([0-9]*\).*/\1/p' "$WORK/stderr" | head -1)
best=999
for _ in 1 2 3 4 5; do
  t=$(curl -s -o "$WORK/metrics" -w '%{time_total}' "http://$addr/metrics")
  best=$(python3 -c "print(min($best, $t))")
  rss=$(awk '/VmRSS/ {print $2}' "/proc/$PID/status")
  [ "$rss" -gt "$peak" ] && peak=$rss
done
series=$(grep -c '^mailroute_dns' "$WORK/metrics")
printf 'domains: %s x 3 servers, concurrency 64, DNSSEC-signed: %s\n' "$N" "$([ "$BENCH_DNSSEC" = 1 ] && echo yes || echo no)"
printf 'first round: %s s (failing checks: %s)\n' "$round" "$failing"
printf 'exporter CPU to the end of the round: %s s\n' "$cpu"
printf 'peak RSS during the round: %.1f MiB\n' "$(python3 -c "print($round_peak/1024)")"
printf 'peak RSS: %.1f MiB\n' "$(python3 -c "print($peak/1024)")"
printf '/metrics: %.1f ms for %s mailroute_dns series (best of 5, over HTTP)\n' "$(python3 -c "print($best*1000)")" "$series"
