# shellcheck shell=bash
# Shared by lab.sh and bench.sh (sourced, not run): writes configs for NSD, Knot, BIND and
# Unbound into a run directory, starts the daemons in the background, waits until they
# answer, and stops them by pid file.
#
# The caller sets:
#   RUN   the run directory (absolute path); every generated file lives below it
#   PORT  the one port all daemons listen on
#   TAG   a short name for messages ("lab" or "bench")
# and then uses the functions below. Nothing here touches the network outside 127.0.0.0/8.

WAIT_MS=${LAB_WAIT_MS:-10000}   # readiness budget for all daemons together

die() {
  echo "$TAG: $*" >&2
  exit 1
}

now_ms() { date +%s%3N; }

is_root() { [ "$(id -u)" -eq 0 ]; }

# tail_log FILE...: the last lines of each existing, non-empty file, for error messages.
tail_log() {
  local f
  for f in "$@"; do
    [ -s "$f" ] || continue
    echo "--- last lines of $f ---" >&2
    tail -n 15 "$f" >&2
  done
}

# Ubuntu and Debian ship AppArmor profiles for named and unbound that only allow their
# usual config and data paths; where AppArmor is enforcing (e.g. GitHub's Ubuntu runners)
# they could not read a config under the repository. A profile attaches to the binary's
# path, so we run a private copy of the binary instead. LAB_COPY_DAEMONS=1/0 forces it
# on or off.
needs_copy() {
  local path=$1
  case ${LAB_COPY_DAEMONS:-auto} in
    1) return 0 ;;
    0) return 1 ;;
  esac
  [ "$(cat /sys/module/apparmor/parameters/enabled 2>/dev/null)" = Y ] || return 1
  grep -rqs -- "$path" /etc/apparmor.d 2>/dev/null
}

# find_daemon NAME: print the path to run NAME from (sbin directories are searched too,
# as they are not on a normal user's PATH).
find_daemon() {
  local name=$1 path="" d
  for d in /usr/sbin /usr/local/sbin /sbin /usr/bin /usr/local/bin; do
    if [ -x "$d/$name" ]; then path=$d/$name; break; fi
  done
  [ -n "$path" ] || path=$(command -v "$name" 2>/dev/null || true)
  [ -n "$path" ] || die "$name is not installed (scripts/install-test-deps.sh installs it)"
  if needs_copy "$path"; then
    mkdir -p "$RUN/bin"
    cp -f "$path" "$RUN/bin/$name"
    path=$RUN/bin/$name
  fi
  printf '%s\n' "$path"
}

# filter_zone SERVER IN OUT: copy a zone file for one server. A line that ends in
# ";@only S1[,S2...]" is kept (without the tag) only when SERVER is in the list; every
# other line is kept as it is.
filter_zone() {
  awk -v server="$1" '
    match($0, /;@only[ \t]+[A-Za-z0-9_,-]+[ \t]*$/) {
      tag = substr($0, RSTART, RLENGTH)
      line = substr($0, 1, RSTART - 1)
      sub(/^;@only[ \t]+/, "", tag)
      gsub(/[ \t]/, "", tag)
      n = split(tag, list, ",")
      for (i = 1; i <= n; i++) if (list[i] == server) { print line; next }
      next
    }
    { print }
  ' "$2" >"$3"
}

# check_zone ZONE FILE [DUMP]: syntax-check a zone file with named-checkzone (semantic
# checks off: the lab is full of deliberate mistakes) and, with DUMP, write the zone in
# canonical one-record-per-line form with absolute names there. Lines ending in
# ";@nocheck" are left out of the check and the dump: records BIND refuses to load at
# all (an in-zone NS without an address), which NSD and Knot serve as they are.
check_zone() {
  local zone=$1 file=$2 dump=${3:-} out checked="" rc=0
  local args=(-i none -k ignore -m ignore -M ignore -n ignore -r ignore -S ignore -T ignore -W ignore)
  if grep -q ';@nocheck[[:space:]]*$' "$file"; then
    checked=$(mktemp)
    grep -v ';@nocheck[[:space:]]*$' "$file" >"$checked"
  fi
  if [ -n "$dump" ]; then
    out=$(named-checkzone "${args[@]}" -D -o "$dump" "$zone" "${checked:-$file}" 2>&1) || rc=$?
  else
    out=$(named-checkzone "${args[@]}" "$zone" "${checked:-$file}" 2>&1) || rc=$?
  fi
  [ -z "$checked" ] || rm -f "$checked"
  [ "$rc" = 0 ] || die "zone $zone ($file) does not load: $out"
}

# ---- loopback addresses for BIND ----
# NSD, Knot and Unbound can bind any 127.0.0.0/8 address, as Linux treats the whole block
# as local. BIND cannot: it listens only on addresses that it finds on an interface when it
# scans them, and a fresh lo carries just 127.0.0.1/8. So the BIND addresses are added to lo
# as /32s. Only root can do that: start adds the missing ones and records them, stop
# removes what start added. A normal user runs "sudo lab/dns/lab.sh addrs" once (the
# addresses then stay until reboot, and stop leaves them alone).

# (the listing is read in full first: with pipefail, "ip | grep -q" can fail on SIGPIPE)
addr_on_lo() {
  local list
  list=$(ip -4 -o addr show dev lo 2>/dev/null) || return 1
  [[ $list == *" $1/"* ]]
}

# ensure_addrs ADDR...
ensure_addrs() {
  local a missing=()
  for a in "$@"; do addr_on_lo "$a" || missing+=("$a"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  command -v ip >/dev/null 2>&1 || die "BIND needs ${missing[*]} on lo, and 'ip' (iproute2) is not installed"
  if ! is_root; then
    echo "$TAG: BIND only listens on addresses configured on an interface; these are missing on lo: ${missing[*]}" >&2
    die "add them once as root: sudo $0 addrs   (or: sudo ip addr add ADDR/32 dev lo)"
  fi
  for a in "${missing[@]}"; do
    ip addr add "$a/32" dev lo || die "could not add $a/32 to lo (in a container, root also needs CAP_NET_ADMIN: docker run --cap-add NET_ADMIN)"
    echo "$a" >>"$RUN/added-addrs"
  done
}

# add_addrs ADDR...: the "addrs" command: add for good, without recording.
add_addrs() {
  local a
  is_root || die "adding addresses to lo needs root: sudo $0 addrs"
  for a in "$@"; do
    if addr_on_lo "$a"; then
      echo "$a already on lo"
    else
      ip addr add "$a/32" dev lo && echo "added $a/32 to lo"
    fi
  done
}

# remove_added_addrs: take back the addresses that start added.
remove_added_addrs() {
  local a
  [ -s "$RUN/added-addrs" ] || { rm -f "$RUN/added-addrs"; return 0; }
  if is_root; then
    while read -r a; do
      if [ -n "$a" ] && addr_on_lo "$a"; then ip addr del "$a/32" dev lo 2>/dev/null || true; fi
    done <"$RUN/added-addrs"
  fi
  rm -f "$RUN/added-addrs"
}

# ports_free ADDR...: fail when something already listens on ADDR:PORT (UDP or TCP), e.g.
# a lab from another run directory. Knot and Unbound bind with SO_REUSEPORT and would
# otherwise share the socket silently with the other process. Needs ss (iproute2); without
# it the daemons' own bind errors are all we get.
ports_free() {
  local list a busy=()
  command -v ss >/dev/null 2>&1 || return 0
  list=$(ss -Hlnu 2>/dev/null; ss -Hlnt 2>/dev/null) || return 0
  for a in "$@"; do
    if [[ $list == *" $a:$PORT "* || $list == *" 0.0.0.0:$PORT "* || $list == *" *:$PORT "* ]]; then
      busy+=("$a:$PORT")
    fi
  done
  [ ${#busy[@]} -eq 0 ] && return 0
  die "already in use by another process: ${busy[*]} (another lab on this port? set LAB_PORT, or stop it)"
}

# ---- config writers. ZONELIST files have one "zone<TAB>zone file" line per zone. ----

# write_nsd DIR ADDR ZONELIST
write_nsd() {
  local dir=$1 addr=$2 list=$3 zone file
  {
    cat <<EOF
# generated by lab/dns/lib.sh
server:
    ip-address: $addr
    port: $PORT
    do-ip6: no
    username: ""
    chroot: ""
    database: ""
    zonesdir: "$dir"
    pidfile: "$dir/nsd.pid"
    logfile: "$dir/nsd.log"
    xfrdfile: "$dir/xfrd.state"
    xfrdir: "$dir"
    zonelistfile: "$dir/zone.list"
    server-count: 1
    verbosity: 1
    hide-version: yes
    refuse-any: no
remote-control:
    control-enable: no
EOF
    while IFS=$'\t' read -r zone file; do
      printf 'zone:\n    name: "%s"\n    zonefile: "%s"\n' "$zone" "$file"
    done <"$list"
  } >"$dir/nsd.conf"
}

# write_knot DIR "ADDR..." ZONELIST [WORKERS]
write_knot() {
  local dir=$1 addrs=$2 list=$3 workers=${4:-1} listen="" a zone file user
  for a in $addrs; do listen="$listen${listen:+, }$a@$PORT"; done
  # Knot's default user is root:root, which a normal user cannot switch to: name the
  # current user and group, so Knot never changes identity.
  if is_root; then user=root:root; else user="$(id -un):$(id -gn)"; fi
  # Knot refuses to start when its control socket path does not fit a sockaddr_un (108
  # bytes); a deep checkout gets a short path in /tmp instead (Knot removes it on exit).
  local sock=$dir/knot.sock
  if [ ${#sock} -gt 100 ]; then
    sock=${TMPDIR:-/tmp}/dnslab-$(id -u)-$(printf '%s' "$dir" | sha256sum | cut -c1-12).sock
  fi
  {
    cat <<EOF
# generated by lab/dns/lib.sh
server:
    rundir: "$dir"
    pidfile: "$dir/knot.pid"
    user: $user
    listen: [ $listen ]
    udp-workers: $workers
    tcp-workers: $workers
    background-workers: $workers
log:
  - target: "$dir/knot.log"
    any: info
database:
    storage: "$dir/db"
    journal-db-max-size: 64M
    kasp-db-max-size: 16M
    timer-db-max-size: 16M
    catalog-db-max-size: 16M
control:
    listen: "$sock"
template:
  - id: default
    zonefile-load: whole
    zonefile-sync: -1
    journal-content: none
    semantic-checks: off
zone:
EOF
    while IFS=$'\t' read -r zone file; do
      printf '  - domain: "%s."\n    file: "%s"\n' "$zone" "$file"
    done <"$list"
  } >"$dir/knot.conf"
}

# write_named DIR ADDR ZONELIST [EXTRA OPTIONS]
write_named() {
  local dir=$1 addr=$2 list=$3 extra=${4:-} zone file
  {
    cat <<EOF
// generated by lab/dns/lib.sh
options {
    directory "$dir";
    pid-file "$dir/named.pid";
    lock-file "$dir/named.lock";
    session-keyfile "$dir/session.key";
    managed-keys-directory "$dir";
    dump-file "$dir/cache.db";
    statistics-file "$dir/stats";
    memstatistics-file "$dir/mem.stats";
    secroots-file "$dir/secroots";
    recursing-file "$dir/recursing";
    listen-on port $PORT { $addr; };
    listen-on-v6 { none; };
    query-source address $addr;
    recursion no;
    dnssec-validation no;
    notify no;
    allow-transfer { none; };
    automatic-interface-scan no;
    version none;
    // the lab is made of deliberate mistakes: load every zone as it is
    check-names primary ignore;
    check-mx ignore;
    check-mx-cname ignore;
    check-srv-cname ignore;
    check-integrity no;
    check-sibling no;
    check-wildcard no;
    check-dup-records ignore;
    check-spf ignore;
$extra
};
controls { };
logging {
    channel lab { file "$dir/named.log"; severity info; print-time yes; print-category yes; };
    category default { lab; };
    category lame-servers { null; };
};
EOF
    if [ -n "$list" ]; then
      while IFS=$'\t' read -r zone file; do
        printf 'zone "%s" { type primary; file "%s"; };\n' "$zone" "$file"
      done <"$list"
    fi
  } >"$dir/named.conf"
}

# write_unbound DIR ADDR STUBLIST "ZONE..." [THREADS]
# STUBLIST: one "zone addr addr..." line per stub zone. ZONE...: the trees that are
# resolved (through the stubs); every other name gets an immediate NXDOMAIN.
write_unbound() {
  local dir=$1 addr=$2 stubs=$3 trees=$4 threads=${5:-1} zone a z rest
  {
    cat <<EOF
# generated by lab/dns/lib.sh
server:
    verbosity: 1
    interface: $addr
    port: $PORT
    # queries to the authoritative servers leave from the resolver's own address, so
    # nothing can be sent off the machine
    outgoing-interface: $addr
    do-ip4: yes
    do-ip6: no
    access-control: 127.0.0.0/8 allow
    do-daemonize: yes
    username: ""
    chroot: ""
    directory: "$dir"
    pidfile: "$dir/unbound.pid"
    logfile: "$dir/unbound.log"
    use-syslog: no
    log-time-ascii: yes
    num-threads: $threads
    # no DNSSEC: no validator, no trust anchor
    module-config: "iterator"
    do-not-query-localhost: no
    qname-minimisation: no
    harden-referral-path: no
    prefetch: no
    # a small cache with short lifetimes, so reruns see current data
    msg-cache-size: 4m
    rrset-cache-size: 4m
    neg-cache-size: 1m
    cache-max-ttl: 60
    cache-max-negative-ttl: 10
    infra-host-ttl: 60
    # Everything outside the lab gets an immediate NXDOMAIN from this static zone, so
    # Unbound never needs the root servers; the lab's trees are carved out as transparent.
    # "test." and "127.in-addr.arpa." are built-in local zones of Unbound (static, empty):
    # a "test." entry of our own replaces the built-in one, and both are switched off
    # otherwise so that they cannot shadow a lab tree.
    local-zone: "." static
    local-zone: "127.in-addr.arpa." nodefault
EOF
    case " $trees " in *" test "*) ;; *) echo '    local-zone: "test." nodefault' ;; esac
    for z in $trees; do printf '    local-zone: "%s." transparent\n' "$z"; done
    printf 'remote-control:\n    control-enable: no\n'
    while read -r zone rest; do
      [ -n "$zone" ] || continue
      printf 'stub-zone:\n    name: "%s."\n' "$zone"
      for a in $rest; do printf '    stub-addr: %s@%s\n' "$a" "$PORT"; done
    done <"$stubs"
  } >"$dir/unbound.conf"
}

# ---- daemons ----
# RUN/daemons lists what was started: "name address pidfile logfile" per line.

SPAWNED=()

# spawn NAME ADDRESS PIDFILE LOGFILE CMD...: start a daemon in the background, detached
# from our session and with none of our file descriptors (a test harness that reads our
# output must not wait for the daemons). The daemons fork into the background themselves;
# the foreground part's exit status is collected by spawned_ok.
spawn() {
  local name=$1 addr=$2 pidfile=$3 log=$4
  shift 4
  local out=${log%.log}.out
  printf '%s %s %s %s\n' "$name" "$addr" "$pidfile" "$log" >>"$RUN/daemons"
  (
    exec 9>&-
    if command -v setsid >/dev/null 2>&1; then
      exec setsid "$@" </dev/null >>"$out" 2>&1
    else
      exec "$@" </dev/null >>"$out" 2>&1
    fi
  ) &
  SPAWNED+=("$!:$name:$log")
}

# spawned_ok: wait for the foreground part of every spawned daemon; fail on any error.
spawned_ok() {
  local entry pid name log rc
  for entry in "${SPAWNED[@]}"; do
    pid=${entry%%:*}; entry=${entry#*:}; name=${entry%%:*}; log=${entry#*:}
    rc=0
    wait "$pid" || rc=$?
    if [ "$rc" -ne 0 ]; then
      echo "$TAG: $name failed to start (exit status $rc)" >&2
      tail_log "${log%.log}.out" "$log"
      stop_all >/dev/null 2>&1 || true
      exit 1
    fi
  done
  SPAWNED=()
}

# running PID: true while the process exists and is not a zombie. (A daemon's parent is
# init; in a container, init may reap late, and kill -0 succeeds on a zombie.)
running() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [ "${stat%% *}" != Z ]
}

# pid_alive PIDFILE: print the pid if its process runs and was started with a config from
# this run directory (so a recycled pid is never taken for ours).
pid_alive() {
  local pidfile=$1 pid args
  [ -s "$pidfile" ] || return 1
  pid=$(tr -dc 0-9 <"$pidfile")
  [ -n "$pid" ] && running "$pid" || return 1
  args=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
  [[ $args == *"$RUN/"* ]] || return 1
  printf '%s\n' "$pid"
}

# all_alive: true when every daemon listed in RUN/daemons runs.
all_alive() {
  local name addr pidfile log
  [ -s "$RUN/daemons" ] || return 1
  while read -r name addr pidfile log; do
    pid_alive "$pidfile" >/dev/null || return 1
  done <"$RUN/daemons"
}

# stray_pids: lab daemons started from this run directory that are no longer reachable
# through a pid file (for instance when the directory was deleted while they ran).
stray_pids() {
  local p args
  for p in /proc/[0-9]*; do
    running "${p#/proc/}" || continue
    args=$(tr '\0' ' ' <"$p/cmdline" 2>/dev/null) || continue
    case $args in
      *nsd\ -c\ "$RUN"/* | *knotd\ *-c\ "$RUN"/* | *named\ *-c\ "$RUN"/* | *unbound\ -c\ "$RUN"/*)
        printf '%s\n' "${p#/proc/}" ;;
    esac
  done
}

# wait_gone PID...: up to 5 s for the processes to exit; then SIGKILL what is left.
wait_gone() {
  local deadline p left
  deadline=$(($(now_ms) + 5000))
  while :; do
    left=()
    for p in "$@"; do running "$p" && left+=("$p"); done
    [ ${#left[@]} -eq 0 ] && return 0
    if [ "$(now_ms)" -ge "$deadline" ]; then
      kill -KILL "${left[@]}" 2>/dev/null || true
      return 0
    fi
    sleep 0.05
  done
}

# stop_all: stop every daemon of this run directory; quiet no-op when none runs.
stop_all() {
  local name addr pidfile log pid pids=() stopped=()
  if [ -s "$RUN/daemons" ]; then
    while read -r name addr pidfile log; do
      if pid=$(pid_alive "$pidfile"); then
        kill -TERM "$pid" 2>/dev/null || true
        pids+=("$pid")
        stopped+=("$name")
      fi
    done <"$RUN/daemons"
  fi
  [ ${#pids[@]} -gt 0 ] && wait_gone "${pids[@]}"
  pids=()
  while read -r pid; do
    [ -n "$pid" ] || continue
    kill -TERM "$pid" 2>/dev/null || true
    pids+=("$pid")
  done < <(stray_pids)
  if [ ${#pids[@]} -gt 0 ]; then
    wait_gone "${pids[@]}"
    stopped+=("${#pids[@]} stray process(es)")
  fi
  rm -f "$RUN/daemons" "$RUN/inputs.sha"
  remove_added_addrs
  if [ ${#stopped[@]} -gt 0 ]; then
    echo "$TAG: stopped ${stopped[*]}" >&2
  fi
}

# status_all: one line per daemon; exit 0 when all run, 3 when none runs, 1 otherwise.
status_all() {
  local name addr pidfile log pid up=0 down=0
  if [ ! -s "$RUN/daemons" ]; then
    echo "$TAG: not running ($RUN)"
    return 3
  fi
  while read -r name addr pidfile log; do
    if pid=$(pid_alive "$pidfile"); then
      printf '%-12s %-22s running (pid %s)\n' "$name" "$addr" "$pid"
      up=$((up + 1))
    else
      printf '%-12s %-22s stopped (log: %s)\n' "$name" "$addr" "$log"
      down=$((down + 1))
    fi
  done <"$RUN/daemons"
  [ "$down" -eq 0 ] && return 0
  [ "$up" -eq 0 ] && return 3
  return 1
}

# ---- readiness ----

# unanswered ADDR ZONE...: print the zones for which ADDR gives no authoritative NOERROR
# SOA answer. All queries go in one dig run.
unanswered() {
  local addr=$1
  shift
  local args=() z
  for z in "$@"; do args+=("$z." SOA); done
  dig -p "$PORT" @"$addr" +norec +time=1 +tries=1 +noall +comments +question "${args[@]}" 2>/dev/null |
    awk -v zones="$*" '
      BEGIN { n = split(zones, want, " ") }
      /->>HEADER<<-/ { status = $0; sub(/.*status: /, "", status); sub(/,.*/, "", status) }
      /^;; flags:/ { aa = ($0 ~ /flags:[^;]* aa[ ;]/) }
      /^;[^;]/ && NF >= 3 && $(NF) == "SOA" {
        name = substr($1, 2); sub(/\.$/, "", name)
        if (status == "NOERROR" && aa) ok[tolower(name)] = 1
      }
      END { for (i = 1; i <= n; i++) if (!(tolower(want[i]) in ok)) print want[i] }
    '
}

# wait_auth NAME ADDR LOG DEADLINE ZONE...: wait until ADDR answers for every zone.
wait_auth() {
  local name=$1 addr=$2 log=$3 deadline=$4
  shift 4
  local missing=("$@")
  while :; do
    mapfile -t missing < <(unanswered "$addr" "${missing[@]}")
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(now_ms)" -ge "$deadline" ]; then
      local shown=("${missing[@]:0:8}")
      echo "$TAG: $name ($addr port $PORT) did not answer authoritatively for ${#missing[@]} zone(s) within $((WAIT_MS / 1000)) s: ${shown[*]}" >&2
      tail_log "${log%.log}.out" "$log"
      return 1
    fi
    sleep 0.05
  done
}

# wait_log NAME LOG PATTERN DEADLINE: wait until PATTERN appears in LOG (for the server
# that answers nothing, readiness can only be read from its log).
wait_log() {
  local name=$1 log=$2 pattern=$3 deadline=$4
  until grep -q -- "$pattern" "$log" 2>/dev/null; do
    if [ "$(now_ms)" -ge "$deadline" ]; then
      echo "$TAG: $name did not report \"$pattern\" within $((WAIT_MS / 1000)) s" >&2
      tail_log "${log%.log}.out" "$log"
      return 1
    fi
    sleep 0.05
  done
}

# wait_resolver NAME ADDR LOG DEADLINE QNAME QTYPE: wait for a NOERROR answer with data.
wait_resolver() {
  local name=$1 addr=$2 log=$3 deadline=$4 qname=$5 qtype=$6 out
  while :; do
    out=$(dig -p "$PORT" @"$addr" +time=1 +tries=1 +noall +answer "$qname" "$qtype" 2>/dev/null || true)
    [ -n "$out" ] && return 0
    if [ "$(now_ms)" -ge "$deadline" ]; then
      echo "$TAG: $name ($addr port $PORT) did not resolve $qname $qtype within $((WAIT_MS / 1000)) s" >&2
      tail_log "${log%.log}.out" "$log"
      return 1
    fi
    sleep 0.05
  done
}
