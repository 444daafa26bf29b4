//! `cargo run --release --example gen -- [OPTIONS]`: the project's workload generator.
//!
//! Writes a realistic Sendmail/Postfix/Exim syslog (see `workload.rs`) and its ground
//! truth as JSON next to it (`FILE.truth.json`): lines per outcome, rejects per MTA and
//! reason, per series (host, MTA, stage, reason, class), accepted messages and
//! misroutes, with the local domains to configure. Same arguments and seed, same bytes.
//!
//! Two modes:
//! - **file** (default): `-n LINES` lines as fast as possible to `-o FILE` (or stdout).
//! - **rate** (`--rate N`): N lines per second appended to `-o FILE`, written every
//!   10 ms in one `write(2)` each (as a syslog daemon would), for `-n LINES` lines or
//!   `--seconds S`; with `--reopen` the file is reopened by path when it was renamed or
//!   removed (logrotate `create`), so rotation torture and latency benches can use it.
//!   The truth is written when it stops.
//!
//! The last line is a sentinel (`--sentinel none` to leave it out): a Postfix
//! `lost connection after BENCHEND` line that a tailing benchmark waits for.

mod workload;

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;

use workload::{Mix, Settings, Workload};

#[derive(Parser, Debug)]
#[command(name = "gen", about = "Realistic Sendmail/Postfix/Exim logs with ground truth, deterministic from a seed")]
struct Args {
    /// Lines to write, the sentinel included (rate mode: stop after this many; 0 = no limit)
    #[arg(short = 'n', long = "lines", default_value_t = 200_000)]
    lines: u64,
    /// postfix (Postfix only, classic envelopes) | mixed (Postfix 1/2, Sendmail 1/4, Exim 1/4, every envelope) | sendmail | exim
    #[arg(long, default_value = "mixed")]
    mix: String,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Syslog host names mx01..mxNN
    #[arg(long, default_value_t = 3)]
    hosts: usize,
    /// Target share of reject lines
    #[arg(long = "reject-share", default_value_t = 0.10)]
    reject_share: f64,
    /// Sessions interleaved at once
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Unix time of the first line (default 2026-03-01 00:00:00 UTC)
    #[arg(long, default_value_t = 1_772_323_200)]
    start: i64,
    /// lost-connection | none
    #[arg(long, default_value = "lost-connection")]
    sentinel: String,
    /// Log file (default: standard output; required in rate mode)
    #[arg(short = 'o', long = "out")]
    out: Option<PathBuf>,
    /// Truth file (default: OUT.truth.json; none when writing to standard output)
    #[arg(long)]
    truth: Option<PathBuf>,
    /// Rate mode: lines per second appended to OUT
    #[arg(long)]
    rate: Option<f64>,
    /// Rate mode: stop after this many seconds
    #[arg(long)]
    seconds: Option<f64>,
    /// Rate mode: reopen OUT by path when it was renamed or removed
    #[arg(long)]
    reopen: bool,
}

fn main() -> ExitCode {
    let a = Args::parse();
    match run(&a) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gen: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(a: &Args) -> io::Result<()> {
    let mix = Mix::parse(&a.mix).ok_or_else(|| io::Error::other(format!("unknown --mix {:?}", a.mix)))?;
    let settings = Settings {
        seed: a.seed,
        mix,
        hosts: a.hosts,
        reject_share: a.reject_share,
        concurrency: a.concurrency,
        start: a.start,
    };
    let sentinel = match a.sentinel.as_str() {
        "lost-connection" => true,
        "none" => false,
        other => return Err(io::Error::other(format!("unknown --sentinel {other:?}"))),
    };
    let mut w = Workload::new(settings.clone());
    if let Some(rate) = a.rate {
        let path = a.out.clone().ok_or_else(|| io::Error::other("--rate needs -o FILE"))?;
        rate_mode(&mut w, &path, rate, a, sentinel)?;
    } else {
        let body = if sentinel { a.lines.saturating_sub(1) } else { a.lines };
        let sink: Box<dyn Write> = match &a.out {
            Some(p) => Box::new(File::create(p)?),
            None => Box::new(io::stdout().lock()),
        };
        let mut out = BufWriter::with_capacity(1 << 20, sink);
        for _ in 0..body {
            let line = w.next_line();
            out.write_all(line.as_bytes())?;
            out.write_all(b"\n")?;
        }
        if sentinel && a.lines > 0 {
            let line = w.sentinel();
            out.write_all(line.as_bytes())?;
            out.write_all(b"\n")?;
        }
        out.flush()?;
    }
    let truth_path =
        a.truth.clone().or_else(|| a.out.as_ref().map(|p| PathBuf::from(format!("{}.truth.json", p.display()))));
    if let Some(tp) = truth_path {
        let doc = serde_json::json!({
            "generator": {
                "name": "mailroute-gen",
                "version": 1,
                "lines": a.lines,
                "mix": mix.as_str(),
                "seed": a.seed,
                "hosts": a.hosts,
                "reject_share": a.reject_share,
                "rate": a.rate,
            },
            "lines": w.truth.lines,
            "bytes": w.truth.bytes,
            "outcomes": w.truth.outcomes,
            "rejects_total": w.truth.rejects_total,
            "rejects": w.truth.rejects,
            "rejects_by_reason": w.truth.rejects_by_reason,
            "series": w.truth.series,
            "accepted": w.truth.accepted,
            "misroutes": w.truth.misroutes,
            "local_domains": w.truth.local_domains,
        });
        let text = serde_json::to_string_pretty(&doc).map_err(io::Error::other)?;
        std::fs::write(tp, text + "\n")?;
    }
    Ok(())
}

/// N lines per second, appended in 10 ms batches, one write each.
fn rate_mode(w: &mut Workload, path: &PathBuf, rate: f64, a: &Args, sentinel: bool) -> io::Result<()> {
    let open = |p: &PathBuf| OpenOptions::new().create(true).append(true).open(p);
    let mut file = open(path)?;
    let mut ino = file.metadata()?.ino();
    let limit = if a.lines == 0 { u64::MAX } else { a.lines - u64::from(sentinel) };
    let deadline = a.seconds.map(Duration::from_secs_f64);
    let started = Instant::now();
    let mut written = 0u64;
    let mut batch = Vec::with_capacity(1 << 16);
    loop {
        let elapsed = started.elapsed();
        let done = written >= limit || deadline.is_some_and(|d| elapsed >= d);
        if done {
            break;
        }
        let due = ((rate * elapsed.as_secs_f64()) as u64).min(limit);
        batch.clear();
        while written < due {
            batch.extend_from_slice(w.next_line().as_bytes());
            batch.push(b'\n');
            written += 1;
        }
        if !batch.is_empty() {
            if a.reopen {
                let moved = std::fs::metadata(path).map(|m| m.ino() != ino).unwrap_or(true);
                if moved {
                    file = open(path)?;
                    ino = file.metadata()?.ino();
                }
            }
            file.write_all(&batch)?;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    if sentinel {
        let mut line = w.sentinel().into_bytes();
        line.push(b'\n');
        file.write_all(&line)?;
    }
    Ok(())
}
