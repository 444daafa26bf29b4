#!/usr/bin/env python3
"""Many domains: static configuration and /probe at 1,000 to 50,000 domains.

The lab is lab/dns/bench_many.sh: N customer domains of one hosting provider, served
by NSD (127.0.56.1) and Knot (127.0.56.2) under the provider's name servers, a BIND
parent for many.test (127.0.56.4) and Unbound (127.0.56.53). For each N:

- static: every domain in [[dns.domain]]; one round. Round time (the exporter's own
  "DNS round finished" line), peak RSS (VmHWM), /metrics time over HTTP (best and
  median of 5) and size;
- probe: no domains configured, probe_allow = ["*.many.test"]; a scheduler sends
  /probe?target=... at the pace one Prometheus with a 5-minute scrape_interval would
  (N / 300 per second, evenly spread), for --probe-seconds, and an HA twin repeats
  each scrape 10 s later. Probe latency, round_success, peak RSS.

In both, the queries the exporter sends to each authoritative server are seen on the
wire by tcpdump (-> 127.0.56.{1,2,4}:PORT; Unbound's own queries leave from
127.0.56.53 and are not counted): queries per domain, and the peak number
in any sliding one-second window per server, which must never exceed
max_qps_per_server.

    LAB_PORT=10453 bench/many_domains.py [--sizes 1000,10000,50000] [--qps 1000]

Needs root (tcpdump on lo) and target/release/mailroute_exporter.
"""

import argparse
import bisect
import concurrent.futures
import http.client
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402

ROOT = benchlib.ROOT
BIN = os.environ.get("MAILROUTE_BIN", os.path.join(ROOT, "target/release/mailroute_exporter"))
SERVERS = ["127.0.56.1", "127.0.56.2", "127.0.56.4"]
LINE = re.compile(r"^(\d+\.\d+) IP [0-9.]+\.\d+ > (127\.0\.56\.\d+)\.(\d+):")


def lab(n, port):
    env = dict(os.environ, LAB_PORT=str(port))
    out = subprocess.run([os.path.join(ROOT, "lab/dns/bench_many.sh"), "start", str(n)], env=env, check=True,
                         stdout=subprocess.PIPE, text=True).stdout
    kv = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    with open(kv["MANY_DOMAINS"]) as f:
        domains = [d.strip() for d in f if d.strip()]
    return kv["MANY_RESOLVER"], domains


class Wire:
    """tcpdump of the exporter's queries to the authoritative servers."""

    def __init__(self, port):
        hosts = " or ".join("dst host %s" % s for s in SERVERS)
        # Unbound's own queries leave from its address; the kernel picks the source of
        # ours (127.0.0.1, or the destination itself for an address put on lo)
        expr = ("not src host 127.0.56.53 and dst port %d and (%s) and (udp or tcp[tcpflags] & tcp-syn != 0)"
                % (port, hosts))
        self.times = {s: [] for s in SERVERS}
        self.proc = subprocess.Popen(["tcpdump", "-i", "lo", "-n", "-tt", "-l", "-B", "16384", expr],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()
        # tcpdump says "listening on lo" on stderr once it captures
        deadline = time.monotonic() + 10
        line = ""
        while "listening" not in line and time.monotonic() < deadline:
            line = self.proc.stderr.readline()
        time.sleep(0.2)

    def _read(self):
        for line in self.proc.stdout:
            m = LINE.match(line)
            if m and m.group(2) in self.times:
                self.times[m.group(2)].append(float(m.group(1)))

    def stop(self):
        time.sleep(0.5)
        self.proc.terminate()
        try:
            _, err = self.proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            err = ""
        self.thread.join(5)
        dropped = re.search(r"(\d+) packets dropped by kernel", err or "")
        return int(dropped.group(1)) if dropped else 0

    def total(self):
        return sum(len(t) for t in self.times.values())

    def peaks(self):
        """Per server: the most packets in any one-second sliding window."""
        out = {}
        for s, ts in self.times.items():
            ts = sorted(ts)
            best = 0
            for i, t in enumerate(ts):
                j = bisect.bisect_left(ts, t + 1.0, lo=i)
                best = max(best, j - i)
            out[s] = best
        return out


def start_exporter(config, work):
    port = benchlib.free_port()
    cfg = os.path.join(work, "config.toml")
    with open(cfg, "w") as f:
        f.write(config)
    d = benchlib.Daemon("mailroute_exporter", [BIN, "serve", "--config.file=" + cfg,
                                                "--web.listen-address=127.0.0.1:%d" % port], port)
    return d


def base_config(resolver, lab_port, qps, work):
    log = os.path.join(work, "mail.log")
    open(log, "w").close()
    return ('[maillog]\npaths = ["%s"]\n\n[dns]\nresolvers = ["%s"]\nport = %d\ntimeout = "2s"\nconcurrency = 64\n'
            'interval = "1h"\nmax_qps_per_server = %d\n' % (log, resolver, lab_port, qps))


def metrics_time(d):
    times, size = [], 0
    for _ in range(5):
        t, size = d.timed_scrape()
        times.append(t)
    return min(times), statistics.median(times), size


def static_run(n, resolver, domains, lab_port, qps):
    with tempfile.TemporaryDirectory() as work:
        cfg = base_config(resolver, lab_port, qps, work)
        cfg += "".join('\n[[dns.domain]]\nname = "%s"\n' % d for d in domains)
        wire = Wire(lab_port)
        d = start_exporter(cfg, work)
        try:
            deadline = time.monotonic() + 3600
            while "DNS round finished" not in d.err_text():
                if time.monotonic() > deadline or d.proc.poll() is not None:
                    raise RuntimeError("no round: " + d.err_text()[-2000:])
                time.sleep(0.2)
            # the results are published just after the log line: wait for readiness
            while True:
                try:
                    conn = http.client.HTTPConnection("127.0.0.1", d.port, timeout=10)
                    conn.request("GET", "/-/ready")
                    if conn.getresponse().status == 200:
                        break
                except OSError:
                    pass
                time.sleep(0.2)
            m = re.search(r'msg="DNS round finished".*?failing_checks=(\d+).*?seconds=([0-9.]+)', d.err_text())
            failing, round_s = int(m.group(1)), float(m.group(2))
            best, median, size = metrics_time(d)
            text = d.scrape()
            ok = benchlib.metric_sum(text, "mailroute_dns_round_success")
            sent = benchlib.metric_sum(text, "mailroute_dns_queries_total")
            rss, hwm = d.mem()
        finally:
            d.stop()
            dropped = wire.stop()
    return {
        "mode": "static", "n": n, "round_s": round_s, "failing_checks": failing, "round_success": ok,
        "queries_per_domain": sent / n, "auth_queries_per_domain": wire.total() / n,
        "peak_qps": wire.peaks(), "dropped": dropped, "rss_mib": rss / 1024, "hwm_mib": hwm / 1024,
        "metrics_ms": best * 1000, "metrics_median_ms": median * 1000, "metrics_kib": size / 1024,
    }


def probe(port, domain, timeout):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout + 5)
    t0 = time.perf_counter()
    try:
        conn.request("GET", "/probe?target=" + domain, headers={"X-Prometheus-Scrape-Timeout-Seconds": str(timeout)})
        r = conn.getresponse()
        body = r.read().decode(errors="replace")
        ok = r.status == 200 and ('mailroute_dns_round_success{domain="%s"} 1' % domain) in body
        return time.perf_counter() - t0, ok
    except OSError:
        return time.perf_counter() - t0, False
    finally:
        conn.close()


def probe_run(n, resolver, domains, lab_port, qps, seconds, interval, twin_delay=10.0, timeout=30):
    rate = n / interval
    count = min(n, int(rate * seconds))
    with tempfile.TemporaryDirectory() as work:
        cfg = base_config(resolver, lab_port, qps, work)
        cfg += 'probe_allow = ["*.many.test"]\nprobe_cache_age = "55s"\n'
        wire = Wire(lab_port)
        d = start_exporter(cfg, work)
        lat, twin_lat, ok, twin_ok, hwm_seen = [], [], 0, 0, 0
        lock = threading.Lock()
        try:
            start = time.monotonic()
            # (when, domain, is_twin), in time order
            plan = sorted([(i / rate, domains[i], False) for i in range(count)]
                          + [(i / rate + twin_delay, domains[i], True) for i in range(count)])
            with concurrent.futures.ThreadPoolExecutor(max_workers=256) as pool:
                futures = []

                def one(dom, twin):
                    nonlocal ok, twin_ok
                    t, good = probe(d.port, dom, timeout)
                    with lock:
                        (twin_lat if twin else lat).append(t)
                        if good:
                            if twin:
                                twin_ok += 1
                            else:
                                ok += 1

                for when, dom, twin in plan:
                    delay = start + when - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                    futures.append(pool.submit(one, dom, twin))
                    hwm_seen = max(hwm_seen, d.mem()[1]) if len(futures) % 50 == 0 else hwm_seen
                for f in futures:
                    f.result()
            elapsed = time.monotonic() - start
            best, median, size = metrics_time(d)
            text = d.scrape()
            sent = benchlib.metric_sum(text, "mailroute_dns_queries_total")
            rss, hwm = d.mem()
        finally:
            d.stop()
            dropped = wire.stop()
    return {
        "mode": "probe", "n": n, "probes": count, "rate": rate, "elapsed_s": elapsed,
        "ok": ok, "twin_ok": twin_ok,
        "p50_ms": benchlib.percentile(lat, 50) * 1000, "p99_ms": benchlib.percentile(lat, 99) * 1000,
        "twin_p50_ms": benchlib.percentile(twin_lat, 50) * 1000,
        "queries_per_domain": sent / max(count, 1), "auth_queries_per_domain": wire.total() / max(count, 1),
        "peak_qps": wire.peaks(), "dropped": dropped, "rss_mib": rss / 1024, "hwm_mib": hwm / 1024,
        "metrics_ms": best * 1000, "metrics_kib": size / 1024,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="1000,10000,50000")
    ap.add_argument("--modes", default="static,probe")
    ap.add_argument("--qps", type=int, default=1000, help="max_qps_per_server")
    ap.add_argument("--probe-seconds", type=float, default=60)
    ap.add_argument("--interval", type=float, default=300, help="the simulated scrape_interval")
    args = ap.parse_args()
    lab_port = int(os.environ.get("LAB_PORT", "10053"))
    if not os.access(BIN, os.X_OK):
        sys.exit("build target/release/mailroute_exporter first (cargo build --release --locked)")
    results = []
    for n in [int(x) for x in args.sizes.split(",")]:
        t0 = time.monotonic()
        resolver, domains = lab(n, lab_port)
        print("lab with %d domains ready in %.1f s" % (n, time.monotonic() - t0), flush=True)
        for mode in args.modes.split(","):
            if mode == "static":
                r = static_run(n, resolver, domains, lab_port, args.qps)
            else:
                r = probe_run(n, resolver, domains, lab_port, args.qps, args.probe_seconds, args.interval)
            print(r, flush=True)
            results.append(r)
    print()
    print("max_qps_per_server = %d; peak = most queries seen on the wire in any 1 s window, per server "
          "(NSD, Knot, parent BIND)" % args.qps)
    print()
    print("| mode | domains | round / probe latency | queries per domain (all / to auth servers) | "
          "peak qps per server | peak RSS | /metrics |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        peaks = " / ".join(str(r["peak_qps"][s]) for s in SERVERS)
        if r["mode"] == "static":
            lat = "round %.1f s (%d/%d round_success)" % (r["round_s"], r["round_success"], r["n"])
            metrics = "%.1f ms (median %.1f), %.0f KiB" % (r["metrics_ms"], r["metrics_median_ms"], r["metrics_kib"])
        else:
            lat = ("%d probes at %.1f/s: p50 %.0f ms, p99 %.0f ms, %d ok; HA twin p50 %.1f ms, %d ok"
                   % (r["probes"], r["rate"], r["p50_ms"], r["p99_ms"], r["ok"], r["twin_p50_ms"], r["twin_ok"]))
            metrics = "%.1f ms, %.0f KiB" % (r["metrics_ms"], r["metrics_kib"])
        print("| %s | %d | %s | %.1f / %.1f | %s | %.1f MiB | %s |" % (
            r["mode"], r["n"], lat, r["queries_per_domain"], r["auth_queries_per_domain"], peaks, r["hwm_mib"],
            metrics))
        if r["dropped"]:
            print("  (tcpdump: %d packets dropped by the kernel; the peaks are lower bounds)" % r["dropped"])


if __name__ == "__main__":
    main()
