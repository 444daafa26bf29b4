//! From misroute to page, with the real programs (issue 5, "Tests — with the real
//! programs").
//!
//! The exporter tails a Sendmail/Postfix log that receives a misroute spike on
//! `rigor-mortis` for `incident.test`, and checks `incident.test` and `fixed.test`
//! against the DNS lab (lab/dns/: NSD, Knot, BIND, Unbound). Debian's Prometheus
//! scrapes it every second and evaluates a test copy of alerts/mailroute.rules.yml
//! whose `for:` windows are shortened (minutes become seconds; nothing else
//! changes). Debian's Alertmanager runs a test copy of
//! alerts/alertmanager.example.yml whose receivers are webhooks into this test.
//!
//! Asserted:
//! - through Alertmanager's API and `amtool`: `MailMisrouteSpike` and
//!   `MailMisrouteApexFallback` fire for `domain="incident.test"`,
//!   `host="rigor-mortis"`, severity critical; both reach the `pager` receiver; the
//!   example's inhibit rules then hold back the spike and the `apex_mx_mismatch`
//!   finding; a warning (`MailDNSCheckFailed` for `soa_mname_not_in_ns`) goes to
//!   `ticket`, never to `pager`;
//! - nothing for `fixed.test` was ever pending or firing (Prometheus' `ALERTS`), held
//!   by Alertmanager, or notified;
//! - every PromQL expression of the dashboard and of the rules (as listed by
//!   tests/dashboards_lint.py) parses in Prometheus, and the ones this scenario must
//!   feed return data;
//! - the status page and `/api/v1/status` explain the incident in words.
//!
//! Every child process is killed on success and on failure (drop guards); on failure
//! the logs of Prometheus, Alertmanager and the exporter are printed.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Exporter, append};
use serde_json::Value;

/// How long the alerts may take to arrive once the spike is in the log.
const ALERT_DEADLINE: Duration = Duration::from_secs(90);

const INCIDENT: &str = "incident.test";
const FIXED: &str = "fixed.test";
const APEX_HOST: &str = "rigor-mortis";
/// Misroutes written in each of the two halves of the spike.
const HALF: usize = 10;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A port that was free a moment ago (bind 127.0.0.1:0, read it, release it).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0").local_addr().expect("local addr").port()
}

// ------------------------------------------------------------------ child processes

/// A daemon started by the test, output to a log file. Killed when dropped; if the
/// test is failing, the end of its log is printed first.
struct Daemon {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Daemon {
    fn start(name: &'static str, program: &str, args: &[String], log: PathBuf) -> Daemon {
        let file = std::fs::File::create(&log).expect("create daemon log");
        let mut cmd = Command::new(program);
        // Should the test process itself be killed (a CI timeout, ^C), the kernel
        // kills the daemon too: no drop guard runs then.
        // SAFETY: prctl(2) is async-signal-safe and touches only the new process.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd
            .args(args)
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("dup log"))
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {program}: {e}"));
        Daemon { name, child, log }
    }

    fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Panics (with the log) if the process has exited.
    fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("{} exited with {status}; its log:\n{}", self.name, self.log_tail(60));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("---- last lines of the {} log ({}):\n{}", self.name, self.log.display(), self.log_tail(40));
        }
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

// ------------------------------------------------------------------ HTTP

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into()
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `GET url` → (status, body); (0, error) when the connection fails.
fn get(agent: &ureq::Agent, url: &str) -> (u16, String) {
    match agent.get(url).call() {
        Ok(mut resp) => {
            let status = resp.status().as_u16();
            (status, resp.body_mut().read_to_string().unwrap_or_default())
        }
        Err(e) => (0, e.to_string()),
    }
}

fn get_json(agent: &ureq::Agent, url: &str) -> Value {
    let (status, body) = get(agent, url);
    assert_eq!(status, 200, "GET {url}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {url}: not JSON ({e}): {body}"))
}

/// Polls `f` every 250 ms until it returns `Some`, or panics with `what` and the
/// output of `context` after `timeout`.
fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>, context: impl Fn() -> String) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() > deadline {
            panic!("{what}: not within {timeout:?}\n{}", context());
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// A Prometheus HTTP API client.
struct Prom {
    base: String,
    agent: ureq::Agent,
}

impl Prom {
    /// An instant query: the result vector, or Prometheus' error.
    fn query(&self, expr: &str) -> Result<Vec<Value>, String> {
        let url = format!("{}/api/v1/query?query={}", self.base, url_encode(expr));
        let (status, body) = get(&self.agent, &url);
        let doc: Value = serde_json::from_str(&body).map_err(|e| format!("HTTP {status}, not JSON ({e}): {body}"))?;
        if doc["status"] != "success" {
            return Err(format!("HTTP {status}: {} {}", doc["errorType"], doc["error"]));
        }
        match &doc["data"]["result"] {
            Value::Array(a) => Ok(a.clone()),
            // scalar or string result: one value
            other => Ok(vec![other.clone()]),
        }
    }

    fn must(&self, expr: &str) -> Vec<Value> {
        self.query(expr).unwrap_or_else(|e| panic!("query {expr}: {e}"))
    }

    /// The value of a one-series instant query, if there is exactly one series.
    fn value(&self, expr: &str) -> Option<f64> {
        match self.query(expr).ok()?.as_slice() {
            [one] => one["value"][1].as_str()?.parse().ok(),
            _ => None,
        }
    }
}

// ------------------------------------------------------------------ webhook receiver

/// One notification Alertmanager posted: the URL path (= receiver) and the body.
#[derive(Debug, Clone)]
struct Notification {
    path: String,
    body: Value,
}

impl Notification {
    fn alerts(&self) -> Vec<&Value> {
        self.body["alerts"].as_array().map(|a| a.iter().collect()).unwrap_or_default()
    }
}

/// A tiny HTTP server that stores every POST body (JSON) it gets.
struct Webhook {
    port: u16,
    got: Arc<Mutex<Vec<Notification>>>,
}

impl Webhook {
    fn start() -> Webhook {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the webhook listener");
        let port = listener.local_addr().expect("addr").port();
        let got: Arc<Mutex<Vec<Notification>>> = Arc::default();
        let sink = got.clone();
        // The thread blocks in accept() until the test process exits.
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let sink = sink.clone();
                std::thread::spawn(move || {
                    if let Some(n) = read_post(stream) {
                        sink.lock().unwrap().push(n);
                    }
                });
            }
        });
        Webhook { port, got }
    }

    fn url(&self, receiver: &str) -> String {
        format!("http://127.0.0.1:{}/{receiver}", self.port)
    }

    fn notifications(&self) -> Vec<Notification> {
        self.got.lock().unwrap().clone()
    }

    /// Every alert (status firing) posted to `receiver`'s path.
    fn firing(&self, receiver: &str) -> Vec<Value> {
        self.notifications()
            .iter()
            .filter(|n| n.path == format!("/{receiver}"))
            .flat_map(|n| n.alerts().into_iter().filter(|a| a["status"] == "firing").cloned().collect::<Vec<_>>())
            .collect()
    }
}

/// Reads one HTTP request, answers 200 and closes. `None` if it is not a POST with
/// a JSON body.
fn read_post(stream: TcpStream) -> Option<Notification> {
    stream.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line).ok()?;
    let mut parts = request_line.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().ok()?;
        }
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body).ok()?;
    let mut out = stream;
    let _ = out.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    let _ = out.flush();
    if method != "POST" {
        return None;
    }
    Some(Notification { path, body: serde_json::from_slice(&body).ok()? })
}

// ------------------------------------------------------------------ test copies of the shipped files

/// The rules with every `for:` shortened: minutes become seconds (`for: 10m` →
/// `for: 10s`), hours become minutes' worth of seconds (`for: 1h` → `for: 60s`). The
/// expressions, the ranges inside them (15m, 30m, ...), labels and annotations stay
/// as shipped: a fresh Prometheus has no data 15 or 30 minutes back, so the
/// `unless ... offset` branches count the new misroute series in full, exactly as in
/// production right after a series is born. Returns the text and one line per
/// change. With the rules as of this writing the changes are:
///
/// ```text
/// MailMisrouteSpike           for: 5m  -> 5s     MailrouteLogStale        for: 5m  -> 5s
/// MailMisrouteApexFallback    for: 10m -> 10s    MailrouteLogReadErrors   for: 5m  -> 5s
/// MailRejectRateHigh          for: 15m -> 15s    MailrouteLogUnparsed     for: 15m -> 15s
/// MailDNSNoWorkingNameserver  for: 10m -> 10s    MailrouteDNSStale        for: 5m  -> 5s
/// MailDNSRoundFailed          for: 10m -> 10s
/// MailDNSNoUsableMX           for: 10m -> 10s    MailrouteExporterDown    for: 5m  -> 5s
/// MailDNSSOASerialDrift       for: 1h  -> 60s    MailrouteExporterAbsent  for: 15m -> 15s
/// MailDNSCheckFailed          for: 15m -> 15s
/// ```
///
/// The spike (5 s) fires before the apex fallback (10 s), so it reaches the pager
/// before the example's inhibit rule holds it back, as it would in production.
fn shorten_for_windows(rules: &str) -> (String, Vec<String>) {
    let mut out = String::with_capacity(rules.len());
    let mut changes = Vec::new();
    let mut alert = String::new();
    for line in rules.lines() {
        let trimmed = line.trim_start();
        if let Some(name) = trimmed.strip_prefix("- alert:") {
            alert = name.trim().to_string();
        }
        if let Some(window) = trimmed.strip_prefix("for:") {
            let window = window.trim();
            let (num, unit) = window.split_at(window.len() - 1);
            let n: u64 = num.parse().unwrap_or_else(|_| panic!("{alert}: cannot read `for: {window}`"));
            let secs = match unit {
                "s" => n,
                "m" => n,
                "h" => n * 60,
                _ => panic!("{alert}: unexpected unit in `for: {window}`"),
            };
            let indent = &line[..line.len() - trimmed.len()];
            out.push_str(&format!("{indent}for: {secs}s\n"));
            changes.push(format!("{alert}: for: {window} -> for: {secs}s"));
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    (out, changes)
}

/// The example Alertmanager configuration with the receivers replaced by webhooks
/// into this test (same names) and the group waits/intervals cut to 1 s. Routes,
/// matchers, grouping and inhibit rules stay as shipped.
fn alertmanager_test_copy(example: &str, hook: &Webhook) -> (String, Vec<String>) {
    let mut out = String::new();
    let mut changes = Vec::new();
    let mut in_receivers = false;
    let mut receivers: Vec<String> = Vec::new();
    for line in example.lines() {
        let trimmed = line.trim_start();
        let top_level = !line.starts_with(' ') && !trimmed.is_empty() && !trimmed.starts_with('#');
        if in_receivers && top_level {
            assert!(!receivers.is_empty(), "no receiver found in alerts/alertmanager.example.yml");
            for name in &receivers {
                out.push_str(&format!(
                    "  - name: {name}\n    webhook_configs:\n      - url: '{}'\n        send_resolved: true\n",
                    hook.url(name)
                ));
            }
            out.push('\n');
            changes.push(format!("receivers {receivers:?}: replaced by webhook_configs to {}", hook.url("<name>")));
            in_receivers = false;
        }
        if in_receivers {
            if let Some(name) = trimmed.strip_prefix("- name:") {
                receivers.push(name.trim().trim_matches(['\'', '"']).to_string());
            }
            continue;
        }
        if line == "receivers:" {
            in_receivers = true;
            out.push_str("receivers:\n");
            continue;
        }
        if let Some(key) = ["group_wait:", "group_interval:"].iter().find(|k| trimmed.starts_with(**k)) {
            let indent = &line[..line.len() - trimmed.len()];
            changes.push(format!("{} -> {key} 1s", trimmed.trim()));
            out.push_str(&format!("{indent}{key} 1s\n"));
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    assert!(!in_receivers, "alerts/alertmanager.example.yml: expected a top-level key after `receivers:`");
    for name in ["pager", "ticket"] {
        assert!(receivers.iter().any(|r| r == name), "the example has no receiver {name}: {receivers:?}");
    }
    (out, changes)
}

// ------------------------------------------------------------------ the mail log

const BASE60: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwx";
const CLIENTS: [&str; 4] = [
    "mail-mw2nam10on2117.outbound.protection.outlook.test [127.0.2.17]",
    "mail-a.sender.test [127.0.2.10]",
    "mail-mw2nam10on2117.outbound.protection.outlook.test [127.0.2.17]",
    "mail-b.sender.test [127.0.2.11]",
];
const SENDERS: [&str; 4] =
    ["billing@sender.test", "newsletter@sender.test", "j.doe@sender.test", "noreply@sender.test"];
const USERS: [&str; 7] = ["alice", "bob", "carol", "dave", "erin", "sales", "info"];

/// Syslog time and Sendmail queue id for event `i` (01:20:00 + i seconds on
/// 2026-11-27; Sendmail encodes the date and time in base 60, then a sequence
/// number, then the pid).
fn sendmail_ids(i: usize, pid: usize) -> (String, String) {
    let (m, s) = (20 + i / 60, i % 60);
    let ts = format!("Nov 27 01:{m:02}:{s:02}");
    let qid = format!(
        "6AR1{}{}{}{}{pid:06}",
        BASE60[m] as char,
        BASE60[s] as char,
        BASE60[(i * 7 + 3) % 60] as char,
        BASE60[(i * 13 + 11) % 60] as char
    );
    (ts, qid)
}

/// The two lines Sendmail on rigor-mortis logs for a relay-denied recipient of
/// incident.test (the reject and the session's `from=` with nrcpts=0).
fn misroute(i: usize) -> String {
    let pid = 27400 + i * 7;
    let (ts, qid) = sendmail_ids(i, pid);
    let rcpt = format!("{}@{INCIDENT}", USERS[i % USERS.len()]);
    let client = CLIENTS[i % CLIENTS.len()];
    let sender = SENDERS[i % SENDERS.len()];
    format!(
        "{ts} {APEX_HOST} sm-mta[{pid}]: {qid}: ruleset=check_rcpt, arg1=<{rcpt}>, relay={client}, reject=550 5.7.1 <{rcpt}>... Relaying denied. Proper authentication required.\n\
         {ts} {APEX_HOST} sm-mta[{pid}]: {qid}: from=<{sender}>, size=0, class=0, nrcpts=0, proto=ESMTP, daemon=MTA-v4, relay={client}\n"
    )
}

/// Mail accepted by Sendmail on rigor-mortis for its own local users.
fn sendmail_local_delivery(i: usize) -> String {
    let pid = 26100 + i * 5;
    let (ts, qid) = sendmail_ids(i, pid);
    let client = CLIENTS[i % CLIENTS.len()];
    let sender = SENDERS[i % SENDERS.len()];
    let rcpt = format!("{}@rigor.test", USERS[(i + 3) % USERS.len()]);
    format!(
        "{ts} {APEX_HOST} sm-mta[{pid}]: {qid}: from=<{sender}>, size=2{i:03}, class=0, nrcpts=1, msgid=<20261127012{i:03}.0{pid}@sender.test>, proto=ESMTP, daemon=MTA-v4, relay={client}\n\
         {ts} {APEX_HOST} sm-mta[{}]: {qid}: to=<{rcpt}>, delay=00:00:00, xdelay=00:00:00, mailer=local, pri=302{i:02}, dsn=2.0.0, stat=Sent\n",
        pid + 3
    )
}

/// A Sendmail reject on rigor-mortis that is not a misroute: an unknown local user.
fn sendmail_unknown_user(i: usize) -> String {
    let pid = 26600 + i * 3;
    let (ts, qid) = sendmail_ids(i, pid);
    let client = CLIENTS[i % CLIENTS.len()];
    format!(
        "{ts} {APEX_HOST} sm-mta[{pid}]: {qid}: <jsmith@rigor.test>... User unknown\n\
         {ts} {APEX_HOST} sm-mta[{pid}]: {qid}: from=<{}>, size=0, class=0, nrcpts=0, proto=ESMTP, daemon=MTA-v4, relay={client}\n",
        SENDERS[i % SENDERS.len()]
    )
}

/// Mail for fixed.test accepted and delivered by Postfix on its MX, talon.
fn postfix_fixed_delivery(i: usize) -> String {
    let (ts, _) = sendmail_ids(i, 0);
    let qid = format!("{:011X}", 0x5A1F0512400u64 + i as u64 * 0x25);
    let smtpd = 27090 + i % 5;
    let client =
        ["mail-b.sender.test[127.0.2.11]", "mail-mw2nam10on2117.outbound.protection.outlook.test[127.0.2.17]"][i % 2];
    let rcpt = format!("{}@{FIXED}", USERS[i % USERS.len()]);
    format!(
        "{ts} talon postfix/smtpd[{smtpd}]: {qid}: client={client}\n\
         {ts} talon postfix/cleanup[27095]: {qid}: message-id=<2026112701{i:04}.027083@vm>\n\
         {ts} talon postfix/qmgr[26875]: {qid}: from=<{}>, size=4{i:02}, nrcpt=1 (queue active)\n\
         {ts} talon postfix/virtual[27097]: {qid}: to=<{rcpt}>, relay=virtual, delay=0.05, delays=0.05/0.01/0/0, dsn=2.0.0, status=sent (delivered to maildir)\n\
         {ts} talon postfix/qmgr[26875]: {qid}: removed\n",
        SENDERS[i % SENDERS.len()]
    )
}

/// Before the spike: ordinary traffic on both hosts, with a few rejects that are not
/// misroutes (an unknown user, a DNSBL hit, relaying attempts for foreign domains).
fn baseline_log() -> String {
    let mut s = String::new();
    s.push_str(
        "Nov 27 01:19:58 talon postfix/master[26873]: daemon started -- version 3.7.11, configuration /etc/postfix\n",
    );
    for i in 0..3 {
        s.push_str(&postfix_fixed_delivery(i));
    }
    s.push_str(&sendmail_local_delivery(1));
    s.push_str(&sendmail_local_delivery(2));
    s.push_str(&sendmail_unknown_user(3));
    s.push_str(
        "Nov 27 01:20:04 rigor-mortis sm-mta[26730]: 6AR1K4ht026730: ruleset=check_rcpt, arg1=<someone@elsewhere.test>, relay=mail-b.sender.test [127.0.2.11], reject=550 5.7.1 <someone@elsewhere.test>... Relaying denied. Proper authentication required.\n\
         Nov 27 01:20:04 rigor-mortis sm-mta[26730]: 6AR1K4ht026730: from=<billing@sender.test>, size=0, class=0, nrcpts=0, proto=ESMTP, daemon=MTA-v4, relay=mail-b.sender.test [127.0.2.11]\n\
         Nov 27 01:20:05 talon postfix/smtpd[27090]: NOQUEUE: reject: RCPT from spammer.sender.test[127.0.2.66]: 554 5.7.1 Service unavailable; Client host [127.0.2.66] blocked using dnsbl.test; 127.0.2.66 is listed in dnsbl.test (lab spam source); from=<newsletter@sender.test> to=<someone@victim.test> proto=ESMTP helo=<spammer.sender.test>\n\
         Nov 27 01:20:05 talon postfix/smtpd[27089]: NOQUEUE: reject: RCPT from mail-b.sender.test[127.0.2.11]: 554 5.7.1 <someone@victim.test>: Relay access denied; from=<noreply@sender.test> to=<someone@victim.test> proto=ESMTP helo=<mail-b.sender.test>\n\
         Nov 27 01:20:06 talon CRON[27001]: (root) CMD (test -x /usr/sbin/anacron || run-parts --report /etc/cron.daily)\n",
    );
    s
}

// ------------------------------------------------------------------ the scenario

/// Everything running. Fields drop in declaration order, so the exporter,
/// Prometheus and Alertmanager are killed before the temporary directory goes.
struct Scene {
    exporter: Exporter,
    prometheus: Daemon,
    alertmanager: Daemon,
    hook: Webhook,
    prom: Prom,
    am_base: String,
    agent: ureq::Agent,
    started: Instant,
    timeline: Vec<(String, Duration)>,
    // last: removed once the children are gone
    _dir: tempfile::TempDir,
}

impl Scene {
    fn mark(&mut self, what: &str) {
        let t = self.started.elapsed();
        println!("[{:6.1}s] {what}", t.as_secs_f64());
        self.timeline.push((what.to_string(), t));
    }

    /// Alertmanager's view of every alert: active, suppressed and unprocessed.
    fn am_alerts(&self) -> Vec<Value> {
        let v = get_json(
            &self.agent,
            &format!("{}/api/v2/alerts?active=true&silenced=true&inhibited=true&unprocessed=true", self.am_base),
        );
        v.as_array().cloned().unwrap_or_default()
    }

    /// What to print when something is not there in time.
    fn context(&self) -> String {
        let am = get(&self.agent, &format!("{}/api/v2/alerts", self.am_base)).1;
        let pa = get(&self.agent, &format!("{}/api/v1/alerts", self.prom.base)).1;
        let hooks: Vec<String> = self.hook.notifications().iter().map(|n| format!("{} {}", n.path, n.body)).collect();
        let stderr = self.exporter.stderr();
        let tail: Vec<&str> = stderr.lines().rev().take(20).collect::<Vec<_>>().into_iter().rev().collect();
        format!(
            "Alertmanager /api/v2/alerts: {am}\nPrometheus /api/v1/alerts: {pa}\nwebhook notifications:\n{}\nexporter stderr (end):\n{}",
            hooks.join("\n"),
            tail.join("\n")
        )
    }
}

/// Labels of an alert (Alertmanager API or webhook shape) as a map.
fn labels(alert: &Value) -> BTreeMap<String, String> {
    alert["labels"]
        .as_object()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string())).collect())
        .unwrap_or_default()
}

fn is(alert: &Value, name: &str, want: &[(&str, &str)]) -> bool {
    let l = labels(alert);
    l.get("alertname").map(String::as_str) == Some(name)
        && want.iter().all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
}

fn find<'a>(alerts: &'a [Value], name: &str, want: &[(&str, &str)]) -> Option<&'a Value> {
    alerts.iter().find(|a| is(a, name, want))
}

const INCIDENT_LABELS: [(&str, &str); 3] = [("domain", INCIDENT), ("host", APEX_HOST), ("severity", "critical")];

#[test]
fn misroute_spike_pages_through_prometheus_and_alertmanager() {
    let started = Instant::now();
    let (resolver, dns_port) = common::dns_lab();
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();

    // ---- the exporter: the lab's incident and fixed zones, one log file
    let log = d.join("mail.log");
    std::fs::write(&log, baseline_log()).expect("write the log");
    let cfg = d.join("mailroute.toml");
    std::fs::write(
        &cfg,
        format!(
            "[maillog]\npaths = [{log:?}]\nstart = \"beginning\"\n\n\
             [dns]\nresolvers = [\"{resolver}\"]\nport = {dns_port}\ntimeout = \"1s\"\ninterval = \"5s\"\n\n\
             [[dns.domain]]\nname = \"{INCIDENT}\"\n\n[[dns.domain]]\nname = \"{FIXED}\"\ndkim_selectors = [\"default\"]\n",
            log = log.display().to_string()
        ),
    )
    .expect("write the exporter config");
    let exporter = Exporter::start(&["serve", &format!("--config.file={}", cfg.display())]);
    wait_for(
        "exporter ready (log open, first DNS round done)",
        Duration::from_secs(20),
        || (exporter.get("/-/ready").status == 200).then_some(()),
        || exporter.stderr(),
    );

    // ---- Alertmanager with webhook receivers
    let hook = Webhook::start();
    let example = std::fs::read_to_string(repo().join("alerts/alertmanager.example.yml")).expect("read example");
    let (am_config, am_changes) = alertmanager_test_copy(&example, &hook);
    let am_file = d.join("alertmanager.yml");
    std::fs::write(&am_file, &am_config).expect("write alertmanager.yml");
    let am_port = free_port();
    std::fs::create_dir(d.join("am-data")).expect("mkdir");
    let alertmanager = Daemon::start(
        "alertmanager",
        "prometheus-alertmanager",
        &[
            format!("--config.file={}", am_file.display()),
            format!("--storage.path={}", d.join("am-data").display()),
            format!("--web.listen-address=127.0.0.1:{am_port}"),
            "--cluster.listen-address=".to_string(),
            "--log.level=debug".to_string(),
        ],
        d.join("alertmanager.log"),
    );

    // ---- Prometheus with a test copy of the rules
    let rules = std::fs::read_to_string(repo().join("alerts/mailroute.rules.yml")).expect("read rules");
    let alert_count = rules.lines().filter(|l| l.trim_start().starts_with("- alert:")).count();
    let (test_rules, rule_changes) = shorten_for_windows(&rules);
    assert_eq!(
        rule_changes.len(),
        alert_count,
        "every alert has a for: window, and only those lines change:\n{}",
        rule_changes.join("\n")
    );
    let rules_file = d.join("mailroute.rules.yml");
    std::fs::write(&rules_file, &test_rules).expect("write rules");
    let prom_port = free_port();
    let prom_config = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
         rule_files:\n  - {rules:?}\n\
         alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['127.0.0.1:{am_port}']\n\
         scrape_configs:\n  - job_name: mailroute\n    static_configs:\n      - targets: ['{exp}']\n",
        rules = rules_file.display().to_string(),
        exp = exporter.addr()
    );
    let prom_file = d.join("prometheus.yml");
    std::fs::write(&prom_file, &prom_config).expect("write prometheus.yml");
    let prometheus = Daemon::start(
        "prometheus",
        "prometheus",
        &[
            format!("--config.file={}", prom_file.display()),
            format!("--storage.tsdb.path={}", d.join("prom-data").display()),
            format!("--web.listen-address=127.0.0.1:{prom_port}"),
            // annotations in Alertmanager follow the value without a minute's delay
            "--rules.alert.resend-delay=1s".to_string(),
        ],
        d.join("prometheus.log"),
    );

    let agent = agent();
    let mut s = Scene {
        exporter,
        prometheus,
        alertmanager,
        hook,
        prom: Prom { base: format!("http://127.0.0.1:{prom_port}"), agent: agent.clone() },
        am_base: format!("http://127.0.0.1:{am_port}"),
        agent,
        started,
        timeline: Vec::new(),
        _dir: dir,
    };
    println!("rule file changes for the test (expressions unchanged):\n  {}", rule_changes.join("\n  "));
    println!("alertmanager.example.yml changes for the test:\n  {}", am_changes.join("\n  "));
    s.mark("exporter ready, Alertmanager and Prometheus started");

    // ---- everything up
    for (name, url) in
        [("Alertmanager", format!("{}/-/ready", s.am_base)), ("Prometheus", format!("{}/-/ready", s.prom.base))]
    {
        wait_for(
            &format!("{name} ready"),
            Duration::from_secs(30),
            || {
                s.alertmanager.assert_running();
                s.prometheus.assert_running();
                (get(&s.agent, &url).0 == 200).then_some(())
            },
            String::new,
        );
    }
    s.mark("Alertmanager and Prometheus ready");
    let loaded = get_json(&s.agent, &format!("{}/api/v1/rules", s.prom.base));
    let loaded_rules: usize = loaded["data"]["groups"]
        .as_array()
        .map(|g| g.iter().map(|g| g["rules"].as_array().map_or(0, Vec::len)).sum())
        .unwrap_or(0);
    assert_eq!(
        loaded_rules, alert_count,
        "Prometheus loaded {loaded_rules} rules, the file has {alert_count}: {loaded}"
    );
    wait_for(
        "Prometheus scrapes the exporter and sees incident.test fail apex_mx_mismatch",
        Duration::from_secs(30),
        || {
            let up = s.prom.value(r#"up{job="mailroute"}"#) == Some(1.0);
            let apex = s.prom.value(r#"mailroute_dns_check_failed{domain="incident.test", check="apex_mx_mismatch"}"#);
            (up && apex == Some(1.0)).then_some(())
        },
        || s.context(),
    );
    s.mark("Prometheus scrapes the exporter; DNS round done");

    // ---- the spike, in two halves so that the counters grow across scrapes
    let mut first = String::new();
    for i in 0..HALF {
        first.push_str(&misroute(10 + i));
    }
    first.push_str(&postfix_fixed_delivery(10));
    append(&log, first.as_bytes());
    let misroutes_in_prom = r#"sum(mailroute_misroutes_total{domain="incident.test", host="rigor-mortis"})"#;
    wait_for(
        "first half of the spike in Prometheus",
        Duration::from_secs(20),
        || (s.prom.value(misroutes_in_prom) == Some(HALF as f64)).then_some(()),
        || s.context(),
    );
    s.mark(&format!("{HALF} misroutes written and scraped"));
    std::thread::sleep(Duration::from_secs(2));
    let mut second = String::new();
    for i in 0..HALF {
        second.push_str(&misroute(10 + HALF + i));
        if i % 4 == 0 {
            second.push_str(&postfix_fixed_delivery(20 + i));
        }
    }
    second.push_str(&sendmail_unknown_user(40));
    second.push_str(&sendmail_local_delivery(41));
    append(&log, second.as_bytes());
    let total = 2 * HALF;
    wait_for(
        "second half of the spike in Prometheus",
        Duration::from_secs(20),
        || (s.prom.value(misroutes_in_prom) == Some(total as f64)).then_some(()),
        || s.context(),
    );
    s.mark(&format!("{total} misroutes written and scraped"));

    // ---- the alerts, through Alertmanager and the receivers
    let deadline = Instant::now() + ALERT_DEADLINE;
    let mut seen: BTreeSet<&str> = BTreeSet::new();
    let want_description = format!("{APEX_HOST} rejected {total} messages for {INCIDENT} as relay-denied");
    loop {
        s.alertmanager.assert_running();
        s.prometheus.assert_running();
        let am = s.am_alerts();
        let pager = s.hook.firing("pager");
        let ticket = s.hook.firing("ticket");
        let apex = find(&am, "MailMisrouteApexFallback", &INCIDENT_LABELS);
        let conditions: [(&str, bool); 8] = [
            (
                "Alertmanager holds MailMisrouteSpike for incident.test on rigor-mortis",
                find(&am, "MailMisrouteSpike", &INCIDENT_LABELS).is_some(),
            ),
            (
                "Alertmanager holds MailMisrouteApexFallback for incident.test on rigor-mortis, active",
                apex.is_some_and(|a| a["status"]["state"] == "active"),
            ),
            (
                "the ApexFallback description counts every misroute",
                apex.is_some_and(|a| {
                    a["annotations"]["description"].as_str().unwrap_or("").contains(&want_description)
                }),
            ),
            ("pager received MailMisrouteSpike", find(&pager, "MailMisrouteSpike", &INCIDENT_LABELS).is_some()),
            (
                "pager received MailMisrouteApexFallback",
                find(&pager, "MailMisrouteApexFallback", &INCIDENT_LABELS).is_some(),
            ),
            (
                "ticket received MailDNSCheckFailed soa_mname_not_in_ns (warning)",
                find(
                    &ticket,
                    "MailDNSCheckFailed",
                    &[("domain", INCIDENT), ("check", "soa_mname_not_in_ns"), ("severity", "warning")],
                )
                .is_some(),
            ),
            (
                "the spike is inhibited by the apex fallback",
                find(&am, "MailMisrouteSpike", &INCIDENT_LABELS).is_some_and(|a| a["status"]["state"] == "suppressed"),
            ),
            (
                "MailDNSCheckFailed apex_mx_mismatch is inhibited by the apex fallback",
                find(&am, "MailDNSCheckFailed", &[("domain", INCIDENT), ("check", "apex_mx_mismatch")])
                    .is_some_and(|a| a["status"]["state"] == "suppressed"),
            ),
        ];
        for (what, ok) in conditions {
            if ok && seen.insert(what) {
                s.mark(what);
            }
        }
        if conditions.iter().all(|(_, ok)| *ok) {
            break;
        }
        if Instant::now() > deadline {
            let missing: Vec<&str> = conditions.iter().filter(|(_, ok)| !ok).map(|(w, _)| *w).collect();
            panic!(
                "within {ALERT_DEADLINE:?} of the spike, still missing:\n  {}\n{}",
                missing.join("\n  "),
                s.context()
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }

    // ---- what Alertmanager holds, in detail
    let am = s.am_alerts();
    let apex = find(&am, "MailMisrouteApexFallback", &INCIDENT_LABELS).expect("checked above");
    let spike = find(&am, "MailMisrouteSpike", &INCIDENT_LABELS).expect("checked above");
    for a in [apex, spike] {
        let l = labels(a);
        assert_eq!(l.get("job").map(String::as_str), Some("mailroute"), "{a}");
        assert_eq!(l.get("instance").cloned(), Some(s.exporter.addr().to_string()), "{a}");
        let receivers: Vec<&str> =
            a["receivers"].as_array().expect("receivers").iter().filter_map(|r| r["name"].as_str()).collect();
        assert_eq!(receivers, ["pager"], "critical alerts route to the pager: {a}");
    }
    assert_eq!(
        spike["status"]["inhibitedBy"].as_array().map(Vec::len),
        Some(1),
        "the spike is inhibited by exactly the apex fallback alert: {spike}"
    );
    assert_eq!(spike["status"]["inhibitedBy"][0], apex["fingerprint"], "{spike}\n{apex}");
    let description = apex["annotations"]["description"].as_str().unwrap_or("");
    for fact in [
        format!("{APEX_HOST} rejected {total} messages for {INCIDENT} as relay-denied in the last 30 minutes"),
        format!("the apex of {INCIDENT} resolves to 127.0.54.2, which no MX exchange of the domain has"),
        "Some senders deliver to the apex A/AAAA record instead of the MX".to_string(),
    ] {
        assert!(description.contains(&fact), "the ApexFallback description lacks {fact:?}:\n{description}");
    }
    assert_eq!(
        apex["annotations"]["summary"],
        format!("{INCIDENT} mail lands on {APEX_HOST}: the apex address is not an MX"),
        "{apex}"
    );
    let spike_summary = spike["annotations"]["summary"].as_str().unwrap_or("");
    assert_eq!(
        spike_summary,
        format!("{APEX_HOST} refused {total} messages for {INCIDENT} as relay-denied in 15 minutes")
    );

    // the pager got only critical alerts, the ticket queue none
    for n in s.hook.notifications() {
        let receiver = n.body["receiver"].as_str().unwrap_or("");
        assert_eq!(format!("/{receiver}"), n.path, "notification for {receiver} posted to {}", n.path);
        for a in n.alerts() {
            let critical = labels(a).get("severity").map(String::as_str) == Some("critical");
            assert_eq!(critical, receiver == "pager", "{receiver} got {a}");
        }
    }

    // ---- the same through amtool
    let amtool = |args: &[&str]| -> Vec<Value> {
        let out = Command::new("amtool")
            .args(["alert", "query", "-o", "json", &format!("--alertmanager.url={}", s.am_base)])
            .args(args)
            .output()
            .expect("run amtool");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "amtool {args:?}: {stdout}{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_str::<Value>(&stdout)
            .unwrap_or_else(|e| panic!("amtool {args:?}: not JSON ({e}): {stdout}"))
            .as_array()
            .cloned()
            .unwrap_or_default()
    };
    let paged = amtool(&[
        "--receiver=pager",
        "alertname=MailMisrouteApexFallback",
        "domain=incident.test",
        "host=rigor-mortis",
    ]);
    assert_eq!(paged.len(), 1, "amtool: the apex fallback alert, active, for the pager: {paged:?}");
    assert_eq!(labels(&paged[0]).get("severity").map(String::as_str), Some("critical"));
    let inhibited =
        amtool(&["--inhibited", "alertname=MailMisrouteSpike", "domain=incident.test", "host=rigor-mortis"]);
    assert_eq!(inhibited.len(), 1, "amtool --inhibited: the spike alert: {inhibited:?}");
    let fixed_any = amtool(&["--active", "--inhibited", "--silenced", "--unprocessed", "domain=fixed.test"]);
    assert!(fixed_any.is_empty(), "amtool: alerts for fixed.test: {fixed_any:?}");
    s.mark("amtool agrees");

    // ---- nothing for fixed.test, ever
    assert!(
        am.iter().all(|a| labels(a).get("domain").map(String::as_str) != Some(FIXED)),
        "Alertmanager holds an alert for fixed.test: {am:?}"
    );
    for n in s.hook.notifications() {
        assert!(!n.body.to_string().contains(FIXED), "a notification mentions fixed.test: {}", n.body);
    }
    let window = format!("{}s", s.started.elapsed().as_secs() + 10);
    let fixed_alerts = s.prom.must(&format!(r#"max_over_time(ALERTS{{domain="{FIXED}"}}[{window}])"#));
    assert!(fixed_alerts.is_empty(), "an alert was pending or firing for fixed.test: {fixed_alerts:?}");
    let ever = s.prom.must(&format!("count by (alertname, alertstate, domain) (max_over_time(ALERTS[{window}]))"));
    let ever: Vec<String> = ever.iter().map(|r| format!("{} {}", r["metric"], r["value"][1])).collect();
    println!("alerts pending or firing at some point during the test:\n  {}", ever.join("\n  "));

    // ---- every expression of the dashboard and the rules against this Prometheus
    check_every_expression(&s);
    s.mark("every dashboard and rule expression ran");

    // ---- the status page explains the incident
    check_status_page(&s, total);
    s.mark("status page explains the incident");

    // the rules stayed healthy throughout
    let loaded = get_json(&s.agent, &format!("{}/api/v1/rules", s.prom.base));
    for g in loaded["data"]["groups"].as_array().expect("groups") {
        for r in g["rules"].as_array().expect("rules") {
            assert_eq!(r["health"], "ok", "rule {} is unhealthy: {}", r["name"], r["lastError"]);
        }
    }
    println!("timeline:");
    for (what, t) in &s.timeline {
        println!("  {:6.1}s  {what}", t.as_secs_f64());
    }
}

/// What the expressions listed by tests/dashboards_lint.py must return here. Keys
/// are `variable NAME`, `panel 'TITLE' REFID` and `alert NAME`.
const MUST_HAVE_DATA: &[&str] = &[
    "variable job",
    "variable instance",
    "variable domain",
    "variable host",
    "panel 'Misroutes per minute by domain' A",
    "panel 'Misroutes per minute by host' A",
    "panel 'Misroutes, last 24h' A",
    "panel 'Rejects per minute by reason' A",
    "panel 'Rejects per minute by host' A",
    "panel 'Rejects per minute by MTA' A",
    "panel 'Rejects per minute by stage and class' A",
    "panel 'Accepted messages per minute by host' A",
    "panel 'Reject share by host' A",
    "panel 'Failing DNS checks' A",
    "panel 'Authoritative name servers up' A",
    "panel 'SOA serial by server' A",
    "panel 'SOA serial behind, by server' A",
    "panel 'Name server response time' A",
    "panel 'MX records' A",
    "panel 'Apex addresses' A",
    "panel 'Log lines per second by outcome' A",
    "panel 'Unparsed log lines per second' A",
    "panel 'Log read errors and truncated lines' A",
    "panel 'Log read errors and truncated lines' B",
    "panel 'Time since last log line' A",
    "panel 'Time since last DNS round' A",
    "panel 'DNS round duration by domain' A",
    "panel 'DNS queries per second by result' A",
    "panel 'Exporters' A",
    "panel 'Exporters' B",
    "alert MailMisrouteSpike",
    "alert MailMisrouteApexFallback",
    "alert MailDNSCheckFailed",
];

/// Alerts whose condition this scenario does not have: a result would be a false
/// alert.
const MUST_BE_EMPTY: &[&str] = &[
    "alert MailDNSNoWorkingNameserver",
    "alert MailDNSRoundFailed",
    "alert MailDNSNoUsableMX",
    "alert MailDNSSOASerialDrift",
    "alert MailrouteLogStale",
    "alert MailrouteLogReadErrors",
    "alert MailrouteLogUnparsed",
    "alert MailrouteDNSStale",
    "alert MailrouteExporterDown",
    "alert MailrouteExporterAbsent",
];

/// `variable job`, `panel 'TITLE' A`, `alert NAME` from a source of the listing.
fn expr_key(source: &str) -> String {
    let rest = source.split_once(": ").map_or(source, |(_, r)| r);
    if let Some(p) = rest.strip_prefix("panel ") {
        // panel ID 'TITLE' target REF
        if let (Some(a), Some(b)) = (p.find('\''), p.rfind('\'')) {
            let reference = p[b + 1..].trim().strip_prefix("target ").unwrap_or("").trim();
            return format!("panel '{}' {reference}", &p[a + 1..b]);
        }
    }
    rest.to_string()
}

/// The Python of the test virtual environment (scripts/install-test-deps.sh), when
/// there is one; the python3 on PATH otherwise.
fn python() -> PathBuf {
    let venv = std::env::var_os("MAILROUTE_VENV").map_or_else(|| repo().join(".venv"), PathBuf::from);
    let p = venv.join("bin/python3");
    if p.exists() { p } else { PathBuf::from("python3") }
}

fn check_every_expression(s: &Scene) {
    let out = Command::new(python())
        .current_dir(repo())
        .args([
            "tests/dashboards_lint.py",
            "--print-exprs",
            "--substitute",
            "dashboards/mailroute.json",
            "alerts/mailroute.rules.yml",
        ])
        .output()
        .expect("run python3 tests/dashboards_lint.py");
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "dashboards_lint.py failed:\n{listing}{}", String::from_utf8_lossy(&out.stderr));
    let mut results: BTreeMap<String, (String, Vec<Value>)> = BTreeMap::new();
    let mut rejected: BTreeSet<String> = BTreeSet::new();
    let mut problems = Vec::new();
    for line in listing.lines() {
        let item: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("listing line is not JSON ({e}): {line}"));
        let source = item["source"].as_str().expect("source");
        let expr = item["expr"].as_str().expect("expr");
        match s.prom.query(expr) {
            Ok(r) => {
                results.insert(expr_key(source), (expr.to_string(), r));
            }
            Err(e) => {
                rejected.insert(expr_key(source));
                problems.push(format!("{source}: Prometheus rejects it: {e}\n    {expr}"));
            }
        }
    }
    assert!(
        results.len() + problems.len() >= 40,
        "only {} expressions listed:\n{listing}",
        results.len() + problems.len()
    );
    for key in MUST_HAVE_DATA {
        match results.get(*key) {
            None if rejected.contains(*key) => {}
            None => problems.push(format!("{key}: not in the listing (renamed? update MUST_HAVE_DATA)")),
            Some((expr, r)) if r.is_empty() => {
                problems.push(format!("{key}: no data, but this scenario feeds it\n    {expr}"))
            }
            Some(_) => {}
        }
    }
    for key in MUST_BE_EMPTY {
        match results.get(*key) {
            None if rejected.contains(*key) => {}
            None => problems.push(format!("{key}: not in the listing (renamed? update MUST_BE_EMPTY)")),
            Some((expr, r)) if !r.is_empty() => {
                problems.push(format!("{key}: returns {r:?}, a false alert\n    {expr}"))
            }
            Some(_) => {}
        }
    }
    for (key, (_, r)) in &results {
        let expectation = if MUST_HAVE_DATA.contains(&key.as_str()) {
            "must have data"
        } else if MUST_BE_EMPTY.contains(&key.as_str()) {
            "must be empty"
        } else {
            "may be empty"
        };
        let value = match r.as_slice() {
            [one] => format!(" = {}", one["value"][1].as_str().unwrap_or("?")),
            _ => String::new(),
        };
        println!("  {:3} series  {key}  ({expectation}){value}", r.len());
    }
    assert!(problems.is_empty(), "{} problem(s) with the expressions:\n{}", problems.len(), problems.join("\n"));

    // a few results in detail: the right domains and hosts
    let label_set = |key: &str, label: &str| -> BTreeSet<String> {
        results[key].1.iter().filter_map(|r| r["metric"][label].as_str().map(str::to_string)).collect()
    };
    let set = |items: &[&str]| -> BTreeSet<String> { items.iter().map(|x| x.to_string()).collect() };
    assert_eq!(label_set("panel 'Misroutes per minute by domain' A", "domain"), set(&[INCIDENT]));
    assert_eq!(label_set("panel 'Misroutes per minute by host' A", "host"), set(&[APEX_HOST]));
    assert_eq!(label_set("panel 'Failing DNS checks' A", "domain"), set(&[INCIDENT]));
    assert_eq!(label_set("panel 'Failing DNS checks' A", "check"), set(&["apex_mx_mismatch", "soa_mname_not_in_ns"]));
    assert!(label_set("variable domain", "domain").is_superset(&set(&[INCIDENT, FIXED])));
    assert_eq!(label_set("panel 'Rejects per minute by MTA' A", "mta"), set(&["postfix", "sendmail"]));
    assert!(
        label_set("panel 'Rejects per minute by reason' A", "reason").is_superset(&set(&[
            "relay_denied",
            "unknown_user",
            "rbl"
        ])),
        "{:?}",
        results["panel 'Rejects per minute by reason' A"]
    );
    let apex: BTreeSet<(String, String)> = results["panel 'Apex addresses' A"]
        .1
        .iter()
        .map(|r| {
            (
                r["metric"]["domain"].as_str().unwrap_or("").to_string(),
                format!(
                    "{} served_by_mx={}",
                    r["metric"]["address"].as_str().unwrap_or(""),
                    r["metric"]["served_by_mx"].as_str().unwrap_or("")
                ),
            )
        })
        .collect();
    assert!(apex.contains(&(INCIDENT.to_string(), "127.0.54.2 served_by_mx=false".to_string())), "{apex:?}");
    assert!(apex.contains(&(FIXED.to_string(), "127.0.54.11 served_by_mx=true".to_string())), "{apex:?}");
    let up = &results["panel 'Authoritative name servers up' A"].1;
    assert_eq!(up.len(), 4, "ns1 and ns2 of both zones: {up:?}");
    assert!(up.iter().all(|r| r["value"][1] == "1"), "{up:?}");
    let incident = &results["alert MailMisrouteApexFallback"].1;
    assert_eq!(incident.len(), 1, "{incident:?}");
    assert_eq!(incident[0]["metric"]["domain"], INCIDENT);
    assert_eq!(incident[0]["metric"]["host"], APEX_HOST);
    let check_failed = label_set("alert MailDNSCheckFailed", "domain");
    assert_eq!(check_failed, set(&[INCIDENT]), "{:?}", results["alert MailDNSCheckFailed"]);
}

/// Decodes the entities the status template writes (askama escapes `<>&"'` as
/// numeric references; the named ones are decoded too).
fn unescape_html(s: &str) -> String {
    let mut out = s.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"");
    for (entity, c) in [("&#60;", "<"), ("&#62;", ">"), ("&#34;", "\""), ("&#39;", "'")] {
        out = out.replace(entity, c);
    }
    out.replace("&#38;", "&").replace("&amp;", "&")
}

fn check_status_page(s: &Scene, total: usize) {
    let status = s.exporter.get("/api/v1/status");
    assert_eq!(status.status, 200);
    let doc: Value = serde_json::from_str(&status.text()).expect("status JSON");
    assert_eq!(doc["mail"]["misroutes_total"], total as u64, "{}", doc["mail"]);
    let domains = doc["dns"]["domains"].as_array().expect("dns.domains");
    let of =
        |name: &str| domains.iter().find(|d| d["domain"] == name).unwrap_or_else(|| panic!("{name} in {domains:?}"));
    assert!(of(FIXED)["diagnosis"].is_null(), "fixed.test has no misroutes: {}", of(FIXED)["diagnosis"]);
    let diagnosis = of(INCIDENT)["diagnosis"].as_str().unwrap_or_else(|| panic!("no diagnosis: {}", of(INCIDENT)));
    println!("diagnosis for incident.test: {diagnosis}");
    for fact in [
        format!("{APEX_HOST} rejected {total} message"),
        format!("for {INCIDENT} as relay denied"),
        format!("{INCIDENT}'s apex address 127.0.54.2 is not an MX address"),
        "mx.incident.test".to_string(),
        "senders that fall back to the apex A record land there".to_string(),
    ] {
        assert!(diagnosis.contains(&fact), "the diagnosis lacks {fact:?}:\n{diagnosis}");
    }
    let page = s.exporter.get("/");
    assert_eq!(page.status, 200);
    let html = unescape_html(&page.text());
    assert!(html.contains(diagnosis), "the status page does not show the diagnosis {diagnosis:?}:\n{html}");
}

#[test]
fn test_copies_change_only_what_they_say() {
    let rules = std::fs::read_to_string(repo().join("alerts/mailroute.rules.yml")).expect("read rules");
    let (copy, changes) = shorten_for_windows(&rules);
    let differing: Vec<(&str, &str)> = rules.lines().zip(copy.lines()).filter(|(a, b)| a != b).collect();
    assert_eq!(rules.lines().count(), copy.lines().count());
    assert_eq!(differing.len(), changes.len());
    assert!(differing.iter().all(|(a, b)| a.trim_start().starts_with("for:") && b.trim_start().starts_with("for:")));
    assert!(changes.contains(&"MailMisrouteSpike: for: 5m -> for: 5s".to_string()), "{changes:?}");

    let hook = Webhook { port: 9, got: Arc::default() };
    let example = std::fs::read_to_string(repo().join("alerts/alertmanager.example.yml")).expect("read example");
    let (copy, _) = alertmanager_test_copy(&example, &hook);
    assert!(!copy.contains("pagerduty_configs") && !copy.contains("email_configs"), "{copy}");
    assert_eq!(copy.matches("webhook_configs:").count(), 2, "{copy}");
    // the test copy is a valid configuration and routes like the example
    let path = tempfile::NamedTempFile::new().expect("tempfile");
    std::fs::write(path.path(), &copy).expect("write");
    let check =
        Command::new("amtool").args(["check-config", &path.path().display().to_string()]).output().expect("amtool");
    assert!(
        check.status.success(),
        "{}{}\n{copy}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    for (severity, receiver) in [("critical", "pager"), ("warning", "ticket"), ("info", "ticket")] {
        let out = Command::new("amtool")
            .args(["config", "routes", "test", &format!("--config.file={}", path.path().display())])
            .args([format!("severity={severity}"), "alertname=MailMisrouteSpike".into(), "domain=incident.test".into()])
            .output()
            .expect("amtool");
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), receiver, "{severity}");
    }
}
