//! Property tests: no input panics the envelope parser, the processor (every MTA
//! parser behind it) or the line splitter. Inputs are arbitrary bytes, and arbitrary
//! bytes spliced into real line prefixes so the MTA parsers' deeper paths run.
//! The case counts are modest so the file runs in a few seconds.

use std::sync::{Arc, OnceLock};

use mailroute_exporter::maillog::Outcome;
use mailroute_exporter::maillog::envelope;
use mailroute_exporter::maillog::processor::{MailState, Processor};
use mailroute_exporter::maillog::tail::{LineSplitter, MAX_LINE};
use mailroute_exporter::metrics::{Metrics, SharedLabel};
use proptest::prelude::*;

/// Real prefixes (envelope + the start of a message each parser reads).
const PREFIXES: &[&str] = &[
    "May 28 08:25:35 h postfix/smtpd[1]: NOQUEUE: reject: ",
    "May 28 08:25:35 h postfix/smtpd[1]: NOQUEUE: reject: RCPT from x[192.0.2.1]: 554 5.7.1 <",
    "May 28 08:25:35 h postfix/smtpd[1]: warning: ",
    "May 28 08:25:35 h postfix/smtpd[1]: warning: x[192.0.2.1]: SASL ",
    "May 28 08:25:35 h postfix/cleanup[1]: 3D5E051240E: reject: header ",
    "May 28 08:25:35 h postfix/cleanup[1]: 3D5E051240E: milter-reject: END-OF-MESSAGE from ",
    "May 28 08:25:35 h postfix/postscreen[1]: reject: connect from ",
    "May 28 08:25:35 h postfix/smtpd[1]: proxy-reject: ",
    "May 28 08:25:35 h sm-mta[1]: ",
    "May 28 08:25:35 h sm-mta[1]: 04SDPXC5151721: ruleset=check_rcpt, arg1=<",
    "May 28 08:25:35 h sm-mta[1]: 04SDPXC5151721: Milter: ",
    "May 28 08:25:35 h sm-mta[1]: 04SDPXC5151721: reject=",
    "May 28 08:25:35 h sm-mta[1]: 04SDPXC5151721: <",
    "May 28 08:25:35 h sm-mta[1]: Milter: connect: ",
    "May 28 08:25:35 h exim[1]: ",
    "May 28 08:25:35 h exim[1]: [1\\2] ",
    "May 28 08:25:35 h exim[1]: [2/2] ",
    "May 28 08:25:35 h exim[1]: 2026-05-28 08:25:35.123 +0200 [1] ",
    "May 28 08:25:35 h exim[1]: H=x [192.0.2.1] F=<a@b> rejected ",
    "May 28 08:25:35 h exim[1]: SMTP protocol synchronization error (x): rejected ",
    "May 28 08:25:35 h exim[1]: rejected MAIL FROM:<",
    "2026-05-28 08:25:35.123 +0200 [1] ",
    "2026-05-28T08:25:35.123+00:00 h postfix/smtpd[1]: ",
    "<22>1 2026-05-28T08:25:35Z h postfix/smtpd 1 - [",
    "<mail.info> May 28 08:25:35 h ",
    "<",
    "[",
];

/// Words the parsers look for, to splice between random bytes.
const WORDS: &[&str] = &[
    "reject: ",
    "rejected ",
    "temporarily ",
    "; from=<",
    "; to=<",
    "to=<",
    ">: ",
    ">... ",
    "... ",
    ": ",
    "H=",
    "U=",
    " from ",
    "reject=",
    "relay=",
    "ruleset=",
    "Milter: ",
    "RCPT ",
    "MAIL FROM:<",
    "connection",
    "[1/2] ",
    "[1\\2] ",
    " [rejected]",
    " authenticator failed for ",
    "SMTP call from ",
    " dropped: ",
    "550 5.7.1 ",
    "4.2.2 ",
    "5.",
    "@",
    "\"",
    "\\",
    "\r",
    "\u{feff}",
];

fn state() -> Arc<MailState> {
    static STATE: OnceLock<Arc<MailState>> = OnceLock::new();
    STATE
        .get_or_init(|| {
            Arc::new(MailState::new(Arc::new(Metrics::for_replay()), 8, "default-host", &["nmrc.org".to_string()]))
        })
        .clone()
}

fn spliced() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::sample::select(PREFIXES),
        prop::collection::vec(
            prop_oneof![
                prop::collection::vec(any::<u8>(), 0..24),
                prop::sample::select(WORDS).prop_map(|w| w.as_bytes().to_vec()),
                "[ -~]{0,24}".prop_map(String::into_bytes),
            ],
            0..12,
        ),
    )
        .prop_map(|(prefix, parts)| {
            let mut line = prefix.as_bytes().to_vec();
            for p in parts {
                line.extend_from_slice(&p);
            }
            line.retain(|&b| b != b'\n');
            line
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn envelope_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = envelope::parse(&bytes);
    }

    #[test]
    fn envelope_fields_borrow_from_the_line(line in spliced()) {
        if let Some(env) = envelope::parse(&line) {
            let range = line.as_ptr_range();
            // (the program of an Exim mainlog line is the constant "exim")
            for field in [env.timestamp, env.message, env.host.unwrap_or(b"")] {
                prop_assert!(field.is_empty() || range.contains(&field.as_ptr()));
            }
        }
    }

    #[test]
    fn processor_never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let mut p = Processor::new(state(), &SharedLabel::new("proptest"));
        let _ = p.line(&bytes);
    }

    #[test]
    fn processor_never_panics_on_spliced_lines(lines in prop::collection::vec(spliced(), 1..6)) {
        // several lines through one processor: Exim continuation and duplicate state
        let mut p = Processor::new(state(), &SharedLabel::new("proptest"));
        for line in &lines {
            let outcome = p.line(line);
            prop_assert!(Outcome::ALL.contains(&outcome));
        }
    }

    #[test]
    fn splitter_never_panics_and_keeps_every_byte(
        chunks in prop::collection::vec(
            prop_oneof![
                prop::collection::vec(any::<u8>(), 0..64),
                prop::collection::vec(prop_oneof![Just(b'\n'), Just(b'x'), any::<u8>()], 0..64),
            ],
            0..16,
        )
    ) {
        let mut splitter = LineSplitter::default();
        let mut out: Vec<(Vec<u8>, bool)> = Vec::new();
        for c in &chunks {
            splitter.feed(c, &mut |l, t| out.push((l.to_vec(), t)));
        }
        splitter.flush(&mut |l, t| out.push((l.to_vec(), t)));
        let input: Vec<u8> = chunks.concat();
        let newlines = input.iter().filter(|&&b| b == b'\n').count();
        let trailing = !input.is_empty() && *input.last().unwrap() != b'\n';
        prop_assert_eq!(out.len(), newlines + usize::from(trailing));
        for (line, truncated) in &out {
            prop_assert!(!line.contains(&b'\n'));
            prop_assert!(line.len() <= MAX_LINE);
            prop_assert!(!truncated, "no line here reaches MAX_LINE");
        }
        // without truncation the lines are the input, newline-separated
        let mut joined = Vec::new();
        for (i, (line, _)) in out.iter().enumerate() {
            if i > 0 {
                joined.push(b'\n');
            }
            joined.extend_from_slice(line);
        }
        let expected = input.strip_suffix(b"\n").unwrap_or(&input);
        prop_assert_eq!(joined, expected.to_vec());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Lines around MAX_LINE, fed in arbitrary chunk sizes: every emitted line is at
    /// most MAX_LINE long and flagged when it was cut; the next line starts clean.
    #[test]
    fn splitter_cuts_long_lines(len in (MAX_LINE - 3)..(MAX_LINE + 3), chunk in 1usize..9000, byte in any::<u8>()) {
        let byte = if byte == b'\n' { b'y' } else { byte };
        let mut input = vec![byte; len];
        input.extend_from_slice(b"\nnext\n");
        let mut splitter = LineSplitter::default();
        let mut out: Vec<(usize, bool, Vec<u8>)> = Vec::new();
        for c in input.chunks(chunk) {
            splitter.feed(c, &mut |l, t| out.push((l.len(), t, if l.len() < 16 { l.to_vec() } else { Vec::new() })));
        }
        splitter.flush(&mut |l, t| out.push((l.len(), t, l.to_vec())));
        prop_assert_eq!(out.len(), 2);
        prop_assert_eq!(out[0].0, len.min(MAX_LINE));
        prop_assert_eq!(out[0].1, len > MAX_LINE);
        prop_assert_eq!(&out[1].2, &b"next".to_vec());
        prop_assert!(!out[1].1);
    }
}
