//! DMARC (and the other tag-list records that share its tag parser: DKIM keys,
//! MTA-STS and TLS-RPT). Oracle: no panic; a DMARC record is valid exactly when
//! it has no error.
#![no_main]

#[path = "../oracles.rs"]
mod oracles;

libfuzzer_sys::fuzz_target!(|data: &[u8]| oracles::dmarc(data));
