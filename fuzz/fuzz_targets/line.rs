//! Log lines through the whole pipeline: envelope, MTA parser, classifier,
//! counters. The input is split at newlines and every line goes through one
//! `Processor`, so Exim's continuation (`[n/m]`) and duplicate state is exercised
//! across lines too. Oracle: no panic, and every line gets exactly one outcome.
#![no_main]

#[path = "../oracles.rs"]
mod oracles;

libfuzzer_sys::fuzz_target!(|data: &[u8]| oracles::line(data));
