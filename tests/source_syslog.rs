//! The syslog receiver against real senders: messages written in rsyslog's exact
//! formats, `logger` (util-linux) sending straight to the exporter, and a real
//! rsyslog forwarding with `omfwd` over UDP, TCP with octet counting and TCP with
//! newline framing. In each case the exporter's counters must equal what `replay`
//! counts on the same lines (`tests/fixtures/samples/lab-mail.log`: real Sendmail,
//! Postfix and Exim output).

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Exporter, fixture, metric_samples, metric_value};
use mailroute_exporter::maillog::envelope;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(30);
/// Messages sent before waiting for the exporter to count them: a burst stays far
/// below a UDP socket's default receive buffer, so no datagram is dropped.
const BATCH: usize = 100;

fn lab_lines() -> Vec<String> {
    std::fs::read_to_string(fixture("samples/lab-mail.log")).unwrap().lines().map(str::to_string).collect()
}

/// (timestamp, host, program, pid, message) of a classic syslog line.
fn fields(line: &str) -> (&str, &str, &str, &str, &str) {
    let e = envelope::parse(line.as_bytes()).unwrap();
    let s = |b| std::str::from_utf8(b).unwrap();
    (s(e.timestamp), s(e.host.unwrap()), s(e.program), s(e.pid.unwrap_or(b"")), s(e.message))
}

/// `Nov 27 01:17:36` as rsyslog's RFC 3339 high-precision time.
fn rfc3339(ts: &str) -> String {
    let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let month = months.iter().position(|m| ts.starts_with(m)).unwrap() + 1;
    let day: u32 = ts[4..6].trim().parse().unwrap();
    format!("2026-{month:02}-{day:02}T{}.000000+00:00", &ts[7..15])
}

/// The line as rsyslog's RSYSLOG_ForwardFormat writes it.
fn forward_format(line: &str) -> String {
    let (ts, host, prog, pid, msg) = fields(line);
    format!("<22>{} {host} {prog}[{pid}]: {msg}", rfc3339(ts))
}

/// The line as rsyslog's RSYSLOG_SyslogProtocol23Format (RFC 5424) writes a message
/// it parsed as RFC 3164: the message keeps the space that followed the tag.
fn rfc5424_format(line: &str) -> String {
    let (ts, host, prog, pid, msg) = fields(line);
    format!("<22>1 {} {host} {prog} {pid} - -  {msg}\n", rfc3339(ts))
}

/// The line as RSYSLOG_TraditionalForwardFormat (omfwd's default) writes it.
fn traditional_format(line: &str) -> String {
    format!("<22>{line}")
}

fn config(dir: &Path, listeners: &[&str]) -> PathBuf {
    let p = dir.join("config.toml");
    let list: Vec<String> = listeners.iter().map(|l| format!("{l:?}")).collect();
    std::fs::write(
        &p,
        format!("[maillog]\nsyslog_listen = [{}]\nlocal_domains = [\"broken.test\"]\n", list.join(", ")),
    )
    .unwrap();
    p
}

/// The address the exporter bound for a listener configured with port 0.
fn bound(ex: &Exporter, source: &str) -> SocketAddr {
    let log = ex.stderr();
    let line = log
        .lines()
        .find(|l| l.contains("msg=\"syslog listening\"") && l.contains(&format!("source={source} ")))
        .unwrap_or_else(|| panic!("no listening line for {source}:\n{log}"));
    line.split_whitespace().find_map(|f| f.strip_prefix("address=")).unwrap().parse().unwrap()
}

/// `replay --output=json` of `lines`.
fn replay(dir: &Path, cfg: &Path, lines: &[String]) -> Value {
    let file = dir.join("expected.log");
    std::fs::write(&file, lines.iter().map(|l| format!("{l}\n")).collect::<String>()).unwrap();
    let (status, out, err) =
        common::run(&["replay", &format!("--config.file={}", cfg.display()), "--output=json", file.to_str().unwrap()]);
    assert!(status.success(), "replay failed: {err}");
    serde_json::from_str(&out).unwrap()
}

fn labels_of(v: &Value, names: &[&str]) -> Vec<(String, String)> {
    names.iter().map(|n| (n.to_string(), v[*n].as_str().unwrap().to_string())).collect()
}

/// Label sets that matter for a comparison: all of them, or all but `host`.
fn keep(names: &[&'static str], with_host: bool) -> Vec<&'static str> {
    names.iter().copied().filter(|n| with_host || *n != "host").collect()
}

/// The exporter's reject, misroute and accepted counters equal `factor` times
/// replay's (summed over hosts unless `with_host`), and each source counted its
/// factor times as many lines of each outcome as replay did, without read errors.
fn assert_counts(text: &str, expected: &Value, factor: u64, sources: &[(&str, u64)], with_host: bool) {
    let families = [
        ("rejects", "mailroute_smtp_rejects_total", &["host", "mta", "stage", "reason", "class"][..]),
        ("misroutes", "mailroute_misroutes_total", &["host", "domain"][..]),
        ("accepted", "mailroute_smtp_messages_accepted_total", &["host", "mta"][..]),
    ];
    for (key, metric, names) in families {
        let names = keep(names, with_host);
        let mut want: BTreeMap<Vec<(String, String)>, u64> = BTreeMap::new();
        for row in expected[key].as_array().unwrap() {
            *want.entry(labels_of(row, &names)).or_default() += row["count"].as_u64().unwrap() * factor;
        }
        let mut got: BTreeMap<Vec<(String, String)>, u64> = BTreeMap::new();
        for (labels, v) in metric_samples(text, metric) {
            if v > 0.0 {
                *got.entry(names.iter().map(|n| (n.to_string(), labels[*n].clone())).collect()).or_default() +=
                    v as u64;
            }
        }
        assert_eq!(got, want, "{metric} differs from replay (x{factor})");
    }
    let mut want_lines: BTreeMap<String, u64> = BTreeMap::new();
    for row in expected["lines"].as_array().unwrap() {
        *want_lines.entry(row["outcome"].as_str().unwrap().to_string()).or_default() += row["count"].as_u64().unwrap();
    }
    for (source, copies) in sources {
        for outcome in ["reject", "accepted", "mta_other", "foreign", "unparsed"] {
            let got = metric_value(text, "mailroute_log_lines_total", &[("source", source), ("outcome", outcome)]);
            assert_eq!(
                got.unwrap_or(0.0) as u64,
                want_lines.get(outcome).copied().unwrap_or(0) * copies,
                "lines of outcome {outcome} from {source}"
            );
        }
        let errors = metric_value(text, "mailroute_log_read_errors_total", &[("source", source)]);
        assert_eq!(errors, Some(0.0), "read errors of {source}");
        let cut = metric_value(text, "mailroute_log_lines_truncated_total", &[("source", source)]);
        assert_eq!(cut, Some(0.0), "truncated lines of {source}");
    }
}

fn source_lines(text: &str, source: &str) -> u64 {
    metric_samples(text, "mailroute_log_lines_total")
        .into_iter()
        .filter(|(l, _)| l.get("source").map(String::as_str) == Some(source))
        .map(|(_, v)| v as u64)
        .sum()
}

/// Waits until `source` has counted `n` lines.
fn wait_lines(ex: &Exporter, source: &str, n: u64) {
    ex.wait_for(|t| source_lines(t, source) >= n, WAIT);
}

/// Waits until each source has counted its number of lines, then checks that no
/// more come.
fn settle(ex: &Exporter, sources: &[(&str, u64)]) -> String {
    for (s, n) in sources {
        wait_lines(ex, s, *n);
    }
    std::thread::sleep(Duration::from_millis(300));
    let text = ex.scrape();
    for (s, n) in sources {
        assert_eq!(source_lines(&text, s), *n, "lines from {s}; stderr:\n{}", ex.stderr());
    }
    text
}

#[test]
fn rsyslog_formats_over_udp_and_both_tcp_framings() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path(), &["udp://127.0.0.1:0", "tcp://127.0.0.1:0"]);
    let mut ex = Exporter::start(&["serve", &format!("--config.file={}", cfg.display())]);
    let (udp_src, tcp_src) = ("syslog:udp://127.0.0.1:0", "syslog:tcp://127.0.0.1:0");
    let udp = bound(&ex, udp_src);
    let tcp = bound(&ex, tcp_src);
    let lab = lab_lines();

    // UDP: RSYSLOG_ForwardFormat, one message per datagram, some with a trailing LF
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
    for (i, chunk) in lab.chunks(BATCH).enumerate() {
        for (j, line) in chunk.iter().enumerate() {
            let mut m = forward_format(line);
            if j % 2 == 0 {
                m.push('\n');
            }
            tx.send_to(m.as_bytes(), udp).unwrap();
        }
        wait_lines(&ex, udp_src, (i * BATCH + chunk.len()) as u64);
    }

    // TCP, octet counting, RFC 5424; written in pieces that split counts and messages
    let mut stream = Vec::new();
    for line in &lab {
        let m = rfc5424_format(line);
        write!(stream, "{} {m}", m.len()).unwrap();
    }
    let mut octets = TcpStream::connect(tcp).unwrap();
    for piece in stream.chunks(7001) {
        octets.write_all(piece).unwrap();
    }
    // TCP, newline framing, RSYSLOG_TraditionalForwardFormat, on a second connection
    let mut lines = TcpStream::connect(tcp).unwrap();
    for line in &lab {
        writeln!(lines, "{}", traditional_format(line)).unwrap();
    }
    drop((octets, lines));

    let expected = replay(tmp.path(), &cfg, &lab);
    let n = lab.len() as u64;
    let text = settle(&ex, &[(udp_src, n), (tcp_src, 2 * n)]);
    // three copies of the lab log: the UDP one, and the TCP source's two connections
    assert_counts(&text, &expected, 3, &[(udp_src, 1), (tcp_src, 2)], true);

    // RFC 5424 from an rsyslog that cut "postfix/smtpd" to "postfix": said once
    let slashless = "<22>1 2026-11-27T01:17:36.000000+00:00 talon postfix 27089 - -  NOQUEUE: reject: x";
    tx.send_to(slashless.as_bytes(), udp).unwrap();
    tx.send_to(slashless.as_bytes(), udp).unwrap();
    wait_lines(&ex, udp_src, n + 2);
    assert_eq!(ex.stderr().matches("permitSlashInProgramName").count(), 1, "{}", ex.stderr());
    assert!(ex.stop().success());
}

#[test]
fn logger_sends_straight_to_the_exporter() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path(), &["udp://127.0.0.1:0", "tcp://127.0.0.1:0"]);
    let mut ex = Exporter::start(&["serve", &format!("--config.file={}", cfg.display())]);
    let (udp_src, tcp_src) = ("syslog:udp://127.0.0.1:0", "syslog:tcp://127.0.0.1:0");
    let udp = bound(&ex, udp_src);
    let tcp = bound(&ex, tcp_src);
    // every reject and acceptance of the lab log, plus some other MTA lines
    let lab: Vec<String> = lab_lines()
        .into_iter()
        .enumerate()
        .filter(|(i, l)| i % 25 == 0 || l.contains("reject") || l.contains("client=") || l.contains(" <= "))
        .map(|(_, l)| l)
        .collect();
    // logger writes this machine's name as the host: compare counts summed over hosts
    let modes: [(&[&str], SocketAddr, &str); 4] = [
        (&["--rfc3164"], udp, udp_src),
        (&["--rfc5424"], udp, udp_src),
        (&["-T", "--octet-count", "--rfc5424"], tcp, tcp_src),
        (&["-T", "--rfc3164"], tcp, tcp_src),
    ];
    for (k, (flags, addr, source)) in modes.iter().enumerate() {
        for (i, line) in lab.iter().enumerate() {
            let (_, _, prog, pid, msg) = fields(line);
            let status = Command::new("logger")
                .args(["-n", &addr.ip().to_string(), "-P", &addr.port().to_string()])
                .args(*flags)
                .args(["-t", prog, &format!("--id={pid}"), "-p", "mail.info", "--", msg])
                .status()
                .expect("run logger (util-linux bsdutils)");
            assert!(status.success());
            if i % BATCH == BATCH - 1 {
                wait_lines(&ex, source, ((k % 2) * lab.len() + i + 1) as u64);
            }
        }
    }
    let expected = replay(tmp.path(), &cfg, &lab);
    let n = 2 * lab.len() as u64;
    let text = settle(&ex, &[(udp_src, n), (tcp_src, n)]);
    assert_counts(&text, &expected, 4, &[(udp_src, 2), (tcp_src, 2)], false);
    assert!(ex.stop().success());
}

/// A private rsyslogd, stopped when dropped.
struct Rsyslog {
    child: Child,
    dir: PathBuf,
}

impl Rsyslog {
    /// Starts rsyslogd with two inputs: `feed.sock`, where whole syslog lines (with
    /// their host) are parsed as RFC 3164, and `logger.sock` for `logger -u`, whose
    /// messages get the host `talon`; both go to `action`.
    fn start(dir: &Path, action: &str) -> Rsyslog {
        let work = dir.join("rsyslog-work");
        std::fs::create_dir_all(&work).unwrap();
        let conf = dir.join("rsyslog.conf");
        let text = format!(
            r#"global(workDirectory="{work}" maxMessageSize="64k" parser.permitSlashInProgramName="on")
module(load="imuxsock" SysSock.Use="off")
input(type="imuxsock" Socket="{dir}/feed.sock" UseSpecialParser="off" ParseHostname="on"
      UseSysTimeStamp="off" IgnoreTimestamp="off" RateLimit.Interval="0" Ruleset="forward")
input(type="imuxsock" Socket="{dir}/logger.sock" HostName="talon" RateLimit.Interval="0" Ruleset="forward")
ruleset(name="forward") {{
  {action}
}}
"#,
            work = work.display(),
            dir = dir.display(),
        );
        std::fs::write(&conf, text).unwrap();
        let child = Command::new("rsyslogd")
            .args(["-n", "-f"])
            .arg(&conf)
            .arg("-i")
            .arg(dir.join("rsyslogd.pid"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run rsyslogd (Debian package rsyslog)");
        let r = Rsyslog { child, dir: dir.to_path_buf() };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !(dir.join("feed.sock").exists() && dir.join("logger.sock").exists()) {
            assert!(Instant::now() < deadline, "rsyslogd did not open its sockets");
            std::thread::sleep(Duration::from_millis(20));
        }
        r
    }

    fn feed(&self, line: &str) {
        let sock = UnixDatagram::unbound().unwrap();
        sock.send_to(format!("<22>{line}").as_bytes(), self.dir.join("feed.sock")).unwrap();
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child, not yet reaped.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Lines `logger -u` sends through rsyslog, and how a classic log would show them.
const LOGGER_LINES: &[(&str, &str, &str)] = &[
    (
        "postfix/smtpd",
        "30001",
        "NOQUEUE: reject: RCPT from mail-b.sender.test[127.0.2.11]: 554 5.7.1 <info@broken.test>: Relay access denied; from=<noreply@sender.test> to=<info@broken.test> proto=ESMTP helo=<mail-b.sender.test>",
    ),
    (
        "postfix/submission/smtpd",
        "30002",
        "warning: unknown[192.0.2.9]: SASL LOGIN authentication failed: UGFzc3dvcmQ6",
    ),
    (
        "sm-mta",
        "30003",
        "6AR1Ha2h030003: ruleset=check_rcpt, arg1=<bob@broken.test>, relay=x.sender.test [127.0.2.17], reject=550 5.7.1 <bob@broken.test>... Relaying denied. Proper authentication required.",
    ),
];

/// Feeds the lab log and the logger lines through rsyslog to the exporter and
/// compares with replay.
fn through_rsyslog(listen: &str, action: impl Fn(SocketAddr) -> String) {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path(), &[listen]);
    let mut ex = Exporter::start(&["serve", &format!("--config.file={}", cfg.display())]);
    let source = format!("syslog:{listen}");
    let addr = bound(&ex, &source);
    let rsyslog = Rsyslog::start(tmp.path(), &action(addr));
    let lab = lab_lines();
    for (i, chunk) in lab.chunks(BATCH).enumerate() {
        for line in chunk {
            rsyslog.feed(line);
        }
        wait_lines(&ex, &source, (i * BATCH + chunk.len()) as u64);
    }
    let mut lines = lab.clone();
    for (tag, pid, msg) in LOGGER_LINES {
        let status = Command::new("logger")
            .arg("-u")
            .arg(tmp.path().join("logger.sock"))
            .args(["-t", tag, &format!("--id={pid}"), "-p", "mail.info", "--", msg])
            .status()
            .expect("run logger (util-linux bsdutils)");
        assert!(status.success());
        lines.push(format!("Nov 27 01:30:00 talon {tag}[{pid}]: {msg}"));
    }
    let expected = replay(tmp.path(), &cfg, &lines);
    let text = settle(&ex, &[(&source, lines.len() as u64)]);
    assert_counts(&text, &expected, 1, &[(&source, 1)], true);
    drop(rsyslog);
    assert!(ex.stop().success());
}

#[test]
fn rsyslog_forwards_over_udp() {
    through_rsyslog("udp://127.0.0.1:0", |a| {
        format!(
            r#"action(type="omfwd" target="{}" port="{}" protocol="udp" template="RSYSLOG_ForwardFormat")"#,
            a.ip(),
            a.port()
        )
    });
}

#[test]
fn rsyslog_forwards_over_tcp_octet_counted_rfc5424() {
    through_rsyslog("tcp://127.0.0.1:0", |a| {
        format!(
            r#"action(type="omfwd" target="{}" port="{}" protocol="tcp" TCP_Framing="octet-counted" template="RSYSLOG_SyslogProtocol23Format")"#,
            a.ip(),
            a.port()
        )
    });
}

#[test]
fn rsyslog_forwards_over_tcp_newline_framed() {
    // omfwd's default template: RSYSLOG_TraditionalForwardFormat
    through_rsyslog("tcp://127.0.0.1:0", |a| {
        format!(r#"action(type="omfwd" target="{}" port="{}" protocol="tcp")"#, a.ip(), a.port())
    });
}
