//! Exim: ACL rejections, dropped connections, authenticator failures, accepted
//! messages; syslog duplicates and `[n/m]` continuations.
//!
//! Line shapes read here (Exim via syslog, programs `exim`, `exim4`; or Exim's own
//! mainlog, whose envelope is only a date). Exim writes its rejections as
//! `HOST F=<sender> [temporarily ]rejected WHAT: MESSAGE` (`smtp_handle_acl_fail`):
//!
//! ```text
//! H=mail-b.sender.test [127.0.2.11] F=<s@x> rejected RCPT <a@b>: relay not permitted
//! H=(helo) [1.2.3.4] F=<s@x> temporarily rejected RCPT <a@b>: greylisted.
//! H=x [1.2.3.4] rejected MAIL <s@x>: Access denied
//! H=x [1.2.3.4] rejected EHLO or HELO helo.example: bogus HELO
//! H=[1.2.3.4] rejected connection in "connect" ACL: listed in zen.spamhaus.org
//! 1xWkam-000745-2j H=x [1.2.3.4] F=<s@x> rejected after DATA: This message scored 12.1 spam points.
//! 1xWkam-000745-2j H=x [1.2.3.4] F=<s@x> rejected during MIME ACL checks: bad attachment
//! rejected EHLO from [1.2.3.4]: syntactically invalid argument(s): my_host
//! rejected MAIL from [1.2.3.4]: no HELO/EHLO given                          (helo_required, no H=)
//! temporarily rejected "EHLO helo.example" from x [1.2.3.4]                 (helo_verify_hosts, no H=)
//! 1xWkam-000745-2j rejected from <s@x> H=x [1.2.3.4]: message too big: read=N max=M   (receive.c, DATA)
//! too many recipients: message rejected: sender=<s@x> H=x [1.2.3.4]        (recipients_max)
//! H=x [1.2.3.4] dropped by 'acl_check_rcpt' ACL: …                          (the ACL's name gives the stage)
//! SMTP call from x [1.2.3.4] dropped: too many syntax or protocol errors (last command was "…")
//! dovecot_login authenticator failed for (helo) [1.2.3.4]:5678: 535 Incorrect authentication data (set_id=u)
//! 1xWkam-000745-2j <= s@x H=x [1.2.3.4] P=esmtps X=… S=479 id=…            (accepted)
//! ```
//!
//! Not rejects (reasons.md §1): `closed by DROP in ACL` (the `rejected` line before
//! it is counted), `SMTP protocol error in`, `sender verify fail for` (the `rejected`
//! line after it is counted), `rejected by non-SMTP ACL` (`-bm` and `-bS` input),
//! delivery failures (`**`) quoting a remote server.
//!
//! Via syslog Exim writes an entry once for its main log and again for its reject
//! log (unless `syslog_duplication = false`), and splits long or multi-line entries
//! into parts marked `[n\m]` (the part ends at a newline of the entry: its line is
//! complete and more parts follow) or `[n/m]` (the part was cut at Exim's
//! `MAX_SYSLOG_LEN` and its line goes on in the next part, or it is the last part);
//! see `write_syslog()` in Exim's log.c. [`EximJoiner`] puts the first line of a
//! split entry back together and drops the immediate duplicate, so each reject
//! counts once.
//!
//! **Accepted message** (Exim): a `<=` arrival line whose `P=` protocol is SMTP
//! (`smtp`, `esmtp`, `esmtps`, `esmtpa`, `esmtpsa`, `local-smtp`, …; not
//! `local-bsmtp`).

use base64::Engine as _;
use std::collections::HashMap;

use super::postfix::class_of;
use super::reason::{Classifier, Hints, split_reply};
use super::{Class, Event, Reason, Reject, Stage};

/// Is this program tag Exim's?
pub fn is_exim(program: &[u8]) -> bool {
    program.starts_with(b"exim")
}

/// Removes the timestamp Exim writes inside its syslog messages when
/// `syslog_timestamp` is on: `2026-05-28 08:25:35[.mmm][ +ZZZZ][ [pid]] `.
pub fn strip_inner_timestamp(msg: &[u8]) -> &[u8] {
    let ok = msg.len() >= 20
        && msg[4] == b'-'
        && msg[7] == b'-'
        && msg[10] == b' '
        && msg[13] == b':'
        && msg[16] == b':'
        && [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18].iter().all(|&i| msg[i].is_ascii_digit());
    if !ok {
        return msg;
    }
    let mut i = 19;
    if msg.get(i) == Some(&b'.') {
        i += 1;
        while msg.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
    }
    let mut rest = &msg[i..];
    if rest.len() >= 6 && rest[0] == b' ' && matches!(rest[1], b'+' | b'-') && rest[2..6].iter().all(u8::is_ascii_digit)
    {
        rest = &rest[6..];
    }
    if rest.len() >= 2
        && rest[0] == b' '
        && rest[1] == b'['
        && let Some(close) = memchr::memchr(b']', rest)
        && close > 2
        && rest[2..close].iter().all(u8::is_ascii_digit)
    {
        rest = &rest[close + 1..];
    }
    rest.strip_prefix(b" ").unwrap_or(rest)
}

/// A continuation marker `[n/m] ` or `[n\m] `: (n, m, line ends here, rest).
/// Exim's log.c writes `\` when the part ends at a newline (the line is complete)
/// and `/` when the part was cut mid-line or is the last one; "line ends here" is
/// therefore `\`, or the last part.
pub fn split_marker(msg: &[u8]) -> Option<(u32, u32, bool, &[u8])> {
    if msg.first() != Some(&b'[') {
        return None;
    }
    let close = msg.iter().take(24).position(|&b| b == b']')?;
    let inner = &msg[1..close];
    let sep = inner.iter().position(|&b| b == b'/' || b == b'\\')?;
    let n = parse_u32(&inner[..sep])?;
    let m = parse_u32(&inner[sep + 1..])?;
    if n == 0 || n > m {
        return None;
    }
    let rest = &msg[close + 1..];
    let rest = rest.strip_prefix(b" ").unwrap_or(rest);
    Some((n, m, inner[sep] == b'\\' || n == m, rest))
}

fn parse_u32(s: &[u8]) -> Option<u32> {
    if s.is_empty() || s.len() > 6 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(s.iter().fold(0u32, |v, &d| v * 10 + u32::from(d - b'0')))
}

/// Reads one complete Exim log entry (the first line of it).
pub fn parse<'a>(msg: &'a [u8], classifier: &Classifier) -> Event<'a> {
    if let Some(flag) = delivery_flag(msg) {
        // message lifecycle lines: an arrival may count as accepted, nothing else does
        return if flag == b"<=" && is_smtp_arrival(msg) { Event::Accepted } else { Event::Other };
    }
    // "H=… sender verify fail|defer for <s>: why" notes precede the `rejected` line,
    // which is the one counted; a rejected line may itself mention a sender verify
    // ("temporarily rejected RCPT <a@b>: Could not complete sender verify callout").
    if memchr::memmem::find(msg, b" sender verify fail for ").is_some()
        || memchr::memmem::find(msg, b" sender verify defer for ").is_some()
        || msg.starts_with(b"SMTP protocol error in")
    {
        return Event::Other;
    }
    // recipients_max: "too many recipients: message rejected: sender=<s> H=…" (552) or
    // "too many recipients: excess temporarily rejected: sender=<s> H=…" (452)
    if let Some(rest) = msg.strip_prefix(b"too many recipients: ")
        && has_field(msg, b"H=")
    {
        let temporarily = rest.starts_with(b"excess temporarily");
        return Event::Reject(Reject {
            stage: Stage::Rcpt,
            class: if temporarily { Class::Temporary } else { Class::Permanent },
            reason: classifier.classify(b"too many recipients", None, Hints::for_stage(Stage::Rcpt)),
            recipient: None,
            client: host_field(msg),
        });
    }
    if let Some(i) = memchr::memmem::find(msg, b"rejected ")
        && (i == 0 || msg[i - 1] == b' ')
        && let Some(event) = rejected(msg, i, classifier)
    {
        return event;
    }
    if let Some(i) = memchr::memmem::find(msg, b" authenticator failed for ") {
        let after = &msg[i + 26..];
        let (client, reply) = match memchr::memmem::find(after, b": ") {
            Some(j) => (&after[..j], &after[j + 2..]),
            None => (after, &b""[..]),
        };
        let (code, enhanced, text) = split_reply(reply);
        let hints = Hints { auth_line: true, ..Hints::default() };
        return Event::Reject(Reject {
            stage: Stage::Auth,
            class: class_of(code, enhanced),
            reason: classifier.classify(text, enhanced, hints),
            recipient: None,
            client: Some(client),
        });
    }
    if let Some(rest) = msg.strip_prefix(b"SMTP call from ") {
        if let Some(i) = memchr::memmem::find(rest, b" dropped: ") {
            let text = &rest[i + 10..];
            return Event::Reject(Reject {
                stage: Stage::Other,
                class: Class::Unknown,
                reason: classifier.classify(text, None, Hints::default()),
                recipient: None,
                client: Some(&rest[..i]),
            });
        }
        return Event::Other;
    }
    if let Some(i) = memchr::memmem::find(msg, b" dropped by '")
        && memchr::memmem::find(&msg[i..], b"' ACL").is_some()
    {
        let text = memchr::memmem::find(&msg[i..], b" ACL: ").map_or(&b""[..], |j| &msg[i + j + 6..]);
        let name = &msg[i + 13..];
        let name = &name[..memchr::memchr(b'\'', name).unwrap_or(name.len())];
        let (code, enhanced, text) = split_reply(text);
        let stage = acl_stage(name);
        let hints = Hints { acl_dropped: true, ..Hints::for_stage(stage) };
        return Event::Reject(Reject {
            stage,
            class: class_of(code, enhanced),
            reason: classifier.classify(text, enhanced, hints),
            recipient: None,
            client: host_field(msg),
        });
    }
    Event::Other
}

/// The stage an ACL's name stands for: Exim's own names (`connect`, `helo`, `mail`,
/// `rcpt`, `predata`, `data`, `mime`, `dkim`, `prdr`, `auth`) or a configured name
/// that contains one (`acl_check_rcpt`, `acl_smtp_connect`, `check_data`); anything
/// else is `other` (reasons.md §2, "the ACL's name as the stage" is our reading).
fn acl_stage(name: &[u8]) -> Stage {
    const TABLE: &[(&[u8], Stage)] = &[
        (b"connect", Stage::Connect),
        (b"helo", Stage::Helo),
        (b"ehlo", Stage::Helo),
        (b"rcpt", Stage::Rcpt),
        (b"mailauth", Stage::Mail),
        (b"auth", Stage::Auth),
        (b"mail", Stage::Mail),
        (b"data", Stage::Data),
        (b"mime", Stage::Data),
        (b"dkim", Stage::Data),
        (b"prdr", Stage::Data),
    ];
    if name.len() > 64 {
        return Stage::Other;
    }
    let lower = name.to_ascii_lowercase();
    TABLE
        .iter()
        .find(|(word, _)| memchr::memmem::find(&lower, word).is_some())
        .map_or(Stage::Other, |&(_, stage)| stage)
}

/// The flag after a message id (`<=`, `=>`, `->`, `*>`, `**`, `==`), if the line has one.
fn delivery_flag(msg: &[u8]) -> Option<&[u8]> {
    let sp = memchr::memchr(b' ', msg)?;
    let id = &msg[..sp];
    if id.len() < 16 || !id.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-') {
        return None;
    }
    let rest = &msg[sp + 1..];
    let flag = rest.get(..3)?;
    [&b"<= "[..], b"=> ", b"-> ", b"*> ", b"** ", b"== "].iter().find(|f| **f == flag).map(|f| &f[..2])
}

/// `H=name [ip]` or `H=(helo) [ip]` … up to the next field.
fn host_field(msg: &[u8]) -> Option<&[u8]> {
    let at = memchr::memmem::find(msg, b"H=")?;
    let host = &msg[at + 2..];
    let end = memchr::memchr(b']', host).map_or(host.len(), |i| i + 1);
    Some(&host[..end])
}

/// `<=` arrival over SMTP.
fn is_smtp_arrival(msg: &[u8]) -> bool {
    let Some(sp) = memchr::memchr(b' ', msg) else { return false };
    if !msg[sp + 1..].starts_with(b"<= ") {
        return false;
    }
    let Some(p) = memchr::memmem::find(msg, b" P=") else { return false };
    let proto = &msg[p + 3..];
    let proto = &proto[..memchr::memchr(b' ', proto).unwrap_or(proto.len())];
    memchr::memmem::find(proto, b"smtp").is_some() && memchr::memmem::find(proto, b"bsmtp").is_none()
}

/// A `… rejected WHAT: MESSAGE` line; `None` when WHAT is not an ACL Exim names.
fn rejected<'a>(msg: &'a [u8], at: usize, classifier: &Classifier) -> Option<Event<'a>> {
    let what_and_text = &msg[at + 9..];
    if what_and_text.starts_with(b"by non-SMTP ACL") {
        return Some(Event::Other);
    }
    let before = &msg[..at];
    // The host usually comes first ("H=… F=<…> rejected RCPT …"), but smtp_in.c puts
    // it after the verb in "rejected MAIL FROM:<s> H=…: message too big: …" and in
    // the synchronization errors; "rejected EHLO from [1.2.3.4]: syntactically
    // invalid argument(s): …" has no H= at all.
    // Built-in rejects that name the host without `H=` (smtp_in.c, host_and_ident(FALSE)):
    // "rejected MAIL from [1.2.3.4]: no HELO/EHLO given" (helo_required, a session
    // without HELO) and "[temporarily ]rejected \"EHLO name\" from [1.2.3.4]"
    // (helo_verify_hosts).
    let lead = at == 0 || before == b"temporarily ";
    let hostless = lead
        && (what_and_text.starts_with(b"EHLO from ")
            || what_and_text.starts_with(b"HELO from ")
            || what_and_text.starts_with(b"MAIL from ")
            || ((what_and_text.starts_with(b"\"EHLO ") || what_and_text.starts_with(b"\"HELO "))
                && memchr::memmem::find(what_and_text, b"\" from ").is_some()));
    // receive.c's size reject during DATA, "rejected from <s> H=…: message too big:
    // read=N max=M", counts only from a host: with U= alone it is local -bm input.
    let size_from_host = what_and_text.starts_with(b"from <") && has_field(msg, b"H=");
    let interactive = if what_and_text.starts_with(b"from <") {
        size_from_host
    } else {
        has_field(msg, b"H=") || has_field(msg, b"U=") || hostless
    };
    if !interactive {
        return Some(Event::Other);
    }
    if before.starts_with(b"SMTP protocol synchronization error") {
        return Some(sync_error(msg, before, what_and_text, classifier));
    }
    let temporarily = before.ends_with(b"temporarily ");
    let (stage, fallback) = what(what_and_text)?;
    // the verb part ends at the first ": "; the message follows
    let (what_part, message) = match memchr::memmem::find(what_and_text, b": ") {
        Some(i) => (&what_and_text[..i], &what_and_text[i + 2..]),
        None => (what_and_text, &b""[..]),
    };
    let recipient = if stage == Stage::Rcpt {
        what_part.strip_prefix(b"RCPT ").map(|a| {
            let a = a.strip_prefix(b"<").unwrap_or(a);
            &a[..memchr::memchr(b'>', a).unwrap_or(a.len())]
        })
    } else {
        None
    };
    let (code, enhanced, text) = split_reply(message);
    let class = match code {
        Some(c) => Class::from_code_digit(c[0]).unwrap_or(Class::Unknown),
        None if temporarily => Class::Temporary,
        None => Class::Permanent,
    };
    let mut hints = Hints::for_stage(stage);
    hints.fallback = fallback;
    hints.content_check = what_part.starts_with(b"by local_scan");
    let client = host_field(msg).or_else(|| {
        memchr::memmem::find(what_part, b" from ")
            .map(|i| &what_part[i + 6..])
            .or_else(|| what_part.split(|&b| b == b' ').nth(2))
    });
    Some(Event::Reject(Reject { stage, class, reason: classifier.classify(text, enhanced, hints), recipient, client }))
}

/// Does `msg` have the field `name` (`H=`, `U=`) at the start of a word?
fn has_field(msg: &[u8], name: &[u8]) -> bool {
    memchr::memmem::find_iter(msg, name).any(|i| i == 0 || msg[i - 1] == b' ')
}

/// `SMTP protocol synchronization error (why): rejected connection from H=…` or
/// `…: rejected "CMD" H=… next input="…"` (smtp_in.c): the client spoke out of
/// turn, got `554 SMTP synchronization error` and was dropped. The reply text is
/// not logged; the error description before `rejected` says what happened.
fn sync_error<'a>(msg: &'a [u8], before: &'a [u8], what: &[u8], classifier: &Classifier) -> Event<'a> {
    let stage = if what.starts_with(b"connection") {
        Stage::Connect
    } else {
        let cmd = what.strip_prefix(b"\"").unwrap_or(what);
        let verb = &cmd[..cmd.iter().position(|b| !b.is_ascii_alphabetic()).unwrap_or(cmd.len())];
        match verb.to_ascii_uppercase().as_slice() {
            b"EHLO" | b"HELO" => Stage::Helo,
            b"MAIL" => Stage::Mail,
            b"RCPT" => Stage::Rcpt,
            b"DATA" | b"BDAT" => Stage::Data,
            b"AUTH" => Stage::Auth,
            _ => Stage::Other,
        }
    };
    Event::Reject(Reject {
        stage,
        class: Class::Permanent,
        reason: classifier.classify(before, None, Hints::for_stage(stage)),
        recipient: None,
        client: host_field(msg),
    })
}

/// The stage and the fallback reason for what was rejected (reasons.md §2 and §4).
fn what(w: &[u8]) -> Option<(Stage, Option<Reason>)> {
    const TABLE: &[(&[u8], Stage, Option<Reason>)] = &[
        (b"RCPT", Stage::Rcpt, None),
        (b"MAIL", Stage::Mail, None),
        (b"connection", Stage::Connect, Some(Reason::AccessDb)),
        (b"EHLO", Stage::Helo, Some(Reason::Helo)),
        (b"HELO", Stage::Helo, Some(Reason::Helo)),
        (b"\"EHLO", Stage::Helo, Some(Reason::Helo)),
        (b"\"HELO", Stage::Helo, Some(Reason::Helo)),
        (b"from <", Stage::Data, None),
        (b"after DATA", Stage::Data, None),
        (b"DATA", Stage::Data, None),
        (b"during MIME", Stage::Data, None),
        (b"by local_scan", Stage::Data, Some(Reason::SpamContent)),
        (b"DKIM", Stage::Data, Some(Reason::DmarcFail)),
        (b"PRDR", Stage::Data, None),
        (b"AUTH", Stage::Auth, None),
        (b"EXPN", Stage::Other, Some(Reason::Protocol)),
        (b"VRFY", Stage::Other, Some(Reason::Protocol)),
        (b"ETRN", Stage::Other, None),
        (b"STARTTLS", Stage::Other, None),
        (b"QUIT", Stage::Other, None),
        (b"NOTQUIT", Stage::Other, None),
        (b"non-SMTP", Stage::Other, None),
    ];
    TABLE.iter().find(|(prefix, _, _)| w.starts_with(prefix)).map(|&(_, stage, fallback)| (stage, fallback))
}

/// Upper bound on entries [`EximJoiner`] tracks at once (distinct host+pid pairs).
const MAX_TRACKED: usize = 4096;
/// Upper bound on a joined first line.
const MAX_JOINED: usize = 64 * 1024;

#[derive(Debug, Default)]
struct Pending {
    /// The first line so far (parts marked `\` are joined without a break).
    line: Vec<u8>,
    /// The first line is complete; later parts are the rest of the entry.
    line_done: bool,
    /// Parts in the entry.
    total: u32,
}

/// What [`EximJoiner::feed`] makes of a message.
#[derive(Debug, PartialEq, Eq)]
pub enum Joined<'a> {
    /// A whole message, to parse now.
    Whole(&'a [u8]),
    /// The first line of a split entry, now complete.
    Assembled(Vec<u8>),
    /// A part that adds nothing to count (a continuation, or an incomplete first line).
    Part,
}

/// Reassembles `[n/m]` continuations (per host and pid) and drops syslog duplicates.
/// Memory is bounded: at most [`MAX_TRACKED`] processes, [`MAX_JOINED`] bytes each.
///
/// A duplicate is the reject-log copy of a reject: the same text from the same
/// host and process on the very next line (continuation parts of that process may
/// sit between them). Exim writes the two copies with back-to-back `syslog()` calls,
/// so other lines rarely come between them; the same recipient refused twice in one
/// session, further apart, still counts twice.
#[derive(Debug, Default)]
pub struct EximJoiner {
    by_process: HashMap<u64, Pending>,
    /// The previous line, if it was an Exim reject: (process key, text hash).
    last_reject: Option<(u64, u64)>,
}

fn process_key(host: &[u8], pid: &[u8]) -> u64 {
    let mut h = Fnv::default();
    h.write(host);
    h.write(b"\0");
    h.write(pid);
    h.0
}

/// FNV-1a: tiny, no allocation, good enough to tell lines apart.
#[derive(Debug)]
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// The hash of a message, for duplicate detection.
pub fn text_hash(msg: &[u8]) -> u64 {
    let mut h = Fnv::default();
    h.write(msg);
    h.0
}

impl EximJoiner {
    /// Feeds one message (inner timestamp already removed) from `host`/`pid`.
    pub fn feed<'a>(&mut self, host: &[u8], pid: Option<&[u8]>, msg: &'a [u8]) -> Joined<'a> {
        let Some((n, m, ends_line, rest)) = split_marker(msg) else {
            return Joined::Whole(msg);
        };
        if self.by_process.len() >= MAX_TRACKED {
            self.by_process.clear();
        }
        let key = process_key(host, pid.unwrap_or(b""));
        if n == 1 {
            self.by_process.insert(key, Pending { line: Vec::new(), line_done: false, total: m });
        }
        // a part without its beginning: nothing to count
        let Some(p) = self.by_process.get_mut(&key) else { return Joined::Part };
        if p.total != m || (p.line.is_empty() && !p.line_done && n != 1) {
            return Joined::Part;
        }
        let mut out = Joined::Part;
        if !p.line_done {
            let room = MAX_JOINED.saturating_sub(p.line.len());
            let rest = strip_inner_timestamp(rest);
            p.line.extend_from_slice(&rest[..rest.len().min(room)]);
            if ends_line || n == m {
                p.line_done = true;
                out = Joined::Assembled(std::mem::take(&mut p.line));
            }
        }
        if n == m {
            // complete: only entries under way are kept (and saved)
            self.by_process.remove(&key);
        }
        out
    }

    /// Records a parsed entry from `host`/`pid` and says whether it is the syslog
    /// duplicate of the reject on the line just before.
    pub fn is_duplicate(&mut self, host: &[u8], pid: Option<&[u8]>, msg: &[u8], is_reject: bool) -> bool {
        let previous = self.last_reject.take();
        if !is_reject {
            return false;
        }
        let this = (process_key(host, pid.unwrap_or(b"")), text_hash(msg));
        if previous == Some(this) {
            return true;
        }
        self.last_reject = Some(this);
        false
    }

    /// A line that is not an Exim entry (or not a continuation part) came between.
    pub fn other_line(&mut self) {
        self.last_reject = None;
    }

    /// Processes tracked right now (for tests of the bound).
    pub fn tracked(&self) -> usize {
        self.by_process.len()
    }

    /// Nothing held: no split entry under way, no reject to tell a duplicate of.
    pub fn is_idle(&self) -> bool {
        self.last_reject.is_none() && self.by_process.is_empty()
    }

    /// What the joiner holds, for the state file: a restart between the parts of a
    /// split entry, or between a reject and its reject-log copy, then neither loses
    /// the entry nor counts the copy. At most [`MAX_SAVED`] entries and
    /// [`MAX_SAVED_BYTES`] are kept; beyond that the rest is dropped, as the
    /// joiner's own bound would.
    pub fn save(&self) -> JoinState {
        let mut bytes = 0;
        let mut pending: Vec<SavedPart> = Vec::new();
        for (key, p) in &self.by_process {
            if pending.len() >= MAX_SAVED || bytes + p.line.len() > MAX_SAVED_BYTES {
                break;
            }
            bytes += p.line.len();
            pending.push(SavedPart {
                process: *key,
                line: base64::engine::general_purpose::STANDARD.encode(&p.line),
                line_done: p.line_done,
                total: p.total,
            });
        }
        pending.sort_by_key(|p| p.process);
        JoinState { pending, last_reject: self.last_reject }
    }

    /// Takes back what [`EximJoiner::save`] kept ([`JoinState::check`] tells a bad
    /// state apart before: the state file it came from is refused).
    pub fn restore(&mut self, saved: &JoinState) {
        for s in saved.pending.iter().take(MAX_SAVED) {
            if let Ok(line) = s.decode() {
                self.by_process.insert(s.process, Pending { line, line_done: s.line_done, total: s.total });
            }
        }
        self.last_reject = saved.last_reject;
    }
}

/// Split entries saved in the state file per source, at most this many.
const MAX_SAVED: usize = 256;
/// And at most this many bytes of joined first lines.
const MAX_SAVED_BYTES: usize = 1024 * 1024;

/// One split entry under way, as the state file keeps it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SavedPart {
    /// The hash of host and pid the parts are joined under.
    pub process: u64,
    /// The first line so far, base64.
    pub line: String,
    pub line_done: bool,
    pub total: u32,
}

impl SavedPart {
    fn decode(&self) -> Result<Vec<u8>, String> {
        let line = base64::engine::general_purpose::STANDARD.decode(&self.line).map_err(|e| e.to_string())?;
        if line.len() > MAX_JOINED {
            return Err(format!("a first line of {} bytes (at most {MAX_JOINED})", line.len()));
        }
        Ok(line)
    }
}

impl JoinState {
    /// Whether every saved line decodes and the bounds hold.
    pub fn check(&self) -> Result<(), String> {
        if self.pending.len() > MAX_SAVED {
            return Err(format!("{} entries (at most {MAX_SAVED})", self.pending.len()));
        }
        self.pending.iter().try_for_each(|p| p.decode().map(drop))
    }
}

/// What an [`EximJoiner`] holds between two lines, as the state file keeps it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinState {
    pub pending: Vec<SavedPart>,
    /// (process, text hash) of the reject on the line just before.
    pub last_reject: Option<(u64, u64)>,
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
                "H=mail-b.sender.test [127.0.2.11] F=<newsletter@sender.test> rejected RCPT <someone@victim.test>: relay not permitted",
                (S::Rcpt, Permanent, R::RelayDenied, Some("someone@victim.test")),
            ),
            (
                "H=(unnamed.sender.test) [127.0.2.99] F=<j.doe@sender.test> rejected RCPT <admin2@gw.test>: Unknown user",
                (S::Rcpt, Permanent, R::UnknownUser, Some("admin2@gw.test")),
            ),
            (
                "H=spammer.sender.test [127.0.2.66] F=<billing@sender.test> rejected RCPT <grace@gw.test>: Service unavailable; Client host [127.0.2.66] blocked using dnsbl.test; 127.0.2.66 is listed in dnsbl.test (lab spam source)",
                (S::Rcpt, Permanent, R::Rbl, Some("grace@gw.test")),
            ),
            (
                "H=x (h) [192.0.2.1] F=<s@x> temporarily rejected RCPT <a@b>: greylisted.",
                (S::Rcpt, Temporary, R::Greylist, Some("a@b")),
            ),
            (
                "H=x [192.0.2.1] F=<s@x> rejected RCPT <a@b>: 451 4.7.1 try later",
                (S::Rcpt, Temporary, R::Other, Some("a@b")),
            ),
            (
                "H=x [192.0.2.1] F=<s@x> rejected RCPT <a@b>: Sender verify failed",
                (S::Rcpt, Permanent, R::Sender, Some("a@b")),
            ),
            ("H=x [192.0.2.1] rejected MAIL <s@x>: Access denied", (S::Mail, Permanent, R::AccessDb, None)),
            ("H=x [192.0.2.1] rejected EHLO or HELO foo_bar: no reason", (S::Helo, Permanent, R::Helo, None)),
            (
                "rejected EHLO from [192.0.2.1]: syntactically invalid argument(s): my_host",
                (S::Helo, Permanent, R::Protocol, None),
            ),
            ("H=[192.0.2.1] rejected connection in \"connect\" ACL", (S::Connect, Permanent, R::AccessDb, None)),
            (
                "H=[192.0.2.1] rejected connection in \"connect\" ACL: 192.0.2.1 is listed in zen.spamhaus.org",
                (S::Connect, Permanent, R::Rbl, None),
            ),
            (
                "1xWkam-000745-2j H=x [192.0.2.1] F=<s@x> rejected after DATA: This message scored 12.1 spam points.",
                (S::Data, Permanent, R::SpamContent, None),
            ),
            (
                "1xWkam-000745-2j H=x [192.0.2.1] F=<s@x> rejected after DATA: This message contains a virus (Eicar-Test-Signature).",
                (S::Data, Permanent, R::Virus, None),
            ),
            (
                "1xWkam-000745-2j H=x [192.0.2.1] F=<s@x> rejected during MIME ACL checks: Blacklisted file extension detected",
                (S::Data, Permanent, R::Rbl, None),
            ),
            (
                "1xWkam-000745-2j H=x [192.0.2.1] F=<s@x> rejected by local_scan(): content",
                (S::Data, Permanent, R::SpamContent, None),
            ),
            ("H=x [192.0.2.1] F=<s@x> rejected DKIM : signature missing", (S::Data, Permanent, R::DmarcFail, None)),
            ("H=x [192.0.2.1] rejected VRFY root", (S::Other, Permanent, R::Protocol, None)),
            (
                "SMTP call from x [192.0.2.1] dropped: too many syntax or protocol errors (last command was \"FOO\")",
                (S::Other, Unknown, R::Protocol, None),
            ),
            (
                "SMTP call from x [192.0.2.1] dropped: too many nonmail commands (last was \"RSET\")",
                (S::Other, Unknown, R::Protocol, None),
            ),
            (
                "dovecot_login authenticator failed for (User) [192.0.2.1]:61234: 535 Incorrect authentication data (set_id=a@b)",
                (S::Auth, Permanent, R::AuthFailed, None),
            ),
            ("H=x [192.0.2.1] dropped by 'check_connect' ACL", (S::Connect, Unknown, R::AccessDb, None)),
            (
                "U=root F=<s@x> rejected RCPT <a@b>: relay not permitted",
                (S::Rcpt, Permanent, R::RelayDenied, Some("a@b")),
            ),
            (
                // smtp_in.c: the host comes after the verb
                "rejected MAIL FROM:<s@x> H=x [192.0.2.1]: message too big: size=20971520 max=10485760",
                (S::Mail, Permanent, R::Size, None),
            ),
            (
                "SMTP protocol synchronization error (input sent without waiting for greeting): rejected connection from H=[192.0.2.1]:25936 I=[192.0.2.2]:25 input=\"GET / HTTP/1.1\\r\\n\\r\\n\"",
                (S::Connect, Permanent, R::Protocol, None),
            ),
            (
                "SMTP protocol synchronization error (next input sent too soon: pipelining was not advertised): rejected \"RSET\" H=x [192.0.2.1]:58302 I=[192.0.2.2]:25 next input=\"QUIT\\r\\n\"",
                (S::Other, Permanent, R::Protocol, None),
            ),
            (
                "SMTP protocol synchronization error (next input sent too soon: pipelining was not advertised): rejected \"RCPT TO:<a@b>\" H=x [192.0.2.1]:58302 I=[192.0.2.2]:25 next input=\"DATA\\r\\n\"",
                (S::Rcpt, Permanent, R::Protocol, None),
            ),
            (
                // a rejected line that mentions a sender verify is still a reject
                "H=x [192.0.2.1] F=<s@x> temporarily rejected RCPT <a@b>: Could not complete sender verify callout",
                (S::Rcpt, Temporary, R::Sender, Some("a@b")),
            ),
        ];
        for (msg, want) in rows {
            assert_eq!(rej(msg), *want, "{msg}");
        }
    }

    #[test]
    fn others() {
        let c = Classifier::new();
        for msg in [
            "SMTP connection from (x) [192.0.2.1] closed by DROP in ACL",
            "SMTP protocol error in \"AUTH LOGIN\" H=x [192.0.2.1] AUTH command used when not advertised",
            "H=x [192.0.2.1] sender verify fail for <s@x>: Unrouteable address",
            "H=x [192.0.2.1] sender verify defer for <s@x>: Could not complete sender verify callout",
            "rejected MAIL FROM:<s@x> from a local process",
            "F=<s@x> rejected by non-SMTP ACL: go away",
            "1xWkam-000745-2j ** a@b R=dnslookup T=remote_smtp H=mx [1.2.3.4]: SMTP error from remote mail server after RCPT TO:<a@b>: 550 5.1.1 rejected: User unknown",
            "1xWkam-000745-2j => grace <grace@gw.test> R=lab_users T=lab_maildir",
            "1xWkam-000745-2j <= <> R=1xWkal-00073z-1a U=Debian-exim P=local S=3000",
            "1xWkam-000745-2j <= a@b U=root P=local-bsmtp S=300",
            "no host name found for IP address 127.0.2.99",
        ] {
            assert_eq!(parse(msg.as_bytes(), &c), Event::Other, "{msg}");
        }
        for msg in [
            "1xWkam-000745-2j <= billing@sender.test H=mail-a.sender.test [127.0.2.10] P=esmtp S=479 id=x@vm",
            "1xWkam-000745-2j <= a@b H=x [1.2.3.4] P=esmtpsa X=TLS1.3:TLS_AES_256_GCM_SHA384:256 CV=no A=dovecot_plain:a S=1",
            "1xWkam-000745-2j <= a@b U=u P=local-smtp S=1",
        ] {
            assert_eq!(parse(msg.as_bytes(), &c), Event::Accepted, "{msg}");
        }
    }

    #[test]
    fn inner_timestamps() {
        assert_eq!(strip_inner_timestamp(b"2026-05-28 08:25:35 H=x"), b"H=x");
        assert_eq!(strip_inner_timestamp(b"2026-05-28 08:25:35.123 +0200 [77] H=x"), b"H=x");
        assert_eq!(strip_inner_timestamp(b"H=x"), b"H=x");
    }

    #[test]
    fn continuations_join_first_line() {
        let mut j = EximJoiner::default();
        // log.c write_syslog(): '/' = cut at MAX_SYSLOG_LEN (the line goes on), '\\' =
        // the part ends at a newline of the entry (its line is complete)
        assert_eq!(j.feed(b"h", Some(b"1"), b"[1/3] H=x [1.2.3.4] F=<a@b> rejected RCPT <c@d>: relay "), Joined::Part);
        assert_eq!(
            j.feed(b"h", Some(b"1"), b"[2\\3] not permitted"),
            Joined::Assembled(b"H=x [1.2.3.4] F=<a@b> rejected RCPT <c@d>: relay not permitted".to_vec())
        );
        assert_eq!(j.feed(b"h", Some(b"1"), b"[3/3] Subject: hello"), Joined::Part);
        // the reject-log copy of an after-DATA reject: the first line is whole in part 1
        assert_eq!(
            j.feed(b"h", Some(b"3"), b"[1\\3] 1xWkam-000745-2j H=x [1.2.3.4] F=<a@b> rejected after DATA: spam"),
            Joined::Assembled(b"1xWkam-000745-2j H=x [1.2.3.4] F=<a@b> rejected after DATA: spam".to_vec())
        );
        assert_eq!(j.feed(b"h", Some(b"3"), b"[2\\3] Envelope-from: <a@b>"), Joined::Part);
        assert_eq!(j.feed(b"h", Some(b"3"), b"[3/3] Envelope-to: <c@d>"), Joined::Part);
        // a stray part without its beginning counts nothing
        assert_eq!(j.feed(b"h", Some(b"2"), b"[2/2] tail"), Joined::Part);
        assert_eq!(j.feed(b"h", Some(b"1"), b"plain"), Joined::Whole(b"plain"));
        assert_eq!(split_marker(b"[0/2] x"), None);
        assert_eq!(split_marker(b"[3/2] x"), None);
    }

    #[test]
    fn duplicates_count_once() {
        let mut j = EximJoiner::default();
        let line = b"H=x [1.2.3.4] F=<a@b> rejected RCPT <c@d>: relay not permitted";
        assert!(!j.is_duplicate(b"h", Some(b"9"), line, true));
        assert!(j.is_duplicate(b"h", Some(b"9"), line, true));
        // a third identical line is a new reject
        assert!(!j.is_duplicate(b"h", Some(b"9"), line, true));
        // another line in between breaks the pair
        assert!(!j.is_duplicate(b"h", Some(b"9"), b"SMTP connection from x", false));
        assert!(!j.is_duplicate(b"h", Some(b"9"), line, true));
        j.other_line();
        assert!(!j.is_duplicate(b"h", Some(b"9"), line, true));
        // other process, other host: not duplicates
        assert!(!j.is_duplicate(b"h", Some(b"10"), line, true));
        assert!(!j.is_duplicate(b"g", Some(b"9"), line, true));
    }

    #[test]
    fn joiner_is_bounded() {
        let mut j = EximJoiner::default();
        for pid in 0..(MAX_TRACKED * 2) {
            let pid = pid.to_string();
            j.feed(b"h", Some(pid.as_bytes()), b"[1\\2] x");
        }
        assert!(j.tracked() <= MAX_TRACKED);
        // a complete entry is not kept: only entries under way are tracked (and saved)
        let mut j = EximJoiner::default();
        j.feed(b"h", Some(b"1"), b"[1/2] H=x rejected RCPT <a@b>: relay ");
        assert_eq!(j.tracked(), 1);
        assert!(!j.is_idle());
        assert!(matches!(j.feed(b"h", Some(b"1"), b"[2/2] not permitted"), Joined::Assembled(_)));
        assert_eq!(j.tracked(), 0);
        assert!(j.is_idle());
    }
}
