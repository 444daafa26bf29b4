//! The state file (`[maillog] state_file`, SPEC §7.1) against the real binary:
//! `kill -9` while lines are written and logrotate renames the log loses nothing,
//! counts nothing twice and never shows a scraper a lower counter; a rotation while
//! the exporter is down is followed; a corrupt state file is moved aside and counted.
//! The timed version (5,000 lines/s, kill every 3 s, rotation every 7 s) is
//! `bench/restart.sh`; this one is short enough for CI.

mod common;

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Exporter, append, metric_samples, metric_sum, metric_value};

const HOSTS: u64 = 13;

/// One numbered relay-denied reject, as Postfix's smtpd logs it.
fn line(i: u64) -> String {
    format!(
        "Mar  1 00:{:02}:{:02} mx{:02} postfix/smtpd[{}]: NOQUEUE: reject: RCPT from unknown[198.51.100.{}]: 554 5.7.1 <u{i}@nmrc.org>: Relay access denied; from=<s{i}@spam.example> to=<u{i}@nmrc.org> proto=ESMTP helo=<h{i}.example>\n",
        (i / 60) % 60,
        i % 60,
        i % HOSTS,
        10_000 + i % 50_000,
        1 + i % 250,
    )
}

fn lines(from: u64, to: u64) -> String {
    (from..to).map(line).collect()
}

fn per_host(text: &str) -> BTreeMap<String, u64> {
    metric_samples(text, "mailroute_smtp_rejects_total")
        .into_iter()
        .map(|(l, v)| (l.get("host").cloned().unwrap_or_default(), v as u64))
        .collect()
}

fn want_per_host(written: u64) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for i in 0..written {
        *m.entry(format!("mx{:02}", i % HOSTS)).or_insert(0) += 1;
    }
    m
}

struct Setup {
    dir: tempfile::TempDir,
    log: PathBuf,
    state: PathBuf,
    cfg: PathBuf,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    // logrotate refuses to rotate in a directory that others may write to
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let log = dir.path().join("mail.log");
    let state = dir.path().join("state").join("mailroute.state");
    std::fs::create_dir(dir.path().join("state")).unwrap();
    let cfg = dir.path().join("mailroute.toml");
    std::fs::write(
        &cfg,
        format!(
            "[maillog]\npaths = [\"{}\"]\nstart = \"beginning\"\nstate_file = \"{}\"\nlocal_domains = [\"nmrc.org\"]\n",
            log.display(),
            state.display()
        ),
    )
    .unwrap();
    Setup { dir, log, state, cfg }
}

impl Setup {
    fn start(&self) -> Exporter {
        Exporter::start(&["serve", &format!("--config.file={}", self.cfg.display())])
    }

    fn logrotate(&self) {
        let conf = self.dir.path().join("logrotate.conf");
        if !conf.exists() {
            std::fs::write(
                &conf,
                format!("{} {{\n    rotate 20\n    create\n    nocompress\n    missingok\n}}\n", self.log.display()),
            )
            .unwrap();
        }
        let out = Command::new("logrotate")
            .arg("-f")
            .arg("-s")
            .arg(self.dir.path().join("logrotate.state"))
            .arg(&conf)
            .output()
            .expect("run logrotate (Debian package logrotate)");
        assert!(out.status.success(), "logrotate failed: {}", String::from_utf8_lossy(&out.stderr));
    }
}

fn kill9(ex: &mut Exporter) {
    ex.signal(libc::SIGKILL);
    assert!(ex.wait_exit(Duration::from_secs(5)).is_some(), "the exporter did not die");
}

/// A scraper that polls `/metrics` of whichever exporter runs and records every
/// total it saw: a decrease is a failure.
struct Scraper {
    addr: Arc<Mutex<Option<std::net::SocketAddr>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<(u64, Vec<String>)>>,
}

impl Scraper {
    fn start(every: Duration) -> Scraper {
        let addr: Arc<Mutex<Option<std::net::SocketAddr>>> = Arc::new(Mutex::new(None));
        let stop = Arc::new(AtomicBool::new(false));
        let (a, s) = (addr.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let agent: ureq::Agent = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(Duration::from_secs(5)))
                .build()
                .into();
            let mut best: BTreeMap<String, u64> = BTreeMap::new();
            let mut scrapes = 0;
            let mut decreases = Vec::new();
            while !s.load(Ordering::Relaxed) {
                let target = *a.lock().unwrap();
                if let Some(target) = target
                    && let Ok(mut r) = agent.get(&format!("http://{target}/metrics")).call()
                    && r.status() == 200
                    && let Ok(text) = r.body_mut().read_to_string()
                {
                    scrapes += 1;
                    let mut series: BTreeMap<String, u64> =
                        per_host(&text).into_iter().map(|(h, n)| (format!("rejects {h}"), n)).collect();
                    for (labels, v) in metric_samples(&text, "mailroute_log_lines_total") {
                        series.insert(format!("lines {labels:?}"), v as u64);
                    }
                    for (k, v) in series {
                        let was = best.entry(k.clone()).or_insert(0);
                        if v < *was {
                            decreases.push(format!("{k}: {was} -> {v}"));
                        }
                        *was = (*was).max(v);
                    }
                }
                std::thread::sleep(every);
            }
            (scrapes, decreases)
        });
        Scraper { addr, stop, thread: Some(thread) }
    }

    fn point_at(&self, ex: Option<&Exporter>) {
        *self.addr.lock().unwrap() = ex.map(Exporter::addr);
    }

    fn finish(mut self) -> (u64, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap()
    }
}

#[test]
fn kill_9_while_writing_and_rotating_loses_nothing_and_counts_nothing_twice() {
    let s = setup();
    File::create(&s.log).unwrap();
    let written = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    // the writer: 2,000 lines/s in batches, reopening when logrotate made a new file
    let writer = {
        let (log, written, stop) = (s.log.clone(), written.clone(), stop.clone());
        std::thread::spawn(move || {
            let open = |p: &Path| OpenOptions::new().create(true).append(true).open(p).unwrap();
            let mut f = open(&log);
            let mut ino = f.metadata().unwrap().ino();
            let start = Instant::now();
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                if std::fs::metadata(&log).map(|m| m.ino()).ok() != Some(ino) {
                    f = open(&log);
                    ino = f.metadata().unwrap().ino();
                }
                let due = (start.elapsed().as_secs_f64() * 2000.0) as u64;
                if due > n {
                    f.write_all(lines(n, due).as_bytes()).unwrap();
                    n = due;
                    written.store(n, Ordering::SeqCst);
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            n
        })
    };
    let scraper = Scraper::start(Duration::from_millis(50));
    let mut ex = s.start();
    let mut logs = String::new();
    scraper.point_at(Some(&ex));
    for round in 0..6 {
        std::thread::sleep(Duration::from_millis(700 + 150 * (round % 3)));
        if round % 2 == 1 {
            s.logrotate();
        }
        scraper.point_at(None);
        kill9(&mut ex);
        logs.push_str(&ex.stderr());
        // sometimes a rotation while the exporter is down
        if round % 3 == 2 {
            s.logrotate();
        }
        ex = s.start();
        scraper.point_at(Some(&ex));
    }
    stop.store(true, Ordering::Relaxed);
    let total = writer.join().unwrap();
    let want = want_per_host(total);
    let deadline = Instant::now() + Duration::from_secs(30);
    while (metric_sum(&ex.scrape(), "mailroute_smtp_rejects_total", &[]) as u64) < total && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    // a double count would show a little later
    std::thread::sleep(Duration::from_millis(500));
    let text = ex.scrape();
    let (scrapes, decreases) = scraper.finish();
    assert_eq!(
        per_host(&text),
        want,
        "per-host counts after 6 kill -9 (written {total}, counted {}); stderr:\n{}",
        metric_sum(&text, "mailroute_smtp_rejects_total", &[]),
        logs + &ex.stderr()
    );
    assert!(decreases.is_empty(), "a scraper saw counters go down: {decreases:?}");
    assert!(scrapes > 20, "the scraper hardly scraped ({scrapes})");
    assert_eq!(metric_value(&text, "mailroute_state_file_errors_total", &[]), Some(0.0));
    assert!(ex.stderr().contains("counters and positions restored"), "{}", ex.stderr());
}

#[test]
fn rename_rotation_while_down_is_followed_and_counters_come_back() {
    let s = setup();
    append(&s.log, lines(0, 100).as_bytes());
    let mut ex = s.start();
    ex.wait_for_value(
        "mailroute_misroutes_total",
        &[("host", "mx00"), ("domain", "nmrc.org")],
        8.0,
        Duration::from_secs(10),
    );
    // a clean stop saves too; here kill -9 right after a scrape, which was saved
    kill9(&mut ex);
    append(&s.log, lines(100, 150).as_bytes());
    std::fs::rename(&s.log, s.dir.path().join("mail.log.1")).unwrap();
    append(&s.log, lines(150, 200).as_bytes());
    let ex = s.start();
    let text = ex.wait_for(|t| metric_sum(t, "mailroute_smtp_rejects_total", &[]) >= 200.0, Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(300));
    let text = {
        let again = ex.scrape();
        if again.is_empty() { text } else { again }
    };
    assert_eq!(per_host(&text), want_per_host(200), "stderr:\n{}", ex.stderr());
    assert_eq!(
        metric_value(&text, "mailroute_log_lines_total", &[("source", s.log.to_str().unwrap()), ("outcome", "reject")]),
        Some(200.0)
    );
    assert!(ex.stderr().contains("rotated=true"), "{}", ex.stderr());
}

#[test]
fn a_corrupt_state_file_is_moved_aside_counted_and_the_exporter_starts_fresh() {
    let s = setup();
    std::fs::write(&s.state, b"{\"format\": \"mailroute_exporter state\", \"version\": 1, \"rejects\": [{\"host\"")
        .unwrap();
    append(&s.log, lines(0, 10).as_bytes());
    let mut ex = s.start();
    let text = ex.wait_for(|t| metric_sum(t, "mailroute_smtp_rejects_total", &[]) >= 10.0, Duration::from_secs(10));
    assert_eq!(metric_value(&text, "mailroute_state_file_errors_total", &[]), Some(1.0));
    assert!(ex.stderr().contains("the state file is unusable"), "{}", ex.stderr());
    let aside = s.dir.path().join("state").join("mailroute.state.corrupt");
    assert!(aside.exists(), "moved aside");
    // and a fresh, valid state file replaced it (saved by the scrapes above)
    ex.stop();
    let saved = std::fs::read_to_string(&s.state).unwrap();
    assert!(saved.contains("\"format\":\"mailroute_exporter state\""), "{saved}");
    // the next start restores it without an error
    let ex = s.start();
    let text = ex.wait_for(|t| metric_sum(t, "mailroute_smtp_rejects_total", &[]) >= 10.0, Duration::from_secs(10));
    assert_eq!(metric_value(&text, "mailroute_state_file_errors_total", &[]), Some(0.0));
    assert_eq!(metric_sum(&text, "mailroute_smtp_rejects_total", &[]), 10.0);
}

#[test]
fn syslog_max_connections_caps_each_tcp_listener() {
    let dir = tempfile::tempdir().unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        format!("[maillog]\nsyslog_listen = [\"tcp://127.0.0.1:{port}\"]\nsyslog_max_connections = 3\n"),
    )
    .unwrap();
    let ex = Exporter::start(&["serve", &format!("--config.file={}", cfg.display())]);
    let source = format!("syslog:tcp://127.0.0.1:{port}");
    let mut held = Vec::new();
    for i in 0..3 {
        let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        c.write_all(line(i).as_bytes()).unwrap();
        held.push(c);
    }
    ex.wait_for_value(
        "mailroute_log_lines_total",
        &[("source", &source), ("outcome", "reject")],
        3.0,
        Duration::from_secs(10),
    );
    let mut fourth = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    fourth.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut byte = [0u8; 1];
    assert_eq!(std::io::Read::read(&mut fourth, &mut byte).unwrap_or(0), 0, "the fourth connection is closed");
    let text =
        ex.wait_for_value("mailroute_log_read_errors_total", &[("source", &source)], 1.0, Duration::from_secs(5));
    assert_eq!(
        metric_value(&text, "mailroute_log_lines_total", &[("source", &source), ("outcome", "reject")]),
        Some(3.0)
    );
    drop(held);
}

/// One SIGTERM ends every source (a file, a UDP and a TCP syslog listener) through
/// the one shutdown token, and the state file is saved after they all ended: the
/// unterminated last line of a TCP sender, counted only when the listener stops,
/// is in the saved counters, and the file is not read again at the next start.
#[test]
fn one_sigterm_stops_every_source_and_the_last_save_holds_what_they_read() {
    let s = setup();
    let free = || std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (udp, tcp) = (free(), free());
    std::fs::write(
        &s.cfg,
        format!(
            "[maillog]\npaths = [\"{}\"]\nstart = \"beginning\"\nstate_file = \"{}\"\nlocal_domains = [\"nmrc.org\"]\n\
             syslog_listen = [\"udp://127.0.0.1:{udp}\", \"tcp://127.0.0.1:{tcp}\"]\n",
            s.log.display(),
            s.state.display()
        ),
    )
    .unwrap();
    append(&s.log, lines(0, 10).as_bytes());
    let mut ex = s.start();
    let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    for i in 10..15 {
        tx.send_to(line(i).as_bytes(), ("127.0.0.1", udp)).unwrap();
    }
    let mut sender = std::net::TcpStream::connect(("127.0.0.1", tcp)).unwrap();
    sender.write_all(lines(15, 20).as_bytes()).unwrap();
    // the last line has no newline yet: it counts when the connection or the listener ends
    sender.write_all(line(20).trim_end().as_bytes()).unwrap();
    let text = ex.wait_for(|t| metric_sum(t, "mailroute_smtp_rejects_total", &[]) >= 20.0, Duration::from_secs(10));
    assert_eq!(metric_sum(&text, "mailroute_smtp_rejects_total", &[]), 20.0);
    let t0 = Instant::now();
    let status = ex.stop();
    assert!(status.success(), "exit status {status}; stderr:\n{}", ex.stderr());
    assert!(t0.elapsed() < Duration::from_secs(5), "took {:?} to stop", t0.elapsed());
    drop(sender);
    let ex = s.start();
    let text = ex.scrape();
    assert_eq!(per_host(&text), want_per_host(21), "stderr of the restart:\n{}", ex.stderr());
}

/// What the Exim joiner holds survives `kill -9`: a split entry (`[1/2]` before the
/// kill, `[2/2]` after) counts once, and the reject-log copy of a reject, logged
/// right after the restart, is not counted again.
#[test]
fn a_kill_between_the_parts_of_an_exim_entry_loses_nothing_and_counts_no_copy() {
    let s = setup();
    let relay = "May 28 08:25:35 gw exim[5]: 2026-05-28 08:25:35 H=x [192.0.2.1] F=<s@x.example> rejected RCPT <a@nmrc.org>: relay not permitted\n";
    let part1 = "May 28 08:25:36 gw exim[6]: [1/2] 2026-05-28 08:25:36 H=x [192.0.2.1] F=<s@x.example> rejected RCPT <b@nmrc.org>: Unkno\n";
    let part2 = "May 28 08:25:36 gw exim[6]: [2/2] wn user\n";
    append(&s.log, format!("{part1}{relay}").as_bytes());
    let mut ex = s.start();
    let rejects = |t: &str, reason: &str| {
        metric_value(
            t,
            "mailroute_smtp_rejects_total",
            &[("host", "gw"), ("mta", "exim"), ("stage", "rcpt"), ("reason", reason), ("class", "permanent")],
        )
    };
    // this scrape saved the state: the reject counted, the first part held
    ex.wait_for(|t| rejects(t, "relay_denied") == Some(1.0), Duration::from_secs(10));
    ex.signal(libc::SIGKILL);
    ex.wait_exit(Duration::from_secs(10)).expect("killed");
    // the reject-log copy of the reject, then the rest of the split entry
    append(&s.log, format!("{relay}{part2}").as_bytes());
    let ex = s.start();
    let text = ex.wait_for(|t| rejects(t, "unknown_user") == Some(1.0), Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(300));
    let text = if rejects(&text, "relay_denied") == Some(1.0) { ex.scrape() } else { text };
    assert_eq!(rejects(&text, "relay_denied"), Some(1.0), "the copy is not a second reject; stderr:\n{}", ex.stderr());
    assert_eq!(rejects(&text, "unknown_user"), Some(1.0), "stderr:\n{}", ex.stderr());
}
