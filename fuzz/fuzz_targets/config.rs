//! The configuration loader: TOML text through `Config::parse` (serde, then every
//! validation). Oracle: no panic; an error names a position inside the text (line
//! and column within it, or 0 when it has none) and renders.
#![no_main]

#[path = "../oracles.rs"]
mod oracles;

libfuzzer_sys::fuzz_target!(|data: &[u8]| oracles::config(data));
