//! The mail policy checks (SPF, DMARC, DKIM, MTA-STS, TLS-RPT, reverse DNS, the
//! apex SMTP probe) against real servers: the DNS lab (lab/dns/: NSD, Knot, BIND,
//! Unbound) serves one zone per policy defect, and Debian's Postfix, started here
//! in a private configuration directory, is the MTA on the apex of incident.test.
//!
//! Each policy zone of lab/dns/expected.toml must fail exactly its policy checks,
//! and fixed.test must pass every one, through `check --output json` and through
//! `/metrics` of a running `serve`.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Exporter, dns_lab, lab_expectations, metric_samples, metric_value, run};

/// The policy checks, in catalogue order.
const POLICY: [&str; 14] = [
    "apex_smtp_listening",
    "mx_reverse_dns_mismatch",
    "spf_missing",
    "spf_multiple",
    "spf_invalid",
    "spf_lookup_limit",
    "spf_void_lookup_limit",
    "dmarc_missing",
    "dmarc_multiple",
    "dmarc_invalid",
    "dmarc_policy_none",
    "dkim_key_missing",
    "mta_sts_invalid",
    "tlsrpt_invalid",
];

/// The good names: every policy check (but the opt-in probe) is evaluated and passes.
const GOOD: [&str; 2] = ["fixed.test", "shop.fixed.test"];

/// The policy zones (a policy check in `fail`) and the good names, with what they
/// must fail (policy checks only) and their DKIM selectors.
fn policy_zones() -> BTreeMap<String, (BTreeSet<String>, Vec<String>)> {
    lab_expectations()
        .into_iter()
        .filter(|(name, e)| GOOD.contains(&name.as_str()) || e.fail.iter().any(|c| POLICY.contains(&c.as_str())))
        .map(|(name, e)| {
            let fail = e.fail.into_iter().filter(|c| POLICY.contains(&c.as_str())).collect();
            (name, (fail, e.dkim_selectors))
        })
        .collect()
}

/// `[dns]` for the lab, then one `[[dns.domain]]` per name: (name, selectors,
/// smtp_probe).
fn write_config(dir: &Path, file: &str, extra_dns: &str, domains: &[(String, Vec<String>, bool)]) -> PathBuf {
    let (resolver, port) = dns_lab();
    let mut cfg =
        format!("[dns]\nresolvers = [\"{resolver}\"]\nport = {port}\ntimeout = \"1s\"\ninterval = \"1h\"\n{extra_dns}");
    for (name, selectors, probe) in domains {
        let sel: Vec<String> = selectors.iter().map(|s| format!("\"{s}\"")).collect();
        cfg.push_str(&format!(
            "\n[[dns.domain]]\nname = \"{name}\"\ndkim_selectors = [{}]\nsmtp_probe = {probe}\n",
            sel.join(", ")
        ));
    }
    let path = dir.join(file);
    std::fs::write(&path, cfg).expect("write the configuration");
    path
}

fn policy_config(dir: &Path) -> PathBuf {
    let domains: Vec<(String, Vec<String>, bool)> =
        policy_zones().into_iter().map(|(n, (_, sel))| (n, sel, false)).collect();
    write_config(dir, "policy.toml", "", &domains)
}

/// `check --output json`: domain → check → (failed, message).
fn check_json(cfg: &Path, names: &[&str]) -> BTreeMap<String, BTreeMap<String, (bool, String)>> {
    let mut args = vec!["check".to_string(), format!("--config.file={}", cfg.display()), "--output=json".to_string()];
    args.extend(names.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (status, stdout, stderr) = run(&args);
    assert!(matches!(status.code(), Some(0 | 1)), "check exited {status}: {stderr}");
    let doc: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    let mut out = BTreeMap::new();
    for d in doc["domains"].as_array().expect("domains") {
        let name = d["domain"].as_str().expect("domain").to_string();
        assert!(d["error"].is_null(), "{name}: {}", d["error"]);
        let checks = d["checks"]
            .as_array()
            .expect("checks")
            .iter()
            .map(|c| {
                let id = c["check"].as_str().expect("check id").to_string();
                let msg = c["message"].as_str().expect("message").to_string();
                assert!(!msg.is_empty(), "{name} {id}: empty message");
                (id, (c["failed"] == true, msg))
            })
            .collect();
        out.insert(name, checks);
    }
    out
}

fn failing_policy(checks: &BTreeMap<String, (bool, String)>) -> BTreeSet<String> {
    checks.iter().filter(|(id, (f, _))| *f && POLICY.contains(&id.as_str())).map(|(id, _)| id.clone()).collect()
}

#[test]
fn each_policy_zone_fails_its_checks_in_check_json() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = policy_config(dir.path());
    let zones = policy_zones();
    assert!(zones.len() >= 15, "{:?}", zones.keys());
    let got = check_json(&cfg, &[]);
    let mut problems = Vec::new();
    for (name, (want, _)) in &zones {
        let checks = &got[name];
        let failing = failing_policy(checks);
        if &failing != want {
            let detail: Vec<String> = checks
                .iter()
                .filter(|(id, _)| POLICY.contains(&id.as_str()))
                .map(|(id, (f, m))| format!("  {id} failed={f}: {m}"))
                .collect();
            problems.push(format!("{name}: failing {failing:?}, expected {want:?}\n{}", detail.join("\n")));
        }
        // the check a zone is built for is evaluated there
        for c in want {
            assert!(checks.contains_key(c), "{name}: {c} not evaluated");
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // the good names: every policy check but the opt-in probe evaluated, and passing
    for good in GOOD {
        for c in POLICY.iter().filter(|c| **c != "apex_smtp_listening") {
            if good == "shop.fixed.test" && *c == "dkim_key_missing" {
                continue; // no selectors configured for it
            }
            let (failed, msg) = got[good].get(*c).unwrap_or_else(|| panic!("{good}: {c} not evaluated"));
            assert!(!failed, "{good}: {c}: {msg}");
        }
    }

    // the messages name the records, terms, servers and addresses involved
    let msg = |d: &str, c: &str| got[d][c].1.clone();
    assert_eq!(
        msg("spflimit.test", "spf_lookup_limit"),
        "the SPF policy of spflimit.test needs 11 DNS-querying terms (limit 10); the 11th is exists:e.spflimit.test (in the record of b.spflimit.test); receivers return permerror (RFC 7208 §4.6.4)"
    );
    assert!(
        msg("spfloop.test", "spf_lookup_limit").starts_with(
            "include loop spfloop.test → loop1.spfloop.test → loop2.spfloop.test → loop1.spfloop.test: an evaluator goes round it until it exceeds the limit of 10 DNS-querying terms"
        ),
        "{}",
        msg("spfloop.test", "spf_lookup_limit")
    );
    assert_eq!(
        msg("spfvoid.test", "spf_void_lookup_limit"),
        "3 void lookups (limit 2): a:void1.spfvoid.test (NXDOMAIN), a:void2.spfvoid.test (NXDOMAIN), a:void3.spfvoid.test (NXDOMAIN); receivers return permerror (RFC 7208 §4.6.4)"
    );
    assert_eq!(msg("spfvoid.test", "spf_lookup_limit"), "4 DNS-querying term(s) (limit 10)");
    assert!(msg("spfbad.test", "spf_invalid").contains("term 2 \"foo:bar\": unknown mechanism \"foo\""));
    assert!(
        msg("spfbad.test", "spf_invalid").contains("ns1.spfbad.test (127.0.53.11) and ns2.spfbad.test (127.0.53.12)")
    );
    assert!(
        msg("spf2.test", "spf_multiple")
            .contains("serve 2 SPF records at spf2.test: \"v=spf1 ip4:127.0.54.111 -all\", \"v=spf1 mx -all\"")
    );
    assert!(msg("nospf.test", "spf_missing").starts_with("nospf.test publishes no SPF record"));
    assert!(
        msg("nodmarc.test", "dmarc_missing")
            .starts_with("no DMARC record at _dmarc.nodmarc.test on ns1.nodmarc.test (127.0.53.11)")
    );
    assert!(msg("dmarc2.test", "dmarc_multiple").contains("serve 2 DMARC records at _dmarc.dmarc2.test"));
    assert!(
        msg("dmarcbad.test", "dmarc_invalid")
            .ends_with("p=maybe is not a policy (none, quarantine or reject); pct=200 is above 100")
    );
    assert!(
        msg("dmarcnone.test", "dmarc_policy_none")
            .starts_with("dmarcnone.test publishes p=none at _dmarc.dmarcnone.test")
    );
    assert!(msg("dkimbad.test", "dkim_key_missing").starts_with(
        "selector default (default._domainkey.dkimbad.test): p= is not base64: '@' at position 0 is not a base64 character"
    ));
    assert!(msg("stsbad.test", "mta_sts_invalid").contains("id is empty (1 to 32 letters and digits, RFC 8461 §3.1)"));
    assert!(msg("stsbad.test", "tlsrpt_invalid").contains("rua=ftp://x: ftp: is not a reporting scheme"));
    let noptr = msg("noptr.test", "mx_reverse_dns_mismatch");
    assert!(
        noptr.contains(
            "127.0.54.102 (mx2.noptr.test): PTR elsewhere.noptr.test resolves to 127.0.54.103, not back to 127.0.54.102"
        ),
        "{noptr}"
    );
    assert!(
        noptr.contains("127.0.55.1 (mx.noptr.test) has no PTR record (NXDOMAIN at 1.55.0.127.in-addr.arpa)"),
        "{noptr}"
    );
    // what fixed.test passes with
    assert_eq!(msg("fixed.test", "dkim_key_missing"), "DKIM keys: default: 2048-bit RSA key");
    // fixed.test has no _mta-sts record (see its zone); the valid case is stsgood.test in tests/tls_lab.rs
    assert!(!got["fixed.test"]["mta_sts_invalid"].0, "{}", msg("fixed.test", "mta_sts_invalid"));
    assert_eq!(
        msg("fixed.test", "tlsrpt_invalid"),
        "valid TLS-RPT record at _smtp._tls.fixed.test: rua=mailto:tlsrpt@fixed.test"
    );
    assert_eq!(
        msg("fixed.test", "mx_reverse_dns_mismatch"),
        "every mail host address has a PTR that resolves back: 127.0.54.11 ↔ mx.fixed.test"
    );
    assert_eq!(msg("fixed.test", "dmarc_policy_none"), "policy p=reject");
    assert_eq!(msg("fixed.test", "spf_lookup_limit"), "1 DNS-querying term(s) (limit 10)");
}

/// Waits for `/-/ready` and scrapes.
fn ready_scrape(ex: &Exporter) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    while ex.get("/-/ready").status != 200 {
        assert!(Instant::now() < deadline, "not ready after 30 s\n{}", ex.stderr());
        std::thread::sleep(Duration::from_millis(100));
    }
    ex.scrape()
}

fn serve(cfg: &Path, dir: &Path) -> Exporter {
    let log = dir.join("mail.log");
    std::fs::write(&log, b"").expect("log");
    Exporter::start(&[
        "serve",
        &format!("--config.file={}", cfg.display()),
        &format!("--maillog.path={}", log.display()),
        "--web.listen-address=127.0.0.1:0",
    ])
}

#[test]
fn each_policy_zone_fails_its_checks_in_metrics() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = policy_config(dir.path());
    let ex = serve(&cfg, dir.path());
    let text = ready_scrape(&ex);
    let samples = metric_samples(&text, "mailroute_dns_check_failed");
    let mut problems = Vec::new();
    for (name, (want, _)) in policy_zones() {
        let mine: BTreeMap<String, f64> = samples
            .iter()
            .filter(|(l, _)| l.get("domain") == Some(&name))
            .filter(|(l, _)| l.get("check").is_some_and(|c| POLICY.contains(&c.as_str())))
            .filter_map(|(l, v)| Some((l.get("check")?.clone(), *v)))
            .collect();
        for c in &want {
            if mine.get(c) != Some(&1.0) {
                problems.push(format!("{name}: {c} = {:?}, expected 1", mine.get(c)));
            }
        }
        for (c, v) in &mine {
            if !want.contains(c) && *v != 0.0 {
                problems.push(format!("{name}: {c} = {v}, expected 0"));
            }
        }
        if GOOD.contains(&name.as_str()) {
            let evaluated = mine.len();
            let expected = if name == "fixed.test" { 13 } else { 12 };
            if evaluated != expected {
                problems.push(format!("{name}: {evaluated} policy checks exported, expected {expected}: {mine:?}"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // the severity label follows the catalogue
    assert_eq!(
        metric_value(
            &text,
            "mailroute_dns_check_failed",
            &[("domain", "dmarcnone.test"), ("check", "dmarc_policy_none"), ("severity", "info")]
        ),
        Some(1.0)
    );
    let lookups = |d: &str| metric_value(&text, "mailroute_dns_spf_lookups", &[("domain", d)]);
    assert!(lookups("spflimit.test").is_some_and(|v| v >= 11.0), "{:?}", lookups("spflimit.test"));
    assert_eq!(lookups("spflimit.test"), Some(11.0));
    assert_eq!(lookups("spfloop.test"), Some(11.0));
    assert_eq!(lookups("spfvoid.test"), Some(4.0));
    assert_eq!(lookups("fixed.test"), Some(1.0));
    assert_eq!(lookups("nospf.test"), None, "no SPF record, no count");
    // the status page explains the failures in words
    let status: serde_json::Value = serde_json::from_str(&ex.get("/api/v1/status").text()).expect("status JSON");
    let doc = status["dns"]["domains"].as_array().expect("domains");
    let limit = doc.iter().find(|d| d["domain"] == "spflimit.test").expect("spflimit.test");
    let msgs: Vec<&str> =
        limit["failing_checks"].as_array().expect("failing").iter().filter_map(|c| c["message"].as_str()).collect();
    assert!(msgs.iter().any(|m| m.contains("needs 11 DNS-querying terms")), "{msgs:?}");
}

// ---- the SMTP probe against a real MTA ----

/// The apex of incident.test: a web host that is not the MX (127.0.54.1).
const APEX: &str = "127.0.54.2";

/// A port free on `ip` right now (bind to port 0, read it, close).
fn free_port(ip: IpAddr) -> u16 {
    let l = TcpListener::bind(SocketAddr::new(ip, 0)).expect("bind a free port");
    l.local_addr().expect("local address").port()
}

/// Postfix's `master` running in the foreground (`-d`) from a private
/// configuration directory, with one `smtpd` listening on `addr`. Stopped (SIGTERM,
/// then SIGKILL) when dropped, also when the test fails.
struct Postfix {
    master: Child,
    _dir: tempfile::TempDir,
}

impl Postfix {
    fn start(addr: SocketAddr) -> Postfix {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        // smtpd runs as the postfix user and must reach its queue directory
        for sub in ["", "conf", "queue", "queue/pid", "data"] {
            let p = root.join(sub);
            std::fs::create_dir_all(&p).expect("mkdir");
            std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
        }
        // master creates its lock file in data_directory as the mail owner
        let chown = Command::new("chown").args(["postfix", &root.join("data").display().to_string()]).status();
        assert!(chown.is_ok_and(|s| s.success()), "cannot chown the data directory to the postfix user");
        let main_cf = format!(
            "compatibility_level = 3.6\n\
             queue_directory = {q}\n\
             data_directory = {d}\n\
             mail_owner = postfix\n\
             myhostname = www.incident.test\n\
             mydomain = incident.test\n\
             inet_interfaces = all\n\
             inet_protocols = ipv4\n\
             smtpd_banner = $myhostname ESMTP mailroute-lab\n\
             mydestination =\n\
             relay_domains =\n\
             local_recipient_maps =\n\
             alias_maps =\n\
             alias_database =\n\
             smtpd_tls_security_level = none\n\
             smtpd_client_connection_count_limit = 0\n\
             smtpd_client_connection_rate_limit = 0\n",
            q = root.join("queue").display(),
            d = root.join("data").display()
        );
        std::fs::write(root.join("conf/main.cf"), main_cf).expect("main.cf");
        // service type private unpriv chroot wakeup maxproc command
        std::fs::write(root.join("conf/master.cf"), format!("{addr} inet n - n - - smtpd\n")).expect("master.cf");
        let daemon_dir = Command::new("postconf")
            .args(["-c", &root.join("conf").display().to_string(), "-h", "daemon_directory"])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_else(|| "/usr/lib/postfix/sbin".to_string());
        let master = Command::new(Path::new(&daemon_dir).join("master"))
            .args(["-c", &root.join("conf").display().to_string(), "-d"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start Postfix's master from {daemon_dir} (is postfix installed?): {e}"));
        let mut pf = Postfix { master, _dir: dir };
        // wait until smtpd greets
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = pf.master.try_wait() {
                panic!("Postfix's master exited with {status} (it logs to syslog only)");
            }
            if let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                let mut buf = [0u8; 256];
                if s.read(&mut buf).is_ok_and(|n| buf[..n].starts_with(b"220 ")) {
                    let _ = std::io::Write::write_all(&mut s, b"QUIT\r\n");
                    return pf;
                }
            }
            assert!(Instant::now() < deadline, "Postfix does not greet on {addr} after 10 s");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        if let Ok(None) = self.master.try_wait() {
            // SIGTERM lets master stop its smtpd children
            let pid = self.master.id() as libc::pid_t;
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.master.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = self.master.kill();
        }
        let _ = self.master.wait();
    }
}

fn probe_config(dir: &Path, file: &str, port: u16) -> PathBuf {
    write_config(
        dir,
        file,
        &format!("smtp_probe_port = {port}\n"),
        &[("incident.test".into(), vec![], true), ("fixed.test".into(), vec!["default".into()], true)],
    )
}

#[test]
fn smtp_probe_finds_postfix_on_the_apex() {
    let apex: IpAddr = APEX.parse().expect("address");
    let port = free_port(apex);
    let _postfix = Postfix::start(SocketAddr::new(apex, port));
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = probe_config(dir.path(), "probe.toml", port);

    let got = check_json(&cfg, &[]);
    let (failed, msg) = &got["incident.test"]["apex_smtp_listening"];
    assert!(failed, "{msg}");
    assert_eq!(
        msg,
        &format!(
            "127.0.54.2 (an apex address of incident.test, not an MX host) accepts SMTP on port {port}, greeting \"220 www.incident.test ESMTP mailroute-lab\": this host is where misrouted mail lands — senders that use the apex A/AAAA record instead of the MX (mx.incident.test) deliver there and are refused as relaying"
        )
    );
    let (failed, msg) = &got["fixed.test"]["apex_smtp_listening"];
    assert!(
        !failed && msg == "every apex address of fixed.test is an MX address (127.0.54.11); nothing to probe",
        "{msg}"
    );

    // the same through /metrics
    let ex = serve(&cfg, dir.path());
    let text = ready_scrape(&ex);
    let probe = |d: &str| {
        metric_value(
            &text,
            "mailroute_dns_check_failed",
            &[("domain", d), ("check", "apex_smtp_listening"), ("severity", "warning")],
        )
    };
    assert_eq!(probe("incident.test"), Some(1.0));
    assert_eq!(probe("fixed.test"), Some(0.0));
}

#[test]
fn smtp_probe_passes_a_closed_port() {
    let apex: IpAddr = APEX.parse().expect("address");
    let port = free_port(apex);
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = probe_config(dir.path(), "closed.toml", port);
    let got = check_json(&cfg, &["incident.test"]);
    let (failed, msg) = &got["incident.test"]["apex_smtp_listening"];
    assert!(!failed, "{msg}");
    assert_eq!(
        msg,
        &format!("no apex address that is not an MX accepts SMTP: 127.0.54.2 port {port}: connection refused")
    );
    // without smtp_probe the check is not evaluated at all
    let cfg = write_config(dir.path(), "off.toml", "", &[("incident.test".into(), vec![], false)]);
    let got = check_json(&cfg, &[]);
    assert!(!got["incident.test"].contains_key("apex_smtp_listening"));
}
