#!/usr/bin/env bash
# The benchmark lab: N good mail domains b0001.bench.test ... each served by NSD, Knot and
# BIND (3 NS each), a BIND parent for bench.test. with the delegations, and an Unbound
# resolver. For timing DNS rounds ("1,000 domains x 3 servers").
#
#   lab/dns/bench.sh start N [RUNDIR]   start (idempotent for the same N), print the resolver
#   lab/dns/bench.sh stop [RUNDIR]      stop; a no-op when nothing runs
#   lab/dns/bench.sh status [RUNDIR]    one line per daemon; exit 0 all up, 3 none, 1 some
#   lab/dns/bench.sh addrs              (root) put the BIND addresses on lo for good
#
# RUNDIR defaults to <repo>/target/dns-bench; LAB_PORT (default 10053) picks the port, as
# for lab.sh. BENCH_DNSSEC=1 signs every zone (ECDSAP256SHA256, one KSK + ZSK pair shared
# by all zones, dnssec-signzone from bind9-utils) and puts the DS records in bench.test. The bench uses 127.0.57.x and mail hosts in 127.0.58.0 onwards, so it can
# run beside the main lab. RUNDIR/domains.txt lists the domains, one a line.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
TAG=bench
# shellcheck source=lib.sh
. "$HERE/lib.sh"

NSD_ADDR=127.0.57.1
KNOT_ADDR=127.0.57.2
BIND_ADDR=127.0.57.3
PARENT_ADDR=127.0.57.4
RESOLVER_ADDR=127.0.57.53
BIND_ADDRS=("$BIND_ADDR" "$PARENT_ADDR")
PER_NET=250   # mail host addresses per /24, starting at 127.0.58.1

usage() {
  echo "usage: $0 start N [RUNDIR] | stop [RUNDIR] | status [RUNDIR] | addrs" >&2
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
    if [ "$N" -lt 1 ] || [ "$N" -gt 9999 ]; then die "N must be between 1 and 9999"; fi
    ;;
  stop | status) [ $# -le 1 ] || usage ;;
  addrs)
    add_addrs "${BIND_ADDRS[@]}"
    exit 0
    ;;
  *) usage ;;
esac
RUN=${1:-$REPO/target/dns-bench}
PORT=${LAB_PORT:-10053}
case $PORT in '' | *[!0-9]*) die "LAB_PORT must be a port number, not '$PORT'" ;; esac

mkdir -p "$RUN"
RUN=$(cd "$RUN" && pwd)
exec 9>"$RUN/lock"
flock -w 60 9 || die "another bench.sh holds $RUN/lock"

print_env() {
  {
    echo "BENCH_PORT=$PORT"
    echo "BENCH_RESOLVER=$RESOLVER_ADDR:$PORT"
    echo "BENCH_DOMAINS=$RUN/domains.txt"
    echo "BENCH_N=$N"
    echo "BENCH_RUNDIR=$RUN"
  } >"$RUN/env"
  cat "$RUN/env"
}

inputs_hash() {
  { echo "n=$N port=$PORT uid=$(id -u) dnssec=${BENCH_DNSSEC:-0}"; cat "$HERE/bench.sh" "$HERE/lib.sh"; } | sha256sum | cut -d' ' -f1
}

# Everything is written by one awk run: N zone files (shared by the three servers, which
# only read them), the reverse zones, the parent zone, the zone lists and the stub list.
# sign_all: sign every b*.bench.test zone in place, two at a time. One key pair is made
# for b0001 and copied under each zone's name (a key's tag does not depend on its owner;
# its DS does, and dnssec-signzone writes each zone's dsset file).
sign_all() {
  local keys=$RUN/gen/keys ksk zsk t0
  t0=$(now_ms)
  command -v dnssec-signzone >/dev/null || die "dnssec-signzone is not installed (bind9-utils)"
  mkdir -p "$keys/proto"
  ksk=$(dnssec-keygen -q -K "$keys/proto" -a ECDSAP256SHA256 -f KSK b0001.bench.test) || die "dnssec-keygen failed"
  zsk=$(dnssec-keygen -q -K "$keys/proto" -a ECDSAP256SHA256 b0001.bench.test) || die "dnssec-keygen failed"
  ksk=${ksk#Kb0001.bench.test.} zsk=${zsk#Kb0001.bench.test.}
  export keys ksk zsk RUN
  # shellcheck disable=SC2016 # expanded by the inner shell
  cut -f1 "$RUN/gen/zones.list" | grep '^b[0-9]*\.bench\.test$' | xargs -P 2 -n 50 sh -c '
    for z do
      for k in "$ksk" "$zsk"; do
        sed "s/^b0001\.bench\.test\./$z./" "$keys/proto/Kb0001.bench.test.$k.key" >"$keys/K$z.$k.key"
        cp "$keys/proto/Kb0001.bench.test.$k.private" "$keys/K$z.$k.private"
      done
      f=$RUN/zones/$z.zone
      cat "$keys/K$z.$ksk.key" "$keys/K$z.$zsk.key" >>"$f"
      dnssec-signzone -q -K "$keys" -d "$keys" -o "$z" -f "$f.signed" -s now-3600 -e now+30d -N keep \
        "$f" "$keys/K$z.$ksk.key" "$keys/K$z.$zsk.key" >/dev/null 2>"$f.err" || { cat "$f.err" >&2; exit 255; }
      mv -f "$f.signed" "$f" && rm -f "$f.err"
    done' _ || die "signing the bench zones failed"
  cat "$keys"/dsset-* >>"$RUN/bind-parent/bench.test.zone"
  echo "bench: signed $(find "$keys" -name 'dsset-*' | wc -l) zones in $(($(now_ms) - t0)) ms" >&2
}

generate() {
  rm -rf "${RUN:?}/gen" "$RUN/zones" "$RUN/nsd" "$RUN/knot" "$RUN/bind" "$RUN/bind-parent" "$RUN/unbound" "${RUN:?}/bin"
  mkdir -p "$RUN/gen" "$RUN/zones" "$RUN/nsd" "$RUN/knot/db" "$RUN/bind" "$RUN/bind-parent" "$RUN/unbound"
  awk -v n="$N" -v per="$PER_NET" -v run="$RUN" \
    -v ns1="$NSD_ADDR" -v ns2="$KNOT_ADDR" -v ns3="$BIND_ADDR" -v parent="$PARENT_ADDR" '
    function soa(origin, mname) {
      return sprintf("$ORIGIN %s.\n$TTL 60\n@ SOA %s hostmaster.%s. 2026112701 14400 3600 1209600 300\n", origin, mname, origin)
    }
    BEGIN {
      zl = run "/gen/zones.list"; stubs = run "/gen/stubs"; dom = run "/domains.txt"
      pz = run "/bind-parent/bench.test.zone"
      printf "%s", soa("bench.test", "ns.bench.test.") > pz
      printf "@ NS ns\nns A %s\nns1 A %s\nns2 A %s\nns3 A %s\n", parent, ns1, ns2, ns3 > pz
      printf "bench.test %s\n", parent > stubs
      nets = int((n - 1) / per) + 1
      for (i = 1; i <= n; i++) {
        z = sprintf("b%04d.bench.test", i)
        net = 58 + int((i - 1) / per); host = 1 + (i - 1) % per
        mx = "127.0.58.1"; sub(/58\.1$/, net "." host, mx)
        f = run "/zones/" z ".zone"
        printf "%s", soa(z, "ns1." z ".") > f
        printf "@ NS ns1\n@ NS ns2\n@ NS ns3\nns1 A %s\nns2 A %s\nns3 A %s\n", ns1, ns2, ns3 > f
        printf "@ A %s\n@ MX 10 mx\nmx A %s\n", mx, mx > f
        printf "@ TXT \"v=spf1 mx -all\"\n_dmarc TXT \"v=DMARC1; p=reject; rua=mailto:dmarc@%s\"\n", z > f
        close(f)
        printf "%s NS ns1.%s.\n%s NS ns2.%s.\n%s NS ns3.%s.\n", z ".", z, z ".", z, z ".", z > pz
        printf "ns1.%s. A %s\nns2.%s. A %s\nns3.%s. A %s\n", z, ns1, z, ns2, z, ns3 > pz
        printf "%s\t%s\n", z, f > zl
        printf "%s %s %s %s\n", z, ns1, ns2, ns3 > stubs
        print z > dom
        ptr[net] = ptr[net] sprintf("%d PTR mx.%s.\n", host, z)
      }
      for (k = 0; k < nets; k++) {
        net = 58 + k
        z = net ".0.127.in-addr.arpa"
        f = run "/zones/" z ".zone"
        printf "%s", soa(z, "ns1.bench.test.") > f
        printf "@ NS ns1.bench.test.\n@ NS ns2.bench.test.\n@ NS ns3.bench.test.\n%s", ptr[net] > f
        close(f)
        printf "%s\t%s\n", z, f > zl
        printf "%s %s %s %s\n", z, ns1, ns2, ns3 > stubs
        trees = trees " " z
      }
      print trees > (run "/gen/trees")
    }'
  printf 'bench.test\t%s\n' "$RUN/bind-parent/bench.test.zone" >"$RUN/gen/parent.list"
  if [ "${BENCH_DNSSEC:-0}" = 1 ]; then sign_all; fi
  check_zone b0001.bench.test "$RUN/zones/b0001.bench.test.zone"
  check_zone 58.0.127.in-addr.arpa "$RUN/zones/58.0.127.in-addr.arpa.zone"
  check_zone bench.test "$RUN/bind-parent/bench.test.zone"

  write_nsd "$RUN/nsd" "$NSD_ADDR" "$RUN/gen/zones.list"
  write_knot "$RUN/knot" "$KNOT_ADDR" "$RUN/gen/zones.list" 2
  write_named "$RUN/bind" "$BIND_ADDR" "$RUN/gen/zones.list"
  write_named "$RUN/bind-parent" "$PARENT_ADDR" "$RUN/gen/parent.list"
  write_unbound "$RUN/unbound" "$RESOLVER_ADDR" "$RUN/gen/stubs" "bench.test$(cat "$RUN/gen/trees")" 2
}

start() {
  local hash t0 deadline last zones
  t0=$(now_ms)
  hash=$(inputs_hash)
  if [ -s "$RUN/inputs.sha" ] && all_alive; then
    if [ "$(cat "$RUN/inputs.sha")" = "$hash" ]; then
      print_env
      return 0
    fi
    echo "bench: inputs changed since the bench was started; restarting" >&2
  fi
  stop_all
  command -v dig >/dev/null || die "dig is not installed (bind9-dnsutils)"
  command -v named-checkzone >/dev/null || die "named-checkzone is not installed (bind9-utils)"

  generate
  local nsd_bin knot_bin named_bin unbound_bin
  nsd_bin=$(find_daemon nsd)
  knot_bin=$(find_daemon knotd)
  named_bin=$(find_daemon named)
  unbound_bin=$(find_daemon unbound)
  ports_free "$NSD_ADDR" "$KNOT_ADDR" "$BIND_ADDR" "$PARENT_ADDR" "$RESOLVER_ADDR"
  ensure_addrs "${BIND_ADDRS[@]}"

  spawn nsd "$NSD_ADDR" "$RUN/nsd/nsd.pid" "$RUN/nsd/nsd.log" "$nsd_bin" -c "$RUN/nsd/nsd.conf"
  spawn knot "$KNOT_ADDR" "$RUN/knot/knot.pid" "$RUN/knot/knot.log" "$knot_bin" -d -c "$RUN/knot/knot.conf"
  spawn bind "$BIND_ADDR" "$RUN/bind/named.pid" "$RUN/bind/named.log" "$named_bin" -4 -c "$RUN/bind/named.conf"
  spawn bind-parent "$PARENT_ADDR" "$RUN/bind-parent/named.pid" "$RUN/bind-parent/named.log" \
    "$named_bin" -4 -n 1 -c "$RUN/bind-parent/named.conf"
  spawned_ok

  # loading 3 x N zones takes longer than the small lab: allow 30 ms per zone, at least 10 s
  WAIT_MS=$((N * 30 > WAIT_MS ? N * 30 : WAIT_MS))
  deadline=$(($(now_ms) + WAIT_MS))
  mapfile -t zones < <(cut -f1 "$RUN/gen/zones.list")
  last=$(printf 'b%04d.bench.test' "$N")
  local ok=1 s a log
  for s in nsd:$NSD_ADDR:nsd/nsd.log knot:$KNOT_ADDR:knot/knot.log bind:$BIND_ADDR:bind/named.log; do
    IFS=: read -r s a log <<<"$s"
    # first the last zone alone (cheap to repeat while the server loads), then all of them
    if ! wait_auth "$s" "$a" "$RUN/$log" "$deadline" "$last" ||
      ! wait_auth "$s" "$a" "$RUN/$log" "$deadline" "${zones[@]}"; then
      ok=0
      break
    fi
  done
  [ "$ok" = 1 ] && { wait_auth bind-parent "$PARENT_ADDR" "$RUN/bind-parent/named.log" "$deadline" bench.test || ok=0; }
  if [ "$ok" = 1 ]; then
    spawn unbound "$RESOLVER_ADDR" "$RUN/unbound/unbound.pid" "$RUN/unbound/unbound.log" \
      "$unbound_bin" -c "$RUN/unbound/unbound.conf"
    spawned_ok
    wait_resolver unbound "$RESOLVER_ADDR" "$RUN/unbound/unbound.log" "$deadline" "mx.$last" A || ok=0
  fi
  if [ "$ok" != 1 ]; then
    stop_all >/dev/null 2>&1 || true
    exit 1
  fi
  echo "$hash" >"$RUN/inputs.sha"
  echo "bench: $N domains x 3 servers started in $(($(now_ms) - t0)) ms ($RUN)" >&2
  print_env
}

case $CMD in
  start) start ;;
  stop) stop_all ;;
  status) status_all ;;
esac
