#!/usr/bin/env bash
# The "many domains" benchmark lab: N customer domains c00001.many.test ... of a
# hosting provider, all served by the same two authoritative servers (NSD and Knot) under
# the provider's name server names, all with the provider's two MX hosts. A BIND parent
# holds many.test. with the N delegations; Unbound resolves. For /probe and static
# rounds at 1,000 to 50,000 domains (bench/many_domains.sh).
#
#   lab/dns/bench_many.sh start N [RUNDIR]   start (idempotent for the same N), print the env
#   lab/dns/bench_many.sh stop [RUNDIR]      stop; a no-op when nothing runs
#   lab/dns/bench_many.sh status [RUNDIR]    one line per daemon
#
# Addresses 127.0.56.x only: NSD .1, Knot .2, the parent BIND .4, mail hosts .25 and
# .26, Unbound .53. LAB_PORT (default 10053) picks the port. Every customer zone is the
# same file, written relative to its origin, so 50,000 zones cost one file.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
TAG=many
# shellcheck source=lib.sh
. "$HERE/lib.sh"

NSD_ADDR=127.0.56.1
KNOT_ADDR=127.0.56.2
PARENT_ADDR=127.0.56.4
MX1_ADDR=127.0.56.25
MX2_ADDR=127.0.56.26
RESOLVER_ADDR=127.0.56.53
BIND_ADDRS=("$PARENT_ADDR")

usage() {
  echo "usage: $0 start N [RUNDIR] | stop [RUNDIR] | status [RUNDIR]" >&2
  exit 2
}

[ $# -ge 1 ] || usage
CMD=$1
shift
N=""
case $CMD in
  start)
    if [ $# -lt 1 ] || [ $# -gt 2 ]; then usage; fi
    N=$1
    shift
    case $N in '' | *[!0-9]*) die "N must be a number, not '$N'" ;; esac
    N=$((10#$N))
    if [ "$N" -lt 1 ] || [ "$N" -gt 99999 ]; then die "N must be between 1 and 99999"; fi
    ;;
  stop | status) [ $# -le 1 ] || usage ;;
  *) usage ;;
esac
RUN=${1:-$REPO/target/dns-many}
PORT=${LAB_PORT:-10053}
case $PORT in '' | *[!0-9]*) die "LAB_PORT must be a port number, not '$PORT'" ;; esac

mkdir -p "$RUN"
RUN=$(cd "$RUN" && pwd)
exec 9>"$RUN/lock"
flock -w 60 9 || die "another bench_many.sh holds $RUN/lock"

print_env() {
  {
    echo "MANY_PORT=$PORT"
    echo "MANY_RESOLVER=$RESOLVER_ADDR:$PORT"
    echo "MANY_DOMAINS=$RUN/domains.txt"
    echo "MANY_N=$N"
    echo "MANY_SERVERS=$NSD_ADDR $KNOT_ADDR $PARENT_ADDR"
    echo "MANY_RUNDIR=$RUN"
  } >"$RUN/env"
  cat "$RUN/env"
}

inputs_hash() {
  { echo "n=$N port=$PORT uid=$(id -u)"; cat "$HERE/bench_many.sh" "$HERE/lib.sh"; } | sha256sum | cut -d' ' -f1
}

generate() {
  rm -rf "${RUN:?}/gen" "$RUN/zones" "$RUN/nsd" "$RUN/knot" "$RUN/bind-parent" "$RUN/unbound" "${RUN:?}/bin"
  mkdir -p "$RUN/gen" "$RUN/zones" "$RUN/nsd" "$RUN/knot/db" "$RUN/bind-parent" "$RUN/unbound"
  local soa="SOA ns1.provider.many.test. hostmaster.provider.many.test. 2026120601 14400 3600 1209600 300"
  # one customer zone, relative to whatever origin it is loaded as
  cat >"$RUN/zones/customer.zone" <<EOF
\$TTL 300
@ $soa
@ NS ns1.provider.many.test.
@ NS ns2.provider.many.test.
@ A $MX1_ADDR
@ MX 10 mx1.provider.many.test.
@ MX 20 mx2.provider.many.test.
@ TXT "v=spf1 mx -all"
_dmarc TXT "v=DMARC1; p=reject; rua=mailto:dmarc@provider.many.test"
EOF
  cat >"$RUN/zones/provider.many.test.zone" <<EOF
\$ORIGIN provider.many.test.
\$TTL 300
@ $soa
@ NS ns1
@ NS ns2
ns1 A $NSD_ADDR
ns2 A $KNOT_ADDR
mx1 A $MX1_ADDR
mx2 A $MX2_ADDR
@ MX 10 mx1
@ TXT "v=spf1 mx -all"
_dmarc TXT "v=DMARC1; p=reject"
EOF
  cat >"$RUN/zones/56.0.127.in-addr.arpa.zone" <<EOF
\$ORIGIN 56.0.127.in-addr.arpa.
\$TTL 300
@ $soa
@ NS ns1.provider.many.test.
@ NS ns2.provider.many.test.
1 PTR ns1.provider.many.test.
2 PTR ns2.provider.many.test.
25 PTR mx1.provider.many.test.
26 PTR mx2.provider.many.test.
EOF
  awk -v n="$N" -v run="$RUN" -v parent="$PARENT_ADDR" -v ns1="$NSD_ADDR" -v ns2="$KNOT_ADDR" '
    BEGIN {
      pz = run "/bind-parent/many.test.zone"; zl = run "/gen/zones.list"; dom = run "/domains.txt"
      stubs = run "/gen/stubs"
      printf "many.test %s\nprovider.many.test %s %s\n56.0.127.in-addr.arpa %s %s\n", parent, ns1, ns2, ns1, ns2 > stubs
      printf "$ORIGIN many.test.\n$TTL 300\n@ SOA ns.many.test. hostmaster.many.test. 2026120601 14400 3600 1209600 300\n" > pz
      printf "@ NS ns\nns A %s\nprovider NS ns1.provider\nprovider NS ns2.provider\n", parent > pz
      printf "ns1.provider A %s\nns2.provider A %s\n", ns1, ns2 > pz
      printf "provider.many.test\t%s/zones/provider.many.test.zone\n", run > zl
      printf "56.0.127.in-addr.arpa\t%s/zones/56.0.127.in-addr.arpa.zone\n", run > zl
      for (i = 1; i <= n; i++) {
        z = sprintf("c%05d", i)
        printf "%s NS ns1.provider.many.test.\n%s NS ns2.provider.many.test.\n", z, z > pz
        printf "%s.many.test\t%s/zones/customer.zone\n", z, run > zl
        # Unbound follows referrals to port 53 only: every zone is a stub of its own
        printf "%s.many.test %s %s\n", z, ns1, ns2 > stubs
        print z ".many.test" > dom
      }
    }'
  printf 'many.test\t%s\n' "$RUN/bind-parent/many.test.zone" >"$RUN/gen/parent.list"
  check_zone c00001.many.test "$RUN/zones/customer.zone"
  check_zone many.test "$RUN/bind-parent/many.test.zone"

  write_nsd "$RUN/nsd" "$NSD_ADDR" "$RUN/gen/zones.list"
  write_knot "$RUN/knot" "$KNOT_ADDR" "$RUN/gen/zones.list" 2
  write_named "$RUN/bind-parent" "$PARENT_ADDR" "$RUN/gen/parent.list"
  write_unbound "$RUN/unbound" "$RESOLVER_ADDR" "$RUN/gen/stubs" "many.test 56.0.127.in-addr.arpa" 2
}

start() {
  local hash t0 deadline last
  t0=$(now_ms)
  hash=$(inputs_hash)
  if [ -s "$RUN/inputs.sha" ] && all_alive; then
    if [ "$(cat "$RUN/inputs.sha")" = "$hash" ]; then
      print_env
      return 0
    fi
    echo "many: inputs changed since the lab was started; restarting" >&2
  fi
  stop_all
  command -v dig >/dev/null || die "dig is not installed (bind9-dnsutils)"
  generate
  local nsd_bin knot_bin named_bin unbound_bin
  nsd_bin=$(find_daemon nsd)
  knot_bin=$(find_daemon knotd)
  named_bin=$(find_daemon named)
  unbound_bin=$(find_daemon unbound)
  ports_free "$NSD_ADDR" "$KNOT_ADDR" "$PARENT_ADDR" "$RESOLVER_ADDR"
  ensure_addrs "${BIND_ADDRS[@]}"

  spawn nsd "$NSD_ADDR" "$RUN/nsd/nsd.pid" "$RUN/nsd/nsd.log" "$nsd_bin" -c "$RUN/nsd/nsd.conf"
  spawn knot "$KNOT_ADDR" "$RUN/knot/knot.pid" "$RUN/knot/knot.log" "$knot_bin" -d -c "$RUN/knot/knot.conf"
  spawn bind-parent "$PARENT_ADDR" "$RUN/bind-parent/named.pid" "$RUN/bind-parent/named.log" \
    "$named_bin" -4 -n 1 -c "$RUN/bind-parent/named.conf"
  spawned_ok

  # 10 ms per zone, at least the default budget
  WAIT_MS=$((N * 10 > WAIT_MS ? N * 10 : WAIT_MS))
  deadline=$(($(now_ms) + WAIT_MS))
  last=$(printf 'c%05d.many.test' "$N")
  local ok=1
  wait_auth nsd "$NSD_ADDR" "$RUN/nsd/nsd.log" "$deadline" "$last" provider.many.test || ok=0
  [ "$ok" = 1 ] && { wait_auth knot "$KNOT_ADDR" "$RUN/knot/knot.log" "$deadline" "$last" provider.many.test || ok=0; }
  [ "$ok" = 1 ] && { wait_auth bind-parent "$PARENT_ADDR" "$RUN/bind-parent/named.log" "$deadline" many.test || ok=0; }
  if [ "$ok" = 1 ]; then
    spawn unbound "$RESOLVER_ADDR" "$RUN/unbound/unbound.pid" "$RUN/unbound/unbound.log" \
      "$unbound_bin" -c "$RUN/unbound/unbound.conf"
    spawned_ok
    wait_resolver unbound "$RESOLVER_ADDR" "$RUN/unbound/unbound.log" "$deadline" "$last" MX || ok=0
  fi
  if [ "$ok" != 1 ]; then
    stop_all >/dev/null 2>&1 || true
    exit 1
  fi
  echo "$hash" >"$RUN/inputs.sha"
  echo "many: $N domains on NSD and Knot started in $(($(now_ms) - t0)) ms ($RUN)" >&2
  print_env
}

case $CMD in
  start) start ;;
  stop) stop_all ;;
  status) status_all ;;
esac
