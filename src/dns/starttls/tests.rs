//! The STARTTLS probe against in-process SMTP servers, well-behaved and hostile
//! (behaviour a real MTA will not produce): each gives an outcome within the
//! deadline, never a hang or a panic.

use std::time::Instant;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::*;
use crate::dns::test_pki::{Leaf, Pki};

const T: Duration = Duration::from_millis(400);
/// The probe's worst case: connect + 4 replies + handshake + QUIT, each within T.
const DEADLINE: Duration = Duration::from_millis(400 * 8);

#[derive(Clone, Copy)]
enum Kind {
    Good,
    NoStarttls,
    Silent,
    EndlessReply,
    Garbage,
    TlsAlert,
    StarttlsRefused,
}

async fn line<R: tokio::io::AsyncBufRead + Unpin>(r: &mut R) -> String {
    let mut l = String::new();
    let _ = r.read_line(&mut l).await;
    l
}

/// A one-connection SMTP server on 127.0.0.1; returns its port.
async fn server(kind: Kind, leaf: Option<Leaf>) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (s, _) = l.accept().await.unwrap();
        let mut s = BufReader::new(s);
        match kind {
            Kind::Silent => {
                tokio::time::sleep(Duration::from_secs(30)).await;
                return;
            }
            Kind::Garbage => {
                let junk: Vec<u8> = (0..20_000u32).map(|i| (i * 7 + 3) as u8).collect();
                let _ = s.write_all(&junk).await;
                tokio::time::sleep(Duration::from_secs(30)).await;
                return;
            }
            Kind::EndlessReply => {
                for _ in 0..1_000_000 {
                    if s.write_all(b"220-still greeting you\r\n").await.is_err() {
                        return;
                    }
                }
                return;
            }
            _ => {}
        }
        s.write_all(b"220 mx.example.test ESMTP\r\n").await.unwrap();
        let _ehlo = line(&mut s).await;
        if matches!(kind, Kind::NoStarttls) {
            s.write_all(b"250-mx.example.test\r\n250 PIPELINING\r\n").await.unwrap();
            let _ = line(&mut s).await;
            let _ = s.write_all(b"221 bye\r\n").await;
            return;
        }
        s.write_all(b"250-mx.example.test\r\n250-SIZE 1000\r\n250 STARTTLS\r\n").await.unwrap();
        let _starttls = line(&mut s).await;
        match kind {
            Kind::StarttlsRefused => {
                let _ = s.write_all(b"454 4.7.0 TLS not available\r\n").await;
            }
            Kind::TlsAlert => {
                s.write_all(b"220 go ahead\r\n").await.unwrap();
                // a fatal handshake_failure alert, then close
                let _ = s.write_all(&[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28]).await;
            }
            _ => {
                s.write_all(b"220 go ahead\r\n").await.unwrap();
                let Some(leaf) = leaf else { return };
                let Ok(tls) = TlsAcceptor::from(leaf.server_config()).accept(s.into_inner()).await else { return };
                let mut tls = BufReader::new(tls);
                let quit = line(&mut tls).await;
                if quit.starts_with("QUIT") {
                    let _ = tls.write_all(b"221 bye\r\n").await;
                }
                let _ = tls.shutdown().await;
            }
        }
    });
    port
}

async fn run(pki: &Pki, kind: Kind, leaf: Option<Leaf>) -> StarttlsOutcome {
    let port = server(kind, leaf).await;
    let start = Instant::now();
    let out = probe(pki.roots(), "mx.example.test", "127.0.0.1".parse().unwrap(), port, T, "probe.test").await;
    assert!(start.elapsed() < DEADLINE, "took {:?}", start.elapsed());
    out
}

fn failed(o: &StarttlsOutcome) -> (&str, &str) {
    match o {
        StarttlsOutcome::Failed { step, detail } => (step, detail),
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[tokio::test]
async fn a_valid_certificate() {
    let pki = Pki::new();
    let leaf = pki.leaf(&["mx.example.test"], -1, 90);
    let want = crate::dns::x509::cert_info(&leaf.chain[0]).unwrap();
    match run(&pki, Kind::Good, Some(leaf)).await {
        StarttlsOutcome::Tls { chain, not_after, invalid, .. } => {
            assert_eq!(invalid, None);
            assert_eq!(chain.len(), 2);
            assert_eq!(not_after, Some(want.not_after));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn invalid_certificates_are_recorded_not_fatal() {
    let pki = Pki::new();
    for (leaf, want) in [
        (pki.leaf(&["mx.example.test"], -60, -1), "certificate expired"),
        (pki.leaf(&["mx.example.test"], 2, 90), "not valid before"),
        (pki.leaf(&["other.example.test"], -1, 90), "not valid for name"),
        (Pki::new().leaf(&["mx.example.test"], -1, 90), "UnknownIssuer"),
    ] {
        match run(&pki, Kind::Good, Some(leaf)).await {
            StarttlsOutcome::Tls { invalid: Some(why), not_after: Some(_), .. } => {
                assert!(why.contains(want), "{why} lacks {want}")
            }
            other => panic!("{want}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn hostile_servers_fail_within_the_deadline() {
    let pki = Pki::new();
    let o = run(&pki, Kind::NoStarttls, None).await;
    assert_eq!(failed(&o), ("EHLO", "the server does not offer STARTTLS"));
    let o = run(&pki, Kind::StarttlsRefused, None).await;
    assert_eq!(failed(&o), ("STARTTLS", "454 4.7.0 TLS not available"));
    let o = run(&pki, Kind::Silent, None).await;
    assert_eq!(failed(&o), ("greeting", "no complete reply within 400ms"));
    let o = run(&pki, Kind::EndlessReply, None).await;
    let (step, detail) = failed(&o);
    assert_eq!(step, "greeting");
    assert!(detail == format!("a reply of more than {MAX_REPLY_LINES} lines"), "{detail}");
    let o = run(&pki, Kind::Garbage, None).await;
    let (step, detail) = failed(&o);
    assert!(step == "greeting" && detail.starts_with("not an SMTP reply line"), "{o:?}");
    let o = run(&pki, Kind::TlsAlert, None).await;
    let (step, detail) = failed(&o);
    assert!(step == "TLS handshake" && !detail.is_empty(), "{o:?}");
    // a closed port
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closed = l.local_addr().unwrap().port();
    drop(l);
    let o = probe(pki.roots(), "mx.example.test", "127.0.0.1".parse().unwrap(), closed, T, "p.test").await;
    assert_eq!(failed(&o).0, "connect");
}

#[tokio::test]
async fn a_huge_certificate_chain_fails_the_handshake() {
    let pki = Pki::new();
    let mut leaf = pki.leaf(&["mx.example.test"], -1, 90);
    // ~300 extra certificates: far beyond what a handshake message may carry
    let filler = pki.leaf(&["filler.example.test"], -1, 90).chain[0].clone();
    for _ in 0..300 {
        leaf.chain.push(filler.clone());
    }
    let o = run(&pki, Kind::Good, Some(leaf)).await;
    let (step, _) = failed(&o);
    assert_eq!(step, "TLS handshake", "{o:?}");
}

#[test]
fn replies() {
    assert_eq!(parse_reply(b"220 hi\r\n"), Ok(Some((220, vec!["hi".into()], 8))));
    assert_eq!(
        parse_reply(b"250-a\r\n250-b\r\n250 c\r\nextra"),
        Ok(Some((250, vec!["a".into(), "b".into(), "c".into()], 21)))
    );
    assert_eq!(parse_reply(b"250-a\r\n250"), Ok(None));
    assert_eq!(parse_reply(b"220\r\n"), Ok(Some((220, vec!["".into()], 5))));
    assert!(parse_reply(b"250-a\r\n251 b\r\n").unwrap_err().contains("changes its code"));
    assert!(parse_reply(b"HTTP/1.1 400\r\n").unwrap_err().starts_with("not an SMTP reply line"));
    assert!(parse_reply(b"2200 x\r\n").is_err());
}
