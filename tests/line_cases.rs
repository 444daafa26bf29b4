//! Line-case tables: `tests/fixtures/maillog/cases/{postfix,sendmail,exim}.tsv`.
//!
//! Each row is one raw log line with what reasons.md says must come of it: the
//! outcome, and for a reject its stage, reason, class and recipient domain (and the
//! host label). Rows run through the library's [`Processor`] (a fresh one per row,
//! or one per named group for rows that need state: Exim duplicates and `[n/m]`
//! continuations) and the counters it moved (the difference before and after the
//! row) are compared with the row.
//!
//! The recipient domain is checked twice: through the parser's `Reject` (the same
//! dispatch as the processor) and through the misroute counter, since every domain
//! named in a table is configured as a local domain: a `relay_denied` row with a
//! domain must count exactly one misroute for it, any other row none.
//!
//! Every failing row is reported (file:line, the row, and what came out), not only
//! the first.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use mailroute_exporter::maillog::exim::{self, EximJoiner, Joined};
use mailroute_exporter::maillog::processor::{MailState, Processor};
use mailroute_exporter::maillog::reason::Classifier;
use mailroute_exporter::maillog::{Event, Reason, Stage, envelope, postfix, sendmail};
use mailroute_exporter::metrics::{Metrics, SharedLabel};

const DEFAULT_HOST: &str = "default-host";

#[derive(Debug, Clone)]
struct Row {
    at: String,
    group: String,
    host: String,
    outcome: String,
    stage: String,
    reason: String,
    class: String,
    domain: String,
    line: String,
}

fn load(file: &str) -> Vec<Row> {
    let path = format!("{}/tests/fixtures/maillog/cases/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut rows = Vec::new();
    for (i, raw) in text.split('\n').enumerate() {
        if raw.is_empty() || raw.starts_with('#') {
            continue;
        }
        let f: Vec<&str> = raw.splitn(8, '\t').collect();
        assert_eq!(f.len(), 8, "{file}:{}: expected 8 tab-separated fields: {raw:?}", i + 1);
        rows.push(Row {
            at: format!("{file}:{}", i + 1),
            group: f[0].into(),
            host: f[1].into(),
            outcome: f[2].into(),
            stage: f[3].into(),
            reason: f[4].into(),
            class: f[5].into(),
            domain: f[6].into(),
            line: f[7].into(),
        });
    }
    rows
}

/// Reads the recipient of a line the way the processor dispatches it, keeping the
/// Exim continuation state of one group.
struct Probe<'c> {
    classifier: &'c Classifier,
    joiner: EximJoiner,
}

impl<'c> Probe<'c> {
    fn new(classifier: &'c Classifier) -> Probe<'c> {
        Probe { classifier, joiner: EximJoiner::default() }
    }

    /// `Some(domain)` when the line yields a reject event (domain `None` when the
    /// reject names no recipient domain); `None` when it yields no reject.
    fn recipient_domain(&mut self, line: &[u8]) -> Option<Option<String>> {
        let env = envelope::parse(line)?;
        let domain_of = |e: Event<'_>| match e {
            Event::Reject(r) => Some(r.recipient_domain()),
            _ => None,
        };
        if postfix::is_postfix(env.program) {
            return domain_of(postfix::parse(env.program, env.message, self.classifier));
        }
        if sendmail::is_sendmail(env.program) {
            return domain_of(sendmail::parse(env.message, self.classifier));
        }
        if exim::is_exim(env.program) {
            let msg = if env.exim_mainlog { env.message } else { exim::strip_inner_timestamp(env.message) };
            return match self.joiner.feed(env.host.unwrap_or(b""), env.pid, msg) {
                Joined::Part => None,
                Joined::Whole(m) => domain_of(exim::parse(m, self.classifier)),
                Joined::Assembled(buf) => domain_of(exim::parse(&buf, self.classifier)),
            };
        }
        None
    }
}

type Counts = BTreeMap<Vec<String>, u64>;

fn snapshot(state: &MailState) -> (Counts, Counts, Counts) {
    let t = state.tally();
    let rejects = t
        .rejects
        .iter()
        .map(|(l, n)| {
            (
                vec![
                    l.host.as_str().to_string(),
                    l.mta.as_str().to_string(),
                    l.stage.as_str().to_string(),
                    l.reason.as_str().to_string(),
                    l.class.as_str().to_string(),
                ],
                *n,
            )
        })
        .collect();
    let misroutes = t
        .misroutes
        .iter()
        .map(|(l, n)| (vec![l.host.as_str().to_string(), l.domain.as_str().to_string()], *n))
        .collect();
    let accepted =
        t.accepted.iter().map(|(l, n)| (vec![l.host.as_str().to_string(), l.mta.as_str().to_string()], *n)).collect();
    (rejects, misroutes, accepted)
}

fn delta(before: &Counts, after: &Counts) -> Counts {
    after
        .iter()
        .filter_map(|(k, n)| {
            let d = n - before.get(k).copied().unwrap_or(0);
            (d > 0).then(|| (k.clone(), d))
        })
        .collect()
}

fn one(labels: &[&str]) -> Counts {
    let mut m = Counts::new();
    if !labels.is_empty() {
        m.insert(labels.iter().map(|s| s.to_string()).collect(), 1);
    }
    m
}

/// Runs a table; returns the failures (empty = all rows as expected).
fn run_table(file: &str, mta: &str) -> (Vec<Row>, Vec<String>) {
    let rows = load(file);
    let domains: Vec<String> = rows
        .iter()
        .filter(|r| r.domain != "-")
        .map(|r| r.domain.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut failures = Vec::new();
    // one shared state (hosts, domains, counters); the counters are compared as
    // differences before and after each row
    let state = Arc::new(MailState::new(Arc::new(Metrics::for_replay()), 64, DEFAULT_HOST, &domains));
    let classifier = Classifier::new();
    let mut i = 0;
    while i < rows.len() {
        // a named group: consecutive rows with the same name share one processor
        let mut end = i + 1;
        if rows[i].group != "-" {
            while end < rows.len() && rows[end].group == rows[i].group {
                end += 1;
            }
        }
        let mut processor = Processor::new(state.clone(), &SharedLabel::new("cases"));
        let mut probe = Probe::new(&classifier);
        for row in &rows[i..end] {
            let before = snapshot(&state);
            let outcome = processor.line(row.line.as_bytes());
            let after = snapshot(&state);
            let probed = probe.recipient_domain(row.line.as_bytes());
            let rejects = delta(&before.0, &after.0);
            let misroutes = delta(&before.1, &after.1);
            let accepted = delta(&before.2, &after.2);
            let mut problems = Vec::new();
            if outcome.as_str() != row.outcome {
                problems.push(format!("outcome {} (want {})", outcome.as_str(), row.outcome));
            }
            let want_rejects = if row.outcome == "reject" {
                one(&[&row.host, mta, &row.stage, &row.reason, &row.class])
            } else {
                Counts::new()
            };
            if rejects != want_rejects {
                problems.push(format!("rejects counted {rejects:?} (want {want_rejects:?})"));
            }
            let want_accepted = if row.outcome == "accepted" { one(&[&row.host, mta]) } else { Counts::new() };
            if accepted != want_accepted {
                problems.push(format!("accepted counted {accepted:?} (want {want_accepted:?})"));
            }
            let want_misroutes = if row.outcome == "reject" && row.reason == "relay_denied" && row.domain != "-" {
                one(&[&row.host, &row.domain])
            } else {
                Counts::new()
            };
            if misroutes != want_misroutes {
                problems.push(format!("misroutes counted {misroutes:?} (want {want_misroutes:?})"));
            }
            if row.outcome == "reject" {
                let want = (row.domain != "-").then(|| row.domain.clone());
                match &probed {
                    Some(got) if *got == want => {}
                    Some(got) => problems.push(format!("recipient domain {got:?} (want {want:?})")),
                    None => problems.push("the parser yields no reject event for the domain check".to_string()),
                }
            }
            if !problems.is_empty() {
                failures.push(format!(
                    "{} [{}]\n    line: {}\n    {}",
                    row.at,
                    row.group,
                    row.line,
                    problems.join("\n    ")
                ));
            }
        }
        i = end;
    }
    (rows, failures)
}

/// Checks the table covers what it must: every reason (but `exempt`) at least twice
/// and every stage at least once among its reject rows.
fn coverage(file: &str, rows: &[Row], exempt: &[Reason]) -> Vec<String> {
    let mut reasons: BTreeMap<&str, usize> = BTreeMap::new();
    let mut stages: BTreeSet<&str> = BTreeSet::new();
    for r in rows.iter().filter(|r| r.outcome == "reject") {
        *reasons.entry(r.reason.as_str()).or_default() += 1;
        stages.insert(r.stage.as_str());
    }
    let mut missing = Vec::new();
    for reason in Reason::ALL {
        let n = reasons.get(reason.as_str()).copied().unwrap_or(0);
        if exempt.contains(reason) {
            if n != 0 {
                missing.push(format!("{file}: reason {reason} is declared impossible but has {n} rows"));
            }
        } else if n < 2 {
            missing.push(format!("{file}: reason {reason} has {n} reject rows, want at least 2"));
        }
    }
    for stage in Stage::ALL {
        if !stages.contains(stage.as_str()) {
            missing.push(format!("{file}: no reject row at stage {stage}"));
        }
    }
    for outcome in ["reject", "mta_other", "accepted"] {
        if !rows.iter().any(|r| r.outcome == outcome) {
            missing.push(format!("{file}: no {outcome} row"));
        }
    }
    missing
}

fn check(file: &str, mta: &str, exempt: &[Reason]) {
    let (rows, mut failures) = run_table(file, mta);
    failures.extend(coverage(file, &rows, exempt));
    assert!(failures.is_empty(), "{} of {} rows/checks failed:\n{}", failures.len(), rows.len(), failures.join("\n"));
}

#[test]
fn postfix_cases() {
    check("postfix.tsv", "postfix", &[]);
}

#[test]
fn sendmail_cases() {
    // Sendmail never refuses a client with a size or mailbox-full reply it logs as
    // a reject (see the comment at the top of sendmail.tsv).
    check("sendmail.tsv", "sendmail", &[Reason::Size, Reason::MailboxFull]);
}

#[test]
fn exim_cases() {
    check("exim.tsv", "exim", &[]);
}

/// `tests/fixtures/maillog/envelopes.log`: the same misroute reject in every
/// envelope shape of reasons.md §6 must count as the same reject, with the host
/// from the line (or default_host) and a misroute for nmrc.org.
#[test]
fn envelope_variants() {
    let path = format!("{}/tests/fixtures/maillog/envelopes.log", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap();
    let mut expect: Option<(String, String)> = None;
    let mut failures = Vec::new();
    let mut lines = 0;
    for (i, line) in text.lines().enumerate() {
        if let Some(rest) = line.strip_prefix("# expect ") {
            let (fields, _) = rest.split_once(':').expect("'# expect host=H mta=M: why'");
            let mut host = None;
            let mut mta = None;
            for f in fields.split_whitespace() {
                if let Some(v) = f.strip_prefix("host=") {
                    host = Some(v.to_string());
                }
                if let Some(v) = f.strip_prefix("mta=") {
                    mta = Some(v.to_string());
                }
            }
            expect = Some((host.expect("host="), mta.expect("mta=")));
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (host, mta) =
            expect.take().unwrap_or_else(|| panic!("envelopes.log:{}: no '# expect' before the line", i + 1));
        lines += 1;
        let state =
            Arc::new(MailState::new(Arc::new(Metrics::for_replay()), 64, DEFAULT_HOST, &["nmrc.org".to_string()]));
        let mut p = Processor::new(state.clone(), &SharedLabel::new("envelopes"));
        let outcome = p.line(line.as_bytes());
        let (rejects, misroutes, _) = snapshot(&state);
        let want_rejects = one(&[&host, &mta, "rcpt", "relay_denied", "permanent"]);
        let want_misroutes = one(&[&host, "nmrc.org"]);
        if outcome.as_str() != "reject" || rejects != want_rejects || misroutes != want_misroutes {
            failures.push(format!(
                "envelopes.log:{}: {line}\n    outcome {}, rejects {rejects:?} (want {want_rejects:?}), misroutes {misroutes:?} (want {want_misroutes:?})",
                i + 1,
                outcome.as_str()
            ));
        }
    }
    assert!(lines >= 19, "only {lines} lines read");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
