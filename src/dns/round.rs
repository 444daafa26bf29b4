//! One round for one domain: discovery, then every authoritative server asked
//! directly, all gathered into a [`Snapshot`].
//!
//! Discovery, through the round's [`Recursive`] resolver (RD=1):
//! 1. the zone that holds the domain: the owner of the SOA in the answer or
//!    authority section of an SOA query for the domain (it may sit above the domain);
//! 2. the parent zone the same way, and the parent's name servers and addresses;
//! 3. the parent's referral for the zone, asked of a parent server with RD=0: NS
//!    names in the authority section, glue in the additional section;
//! 4. the zone's own NS RRset, and every address of every NS name (glue and
//!    resolver answers).
//!
//! When the resolvers cannot find the zone (a dead or lame zone makes a resolver
//! time out or answer SERVFAIL), discovery does not stop there
//! ([`delegation_from_parents`]): the closest enclosing zone the resolvers do know
//! (the parent, else the TLD, else the root) is asked directly, RD=0, and its
//! referrals are followed down towards the domain, so the servers the delegation
//! names are judged anyway (RFC 1034 §4.3.2, §5.3.3). Only when that fails too is
//! the round itself failed ([`Snapshot::failure`], check `dns_round_failed`).
//!
//! Then each address of each name server is asked, with RD=0, for the zone's SOA
//! and NS and the domain's MX, A and AAAA (and the TXT names the policy checks
//! read); a server that answers the SOA but fails another of these questions has
//! it recorded in [`Server::query_failures`]. MX exchanges are resolved the way a
//! sender would: through the resolvers, CNAMEs followed. Last,
//! [`super::policy::gather`] collects what the mail policy checks need beyond that
//! (SPF expansion, reverse DNS, the SMTP probe).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use futures_util::future::join_all;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{RData, Record, RecordType};

use super::probe::{Failure, Prober, Response};
use super::recursive::{Recursive, find_zone, lookup_host, name, ns_names, rcode_text, txt_string};
use super::snapshot::{Mx, NsName, Referral, Server, Snapshot, Soa, Standing, in_zone, is_address_literal, norm};
use super::sts_fetch::MailTls;
use crate::config::DomainConfig;

/// How a round reaches the servers.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Recursive resolvers, tried in order.
    pub resolvers: Vec<SocketAddr>,
    /// Port of the authoritative servers.
    pub port: u16,
    /// Port of the opt-in SMTP probe of apex addresses.
    pub smtp_probe_port: u16,
    /// `dnssec_signature_expiring` fails when an RRSIG expires sooner than this.
    pub dnssec_expiry_warning: Duration,
    /// MTA-STS fetching and the STARTTLS probe: the TLS client, the policy cache,
    /// and the probes' shared slots.
    pub mail_tls: MailTls,
}

impl Default for Settings {
    /// No resolvers (`/etc/resolv.conf`), port 53, SMTP 25, DNSSEC warning 7 days,
    /// MTA-STS on port 443 with the Mozilla roots only.
    fn default() -> Settings {
        Settings {
            resolvers: Vec::new(),
            port: 53,
            smtp_probe_port: 25,
            dnssec_expiry_warning: Duration::from_secs(7 * 86400),
            mail_tls: MailTls::default(),
        }
    }
}

fn owner(r: &Record) -> String {
    norm(&r.name.to_ascii())
}

/// What one address answered to the per-server questions.
#[derive(Debug, Clone)]
struct Answers {
    standing: Standing,
    rtt: Option<f64>,
    soa: Option<Soa>,
    ns: Option<BTreeSet<String>>,
    mx: Option<BTreeSet<Mx>>,
    apex: Option<BTreeSet<IpAddr>>,
    txt: BTreeMap<String, Option<Vec<String>>>,
    txt_cname: BTreeMap<String, String>,
    failures: BTreeMap<String, String>,
    /// The SOA, NS, MX, A and AAAA answers as sent (with the RRSIGs the DO bit
    /// brings), for [`super::dnssec_round`]; taken when the DNSSEC part runs.
    signed_sets: super::dnssec_round::ServedSets,
}

fn records_at<'a>(resp: &'a Response, at: &'a str) -> impl Iterator<Item = &'a RData> + 'a {
    resp.answers.iter().filter(move |r| owner(r) == at).map(|r| &r.data)
}

/// A per-server answer is usable data only when NOERROR/NXDOMAIN with AA.
fn usable(r: &Result<Response, Failure>) -> Option<&Response> {
    match r {
        Ok(resp) if resp.authoritative && matches!(resp.rcode, ResponseCode::NoError | ResponseCode::NXDomain) => {
            Some(resp)
        }
        _ => None,
    }
}

/// Why a per-server answer is not usable (see [`usable`]), in words; `None` when
/// it is.
pub fn unusable_why(r: &Result<Response, Failure>) -> Option<String> {
    match r {
        Err(e) => Some(e.to_string()),
        Ok(resp) if !matches!(resp.rcode, ResponseCode::NoError | ResponseCode::NXDomain) => {
            Some(format!("answered {}", rcode_text(resp.rcode)))
        }
        Ok(resp) if !resp.authoritative => Some("answered without the AA flag".to_string()),
        Ok(_) => None,
    }
}

async fn ask_server(prober: &Prober, addr: SocketAddr, zone: &str, domain: &str, txt_names: &[String]) -> Answers {
    let (Ok(zone_n), Ok(domain_n)) = (name(zone), name(domain)) else {
        return Answers {
            standing: Standing::Unreachable { error: "invalid name".to_string() },
            rtt: None,
            soa: None,
            ns: None,
            mx: None,
            apex: None,
            txt: BTreeMap::new(),
            txt_cname: BTreeMap::new(),
            failures: BTreeMap::new(),
            signed_sets: Vec::new(),
        };
    };
    let txt_queries = txt_names.iter().map(|rel| {
        let full = if rel.is_empty() { domain.to_string() } else { format!("{rel}.{domain}") };
        async move {
            let r = match name(&full) {
                Ok(n) => prober.query(addr, &n, RecordType::TXT, false).await,
                Err(e) => Err(Failure::Malformed(e)),
            };
            let value = usable(&r).map(|resp| {
                records_at(resp, &full)
                    .filter_map(|d| match d {
                        RData::TXT(t) => Some(txt_string(&t.txt_data)),
                        _ => None,
                    })
                    .collect::<Vec<_>>()
            });
            let cname = usable(&r).and_then(|resp| {
                records_at(resp, &full).find_map(|d| match d {
                    RData::CNAME(c) => Some(norm(&c.0.to_ascii())),
                    _ => None,
                })
            });
            let why = unusable_why(&r);
            (full, value, cname, why)
        }
    });
    let (soa, ns, mx, a, aaaa, txts) = tokio::join!(
        prober.query_or_tcp(addr, &zone_n, RecordType::SOA),
        prober.query(addr, &zone_n, RecordType::NS, false),
        prober.query(addr, &domain_n, RecordType::MX, false),
        prober.query(addr, &domain_n, RecordType::A, false),
        prober.query(addr, &domain_n, RecordType::AAAA, false),
        join_all(txt_queries),
    );
    // kept as sent for the DNSSEC part
    let sets = [(&zone_n, RecordType::SOA, &soa), (&zone_n, RecordType::NS, &ns)];
    let sets = sets.into_iter().chain([
        (&domain_n, RecordType::MX, &mx),
        (&domain_n, RecordType::A, &a),
        (&domain_n, RecordType::AAAA, &aaaa),
    ]);
    let signed_sets = sets
        .map(|(n, t, r)| {
            let kept = match r {
                Ok(resp) if usable(r).is_some() => Ok(resp.answers.clone()),
                Ok(resp) => Err(format!(
                    "answered {}{}",
                    rcode_text(resp.rcode),
                    if resp.authoritative { "" } else { " without AA" }
                )),
                Err(e) => Err(e.to_string()),
            };
            (n.clone(), t, kept)
        })
        .collect();
    let (standing, rtt, soa_data) = match &soa {
        Err(e) => (Standing::Unreachable { error: e.to_string() }, None, None),
        Ok(resp) => {
            let soa_rec = records_at(resp, zone).find_map(|d| match d {
                RData::SOA(s) => Some(Soa {
                    mname: norm(&s.mname.to_ascii()),
                    rname: norm(&s.rname.to_ascii()),
                    serial: s.serial,
                    refresh: i64::from(s.refresh),
                    retry: i64::from(s.retry),
                    expire: i64::from(s.expire),
                    minimum: s.minimum,
                }),
                _ => None,
            });
            let rtt = Some(resp.rtt.as_secs_f64());
            if resp.rcode != ResponseCode::NoError {
                let detail = format!("answered {}", rcode_text(resp.rcode));
                (Standing::Lame { rcode: rcode_text(resp.rcode), authoritative: resp.authoritative, detail }, rtt, None)
            } else if !resp.authoritative {
                let detail = "answered without the AA flag (not authoritative)".to_string();
                (Standing::Lame { rcode: rcode_text(resp.rcode), authoritative: false, detail }, rtt, None)
            } else if soa_rec.is_none() {
                let detail = format!("answered with AA but no SOA record for {zone}");
                (Standing::Lame { rcode: rcode_text(resp.rcode), authoritative: true, detail }, rtt, None)
            } else {
                (Standing::Authoritative, rtt, soa_rec)
            }
        }
    };
    let mut failures = BTreeMap::new();
    for (q, r) in [
        (format!("{zone} NS"), &ns),
        (format!("{domain} MX"), &mx),
        (format!("{domain} A"), &a),
        (format!("{domain} AAAA"), &aaaa),
    ] {
        if let Some(why) = unusable_why(r) {
            failures.insert(q, why);
        }
    }
    for (n, _, _, why) in &txts {
        if let Some(why) = why {
            failures.insert(format!("{n} TXT"), why.clone());
        }
    }
    let ns = usable(&ns).map(|resp| {
        records_at(resp, zone)
            .filter_map(|d| match d {
                RData::NS(n) => Some(norm(&n.0.to_ascii())),
                _ => None,
            })
            .collect()
    });
    let mx = usable(&mx).map(|resp| {
        records_at(resp, domain)
            .filter_map(|d| match d {
                RData::MX(m) => Some(Mx { preference: m.preference, exchange: norm(&m.exchange.to_ascii()) }),
                _ => None,
            })
            .collect()
    });
    let apex = match (usable(&a), usable(&aaaa)) {
        (None, None) => None,
        (a, aaaa) => {
            let mut set = BTreeSet::new();
            for resp in [a, aaaa].into_iter().flatten() {
                for d in records_at(resp, domain) {
                    match d {
                        RData::A(x) => {
                            set.insert(IpAddr::V4(x.0));
                        }
                        RData::AAAA(x) => {
                            set.insert(IpAddr::V6(x.0));
                        }
                        _ => {}
                    }
                }
            }
            Some(set)
        }
    };
    let txt_cname = txts.iter().filter_map(|(n, _, c, _)| c.clone().map(|c| (n.clone(), c))).collect();
    let txt = txts.into_iter().map(|(n, v, _, _)| (n, v)).collect();
    Answers { standing, rtt, soa: soa_data, ns, mx, apex, txt, txt_cname, failures, signed_sets }
}

/// The parent's referral for `zone`, from the first parent server that gives one.
async fn referral(prober: &Prober, parents: &[(String, IpAddr)], port: u16, zone: &str) -> Result<Referral, String> {
    let zone_n = name(zone)?;
    let asks = parents.iter().map(|(pname, addr)| {
        let zone_n = zone_n.clone();
        async move {
            (pname.clone(), *addr, prober.query(SocketAddr::new(*addr, port), &zone_n, RecordType::NS, false).await)
        }
    });
    let mut problems = Vec::new();
    for (pname, addr, r) in join_all(asks).await {
        let resp = match r {
            Ok(resp) => resp,
            Err(e) => {
                problems.push(format!("{pname} ({addr}): {e}"));
                continue;
            }
        };
        // a referral carries the NS in the authority section; a parent that also
        // serves the child answers them authoritatively instead
        let ns: BTreeSet<String> = resp
            .authorities
            .iter()
            .chain(resp.answers.iter())
            .filter(|r| owner(r) == zone)
            .filter_map(|r| match &r.data {
                RData::NS(n) => Some(norm(&n.0.to_ascii())),
                _ => None,
            })
            .collect();
        if ns.is_empty() {
            problems
                .push(format!("{pname} ({addr}) answered {} without NS records for {zone}", rcode_text(resp.rcode)));
            continue;
        }
        let glue = glue_of(&resp, &ns);
        return Ok(Referral { from: format!("{pname} ({addr})"), ns, glue });
    }
    Err(format!("no referral for {zone} from the parent's servers: {}", problems.join("; ")))
}

/// What the parent's servers say about a name, asked directly with RD=0.
#[derive(Debug)]
enum Step {
    /// A referral to the zone `child` (at or above the name, below the zone asked).
    Down { child: String, referral: Referral },
    /// The servers answer authoritatively: the name is in their zone, no cut below.
    Inside,
    /// The servers answer authoritatively that the name does not exist.
    NxDomain,
}

/// Asks `servers` (name, address) of the zone `at`, all at once and RD=0, for the
/// NS of `qname`; the first usable answer decides.
async fn ask_down(
    prober: &Prober,
    servers: &[(String, IpAddr)],
    port: u16,
    at: &str,
    qname: &str,
) -> Result<Step, String> {
    let n = name(qname)?;
    let asks =
        servers.iter().map(|(sname, addr)| {
            let n = n.clone();
            async move {
                (sname.clone(), *addr, prober.query(SocketAddr::new(*addr, port), &n, RecordType::NS, false).await)
            }
        });
    let mut problems = Vec::new();
    for (sname, addr, r) in join_all(asks).await {
        let resp = match r {
            Ok(resp) => resp,
            Err(e) => {
                problems.push(format!("{sname} ({addr}): no answer ({e})"));
                continue;
            }
        };
        if resp.authoritative && resp.rcode == ResponseCode::NXDomain {
            return Ok(Step::NxDomain);
        }
        // a referral: NS records in the authority section for a zone below `at`
        let cut = resp.authorities.iter().find_map(|r| match &r.data {
            RData::NS(_) => {
                let o = owner(r);
                (o != at && in_zone(&o, at) && in_zone(qname, &o)).then_some(o)
            }
            _ => None,
        });
        if let (Some(child), ResponseCode::NoError) = (cut, resp.rcode) {
            let ns: BTreeSet<String> = resp
                .authorities
                .iter()
                .filter(|r| owner(r) == child)
                .filter_map(|r| match &r.data {
                    RData::NS(x) => Some(norm(&x.0.to_ascii())),
                    _ => None,
                })
                .collect();
            let glue = glue_of(&resp, &ns);
            return Ok(Step::Down { child, referral: Referral { from: format!("{sname} ({addr})"), ns, glue } });
        }
        if resp.authoritative && resp.rcode == ResponseCode::NoError {
            return Ok(Step::Inside);
        }
        let aa = if resp.authoritative { "" } else { " without the AA flag" };
        problems.push(format!("{sname} ({addr}) answered {}{aa} and no referral", rcode_text(resp.rcode)));
    }
    if problems.is_empty() {
        problems.push("no server to ask".to_string());
    }
    Err(format!("{qname} NS asked of the servers of {at}: {}", problems.join("; ")))
}

/// Glue for `ns` in the additional section of a referral.
fn glue_of(resp: &Response, ns: &BTreeSet<String>) -> BTreeMap<String, BTreeSet<IpAddr>> {
    let mut glue: BTreeMap<String, BTreeSet<IpAddr>> = BTreeMap::new();
    for r in &resp.additionals {
        let o = owner(r);
        if !ns.contains(&o) {
            continue;
        }
        let ip = match &r.data {
            RData::A(a) => IpAddr::V4(a.0),
            RData::AAAA(a) => IpAddr::V6(a.0),
            _ => continue,
        };
        glue.entry(o).or_default().insert(ip);
    }
    glue
}

/// The delegation found at the parent's servers directly.
#[derive(Debug, Default)]
struct Found {
    zone: String,
    parent: Option<String>,
    parent_servers: Vec<String>,
    /// The parent's servers by name and address (DNSSEC asks them for the DS).
    parent_addresses: Vec<(String, IpAddr)>,
    referral: Option<Referral>,
    nxdomain: bool,
}

/// The most referrals followed down from the closest zone the resolvers know.
const MAX_REFERRALS: usize = 8;

/// Finds the delegation of the zone holding `domain` without the resolvers'
/// help for the domain itself: the closest enclosing zone the resolvers do know
/// (the parent, else the TLD, else the root; all asked at once) and its servers,
/// then its referrals followed down towards the domain, RD=0 (RFC 1034 §5.3.3).
/// When a delegated zone's servers all fail, the zone is the last delegation
/// found: its servers are then judged (and fail) like any others.
async fn delegation_from_parents(prober: &Prober, rec: &Recursive, port: u16, domain: &str) -> Result<Found, String> {
    let mut ancestors = Vec::new();
    let mut rest = domain;
    while let Some((_, up)) = rest.split_once('.') {
        ancestors.push(up.to_string());
        rest = up;
    }
    if domain != "." {
        ancestors.push(".".to_string());
    }
    let zones = join_all(ancestors.iter().map(|a| find_zone(rec, a))).await;
    let mut problems = Vec::new();
    let mut start: Option<(String, Vec<(String, IpAddr)>)> = None;
    let mut tried = BTreeSet::new();
    for z in zones {
        let zone = match z {
            Ok((zone, _)) => zone,
            Err(e) => {
                problems.push(e);
                continue;
            }
        };
        if !tried.insert(zone.clone()) {
            continue;
        }
        match ns_names(rec, &zone).await {
            Ok(names) if !names.is_empty() => {
                let lookups = names.iter().map(|n| async move { (n.clone(), lookup_host(rec, n).await) });
                let servers: Vec<(String, IpAddr)> = join_all(lookups)
                    .await
                    .into_iter()
                    .flat_map(|(n, h)| h.addresses.into_iter().map(move |a| (n.clone(), a)))
                    .collect();
                if servers.is_empty() {
                    problems.push(format!("no address for any name server of {zone}"));
                    continue;
                }
                start = Some((zone, servers));
                break;
            }
            Ok(_) => problems.push(format!("no NS records for {zone}")),
            Err(e) => problems.push(e),
        }
    }
    let Some((mut at, mut servers)) = start else {
        return Err(format!("the resolvers know no enclosing zone's servers either: {}", problems.join("; ")));
    };
    let mut found = Found { zone: at.clone(), ..Found::default() };
    for _ in 0..MAX_REFERRALS {
        match ask_down(prober, &servers, port, &at, domain).await {
            Ok(Step::Down { child, referral }) => {
                let mut next = Vec::new();
                for n in &referral.ns {
                    match referral.glue.get(n) {
                        Some(g) => next.extend(g.iter().map(|a| (n.clone(), *a))),
                        // in the child without glue: nothing can reach it
                        None if in_zone(n, &child) => {}
                        None => next.extend(lookup_host(rec, n).await.addresses.into_iter().map(|a| (n.clone(), a))),
                    }
                }
                found = Found {
                    zone: child.clone(),
                    parent: Some(at.clone()),
                    parent_servers: servers
                        .iter()
                        .map(|(n, _)| n.clone())
                        .collect::<BTreeSet<_>>()
                        .into_iter()
                        .collect(),
                    parent_addresses: servers.clone(),
                    referral: Some(referral),
                    nxdomain: false,
                };
                if next.is_empty() {
                    return Ok(found);
                }
                at = child;
                servers = next;
            }
            Ok(Step::Inside) => return Ok(found),
            Ok(Step::NxDomain) => {
                return Ok(Found { zone: at, nxdomain: true, ..Found::default() });
            }
            // the servers of a delegated zone all fail: judge them
            Err(_) if found.referral.is_some() => return Ok(found),
            Err(e) => return Err(e),
        }
    }
    Ok(found)
}

/// Runs discovery and the server probes for one domain, with a resolver of its
/// own (no cache shared with other domains).
pub async fn snapshot(prober: &Prober, settings: &Settings, config: &DomainConfig) -> Snapshot {
    let rec = Recursive::new(&settings.resolvers, prober.timeout())
        .with_limit(prober.concurrency())
        .with_counters(prober.counters());
    snapshot_with(prober, &rec, settings, config).await
}

/// Runs discovery and the server probes for one domain, recursive lookups through
/// `rec` (shared by the round's domains).
pub async fn snapshot_with(prober: &Prober, rec: &Recursive, settings: &Settings, config: &DomainConfig) -> Snapshot {
    let domain = norm(&config.name);
    let resolvers = rec;
    let txt_names = super::domain_txt_names(config);
    let txt_names = &txt_names;
    let mut snap = Snapshot { domain: domain.clone(), ..Snapshot::default() };

    // 1. the zone holding the domain
    let mut direct = false;
    // the parent's servers by name and address: the referral and the DS come from them
    let mut parents: Vec<(String, IpAddr)> = Vec::new();
    let zone = match find_zone(rec, &domain).await {
        Ok((zone, nx)) => {
            if nx {
                // nothing of the domain to ask anyone about: its zone's servers (or a
                // TLD's, or the root's) say only that it does not exist
                snap.notes.push(format!("{domain} does not exist (NXDOMAIN); the closest enclosing zone is {zone}"));
                snap.nxdomain = true;
                snap.zone = Some(zone);
                return snap;
            }
            zone
        }
        Err(e) => match delegation_from_parents(prober, rec, settings.port, &domain).await {
            Ok(found) if found.nxdomain => {
                snap.notes.push(format!(
                    "the resolvers fail for {domain} ({e}); the servers of {} say it does not exist (NXDOMAIN)",
                    found.zone
                ));
                snap.nxdomain = true;
                snap.zone = Some(found.zone);
                return snap;
            }
            Ok(found) => {
                snap.notes.push(format!(
                    "the resolvers cannot find the zone of {domain} ({e}); its delegation was read at the parent's servers directly"
                ));
                snap.resolver_failure = Some(e);
                snap.parent_zone = found.parent;
                snap.parent_servers = found.parent_servers;
                snap.referral = found.referral;
                parents = found.parent_addresses;
                direct = true;
                found.zone
            }
            Err(e2) => {
                snap.failure = Some(format!(
                    "the resolvers cannot find the zone of {domain} ({e}), and neither can the parent's servers asked directly ({e2})"
                ));
                return snap;
            }
        },
    };
    snap.zone = Some(zone.clone());

    if !direct {
        // 2. the parent zone and its servers
        if zone != "." {
            let above = zone.split_once('.').map_or(".".to_string(), |(_, rest)| rest.to_string());
            match find_zone(rec, &above).await {
                Ok((parent, _)) => {
                    snap.parent_zone = Some(parent.clone());
                    match ns_names(rec, &parent).await {
                        Ok(names) => {
                            snap.parent_servers = names.iter().cloned().collect();
                            let lookups = names.iter().map(|n| async move { (n.clone(), lookup_host(rec, n).await) });
                            for (n, h) in join_all(lookups).await {
                                for a in h.addresses {
                                    parents.push((n.clone(), a));
                                }
                            }
                        }
                        Err(e) => snap.notes.push(format!("cannot find the servers of the parent zone {parent}: {e}")),
                    }
                }
                Err(e) => snap.notes.push(format!("cannot find the parent zone of {zone}: {e}")),
            }
        }

        // 3. the referral and 4. the zone's own NS RRset, at the same time
        let (refer, zone_ns) = tokio::join!(
            async {
                if parents.is_empty() { None } else { Some(referral(prober, &parents, settings.port, &zone).await) }
            },
            ns_names(rec, &zone)
        );
        match refer {
            Some(Ok(r)) => snap.referral = Some(r),
            Some(Err(e)) => snap.notes.push(e),
            None => {}
        }
        match zone_ns {
            Ok(n) => snap.zone_ns_resolved = n,
            Err(e) => snap.notes.push(format!("cannot get the NS records of {zone}: {e}")),
        }
    }

    // name servers, their addresses, and what each address says
    let mut names: BTreeSet<String> = snap.zone_ns_resolved.clone();
    if let Some(r) = &snap.referral {
        names.extend(r.ns.iter().cloned());
    }
    let mut asked: HashMap<IpAddr, Answers> = HashMap::new();
    let mut pending = names;
    for _pass in 0..2 {
        add_ns_names(rec, direct, &mut snap, &pending).await;
        let addresses: BTreeSet<IpAddr> = snap
            .ns_names
            .values()
            .flat_map(|n| n.glue.iter().chain(n.resolved.iter()).copied())
            .filter(|a| !asked.contains_key(a))
            .collect();
        let asks = addresses.iter().map(|&a| {
            let zone = zone.clone();
            let domain = domain.clone();
            async move { (a, ask_server(prober, SocketAddr::new(a, settings.port), &zone, &domain, txt_names).await) }
        });
        asked.extend(join_all(asks).await);
        // names the servers serve that neither the parent nor the resolvers named
        let served: BTreeSet<String> = asked
            .values()
            .filter(|a| a.standing == Standing::Authoritative)
            .filter_map(|a| a.ns.as_ref())
            .flatten()
            .filter(|n| !snap.ns_names.contains_key(*n))
            .cloned()
            .collect();
        if served.is_empty() {
            break;
        }
        pending = served;
    }
    for (nname, info) in &snap.ns_names {
        let addrs: BTreeSet<IpAddr> = info.glue.iter().chain(info.resolved.iter()).copied().collect();
        for a in addrs {
            let Some(ans) = asked.get(&a) else { continue };
            snap.servers.push(Server {
                name: nname.clone(),
                address: a,
                standing: ans.standing.clone(),
                rtt_seconds: ans.rtt,
                soa: ans.soa.clone(),
                ns: ans.ns.clone(),
                mx: ans.mx.clone(),
                apex: ans.apex.clone(),
                txt: ans.txt.clone(),
                txt_cname: ans.txt_cname.clone(),
                query_failures: if ans.standing == Standing::Authoritative {
                    ans.failures.clone()
                } else {
                    BTreeMap::new()
                },
            });
        }
    }
    let zone_ns = snap.zone_ns();
    for (n, info) in snap.ns_names.iter_mut() {
        info.in_zone = zone_ns.contains(n);
    }

    // MX exchanges, resolved as a sender would
    let exchanges: BTreeSet<String> = snap
        .mx_union()
        .into_iter()
        .filter(|m| !m.is_null() && !is_address_literal(&m.exchange))
        .map(|m| m.exchange)
        .collect();
    let lookups = exchanges.iter().map(|e| async move { (e.clone(), lookup_host(resolvers, e).await) });
    // and, at the same time, DNSSEC: DS from the parent, DNSKEY and RRSIGs per server
    let served = asked.iter_mut().map(|(a, ans)| (*a, std::mem::take(&mut ans.signed_sets))).collect();
    let dnssec =
        super::dnssec_round::gather(prober, settings.port, settings.dnssec_expiry_warning, &parents, &snap, served);
    let (mx_hosts, dnssec) = tokio::join!(join_all(lookups), dnssec);
    snap.mx_hosts = mx_hosts.into_iter().collect();
    snap.dnssec = dnssec;

    // what the mail policy checks need beyond the servers' TXT answers
    let validating = if settings.resolvers.is_empty() { super::system_resolvers() } else { settings.resolvers.clone() };
    let how = super::policy::How {
        rec,
        prober,
        smtp_probe_port: settings.smtp_probe_port,
        validating: &validating,
        mail_tls: &settings.mail_tls,
    };
    super::policy::gather(&how, &mut snap, config).await;
    snap
}

/// Resolves NS names not seen yet and records where their addresses came from.
async fn add_ns_names(rec: &Recursive, direct: bool, snap: &mut Snapshot, names: &BTreeSet<String>) {
    let zone = snap.zone.clone().unwrap_or_default();
    // when the resolvers failed for the zone, names inside it are reached through
    // the parent's glue only: asking the resolvers again would fail the same way
    let skip = |n: &str| direct && in_zone(n, &zone);
    let lookups = names.iter().filter(|n| !snap.ns_names.contains_key(*n)).map(|n| async move {
        let h = if skip(n) { None } else { Some(lookup_host(rec, n).await) };
        (n.clone(), h)
    });
    for (n, h) in join_all(lookups).await {
        let mut info = NsName::default();
        if let Some(r) = &snap.referral {
            info.in_parent = r.ns.contains(&n);
            info.glue = r.glue.get(&n).cloned().unwrap_or_default();
        }
        match h {
            Some(h) => {
                info.resolved = h.addresses;
                if info.resolved.is_empty() {
                    info.absent = h.nxdomain || h.error.is_none();
                    info.error = Some(match (&h.error, h.nxdomain) {
                        (_, true) => format!("{n} does not exist (NXDOMAIN)"),
                        (Some(e), _) => e.clone(),
                        (None, false) => format!("{n} has no A or AAAA record"),
                    });
                }
            }
            None if info.glue.is_empty() => {
                info.error = Some(format!("{n}: no glue at the parent, and the resolvers fail for {zone}"));
            }
            None => {}
        }
        snap.ns_names.insert(n, info);
    }
}

/// Runs [`snapshot`] under a deadline: a round can never hang.
pub async fn snapshot_with_deadline(
    prober: &Prober,
    settings: &Settings,
    domain: &DomainConfig,
    deadline: Duration,
) -> Result<Snapshot, String> {
    tokio::time::timeout(deadline, snapshot(prober, settings, domain))
        .await
        .map_err(|_| format!("the round for {} did not finish within {:.0}s", domain.name, deadline.as_secs_f64()))
}
