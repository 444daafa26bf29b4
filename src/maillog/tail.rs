//! Reading lines from files that grow, rotate and get truncated.
//!
//! [`LineSplitter`] cuts a byte stream into lines (any bytes, not only UTF-8), caps
//! a line at [`MAX_LINE`] bytes and reports the cut. [`FileTail`] follows one path
//! by polling, the way mtail and `tail -F` do, and survives:
//!
//! - **rename + create** (logrotate `create`): the new file at the path is read from
//!   its beginning, and the old one stays open and is read first on every poll until
//!   it has been quiet for [`ROTATE_WAIT`]: a syslog daemon goes on writing to the
//!   renamed file until logrotate's postrotate HUP reaches it;
//! - **delete + recreate**: the same, once a new file appears at the path;
//! - **copytruncate**: the size drops below the read position, so reading restarts
//!   at 0. Lines written between logrotate's copy and its truncate are in the copy
//!   only and are lost — the documented window of that rotation style;
//! - **a file that does not exist yet**: it is picked up from its beginning when it
//!   appears (`start = "end"` applies only to a file present at startup).
//!
//! The tailer yields lines and nothing else: it knows nothing about mail. Each
//! [`FileTail::poll`] does its I/O and returns; the caller decides when to poll
//! again (100 ms in `serve`), which also makes the rotation tests deterministic.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::config::Start;

/// Lines longer than this are cut to this length (the rest is dropped).
pub const MAX_LINE: usize = 64 * 1024;
/// How long a rotated-away file is still read after its last growth (fluent-bit calls
/// this `rotate_wait`): the writer may not have reopened the path yet.
pub const ROTATE_WAIT: Duration = Duration::from_secs(5);
/// Bytes read per `read` call.
const CHUNK: usize = 64 * 1024;

/// Splits a byte stream into lines without their `\n`.
#[derive(Debug, Default)]
pub struct LineSplitter {
    partial: Vec<u8>,
    /// Inside a line that was already cut: drop bytes up to its newline.
    discarding: bool,
}

impl LineSplitter {
    /// Feeds bytes; `emit(line, truncated)` is called for each complete line.
    pub fn feed(&mut self, mut chunk: &[u8], emit: &mut dyn FnMut(&[u8], bool)) {
        while !chunk.is_empty() {
            match memchr::memchr(b'\n', chunk) {
                Some(nl) => {
                    let piece = &chunk[..nl];
                    chunk = &chunk[nl + 1..];
                    if self.discarding {
                        self.discarding = false;
                        continue;
                    }
                    if self.partial.is_empty() {
                        if piece.len() > MAX_LINE {
                            emit(&piece[..MAX_LINE], true);
                        } else {
                            emit(piece, false);
                        }
                    } else {
                        let room = MAX_LINE - self.partial.len();
                        let truncated = piece.len() > room;
                        self.partial.extend_from_slice(&piece[..piece.len().min(room)]);
                        emit(&self.partial, truncated);
                        self.partial.clear();
                    }
                }
                None => {
                    if !self.discarding {
                        let room = MAX_LINE - self.partial.len();
                        if chunk.len() > room {
                            self.partial.extend_from_slice(&chunk[..room]);
                            emit(&self.partial, true);
                            self.partial.clear();
                            self.discarding = true;
                        } else {
                            self.partial.extend_from_slice(chunk);
                        }
                    }
                    chunk = &[];
                }
            }
        }
        if self.partial.capacity() > 4 * CHUNK && self.partial.is_empty() {
            self.partial = Vec::new();
        }
    }

    /// Emits an unfinished last line (at end of input, or when its file rotated away).
    pub fn flush(&mut self, emit: &mut dyn FnMut(&[u8], bool)) {
        if !self.partial.is_empty() {
            emit(&self.partial, false);
            self.partial.clear();
        }
        self.discarding = false;
    }

    /// Bytes waiting for their newline.
    pub fn pending(&self) -> usize {
        self.partial.len()
    }
}

/// What a tailed path looks like right now (for the status page and readiness).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TailState {
    /// Not polled yet.
    Starting,
    /// The file is open and being read.
    Open,
    /// The path does not exist (yet); it will be read when it appears.
    Waiting,
    /// The path exists but cannot be opened or read; retried.
    Error,
}

/// Something the tailer noticed, for logs and counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TailEvent {
    Opened { from_end: bool },
    Rotated,
    Truncated,
    Error(String),
}

/// A file rotated away from the path, still read until it stays quiet.
#[derive(Debug)]
struct Draining {
    file: File,
    splitter: LineSplitter,
    /// When it last grew (or was rotated away).
    active: Instant,
}

/// Follows one path.
#[derive(Debug)]
pub struct FileTail {
    path: PathBuf,
    start: Start,
    file: Option<File>,
    /// (device, inode) of the open file.
    id: (u64, u64),
    pos: u64,
    splitter: LineSplitter,
    /// No file has been opened yet: `start` still applies.
    first_open: bool,
    state: TailState,
    buf: Vec<u8>,
    last_error: Option<String>,
    /// The previous file after a rotation, while it may still grow.
    draining: Option<Draining>,
    rotate_wait: Duration,
}

impl FileTail {
    /// Sets how long a rotated-away file is still read after it last grew.
    pub fn with_rotate_wait(mut self, wait: Duration) -> FileTail {
        self.rotate_wait = wait;
        self
    }

    pub fn new(path: impl Into<PathBuf>, start: Start) -> FileTail {
        FileTail {
            path: path.into(),
            start,
            file: None,
            id: (0, 0),
            pos: 0,
            splitter: LineSplitter::default(),
            first_open: true,
            state: TailState::Starting,
            buf: vec![0; CHUNK],
            last_error: None,
            draining: None,
            rotate_wait: ROTATE_WAIT,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn state(&self) -> TailState {
        self.state
    }

    pub fn position(&self) -> u64 {
        self.pos
    }

    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    /// Reads what is new and follows rotation. `emit(line, truncated)` gets each
    /// line; `notice` gets events worth logging or counting.
    pub fn poll(&mut self, emit: &mut dyn FnMut(&[u8], bool), notice: &mut dyn FnMut(TailEvent)) {
        // what the writer still put into the previous file came before the new one's lines
        self.drain(emit, false);
        if self.file.is_some()
            && let Err(e) = self.read_to_end(emit)
        {
            self.fail(format!("reading {}: {e}", self.path.display()), notice);
            return;
        }
        match std::fs::metadata(&self.path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // renamed or deleted: keep the old file open (a writer may still
                // append to it) until a new one appears
                if self.file.is_none() {
                    self.state = TailState::Waiting;
                    self.first_open = false;
                }
            }
            Err(e) => self.fail(format!("stat {}: {e}", self.path.display()), notice),
            Ok(meta) => {
                let id = (meta.dev(), meta.ino());
                if self.file.is_some() && id != self.id {
                    // rotated: the old file was read to its end above and keeps being
                    // read until it is quiet; an older one still draining is closed now
                    self.drain(emit, true);
                    if let Some(file) = self.file.take() {
                        let splitter = std::mem::take(&mut self.splitter);
                        self.draining = Some(Draining { file, splitter, active: Instant::now() });
                    }
                    notice(TailEvent::Rotated);
                    self.open(emit, notice);
                } else if self.file.is_some() && meta.len() < self.pos {
                    self.splitter.flush(emit);
                    self.pos = 0;
                    let seek = self.file.as_mut().map(|f| f.seek(SeekFrom::Start(0)));
                    if let Some(Err(e)) = seek {
                        self.fail(format!("seeking {}: {e}", self.path.display()), notice);
                        return;
                    }
                    notice(TailEvent::Truncated);
                    if let Err(e) = self.read_to_end(emit) {
                        self.fail(format!("reading {}: {e}", self.path.display()), notice);
                    }
                } else if self.file.is_none() {
                    self.open(emit, notice);
                }
            }
        }
    }

    /// Reads the rest of the input and flushes an unfinished last line (used when
    /// stopping).
    pub fn finish(&mut self, emit: &mut dyn FnMut(&[u8], bool)) {
        self.drain(emit, true);
        if self.file.is_some() {
            let _ = self.read_to_end(emit);
        }
        self.splitter.flush(emit);
    }

    /// Reads what the rotated-away file gained; closes it (emitting an unfinished last
    /// line) when `close` or when it has been quiet for the rotate wait.
    fn drain(&mut self, emit: &mut dyn FnMut(&[u8], bool), close: bool) {
        let Some(d) = self.draining.as_mut() else { return };
        let grew = match read_all_from(&mut d.file, &mut self.buf, &mut d.splitter, emit) {
            Ok(n) => n > 0,
            Err(_) => false,
        };
        if grew {
            d.active = Instant::now();
        }
        if close || d.active.elapsed() >= self.rotate_wait {
            d.splitter.flush(emit);
            self.draining = None;
        }
    }

    /// A rotated-away file is still being read.
    pub fn draining(&self) -> bool {
        self.draining.is_some()
    }

    fn fail(&mut self, msg: String, notice: &mut dyn FnMut(TailEvent)) {
        self.file = None;
        self.state = TailState::Error;
        self.first_open = false;
        self.last_error = Some(msg.clone());
        notice(TailEvent::Error(msg));
    }

    fn open(&mut self, emit: &mut dyn FnMut(&[u8], bool), notice: &mut dyn FnMut(TailEvent)) {
        let mut file = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.state = TailState::Waiting;
                self.first_open = false;
                return;
            }
            Err(e) => return self.fail(format!("opening {}: {e}", self.path.display()), notice),
        };
        let meta = match file.metadata() {
            Ok(m) => m,
            Err(e) => return self.fail(format!("stat {}: {e}", self.path.display()), notice),
        };
        let from_end = self.first_open && self.start == Start::End;
        self.pos = if from_end { meta.len() } else { 0 };
        if from_end && let Err(e) = file.seek(SeekFrom::Start(self.pos)) {
            return self.fail(format!("seeking {}: {e}", self.path.display()), notice);
        }
        self.id = (meta.dev(), meta.ino());
        self.file = Some(file);
        self.first_open = false;
        self.state = TailState::Open;
        self.last_error = None;
        notice(TailEvent::Opened { from_end });
        if let Err(e) = self.read_to_end(emit) {
            self.fail(format!("reading {}: {e}", self.path.display()), notice);
        }
    }

    fn read_to_end(&mut self, emit: &mut dyn FnMut(&[u8], bool)) -> io::Result<()> {
        let Some(file) = self.file.as_mut() else { return Ok(()) };
        let n = read_all_from(file, &mut self.buf, &mut self.splitter, emit)?;
        self.pos += n;
        Ok(())
    }
}

/// Reads `file` to its end through `splitter`; returns the bytes read.
fn read_all_from(
    file: &mut File,
    buf: &mut [u8],
    splitter: &mut LineSplitter,
    emit: &mut dyn FnMut(&[u8], bool),
) -> io::Result<u64> {
    let mut total = 0u64;
    loop {
        let n = match file.read(buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        total += n as u64;
        splitter.feed(&buf[..n], emit);
    }
}

/// Reads a whole stream once, as `replay` does.
pub fn read_all(mut input: impl Read, emit: &mut dyn FnMut(&[u8], bool)) -> io::Result<u64> {
    let mut buf = vec![0u8; 256 * 1024];
    let mut splitter = LineSplitter::default();
    let mut total = 0u64;
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        total += n as u64;
        splitter.feed(&buf[..n], emit);
    }
    splitter.flush(emit);
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn split(chunks: &[&[u8]]) -> Vec<(Vec<u8>, bool)> {
        let mut s = LineSplitter::default();
        let mut out = Vec::new();
        for c in chunks {
            s.feed(c, &mut |l, t| out.push((l.to_vec(), t)));
        }
        s.flush(&mut |l, t| out.push((l.to_vec(), t)));
        out
    }

    #[test]
    fn splits_across_chunks() {
        let got = split(&[b"ab", b"c\nde", b"f\n\ng"]);
        let want: Vec<(Vec<u8>, bool)> =
            vec![(b"abc".to_vec(), false), (b"def".to_vec(), false), (b"".to_vec(), false), (b"g".to_vec(), false)];
        assert_eq!(got, want);
    }

    #[test]
    fn cuts_long_lines_and_resyncs() {
        let long = vec![b'x'; MAX_LINE + 10];
        let mut input = long.clone();
        input.extend_from_slice(b"\nnext\n");
        // in one chunk
        let got = split(&[&input]);
        assert_eq!(got.len(), 2);
        assert_eq!((got[0].0.len(), got[0].1), (MAX_LINE, true));
        assert_eq!(got[1], (b"next".to_vec(), false));
        // byte by byte in pieces
        let pieces: Vec<&[u8]> = input.chunks(1000).collect();
        let got = split(&pieces);
        assert_eq!(got.len(), 2);
        assert_eq!((got[0].0.len(), got[0].1), (MAX_LINE, true));
        assert_eq!(got[1], (b"next".to_vec(), false));
    }

    #[test]
    fn any_bytes_pass() {
        let got = split(&[b"\xff\xfe\x00\n\xc3\x28\n"]);
        assert_eq!(got, vec![(b"\xff\xfe\x00".to_vec(), false), (b"\xc3\x28".to_vec(), false)]);
    }

    fn poll(t: &mut FileTail) -> (Vec<String>, Vec<TailEvent>) {
        let mut lines = Vec::new();
        let mut events = Vec::new();
        t.poll(&mut |l, _| lines.push(String::from_utf8_lossy(l).into_owned()), &mut |e| events.push(e));
        (lines, events)
    }

    fn append(path: &Path, s: &str) {
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap();
        f.write_all(s.as_bytes()).unwrap();
    }

    #[test]
    fn start_end_skips_existing_then_follows() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("mail.log");
        append(&p, "old\n");
        let mut t = FileTail::new(&p, Start::End);
        assert_eq!(poll(&mut t).0, Vec::<String>::new());
        append(&p, "new 1\nnew");
        assert_eq!(poll(&mut t).0, vec!["new 1"]);
        append(&p, " 2\n");
        assert_eq!(poll(&mut t).0, vec!["new 2"]);
    }

    #[test]
    fn rename_and_create() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("mail.log");
        append(&p, "a\n");
        let mut t = FileTail::new(&p, Start::Beginning);
        assert_eq!(poll(&mut t).0, vec!["a"]);
        append(&p, "b\n");
        std::fs::rename(&p, dir.path().join("mail.log.1")).unwrap();
        // the writer still appends to the renamed file before reopening
        append(&dir.path().join("mail.log.1"), "c\n");
        let (lines, _) = poll(&mut t);
        assert_eq!(lines, vec!["b", "c"]);
        append(&p, "d\n");
        let (lines, events) = poll(&mut t);
        assert_eq!(lines, vec!["d"]);
        assert!(events.contains(&TailEvent::Rotated));
    }

    #[test]
    fn the_rotated_file_is_read_until_the_writer_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("mail.log");
        append(&p, "a\n");
        let mut t = FileTail::new(&p, Start::Beginning).with_rotate_wait(Duration::from_millis(300));
        assert_eq!(poll(&mut t).0, vec!["a"]);
        // the writer keeps its descriptor until logrotate's postrotate HUP
        let mut old = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
        std::fs::rename(&p, dir.path().join("mail.log.1")).unwrap();
        std::fs::File::create(&p).unwrap();
        let (lines, events) = poll(&mut t);
        assert!(lines.is_empty() && events.contains(&TailEvent::Rotated));
        old.write_all(b"b\n").unwrap();
        old.write_all(b"unfinished").unwrap();
        append(&p, "c\n");
        // the old file's line first: it was written before the new file's
        assert_eq!(poll(&mut t).0, vec!["b", "c"]);
        assert!(t.draining());
        std::thread::sleep(Duration::from_millis(350));
        // quiet long enough: closed, its unfinished line flushed
        assert_eq!(poll(&mut t).0, vec!["unfinished"]);
        assert!(!t.draining());
        old.write_all(b" too late\n").unwrap();
        append(&p, "d\n");
        assert_eq!(poll(&mut t).0, vec!["d"]);
    }

    #[test]
    fn copytruncate() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("mail.log");
        append(&p, "a\nb\n");
        let mut t = FileTail::new(&p, Start::Beginning);
        assert_eq!(poll(&mut t).0, vec!["a", "b"]);
        std::fs::copy(&p, dir.path().join("mail.log.1")).unwrap();
        std::fs::OpenOptions::new().write(true).truncate(true).open(&p).unwrap();
        append(&p, "c\n");
        let (lines, events) = poll(&mut t);
        assert_eq!(lines, vec!["c"]);
        assert!(events.contains(&TailEvent::Truncated));
    }

    #[test]
    fn delete_and_recreate_and_missing_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("mail.log");
        let mut t = FileTail::new(&p, Start::End);
        assert_eq!(poll(&mut t).0, Vec::<String>::new());
        assert_eq!(t.state(), TailState::Waiting);
        // appears later: read from its beginning despite start = end
        append(&p, "first\n");
        assert_eq!(poll(&mut t).0, vec!["first"]);
        assert_eq!(t.state(), TailState::Open);
        std::fs::remove_file(&p).unwrap();
        assert_eq!(poll(&mut t).0, Vec::<String>::new());
        append(&p, "second\n");
        assert_eq!(poll(&mut t).0, vec!["second"]);
    }
}
