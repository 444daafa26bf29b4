//! mailroute_exporter: a Prometheus exporter that watches both halves of mail
//! routing — the MTAs' reject logs and the DNS of the domains you run.
//!
//! The binary (`src/main.rs`) only parses arguments and calls into this library:
//!
//! - [`maillog`]: tail Sendmail, Postfix and Exim logs and classify every reject;
//! - [`dns`]: ask every authoritative server of each domain and evaluate the checks;
//! - [`metrics`]: every metric, defined once;
//! - [`http`]: `/metrics`, the status page and the health endpoints;
//! - [`config`], [`cli`]: the TOML file and the command line;
//! - [`serve`], [`replay`], [`check`]: the subcommands.

pub mod check;
pub mod cli;
pub mod config;
pub mod dns;
pub mod html;
pub mod http;
pub mod logging;
pub mod maillog;
pub mod metrics;
pub mod process;
pub mod replay;
pub mod serve;
pub mod status;
pub mod web;
