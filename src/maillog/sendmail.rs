//! Sendmail: `reject=` lines of any ruleset or milter, bare `User unknown`, EXPN/VRFY
//! refusals, pre-greeting traffic, AUTH failures, and accepted messages.
//!
//! Line shapes read here (after the envelope; programs `sm-mta`, `sendmail`,
//! `sm-acceptingconnections` and other `sm-*`; the queue id may be missing, as on
//! `check_relay` lines, and may be longer than 14 characters):
//!
//! ```text
//! 04SDPXC5151721: ruleset=check_rcpt, arg1=<a@b>, relay=host [1.2.3.4], reject=550 5.7.1 <a@b>... Relaying denied. Proper authentication required.
//! ruleset=check_relay, arg1=host, arg2=1.2.3.4, relay=host [1.2.3.4] (may be forged), reject=553 5.3.0 Rejected - see http://…
//! 04SDPXC5151721: Milter: to=<a@b>, reject=451 4.7.1 Greylisting in action, please come back in 00:30:00
//! 04SDPXC5151721: Milter: data, reject=554 5.7.1 Blocked by SpamAssassin
//! 04SDPXC5151721: Milter: connect: host=x.example, addr=1.2.3.4, rejecting commands   (no reply logged)
//! 04SDPXC5151721: <a@b>... User unknown
//! 04SDPXC5151721: host [1.2.3.4]: VRFY root [rejected]
//! rejecting commands from host [1.2.3.4] due to pre-greeting traffic after 0 seconds
//! AUTH failure (LOGIN): authentication failure (-13) SASL(-13): …, relay=host [1.2.3.4]
//! 04SDPXC5151721: host [1.2.3.4]: possible SMTP attack: command=AUTH, count=3
//! 04SDPXC5151721: from=<s@x>, size=275, class=0, nrcpts=1, msgid=<…>, proto=ESMTP, daemon=MTA-v4, relay=host [1.2.3.4]   (accepted)
//! ```
//!
//! Not rejects (reasons.md §1): `did not issue MAIL/EXPN/VRFY/ETRN`, `lost input
//! channel`, delivery status lines (`stat=User unknown` is a remote server refusing
//! our outbound mail), `DSN:` lines.
//!
//! **Accepted message** (Sendmail): a `from=` line with `nrcpts` ≥ 1 and a `proto=`
//! field — a message received over SMTP with at least one accepted recipient.
//! (Transactions without an accepted recipient log `nrcpts=0`.)

#[cfg(test)]
use super::Reason;
use super::postfix::class_of;
use super::reason::{Classifier, Hints, split_reply};
use super::{Class, Event, Reject, Stage};

/// Is this program tag Sendmail's?
pub fn is_sendmail(program: &[u8]) -> bool {
    program == b"sendmail" || program.starts_with(b"sm-")
}

/// Reads one Sendmail message.
pub fn parse<'a>(msg: &'a [u8], classifier: &Classifier) -> Event<'a> {
    let body = strip_queue_id(msg);
    if let Some(at) = memchr::memmem::find(body, b"reject=") {
        return reject_field(body, &body[at + 7..], classifier);
    }
    if body.starts_with(b"from=") {
        return accepted(body);
    }
    // srvrsmtp.c logs a milter's refusal of the connection without the reply it
    // sends (554 or 4xx): "Milter: connect: host=H, addr=A, rejecting commands".
    if let Some(rest) = body.strip_prefix(b"Milter: connect: ") {
        for suffix in [&b", rejecting commands"[..], b", temp failing commands"] {
            if let Some(client) = rest.strip_suffix(suffix) {
                return Event::Reject(Reject {
                    stage: Stage::Connect,
                    class: Class::Unknown,
                    reason: classifier.classify(b"", None, Hints::for_stage(Stage::Connect)),
                    recipient: None,
                    client: Some(client),
                });
            }
        }
        return Event::Other;
    }
    if body.first() == Some(&b'<') {
        if let Some(end) = memchr::memmem::find(body, b">... ") {
            let text = &body[end + 5..];
            if text.starts_with(b"User unknown") || text.starts_with(b"No such user") {
                let hints = Hints::for_stage(Stage::Rcpt);
                return Event::Reject(Reject {
                    stage: Stage::Rcpt,
                    class: Class::Unknown,
                    reason: classifier.classify(text, None, hints),
                    recipient: Some(&body[1..end]),
                    client: None,
                });
            }
        }
        return Event::Other;
    }
    if body.ends_with(b" [rejected]") {
        // "host [ip]: VRFY root [rejected]"
        if let Some(i) = memchr::memmem::rfind(body, b": ") {
            let cmd = &body[i + 2..];
            if cmd.starts_with(b"VRFY")
                || cmd.starts_with(b"EXPN")
                || cmd.starts_with(b"vrfy")
                || cmd.starts_with(b"expn")
            {
                let hints = Hints { expn_vrfy: true, ..Hints::default() };
                return Event::Reject(Reject {
                    stage: Stage::Other,
                    class: Class::Unknown,
                    reason: classifier.classify(b"", None, hints),
                    recipient: None,
                    client: Some(&body[..i]),
                });
            }
        }
        return Event::Other;
    }
    if let Some(rest) = body.strip_prefix(b"rejecting commands from ") {
        if let Some(i) = memchr::memmem::find(rest, b" due to pre-greeting traffic") {
            return Event::Reject(Reject {
                stage: Stage::Connect,
                class: Class::Unknown,
                reason: classifier.classify(&rest[i + 8..], None, Hints::default()),
                recipient: None,
                client: Some(&rest[..i]),
            });
        }
        return Event::Other;
    }
    if body.starts_with(b"AUTH failure") {
        let client = field(body, b"relay=");
        let hints = Hints { auth_line: true, ..Hints::default() };
        return Event::Reject(Reject {
            stage: Stage::Auth,
            class: Class::Unknown,
            reason: classifier.classify(body, None, hints),
            recipient: None,
            client,
        });
    }
    if let Some(i) = memchr::memmem::find(body, b": possible SMTP attack: command=AUTH") {
        let hints = Hints { auth_line: true, ..Hints::default() };
        return Event::Reject(Reject {
            stage: Stage::Auth,
            class: Class::Unknown,
            reason: classifier.classify(b"", None, hints),
            recipient: None,
            client: Some(&body[..i]),
        });
    }
    Event::Other
}

/// Drops a leading `QUEUEID: ` (letters and digits, or `NOQUEUE`).
fn strip_queue_id(msg: &[u8]) -> &[u8] {
    if let Some(i) = memchr::memchr(b' ', msg) {
        let tok = &msg[..i];
        if let Some(id) = tok.strip_suffix(b":")
            && id.len() >= 6
            && id.iter().all(u8::is_ascii_alphanumeric)
        {
            return &msg[i + 1..];
        }
    }
    msg
}

/// The value of a `name=value, ` field (up to the next `, ` or the end).
fn field<'a>(body: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let mut from = 0;
    loop {
        let at = memchr::memmem::find(&body[from..], name)? + from;
        // the field name must start the line or follow ", "
        if at == 0 || body[..at].ends_with(b", ") || body[..at].ends_with(b": ") {
            let value = &body[at + name.len()..];
            let end = memchr::memmem::find(value, b", ").unwrap_or(value.len());
            return Some(&value[..end]);
        }
        from = at + name.len();
    }
}

fn unbracket(addr: &[u8]) -> &[u8] {
    addr.strip_prefix(b"<").and_then(|a| a.strip_suffix(b">")).unwrap_or(addr)
}

/// A `…, reject=REPLY` line: rulesets and milters.
fn reject_field<'a>(body: &'a [u8], reply: &'a [u8], classifier: &Classifier) -> Event<'a> {
    let (stage, recipient) = if let Some(ruleset) = field(body, b"ruleset=") {
        let stage = match ruleset {
            b"check_relay" => Stage::Connect,
            b"check_mail" => Stage::Mail,
            b"check_rcpt" => Stage::Rcpt,
            // content rulesets run during DATA (the rule book lists only the three above)
            b"check_data" | b"check_eoh" | b"check_eom" => Stage::Data,
            _ => Stage::Other,
        };
        let recipient = if stage == Stage::Rcpt { field(body, b"arg1=").map(unbracket) } else { None };
        (stage, recipient)
    } else if let Some(m) = memchr::memmem::find(body, b"Milter") {
        milter_stage(&body[m..])
    } else {
        (Stage::Other, None)
    };
    let (code, enhanced, text) = split_reply(reply);
    // a leading "<address>... " (or "address... ") names what was refused
    let text = match memchr::memmem::find(text, b"... ") {
        Some(i) if !text[..i].contains(&b' ') => &text[i + 4..],
        _ => text,
    };
    let hints = Hints::for_stage(stage);
    Event::Reject(Reject {
        stage,
        class: class_of(code, enhanced),
        reason: classifier.classify(text, enhanced, hints),
        recipient,
        client: field(body, b"relay="),
    })
}

/// `Milter: to=<a@b>, reject=…`, `Milter: data, reject=…`, `Milter: connect: …`,
/// `Milter: helo=…`, `Milter: from=<…>`, `Milter (name): cmd=data, …`.
fn milter_stage(s: &[u8]) -> (Stage, Option<&[u8]>) {
    let spec = match memchr::memmem::find(s, b": ") {
        Some(i) => &s[i + 2..],
        None => return (Stage::Other, None),
    };
    if let Some(to) = spec.strip_prefix(b"to=") {
        let end = memchr::memmem::find(to, b", ").unwrap_or(to.len());
        return (Stage::Rcpt, Some(unbracket(&to[..end])));
    }
    let stage = if spec.starts_with(b"from=") {
        Stage::Mail
    } else if spec.starts_with(b"data")
        || spec.starts_with(b"cmd=data")
        || spec.starts_with(b"eom")
        || spec.starts_with(b"eoh")
    {
        Stage::Data
    } else if spec.starts_with(b"connect") {
        Stage::Connect
    } else if spec.starts_with(b"helo") {
        Stage::Helo
    } else {
        Stage::Other
    };
    (stage, None)
}

fn accepted(body: &[u8]) -> Event<'_> {
    let nrcpts = field(body, b"nrcpts=").unwrap_or(b"0");
    let some_rcpt = !nrcpts.is_empty() && nrcpts.iter().all(u8::is_ascii_digit) && nrcpts.iter().any(|&d| d != b'0');
    if some_rcpt && field(body, b"proto=").is_some() { Event::Accepted } else { Event::Other }
}

/// The reason of a Sendmail line, for tests that only care about that.
#[cfg(test)]
fn reason_of(msg: &'static str) -> Reason {
    match parse(msg.as_bytes(), &Classifier::new()) {
        Event::Reject(r) => r.reason,
        other => panic!("not a reject: {other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::maillog::Expected;

    fn rej(msg: &'static str) -> Expected {
        match parse(msg.as_bytes(), &Classifier::new()) {
            Event::Reject(r) => (r.stage, r.class, r.reason, r.recipient.map(|b| std::str::from_utf8(b).unwrap())),
            other => panic!("not a reject: {other:?} for {msg}"),
        }
    }

    #[test]
    fn rejects() {
        use Class::*;
        use Reason as R;
        use Stage as S;
        let rows: &[(&'static str, Expected)] = &[
            (
                "04SDPXC5151721: ruleset=check_rcpt, arg1=<xxxxxxxx@nmrc.org>, relay=mail-mw2nam10on2117.outbound.protection.outlook.com [40.107.94.117], reject=550 5.7.1 <xxxxxxxx@nmrc.org>... Relaying denied. Proper authentication required.",
                (S::Rcpt, Permanent, R::RelayDenied, Some("xxxxxxxx@nmrc.org")),
            ),
            (
                "6AR1HbPr027234: ruleset=check_rcpt, arg1=<someone@victim.test>, relay=[127.0.2.99], reject=550 5.7.1 <someone@victim.test>... Relaying denied. IP name lookup failed [127.0.2.99]",
                (S::Rcpt, Permanent, R::RelayDenied, Some("someone@victim.test")),
            ),
            (
                "ruleset=check_relay, arg1=[192.0.2.7], arg2=192.0.2.7, relay=[192.0.2.7], reject=553 5.3.0 Rejected - see http://www.spamhaus.org/query/ip/192.0.2.7",
                (S::Connect, Permanent, R::Rbl, None),
            ),
            (
                "4B2CAbCdEf012345678: ruleset=check_relay, arg1=x.example, arg2=192.0.2.7, relay=x.example [192.0.2.7] (may be forged), reject=550 5.7.1 Mail from 192.0.2.7 refused - see http://dsbl.org/",
                (S::Connect, Permanent, R::Other, None),
            ),
            (
                "4B2CAbCd: ruleset=check_mail, arg1=<s@nx.example>, relay=x [192.0.2.7], reject=553 5.1.8 <s@nx.example>... Domain of sender address s@nx.example does not exist",
                (S::Mail, Permanent, R::Sender, None),
            ),
            (
                "4B2CAbCd: ruleset=check_mail, arg1=<s@nx.example>, relay=x [192.0.2.7], reject=451 4.1.8 Domain of sender address s@nx.example does not resolve",
                (S::Mail, Temporary, R::Sender, None),
            ),
            (
                "4B2CAbCd: Milter: to=<a@b.example>, reject=451 4.7.1 Greylisting in action, please come back in 00:30:00",
                (S::Rcpt, Temporary, R::Greylist, Some("a@b.example")),
            ),
            (
                "4B2CAbCd: Milter: data, reject=550 5.7.1 Blocked by SpamAssassin",
                (S::Data, Permanent, R::SpamContent, None),
            ),
            (
                // srvrsmtp.c: a milter's connect reject is logged without its reply
                "4B2CAbCd: Milter: connect: host=x.example, addr=192.0.2.7, rejecting commands",
                (S::Connect, Unknown, R::Other, None),
            ),
            (
                "4B2CAbCd: Milter: connect: host=x.example, addr=192.0.2.7, temp failing commands",
                (S::Connect, Unknown, R::Other, None),
            ),
            ("4B2CAbCd: Milter: helo=x, reject=550 5.7.1 bogus HELO name", (S::Helo, Permanent, R::Helo, None)),
            ("4B2CAbCd: Milter: from=<s@x>, reject=550 5.7.1 SPF check failed", (S::Mail, Permanent, R::SpfFail, None)),
            (
                "6AR1HbLT027180: <jsmith@rigor.test>... User unknown",
                (S::Rcpt, Unknown, R::UnknownUser, Some("jsmith@rigor.test")),
            ),
            (
                "6AR1HbLT027180: <jsmith@rigor.test>... No such user here",
                (S::Rcpt, Unknown, R::UnknownUser, Some("jsmith@rigor.test")),
            ),
            ("4B2CAbCd: x.example [192.0.2.7]: VRFY root [rejected]", (S::Other, Unknown, R::Protocol, None)),
            ("4B2CAbCd: x.example [192.0.2.7]: EXPN staff [rejected]", (S::Other, Unknown, R::Protocol, None)),
            (
                "rejecting commands from x.example [192.0.2.7] due to pre-greeting traffic after 0 seconds",
                (S::Connect, Unknown, R::Protocol, None),
            ),
            (
                "AUTH failure (LOGIN): authentication failure (-13) SASL(-13): authentication failure: checkpass failed, user=bob, relay=x [192.0.2.7]",
                (S::Auth, Unknown, R::AuthFailed, None),
            ),
            (
                "4B2CAbCd: x.example [192.0.2.7]: possible SMTP attack: command=AUTH, count=3",
                (S::Auth, Unknown, R::AuthFailed, None),
            ),
        ];
        for (msg, want) in rows {
            assert_eq!(rej(msg), *want, "{msg}");
        }
        assert_eq!(reason_of("4B2CAbCd: Milter: to=<virus@x>, reject=550 5.7.1 Access denied"), Reason::AccessDb);
    }

    #[test]
    fn others() {
        let c = Classifier::new();
        let rows: &[&str] = &[
            "6AR1HbLT027180: from=<noreply@sender.test>, size=0, class=0, nrcpts=0, proto=ESMTP, daemon=MTA-v4, relay=x [127.0.2.17]",
            "4B2CAbCd: x [192.0.2.7] did not issue MAIL/EXPN/VRFY/ETRN during connection to MTA-v4",
            "4B2CAbCd: lost input channel from x [192.0.2.7] to MTA-v4 after rcpt",
            "4B2CAbCd: to=<a@b>, delay=00:00:02, mailer=esmtp, relay=x. [1.2.3.4], dsn=5.1.1, stat=User unknown",
            "4B2CAbCd: 4B2CAbCe: DSN: User unknown",
            "4B2CAbCd: x [192.0.2.7]: possible SMTP attack: command=RCPT, count=101",
            "starting daemon (8.17.1.9): SMTP+queueing@00:15:00",
            "4B2CAbCd: from=user, size=100, class=0, nrcpts=1, msgid=<x@y>, relay=user@localhost",
        ];
        for msg in rows {
            assert_eq!(parse(msg.as_bytes(), &c), Event::Other, "{msg}");
        }
        let ok = "6AR1Hai8027104: from=<billing@sender.test>, size=275, class=0, nrcpts=1, msgid=<x@vm>, proto=ESMTP, daemon=MTA-v4, relay=x [127.0.2.17]";
        assert_eq!(parse(ok.as_bytes(), &c), Event::Accepted);
        assert!(is_sendmail(b"sm-mta") && is_sendmail(b"sendmail") && is_sendmail(b"sm-acceptingconnections"));
        assert!(!is_sendmail(b"smtpd") && !is_sendmail(b"milter-greylist"));
    }
}
