//! Property tests for the SMTP TLS parsers that read what remote servers send: the
//! MTA-STS policy body (from any web server), the wildcard matcher, SMTP replies
//! (from any MX) and certificates (DER from any TLS peer), and the DANE matcher.
//! Nothing panics, and the well-formed cases round-trip.

use mailroute_exporter::dns::dane::{Tlsa, tlsa_match};
use mailroute_exporter::dns::records::sts_policy::{Mode, mx_matches, parse_policy, policy_matches};
use mailroute_exporter::dns::starttls::parse_reply;
use mailroute_exporter::dns::x509::cert_info;
use proptest::prelude::*;

fn host() -> impl Strategy<Value = String> {
    prop::collection::vec("[a-z][a-z0-9-]{0,6}[a-z0-9]", 2..5).prop_map(|l| l.join("."))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn policy_parser_never_panics(text in "\\PC{0,400}") {
        let _ = parse_policy(&text);
    }

    #[test]
    fn well_formed_policies_parse(mx in prop::collection::vec(host(), 1..4), age in 0u64..=31_557_600, crlf in any::<bool>()) {
        let nl = if crlf { "\r\n" } else { "\n" };
        let mut text = ["version: STSv1", nl, "mode: enforce", nl].concat();
        for m in &mx {
            text.push_str(&["mx: ", m, nl].concat());
        }
        text.push_str(&["max_age: ", &age.to_string(), nl].concat());
        let p = parse_policy(&text).unwrap();
        prop_assert_eq!(p.mode, Mode::Enforce);
        prop_assert_eq!(p.max_age, age);
        for m in &mx {
            prop_assert!(policy_matches(&p, m));
            prop_assert!(policy_matches(&p, &m.to_ascii_uppercase()));
        }
    }

    #[test]
    fn a_wildcard_covers_exactly_one_label(label in "[a-z0-9]{1,10}", base in host(), extra in "[a-z]{1,5}") {
        let pattern = format!("*.{base}");
        let one = format!("{label}.{base}");
        let two = format!("{extra}.{label}.{base}");
        prop_assert!(mx_matches(&pattern, &one));
        prop_assert!(!mx_matches(&pattern, &base));
        prop_assert!(!mx_matches(&pattern, &two));
    }

    #[test]
    fn smtp_replies_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        if let Ok(Some((code, lines, used))) = parse_reply(&bytes) {
            prop_assert!((100..1000).contains(&code));
            prop_assert!(!lines.is_empty() && used <= bytes.len());
        }
    }

    #[test]
    fn certificates_and_dane_never_panic(der in prop::collection::vec(any::<u8>(), 0..400), data in prop::collection::vec(any::<u8>(), 0..64)) {
        let _ = cert_info(&der);
        let records = [
            Tlsa { usage: 3, selector: 1, matching: 1, data: data.clone() },
            Tlsa { usage: 2, selector: 0, matching: 2, data },
        ];
        let _ = tlsa_match(&records, &[der.clone(), der]);
    }
}
