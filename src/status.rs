//! What the status page `/` and `/api/v1/status` show: version, log sources,
//! reject and misroute counts, recent misroutes, and each domain's DNS facts and
//! failing checks in words. One document, rendered as JSON or HTML.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};

use serde::Serialize;

use crate::dns::DnsState;
use crate::maillog::processor::{MailState, MisrouteRecord};
use crate::maillog::source::{Shutdown, SourceHandle, SourceStatus};
use crate::maillog::state::Persister;
use crate::metrics::{Metrics, REVISION};
use crate::web::BasicAuth;

/// A log source as `serve` runs it: its key (`file:PATH`, `journal`,
/// `syslog:udp://ADDR`), its own stop signal (a reload stops sources one by one),
/// and its thread.
#[derive(Debug)]
pub struct RunningSource {
    pub key: String,
    pub stop: Arc<Shutdown>,
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

pub use crate::html::esc;

/// Renders the status document as a self-contained HTML page.
pub fn html_page(doc: &StatusDocument) -> String {
    use std::fmt::Write as _;
    let mut h = String::with_capacity(8192);
    let _ = write!(
        h,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>mailroute_exporter</title>\
         <style>body{{font-family:sans-serif;margin:2em;max-width:72em}}table{{border-collapse:collapse;margin:.5em 0 1.5em}}\
         td,th{{border:1px solid #ccc;padding:.2em .6em;text-align:left;vertical-align:top}}th{{background:#eee}}\
         .fail{{color:#a00}}.ok{{color:#070}}.diag{{background:#fff3f3;border-left:4px solid #a00;padding:.5em 1em}}</style></head><body>\
         <h1>mailroute_exporter</h1><p>Version {} (revision {}). {}. \
         <a href=\"{}\">Metrics</a> · <a href=\"/api/v1/status\">Status as JSON</a> · <a href=\"/-/healthy\">Health</a> · <a href=\"/-/ready\">Readiness</a></p>",
        esc(doc.version),
        esc(doc.revision),
        if doc.ready { "Ready" } else { "Not ready yet" },
        esc(&doc.telemetry_path),
    );
    h.push_str(&crate::dns::state::html_section(&doc.dns));
    let _ = write!(
        h,
        "<h2>Mail logs</h2><p>{} rejects, {} misroutes, {} accepted messages since start.</p>",
        doc.mail.rejects_total, doc.mail.misroutes_total, doc.mail.accepted_total
    );
    h.push_str("<table><tr><th>Source</th><th>Kind</th><th>State</th><th>Lines</th><th>Read errors</th><th>Last error</th></tr>");
    for s in &doc.sources {
        let lines: Vec<String> = s.lines.iter().filter(|(_, n)| **n > 0).map(|(o, n)| format!("{o}: {n}")).collect();
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&s.status.name),
            s.status.kind,
            esc(&format!("{:?}", s.status.state).to_lowercase()),
            esc(&lines.join(", ")),
            s.read_errors,
            esc(s.status.last_error.as_deref().unwrap_or(""))
        );
    }
    h.push_str("</table>");
    if !doc.mail.rejects_by_reason.is_empty() {
        h.push_str("<h3>Rejects by reason</h3><table><tr><th>Reason</th><th>Count</th></tr>");
        for (r, n) in &doc.mail.rejects_by_reason {
            let _ = write!(h, "<tr><td>{}</td><td>{n}</td></tr>", esc(r));
        }
        h.push_str("</table><h3>Rejects by host</h3><table><tr><th>Host</th><th>Count</th></tr>");
        for (r, n) in &doc.mail.rejects_by_host {
            let _ = write!(h, "<tr><td>{}</td><td>{n}</td></tr>", esc(r));
        }
        h.push_str("</table>");
    }
    if !doc.mail.misroutes.is_empty() {
        h.push_str("<h3>Misroutes</h3><table><tr><th>Host</th><th>Domain</th><th>Count</th></tr>");
        for c in &doc.mail.misroutes {
            let _ = write!(h, "<tr><td>{}</td><td>{}</td><td>{}</td></tr>", esc(&c.host), esc(&c.key), c.count);
        }
        h.push_str("</table>");
    }
    if !doc.mail.recent_misroutes.is_empty() {
        h.push_str("<h3>Recent misroutes</h3><table><tr><th>Logged at</th><th>Host</th><th>MTA</th><th>Domain</th><th>Client</th></tr>");
        for m in doc.mail.recent_misroutes.iter().rev().take(50) {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&m.logged_at),
                esc(&m.host),
                m.mta,
                esc(&m.domain),
                esc(&m.client)
            );
        }
        h.push_str("</table>");
    }
    h.push_str("</body></html>\n");
    h
}
