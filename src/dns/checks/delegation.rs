//! Delegation and name server checks: can the zone be reached, by whom, and do the
//! parent and the zone agree on who serves it.

use std::collections::BTreeSet;

use super::{Verdict, verdict};
use crate::config::DomainConfig;
use crate::dns::snapshot::{Snapshot, Standing, in_zone, list};

/// `no_working_nameserver`: no server answers the SOA query authoritatively, so the
/// zone cannot be resolved at all (RFC 1034 §4.1).
pub fn no_working_nameserver(s: &Snapshot, _: &DomainConfig) -> Option<Verdict> {
    let zone = s.zone.as_ref()?;
    if s.nxdomain {
        return Some(Verdict::Fail(format!(
            "{} does not exist: the resolvers answer NXDOMAIN (the closest enclosing zone is {zone}), so no server serves it",
            s.domain
        )));
    }
    let up = s.up().count();
    Some(verdict(
        up == 0,
        || {
            if s.servers.is_empty() {
                format!("no name server of {zone} could be found or resolved: {}", list(s.notes.iter()))
            } else {
                format!(
                    "none of the {} server addresses of {zone} answers its SOA query authoritatively: {}",
                    s.servers.len(),
                    list(s.servers.iter().map(|x| format!("{} {}", x.label(), standing_words(&x.standing))))
                )
            }
        },
        || format!("{up} of {} server addresses of {zone} answer authoritatively", s.servers.len()),
    ))
}

fn standing_words(st: &Standing) -> String {
    match st {
        Standing::Authoritative => "answers authoritatively".to_string(),
        Standing::Lame { detail, .. } => detail.clone(),
        Standing::Unreachable { error } => format!("gives no answer ({error})"),
    }
}

/// `nameserver_unreachable`: a listed server gives no answer over UDP or TCP.
pub fn nameserver_unreachable(s: &Snapshot, _: &DomainConfig) -> Option<Verdict> {
    if s.servers.is_empty() {
        return None;
    }
    let dead: Vec<String> = s
        .servers
        .iter()
        .filter_map(|x| match &x.standing {
            Standing::Unreachable { error } => Some(format!("{} ({error})", x.label())),
            _ => None,
        })
        .collect();
    Some(verdict(
        !dead.is_empty(),
        || format!("no answer over UDP or TCP from {}", dead.join(", ")),
        || format!("all {} server addresses answer", s.servers.len()),
    ))
}

/// `nameserver_not_authoritative`: a server answers, but REFUSED, SERVFAIL, without
/// the AA flag or without the zone's SOA — a lame delegation (RFC 8499).
pub fn nameserver_not_authoritative(s: &Snapshot, _: &DomainConfig) -> Option<Verdict> {
    if s.servers.is_empty() {
        return None;
    }
    let zone = s.zone.as_deref().unwrap_or("the zone");
    let lame: Vec<String> = s
        .servers
        .iter()
        .filter_map(|x| match &x.standing {
            Standing::Lame { detail, .. } => Some(format!("{} {detail}", x.label())),
            _ => None,
        })
        .collect();
    Some(verdict(
        !lame.is_empty(),
        || format!("lame for {zone}: {}", lame.join("; ")),
        || "every server that answers is authoritative".to_string(),
    ))
}

/// `nameserver_unresolvable`: an NS name has no address at all (no glue, and the
/// resolvers find no A or AAAA).
pub fn nameserver_unresolvable(s: &Snapshot, _: &DomainConfig) -> Option<Verdict> {
    if s.ns_names.is_empty() {
        return None;
    }
    let bad: Vec<String> = s
        .ns_names
        .iter()
        .filter(|(_, n)| n.glue.is_empty() && n.resolved.is_empty())
        .map(|(name, n)| n.error.clone().unwrap_or_else(|| format!("{name} has no address")))
        .collect();
    Some(verdict(
        !bad.is_empty(),
        || format!("name servers without an address: {}", bad.join("; ")),
        || format!("all {} NS names have addresses", s.ns_names.len()),
    ))
}

/// `nameserver_count_low`: fewer than two name servers at the parent or in the zone
/// (RFC 1034 §4.1 asks for at least two; RFC 2182 §5 for more, apart).
pub fn nameserver_count_low(s: &Snapshot, _: &DomainConfig) -> Option<Verdict> {
    let zone_ns = s.zone_ns();
    let parent = s.referral.as_ref().map(|r| r.ns.len());
    if zone_ns.is_empty() && parent.is_none() {
        return None;
    }
    let zone = s.zone.as_deref().unwrap_or("the zone");
    let low_zone = zone_ns.len() < 2;
    let low_parent = parent.is_some_and(|n| n < 2);
    Some(verdict(
        low_zone || low_parent,
        || {
            let mut parts = Vec::new();
            if low_zone {
                parts.push(format!("the zone lists {} name server(s): {}", zone_ns.len(), list(zone_ns.iter())));
            }
            if let (true, Some(r)) = (low_parent, &s.referral) {
                parts.push(format!("the parent delegates to {} name server(s): {}", r.ns.len(), list(r.ns.iter())));
            }
            format!("{zone} has fewer than 2 name servers: {}", parts.join("; "))
        },
        || format!("{zone} has {} name servers", zone_ns.len()),
    ))
}

/// `delegation_mismatch`: the parent's NS set differs from the zone's own NS RRset
/// (RFC 2181 §6.1: they should be the same).
pub fn delegation_mismatch(s: &Snapshot, _: &DomainConfig) -> Option<Verdict> {
    let r = s.referral.as_ref()?;
    let zone_ns = s.zone_ns();
    if zone_ns.is_empty() {
        return None;
    }
    let only_parent: BTreeSet<_> = r.ns.difference(&zone_ns).collect();
    let only_zone: BTreeSet<_> = zone_ns.difference(&r.ns).collect();
    Some(verdict(
        !only_parent.is_empty() || !only_zone.is_empty(),
        || {
            format!(
                "the parent ({}) delegates to {} but the zone lists {} (only at the parent: {}; only in the zone: {})",
                r.from,
                list(r.ns.iter()),
                list(zone_ns.iter()),
                list(only_parent),
                list(only_zone)
            )
        },
        || format!("parent and zone agree on {}", list(zone_ns.iter())),
    ))
}

/// `glue_mismatch`: for a name server inside the zone, the parent's glue differs from
/// the addresses the zone itself gives (or is missing, which breaks resolution).
pub fn glue_mismatch(s: &Snapshot, _: &DomainConfig) -> Option<Verdict> {
    let r = s.referral.as_ref()?;
    let zone = s.zone.as_ref()?;
    let mut bad = Vec::new();
    let mut compared = 0;
    for ns in r.ns.iter().filter(|n| in_zone(n, zone)) {
        let Some(info) = s.ns_names.get(ns) else { continue };
        if info.resolved.is_empty() {
            continue;
        }
        compared += 1;
        if info.glue.is_empty() {
            bad.push(format!("{ns}: the parent has no glue, the zone says {}", list(info.resolved.iter())));
        } else if info.glue != info.resolved {
            bad.push(format!(
                "{ns}: parent glue {}, the zone says {}",
                list(info.glue.iter()),
                list(info.resolved.iter())
            ));
        }
    }
    if compared == 0 {
        return None;
    }
    Some(verdict(
        !bad.is_empty(),
        || format!("glue at the parent ({}) differs: {}", r.from, bad.join("; ")),
        || format!("glue matches for {compared} in-zone name server(s)"),
    ))
}

/// `ns_rrset_mismatch`: the authoritative servers do not serve the same NS RRset.
pub fn ns_rrset_mismatch(s: &Snapshot, _: &DomainConfig) -> Option<Verdict> {
    let answers: Vec<_> = s.up().filter_map(|x| x.ns.as_ref().map(|ns| (x, ns))).collect();
    if answers.len() < 2 {
        return None;
    }
    let differ = answers.iter().any(|(_, ns)| *ns != answers[0].1);
    Some(verdict(
        differ,
        || {
            format!(
                "servers disagree on the NS RRset: {}",
                answers
                    .iter()
                    .map(|(x, ns)| format!("{} serves {}", x.label(), list(ns.iter())))
                    .collect::<Vec<_>>()
                    .join("; ")
            )
        },
        || format!("{} servers serve the same NS RRset", answers.len()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::checks::fixtures::{cfg, good, ip};
    use crate::dns::snapshot::Standing;

    #[test]
    fn good_zone_passes() {
        let s = good();
        for f in [
            no_working_nameserver,
            nameserver_unreachable,
            nameserver_not_authoritative,
            nameserver_unresolvable,
            nameserver_count_low,
            delegation_mismatch,
            glue_mismatch,
            ns_rrset_mismatch,
        ] {
            let v = f(&s, &cfg()).expect("evaluated");
            assert!(!v.failed(), "{v:?}");
        }
    }

    #[test]
    fn dead_and_lame_servers() {
        let mut s = good();
        s.servers[1].standing = Standing::Unreachable { error: "no answer (timeout)".into() };
        let v = nameserver_unreachable(&s, &cfg()).unwrap();
        assert!(v.failed() && v.message().contains("ns2.example.test (192.0.2.2) (no answer (timeout))"), "{v:?}");
        assert!(!no_working_nameserver(&s, &cfg()).unwrap().failed());
        s.servers[0].standing =
            Standing::Lame { rcode: "REFUSED".into(), authoritative: false, detail: "answered REFUSED".into() };
        let v = nameserver_not_authoritative(&s, &cfg()).unwrap();
        assert!(v.failed() && v.message().contains("ns1.example.test (192.0.2.1) answered REFUSED"), "{v:?}");
        let v = no_working_nameserver(&s, &cfg()).unwrap();
        assert!(v.failed() && v.message().contains("none of the 2"), "{v:?}");
    }

    #[test]
    fn delegation_and_glue() {
        let mut s = good();
        if let Some(r) = s.referral.as_mut() {
            r.ns.remove("ns2.example.test");
            r.glue.insert("ns1.example.test".into(), [ip("192.0.2.99")].into());
        }
        let v = delegation_mismatch(&s, &cfg()).unwrap();
        assert!(v.failed() && v.message().contains("only in the zone: ns2.example.test"), "{v:?}");
        s.ns_names.get_mut("ns1.example.test").unwrap().glue = [ip("192.0.2.99")].into();
        let v = glue_mismatch(&s, &cfg()).unwrap();
        assert!(v.failed() && v.message().contains("parent glue 192.0.2.99, the zone says 192.0.2.1"), "{v:?}");
        let v = nameserver_count_low(&s, &cfg()).unwrap();
        assert!(v.failed() && v.message().contains("the parent delegates to 1"), "{v:?}");
    }

    #[test]
    fn unresolvable_and_rrset() {
        let mut s = good();
        s.ns_names.insert(
            "ns3.nowhere.test".into(),
            crate::dns::snapshot::NsName {
                error: Some("ns3.nowhere.test does not exist (NXDOMAIN)".into()),
                ..Default::default()
            },
        );
        let v = nameserver_unresolvable(&s, &cfg()).unwrap();
        assert!(v.failed() && v.message().contains("NXDOMAIN"), "{v:?}");
        s.servers[1].ns.as_mut().unwrap().insert("ns3.example.test".into());
        let v = ns_rrset_mismatch(&s, &cfg()).unwrap();
        assert!(
            v.failed()
                && v.message().contains(
                    "ns2.example.test (192.0.2.2) serves ns1.example.test, ns2.example.test, ns3.example.test"
                ),
            "{v:?}"
        );
    }

    #[test]
    fn a_domain_that_does_not_exist() {
        let s = crate::dns::snapshot::Snapshot {
            domain: "nxdomain.test".into(),
            zone: Some("test".into()),
            nxdomain: true,
            ..Default::default()
        };
        let v = no_working_nameserver(&s, &cfg()).unwrap();
        assert!(v.failed() && v.message().starts_with("nxdomain.test does not exist"), "{v:?}");
        assert!(crate::dns::checks::evaluate(&s, &cfg()).iter().all(|c| c.check == "no_working_nameserver"));
    }

    #[test]
    fn nothing_known_is_not_evaluated() {
        let s = crate::dns::snapshot::Snapshot { domain: "x.test".into(), ..Default::default() };
        assert!(no_working_nameserver(&s, &cfg()).is_none());
        assert!(nameserver_unreachable(&s, &cfg()).is_none());
        assert!(delegation_mismatch(&s, &cfg()).is_none());
    }
}
