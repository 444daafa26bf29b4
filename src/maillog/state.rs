//! The state file (`[maillog] state_file`, SPEC §7.1): every mail counter and every
//! file source's position, saved together so that a restart — `kill -9` included —
//! loses nothing, counts nothing twice, and shows no counter lower than a scrape saw.
//!
//! The invariant is one consistent snapshot: the counters reflect exactly the lines
//! before the saved offsets. File sources count a poll's lines and publish their
//! position while holding [`MailState`]'s gate for reading; a snapshot takes it for
//! writing, so it falls between two polls of every source. `/metrics` renders its
//! answer inside the same snapshot and answers only once that snapshot is on disk:
//! what a scrape saw is never lost. Besides, a snapshot is saved every
//! [`SAVE_INTERVAL`] and when the exporter stops.
//!
//! Saving is atomic: a temporary file beside the state file is written, fsynced and
//! renamed over it, and the directory is fsynced. A state file that cannot be read,
//! does not parse, or is not ours is logged, counted in
//! `mailroute_state_file_errors_total`, renamed to `STATE.corrupt`, and the exporter
//! starts fresh: never a refusal to start.
//!
//! The journal source publishes the cursor of its last counted entry under the same
//! gate, and a restart follows on from that cursor. File and journal sources also
//! publish what their Exim joiner holds (a split `[n/m]` entry under way, the
//! reject its reject-log copy would repeat), and take it back at the next start. Syslog and stdin sources keep
//! their counters across restarts, not a position (a syslog sender cannot be asked
//! to send again): lines they deliver between the last save and a crash are lost.
//!
//! [`MailState`]: super::processor::MailState

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::processor::{MailState, Resume, Tally};
use super::tail::TailPosition;
use super::{Class, Mta, Outcome, Reason, Stage};
use crate::metrics::{HostMtaLabels, MisrouteLabels, RejectLabels, SharedLabel};

/// What the state file's `format` field says.
pub const FORMAT: &str = "mailroute_exporter state";
/// The layout version written; others are refused (moved aside).
pub const VERSION: u32 = 1;
/// How often a snapshot is saved besides scrapes and the stop.
pub const SAVE_INTERVAL: Duration = Duration::from_secs(2);
/// A state file larger than this is not ours.
const MAX_SIZE: u64 = 64 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RejectCount {
    pub host: String,
    pub mta: String,
    pub stage: String,
    pub reason: String,
    pub class: String,
    pub count: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MisrouteCount {
    pub host: String,
    pub domain: String,
    pub count: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcceptedCount {
    pub host: String,
    pub mta: String,
    pub count: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceCount {
    pub source: String,
    /// outcome → lines.
    pub lines: BTreeMap<String, u64>,
    pub read_errors: u64,
    pub truncated: u64,
}

/// The state file's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Snapshot {
    pub format: String,
    pub version: u32,
    /// Unix seconds.
    pub saved_at: u64,
    pub rejects: Vec<RejectCount>,
    pub misroutes: Vec<MisrouteCount>,
    pub accepted: Vec<AcceptedCount>,
    pub sources: Vec<SourceCount>,
    /// Source name (the configured path) → where its reading stands.
    pub positions: BTreeMap<String, TailPosition>,
    /// Journal source → the cursor of the last entry counted (absent in files
    /// written before the journal resumed from the state file).
    #[serde(default)]
    pub cursors: BTreeMap<String, String>,
    /// Source → what its Exim joiner held: a split entry under way, the reject a
    /// reject-log copy would repeat (absent when nothing, and in older files).
    #[serde(default)]
    pub joins: BTreeMap<String, super::exim::JoinState>,
}

/// The counters of a snapshot, typed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Counts {
    pub rejects: Vec<(RejectLabels, u64)>,
    pub misroutes: Vec<(MisrouteLabels, u64)>,
    pub accepted: Vec<(HostMtaLabels, u64)>,
    pub sources: Vec<SourceCounts>,
}

/// One source's counters: (source, per-outcome lines, read errors, truncated lines).
pub type SourceCounts = (String, Vec<(Outcome, u64)>, u64, u64);

impl Snapshot {
    /// A snapshot of these counters and positions.
    pub fn new(tally: &Tally, published: BTreeMap<String, Resume>) -> Snapshot {
        let (mut positions, mut cursors, mut joins) = (BTreeMap::new(), BTreeMap::new(), BTreeMap::new());
        for (source, r) in published {
            if let Some(p) = r.position {
                positions.insert(source.clone(), p);
            }
            if let Some(c) = r.cursor {
                cursors.insert(source.clone(), c);
            }
            if let Some(j) = r.join {
                joins.insert(source, j);
            }
        }
        let mut sources: BTreeMap<String, SourceCount> = BTreeMap::new();
        for (s, o, n) in &tally.lines {
            let e = sources.entry(s.clone()).or_insert_with(|| SourceCount {
                source: s.clone(),
                lines: BTreeMap::new(),
                read_errors: 0,
                truncated: 0,
            });
            if *n > 0 {
                e.lines.insert(o.as_str().to_string(), *n);
            }
        }
        for (s, errors, truncated) in &tally.sources {
            if let Some(e) = sources.get_mut(s) {
                e.read_errors = *errors;
                e.truncated = *truncated;
            }
        }
        Snapshot {
            format: FORMAT.to_string(),
            version: VERSION,
            saved_at: SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
            rejects: tally
                .rejects
                .iter()
                .map(|(l, n)| RejectCount {
                    host: l.host.to_string(),
                    mta: l.mta.to_string(),
                    stage: l.stage.to_string(),
                    reason: l.reason.to_string(),
                    class: l.class.to_string(),
                    count: *n,
                })
                .collect(),
            misroutes: tally
                .misroutes
                .iter()
                .map(|(l, n)| MisrouteCount { host: l.host.to_string(), domain: l.domain.to_string(), count: *n })
                .collect(),
            accepted: tally
                .accepted
                .iter()
                .map(|(l, n)| AcceptedCount { host: l.host.to_string(), mta: l.mta.to_string(), count: *n })
                .collect(),
            sources: sources.into_values().collect(),
            positions,
            cursors,
            joins,
        }
    }

    /// Reads a state file's bytes. Anything that is not a whole state file of this
    /// version, with known label values, is an error.
    pub fn parse(bytes: &[u8]) -> Result<(Snapshot, Counts), String> {
        let s: Snapshot = serde_json::from_slice(bytes).map_err(|e| format!("not a state file: {e}"))?;
        if s.format != FORMAT {
            return Err(format!("not a state file of mailroute_exporter (format {:?})", s.format));
        }
        if s.version != VERSION {
            return Err(format!("state file version {} (this build reads {VERSION})", s.version));
        }
        let counts = s.counts()?;
        for (source, j) in &s.joins {
            j.check().map_err(|e| format!("Exim entry under way for {source:?}: {e}"))?;
        }
        Ok((s, counts))
    }

    /// What the snapshot kept of each source, gathered per source.
    fn resume(&self) -> BTreeMap<String, Resume> {
        let mut out: BTreeMap<String, Resume> = BTreeMap::new();
        for (s, p) in &self.positions {
            out.entry(s.clone()).or_default().position = Some(p.clone());
        }
        for (s, c) in &self.cursors {
            out.entry(s.clone()).or_default().cursor = Some(c.clone());
        }
        for (s, j) in &self.joins {
            out.entry(s.clone()).or_default().join = Some(j.clone());
        }
        out
    }

    fn counts(&self) -> Result<Counts, String> {
        fn label<T>(what: &str, v: &str, f: fn(&str) -> Option<T>) -> Result<T, String> {
            f(v).ok_or_else(|| format!("unknown {what} {v:?}"))
        }
        let mut c = Counts::default();
        for r in &self.rejects {
            let labels = RejectLabels {
                host: SharedLabel::new(&r.host),
                mta: label("mta", &r.mta, Mta::from_label)?,
                stage: label("stage", &r.stage, Stage::from_label)?,
                reason: label("reason", &r.reason, Reason::from_label)?,
                class: label("class", &r.class, Class::from_label)?,
            };
            c.rejects.push((labels, r.count));
        }
        for m in &self.misroutes {
            c.misroutes.push((
                MisrouteLabels { host: SharedLabel::new(&m.host), domain: SharedLabel::new(&m.domain) },
                m.count,
            ));
        }
        for a in &self.accepted {
            let labels = HostMtaLabels { host: SharedLabel::new(&a.host), mta: label("mta", &a.mta, Mta::from_label)? };
            c.accepted.push((labels, a.count));
        }
        for s in &self.sources {
            let mut lines = Vec::new();
            for (o, n) in &s.lines {
                lines.push((label("outcome", o, Outcome::from_label)?, *n));
            }
            c.sources.push((s.source.clone(), lines, s.read_errors, s.truncated));
        }
        Ok(c)
    }

    pub fn to_json(&self) -> Vec<u8> {
        // a tree of strings and numbers always serialises
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// What loading found.
#[derive(Debug)]
pub enum Loaded {
    /// No state file yet.
    Fresh,
    Restored(Box<(Snapshot, Counts)>),
    /// Unreadable or not ours: moved to the path given (if the move worked).
    Corrupt {
        error: String,
        moved_to: Option<PathBuf>,
    },
}

/// Reads the state file; a bad one is renamed to `PATH.corrupt`.
pub fn load(path: &Path) -> Loaded {
    let bytes = match std::fs::metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Loaded::Fresh,
        Err(e) => Err(e.to_string()),
        Ok(m) if !m.is_file() => Err("not a regular file".to_string()),
        Ok(m) if m.len() > MAX_SIZE => Err(format!("{} bytes, too large for a state file", m.len())),
        Ok(_) => std::fs::read(path).map_err(|e| e.to_string()),
    };
    let error = match bytes.and_then(|b| Snapshot::parse(&b)) {
        Ok(sc) => return Loaded::Restored(Box::new(sc)),
        Err(e) => e,
    };
    let aside = with_suffix(path, ".corrupt");
    let moved_to = std::fs::rename(path, &aside).ok().map(|()| aside);
    Loaded::Corrupt { error, moved_to }
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Writes `bytes` to `path` atomically: temporary file, fdatasync, rename, fsync of
/// the directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = with_suffix(path, ".tmp");
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        // the data is what matters; the rename below is made durable by the
        // directory's fsync
        f.sync_data()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Takes snapshots of a [`MailState`] and saves them to the state file.
#[derive(Debug)]
pub struct Persister {
    path: PathBuf,
    mail: Arc<MailState>,
    /// Snapshots are numbered; an older one never overwrites a newer one.
    next: AtomicU64,
    /// The number and content of the snapshot on disk (and the lock that orders
    /// writes): an unchanged snapshot is not written again.
    saved: Mutex<(u64, Option<Snapshot>)>,
}

impl Persister {
    pub fn new(path: impl Into<PathBuf>, mail: Arc<MailState>) -> Persister {
        Persister { path: path.into(), mail, next: AtomicU64::new(1), saved: Mutex::new((0, None)) }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Loads the state file into the mail state (counters, and positions for the file
    /// sources to resume from). Call before any source starts.
    pub fn restore(&self) {
        match load(&self.path) {
            Loaded::Fresh => tracing::info!(state_file = %self.path.display(), "no state file yet, starting fresh"),
            Loaded::Restored(sc) => {
                let (s, counts) = *sc;
                self.mail.restore(&counts, s.resume());
                tracing::info!(
                    state_file = %self.path.display(),
                    saved_at = s.saved_at,
                    files = s.positions.len(),
                    journal_cursors = s.cursors.len(),
                    "counters and positions restored"
                );
            }
            Loaded::Corrupt { error, moved_to } => {
                self.mail.metrics.state_file_errors.inc();
                tracing::error!(
                    state_file = %self.path.display(),
                    error = error.as_str(),
                    moved_to = %moved_to.as_deref().map_or_else(|| "(could not move it)".into(), |p| p.display().to_string()),
                    "the state file is unusable; starting fresh"
                );
            }
        }
    }

    /// Runs `inside` while no file source is between reading lines and publishing
    /// its position, and takes the snapshot there.
    pub fn snapshot_with<T>(&self, inside: impl FnOnce() -> T) -> (T, Snapshot, u64) {
        let _gate = self.mail.gate.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        let out = inside();
        let snapshot = Snapshot::new(&self.mail.tally(), self.mail.published());
        let n = self.next.fetch_add(1, Ordering::SeqCst);
        (out, snapshot, n)
    }

    /// Saves snapshot number `n` unless a newer one is on disk already. Failures are
    /// logged and counted.
    pub fn save(&self, snapshot: &Snapshot, n: u64) -> bool {
        let mut saved = self.saved.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if saved.0 >= n {
            return true;
        }
        let unchanged =
            saved.1.as_ref().is_some_and(|last| Snapshot { saved_at: last.saved_at, ..snapshot.clone() } == *last);
        if unchanged {
            saved.0 = n;
            return true;
        }
        match write_atomic(&self.path, &snapshot.to_json()) {
            Ok(()) => {
                *saved = (n, Some(snapshot.clone()));
                true
            }
            Err(e) => {
                self.mail.metrics.state_file_errors.inc();
                tracing::warn!(state_file = %self.path.display(), error = %e, "cannot save the state file");
                false
            }
        }
    }

    /// Takes a snapshot and saves it.
    pub fn save_now(&self) -> bool {
        let ((), s, n) = self.snapshot_with(|| ());
        self.save(&s, n)
    }

    /// Renders metrics with `render` inside a snapshot and returns them once that
    /// snapshot is saved, so that what the scrape shows is on disk.
    pub fn render(&self, render: impl FnOnce() -> String) -> String {
        let (text, s, n) = self.snapshot_with(render);
        self.save(&s, n);
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::maillog::processor::Processor;
    use crate::maillog::tail::{FilePosition, Fingerprint};
    use crate::metrics::Metrics;

    fn state() -> Arc<MailState> {
        Arc::new(MailState::new(Arc::new(Metrics::new(None)), 64, "localhost", &["nmrc.org".to_string()]))
    }

    const MISROUTE: &[u8] = b"May 28 08:25:35 rigor-mortis sm-mta[151721]: 04SDPXC5151721: ruleset=check_rcpt, arg1=<x@nmrc.org>, relay=r [40.107.94.117], reject=550 5.7.1 <x@nmrc.org>... Relaying denied. Proper authentication required.";

    #[test]
    fn counters_and_positions_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        let a = state();
        let mut p = Processor::new(a.clone(), &SharedLabel::new("/var/log/mail.log"));
        p.line(MISROUTE);
        p.line(MISROUTE);
        p.line(b"May 28 08:25:35 h postfix/smtpd[1]: ABC123: client=x[1.2.3.4]");
        p.line(b"garbage");
        let pos = TailPosition {
            current: Some(FilePosition {
                dev: 1,
                ino: 2,
                offset: 300,
                fingerprint: Fingerprint::of(b"May"),
                skip_line: false,
            }),
            draining: None,
        };
        a.publish("/var/log/mail.log", |r| r.position = Some(pos.clone()));
        let saver = Persister::new(&path, a.clone());
        assert!(saver.save_now());

        let b = state();
        Persister::new(&path, b.clone()).restore();
        assert_eq!(b.tally(), a.tally());
        assert_eq!(b.take_resume("/var/log/mail.log").position, Some(pos));
        let text = b.metrics.encode_text();
        assert!(text.contains(r#"mailroute_misroutes_total{host="rigor-mortis",domain="nmrc.org"} 2"#), "{text}");
        assert!(
            text.contains(r#"mailroute_log_lines_total{source="/var/log/mail.log",outcome="unparsed"} 1"#),
            "{text}"
        );
        // counting goes on from the restored values
        let mut p = Processor::new(b.clone(), &SharedLabel::new("/var/log/mail.log"));
        p.line(MISROUTE);
        let text = b.metrics.encode_text();
        assert!(text.contains(r#"mailroute_misroutes_total{host="rigor-mortis",domain="nmrc.org"} 3"#), "{text}");
        assert_eq!(b.metrics.state_file_errors.get(), 0);
    }

    #[test]
    fn corrupt_and_foreign_files_are_moved_aside_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        let cases: &[&[u8]] = &[
            b"",
            b"{\"format\": \"mailroute_exporter state\", \"version\": 1, \"rejects\": [",
            b"\xff\xfe\x00garbage",
            br#"{"format":"someone else","version":1,"saved_at":0,"rejects":[],"misroutes":[],"accepted":[],"sources":[],"positions":{}}"#,
            br#"{"format":"mailroute_exporter state","version":99,"saved_at":0,"rejects":[],"misroutes":[],"accepted":[],"sources":[],"positions":{}}"#,
            br#"{"format":"mailroute_exporter state","version":1,"saved_at":0,"rejects":[{"host":"h","mta":"qmail","stage":"rcpt","reason":"rbl","class":"permanent","count":3}],"misroutes":[],"accepted":[],"sources":[],"positions":{}}"#,
            br#"{"format":"mailroute_exporter state","version":1,"saved_at":0,"rejects":[],"misroutes":[],"accepted":[],"sources":[],"positions":{},"extra":1}"#,
            br#"{"format":"mailroute_exporter state","version":1,"saved_at":0,"rejects":[],"misroutes":[],"accepted":[],"sources":[],"positions":{},"joins":{"/l":{"pending":[{"process":1,"line":"not base64!","line_done":false,"total":2}],"last_reject":null}}}"#,
            br#"{"format":"mailroute_exporter state","version":1,"saved_at":0,"rejects":[],"misroutes":[],"accepted":[],"sources":[{"source":"s","lines":{"reject":-1},"read_errors":0,"truncated":0}],"positions":{}}"#,
        ];
        for (i, bytes) in cases.iter().enumerate() {
            std::fs::write(&path, bytes).unwrap();
            let s = state();
            Persister::new(&path, s.clone()).restore();
            assert_eq!(s.metrics.state_file_errors.get(), 1, "case {i}");
            assert_eq!(s.tally(), Tally::default(), "case {i}: nothing restored");
            assert!(!path.exists(), "case {i}: moved aside");
            assert_eq!(std::fs::read(dir.path().join("state.corrupt")).unwrap(), *bytes, "case {i}");
        }
        // a directory where the file should be
        std::fs::create_dir(&path).unwrap();
        let s = state();
        Persister::new(&path, s.clone()).restore();
        assert_eq!(s.metrics.state_file_errors.get(), 1);
    }

    #[test]
    fn a_valid_file_with_zero_counts_is_no_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        let s = state();
        assert!(Persister::new(&path, s.clone()).save_now());
        let t = state();
        Persister::new(&path, t.clone()).restore();
        assert_eq!(t.metrics.state_file_errors.get(), 0);
        assert!(path.exists());
    }

    #[test]
    fn an_older_snapshot_never_overwrites_a_newer_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        let s = state();
        let saver = Persister::new(&path, s.clone());
        let ((), old, n_old) = saver.snapshot_with(|| ());
        let mut p = Processor::new(s.clone(), &SharedLabel::new("x"));
        p.line(MISROUTE);
        let ((), new, n_new) = saver.snapshot_with(|| ());
        assert!(saver.save(&new, n_new));
        assert!(saver.save(&old, n_old));
        let (on_disk, _) = Snapshot::parse(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(on_disk.misroutes.len(), 1);
    }

    #[test]
    fn an_unchanged_snapshot_is_not_written_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        let s = state();
        let saver = Persister::new(&path, s.clone());
        assert!(saver.save_now());
        std::fs::remove_file(&path).unwrap();
        assert!(saver.save_now());
        assert!(!path.exists(), "nothing changed: no write");
        let mut p = Processor::new(s.clone(), &SharedLabel::new("x"));
        p.line(MISROUTE);
        assert!(saver.save_now());
        assert!(path.exists(), "a change is written");
    }

    #[test]
    fn save_failures_are_counted() {
        let s = state();
        let saver = Persister::new("/nonexistent-dir/for/sure/state", s.clone());
        assert!(!saver.save_now());
        assert_eq!(s.metrics.state_file_errors.get(), 1);
    }
}
