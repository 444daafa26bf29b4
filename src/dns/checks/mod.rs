//! The check catalogue (SPEC §5.3): one pure function per check over a
//! [`Snapshot`], registered in [`CATALOGUE`] with its id, severity and the rule it
//! comes from. Adding a check is one function, one row, and one lab zone.
//!
//! A check returns `None` when the snapshot lacks what it needs (it is then absent
//! for that round, as the SPEC requires), else a [`Verdict`] whose message names the
//! servers and values involved.
//!
//! Shared rules: a server that does not answer fails `nameserver_unreachable`, one
//! that answers REFUSED, SERVFAIL or without AA fails `nameserver_not_authoritative`;
//! both are left out of the consistency checks, which compare only servers that
//! answered the SOA query authoritatively.

pub mod apex;
pub mod delegation;
pub mod dkim;
pub mod dmarc;
pub mod dnssec;
pub mod mx;
pub mod reverse;
pub mod served;
pub mod smtp;
pub mod soa;
pub mod spf;
pub mod sts;
pub mod tls;

use serde::Serialize;

use super::snapshot::{Server, Snapshot, Standing};
use crate::config::DomainConfig;

/// How bad a failing check is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Critical,
    Warning,
    Info,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }
}

/// The result of one evaluated check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Pass(String),
    Fail(String),
}

impl Verdict {
    pub fn failed(&self) -> bool {
        matches!(self, Verdict::Fail(_))
    }

    pub fn message(&self) -> &str {
        match self {
            Verdict::Pass(m) | Verdict::Fail(m) => m,
        }
    }
}

/// Fails with `msg` when `bad`, else passes with `ok`.
pub fn verdict(bad: bool, msg: impl FnOnce() -> String, ok: impl FnOnce() -> String) -> Verdict {
    if bad { Verdict::Fail(msg()) } else { Verdict::Pass(ok()) }
}

/// A server's standing in words, for messages.
pub fn standing_words(st: &Standing) -> String {
    match st {
        Standing::Authoritative => "answers authoritatively".to_string(),
        Standing::Lame { detail, .. } => detail.clone(),
        Standing::Unreachable { error } => format!("gives no answer ({error})"),
    }
}

/// What a comparison over the servers' answers to `question` (`"MX"`, `"NS"`,
/// `"A"`, a whole question such as `"_dmarc.example.test TXT"`; `""` for the SOA
/// itself) left out and why, as a tail for its message:
/// `""` when it compared every server, else ` (left out: ns3.x (192.0.2.3) gives
/// no answer (timeout); ns2.x (192.0.2.2) MX answered SERVFAIL)`. A server that is
/// not up is left out with its standing; one that is up but has no answer
/// (`answered` false) with the failure recorded for that question.
pub fn left_out(s: &Snapshot, question: &str, answered: impl Fn(&Server) -> bool) -> String {
    let suffix = format!(" {question}");
    let out: Vec<String> = s
        .servers
        .iter()
        .filter_map(|x| {
            if !x.is_up() {
                return Some(format!("{} {}", x.label(), standing_words(&x.standing)));
            }
            if question.is_empty() || answered(x) {
                return None;
            }
            let why: Vec<String> = x
                .query_failures
                .iter()
                .filter(|(q, _)| *q == question || q.ends_with(&suffix))
                .map(|(q, why)| format!("{q} {why}"))
                .collect();
            Some(if why.is_empty() {
                format!("{} gave no usable {question} answer", x.label())
            } else {
                format!("{} {}", x.label(), why.join(", "))
            })
        })
        .collect();
    if out.is_empty() { String::new() } else { format!(" (left out: {})", out.join("; ")) }
}

pub type CheckFn = fn(&Snapshot, &DomainConfig) -> Option<Verdict>;

/// One row of the catalogue.
#[derive(Debug, Clone, Copy)]
pub struct Check {
    pub id: &'static str,
    pub severity: Severity,
    /// Subject group (the file the check lives in).
    pub group: &'static str,
    /// When it fails, in a line.
    pub fails_when: &'static str,
    /// The standard or convention it comes from.
    pub source: &'static str,
    pub eval: CheckFn,
}

macro_rules! check {
    ($group:ident :: $id:ident, $sev:ident, $when:literal, $source:literal) => {
        Check {
            id: stringify!($id),
            severity: Severity::$sev,
            group: stringify!($group),
            fails_when: $when,
            source: $source,
            eval: $group::$id,
        }
    };
}

/// Every check, in the order of SPEC §5.3.
pub const CATALOGUE: &[Check] = &[
    check!(
        delegation::dns_round_failed,
        Critical,
        "neither the resolvers nor the parent's servers (RD=0) give the delegation, or the deadline cut the round",
        "SPEC §7.4, RFC 1034 §5.3.3"
    ),
    check!(delegation::no_working_nameserver, Critical, "no server answers SOA authoritatively", "RFC 1034 §4.1"),
    check!(
        delegation::nameserver_unreachable,
        Warning,
        "a listed server gives no answer over UDP or TCP",
        "RFC 1035 §4.2"
    ),
    check!(
        delegation::nameserver_not_authoritative,
        Warning,
        "a server answers without AA, or REFUSED/SERVFAIL (lame)",
        "RFC 1034 §4.3.1, RFC 8499 (lame delegation)"
    ),
    check!(
        delegation::nameserver_query_failed,
        Warning,
        "a server that answers SOA fails another query of the round (no answer, an rcode other than NOERROR/NXDOMAIN, no AA)",
        "RFC 1034 §4.3.1, RFC 1035 §4.1.1"
    ),
    check!(delegation::nameserver_unresolvable, Warning, "an NS name has no address", "RFC 1034 §4.2.2"),
    check!(
        delegation::nameserver_count_low,
        Warning,
        "fewer than 2 NS at the parent or in the zone",
        "RFC 1034 §4.1, RFC 2182 §5"
    ),
    check!(
        delegation::delegation_mismatch,
        Warning,
        "the parent's NS set differs from the zone's own",
        "RFC 1034 §4.2.2, RFC 2181 §6.1"
    ),
    check!(
        delegation::glue_mismatch,
        Warning,
        "parent glue differs from the addresses of an in-zone or sibling NS, or glues an in-zone NS that has no address",
        "RFC 1034 §4.2.2, RFC 9471"
    ),
    check!(delegation::ns_rrset_mismatch, Warning, "servers disagree on the NS RRset", "RFC 2181 §5"),
    check!(soa::soa_serial_mismatch, Warning, "servers disagree on the SOA serial", "RFC 1034 §4.3.5, RFC 1982"),
    check!(soa::soa_fields_mismatch, Info, "servers disagree on MNAME, RNAME or timers", "RFC 1035 §3.3.13"),
    check!(
        soa::soa_mname_not_in_ns,
        Warning,
        "MNAME is not in the zone's NS set or the parent's",
        "RFC 1035 §3.3.13, RFC 2136 §4"
    ),
    check!(
        soa::soa_timers_out_of_range,
        Info,
        "refresh/retry/expire/minimum outside common bounds",
        "RFC 1912 §2.2, Zonemaster ZONE04-08"
    ),
    check!(mx::mx_missing, Warning, "no MX: senders use the apex address (implicit MX)", "RFC 5321 §5.1"),
    check!(mx::mx_rrset_mismatch, Warning, "servers disagree on the MX RRset", "RFC 2181 §5"),
    check!(mx::mx_target_unresolvable, Warning, "an MX exchange has no A/AAAA", "RFC 5321 §5.1"),
    check!(mx::no_usable_mx, Critical, "no MX exchange resolves to an address", "RFC 5321 §5.1"),
    check!(mx::mx_target_cname, Warning, "an MX exchange is a CNAME", "RFC 2181 §10.3, RFC 5321 §5.1"),
    check!(mx::mx_target_address_literal, Warning, "an MX exchange is an IP literal", "RFC 1035 §3.3.9, RFC 5321 §5.1"),
    check!(mx::mx_unexpected, Warning, "the MX set differs from expected_mx", "configuration"),
    check!(mx::null_mx_conflict, Warning, "null MX beside other MX, or with non-zero preference", "RFC 7505 §3"),
    check!(apex::apex_mx_mismatch, Warning, "the apex has A/AAAA addresses that no MX exchange has", "RFC 5321 §5.1"),
    check!(apex::apex_address_mismatch, Warning, "servers disagree on the apex A/AAAA", "RFC 2181 §5"),
    check!(
        smtp::apex_smtp_listening,
        Warning,
        "(smtp_probe) an apex address that is not an MX accepts SMTP",
        "RFC 5321 §5.1"
    ),
    check!(
        reverse::mx_reverse_dns_mismatch,
        Info,
        "an MX address has no PTR that resolves back to it",
        "RFC 1912 §2.1"
    ),
    check!(spf::spf_missing, Info, "no v=spf1 TXT record at the domain", "RFC 7208 §3.2, §4.5"),
    check!(spf::spf_multiple, Warning, "a server serves more than one v=spf1 record", "RFC 7208 §3.2, §4.5"),
    check!(
        spf::spf_invalid,
        Warning,
        "the SPF record or one it includes does not parse, an include or redirect has no record, or servers disagree on the record",
        "RFC 7208 §4.6, §5, §12"
    ),
    check!(
        spf::spf_lookup_limit,
        Warning,
        "more than 10 DNS-querying terms (an include loop; an mx term with more than 10 exchanges)",
        "RFC 7208 §4.6.4"
    ),
    check!(spf::spf_void_lookup_limit, Warning, "more than 2 void lookups", "RFC 7208 §4.6.4"),
    check!(
        dmarc::dmarc_missing,
        Warning,
        "no v=DMARC1 record at _dmarc, nor one at the organisational domain (Public Suffix List)",
        "RFC 7489 §6.1, §6.6.3"
    ),
    check!(dmarc::dmarc_multiple, Warning, "a server serves more than one DMARC record", "RFC 7489 §6.6.3"),
    check!(
        dmarc::dmarc_invalid,
        Warning,
        "the DMARC record has invalid or missing tags, or servers disagree on it",
        "RFC 7489 §6.3, §6.4"
    ),
    check!(dmarc::dmarc_policy_none, Info, "the policy receivers apply is p=none", "RFC 7489 §6.3, §6.6.3"),
    check!(
        dkim::dkim_key_missing,
        Warning,
        "a configured selector has no valid v=DKIM1 key on some server",
        "RFC 6376 §3.6.1, RFC 8301, RFC 8463"
    ),
    check!(sts::mta_sts_invalid, Warning, "the _mta-sts record is present but malformed or multiple", "RFC 8461 §3.1"),
    check!(sts::tlsrpt_invalid, Info, "the _smtp._tls record is present but malformed or multiple", "RFC 8460 §3"),
    check!(
        dnssec::dnssec_ds_mismatch,
        Critical,
        "the parent has DS for the zone and none matches a DNSKEY served by a server, or a server serves no DNSKEY",
        "RFC 4034 §5, RFC 4035 §5.2"
    ),
    check!(
        dnssec::dnssec_signature_invalid,
        Critical,
        "a server serves an RRSIG over SOA, NS, DNSKEY, MX or the apex A/AAAA/TXT that is expired, not yet valid, does not verify, or is missing",
        "RFC 4034 §3, RFC 4035 §5.3"
    ),
    check!(
        dnssec::dnssec_signature_expiring,
        Warning,
        "the earliest RRSIG expiration on some server is within dnssec_expiry_warning",
        "RFC 4034 §3.1.5, RFC 6781 §4.4.2"
    ),
    check!(
        dnssec::dnssec_inconsistent,
        Warning,
        "servers disagree on the DNSKEY RRset or on whether the zone is signed",
        "RFC 4035 §2.1, RFC 6781 §4.1"
    ),
    check!(
        tls::mta_sts_policy_unavailable,
        Warning,
        "the _mta-sts record exists but the policy cannot be fetched over HTTPS with a valid certificate",
        "RFC 8461 §3.3"
    ),
    check!(tls::mta_sts_policy_invalid, Warning, "the MTA-STS policy does not parse", "RFC 8461 §3.2"),
    check!(
        tls::mta_sts_mx_mismatch,
        Critical,
        "the MTA-STS policy is in enforce mode and an MX exchange matches none of its mx patterns",
        "RFC 8461 §4.1, §5"
    ),
    check!(
        tls::mx_starttls_unavailable,
        Warning,
        "(starttls_probe) an MX address offers no STARTTLS or the handshake fails",
        "RFC 3207 §4"
    ),
    check!(
        tls::mx_certificate_invalid,
        Warning,
        "(starttls_probe) the MX certificate is expired, not yet valid, untrusted, or does not match the MX name",
        "RFC 5280 §6, RFC 6125, RFC 7672 §3.2.2"
    ),
    check!(
        tls::mx_certificate_expiring,
        Warning,
        "(starttls_probe) the MX certificate expires within certificate_expiry_warning",
        "RFC 5280 §4.1.2.5"
    ),
    check!(
        tls::dane_tlsa_mismatch,
        Critical,
        "(starttls_probe) the MX host has TLSA records at _25._tcp.MX in a signed zone and the presented chain matches none",
        "RFC 7672 §3, RFC 6698 §2.1"
    ),
];

/// A check's result for one domain in one round.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckResult {
    pub check: &'static str,
    pub severity: Severity,
    pub failed: bool,
    pub message: String,
}

/// Evaluates every check that can be evaluated, in catalogue order.
pub fn evaluate(snap: &Snapshot, domain: &DomainConfig) -> Vec<CheckResult> {
    CATALOGUE
        .iter()
        .filter_map(|c| {
            (c.eval)(snap, domain).map(|v| CheckResult {
                check: c.id,
                severity: c.severity,
                failed: v.failed(),
                message: v.message().to_string(),
            })
        })
        .collect()
}

/// Looks a check up by id.
pub fn find(id: &str) -> Option<&'static Check> {
    CATALOGUE.iter().find(|c| c.id == id)
}

#[cfg(test)]
pub(crate) mod fixtures;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique() {
        let mut ids: Vec<_> = CATALOGUE.iter().map(|c| c.id).collect();
        ids.sort();
        let n = ids.len();
        ids.dedup();
        assert_eq!(ids.len(), n);
    }
}
