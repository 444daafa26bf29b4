//! The README is the reference: it must name every check of the catalogue, every
//! metric the exporter exports and every configuration key the code accepts.

use mailroute_exporter::dns::checks::CATALOGUE;
use mailroute_exporter::maillog::processor::{MailState, Processor};
use mailroute_exporter::metrics::{Metrics, SharedLabel};

fn readme() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).expect("README.md")
}

#[test]
fn readme_lists_every_check() {
    let r = readme();
    for c in CATALOGUE {
        let row = format!("| `{}` | {} |", c.id, c.severity.as_str());
        assert!(r.contains(&row), "README lacks the row {row}");
    }
}

#[test]
fn readme_lists_every_metric() {
    let r = readme();
    // the families registered by the library (mail log, build info, reload, DNS counters)
    let m = std::sync::Arc::new(Metrics::new(None));
    let state = std::sync::Arc::new(MailState::new(m.clone(), 8, "h", &["nmrc.org".to_string()]));
    let mut p = Processor::new(state, &SharedLabel::new("test"));
    for line in [
        "May 28 08:25:35 h sm-mta[1]: 04SDPXC5151721: ruleset=check_rcpt, arg1=<a@nmrc.org>, relay=x [1.2.3.4], reject=550 5.7.1 <a@nmrc.org>... Relaying denied. Proper authentication required.",
        "May 28 08:25:35 h postfix/smtpd[1]: 3D5E051240E: client=x[1.2.3.4]",
    ] {
        p.line(line.as_bytes());
    }
    p.counters().truncated.inc();
    p.counters().read_errors.inc();
    p.counters().touch();
    let text = m.encode_text();
    let mut names: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with("mailroute_"))
        .collect();
    // the DNS gauges rendered from a round's results
    names.extend([
        "mailroute_dns_round_success",
        "mailroute_dns_check_failed",
        "mailroute_dns_nameserver_up",
        "mailroute_dns_nameserver_rtt_seconds",
        "mailroute_dns_soa_serial",
        "mailroute_dns_soa_serial_behind",
        "mailroute_dns_mx_info",
        "mailroute_dns_apex_address_info",
        "mailroute_dns_spf_lookups",
        "mailroute_dns_last_check_timestamp_seconds",
        "mailroute_dns_check_duration_seconds",
        "mailroute_dns_queries_total",
    ]);
    assert!(names.len() > 20, "{names:?}");
    for n in names {
        assert!(r.contains(&format!("`{n}`")), "README does not document {n}");
    }
}

#[test]
fn readme_names_every_config_key() {
    let r = readme();
    for key in [
        "listen_address",
        "telemetry_path",
        "cert_file",
        "key_file",
        "users",
        "paths",
        "start",
        "default_host",
        "max_hosts",
        "local_domains",
        "journal",
        "syslog_listen",
        "interval",
        "timeout",
        "concurrency",
        "resolvers",
        "port",
        "smtp_probe_port",
        "max_qps_per_server",
        "probe_allow",
        "probe_cache_age",
        "name",
        "dkim_selectors",
        "expected_mx",
        "smtp_probe",
    ] {
        assert!(r.contains(&format!("\n{key} = ")) || r.contains(&format!("\n{key} =")), "README config lacks {key}");
    }
}
