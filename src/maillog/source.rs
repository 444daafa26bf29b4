//! Log sources for `serve`: each runs on its own thread, feeds its lines to its own
//! [`Processor`] and reports its state for `/-/ready` and the status page.

use std::io::Read;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::processor::{MailState, Processor};
use super::tail::{FileTail, LineSplitter, TailEvent, TailState};
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

/// A stop signal that wakes sleeping threads at once; [`Shutdown::wake`] also ends a
/// wait early without stopping (a file changed).
#[derive(Debug, Default)]
pub struct Shutdown {
    /// (stopped, woken)
    flags: Mutex<(bool, bool)>,
    cv: Condvar,
}

impl Shutdown {
    /// Sleeps up to `d`, or until woken; true when stopping.
    pub fn wait(&self, d: Duration) -> bool {
        let Ok(mut g) = self.flags.lock() else { return true };
        if !g.0 && !g.1 {
            g = match self.cv.wait_timeout_while(g, d, |f| !f.0 && !f.1) {
                Ok((g, _)) => g,
                Err(_) => return true,
            };
        }
        g.1 = false;
        g.0
    }

    pub fn is_stopped(&self) -> bool {
        self.flags.lock().map(|g| g.0).unwrap_or(true)
    }

    pub fn trigger(&self) {
        if let Ok(mut g) = self.flags.lock() {
            g.0 = true;
        }
        self.cv.notify_all();
    }

    /// Ends the current (or next) wait early.
    pub fn wake(&self) {
        if let Ok(mut g) = self.flags.lock() {
            g.1 = true;
        }
        self.cv.notify_all();
    }
}

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

/// A running source.
#[derive(Debug)]
pub struct SourceHandle {
    pub status: Arc<Mutex<SourceStatus>>,
    pub thread: Option<JoinHandle<()>>,
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

/// Starts following `path` (or stdin for `-`).
pub fn spawn_path(
    path: &str,
    start: Start,
    state: Arc<MailState>,
    stop: Arc<Shutdown>,
) -> std::io::Result<SourceHandle> {
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
    let path = path.to_string();
    let thread = std::thread::Builder::new().name(format!("source {name}")).spawn(move || {
        let mut processor = Processor::new(state.clone(), &label);
        if path == "-" {
            run_stdin(&mut processor, &st);
        } else {
            let resume = state.take_resume(&name);
            run_file(&path, start, resume, &state, &mut processor, &st, &stop);
        }
    })?;
    Ok(SourceHandle { status, thread: Some(thread) })
}

/// Watches the file's directory with inotify (through `notify`) and wakes the
/// source on every change there; `None` when the watch cannot be set up (polling
/// alone then). A sibling of the file created and written (`mail.log.1`,
/// `mail.log-DATE`: logrotate making a copy) is noted in `sibling`, so the source
/// can read closely until the truncate that follows a copy.
fn watch(
    path: &str,
    stop: &Arc<Shutdown>,
    sibling: &Arc<Mutex<Option<Instant>>>,
) -> Option<notify::RecommendedWatcher> {
    use notify::Watcher;
    let file = std::path::Path::new(path);
    let dir = match file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let base = file.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    let (waker, sibling) = (stop.clone(), sibling.clone());
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
        waker.wake();
    };
    let mut w = notify::recommended_watcher(on_event).ok()?;
    match w.watch(&dir, notify::RecursiveMode::NonRecursive) {
        Ok(()) => Some(w),
        Err(e) => {
            tracing::info!(source = path, error = %e, "no file events for this directory, polling every 100 ms");
            None
        }
    }
}

fn run_file(
    path: &str,
    start: Start,
    resume: Option<super::tail::TailPosition>,
    state: &MailState,
    processor: &mut Processor,
    status: &Mutex<SourceStatus>,
    stop: &Arc<Shutdown>,
) {
    let mut tail = FileTail::new(path, start).with_resume(resume);
    let mut watcher = None;
    let sibling: Arc<Mutex<Option<Instant>>> = Arc::new(Mutex::new(None));
    let mut last_logged_error: Option<String> = None;
    loop {
        if watcher.is_none() {
            watcher = watch(path, stop, &sibling);
        }
        let polled_at = std::time::Instant::now();
        let stopping = stop.is_stopped();
        let counters = processor.counters().clone();
        let mut read_any = false;
        {
            // lines are counted and the position published as one step (state file)
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
                        last_logged_error = Some(msg);
                    }
                }
                TailEvent::Opened { from_end } => {
                    last_logged_error = None;
                    tracing::info!(source = path, from_end, "log opened");
                }
                TailEvent::Rotated => tracing::info!(source = path, "log rotated, following the new file"),
                TailEvent::Truncated => tracing::info!(source = path, "log truncated, reading from its start"),
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
            state.publish_position(path, tail.saved_position());
        }
        if read_any {
            counters.touch();
        }
        if let Ok(mut s) = status.lock() {
            s.state = tail.state();
            s.position = tail.position();
            s.last_error = tail.last_error().map(str::to_string);
        }
        if stopping {
            return;
        }
        // back off on errors so a persistent failure costs little
        // a sibling being written is logrotate's copy (copytruncate): what the writer
        // appends between the copy and the truncate exists only until the truncate,
        // so read it at once, every CLOSE_POLL, until the new sibling is quiet again
        let copying = sibling.lock().ok().and_then(|s| *s).is_some_and(|t| t.elapsed() < COPY_WATCH);
        let pause = if tail.state() == TailState::Error {
            Duration::from_secs(1)
        } else if copying {
            CLOSE_POLL
        } else {
            POLL_INTERVAL
        };
        if !copying && let Some(gap) = MIN_POLL_GAP.checked_sub(polled_at.elapsed()) {
            std::thread::sleep(gap);
        }
        if stop.wait(pause) {
            // one last poll picks up what was written before the stop
            continue;
        }
    }
}

fn run_stdin(processor: &mut Processor, status: &Mutex<SourceStatus>) {
    if let Ok(mut s) = status.lock() {
        s.state = TailState::Open;
    }
    let counters = processor.counters().clone();
    let mut splitter = LineSplitter::default();
    let mut buf = vec![0u8; 64 * 1024];
    let mut stdin = std::io::stdin().lock();
    let mut emit = |line: &[u8], truncated: bool| {
        if truncated {
            counters.truncated.inc();
        }
        processor.line(line);
    };
    loop {
        match stdin.read(&mut buf) {
            Ok(0) => break,
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
                return;
            }
        }
    }
    splitter.flush(&mut emit);
    tracing::info!("standard input ended");
}
