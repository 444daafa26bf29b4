//! The systemd journal as a log source (`[maillog] journal = true`, `--maillog.journal`).
//!
//! There are no libsystemd bindings here: the source runs `journalctl` as a child
//! process, reads its JSON output, rebuilds one classic log line per entry and feeds
//! it to its [`Processor`], like a file source. The `source` label is `journal`.
//!
//! # What is read
//!
//! journalctl ANDs matches of different fields and ORs matches of the same field;
//! `+` between matches ORs the groups on each side. `-u` and `-t` cannot be ORed with
//! each other (each adds a conjunction), and `SYSLOG_IDENTIFIER` takes no glob, so the
//! source passes positional matches:
//!
//! ```text
//! _SYSTEMD_UNIT=postfix.service _SYSTEMD_UNIT=postfix@-.service [_SYSTEMD_UNIT=postfix@NAME.service ...]
//!   _SYSTEMD_UNIT=sendmail.service _SYSTEMD_UNIT=exim4.service
//! + SYSLOG_FACILITY=2
//! + SYSLOG_IDENTIFIER=postfix SYSLOG_IDENTIFIER=sm-mta SYSLOG_IDENTIFIER=sendmail
//!   SYSLOG_IDENTIFIER=exim SYSLOG_IDENTIFIER=exim4
//! ```
//!
//! - the units: everything the MTA services log, whatever the identifier or facility
//!   (the `postfix@NAME.service` instances found in the journal are added at each start
//!   of journalctl, from `journalctl -F _SYSTEMD_UNIT`);
//! - `SYSLOG_FACILITY=2` (mail): every Postfix daemon under any `syslog_name`
//!   (`postfix/smtpd`, `postfix-mx/smtpd`, `postfix/submission/smtpd`), which no
//!   identifier match can express, and the other MTAs. This is what a classic
//!   `/var/log/mail.log` (`mail.*`) holds, so other mail programs (dovecot, opendkim)
//!   are read too and counted `foreign`, as in that file;
//! - the MTA identifiers, for MTAs configured to log to another facility.
//!
//! Each entry becomes `TIMESTAMP HOST IDENT[PID]: MESSAGE`: the RFC 3339 time of
//! `__REALTIME_TIMESTAMP` (UTC), `_HOSTNAME`, `SYSLOG_IDENTIFIER` (else `_COMM`),
//! `SYSLOG_PID` (else `_PID`) and `MESSAGE` (a JSON string, or an array of bytes when
//! it is not UTF-8). A message that is itself a whole syslog line of an MTA (Postfix's
//! `maillog_file = /dev/stdout` under a unit) is read as that line. Messages longer
//! than 64 KiB are cut and counted in `mailroute_log_lines_truncated_total`.
//!
//! # The invocation, and resuming without loss
//!
//! ```text
//! journalctl [$MAILROUTE_JOURNAL_ARGS] --follow --no-tail --output=json --all --quiet
//!   --no-pager --output-fields=MESSAGE,_HOSTNAME,... [--cursor=CURSOR] MATCHES
//! ```
//!
//! - `--no-tail` is required: with `--cursor` and `--follow` alone, journalctl shows
//!   ten entries from the cursor and then waits for new ones, silently skipping the rest;
//! - `--all` keeps fields longer than 4096 bytes, which JSON output otherwise nulls;
//! - the source remembers the `__CURSOR` of the last entry it processed. When
//!   journalctl exits (or is killed, or the source restarts it), the next one starts
//!   with `--cursor=` that cursor and the entry equal to it is skipped, so nothing is
//!   lost or counted twice. `--cursor` rather than `--after-cursor`: the latter blindly
//!   skips one entry, which loses one when the cursor's entry is gone (vacuumed);
//! - starting at the tail (`start = "end"`, the default): a one-shot
//!   `journalctl -n 1 --output=json MATCHES` gives the cursor of the newest matching
//!   entry, and following starts from there. With no matching entry at all, following
//!   starts at the beginning: everything it will see is new;
//! - `start = "beginning"`: following starts at the beginning;
//! - with a state file (`[maillog] state_file`), the cursor of the last entry counted
//!   is saved with the counters, in the same snapshot, and a restart (`kill -9`
//!   included) follows on from it whatever `start` says: what was logged while the
//!   exporter was down is read, nothing is counted twice.
//!
//! journalctl follows rotation itself (it watches the journal directory). It is
//! restarted from the cursor when it exits (after 0.1 s if it had delivered entries,
//! else with a backoff from 1 s up to 30 s; each unexpected exit counts in
//! `mailroute_log_read_errors_total{source="journal"}`), and when it has been silent
//! for 5 minutes, since a journalctl that lost its inotify watch or missed a rotated
//! file waits forever without a word (systemd issues #474, #4479). A restart from the
//! cursor costs one process start and loses nothing. journalctl runs in a process group
//! of its own, and the group is killed whenever the source ends a run, so a wrapper
//! script and what it started go too (and the kernel kills journalctl if the exporter
//! dies first: `PR_SET_PDEATHSIG`); a journalctl that exits while something it left
//! behind still holds the pipe is noticed by its exit, not by the end of its output.
//! Everything journalctl writes on standard error is logged (the first ten lines of a
//! run) and its last line shows on the status page.
//!
//! The arguments need systemd 236 or newer (`--output-fields`).
//!
//! Since systemd 250, `--follow` implies `--boot`: journalctl follows the current boot
//! only (for `--directory`, the boot of the newest entry). On a live machine that is
//! what the exporter wants; `start = "beginning"` therefore means the beginning of
//! the current boot. A directory that collects several machines' journals
//! (systemd-journal-remote) is followed for one boot ID only; use the syslog receiver
//! for central collection.
//!
//! # Environment overrides (tests, unusual installs)
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `MAILROUTE_JOURNALCTL` | the journalctl program | `journalctl` |
//! | `MAILROUTE_JOURNAL_ARGS` | extra arguments, split on whitespace, e.g. `--directory=/var/log/journal/remote` or `--file=/path/x.journal` | none |
//! | `MAILROUTE_JOURNAL_IDLE_RESTART` | seconds of silence before journalctl is restarted; `0` = never | `300` |
//!
//! The exporter's user must be allowed to read the journal (group `systemd-journal`,
//! or `adm` on Debian and Ubuntu).

use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::{Child, Command};

use super::envelope;
use super::processor::{MailState, Processor};
use super::source::{CancellationToken, SourceHandle, SourceStatus};
use super::tail::{MAX_LINE, TailState};
use super::{exim, postfix, sendmail};
use crate::config::Start;
use crate::metrics::{SharedLabel, SourceCounters};

/// The `source` label of the journal.
pub const SOURCE: &str = "journal";
/// Environment variable: the journalctl program.
pub const PROGRAM_ENV: &str = "MAILROUTE_JOURNALCTL";
/// Environment variable: extra journalctl arguments, whitespace-separated.
pub const ARGS_ENV: &str = "MAILROUTE_JOURNAL_ARGS";
/// Environment variable: seconds of silence before journalctl is restarted (0 = never).
pub const IDLE_RESTART_ENV: &str = "MAILROUTE_JOURNAL_IDLE_RESTART";

/// Units whose entries are read whatever their identifier or facility.
pub const UNITS: &[&str] = &["postfix.service", "postfix@-.service", "sendmail.service", "exim4.service"];
/// Identifiers read whatever their facility.
pub const IDENTIFIERS: &[&str] = &["postfix", "sm-mta", "sendmail", "exim", "exim4"];
/// The syslog facility `mail`.
pub const MAIL_FACILITY: u8 = 2;
/// The fields asked of journalctl (`__CURSOR` and the timestamps come anyway).
const OUTPUT_FIELDS: &str = "MESSAGE,_HOSTNAME,SYSLOG_IDENTIFIER,SYSLOG_PID,_PID,_COMM,_SYSTEMD_UNIT";
/// At most this many `postfix@NAME.service` instances are added to the matches.
const MAX_INSTANCE_UNITS: usize = 32;

/// A JSON line longer than this is dropped (a 64 KiB message escaped as `\u00XX`
/// or as an array of byte numbers stays well below).
const MAX_JSON_LINE: usize = 1024 * 1024;
/// Pause before restarting a journalctl that exited after delivering entries.
const QUICK_RESTART: Duration = Duration::from_millis(100);
/// Backoff bounds for a journalctl that fails without delivering anything.
const BACKOFF_MIN: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Default silence before a restart.
const DEFAULT_IDLE_RESTART: Duration = Duration::from_secs(300);
/// Time allowed to the one-shot journalctl runs (tail cursor, unit list).
const ONE_SHOT_TIMEOUT: Duration = Duration::from_secs(30);
/// Failed starts with a cursor, each complaining about it, before it is dropped.
const CURSOR_FAILURES_MAX: u32 = 5;
/// journalctl stderr lines logged per run (the last one is kept for the status page).
const STDERR_LINES_LOGGED: usize = 10;

/// How journalctl is run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub program: String,
    /// Arguments placed before ours (`--directory=…`, `--file=…`, `--machine=…`).
    pub extra_args: Vec<String>,
    /// Silence after which journalctl is restarted from the cursor; `None` = never.
    pub idle_restart: Option<Duration>,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings { program: "journalctl".to_string(), extra_args: Vec::new(), idle_restart: Some(DEFAULT_IDLE_RESTART) }
    }
}

impl Settings {
    /// The defaults, overridden by `MAILROUTE_JOURNALCTL`, `MAILROUTE_JOURNAL_ARGS`
    /// and `MAILROUTE_JOURNAL_IDLE_RESTART`.
    pub fn from_env() -> Settings {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        Settings::from_vars(var(PROGRAM_ENV), var(ARGS_ENV), var(IDLE_RESTART_ENV))
    }

    fn from_vars(program: Option<String>, args: Option<String>, idle: Option<String>) -> Settings {
        let mut s = Settings::default();
        if let Some(p) = program {
            s.program = p.trim().to_string();
        }
        if let Some(a) = args {
            s.extra_args = a.split_whitespace().map(str::to_string).collect();
        }
        if let Some(i) = idle {
            match i.trim().parse::<f64>() {
                Ok(secs) if secs.is_finite() && secs >= 0.0 => {
                    s.idle_restart = (secs > 0.0).then(|| Duration::from_secs_f64(secs));
                }
                _ => {
                    tracing::warn!(variable = IDLE_RESTART_ENV, value = %i, "not a number of seconds; using the default")
                }
            }
        }
        s
    }
}

/// The positional matches: MTA units `+` the mail facility `+` the MTA identifiers.
pub fn matches(instance_units: &[String]) -> Vec<String> {
    let mut m: Vec<String> = UNITS.iter().map(|u| format!("_SYSTEMD_UNIT={u}")).collect();
    for u in instance_units {
        if !UNITS.contains(&u.as_str()) {
            m.push(format!("_SYSTEMD_UNIT={u}"));
        }
    }
    m.push("+".to_string());
    m.push(format!("SYSLOG_FACILITY={MAIL_FACILITY}"));
    m.push("+".to_string());
    m.extend(IDENTIFIERS.iter().map(|i| format!("SYSLOG_IDENTIFIER={i}")));
    m
}

/// The arguments of the following journalctl.
pub fn follow_args(settings: &Settings, cursor: Option<&str>, instance_units: &[String]) -> Vec<String> {
    let mut a = settings.extra_args.clone();
    a.extend(
        ["--follow", "--no-tail", "--output=json", "--all", "--quiet", "--no-pager"].iter().map(|s| s.to_string()),
    );
    a.push(format!("--output-fields={OUTPUT_FIELDS}"));
    if let Some(c) = cursor {
        a.push(format!("--cursor={c}"));
    }
    a.extend(matches(instance_units));
    a
}

/// The arguments of the one-shot run that finds the newest matching entry.
fn tail_args(settings: &Settings, instance_units: &[String]) -> Vec<String> {
    let mut a = settings.extra_args.clone();
    a.extend(
        ["--lines=1", "--output=json", "--output-fields=MESSAGE", "--quiet", "--no-pager"]
            .iter()
            .map(|s| s.to_string()),
    );
    a.extend(matches(instance_units));
    a
}

/// The arguments of the one-shot run that lists the units in the journal.
fn units_args(settings: &Settings) -> Vec<String> {
    let mut a = settings.extra_args.clone();
    a.extend(["--field=_SYSTEMD_UNIT", "--quiet", "--no-pager"].iter().map(|s| s.to_string()));
    a
}

/// The `postfix@NAME.service` instances in a `journalctl -F _SYSTEMD_UNIT` listing.
fn instance_units(listing: &[u8]) -> Vec<String> {
    let mut v: Vec<String> = listing
        .split(|&b| b == b'\n')
        .filter_map(|l| std::str::from_utf8(l).ok())
        .map(str::trim)
        .filter(|u| u.starts_with("postfix@") && u.ends_with(".service") && !u.contains(char::is_whitespace))
        .map(str::to_string)
        .collect();
    v.sort();
    v.dedup();
    v.truncate(MAX_INSTANCE_UNITS);
    v
}

/// One journal entry turned into a log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryLine {
    pub cursor: Option<String>,
    /// The line for the [`Processor`], at most 64 KiB of message.
    pub line: Vec<u8>,
    /// The message was longer than 64 KiB and was cut.
    pub truncated: bool,
}

/// The bytes of a JSON field value: a string, an array of byte values (non-UTF-8
/// data), or, for a field that occurs more than once, the first of its values.
fn field_bytes(v: &Value) -> Option<Vec<u8>> {
    match v {
        Value::String(s) => Some(s.as_bytes().to_vec()),
        Value::Array(items) if !items.is_empty() && items.iter().all(Value::is_number) => {
            items.iter().map(|x| x.as_u64().and_then(|n| u8::try_from(n).ok())).collect()
        }
        Value::Array(items) => items.first().and_then(field_bytes),
        _ => None,
    }
}

/// A field usable as one token of the rebuilt line (no spaces, not empty).
fn token_field(obj: &serde_json::Map<String, Value>, name: &str) -> Option<Vec<u8>> {
    let b = field_bytes(obj.get(name)?)?;
    let b = b.trim_ascii();
    if b.is_empty() || b.iter().any(|c| c.is_ascii_whitespace()) { None } else { Some(b.to_vec()) }
}

fn is_mta(program: &[u8]) -> bool {
    postfix::is_postfix(program) || sendmail::is_sendmail(program) || exim::is_exim(program)
}

/// `YYYY-MM-DDTHH:MM:SS.ffffff+00:00` for microseconds since the epoch.
pub fn rfc3339_micros(us: u64) -> String {
    let (year, month, day, h, m, s) = crate::logging::civil((us / 1_000_000) as i64);
    let micros = us % 1_000_000;
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{micros:06}+00:00")
}

/// Parses one line of `journalctl --output=json` into the line to process.
pub fn entry_line(json: &[u8]) -> Result<EntryLine, String> {
    let value: Value = serde_json::from_slice(json).map_err(|e| format!("invalid JSON from journalctl: {e}"))?;
    let Value::Object(obj) = value else { return Err("journalctl printed JSON that is not an object".to_string()) };
    let cursor = obj.get("__CURSOR").and_then(Value::as_str).map(str::to_string);
    let mut message = obj.get("MESSAGE").and_then(field_bytes).unwrap_or_default();
    while message.last().is_some_and(|&b| b == b'\n' || b == b'\r') {
        message.pop();
    }
    let truncated = message.len() > MAX_LINE;
    message.truncate(MAX_LINE);
    // a whole syslog line of an MTA logged on a unit's stdout (Postfix's postlog to
    // /dev/stdout): read it as it is; no MTA message starts with a syslog timestamp
    if let Some(env) = envelope::parse(&message)
        && !env.timestamp.is_empty()
        && is_mta(env.program)
    {
        return Ok(EntryLine { cursor, line: message, truncated });
    }
    let ident = token_field(&obj, "SYSLOG_IDENTIFIER").or_else(|| token_field(&obj, "_COMM"));
    let mut line = Vec::with_capacity(message.len() + 96);
    if let Some(us) = obj.get("__REALTIME_TIMESTAMP").and_then(Value::as_str).and_then(|s| s.parse::<u64>().ok()) {
        line.extend_from_slice(rfc3339_micros(us).as_bytes());
        line.push(b' ');
    }
    if let Some(host) = token_field(&obj, "_HOSTNAME") {
        line.extend_from_slice(&host);
        line.push(b' ');
    }
    if let Some(ident) = ident {
        line.extend_from_slice(&ident);
        let pid = token_field(&obj, "SYSLOG_PID")
            .filter(|p| p.iter().all(u8::is_ascii_digit))
            .or_else(|| token_field(&obj, "_PID").filter(|p| p.iter().all(u8::is_ascii_digit)));
        if let Some(pid) = pid {
            line.push(b'[');
            line.extend_from_slice(&pid);
            line.push(b']');
        }
        line.extend_from_slice(b": ");
    }
    line.extend_from_slice(&message);
    Ok(EntryLine { cursor, line, truncated })
}

/// Splits a byte stream into lines of at most `max` bytes; longer lines are dropped
/// whole (they are counted by the caller).
#[derive(Debug)]
struct BoundedLines {
    buf: Vec<u8>,
    max: usize,
    discarding: bool,
}

impl BoundedLines {
    fn new(max: usize) -> BoundedLines {
        BoundedLines { buf: Vec::new(), max, discarding: false }
    }

    /// `emit(Some(line))` per complete line, `emit(None)` per dropped overlong line.
    fn feed(&mut self, mut chunk: &[u8], emit: &mut dyn FnMut(Option<&[u8]>)) {
        while !chunk.is_empty() {
            match memchr::memchr(b'\n', chunk) {
                Some(nl) => {
                    let piece = &chunk[..nl];
                    chunk = &chunk[nl + 1..];
                    if self.discarding {
                        self.discarding = false;
                    } else if self.buf.is_empty() {
                        emit(Some(piece));
                    } else if self.buf.len() + piece.len() > self.max {
                        self.buf.clear();
                        emit(None);
                    } else {
                        self.buf.extend_from_slice(piece);
                        emit(Some(&self.buf));
                        self.buf.clear();
                    }
                }
                None => {
                    if !self.discarding {
                        if self.buf.len() + chunk.len() > self.max {
                            self.buf.clear();
                            self.discarding = true;
                            emit(None);
                        } else {
                            self.buf.extend_from_slice(chunk);
                        }
                    }
                    chunk = &[];
                }
            }
        }
        if self.buf.is_empty() && self.buf.capacity() > 256 * 1024 {
            self.buf = Vec::new();
        }
    }

    /// Forgets an unfinished line (the writer is gone).
    fn reset(&mut self) {
        self.buf = Vec::new();
        self.discarding = false;
    }
}

/// Starts following the journal, from its tail or (`Start::Beginning`) from the
/// beginning of the current boot, as a task of the current tokio runtime.
pub fn spawn(start: Start, state: Arc<MailState>, stop: CancellationToken) -> SourceHandle {
    spawn_with(Settings::from_env(), start, state, stop)
}

/// Starts following the journal with explicit settings.
pub fn spawn_with(settings: Settings, start: Start, state: Arc<MailState>, stop: CancellationToken) -> SourceHandle {
    let label = SharedLabel::new(SOURCE);
    let status = Arc::new(Mutex::new(SourceStatus {
        name: SOURCE.to_string(),
        kind: "journal",
        state: TailState::Starting,
        position: 0,
        last_error: None,
    }));
    let mut processor = Processor::new(state.clone(), &label);
    // a cursor saved in the state file: follow on from the last entry counted, with
    // what the Exim joiner held then
    let saved = state.take_resume(SOURCE);
    let resumed = saved.cursor;
    if resumed.is_some()
        && let Some(join) = &saved.join
    {
        processor.restore_join_state(join);
    }
    if resumed.is_some() {
        tracing::info!(source = SOURCE, "journal: resuming after the entry the last run counted last");
    }
    let mut follower = Follower {
        counters: processor.counters().clone(),
        processor,
        state,
        settings,
        start,
        first_start: resumed.is_none(),
        cursor: resumed,
        skip_cursor: None,
        status: status.clone(),
        stop,
        lines: BoundedLines::new(MAX_JSON_LINE),
        bad_json_logged: false,
        quiet_stderr: false,
    };
    let task = tokio::spawn(async move { follower.run().await });
    SourceHandle { status, task: Some(task) }
}

/// How one run of journalctl ended.
#[derive(Debug)]
enum RunEnd {
    /// The exporter is stopping.
    Stopped,
    /// Silent for too long: restarted on purpose.
    Idle,
    /// journalctl exited or could not start.
    Failed { delivered: bool, error: String, cursor_complaint: bool },
}

struct Follower {
    processor: Processor,
    /// For the state file: lines are counted and the cursor published under its gate.
    state: Arc<MailState>,
    counters: SourceCounters,
    settings: Settings,
    start: Start,
    /// The cursor of the last entry processed.
    cursor: Option<String>,
    /// The entry to skip at the start of this run (`--cursor` shows it again).
    skip_cursor: Option<String>,
    first_start: bool,
    status: Arc<Mutex<SourceStatus>>,
    stop: CancellationToken,
    lines: BoundedLines,
    bad_json_logged: bool,
    /// journalctl keeps failing the same way: its stderr is logged at debug level.
    quiet_stderr: bool,
}

impl Follower {
    fn set_status(&self, state: TailState, error: Option<String>) {
        if let Ok(mut s) = self.status.lock() {
            s.state = state;
            if error.is_some() || state == TailState::Open {
                s.last_error = error;
            }
        }
    }

    async fn run(&mut self) {
        let mut failures: u32 = 0;
        let mut cursor_failures: u32 = 0;
        loop {
            if self.stop.is_cancelled() {
                return;
            }
            match self.run_once().await {
                RunEnd::Stopped => return,
                RunEnd::Idle => {
                    failures = 0;
                    tracing::info!(source = SOURCE, "journalctl silent for too long, restarting it from the cursor");
                }
                RunEnd::Failed { delivered, error, cursor_complaint } => {
                    self.counters.read_errors.inc();
                    self.set_status(TailState::Error, Some(error.clone()));
                    if delivered {
                        failures = 0;
                        cursor_failures = 0;
                    } else {
                        failures = failures.saturating_add(1);
                    }
                    if cursor_complaint && !delivered && self.cursor.is_some() {
                        cursor_failures += 1;
                        if cursor_failures >= CURSOR_FAILURES_MAX {
                            tracing::warn!(
                                source = SOURCE,
                                "journalctl keeps refusing the saved cursor; continuing from the tail, entries in between are lost"
                            );
                            self.cursor = None;
                            self.first_start = true;
                            self.start = Start::End;
                            cursor_failures = 0;
                        }
                    }
                    let pause = if delivered {
                        QUICK_RESTART
                    } else {
                        BACKOFF_MIN.saturating_mul(1 << failures.saturating_sub(1).min(5)).min(BACKOFF_MAX)
                    };
                    if failures <= 3 || failures.is_multiple_of(10) {
                        tracing::warn!(source = SOURCE, error = %error, retry_in = ?pause, failures, "journalctl stopped; restarting it from the cursor");
                    } else {
                        tracing::debug!(source = SOURCE, error = %error, retry_in = ?pause, failures, "journalctl stopped again");
                    }
                    self.quiet_stderr = failures >= 3 && !(failures + 1).is_multiple_of(10);
                    tokio::select! {
                        _ = self.stop.cancelled() => return,
                        _ = tokio::time::sleep(pause) => {}
                    }
                }
            }
        }
    }

    /// Finds where to start, runs one journalctl and reads it until it ends.
    async fn run_once(&mut self) -> RunEnd {
        let instances = match run_to_end(&self.settings.program, &units_args(&self.settings), &self.stop).await {
            Ok(out) => instance_units(&out),
            Err(e) => {
                tracing::debug!(source = SOURCE, error = %e, "cannot list the journal's units");
                Vec::new()
            }
        };
        if self.stop.is_cancelled() {
            return RunEnd::Stopped;
        }
        if self.first_start && self.cursor.is_none() && self.start == Start::End {
            match run_to_end(&self.settings.program, &tail_args(&self.settings, &instances), &self.stop).await {
                Ok(out) => {
                    self.cursor = out
                        .split(|&b| b == b'\n')
                        .rev()
                        .filter(|l| !l.trim_ascii().is_empty())
                        .find_map(|l| entry_line(l).ok().and_then(|e| e.cursor));
                    tracing::info!(source = SOURCE, at_cursor = self.cursor.is_some(), "journal: starting at the tail");
                }
                Err(_) if self.stop.is_cancelled() => return RunEnd::Stopped,
                Err(error) => return RunEnd::Failed { delivered: false, error, cursor_complaint: false },
            }
        }
        self.first_start = false;
        let args = follow_args(&self.settings, self.cursor.as_deref(), &instances);
        let mut child = match command(&self.settings.program, &args).spawn() {
            Ok(c) => c,
            Err(e) => {
                return RunEnd::Failed {
                    delivered: false,
                    error: format!("cannot run {}: {e}", self.settings.program),
                    cursor_complaint: false,
                };
            }
        };
        tracing::info!(source = SOURCE, program = %self.settings.program, cursor = self.cursor.is_some(), "following the journal");
        self.set_status(TailState::Open, None);
        self.skip_cursor = self.cursor.clone();
        self.lines.reset();
        self.bad_json_logged = false;
        self.read_child(&mut child).await
    }

    /// Reads the child's output until it exits, the exporter stops, or it is silent
    /// for too long.
    async fn read_child(&mut self, child: &mut Child) -> RunEnd {
        let group = child.id();
        let (Some(mut out), Some(mut err)) = (child.stdout.take(), child.stderr.take()) else {
            kill(child, group).await;
            return RunEnd::Failed {
                delivered: false,
                error: "journalctl's output is not a pipe".to_string(),
                cursor_complaint: false,
            };
        };
        let mut buf = vec![0u8; 64 * 1024];
        let mut err_buf = vec![0u8; 4096];
        let mut err_open = true;
        let mut stderr = StderrLog { quiet: self.quiet_stderr, ..StderrLog::default() };
        let mut delivered = false;
        let mut last_output = tokio::time::Instant::now();
        let mut exited: Option<ExitStatus> = None;
        loop {
            let idle = async {
                match self.settings.idle_restart {
                    Some(d) => tokio::time::sleep_until(last_output + d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                _ = self.stop.cancelled() => {
                    kill(child, group).await;
                    // what journalctl wrote before it was killed is still in the pipe
                    drain(&mut out, &mut buf, Duration::from_secs(2), |chunk: &[u8]| {
                        self.feed(chunk);
                    })
                    .await;
                    return RunEnd::Stopped;
                }
                r = out.read(&mut buf) => match r {
                    Ok(0) => break,
                    Ok(n) => {
                        last_output = tokio::time::Instant::now();
                        if self.feed(&buf[..n]) {
                            delivered = true;
                        }
                        if let Ok(mut s) = self.status.lock() {
                            s.position += n as u64;
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        kill(child, group).await;
                        return RunEnd::Failed {
                            delivered,
                            error: format!("reading journalctl's output: {e}"),
                            cursor_complaint: false,
                        };
                    }
                },
                r = err.read(&mut err_buf), if err_open => match r {
                    Ok(0) | Err(_) => err_open = false,
                    Ok(n) => stderr.feed(&err_buf[..n]),
                },
                status = child.wait(), if exited.is_none() => {
                    // journalctl gone, perhaps while something it left behind holds
                    // the pipe open: read what is there, then end the run
                    exited = status.ok();
                    drain(&mut out, &mut buf, Duration::from_millis(500), |chunk: &[u8]| {
                        if self.feed(chunk) {
                            delivered = true;
                        }
                    })
                    .await;
                    break;
                }
                _ = idle => {
                    kill(child, group).await;
                    return RunEnd::Idle;
                }
            }
        }
        // stdout closed: journalctl is exiting; collect what it said last (without
        // waiting long: a process it left behind may still hold the pipe)
        let status = match exited {
            Some(s) => Some(s),
            None => wait_exit(child, group, Duration::from_secs(5)).await,
        };
        // whatever it left running in its process group goes too
        kill(child, group).await;
        if err_open {
            drain(&mut err, &mut err_buf, Duration::from_millis(500), |chunk: &[u8]| stderr.feed(chunk)).await;
        }
        let cursor_complaint = stderr.last.as_deref().is_some_and(|e| e.to_ascii_lowercase().contains("cursor"));
        let how = match status {
            Some(s) => format!("journalctl exited ({s})"),
            None => "journalctl closed its output".to_string(),
        };
        let error = match stderr.last {
            Some(e) => format!("{how}: {e}"),
            None => how,
        };
        RunEnd::Failed { delivered, error, cursor_complaint }
    }

    /// Processes a chunk of JSON lines; true when an entry was processed.
    fn feed(&mut self, chunk: &[u8]) -> bool {
        let mut processed = false;
        let state = self.state.clone();
        // the chunk's entries are counted and the cursor they lead to published as
        // one step, between two state file snapshots
        let _gate = state.gate.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut lines = std::mem::replace(&mut self.lines, BoundedLines::new(0));
        lines.feed(chunk, &mut |l| match l {
            None => {
                self.counters.read_errors.inc();
                tracing::warn!(source = SOURCE, "journal entry longer than 1 MiB of JSON, skipped");
            }
            Some(l) if l.trim_ascii().is_empty() => {}
            Some(l) => match entry_line(l) {
                Ok(e) => {
                    if let Some(skip) = self.skip_cursor.take()
                        && e.cursor.as_deref() == Some(skip.as_str())
                    {
                        return;
                    }
                    if e.truncated {
                        self.counters.truncated.inc();
                    }
                    self.processor.line(&e.line);
                    if e.cursor.is_some() {
                        self.cursor = e.cursor;
                    }
                    processed = true;
                }
                Err(msg) => {
                    self.counters.read_errors.inc();
                    if !self.bad_json_logged {
                        tracing::warn!(source = SOURCE, error = %msg, "unreadable journalctl output");
                        self.bad_json_logged = true;
                    }
                }
            },
        });
        self.lines = lines;
        if processed {
            state.publish(SOURCE, |r| {
                r.cursor.clone_from(&self.cursor);
                r.join = self.processor.join_state();
            });
            self.counters.touch();
        }
        processed
    }
}

/// What journalctl says on its standard error: the first lines are logged, the last
/// is kept for the status page.
#[derive(Debug)]
struct StderrLog {
    lines: BoundedLines,
    logged: usize,
    last: Option<String>,
    /// Log at debug level only (the same failure again and again).
    quiet: bool,
}

impl Default for StderrLog {
    fn default() -> StderrLog {
        StderrLog { lines: BoundedLines::new(4096), logged: 0, last: None, quiet: false }
    }
}

impl StderrLog {
    fn feed(&mut self, chunk: &[u8]) {
        let (logged, last, quiet) = (&mut self.logged, &mut self.last, self.quiet);
        self.lines.feed(chunk, &mut |l| {
            let Some(l) = l else { return };
            let text = String::from_utf8_lossy(&l[..l.len().min(512)]).trim().to_string();
            if text.is_empty() {
                return;
            }
            if quiet {
                tracing::debug!(source = SOURCE, stderr = %text, "journalctl");
            } else if *logged < STDERR_LINES_LOGGED {
                tracing::warn!(source = SOURCE, stderr = %text, "journalctl");
                *logged += 1;
            }
            *last = Some(text);
        });
    }
}

/// Reads what `r` has until its end or until `limit` passes, never waiting longer.
async fn drain(r: &mut (impl AsyncRead + Unpin), buf: &mut [u8], limit: Duration, mut f: impl FnMut(&[u8])) {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, r.read(buf)).await {
            Ok(Ok(0)) | Err(_) => return,
            Ok(Ok(n)) => f(&buf[..n]),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Ok(Err(_)) => return,
        }
    }
}

/// Reads `r` to its end, keeping at most `cap` bytes.
async fn read_capped(mut r: impl AsyncRead + Unpin, cap: usize) -> Vec<u8> {
    let mut kept = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match r.read(&mut buf).await {
            Ok(0) => return kept,
            Ok(n) => {
                let room = cap.saturating_sub(kept.len()).min(n);
                kept.extend_from_slice(&buf[..room]);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return kept,
        }
    }
}

/// Kills journalctl and whatever else runs in its process group (a wrapper script
/// and its children), then reaps it. `group` is the child's id taken at spawn:
/// once tokio has reaped the child, `id()` no longer gives it.
async fn kill(child: &mut Child, group: Option<u32>) {
    if let Some(pid) = group.and_then(|id| libc::pid_t::try_from(id).ok()) {
        // SAFETY: kill(2) on the process group our child leads (it was spawned with
        // `process_group(0)`); Linux does not reuse the id while the group has
        // members, and an empty group makes this a harmless ESRCH.
        unsafe { libc::kill(-pid, libc::SIGKILL) };
    }
    let _ = child.start_kill();
    let _ = child.wait().await;
}

/// A journalctl command in a process group of its own, so that it can be killed
/// with everything it started, and killed by the kernel if the exporter dies first
/// (a `journalctl --follow` left alone waits for the next entry to notice).
fn command(program: &str, args: &[String]) -> Command {
    let mut c = Command::new(program);
    c.args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0).kill_on_drop(true);
    // SAFETY: the closure runs in the child between fork and exec and makes a single
    // prctl(2) system call, which is async-signal-safe. The signal comes when the
    // thread that spawned the child ends: a worker thread of the runtime, which
    // lives as long as the exporter serves.
    unsafe {
        c.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    c
}

/// Waits up to `limit` for the child to exit, then kills it.
async fn wait_exit(child: &mut Child, group: Option<u32>, limit: Duration) -> Option<ExitStatus> {
    match tokio::time::timeout(limit, child.wait()).await {
        Ok(Ok(s)) => Some(s),
        _ => {
            kill(child, group).await;
            None
        }
    }
}

/// Runs a one-shot journalctl to its end (at most [`ONE_SHOT_TIMEOUT`], 4 MiB of
/// output) and returns its standard output.
async fn run_to_end(program: &str, args: &[String], stop: &CancellationToken) -> Result<Vec<u8>, String> {
    const MAX_OUTPUT: usize = 4 * 1024 * 1024;
    let mut child = command(program, args).spawn().map_err(|e| format!("cannot run {program}: {e}"))?;
    let group = child.id();
    let (Some(out), Some(err)) = (child.stdout.take(), child.stderr.take()) else {
        kill(&mut child, group).await;
        return Err("journalctl's output is not a pipe".to_string());
    };
    let both = async { tokio::join!(read_capped(out, MAX_OUTPUT), read_capped(err, 64 * 1024)) };
    let read = tokio::select! {
        _ = stop.cancelled() => None,
        r = tokio::time::timeout(ONE_SHOT_TIMEOUT, both) => r.ok(),
    };
    let Some((stdout, stderr)) = read else {
        kill(&mut child, group).await;
        return Err(format!("{program} did not finish within {ONE_SHOT_TIMEOUT:?}"));
    };
    match wait_exit(&mut child, group, Duration::from_secs(5)).await {
        Some(s) if s.success() => Ok(stdout),
        other => {
            let said = String::from_utf8_lossy(&stderr);
            let said = said.trim();
            let how = other.map_or_else(|| "did not exit".to_string(), |s| s.to_string());
            Err(format!("{program} {}: {how}{}{}", args.join(" "), if said.is_empty() { "" } else { ": " }, said))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn line(json: &str) -> String {
        String::from_utf8(entry_line(json.as_bytes()).unwrap().line).unwrap()
    }

    #[test]
    fn rebuilds_classic_lines() {
        let j = r#"{"__CURSOR":"s=1;i=2","__REALTIME_TIMESTAMP":"1795744949387178","_HOSTNAME":"talon","SYSLOG_IDENTIFIER":"postfix/smtpd","SYSLOG_PID":"27089","_PID":"1","MESSAGE":"connect from x[1.2.3.4]"}"#;
        let e = entry_line(j.as_bytes()).unwrap();
        assert_eq!(e.cursor.as_deref(), Some("s=1;i=2"));
        assert_eq!(
            String::from_utf8(e.line).unwrap(),
            "2026-11-27T02:02:29.387178+00:00 talon postfix/smtpd[27089]: connect from x[1.2.3.4]"
        );
        // no host, no pid, no time; _COMM stands in for the identifier
        assert_eq!(line(r#"{"_COMM":"sendmail","MESSAGE":"m"}"#), "sendmail: m");
        // _PID when there is no SYSLOG_PID
        assert_eq!(
            line(r#"{"_HOSTNAME":"h","SYSLOG_IDENTIFIER":"exim4","_PID":"9","MESSAGE":"m\n"}"#),
            "h exim4[9]: m"
        );
        // a host or pid that is not one token is left out
        assert_eq!(line(r#"{"_HOSTNAME":"a b","SYSLOG_IDENTIFIER":"x","_PID":"1a","MESSAGE":"m"}"#), "x: m");
    }

    #[test]
    fn messages_that_are_bytes_or_repeated() {
        // "caf\xe9" is not UTF-8: journalctl prints it as an array of numbers
        let e = entry_line(br#"{"SYSLOG_IDENTIFIER":"sm-mta","MESSAGE":[99,97,102,233]}"#).unwrap();
        assert_eq!(e.line, b"sm-mta: caf\xe9");
        // a field logged twice is an array of values: the first is taken
        assert_eq!(line(r#"{"SYSLOG_IDENTIFIER":"sm-mta","MESSAGE":["one","two"]}"#), "sm-mta: one");
        assert_eq!(line(r#"{"SYSLOG_IDENTIFIER":"sm-mta","MESSAGE":null}"#), "sm-mta: ");
        assert!(entry_line(b"not json").is_err());
        assert!(entry_line(b"[1,2]").is_err());
    }

    #[test]
    fn stdout_syslog_lines_are_read_as_they_are() {
        let j = r#"{"_HOSTNAME":"mx","SYSLOG_IDENTIFIER":"postfix","_SYSTEMD_UNIT":"postfix@-.service","MESSAGE":"Nov 27 01:17:36 talon postfix/smtpd[27089]: connect from x[1.2.3.4]"}"#;
        assert_eq!(line(j), "Nov 27 01:17:36 talon postfix/smtpd[27089]: connect from x[1.2.3.4]");
    }

    #[test]
    fn long_messages_are_cut() {
        let msg = "x".repeat(MAX_LINE + 10);
        let j = format!(r#"{{"SYSLOG_IDENTIFIER":"exim","MESSAGE":"{msg}"}}"#);
        let e = entry_line(j.as_bytes()).unwrap();
        assert!(e.truncated);
        assert_eq!(e.line.len(), "exim: ".len() + MAX_LINE);
    }

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339_micros(0), "1970-01-01T00:00:00.000000+00:00");
        assert_eq!(rfc3339_micros(951_782_400_000_001), "2000-02-29T00:00:00.000001+00:00");
        assert_eq!(rfc3339_micros(1_779_956_735_123_456), "2026-05-28T08:25:35.123456+00:00");
        // the rebuilt line is read by the envelope parser with its host and tag
        let l = format!("{} talon postfix/smtpd[1]: m", rfc3339_micros(1_779_956_735_123_456));
        let env = envelope::parse(l.as_bytes()).unwrap();
        assert_eq!(env.host, Some(&b"talon"[..]));
        assert_eq!(env.program, b"postfix/smtpd");
    }

    #[test]
    fn match_expression() {
        let m = matches(&["postfix@mx.service".to_string(), "postfix@-.service".to_string()]).join(" ");
        assert_eq!(
            m,
            "_SYSTEMD_UNIT=postfix.service _SYSTEMD_UNIT=postfix@-.service _SYSTEMD_UNIT=sendmail.service \
             _SYSTEMD_UNIT=exim4.service _SYSTEMD_UNIT=postfix@mx.service + SYSLOG_FACILITY=2 + \
             SYSLOG_IDENTIFIER=postfix SYSLOG_IDENTIFIER=sm-mta SYSLOG_IDENTIFIER=sendmail \
             SYSLOG_IDENTIFIER=exim SYSLOG_IDENTIFIER=exim4"
        );
        let s = Settings { extra_args: vec!["--directory=/j".to_string()], ..Settings::default() };
        let a = follow_args(&s, Some("s=1"), &[]);
        assert_eq!(a[0], "--directory=/j");
        assert!(a.contains(&"--no-tail".to_string()) && a.contains(&"--cursor=s=1".to_string()));
        assert_eq!(
            instance_units(b"postfix@-.service\ncron.service\npostfix@mx.service\npostfix@mx.service\n"),
            vec!["postfix@-.service".to_string(), "postfix@mx.service".to_string()]
        );
    }

    #[test]
    fn settings_from_environment_values() {
        let s = Settings::from_vars(Some("/x/jctl".into()), Some(" --directory=/a  --merge ".into()), Some("0".into()));
        assert_eq!(s.program, "/x/jctl");
        assert_eq!(s.extra_args, vec!["--directory=/a", "--merge"]);
        assert_eq!(s.idle_restart, None);
        let s = Settings::from_vars(None, None, Some("2.5".into()));
        assert_eq!(s.idle_restart, Some(Duration::from_millis(2500)));
        assert_eq!(Settings::from_vars(None, None, Some("x".into())).idle_restart, Some(DEFAULT_IDLE_RESTART));
    }

    #[test]
    fn bounded_lines() {
        let mut b = BoundedLines::new(8);
        let mut got: Vec<Option<Vec<u8>>> = Vec::new();
        for chunk in [&b"ab"[..], b"c\n0123456789", b"xx\nok\n", b"tail"] {
            b.feed(chunk, &mut |l| got.push(l.map(<[u8]>::to_vec)));
        }
        assert_eq!(got, vec![Some(b"abc".to_vec()), None, Some(b"ok".to_vec())]);
        b.reset();
        b.feed(b"new\n", &mut |l| got.push(l.map(<[u8]>::to_vec)));
        assert_eq!(got.last(), Some(&Some(b"new".to_vec())));
    }

    #[test]
    fn start_beginning_follows_from_the_first_entry() {
        use crate::metrics::Metrics;
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("invocations");
        let fake = dir.path().join("journalctl");
        std::fs::write(
            &fake,
            format!(
                "#!/bin/sh\nprintf '%s\\n' \"$*\" >> '{}'\n\
                 case \" $* \" in *' --follow '*) printf '%s\\n' '{{\"__CURSOR\":\"c1\",\"SYSLOG_IDENTIFIER\":\"sm-mta\",\"MESSAGE\":\"m\"}}'; exec sleep 30 ;; esac\n",
                log.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        let state = Arc::new(MailState::new(Arc::new(Metrics::for_replay()), 8, "h", &[]));
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let stop = CancellationToken::new();
        let settings = Settings { program: fake.display().to_string(), ..Settings::default() };
        let mut handle = {
            let _in = runtime.enter();
            spawn_with(settings, Start::Beginning, state.clone(), stop.clone())
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while state.tally().lines.iter().map(|l| l.2).sum::<u64>() < 1 {
            assert!(Instant::now() < deadline, "no line read");
            std::thread::sleep(Duration::from_millis(10));
        }
        let t = Instant::now();
        stop.cancel();
        runtime.block_on(handle.task.take().unwrap()).unwrap();
        assert!(t.elapsed() < Duration::from_secs(2), "stops promptly");
        let runs = std::fs::read_to_string(&log).unwrap();
        // the unit listing, then a follow without a cursor; no tail query
        assert!(!runs.contains("--lines=1"), "{runs}");
        let follows: Vec<&str> = runs.lines().filter(|l| l.contains("--follow")).collect();
        assert_eq!(follows.len(), 1, "{runs}");
        assert!(!follows[0].contains("--cursor"), "{runs}");
        assert_eq!(handle.snapshot().unwrap().state, TailState::Open);
    }
}
