//! The fuzz targets' oracles, shared by the libFuzzer targets
//! (`fuzz/fuzz_targets/*.rs`, through `#[path]`) and by `tests/fuzz_regressions.rs`,
//! which replays them on stable Rust in CI. Each takes the raw input and panics when
//! the property it checks does not hold.

// each fuzz target uses one oracle of the five
#![allow(dead_code)]

use std::sync::{Arc, OnceLock};

use mailroute_exporter::config::Config;
use mailroute_exporter::dns::records::{dkim, dmarc, spf, sts, tag_list};
use mailroute_exporter::dns::snapshot::{Lookup, SpfLookups};
use mailroute_exporter::maillog::Outcome;
use mailroute_exporter::maillog::envelope;
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

/// The oracle of fuzz/fuzz_targets/line.rs
pub fn line(data: &[u8]) {
    let mut p = Processor::new(state(), &SharedLabel::new("fuzz"));
    for line in data.split(|&b| b == b'\n') {
        let outcome = p.line(line);
        assert!(Outcome::ALL.contains(&outcome));
    }
}

/// The oracle of fuzz/fuzz_targets/envelope.rs
pub fn envelope(line: &[u8]) {
    if let Some(env) = envelope::parse(line) {
        let range = line.as_ptr_range();
        let inside = |f: &[u8]| f.is_empty() || (range.contains(&f.as_ptr()) && f.len() <= line.len());
        assert!(inside(env.timestamp));
        assert!(inside(env.message));
        assert!(inside(env.host.unwrap_or(b"")));
        assert!(inside(env.pid.unwrap_or(b"")));
        assert!(env.exim_mainlog || inside(env.program));
    }
}

/// The oracle of fuzz/fuzz_targets/spf.rs
pub fn spf(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut lines = text.split('\n');
    let top = lines.next().unwrap_or("");
    let mut lookups = SpfLookups::default();
    for l in lines {
        let (name, rest) = l.split_once(' ').unwrap_or((l, ""));
        let answer = match rest {
            "VOID" => Lookup::Void { nxdomain: true },
            "FAIL" => Lookup::Failed("fuzz".to_string()),
            r => Lookup::Found(vec![r.to_string()]),
        };
        lookups.txt.insert(name.to_string(), answer);
        lookups.addresses.insert(name.to_string(), Lookup::Found(vec!["192.0.2.1".parse().unwrap()]));
        lookups.mx.insert(name.to_string(), Lookup::Found(vec![name.to_string()]));
    }
    let _ = spf::is_spf(top);
    let _ = spf::expand(top, "example.com", "sender.example");
    match spf::parse(top) {
        Ok(record) => {
            let _ = record.advice();
            let walk = spf::walk("example.com", &record, &lookups);
            let _ = (walk.complete(), walk.over_limit());
        }
        Err(errors) => {
            assert!(!errors.is_empty());
            let _ = spf::errors_text(&errors);
        }
    }
}

/// The oracle of fuzz/fuzz_targets/dmarc.rs
pub fn dmarc(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = dmarc::is_dmarc(text);
    let _ = dmarc::looks_like_dmarc(text);
    let parsed = dmarc::parse(text);
    assert_eq!(parsed.valid(), parsed.errors.is_empty());
    let _ = parsed.effective_policy();
    let _ = tag_list(text);
    let _ = dkim::parse(text);
    let _ = sts::parse_mta_sts(text);
    let _ = sts::parse_tlsrpt(text);
}

/// The oracle of fuzz/fuzz_targets/config.rs
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match Config::parse(text, "fuzz.toml") {
        Ok(c) => {
            let _ = c.misroute_domains();
        }
        Err(e) => {
            let lines = text.split('\n').count();
            assert!(e.line <= lines + 1, "error line {} beyond the text's {} lines: {e}", e.line, lines);
            let _ = e.to_string();
        }
    }
}
