//! One round for one domain: discovery through the recursive resolvers, then every
//! authoritative server asked directly, all gathered into a [`Snapshot`].
//!
//! Discovery (all through the resolvers, RD=1):
//! 1. the zone that holds the domain: the owner of the SOA in the answer or
//!    authority section of an SOA query for the domain (it may sit above the domain);
//! 2. the parent zone the same way, and the parent's name servers and addresses;
//! 3. the parent's referral for the zone, asked of a parent server with RD=0: NS
//!    names in the authority section, glue in the additional section;
//! 4. the zone's own NS RRset, and every address of every NS name (glue and
//!    resolver answers).
//!
//! Then each address of each name server is asked, with RD=0, for the zone's SOA
//! and NS and the domain's MX, A and AAAA (and the TXT names the policy checks
//! read). MX exchanges are resolved the way a sender would: through the resolvers,
//! CNAMEs followed. Last, [`super::policy::gather`] collects what the mail policy
//! checks need beyond that (SPF expansion, reverse DNS, the SMTP probe).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use futures_util::future::join_all;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::probe::{Failure, Prober, Response};
use super::snapshot::{HostLookup, Mx, NsName, Referral, Server, Snapshot, Soa, Standing, norm};
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
}

/// The most CNAMEs followed for one name (RFC 1034 §3.6.2 does not bound it; BIND
/// stops at 16, most resolvers earlier).
const MAX_CNAMES: usize = 8;

fn name(s: &str) -> Result<Name, String> {
    let fq = if s.ends_with('.') { s.to_string() } else { format!("{s}.") };
    Name::from_ascii(&fq).map_err(|e| format!("invalid name {s:?}: {e}"))
}

fn rcode_text(r: ResponseCode) -> String {
    match r {
        ResponseCode::NoError => "NOERROR".to_string(),
        ResponseCode::NXDomain => "NXDOMAIN".to_string(),
        ResponseCode::ServFail => "SERVFAIL".to_string(),
        ResponseCode::Refused => "REFUSED".to_string(),
        ResponseCode::FormErr => "FORMERR".to_string(),
        ResponseCode::NotImp => "NOTIMP".to_string(),
        other => format!("{other:?}").to_uppercase(),
    }
}

/// Asks the resolvers in turn; an answer other than SERVFAIL or REFUSED ends it.
pub async fn resolve(
    prober: &Prober,
    resolvers: &[SocketAddr],
    qname: &str,
    rtype: RecordType,
) -> Result<Response, String> {
    let n = name(qname)?;
    let mut problems = Vec::new();
    for &r in resolvers {
        match prober.query(r, &n, rtype, true).await {
            Ok(resp) if !matches!(resp.rcode, ResponseCode::ServFail | ResponseCode::Refused) => return Ok(resp),
            Ok(resp) => problems.push(format!("resolver {r} answered {}", rcode_text(resp.rcode))),
            Err(e) => problems.push(format!("resolver {r}: {e}")),
        }
    }
    if problems.is_empty() {
        problems.push("no resolvers configured".to_string());
    }
    Err(format!("{qname} {rtype}: {}", problems.join("; ")))
}

fn owner(r: &Record) -> String {
    norm(&r.name.to_ascii())
}

/// The zone holding `qname`: the owner of an SOA in the answer or authority section.
pub async fn find_zone(prober: &Prober, resolvers: &[SocketAddr], qname: &str) -> Result<(String, bool), String> {
    let resp = resolve(prober, resolvers, qname, RecordType::SOA).await?;
    let nx = resp.rcode == ResponseCode::NXDomain;
    let soa = resp.answers.iter().chain(resp.authorities.iter()).find(|r| matches!(r.data, RData::SOA(_))).map(owner);
    match soa {
        Some(zone) => Ok((zone, nx)),
        None => Err(format!("no SOA record for {qname} or an enclosing zone ({})", rcode_text(resp.rcode))),
    }
}

/// Resolves a host name's A and AAAA records the way a sender would.
pub async fn lookup_host(prober: &Prober, resolvers: &[SocketAddr], host: &str) -> HostLookup {
    let (a, aaaa) = tokio::join!(
        resolve(prober, resolvers, host, RecordType::A),
        resolve(prober, resolvers, host, RecordType::AAAA)
    );
    let mut out = HostLookup::default();
    let mut errors = Vec::new();
    for r in [a, aaaa] {
        match r {
            Err(e) => errors.push(e),
            Ok(resp) => {
                if resp.rcode == ResponseCode::NXDomain {
                    out.nxdomain = true;
                }
                match follow_cnames(host, &resp.answers) {
                    Ok((chain, target)) => {
                        if out.cnames.len() < chain.len() {
                            out.cnames = chain;
                        }
                        for rec in &resp.answers {
                            if owner(rec) != target {
                                continue;
                            }
                            match &rec.data {
                                RData::A(a) => {
                                    out.addresses.insert(IpAddr::V4(a.0));
                                }
                                RData::AAAA(a) => {
                                    out.addresses.insert(IpAddr::V6(a.0));
                                }
                                _ => {}
                            }
                        }
                    }
                    Err(e) => errors.push(e),
                }
            }
        }
    }
    if out.addresses.is_empty() && !errors.is_empty() {
        out.error = Some(errors.join("; "));
    }
    out
}

/// Follows CNAME records in an answer from `start`; returns the chain and the final
/// name. A loop or an over-long chain is an error.
pub fn follow_cnames(start: &str, answers: &[Record]) -> Result<(Vec<String>, String), String> {
    let mut current = norm(start);
    let mut chain = Vec::new();
    let mut seen = BTreeSet::from([current.clone()]);
    loop {
        let next = answers.iter().find_map(|r| match &r.data {
            RData::CNAME(c) if owner(r) == current => Some(norm(&c.0.to_ascii())),
            _ => None,
        });
        let Some(next) = next else { return Ok((chain, current)) };
        if !seen.insert(next.clone()) {
            return Err(format!("CNAME loop at {next} (from {start})"));
        }
        if chain.len() >= MAX_CNAMES {
            return Err(format!("more than {MAX_CNAMES} CNAMEs from {start}"));
        }
        chain.push(next.clone());
        current = next;
    }
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

/// Joins the strings of a TXT record (RFC 7208 §3.3: no separator).
pub fn txt_string(strings: &[Box<[u8]>]) -> String {
    let bytes: Vec<u8> = strings.iter().flat_map(|s| s.iter().copied()).collect();
    String::from_utf8_lossy(&bytes).into_owned()
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
            (full, value, cname)
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
    let txt_cname = txts.iter().filter_map(|(n, _, c)| c.clone().map(|c| (n.clone(), c))).collect();
    let txt = txts.into_iter().map(|(n, v, _)| (n, v)).collect();
    Answers { standing, rtt, soa: soa_data, ns, mx, apex, txt, txt_cname, signed_sets }
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
        return Ok(Referral { from: format!("{pname} ({addr})"), ns, glue });
    }
    Err(format!("no referral for {zone} from the parent's servers: {}", problems.join("; ")))
}

/// NS names of a zone through the resolvers.
async fn ns_names(prober: &Prober, resolvers: &[SocketAddr], zone: &str) -> Result<BTreeSet<String>, String> {
    let resp = resolve(prober, resolvers, zone, RecordType::NS).await?;
    Ok(resp
        .answers
        .iter()
        .filter(|r| owner(r) == zone)
        .filter_map(|r| match &r.data {
            RData::NS(n) => Some(norm(&n.0.to_ascii())),
            _ => None,
        })
        .collect())
}

/// Runs discovery and the server probes for one domain.
pub async fn snapshot(prober: &Prober, settings: &Settings, config: &DomainConfig) -> Snapshot {
    let domain = norm(&config.name);
    let resolvers = &settings.resolvers;
    let txt_names = super::domain_txt_names(config);
    let txt_names = &txt_names;
    let mut snap = Snapshot { domain: domain.clone(), ..Snapshot::default() };

    // 1. the zone holding the domain
    let zone = match find_zone(prober, resolvers, &domain).await {
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
        Err(e) => {
            snap.notes.push(format!("cannot find the zone of {domain}: {e}"));
            return snap;
        }
    };
    snap.zone = Some(zone.clone());

    // 2. the parent zone and its servers
    let mut parents: Vec<(String, IpAddr)> = Vec::new();
    if zone != "." {
        let above = zone.split_once('.').map_or(".".to_string(), |(_, rest)| rest.to_string());
        match find_zone(prober, resolvers, &above).await {
            Ok((parent, _)) => {
                snap.parent_zone = Some(parent.clone());
                match ns_names(prober, resolvers, &parent).await {
                    Ok(names) => {
                        snap.parent_servers = names.iter().cloned().collect();
                        let lookups =
                            names.iter().map(|n| async move { (n.clone(), lookup_host(prober, resolvers, n).await) });
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
        async { if parents.is_empty() { None } else { Some(referral(prober, &parents, settings.port, &zone).await) } },
        ns_names(prober, resolvers, &zone)
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

    // name servers, their addresses, and what each address says
    let mut names: BTreeSet<String> = snap.zone_ns_resolved.clone();
    if let Some(r) = &snap.referral {
        names.extend(r.ns.iter().cloned());
    }
    let mut asked: HashMap<IpAddr, Answers> = HashMap::new();
    let mut pending = names;
    for _pass in 0..2 {
        add_ns_names(prober, settings, &mut snap, &pending).await;
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
    let lookups = exchanges.iter().map(|e| async move { (e.clone(), lookup_host(prober, resolvers, e).await) });
    // and, at the same time, DNSSEC: DS from the parent, DNSKEY and RRSIGs per server
    let served = asked.iter_mut().map(|(a, ans)| (*a, std::mem::take(&mut ans.signed_sets))).collect();
    let dnssec =
        super::dnssec_round::gather(prober, settings.port, settings.dnssec_expiry_warning, &parents, &snap, served);
    let (mx_hosts, dnssec) = tokio::join!(join_all(lookups), dnssec);
    snap.mx_hosts = mx_hosts.into_iter().collect();
    snap.dnssec = dnssec;

    // what the mail policy checks need beyond the servers' TXT answers
    super::policy::gather(prober, settings, &mut snap, config).await;
    snap
}

/// Resolves NS names not seen yet and records where their addresses came from.
async fn add_ns_names(prober: &Prober, settings: &Settings, snap: &mut Snapshot, names: &BTreeSet<String>) {
    let lookups = names
        .iter()
        .filter(|n| !snap.ns_names.contains_key(*n))
        .map(|n| async move { (n.clone(), lookup_host(prober, &settings.resolvers, n).await) });
    for (n, h) in join_all(lookups).await {
        let mut info = NsName::default();
        if let Some(r) = &snap.referral {
            info.in_parent = r.ns.contains(&n);
            info.glue = r.glue.get(&n).cloned().unwrap_or_default();
        }
        info.resolved = h.addresses;
        if info.resolved.is_empty() {
            info.error = Some(match (&h.error, h.nxdomain) {
                (_, true) => format!("{n} does not exist (NXDOMAIN)"),
                (Some(e), _) => e.clone(),
                (None, false) => format!("{n} has no A or AAAA record"),
            });
        }
        snap.ns_names.insert(n, info);
    }
}

/// An MX exchange written as an IP address (`127.0.54.70.` or an IPv6 literal).
pub fn is_address_literal(exchange: &str) -> bool {
    let e = exchange.trim_end_matches('.');
    let e = e.trim_start_matches('[').trim_end_matches(']');
    e.parse::<IpAddr>().is_ok()
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

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::rdata::{A, CNAME};

    fn cname(from: &str, to: &str) -> Record {
        Record::from_rdata(name(from).unwrap(), 60, RData::CNAME(CNAME(name(to).unwrap())))
    }

    #[test]
    fn cname_chains() {
        let answers = vec![
            cname("mail.x.test", "host.x.test"),
            Record::from_rdata(name("host.x.test").unwrap(), 60, RData::A(A::new(127, 0, 0, 1))),
        ];
        assert_eq!(
            follow_cnames("mail.x.test.", &answers),
            Ok((vec!["host.x.test".to_string()], "host.x.test".to_string()))
        );
        assert_eq!(follow_cnames("host.x.test", &answers), Ok((vec![], "host.x.test".to_string())));
        let looped = vec![cname("a.x.test", "b.x.test"), cname("b.x.test", "a.x.test")];
        assert!(follow_cnames("a.x.test", &looped).unwrap_err().contains("loop"));
    }

    #[test]
    fn literals() {
        assert!(is_address_literal("127.0.54.70."));
        assert!(is_address_literal("[2001:db8::1]"));
        assert!(!is_address_literal("mx.example.org"));
        assert!(!is_address_literal("127.0.54.example"));
    }
}
