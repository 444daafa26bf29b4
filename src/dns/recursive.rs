//! Recursive lookups, the way a sender's resolver makes them: through
//! hickory-resolver's name server pool, configured from `[dns] resolvers` (or
//! `/etc/resolv.conf` with its options when that list is empty).
//!
//! The pool brings retries (retransmission within an attempt), fail-over between
//! the resolvers, TCP when an answer is truncated (RFC 7766 §5) and one query in
//! flight per question. Above it, a [`Recursive`] keeps a cache for one round,
//! shared by every domain of it: shared names (a provider's name servers, its MX
//! hosts, SPF includes) are asked once per round, and no answer outlives the round.
//! hickory's caching `Resolver` is not used on purpose: it answers the special-use
//! names of RFC 6761 itself (every name under `127.in-addr.arpa` is `localhost`),
//! where a monitor must report what the resolvers say.
//!
//! Recursive lookups have their own time budget ([`recursive_timeout`]): a cold
//! resolution walks the tree from the root and legitimately takes longer than one
//! authoritative answer. A lookup is tried twice within [`Recursive::budget`]; a
//! silent resolver costs that much, and is reported as a failed lookup.
//!
//! The direct RD=0 questions to authoritative servers do not come here: they stay
//! on [`super::probe::Prober`].

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::{BoxFuture, Shared};
use futures_util::{FutureExt, StreamExt};
use hickory_proto::op::{DnsRequestOptions, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, DnsHandle, NetError};
use hickory_resolver::{NameServerPool, PoolContext, TlsConfig};
use tokio::time::Instant;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

use super::probe::{QueryResult, QueryResultLabels, Response};
use super::snapshot::{HostLookup, norm};

/// The most CNAMEs followed for one name (RFC 1034 §3.6.2 does not bound it; BIND
/// stops at 16, most resolvers earlier).
const MAX_CNAMES: usize = 8;

/// How long one attempt of a recursive lookup may take: three query timeouts, at
/// least 3 s (a cold resolver walks from the root; Unbound's own first-contact
/// timeout is about 376 ms per server, several servers deep).
pub fn recursive_timeout(query_timeout: Duration) -> Duration {
    (query_timeout * 3).max(Duration::from_secs(3))
}

/// Parses a name; a missing final dot is added (every name asked is absolute).
pub fn name(s: &str) -> Result<Name, String> {
    let fq = if s.ends_with('.') { s.to_string() } else { format!("{s}.") };
    Name::from_ascii(&fq).map_err(|e| format!("invalid name {s:?}: {e}"))
}

/// An rcode in the words of RFC 1035 §4.1.1 and RFC 6895.
pub fn rcode_text(r: ResponseCode) -> String {
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

/// The most answers a round's cache keeps; the oldest goes first. Names shared by
/// the round's domains are asked close together (the domains of a round are in
/// flight together), so a bounded cache keeps the sharing and memory stays flat
/// for large configurations.
const CACHE_MAX: usize = 2048;

/// A round's answers by question, and the order they came in (for eviction).
#[derive(Default)]
struct Cache {
    map: HashMap<(String, RecordType), Result<Response, String>>,
    order: std::collections::VecDeque<(String, RecordType)>,
}

impl Cache {
    fn get(&self, key: &(String, RecordType)) -> Option<Result<Response, String>> {
        self.map.get(key).cloned()
    }

    fn insert(&mut self, key: (String, RecordType), value: Result<Response, String>) {
        if self.map.insert(key.clone(), value).is_none() {
            self.order.push_back(key);
        }
        while self.order.len() > CACHE_MAX {
            if let Some(old) = self.order.pop_front() {
                self.map.remove(&old);
            }
        }
    }
}

/// One round's recursive resolver.
#[derive(Clone)]
pub struct Recursive {
    pool: Option<NameServerPool<TokioRuntimeProvider>>,
    /// Why there is no pool (no usable configuration), for messages.
    problem: Option<String>,
    /// The round's answers, by question.
    cache: Arc<Mutex<Cache>>,
    /// The most one attempt may take.
    attempt: Duration,
    /// The resolvers, for messages.
    servers: String,
    /// Bounds the lookups in flight ([`Recursive::with_limit`]).
    limit: Option<Arc<tokio::sync::Semaphore>>,
    /// `mailroute_dns_queries_total`: every attempt counts, by result.
    counters: Option<Family<QueryResultLabels, Counter>>,
    /// The lookups in flight, shared by everyone asking the same question meanwhile.
    in_flight: Arc<Mutex<HashMap<(String, RecordType), InFlight>>>,
}

/// A lookup in flight that several askers await.
type InFlight = Shared<BoxFuture<'static, Result<Response, String>>>;

impl std::fmt::Debug for Recursive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recursive").field("servers", &self.servers).field("attempt", &self.attempt).finish()
    }
}

fn name_server(a: SocketAddr) -> NameServerConfig {
    let mut udp = ConnectionConfig::udp();
    udp.port = a.port();
    let mut tcp = ConnectionConfig::tcp();
    tcp.port = a.port();
    NameServerConfig::new(a.ip(), true, vec![udp, tcp])
}

impl Recursive {
    /// A resolver asking `resolvers` in order (any port), or those of
    /// `/etc/resolv.conf` with its options when the list is empty. One attempt takes
    /// at most [`recursive_timeout`] of `query_timeout` (or resolv.conf's timeout,
    /// if longer); one more attempt follows a failed one.
    pub fn new(resolvers: &[SocketAddr], query_timeout: Duration) -> Recursive {
        let mut attempt = recursive_timeout(query_timeout);
        let fail = |problem: String, attempt| Recursive {
            pool: None,
            problem: Some(problem),
            cache: Arc::default(),
            attempt,
            servers: "(none)".to_string(),
            limit: None,
            counters: None,
            in_flight: Arc::default(),
        };
        let mut opts = ResolverOpts::default();
        let servers: Vec<NameServerConfig> = if resolvers.is_empty() {
            match hickory_resolver::system_conf::read_system_conf() {
                Ok((c, o)) => {
                    attempt = attempt.max(o.timeout);
                    opts = o;
                    c.into_parts().2
                }
                Err(e) => {
                    return fail(format!("no resolvers configured and /etc/resolv.conf is unusable: {e}"), attempt);
                }
            }
        } else {
            resolvers.iter().copied().map(name_server).collect()
        };
        if servers.is_empty() {
            return fail("no resolvers configured, and none in /etc/resolv.conf".to_string(), attempt);
        }
        let names = servers
            .iter()
            .map(|n| SocketAddr::new(n.ip, n.connections.first().map_or(53, |c| c.port)).to_string())
            .collect::<Vec<_>>()
            .join(", ");
        opts.timeout = attempt;
        opts.num_concurrent_reqs = 1;
        opts.try_tcp_on_error = true;
        opts.edns0 = true;
        let tls = match TlsConfig::new() {
            Ok(t) => t,
            Err(e) => return fail(format!("cannot set up the resolver: {e}"), attempt),
        };
        let cx = Arc::new(PoolContext::new(opts, tls));
        let pool = NameServerPool::from_config(servers, cx, TokioRuntimeProvider::default());
        Recursive {
            pool: Some(pool),
            problem: None,
            cache: Arc::default(),
            attempt,
            servers: names,
            limit: None,
            counters: None,
            in_flight: Arc::default(),
        }
    }

    /// At most `n` lookups in flight at once (a round uses `dns.concurrency`), so a
    /// large round does not flood the resolvers.
    pub fn with_limit(mut self, n: usize) -> Recursive {
        self.limit = Some(Arc::new(tokio::sync::Semaphore::new(n.max(1))));
        self
    }

    /// Counts every attempt in `counters` (`mailroute_dns_queries_total`), as the
    /// prober counts its queries to the authoritative servers.
    pub fn with_counters(mut self, counters: Option<Family<QueryResultLabels, Counter>>) -> Recursive {
        self.counters = counters;
        self
    }

    /// The most one lookup may take: two attempts and a margin.
    pub fn budget(&self) -> Duration {
        self.attempt * 2 + Duration::from_millis(200)
    }

    /// Looks `qname`/`rtype` up, RD=1. NOERROR (with or without records) and
    /// NXDOMAIN are answers; a timeout, SERVFAIL, REFUSED or any other failure is
    /// an error in words. The answer's records are those of the response (CNAMEs
    /// kept; for a negative answer the authority section holds the SOA). Answers
    /// and failures are kept for the rest of the round.
    /// Concurrent askers of one question share the one lookup in flight.
    pub async fn query(&self, qname: &str, rtype: RecordType) -> Result<Response, String> {
        let key = (norm(qname), rtype);
        if let Some(hit) = self.cache.lock().ok().and_then(|c| c.get(&key)) {
            return hit;
        }
        let shared = {
            let Ok(mut flying) = self.in_flight.lock() else { return self.fetch(qname, rtype).await };
            match flying.get(&key) {
                Some(f) => f.clone(),
                None => {
                    // the lookup runs as a task of its own: an asker cut by its deadline
                    // neither stops it for the others nor leaves it holding a slot of
                    // the bound on lookups in flight
                    let me = self.clone();
                    let q = qname.to_string();
                    let k = key.clone();
                    let task = tokio::spawn(async move {
                        let r = me.fetch(&q, rtype).await;
                        if let Ok(mut c) = me.cache.lock() {
                            c.insert(k.clone(), r.clone());
                        }
                        if let Ok(mut flying) = me.in_flight.lock() {
                            flying.remove(&k);
                        }
                        r
                    });
                    let f = task
                        .map(|j| j.unwrap_or_else(|e| Err(format!("the lookup task failed: {e}"))))
                        .boxed()
                        .shared();
                    flying.insert(key, f.clone());
                    f
                }
            }
        };
        shared.await
    }

    /// One lookup, within the bound on lookups in flight.
    async fn fetch(&self, qname: &str, rtype: RecordType) -> Result<Response, String> {
        match &self.limit {
            Some(limit) => match limit.acquire().await {
                Ok(_permit) => self.ask(qname, rtype).await,
                Err(_) => Err(format!("{qname} {rtype}: the resolver is closed")),
            },
            None => self.ask(qname, rtype).await,
        }
    }

    async fn ask(&self, qname: &str, rtype: RecordType) -> Result<Response, String> {
        let Some(pool) = &self.pool else {
            return Err(format!("{qname} {rtype}: {}", self.problem.as_deref().unwrap_or("no resolver")));
        };
        let n = name(qname)?;
        let fail = |why: String| Err(format!("{qname} {rtype}: resolvers {}: {why}", self.servers));
        let started = Instant::now();
        let deadline = started + self.budget();
        let mut last = String::new();
        for _ in 0..2 {
            let mut opts = DnsRequestOptions::default();
            opts.recursion_desired = true;
            opts.use_edns = true;
            let mut answers = pool.lookup(Query::query(n.clone(), rtype), opts);
            let left = deadline.saturating_duration_since(Instant::now());
            let outcome = match tokio::time::timeout(left, answers.next()).await {
                Err(_) => Err(format!("no answer within {:.1}s", self.budget().as_secs_f64())),
                Ok(None) => Err("no answer".to_string()),
                Ok(Some(Ok(resp))) => {
                    let msg = resp.into_message();
                    match msg.metadata.response_code {
                        ResponseCode::NoError | ResponseCode::NXDomain => Ok(Response {
                            rcode: msg.metadata.response_code,
                            authoritative: msg.metadata.authoritative,
                            truncated: msg.metadata.truncation,
                            authentic_data: msg.metadata.authentic_data,
                            answers: msg.answers,
                            authorities: msg.authorities,
                            // nothing reads the additional section of a recursive answer
                            additionals: Vec::new(),
                            tcp: false,
                            rtt: started.elapsed(),
                        }),
                        rc => Err(format!("answered {}", rcode_text(rc))),
                    }
                }
                Ok(Some(Err(NetError::Dns(DnsError::ResponseCode(rc))))) => Err(format!("answered {}", rcode_text(rc))),
                Ok(Some(Err(NetError::Dns(DnsError::NoRecordsFound(nr)))))
                    if matches!(nr.response_code, ResponseCode::NoError | ResponseCode::NXDomain) =>
                {
                    let mut authorities: Vec<Record> =
                        nr.authorities.as_deref().map(<[Record]>::to_vec).unwrap_or_default();
                    if let Some(soa) = &nr.soa
                        && !authorities.iter().any(|r| matches!(r.data, RData::SOA(_)))
                    {
                        authorities.push(Record::from_rdata(soa.name.clone(), soa.ttl, RData::SOA(soa.data.clone())));
                    }
                    Ok(Response {
                        rcode: nr.response_code,
                        authoritative: false,
                        truncated: false,
                        authentic_data: false,
                        answers: Vec::new(),
                        authorities,
                        additionals: Vec::new(),
                        tcp: false,
                        rtt: started.elapsed(),
                    })
                }
                Ok(Some(Err(NetError::Dns(DnsError::NoRecordsFound(nr))))) => {
                    Err(format!("answered {}", rcode_text(nr.response_code)))
                }
                Ok(Some(Err(NetError::Timeout))) => Err("no answer (timeout)".to_string()),
                Ok(Some(Err(e))) => Err(e.to_string()),
            };
            if let Some(c) = &self.counters {
                c.get_or_create(&QueryResultLabels { result: attempt_result(&outcome).as_str() }).inc();
            }
            match outcome {
                Ok(resp) => return Ok(resp),
                Err(e) => last = e,
            }
            if Instant::now() >= deadline {
                break;
            }
        }
        fail(last)
    }
}

/// The `result` label of one attempt: the words of [`Recursive::query`]'s errors
/// map back onto the prober's classes.
fn attempt_result(outcome: &Result<Response, String>) -> QueryResult {
    match outcome {
        Ok(_) => QueryResult::Ok,
        Err(e) if e.starts_with("answered SERVFAIL") => QueryResult::Servfail,
        Err(e) if e.starts_with("answered REFUSED") => QueryResult::Refused,
        Err(e) if e.starts_with("no answer") => QueryResult::Timeout,
        Err(_) => QueryResult::Error,
    }
}

fn owner(r: &Record) -> String {
    norm(&r.name.to_ascii())
}

/// The zone holding `qname`: the owner of an SOA in the answer or authority
/// section of an SOA query; and whether the name does not exist.
pub async fn find_zone(rec: &Recursive, qname: &str) -> Result<(String, bool), String> {
    let resp = rec.query(qname, RecordType::SOA).await?;
    let nx = resp.rcode == ResponseCode::NXDomain;
    let soa = resp.answers.iter().chain(resp.authorities.iter()).find(|r| matches!(r.data, RData::SOA(_))).map(owner);
    match soa {
        Some(zone) => Ok((zone, nx)),
        None => Err(format!("no SOA record for {qname} or an enclosing zone ({})", rcode_text(resp.rcode))),
    }
}

/// NS names of a zone.
pub async fn ns_names(rec: &Recursive, zone: &str) -> Result<BTreeSet<String>, String> {
    let resp = rec.query(zone, RecordType::NS).await?;
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

/// Resolves a host name's A and AAAA records the way a sender would.
pub async fn lookup_host(rec: &Recursive, host: &str) -> HostLookup {
    let (a, aaaa) = tokio::join!(rec.query(host, RecordType::A), rec.query(host, RecordType::AAAA));
    host_lookup(host, [a, aaaa])
}

/// Folds the A and AAAA answers for `host` into a [`HostLookup`].
pub fn host_lookup(host: &str, answers: [Result<Response, String>; 2]) -> HostLookup {
    let mut out = HostLookup::default();
    let mut errors = Vec::new();
    for r in answers {
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
                        for rec in resp.answers.iter().filter(|r| owner(r) == target) {
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

/// Joins the strings of a TXT record (RFC 7208 §3.3: no separator).
pub fn txt_string(strings: &[Box<[u8]>]) -> String {
    let bytes: Vec<u8> = strings.iter().flat_map(|s| s.iter().copied()).collect();
    String::from_utf8_lossy(&bytes).into_owned()
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
    fn the_cache_keeps_the_newest_answers() {
        let mut c = Cache::default();
        for i in 0..CACHE_MAX + 10 {
            c.insert((format!("n{i}.test"), RecordType::A), Err(format!("{i}")));
        }
        assert_eq!(c.map.len(), CACHE_MAX);
        assert!(c.get(&("n0.test".to_string(), RecordType::A)).is_none());
        let newest = c.get(&(format!("n{}.test", CACHE_MAX + 9), RecordType::A));
        assert_eq!(newest.and_then(Result::err), Some(format!("{}", CACHE_MAX + 9)));
        // asking again for a kept name does not grow the order
        c.insert(("n20.test".to_string(), RecordType::A), Err("again".into()));
        assert_eq!(c.order.len(), CACHE_MAX);
    }

    #[test]
    fn budgets() {
        assert_eq!(recursive_timeout(Duration::from_millis(200)), Duration::from_secs(3));
        assert_eq!(recursive_timeout(Duration::from_secs(2)), Duration::from_secs(6));
    }

    #[tokio::test]
    async fn a_silent_resolver_is_a_failed_lookup_within_the_budget() {
        // a socket that reads nothing: every query to it goes unanswered
        let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let rec = Recursive::new(&[silent.local_addr().unwrap()], Duration::from_millis(100));
        let started = std::time::Instant::now();
        let r = rec.query("example.test", RecordType::SOA).await;
        let e = r.unwrap_err();
        assert!(e.starts_with("example.test SOA: resolvers 127.0.0.1:"), "{e}");
        assert!(started.elapsed() <= rec.budget() + Duration::from_millis(500), "{:?}", started.elapsed());
        let h = lookup_host(&rec, "mx.example.test").await;
        assert!(h.addresses.is_empty() && h.error.is_some(), "{h:?}");
    }
}
