#!/usr/bin/env python3
"""Soak: millions of lines through a tailed file, with 64 hosts and 200 domains.

Run through bench/soak.sh. The input is the project generator's mixed log
(examples/gen/, 5M lines by
default), post-processed so its lines are spread over 64 syslog host names (each
original host and pid maps to one of h00..h63, so an SMTP session stays on one
host), and the 200 recipient domains most often refused with "relay denied" are
configured as `local_domains`: misroutes are plentiful and the exposition is as
wide as such a configuration gets (64 hosts x reject label sets, 64 x 200
misroute series at most).

The exporter tails an empty file into which the log is appended, unthrottled by
default (--rate 0; RSS sampled every 0.1 s, the run is short) or paced at --rate
lines/s (sampled every second). Every sample scrapes /metrics (timed) and reads
VmRSS. At the end the RSS curve is printed as a table and must plateau: the
largest RSS of the last third of the run may exceed the largest of the middle
third by at most --slack MiB. Then /metrics is scraped --scrapes times on a quiet
exporter, and the best time of a full exposition must be under 5 ms.
"""

import argparse
import collections
import json
import os
import re
import sys
import tempfile
import threading
import time
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as bl  # noqa: E402

HOSTS = 64
DOMAINS = 200
# classic syslog (with the optional <facility.priority> token) or RFC 3339 envelopes
ENV = re.compile(rb"^(\w{3} [ \d]\d \d\d:\d\d:\d\d(?: <[\w.]+>)?|\d{4}-\d\d-\d\dT\S+) (\S+) ([^\[ ]+)\[(\d+)\]: ")
RELAY_RCPT = re.compile(rb"(?:to=<|arg1=<|RCPT <)[^>@]*@([^>]+)>")


def prepare(workdir, lines, seed):
    """Generates and spreads the log; returns (path, total lines, domains)."""
    base = os.path.join(workdir, "soak-gen-%d.log" % lines)
    out = os.path.join(workdir, "soak-%dhosts-%d.log" % (HOSTS, lines))
    meta = out + ".json"
    if os.path.exists(out) and os.path.exists(meta):
        m = json.load(open(meta))
        if m.get("lines") == lines and m.get("seed") == seed and os.path.getsize(out) == m.get("bytes"):
            return out, m["lines"], m["domains"]
    print("generating %d lines (examples/gen --mix mixed --seed %d)" % (lines, seed), file=sys.stderr, flush=True)
    bl.generate(base, lines, "mixed", seed=seed)
    print("spreading them over %d hosts" % HOSTS, file=sys.stderr, flush=True)
    relay = collections.Counter()
    n = 0
    with open(base, "rb") as fi, open(out, "wb") as fo:
        buf = []
        for line in fi:
            m = ENV.match(line)
            if m:
                h = zlib.crc32(m.group(2) + b"/" + m.group(4)) % HOSTS
                line = b"%s h%02d %s" % (m.group(1), h, line[m.end(1) + 1 + len(m.group(2)) + 1:])
                if (b"elay access denied" in line or b"Relaying denied" in line or b"relay not permitted" in line):
                    r = RELAY_RCPT.search(line)
                    if r:
                        relay[r.group(1).lower()] += 1
            buf.append(line)
            n += 1
            if len(buf) >= 65536:
                fo.writelines(buf)
                buf = []
        fo.writelines(buf)
    os.unlink(base)
    os.unlink(base + ".truth.json")
    domains = [d.decode() for d, _ in relay.most_common(DOMAINS)]
    json.dump(dict(lines=n, seed=seed, bytes=os.path.getsize(out), domains=domains), open(meta, "w"))
    return out, n, domains


def feed(src, dst, rate, done):
    """Appends src to dst: unthrottled (rate 0) or about `rate` lines/s in 100 ms slices."""
    with open(src, "rb") as fi, open(dst, "ab") as fo:
        if rate <= 0:
            while True:
                chunk = fi.read(4 << 20)
                if not chunk:
                    break
                fo.write(chunk)
                fo.flush()
        else:
            t0 = time.monotonic()
            sent = 0
            while True:
                due = int((time.monotonic() - t0) * rate) + rate // 10
                lines = fi.readlines(max(1, (due - sent)) * 160) if due > sent else []
                if due > sent and not lines:
                    break
                if lines:
                    fo.writelines(lines)
                    fo.flush()
                    sent += len(lines)
                time.sleep(0.1)
    done.set()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=os.path.join(bl.ROOT, "target", "release", "mailroute_exporter"))
    ap.add_argument("--workdir", default=os.environ.get("BENCH_DIR", "/tmp/mailroute-bench"))
    ap.add_argument("--lines", type=int, default=5_000_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--rate", type=int, default=0, help="lines/s; 0 = as fast as possible (default)")
    ap.add_argument("--slack", type=float, default=2.0, help="MiB the last third may exceed the middle third by")
    ap.add_argument("--scrapes", type=int, default=50)
    ap.add_argument("--bound-ms", type=float, default=5.0)
    ap.add_argument("--timeout", type=int, default=600)
    a = ap.parse_args()
    os.makedirs(a.workdir, exist_ok=True)
    src, total, domains = prepare(a.workdir, a.lines, a.seed)
    period = 1.0 if a.rate > 0 else 0.1

    with tempfile.TemporaryDirectory(dir=a.workdir) as d:
        logfile = os.path.join(d, "mail.log")
        open(logfile, "wb").close()
        cfg = os.path.join(d, "soak.toml")
        with open(cfg, "w") as f:
            f.write("[maillog]\nmax_hosts = %d\nlocal_domains = [\n%s]\n" % (
                HOSTS, "".join('  "%s",\n' % x for x in domains)))
        port = bl.free_port()
        ex = bl.Daemon("mailroute_exporter", [a.bin, "serve", "--config.file=%s" % cfg,
                                              "--web.listen-address=127.0.0.1:%d" % port, "--maillog.path=%s" % logfile,
                                              "--maillog.start=beginning", "--log.level=warn"], port)
        try:
            time.sleep(0.3)
            rss0, _ = ex.mem()
            cpu0 = ex.cpu()
            done = threading.Event()
            t0 = time.monotonic()
            threading.Thread(target=feed, args=(src, logfile, a.rate, done), daemon=True).start()
            curve = []  # (t, lines counted, rss KiB, scrape s)
            while True:
                time.sleep(max(0.0, t0 + (len(curve) + 1) * period - time.monotonic()))
                st, _ = ex.timed_scrape()
                text = ex.scrape()
                counted = bl.metric_sum(text, "mailroute_log_lines_total")
                rss, _ = ex.mem()
                curve.append((time.monotonic() - t0, counted, rss, st))
                if counted >= total and done.is_set():
                    break
                if time.monotonic() - t0 > a.timeout:
                    raise TimeoutError("not done within %ds: %d of %d lines" % (a.timeout, counted, total))
            elapsed = curve[-1][0]
            cpu = ex.cpu() - cpu0
            # a few more seconds idle: memory must not creep once the input stops
            for _ in range(3):
                time.sleep(1)
                rss, _ = ex.mem()
                curve.append((time.monotonic() - t0, counted, rss, 0.0))
            _, hwm = ex.mem()
            text = ex.scrape()
            quiet = [ex.timed_scrape() for _ in range(a.scrapes)]
            om = [ex.scrape(headers={"Accept": "application/openmetrics-text; version=1.0.0"}) for _ in range(1)]
            t_om = []
            for _ in range(10):
                t1 = time.perf_counter()
                ex.scrape(headers={"Accept": "application/openmetrics-text; version=1.0.0"})
                t_om.append(time.perf_counter() - t1)
        finally:
            ex.stop()

    series = sum(1 for line in text.splitlines() if line and not line.startswith("#"))
    rejects = bl.metric_sum(text, "mailroute_smtp_rejects_total")
    misroutes = bl.metric_sum(text, "mailroute_misroutes_total")
    hosts = len({lab.get("host") for lab, _ in bl.samples(text, "mailroute_smtp_rejects_total")})
    mis_series = len(bl.samples(text, "mailroute_misroutes_total"))

    print("Soak: %d lines (%d MiB) through a tailed file, %s, %d hosts, %d local domains" % (
        total, os.path.getsize(src) >> 20, "unthrottled" if a.rate <= 0 else "%d lines/s" % a.rate, HOSTS, len(domains)))
    print("  %.1f s, %s lines/s, %.2f CPU s (%.2f CPU s per million lines)" % (
        elapsed, "{:,.0f}".format(total / elapsed), cpu, cpu * 1e6 / total))
    print("  rejects %d, misroutes %d (%d series), host labels %d, %d samples in the exposition (%d KiB)" % (
        rejects, misroutes, mis_series, hosts, series, len(text) >> 10))
    print()
    print("  %8s %12s %9s %10s" % ("SECOND", "LINES", "RSS MiB", "SCRAPE ms"))
    for t, n, rss, st in curve:
        print("  %8.1f %12d %9.1f %10s" % (t, n, bl.mib(rss), "%.1f" % (st * 1000) if st else "-"))
    print("  (RSS before the input: %.1f MiB; peak VmHWM %.1f MiB)" % (bl.mib(rss0), bl.mib(hwm)))
    thirds = len(curve) // 3
    middle = curve[thirds:2 * thirds]
    last = curve[2 * thirds:]
    max_mid = max(r for _, _, r, _ in middle) if middle else 0
    max_last = max(r for _, _, r, _ in last) if last else 0
    plateau = max_last <= max_mid + a.slack * 1024
    print()
    print("  plateau: max RSS middle third %.1f MiB, last third %.1f MiB (slack %.1f MiB): %s" % (
        bl.mib(max_mid), bl.mib(max_last), a.slack, "ok" if plateau else "FAIL"))
    qs = sorted(s for s, _ in quiet)
    under_load = sorted(st for _, _, _, st in curve if st)
    best = qs[0] * 1000
    print("  GET /metrics (text, %d KiB), quiet exporter, %d scrapes: best %.2f ms, median %.2f ms, p90 %.2f ms, max %.2f ms"
          % (quiet[0][1] >> 10, len(qs), best, bl.percentile(qs, 50) * 1000, bl.percentile(qs, 90) * 1000, qs[-1] * 1000))
    print("  GET /metrics (OpenMetrics), 10 scrapes: best %.2f ms, median %.2f ms" % (
        min(t_om) * 1000, bl.percentile(t_om, 50) * 1000))
    print("  GET /metrics while lines were pouring in, %d scrapes: median %.2f ms, max %.2f ms" % (
        len(under_load), bl.percentile(under_load, 50) * 1000, under_load[-1] * 1000))
    ok_scrape = best < a.bound_ms
    print("  /metrics under %.0f ms: %s" % (a.bound_ms, "ok" if ok_scrape else "FAIL"))
    if not (plateau and ok_scrape):
        sys.exit(1)


if __name__ == "__main__":
    main()
