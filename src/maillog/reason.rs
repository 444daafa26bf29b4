//! The reason classifier: reply text → [`Reason`], first match in rule-book order.
//!
//! This is reasons.md §4 as code. Only the reply text is classified, never the whole
//! line: log fields such as `SPF=fail`, a sender named `spam@…` or a recipient
//! `<virus@…>` must not decide. Words match case-insensitively; when several rows
//! match, the row listed first wins (rows are the variants of [`Reason`], in order).
//!
//! All patterns are searched in one pass with an Aho-Corasick automaton, so the
//! cost per reject does not grow with the number of rules.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};

use super::{Reason, Stage};

/// How a pattern must sit in the text to count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fit {
    /// Anywhere, even inside a word.
    Anywhere,
    /// As a whole word: no letter or digit on either side ("SPF", "RBL", "PBL").
    Word,
    /// At the start of a word, any ending ("spam", "SpamAssassin", "SPAMMER").
    WordStart,
    /// "found in" followed by a DNS zone name (a token with a dot): a DNS list.
    ZoneAfter,
}

/// Extra condition a pattern needs beyond matching.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum When {
    Always,
    /// Only when the reply is about a recipient (the text does not mention the
    /// sender and the command was not MAIL): "unverified address" etc.
    AboutRecipient,
    /// Only when the reply is about the sender: "Domain not found".
    AboutSender,
    /// Not a rule: marks that the text mentions the sender.
    SenderMarker,
}

struct Rule {
    pattern: &'static str,
    reason: Reason,
    fit: Fit,
    when: When,
}

const fn r(pattern: &'static str, reason: Reason) -> Rule {
    Rule { pattern, reason, fit: Fit::Anywhere, when: When::Always }
}

const fn rw(pattern: &'static str, reason: Reason, fit: Fit) -> Rule {
    Rule { pattern, reason, fit, when: When::Always }
}

const fn rc(pattern: &'static str, reason: Reason, when: When) -> Rule {
    Rule { pattern, reason, fit: Fit::Anywhere, when }
}

/// The pattern table of reasons.md §4. Row order does not matter here: priority is
/// the order of [`Reason`]'s variants.
const RULES: &[Rule] = &[
    // 1 greylist
    r("greylist", Reason::Greylist),
    // 2 rbl: DNS block lists and their "see http" replies
    r("blocked using", Reason::Rbl),
    r("listed at", Reason::Rbl),
    r("listed in", Reason::Rbl),
    rw("found in ", Reason::Rbl, Fit::ZoneAfter),
    r("blacklist", Reason::Rbl),
    r("black list", Reason::Rbl),
    r("blocklist", Reason::Rbl),
    rw("rbl", Reason::Rbl, Fit::Word),
    r("dnsbl", Reason::Rbl),
    rw("pbl", Reason::Rbl, Fit::Word),
    r("rejected - see http", Reason::Rbl),
    r("blocked - see http", Reason::Rbl),
    // 3 spf_fail (RFC 7208 results quoted in replies)
    rw("spf", Reason::SpfFail, Fit::Word),
    // 4 dmarc_fail (RFC 7489, RFC 6376)
    r("dmarc", Reason::DmarcFail),
    r("dkim", Reason::DmarcFail),
    // 5 virus
    r("virus", Reason::Virus),
    r("infected", Reason::Virus),
    r("malware", Reason::Virus),
    // 6 spam_content: "spam" as a word or prefix (block lists were taken by rbl)
    rw("spam", Reason::SpamContent, Fit::WordStart),
    // 7 size (RFC 1870 SIZE)
    r("message size exceeds", Reason::Size),
    r("too big", Reason::Size),
    r("size limit", Reason::Size),
    // 8 mailbox_full (enhanced code X.2.2, RFC 3463, is handled separately)
    r("quota", Reason::MailboxFull),
    r("mailbox full", Reason::MailboxFull),
    r("mailbox is full", Reason::MailboxFull),
    // 9 relay_denied, all variants
    r("relaying denied", Reason::RelayDenied),
    r("relaying temporarily denied", Reason::RelayDenied),
    r("relay access denied", Reason::RelayDenied),
    r("relay not permitted", Reason::RelayDenied),
    r("relay denied", Reason::RelayDenied),
    // 10 rate_limit
    r("rate limit", Reason::RateLimit),
    r("ratelimit", Reason::RateLimit),
    r("too many connections", Reason::RateLimit),
    r("too many messages", Reason::RateLimit),
    r("too many recipients", Reason::RateLimit),
    r("too many open connections", Reason::RateLimit),
    r("all server ports busy", Reason::RateLimit),
    r("all screening ports busy", Reason::RateLimit),
    // 11 tls_required (RFC 3207 STARTTLS)
    r("encryption", Reason::TlsRequired),
    r("starttls", Reason::TlsRequired),
    r("tls handshake failed", Reason::TlsRequired),
    r("certificate not verified", Reason::TlsRequired),
    r("unacceptable cipher", Reason::TlsRequired),
    // ours (README readings): "530 You must encrypt …" ACL texts, and Exim's built-in
    // "rejected MAIL from …: not using TLS" (host_must_use_tls)
    r("must encrypt", Reason::TlsRequired),
    r("not using tls", Reason::TlsRequired),
    // 12 auth_failed (RFC 4954); AUTH failure lines come as a hint
    r("authentication failed", Reason::AuthFailed),
    r("authenticator failed", Reason::AuthFailed),
    r("not authenticated", Reason::AuthFailed),
    r("auth is required", Reason::AuthFailed),
    r("not logged in", Reason::AuthFailed),
    r("not owned by user", Reason::AuthFailed),
    // 13 access_db; Exim "dropped by '…' ACL" comes as a hint
    r("access denied", Reason::AccessDb),
    r("mailbox disabled for this recipient", Reason::AccessDb),
    // 14 protocol; EXPN/VRFY "[rejected]" comes as a hint
    r("pre-greeting", Reason::Protocol),
    r("pipelining", Reason::Protocol),
    r("synchronization error", Reason::Protocol),
    r("protocol error", Reason::Protocol),
    r("syntax", Reason::Protocol),
    // Exim's "syntactically invalid argument(s)": a syntax complaint not spelled "syntax"
    r("syntactically", Reason::Protocol),
    r("multi-recipient bounce", Reason::Protocol),
    r("no helo/ehlo given", Reason::Protocol),
    r("failing address in", Reason::Protocol),
    // ours (README readings): Exim's command floods, "SMTP call from … dropped: too many
    // nonmail commands" / "too many unrecognized commands" (smtp_in.c)
    r("nonmail commands", Reason::Protocol),
    r("unrecognized commands", Reason::Protocol),
    // 15 local_error
    r("temporary lookup failure", Reason::LocalError),
    r("temporary lookup error", Reason::LocalError),
    r("insufficient system storage", Reason::LocalError),
    r("server configuration error", Reason::LocalError),
    r("temporary local problem", Reason::LocalError),
    r("failed to expand", Reason::LocalError),
    r("crashed", Reason::LocalError),
    // 16 unknown_user
    r("user unknown", Reason::UnknownUser),
    r("unknown user", Reason::UnknownUser),
    r("no such user", Reason::UnknownUser),
    rc("unverified address", Reason::UnknownUser, When::AboutRecipient),
    rc("undeliverable address", Reason::UnknownUser, When::AboutRecipient),
    r("unrouteable address", Reason::UnknownUser),
    r("recipient verify", Reason::UnknownUser),
    // 17 sender
    r("domain of sender address", Reason::Sender),
    r("sender address rejected", Reason::Sender),
    r("sender verify failed", Reason::Sender),
    r("sender verify", Reason::Sender),
    r("no valid sender", Reason::Sender),
    r("domain name required for sender address", Reason::Sender),
    rc("domain not found", Reason::Sender, When::AboutSender),
    // 18 helo
    r("bogus helo", Reason::Helo),
    r("helo command rejected", Reason::Helo),
    // 19 client_host
    r("client host rejected", Reason::ClientHost),
    r("does not resolve", Reason::ClientHost),
    r("possibly forged hostname", Reason::ClientHost),
    r("reverse dns", Reason::ClientHost),
    r("cannot find your hostname", Reason::ClientHost),
    r("no host name found", Reason::ClientHost),
    // marker, not a rule
    rc("sender", Reason::Other, When::SenderMarker),
];

/// What the MTA parser knows about a reject beyond its reply text.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Hints {
    /// An AUTH failure line (Sendmail `AUTH failure`, `possible SMTP attack:
    /// command=AUTH`): row 12.
    pub auth_line: bool,
    /// A content check: Postfix cleanup header/body rejects, Exim `local_scan`: row 6.
    pub content_check: bool,
    /// Exim `dropped by '…' ACL`: row 13.
    pub acl_dropped: bool,
    /// Sendmail/Exim EXPN or VRFY `[rejected]`: row 14.
    pub expn_vrfy: bool,
    /// The reply answered MAIL FROM, so "Domain not found" is about the sender.
    pub mail_stage: bool,
    /// Used only when no row matched: the Postfix restriction prefix or the Exim verb.
    pub fallback: Option<Reason>,
}

impl Hints {
    /// Hints with only the stage-derived facts set.
    pub fn for_stage(stage: Stage) -> Hints {
        Hints { mail_stage: stage == Stage::Mail, ..Hints::default() }
    }
}

/// The reason classifier. Build once, share freely (it is immutable).
pub struct Classifier {
    automaton: AhoCorasick,
}

impl std::fmt::Debug for Classifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Classifier").field("rules", &RULES.len()).finish()
    }
}

impl Default for Classifier {
    fn default() -> Self {
        Self::new()
    }
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric()
}

/// Does the word that continues at `from` go on into a dotted domain name
/// (`spamhaus.org`)?
fn in_domain_name(text: &[u8], from: usize) -> bool {
    let rest = &text[from..];
    let word = rest.iter().take_while(|b| b.is_ascii_alphanumeric() || **b == b'-').count();
    rest.get(word) == Some(&b'.') && rest.get(word + 1).is_some_and(u8::is_ascii_alphabetic)
}

impl Classifier {
    pub fn new() -> Classifier {
        let automaton = AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::Standard)
            .build(RULES.iter().map(|r| r.pattern))
            .expect("the reason patterns are valid literals");
        Classifier { automaton }
    }

    /// Classifies one reply text. `enhanced` is the RFC 3463 enhanced status code
    /// (class, subject, detail) when one was logged.
    pub fn classify(&self, text: &[u8], enhanced: Option<Enhanced>, hints: Hints) -> Reason {
        let mut best = Reason::Other;
        let mut consider = |reason: Reason| {
            if reason < best {
                best = reason;
            }
        };
        if hints.auth_line {
            consider(Reason::AuthFailed);
        }
        if hints.content_check {
            consider(Reason::SpamContent);
        }
        if hints.acl_dropped {
            consider(Reason::AccessDb);
        }
        if hints.expn_vrfy {
            consider(Reason::Protocol);
        }
        if let Some((_, 2, 2)) = enhanced {
            consider(Reason::MailboxFull);
        }
        let mut mentions_sender = false;
        let mut about_recipient = false;
        let mut about_sender = false;
        for m in self.automaton.find_overlapping_iter(text) {
            let rule = &RULES[m.pattern().as_usize()];
            let fits = match rule.fit {
                Fit::Anywhere => true,
                Fit::Word => {
                    (m.start() == 0 || !is_word_byte(text[m.start() - 1]))
                        && text.get(m.end()).is_none_or(|&b| !is_word_byte(b))
                }
                Fit::WordStart => {
                    // a word start, but not a label of a domain name: "zen.spamhaus.org"
                    // names a block list, it says nothing about the message's content
                    let before = m.start().checked_sub(1).map(|i| text[i]);
                    before.is_none_or(|b| !is_word_byte(b) && b != b'.') && !in_domain_name(text, m.end())
                }
                Fit::ZoneAfter => {
                    let rest = &text[m.end()..];
                    let token_end = rest
                        .iter()
                        .position(|b| b.is_ascii_whitespace() || matches!(b, b';' | b',' | b')'))
                        .unwrap_or(rest.len());
                    let token = &rest[..token_end];
                    let token = token.strip_suffix(b".").unwrap_or(token);
                    token.len() > 2 && token.contains(&b'.')
                }
            };
            if !fits {
                continue;
            }
            match rule.when {
                When::Always => consider(rule.reason),
                When::SenderMarker => mentions_sender = true,
                When::AboutRecipient => about_recipient = true,
                When::AboutSender => about_sender = true,
            }
        }
        let sender_context = mentions_sender || hints.mail_stage;
        if about_recipient && !sender_context {
            consider(Reason::UnknownUser);
        }
        if about_sender && sender_context {
            consider(Reason::Sender);
        }
        if best == Reason::Other
            && let Some(fallback) = hints.fallback
        {
            return fallback;
        }
        best
    }
}

/// An RFC 3463 enhanced status code: class, subject, detail (`5.7.1` = `(5, 7, 1)`).
pub type Enhanced = (u8, u16, u16);

/// A reply split into its parts: 3-digit code, enhanced code, text.
pub type SplitReply<'a> = (Option<[u8; 3]>, Option<Enhanced>, &'a [u8]);

/// Splits a reply into its 3-digit code, its enhanced code and the text after them.
/// Either code may be missing; the text is what [`Classifier::classify`] reads.
pub fn split_reply(reply: &[u8]) -> SplitReply<'_> {
    let mut rest = trim_start(reply);
    let mut code = None;
    if rest.len() >= 3
        && rest[..3].iter().all(u8::is_ascii_digit)
        && rest.get(3).is_none_or(|&b| b == b' ' || b == b'-')
    {
        code = Some([rest[0], rest[1], rest[2]]);
        rest = trim_start(&rest[3.min(rest.len())..]);
        if let Some(stripped) = rest.strip_prefix(b"-") {
            rest = trim_start(stripped);
        }
    }
    let mut enhanced = None;
    if let Some((e, after)) = parse_enhanced(rest) {
        enhanced = Some(e);
        rest = trim_start(after);
    }
    (code, enhanced, rest)
}

/// Parses an RFC 3463 enhanced status code `c.sss.ddd` followed by a space or the end.
pub fn parse_enhanced(s: &[u8]) -> Option<(Enhanced, &[u8])> {
    let class = *s.first()?;
    if !matches!(class, b'2' | b'4' | b'5') || s.get(1) != Some(&b'.') {
        return None;
    }
    let (subject, n1) = parse_num(&s[2..])?;
    if s.get(2 + n1) != Some(&b'.') {
        return None;
    }
    let (detail, n2) = parse_num(&s[3 + n1..])?;
    let end = 3 + n1 + n2;
    if s.get(end).is_some_and(|&b| b != b' ') {
        return None;
    }
    Some(((class - b'0', subject, detail), &s[end..]))
}

fn parse_num(s: &[u8]) -> Option<(u16, usize)> {
    let n = s.iter().take(3).take_while(|b| b.is_ascii_digit()).count();
    if n == 0 {
        return None;
    }
    let mut v = 0u16;
    for &b in &s[..n] {
        v = v * 10 + u16::from(b - b'0');
    }
    Some((v, n))
}

fn trim_start(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|&&b| b == b' ').count();
    &s[n..]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classify(text: &str) -> Reason {
        Classifier::new().classify(text.as_bytes(), None, Hints::default())
    }

    #[test]
    fn table_of_reply_texts() {
        let cases: &[(&str, Reason)] = &[
            ("Recipient address rejected: Greylisted, see http://postgrey.schweikert.ch/help/x.html", Reason::Greylist),
            ("Greylisting in action, please come back in 00:30:00", Reason::Greylist),
            ("Service unavailable; Client host [1.2.3.4] blocked using zen.spamhaus.org", Reason::Rbl),
            ("1.2.3.4 is listed in zen.spamhaus.org", Reason::Rbl),
            ("Rejected - see http://www.spamhaus.org/query/ip/1.2.3.4", Reason::Rbl),
            ("JunkMail rejected - x is in an RBL, see http://y", Reason::Rbl),
            ("Your IP was found in bl.example.net", Reason::Rbl),
            ("Message rejected due to SPF policy", Reason::SpfFail),
            ("SPF check failed", Reason::SpfFail),
            ("Unauthenticated email from x is not accepted due to domain's DMARC policy", Reason::DmarcFail),
            ("DKIM signature verification failed", Reason::DmarcFail),
            ("This message contains a virus (Eicar-Test-Signature).", Reason::Virus),
            ("Message is INFECTED", Reason::Virus),
            ("This message scored 12.3 spam points.", Reason::SpamContent),
            ("Blocked by SpamAssassin", Reason::SpamContent),
            ("SPAM REJECT", Reason::SpamContent),
            ("Message size exceeds fixed limit", Reason::Size),
            ("Message too big for system", Reason::Size),
            ("Mailbox is full / Blocks limit exceeded / Inode limit exceeded", Reason::MailboxFull),
            ("user is over quota", Reason::MailboxFull),
            ("Relaying denied. Proper authentication required.", Reason::RelayDenied),
            ("Relaying denied. IP name lookup failed [1.2.3.4]", Reason::RelayDenied),
            ("Relay access denied", Reason::RelayDenied),
            ("relay not permitted", Reason::RelayDenied),
            ("Error: too many connections from 1.2.3.4", Reason::RateLimit),
            ("all screening ports busy", Reason::RateLimit),
            ("Must issue a STARTTLS command first", Reason::TlsRequired),
            ("Encryption required for requested authentication mechanism", Reason::TlsRequired),
            ("Incorrect authentication data", Reason::Other),
            ("authentication failed: authentication failure", Reason::AuthFailed),
            ("Sender address rejected: not owned by user x@y", Reason::AuthFailed),
            ("Sender address rejected: Access denied", Reason::AccessDb),
            ("Mailbox disabled for this recipient", Reason::AccessDb),
            ("Improper use of SMTP command pipelining", Reason::Protocol),
            ("syntactically invalid argument(s): _", Reason::Protocol),
            ("Temporary lookup failure", Reason::LocalError),
            ("Recipient address rejected: User unknown in local recipient table", Reason::UnknownUser),
            ("Unknown user", Reason::UnknownUser),
            ("No such user here", Reason::UnknownUser),
            ("Recipient address rejected: unverified address: host x said: 550", Reason::UnknownUser),
            ("Sender address rejected: unverified address: host x said: 550", Reason::Sender),
            ("Unrouteable address", Reason::UnknownUser),
            ("Sender address rejected: Domain not found", Reason::Sender),
            ("Domain of sender address x@y does not exist", Reason::Sender),
            ("Domain of sender address x@y does not resolve", Reason::Sender),
            ("Sender verify failed", Reason::Sender),
            ("Helo command rejected: need fully-qualified hostname", Reason::Helo),
            ("Helo command [x] blocked using dnsbl.example", Reason::Rbl),
            ("Client host rejected: cannot find your hostname, [1.2.3.4]", Reason::ClientHost),
            ("Client host rejected: Access denied", Reason::AccessDb),
            ("Recipient address rejected: Greylisted", Reason::Greylist),
            ("Service unavailable", Reason::Other),
            ("", Reason::Other),
            // word boundaries: these must not match
            ("the spfx header", Reason::Other),
            ("antispam policy", Reason::Other),
            ("superbly done", Reason::Other),
            ("the file was not found in the folder", Reason::Other),
            // a block list's domain name is not spam content
            ("Temporary lookup failure at zen.spamhaus.org", Reason::LocalError),
            ("1.2.3.4 is in a black list at zen.spamhaus.org", Reason::Rbl),
            ("Spam. Go away.", Reason::SpamContent),
        ];
        let c = Classifier::new();
        for (text, want) in cases {
            assert_eq!(c.classify(text.as_bytes(), None, Hints::default()), *want, "text: {text:?}");
        }
    }

    #[test]
    fn first_row_wins() {
        // relay_denied (row 9) comes before auth_failed (12) and client_host (19)
        assert_eq!(classify("Relaying denied. Proper authentication required. not authenticated"), Reason::RelayDenied);
        // rbl (2) before spam_content (6) though "spamhaus" starts with spam
        assert_eq!(classify("Blocked - see https://www.spamhaus.org/query/ip/1.2.3.4"), Reason::Rbl);
    }

    #[test]
    fn hints_and_fallbacks() {
        let c = Classifier::new();
        let auth = Hints { auth_line: true, ..Hints::default() };
        assert_eq!(c.classify(b"authentication failure (-13)", None, auth), Reason::AuthFailed);
        let content = Hints { content_check: true, ..Hints::default() };
        assert_eq!(c.classify(b"Message content rejected", None, content), Reason::SpamContent);
        assert_eq!(c.classify(b"contains a virus", None, content), Reason::Virus);
        assert_eq!(c.classify(b"Mailbox unavailable", Some((5, 2, 2)), Hints::default()), Reason::MailboxFull);
        let fb = Hints { fallback: Some(Reason::Helo), ..Hints::default() };
        assert_eq!(c.classify(b"go away", None, fb), Reason::Helo);
        assert_eq!(c.classify(b"Relay access denied", None, fb), Reason::RelayDenied);
        let mail = Hints::for_stage(Stage::Mail);
        assert_eq!(c.classify(b"Domain not found", None, mail), Reason::Sender);
        assert_eq!(c.classify(b"Domain not found", None, Hints::default()), Reason::Other);
    }

    #[test]
    fn splits_codes() {
        let (code, enh, text) = split_reply(b"550 5.7.1 <a@b>: Relay access denied");
        assert_eq!(code, Some(*b"550"));
        assert_eq!(enh, Some((5, 7, 1)));
        assert_eq!(text, b"<a@b>: Relay access denied");
        let (code, enh, text) = split_reply(b"4.7.1 Service unavailable");
        assert_eq!((code, enh, text), (None, Some((4, 7, 1)), &b"Service unavailable"[..]));
        let (code, enh, text) = split_reply(b"Greylisted");
        assert_eq!((code, enh, text), (None, None, &b"Greylisted"[..]));
        let (code, _, text) = split_reply(b"421 too many");
        assert_eq!((code, text), (Some(*b"421"), &b"too many"[..]));
        assert_eq!(split_reply(b"5.7").1, None);
        assert_eq!(split_reply(b"12345 x").0, None);
    }
}
