//! MTA-STS (RFC 8461 §3.1) and TLS-RPT (RFC 8460 §3) records. Both are opt-in:
//! no record passes. A present record must be the only one senders consider and
//! be well formed; otherwise senders act as if there were none (RFC 8461 §3.1,
//! RFC 8460 §3), which for MTA-STS silently drops the protection the domain meant
//! to publish. A record whose version is not written exactly (`v=stsv1`) is
//! discarded by senders too, and fails here because it was clearly meant as one.
//! Servers that disagree on the record fail, naming each server. The HTTPS policy
//! of MTA-STS is not fetched.

use super::served::{disagreement, distinct, labels, multiple, present, served};
use super::{Verdict, verdict};
use crate::config::DomainConfig;
use crate::dns::records::clip;
use crate::dns::records::sts::{
    MTA_STS_VERSION, TLSRPT_VERSION, is_mta_sts, is_tlsrpt, looks_like, parse_mta_sts, parse_tlsrpt,
};
use crate::dns::snapshot::Snapshot;

struct Kind {
    what: &'static str,
    label: &'static str,
    version: &'static str,
    rfc: &'static str,
    is: fn(&str) -> bool,
    /// A one-line summary of a valid record, or what is wrong.
    check: fn(&str) -> Result<String, String>,
}

fn opt_in(s: &Snapshot, k: &Kind) -> Option<Verdict> {
    let name = format!("{}.{}", k.label, s.domain);
    let served = served(s, &name, |r| (k.is)(r) || looks_like(r, k.version))?;
    if !present(&served) {
        return Some(Verdict::Pass(format!("no {} record at {name} (opt-in)", k.what)));
    }
    let mut problems: Vec<String> = Vec::new();
    if let Some(d) = disagreement(s, &served, &format!("the {} record", k.what), &name) {
        problems.push(d);
    }
    for m in multiple(&served, k.what, &name) {
        problems.push(format!("{m}; senders use none"));
    }
    let mut summaries = Vec::new();
    for (text, servers) in distinct(&served) {
        let result = if (k.is)(&text) {
            (k.check)(&text)
        } else {
            Err(format!("senders discard it: the record must start with exactly {}", k.version))
        };
        match result {
            Ok(summary) => summaries.push(summary),
            Err(e) => problems.push(format!(
                "the {} record {:?} at {name} (served by {}) is invalid: {e}",
                k.what,
                clip(&text),
                labels(&servers)
            )),
        }
    }
    Some(verdict(
        !problems.is_empty(),
        || format!("{}; senders act as if the domain published no {} record ({})", problems.join("; "), k.what, k.rfc),
        || format!("valid {} record at {name}: {}", k.what, summaries.join(", ")),
    ))
}

/// `mta_sts_invalid`: the `_mta-sts` record is present but malformed, multiple, or
/// served differently by the servers.
pub fn mta_sts_invalid(s: &Snapshot, _: &DomainConfig) -> Option<Verdict> {
    opt_in(
        s,
        &Kind {
            what: "MTA-STS",
            label: "_mta-sts",
            version: MTA_STS_VERSION,
            rfc: "RFC 8461 §3.1",
            is: is_mta_sts,
            check: |t| parse_mta_sts(t).map(|r| format!("id={}", r.id)),
        },
    )
}

/// `tlsrpt_invalid`: the `_smtp._tls` record is present but malformed, multiple, or
/// served differently by the servers.
pub fn tlsrpt_invalid(s: &Snapshot, _: &DomainConfig) -> Option<Verdict> {
    opt_in(
        s,
        &Kind {
            what: "TLS-RPT",
            label: "_smtp._tls",
            version: TLSRPT_VERSION,
            rfc: "RFC 8460 §3",
            is: is_tlsrpt,
            check: |t| parse_tlsrpt(t).map(|r| format!("rua={}", r.rua.join(","))),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::checks::fixtures::{cfg, good, set_txt};

    #[test]
    fn absent_passes_and_valid_passes() {
        let mut s = good();
        assert_eq!(
            mta_sts_invalid(&s, &cfg()).unwrap(),
            Verdict::Pass("no MTA-STS record at _mta-sts.example.test (opt-in)".into())
        );
        assert!(!tlsrpt_invalid(&s, &cfg()).unwrap().failed());
        set_txt(&mut s, "_mta-sts.example.test", &["v=STSv1; id=20261127T010000", "unrelated"]);
        set_txt(&mut s, "_smtp._tls.example.test", &["v=TLSRPTv1; rua=mailto:tlsrpt@example.test"]);
        assert_eq!(
            mta_sts_invalid(&s, &cfg()).unwrap().message(),
            "valid MTA-STS record at _mta-sts.example.test: id=20261127T010000"
        );
        assert_eq!(
            tlsrpt_invalid(&s, &cfg()).unwrap().message(),
            "valid TLS-RPT record at _smtp._tls.example.test: rua=mailto:tlsrpt@example.test"
        );
    }

    #[test]
    fn malformed_fail() {
        let mut s = good();
        set_txt(&mut s, "_mta-sts.example.test", &["v=STSv1; id="]);
        set_txt(&mut s, "_smtp._tls.example.test", &["v=TLSRPTv1; rua=ftp://x"]);
        let v = mta_sts_invalid(&s, &cfg()).unwrap();
        assert_eq!(
            v.message(),
            "the MTA-STS record \"v=STSv1; id=\" at _mta-sts.example.test (served by ns1.example.test (192.0.2.1) and ns2.example.test (192.0.2.2)) is invalid: id is empty (1 to 32 letters and digits, RFC 8461 §3.1); senders act as if the domain published no MTA-STS record (RFC 8461 §3.1)"
        );
        let v = tlsrpt_invalid(&s, &cfg()).unwrap();
        assert!(v.failed() && v.message().contains("ftp: is not a reporting scheme"), "{v:?}");
        set_txt(&mut s, "_mta-sts.example.test", &["v=stsv1; id=1"]);
        assert!(
            mta_sts_invalid(&s, &cfg())
                .unwrap()
                .message()
                .contains("senders discard it: the record must start with exactly v=STSv1")
        );
        set_txt(&mut s, "_mta-sts.example.test", &["v=STSv1; id=1", "v=STSv1; id=2"]);
        assert!(mta_sts_invalid(&s, &cfg()).unwrap().message().contains("serve 2 MTA-STS records"));
        set_txt(&mut s, "_mta-sts.example.test", &["v=STSv1; id=1"]);
        s.servers[0].txt.insert("_mta-sts.example.test".into(), Some(vec!["v=STSv1; id=2".into()]));
        assert!(mta_sts_invalid(&s, &cfg()).unwrap().message().contains("servers disagree on the MTA-STS record"));
    }
}
