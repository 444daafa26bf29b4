#!/usr/bin/env bash
# Checks with dig that a running lab serves what the zones promise: the facts each
# failing check in expected.toml relies on, seen from the servers and from the resolver.
# It knows nothing about the exporter. Exit status 0 when every fact holds.
#
#   lab/dns/smoke.sh [RUNDIR]      (the lab must be running: lab/dns/lab.sh start)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
RUN=${1:-$REPO/target/dns-lab}
[ -s "$RUN/env" ] || { echo "smoke: no $RUN/env; start the lab first" >&2; exit 1; }
PORT=$(sed -n 's/^LAB_PORT=//p' "$RUN/env")
RESOLVER=127.0.53.53

PARENT=127.0.53.1 NSD=127.0.53.11 KNOT=127.0.53.12 KNOT2=127.0.53.22 NS3=127.0.53.13 SILENT=127.0.53.14

failures=0
passes=0

# q SERVER ARGS...: dig without recursion (authoritative view), answer section only.
q() { dig -p "$PORT" @"$1" +norec +time=1 +tries=1 +short "${@:2}" 2>/dev/null | sort; }
# r ARGS...: through the resolver.
r() { dig -p "$PORT" @"$RESOLVER" +time=1 +tries=1 +short "$@" 2>/dev/null | sort; }
# header SERVER ARGS...: "STATUS flags" of the reply, or the dig error.
header() {
  dig -p "$PORT" @"$1" +norec +time=1 +tries=1 "${@:2}" 2>&1 |
    awk '/->>HEADER<<-/ { s = $0; sub(/.*status: /, "", s); sub(/,.*/, "", s) }
         /^;; flags:/ { f = $0; sub(/^;; flags: /, "", f); sub(/;.*/, "", f) }
         /timed out|connection reset|connection refused/ && !e { e = $0; sub(/.*: /, "", e) }
         END { if (s != "") print s " " f; else print "ERROR " e }'
}

# rheader ARGS...: the same through the resolver (recursion desired).
rheader() { header "$RESOLVER" +rec "$@"; }

check() { # DESCRIPTION ACTUAL EXPECTED
  if [ "$2" = "$3" ]; then
    passes=$((passes + 1))
  else
    failures=$((failures + 1))
    printf 'FAIL %s\n  got:      %s\n  expected: %s\n' "$1" "${2//$'\n'/ | }" "${3//$'\n'/ | }"
  fi
}
serial() { q "$1" "$2" SOA | awk '{ print $3 }'; }
lines() { printf '%s\n' "$@" | sort; }

# every zone answers authoritatively on each server that serves it
while read -r zone servers _; do
  case $zone in '' | '#'*) continue ;; esac
  for s in ${servers//,/ }; do
    case $s in nsd) a=$NSD ;; knot) a=$KNOT ;; bind) a=$NS3 ;; esac
    check "$zone SOA at $s ($a) is authoritative" "$(header "$a" "$zone" SOA)" "NOERROR qr aa"
  done
done <"$HERE/zones.list"
check "Knot answers on its second address" "$(header "$KNOT2" glue.test SOA)" "NOERROR qr aa"

# the parent: referrals with glue, not authoritative for the children
check "parent is authoritative for test." "$(header "$PARENT" test SOA)" "NOERROR qr aa"
check "parent refers lame.test (no AA)" "$(header "$PARENT" lame.test SOA)" "NOERROR qr"
check "parent glue for lame.test" \
  "$(dig -p "$PORT" @"$PARENT" +norec +noall +additional lame.test SOA | awk '{ print $1, $5 }' | sort)" \
  "$(lines 'ns1.lame.test. 127.0.53.11' 'ns2.lame.test. 127.0.53.12' 'ns3.lame.test. 127.0.53.13' 'ns4.lame.test. 127.0.53.14')"
check "parent NS for delegation.test" \
  "$(dig -p "$PORT" @"$PARENT" +norec +noall +authority delegation.test SOA | awk '{ print $5 }' | sort)" \
  "$(lines ns1.delegation.test. ns2.delegation.test.)"
check "zone NS for delegation.test" "$(q "$NSD" delegation.test NS)" "$(lines ns1.delegation.test. ns2.delegation.test. ns3.delegation.test.)"
check "parent glue for ns2.glue.test" \
  "$(dig -p "$PORT" @"$PARENT" +norec +noall +additional glue.test SOA | awk '$1 == "ns2.glue.test." { print $5 }')" "127.0.53.12"
check "zone address of ns2.glue.test" "$(q "$NSD" ns2.glue.test A)" "127.0.53.22"
check "parent NS for singlens.test" \
  "$(dig -p "$PORT" @"$PARENT" +norec +noall +authority singlens.test SOA | awk '{ print $5 }')" "ns1.singlens.test."
check "parent NS for unresolvable.test" \
  "$(dig -p "$PORT" @"$PARENT" +norec +noall +authority unresolvable.test SOA | awk '{ print $5 }' | sort)" \
  "$(lines ns1.unresolvable.test. ns2.unresolvable.test. ns3.nowhere.test.)"
check "ns3.nowhere.test does not exist" "$(header "$PARENT" ns3.nowhere.test A)" "NXDOMAIN qr aa"

# lame servers
check "ns3 refuses lame.test" "$(header "$NS3" lame.test SOA)" "REFUSED qr"
check "ns4 drops UDP" "$(header "$SILENT" lame.test SOA)" "ERROR timed out"
check "ns4 gives no answer over TCP" "$(header "$SILENT" +tcp lame.test SOA | cut -d' ' -f1)" "ERROR"

# servers that disagree
check "drift.test serial at NSD" "$(serial "$NSD" drift.test)" 2026112702
check "drift.test serial at Knot" "$(serial "$KNOT" drift.test)" 2026112701
check "drift.test serial at ns3" "$(serial "$NS3" drift.test)" 2026112701
check "drift.test MX at NSD" "$(q "$NSD" drift.test MX)" "10 mx2.drift.test."
check "drift.test MX at Knot" "$(q "$KNOT" drift.test MX)" "10 mx1.drift.test."
check "drift.test MX at ns3" "$(q "$NS3" drift.test MX)" "10 mx1.drift.test."
check "apexdrift.test apex at NSD" "$(q "$NSD" apexdrift.test A)" 127.0.54.90
check "apexdrift.test apex at Knot" "$(q "$KNOT" apexdrift.test A)" 127.0.54.91
check "fields.test RNAME at NSD" "$(q "$NSD" fields.test SOA | awk '{ print $2, $3 }')" "hostmaster.fields.test. 2026112701"
check "fields.test RNAME at Knot" "$(q "$KNOT" fields.test SOA | awk '{ print $2, $3 }')" "admin.fields.test. 2026112701"

# SOA details
check "incident.test MNAME" "$(q "$NSD" incident.test SOA | awk '{ print $1 }')" web.incident.test.
check "fixed.test MNAME" "$(q "$KNOT" fixed.test SOA | awk '{ print $1 }')" ns1.fixed.test.
check "timers.test timers" "$(q "$KNOT" timers.test SOA | cut -d' ' -f4-)" "600 300 86400 5"
check "fixed.test timers" "$(q "$NSD" fixed.test SOA | cut -d' ' -f4-)" "14400 3600 1209600 300"

# MX data, through the resolver as a sender sees it
check "incident.test apex and MX" "$(r incident.test A) $(r mx.incident.test A)" "127.0.54.2 127.0.54.1"
check "fixed.test apex = MX address" "$(r fixed.test A) $(r mx.fixed.test A)" "127.0.54.11 127.0.54.11"
check "shop.fixed.test MX" "$(r shop.fixed.test MX)" "10 mx.fixed.test."
check "mxcname.test MX target is a CNAME" "$(r mail.mxcname.test A)" "$(lines 127.0.54.31 host.mxcname.test.)"
check "mxnx.test backup MX is NXDOMAIN" "$(rheader gone.mxnx.test A | cut -d' ' -f1)" NXDOMAIN
check "nousable.test MX" "$(r nousable.test MX)" "10 gone.nousable.test."
check "nullmx.test MX" "$(r nullmx.test MX)" "0 ."
check "nullmixed.test MX" "$(r nullmixed.test MX)" "$(lines '0 .' '10 mx.nullmixed.test.')"
check "nomx.test has no MX" "$(r nomx.test MX)" ""
check "mxliteral.test MX" "$(r mxliteral.test MX)" "$(lines '10 127.0.54.70.' '20 mx.mxliteral.test.')"

# reverse DNS through the resolver
check "PTR 127.0.54.11" "$(r -x 127.0.54.11)" mx.fixed.test.
check "PTR 127.0.54.31" "$(r -x 127.0.54.31)" host.mxcname.test.
check "PTR 127.0.54.60" "$(r -x 127.0.54.60)" nomx.test.
check "no PTR for 127.0.55.1" "$(rheader 1.55.0.127.in-addr.arpa PTR | cut -d' ' -f1)" NXDOMAIN
check "PTR 127.0.54.102 does not resolve back" "$(r -x 127.0.54.102) $(r elsewhere.noptr.test A)" "elsewhere.noptr.test. 127.0.54.103"
while read -r zone; do
  for mx in $(r "$zone" MX | awk '$2 != "." { print $2 }'); do
    for a in $(r "$mx" A | grep -E '^127\.0\.54\.'); do
      ptr=$(r -x "$a")
      [ "$zone" = noptr.test ] && continue
      check "PTR of $a ($mx) resolves back" "$(r "$ptr" A | grep -xF "$a" || true)" "$a"
    done
  done
done < <(awk '!/^#/ && NF == 3 && $1 ~ /\.test$/ { print $1 }' "$HERE/zones.list")

# mail policy records
check "spf2.test has two SPF records" "$(r spf2.test TXT | grep -c 'v=spf1')" 2
check "nospf.test has no SPF" "$(r nospf.test TXT | grep -c 'v=spf1' || true)" 0
check "dmarc2.test has two DMARC records" "$(r _dmarc.dmarc2.test TXT | grep -c 'v=DMARC1')" 2
check "nodmarc.test has no DMARC" "$(rheader _dmarc.nodmarc.test TXT | cut -d' ' -f1)" NXDOMAIN
check "spfvoid.test void names" "$(for n in void1 void2 void3; do rheader "$n.spfvoid.test" A | cut -d' ' -f1; done | sort -u)" NXDOMAIN
check "spfloop.test loops" "$(r loop2.spfloop.test TXT)" '"v=spf1 include:loop1.spfloop.test -all"'
check "fixed.test DKIM key is 2 strings" "$(r default._domainkey.fixed.test TXT | grep -o '" "' | wc -l)" 1
check "fixed.test DKIM key decodes" \
  "$(r default._domainkey.fixed.test TXT | tr -d '" ' | sed 's/.*p=//' | base64 -d 2>/dev/null | wc -c)" 294

# DNSSEC zones (signed at start): DS at the parent, keys and signatures per server
ds_tag() { q "$PARENT" "$1" DS | awk '{ print $1 }'; }
ksk_tag() { dig -p "$PORT" @"$2" +norec +time=1 +tries=1 +multi "$1" DNSKEY 2>/dev/null | awk '/DNSKEY 257/ { k = 1 } k && /key id/ { sub(/.*key id = /, ""); print $1; exit }'; }
rrsig_count() { dig -p "$PORT" @"$2" +norec +dnssec +time=1 +tries=1 +noall +answer "$1" "$3" 2>/dev/null | awk '$4 == "RRSIG"' | wc -l; }
for z in signed.test signed15.test sigexpiring.test sigexpired.test sigbad.test; do
  check "$z DS at the parent is the KSK's (NSD)" "$(ds_tag "$z")" "$(ksk_tag "$z" "$NSD")"
  check "$z MX is signed on Knot" "$(rrsig_count "$z" "$KNOT" MX)" 1
done
check "dsbad.test DS matches no key" "$([ "$(ds_tag dsbad.test)" != "$(ksk_tag dsbad.test "$NSD")" ] && echo yes)" yes
check "sigstripped.test: Knot serves no DNSKEY" "$(q "$KNOT" sigstripped.test DNSKEY)" ""
check "sigstripped.test: NSD serves 2 DNSKEYs" "$(q "$NSD" sigstripped.test DNSKEY | wc -l)" 2
check "sigexpired.test: Knot's SOA RRSIG expired" \
  "$(q "$KNOT" +dnssec sigexpired.test SOA | awk '$1 == "SOA" { print ($5 < strftime("%Y%m%d%H%M%S", systime(), 1)) ? "expired" : "valid" }')" expired
check "sigbad.test: the MX RRSIGs differ between NSD and Knot" \
  "$([ "$(q "$NSD" +dnssec sigbad.test MX)" != "$(q "$KNOT" +dnssec sigbad.test MX)" ] && echo yes)" yes

# names outside the lab: a fast negative answer, nothing sent off the machine
for name in 70. example.com. com. 8.8.8.8.in-addr.arpa.; do
  out=$(dig -p "$PORT" @"$RESOLVER" +time=1 +tries=1 "$name" A 2>&1)
  status=$(printf '%s\n' "$out" | sed -n 's/.*status: \([A-Z]*\),.*/\1/p')
  ms=$(printf '%s\n' "$out" | sed -n 's/^;; Query time: \([0-9]*\) msec/\1/p')
  check "$name is NXDOMAIN" "$status" NXDOMAIN
  check "$name answered within 100 ms" "$([ -n "$ms" ] && [ "$ms" -lt 100 ] && echo yes || echo "no (${ms:-none} ms)")" yes
done

echo "smoke: $passes passed, $failures failed"
[ "$failures" -eq 0 ]
