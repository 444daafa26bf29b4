"""Reject counts against bench/gen.py's ground truth, per MTA and reason.

The generator's truth and the project's rule book (reasons.md, which the exporter
follows) disagree on purpose in three places; each is counted from the log itself,
so the expected figure is exact and the difference is shown, not hidden:

- Postfix `warning: host[ip]: SASL LOGIN authentication failed` and Sendmail
  `possible SMTP attack: command=AUTH` are rejects by the rule book (reason
  auth_failed, stage auth); the generator does not count them.
- Exim `rejected after DATA: This message contains a virus` is reason `virus` by the
  rule book; the generator files it under spam_content.
- The exporter counts an Exim reject repeated verbatim on the very next line (same
  host, pid and text) once, because Exim via syslog writes every reject twice
  (main log + reject log; README "Readings where the rule book is silent"). The
  generator sometimes rejects the same recipient twice in a row in one session,
  which looks exactly like that, and counts it twice.
"""

import collections
import json
import re

ENV = re.compile(rb"^\w{3} [ \d]\d \d\d:\d\d:\d\d (\S+) ([^\[ ]+)\[(\d+)\]: (.*)$")

# Exim reject texts of the generator -> reason (for the verbatim repeats)
EXIM_REASON = [(b"greylisted", "greylist"), (b"is listed in", "rbl"), (b"Unknown user", "unknown_user"),
               (b"relay not permitted", "relay_denied"), (b"Sender verify failed", "sender"),
               (b"contains a virus", "virus"), (b"spam points", "spam_content"), (b"syntactically invalid", "protocol")]


def scan(log_path):
    """Counts the lines where the rule book and the generator differ."""
    c = collections.Counter()
    prev = None  # (host, pid, text) of the previous line when it was an Exim line
    with open(log_path, "rb") as f:
        for line in f:
            key = None
            if b"SASL " in line and b"authentication failed" in line and b" postfix" in line:
                c["postfix_sasl"] += 1
            elif b"possible SMTP attack: command=AUTH" in line:
                c["sendmail_auth_attack"] += 1
            elif b" exim[" in line:
                if b"contains a virus" in line and b"rejected" in line:
                    c["exim_virus"] += 1
                m = ENV.match(line.rstrip(b"\n"))
                key = (m.group(1), m.group(3), m.group(4)) if m else None
                if key is not None and key == prev and b"rejected" in line:
                    reason = next((r for w, r in EXIM_REASON if w in line), "other")
                    c["exim_repeat:" + reason] += 1
            prev = key
    return c


def expected(truth, counts):
    """(generator truth, rule-book expectation) as Counters keyed by (mta, reason)."""
    gen = collections.Counter()
    for mta, reasons in truth["rejects_by_reason"].items():
        for reason, n in reasons.items():
            gen[(mta, reason)] += n
    exp = collections.Counter(gen)
    if counts["postfix_sasl"]:
        exp[("postfix", "auth_failed")] += counts["postfix_sasl"]
    if counts["sendmail_auth_attack"]:
        exp[("sendmail", "auth_failed")] += counts["sendmail_auth_attack"]
    if counts["exim_virus"]:
        exp[("exim", "spam_content")] -= counts["exim_virus"]
        exp[("exim", "virus")] += counts["exim_virus"]
    for k, n in counts.items():
        if k.startswith("exim_repeat:"):
            exp[("exim", k.split(":", 1)[1])] -= n
    return gen, exp


def note(key, counts):
    mta, reason = key
    if key == ("postfix", "auth_failed"):
        return "+%d SASL failures: rejects by the rule book, not in the generator's truth" % counts["postfix_sasl"]
    if key == ("sendmail", "auth_failed"):
        return "+%d 'possible SMTP attack: command=AUTH': rule book auth_failed, not in the truth" % counts["sendmail_auth_attack"]
    notes = []
    if key == ("exim", "virus"):
        notes.append("+%d 'contains a virus': rule book virus, generator spam_content" % counts["exim_virus"])
    if key == ("exim", "spam_content") and counts["exim_virus"]:
        notes.append("-%d virus lines (see exim/virus)" % counts["exim_virus"])
    rep = counts.get("exim_repeat:" + reason, 0) if mta == "exim" else 0
    if rep:
        notes.append("-%d verbatim repeats on the next line counted once (Exim duplicate rule)" % rep)
    return "; ".join(notes)


def ours_by_reason(replay_json):
    c = collections.Counter()
    for r in replay_json["rejects"]:
        c[(r["mta"], r["reason"])] += r["count"]
    return c


def report(log_path, truth, ours, out):
    """Prints the per-MTA/reason table; returns (generator total, rule-book total, ours total, cells off)."""
    counts = scan(log_path)
    gen, exp = expected(truth, counts)
    keys = sorted(set(gen) | set(exp) | set(ours))
    out("  %-9s %-13s %10s %10s %10s %7s  %s" % ("MTA", "REASON", "GENERATOR", "RULE BOOK", "OURS", "OFF", "WHY THE RULE BOOK DIFFERS"))
    off = 0
    for k in keys:
        d = ours[k] - exp[k]
        if d:
            off += 1
        out("  %-9s %-13s %10d %10d %10d %7s  %s" % (k[0], k[1], gen[k], exp[k], ours[k], "%+d" % d if d else "0", note(k, counts)))
    tg, te, to = sum(gen.values()), sum(exp.values()), sum(ours.values())
    out("  %-23s %10d %10d %10d %7s" % ("total", tg, te, to, "%+d" % (to - te) if to != te else "0"))
    return tg, te, to, off


if __name__ == "__main__":
    import subprocess
    import sys
    log, binary = sys.argv[1], sys.argv[2]
    truth = json.load(open(log + ".truth.json"))
    out = subprocess.run([binary, "replay", "--output", "json", log], check=True, capture_output=True).stdout
    tg, te, to, off = report(log, truth, ours_by_reason(json.loads(out)), print)
    sys.exit(1 if off else 0)
