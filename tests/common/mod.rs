//! Helpers shared by the integration tests that run the real binary.
//!
//! - [`Exporter`] starts `mailroute_exporter` (by default on `127.0.0.1:0`), waits
//!   for its `msg=listening address=…` line on stderr, and talks HTTP to it.
//! - [`metric_value`] reads one sample of the Prometheus text (or OpenMetrics)
//!   format by name and exact label set.
//! - [`promtool_check_metrics`] runs `promtool check metrics` on a text.
//!
//! Every integration test file includes this module (`mod common;`), and none uses
//! all of it, hence the `dead_code` allowance.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_mailroute_exporter");

/// How long [`Exporter::start`] waits for the listening line.
pub const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A response: status, headers (names lowercased; repeated headers joined with
/// ", "), raw body bytes.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

impl Response {
    /// The body as UTF-8 (panics if it is not).
    pub fn text(&self) -> String {
        String::from_utf8(self.body.clone()).expect("the body is UTF-8")
    }

    /// A header by (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(&name.to_ascii_lowercase()).map(String::as_str)
    }
}

/// A running exporter. The child is killed when this is dropped.
pub struct Exporter {
    child: Child,
    addr: SocketAddr,
    stderr: Arc<Mutex<String>>,
    stdin: Option<ChildStdin>,
    agent: ureq::Agent,
}

impl Exporter {
    /// Starts the binary with `args` (a subcommand may come first). Unless the args
    /// name a listen address, `--web.listen-address=127.0.0.1:0` is added. Panics,
    /// with the captured stderr, if the listening line does not come within 10 s.
    pub fn start(args: &[&str]) -> Exporter {
        Exporter::spawn(args, false)
    }

    /// Like [`Exporter::start`], with standard input piped (see [`Exporter::stdin`]).
    pub fn start_with_stdin(args: &[&str]) -> Exporter {
        Exporter::spawn(args, true)
    }

    fn spawn(args: &[&str], pipe_stdin: bool) -> Exporter {
        let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        if !all.iter().any(|a| a.starts_with("--web.listen-address")) {
            all.push("--web.listen-address=127.0.0.1:0".to_string());
        }
        let mut child = Command::new(BIN)
            .args(&all)
            .stdin(if pipe_stdin { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {BIN}: {e}"));
        let stdin = child.stdin.take();
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel::<SocketAddr>();
        let pipe = child.stderr.take().expect("stderr is piped");
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(pipe);
            let mut line = Vec::new();
            loop {
                line.clear();
                match reader.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let text = String::from_utf8_lossy(&line).into_owned();
                        // the line is kept before the start is reported, so a test
                        // that looks at stderr right after the start sees it
                        sink.lock().unwrap().push_str(&text);
                        if let Some(addr) = listening_address(&text) {
                            let _ = tx.send(addr);
                        }
                    }
                }
            }
        });
        let deadline = Instant::now() + START_TIMEOUT;
        let addr = loop {
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok(addr) => break addr,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if let Ok(Some(status)) = child.try_wait() {
                        std::thread::sleep(Duration::from_millis(50));
                        panic!(
                            "{BIN} {all:?} exited with {status} before listening; stderr:\n{}",
                            stderr.lock().unwrap()
                        );
                    }
                    if Instant::now() > deadline {
                        let _ = child.kill();
                        let _ = child.wait();
                        panic!(
                            "{BIN} {all:?} did not log a listening line within {START_TIMEOUT:?}; stderr:\n{}",
                            stderr.lock().unwrap()
                        );
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let _ = child.wait();
                    panic!("{BIN} {all:?} closed stderr before listening; stderr:\n{}", stderr.lock().unwrap());
                }
            }
        };
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(10)))
            .build()
            .into();
        Exporter { child, addr, stderr, stdin, agent }
    }

    /// The address the exporter listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Standard input of a child started with [`Exporter::start_with_stdin`].
    pub fn stdin(&mut self) -> &mut ChildStdin {
        self.stdin.as_mut().expect("started with start_with_stdin")
    }

    /// Closes standard input (end of file for the child).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Writes `text` to the child's standard input and flushes.
    pub fn write_stdin(&mut self, text: &[u8]) {
        let stdin = self.stdin();
        stdin.write_all(text).expect("write to the exporter's stdin");
        stdin.flush().expect("flush the exporter's stdin");
    }

    /// `GET path`.
    pub fn get(&self, path: &str) -> Response {
        self.get_with(path, &[])
    }

    /// `GET path` with extra request headers.
    pub fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Response {
        let mut req = self.agent.get(&self.url(path));
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let resp = req.call().unwrap_or_else(|e| panic!("GET {path}: {e}; stderr:\n{}", self.stderr()));
        into_response(resp)
    }

    /// `POST path` with an empty body.
    pub fn post(&self, path: &str) -> Response {
        let resp = self
            .agent
            .post(&self.url(path))
            .send_empty()
            .unwrap_or_else(|e| panic!("POST {path}: {e}; stderr:\n{}", self.stderr()));
        into_response(resp)
    }

    /// `GET /metrics` in the text format 0.0.4; panics unless the status is 200.
    pub fn scrape(&self) -> String {
        let r = self.get("/metrics");
        assert_eq!(r.status, 200, "GET /metrics: {}", String::from_utf8_lossy(&r.body));
        r.text()
    }

    /// The value of one sample in `text` (see [`metric_value`]).
    pub fn metric_value(&self, text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        metric_value(text, name, labels)
    }

    /// Scrapes until `pred(text)` holds or `timeout` passes; returns the last text.
    /// Panics with the last scrape and the stderr on timeout.
    pub fn wait_for(&self, pred: impl Fn(&str) -> bool, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let text = self.scrape();
            if pred(&text) {
                return text;
            }
            if Instant::now() > deadline {
                panic!("condition not met within {timeout:?}; last scrape:\n{text}\nstderr:\n{}", self.stderr());
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Waits until `name{labels}` equals `want` (within `timeout`).
    pub fn wait_for_value(&self, name: &str, labels: &[(&str, &str)], want: f64, timeout: Duration) -> String {
        self.wait_for(|t| metric_value(t, name, labels) == Some(want), timeout)
    }

    /// Sends SIGTERM and waits (at most 10 s) for the exit status.
    pub fn stop(&mut self) -> ExitStatus {
        self.signal(libc::SIGTERM);
        self.wait_exit(Duration::from_secs(10)).unwrap_or_else(|| {
            let _ = self.child.kill();
            panic!("the exporter did not exit within 10 s of SIGTERM; stderr:\n{}", self.stderr())
        })
    }

    /// Sends a signal to the child.
    pub fn signal(&self, sig: libc::c_int) {
        // SAFETY: kill(2) with the pid of our own, not yet reaped, child.
        let rc = unsafe { libc::kill(self.child.id() as libc::pid_t, sig) };
        assert_eq!(rc, 0, "kill({}, {sig}) failed", self.child.id());
    }

    /// Waits up to `timeout` for the child to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Everything the child wrote on stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

fn into_response(mut resp: ureq::http::Response<ureq::Body>) -> Response {
    let status = resp.status().as_u16();
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in resp.headers() {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        headers
            .entry(name.as_str().to_ascii_lowercase())
            .and_modify(|v| {
                v.push_str(", ");
                v.push_str(&value);
            })
            .or_insert(value);
    }
    let mut body = Vec::new();
    resp.body_mut().as_reader().read_to_end(&mut body).expect("read the response body");
    Response { status, headers, body }
}

/// The `address=` of a logfmt `msg=listening` line (`IP:PORT`, or a URL
/// `http://IP:PORT` / `https://IP:PORT`).
fn listening_address(line: &str) -> Option<SocketAddr> {
    if !line.contains("msg=listening") {
        return None;
    }
    let value = line.split_whitespace().find_map(|field| field.strip_prefix("address="))?.trim_matches('"');
    let value = value.strip_prefix("http://").or_else(|| value.strip_prefix("https://")).unwrap_or(value);
    value.trim_end_matches('/').parse().ok()
}

/// One sample of a Prometheus text or OpenMetrics exposition: the value of `name`
/// whose label set is exactly `labels` (any order). `None` when there is no such
/// sample. Label values are unescaped (`\\`, `\"`, `\n`) before comparing.
pub fn metric_value(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut want: Vec<(String, String)> = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    want.sort();
    for line in text.lines() {
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let Some((sample_name, sample_labels, value)) = parse_sample(line) else { continue };
        if sample_name != name {
            continue;
        }
        let mut got = sample_labels;
        got.sort();
        if got == want {
            return parse_value(value);
        }
    }
    None
}

/// Every sample of `name`, as (labels, value).
pub fn metric_samples(text: &str, name: &str) -> Vec<(BTreeMap<String, String>, f64)> {
    let mut out = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        if let Some((n, labels, value)) = parse_sample(line)
            && n == name
            && let Some(v) = parse_value(value)
        {
            out.push((labels.into_iter().collect(), v));
        }
    }
    out
}

/// The sum of every sample of `name` whose labels include all of `filter`.
pub fn metric_sum(text: &str, name: &str, filter: &[(&str, &str)]) -> f64 {
    metric_samples(text, name)
        .into_iter()
        .filter(|(labels, _)| filter.iter().all(|(k, v)| labels.get(*k).map(String::as_str) == Some(*v)))
        .map(|(_, v)| v)
        .sum()
}

fn parse_value(v: &str) -> Option<f64> {
    match v {
        "+Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => v.parse().ok(),
    }
}

/// A parsed sample line: name, labels, value.
type Sample<'a> = (&'a str, Vec<(String, String)>, &'a str);

/// `name{a="x",b="y"} value [timestamp]` → (name, labels, value).
fn parse_sample(line: &str) -> Option<Sample<'_>> {
    let name_end = line.find(['{', ' '])?;
    let name = &line[..name_end];
    let bytes = line.as_bytes();
    let mut i = name_end;
    let mut labels = Vec::new();
    if bytes[i] == b'{' {
        i += 1;
        loop {
            while bytes.get(i) == Some(&b',') || bytes.get(i) == Some(&b' ') {
                i += 1;
            }
            if *bytes.get(i)? == b'}' {
                i += 1;
                break;
            }
            let eq = line[i..].find('=')? + i;
            let key = line[i..eq].to_string();
            i = eq + 1;
            if *bytes.get(i)? != b'"' {
                return None;
            }
            i += 1;
            let mut value = Vec::new();
            loop {
                match *bytes.get(i)? {
                    b'\\' => {
                        let next = *bytes.get(i + 1)?;
                        value.push(if next == b'n' { b'\n' } else { next });
                        i += 2;
                    }
                    b'"' => {
                        i += 1;
                        break;
                    }
                    c => {
                        value.push(c);
                        i += 1;
                    }
                }
            }
            labels.push((key, String::from_utf8(value).ok()?));
        }
    }
    let value = line[i..].split_whitespace().next()?;
    Some((name, labels, value))
}

/// Runs `promtool check metrics` with `text` on stdin: `Ok` when it reports no
/// problem, else its output.
pub fn promtool_check_metrics(text: &str) -> Result<(), String> {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run promtool: {e}"))?;
    let mut stdin = child.stdin.take().expect("piped");
    let input = text.to_string();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().map_err(|e| format!("promtool: {e}"))?;
    let _ = writer.join();
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    if out.status.success() && report.trim().is_empty() { Ok(()) } else { Err(report) }
}

/// Rewrites an OpenMetrics exposition into the Prometheus text format 0.0.4, which
/// is what `promtool check metrics` (2.x) parses: a counter family `x` with samples
/// `x_total` is declared as `x_total`, an info family `x` as the gauge `x_info`,
/// `unknown` becomes `untyped`, and `# EOF` goes.
pub fn openmetrics_to_text(om: &str) -> String {
    let mut kinds: BTreeMap<String, String> = BTreeMap::new();
    for line in om.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ")
            && let Some((name, kind)) = rest.split_once(' ')
        {
            kinds.insert(name.to_string(), kind.to_string());
        }
    }
    let rename = |name: &str| -> (String, Option<&'static str>) {
        match kinds.get(name).map(String::as_str) {
            Some("counter") => (format!("{name}_total"), None),
            Some("info") => (format!("{name}_info"), Some("gauge")),
            Some("unknown") => (name.to_string(), Some("untyped")),
            _ => (name.to_string(), None),
        }
    };
    let mut out = String::with_capacity(om.len());
    for line in om.lines() {
        if line == "# EOF" {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            out.push_str(&format!("# HELP {} {help}\n", rename(name).0));
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, ""));
            let (new_name, new_kind) = rename(name);
            out.push_str(&format!("# TYPE {new_name} {}\n", new_kind.unwrap_or(kind)));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// `tests/fixtures/…`.
pub fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(rel)
}

/// Appends `text` to `path` (creating it) with one write.
pub fn append(path: &Path, text: &[u8]) {
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).expect("open the log for append");
    f.write_all(text).expect("append to the log");
}

/// Runs the binary to completion: (exit status, stdout, stderr).
pub fn run(args: &[&str]) -> (ExitStatus, String, String) {
    let out = Command::new(BIN).args(args).output().unwrap_or_else(|e| panic!("cannot run {BIN}: {e}"));
    (out.status, String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// The DNS lab of `lab/dns/` (NSD, Knot, BIND, Unbound): started once per test binary
/// (`lab.sh start` is idempotent across binaries); returns (resolver, port).
pub fn dns_lab() -> (String, u16) {
    static LAB: std::sync::OnceLock<(String, u16)> = std::sync::OnceLock::new();
    LAB.get_or_init(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("lab/dns/lab.sh");
        let out = Command::new(&script).arg("start").output().expect("run lab/dns/lab.sh");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "the DNS lab did not start:\n{text}\n{}", String::from_utf8_lossy(&out.stderr));
        let get = |k: &str| text.lines().find_map(|l| l.strip_prefix(k)).map(str::to_string).unwrap_or_default();
        (get("LAB_RESOLVER="), get("LAB_PORT=").parse().expect("LAB_PORT"))
    })
    .clone()
}

/// One name of `lab/dns/expected.toml`: the checks that must fail and the DKIM
/// selectors the test configuration asks for.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct LabExpectation {
    pub fail: Vec<String>,
    #[serde(default)]
    pub dkim_selectors: Vec<String>,
}

/// `lab/dns/expected.toml`, by monitored name.
pub fn lab_expectations() -> BTreeMap<String, LabExpectation> {
    #[derive(serde::Deserialize)]
    struct File {
        domain: BTreeMap<String, LabExpectation>,
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("lab/dns/expected.toml");
    let text = std::fs::read_to_string(path).expect("lab/dns/expected.toml");
    toml::from_str::<File>(&text).expect("expected.toml parses").domain
}
