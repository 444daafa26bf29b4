//! The two SMTP TLS records: MTA-STS (RFC 8461 §3.1) at `_mta-sts.<domain>` and
//! TLS-RPT (RFC 8460 §3) at `_smtp._tls.<domain>`.
//!
//! Both are `version 1*(sep field) [sep]` with `sep = *WSP ";" *WSP` and fields
//! `name=value`, matched case-sensitively (`%s` in the ABNF). Extension fields have
//! names of at most 32 characters and values without `;`, `=` or white space.

use super::{check_https, check_mailto, clip, uri_scheme};

pub const MTA_STS_VERSION: &str = "v=STSv1";
pub const TLSRPT_VERSION: &str = "v=TLSRPTv1";

fn wsp(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// Does the record start with `version`, followed by a separator or the end?
fn has_version(txt: &str, version: &str) -> bool {
    txt.strip_prefix(version)
        .is_some_and(|rest| rest.trim_start_matches(wsp).is_empty() || rest.trim_start_matches(wsp).starts_with(';'))
}

/// Records that senders consider (the rest are discarded, RFC 8461 §3.1).
pub fn is_mta_sts(txt: &str) -> bool {
    has_version(txt, MTA_STS_VERSION)
}

/// Records that reporters consider (RFC 8460 §3).
pub fn is_tlsrpt(txt: &str) -> bool {
    has_version(txt, TLSRPT_VERSION)
}

/// A record meant as `version` that senders discard because the version is not
/// written exactly (`v=stsv1`, `v=STSv1id=…`).
pub fn looks_like(txt: &str, version: &str) -> bool {
    let squeezed: String = txt.chars().filter(|c| !c.is_whitespace()).collect::<String>().to_ascii_lowercase();
    squeezed.starts_with(&version.to_ascii_lowercase()) && !has_version(txt, version)
}

/// The fields after the version, in order.
fn fields<'a>(txt: &'a str, version: &str) -> Result<Vec<(&'a str, &'a str)>, String> {
    let Some(rest) = txt.strip_prefix(version) else {
        return Err(format!("{:?} does not start with {version}", clip(txt)));
    };
    let mut parts = rest.split(';');
    let head = parts.next().unwrap_or("");
    if !head.trim_matches(wsp).is_empty() {
        return Err(format!("{version} must be followed by ';', found {:?}", clip(head)));
    }
    let parts: Vec<&str> = parts.collect();
    let mut out = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        let f = part.trim_matches(wsp);
        if f.is_empty() {
            if i + 1 == parts.len() {
                break; // a trailing separator
            }
            return Err("an empty field (two ';' in a row, or nothing after the version)".to_string());
        }
        let Some((name, value)) = f.split_once('=') else {
            return Err(format!("{:?} is not a name=value field", clip(f)));
        };
        let name_ok = name.len() <= 32
            && name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c));
        if !name_ok {
            return Err(format!(
                "{:?} is not a field name (a letter or digit, then up to 31 of letters, digits, _ - .)",
                clip(name)
            ));
        }
        out.push((name, value));
    }
    Ok(out)
}

/// An extension field's value: `1*(%x21-3A / %x3C / %x3E-7E)`.
fn check_extension(name: &str, value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err(format!("{name}= has an empty value"));
    }
    if let Some(c) = value.chars().find(|&c| !('\u{21}'..='\u{7e}').contains(&c) || c == ';' || c == '=') {
        return Err(format!("{name}={}: the value contains {c:?}", clip(value)));
    }
    Ok(())
}

/// An MTA-STS record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MtaSts {
    pub id: String,
}

/// Parses an MTA-STS record: `v=STSv1; id=<1-32 letters and digits>` plus
/// extensions.
pub fn parse_mta_sts(txt: &str) -> Result<MtaSts, String> {
    let mut id = None;
    for (name, value) in fields(txt, MTA_STS_VERSION)? {
        if name == "id" {
            if id.is_some() {
                return Err("id appears more than once".to_string());
            }
            if value.is_empty() {
                return Err("id is empty (1 to 32 letters and digits, RFC 8461 §3.1)".to_string());
            }
            if value.len() > 32 {
                return Err(format!("id={} is {} characters long (at most 32)", clip(value), value.len()));
            }
            if let Some(c) = value.chars().find(|c| !c.is_ascii_alphanumeric()) {
                return Err(format!("id={} contains {c:?} (only letters and digits)", clip(value)));
            }
            id = Some(value.to_string());
        } else {
            check_extension(name, value)?;
        }
    }
    match id {
        Some(id) => Ok(MtaSts { id }),
        None => Err("id= is missing (required, RFC 8461 §3.1)".to_string()),
    }
}

/// A TLS-RPT record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsRpt {
    pub rua: Vec<String>,
}

/// Parses a TLS-RPT record: `v=TLSRPTv1; rua=<mailto: or https: URI>[,…]` plus
/// extensions.
pub fn parse_tlsrpt(txt: &str) -> Result<TlsRpt, String> {
    let mut rua: Option<Vec<String>> = None;
    for (name, value) in fields(txt, TLSRPT_VERSION)? {
        if name == "rua" {
            if rua.is_some() {
                return Err("rua appears more than once".to_string());
            }
            let mut list = Vec::new();
            for uri in value.split(',').map(|u| u.trim_matches(wsp)) {
                if uri.is_empty() {
                    return Err(format!("rua={}: an empty URI", clip(value)));
                }
                let checked = match uri_scheme(uri)?.as_str() {
                    "mailto" => check_mailto(uri),
                    "https" => check_https(uri),
                    other => Err(format!(
                        "rua={}: {other}: is not a reporting scheme (mailto: or https:, RFC 8460 §3)",
                        clip(uri)
                    )),
                };
                checked?;
                list.push(uri.to_string());
            }
            rua = Some(list);
        } else {
            check_extension(name, value)?;
        }
    }
    match rua {
        Some(rua) => Ok(TlsRpt { rua }),
        None => Err("rua= is missing (required, RFC 8460 §3)".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mta_sts_rfc_examples() {
        // RFC 8461 §3.1
        assert_eq!(parse_mta_sts("v=STSv1; id=20160831085700Z;").unwrap().id, "20160831085700Z");
        assert_eq!(parse_mta_sts("v=STSv1; id=20261127T010000").unwrap().id, "20261127T010000");
        assert!(parse_mta_sts("v=STSv1 ;id=abc ; ext=1").is_ok());
        assert!(is_mta_sts("v=STSv1; id=1") && !is_mta_sts("v=STSv10; id=1") && !is_mta_sts("v=stsv1; id=1"));
        assert!(looks_like("v=stsv1; id=1", MTA_STS_VERSION));
        assert!(!looks_like("v=STSv1; id=1", MTA_STS_VERSION));
    }

    #[test]
    fn mta_sts_malformed() {
        let e = |t: &str| parse_mta_sts(t).unwrap_err();
        assert_eq!(e("v=STSv1; id="), "id is empty (1 to 32 letters and digits, RFC 8461 §3.1)");
        assert_eq!(e("v=STSv1;"), "id= is missing (required, RFC 8461 §3.1)");
        assert_eq!(e("v=STSv1"), "id= is missing (required, RFC 8461 §3.1)");
        assert_eq!(e("v=STSv1; id=a-b"), "id=a-b contains '-' (only letters and digits)");
        assert_eq!(
            e(&format!("v=STSv1; id={}", "a".repeat(33))),
            format!("id={} is 33 characters long (at most 32)", "a".repeat(33))
        );
        assert_eq!(e("v=STSv1; id=1; id=2"), "id appears more than once");
        assert_eq!(e("v=STSv1 id=1"), "v=STSv1 must be followed by ';', found \" id=1\"");
        assert_eq!(e("v=STSv1;; id=1"), "an empty field (two ';' in a row, or nothing after the version)");
        assert_eq!(e("v=STSv1; id=1; mode"), "\"mode\" is not a name=value field");
        assert_eq!(e("v=STSv1; id=1; x=a b"), "x=a b: the value contains ' '");
        assert_eq!(e("v=STSv1; id=1; x="), "x= has an empty value");
        assert_eq!(
            e("v=STSv1; id=1; _x=1"),
            "\"_x\" is not a field name (a letter or digit, then up to 31 of letters, digits, _ - .)"
        );
    }

    #[test]
    fn tlsrpt_rfc_examples() {
        // RFC 8460 §3 (examples of §3.1)
        assert_eq!(
            parse_tlsrpt("v=TLSRPTv1;rua=mailto:reports@example.com").unwrap().rua,
            vec!["mailto:reports@example.com"]
        );
        assert!(parse_tlsrpt("v=TLSRPTv1; rua=https://reporting.example.com/v1/tlsrpt").is_ok());
        assert_eq!(
            parse_tlsrpt("v=TLSRPTv1; rua=mailto:a@example.com , https://r.example.com/x;").unwrap().rua.len(),
            2
        );
        assert!(is_tlsrpt("v=TLSRPTv1;rua=mailto:a@example.com") && !is_tlsrpt("v=tlsrptv1;rua=x"));
    }

    #[test]
    fn tlsrpt_malformed() {
        let e = |t: &str| parse_tlsrpt(t).unwrap_err();
        assert_eq!(
            e("v=TLSRPTv1; rua=ftp://x"),
            "rua=ftp://x: ftp: is not a reporting scheme (mailto: or https:, RFC 8460 §3)"
        );
        assert_eq!(e("v=TLSRPTv1;"), "rua= is missing (required, RFC 8460 §3)");
        assert_eq!(e("v=TLSRPTv1; rua=reports@example.com"), "\"reports@example.com\" is not a URI (no scheme)");
        assert_eq!(e("v=TLSRPTv1; rua=mailto:x"), "\"mailto:x\": \"x\" is not an address (no @)");
        assert_eq!(e("v=TLSRPTv1; rua=mailto:a@example.com,"), "rua=mailto:a@example.com,: an empty URI");
        assert_eq!(e("v=TLSRPTv1; rua=mailto:a@example.com; rua=mailto:b@example.com"), "rua appears more than once");
    }
}
