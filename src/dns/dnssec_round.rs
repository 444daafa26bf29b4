//! The DNSSEC part of a round: the DS RRset from the parent's servers (RD=0), and from
//! each server that answered SOA authoritatively the DNSKEY RRset and the covered
//! RRsets with their RRSIGs (RD=0, DO bit, RFC 3225; TCP on truncation). What they
//! served is verified at once by the pure [`super::dnssec`] and kept as plain data in
//! [`Dnssec`], so the checks need no keys, records or clock.
//!
//! Covered RRsets (SPEC §7.4): SOA, NS and DNSKEY at the zone's apex; MX, A, AAAA
//! and TXT at the domain. A server of a zone the parent has no DS for and that serves
//! no DNSKEY is asked nothing more: an unsigned zone costs one query per server.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::future::join_all;
use hickory_proto::dnssec::rdata::{DNSKEY, DNSSECRData, DS, RRSIG};
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::dnssec::{DsInfo, KeyInfo, RrsetSigs, check_rrset, ds_matches};
use super::probe::{Failure, Prober, Response};
use super::snapshot::{Dnssec, Lookup, ServerDnssec, Snapshot};

fn fqdn(s: &str) -> Result<Name, String> {
    let fq = if s.ends_with('.') { s.to_string() } else { format!("{s}.") };
    Name::from_str(&fq).map_err(|e| format!("invalid name {s:?}: {e}"))
}

/// An answer worth reading: NOERROR or NXDOMAIN with AA.
fn usable(r: Result<Response, Failure>) -> Result<Response, String> {
    match r {
        Ok(resp) if !resp.authoritative => Err("answered without the AA flag".to_string()),
        Ok(resp) if matches!(resp.rcode, ResponseCode::NoError | ResponseCode::NXDomain) => Ok(resp),
        Ok(resp) => Err(format!("answered {}", resp.rcode)),
        Err(e) => Err(e.to_string()),
    }
}

fn rrsigs_at<'a>(records: &'a [Record], owner: &'a Name) -> impl Iterator<Item = &'a RRSIG> + 'a {
    records.iter().filter(move |r| &r.name == owner).filter_map(|r| match &r.data {
        RData::DNSSEC(DNSSECRData::RRSIG(s)) => Some(s),
        _ => None,
    })
}

fn dnskeys_at(records: &[Record], owner: &Name) -> Vec<DNSKEY> {
    records
        .iter()
        .filter(|r| &r.name == owner)
        .filter_map(|r| match &r.data {
            RData::DNSSEC(DNSSECRData::DNSKEY(k)) => Some(k.clone()),
            _ => None,
        })
        .collect()
}

/// The parent's servers asked for DS before the lookup counts as failed: a TLD has a
/// dozen, and one answer is enough.
const DS_TRIES: usize = 3;

/// The DS RRset from the first parent server that answers it authoritatively, asked
/// one after the other.
async fn ds_lookup(
    prober: &Prober,
    parents: &[(String, IpAddr)],
    port: u16,
    zone: &Name,
) -> (Lookup<Vec<DsInfo>>, Vec<DS>) {
    if parents.is_empty() {
        return (Lookup::Failed("no server of the parent zone is known".to_string()), Vec::new());
    }
    let mut problems = Vec::new();
    for (pname, addr) in parents.iter().take(DS_TRIES) {
        let r = usable(prober.query_dnssec(SocketAddr::new(*addr, port), zone, RecordType::DS).await);
        match r {
            Ok(resp) => {
                let ds: Vec<DS> = resp
                    .answers
                    .iter()
                    .filter(|r| &r.name == zone)
                    .filter_map(|r| match &r.data {
                        RData::DNSSEC(DNSSECRData::DS(d)) => Some(d.clone()),
                        _ => None,
                    })
                    .collect();
                if ds.is_empty() {
                    return (Lookup::Void { nxdomain: resp.rcode == ResponseCode::NXDomain }, ds);
                }
                return (Lookup::Found(ds.iter().map(DsInfo::of).collect()), ds);
            }
            Err(e) => problems.push(format!("{pname} ({addr}): {e}")),
        }
    }
    (Lookup::Failed(format!("DS {zone}: {}", problems.join("; "))), Vec::new())
}

/// What one address serves, verified.
struct Served {
    keys: Result<Vec<KeyInfo>, String>,
    ds_matched: BTreeSet<u16>,
    rrsets: Vec<RrsetSigs>,
    errors: Vec<String>,
}

async fn ask(prober: &Prober, addr: SocketAddr, zone: &Name, domain: &Name, ds: &[DS], now: i64) -> Served {
    let keys_resp = usable(prober.query_dnssec(addr, zone, RecordType::DNSKEY).await);
    let (keys, key_records) = match &keys_resp {
        Ok(resp) => (dnskeys_at(&resp.answers, zone), resp.answers.clone()),
        Err(_) => (Vec::new(), Vec::new()),
    };
    let mut out = Served {
        keys: keys_resp.as_ref().map(|_| keys.iter().map(KeyInfo::of).collect()).map_err(|e| format!("DNSKEY: {e}")),
        ds_matched: ds_matches(zone, ds, &keys),
        rrsets: Vec::new(),
        errors: Vec::new(),
    };
    if keys.is_empty() && ds.is_empty() {
        // an unsigned zone on this server: nothing to verify
        return out;
    }
    let mut asks: Vec<(Name, RecordType)> = vec![(zone.clone(), RecordType::SOA), (zone.clone(), RecordType::NS)];
    for t in [RecordType::MX, RecordType::A, RecordType::AAAA, RecordType::TXT] {
        asks.push((domain.clone(), t));
    }
    let answers =
        join_all(asks.iter().map(|(n, t)| async move { usable(prober.query_dnssec(addr, n, *t).await) })).await;
    let mut sets: Vec<(Name, RecordType, Vec<Record>)> = Vec::new();
    if keys_resp.is_ok() {
        sets.push((zone.clone(), RecordType::DNSKEY, key_records));
    }
    for ((n, t), r) in asks.into_iter().zip(answers) {
        match r {
            Ok(resp) => sets.push((n, t, resp.answers)),
            Err(e) => out.errors.push(format!("{t} {n}: {e}")),
        }
    }
    for (owner, rtype, records) in sets {
        let sigs: Vec<RRSIG> = rrsigs_at(&records, &owner).cloned().collect();
        let checked = check_rrset(zone, &owner, rtype, &records, &sigs, &keys, now);
        if checked.records > 0 {
            out.rrsets.push(checked);
        }
    }
    out
}

/// Gathers the DNSSEC data of `snap`'s zone: DS from `parents`, the rest from each
/// server that is up. `None` when the round found no zone.
/// `port` is the authoritative servers' port; `expiry_warning` is
/// `dns.dnssec_expiry_warning`, kept with the data for the checks. (Plain arguments
/// rather than the round's settings, so this module does not import the round.)
pub async fn gather(
    prober: &Prober,
    port: u16,
    expiry_warning: Duration,
    parents: &[(String, IpAddr)],
    snap: &Snapshot,
) -> Option<Dnssec> {
    let zone_s = snap.zone.as_ref()?;
    let (Ok(zone), Ok(domain)) = (fqdn(zone_s), fqdn(&snap.domain)) else { return None };
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    let (ds_info, ds) = ds_lookup(prober, parents, port, &zone).await;
    let addresses: BTreeSet<IpAddr> = snap.up().map(|s| s.address).collect();
    let asks = addresses.iter().map(|&a| {
        let (zone, domain, ds) = (&zone, &domain, &ds);
        async move { (a, ask(prober, SocketAddr::new(a, port), zone, domain, ds, now).await) }
    });
    let served: BTreeMap<IpAddr, Served> = join_all(asks).await.into_iter().collect();
    let servers = snap
        .up()
        .filter_map(|s| {
            let d = served.get(&s.address)?;
            Some(ServerDnssec {
                name: s.name.clone(),
                address: s.address,
                keys: d.keys.clone(),
                ds_matched: d.ds_matched.clone(),
                rrsets: d.rrsets.clone(),
                errors: d.errors.clone(),
            })
        })
        .collect();
    Some(Dnssec { checked_at: now, expiry_warning_seconds: expiry_warning.as_secs(), ds: ds_info, servers })
}
