//! Rotation torture: a writer appends numbered Postfix rejects at 10,000 lines/s
//! while the real `logrotate` rotates the file every few seconds, and the real
//! binary tails it. One run per rotation style:
//!
//! | style | logrotate directives | the writer, like a real logger |
//! |---|---|---|
//! | `create` | `create` | reopens the path when its inode changes (checked before each batch, as syslog reopens after HUP) |
//! | `copytruncate` | `copytruncate` | keeps its `O_APPEND` descriptor for ever |
//! | `compress` | `create`, `compress`, `delaycompress` | reopens on inode change |
//! | `dateext` | `create`, `dateext`, `dateformat -%Y%m%d-%s` | reopens on inode change |
//! | `delete` | `rotate 0`, `nocreate` (the file is renamed and removed) | recreates the missing path |
//!
//! Every line carries one of 61 host names (line number mod 61), so the per-host
//! counters tell a loss from a double count: at the end each host's count must
//! equal what was written for it, exactly, for every style but copytruncate.
//! copytruncate loses the lines written after the exporter's last read and before
//! logrotate's truncate (they are only in the copy): that window is measured, per
//! rotation, and printed; it must not count any line twice either.
//!
//! `cargo test --test torture` runs the short variant (all five styles at once,
//! 5 s each, a rotation every ~1.5 s; under 30 s). The full variant is ignored by
//! default: `cargo test --release --test torture -- --ignored --nocapture` (60 s
//! per style, one style after the other, a rotation every 3–5 s; about 5½ min).
//! `TORTURE_SECS` overrides the full variant's seconds per style.

mod common;

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{Exporter, metric_samples, metric_sum};

/// Distinct host names; a prime, so batches do not line up with it.
const HOSTS: usize = 61;
/// Lines per second the writer keeps up.
const RATE: u64 = 10_000;
/// The writer writes a batch this often.
const TICK: Duration = Duration::from_millis(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Style {
    Create,
    CopyTruncate,
    Compress,
    DateExt,
    Delete,
    /// `create`, but the writer reopens only on "HUP": after logrotate's postrotate
    /// script (50 ms, like `systemctl kill -s HUP rsyslog`) has finished.
    CreateHup,
}

const STYLES: [Style; 5] = [Style::Create, Style::CopyTruncate, Style::Compress, Style::DateExt, Style::Delete];

impl Style {
    fn name(self) -> &'static str {
        match self {
            Style::Create => "create",
            Style::CopyTruncate => "copytruncate",
            Style::Compress => "compress+delaycompress",
            Style::DateExt => "dateext",
            Style::Delete => "delete (rotate 0)",
            Style::CreateHup => "create, reopen on HUP",
        }
    }

    fn directives(self) -> &'static str {
        match self {
            Style::Create => "rotate 5\n    create\n    nocompress",
            Style::CopyTruncate => "rotate 5\n    copytruncate\n    nocompress",
            Style::Compress => "rotate 5\n    create\n    compress\n    delaycompress",
            Style::DateExt => "rotate 5\n    create\n    nocompress\n    dateext\n    dateformat -%Y%m%d-%s",
            Style::Delete => "rotate 0\n    nocreate\n    nocompress",
            Style::CreateHup => {
                "rotate 5\n    create\n    nocompress\n    postrotate\n        sleep 0.05\n    endscript"
            }
        }
    }
}

/// What one run saw.
#[derive(Debug)]
struct Report {
    style: Style,
    secs: f64,
    written: u64,
    counted: u64,
    rotations: u64,
    /// Hosts whose count is above what was written for them (double counts).
    over: Vec<(String, u64, u64)>,
    /// Hosts whose count is below what was written for them (losses).
    under: u64,
    read_errors: f64,
    stderr_rotated: usize,
    stderr_truncated: usize,
    /// Truncations after which the rest was read from logrotate's copy.
    stderr_copies: usize,
}

impl Report {
    fn lost(&self) -> u64 {
        self.written.saturating_sub(self.counted)
    }

    fn print(&self) {
        let per_rotation = if self.rotations > 0 { self.lost() as f64 / self.rotations as f64 } else { 0.0 };
        eprintln!(
            "torture {:<24} {:>5.1}s written {:>7} counted {:>7} lost {:>5} double {:>3} rotations {:>3} \
             lost/rotation {:>7.1} (= {:.1} ms of writing) | exporter saw {} rotations, {} truncations, {} copies read",
            self.style.name(),
            self.secs,
            self.written,
            self.counted,
            self.lost(),
            self.over.len(),
            self.rotations,
            per_rotation,
            per_rotation * 1000.0 / RATE as f64,
            self.stderr_rotated,
            self.stderr_truncated,
            self.stderr_copies,
        );
    }
}

fn host(i: u64) -> String {
    format!("mx{:02}", i % HOSTS as u64)
}

/// One numbered relay-denied reject, exactly as Postfix's smtpd logs it.
fn line(i: u64) -> String {
    format!(
        "Mar  1 00:{:02}:{:02} {} postfix/smtpd[{}]: NOQUEUE: reject: RCPT from unknown[198.51.100.{}]: 554 5.7.1 <u{i}@nmrc.org>: Relay access denied; from=<s{i}@spam.example> to=<u{i}@nmrc.org> proto=ESMTP helo=<h{i}.example>\n",
        (i / 60) % 60,
        i % 60,
        host(i),
        10_000 + i % 50_000,
        1 + i % 250,
    )
}

/// The writer: paced batches, reopening the way the style's logger would.
struct Writer {
    path: PathBuf,
    reopen: bool,
    /// Reopen when this changes (HUP), instead of on an inode change.
    hup: Option<(Arc<AtomicU64>, u64)>,
    file: Option<File>,
    ino: u64,
    written: u64,
    per_host: Vec<u64>,
}

impl Writer {
    fn open(&mut self) {
        let f = OpenOptions::new().create(true).append(true).open(&self.path).expect("open the log for append");
        self.ino = f.metadata().expect("fstat the log").ino();
        self.file = Some(f);
    }

    fn batch(&mut self, n: u64) {
        if let Some((signal, seen)) = &mut self.hup {
            let now = signal.load(Ordering::SeqCst);
            if now != *seen {
                *seen = now;
                self.open();
            }
        } else if self.reopen {
            // as syslog after HUP: a new file at the path (or none) means reopen
            let current = std::fs::metadata(&self.path).map(|m| m.ino()).ok();
            if current != Some(self.ino) {
                self.open();
            }
        }
        if self.file.is_none() {
            self.open();
        }
        let mut buf = String::with_capacity(n as usize * 200);
        for _ in 0..n {
            buf.push_str(&line(self.written));
            self.per_host[(self.written % HOSTS as u64) as usize] += 1;
            self.written += 1;
        }
        // one write per batch: a batch never straddles a reopen
        self.file.as_mut().unwrap().write_all(buf.as_bytes()).expect("append to the log");
    }
}

fn logrotate(dir: &Path, log: &Path, style: Style) {
    let conf = dir.join("logrotate.conf");
    if !conf.exists() {
        std::fs::write(&conf, format!("{} {{\n    {}\n    missingok\n}}\n", log.display(), style.directives()))
            .unwrap();
        std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let out = Command::new("logrotate")
        .arg("-f")
        .arg("-s")
        .arg(dir.join("logrotate.state"))
        .arg(&conf)
        .output()
        .expect("run logrotate (Debian package logrotate)");
    assert!(
        out.status.success(),
        "logrotate ({}) failed: {}{}",
        style.name(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn counted_per_host(text: &str) -> Vec<(String, u64)> {
    let mut out: Vec<(String, u64)> = metric_samples(text, "mailroute_smtp_rejects_total")
        .into_iter()
        .map(|(labels, v)| (labels.get("host").cloned().unwrap_or_default(), v as u64))
        .collect();
    out.sort();
    out
}

/// Runs one style for `secs` seconds with a rotation every `every` (± a random
/// quarter, so rotations do not line up with the exporter's 100 ms polls).
fn run(style: Style, secs: f64, every: Duration) -> Report {
    let dir = tempfile::tempdir().unwrap();
    // logrotate refuses to rotate in a directory that others may write to
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let log = dir.path().join("mail.log");
    File::create(&log).unwrap();
    let cfg = dir.path().join("mailroute.toml");
    std::fs::write(&cfg, "[maillog]\nmax_hosts = 64\nlocal_domains = [\"nmrc.org\"]\n").unwrap();
    let ex = Exporter::start(&[
        "serve",
        &format!("--config.file={}", cfg.display()),
        &format!("--maillog.path={}", log.display()),
        "--maillog.start=beginning",
    ]);

    let stop = Arc::new(AtomicBool::new(false));
    let hup = Arc::new(AtomicU64::new(0));
    let writer = {
        let stop = stop.clone();
        let hup = (style == Style::CreateHup).then(|| (hup.clone(), 0));
        let log = log.clone();
        std::thread::spawn(move || {
            let mut w = Writer {
                path: log,
                reopen: style != Style::CopyTruncate,
                hup,
                file: None,
                ino: 0,
                written: 0,
                per_host: vec![0; HOSTS],
            };
            let start = Instant::now();
            let mut next = start;
            while !stop.load(Ordering::Relaxed) {
                let due = (start.elapsed().as_secs_f64() * RATE as f64) as u64;
                if due > w.written {
                    w.batch((due - w.written).min(RATE / 10));
                }
                next += TICK;
                if let Some(d) = next.checked_duration_since(Instant::now()) {
                    std::thread::sleep(d);
                }
            }
            (w.written, w.per_host, start.elapsed().as_secs_f64())
        })
    };

    let started = Instant::now();
    let mut rotations = 0u64;
    let mut rng = fastrand::Rng::with_seed(style as u64 + 7);
    loop {
        let jitter = every.as_secs_f64() * (0.75 + rng.f64() * 0.5);
        std::thread::sleep(Duration::from_secs_f64(jitter));
        if started.elapsed().as_secs_f64() + 0.2 >= secs {
            break;
        }
        logrotate(dir.path(), &log, style);
        hup.fetch_add(1, Ordering::SeqCst);
        rotations += 1;
    }
    let remaining = secs - started.elapsed().as_secs_f64();
    if remaining > 0.0 {
        std::thread::sleep(Duration::from_secs_f64(remaining));
    }
    stop.store(true, Ordering::Relaxed);
    let (written, per_host, wsecs) = writer.join().expect("the writer thread");

    // wait for the count: every line (then 300 ms more, for a double count to
    // show), or for copytruncate no change for a second (the window's lines are
    // gone for good); after 30 s, whatever was counted is checked
    let mut last = -1.0;
    let mut stable_since = Instant::now();
    let mut complete_since: Option<Instant> = None;
    let deadline = Instant::now() + Duration::from_secs(30);
    let text = loop {
        let text = ex.scrape();
        let now = metric_sum(&text, "mailroute_smtp_rejects_total", &[]);
        if now != last {
            last = now;
            stable_since = Instant::now();
        }
        if now as u64 >= written {
            complete_since.get_or_insert_with(Instant::now);
        }
        let done = match (style, complete_since) {
            (_, Some(t)) => t.elapsed() > Duration::from_millis(300),
            (Style::CopyTruncate, None) => stable_since.elapsed() > Duration::from_secs(1),
            _ => false,
        };
        if done || Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(50));
    };

    let counted_hosts = counted_per_host(&text);
    let counted: u64 = counted_hosts.iter().map(|(_, n)| n).sum();
    let mut over = Vec::new();
    let mut under = 0;
    for (h, n) in &counted_hosts {
        let idx: usize = h.trim_start_matches("mx").parse().unwrap_or_else(|_| panic!("unexpected host label {h:?}"));
        let want = per_host[idx];
        if *n > want {
            over.push((h.clone(), *n, want));
        } else if *n < want {
            under += 1;
        }
    }
    let stderr = ex.stderr();
    if counted != written {
        let tail: String = stderr.chars().rev().take(4000).collect::<Vec<_>>().into_iter().rev().collect();
        eprintln!("{}: the exporter's stderr (last 4,000 characters):\n{tail}", style.name());
    }
    Report {
        style,
        secs: wsecs,
        written,
        counted,
        rotations,
        over,
        under,
        read_errors: metric_sum(&text, "mailroute_log_read_errors_total", &[]),
        // a generation rotated away between two reads is read whole, and said so
        stderr_rotated: stderr.matches("log rotated").count() + stderr.matches("never seen at the path").count(),
        stderr_truncated: stderr.matches("log truncated").count(),
        stderr_copies: stderr.matches("from its rotated copy").count(),
    }
}

fn check(r: &Report) {
    r.print();
    assert!(r.rotations >= 2, "{}: only {} rotations", r.style.name(), r.rotations);
    assert!(r.over.is_empty(), "{}: lines counted twice (host, counted, written): {:?}", r.style.name(), r.over);
    assert_eq!(r.read_errors, 0.0, "{}: read errors", r.style.name());
    if r.style == Style::CopyTruncate {
        // the window is lines written since the exporter's last poll (100 ms), at
        // most a poll interval's worth per rotation, plus logrotate's copy time
        let bound = r.rotations * RATE / 4;
        assert!(r.lost() <= bound, "copytruncate lost {} lines in {} rotations (> {bound})", r.lost(), r.rotations);
        assert!(r.stderr_truncated as u64 >= r.rotations / 2, "the exporter noticed few truncations");
    } else {
        assert_eq!(
            r.counted,
            r.written,
            "{}: counted {} of {} lines ({} hosts short)",
            r.style.name(),
            r.counted,
            r.written,
            r.under
        );
        assert!(r.stderr_rotated as u64 >= r.rotations, "{}: the exporter noticed fewer rotations", r.style.name());
    }
}

fn print_summary(reports: &[Report]) {
    eprintln!("\nstyle                     lines written  lost  double  rotations  lost per rotation");
    for r in reports {
        eprintln!(
            "{:<25} {:>13} {:>5} {:>7} {:>10} {:>18.1}",
            r.style.name(),
            r.written,
            r.lost(),
            r.over.len(),
            r.rotations,
            if r.rotations > 0 { r.lost() as f64 / r.rotations as f64 } else { 0.0 }
        );
    }
}

/// The CI variant: all styles at once, 5 s each.
#[test]
fn rotation_torture_short() {
    let reports: Vec<Report> = std::thread::scope(|s| {
        let handles: Vec<_> =
            STYLES.iter().map(|&st| s.spawn(move || run(st, 5.0, Duration::from_millis(1500)))).collect();
        handles.into_iter().map(|h| h.join().expect("a style's run")).collect()
    });
    print_summary(&reports);
    for r in &reports {
        check(r);
    }
}

/// The full torture: 60 s per style, one after the other.
#[test]
#[ignore = "about 5.5 minutes; run with --ignored (see the file's header)"]
fn rotation_torture_full() {
    let secs: f64 = std::env::var("TORTURE_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(60.0);
    let reports: Vec<Report> = STYLES.iter().map(|&st| run(st, secs, Duration::from_secs(4))).collect();
    print_summary(&reports);
    for r in &reports {
        check(r);
    }
}

/// A syslog daemon goes on writing to the renamed file until its HUP arrives. Lines
/// written there after the exporter has switched to the new file must still be
/// read (a grace period on the rotated file, like fluent-bit's `rotate_wait`).
#[test]
fn rotation_torture_reopen_on_hup() {
    let secs: f64 = std::env::var("TORTURE_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(5.0);
    let r = run(Style::CreateHup, secs, Duration::from_millis(1500));
    print_summary(std::slice::from_ref(&r));
    check(&r);
}

/// The minimal reproducer of the HUP window, on the tailer alone: logrotate renames
/// the file and creates a new one; the exporter polls and switches; the syslog
/// daemon, not yet HUPed, writes one more line to the renamed file; then it reopens
/// and writes to the new file. Both lines must be read.
#[test]
fn rotated_file_written_after_the_switch_is_still_read() {
    use mailroute_exporter::config::Start;
    use mailroute_exporter::maillog::tail::FileTail;

    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("mail.log");
    let rotated = dir.path().join("mail.log.1");
    let append = |path: &Path, s: &str| {
        OpenOptions::new().create(true).append(true).open(path).unwrap().write_all(s.as_bytes()).unwrap()
    };
    let poll = |t: &mut FileTail| {
        let mut lines = Vec::new();
        t.poll(&mut |l, _| lines.push(String::from_utf8_lossy(l).into_owned()), &mut |_| {});
        lines
    };
    append(&p, "a\n");
    let mut t = FileTail::new(&p, Start::Beginning);
    assert_eq!(poll(&mut t), ["a"]);
    // the syslog daemon holds this descriptor until its HUP
    let mut old = OpenOptions::new().append(true).open(&p).unwrap();
    std::fs::rename(&p, &rotated).unwrap();
    File::create(&p).unwrap();
    assert_eq!(poll(&mut t), Vec::<String>::new(), "nothing new yet");
    old.write_all(b"b\n").unwrap(); // before the HUP: still the old file
    drop(old);
    append(&p, "c\n"); // after the HUP: the new file
    let mut got = poll(&mut t);
    got.extend(poll(&mut t));
    got.sort();
    assert_eq!(got, ["b", "c"], "the line written to the rotated file after the switch was lost");
}
