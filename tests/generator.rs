//! The workload generator (`examples/gen/`) against the real binary: `replay` of a
//! generated log must count exactly what the generator's truth says, per line outcome,
//! per reject series (host, MTA, stage, reason, class), per accepted message and per
//! misroute. The truth is written line by line from the rule book's reading of each
//! shape, so any parser drift (or generator drift) shows up here as a cell that differs.
//! Also: the same seed gives the same bytes, another seed other bytes.

#[allow(dead_code)]
#[path = "../examples/gen/workload.rs"]
mod workload;

use std::collections::BTreeMap;
use std::io::Write;
use std::process::Command;

use workload::{LOCAL_DOMAINS, Mix, Settings, Truth, Workload};

fn generate(settings: Settings, lines: usize) -> (String, Truth) {
    let mut w = Workload::new(settings);
    let mut text = String::new();
    for _ in 0..lines {
        text.push_str(&w.next_line());
        text.push('\n');
    }
    (text, w.truth)
}

/// `replay --output json` of `text` with the generator's local domains configured.
fn replay(text: &str) -> serde_json::Value {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("gen.log");
    std::fs::File::create(&log).and_then(|mut f| f.write_all(text.as_bytes())).expect("write log");
    let conf = dir.path().join("c.toml");
    let domains: Vec<String> = LOCAL_DOMAINS.iter().map(|d| format!("{d:?}")).collect();
    std::fs::write(&conf, format!("[maillog]\nlocal_domains = [{}]\n", domains.join(", "))).expect("write config");
    let out = Command::new(env!("CARGO_BIN_EXE_mailroute_exporter"))
        .args(["replay", "--output", "json", "--config.file"])
        .arg(&conf)
        .arg(&log)
        .output()
        .expect("run replay");
    assert!(out.status.success(), "replay failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("replay json")
}

fn counts(v: &serde_json::Value, key: &str, fields: &[&str]) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for r in v[key].as_array().unwrap_or_else(|| panic!("no {key} in replay output")) {
        let k: Vec<&str> = fields.iter().map(|f| r[*f].as_str().unwrap_or("?")).collect();
        *m.entry(k.join("|")).or_default() += r["count"].as_u64().expect("count");
    }
    m
}

/// Every cell that differs, as "key: truth N, replay M".
fn diff(what: &str, truth: &BTreeMap<String, u64>, ours: &BTreeMap<String, u64>) -> Vec<String> {
    let keys: std::collections::BTreeSet<&String> = truth.keys().chain(ours.keys()).collect();
    keys.into_iter()
        .filter_map(|k| {
            let (t, o) = (truth.get(k).copied().unwrap_or(0), ours.get(k).copied().unwrap_or(0));
            (t != o).then(|| format!("{what} {k}: truth {t}, replay {o}"))
        })
        .collect()
}

fn check(settings: Settings, lines: usize) {
    let (text, truth) = generate(settings, lines);
    assert_eq!(truth.lines, lines as u64);
    assert!(truth.rejects_total > (lines / 20) as u64, "too few rejects to test anything: {}", truth.rejects_total);
    let v = replay(&text);
    let mut bad = Vec::new();
    let lines_by_outcome: BTreeMap<String, u64> = counts(&v, "lines", &["outcome"]);
    bad.extend(diff("lines", &truth.outcomes, &lines_by_outcome));
    bad.extend(diff("rejects", &truth.series, &counts(&v, "rejects", &["host", "mta", "stage", "reason", "class"])));
    bad.extend(diff("accepted", &truth.accepted, &counts(&v, "accepted", &["host", "mta"])));
    bad.extend(diff("misroutes", &truth.misroutes, &counts(&v, "misroutes", &["host", "domain"])));
    assert!(bad.is_empty(), "replay differs from the generator's truth:\n{}", bad.join("\n"));
}

#[test]
fn replay_of_a_mixed_log_matches_its_truth() {
    let settings = Settings { seed: 7, mix: Mix::Mixed, hosts: 4, ..Settings::default() };
    let (_, truth) = generate(settings.clone(), 40_000);
    // the log holds what it should: all three MTAs, misroutes, every issue-11 shape
    for mta in ["postfix", "sendmail", "exim"] {
        assert!(truth.rejects.contains_key(mta), "no {mta} rejects");
    }
    assert!(!truth.misroutes.is_empty());
    for kind in [
        "pf_sasl_port",
        "pf_starttls",
        "ex_size",
        "ex_no_helo",
        "ex_nonmail_flood",
        "ex_header_syntax",
        "ex_must_encrypt",
    ] {
        let mta = if kind.starts_with("pf") { "postfix" } else { "exim" };
        assert!(truth.rejects[mta].get(kind).is_some_and(|&n| n > 0), "no {kind} rejects");
    }
    check(settings, 40_000);
}

#[test]
fn replay_of_a_postfix_log_matches_its_truth() {
    check(Settings { seed: 11, mix: Mix::Postfix, hosts: 2, reject_share: 0.3, ..Settings::default() }, 20_000);
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let s = Settings { seed: 3, ..Settings::default() };
    let (a, ta) = generate(s.clone(), 5_000);
    let (b, tb) = generate(s, 5_000);
    assert_eq!(a, b);
    assert_eq!(ta.series, tb.series);
    let (c, _) = generate(Settings { seed: 4, ..Settings::default() }, 5_000);
    assert_ne!(a, c);
}

#[test]
fn truth_counts_bytes_and_lines_of_the_text() {
    let (text, truth) = generate(Settings::default(), 3_000);
    assert_eq!(truth.bytes, text.len() as u64);
    assert_eq!(truth.lines, text.lines().count() as u64);
    assert_eq!(truth.outcomes.values().sum::<u64>(), truth.lines);
}
