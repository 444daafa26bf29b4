//! Lines in, counters out: envelope → MTA parser → metrics, per source.
//!
//! A [`Processor`] belongs to one log source (it keeps that source's Exim
//! continuation state and its cached counters); the state all sources share — the
//! host table with its `max_hosts` cap, the domains that make a reject a misroute,
//! and the ring of recent misroutes — is a [`MailState`].

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use super::envelope;
use super::exim::{self, EximJoiner, Joined};
use super::postfix;
use super::reason::Classifier;
use super::sendmail;
use super::state::Counts;
use super::tail::TailPosition;
use super::{Event, Mta, Outcome, Reason, Reject};
use prometheus_client::metrics::counter::Counter;

use crate::metrics::{HostMtaLabels, Metrics, MisrouteLabels, RejectLabels, SharedLabel, SourceCounters};

/// The host label of hosts beyond `max_hosts`.
pub const OTHER_HOST: &str = "other";
/// Host names longer than this are cut (a syslog host field is at most 255 bytes).
const MAX_HOST_LEN: usize = 255;
/// Misroutes kept for the status page.
pub const MISROUTE_RING: usize = 256;

/// One misroute, remembered for the diagnosis on the status page. Never a label.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MisrouteRecord {
    /// Unix time at which the exporter read the line.
    pub seen_at: f64,
    /// The line's own timestamp, as written.
    pub logged_at: String,
    pub host: String,
    pub mta: Mta,
    pub domain: String,
    /// The SMTP client as logged (`name[ip]`), cut to 128 bytes.
    pub client: String,
}

/// Hosts seen so far, capped at `max_hosts`; later hosts become `other`.
#[derive(Debug)]
struct HostTable {
    max: usize,
    known: HashMap<Box<[u8]>, SharedLabel>,
    other: SharedLabel,
}

impl HostTable {
    fn label(&mut self, host: &[u8]) -> SharedLabel {
        let host = &host[..host.len().min(MAX_HOST_LEN)];
        if let Some(l) = self.known.get(host) {
            return l.clone();
        }
        if self.known.len() >= self.max {
            return self.other.clone();
        }
        let label = SharedLabel::new(&String::from_utf8_lossy(host));
        self.known.insert(host.into(), label.clone());
        label
    }
}

/// State shared by every source of one exporter.
#[derive(Debug)]
pub struct MailState {
    pub metrics: Arc<Metrics>,
    pub classifier: Classifier,
    hosts: Mutex<HostTable>,
    /// Lowercased domain → its label; replaced as a whole on reload.
    domains: RwLock<Arc<HashMap<String, SharedLabel>>>,
    /// The host label for lines without a syslog host.
    default_host: RwLock<SharedLabel>,
    misroutes: Mutex<VecDeque<MisrouteRecord>>,
    /// Misroutes per (host, domain) in each of the last 60 minutes, for the diagnosis:
    /// exact counts however many misroutes the ring above has room for.
    recent: Mutex<HashMap<(SharedLabel, SharedLabel), MinuteCounts>>,
    /// Every label set counted so far, with its counter, so the counts can be listed
    /// (replay output, status page); prometheus-client families cannot be iterated.
    known: Mutex<Known>,
    /// File sources hold it for reading while they count a poll's lines and publish
    /// their position; a state snapshot holds it for writing (see [`super::state`]).
    pub gate: RwLock<()>,
    /// Where each source's reading stands, as published after each read.
    published: Mutex<BTreeMap<String, Resume>>,
    /// What the state file restored, taken by the sources as they start.
    resume: Mutex<BTreeMap<String, Resume>>,
    /// A state file is kept: a stopping source leaves an unfinished line for the
    /// next start instead of counting it.
    pub persistent: AtomicBool,
}

/// What the state file keeps of a source besides its counters: where a file's
/// reading stands, the journal's cursor, and what the Exim joiner holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resume {
    pub position: Option<TailPosition>,
    pub cursor: Option<String>,
    pub join: Option<exim::JoinState>,
}

/// The series created so far.
#[derive(Debug, Default, Clone)]
pub struct Known {
    pub rejects: HashMap<RejectLabels, Counter>,
    pub misroutes: HashMap<MisrouteLabels, Counter>,
    pub accepted: HashMap<HostMtaLabels, Counter>,
    pub sources: Vec<(SharedLabel, SourceCounters)>,
}

/// A snapshot of every mail log counter, sorted, for printing.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Tally {
    pub rejects: Vec<(RejectLabels, u64)>,
    pub misroutes: Vec<(MisrouteLabels, u64)>,
    pub accepted: Vec<(HostMtaLabels, u64)>,
    /// (source, outcome, lines), then (source, read errors, truncated lines).
    pub lines: Vec<(String, Outcome, u64)>,
    pub sources: Vec<(String, u64, u64)>,
}

impl MailState {
    /// `domains` are the monitored and local domains; `default_host` labels lines
    /// without a host (Exim's mainlog, bare container lines).
    pub fn new(metrics: Arc<Metrics>, max_hosts: usize, default_host: &str, domains: &[String]) -> MailState {
        let state = MailState {
            metrics,
            classifier: Classifier::new(),
            hosts: Mutex::new(HostTable { max: max_hosts, known: HashMap::new(), other: SharedLabel::new(OTHER_HOST) }),
            domains: RwLock::new(Arc::new(HashMap::new())),
            default_host: RwLock::new(SharedLabel::new(default_host)),
            misroutes: Mutex::new(VecDeque::with_capacity(MISROUTE_RING)),
            recent: Mutex::new(HashMap::new()),
            known: Mutex::new(Known::default()),
            gate: RwLock::new(()),
            published: Mutex::new(BTreeMap::new()),
            resume: Mutex::new(BTreeMap::new()),
            persistent: AtomicBool::new(false),
        };
        state.set_domains(domains);
        state
    }

    /// Replaces the set of domains that make a relay-denied reject a misroute.
    pub fn set_domains(&self, domains: &[String]) {
        let map = domains
            .iter()
            .map(|d| {
                let d = d.trim_end_matches('.').to_ascii_lowercase();
                let label = SharedLabel::new(&d);
                (d, label)
            })
            .collect();
        if let Ok(mut g) = self.domains.write() {
            *g = Arc::new(map);
        }
    }

    fn domain_label(&self, domain: &str) -> Option<SharedLabel> {
        let map = self.domains.read().ok()?.clone();
        map.get(domain).cloned()
    }

    /// Changes `max_hosts` (hosts already labelled keep their label) and the
    /// default host label.
    pub fn set_hosts(&self, max_hosts: usize, default_host: &str) {
        if let Ok(mut t) = self.hosts.lock() {
            t.max = max_hosts;
        }
        if let Ok(mut d) = self.default_host.write()
            && d.as_str() != default_host
        {
            *d = SharedLabel::new(default_host);
        }
    }

    fn host_label(&self, host: Option<&[u8]>) -> SharedLabel {
        match host {
            None => self.default_host.read().map(|d| d.clone()).unwrap_or_else(|_| SharedLabel::new(OTHER_HOST)),
            Some(h) => match self.hosts.lock() {
                Ok(mut t) => t.label(h),
                Err(_) => SharedLabel::new(OTHER_HOST),
            },
        }
    }

    /// Every counter so far, sorted by labels.
    pub fn tally(&self) -> Tally {
        let Ok(k) = self.known.lock() else { return Tally::default() };
        let mut t = Tally {
            rejects: k.rejects.iter().map(|(l, c)| (l.clone(), c.get())).collect(),
            misroutes: k.misroutes.iter().map(|(l, c)| (l.clone(), c.get())).collect(),
            accepted: k.accepted.iter().map(|(l, c)| (l.clone(), c.get())).collect(),
            lines: Vec::new(),
            sources: Vec::new(),
        };
        for (name, c) in &k.sources {
            for &o in Outcome::ALL {
                t.lines.push((name.as_str().to_string(), o, c.line(o).get()));
            }
            t.sources.push((name.as_str().to_string(), c.read_errors.get(), c.truncated.get()));
        }
        t.rejects.sort();
        t.misroutes.sort();
        t.accepted.sort();
        t.lines.sort();
        t.sources.sort();
        t
    }

    /// Records where a source's reading stands: call holding [`Self::gate`], after
    /// counting the lines that lead there.
    pub fn publish(&self, source: &str, update: impl FnOnce(&mut Resume)) {
        if let Ok(mut p) = self.published.lock() {
            match p.get_mut(source) {
                Some(r) => update(r),
                None => {
                    let mut r = Resume::default();
                    update(&mut r);
                    p.insert(source.to_string(), r);
                }
            }
        }
    }

    /// Where every source's reading stands, for a snapshot.
    pub fn published(&self) -> BTreeMap<String, Resume> {
        self.published.lock().map(|p| p.clone()).unwrap_or_default()
    }

    /// What the state file kept of a source, once (empty when nothing).
    pub fn take_resume(&self, source: &str) -> Resume {
        self.resume.lock().ok().and_then(|mut r| r.remove(source)).unwrap_or_default()
    }

    /// Adds counts from a state file (before any source runs) and keeps what it
    /// saved of each source for the sources to resume from. Hosts go through the host
    /// table, so `max_hosts` still holds.
    pub fn restore(&self, counts: &Counts, resume: BTreeMap<String, Resume>) {
        for (l, n) in &counts.rejects {
            let labels = RejectLabels { host: self.host_label(Some(l.host.as_str().as_bytes())), ..l.clone() };
            self.reject_counter(&labels).inc_by(*n);
        }
        for (l, n) in &counts.misroutes {
            let host = self.host_label(Some(l.host.as_str().as_bytes()));
            self.misroute_counter(&MisrouteLabels { host, domain: l.domain.clone() }).inc_by(*n);
        }
        for (l, n) in &counts.accepted {
            let labels = HostMtaLabels { host: self.host_label(Some(l.host.as_str().as_bytes())), mta: l.mta };
            self.accepted_counter(&labels).inc_by(*n);
        }
        for (source, lines, errors, truncated) in &counts.sources {
            let label = SharedLabel::new(source);
            let c = self.metrics.source_counters(&label);
            self.register_source(&label, &c);
            for (o, n) in lines {
                c.line(*o).inc_by(*n);
            }
            c.read_errors.inc_by(*errors);
            c.truncated.inc_by(*truncated);
        }
        if let Ok(mut p) = self.published.lock() {
            p.extend(resume.clone());
        }
        if let Ok(mut r) = self.resume.lock() {
            *r = resume;
        }
    }

    fn register_source(&self, name: &SharedLabel, counters: &SourceCounters) {
        if let Ok(mut k) = self.known.lock()
            && !k.sources.iter().any(|(n, _)| n == name)
        {
            k.sources.push((name.clone(), counters.clone()));
        }
    }

    fn reject_counter(&self, labels: &RejectLabels) -> Counter {
        let mut k = self.known.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        k.rejects.entry(labels.clone()).or_insert_with(|| self.metrics.rejects.get_or_create(labels).clone()).clone()
    }

    fn misroute_counter(&self, labels: &MisrouteLabels) -> Counter {
        let mut k = self.known.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        k.misroutes
            .entry(labels.clone())
            .or_insert_with(|| self.metrics.misroutes.get_or_create(labels).clone())
            .clone()
    }

    fn accepted_counter(&self, labels: &HostMtaLabels) -> Counter {
        let mut k = self.known.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        k.accepted.entry(labels.clone()).or_insert_with(|| self.metrics.accepted.get_or_create(labels).clone()).clone()
    }

    /// Recent misroutes, oldest first.
    pub fn recent_misroutes(&self) -> Vec<MisrouteRecord> {
        self.misroutes.lock().map(|r| r.iter().cloned().collect()).unwrap_or_default()
    }

    /// Misroutes of `domain` read in the last hour, per host.
    pub fn misroutes_last_hour(&self, domain: &str) -> Vec<(String, u64)> {
        let minute = now_minute();
        let Ok(r) = self.recent.lock() else { return Vec::new() };
        let mut out: Vec<(String, u64)> = r
            .iter()
            .filter(|((_, d), _)| d.as_str() == domain)
            .map(|((h, _), c)| (h.as_str().to_string(), c.sum(minute)))
            .filter(|(_, n)| *n > 0)
            .collect();
        out.sort();
        out
    }

    fn count_recent(&self, host: &SharedLabel, domain: &SharedLabel) {
        if let Ok(mut r) = self.recent.lock() {
            r.entry((host.clone(), domain.clone())).or_default().add(now_minute());
        }
    }

    fn remember(&self, rec: MisrouteRecord) {
        if let Ok(mut ring) = self.misroutes.lock() {
            if ring.len() >= MISROUTE_RING {
                ring.pop_front();
            }
            ring.push_back(rec);
        }
    }
}

fn now_minute() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs() / 60)
}

/// Counts per minute over the last hour (a ring of 60 buckets).
#[derive(Debug, Clone)]
pub struct MinuteCounts {
    buckets: [u64; 60],
    /// The minute the newest bucket belongs to.
    last: u64,
}

impl Default for MinuteCounts {
    fn default() -> Self {
        MinuteCounts { buckets: [0; 60], last: 0 }
    }
}

impl MinuteCounts {
    fn roll(&mut self, minute: u64) {
        if minute <= self.last {
            return;
        }
        let gap = (minute - self.last).min(60);
        for i in 1..=gap {
            self.buckets[((self.last + i) % 60) as usize] = 0;
        }
        self.last = minute;
    }

    pub fn add(&mut self, minute: u64) {
        self.roll(minute);
        self.buckets[(minute % 60) as usize] += 1;
    }

    /// The count over the 60 minutes up to `minute`.
    pub fn sum(&self, minute: u64) -> u64 {
        let mut copy = self.clone();
        copy.roll(minute);
        copy.buckets.iter().sum()
    }
}

/// Turns the lines of one source into counter increments.
#[derive(Debug)]
pub struct Processor {
    state: Arc<MailState>,
    counters: SourceCounters,
    exim: EximJoiner,
    /// Host label cache for this source (hosts admitted by the shared table only).
    hosts: HashMap<Box<[u8]>, SharedLabel>,
    /// Counter handles already looked up, so a repeated reject is one hash lookup
    /// and one atomic add.
    rejects: HashMap<RejectLabels, Counter>,
    accepted: HashMap<HostMtaLabels, Counter>,
}

fn mta_of(program: &[u8]) -> Option<Mta> {
    if postfix::is_postfix(program) {
        Some(Mta::Postfix)
    } else if sendmail::is_sendmail(program) {
        Some(Mta::Sendmail)
    } else if exim::is_exim(program) {
        Some(Mta::Exim)
    } else {
        None
    }
}

impl Processor {
    pub fn new(state: Arc<MailState>, source: &SharedLabel) -> Processor {
        let counters = state.metrics.source_counters(source);
        state.register_source(source, &counters);
        Processor {
            state,
            counters,
            exim: EximJoiner::default(),
            hosts: HashMap::new(),
            rejects: HashMap::new(),
            accepted: HashMap::new(),
        }
    }

    pub fn counters(&self) -> &SourceCounters {
        &self.counters
    }

    /// What the Exim joiner holds (`None` when nothing), for the state file.
    pub fn join_state(&self) -> Option<exim::JoinState> {
        if self.exim.is_idle() { None } else { Some(self.exim.save()) }
    }

    /// Takes back a joiner state saved by the last run.
    pub fn restore_join_state(&mut self, saved: &exim::JoinState) {
        self.exim.restore(saved);
    }

    /// Processes one line (without its newline) and counts it.
    pub fn line(&mut self, line: &[u8]) -> Outcome {
        let outcome = self.classify_line(line);
        self.counters.line(outcome).inc();
        outcome
    }

    fn classify_line(&mut self, line: &[u8]) -> Outcome {
        let Some(env) = envelope::parse(line) else {
            self.exim.other_line();
            return Outcome::Unparsed;
        };
        let Some(mta) = mta_of(env.program) else {
            self.exim.other_line();
            return Outcome::Foreign;
        };
        if mta != Mta::Exim {
            self.exim.other_line();
        }
        let classifier = &self.state.classifier;
        match mta {
            Mta::Postfix => {
                let event = postfix::parse(env.program, env.message, classifier);
                self.record(mta, env.host, env.timestamp, event)
            }
            Mta::Sendmail => {
                let event = sendmail::parse(env.message, classifier);
                self.record(mta, env.host, env.timestamp, event)
            }
            Mta::Exim => {
                let msg = if env.exim_mainlog { env.message } else { exim::strip_inner_timestamp(env.message) };
                let host_key = env.host.unwrap_or(b"");
                match self.exim.feed(host_key, env.pid, msg) {
                    Joined::Part => Outcome::MtaOther,
                    Joined::Whole(m) => {
                        let event = exim::parse(m, classifier);
                        let is_reject = matches!(event, Event::Reject(_));
                        if self.exim.is_duplicate(host_key, env.pid, m, is_reject) {
                            return Outcome::MtaOther;
                        }
                        self.record(mta, env.host, env.timestamp, event)
                    }
                    Joined::Assembled(buf) => {
                        let event = exim::parse(&buf, classifier);
                        let is_reject = matches!(event, Event::Reject(_));
                        if self.exim.is_duplicate(host_key, env.pid, &buf, is_reject) {
                            return Outcome::MtaOther;
                        }
                        // the joined line is gone after this call: record an owned copy
                        let event = owned_event(event);
                        self.record_owned(mta, env.host, env.timestamp, event)
                    }
                }
            }
        }
    }

    fn host(&mut self, host: Option<&[u8]>) -> SharedLabel {
        match host {
            Some(h) => {
                if let Some(l) = self.hosts.get(h) {
                    return l.clone();
                }
                let l = self.state.host_label(Some(h));
                if l.as_str() != OTHER_HOST {
                    self.hosts.insert(h.into(), l.clone());
                }
                l
            }
            None => self.state.host_label(None),
        }
    }

    fn record(&mut self, mta: Mta, host: Option<&[u8]>, ts: &[u8], event: Event<'_>) -> Outcome {
        match event {
            Event::Other => Outcome::MtaOther,
            Event::Accepted => {
                let labels = HostMtaLabels { host: self.host(host), mta };
                match self.accepted.get(&labels) {
                    Some(c) => {
                        c.inc();
                    }
                    None => {
                        let c = self.state.accepted_counter(&labels);
                        c.inc();
                        self.accepted.insert(labels, c);
                    }
                }
                Outcome::Accepted
            }
            Event::Reject(r) => {
                self.reject(mta, host, ts, &r);
                Outcome::Reject
            }
        }
    }

    fn record_owned(&mut self, mta: Mta, host: Option<&[u8]>, ts: &[u8], event: OwnedEvent) -> Outcome {
        match event {
            OwnedEvent::Other => Outcome::MtaOther,
            OwnedEvent::Accepted => self.record(mta, host, ts, Event::Accepted),
            OwnedEvent::Reject { stage, class, reason, recipient, client } => {
                let r = Reject { stage, class, reason, recipient: recipient.as_deref(), client: client.as_deref() };
                self.reject(mta, host, ts, &r);
                Outcome::Reject
            }
        }
    }

    fn reject(&mut self, mta: Mta, host: Option<&[u8]>, ts: &[u8], r: &Reject<'_>) {
        let host = self.host(host);
        let labels = RejectLabels { host: host.clone(), mta, stage: r.stage, reason: r.reason, class: r.class };
        match self.rejects.get(&labels) {
            Some(c) => {
                c.inc();
            }
            None => {
                let c = self.state.reject_counter(&labels);
                c.inc();
                self.rejects.insert(labels, c);
            }
        }
        if r.reason != Reason::RelayDenied {
            return;
        }
        let Some(domain) = r.recipient_domain() else { return };
        let Some(domain) = self.state.domain_label(&domain) else { return };
        self.state.misroute_counter(&MisrouteLabels { host: host.clone(), domain: domain.clone() }).inc();
        self.state.count_recent(&host, &domain);
        let client = r.client.unwrap_or(b"");
        self.state.remember(MisrouteRecord {
            seen_at: SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64()),
            logged_at: String::from_utf8_lossy(&ts[..ts.len().min(64)]).into_owned(),
            host: host.as_str().to_string(),
            mta,
            domain: domain.as_str().to_string(),
            client: String::from_utf8_lossy(&client[..client.len().min(128)]).into_owned(),
        });
    }
}

/// An [`Event`] that owns its bytes (for Exim lines joined from parts).
enum OwnedEvent {
    Other,
    Accepted,
    Reject {
        stage: super::Stage,
        class: super::Class,
        reason: Reason,
        recipient: Option<Vec<u8>>,
        client: Option<Vec<u8>>,
    },
}

fn owned_event(e: Event<'_>) -> OwnedEvent {
    match e {
        Event::Other => OwnedEvent::Other,
        Event::Accepted => OwnedEvent::Accepted,
        Event::Reject(r) => OwnedEvent::Reject {
            stage: r.stage,
            class: r.class,
            reason: r.reason,
            recipient: r.recipient.map(<[u8]>::to_vec),
            client: r.client.map(<[u8]>::to_vec),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup(max_hosts: usize) -> (Arc<MailState>, Processor) {
        let metrics = Arc::new(Metrics::new(None));
        let state = Arc::new(MailState::new(metrics, max_hosts, "localhost", &["nmrc.org".to_string()]));
        let p = Processor::new(state.clone(), &SharedLabel::new("test"));
        (state, p)
    }

    #[test]
    fn spec_example_is_a_misroute() {
        let (state, mut p) = setup(64);
        let line = b"May 28 08:25:35 rigor-mortis sm-mta[151721]: 04SDPXC5151721: ruleset=check_rcpt, arg1=<xxxxxxxx@nmrc.org>, relay=mail-mw2nam10on2117.outbound.protection.outlook.com [40.107.94.117], reject=550 5.7.1 <xxxxxxxx@nmrc.org>... Relaying denied. Proper authentication required.";
        assert_eq!(p.line(line), Outcome::Reject);
        let text = state.metrics.encode_openmetrics();
        assert!(text.contains(r#"mailroute_smtp_rejects_total{host="rigor-mortis",mta="sendmail",stage="rcpt",reason="relay_denied",class="permanent"} 1"#), "{text}");
        assert!(text.contains(r#"mailroute_misroutes_total{host="rigor-mortis",domain="nmrc.org"} 1"#), "{text}");
        let ring = state.recent_misroutes();
        assert_eq!(ring.len(), 1);
        assert_eq!(ring[0].client, "mail-mw2nam10on2117.outbound.protection.outlook.com [40.107.94.117]");
        assert_eq!(ring[0].logged_at, "May 28 08:25:35");
    }

    #[test]
    fn minute_counts_forget_after_an_hour() {
        let mut c = MinuteCounts::default();
        c.add(1000);
        c.add(1000);
        c.add(1030);
        assert_eq!(c.sum(1030), 3);
        assert_eq!(c.sum(1059), 3);
        assert_eq!(c.sum(1060), 1, "minute 1000 left the window");
        assert_eq!(c.sum(1090), 0);
        c.add(5000);
        assert_eq!(c.sum(5000), 1);
    }

    #[test]
    fn hosts_are_capped() {
        let (state, mut p) = setup(2);
        for h in ["a", "b", "c", "d"] {
            let line = format!(
                "May 28 08:25:35 {h} postfix/smtpd[1]: NOQUEUE: reject: RCPT from x[1.2.3.4]: 554 5.7.1 <a@b>: Relay access denied; from=<s@x> to=<a@b> proto=ESMTP helo=<x>"
            );
            assert_eq!(p.line(line.as_bytes()), Outcome::Reject);
        }
        let text = state.metrics.encode_text();
        assert!(text.contains(r#"host="a""#) && text.contains(r#"host="b""#));
        assert!(!text.contains(r#"host="c""#) && !text.contains(r#"host="d""#));
        assert!(text.contains(r#"mailroute_smtp_rejects_total{host="other",mta="postfix",stage="rcpt",reason="relay_denied",class="permanent"} 2"#), "{text}");
    }

    #[test]
    fn outcomes() {
        let (_, mut p) = setup(8);
        assert_eq!(p.line(b"garbage"), Outcome::Unparsed);
        assert_eq!(p.line(b"May 28 08:25:35 h dovecot[1]: imap-login: Login"), Outcome::Foreign);
        assert_eq!(p.line(b"May 28 08:25:35 h postfix/qmgr[1]: ABC: removed"), Outcome::MtaOther);
        assert_eq!(p.line(b"May 28 08:25:35 h postfix/smtpd[1]: ABC123: client=x[1.2.3.4]"), Outcome::Accepted);
        assert_eq!(p.line(b"\xff\xfe\x00 invalid"), Outcome::Unparsed);
    }

    #[test]
    fn exim_duplicates_and_parts_count_once() {
        let (state, mut p) = setup(8);
        let l = b"May 28 08:25:35 gw exim[5]: H=x [1.2.3.4] F=<s@x> rejected RCPT <a@nmrc.org>: relay not permitted";
        assert_eq!(p.line(l), Outcome::Reject);
        assert_eq!(p.line(l), Outcome::MtaOther);
        assert_eq!(p.line(b"May 28 08:25:36 gw exim[6]: [1/2] 2026-05-28 08:25:36 H=x [1.2.3.4] F=<s@x> rejected RCPT <b@nmrc.org>: relay "), Outcome::MtaOther);
        assert_eq!(p.line(b"May 28 08:25:36 gw exim[6]: [2/2] not permitted"), Outcome::Reject);
        let text = state.metrics.encode_text();
        assert!(text.contains(r#"mailroute_misroutes_total{host="gw",domain="nmrc.org"} 2"#), "{text}");
    }

    /// The joiner's state survives a restart through the state file's JSON: a split
    /// entry is completed by the next run, and a reject-log copy that comes after the
    /// restart is still recognised.
    #[test]
    fn exim_join_state_is_carried_across_a_restart() {
        let (state, mut p) = setup(8);
        assert_eq!(p.join_state(), None, "nothing held yet");
        let reject =
            b"May 28 08:25:35 gw exim[5]: H=x [1.2.3.4] F=<s@x> rejected RCPT <a@nmrc.org>: relay not permitted";
        assert_eq!(p.line(reject), Outcome::Reject);
        assert_eq!(p.line(b"May 28 08:25:36 gw exim[6]: [1/2] 2026-05-28 08:25:36 H=x [1.2.3.4] F=<s@x> rejected RCPT <b@nmrc.org>: relay "), Outcome::MtaOther);
        let saved = p.join_state().expect("a split entry and a reject are held");
        let json = serde_json::to_string(&saved).unwrap();
        // the next run: a new processor with the saved state
        let mut next = Processor::new(state.clone(), &SharedLabel::new("next"));
        next.restore_join_state(&serde_json::from_str(&json).unwrap());
        assert_eq!(next.line(b"May 28 08:25:36 gw exim[6]: [2/2] not permitted"), Outcome::Reject);
        let text = state.metrics.encode_text();
        assert!(text.contains(r#"mailroute_misroutes_total{host="gw",domain="nmrc.org"} 2"#), "{text}");
        assert_eq!(next.join_state().map(|j| j.pending.len()), Some(0), "the entry is complete; a reject is held");
        // without the state, the second part alone counts nothing
        let mut fresh = Processor::new(state.clone(), &SharedLabel::new("fresh"));
        assert_eq!(fresh.line(b"May 28 08:25:36 gw exim[6]: [2/2] not permitted"), Outcome::MtaOther);
        // the reject-log copy right after a restart is a copy, not a second reject
        let (state, mut p) = setup(8);
        assert_eq!(p.line(reject), Outcome::Reject);
        let saved = p.join_state().unwrap();
        let mut next = Processor::new(state.clone(), &SharedLabel::new("next"));
        next.restore_join_state(&saved);
        assert_eq!(next.line(reject), Outcome::MtaOther);
        assert_eq!(next.join_state(), None, "the copy ends what was held");
    }
}
