//! DNSSEC checks (SPEC §7.4), per server: does the parent's DS match the keys each
//! server serves, does every RRSIG each server serves verify and is it within its
//! validity period, does any expire soon, and do the servers agree on the keys.
//!
//! They read [`Dnssec`], which the round verified already ([`crate::dns::dnssec`]);
//! times are judged against [`Dnssec::checked_at`], never the clock. Only servers that
//! answered SOA authoritatively are judged (the others fail the delegation checks).
//! When the round has no DNSSEC data (no zone), the checks are absent; an unsigned
//! zone passes all four.

use std::collections::BTreeSet;

use super::{Verdict, verdict};
use crate::config::DomainConfig;
use crate::dns::dnssec::KeyInfo;
use crate::dns::snapshot::{Dnssec, Lookup, ServerDnssec, Snapshot, list};

fn data(s: &Snapshot) -> Option<&Dnssec> {
    s.dnssec.as_ref()
}

/// Servers that answered SOA authoritatively, with their DNSSEC data.
fn judged<'a>(s: &'a Snapshot, d: &'a Dnssec) -> Vec<&'a ServerDnssec> {
    d.servers.iter().filter(|x| s.up().any(|u| u.address == x.address && u.name == x.name)).collect()
}

pub use crate::logging::utc;

/// `dnssec_ds_mismatch`: the parent has DS for the zone and, on some server, none
/// matches a key of the DNSKEY RRset it serves, or it serves none (RFC 4035 §5.2:
/// validators then find no secure entry point and answer SERVFAIL). Absent when the
/// DS lookup at the parent failed.
pub fn dnssec_ds_mismatch(s: &Snapshot, _: &DomainConfig) -> Option<Verdict> {
    let d = data(s)?;
    let ds = match &d.ds {
        Lookup::Failed(_) => return None,
        Lookup::Void { .. } => return Some(Verdict::Pass("the parent has no DS for the zone: not signed".to_string())),
        Lookup::Found(ds) if ds.is_empty() => {
            return Some(Verdict::Pass("the parent has no DS for the zone: not signed".to_string()));
        }
        Lookup::Found(ds) => ds,
    };
    let servers = judged(s, d);
    let mut bad = Vec::new();
    for x in &servers {
        match &x.keys {
            Err(e) => bad.push(format!("{}: {e}", x.label())),
            Ok(keys) if keys.is_empty() => bad.push(format!("{} serves no DNSKEY", x.label())),
            Ok(keys) if x.ds_matched.is_empty() => {
                bad.push(format!("{} serves keys {} and no DS matches one", x.label(), list(keys.iter())))
            }
            Ok(_) => {}
        }
    }
    Some(verdict(
        !bad.is_empty(),
        || format!("the parent's DS {}: {}", list(ds.iter()), bad.join("; ")),
        || format!("the parent's DS {} matches a key on all {} servers", list(ds.iter()), servers.len()),
    ))
}

/// What is wrong with the RRSIGs a server serves, at `now`, grouped so that a copy
/// whose every signature expired reads as one sentence.
fn sig_problems(x: &ServerDnssec, now: i64) -> Vec<String> {
    let mut out = Vec::new();
    match &x.keys {
        Ok(k) if k.is_empty() => out.push("serves no DNSKEY".to_string()),
        Err(e) => out.push(e.clone()),
        Ok(_) => {}
    }
    let mut unsigned = BTreeSet::new();
    let mut expired: (BTreeSet<String>, Option<i64>) = (BTreeSet::new(), None);
    let mut early: (BTreeSet<String>, Option<i64>) = (BTreeSet::new(), None);
    for set in &x.rrsets {
        if set.sigs.is_empty() {
            unsigned.insert(set.label());
        }
        for sig in &set.sigs {
            if let Some(p) = &sig.problem {
                out.push(format!("RRSIG over {} by key {} {p}", set.label(), sig.key_tag));
            } else if sig.expiration < now {
                expired.0.insert(set.label());
                expired.1 = Some(expired.1.map_or(sig.expiration, |t| t.max(sig.expiration)));
            } else if sig.inception > now {
                early.0.insert(set.label());
                early.1 = Some(early.1.map_or(sig.inception, |t| t.min(sig.inception)));
            }
        }
    }
    if !unsigned.is_empty() {
        out.push(format!("no RRSIG over {}", list(unsigned.iter())));
    }
    if let (labels, Some(t)) = &expired {
        out.push(format!("RRSIGs over {} expired (the last at {})", list(labels.iter()), utc(*t)));
    }
    if let (labels, Some(t)) = &early {
        out.push(format!("RRSIGs over {} are not valid before {}", list(labels.iter()), utc(*t)));
    }
    out
}

/// `dnssec_signature_invalid`: in a signed zone, a server serves an RRSIG over a
/// covered RRset (SOA, NS, DNSKEY, MX, apex A/AAAA/TXT) that is expired, not yet
/// valid, or does not verify against the zone's DNSKEY RRset, or serves such an
/// RRset without RRSIG (RFC 4035 §5.3: validating resolvers answer SERVFAIL).
pub fn dnssec_signature_invalid(s: &Snapshot, _: &DomainConfig) -> Option<Verdict> {
    let d = data(s)?;
    if !d.signed() {
        return Some(Verdict::Pass("not signed (no DS at the parent, no DNSKEY on the servers)".to_string()));
    }
    let servers = judged(s, d);
    let mut bad = Vec::new();
    let mut count = 0;
    for x in &servers {
        count += x.rrsets.iter().map(|r| r.sigs.len()).sum::<usize>();
        let p = sig_problems(x, d.checked_at);
        if !p.is_empty() {
            bad.push(format!("{}: {}", x.label(), p.join(", ")));
        }
    }
    Some(verdict(
        !bad.is_empty(),
        || bad.join("; "),
        || format!("{count} RRSIGs on {} servers verify and are valid", servers.len()),
    ))
}

/// `dnssec_signature_expiring`: on some server, the earliest expiration of the valid
/// RRSIGs it serves is within `dns.dnssec_expiry_warning` (the signer has stopped
/// re-signing: RFC 6781 §4.4.2). Signatures already expired are
/// `dnssec_signature_invalid`'s.
pub fn dnssec_signature_expiring(s: &Snapshot, _: &DomainConfig) -> Option<Verdict> {
    let d = data(s)?;
    if !d.signed() {
        return Some(Verdict::Pass("not signed".to_string()));
    }
    let now = d.checked_at;
    let limit = now.saturating_add(i64::try_from(d.expiry_warning_seconds).unwrap_or(i64::MAX));
    let mut soon = Vec::new();
    let mut earliest: Option<i64> = None;
    for x in judged(s, d) {
        let first = x
            .rrsets
            .iter()
            .flat_map(|r| r.sigs.iter().map(move |g| (r, g)))
            .filter(|(_, g)| g.expiration >= now)
            .min_by_key(|(_, g)| g.expiration);
        let Some((set, sig)) = first else { continue };
        earliest = Some(earliest.map_or(sig.expiration, |e| e.min(sig.expiration)));
        if sig.expiration < limit {
            soon.push(format!(
                "{}: RRSIG {} expires {} (in {:.1} days)",
                x.label(),
                set.label(),
                utc(sig.expiration),
                (sig.expiration - now) as f64 / 86400.0
            ));
        }
    }
    let Some(earliest) = earliest else {
        return Some(Verdict::Pass("no valid RRSIG to expire".to_string()));
    };
    Some(verdict(!soon.is_empty(), || soon.join("; "), || format!("the earliest RRSIG expires {}", utc(earliest))))
}

/// `dnssec_inconsistent`: the servers disagree on the DNSKEY RRset, or on whether
/// the zone is signed at all (one serves keys, another none): resolvers then fail
/// depending on which server they ask (RFC 6781 §4.1, key rollovers).
pub fn dnssec_inconsistent(s: &Snapshot, _: &DomainConfig) -> Option<Verdict> {
    let d = data(s)?;
    let sets: Vec<(&ServerDnssec, BTreeSet<&KeyInfo>)> =
        judged(s, d).into_iter().filter_map(|x| x.keys.as_ref().ok().map(|k| (x, k.iter().collect()))).collect();
    let (first, first_keys) = sets.first()?;
    let differ: Vec<String> = sets
        .iter()
        .filter(|(_, k)| k != first_keys)
        .map(|(x, k)| format!("{} serves {}", x.label(), list(k.iter())))
        .collect();
    Some(verdict(
        !differ.is_empty(),
        || format!("{} serves DNSKEY {}, but {}", first.label(), list(first_keys.iter()), differ.join("; ")),
        || {
            if first_keys.is_empty() {
                format!("none of the {} servers serves a DNSKEY", sets.len())
            } else {
                format!("all {} servers serve DNSKEY {}", sets.len(), list(first_keys.iter()))
            }
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::checks::fixtures::{cfg as domain, good};
    use crate::dns::dnssec::{DsInfo, RrsetSigs, SigCheck};

    const NOW: i64 = 1_796_000_000;
    const DAY: i64 = 86400;

    fn key(tag: u16, flags: u16) -> KeyInfo {
        KeyInfo { tag, algorithm: 13, flags }
    }

    fn sig(tag: u16, inception: i64, expiration: i64) -> SigCheck {
        SigCheck { key_tag: tag, algorithm: 13, inception, expiration, problem: None }
    }

    fn rrsets(expiration: i64) -> Vec<RrsetSigs> {
        ["SOA", "NS", "DNSKEY", "MX"]
            .iter()
            .map(|t| RrsetSigs {
                owner: "example.test".into(),
                rtype: t,
                records: 1,
                sigs: vec![sig(if *t == "DNSKEY" { 1 } else { 2 }, NOW - DAY, expiration)],
            })
            .collect()
    }

    fn server(name: &str, addr: &str) -> ServerDnssec {
        ServerDnssec {
            name: name.into(),
            address: addr.parse().expect("ip"),
            keys: Ok(vec![key(1, 257), key(2, 256)]),
            ds_matched: [1].into(),
            rrsets: rrsets(NOW + 30 * DAY),
            errors: vec![],
        }
    }

    /// example.test signed with keys 1 (KSK) and 2 (ZSK), both servers in order.
    fn signed() -> Snapshot {
        let mut s = good();
        s.dnssec = Some(Dnssec {
            checked_at: NOW,
            expiry_warning_seconds: 7 * DAY as u64,
            ds: Lookup::Found(vec![DsInfo { key_tag: 1, algorithm: 13, digest_type: 2 }]),
            servers: vec![server("ns1.example.test", "192.0.2.1"), server("ns2.example.test", "192.0.2.2")],
        });
        s
    }

    fn unsigned() -> Snapshot {
        let mut s = signed();
        let d = s.dnssec.as_mut().expect("dnssec");
        d.ds = Lookup::Void { nxdomain: false };
        for x in &mut d.servers {
            x.keys = Ok(vec![]);
            x.ds_matched.clear();
            x.rrsets.clear();
        }
        s
    }

    fn ns2(s: &mut Snapshot) -> &mut ServerDnssec {
        &mut s.dnssec.as_mut().expect("dnssec").servers[1]
    }

    type Eval = fn(&Snapshot, &DomainConfig) -> Option<Verdict>;
    const ALL: [(&str, Eval); 4] = [
        ("dnssec_ds_mismatch", dnssec_ds_mismatch),
        ("dnssec_signature_invalid", dnssec_signature_invalid),
        ("dnssec_signature_expiring", dnssec_signature_expiring),
        ("dnssec_inconsistent", dnssec_inconsistent),
    ];

    fn failing(s: &Snapshot) -> Vec<&'static str> {
        ALL.iter().filter(|(_, f)| f(s, &domain()).is_some_and(|v| v.failed())).map(|(id, _)| *id).collect()
    }

    #[test]
    fn each_defect_fails_exactly_its_checks() {
        let mut cases: Vec<(&str, Snapshot, Vec<&str>)> =
            vec![("signed, in order", signed(), vec![]), ("unsigned", unsigned(), vec![])];

        let mut s = signed();
        ns2(&mut s).rrsets = rrsets(NOW - DAY);
        cases.push(("expired on one secondary", s, vec!["dnssec_signature_invalid"]));

        let mut s = signed();
        for x in &mut s.dnssec.as_mut().expect("dnssec").servers {
            x.rrsets = rrsets(NOW + 3 * DAY);
        }
        cases.push(("expiring in 3 days", s, vec!["dnssec_signature_expiring"]));

        let mut s = signed();
        ns2(&mut s).rrsets[0].sigs[0].inception = NOW + DAY;
        cases.push(("not yet valid", s, vec!["dnssec_signature_invalid"]));

        let mut s = signed();
        s.dnssec.as_mut().expect("dnssec").ds =
            Lookup::Found(vec![DsInfo { key_tag: 9, algorithm: 13, digest_type: 2 }]);
        for x in &mut s.dnssec.as_mut().expect("dnssec").servers {
            x.ds_matched.clear();
        }
        cases.push(("DS matches no key", s, vec!["dnssec_ds_mismatch"]));

        let mut s = signed();
        let x = ns2(&mut s);
        x.keys = Ok(vec![]);
        x.ds_matched.clear();
        for r in &mut x.rrsets {
            r.sigs.clear();
        }
        x.rrsets.retain(|r| r.rtype != "DNSKEY");
        cases.push((
            "unsigned copy on a secondary",
            s,
            vec!["dnssec_ds_mismatch", "dnssec_signature_invalid", "dnssec_inconsistent"],
        ));

        let mut s = signed();
        ns2(&mut s).rrsets[3].sigs[0].problem = Some("does not verify with key 2".into());
        cases.push(("a signature that does not verify", s, vec!["dnssec_signature_invalid"]));

        let mut s = signed();
        ns2(&mut s).keys = Ok(vec![key(1, 257), key(2, 256), key(3, 256)]);
        cases.push(("a key only on one server", s, vec!["dnssec_inconsistent"]));

        // a server down is judged by the delegation checks, not here
        let mut s = signed();
        s.servers[1].standing = crate::dns::snapshot::Standing::Unreachable { error: "timeout".into() };
        ns2(&mut s).rrsets = rrsets(NOW - DAY);
        cases.push(("expired only on a server that is down", s, vec![]));

        for (what, s, want) in cases {
            assert_eq!(failing(&s), want, "{what}");
        }
    }

    #[test]
    fn messages_name_servers_and_values() {
        let mut s = signed();
        ns2(&mut s).rrsets = rrsets(NOW - DAY);
        let v = dnssec_signature_invalid(&s, &domain()).expect("evaluated");
        assert_eq!(
            v.message(),
            "ns2.example.test (192.0.2.2): RRSIGs over DNSKEY example.test, MX example.test, NS example.test, SOA example.test expired (the last at 2026-11-29 00:53:20 UTC)"
        );
        // an unsigned copy, and a signature that does not verify
        let mut s = signed();
        ns2(&mut s).keys = Ok(vec![]);
        for r in &mut ns2(&mut s).rrsets {
            r.sigs.clear();
        }
        s.dnssec.as_mut().expect("dnssec").servers[0].rrsets[3].sigs[0].problem =
            Some("does not verify with key 2 (crypto error)".into());
        let v = dnssec_signature_invalid(&s, &domain()).expect("evaluated");
        assert_eq!(
            v.message(),
            "ns1.example.test (192.0.2.1): RRSIG over MX example.test by key 2 does not verify with key 2 (crypto error); ns2.example.test (192.0.2.2): serves no DNSKEY, no RRSIG over DNSKEY example.test, MX example.test, NS example.test, SOA example.test"
        );

        let mut s = signed();
        for x in &mut s.dnssec.as_mut().expect("dnssec").servers {
            x.rrsets = rrsets(NOW + 3 * DAY);
        }
        let v = dnssec_signature_expiring(&s, &domain()).expect("evaluated");
        assert!(v.message().contains("(in 3.0 days)"), "{}", v.message());
    }

    #[test]
    fn absent_without_data_and_ds_check_absent_when_the_parent_is_not_heard() {
        let s = good();
        for (id, f) in ALL {
            assert_eq!(f(&s, &domain()), None, "{id}");
        }
        let mut s = signed();
        s.dnssec.as_mut().expect("dnssec").ds = Lookup::Failed("timeout".into());
        assert_eq!(dnssec_ds_mismatch(&s, &domain()), None);
        // the servers still serve keys: the zone counts as signed for the others
        assert_eq!(dnssec_signature_invalid(&s, &domain()).map(|v| v.failed()), Some(false));
    }

    #[test]
    fn utc_formats_civil_time() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_796_000_000), "2026-11-30 00:53:20 UTC");
    }
}
