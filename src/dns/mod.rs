//! The DNS half: ask every authoritative server of each monitored domain directly,
//! keep what they said in a [`snapshot::Snapshot`], and evaluate the check catalogue
//! over it.
//!
//! - [`probe`]: one query to one server (RD=0, EDNS, TCP on truncation, timeout);
//! - [`recursive`]: lookups through the recursive resolvers (hickory-resolver);
//! - [`round`]: discovery and the per-server questions;
//! - [`snapshot`]: the plain data a round produces;
//! - [`policy`]: what the mail policy checks need beyond the servers' answers;
//! - [`records`]: parsers for SPF, DMARC, DKIM, MTA-STS and TLS-RPT records;
//! - [`checks`]: one pure function per check, grouped by subject;
//! - [`sts_fetch`]: the MTA-STS policy fetch over HTTPS, and its cache;
//! - [`dane`]: TLSA records matched against the chain an MX presented;
//! - [`starttls`]: the opt-in STARTTLS probe of the MX addresses;
//! - [`x509`]: the validity and key of a DER certificate;
//! - [`tls_client`]: the rustls client configuration (Mozilla roots plus `ca_file`);
//! - [`state`]: the latest results, the scheduler, and their metrics.
//!
//! Imports go one way: `state` → `round` → `policy` → `checks`, `recursive`,
//! `probe`, `records` → `snapshot`; the checks read only the snapshot.

pub mod checks;
pub mod dane;
pub mod dnssec;
pub mod dnssec_round;
pub mod policy;
pub mod probe;
pub mod records;
pub mod recursive;
pub mod round;
pub mod snapshot;
pub mod starttls;
pub mod state;
pub mod sts_fetch;
pub mod tls_client;
pub mod x509;

pub mod targets;
#[cfg(test)]
pub(crate) mod test_pki;

pub use state::DnsState;

use crate::config;

/// The resolvers of `/etc/resolv.conf` (`nameserver` lines), port 53.
pub fn system_resolvers() -> Vec<std::net::SocketAddr> {
    let text = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    parse_resolv_conf(&text)
}

/// Reads `nameserver` lines; an IPv6 zone suffix (`%eth0`) is dropped.
pub fn parse_resolv_conf(text: &str) -> Vec<std::net::SocketAddr> {
    text.lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            (words.next() == Some("nameserver")).then(|| words.next()).flatten()
        })
        .filter_map(|a| a.split('%').next()?.parse::<std::net::IpAddr>().ok())
        .map(|ip| std::net::SocketAddr::new(ip, 53))
        .collect()
}

/// TXT names every authoritative server is asked for, relative to the domain, for
/// the mail policy checks: the domain itself (SPF), `_dmarc` (RFC 7489 §6.1),
/// `_mta-sts` (RFC 8461 §3.1) and `_smtp._tls` (RFC 8460 §3).
pub fn policy_txt_names() -> Vec<String> {
    ["", "_dmarc", "_mta-sts", "_smtp._tls"].map(str::to_string).to_vec()
}

/// The TXT names a round asks every server of one domain for, relative to the
/// domain: the policy names and `<selector>._domainkey` for each of the domain's
/// DKIM selectors (RFC 6376 §3.6.2.1), without repeats.
pub fn domain_txt_names(config: &config::DomainConfig) -> Vec<String> {
    let mut names = policy_txt_names();
    let selectors = config.dkim_selectors.iter().map(|s| format!("{}._domainkey", s.to_ascii_lowercase()));
    for n in selectors {
        if !names.contains(&n) {
            names.push(n);
        }
    }
    names
}

#[cfg(test)]
mod tests {
    #[test]
    fn txt_names_per_domain() {
        let d = super::config::DomainConfig {
            name: "example.test".into(),
            dkim_selectors: vec!["default".into(), "S2".into()],
            expected_mx: None,
            smtp_probe: false,
            starttls_probe: false,
        };
        assert_eq!(
            super::domain_txt_names(&d),
            vec!["", "_dmarc", "_mta-sts", "_smtp._tls", "default._domainkey", "s2._domainkey"]
        );
    }

    #[test]
    fn resolv_conf() {
        let r = super::parse_resolv_conf(
            "# x\nnameserver 127.0.0.53\nsearch lan\nnameserver fe80::1%eth0\nnameserver bad\n",
        );
        assert_eq!(r.iter().map(|a| a.to_string()).collect::<Vec<_>>(), vec!["127.0.0.53:53", "[fe80::1]:53"]);
    }
}
