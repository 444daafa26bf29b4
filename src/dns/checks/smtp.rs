//! The opt-in SMTP probe (`smtp_probe = true`): the incident of SPEC §1 seen from
//! the network. An apex address that is not an MX address and greets SMTP clients
//! with 220 is where senders that fall back to the apex A/AAAA record deliver —
//! and where they get "Relaying denied". A closed port, a silent one, or a greeting
//! other than 220 (e.g. 554, "no SMTP service here", RFC 5321 §3.1) passes.

use super::apex::apex_not_mx;
use super::{Verdict, verdict};
use crate::config::DomainConfig;
use crate::dns::snapshot::{SmtpOutcome, Snapshot, list};

/// `apex_smtp_listening`: an apex address that is not an MX address accepts SMTP.
/// Evaluated with `smtp_probe` when the domain has a non-null MX that resolves.
pub fn apex_smtp_listening(s: &Snapshot, d: &DomainConfig) -> Option<Verdict> {
    if !d.smtp_probe || s.mx_addresses().is_empty() {
        return None;
    }
    let probes = s.policy.smtp.as_ref()?;
    let targets = apex_not_mx(s);
    if targets.is_empty() {
        return Some(Verdict::Pass(format!(
            "every apex address of {} is an MX address ({}); nothing to probe",
            s.domain,
            list(s.apex_union().iter())
        )));
    }
    let mut bad: Vec<String> = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    for a in &targets {
        let Some(p) = probes.get(a) else { continue };
        let port = p.port;
        match &p.outcome {
            SmtpOutcome::Greeting { code: 220, text } => bad.push(format!(
                "{a} (an apex address of {}, not an MX host) accepts SMTP on port {port}, greeting \"{text}\"",
                s.domain
            )),
            SmtpOutcome::Greeting { text, .. } => {
                seen.push(format!("{a} port {port} greets with \"{text}\", which refuses mail"))
            }
            SmtpOutcome::Refused => seen.push(format!("{a} port {port}: connection refused")),
            SmtpOutcome::Timeout => seen.push(format!("{a} port {port}: no greeting within the timeout")),
            SmtpOutcome::Closed => seen.push(format!("{a} port {port}: closed without a greeting")),
            SmtpOutcome::Error { detail } => seen.push(format!("{a} port {port}: {detail}")),
        }
    }
    if bad.is_empty() && seen.is_empty() {
        return None;
    }
    Some(verdict(
        !bad.is_empty(),
        || {
            format!(
                "{}: this host is where misrouted mail lands — senders that use the apex A/AAAA record instead of the MX ({}) deliver there and are refused as relaying",
                bad.join("; "),
                list(s.mx_hosts.keys())
            )
        },
        || format!("no apex address that is not an MX accepts SMTP: {}", seen.join("; ")),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::checks::fixtures::{cfg, good, ip};
    use crate::dns::snapshot::SmtpProbe;

    fn probing() -> DomainConfig {
        let mut d = cfg();
        d.smtp_probe = true;
        d
    }

    #[test]
    fn only_when_asked() {
        let mut s = good();
        assert!(apex_smtp_listening(&s, &cfg()).is_none());
        s.policy.smtp = Some(Default::default());
        let v = apex_smtp_listening(&s, &probing()).unwrap();
        assert_eq!(v.message(), "every apex address of example.test is an MX address (192.0.2.10); nothing to probe");
    }

    #[test]
    fn a_greeting_apex_fails() {
        let mut s = good();
        for x in &mut s.servers {
            x.apex = Some([ip("192.0.2.80")].into());
        }
        let greet = SmtpOutcome::Greeting { code: 220, text: "220 www.example.test ESMTP".into() };
        s.policy.smtp = Some([(ip("192.0.2.80"), SmtpProbe { port: 25, outcome: greet })].into());
        let v = apex_smtp_listening(&s, &probing()).unwrap();
        assert!(v.failed());
        assert_eq!(
            v.message(),
            "192.0.2.80 (an apex address of example.test, not an MX host) accepts SMTP on port 25, greeting \"220 www.example.test ESMTP\": this host is where misrouted mail lands — senders that use the apex A/AAAA record instead of the MX (mx.example.test) deliver there and are refused as relaying"
        );
        for (outcome, seen) in [
            (SmtpOutcome::Refused, "192.0.2.80 port 25: connection refused"),
            (SmtpOutcome::Timeout, "192.0.2.80 port 25: no greeting within the timeout"),
            (
                SmtpOutcome::Greeting { code: 554, text: "554 no SMTP service here".into() },
                "192.0.2.80 port 25 greets with \"554 no SMTP service here\", which refuses mail",
            ),
        ] {
            s.policy.smtp = Some([(ip("192.0.2.80"), SmtpProbe { port: 25, outcome })].into());
            let v = apex_smtp_listening(&s, &probing()).unwrap();
            assert_eq!(v, Verdict::Pass(format!("no apex address that is not an MX accepts SMTP: {seen}")));
        }
        s.policy.smtp = Some(Default::default());
        assert!(apex_smtp_listening(&s, &probing()).is_none(), "nothing probed");
    }
}
