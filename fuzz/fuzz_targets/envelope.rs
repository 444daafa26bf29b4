//! The envelope parser alone. Oracle: no panic, and every field it returns borrows
//! from the line (the parser never allocates), except the constant program name
//! of an Exim mainlog line.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailroute_exporter::maillog::envelope;

fuzz_target!(|line: &[u8]| {
    if let Some(env) = envelope::parse(line) {
        let range = line.as_ptr_range();
        let inside = |f: &[u8]| f.is_empty() || (range.contains(&f.as_ptr()) && f.len() <= line.len());
        assert!(inside(env.timestamp));
        assert!(inside(env.message));
        assert!(inside(env.host.unwrap_or(b"")));
        assert!(inside(env.pid.unwrap_or(b"")));
        assert!(env.exim_mainlog || inside(env.program));
    }
});
