//! `serve`: wire the log sources, the DNS scheduler and the HTTP server together;
//! reload the configuration on SIGHUP or `POST /-/reload`; take everything down in
//! order on SIGTERM or SIGINT.
//!
//! Everything runs as tasks of one tokio runtime and stops through one
//! [`CancellationToken`]: the signal cancels it; the HTTP server stops accepting,
//! the DNS scheduler and the periodic save end, every log source (each holds a child
//! token) reads what is left and ends; then the state file is saved a last time.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::net::TcpListener;

use crate::config::{Config, ListenAddress, Overrides};
use crate::dns::DnsState;
use crate::dns::probe::Prober;
use crate::dns::round::Settings;
use crate::dns::state::{DnsCollector, scheduler};
use crate::dns::sts_fetch::MailTls;
use crate::maillog::processor::MailState;
use crate::maillog::source::{CancellationToken, SourceHandle, spawn_path, stop_all};
use crate::maillog::state::{Persister, SAVE_INTERVAL};
use crate::metrics::Metrics;
use crate::status::{App, RunningSource};
use crate::web::BasicAuth;

/// Binds the listen address: every interface (IPv6 and IPv4) when no host is given.
pub async fn bind(addr: &ListenAddress) -> std::io::Result<TcpListener> {
    match &addr.host {
        None => match TcpListener::bind(SocketAddr::from(([0u16; 8], addr.port))).await {
            Ok(l) => Ok(l),
            Err(_) => TcpListener::bind(SocketAddr::from(([0u8; 4], addr.port))).await,
        },
        Some(host) => {
            let host = host.trim_start_matches('[').trim_end_matches(']');
            TcpListener::bind((host, addr.port)).await
        }
    }
}

/// The prober of a running exporter: its concurrency, timeout, query counters and
/// the per-server rate limit shared by rounds and probes.
pub fn dns_prober(config: &Config, metrics: &Metrics) -> Prober {
    Prober::new(config.dns.concurrency, config.dns.timeout, Some(metrics.dns_queries.clone()))
        .with_max_qps(config.dns.max_qps_per_server)
}

/// What `/probe` may check and how long it reuses a result.
pub fn probe_settings(config: &Config) -> crate::dns::state::ProbeSettings {
    crate::dns::state::ProbeSettings { allow: config.dns.probe_allow.clone(), cache_age: config.dns.probe_cache_age }
}

/// How DNS rounds reach the servers: the configured resolvers, or none, and then
/// the round's resolver reads `/etc/resolv.conf` with its options.
pub fn dns_settings(config: &Config) -> Settings {
    Settings {
        resolvers: config.dns.resolvers.clone(),
        port: config.dns.port,
        smtp_probe_port: config.dns.smtp_probe_port,
        dnssec_expiry_warning: config.dns.dnssec_expiry_warning,
        mail_tls: MailTls {
            tls: crate::dns::tls_client::client_config(config.dns.ca_file.as_deref().map(std::path::Path::new)),
            certificate_expiry_warning: config.dns.certificate_expiry_warning,
            ..MailTls::default()
        },
    }
}

/// The log sources a configuration asks for, by key: `file:PATH`, `journal`,
/// `syslog:udp://ADDR`.
fn source_keys(config: &Config) -> Vec<String> {
    let mut keys: Vec<String> = config.maillog.paths.iter().map(|p| format!("file:{p}")).collect();
    if config.maillog.journal {
        keys.push("journal".to_string());
    }
    for l in &config.maillog.syslog_listen {
        keys.push(format!("syslog:{}://{}", if l.tcp { "tcp" } else { "udp" }, l.addr));
    }
    keys
}

/// Starts the source `key` as a task of the current runtime, stopped by a child of
/// `shutdown`.
fn start_source(
    key: &str,
    config: &Config,
    mail: &Arc<MailState>,
    shutdown: &CancellationToken,
) -> Result<RunningSource, String> {
    let stop = shutdown.child_token();
    let handle: SourceHandle = if let Some(path) = key.strip_prefix("file:") {
        spawn_path(path, config.maillog.start, mail.clone(), stop.clone())
    } else if key == "journal" {
        crate::maillog::journal::spawn(config.maillog.start, mail.clone(), stop.clone())
    } else {
        let listen = config
            .maillog
            .syslog_listen
            .iter()
            .find(|l| format!("syslog:{}://{}", if l.tcp { "tcp" } else { "udp" }, l.addr) == key)
            .ok_or_else(|| format!("unknown source {key}"))?;
        crate::maillog::syslog::spawn(listen, config.maillog.syslog_max_connections, mail.clone(), stop.clone())
            .map_err(|e| format!("cannot listen for {}: {e}", &key["syslog:".len()..]))?
    };
    Ok(RunningSource { key: key.to_string(), stop, handle })
}

/// Stops sources and waits for their last reads (on a reload and at shutdown).
async fn stop_sources(sources: Vec<RunningSource>) {
    stop_all(sources.into_iter().map(|s| (s.stop, s.handle)).collect()).await;
}

fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// Re-reads the configuration and applies it. Sources and domains that remain keep
/// their counters and results; a bad file changes nothing.
pub struct Reloader {
    path: Option<PathBuf>,
    overrides: Overrides,
    current: Mutex<Config>,
    app: Arc<App>,
    /// The exporter's shutdown token: sources started by a reload hold children of it.
    shutdown: CancellationToken,
}

impl crate::status::Reload for Reloader {
    fn reload(&self) -> Result<String, String> {
        Reloader::reload(self)
    }
}

impl Reloader {
    /// Runs on a blocking thread of the runtime (it reads the file and waits for
    /// removed sources), never on a worker.
    pub fn reload(&self) -> Result<String, String> {
        let result = self.try_reload();
        let m = &self.app.metrics;
        match &result {
            Ok(summary) => {
                m.config_last_reload_successful.set(1);
                m.config_last_reload_success.set(now());
                tracing::info!(changes = summary.as_str(), "configuration reloaded");
            }
            Err(e) => {
                m.config_last_reload_successful.set(0);
                tracing::error!(error = e.as_str(), "configuration reload failed, keeping the running configuration");
            }
        }
        result
    }

    fn try_reload(&self) -> Result<String, String> {
        let Some(path) = &self.path else {
            return Err("no --config.file to reload".to_string());
        };
        let mut new = Config::load(path).map_err(|e| e.to_string())?;
        new.apply(&self.overrides).map_err(|e| e.to_string())?;
        let mut current = self.current.lock().map_err(|_| "reload state poisoned".to_string())?;
        let app = &self.app;
        let mut changes = Vec::new();

        // log sources: stop those gone, start those new, keep the rest untouched
        let wanted = source_keys(&new);
        let mut started = Vec::new();
        let running: BTreeSet<String> =
            app.sources.lock().map(|s| s.iter().map(|r| r.key.clone()).collect()).unwrap_or_default();
        for key in wanted.iter().filter(|k| !running.contains(*k)) {
            started.push(start_source(key, &new, &app.mail, &self.shutdown)?);
            changes.push(format!("+{key}"));
        }
        let mut gone = Vec::new();
        if let Ok(mut s) = app.sources.lock() {
            let (keep, drop): (Vec<_>, Vec<_>) = s.drain(..).partition(|r| wanted.contains(&r.key));
            *s = keep;
            s.extend(started);
            gone = drop;
        }
        for r in &gone {
            changes.push(format!("-{}", r.key));
        }
        tokio::runtime::Handle::current().block_on(stop_sources(gone));

        app.mail.set_domains(&new.misroute_domains());
        app.mail.set_hosts(new.maillog.max_hosts, &new.maillog.default_host);

        let old_domains: BTreeSet<&String> = current.dns.domains.iter().map(|d| &d.name).collect();
        let new_domains: BTreeSet<&String> = new.dns.domains.iter().map(|d| &d.name).collect();
        for d in new_domains.difference(&old_domains) {
            changes.push(format!("+domain {d}"));
        }
        for d in old_domains.difference(&new_domains) {
            changes.push(format!("-domain {d}"));
        }
        app.dns.set_probe_settings(probe_settings(&new));
        // the per-server slots outlive a reload (same limit), so a reload lets no burst through
        let mut prober = dns_prober(&new, &app.metrics);
        if let Some(old) = app.dns.prober() {
            prober = prober.keeping_slots_of(&old);
        }
        app.dns.reconfigure(new.dns.domains.clone(), new.dns.interval, prober, dns_settings(&new));
        app.metrics.dns_interval.set(new.dns.interval.as_secs_f64());

        app.auth.set_users(new.web.basic_auth.clone());
        if new.web.listen_address != current.web.listen_address
            || new.web.tls != current.web.tls
            || new.web.telemetry_path != current.web.telemetry_path
        {
            tracing::warn!("web.listen_address, web.tls and web.telemetry_path take effect after a restart");
        }
        *current = new;
        Ok(if changes.is_empty() { "no source or domain changed".to_string() } else { changes.join(" ") })
    }
}

/// Runs the exporter until a termination signal. Errors are for `main` to print.
pub async fn run(config: Config, path: Option<PathBuf>, overrides: Overrides) -> Result<(), String> {
    let dns = Arc::new(DnsState::new(config.dns.domains.clone(), config.dns.interval));
    let metrics = Arc::new(Metrics::new(Some(Box::new(DnsCollector { state: dns.clone() }))));
    metrics.dns_interval.set(config.dns.interval.as_secs_f64());
    metrics.config_last_reload_successful.set(1);
    metrics.config_last_reload_success.set(now());
    dns.set_engine(dns_prober(&config, &metrics), dns_settings(&config));
    dns.set_probe_settings(probe_settings(&config));
    let mail = Arc::new(MailState::new(
        metrics.clone(),
        config.maillog.max_hosts,
        &config.maillog.default_host,
        &config.misroute_domains(),
    ));
    let persister = config.maillog.state_file.as_ref().map(|p| Arc::new(Persister::new(p, mail.clone())));
    if let Some(p) = &persister {
        // counters and positions come back before any source reads a line
        mail.persistent.store(true, std::sync::atomic::Ordering::Relaxed);
        p.restore();
    }
    let tls = match &config.web.tls {
        Some(t) => Some(crate::web::tls_config(t)?),
        None => None,
    };
    // the one shutdown token: every task of the exporter ends when it is cancelled
    let shutdown = CancellationToken::new();
    let mut sources = Vec::new();
    for key in source_keys(&config) {
        match start_source(&key, &config, &mail, &shutdown) {
            Ok(s) => sources.push(s),
            Err(e) => {
                stop_sources(sources).await;
                return Err(e);
            }
        }
    }
    let listener = match bind(&config.web.listen_address).await {
        Ok(l) => l,
        Err(e) => {
            stop_sources(sources).await;
            return Err(format!("cannot listen on {}: {e}", config.web.listen_address.text));
        }
    };
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    let app = Arc::new(App {
        metrics,
        mail,
        sources: Mutex::new(sources),
        dns: dns.clone(),
        started_at: now(),
        telemetry_path: config.web.telemetry_path.clone(),
        auth: Arc::new(BasicAuth::new(config.web.basic_auth.clone())),
        reloader: std::sync::OnceLock::new(),
        persister: persister.clone(),
    });
    let reloader = Arc::new(Reloader {
        path,
        overrides,
        current: Mutex::new(config.clone()),
        app: app.clone(),
        shutdown: shutdown.clone(),
    });
    let _ = app.reloader.set(reloader.clone() as Arc<dyn crate::status::Reload>);
    let saver = persister.clone().map(|p| tokio::spawn(save_periodically(p, shutdown.clone())));
    let scheduler = tokio::spawn(scheduler(dns, shutdown.clone()));
    let hup = tokio::spawn(reload_on_sighup(reloader, shutdown.clone()));
    let signals = tokio::spawn(cancel_on_termination(Termination::catch(), shutdown.clone()));

    tracing::info!(
        address = %crate::web::scheme(tls.is_some(), local),
        version = env!("CARGO_PKG_VERSION"),
        tls = tls.is_some(),
        basic_auth = app.auth.enabled(),
        "listening"
    );
    let router = crate::http::router(app.clone(), &config.web.telemetry_path);
    crate::web::serve(listener, tls, router, shutdown.clone().cancelled_owned()).await;

    // the HTTP server ended because the token was cancelled; the rest ends with it
    tracing::info!("shutting down");
    shutdown.cancel();
    let _ = scheduler.await;
    let _ = hup.await;
    let _ = signals.await;
    if let Some(t) = saver {
        let _ = t.await;
    }
    let sources: Vec<RunningSource> = app.sources.lock().map(|mut s| s.drain(..).collect()).unwrap_or_default();
    stop_sources(sources).await;
    // the sources read what was left: keep it
    if let Some(p) = persister {
        tokio::task::spawn_blocking(move || p.save_now()).await.map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Saves a snapshot every [`SAVE_INTERVAL`] (scrapes save too) until the shutdown.
async fn save_periodically(p: Arc<Persister>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(SAVE_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let p = p.clone();
        let _ = tokio::task::spawn_blocking(move || p.save_now()).await;
    }
}

async fn reload_on_sighup(reloader: Arc<Reloader>, shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hup) = signal(SignalKind::hangup()) else { return };
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            got = hup.recv() => if got.is_none() { return },
        }
        tracing::info!(signal = "SIGHUP", "reloading the configuration");
        let r = reloader.clone();
        let _ = tokio::task::spawn_blocking(move || r.reload()).await;
    }
}

/// The termination signals, caught from the start so that none is missed.
struct Termination {
    term: Option<tokio::signal::unix::Signal>,
    int: Option<tokio::signal::unix::Signal>,
}

impl Termination {
    fn catch() -> Termination {
        use tokio::signal::unix::{SignalKind, signal};
        let catch = |kind: SignalKind, name: &str| match signal(kind) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(signal = name, error = %e, "cannot catch the signal");
                None
            }
        };
        Termination { term: catch(SignalKind::terminate(), "SIGTERM"), int: catch(SignalKind::interrupt(), "SIGINT") }
    }
}

/// Cancels `shutdown` on SIGTERM or SIGINT.
async fn cancel_on_termination(mut signals: Termination, shutdown: CancellationToken) {
    async fn recv(s: &mut Option<tokio::signal::unix::Signal>) {
        if let Some(s) = s
            && s.recv().await.is_some()
        {
            return;
        }
        std::future::pending().await
    }
    tokio::select! {
        _ = shutdown.cancelled() => return,
        _ = recv(&mut signals.term) => tracing::info!(signal = "SIGTERM", "stopping"),
        _ = recv(&mut signals.int) => tracing::info!(signal = "SIGINT", "stopping"),
    }
    shutdown.cancel();
}
