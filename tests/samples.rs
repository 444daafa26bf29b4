//! The real lab logs (`tests/fixtures/samples/lab-mail.log` and its RFC 3339 twin,
//! written by Sendmail 8.17, Postfix 3.7 and Exim 4.96) against the client-side
//! ground truth in `lab-expected.json` (what swaks saw for each transaction,
//! independent of any log).
//!
//! `replay --output json` must find every reject (none lost, none extra) with the
//! right host, MTA, stage and reason ("kind"), every accepted message, and the
//! misroutes: every recipient domain of the lab is configured as a local domain, so
//! each relay-denied reject shows up as a misroute for its recipient's domain —
//! broken.test 3 times on rigor-mortis, the apex host that is not the MX.
//!
//! The recipient domain of the other kinds is not a metric label; it is compared
//! through the library's parsers (the same dispatch as the processor).

mod common;

use std::collections::BTreeMap;

use common::{fixture, run};
use mailroute_exporter::maillog::reason::Classifier;
use mailroute_exporter::maillog::{Event, envelope, exim, postfix, sendmail};
use serde_json::Value;

const LOGS: [&str; 2] = ["lab-mail.log", "lab-mail-rfc3339.log"];

fn expected() -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture("samples/lab-expected.json")).unwrap()).unwrap()
}

fn count(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

/// Every recipient domain the ground truth names.
fn lab_domains(exp: &Value) -> Vec<String> {
    exp["by_recipient_domain"].as_object().unwrap().keys().cloned().collect()
}

/// `replay --output json` of one sample log, with every lab domain local.
fn replay_json(log: &str, domains: &[String]) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("lab.toml");
    let list: Vec<String> = domains.iter().map(|d| format!("{d:?}")).collect();
    std::fs::write(&cfg, format!("[maillog]\nlocal_domains = [{}]\n", list.join(", "))).unwrap();
    let path = fixture(&format!("samples/{log}"));
    let (status, stdout, stderr) =
        run(&["replay", &format!("--config.file={}", cfg.display()), "--output=json", path.to_str().unwrap()]);
    assert!(status.success(), "replay {log}: {status}: {stderr}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("replay {log} printed no JSON ({e}): {stdout}"))
}

const MTA: [(&str, &str); 3] = [("talon", "postfix"), ("rigor-mortis", "sendmail"), ("exim-gw", "exim")];

#[test]
fn every_reject_is_found_with_its_host_kind_and_stage() {
    let exp = expected();
    let domains = lab_domains(&exp);
    for log in LOGS {
        let got = replay_json(log, &domains);
        let mut failures = Vec::new();
        // (host, kind) → count, and (host, stage) → count, from the exporter's rejects
        let mut by_kind: BTreeMap<(String, String), u64> = BTreeMap::new();
        let mut by_stage: BTreeMap<(String, String), u64> = BTreeMap::new();
        for r in got["rejects"].as_array().unwrap() {
            let host = r["host"].as_str().unwrap().to_string();
            let mta = r["mta"].as_str().unwrap();
            match MTA.iter().find(|(h, _)| *h == host) {
                Some((_, want)) if *want == mta => {}
                _ => failures.push(format!("{log}: reject of mta {mta} on host {host}: {r}")),
            }
            *by_kind.entry((host.clone(), r["reason"].as_str().unwrap().to_string())).or_default() +=
                count(&r["count"]);
            *by_stage.entry((host, r["stage"].as_str().unwrap().to_string())).or_default() += count(&r["count"]);
        }
        let mut want_kind: BTreeMap<(String, String), u64> = BTreeMap::new();
        let mut want_stage: BTreeMap<(String, String), u64> = BTreeMap::new();
        for (host, v) in exp["rejected"].as_object().unwrap() {
            for (kind, n) in v["by_kind"].as_object().unwrap() {
                want_kind.insert((host.clone(), kind.clone()), count(n));
            }
            for (stage, n) in v["by_stage"].as_object().unwrap() {
                want_stage.insert((host.clone(), stage.clone()), count(n));
            }
        }
        if by_kind != want_kind {
            failures.push(format!("{log}: rejects by (host, kind)\n  got  {by_kind:?}\n  want {want_kind:?}"));
        }
        if by_stage != want_stage {
            failures.push(format!("{log}: rejects by (host, stage)\n  got  {by_stage:?}\n  want {want_stage:?}"));
        }
        // none lost, none extra: the reject lines equal the client's refused transactions
        let reject_lines: u64 = got["lines"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|l| l["outcome"] == "reject")
            .map(|l| count(&l["count"]))
            .sum();
        if reject_lines != count(&exp["rejected_total"]) {
            failures.push(format!("{log}: {reject_lines} reject lines, want {}", exp["rejected_total"]));
        }
        if got["lines"].as_array().unwrap().iter().any(|l| l["outcome"] == "unparsed") {
            failures.push(format!("{log}: unparsed lines in real MTA output: {}", got["lines"]));
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }
}

#[test]
fn accepted_messages_per_host() {
    let exp = expected();
    for log in LOGS {
        let got = replay_json(log, &lab_domains(&exp));
        let mut accepted: BTreeMap<String, u64> = BTreeMap::new();
        for a in got["accepted"].as_array().unwrap() {
            let host = a["host"].as_str().unwrap();
            let (_, mta) = MTA.iter().find(|(h, _)| *h == host).unwrap_or_else(|| panic!("{log}: unknown host {a}"));
            assert_eq!(a["mta"].as_str(), Some(*mta), "{log}: {a}");
            *accepted.entry(host.to_string()).or_default() += count(&a["count"]);
        }
        let want: BTreeMap<String, u64> =
            exp["accepted"].as_object().unwrap().iter().map(|(h, v)| (h.clone(), count(&v["total"]))).collect();
        assert_eq!(accepted, want, "{log}: accepted messages per host");
        assert_eq!(accepted.values().sum::<u64>(), count(&exp["accepted_total"]));
    }
}

#[test]
fn misroutes_per_recipient_domain() {
    let exp = expected();
    for log in LOGS {
        let got = replay_json(log, &lab_domains(&exp));
        let mut misroutes: BTreeMap<(String, String), u64> = BTreeMap::new();
        for m in got["misroutes"].as_array().unwrap() {
            misroutes.insert(
                (m["host"].as_str().unwrap().to_string(), m["domain"].as_str().unwrap().to_string()),
                count(&m["count"]),
            );
        }
        let mut want: BTreeMap<(String, String), u64> = BTreeMap::new();
        for (host, v) in exp["rejected"].as_object().unwrap() {
            if let Some(relay) = v["by_kind_domain"].get("relay_denied") {
                for (domain, n) in relay.as_object().unwrap() {
                    want.insert((host.clone(), domain.clone()), count(n));
                }
            }
        }
        assert_eq!(misroutes, want, "{log}: misroutes by (host, domain)");
        // the product's raison d'être: mail for broken.test refused on its apex host
        let m = &exp["misroute"];
        assert_eq!(m["apex_a_host"], "rigor-mortis");
        assert_eq!(
            misroutes.get(&("rigor-mortis".to_string(), "broken.test".to_string())),
            Some(&3),
            "{log}: broken.test misroutes on rigor-mortis"
        );
        assert_eq!(count(&m["sent_to_apex_a"]), 3);
    }
}

/// Only broken.test monitored (the README's run command): its three misroutes and
/// nothing else.
#[test]
fn only_the_monitored_domain_counts_as_misroute() {
    for log in LOGS {
        let path = fixture(&format!("samples/{log}"));
        let (status, stdout, stderr) =
            run(&["replay", "--dns.domain=broken.test", "--output=json", path.to_str().unwrap()]);
        assert!(status.success(), "{stderr}");
        let got: Value = serde_json::from_str(&stdout).unwrap();
        let m = got["misroutes"].as_array().unwrap();
        assert_eq!(m.len(), 1, "{log}: {m:?}");
        assert_eq!(m[0]["host"], "rigor-mortis");
        assert_eq!(m[0]["domain"], "broken.test");
        assert_eq!(m[0]["count"], 3);
    }
}

/// Rejects per (host, kind, recipient domain): the ground truth's `by_kind_domain`,
/// read through the parsers since the domain is not a label.
#[test]
fn rejects_per_recipient_domain() {
    let exp = expected();
    let classifier = Classifier::new();
    for log in LOGS {
        let text = std::fs::read(fixture(&format!("samples/{log}"))).unwrap();
        let mut joiner = exim::EximJoiner::default();
        let mut got: BTreeMap<(String, String, String), u64> = BTreeMap::new();
        for line in text.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let env =
                envelope::parse(line).unwrap_or_else(|| panic!("{log}: unparsed {}", String::from_utf8_lossy(line)));
            let host = String::from_utf8_lossy(env.host.unwrap()).into_owned();
            let event = if postfix::is_postfix(env.program) {
                postfix::parse(env.program, env.message, &classifier)
            } else if sendmail::is_sendmail(env.program) {
                sendmail::parse(env.message, &classifier)
            } else {
                match joiner.feed(env.host.unwrap_or(b""), env.pid, exim::strip_inner_timestamp(env.message)) {
                    exim::Joined::Whole(m) => exim::parse(m, &classifier),
                    other => panic!("{log}: the lab log has no split Exim entries: {other:?}"),
                }
            };
            if let Event::Reject(r) = event {
                let domain = r.recipient_domain().unwrap_or_else(|| panic!("{log}: no recipient in {r:?}"));
                *got.entry((host, r.reason.as_str().to_string(), domain)).or_default() += 1;
            }
        }
        let mut want: BTreeMap<(String, String, String), u64> = BTreeMap::new();
        for (host, v) in exp["rejected"].as_object().unwrap() {
            for (kind, domains) in v["by_kind_domain"].as_object().unwrap() {
                for (domain, n) in domains.as_object().unwrap() {
                    want.insert((host.clone(), kind.clone(), domain.clone()), count(n));
                }
            }
        }
        assert_eq!(got, want, "{log}: rejects by (host, kind, recipient domain)");
    }
}
