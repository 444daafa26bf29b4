//! Every metric the exporter exports, defined in one place.
//!
//! One [`Metrics`] struct owns the registry and every family; label sets are typed,
//! and label values come from closed enums ([`Mta`], [`Stage`], [`Reason`], …) or
//! from bounded, configured sets (hosts capped by `max_hosts`, monitored domains,
//! configured sources) — never from free log text.
//!
//! The DNS half's gauges are not families here: a round's results replace the
//! previous round's as a whole, so they are rendered from the latest snapshot by
//! a collector ([`crate::dns::metrics::DnsCollector`]) registered in [`Metrics::new`].

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

use crate::maillog::{Class, Mta, Outcome, Reason, Stage};

/// A label value held as a shared string: cloning it never allocates.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct SharedLabel(pub Arc<str>);

impl SharedLabel {
    pub fn new(s: &str) -> SharedLabel {
        SharedLabel(Arc::from(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SharedLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl EncodeLabelValue for SharedLabel {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), fmt::Error> {
        EncodeLabelValue::encode(&self.0.as_ref(), encoder)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, EncodeLabelSet, serde::Serialize)]
pub struct RejectLabels {
    pub host: SharedLabel,
    pub mta: Mta,
    pub stage: Stage,
    pub reason: Reason,
    pub class: Class,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, EncodeLabelSet, serde::Serialize)]
pub struct MisrouteLabels {
    pub host: SharedLabel,
    pub domain: SharedLabel,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, EncodeLabelSet, serde::Serialize)]
pub struct HostMtaLabels {
    pub host: SharedLabel,
    pub mta: Mta,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, EncodeLabelSet, serde::Serialize)]
pub struct SourceOutcomeLabels {
    pub source: SharedLabel,
    pub outcome: Outcome,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, EncodeLabelSet, serde::Serialize)]
pub struct SourceLabels {
    pub source: SharedLabel,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct BuildLabels {
    pub version: String,
    pub revision: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;

/// The exporter's metrics. Cheap to share behind an `Arc`; families are internally
/// synchronised.
#[derive(Debug)]
pub struct Metrics {
    pub registry: Registry,
    pub rejects: Family<RejectLabels, Counter>,
    pub misroutes: Family<MisrouteLabels, Counter>,
    pub accepted: Family<HostMtaLabels, Counter>,
    pub log_lines: Family<SourceOutcomeLabels, Counter>,
    pub log_read_errors: Family<SourceLabels, Counter>,
    pub log_lines_truncated: Family<SourceLabels, Counter>,
    pub log_last_line: Family<SourceLabels, FloatGauge>,
    pub dns_interval: FloatGauge,
    pub dns_queries: Family<crate::dns::probe::QueryResultLabels, Counter>,
    pub config_last_reload_successful: Gauge,
    pub config_last_reload_success: FloatGauge,
    /// State files found unusable at start, and snapshots that could not be saved.
    pub state_file_errors: Counter,
}

/// The revision the binary was built from: `MAILROUTE_REVISION` at build time, which
/// build.rs sets from `git rev-parse` when the source tree is a git checkout.
pub const REVISION: &str = match option_env!("MAILROUTE_REVISION") {
    Some(r) => r,
    None => "unknown",
};

impl Metrics {
    /// The metrics of a running exporter: every family, build info, the DNS
    /// collector and the `process_*` metrics.
    pub fn new(dns: Option<Box<dyn prometheus_client::collector::Collector>>) -> Metrics {
        Metrics::build(true, dns)
    }

    /// Only the mail log counters: what `replay` prints (no build info, no
    /// timestamps, no process metrics, so the output depends on the input only).
    pub fn for_replay() -> Metrics {
        Metrics::build(false, None)
    }

    fn build(serve: bool, dns: Option<Box<dyn prometheus_client::collector::Collector>>) -> Metrics {
        let mut registry = Registry::default();
        let m = Metrics {
            rejects: Family::default(),
            misroutes: Family::default(),
            accepted: Family::default(),
            log_lines: Family::default(),
            log_read_errors: Family::default(),
            log_lines_truncated: Family::default(),
            log_last_line: Family::default(),
            dns_interval: FloatGauge::default(),
            dns_queries: Family::default(),
            config_last_reload_successful: Gauge::default(),
            config_last_reload_success: FloatGauge::default(),
            state_file_errors: Counter::default(),
            registry: Registry::default(),
        };
        registry.register(
            "mailroute_smtp_rejects",
            "SMTP rejects logged by the MTAs, by host, MTA, SMTP stage, reason and class",
            m.rejects.clone(),
        );
        registry.register(
            "mailroute_misroutes",
            "Relay-denied rejects of mail addressed to a monitored or local domain",
            m.misroutes.clone(),
        );
        registry.register(
            "mailroute_smtp_messages_accepted",
            "Messages the MTAs accepted from SMTP clients",
            m.accepted.clone(),
        );
        registry.register(
            "mailroute_log_lines",
            "Log lines read, by source and what became of them",
            m.log_lines.clone(),
        );
        registry.register(
            "mailroute_log_read_errors",
            "Errors reading a log source (open, read, rotation)",
            m.log_read_errors.clone(),
        );
        registry.register(
            "mailroute_log_lines_truncated",
            "Log lines longer than 64 KiB, cut to 64 KiB before parsing",
            m.log_lines_truncated.clone(),
        );
        if serve {
            registry.register(
                "mailroute_log_last_line_timestamp_seconds",
                "Unix time at which the exporter last read a line from the source",
                m.log_last_line.clone(),
            );
            registry.register(
                "mailroute_dns_interval_seconds",
                "Configured interval between DNS rounds",
                m.dns_interval.clone(),
            );
            registry.register(
                "mailroute_config_last_reload_successful",
                "Whether the last configuration reload succeeded (1) or failed (0)",
                m.config_last_reload_successful.clone(),
            );
            registry.register(
                "mailroute_config_last_reload_success_timestamp_seconds",
                "Unix time of the last successful configuration load",
                m.config_last_reload_success.clone(),
            );
            registry.register(
                "mailroute_dns_queries",
                "DNS queries sent, by result (ok includes NXDOMAIN answers)",
                m.dns_queries.clone(),
            );
            registry.register(
                "mailroute_state_file_errors",
                "State file problems: a file found unusable at start (moved aside, started fresh) or a snapshot not saved",
                m.state_file_errors.clone(),
            );
            let info = Info::new(BuildLabels {
                version: env!("CARGO_PKG_VERSION").to_string(),
                revision: REVISION.to_string(),
            });
            registry.register("mailroute_build", "Build information of mailroute_exporter", info);
            if let Some(dns) = dns {
                registry.register_collector(dns);
            }
            registry.register_collector(Box::new(crate::process::ProcessCollector));
        }
        Metrics { registry, ..m }
    }

    /// Renders every metric in the Prometheus text format 0.0.4.
    pub fn encode_text(&self) -> String {
        let mut out = String::with_capacity(16 * 1024);
        // writing into a String cannot fail
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry);
        out
    }

    /// Renders every metric in the OpenMetrics text format 1.0.
    pub fn encode_openmetrics(&self) -> String {
        let mut out = String::with_capacity(16 * 1024);
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// The cached counters of one source, one per [`Outcome`].
    pub fn source_counters(&self, source: &SharedLabel) -> SourceCounters {
        let by_outcome = std::array::from_fn(|i| {
            let outcome = Outcome::ALL[i];
            self.log_lines.get_or_create(&SourceOutcomeLabels { source: source.clone(), outcome }).clone()
        });
        let labels = SourceLabels { source: source.clone() };
        SourceCounters {
            by_outcome,
            read_errors: self.log_read_errors.get_or_create(&labels).clone(),
            truncated: self.log_lines_truncated.get_or_create(&labels).clone(),
            last_line: self.log_last_line.get_or_create(&labels).clone(),
        }
    }
}

/// Per-source counters, looked up once so the per-line cost is one atomic add.
#[derive(Debug, Clone)]
pub struct SourceCounters {
    by_outcome: [Counter; 5],
    pub read_errors: Counter,
    pub truncated: Counter,
    pub last_line: FloatGauge,
}

impl SourceCounters {
    pub fn line(&self, outcome: Outcome) -> &Counter {
        &self.by_outcome[outcome as usize]
    }

    /// Marks that a line was read now.
    pub fn touch(&self) {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
        self.last_line.set(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_info_carries_the_git_revision() {
        let git = std::process::Command::new("git").args(["rev-parse", "--short=12", "HEAD"]).output();
        match git {
            Ok(out) if out.status.success() && std::env::var_os("MAILROUTE_REVISION").is_none() => {
                assert_eq!(REVISION, String::from_utf8_lossy(&out.stdout).trim());
            }
            _ => assert!(!REVISION.is_empty()),
        }
        let text = Metrics::new(None).encode_text();
        assert!(text.contains(&format!("revision=\"{REVISION}\"")), "{text}");
    }

    #[test]
    fn outcome_index_matches_declaration_order() {
        for (i, o) in Outcome::ALL.iter().enumerate() {
            assert_eq!(*o as usize, i);
        }
    }

    #[test]
    fn both_formats_render() {
        let m = Metrics::new(None);
        let src = SharedLabel::new("/var/log/mail.log");
        let c = m.source_counters(&src);
        c.line(Outcome::Reject).inc();
        m.rejects
            .get_or_create(&RejectLabels {
                host: SharedLabel::new("a\"b\\c"),
                mta: Mta::Postfix,
                stage: Stage::Rcpt,
                reason: Reason::RelayDenied,
                class: Class::Permanent,
            })
            .inc();
        let text = m.encode_text();
        assert!(text.contains("# TYPE mailroute_smtp_rejects_total counter"), "{text}");
        assert!(text.contains(r#"mailroute_smtp_rejects_total{host="a\"b\\c",mta="postfix",stage="rcpt",reason="relay_denied",class="permanent"} 1"#), "{text}");
        assert!(text.contains(r#"mailroute_log_lines_total{source="/var/log/mail.log",outcome="reject"} 1"#), "{text}");
        assert!(!text.contains("# EOF"));
        let om = m.encode_openmetrics();
        assert!(om.contains("# TYPE mailroute_smtp_rejects counter"), "{om}");
        assert!(om.ends_with("# EOF\n"));
        assert!(om.contains("mailroute_build_info{version="), "{om}");
    }
}
