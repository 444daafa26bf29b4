//! The project's workload generator: realistic Sendmail, Postfix and Exim syslog
//! traffic with its ground truth, deterministic from a seed.
//!
//! Lines come from whole SMTP sessions (connect, client, queue, delivery, disconnect
//! for an accepted message; connect, reject, disconnect for a refused one) with
//! consistent pids and queue ids, several sessions interleaved as in a real log. Every
//! line carries what the rule book (`reasons.md`) says must come of it, so the truth
//! is exact: the outcome of each line (`reject`, `accepted`, `mta_other`, `foreign`),
//! and for a reject its host, MTA, stage, reason, class and misroute domain. Lines
//! that look like rejects but are not (Postfix `reject_warning`, remote bounces of
//! our outbound mail, Exim `sender verify fail for` notes, Exim's reject-log copy on
//! the very next line) are in the log and in the truth as `mta_other`.
//!
//! The shapes are the ones the parsers' table cases use (tests/fixtures/maillog/cases),
//! including those added for issue 11: the `<facility.priority>` token after the
//! timestamp, Postfix SASL clients with a port, Exim's `no HELO/EHLO given`, DATA size
//! rejects, header syntax rejects, command floods and "You must encrypt" replies.
//!
//! Used by `examples/gen/main.rs` (the command line) and `tests/generator.rs` (replay
//! of a generated log must match its truth).

use std::collections::{BTreeMap, VecDeque};

/// Which MTAs write the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mix {
    /// Postfix only, classic syslog envelopes only (what the peers in bench/compare.py read).
    Postfix,
    /// Postfix 1/2, Sendmail 1/4, Exim 1/4; every envelope shape.
    Mixed,
    Sendmail,
    Exim,
}

impl Mix {
    pub fn parse(s: &str) -> Option<Mix> {
        match s {
            "postfix" => Some(Mix::Postfix),
            "mixed" => Some(Mix::Mixed),
            "sendmail" => Some(Mix::Sendmail),
            "exim" => Some(Mix::Exim),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Mix::Postfix => "postfix",
            Mix::Mixed => "mixed",
            Mix::Sendmail => "sendmail",
            Mix::Exim => "exim",
        }
    }
}

/// Generator settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub seed: u64,
    pub mix: Mix,
    /// Syslog host names `mx01`..; at least 1.
    pub hosts: usize,
    /// Target share of reject lines among all lines.
    pub reject_share: f64,
    /// Sessions interleaved at once.
    pub concurrency: usize,
    /// Unix time of the first line.
    pub start: i64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings { seed: 42, mix: Mix::Mixed, hosts: 3, reject_share: 0.10, concurrency: 4, start: 1_772_323_200 }
    }
}

/// The domains the generated relay-denied rejects count as misroutes for: configure
/// them as `local_domains` when replaying.
pub const LOCAL_DOMAINS: &[&str] = &["nmrc.org", "mail.nmrc.org", "shop.example"];

const FOREIGN_DOMAINS: &[&str] = &[
    "gmail.example",
    "yahoo.example",
    "corp.example",
    "partner.example",
    "bank.example",
    "news.example",
    "uni.example",
    "isp.example",
];

const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/// What one line must yield (the rule book's reading of it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    MtaOther,
    Foreign,
    Accepted { mta: &'static str },
    Reject(RejectTruth),
}

/// One reject as the exporter must count it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectTruth {
    pub mta: &'static str,
    pub stage: &'static str,
    pub reason: &'static str,
    pub class: &'static str,
    /// The recipient domain when it makes a misroute (relay denied to a local domain).
    pub misroute: Option<&'static str>,
}

/// Ground truth, accumulated line by line.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Truth {
    pub lines: u64,
    pub bytes: u64,
    /// Lines per outcome: `reject`, `accepted`, `mta_other`, `foreign`.
    pub outcomes: BTreeMap<String, u64>,
    pub rejects_total: u64,
    /// Rejects per MTA per reason.
    pub rejects_by_reason: BTreeMap<String, BTreeMap<String, u64>>,
    /// Rejects per MTA per generator kind (a kind is one line shape).
    pub rejects: BTreeMap<String, BTreeMap<String, u64>>,
    /// Rejects per series: "host|mta|stage|reason|class".
    pub series: BTreeMap<String, u64>,
    /// Accepted messages per "host|mta".
    pub accepted: BTreeMap<String, u64>,
    /// Misroutes per "host|domain".
    pub misroutes: BTreeMap<String, u64>,
    pub local_domains: Vec<String>,
}

impl Truth {
    fn add(&mut self, host: &str, kind: &str, effect: &Effect, bytes: usize) {
        self.lines += 1;
        self.bytes += bytes as u64 + 1;
        let outcome = match effect {
            Effect::MtaOther => "mta_other",
            Effect::Foreign => "foreign",
            Effect::Accepted { mta } => {
                *self.accepted.entry(format!("{host}|{mta}")).or_default() += 1;
                "accepted"
            }
            Effect::Reject(r) => {
                self.rejects_total += 1;
                *self.rejects_by_reason.entry(r.mta.into()).or_default().entry(r.reason.into()).or_default() += 1;
                *self.rejects.entry(r.mta.into()).or_default().entry(kind.into()).or_default() += 1;
                *self.series.entry(format!("{host}|{}|{}|{}|{}", r.mta, r.stage, r.reason, r.class)).or_default() += 1;
                if let Some(d) = r.misroute {
                    *self.misroutes.entry(format!("{host}|{d}")).or_default() += 1;
                }
                "reject"
            }
        };
        *self.outcomes.entry(outcome.into()).or_default() += 1;
    }
}

/// splitmix64: small, fast, and the same sequence on every platform and version.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x5851_f42d_4c95_7f2d)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n.max(1))) >> 64) as u64
    }

    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// Lines of one session, in groups written together (an Exim reject and its
/// reject-log copy must stay on consecutive lines).
struct Session {
    host: usize,
    groups: VecDeque<Vec<Line>>,
}

struct Line {
    kind: &'static str,
    program: String,
    pid: u32,
    msg: String,
    effect: Effect,
}

/// A client of one session.
struct Client {
    name: String,
    ip: String,
    helo: String,
}

/// The generator: call [`Workload::next_line`] as often as lines are wanted.
pub struct Workload {
    s: Settings,
    rng: Rng,
    hosts: Vec<String>,
    active: Vec<Session>,
    queued: VecDeque<(usize, Line)>,
    now: i64,
    frac: u32,
    serial: u64,
    next_pid: u32,
    pub truth: Truth,
}

/// Reject kinds: (mta, kind, weight).
const POSTFIX_KINDS: &[(&str, u64)] = &[
    ("pf_relay_denied", 14),
    ("pf_unknown_user", 14),
    ("pf_rbl", 14),
    ("pf_helo", 5),
    ("pf_sender_domain", 6),
    ("pf_greylist", 6),
    ("pf_postscreen_rbl", 6),
    ("pf_cleanup_header", 3),
    ("pf_milter_spam", 3),
    ("pf_submission_relay", 3),
    ("pf_sasl", 8),
    ("pf_sasl_port", 4),
    ("pf_starttls", 2),
    ("pf_anvil_rate", 2),
];
const SENDMAIL_KINDS: &[(&str, u64)] = &[
    ("sm_relay_denied", 14),
    ("sm_rbl", 12),
    ("sm_sender_domain", 6),
    ("sm_unknown_user", 10),
    ("sm_greylist", 6),
    ("sm_auth_attack", 3),
];
const EXIM_KINDS: &[(&str, u64)] = &[
    ("ex_relay_denied", 12),
    ("ex_unknown_user", 12),
    ("ex_rbl", 12),
    ("ex_greylist", 6),
    ("ex_sender_verify", 5),
    ("ex_virus", 3),
    ("ex_spam", 4),
    ("ex_size", 2),
    ("ex_no_helo", 2),
    ("ex_nonmail_flood", 2),
    ("ex_header_syntax", 2),
    ("ex_must_encrypt", 2),
    ("ex_auth", 4),
];

fn weighted(rng: &mut Rng, table: &[(&'static str, u64)]) -> &'static str {
    let total: u64 = table.iter().map(|(_, w)| w).sum();
    let mut x = rng.below(total);
    for &(k, w) in table {
        if x < w {
            return k;
        }
        x -= w;
    }
    table[0].0
}

fn rej(mta: &'static str, stage: &'static str, reason: &'static str, class: &'static str) -> Effect {
    Effect::Reject(RejectTruth { mta, stage, reason, class, misroute: None })
}

impl Workload {
    pub fn new(s: Settings) -> Workload {
        let hosts = (1..=s.hosts.max(1)).map(|i| format!("mx{i:02}")).collect();
        let truth = Truth { local_domains: LOCAL_DOMAINS.iter().map(|d| d.to_string()).collect(), ..Truth::default() };
        Workload {
            rng: Rng::new(s.seed),
            now: s.start,
            s,
            hosts,
            active: Vec::new(),
            queued: VecDeque::new(),
            frac: 0,
            serial: 0,
            next_pid: 1000,
            truth,
        }
    }

    /// The next log line (without its newline); the truth is updated.
    pub fn next_line(&mut self) -> String {
        loop {
            if let Some((host, line)) = self.queued.pop_front() {
                return self.emit(host, line);
            }
            while self.active.len() < self.s.concurrency.max(1) {
                let session = self.session();
                self.active.push(session);
            }
            let i = self.rng.below(self.active.len() as u64) as usize;
            let host = self.active[i].host;
            let group = self.active[i].groups.pop_front();
            if self.active[i].groups.is_empty() {
                self.active.swap_remove(i);
            }
            // a group is written at once (an Exim reject and its reject-log copy)
            for line in group.into_iter().flatten() {
                self.queued.push_back((host, line));
            }
        }
    }

    /// The sentinel a tailing benchmark waits for (postfix_exporter counts it in
    /// `postfix_smtpd_connections_lost_total`); `mta_other` for us.
    pub fn sentinel(&mut self) -> String {
        let line = Line {
            kind: "sentinel",
            program: "postfix/smtpd".into(),
            pid: 99999,
            msg: "lost connection after BENCHEND from sentinel.bench.invalid[192.0.2.254]".into(),
            effect: Effect::MtaOther,
        };
        self.emit(0, line)
    }

    fn emit(&mut self, host: usize, line: Line) -> String {
        self.tick();
        let text = format!("{}{}[{}]: {}", self.envelope(host), line.program, line.pid, line.msg);
        self.truth.add(&self.hosts[host], line.kind, &line.effect, text.len());
        text
    }

    fn tick(&mut self) {
        // about 40 lines per second of log time
        self.frac += self.rng.below(50) as u32;
        if self.frac >= 1000 {
            self.now += i64::from(self.frac / 1000);
            self.frac %= 1000;
        }
    }

    /// `Mon dd HH:MM:SS host ` and, in the mixed log, the other shapes of reasons.md §6.
    fn envelope(&mut self, host: usize) -> String {
        let (y, mo, d, h, mi, s) = civil(self.now);
        let host = &self.hosts[host];
        let classic = format!("{} {:>2} {:02}:{:02}:{:02}", MONTHS[(mo - 1) as usize], d, h, mi, s);
        if self.s.mix == Mix::Postfix {
            return format!("{classic} {host} ");
        }
        match self.rng.below(100) {
            0..=3 => {
                let pri = *self.rng.pick(&["mail.info", "mail.notice", "mail.warning", "2.6", "2.5"]);
                format!("{classic} <{pri}> {host} ")
            }
            4..=7 => format!(
                "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{:06}+00:00 {host} ",
                self.frac * 1000 + self.rng.below(1000) as u32
            ),
            _ => format!("{classic} {host} "),
        }
    }

    fn pid(&mut self) -> u32 {
        self.next_pid = if self.next_pid >= 4_000_000 { 1000 } else { self.next_pid + 1 + self.rng.below(7) as u32 };
        self.next_pid
    }

    fn client(&mut self) -> Client {
        let a = 1 + self.rng.below(223);
        let b = self.rng.below(256);
        let c = self.rng.below(256);
        let d = 1 + self.rng.below(254);
        let ip = format!("{a}.{b}.{c}.{d}");
        let (name, helo) = match self.rng.below(3) {
            0 => ("unknown".to_string(), format!("[{ip}]")),
            1 => (
                format!("mail{d}.{}", self.rng.pick(FOREIGN_DOMAINS)),
                format!("mail{d}.{}", self.rng.pick(FOREIGN_DOMAINS)),
            ),
            _ => (format!("host-{a}-{b}-{c}-{d}.dyn.isp.example"), format!("host-{a}-{b}-{c}-{d}")),
        };
        Client { name, ip, helo }
    }

    /// A unique local part: recipients never repeat, so an Exim reject is only
    /// ever followed by the same text when it is the reject-log copy.
    fn user(&mut self) -> String {
        self.serial += 1;
        format!("u{}", self.serial)
    }

    /// A recipient for a relay attempt: a local domain (a misroute when refused) with
    /// probability `misroute_share`, else one of 2,000 outside domains, the first ones
    /// far more often (as spam runs do), so that a long log names many domains.
    fn rcpt(&mut self, misroute_share: f64) -> (String, Option<&'static str>) {
        if self.rng.chance(misroute_share) {
            let domain = *self.rng.pick(LOCAL_DOMAINS);
            return (format!("{}@{domain}", self.user()), Some(domain));
        }
        let spread = self.rng.below(2000) + 1;
        let n = self.rng.below(spread);
        (format!("{}@r{n}.example", self.user()), None)
    }

    fn local_rcpt(&mut self) -> (String, &'static str) {
        let domain = *self.rng.pick(LOCAL_DOMAINS);
        (format!("{}@{domain}", self.user()), domain)
    }

    fn sender(&mut self) -> String {
        format!("{}@{}", self.user(), self.rng.pick(FOREIGN_DOMAINS))
    }

    fn postfix_qid(&mut self) -> String {
        format!("{:010X}", self.rng.next_u64() & 0xFF_FFFF_FFFF)
    }

    fn sendmail_qid(&mut self, pid: u32) -> String {
        const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwx";
        let mut s = String::from("6B");
        for _ in 0..6 {
            s.push(A[self.rng.below(A.len() as u64) as usize] as char);
        }
        format!("{s}{pid:06}")
    }

    fn exim_id(&mut self) -> String {
        const A: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        let part = |n: usize, rng: &mut Rng| -> String {
            (0..n).map(|_| A[rng.below(A.len() as u64) as usize] as char).collect()
        };
        let a = part(6, &mut self.rng);
        let b = part(6, &mut self.rng);
        let c = part(2, &mut self.rng);
        format!("{a}-{b}-{c}")
    }

    fn session(&mut self) -> Session {
        let host = self.rng.below(self.hosts.len() as u64) as usize;
        let mta = match self.s.mix {
            Mix::Postfix => "postfix",
            Mix::Sendmail => "sendmail",
            Mix::Exim => "exim",
            Mix::Mixed => *self.rng.pick(&["postfix", "postfix", "sendmail", "exim"]),
        };
        let rejects = self.truth.rejects_total as f64;
        let lines = self.truth.lines.max(1) as f64;
        let reject = rejects / lines < self.s.reject_share;
        let mut groups = VecDeque::new();
        if self.rng.below(40) == 0 {
            groups.push_back(vec![self.foreign()]);
        }
        match (mta, reject) {
            ("postfix", false) => self.postfix_accepted(&mut groups),
            ("postfix", true) => self.postfix_reject(&mut groups),
            ("sendmail", false) => self.sendmail_accepted(&mut groups),
            ("sendmail", true) => self.sendmail_reject(&mut groups),
            (_, false) => self.exim_accepted(&mut groups),
            (_, true) => self.exim_reject(&mut groups),
        }
        Session { host, groups }
    }

    fn foreign(&mut self) -> Line {
        let pid = self.pid();
        let (program, msg) = match self.rng.below(3) {
            0 => ("CRON".to_string(), "(root) CMD (command -v debian-sa1 > /dev/null && debian-sa1 1 1)".to_string()),
            1 => (
                "dovecot".to_string(),
                format!(
                    "imap-login: Login: user=<{}>, method=PLAIN, rip=192.0.2.7, lip=192.0.2.1, mpid={pid}, TLS",
                    self.user()
                ),
            ),
            _ => ("systemd".to_string(), "Started session-4.scope - Session 4 of User root.".to_string()),
        };
        Line { kind: "foreign", program, pid, msg, effect: Effect::Foreign }
    }

    fn pf(&self, program: &str, pid: u32, msg: String, kind: &'static str, effect: Effect) -> Vec<Line> {
        vec![Line { kind, program: program.into(), pid, msg, effect }]
    }

    fn postfix_accepted(&mut self, g: &mut VecDeque<Vec<Line>>) {
        let smtpd = self.pid();
        let cleanup = self.pid();
        let qmgr = self.pid();
        let local = self.pid();
        let c = self.client();
        let qid = self.postfix_qid();
        let from = self.sender();
        let (to, _) = self.local_rcpt();
        let prog = if self.rng.below(8) == 0 { "postfix/submission/smtpd" } else { "postfix/smtpd" };
        let other = Effect::MtaOther;
        g.push_back(self.pf(prog, smtpd, format!("connect from {}[{}]", c.name, c.ip), "pf_connect", other.clone()));
        g.push_back(self.pf(
            prog,
            smtpd,
            format!("{qid}: client={}[{}]", c.name, c.ip),
            "pf_client",
            Effect::Accepted { mta: "postfix" },
        ));
        g.push_back(self.pf(
            "postfix/cleanup",
            cleanup,
            format!("{qid}: message-id=<{}.{}@{}>", self.serial, smtpd, c.helo),
            "pf_msgid",
            other.clone(),
        ));
        let size = 900 + self.rng.below(60_000);
        g.push_back(self.pf(
            "postfix/qmgr",
            qmgr,
            format!("{qid}: from=<{from}>, size={size}, nrcpt=1 (queue active)"),
            "pf_from",
            other.clone(),
        ));
        if self.rng.below(30) == 0 {
            // trap: a remote server's refusal of our outbound mail, quoted in a bounce
            let smtp = self.pid();
            let (far, _) = self.rcpt(0.0);
            g.push_back(self.pf("postfix/smtp", smtp, format!("{qid}: to=<{far}>, relay=mx.far.example[203.0.113.9]:25, delay=1.2, delays=0.1/0/0.6/0.5, dsn=5.1.1, status=bounced (host mx.far.example[203.0.113.9] said: 550 5.1.1 <{far}>: Recipient address rejected: User unknown in local recipient table (in reply to RCPT TO command))"), "pf_bounce_trap", other.clone()));
        } else {
            g.push_back(self.pf("postfix/local", local, format!("{qid}: to=<{to}>, relay=local, delay=0.21, delays=0.1/0.01/0/0.1, dsn=2.0.0, status=sent (delivered to mailbox)"), "pf_sent", other.clone()));
        }
        g.push_back(self.pf("postfix/qmgr", qmgr, format!("{qid}: removed"), "pf_removed", other.clone()));
        g.push_back(self.pf(
            prog,
            smtpd,
            format!("disconnect from {}[{}] ehlo=1 mail=1 rcpt=1 data=1 quit=1 commands=5", c.name, c.ip),
            "pf_disconnect",
            other,
        ));
    }

    fn postfix_reject(&mut self, g: &mut VecDeque<Vec<Line>>) {
        let kind = weighted(&mut self.rng, POSTFIX_KINDS);
        let pid = self.pid();
        let c = self.client();
        let from = self.sender();
        let other = Effect::MtaOther;
        let smtpd = if kind == "pf_submission_relay" || kind == "pf_sasl_port" {
            "postfix/submission/smtpd"
        } else {
            "postfix/smtpd"
        };
        if kind != "pf_postscreen_rbl" && kind != "pf_anvil_rate" {
            g.push_back(self.pf(smtpd, pid, format!("connect from {}[{}]", c.name, c.ip), "pf_connect", other.clone()));
        }
        let tail =
            |to: &str, c: &Client, from: &str| format!("; from=<{from}> to=<{to}> proto=ESMTP helo=<{}>", c.helo);
        let p = |stage, reason, class| rej("postfix", stage, reason, class);
        let (prog, msg, effect) = match kind {
            "pf_relay_denied" | "pf_submission_relay" => {
                let (to, dom) = self.rcpt(0.3);
                let e = Effect::Reject(RejectTruth {
                    mta: "postfix",
                    stage: "rcpt",
                    reason: "relay_denied",
                    class: "permanent",
                    misroute: dom,
                });
                (
                    smtpd,
                    format!(
                        "NOQUEUE: reject: RCPT from {}[{}]: 554 5.7.1 <{to}>: Relay access denied{}",
                        c.name,
                        c.ip,
                        tail(&to, &c, &from)
                    ),
                    e,
                )
            }
            "pf_unknown_user" => {
                let (to, _) = self.local_rcpt();
                (
                    smtpd,
                    format!(
                        "NOQUEUE: reject: RCPT from {}[{}]: 550 5.1.1 <{to}>: Recipient address rejected: User unknown in local recipient table{}",
                        c.name,
                        c.ip,
                        tail(&to, &c, &from)
                    ),
                    p("rcpt", "unknown_user", "permanent"),
                )
            }
            "pf_rbl" => {
                let (to, _) = self.local_rcpt();
                (
                    smtpd,
                    format!(
                        "NOQUEUE: reject: RCPT from {}[{}]: 554 5.7.1 Service unavailable; Client host [{}] blocked using zen.spamhaus.org{}",
                        c.name,
                        c.ip,
                        c.ip,
                        tail(&to, &c, &from)
                    ),
                    p("rcpt", "rbl", "permanent"),
                )
            }
            "pf_helo" => {
                let (to, _) = self.local_rcpt();
                (
                    smtpd,
                    format!(
                        "NOQUEUE: reject: RCPT from {}[{}]: 504 5.5.2 <{}>: Helo command rejected: need fully-qualified hostname{}",
                        c.name,
                        c.ip,
                        c.helo,
                        tail(&to, &c, &from)
                    ),
                    p("rcpt", "helo", "permanent"),
                )
            }
            "pf_sender_domain" => {
                let (to, _) = self.local_rcpt();
                let from = format!("{}@nx-{}.invalid", self.user(), self.serial);
                (
                    smtpd,
                    format!(
                        "NOQUEUE: reject: RCPT from {}[{}]: 450 4.1.8 <{from}>: Sender address rejected: Domain not found{}",
                        c.name,
                        c.ip,
                        tail(&to, &c, &from)
                    ),
                    p("rcpt", "sender", "temporary"),
                )
            }
            "pf_greylist" => {
                let (to, _) = self.local_rcpt();
                (
                    smtpd,
                    format!(
                        "NOQUEUE: reject: RCPT from {}[{}]: 450 4.2.0 <{to}>: Recipient address rejected: Greylisted, see http://postgrey.schweikert.ch/help/nmrc.org.html{}",
                        c.name,
                        c.ip,
                        tail(&to, &c, &from)
                    ),
                    p("rcpt", "greylist", "temporary"),
                )
            }
            "pf_postscreen_rbl" => {
                let (to, _) = self.local_rcpt();
                let port = 1024 + self.rng.below(60_000);
                (
                    "postfix/postscreen",
                    format!(
                        "NOQUEUE: reject: RCPT from [{}]:{port}: 550 5.7.1 Service unavailable; client [{}] blocked using zen.spamhaus.org; from=<{from}>, to=<{to}>, proto=ESMTP, helo=<{}>",
                        c.ip, c.ip, c.helo
                    ),
                    p("rcpt", "rbl", "permanent"),
                )
            }
            "pf_cleanup_header" | "pf_milter_spam" => {
                // the message was accepted first (client= counts), then refused at end of data
                let qid = self.postfix_qid();
                g.push_back(self.pf(
                    smtpd,
                    pid,
                    format!("{qid}: client={}[{}]", c.name, c.ip),
                    "pf_client",
                    Effect::Accepted { mta: "postfix" },
                ));
                let cleanup = self.pid();
                let (to, _) = self.local_rcpt();
                if kind == "pf_cleanup_header" {
                    g.push_back(self.pf("postfix/cleanup", cleanup, format!("{qid}: reject: header Subject: Cheap meds online from {}[{}]; from=<{from}> to=<{to}> proto=ESMTP helo=<{}>: 5.7.1 Message content rejected", c.name, c.ip, c.helo), kind, p("data", "spam_content", "permanent")));
                } else {
                    g.push_back(self.pf(
                        "postfix/cleanup",
                        cleanup,
                        format!(
                            "{qid}: milter-reject: END-OF-MESSAGE from {}[{}]: 5.7.1 Spam message rejected{}",
                            c.name,
                            c.ip,
                            tail(&to, &c, &from)
                        ),
                        kind,
                        p("data", "spam_content", "permanent"),
                    ));
                }
                g.push_back(self.pf(
                    smtpd,
                    pid,
                    format!("disconnect from {}[{}] ehlo=1 mail=1 rcpt=1 data=0/1 quit=1 commands=4/5", c.name, c.ip),
                    "pf_disconnect",
                    other,
                ));
                return;
            }
            "pf_sasl" => (
                smtpd,
                format!("warning: {}[{}]: SASL LOGIN authentication failed: UGFzc3dvcmQ6", c.name, c.ip),
                p("auth", "auth_failed", "unknown"),
            ),
            "pf_sasl_port" => {
                let port = 1024 + self.rng.below(60_000);
                (
                    smtpd,
                    format!(
                        "warning: {}[{}]:{port}: SASL PLAIN authentication failed: authentication failure",
                        c.name, c.ip
                    ),
                    p("auth", "auth_failed", "unknown"),
                )
            }
            "pf_starttls" => (
                smtpd,
                format!(
                    "NOQUEUE: reject: MAIL from {}[{}]: 530 5.7.0 <{from}>: Sender address rejected: Must issue a STARTTLS command first; from=<{from}> proto=ESMTP helo=<{}>",
                    c.name, c.ip, c.helo
                ),
                p("mail", "tls_required", "permanent"),
            ),
            _ => {
                // anvil: "warning: Connection rate limit exceeded: N from CLIENT for service smtp"
                let n = 30 + self.rng.below(70);
                (
                    smtpd,
                    format!("warning: Connection rate limit exceeded: {n} from {}[{}] for service smtp", c.name, c.ip),
                    p("connect", "rate_limit", "unknown"),
                )
            }
        };
        g.push_back(self.pf(prog, pid, msg, kind, effect));
        if self.rng.below(25) == 0 {
            // not a reject: the dry run of warn_if_reject
            let (to, _) = self.rcpt(0.0);
            g.push_back(self.pf(
                smtpd,
                pid,
                format!(
                    "NOQUEUE: reject_warning: RCPT from {}[{}]: 554 5.7.1 <{to}>: Relay access denied{}",
                    c.name,
                    c.ip,
                    tail(&to, &c, &from)
                ),
                "pf_reject_warning",
                other.clone(),
            ));
        }
        if kind != "pf_postscreen_rbl" && kind != "pf_anvil_rate" {
            g.push_back(self.pf(
                smtpd,
                pid,
                format!("disconnect from {}[{}] ehlo=1 mail=1 rcpt=0/1 quit=1 commands=3/4", c.name, c.ip),
                "pf_disconnect",
                other,
            ));
        }
    }

    fn sm(&self, pid: u32, msg: String, kind: &'static str, effect: Effect) -> Vec<Line> {
        vec![Line { kind, program: "sm-mta".into(), pid, msg, effect }]
    }

    fn relay_field(c: &Client) -> String {
        if c.name == "unknown" { format!("[{}]", c.ip) } else { format!("{} [{}]", c.name, c.ip) }
    }

    fn sendmail_accepted(&mut self, g: &mut VecDeque<Vec<Line>>) {
        let pid = self.pid();
        let c = self.client();
        let qid = self.sendmail_qid(pid);
        let from = self.sender();
        let (to, _) = self.local_rcpt();
        let size = 900 + self.rng.below(60_000);
        let relay = Self::relay_field(&c);
        g.push_back(self.sm(pid, format!("{qid}: from=<{from}>, size={size}, class=0, nrcpts=1, msgid=<{}.{pid}@{}>, proto=ESMTP, daemon=MTA-v4, relay={relay}", self.serial, c.helo), "sm_from", Effect::Accepted { mta: "sendmail" }));
        let local = self.pid();
        g.push_back(self.sm(
            local,
            format!(
                "{qid}: to=<{to}>, delay=00:00:01, xdelay=00:00:00, mailer=local, pri=30{size}, dsn=2.0.0, stat=Sent"
            ),
            "sm_sent",
            Effect::MtaOther,
        ));
    }

    fn sendmail_reject(&mut self, g: &mut VecDeque<Vec<Line>>) {
        let kind = weighted(&mut self.rng, SENDMAIL_KINDS);
        let pid = self.pid();
        let c = self.client();
        let qid = self.sendmail_qid(pid);
        let relay = Self::relay_field(&c);
        let s = |stage, reason, class| rej("sendmail", stage, reason, class);
        let (msg, effect) = match kind {
            "sm_relay_denied" => {
                let (to, dom) = self.rcpt(0.3);
                let e = Effect::Reject(RejectTruth {
                    mta: "sendmail",
                    stage: "rcpt",
                    reason: "relay_denied",
                    class: "permanent",
                    misroute: dom,
                });
                (
                    format!(
                        "{qid}: ruleset=check_rcpt, arg1=<{to}>, relay={relay}, reject=550 5.7.1 <{to}>... Relaying denied. Proper authentication required."
                    ),
                    e,
                )
            }
            "sm_rbl" => (
                format!(
                    "ruleset=check_relay, arg1={}, arg2={}, relay={relay}, reject=553 5.3.0 Rejected - see http://www.spamhaus.org/query/ip/{}",
                    if c.name == "unknown" { format!("[{}]", c.ip) } else { c.name.clone() },
                    c.ip,
                    c.ip
                ),
                s("connect", "rbl", "permanent"),
            ),
            "sm_sender_domain" => {
                let from = format!("{}@nx-{}.invalid", self.user(), self.serial);
                (
                    format!(
                        "{qid}: ruleset=check_mail, arg1=<{from}>, relay={relay}, reject=553 5.1.8 <{from}>... Domain of sender address {from} does not exist"
                    ),
                    s("mail", "sender", "permanent"),
                )
            }
            "sm_unknown_user" => {
                let (to, _) = self.local_rcpt();
                (format!("{qid}: <{to}>... User unknown"), s("rcpt", "unknown_user", "unknown"))
            }
            "sm_greylist" => {
                let (to, _) = self.local_rcpt();
                (
                    format!(
                        "{qid}: Milter: to=<{to}>, reject=451 4.7.1 Greylisting in action, please come back in 00:30:00"
                    ),
                    s("rcpt", "greylist", "temporary"),
                )
            }
            _ => (
                format!("{qid}: {relay}: possible SMTP attack: command=AUTH, count={}", 3 + self.rng.below(5)),
                s("auth", "auth_failed", "unknown"),
            ),
        };
        g.push_back(self.sm(pid, msg, kind, effect));
        if kind != "sm_rbl" {
            g.push_back(self.sm(
                pid,
                format!("{qid}: {relay} did not issue MAIL/EXPN/VRFY/ETRN during connection to MTA-v4"),
                "sm_did_not_issue",
                Effect::MtaOther,
            ));
        }
    }

    fn ex(&self, pid: u32, msg: String, kind: &'static str, effect: Effect) -> Line {
        Line { kind, program: "exim".into(), pid, msg, effect }
    }

    fn exim_accepted(&mut self, g: &mut VecDeque<Vec<Line>>) {
        let pid = self.pid();
        let c = self.client();
        let id = self.exim_id();
        let from = self.sender();
        let (to, _) = self.local_rcpt();
        let size = 900 + self.rng.below(60_000);
        let host =
            if c.name == "unknown" { format!("({}) [{}]", c.helo, c.ip) } else { format!("{} [{}]", c.name, c.ip) };
        g.push_back(vec![self.ex(
            pid,
            format!(
                "{id} <= {from} H={host} P=esmtps X=TLS1.3:TLS_AES_256_GCM_SHA384:256 CV=no S={size} id={}.{pid}@{}",
                self.serial, c.helo
            ),
            "ex_arrival",
            Effect::Accepted { mta: "exim" },
        )]);
        let dpid = self.pid();
        if self.rng.below(30) == 0 {
            // trap: a remote refusal quoted in a delivery failure
            let (far, _) = self.rcpt(0.0);
            g.push_back(vec![self.ex(dpid, format!("{id} ** {far} R=dnslookup T=remote_smtp H=mx.far.example [203.0.113.5]: SMTP error from remote mail server after RCPT TO:<{far}>: 550 5.1.1 <{far}>: Recipient address rejected: User unknown"), "ex_bounce_trap", Effect::MtaOther)]);
        } else {
            g.push_back(vec![self.ex(
                dpid,
                format!("{id} => {to} R=local_user T=mail_spool"),
                "ex_delivery",
                Effect::MtaOther,
            )]);
        }
        g.push_back(vec![self.ex(dpid, format!("{id} Completed"), "ex_completed", Effect::MtaOther)]);
    }

    fn exim_reject(&mut self, g: &mut VecDeque<Vec<Line>>) {
        let kind = weighted(&mut self.rng, EXIM_KINDS);
        let pid = self.pid();
        let c = self.client();
        let from = self.sender();
        let host =
            if c.name == "unknown" { format!("({}) [{}]", c.helo, c.ip) } else { format!("{} [{}]", c.name, c.ip) };
        let e = |stage, reason, class| rej("exim", stage, reason, class);
        let (msg, effect) = match kind {
            "ex_relay_denied" => {
                let (to, dom) = self.rcpt(0.3);
                let eff = Effect::Reject(RejectTruth {
                    mta: "exim",
                    stage: "rcpt",
                    reason: "relay_denied",
                    class: "permanent",
                    misroute: dom,
                });
                (format!("H={host} F=<{from}> rejected RCPT <{to}>: relay not permitted"), eff)
            }
            "ex_unknown_user" => {
                let (to, _) = self.local_rcpt();
                (
                    format!("H={host} F=<{from}> rejected RCPT <{to}>: Unknown user"),
                    e("rcpt", "unknown_user", "permanent"),
                )
            }
            "ex_rbl" => {
                let (to, _) = self.local_rcpt();
                (
                    format!("H={host} F=<{from}> rejected RCPT <{to}>: {} is listed in zen.spamhaus.org", c.ip),
                    e("rcpt", "rbl", "permanent"),
                )
            }
            "ex_greylist" => {
                let (to, _) = self.local_rcpt();
                (
                    format!("H={host} F=<{from}> temporarily rejected RCPT <{to}>: greylisted."),
                    e("rcpt", "greylist", "temporary"),
                )
            }
            "ex_sender_verify" => {
                let (to, _) = self.local_rcpt();
                let from = format!("{}@nx-{}.invalid", self.user(), self.serial);
                g.push_back(vec![self.ex(
                    pid,
                    format!("H={host} sender verify fail for <{from}>: Unrouteable address"),
                    "ex_verify_note",
                    Effect::MtaOther,
                )]);
                (
                    format!("H={host} F=<{from}> rejected RCPT <{to}>: Sender verify failed"),
                    e("rcpt", "sender", "permanent"),
                )
            }
            "ex_virus" => {
                let id = self.exim_id();
                (
                    format!(
                        "{id} H={host} F=<{from}> rejected after DATA: This message contains a virus (Eicar-Test-Signature)."
                    ),
                    e("data", "virus", "permanent"),
                )
            }
            "ex_spam" => {
                let id = self.exim_id();
                (
                    format!(
                        "{id} H={host} F=<{from}> rejected after DATA: This message scored {}.{} spam points.",
                        6 + self.rng.below(20),
                        self.rng.below(10)
                    ),
                    e("data", "spam_content", "permanent"),
                )
            }
            "ex_size" => {
                let id = self.exim_id();
                let max = 52_428_800;
                (
                    format!(
                        "{id} rejected from <{from}> H={host}: message too big: read={} max={max}",
                        max + 1 + self.rng.below(9_000_000)
                    ),
                    e("data", "size", "permanent"),
                )
            }
            "ex_no_helo" => {
                (format!("rejected MAIL from [{}]: no HELO/EHLO given", c.ip), e("mail", "protocol", "permanent"))
            }
            "ex_nonmail_flood" => (
                format!(
                    "SMTP call from [{}]:{} dropped: too many nonmail commands (last was \"RSET\")",
                    c.ip,
                    1024 + self.rng.below(60_000)
                ),
                e("other", "protocol", "unknown"),
            ),
            "ex_header_syntax" => {
                let id = self.exim_id();
                (
                    format!(
                        "{id} H={host} F=<{from}> rejected after DATA: domain missing or malformed: failing address in \"From:\" header is: <{}@>",
                        self.user()
                    ),
                    e("data", "protocol", "permanent"),
                )
            }
            "ex_must_encrypt" => {
                let (to, _) = self.local_rcpt();
                (
                    format!(
                        "H={host} F=<{from}> rejected RCPT <{to}>: You must encrypt your connection before sending mail"
                    ),
                    e("rcpt", "tls_required", "permanent"),
                )
            }
            _ => (
                format!(
                    "dovecot_login authenticator failed for {host}:{}: 535 Incorrect authentication data (set_id={})",
                    1024 + self.rng.below(60_000),
                    self.user()
                ),
                e("auth", "auth_failed", "permanent"),
            ),
        };
        let line = self.ex(pid, msg.clone(), kind, effect);
        if self.rng.below(10) == 0 && kind != "ex_auth" && kind != "ex_nonmail_flood" {
            // Exim via syslog: the reject-log copy on the very next line counts once
            let copy = self.ex(pid, msg, "ex_reject_log_copy", Effect::MtaOther);
            g.push_back(vec![line, copy]);
        } else {
            g.push_back(vec![line]);
        }
    }
}

/// Unix seconds as a UTC calendar date: the exporter's own conversion.
pub use mailroute_exporter::logging::civil;
