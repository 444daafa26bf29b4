#!/usr/bin/env python3
"""Cold starts of `serve` on the DNS lab: does the first round judge every zone exactly?

Issue 10: a freshly started Unbound made lame.test come out with no checks in 1 of 6 cold
starts. This runs N times (default 20): stop the whole lab (Unbound's cache goes with it),
start it again, start `serve` with every name of lab/dns/expected.toml, wait for /-/ready
(the first round), scrape /metrics, and compare the failing checks of each name with
expected.toml. A run counts as exact when every name fails exactly its expected checks and
has mailroute_dns_round_success 1. Prints one line per run and a summary.

    LAB_PORT=10153 bench/dns_cold_starts.py [--runs 20] [--bin target/debug/mailroute_exporter]

Not a test: a measurement (timing and flakiness over repeated cold starts).
"""

import argparse
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LAB = REPO / "lab" / "dns" / "lab.sh"


def lab(cmd):
    out = subprocess.run([str(LAB), cmd], capture_output=True, text=True, check=True)
    return dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def samples(text, name):
    """(labels, value) of every sample of metric `name`."""
    out = []
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        m = re.match(r"^" + re.escape(name) + r"\{(.*)\} (\S+)$", line)
        if not m:
            continue
        labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(1)))
        out.append((labels, float(m.group(2))))
    return out


def one_run(binary, expected, env):
    lab("stop")
    t0 = time.monotonic()
    info = lab("start")
    lab_s = time.monotonic() - t0
    port = free_port()
    with tempfile.TemporaryDirectory() as d:
        cfg = Path(d) / "lab.toml"
        text = (
            f'[dns]\nresolvers = ["{info["LAB_RESOLVER"]}"]\nport = {info["LAB_PORT"]}\n'
            'timeout = "1s"\ninterval = "1h"\n'
        )
        for name, e in expected.items():
            sel = ", ".join(f'"{s}"' for s in e.get("dkim_selectors", []))
            text += f'\n[[dns.domain]]\nname = "{name}"\ndkim_selectors = [{sel}]\n'
        cfg.write_text(text)
        log = Path(d) / "mail.log"
        log.write_text("")
        proc = subprocess.Popen(
            [binary, "serve", f"--config.file={cfg}", f"--maillog.path={log}",
             f"--web.listen-address=127.0.0.1:{port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
        )
        try:
            t1 = time.monotonic()
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=2) as r:
                        if r.status == 200:
                            break
                except OSError:
                    pass
                if time.monotonic() - t1 > 120:
                    return False, lab_s, None, ["not ready within 120 s"]
                time.sleep(0.1)
            first_round = time.monotonic() - t1
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
                metrics = r.read().decode()
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    failed = samples(metrics, "mailroute_dns_check_failed")
    success = {l["domain"]: v for l, v in samples(metrics, "mailroute_dns_round_success")}
    problems = []
    for name, e in expected.items():
        got = sorted(l["check"] for l, v in failed if l.get("domain") == name and v == 1.0)
        want = sorted(e["fail"])
        if got != want:
            problems.append(f"{name}: failing {got}, expected {want}")
        if success.get(name) != 1.0:
            problems.append(f"{name}: round_success {success.get(name)}")
    return not problems, lab_s, first_round, problems


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--bin", default=str(REPO / "target" / "debug" / "mailroute_exporter"))
    args = ap.parse_args()
    expected = tomllib.loads((REPO / "lab" / "dns" / "expected.toml").read_text())["domain"]
    env = dict(os.environ)
    exact = 0
    rounds = []
    for i in range(1, args.runs + 1):
        ok, lab_s, first, problems = one_run(args.bin, expected, env)
        exact += ok
        if first is not None:
            rounds.append(first)
        first_s = f"{first:.2f}s" if first is not None else "-"
        print(f"run {i:2}: {'exact' if ok else 'WRONG'}  lab start {lab_s:.1f}s  first round {first_s}", flush=True)
        for p in problems:
            print(f"        {p}", flush=True)
    rounds.sort()
    med = rounds[len(rounds) // 2] if rounds else float("nan")
    worst = rounds[-1] if rounds else float("nan")
    print(f"{exact} of {args.runs} cold starts judged all {len(expected)} names exactly; "
          f"first round median {med:.2f}s, worst {worst:.2f}s")
    return 0 if exact == args.runs else 1


if __name__ == "__main__":
    sys.exit(main())
