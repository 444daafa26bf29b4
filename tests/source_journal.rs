//! The journald source against real journal files.
//!
//! The lab log (`tests/fixtures/samples/lab-mail.log`, real Sendmail, Postfix and Exim
//! output) is turned back into journal entries (host, identifier, pid, message, mail
//! facility), written as journal export format, and made into real `.journal` files
//! by Debian's `systemd-journal-remote`. The exporter follows that directory with the
//! real `journalctl` (`MAILROUTE_JOURNAL_ARGS=--directory=…`), and its counters must
//! equal what `replay` counts on the same lines.
//!
//! The tests set environment variables for the exporter they start; a lock keeps two
//! tests from doing so at once (the child takes its environment when it is spawned).

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{Exporter, fixture, metric_samples, metric_value};
use mailroute_exporter::maillog::envelope;
use serde_json::Value;

/// One boot ID for every entry: since systemd 250, `journalctl --follow` shows the
/// newest boot only.
const BOOT_ID: &str = "5f2c1a0e9b8d4c7fa1e2d3c4b5a69788";
const WAIT: Duration = Duration::from_secs(30);

static ENV_LOCK: Mutex<()> = Mutex::new(());

fn journal_remote() -> PathBuf {
    ["/lib/systemd/systemd-journal-remote", "/usr/lib/systemd/systemd-journal-remote"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("systemd-journal-remote is not installed (Debian package systemd-journal-remote)")
}

/// Removes the variables it set when dropped, even when starting panics.
struct EnvVars<'a>(&'a [(&'a str, String)]);

impl Drop for EnvVars<'_> {
    fn drop(&mut self) {
        for (k, _) in self.0 {
            // SAFETY: called with ENV_LOCK held (see start_with_env).
            unsafe { std::env::remove_var(k) };
        }
    }
}

/// Starts the exporter with extra environment variables.
fn start_with_env(args: &[&str], env: &[(&str, String)]) -> Exporter {
    let _lock = ENV_LOCK.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let _vars = EnvVars(env);
    for (k, v) in env {
        // SAFETY: the lock serialises every environment change of this test binary,
        // and nothing else in it reads the environment through libc meanwhile.
        unsafe { std::env::set_var(k, v) };
    }
    Exporter::start(args)
}

/// A journal entry: its fields in order (values are bytes: MESSAGE may be binary).
#[derive(Clone, Debug)]
struct Entry(Vec<(String, Vec<u8>)>);

impl Entry {
    fn field(&mut self, name: &str, value: &[u8]) -> &mut Entry {
        self.0.push((name.to_string(), value.to_vec()));
        self
    }
}

/// The entry a syslog daemon's line came from: host, identifier, pid, message.
fn entry_of_line(line: &[u8]) -> Entry {
    let env = envelope::parse(line).unwrap_or_else(|| panic!("unreadable line {}", String::from_utf8_lossy(line)));
    let mut e = Entry(Vec::new());
    e.field("_HOSTNAME", env.host.expect("a host"))
        .field("SYSLOG_FACILITY", b"2")
        .field("SYSLOG_IDENTIFIER", env.program)
        .field("_TRANSPORT", b"syslog");
    if let Some(pid) = env.pid {
        e.field("SYSLOG_PID", pid).field("_PID", pid);
    }
    e.field("MESSAGE", env.message);
    e
}

fn lab_lines() -> Vec<Vec<u8>> {
    let text = std::fs::read(fixture("samples/lab-mail.log")).unwrap();
    text.split(|&b| b == b'\n').filter(|l| !l.is_empty()).map(<[u8]>::to_vec).collect()
}

/// The entries of `sources/journal-extra.export` (comments dropped).
fn extra_entries() -> Vec<Entry> {
    let text = std::fs::read_to_string(fixture("sources/journal-extra.export")).unwrap();
    let mut out = Vec::new();
    let mut cur = Entry(Vec::new());
    for line in text.lines().chain(std::iter::once("")) {
        if line.starts_with('#') {
            continue;
        }
        if line.is_empty() {
            if !cur.0.is_empty() {
                out.push(std::mem::replace(&mut cur, Entry(Vec::new())));
            }
            continue;
        }
        let (k, v) = line.split_once('=').unwrap();
        cur.field(k, v.as_bytes());
    }
    out
}

/// A Sendmail reject whose recipient is not UTF-8: journalctl prints its MESSAGE as
/// an array of bytes. (classic line, entry)
fn binary_entry() -> (Vec<u8>, Entry) {
    let msg: &[u8] = b"6AR1Ha2h027999: ruleset=check_rcpt, arg1=<caf\xe9@broken.test>, relay=x.sender.test [127.0.2.17], reject=550 5.7.1 <caf\xe9@broken.test>... Relaying denied. Proper authentication required.";
    let mut line = b"Nov 27 01:20:02 rigor-mortis sm-mta[27999]: ".to_vec();
    line.extend_from_slice(msg);
    (line.clone(), entry_of_line(&line))
}

/// Journal export format; `clock` gives increasing realtime and monotonic stamps
/// across every file of a test, so entries interleave in the order written.
fn export(entries: &[Entry], clock: &mut u64) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        *clock += 1;
        write!(
            out,
            "__REALTIME_TIMESTAMP={}\n__MONOTONIC_TIMESTAMP={}\n_BOOT_ID={BOOT_ID}\n",
            1_795_000_000_000_000 + *clock,
            1_000_000 + *clock
        )
        .unwrap();
        for (k, v) in &e.0 {
            if v.contains(&b'\n') || std::str::from_utf8(v).is_err() {
                // the binary form: name, newline, little-endian 64-bit length, data
                out.extend_from_slice(k.as_bytes());
                out.push(b'\n');
                out.extend_from_slice(&(v.len() as u64).to_le_bytes());
                out.extend_from_slice(v);
                out.push(b'\n');
            } else {
                out.extend_from_slice(k.as_bytes());
                out.push(b'=');
                out.extend_from_slice(v);
                out.push(b'\n');
            }
        }
        out.push(b'\n');
    }
    out
}

/// Writes `entries` as the journal file `dir/name.journal` with systemd-journal-remote.
fn write_journal(dir: &Path, name: &str, entries: &[Entry], clock: &mut u64) {
    let data = export(entries, clock);
    let path = dir.join(format!("{name}.journal"));
    let mut child = Command::new(journal_remote())
        .arg(format!("--output={}", path.display()))
        .arg("--split-mode=none")
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run systemd-journal-remote");
    child.stdin.take().unwrap().write_all(&data).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "systemd-journal-remote failed: {}", String::from_utf8_lossy(&out.stderr));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains(&format!("writing {} entries", entries.len())), "systemd-journal-remote: {said}");
}

fn config(dir: &Path) -> PathBuf {
    let p = dir.join("config.toml");
    std::fs::write(&p, "[maillog]\njournal = true\nlocal_domains = [\"broken.test\"]\n").unwrap();
    p
}

/// `replay --output=json` of `lines` written to a file.
fn replay(dir: &Path, cfg: &Path, lines: &[Vec<u8>]) -> Value {
    let file = dir.join("expected.log");
    let mut data = Vec::new();
    for l in lines {
        data.extend_from_slice(l);
        data.push(b'\n');
    }
    std::fs::write(&file, data).unwrap();
    let (status, out, err) =
        common::run(&["replay", &format!("--config.file={}", cfg.display()), "--output=json", file.to_str().unwrap()]);
    assert!(status.success(), "replay failed: {err}");
    serde_json::from_str(&out).unwrap()
}

fn labels_of(v: &Value, names: &[&str]) -> Vec<(String, String)> {
    names.iter().map(|n| (n.to_string(), v[*n].as_str().unwrap().to_string())).collect()
}

/// The exporter's reject, misroute and accepted counters equal `factor` times those
/// of `replay`, and `source` counted as many lines of each outcome.
fn assert_counts(text: &str, expected: &Value, factor: u64, source: &str) {
    let families = [
        ("rejects", "mailroute_smtp_rejects_total", &["host", "mta", "stage", "reason", "class"][..]),
        ("misroutes", "mailroute_misroutes_total", &["host", "domain"][..]),
        ("accepted", "mailroute_smtp_messages_accepted_total", &["host", "mta"][..]),
    ];
    for (key, metric, names) in families {
        let mut want: BTreeMap<Vec<(String, String)>, u64> = BTreeMap::new();
        for row in expected[key].as_array().unwrap() {
            want.insert(labels_of(row, names), row["count"].as_u64().unwrap() * factor);
        }
        let mut got: BTreeMap<Vec<(String, String)>, u64> = BTreeMap::new();
        for (labels, v) in metric_samples(text, metric) {
            if v > 0.0 {
                got.insert(names.iter().map(|n| (n.to_string(), labels[*n].clone())).collect(), v as u64);
            }
        }
        assert_eq!(got, want, "{metric} differs from replay (x{factor})");
    }
    let mut want_lines: BTreeMap<String, u64> = BTreeMap::new();
    for row in expected["lines"].as_array().unwrap() {
        *want_lines.entry(row["outcome"].as_str().unwrap().to_string()).or_default() +=
            row["count"].as_u64().unwrap() * factor;
    }
    for outcome in ["reject", "accepted", "mta_other", "foreign", "unparsed"] {
        let got = metric_value(text, "mailroute_log_lines_total", &[("source", source), ("outcome", outcome)]);
        assert_eq!(
            got.unwrap_or(0.0) as u64,
            want_lines.get(outcome).copied().unwrap_or(0),
            "lines of outcome {outcome} from {source}"
        );
    }
}

fn journal_lines(text: &str) -> u64 {
    metric_samples(text, "mailroute_log_lines_total")
        .into_iter()
        .filter(|(l, _)| l.get("source").map(String::as_str) == Some("journal"))
        .map(|(_, v)| v as u64)
        .sum()
}

fn read_errors(text: &str) -> u64 {
    metric_value(text, "mailroute_log_read_errors_total", &[("source", "journal")]).unwrap_or(0.0) as u64
}

/// Waits until the exporter logged `what` `n` times.
fn wait_log(ex: &Exporter, what: &str, n: usize) {
    let deadline = Instant::now() + WAIT;
    while ex.stderr().matches(what).count() < n {
        assert!(Instant::now() < deadline, "no {n}× {what:?} in the log:\n{}", ex.stderr());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until the journal source has counted `n` lines; then checks that no more come.
fn wait_lines(ex: &Exporter, n: u64) -> String {
    ex.wait_for(|t| journal_lines(t) >= n, WAIT);
    std::thread::sleep(Duration::from_millis(300));
    let text = ex.scrape();
    assert_eq!(journal_lines(&text), n, "lines counted from the journal; stderr:\n{}", ex.stderr());
    text
}

/// Process ids of the children of `pid`.
fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else { continue };
        // "pid (comm) state ppid ...": comm may hold spaces, so split after the ')'
        let Some(after) = stat.rfind(')').map(|i| &stat[i + 1..]) else { continue };
        if after.split_whitespace().nth(1).and_then(|p| p.parse::<u32>().ok()) == Some(pid) {
            out.push(child);
        }
    }
    out
}

#[test]
fn journal_counts_equal_replay_of_the_same_lines() {
    let tmp = tempfile::tempdir().unwrap();
    let jdir = tmp.path().join("journal");
    std::fs::create_dir(&jdir).unwrap();
    let cfg = config(tmp.path());
    let lab = lab_lines();
    let mut clock = 0;
    // entries present before the exporter starts: it starts at the tail, so they
    // are not counted
    let mut old: Vec<Entry> = lab[..40].iter().map(|l| entry_of_line(l)).collect();
    // the postfix@mx.service instance has logged before: journalctl -F lists it at start
    let mut instance = Entry(Vec::new());
    instance
        .field("_HOSTNAME", b"mx2")
        .field("SYSLOG_IDENTIFIER", b"postlogd")
        .field("_SYSTEMD_UNIT", b"postfix@mx.service")
        .field("_TRANSPORT", b"stdout")
        .field("MESSAGE", b"Nov 27 01:10:00 mx2 postfix-mx/master[4999]: daemon started -- version 3.7.11");
    old.push(instance);
    write_journal(&jdir, "old", &old, &mut clock);

    let mut ex = start_with_env(
        &["serve", &format!("--config.file={}", cfg.display())],
        &[("MAILROUTE_JOURNAL_ARGS", format!("--directory={}", jdir.display()))],
    );
    wait_log(&ex, "following the journal", 1);
    assert!(ex.stderr().contains("at_cursor=true"), "{}", ex.stderr());

    let mut entries: Vec<Entry> = lab.iter().map(|l| entry_of_line(l)).collect();
    entries.extend(extra_entries());
    let (binary_line, binary) = binary_entry();
    entries.push(binary);
    write_journal(&jdir, "new", &entries, &mut clock);

    let mut expected_lines = lab.clone();
    let extra = std::fs::read(fixture("sources/journal-extra.log")).unwrap();
    expected_lines.extend(extra.split(|&b| b == b'\n').filter(|l| !l.is_empty()).map(<[u8]>::to_vec));
    expected_lines.push(binary_line);
    let expected = replay(tmp.path(), &cfg, &expected_lines);

    // sshd and cron entries are not read; everything else is one line each
    let text = wait_lines(&ex, expected_lines.len() as u64);
    assert_counts(&text, &expected, 1, "journal");
    assert_eq!(read_errors(&text), 0, "stderr:\n{}", ex.stderr());
    // the misroute to broken.test in a non-UTF-8 Sendmail line
    assert!(
        metric_value(&text, "mailroute_misroutes_total", &[("host", "rigor-mortis"), ("domain", "broken.test")])
            .unwrap()
            >= 4.0
    );
    assert!(metric_value(&text, "mailroute_log_last_line_timestamp_seconds", &[("source", "journal")]).unwrap() > 0.0);

    let status = ex.get("/api/v1/status").text();
    assert!(status.contains("\"journal\""), "{status}");
    assert!(ex.stop().success());
}

#[test]
fn journalctl_exits_and_kills_are_resumed_from_the_cursor() {
    let tmp = tempfile::tempdir().unwrap();
    let jdir = tmp.path().join("journal");
    std::fs::create_dir(&jdir).unwrap();
    let cfg = config(tmp.path());
    let lab = lab_lines();
    let entries: Vec<Entry> = lab.iter().map(|l| entry_of_line(l)).collect();
    let mut clock = 0;
    write_journal(&jdir, "old", &entries[..5], &mut clock);

    // a journalctl that quits after 150 lines on its first three follows (kill 0 ends
    // the wrapper's process group, journalctl included, once head has its lines)
    let wrapper = tmp.path().join("journalctl-wrapper");
    let log = tmp.path().join("invocations.log");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\n\
             printf '%s\\n' \"$*\" >> '{log}'\n\
             case \" $* \" in\n\
             *' --follow '*)\n\
               if [ \"$(grep -c -- '--follow' '{log}')\" -le 3 ]; then\n\
                 journalctl \"$@\" | (head -n 150; kill 0)\n\
                 exit 0\n\
               fi ;;\n\
             esac\n\
             exec journalctl \"$@\"\n",
            log = log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();

    let mut ex = start_with_env(
        &["serve", &format!("--config.file={}", cfg.display())],
        &[
            ("MAILROUTE_JOURNALCTL", wrapper.display().to_string()),
            ("MAILROUTE_JOURNAL_ARGS", format!("--directory={}", jdir.display())),
        ],
    );
    wait_log(&ex, "following the journal", 1);
    // 1178 entries arrive while journalctl is cut off three times
    write_journal(&jdir, "first", &entries, &mut clock);
    let expected = replay(tmp.path(), &cfg, &lab);
    let text = wait_lines(&ex, lab.len() as u64);
    assert_counts(&text, &expected, 1, "journal");
    assert_eq!(read_errors(&text), 3, "three journalctl runs ended; stderr:\n{}", ex.stderr());
    let invocations = std::fs::read_to_string(&log).unwrap();
    let follows: Vec<&str> = invocations.lines().filter(|l| l.contains("--follow")).collect();
    assert_eq!(follows.len(), 4, "{invocations}");
    assert!(follows.iter().all(|l| l.contains("--cursor=") && l.contains("--no-tail")), "{invocations}");

    // journalctl killed: the next one starts from the cursor
    let jpids = children(ex.pid());
    assert_eq!(jpids.len(), 1, "one journalctl child: {jpids:?}");
    // SAFETY: kill(2) on the journalctl our exporter child started.
    assert_eq!(unsafe { libc::kill(jpids[0] as i32, libc::SIGKILL) }, 0);
    wait_log(&ex, "following the journal", 5);
    // more entries, in another file (as after a rotation)
    write_journal(&jdir, "second", &entries, &mut clock);
    let text = wait_lines(&ex, 2 * lab.len() as u64);
    assert_counts(&text, &expected, 2, "journal");
    assert_eq!(read_errors(&text), 4, "stderr:\n{}", ex.stderr());
    assert!(ex.stop().success());
    // the exporter does not leave journalctl behind
    std::thread::sleep(Duration::from_millis(100));
    assert!(children(ex.pid()).is_empty());
}

#[test]
fn an_empty_journal_then_a_silent_journalctl_lose_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let jdir = tmp.path().join("journal");
    std::fs::create_dir(&jdir).unwrap();
    let cfg = config(tmp.path());
    let lab = lab_lines();
    let entries: Vec<Entry> = lab.iter().map(|l| entry_of_line(l)).collect();
    let mut clock = 0;
    let mut ex = start_with_env(
        &["serve", &format!("--config.file={}", cfg.display())],
        &[
            ("MAILROUTE_JOURNAL_ARGS", format!("--directory={}", jdir.display())),
            ("MAILROUTE_JOURNAL_IDLE_RESTART", "0.5".to_string()),
        ],
    );
    // an empty journal: no cursor at the tail, and journalctl --follow refuses to
    // run ("no such boot"), which is counted and retried with a backoff
    wait_log(&ex, "starting at the tail\" source=journal at_cursor=false", 1);
    ex.wait_for(|t| read_errors(t) >= 1, WAIT);
    // entries appear: read from the beginning, since every one of them is new
    write_journal(&jdir, "a", &entries[..600], &mut clock);
    let text = wait_lines(&ex, 600);
    let errors = read_errors(&text);
    // journalctl silent for 0.5 s is restarted from the cursor, twice at least
    let restarts = ex.stderr().matches("silent for too long").count();
    wait_log(&ex, "silent for too long", restarts + 2);
    write_journal(&jdir, "b", &entries[600..], &mut clock);
    let text = wait_lines(&ex, lab.len() as u64);
    assert_counts(&text, &replay(tmp.path(), &cfg, &lab), 1, "journal");
    assert_eq!(read_errors(&text), errors, "idle restarts are not errors");
    assert!(ex.stop().success());
}

#[test]
fn a_missing_journalctl_is_an_error_that_is_retried() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path());
    let mut ex = start_with_env(
        &["serve", &format!("--config.file={}", cfg.display())],
        &[("MAILROUTE_JOURNALCTL", tmp.path().join("no-such-journalctl").display().to_string())],
    );
    // ready (the source has tried), failing visibly: counted, logged, on the status page
    let text = ex.wait_for(|t| read_errors(t) >= 2, WAIT);
    assert!(read_errors(&text) >= 2);
    assert!(ex.stderr().contains("no-such-journalctl"), "{}", ex.stderr());
    let status = ex.get("/api/v1/status").text();
    assert!(status.contains("no-such-journalctl"), "{status}");
    assert_eq!(ex.get("/-/ready").status, 200);
    assert!(ex.stop().success());
}

/// Processes whose command line is exactly `args`.
fn processes_running(args: &[&str]) -> usize {
    let want: Vec<u8> = args.iter().flat_map(|a| a.bytes().chain(std::iter::once(0))).collect();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().bytes().all(|b| b.is_ascii_digit()))
        .filter(|e| std::fs::read(e.path().join("cmdline")).is_ok_and(|c| c == want))
        .count()
}

#[test]
fn a_journalctl_that_exits_but_leaves_its_output_open() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path());
    let entry = |cursor: &str, pid: u32| {
        format!(
            r#"{{"__CURSOR":"{cursor}","__REALTIME_TIMESTAMP":"1795000000000000","_HOSTNAME":"rigor-mortis","SYSLOG_IDENTIFIER":"sm-mta","SYSLOG_PID":"{pid}","MESSAGE":"6AR1Ha2h0{pid}: ruleset=check_rcpt, arg1=<a@broken.test>, relay=x.sender.test [127.0.2.17], reject=550 5.7.1 <a@broken.test>... Relaying denied. Proper authentication required."}}"#
        )
    };
    // a fake journalctl: the first follow prints one entry and exits, leaving a
    // process that holds its output open; the next, started from that entry's cursor,
    // prints it again (as --cursor does) and a new one
    let fake = tmp.path().join("fake-journalctl");
    let dir = tmp.path().display();
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\n\
             case \" $* \" in *' --follow '*) ;; *) exit 0 ;; esac\n\
             printf '%s\\n' \"$*\" >> '{dir}/invocations'\n\
             if [ ! -e '{dir}/ran' ]; then\n\
               touch '{dir}/ran'\n\
               printf '%s\\n' '{e1}'\n\
               sleep 31.5 &\n\
               exit 0\n\
             fi\n\
             printf '%s\\n' '{e1}' '{e2}'\n\
             exec sleep 32.5\n",
            e1 = entry("c1", 27001),
            e2 = entry("c2", 27002),
        ),
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut ex = start_with_env(
        &["serve", &format!("--config.file={}", cfg.display())],
        &[("MAILROUTE_JOURNALCTL", fake.display().to_string())],
    );
    ex.wait_for(|t| journal_lines(t) >= 2, WAIT);
    std::thread::sleep(Duration::from_millis(300));
    let text = ex.scrape();
    assert_eq!(journal_lines(&text), 2, "each entry once; stderr:\n{}", ex.stderr());
    assert_eq!(
        metric_value(&text, "mailroute_log_lines_total", &[("source", "journal"), ("outcome", "reject")]),
        Some(2.0)
    );
    assert_eq!(read_errors(&text), 1, "one exit; stderr:\n{}", ex.stderr());
    let invocations = std::fs::read_to_string(tmp.path().join("invocations")).unwrap();
    let runs: Vec<&str> = invocations.lines().collect();
    assert_eq!(runs.len(), 2, "{invocations}");
    assert!(!runs[0].contains("--cursor") && runs[1].contains("--cursor=c1"), "{invocations}");
    // what the first run left behind was killed with its process group
    assert_eq!(processes_running(&["sleep", "31.5"]), 0);
    assert!(ex.stop().success());
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(processes_running(&["sleep", "32.5"]), 0);
}

/// `start = "beginning"` reaches `serve`'s journal source: entries present before
/// the exporter starts are counted.
#[test]
fn start_beginning_reads_what_is_already_in_the_journal() {
    let tmp = tempfile::tempdir().unwrap();
    let jdir = tmp.path().join("journal");
    std::fs::create_dir(&jdir).unwrap();
    let cfg = config(tmp.path());
    let lab = lab_lines();
    let mut clock = 0;
    let old: Vec<Entry> = lab.iter().map(|l| entry_of_line(l)).collect();
    write_journal(&jdir, "old", &old, &mut clock);
    let expected = replay(tmp.path(), &cfg, &lab);
    let ex = start_with_env(
        &["serve", &format!("--config.file={}", cfg.display()), "--maillog.start=beginning"],
        &[("MAILROUTE_JOURNAL_ARGS", format!("--directory={}", jdir.display()))],
    );
    let text = wait_lines(&ex, lab.len() as u64);
    assert_counts(&text, &expected, 1, "journal");
}

/// With a state file, the journal follows on from the cursor of the last entry it
/// counted: after a `kill -9`, the entries logged while the exporter was down are
/// read (without the saved cursor, the default `start = "end"` would skip them),
/// and none is counted twice.
#[test]
fn a_restart_follows_on_from_the_saved_cursor() {
    let tmp = tempfile::tempdir().unwrap();
    let jdir = tmp.path().join("journal");
    std::fs::create_dir(&jdir).unwrap();
    let state = tmp.path().join("mailroute.state");
    let cfg = tmp.path().join("config.toml");
    std::fs::write(
        &cfg,
        format!("[maillog]\njournal = true\nlocal_domains = [\"broken.test\"]\nstate_file = \"{}\"\n", state.display()),
    )
    .unwrap();
    let lab = lab_lines();
    let entries: Vec<Entry> = lab.iter().map(|l| entry_of_line(l)).collect();
    let mut clock = 0;
    let env = [("MAILROUTE_JOURNAL_ARGS", format!("--directory={}", jdir.display()))];
    let args = ["serve", &format!("--config.file={}", cfg.display())];
    let mut ex = start_with_env(&args, &env);
    wait_log(&ex, "following the journal", 1);
    write_journal(&jdir, "first", &entries, &mut clock);
    // the scrape that saw every entry saved them, with the cursor of the last one
    wait_lines(&ex, lab.len() as u64);
    ex.signal(libc::SIGKILL);
    ex.wait_exit(Duration::from_secs(10)).expect("killed");
    write_journal(&jdir, "while-down", &entries, &mut clock);
    let ex = start_with_env(&args, &env);
    let text = wait_lines(&ex, 2 * lab.len() as u64);
    assert_counts(&text, &replay(tmp.path(), &cfg, &lab), 2, "journal");
    assert!(ex.stderr().contains("resuming after the entry the last run counted last"), "{}", ex.stderr());
    assert!(!ex.stderr().contains("starting at the tail"), "{}", ex.stderr());
}
