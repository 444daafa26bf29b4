#!/usr/bin/env python3
# Copied from the project's shared tooling (shared/bench/gen.py), with only these two
# comment lines added, so the benchmarks and tests run from a clean clone without ../shared.
"""Deterministic generator of realistic mail logs in classic syslog format.

    Mon DD HH:MM:SS host prog[pid]: msg

MTAs: Postfix (smtpd, submission/smtpd, postscreen, cleanup, qmgr, smtp, lmtp,
local, bounce, anvil), Sendmail (sm-mta, sendmail, milter-greylist) and Exim
(main-log lines as sent to syslog, ident "exim").

Lines are produced by whole SMTP sessions / message lifecycles (connect ...
client= ... message-id ... from= ... to= status= ... removed) with consistent
pids and queue ids; a few sessions are interleaved to look like a real log.
The share of reject lines is steered to --reject-share.

Besides the log it writes a JSON file with ground-truth counts: total lines,
lines per MTA/program, and rejects per MTA per kind (also per reason, per SMTP
code and per syslog host).  Every reject line is counted exactly once; trap lines
that contain words like "rejected" or "User unknown" but are *not* rejects of
our server (e.g. remote bounces of our outbound mail) are not counted.

The last line is a sentinel (see --sentinel) so a tailing benchmark can tell
when the consumer has processed the whole file.

Same arguments + same seed => byte-identical output.
"""

import argparse
import calendar
import hashlib
import json
import os
import random
import sys
import time

GEN_VERSION = 1

MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

# --------------------------------------------------------------------------
# Reject kinds.  kind -> metadata (mta, normalised reason, smtp code, line form)
# --------------------------------------------------------------------------
KINDS = {
    # Postfix
    "pf_relay_denied": dict(mta="postfix", reason="relay_denied", code="554",
                            form="postfix/smtpd NOQUEUE: reject: RCPT ... 554 5.7.1 <rcpt>: Relay access denied"),
    "pf_sender_domain": dict(mta="postfix", reason="sender", code="450",
                             form="postfix/smtpd NOQUEUE: reject: RCPT ... 450 4.1.8 <sender>: Sender address rejected: Domain not found"),
    "pf_unknown_user": dict(mta="postfix", reason="unknown_user", code="550",
                            form="postfix/smtpd NOQUEUE: reject: RCPT ... 550 5.1.1 <rcpt>: Recipient address rejected: User unknown in local recipient table"),
    "pf_rbl": dict(mta="postfix", reason="rbl", code="554",
                   form="postfix/smtpd NOQUEUE: reject: RCPT ... 554 5.7.1 Service unavailable; Client host [ip] blocked using zen.spamhaus.org"),
    "pf_helo": dict(mta="postfix", reason="helo", code="504",
                    form="postfix/smtpd NOQUEUE: reject: RCPT ... 504 5.5.2 <helo>: Helo command rejected: need fully-qualified hostname"),
    "pf_unknown_user_queued": dict(mta="postfix", reason="unknown_user", code="550",
                                   form="postfix/smtpd <QUEUEID>: reject: RCPT ... 550 5.1.1 ... User unknown in virtual mailbox table (2nd rcpt of an accepted mail)"),
    "pf_submission_relay": dict(mta="postfix", reason="relay_denied", code="554",
                                form="postfix/submission/smtpd NOQUEUE: reject: RCPT ... 554 5.7.1 <rcpt>: Relay access denied"),
    "pf_postscreen_rbl": dict(mta="postfix", reason="rbl", code="550",
                              form="postfix/postscreen NOQUEUE: reject: RCPT from [ip]:port: 550 5.7.1 Service unavailable; client [ip] blocked using zen.spamhaus.org"),
    "pf_cleanup_header": dict(mta="postfix", reason="spam_content", code="550",
                              form="postfix/cleanup <QUEUEID>: reject: header Subject: ... 5.7.1 Message content rejected"),
    "pf_milter_reject": dict(mta="postfix", reason="spam_content", code="554",
                             form="postfix/cleanup <QUEUEID>: milter-reject: END-OF-MESSAGE from ...: 5.7.1 Spam message rejected"),
    # Sendmail
    "sm_relay_denied": dict(mta="sendmail", reason="relay_denied", code="550",
                            form="sm-mta ruleset=check_rcpt, arg1=<rcpt>, relay=..., reject=550 5.7.1 <rcpt>... Relaying denied. Proper authentication required."),
    "sm_rbl": dict(mta="sendmail", reason="rbl", code="553",
                   form="sm-mta ruleset=check_relay, arg1=..., arg2=ip, relay=..., reject=553 5.3.0 Rejected - see http://www.spamhaus.org/query/ip/<ip>"),
    "sm_sender_domain": dict(mta="sendmail", reason="sender", code="553",
                             form="sm-mta ruleset=check_mail, arg1=<sender>, relay=..., reject=553 5.1.8 <sender>... Domain of sender address ... does not exist (or 451 4.1.8 ... does not resolve)"),
    "sm_unknown_user": dict(mta="sendmail", reason="unknown_user", code="550",
                            form="sm-mta <QUEUEID>: <rcpt>... User unknown"),
    "sm_greylist": dict(mta="sendmail", reason="greylist", code="451",
                        form="sm-mta <QUEUEID>: Milter: to=<rcpt>, reject=451 4.7.1 Greylisting in action, please come back in 00:30:00"),
    # Exim
    "ex_relay_denied": dict(mta="exim", reason="relay_denied", code="550",
                            form="exim H=host [ip] F=<sender> rejected RCPT <rcpt>: relay not permitted"),
    "ex_unknown_user": dict(mta="exim", reason="unknown_user", code="550",
                            form="exim H=host [ip] F=<sender> rejected RCPT <rcpt>: Unknown user"),
    "ex_rbl": dict(mta="exim", reason="rbl", code="550",
                   form="exim H=host [ip] F=<sender> rejected RCPT <rcpt>: <ip> is listed in zen.spamhaus.org"),
    "ex_sender_verify": dict(mta="exim", reason="sender", code="550",
                             form="exim H=host [ip] F=<sender> rejected RCPT <rcpt>: Sender verify failed"),
    "ex_greylist": dict(mta="exim", reason="greylist", code="451",
                        form="exim H=host [ip] F=<sender> temporarily rejected RCPT <rcpt>: greylisted."),
    "ex_after_data": dict(mta="exim", reason="spam_content", code="550",
                          form="exim <MSGID> H=host [ip] F=<sender> rejected after DATA: This message scored ... spam points."),
    "ex_helo": dict(mta="exim", reason="protocol", code="550",
                    form="exim rejected EHLO from host [ip]: syntactically invalid argument(s): ..."),
}

# relative weights of reject kinds within one MTA
KIND_WEIGHTS = {
    "postfix": [("pf_relay_denied", 20), ("pf_rbl", 22), ("pf_unknown_user", 18), ("pf_sender_domain", 8),
                ("pf_helo", 6), ("pf_unknown_user_queued", 5), ("pf_submission_relay", 3),
                ("pf_postscreen_rbl", 12), ("pf_cleanup_header", 3), ("pf_milter_reject", 3)],
    "sendmail": [("sm_relay_denied", 30), ("sm_rbl", 25), ("sm_sender_domain", 10), ("sm_unknown_user", 20),
                 ("sm_greylist", 15)],
    "exim": [("ex_relay_denied", 25), ("ex_unknown_user", 20), ("ex_rbl", 20), ("ex_sender_verify", 8),
             ("ex_greylist", 12), ("ex_after_data", 10), ("ex_helo", 5)],
}
# kinds that may repeat inside one session (several RCPT TO rejected)
MULTI_OK = {"pf_relay_denied", "pf_rbl", "pf_unknown_user", "pf_sender_domain", "pf_helo", "pf_submission_relay",
            "sm_relay_denied", "sm_unknown_user", "sm_greylist",
            "ex_relay_denied", "ex_unknown_user", "ex_rbl", "ex_sender_verify", "ex_greylist"}

MTA_HOSTS = {"postfix": ["mx1", "mx2"], "sendmail": ["relay1"], "exim": ["mail1"]}
HOST_LOCAL = {  # hostname -> (fqdn, local domains, local ip)
    "mx1": ("mx1.example.com", ["example.com", "example.net"], "192.0.2.10"),
    "mx2": ("mx2.example.com", ["example.com", "example.net"], "192.0.2.11"),
    "relay1": ("relay1.example.org", ["example.org", "corp.example.org"], "198.51.100.20"),
    "mail1": ("mail1.example.edu", ["example.edu", "lists.example.edu"], "203.0.113.30"),
}

FIRST_OCTETS = [5, 23, 31, 37, 41, 45, 46, 49, 58, 59, 60, 61, 62, 77, 78, 79, 80, 81, 82, 83, 84, 85, 86, 87,
                88, 89, 90, 91, 92, 93, 94, 95, 101, 103, 104, 106, 109, 110, 111, 112, 113, 114, 115, 116, 117,
                118, 119, 120, 121, 122, 123, 124, 125, 134, 138, 141, 144, 146, 149, 151, 154, 160, 171, 175,
                176, 177, 178, 179, 180, 181, 182, 183, 185, 186, 187, 188, 189, 190, 191, 193, 194, 195, 196,
                197, 200, 201, 202, 210, 211, 212, 213, 217, 218, 219, 220, 221, 222]
NAMES = ["alice", "bob", "carol", "dave", "eve", "frank", "grace", "heidi", "ivan", "judy", "mallory", "nina",
         "oscar", "peggy", "rupert", "sybil", "trent", "victor", "walter", "anna", "ben", "chris", "diana",
         "emma", "felix", "hannah", "jonas", "karin", "lukas", "marie", "noah", "olga", "paul", "rosa",
         "simon", "tina", "ulrich", "vera", "yusuf", "zoe", "info", "sales", "support", "billing", "hr",
         "office", "admin", "noreply", "newsletter", "jobs"]
FREEMAIL = ["gmail.com", "googlemail.com", "outlook.com", "hotmail.com", "yahoo.com", "gmx.de", "web.de",
            "t-online.de", "orange.fr", "free.fr", "mail.ru", "yandex.ru", "qq.com", "163.com", "icloud.com",
            "protonmail.com", "comcast.net", "aol.com", "libero.it", "seznam.cz"]
WORDS = ["blue", "river", "stone", "north", "data", "cloud", "smart", "green", "alpha", "metro", "prime",
         "delta", "nova", "solid", "bright", "iron", "silver", "ocean", "rapid", "urban", "vista", "peak",
         "logic", "craft", "media", "tech", "group", "systems", "labs", "works", "trade", "bau", "haus"]
CORP_TLDS = ["com", "net", "org", "de", "fr", "nl", "co.uk", "io", "it", "es", "ch", "at", "se", "pl"]
SPAM_TLDS = ["xyz", "top", "icu", "click", "ru", "cn", "info", "biz", "online", "site", "buzz", "shop", "live"]
ISPS = ["dyn.telefonica.example", "dynamic.kabel.example", "pool.isp.example", "adsl.vnpt.example",
        "broadband.hinet.example", "cust.tele2.example", "static.ovh.example", "clients.your-server.example",
        "rev.poneytelecom.example", "dsl.viettel.example", "fibertel.example", "cable.virginm.example"]
SPAM_SUBJECTS = ["You have won!!!", "Invoice overdue", "URGENT: Payment", "Your account is suspended",
                 "Cheap meds online", "Re: Business proposal", "Congratulations winner", "Bitcoin opportunity"]
CIPHERS = [("TLSv1.3", "TLS_AES_256_GCM_SHA384", "256/256"), ("TLSv1.3", "TLS_AES_128_GCM_SHA256", "128/128"),
           ("TLSv1.2", "ECDHE-RSA-AES256-GCM-SHA384", "256/256"), ("TLSv1.2", "ECDHE-RSA-AES128-GCM-SHA256", "128/128")]
REMOTE_MX = [("gmail-smtp-in.l.google.com", "142.250.27."), ("alt1.gmail-smtp-in.l.google.com", "142.250.153."),
             ("example-com.mail.protection.outlook.com", "52.101.68."), ("mx-eu.mail.am0.yahoodns.net", "188.125.72."),
             ("mx00.emig.gmx.net", "212.227.15."), ("mx01.t-online.de", "194.25.134."),
             ("mx1.mail.ovh.net", "188.165.36."), ("mxbiz1.qq.com", "183.3.225."),
             ("smtp-in.orange.fr", "80.12.242."), ("mx.yandex.ru", "77.88.21.")]
B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
SM60 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwx"


def fmt_delay(x):
    # Postfix prints at most 2 decimals (delay_logging_resolution_limit=2), trailing zeros dropped
    if x >= 10:
        return str(int(x))
    s = "%.2f" % x
    s = s.rstrip("0").rstrip(".")
    return s or "0"


class Gen:
    def __init__(self, args):
        self.a = args
        self.rng = random.Random(args.seed)
        r = self.rng
        self.t = float(args.start_epoch)
        self.rate = args.rate
        self._ts_sec = None
        self._ts_str = ""
        # pids
        self.pid_ctr = 1000
        self.pf_pids = {}
        for h in MTA_HOSTS["postfix"]:
            self.pf_pids[h] = {
                "qmgr": r.randrange(800, 2000), "postscreen": r.randrange(2000, 3000), "anvil": r.randrange(3000, 4000),
                "smtpd": [r.randrange(10000, 60000) for _ in range(16)],
                "submission/smtpd": [r.randrange(10000, 60000) for _ in range(4)],
                "cleanup": [r.randrange(10000, 60000) for _ in range(6)],
                "smtp": [r.randrange(10000, 60000) for _ in range(8)],
                "lmtp": [r.randrange(10000, 60000) for _ in range(4)],
                "local": [r.randrange(10000, 60000) for _ in range(2)],
                "bounce": [r.randrange(10000, 60000) for _ in range(2)],
            }
        self.greylist_pid = r.randrange(500, 900)
        self.busy = set()
        self.busy_cur = []
        self.sm_seq = 0
        # address pools
        self.local_users = {}
        for h, (_, doms, _) in HOST_LOCAL.items():
            for d in doms:
                self.local_users[d] = ["%s%s" % (r.choice(NAMES), r.choice(["", ".", "_"]) + r.choice(NAMES) if r.random() < 0.5 else "")
                                       for _ in range(300)]
        self.corp_domains = ["%s%s.%s" % (r.choice(WORDS), r.choice(WORDS), r.choice(CORP_TLDS)) for _ in range(400)]
        self.legit_hosts = [self._mk_legit_host() for _ in range(3000)]
        self.spam_hosts = [self._mk_spam_host() for _ in range(20000)]
        self.clients = [self._mk_client() for _ in range(300)]
        # counters
        self.lines = 0
        self.bytes = 0
        self.by_mta = {}
        self.by_prog = {}
        self.rej_kind = {}
        self.rej_reason = {}
        self.rej_code = {}
        self.rej_host = {}
        self.events = {"postfix_qmgr_removed": 0, "postfix_smtpd_connect": 0, "postfix_cleanup_message_id": 0}
        # reject-share controller
        self.planned_lines = 0
        self.planned_rejects = 0
        mix = args.mix_weights
        self.mtas = [m for m in ("postfix", "sendmail", "exim") if mix.get(m, 0) > 0]
        self.mta_w = [mix[m] for m in self.mtas]
        self.mta_w_norm = [w / sum(self.mta_w) for w in self.mta_w]
        self.planned_by_mta = {m: 0 for m in ("postfix", "sendmail", "exim")}
        allowed = args.reject_kinds
        self.kind_choices = {}
        for m, lst in KIND_WEIGHTS.items():
            ks = [(k, w) for k, w in lst if allowed is None or k in allowed]
            if ks:
                self.kind_choices[m] = ([k for k, _ in ks], [w for _, w in ks])
        rm = [m for m in self.mtas if m in self.kind_choices]
        if not rm:  # reject kinds restricted to an MTA outside the mix: use those MTAs for reject sessions
            rm = list(self.kind_choices)
        self.rej_mtas = rm
        self.rej_mta_w = [mix.get(m, 0) or 1.0 for m in rm]

    # ------------------------------------------------------------------ pools
    def ip(self):
        r = self.rng
        return "%d.%d.%d.%d" % (r.choice(FIRST_OCTETS), r.randrange(256), r.randrange(256), r.randrange(1, 255))

    def _mk_legit_host(self):
        r = self.rng
        x = r.random()
        n = r.randrange(1, 250)
        if x < 0.30:
            return ("mail-%s-f%d.google.com" % (r.choice(["wr1", "ej1", "lf1", "pj1", "qt1", "yb1", "ed1", "wm1", "io1", "oi1"]), n),
                    "209.85.%d.%d" % (r.randrange(128, 256), n))
        if x < 0.50:
            return ("mail-%son%d.outbound.protection.outlook.com" % (r.choice(["am6eur05", "db8eur05", "vi1eur04", "he1eur04", "dm6nam12", "bn8nam12"]), 2000 + r.randrange(200)),
                    "40.107.%d.%d" % (r.randrange(256), n))
        if x < 0.60:
            return ("a%d-%d.smtp-out.amazonses.com" % (r.randrange(8, 48), n), "54.240.%d.%d" % (r.randrange(256), n))
        d = r.choice(self.corp_domains)
        return ("%s.%s" % (r.choice(["mail", "mx", "smtp", "mx1", "mail2", "out"]), d), self.ip())

    def _mk_spam_host(self):
        r = self.rng
        ip = self.ip()
        a, b, c, d = ip.split(".")
        x = r.random()
        if x < 0.45:
            name = "unknown"
        elif x < 0.75:
            name = r.choice(["%s-%s-%s-%s.%s", "host-%s-%s-%s-%s.%s", "%s.%s.%s.%s.%s", "ip%s-%s-%s-%s.%s"]) % (a, b, c, d, r.choice(ISPS)) \
                if r.random() < 0.7 else "static.%s.%s.%s.%s.%s" % (d, c, b, a, r.choice(ISPS))
        else:
            name = "%s.%s" % ("".join(r.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(r.randrange(5, 11))), r.choice(SPAM_TLDS))
        helo = r.choice([name if name != "unknown" else "[%s]" % ip, "User", "localhost", "WIN-%s" % "".join(r.choice(B62[:36]) for _ in range(10)),
                         "ylmf-pc", "%s.%s" % ("".join(r.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(7)), r.choice(SPAM_TLDS))])
        return (name, ip, helo)

    def _mk_client(self):
        r = self.rng
        ip = self.ip()
        return ("%s.%s" % (r.choice(["dsl", "cpe", "home", "office", "vpn"]) + str(r.randrange(1, 999)), r.choice(ISPS)), ip)

    def extaddr(self):
        r = self.rng
        if r.random() < 0.5:
            dom = r.choice(FREEMAIL)
        else:
            dom = r.choice(self.corp_domains)
        x = r.random()
        if x < 0.4:
            u = r.choice(NAMES) + r.choice((".", "_", "")) + r.choice(NAMES)
        elif x < 0.6:
            u = r.choice(NAMES) + str(r.randrange(100))
        else:
            u = r.choice(NAMES)
        return "%s@%s" % (u, dom)

    def spamaddr(self):
        r = self.rng
        u = "".join(r.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(r.randrange(4, 12)))
        d = "".join(r.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(r.randrange(5, 11)))
        return "%s@%s.%s" % (u, d, r.choice(SPAM_TLDS))

    def localaddr(self, host):
        r = self.rng
        d = r.choice(HOST_LOCAL[host][1])
        return "%s@%s" % (r.choice(self.local_users[d]), d)

    def badlocaladdr(self, host):
        r = self.rng
        d = r.choice(HOST_LOCAL[host][1])
        u = r.choice(["%s%d" % (r.choice(NAMES), r.randrange(1000)), "".join(r.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(r.randrange(4, 9))),
                      "webmaster", "postmaster1", "test", "contact", "marketing"])
        return "%s@%s" % (u, d)

    def msgid(self, dom):
        r = self.rng
        x = r.random()
        if x < 0.3:
            return "CA%s@mail.gmail.com" % "".join(r.choice(B62) for _ in range(40))
        if x < 0.6:
            return "%s.%s@%s" % (time.strftime("%Y%m%d%H%M%S", time.gmtime(self.t)), "".join(r.choice(B62[:36]) for _ in range(10)), dom)
        return "%08x-%04x-%04x-%04x-%012x@%s" % (r.getrandbits(32), r.getrandbits(16), r.getrandbits(16), r.getrandbits(16), r.getrandbits(48), dom)

    def pf_qid(self):
        return "%X" % self.rng.getrandbits(self.rng.choice((36, 40, 44)))

    def sm_qid(self, pid):
        tm = time.gmtime(self.t)
        self.sm_seq = (self.sm_seq + 1) % 3600
        return "%s%s%s%s%s%s%s%s%06d" % (SM60[tm.tm_year % 60], SM60[tm.tm_mon - 1], SM60[tm.tm_mday], SM60[tm.tm_hour],
                                         SM60[tm.tm_min], SM60[tm.tm_sec], SM60[self.sm_seq // 60], SM60[self.sm_seq % 60], pid % 1000000)

    def ex_id(self, pid):
        r = self.rng
        t = int(self.t)
        s = ""
        for _ in range(6):
            s = B62[t % 62] + s
            t //= 62
        p = ""
        for _ in range(6):
            p = B62[pid % 62] + p
            pid //= 62
        return "%s-%s-%s" % (s, p, B62[r.randrange(62)] + B62[r.randrange(62)])

    def newpid(self):
        self.pid_ctr += self.rng.randrange(1, 40)
        if self.pid_ctr > 4000000:
            self.pid_ctr = 1000
        return self.pid_ctr

    def pf_pid(self, host, svc):
        lst = self.pf_pids[host][svc]
        if svc in ("smtpd", "submission/smtpd"):
            # one smtpd process serves one connection at a time: avoid pids of unfinished sessions
            for _ in range(20):
                i = self.rng.randrange(len(lst))
                if (host, lst[i]) not in self.busy:
                    break
            if self.rng.random() < 0.01:  # process exited (max_use) and a new one was forked
                lst[i] = self.rng.randrange(10000, 99999)
            self.busy.add((host, lst[i]))
            self.busy_cur.append((host, lst[i]))
            return lst[i]
        return lst[self.rng.randrange(len(lst))]

    # ------------------------------------------------------------ timestamps
    def ts(self):
        s = int(self.t)
        if s != self._ts_sec:
            tm = time.gmtime(s)
            self._ts_sec = s
            self._ts_str = "%s %2d %02d:%02d:%02d" % (MONTHS[tm.tm_mon - 1], tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec)
        return self._ts_str

    # ---------------------------------------------------------------- postfix
    def pf_session(self, host, reject_kind=None, k=1):
        r = self.rng
        L = []
        fqdn, doms, lip = HOST_LOCAL[host]

        def add(svc, msg, kind=None, code=None, pid=None):
            L.append((host, "postfix/" + svc, pid if pid is not None else self.pf_pid(host, svc) if svc not in ("qmgr", "postscreen", "anvil") else self.pf_pids[host][svc], msg, kind, code))

        if reject_kind is None:
            x = r.random()
            if x < 0.47:
                self._pf_inbound(host, add)
            elif x < 0.67:
                self._pf_outbound(host, add)
            elif x < 0.77:
                self._pf_postscreen_noise(host, add)
            elif x < 0.85:
                self._pf_sasl_fail(host, add)
            elif x < 0.95:
                self._pf_lost(host, add)
            else:
                self._pf_misc(host, add)
            return L
        if reject_kind == "pf_postscreen_rbl":
            name, ip, helo = r.choice(self.spam_hosts)
            port = r.randrange(1024, 65535)
            add("postscreen", "CONNECT from [%s]:%d to [%s]:25" % (ip, port, lip))
            add("postscreen", "DNSBL rank %d for [%s]:%d" % (r.randrange(3, 12), ip, port))
            add("postscreen", "NOQUEUE: reject: RCPT from [%s]:%d: 550 5.7.1 Service unavailable; client [%s] blocked using zen.spamhaus.org; from=<%s>, to=<%s>, proto=ESMTP, helo=<%s>"
                % (ip, port, ip, self.spamaddr(), self.localaddr(host), helo), reject_kind, "550")
            add("postscreen", "DISCONNECT [%s]:%d" % (ip, port))
            return L
        if reject_kind in ("pf_unknown_user_queued", "pf_cleanup_header", "pf_milter_reject"):
            self._pf_inbound(host, add, reject_kind)
            return L
        # smtpd / submission smtpd NOQUEUE rejects
        svc = "submission/smtpd" if reject_kind == "pf_submission_relay" else "smtpd"
        pid = self.pf_pid(host, svc)
        name, ip, helo = r.choice(self.spam_hosts) if r.random() < 0.85 else (r.choice(self.legit_hosts) + ("",))
        if not helo:
            helo = name
        if svc == "smtpd" and r.random() < 0.5:
            port = r.randrange(1024, 65535)
            add("postscreen", "CONNECT from [%s]:%d to [%s]:25" % (ip, port, lip))
            add("postscreen", "PASS %s [%s]:%d" % (r.choice(["NEW", "OLD", "OLD"]), ip, port))
        add(svc, "connect from %s[%s]" % (name, ip), pid=pid)
        if name == "unknown" and r.random() < 0.3:
            fake = "%s.%s" % ("".join(r.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(6)), r.choice(SPAM_TLDS))
            add(svc, "warning: hostname %s does not resolve to address %s: Name or service not known" % (fake, ip), pid=pid)
        sender = self.spamaddr() if r.random() < 0.8 else self.extaddr()
        if reject_kind == "pf_helo":
            helo = r.choice(["User", "localhost", "ylmf-pc", "WIN-%d" % r.randrange(10 ** 6), "desktop"])
        for _ in range(k):
            if reject_kind in ("pf_relay_denied", "pf_submission_relay"):
                rc = self.extaddr()
                msg = "554 5.7.1 <%s>: Relay access denied" % rc
                code = "554"
            elif reject_kind == "pf_sender_domain":
                sender = self.spamaddr()
                rc = self.localaddr(host)
                msg = "450 4.1.8 <%s>: Sender address rejected: Domain not found" % sender
                code = "450"
            elif reject_kind == "pf_unknown_user":
                rc = self.badlocaladdr(host)
                msg = "550 5.1.1 <%s>: Recipient address rejected: User unknown in local recipient table" % rc
                code = "550"
            elif reject_kind == "pf_rbl":
                rc = self.localaddr(host)
                if r.random() < 0.8:
                    msg = "554 5.7.1 Service unavailable; Client host [%s] blocked using zen.spamhaus.org; https://www.spamhaus.org/query/ip/%s" % (ip, ip)
                else:
                    msg = "554 5.7.1 Service unavailable; Client host [%s] blocked using bl.spamcop.net; Blocked - see https://www.spamcop.net/bl.shtml?%s" % (ip, ip)
                code = "554"
            elif reject_kind == "pf_helo":
                rc = self.localaddr(host)
                msg = "504 5.5.2 <%s>: Helo command rejected: need fully-qualified hostname" % helo
                code = "504"
            else:
                raise ValueError(reject_kind)
            add(svc, "NOQUEUE: reject: RCPT from %s[%s]: %s; from=<%s> to=<%s> proto=ESMTP helo=<%s>" % (name, ip, msg, sender, rc, helo),
                reject_kind, code, pid=pid)
        if r.random() < 0.5:
            add(svc, "lost connection after RCPT from %s[%s]" % (name, ip), pid=pid)
            add(svc, "disconnect from %s[%s] ehlo=1 mail=1 rcpt=0/%d commands=2/%d" % (name, ip, k, k + 2), pid=pid)
        else:
            add(svc, "disconnect from %s[%s] ehlo=1 mail=1 rcpt=0/%d %squit=1 commands=3/%d" % (name, ip, k, "rset=1 " if r.random() < 0.3 else "", k + 3), pid=pid)
        return L

    def _pf_inbound(self, host, add, reject_kind=None):
        r = self.rng
        fqdn, doms, lip = HOST_LOCAL[host]
        if reject_kind is None:
            name, ip = r.choice(self.legit_hosts)
            helo = name
            sender = self.extaddr()
        else:
            if r.random() < 0.5:
                name, ip = r.choice(self.legit_hosts)
                helo = name
                sender = self.extaddr()
            else:
                name, ip, helo = r.choice(self.spam_hosts)
                sender = self.spamaddr()
        pid = self.pf_pid(host, "smtpd")
        qid = self.pf_qid()
        if r.random() < 0.6:
            port = r.randrange(1024, 65535)
            add("postscreen", "CONNECT from [%s]:%d to [%s]:25" % (ip, port, lip))
            add("postscreen", "PASS %s [%s]:%d" % ("OLD" if r.random() < 0.8 else "NEW", ip, port))
        add("smtpd", "connect from %s[%s]" % (name, ip), pid=pid)
        tls = r.random() < 0.6
        if tls:
            v, c, b = r.choice(CIPHERS)
            add("smtpd", "Anonymous TLS connection established from %s[%s]: %s with cipher %s (%s bits)" % (name, ip, v, c, b), pid=pid)
        add("smtpd", "%s: client=%s[%s]" % (qid, name, ip), pid=pid)
        rcpts = [self.localaddr(host)]
        if r.random() < 0.15:
            rcpts.append(self.localaddr(host))
        nrej = 0
        if reject_kind == "pf_unknown_user_queued":
            bad = self.badlocaladdr(host)
            add("smtpd", "%s: reject: RCPT from %s[%s]: 550 5.1.1 <%s>: Recipient address rejected: User unknown in virtual mailbox table; from=<%s> to=<%s> proto=ESMTP helo=<%s>"
                % (qid, name, ip, bad, sender, bad, helo), reject_kind, "550", pid=pid)
            nrej = 1
        cpid = self.pf_pid(host, "cleanup")
        if reject_kind == "pf_cleanup_header":
            if r.random() < 0.5:
                add("cleanup", "%s: message-id=<%s>" % (qid, self.msgid(sender.split("@")[1])), pid=cpid)
            add("cleanup", "%s: reject: header Subject: %s from %s[%s]; from=<%s> to=<%s> proto=ESMTP helo=<%s>: 5.7.1 Message content rejected"
                % (qid, r.choice(SPAM_SUBJECTS), name, ip, sender, rcpts[0], helo), reject_kind, "550", pid=cpid)
            add("smtpd", "disconnect from %s[%s] ehlo=%d %smail=1 rcpt=%d data=0/1 quit=1 commands=%d/%d"
                % (name, ip, 2 if tls else 1, "starttls=1 " if tls else "", len(rcpts), 4 + len(rcpts) + (2 if tls else 0), 5 + len(rcpts) + (2 if tls else 0)), pid=pid)
            return
        add("cleanup", "%s: message-id=<%s>" % (qid, self.msgid(sender.split("@")[1])), pid=cpid)
        if reject_kind == "pf_milter_reject":
            add("cleanup", "%s: milter-reject: END-OF-MESSAGE from %s[%s]: 5.7.1 Spam message rejected; from=<%s> to=<%s> proto=ESMTP helo=<%s>"
                % (qid, name, ip, sender, rcpts[0], helo), reject_kind, "554", pid=cpid)
            add("smtpd", "disconnect from %s[%s] ehlo=%d %smail=1 rcpt=%d data=0/1 quit=1 commands=%d/%d"
                % (name, ip, 2 if tls else 1, "starttls=1 " if tls else "", len(rcpts), 4 + len(rcpts) + (2 if tls else 0), 5 + len(rcpts) + (2 if tls else 0)), pid=pid)
            return
        size = int(r.lognormvariate(9.5, 1.2)) + 600
        add("qmgr", "%s: from=<%s>, size=%d, nrcpt=%d (queue active)" % (qid, sender, size, len(rcpts)))
        nr = len(rcpts) + nrej
        add("smtpd", "disconnect from %s[%s] ehlo=%d %smail=1 rcpt=%s data=1 quit=1 commands=%s"
            % (name, ip, 2 if tls else 1, "starttls=1 " if tls else "", ("%d/%d" % (len(rcpts), nr)) if nrej else str(nr),
               ("%d/%d" % (4 + len(rcpts) + (2 if tls else 0), 4 + nr + (2 if tls else 0))) if nrej else str(4 + nr + (2 if tls else 0))), pid=pid)
        for rc in rcpts:
            d1, d2, d3, d4 = r.expovariate(8), r.expovariate(50), r.expovariate(100), r.expovariate(20)
            delays = "delay=%s, delays=%s/%s/%s/%s" % (fmt_delay(d1 + d2 + d3 + d4), fmt_delay(d1), fmt_delay(d2), fmt_delay(d3), fmt_delay(d4))
            if r.random() < 0.7:
                add("lmtp", "%s: to=<%s>, relay=%s[private/dovecot-lmtp], %s, dsn=2.0.0, status=sent (250 2.0.0 <%s> %s Saved)"
                    % (qid, rc, fqdn, delays, rc, "".join(r.choice(B62) for _ in range(22))))
            else:
                add("local", "%s: to=<%s>, relay=local, %s, dsn=2.0.0, status=sent (delivered to mailbox)" % (qid, rc, delays))
        add("qmgr", "%s: removed" % qid)

    def _pf_outbound(self, host, add):
        r = self.rng
        fqdn, doms, lip = HOST_LOCAL[host]
        cname, cip = r.choice(self.clients)
        user = self.localaddr(host)
        pid = self.pf_pid(host, "submission/smtpd")
        qid = self.pf_qid()
        add("submission/smtpd", "connect from %s[%s]" % (cname, cip), pid=pid)
        v, c, b = r.choice(CIPHERS)
        add("submission/smtpd", "Anonymous TLS connection established from %s[%s]: %s with cipher %s (%s bits)" % (cname, cip, v, c, b), pid=pid)
        add("submission/smtpd", "%s: client=%s[%s], sasl_method=%s, sasl_username=%s" % (qid, cname, cip, r.choice(["PLAIN", "PLAIN", "LOGIN"]), user), pid=pid)
        add("cleanup", "%s: message-id=<%s>" % (qid, self.msgid(user.split("@")[1])))
        rcpt = self.extaddr()
        size = int(r.lognormvariate(9.0, 1.3)) + 500
        add("qmgr", "%s: from=<%s>, size=%d, nrcpt=1 (queue active)" % (qid, user, size))
        add("submission/smtpd", "disconnect from %s[%s] ehlo=2 starttls=1 auth=1 mail=1 rcpt=1 data=1 quit=1 commands=8" % (cname, cip), pid=pid)
        mx, pfx = r.choice(REMOTE_MX)
        mip = pfx + str(r.randrange(1, 255))
        spid = self.pf_pid(host, "smtp")
        x = r.random()
        d1, d2, d3, d4 = r.expovariate(5), r.expovariate(50), r.expovariate(4), r.expovariate(3)
        delays = "delay=%s, delays=%s/%s/%s/%s" % (fmt_delay(d1 + d2 + d3 + d4), fmt_delay(d1), fmt_delay(d2), fmt_delay(d3), fmt_delay(d4))
        if x < 0.85:
            v, c, b = r.choice(CIPHERS)
            add("smtp", "%s TLS connection established to %s[%s]:25: %s with cipher %s (%s bits)" % (r.choice(["Trusted", "Verified", "Untrusted"]), mx, mip, v, c, b), pid=spid)
            add("smtp", "%s: to=<%s>, relay=%s[%s]:25, %s, dsn=2.0.0, status=sent (250 2.0.0 OK  %d %s - gsmtp)"
                % (qid, rcpt, mx, mip, delays, int(self.t), "".join(r.choice(B62[:36]).lower() for _ in range(12))), pid=spid)
            add("qmgr", "%s: removed" % qid)
        elif x < 0.93:
            if r.random() < 0.5:
                add("smtp", "connect to %s[%s]:25: Connection timed out" % (mx, mip), pid=spid)
            add("smtp", "%s: to=<%s>, relay=none, delay=%s, delays=%s/%s/30/0, dsn=4.4.1, status=deferred (connect to %s[%s]:25: Connection timed out)"
                % (qid, rcpt, fmt_delay(30 + d1 + d2), fmt_delay(d1), fmt_delay(d2), mx, mip), pid=spid)
        else:
            add("smtp", "%s: to=<%s>, relay=%s[%s]:25, %s, dsn=5.1.1, status=bounced (host %s[%s] said: 550 5.1.1 <%s>: Recipient address rejected: User unknown in virtual mailbox table (in reply to RCPT TO command))"
                % (qid, rcpt, mx, mip, delays, mx, mip, rcpt), pid=spid)
            bq = self.pf_qid()
            add("cleanup", "%s: message-id=<%s@%s>" % (bq, time.strftime("%Y%m%d%H%M%S", time.gmtime(self.t)) + "." + bq, fqdn))
            add("bounce", "%s: sender non-delivery notification: %s" % (qid, bq))
            add("qmgr", "%s: from=<>, size=%d, nrcpt=1 (queue active)" % (bq, size + 2500))
            add("qmgr", "%s: removed" % qid)
            add("lmtp", "%s: to=<%s>, relay=%s[private/dovecot-lmtp], delay=0.02, delays=0/0/0/0.02, dsn=2.0.0, status=sent (250 2.0.0 <%s> %s Saved)"
                % (bq, user, fqdn, user, "".join(r.choice(B62) for _ in range(22))))
            add("qmgr", "%s: removed" % bq)

    def _pf_postscreen_noise(self, host, add):
        r = self.rng
        lip = HOST_LOCAL[host][2]
        name, ip, helo = r.choice(self.spam_hosts)
        port = r.randrange(1024, 65535)
        add("postscreen", "CONNECT from [%s]:%d to [%s]:25" % (ip, port, lip))
        x = r.random()
        if x < 0.4:
            add("postscreen", "PREGREET %d after %s from [%s]:%d: EHLO %s\\r\\n" % (len(helo) + 7, fmt_delay(r.expovariate(5)), ip, port, helo))
        elif x < 0.7:
            add("postscreen", "HANGUP after %s from [%s]:%d in tests after SMTP handshake" % (fmt_delay(r.expovariate(1)), ip, port))
        else:
            add("postscreen", "DNSBL rank %d for [%s]:%d" % (r.randrange(1, 3), ip, port))
        add("postscreen", "DISCONNECT [%s]:%d" % (ip, port))

    def _pf_sasl_fail(self, host, add):
        r = self.rng
        name, ip, helo = r.choice(self.spam_hosts)
        svc = "submission/smtpd" if r.random() < 0.5 else "smtpd"
        pid = self.pf_pid(host, svc)
        add(svc, "connect from %s[%s]" % (name, ip), pid=pid)
        add(svc, "warning: %s[%s]: SASL %s authentication failed: %s" % (name, ip, r.choice(["LOGIN", "PLAIN"]), r.choice(["UGFzc3dvcmQ6", "authentication failure", "VXNlcm5hbWU6"])), pid=pid)
        add(svc, "lost connection after AUTH from %s[%s]" % (name, ip), pid=pid)
        add(svc, "disconnect from %s[%s] ehlo=1 auth=0/1 commands=1/2" % (name, ip), pid=pid)

    def _pf_lost(self, host, add):
        r = self.rng
        name, ip, helo = r.choice(self.spam_hosts)
        pid = self.pf_pid(host, "smtpd")
        add("smtpd", "connect from %s[%s]" % (name, ip), pid=pid)
        stage = r.choice(["CONNECT", "EHLO", "STARTTLS", "UNKNOWN", "DATA"])
        if stage == "STARTTLS":
            add("smtpd", "SSL_accept error from %s[%s]: lost connection" % (name, ip), pid=pid)
        add("smtpd", "lost connection after %s from %s[%s]" % (stage, name, ip), pid=pid)
        add("smtpd", "disconnect from %s[%s] %scommands=0/%d" % (name, ip, "ehlo=1 " if stage != "CONNECT" else "", 1 if stage != "CONNECT" else 0), pid=pid)

    def _pf_misc(self, host, add):
        r = self.rng
        name, ip, helo = r.choice(self.spam_hosts)
        x = r.random()
        if x < 0.4:
            add("anvil", "statistics: max connection rate %d/60s for (smtp:%s) at %s" % (r.randrange(1, 20), ip, self.ts()))
        elif x < 0.7:
            pid = self.pf_pid(host, "smtpd")
            add("smtpd", "connect from %s[%s]" % (name, ip), pid=pid)
            add("smtpd", "warning: non-SMTP command from %s[%s]: GET / HTTP/1.1" % (name, ip), pid=pid)
            add("smtpd", "disconnect from %s[%s] unknown=0/1 commands=0/1" % (name, ip), pid=pid)
        else:
            pid = self.pf_pid(host, "smtpd")
            add("smtpd", "warning: %s: hostname %s verification failed: Name or service not known" % (ip, name if name != "unknown" else "host.invalid"), pid=pid)

    # --------------------------------------------------------------- sendmail
    def sm_session(self, host, reject_kind=None, k=1):
        r = self.rng
        L = []
        fqdn, doms, lip = HOST_LOCAL[host]
        pid = self.newpid()
        qid = self.sm_qid(pid)

        def add(msg, kind=None, code=None, prog="sm-mta", p=None):
            L.append((host, prog, p if p is not None else pid, msg, kind, code))

        if reject_kind is None:
            x = r.random()
            if x < 0.45:
                name, ip = r.choice(self.legit_hosts)
                sender = self.extaddr()
                rcpt = self.localaddr(host)
                if r.random() < 0.5:
                    v, c, b = r.choice(CIPHERS)
                    add("STARTTLS=server, relay=%s [%s], version=%s, verify=NO, cipher=%s, bits=%s" % (name, ip, v, c, b))
                size = int(r.lognormvariate(9.5, 1.2)) + 600
                add("%s: from=<%s>, size=%d, class=0, nrcpts=1, msgid=<%s>, bodytype=8BITMIME, proto=ESMTP%s, daemon=MTA-v4, relay=%s [%s]"
                    % (qid, sender, size, self.msgid(sender.split("@")[1]), "S" if r.random() < 0.5 else "", name, ip))
                if r.random() < 0.3:
                    add("%s: addr %s[%s] from <%s> to <%s> autowhitelisted for 24:00:00" % (qid, name, ip, sender, rcpt), prog="milter-greylist", p=self.greylist_pid)
                dpid = self.newpid()
                add("%s: to=<%s>, delay=00:00:0%d, xdelay=00:00:00, mailer=local, pri=%d, dsn=2.0.0, stat=Sent" % (qid, rcpt, r.randrange(3), 30000 + size), p=dpid)
            elif x < 0.70:
                user = self.localaddr(host).split("@")[0]
                rcpt = self.extaddr()
                size = int(r.lognormvariate(9.0, 1.3)) + 500
                mid = self.msgid(fqdn)
                add("%s: from=%s, size=%d, class=0, nrcpts=1, msgid=<%s>, relay=%s@localhost" % (qid, user, size, mid, user), prog="sendmail")
                qid2 = self.sm_qid(self.newpid())
                add("%s: to=%s, ctladdr=%s (%d/%d), delay=00:00:00, xdelay=00:00:00, mailer=relay, pri=%d, relay=[127.0.0.1] [127.0.0.1], dsn=2.0.0, stat=Sent (%s Message accepted for delivery)"
                    % (qid, rcpt, user, 1000 + len(user), 1000 + len(user), 30000 + size, qid2), prog="sendmail")
                add("%s: from=<%s@%s>, size=%d, class=0, nrcpts=1, msgid=<%s>, proto=ESMTP, daemon=MTA-v4, relay=localhost [127.0.0.1]"
                    % (qid2, user, doms[0], size + 300, mid))
                mx, pfx = r.choice(REMOTE_MX)
                mip = pfx + str(r.randrange(1, 255))
                dpid = self.newpid()
                y = r.random()
                if y < 0.85:
                    add("%s: to=<%s>, ctladdr=<%s@%s> (%d/%d), delay=00:00:0%d, xdelay=00:00:0%d, mailer=esmtp, pri=%d, relay=%s. [%s], dsn=2.0.0, stat=Sent (OK %d %s - gsmtp)"
                        % (qid2, rcpt, user, doms[0], 1000 + len(user), 1000 + len(user), r.randrange(1, 5), r.randrange(1, 3), 120000 + size, mx, mip, int(self.t), "".join(r.choice(B62[:36]).lower() for _ in range(10))), p=dpid)
                elif y < 0.93:
                    add("%s: to=<%s>, ctladdr=<%s@%s> (%d/%d), delay=00:05:0%d, xdelay=00:05:00, mailer=esmtp, pri=%d, relay=%s., dsn=4.0.0, stat=Deferred: Connection timed out with %s."
                        % (qid2, rcpt, user, doms[0], 1000 + len(user), 1000 + len(user), r.randrange(10), 120000 + size, mx, mx), p=dpid)
                else:
                    qid3 = self.sm_qid(dpid)
                    add("%s: to=<%s>, ctladdr=<%s@%s> (%d/%d), delay=00:00:02, xdelay=00:00:01, mailer=esmtp, pri=%d, relay=%s. [%s], dsn=5.1.1, stat=User unknown"
                        % (qid2, rcpt, user, doms[0], 1000 + len(user), 1000 + len(user), 120000 + size, mx, mip), p=dpid)
                    add("%s: %s: DSN: User unknown" % (qid2, qid3), p=dpid)
                    add("%s: to=<%s@%s>, delay=00:00:00, xdelay=00:00:00, mailer=local, pri=%d, dsn=2.0.0, stat=Sent" % (qid3, user, doms[0], 30000 + size), p=dpid)
            elif x < 0.85:
                name, ip, helo = r.choice(self.spam_hosts)
                rel = ("%s [%s]" % (name, ip)) if name != "unknown" else "[%s]" % ip
                add("%s: %s did not issue MAIL/EXPN/VRFY/ETRN during connection to MTA-v4" % (qid, rel))
            elif x < 0.95:
                name, ip, helo = r.choice(self.spam_hosts)
                rel = ("%s [%s]" % (name, ip)) if name != "unknown" else "[%s]" % ip
                add("%s: lost input channel from %s to MTA-v4 after %s" % (qid, rel, r.choice(["rcpt", "mail", "data", "starttls"])))
            else:
                name, ip, helo = r.choice(self.spam_hosts)
                rel = ("%s [%s]" % (name, ip)) if name != "unknown" else "[%s]" % ip
                y = r.random()
                if y < 0.5:
                    add("%s: %s: possible SMTP attack: command=AUTH, count=%d" % (qid, rel, r.randrange(3, 20)))
                    add("%s: %s did not issue MAIL/EXPN/VRFY/ETRN during connection to MTA-v4" % (qid, rel))
                elif y < 0.8:
                    add("STARTTLS=server, error: accept failed=-1, reason=no shared cipher, SSL_error=1, errno=0, retry=-1, relay=%s" % rel)
                else:
                    add("reloading config file \"/etc/mail/greylist.conf\"", prog="milter-greylist", p=self.greylist_pid)
            return L

        name, ip, helo = r.choice(self.spam_hosts)
        rel = ("%s [%s]" % (name, ip)) if name != "unknown" else "[%s]" % ip
        if name != "unknown" and r.random() < 0.3:
            rel += " (may be forged)"
        sender = self.spamaddr() if r.random() < 0.8 else self.extaddr()
        nrc = 0
        if reject_kind == "sm_rbl":
            add("%s: ruleset=check_relay, arg1=%s, arg2=%s, relay=%s, reject=553 5.3.0 Rejected - see http://www.spamhaus.org/query/ip/%s"
                % (qid, name if name != "unknown" else "[%s]" % ip, ip, rel, ip), reject_kind, "553")
            if r.random() < 0.6:
                add("%s: %s did not issue MAIL/EXPN/VRFY/ETRN during connection to MTA-v4" % (qid, rel))
            return L
        if reject_kind == "sm_sender_domain":
            sender = self.spamaddr()
            if r.random() < 0.7:
                add("%s: ruleset=check_mail, arg1=<%s>, relay=%s, reject=553 5.1.8 <%s>... Domain of sender address %s does not exist"
                    % (qid, sender, rel, sender, sender), reject_kind, "553")
            else:
                add("%s: ruleset=check_mail, arg1=<%s>, relay=%s, reject=451 4.1.8 Domain of sender address %s does not resolve"
                    % (qid, sender, rel, sender), reject_kind, "451")
            add("%s: lost input channel from %s to MTA-v4 after mail" % (qid, rel))
            return L
        for _ in range(k):
            if reject_kind == "sm_relay_denied":
                rc = self.extaddr()
                add("%s: ruleset=check_rcpt, arg1=<%s>, relay=%s, reject=550 5.7.1 <%s>... Relaying denied. Proper authentication required."
                    % (qid, rc, rel, rc), reject_kind, "550")
            elif reject_kind == "sm_unknown_user":
                rc = self.badlocaladdr(host)
                add("%s: <%s>... User unknown" % (qid, rc), reject_kind, "550")
            elif reject_kind == "sm_greylist":
                rc = self.localaddr(host)
                delay = r.choice(["00:30:00", "00:15:00", "00:05:00"])
                add("%s: addr %s[%s] from <%s> to <%s> delayed for %s (ACL %d)" % (qid, name if name != "unknown" else "", ip, sender, rc, delay, r.randrange(100, 300)),
                    prog="milter-greylist", p=self.greylist_pid)
                add("%s: Milter: to=<%s>, reject=451 4.7.1 Greylisting in action, please come back in %s" % (qid, rc, delay), reject_kind, "451")
            else:
                raise ValueError(reject_kind)
        add("%s: from=<%s>, size=0, class=0, nrcpts=0, proto=ESMTP, daemon=MTA-v4, relay=%s" % (qid, sender, rel))
        return L

    # ------------------------------------------------------------------- exim
    def ex_session(self, host, reject_kind=None, k=1):
        r = self.rng
        L = []
        fqdn, doms, lip = HOST_LOCAL[host]
        pid = self.newpid()
        inner = self.a.exim_inner_timestamp

        def add(msg, kind=None, code=None, p=None):
            if inner:
                msg = time.strftime("%Y-%m-%d %H:%M:%S ", time.gmtime(self.t)) + msg
            L.append((host, "exim", p if p is not None else pid, msg, kind, code))

        if reject_kind is None:
            x = r.random()
            if x < 0.45:
                name, ip = r.choice(self.legit_hosts)
                mid = self.ex_id(pid)
                sender = self.extaddr()
                rc = self.localaddr(host)
                v, c, b = r.choice(CIPHERS)
                x_ = " X=%s:%s:%s CV=no" % (v.replace("v", ""), c, b.split("/")[0]) if r.random() < 0.6 else ""
                add("%s <= %s H=%s [%s] P=esmtp%s%s S=%d id=%s" % (mid, sender, name, ip, "s" if x_ else "", x_, int(r.lognormvariate(9.5, 1.2)) + 600, self.msgid(sender.split("@")[1])))
                dp = self.newpid()
                if r.random() < 0.6:
                    add("%s => %s <%s> R=local_user T=mail_spool" % (mid, rc.split("@")[0], rc), p=dp)
                else:
                    add("%s => %s R=dovecot_lmtp T=dovecot_lmtp H=localhost [127.0.0.1] C=\"250 2.0.0 <%s> %s Saved\"" % (mid, rc, rc, "".join(r.choice(B62) for _ in range(22))), p=dp)
                add("%s Completed" % mid, p=dp)
            elif x < 0.75:
                cname, cip = r.choice(self.clients)
                mid = self.ex_id(pid)
                user = self.localaddr(host)
                rc = self.extaddr()
                add("%s <= %s H=%s [%s] P=esmtpsa X=TLS1.3:TLS_AES_256_GCM_SHA384:256 CV=no A=dovecot_plain:%s S=%d id=%s"
                    % (mid, user, cname, cip, user, int(r.lognormvariate(9.0, 1.3)) + 500, self.msgid(user.split("@")[1])))
                mx, pfx = r.choice(REMOTE_MX)
                mip = pfx + str(r.randrange(1, 255))
                dp = self.newpid()
                y = r.random()
                if y < 0.85:
                    add("%s => %s R=dnslookup T=remote_smtp H=%s [%s] X=TLS1.3:TLS_AES_256_GCM_SHA384:256 CV=yes K C=\"250 2.0.0 OK  %d - gsmtp\"" % (mid, rc, mx, mip, int(self.t)), p=dp)
                    add("%s Completed" % mid, p=dp)
                elif y < 0.93:
                    add("%s == %s R=dnslookup T=remote_smtp defer (110): Connection timed out" % (mid, rc), p=dp)
                else:
                    add("%s ** %s R=dnslookup T=remote_smtp H=%s [%s]: SMTP error from remote mail server after RCPT TO:<%s>: 550 5.1.1 <%s>: Recipient address rejected: User unknown in virtual mailbox table"
                        % (mid, rc, mx, mip, rc, rc), p=dp)
                    bmid = self.ex_id(dp)
                    add("%s <= <> R=%s U=Debian-exim P=local S=%d" % (bmid, mid, 3000 + r.randrange(2000)), p=dp)
                    dp2 = self.newpid()
                    add("%s => %s <%s> R=local_user T=mail_spool" % (bmid, user.split("@")[0], user), p=dp2)
                    add("%s Completed" % bmid, p=dp2)
                    add("%s Completed" % mid, p=dp)
            else:
                name, ip, helo = r.choice(self.spam_hosts)
                y = r.random()
                if y < 0.35:
                    add("no host name found for IP address %s" % ip)
                elif y < 0.65:
                    add("unexpected disconnection while reading SMTP command from %s [%s] D=%ds" % (name if name != "unknown" else "(%s)" % helo, ip, r.randrange(1, 60)))
                elif y < 0.85:
                    add("SMTP connection from %s [%s] lost D=%ds" % (name if name != "unknown" else "(%s)" % helo, ip, r.randrange(1, 30)))
                else:
                    add("TLS error on connection from %s [%s] (SSL_accept): error:0A000076:SSL routines::no suitable signature algorithm" % (name if name != "unknown" else "(%s)" % helo, ip))
            return L

        name, ip, helo = r.choice(self.spam_hosts)
        hs = ("%s (%s) [%s]" % (name, helo, ip)) if name != "unknown" else "(%s) [%s]" % (helo, ip)
        sender = self.spamaddr() if r.random() < 0.8 else self.extaddr()
        if name == "unknown" and r.random() < 0.3:
            add("no host name found for IP address %s" % ip)
        if reject_kind == "ex_helo":
            add("rejected EHLO from [%s]: syntactically invalid argument(s): %s" % (ip, r.choice(["_", "my_host", "WIN_%d" % r.randrange(10 ** 5), "user@host"])), reject_kind, "550")
            return L
        if reject_kind == "ex_after_data":
            mid = self.ex_id(pid)
            if r.random() < 0.7:
                add("%s H=%s F=<%s> rejected after DATA: This message scored %.1f spam points." % (mid, hs, sender, 5 + r.random() * 20), reject_kind, "550")
            else:
                add("%s H=%s F=<%s> rejected after DATA: This message contains a virus (%s)." % (mid, hs, sender, r.choice(["Eicar-Test-Signature", "Win.Trojan.Agent-123", "Doc.Dropper.Agent-6"])), reject_kind, "550")
            return L
        for _ in range(k):
            if reject_kind == "ex_relay_denied":
                add("H=%s F=<%s> rejected RCPT <%s>: relay not permitted" % (hs, sender, self.extaddr()), reject_kind, "550")
            elif reject_kind == "ex_unknown_user":
                add("H=%s F=<%s> rejected RCPT <%s>: Unknown user" % (hs, sender, self.badlocaladdr(host)), reject_kind, "550")
            elif reject_kind == "ex_rbl":
                add("H=%s F=<%s> rejected RCPT <%s>: %s is listed in zen.spamhaus.org" % (hs, sender, self.localaddr(host), ip), reject_kind, "550")
            elif reject_kind == "ex_sender_verify":
                sender = self.spamaddr()
                add("H=%s sender verify fail for <%s>: Unrouteable address" % (hs, sender))
                add("H=%s F=<%s> rejected RCPT <%s>: Sender verify failed" % (hs, sender, self.localaddr(host)), reject_kind, "550")
            elif reject_kind == "ex_greylist":
                add("H=%s F=<%s> temporarily rejected RCPT <%s>: greylisted." % (hs, sender, self.localaddr(host)), reject_kind, "451")
            else:
                raise ValueError(reject_kind)
        if r.random() < 0.5:
            add("unexpected disconnection while reading SMTP command from %s D=%ds" % (hs, r.randrange(1, 30)))
        return L

    # ------------------------------------------------------------------ driver
    def plan(self):
        r = self.rng
        self.busy_cur = []
        share = self.a.reject_share
        deficit = share * (self.planned_lines + 4) - self.planned_rejects
        # MTA: steer the *line* shares towards --mix (sessions differ in length per MTA)
        tot = self.planned_lines + 10
        ws = [max(1e-3, w * tot - self.planned_by_mta[m]) for m, w in zip(self.mtas, self.mta_w_norm)]
        mta = r.choices(self.mtas, ws)[0]
        if share > 0 and deficit > 0 and self.rej_mtas:
            if mta not in self.kind_choices:
                mta = r.choices(self.rej_mtas, self.rej_mta_w)[0]
            ks, ws = self.kind_choices[mta]
            kind = r.choices(ks, ws)[0]
            k = 1
            if kind in MULTI_OK:
                k = max(1, min(8, int(deficit)))
                if k == 1 and r.random() < 0.12:
                    k = r.choice((2, 2, 3))
        else:
            kind, k = None, 1
        host = r.choice(MTA_HOSTS[mta])
        if mta == "postfix":
            L = self.pf_session(host, kind, k)
        elif mta == "sendmail":
            L = self.sm_session(host, kind, k)
        else:
            L = self.ex_session(host, kind, k)
        self.planned_lines += len(L)
        self.planned_by_mta[mta] += len(L)
        self.planned_rejects += sum(1 for x in L if x[4])
        return L, self.busy_cur

    def emit(self, spec, out):
        host, prog, pid, msg, kind, code = spec
        line = "%s %s %s[%d]: %s\n" % (self.ts(), host, prog, pid, msg)
        out.append(line)
        self.lines += 1
        self.t += self.rng.expovariate(self.rate)
        mta = "postfix" if prog.startswith("postfix") else "sendmail" if prog in ("sm-mta", "sendmail", "milter-greylist") else "exim"
        self.by_mta[mta] = self.by_mta.get(mta, 0) + 1
        self.by_prog[prog] = self.by_prog.get(prog, 0) + 1
        if prog == "postfix/qmgr" and msg.endswith(": removed"):
            self.events["postfix_qmgr_removed"] += 1
        elif prog == "postfix/smtpd" and msg.startswith("connect from "):
            self.events["postfix_smtpd_connect"] += 1
        elif prog == "postfix/cleanup" and ": message-id=<" in msg:
            self.events["postfix_cleanup_message_id"] += 1
        if kind:
            km = KINDS[kind]["mta"]
            reason = KINDS[kind]["reason"]
            d = self.rej_kind.setdefault(km, {})
            d[kind] = d.get(kind, 0) + 1
            d = self.rej_reason.setdefault(km, {})
            d[reason] = d.get(reason, 0) + 1
            d = self.rej_code.setdefault(km, {})
            d[code] = d.get(code, 0) + 1
            d = self.rej_host.setdefault(host, {}).setdefault(km, {})
            d[reason] = d.get(reason, 0) + 1

    def run(self, fh):
        n_body = self.a.lines - (1 if self.a.sentinel != "none" else 0)
        pool = []
        buf = []
        h = hashlib.sha256()
        conc = self.a.concurrency
        r = self.rng
        nbytes = 0
        while self.lines < n_body:
            while len(pool) < conc:
                L, pids = self.plan()
                pool.append([L, 0, pids])
            # bias towards the oldest sessions so they finish
            j = min(r.randrange(len(pool)), r.randrange(len(pool)))
            s = pool[j]
            self.emit(s[0][s[1]], buf)
            s[1] += 1
            if s[1] >= len(s[0]):
                pool.pop(j)
                for p in s[2]:
                    self.busy.discard(p)
            if len(buf) >= 8192:
                data = "".join(buf).encode()
                fh.write(data)
                h.update(data)
                nbytes += len(data)
                buf = []
        sentinel = None
        if self.a.sentinel != "none":
            host = MTA_HOSTS["postfix"][0]
            if self.a.sentinel == "lost-connection":
                spec = (host, "postfix/smtpd", 99999, "lost connection after BENCHEND from sentinel.bench.invalid[192.0.2.254]", None, None)
            else:  # qmgr-removed
                spec = (host, "postfix/qmgr", self.pf_pids[host]["qmgr"], "FFFFFFFFFFF: removed", None, None)
            self.emit(spec, buf)
            sentinel = dict(kind=self.a.sentinel, line=buf[-1].rstrip("\n"))
        data = "".join(buf).encode()
        fh.write(data)
        h.update(data)
        nbytes += len(data)
        return nbytes, h.hexdigest(), sentinel


def parse_mix(s):
    if s == "postfix":
        return {"postfix": 1.0}
    if s == "mixed":
        return {"postfix": 0.5, "sendmail": 0.25, "exim": 0.25}
    if s in ("sendmail", "exim"):
        return {s: 1.0}
    out = {}
    for part in s.split(","):
        k, v = part.split("=")
        if k not in ("postfix", "sendmail", "exim"):
            raise argparse.ArgumentTypeError("unknown MTA %r" % k)
        out[k] = float(v)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", "--lines", type=int, default=200000, help="total lines to write, sentinel included (default 200000)")
    ap.add_argument("--mix", default="postfix", help="postfix | mixed (postfix .5, sendmail .25, exim .25) | sendmail | exim | postfix=W,sendmail=W,exim=W")
    ap.add_argument("--reject-share", type=float, default=0.10, help="target share of reject lines among all lines (default 0.10)")
    ap.add_argument("--reject-kinds", default=None, help="comma list restricting the reject kinds (default: all); see --list-kinds")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--start", default="2024-03-01T00:00:00", help="timestamp of first line (UTC, ISO), default 2024-03-01T00:00:00")
    ap.add_argument("--rate", type=float, default=40.0, help="mean log lines per second of log time (default 40)")
    ap.add_argument("--concurrency", type=int, default=4, help="sessions interleaved at once (default 4)")
    ap.add_argument("--exim-inner-timestamp", action="store_true", help="keep Exim's own 'YYYY-MM-DD HH:MM:SS' prefix (syslog_timestamp=true)")
    ap.add_argument("--sentinel", choices=["lost-connection", "qmgr-removed", "none"], default="lost-connection",
                    help="last line: 'lost-connection' = postfix/smtpd 'lost connection after BENCHEND from ...' (default), "
                         "'qmgr-removed' = a unique postfix/qmgr 'FFFFFFFFFFF: removed', or none")
    ap.add_argument("-o", "--out", help="log file to write (default stdout)")
    ap.add_argument("--truth", help="ground-truth JSON path (default: OUT.truth.json)")
    ap.add_argument("--list-kinds", action="store_true", help="print reject kinds and exit")
    a = ap.parse_args()
    if a.list_kinds:
        for k, m in KINDS.items():
            print("%-24s %-9s %-14s %s  %s" % (k, m["mta"], m["reason"], m["code"], m["form"]))
        return
    a.mix_weights = parse_mix(a.mix)
    if a.reject_kinds:
        ks = set(a.reject_kinds.split(","))
        bad = ks - set(KINDS)
        if bad:
            ap.error("unknown reject kinds: %s" % ",".join(sorted(bad)))
        a.reject_kinds = ks
    a.start_epoch = calendar.timegm(time.strptime(a.start, "%Y-%m-%dT%H:%M:%S"))
    if not 0 <= a.reject_share < 0.95:
        ap.error("--reject-share must be in [0, 0.95)")
    g = Gen(a)
    t0 = time.time()
    if a.out:
        with open(a.out, "wb") as fh:
            nbytes, digest, sentinel = g.run(fh)
    else:
        nbytes, digest, sentinel = g.run(sys.stdout.buffer)
    rej_total = sum(sum(d.values()) for d in g.rej_kind.values())
    truth = {
        "generator": {"version": GEN_VERSION, "lines": a.lines, "mix": a.mix, "mix_weights": a.mix_weights,
                      "reject_share_target": a.reject_share,
                      "reject_kinds": sorted(a.reject_kinds) if a.reject_kinds else "all", "seed": a.seed,
                      "start": a.start, "rate": a.rate, "concurrency": a.concurrency,
                      "exim_inner_timestamp": a.exim_inner_timestamp, "sentinel": a.sentinel},
        "file": os.path.abspath(a.out) if a.out else None,
        "lines": g.lines,
        "bytes": nbytes,
        "sha256": digest,
        "lines_by_mta": g.by_mta,
        "lines_by_prog": dict(sorted(g.by_prog.items())),
        "rejects_total": rej_total,
        "reject_share": round(rej_total / g.lines, 6) if g.lines else 0,
        "rejects": g.rej_kind,
        "rejects_by_reason": g.rej_reason,
        "rejects_by_code": g.rej_code,
        "rejects_by_host": g.rej_host,
        "events": g.events,
        "sentinel": sentinel,
        "kinds": KINDS,
    }
    if a.out:
        tp = a.truth or (a.out + ".truth.json")
        with open(tp, "w") as fh:
            json.dump(truth, fh, indent=1, sort_keys=False)
            fh.write("\n")
        print("wrote %s: %d lines, %d bytes, %d rejects (%.2f%%) in %.1fs; truth %s"
              % (a.out, g.lines, nbytes, rej_total, 100.0 * rej_total / max(1, g.lines), time.time() - t0, tp), file=sys.stderr)
    elif a.truth:
        with open(a.truth, "w") as fh:
            json.dump(truth, fh, indent=1)
            fh.write("\n")


if __name__ == "__main__":
    main()
