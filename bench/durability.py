#!/usr/bin/env python3
"""Durability benchmarks of issue 11, against the release binary and the real logrotate.

  restart       kill -9 of the exporter every --kill-every s while --rate lines/s are
                written and logrotate renames the log (create) every --rotate-every s;
                a scraper polls /metrics every 250 ms. Counts lost lines, lines counted
                twice (per host: every line carries one of 61 hosts) and every decrease
                of a counter the scraper saw. Target: 0, 0, 0.
  copytruncate  logrotate copytruncate every --rotate-every s at --rate lines/s; the
                writer keeps its O_APPEND descriptor. Target: <= 4 lines lost per
                rotation, 0 counted twice.
  syslog        --senders TCP connections to one syslog listener, all open at once,
                each sending --lines lines; counts what arrived and the exporter's peak
                RSS (VmHWM). Target: all counted, RSS <= 64 MiB.

Prints one result line per run and exits 1 when a target is missed.
"""

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as bl  # noqa: E402

HOSTS = 61


def line(i):
    return ("Mar  1 00:%02d:%02d mx%02d postfix/smtpd[%d]: NOQUEUE: reject: RCPT from unknown[198.51.100.%d]: "
            "554 5.7.1 <u%d@nmrc.org>: Relay access denied; from=<s%d@spam.example> to=<u%d@nmrc.org> "
            "proto=ESMTP helo=<h%d.example>\n" % ((i // 60) % 60, i % 60, i % HOSTS, 10000 + i % 50000,
                                                  1 + i % 250, i, i, i, i))


class Writer(threading.Thread):
    """Writes numbered lines at `rate`/s in 10 ms batches, one write per batch.
    reopen: reopen the path when its inode changed (as syslog after logrotate's HUP)."""

    def __init__(self, path, rate, reopen):
        super().__init__(daemon=True)
        self.path, self.rate, self.reopen = path, rate, reopen
        self.written = 0
        self.stop = threading.Event()

    def run(self):
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        ino = os.fstat(fd).st_ino
        t0 = time.monotonic()
        while not self.stop.is_set():
            if self.reopen:
                try:
                    now_ino = os.stat(self.path).st_ino
                except FileNotFoundError:
                    now_ino = None
                if now_ino != ino:
                    os.close(fd)
                    fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                    ino = os.fstat(fd).st_ino
            due = int((time.monotonic() - t0) * self.rate)
            if due > self.written:
                os.write(fd, "".join(line(i) for i in range(self.written, due)).encode())
                self.written = due
            time.sleep(0.01)
        os.close(fd)

    def per_host(self):
        return {"mx%02d" % h: self.written // HOSTS + (1 if h < self.written % HOSTS else 0) for h in range(HOSTS)}


def logrotate(d, log, directives):
    conf = os.path.join(d, "logrotate.conf")
    if not os.path.exists(conf):
        with open(conf, "w") as f:
            f.write("%s {\n    %s\n    missingok\n}\n" % (log, directives))
    subprocess.run(["logrotate", "-f", "-s", os.path.join(d, "logrotate.state"), conf], check=True)


def per_host(text):
    return {l.get("host"): int(v) for l, v in bl.samples(text, "mailroute_smtp_rejects_total")}


def exporter(binary, port, cfg, level="warn"):
    return bl.Daemon("mailroute_exporter", [binary, "serve", "--config.file=%s" % cfg,
                                            "--web.listen-address=127.0.0.1:%d" % port, "--log.level=" + level], port)


def settle(ex, want_total, quiet=1.0, limit=60):
    """Scrapes until the total reaches want_total (then 0.5 s more) or stops moving for `quiet` s."""
    last, since, t_end = -1, time.monotonic(), time.monotonic() + limit
    while time.monotonic() < t_end:
        text = ex.scrape()
        n = bl.metric_sum(text, "mailroute_smtp_rejects_total")
        if n >= want_total:
            time.sleep(0.5)
            return ex.scrape()
        if n != last:
            last, since = n, time.monotonic()
        elif time.monotonic() - since > quiet:
            return text
        time.sleep(0.05)
    return ex.scrape()


def compare(written, text):
    counted = per_host(text)
    lost = sum(max(0, w - counted.get(h, 0)) for h, w in written.items())
    double = sum(max(0, counted.get(h, 0) - w) for h, w in written.items())
    return lost, double


def cmd_restart(a):
    with tempfile.TemporaryDirectory() as d:
        os.chmod(d, 0o755)
        log, state, cfg = os.path.join(d, "mail.log"), os.path.join(d, "state"), os.path.join(d, "c.toml")
        with open(cfg, "w") as f:
            f.write('[maillog]\npaths = ["%s"]\nstart = "beginning"\nstate_file = "%s"\nlocal_domains = ["nmrc.org"]\n'
                    % (log, state))
        open(log, "w").close()
        port = bl.free_port()
        w = Writer(log, a.rate, reopen=True)
        w.start()
        ex = exporter(a.bin, port, cfg)
        best, decreases, scrapes, kills, rotations = {}, [], 0, 0, 0
        stop = threading.Event()
        holder = {"ex": ex}

        def scraper():
            nonlocal scrapes
            while not stop.is_set():
                cur = holder["ex"]
                try:
                    text = cur.scrape(timeout=2) if cur else None
                except OSError:
                    text = None
                if text:
                    scrapes += 1
                    series = {("rejects", h): v for h, v in per_host(text).items()}
                    for l, v in bl.samples(text, "mailroute_log_lines_total"):
                        series[("lines", l.get("outcome"))] = v
                    for k, v in series.items():
                        if v < best.get(k, 0):
                            decreases.append((k, best[k], v))
                        best[k] = max(best.get(k, 0), v)
                time.sleep(0.25)

        th = threading.Thread(target=scraper, daemon=True)
        th.start()
        t0 = time.monotonic()
        next_kill, next_rot = a.kill_every, a.rotate_every
        while time.monotonic() - t0 < a.secs:
            time.sleep(0.02)
            el = time.monotonic() - t0
            if el >= next_rot:
                logrotate(d, log, "rotate 50\n    create\n    nocompress")
                rotations += 1
                next_rot += a.rotate_every
            if el >= next_kill:
                holder["ex"] = None
                os.killpg(ex.proc.pid, signal.SIGKILL)
                ex.proc.wait()
                kills += 1
                ex = exporter(a.bin, port, cfg)
                holder["ex"] = ex
                next_kill += a.kill_every
        w.stop.set()
        w.join()
        text = settle(ex, w.written, quiet=3)
        stop.set()
        th.join()
        lost, double = compare(w.per_host(), text)
        rss = ex.mem()[1]
        ex.stop()
    ok = lost == 0 and double == 0 and not decreases
    print("restart: %.0f s, %d lines/s, kill -9 every %.1f s (%d kills), logrotate create every %.1f s (%d rotations): "
          "written %d, lost %d, counted twice %d, decreases seen by the scraper %d (in %d scrapes), last run's peak RSS %.1f MiB"
          % (a.secs, a.rate, a.kill_every, kills, a.rotate_every, rotations, w.written, lost, double, len(decreases),
             scrapes, rss / 1024))
    if decreases:
        print("  decreases: %s" % decreases[:10])
    return ok


def cmd_copytruncate(a):
    with tempfile.TemporaryDirectory() as d:
        os.chmod(d, 0o755)
        log, cfg = os.path.join(d, "mail.log"), os.path.join(d, "c.toml")
        with open(cfg, "w") as f:
            f.write('[maillog]\npaths = ["%s"]\nstart = "beginning"\nlocal_domains = ["nmrc.org"]\n' % log)
        open(log, "w").close()
        port = bl.free_port()
        # info: the exporter's log says how each truncation was handled
        ex = exporter(a.bin, port, cfg, level="info")
        w = Writer(log, a.rate, reopen=False)
        w.start()
        t0, rotations, next_rot = time.monotonic(), 0, a.rotate_every
        while time.monotonic() - t0 < a.secs:
            time.sleep(0.02)
            if time.monotonic() - t0 >= next_rot:
                logrotate(d, log, "rotate 5\n    copytruncate\n    nocompress")
                rotations += 1
                next_rot += a.rotate_every
        w.stop.set()
        w.join()
        # quiet=10: on a loaded machine a reader may not run for seconds; stopping
        # earlier would report lines still unread as lost
        text = settle(ex, w.written, quiet=10)
        log = ex.err_text()
        copies, truncations = log.count("from its rotated copy"), log.count("log truncated")
        cpu = ex.cpu()
        ex.stop()
    lost, double = compare(w.per_host(), text)
    per = lost / rotations if rotations else 0
    print("copytruncate: %.0f s, %d lines/s, logrotate copytruncate every %.1f s (%d rotations): written %d, lost %d "
          "(%.1f per rotation), counted twice %d; truncations seen %d, rest read from the copy %d times; "
          "exporter CPU %.1f s" % (a.secs, a.rate, a.rotate_every, rotations, w.written, lost, per, double,
                                   truncations, copies, cpu))
    return per <= 4 and double == 0


def cmd_syslog(a):
    port, sport = bl.free_port(), bl.free_port()
    with tempfile.TemporaryDirectory() as d:
        cfg = os.path.join(d, "c.toml")
        with open(cfg, "w") as f:
            f.write('[maillog]\nsyslog_listen = ["tcp://127.0.0.1:%d"]\nlocal_domains = ["nmrc.org"]\n' % sport)
        ex = exporter(a.bin, port, cfg)
        rss0 = ex.mem()[1]
        socks = []
        t0 = time.monotonic()
        for _ in range(a.senders):
            s = socket.create_connection(("127.0.0.1", sport), timeout=30)
            socks.append(s)
        connected = time.monotonic() - t0
        n = 0
        for k in range(a.lines):
            for s in socks:
                s.sendall(("<22>" + line(n)).encode())
                n += 1
        for s in socks:
            s.close()
        text = settle(ex, n, quiet=3)
        got = bl.metric_sum(text, "mailroute_smtp_rejects_total")
        errors = bl.metric_sum(text, "mailroute_log_read_errors_total")
        took = time.monotonic() - t0
        rss, hwm = ex.mem()
        ex.stop()
    print("syslog TCP: %d senders x %d lines, all connected at once (%.2f s to connect): counted %d of %d, read errors "
          "%d, %.1f s in all; exporter RSS at start %.1f MiB, peak %.1f MiB"
          % (a.senders, a.lines, connected, got, n, errors, took, rss0 / 1024, hwm / 1024))
    return got == n and hwm <= 64 * 1024


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=os.path.join(bl.ROOT, "target", "release", "mailroute_exporter"))
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("restart")
    r.add_argument("--secs", type=float, default=60)
    r.add_argument("--rate", type=int, default=5000)
    r.add_argument("--kill-every", type=float, default=3)
    r.add_argument("--rotate-every", type=float, default=7)
    c = sub.add_parser("copytruncate")
    c.add_argument("--secs", type=float, default=60)
    c.add_argument("--rate", type=int, default=10000)
    c.add_argument("--rotate-every", type=float, default=4)
    s = sub.add_parser("syslog")
    s.add_argument("--senders", type=int, default=2000)
    s.add_argument("--lines", type=int, default=50)
    a = ap.parse_args()
    ok = {"restart": cmd_restart, "copytruncate": cmd_copytruncate, "syslog": cmd_syslog}[a.cmd](a)
    if not ok:
        print("FAIL: target missed", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
