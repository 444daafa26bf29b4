#!/usr/bin/env bash
# SMTP TLS round benchmark (issue 12): N domains (default 100) of the bench lab
# (lab/dns/bench.sh), each with starttls_probe = true. One Postfix master listens on every
# MX address (127.0.58.x, the bench lab's mail hosts) with STARTTLS and a certificate for
# all the MX names, signed by a CA made with openssl for the run (ca_file). The exporter
# runs rounds every INTERVAL (default 30s) for ROUNDS rounds (default 5); printed: each
# round's duration, the failing checks, RSS after the first and after the last round,
# peak RSS, and the same first round with the probes off for comparison.
#
#   bench/tls_round.sh [N]        (as root: Postfix's master and smtpd)
#
# Targets: a round within 10 % of the interval (the default interval is 5m: 30 s), RSS
# growth <= 16 MiB with the probes on.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-100}
INTERVAL=${INTERVAL:-30}
ROUNDS=${ROUNDS:-5}
BIN=${BIN:-target/release/mailroute_exporter}
[ -x "$BIN" ] || cargo build --release --locked
WORK=$(mktemp -d)
chmod 755 "$WORK"
PID=""
MASTER=""
cleanup() {
  if [ -n "$PID" ]; then kill "$PID" 2>/dev/null || true; fi
  if [ -n "$MASTER" ]; then kill "$MASTER" 2>/dev/null || true; fi
  lab/dns/bench.sh stop >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

env_out=$(lab/dns/bench.sh start "$N")
resolver=$(printf '%s\n' "$env_out" | sed -n 's/^BENCH_RESOLVER=//p')
port=$(printf '%s\n' "$env_out" | sed -n 's/^BENCH_PORT=//p')
domains=$(printf '%s\n' "$env_out" | sed -n 's/^BENCH_DOMAINS=//p')

# ---- a CA and one certificate for every MX name
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 -subj "/CN=mailroute bench CA" \
  -keyout "$WORK/ca.key" -out "$WORK/ca.pem" 2>/dev/null
san=$(sed 's/^/DNS:mx./' "$domains" | paste -sd, -)
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=mx.bench.test" \
  -keyout "$WORK/mx.key" -out "$WORK/mx.csr" 2>/dev/null
printf 'subjectAltName=%s\n' "$san" > "$WORK/ext"
openssl x509 -req -in "$WORK/mx.csr" -CA "$WORK/ca.pem" -CAkey "$WORK/ca.key" -CAcreateserial -days 30 \
  -extfile "$WORK/ext" -out "$WORK/mx.crt" 2>/dev/null
chmod 644 "$WORK"/*.key "$WORK"/*.crt "$WORK"/*.pem

# ---- Postfix: one smtpd listener per MX address, on a free port
smtp_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.58.1", 0)); print(s.getsockname()[1])')
pf=$WORK/postfix
mkdir -p "$pf/conf" "$pf/queue/pid" "$pf/queue/private" "$pf/data"
chmod -R 755 "$pf"
chown postfix "$pf/data" "$pf/queue/private"
cat > "$pf/conf/main.cf" <<EOF
compatibility_level = 3.6
queue_directory = $pf/queue
data_directory = $pf/data
mail_owner = postfix
myhostname = mx.bench.test
inet_interfaces = all
inet_protocols = ipv4
mydestination =
relay_domains =
local_recipient_maps =
alias_maps =
alias_database =
smtpd_tls_security_level = may
smtpd_tls_cert_file = $WORK/mx.crt
smtpd_tls_key_file = $WORK/mx.key
smtpd_client_connection_count_limit = 0
smtpd_client_connection_rate_limit = 0
default_process_limit = 200
EOF
{
  echo "tlsmgr unix - - n 1000? 1 tlsmgr"
  i=0
  while read -r _; do
    i=$((i + 1))
    net=$((58 + (i - 1) / 250))
    host=$((1 + (i - 1) % 250))
    echo "127.0.$net.$host:$smtp_port inet n - n - - smtpd"
  done < "$domains"
} > "$pf/conf/master.cf"
daemon_dir=$(postconf -c "$pf/conf" -h daemon_directory)
"$daemon_dir/master" -c "$pf/conf" -d 2> "$WORK/postfix.err" &
MASTER=$!
for _ in $(seq 1 100); do
  (exec 3<>"/dev/tcp/127.0.58.1/$smtp_port") 2>/dev/null && break
  sleep 0.1
done

run() { # $1 = starttls_probe, $2 = rounds; prints "round seconds" lines and RSS samples
  {
    printf '[dns]\nresolvers = ["%s"]\nport = %s\ntimeout = "2s"\nconcurrency = 64\ninterval = "%ss"\n' \
      "$resolver" "$port" "$INTERVAL"
    printf 'smtp_probe_port = %s\nca_file = "%s"\n' "$smtp_port" "$WORK/ca.pem"
    while read -r d; do printf '\n[[dns.domain]]\nname = "%s"\nstarttls_probe = %s\n' "$d" "$1"; done < "$domains"
  } > "$WORK/config.toml"
  : > "$WORK/mail.log"
  "$BIN" serve --config.file="$WORK/config.toml" --maillog.path="$WORK/mail.log" \
    --web.listen-address=127.0.0.1:0 2> "$WORK/stderr" &
  PID=$!
  peak=0
  first_rss=""
  for _ in $(seq 1 $((($2 * INTERVAL + 60) * 20))); do
    rss=$(awk '/VmRSS/ {print $2}' "/proc/$PID/status")
    [ "$rss" -gt "$peak" ] && peak=$rss
    n=$(grep -c "DNS round finished" "$WORK/stderr" || true)
    [ -z "$first_rss" ] && [ "$n" -ge 1 ] && first_rss=$rss
    [ "$n" -ge "$2" ] && break
    sleep 0.05
  done
  last_rss=$(awk '/VmRSS/ {print $2}' "/proc/$PID/status")
  kill "$PID"
  wait "$PID" 2>/dev/null || true
  PID=""
  grep "DNS round finished" "$WORK/stderr" | while read -r line; do
    secs=$(printf '%s\n' "$line" | grep -o 'seconds=[^ ]*' | tr -d '"' | cut -d= -f2)
    fails=$(printf '%s\n' "$line" | grep -o 'failing_checks=[0-9]*' | cut -d= -f2)
    printf 'round %s s, failing checks %s\n' "$secs" "$fails"
  done
  printf 'RSS after round 1: %.1f MiB, after round %s: %.1f MiB, peak %.1f MiB\n' \
    "$(python3 -c "print(${first_rss:-0}/1024)")" "$2" "$(python3 -c "print($last_rss/1024)")" \
    "$(python3 -c "print($peak/1024)")"
}

printf 'domains: %s, interval %ss, STARTTLS on %s MX addresses (port %s)\n' "$N" "$INTERVAL" "$N" "$smtp_port"
echo "-- probes off (1 round)"
run false 1
echo "-- starttls_probe on ($ROUNDS rounds)"
run true "$ROUNDS"
