//! The configuration loader: TOML text through `Config::parse` (serde, then every
//! validation). Oracle: no panic; an error names a position inside the text (line
//! and column within it, or 0 when it has none) and renders.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailroute_exporter::config::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match Config::parse(text, "fuzz.toml") {
        Ok(config) => {
            let _ = config.misroute_domains();
        }
        Err(e) => {
            let lines = text.split('\n').count();
            assert!(e.line <= lines + 1, "error line {} beyond the text's {} lines: {e}", e.line, lines);
            let _ = e.to_string();
        }
    }
});
