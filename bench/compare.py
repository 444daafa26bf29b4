#!/usr/bin/env python3
"""Side by side: mailroute_exporter against mtail and prometheus-postfix-exporter.

Run through bench/compare.sh (it builds the release binary and installs the peers).
For each input (a 1M-line Postfix log and a 1M-line mixed log from the project's
generator, examples/gen/, seed 42) it measures:

- one-shot: `mailroute_exporter replay` (best of 3) and `mtail --one_shot` with
  bench/mtail/postfix.mtail. postfix_exporter has no one-shot mode.
- tailing: each tool follows an empty file into which the whole log is then
  appended as fast as the page cache takes it; the clock stops when the tool has
  counted the last line (ours: mailroute_log_lines_total; mtail:
  mtail_log_lines_total; postfix_exporter: the generator's sentinel line, a
  `lost connection after BENCHEND`, in postfix_smtpd_connections_lost_total).
  Every tool is polled the same way (GET /metrics every 20 ms).

Reported: lines/s (wall), CPU seconds (user+sys) per million lines, peak RSS
(ru_maxrss for one-shot runs, VmHWM for daemons), ratios ours-vs-peer, and each
tool's reject count against the generator's ground truth (ours also per MTA and
reason and per series: bench/accuracy.py).
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import accuracy  # noqa: E402
import benchlib as bl  # noqa: E402

POLL = 0.02


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def peer_rejects_postfix_exporter(text):
    smtpd = bl.metric_sum(text, "postfix_smtpd_messages_rejected_total")
    cleanup = bl.metric_sum(text, "postfix_cleanup_messages_rejected_total")
    sasl = bl.metric_sum(text, "postfix_smtpd_sasl_authentication_failures_total")
    return smtpd + cleanup, sasl


def peer_rejects_mtail(text):
    smtpd = bl.metric_sum(text, "postfix_smtpd_rejects_total")
    cleanup = bl.metric_sum(text, "postfix_cleanup_rejects_total")
    sasl = bl.metric_sum(text, "postfix_sasl_auth_failures_total")
    return smtpd + cleanup, sasl


def ours_rejects(text):
    return bl.metric_sum(text, "mailroute_smtp_rejects_total")


def tail_run(name, argv, port, logfile, src, lines, done, timeout, env=None):
    """Starts a tailing tool on an empty `logfile`, appends `src`, waits for `done(text)`."""
    open(logfile, "wb").close()
    d = bl.Daemon(name, argv, port, env=env)
    try:
        time.sleep(0.3)  # let it open the (empty) file
        cpu0 = d.cpu()
        t0 = time.monotonic()
        bl.append_file(src, logfile)
        appended = time.monotonic() - t0
        deadline = t0 + timeout
        while True:
            text = d.scrape()
            if done(text):
                break
            if time.monotonic() > deadline:
                raise TimeoutError("%s: not done within %ds" % (name, timeout))
            time.sleep(POLL)
        wall = time.monotonic() - t0
        cpu = d.cpu() - cpu0
        _, hwm = d.mem()
        return dict(tool=name, mode="tail", wall=wall, cpu=cpu, rss=hwm, lines=lines, text=text, appended=appended)
    finally:
        d.stop()


def fmt_row(r):
    return "%-12s %-20s %-8s %12s %10.2f %10.1f %10s %10s %8s" % (
        r["input"], r["tool"], r["mode"], "{:,.0f}".format(r["lines"] / r["wall"]), r["cpu"] * 1e6 / r["lines"],
        bl.mib(r["rss"]), r.get("rejects_text", ""), r.get("truth_text", ""), r.get("pct_text", ""))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=os.path.join(bl.ROOT, "target", "release", "mailroute_exporter"))
    ap.add_argument("--workdir", default=os.environ.get("BENCH_DIR", "/tmp/mailroute-bench"))
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--timeout", type=int, default=120, help="seconds per tailing run")
    ap.add_argument("--skip", default="", help="comma list of tools to leave out: mtail,postfix_exporter")
    ap.add_argument("--json", help="also write the results here")
    a = ap.parse_args()
    skip = set(filter(None, a.skip.split(",")))
    os.makedirs(a.workdir, exist_ok=True)
    have_mtail = shutil.which("mtail") and "mtail" not in skip
    have_pfe = shutil.which("prometheus-postfix-exporter") and "postfix_exporter" not in skip
    progs = os.path.join(bl.ROOT, "bench", "mtail")

    inputs = []
    for mix in ("postfix", "mixed"):
        path = os.path.join(a.workdir, "%s-%dk.log" % (mix, a.lines // 1000))
        log("generating %s (%d lines, --mix %s, seed 42)" % (path, a.lines, mix))
        truth = bl.generate(path, a.lines, mix)
        inputs.append((mix, path, truth))

    results = []
    accuracy_reports = []
    tmp = tempfile.mkdtemp(prefix="compare-", dir=a.workdir)
    try:
        for mix, path, truth in inputs:
            lines = truth["lines"]
            pf_truth = sum(truth["rejects"].get("postfix", {}).values())
            all_truth = truth["rejects_total"]
            # the generator's local domains, so that misroutes count as they do in the truth
            conf = os.path.join(a.workdir, "local-domains.toml")
            with open(conf, "w") as f:
                f.write("[maillog]\nlocal_domains = %s\n" % json.dumps(truth["local_domains"]))

            # --- one-shot ---
            best = None
            for _ in range(3):
                _, out, wall, cpu, rss = bl.run_measured([a.bin, "replay", "--output", "json", "--config.file", conf, path])
                if best is None or wall < best[1]:
                    best = (out, wall, cpu, rss)
            out, wall, cpu, rss = best
            replay_json = json.loads(out)
            ours = accuracy.ours_by_reason(replay_json)
            results.append(dict(input=mix, tool="mailroute_exporter", mode="replay", wall=wall, cpu=cpu, rss=rss,
                                lines=lines, rejects=sum(ours.values()), truth=all_truth))
            buf = []
            tg, te, to, off = accuracy.report(path, truth, ours, buf.append, accuracy.ours_by_series(replay_json))
            accuracy_reports.append((mix, buf, tg, te, to, off))

            if have_mtail:
                log("mtail --one_shot on %s" % mix)
                _, out, wall, cpu, rss = bl.run_measured(["mtail", "--progs", progs, "--logs", path, "--one_shot",
                                                          "--one_shot_format", "prometheus", "--logtostderr"], timeout=a.timeout)
                rej, sasl = peer_rejects_mtail(out.decode(errors="replace"))
                results.append(dict(input=mix, tool="mtail", mode="one-shot", wall=wall, cpu=cpu, rss=rss, lines=lines,
                                    rejects=rej, truth=pf_truth, sasl=sasl))

            # --- tailing ---
            logfile = os.path.join(tmp, "mail-%s.log" % mix)
            port = bl.free_port()
            log("mailroute_exporter serve (tailing) on %s" % mix)
            r = tail_run("mailroute_exporter", [a.bin, "serve", "--web.listen-address=127.0.0.1:%d" % port,
                                                "--maillog.path=%s" % logfile, "--maillog.start=beginning",
                                                "--log.level=warn"],
                         port, logfile, path, lines,
                         lambda t: bl.metric_sum(t, "mailroute_log_lines_total") >= lines, a.timeout)
            r.update(input=mix, rejects=ours_rejects(r.pop("text")), truth=all_truth)
            results.append(r)

            if have_mtail:
                log("mtail (tailing) on %s" % mix)
                port = bl.free_port()
                r = tail_run("mtail", ["mtail", "--progs", progs, "--logs", logfile, "--address", "127.0.0.1",
                                       "--port", str(port), "--logtostderr", "--stderrthreshold=ERROR"],
                             port, logfile, path, lines,
                             lambda t: bl.metric_sum(t, "mtail_log_lines_total") >= lines, a.timeout)
                rej, sasl = peer_rejects_mtail(r.pop("text"))
                r.update(input=mix, rejects=rej, truth=pf_truth, sasl=sasl)
                results.append(r)

            if have_pfe:
                log("prometheus-postfix-exporter (tailing) on %s" % mix)
                port = bl.free_port()
                r = tail_run("postfix_exporter", ["prometheus-postfix-exporter", "--postfix.logfile_path=%s" % logfile,
                                                  "--web.listen-address=127.0.0.1:%d" % port],
                             port, logfile, path, lines,
                             lambda t: bl.metric_sum(t, "postfix_smtpd_connections_lost_total", after_stage="BENCHEND") >= 1,
                             a.timeout)
                rej, sasl = peer_rejects_postfix_exporter(r.pop("text"))
                r.update(input=mix, rejects=rej, truth=pf_truth, sasl=sasl)
                results.append(r)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    # --- report ---
    print()
    print("Machine: %d CPUs (%s), shared; load average at the end %s" % (
        os.cpu_count(), cpu_model(), " ".join("%.2f" % x for x in os.getloadavg())))
    print("Inputs: examples/gen -n %d --seed 42, --mix postfix and --mix mixed (%s)" % (a.lines, a.workdir))
    print()
    print("%-12s %-20s %-8s %12s %10s %10s %10s %10s %8s" % (
        "INPUT", "TOOL", "MODE", "LINES/S", "CPU s/1M", "PEAK MiB", "REJECTS", "TRUTH", "OF TRUTH"))
    for r in results:
        r["rejects_text"] = "%d" % r["rejects"]
        r["truth_text"] = "%d" % r["truth"]
        r["pct_text"] = "%.1f%%" % (100.0 * r["rejects"] / r["truth"]) if r["truth"] else "-"
        print(fmt_row(r))
    print()
    print("TRUTH is the generator's count: all MTAs for mailroute_exporter, Postfix only for the peers")
    print("(they read Postfix lines only). Peers' REJECTS = smtpd rejects + cleanup rejects; their SASL")
    print("failure counters are a separate metric, listed here, not added:")
    for r in results:
        if "sasl" in r:
            print("  %-8s %-18s %-8s SASL failures %d" % (r["input"], r["tool"], r["mode"], r["sasl"]))
    print()
    print("Ratios (peer / ours: how many times more CPU and memory the peer needs, how many times")
    print("faster ours is), same input, same mode (replay vs one-shot, tail vs tail):")
    for r in results:
        if r["tool"] == "mailroute_exporter":
            continue
        mode_ours = "replay" if r["mode"] == "one-shot" else "tail"
        o = next(x for x in results if x["tool"] == "mailroute_exporter" and x["input"] == r["input"] and x["mode"] == mode_ours)
        print("  %-8s vs %-17s %-8s CPU %6.1fx   peak RSS %5.1fx   lines/s %6.1fx" % (
            r["input"], r["tool"], r["mode"], r["cpu"] / max(o["cpu"], 1e-9), r["rss"] / max(o["rss"], 1),
            (o["lines"] / o["wall"]) / (r["lines"] / r["wall"])))
    print()
    for mix, buf, tg, te, to, off in accuracy_reports:
        print("mailroute_exporter rejects on the %s log, per MTA and reason: the generator's truth (the" % mix)
        print("rule book's reading of every line it wrote) and what replay counted:")
        for line in buf:
            print(line)
        print("  => %s: %d of %d rejects (%d cells off)" % (mix, to, te, off))
        print()
    targets = [r for r in results if r["tool"] == "mailroute_exporter" and r["mode"] == "replay"]
    for r in targets:
        per_core = r["lines"] / r["cpu"] if r["cpu"] else float("inf")
        print("Issue 2 target, %s replay: %s lines/s wall, %s lines per CPU-second (>= 3,000,000), peak RSS %.1f MiB (<= 16)" % (
            r["input"], "{:,.0f}".format(r["lines"] / r["wall"]), "{:,.0f}".format(per_core), bl.mib(r["rss"])))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


if __name__ == "__main__":
    main()
