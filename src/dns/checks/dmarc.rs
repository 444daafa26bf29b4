//! DMARC checks (RFC 7489): exactly one valid `v=DMARC1` record at
//! `_dmarc.<domain>` on every authoritative server (§6.6.3), and a policy that
//! does something.
//!
//! A record whose version is not exactly `v=DMARC1` is ignored by receivers
//! (§6.3), so it counts as no record; `dmarc_missing` names it. Servers that
//! disagree on the record fail `dmarc_invalid`, naming each server.
//!
//! Organisational domain (RFC 7489 §6.6.3): when the domain has no record of its
//! own, receivers look up `_dmarc.<organisational domain>` (the public suffix plus
//! one label, from the Public Suffix List) and apply that record. `dmarc_missing`
//! does the same: it passes when exactly one DMARC record is published there, and
//! its message says which record applied. A failed lookup of the fallback is not
//! taken as absence: the check then fails and says the lookup failed. The other
//! DMARC checks judge the domain's own record only.

use super::served::{Served, disagreement, distinct, labels, multiple, present, quoted, served};
use super::{Verdict, verdict};
use crate::config::DomainConfig;
use crate::dns::records::clip;
use crate::dns::records::dmarc::{Disposition, is_dmarc, looks_like_dmarc, parse};
use crate::dns::snapshot::{Lookup, OrgDmarc, Snapshot, void_text};

fn name(s: &Snapshot) -> String {
    format!("_dmarc.{}", s.domain)
}

fn dmarc_served(s: &Snapshot) -> Option<Vec<Served<'_>>> {
    served(s, &name(s), is_dmarc)
}

/// `dmarc_missing`: no DMARC record at `_dmarc.<domain>`, and none that applies
/// from the organisational domain (RFC 7489 §6.6.3).
pub fn dmarc_missing(s: &Snapshot, _: &DomainConfig) -> Option<Verdict> {
    let all = served(s, &name(s), |_| true)?;
    let records = dmarc_served(s)?;
    if present(&records) {
        let own = distinct(&records).into_iter().map(|(r, _)| r).collect::<Vec<_>>();
        return Some(Verdict::Pass(format!("DMARC record: {}", quoted(&own))));
    }
    let fallback = s.policy.dmarc_org.as_ref().map(org_fallback);
    if let Some(Ok(applied)) = fallback {
        return Some(Verdict::Pass(applied));
    }
    let servers: Vec<_> = all.iter().map(|x| x.server).collect();
    let ignored: Vec<String> = distinct(&all).into_iter().map(|(r, _)| r).filter(|r| looks_like_dmarc(r)).collect();
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
    if let Some(Err(why)) = fallback {
        m.push_str(&format!("; {why}"));
    }
    Some(Verdict::Fail(m))
}

/// Whether the organisational domain's record applies: `Ok(message)` naming the
/// record when exactly one DMARC record is published there, else `Err(why not)`.
fn org_fallback(org: &OrgDmarc) -> Result<String, String> {
    let at = format!("_dmarc.{}", org.domain);
    match &org.records {
        Lookup::Failed(e) => Err(format!("the organisational domain's record could not be read ({e})")),
        Lookup::Void { nxdomain } => {
            Err(format!("the organisational domain {} has none either ({at}: {})", org.domain, void_text(*nxdomain)))
        }
        Lookup::Found(txt) => {
            let dmarc: Vec<String> = txt.iter().filter(|r| is_dmarc(r)).cloned().collect();
            match dmarc.as_slice() {
                [one] => Ok(format!(
                    "no record of its own; receivers apply the organisational domain's record at {at} (RFC 7489 §6.6.3): {}",
                    quoted(std::slice::from_ref(one))
                )),
                [] => Err(format!("the organisational domain {} has none either ({at})", org.domain)),
                many => Err(format!(
                    "the organisational domain's {} records at {at} cancel each other out (RFC 7489 §6.6.3)",
                    many.len()
                )),
            }
        }
    }
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
    fn organisational_domain_fallback() {
        let mut s = good();
        set_txt(&mut s, NAME, &[]);
        let org = |records| Some(OrgDmarc { domain: "example.test".into(), records });
        // the org record applies: pass, naming it
        s.policy.dmarc_org = org(Lookup::Found(vec!["v=spf1 -all".into(), "v=DMARC1; p=reject".into()]));
        let v = dmarc_missing(&s, &cfg()).unwrap();
        assert_eq!(
            v,
            Verdict::Pass("no record of its own; receivers apply the organisational domain's record at _dmarc.example.test (RFC 7489 §6.6.3): \"v=DMARC1; p=reject\"".into())
        );
        // none there either
        s.policy.dmarc_org = org(Lookup::Void { nxdomain: true });
        let v = dmarc_missing(&s, &cfg()).unwrap();
        assert!(
            v.failed()
                && v.message().ends_with(
                    "; the organisational domain example.test has none either (_dmarc.example.test: NXDOMAIN)"
                ),
            "{v:?}"
        );
        s.policy.dmarc_org = org(Lookup::Found(vec!["v=DMARC1; p=reject".into(), "v=DMARC1; p=none".into()]));
        let v = dmarc_missing(&s, &cfg()).unwrap();
        assert!(v.failed() && v.message().contains("2 records at _dmarc.example.test cancel each other out"), "{v:?}");
        s.policy.dmarc_org = org(Lookup::Found(vec!["v=dmarc1; p=reject".into()]));
        assert!(dmarc_missing(&s, &cfg()).unwrap().failed());
        // never green when blind: a failed lookup is not a pass
        s.policy.dmarc_org = org(Lookup::Failed("timeout".into()));
        let v = dmarc_missing(&s, &cfg()).unwrap();
        assert!(v.failed() && v.message().ends_with("the organisational domain's record could not be read (timeout)"));
        // the domain's own record wins over the org's
        set_txt(&mut s, NAME, &["v=DMARC1; p=quarantine"]);
        assert_eq!(
            dmarc_missing(&s, &cfg()).unwrap(),
            Verdict::Pass("DMARC record: \"v=DMARC1; p=quarantine\"".into())
        );
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
