//! Postfix: `reject`, `milter-reject`, `proxy-reject`, postscreen, cleanup content
//! checks, SASL failures, anvil limits, and accepted messages.
//!
//! Line shapes read here (after the envelope; the program is any `syslog_name`
//! whose last part is a Postfix daemon, e.g. `postfix-mx/submission/smtpd`):
//!
//! ```text
//! NOQUEUE: reject: RCPT from host[1.2.3.4]: 554 5.7.1 <a@b>: Relay access denied; from=<s@x> to=<a@b> proto=ESMTP helo=<h>
//! 3D5E0512: reject: RCPT from host[1.2.3.4]: 550 5.1.1 <a@b>: Recipient address rejected: …; from=<…> to=<…> …
//! NOQUEUE: reject: CONNECT from host[1.2.3.4]: 554 5.7.1 <host[1.2.3.4]>: Client host rejected: …; proto=SMTP
//! NOQUEUE: reject: RCPT from [1.2.3.4]:5678: 550 5.7.1 Service unavailable; client [1.2.3.4] blocked using …; from=<…>, to=<…>, proto=ESMTP, helo=<…>   (postscreen)
//! 3D5E0512: reject: header Subject: … from host[1.2.3.4]; from=<…> to=<…> proto=ESMTP helo=<…>: 5.7.1 Message content rejected   (cleanup)
//! 3D5E0512: milter-reject: END-OF-MESSAGE from host[1.2.3.4]: 5.7.1 Spam message rejected; from=<…> to=<…> proto=ESMTP helo=<…>
//! proxy-reject: END-OF-MESSAGE: 554 5.7.1 …; from=<…> to=<…> proto=ESMTP helo=<…>   (smtpd_proxy_filter; no queue id)
//! reject: connect from [1.2.3.4]:5678: all screening ports busy                  (postscreen; no queue id)
//! warning: host[1.2.3.4]: SASL LOGIN authentication failed: UGFzc3dvcmQ6
//! warning: unknown[1.2.3.4]:55729: SASL LOGIN authentication failed: …   (smtpd_client_port_logging)
//! warning: Connection rate limit exceeded: 31 from host[1.2.3.4] for service smtp   (anvil, via smtpd)
//! 3D5E0512: client=host[1.2.3.4]                                                  (accepted)
//! ```
//!
//! Not rejects (reasons.md §1): `reject_warning:` (a dry run), `improper command
//! pipelining` and `too many errors after` notes, postscreen test events
//! (`PREGREET`, `DNSBL rank`, `DENYLISTED`, …), a `reject:` line with neither a client
//! nor a reply, and cleanup rejects of mail that did not come from an SMTP client
//! (`from local`).
//!
//! **Accepted message** (Postfix): an smtpd `QUEUEID: client=…` line — the SMTP
//! transaction was given a queue file. A message that cleanup or a milter then
//! refuses at end of data is also counted as a `data` reject.

use super::reason::{Classifier, Hints, split_reply};
use super::{Class, Event, Reason, Reject, Stage};

/// Postfix daemons whose names identify a program tag as Postfix even under a
/// custom `syslog_name` (`mx-out/smtp`).
const DAEMONS: &[&[u8]] = &[
    b"smtpd",
    b"postscreen",
    b"cleanup",
    b"qmgr",
    b"smtp",
    b"lmtp",
    b"local",
    b"virtual",
    b"pipe",
    b"bounce",
    b"defer",
    b"trace",
    b"anvil",
    b"pickup",
    b"master",
    b"tlsmgr",
    b"scache",
    b"verify",
    b"trivial-rewrite",
    b"error",
    b"discard",
    b"showq",
    b"postfix-script",
    b"postsuper",
    b"postqueue",
    b"postdrop",
    b"dnsblog",
    b"tlsproxy",
    b"proxymap",
    b"flush",
    b"oqmgr",
    b"spawn",
    b"postlog",
];

/// Is this program tag Postfix's?
pub fn is_postfix(program: &[u8]) -> bool {
    if program.starts_with(b"postfix") {
        return true;
    }
    match memchr::memrchr(b'/', program) {
        Some(i) => DAEMONS.contains(&&program[i + 1..]),
        None => false,
    }
}

/// The daemon part of a Postfix program tag (`smtpd` of `postfix/submission/smtpd`).
fn daemon(program: &[u8]) -> &[u8] {
    match memchr::memrchr(b'/', program) {
        Some(i) => &program[i + 1..],
        None => program,
    }
}

/// Reads one Postfix message.
pub fn parse<'a>(program: &[u8], msg: &'a [u8], classifier: &Classifier) -> Event<'a> {
    let daemon = daemon(program);
    let Some(sp) = memchr::memchr(b' ', msg) else {
        return Event::Other;
    };
    let first = &msg[..sp];
    let rest = &msg[sp + 1..];
    if first == b"warning:" {
        return if daemon == b"smtpd" { warning(rest, classifier) } else { Event::Other };
    }
    // smtpd logs before-queue proxy results without a queue id (smtpd.c data_cmd():
    // "proxy-reject: END-OF-MESSAGE: REPLY; from=<…> …"), and postscreen its
    // screening-port limit without one ("reject: connect from [ip]:port: all
    // screening ports busy").
    if first == b"proxy-reject:" || (first == b"reject:" && daemon == b"postscreen") {
        return reject(daemon, rest, classifier);
    }
    if !first.ends_with(b":") || first.len() < 2 {
        return Event::Other;
    }
    let queue_id = &first[..first.len() - 1];
    if let Some(body) = rest.strip_prefix(b"reject: ") {
        return reject(daemon, body, classifier);
    }
    if let Some(body) = rest.strip_prefix(b"milter-reject: ") {
        return reject(daemon, body, classifier);
    }
    if let Some(body) = rest.strip_prefix(b"proxy-reject: ") {
        return reject(daemon, body, classifier);
    }
    if daemon == b"smtpd"
        && rest.starts_with(b"client=")
        && queue_id != b"NOQUEUE"
        && queue_id.iter().all(u8::is_ascii_alphanumeric)
    {
        return Event::Accepted;
    }
    Event::Other
}

fn stage_of(command: &[u8]) -> Stage {
    // postscreen writes "connect" in lower case on one of its lines
    match command.to_ascii_uppercase().as_slice() {
        b"CONNECT" => Stage::Connect,
        b"EHLO" | b"HELO" => Stage::Helo,
        b"MAIL" => Stage::Mail,
        b"RCPT" => Stage::Rcpt,
        b"DATA" | b"BDAT" | b"END-OF-MESSAGE" => Stage::Data,
        b"AUTH" => Stage::Auth,
        _ => Stage::Other,
    }
}

/// The class from a reply's codes: the 3-digit code, else the enhanced code's class.
pub(crate) fn class_of(code: Option<[u8; 3]>, enhanced: Option<super::reason::Enhanced>) -> Class {
    if let Some(c) = code {
        return Class::from_code_digit(c[0]).unwrap_or(Class::Unknown);
    }
    match enhanced {
        Some((4, _, _)) => Class::Temporary,
        Some((5, _, _)) => Class::Permanent,
        _ => Class::Unknown,
    }
}

/// Removes a leading `<address>: ` from a reply text.
fn strip_quoted_address(text: &[u8]) -> &[u8] {
    if text.first() == Some(&b'<')
        && let Some(close) = memchr::memmem::find(text, b">: ")
    {
        return &text[close + 3..];
    }
    text
}

/// Where the `; from=<…> to=<…> proto=… helo=<…>` trailer starts. Each field is
/// optional (a VRFY reject has no sender: `; to=<…> proto=SMTP`), so the trailer
/// starts at the earliest of them.
fn trailer_start(s: &[u8]) -> Option<usize> {
    [&b"; from=<"[..], b"; to=<", b"; proto=", b"; helo=<"].iter().filter_map(|f| memchr::memmem::find(s, f)).min()
}

/// The value of `to=<…>` in a trailer.
fn recipient(trailer: &[u8]) -> Option<&[u8]> {
    let at = memchr::memmem::find(trailer, b"to=<")?;
    let value = &trailer[at + 4..];
    let close = memchr::memchr(b'>', value)?;
    Some(&value[..close])
}

fn reject<'a>(daemon: &[u8], body: &'a [u8], classifier: &Classifier) -> Event<'a> {
    let (command, after) = match memchr::memchr(b' ', body) {
        Some(i) => (&body[..i], &body[i + 1..]),
        None => (body, &b""[..]),
    };
    if daemon == b"cleanup" && matches!(command, b"header" | b"body" | b"mime-header" | b"nested-header") {
        return content_reject(after, classifier);
    }
    let (command, mut rest) = match command.strip_suffix(b":") {
        Some(c) => (c, after),
        None => (command, after),
    };
    let mut client = None;
    if let Some(after_from) = rest.strip_prefix(b"from ") {
        let end = memchr::memchr(b' ', after_from).unwrap_or(after_from.len());
        let token = &after_from[..end];
        client = Some(token.strip_suffix(b":").unwrap_or(token));
        rest = after_from.get(end + 1..).unwrap_or(b"");
    }
    let (reply, trailer) = match trailer_start(rest) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, &b""[..]),
    };
    if client.is_none() && reply.is_empty() {
        return Event::Other;
    }
    let stage = stage_of(command);
    let (code, enhanced, text) = split_reply(reply);
    let text = strip_quoted_address(text);
    let mut hints = Hints::for_stage(stage);
    hints.fallback = restriction_fallback(text);
    Event::Reject(Reject {
        stage,
        class: class_of(code, enhanced),
        reason: classifier.classify(text, enhanced, hints),
        recipient: recipient(trailer),
        client,
    })
}

/// The restriction prefix as a last resort (reasons.md §4 fallbacks).
fn restriction_fallback(text: &[u8]) -> Option<Reason> {
    const PREFIXES: &[(&[u8], Reason)] = &[
        (b"Helo command rejected", Reason::Helo),
        (b"Client host rejected", Reason::ClientHost),
        (b"Sender address rejected", Reason::Sender),
        (b"Data command rejected", Reason::Protocol),
    ];
    PREFIXES.iter().find(|(p, _)| text.starts_with(p)).map(|&(_, r)| r)
}

/// cleanup `reject: header|body TEXT from CLIENT; from=<…> to=<…> proto=… helo=<…>: REPLY`.
fn content_reject<'a>(after: &'a [u8], classifier: &Classifier) -> Event<'a> {
    let Some(t) = trailer_start(after) else {
        return Event::Other;
    };
    let head = &after[..t];
    let trailer = &after[t..];
    // the client is the last " from X" before the trailer
    let client = memchr::memmem::rfind(head, b" from ").map(|i| &head[i + 6..]);
    if client.is_none_or(|c| c == b"local" || c.is_empty()) {
        return Event::Other;
    }
    // the reply follows the last envelope field: helo=<…>: or to=<…>:
    let reply_at = ["helo=<", "to=<", "from=<"].iter().find_map(|field| {
        let f = memchr::memmem::rfind(trailer, field.as_bytes())?;
        let close = memchr::memchr(b'>', &trailer[f..])? + f;
        trailer[close + 1..].strip_prefix(b": ").map(|r| r.as_ptr() as usize - trailer.as_ptr() as usize)
    });
    let reply = reply_at.map_or(&b""[..], |i| &trailer[i..]);
    let (code, enhanced, text) = split_reply(reply);
    let hints = Hints { content_check: true, ..Hints::default() };
    Event::Reject(Reject {
        stage: Stage::Data,
        class: class_of(code, enhanced),
        reason: classifier.classify(text, enhanced, hints),
        recipient: recipient(trailer),
        client,
    })
}

/// smtpd warnings that are rejects: SASL failures and anvil limits.
fn warning<'a>(rest: &'a [u8], classifier: &Classifier) -> Event<'a> {
    const LIMITS: &[(&[u8], Stage)] = &[
        (b"Connection rate limit exceeded", Stage::Connect),
        (b"Connection concurrency limit exceeded", Stage::Connect),
        (b"Message delivery request rate limit exceeded", Stage::Mail),
        (b"Recipient address rate limit exceeded", Stage::Rcpt),
    ];
    for &(prefix, stage) in LIMITS {
        if rest.starts_with(prefix) {
            // smtpd answers "421 4.7.0 … Error: too many connections/messages/recipients";
            // the code is not logged, so the class stays unknown (reasons.md §3).
            let client = memchr::memmem::find(rest, b" from ").map(|i| {
                let c = &rest[i + 6..];
                &c[..memchr::memchr(b' ', c).unwrap_or(c.len())]
            });
            return Event::Reject(Reject {
                stage,
                class: Class::Unknown,
                reason: Reason::RateLimit,
                recipient: None,
                client,
            });
        }
    }
    // "host[ip]: SASL LOGIN authentication failed: …", or "host[ip]:port: SASL …"
    // with smtpd_client_port_logging = yes (smtpd_sasl_glue.c logs state->namaddr)
    if let Some(i) = memchr::memmem::find(rest, b": SASL ") {
        let client = without_port(&rest[..i]);
        let text = &rest[i + 2..];
        if client.ends_with(b"]")
            && !client.contains(&b' ')
            && memchr::memmem::find(text, b" authentication failed").is_some()
        {
            let hints = Hints { auth_line: true, ..Hints::default() };
            return Event::Reject(Reject {
                stage: Stage::Auth,
                class: Class::Unknown,
                reason: classifier.classify(text, None, hints),
                recipient: None,
                client: Some(client),
            });
        }
    }
    Event::Other
}

/// `host[ip]:port` → `host[ip]` (the port only when it is all digits).
fn without_port(client: &[u8]) -> &[u8] {
    match memchr::memrchr(b']', client) {
        Some(close)
            if client.get(close + 1) == Some(&b':')
                && client.len() > close + 2
                && client[close + 2..].iter().all(u8::is_ascii_digit) =>
        {
            &client[..=close]
        }
        _ => client,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::maillog::Expected;

    fn ev(program: &str, msg: &'static str) -> Event<'static> {
        let c = Classifier::new();
        parse(program.as_bytes(), msg.as_bytes(), &c)
    }

    fn rej(program: &str, msg: &'static str) -> Expected {
        match ev(program, msg) {
            Event::Reject(r) => (r.stage, r.class, r.reason, r.recipient.map(|b| std::str::from_utf8(b).unwrap())),
            other => panic!("not a reject: {other:?} for {msg}"),
        }
    }

    #[test]
    fn programs() {
        for p in ["postfix/smtpd", "postfix-mx/submission/smtpd", "postfix/postscreen", "mx-out/smtpd", "postfix"] {
            assert!(is_postfix(p.as_bytes()), "{p}");
        }
        for p in ["sm-mta", "exim4", "dovecot", "amavis/foo", "opendkim"] {
            assert!(!is_postfix(p.as_bytes()), "{p}");
        }
    }

    #[test]
    fn rejects() {
        use Class::*;
        use Reason as R;
        use Stage as S;
        let rows: &[(&str, &'static str, Expected)] = &[
            (
                "postfix/smtpd",
                "NOQUEUE: reject: RCPT from mail-b.sender.test[127.0.2.11]: 554 5.7.1 <someone@victim.test>: Relay access denied; from=<noreply@sender.test> to=<someone@victim.test> proto=ESMTP helo=<mail-b.sender.test>",
                (S::Rcpt, Permanent, R::RelayDenied, Some("someone@victim.test")),
            ),
            (
                "postfix/smtpd",
                "NOQUEUE: reject: RCPT from spammer.sender.test[127.0.2.66]: 554 5.7.1 Service unavailable; Client host [127.0.2.66] blocked using dnsbl.test; 127.0.2.66 is listed in dnsbl.test (lab spam source); from=<newsletter@sender.test> to=<alice@broken.test> proto=ESMTP helo=<x>",
                (S::Rcpt, Permanent, R::Rbl, Some("alice@broken.test")),
            ),
            (
                "postfix/smtpd",
                "NOQUEUE: reject: RCPT from unknown[127.0.2.99]: 554 5.7.1 <ylmf-pc>: Helo command rejected: Helo name blocked by lab policy; from=<noreply@sender.test> to=<postmaster@broken.test> proto=ESMTP helo=<ylmf-pc>",
                (S::Rcpt, Permanent, R::Helo, Some("postmaster@broken.test")),
            ),
            (
                "postfix/submission/smtpd",
                "4F1A2B: reject: RCPT from x[1.2.3.4]: 450 4.1.8 <s@nx.example>: Sender address rejected: Domain not found; from=<s@nx.example> to=<a@b.example> proto=ESMTP helo=<x>",
                (S::Rcpt, Temporary, R::Sender, Some("a@b.example")),
            ),
            (
                "postfix/smtpd",
                "NOQUEUE: reject: CONNECT from x[1.2.3.4]: 554 5.7.1 <x[1.2.3.4]>: Client host rejected: Access denied; proto=SMTP",
                (S::Connect, Permanent, R::AccessDb, None),
            ),
            (
                "postfix/smtpd",
                "NOQUEUE: reject: MAIL from x[1.2.3.4]: 552 5.3.4 Message size exceeds fixed limit; proto=ESMTP helo=<x>",
                (S::Mail, Permanent, R::Size, None),
            ),
            (
                "postfix/smtpd",
                "NOQUEUE: reject: DATA from x[1.2.3.4]: 550 5.5.3 <DATA>: Data command rejected: Multi-recipient bounce; from=<> proto=ESMTP helo=<x>",
                (S::Data, Permanent, R::Protocol, None),
            ),
            (
                "postfix/smtpd",
                "NOQUEUE: reject: DATA from x[1.2.3.4]: 554 5.5.1 <DATA>: Data command rejected: go away; from=<> proto=ESMTP helo=<x>",
                (S::Data, Permanent, R::Protocol, None),
            ),
            (
                "postfix/smtpd",
                "NOQUEUE: reject: VRFY from x[1.2.3.4]: 502 5.5.1 VRFY command is disabled; to=<root> proto=SMTP",
                (S::Other, Permanent, R::Other, Some("root")),
            ),
            (
                "postfix/postscreen",
                "NOQUEUE: reject: RCPT from [192.0.2.1]:4242: 550 5.7.1 Service unavailable; client [192.0.2.1] blocked using zen.spamhaus.org; from=<a@x.example>, to=<b@y.example>, proto=ESMTP, helo=<h>",
                (S::Rcpt, Permanent, R::Rbl, Some("b@y.example")),
            ),
            (
                "postfix/postscreen",
                "NOQUEUE: reject: CONNECT from [192.0.2.1]:4242: too many connections",
                (S::Connect, Unknown, R::RateLimit, None),
            ),
            (
                "postfix/postscreen",
                "NOQUEUE: reject: CONNECT from [192.0.2.1]:4242: all screening ports busy",
                (S::Connect, Unknown, R::RateLimit, None),
            ),
            (
                "postfix/cleanup",
                "4F1A2B: reject: header Subject: Cheap spam virus from x[1.2.3.4]; from=<s@x> to=<r@y> proto=ESMTP helo=<x>: 5.7.1 Message content rejected",
                (S::Data, Permanent, R::SpamContent, Some("r@y")),
            ),
            (
                "postfix/cleanup",
                "4F1A2B: reject: body viagra from x[1.2.3.4]; from=<s@x> to=<r@y> proto=ESMTP helo=<x>: 4.7.1 Infected with virus, try later",
                (S::Data, Temporary, R::Virus, Some("r@y")),
            ),
            (
                "postfix/cleanup",
                "4F1A2B: milter-reject: END-OF-MESSAGE from x[1.2.3.4]: 5.7.1 Spam message rejected; from=<s@x> to=<r@y> proto=ESMTP helo=<x>",
                (S::Data, Permanent, R::SpamContent, Some("r@y")),
            ),
            (
                "postfix/smtpd",
                "NOQUEUE: milter-reject: RCPT from x[1.2.3.4]: 451 4.7.1 Greylisting in action; from=<s@x> to=<r@y> proto=ESMTP helo=<x>",
                (S::Rcpt, Temporary, R::Greylist, Some("r@y")),
            ),
            (
                // smtpd.c data_cmd() logs proxy results without a queue id
                "postfix/smtpd",
                "proxy-reject: END-OF-MESSAGE: 554 5.7.0 Reject, id=08125-18 - INFECTED: Eicar-Test-Signature; from=<s@x> to=<r@y> proto=ESMTP helo=<x>",
                (S::Data, Permanent, R::Virus, Some("r@y")),
            ),
            (
                // postscreen.c: no queue id, lower-case "connect"
                "postfix/postscreen",
                "reject: connect from [192.0.2.1]:4242: all screening ports busy",
                (S::Connect, Unknown, R::RateLimit, None),
            ),
            (
                // a VRFY reject has no sender: the trailer starts at to=<…>
                "postfix/smtpd",
                "NOQUEUE: reject: VRFY from x[1.2.3.4]: 550 5.1.1 <root@nmrc.org>: Recipient address rejected: User unknown in local recipient table; to=<root@nmrc.org> proto=SMTP",
                (S::Other, Permanent, R::UnknownUser, Some("root@nmrc.org")),
            ),
            (
                "postfix-mx/submission/smtpd",
                "warning: unknown[192.0.2.9]: SASL LOGIN authentication failed: UGFzc3dvcmQ6",
                (S::Auth, Unknown, R::AuthFailed, None),
            ),
            (
                // smtpd_client_port_logging = yes: the client carries its port
                "postfix/smtpd",
                "warning: unknown[192.0.2.1]:55729: SASL LOGIN authentication failed: UGFzc3dvcmQ6",
                (S::Auth, Unknown, R::AuthFailed, None),
            ),
            (
                "postfix/smtpd",
                "warning: x.example[192.0.2.9]: SASL PLAIN authentication failed: authentication failure, sasl_username=bob",
                (S::Auth, Unknown, R::AuthFailed, None),
            ),
            (
                "postfix/smtpd",
                "warning: Connection rate limit exceeded: 31 from x[192.0.2.9] for service smtp",
                (S::Connect, Unknown, R::RateLimit, None),
            ),
            (
                "postfix/smtpd",
                "warning: Connection concurrency limit exceeded: 51 from x[192.0.2.9] for service smtp",
                (S::Connect, Unknown, R::RateLimit, None),
            ),
            (
                "postfix/smtpd",
                "warning: Message delivery request rate limit exceeded: 101 from x[192.0.2.9] for service smtp",
                (S::Mail, Unknown, R::RateLimit, None),
            ),
            (
                "postfix/smtpd",
                "warning: Recipient address rate limit exceeded: 101 from x[192.0.2.9] for service smtp",
                (S::Rcpt, Unknown, R::RateLimit, None),
            ),
        ];
        for (program, msg, want) in rows {
            assert_eq!(rej(program, msg), *want, "{msg}");
        }
    }

    #[test]
    fn not_rejects() {
        let rows: &[(&str, &'static str)] = &[
            (
                "postfix/smtpd",
                "NOQUEUE: reject_warning: RCPT from x[1.2.3.4]: 554 5.7.1 <a@b>: Relay access denied; from=<s@x> to=<a@b> proto=ESMTP helo=<x>",
            ),
            ("postfix/smtpd", "improper command pipelining after EHLO from x[1.2.3.4]: QUIT"),
            ("postfix/smtpd", "too many errors after RCPT from x[1.2.3.4]"),
            ("postfix/postscreen", "PREGREET 11 after 0.1 from [1.2.3.4]:5678: EHLO x\\r\\n"),
            ("postfix/postscreen", "DENYLISTED [1.2.3.4]:5678"),
            ("postfix/postscreen", "DNSBL rank 3 for [1.2.3.4]:5678"),
            ("postfix/smtpd", "NOQUEUE: reject:"),
            ("postfix/cleanup", "4F1A2B: reject: body viagra from local; from=<s@x> to=<r@y>: 5.7.1 no"),
            ("postfix/smtpd", "connect from x[1.2.3.4]"),
            ("postfix/qmgr", "4F1A2B: removed"),
            ("postfix/smtpd", "warning: hostname x does not resolve to address 1.2.3.4"),
            (
                "postfix/smtp",
                "4F1A2B: to=<a@b>, relay=x[1.2.3.4]:25, status=bounced (host x said: 550 5.1.1 reject: User unknown)",
            ),
            ("postfix/smtpd", "NOQUEUE: client=x[1.2.3.4]"),
            ("postfix/smtp", "4F1A2B: client=x[1.2.3.4]"),
            (
                "postfix/smtpd",
                "proxy-accept: END-OF-MESSAGE: 250 2.0.0 Ok: queued as 4A1B2C3D4E; from=<a@b> to=<c@d> proto=ESMTP helo=<h>",
            ),
            // only postscreen logs a queue-id-less "reject:"
            ("postfix/smtpd", "reject: connect from [192.0.2.1]:4242: all screening ports busy"),
        ];
        for (program, msg) in rows {
            assert_eq!(ev(program, msg), Event::Other, "{msg}");
        }
    }

    #[test]
    fn accepted() {
        assert_eq!(ev("postfix/smtpd", "3D5E051240E: client=unknown[127.0.2.99]"), Event::Accepted);
        assert_eq!(
            ev("postfix/submission/smtpd", "4Vx3Yc2Q8Zz9: client=x[1.2.3.4], sasl_method=PLAIN, sasl_username=u"),
            Event::Accepted
        );
    }
}
