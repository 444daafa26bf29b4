"""Shared pieces of the benchmark scripts (compare.py, soak.py, latency.py).

Processes are measured from the kernel's own accounting: a one-shot run through
wait4() (user+sys CPU, peak RSS = ru_maxrss), a daemon through /proc/PID (utime,
stime, VmRSS, VmHWM). Nothing here needs a package beyond Python's standard library.
"""

import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


GNU_TIME = "/usr/bin/time"


def run_measured(argv, stdout=subprocess.PIPE, timeout=600, stdin=None):
    """Runs argv to completion; returns (exit code, stdout bytes, wall s, cpu s, peak RSS KiB).

    CPU and peak RSS come from GNU time (Debian package `time`), which forks the
    tool from its own small process: a child forked from Python would inherit
    Python's ~20 MiB into its ru_maxrss before exec.
    """
    if not os.access(GNU_TIME, os.X_OK):
        raise RuntimeError("%s is missing: apt-get install time" % GNU_TIME)
    fd, stats = tempfile.mkstemp(prefix="time-")
    os.close(fd)
    argv = [GNU_TIME, "-f", "%e %U %S %M", "-o", stats] + list(argv)
    try:
        t0 = time.monotonic()
        p = subprocess.Popen(argv, stdout=stdout, stderr=subprocess.PIPE, stdin=stdin or subprocess.DEVNULL)
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.communicate()
            raise TimeoutError("%s: no exit within %ds" % (argv[0], timeout))
        wall = time.monotonic() - t0
        if p.returncode != 0:
            raise RuntimeError("%s exited %d: %s" % (" ".join(argv), p.returncode, (err or b"")[-2000:].decode(errors="replace")))
        _, u, sy, m = open(stats).read().split()[-4:]
        return 0, out or b"", wall, float(u) + float(sy), int(m)
    finally:
        os.unlink(stats)


def proc_cpu(pid):
    """user+sys CPU seconds of a running process (all its threads)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_mem(pid):
    """(VmRSS, VmHWM) in KiB."""
    rss = hwm = 0
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("VmHWM:"):
                hwm = int(line.split()[1])
    return rss, hwm


class Daemon:
    """A long-running process with an HTTP /metrics endpoint on 127.0.0.1:port."""

    def __init__(self, name, argv, port, path="/metrics", ready=None, env=None):
        self.name = name
        self.port = port
        self.path = path
        self.stderr = []
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                     env=env, start_new_session=True)
        threading.Thread(target=self._drain, daemon=True).start()
        deadline = time.monotonic() + 20
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("%s exited %s at start: %s" % (name, self.proc.returncode, self.err_text()[-2000:]))
            try:
                text = self.scrape(timeout=1)
                if ready is None or ready(text):
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("%s did not serve %s within 20 s: %s" % (name, path, self.err_text()[-2000:]))
            time.sleep(0.05)
        self.conn = None

    def _drain(self):
        for line in iter(self.proc.stderr.readline, b""):
            if len(self.stderr) < 10000:
                self.stderr.append(line)

    def err_text(self):
        return b"".join(self.stderr).decode(errors="replace")

    def scrape(self, timeout=10, headers=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request("GET", self.path, headers=headers or {})
            r = conn.getresponse()
            body = r.read()
            if r.status != 200:
                raise OSError("HTTP %d" % r.status)
            return body.decode(errors="replace")
        finally:
            conn.close()

    def timed_scrape(self):
        """(seconds for one full GET /metrics on a fresh connection, bytes)."""
        t0 = time.perf_counter()
        text = self.scrape()
        return time.perf_counter() - t0, len(text)

    def cpu(self):
        return proc_cpu(self.proc.pid)

    def mem(self):
        return proc_mem(self.proc.pid)

    def stop(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def samples(text, name):
    """[(labels dict, value)] of every sample of `name` in a text exposition."""
    out = []
    for line in text.splitlines():
        if not line.startswith(name) or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        if not m or m.group(1) != name:
            continue
        labels = dict(LABEL.findall(m.group(2) or ""))
        out.append((labels, float(m.group(3))))
    return out


def metric_sum(text, name, **filt):
    return sum(v for labels, v in samples(text, name) if all(labels.get(k) == w for k, w in filt.items()))


def append_file(src, dst, chunk=1 << 20):
    """Appends src to dst as fast as the page cache takes it (O_APPEND writes of 1 MiB)."""
    with open(src, "rb") as fi, open(dst, "ab") as fo:
        shutil.copyfileobj(fi, fo, chunk)


def percentile(values, p):
    v = sorted(values)
    if not v:
        return float("nan")
    k = (len(v) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


def generator():
    """The workload generator (examples/gen/), built in release mode when missing."""
    exe = os.path.join(ROOT, "target", "release", "examples", "gen")
    if not os.path.exists(exe):
        subprocess.run(["cargo", "build", "--release", "--locked", "-q", "--example", "gen"], cwd=ROOT, check=True)
    return exe


def generate(out, lines, mix, seed=42, extra=()):
    """The generator's output, cached: regenerated only when the truth file is missing or differs."""
    import json
    truth = out + ".truth.json"
    if os.path.exists(out) and os.path.exists(truth):
        try:
            t = json.load(open(truth))
            g = t["generator"]
            if (g.get("name") == "mailroute-gen" and g["lines"] == lines and g["mix"] == mix and g["seed"] == seed
                    and os.path.getsize(out) == t["bytes"]):
                return t
        except (ValueError, KeyError):
            pass
    subprocess.run([generator(), "-n", str(lines), "--mix", mix, "--seed", str(seed), "-o", out] + list(extra),
                   check=True, stdout=subprocess.DEVNULL)
    return json.load(open(truth))


def mib(kib):
    return kib / 1024.0

