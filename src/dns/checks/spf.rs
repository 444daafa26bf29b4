//! SPF checks (RFC 7208): is there exactly one `v=spf1` record at the domain on
//! every authoritative server, does it (and everything it includes) parse, and does
//! an evaluation stay within the limits of §4.6.4?
//!
//! The records come from each server directly; the expansion of `include` and
//! `redirect` comes through the resolvers, as a receiver would see it, replayed
//! over the answers gathered in the round ([`rec::walk`]).
//!
//! Servers that disagree on the SPF record fail `spf_invalid`: a receiver gets one
//! policy or the other depending on the server its resolver asked, so the policy
//! cannot be relied on, and the message names each server and what it serves.
//! The checks other than `spf_missing` are evaluated only when a record exists.

use super::served::{Served, disagreement, distinct, labels, multiple, present, quoted, served};
use super::{Verdict, verdict};
use crate::config::DomainConfig;
use crate::dns::records::clip;
use crate::dns::records::spf as rec;
use crate::dns::snapshot::Snapshot;

fn spf_served(s: &Snapshot) -> Option<Vec<Served<'_>>> {
    served(s, &s.domain, rec::is_spf)
}

/// Each distinct parseable SPF record and its walk over the round's answers.
fn walks(s: &Snapshot) -> Vec<(String, rec::Walk)> {
    let Some(served) = spf_served(s) else { return Vec::new() };
    distinct(&served)
        .into_iter()
        .filter_map(|(text, _)| rec::parse(&text).ok().map(|r| (text, rec::walk(&s.domain, &r, &s.policy.spf))))
        .collect()
}

/// Why a walk is incomplete, for messages.
fn incomplete(s: &Snapshot, w: &rec::Walk) -> Vec<String> {
    let mut why = w.temporary.clone();
    if !w.needs.is_empty() {
        why.push(s.policy.spf.stopped.clone().unwrap_or_else(|| "the expansion was not finished".to_string()));
    }
    why
}

/// The number of DNS-querying terms of the domain's SPF policy (the largest, when
/// servers disagree), for `mailroute_dns_spf_lookups`: known when the expansion is
/// complete or already over the limit.
pub fn lookup_count(s: &Snapshot) -> Option<usize> {
    let walks = walks(s);
    if walks.is_empty() || !walks.iter().all(|(_, w)| w.complete() || w.lookups > rec::LOOKUP_LIMIT) {
        return None;
    }
    walks.iter().map(|(_, w)| w.lookups).max()
}

/// `spf_missing`: no server serves a `v=spf1` record at the domain (RFC 7208 §4.5:
/// the result is `none`).
pub fn spf_missing(s: &Snapshot, _: &DomainConfig) -> Option<Verdict> {
    let served = spf_served(s)?;
    Some(verdict(
        !present(&served),
        || {
            let servers: Vec<_> = served.iter().map(|x| x.server).collect();
            format!(
                "{} publishes no SPF record (no TXT record starting with v=spf1 on {}); receivers get the SPF result none and cannot tell forged mail from it (RFC 7208 §4.5)",
                s.domain,
                labels(&servers)
            )
        },
        || {
            let records: Vec<String> = distinct(&served).into_iter().map(|(r, _)| r).collect();
            format!("SPF record: {}", quoted(&records))
        },
    ))
}

/// `spf_multiple`: a server serves more than one SPF record, a permerror (§4.5).
pub fn spf_multiple(s: &Snapshot, _: &DomainConfig) -> Option<Verdict> {
    let served = spf_served(s)?;
    if !present(&served) {
        return None;
    }
    let bad = multiple(&served, "SPF", &s.domain);
    Some(verdict(
        !bad.is_empty(),
        || format!("{}; receivers return permerror and apply no SPF policy (RFC 7208 §4.5)", bad.join("; ")),
        || format!("{} server(s) serve one SPF record each", served.len()),
    ))
}

/// `spf_invalid`: the record does not parse, the expansion meets a permanent error
/// other than the limits (an include of a domain without a record, a syntax error
/// in an included record, …), or the servers disagree on the record.
pub fn spf_invalid(s: &Snapshot, _: &DomainConfig) -> Option<Verdict> {
    let served = spf_served(s)?;
    if !present(&served) {
        return None;
    }
    let mut problems: Vec<String> = Vec::new();
    let mut advice: Vec<String> = Vec::new();
    let mut unchecked: Vec<String> = Vec::new();
    if let Some(d) = disagreement(s, &served, "the SPF record", &s.domain) {
        problems.push(d);
    }
    for (text, servers) in distinct(&served) {
        match rec::parse(&text) {
            Err(errs) => problems.push(format!(
                "the SPF record {:?} (served by {}) is invalid: {}",
                clip(&text),
                labels(&servers),
                rec::errors_text(&errs)
            )),
            Ok(r) => {
                let w = rec::walk(&s.domain, &r, &s.policy.spf);
                for e in &w.errors {
                    if !problems.contains(e) {
                        problems.push(e.clone());
                    }
                }
                advice.extend(r.advice());
                unchecked.extend(incomplete(s, &w));
            }
        }
    }
    Some(verdict(
        !problems.is_empty(),
        || format!("{}; receivers return permerror (RFC 7208 §4.6, §5)", problems.join("; ")),
        || {
            let records: Vec<String> = distinct(&served).into_iter().map(|(r, _)| r).collect();
            let mut m = format!("valid: {}", quoted(&records));
            if !advice.is_empty() {
                m.push_str(&format!(" (note: {})", advice.join("; ")));
            }
            if !unchecked.is_empty() {
                m.push_str(&format!(" (not checked: {})", unchecked.join("; ")));
            }
            m
        },
    ))
}

/// `spf_lookup_limit`: an evaluation needs more than 10 DNS-querying terms, runs in
/// an include loop, or meets an `mx` term with more than 10 exchanges (§4.6.4).
pub fn spf_lookup_limit(s: &Snapshot, _: &DomainConfig) -> Option<Verdict> {
    let walks = walks(s);
    if walks.is_empty() {
        return None;
    }
    let several = walks.len() > 1;
    let mut bad: Vec<String> = Vec::new();
    for (text, w) in &walks {
        if !w.over_limit() {
            continue;
        }
        let mut why: Vec<String> = Vec::new();
        if let Some(chain) = &w.loop_path {
            let at = w.over_limit_at.as_deref().map_or(String::new(), |t| format!(", at {t}"));
            why.push(format!(
                "include loop {}: an evaluator goes round it until it exceeds the limit of {} DNS-querying terms{at}",
                chain.join(" → "),
                rec::LOOKUP_LIMIT
            ));
        } else if w.lookups > rec::LOOKUP_LIMIT {
            let count = if w.gave_up { format!("at least {}", w.lookups) } else { w.lookups.to_string() };
            let at = w.over_limit_at.as_deref().map_or(String::new(), |t| format!("; the 11th is {t}"));
            why.push(format!(
                "the SPF policy of {} needs {count} DNS-querying terms (limit {}){at}",
                s.domain,
                rec::LOOKUP_LIMIT
            ));
        }
        why.extend(w.mx_over.iter().cloned());
        let prefix = if several { format!("record {:?}: ", clip(text)) } else { String::new() };
        bad.push(format!("{prefix}{}", why.join("; ")));
    }
    if bad.is_empty() && walks.iter().any(|(_, w)| !w.complete()) {
        return None;
    }
    Some(verdict(
        !bad.is_empty(),
        || format!("{}; receivers return permerror (RFC 7208 §4.6.4)", bad.join("; ")),
        || {
            let counts: Vec<String> = walks.iter().map(|(_, w)| w.lookups.to_string()).collect();
            format!("{} DNS-querying term(s) (limit {})", counts.join(" and "), rec::LOOKUP_LIMIT)
        },
    ))
}

/// `spf_void_lookup_limit`: an evaluation meets more than 2 lookups that return
/// NXDOMAIN or no records (§4.6.4).
pub fn spf_void_lookup_limit(s: &Snapshot, _: &DomainConfig) -> Option<Verdict> {
    let walks = walks(s);
    if walks.is_empty() {
        return None;
    }
    let several = walks.len() > 1;
    let bad: Vec<String> = walks
        .iter()
        .filter(|(_, w)| w.voids.len() > rec::VOID_LIMIT)
        .map(|(text, w)| {
            let prefix = if several { format!("record {:?}: ", clip(text)) } else { String::new() };
            format!("{prefix}{} void lookups (limit {}): {}", w.voids.len(), rec::VOID_LIMIT, w.voids.join(", "))
        })
        .collect();
    if bad.is_empty() && walks.iter().any(|(_, w)| !w.complete()) {
        return None;
    }
    Some(verdict(
        !bad.is_empty(),
        || format!("{}; receivers return permerror (RFC 7208 §4.6.4)", bad.join("; ")),
        || {
            let counts: Vec<String> = walks.iter().map(|(_, w)| w.voids.len().to_string()).collect();
            format!("{} void lookup(s) (limit {})", counts.join(" and "), rec::VOID_LIMIT)
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::checks::fixtures::{cfg, good, set_txt};
    use crate::dns::snapshot::Lookup;

    const ALL: [super::super::CheckFn; 5] =
        [spf_missing, spf_multiple, spf_invalid, spf_lookup_limit, spf_void_lookup_limit];

    #[test]
    fn good_passes() {
        let s = good();
        for f in ALL {
            let v = f(&s, &cfg()).unwrap();
            assert!(!v.failed(), "{v:?}");
        }
        assert_eq!(spf_missing(&s, &cfg()).unwrap().message(), "SPF record: \"v=spf1 mx -all\"");
        assert_eq!(spf_invalid(&s, &cfg()).unwrap().message(), "valid: \"v=spf1 mx -all\"");
        assert_eq!(spf_lookup_limit(&s, &cfg()).unwrap().message(), "1 DNS-querying term(s) (limit 10)");
        assert_eq!(spf_void_lookup_limit(&s, &cfg()).unwrap().message(), "0 void lookup(s) (limit 2)");
        assert_eq!(lookup_count(&s), Some(1));
    }

    #[test]
    fn missing() {
        let mut s = good();
        set_txt(&mut s, "example.test", &["google-site-verification=abc"]);
        let v = spf_missing(&s, &cfg()).unwrap();
        assert!(v.failed());
        assert!(v.message().starts_with("example.test publishes no SPF record (no TXT record starting with v=spf1 on ns1.example.test (192.0.2.1) and ns2.example.test (192.0.2.2))"), "{v:?}");
        for f in &ALL[1..] {
            assert!(f(&s, &cfg()).is_none());
        }
        assert_eq!(lookup_count(&s), None);
    }

    #[test]
    fn multiple_invalid_and_disagreeing() {
        let mut s = good();
        set_txt(&mut s, "example.test", &["v=spf1 mx -all", "v=spf1 -all"]);
        let v = spf_multiple(&s, &cfg()).unwrap();
        assert_eq!(
            v.message(),
            "ns1.example.test (192.0.2.1) and ns2.example.test (192.0.2.2) serve 2 SPF records at example.test: \"v=spf1 -all\", \"v=spf1 mx -all\"; receivers return permerror and apply no SPF policy (RFC 7208 §4.5)"
        );
        set_txt(&mut s, "example.test", &["v=spf1 mx foo:bar -all"]);
        let v = spf_invalid(&s, &cfg()).unwrap();
        assert!(
            v.failed() && v.message().contains("is invalid: term 2 \"foo:bar\": unknown mechanism \"foo\""),
            "{v:?}"
        );
        assert!(spf_lookup_limit(&s, &cfg()).is_none(), "nothing to walk");
        set_txt(&mut s, "example.test", &["v=spf1 mx -all"]);
        s.servers[1].txt.insert("example.test".into(), Some(vec!["v=spf1 mx ~all".into()]));
        let v = spf_invalid(&s, &cfg()).unwrap();
        assert_eq!(
            v.message(),
            "servers disagree on the SPF record at example.test: ns1.example.test (192.0.2.1) serves \"v=spf1 mx -all\"; ns2.example.test (192.0.2.2) serves \"v=spf1 mx ~all\"; receivers return permerror (RFC 7208 §4.6, §5)"
        );
        // a server without the record: not missing, but disagreeing
        s.servers[1].txt.insert("example.test".into(), Some(vec![]));
        assert!(!spf_missing(&s, &cfg()).unwrap().failed());
        assert!(spf_invalid(&s, &cfg()).unwrap().message().contains("ns2.example.test (192.0.2.2) serves nothing"));
        // a third server that failed the TXT query is named as left out, with why
        let mut third = s.servers[0].clone();
        third.name = "ns3.example.test".into();
        third.address = "192.0.2.3".parse().unwrap();
        third.txt.insert("example.test".into(), None);
        third.query_failures.insert("example.test TXT".into(), "answered SERVFAIL".into());
        s.servers.push(third);
        let v = spf_invalid(&s, &cfg()).unwrap();
        assert!(
            v.message().contains("(left out: ns3.example.test (192.0.2.3) example.test TXT answered SERVFAIL)"),
            "{v:?}"
        );
    }

    #[test]
    fn an_include_without_a_record_is_invalid() {
        let mut s = good();
        set_txt(&mut s, "example.test", &["v=spf1 include:_spf.gone.test -all"]);
        s.policy.spf.txt.insert("_spf.gone.test".into(), Lookup::Void { nxdomain: true });
        let v = spf_invalid(&s, &cfg()).unwrap();
        assert!(
            v.message().starts_with("include:_spf.gone.test: _spf.gone.test has no SPF record (NXDOMAIN)"),
            "{v:?}"
        );
        assert!(!spf_void_lookup_limit(&s, &cfg()).unwrap().failed(), "one void lookup");
    }

    #[test]
    fn limits() {
        let mut s = good();
        let includes: Vec<String> = (0..11).map(|i| format!("include:i{i}.example.test")).collect();
        set_txt(&mut s, "example.test", &[&format!("v=spf1 {} -all", includes.join(" "))]);
        for i in 0..11 {
            s.policy
                .spf
                .txt
                .insert(format!("i{i}.example.test"), Lookup::Found(vec!["v=spf1 ip4:192.0.2.1 -all".into()]));
        }
        let v = spf_lookup_limit(&s, &cfg()).unwrap();
        assert_eq!(
            v.message(),
            "the SPF policy of example.test needs 11 DNS-querying terms (limit 10); the 11th is include:i10.example.test; receivers return permerror (RFC 7208 §4.6.4)"
        );
        assert_eq!(lookup_count(&s), Some(11));
        // three void lookups
        set_txt(&mut s, "example.test", &["v=spf1 a:v1.example.test a:v2.example.test exists:v3.example.test -all"]);
        for n in ["v1", "v2", "v3"] {
            s.policy.spf.addresses.insert(format!("{n}.example.test"), Lookup::Void { nxdomain: n != "v2" });
        }
        let v = spf_void_lookup_limit(&s, &cfg()).unwrap();
        assert_eq!(
            v.message(),
            "3 void lookups (limit 2): a:v1.example.test (NXDOMAIN), a:v2.example.test (no records), exists:v3.example.test (NXDOMAIN); receivers return permerror (RFC 7208 §4.6.4)"
        );
    }

    #[test]
    fn unfinished_expansions_are_not_judged() {
        let mut s = good();
        set_txt(&mut s, "example.test", &["v=spf1 include:slow.example.test -all"]);
        s.policy.spf.txt.insert("slow.example.test".into(), Lookup::Failed("timeout".into()));
        assert!(spf_lookup_limit(&s, &cfg()).is_none());
        assert!(spf_void_lookup_limit(&s, &cfg()).is_none());
        assert_eq!(lookup_count(&s), None);
        let v = spf_invalid(&s, &cfg()).unwrap();
        assert!(!v.failed() && v.message().ends_with("(not checked: include:slow.example.test: timeout)"), "{v:?}");
    }
}
