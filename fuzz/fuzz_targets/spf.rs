//! SPF: the record parser, macro expansion, and the lookup-counting walk.
//!
//! The input is text: the first line is the record published at `example.com`;
//! each further line `NAME RECORD` is a TXT answer for NAME (an include or
//! redirect target), `NAME VOID` a void lookup and `NAME FAIL` a failed one, so
//! the walk follows includes, redirects and loops the input makes up. Every name
//! also resolves to one address and one MX so `a` and `mx` terms are counted.
//! Oracle: no panic (the walk must also end on any include or redirect loop), and
//! a record that fails to parse reports at least one error.
#![no_main]

#[path = "../oracles.rs"]
mod oracles;

libfuzzer_sys::fuzz_target!(|data: &[u8]| oracles::spf(data));
