//! The DNS half never goes quiet (issue 10): when the resolvers see nothing, a round
//! still ends in a verdict. Against the lab's real servers: resolvers that never
//! answer (the lab's BIND that drops every query), one that drops the first packets
//! (a small UDP forwarder in front of the lab's Unbound), through `check` and
//! through a running `serve`.

mod common;

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{Exporter, dns_lab, lab_expectations, metric_value, run};

/// The lab's BIND that drops every query.
const SILENT: &str = "127.0.53.14";

/// A configuration for `names`; `resolvers` is a comma-separated list.
fn write_config(dir: &Path, resolvers: &str, interval: &str, names: &[&str]) -> PathBuf {
    let (_, port) = dns_lab();
    let list: Vec<String> = resolvers.split(',').map(|r| format!("\"{r}\"")).collect();
    let list = list.join(", ");
    let mut cfg = format!("[dns]\nresolvers = [{list}]\nport = {port}\ntimeout = \"1s\"\ninterval = \"{interval}\"\n");
    for n in names {
        cfg.push_str(&format!("\n[[dns.domain]]\nname = \"{n}\"\n"));
    }
    let path = dir.join(format!("quiet-{}.toml", names.join("-")));
    std::fs::write(&path, cfg).expect("write config");
    path
}

fn failing(doc: &serde_json::Value, domain: &str) -> Vec<(String, String)> {
    doc["domains"]
        .as_array()
        .expect("domains")
        .iter()
        .filter(|d| d["domain"] == domain)
        .flat_map(|d| d["checks"].as_array().cloned().unwrap_or_default())
        .filter(|c| c["failed"] == true)
        .map(|c| (c["check"].as_str().unwrap_or("").to_string(), c["message"].as_str().unwrap_or("").to_string()))
        .collect()
}

#[test]
fn silent_resolvers_fail_the_round_within_its_deadline() {
    let (_, port) = dns_lab();
    let dir = tempfile::tempdir().expect("tempdir");
    let silent = format!("{SILENT}:{port}");
    // dns.timeout 1s: the round's deadline is 20 s
    let cfg = write_config(dir.path(), &silent, "1h", &["fixed.test"]);
    let started = Instant::now();
    let (status, stdout, stderr) = run(&["check", &format!("--config.file={}", cfg.display()), "--output=json"]);
    let took = started.elapsed();
    assert_eq!(status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(took < Duration::from_secs(20), "check took {took:?}, beyond the round's deadline");
    let doc: serde_json::Value = serde_json::from_str(&stdout).expect("JSON output");
    let fails = failing(&doc, "fixed.test");
    assert_eq!(fails.iter().map(|(c, _)| c.as_str()).collect::<Vec<_>>(), vec!["dns_round_failed"], "{fails:?}");
    let msg = &fails[0].1;
    assert!(
        msg.contains(&format!("fixed.test SOA: resolvers {silent}: no answer"))
            && msg.contains("neither can the parent's servers asked directly"),
        "{msg}"
    );

    // the text output says it in words
    let (status, stdout, _) = run(&["check", &format!("--config.file={}", cfg.display())]);
    assert_eq!(status.code(), Some(1));
    assert!(
        stdout.contains("FAIL dns_round_failed (critical): the resolvers cannot find the zone of fixed.test"),
        "{stdout}"
    );

    // a round the deadline cuts: dns.interval 3s makes the deadline 3 s, shorter than
    // one recursive lookup's budget
    let cut = write_config(dir.path(), &silent, "3s", &["fixed.test", "drift.test"]);
    let started = Instant::now();
    let (status, stdout, _) = run(&["check", &format!("--config.file={}", cut.display()), "--output=json"]);
    assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
    assert_eq!(status.code(), Some(1), "{stdout}");
    let doc: serde_json::Value = serde_json::from_str(&stdout).expect("JSON output");
    for d in ["fixed.test", "drift.test"] {
        let fails = failing(&doc, d);
        assert_eq!(fails.len(), 1, "{d}: {fails:?}");
        assert_eq!(fails[0].0, "dns_round_failed");
        assert!(fails[0].1.contains("did not finish within 3s"), "{fails:?}");
    }

    // serve: round_success 0, the check fails, the status page says why
    let log = dir.path().join("mail.log");
    std::fs::write(&log, b"").expect("log");
    let ex = Exporter::start(&[
        "serve",
        &format!("--config.file={}", cfg.display()),
        &format!("--maillog.path={}", log.display()),
        "--web.listen-address=127.0.0.1:0",
    ]);
    let deadline = Instant::now() + Duration::from_secs(40);
    while ex.get("/-/ready").status != 200 {
        assert!(Instant::now() < deadline, "not ready after 40 s\n{}", ex.stderr());
        std::thread::sleep(Duration::from_millis(200));
    }
    let text = ex.scrape();
    assert_eq!(metric_value(&text, "mailroute_dns_round_success", &[("domain", "fixed.test")]), Some(0.0), "{text}");
    assert_eq!(
        metric_value(
            &text,
            "mailroute_dns_check_failed",
            &[("domain", "fixed.test"), ("check", "dns_round_failed"), ("severity", "critical")]
        ),
        Some(1.0)
    );
    let status: serde_json::Value = serde_json::from_str(&ex.get("/api/v1/status").text()).expect("status JSON");
    let d = &status["dns"]["domains"][0];
    assert_eq!(d["round_success"], false, "{d}");
    assert!(d["round_failure"].as_str().is_some_and(|m| m.contains("cannot find the zone of fixed.test")), "{d}");
    let html = ex.get("/").text();
    assert!(html.contains("The last round could not judge this domain: the resolvers cannot find the zone"), "{html}");
}

/// A UDP forwarder in front of the lab's Unbound that drops the first `drop`
/// queries it receives. Returns its address and the count of queries received.
fn lossy_forwarder(upstream: std::net::SocketAddr, drop: usize) -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    // an address of the range this work may use, any free port
    let sock = UdpSocket::bind("127.0.53.30:0").expect("bind forwarder");
    let addr = sock.local_addr().expect("addr");
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        loop {
            let Ok((len, client)) = sock.recv_from(&mut buf) else { return };
            if counter.fetch_add(1, Ordering::SeqCst) < drop {
                continue;
            }
            let query = buf[..len].to_vec();
            let Ok(reply_to) = sock.try_clone() else { return };
            std::thread::spawn(move || {
                let Ok(up) = UdpSocket::bind("127.0.53.30:0") else { return };
                let _ = up.set_read_timeout(Some(Duration::from_secs(10)));
                if up.send_to(&query, upstream).is_err() {
                    return;
                }
                let mut answer = [0u8; 4096];
                if let Ok((n, _)) = up.recv_from(&mut answer) {
                    let _ = reply_to.send_to(&answer[..n], client);
                }
            });
        }
    });
    (addr, seen)
}

#[test]
fn a_resolver_that_drops_the_first_packets_changes_no_verdict() {
    let (resolver, _) = dns_lab();
    let upstream: std::net::SocketAddr = resolver.parse().expect("LAB_RESOLVER");
    let (fwd, seen) = lossy_forwarder(upstream, 4);
    let dir = tempfile::tempdir().expect("tempdir");
    let names = ["fixed.test", "drift.test", "lame.test"];
    let cfg = write_config(dir.path(), &fwd.to_string(), "1h", &names);
    let (status, stdout, stderr) = run(&["check", &format!("--config.file={}", cfg.display()), "--output=json"]);
    assert_eq!(status.code(), Some(1), "drift.test and lame.test fail warnings\n{stderr}");
    assert!(seen.load(Ordering::SeqCst) > 4, "the forwarder saw {} queries", seen.load(Ordering::SeqCst));
    let doc: serde_json::Value = serde_json::from_str(&stdout).expect("JSON output");
    let exp = lab_expectations();
    for n in names {
        let mut got: Vec<String> = failing(&doc, n).into_iter().map(|(c, _)| c).collect();
        got.sort();
        let mut want = exp[n].fail.clone();
        want.sort();
        assert_eq!(got, want, "{n}");
    }
}

#[test]
fn a_silent_first_resolver_fails_over_to_the_next() {
    let (resolver, port) = dns_lab();
    let dir = tempfile::tempdir().expect("tempdir");
    let names = ["fixed.test", "drift.test"];
    let cfg = write_config(dir.path(), &format!("{SILENT}:{port},{resolver}"), "1h", &names);
    let started = Instant::now();
    let (status, stdout, stderr) = run(&["check", &format!("--config.file={}", cfg.display()), "--output=json"]);
    assert!(started.elapsed() < Duration::from_secs(20), "{:?}", started.elapsed());
    assert_eq!(status.code(), Some(1), "drift.test fails warnings\n{stderr}");
    let doc: serde_json::Value = serde_json::from_str(&stdout).expect("JSON output");
    let exp = lab_expectations();
    for n in names {
        let mut got: Vec<String> = failing(&doc, n).into_iter().map(|(c, _)| c).collect();
        got.sort();
        let mut want = exp[n].fail.clone();
        want.sort();
        assert_eq!(got, want, "{n}");
    }
}
