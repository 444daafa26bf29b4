//! The DNSSEC part of a round: the DS RRset from the parent's servers (RD=0), and from
//! each server that answered SOA authoritatively the DNSKEY RRset and the covered
//! RRsets with their RRSIGs (RD=0, DO bit, RFC 3225; TCP on truncation). The round's
//! own SOA, NS, MX, A and AAAA answers already carry the RRSIGs (every authoritative
//! query has the DO bit) and are reused; DNSKEY and the domain's TXT are asked here. What they
//! served is verified at once by the pure [`super::dnssec`] and kept as plain data in
//! [`Dnssec`], so the checks need no keys, records or clock.
//!
//! Covered RRsets (SPEC §7.4): SOA, NS and DNSKEY at the zone's apex; MX, A, AAAA
//! and TXT at the domain. A server of a zone the parent has no DS for and that serves
//! no DNSKEY is asked nothing more: an unsigned zone costs one query per server.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::future::join_all;
use hickory_proto::dnssec::rdata::{DNSKEY, DNSSECRData, DS, RRSIG};
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::dnssec::{DsInfo, KeyInfo, RrsetSigs, Verified, check_rrset, ds_matches, owner_text};
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
    ds_matched: Vec<u16>,
    rrsets: Vec<RrsetSigs>,
    errors: Vec<String>,
}

/// The RRset `owner`/`rtype` in `records` with its RRSIGs, verified; `None` when the
/// server serves no such RRset.
fn verified(
    zone: &Name,
    owner: &Name,
    rtype: RecordType,
    records: &[Record],
    keys: &[DNSKEY],
    now: i64,
    cache: &Verified,
) -> Option<RrsetSigs> {
    let sigs: Vec<RRSIG> = rrsigs_at(records, owner).cloned().collect();
    Some(check_rrset(zone, owner, rtype, records, &sigs, keys, now, cache)).filter(|c| c.records > 0)
}

/// What the round's own per-server questions brought back, as sent: owner, type, and
/// the answer section or why there was no usable answer (the round asks with the DO
/// bit, so a signed zone's answers carry their RRSIGs).
pub type ServedSets = Vec<(Name, RecordType, Result<Vec<Record>, String>)>;

/// The DNSKEY RRset and the covered RRsets of one address, verified: `sets` are the
/// round's SOA, NS, MX, A and AAAA answers from it; DNSKEY and the domain's TXT are
/// asked here. (The zone, the domain, the parent's DS, the round's time and the
/// zone's verdict cache.)
async fn ask(
    prober: &Prober,
    addr: SocketAddr,
    (zone, domain): (&Name, &Name),
    sets: ServedSets,
    ds: &[DS],
    now: i64,
    cache: &Verified,
) -> Served {
    let keys_resp = usable(prober.query_dnssec(addr, zone, RecordType::DNSKEY).await);
    let keys = keys_resp.as_ref().map(|resp| dnskeys_at(&resp.answers, zone)).unwrap_or_default();
    let mut out = Served {
        keys: keys_resp.as_ref().map(|_| keys.iter().map(KeyInfo::of).collect()).map_err(|e| format!("DNSKEY: {e}")),
        ds_matched: ds_matches(zone, ds, &keys).into_iter().collect(),
        rrsets: Vec::new(),
        errors: Vec::new(),
    };
    if keys.is_empty() && ds.is_empty() {
        // an unsigned zone on this server: nothing to verify
        return out;
    }
    if let Ok(resp) = keys_resp {
        out.rrsets.extend(verified(zone, zone, RecordType::DNSKEY, &resp.answers, &keys, now, cache));
    }
    let txt = usable(prober.query_dnssec(addr, domain, RecordType::TXT).await).map(|resp| resp.answers);
    let all = sets.into_iter().chain([(domain.clone(), RecordType::TXT, txt)]);
    for (n, t, answers) in all {
        match answers {
            Ok(records) => out.rrsets.extend(verified(zone, &n, t, &records, &keys, now, cache)),
            Err(e) => out.errors.push(format!("{t} {n}: {e}")),
        }
    }
    // one allocation for each owner name, shared by its RRsets
    let (zone_text, domain_text): (Arc<str>, Arc<str>) = (owner_text(zone).into(), owner_text(domain).into());
    for r in &mut out.rrsets {
        if r.owner == zone_text {
            r.owner = zone_text.clone();
        } else if r.owner == domain_text {
            r.owner = domain_text.clone();
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
    mut answers: HashMap<IpAddr, ServedSets>,
) -> Option<Dnssec> {
    let zone_s = snap.zone.as_ref()?;
    let (Ok(zone), Ok(domain)) = (fqdn(zone_s), fqdn(&snap.domain)) else { return None };
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    let (ds_info, ds) = ds_lookup(prober, parents, port, &zone).await;
    let addresses: BTreeSet<IpAddr> = snap.up().map(|s| s.address).collect();
    let cache = Verified::default();
    let asks = addresses.iter().map(|&a| {
        let (zone, domain, ds, cache) = (&zone, &domain, &ds, &cache);
        let sets = answers.remove(&a).unwrap_or_default();
        async move { (a, ask(prober, SocketAddr::new(a, port), (zone, domain), sets, ds, now, cache).await) }
    });
    let mut served: BTreeMap<IpAddr, Served> = join_all(asks).await.into_iter().collect();
    // an address usually has one name: its data moves; shared addresses get copies
    let mut names_left: BTreeMap<IpAddr, usize> = BTreeMap::new();
    for s in snap.up() {
        *names_left.entry(s.address).or_default() += 1;
    }
    let mut servers = Vec::new();
    for s in snap.up() {
        let Some(left) = names_left.get_mut(&s.address) else { continue };
        *left -= 1;
        let d = if *left == 0 {
            served.remove(&s.address)
        } else {
            served.get(&s.address).map(|d| Served {
                keys: d.keys.clone(),
                ds_matched: d.ds_matched.clone(),
                rrsets: d.rrsets.clone(),
                errors: d.errors.clone(),
            })
        };
        let Some(d) = d else { continue };
        servers.push(ServerDnssec {
            name: s.name.clone(),
            address: s.address,
            keys: d.keys,
            ds_matched: d.ds_matched,
            rrsets: d.rrsets,
            errors: d.errors,
        });
    }
    Some(Dnssec { checked_at: now, expiry_warning_seconds: expiry_warning.as_secs(), ds: ds_info, servers })
}
