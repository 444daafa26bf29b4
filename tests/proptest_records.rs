//! Property tests for the parsers that read text from outside besides log lines:
//! SPF and DMARC records (from DNS, i.e. from anyone) and the configuration file.
//! `tests/proptest_parse.rs` covers the log line side. Case counts are modest so
//! the file runs in a few seconds in CI; the fuzz targets (`fuzz/`) go deeper.

use std::net::{IpAddr, Ipv4Addr};

use mailroute_exporter::config::Config;
use mailroute_exporter::dns::records::dmarc::{self, Disposition};
use mailroute_exporter::dns::records::spf;
use mailroute_exporter::dns::snapshot::{Lookup, SpfLookups};
use proptest::prelude::*;

fn label() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9]{0,8}"
}

fn domain() -> impl Strategy<Value = String> {
    (label(), prop::sample::select(&["com", "net", "org", "example", "test"][..])).prop_map(|(l, t)| format!("{l}.{t}"))
}

/// A well-formed SPF term (RFC 7208 §12).
fn spf_term() -> impl Strategy<Value = String> {
    let qualifier = prop::sample::select(&["", "+", "-", "~", "?"][..]);
    let mechanism = prop_oneof![
        domain().prop_map(|d| format!("include:{d}")),
        Just("a".to_string()),
        Just("mx".to_string()),
        domain().prop_map(|d| format!("a:{d}")),
        (domain(), 0u8..=32).prop_map(|(d, p)| format!("mx:{d}/{p}")),
        (any::<[u8; 4]>(), 0u8..=32).prop_map(|(a, p)| format!("ip4:{}/{p}", Ipv4Addr::from(a))),
        any::<[u8; 4]>().prop_map(|a| format!("ip4:{}", Ipv4Addr::from(a))),
        (any::<u16>(), 0u8..=128).prop_map(|(h, p)| format!("ip6:2001:db8::{h:x}/{p}")),
        domain().prop_map(|d| format!("exists:%{{i}}.{d}")),
    ];
    (qualifier, mechanism).prop_map(|(q, m)| format!("{q}{m}"))
}

/// A well-formed record: terms, then at most one `all`.
fn spf_record() -> impl Strategy<Value = (String, usize)> {
    (prop::collection::vec(spf_term(), 0..8), prop::option::of(prop::sample::select(&["-all", "~all", "?all"][..])))
        .prop_map(|(terms, all)| {
            let mut t = terms;
            if let Some(a) = all {
                t.push(a.to_string());
            }
            let n = t.len();
            (format!("v=spf1 {}", t.join(" ")).trim_end().to_string(), n)
        })
}

/// SPF-ish text: real words and junk, so the error paths run.
fn spf_noise() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        spf_term(),
        prop::sample::select(
            &[
                "v=spf1",
                "redirect=",
                "exp=",
                "include:",
                "ip4:",
                "ip6:",
                "/",
                "//",
                "%{",
                "}",
                "%%",
                "%_",
                "%-",
                " ",
                "  ",
                "all",
                ":",
                "=",
                "-",
                "ptr",
                "a/33",
                "ip4:1.2.3.4/99",
                "%{ir}",
                "%{d2r-.}",
            ][..]
        )
        .prop_map(str::to_string),
        "[ -~]{0,12}",
        any::<String>().prop_map(|s| s.chars().take(6).collect()),
    ];
    prop::collection::vec(piece, 0..12).prop_map(|v| v.concat())
}

/// Answers for a made-up include graph over a few names, loops included.
fn lookups(records: Vec<(u8, String)>) -> SpfLookups {
    let mut l = SpfLookups::default();
    for (i, (kind, text)) in records.into_iter().enumerate() {
        let name = format!("n{i}.example");
        let answer = match kind % 5 {
            0 => Lookup::Void { nxdomain: true },
            1 => Lookup::Failed("timeout".to_string()),
            _ => Lookup::Found(vec![text]),
        };
        l.txt.insert(name.clone(), answer);
        l.addresses.insert(name.clone(), Lookup::Found(vec![IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))]));
        l.mx.insert(name.clone(), Lookup::Found(vec![name]));
    }
    l
}

fn include_graph() -> impl Strategy<Value = Vec<(u8, String)>> {
    prop::collection::vec(
        (any::<u8>(), prop::collection::vec((0usize..6, prop::sample::select(&["include:", "redirect="][..])), 0..4)),
        1..6,
    )
    .prop_map(|nodes| {
        nodes
            .into_iter()
            .map(|(kind, edges)| {
                let mut terms: Vec<String> = Vec::new();
                let mut redirected = false;
                for (to, how) in edges {
                    if how == "redirect=" {
                        if redirected {
                            continue;
                        }
                        redirected = true;
                    }
                    terms.push(format!("{how}n{to}.example"));
                }
                (kind, format!("v=spf1 a mx {}", terms.join(" ")))
            })
            .collect()
    })
}

fn dmarc_record() -> impl Strategy<Value = (String, Disposition)> {
    let policy = prop::sample::select(
        &[("none", Disposition::None), ("quarantine", Disposition::Quarantine), ("reject", Disposition::Reject)][..],
    );
    let optional = prop::collection::vec(
        prop_oneof![
            (0u8..=100).prop_map(|n| format!("pct={n}")),
            (label(), domain()).prop_map(|(u, d)| format!("rua=mailto:{u}@{d}")),
            (label(), domain()).prop_map(|(u, d)| format!("ruf=mailto:{u}@{d}")),
            prop::sample::select(
                &[
                    "adkim=r",
                    "adkim=s",
                    "aspf=r",
                    "aspf=s",
                    "fo=0:1:d:s",
                    "rf=afrf",
                    "ri=86400",
                    "sp=reject",
                    "sp=none"
                ][..]
            )
            .prop_map(str::to_string),
        ],
        0..5,
    );
    (policy, optional, prop::sample::select(&[";", " ; ", ";\t"][..]), any::<bool>()).prop_map(
        |((p, d), rest, sep, trailing)| {
            // a tag may appear only once (RFC 6376 §3.2, as DMARC reuses it)
            let mut seen = std::collections::BTreeSet::new();
            let mut tags = vec!["v=DMARC1".to_string(), format!("p={p}")];
            for t in rest {
                let name = t.split('=').next().unwrap().to_string();
                if seen.insert(name) {
                    tags.push(t);
                }
            }
            let mut s = tags.join(sep);
            if trailing {
                s.push(';');
            }
            (s, d)
        },
    )
}

fn dmarc_noise() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        prop::sample::select(
            &[
                "v=DMARC1",
                "v=dmarc1",
                "; ",
                ";",
                "=",
                "p=",
                "sp=",
                "pct=",
                "rua=",
                "ruf=",
                "mailto:",
                "https://",
                "!10m",
                "!",
                ",",
                "reject",
                "none",
                "quarantine",
                "fo=",
                "rf=",
                "ri=",
                "adkim=",
                "\t",
                "\r\n ",
                "999",
            ][..]
        )
        .prop_map(str::to_string),
        "[ -~]{0,10}",
        any::<String>().prop_map(|s| s.chars().take(5).collect()),
    ];
    prop::collection::vec(piece, 0..14).prop_map(|v| v.concat())
}

/// TOML made of the configuration's own keys, values of every type, and junk.
fn config_noise() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        prop::sample::select(
            &[
                "[web]\n",
                "[maillog]\n",
                "[dns]\n",
                "[[dns.domain]]\n",
                "[web.tls]\n",
                "[web.basic_auth]\n",
                "listen_address = ",
                "telemetry_path = ",
                "paths = ",
                "start = ",
                "default_host = ",
                "max_hosts = ",
                "local_domains = ",
                "interval = ",
                "timeout = ",
                "concurrency = ",
                "resolvers = ",
                "port = ",
                "name = ",
                "dkim_selectors = ",
                "expected_mx = ",
                "smtp_probe = ",
                "journal = ",
                "syslog_listen = ",
                "users = ",
                "\"5m\"",
                "\"0s\"",
                "\"1h\"",
                "\"99999999999999h\"",
                "\":2553\"",
                "\"[::1]:0\"",
                "\"nmrc.org\"",
                "\"-\"",
                "[\"a.example\", \"b.example\"]",
                "[]",
                "0",
                "-1",
                "1e9",
                "9223372036854775807",
                "true",
                "{ a = \"b\" }",
                "\n",
                "\"",
                "'",
                "=",
                "#",
                "[",
                "]",
                ".",
                "é",
            ][..]
        )
        .prop_map(str::to_string),
        "[ -~]{0,8}",
    ];
    prop::collection::vec(piece, 0..24).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn spf_parse_never_panics(text in spf_noise()) {
        match spf::parse(&text) {
            Ok(r) => {
                let _ = r.advice();
                let _ = spf::walk("example.com", &r, &SpfLookups::default());
            }
            Err(errors) => {
                prop_assert!(!errors.is_empty());
                let terms = text.split(' ').filter(|t| !t.is_empty()).count();
                for e in &errors {
                    prop_assert!(e.term <= terms, "error names term {} of {}: {}", e.term, terms, e);
                }
            }
        }
    }

    #[test]
    fn spf_well_formed_records_parse((text, n) in spf_record()) {
        let r = spf::parse(&text).map_err(|e| TestCaseError::fail(format!("{text}: {}", spf::errors_text(&e))))?;
        prop_assert_eq!(r.terms.len(), n);
        // a second space between terms changes nothing
        let spaced = text.replace(' ', "  ");
        prop_assert_eq!(spf::parse(&spaced).map(|r| r.terms.len()).ok(), Some(n));
    }

    #[test]
    fn spf_expand_is_bounded(spec in spf_noise(), current in domain(), sender in domain()) {
        if let Some(out) = spf::expand(&spec, &current, &sender) {
            prop_assert!(out.len() <= 253, "{} chars", out.len());
            prop_assert!(!out.ends_with('.'));
            prop_assert_eq!(out.to_ascii_lowercase(), out.clone(), "ASCII letters are lowercased");
        }
    }

    #[test]
    fn spf_walk_ends_on_any_include_graph(graph in include_graph(), top in spf_record()) {
        let data = lookups(graph);
        let mut text = top.0;
        text.push_str(" include:n0.example");
        if let Ok(r) = spf::parse(&text) {
            let w = spf::walk("example.com", &r, &data);
            let _ = (w.complete(), w.over_limit());
        }
    }

    #[test]
    fn dmarc_parse_never_panics(text in dmarc_noise()) {
        let p = dmarc::parse(&text);
        prop_assert_eq!(p.valid(), p.errors.is_empty());
        if p.valid() && !text.contains(['\r', '\n']) {
            // what the parser accepts, record selection must see as DMARC (the tag
            // list parser also takes RFC 6376's CRLF folding, which RFC 7489's ABNF
            // does not have and `is_dmarc` refuses, so such a record counts as
            // "looks like DMARC, ignored by receivers")
            prop_assert!(dmarc::is_dmarc(&text), "{text:?} is valid but not DMARC");
        }
        let _ = dmarc::looks_like_dmarc(&text);
        let _ = p.effective_policy();
    }

    #[test]
    fn dmarc_well_formed_records_are_valid((text, policy) in dmarc_record()) {
        prop_assert!(dmarc::is_dmarc(&text), "{text}");
        let p = dmarc::parse(&text);
        prop_assert!(p.valid(), "{text}: {:?}", p.errors);
        prop_assert_eq!(p.record.p, Some(policy));
        prop_assert_eq!(p.effective_policy(), Some(policy));
    }

    #[test]
    fn config_parse_never_panics(text in config_noise()) {
        match Config::parse(&text, "p.toml") {
            Ok(c) => {
                prop_assert!(c.maillog.max_hosts >= 1);
                let _ = c.misroute_domains();
            }
            Err(e) => {
                let lines = text.split('\n').count();
                prop_assert!(e.line <= lines, "error at line {} of {}: {}", e.line, lines, e);
                prop_assert!(!e.to_string().is_empty());
            }
        }
    }

    #[test]
    fn config_values_round_trip(
        max_hosts in 1usize..=100_000,
        domains in prop::collection::btree_set(domain(), 0..6),
        minutes in 1u64..1000,
        start in prop::sample::select(&["end", "beginning"][..]),
    ) {
        let list: Vec<String> = domains.iter().map(|d| format!("\"{}\"", d.to_uppercase())).collect();
        let text = format!(
            "[maillog]\nmax_hosts = {max_hosts}\nstart = \"{start}\"\nlocal_domains = [{}]\n\n[dns]\ninterval = \"{minutes}m\"\n",
            list.join(", ")
        );
        let c = Config::parse(&text, "p.toml").map_err(|e| TestCaseError::fail(format!("{text}\n{e}")))?;
        prop_assert_eq!(c.maillog.max_hosts, max_hosts);
        let got: Vec<String> = c.maillog.local_domains.clone();
        let want: Vec<String> = domains.iter().cloned().collect();
        prop_assert_eq!(got, want, "domains are lowercased, in order");
        prop_assert_eq!(c.dns.interval.as_secs(), minutes * 60);
    }
}
