//! MX checks: is there an MX, do the servers agree on it, and can a sender deliver
//! to it (RFC 5321 §5.1: the exchange must resolve to an address; RFC 2181 §10.3:
//! it must not be a CNAME; RFC 7505: a null MX stands alone).

use std::collections::BTreeSet;

use super::{Verdict, left_out, verdict};
use crate::config::DomainConfig;
use crate::dns::snapshot::{Mx, Snapshot, is_address_literal, list};

fn mx_text(m: &Mx) -> String {
    format!("{} {}", m.preference, m.exchange)
}

/// The non-null exchanges served.
fn exchanges(s: &Snapshot) -> BTreeSet<String> {
    s.mx_union().into_iter().filter(|m| !m.is_null()).map(|m| m.exchange).collect()
}

/// True when at least one server that is up answered the MX query.
fn mx_known(s: &Snapshot) -> bool {
    s.up().any(|x| x.mx.is_some())
}

/// `mx_missing`: no MX record at all, so senders fall back to the apex A/AAAA
/// (the implicit MX of RFC 5321 §5.1).
pub fn mx_missing(s: &Snapshot, _: &DomainConfig) -> Option<Verdict> {
    if !mx_known(s) {
        return None;
    }
    let union = s.mx_union();
    Some(verdict(
        union.is_empty(),
        || {
            let apex = s.apex_union();
            format!(
                "{} has no MX record; senders deliver to its apex address ({}) as the implicit MX",
                s.domain,
                list(apex.iter())
            )
        },
        || format!("MX: {}", list(union.iter().map(mx_text))),
    ))
}

/// `mx_rrset_mismatch`: the authoritative servers serve different MX RRsets.
pub fn mx_rrset_mismatch(s: &Snapshot, _: &DomainConfig) -> Option<Verdict> {
    let answers: Vec<_> = s.up().filter_map(|x| x.mx.as_ref().map(|mx| (x, mx))).collect();
    if answers.len() < 2 {
        return None;
    }
    let differ = answers.iter().any(|(_, mx)| *mx != answers[0].1);
    let out = left_out(s, "MX", |x| x.mx.is_some());
    Some(verdict(
        differ,
        || {
            format!(
                "servers disagree on the MX RRset: {}{out}",
                answers
                    .iter()
                    .map(|(x, mx)| format!("{} serves {}", x.label(), list(mx.iter().map(mx_text))))
                    .collect::<Vec<_>>()
                    .join("; ")
            )
        },
        || format!("{} servers serve the same MX RRset{out}", answers.len()),
    ))
}

/// `mx_target_unresolvable`: an MX exchange has no A or AAAA record.
pub fn mx_target_unresolvable(s: &Snapshot, _: &DomainConfig) -> Option<Verdict> {
    let names: Vec<String> = exchanges(s).into_iter().filter(|e| !is_address_literal(e)).collect();
    if names.is_empty() {
        return None;
    }
    let bad: Vec<String> = names
        .iter()
        .filter_map(|e| {
            let h = s.mx_hosts.get(e)?;
            h.addresses.is_empty().then(|| match (&h.error, h.nxdomain) {
                (_, true) => format!("{e} does not exist (NXDOMAIN)"),
                (Some(err), _) => format!("{e}: {err}"),
                (None, false) => format!("{e} has no A or AAAA record"),
            })
        })
        .collect();
    Some(verdict(
        !bad.is_empty(),
        || format!("MX exchanges without an address: {}", bad.join("; ")),
        || format!("every MX exchange resolves ({})", list(names.iter())),
    ))
}

/// `no_usable_mx`: the domain has MX records, but no exchange resolves to an address,
/// so no sender can deliver (critical). A null MX alone is a deliberate "no mail" and
/// is not evaluated here.
pub fn no_usable_mx(s: &Snapshot, _: &DomainConfig) -> Option<Verdict> {
    let all = exchanges(s);
    if all.is_empty() {
        return None;
    }
    let usable: Vec<&String> = all
        .iter()
        .filter(|e| !is_address_literal(e) && s.mx_hosts.get(*e).is_some_and(|h| !h.addresses.is_empty()))
        .collect();
    Some(verdict(
        usable.is_empty(),
        || format!("none of the MX exchanges of {} resolves to an address: {}", s.domain, list(all.iter())),
        || format!("usable MX exchanges: {}", list(usable.iter())),
    ))
}

/// `mx_target_cname`: an MX exchange is an alias; RFC 2181 §10.3 forbids it and some
/// senders refuse to follow it.
pub fn mx_target_cname(s: &Snapshot, _: &DomainConfig) -> Option<Verdict> {
    if s.mx_hosts.is_empty() {
        return None;
    }
    let bad: Vec<String> = s
        .mx_hosts
        .iter()
        .filter(|(_, h)| !h.cnames.is_empty())
        .map(|(e, h)| format!("{e} is a CNAME for {}", h.cnames.join(" → ")))
        .collect();
    Some(verdict(!bad.is_empty(), || bad.join("; "), || "no MX exchange is a CNAME".to_string()))
}

/// `mx_target_address_literal`: an MX exchange is written as an IP address; it must
/// be a host name (RFC 1035 §3.3.9), and senders look it up as a name.
pub fn mx_target_address_literal(s: &Snapshot, _: &DomainConfig) -> Option<Verdict> {
    let all = exchanges(s);
    if all.is_empty() {
        return None;
    }
    let bad: Vec<&String> = all.iter().filter(|e| is_address_literal(e)).collect();
    Some(verdict(
        !bad.is_empty(),
        || format!("MX exchanges written as IP addresses: {}", list(bad.iter())),
        || "every MX exchange is a host name".to_string(),
    ))
}

/// `mx_unexpected`: the MX exchanges differ from the configured `expected_mx`.
pub fn mx_unexpected(s: &Snapshot, d: &DomainConfig) -> Option<Verdict> {
    let expected: BTreeSet<String> = d.expected_mx.as_ref()?.iter().cloned().collect();
    if !mx_known(s) {
        return None;
    }
    let actual = exchanges(s);
    Some(verdict(
        actual != expected,
        || {
            format!(
                "MX exchanges are {} but expected_mx is {} (unexpected: {}; missing: {})",
                list(actual.iter()),
                list(expected.iter()),
                list(actual.difference(&expected)),
                list(expected.difference(&actual))
            )
        },
        || format!("MX exchanges are the expected {}", list(expected.iter())),
    ))
}

/// `null_mx_conflict`: a null MX (`0 .`, RFC 7505) must be the only MX record and
/// have preference 0.
pub fn null_mx_conflict(s: &Snapshot, _: &DomainConfig) -> Option<Verdict> {
    let union = s.mx_union();
    if union.is_empty() {
        return None;
    }
    let nulls: Vec<&Mx> = union.iter().filter(|m| m.is_null()).collect();
    let others: Vec<&Mx> = union.iter().filter(|m| !m.is_null()).collect();
    let bad_pref = nulls.iter().any(|m| m.preference != 0);
    Some(verdict(
        !nulls.is_empty() && (!others.is_empty() || bad_pref),
        || {
            let mut why = Vec::new();
            if !others.is_empty() {
                why.push(format!("a null MX stands beside {}", list(others.iter().map(|m| mx_text(m)))));
            }
            if bad_pref {
                why.push(format!("the null MX has preference {}", list(nulls.iter().map(|m| m.preference))));
            }
            format!("{} (RFC 7505 §3)", why.join("; "))
        },
        || {
            if nulls.is_empty() {
                "no null MX".to_string()
            } else {
                "a single null MX: the domain accepts no mail".to_string()
            }
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::checks::fixtures::{cfg, good, ip, mx};
    use crate::dns::snapshot::HostLookup;

    fn set_mx(s: &mut Snapshot, records: &[Mx]) {
        for x in &mut s.servers {
            x.mx = Some(records.iter().cloned().collect());
        }
    }

    #[test]
    fn good_passes() {
        let s = good();
        for f in [
            mx_missing,
            mx_rrset_mismatch,
            mx_target_unresolvable,
            no_usable_mx,
            mx_target_cname,
            mx_target_address_literal,
            null_mx_conflict,
        ] {
            assert!(!f(&s, &cfg()).unwrap().failed());
        }
        assert!(mx_unexpected(&s, &cfg()).is_none(), "only with expected_mx");
    }

    #[test]
    fn missing_and_mismatch() {
        let mut s = good();
        s.servers[1].mx = Some([mx(10, "mx2.example.test")].into());
        let v = mx_rrset_mismatch(&s, &cfg()).unwrap();
        assert!(v.failed() && v.message().contains("ns2.example.test (192.0.2.2) serves 10 mx2.example.test"), "{v:?}");
        set_mx(&mut s, &[]);
        let v = mx_missing(&s, &cfg()).unwrap();
        assert!(v.failed() && v.message().contains("apex address (192.0.2.10)"), "{v:?}");
    }

    #[test]
    fn unresolvable_cname_literal() {
        let mut s = good();
        set_mx(&mut s, &[mx(10, "mx.example.test"), mx(20, "gone.example.test"), mx(30, "192.0.2.77")]);
        s.mx_hosts.insert("gone.example.test".into(), HostLookup { nxdomain: true, ..Default::default() });
        let v = mx_target_unresolvable(&s, &cfg()).unwrap();
        assert_eq!(v.message(), "MX exchanges without an address: gone.example.test does not exist (NXDOMAIN)");
        assert!(!no_usable_mx(&s, &cfg()).unwrap().failed());
        assert_eq!(
            mx_target_address_literal(&s, &cfg()).unwrap().message(),
            "MX exchanges written as IP addresses: 192.0.2.77"
        );
        s.mx_hosts.get_mut("mx.example.test").unwrap().cnames = vec!["host.example.test".into()];
        assert_eq!(mx_target_cname(&s, &cfg()).unwrap().message(), "mx.example.test is a CNAME for host.example.test");
        s.mx_hosts.get_mut("mx.example.test").unwrap().addresses.clear();
        let v = no_usable_mx(&s, &cfg()).unwrap();
        assert!(v.failed(), "{v:?}");
    }

    #[test]
    fn null_mx() {
        let mut s = good();
        set_mx(&mut s, &[mx(0, ".")]);
        assert!(!null_mx_conflict(&s, &cfg()).unwrap().failed());
        assert!(no_usable_mx(&s, &cfg()).is_none());
        assert!(!mx_missing(&s, &cfg()).unwrap().failed());
        set_mx(&mut s, &[mx(0, "."), mx(10, "mx.example.test")]);
        assert!(null_mx_conflict(&s, &cfg()).unwrap().message().contains("beside 10 mx.example.test"));
        set_mx(&mut s, &[mx(5, ".")]);
        assert!(null_mx_conflict(&s, &cfg()).unwrap().message().contains("preference 5"));
    }

    #[test]
    fn expected() {
        let s = good();
        let mut d = cfg();
        d.expected_mx = Some(vec!["mx.example.test".into()]);
        assert!(!mx_unexpected(&s, &d).unwrap().failed());
        d.expected_mx = Some(vec!["talon.example.test".into()]);
        let v = mx_unexpected(&s, &d).unwrap();
        assert!(
            v.failed() && v.message().contains("unexpected: mx.example.test; missing: talon.example.test"),
            "{v:?}"
        );
        let _ = ip("192.0.2.1");
    }
}
