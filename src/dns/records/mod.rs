//! Parsers for the mail policy records the checks read: SPF (RFC 7208), DMARC
//! (RFC 7489), DKIM keys (RFC 6376), MTA-STS (RFC 8461) and TLS-RPT (RFC 8460).
//!
//! Pure functions over text: no I/O, no panics on any input. Errors say which term
//! or tag is wrong and what is wrong with it, for the check messages.
//!
//! This module also holds the pieces several records share: the DKIM-style
//! tag=value list (RFC 6376 §3.2, reused by DMARC), URIs (RFC 3986) as DMARC and
//! TLS-RPT use them, and base64 (RFC 4648 §4) as DKIM keys are written.

pub mod dkim;
pub mod dmarc;
pub mod spf;
pub mod sts;
pub mod sts_policy;

/// One `name=value` of a tag list, as written (whitespace around it removed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    pub name: String,
    pub value: String,
}

/// Folding white space of RFC 5322 as RFC 6376 allows it around and inside tags.
fn is_fws(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

/// Shortens a value for a message.
pub fn clip(s: &str) -> String {
    const MAX: usize = 80;
    if s.chars().count() <= MAX {
        s.to_string()
    } else {
        let head: String = s.chars().take(MAX).collect();
        format!("{head}…")
    }
}

/// Parses a tag=value list (RFC 6376 §3.2): `tag-spec *( ";" tag-spec ) [ ";" ]`.
///
/// Tag names are `ALPHA *( ALPHA / DIGIT / "_" )`; values are visible ASCII except
/// `;`, with white space allowed inside. A tag that appears twice makes the whole
/// list invalid (§3.2). Empty elements (`;;`) are skipped, as receivers do.
pub fn tag_list(text: &str) -> Result<Vec<Tag>, String> {
    let mut tags: Vec<Tag> = Vec::new();
    for (i, part) in text.split(';').enumerate() {
        let part = part.trim_matches(is_fws);
        if part.is_empty() {
            continue;
        }
        let Some((name, value)) = part.split_once('=') else {
            return Err(format!("element {} {:?} is not a tag=value pair", i + 1, clip(part)));
        };
        let name = name.trim_matches(is_fws);
        let value = value.trim_matches(is_fws);
        let mut chars = name.chars();
        let name_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !name_ok {
            return Err(format!("{:?} is not a valid tag name", clip(name)));
        }
        if let Some(c) = value.chars().find(|&c| !(is_fws(c) || ('\u{21}'..='\u{7e}').contains(&c))) {
            return Err(format!("tag {name}: the value {:?} contains the character {c:?}", clip(value)));
        }
        if tags.iter().any(|t| t.name == name) {
            return Err(format!("tag {name} appears more than once"));
        }
        tags.push(Tag { name: name.to_string(), value: value.to_string() });
    }
    Ok(tags)
}

fn is_uri_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-._~:/?#[]@!$&'()*+,;=%".contains(c)
}

/// Checks the generic syntax of a URI (RFC 3986 §3): a scheme, a colon, and a
/// non-empty rest made of URI characters with well-formed percent escapes. Returns
/// the scheme, lowercased.
pub fn uri_scheme(uri: &str) -> Result<String, String> {
    let Some((scheme, rest)) = uri.split_once(':') else {
        return Err(format!("{:?} is not a URI (no scheme)", clip(uri)));
    };
    let mut sc = scheme.chars();
    let scheme_ok = sc.next().is_some_and(|c| c.is_ascii_alphabetic())
        && sc.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
    if !scheme_ok {
        return Err(format!("{:?} is not a URI ({:?} is not a scheme)", clip(uri), clip(scheme)));
    }
    if rest.is_empty() {
        return Err(format!("{:?} is not a URI (nothing after the scheme)", clip(uri)));
    }
    if let Some(c) = rest.chars().find(|&c| !is_uri_char(c)) {
        return Err(format!("{:?} is not a URI (it contains {c:?})", clip(uri)));
    }
    let bytes = rest.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        if *b == b'%' {
            let ok = bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit);
            if !ok {
                return Err(format!("{:?} is not a URI (a % not followed by two hex digits)", clip(uri)));
            }
        }
    }
    Ok(scheme.to_ascii_lowercase())
}

/// A host name as mail addresses and URLs use it: dot-separated labels of letters,
/// digits and hyphens, at least two labels.
fn is_domain(d: &str) -> bool {
    let d = d.strip_suffix('.').unwrap_or(d);
    d.len() <= 253
        && d.split('.').count() >= 2
        && d.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// Checks a `mailto:` URI (RFC 6068) with one address: `mailto:local@domain`,
/// optionally followed by `?headers`. Percent escapes count as characters.
pub fn check_mailto(uri: &str) -> Result<(), String> {
    let scheme = uri_scheme(uri)?;
    if scheme != "mailto" {
        return Err(format!("{:?} is not a mailto: URI", clip(uri)));
    }
    let rest = &uri[7..];
    let addr = rest.split('?').next().unwrap_or("");
    let Some((local, domain)) = addr.rsplit_once('@') else {
        return Err(format!("{:?}: {:?} is not an address (no @)", clip(uri), clip(addr)));
    };
    if local.is_empty() {
        return Err(format!("{:?}: the address has no local part", clip(uri)));
    }
    if !is_domain(domain) {
        return Err(format!("{:?}: {:?} is not a domain name", clip(uri), clip(domain)));
    }
    Ok(())
}

/// Checks an `https:` URL: `https://host[:port][/path…]`.
pub fn check_https(uri: &str) -> Result<(), String> {
    let scheme = uri_scheme(uri)?;
    let Some(rest) = uri.get(scheme.len() + 1..).filter(|_| scheme == "https") else {
        return Err(format!("{:?} is not an https: URL", clip(uri)));
    };
    let Some(rest) = rest.strip_prefix("//") else {
        return Err(format!("{:?}: https: must be followed by //host", clip(uri)));
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = if host_port.starts_with('[') {
        match host_port.split_once(']') {
            Some((h, "")) => (&host_port[..h.len() + 1], None),
            Some((h, p)) => (&host_port[..h.len() + 1], Some(p.strip_prefix(':').unwrap_or(p))),
            None => (host_port, None),
        }
    } else {
        match host_port.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (host_port, None),
        }
    };
    if let Some(p) = port
        && p.parse::<u16>().is_err()
    {
        return Err(format!("{:?}: {p:?} is not a port", clip(uri)));
    }
    let literal = host.strip_prefix('[').and_then(|h| h.strip_suffix(']'));
    let ok = match literal {
        Some(ip) => ip.parse::<std::net::Ipv6Addr>().is_ok(),
        None => is_domain(host) || host.parse::<std::net::Ipv4Addr>().is_ok(),
    };
    if !ok {
        return Err(format!("{:?}: {:?} is not a host name", clip(uri), clip(host)));
    }
    Ok(())
}

/// Decodes base64 (RFC 4648 §4) as DKIM writes it: white space anywhere is
/// ignored (RFC 6376 §3.6.1), `=` padding as the standard alphabet requires it.
/// The decoding is the `base64` crate's; this adds the white space rule and an
/// error that names the first offending character and its position in `text`.
pub fn base64_decode(text: &str) -> Result<Vec<u8>, String> {
    use base64::Engine as _;
    // the bytes that are not white space, and where each stood in `text`
    let (bytes, at): (Vec<u8>, Vec<usize>) = text
        .char_indices()
        .filter(|(_, c)| !is_fws(*c))
        .flat_map(|(i, c)| (0..c.len_utf8()).map(move |k| (i, k)))
        .map(|(i, k)| (text.as_bytes()[i + k], i))
        .unzip();
    let char_at = |offset: usize| {
        let pos = at.get(offset).copied().unwrap_or(text.len());
        (pos, text[pos..].chars().next().unwrap_or(' '))
    };
    base64::engine::general_purpose::STANDARD.decode(&bytes).map_err(|e| match e {
        base64::DecodeError::InvalidByte(offset, b'=') => {
            let (pos, _) = char_at(offset);
            format!("'=' at position {pos} is padding in the middle of the value")
        }
        base64::DecodeError::InvalidByte(offset, _) => {
            let (pos, c) = char_at(offset);
            format!("{c:?} at position {pos} is not a base64 character")
        }
        base64::DecodeError::InvalidLength(n) => {
            format!("{n} base64 characters: not a whole number of 4-character groups")
        }
        base64::DecodeError::InvalidLastSymbol(offset, _) => {
            let (pos, c) = char_at(offset);
            format!("{c:?} at position {pos} leaves stray bits (not canonical base64)")
        }
        base64::DecodeError::InvalidPadding => "the '=' padding does not fit the last group".to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_lists() {
        let t = tag_list(" v=DKIM1; k = rsa ;p=AB CD;").unwrap();
        assert_eq!(
            t.iter().map(|t| (t.name.as_str(), t.value.as_str())).collect::<Vec<_>>(),
            vec![("v", "DKIM1"), ("k", "rsa"), ("p", "AB CD")]
        );
        assert_eq!(tag_list("v=1; p=a; p=b").unwrap_err(), "tag p appears more than once");
        assert_eq!(tag_list("v=1; junk").unwrap_err(), "element 2 \"junk\" is not a tag=value pair");
        assert_eq!(tag_list("1v=1").unwrap_err(), "\"1v\" is not a valid tag name");
        assert!(tag_list("p=caf\u{e9}").unwrap_err().contains("contains the character 'é'"));
        assert!(tag_list("").unwrap().is_empty());
    }

    #[test]
    fn uris() {
        assert_eq!(uri_scheme("mailto:a@b.example").unwrap(), "mailto");
        assert!(uri_scheme("nocolon").unwrap_err().contains("no scheme"));
        assert!(uri_scheme("1x:y").unwrap_err().contains("is not a scheme"));
        assert!(uri_scheme("x:a b").unwrap_err().contains("contains ' '"));
        assert!(uri_scheme("x:%zz").unwrap_err().contains("two hex digits"));
        assert!(check_mailto("mailto:dmarc@fixed.test").is_ok());
        assert!(check_mailto("MAILTO:d%40x@example.com?subject=x").is_ok());
        assert!(check_mailto("mailto:nobody").unwrap_err().contains("no @"));
        assert!(check_mailto("mailto:@example.com").unwrap_err().contains("no local part"));
        assert!(check_mailto("mailto:a@localhost").unwrap_err().contains("not a domain name"));
        assert!(check_mailto("https://x.example").unwrap_err().contains("not a mailto"));
        assert!(check_https("https://reports.example.com/tlsrpt").is_ok());
        assert!(check_https("https://reports.example.com:8443").is_ok());
        assert!(check_https("https://[2001:db8::1]/x").is_ok());
        assert!(check_https("https:reports.example.com").unwrap_err().contains("//host"));
        assert!(check_https("https://x.example:99999/").unwrap_err().contains("not a port"));
        assert!(check_https("ftp://x").unwrap_err().contains("not an https"));
    }

    #[test]
    fn base64() {
        assert_eq!(base64_decode("TWFu").unwrap(), b"Man");
        assert_eq!(base64_decode("TWE=").unwrap(), b"Ma");
        assert_eq!(base64_decode("TQ==").unwrap(), b"M");
        assert_eq!(base64_decode(" TW\r\n Fu ").unwrap(), b"Man");
        assert_eq!(base64_decode("").unwrap(), b"");
        assert_eq!(base64_decode("@@not-base64@@").unwrap_err(), "'@' at position 0 is not a base64 character");
        assert_eq!(base64_decode("TWF").unwrap_err(), "the '=' padding does not fit the last group");
        assert_eq!(base64_decode("TQ=a").unwrap_err(), "'=' at position 2 is padding in the middle of the value");
        assert!(base64_decode("T===").is_err());
        assert!(base64_decode("TWFu====").is_err());
        assert!(base64_decode("TWFuTQ=").is_err());
        assert_eq!(base64_decode("TWFu\u{e9}").unwrap_err(), "'é' at position 4 is not a base64 character");
        assert_eq!(base64_decode(" TW\r\n F@").unwrap_err(), "'@' at position 7 is not a base64 character");
    }
}

#[cfg(test)]
mod never_panic {
    proptest::proptest! {
        #[test]
        fn any_text(s in "\\PC*") {
            let _ = super::dmarc::parse(&s);
            let _ = super::dmarc::is_dmarc(&s);
            let _ = super::dmarc::looks_like_dmarc(&s);
            let _ = super::dkim::parse(&s);
            let _ = super::sts::parse_mta_sts(&s);
            let _ = super::sts::parse_tlsrpt(&s);
            let _ = super::base64_decode(&s);
            let _ = super::check_https(&s);
            let _ = super::check_mailto(&s);
        }

        #[test]
        fn dmarc_like(s in "v=DMARC1(; ?[a-z]{1,5} ?= ?[ -:<-~]{0,30}){0,8};?") {
            let p = super::dmarc::parse(&s);
            let _ = p.effective_policy();
        }

        #[test]
        fn dkim_like(s in "(v=DKIM1; )?(k=(rsa|ed25519); )?p=[A-Za-z0-9+/= ]{0,400}") {
            let _ = super::dkim::parse(&s);
        }
    }
}
