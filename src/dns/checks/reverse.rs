//! Reverse DNS of the mail hosts: every address mail for the domain is delivered
//! to (the MX exchanges' addresses, or the apex addresses when there is no MX) has
//! a PTR record whose name resolves back to that address ("forward-confirmed"
//! reverse DNS, RFC 1912 §2.1). Mail hosts usually send too, and many receivers
//! refuse or mark mail from hosts without it. Looked up through the resolvers.

use std::net::IpAddr;

use super::{Verdict, verdict};
use crate::config::DomainConfig;
use crate::dns::snapshot::{Lookup, Snapshot, list, reverse_name, void_text};

/// The host names mail reaches an address by, for messages.
fn hosts_of(s: &Snapshot, a: IpAddr) -> String {
    let names: Vec<&String> = s.mx_hosts.iter().filter(|(_, h)| h.addresses.contains(&a)).map(|(n, _)| n).collect();
    if names.is_empty() { format!("apex of {}", s.domain) } else { list(names) }
}

/// `mx_reverse_dns_mismatch`: a mail host address has no PTR, or no PTR name that
/// resolves back to it. Not evaluated when a lookup failed and nothing is wrong
/// elsewhere.
pub fn mx_reverse_dns_mismatch(s: &Snapshot, _: &DomainConfig) -> Option<Verdict> {
    let addresses = s.mail_addresses();
    if addresses.is_empty() {
        return None;
    }
    let mut bad: Vec<String> = Vec::new();
    let mut good: Vec<String> = Vec::new();
    let mut unknown = false;
    for a in addresses {
        let Some(r) = s.policy.reverse.get(&a) else {
            unknown = true;
            continue;
        };
        let who = format!("{a} ({})", hosts_of(s, a));
        match &r.ptr {
            Lookup::Found(names) => {
                if let Some(n) = names.iter().find(|n| r.forward.get(*n).is_some_and(|h| h.addresses.contains(&a))) {
                    good.push(format!("{a} ↔ {n}"));
                    continue;
                }
                let why: Vec<String> = names
                    .iter()
                    .map(|n| match r.forward.get(n) {
                        None => format!("PTR {n} (not looked up)"),
                        Some(h) if h.addresses.is_empty() => match (&h.error, h.nxdomain) {
                            (_, true) => format!("PTR {n} does not exist (NXDOMAIN)"),
                            (Some(e), _) => format!("PTR {n} cannot be resolved: {e}"),
                            (None, false) => format!("PTR {n} has no A or AAAA record"),
                        },
                        Some(h) => format!("PTR {n} resolves to {}, not back to {a}", list(h.addresses.iter())),
                    })
                    .collect();
                // a PTR name whose lookup failed might have resolved back
                if names.iter().any(|n| r.forward.get(n).is_some_and(|h| h.addresses.is_empty() && h.error.is_some())) {
                    unknown = true;
                    continue;
                }
                bad.push(format!("{who}: {}", why.join("; ")));
            }
            Lookup::Void { nxdomain } => {
                bad.push(format!("{who} has no PTR record ({} at {})", void_text(*nxdomain), reverse_name(a)))
            }
            Lookup::Failed(_) => unknown = true,
        }
    }
    if bad.is_empty() && unknown {
        return None;
    }
    Some(verdict(
        !bad.is_empty(),
        || {
            format!(
                "{}; receivers that check that a sending host's PTR resolves back to it may refuse or mark its mail",
                bad.join("; ")
            )
        },
        || format!("every mail host address has a PTR that resolves back: {}", good.join(", ")),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::checks::fixtures::{cfg, good, ip};
    use crate::dns::snapshot::{HostLookup, ReverseLookup};

    #[test]
    fn good_passes() {
        let v = mx_reverse_dns_mismatch(&good(), &cfg()).unwrap();
        assert_eq!(
            v,
            Verdict::Pass("every mail host address has a PTR that resolves back: 192.0.2.10 ↔ mx.example.test".into())
        );
    }

    #[test]
    fn no_ptr_and_wrong_ptr() {
        let mut s = good();
        s.policy.reverse.insert(
            ip("192.0.2.10"),
            ReverseLookup { ptr: Lookup::Void { nxdomain: true }, forward: Default::default() },
        );
        let v = mx_reverse_dns_mismatch(&s, &cfg()).unwrap();
        assert_eq!(
            v.message(),
            "192.0.2.10 (mx.example.test) has no PTR record (NXDOMAIN at 10.2.0.192.in-addr.arpa); receivers that check that a sending host's PTR resolves back to it may refuse or mark its mail"
        );
        s.policy.reverse.insert(
            ip("192.0.2.10"),
            ReverseLookup {
                ptr: Lookup::Found(vec!["elsewhere.example.test".into()]),
                forward: [(
                    "elsewhere.example.test".to_string(),
                    HostLookup { addresses: [ip("192.0.2.11")].into(), ..Default::default() },
                )]
                .into(),
            },
        );
        let v = mx_reverse_dns_mismatch(&s, &cfg()).unwrap();
        assert!(v.failed() && v.message().starts_with("192.0.2.10 (mx.example.test): PTR elsewhere.example.test resolves to 192.0.2.11, not back to 192.0.2.10"), "{v:?}");
    }

    #[test]
    fn failed_lookups_are_not_judged() {
        let mut s = good();
        s.policy.reverse.insert(
            ip("192.0.2.10"),
            ReverseLookup { ptr: Lookup::Failed("timeout".into()), forward: Default::default() },
        );
        assert!(mx_reverse_dns_mismatch(&s, &cfg()).is_none());
    }

    #[test]
    fn implicit_mx_is_the_apex() {
        let mut s = good();
        for x in &mut s.servers {
            x.mx = Some(Default::default());
        }
        s.mx_hosts.clear();
        // the apex 192.0.2.10 is the implicit MX; its reverse lookup is in the fixture
        let v = mx_reverse_dns_mismatch(&s, &cfg()).unwrap();
        assert!(!v.failed(), "{v:?}");
        s.policy.reverse.clear();
        assert!(mx_reverse_dns_mismatch(&s, &cfg()).is_none());
    }
}
