//! `/probe?target=DOMAIN` (SPEC §7.2): the multi-target exporter pattern of
//! blackbox_exporter. Prometheus' service discovery supplies the domains and
//! `hashmod` relabelling spreads them over replicas; each scrape of `/probe` runs
//! one round for its target and answers that domain's DNS metric families, with the
//! same names and `domain` label as the statically configured domains.
//!
//! - [`parse_request`]: the query string: `target` (required, a domain name) and
//!   any number of `dkim_selector`; 400 without a target or with a malformed name,
//!   403 for a name outside `[dns] probe_allow` ([`allowed`]);
//! - [`probe_deadline`]: the round's deadline, from Prometheus'
//!   `X-Prometheus-Scrape-Timeout-Seconds` header minus [`DEADLINE_MARGIN`];
//! - [`ProbeCache`]: single flight and reuse. Concurrent probes of one target (with
//!   the same selectors) share one round, and a result younger than
//!   `[dns] probe_cache_age` is served again, so an HA pair of Prometheus servers
//!   scraping the same target costs the authoritative servers one round.
//!
//! A probed domain that is not configured is checked with no SMTP probing (and no
//! HTTPS fetch): only configured domains may make the exporter connect to mail or
//! web servers. A configured domain is probed with its configuration.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::FutureExt as _;
use futures_util::future::{BoxFuture, Shared};

use super::state::DomainResult;
use crate::config::{DomainConfig, parse_domain};

/// Subtracted from Prometheus' scrape timeout so that the answer arrives in time
/// (blackbox_exporter's default `--timeout-offset`).
pub const DEADLINE_MARGIN: Duration = Duration::from_millis(500);
/// The shortest deadline a probe gets, whatever the header says.
pub const MIN_DEADLINE: Duration = Duration::from_millis(200);
/// The most `dkim_selector` parameters one probe takes.
pub const MAX_SELECTORS: usize = 16;

/// What a `/probe` request asks for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProbeRequest {
    /// The domain, lower case, no trailing dot.
    pub target: String,
    /// DKIM selectors, lower case, sorted, without repeats.
    pub dkim_selectors: Vec<String>,
}

/// Why a `/probe` request is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// 400: no `target`, a malformed name or selector, or too many selectors.
    BadRequest(String),
    /// 403: the target is outside `probe_allow`.
    Forbidden(String),
}

impl Refusal {
    pub fn status(&self) -> u16 {
        match self {
            Refusal::BadRequest(_) => 400,
            Refusal::Forbidden(_) => 403,
        }
    }

    pub fn message(&self) -> &str {
        match self {
            Refusal::BadRequest(m) | Refusal::Forbidden(m) => m,
        }
    }
}

/// Does `domain` match one of `patterns`? A pattern is a name (that name only) or
/// `*.suffix` (any name strictly below the suffix, at any depth, not the suffix
/// itself). Both sides are lower case without a trailing dot.
pub fn allowed(patterns: &[String], domain: &str) -> bool {
    patterns.iter().any(|p| match p.strip_prefix("*.") {
        Some(suffix) => domain.strip_suffix(suffix).is_some_and(|head| head.len() > 1 && head.ends_with('.')),
        None => p == domain,
    })
}

/// Reads the query string of a `/probe` request (`application/x-www-form-urlencoded`).
pub fn parse_request(query: &str, allow: &[String]) -> Result<ProbeRequest, Refusal> {
    let mut target: Option<String> = None;
    let mut selectors = Vec::new();
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        match k.as_ref() {
            "target" => {
                if target.is_some() {
                    return Err(Refusal::BadRequest("target given more than once".to_string()));
                }
                target = Some(v.into_owned());
            }
            "dkim_selector" => {
                let sel = v.trim().to_ascii_lowercase();
                if sel.is_empty() || parse_domain(&sel).is_err() || sel.ends_with('.') {
                    return Err(Refusal::BadRequest(format!("invalid dkim_selector {v:?}")));
                }
                selectors.push(sel);
            }
            _ => {}
        }
    }
    let Some(raw) = target.filter(|t| !t.trim().is_empty()) else {
        return Err(Refusal::BadRequest("target parameter is missing".to_string()));
    };
    let target = parse_domain(&raw).map_err(Refusal::BadRequest)?;
    // a single label is not a domain anyone can register mail for
    if !target.contains('.') {
        return Err(Refusal::BadRequest(format!("invalid domain name {raw:?}: a single label")));
    }
    selectors.sort();
    selectors.dedup();
    if selectors.len() > MAX_SELECTORS {
        return Err(Refusal::BadRequest(format!("more than {MAX_SELECTORS} dkim_selector parameters")));
    }
    if !allowed(allow, &target) {
        return Err(Refusal::Forbidden(format!("{target} is not in [dns] probe_allow")));
    }
    Ok(ProbeRequest { target, dkim_selectors: selectors })
}

/// The round's deadline: the scrape timeout Prometheus sends, minus
/// [`DEADLINE_MARGIN`], at least [`MIN_DEADLINE`], at most `longest` (the
/// deadline of a configured domain's round). Without a readable header, `longest`.
pub fn probe_deadline(header: Option<&str>, longest: Duration) -> Duration {
    let Some(secs) = header.and_then(|h| h.trim().parse::<f64>().ok()).filter(|s| s.is_finite() && *s > 0.0) else {
        return longest;
    };
    let scrape = Duration::try_from_secs_f64(secs).unwrap_or(longest);
    scrape.saturating_sub(DEADLINE_MARGIN).max(MIN_DEADLINE).min(longest)
}

/// The configuration a probe checks the target with: the configured domain's own
/// (selectors from the request added), or a bare one with no SMTP probing.
pub fn probe_config(req: &ProbeRequest, configured: Option<&DomainConfig>) -> DomainConfig {
    match configured {
        Some(c) => {
            let mut c = c.clone();
            for s in &req.dkim_selectors {
                if !c.dkim_selectors.contains(s) {
                    c.dkim_selectors.push(s.clone());
                }
            }
            c
        }
        None => DomainConfig {
            name: req.target.clone(),
            dkim_selectors: req.dkim_selectors.clone(),
            ..DomainConfig::default()
        },
    }
}

/// A probe's outcome: the round's result for the one domain, as the metrics
/// collector takes it.
pub type ProbeOutcome = Arc<BTreeMap<String, DomainResult>>;

struct Entry {
    started: Instant,
    round: Shared<BoxFuture<'static, ProbeOutcome>>,
}

/// Rounds of `/probe`, shared while they run and reused while they are young.
pub struct ProbeCache {
    entries: Mutex<HashMap<ProbeRequest, Entry>>,
    last_sweep: Mutex<Instant>,
}

impl std::fmt::Debug for ProbeCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProbeCache").field("entries", &self.len()).finish()
    }
}

impl Default for ProbeCache {
    fn default() -> Self {
        ProbeCache { entries: Mutex::new(HashMap::new()), last_sweep: Mutex::new(Instant::now()) }
    }
}

/// Whether a probe started a round or joined/reused one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// This request started the round.
    Started,
    /// A round for the same request was running or recent enough.
    Shared,
}

impl ProbeCache {
    pub fn len(&self) -> usize {
        self.entries.lock().map(|e| e.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The round for `req`: the one running or finished less than `max_age` ago,
    /// or a new one from `start` (spawned, so that it finishes and is kept even if
    /// the scrape that started it goes away).
    pub fn get_or_start(
        &self,
        req: &ProbeRequest,
        max_age: Duration,
        start: impl FnOnce() -> BoxFuture<'static, ProbeOutcome>,
    ) -> (Shared<BoxFuture<'static, ProbeOutcome>>, Source) {
        let now = Instant::now();
        let Ok(mut entries) = self.entries.lock() else {
            return (spawned(start()), Source::Started);
        };
        self.sweep(&mut entries, now, max_age);
        if let Some(e) = entries.get(req) {
            let running = e.round.peek().is_none();
            if running || now.duration_since(e.started) < max_age {
                return (e.round.clone(), Source::Shared);
            }
        }
        let round = spawned(start());
        entries.insert(req.clone(), Entry { started: now, round: round.clone() });
        (round, Source::Started)
    }

    /// Forgets finished rounds older than `max_age`, at most once a second.
    fn sweep(&self, entries: &mut HashMap<ProbeRequest, Entry>, now: Instant, max_age: Duration) {
        let Ok(mut last) = self.last_sweep.lock() else { return };
        if now.duration_since(*last) < Duration::from_secs(1) {
            return;
        }
        *last = now;
        entries.retain(|_, e| e.round.peek().is_none() || now.duration_since(e.started) < max_age);
    }
}

fn spawned(round: BoxFuture<'static, ProbeOutcome>) -> Shared<BoxFuture<'static, ProbeOutcome>> {
    let handle = tokio::spawn(round);
    async move { handle.await.unwrap_or_else(|_| Arc::new(BTreeMap::new())) }.boxed().shared()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allow(p: &[&str]) -> Vec<String> {
        p.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn allow_list() {
        let a = allow(&["example.org", "*.customers.test"]);
        for (name, ok) in [
            ("example.org", true),
            ("www.example.org", false),
            ("a.customers.test", true),
            ("deep.a.customers.test", true),
            ("customers.test", false),
            ("evilcustomers.test", false),
            ("xcustomers.test", false),
            ("org", false),
        ] {
            assert_eq!(allowed(&a, name), ok, "{name}");
        }
        assert!(!allowed(&[], "example.org"), "[] allows nothing");
    }

    #[test]
    fn requests() {
        let a = allow(&["*.test"]);
        let ok = parse_request("target=Mail.Example.TEST.&dkim_selector=S2&dkim_selector=s1&dkim_selector=s2", &a)
            .expect("valid");
        assert_eq!(ok.target, "mail.example.test");
        assert_eq!(ok.dkim_selectors, vec!["s1", "s2"]);
        let refusals = [
            ("", 400, "target parameter is missing"),
            ("target=", 400, "target parameter is missing"),
            ("module=dns", 400, "target parameter is missing"),
            ("target=a.test&target=b.test", 400, "target given more than once"),
            ("target=exa%20mple.test", 400, "invalid domain name \"exa mple.test\""),
            ("target=a..test", 400, "invalid domain name"),
            ("target=test", 400, "a single label"),
            ("target=a.test&dkim_selector=%3Cscript%3E", 400, "invalid dkim_selector \"<script>\""),
            ("target=example.org", 403, "example.org is not in [dns] probe_allow"),
        ];
        for (q, status, text) in refusals {
            let e = parse_request(q, &a).expect_err(q);
            assert_eq!(e.status(), status, "{q}: {e:?}");
            assert!(e.message().contains(text), "{q}: {e:?}");
        }
        let many: String = (0..17).map(|i| format!("dkim_selector=s{i}&")).collect();
        assert_eq!(parse_request(&format!("{many}target=a.test"), &a).expect_err("many").status(), 400);
        assert_eq!(parse_request("target=a.test", &[]).expect_err("empty allow").status(), 403);
    }

    #[test]
    fn deadlines() {
        let longest = Duration::from_secs(60);
        assert_eq!(probe_deadline(Some("10"), longest), Duration::from_millis(9500));
        assert_eq!(probe_deadline(Some(" 2.5 "), longest), Duration::from_secs(2));
        assert_eq!(probe_deadline(Some("0.3"), longest), MIN_DEADLINE);
        assert_eq!(probe_deadline(Some("600"), longest), longest);
        for bad in ["", "x", "-1", "0", "NaN", "inf", "1e400"] {
            assert_eq!(probe_deadline(Some(bad), longest), longest, "{bad:?}");
        }
        assert_eq!(probe_deadline(None, longest), longest);
    }

    #[test]
    fn configured_domains_keep_their_configuration() {
        let req = ProbeRequest { target: "a.test".into(), dkim_selectors: vec!["s2".into()] };
        let bare = probe_config(&req, None);
        assert!(!bare.smtp_probe, "no SMTP probing of unconfigured targets");
        assert_eq!(bare.dkim_selectors, vec!["s2"]);
        let configured = DomainConfig {
            name: "a.test".into(),
            dkim_selectors: vec!["s1".into()],
            smtp_probe: true,
            ..Default::default()
        };
        let c = probe_config(&req, Some(&configured));
        assert!(c.smtp_probe);
        assert_eq!(c.dkim_selectors, vec!["s1", "s2"]);
    }

    fn outcome(n: usize) -> ProbeOutcome {
        let mut m = BTreeMap::new();
        m.insert(
            format!("round{n}"),
            DomainResult {
                domain: "a.test".into(),
                snapshot: None,
                checks: Vec::new(),
                error: None,
                finished_at: None,
                duration_seconds: 0.0,
            },
        );
        Arc::new(m)
    }

    #[tokio::test]
    async fn single_flight_and_reuse() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let cache = ProbeCache::default();
        let rounds = Arc::new(AtomicUsize::new(0));
        let (gate_tx, gate_rx) = tokio::sync::oneshot::channel::<()>();
        let gate = Arc::new(Mutex::new(Some(gate_rx)));
        let req = ProbeRequest { target: "a.test".into(), dkim_selectors: vec![] };
        let start = || {
            let rounds = rounds.clone();
            let gate = gate.clone();
            move || {
                let n = rounds.fetch_add(1, Ordering::SeqCst);
                let rx = gate.lock().ok().and_then(|mut g| g.take());
                async move {
                    if let Some(rx) = rx {
                        let _ = rx.await;
                    }
                    outcome(n)
                }
                .boxed()
            }
        };
        // ten concurrent probes while the round runs: one round
        let age = Duration::from_secs(60);
        let mut waiting = Vec::new();
        for i in 0..10 {
            let (f, src) = cache.get_or_start(&req, age, start());
            assert_eq!(src, if i == 0 { Source::Started } else { Source::Shared });
            waiting.push(f);
        }
        let _ = gate_tx.send(());
        for f in waiting {
            assert!(f.await.contains_key("round0"));
        }
        // finished and young: reused
        let (f, src) = cache.get_or_start(&req, age, start());
        assert_eq!(src, Source::Shared);
        assert!(f.await.contains_key("round0"));
        assert_eq!(rounds.load(Ordering::SeqCst), 1);
        // another request (other selectors) is another round
        let other = ProbeRequest { target: "a.test".into(), dkim_selectors: vec!["s1".into()] };
        let (f, src) = cache.get_or_start(&other, age, start());
        assert_eq!(src, Source::Started);
        assert!(f.await.contains_key("round1"));
        // too old: a new round
        let (f, src) = cache.get_or_start(&req, Duration::ZERO, start());
        assert_eq!(src, Source::Started);
        assert!(f.await.contains_key("round2"));
        assert_eq!(rounds.load(Ordering::SeqCst), 3);
    }
}
