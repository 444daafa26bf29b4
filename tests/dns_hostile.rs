//! Hostile DNS servers, in process: behaviour a real server won't produce. Each must
//! give a failed check and a bounded round time — never a hang, never a panic.
//!
//! The world: zone `hostile.test` delegated from `test.` to ns1 (well-behaved) and ns2
//! (hostile, one behaviour per test), with an in-process recursive resolver that
//! answers from a fixed table. All servers listen on 127.0.98.x, one port.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::{A, CNAME, MX, NS, PTR, SOA, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use mailroute_exporter::config::DomainConfig;
use mailroute_exporter::dns::checks;
use mailroute_exporter::dns::probe::{Failure, Prober};
use mailroute_exporter::dns::recursive::{Recursive, lookup_host};
use mailroute_exporter::dns::round::{Settings, snapshot_with_deadline};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};

const TIMEOUT: Duration = Duration::from_millis(400);
/// A records in the 64 KiB answer (28 bytes each uncompressed: just under 65,535).
const HUGE: u32 = 2300;

fn n(s: &str) -> Name {
    Name::from_ascii(s).expect("test name")
}

fn rec(owner: &str, data: RData) -> Record {
    Record::from_rdata(n(owner), 60, data)
}

fn a(owner: &str, ip: [u8; 4]) -> Record {
    rec(owner, RData::A(A::new(ip[0], ip[1], ip[2], ip[3])))
}

fn soa(owner: &str) -> Record {
    rec(
        owner,
        RData::SOA(SOA::new(
            n(&format!("ns1.{owner}")),
            n(&format!("hostmaster.{owner}")),
            2026112701,
            14400,
            3600,
            1209600,
            300,
        )),
    )
}

/// What a server does with one query.
#[derive(Clone)]
enum Action {
    Reply(Message),
    Silent,
    Raw(Vec<u8>),
    /// Over TCP: close without answering.
    Close,
    /// Over TCP: announce `n` bytes, send fewer, close.
    Short(u16),
}

type Handler = Arc<dyn Fn(&Message, bool) -> Action + Send + Sync>;

fn reply(q: &Message, aa: bool, rcode: ResponseCode) -> Message {
    let mut m = Message::response(q.metadata.id, q.metadata.op_code);
    m.metadata.message_type = MessageType::Response;
    m.metadata.authoritative = aa;
    m.metadata.response_code = rcode;
    m.metadata.recursion_desired = q.metadata.recursion_desired;
    m.add_queries(q.queries.clone());
    m
}

fn qinfo(q: &Message) -> (String, RecordType) {
    let query = &q.queries[0];
    (query.name().to_ascii().to_ascii_lowercase(), query.query_type())
}

/// Serves UDP and TCP on `addr` until the runtime ends.
async fn serve(addr: SocketAddr, handler: Handler) {
    let udp = UdpSocket::bind(addr).await.expect("bind udp");
    let tcp = TcpListener::bind(addr).await.expect("bind tcp");
    let h = handler.clone();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        loop {
            let Ok((len, from)) = udp.recv_from(&mut buf).await else { continue };
            let Ok(q) = Message::from_vec(&buf[..len]) else { continue };
            match h(&q, false) {
                Action::Reply(m) => {
                    let _ = udp.send_to(&m.to_vec().expect("encode"), from).await;
                }
                Action::Raw(bytes) => {
                    let _ = udp.send_to(&bytes, from).await;
                }
                Action::Silent | Action::Close | Action::Short(_) => {}
            }
        }
    });
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = tcp.accept().await else { continue };
            let h = handler.clone();
            tokio::spawn(async move {
                let mut len = [0u8; 2];
                if stream.read_exact(&mut len).await.is_err() {
                    return;
                }
                let mut body = vec![0u8; usize::from(u16::from_be_bytes(len))];
                if stream.read_exact(&mut body).await.is_err() {
                    return;
                }
                let Ok(q) = Message::from_vec(&body) else { return };
                match h(&q, true) {
                    Action::Reply(m) => {
                        let bytes = m.to_vec().expect("encode");
                        let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
                        framed.extend_from_slice(&bytes);
                        let _ = stream.write_all(&framed).await;
                    }
                    Action::Raw(bytes) => {
                        let _ = stream.write_all(&bytes).await;
                    }
                    Action::Short(n) => {
                        let _ = stream.write_all(&n.to_be_bytes()).await;
                        let _ = stream.write_all(&[0u8; 7]).await;
                    }
                    Action::Silent => tokio::time::sleep(Duration::from_secs(30)).await,
                    Action::Close => {}
                }
            });
        }
    });
}

/// The recursive view of the world, answered by the in-process resolver.
fn resolver(cname_loop: bool) -> Handler {
    Arc::new(move |q, _| {
        let (name, t) = qinfo(q);
        let mut m = reply(q, false, ResponseCode::NoError);
        m.metadata.recursion_available = true;
        let nodata = |mut m: Message, zone: &str| {
            m.add_authority(soa(zone));
            Action::Reply(m)
        };
        match (name.as_str(), t) {
            ("hostile.test.", RecordType::SOA) => {
                m.add_answer(soa("hostile.test."));
            }
            ("test.", RecordType::SOA) => {
                m.add_answer(soa("test."));
            }
            ("test.", RecordType::NS) => {
                m.add_answer(rec("test.", RData::NS(NS(n("ns.test.")))));
            }
            ("ns.test.", RecordType::A) => {
                m.add_answer(a("ns.test.", [127, 0, 98, 3]));
            }
            ("hostile.test.", RecordType::NS) => {
                m.add_answer(rec("hostile.test.", RData::NS(NS(n("ns1.hostile.test.")))));
                m.add_answer(rec("hostile.test.", RData::NS(NS(n("ns2.hostile.test.")))));
            }
            ("ns1.hostile.test.", RecordType::A) => {
                m.add_answer(a("ns1.hostile.test.", [127, 0, 98, 1]));
            }
            ("ns2.hostile.test.", RecordType::A) => {
                m.add_answer(a("ns2.hostile.test.", [127, 0, 98, 2]));
            }
            ("mx.hostile.test.", RecordType::A | RecordType::AAAA) if cname_loop => {
                m.add_answer(rec("mx.hostile.test.", RData::CNAME(CNAME(n("loop.hostile.test.")))));
                m.add_answer(rec("loop.hostile.test.", RData::CNAME(CNAME(n("mx.hostile.test.")))));
            }
            ("mx.hostile.test.", RecordType::A) => {
                m.add_answer(a("mx.hostile.test.", [127, 0, 98, 10]));
            }
            ("10.98.0.127.in-addr.arpa.", RecordType::PTR) => {
                m.add_answer(rec("10.98.0.127.in-addr.arpa.", RData::PTR(PTR(n("mx.hostile.test.")))));
            }
            (x, _) if x.ends_with("hostile.test.") && !x.starts_with("nx") => return nodata(m, "hostile.test."),
            (x, _) if x.ends_with("in-addr.arpa.") => {
                m.metadata.response_code = ResponseCode::NXDomain;
                return nodata(m, "in-addr.arpa.");
            }
            _ => {
                m.metadata.response_code = ResponseCode::NXDomain;
                return nodata(m, "test.");
            }
        }
        Action::Reply(m)
    })
}

/// The parent `test.`: referrals for hostile.test with glue.
fn parent() -> Handler {
    Arc::new(|q, _| {
        let (name, _) = qinfo(q);
        let mut m = reply(q, false, ResponseCode::NoError);
        if name.ends_with("hostile.test.") {
            m.add_authority(rec("hostile.test.", RData::NS(NS(n("ns1.hostile.test.")))));
            m.add_authority(rec("hostile.test.", RData::NS(NS(n("ns2.hostile.test.")))));
            m.add_additional(a("ns1.hostile.test.", [127, 0, 98, 1]));
            m.add_additional(a("ns2.hostile.test.", [127, 0, 98, 2]));
        } else {
            m.metadata.authoritative = true;
            m.metadata.response_code = ResponseCode::NXDomain;
            m.add_authority(soa("test."));
        }
        Action::Reply(m)
    })
}

/// A well-behaved authoritative answer for hostile.test.
fn good_answer(q: &Message) -> Message {
    let (name, t) = qinfo(q);
    let mut m = reply(q, true, ResponseCode::NoError);
    match (name.as_str(), t) {
        ("hostile.test.", RecordType::SOA) => {
            m.add_answer(soa("hostile.test."));
        }
        ("hostile.test.", RecordType::NS) => {
            m.add_answer(rec("hostile.test.", RData::NS(NS(n("ns1.hostile.test.")))));
            m.add_answer(rec("hostile.test.", RData::NS(NS(n("ns2.hostile.test.")))));
        }
        ("hostile.test.", RecordType::MX) => {
            m.add_answer(rec("hostile.test.", RData::MX(MX::new(10, n("mx.hostile.test.")))));
        }
        ("hostile.test.", RecordType::A) => {
            m.add_answer(a("hostile.test.", [127, 0, 98, 10]));
        }
        ("hostile.test.", RecordType::TXT) => {
            m.add_answer(rec("hostile.test.", RData::TXT(TXT::new(vec!["v=spf1 -all".to_string()]))));
        }
        ("_dmarc.hostile.test.", RecordType::TXT) => {
            m.add_answer(rec("_dmarc.hostile.test.", RData::TXT(TXT::new(vec!["v=DMARC1; p=reject".to_string()]))));
        }
        _ => {
            m.add_authority(soa("hostile.test."));
        }
    }
    m
}

/// The hostile behaviours of ns2.
#[derive(Clone, Copy, Debug)]
enum Hostile {
    Good,
    Silent,
    WrongId,
    WrongQuestion,
    Garbage,
    TruncatedThenBrokenTcp,
    TruncatedThenClosedTcp,
    HugeApexAnswer,
    /// Answers everything well but the MX query: NOTIMP.
    MxNotImp,
    /// Answers everything well but drops the MX query.
    MxSilent,
    /// Answers the MX query without the AA bit.
    MxNotAuthoritative,
}

fn is_mx(q: &Message) -> bool {
    qinfo(q).1 == RecordType::MX
}

fn hostile(kind: Hostile) -> Handler {
    Arc::new(move |q, tcp| match kind {
        Hostile::Good => Action::Reply(good_answer(q)),
        Hostile::Silent => Action::Silent,
        Hostile::WrongId => {
            let mut m = good_answer(q);
            m.metadata.id = q.metadata.id.wrapping_add(1);
            Action::Reply(m)
        }
        Hostile::WrongQuestion => {
            let mut m = good_answer(q);
            m.queries[0].set_name(n("elsewhere.invalid."));
            Action::Reply(m)
        }
        Hostile::Garbage => Action::Raw(vec![0xde, 0xad, 0xbe, 0xef, 0x00, 0x01, 0xff, 0xff, 0xff]),
        Hostile::TruncatedThenBrokenTcp | Hostile::TruncatedThenClosedTcp if !tcp => {
            let mut m = reply(q, true, ResponseCode::NoError);
            m.metadata.truncation = true;
            Action::Reply(m)
        }
        Hostile::MxNotImp if is_mx(q) => Action::Reply(reply(q, true, ResponseCode::NotImp)),
        Hostile::MxSilent if is_mx(q) => Action::Silent,
        Hostile::MxNotAuthoritative if is_mx(q) => {
            let mut m = good_answer(q);
            m.metadata.authoritative = false;
            Action::Reply(m)
        }
        Hostile::MxNotImp | Hostile::MxSilent | Hostile::MxNotAuthoritative => Action::Reply(good_answer(q)),
        Hostile::TruncatedThenBrokenTcp => Action::Short(512),
        Hostile::TruncatedThenClosedTcp => Action::Close,
        Hostile::HugeApexAnswer => {
            let (name, t) = qinfo(q);
            if name != "hostile.test." || t != RecordType::A {
                return Action::Reply(good_answer(q));
            }
            if !tcp {
                let mut m = reply(q, true, ResponseCode::NoError);
                m.metadata.truncation = true;
                return Action::Reply(m);
            }
            // as many A records as fit in a 64 KiB TCP message
            let mut m = reply(q, true, ResponseCode::NoError);
            for i in 0..HUGE {
                let b = i.to_be_bytes();
                m.add_answer(a("hostile.test.", [10, b[1], b[2], b[3]]));
            }
            Action::Reply(m)
        }
    })
}

struct World {
    port: u16,
}

/// Starts the resolver, the parent, ns1 and ns2 on one free port.
async fn world(kind: Hostile, cname_loop: bool) -> World {
    // find a port free on all four addresses (ask the OS on one, then use it everywhere)
    for _ in 0..20 {
        let probe = UdpSocket::bind("127.0.98.1:0").await.expect("bind");
        let port = probe.local_addr().expect("addr").port();
        drop(probe);
        let addrs: Vec<SocketAddr> =
            [1u8, 2, 3, 53].iter().map(|x| SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 98, *x)), port)).collect();
        let free = addrs.iter().all(|a| std::net::UdpSocket::bind(a).is_ok() && std::net::TcpListener::bind(a).is_ok());
        if !free {
            continue;
        }
        serve(addrs[0], hostile(Hostile::Good)).await;
        serve(addrs[1], hostile(kind)).await;
        serve(addrs[2], parent()).await;
        serve(addrs[3], resolver(cname_loop)).await;
        return World { port };
    }
    panic!("no free port on 127.0.98.x");
}

impl World {
    fn settings(&self) -> Settings {
        Settings {
            resolvers: vec![SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 98, 53)), self.port)],
            port: self.port,
            smtp_probe_port: 25,
            ..Settings::default()
        }
    }

    fn ns2(&self) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 98, 2)), self.port)
    }
}

fn domain() -> DomainConfig {
    DomainConfig {
        name: "hostile.test".into(),
        dkim_selectors: vec![],
        expected_mx: None,
        smtp_probe: false,
        starttls_probe: false,
    }
}

/// Runs a full round and returns the failing checks and the time taken.
async fn round(w: &World) -> (Vec<String>, Duration, String) {
    let prober = Prober::new(16, TIMEOUT, None);
    let started = Instant::now();
    let snap = snapshot_with_deadline(&prober, &w.settings(), &domain(), Duration::from_secs(20))
        .await
        .expect("the round finishes before its deadline");
    let took = started.elapsed();
    let results = checks::evaluate(&snap, &domain());
    let failing: Vec<String> = results.iter().filter(|c| c.failed).map(|c| c.check.to_string()).collect();
    let messages = results
        .iter()
        .filter(|c| c.failed)
        .map(|c| format!("{}: {}", c.check, c.message))
        .collect::<Vec<_>>()
        .join("\n");
    (failing, took, messages)
}

/// Every round must finish well within a few query timeouts.
const ROUND_BOUND: Duration = Duration::from_secs(4);

#[tokio::test]
async fn a_well_behaved_world_passes() {
    let w = world(Hostile::Good, false).await;
    let (failing, took, msgs) = round(&w).await;
    assert!(failing.is_empty(), "{msgs}");
    assert!(took < ROUND_BOUND, "{took:?}");
}

async fn expect_unreachable(kind: Hostile, detail: &str) {
    let w = world(kind, false).await;
    let (failing, took, msgs) = round(&w).await;
    assert_eq!(failing, vec!["nameserver_unreachable"], "{kind:?}: {msgs}");
    assert!(msgs.contains("ns2.hostile.test (127.0.98.2)") && msgs.contains(detail), "{kind:?}: {msgs}");
    assert!(took < ROUND_BOUND, "{kind:?} took {took:?}");
}

#[tokio::test]
async fn silent_server() {
    expect_unreachable(Hostile::Silent, "timeout").await;
}

#[tokio::test]
async fn wrong_id() {
    expect_unreachable(Hostile::WrongId, "mismatched reply (id").await;
}

#[tokio::test]
async fn wrong_question() {
    expect_unreachable(Hostile::WrongQuestion, "mismatched reply (question elsewhere.invalid.").await;
}

#[tokio::test]
async fn garbage_bytes() {
    expect_unreachable(Hostile::Garbage, "not a DNS message").await;
}

#[tokio::test]
async fn truncated_then_broken_tcp() {
    expect_unreachable(Hostile::TruncatedThenBrokenTcp, "no usable TCP answer").await;
}

#[tokio::test]
async fn truncated_then_closed_tcp() {
    expect_unreachable(Hostile::TruncatedThenClosedTcp, "connection closed before answering").await;
}

fn good_answer_size(records: u32) -> usize {
    let mut m = Message::query();
    m.add_query(hickory_proto::op::Query::query(n("hostile.test."), RecordType::A));
    for i in 0..records {
        let b = i.to_be_bytes();
        m.add_answer(a("hostile.test.", [10, b[1], b[2], b[3]]));
    }
    m.to_vec().expect("encode").len()
}

#[tokio::test]
async fn huge_answer_is_read_and_compared() {
    let w = world(Hostile::HugeApexAnswer, false).await;
    // the probe itself reads the whole 64 KiB TCP answer
    let prober = Prober::new(4, TIMEOUT, None);
    let r = prober.query(w.ns2(), &n("hostile.test."), RecordType::A, false).await.expect("answer over TCP");
    assert!(r.tcp, "fell back to TCP");
    assert_eq!(r.answers.len(), HUGE as usize);
    let size = good_answer_size(HUGE);
    assert!(size > 60_000 && size <= 65_535, "{size} bytes");
    let (failing, took, msgs) = round(&w).await;
    assert_eq!(failing, vec!["apex_mx_mismatch", "apex_address_mismatch"], "{msgs}");
    assert!(took < ROUND_BOUND, "{took:?}");
}

#[tokio::test]
async fn cname_loop_at_the_mx() {
    let w = world(Hostile::Good, true).await;
    let rec = Recursive::new(&w.settings().resolvers, TIMEOUT);
    let h = lookup_host(&rec, "mx.hostile.test").await;
    assert!(h.error.as_deref().is_some_and(|e| e.contains("CNAME loop")), "{h:?}");
    let (failing, took, msgs) = round(&w).await;
    assert_eq!(failing, vec!["mx_target_unresolvable", "no_usable_mx"], "{msgs}");
    assert!(msgs.contains("CNAME loop"), "{msgs}");
    assert!(took < ROUND_BOUND, "{took:?}");
}

#[tokio::test]
async fn probe_failures_are_bounded_and_named() {
    let w = world(Hostile::Silent, false).await;
    let prober = Prober::new(4, TIMEOUT, None);
    let started = Instant::now();
    let r = prober.query(w.ns2(), &n("hostile.test."), RecordType::SOA, false).await;
    assert_eq!(r.err(), Some(Failure::Timeout));
    let took = started.elapsed();
    assert!(took >= TIMEOUT && took < TIMEOUT * 2, "{took:?}");
    // nothing listens on this address and port: an immediate network error
    let closed = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 98, 99)), w.port);
    let started = Instant::now();
    let r = prober.query(closed, &n("hostile.test."), RecordType::SOA, false).await;
    assert!(matches!(r, Err(Failure::Network(ref m)) if m.contains("refused")), "{r:?}");
    assert!(started.elapsed() < TIMEOUT, "refused without waiting");
}

#[tokio::test]
async fn a_round_cannot_outlive_its_deadline() {
    let w = world(Hostile::Silent, false).await;
    let prober = Prober::new(16, Duration::from_secs(5), None);
    let started = Instant::now();
    let r = snapshot_with_deadline(&prober, &w.settings(), &domain(), Duration::from_millis(700)).await;
    assert!(r.unwrap_err().contains("did not finish within"));
    assert!(started.elapsed() < Duration::from_millis(1500));
}

/// A server that answers the SOA but fails only the MX query: it is up, so it
/// fails `nameserver_query_failed`, and its MX answer is left out of the comparison
/// with the reason named.
async fn expect_mx_failure(kind: Hostile, why: &str) {
    let w = world(kind, false).await;
    let (failing, took, msgs) = round(&w).await;
    assert_eq!(failing, vec!["nameserver_query_failed"], "{kind:?}: {msgs}");
    assert!(msgs.contains(&format!("ns2.hostile.test (127.0.98.2): hostile.test MX {why}")), "{kind:?}: {msgs}");
    assert!(took < ROUND_BOUND, "{kind:?} took {took:?}");
    // the comparison it was left out of says so
    let prober = Prober::new(16, TIMEOUT, None);
    let snap = snapshot_with_deadline(&prober, &w.settings(), &domain(), Duration::from_secs(20)).await.expect("round");
    assert!(snap.servers.iter().any(|s| s.name == "ns2.hostile.test" && s.is_up() && s.mx.is_none()), "{snap:?}");
    let mx = checks::evaluate(&snap, &domain()).into_iter().find(|c| c.check == "mx_missing").expect("mx_missing");
    assert!(!mx.failed, "{mx:?}");
}

#[tokio::test]
async fn a_server_that_fails_only_the_mx_query_notimp() {
    expect_mx_failure(Hostile::MxNotImp, "answered NOTIMP").await;
}

#[tokio::test]
async fn a_server_that_drops_only_the_mx_query() {
    expect_mx_failure(Hostile::MxSilent, "no answer (timeout)").await;
}

#[tokio::test]
async fn a_server_that_answers_the_mx_query_without_aa() {
    expect_mx_failure(Hostile::MxNotAuthoritative, "answered without the AA flag").await;
}
