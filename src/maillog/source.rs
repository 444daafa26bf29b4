//! Log sources for `serve`. Every source (file, standard input, journal, syslog) is a
//! tokio task on the runtime that also serves HTTP and runs the DNS rounds: one
//! concurrency model. A source feeds its lines to its own [`Processor`] and reports
//! its state for `/-/ready` and the status page.
//!
//! Blocking work stays off the runtime's worker threads: a file source reads (and
//! counts what it read) in [`tokio::task::spawn_blocking`]; standard input is tokio's,
//! the journal a [`tokio::process`] child and syslog [`tokio::net`] sockets.
//!
//! One shutdown path: each source holds a [`CancellationToken`], a child of the one
//! token `serve` cancels on SIGTERM (a reload cancels the child of a removed source),
//! and ends after one last read; `serve` awaits every source task before it saves
//! the state file a last time.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;
use tokio::sync::Notify;
pub use tokio_util::sync::CancellationToken;

use super::processor::{MailState, Processor};
use super::tail::{FileTail, LineSplitter, TailEvent, TailPosition, TailState};
use crate::config::Start;
use crate::metrics::SharedLabel;

/// How often a file is polled for new lines and rotation when no inotify event
/// comes (file systems without events, or a watch that could not be set up).
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// Polls follow each other at least this far apart, however many events arrive:
/// a busy log is read in batches (the latency target is 20 ms).
pub const MIN_POLL_GAP: Duration = Duration::from_millis(2);
/// How often a file is read while a sibling is being written (a rotation copy).
pub const CLOSE_POLL: Duration = Duration::from_millis(1);
/// How long after the last write to a sibling the close reading goes on.
pub const COPY_WATCH: Duration = Duration::from_millis(500);
/// While a copy is written, one blocking task polls the file this long, every
/// [`COPY_SPIN`], before handing back to the runtime: no scheduling hop per read when
/// a loaded machine makes every hop slow.
pub const COPY_BURST: Duration = Duration::from_millis(25);
/// The pause between two polls of a burst.
pub const COPY_SPIN: Duration = Duration::from_micros(200);
/// How often a file source tries again to watch a directory it could not watch (it
/// may not exist yet); it polls meanwhile.
pub const WATCH_RETRY: Duration = Duration::from_secs(10);
/// How long `serve` waits for a stopped source's last read before going on without it.
pub const STOP_GRACE: Duration = Duration::from_secs(10);

/// What the status page and `/-/ready` know about a source.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SourceStatus {
    /// The `source` label value.
    pub name: String,
    pub kind: &'static str,
    pub state: TailState,
    /// Bytes into the current file.
    pub position: u64,
    pub last_error: Option<String>,
}

impl SourceStatus {
    /// A source is ready once it has been polled: the file is open, or it is known
    /// to be missing and will be read when it appears.
    pub fn ready(&self) -> bool {
        self.state != TailState::Starting
    }
}

/// A running source: its status and its task.
#[derive(Debug)]
pub struct SourceHandle {
    pub status: Arc<Mutex<SourceStatus>>,
    pub task: Option<tokio::task::JoinHandle<()>>,
}

impl SourceHandle {
    pub fn snapshot(&self) -> Option<SourceStatus> {
        self.status.lock().ok().map(|s| s.clone())
    }
}

/// The `source` label of a configured path.
pub fn source_name(path: &str) -> String {
    if path == "-" { "stdin".to_string() } else { path.to_string() }
}

/// Starts following `path` (or standard input for `-`) as a task of the current
/// tokio runtime; it ends when `stop` is cancelled, after one last read.
pub fn spawn_path(path: &str, start: Start, state: Arc<MailState>, stop: CancellationToken) -> SourceHandle {
    let name = source_name(path);
    let label = SharedLabel::new(&name);
    let status = Arc::new(Mutex::new(SourceStatus {
        name: name.clone(),
        kind: if path == "-" { "stdin" } else { "file" },
        state: TailState::Starting,
        position: 0,
        last_error: None,
    }));
    let st = status.clone();
    let mut processor = Processor::new(state.clone(), &label);
    let task = if path == "-" {
        tokio::spawn(run_stdin(processor, st, stop))
    } else {
        let resume = state.take_resume(&name);
        if let Some(join) = &resume.join {
            processor.restore_join_state(join);
        }
        let reader = FileReader::new(path, start, resume.position, state, processor);
        tokio::spawn(run_file(reader, st, stop))
    };
    SourceHandle { status, task: Some(task) }
}

/// Watches the file's directory with inotify (through `notify`) and wakes the
/// source on every change there; an error when the watch cannot be set up (polling
/// alone then, and the watch is tried again every [`WATCH_RETRY`]). A sibling of the file created and written (`mail.log.1`,
/// `mail.log-DATE`: logrotate making a copy) is noted in `sibling`, so the source
/// can read closely until the truncate that follows a copy.
fn watch(
    path: &str,
    wake: &Arc<Notify>,
    sibling: &Arc<Mutex<Option<Instant>>>,
) -> Result<notify::RecommendedWatcher, notify::Error> {
    use notify::Watcher;
    let file = std::path::Path::new(path);
    let dir = match file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let base = file.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    let (waker, sibling) = (wake.clone(), sibling.clone());
    let on_event = move |e: notify::Result<notify::Event>| {
        if let Ok(e) = e
            && e.paths.iter().any(|p| {
                p.file_name()
                    .is_some_and(|n| n != base.as_os_str() && n.as_encoded_bytes().starts_with(base.as_encoded_bytes()))
            })
            && let Ok(mut s) = sibling.lock()
        {
            use notify::event::{EventKind, ModifyKind};
            // a new sibling starts the watch (logrotate creates its copy); writes to
            // it keep it going while it lasts. Renames (logrotate `create`) do not.
            let active = s.is_some_and(|t| t.elapsed() < COPY_WATCH);
            match e.kind {
                EventKind::Create(_) => *s = Some(Instant::now()),
                EventKind::Modify(ModifyKind::Data(_) | ModifyKind::Any) if active => *s = Some(Instant::now()),
                _ => {}
            }
        }
        // a stored permit: an event between two waits ends the next wait at once
        waker.notify_one();
    };
    let mut w = notify::recommended_watcher(on_event)?;
    w.watch(&dir, notify::RecursiveMode::NonRecursive)?;
    Ok(w)
}

/// What a file source owns while it reads: moved into a blocking task for each
/// poll and back.
struct FileReader {
    path: String,
    tail: FileTail,
    processor: Processor,
    state: Arc<MailState>,
    last_logged_error: Option<String>,
}

impl FileReader {
    fn new(
        path: &str,
        start: Start,
        resume: Option<TailPosition>,
        state: Arc<MailState>,
        processor: Processor,
    ) -> FileReader {
        FileReader {
            path: path.to_string(),
            tail: FileTail::new(path, start).with_resume(resume),
            processor,
            state,
            last_logged_error: None,
        }
    }

    /// Polls every [`COPY_SPIN`] for up to [`COPY_BURST`], or until the truncate
    /// that follows a copy is seen: what the writer appends between logrotate's copy
    /// and its truncate is in no file afterwards, so it must be read in between.
    fn poll_closely(&mut self) {
        let until = Instant::now() + COPY_BURST;
        while !self.poll(false) && Instant::now() < until {
            std::thread::sleep(COPY_SPIN);
        }
    }

    /// Reads what is new (after a stop, also what is left) and counts it; the
    /// lines and the position they lead to are published as one step, under the
    /// state file's gate. Blocks on file I/O. True when the file was truncated.
    fn poll(&mut self, stopping: bool) -> bool {
        let FileReader { path, tail, processor, state, last_logged_error } = self;
        let path = path.as_str();
        let counters = processor.counters().clone();
        let mut read_any = false;
        let mut truncated = false;
        {
            let _gate = state.gate.read().unwrap_or_else(std::sync::PoisonError::into_inner);
            let mut emit = |line: &[u8], truncated: bool| {
                if truncated {
                    counters.truncated.inc();
                }
                processor.line(line);
                read_any = true;
            };
            let mut notice = |e: TailEvent| match e {
                TailEvent::Error(msg) => {
                    counters.read_errors.inc();
                    if last_logged_error.as_deref() != Some(msg.as_str()) {
                        tracing::warn!(source = path, error = %msg, "cannot read log");
                        *last_logged_error = Some(msg);
                    }
                }
                TailEvent::Opened { from_end } => {
                    *last_logged_error = None;
                    tracing::info!(source = path, from_end, "log opened");
                }
                TailEvent::Rotated => tracing::info!(source = path, "log rotated, following the new file"),
                TailEvent::Truncated => {
                    truncated = true;
                    tracing::info!(source = path, "log truncated, reading from its start")
                }
                TailEvent::CopyRead(copy) => {
                    tracing::info!(source = path, copy = %copy.display(), "read the rest of the log from its rotated copy")
                }
                TailEvent::Resumed { offset, rotated } => {
                    tracing::info!(source = path, offset, rotated, "resumed where the last run stopped")
                }
                TailEvent::SkippedGeneration(file) => {
                    tracing::info!(source = path, file = %file.display(), "read a rotated file never seen at the path")
                }
                TailEvent::Lost(what) => {
                    counters.read_errors.inc();
                    tracing::warn!(
                        source = path,
                        what = what.as_str(),
                        "lines written while the exporter was down are lost"
                    );
                }
            };
            tail.poll(&mut emit, &mut notice);
            if stopping {
                let flush = !state.persistent.load(std::sync::atomic::Ordering::Relaxed);
                tail.finish(&mut emit, flush);
            }
            state.publish(path, |r| {
                r.position = Some(tail.saved_position());
                r.join = processor.join_state();
            });
        }
        if read_any {
            counters.touch();
        }
        truncated
    }
}

async fn run_file(mut reader: FileReader, status: Arc<Mutex<SourceStatus>>, stop: CancellationToken) {
    let wake = Arc::new(Notify::new());
    let sibling: Arc<Mutex<Option<Instant>>> = Arc::new(Mutex::new(None));
    let mut watcher = None;
    let mut next_watch = Instant::now();
    let mut watch_error: Option<String> = None;
    let copying = || sibling.lock().ok().and_then(|s| *s).is_some_and(|t| t.elapsed() < COPY_WATCH);
    loop {
        if watcher.is_none() && Instant::now() >= next_watch {
            match watch(&reader.path, &wake, &sibling) {
                Ok(w) => {
                    if watch_error.take().is_some() {
                        tracing::info!(source = reader.path.as_str(), "file events for the directory now");
                    }
                    watcher = Some(w);
                }
                Err(e) => {
                    // said once per distinct error, not at every retry
                    let e = e.to_string();
                    if watch_error.as_deref() != Some(e.as_str()) {
                        tracing::info!(source = reader.path.as_str(), error = %e, "no file events for this directory, polling every 100 ms");
                        watch_error = Some(e);
                    }
                    next_watch = Instant::now() + WATCH_RETRY;
                }
            }
        }
        let polled_at = Instant::now();
        let stopping = stop.is_cancelled();
        let closely = !stopping && copying();
        reader = match tokio::task::spawn_blocking(move || {
            if closely {
                reader.poll_closely();
            } else {
                reader.poll(stopping);
            }
            reader
        })
        .await
        {
            Ok(r) => r,
            Err(e) => {
                // a panic in the reader: the source is dead, and says so
                tracing::error!(error = %e, "a log file reader failed");
                if let Ok(mut s) = status.lock() {
                    s.state = TailState::Error;
                    s.last_error = Some(format!("reader failed: {e}"));
                }
                return;
            }
        };
        if let Ok(mut s) = status.lock() {
            s.state = reader.tail.state();
            s.position = reader.tail.position();
            s.last_error = reader.tail.last_error().map(str::to_string);
        }
        if stopping {
            return;
        }
        // back off on errors so a persistent failure costs little;
        // a sibling being written is logrotate's copy (copytruncate): what the writer
        // appends between the copy and the truncate exists only until the truncate,
        // so read it at once, every CLOSE_POLL, until the new sibling is quiet again
        let copying = copying();
        let pause = if reader.tail.state() == TailState::Error {
            Duration::from_secs(1)
        } else if copying {
            CLOSE_POLL
        } else {
            POLL_INTERVAL
        };
        if !copying && let Some(gap) = MIN_POLL_GAP.checked_sub(polled_at.elapsed()) {
            tokio::time::sleep(gap).await;
        }
        // a stop ends the wait, and one last poll picks up what was written before it
        tokio::select! {
            _ = stop.cancelled() => {}
            _ = wake.notified() => {}
            _ = tokio::time::sleep(pause) => {}
        }
    }
}

/// Reads standard input to its end (or the stop). The pending read of a stopped
/// source stays with tokio's blocking pool until the process exits.
async fn run_stdin(mut processor: Processor, status: Arc<Mutex<SourceStatus>>, stop: CancellationToken) {
    if let Ok(mut s) = status.lock() {
        s.state = TailState::Open;
    }
    let counters = processor.counters().clone();
    let mut splitter = LineSplitter::default();
    let mut buf = vec![0u8; 64 * 1024];
    let mut stdin = tokio::io::stdin();
    let mut emit = |line: &[u8], truncated: bool| {
        if truncated {
            counters.truncated.inc();
        }
        processor.line(line);
    };
    loop {
        let read = tokio::select! {
            _ = stop.cancelled() => break,
            r = stdin.read(&mut buf) => r,
        };
        match read {
            Ok(0) => {
                tracing::info!("standard input ended");
                break;
            }
            Ok(n) => {
                splitter.feed(&buf[..n], &mut emit);
                counters.touch();
                if let Ok(mut s) = status.lock() {
                    s.position += n as u64;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                counters.read_errors.inc();
                tracing::warn!(error = %e, "cannot read standard input");
                if let Ok(mut s) = status.lock() {
                    s.state = TailState::Error;
                    s.last_error = Some(e.to_string());
                }
                break;
            }
        }
    }
    // the last line needs no newline to count
    splitter.flush(&mut emit);
}

/// Stops sources and waits for their last reads: the one way a source ends, on a
/// reload and at shutdown. A source that does not end within [`STOP_GRACE`] is
/// logged and left behind.
pub async fn stop_all(sources: Vec<(CancellationToken, SourceHandle)>) {
    for (stop, _) in &sources {
        stop.cancel();
    }
    for (_, mut handle) in sources {
        let name = handle.snapshot().map(|s| s.name).unwrap_or_default();
        if let Some(task) = handle.task.take() {
            match tokio::time::timeout(STOP_GRACE, task).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(source = %name, error = %e, "log source task failed"),
                Err(_) => tracing::warn!(source = %name, "log source did not stop in time"),
            }
        }
    }
}
