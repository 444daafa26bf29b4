//! The DNS checks against real servers: NSD, Knot and BIND as authorities and
//! Unbound as the resolver (lab/dns/), one zone per defect. For every name in
//! lab/dns/expected.toml, exactly the expected checks fail — through
//! `check --output json` and through `/metrics` of a running `serve`.

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use common::{Exporter, dns_lab, lab_expectations, metric_samples, metric_value, promtool_check_metrics, run};
use mailroute_exporter::dns::checks::CATALOGUE;

/// A configuration for the lab naming every expected domain.
fn config(dir: &std::path::Path, names: &[&str]) -> PathBuf {
    let (resolver, port) = dns_lab();
    let exp = lab_expectations();
    let mut cfg = format!("[dns]\nresolvers = [\"{resolver}\"]\nport = {port}\ntimeout = \"1s\"\ninterval = \"1h\"\n");
    for (name, e) in &exp {
        if !names.is_empty() && !names.contains(&name.as_str()) {
            continue;
        }
        let sel: Vec<String> = e.dkim_selectors.iter().map(|s| format!("\"{s}\"")).collect();
        cfg.push_str(&format!("\n[[dns.domain]]\nname = \"{name}\"\ndkim_selectors = [{}]\n", sel.join(", ")));
    }
    let path = dir.join("lab.toml");
    std::fs::write(&path, cfg).expect("write config");
    path
}

/// Checks every lab domain has the data for (the rest depend on the zone: no MX,
/// a single server, …). A zone none of whose servers works has only the first two
/// ([`DEAD_EVALUATED`]).
const ALWAYS_EVALUATED: [&str; 9] = [
    "dns_round_failed",
    "no_working_nameserver",
    "nameserver_unreachable",
    "nameserver_not_authoritative",
    "nameserver_unresolvable",
    "nameserver_count_low",
    "soa_serial_mismatch",
    "soa_mname_not_in_ns",
    "mx_missing",
];

/// Checks every lab domain has the data for, when none of its servers works.
const DEAD_EVALUATED: [&str; 2] = ["dns_round_failed", "no_working_nameserver"];

/// The checks a lab domain must list, passing or failing.
fn always_evaluated(expected_fail: &[String]) -> &'static [&'static str] {
    if expected_fail.iter().any(|c| c == "no_working_nameserver") { &DEAD_EVALUATED } else { &ALWAYS_EVALUATED }
}

fn known_checks() -> BTreeSet<&'static str> {
    CATALOGUE.iter().map(|c| c.id).collect()
}

#[test]
fn check_json_fails_exactly_the_expected_checks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(dir.path(), &[]);
    let (status, stdout, stderr) = run(&["check", &format!("--config.file={}", cfg.display()), "--output=json"]);
    assert_eq!(status.code(), Some(1), "some lab zones fail warning checks\n{stderr}");
    let doc: serde_json::Value = serde_json::from_str(&stdout).expect("JSON output");
    let exp = lab_expectations();
    let known = known_checks();
    let mut problems = Vec::new();
    let domains = doc["domains"].as_array().expect("domains");
    assert_eq!(domains.len(), exp.len());
    for d in domains {
        let name = d["domain"].as_str().expect("domain");
        let checks = d["checks"].as_array().expect("checks");
        let got: BTreeSet<String> = checks
            .iter()
            .filter(|c| c["failed"] == true)
            .map(|c| c["check"].as_str().unwrap_or("").to_string())
            .collect();
        let want: BTreeSet<String> = exp[name].fail.iter().filter(|c| known.contains(c.as_str())).cloned().collect();
        if got != want {
            problems.push(format!(
                "{name}: failing {got:?}, expected {want:?}\n{}",
                serde_json::to_string_pretty(checks).unwrap_or_default()
            ));
        }
        // every check that applies is listed, passing ones too
        let listed: BTreeSet<&str> = checks.iter().filter_map(|c| c["check"].as_str()).collect();
        for always in always_evaluated(&exp[name].fail) {
            assert!(listed.contains(always), "{name}: {always} missing from {listed:?}");
        }
        for c in checks {
            assert!(c["message"].as_str().is_some_and(|m| !m.is_empty()), "{name}: {c}");
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}

#[test]
fn expectations_name_only_catalogue_checks() {
    // a typo in expected.toml must not make a zone pass silently
    let known = known_checks();
    for (name, e) in lab_expectations() {
        for c in e.fail {
            assert!(known.contains(c.as_str()), "{name}: unknown check {c}");
        }
    }
}

#[test]
fn check_text_explains_the_incident_and_exit_codes_follow_severity() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(dir.path(), &[]);
    let cfg_arg = format!("--config.file={}", cfg.display());
    let (status, stdout, _) = run(&["check", &cfg_arg, "incident.test"]);
    assert_eq!(status.code(), Some(1));
    assert!(stdout.contains("FAIL apex_mx_mismatch (warning): incident.test has apex address 127.0.54.2 that no MX host has (MX hosts: mx.incident.test = 127.0.54.1)"), "{stdout}");
    assert!(
        stdout.contains(
            "FAIL soa_mname_not_in_ns (warning): SOA MNAME web.incident.test is not a name server of the zone"
        ),
        "{stdout}"
    );
    assert!(stdout.contains("ns1.incident.test  127.0.53.11  yes  NOERROR  2026112701  web.incident.test"), "{stdout}");
    let (status, stdout, _) = run(&["check", &cfg_arg, "fixed.test"]);
    assert_eq!(status.code(), Some(0), "{stdout}");
    assert!(!stdout.contains("FAIL"), "{stdout}");
    // a domain that does not exist: nothing to ask, and that is critical
    let (status, stdout, _) = run(&["check", &cfg_arg, "nosuchdomain.test"]);
    assert_eq!(status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("FAIL no_working_nameserver (critical): nosuchdomain.test does not exist: the resolvers answer NXDOMAIN (the closest enclosing zone is test)"), "{stdout}");
    // an info-level failure alone exits 0
    let (status, stdout, _) = run(&["check", &cfg_arg, "fields.test"]);
    assert!(stdout.contains("FAIL soa_fields_mismatch (info)"), "{stdout}");
    assert_eq!(status.code(), Some(0), "{stdout}");
    // usage and configuration errors exit 2
    let (status, _, stderr) = run(&["check", &cfg_arg, "not a domain"]);
    assert_eq!(status.code(), Some(2), "{stderr}");
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[dns]\ninterval = \"5x\"\n").expect("write");
    let (status, _, stderr) = run(&["check", &format!("--config.file={}", bad.display())]);
    assert_eq!(status.code(), Some(2));
    assert!(stderr.contains("bad.toml:2:12: dns.interval: invalid duration \"5x\""), "{stderr}");
}

#[test]
fn serve_exports_the_same_verdicts_as_metrics() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(dir.path(), &[]);
    let log = dir.path().join("mail.log");
    std::fs::write(&log, b"").expect("log");
    let ex = Exporter::start(&[
        "serve",
        &format!("--config.file={}", cfg.display()),
        &format!("--maillog.path={}", log.display()),
        "--web.listen-address=127.0.0.1:0",
    ]);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while ex.get("/-/ready").status != 200 {
        assert!(std::time::Instant::now() < deadline, "not ready after 30 s\n{}", ex.stderr());
        std::thread::sleep(Duration::from_millis(100));
    }
    let text = ex.scrape();
    promtool_check_metrics(&text).expect("promtool accepts the exposition");
    let exp = lab_expectations();
    let known = known_checks();
    let mut problems = Vec::new();
    let samples = metric_samples(&text, "mailroute_dns_check_failed");
    for (name, e) in &exp {
        let failing: BTreeSet<String> = samples
            .iter()
            .filter(|(l, v)| l.get("domain") == Some(name) && *v == 1.0)
            .filter_map(|(l, _)| l.get("check").cloned())
            .collect();
        let evaluated = samples.iter().filter(|(l, _)| l.get("domain") == Some(name)).count();
        let want: BTreeSet<String> = e.fail.iter().filter(|c| known.contains(c.as_str())).cloned().collect();
        let listed: BTreeSet<&str> = samples
            .iter()
            .filter(|(l, _)| l.get("domain") == Some(name))
            .filter_map(|(l, _)| l.get("check").map(String::as_str))
            .collect();
        if failing != want || always_evaluated(&e.fail).iter().any(|c| !listed.contains(c)) {
            problems.push(format!("{name}: failing {failing:?} of {evaluated}, expected {want:?}"));
        }
        assert!(metric_value(&text, "mailroute_dns_last_check_timestamp_seconds", &[("domain", name)]).is_some());
        // every lab zone can be judged, the dead ones through the parent's servers
        assert_eq!(metric_value(&text, "mailroute_dns_round_success", &[("domain", name)]), Some(1.0), "{name}");
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // the facts behind the verdicts
    let up = |ns: &str, addr: &str| {
        metric_value(
            &text,
            "mailroute_dns_nameserver_up",
            &[("domain", "lame.test"), ("nameserver", ns), ("address", addr)],
        )
    };
    assert_eq!(up("ns1.lame.test", "127.0.53.11"), Some(1.0));
    assert_eq!(up("ns3.lame.test", "127.0.53.13"), Some(0.0));
    assert_eq!(up("ns4.lame.test", "127.0.53.14"), Some(0.0));
    let behind = |ns: &str, addr: &str| {
        metric_value(
            &text,
            "mailroute_dns_soa_serial_behind",
            &[("domain", "drift.test"), ("nameserver", ns), ("address", addr)],
        )
    };
    assert_eq!(behind("ns1.drift.test", "127.0.53.11"), Some(0.0));
    assert_eq!(behind("ns2.drift.test", "127.0.53.12"), Some(1.0));
    assert_eq!(
        metric_value(
            &text,
            "mailroute_dns_soa_serial",
            &[("domain", "drift.test"), ("nameserver", "ns1.drift.test"), ("address", "127.0.53.11")]
        ),
        Some(2026112702.0)
    );
    assert_eq!(
        metric_value(
            &text,
            "mailroute_dns_apex_address_info",
            &[("domain", "incident.test"), ("address", "127.0.54.2"), ("served_by_mx", "false")]
        ),
        Some(1.0)
    );
    assert_eq!(
        metric_value(
            &text,
            "mailroute_dns_apex_address_info",
            &[("domain", "fixed.test"), ("address", "127.0.54.11"), ("served_by_mx", "true")]
        ),
        Some(1.0)
    );
    assert_eq!(
        metric_value(
            &text,
            "mailroute_dns_mx_info",
            &[("domain", "nullmx.test"), ("exchange", "."), ("preference", "0")]
        ),
        Some(1.0)
    );
    // DNSSEC: signed = DS at the parent; the earliest RRSIG expiration per server
    let signed = |d: &str| metric_value(&text, "mailroute_dns_dnssec_signed", &[("domain", d)]);
    assert_eq!(signed("signed.test"), Some(1.0));
    assert_eq!(signed("sigstripped.test"), Some(1.0));
    assert_eq!(signed("fixed.test"), Some(0.0));
    let expiry = |d: &str, ns: &str, addr: &str| {
        metric_value(
            &text,
            "mailroute_dns_rrsig_expiry_timestamp_seconds",
            &[("domain", d), ("nameserver", ns), ("address", addr)],
        )
    };
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs_f64();
    let day = 86400.0;
    // the lab signs for 30 days when it starts, this one for 3 days, Knot's sigexpired copy until a day ago
    assert!(expiry("signed.test", "ns1.signed.test", "127.0.53.11").is_some_and(|t| t > now + 20.0 * day));
    assert!(
        expiry("sigexpiring.test", "ns2.sigexpiring.test", "127.0.53.12")
            .is_some_and(|t| t > now && t < now + 3.0 * day)
    );
    assert!(expiry("sigexpired.test", "ns2.sigexpired.test", "127.0.53.12").is_some_and(|t| t < now - 0.5 * day));
    assert!(expiry("sigexpired.test", "ns1.sigexpired.test", "127.0.53.11").is_some_and(|t| t > now + 20.0 * day));
    // no RRSIG served, no series
    assert_eq!(expiry("sigstripped.test", "ns2.sigstripped.test", "127.0.53.12"), None);
    assert_eq!(expiry("fixed.test", "ns1.fixed.test", "127.0.53.11"), None);
    assert!(metric_value(&text, "mailroute_dns_queries_total", &[("result", "ok")]).is_some_and(|v| v > 100.0));
    assert!(metric_value(&text, "mailroute_dns_queries_total", &[("result", "refused")]).is_some_and(|v| v >= 1.0));
    assert!(metric_value(&text, "mailroute_dns_queries_total", &[("result", "timeout")]).is_some_and(|v| v >= 1.0));
    // the status page explains failing checks in words
    let status = ex.get("/api/v1/status").text();
    let doc: serde_json::Value = serde_json::from_str(&status).expect("status JSON");
    let incident = doc["dns"]["domains"]
        .as_array()
        .expect("domains")
        .iter()
        .find(|d| d["domain"] == "incident.test")
        .cloned()
        .expect("incident.test");
    let msgs: Vec<&str> =
        incident["failing_checks"].as_array().expect("failing").iter().filter_map(|c| c["message"].as_str()).collect();
    assert!(msgs.iter().any(|m| m.contains("apex address 127.0.54.2 that no MX host has")), "{msgs:?}");
    let domain = |name: &str| {
        doc["dns"]["domains"].as_array().expect("domains").iter().find(|d| d["domain"] == name).cloned().expect(name)
    };
    assert_eq!(domain("signed.test")["dnssec_signed"], true);
    assert_eq!(domain("fixed.test")["dnssec_signed"], false);
    let stripped = domain("sigstripped.test");
    let keys: Vec<(&str, u64)> = stripped["servers"]
        .as_array()
        .expect("servers")
        .iter()
        .map(|s| (s["name"].as_str().unwrap_or(""), s["dnskeys"].as_u64().unwrap_or(99)))
        .collect();
    assert_eq!(keys, vec![("ns1.sigstripped.test", 2), ("ns2.sigstripped.test", 0)]);
    let html = ex.get("/").text();
    assert!(html.contains("2 keys, RRSIGs expire 20") && html.contains("<td>unsigned</td>"), "{html}");
    assert!(
        html.contains("apex_mx_mismatch") && html.contains("senders that fall back to the apex A record deliver there"),
        "{html}"
    );
}
