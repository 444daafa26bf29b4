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
//! - **copytruncate**: the size drops below the read position, or the first bytes
//!   change (the file was emptied and refilled between two reads): the rest is read
//!   from the copy (same first bytes, found beside the path, compressed files
//!   skipped), then the truncated file from 0. Only lines written between
//!   logrotate's copy and its truncate and not yet read are lost (in no file then);
//! - **several rotations between two reads** (a slow moment, or while the exporter
//!   was stopped): the generations never seen at the path are read whole, oldest
//!   first, ordered by birth time (a file system without birth times loses them);
//! - **a restart** ([`FileTail::with_resume`], the state file): reading goes on at
//!   the saved offset, in the same file or in its rotation (found by inode and first
//!   bytes), see [`FileTail::saved_position`];
//! - **a file that does not exist yet**: it is picked up from its beginning when it
//!   appears (`start = "end"` applies only to a file present at startup).
//!
//! The tailer yields lines and nothing else: it knows nothing about mail. Each
//! [`FileTail::poll`] does its I/O and returns; the caller decides when to poll
//! again (`serve`: on inotify events, at least every 100 ms), which also makes the
//! rotation tests deterministic.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, MetadataExt};
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
    Opened {
        from_end: bool,
    },
    Rotated,
    Truncated,
    /// After a truncation, the rest was read from this rotated copy.
    CopyRead(PathBuf),
    /// Continued from a saved position; `rotated`: in the file's rotation.
    Resumed {
        offset: u64,
        rotated: bool,
    },
    /// A saved position's file is gone; its unread lines are lost.
    Lost(String),
    /// A rotated generation never followed at the path (several rotations between
    /// two reads, or while stopped) was read whole.
    SkippedGeneration(PathBuf),
    Error(String),
}

/// Bytes at the start of a file that identify it across renames and copies.
pub const FINGERPRINT_MAX: usize = 1024;

/// The identity of a file's content: FNV-1a over its first `len` bytes (at most
/// [`FINGERPRINT_MAX`]). A rename keeps it, and so does logrotate's `copytruncate`
/// copy; a truncated or new file has another one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Fingerprint {
    pub len: u32,
    pub hash: u64,
}

impl Fingerprint {
    /// The fingerprint of `bytes` (all of them).
    pub fn of(bytes: &[u8]) -> Fingerprint {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        Fingerprint { len: u32::try_from(bytes.len()).unwrap_or(u32::MAX), hash: h }
    }

    /// Reads the first `len` bytes of `file` (without moving its cursor) and
    /// fingerprints them; `None` when the file is shorter.
    pub fn read(file: &File, len: usize) -> io::Result<Option<Fingerprint>> {
        let mut buf = vec![0u8; len.min(FINGERPRINT_MAX)];
        let mut got = 0;
        while got < buf.len() {
            match file.read_at(&mut buf[got..], got as u64) {
                Ok(0) => return Ok(None),
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(Some(Fingerprint::of(&buf)))
    }

    /// Whether `file` begins with the bytes this fingerprint was taken of.
    fn matches(&self, file: &File) -> bool {
        // no bytes seen: every file begins that way
        self.len == 0 || matches!(Fingerprint::read(file, self.len as usize), Ok(Some(f)) if f == *self)
    }
}

/// Where reading stands in one file: what the state file keeps. `offset` is the end
/// of the last whole line read, so a restart resumes at a line start; `skip_line`
/// says that the line there was already cut and counted (the rest is dropped).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FilePosition {
    pub dev: u64,
    pub ino: u64,
    pub offset: u64,
    pub fingerprint: Fingerprint,
    #[serde(default)]
    pub skip_line: bool,
}

/// Where a tailed path's reading stands: the file at the path and the one rotated
/// away that is still read.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TailPosition {
    pub current: Option<FilePosition>,
    pub draining: Option<FilePosition>,
}

/// A file rotated away from the path, still read until it stays quiet.
#[derive(Debug)]
struct Draining {
    file: File,
    id: (u64, u64),
    pos: u64,
    fp: Fingerprint,
    splitter: LineSplitter,
    /// When it last grew (or was rotated away).
    active: Instant,
}

impl Draining {
    fn position(&self) -> FilePosition {
        position_of(self.id, self.pos, self.fp, &self.splitter)
    }
}

fn position_of(id: (u64, u64), pos: u64, fp: Fingerprint, splitter: &LineSplitter) -> FilePosition {
    FilePosition {
        dev: id.0,
        ino: id.1,
        offset: pos.saturating_sub(splitter.pending() as u64),
        fingerprint: fp,
        skip_line: splitter.discarding,
    }
}

/// Compressed rotations are never read back (logrotate `compress`).
const COMPRESSED: &[&str] = &[".gz", ".bz2", ".xz", ".zst", ".lz4", ".lzma", ".Z", ".zip"];

/// The files beside `path` that a rotation may have made of it: same directory,
/// name starting with the path's name, not compressed. The path itself comes first.
fn rotation_candidates(path: &Path) -> Vec<PathBuf> {
    let mut out = vec![path.to_path_buf()];
    let Some(base) = path.file_name().and_then(|n| n.to_str()) else { return out };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let Ok(entries) = std::fs::read_dir(&dir) else { return out };
    let mut found: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.starts_with(base) && n != base && !COMPRESSED.iter().any(|c| n.ends_with(c)))
        .map(|n| dir.join(n))
        .collect();
    found.sort();
    out.extend(found);
    out
}

/// Finds the file a saved position belongs to among `path` and its rotations: the
/// same inode with the same first bytes first, else any with the same first bytes
/// (a `copytruncate` copy). The file must hold at least `offset` bytes. `exclude`
/// is an inode that cannot be it (the truncated original).
fn locate(path: &Path, at: &FilePosition, exclude: Option<(u64, u64)>) -> Option<(PathBuf, File, (u64, u64))> {
    let mut by_content = None;
    for cand in rotation_candidates(path) {
        let Ok(file) = File::open(&cand) else { continue };
        let Ok(meta) = file.metadata() else { continue };
        let id = (meta.dev(), meta.ino());
        if !meta.is_file() || Some(id) == exclude || meta.len() < at.offset || !at.fingerprint.matches(&file) {
            continue;
        }
        if id == (at.dev, at.ino) {
            return Some((cand, file, id));
        }
        // an empty fingerprint says nothing about content: only the inode counts
        if by_content.is_none() && at.fingerprint.len > 0 {
            by_content = Some((cand, file, id));
        }
    }
    by_content
}

/// The rotations of `path` (not the path itself, nor `skip`) created after `than`,
/// oldest first: the generations a writer filled after it, never opened at the path.
/// Creation (birth) time orders generations: a rename keeps it, while modification
/// times do not (a writer may append to the previous file after the next one was
/// created). Without birth times (a file system that keeps none) nothing is
/// returned: a generation skipped then is lost, never counted twice.
fn newer_rotations(path: &Path, than: &File, skip: &[(u64, u64)]) -> Vec<(PathBuf, File)> {
    let Ok(since) = than.metadata().and_then(|m| m.created()) else { return Vec::new() };
    let at_path = std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()));
    let mut out = Vec::new();
    for cand in rotation_candidates(path).into_iter().skip(1) {
        let Ok(file) = File::open(&cand) else { continue };
        let Ok(meta) = file.metadata() else { continue };
        let id = (meta.dev(), meta.ino());
        if !meta.is_file() || skip.contains(&id) || Some(id) == at_path {
            continue;
        }
        if let Ok(born) = meta.created()
            && born > since
        {
            out.push((born, cand, file));
        }
    }
    out.sort_by_key(|(b, _, _)| *b);
    out.into_iter().map(|(_, p, f)| (p, f)).collect()
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
    /// The first bytes of the open file, as far as they have been read.
    fp: Fingerprint,
    splitter: LineSplitter,
    /// No file has been opened yet: `start` still applies.
    first_open: bool,
    state: TailState,
    buf: Vec<u8>,
    last_error: Option<String>,
    /// The previous file after a rotation, while it may still grow.
    draining: Option<Draining>,
    rotate_wait: Duration,
    /// A saved position to resume from at the first poll (the state file).
    resume: Option<TailPosition>,
}

impl FileTail {
    /// Sets how long a rotated-away file is still read after it last grew.
    pub fn with_rotate_wait(mut self, wait: Duration) -> FileTail {
        self.rotate_wait = wait;
        self
    }

    /// Resumes where a previous run stopped (its [`FileTail::saved_position`]),
    /// instead of `start`, also when the files were rotated meanwhile.
    pub fn with_resume(mut self, at: Option<TailPosition>) -> FileTail {
        self.resume = at.filter(|p| p.current.is_some() || p.draining.is_some());
        self
    }

    pub fn new(path: impl Into<PathBuf>, start: Start) -> FileTail {
        FileTail {
            path: path.into(),
            start,
            file: None,
            id: (0, 0),
            pos: 0,
            fp: Fingerprint::default(),
            splitter: LineSplitter::default(),
            first_open: true,
            state: TailState::Starting,
            buf: vec![0; CHUNK],
            last_error: None,
            draining: None,
            rotate_wait: ROTATE_WAIT,
            resume: None,
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

    /// Where reading stands, for the state file: exactly the lines emitted so far
    /// lie before these offsets (an unfinished line is not counted as read).
    pub fn saved_position(&self) -> TailPosition {
        if let Some(r) = &self.resume {
            return r.clone();
        }
        TailPosition {
            current: self.file.as_ref().map(|_| position_of(self.id, self.pos, self.fp, &self.splitter)),
            draining: self.draining.as_ref().map(Draining::position),
        }
    }

    /// Reads what is new and follows rotation. `emit(line, truncated)` gets each
    /// line; `notice` gets events worth logging or counting.
    pub fn poll(&mut self, emit: &mut dyn FnMut(&[u8], bool), notice: &mut dyn FnMut(TailEvent)) {
        if let Some(at) = self.resume.take() {
            self.resume_from(at, emit, notice);
        }
        // what the writer still put into the previous file came before the new one's lines
        self.drain(emit, false);
        // truncated (copytruncate)? told by the size, or by the first bytes when the
        // file grew back past the offset; checked before reading, which would
        // otherwise read the new content from the old offset
        let shrunk = self.file.as_ref().and_then(|f| f.metadata().ok()).is_some_and(|m| m.len() < self.pos);
        if self.file.is_some() && (shrunk || !self.same_start()) {
            self.truncated(emit, notice);
        } else if self.file.is_some()
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
                        // rotated more than once since the last poll (a slow moment):
                        // the generations in between are read whole, in order
                        let newer = newer_rotations(&self.path, &file, &[self.id]);
                        let splitter = std::mem::take(&mut self.splitter);
                        self.draining = Some(Draining {
                            file,
                            id: self.id,
                            pos: self.pos,
                            fp: self.fp,
                            splitter,
                            active: Instant::now(),
                        });
                        if !newer.is_empty() {
                            self.drain(emit, true);
                            self.read_whole(newer, emit, notice);
                        }
                    }
                    notice(TailEvent::Rotated);
                    self.open(emit, notice);
                } else if self.file.is_none() {
                    self.open(emit, notice);
                }
            }
        }
        self.update_fingerprint();
    }

    /// The open file still begins with the bytes it began with when read.
    fn same_start(&self) -> bool {
        match &self.file {
            Some(f) if self.fp.len > 0 => self.fp.matches(f),
            _ => true,
        }
    }

    /// Extends the fingerprint over bytes read since, up to [`FINGERPRINT_MAX`].
    fn update_fingerprint(&mut self) {
        let want = self.pos.min(FINGERPRINT_MAX as u64) as usize;
        if want > self.fp.len as usize
            && let Some(f) = &self.file
            && let Ok(Some(fp)) = Fingerprint::read(f, want)
        {
            self.fp = fp;
        }
    }

    /// copytruncate: the file at the path was copied, then emptied. What was written
    /// between the last read and the copy is in the copy: it is read from the same
    /// offset first (found by its first bytes among the path's rotations), then the
    /// truncated file from its start. Only what was written between logrotate's copy
    /// and its truncate is lost, the window no reader can close.
    fn truncated(&mut self, emit: &mut dyn FnMut(&[u8], bool), notice: &mut dyn FnMut(TailEvent)) {
        self.drain(emit, true);
        let here =
            FilePosition { dev: self.id.0, ino: self.id.1, offset: self.pos, fingerprint: self.fp, skip_line: false };
        if self.fp.len > 0
            && let Some((copy, mut file, _)) = locate(&self.path, &here, Some(self.id))
        {
            let read = file
                .seek(SeekFrom::Start(self.pos))
                .and_then(|_| read_all_from(&mut file, &mut self.buf, &mut self.splitter, emit));
            if let Err(e) = read {
                notice(TailEvent::Error(format!("reading the rotated copy {}: {e}", copy.display())));
            }
            notice(TailEvent::CopyRead(copy));
        }
        self.splitter.flush(emit);
        self.pos = 0;
        self.fp = Fingerprint::default();
        let seek = self.file.as_mut().map(|f| f.seek(SeekFrom::Start(0)));
        if let Some(Err(e)) = seek {
            self.fail(format!("seeking {}: {e}", self.path.display()), notice);
            return;
        }
        notice(TailEvent::Truncated);
        if let Err(e) = self.read_to_end(emit) {
            self.fail(format!("reading {}: {e}", self.path.display()), notice);
        }
    }

    /// Continues from a saved position: in the same file when it is still at the
    /// path; in its rotation (found by inode and first bytes) when it was rotated
    /// away meanwhile, then the file now at the path from its start; a file that
    /// was draining is read to its end first. When the file is gone (deleted,
    /// compressed), the path is read from its start: what it held is lost, and said.
    fn resume_from(&mut self, at: TailPosition, emit: &mut dyn FnMut(&[u8], bool), notice: &mut dyn FnMut(TailEvent)) {
        self.first_open = false;
        if let Some(d) = at.draining {
            match self.open_at(&d, None) {
                Some(mut old) => {
                    let _ = read_all_from(&mut old.file, &mut self.buf, &mut old.splitter, emit);
                    old.splitter.flush(emit);
                }
                None => notice(TailEvent::Lost(format!(
                    "the rotated file read before the restart ({} bytes in) is gone",
                    d.offset
                ))),
            }
        }
        let Some(c) = at.current else { return self.open(emit, notice) };
        let Some(found) = self.open_at(&c, None) else {
            notice(TailEvent::Lost(format!("the file read before the restart ({} bytes in) is gone", c.offset)));
            return self.open(emit, notice);
        };
        let at_path = std::fs::metadata(&self.path).is_ok_and(|m| (m.dev(), m.ino()) == found.id);
        if at_path {
            self.file = Some(found.file);
            self.id = found.id;
            self.pos = found.pos;
            self.fp = found.fp;
            self.splitter = found.splitter;
            self.state = TailState::Open;
            self.last_error = None;
            notice(TailEvent::Resumed { offset: self.pos, rotated: false });
        } else {
            notice(TailEvent::Resumed { offset: found.pos, rotated: true });
            // rotated more than once while down: the generations after it were never
            // read; they are the rotations modified after it, read whole, in order
            let newer = newer_rotations(&self.path, &found.file, &[found.id]);
            self.draining = Some(found);
            if newer.is_empty() {
                self.drain(emit, false);
            } else {
                self.drain(emit, true);
                self.read_whole(newer, emit, notice);
            }
            self.open(emit, notice);
        }
    }

    /// Reads rotated generations that were never opened, whole, in the order given.
    fn read_whole(
        &mut self,
        files: Vec<(PathBuf, File)>,
        emit: &mut dyn FnMut(&[u8], bool),
        notice: &mut dyn FnMut(TailEvent),
    ) {
        for (name, mut file) in files {
            let mut splitter = LineSplitter::default();
            if let Err(e) = read_all_from(&mut file, &mut self.buf, &mut splitter, emit) {
                notice(TailEvent::Error(format!("reading {}: {e}", name.display())));
            }
            splitter.flush(emit);
            notice(TailEvent::SkippedGeneration(name));
        }
    }

    fn open_at(&mut self, at: &FilePosition, exclude: Option<(u64, u64)>) -> Option<Draining> {
        let (_, mut file, id) = locate(&self.path, at, exclude)?;
        file.seek(SeekFrom::Start(at.offset)).ok()?;
        let splitter = LineSplitter { partial: Vec::new(), discarding: at.skip_line };
        Some(Draining { file, id, pos: at.offset, fp: at.fingerprint, splitter, active: Instant::now() })
    }

    /// Reads the rest of the input; flushes an unfinished last line when `flush`
    /// (when stopping without a state file: with one, the line is read again at
    /// the next start).
    pub fn finish(&mut self, emit: &mut dyn FnMut(&[u8], bool), flush: bool) {
        if flush {
            self.drain(emit, true);
        } else if let Some(d) = self.draining.as_mut()
            && let Ok(n) = read_all_from(&mut d.file, &mut self.buf, &mut d.splitter, emit)
        {
            d.pos += n;
        }
        if self.file.is_some() {
            let _ = self.read_to_end(emit);
        }
        if flush {
            self.splitter.flush(emit);
        }
    }

    /// Reads what the rotated-away file gained; closes it (emitting an unfinished last
    /// line) when `close` or when it has been quiet for the rotate wait.
    fn drain(&mut self, emit: &mut dyn FnMut(&[u8], bool), close: bool) {
        let Some(d) = self.draining.as_mut() else { return };
        let grew = match read_all_from(&mut d.file, &mut self.buf, &mut d.splitter, emit) {
            Ok(n) => {
                d.pos += n;
                n > 0
            }
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
        self.fp = Fingerprint::default();
        self.file = Some(file);
        self.first_open = false;
        self.state = TailState::Open;
        self.last_error = None;
        notice(TailEvent::Opened { from_end });
        if let Err(e) = self.read_to_end(emit) {
            self.fail(format!("reading {}: {e}", self.path.display()), notice);
        }
        self.update_fingerprint();
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
    fn two_rotations_between_polls_lose_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("mail.log");
        append(&p, "a\n");
        let mut t = FileTail::new(&p, Start::Beginning);
        assert_eq!(poll(&mut t).0, vec!["a"]);
        append(&p, "b\n");
        std::fs::rename(&p, dir.path().join("mail.log.1")).unwrap();
        append(&p, "c\n");
        std::fs::rename(dir.path().join("mail.log.1"), dir.path().join("mail.log.2")).unwrap();
        std::fs::rename(&p, dir.path().join("mail.log.1")).unwrap();
        append(&p, "d\n");
        let (lines, events) = poll(&mut t);
        assert_eq!(lines, vec!["b", "c", "d"]);
        assert!(events.contains(&TailEvent::SkippedGeneration(dir.path().join("mail.log.1"))), "{events:?}");
        // the next rotation reads nothing twice
        append(&p, "e\n");
        std::fs::rename(dir.path().join("mail.log.1"), dir.path().join("mail.log.3")).unwrap();
        std::fs::rename(&p, dir.path().join("mail.log.1")).unwrap();
        append(&p, "f\n");
        assert_eq!(poll(&mut t).0, vec!["e", "f"]);
    }

    /// A writer appends to the previous file after the next one was created, and the
    /// next one stays empty until it is rotated too: the previous file is newer by
    /// modification time but older by birth, and is not read again.
    #[test]
    fn a_late_write_to_the_previous_generation_is_not_read_twice() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("mail.log");
        append(&p, "a\n");
        let mut t = FileTail::new(&p, Start::Beginning);
        assert_eq!(poll(&mut t).0, vec!["a"]);
        std::fs::rename(&p, dir.path().join("mail.log.1")).unwrap();
        File::create(&p).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        append(&dir.path().join("mail.log.1"), "b\n");
        assert_eq!(poll(&mut t).0, vec!["b"]);
        std::fs::rename(dir.path().join("mail.log.1"), dir.path().join("mail.log.2")).unwrap();
        std::fs::rename(&p, dir.path().join("mail.log.1")).unwrap();
        append(&p, "c\n");
        assert_eq!(poll(&mut t).0, vec!["c"]);
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

    /// Lines written after the last read and before logrotate's copy are in the copy
    /// only: they are read from it (an unfinished line continues there), then the
    /// truncated file from 0. A compressed copy is not read.
    #[test]
    fn copytruncate_reads_the_rest_from_the_rotated_copy() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("mail.log");
        append(&p, "May 28 first line of the file\nb\nhal");
        let mut t = FileTail::new(&p, Start::Beginning);
        assert_eq!(poll(&mut t).0, vec!["May 28 first line of the file", "b"]);
        append(&p, "f\nc\nd\n");
        // a decoy with other first bytes, and a compressed copy, are never read
        std::fs::write(dir.path().join("mail.log.2"), "other file\nzzz\nzzz\nzzz\nzzz\nzzz\nzzz\n").unwrap();
        std::fs::copy(&p, dir.path().join("mail.log.1.gz")).unwrap();
        std::fs::copy(&p, dir.path().join("mail.log.1")).unwrap();
        std::fs::OpenOptions::new().write(true).truncate(true).open(&p).unwrap();
        append(&p, "e\n");
        let (lines, events) = poll(&mut t);
        assert_eq!(lines, vec!["half", "c", "d", "e"]);
        assert!(events.contains(&TailEvent::CopyRead(dir.path().join("mail.log.1"))), "{events:?}");
        assert!(events.contains(&TailEvent::Truncated));
    }

    /// The truncated file refilled past the old offset before a poll: told by its
    /// first bytes, not by its size.
    #[test]
    fn copytruncate_is_seen_when_the_file_grew_back_past_the_offset() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("mail.log");
        append(&p, "one\n");
        let mut t = FileTail::new(&p, Start::Beginning);
        assert_eq!(poll(&mut t).0, vec!["one"]);
        append(&p, "two\n");
        std::fs::copy(&p, dir.path().join("mail.log-20261206")).unwrap();
        std::fs::OpenOptions::new().write(true).truncate(true).open(&p).unwrap();
        append(&p, "three and longer\n");
        let (lines, events) = poll(&mut t);
        assert_eq!(lines, vec!["two", "three and longer"]);
        assert!(events.contains(&TailEvent::Truncated));
    }

    fn restart(t: &FileTail, p: &Path) -> FileTail {
        FileTail::new(p, Start::End).with_resume(Some(t.saved_position()))
    }

    #[test]
    fn resumes_in_the_same_file_at_the_start_of_an_unfinished_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("mail.log");
        append(&p, "a\nb\nunfin");
        let mut t = FileTail::new(&p, Start::Beginning);
        assert_eq!(poll(&mut t).0, vec!["a", "b"]);
        let saved = t.saved_position();
        assert_eq!(saved.current.unwrap().offset, 4);
        drop(t);
        append(&p, "ished\nc\n");
        let mut t = FileTail::new(&p, Start::End).with_resume(Some(saved.clone()));
        // before its first poll it reports the position it will resume from
        assert_eq!(t.saved_position(), saved);
        let (lines, events) = poll(&mut t);
        assert_eq!(lines, vec!["unfinished", "c"]);
        assert!(events.contains(&TailEvent::Resumed { offset: 4, rotated: false }), "{events:?}");
    }

    #[test]
    fn rename_rotation_while_down_is_followed() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("mail.log");
        append(&p, "May 28 a\nb\n");
        let mut t = FileTail::new(&p, Start::Beginning);
        assert_eq!(poll(&mut t).0, vec!["May 28 a", "b"]);
        let mut t2 = restart(&t, &p);
        drop(t);
        append(&p, "c\n");
        std::fs::rename(&p, dir.path().join("mail.log.1")).unwrap();
        append(&p, "May 29 new\n");
        let (lines, events) = poll(&mut t2);
        assert_eq!(lines, vec!["c", "May 29 new"]);
        assert!(events.contains(&TailEvent::Resumed { offset: 11, rotated: true }), "{events:?}");
        // two rotations while down, and the saved file was draining
        append(&p, "d\n");
        assert_eq!(poll(&mut t2).0, vec!["d"]);
        let saved_at = t2.saved_position();
        append(&p, "e\n");
        std::fs::rename(dir.path().join("mail.log.1"), dir.path().join("mail.log.2")).unwrap();
        std::fs::rename(&p, dir.path().join("mail.log.1")).unwrap();
        append(&p, "May 30 f\n");
        std::fs::rename(dir.path().join("mail.log.1"), dir.path().join("mail.log.2")).unwrap();
        std::fs::rename(&p, dir.path().join("mail.log.1")).unwrap();
        append(&p, "May 31 g\n");
        let mut t3 = FileTail::new(&p, Start::End).with_resume(Some(saved_at));
        assert_eq!(poll(&mut t3).0, vec!["e", "May 30 f", "May 31 g"], "the middle generation is read too");
        // an empty file saved (no first bytes yet) is found by its inode
        let saved_empty = t3.saved_position();
        std::fs::rename(&p, dir.path().join("mail.log.0")).unwrap();
        append(&dir.path().join("mail.log.0"), "h\n");
        append(&p, "June 1 i\n");
        let mut t4 = FileTail::new(&p, Start::End).with_resume(Some(saved_empty));
        assert_eq!(poll(&mut t4).0, vec!["h", "June 1 i"]);
    }

    #[test]
    fn copytruncate_while_down_reads_the_copy_then_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("mail.log");
        append(&p, "May 28 a\n");
        let mut t = FileTail::new(&p, Start::Beginning);
        assert_eq!(poll(&mut t).0, vec!["May 28 a"]);
        let saved = t.saved_position();
        drop(t);
        append(&p, "b\n");
        std::fs::copy(&p, dir.path().join("mail.log.1")).unwrap();
        std::fs::OpenOptions::new().write(true).truncate(true).open(&p).unwrap();
        append(&p, "May 28 c\n");
        let mut t = FileTail::new(&p, Start::End).with_resume(Some(saved));
        let (lines, events) = poll(&mut t);
        assert_eq!(lines, vec!["b", "May 28 c"]);
        assert!(events.contains(&TailEvent::Resumed { offset: 9, rotated: true }), "{events:?}");
    }

    #[test]
    fn a_vanished_file_is_read_from_the_start_of_the_new_one_and_reported() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("mail.log");
        append(&p, "May 28 a\n");
        let mut t = FileTail::new(&p, Start::Beginning);
        assert_eq!(poll(&mut t).0, vec!["May 28 a"]);
        let saved = t.saved_position();
        drop(t);
        std::fs::remove_file(&p).unwrap();
        append(&p, "June 1 new\n");
        let mut t = FileTail::new(&p, Start::End).with_resume(Some(saved));
        let (lines, events) = poll(&mut t);
        assert_eq!(lines, vec!["June 1 new"]);
        assert!(events.iter().any(|e| matches!(e, TailEvent::Lost(_))), "{events:?}");
    }

    #[test]
    fn a_cut_line_is_not_counted_again_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("mail.log");
        let long = "x".repeat(MAX_LINE + 100);
        append(&p, &format!("a\n{long}"));
        let mut t = FileTail::new(&p, Start::Beginning);
        let mut got = Vec::new();
        t.poll(&mut |l, cut| got.push((l.len(), cut)), &mut |_| {});
        assert_eq!(got, vec![(1, false), (MAX_LINE, true)]);
        let mut t = restart(&t, &p);
        append(&p, "yyy\nb\n");
        assert_eq!(poll(&mut t).0, vec!["b"]);
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
