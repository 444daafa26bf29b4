//! `replay FILE...`: read log files once, start to end, and print the counters the
//! exporter would have exported — as a table, OpenMetrics text, or JSON.

use std::fmt::Write as _;
use std::io::Read;
use std::sync::Arc;

use crate::cli::ReplayOutput;
use crate::config::Config;
use crate::maillog::processor::{MailState, Processor, Tally};
use crate::maillog::source::source_name;
use crate::maillog::tail::read_all;
use crate::metrics::{Metrics, SharedLabel};

/// The result of a replay: the counters, and the registry to render them.
pub struct Replay {
    pub state: Arc<MailState>,
}

/// Reads every file in turn (`-` = standard input). An unreadable file is an error
/// naming it; lines that cannot be parsed are counted, never fatal.
pub fn run(config: &Config, files: &[String]) -> Result<Replay, String> {
    let metrics = Arc::new(Metrics::for_replay());
    let state = Arc::new(MailState::new(
        metrics,
        config.maillog.max_hosts,
        &config.maillog.default_host,
        &config.misroute_domains(),
    ));
    for path in files {
        let name = source_name(path);
        let mut processor = Processor::new(state.clone(), &SharedLabel::new(&name));
        let counters = processor.counters().clone();
        let mut emit = |line: &[u8], truncated: bool| {
            if truncated {
                counters.truncated.inc();
            }
            processor.line(line);
        };
        let input: Box<dyn Read> = if path == "-" {
            Box::new(std::io::stdin().lock())
        } else {
            Box::new(std::fs::File::open(path).map_err(|e| format!("{path}: {e}"))?)
        };
        read_all(input, &mut emit).map_err(|e| format!("{path}: {e}"))?;
    }
    Ok(Replay { state })
}

impl Replay {
    pub fn render(&self, output: ReplayOutput) -> String {
        match output {
            ReplayOutput::Openmetrics => sorted_samples(&self.state.metrics.encode_openmetrics()),
            ReplayOutput::Json => {
                let mut s = serde_json::to_string_pretty(&json(&self.state.tally())).unwrap_or_default();
                s.push('\n');
                s
            }
            ReplayOutput::Text => table(&self.state.tally()),
        }
    }
}

/// Sorts the samples within each metric family. prometheus-client renders a
/// family's series in hash-map order, which changes from run to run; replay output
/// must depend on the input only (golden files are compared byte for byte).
fn sorted_samples(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut samples: Vec<&str> = Vec::new();
    let flush = |samples: &mut Vec<&str>, out: &mut String| {
        samples.sort_unstable();
        for s in samples.drain(..) {
            out.push_str(s);
            out.push('\n');
        }
    };
    for line in text.lines() {
        if line.starts_with('#') {
            flush(&mut samples, &mut out);
            out.push_str(line);
            out.push('\n');
        } else {
            samples.push(line);
        }
    }
    flush(&mut samples, &mut out);
    out
}

fn json(t: &Tally) -> serde_json::Value {
    use serde_json::json;
    json!({
        "rejects": t.rejects.iter().map(|(l, n)| json!({
            "host": l.host, "mta": l.mta, "stage": l.stage, "reason": l.reason, "class": l.class, "count": n,
        })).collect::<Vec<_>>(),
        "misroutes": t.misroutes.iter().map(|(l, n)| json!({"host": l.host, "domain": l.domain, "count": n})).collect::<Vec<_>>(),
        "accepted": t.accepted.iter().map(|(l, n)| json!({"host": l.host, "mta": l.mta, "count": n})).collect::<Vec<_>>(),
        "lines": t.lines.iter().filter(|(_, _, n)| *n > 0).map(|(s, o, n)| json!({"source": s, "outcome": o, "count": n})).collect::<Vec<_>>(),
        "truncated_lines": t.sources.iter().map(|(s, _, tr)| json!({"source": s, "count": tr})).collect::<Vec<_>>(),
    })
}

/// Columns padded to their widest cell.
fn write_table(out: &mut String, title: &str, header: &[&str], rows: &[Vec<String>]) {
    let _ = writeln!(out, "{title}");
    if rows.is_empty() {
        let _ = writeln!(out, "  (none)\n");
        return;
    }
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.len());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::from(" ");
        for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
            // right-align the last (count) column
            if i + 1 == cells.len() {
                let _ = write!(s, " {c:>w$}");
            } else {
                let _ = write!(s, " {c:<w$}");
            }
        }
        s.trim_end().to_string()
    };
    let _ = writeln!(out, "{}", line(header.to_vec()));
    for r in rows {
        let _ = writeln!(out, "{}", line(r.iter().map(String::as_str).collect()));
    }
    out.push('\n');
}

fn table(t: &Tally) -> String {
    let mut out = String::new();
    let total: u64 = t.rejects.iter().map(|(_, n)| n).sum();
    let rows: Vec<Vec<String>> = t
        .rejects
        .iter()
        .map(|(l, n)| {
            vec![
                l.host.to_string(),
                l.mta.to_string(),
                l.stage.to_string(),
                l.reason.to_string(),
                l.class.to_string(),
                n.to_string(),
            ]
        })
        .collect();
    write_table(&mut out, &format!("Rejects ({total})"), &["HOST", "MTA", "STAGE", "REASON", "CLASS", "COUNT"], &rows);
    let total: u64 = t.misroutes.iter().map(|(_, n)| n).sum();
    let rows: Vec<Vec<String>> =
        t.misroutes.iter().map(|(l, n)| vec![l.host.to_string(), l.domain.to_string(), n.to_string()]).collect();
    write_table(&mut out, &format!("Misroutes ({total})"), &["HOST", "DOMAIN", "COUNT"], &rows);
    let total: u64 = t.accepted.iter().map(|(_, n)| n).sum();
    let rows: Vec<Vec<String>> =
        t.accepted.iter().map(|(l, n)| vec![l.host.to_string(), l.mta.to_string(), n.to_string()]).collect();
    write_table(&mut out, &format!("Accepted messages ({total})"), &["HOST", "MTA", "COUNT"], &rows);
    let rows: Vec<Vec<String>> = t
        .lines
        .iter()
        .filter(|(_, _, n)| *n > 0)
        .map(|(s, o, n)| vec![s.clone(), o.to_string(), n.to_string()])
        .collect();
    write_table(&mut out, "Lines", &["SOURCE", "OUTCOME", "COUNT"], &rows);
    let cut: Vec<Vec<String>> =
        t.sources.iter().filter(|(_, _, tr)| *tr > 0).map(|(s, _, tr)| vec![s.clone(), tr.to_string()]).collect();
    if !cut.is_empty() {
        write_table(&mut out, "Lines cut at 64 KiB", &["SOURCE", "COUNT"], &cut);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openmetrics_samples_are_sorted_within_families() {
        let text = "# TYPE a counter\na_total{x=\"2\"} 1\na_total{x=\"1\"} 5\n# TYPE b counter\nb_total{y=\"b\"} 1\nb_total{y=\"a\"} 2\n# EOF\n";
        assert_eq!(
            sorted_samples(text),
            "# TYPE a counter\na_total{x=\"1\"} 5\na_total{x=\"2\"} 1\n# TYPE b counter\nb_total{y=\"a\"} 2\nb_total{y=\"b\"} 1\n# EOF\n"
        );
    }

    #[test]
    fn replay_output_does_not_depend_on_the_run() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("m.log");
        let mut text = String::new();
        for h in ["a", "b", "c", "d", "e", "f", "g", "h"] {
            text.push_str(&format!("May 28 08:25:35 {h} postfix/smtpd[1]: NOQUEUE: reject: RCPT from x[192.0.2.1]: 554 5.7.1 <u@nmrc.org>: Relay access denied; from=<s@x> to=<u@nmrc.org> proto=ESMTP helo=<x>\n"));
        }
        std::fs::write(&log, text).unwrap();
        let config = Config::parse("[maillog]\nlocal_domains = [\"nmrc.org\"]\n", "t").unwrap();
        let path = log.display().to_string();
        let first = run(&config, std::slice::from_ref(&path)).unwrap().render(ReplayOutput::Openmetrics);
        for _ in 0..5 {
            let again = run(&config, std::slice::from_ref(&path)).unwrap().render(ReplayOutput::Openmetrics);
            assert_eq!(first, again);
        }
        let hosts: Vec<&str> = first.lines().filter(|l| l.starts_with("mailroute_smtp_rejects_total")).collect();
        let mut sorted = hosts.clone();
        sorted.sort();
        assert_eq!(hosts, sorted);
        assert_eq!(hosts.len(), 8);
    }
}
