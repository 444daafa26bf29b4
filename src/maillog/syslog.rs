//! A syslog receiver as a log source (`[maillog] syslog_listen`), so that a central
//! rsyslog or syslog-ng can forward the MTAs' logs.
//!
//! Each configured listener is one source, labelled `syslog:udp://ADDR` or
//! `syslog:tcp://ADDR` as configured (so the label set is bounded by the
//! configuration). Messages go to a [`Processor`] as lines: the envelope parser
//! already reads `<PRI>` prefixes, RFC 3164 and RFC 3339 timestamps, and RFC 5424.
//!
//! - **UDP** (RFC 5426): one message per datagram; trailing newlines, carriage
//!   returns and NULs are stripped. One task reads the socket. The receive buffer
//!   is raised to 4 MiB (forced when the process may, as rsyslog's imudp does) so that
//!   a burst survives a busy moment; what the kernel still drops is lost, as UDP goes.
//! - **TCP** (RFC 6587) with both framings, told apart at the start of every frame
//!   as rsyslog's imtcp does: `[1-9][0-9]{0,8} SP` starts an octet-counted frame
//!   (`LEN SP MSG`, RFC 6587 §3.4.1); anything else (`<PRI>…`, a timestamp) starts a
//!   frame that ends at LF (non-transparent framing, §3.4.2; CRs and NULs at the end
//!   are dropped). A newline-framed message would be misread only if it began with
//!   digits and a space, which no syslog message does (they begin with `<`, a month
//!   name, or a year and `-`). The count is honoured whatever follows it, so octet-
//!   counted templates without a priority work too. Stray LFs between frames are
//!   skipped.
//!
//! rsyslog cuts program names at `/` unless `parser.permitSlashInProgramName` is on,
//! so its RFC 5424 templates send Postfix's APP-NAME as `postfix`, without the daemon;
//! the receiver logs a warning (once) when it sees that, since the lines cannot be read.
//!
//! Bounds:
//! - a message longer than 64 KiB is cut to 64 KiB, still parsed, and counted in
//!   `mailroute_log_lines_truncated_total` (the rest of an octet-counted frame is
//!   read and dropped; no buffer grows beyond 64 KiB per connection);
//! - at most [`Limits::max_connections`] (`syslog_max_connections`, default 10,000)
//!   TCP connections per listener; beyond that a new connection is closed at once,
//!   logged and counted in `mailroute_log_read_errors_total`. A connection costs its
//!   framer and counters: the read buffer is shared by the listener's tasks;
//! - a TCP connection idle for [`Limits::idle_timeout`] (10 minutes) is closed
//!   (rsyslog notices a closed connection before its next send and reconnects);
//! - every read also waits for the source's stop token, so the source stops at
//!   once; an unterminated last line is processed when its connection ends or the
//!   exporter stops, an unfinished octet-counted frame is dropped and counted as a
//!   read error.
//!
//! Tasks, on the exporter's one tokio runtime: one per UDP listener; one per TCP
//! listener, and one per connection (each with its own [`Processor`], so Exim's
//! multi-part lines are joined per stream; all of them count under the listener's
//! `source` label). A stopped listener closes its connections and waits for them.

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::envelope;
use super::processor::{MailState, Processor};
use super::source::{CancellationToken, SourceHandle, SourceStatus};
use super::tail::{MAX_LINE, TailState};
use crate::config::SyslogListen;
use crate::metrics::{SharedLabel, SourceCounters};

/// Bytes read from a TCP connection at a time.
const READ_CHUNK: usize = 16 * 1024;
/// The UDP receive buffer asked of the kernel.
const UDP_RCVBUF: libc::c_int = 4 * 1024 * 1024;
/// Pending connections the kernel queues for a TCP listener.
const TCP_BACKLOG: u32 = 4096;
/// Longest octet count accepted in a frame header (9 digits).
const MAX_COUNT_DIGITS: usize = 9;

/// The receiver's bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longer messages are cut to this many bytes.
    pub max_message: usize,
    /// TCP connections served at once per listener; more are closed at once.
    pub max_connections: usize,
    /// A TCP connection that sends nothing for this long is closed.
    pub idle_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_message: MAX_LINE,
            max_connections: crate::config::DEFAULT_SYSLOG_MAX_CONNECTIONS,
            idle_timeout: Duration::from_secs(600),
        }
    }
}

/// The `source` label of a listener: `syslog:udp://ADDR` or `syslog:tcp://ADDR`.
pub fn source_name(listen: &SyslogListen) -> String {
    format!("syslog:{}://{}", if listen.tcp { "tcp" } else { "udp" }, listen.addr)
}

/// Starts listening for forwarded syslog messages, as a task of the current tokio
/// runtime. Binding errors are returned (the exporter refuses to start); everything
/// after is counted and logged.
pub fn spawn(
    listen: &SyslogListen,
    max_connections: usize,
    state: Arc<MailState>,
    stop: CancellationToken,
) -> io::Result<SourceHandle> {
    spawn_with(listen, Limits { max_connections, ..Limits::default() }, state, stop)
}

/// [`spawn`] with explicit bounds.
pub fn spawn_with(
    listen: &SyslogListen,
    limits: Limits,
    state: Arc<MailState>,
    stop: CancellationToken,
) -> io::Result<SourceHandle> {
    spawn_bound(listen, limits, state, stop).map(|(handle, _)| handle)
}

/// [`spawn_with`], also returning the address actually bound (for port 0).
pub fn spawn_bound(
    listen: &SyslogListen,
    limits: Limits,
    state: Arc<MailState>,
    stop: CancellationToken,
) -> io::Result<(SourceHandle, SocketAddr)> {
    let name = source_name(listen);
    let label = SharedLabel::new(&name);
    let status = Arc::new(Mutex::new(SourceStatus {
        name: name.clone(),
        kind: "syslog",
        state: TailState::Starting,
        position: 0,
        last_error: None,
    }));
    let st = status.clone();
    let (task, local) = if listen.tcp {
        let socket =
            if listen.addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
        socket.set_reuseaddr(true)?;
        socket.bind(listen.addr)?;
        // room for a burst of connects (std's default backlog is 128)
        let listener = socket.listen(TCP_BACKLOG)?;
        let local = listener.local_addr()?;
        (tokio::spawn(run_tcp(listener, limits, state, label, st, stop)), local)
    } else {
        let socket = std::net::UdpSocket::bind(listen.addr)?;
        raise_receive_buffer(&socket);
        socket.set_nonblocking(true)?;
        let socket = tokio::net::UdpSocket::from_std(socket)?;
        let local = socket.local_addr()?;
        let processor = Processor::new(state, &label);
        (tokio::spawn(run_udp(socket, limits, processor, st, stop)), local)
    };
    tracing::info!(source = %name, address = %local, "syslog listening");
    if let Ok(mut s) = status.lock() {
        s.state = TailState::Open;
    }
    Ok((SourceHandle { status, task: Some(task) }, local))
}

/// Asks for a 4 MiB receive buffer: forced if the process has CAP_NET_ADMIN, else
/// as much as `net.core.rmem_max` allows.
fn raise_receive_buffer(socket: &std::net::UdpSocket) {
    let size: libc::c_int = UDP_RCVBUF;
    let set = |opt: libc::c_int| {
        // SAFETY: setsockopt on a socket we own, with a pointer to an int that lives
        // for the call and its exact size.
        unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                (&size as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        }
    };
    if set(libc::SO_RCVBUFFORCE) != 0 {
        let _ = set(libc::SO_RCVBUF);
    }
}

/// Removes what ends a message in a datagram or frame: LF, CR and NUL.
fn trim_end(mut msg: &[u8]) -> &[u8] {
    while let [rest @ .., b'\n' | b'\r' | 0] = msg {
        msg = rest;
    }
    msg
}

/// Processes one message: cut to the limit, counted, skipped when empty.
fn deliver(processor: &mut Processor, counters: &SourceCounters, msg: &[u8], limit: usize, cut: bool) {
    let msg = trim_end(msg);
    if msg.is_empty() {
        return;
    }
    if cut || msg.len() > limit {
        counters.truncated.inc();
    }
    let msg = &msg[..msg.len().min(limit)];
    warn_if_postfix_daemon_lost(msg);
    processor.line(msg);
}

/// Set once the warning below was logged (once per process is enough).
static WARNED_SLASHLESS_POSTFIX: AtomicBool = AtomicBool::new(false);

/// rsyslog cuts the program name at `/` (`postfix/smtpd` → `postfix`) unless
/// `global(parser.permitSlashInProgramName="on")`, and its RFC 5424 templates send that
/// name as APP-NAME: the Postfix daemon is lost and its rejects cannot be read.
/// Says so once, since nothing else would.
fn warn_if_postfix_daemon_lost(msg: &[u8]) {
    if WARNED_SLASHLESS_POSTFIX.load(Ordering::Relaxed) {
        return;
    }
    // only RFC 5424 ("<PRI>1 "), where APP-NAME is a field of its own
    let Some(close) = msg.iter().take(5).position(|&b| b == b'>') else { return };
    if !msg[close + 1..].starts_with(b"1 ") {
        return;
    }
    if envelope::parse(msg).is_some_and(|e| e.program == b"postfix")
        && !WARNED_SLASHLESS_POSTFIX.swap(true, Ordering::Relaxed)
    {
        tracing::warn!(
            "syslog: an RFC 5424 message names its program \"postfix\" without the daemon (postfix/smtpd); \
             Postfix lines forwarded that way cannot be classified. In the forwarding rsyslog, set \
             global(parser.permitSlashInProgramName=\"on\") or forward with RSYSLOG_ForwardFormat"
        );
    }
}

async fn run_udp(
    socket: tokio::net::UdpSocket,
    limits: Limits,
    mut processor: Processor,
    status: Arc<Mutex<SourceStatus>>,
    stop: CancellationToken,
) {
    let counters = processor.counters().clone();
    // one byte more than a message may have, to see that a datagram is longer
    let mut buf = vec![0u8; limits.max_message.max(65_535) + 1];
    let mut last_logged: Option<Instant> = None;
    loop {
        let received = tokio::select! {
            _ = stop.cancelled() => break,
            r = socket.recv_from(&mut buf) => r,
        };
        match received {
            Ok((n, _peer)) => {
                let cut = n > limits.max_message;
                deliver(&mut processor, &counters, &buf[..n], limits.max_message, cut);
                counters.touch();
                if let Ok(mut s) = status.lock() {
                    s.position += n as u64;
                }
            }
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => {}
            Err(e) => {
                counters.read_errors.inc();
                if last_logged.is_none_or(|t| t.elapsed() > Duration::from_secs(60)) {
                    tracing::warn!(source = %status_name(&status), error = %e, "syslog: receive failed");
                    last_logged = Some(Instant::now());
                }
                if let Ok(mut s) = status.lock() {
                    s.last_error = Some(e.to_string());
                }
                // do not spin on a persistent error
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
            }
        }
    }
}

fn status_name(status: &Mutex<SourceStatus>) -> String {
    status.lock().map(|s| s.name.clone()).unwrap_or_default()
}

/// Decrements the connection count when a connection task ends.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

thread_local! {
    /// The read buffer of the connections served by one worker thread: a task
    /// never holds it across an await, so a connection costs its framer and
    /// counters, not a buffer of its own.
    static READ_BUF: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0u8; READ_CHUNK]);
}

/// Accepts connections until the stop token is cancelled; each connection is a
/// task with its own [`Processor`]. Then closes the connections and waits for them.
async fn run_tcp(
    listener: tokio::net::TcpListener,
    limits: Limits,
    state: Arc<MailState>,
    label: SharedLabel,
    status: Arc<Mutex<SourceStatus>>,
    stop: CancellationToken,
) {
    // counters of the listener itself (refused connections, accept errors)
    let counters = state.metrics.source_counters(&label);
    // register the source even before a first connection, so it shows with zeros
    drop(Processor::new(state.clone(), &label));
    let name = label.as_str().to_string();
    let active = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    let mut last_refusal_log: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    if active.load(Ordering::SeqCst) >= limits.max_connections {
                        counters.read_errors.inc();
                        if last_refusal_log.is_none_or(|t| t.elapsed() > Duration::from_secs(60)) {
                            tracing::warn!(source = %name, %peer, max = limits.max_connections, "syslog: too many connections, closing a new one");
                            last_refusal_log = Some(Instant::now());
                        }
                        drop(stream);
                        continue;
                    }
                    active.fetch_add(1, Ordering::SeqCst);
                    let slot = Slot(active.clone());
                    let processor = Processor::new(state.clone(), &label);
                    let (status, stop) = (status.clone(), stop.clone());
                    tasks.spawn(async move {
                        let _slot = slot;
                        serve_connection(stream, peer, limits, processor, &status, stop).await;
                    });
                }
                Err(e) => {
                    // e.g. EMFILE: count it and let the next tick try again
                    counters.read_errors.inc();
                    tracing::warn!(source = %name, error = %e, "syslog: accept failed");
                    if let Ok(mut s) = status.lock() {
                        s.last_error = Some(e.to_string());
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
    drop(listener);
    // the connections see the same token and end after what they hold
    while tasks.join_next().await.is_some() {}
}

async fn serve_connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    limits: Limits,
    mut processor: Processor,
    status: &Mutex<SourceStatus>,
    stop: CancellationToken,
) {
    let counters = processor.counters().clone();
    tracing::debug!(%peer, "syslog connection");
    let mut framer = Framer::new(limits.max_message);
    let mut emit = |msg: &[u8], cut: bool| deliver(&mut processor, &counters, msg, limits.max_message, cut);
    let end = loop {
        let ready = tokio::select! {
            _ = stop.cancelled() => break "stopping",
            r = tokio::time::timeout(limits.idle_timeout, stream.readable()) => r,
        };
        match ready {
            Err(_) => break "idle",
            Ok(Err(e)) => {
                counters.read_errors.inc();
                tracing::warn!(%peer, error = %e, "syslog: read failed");
                break "read error";
            }
            Ok(Ok(())) => {}
        }
        let read = READ_BUF.with_borrow_mut(|buf| match stream.try_read(buf) {
            Ok(n) => {
                framer.feed(&buf[..n], &mut emit);
                Ok(n)
            }
            Err(e) => Err(e),
        });
        match read {
            Ok(0) => break "closed by the peer",
            Ok(n) => {
                counters.touch();
                if let Ok(mut s) = status.lock() {
                    s.position += n as u64;
                }
            }
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => {}
            Err(e) => {
                counters.read_errors.inc();
                tracing::warn!(%peer, error = %e, "syslog: read failed");
                break "read error";
            }
        }
    };
    if framer.finish(&mut emit) {
        counters.read_errors.inc();
        tracing::warn!(%peer, "syslog: connection ended inside an octet-counted frame; its start is dropped");
    }
    tracing::debug!(%peer, why = end, "syslog connection ended");
}

/// Where the framer is inside the byte stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FrameState {
    /// Between frames.
    Start,
    /// Reading the digits of what may be an octet count (they are in `buf`).
    Count,
    /// Inside an octet-counted frame; this many bytes are still to come.
    Octets(usize),
    /// Inside a frame that ends at LF.
    Line,
    /// Dropping the rest of a newline-framed message that was already cut.
    Discard,
}

/// Splits a TCP byte stream into syslog messages, octet-counted or newline-framed,
/// decided at each frame start (RFC 6587 §3.4). Never holds more than `max` bytes.
#[derive(Debug)]
pub struct Framer {
    state: FrameState,
    buf: Vec<u8>,
    max: usize,
    /// The current octet-counted frame was longer than `max`.
    cut: bool,
}

impl Framer {
    pub fn new(max: usize) -> Framer {
        Framer { state: FrameState::Start, buf: Vec::new(), max, cut: false }
    }

    /// Feeds bytes; `emit(message, cut)` gets every complete message.
    pub fn feed(&mut self, mut data: &[u8], emit: &mut dyn FnMut(&[u8], bool)) {
        while let Some(&b) = data.first() {
            match self.state {
                FrameState::Start => {
                    data = &data[1..];
                    match b {
                        b'\n' | b'\r' | 0 => {}
                        b'1'..=b'9' => {
                            self.buf.push(b);
                            self.state = FrameState::Count;
                        }
                        _ => {
                            self.buf.push(b);
                            self.state = FrameState::Line;
                        }
                    }
                }
                FrameState::Count => {
                    if b.is_ascii_digit() && self.buf.len() < MAX_COUNT_DIGITS {
                        self.buf.push(b);
                        data = &data[1..];
                    } else if b == b' ' {
                        data = &data[1..];
                        // only digits are in buf, at most 9 of them
                        let len = self.buf.iter().fold(0usize, |n, d| n * 10 + usize::from(d - b'0'));
                        self.buf.clear();
                        self.cut = false;
                        self.state = FrameState::Octets(len);
                    } else {
                        // not a count after all: the digits start a newline-framed line
                        self.state = FrameState::Line;
                    }
                }
                FrameState::Octets(remaining) => {
                    let take = remaining.min(data.len());
                    let room = self.max - self.buf.len();
                    if take > room {
                        self.cut = true;
                    }
                    self.buf.extend_from_slice(&data[..take.min(room)]);
                    data = &data[take..];
                    if take == remaining {
                        emit(&self.buf, self.cut);
                        self.buf.clear();
                        self.cut = false;
                        self.state = FrameState::Start;
                    } else {
                        self.state = FrameState::Octets(remaining - take);
                    }
                }
                FrameState::Line => {
                    let end = memchr::memchr(b'\n', data);
                    let piece = &data[..end.unwrap_or(data.len())];
                    let room = self.max - self.buf.len();
                    if piece.len() > room {
                        self.buf.extend_from_slice(&piece[..room]);
                        emit(&self.buf, true);
                        self.buf.clear();
                        self.state = FrameState::Discard;
                        data = &data[room..];
                        continue;
                    }
                    self.buf.extend_from_slice(piece);
                    match end {
                        Some(nl) => {
                            emit(&self.buf, false);
                            self.buf.clear();
                            self.state = FrameState::Start;
                            data = &data[nl + 1..];
                        }
                        None => data = &[],
                    }
                }
                FrameState::Discard => match memchr::memchr(b'\n', data) {
                    Some(nl) => {
                        data = &data[nl + 1..];
                        self.state = FrameState::Start;
                    }
                    None => data = &[],
                },
            }
        }
        if self.buf.is_empty() && self.buf.capacity() > READ_CHUNK {
            self.buf = Vec::new();
        }
    }

    /// The stream ended: emits an unterminated newline-framed message. True when an
    /// octet-counted frame was left unfinished (and is dropped).
    pub fn finish(&mut self, emit: &mut dyn FnMut(&[u8], bool)) -> bool {
        let unfinished = matches!(self.state, FrameState::Octets(_));
        if matches!(self.state, FrameState::Line | FrameState::Count) && !self.buf.is_empty() {
            emit(&self.buf, false);
        }
        self.buf = Vec::new();
        self.state = FrameState::Start;
        self.cut = false;
        unfinished
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::maillog::Outcome;
    use crate::metrics::Metrics;
    use std::io::{Read, Write};
    use std::net::{TcpStream, UdpSocket};

    fn frames(chunks: &[&[u8]], max: usize) -> (Vec<(String, bool)>, bool) {
        let mut f = Framer::new(max);
        let mut out = Vec::new();
        let mut emit = |m: &[u8], cut: bool| out.push((String::from_utf8_lossy(m).into_owned(), cut));
        for c in chunks {
            f.feed(c, &mut emit);
        }
        let unfinished = f.finish(&mut emit);
        (out, unfinished)
    }

    fn plain(v: &[(String, bool)]) -> Vec<&str> {
        v.iter().map(|(m, _)| m.as_str()).collect()
    }

    #[test]
    fn newline_framing() {
        let (got, unfinished) =
            frames(&[b"<22>May 28 08:25:35 h p[1]: a\n<22>May 2", b"8 08:25:35 h p[1]: b\r\n\nlast"], 1000);
        assert_eq!(plain(&got), vec!["<22>May 28 08:25:35 h p[1]: a", "<22>May 28 08:25:35 h p[1]: b\r", "last"]);
        assert!(!unfinished);
        // a message starting with a date is newline-framed, not a count
        let (got, _) = frames(&[b"2026-05-28T08:25:35Z h p[1]: a\n"], 1000);
        assert_eq!(plain(&got), vec!["2026-05-28T08:25:35Z h p[1]: a"]);
    }

    #[test]
    fn octet_counting_in_any_pieces() {
        let m1 = "<22>1 2026-05-28T08:25:35Z talon postfix/smtpd 1 - - first\n";
        let m2 = "<22>May 28 08:25:35 talon sm-mta[2]: second";
        let stream = format!("{} {m1}{} {m2}", m1.len(), m2.len());
        let whole = frames(&[stream.as_bytes()], 1000).0;
        assert_eq!(plain(&whole), vec![m1, m2]);
        // byte by byte
        let bytes: Vec<&[u8]> = stream.as_bytes().chunks(1).collect();
        assert_eq!(frames(&bytes, 1000).0, whole);
        // mixed with newline framing on the same connection
        let mixed = format!("{} {m1}<13>May 28 08:25:35 h p: line\n", m1.len());
        assert_eq!(plain(&frames(&[mixed.as_bytes()], 1000).0), vec![m1, "<13>May 28 08:25:35 h p: line"]);
    }

    #[test]
    fn octet_frames_without_priority_and_unfinished_frames() {
        let m = "2026-05-28T08:25:35Z talon postfix/smtpd[1]: no pri";
        let s = format!("{} {m}", m.len());
        assert_eq!(plain(&frames(&[s.as_bytes()], 1000).0), vec![m]);
        let (got, unfinished) = frames(&[b"100 <22>short"], 1000);
        assert!(got.is_empty());
        assert!(unfinished);
    }

    #[test]
    fn long_messages_are_cut_and_resynchronised() {
        // newline-framed: cut at 8, the rest dropped up to the newline
        let (got, _) = frames(&[b"<1>abcdefghij", b"klm\n<1>ok\n"], 8);
        assert_eq!(got, vec![("<1>abcde".to_string(), true), ("<1>ok".to_string(), false)]);
        // octet-counted: the frame is read to its end, 8 bytes kept
        let (got, _) = frames(&[b"12 <1>abcdefghi", b"5 <1>ok"], 8);
        assert_eq!(got, vec![("<1>abcde".to_string(), true), ("<1>ok".to_string(), false)]);
        // a ten-digit "count" is not one
        let (got, _) = frames(&[b"1234567890 x\n"], 100);
        assert_eq!(plain(&got), vec!["1234567890 x"]);
    }

    #[test]
    fn trims_message_ends() {
        assert_eq!(trim_end(b"a\r\n\0"), b"a");
        assert_eq!(trim_end(b"\n"), b"");
        assert_eq!(trim_end(b"a b"), b"a b");
    }

    const REJECT_3164: &str = "<22>2026-05-28T08:25:35.123456+00:00 talon postfix/smtpd[123]: NOQUEUE: reject: RCPT from unknown[192.0.2.1]: 554 5.7.1 <x@nmrc.org>: Relay access denied; from=<a@example.com> to=<x@nmrc.org> proto=ESMTP helo=<x>";
    const REJECT_5424: &str = "<22>1 2026-05-28T08:25:35.123456+00:00 talon postfix/smtpd 123 - - NOQUEUE: reject: RCPT from unknown[192.0.2.1]: 554 5.7.1 <x@nmrc.org>: Relay access denied; from=<a@example.com> to=<x@nmrc.org> proto=ESMTP helo=<x>";

    struct Running {
        runtime: tokio::runtime::Runtime,
        state: Arc<MailState>,
        stop: CancellationToken,
        handle: SourceHandle,
        addr: SocketAddr,
    }

    impl Running {
        fn start(tcp: bool, limits: Limits) -> Running {
            let listen = SyslogListen { tcp, addr: "127.0.0.1:0".parse().unwrap() };
            let state = Arc::new(MailState::new(Arc::new(Metrics::for_replay()), 64, "default", &["nmrc.org".into()]));
            let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
            let stop = CancellationToken::new();
            let (handle, addr) = {
                let _in = runtime.enter();
                spawn_bound(&listen, limits, state.clone(), stop.clone()).unwrap()
            };
            Running { runtime, state, stop, handle, addr }
        }

        fn lines(&self, outcome: Outcome) -> u64 {
            self.state.tally().lines.iter().filter(|(_, o, _)| *o == outcome).map(|(_, _, n)| n).sum()
        }

        fn all_lines(&self) -> u64 {
            self.state.tally().lines.iter().map(|(_, _, n)| n).sum()
        }

        /// (read errors, truncated lines)
        fn errors(&self) -> (u64, u64) {
            let t = self.state.tally();
            (t.sources.iter().map(|s| s.1).sum(), t.sources.iter().map(|s| s.2).sum())
        }

        fn misroutes(&self) -> u64 {
            self.state.tally().misroutes.iter().map(|(_, n)| n).sum()
        }

        fn wait(&self, what: &str, pred: impl Fn(&Running) -> bool) {
            let deadline = Instant::now() + Duration::from_secs(10);
            while !pred(self) {
                assert!(Instant::now() < deadline, "timed out waiting for {what}; tally: {:?}", self.state.tally());
                std::thread::sleep(Duration::from_millis(10));
            }
        }

        fn stop(mut self) -> Duration {
            let t = Instant::now();
            self.stop.cancel();
            self.runtime.block_on(self.handle.task.take().unwrap()).unwrap();
            t.elapsed()
        }
    }

    #[test]
    fn udp_datagrams_in_both_formats() {
        let r = Running::start(false, Limits::default());
        assert_eq!(r.handle.snapshot().unwrap().name, "syslog:udp://127.0.0.1:0");
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        tx.send_to(REJECT_3164.as_bytes(), r.addr).unwrap();
        tx.send_to(format!("{REJECT_5424}\n").as_bytes(), r.addr).unwrap();
        tx.send_to(format!("{REJECT_3164}\0").as_bytes(), r.addr).unwrap();
        tx.send_to(b"\n", r.addr).unwrap(); // empty: not a line
        tx.send_to(b"<13>May 28 08:25:35 talon sshd[1]: hello", r.addr).unwrap();
        r.wait("five datagrams", |r| r.all_lines() == 4);
        assert_eq!(r.lines(Outcome::Reject), 3);
        assert_eq!(r.lines(Outcome::Foreign), 1);
        assert_eq!(r.misroutes(), 3);
        assert_eq!(r.errors(), (0, 0));
        assert!(r.stop() < Duration::from_secs(2));
    }

    #[test]
    fn udp_datagrams_longer_than_the_limit_are_cut() {
        let r = Running::start(false, Limits { max_message: 100, ..Limits::default() });
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        tx.send_to(REJECT_3164.as_bytes(), r.addr).unwrap();
        r.wait("one datagram", |r| r.all_lines() == 1);
        assert_eq!(r.errors(), (0, 1));
        r.stop();
    }

    #[test]
    fn tcp_both_framings_on_several_connections() {
        let r = Running::start(true, Limits::default());
        let mut octets = TcpStream::connect(r.addr).unwrap();
        let mut lines = TcpStream::connect(r.addr).unwrap();
        for m in [REJECT_3164, REJECT_5424] {
            write!(octets, "{} {m}", m.len()).unwrap();
        }
        // split in the middle of a count and of a message
        let one = format!("{} {REJECT_3164}", REJECT_3164.len());
        octets.write_all(&one.as_bytes()[..2]).unwrap();
        octets.flush().unwrap();
        std::thread::sleep(Duration::from_millis(30));
        octets.write_all(&one.as_bytes()[2..50]).unwrap();
        std::thread::sleep(Duration::from_millis(30));
        octets.write_all(&one.as_bytes()[50..]).unwrap();
        writeln!(lines, "{REJECT_3164}\r").unwrap();
        write!(lines, "{REJECT_5424}\n{REJECT_3164}").unwrap();
        drop(lines); // the unterminated last line still counts
        r.wait("six messages", |r| r.lines(Outcome::Reject) == 6);
        drop(octets);
        assert_eq!(r.errors(), (0, 0));
        r.stop();
    }

    #[test]
    fn tcp_connections_beyond_the_limit_are_refused() {
        let r = Running::start(true, Limits { max_connections: 2, ..Limits::default() });
        let a = TcpStream::connect(r.addr).unwrap();
        let b = TcpStream::connect(r.addr).unwrap();
        // wait until both are served
        let mut c = TcpStream::connect(r.addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut byte = [0u8; 1];
        // the third one is closed at once by the receiver
        assert_eq!(c.read(&mut byte).unwrap_or(0), 0);
        r.wait("a refusal", |r| r.errors().0 == 1);
        // a slot frees when a connection ends
        drop(a);
        std::thread::sleep(Duration::from_millis(400));
        let mut d = TcpStream::connect(r.addr).unwrap();
        writeln!(d, "{REJECT_3164}").unwrap();
        r.wait("the message of the fourth connection", |r| r.lines(Outcome::Reject) == 1);
        drop((b, d));
        r.stop();
    }

    #[test]
    fn idle_connections_are_closed_and_stop_is_prompt() {
        let r = Running::start(true, Limits { idle_timeout: Duration::from_millis(300), ..Limits::default() });
        let mut idle = TcpStream::connect(r.addr).unwrap();
        idle.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let t = Instant::now();
        let mut byte = [0u8; 1];
        assert_eq!(idle.read(&mut byte).unwrap_or(0), 0, "closed by the receiver");
        assert!(t.elapsed() >= Duration::from_millis(250), "{:?}", t.elapsed());
        // a connection in the middle of an octet-counted frame when the exporter stops
        let mut busy = TcpStream::connect(r.addr).unwrap();
        busy.write_all(b"500 <22>May 28 08:25:35 h p[1]: partial").unwrap();
        std::thread::sleep(Duration::from_millis(100));
        assert!(r.stop() < Duration::from_secs(2));
    }
}
