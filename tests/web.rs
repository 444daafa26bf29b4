//! The HTTP surface under real clients: TLS and basic auth with curl, methods, slow
//! clients, and a flood of concurrent scrapes.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::Exporter;

fn curl(args: &[&str]) -> (i32, String) {
    let out = Command::new("curl").args(["-s", "-S", "--max-time", "10"]).args(args).output().expect("curl");
    (
        out.status.code().unwrap_or(-1),
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
    )
}

/// A self-signed certificate for 127.0.0.1, made with openssl.
fn certificate(dir: &Path) -> (String, String) {
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    let status = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"])
        .args(["-subj", "/CN=mailroute test", "-addext", "subjectAltName=IP:127.0.0.1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl");
    assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
    (cert.display().to_string(), key.display().to_string())
}

fn log_file(dir: &Path) -> String {
    let p = dir.join("mail.log");
    std::fs::write(&p, b"").expect("log");
    p.display().to_string()
}

#[test]
fn tls_and_basic_auth_refuse_what_they_should() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = certificate(dir.path());
    let hash = bcrypt::hash("s3cret", 6).expect("bcrypt");
    let cfg = dir.path().join("web.toml");
    std::fs::write(
        &cfg,
        format!(
            "[web]\nlisten_address = \"127.0.0.1:0\"\n[web.tls]\ncert_file = \"{cert}\"\nkey_file = \"{key}\"\n\
             [web.basic_auth]\nusers = {{ alice = \"{hash}\" }}\n[maillog]\npaths = [\"{}\"]\n",
            log_file(dir.path())
        ),
    )
    .expect("config");
    let ex = Exporter::start(&["serve", &format!("--config.file={}", cfg.display())]);
    assert!(ex.stderr().contains("tls=true") && ex.stderr().contains("basic_auth=true"), "{}", ex.stderr());
    let url = format!("https://{}/metrics", ex.addr());
    // the right password over TLS, verified against our certificate
    let (code, body) = curl(&["--cacert", &cert, "-u", "alice:s3cret", "-w", "\n%{http_code}", &url]);
    assert_eq!(code, 0, "{body}");
    assert!(body.ends_with("\n200") && body.contains("mailroute_build_info"), "{body}");
    // wrong password and no password: 401 with a challenge
    let (_, body) = curl(&["--cacert", &cert, "-u", "alice:wrong", "-w", "\n%{http_code}", &url]);
    assert!(body.ends_with("\n401"), "{body}");
    let (_, body) = curl(&["--cacert", &cert, "-D", "-", "-o", "/dev/null", &url]);
    assert!(
        body.starts_with("HTTP/1.1 401") && body.contains("www-authenticate: Basic realm=\"mailroute_exporter\""),
        "{body}"
    );
    let (_, body) = curl(&["--cacert", &cert, "-u", "mallory:s3cret", "-w", "\n%{http_code}", &url]);
    assert!(body.ends_with("\n401"), "{body}");
    // every endpoint is protected
    for path in ["/", "/api/v1/status", "/-/healthy", "/-/ready"] {
        let (_, body) = curl(&[
            "--cacert",
            &cert,
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &format!("https://{}{path}", ex.addr()),
        ]);
        assert_eq!(body, "401", "{path}");
    }
    // a client that does not trust the certificate gives up; plain HTTP gets nothing
    let (code, _) = curl(&["-u", "alice:s3cret", &url]);
    assert_ne!(code, 0, "an untrusted certificate must fail");
    let (code, body) = curl(&["-u", "alice:s3cret", &format!("http://{}/metrics", ex.addr())]);
    assert_ne!(code, 0, "plain HTTP to a TLS port must fail: {body}");
}

#[test]
fn only_get_head_and_reload_post() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ex = Exporter::start(&[
        "serve",
        "--web.listen-address=127.0.0.1:0",
        &format!("--maillog.path={}", log_file(dir.path())),
    ]);
    let base = format!("http://{}", ex.addr());
    let code = |args: &[&str], path: &str| {
        curl(&[args, &["-o", "/dev/null", "-w", "%{http_code}", &format!("{base}{path}")]].concat()).1
    };
    assert_eq!(code(&[], "/metrics"), "200");
    assert_eq!(code(&["-I"], "/metrics"), "200");
    assert_eq!(code(&["-X", "POST"], "/metrics"), "405");
    assert_eq!(code(&["-X", "PUT"], "/metrics"), "405");
    assert_eq!(code(&["-X", "DELETE"], "/"), "405");
    assert_eq!(code(&["-X", "GET"], "/-/reload"), "405");
    assert_eq!(code(&[], "/nope"), "404");
    // reload without a configuration file is refused, not fatal
    assert_eq!(code(&["-X", "POST"], "/-/reload"), "500");
    assert_eq!(code(&[], "/-/healthy"), "200");
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

#[test]
fn slow_clients_cannot_hold_the_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ex = Exporter::start(&[
        "serve",
        "--web.listen-address=127.0.0.1:0",
        &format!("--maillog.path={}", log_file(dir.path())),
    ]);
    // a client that sends half a request line and then nothing
    let mut slow = TcpStream::connect(ex.addr()).expect("connect");
    slow.write_all(b"GET /metr").expect("write");
    // another that never sends anything
    let idle = TcpStream::connect(ex.addr()).expect("connect");
    // others are served meanwhile
    for _ in 0..5 {
        assert_eq!(ex.get("/-/healthy").status, 200);
    }
    // the server closes the slow one once the header timeout (10 s) passes
    slow.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
    let started = Instant::now();
    let mut buf = Vec::new();
    let _ = slow.read_to_end(&mut buf);
    let waited = started.elapsed();
    assert!(waited < Duration::from_secs(15), "held for {waited:?}");
    let text = String::from_utf8_lossy(&buf);
    assert!(buf.is_empty() || text.starts_with("HTTP/1.1 408"), "{text}");
    drop(idle);
}

#[test]
fn a_flood_of_scrapes_is_served_or_refused_with_bounded_memory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ex = Exporter::start(&[
        "serve",
        "--web.listen-address=127.0.0.1:0",
        &format!("--maillog.path={}", log_file(dir.path())),
    ]);
    let before = rss_kib(ex.pid());
    let addr = ex.addr();
    let threads: Vec<_> = (0..1000)
        .map(|_| {
            std::thread::spawn(move || {
                let Ok(mut s) = TcpStream::connect(addr) else { return (false, false) };
                let _ = s.set_read_timeout(Some(Duration::from_secs(20)));
                if s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").is_err() {
                    return (false, true);
                }
                let mut buf = Vec::new();
                let _ = s.read_to_end(&mut buf);
                let ok = buf.starts_with(b"HTTP/1.1 200");
                (ok, !ok)
            })
        })
        .collect();
    let mut served = 0;
    let mut refused = 0;
    for t in threads {
        let (ok, no) = t.join().expect("client thread");
        served += usize::from(ok);
        refused += usize::from(no);
    }
    assert_eq!(served + refused, 1000);
    assert!(served >= 256, "at least the connection limit is served: {served}");
    let after = rss_kib(ex.pid());
    assert!(after < before + 64 * 1024, "RSS grew from {before} KiB to {after} KiB");
    // and the server still answers afterwards
    assert_eq!(ex.get("/-/healthy").status, 200);
    eprintln!("flood: {served} served, {refused} refused, RSS {before} → {after} KiB");
}
