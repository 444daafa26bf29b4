//! End to end: the real binary tails a temporary log file (or its standard input)
//! and serves what it counted over HTTP.
//!
//! Lines are appended in real MTA formats and `/metrics` is polled until they show
//! (the design target is 250 ms; the tests allow 2 s so they do not depend on the
//! machine's load). No DNS domain is configured, so the exporter is ready as soon
//! as its sources are polled; nmrc.org is a local domain for misroutes.

mod common;

use std::io::Read;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{Exporter, append, metric_sum, metric_value, openmetrics_to_text, promtool_check_metrics};

const WAIT: Duration = Duration::from_secs(2);

const SPEC_LINE: &str = "May 28 08:25:35 rigor-mortis sm-mta[151721]: 04SDPXC5151721: ruleset=check_rcpt, arg1=<xxxxxxxx@nmrc.org>, relay=mail-mw2nam10on2117.outbound.protection.outlook.com [40.107.94.117], reject=550 5.7.1 <xxxxxxxx@nmrc.org>... Relaying denied. Proper authentication required.\n";

/// A Postfix RCPT reject from `host` for `rcpt` (smtpd_check.c log_whatsup shape).
fn postfix_reject(host: &str, rcpt: &str, text: &str) -> String {
    format!(
        "May 28 08:26:00 {host} postfix/smtpd[4211]: NOQUEUE: reject: RCPT from mail.sender.example[192.0.2.10]: {text}; from=<news@sender.example> to=<{rcpt}> proto=ESMTP helo=<mail.sender.example>\n"
    )
}

fn relay_denied(host: &str, rcpt: &str) -> String {
    postfix_reject(host, rcpt, &format!("554 5.7.1 <{rcpt}>: Relay access denied"))
}

struct Setup {
    _dir: tempfile::TempDir,
    log: PathBuf,
    cfg: PathBuf,
}

/// A temp dir with an (initially `initial`) log file and a config file.
fn setup(initial: &str, maillog_extra: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("mail.log");
    std::fs::write(&log, initial).unwrap();
    let cfg = dir.path().join("mailroute.toml");
    std::fs::write(
        &cfg,
        format!("[maillog]\nlocal_domains = [\"nmrc.org\"]\ndefault_host = \"e2e-default\"\n{maillog_extra}"),
    )
    .unwrap();
    Setup { _dir: dir, log, cfg }
}

fn start(s: &Setup) -> Exporter {
    Exporter::start(&[
        "serve",
        &format!("--config.file={}", s.cfg.display()),
        &format!("--maillog.path={}", s.log.display()),
        "--maillog.start=beginning",
    ])
}

fn src(s: &Setup) -> String {
    s.log.display().to_string()
}

fn rejects(text: &str, host: &str, mta: &str, stage: &str, reason: &str, class: &str) -> Option<f64> {
    metric_value(
        text,
        "mailroute_smtp_rejects_total",
        &[("host", host), ("mta", mta), ("stage", stage), ("reason", reason), ("class", class)],
    )
}

fn lines(text: &str, source: &str, outcome: &str) -> Option<f64> {
    metric_value(text, "mailroute_log_lines_total", &[("source", source), ("outcome", outcome)])
}

/// Waits until `/-/ready` answers 200.
fn wait_ready(ex: &Exporter) {
    let deadline = Instant::now() + WAIT;
    loop {
        let r = ex.get("/-/ready");
        if r.status == 200 {
            return;
        }
        assert_eq!(r.status, 503, "/-/ready before readiness: {}", r.text());
        assert!(Instant::now() < deadline, "not ready within {WAIT:?}; stderr:\n{}", ex.stderr());
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn appended_lines_are_counted() {
    let s = setup(SPEC_LINE, "");
    let ex = start(&s);
    let source = src(&s);
    // the line present at start (start = beginning): SPEC §1's misroute
    let text = ex.wait_for(
        |t| {
            metric_value(t, "mailroute_misroutes_total", &[("host", "rigor-mortis"), ("domain", "nmrc.org")])
                == Some(1.0)
        },
        WAIT,
    );
    assert_eq!(rejects(&text, "rigor-mortis", "sendmail", "rcpt", "relay_denied", "permanent"), Some(1.0));

    let exim = "May 28 08:26:01 exim-gw exim[30101]: H=mail.sender.example [192.0.2.10] F=<news@sender.example> rejected RCPT <someone@victim.example>: relay not permitted\n";
    let mut batch = String::new();
    batch.push_str(&postfix_reject(
        "talon",
        "nobody@nmrc.org",
        "550 5.1.1 <nobody@nmrc.org>: Recipient address rejected: User unknown in local recipient table",
    ));
    batch.push_str(&relay_denied("talon", "alice@nmrc.org"));
    batch.push_str(exim);
    batch.push_str(exim); // syslog duplicate: counts once
    batch.push_str("May 28 08:26:02 talon postfix/smtpd[4211]: 3D5E051240E: client=mail.sender.example[192.0.2.10]\n");
    batch.push_str("May 28 08:26:03 talon dovecot[1200]: imap-login: Login: user=<alice@nmrc.org>, method=PLAIN, rip=192.0.2.44, lip=192.0.2.1, mpid=3456, TLS\n");
    batch.push_str("May 28 08:26:04 talon postfix/qmgr[875]: 3D5E051240E: removed\n");
    batch.push_str("ender.example[192.0.2.10]\n");
    let appended = Instant::now();
    append(&s.log, batch.as_bytes());
    let text = ex.wait_for(|t| lines(t, &source, "unparsed") == Some(1.0), WAIT);
    eprintln!("appended lines showed after {:?}", appended.elapsed());

    assert_eq!(rejects(&text, "rigor-mortis", "sendmail", "rcpt", "relay_denied", "permanent"), Some(1.0));
    assert_eq!(rejects(&text, "talon", "postfix", "rcpt", "unknown_user", "permanent"), Some(1.0));
    assert_eq!(rejects(&text, "talon", "postfix", "rcpt", "relay_denied", "permanent"), Some(1.0));
    assert_eq!(rejects(&text, "exim-gw", "exim", "rcpt", "relay_denied", "permanent"), Some(1.0));
    assert_eq!(metric_sum(&text, "mailroute_smtp_rejects_total", &[]), 4.0);
    assert_eq!(
        metric_value(&text, "mailroute_misroutes_total", &[("host", "talon"), ("domain", "nmrc.org")]),
        Some(1.0)
    );
    assert_eq!(
        metric_value(&text, "mailroute_misroutes_total", &[("host", "rigor-mortis"), ("domain", "nmrc.org")]),
        Some(1.0)
    );
    assert_eq!(metric_sum(&text, "mailroute_misroutes_total", &[]), 2.0, "victim.example is not ours");
    assert_eq!(
        metric_value(&text, "mailroute_smtp_messages_accepted_total", &[("host", "talon"), ("mta", "postfix")]),
        Some(1.0)
    );
    assert_eq!(lines(&text, &source, "reject"), Some(4.0));
    assert_eq!(lines(&text, &source, "mta_other"), Some(2.0)); // the duplicate and qmgr
    assert_eq!(lines(&text, &source, "accepted"), Some(1.0));
    assert_eq!(lines(&text, &source, "foreign"), Some(1.0));
    assert_eq!(lines(&text, &source, "unparsed"), Some(1.0));
    assert_eq!(metric_value(&text, "mailroute_log_read_errors_total", &[("source", &source)]), Some(0.0));
    let last = metric_value(&text, "mailroute_log_last_line_timestamp_seconds", &[("source", &source)]).unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    assert!((now - last).abs() < 60.0, "last line read at {last}, now {now}");
    promtool_check_metrics(&text).unwrap_or_else(|e| panic!("promtool check metrics:\n{e}\n{text}"));
}

#[test]
fn http_endpoints() {
    let s = setup(SPEC_LINE, "");
    let ex = start(&s);
    assert_eq!(ex.get("/-/healthy").status, 200);
    wait_ready(&ex);
    let text = ex.wait_for(|t| metric_sum(t, "mailroute_misroutes_total", &[]) == 1.0, WAIT);

    // text format by default
    let plain = ex.get("/metrics");
    assert_eq!(plain.status, 200);
    assert!(plain.header("content-type").unwrap().starts_with("text/plain; version=0.0.4"), "{:?}", plain.headers);
    assert!(!plain.text().contains("# EOF"));

    // OpenMetrics when asked for
    let om = ex.get_with("/metrics", &[("Accept", "application/openmetrics-text;version=1.0.0")]);
    assert_eq!(om.status, 200);
    let ctype = om.header("content-type").unwrap();
    assert!(ctype.starts_with("application/openmetrics-text; version=1.0.0"), "{ctype}");
    let om_text = om.text();
    assert!(om_text.ends_with("# EOF\n"), "{om_text}");
    assert!(om_text.contains("# TYPE mailroute_smtp_rejects counter"), "{om_text}");
    assert_eq!(
        metric_value(&om_text, "mailroute_misroutes_total", &[("host", "rigor-mortis"), ("domain", "nmrc.org")]),
        Some(1.0)
    );
    promtool_check_metrics(&openmetrics_to_text(&om_text)).unwrap();
    // a Prometheus 2.x Accept header, OpenMetrics preferred
    let prom = ex.get_with(
        "/metrics",
        &[("Accept", "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1")],
    );
    assert!(prom.header("content-type").unwrap().starts_with("application/openmetrics-text"));

    // gzip when accepted; the same counters once decompressed
    let gz = ex.get_with("/metrics", &[("Accept-Encoding", "gzip")]);
    assert_eq!(gz.status, 200);
    assert_eq!(gz.header("content-encoding"), Some("gzip"), "{:?}", gz.headers);
    let mut unzipped = String::new();
    flate2::read::GzDecoder::new(&gz.body[..]).read_to_string(&mut unzipped).expect("a gzip body");
    let stable = |t: &str| -> Vec<String> {
        t.lines()
            .filter(|l| l.starts_with("mailroute_smtp_") || l.starts_with("mailroute_misroutes"))
            .map(String::from)
            .collect()
    };
    assert!(!stable(&text).is_empty());
    assert_eq!(stable(&unzipped), stable(&text));
    let plain_again = ex.get("/metrics");
    assert_eq!(plain_again.header("content-encoding"), None);

    // the status document and page
    let status = ex.get("/api/v1/status");
    assert_eq!(status.status, 200);
    assert!(status.header("content-type").unwrap().starts_with("application/json"));
    let doc: serde_json::Value = serde_json::from_slice(&status.body).expect("JSON");
    assert_eq!(doc["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(doc["ready"], true);
    assert_eq!(doc["mail"]["rejects_total"], 1);
    assert_eq!(doc["mail"]["misroutes_total"], 1);
    let sources = doc["sources"].as_array().unwrap();
    assert_eq!(sources.len(), 1);
    assert_eq!(sources[0]["name"], src(&s).as_str());
    assert_eq!(sources[0]["state"], "open");
    assert_eq!(sources[0]["lines"]["reject"], 1);
    let recent = doc["mail"]["recent_misroutes"].as_array().unwrap();
    assert_eq!(recent.len(), 1);
    assert_eq!(recent[0]["domain"], "nmrc.org");
    assert_eq!(recent[0]["host"], "rigor-mortis");
    assert_eq!(recent[0]["logged_at"], "May 28 08:25:35");

    let page = ex.get("/");
    assert_eq!(page.status, 200);
    assert!(page.header("content-type").unwrap().starts_with("text/html"));
    let html = page.text();
    assert!(html.contains("nmrc.org") && html.contains("rigor-mortis"), "{html}");
    assert!(html.contains("mail-mw2nam10on2117.outbound.protection.outlook.com"), "the misroute's client: {html}");

    assert_eq!(ex.get("/no/such/page").status, 404);
    assert_eq!(ex.post("/metrics").status, 405);
}

#[test]
fn sigterm_stops_with_status_zero() {
    let s = setup(SPEC_LINE, "");
    let mut ex = start(&s);
    wait_ready(&ex);
    let t0 = Instant::now();
    let status = ex.stop();
    assert!(t0.elapsed() < Duration::from_secs(5), "took {:?} to stop", t0.elapsed());
    assert!(status.success(), "exit status {status}; stderr:\n{}", ex.stderr());
}

#[test]
fn long_lines_are_cut_and_bad_bytes_do_not_stop_the_reader() {
    let s = setup("", "");
    let ex = start(&s);
    let source = src(&s);
    wait_ready(&ex);
    // > 64 KiB: the end of the helo name is cut; the reject in front of it still counts
    let long = format!(
        "May 28 08:27:00 talon postfix/smtpd[4211]: NOQUEUE: reject: RCPT from unknown[198.51.100.7]: 550 5.7.1 <a@nmrc.org>: Recipient address rejected: Access denied; from=<x@spam.example> to=<a@nmrc.org> proto=ESMTP helo=<{}>\n",
        "h".repeat(70 * 1024)
    );
    append(&s.log, long.as_bytes());
    // invalid UTF-8 inside a reject (a client's HELO is any bytes) and a line of garbage bytes
    let mut bad = b"May 28 08:27:01 talon postfix/smtpd[4211]: NOQUEUE: reject: RCPT from unknown[198.51.100.8]: 554 5.7.1 <b@nmrc.org>: Relay access denied; from=<x@spam.example> to=<b@nmrc.org> proto=ESMTP helo=<\xff\xfe\xc3\x28>\n".to_vec();
    bad.extend_from_slice(b"\xff\xfe\x00\x80\n");
    append(&s.log, &bad);
    // a later line still counts
    append(&s.log, relay_denied("talon", "c@nmrc.org").as_bytes());
    let text = ex.wait_for(
        |t| metric_value(t, "mailroute_misroutes_total", &[("host", "talon"), ("domain", "nmrc.org")]) == Some(2.0),
        WAIT,
    );
    assert_eq!(metric_value(&text, "mailroute_log_lines_truncated_total", &[("source", &source)]), Some(1.0));
    assert_eq!(rejects(&text, "talon", "postfix", "rcpt", "access_db", "permanent"), Some(1.0));
    assert_eq!(rejects(&text, "talon", "postfix", "rcpt", "relay_denied", "permanent"), Some(2.0));
    assert_eq!(lines(&text, &source, "reject"), Some(3.0));
    assert_eq!(lines(&text, &source, "unparsed"), Some(1.0));
    assert_eq!(metric_value(&text, "mailroute_log_read_errors_total", &[("source", &source)]), Some(0.0));
}

#[test]
fn host_labels_are_escaped_and_capped() {
    let s = setup("", "max_hosts = 3\n");
    let ex = start(&s);
    wait_ready(&ex);
    let mut batch = String::new();
    for host in ["alpha", "we\"ird\\host", "charlie", "delta", "echo"] {
        batch.push_str(&relay_denied(host, "x@nmrc.org"));
    }
    // no syslog host (a container's bare line): default_host, outside the cap
    batch.push_str("postfix/smtpd[9]: NOQUEUE: reject: RCPT from x[192.0.2.1]: 554 5.7.1 <y@nmrc.org>: Relay access denied; from=<s@x.example> to=<y@nmrc.org> proto=ESMTP helo=<x>\n");
    append(&s.log, batch.as_bytes());
    let text = ex.wait_for(|t| metric_sum(t, "mailroute_smtp_rejects_total", &[]) == 6.0, WAIT);
    let r = |h| rejects(&text, h, "postfix", "rcpt", "relay_denied", "permanent");
    assert_eq!(r("alpha"), Some(1.0));
    assert_eq!(r("we\"ird\\host"), Some(1.0));
    assert_eq!(r("charlie"), Some(1.0));
    assert_eq!(r("other"), Some(2.0), "delta and echo are beyond max_hosts = 3:\n{text}");
    assert_eq!(r("e2e-default"), Some(1.0));
    assert!(text.contains(r#"host="we\"ird\\host""#), "escaped in the text format:\n{text}");
    assert!(!text.contains("delta") && !text.contains("echo"));
    assert_eq!(
        metric_value(&text, "mailroute_misroutes_total", &[("host", "other"), ("domain", "nmrc.org")]),
        Some(2.0)
    );
    let om = ex.get_with("/metrics", &[("Accept", "application/openmetrics-text;version=1.0.0")]).text();
    assert!(om.contains(r#"host="we\"ird\\host""#), "escaped in OpenMetrics:\n{om}");
    promtool_check_metrics(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
}

#[test]
fn standard_input_is_a_source() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(&cfg, "[maillog]\nlocal_domains = [\"nmrc.org\"]\n").unwrap();
    let mut ex =
        Exporter::start_with_stdin(&["serve", &format!("--config.file={}", cfg.display()), "--maillog.path=-"]);
    wait_ready(&ex);
    ex.write_stdin(SPEC_LINE.as_bytes());
    ex.write_stdin(relay_denied("talon", "z@nmrc.org").as_bytes());
    let text = ex.wait_for(|t| metric_sum(t, "mailroute_misroutes_total", &[]) == 2.0, WAIT);
    assert_eq!(lines(&text, "stdin", "reject"), Some(2.0));
    assert_eq!(rejects(&text, "rigor-mortis", "sendmail", "rcpt", "relay_denied", "permanent"), Some(1.0));
    // a last line without its newline counts when the input ends
    ex.write_stdin(relay_denied("talon", "last@nmrc.org").trim_end().as_bytes());
    ex.close_stdin();
    let text = ex.wait_for(|t| lines(t, "stdin", "reject") == Some(3.0), WAIT);
    assert_eq!(
        metric_value(&text, "mailroute_misroutes_total", &[("host", "talon"), ("domain", "nmrc.org")]),
        Some(2.0)
    );
    assert_eq!(ex.get("/-/healthy").status, 200, "still serving after the input ended");
    let status = ex.stop();
    assert!(status.success(), "{status}");
}

/// SIGTERM while standard input is still open: the stdin source ends with the one
/// shutdown (its pending read does not hold the exit), its unterminated last line
/// counts, and the state file saved after it keeps that line.
#[test]
fn sigterm_with_standard_input_open_stops_and_keeps_the_last_line() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    let state = dir.path().join("state.json");
    std::fs::write(&cfg, format!("[maillog]\nlocal_domains = [\"nmrc.org\"]\nstate_file = \"{}\"\n", state.display()))
        .unwrap();
    let args = ["serve", &format!("--config.file={}", cfg.display()), "--maillog.path=-"];
    let mut ex = Exporter::start_with_stdin(&args);
    wait_ready(&ex);
    ex.write_stdin(relay_denied("talon", "a@nmrc.org").as_bytes());
    ex.wait_for(|t| lines(t, "stdin", "reject") == Some(1.0), WAIT);
    ex.write_stdin(relay_denied("talon", "b@nmrc.org").trim_end().as_bytes());
    // let the source read the unterminated line before the signal
    std::thread::sleep(Duration::from_millis(300));
    let t0 = Instant::now();
    let status = ex.stop();
    assert!(t0.elapsed() < Duration::from_secs(5), "took {:?} to stop", t0.elapsed());
    assert!(status.success(), "{status}; stderr:\n{}", ex.stderr());
    let mut again = Exporter::start_with_stdin(&args);
    again.close_stdin();
    let text = again.scrape();
    assert_eq!(lines(&text, "stdin", "reject"), Some(2.0), "stderr:\n{}", again.stderr());
    assert_eq!(
        metric_value(&text, "mailroute_misroutes_total", &[("host", "talon"), ("domain", "nmrc.org")]),
        Some(2.0)
    );
}

#[test]
fn metric_value_reads_exact_label_sets() {
    let text = "# TYPE a counter\na_total{x=\"1\",y=\"q\\\"u\\\\o\"} 3\nb 4.5\nc{} 1e3\n";
    assert_eq!(metric_value(text, "a_total", &[("y", "q\"u\\o"), ("x", "1")]), Some(3.0));
    assert_eq!(metric_value(text, "a_total", &[("x", "1")]), None, "a subset of the labels is not the label set");
    assert_eq!(metric_value(text, "b", &[]), Some(4.5));
    assert_eq!(metric_value(text, "c", &[]), Some(1000.0));
    assert_eq!(metric_value(text, "d", &[]), None);
}
