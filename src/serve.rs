//! `serve`: wire the log sources, the DNS scheduler and the HTTP server together,
//! and take them down in order on SIGTERM or SIGINT.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::net::TcpListener;

use crate::config::{Config, ListenAddress};
use crate::dns::probe::Prober;
use crate::dns::round::Settings;
use crate::dns::state::{DnsCollector, scheduler};
use crate::dns::{DnsState, system_resolvers};
use crate::maillog::processor::MailState;
use crate::maillog::source::{Shutdown, spawn_path};
use crate::metrics::Metrics;
use crate::status::App;

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

/// How DNS rounds reach the servers: configured resolvers or `/etc/resolv.conf`.
pub fn dns_settings(config: &Config) -> Settings {
    let resolvers = if config.dns.resolvers.is_empty() { system_resolvers() } else { config.dns.resolvers.clone() };
    Settings {
        resolvers,
        port: config.dns.port,
        txt_names: crate::dns::policy_txt_names(),
        smtp_probe_port: config.dns.smtp_probe_port,
    }
}

/// Runs the exporter until a termination signal. Errors are for `main` to print.
pub async fn run(config: Config) -> Result<(), String> {
    let dns = Arc::new(DnsState::new(config.dns.domains.clone(), config.dns.interval));
    let metrics = Arc::new(Metrics::new(Some(Box::new(DnsCollector { state: dns.clone() }))));
    metrics.dns_interval.set(config.dns.interval.as_secs_f64());
    let prober = Prober::new(config.dns.concurrency, config.dns.timeout, Some(metrics.dns_queries.clone()));
    let settings = dns_settings(&config);
    let dns_stop = Arc::new(tokio::sync::Notify::new());
    let scheduler = tokio::spawn(scheduler(dns.clone(), prober, settings, dns_stop.clone()));
    let mail = Arc::new(MailState::new(
        metrics.clone(),
        config.maillog.max_hosts,
        &config.maillog.default_host,
        &config.misroute_domains(),
    ));
    let stop = Arc::new(Shutdown::default());
    let mut sources = Vec::new();
    for path in &config.maillog.paths {
        let handle = spawn_path(path, config.maillog.start, mail.clone(), stop.clone())
            .map_err(|e| format!("cannot start the reader for {path}: {e}"))?;
        sources.push(handle);
    }
    if config.maillog.journal {
        let handle = crate::maillog::journal::spawn(mail.clone(), stop.clone())
            .map_err(|e| format!("cannot follow the journal: {e}"))?;
        sources.push(handle);
    }
    for listen in &config.maillog.syslog_listen {
        let handle = crate::maillog::syslog::spawn(listen, mail.clone(), stop.clone())
            .map_err(|e| format!("cannot listen for syslog on {}://{}: {e}", if listen.tcp { "tcp" } else { "udp" }, listen.addr))?;
        sources.push(handle);
    }
    let listener = bind(&config.web.listen_address)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.web.listen_address.text))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    let app = Arc::new(App {
        metrics,
        mail,
        sources: Mutex::new(sources),
        dns,
        started_at: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64()),
        telemetry_path: config.web.telemetry_path.clone(),
    });
    tracing::info!(address = %local, version = env!("CARGO_PKG_VERSION"), "listening");
    let router = crate::http::router(app.clone(), &config.web.telemetry_path);
    axum::serve(listener, router)
        .with_graceful_shutdown(termination())
        .await
        .map_err(|e| format!("HTTP server failed: {e}"))?;
    tracing::info!("shutting down");
    dns_stop.notify_one();
    let _ = scheduler.await;
    stop.trigger();
    let handles: Vec<_> = app.sources.lock().map(|mut s| s.drain(..).collect()).unwrap_or_default();
    for mut h in handles {
        let is_stdin = h.snapshot().is_some_and(|s| s.kind == "stdin");
        if let Some(t) = h.thread.take()
            && !is_stdin
        {
            let _ = t.join();
        }
    }
    Ok(())
}

/// Resolves on SIGTERM or SIGINT.
async fn termination() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = term.recv() => tracing::info!(signal = "SIGTERM", "stopping"),
        _ = tokio::signal::ctrl_c() => tracing::info!(signal = "SIGINT", "stopping"),
    }
}
