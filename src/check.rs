//! `check [DOMAIN...]`: one DNS round, printed for a person (a table of each
//! domain's servers and their answers, then each failing check in a sentence) or as
//! JSON. Exit status (SPEC §2): 0 when no check of severity warning or critical
//! fails, 1 when one does (or a domain's round could not finish), 2 on usage or
//! configuration errors.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::cli::CheckOutput;
use crate::config::{Config, DomainConfig, parse_domain};
use crate::dns::checks::Severity;
use crate::dns::probe::Prober;
use crate::dns::snapshot::{Standing, list};
use crate::dns::state::{DomainResult, round_deadline, run_round};

/// The domains to check: those named (with their configured settings, if any), or
/// all configured ones.
pub fn domains_to_check(config: &Config, named: &[String]) -> Result<Vec<DomainConfig>, String> {
    if named.is_empty() {
        if config.dns.domains.is_empty() {
            return Err("no domains to check: name them on the command line or configure [[dns.domain]]".to_string());
        }
        return Ok(config.dns.domains.clone());
    }
    let mut out: Vec<DomainConfig> = Vec::new();
    for n in named {
        let name = parse_domain(n)?;
        if out.iter().any(|d| d.name == name) {
            continue;
        }
        let configured = config.dns.domains.iter().find(|d| d.name == name).cloned();
        out.push(configured.unwrap_or(DomainConfig {
            name,
            dkim_selectors: vec![],
            expected_mx: None,
            smtp_probe: false,
            starttls_probe: false,
        }));
    }
    Ok(out)
}

/// Runs the round; returns the results in the order asked.
pub async fn run(config: &Config, domains: &[DomainConfig]) -> Vec<DomainResult> {
    let prober = Prober::new(config.dns.concurrency, config.dns.timeout, None);
    let settings = crate::serve::dns_settings(config);
    let deadline = round_deadline(config.dns.timeout, config.dns.interval);
    let mut results: BTreeMap<String, DomainResult> = run_round(&prober, &settings, domains, deadline).await;
    domains.iter().filter_map(|d| results.remove(&d.name)).collect()
}

/// 1 when a warning or critical check fails or a round did not finish, else 0.
pub fn exit_code(results: &[DomainResult]) -> u8 {
    let bad = results.iter().any(|r| {
        r.error.is_some() || r.failing().any(|c| matches!(c.severity, Severity::Critical | Severity::Warning))
    });
    u8::from(bad)
}

/// Renders the results.
pub fn render(results: &[DomainResult], output: CheckOutput) -> String {
    match output {
        CheckOutput::Json => {
            let mut s = serde_json::to_string_pretty(&json(results)).unwrap_or_default();
            s.push('\n');
            s
        }
        CheckOutput::Text => text(results),
    }
}

fn standing_fields(st: &Standing) -> (bool, Option<String>) {
    match st {
        Standing::Authoritative => (true, Some("NOERROR".to_string())),
        Standing::Lame { rcode, authoritative, .. } => (*authoritative, Some(rcode.clone())),
        Standing::Unreachable { .. } => (false, None),
    }
}

/// The JSON of SPEC §2: every evaluated check listed, passing ones with `failed: false`.
pub fn json(results: &[DomainResult]) -> serde_json::Value {
    use serde_json::json;
    let domains: Vec<serde_json::Value> = results
        .iter()
        .map(|r| {
            let snap = r.snapshot.as_ref();
            let nameservers: Vec<serde_json::Value> = snap
                .map(|s| {
                    s.servers
                        .iter()
                        .map(|x| {
                            let (aa, rcode) = standing_fields(&x.standing);
                            json!({
                                "name": x.name,
                                "address": x.address.to_string(),
                                "authoritative": aa,
                                "rcode": rcode,
                                "up": x.is_up(),
                                "soa_serial": x.soa.as_ref().map(|s| s.serial),
                                "mname": x.soa.as_ref().map(|s| s.mname.clone()),
                                "ns": x.ns.as_ref().map(|n| n.iter().cloned().collect::<Vec<_>>()),
                                "mx": x.mx.as_ref().map(|m| m.iter().map(|m| format!("{} {}", m.preference, m.exchange)).collect::<Vec<_>>()),
                                "apex": x.apex.as_ref().map(|a| a.iter().map(|a| a.to_string()).collect::<Vec<_>>()),
                                "rtt_seconds": x.rtt_seconds,
                                "error": match &x.standing { Standing::Unreachable { error } => Some(error.clone()), Standing::Lame { detail, .. } => Some(detail.clone()), Standing::Authoritative => None },
                            })
                        })
                        .collect()
                })
                .unwrap_or_default();
            json!({
                "domain": r.domain,
                "zone": snap.and_then(|s| s.zone.clone()),
                "parent_zone": snap.and_then(|s| s.parent_zone.clone()),
                "error": r.error,
                "duration_seconds": r.duration_seconds,
                "nameservers": nameservers,
                "checks": r.checks,
                "notes": snap.map(|s| s.notes.clone()).unwrap_or_default(),
            })
        })
        .collect();
    json!({ "domains": domains })
}

fn table(rows: &[Vec<String>]) -> String {
    let mut widths = vec![0usize; rows.first().map_or(0, Vec::len)];
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in rows {
        let mut line = String::from("  ");
        for (c, w) in r.iter().zip(&widths) {
            let pad = w.saturating_sub(c.chars().count());
            let _ = write!(line, "{c}{}  ", " ".repeat(pad));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn text(results: &[DomainResult]) -> String {
    let mut out = String::new();
    for r in results {
        let Some(s) = &r.snapshot else {
            let _ =
                writeln!(out, "{}: round did not finish: {}", r.domain, r.error.as_deref().unwrap_or("unknown error"));
            for c in r.failing() {
                let _ = writeln!(out, "  FAIL {} ({}): {}", c.check, c.severity.as_str(), c.message);
            }
            out.push('\n');
            continue;
        };
        let _ = writeln!(
            out,
            "{} (zone {}, parent {}; {} server address(es), {:.2}s)",
            r.domain,
            s.zone.as_deref().unwrap_or("?"),
            s.parent_zone.as_deref().unwrap_or("?"),
            s.servers.len(),
            r.duration_seconds
        );
        let mut rows = vec![
            ["SERVER", "ADDRESS", "AA", "RCODE", "SERIAL", "MNAME", "NS", "MX", "APEX", "RTT"]
                .map(str::to_string)
                .to_vec(),
        ];
        for x in &s.servers {
            let (aa, rcode) = standing_fields(&x.standing);
            let dash = || "-".to_string();
            rows.push(vec![
                x.name.clone(),
                x.address.to_string(),
                if rcode.is_some() { if aa { "yes" } else { "no" }.to_string() } else { dash() },
                rcode.unwrap_or_else(|| "no answer".to_string()),
                x.soa.as_ref().map_or_else(dash, |s| s.serial.to_string()),
                x.soa.as_ref().map_or_else(dash, |s| s.mname.clone()),
                x.ns.as_ref()
                    .filter(|_| x.is_up())
                    .map_or_else(dash, |n| n.iter().cloned().collect::<Vec<_>>().join(",")),
                x.mx.as_ref().filter(|_| x.is_up()).map_or_else(dash, |m| {
                    m.iter().map(|m| format!("{} {}", m.preference, m.exchange)).collect::<Vec<_>>().join(",")
                }),
                x.apex.as_ref().filter(|_| x.is_up()).map_or_else(dash, |a| list(a.iter())),
                x.rtt_seconds.map_or_else(dash, |t| format!("{:.1}ms", t * 1000.0)),
            ]);
        }
        out.push_str(&table(&rows));
        for n in &s.notes {
            let _ = writeln!(out, "  note: {n}");
        }
        let failing: Vec<_> = r.failing().collect();
        for c in &failing {
            let _ = writeln!(out, "  FAIL {} ({}): {}", c.check, c.severity.as_str(), c.message);
        }
        let _ = writeln!(out, "  {} of {} checks pass\n", r.checks.len() - failing.len(), r.checks.len());
    }
    out
}
