//! DMARC policy records (RFC 7489 §6.3, §6.4).
//!
//! A TXT record at `_dmarc.<domain>` is a DMARC record when its first tag is
//! `v=DMARC1`, the value matched exactly (§6.3: otherwise the record is ignored).
//! The tags use the tag=value syntax of DKIM ([`super::tag_list`]). Names and
//! keyword values are matched without regard to case, as the ABNF's quoted strings
//! are; unknown tags are ignored (§6.3), duplicates make the record invalid (RFC
//! 6376 §3.2). The tags may come in any order after `v`, as receivers accept them.

use super::{check_mailto, clip, tag_list, uri_scheme};

/// The requested policy (`p`, `sp`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    None,
    Quarantine,
    Reject,
}

impl Disposition {
    fn parse(v: &str) -> Option<Disposition> {
        match v.to_ascii_lowercase().as_str() {
            "none" => Some(Disposition::None),
            "quarantine" => Some(Disposition::Quarantine),
            "reject" => Some(Disposition::Reject),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Disposition::None => "none",
            Disposition::Quarantine => "quarantine",
            Disposition::Reject => "reject",
        }
    }
}

/// What a record says, as far as it could be read; [`Parsed::errors`] says what
/// is wrong.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dmarc {
    /// `p`, when present and valid.
    pub p: Option<Disposition>,
    /// `p` as written.
    pub p_text: Option<String>,
    pub sp: Option<Disposition>,
    pub pct: Option<u8>,
    /// Syntactically valid aggregate report URIs.
    pub rua_valid: Vec<String>,
    /// Tags this version does not define (ignored by receivers).
    pub unknown: Vec<String>,
}

/// A parsed record and its errors (valid when `errors` is empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    pub record: Dmarc,
    pub errors: Vec<String>,
}

impl Parsed {
    pub fn valid(&self) -> bool {
        self.errors.is_empty()
    }

    /// The policy a receiver applies: `p`, or `none` when `p` is missing or invalid
    /// but `rua` has a valid URI (§6.6.3, step 6); `None` when it applies none.
    pub fn effective_policy(&self) -> Option<Disposition> {
        match self.record.p {
            Some(p) => Some(p),
            None if !self.record.rua_valid.is_empty() => Some(Disposition::None),
            None => None,
        }
    }
}

fn wsp(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// The organisational domain of `domain` (RFC 7489 §3.2): the public suffix
/// (from the Public Suffix List the `psl` crate compiles in) plus one label.
/// `None` when `domain` is already its own organisational domain or is itself a
/// public suffix. A name under an unlisted top-level domain (`sub.org.test`) gets
/// the list's default rule `*`: the organisational domain is `org.test`.
pub fn organizational_domain(domain: &str) -> Option<String> {
    let d = domain.trim_end_matches('.').to_ascii_lowercase();
    let org = psl::domain_str(&d)?;
    (org != d).then(|| org.to_string())
}

/// Is this TXT record a DMARC record: first tag `v`, value exactly `DMARC1`?
pub fn is_dmarc(txt: &str) -> bool {
    let t = txt.trim_start_matches(wsp);
    let Some(rest) = t.strip_prefix(['v', 'V']) else { return false };
    let Some(rest) = rest.trim_start_matches(wsp).strip_prefix('=') else { return false };
    let Some(rest) = rest.trim_start_matches(wsp).strip_prefix("DMARC1") else { return false };
    let rest = rest.trim_start_matches(wsp);
    rest.is_empty() || rest.starts_with(';')
}

/// A record meant as DMARC that receivers ignore because of its version
/// (`v=dmarc1`, `v=DMARC2`, …).
pub fn looks_like_dmarc(txt: &str) -> bool {
    let squeezed: String = txt.chars().filter(|c| !c.is_whitespace()).collect::<String>().to_ascii_lowercase();
    squeezed.starts_with("v=dmarc") && !is_dmarc(txt)
}

fn check_uri_list(tag: &str, value: &str, valid: &mut Vec<String>) -> Vec<String> {
    let mut errors = Vec::new();
    for item in value.split(',') {
        let item = item.trim_matches(wsp);
        if item.is_empty() {
            errors.push(format!("{tag}: an empty URI in {:?}", clip(value)));
            continue;
        }
        // an optional size limit: "!" 1*DIGIT [ "k" / "m" / "g" / "t" ] (§6.4)
        let uri = match item.rsplit_once('!') {
            Some((uri, size)) => {
                let digits = size.trim_end_matches(['k', 'm', 'g', 't', 'K', 'M', 'G', 'T']);
                let unit_len = size.len() - digits.len();
                if digits.is_empty() || unit_len > 1 || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    errors.push(format!(
                        "{tag}: the size limit {:?} is not digits with an optional k, m, g or t",
                        clip(&format!("!{size}"))
                    ));
                    continue;
                }
                uri
            }
            None => item,
        };
        let checked = uri_scheme(uri).and_then(|scheme| if scheme == "mailto" { check_mailto(uri) } else { Ok(()) });
        match checked {
            Ok(()) => valid.push(uri.to_string()),
            Err(e) => errors.push(format!("{tag}: {e}")),
        }
    }
    errors
}

/// Parses a DMARC record and lists everything wrong with it.
pub fn parse(txt: &str) -> Parsed {
    let mut rec = Dmarc::default();
    let tags = match tag_list(txt) {
        Ok(t) => t,
        Err(e) => return Parsed { record: rec, errors: vec![e] },
    };
    let mut errors = Vec::new();
    match tags.first() {
        Some(t) if t.name.eq_ignore_ascii_case("v") && t.value == "DMARC1" => {}
        Some(t) if t.name.eq_ignore_ascii_case("v") => {
            errors.push(format!("v={} is not DMARC1 (matched exactly, RFC 7489 §6.3)", clip(&t.value)))
        }
        _ => {
            return Parsed { record: rec, errors: vec!["the first tag must be v=DMARC1 (RFC 7489 §6.3)".to_string()] };
        }
    }
    let mut rua = Vec::new();
    for t in tags.iter().skip(1) {
        let v = t.value.as_str();
        match t.name.to_ascii_lowercase().as_str() {
            "v" => errors.push("v appears again after the first tag".to_string()),
            "p" => {
                rec.p_text = Some(v.to_string());
                rec.p = Disposition::parse(v);
                if rec.p.is_none() {
                    errors.push(format!("p={} is not a policy (none, quarantine or reject)", clip(v)));
                }
            }
            "sp" => {
                rec.sp = Disposition::parse(v);
                if rec.sp.is_none() {
                    errors.push(format!("sp={} is not a policy (none, quarantine or reject)", clip(v)));
                }
            }
            "pct" => {
                let n = (!v.is_empty() && v.len() <= 3 && v.bytes().all(|b| b.is_ascii_digit()))
                    .then(|| v.parse::<u16>().ok())
                    .flatten();
                match n {
                    Some(n) if n <= 100 => rec.pct = Some(n as u8),
                    Some(n) => errors.push(format!("pct={n} is above 100")),
                    None => errors.push(format!("pct={} is not a number from 0 to 100", clip(v))),
                }
            }
            "rua" => errors.extend(check_uri_list("rua", v, &mut rua)),
            "ruf" => errors.extend(check_uri_list("ruf", v, &mut Vec::new())),
            "adkim" | "aspf" => {
                if !v.eq_ignore_ascii_case("r") && !v.eq_ignore_ascii_case("s") {
                    errors.push(format!("{}={} is not r (relaxed) or s (strict)", t.name, clip(v)));
                }
            }
            "fo" => {
                for o in v.split(':').map(|o| o.trim_matches(wsp)) {
                    if !["0", "1", "d", "s"].iter().any(|x| o.eq_ignore_ascii_case(x)) {
                        errors.push(format!(
                            "fo={}: {:?} is not a failure reporting option (0, 1, d, s)",
                            clip(v),
                            clip(o)
                        ));
                    }
                }
            }
            "rf" => {
                for f in v.split(':').map(|f| f.trim_matches(wsp)) {
                    let ok = f.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                        && f.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
                    if !ok {
                        errors.push(format!("rf={}: {:?} is not a report format name", clip(v), clip(f)));
                    }
                }
            }
            "ri" => {
                if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) || v.parse::<u32>().is_err() {
                    errors.push(format!("ri={} is not a number of seconds", clip(v)));
                }
            }
            _ => rec.unknown.push(t.name.clone()),
        }
    }
    if rec.p_text.is_none() {
        errors.push("p= is missing (required, RFC 7489 §6.3)".to_string());
    }
    rec.rua_valid = rua;
    Parsed { record: rec, errors }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn organizational_domains() {
        for (name, want) in [
            ("sub.example.org", Some("example.org")),
            ("a.b.example.org.", Some("example.org")),
            ("example.org", None),
            ("Mail.Example.CO.UK", Some("example.co.uk")),
            ("example.co.uk", None),
            ("co.uk", None),
            ("x.user.github.io", Some("user.github.io")),
            ("shop.fixed.test", Some("fixed.test")),
            ("fixed.test", None),
        ] {
            assert_eq!(organizational_domain(name).as_deref(), want, "{name}");
        }
    }

    /// The records of RFC 7489 §6.3 and appendix B.
    #[test]
    fn rfc_examples() {
        for r in [
            "v=DMARC1; p=none; rua=mailto:dmarc-feedback@example.com",
            "v=DMARC1; p=none; rua=mailto:dmarc-feedback@example.com; ruf=mailto:auth-reports@thirdparty.example.net",
            "v=DMARC1; p=quarantine; rua=mailto:dmarc-feedback@example.com,mailto:tld-test@thirdparty.example.net!10m; pct=25",
            "v=DMARC1; p=reject; rua=mailto:dmarc-feedback@example.com",
            "v=DMARC1; p=quarantine; sp=reject; adkim=s; aspf=r; fo=0:1:d:s; rf=afrf; ri=86400; pct=100",
            "v = DMARC1 ; p = reject ;",
        ] {
            assert!(is_dmarc(r), "{r}");
            let p = parse(r);
            assert!(p.valid(), "{r}: {:?}", p.errors);
        }
        let p = parse("v=DMARC1; p=quarantine; rua=mailto:a@example.com,mailto:b@example.net!10m; pct=25");
        assert_eq!(p.record.p, Some(Disposition::Quarantine));
        assert_eq!(p.record.pct, Some(25));
        assert_eq!(p.record.rua_valid, vec!["mailto:a@example.com", "mailto:b@example.net"]);
        assert_eq!(parse("v=DMARC1; p=none").effective_policy(), Some(Disposition::None));
    }

    #[test]
    fn recognised_or_not() {
        assert!(is_dmarc("v=DMARC1"));
        assert!(!is_dmarc("v=dmarc1; p=none"));
        assert!(looks_like_dmarc("v=dmarc1; p=none"));
        assert!(looks_like_dmarc("v=DMARC2; p=none"));
        assert!(!is_dmarc("p=none; v=DMARC1"));
        assert!(!is_dmarc("v=DMARC10; p=none"));
        assert!(!looks_like_dmarc("v=spf1 -all"));
        assert!(!looks_like_dmarc("v=DMARC1; p=none"));
    }

    fn errs(r: &str) -> Vec<String> {
        parse(r).errors
    }

    #[test]
    fn malformed() {
        assert_eq!(
            errs("v=DMARC1; p=maybe; pct=200"),
            vec!["p=maybe is not a policy (none, quarantine or reject)", "pct=200 is above 100"]
        );
        assert_eq!(errs("v=DMARC1; rua=mailto:d@example.com"), vec!["p= is missing (required, RFC 7489 §6.3)"]);
        assert_eq!(errs("v=DMARC1; p=none; sp=all"), vec!["sp=all is not a policy (none, quarantine or reject)"]);
        assert_eq!(errs("v=DMARC1; p=none; pct=x"), vec!["pct=x is not a number from 0 to 100"]);
        assert_eq!(errs("v=DMARC1; p=none; pct=1000"), vec!["pct=1000 is not a number from 0 to 100"]);
        assert_eq!(errs("v=DMARC1; p=none; adkim=x"), vec!["adkim=x is not r (relaxed) or s (strict)"]);
        assert_eq!(errs("v=DMARC1; p=none; fo=2"), vec!["fo=2: \"2\" is not a failure reporting option (0, 1, d, s)"]);
        assert_eq!(errs("v=DMARC1; p=none; ri=soon"), vec!["ri=soon is not a number of seconds"]);
        assert_eq!(errs("v=DMARC1; p=none; rf=a f"), vec!["rf=a f: \"a f\" is not a report format name"]);
        assert_eq!(
            errs("v=DMARC1; p=none; rua=dmarc@example.com"),
            vec!["rua: \"dmarc@example.com\" is not a URI (no scheme)"]
        );
        assert_eq!(
            errs("v=DMARC1; p=none; rua=mailto:dmarc.example.com"),
            vec!["rua: \"mailto:dmarc.example.com\": \"dmarc.example.com\" is not an address (no @)"]
        );
        assert_eq!(
            errs("v=DMARC1; p=none; rua=mailto:d@example.com!10x"),
            vec!["rua: the size limit \"!10x\" is not digits with an optional k, m, g or t"]
        );
        assert_eq!(
            errs("v=DMARC1; p=none; rua=mailto:d@example.com,"),
            vec!["rua: an empty URI in \"mailto:d@example.com,\""]
        );
        assert_eq!(errs("v=DMARC1; p=none; p=reject"), vec!["tag p appears more than once"]);
        assert_eq!(errs("p=none; v=DMARC1"), vec!["the first tag must be v=DMARC1 (RFC 7489 §6.3)"]);
        assert_eq!(errs("v=DMARC2; p=none"), vec!["v=DMARC2 is not DMARC1 (matched exactly, RFC 7489 §6.3)"]);
        assert_eq!(
            errs("v=DMARC1 p=none"),
            vec![
                "v=DMARC1 p=none is not DMARC1 (matched exactly, RFC 7489 §6.3)",
                "p= is missing (required, RFC 7489 §6.3)"
            ]
        );
        // unknown tags are ignored (§6.3), e.g. np of RFC 9091
        let p = parse("v=DMARC1; p=reject; np=reject");
        assert!(p.valid() && p.record.unknown == vec!["np"]);
    }

    #[test]
    fn invalid_policy_with_rua_acts_as_none() {
        let p = parse("v=DMARC1; p=maybe; rua=mailto:d@example.com");
        assert!(!p.valid());
        assert_eq!(p.effective_policy(), Some(Disposition::None));
        assert_eq!(parse("v=DMARC1; p=maybe; pct=200").effective_policy(), None);
    }
}
