//! Apex checks: the incident of SPEC §1. Senders that fall back to the apex A/AAAA
//! record (against RFC 5321 §5.1, which uses the apex only when there is no MX)
//! deliver to whatever host the apex names; when that host is not an MX, mail for
//! the domain lands on a machine that answers "Relaying denied".

use std::collections::BTreeSet;
use std::net::IpAddr;

use super::{Verdict, left_out, verdict};
use crate::config::DomainConfig;
use crate::dns::snapshot::{Snapshot, list};

/// The apex addresses that no MX exchange has (empty when there is nothing to say).
pub fn apex_not_mx(s: &Snapshot) -> BTreeSet<IpAddr> {
    let mx = s.mx_addresses();
    s.apex_union().into_iter().filter(|a| !mx.contains(a)).collect()
}

/// `apex_mx_mismatch`: the apex has A/AAAA addresses that are no MX exchange's
/// address. Evaluated only when the domain has a non-null MX that resolves.
pub fn apex_mx_mismatch(s: &Snapshot, _: &DomainConfig) -> Option<Verdict> {
    if !s.up().any(|x| x.apex.is_some()) || s.mx_addresses().is_empty() {
        return None;
    }
    let stray = apex_not_mx(s);
    Some(verdict(
        !stray.is_empty(),
        || {
            let hosts: Vec<String> =
                s.mx_hosts.iter().map(|(name, h)| format!("{name} = {}", list(h.addresses.iter()))).collect();
            format!(
                "{} has apex address {} that no MX host has (MX hosts: {}); senders that fall back to the apex A record deliver there",
                s.domain,
                list(stray.iter()),
                hosts.join(", ")
            )
        },
        || {
            let apex = s.apex_union();
            if apex.is_empty() {
                format!("{} has no apex address", s.domain)
            } else {
                format!("every apex address ({}) is an MX host's", list(apex.iter()))
            }
        },
    ))
}

/// `apex_address_mismatch`: the authoritative servers serve different apex A/AAAA.
pub fn apex_address_mismatch(s: &Snapshot, _: &DomainConfig) -> Option<Verdict> {
    let answers: Vec<_> = s.up().filter_map(|x| x.apex.as_ref().map(|a| (x, a))).collect();
    if answers.len() < 2 {
        return None;
    }
    let differ = answers.iter().any(|(_, a)| *a != answers[0].1);
    let out = left_out(s, "A", |x| x.apex.is_some());
    Some(verdict(
        differ,
        || {
            format!(
                "servers disagree on the apex addresses: {}{out}",
                answers
                    .iter()
                    .map(|(x, a)| format!("{} serves {}", x.label(), list(a.iter())))
                    .collect::<Vec<_>>()
                    .join("; ")
            )
        },
        || format!("{} servers serve the same apex addresses{out}", answers.len()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::checks::fixtures::{cfg, good, ip};

    #[test]
    fn the_incident() {
        let mut s = good();
        assert!(!apex_mx_mismatch(&s, &cfg()).unwrap().failed());
        for x in &mut s.servers {
            x.apex = Some([ip("192.0.2.20")].into());
        }
        let v = apex_mx_mismatch(&s, &cfg()).unwrap();
        assert_eq!(
            v.message(),
            "example.test has apex address 192.0.2.20 that no MX host has (MX hosts: mx.example.test = 192.0.2.10); senders that fall back to the apex A record deliver there"
        );
        s.servers[1].apex = Some([ip("192.0.2.10")].into());
        assert!(apex_address_mismatch(&s, &cfg()).unwrap().failed());
        // no resolvable MX: not evaluated (no_usable_mx says it)
        s.mx_hosts.clear();
        assert!(apex_mx_mismatch(&s, &cfg()).is_none());
    }
}
