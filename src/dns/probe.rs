//! The probe: one query to one server, nothing more.
//!
//! A query goes out over UDP with EDNS (1232-byte payload, the DNS flag day 2020
//! value), RD set only when asking a recursive resolver; queries to authoritative
//! servers (RD=0) carry the DO bit (RFC 3225), so signed zones come with their RRSIGs.
//! A truncated answer (TC=1) is
//! asked again over TCP. The answer is kept as the server sent it — rcode, AA flag and
//! all three sections — because the checks need exactly what a caching resolver hides
//! (REFUSED, missing AA, referrals). Replies with the wrong id or question are ignored,
//! as a resolver does (RFC 5452 §9.1); garbage is remembered and reported if nothing
//! valid arrives before the per-query timeout. A semaphore bounds queries in flight.
//!
//! Politeness (SPEC §7.1 `max_qps_per_server`): every query to an authoritative
//! server (RD=0, UDP and the TCP retry alike) first takes a slot from a
//! [`RateLimiter`] shared by every round and every `/probe`, so no server address
//! sees more than the configured queries per second from this process. Queries to
//! the recursive resolvers (RD=1) are not limited — they are our own resolvers — but
//! a round's [`LookupCache`] asks each of them once per round, so a name shared by
//! thousands of domains (an MX host, a name server, a parent zone) costs one query.
//!
//! This is a small hand-written exchange over tokio sockets with hickory-proto for the
//! wire format, rather than hickory's client stack: we need one query, one answer, an
//! exact deadline, and no retries or connection reuse that would blur which server
//! said what.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, MessageType, Query, ResponseCode};
use hickory_proto::rr::{Name, Record, RecordType};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::Semaphore;

/// The EDNS UDP payload size we advertise.
pub const EDNS_PAYLOAD: u16 = 1232;
/// Receive buffer for UDP replies: room for servers that ignore the advertised size.
const UDP_BUFFER: usize = 4096;

/// A server's answer, as sent.
#[derive(Debug, Clone)]
pub struct Response {
    pub rcode: ResponseCode,
    pub authoritative: bool,
    pub truncated: bool,
    pub answers: Vec<Record>,
    pub authorities: Vec<Record>,
    pub additionals: Vec<Record>,
    /// The answer came over TCP (after a truncated UDP answer, or when asked so).
    pub tcp: bool,
    /// AD: a validating resolver vouches for the answer (RFC 4035 §3.2.3; asked
    /// with DO by [`Prober::query_validated`]).
    pub authentic_data: bool,
    pub rtt: Duration,
}

/// Why there is no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Nothing valid arrived within the timeout.
    Timeout,
    /// Only unreadable or mismatched packets arrived.
    Malformed(String),
    /// The network said no (port unreachable, connection refused or reset, …).
    Network(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Timeout => f.write_str("no answer (timeout)"),
            Failure::Malformed(m) => write!(f, "malformed answer: {m}"),
            Failure::Network(m) => write!(f, "{m}"),
        }
    }
}

pub type ProbeResult = Result<Response, Failure>;

/// `result` label values of `mailroute_dns_queries_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum QueryResult {
    Ok,
    Timeout,
    Refused,
    Servfail,
    Error,
}

impl QueryResult {
    pub const ALL: [QueryResult; 5] =
        [QueryResult::Ok, QueryResult::Timeout, QueryResult::Refused, QueryResult::Servfail, QueryResult::Error];

    pub fn as_str(self) -> &'static str {
        match self {
            QueryResult::Ok => "ok",
            QueryResult::Timeout => "timeout",
            QueryResult::Refused => "refused",
            QueryResult::Servfail => "servfail",
            QueryResult::Error => "error",
        }
    }

    pub fn of(r: &ProbeResult) -> QueryResult {
        match r {
            Ok(resp) => match resp.rcode {
                ResponseCode::NoError | ResponseCode::NXDomain => QueryResult::Ok,
                ResponseCode::Refused => QueryResult::Refused,
                ResponseCode::ServFail => QueryResult::Servfail,
                _ => QueryResult::Error,
            },
            Err(Failure::Timeout) => QueryResult::Timeout,
            Err(_) => QueryResult::Error,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, prometheus_client::encoding::EncodeLabelSet)]
pub struct QueryResultLabels {
    pub result: &'static str,
}

/// Spaces the queries to each server address so that no address sees more than
/// `qps` queries in any one-second window.
///
/// Each query reserves the next free slot of its server (slots `1.02 / qps`
/// seconds apart, 2 % under the limit) and is sent when the slot comes; a query
/// that could not leave within [`RateLimiter::TOLERANCE`] of its slot (the process
/// was busy) reserves a new one rather than bunch up with the next.
#[derive(Debug)]
pub struct RateLimiter {
    qps: u32,
    spacing: Duration,
    next: Mutex<HashMap<SocketAddr, tokio::time::Instant>>,
}

impl RateLimiter {
    /// How late after its slot a query may still leave.
    pub const TOLERANCE: Duration = Duration::from_millis(10);
    /// Servers remembered before idle ones are forgotten.
    const MAX_SERVERS: usize = 16_384;

    pub fn new(qps: u32) -> RateLimiter {
        let qps = qps.max(1);
        RateLimiter { qps, spacing: Duration::from_secs_f64(1.02 / f64::from(qps)), next: Mutex::new(HashMap::new()) }
    }

    pub fn qps(&self) -> u32 {
        self.qps
    }

    /// Reserves the next slot of `server`.
    fn reserve(&self, server: SocketAddr) -> tokio::time::Instant {
        let now = tokio::time::Instant::now();
        let Ok(mut next) = self.next.lock() else { return now };
        if next.len() >= Self::MAX_SERVERS {
            next.retain(|_, t| *t > now);
        }
        let slot = next.get(&server).copied().map_or(now, |t| t.max(now));
        next.insert(server, slot + self.spacing);
        slot
    }

    /// Waits for a slot of `server` and returns it once it is time to send.
    pub async fn wait(&self, server: SocketAddr) -> tokio::time::Instant {
        loop {
            let slot = self.reserve(server);
            tokio::time::sleep_until(slot).await;
            if !Self::late(slot) {
                return slot;
            }
        }
    }

    /// Is it too late to send in `slot`?
    pub fn late(slot: tokio::time::Instant) -> bool {
        tokio::time::Instant::now() > slot + Self::TOLERANCE
    }
}

/// Sends queries with a shared concurrency bound and timeout.
#[derive(Debug, Clone)]
pub struct Prober {
    limit: Arc<Semaphore>,
    concurrency: usize,
    timeout: Duration,
    counters: Option<Family<QueryResultLabels, Counter>>,
    /// Per-server rate limit of the queries to authoritative servers.
    rate: Option<Arc<RateLimiter>>,
}

impl Prober {
    pub fn new(concurrency: usize, timeout: Duration, counters: Option<Family<QueryResultLabels, Counter>>) -> Prober {
        if let Some(c) = &counters {
            for r in QueryResult::ALL {
                let _ = c.get_or_create(&QueryResultLabels { result: r.as_str() });
            }
        }
        Prober { limit: Arc::new(Semaphore::new(concurrency.max(1))), concurrency, timeout, counters, rate: None }
    }

    /// The same prober with a per-server limit of `qps` queries a second to the
    /// authoritative servers (`[dns] max_qps_per_server`).
    pub fn with_max_qps(self, qps: u32) -> Prober {
        Prober { rate: Some(Arc::new(RateLimiter::new(qps))), ..self }
    }

    /// The same prober, sharing `other`'s per-server slots when both have the same
    /// limit: a reload must not let a burst through by starting the slots afresh.
    pub fn keeping_slots_of(self, other: &Prober) -> Prober {
        match (&self.rate, &other.rate) {
            (Some(mine), Some(theirs)) if mine.qps() == theirs.qps() => Prober { rate: Some(theirs.clone()), ..self },
            _ => self,
        }
    }

    /// The per-server limit, if any.
    pub fn max_qps(&self) -> Option<u32> {
        self.rate.as_ref().map(|r| r.qps())
    }

    /// The query counters (`mailroute_dns_queries_total`), for the recursive
    /// lookups to count theirs in the same family.
    pub fn counters(&self) -> Option<Family<QueryResultLabels, Counter>> {
        self.counters.clone()
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Queries allowed in flight at once.
    pub fn concurrency(&self) -> usize {
        self.concurrency
    }

    /// Asks `server` for `name`/`rtype`: UDP first, TCP when truncated.
    pub async fn query(&self, server: SocketAddr, name: &Name, rtype: RecordType, recursion: bool) -> ProbeResult {
        self.query_with(server, build_query(name, rtype, recursion), false).await
    }

    /// Asks a resolver (RD=1) with the DO and AD bits set, so that a validating
    /// resolver says in AD whether the answer validated (RFC 6840 §5.7, §5.8).
    pub async fn query_validated(&self, resolver: SocketAddr, name: &Name, rtype: RecordType) -> ProbeResult {
        let mut msg = build_query(name, rtype, true);
        msg.metadata.authentic_data = true;
        let mut edns = Edns::new();
        edns.set_max_payload(EDNS_PAYLOAD);
        edns.set_dnssec_ok(true);
        msg.set_edns(edns);
        self.query_with(resolver, msg, false).await
    }

    /// Asks `server` for `name`/`rtype` with RD=0 and the DO bit set (RFC 3225), so an
    /// authoritative server adds the RRSIGs; TCP when truncated.
    pub async fn query_dnssec(&self, server: SocketAddr, name: &Name, rtype: RecordType) -> ProbeResult {
        let mut msg = build_query(name, rtype, false);
        if let Some(edns) = msg.edns.as_mut() {
            edns.set_dnssec_ok(true);
        }
        self.query_with(server, msg, false).await
    }

    /// Like [`Prober::query`], but also asks over TCP when UDP brings no answer at all
    /// (used for the SOA probe, to tell "unreachable" from "UDP blocked").
    pub async fn query_or_tcp(&self, server: SocketAddr, name: &Name, rtype: RecordType) -> ProbeResult {
        self.query_with(server, build_query(name, rtype, false), true).await
    }

    async fn query_with(&self, server: SocketAddr, msg: Message, tcp_when_silent: bool) -> ProbeResult {
        // the per-server rate limit applies to the authoritative servers (RD=0)
        let rate = self.rate.as_ref().filter(|_| !msg.metadata.recursion_desired);
        // wait for the slot before taking a permit, so that waiting on one busy
        // server does not hold up queries to the others
        let slot = match rate {
            Some(rate) => Some(rate.wait(server).await),
            None => None,
        };
        let result = match self.limit.acquire().await {
            Ok(_permit) => {
                if let (Some(rate), Some(slot)) = (rate, slot)
                    && RateLimiter::late(slot)
                {
                    // a long wait for the permit made us late: take a new slot so
                    // that queries never bunch up
                    rate.wait(server).await;
                }
                let started = Instant::now();
                let mut r = exchange_udp(server, &msg, self.timeout).await;
                let fall_back = match &r {
                    Ok(resp) => resp.truncated,
                    Err(_) => tcp_when_silent,
                };
                if fall_back {
                    if let Some(rate) = rate {
                        let _ = rate.wait(server).await;
                    }
                    let tcp = exchange_tcp(server, &msg, self.timeout).await;
                    r = match (r, tcp) {
                        (_, Ok(resp)) => Ok(resp),
                        (Ok(udp), Err(e)) => Err(Failure::Malformed(format!(
                            "truncated UDP answer ({} records) and no usable TCP answer: {e}",
                            udp.answers.len()
                        ))),
                        (Err(udp), Err(tcp)) => {
                            Err(if udp == tcp { udp } else { Failure::Network(format!("UDP: {udp}; TCP: {tcp}")) })
                        }
                    };
                }
                if let Ok(resp) = &mut r {
                    resp.rtt = started.elapsed();
                }
                r
            }
            Err(_) => Err(Failure::Network("prober closed".to_string())),
        };
        if let Some(c) = &self.counters {
            c.get_or_create(&QueryResultLabels { result: QueryResult::of(&result).as_str() }).inc();
        }
        result
    }
}

/// A query message: one question, EDNS with [`EDNS_PAYLOAD`], RD as asked.
pub fn build_query(name: &Name, rtype: RecordType, recursion: bool) -> Message {
    let mut msg = Message::query();
    msg.add_query(Query::query(name.clone(), rtype));
    msg.metadata.recursion_desired = recursion;
    let mut edns = Edns::new();
    edns.set_max_payload(EDNS_PAYLOAD);
    // authoritative servers are always asked with DO (RFC 3225), so one answer serves
    // both the consistency checks and the DNSSEC ones
    edns.set_dnssec_ok(!recursion);
    msg.set_edns(edns);
    msg
}

/// Checks that `reply` answers `query`: same id, a response, the same question.
fn matches(query: &Message, reply: &Message) -> Result<(), String> {
    if reply.metadata.id != query.metadata.id {
        return Err(format!("id {} instead of {}", reply.metadata.id, query.metadata.id));
    }
    if reply.metadata.message_type != MessageType::Response {
        return Err("not a response (QR=0)".to_string());
    }
    let (Some(q), Some(r)) = (query.queries.first(), reply.queries.first()) else {
        // a reply may omit the question only with an error rcode (e.g. FORMERR)
        return if reply.metadata.response_code != ResponseCode::NoError {
            Ok(())
        } else {
            Err("no question".to_string())
        };
    };
    if q.query_type() != r.query_type() || !q.name().eq_case(r.name()) && q.name() != r.name() {
        return Err(format!("question {} {} instead of {} {}", r.name(), r.query_type(), q.name(), q.query_type()));
    }
    Ok(())
}

fn response(reply: Message, tcp: bool) -> Response {
    Response {
        rcode: reply.metadata.response_code,
        authoritative: reply.metadata.authoritative,
        truncated: reply.metadata.truncation,
        answers: reply.answers,
        authorities: reply.authorities,
        additionals: reply.additionals,
        tcp,
        authentic_data: reply.metadata.authentic_data,
        rtt: Duration::ZERO,
    }
}

fn network(e: &std::io::Error) -> Failure {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => Failure::Network("connection refused".to_string()),
        std::io::ErrorKind::ConnectionReset => Failure::Network("connection reset".to_string()),
        _ => Failure::Network(e.to_string()),
    }
}

async fn exchange_udp(server: SocketAddr, query: &Message, timeout: Duration) -> ProbeResult {
    let bytes = query.to_vec().map_err(|e| Failure::Malformed(format!("cannot encode the query: {e}")))?;
    let bind: SocketAddr = if server.is_ipv4() { ([0u8; 4], 0).into() } else { ([0u16; 8], 0).into() };
    let deadline = tokio::time::Instant::now() + timeout;
    let socket = UdpSocket::bind(bind).await.map_err(|e| network(&e))?;
    socket.connect(server).await.map_err(|e| network(&e))?;
    socket.send(&bytes).await.map_err(|e| network(&e))?;
    // We advertise 1232 bytes; a datagram longer than this buffer is cut by the
    // kernel and then fails to parse, which is what an oversized reply deserves.
    let mut buf = vec![0u8; UDP_BUFFER];
    let mut last_problem: Option<String> = None;
    loop {
        let n = match tokio::time::timeout_at(deadline, socket.recv(&mut buf)).await {
            Err(_) => return Err(last_problem.map_or(Failure::Timeout, Failure::Malformed)),
            Ok(Err(e)) => return Err(network(&e)),
            Ok(Ok(n)) => n,
        };
        match Message::from_vec(&buf[..n]) {
            Ok(reply) => match matches(query, &reply) {
                Ok(()) => return Ok(response(reply, false)),
                Err(why) => last_problem = Some(format!("mismatched reply ({why})")),
            },
            Err(e) => last_problem = Some(format!("{n} bytes that are not a DNS message ({e})")),
        }
    }
}

/// A failed TCP read: a reset or close is the network's doing, the rest is a broken answer.
fn tcp_read(e: &std::io::Error, when: &str) -> Failure {
    match e.kind() {
        std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted => {
            Failure::Network(format!("connection reset {when}"))
        }
        std::io::ErrorKind::UnexpectedEof => Failure::Malformed(format!("connection closed {when}")),
        _ => Failure::Network(format!("{e} {when}")),
    }
}

async fn exchange_tcp(server: SocketAddr, query: &Message, timeout: Duration) -> ProbeResult {
    let bytes = query.to_vec().map_err(|e| Failure::Malformed(format!("cannot encode the query: {e}")))?;
    let work = async {
        let mut stream = TcpStream::connect(server).await.map_err(|e| network(&e))?;
        let mut framed = Vec::with_capacity(bytes.len() + 2);
        framed.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
        framed.extend_from_slice(&bytes);
        stream.write_all(&framed).await.map_err(|e| network(&e))?;
        let mut len = [0u8; 2];
        stream.read_exact(&mut len).await.map_err(|e| tcp_read(&e, "before answering"))?;
        let len = usize::from(u16::from_be_bytes(len));
        let mut body = vec![0u8; len];
        stream.read_exact(&mut body).await.map_err(|e| tcp_read(&e, &format!("within its {len}-byte answer")))?;
        let reply = Message::from_vec(&body).map_err(|e| Failure::Malformed(format!("TCP answer unreadable: {e}")))?;
        matches(query, &reply).map_err(|why| Failure::Malformed(format!("mismatched TCP reply ({why})")))?;
        Ok(response(reply, true))
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(r) => r,
        Err(_) => Err(Failure::Timeout),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn slots_are_spaced_per_server() {
        let r = RateLimiter::new(50);
        let a: SocketAddr = "127.0.0.1:53".parse().expect("addr");
        let b: SocketAddr = "127.0.0.2:53".parse().expect("addr");
        let slots: Vec<_> = (0..5).map(|_| r.reserve(a)).collect();
        for w in slots.windows(2) {
            assert_eq!(w[1] - w[0], Duration::from_secs_f64(1.02 / 50.0));
        }
        // another server is not held up by the first
        let other = r.reserve(b);
        assert!(other < slots[1], "b's first slot is now");
    }

    #[test]
    fn a_reload_keeps_the_slots_of_the_same_limit() {
        let old = Prober::new(4, Duration::from_secs(1), None).with_max_qps(50);
        let same = Prober::new(8, Duration::from_secs(2), None).with_max_qps(50).keeping_slots_of(&old);
        let other = Prober::new(8, Duration::from_secs(2), None).with_max_qps(80).keeping_slots_of(&old);
        let (Some(a), Some(b), Some(c)) = (&old.rate, &same.rate, &other.rate) else { panic!("limits set") };
        assert!(Arc::ptr_eq(a, b), "same limit: the same slots");
        assert!(!Arc::ptr_eq(a, c), "a new limit: new slots");
        assert_eq!(other.max_qps(), Some(80));
    }

    #[tokio::test]
    async fn no_one_second_window_sees_more_than_qps() {
        let qps = 40;
        let r = Arc::new(RateLimiter::new(qps));
        let server: SocketAddr = "127.0.0.1:53".parse().expect("addr");
        let started = tokio::time::Instant::now();
        let waits = (0..(qps as usize + 20)).map(|_| {
            let r = r.clone();
            tokio::spawn(async move {
                r.wait(server).await;
                tokio::time::Instant::now()
            })
        });
        let mut sent: Vec<_> = futures_util::future::join_all(waits).await.into_iter().flatten().collect();
        sent.sort();
        assert_eq!(sent.len(), qps as usize + 20);
        for (i, t) in sent.iter().enumerate() {
            let in_window = sent[i..].iter().take_while(|u| **u - *t < Duration::from_secs(1)).count();
            assert!(in_window <= qps as usize, "{in_window} sends within 1 s from send {i}");
        }
        assert!(sent[sent.len() - 1] - started >= Duration::from_secs(1), "60 queries at 40/s take over a second");
    }
}
