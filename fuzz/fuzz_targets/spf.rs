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

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use libfuzzer_sys::fuzz_target;
use mailroute_exporter::dns::records::spf;
use mailroute_exporter::dns::snapshot::{Lookup, SpfLookups};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut lines = text.split('\n');
    let top = lines.next().unwrap_or("");
    let mut lookups = SpfLookups::default();
    let mut names = Vec::new();
    for l in lines {
        let (name, rest) = l.split_once(' ').unwrap_or((l, ""));
        let answer = match rest {
            "VOID" => Lookup::Void { nxdomain: true },
            "FAIL" => Lookup::Failed("fuzz".to_string()),
            r => Lookup::Found(vec![r.to_string()]),
        };
        lookups.txt.insert(name.to_string(), answer);
        names.push(name.to_string());
    }
    let mut addresses = BTreeMap::new();
    let mut mx = BTreeMap::new();
    for n in &names {
        addresses.insert(n.clone(), Lookup::Found(vec![IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))]));
        mx.insert(n.clone(), Lookup::Found(vec![n.clone()]));
    }
    lookups.addresses = addresses;
    lookups.mx = mx;

    let _ = spf::is_spf(top);
    let _ = spf::expand(top, "example.com", "sender.example");
    match spf::parse(top) {
        Ok(record) => {
            let _ = record.advice();
            let _ = record.redirect();
            let _ = record.evaluated().count();
            let walk = spf::walk("example.com", &record, &lookups);
            let _ = (walk.complete(), walk.over_limit());
            let _ = format!("{walk:?}");
        }
        Err(errors) => {
            assert!(!errors.is_empty());
            let _ = spf::errors_text(&errors);
        }
    }
});
