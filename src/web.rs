//! The HTTP(S) server loop: what exporter-toolkit gives Go exporters, for ours.
//!
//! - opt-in TLS (rustls, `[web.tls] cert_file`/`key_file`) and basic auth with
//!   bcrypt hashes (`[web.basic_auth] users`), on every endpoint;
//! - bounded: at most [`MAX_CONNECTIONS`] connections (more are closed at once), a
//!   TLS handshake and request headers must arrive within [`HANDSHAKE_TIMEOUT`], and
//!   a connection that makes no read or write progress for [`IO_TIMEOUT`] is dropped,
//!   so slow clients cannot hold the server;
//! - graceful: on shutdown, open connections finish their current request.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_io_timeout::TimeoutStream;
use tokio_rustls::TlsAcceptor;

use crate::config::TlsConfig;

/// Connections served at once; more are closed on accept.
pub const MAX_CONNECTIONS: usize = 256;
/// Time for a TLS handshake and for a request's headers.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection that neither reads nor writes for this long is closed.
pub const IO_TIMEOUT: Duration = Duration::from_secs(30);
/// How long shutdown waits for open requests.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Loads a certificate chain and private key (PEM) into a rustls server config.
pub fn tls_config(tls: &TlsConfig) -> Result<Arc<rustls::ServerConfig>, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&tls.cert_file)
        .map_err(|e| format!("web.tls.cert_file {}: {e}", tls.cert_file))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("web.tls.cert_file {}: {e}", tls.cert_file))?;
    if certs.is_empty() {
        return Err(format!("web.tls.cert_file {}: no certificate in the file", tls.cert_file));
    }
    let key =
        PrivateKeyDer::from_pem_file(&tls.key_file).map_err(|e| format!("web.tls.key_file {}: {e}", tls.key_file))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("web.tls: the key does not fit the certificate: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Serves `router` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    router: Router,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let acceptor = tls.map(TlsAcceptor::from);
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // out of file descriptors and the like: back off instead of spinning
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "too many connections, closing");
            drop(tcp);
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let mut io = TimeoutStream::new(tcp);
        io.set_read_timeout(Some(IO_TIMEOUT));
        io.set_write_timeout(Some(IO_TIMEOUT));
        let io = Box::pin(io);
        let service = TowerToHyperService::new(router.clone());
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder.timer(TokioTimer::new()).header_read_timeout(HANDSHAKE_TIMEOUT).keep_alive(true);
        match &acceptor {
            None => {
                let conn = graceful.watch(builder.serve_connection(TokioIo::new(io), service));
                tokio::spawn(async move {
                    let _ = conn.await;
                    drop(permit);
                });
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                let watcher = graceful.watcher();
                tokio::spawn(async move {
                    let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(io)).await {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => return,
                    };
                    let _ = watcher.watch(builder.serve_connection(TokioIo::new(stream), service)).await;
                    drop(permit);
                });
            }
        }
    }
    drop(listener);
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown()).await;
}

/// Basic auth users (name → bcrypt hash), replaceable on reload, with a small cache
/// of verified credentials: bcrypt is deliberately slow, and a scraper sends the same
/// header every time.
#[derive(Debug, Default)]
pub struct BasicAuth {
    users: RwLock<BTreeMap<String, String>>,
    verified: Mutex<HashMap<u64, (String, bool)>>,
}

const AUTH_CACHE: usize = 256;

impl BasicAuth {
    pub fn new(users: BTreeMap<String, String>) -> BasicAuth {
        BasicAuth { users: RwLock::new(users), verified: Mutex::new(HashMap::new()) }
    }

    pub fn set_users(&self, users: BTreeMap<String, String>) {
        if let Ok(mut u) = self.users.write() {
            *u = users;
        }
        if let Ok(mut c) = self.verified.lock() {
            c.clear();
        }
    }

    pub fn enabled(&self) -> bool {
        self.users.read().map(|u| !u.is_empty()).unwrap_or(true)
    }

    /// Checks an `Authorization` header value.
    pub fn check(&self, authorization: Option<&HeaderValue>) -> bool {
        let Some(value) = authorization.and_then(|v| v.to_str().ok()) else { return false };
        let Some(encoded) = value.strip_prefix("Basic ").or_else(|| value.strip_prefix("basic ")) else { return false };
        let key = crate::maillog::exim::text_hash(encoded.as_bytes());
        if let Ok(c) = self.verified.lock()
            && let Some((seen, ok)) = c.get(&key)
            && seen == encoded
        {
            return *ok;
        }
        let ok = self.verify(encoded);
        if let Ok(mut c) = self.verified.lock() {
            if c.len() >= AUTH_CACHE {
                c.clear();
            }
            c.insert(key, (encoded.to_string(), ok));
        }
        ok
    }

    fn verify(&self, encoded: &str) -> bool {
        let Some(decoded) = decode_base64(encoded.trim()) else { return false };
        let Ok(text) = String::from_utf8(decoded) else { return false };
        let Some((user, password)) = text.split_once(':') else { return false };
        let hash = match self.users.read() {
            Ok(u) => u.get(user).cloned(),
            Err(_) => None,
        };
        // an unknown user still costs one bcrypt run, so timing does not reveal names
        let hash = hash.unwrap_or_else(|| dummy_hash().to_string());
        bcrypt::verify(password, &hash).unwrap_or(false) && self.users.read().is_ok_and(|u| u.contains_key(user))
    }
}

/// A bcrypt hash (cost 10, the usual) verified for unknown users.
fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| bcrypt::hash(fastrand::u64(..).to_string(), 10).unwrap_or_default())
}

/// Standard base64 (RFC 4648 §4, padded), as basic auth uses (RFC 7617), through
/// the `base64` crate.
pub fn decode_base64(s: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(s).ok()
}

/// Middleware: every request needs valid credentials when users are configured.
pub async fn require_auth(State(auth): State<Arc<BasicAuth>>, req: Request, next: Next) -> Response {
    if !auth.enabled() || auth.check(req.headers().get(header::AUTHORIZATION)) {
        return next.run(req).await;
    }
    let mut resp = (StatusCode::UNAUTHORIZED, "Unauthorized\n").into_response();
    resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"mailroute_exporter\""));
    resp
}

/// Where the server listens, for logs.
pub fn scheme(tls: bool, addr: SocketAddr) -> String {
    format!("{}://{addr}", if tls { "https" } else { "http" })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_decoding() {
        assert_eq!(decode_base64("YWxpY2U6czNjcmV0").as_deref(), Some(&b"alice:s3cret"[..]));
        assert_eq!(decode_base64("YQ==").as_deref(), Some(&b"a"[..]));
        assert_eq!(decode_base64("YWI=").as_deref(), Some(&b"ab"[..]));
        assert_eq!(decode_base64(""), Some(vec![]));
        for bad in ["YQ=", "Y===", "YQ=a", "!!!!", "YWxpY2U6czNjcmV0=="] {
            assert_eq!(decode_base64(bad), None, "{bad}");
        }
    }

    #[test]
    fn basic_auth_checks_and_caches() {
        let hash = bcrypt::hash("s3cret", 4).expect("hash");
        let auth = BasicAuth::new([("alice".to_string(), hash)].into());
        let good = HeaderValue::from_static("Basic YWxpY2U6czNjcmV0");
        let wrong = HeaderValue::from_static("Basic YWxpY2U6d3Jvbmc=");
        let unknown = HeaderValue::from_static("Basic Ym9iOnMzY3JldA==");
        assert!(auth.check(Some(&good)));
        assert!(auth.check(Some(&good)), "from the cache");
        assert!(!auth.check(Some(&wrong)));
        assert!(!auth.check(Some(&unknown)));
        assert!(!auth.check(None));
        assert!(!auth.check(Some(&HeaderValue::from_static("Bearer x"))));
        auth.set_users(BTreeMap::new());
        assert!(!auth.enabled());
    }

    #[test]
    fn dummy_hash_is_valid_bcrypt() {
        assert!(bcrypt::verify("anything", dummy_hash()).is_ok());
    }
}
