//! The fuzz targets' checks (`fuzz/fuzz_targets/*.rs`), run in CI on stable Rust:
//! over every input kept in `fuzz/corpus/TARGET/` (inputs that once found a bug;
//! see bench/README.md) and over the hand-picked hostile inputs below. A crash a
//! fuzzer finds is added to `fuzz/corpus/TARGET/` and stays here as a regression.

use std::path::Path;

#[path = "../fuzz/oracles.rs"]
mod oracles;
use oracles::{config, dmarc, envelope, line, spf};

/// Every file of fuzz/corpus/TARGET (none yet is fine: the directory holds only
/// inputs that found bugs).
fn corpus(target: &str, check: fn(&[u8])) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else { return 0 };
    let mut n = 0;
    for e in entries.flatten() {
        let data = std::fs::read(e.path()).unwrap();
        let name = e.path().display().to_string();
        if std::panic::catch_unwind(|| check(&data)).is_err() {
            panic!("{target}: {name} fails again");
        }
        n += 1;
    }
    n
}

/// Lines at the edges of every parser: cut envelopes, lone brackets, huge numbers,
/// invalid UTF-8 inside fields, Exim continuations out of order, CR, NUL.
const HOSTILE_LINES: &[&[u8]] = &[
    b"",
    b"<",
    b"<>",
    b"<22>1",
    b"<22>1 ",
    b"<22>1 2026-05-28T08:25:35Z",
    b"<mail.info>",
    b"May",
    b"May 28 08:25:35",
    b"May 28 08:25:35 ",
    b"May 28 08:25:35 h",
    b"May 28 08:25:35 h p[",
    b"May 28 08:25:35 h p[]:",
    b"May 28 08:25:35 h [1]: x",
    b"May 28 08:25:35 h postfix/smtpd[99999999999999999999999]: NOQUEUE: reject: RCPT from x[1.2.3.4]: 554 5.7.1 <a@nmrc.org>: Relay access denied; to=<a@nmrc.org>",
    b"May 28 08:25:35 h postfix/smtpd[1]: NOQUEUE: reject: RCPT from x[1.2.3.4]: 554 5.",
    b"May 28 08:25:35 h postfix/smtpd[1]: NOQUEUE: reject: RCPT from x[1.2.3.4]: 5",
    b"May 28 08:25:35 h postfix/smtpd[1]: NOQUEUE: reject: RCPT from x[1.2.3.4]: 554 5.7.1 <@>: Relay access denied; to=<@>",
    b"May 28 08:25:35 h postfix/smtpd[1]: NOQUEUE: reject: RCPT from x[1.2.3.4]: 554 5.7.1 <a@.>: Relay access denied; to=<a@.>",
    b"May 28 08:25:35 h postfix/smtpd[1]: NOQUEUE: reject: RCPT from x[1.2.3.4]: 554 5.7.1 <a@\xff\xfe>: Relay access denied; to=<a@\xff\xfe>",
    b"May 28 08:25:35 h postfix/smtpd[1]: warning: x[1.2.3.4]: SASL",
    b"May 28 08:25:35 h sm-mta[1]: x: ruleset=check_rcpt, arg1=<, relay=, reject=",
    b"May 28 08:25:35 h sm-mta[1]: x: reject=5",
    b"May 28 08:25:35 h sm-mta[1]: x: <a@nmrc.org>... ",
    b"May 28 08:25:35 h exim[1]: [2/2] tail without head",
    b"May 28 08:25:35 h exim[1]: [1/2] head H=x [1.2.3.4] rejected RCPT <a@nmrc.org>: relay ",
    b"May 28 08:25:35 h exim[1]: [1/2] head again",
    b"May 28 08:25:35 h exim[1]: [0/0] ",
    b"May 28 08:25:35 h exim[1]: [4294967295/4294967295] x",
    b"May 28 08:25:35 h exim[1]: [99999999999/2] x",
    b"May 28 08:25:35 h exim[1]: [1\\2] x",
    b"May 28 08:25:35 h exim[1]: H=x [1.2.3.4] F=<> rejected RCPT <>: relay not permitted",
    b"May 28 08:25:35 h exim[1]: 2026-05-28 08:25:35",
    b"2026-05-28 08:25:35.123 +0200 [",
    b"2026-05-28 08:25:35.123 +0200 [1] H=x [1.2.3.4] F=<a@b> rejected RCPT <c@nmrc.org>: relay not permitted",
    b"2026-05-28T08:25:35.999999999999999999999+99:99 h postfix/smtpd[1]: x",
    b"2026-05-28T08:25:35+",
    b"\xef\xbb\xbfMay 28 08:25:35 h postfix/smtpd[1]: NOQUEUE: reject:",
    b"May 28 08:25:35 h postfix/smtpd[1]: NOQUEUE: reject: RCPT from x[1.2.3.4]: 554 5.7.1 \x00\r",
    b"\r",
    b"\x00\x00\x00",
];

#[test]
fn line_target_regressions() {
    for l in HOSTILE_LINES {
        line(l);
        envelope(l);
    }
    line(&HOSTILE_LINES.join(&b'\n'));
    // a 64 KiB line (the splitter's cap) through the whole pipeline
    let mut long = b"May 28 08:25:35 h exim[1]: [1/2] H=x [1.2.3.4] rejected RCPT <".to_vec();
    long.resize(64 * 1024, b'a');
    line(&long);
    let n = corpus("line", line) + corpus("envelope", envelope);
    eprintln!("{n} corpus inputs replayed");
}

#[test]
fn record_target_regressions() {
    for t in [
        "",
        "v=spf1",
        "v=spf1 ",
        "v=spf1 include:",
        "v=spf1 redirect=",
        "v=spf1 ip4:1.2.3.4/33 ip6::/129 a/ a// mx//0",
        "v=spf1 exists:%{",
        "v=spf1 exists:%{d99999999999999999999}",
        "v=spf1 exists:%{d0}",
        "v=spf1 exp=%{c}%{r}%{t} exp=x",
        "v=spf1 include:a.example\na.example v=spf1 include:a.example\n",
        "v=spf1 redirect=a.example\na.example v=spf1 redirect=b.example\nb.example v=spf1 redirect=a.example",
        "v=spf1 include:%{o}\nsender.example VOID",
        "v=spf1 ä é 漢",
    ] {
        spf(t.as_bytes());
    }
    for t in [
        "",
        ";",
        "=",
        "v=",
        "v=DMARC1",
        "v=DMARC1;p",
        "v=DMARC1; p=reject; pct=999999999999999",
        "v=DMARC1; p=reject; rua=mailto:",
        "v=DMARC1; p=reject; rua=mailto:a@b!",
        "v=DMARC1; p=reject; rua=mailto:a@b!99999999999999999999t",
        "v=DMARC1; p=reject; rua=,,,",
        "v=DMARC1; p=reject; ri=4294967296",
        "v=DKIM1; p=",
        "v=DKIM1; k=rsa; p=====",
        "v=STSv1; id=",
        "v=TLSRPTv1; rua=",
        "\r\n v=DMARC1; p=none",
    ] {
        dmarc(t.as_bytes());
    }
    let n = corpus("spf", spf) + corpus("dmarc", dmarc);
    eprintln!("{n} corpus inputs replayed");
}

#[test]
fn config_target_regressions() {
    for t in [
        "",
        "[",
        "[maillog]\nmax_hosts = 9223372036854775807\n",
        "[maillog]\nmax_hosts = -9223372036854775808\n",
        "[dns]\ninterval = \"99999999999999999999h\"\n",
        "[dns]\ninterval = \"18446744073709551615s\"\n",
        "[dns]\ntimeout = \"0s\"\ninterval = \"0s\"\n",
        "[web]\nlisten_address = \":99999\"\n",
        "[web]\nlisten_address = \"[::1\"\n",
        "[[dns.domain]]\nname = \"\"\n",
        "[[dns.domain]]\nname = \".\"\n",
        "[maillog]\nlocal_domains = [\"a..b\"]\n",
        "[maillog]\npaths = [\"\"]\n",
        "a = 1\n\n\n",
        "\u{feff}[web]\n",
    ] {
        config(t.as_bytes());
    }
    let n = corpus("config", config);
    eprintln!("{n} corpus inputs replayed");
}
