//! The configuration file (TOML, SPEC §3) and the command-line overrides.
//!
//! Parsing happens in two steps: serde reads the file into `Raw*` structs that keep
//! each value's byte span (unknown keys are refused by `deny_unknown_fields`), then
//! [`Config::from_raw`] checks every value and turns it into typed settings. Every
//! error names the key and its line and column: `config.toml:7:12: dns.interval:
//! invalid duration "5x" …`. Nothing is silently ignored.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

/// A configuration error: where, which key, what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file (or `command line`).
    pub origin: String,
    /// 1-based line and column; 0 when unknown.
    pub line: usize,
    pub column: usize,
    /// The dotted key (`dns.interval`, `dns.domain[2].name`, `--dns.resolver`).
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(f, "{}:{}:{}: ", self.origin, self.line, self.column)?;
        } else {
            write!(f, "{}: ", self.origin)?;
        }
        if self.key.is_empty() { write!(f, "{}", self.message) } else { write!(f, "{}: {}", self.key, self.message) }
    }
}

impl std::error::Error for ConfigError {}

/// Where log reading starts in a file that exists at startup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Start {
    #[default]
    End,
    Beginning,
}

/// The address to serve HTTP on.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ListenAddress {
    /// As configured, e.g. `:2553` or `127.0.0.1:2553`.
    pub text: String,
    /// `None` = every interface.
    pub host: Option<String>,
    pub port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TlsConfig {
    pub cert_file: String,
    pub key_file: String,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct WebConfig {
    pub listen_address: ListenAddress,
    pub telemetry_path: String,
    pub tls: Option<TlsConfig>,
    /// user → bcrypt hash; empty = no authentication.
    #[serde(skip)]
    pub basic_auth: BTreeMap<String, String>,
}

/// A syslog listener: `udp://IP:PORT` or `tcp://IP:PORT`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SyslogListen {
    pub tcp: bool,
    pub addr: SocketAddr,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MaillogConfig {
    pub paths: Vec<String>,
    pub start: Start,
    /// The host label for lines without a host; already resolved (never empty).
    pub default_host: String,
    pub max_hosts: usize,
    pub local_domains: Vec<String>,
    pub journal: bool,
    pub syslog_listen: Vec<SyslogListen>,
    /// Where positions and counters survive restarts (SPEC §7.1); `None` = not kept.
    pub state_file: Option<String>,
    /// TCP connections served at once per syslog TCP listener (SPEC §7.1).
    pub syslog_max_connections: usize,
    /// `paths` was not configured and holds the default `/var/log/mail.log`.
    #[serde(skip)]
    pub paths_defaulted: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct DomainConfig {
    pub name: String,
    pub dkim_selectors: Vec<String>,
    pub expected_mx: Option<Vec<String>>,
    pub smtp_probe: bool,
    /// Connect to each MX address on `smtp_probe_port`, STARTTLS, inspect the
    /// certificate (SPEC §7.1).
    pub starttls_probe: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DnsConfig {
    #[serde(with = "secs")]
    pub interval: Duration,
    #[serde(with = "secs")]
    pub timeout: Duration,
    pub concurrency: usize,
    /// Recursive resolvers; empty = those of `/etc/resolv.conf`.
    pub resolvers: Vec<SocketAddr>,
    pub port: u16,
    pub smtp_probe_port: u16,
    /// `dnssec_signature_expiring` fails when an RRSIG expires sooner than this.
    #[serde(with = "secs")]
    pub dnssec_expiry_warning: Duration,
    /// Extra PEM CA certificates for MTA-STS HTTPS and STARTTLS (`None`: the
    /// Mozilla roots only). Checked when the configuration is loaded.
    pub ca_file: Option<String>,
    /// `mx_certificate_expiring` fails within this of an MX certificate's expiry.
    #[serde(with = "secs")]
    pub certificate_expiry_warning: Duration,
    pub domains: Vec<DomainConfig>,
    /// Names `/probe` may check: exact names, or `*.suffix` for any name below
    /// the suffix. Empty: `/probe` answers 403.
    pub probe_allow: Vec<String>,
    /// How long a `/probe` result is served again instead of a new round (an HA
    /// pair of Prometheus servers scraping the same target costs one round).
    #[serde(with = "secs")]
    pub probe_cache_age: Duration,
    /// Queries per second to one authoritative server address, over all rounds
    /// and probes.
    pub max_qps_per_server: u32,
}

mod secs {
    pub fn serialize<S: serde::Serializer>(d: &std::time::Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }
}

/// The whole configuration, validated.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Config {
    pub web: WebConfig,
    pub maillog: MaillogConfig,
    pub dns: DnsConfig,
}

pub const DEFAULT_LOG_PATH: &str = "/var/log/mail.log";
pub const DEFAULT_LISTEN: &str = ":2553";
/// `[maillog] syslog_max_connections` when not configured.
pub const DEFAULT_SYSLOG_MAX_CONNECTIONS: usize = 10_000;

impl Default for Config {
    fn default() -> Self {
        Config::from_raw(RawConfig::default(), "defaults", "").expect("the defaults are valid")
    }
}

// ---------------------------------------------------------------- raw (serde) layer

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    web: RawWeb,
    #[serde(default)]
    maillog: RawMaillog,
    #[serde(default)]
    dns: RawDns,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWeb {
    listen_address: Option<Spanned<String>>,
    telemetry_path: Option<Spanned<String>>,
    tls: Option<Spanned<RawTls>>,
    basic_auth: Option<RawBasicAuth>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert_file: Spanned<String>,
    key_file: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBasicAuth {
    users: Spanned<BTreeMap<String, Spanned<String>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMaillog {
    paths: Option<Spanned<Vec<Spanned<String>>>>,
    start: Option<Spanned<String>>,
    default_host: Option<Spanned<String>>,
    max_hosts: Option<Spanned<i64>>,
    #[serde(default)]
    local_domains: Vec<Spanned<String>>,
    journal: Option<bool>,
    #[serde(default)]
    syslog_listen: Vec<Spanned<String>>,
    state_file: Option<Spanned<String>>,
    syslog_max_connections: Option<Spanned<i64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDns {
    interval: Option<Spanned<String>>,
    timeout: Option<Spanned<String>>,
    concurrency: Option<Spanned<i64>>,
    #[serde(default)]
    resolvers: Vec<Spanned<String>>,
    port: Option<Spanned<i64>>,
    smtp_probe_port: Option<Spanned<i64>>,
    dnssec_expiry_warning: Option<Spanned<String>>,
    ca_file: Option<Spanned<String>>,
    certificate_expiry_warning: Option<Spanned<String>>,
    #[serde(default)]
    domain: Vec<Spanned<RawDomain>>,
    #[serde(default)]
    probe_allow: Vec<Spanned<String>>,
    probe_cache_age: Option<Spanned<String>>,
    max_qps_per_server: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDomain {
    name: Spanned<String>,
    #[serde(default)]
    dkim_selectors: Vec<Spanned<String>>,
    expected_mx: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    smtp_probe: bool,
    #[serde(default)]
    starttls_probe: bool,
}

// ---------------------------------------------------------------- errors with positions

struct Ctx<'a> {
    origin: &'a str,
    source: &'a str,
}

impl Ctx<'_> {
    fn position(&self, offset: usize) -> (usize, usize) {
        if self.source.is_empty() {
            return (0, 0);
        }
        let upto = &self.source[..offset.min(self.source.len())];
        let line = upto.matches('\n').count() + 1;
        let column = upto.rfind('\n').map_or(upto.chars().count(), |nl| upto[nl + 1..].chars().count()) + 1;
        (line, column)
    }

    fn err(&self, span: Option<Range<usize>>, key: &str, message: impl Into<String>) -> ConfigError {
        let (line, column) = span.map_or((0, 0), |s| self.position(s.start));
        ConfigError { origin: self.origin.to_string(), line, column, key: key.to_string(), message: message.into() }
    }
}

// ---------------------------------------------------------------- value checks

/// Parses a Go-style duration: `5m`, `2s`, `1h30m`, `500ms`, `1.5s`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad =
        || format!("invalid duration {s:?}: use a number with a unit, e.g. \"30s\", \"5m\", \"1h30m\", \"500ms\"");
    if s.is_empty() {
        return Err(bad());
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        if num_len == 0 {
            return Err(bad());
        }
        let value: f64 = rest[..num_len].parse().map_err(|_| bad())?;
        rest = &rest[num_len..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let factor = match &rest[..unit_len] {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "d" => 86400.0,
            _ => return Err(bad()),
        };
        total += value * factor;
        rest = &rest[unit_len..];
    }
    if !total.is_finite() || total > 1e9 {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(total))
}

/// Parses `:PORT`, `HOST:PORT` or `[V6]:PORT`.
pub fn parse_listen_address(s: &str) -> Result<ListenAddress, String> {
    let bad = |why: &str| {
        format!("invalid listen address {s:?}: {why} (use \":2553\", \"127.0.0.1:2553\" or \"[::1]:2553\")")
    };
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let close = rest.find(']').ok_or_else(|| bad("missing ']'"))?;
        let host = &rest[..close];
        host.parse::<std::net::Ipv6Addr>().map_err(|_| bad("not an IPv6 address inside []"))?;
        let port = rest[close + 1..].strip_prefix(':').ok_or_else(|| bad("missing :PORT"))?;
        (Some(host.to_string()), port)
    } else {
        let colon = s.rfind(':').ok_or_else(|| bad("missing :PORT"))?;
        let host = &s[..colon];
        if host.contains(':') {
            return Err(bad("IPv6 addresses must be in brackets"));
        }
        if !host.is_empty() && host.parse::<IpAddr>().is_err() && !is_hostname(host) {
            return Err(bad("not an IP address or host name"));
        }
        ((!host.is_empty()).then(|| host.to_string()), &s[colon + 1..])
    };
    let port: u16 = port.parse().map_err(|_| bad("the port is not a number from 0 to 65535"))?;
    Ok(ListenAddress { text: s.to_string(), host, port })
}

fn is_hostname(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.trim_end_matches('.').split('.').all(|l| {
            !l.is_empty() && l.len() <= 63 && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// Normalises and checks a domain name: lowercase, no trailing dot.
pub fn parse_domain(s: &str) -> Result<String, String> {
    let d = s.trim().trim_end_matches('.').to_ascii_lowercase();
    if d.is_empty() || !is_hostname(&d) {
        return Err(format!(
            "invalid domain name {s:?}: labels of letters, digits, '-' or '_', at most 63 characters each"
        ));
    }
    Ok(d)
}

/// `[dns] probe_cache_age` when not configured: a little under the usual one-minute
/// scrape interval, so that each Prometheus server of an HA pair gets one round's
/// result per interval between them.
pub const DEFAULT_PROBE_CACHE_AGE: Duration = Duration::from_secs(55);

/// Parses a `probe_allow` entry: a domain name, or `*.` and a domain name (any
/// name strictly below it). Returned lower-case, without a trailing dot.
pub fn parse_probe_pattern(s: &str) -> Result<String, String> {
    let bad = |e: String| format!("{e}; probe_allow takes names or \"*.suffix\"");
    match s.trim().strip_prefix("*.") {
        Some(suffix) => Ok(format!("*.{}", parse_domain(suffix).map_err(bad)?)),
        None => parse_domain(s).map_err(bad),
    }
}

/// Parses `IP` or `IP:PORT` or `[V6]:PORT` (port 53 when omitted).
pub fn parse_resolver(s: &str) -> Result<SocketAddr, String> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, 53));
    }
    s.parse::<SocketAddr>().map_err(|_| format!("invalid resolver {s:?}: use an IP address with an optional port, e.g. \"9.9.9.9\", \"127.0.0.1:5353\", \"[2620:fe::fe]:53\""))
}

/// Parses `udp://IP:PORT` or `tcp://IP:PORT`.
pub fn parse_syslog_listen(s: &str) -> Result<SyslogListen, String> {
    let bad = || format!("invalid syslog listener {s:?}: use \"udp://IP:PORT\" or \"tcp://IP:PORT\"");
    let (tcp, addr) = if let Some(a) = s.strip_prefix("udp://") {
        (false, a)
    } else if let Some(a) = s.strip_prefix("tcp://") {
        (true, a)
    } else {
        return Err(bad());
    };
    Ok(SyslogListen { tcp, addr: addr.parse().map_err(|_| bad())? })
}

/// A TCP/UDP port; the error is shown after the key, so it does not repeat it.
fn port(v: i64) -> Result<u16, String> {
    u16::try_from(v).ok().filter(|p| *p > 0).ok_or_else(|| format!("must be a port from 1 to 65535, got {v}"))
}

/// This machine's host name, for `default_host = ""`.
pub fn local_hostname() -> String {
    let h = gethostname::gethostname().to_string_lossy().into_owned();
    let short = h.split('.').next().unwrap_or("").to_string();
    if short.is_empty() { "localhost".to_string() } else { short }
}

/// How serde's data errors begin (as opposed to TOML syntax errors).
const SERDE_ERRORS: &[&str] = &["unknown field", "invalid type", "invalid value", "invalid length", "missing field"];

/// The dotted key of the TOML entry at byte `offset`: the table header in force
/// there (`[a.b]`, or `[[a.b]]` as `a.b[i]`) and the key on that line, if any.
fn key_at(source: &str, offset: usize) -> String {
    let offset = offset.min(source.len());
    let mut table = String::new();
    let mut arrays: HashMap<String, usize> = HashMap::new();
    let mut line_start = 0;
    for line in source.split_inclusive('\n') {
        let here = line_start <= offset && offset < line_start + line.len().max(1);
        let t = line.trim();
        let header = if let Some(name) = t.strip_prefix("[[").and_then(|r| r.split("]]").next()) {
            let name = name.trim().to_string();
            let i = arrays.entry(name.clone()).and_modify(|n| *n += 1).or_insert(0);
            Some(format!("{name}[{i}]"))
        } else {
            t.strip_prefix('[').and_then(|r| r.split(']').next()).map(|name| name.trim().to_string())
        };
        if let Some(h) = header {
            table = h;
            if here {
                return table;
            }
        } else if here {
            let key = line.split_once('=').map(|(k, _)| k.trim()).filter(|k| !k.is_empty() && !k.starts_with('#'));
            return match (key, table.is_empty()) {
                (Some(k), true) => k.to_string(),
                (Some(k), false) => format!("{table}.{k}"),
                (None, _) => table,
            };
        }
        line_start += line.len();
    }
    table
}

impl Config {
    /// Reads and validates a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let origin = path.display().to_string();
        let source = std::fs::read_to_string(path).map_err(|e| ConfigError {
            origin: origin.clone(),
            line: 0,
            column: 0,
            key: String::new(),
            message: format!("cannot read the configuration file: {e}"),
        })?;
        Config::parse(&source, &origin)
    }

    /// Parses and validates configuration text; `origin` names it in errors.
    pub fn parse(source: &str, origin: &str) -> Result<Config, ConfigError> {
        let ctx = Ctx { origin, source };
        let raw: RawConfig = toml::from_str(source).map_err(|e| {
            let message = e.message().trim().to_string();
            // serde's errors about a value or key ("unknown field", "invalid type", …)
            // name the key the way every other error does; a syntax error has none
            let key = match e.span() {
                Some(span) if SERDE_ERRORS.iter().any(|p| message.starts_with(p)) => key_at(source, span.start),
                _ => String::new(),
            };
            ctx.err(e.span(), &key, message)
        })?;
        Config::from_raw(raw, origin, source)
    }

    fn from_raw(raw: RawConfig, origin: &str, source: &str) -> Result<Config, ConfigError> {
        let ctx = Ctx { origin, source };
        let sp = |s: &Spanned<String>| Some(s.span());

        // [web]
        let listen_address = match &raw.web.listen_address {
            Some(v) => parse_listen_address(v.get_ref()).map_err(|m| ctx.err(sp(v), "web.listen_address", m))?,
            None => parse_listen_address(DEFAULT_LISTEN).expect("default listen address"),
        };
        let telemetry_path = match &raw.web.telemetry_path {
            Some(v) => check_telemetry_path(v.get_ref()).map_err(|m| ctx.err(sp(v), "web.telemetry_path", m))?,
            None => "/metrics".to_string(),
        };
        let tls = match raw.web.tls {
            Some(t) => {
                let t = t.into_inner();
                for (key, v) in [("web.tls.cert_file", &t.cert_file), ("web.tls.key_file", &t.key_file)] {
                    if v.get_ref().is_empty() {
                        return Err(ctx.err(Some(v.span()), key, "must name a file"));
                    }
                }
                Some(TlsConfig { cert_file: t.cert_file.into_inner(), key_file: t.key_file.into_inner() })
            }
            None => None,
        };
        let mut basic_auth = BTreeMap::new();
        if let Some(auth) = raw.web.basic_auth {
            let users = auth.users;
            if users.get_ref().is_empty() {
                return Err(ctx.err(
                    Some(users.span()),
                    "web.basic_auth.users",
                    "is empty: remove [web.basic_auth] or add a user",
                ));
            }
            for (user, hash) in users.into_inner() {
                let h = hash.get_ref();
                if !(h.starts_with("$2a$") || h.starts_with("$2b$") || h.starts_with("$2y$")) || h.len() != 60 {
                    return Err(ctx.err(
                        Some(hash.span()),
                        &format!("web.basic_auth.users.{user}"),
                        "is not a bcrypt hash (60 characters starting with $2a$, $2b$ or $2y$; make one with `htpasswd -nBC 10 USER`)",
                    ));
                }
                basic_auth.insert(user, hash.into_inner());
            }
        }

        // [maillog]
        let m = raw.maillog;
        let paths_defaulted = m.paths.is_none() && m.journal != Some(true) && m.syslog_listen.is_empty();
        let paths = match m.paths {
            Some(p) => {
                // a /probe replica (probe_allow set) may have no mail log at all
                if p.get_ref().is_empty()
                    && m.journal != Some(true)
                    && m.syslog_listen.is_empty()
                    && raw.dns.probe_allow.is_empty()
                {
                    return Err(ctx.err(
                        Some(p.span()),
                        "maillog.paths",
                        "is empty and no other log source is configured",
                    ));
                }
                let mut seen: HashMap<String, Range<usize>> = HashMap::new();
                let mut out = Vec::new();
                for v in p.into_inner() {
                    if v.get_ref().is_empty() {
                        return Err(ctx.err(sp(&v), "maillog.paths", "contains an empty path"));
                    }
                    if seen.insert(v.get_ref().clone(), v.span()).is_some() {
                        return Err(ctx.err(sp(&v), "maillog.paths", format!("{:?} is listed twice", v.get_ref())));
                    }
                    out.push(v.into_inner());
                }
                out
            }
            None if m.journal == Some(true) || !m.syslog_listen.is_empty() => Vec::new(),
            None => vec![DEFAULT_LOG_PATH.to_string()],
        };
        let start = match &m.start {
            Some(v) => parse_start(v.get_ref()).map_err(|e| ctx.err(sp(v), "maillog.start", e))?,
            None => Start::End,
        };
        let default_host = match &m.default_host {
            Some(v) if !v.get_ref().is_empty() => {
                let h = v.get_ref();
                if h.contains(char::is_whitespace) || h.len() > 255 {
                    return Err(ctx.err(sp(v), "maillog.default_host", "must be a host name without spaces"));
                }
                h.clone()
            }
            _ => local_hostname(),
        };
        let max_hosts = match &m.max_hosts {
            Some(v) => usize::try_from(*v.get_ref()).ok().filter(|n| (1..=100_000).contains(n)).ok_or_else(|| {
                ctx.err(Some(v.span()), "maillog.max_hosts", format!("must be from 1 to 100000, got {}", v.get_ref()))
            })?,
            None => 64,
        };
        let mut local_domains = Vec::new();
        for v in &m.local_domains {
            local_domains.push(parse_domain(v.get_ref()).map_err(|e| ctx.err(sp(v), "maillog.local_domains", e))?);
        }
        let mut syslog_listen = Vec::new();
        for v in &m.syslog_listen {
            syslog_listen
                .push(parse_syslog_listen(v.get_ref()).map_err(|e| ctx.err(sp(v), "maillog.syslog_listen", e))?);
        }
        let state_file = match &m.state_file {
            Some(v) => Some(parse_state_file(v.get_ref()).map_err(|e| ctx.err(sp(v), "maillog.state_file", e))?),
            None => None,
        };
        let syslog_max_connections = match &m.syslog_max_connections {
            Some(v) => usize::try_from(*v.get_ref()).ok().filter(|n| (1..=1_000_000).contains(n)).ok_or_else(|| {
                ctx.err(
                    Some(v.span()),
                    "maillog.syslog_max_connections",
                    format!("must be from 1 to 1000000, got {}", v.get_ref()),
                )
            })?,
            None => DEFAULT_SYSLOG_MAX_CONNECTIONS,
        };

        // [dns]
        let d = raw.dns;
        let dur =
            |v: &Option<Spanned<String>>, key: &str, default: &str, min: Duration| -> Result<Duration, ConfigError> {
                match v {
                    Some(v) => {
                        let x = parse_duration(v.get_ref()).map_err(|e| ctx.err(sp(v), key, e))?;
                        if x < min {
                            return Err(ctx.err(sp(v), key, format!("must be at least {}", fmt_duration(min))));
                        }
                        Ok(x)
                    }
                    None => Ok(parse_duration(default).expect("default duration")),
                }
            };
        let interval = dur(&d.interval, "dns.interval", "5m", Duration::from_secs(1))?;
        let timeout = dur(&d.timeout, "dns.timeout", "2s", Duration::from_millis(10))?;
        let dnssec_expiry_warning =
            dur(&d.dnssec_expiry_warning, "dns.dnssec_expiry_warning", "7d", Duration::from_secs(60))?;
        if let Some(t) = &d.timeout
            && timeout >= interval
        {
            return Err(ctx.err(sp(t), "dns.timeout", "must be shorter than dns.interval"));
        }
        let concurrency = match &d.concurrency {
            Some(v) => usize::try_from(*v.get_ref()).ok().filter(|n| (1..=4096).contains(n)).ok_or_else(|| {
                ctx.err(Some(v.span()), "dns.concurrency", format!("must be from 1 to 4096, got {}", v.get_ref()))
            })?,
            None => 32,
        };
        let mut resolvers = Vec::new();
        for v in &d.resolvers {
            resolvers.push(parse_resolver(v.get_ref()).map_err(|e| ctx.err(sp(v), "dns.resolvers", e))?);
        }
        let dns_port = match &d.port {
            Some(v) => port(*v.get_ref()).map_err(|e| ctx.err(Some(v.span()), "dns.port", e))?,
            None => 53,
        };
        let smtp_probe_port = match &d.smtp_probe_port {
            Some(v) => port(*v.get_ref()).map_err(|e| ctx.err(Some(v.span()), "dns.smtp_probe_port", e))?,
            None => 25,
        };
        let ca_file = match &d.ca_file {
            Some(v) if !v.get_ref().is_empty() => {
                crate::dns::tls_client::client_config(Some(std::path::Path::new(v.get_ref())))
                    .map_err(|e| ctx.err(sp(v), "dns.ca_file", e))?;
                Some(v.get_ref().clone())
            }
            _ => None,
        };
        let certificate_expiry_warning =
            dur(&d.certificate_expiry_warning, "dns.certificate_expiry_warning", "14d", Duration::ZERO)?;
        let mut probe_allow = Vec::new();
        for v in &d.probe_allow {
            probe_allow.push(parse_probe_pattern(v.get_ref()).map_err(|e| ctx.err(sp(v), "dns.probe_allow", e))?);
        }
        let probe_cache_age = match &d.probe_cache_age {
            Some(v) => parse_duration(v.get_ref()).map_err(|e| ctx.err(sp(v), "dns.probe_cache_age", e))?,
            None => DEFAULT_PROBE_CACHE_AGE,
        };
        let max_qps_per_server = match &d.max_qps_per_server {
            Some(v) => u32::try_from(*v.get_ref()).ok().filter(|n| (1..=100_000).contains(n)).ok_or_else(|| {
                ctx.err(
                    Some(v.span()),
                    "dns.max_qps_per_server",
                    format!("must be from 1 to 100000, got {}", v.get_ref()),
                )
            })?,
            None => 50,
        };
        let mut domains: Vec<DomainConfig> = Vec::new();
        // byte offsets; the line and column are worked out only for an error (doing it
        // for every domain made 50,000 domains take minutes)
        let mut seen: HashMap<String, usize> = HashMap::new();
        for (i, entry) in d.domain.into_iter().enumerate() {
            let raw = entry.into_inner();
            let key = format!("dns.domain[{i}]");
            let name =
                parse_domain(raw.name.get_ref()).map_err(|e| ctx.err(sp(&raw.name), &format!("{key}.name"), e))?;
            if let Some(&first) = seen.get(&name) {
                let (l, c) = ctx.position(first);
                return Err(ctx.err(
                    sp(&raw.name),
                    &format!("{key}.name"),
                    format!("duplicate domain {name:?}, first configured at line {l} column {c}"),
                ));
            }
            seen.insert(name.clone(), raw.name.span().start);
            let mut dkim_selectors = Vec::new();
            for s in &raw.dkim_selectors {
                let sel = s.get_ref();
                if !is_hostname(sel) {
                    return Err(ctx.err(
                        sp(s),
                        &format!("{key}.dkim_selectors"),
                        format!("invalid DKIM selector {sel:?}"),
                    ));
                }
                dkim_selectors.push(sel.to_ascii_lowercase());
            }
            let expected_mx = match raw.expected_mx {
                Some(list) => {
                    let mut out = Vec::new();
                    for v in &list {
                        out.push(
                            parse_domain(v.get_ref()).map_err(|e| ctx.err(sp(v), &format!("{key}.expected_mx"), e))?,
                        );
                    }
                    out.sort();
                    Some(out)
                }
                None => None,
            };
            domains.push(DomainConfig {
                name,
                dkim_selectors,
                expected_mx,
                smtp_probe: raw.smtp_probe,
                starttls_probe: raw.starttls_probe,
            });
        }

        Ok(Config {
            web: WebConfig { listen_address, telemetry_path, tls, basic_auth },
            maillog: MaillogConfig {
                paths,
                start,
                default_host,
                max_hosts,
                local_domains,
                journal: m.journal.unwrap_or(false),
                syslog_listen,
                state_file,
                syslog_max_connections,
                paths_defaulted,
            },
            dns: DnsConfig {
                interval,
                timeout,
                concurrency,
                resolvers,
                port: dns_port,
                smtp_probe_port,
                dnssec_expiry_warning,
                ca_file,
                certificate_expiry_warning,
                domains,
                probe_allow,
                probe_cache_age,
                max_qps_per_server,
            },
        })
    }

    /// The domains whose relay-denied rejects are misroutes: monitored and local.
    pub fn misroute_domains(&self) -> Vec<String> {
        let mut v: Vec<String> = self.dns.domains.iter().map(|d| d.name.clone()).collect();
        v.extend(self.maillog.local_domains.iter().cloned());
        v.sort();
        v.dedup();
        v
    }
}

fn check_telemetry_path(p: &str) -> Result<String, String> {
    let reserved = ["/", "/-/healthy", "/-/ready", "/-/reload", "/api/v1/status"];
    if !p.starts_with('/') || p.len() < 2 || p.contains(char::is_whitespace) {
        return Err(format!("invalid telemetry path {p:?}: must start with '/' and name a path"));
    }
    if reserved.contains(&p) {
        return Err(format!("telemetry path {p:?} is already used by another endpoint"));
    }
    Ok(p.to_string())
}

/// A state file path: not empty, and not a directory name.
pub fn parse_state_file(s: &str) -> Result<String, String> {
    if s.is_empty() || s.ends_with('/') {
        return Err(format!("must name a file, got {s:?}"));
    }
    Ok(s.to_string())
}

pub fn parse_start(s: &str) -> Result<Start, String> {
    match s {
        "end" => Ok(Start::End),
        "beginning" => Ok(Start::Beginning),
        _ => Err(format!("must be \"end\" or \"beginning\", got {s:?}")),
    }
}

fn fmt_duration(d: Duration) -> String {
    if !d.as_millis().is_multiple_of(1000) { format!("{}ms", d.as_millis()) } else { format!("{}s", d.as_secs()) }
}

/// Command-line settings that override the file (SPEC §2).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub listen_address: Option<String>,
    pub telemetry_path: Option<String>,
    pub maillog_paths: Vec<String>,
    pub maillog_start: Option<String>,
    pub maillog_journal: bool,
    pub maillog_state_file: Option<String>,
    pub dns_domains: Vec<String>,
    pub dns_resolvers: Vec<String>,
    pub dns_interval: Option<String>,
}

impl Config {
    /// Applies command-line overrides; list flags replace the file's lists.
    pub fn apply(&mut self, o: &Overrides) -> Result<(), ConfigError> {
        let err = |flag: &str, message: String| ConfigError {
            origin: "command line".to_string(),
            line: 0,
            column: 0,
            key: flag.to_string(),
            message,
        };
        if let Some(a) = &o.listen_address {
            self.web.listen_address = parse_listen_address(a).map_err(|m| err("--web.listen-address", m))?;
        }
        if let Some(p) = &o.telemetry_path {
            self.web.telemetry_path = check_telemetry_path(p).map_err(|m| err("--web.telemetry-path", m))?;
        }
        if !o.maillog_paths.is_empty() {
            self.maillog.paths = o.maillog_paths.clone();
        }
        if let Some(s) = &o.maillog_start {
            self.maillog.start = parse_start(s).map_err(|m| err("--maillog.start", m))?;
        }
        if let Some(s) = &o.maillog_state_file {
            self.maillog.state_file = Some(parse_state_file(s).map_err(|m| err("--maillog.state-file", m))?);
        }
        if o.maillog_journal {
            self.maillog.journal = true;
            // the journal replaces the default file; configured files stay
            if self.maillog.paths_defaulted && o.maillog_paths.is_empty() {
                self.maillog.paths.clear();
            }
        }
        if !o.dns_domains.is_empty() {
            let mut domains = Vec::new();
            for d in &o.dns_domains {
                let name = parse_domain(d).map_err(|m| err("--dns.domain", m))?;
                if domains.iter().any(|x: &DomainConfig| x.name == name) {
                    return Err(err("--dns.domain", format!("duplicate domain {name:?}")));
                }
                // keep per-domain settings of the file for domains named again
                let from_file = self.dns.domains.iter().find(|x| x.name == name).cloned();
                domains.push(from_file.unwrap_or(DomainConfig {
                    name,
                    dkim_selectors: Vec::new(),
                    expected_mx: None,
                    smtp_probe: false,
                    starttls_probe: false,
                }));
            }
            self.dns.domains = domains;
        }
        if !o.dns_resolvers.is_empty() {
            let mut r = Vec::new();
            for s in &o.dns_resolvers {
                r.push(parse_resolver(s).map_err(|m| err("--dns.resolver", m))?);
            }
            self.dns.resolvers = r;
        }
        if let Some(i) = &o.dns_interval {
            let d = parse_duration(i).map_err(|m| err("--dns.interval", m))?;
            if d < Duration::from_secs(1) || d <= self.dns.timeout {
                return Err(err("--dns.interval", "must be at least 1s and longer than dns.timeout".to_string()));
            }
            self.dns.interval = d;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        for bad in ["", "5", "m", "5x", "-1s", "1..2s", "5 m"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn listen_addresses() {
        let a = parse_listen_address(":2553").unwrap();
        assert_eq!((a.host, a.port), (None, 2553));
        let a = parse_listen_address("[::1]:9").unwrap();
        assert_eq!((a.host.as_deref(), a.port), (Some("::1"), 9));
        assert_eq!(parse_listen_address("localhost:80").unwrap().host.as_deref(), Some("localhost"));
        for bad in ["2553", ":99999", "::1:80", "[::1]", "bad host:1", ":x"] {
            assert!(parse_listen_address(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn resolvers() {
        assert_eq!(parse_resolver("9.9.9.9").unwrap().to_string(), "9.9.9.9:53");
        assert_eq!(parse_resolver("127.0.0.1:5353").unwrap().to_string(), "127.0.0.1:5353");
        assert_eq!(parse_resolver("::1").unwrap().to_string(), "[::1]:53");
        assert!(parse_resolver("dns.google").is_err());
    }

    #[test]
    fn serde_errors_name_the_key() {
        let e = Config::parse("[maillog]\nmax_hosts = \"64\"\n", "c.toml").unwrap_err();
        assert_eq!(e.to_string(), "c.toml:2:13: maillog.max_hosts: invalid type: string \"64\", expected i64");
        let e = Config::parse("[maillog]\npaths = []\nmax_host = 1\n", "c.toml").unwrap_err();
        assert_eq!((e.key.as_str(), e.line, e.column), ("maillog.max_host", 3, 1));
        let e =
            Config::parse("[[dns.domain]]\nname = \"a.example\"\n[[dns.domain]]\nname = \"b.example\"\nmx = 1\n", "c")
                .unwrap_err();
        assert_eq!(e.key, "dns.domain[1].mx");
        let e = Config::parse("[dsn]\ninterval = \"5m\"\n", "c").unwrap_err();
        assert_eq!(e.key, "dsn");
        let e = Config::parse("[[dns.domain]]\ndkim_selectors = []\n", "c").unwrap_err();
        assert!(e.message.starts_with("missing field `name`"), "{e}");
        assert_eq!(e.key, "dns.domain[0]");
        // the key is named once
        let e = Config::parse("[dns]\nport = 0\n", "c.toml").unwrap_err();
        assert_eq!(e.to_string(), "c.toml:2:8: dns.port: must be a port from 1 to 65535, got 0");
        // a syntax error names no key: the position is where the parser stopped
        let e = Config::parse("[maillog]\npaths = [\"a\"\nstart = \"end\"\n", "c").unwrap_err();
        assert_eq!(e.key, "");
        assert_eq!(e.line, 3);
    }

    #[test]
    fn defaults() {
        let c = Config::parse("", "empty").unwrap();
        assert_eq!(c.maillog.paths, vec![DEFAULT_LOG_PATH]);
        assert_eq!(c.web.listen_address.port, 2553);
        assert_eq!(c.dns.interval, Duration::from_secs(300));
        assert_eq!(c.dns.dnssec_expiry_warning, Duration::from_secs(7 * 86400));
        let w = Config::parse("[dns]\ndnssec_expiry_warning = \"3d12h\"\n", "c").expect("valid");
        assert_eq!(w.dns.dnssec_expiry_warning, Duration::from_secs(3 * 86400 + 12 * 3600));
        assert_eq!(c.dns.port, 53);
        assert_eq!(c.maillog.max_hosts, 64);
        assert!(!c.maillog.default_host.is_empty());
    }

    #[test]
    fn state_file_and_syslog_max_connections() {
        let c = Config::parse("", "empty").unwrap();
        assert_eq!((c.maillog.state_file.as_deref(), c.maillog.syslog_max_connections), (None, 10_000));
        let c = Config::parse("[maillog]\nstate_file = \"/var/lib/m/state\"\nsyslog_max_connections = 3\n", "c.toml")
            .unwrap();
        assert_eq!((c.maillog.state_file.as_deref(), c.maillog.syslog_max_connections), (Some("/var/lib/m/state"), 3));
        let e = Config::parse("[maillog]\nsyslog_max_connections = 0\n", "c.toml").unwrap_err();
        assert_eq!((e.key.as_str(), e.line), ("maillog.syslog_max_connections", 2));
        let e = Config::parse("[maillog]\nstate_file = \"\"\n", "c.toml").unwrap_err();
        assert_eq!(e.key, "maillog.state_file");
        let e = Config::parse("[maillog]\nstate_file = \"/var/lib/m/\"\n", "c.toml").unwrap_err();
        assert_eq!(e.key, "maillog.state_file");
        let mut c = Config::parse("", "empty").unwrap();
        c.apply(&Overrides { maillog_state_file: Some("/tmp/s".into()), ..Overrides::default() }).unwrap();
        assert_eq!(c.maillog.state_file.as_deref(), Some("/tmp/s"));
        let e = c.apply(&Overrides { maillog_state_file: Some(String::new()), ..Overrides::default() }).unwrap_err();
        assert_eq!(e.key, "--maillog.state-file");
    }

    #[test]
    fn journal_flag_replaces_only_the_default_path() {
        let mut c = Config::parse("", "t").unwrap();
        c.apply(&Overrides { maillog_journal: true, ..Overrides::default() }).unwrap();
        assert!(c.maillog.journal && c.maillog.paths.is_empty());
        let mut c = Config::parse("[maillog]\npaths = [\"/var/log/maillog\"]\n", "t").unwrap();
        c.apply(&Overrides { maillog_journal: true, ..Overrides::default() }).unwrap();
        assert_eq!(c.maillog.paths, vec!["/var/log/maillog"]);
    }

    #[test]
    fn overrides_replace_lists() {
        let mut c = Config::parse("[[dns.domain]]\nname = \"a.example\"\ndkim_selectors = [\"s1\"]\n", "t").unwrap();
        c.apply(&Overrides {
            dns_domains: vec!["A.example.".into(), "b.example".into()],
            maillog_paths: vec!["-".into()],
            ..Overrides::default()
        })
        .unwrap();
        assert_eq!(c.dns.domains.len(), 2);
        assert_eq!(c.dns.domains[0].dkim_selectors, vec!["s1"]);
        assert_eq!(c.maillog.paths, vec!["-"]);
        let e = c.apply(&Overrides { dns_resolvers: vec!["nope".into()], ..Overrides::default() }).unwrap_err();
        assert_eq!(e.key, "--dns.resolver");
    }
}
