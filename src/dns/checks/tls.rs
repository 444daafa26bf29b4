//! SMTP TLS checks: the MTA-STS policy behind a valid `_mta-sts` record (RFC 8461).
//!
//! - `mta_sts_policy_unavailable` (RFC 8461 §3.3): the policy cannot be fetched
//!   from `https://mta-sts.<domain>/.well-known/mta-sts.txt` with a valid
//!   certificate and a `200` (no redirects, at most 64 KiB, within the timeouts).
//!   Senders then keep a cached policy or deliver without one.
//! - `mta_sts_policy_invalid` (RFC 8461 §3.2): the body is not a valid policy, or
//!   is not served as `text/plain`.
//! - `mta_sts_mx_mismatch` (RFC 8461 §4.1, §5): the mode is `enforce` and an MX
//!   exchange matches none of the `mx` patterns: enforcing senders will not deliver
//!   to it.
//!
//! Each is evaluated only when there is something to judge: a valid `_mta-sts`
//! record (the record itself is `mta_sts_invalid`'s), then a body, then a policy.
//!
//! With `starttls_probe` (see [`crate::dns::starttls`]), per MX address:
//! - `mx_starttls_unavailable` (RFC 3207): no connection, no STARTTLS in the EHLO
//!   reply, STARTTLS refused, or the handshake failed. A probe that could not run
//!   fails too: never green when blind.
//! - `mx_certificate_invalid` (RFC 5280 §6, RFC 6125 / RFC 7672 §3.2.2 for the name
//!   a sender checks): the chain does not validate to a trusted root (Mozilla roots
//!   plus `ca_file`) for the MX name, is expired or not yet valid.
//! - `mx_certificate_expiring`: the leaf expires within `certificate_expiry_warning`
//!   (an already expired leaf is `mx_certificate_invalid`'s).

use super::Verdict;
use crate::config::DomainConfig;
use crate::dns::records::sts_policy::{Mode, StsPolicy, parse_policy, policy_matches};
use crate::dns::snapshot::{MtaStsFetch, Snapshot, StarttlsOutcome, StarttlsProbe, StsFetched};

fn fetched(s: &Snapshot) -> Option<(&MtaStsFetch, &StsFetched)> {
    let f = s.policy.mta_sts.as_ref()?;
    f.result.as_ref().ok().map(|b| (f, b))
}

/// Is the media type `text/plain` (parameters such as `charset` allowed)?
fn is_text_plain(content_type: Option<&str>) -> bool {
    content_type.and_then(|c| c.split(';').next()).is_some_and(|t| t.trim().eq_ignore_ascii_case("text/plain"))
}

/// The parsed policy, when it is valid.
pub fn valid_policy(s: &Snapshot) -> Option<StsPolicy> {
    let (_, b) = fetched(s)?;
    parse_policy(&b.body).ok()
}

/// `mta_sts_policy_unavailable`: the `_mta-sts` record exists but the policy cannot
/// be fetched with a valid certificate.
pub fn mta_sts_policy_unavailable(s: &Snapshot, _: &DomainConfig) -> Option<Verdict> {
    let f = s.policy.mta_sts.as_ref()?;
    Some(match &f.result {
        Err(e) => Verdict::Fail(format!(
            "_mta-sts.{} announces policy id {} but {} cannot be fetched: {e}; senders deliver without MTA-STS (RFC 8461 §3.3)",
            s.domain, f.id, f.url
        )),
        Ok(b) => Verdict::Pass(format!(
            "{} fetched from {}{}",
            f.url,
            b.address,
            if b.cached { " (kept from an earlier round: same id, max_age not run out)" } else { "" }
        )),
    })
}

/// `mta_sts_policy_invalid`: the fetched policy does not parse.
pub fn mta_sts_policy_invalid(s: &Snapshot, _: &DomainConfig) -> Option<Verdict> {
    let (f, b) = fetched(s)?;
    let mut problems = match parse_policy(&b.body) {
        Ok(_) => Vec::new(),
        Err(e) => e,
    };
    if !is_text_plain(b.content_type.as_deref()) {
        problems.push(format!(
            "served as {} instead of text/plain",
            b.content_type
                .as_deref()
                .map_or("no media type".to_string(), |c| format!("{:?}", crate::dns::records::clip(c)))
        ));
    }
    Some(match parse_policy(&b.body) {
        Ok(p) if problems.is_empty() => Verdict::Pass(format!(
            "mode {}, max_age {}, mx {}",
            p.mode.as_str(),
            p.max_age,
            if p.mx.is_empty() { "(none)".to_string() } else { p.mx.join(", ") }
        )),
        _ => Verdict::Fail(format!(
            "the policy at {} is invalid: {}; senders ignore it (RFC 8461 §3.2)",
            f.url,
            problems.join("; ")
        )),
    })
}

/// `mta_sts_mx_mismatch`: in `enforce` mode, an MX exchange matches no `mx`
/// pattern.
pub fn mta_sts_mx_mismatch(s: &Snapshot, _: &DomainConfig) -> Option<Verdict> {
    let p = valid_policy(s)?;
    let exchanges: Vec<String> = s.mx_union().into_iter().filter(|m| !m.is_null()).map(|m| m.exchange).collect();
    if exchanges.is_empty() {
        return None;
    }
    let unmatched: Vec<&String> = exchanges.iter().filter(|e| !policy_matches(&p, e)).collect();
    let patterns = if p.mx.is_empty() { "(none)".to_string() } else { p.mx.join(", ") };
    Some(if p.mode == Mode::Enforce && !unmatched.is_empty() {
        Verdict::Fail(format!(
            "the MTA-STS policy is in enforce mode and MX {} match(es) none of its mx patterns ({patterns}): enforcing senders will not deliver to {} (RFC 8461 §4.1, §5)",
            unmatched.iter().map(|e| e.as_str()).collect::<Vec<_>>().join(", "),
            if unmatched.len() == 1 { "it" } else { "them" }
        ))
    } else if !unmatched.is_empty() {
        Verdict::Pass(format!(
            "mode {}: MX {} match(es) no mx pattern ({patterns}), which senders only report",
            p.mode.as_str(),
            unmatched.iter().map(|e| e.as_str()).collect::<Vec<_>>().join(", ")
        ))
    } else {
        Verdict::Pass(format!("mode {}: every MX matches the mx patterns ({patterns})", p.mode.as_str()))
    })
}

fn probe_label(p: &StarttlsProbe) -> String {
    format!("{} ({}:{})", p.exchange, p.address, p.port)
}

pub use crate::logging::utc;

/// `mx_starttls_unavailable`: an MX address offers no STARTTLS or the handshake
/// fails.
pub fn mx_starttls_unavailable(s: &Snapshot, _: &DomainConfig) -> Option<Verdict> {
    let st = s.policy.starttls.as_ref()?;
    if st.probes.is_empty() {
        return (!s.mx_hosts.is_empty())
            .then(|| Verdict::Fail("no MX address to probe: no exchange resolved to an address".to_string()));
    }
    let bad: Vec<String> = st
        .probes
        .iter()
        .filter_map(|p| match &p.outcome {
            StarttlsOutcome::Failed { step, detail } => {
                Some(format!("{}: {step} failed: {}", probe_label(p), crate::dns::records::clip(detail)))
            }
            StarttlsOutcome::Tls { .. } => None,
        })
        .collect();
    Some(if bad.is_empty() {
        Verdict::Pass(format!("{} MX address(es) offer STARTTLS and complete the handshake", st.probes.len()))
    } else {
        Verdict::Fail(format!(
            "{}; senders deliver in clear text or, under MTA-STS or DANE, not at all",
            bad.join("; ")
        ))
    })
}

/// `mx_certificate_invalid`: an MX certificate is expired, not yet valid,
/// untrusted, or not for the MX name.
pub fn mx_certificate_invalid(s: &Snapshot, _: &DomainConfig) -> Option<Verdict> {
    let st = s.policy.starttls.as_ref()?;
    let mut seen = 0;
    let mut bad = Vec::new();
    for p in &st.probes {
        if let StarttlsOutcome::Tls { invalid, .. } = &p.outcome {
            seen += 1;
            if let Some(why) = invalid {
                bad.push(format!("{}: {}", probe_label(p), crate::dns::records::clip(why)));
            }
        }
    }
    if seen == 0 {
        return None;
    }
    Some(if bad.is_empty() {
        Verdict::Pass(format!("{seen} certificate(s) valid for their MX name"))
    } else {
        Verdict::Fail(format!(
            "{}; senders that authenticate the MX (MTA-STS enforce, DANE) will not deliver",
            bad.join("; ")
        ))
    })
}

/// `mx_certificate_expiring`: an MX certificate expires within
/// `certificate_expiry_warning`.
pub fn mx_certificate_expiring(s: &Snapshot, _: &DomainConfig) -> Option<Verdict> {
    let st = s.policy.starttls.as_ref()?;
    let warn = i64::try_from(st.warning_seconds).unwrap_or(i64::MAX);
    let mut seen = Vec::new();
    let mut bad = Vec::new();
    for p in &st.probes {
        if let StarttlsOutcome::Tls { not_after: Some(na), .. } = &p.outcome {
            seen.push(*na);
            let left = na - st.at;
            // an expired certificate is mx_certificate_invalid's
            if (0..warn).contains(&left) {
                bad.push(format!("{}: expires at {}, in {} day(s)", probe_label(p), utc(*na), left / 86400));
            }
        }
    }
    let earliest = seen.iter().min()?;
    Some(if bad.is_empty() {
        Verdict::Pass(format!("the earliest MX certificate expiry is {}", utc(*earliest)))
    } else {
        Verdict::Fail(format!("{} (certificate_expiry_warning {} day(s))", bad.join("; "), st.warning_seconds / 86400))
    })
}

/// `dane_tlsa_mismatch`: an MX host has TLSA records at `_25._tcp.<MX>` in a
/// signed zone (the resolver validated them: AD) and the chain it presented
/// after STARTTLS matches none of the usable ones (RFC 7672 §3, matching rules in
/// [`crate::dns::dane`]). A failed TLSA lookup fails too: DANE senders defer then
/// (RFC 7672 §2.1.1). Records that did not validate are not trusted and not
/// judged (the message says so). Evaluated with `starttls_probe` when some MX has
/// TLSA records or a failed lookup.
///
/// The signed status is the resolver's AD bit for the TLSA answer; the DNSSEC
/// work of the exporter (DS at the parent, RRSIG verification) may replace it.
pub fn dane_tlsa_mismatch(s: &Snapshot, _: &DomainConfig) -> Option<Verdict> {
    use crate::dns::dane::{DaneMatch, tlsa_match};
    use crate::dns::snapshot::Lookup;
    let st = s.policy.starttls.as_ref()?;
    let mut bad = Vec::new();
    let mut ok = Vec::new();
    let mut untrusted = Vec::new();
    for (exchange, d) in &s.policy.dane {
        match &d.tlsa {
            Lookup::Void { .. } => {}
            Lookup::Failed(e) => bad.push(format!("the TLSA lookup for {exchange} failed ({e}); DANE senders defer")),
            Lookup::Found(_) if !d.validated => untrusted.push(d.name.clone()),
            Lookup::Found(records) => {
                for p in st.probes.iter().filter(|p| &p.exchange == exchange) {
                    let StarttlsOutcome::Tls { chain, .. } = &p.outcome else { continue };
                    let texts = records.iter().map(|r| r.text()).collect::<Vec<_>>().join(", ");
                    match tlsa_match(records, chain) {
                        DaneMatch::Match { record, cert } => ok.push(format!(
                            "{}: TLSA {} matches the {}",
                            probe_label(p),
                            records[record].text(),
                            if cert == 0 { "certificate".to_string() } else { format!("issuer certificate {cert}") }
                        )),
                        DaneMatch::NoMatch => bad.push(format!(
                            "{}: the presented chain matches none of the TLSA records at {} ({texts})",
                            probe_label(p),
                            d.name
                        )),
                        DaneMatch::Unusable => ok.push(format!(
                            "{}: no TLSA record at {} is usable for SMTP ({texts}): DANE does not apply",
                            probe_label(p),
                            d.name
                        )),
                    }
                }
            }
        }
    }
    if bad.is_empty() && ok.is_empty() && untrusted.is_empty() {
        return None;
    }
    let mut tail = String::new();
    if !untrusted.is_empty() {
        tail = format!(
            "; TLSA records at {} are not trusted: the answer did not validate (zone not signed?)",
            untrusted.join(", ")
        );
    }
    Some(if bad.is_empty() {
        Verdict::Pass(format!(
            "{}{tail}",
            if ok.is_empty() { "no trusted TLSA records".to_string() } else { ok.join("; ") }
        ))
    } else {
        Verdict::Fail(format!("{}: DANE senders will not deliver (RFC 7672 §3){tail}", bad.join("; ")))
    })
}

/// The SMTP TLS facts of a round in words, for the status page: the MTA-STS
/// policy and what each probed MX address presented.
pub fn summary(s: &Snapshot) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(f) = &s.policy.mta_sts {
        out.push(match (&f.result, valid_policy(s)) {
            (Err(e), _) => format!("MTA-STS: the policy (id {}) cannot be fetched: {e}.", f.id),
            (Ok(_), None) => format!("MTA-STS: the policy at {} (id {}) is invalid; senders ignore it.", f.url, f.id),
            (Ok(_), Some(p)) => format!(
                "MTA-STS: mode {} (id {}), max_age {} s, mx {}{}.",
                p.mode.as_str(),
                f.id,
                p.max_age,
                p.mx.join(", "),
                match p.mode {
                    Mode::Enforce => ": senders refuse MX hosts not listed or with an invalid certificate",
                    Mode::Testing => ": senders only report failures",
                    Mode::None => ": the policy is withdrawn",
                }
            ),
        });
    }
    if let Some(st) = &s.policy.starttls {
        for p in &st.probes {
            out.push(match &p.outcome {
                StarttlsOutcome::Failed { step, detail } => {
                    format!("{}: no TLS ({step} failed: {}).", probe_label(p), crate::dns::records::clip(detail))
                }
                StarttlsOutcome::Tls { not_after, invalid, .. } => format!(
                    "{}: STARTTLS, certificate {}{}.",
                    probe_label(p),
                    match invalid {
                        None => "valid for the MX name".to_string(),
                        Some(why) => format!("invalid ({})", crate::dns::records::clip(why)),
                    },
                    not_after.map_or(String::new(), |t| format!(", expires {}", utc(t)))
                ),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::checks::fixtures::{cfg, good, mx};
    use crate::dns::snapshot::Starttls;

    fn probes(outcomes: Vec<StarttlsOutcome>) -> Snapshot {
        let mut s = good();
        s.policy.starttls = Some(Starttls {
            at: 1_800_000_000,
            warning_seconds: 14 * 86400,
            probes: outcomes
                .into_iter()
                .enumerate()
                .map(|(i, outcome)| StarttlsProbe {
                    exchange: "mx.example.test".into(),
                    address: format!("192.0.2.{}", 10 + i).parse().unwrap(),
                    port: 25,
                    outcome,
                })
                .collect(),
        });
        s
    }

    fn tls(not_after: i64, invalid: Option<&str>) -> StarttlsOutcome {
        StarttlsOutcome::Tls {
            chain: vec![],
            not_before: Some(0),
            not_after: Some(not_after),
            invalid: invalid.map(str::to_string),
        }
    }

    #[test]
    fn summary_in_words() {
        assert!(summary(&good()).is_empty());
        let mut s = with(Ok((POLICY, Some("text/plain"))));
        s.policy.starttls = probes(vec![
            tls(1_800_000_000, None),
            StarttlsOutcome::Failed { step: "EHLO".into(), detail: "the server does not offer STARTTLS".into() },
        ])
        .policy
        .starttls;
        assert_eq!(
            summary(&s),
            vec![
                "MTA-STS: mode enforce (id 20261206), max_age 86400 s, mx mx.example.test: senders refuse MX hosts not listed or with an invalid certificate.",
                "mx.example.test (192.0.2.10:25): STARTTLS, certificate valid for the MX name, expires 2027-01-15 08:00:00 UTC.",
                "mx.example.test (192.0.2.11:25): no TLS (EHLO failed: the server does not offer STARTTLS).",
            ]
        );
    }

    #[test]
    fn dane_gated_on_validation() {
        use crate::dns::dane::Tlsa;
        use crate::dns::snapshot::{DaneLookup, Lookup};
        let pki = crate::dns::test_pki::Pki::new();
        let leaf = pki.leaf(&["mx.example.test"], -1, 90);
        let chain: Vec<Vec<u8>> = leaf.chain.iter().map(|c| c.to_vec()).collect();
        let spki = crate::dns::x509::cert_info(&chain[0]).unwrap().spki;
        let good = Tlsa {
            usage: 3,
            selector: 1,
            matching: 1,
            data: ring::digest::digest(&ring::digest::SHA256, &spki).as_ref().to_vec(),
        };
        let stale = Tlsa { data: vec![0; 32], ..good.clone() };
        let mut s = probes(vec![StarttlsOutcome::Tls {
            chain,
            not_before: None,
            not_after: Some(1_900_000_000),
            invalid: None,
        }]);
        let set = |s: &mut Snapshot, tlsa: Lookup<Vec<Tlsa>>, validated: bool| {
            s.policy.dane = [(
                "mx.example.test".to_string(),
                DaneLookup { name: "_25._tcp.mx.example.test".into(), tlsa, validated },
            )]
            .into();
        };
        assert!(dane_tlsa_mismatch(&s, &cfg()).is_none(), "no TLSA lookup: not evaluated");
        set(&mut s, Lookup::Void { nxdomain: true }, true);
        assert!(dane_tlsa_mismatch(&s, &cfg()).is_none(), "no TLSA records: not evaluated");
        set(&mut s, Lookup::Found(vec![good.clone()]), true);
        let v = dane_tlsa_mismatch(&s, &cfg()).unwrap();
        assert!(!v.failed() && v.message().starts_with("mx.example.test (192.0.2.10:25): TLSA 3 1 1 "), "{v:?}");
        set(&mut s, Lookup::Found(vec![stale.clone()]), true);
        let v = dane_tlsa_mismatch(&s, &cfg()).unwrap();
        assert_eq!(
            v,
            Verdict::Fail("mx.example.test (192.0.2.10:25): the presented chain matches none of the TLSA records at _25._tcp.mx.example.test (3 1 1 000000000000000000000000…): DANE senders will not deliver (RFC 7672 §3)".into())
        );
        // the same stale record, but not validated: not trusted, not judged
        set(&mut s, Lookup::Found(vec![stale]), false);
        let v = dane_tlsa_mismatch(&s, &cfg()).unwrap();
        assert!(!v.failed() && v.message().contains("are not trusted: the answer did not validate"), "{v:?}");
        // a failed lookup (bogus data gives SERVFAIL) fails
        set(&mut s, Lookup::Failed("resolver 127.0.0.1:53 answered ServFail".into()), false);
        assert!(dane_tlsa_mismatch(&s, &cfg()).unwrap().failed());
    }

    #[test]
    fn utc_text() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(1_800_000_000), "2027-01-15 08:00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
    }

    #[test]
    fn starttls_checks() {
        assert!(mx_starttls_unavailable(&good(), &cfg()).is_none(), "probe off: not evaluated");
        let s = probes(vec![tls(1_800_000_000 + 90 * 86400, None)]);
        assert!(!mx_starttls_unavailable(&s, &cfg()).unwrap().failed());
        assert_eq!(
            mx_certificate_invalid(&s, &cfg()).unwrap(),
            Verdict::Pass("1 certificate(s) valid for their MX name".into())
        );
        assert_eq!(
            mx_certificate_expiring(&s, &cfg()).unwrap(),
            Verdict::Pass("the earliest MX certificate expiry is 2027-04-15 08:00:00 UTC".into())
        );
        let s = probes(vec![
            StarttlsOutcome::Failed { step: "EHLO".into(), detail: "the server does not offer STARTTLS".into() },
            tls(1_800_000_000 + 5 * 86400, Some("invalid peer certificate: NotValidForName")),
            tls(1_800_000_000 - 1, Some("invalid peer certificate: Expired")),
        ]);
        assert_eq!(
            mx_starttls_unavailable(&s, &cfg()).unwrap(),
            Verdict::Fail("mx.example.test (192.0.2.10:25): EHLO failed: the server does not offer STARTTLS; senders deliver in clear text or, under MTA-STS or DANE, not at all".into())
        );
        assert_eq!(
            mx_certificate_invalid(&s, &cfg()).unwrap(),
            Verdict::Fail("mx.example.test (192.0.2.11:25): invalid peer certificate: NotValidForName; mx.example.test (192.0.2.12:25): invalid peer certificate: Expired; senders that authenticate the MX (MTA-STS enforce, DANE) will not deliver".into())
        );
        assert_eq!(
            mx_certificate_expiring(&s, &cfg()).unwrap(),
            Verdict::Fail("mx.example.test (192.0.2.11:25): expires at 2027-01-20 08:00:00 UTC, in 5 day(s) (certificate_expiry_warning 14 day(s))".into())
        );
        // only failed probes: the certificate checks have nothing to judge
        let s = probes(vec![StarttlsOutcome::Failed { step: "connect".into(), detail: "refused".into() }]);
        assert!(mx_starttls_unavailable(&s, &cfg()).unwrap().failed());
        assert!(mx_certificate_invalid(&s, &cfg()).is_none() && mx_certificate_expiring(&s, &cfg()).is_none());
        // probe on, MX exchanges but none resolved: blind is a failure
        let s = probes(vec![]);
        assert!(mx_starttls_unavailable(&s, &cfg()).unwrap().failed());
    }

    const POLICY: &str = "version: STSv1\r\nmode: enforce\r\nmx: mx.example.test\r\nmax_age: 86400\r\n";

    fn with(body: Result<(&str, Option<&str>), &str>) -> Snapshot {
        let mut s = good();
        s.policy.mta_sts = Some(MtaStsFetch {
            id: "20261206".into(),
            url: "https://mta-sts.example.test/.well-known/mta-sts.txt".into(),
            result: body
                .map(|(b, ct)| StsFetched {
                    body: b.into(),
                    content_type: ct.map(str::to_string),
                    address: "192.0.2.80".parse().unwrap(),
                    cached: false,
                })
                .map_err(str::to_string),
        });
        s
    }

    #[test]
    fn not_evaluated_without_a_record() {
        let s = good();
        for f in [mta_sts_policy_unavailable, mta_sts_policy_invalid, mta_sts_mx_mismatch] {
            assert!(f(&s, &cfg()).is_none());
        }
    }

    #[test]
    fn good_policy_passes() {
        let s = with(Ok((POLICY, Some("text/plain; charset=utf-8"))));
        assert_eq!(
            mta_sts_policy_unavailable(&s, &cfg()).unwrap(),
            Verdict::Pass("https://mta-sts.example.test/.well-known/mta-sts.txt fetched from 192.0.2.80".into())
        );
        assert_eq!(
            mta_sts_policy_invalid(&s, &cfg()).unwrap(),
            Verdict::Pass("mode enforce, max_age 86400, mx mx.example.test".into())
        );
        assert_eq!(
            mta_sts_mx_mismatch(&s, &cfg()).unwrap(),
            Verdict::Pass("mode enforce: every MX matches the mx patterns (mx.example.test)".into())
        );
    }

    #[test]
    fn unavailable() {
        let s = with(Err("TLS with mta-sts.example.test (192.0.2.80:443) failed: invalid peer certificate: Expired"));
        let v = mta_sts_policy_unavailable(&s, &cfg()).unwrap();
        assert_eq!(
            v,
            Verdict::Fail("_mta-sts.example.test announces policy id 20261206 but https://mta-sts.example.test/.well-known/mta-sts.txt cannot be fetched: TLS with mta-sts.example.test (192.0.2.80:443) failed: invalid peer certificate: Expired; senders deliver without MTA-STS (RFC 8461 §3.3)".into())
        );
        assert!(mta_sts_policy_invalid(&s, &cfg()).is_none());
        assert!(mta_sts_mx_mismatch(&s, &cfg()).is_none());
    }

    #[test]
    fn invalid() {
        let s = with(Ok(("<html>oops</html>", Some("text/html"))));
        let v = mta_sts_policy_invalid(&s, &cfg()).unwrap();
        assert_eq!(
            v,
            Verdict::Fail("the policy at https://mta-sts.example.test/.well-known/mta-sts.txt is invalid: line 1: \"<html>oops</html>\" is not a key: value line; version is missing; mode is missing; max_age is missing; no mx pattern (required unless mode is none); served as \"text/html\" instead of text/plain; senders ignore it (RFC 8461 §3.2)".into())
        );
        assert!(mta_sts_mx_mismatch(&s, &cfg()).is_none());
        // a good body with no media type is still invalid
        let v = mta_sts_policy_invalid(&with(Ok((POLICY, None))), &cfg()).unwrap();
        assert!(v.failed() && v.message().contains("served as no media type instead of text/plain"), "{v:?}");
    }

    #[test]
    fn mx_mismatch_only_in_enforce_mode() {
        let mut s = with(Ok(("version: STSv1\nmode: enforce\nmx: *.other.test\nmax_age: 60\n", Some("text/plain"))));
        let v = mta_sts_mx_mismatch(&s, &cfg()).unwrap();
        assert_eq!(
            v,
            Verdict::Fail("the MTA-STS policy is in enforce mode and MX mx.example.test match(es) none of its mx patterns (*.other.test): enforcing senders will not deliver to it (RFC 8461 §4.1, §5)".into())
        );
        s = with(Ok(("version: STSv1\nmode: testing\nmx: *.other.test\nmax_age: 60\n", Some("text/plain"))));
        let v = mta_sts_mx_mismatch(&s, &cfg()).unwrap();
        assert!(!v.failed() && v.message().starts_with("mode testing: MX mx.example.test match(es) no mx pattern"));
        // a wildcard that covers the exchange
        s = with(Ok(("version: STSv1\nmode: enforce\nmx: *.example.test\nmax_age: 60\n", Some("text/plain"))));
        assert!(!mta_sts_mx_mismatch(&s, &cfg()).unwrap().failed());
        // a second MX outside the patterns
        s.servers.iter_mut().for_each(|x| {
            x.mx.as_mut().unwrap().insert(mx(20, "backup.elsewhere.test"));
        });
        let v = mta_sts_mx_mismatch(&s, &cfg()).unwrap();
        assert!(v.failed() && v.message().contains("MX backup.elsewhere.test match(es) none"), "{v:?}");
    }
}
