//! The DNS half: ask every authoritative server of each monitored domain directly,
//! keep what they said in a [`snapshot::Snapshot`], and evaluate the check catalogue
//! over it.
//!
//! - [`probe`]: one query to one server (RD=0, EDNS, TCP on truncation, timeout);
//! - [`round`]: discovery through the resolvers and the per-server questions;
//! - [`snapshot`]: the plain data a round produces;
//! - [`checks`]: one pure function per check, grouped by subject;
//! - [`state`]: the latest results, the scheduler, and their metrics.

pub mod checks;
pub mod probe;
pub mod round;
pub mod snapshot;
pub mod state;

pub use state::DnsState;

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
/// the mail policy checks (empty until those checks exist).
pub fn policy_txt_names() -> Vec<String> {
    Vec::new()
}

#[cfg(test)]
mod tests {
    #[test]
    fn resolv_conf() {
        let r = super::parse_resolv_conf(
            "# x\nnameserver 127.0.0.53\nsearch lan\nnameserver fe80::1%eth0\nnameserver bad\n",
        );
        assert_eq!(r.iter().map(|a| a.to_string()).collect::<Vec<_>>(), vec!["127.0.0.53:53", "[fe80::1]:53"]);
    }
}
