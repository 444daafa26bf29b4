//! Log lines through the whole pipeline: envelope, MTA parser, classifier,
//! counters. The input is split at newlines and every line goes through one
//! `Processor`, so Exim's continuation (`[n/m]`) and duplicate state is exercised
//! across lines too. Oracle: no panic, and every line gets exactly one outcome.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use mailroute_exporter::maillog::Outcome;
use mailroute_exporter::maillog::processor::{MailState, Processor};
use mailroute_exporter::metrics::{Metrics, SharedLabel};

fn state() -> Arc<MailState> {
    static STATE: OnceLock<Arc<MailState>> = OnceLock::new();
    STATE
        .get_or_init(|| {
            let domains = ["nmrc.org".to_string(), "example.com".to_string()];
            Arc::new(MailState::new(Arc::new(Metrics::for_replay()), 4, "fuzz-host", &domains))
        })
        .clone()
}

fuzz_target!(|data: &[u8]| {
    let mut p = Processor::new(state(), &SharedLabel::new("fuzz"));
    for line in data.split(|&b| b == b'\n') {
        let outcome = p.line(line);
        assert!(Outcome::ALL.contains(&outcome));
    }
});
