//! What the status page `/` and `/api/v1/status` show: version, log sources,
//! reject and misroute counts, recent misroutes, and each domain's DNS facts and
//! failing checks in words. One document, rendered as JSON or HTML.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};

use serde::Serialize;

use crate::dns::DnsState;
use crate::maillog::processor::{MailState, MisrouteRecord};
use crate::maillog::source::{CancellationToken, SourceHandle, SourceStatus};
use crate::maillog::state::Persister;
use crate::metrics::{Metrics, REVISION};
use crate::web::BasicAuth;

/// A log source as `serve` runs it: its key (`file:PATH`, `journal`,
/// `syslog:udp://ADDR`), its own stop token (a child of the exporter's one
/// shutdown token, so that a reload can stop sources one by one), and its task.
#[derive(Debug)]
pub struct RunningSource {
    pub key: String,
    pub stop: CancellationToken,
    pub handle: SourceHandle,
}

/// Everything the HTTP handlers need.
pub struct App {
    pub metrics: Arc<Metrics>,
    pub mail: Arc<MailState>,
    pub sources: Mutex<Vec<RunningSource>>,
    pub dns: Arc<DnsState>,
    pub started_at: f64,
    pub telemetry_path: String,
    pub auth: Arc<BasicAuth>,
    /// Set once `serve` has built the reloader (`POST /-/reload`).
    pub reloader: OnceLock<Arc<dyn Reload>>,
    /// Saves counters and positions; `/metrics` answers once its snapshot is saved.
    pub persister: Option<Arc<Persister>>,
}

/// Re-reads and applies the configuration (implemented by `serve`, which depends on
/// this module and not the other way round).
pub trait Reload: Send + Sync {
    /// A summary of what changed, or why nothing did.
    fn reload(&self) -> Result<String, String>;
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App").field("telemetry_path", &self.telemetry_path).finish_non_exhaustive()
    }
}

impl App {
    /// Ready once every log source was polled and the first DNS round finished.
    pub fn ready(&self) -> bool {
        let sources_ready = self
            .sources
            .lock()
            .map(|s| s.iter().all(|r| r.handle.snapshot().is_some_and(|st| st.ready())))
            .unwrap_or(false);
        sources_ready && self.dns.ready()
    }
}

#[derive(Debug, Serialize)]
pub struct SourceView {
    #[serde(flatten)]
    pub status: SourceStatus,
    pub lines: BTreeMap<String, u64>,
    pub read_errors: u64,
    pub truncated_lines: u64,
}

#[derive(Debug, Serialize)]
pub struct Count {
    pub host: String,
    pub key: String,
    pub count: u64,
}

#[derive(Debug, Serialize)]
pub struct MailView {
    pub rejects_total: u64,
    pub misroutes_total: u64,
    pub accepted_total: u64,
    pub rejects_by_reason: BTreeMap<String, u64>,
    pub rejects_by_host: BTreeMap<String, u64>,
    /// (host, domain) → misroutes.
    pub misroutes: Vec<Count>,
    pub recent_misroutes: Vec<MisrouteRecord>,
}

#[derive(Debug, Serialize)]
pub struct StatusDocument {
    pub version: &'static str,
    pub revision: &'static str,
    pub started_at: f64,
    pub ready: bool,
    pub telemetry_path: String,
    pub sources: Vec<SourceView>,
    pub mail: MailView,
    pub dns: serde_json::Value,
}

/// Collects the status document.
pub fn status_document(app: &App) -> StatusDocument {
    let tally = app.mail.tally();
    let mut sources = Vec::new();
    if let Ok(handles) = app.sources.lock() {
        for r in handles.iter() {
            let Some(status) = r.handle.snapshot() else { continue };
            let lines =
                tally.lines.iter().filter(|(s, _, _)| *s == status.name).map(|(_, o, n)| (o.to_string(), *n)).collect();
            let (read_errors, truncated_lines) =
                tally.sources.iter().find(|(s, _, _)| *s == status.name).map_or((0, 0), |(_, e, t)| (*e, *t));
            sources.push(SourceView { status, lines, read_errors, truncated_lines });
        }
    }
    let mut rejects_by_reason = BTreeMap::new();
    let mut rejects_by_host = BTreeMap::new();
    for (l, n) in &tally.rejects {
        *rejects_by_reason.entry(l.reason.to_string()).or_insert(0) += n;
        *rejects_by_host.entry(l.host.to_string()).or_insert(0) += n;
    }
    let mail = MailView {
        rejects_total: tally.rejects.iter().map(|(_, n)| n).sum(),
        misroutes_total: tally.misroutes.iter().map(|(_, n)| n).sum(),
        accepted_total: tally.accepted.iter().map(|(_, n)| n).sum(),
        rejects_by_reason,
        rejects_by_host,
        misroutes: tally
            .misroutes
            .iter()
            .map(|(l, n)| Count { host: l.host.to_string(), key: l.domain.to_string(), count: *n })
            .collect(),
        recent_misroutes: app.mail.recent_misroutes(),
    };
    StatusDocument {
        version: env!("CARGO_PKG_VERSION"),
        revision: REVISION,
        started_at: app.started_at,
        ready: app.ready(),
        telemetry_path: app.telemetry_path.clone(),
        sources,
        mail,
        dns: app.dns.status_json(&app.mail),
    }
}

/// One row of the log sources table.
#[derive(Debug)]
pub struct SourceRow {
    pub name: String,
    pub kind: String,
    pub state: String,
    pub lines: String,
    pub read_errors: u64,
    pub last_error: String,
}

/// A failing check in words.
#[derive(Debug)]
pub struct FailingRow {
    pub check: String,
    pub severity: String,
    pub message: String,
}

/// One authoritative server address of a domain.
#[derive(Debug)]
pub struct ServerRow {
    pub name: String,
    pub address: String,
    pub status: String,
    pub soa_serial: String,
    pub mname: String,
    pub rtt: String,
    /// DNSSEC keys served and the earliest RRSIG expiry ("" for no DNSSEC data).
    pub dnssec: String,
}

/// One domain's section of the page.
#[derive(Debug)]
pub struct DomainSection {
    pub domain: String,
    pub diagnosis: Option<String>,
    pub checked: bool,
    /// Why the last round could not judge the domain (`dns_round_failed`).
    pub round_failure: Option<String>,
    pub error: Option<String>,
    pub checks_evaluated: u64,
    pub failing: Vec<FailingRow>,
    pub servers: Vec<ServerRow>,
    pub mx: String,
    pub apex: String,
    /// The SMTP TLS findings (MTA-STS, STARTTLS, DANE) in words.
    pub smtp_tls: Vec<String>,
}

/// The status page: the document plus the few rows it shows pre-formatted. Rendered
/// by `templates/status.html` (askama), which escapes every value it prints. To show
/// something new, add it to [`StatusDocument`] (or a row type here) and a block to the
/// template.
#[derive(Debug, askama::Template)]
#[template(path = "status.html")]
pub struct StatusPage<'a> {
    pub doc: &'a StatusDocument,
    pub sources: Vec<SourceRow>,
    pub domains: Vec<DomainSection>,
}

fn text(v: &serde_json::Value) -> String {
    v.as_str().unwrap_or("").to_string()
}

/// The domain sections, from the DNS part of the status document.
pub fn domain_sections(dns: &serde_json::Value) -> Vec<DomainSection> {
    let Some(domains) = dns.get("domains").and_then(|d| d.as_array()) else { return Vec::new() };
    let strings = |v: &serde_json::Value| -> Vec<String> {
        v.as_array().map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect()).unwrap_or_default()
    };
    domains
        .iter()
        .map(|d| DomainSection {
            domain: text(&d["domain"]),
            diagnosis: d["diagnosis"].as_str().map(str::to_string),
            checked: d["checked"].as_bool().unwrap_or(false),
            round_failure: d["round_failure"].as_str().map(str::to_string),
            error: d["error"].as_str().map(str::to_string),
            checks_evaluated: d["checks_evaluated"].as_u64().unwrap_or(0),
            failing: d["failing_checks"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|c| FailingRow {
                            check: text(&c["check"]),
                            severity: text(&c["severity"]),
                            message: text(&c["message"]),
                        })
                        .collect()
                })
                .unwrap_or_default(),
            servers: d["servers"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|s| ServerRow {
                            name: text(&s["name"]),
                            address: text(&s["address"]),
                            status: match s["detail"].as_str() {
                                Some(x) if !x.is_empty() => format!("{}: {x}", text(&s["status"])),
                                _ => text(&s["status"]),
                            },
                            soa_serial: s["soa_serial"].as_u64().map_or(String::new(), |x| x.to_string()),
                            mname: text(&s["mname"]),
                            rtt: s["rtt_seconds"].as_f64().map_or(String::new(), |r| format!("{:.1} ms", r * 1000.0)),
                            dnssec: match (s["dnskeys"].as_u64(), s["rrsig_expiry_timestamp_seconds"].as_i64()) {
                                (Some(0), _) => "unsigned".to_string(),
                                (Some(n), Some(t)) => {
                                    format!("{n} keys, RRSIGs expire {}", crate::dns::checks::dnssec::utc(t))
                                }
                                (Some(n), None) => format!("{n} keys, no RRSIG"),
                                (None, _) => String::new(),
                            },
                        })
                        .collect()
                })
                .unwrap_or_default(),
            mx: crate::dns::snapshot::list(strings(&d["mx"])),
            apex: crate::dns::snapshot::list(strings(&d["apex_addresses"])),
            smtp_tls: strings(&d["smtp_tls"]),
        })
        .collect()
}

/// Renders the status document as a self-contained HTML page.
pub fn html_page(doc: &StatusDocument) -> String {
    use askama::Template as _;
    let sources = doc
        .sources
        .iter()
        .map(|s| SourceRow {
            name: s.status.name.clone(),
            kind: s.status.kind.to_string(),
            state: format!("{:?}", s.status.state).to_lowercase(),
            lines: s
                .lines
                .iter()
                .filter(|(_, n)| **n > 0)
                .map(|(o, n)| format!("{o}: {n}"))
                .collect::<Vec<_>>()
                .join(", "),
            read_errors: s.read_errors,
            last_error: s.status.last_error.clone().unwrap_or_default(),
        })
        .collect();
    let page = StatusPage { doc, sources, domains: domain_sections(&doc.dns) };
    match page.render() {
        Ok(mut h) => {
            h.push('\n');
            h
        }
        Err(e) => {
            tracing::warn!(error = %e, "status page rendering failed");
            "<!doctype html><p>The status page could not be rendered; see the log and /api/v1/status.</p>\n".to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(dns: serde_json::Value) -> StatusDocument {
        StatusDocument {
            version: "0.1.0",
            revision: "abc<def>",
            started_at: 0.0,
            ready: true,
            telemetry_path: "/metrics\"onclick=\"x".to_string(),
            sources: Vec::new(),
            mail: MailView {
                rejects_total: 3,
                misroutes_total: 1,
                accepted_total: 0,
                rejects_by_reason: BTreeMap::from([("relay_denied".to_string(), 3)]),
                rejects_by_host: BTreeMap::from([("mx<1>".to_string(), 3)]),
                misroutes: vec![Count { host: "mx<1>".into(), key: "a&b.test".into(), count: 1 }],
                recent_misroutes: vec![MisrouteRecord {
                    seen_at: 0.0,
                    logged_at: "Jan  1 00:00:00".into(),
                    host: "mx<1>".into(),
                    mta: crate::maillog::Mta::Postfix,
                    domain: "a&b.test".into(),
                    client: "evil<script>alert('x')</script>[192.0.2.1]".into(),
                }],
            },
            dns,
        }
    }

    #[test]
    fn every_value_is_escaped() {
        let dns = serde_json::json!({"domains": [{
            "domain": "x<y>.test", "checked": true, "error": null, "checks_evaluated": 5,
            "diagnosis": "In the last hour <b>mx</b> rejected",
            "failing_checks": [{"check": "apex_mx_mismatch", "severity": "critical", "message": "apex \"1.2.3.4\" & 'x'"}],
            "servers": [{"name": "ns1.test", "address": "127.0.0.1", "status": "lame", "detail": "answered <REFUSED>",
                         "soa_serial": 7, "mname": "ns1.test", "rtt_seconds": 0.0012}],
            "mx": ["10 mx.test"], "apex_addresses": []
        }]});
        let h = html_page(&doc(dns));
        for raw in ["<script>", "<b>mx", "x<y>", "<REFUSED>", "abc<def>", "\"onclick", "mx<1>", "a&b"] {
            assert!(!h.contains(raw), "{raw} unescaped in {h}");
        }
        for escaped in [
            "x&#60;y&#62;.test",
            "apex &#34;1.2.3.4&#34; &#38; &#39;x&#39;",
            "evil&#60;script&#62;",
            "lame: answered &#60;REFUSED&#62;",
            "<td>7</td>",
            "1.2 ms",
            "MX: 10 mx.test. Apex addresses: (none).",
        ] {
            assert!(h.contains(escaped), "{escaped} missing in {h}");
        }
    }

    #[test]
    fn unchecked_domain_and_no_domains() {
        let h = html_page(&doc(serde_json::json!({"domains": [{"domain": "new.test", "checked": false}]})));
        assert!(h.contains("<h3>new.test</h3>") && h.contains("Not checked yet."), "{h}");
        let h = html_page(&doc(serde_json::json!({"domains": []})));
        assert!(!h.contains("<h2>Domains</h2>"), "{h}");
        assert!(h.contains("3 rejects, 1 misroutes"), "{h}");
    }
}
