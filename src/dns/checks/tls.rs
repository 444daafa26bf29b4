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

use super::Verdict;
use crate::config::DomainConfig;
use crate::dns::records::sts_policy::{Mode, StsPolicy, parse_policy, policy_matches};
use crate::dns::snapshot::{MtaStsFetch, Snapshot, StsFetched};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::checks::fixtures::{cfg, good, mx};

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
