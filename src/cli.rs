//! The command line (SPEC §2), in the Prometheus exporters' dotted flag style.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::Overrides;

#[derive(Debug, Parser)]
#[command(
    name = "mailroute_exporter",
    version,
    about = "Prometheus exporter for mail routing: MTA rejects and misroutes from the logs, and the DNS of your mail domains",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// `serve` flags, accepted without the subcommand name too.
    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the exporter (the default).
    Serve(ServeArgs),
    /// Run one DNS round and print the answers and failing checks.
    Check(CheckArgs),
    /// Read log files once and print the counters the exporter would export.
    Replay(ReplayArgs),
    /// Parse and validate a configuration file.
    ValidateConfig {
        /// The configuration file.
        path: PathBuf,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum LogLevel {
    Error,
    Warn,
    #[default]
    Info,
    Debug,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum LogFormat {
    #[default]
    Logfmt,
    Json,
}

#[derive(Debug, Clone, Args, Default)]
pub struct LogArgs {
    /// Only log messages with the given severity or above.
    #[arg(long = "log.level", value_enum, default_value_t = LogLevel::Info, global = true)]
    pub level: LogLevel,
    /// Output format of log messages.
    #[arg(long = "log.format", value_enum, default_value_t = LogFormat::Logfmt, global = true)]
    pub format: LogFormat,
}

#[derive(Debug, Clone, Args, Default)]
pub struct ServeArgs {
    /// Configuration file (TOML).
    #[arg(long = "config.file", value_name = "PATH")]
    pub config_file: Option<PathBuf>,
    /// Address to listen on for HTTP.
    #[arg(long = "web.listen-address", value_name = "ADDR")]
    pub listen_address: Option<String>,
    /// Path under which to expose metrics.
    #[arg(long = "web.telemetry-path", value_name = "PATH")]
    pub telemetry_path: Option<String>,
    /// Log file to tail ("-" for standard input); repeat for several.
    #[arg(long = "maillog.path", value_name = "PATH")]
    pub maillog_path: Vec<String>,
    /// Where to start in files that exist at startup: end or beginning.
    #[arg(long = "maillog.start", value_name = "end|beginning")]
    pub maillog_start: Option<String>,
    /// Follow the systemd journal for the MTA units.
    #[arg(long = "maillog.journal")]
    pub maillog_journal: bool,
    /// File where log positions and counters survive restarts.
    #[arg(long = "maillog.state-file", value_name = "PATH")]
    pub maillog_state_file: Option<String>,
    /// Domain to monitor; repeat for several (replaces the configured list).
    #[arg(long = "dns.domain", value_name = "NAME")]
    pub dns_domain: Vec<String>,
    /// Recursive resolver for discovery, IP[:PORT]; repeat for several.
    #[arg(long = "dns.resolver", value_name = "IP[:PORT]")]
    pub dns_resolver: Vec<String>,
    /// Time between DNS rounds, e.g. 5m.
    #[arg(long = "dns.interval", value_name = "DURATION")]
    pub dns_interval: Option<String>,
    #[command(flatten)]
    pub log: LogArgs,
}

impl ServeArgs {
    pub fn overrides(&self) -> Overrides {
        Overrides {
            listen_address: self.listen_address.clone(),
            telemetry_path: self.telemetry_path.clone(),
            maillog_paths: self.maillog_path.clone(),
            maillog_start: self.maillog_start.clone(),
            maillog_journal: self.maillog_journal,
            maillog_state_file: self.maillog_state_file.clone(),
            dns_domains: self.dns_domain.clone(),
            dns_resolvers: self.dns_resolver.clone(),
            dns_interval: self.dns_interval.clone(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum CheckOutput {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, Args)]
pub struct CheckArgs {
    /// Configuration file (TOML).
    #[arg(long = "config.file", value_name = "PATH")]
    pub config_file: Option<PathBuf>,
    /// Recursive resolver for discovery, IP[:PORT]; repeat for several.
    #[arg(long = "dns.resolver", value_name = "IP[:PORT]")]
    pub dns_resolver: Vec<String>,
    /// Output format.
    #[arg(long = "output", value_enum, default_value_t = CheckOutput::Text)]
    pub output: CheckOutput,
    /// Domains to check (default: the configured ones).
    #[arg(value_name = "DOMAIN")]
    pub domains: Vec<String>,
    #[command(flatten)]
    pub log: LogArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum ReplayOutput {
    #[default]
    Text,
    Openmetrics,
    Json,
}

#[derive(Debug, Clone, Args)]
pub struct ReplayArgs {
    /// Configuration file (TOML): domains, local domains, max_hosts, default_host.
    #[arg(long = "config.file", value_name = "PATH")]
    pub config_file: Option<PathBuf>,
    /// Output format.
    #[arg(long = "output", value_enum, default_value_t = ReplayOutput::Text)]
    pub output: ReplayOutput,
    /// Domain whose relay-denied rejects are misroutes; repeat for several.
    #[arg(long = "dns.domain", value_name = "NAME")]
    pub dns_domain: Vec<String>,
    /// Log files to read ("-" for standard input).
    #[arg(value_name = "FILE", required = true)]
    pub files: Vec<String>,
    #[command(flatten)]
    pub log: LogArgs,
}
