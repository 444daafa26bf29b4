//! Fetching the MTA-STS policy (RFC 8461 §3.3): `GET
//! https://mta-sts.<domain>/.well-known/mta-sts.txt` over HTTP/1.1 with hyper, TLS
//! with rustls (SNI `mta-sts.<domain>`, the chain validated against the Mozilla
//! roots plus `[dns] ca_file`). As §3.3 asks: only a `200` counts, redirects are
//! not followed, nothing is cached by HTTP rules. The body is capped at
//! [`MAX_POLICY_BYTES`] (64 KiB, §3.3's suggestion), and each step (connect,
//! handshake, the HTTP exchange) has the round's query timeout.
//!
//! The address of `mta-sts.<domain>` comes from the round's resolvers, as a
//! sender's would.
//!
//! A policy is fetched again only when the `_mta-sts` TXT `id` changes or the
//! policy's `max_age` has run out (§3.3, §5.1): [`StsCache`] keeps the last valid
//! policy per domain across rounds. A failed fetch or an invalid policy is not
//! kept, so it is tried again next round.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::records::sts::{is_mta_sts, parse_mta_sts};
use super::records::sts_policy::parse_policy;
use super::recursive::{Recursive, lookup_host};
use super::snapshot::{MtaStsFetch, Snapshot, StsFetched};
use super::tls_client::TlsClient;

/// The most of a policy body read (RFC 8461 §3.3 suggests 64 KiB).
pub const MAX_POLICY_BYTES: usize = 64 * 1024;
/// The path of the policy (RFC 8461 §3.3).
pub const POLICY_PATH: &str = "/.well-known/mta-sts.txt";
/// Addresses of `mta-sts.<domain>` tried.
const MAX_ADDRESSES: usize = 4;

/// What one fetch got: the body and its media type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Body {
    pub text: String,
    pub content_type: Option<String>,
    pub address: IpAddr,
}

/// Fetches `https://host:port/.well-known/mta-sts.txt` from the first of `addrs`
/// that accepts a connection.
pub async fn fetch(
    tls: Arc<rustls::ClientConfig>,
    host: &str,
    addrs: &[IpAddr],
    port: u16,
    timeout: Duration,
) -> Result<Body, String> {
    let server_name = ServerName::try_from(host.to_string()).map_err(|e| format!("{host}: {e}"))?;
    let mut problems = Vec::new();
    let mut connected = None;
    for &ip in addrs.iter().take(MAX_ADDRESSES) {
        let addr = SocketAddr::new(ip, port);
        match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => {
                connected = Some((s, addr));
                break;
            }
            Ok(Err(e)) => problems.push(format!("{addr}: {e}")),
            Err(_) => problems.push(format!("{addr}: no connection within {timeout:?}")),
        }
    }
    let Some((tcp, addr)) = connected else {
        return Err(format!("cannot connect to {host}: {}", problems.join("; ")));
    };
    let tls_stream = match tokio::time::timeout(timeout, TlsConnector::from(tls).connect(server_name, tcp)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(format!("TLS with {host} ({addr}) failed: {e}")),
        Err(_) => return Err(format!("TLS with {host} ({addr}): no handshake within {timeout:?}")),
    };
    let exchange = async {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls_stream))
            .await
            .map_err(|e| format!("HTTP with {host} ({addr}): {e}"))?;
        let driver = AbortOnDrop(tokio::spawn(conn));
        let req = hyper::Request::get(POLICY_PATH)
            .header(hyper::header::HOST, host)
            .header(hyper::header::USER_AGENT, concat!("mailroute_exporter/", env!("CARGO_PKG_VERSION")))
            .body(Empty::<Bytes>::new())
            .map_err(|e| format!("request: {e}"))?;
        let resp = sender.send_request(req).await.map_err(|e| format!("HTTP with {host} ({addr}): {e}"))?;
        let status = resp.status();
        if status.is_redirection() {
            let to = resp.headers().get(hyper::header::LOCATION).and_then(|v| v.to_str().ok()).unwrap_or("?");
            return Err(format!(
                "https://{host}{POLICY_PATH} answered {status} redirecting to {}: senders do not follow redirects (RFC 8461 §3.3)",
                super::records::clip(to)
            ));
        }
        if status != hyper::StatusCode::OK {
            return Err(format!("https://{host}{POLICY_PATH} answered {status}, not 200 OK (RFC 8461 §3.3)"));
        }
        let content_type =
            resp.headers().get(hyper::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_string);
        let body = Limited::new(resp.into_body(), MAX_POLICY_BYTES).collect().await.map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                format!("the policy at https://{host}{POLICY_PATH} is larger than {MAX_POLICY_BYTES} bytes")
            } else {
                format!("reading the policy from {host} ({addr}): {e}")
            }
        })?;
        drop(driver);
        Ok(Body { text: String::from_utf8_lossy(&body.to_bytes()).into_owned(), content_type, address: addr.ip() })
    };
    match tokio::time::timeout(timeout * 2, exchange).await {
        Ok(r) => r,
        Err(_) => Err(format!("https://{host}{POLICY_PATH}: no complete answer within {:?}", timeout * 2)),
    }
}

struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The last valid policy fetched per domain.
#[derive(Debug, Default)]
pub struct StsCache {
    entries: Mutex<HashMap<String, Cached>>,
}

#[derive(Debug, Clone)]
struct Cached {
    id: String,
    at: Instant,
    max_age: Duration,
    fetched: StsFetched,
}

impl StsCache {
    /// The policy kept for `domain` if the TXT id is still `id` and `max_age` has
    /// not run out at `now`.
    fn get(&self, domain: &str, id: &str, now: Instant) -> Option<StsFetched> {
        let map = self.entries.lock().ok()?;
        let c = map.get(domain)?;
        (c.id == id && now.saturating_duration_since(c.at) < c.max_age).then(|| c.fetched.clone())
    }

    fn put(&self, domain: &str, id: &str, at: Instant, max_age: Duration, fetched: StsFetched) {
        if let Ok(mut map) = self.entries.lock() {
            map.insert(domain.to_string(), Cached { id: id.to_string(), at, max_age, fetched });
        }
    }

    fn forget(&self, domain: &str) {
        if let Ok(mut map) = self.entries.lock() {
            map.remove(domain);
        }
    }
}

/// The `id` of the `_mta-sts` record senders would use: the one valid record all
/// the servers that answered serve (the first such id; disagreement and invalid
/// records are `mta_sts_invalid`'s business).
pub fn record_id(snap: &Snapshot) -> Option<String> {
    let name = format!("_mta-sts.{}", snap.domain);
    snap.txt_at(&name).into_iter().find_map(|(_, records)| {
        let sts: Vec<&String> = records.iter().filter(|r| is_mta_sts(r)).collect();
        match sts.as_slice() {
            [one] => parse_mta_sts(one).ok().map(|r| r.id),
            _ => None,
        }
    })
}

/// STARTTLS probes in flight at once (over all domains).
pub const STARTTLS_CONCURRENCY: usize = 16;

/// What MTA-STS fetching and the STARTTLS probe share across rounds.
#[derive(Debug, Clone)]
pub struct MailTls {
    /// The TLS client for MTA-STS and STARTTLS (or why there is none: an
    /// unusable `ca_file`, which then fails every fetch).
    pub tls: Result<TlsClient, String>,
    /// The HTTPS port of `mta-sts.<domain>`: 443 (RFC 8461 §3.3).
    pub mta_sts_port: u16,
    /// MTA-STS policies kept across rounds.
    pub sts_cache: std::sync::Arc<StsCache>,
    /// Fetch MTA-STS policies over HTTPS. A round for a domain that is not
    /// configured (`/probe`, SPEC §7.2) must set this to false: no HTTPS probing
    /// then, and the mta_sts_policy_* checks are not evaluated.
    pub fetch_mta_sts: bool,
    /// `mx_certificate_expiring` fails within this of expiry.
    pub certificate_expiry_warning: Duration,
    /// STARTTLS probes in flight at once, over all domains.
    pub smtp_slots: std::sync::Arc<tokio::sync::Semaphore>,
}

impl Default for MailTls {
    /// MTA-STS on port 443, the Mozilla roots only, a 14-day certificate warning.
    fn default() -> MailTls {
        MailTls {
            tls: super::tls_client::client_config(None),
            mta_sts_port: 443,
            sts_cache: Default::default(),
            fetch_mta_sts: true,
            certificate_expiry_warning: Duration::from_secs(14 * 86400),
            smtp_slots: std::sync::Arc::new(tokio::sync::Semaphore::new(STARTTLS_CONCURRENCY)),
        }
    }
}

/// The policy of `domain` whose `_mta-sts` record has `id` (`None`: no valid
/// record, nothing to fetch): from the cache, else fetched.
pub async fn policy(
    rec: &Recursive,
    timeout: Duration,
    settings: &MailTls,
    domain: &str,
    id: Option<String>,
) -> Option<MtaStsFetch> {
    if !settings.fetch_mta_sts {
        return None;
    }
    let Some(id) = id else {
        settings.sts_cache.forget(domain);
        return None;
    };
    let host = format!("mta-sts.{domain}");
    let url = format!("https://{host}{POLICY_PATH}");
    let now = Instant::now();
    if let Some(fetched) = settings.sts_cache.get(domain, &id, now) {
        return Some(MtaStsFetch { id, url, result: Ok(StsFetched { cached: true, ..fetched }) });
    }
    let result = match &settings.tls {
        Err(e) => Err(format!("no TLS client: {e}")),
        Ok(tls) => {
            let h = lookup_host(rec, &host).await;
            let addrs: Vec<IpAddr> = h.addresses.iter().copied().collect();
            if addrs.is_empty() {
                Err(match h.error {
                    Some(e) => format!("{host} cannot be resolved: {e}"),
                    None if h.nxdomain => format!("{host} does not exist (NXDOMAIN)"),
                    None => format!("{host} has no address"),
                })
            } else {
                fetch(tls.https.clone(), &host, &addrs, settings.mta_sts_port, timeout).await.map(|b| StsFetched {
                    body: b.text,
                    content_type: b.content_type,
                    address: b.address,
                    cached: false,
                })
            }
        }
    };
    match &result {
        Ok(f) => match parse_policy(&f.body) {
            Ok(p) => settings.sts_cache.put(domain, &id, now, Duration::from_secs(p.max_age), f.clone()),
            Err(_) => settings.sts_cache.forget(domain),
        },
        Err(_) => settings.sts_cache.forget(domain),
    }
    Some(MtaStsFetch { id, url, result })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fetched(body: &str) -> StsFetched {
        StsFetched { body: body.into(), content_type: None, address: "127.0.0.1".parse().unwrap(), cached: false }
    }

    use crate::dns::test_pki::{Leaf, Pki};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const T: Duration = Duration::from_millis(400);

    /// A one-connection HTTPS server answering `response` (raw bytes, after the
    /// request head); `None`: TLS, then silence. Returns its port and the request.
    async fn https(leaf: Leaf, response: Option<Vec<u8>>) -> (u16, tokio::task::JoinHandle<String>) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let h = tokio::spawn(async move {
            let (s, _) = l.accept().await.unwrap();
            let Ok(mut tls) = tokio_rustls::TlsAcceptor::from(leaf.server_config()).accept(s).await else {
                return String::new();
            };
            let mut req = Vec::new();
            let mut b = [0u8; 1024];
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                match tls.read(&mut b).await {
                    Ok(0) | Err(_) => return String::from_utf8_lossy(&req).into_owned(),
                    Ok(n) => req.extend_from_slice(&b[..n]),
                }
            }
            match response {
                Some(r) => {
                    let _ = tls.write_all(&r).await;
                    let _ = tls.shutdown().await;
                }
                None => tokio::time::sleep(Duration::from_secs(30)).await,
            }
            String::from_utf8_lossy(&req).into_owned()
        });
        (port, h)
    }

    async fn get(pki: &Pki, port: u16) -> Result<Body, String> {
        let tls = rustls::ClientConfig::builder_with_provider(crate::dns::tls_client::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(pki.roots())
            .with_no_client_auth();
        let start = Instant::now();
        let r = fetch(Arc::new(tls), "mta-sts.a.test", &["127.0.0.1".parse().unwrap()], port, T).await;
        assert!(start.elapsed() < T * 5, "took {:?}", start.elapsed());
        r
    }

    const POLICY: &str = "version: STSv1\r\nmode: enforce\r\nmx: mx.a.test\r\nmax_age: 86400\r\n";

    #[tokio::test]
    async fn fetches_a_policy_with_sni_and_host() {
        let pki = Pki::new();
        let resp =
            format!("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{POLICY}", POLICY.len());
        let (port, req) = https(pki.leaf(&["mta-sts.a.test"], -1, 90), Some(resp.into_bytes())).await;
        let b = get(&pki, port).await.unwrap();
        assert_eq!(b.text, POLICY);
        assert_eq!(b.content_type.as_deref(), Some("text/plain"));
        let req = req.await.unwrap();
        assert!(req.starts_with("GET /.well-known/mta-sts.txt HTTP/1.1\r\n"), "{req}");
        assert!(req.to_ascii_lowercase().contains("host: mta-sts.a.test\r\n"), "{req}");
    }

    #[tokio::test]
    async fn hostile_or_broken_servers_fail() {
        let pki = Pki::new();
        let leaf = || pki.leaf(&["mta-sts.a.test"], -1, 90);
        // a redirect is not followed
        let r = b"HTTP/1.1 301 Moved\r\nLocation: https://elsewhere.test/p\r\nContent-Length: 0\r\n\r\n".to_vec();
        let (port, _) = https(leaf(), Some(r)).await;
        let e = get(&pki, port).await.unwrap_err();
        assert!(e.contains("redirecting to https://elsewhere.test/p: senders do not follow redirects"), "{e}");
        // not 200
        let (port, _) = https(leaf(), Some(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec())).await;
        assert!(get(&pki, port).await.unwrap_err().ends_with("answered 404 Not Found, not 200 OK (RFC 8461 §3.3)"));
        // a body over 64 KiB, announced and not
        let mut big = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100000\r\n\r\n".to_vec();
        big.extend(std::iter::repeat_n(b'x', 100_000));
        let (port, _) = https(leaf(), Some(big)).await;
        assert!(get(&pki, port).await.unwrap_err().contains("is larger than 65536 bytes"));
        let mut big = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n".to_vec();
        big.extend(std::iter::repeat_n(b'x', 200_000));
        let (port, _) = https(leaf(), Some(big)).await;
        assert!(get(&pki, port).await.unwrap_err().contains("is larger than 65536 bytes"));
        // TLS, then nothing
        let (port, _) = https(leaf(), None).await;
        assert!(get(&pki, port).await.unwrap_err().contains("no complete answer within"));
        // a certificate for another name, and an expired one
        let (port, _) = https(pki.leaf(&["www.a.test"], -1, 90), Some(Vec::new())).await;
        let e = get(&pki, port).await.unwrap_err();
        assert!(e.starts_with("TLS with mta-sts.a.test (127.0.0.1:") && e.contains("not valid for name"), "{e}");
        let (port, _) = https(pki.leaf(&["mta-sts.a.test"], -30, -2), Some(Vec::new())).await;
        assert!(get(&pki, port).await.unwrap_err().contains("certificate expired"));
        // garbage instead of HTTP
        let (port, _) = https(leaf(), Some(b"\x00\x01garbage\r\n\r\n".to_vec())).await;
        assert!(get(&pki, port).await.unwrap_err().starts_with("HTTP with mta-sts.a.test"));
        // a closed port
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let closed = l.local_addr().unwrap().port();
        drop(l);
        assert!(get(&pki, closed).await.unwrap_err().starts_with("cannot connect to mta-sts.a.test"));
    }

    #[tokio::test]
    async fn no_fetch_when_switched_off_or_without_a_record() {
        // resolvers that do not exist: a fetch would fail, not return None
        let rec = Recursive::new(&["127.0.0.1:9".parse().unwrap()], T);
        let on = MailTls::default();
        assert!(policy(&rec, T, &on, "a.test", None).await.is_none(), "no valid record: nothing to fetch");
        let f = policy(&rec, T, &on, "a.test", Some("id1".into())).await.unwrap();
        assert!(f.result.unwrap_err().starts_with("mta-sts.a.test cannot be resolved"));
        let off = MailTls { fetch_mta_sts: false, ..on };
        assert!(policy(&rec, T, &off, "a.test", Some("id1".into())).await.is_none());
    }

    #[test]
    fn cache_keeps_until_id_changes_or_max_age_runs_out() {
        let c = StsCache::default();
        let t0 = Instant::now();
        c.put("a.test", "id1", t0, Duration::from_secs(60), fetched("x"));
        assert_eq!(c.get("a.test", "id1", t0 + Duration::from_secs(59)).map(|f| f.body), Some("x".into()));
        assert!(c.get("a.test", "id1", t0 + Duration::from_secs(60)).is_none(), "max_age ran out");
        assert!(c.get("a.test", "id2", t0).is_none(), "the id changed");
        assert!(c.get("b.test", "id1", t0).is_none());
        c.forget("a.test");
        assert!(c.get("a.test", "id1", t0).is_none());
    }
}
