//! The envelope parser alone. Oracle: no panic, and every field it returns borrows
//! from the line (the parser never allocates), except the constant program name
//! of an Exim mainlog line.
#![no_main]

#[path = "../oracles.rs"]
mod oracles;

libfuzzer_sys::fuzz_target!(|data: &[u8]| oracles::envelope(data));
