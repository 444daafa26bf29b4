//! SOA checks: do the servers serve the same version of the zone, does the SOA name
//! a real primary, and are its timers sane.

use std::collections::BTreeSet;

use super::{Verdict, left_out, verdict};
use crate::config::DomainConfig;
use crate::dns::snapshot::{Snapshot, list};

/// RFC 1982 serial comparison: is `a` greater than `b`?
pub fn serial_gt(a: u32, b: u32) -> bool {
    a != b && (a.wrapping_sub(b) as i32) > 0
}

/// The highest serial of a set under RFC 1982: the one no other is greater than.
/// Serials more than 2^31 apart have no defined order; the first such is taken.
pub fn highest_serial(serials: &[u32]) -> Option<u32> {
    let first = *serials.first()?;
    Some(serials.iter().copied().find(|&c| serials.iter().all(|&o| !serial_gt(o, c))).unwrap_or(first))
}

/// How far `s` is behind `highest`, in RFC 1982 arithmetic (0 = in sync).
pub fn serial_behind(highest: u32, s: u32) -> u32 {
    if serial_gt(highest, s) { highest.wrapping_sub(s) } else { 0 }
}

/// `soa_serial_mismatch`: the servers serve different serials — a secondary is
/// stale or a primary's change did not propagate (RFC 1034 §4.3.5).
pub fn soa_serial_mismatch(s: &Snapshot, _: &DomainConfig) -> Option<Verdict> {
    let soas: Vec<_> = s.up().filter_map(|x| x.soa.as_ref().map(|soa| (x, soa.serial))).collect();
    if soas.is_empty() {
        return None;
    }
    let serials: Vec<u32> = soas.iter().map(|(_, n)| *n).collect();
    let top = highest_serial(&serials)?;
    let out = left_out(s, "", |_| true);
    let behind: Vec<String> = soas
        .iter()
        .filter(|(_, n)| *n != top)
        .map(|(x, n)| format!("{} serves {n} ({} behind)", x.label(), serial_behind(top, *n)))
        .collect();
    Some(verdict(
        !behind.is_empty(),
        || {
            let at_top: Vec<String> = soas.iter().filter(|(_, n)| *n == top).map(|(x, _)| x.label()).collect();
            format!("serial {top} on {}, but {}{out}", at_top.join(", "), behind.join("; "))
        },
        || format!("all {} servers serve serial {top}{out}", soas.len()),
    ))
}

/// `soa_fields_mismatch`: the servers agree on the serial's version of the zone but
/// not on MNAME, RNAME or the timers.
pub fn soa_fields_mismatch(s: &Snapshot, _: &DomainConfig) -> Option<Verdict> {
    let soas: Vec<_> = s.up().filter_map(|x| x.soa.as_ref().map(|soa| (x, soa))).collect();
    if soas.len() < 2 {
        return None;
    }
    let first = soas[0].1;
    let mut diffs = Vec::new();
    for (x, soa) in &soas[1..] {
        let mut fields = Vec::new();
        if soa.mname != first.mname {
            fields.push(format!("MNAME {} vs {}", soa.mname, first.mname));
        }
        if soa.rname != first.rname {
            fields.push(format!("RNAME {} vs {}", soa.rname, first.rname));
        }
        let timers = |t: &crate::dns::snapshot::Soa| (t.refresh, t.retry, t.expire, t.minimum);
        if timers(soa) != timers(first) {
            fields.push(format!(
                "timers {}/{}/{}/{} vs {}/{}/{}/{}",
                soa.refresh,
                soa.retry,
                soa.expire,
                soa.minimum,
                first.refresh,
                first.retry,
                first.expire,
                first.minimum
            ));
        }
        if !fields.is_empty() {
            diffs.push(format!("{} differs from {}: {}", x.label(), soas[0].0.label(), fields.join(", ")));
        }
    }
    let out = left_out(s, "", |_| true);
    Some(verdict(
        !diffs.is_empty(),
        || format!("{}{out}", diffs.join("; ")),
        || format!("{} servers serve the same MNAME, RNAME and timers{out}", soas.len()),
    ))
}

/// `soa_mname_not_in_ns`: the primary named in the SOA (MNAME) is in neither the
/// zone's NS set nor the parent's. Dynamic updates (RFC 2136 §4) and NOTIFY go to
/// MNAME; an MNAME no one delegates to usually means a stale SOA.
pub fn soa_mname_not_in_ns(s: &Snapshot, _: &DomainConfig) -> Option<Verdict> {
    let mnames: BTreeSet<&str> = s.up().filter_map(|x| x.soa.as_ref().map(|soa| soa.mname.as_str())).collect();
    if mnames.is_empty() {
        return None;
    }
    let zone_ns = s.zone_ns();
    let parent_ns = s.referral.as_ref().map(|r| r.ns.clone()).unwrap_or_default();
    let missing: Vec<&str> =
        mnames.iter().copied().filter(|m| !zone_ns.contains(*m) && !parent_ns.contains(*m)).collect();
    Some(verdict(
        !missing.is_empty(),
        || {
            format!(
                "SOA MNAME {} is not a name server of the zone (zone NS: {}; parent NS: {})",
                list(missing.iter()),
                list(zone_ns.iter()),
                list(parent_ns.iter())
            )
        },
        || format!("SOA MNAME {} is among the name servers", list(mnames.iter())),
    ))
}

/// `soa_timers_out_of_range`: Zonemaster's bounds (RFC 1912 §2.2): refresh ≥ 14400,
/// 3600 ≤ retry < refresh, expire ≥ 604800 and ≥ refresh, 300 ≤ minimum ≤ 86400.
pub fn soa_timers_out_of_range(s: &Snapshot, _: &DomainConfig) -> Option<Verdict> {
    let (server, soa) = s.up().find_map(|x| x.soa.as_ref().map(|soa| (x, soa)))?;
    let mut bad = Vec::new();
    if soa.refresh < 14400 {
        bad.push(format!("refresh {} < 14400", soa.refresh));
    }
    if soa.retry < 3600 {
        bad.push(format!("retry {} < 3600", soa.retry));
    }
    if soa.retry >= soa.refresh {
        bad.push(format!("retry {} ≥ refresh {}", soa.retry, soa.refresh));
    }
    if soa.expire < 604800 {
        bad.push(format!("expire {} < 604800", soa.expire));
    }
    if soa.expire < soa.refresh {
        bad.push(format!("expire {} < refresh {}", soa.expire, soa.refresh));
    }
    if soa.minimum < 300 {
        bad.push(format!("minimum {} < 300", soa.minimum));
    }
    if soa.minimum > 86400 {
        bad.push(format!("minimum {} > 86400", soa.minimum));
    }
    Some(verdict(
        !bad.is_empty(),
        || format!("SOA timers on {} out of range: {}", server.label(), bad.join(", ")),
        || format!("SOA timers {}/{}/{}/{} are within range", soa.refresh, soa.retry, soa.expire, soa.minimum),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::checks::fixtures::{cfg, good};

    #[test]
    fn rfc1982_across_wraparound() {
        assert!(serial_gt(2, 1));
        assert!(!serial_gt(1, 2));
        assert!(serial_gt(0, u32::MAX), "0 follows 4294967295");
        assert!(serial_gt(5, u32::MAX - 5));
        assert!(!serial_gt(u32::MAX - 5, 5));
        assert!(!serial_gt(7, 7));
        assert_eq!(highest_serial(&[u32::MAX - 1, 3, u32::MAX]), Some(3));
        assert_eq!(serial_behind(3, u32::MAX - 1), 5);
        assert_eq!(serial_behind(2026112702, 2026112701), 1);
        assert_eq!(serial_behind(5, 5), 0);
        assert_eq!(highest_serial(&[]), None);
        // 2^31 apart: undefined; the first wins and nothing panics
        assert_eq!(highest_serial(&[0, 1 << 31]), Some(0));
    }

    #[test]
    fn serial_drift() {
        let mut s = good();
        assert!(!soa_serial_mismatch(&s, &cfg()).unwrap().failed());
        s.servers[1].soa.as_mut().unwrap().serial = 2026112700;
        let v = soa_serial_mismatch(&s, &cfg()).unwrap();
        assert_eq!(
            v.message(),
            "serial 2026112701 on ns1.example.test (192.0.2.1), but ns2.example.test (192.0.2.2) serves 2026112700 (1 behind)"
        );
        // a down server is left out
        s.servers[1].standing = crate::dns::snapshot::Standing::Unreachable { error: "timeout".into() };
        assert!(!soa_serial_mismatch(&s, &cfg()).unwrap().failed());
    }

    #[test]
    fn fields_mname_timers() {
        let mut s = good();
        assert!(!soa_fields_mismatch(&s, &cfg()).unwrap().failed());
        assert!(!soa_mname_not_in_ns(&s, &cfg()).unwrap().failed());
        assert!(!soa_timers_out_of_range(&s, &cfg()).unwrap().failed());
        s.servers[1].soa.as_mut().unwrap().rname = "admin.example.test".into();
        let v = soa_fields_mismatch(&s, &cfg()).unwrap();
        assert!(v.failed() && v.message().contains("RNAME admin.example.test vs hostmaster.example.test"), "{v:?}");
        for x in &mut s.servers {
            x.soa.as_mut().unwrap().mname = "web.example.test".into();
        }
        let v = soa_mname_not_in_ns(&s, &cfg()).unwrap();
        assert!(v.failed() && v.message().starts_with("SOA MNAME web.example.test is not a name server"), "{v:?}");
        let t = s.servers[0].soa.as_mut().unwrap();
        (t.refresh, t.retry, t.expire, t.minimum) = (600, 300, 86400, 5);
        let v = soa_timers_out_of_range(&s, &cfg()).unwrap();
        assert!(v.message().contains("refresh 600 < 14400") && v.message().contains("minimum 5 < 300"), "{v:?}");
    }
}
