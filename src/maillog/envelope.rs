//! Envelopes: split a log line into timestamp, host, program, pid and message.
//!
//! The shapes of reasons.md §6, all read by [`parse`]:
//!
//! | shape | example |
//! |---|---|
//! | classic syslog (RFC 3164), day space- or zero-padded | `May  8 08:25:35 host prog[pid]: msg` |
//! | with a facility/priority prefix | `<mail.info> May 28 08:25:35 host prog[pid]: msg`, `<22>May 28 …` |
//! | with a facility.priority token after the timestamp (BSD syslogd `-v`/`-vv`, syslog-ng and rsyslog templates) | `Jun  1 12:00:00 <mail.info> mx1 prog[pid]: msg`, `Jun  1 12:00:00 <2.6> mx1 …` |
//! | RFC 3339 (rsyslog high precision) | `2026-05-28T08:25:35.123456+00:00 host prog[pid]: msg` |
//! | syslog-ng ISO date | `2026-05-28 08:25:35 host prog[pid]: msg` |
//! | RFC 5424 | `<22>1 2026-05-28T08:25:35Z host postfix/smtpd 123 - - msg` |
//! | journal export, no timestamp | `host prog[pid]: msg` |
//! | container, bare | `prog[pid]: msg` |
//! | Exim's own mainlog (no host: `default_host` applies) | `2026-05-28 08:25:35.123 +0200 [1234] msg` |
//!
//! The parser never allocates and never fails loudly: a line it cannot read is
//! `None` (counted as `unparsed`); a line with a timestamp but no program tag is
//! still a log line, of a program we don't know ([`Envelope::program`] empty).

/// A log line split into its parts; every field borrows from the line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Envelope<'a> {
    /// The timestamp as written (empty when the line has none).
    pub timestamp: &'a [u8],
    /// The syslog host field; `None` for bare, container and Exim mainlog lines.
    pub host: Option<&'a [u8]>,
    /// The program tag without the pid (`postfix/smtpd`, `sm-mta`, `exim4`);
    /// `exim` for Exim's own mainlog; empty when the line has no tag.
    pub program: &'a [u8],
    /// The process id, when logged.
    pub pid: Option<&'a [u8]>,
    /// The message after the tag.
    pub message: &'a [u8],
    /// The line came from Exim's own mainlog rather than syslog.
    pub exim_mainlog: bool,
}

const MONTHS: [&[u8; 3]; 12] =
    [b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec"];

/// Splits one line (without its newline) into an [`Envelope`].
pub fn parse(line: &[u8]) -> Option<Envelope<'_>> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut rest = line;
    if rest.first() == Some(&b'<') {
        let close = rest.iter().take(40).position(|&b| b == b'>')?;
        let inside = &rest[1..close];
        let valid = !inside.is_empty()
            && inside.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'.' || *b == b'_' || *b == b'-');
        if !valid {
            return None;
        }
        rest = &rest[close + 1..];
        // RFC 5424: "<PRI>1 " – a version digit right after the priority
        if inside.iter().all(u8::is_ascii_digit) && rest.len() > 2 && rest[0] == b'1' && rest[1] == b' ' {
            return parse_rfc5424(&rest[2..]);
        }
        rest = skip_spaces(rest);
    }

    if let Some((ts, after)) = classic_timestamp(rest) {
        let after = skip_facility_priority(after);
        return Some(host_and_tag(ts, after).unwrap_or(Envelope {
            timestamp: ts,
            host: None,
            program: b"",
            pid: None,
            message: after,
            exim_mainlog: false,
        }));
    }
    if let Some((ts, after, sep)) = iso_timestamp(rest) {
        let after = skip_facility_priority(after);
        if let Some(env) = host_and_tag(ts, after) {
            return Some(env);
        }
        if sep == b' ' {
            return Some(exim_mainlog(ts, after));
        }
        return Some(Envelope {
            timestamp: ts,
            host: None,
            program: b"",
            pid: None,
            message: after,
            exim_mainlog: false,
        });
    }
    // no timestamp: a journal export ("host prog[pid]: msg") or a bare "prog[pid]: msg"
    host_and_tag(b"", rest)
}

/// Skips a `<facility.priority> ` token written between the timestamp and the host:
/// FreeBSD/NetBSD syslogd with `-v` writes the numbers (`<2.6>`), with `-vv` the
/// names (`<mail.info>`, `fprintlog()`: `"<%s.%s> "`); syslog-ng and rsyslog
/// templates with `<$FACILITY.$PRIORITY>` or `<%syslogfacility-text%.%syslogseverity-text%>`
/// write the same. Anything else is left alone (a host name never starts with `<`).
fn skip_facility_priority(s: &[u8]) -> &[u8] {
    if s.first() != Some(&b'<') {
        return s;
    }
    let Some(close) = s.iter().take(24).position(|&b| b == b'>') else { return s };
    let inside = &s[1..close];
    let Some(dot) = memchr::memchr(b'.', inside) else { return s };
    let word = |w: &[u8]| !w.is_empty() && w.iter().all(u8::is_ascii_alphanumeric);
    if !word(&inside[..dot]) || !word(&inside[dot + 1..]) || s.get(close + 1) != Some(&b' ') {
        return s;
    }
    &s[close + 2..]
}

fn skip_spaces(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|&&b| b == b' ').count();
    &s[n..]
}

/// Splits off the first space-delimited token.
fn token(s: &[u8]) -> (&[u8], &[u8]) {
    match memchr::memchr(b' ', s) {
        Some(i) => (&s[..i], &s[i + 1..]),
        None => (s, b""),
    }
}

fn all_digits(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(u8::is_ascii_digit)
}

/// `HH:MM:SS` with optional fraction.
fn is_clock(s: &[u8]) -> bool {
    if s.len() < 8 {
        return false;
    }
    let hms = &s[..8];
    let ok = hms[2] == b':' && hms[5] == b':' && [0, 1, 3, 4, 6, 7].iter().all(|&i| hms[i].is_ascii_digit());
    ok && (s.len() == 8 || (s[8] == b'.' && all_digits(&s[9..])))
}

/// `Mmm dd HH:MM:SS ` (day space- or zero-padded, or a single digit).
fn classic_timestamp(s: &[u8]) -> Option<(&[u8], &[u8])> {
    if s.len() < 15 || s[3] != b' ' || !MONTHS.iter().any(|m| &s[..3] == *m) {
        return None;
    }
    let mut i = 4;
    if s[i] == b' ' {
        i += 1;
    }
    let day_start = i;
    while i < s.len() && s[i].is_ascii_digit() && i - day_start < 2 {
        i += 1;
    }
    if i == day_start || s.get(i) != Some(&b' ') {
        return None;
    }
    i += 1;
    let clock_end = memchr::memchr(b' ', &s[i..]).map_or(s.len(), |n| i + n);
    if !is_clock(&s[i..clock_end]) {
        return None;
    }
    let after = if clock_end < s.len() { &s[clock_end + 1..] } else { b"" };
    Some((&s[..clock_end], after))
}

/// `YYYY-MM-DD[T ]HH:MM:SS[.frac][Z|±HH:MM|±HHMM]`; returns the separator used.
fn iso_timestamp(s: &[u8]) -> Option<(&[u8], &[u8], u8)> {
    if s.len() < 19 {
        return None;
    }
    let date = &s[..10];
    let date_ok =
        date[4] == b'-' && date[7] == b'-' && [0, 1, 2, 3, 5, 6, 8, 9].iter().all(|&i| date[i].is_ascii_digit());
    let sep = s[10];
    if !date_ok || (sep != b'T' && sep != b' ') {
        return None;
    }
    let mut i = 19;
    if !is_clock(&s[11..19]) {
        return None;
    }
    if s.get(i) == Some(&b'.') {
        i += 1;
        while s.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
    }
    match s.get(i) {
        Some(b'Z') => i += 1,
        Some(b'+' | b'-') => {
            let tz = &s[i + 1..];
            if tz.len() >= 5 && tz[2] == b':' && all_digits(&tz[..2]) && all_digits(&tz[3..5]) {
                i += 6;
            } else if tz.len() >= 4 && all_digits(&tz[..4]) {
                i += 5;
            } else {
                return None;
            }
        }
        _ => {}
    }
    match s.get(i) {
        None => Some((&s[..i], b"", sep)),
        Some(b' ') => Some((&s[..i], &s[i + 1..], sep)),
        _ => None,
    }
}

/// Splits a program tag `prog[pid]:` or `prog:`; `None` if the token is not a tag.
fn split_tag(tag: &[u8]) -> Option<(&[u8], Option<&[u8]>)> {
    let tag = tag.strip_suffix(b":")?;
    if tag.is_empty() {
        return None;
    }
    if let Some(body) = tag.strip_suffix(b"]") {
        let open = memchr::memrchr(b'[', body)?;
        let pid = &body[open + 1..];
        let prog = &body[..open];
        if prog.is_empty() || !all_digits(pid) {
            return None;
        }
        return Some((prog, Some(pid)));
    }
    if tag.contains(&b'[') || tag.contains(&b']') {
        return None;
    }
    Some((tag, None))
}

/// `host prog[pid]: msg` or `prog[pid]: msg`.
fn host_and_tag<'a>(ts: &'a [u8], s: &'a [u8]) -> Option<Envelope<'a>> {
    let (first, after_first) = token(s);
    if first.is_empty() {
        return None;
    }
    if let Some((program, pid)) = split_tag(first) {
        return Some(Envelope { timestamp: ts, host: None, program, pid, message: after_first, exim_mainlog: false });
    }
    let (second, message) = token(after_first);
    let (program, pid) = split_tag(second)?;
    Some(Envelope { timestamp: ts, host: Some(first), program, pid, message, exim_mainlog: false })
}

/// Exim's own mainlog after its date: optional ` +ZZZZ` zone and `[pid]`.
fn exim_mainlog<'a>(ts: &'a [u8], s: &'a [u8]) -> Envelope<'a> {
    let mut rest = s;
    if rest.len() >= 5
        && matches!(rest[0], b'+' | b'-')
        && all_digits(&rest[1..5])
        && rest.get(5).is_none_or(|&b| b == b' ')
    {
        rest = rest.get(6..).unwrap_or(b"");
    }
    let mut pid = None;
    if rest.first() == Some(&b'[')
        && let Some(close) = memchr::memchr(b']', rest)
        && all_digits(&rest[1..close])
        && rest.get(close + 1).is_none_or(|&b| b == b' ')
    {
        pid = Some(&rest[1..close]);
        rest = rest.get(close + 2..).unwrap_or(b"");
    }
    Envelope { timestamp: ts, host: None, program: b"exim", pid, message: rest, exim_mainlog: true }
}

/// RFC 5424 after `<PRI>1 `: `TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD [MSG]`.
fn parse_rfc5424(s: &[u8]) -> Option<Envelope<'_>> {
    let (timestamp, s) = token(s);
    let (host, s) = token(s);
    let (app, s) = token(s);
    let (procid, s) = token(s);
    let (_msgid, s) = token(s);
    if timestamp.is_empty() || host.is_empty() || app.is_empty() || procid.is_empty() {
        return None;
    }
    let message = skip_structured_data(s)?;
    let message = message.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(message);
    // rsyslog's RFC 5424 templates write "%STRUCTURED-DATA% %msg%", and the msg of a
    // message it parsed as RFC 3164 keeps the space after the tag: "- -  text"
    let message = skip_spaces(message);
    let nil = |v: &'_ [u8]| v != b"-";
    Some(Envelope {
        timestamp: if nil(timestamp) { timestamp } else { b"" },
        host: nil(host).then_some(host),
        program: if nil(app) { app } else { b"" },
        pid: nil(procid).then_some(procid),
        message,
        exim_mainlog: false,
    })
}

/// Skips RFC 5424 STRUCTURED-DATA (`-` or `[id k="v"]…`) and the space after it.
fn skip_structured_data(s: &[u8]) -> Option<&[u8]> {
    if let Some(rest) = s.strip_prefix(b"-") {
        return Some(rest.strip_prefix(b" ").unwrap_or(rest));
    }
    let mut i = 0;
    while s.get(i) == Some(&b'[') {
        let mut in_quotes = false;
        i += 1;
        loop {
            match *s.get(i)? {
                b'\\' if in_quotes => i += 1,
                b'"' => in_quotes = !in_quotes,
                b']' if !in_quotes => break,
                _ => {}
            }
            i += 1;
        }
        i += 1;
    }
    if i == 0 {
        return None;
    }
    let rest = &s[i..];
    Some(rest.strip_prefix(b" ").unwrap_or(rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(line: &str) -> Envelope<'_> {
        parse(line.as_bytes()).unwrap_or_else(|| panic!("unparsed: {line}"))
    }

    fn s(b: &[u8]) -> &str {
        std::str::from_utf8(b).unwrap()
    }

    #[test]
    fn shapes() {
        // (line, timestamp, host, program, pid, message, exim_mainlog)
        type Row<'a> = (&'a str, &'a str, Option<&'a str>, &'a str, Option<&'a str>, &'a str, bool);
        let rows: &[Row] = &[
            (
                "May 28 08:25:35 rigor-mortis sm-mta[151721]: 04SDPXC5151721: ruleset=check_rcpt",
                "May 28 08:25:35",
                Some("rigor-mortis"),
                "sm-mta",
                Some("151721"),
                "04SDPXC5151721: ruleset=check_rcpt",
                false,
            ),
            (
                "May  8 08:25:35 talon postfix/smtpd[1]: connect from x[1.2.3.4]",
                "May  8 08:25:35",
                Some("talon"),
                "postfix/smtpd",
                Some("1"),
                "connect from x[1.2.3.4]",
                false,
            ),
            (
                "May 08 08:25:35 talon postfix-mx/submission/smtpd[1]: m",
                "May 08 08:25:35",
                Some("talon"),
                "postfix-mx/submission/smtpd",
                Some("1"),
                "m",
                false,
            ),
            ("<mail.info> May 28 08:25:35 h exim4[5]: m", "May 28 08:25:35", Some("h"), "exim4", Some("5"), "m", false),
            ("<22>May 28 08:25:35 h sendmail[5]: m", "May 28 08:25:35", Some("h"), "sendmail", Some("5"), "m", false),
            // BSD syslogd -vv / -v: the facility.priority token after the timestamp
            (
                "Jun  1 12:00:00 <mail.info> mx1 postfix/smtpd[123]: m",
                "Jun  1 12:00:00",
                Some("mx1"),
                "postfix/smtpd",
                Some("123"),
                "m",
                false,
            ),
            ("Jun  1 12:00:00 <2.6> mx1 sm-mta[7]: m", "Jun  1 12:00:00", Some("mx1"), "sm-mta", Some("7"), "m", false),
            (
                "2026-06-01T12:00:00Z <mail.err> mx1 exim[7]: m",
                "2026-06-01T12:00:00Z",
                Some("mx1"),
                "exim",
                Some("7"),
                "m",
                false,
            ),
            // not a facility.priority token: no dot, or no space after it
            (
                "Jun  1 12:00:00 <mail> mx1 sm-mta[7]: m",
                "Jun  1 12:00:00",
                None,
                "",
                None,
                "<mail> mx1 sm-mta[7]: m",
                false,
            ),
            (
                "2026-05-28T08:25:35.123456+00:00 talon postfix/qmgr[9]: ABC: removed",
                "2026-05-28T08:25:35.123456+00:00",
                Some("talon"),
                "postfix/qmgr",
                Some("9"),
                "ABC: removed",
                false,
            ),
            (
                "2026-05-28T08:25:35Z talon postfix/qmgr[9]: x",
                "2026-05-28T08:25:35Z",
                Some("talon"),
                "postfix/qmgr",
                Some("9"),
                "x",
                false,
            ),
            (
                "2026-05-28 08:25:35 talon postfix/qmgr[9]: x",
                "2026-05-28 08:25:35",
                Some("talon"),
                "postfix/qmgr",
                Some("9"),
                "x",
                false,
            ),
            (
                "<22>1 2026-05-28T08:25:35.1Z talon postfix/smtpd 77 - - NOQUEUE: reject",
                "2026-05-28T08:25:35.1Z",
                Some("talon"),
                "postfix/smtpd",
                Some("77"),
                "NOQUEUE: reject",
                false,
            ),
            (
                "<22>1 2026-05-28T08:25:35Z talon sm-mta 77 ID1 [exampleSDID@32473 iut=\"3\" x=\"a]b\"] \u{feff}hello",
                "2026-05-28T08:25:35Z",
                Some("talon"),
                "sm-mta",
                Some("77"),
                "hello",
                false,
            ),
            ("<22>1 - - exim - - - msg", "", None, "exim", None, "msg", false),
            (
                "<22>1 2026-05-28T08:25:35+00:00 talon postfix/smtpd 77 - -  NOQUEUE: reject",
                "2026-05-28T08:25:35+00:00",
                Some("talon"),
                "postfix/smtpd",
                Some("77"),
                "NOQUEUE: reject",
                false,
            ),
            ("talon postfix/smtpd[3]: m", "", Some("talon"), "postfix/smtpd", Some("3"), "m", false),
            ("postfix/smtpd[3]: m", "", None, "postfix/smtpd", Some("3"), "m", false),
            ("exim: m", "", None, "exim", None, "m", false),
            (
                "2026-05-28 08:25:35 1xWkam-000745-2j <= a@b H=x [1.2.3.4] P=esmtp S=1",
                "2026-05-28 08:25:35",
                None,
                "exim",
                None,
                "1xWkam-000745-2j <= a@b H=x [1.2.3.4] P=esmtp S=1",
                true,
            ),
            (
                "2026-05-28 08:25:35.123 +0200 [1234] H=x [1.2.3.4] F=<a@b> rejected RCPT <c@d>: no",
                "2026-05-28 08:25:35.123",
                None,
                "exim",
                Some("1234"),
                "H=x [1.2.3.4] F=<a@b> rejected RCPT <c@d>: no",
                true,
            ),
            (
                "2026-05-28 08:25:35 [77] SMTP connection from [1.2.3.4]",
                "2026-05-28 08:25:35",
                None,
                "exim",
                Some("77"),
                "SMTP connection from [1.2.3.4]",
                true,
            ),
            (
                "May 28 08:25:35 host last message repeated 3 times",
                "May 28 08:25:35",
                None,
                "",
                None,
                "host last message repeated 3 times",
                false,
            ),
        ];
        for (line, ts, host, prog, pid, msg, mainlog) in rows {
            let e = env(line);
            assert_eq!(s(e.timestamp), *ts, "timestamp of {line}");
            assert_eq!(e.host.map(s), *host, "host of {line}");
            assert_eq!(s(e.program), *prog, "program of {line}");
            assert_eq!(e.pid.map(s), *pid, "pid of {line}");
            assert_eq!(s(e.message), *msg, "message of {line}");
            assert_eq!(e.exim_mainlog, *mainlog, "mainlog of {line}");
        }
    }

    #[test]
    fn unreadable_lines() {
        for line in ["", "garbage", "hello world", "<>x", "<a b> May", "a b c: d", "[123]: x", "x[]: y"] {
            assert_eq!(parse(line.as_bytes()), None, "{line:?}");
        }
    }

    #[test]
    fn carriage_return_is_dropped() {
        assert_eq!(env("h p[1]: m\r").message, b"m");
    }
}
