//! DMARC checks (RFC 7489): exactly one valid `v=DMARC1` record at
//! `_dmarc.<domain>` on every authoritative server (§6.6.3), and a policy that
//! does something.
//!
//! A record whose version is not exactly `v=DMARC1` is ignored by receivers
//! (§6.3), so it counts as no record; `dmarc_missing` names it. Servers that
//! disagree on the record fail `dmarc_invalid`, naming each server. Receivers do
//! not fall back to the organizational domain's record here: that needs the Public
//! Suffix List, which the exporter does not carry.

use super::served::{Served, disagreement, distinct, labels, multiple, present, quoted, served};
use super::{Verdict, verdict};
use crate::config::DomainConfig;
use crate::dns::records::clip;
use crate::dns::records::dmarc::{Disposition, is_dmarc, looks_like_dmarc, parse};
use crate::dns::snapshot::Snapshot;

fn name(s: &Snapshot) -> String {
    format!("_dmarc.{}", s.domain)
}

fn dmarc_served(s: &Snapshot) -> Option<Vec<Served<'_>>> {
    served(s, &name(s), is_dmarc)
}

/// `dmarc_missing`: no DMARC record at `_dmarc.<domain>`.
pub fn dmarc_missing(s: &Snapshot, _: &DomainConfig) -> Option<Verdict> {
    let all = served(s, &name(s), |_| true)?;
    let records = dmarc_served(s)?;
    Some(verdict(
        !present(&records),
        || {
            let servers: Vec<_> = all.iter().map(|x| x.server).collect();
            let ignored: Vec<String> =
                distinct(&all).into_iter().map(|(r, _)| r).filter(|r| looks_like_dmarc(r)).collect();
            let mut m = format!(
                "no DMARC record at {} on {}; receivers apply no DMARC policy to mail from {} (RFC 7489 §6.6.3)",
                name(s),
                labels(&servers),
                s.domain
            );
            if !ignored.is_empty() {
                m.push_str(&format!(
                    "; ignored because the version is not exactly v=DMARC1 (RFC 7489 §6.3): {}",
                    quoted(&ignored)
                ));
            }
            m
        },
        || format!("DMARC record: {}", quoted(&distinct(&records).into_iter().map(|(r, _)| r).collect::<Vec<_>>())),
    ))
}

/// `dmarc_multiple`: a server serves more than one DMARC record; receivers then
/// apply none (§6.6.3).
pub fn dmarc_multiple(s: &Snapshot, _: &DomainConfig) -> Option<Verdict> {
    let served = dmarc_served(s)?;
    if !present(&served) {
        return None;
    }
    let bad = multiple(&served, "DMARC", &name(s));
    Some(verdict(
        !bad.is_empty(),
        || format!("{}; receivers apply none of them (RFC 7489 §6.6.3)", bad.join("; ")),
        || format!("{} server(s) serve one DMARC record each", served.len()),
    ))
}

/// `dmarc_invalid`: a DMARC record has invalid or missing tags, or the servers
/// disagree on the record.
pub fn dmarc_invalid(s: &Snapshot, _: &DomainConfig) -> Option<Verdict> {
    let served = dmarc_served(s)?;
    if !present(&served) {
        return None;
    }
    let mut problems: Vec<String> = Vec::new();
    if let Some(d) = disagreement(s, &served, "the DMARC record", &name(s)) {
        problems.push(d);
    }
    let mut policies: Vec<String> = Vec::new();
    for (text, servers) in distinct(&served) {
        let p = parse(&text);
        if p.valid() {
            policies.push(format!("p={}", p.record.p.map_or("?", Disposition::as_str)));
        } else {
            problems.push(format!(
                "the DMARC record {:?} (served by {}) is invalid: {}",
                clip(&text),
                labels(&servers),
                p.errors.join("; ")
            ));
        }
    }
    Some(verdict(!problems.is_empty(), || problems.join("; "), || format!("valid, {}", policies.join(", "))))
}

/// `dmarc_policy_none`: the policy receivers apply is `none`: `p=none`, or an
/// invalid `p` beside a valid `rua` (§6.6.3 then says to act as if `p=none`).
/// Evaluated when receivers apply a policy at all (one record per server).
pub fn dmarc_policy_none(s: &Snapshot, _: &DomainConfig) -> Option<Verdict> {
    let served = dmarc_served(s)?;
    if !present(&served) || served.iter().any(|x| x.records.len() > 1) {
        return None;
    }
    let mut none: Vec<String> = Vec::new();
    let mut other: Vec<String> = Vec::new();
    for (text, servers) in distinct(&served) {
        let p = parse(&text);
        match (p.effective_policy(), p.record.p) {
            (Some(Disposition::None), Some(_)) => none.push(format!(
                "{} publishes p=none at {} ({})",
                s.domain,
                name(s),
                labels(&servers)
            )),
            (Some(Disposition::None), None) => none.push(format!(
                "the record at {} has no valid p (p={}) but a valid rua, so receivers act as if p=none (RFC 7489 §6.6.3)",
                name(s),
                clip(p.record.p_text.as_deref().unwrap_or(""))
            )),
            (Some(d), _) => other.push(format!("p={}", d.as_str())),
            (None, _) => {}
        }
    }
    if none.is_empty() && other.is_empty() {
        return None;
    }
    Some(verdict(
        !none.is_empty(),
        || format!("{}: receivers only report mail that fails DMARC and deliver it as usual", none.join("; ")),
        || format!("policy {}", other.join(", ")),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::checks::fixtures::{cfg, good, set_txt};

    const NAME: &str = "_dmarc.example.test";

    #[test]
    fn good_passes() {
        let s = good();
        for f in [dmarc_missing, dmarc_multiple, dmarc_invalid, dmarc_policy_none] {
            let v = f(&s, &cfg()).unwrap();
            assert!(!v.failed(), "{v:?}");
        }
        assert_eq!(dmarc_policy_none(&s, &cfg()).unwrap().message(), "policy p=reject");
    }

    #[test]
    fn missing() {
        let mut s = good();
        set_txt(&mut s, NAME, &[]);
        let v = dmarc_missing(&s, &cfg()).unwrap();
        assert!(v.failed());
        assert_eq!(
            v.message(),
            "no DMARC record at _dmarc.example.test on ns1.example.test (192.0.2.1) and ns2.example.test (192.0.2.2); receivers apply no DMARC policy to mail from example.test (RFC 7489 §6.6.3)"
        );
        for f in [dmarc_multiple, dmarc_invalid, dmarc_policy_none] {
            assert!(f(&s, &cfg()).is_none());
        }
        set_txt(&mut s, NAME, &["v=dmarc1; p=none"]);
        let v = dmarc_missing(&s, &cfg()).unwrap();
        assert!(
            v.failed()
                && v.message().ends_with(
                    "ignored because the version is not exactly v=DMARC1 (RFC 7489 §6.3): \"v=dmarc1; p=none\""
                ),
            "{v:?}"
        );
        // a server that did not answer leaves the check to the others; none answered: not evaluated
        for x in &mut s.servers {
            x.txt.insert(NAME.into(), None);
        }
        assert!(dmarc_missing(&s, &cfg()).is_none());
    }

    #[test]
    fn multiple_and_invalid() {
        let mut s = good();
        set_txt(&mut s, NAME, &["v=DMARC1; p=reject; rua=mailto:dmarc@example.test", "v=DMARC1; p=quarantine"]);
        let v = dmarc_multiple(&s, &cfg()).unwrap();
        assert!(v.failed() && v.message().starts_with("ns1.example.test (192.0.2.1) and ns2.example.test (192.0.2.2) serve 2 DMARC records at _dmarc.example.test"), "{v:?}");
        assert!(!dmarc_invalid(&s, &cfg()).unwrap().failed());
        assert!(dmarc_policy_none(&s, &cfg()).is_none());
        set_txt(&mut s, NAME, &["v=DMARC1; p=maybe; pct=200"]);
        let v = dmarc_invalid(&s, &cfg()).unwrap();
        assert_eq!(
            v.message(),
            "the DMARC record \"v=DMARC1; p=maybe; pct=200\" (served by ns1.example.test (192.0.2.1) and ns2.example.test (192.0.2.2)) is invalid: p=maybe is not a policy (none, quarantine or reject); pct=200 is above 100"
        );
        assert!(dmarc_policy_none(&s, &cfg()).is_none(), "no policy applies");
        assert!(!dmarc_multiple(&s, &cfg()).unwrap().failed());
    }

    #[test]
    fn servers_disagree() {
        let mut s = good();
        s.servers[1].txt.insert(NAME.into(), Some(vec!["v=DMARC1; p=none".into()]));
        let v = dmarc_invalid(&s, &cfg()).unwrap();
        assert!(v.failed());
        assert!(v.message().contains("servers disagree on the DMARC record at _dmarc.example.test: ns2.example.test (192.0.2.2) serves \"v=DMARC1; p=none\"; ns1.example.test (192.0.2.1) serves \"v=DMARC1; p=reject; rua=mailto:dmarc@example.test\""), "{v:?}");
        let v = dmarc_policy_none(&s, &cfg()).unwrap();
        assert!(
            v.failed()
                && v.message()
                    .starts_with("example.test publishes p=none at _dmarc.example.test (ns2.example.test (192.0.2.2))"),
            "{v:?}"
        );
    }

    #[test]
    fn policy_none() {
        let mut s = good();
        set_txt(&mut s, NAME, &["v=DMARC1; p=none; rua=mailto:d@example.test"]);
        let v = dmarc_policy_none(&s, &cfg()).unwrap();
        assert!(
            v.failed() && v.message().ends_with("receivers only report mail that fails DMARC and deliver it as usual")
        );
        set_txt(&mut s, NAME, &["v=DMARC1; p=maybe; rua=mailto:d@example.test"]);
        let v = dmarc_policy_none(&s, &cfg()).unwrap();
        assert!(v.failed() && v.message().contains("no valid p (p=maybe) but a valid rua"), "{v:?}");
        assert!(dmarc_invalid(&s, &cfg()).unwrap().failed());
    }
}
