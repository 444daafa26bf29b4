//! Golden files: every `tests/fixtures/maillog/golden/*.log` is replayed by the real
//! binary with the fixed configuration `golden/replay.toml`,
//!
//! ```text
//! mailroute_exporter replay --config.file=replay.toml --output openmetrics NAME.log
//! ```
//!
//! (run from the golden directory, so the `source` label is the bare file name), and
//! the output must equal `NAME.prom` byte for byte. With `UPDATE_GOLDEN=1` the
//! `.prom` files are rewritten instead; review the diff before committing it (each
//! golden's numbers were checked by hand against reasons.md; see the comments in
//! the test functions below).
//!
//! Every golden also passes `promtool check metrics` (after the rewrite of its
//! OpenMetrics family names into the text format that promtool 2.x parses).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{BIN, metric_value, openmetrics_to_text, promtool_check_metrics};

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/maillog/golden")
}

fn replay(dir: &Path, file: &str) -> String {
    let out = Command::new(BIN)
        .current_dir(dir)
        .args(["replay", "--config.file=replay.toml", "--output", "openmetrics", file])
        .output()
        .expect("run the binary");
    assert!(out.status.success(), "replay {file} failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// A line-by-line diff for the failure message.
fn diff(want: &str, got: &str) -> String {
    let w: Vec<&str> = want.lines().collect();
    let g: Vec<&str> = got.lines().collect();
    let mut out = String::new();
    for line in &w {
        if !g.contains(line) {
            out.push_str(&format!("- {line}\n"));
        }
    }
    for line in &g {
        if !w.contains(line) {
            out.push_str(&format!("+ {line}\n"));
        }
    }
    if out.is_empty() {
        out.push_str("(same lines, different order or line endings)\n");
    }
    out
}

#[test]
fn goldens_match() {
    let dir = golden_dir();
    let update = std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1");
    let mut logs: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".log"))
        .collect();
    logs.sort();
    assert!(logs.len() >= 6, "golden logs: {logs:?}");
    let mut failures = Vec::new();
    for log in &logs {
        let got = replay(&dir, log);
        let prom = dir.join(log.replace(".log", ".prom"));
        if update {
            std::fs::write(&prom, &got).unwrap();
            eprintln!("rewrote {}", prom.display());
            continue;
        }
        let want = std::fs::read_to_string(&prom)
            .unwrap_or_else(|e| panic!("{}: {e} (run with UPDATE_GOLDEN=1 to create it)", prom.display()));
        if want != got {
            failures.push(format!("{log} differs from {}:\n{}", prom.display(), diff(&want, &got)));
        }
        // promtool 2.x parses the text format 0.0.4 only: lint the same families in it
        if let Err(e) = promtool_check_metrics(&openmetrics_to_text(&got)) {
            failures.push(format!("promtool check metrics rejects the replay of {log}:\n{e}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn golden(name: &str) -> String {
    std::fs::read_to_string(golden_dir().join(name)).unwrap()
}

fn v(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    metric_value(text, name, labels)
}

fn rejects(text: &str, host: &str, mta: &str, stage: &str, reason: &str, class: &str) -> Option<f64> {
    v(
        text,
        "mailroute_smtp_rejects_total",
        &[("host", host), ("mta", mta), ("stage", stage), ("reason", reason), ("class", class)],
    )
}

fn lines(text: &str, source: &str, outcome: &str) -> Option<f64> {
    v(text, "mailroute_log_lines_total", &[("source", source), ("outcome", outcome)])
}

/// SPEC §1: the single Sendmail line of the running example, nmrc.org a local domain.
#[test]
fn spec_example() {
    for text in [golden("spec.prom"), replay(&golden_dir(), "spec.log")] {
        assert!(
            text.lines().any(|l| l == r#"mailroute_smtp_rejects_total{host="rigor-mortis",mta="sendmail",stage="rcpt",reason="relay_denied",class="permanent"} 1"#),
            "{text}"
        );
        assert!(
            text.lines().any(|l| l == r#"mailroute_misroutes_total{host="rigor-mortis",domain="nmrc.org"} 1"#),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"));
        assert_eq!(lines(&text, "spec.log", "reject"), Some(1.0));
    }
}

/// The hand-checked numbers behind postfix.prom (postfix.log, 28 lines).
#[test]
fn postfix_numbers() {
    let t = golden("postfix.prom");
    // postscreen DNSBL enforce reject at RCPT ("blocked using")
    assert_eq!(rejects(&t, "talon", "postfix", "rcpt", "rbl", "permanent"), Some(1.0));
    // 3D5E051240E: reject … User unknown in local recipient table
    assert_eq!(rejects(&t, "talon", "postfix", "rcpt", "unknown_user", "permanent"), Some(1.0));
    // two "Relay access denied": elsewhere.example and broken.test (a monitored domain: misroute)
    assert_eq!(rejects(&t, "talon", "postfix", "rcpt", "relay_denied", "permanent"), Some(2.0));
    assert_eq!(v(&t, "mailroute_misroutes_total", &[("host", "talon"), ("domain", "broken.test")]), Some(1.0));
    // two SASL LOGIN failures on submission/smtpd
    assert_eq!(rejects(&t, "talon", "postfix", "auth", "auth_failed", "unknown"), Some(2.0));
    // anvil connection rate limit
    assert_eq!(rejects(&t, "talon", "postfix", "connect", "rate_limit", "unknown"), Some(1.0));
    // cleanup header_checks REJECT
    assert_eq!(rejects(&t, "talon", "postfix", "data", "spam_content", "permanent"), Some(1.0));
    // two smtpd "QUEUEID: client=" lines
    assert_eq!(v(&t, "mailroute_smtp_messages_accepted_total", &[("host", "talon"), ("mta", "postfix")]), Some(2.0));
    // 8 rejects, 2 accepted, 1 dovecot line, the 17 others (reject_warning among them)
    assert_eq!(lines(&t, "postfix.log", "reject"), Some(8.0));
    assert_eq!(lines(&t, "postfix.log", "accepted"), Some(2.0));
    assert_eq!(lines(&t, "postfix.log", "foreign"), Some(1.0));
    assert_eq!(lines(&t, "postfix.log", "mta_other"), Some(17.0));
    assert_eq!(lines(&t, "postfix.log", "unparsed"), Some(0.0));
}

/// sendmail.prom (sendmail.log, 18 lines).
#[test]
fn sendmail_numbers() {
    let t = golden("sendmail.prom");
    let r = |stage, reason, class| rejects(&t, "rigor-mortis", "sendmail", stage, reason, class);
    assert_eq!(r("connect", "rbl", "permanent"), Some(1.0)); // dnsbl at check_relay
    assert_eq!(r("rcpt", "relay_denied", "permanent"), Some(2.0)); // the SPEC line and NMRC.org
    assert_eq!(r("rcpt", "unknown_user", "unknown"), Some(1.0)); // bare "... User unknown"
    assert_eq!(r("rcpt", "greylist", "temporary"), Some(1.0)); // milter-greylist
    assert_eq!(r("data", "spam_content", "permanent"), Some(1.0)); // spamass-milter
    assert_eq!(r("other", "protocol", "unknown"), Some(1.0)); // VRFY root [rejected]
    assert_eq!(r("auth", "auth_failed", "unknown"), Some(1.0)); // possible SMTP attack: command=AUTH
    assert_eq!(r("connect", "protocol", "unknown"), Some(1.0)); // pre-greeting traffic
    assert_eq!(r("mail", "sender", "permanent"), Some(1.0)); // Domain of sender address … does not exist
    assert_eq!(v(&t, "mailroute_misroutes_total", &[("host", "rigor-mortis"), ("domain", "nmrc.org")]), Some(2.0));
    assert_eq!(
        v(&t, "mailroute_smtp_messages_accepted_total", &[("host", "rigor-mortis"), ("mta", "sendmail")]),
        Some(1.0)
    );
    assert_eq!(lines(&t, "sendmail.log", "reject"), Some(10.0));
    assert_eq!(lines(&t, "sendmail.log", "accepted"), Some(1.0));
    assert_eq!(lines(&t, "sendmail.log", "mta_other"), Some(7.0));
}

/// exim.prom (exim.log, 24 lines via syslog: two duplicated rejects, a reject-log copy
/// split in four parts, a reject split at 870 bytes).
#[test]
fn exim_numbers() {
    let t = golden("exim.prom");
    let r = |stage, reason, class| rejects(&t, "exim-gw", "exim", stage, reason, class);
    assert_eq!(r("rcpt", "relay_denied", "permanent"), Some(2.0)); // each duplicated line counts once
    assert_eq!(r("data", "spam_content", "permanent"), Some(1.0)); // main + reject-log copy count once
    assert_eq!(r("helo", "helo", "permanent"), Some(1.0));
    assert_eq!(r("auth", "auth_failed", "permanent"), Some(1.0));
    assert_eq!(r("rcpt", "greylist", "temporary"), Some(1.0));
    assert_eq!(r("rcpt", "sender", "permanent"), Some(1.0)); // the "sender verify fail for" note is not counted
    assert_eq!(r("other", "protocol", "unknown"), Some(1.0)); // dropped: too many unrecognized commands
    assert_eq!(r("rcpt", "rbl", "permanent"), Some(1.0)); // [1/2] + [2/2]
    assert_eq!(v(&t, "mailroute_misroutes_total", &[("host", "exim-gw"), ("domain", "broken.test")]), Some(1.0));
    assert_eq!(v(&t, "mailroute_smtp_messages_accepted_total", &[("host", "exim-gw"), ("mta", "exim")]), Some(1.0));
    assert_eq!(lines(&t, "exim.log", "reject"), Some(9.0));
    assert_eq!(lines(&t, "exim.log", "accepted"), Some(1.0));
    assert_eq!(lines(&t, "exim.log", "mta_other"), Some(14.0));
}

/// exim-mainlog.prom: Exim's own mainlog (ms, zone, pid); default_host applies.
#[test]
fn exim_mainlog_numbers() {
    let t = golden("exim-mainlog.prom");
    let r = |stage, reason, class| rejects(&t, "mainlog-host", "exim", stage, reason, class);
    assert_eq!(r("rcpt", "relay_denied", "permanent"), Some(1.0));
    assert_eq!(r("auth", "auth_failed", "permanent"), Some(1.0));
    assert_eq!(r("mail", "size", "permanent"), Some(1.0));
    assert_eq!(r("connect", "protocol", "permanent"), Some(1.0));
    assert_eq!(r("data", "virus", "permanent"), Some(1.0));
    assert_eq!(v(&t, "mailroute_misroutes_total", &[("host", "mainlog-host"), ("domain", "nmrc.org")]), Some(1.0));
    assert_eq!(lines(&t, "exim-mainlog.log", "reject"), Some(5.0));
    assert_eq!(lines(&t, "exim-mainlog.log", "accepted"), Some(1.0));
    assert_eq!(lines(&t, "exim-mainlog.log", "mta_other"), Some(2.0));
}

/// hosts.prom: max_hosts = 4, a host name with `"` and `\`, a bare line
/// (default_host), a CRLF line, a syslog MARK (foreign) and a torn line (unparsed).
#[test]
fn hosts_numbers() {
    let t = golden("hosts.prom");
    assert_eq!(rejects(&t, "alpha", "postfix", "rcpt", "relay_denied", "permanent"), Some(2.0));
    assert_eq!(rejects(&t, "bravo", "sendmail", "rcpt", "unknown_user", "unknown"), Some(1.0));
    assert_eq!(rejects(&t, "we\"ird\\host", "exim", "rcpt", "relay_denied", "permanent"), Some(1.0));
    assert!(t.contains(r#"host="we\"ird\\host""#), "label values are escaped: {t}");
    assert_eq!(v(&t, "mailroute_smtp_messages_accepted_total", &[("host", "delta"), ("mta", "postfix")]), Some(1.0));
    // echo and foxtrot are hosts 5 and 6
    assert_eq!(rejects(&t, "other", "postfix", "rcpt", "relay_denied", "permanent"), Some(1.0));
    assert_eq!(v(&t, "mailroute_smtp_messages_accepted_total", &[("host", "other"), ("mta", "sendmail")]), Some(1.0));
    assert!(!t.contains("echo") && !t.contains("foxtrot"), "{t}");
    assert_eq!(rejects(&t, "mainlog-host", "postfix", "rcpt", "unknown_user", "permanent"), Some(1.0));
    assert_eq!(v(&t, "mailroute_misroutes_total", &[("host", "alpha"), ("domain", "nmrc.org")]), Some(2.0));
    assert_eq!(v(&t, "mailroute_misroutes_total", &[("host", "other"), ("domain", "nmrc.org")]), Some(1.0));
    assert_eq!(v(&t, "mailroute_misroutes_total", &[("host", "we\"ird\\host"), ("domain", "nmrc.org")]), Some(1.0));
    assert_eq!(lines(&t, "hosts.log", "reject"), Some(6.0));
    assert_eq!(lines(&t, "hosts.log", "accepted"), Some(2.0));
    assert_eq!(lines(&t, "hosts.log", "foreign"), Some(1.0));
    assert_eq!(lines(&t, "hosts.log", "unparsed"), Some(1.0));
}
