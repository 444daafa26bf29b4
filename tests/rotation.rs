//! Rotation: the real binary follows a log while it is rotated by the real
//! `logrotate` (rename + create, and copytruncate), deleted and recreated by hand,
//! and while it does not exist yet at startup.
//!
//! A writer appends numbered reject lines in batches and rotates between batches,
//! after the exporter has counted every line so far (so the test is deterministic:
//! copytruncate's loss window — lines written between logrotate's copy and its
//! truncate — is not exercised here). At the end the reject count must equal the
//! lines written exactly: none lost, none counted twice.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Exporter, append, metric_value};

const WAIT: Duration = Duration::from_secs(5);
const BATCHES: usize = 4;
const PER_BATCH: usize = 150;

struct Lab {
    dir: tempfile::TempDir,
    log: PathBuf,
    written: usize,
}

impl Lab {
    fn new() -> Lab {
        let dir = tempfile::tempdir().unwrap();
        // logrotate refuses a parent directory that others may write to
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let log = dir.path().join("mail.log");
        Lab { dir, log, written: 0 }
    }

    /// Appends `n` numbered Postfix relay-denied rejects for nmrc.org (one write per
    /// line, as syslog daemons write).
    fn write_batch(&mut self, n: usize) {
        for _ in 0..n {
            self.written += 1;
            let i = self.written;
            let line = format!(
                "May 28 08:30:{:02} talon postfix/smtpd[{}]: NOQUEUE: reject: RCPT from unknown[198.51.100.{}]: 554 5.7.1 <u{i}@nmrc.org>: Relay access denied; from=<s{i}@spam.example> to=<u{i}@nmrc.org> proto=ESMTP helo=<h{i}>\n",
                i % 60,
                4000 + i % 1000,
                i % 250
            );
            append(&self.log, line.as_bytes());
        }
    }

    /// Runs the real logrotate with `directive` (`create` or `copytruncate`).
    fn logrotate(&self, directive: &str) {
        let conf = self.dir.path().join("logrotate.conf");
        std::fs::write(
            &conf,
            format!("{} {{\n    rotate 5\n    {directive}\n    missingok\n    nocompress\n}}\n", self.log.display()),
        )
        .unwrap();
        std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(0o644)).unwrap();
        let state = self.dir.path().join("logrotate.state");
        let out = Command::new("logrotate")
            .arg("-f")
            .arg("-s")
            .arg(&state)
            .arg(&conf)
            .output()
            .expect("run logrotate (Debian package logrotate)");
        assert!(
            out.status.success(),
            "logrotate {directive} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(self.dir.path().join("mail.log.1").exists(), "logrotate made no mail.log.1");
    }
}

fn start(log: &Path, start: &str) -> Exporter {
    let cfg = log.with_file_name("mailroute.toml");
    std::fs::write(&cfg, "[maillog]\nlocal_domains = [\"nmrc.org\"]\n").unwrap();
    Exporter::start(&[
        "serve",
        &format!("--config.file={}", cfg.display()),
        &format!("--maillog.path={}", log.display()),
        &format!("--maillog.start={start}"),
    ])
}

fn rejects(text: &str) -> Option<f64> {
    metric_value(
        text,
        "mailroute_smtp_rejects_total",
        &[("host", "talon"), ("mta", "postfix"), ("stage", "rcpt"), ("reason", "relay_denied"), ("class", "permanent")],
    )
}

/// Waits until the exporter has counted every line written so far.
fn wait_counted(ex: &Exporter, lab: &Lab) -> String {
    let want = lab.written as f64;
    ex.wait_for(|t| rejects(t).unwrap_or(0.0) >= want, WAIT)
}

/// Waits until the exporter's stderr contains `needle` `times` times.
fn wait_stderr(ex: &Exporter, needle: &str, times: usize) {
    let deadline = Instant::now() + WAIT;
    while ex.stderr().matches(needle).count() < times {
        assert!(Instant::now() < deadline, "no {times}× {needle:?} on stderr:\n{}", ex.stderr());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The end state: exactly the lines written, each a misroute; no read error.
fn check_final(ex: &Exporter, lab: &Lab) {
    // give a double count the chance to show before looking
    std::thread::sleep(Duration::from_millis(300));
    let text = wait_counted(ex, lab);
    let want = (BATCHES * PER_BATCH) as f64;
    assert_eq!(lab.written as f64, want);
    assert_eq!(rejects(&text), Some(want), "rejects after {BATCHES} batches; stderr:\n{}", ex.stderr());
    assert_eq!(
        metric_value(&text, "mailroute_misroutes_total", &[("host", "talon"), ("domain", "nmrc.org")]),
        Some(want)
    );
    let source = lab.log.display().to_string();
    assert_eq!(
        metric_value(&text, "mailroute_log_lines_total", &[("source", &source), ("outcome", "reject")]),
        Some(want)
    );
    assert_eq!(metric_value(&text, "mailroute_log_read_errors_total", &[("source", &source)]), Some(0.0));
}

#[test]
fn logrotate_create() {
    let mut lab = Lab::new();
    lab.write_batch(PER_BATCH);
    let ex = start(&lab.log, "beginning");
    for batch in 1..BATCHES {
        wait_counted(&ex, &lab);
        lab.logrotate("create");
        lab.write_batch(PER_BATCH);
        wait_stderr(&ex, "log rotated", batch);
    }
    check_final(&ex, &lab);
    assert!(lab.dir.path().join("mail.log.3").exists(), "three rotations kept");
}

#[test]
fn logrotate_copytruncate() {
    let mut lab = Lab::new();
    lab.write_batch(PER_BATCH);
    let ex = start(&lab.log, "beginning");
    for batch in 1..BATCHES {
        wait_counted(&ex, &lab);
        lab.logrotate("copytruncate");
        // The file keeps its inode: the exporter notices the truncation from the size
        // dropping below its read position. Writing the next batch before it polled
        // could grow the file past that position again (every tail -F has this
        // window); this test waits for the notice so it stays deterministic.
        wait_stderr(&ex, "log truncated", batch);
        lab.write_batch(PER_BATCH);
    }
    check_final(&ex, &lab);
    let copied = std::fs::read_to_string(lab.dir.path().join("mail.log.1")).unwrap();
    assert_eq!(copied.lines().count(), PER_BATCH, "the last copy holds one batch");
}

#[test]
fn delete_and_recreate() {
    let mut lab = Lab::new();
    lab.write_batch(PER_BATCH);
    let ex = start(&lab.log, "beginning");
    for batch in 1..BATCHES {
        wait_counted(&ex, &lab);
        std::fs::remove_file(&lab.log).unwrap();
        // a poll while the path is missing keeps the old file open and counts nothing twice
        std::thread::sleep(Duration::from_millis(250));
        lab.write_batch(PER_BATCH);
        wait_stderr(&ex, "log rotated", batch);
    }
    check_final(&ex, &lab);
}

#[test]
fn missing_at_startup() {
    let mut lab = Lab::new();
    // start = end applies only to a file present at startup: this one is read from
    // its first line when it appears
    let ex = start(&lab.log, "end");
    let deadline = Instant::now() + WAIT;
    while ex.get("/-/ready").status != 200 {
        assert!(Instant::now() < deadline, "not ready while waiting for the file");
        std::thread::sleep(Duration::from_millis(20));
    }
    let status: serde_json::Value = serde_json::from_slice(&ex.get("/api/v1/status").body).unwrap();
    assert_eq!(status["sources"][0]["state"], "waiting", "{status}");
    std::thread::sleep(Duration::from_millis(250));
    for _ in 0..BATCHES {
        lab.write_batch(PER_BATCH);
        wait_counted(&ex, &lab);
    }
    check_final(&ex, &lab);
}

/// A log whose directory does not exist yet: no inotify watch can be set up, so the
/// source polls; it says so once (not at every retry), and reads the file when the
/// directory and the file appear.
#[test]
fn missing_directory_is_polled_and_said_once() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("later").join("mail.log");
    let cfg = dir.path().join("mailroute.toml");
    std::fs::write(&cfg, "[maillog]\nlocal_domains = [\"nmrc.org\"]\n").unwrap();
    let ex = Exporter::start(&[
        "serve",
        &format!("--config.file={}", cfg.display()),
        &format!("--maillog.path={}", log.display()),
    ]);
    // ten polls at least
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(ex.stderr().matches("no file events for this directory").count(), 1, "{}", ex.stderr());
    std::fs::create_dir(log.parent().unwrap()).unwrap();
    append(
        &log,
        b"Mar  1 00:00:01 talon postfix/smtpd[1]: NOQUEUE: reject: RCPT from unknown[198.51.100.1]: 554 5.7.1 <u@nmrc.org>: Relay access denied; from=<s@spam.example> to=<u@nmrc.org> proto=ESMTP helo=<h.example>\n",
    );
    ex.wait_for(|t| rejects(t) == Some(1.0), WAIT);
}
