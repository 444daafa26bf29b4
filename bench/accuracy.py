"""Reject counts of `replay` against the workload generator's ground truth.

The generator (examples/gen/, `cargo run --release --example gen`) writes every line
together with the rule book's (reasons.md) reading of it, so its truth is exact: no
correction is computed from the log. This module compares, per MTA and reason, and
per series (host, MTA, stage, reason, class), and prints every cell.

    python3 bench/accuracy.py LOG BINARY      # exit 1 when any cell differs
"""

import collections
import json


def truth_by_reason(truth):
    c = collections.Counter()
    for mta, reasons in truth["rejects_by_reason"].items():
        for reason, n in reasons.items():
            c[(mta, reason)] += n
    return c


def ours_by_reason(replay_json):
    c = collections.Counter()
    for r in replay_json["rejects"]:
        c[(r["mta"], r["reason"])] += r["count"]
    return c


def ours_by_series(replay_json):
    c = collections.Counter()
    for r in replay_json["rejects"]:
        c["|".join((r["host"], r["mta"], r["stage"], r["reason"], r["class"]))] += r["count"]
    return c


def report(log_path, truth, ours, out, series=None):
    """Prints the per-MTA/reason table; returns (truth total, truth total, ours total, cells off).

    `series`, when given, is ours_by_series() of the same run: series that differ are listed too.
    """
    exp = truth_by_reason(truth)
    keys = sorted(set(exp) | set(ours))
    out("  %-9s %-13s %10s %10s %7s" % ("MTA", "REASON", "TRUTH", "OURS", "OFF"))
    off = 0
    for k in keys:
        d = ours[k] - exp[k]
        if d:
            off += 1
        out("  %-9s %-13s %10d %10d %7s" % (k[0], k[1], exp[k], ours[k], "%+d" % d if d else "0"))
    te, to = sum(exp.values()), sum(ours.values())
    out("  %-23s %10d %10d %7s" % ("total", te, to, "%+d" % (to - te) if to != te else "0"))
    if series is not None:
        want = collections.Counter(truth["series"])
        bad = [k for k in sorted(set(want) | set(series)) if want[k] != series[k]]
        for k in bad:
            out("  series %s: truth %d, ours %d" % (k, want[k], series[k]))
        out("  series (host, mta, stage, reason, class): %d of %d exact" % (len(set(want) | set(series)) - len(bad),
                                                                           len(set(want) | set(series))))
        off += len(bad)
    return te, te, to, off


if __name__ == "__main__":
    import os
    import subprocess
    import sys
    import tempfile
    log, binary = sys.argv[1], sys.argv[2]
    truth = json.load(open(log + ".truth.json"))
    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as conf:
        conf.write("[maillog]\nlocal_domains = %s\n" % json.dumps(truth["local_domains"]))
    try:
        out = subprocess.run([binary, "replay", "--output", "json", "--config.file", conf.name, log],
                             check=True, capture_output=True).stdout
    finally:
        os.unlink(conf.name)
    j = json.loads(out)
    tg, te, to, off = report(log, truth, ours_by_reason(j), print, ours_by_series(j))
    sys.exit(1 if off else 0)
