//! SPF records (RFC 7208): the term parser of §12, the macros of §7, and the walk
//! that counts what an evaluation would look up (§4.6.4).
//!
//! The parser accepts exactly the ABNF of §12 (names case-insensitive, as ABNF
//! strings are), plus the rules of the text: `redirect` and `exp` at most once
//! (§6), the macro letters `c`, `r` and `t` only in explanation text (§7.2), a
//! digit transformer that is not zero (§7.3). One deliberate strictness: a modifier
//! named like a mechanism (`include=example.com`) is an error, although the ABNF
//! reads it as an unknown modifier that receivers ignore, because the include it
//! was meant to be is then silently lost.
//!
//! The walk replays an evaluation for a client that matches nothing, the worst
//! case, over answers gathered beforehand ([`SpfLookups`]): every term that queries
//! DNS is counted (`include`, `a`, `mx`, `ptr`, `exists` and `redirect`; the top
//! record's own lookup is not a term), in order, through includes and redirects.
//! Terms after `all` are not evaluated and a `redirect` beside an `all` is ignored
//! (§5.1, §6.1), so neither is counted. A term whose lookup is a void lookup
//! (NXDOMAIN, or no record of the type asked) counts towards the void limit; an `a`
//! term is void when the name has neither A nor AAAA. An include loop is followed as
//! an evaluator would follow it, until it exceeds the limit of 10; it is also
//! reported as a loop. Terms whose target depends on the sender or the client
//! (macros other than `%{d}` and `%{o}`, and `ptr`) are counted but cannot be
//! looked up.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::clip;
use crate::dns::snapshot::{Lookup, SpfLookups, void_text};

/// DNS-querying terms allowed in one evaluation (RFC 7208 §4.6.4).
pub const LOOKUP_LIMIT: usize = 10;
/// Void lookups allowed in one evaluation (RFC 7208 §4.6.4).
pub const VOID_LIMIT: usize = 2;
/// Address lookups allowed for one `mx` term (RFC 7208 §4.6.4).
pub const MX_ADDRESS_LIMIT: usize = 10;
/// The walk gives up after this many counted terms (a very wide or looping policy).
const WORK_CAP: usize = 100;
/// The walk never nests deeper than this.
const DEPTH_CAP: usize = 24;

const MECHANISMS: [&str; 8] = ["all", "include", "a", "mx", "ptr", "ip4", "ip6", "exists"];

/// The result a matching directive gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Qualifier {
    Pass,
    Fail,
    SoftFail,
    Neutral,
}

/// A mechanism with its arguments as written (domain-specs unexpanded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mechanism {
    All,
    Include(String),
    A { domain: Option<String>, ip4_prefix: Option<u8>, ip6_prefix: Option<u8> },
    Mx { domain: Option<String>, ip4_prefix: Option<u8>, ip6_prefix: Option<u8> },
    Ptr(Option<String>),
    Ip4 { network: Ipv4Addr, prefix: Option<u8> },
    Ip6 { network: Ipv6Addr, prefix: Option<u8> },
    Exists(String),
}

/// One term of a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Term {
    Directive {
        qualifier: Qualifier,
        mechanism: Mechanism,
    },
    Redirect(String),
    Exp(String),
    /// A modifier this version of SPF does not know; receivers ignore it.
    Unknown {
        name: String,
        value: String,
    },
}

/// A parsed record: its terms in order, each with its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub terms: Vec<(String, Term)>,
}

impl Record {
    /// The terms an evaluation reaches: everything up to and including the first
    /// `all` (later mechanisms are never tested, §5.1).
    pub fn evaluated(&self) -> impl Iterator<Item = &(String, Term)> {
        let end = self
            .terms
            .iter()
            .position(|(_, t)| matches!(t, Term::Directive { mechanism: Mechanism::All, .. }))
            .map_or(self.terms.len(), |i| i + 1);
        self.terms[..end].iter()
    }

    pub fn has_all(&self) -> bool {
        self.terms.iter().any(|(_, t)| matches!(t, Term::Directive { mechanism: Mechanism::All, .. }))
    }

    pub fn redirect(&self) -> Option<&str> {
        self.terms.iter().find_map(|(_, t)| match t {
            Term::Redirect(d) => Some(d.as_str()),
            _ => None,
        })
    }

    /// Advice that is not an error: the use of `ptr` (§5.5: SHOULD NOT be
    /// published), mechanisms after `all`, a redirect that `all` makes void.
    pub fn advice(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.terms.iter().any(|(_, t)| matches!(t, Term::Directive { mechanism: Mechanism::Ptr(_), .. })) {
            out.push("ptr should not be used (RFC 7208 §5.5)".to_string());
        }
        let reached = self.evaluated().count();
        let ignored: Vec<&str> = self.terms[reached..]
            .iter()
            .filter(|(_, t)| matches!(t, Term::Directive { .. }))
            .map(|(s, _)| s.as_str())
            .collect();
        if !ignored.is_empty() {
            out.push(format!("{} after all is never evaluated", ignored.join(" ")));
        }
        if self.has_all()
            && let Some(r) = self.redirect()
        {
            out.push(format!("redirect={r} is ignored because the record has all (RFC 7208 §6.1)"));
        }
        out
    }
}

/// A syntax error: which term (1-based; 0 = the record as a whole) and what is
/// wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpfError {
    pub term: usize,
    pub text: String,
    pub problem: String,
}

impl std::fmt::Display for SpfError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.term == 0 {
            f.write_str(&self.problem)
        } else {
            write!(f, "term {} {:?}: {}", self.term, clip(&self.text), self.problem)
        }
    }
}

/// Joins errors for a message.
pub fn errors_text(errors: &[SpfError]) -> String {
    errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}

/// Is this TXT record an SPF record (§4.5): `v=spf1` followed by a space or the end?
pub fn is_spf(txt: &str) -> bool {
    let b = txt.as_bytes();
    b.len() >= 6 && b[..6].eq_ignore_ascii_case(b"v=spf1") && (b.len() == 6 || b[6] == b' ')
}

/// Parses an SPF record. All errors are reported, each naming its term.
pub fn parse(text: &str) -> Result<Record, Vec<SpfError>> {
    if !is_spf(text) {
        return Err(vec![SpfError {
            term: 0,
            text: String::new(),
            problem: format!("{:?} does not start with \"v=spf1\" followed by a space or the end", clip(text)),
        }]);
    }
    let mut errors = Vec::new();
    let mut terms = Vec::new();
    let mut seen_redirect = false;
    let mut seen_exp = false;
    for (i, t) in text[6..].split(' ').filter(|t| !t.is_empty()).enumerate() {
        let n = i + 1;
        match term(t) {
            Ok(parsed) => {
                let twice = match parsed {
                    Term::Redirect(_) => std::mem::replace(&mut seen_redirect, true),
                    Term::Exp(_) => std::mem::replace(&mut seen_exp, true),
                    _ => false,
                };
                if twice {
                    errors.push(SpfError {
                        term: n,
                        text: t.to_string(),
                        problem: "a second one: redirect and exp may appear at most once (RFC 7208 §6)".to_string(),
                    });
                }
                terms.push((t.to_string(), parsed));
            }
            Err(problem) => errors.push(SpfError { term: n, text: t.to_string(), problem }),
        }
    }
    if errors.is_empty() { Ok(Record { terms }) } else { Err(errors) }
}

fn term(t: &str) -> Result<Term, String> {
    if let Some(c) = t.chars().find(|c| !('\u{21}'..='\u{7e}').contains(c)) {
        return Err(format!("contains the character {c:?} (only visible ASCII is allowed)"));
    }
    let name_len = t.find(|c: char| !(c.is_ascii_alphanumeric() || "-_.".contains(c))).unwrap_or(t.len());
    if name_len > 0 && t.as_bytes()[0].is_ascii_alphabetic() && t[name_len..].starts_with('=') {
        return modifier(&t[..name_len], &t[name_len + 1..]);
    }
    directive(t)
}

fn modifier(name: &str, value: &str) -> Result<Term, String> {
    let lower = name.to_ascii_lowercase();
    match lower.as_str() {
        "redirect" => {
            domain_spec(value).map_err(|e| format!("redirect: {e}"))?;
            Ok(Term::Redirect(value.to_string()))
        }
        "exp" => {
            domain_spec(value).map_err(|e| format!("exp: {e}"))?;
            Ok(Term::Exp(value.to_string()))
        }
        m if MECHANISMS.contains(&m) => Err(format!(
            "{name} is a mechanism, written {name}:…; with '=' receivers take it for an unknown modifier and ignore it"
        )),
        _ => {
            macro_string(value).map_err(|e| format!("modifier {name}: {e}"))?;
            Ok(Term::Unknown { name: name.to_string(), value: value.to_string() })
        }
    }
}

fn directive(t: &str) -> Result<Term, String> {
    let (qualifier, rest) = match t.as_bytes().first() {
        Some(b'+') => (Qualifier::Pass, &t[1..]),
        Some(b'-') => (Qualifier::Fail, &t[1..]),
        Some(b'~') => (Qualifier::SoftFail, &t[1..]),
        Some(b'?') => (Qualifier::Neutral, &t[1..]),
        _ => (Qualifier::Pass, t),
    };
    let name_len = rest.find(|c: char| !c.is_ascii_alphanumeric()).unwrap_or(rest.len());
    let (name, arg) = rest.split_at(name_len);
    if name.is_empty() {
        return Err(if rest.is_empty() {
            "a qualifier without a mechanism".to_string()
        } else {
            format!("{:?} does not start with a mechanism name", clip(rest))
        });
    }
    let lower = name.to_ascii_lowercase();
    let mechanism = match lower.as_str() {
        "all" => {
            if !arg.is_empty() {
                return Err(format!("all takes no argument, found {:?}", clip(arg)));
            }
            Mechanism::All
        }
        "include" => Mechanism::Include(required_domain(arg, "include")?),
        "exists" => Mechanism::Exists(required_domain(arg, "exists")?),
        "a" | "mx" => {
            let (spec, ip4_prefix, ip6_prefix) = dual_cidr(arg)?;
            let domain = if spec.is_empty() {
                None
            } else if let Some(d) = spec.strip_prefix(':') {
                domain_spec(d).map_err(|e| format!("{lower}: {e}"))?;
                Some(d.to_string())
            } else {
                return Err(format!("{:?} after {lower}: expected :domain or /prefix-length", clip(spec)));
            };
            if lower == "a" {
                Mechanism::A { domain, ip4_prefix, ip6_prefix }
            } else {
                Mechanism::Mx { domain, ip4_prefix, ip6_prefix }
            }
        }
        "ptr" => {
            if arg.is_empty() {
                Mechanism::Ptr(None)
            } else if let Some(d) = arg.strip_prefix(':') {
                domain_spec(d).map_err(|e| format!("ptr: {e}"))?;
                Mechanism::Ptr(Some(d.to_string()))
            } else {
                return Err(format!("{:?} after ptr: expected :domain", clip(arg)));
            }
        }
        "ip4" => {
            let Some(net) = arg.strip_prefix(':') else {
                return Err("ip4 needs an address: ip4:<address>[/<prefix-length>]".to_string());
            };
            let (addr, len) = match net.split_once('/') {
                Some((a, l)) => (a, Some(l)),
                None => (net, None),
            };
            let network = ipv4(addr).ok_or_else(|| {
                format!("{:?} is not an IPv4 address (four numbers 0-255, no leading zeros)", clip(addr))
            })?;
            let prefix = len.map(|l| prefix_length(l, 32, "IPv4")).transpose()?;
            Mechanism::Ip4 { network, prefix }
        }
        "ip6" => {
            let Some(net) = arg.strip_prefix(':') else {
                return Err("ip6 needs an address: ip6:<address>[/<prefix-length>]".to_string());
            };
            let (addr, len) = match net.split_once('/') {
                Some((a, l)) => (a, Some(l)),
                None => (net, None),
            };
            let network = addr.parse::<Ipv6Addr>().map_err(|_| format!("{:?} is not an IPv6 address", clip(addr)))?;
            let prefix = len.map(|l| prefix_length(l, 128, "IPv6")).transpose()?;
            Mechanism::Ip6 { network, prefix }
        }
        _ => {
            return Err(format!(
                "unknown mechanism {name:?} (the mechanisms are {}; a modifier is written name=value)",
                MECHANISMS.join(", ")
            ));
        }
    };
    Ok(Term::Directive { qualifier, mechanism })
}

fn required_domain(arg: &str, mechanism: &str) -> Result<String, String> {
    let Some(d) = arg.strip_prefix(':') else {
        return Err(format!("{mechanism} needs a domain: {mechanism}:<domain>"));
    };
    domain_spec(d).map_err(|e| format!("{mechanism}: {e}"))?;
    Ok(d.to_string())
}

/// `qnum "." qnum "." qnum "." qnum` (§12): no leading zeros.
fn ipv4(s: &str) -> Option<Ipv4Addr> {
    let parts: Vec<&str> = s.split('.').collect();
    if parts.len() != 4 {
        return None;
    }
    let mut octets = [0u8; 4];
    for (o, p) in octets.iter_mut().zip(&parts) {
        if p.is_empty() || p.len() > 3 || !p.bytes().all(|b| b.is_ascii_digit()) || (p.len() > 1 && p.starts_with('0'))
        {
            return None;
        }
        *o = p.parse().ok()?;
    }
    Some(Ipv4Addr::from(octets))
}

fn prefix_length(s: &str, max: u8, family: &str) -> Result<u8, String> {
    if s.is_empty() || s.len() > 3 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{:?} is not an {family} prefix length", clip(s)));
    }
    if s.len() > 1 && s.starts_with('0') {
        return Err(format!("{family} prefix length {s:?} has a leading zero"));
    }
    match s.parse::<u16>() {
        Ok(n) if n <= u16::from(max) => Ok(n as u8),
        _ => Err(format!("{family} prefix length {s} is above {max}")),
    }
}

/// Splits `[ip4-cidr-length] [ "/" ip6-cidr-length ]` off the end of an `a` or `mx`
/// argument.
fn dual_cidr(arg: &str) -> Result<(&str, Option<u8>, Option<u8>), String> {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let mut rest = arg;
    let mut v6 = None;
    let mut v4 = None;
    if let Some(pos) = rest.rfind("//")
        && digits(&rest[pos + 2..])
    {
        v6 = Some(prefix_length(&rest[pos + 2..], 128, "IPv6")?);
        rest = &rest[..pos];
    }
    if let Some(pos) = rest.rfind('/')
        && digits(&rest[pos + 1..])
        && !rest[..pos].ends_with('/')
    {
        v4 = Some(prefix_length(&rest[pos + 1..], 32, "IPv4")?);
        rest = &rest[..pos];
    }
    Ok((rest, v4, v6))
}

/// What a macro-string holds.
struct MacroInfo {
    has_macros: bool,
    ends_with_macro: bool,
}

/// Checks a macro-string (§7.1): `%%`, `%_`, `%-`, or
/// `%{letter [digits] [r] *delimiter}`; any other `%` is an error.
fn macro_string(s: &str) -> Result<MacroInfo, String> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut has_macros = false;
    let mut last_end = None;
    while i < b.len() {
        if b[i] != b'%' {
            i += 1;
            continue;
        }
        has_macros = true;
        match b.get(i + 1) {
            Some(b'%' | b'_' | b'-') => i += 2,
            Some(b'{') => {
                let Some(close) = s[i..].find('}') else {
                    return Err(format!("the macro {:?} has no closing }}", clip(&s[i..])));
                };
                macro_body(&s[i + 2..i + close])?;
                i += close + 1;
            }
            Some(c) => {
                return Err(format!(
                    "'%' followed by {:?}: a literal percent sign is written %% (RFC 7208 §7.1)",
                    *c as char
                ));
            }
            None => return Err("a '%' at the end: a literal percent sign is written %% (RFC 7208 §7.1)".to_string()),
        }
        last_end = Some(i);
    }
    Ok(MacroInfo { has_macros, ends_with_macro: last_end == Some(b.len()) })
}

fn macro_body(inner: &str) -> Result<(), String> {
    let whole = format!("%{{{inner}}}");
    let mut chars = inner.chars().peekable();
    let Some(letter) = chars.next() else {
        return Err("an empty macro %{}".to_string());
    };
    match letter.to_ascii_lowercase() {
        's' | 'l' | 'o' | 'd' | 'i' | 'p' | 'h' | 'v' => {}
        'c' | 'r' | 't' => {
            return Err(format!(
                "{whole}: the macro letter {letter} is allowed only in explanation text (RFC 7208 §7.2)"
            ));
        }
        _ => return Err(format!("{whole}: {letter:?} is not a macro letter (s l o d i p h v)")),
    }
    let mut digits = String::new();
    while let Some(c) = chars.peek().copied().filter(char::is_ascii_digit) {
        digits.push(c);
        chars.next();
    }
    if !digits.is_empty() {
        match digits.parse::<u32>() {
            Ok(0) => return Err(format!("{whole}: the digit transformer must not be zero (RFC 7208 §7.3)")),
            Ok(_) => {}
            Err(_) => return Err(format!("{whole}: the digit transformer {digits} is too large")),
        }
    }
    if chars.peek().is_some_and(|c| c.eq_ignore_ascii_case(&'r')) {
        chars.next();
    }
    if let Some(c) = chars.find(|c| !".-+,/_=".contains(*c)) {
        return Err(format!("{whole}: {c:?} is not a delimiter (. - + , / _ =)"));
    }
    Ok(())
}

/// `toplabel` of §12: letters, digits and inner hyphens, not all digits.
fn is_toplabel(l: &str) -> bool {
    !l.is_empty()
        && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !l.starts_with('-')
        && !l.ends_with('-')
        && l.bytes().any(|b| !b.is_ascii_digit())
}

/// Checks a domain name's labels: none empty, none over 63, at most 253 in all.
fn check_labels(name: &str) -> Result<(), String> {
    let body = name.strip_suffix('.').unwrap_or(name);
    if body.len() > 253 {
        return Err(format!("{} characters long (at most 253)", body.len()));
    }
    for l in body.split('.') {
        if l.is_empty() {
            return Err("it has an empty label".to_string());
        }
        if l.len() > 63 {
            return Err(format!("the label {:?} is longer than 63 characters", clip(l)));
        }
    }
    Ok(())
}

/// Checks a domain-spec (§12): a macro-string that ends in a macro or in
/// `"." toplabel ["."]`; without macros, also a well-formed name.
fn domain_spec(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("the domain is empty".to_string());
    }
    let info = macro_string(s)?;
    if info.ends_with_macro {
        return Ok(());
    }
    let body = s.strip_suffix('.').unwrap_or(s);
    let Some((_, top)) = body.rsplit_once('.') else {
        return Err(format!("{:?} is not a domain name of at least two labels", clip(s)));
    };
    if !is_toplabel(top) {
        return Err(format!(
            "{:?} ends in {:?}, which is not a top-level label (letters, digits and inner hyphens, not all digits)",
            clip(s),
            clip(top)
        ));
    }
    if !info.has_macros {
        check_labels(s).map_err(|e| format!("{:?} is not a valid domain name: {e}", clip(s)))?;
    }
    Ok(())
}

/// Expands a domain-spec for a lookup, when that needs no sender or client: only
/// `%{d}` (the domain being evaluated) and `%{o}` (the sender's domain), with their
/// transformers, and `%%`, `%_`, `%-`. Other macros give `None`. The result is
/// lowercased, without a trailing dot, and truncated on the left to 253 characters
/// (§7.3).
pub fn expand(spec: &str, current: &str, sender_domain: &str) -> Option<String> {
    let mut out = String::new();
    let b = spec.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'%' {
            let c = spec[i..].chars().next()?;
            out.push(c);
            i += c.len_utf8();
            continue;
        }
        match b.get(i + 1)? {
            b'%' => out.push('%'),
            b'_' => out.push(' '),
            b'-' => out.push_str("%20"),
            b'{' => {
                let close = spec[i..].find('}')?;
                let inner = &spec[i + 2..i + close];
                let mut chars = inner.chars();
                let value = match chars.next()?.to_ascii_lowercase() {
                    'd' => current,
                    'o' => sender_domain,
                    _ => return None,
                };
                let rest: String = chars.collect();
                let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                let after = &rest[digits.len()..];
                let reverse = after.starts_with(['r', 'R']);
                let delims: Vec<char> = after.chars().skip(usize::from(reverse)).collect();
                let delims = if delims.is_empty() { vec!['.'] } else { delims };
                let mut parts: Vec<&str> = value.split(|c| delims.contains(&c)).collect();
                if reverse {
                    parts.reverse();
                }
                if !digits.is_empty() {
                    let n: usize = digits.parse().ok()?;
                    if n < parts.len() {
                        parts = parts.split_off(parts.len() - n);
                    }
                }
                out.push_str(&parts.join("."));
                i += close + 1;
                continue;
            }
            _ => return None,
        }
        i += 2;
    }
    let mut name = out.trim_end_matches('.').to_ascii_lowercase();
    while name.len() > 253 {
        match name.split_once('.') {
            Some((_, rest)) => name = rest.to_string(),
            None => break,
        }
    }
    Some(name)
}

/// An answer the walk needs and does not have yet.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Need {
    Txt(String),
    Addresses(String),
    Mx(String),
}

/// What an evaluation of the policy would look up, counted (see the module
/// documentation).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Walk {
    /// DNS-querying terms counted.
    pub lookups: usize,
    /// The term that went over [`LOOKUP_LIMIT`], described.
    pub over_limit_at: Option<String>,
    /// Each void lookup, described.
    pub voids: Vec<String>,
    /// The first include/redirect loop met: the chain of domains.
    pub loop_path: Option<Vec<String>>,
    /// `mx` terms with more than [`MX_ADDRESS_LIMIT`] exchanges.
    pub mx_over: Vec<String>,
    /// Permanent errors other than the limits: syntax errors in included records,
    /// includes of domains without a record, malformed targets.
    pub errors: Vec<String>,
    /// Lookups that failed (timeouts, SERVFAIL): the walk is incomplete there.
    pub temporary: Vec<String>,
    /// Terms counted whose lookup depends on the sender or the client.
    pub sender_dependent: Vec<String>,
    /// Answers not gathered yet.
    pub needs: BTreeSet<Need>,
    /// The walk stopped at its work or depth cap.
    pub gave_up: bool,
}

impl Walk {
    /// Every answer was there and every lookup worked.
    pub fn complete(&self) -> bool {
        self.needs.is_empty() && self.temporary.is_empty() && !self.gave_up
    }

    /// The lookup limit is exceeded: by count, by a loop, or by an `mx` term.
    pub fn over_limit(&self) -> bool {
        self.lookups > LOOKUP_LIMIT || self.loop_path.is_some() || !self.mx_over.is_empty()
    }

    fn count(&mut self, desc: &str) {
        self.lookups += 1;
        if self.lookups == LOOKUP_LIMIT + 1 {
            self.over_limit_at = Some(desc.to_string());
        }
        if self.lookups >= WORK_CAP {
            self.gave_up = true;
        }
    }

    fn void(&mut self, desc: &str, nxdomain: bool) {
        self.voids.push(format!("{desc} ({})", void_text(nxdomain)));
    }

    /// The name a term looks up, or `None` (recorded) when it cannot be known.
    fn target(&mut self, spec: Option<&str>, domain: &str, sender: &str, desc: &str) -> Option<String> {
        let Some(spec) = spec else { return Some(domain.to_string()) };
        match expand(spec, domain, sender) {
            None => {
                self.sender_dependent.push(format!("{desc}: the name depends on the sender or the client"));
                None
            }
            Some(name) => match check_labels(&name) {
                Ok(()) if name.contains('.') => Some(name),
                Ok(()) => {
                    self.errors.push(format!("{desc}: {name:?} is not a domain name of at least two labels"));
                    None
                }
                Err(e) => {
                    self.errors.push(format!("{desc}: {name:?} is not a valid domain name ({e})"));
                    None
                }
            },
        }
    }

    fn record(&mut self, sender: &str, domain: &str, rec: &Record, data: &SpfLookups, path: &mut Vec<String>) {
        for (text, term) in rec.evaluated() {
            if self.gave_up {
                return;
            }
            let Term::Directive { mechanism, .. } = term else { continue };
            let desc = if path.len() == 1 { text.clone() } else { format!("{text} (in the record of {domain})") };
            match mechanism {
                Mechanism::Include(spec) => {
                    self.count(&desc);
                    if let Some(t) = self.target(Some(spec), domain, sender, &desc) {
                        self.descend(sender, &t, "include", &desc, data, path);
                    }
                }
                Mechanism::A { domain: spec, .. } => {
                    self.count(&desc);
                    if let Some(t) = self.target(spec.as_deref(), domain, sender, &desc) {
                        self.addresses(&t, &desc, data, false);
                    }
                }
                Mechanism::Exists(spec) => {
                    self.count(&desc);
                    if let Some(t) = self.target(Some(spec), domain, sender, &desc) {
                        self.addresses(&t, &desc, data, true);
                    }
                }
                Mechanism::Mx { domain: spec, .. } => {
                    self.count(&desc);
                    let Some(t) = self.target(spec.as_deref(), domain, sender, &desc) else { continue };
                    match data.mx.get(&t) {
                        None => {
                            self.needs.insert(Need::Mx(t));
                        }
                        Some(Lookup::Found(list)) if list.is_empty() => self.void(&desc, false),
                        Some(Lookup::Found(list)) if list.len() > MX_ADDRESS_LIMIT => self.mx_over.push(format!(
                            "{desc}: {t} has {} MX records, and an mx term may look up at most {MX_ADDRESS_LIMIT} addresses",
                            list.len()
                        )),
                        Some(Lookup::Found(_)) => {}
                        Some(Lookup::Void { nxdomain }) => self.void(&desc, *nxdomain),
                        Some(Lookup::Failed(e)) => self.temporary.push(format!("{desc}: {e}")),
                    }
                }
                Mechanism::Ptr(_) => {
                    self.count(&desc);
                    self.sender_dependent.push(format!("{desc}: looks up the client's address"));
                }
                Mechanism::All | Mechanism::Ip4 { .. } | Mechanism::Ip6 { .. } => {}
            }
        }
        if self.gave_up || rec.has_all() {
            return;
        }
        if let Some(spec) = rec.redirect() {
            let desc = if path.len() == 1 {
                format!("redirect={spec}")
            } else {
                format!("redirect={spec} (in the record of {domain})")
            };
            self.count(&desc);
            if let Some(t) = self.target(Some(spec), domain, sender, &desc) {
                self.descend(sender, &t, "redirect", &desc, data, path);
            }
        }
    }

    fn addresses(&mut self, target: &str, desc: &str, data: &SpfLookups, v4_only: bool) {
        match data.addresses.get(target) {
            None => {
                self.needs.insert(Need::Addresses(target.to_string()));
            }
            Some(Lookup::Found(list)) => {
                if !list.iter().any(|a| !v4_only || matches!(a, IpAddr::V4(_))) {
                    self.void(desc, false);
                }
            }
            Some(Lookup::Void { nxdomain }) => self.void(desc, *nxdomain),
            Some(Lookup::Failed(e)) => self.temporary.push(format!("{desc}: {e}")),
        }
    }

    fn descend(
        &mut self,
        sender: &str,
        target: &str,
        how: &str,
        desc: &str,
        data: &SpfLookups,
        path: &mut Vec<String>,
    ) {
        let section = if how == "include" { "§5.2" } else { "§6.1" };
        let records = match data.txt.get(target) {
            None => {
                self.needs.insert(Need::Txt(target.to_string()));
                return;
            }
            Some(Lookup::Failed(e)) => {
                self.temporary.push(format!("{desc}: {e}"));
                return;
            }
            Some(Lookup::Void { nxdomain }) => {
                self.void(desc, *nxdomain);
                self.errors.push(format!(
                    "{desc}: {target} has no SPF record ({}), which makes the {how} a permerror (RFC 7208 {section})",
                    void_text(*nxdomain)
                ));
                return;
            }
            Some(Lookup::Found(records)) => records,
        };
        let spf: Vec<&String> = records.iter().filter(|r| is_spf(r)).collect();
        let text = match spf.as_slice() {
            [one] => *one,
            [] => {
                self.errors.push(format!(
                    "{desc}: {target} has TXT records but no SPF record, which makes the {how} a permerror (RFC 7208 {section})"
                ));
                return;
            }
            many => {
                self.errors
                    .push(format!("{desc}: {target} has {} SPF records, a permerror (RFC 7208 §4.5)", many.len()));
                return;
            }
        };
        let rec = match parse(text) {
            Ok(r) => r,
            Err(errs) => {
                self.errors.push(format!("{desc}: the record of {target} is invalid: {}", errors_text(&errs)));
                return;
            }
        };
        if path.iter().any(|p| p == target) {
            if self.loop_path.is_none() {
                let mut chain = path.clone();
                chain.push(target.to_string());
                self.loop_path = Some(chain);
            }
            if self.lookups > LOOKUP_LIMIT {
                return;
            }
        }
        if path.len() >= DEPTH_CAP {
            self.gave_up = true;
            return;
        }
        path.push(target.to_string());
        self.record(sender, target, &rec, data, path);
        path.pop();
    }
}

/// Walks the policy of `domain` whose own record is `record`, over `data`.
pub fn walk(domain: &str, record: &Record, data: &SpfLookups) -> Walk {
    let mut w = Walk::default();
    let mut path = vec![domain.to_string()];
    w.record(domain, domain, record, data, &mut path);
    dedup(&mut w.errors);
    dedup(&mut w.temporary);
    dedup(&mut w.sender_dependent);
    dedup(&mut w.mx_over);
    w
}

fn dedup(v: &mut Vec<String>) {
    let mut seen = BTreeSet::new();
    v.retain(|x| seen.insert(x.clone()));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn ok(r: &str) -> Record {
        match parse(r) {
            Ok(rec) => rec,
            Err(e) => panic!("{r}: {}", errors_text(&e)),
        }
    }

    fn err(r: &str) -> String {
        match parse(r) {
            Ok(rec) => panic!("{r} parsed: {rec:?}"),
            Err(e) => errors_text(&e),
        }
    }

    /// RFC 7208 appendix A, and the examples of §5, §6 and §7.
    #[test]
    fn rfc_examples_parse() {
        for r in [
            "v=spf1 +all",
            "v=spf1 a -all",
            "v=spf1 a:example.org -all",
            "v=spf1 mx -all",
            "v=spf1 mx:example.org -all",
            "v=spf1 mx mx:example.org -all",
            "v=spf1 mx/30 mx:example.org/30 -all",
            "v=spf1 ptr -all",
            "v=spf1 ip4:192.0.2.128/28 -all",
            "v=spf1 include:example.com include:example.net -all",
            "v=spf1 redirect=example.com",
            "v=spf1 mx -exists:%{ir}.sbl.example.org ~all",
            "v=spf1 -include:ip4._spf.%{d} -include:ptr._spf.%{d} +all",
            "v=spf1 -ip4:192.0.2.0/24 +all",
            "v=spf1 -ptr +all",
            "v=spf1 mx -all exp=explain._spf.%{d}",
            "v=spf1 exists:%{ir}.%{l1r+-}._spf.%{d} -all",
            "v=spf1 exists:%{ir}.%{v}._spf.%{d2} exists:%{lr-}.lp._spf.%{d2} -all",
            "v=spf1 exists:%{lr-}.lp.%{ir}.%{v}._spf.%{d2} exists:%{ir}.%{v}.%{l1r-}.lp._spf.%{d2} -all",
            "v=spf1 include:%{d2}.trusted-domains.example.net -all",
            "v=spf1 ip6:2001:db8::/32 ip6:::ffff:192.0.2.1 a//64 a:example.com/24//64 ?all",
            "v=spf1",
            "V=SPF1 MX -ALL",
            "v=spf1  mx   -all  ",
            "v=spf1 -all moo.cow-far_out=man:dog/cat",
            "v=spf1 a:foo-bar.example.com. -all",
        ] {
            ok(r);
        }
        let r = ok("v=spf1 mx/30 mx:example.org/30 ip4:192.0.2.128/28 -all");
        assert_eq!(
            r.terms.iter().map(|(_, t)| t.clone()).collect::<Vec<_>>(),
            vec![
                Term::Directive {
                    qualifier: Qualifier::Pass,
                    mechanism: Mechanism::Mx { domain: None, ip4_prefix: Some(30), ip6_prefix: None }
                },
                Term::Directive {
                    qualifier: Qualifier::Pass,
                    mechanism: Mechanism::Mx {
                        domain: Some("example.org".into()),
                        ip4_prefix: Some(30),
                        ip6_prefix: None
                    }
                },
                Term::Directive {
                    qualifier: Qualifier::Pass,
                    mechanism: Mechanism::Ip4 { network: Ipv4Addr::new(192, 0, 2, 128), prefix: Some(28) }
                },
                Term::Directive { qualifier: Qualifier::Fail, mechanism: Mechanism::All },
            ]
        );
        let r = ok("v=spf1 a:example.com/24//64 ~all");
        assert_eq!(
            r.terms[0].1,
            Term::Directive {
                qualifier: Qualifier::Pass,
                mechanism: Mechanism::A {
                    domain: Some("example.com".into()),
                    ip4_prefix: Some(24),
                    ip6_prefix: Some(64)
                }
            }
        );
        assert_eq!(ok("v=spf1 redirect=_spf.example.com").redirect(), Some("_spf.example.com"));
    }

    #[test]
    fn malformed_records_name_the_term() {
        assert_eq!(
            err("v=spf1 mx foo:bar -all"),
            "term 2 \"foo:bar\": unknown mechanism \"foo\" (the mechanisms are all, include, a, mx, ptr, ip4, ip6, exists; a modifier is written name=value)"
        );
        assert_eq!(err("v=spf1 include -all"), "term 1 \"include\": include needs a domain: include:<domain>");
        assert_eq!(
            err("v=spf1 ip4:1.2.3"),
            "term 1 \"ip4:1.2.3\": \"1.2.3\" is not an IPv4 address (four numbers 0-255, no leading zeros)"
        );
        assert!(err("v=spf1 ip4:192.0.2.01").contains("\"192.0.2.01\" is not an IPv4 address"));
        assert!(err("v=spf1 ip4:192.0.2.256").contains("is not an IPv4 address"));
        assert_eq!(err("v=spf1 ip4:192.0.2.0/33"), "term 1 \"ip4:192.0.2.0/33\": IPv4 prefix length 33 is above 32");
        assert_eq!(
            err("v=spf1 ip4:192.0.2.0/24//64"),
            "term 1 \"ip4:192.0.2.0/24//64\": \"24//64\" is not an IPv4 prefix length"
        );
        assert_eq!(err("v=spf1 ip4"), "term 1 \"ip4\": ip4 needs an address: ip4:<address>[/<prefix-length>]");
        assert_eq!(
            err("v=spf1 ip6:2001:db8::zz"),
            "term 1 \"ip6:2001:db8::zz\": \"2001:db8::zz\" is not an IPv6 address"
        );
        assert_eq!(
            err("v=spf1 ip6:2001:db8::/129"),
            "term 1 \"ip6:2001:db8::/129\": IPv6 prefix length 129 is above 128"
        );
        assert_eq!(err("v=spf1 a/024"), "term 1 \"a/024\": IPv4 prefix length \"024\" has a leading zero");
        assert_eq!(err("v=spf1 mx//129"), "term 1 \"mx//129\": IPv6 prefix length 129 is above 128");
        assert_eq!(err("v=spf1 mx/24/"), "term 1 \"mx/24/\": \"/24/\" after mx: expected :domain or /prefix-length");
        assert_eq!(err("v=spf1 all:x"), "term 1 \"all:x\": all takes no argument, found \":x\"");
        assert_eq!(
            err("v=spf1 ptr=x.example"),
            "term 1 \"ptr=x.example\": ptr is a mechanism, written ptr:…; with '=' receivers take it for an unknown modifier and ignore it"
        );
        assert!(
            err("v=spf1 include=_spf.example.com -all")
                .starts_with("term 1 \"include=_spf.example.com\": include is a mechanism")
        );
        assert_eq!(
            err("v=spf1 redirect=a.example redirect=b.example"),
            "term 2 \"redirect=b.example\": a second one: redirect and exp may appear at most once (RFC 7208 §6)"
        );
        assert!(err("v=spf1 -all exp=a.example exp=b.example").starts_with("term 3 \"exp=b.example\": a second one"));
        assert_eq!(
            err("v=spf1 include:%{x}.example.com"),
            "term 1 \"include:%{x}.example.com\": include: %{x}: 'x' is not a macro letter (s l o d i p h v)"
        );
        assert_eq!(
            err("v=spf1 exists:%{c}.example.com"),
            "term 1 \"exists:%{c}.example.com\": exists: %{c}: the macro letter c is allowed only in explanation text (RFC 7208 §7.2)"
        );
        assert!(
            err("v=spf1 exists:%{d0}.example.com")
                .ends_with("%{d0}: the digit transformer must not be zero (RFC 7208 §7.3)")
        );
        assert!(err("v=spf1 exists:%{d2r!}.example.com").ends_with("%{d2r!}: '!' is not a delimiter (. - + , / _ =)"));
        assert!(err("v=spf1 exists:%{d.example.com").contains("has no closing }"));
        assert!(err("v=spf1 exists:%{}.example.com").ends_with("an empty macro %{}"));
        assert!(
            err("v=spf1 a:exa%mple.com")
                .ends_with("'%' followed by 'm': a literal percent sign is written %% (RFC 7208 §7.1)")
        );
        assert!(
            err("v=spf1 a:example.com%")
                .ends_with("a '%' at the end: a literal percent sign is written %% (RFC 7208 §7.1)")
        );
        assert_eq!(
            err("v=spf1 include:example"),
            "term 1 \"include:example\": include: \"example\" is not a domain name of at least two labels"
        );
        assert!(err("v=spf1 a:example.123").contains("ends in \"123\", which is not a top-level label"));
        assert!(err("v=spf1 a:example.-com").contains("ends in \"-com\""));
        assert!(
            err("v=spf1 a:foo..example.com")
                .ends_with("\"foo..example.com\" is not a valid domain name: it has an empty label")
        );
        assert!(err(&format!("v=spf1 a:{}.example.com", "x".repeat(64))).contains("is longer than 63 characters"));
        assert_eq!(err("v=spf1 - mx"), "term 1 \"-\": a qualifier without a mechanism");
        assert_eq!(err("v=spf1 %{d}"), "term 1 \"%{d}\": \"%{d}\" does not start with a mechanism name");
        assert_eq!(
            err("v=spf1 mx\t-all"),
            "term 1 \"mx\\t-all\": contains the character '\\t' (only visible ASCII is allowed)"
        );
        assert!(err("v=spf1 +all caf\u{e9}").starts_with("term 2 \"café\": contains the character 'é'"));
        assert_eq!(
            err("v=spf1 -all foo=%q"),
            "term 2 \"foo=%q\": modifier foo: '%' followed by 'q': a literal percent sign is written %% (RFC 7208 §7.1)"
        );
        assert_eq!(
            err("v=spf10 -all"),
            "\"v=spf10 -all\" does not start with \"v=spf1\" followed by a space or the end"
        );
        assert_eq!(err("spf1 -all"), "\"spf1 -all\" does not start with \"v=spf1\" followed by a space or the end");
        // every error is reported
        assert_eq!(parse("v=spf1 foo:bar a/99 -all").unwrap_err().len(), 2);
    }

    #[test]
    fn recognised() {
        assert!(is_spf("v=spf1") && is_spf("v=spf1 -all") && is_spf("V=SPF1 -all"));
        assert!(!is_spf("v=spf10") && !is_spf("v=spf1-all") && !is_spf(" v=spf1 -all") && !is_spf("spf2.0/pra"));
    }

    #[test]
    fn advice() {
        assert_eq!(ok("v=spf1 ptr -all").advice(), vec!["ptr should not be used (RFC 7208 §5.5)"]);
        assert_eq!(ok("v=spf1 -all mx").advice(), vec!["mx after all is never evaluated"]);
        assert_eq!(
            ok("v=spf1 -all redirect=x.example").advice(),
            vec!["redirect=x.example is ignored because the record has all (RFC 7208 §6.1)"]
        );
        assert!(ok("v=spf1 mx -all").advice().is_empty());
    }

    /// RFC 7208 §7.4, with the sender strong-bad@email.example.com.
    #[test]
    fn macro_expansion() {
        let d = "email.example.com";
        for (spec, want) in [
            ("%{d}", "email.example.com"),
            ("%{d4}", "email.example.com"),
            ("%{d3}", "email.example.com"),
            ("%{d2}", "example.com"),
            ("%{d1}", "com"),
            ("%{dr}", "com.example.email"),
            ("%{d2r}", "example.email"),
            ("%{o}", "email.example.com"),
            ("_spf.%{d2}", "_spf.example.com"),
            ("%{d2}.trusted-domains.example.net", "example.com.trusted-domains.example.net"),
            ("Example.COM.", "example.com"),
        ] {
            assert_eq!(expand(spec, d, d).as_deref(), Some(want), "{spec}");
        }
        for spec in ["%{ir}.%{v}._spf.%{d2}", "%{s}", "%{l}.example.com", "%{h}.example.com", "%{p}.example.com"] {
            assert_eq!(expand(spec, d, d), None, "{spec}");
        }
        let long = format!("{}.{}.example.com", "a".repeat(200), "b".repeat(60));
        assert_eq!(expand(&long, d, d).as_deref(), Some(format!("{}.example.com", "b".repeat(60)).as_str()));
    }

    fn found<T>(v: T) -> Lookup<T> {
        Lookup::Found(v)
    }

    fn txt(data: &mut SpfLookups, name: &str, record: &str) {
        data.txt.insert(name.into(), found(vec![record.to_string()]));
    }

    fn addr(data: &mut SpfLookups, name: &str) {
        data.addresses.insert(name.into(), found(vec!["192.0.2.1".parse().unwrap()]));
    }

    /// The lab's spflimit.test: 11 terms over two nested includes.
    #[test]
    fn counts_eleven_through_nested_includes() {
        let mut data = SpfLookups::default();
        txt(&mut data, "a.spflimit.test", "v=spf1 mx:spflimit.test a:mx.spflimit.test include:b.spflimit.test -all");
        txt(
            &mut data,
            "b.spflimit.test",
            "v=spf1 mx:spflimit.test a:mx.spflimit.test a:mx.spflimit.test mx:spflimit.test exists:e.spflimit.test -all",
        );
        data.mx.insert("spflimit.test".into(), found(vec!["mx.spflimit.test".into()]));
        addr(&mut data, "mx.spflimit.test");
        addr(&mut data, "e.spflimit.test");
        let top = ok("v=spf1 mx a:mx.spflimit.test include:a.spflimit.test -all");
        let w = walk("spflimit.test", &top, &data);
        assert!(w.complete(), "{w:?}");
        assert_eq!(w.lookups, 11);
        assert!(w.voids.is_empty() && w.errors.is_empty() && w.loop_path.is_none());
        assert_eq!(w.over_limit_at.as_deref(), Some("exists:e.spflimit.test (in the record of b.spflimit.test)"));
        assert!(w.over_limit());
        // what the gathering has to fetch, level by level
        let w = walk("spflimit.test", &top, &SpfLookups::default());
        assert_eq!(
            w.needs.into_iter().collect::<Vec<_>>(),
            vec![
                Need::Txt("a.spflimit.test".into()),
                Need::Addresses("mx.spflimit.test".into()),
                Need::Mx("spflimit.test".into())
            ]
        );
    }

    #[test]
    fn a_loop_is_followed_until_the_limit() {
        let mut data = SpfLookups::default();
        txt(&mut data, "loop1.spfloop.test", "v=spf1 include:loop2.spfloop.test -all");
        txt(&mut data, "loop2.spfloop.test", "v=spf1 include:loop1.spfloop.test -all");
        let w = walk("spfloop.test", &ok("v=spf1 include:loop1.spfloop.test -all"), &data);
        assert_eq!(w.lookups, 11);
        assert_eq!(
            w.loop_path,
            Some(
                vec!["spfloop.test", "loop1.spfloop.test", "loop2.spfloop.test", "loop1.spfloop.test"]
                    .into_iter()
                    .map(String::from)
                    .collect()
            )
        );
        assert!(w.complete() && w.over_limit());
        // a record that includes itself, and a redirect loop
        txt(&mut data, "self.test", "v=spf1 include:self.test");
        let w = walk("self.test", &ok("v=spf1 include:self.test"), &data);
        assert_eq!(w.lookups, 11);
        txt(&mut data, "r.test", "v=spf1 redirect=r.test");
        let w = walk("r.test", &ok("v=spf1 redirect=r.test"), &data);
        assert_eq!((w.lookups, w.loop_path.is_some()), (11, true));
    }

    #[test]
    fn voids_and_broken_includes() {
        let mut data = SpfLookups::default();
        for n in ["void1.spfvoid.test", "void2.spfvoid.test", "void3.spfvoid.test"] {
            data.addresses.insert(n.into(), Lookup::Void { nxdomain: true });
        }
        data.mx.insert("spfvoid.test".into(), found(vec!["mx.spfvoid.test".into()]));
        let top = ok("v=spf1 a:void1.spfvoid.test a:void2.spfvoid.test a:void3.spfvoid.test mx -all");
        let w = walk("spfvoid.test", &top, &data);
        assert_eq!((w.lookups, w.voids.len()), (4, 3));
        assert_eq!(w.voids[0], "a:void1.spfvoid.test (NXDOMAIN)");
        assert!(!w.over_limit() && w.complete());

        data.txt.insert("gone.test".into(), Lookup::Void { nxdomain: true });
        txt(&mut data, "nospf.test", "google-site-verification=x");
        data.txt.insert("two.test".into(), found(vec!["v=spf1 -all".into(), "v=spf1 +all".into()]));
        txt(&mut data, "bad.test", "v=spf1 foo:bar -all");
        data.mx.insert("nomx.test".into(), Lookup::Void { nxdomain: false });
        let top = ok("v=spf1 include:gone.test include:nospf.test include:two.test include:bad.test mx:nomx.test -all");
        let w = walk("x.test", &top, &data);
        assert_eq!(
            w.errors,
            vec![
                "include:gone.test: gone.test has no SPF record (NXDOMAIN), which makes the include a permerror (RFC 7208 §5.2)",
                "include:nospf.test: nospf.test has TXT records but no SPF record, which makes the include a permerror (RFC 7208 §5.2)",
                "include:two.test: two.test has 2 SPF records, a permerror (RFC 7208 §4.5)",
                "include:bad.test: the record of bad.test is invalid: term 1 \"foo:bar\": unknown mechanism \"foo\" (the mechanisms are all, include, a, mx, ptr, ip4, ip6, exists; a modifier is written name=value)",
            ]
        );
        assert_eq!(w.voids, vec!["include:gone.test (NXDOMAIN)", "mx:nomx.test (no records)"]);
    }

    #[test]
    fn what_is_not_evaluated_is_not_counted() {
        // terms after all, and a redirect beside all (§5.1, §6.1)
        let w = walk("x.test", &ok("v=spf1 -all include:a.test redirect=b.test"), &SpfLookups::default());
        assert_eq!((w.lookups, w.needs.len()), (0, 0));
        // ip4, ip6 and exp cost nothing
        let w = walk("x.test", &ok("v=spf1 ip4:192.0.2.1 ip6:2001:db8::1 exp=e.x.test -all"), &SpfLookups::default());
        assert_eq!(w.lookups, 0);
        // ptr and sender macros are counted but not looked up
        let w = walk("x.test", &ok("v=spf1 ptr exists:%{i}._spf.%{d} -all"), &SpfLookups::default());
        assert_eq!((w.lookups, w.needs.len(), w.sender_dependent.len()), (2, 0, 2));
        // %{d} macros are expanded and looked up
        let w = walk("x.test", &ok("v=spf1 include:_spf.%{d} -all"), &SpfLookups::default());
        assert_eq!(w.needs.into_iter().collect::<Vec<_>>(), vec![Need::Txt("_spf.x.test".into())]);
    }

    #[test]
    fn mx_with_more_than_ten_exchanges() {
        let mut data = SpfLookups::default();
        data.mx.insert("x.test".into(), found((0..11).map(|i| format!("mx{i}.x.test")).collect()));
        let w = walk("x.test", &ok("v=spf1 mx -all"), &data);
        assert_eq!(w.mx_over, vec!["mx: x.test has 11 MX records, and an mx term may look up at most 10 addresses"]);
        assert!(w.over_limit() && w.lookups == 1);
    }

    #[test]
    fn failures_make_it_incomplete() {
        let mut data = SpfLookups::default();
        data.txt.insert("slow.test".into(), Lookup::Failed("timeout".into()));
        let w = walk("x.test", &ok("v=spf1 include:slow.test -all"), &data);
        assert!(!w.complete());
        assert_eq!(w.temporary, vec!["include:slow.test: timeout"]);
    }

    #[test]
    fn wide_policies_are_capped() {
        // every include names the same record, ten times over: 10 + 100 + ... capped
        let mut data = SpfLookups::default();
        let ten = format!("v=spf1 {} -all", ["include:w.test"; 10].join(" "));
        data.txt = BTreeMap::from([("w.test".to_string(), found(vec![ten.clone()]))]);
        let w = walk("w.test", &ok(&ten), &data);
        assert!(w.gave_up && w.lookups == WORK_CAP && w.over_limit());
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(s in "\\PC*") {
            let _ = parse(&s);
            let _ = expand(&s, "x.test", "x.test");
        }

        #[test]
        fn spf_like_records_never_panic(s in "v=spf1( [-+?~]?[a-z0-9:./%{}_=-]{0,24}){0,10}") {
            if let Ok(r) = parse(&s) {
                let w = walk("x.test", &r, &SpfLookups::default());
                proptest::prop_assert!(w.lookups <= WORK_CAP);
                let _ = r.advice();
            }
        }
    }
}
