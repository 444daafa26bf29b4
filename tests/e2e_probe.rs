//! `/probe` end to end, against the DNS lab (NSD, Knot, BIND, Unbound) and a real
//! Prometheus:
//!
//! - `probe_answers_like_static_configuration`: one exporter with a domain in its
//!   configuration answers `/probe` for it with the same families, labels and check
//!   results as `/metrics`; 400 and 403 as SPEC §7.2 says; concurrent probes share one
//!   round and a recent result is served again (queries counted by the exporter);
//! - `prometheus_shards_targets_over_two_replicas`: two exporter replicas, file_sd
//!   with the lab's domains, `hashmod` modulus 2 in the scrape config of
//!   `deploy/prometheus-probe.yml` (the shipped relabelling, addresses swapped):
//!   every domain is probed by exactly one replica, both get some, and the shipped
//!   alert rule `MailDNSNoUsableMX` fires from `/probe` data as it does from a
//!   statically configured exporter.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Exporter, metric_samples, metric_sum};
use serde_json::Value;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The test scrapes every 2 s what the shipped configuration scrapes every 5 minutes,
/// so the per-server rate limit is raised to match: at the default 50 queries a second
/// the lab's ~50 domains (each ~20 queries to the same two servers, DNSSEC included)
/// could not finish within a 2 s scrape timeout.
fn exporter_config(dir: &Path, name: &str, resolver: &str, port: u16, extra: &str) -> PathBuf {
    let cfg = dir.join(name);
    std::fs::write(
        &cfg,
        format!(
            "[maillog]\npaths = []\n\n[dns]\nresolvers = [\"{resolver}\"]\nport = {port}\ntimeout = \"1s\"\n\
             interval = \"10s\"\nprobe_allow = [\"*.test\"]\nmax_qps_per_server = 2000\n{extra}"
        ),
    )
    .expect("write config");
    cfg
}

/// The (labels, value) samples of the DNS families for `domain`, family names
/// included, `duration`/`timestamp`/`rtt` values blanked (they differ per round).
fn dns_samples(text: &str, domain: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for family in [
        "mailroute_dns_round_success",
        "mailroute_dns_check_failed",
        "mailroute_dns_nameserver_up",
        "mailroute_dns_soa_serial",
        "mailroute_dns_mx_info",
        "mailroute_dns_apex_address_info",
        "mailroute_dns_spf_lookups",
        "mailroute_dns_nameserver_rtt_seconds",
        "mailroute_dns_check_duration_seconds",
        "mailroute_dns_last_check_timestamp_seconds",
    ] {
        for (labels, v) in metric_samples(text, family) {
            if labels.get("domain").map(String::as_str) != Some(domain) {
                continue;
            }
            let timing = family.ends_with("_seconds");
            out.insert(format!("{family}{labels:?} {}", if timing { "*".to_string() } else { v.to_string() }));
        }
    }
    out
}

#[test]
fn probe_answers_like_static_configuration() {
    let (resolver, port) = common::dns_lab();
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = exporter_config(
        dir.path(),
        "one.toml",
        &resolver,
        port,
        "probe_cache_age = \"0s\"\n\n[[dns.domain]]\nname = \"nousable.test\"\n",
    );
    let ex = Exporter::start(&["serve", &format!("--config.file={}", cfg.display())]);
    let metrics =
        ex.wait_for(|t| t.contains("mailroute_dns_round_success{domain=\"nousable.test\"}"), Duration::from_secs(30));

    // the same families, labels and values as the static round
    let probed = ex.get_with("/probe?target=nousable.test", &[("X-Prometheus-Scrape-Timeout-Seconds", "5")]);
    assert_eq!(probed.status, 200, "{}", probed.text());
    assert!(probed.header("content-type").unwrap_or("").starts_with("text/plain; version=0.0.4"));
    let probe_text = probed.text();
    common::promtool_check_metrics(&probe_text).expect("promtool check metrics");
    let (stat, prob) = (dns_samples(&metrics, "nousable.test"), dns_samples(&probe_text, "nousable.test"));
    assert!(prob.len() > 10, "{prob:?}");
    assert_eq!(stat, prob, "static /metrics and /probe disagree");
    assert_eq!(
        common::metric_value(&probe_text, "mailroute_dns_round_success", &[("domain", "nousable.test")]),
        Some(1.0)
    );
    assert_eq!(
        common::metric_value(
            &probe_text,
            "mailroute_dns_check_failed",
            &[("domain", "nousable.test"), ("check", "no_usable_mx"), ("severity", "critical")]
        ),
        Some(1.0)
    );
    assert!(!probe_text.contains("mailroute_smtp_"), "/probe answers the DNS families only");

    // refusals
    for (path, status) in [
        ("/probe", 400),
        ("/probe?target=", 400),
        ("/probe?target=bad%20name.test", 400),
        ("/probe?target=fixed.test&dkim_selector=%3Cx%3E", 400),
        ("/probe?target=example.org", 403),
        ("/probe?target=test", 400),
    ] {
        let r = ex.get(path);
        assert_eq!(r.status, status, "{path}: {}", r.text());
    }

    // a probed domain that is not configured: the DKIM selector asked for is checked
    let r = ex.get("/probe?target=fixed.test&dkim_selector=default");
    assert_eq!(r.status, 200);
    assert_eq!(common::metric_value(&r.text(), "mailroute_dns_round_success", &[("domain", "fixed.test")]), Some(1.0));
    let sev = metric_samples(&r.text(), "mailroute_dns_check_failed")
        .into_iter()
        .find(|(l, _)| l.get("check").map(String::as_str) == Some("dkim_key_missing"));
    assert!(sev.is_some(), "the selector's check ran: {}", r.text());
    let without = ex.get("/probe?target=shop.fixed.test");
    assert_eq!(without.status, 200);
    assert!(!without.text().contains("dkim_key_missing"), "no selector, no DKIM check: {}", without.text());

    // single flight: five concurrent probes of one target cost about one round
    let queries = || metric_sum(&ex.scrape(), "mailroute_dns_queries_total", &[]);
    std::thread::sleep(Duration::from_millis(1100)); // a fresh resolver cache period
    let before = queries();
    assert_eq!(ex.get("/probe?target=drift.test").status, 200);
    let one = queries() - before;
    std::thread::sleep(Duration::from_millis(1100));
    let before = queries();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..5).map(|_| s.spawn(|| ex.get("/probe?target=drift.test").status)).collect();
        for h in handles {
            assert_eq!(h.join().expect("probe thread"), 200);
        }
    });
    let five = queries() - before;
    println!("queries for one probe of drift.test: {one}; for five concurrent probes: {five}");
    assert!(one > 10.0, "a round asks the servers: {one}");
    assert!(five < one * 1.5, "five concurrent probes made {five} queries, one probe {one}");
    drop(ex);

    // reuse: with the default probe_cache_age a second scrape (an HA twin) costs nothing
    let cfg = exporter_config(dir.path(), "two.toml", &resolver, port, "");
    let ex = Exporter::start(&["serve", &format!("--config.file={}", cfg.display())]);
    assert_eq!(ex.get("/probe?target=drift.test").status, 200);
    let before = queries_of(&ex);
    let again = ex.get("/probe?target=drift.test");
    assert_eq!(again.status, 200);
    assert_eq!(queries_of(&ex) - before, 0.0, "the HA twin's scrape was served the recent round");
    assert_eq!(
        common::metric_value(&again.text(), "mailroute_dns_round_success", &[("domain", "drift.test")]),
        Some(1.0)
    );

    // not allowed at all with the default probe_allow = []
    let cfg = dir.path().join("closed.toml");
    let log = dir.path().join("mail.log");
    std::fs::write(&log, "").expect("write log");
    let text = format!(
        "[maillog]\npaths = [{log:?}]\n[dns]\nresolvers = [\"{resolver}\"]\nport = {port}\n",
        log = log.display().to_string()
    );
    std::fs::write(&cfg, text).expect("write");
    let ex = Exporter::start(&["serve", &format!("--config.file={}", cfg.display())]);
    assert_eq!(ex.get("/probe?target=fixed.test").status, 403);
}

fn queries_of(ex: &Exporter) -> f64 {
    metric_sum(&ex.scrape(), "mailroute_dns_queries_total", &[])
}

// ------------------------------------------------------------------ real Prometheus

/// Prometheus, killed on drop (and by the kernel should the test process die).
struct Prometheus {
    child: Child,
    log: PathBuf,
    base: String,
}

impl Prometheus {
    fn start(config: &Path, data: &Path, log: PathBuf) -> Prometheus {
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
        let file = std::fs::File::create(&log).expect("log");
        let mut cmd = Command::new("prometheus");
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
            .args([
                format!("--config.file={}", config.display()),
                format!("--storage.tsdb.path={}", data.display()),
                format!("--web.listen-address=127.0.0.1:{port}"),
            ])
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("dup"))
            .stderr(file)
            .spawn()
            .expect("start prometheus");
        Prometheus { child, log, base: format!("http://127.0.0.1:{port}") }
    }

    fn query(&self, expr: &str) -> Vec<Value> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(10)))
            .build()
            .into();
        let url = format!("{}/api/v1/query", self.base);
        let Ok(mut resp) = agent.get(&url).query("query", expr).call() else { return Vec::new() };
        let body = resp.body_mut().read_to_string().unwrap_or_default();
        let doc: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        doc["data"]["result"].as_array().cloned().unwrap_or_default()
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("---- prometheus log:\n{}", self.log_tail());
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_until<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>, context: impl Fn() -> String) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: not within {timeout:?}\n{}", context());
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// `deploy/prometheus-probe.yml` as shipped, with the test's file_sd path, rule
/// file, replica and static exporter addresses, and short intervals. Only those
/// strings change; the relabelling is the shipped one.
fn shipped_config(targets: &Path, rules: &Path, replicas: &[String], fixed: &str) -> String {
    let shipped =
        std::fs::read_to_string(repo().join("deploy/prometheus-probe.yml")).expect("deploy/prometheus-probe.yml");
    assert!(shipped.contains("action: hashmod") && shipped.contains("modulus: 2"), "{shipped}");
    let mut text = shipped.clone();
    for (from, to) in [
        ("/etc/prometheus/mailroute-domains/*.json".to_string(), targets.display().to_string()),
        ("../alerts/mailroute.rules.yml".to_string(), rules.display().to_string()),
        (
            "targets: [\"mailroute-0.mailroute:2553\", \"mailroute-1.mailroute:2553\"]".to_string(),
            format!("targets: [\"{fixed}\"]"),
        ),
        ("scrape_interval: 1m".to_string(), "scrape_interval: 2s".to_string()),
        ("evaluation_interval: 1m".to_string(), "evaluation_interval: 1s".to_string()),
        ("scrape_timeout: 10s".to_string(), "scrape_timeout: 2s".to_string()),
        ("scrape_interval: 5m".to_string(), "scrape_interval: 2s".to_string()),
        ("scrape_timeout: 30s".to_string(), "scrape_timeout: 2s".to_string()),
        ("refresh_interval: 5m".to_string(), "refresh_interval: 1s".to_string()),
    ] {
        assert!(text.contains(&from), "deploy/prometheus-probe.yml no longer has {from:?}");
        text = text.replace(&from, &to);
    }
    for (i, addr) in replicas.iter().enumerate() {
        text = text.replace(&format!("mailroute-{i}.mailroute:2553"), addr);
    }
    assert!(!text.contains(".mailroute:2553"), "every replica address replaced:\n{text}");
    text
}

#[test]
fn prometheus_shards_targets_over_two_replicas() {
    let (resolver, port) = common::dns_lab();
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let replicas: Vec<Exporter> = (0..2)
        .map(|i| {
            let cfg = exporter_config(d, &format!("replica{i}.toml"), &resolver, port, "");
            Exporter::start(&["serve", &format!("--config.file={}", cfg.display()), "--log.level=debug"])
        })
        .collect();
    let static_cfg = exporter_config(d, "static.toml", &resolver, port, "\n[[dns.domain]]\nname = \"nousable.test\"\n");
    let fixed = Exporter::start(&["serve", &format!("--config.file={}", static_cfg.display())]);

    let domains: Vec<String> = common::lab_expectations().keys().cloned().collect();
    assert!(domains.len() >= 10, "{domains:?}");
    let targets = d.join("domains.json");
    std::fs::write(&targets, serde_json::json!([{ "targets": domains, "labels": { "team": "hosting" } }]).to_string())
        .expect("write file_sd");

    // the rule, its for: window cut to 10 s (the expression as shipped)
    let rules = std::fs::read_to_string(repo().join("alerts/mailroute.rules.yml")).expect("rules");
    let rules = rules.replace("        for: 10m\n", "        for: 10s\n");
    let rules_file = d.join("rules.yml");
    std::fs::write(&rules_file, rules).expect("write rules");
    let addrs: Vec<String> = replicas.iter().map(|r| r.addr().to_string()).collect();
    let config = shipped_config(&targets, &rules_file, &addrs, &fixed.addr().to_string());
    let config_file = d.join("prometheus.yml");
    std::fs::write(&config_file, &config).expect("write prometheus.yml");
    let out = Command::new("promtool").args(["check", "config"]).arg(&config_file).output().expect("promtool");
    assert!(out.status.success(), "{config}\n{}", String::from_utf8_lossy(&out.stderr));
    let prom = Prometheus::start(&config_file, &d.join("data"), d.join("prometheus.log"));

    // every domain probed, each by exactly one replica
    let by_domain = wait_until(
        "every domain's round_success from the probe job",
        Duration::from_secs(60),
        || {
            let r = prom.query("count by (domain, exporter) (mailroute_dns_round_success{job=\"mailroute_probe\"})");
            let mut m: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
            for s in &r {
                let domain = s["metric"]["domain"].as_str().unwrap_or("").to_string();
                m.entry(domain).or_default().insert(s["metric"]["exporter"].as_str().unwrap_or("").to_string());
            }
            (m.len() == domains.len()).then_some(m)
        },
        || format!("{:?}", prom.query("mailroute_dns_round_success")),
    );
    let mut per_replica: BTreeMap<String, usize> = BTreeMap::new();
    for (domain, exporters) in &by_domain {
        assert_eq!(exporters.len(), 1, "{domain} probed by {exporters:?}");
        let e = exporters.iter().next().cloned().unwrap_or_default();
        assert!(addrs.contains(&e), "{domain} probed by {e}, not a replica");
        *per_replica.entry(e).or_default() += 1;
    }
    println!("domains per replica: {per_replica:?}");
    assert_eq!(per_replica.len(), 2, "both replicas have a share: {per_replica:?}");
    // the replicas agree: each one's log names only its own share
    std::thread::sleep(Duration::from_secs(3));
    for (i, r) in replicas.iter().enumerate() {
        let logged: BTreeSet<String> = r
            .stderr()
            .lines()
            .filter(|l| l.contains("msg=probe") || l.contains("\"probe\""))
            .filter_map(|l| l.split_whitespace().find_map(|w| w.strip_prefix("domain=")).map(str::to_string))
            .collect();
        let mine: BTreeSet<String> =
            by_domain.iter().filter(|(_, e)| e.contains(&addrs[i])).map(|(d, _)| d.clone()).collect();
        assert_eq!(logged, mine, "replica {i} probed exactly its share");
    }
    // file_sd labels come along; the domain label is the exporter's
    let team =
        prom.query("mailroute_dns_round_success{job=\"mailroute_probe\",team=\"hosting\",domain=\"fixed.test\"}");
    assert_eq!(team.len(), 1, "{team:?}");

    // the shipped rule fires from /probe data as from the static exporter
    let firing = wait_until(
        "MailDNSNoUsableMX firing for both jobs",
        Duration::from_secs(90),
        || {
            let a = prom.query("ALERTS{alertname=\"MailDNSNoUsableMX\",alertstate=\"firing\"}");
            let jobs: BTreeSet<String> = a
                .iter()
                .filter(|s| s["metric"]["domain"] == "nousable.test")
                .filter_map(|s| s["metric"]["job"].as_str().map(str::to_string))
                .collect();
            (jobs.len() == 2).then_some(jobs)
        },
        || format!("{:?}", prom.query("ALERTS")),
    );
    assert_eq!(firing, BTreeSet::from(["mailroute".to_string(), "mailroute_probe".to_string()]));
    let wrong = prom.query("ALERTS{alertname=\"MailDNSNoUsableMX\",domain!=\"nousable.test\"}");
    assert!(wrong.is_empty(), "only nousable.test has no usable MX: {wrong:?}");
}
