//! DMARC (and the other tag-list records that share its tag parser: DKIM keys,
//! MTA-STS and TLS-RPT). Oracle: no panic; a DMARC record is valid exactly when
//! it has no error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailroute_exporter::dns::records::{dkim, dmarc, sts, tag_list};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = dmarc::is_dmarc(text);
    let _ = dmarc::looks_like_dmarc(text);
    let parsed = dmarc::parse(text);
    assert_eq!(parsed.valid(), parsed.errors.is_empty());
    let _ = parsed.effective_policy();
    let _ = tag_list(text);
    if let Ok(key) = dkim::parse(text) {
        let _ = format!("{key:?}");
    }
    let _ = sts::parse_mta_sts(text);
    let _ = sts::parse_tlsrpt(text);
});
