//! The SMTP TLS checks (issue 12) against real servers: the DNS lab (lab/dns) for
//! the zones, nginx from Debian serving the MTA-STS policies over HTTPS with SNI on
//! 127.0.54.20:443, and one Postfix `master` with an `smtpd` per MX address
//! (127.0.54.30, .32–.37) offering STARTTLS with certificates from a CA made at test time
//! (rcgen). Every check fails on exactly its zone and passes on stsgood.test,
//! through `check --output json` and `/metrics` of a running `serve`.
//!
//! Addresses: 127.0.54.20–99 only, avoiding those the lab zones already use as data
//! (21, 22, 31, 41, 50, 51, 60, 70, 71, 81–86, 90–92; see lab/dns/README.md).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Exporter, dns_lab, metric_samples, metric_value, promtool_check_metrics, run};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

/// The nginx address (all MTA-STS hosts resolve here; SNI picks the site).
const NGINX: &str = "127.0.54.20";

/// (domain, starttls_probe, the checks that must fail).
const ZONES: &[(&str, bool, &[&str])] = &[
    ("stsgood.test", true, &[]),
    ("stsmismatch.test", false, &["mta_sts_mx_mismatch"]),
    ("stsunavail.test", false, &["mta_sts_policy_unavailable"]),
    ("stsinvalid.test", false, &["mta_sts_policy_invalid"]),
    ("tlsexpired.test", true, &["mx_certificate_invalid"]),
    ("tlsexpiring.test", true, &["mx_certificate_expiring"]),
    ("tlswrongname.test", true, &["mx_certificate_invalid"]),
    ("tlsnone.test", true, &["mx_starttls_unavailable"]),
];

/// The checks of issue 12; each must be evaluated and pass on stsgood.test.
const TLS_CHECKS: [&str; 7] = [
    "mta_sts_invalid",
    "mta_sts_policy_unavailable",
    "mta_sts_policy_invalid",
    "mta_sts_mx_mismatch",
    "mx_starttls_unavailable",
    "mx_certificate_invalid",
    "mx_certificate_expiring",
];

const GOOD_POLICY: &str = "version: STSv1\r\nmode: enforce\r\nmx: mx.stsgood.test\r\nmax_age: 86400\r\n";
const MISMATCH_POLICY: &str = "version: STSv1\r\nmode: enforce\r\nmx: *.elsewhere.test\r\nmax_age: 86400\r\n";
const INVALID_POLICY: &str = "version: STSv1\r\nmode: enforced\r\nmx: mx.stsgood.test\r\n";

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

/// The UTC date `days_from_now` days from now: (y, m, d).
fn ymd(days_from_now: i64) -> (i32, u8, u8) {
    let (y, m, d, ..) = mailroute_exporter::logging::civil(now() + days_from_now * 86400);
    (y as i32, m as u8, d as u8)
}

fn validity(p: &mut CertificateParams, from: i64, to: i64) {
    let (y, m, d) = ymd(from);
    p.not_before = rcgen::date_time_ymd(y, m, d);
    let (y, m, d) = ymd(to);
    p.not_after = rcgen::date_time_ymd(y, m, d);
}

/// The lab CA and the files it signs, in `dir`.
struct Pki {
    dir: PathBuf,
    issuer: Issuer<'static, KeyPair>,
}

impl Pki {
    fn new(dir: &Path) -> Pki {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(rcgen::DnType::CommonName, "mailroute TLS lab CA");
        validity(&mut p, -30, 365);
        let ca = p.self_signed(&key).unwrap();
        write(&dir.join("ca.pem"), &ca.pem());
        Pki { dir: dir.to_path_buf(), issuer: Issuer::new(p, key) }
    }

    /// Writes `<file>.crt` (leaf then CA) and `<file>.key`; returns the leaf's
    /// notAfter as the truncated day the test asked for.
    fn leaf(&self, file: &str, names: &[&str], from: i64, to: i64) -> (PathBuf, PathBuf) {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        validity(&mut p, from, to);
        let cert = p.signed_by(&key, &self.issuer).unwrap();
        let ca = std::fs::read_to_string(self.dir.join("ca.pem")).unwrap();
        let crt = self.dir.join(format!("{file}.crt"));
        let k = self.dir.join(format!("{file}.key"));
        write(&crt, &format!("{}{ca}", cert.pem()));
        write(&k, &key.serialize_pem());
        (crt, k)
    }
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
}

fn mkdir(path: &Path) {
    std::fs::create_dir_all(path).unwrap();
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
}

/// A child process stopped (SIGTERM, then SIGKILL) when dropped.
struct Daemon {
    child: Child,
    name: &'static str,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            unsafe {
                libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
            }
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// Waits until `addr` accepts a connection (and, for SMTP, greets).
fn wait_listening(d: &mut Daemon, addr: SocketAddr, greeting: bool, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(Some(status)) = d.child.try_wait() {
            panic!("{} exited with {status}: {}", d.name, std::fs::read_to_string(log).unwrap_or_default());
        }
        if let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            if !greeting {
                return;
            }
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let mut buf = [0u8; 256];
            if s.read(&mut buf).is_ok_and(|n| buf[..n].starts_with(b"220 ")) {
                let _ = std::io::Write::write_all(&mut s, b"QUIT\r\n");
                return;
            }
        }
        assert!(Instant::now() < deadline, "{} does not answer on {addr} after 10 s", d.name);
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// nginx from Debian with its own configuration: one default site (a certificate
/// for another name) and one site per MTA-STS host, chosen by SNI.
fn start_nginx(dir: &Path, pki: &Pki) -> Daemon {
    let root = dir.join("nginx");
    mkdir(&root);
    let (dcrt, dkey) = pki.leaf("default", &["default.invalid"], -1, 90);
    let mut sites = String::new();
    for (zone, body) in [("stsgood", GOOD_POLICY), ("stsmismatch", MISMATCH_POLICY), ("stsinvalid", INVALID_POLICY)] {
        let host = format!("mta-sts.{zone}.test");
        let (crt, key) = pki.leaf(&host, &[host.as_str()], -1, 90);
        let www = root.join("www").join(zone).join(".well-known");
        mkdir(&www);
        write(&www.join("mta-sts.txt"), body);
        sites.push_str(&format!(
            "  server {{\n    listen {NGINX}:443 ssl;\n    server_name {host};\n    ssl_certificate {};\n    ssl_certificate_key {};\n    root {};\n    access_log {};\n  }}\n",
            crt.display(),
            key.display(),
            root.join("www").join(zone).display(),
            root.join(format!("{zone}.access.log")).display()
        ));
    }
    let conf = format!(
        "daemon off;\nmaster_process on;\nworker_processes 1;\nuser root;\npid {r}/nginx.pid;\nerror_log {r}/error.log;\n\
         events {{ worker_connections 64; }}\n\
         http {{\n  access_log off;\n  types {{ }}\n  default_type text/plain;\n\
           client_body_temp_path {r}/tmp;\n  proxy_temp_path {r}/tmp;\n  fastcgi_temp_path {r}/tmp;\n  uwsgi_temp_path {r}/tmp;\n  scgi_temp_path {r}/tmp;\n\
           server {{\n    listen {NGINX}:443 ssl default_server;\n    ssl_certificate {dc};\n    ssl_certificate_key {dk};\n    return 404;\n  }}\n{sites}}}\n",
        r = root.display(),
        dc = dcrt.display(),
        dk = dkey.display(),
    );
    mkdir(&root.join("tmp"));
    write(&root.join("nginx.conf"), &conf);
    let log = root.join("error.log");
    let child = Command::new("nginx")
        .args(["-p", &root.display().to_string(), "-c", &root.join("nginx.conf").display().to_string()])
        .args(["-e", &log.display().to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start nginx (scripts/install-test-deps.sh installs it): {e}"));
    let mut d = Daemon { child, name: "nginx" };
    wait_listening(&mut d, SocketAddr::new(NGINX.parse().unwrap(), 443), false, &log);
    d
}

/// The MX listeners of the lab: (address, certificate name, file, valid from, to)
/// in days from now; `None` name: no STARTTLS.
type Listener = (&'static str, Option<&'static str>, &'static str, i64, i64);

const MX_LISTENERS: [Listener; 5] = [
    ("127.0.54.30", Some("mx.stsgood.test"), "mx-good", -1, 90),
    ("127.0.54.32", Some("mx.tlsexpired.test"), "mx-expired", -30, -2),
    ("127.0.54.33", Some("mx.tlsexpiring.test"), "mx-expiring", -30, 5),
    ("127.0.54.34", Some("other.tlswrongname.test"), "mx-wrongname", -1, 90),
    ("127.0.54.35", None, "mx-none", 0, 0),
];

/// Postfix's master in the foreground with one smtpd per listener on `port`.
fn start_postfix(dir: &Path, pki: &Pki, port: u16, listeners: &[Listener]) -> Daemon {
    let root = dir.join("postfix");
    for sub in ["", "conf", "queue", "queue/pid", "data"] {
        mkdir(&root.join(sub));
    }
    // smtpd asks tlsmgr (a unix socket in queue/private) for TLS randomness
    mkdir(&root.join("queue/private"));
    for sub in ["data", "queue/private"] {
        let chown = Command::new("chown").args(["postfix", &root.join(sub).display().to_string()]).status();
        assert!(chown.is_ok_and(|s| s.success()), "cannot chown {sub} to the postfix user");
    }
    let main_cf = format!(
        "compatibility_level = 3.6\nqueue_directory = {q}\ndata_directory = {d}\nmail_owner = postfix\n\
         myhostname = mx.tlslab.test\nmydomain = tlslab.test\ninet_interfaces = all\ninet_protocols = ipv4\n\
         smtpd_banner = $myhostname ESMTP mailroute-tls-lab\nmydestination =\nrelay_domains =\n\
         local_recipient_maps =\nalias_maps =\nalias_database =\nsmtpd_tls_security_level = none\n\
         smtpd_client_connection_count_limit = 0\nsmtpd_client_connection_rate_limit = 0\n",
        q = root.join("queue").display(),
        d = root.join("data").display()
    );
    write(&root.join("conf/main.cf"), &main_cf);
    let mut master_cf = "tlsmgr unix - - n 1000? 1 tlsmgr\n".to_string();
    for &(ip, name, file, from, to) in listeners {
        match name {
            Some(name) => {
                let (crt, key) = pki.leaf(file, &[name], from, to);
                master_cf.push_str(&format!(
                    "{ip}:{port} inet n - n - - smtpd -o myhostname={name} -o smtpd_tls_security_level=may -o smtpd_tls_cert_file={} -o smtpd_tls_key_file={}\n",
                    crt.display(),
                    key.display()
                ));
            }
            None => master_cf.push_str(&format!("{ip}:{port} inet n - n - - smtpd\n")),
        }
    }
    write(&root.join("conf/master.cf"), &master_cf);
    let daemon_dir = Command::new("postconf")
        .args(["-c", &root.join("conf").display().to_string(), "-h", "daemon_directory"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "/usr/lib/postfix/sbin".to_string());
    let err = std::fs::File::create(root.join("postfix.log")).unwrap();
    let child = Command::new(Path::new(&daemon_dir).join("master"))
        .args(["-c", &root.join("conf").display().to_string(), "-d"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start Postfix's master from {daemon_dir}: {e}"));
    let mut d = Daemon { child, name: "postfix master" };
    for (ip, ..) in listeners {
        wait_listening(&mut d, SocketAddr::new(ip.parse().unwrap(), port), true, &root.join("postfix.log"));
    }
    d
}

/// A port free on every address of `listeners` right now.
fn free_port(listeners: &[Listener]) -> u16 {
    'next: for _ in 0..50 {
        let l = TcpListener::bind(SocketAddr::new(listeners[0].0.parse().unwrap(), 0)).expect("bind");
        let port = l.local_addr().unwrap().port();
        drop(l);
        for (ip, ..) in &listeners[1..] {
            let ip: IpAddr = ip.parse().unwrap();
            if TcpListener::bind(SocketAddr::new(ip, port)).is_err() {
                continue 'next;
            }
        }
        return port;
    }
    panic!("no port free on the MX addresses");
}

struct Lab {
    _nginx: Daemon,
    _postfix: Daemon,
    dir: tempfile::TempDir,
    config: PathBuf,
}

fn lab() -> Lab {
    let (resolver, dns_port) = dns_lab();
    let dir = tempfile::tempdir().unwrap();
    mkdir(dir.path());
    let pki = Pki::new(dir.path());
    let nginx = start_nginx(dir.path(), &pki);
    let smtp_port = free_port(&MX_LISTENERS);
    let postfix = start_postfix(dir.path(), &pki, smtp_port, &MX_LISTENERS);
    let mut cfg = format!(
        "[dns]\nresolvers = [\"{resolver}\"]\nport = {dns_port}\ntimeout = \"2s\"\ninterval = \"1h\"\n\
         smtp_probe_port = {smtp_port}\nca_file = \"{}\"\n",
        dir.path().join("ca.pem").display()
    );
    for (name, starttls, _) in ZONES {
        cfg.push_str(&format!("\n[[dns.domain]]\nname = \"{name}\"\nstarttls_probe = {starttls}\n"));
    }
    let config = dir.path().join("tls.toml");
    write(&config, &cfg);
    Lab { _nginx: nginx, _postfix: postfix, dir, config }
}

fn failing(checks: &BTreeMap<String, bool>) -> BTreeSet<String> {
    checks.iter().filter(|(_, f)| **f).map(|(c, _)| c.clone()).collect()
}

fn want(fail: &[&str]) -> BTreeSet<String> {
    fail.iter().map(|s| s.to_string()).collect()
}

#[test]
fn every_tls_check_fails_on_its_zone_and_passes_on_the_good_one() {
    let lab = lab();
    let cfg = lab.config.display().to_string();

    // ---- check --output json
    let (status, stdout, stderr) = run(&["check", &format!("--config.file={cfg}"), "--output=json"]);
    assert!(matches!(status.code(), Some(0 | 1)), "check exited {status}: {stderr}");
    let doc: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    let mut by_domain: BTreeMap<String, BTreeMap<String, bool>> = BTreeMap::new();
    let mut messages: BTreeMap<(String, String), String> = BTreeMap::new();
    for d in doc["domains"].as_array().expect("domains") {
        let name = d["domain"].as_str().unwrap().to_string();
        assert!(d["error"].is_null(), "{name}: {}", d["error"]);
        let mut checks = BTreeMap::new();
        for c in d["checks"].as_array().unwrap() {
            let id = c["check"].as_str().unwrap().to_string();
            messages.insert((name.clone(), id.clone()), c["message"].as_str().unwrap().to_string());
            checks.insert(id, c["failed"] == true);
        }
        by_domain.insert(name, checks);
    }
    let mut problems = Vec::new();
    for (name, _, fail) in ZONES {
        let got = failing(&by_domain[*name]);
        if got != want(fail) {
            let detail: Vec<String> =
                got.iter().map(|c| format!("{c}: {}", messages[&(name.to_string(), c.clone())])).collect();
            problems.push(format!("{name}: failing {got:?}, expected {fail:?}\n  {}", detail.join("\n  ")));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    for c in TLS_CHECKS {
        assert_eq!(by_domain["stsgood.test"].get(c), Some(&false), "{c} is not evaluated and passing on stsgood.test");
    }
    // the messages say what happened
    let m = |d: &str, c: &str| messages[&(d.to_string(), c.to_string())].clone();
    assert!(
        m("stsmismatch.test", "mta_sts_mx_mismatch")
            .contains("MX mx.stsgood.test match(es) none of its mx patterns (*.elsewhere.test)")
    );
    assert!(
        m("stsunavail.test", "mta_sts_policy_unavailable").contains("not valid for name"),
        "{}",
        m("stsunavail.test", "mta_sts_policy_unavailable")
    );
    assert!(
        m("stsinvalid.test", "mta_sts_policy_invalid")
            .contains("mode: \"enforced\" is not enforce, testing or none; max_age is missing")
    );
    assert!(m("tlsexpired.test", "mx_certificate_invalid").contains("certificate expired"));
    assert!(m("tlswrongname.test", "mx_certificate_invalid").contains("not valid for name \"mx.tlswrongname.test\""));
    assert!(
        m("tlsexpiring.test", "mx_certificate_expiring").contains("in 4 day(s)")
            || m("tlsexpiring.test", "mx_certificate_expiring").contains("in 5 day(s)")
    );
    assert!(m("tlsnone.test", "mx_starttls_unavailable").contains("EHLO failed: the server does not offer STARTTLS"));
    assert!(m("stsgood.test", "mta_sts_mx_mismatch").contains("every MX matches"));
    assert_eq!(m("stsgood.test", "mta_sts_invalid"), "valid MTA-STS record at _mta-sts.stsgood.test: id=20261206good");

    // ---- /metrics of a running serve
    let log = lab.dir.path().join("mail.log");
    std::fs::write(&log, b"").unwrap();
    let ex = Exporter::start(&["serve", &format!("--config.file={cfg}"), &format!("--maillog.path={}", log.display())]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while ex.get("/-/ready").status != 200 {
        assert!(Instant::now() < deadline, "not ready after 60 s\n{}", ex.stderr());
        std::thread::sleep(Duration::from_millis(100));
    }
    let text = ex.scrape();
    promtool_check_metrics(&text).unwrap();
    for (name, _, fail) in ZONES {
        let got: BTreeSet<String> = metric_samples(&text, "mailroute_dns_check_failed")
            .into_iter()
            .filter(|(l, v)| l["domain"] == *name && *v == 1.0)
            .map(|(l, _)| l["check"].clone())
            .collect();
        assert_eq!(got, want(fail), "{name} in /metrics");
    }
    assert_eq!(
        metric_value(
            &text,
            "mailroute_mta_sts_policy_info",
            &[("domain", "stsgood.test"), ("mode", "enforce"), ("id", "20261206good")]
        ),
        Some(1.0)
    );
    let policies: Vec<_> =
        metric_samples(&text, "mailroute_mta_sts_policy_info").into_iter().map(|(l, _)| l["domain"].clone()).collect();
    assert_eq!(policies, vec!["stsgood.test", "stsmismatch.test"], "only valid policies have an info sample");
    let expiry = |d: &str, e: &str, a: &str| {
        metric_value(
            &text,
            "mailroute_smtp_tls_certificate_expiry_timestamp_seconds",
            &[("domain", d), ("exchange", e), ("address", a)],
        )
        .unwrap_or_else(|| panic!("no expiry sample for {d}"))
    };
    let day = |n: i64| ((now() + n * 86400) / 86400 * 86400) as f64;
    assert_eq!(expiry("stsgood.test", "mx.stsgood.test", "127.0.54.30"), day(90));
    assert_eq!(expiry("tlsexpiring.test", "mx.tlsexpiring.test", "127.0.54.33"), day(5));
    assert_eq!(expiry("tlsexpired.test", "mx.tlsexpired.test", "127.0.54.32"), day(-2));
    assert!(
        metric_samples(&text, "mailroute_smtp_tls_certificate_expiry_timestamp_seconds")
            .iter()
            .all(|(l, _)| l["domain"] != "tlsnone.test")
    );
    // the status page says it in words
    let page = ex.get("/").text();
    assert!(page.contains("MTA-STS: mode enforce (id 20261206good), max_age 86400 s, mx mx.stsgood.test"), "{page}");
    assert!(page.contains("mx.tlsnone.test (127.0.54.35:"), "{page}");
    assert!(page.contains("no TLS (EHLO failed: the server does not offer STARTTLS)."), "{page}");
    assert!(page.contains("certificate invalid (invalid peer certificate: certificate expired"), "{page}");
    drop(ex);

    // the policy is kept across rounds: rounds every 2 s, one fetch (same id, max_age 1 day)
    let fast = lab.dir.path().join("fast.toml");
    let text = std::fs::read_to_string(&lab.config).unwrap().replace("interval = \"1h\"", "interval = \"2s\"");
    let text = text.replace("timeout = \"2s\"", "timeout = \"1s\"");
    write(&fast, &text);
    let access = lab.dir.path().join("nginx/stsgood.access.log");
    let before = std::fs::read_to_string(&access).unwrap_or_default().lines().count();
    let ex = Exporter::start(&[
        "serve",
        &format!("--config.file={}", fast.display()),
        &format!("--maillog.path={}", log.display()),
    ]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while ex.stderr().matches("DNS round finished").count() < 3 {
        assert!(Instant::now() < deadline, "no three rounds in 60 s\n{}", ex.stderr());
        std::thread::sleep(Duration::from_millis(100));
    }
    let fetches = std::fs::read_to_string(&access).unwrap().lines().count() - before;
    assert_eq!(fetches, 1, "mta-sts.stsgood.test was fetched {fetches} times in 3 rounds");
    // an invalid policy is not kept: it is fetched again every round
    let invalid = std::fs::read_to_string(lab.dir.path().join("nginx/stsinvalid.access.log")).unwrap();
    assert!(invalid.lines().count() > 3, "an invalid policy is fetched again each round: {invalid}");
}

// ---- DANE in a signed zone

/// The signed zone's authoritative server (NSD) and the validating resolver
/// (Unbound, trust anchor = the zone's KSK; everything else forwarded to the lab's
/// resolver). The MX hosts of danelab.test (TLSA matches) and bad.danelab.test (a
/// stale TLSA record) run Postfix with valid certificates.
const DANE_NSD: &str = "127.0.54.42";
const DANE_RESOLVER: &str = "127.0.54.43";
const DANE_LISTENERS: [Listener; 2] = [
    ("127.0.54.36", Some("mx.danelab.test"), "mx-dane", -1, 90),
    ("127.0.54.37", Some("mx.bad.danelab.test"), "mx-dane-bad", -1, 90),
];

fn sh(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `3 1 1` association data of the certificate in `crt` (PEM, leaf first).
fn tlsa_311(crt: &Path) -> String {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let leaf = CertificateDer::pem_file_iter(crt).unwrap().next().unwrap().unwrap();
    let spki = mailroute_exporter::dns::x509::cert_info(&leaf).unwrap().spki;
    mailroute_exporter::dns::dane::hex(ring::digest::digest(&ring::digest::SHA256, &spki).as_ref())
}

fn find_daemon(name: &str) -> PathBuf {
    for d in ["/usr/sbin", "/usr/bin", "/sbin"] {
        let p = Path::new(d).join(name);
        if p.exists() {
            return p;
        }
    }
    panic!("{name} not found (scripts/install-test-deps.sh installs it)");
}

#[test]
fn dane_tlsa_mismatch_fails_on_a_stale_record_in_a_signed_zone() {
    let (lab_resolver, port) = dns_lab();
    let dir = tempfile::tempdir().unwrap();
    mkdir(dir.path());
    let pki = Pki::new(dir.path());
    let smtp_port = free_port(&DANE_LISTENERS);
    let _postfix = start_postfix(dir.path(), &pki, smtp_port, &DANE_LISTENERS);
    let good = tlsa_311(&dir.path().join("mx-dane.crt"));
    // a certificate the bad host no longer presents: the key was rolled
    let (old, _) = pki.leaf("mx-dane-old", &["mx.bad.danelab.test"], -60, 30);
    let stale = tlsa_311(&old);

    // the zone, signed with dnssec-signzone (BIND's tools)
    let z = dir.path().join("dns");
    mkdir(&z);
    let zone = format!(
        "$ORIGIN danelab.test.\n$TTL 60\n@ SOA ns1.danelab.test. hostmaster.danelab.test. 2026120601 14400 3600 1209600 300\n\
         @ NS ns1\nns1 A {DANE_NSD}\n@ MX 10 mx\nmx A 127.0.54.36\n_25._tcp.mx TLSA 3 1 1 {good}\n\
         @ TXT \"v=spf1 mx -all\"\n_dmarc TXT \"v=DMARC1; p=reject\"\n\
         bad MX 10 mx.bad\nmx.bad A 127.0.54.37\n_25._tcp.mx.bad TLSA 3 1 1 {stale}\nbad TXT \"v=spf1 mx -all\"\n"
    );
    write(&z.join("danelab.test.zone"), &zone);
    let keygen = |ksk: bool| {
        let mut c = Command::new("dnssec-keygen");
        c.current_dir(&z).args(["-q", "-a", "ECDSAP256SHA256"]);
        if ksk {
            c.args(["-f", "KSK"]);
        }
        sh(c.arg("danelab.test")).trim().to_string()
    };
    let ksk = keygen(true);
    let _zsk = keygen(false);
    sh(Command::new("dnssec-signzone").current_dir(&z).args([
        "-S",
        "-K",
        ".",
        "-o",
        "danelab.test",
        "-f",
        "danelab.test.signed",
        "danelab.test.zone",
    ]));
    let nsd_conf = format!(
        "server:\n    ip-address: {DANE_NSD}\n    port: {port}\n    do-ip6: no\n    username: \"\"\n    chroot: \"\"\n    database: \"\"\n    zonesdir: \"{d}\"\n    pidfile: \"{d}/nsd.pid\"\n    logfile: \"{d}/nsd.log\"\n    xfrdfile: \"{d}/xfrd.state\"\n    xfrdir: \"{d}\"\n    zonelistfile: \"{d}/zone.list\"\n    server-count: 1\nremote-control:\n    control-enable: no\nzone:\n    name: \"danelab.test\"\n    zonefile: \"{d}/danelab.test.signed\"\n",
        d = z.display()
    );
    write(&z.join("nsd.conf"), &nsd_conf);
    let (lab_ip, lab_port) = lab_resolver.rsplit_once(':').unwrap();
    let unbound_conf = format!(
        "server:\n    interface: {DANE_RESOLVER}\n    port: {port}\n    outgoing-interface: {DANE_RESOLVER}\n    do-ip6: no\n    access-control: 127.0.0.0/8 allow\n    do-daemonize: no\n    username: \"\"\n    chroot: \"\"\n    directory: \"{d}\"\n    pidfile: \"{d}/unbound.pid\"\n    logfile: \"{d}/unbound.log\"\n    use-syslog: no\n    module-config: \"validator iterator\"\n    trust-anchor-file: \"{d}/{ksk}.key\"\n    do-not-query-localhost: no\n    qname-minimisation: no\n    harden-referral-path: no\n    cache-max-ttl: 60\n    local-zone: \"test.\" nodefault\n    local-zone: \"127.in-addr.arpa.\" nodefault\nremote-control:\n    control-enable: no\nstub-zone:\n    name: \"danelab.test.\"\n    stub-addr: {DANE_NSD}@{port}\nforward-zone:\n    name: \".\"\n    forward-addr: {lab_ip}@{lab_port}\n",
        d = z.display()
    );
    write(&z.join("unbound.conf"), &unbound_conf);
    let nsd = Command::new(find_daemon("nsd"))
        .args(["-d", "-c", &z.join("nsd.conf").display().to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut nsd = Daemon { child: nsd, name: "nsd (danelab)" };
    let unbound = Command::new(find_daemon("unbound"))
        .args(["-d", "-c", &z.join("unbound.conf").display().to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut unbound = Daemon { child: unbound, name: "unbound (danelab)" };
    // both answer over TCP once up
    wait_listening(&mut nsd, SocketAddr::new(DANE_NSD.parse().unwrap(), port), false, &z.join("nsd.log"));
    wait_listening(&mut unbound, SocketAddr::new(DANE_RESOLVER.parse().unwrap(), port), false, &z.join("unbound.log"));

    let cfg = format!(
        "[dns]\nresolvers = [\"{DANE_RESOLVER}:{port}\"]\nport = {port}\ntimeout = \"2s\"\ninterval = \"1h\"\n\
         smtp_probe_port = {smtp_port}\nca_file = \"{}\"\n\n[[dns.domain]]\nname = \"danelab.test\"\nstarttls_probe = true\n\n\
         [[dns.domain]]\nname = \"bad.danelab.test\"\nstarttls_probe = true\n",
        dir.path().join("ca.pem").display()
    );
    let cfg_path = dir.path().join("dane.toml");
    write(&cfg_path, &cfg);
    let (status, stdout, stderr) = run(&["check", &format!("--config.file={}", cfg_path.display()), "--output=json"]);
    assert!(matches!(status.code(), Some(0 | 1)), "check exited {status}: {stderr}");
    let doc: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    let check = |domain: &str, id: &str| -> (bool, String) {
        let d = doc["domains"].as_array().unwrap().iter().find(|d| d["domain"] == domain).unwrap();
        let c = d["checks"].as_array().unwrap().iter().find(|c| c["check"] == id);
        let c = c.unwrap_or_else(|| panic!("{domain}: {id} not evaluated: {d}"));
        (c["failed"] == true, c["message"].as_str().unwrap().to_string())
    };
    let (failed, msg) = check("danelab.test", "dane_tlsa_mismatch");
    assert!(!failed && msg.starts_with("mx.danelab.test (127.0.54.36:") && msg.contains(": TLSA 3 1 1 "), "{msg}");
    assert!(!msg.contains("not trusted"), "the signed zone validated: {msg}");
    let (failed, msg) = check("bad.danelab.test", "dane_tlsa_mismatch");
    assert!(
        failed && msg.contains("the presented chain matches none of the TLSA records at _25._tcp.mx.bad.danelab.test"),
        "{msg}"
    );
    // the certificates themselves are fine: only DANE tells the difference
    for d in ["danelab.test", "bad.danelab.test"] {
        for c in ["mx_starttls_unavailable", "mx_certificate_invalid", "mx_certificate_expiring"] {
            let (failed, msg) = check(d, c);
            assert!(!failed, "{d} {c}: {msg}");
        }
    }
    // and the same through /metrics
    let log = dir.path().join("mail.log");
    std::fs::write(&log, b"").unwrap();
    let ex = Exporter::start(&[
        "serve",
        &format!("--config.file={}", cfg_path.display()),
        &format!("--maillog.path={}", log.display()),
    ]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while ex.get("/-/ready").status != 200 {
        assert!(Instant::now() < deadline, "not ready after 60 s\n{}", ex.stderr());
        std::thread::sleep(Duration::from_millis(100));
    }
    let text = ex.scrape();
    let failed = |d: &str| {
        metric_value(
            &text,
            "mailroute_dns_check_failed",
            &[("domain", d), ("check", "dane_tlsa_mismatch"), ("severity", "critical")],
        )
    };
    assert_eq!(failed("danelab.test"), Some(0.0));
    assert_eq!(failed("bad.danelab.test"), Some(1.0));
}
