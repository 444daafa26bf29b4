//! The MTA-STS policy file (RFC 8461 §3.2) served at
//! `https://mta-sts.<domain>/.well-known/mta-sts.txt`, and the matching of an MX
//! exchange against its `mx` patterns (§4.1).
//!
//! The file is `key: value` lines ending in CRLF (a bare LF is accepted, as §3.2
//! asks senders to). Keys are case-sensitive. `version` must be `STSv1`, `mode`
//! one of `enforce`, `testing`, `none`, `max_age` a number of seconds of at most
//! 31557600, and `mx` (repeatable) a host name or `*.` plus a host name; at least
//! one `mx` is required unless the mode is `none`. Unknown keys are ignored; of a
//! repeated key other than `mx`, the first counts (§3.2).

use super::clip;

/// The largest `max_age` allowed (about one year, RFC 8461 §3.2).
pub const MAX_AGE_LIMIT: u64 = 31_557_600;

/// The policy mode (RFC 8461 §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Mode {
    Enforce,
    Testing,
    None,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Testing => "testing",
            Mode::None => "none",
        }
    }
}

/// A valid policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StsPolicy {
    pub mode: Mode,
    pub max_age: u64,
    /// The `mx` patterns, lowercased, without a trailing dot.
    pub mx: Vec<String>,
}

/// Is `s` a host name: dot-separated labels of letters, digits and `-` (not at a
/// label's ends), 1 to 63 characters each, at most 253 in all?
fn is_host(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// Parses a policy file; `Err` lists every problem found.
pub fn parse_policy(text: &str) -> Result<StsPolicy, Vec<String>> {
    let mut errors = Vec::new();
    let mut version: Option<&str> = None;
    let mut mode: Option<&str> = None;
    let mut max_age: Option<&str> = None;
    let mut mx: Vec<String> = Vec::new();
    for (i, raw) in text.split('\n').enumerate() {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if line.trim().is_empty() {
            continue;
        }
        let Some((key, value)) = line.split_once(':') else {
            errors.push(format!("line {}: {:?} is not a key: value line", i + 1, clip(line)));
            continue;
        };
        let value = value.trim_matches([' ', '\t']);
        match key {
            "version" => {
                version.get_or_insert(value);
            }
            "mode" => {
                mode.get_or_insert(value);
            }
            "max_age" => {
                max_age.get_or_insert(value);
            }
            "mx" => {
                let p = value.trim_end_matches('.').to_ascii_lowercase();
                let host = p.strip_prefix("*.").unwrap_or(&p);
                if is_host(host) {
                    mx.push(p);
                } else {
                    errors.push(format!("mx: {:?} is not a host name or *.host name", clip(value)));
                }
            }
            _ => {}
        }
    }
    match version {
        Some("STSv1") => {}
        Some(v) => errors.push(format!("version: {:?} is not STSv1", clip(v))),
        None => errors.push("version is missing".to_string()),
    }
    let mode = match mode {
        Some("enforce") => Some(Mode::Enforce),
        Some("testing") => Some(Mode::Testing),
        Some("none") => Some(Mode::None),
        Some(m) => {
            errors.push(format!("mode: {:?} is not enforce, testing or none", clip(m)));
            None
        }
        None => {
            errors.push("mode is missing".to_string());
            None
        }
    };
    let max_age = match max_age {
        Some(a) if !a.is_empty() && a.len() <= 10 && a.bytes().all(|b| b.is_ascii_digit()) => match a.parse::<u64>() {
            Ok(n) if n <= MAX_AGE_LIMIT => Some(n),
            _ => {
                errors.push(format!("max_age: {a} is above {MAX_AGE_LIMIT}"));
                None
            }
        },
        Some(a) => {
            errors.push(format!("max_age: {:?} is not a number of seconds (at most 10 digits)", clip(a)));
            None
        }
        None => {
            errors.push("max_age is missing".to_string());
            None
        }
    };
    if mx.is_empty() && mode != Some(Mode::None) && !errors.iter().any(|e| e.starts_with("mx:")) {
        errors.push("no mx pattern (required unless mode is none)".to_string());
    }
    match (mode, max_age) {
        (Some(mode), Some(max_age)) if errors.is_empty() => Ok(StsPolicy { mode, max_age, mx }),
        _ => Err(errors),
    }
}

/// Does the MX exchange `host` match the `mx` pattern (RFC 8461 §4.1)? Names
/// compare case-insensitively without a trailing dot; `*.example.com` matches
/// exactly one label in place of the `*`: `mx.example.com`, not `example.com`
/// nor `a.b.example.com`.
pub fn mx_matches(pattern: &str, host: &str) -> bool {
    let p = pattern.trim_end_matches('.').to_ascii_lowercase();
    let h = host.trim_end_matches('.').to_ascii_lowercase();
    match p.strip_prefix("*.") {
        Some(suffix) => h.split_once('.').is_some_and(|(first, rest)| !first.is_empty() && rest == suffix),
        None => !p.is_empty() && p == h,
    }
}

/// Does `host` match any of the policy's patterns?
pub fn policy_matches(policy: &StsPolicy, host: &str) -> bool {
    policy.mx.iter().any(|p| mx_matches(p, host))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_example_parses() {
        // RFC 8461 §3.2
        let p = parse_policy("version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\nmx: backupmx.example.com\r\nmax_age: 604800\r\n").unwrap();
        assert_eq!(
            p,
            StsPolicy {
                mode: Mode::Enforce,
                max_age: 604800,
                mx: vec!["mail.example.com".into(), "*.example.net".into(), "backupmx.example.com".into()]
            }
        );
    }

    #[test]
    fn policies_table() {
        let ok = |t: &str| parse_policy(t).map(|p| (p.mode, p.max_age, p.mx.len()));
        for (text, want) in [
            // bare LF, extra spaces, unknown keys, no final newline
            (
                "version: STSv1\nmode:testing\nmx:  MX.Example.COM. \nmax_age: 86400\nfoo: bar",
                Ok((Mode::Testing, 86400, 1)),
            ),
            ("version: STSv1\r\nmode: none\r\nmax_age: 0\r\n", Ok((Mode::None, 0, 0))),
            // the first of a repeated key counts
            ("version: STSv1\nmode: enforce\nmode: none\nmx: a.test\nmax_age: 1\n", Ok((Mode::Enforce, 1, 1))),
            ("version: STSv1\nmode: enforce\nmx: a.test\nmax_age: 31557600\n", Ok((Mode::Enforce, 31557600, 1))),
        ] {
            assert_eq!(ok(text), want, "{text:?}");
        }
        for (text, errors) in [
            (
                "",
                vec![
                    "version is missing",
                    "mode is missing",
                    "max_age is missing",
                    "no mx pattern (required unless mode is none)",
                ],
            ),
            ("version: STSv2\nmode: enforce\nmx: a.test\nmax_age: 1\n", vec!["version: \"STSv2\" is not STSv1"]),
            ("Version: STSv1\nmode: enforce\nmx: a.test\nmax_age: 1\n", vec!["version is missing"]),
            (
                "version: STSv1\nmode: Enforce\nmx: a.test\nmax_age: 1\n",
                vec!["mode: \"Enforce\" is not enforce, testing or none"],
            ),
            (
                "version: STSv1\nmode: enforce\nmx: a.test\nmax_age: 31557601\n",
                vec!["max_age: 31557601 is above 31557600"],
            ),
            (
                "version: STSv1\nmode: enforce\nmx: a.test\nmax_age: -1\n",
                vec!["max_age: \"-1\" is not a number of seconds (at most 10 digits)"],
            ),
            ("version: STSv1\nmode: enforce\nmax_age: 1\n", vec!["no mx pattern (required unless mode is none)"]),
            (
                "version: STSv1\nmode: enforce\nmx: a..test\nmx: *.*.test\nmax_age: 1\n",
                vec![
                    "mx: \"a..test\" is not a host name or *.host name",
                    "mx: \"*.*.test\" is not a host name or *.host name",
                ],
            ),
            (
                "<html>\nversion: STSv1\nmode: testing\nmx: a.test\nmax_age: 1\n",
                vec!["line 1: \"<html>\" is not a key: value line"],
            ),
        ] {
            assert_eq!(parse_policy(text), Err(errors.iter().map(|e| e.to_string()).collect()), "{text:?}");
        }
    }

    #[test]
    fn mx_patterns() {
        for (pattern, host, want) in [
            ("mail.example.com", "mail.example.com", true),
            ("mail.example.com", "MAIL.example.com.", true),
            ("mail.example.com.", "mail.example.com", true),
            ("mail.example.com", "mx.example.com", false),
            ("*.example.com", "mx.example.com", true),
            ("*.example.com", "MX.Example.Com.", true),
            ("*.example.com", "example.com", false),
            ("*.example.com", "a.b.example.com", false),
            ("*.example.com", "mxexample.com", false),
            ("*.example.com", ".example.com", false),
            ("example.com", "mx.example.com", false),
        ] {
            assert_eq!(mx_matches(pattern, host), want, "{pattern} ~ {host}");
        }
        let p = parse_policy("version: STSv1\nmode: enforce\nmx: mx1.a.test\nmx: *.b.test\nmax_age: 1\n").unwrap();
        assert!(policy_matches(&p, "mx1.a.test") && policy_matches(&p, "x.b.test"));
        assert!(!policy_matches(&p, "mx2.a.test"));
    }

    #[test]
    fn never_panics_on_junk() {
        for t in ["\0\0:", ":::", "mx:", "max_age: 99999999999999999999", "\r\n\r\n", "mx: *.", "mx: *", "ü: é\n"] {
            let _ = parse_policy(t);
        }
        assert!(!mx_matches("*.", "a."));
        assert!(!mx_matches("", ""));
    }
}
