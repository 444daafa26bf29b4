//! Soak, the CI variant: 300,000 lines of Postfix, Sendmail and Exim through a
//! tailed file at 50,000 lines/s, from 64 hosts, with 200 local domains, so the
//! exposition is as wide as such a configuration makes it (64 hosts × reject label
//! sets, 64 × 200 misroute series at most). The exporter's RSS is sampled every
//! 100 ms and must plateau: the largest RSS of the last third of the run may exceed
//! the largest of the middle third by at most 2 MiB. Every line must be counted,
//! and a full `/metrics` must be quick (best of 20: 5 ms for a release build, 50 ms
//! for the debug build `cargo test` makes).
//!
//! The full soak (5 million generated lines, RSS table, scrape timings) is
//! `bench/soak.sh`; see bench/README.md.

mod common;

use std::fs::OpenOptions;
use std::io::Write;
use std::time::{Duration, Instant};

use common::{Exporter, metric_samples, metric_sum};

const HOSTS: usize = 64;
const DOMAINS: usize = 200;
const RATE: usize = 50_000;
const SECS: usize = 6;

/// Line `i`, and whether it is a reject and a misroute.
fn line(i: usize) -> (String, bool, bool) {
    let host = format!("h{:02}", (i / 8) % HOSTS);
    let dom = format!("d{:03}.example", (i * 31) % DOMAINS);
    let ts = format!("Mar  1 {:02}:{:02}:{:02}", (i / 3600) % 24, (i / 60) % 60, i % 60);
    match i % 8 {
        0 => (
            format!(
                "{ts} {host} postfix/smtpd[{}]: NOQUEUE: reject: RCPT from unknown[198.51.100.{}]: 554 5.7.1 <u{i}@{dom}>: Relay access denied; from=<s{i}@spam.example> to=<u{i}@{dom}> proto=ESMTP helo=<x{i}.example>",
                1000 + i % 30_000,
                i % 250 + 1
            ),
            true,
            true,
        ),
        1 => (
            format!(
                "{ts} {host} postfix/smtpd[{}]: NOQUEUE: reject: RCPT from unknown[203.0.113.{}]: 554 5.7.1 Service unavailable; Client host [203.0.113.{}] blocked using zen.spamhaus.org; from=<s{i}@spam.example> to=<u{i}@{dom}> proto=ESMTP helo=<x>",
                1000 + i % 30_000,
                i % 250 + 1,
                i % 250 + 1
            ),
            true,
            false,
        ),
        2 => (
            format!(
                "{ts} {host} sm-mta[{}]: 0{i:013}: ruleset=check_rcpt, arg1=<u{i}@{dom}>, relay=mail{i}.example [192.0.2.{}], reject=550 5.7.1 <u{i}@{dom}>... Relaying denied. Proper authentication required.",
                1000 + i % 30_000,
                i % 250 + 1
            ),
            true,
            true,
        ),
        3 => (
            format!(
                "{ts} {host} exim[{}]: H=mx{i}.example [192.0.2.{}] F=<s{i}@spam.example> rejected RCPT <nobody{i}@{dom}>: Unknown user",
                1000 + i % 30_000,
                i % 250 + 1
            ),
            true,
            false,
        ),
        4 => (
            format!("{ts} {host} postfix/smtpd[{}]: {:X}: client=mail{i}.example[192.0.2.1]", 1000 + i % 30_000, i),
            false,
            false,
        ),
        5 => (format!("{ts} {host} postfix/qmgr[99]: {:X}: removed", i), false, false),
        6 => (format!("{ts} {host} dovecot[7]: imap-login: Login: user=<u{i}>"), false, false),
        _ => (
            format!("{ts} {host} postfix/smtpd[{}]: connect from mail{i}.example[192.0.2.1]", 1000 + i % 30_000),
            false,
            false,
        ),
    }
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[test]
fn soak_short() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("mail.log");
    std::fs::File::create(&log).unwrap();
    let domains: Vec<String> = (0..DOMAINS).map(|k| format!("\"d{k:03}.example\"")).collect();
    let cfg = dir.path().join("soak.toml");
    std::fs::write(&cfg, format!("[maillog]\nmax_hosts = {HOSTS}\nlocal_domains = [{}]\n", domains.join(", ")))
        .unwrap();
    let ex = Exporter::start(&[
        "serve",
        &format!("--config.file={}", cfg.display()),
        &format!("--maillog.path={}", log.display()),
        "--maillog.start=beginning",
    ]);
    let pid = ex.pid();

    let total = RATE * SECS;
    let writer = {
        let log = log.clone();
        std::thread::spawn(move || {
            let mut f = OpenOptions::new().append(true).open(&log).unwrap();
            let (mut rejects, mut misroutes) = (0u64, 0u64);
            let start = Instant::now();
            let per_tick = RATE / 10;
            for tick in 0..SECS * 10 {
                let mut buf = String::with_capacity(per_tick * 200);
                for i in tick * per_tick..(tick + 1) * per_tick {
                    let (l, r, m) = line(i);
                    buf.push_str(&l);
                    buf.push('\n');
                    rejects += u64::from(r);
                    misroutes += u64::from(m);
                }
                f.write_all(buf.as_bytes()).unwrap();
                let due = start + Duration::from_millis(100 * (tick as u64 + 1));
                if let Some(d) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(d);
                }
            }
            (rejects, misroutes)
        })
    };

    let mut curve: Vec<(f64, f64, u64)> = Vec::new();
    let start = Instant::now();
    let deadline = start + Duration::from_secs(60);
    let text = loop {
        std::thread::sleep(Duration::from_millis(100));
        let text = ex.scrape();
        let counted = metric_sum(&text, "mailroute_log_lines_total", &[]);
        curve.push((start.elapsed().as_secs_f64(), counted, rss_kib(pid)));
        if counted as usize >= total {
            break text;
        }
        assert!(Instant::now() < deadline, "only {counted} of {total} lines counted within 60 s");
    };
    // one more second idle
    for _ in 0..10 {
        std::thread::sleep(Duration::from_millis(100));
        curve.push((start.elapsed().as_secs_f64(), total as f64, rss_kib(pid)));
    }
    let (rejects, misroutes) = writer.join().unwrap();

    eprintln!("second     lines  RSS MiB");
    for (t, n, rss) in &curve {
        eprintln!("{t:6.1} {n:9} {:8.1}", *rss as f64 / 1024.0);
    }
    assert_eq!(metric_sum(&text, "mailroute_smtp_rejects_total", &[]), rejects as f64);
    assert_eq!(metric_sum(&text, "mailroute_misroutes_total", &[]), misroutes as f64);
    let hosts: std::collections::BTreeSet<String> = metric_samples(&text, "mailroute_smtp_rejects_total")
        .into_iter()
        .filter_map(|(l, _)| l.get("host").cloned())
        .collect();
    assert_eq!(hosts.len(), HOSTS, "every host has its own label, none is \"other\"");

    let third = curve.len() / 3;
    let max_mid = curve[third..2 * third].iter().map(|c| c.2).max().unwrap();
    let max_last = curve[2 * third..].iter().map(|c| c.2).max().unwrap();
    eprintln!("plateau: middle third max {max_mid} KiB, last third max {max_last} KiB");
    assert!(max_last <= max_mid + 2048, "RSS still growing: middle third max {max_mid} KiB, last third {max_last} KiB");

    let mut best = Duration::MAX;
    let mut size = 0;
    for _ in 0..20 {
        let t0 = Instant::now();
        size = ex.scrape().len();
        best = best.min(t0.elapsed());
    }
    let bound = if cfg!(debug_assertions) { Duration::from_millis(50) } else { Duration::from_millis(5) };
    eprintln!("GET /metrics ({} KiB): best of 20 {:.2} ms (bound {bound:?})", size >> 10, best.as_secs_f64() * 1000.0);
    assert!(best < bound, "a full /metrics took {best:?} at best");
}
