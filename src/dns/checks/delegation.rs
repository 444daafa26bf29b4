//! Delegation and name server checks: can the zone be reached, by whom, and do the
//! parent and the zone agree on who serves it.

use std::collections::BTreeSet;

use super::{Verdict, left_out, standing_words, verdict};
use crate::config::DomainConfig;
use crate::dns::snapshot::{Snapshot, Standing, in_zone, list};

/// `dns_round_failed` (SPEC §7.4): the round could not judge the domain at all:
/// neither the resolvers nor the parent's servers asked directly (RD=0, RFC 1034
/// §5.3.3) gave the delegation of its zone, or the round's deadline cut it. Always
/// evaluated, so no domain is ever left without a failing check when nothing
/// could be seen: a monitor that cannot see is not green.
pub fn dns_round_failed(s: &Snapshot, _: &DomainConfig) -> Option<Verdict> {
    Some(match (&s.failure, &s.resolver_failure) {
        (Some(why), _) => Verdict::Fail(why.clone()),
        (None, Some(resolvers)) => Verdict::Pass(format!(
            "judged from the delegation read at the parent's servers; the resolvers fail: {resolvers}"
        )),
        (None, None) => Verdict::Pass(format!("the round judged {}", s.domain)),
    })
}

/// `nameserver_query_failed` (SPEC §7.4): a server that answers the SOA query
/// authoritatively fails another question of the round: no answer, an rcode other
/// than NOERROR or NXDOMAIN (RFC 1035 §4.1.1), or no AA bit (RFC 1034 §4.3.1).
/// Its answers to those questions are left out of the comparisons.
pub fn nameserver_query_failed(s: &Snapshot, _: &DomainConfig) -> Option<Verdict> {
    let up: Vec<_> = s.up().collect();
    if up.is_empty() {
        return None;
    }
    // the DNSKEY query of the DNSSEC part is a question of the round too: a failure
    // there must show even when the zone turns out unsigned
    let dnskey_failure = |x: &crate::dns::snapshot::Server| {
        let d = s.dnssec.as_ref()?;
        let sd = d.servers.iter().find(|k| k.address == x.address && k.name == x.name)?;
        sd.keys.as_ref().err().map(|e| format!("{} DNSKEY {e}", s.zone.as_deref().unwrap_or(&s.domain)))
    };
    let bad: Vec<String> = up
        .iter()
        .filter_map(|x| {
            let mut q: Vec<String> = x.query_failures.iter().map(|(q, why)| format!("{q} {why}")).collect();
            q.extend(dnskey_failure(x));
            (!q.is_empty()).then(|| format!("{}: {}", x.label(), q.join(", ")))
        })
        .collect();
    Some(verdict(
        !bad.is_empty(),
        || format!("servers that answer the SOA query fail other queries: {}", bad.join("; ")),
        || format!("the {} servers that answer the SOA query answer every other query", up.len()),
    ))
}

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
/// (RFC 1034 §4.1 asks for at least two; RFC 2182 §5 for more, apart). The zone's
/// own set is judged only when some server or resolver gave it.
pub fn nameserver_count_low(s: &Snapshot, _: &DomainConfig) -> Option<Verdict> {
    let zone_ns = s.zone_ns();
    let parent = s.referral.as_ref().map(|r| r.ns.len());
    if zone_ns.is_empty() && parent.is_none() {
        return None;
    }
    let zone = s.zone.as_deref().unwrap_or("the zone");
    // an empty set is unknown, not low: no server gave it (the parent's count stands)
    let low_zone = !zone_ns.is_empty() && zone_ns.len() < 2;
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
        || match (zone_ns.len(), parent) {
            (0, Some(n)) => format!("the parent delegates {zone} to {n} name servers (the zone's own set is unknown)"),
            (n, _) => format!("{zone} has {n} name servers"),
        },
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

/// `glue_mismatch` (SPEC §7.4): the parent's glue (RFC 1034 §4.2.2, RFC 9471) does
/// not match the name servers' own addresses: for an in-zone name server, glue that
/// differs from the zone's addresses, no glue at all (which breaks resolution), or
/// glue for a name the zone gives no address; for a sibling name server (outside
/// the zone but inside the parent), glue that differs from its own zone's
/// addresses. Names whose lookup failed are not judged.
pub fn glue_mismatch(s: &Snapshot, _: &DomainConfig) -> Option<Verdict> {
    let r = s.referral.as_ref()?;
    let zone = s.zone.as_ref()?;
    let parent = s.parent_zone.as_deref();
    let mut bad = Vec::new();
    let mut compared = 0;
    for ns in &r.ns {
        let Some(info) = s.ns_names.get(ns) else { continue };
        let inside = in_zone(ns, zone);
        let sibling = !inside && parent.is_some_and(|p| in_zone(ns, p));
        if inside {
            if info.resolved.is_empty() {
                if info.absent && !info.glue.is_empty() {
                    compared += 1;
                    bad.push(format!(
                        "{ns}: parent glue {}, but the zone gives it no address ({})",
                        list(info.glue.iter()),
                        info.error.as_deref().unwrap_or("no A or AAAA record")
                    ));
                }
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
        } else if sibling && !info.glue.is_empty() {
            if info.resolved.is_empty() && !info.absent {
                continue;
            }
            compared += 1;
            if info.glue != info.resolved {
                bad.push(format!(
                    "sibling {ns}: parent glue {}, its own zone says {}",
                    list(info.glue.iter()),
                    list(info.resolved.iter())
                ));
            }
        }
    }
    if compared == 0 {
        return None;
    }
    Some(verdict(
        !bad.is_empty(),
        || format!("glue at the parent ({}) differs: {}", r.from, bad.join("; ")),
        || format!("glue matches for {compared} in-zone or sibling name server(s)"),
    ))
}

/// `ns_rrset_mismatch`: the authoritative servers do not serve the same NS RRset.
pub fn ns_rrset_mismatch(s: &Snapshot, _: &DomainConfig) -> Option<Verdict> {
    let answers: Vec<_> = s.up().filter_map(|x| x.ns.as_ref().map(|ns| (x, ns))).collect();
    if answers.len() < 2 {
        return None;
    }
    let differ = answers.iter().any(|(_, ns)| *ns != answers[0].1);
    let out = left_out(s, "NS", |x| x.ns.is_some());
    Some(verdict(
        differ,
        || {
            format!(
                "servers disagree on the NS RRset: {}{out}",
                answers
                    .iter()
                    .map(|(x, ns)| format!("{} serves {}", x.label(), list(ns.iter())))
                    .collect::<Vec<_>>()
                    .join("; ")
            )
        },
        || format!("{} servers serve the same NS RRset{out}", answers.len()),
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
        let results = crate::dns::checks::evaluate(&s, &cfg());
        let evaluated: Vec<_> = results.iter().map(|c| (c.check, c.failed)).collect();
        assert_eq!(evaluated, vec![("dns_round_failed", false), ("no_working_nameserver", true)]);
    }

    #[test]
    fn a_round_that_saw_nothing_fails_and_says_why() {
        let s = crate::dns::snapshot::Snapshot {
            domain: "x.test".into(),
            failure: Some("the resolvers cannot find the zone of x.test (x.test SOA: no answer)".into()),
            ..Default::default()
        };
        let results = crate::dns::checks::evaluate(&s, &cfg());
        let failing: Vec<_> = results.iter().filter(|c| c.failed).map(|c| c.check).collect();
        assert_eq!(failing, vec!["dns_round_failed"]);
        assert!(results[0].message.contains("x.test SOA: no answer"), "{results:?}");
        // judged through the parent's servers: the round itself passes, and says so
        let mut s = good();
        s.resolver_failure = Some("example.test SOA: resolvers 192.0.2.53:53: answered SERVFAIL".into());
        let v = dns_round_failed(&s, &cfg()).unwrap();
        assert!(!v.failed() && v.message().contains("answered SERVFAIL"), "{v:?}");
        assert!(!dns_round_failed(&good(), &cfg()).unwrap().failed());
    }

    #[test]
    fn a_server_that_fails_one_query() {
        let mut s = good();
        assert!(!nameserver_query_failed(&s, &cfg()).unwrap().failed());
        s.servers[1].mx = None;
        s.servers[1].query_failures.insert("example.test MX".into(), "answered NOTIMP".into());
        let v = nameserver_query_failed(&s, &cfg()).unwrap();
        assert!(
            v.failed() && v.message().contains("ns2.example.test (192.0.2.2): example.test MX answered NOTIMP"),
            "{v:?}"
        );
        // a server that is down is judged by the standing checks, not this one
        s.servers[1].standing = Standing::Unreachable { error: "timeout".into() };
        assert!(!nameserver_query_failed(&s, &cfg()).unwrap().failed());
    }

    #[test]
    fn a_failed_dnskey_query_is_a_failed_query_even_in_an_unsigned_zone() {
        use crate::dns::snapshot::{Dnssec, Lookup, ServerDnssec};
        let mut s = good();
        let server = |x: &crate::dns::snapshot::Server, keys| ServerDnssec {
            name: x.name.clone(),
            address: x.address,
            keys,
            ds_matched: Vec::new(),
            rrsets: Vec::new(),
            errors: Vec::new(),
        };
        s.dnssec = Some(Dnssec {
            checked_at: 0,
            expiry_warning_seconds: 7 * 86400,
            ds: Lookup::Void { nxdomain: false },
            servers: vec![server(&s.servers[0], Ok(Vec::new())), server(&s.servers[1], Ok(Vec::new()))],
        });
        assert!(!nameserver_query_failed(&s, &cfg()).unwrap().failed());
        s.dnssec.as_mut().unwrap().servers[1].keys = Err("no answer (timeout)".into());
        let v = nameserver_query_failed(&s, &cfg()).unwrap();
        assert!(v.failed() && v.message().contains("DNSKEY no answer (timeout)"), "{v:?}");
    }

    #[test]
    fn comparisons_name_what_they_left_out() {
        let mut s = good();
        s.servers.push(s.servers[0].clone());
        s.servers[2].name = "ns3.example.test".into();
        s.servers[2].address = ip("192.0.2.3");
        s.servers[2].ns = None;
        s.servers[2].query_failures.insert("example.test NS".into(), "no answer (timeout)".into());
        let v = ns_rrset_mismatch(&s, &cfg()).unwrap();
        assert!(!v.failed(), "{v:?}");
        assert!(
            v.message().ends_with("(left out: ns3.example.test (192.0.2.3) example.test NS no answer (timeout))"),
            "{v:?}"
        );
        s.servers[0].standing =
            Standing::Lame { rcode: "REFUSED".into(), authoritative: false, detail: "answered REFUSED".into() };
        let v = crate::dns::checks::soa::soa_serial_mismatch(&s, &cfg()).unwrap();
        assert!(v.message().ends_with("(left out: ns1.example.test (192.0.2.1) answered REFUSED)"), "{v:?}");
    }

    #[test]
    fn glue_for_names_without_addresses_and_for_siblings() {
        let mut s = good();
        // the parent glues ns2, but the zone gives ns2 no address at all
        let ns2 = s.ns_names.get_mut("ns2.example.test").unwrap();
        ns2.resolved.clear();
        ns2.absent = true;
        ns2.error = Some("ns2.example.test has no A or AAAA record".into());
        let v = glue_mismatch(&s, &cfg()).unwrap();
        assert!(
            v.failed()
                && v.message().contains("ns2.example.test: parent glue 192.0.2.2, but the zone gives it no address"),
            "{v:?}"
        );
        // a failed lookup is not a fact: not judged
        let ns2 = s.ns_names.get_mut("ns2.example.test").unwrap();
        ns2.absent = false;
        assert!(!glue_mismatch(&s, &cfg()).unwrap().failed());
        // a sibling (in test., outside example.test) whose glue differs from its zone's
        let mut s = good();
        s.referral.as_mut().unwrap().ns.insert("ns.other.test".into());
        s.referral.as_mut().unwrap().glue.insert("ns.other.test".into(), [ip("192.0.2.77")].into());
        s.ns_names.insert(
            "ns.other.test".into(),
            crate::dns::snapshot::NsName {
                in_parent: true,
                glue: [ip("192.0.2.77")].into(),
                resolved: [ip("192.0.2.7")].into(),
                ..Default::default()
            },
        );
        let v = glue_mismatch(&s, &cfg()).unwrap();
        assert!(
            v.failed()
                && v.message().contains("sibling ns.other.test: parent glue 192.0.2.77, its own zone says 192.0.2.7"),
            "{v:?}"
        );
        s.ns_names.get_mut("ns.other.test").unwrap().resolved = [ip("192.0.2.77")].into();
        let v = glue_mismatch(&s, &cfg()).unwrap();
        assert!(!v.failed() && v.message().contains("3 in-zone or sibling"), "{v:?}");
        // a name outside the parent is not glue the parent should hold
        s.parent_zone = Some("example.test".into());
        assert!(glue_mismatch(&s, &cfg()).unwrap().message().contains("2 in-zone"), "{:?}", glue_mismatch(&s, &cfg()));
    }

    #[test]
    fn nothing_known_is_not_evaluated() {
        let s = crate::dns::snapshot::Snapshot { domain: "x.test".into(), ..Default::default() };
        assert!(no_working_nameserver(&s, &cfg()).is_none());
        assert!(nameserver_unreachable(&s, &cfg()).is_none());
        assert!(delegation_mismatch(&s, &cfg()).is_none());
    }
}
