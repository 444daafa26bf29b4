//! The latest DNS round's results, shared by the scheduler, `/metrics` and the
//! status page.

use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, Ordering};

/// Results of the latest round per domain, replaced as a whole at the end of a round.
#[derive(Debug, Default)]
pub struct DnsState {
    first_round_done: AtomicBool,
    domains: RwLock<Vec<String>>,
}

impl DnsState {
    pub fn new(domains: Vec<String>) -> DnsState {
        let done = domains.is_empty();
        DnsState { first_round_done: AtomicBool::new(done), domains: RwLock::new(domains) }
    }

    pub fn ready(&self) -> bool {
        self.first_round_done.load(Ordering::Acquire)
    }

    pub fn domains(&self) -> Vec<String> {
        self.domains.read().map(|d| d.clone()).unwrap_or_default()
    }
}

impl DnsState {
    /// The DNS part of the status document.
    pub fn status_json(&self, _recent_misroutes: &[crate::maillog::processor::MisrouteRecord]) -> serde_json::Value {
        serde_json::json!({ "domains": self.domains() })
    }
}

/// The DNS part of the status page.
pub fn html_section(_doc: &serde_json::Value) -> String {
    String::new()
}
