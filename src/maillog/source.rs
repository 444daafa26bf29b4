//! Log sources for `serve`: each runs on its own thread, feeds its lines to its own
//! [`Processor`] and reports its state for `/-/ready` and the status page.

use std::io::Read;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::processor::{MailState, Processor};
use super::tail::{FileTail, LineSplitter, TailEvent, TailState};
use crate::config::Start;
use crate::metrics::SharedLabel;

/// How often a file is polled for new lines and rotation.
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// A stop signal that wakes sleeping threads at once.
#[derive(Debug, Default)]
pub struct Shutdown {
    stopped: Mutex<bool>,
    cv: Condvar,
}

impl Shutdown {
    /// Sleeps up to `d`; true when stopping.
    pub fn wait(&self, d: Duration) -> bool {
        let Ok(g) = self.stopped.lock() else { return true };
        if *g {
            return true;
        }
        match self.cv.wait_timeout(g, d) {
            Ok((g, _)) => *g,
            Err(_) => true,
        }
    }

    pub fn is_stopped(&self) -> bool {
        self.stopped.lock().map(|g| *g).unwrap_or(true)
    }

    pub fn trigger(&self) {
        if let Ok(mut g) = self.stopped.lock() {
            *g = true;
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
        let mut processor = Processor::new(state, &label);
        if path == "-" {
            run_stdin(&mut processor, &st);
        } else {
            run_file(&path, start, &mut processor, &st, &stop);
        }
    })?;
    Ok(SourceHandle { status, thread: Some(thread) })
}

fn run_file(path: &str, start: Start, processor: &mut Processor, status: &Mutex<SourceStatus>, stop: &Shutdown) {
    let mut tail = FileTail::new(path, start);
    let mut last_logged_error: Option<String> = None;
    loop {
        let stopping = stop.is_stopped();
        let counters = processor.counters().clone();
        let mut read_any = false;
        {
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
            };
            tail.poll(&mut emit, &mut notice);
            if stopping {
                tail.finish(&mut emit);
            }
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
        let pause = if tail.state() == TailState::Error { Duration::from_secs(1) } else { POLL_INTERVAL };
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
