//! The latest DNS round's results, the scheduler that produces them, the collector
//! that renders them as metrics, and their parts of the status page.
//!
//! A round's results replace the previous round's as a whole (one `Arc` swap), so a
//! scrape sees one round or the next, never a mix; a domain removed from the
//! configuration disappears with the next round.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::gauge::ConstGauge;
use serde::Serialize;

use super::checks::{self, CheckResult, Severity};
use super::probe::Prober;
use super::recursive::Recursive;
use super::round::{Settings, snapshot_with};
use super::snapshot::{Snapshot, Standing, list};
use super::targets::{ProbeCache, ProbeOutcome, ProbeRequest, Source};
use crate::config::DomainConfig;
use crate::maillog::processor::MailState;

/// One domain's result in one round.
#[derive(Debug, Clone, Serialize)]
pub struct DomainResult {
    pub domain: String,
    /// What was asked and answered (`None` when the round hit its deadline).
    pub snapshot: Option<Snapshot>,
    /// Every evaluated check, passing ones included.
    pub checks: Vec<CheckResult>,
    /// Why the round produced no snapshot.
    pub error: Option<String>,
    /// Unix time at which the last complete round for this domain ended.
    pub finished_at: Option<f64>,
    pub duration_seconds: f64,
}

impl DomainResult {
    pub fn failing(&self) -> impl Iterator<Item = &CheckResult> {
        self.checks.iter().filter(|c| c.failed)
    }

    /// The round could not judge the domain (`dns_round_failed` fails, or there is
    /// no verdict at all).
    pub fn round_failed(&self) -> bool {
        self.checks.iter().find(|c| c.check == "dns_round_failed").is_none_or(|c| c.failed)
    }

    /// The worst severity among failing checks.
    pub fn worst(&self) -> Option<Severity> {
        self.failing().map(|c| c.severity).min()
    }
}

fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// How long one domain's round may take before it is abandoned.
pub fn round_deadline(timeout: Duration, interval: Duration) -> Duration {
    (timeout * 20).max(Duration::from_secs(10)).min(interval.max(Duration::from_secs(1)))
}

async fn round_one(
    prober: &Prober,
    rec: &Recursive,
    settings: &Settings,
    d: DomainConfig,
    deadline: Duration,
) -> (String, DomainResult) {
    let started = Instant::now();
    let r = tokio::time::timeout(deadline, snapshot_with(prober, rec, settings, &d)).await;
    let duration_seconds = started.elapsed().as_secs_f64();
    let result = match r {
        Ok(snap) => DomainResult {
            domain: d.name.clone(),
            checks: checks::evaluate(&snap, &d),
            error: None,
            finished_at: Some(now()),
            snapshot: Some(snap),
            duration_seconds,
        },
        Err(_) => {
            // the deadline cut the round: that is itself the verdict (dns_round_failed)
            let e = format!("the round for {} did not finish within {:.0}s", d.name, deadline.as_secs_f64());
            let snap =
                Snapshot { domain: super::snapshot::norm(&d.name), failure: Some(e.clone()), ..Snapshot::default() };
            DomainResult {
                domain: d.name.clone(),
                checks: checks::evaluate(&snap, &d),
                snapshot: None,
                error: Some(e),
                finished_at: None,
                duration_seconds,
            }
        }
    };
    (d.name, result)
}

/// Runs one round for every domain, a bounded number at a time. Resolver answers
/// are shared by the round's domains (one [`Recursive`], and so one cache, per round).
pub async fn run_round(
    prober: &Prober,
    settings: &Settings,
    domains: &[DomainConfig],
    deadline: Duration,
) -> BTreeMap<String, DomainResult> {
    // one resolver, and so one cache, per round: shared names are asked once, and no
    // answer outlives the round
    let rec = Recursive::new(&settings.resolvers, prober.timeout())
        .with_limit(prober.concurrency())
        .with_counters(prober.counters());
    let rec = &rec;
    let work = domains.iter().cloned().map(|d| round_one(prober, rec, settings, d, deadline));
    // a bounded number of domains in flight keeps memory flat for large configurations;
    // the prober's semaphore bounds the queries themselves
    let in_flight = prober.concurrency().max(1);
    futures_util::stream::iter(work).buffer_unordered(in_flight).collect::<Vec<_>>().await.into_iter().collect()
}

/// The domains, the latest results, and readiness.
#[derive(Debug)]
pub struct DnsState {
    first_round_done: AtomicBool,
    domains: RwLock<Vec<DomainConfig>>,
    results: RwLock<Arc<BTreeMap<String, DomainResult>>>,
    interval: RwLock<Duration>,
    /// How rounds reach the servers; replaced on reload.
    engine: RwLock<Option<(Prober, Settings)>>,
    /// Wakes the scheduler for an early round (after a reload).
    wake: tokio::sync::Notify,
    /// `/probe`: who may be probed and how long a result is reused.
    probe_settings: RwLock<ProbeSettings>,
    /// `/probe` rounds running or recent.
    probes: ProbeCache,
    /// The resolver (and its cache) shared by the probes of one cache period.
    probe_lookups: std::sync::Mutex<Option<(Instant, Arc<Recursive>)>>,
}

/// The `[dns]` settings of `/probe`.
#[derive(Debug, Clone, Default)]
pub struct ProbeSettings {
    pub allow: Vec<String>,
    pub cache_age: Duration,
}

impl DnsState {
    pub fn new(domains: Vec<DomainConfig>, interval: Duration) -> DnsState {
        let done = domains.is_empty();
        DnsState {
            first_round_done: AtomicBool::new(done),
            domains: RwLock::new(domains),
            results: RwLock::new(Arc::new(BTreeMap::new())),
            interval: RwLock::new(interval),
            engine: RwLock::new(None),
            wake: tokio::sync::Notify::new(),
            probe_settings: RwLock::new(ProbeSettings::default()),
            probes: ProbeCache::default(),
            probe_lookups: std::sync::Mutex::new(None),
        }
    }

    /// Sets who `/probe` may check and how long its results are reused.
    pub fn set_probe_settings(&self, settings: ProbeSettings) {
        if let Ok(mut p) = self.probe_settings.write() {
            *p = settings;
        }
    }

    pub fn probe_settings(&self) -> ProbeSettings {
        self.probe_settings.read().map(|p| p.clone()).unwrap_or_default()
    }

    /// The deadline of a configured domain's round: the longest a probe may take.
    pub fn longest_deadline(&self) -> Duration {
        let timeout = self.engine().map_or(Duration::from_secs(2), |(p, _)| p.timeout());
        round_deadline(timeout, self.interval())
    }

    /// Runs (or joins, or reuses) the round for a `/probe` request. The answer
    /// comes within `deadline` (plus a little): a round that is not done by then,
    /// or an exporter with no DNS engine, gives a result with an error, which the
    /// metrics show as `round_success` 0.
    pub async fn probe(&self, req: &ProbeRequest, deadline: Duration) -> (ProbeOutcome, Source) {
        let failed = |error: String| -> ProbeOutcome {
            // never an empty result: the failure is itself the verdict (dns_round_failed)
            let snap = Snapshot {
                domain: super::snapshot::norm(&req.target),
                failure: Some(error.clone()),
                ..Snapshot::default()
            };
            let d = DomainConfig { name: req.target.clone(), ..DomainConfig::default() };
            let r = DomainResult {
                domain: req.target.clone(),
                snapshot: None,
                checks: checks::evaluate(&snap, &d),
                error: Some(error),
                finished_at: None,
                duration_seconds: 0.0,
            };
            Arc::new(BTreeMap::from([(req.target.clone(), r)]))
        };
        let Some((prober, mut settings)) = self.engine() else {
            return (failed("the DNS engine is not running".to_string()), Source::Started);
        };
        let age = self.probe_settings().cache_age;
        let lookups = self.probe_lookups(age.max(Duration::from_secs(1)), &prober, &settings);
        let configured = self.domains.read().ok().and_then(|d| d.iter().find(|d| d.name == req.target).cloned());
        // no HTTPS (MTA-STS) or SMTP probing of a domain that is not configured (SPEC 7.2)
        settings.mail_tls.fetch_mta_sts &= configured.is_some();
        let config = super::targets::probe_config(req, configured.as_ref());
        let started = Instant::now();
        let (round, source) = self.probes.get_or_start(req, age, move || {
            Box::pin(async move {
                let (name, r) = round_one(&prober, &lookups, &settings, config, deadline).await;
                Arc::new(BTreeMap::from([(name, r)]))
            })
        });
        // a round another probe started may have a longer deadline than ours
        match tokio::time::timeout(deadline + Duration::from_millis(100), round).await {
            Ok(outcome) if !outcome.is_empty() => (outcome, source),
            Ok(_) => (failed("the round ended abnormally".to_string()), source),
            Err(_) => (
                failed(format!(
                    "deadline of {:.1}s reached (X-Prometheus-Scrape-Timeout-Seconds minus {:.1}s) after {:.1}s",
                    deadline.as_secs_f64(),
                    super::targets::DEADLINE_MARGIN.as_secs_f64(),
                    started.elapsed().as_secs_f64()
                )),
                source,
            ),
        }
    }

    /// The resolver shared by probes (its cache with it), renewed every `period`.
    fn probe_lookups(&self, period: Duration, prober: &Prober, settings: &Settings) -> Arc<Recursive> {
        let fresh = || {
            Arc::new(
                Recursive::new(&settings.resolvers, prober.timeout())
                    .with_limit(prober.concurrency())
                    .with_counters(prober.counters()),
            )
        };
        let Ok(mut g) = self.probe_lookups.lock() else { return fresh() };
        match &*g {
            Some((at, rec)) if at.elapsed() < period => rec.clone(),
            _ => {
                let rec = fresh();
                *g = Some((Instant::now(), rec.clone()));
                rec
            }
        }
    }

    /// Sets how rounds reach the servers.
    pub fn set_engine(&self, prober: Prober, settings: Settings) {
        // the probes' resolver follows the new settings
        if let Ok(mut g) = self.probe_lookups.lock() {
            *g = None;
        }
        if let Ok(mut e) = self.engine.write() {
            *e = Some((prober, settings));
        }
    }

    /// The prober rounds use now.
    pub fn prober(&self) -> Option<Prober> {
        self.engine().map(|(p, _)| p)
    }

    fn engine(&self) -> Option<(Prober, Settings)> {
        self.engine.read().ok().and_then(|e| e.clone())
    }

    /// Applies a new configuration: domains, interval, prober and settings. Results of
    /// domains no longer configured disappear at once; a round starts soon.
    pub fn reconfigure(&self, domains: Vec<DomainConfig>, interval: Duration, prober: Prober, settings: Settings) {
        let names: std::collections::BTreeSet<String> = domains.iter().map(|d| d.name.clone()).collect();
        let kept: BTreeMap<String, DomainResult> =
            self.results().iter().filter(|(d, _)| names.contains(*d)).map(|(d, r)| (d.clone(), r.clone())).collect();
        if let Ok(mut g) = self.results.write() {
            *g = Arc::new(kept);
        }
        self.set_domains(domains);
        self.set_interval(interval);
        self.set_engine(prober, settings);
        self.wake.notify_one();
    }

    /// True once the first round finished (or when there is nothing to check).
    pub fn ready(&self) -> bool {
        self.first_round_done.load(Ordering::Acquire)
    }

    pub fn domains(&self) -> Vec<DomainConfig> {
        self.domains.read().map(|d| d.clone()).unwrap_or_default()
    }

    pub fn set_domains(&self, domains: Vec<DomainConfig>) {
        if let Ok(mut d) = self.domains.write() {
            *d = domains;
        }
    }

    pub fn interval(&self) -> Duration {
        self.interval.read().map(|i| *i).unwrap_or(Duration::from_secs(300))
    }

    pub fn set_interval(&self, interval: Duration) {
        if let Ok(mut i) = self.interval.write() {
            *i = interval;
        }
    }

    pub fn results(&self) -> Arc<BTreeMap<String, DomainResult>> {
        self.results.read().map(|r| r.clone()).unwrap_or_default()
    }

    /// Replaces the results with a round's, keeping the last completion time of a
    /// domain whose round failed, and dropping domains no longer configured.
    pub fn publish(&self, mut round: BTreeMap<String, DomainResult>) {
        let previous = self.results();
        for (name, r) in round.iter_mut() {
            if r.finished_at.is_none() {
                r.finished_at = previous.get(name).and_then(|p| p.finished_at);
            }
        }
        if let Ok(mut g) = self.results.write() {
            *g = Arc::new(round);
        }
        self.first_round_done.store(true, Ordering::Release);
    }

    /// The DNS part of the status document: per domain, servers, failing checks in
    /// words, and the diagnosis when misroutes and DNS facts coincide.
    pub fn status_json(&self, mail: &MailState) -> serde_json::Value {
        let results = self.results();
        let domains: Vec<serde_json::Value> = self
            .domains()
            .iter()
            .map(|d| {
                let r = results.get(&d.name);
                let servers: Vec<serde_json::Value> = r
                    .and_then(|r| r.snapshot.as_ref())
                    .map(|s| s.servers.iter().map(|x| server_json(x, s.dnssec.as_ref())).collect())
                    .unwrap_or_default();
                let failing: Vec<&CheckResult> = r.map(|r| r.failing().collect()).unwrap_or_default();
                serde_json::json!({
                    "domain": d.name,
                    "zone": r.and_then(|r| r.snapshot.as_ref()).and_then(|s| s.zone.clone()),
                    "checked": r.is_some(),
                    "error": r.and_then(|r| r.error.clone()),
                    "finished_at": r.and_then(|r| r.finished_at),
                    "duration_seconds": r.map(|r| r.duration_seconds),
                    "servers": servers,
                    "mx": r.and_then(|r| r.snapshot.as_ref()).map(|s| s.mx_union().into_iter().map(|m| format!("{} {}", m.preference, m.exchange)).collect::<Vec<_>>()),
                    "apex_addresses": r.and_then(|r| r.snapshot.as_ref()).map(|s| s.apex_union().into_iter().map(|a| a.to_string()).collect::<Vec<_>>()),
                    "dnssec_signed": r.and_then(|r| r.snapshot.as_ref()).and_then(|s| s.dnssec.as_ref()).and_then(|x| match &x.ds {
                        super::snapshot::Lookup::Failed(_) => None,
                        _ => Some(x.has_ds()),
                    }),
                    "checks_evaluated": r.map_or(0, |r| r.checks.len()),
                    "round_success": r.map(|r| !r.round_failed()),
                    "round_failure": r.and_then(|r| r.checks.iter().find(|c| c.check == "dns_round_failed" && c.failed)).map(|c| c.message.clone()),
                    "failing_checks": failing,
                    "notes": r.and_then(|r| r.snapshot.as_ref()).map(|s| s.notes.clone()).unwrap_or_default(),
                    "diagnosis": diagnosis(&d.name, r, &mail.misroutes_last_hour(&d.name)),
                    "smtp_tls": r.and_then(|r| r.snapshot.as_ref()).map(checks::tls::summary).unwrap_or_default(),
                })
            })
            .collect();
        serde_json::json!({ "interval_seconds": self.interval().as_secs_f64(), "ready": self.ready(), "domains": domains })
    }
}

fn server_json(s: &super::snapshot::Server, dnssec: Option<&super::snapshot::Dnssec>) -> serde_json::Value {
    let signed = dnssec.and_then(|d| d.servers.iter().find(|x| x.address == s.address && x.name == s.name));
    let (status, detail) = match &s.standing {
        Standing::Authoritative => ("authoritative", String::new()),
        Standing::Lame { detail, .. } => ("lame", detail.clone()),
        Standing::Unreachable { error } => ("unreachable", error.clone()),
    };
    serde_json::json!({
        "name": s.name,
        "address": s.address.to_string(),
        "status": status,
        "detail": detail,
        "soa_serial": s.soa.as_ref().map(|x| x.serial),
        "mname": s.soa.as_ref().map(|x| x.mname.clone()),
        "rtt_seconds": s.rtt_seconds,
        "dnskeys": signed.and_then(|x| x.keys.as_ref().ok()).map(Vec::len),
        "rrsig_expiry_timestamp_seconds": signed.and_then(|x| x.earliest_expiration()),
    })
}

/// A sentence that ties the misroutes read in the last hour (`per_host`: host and
/// count) to the domain's DNS facts.
pub fn diagnosis(domain: &str, r: Option<&DomainResult>, per_host: &[(String, u64)]) -> Option<String> {
    let apex_check = r.and_then(|r| r.checks.iter().find(|c| c.check == "apex_mx_mismatch"));
    let snap = r.and_then(|r| r.snapshot.as_ref());
    if per_host.is_empty() {
        return None;
    }
    let hosts = per_host.iter().map(|(h, n)| format!("{h} rejected {n} message(s)")).collect::<Vec<_>>().join(", ");
    let mut text = format!("In the last hour {hosts} for {domain} as relay denied.");
    match (apex_check, snap) {
        (Some(c), Some(s)) if c.failed => {
            let stray = super::checks::apex::apex_not_mx(s);
            let mx_hosts: Vec<String> = s.mx_hosts.keys().cloned().collect();
            let _ = write!(
                text,
                " {domain}'s apex address {} is not an MX address (MX: {}), and senders that fall back to the apex A record land there: fix the apex A/AAAA record, or accept mail for {domain} on that host.",
                list(stray.iter()),
                list(mx_hosts.iter())
            );
        }
        (Some(_), _) => {
            text.push_str(
                " The DNS checks find the apex consistent with the MX now: the misroutes may come from an old apex record still cached by senders, or from a host that still lists this domain.",
            );
        }
        (None, _) => {
            text.push_str(" No DNS round has evaluated the apex of this domain yet.");
        }
    }
    Some(text)
}

/// Renders the latest results as metrics at scrape time (SPEC §5.2).
#[derive(Debug)]
pub struct DnsCollector {
    pub state: Arc<DnsState>,
}

/// Writes one gauge family: the descriptor, then `samples` calls `emit(labels, value)`
/// for each sample. Label sets are arrays of borrowed strings: nothing is copied.
fn family<'a>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    results: &'a BTreeMap<String, DomainResult>,
    mut samples: impl FnMut(
        &'a str,
        &'a DomainResult,
        &mut dyn FnMut(&[(&str, &str)], f64) -> std::fmt::Result,
    ) -> std::fmt::Result,
) -> std::fmt::Result {
    let mut f = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (domain, r) in results {
        samples(domain, r, &mut |labels, v| {
            let e = f.encode_family(&labels)?;
            ConstGauge::new(v).encode(e)
        })?;
    }
    Ok(())
}

impl Collector for DnsCollector {
    fn encode(&self, encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        encode_results(&self.state.results(), encoder)
    }
}

/// Renders one `/probe` round's result: the same families as [`DnsCollector`].
#[derive(Debug)]
pub struct ProbeCollector(pub ProbeOutcome);

impl Collector for ProbeCollector {
    fn encode(&self, encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        encode_results(&self.0, encoder)
    }
}

/// The DNS metric families (SPEC §5.2, §7.3) of a set of results: the static
/// configuration's latest round, or one `/probe` round.
pub fn encode_results(r: &BTreeMap<String, DomainResult>, mut encoder: DescriptorEncoder) -> std::fmt::Result {
    if r.is_empty() {
        return Ok(());
    }
    let mut addr = String::with_capacity(48);
    family(
        &mut encoder,
        "mailroute_dns_check_failed",
        "1 when the check fails, 0 when it passes, for every check evaluated in the last round",
        r,
        |d, r, emit| {
            for c in &r.checks {
                emit(
                    &[("domain", d), ("check", c.check), ("severity", c.severity.as_str())],
                    if c.failed { 1.0 } else { 0.0 },
                )?;
            }
            Ok(())
        },
    )?;
    let servers = |name: &'static str,
                   help: &'static str,
                   value: fn(&super::snapshot::Server, Option<u32>) -> Option<f64>,
                   encoder: &mut DescriptorEncoder,
                   addr: &mut String| {
        family(encoder, name, help, r, |d, r, emit| {
            let Some(s) = &r.snapshot else { return Ok(()) };
            let serials: Vec<u32> = s.up().filter_map(|x| x.soa.as_ref().map(|soa| soa.serial)).collect();
            let top = checks::soa::highest_serial(&serials);
            for x in &s.servers {
                let Some(v) = value(x, top) else { continue };
                addr.clear();
                let _ = write!(addr, "{}", x.address);
                emit(&[("domain", d), ("nameserver", x.name.as_str()), ("address", addr.as_str())], v)?;
            }
            Ok(())
        })
    };
    servers(
        "mailroute_dns_nameserver_up",
        "1 when the server answered the SOA query authoritatively (AA, NOERROR)",
        |x, _| Some(if x.is_up() { 1.0 } else { 0.0 }),
        &mut encoder,
        &mut addr,
    )?;
    servers(
        "mailroute_dns_nameserver_rtt_seconds",
        "Round-trip time of the SOA query",
        |x, _| x.rtt_seconds,
        &mut encoder,
        &mut addr,
    )?;
    servers(
        "mailroute_dns_soa_serial",
        "SOA serial served",
        |x, _| x.soa.as_ref().filter(|_| x.is_up()).map(|s| f64::from(s.serial)),
        &mut encoder,
        &mut addr,
    )?;
    servers(
        "mailroute_dns_soa_serial_behind",
        "RFC 1982 distance below the highest serial seen (0 = in sync)",
        |x, top| {
            let (soa, top) = (x.soa.as_ref().filter(|_| x.is_up())?, top?);
            Some(f64::from(checks::soa::serial_behind(top, soa.serial)))
        },
        &mut encoder,
        &mut addr,
    )?;
    let mut pref = String::with_capacity(8);
    family(&mut encoder, "mailroute_dns_mx_info", "MX records served (union over the servers)", r, |d, r, emit| {
        let Some(s) = &r.snapshot else { return Ok(()) };
        for m in s.mx_union() {
            pref.clear();
            let _ = write!(pref, "{}", m.preference);
            emit(&[("domain", d), ("exchange", m.exchange.as_str()), ("preference", pref.as_str())], 1.0)?;
        }
        Ok(())
    })?;
    family(
        &mut encoder,
        "mailroute_dns_apex_address_info",
        "Apex A/AAAA addresses, and whether an MX exchange has the same address",
        r,
        |d, r, emit| {
            let Some(s) = &r.snapshot else { return Ok(()) };
            let mx = s.mx_addresses();
            for a in s.apex_union() {
                addr.clear();
                let _ = write!(addr, "{a}");
                emit(
                    &[
                        ("domain", d),
                        ("address", addr.as_str()),
                        ("served_by_mx", if mx.contains(&a) { "true" } else { "false" }),
                    ],
                    1.0,
                )?;
            }
            Ok(())
        },
    )?;
    family(
        &mut encoder,
        "mailroute_dns_spf_lookups",
        "DNS-querying terms an evaluation of the domain's SPF policy needs (RFC 7208 section 4.6.4 allows 10)",
        r,
        |d, r, emit| match r.snapshot.as_ref().and_then(checks::spf::lookup_count) {
            Some(n) => emit(&[("domain", d)], n as f64),
            None => Ok(()),
        },
    )?;
    // ---- SMTP TLS (issue 12): only when some domain has its data, so that /probe of a
    // domain that is not configured (no HTTPS or SMTP probing) answers DNS families only
    let tls_data = r
        .values()
        .filter_map(|x| x.snapshot.as_ref())
        .any(|s| s.policy.mta_sts.is_some() || s.policy.starttls.is_some());
    if tls_data {
        family(
            &mut encoder,
            "mailroute_mta_sts_policy_info",
            "1 for the domain's valid MTA-STS policy: its mode and the _mta-sts record's id",
            r,
            |d, r, emit| {
                let Some(s) = &r.snapshot else { return Ok(()) };
                match (&s.policy.mta_sts, checks::tls::valid_policy(s)) {
                    (Some(f), Some(p)) => emit(&[("domain", d), ("mode", p.mode.as_str()), ("id", f.id.as_str())], 1.0),
                    _ => Ok(()),
                }
            },
        )?;
        family(
            &mut encoder,
            "mailroute_smtp_tls_certificate_expiry_timestamp_seconds",
            "Unix time at which the certificate an MX address presents after STARTTLS expires (starttls_probe)",
            r,
            |d, r, emit| {
                let Some(st) = r.snapshot.as_ref().and_then(|s| s.policy.starttls.as_ref()) else { return Ok(()) };
                for p in &st.probes {
                    if let super::snapshot::StarttlsOutcome::Tls { not_after: Some(t), .. } = &p.outcome {
                        addr.clear();
                        let _ = write!(addr, "{}", p.address);
                        emit(
                            &[("domain", d), ("exchange", p.exchange.as_str()), ("address", addr.as_str())],
                            *t as f64,
                        )?;
                    }
                }
                Ok(())
            },
        )?;
    }
    family(
        &mut encoder,
        "mailroute_dns_dnssec_signed",
        "1 when the parent zone has DS records for the domain's zone, 0 when it has none",
        r,
        |d, r, emit| match r.snapshot.as_ref().and_then(|s| s.dnssec.as_ref()).map(|x| &x.ds) {
            Some(super::snapshot::Lookup::Found(ds)) => emit(&[("domain", d)], if ds.is_empty() { 0.0 } else { 1.0 }),
            Some(super::snapshot::Lookup::Void { .. }) => emit(&[("domain", d)], 0.0),
            _ => Ok(()),
        },
    )?;
    family(
        &mut encoder,
        "mailroute_dns_rrsig_expiry_timestamp_seconds",
        "Unix time at which the earliest RRSIG the server serves over SOA, NS, DNSKEY, MX or the apex A/AAAA/TXT expires",
        r,
        |d, r, emit| {
            let Some(x) = r.snapshot.as_ref().and_then(|s| s.dnssec.as_ref()) else { return Ok(()) };
            for s in &x.servers {
                let Some(t) = s.earliest_expiration() else { continue };
                addr.clear();
                let _ = write!(addr, "{}", s.address);
                emit(&[("domain", d), ("nameserver", s.name.as_str()), ("address", addr.as_str())], t as f64)?;
            }
            Ok(())
        },
    )?;
    family(
        &mut encoder,
        "mailroute_dns_round_success",
        "1 when the last round could judge the domain, 0 when it could not (check dns_round_failed says why)",
        r,
        |d, r, emit| emit(&[("domain", d)], if r.round_failed() { 0.0 } else { 1.0 }),
    )?;
    family(
        &mut encoder,
        "mailroute_dns_last_check_timestamp_seconds",
        "Unix time at which the last complete round for the domain ended",
        r,
        |d, r, emit| match r.finished_at {
            Some(t) => emit(&[("domain", d)], t),
            None => Ok(()),
        },
    )?;
    family(
        &mut encoder,
        "mailroute_dns_check_duration_seconds",
        "Duration of the last round for the domain",
        r,
        |d, r, emit| emit(&[("domain", d)], r.duration_seconds),
    )?;
    Ok(())
}

/// Runs rounds forever: one at start, then every interval with up to 10 % jitter,
/// until `stop` is notified (with `notify_one`, which is remembered if the
/// scheduler is busy).
pub async fn scheduler(state: Arc<DnsState>, stop: tokio_util::sync::CancellationToken) {
    loop {
        let domains = state.domains();
        let interval = state.interval();
        match state.engine() {
            Some((prober, settings)) if !domains.is_empty() => {
                let deadline = round_deadline(prober.timeout(), interval);
                let started = Instant::now();
                let results = tokio::select! {
                    r = run_round(&prober, &settings, &domains, deadline) => r,
                    _ = stop.cancelled() => return,
                };
                let failing: usize = results.values().map(|r| r.failing().count()).sum();
                tracing::info!(
                    domains = domains.len(),
                    failing_checks = failing,
                    seconds = format!("{:.2}", started.elapsed().as_secs_f64()),
                    "DNS round finished"
                );
                // a reload during the round may have removed domains
                let configured: std::collections::BTreeSet<String> =
                    state.domains().into_iter().map(|d| d.name).collect();
                state.publish(results.into_iter().filter(|(d, _)| configured.contains(d)).collect());
            }
            _ => state.publish(BTreeMap::new()),
        }
        let jitter = interval.mul_f64(fastrand::f64() * 0.1);
        tokio::select! {
            _ = tokio::time::sleep(interval + jitter) => {}
            _ = state.wake.notified() => {}
            _ = stop.cancelled() => return,
        }
    }
}
