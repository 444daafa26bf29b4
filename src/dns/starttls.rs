//! The STARTTLS probe (opt-in per domain, `starttls_probe`): one connection to
//! each MX address on `smtp_probe_port`: the greeting, `EHLO`, `STARTTLS` (RFC 3207
//! §4), a rustls handshake with SNI the MX name, the presented chain recorded and
//! validated against the MX name (RFC 7672 §3.2 / RFC 8461 §4.2 as senders do),
//! then `QUIT`.
//!
//! Bounded: every step has the round's query timeout; replies are capped at
//! [`MAX_REPLY_BYTES`] and [`MAX_REPLY_LINES`]; rustls itself caps handshake
//! messages (a huge chain fails the handshake); at most [`MAX_ADDRESSES`] addresses
//! per domain; and all probes of all domains share `Settings::smtp_slots`. A
//! server that says nothing, talks forever, speaks garbage or aborts the handshake
//! gives a failed probe naming the step, never a hang.
//!
//! The chain is accepted whatever its validity so that the session ends with a
//! polite `QUIT` and the certificate can be inspected: the verifier wraps rustls'
//! WebPKI verifier, records its verdict, and still checks the handshake signatures.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::records::clip;
use super::snapshot::{StarttlsOutcome, StarttlsProbe};
use super::tls_client::provider;
use super::x509::cert_info;

/// The most of one SMTP reply read.
pub const MAX_REPLY_BYTES: usize = 16 * 1024;
/// The most lines of one multi-line reply.
pub const MAX_REPLY_LINES: usize = 64;
/// MX addresses probed per domain.
pub const MAX_ADDRESSES: usize = 16;

/// One complete SMTP reply at the start of `buf` (RFC 5321 §4.2.1): the code, the
/// lines' texts, and how many bytes it took. `Ok(None)`: not complete yet.
pub fn parse_reply(buf: &[u8]) -> Result<Option<(u16, Vec<String>, usize)>, String> {
    let mut lines = Vec::new();
    let mut pos = 0;
    let mut code: Option<u16> = None;
    while let Some(nl) = buf[pos..].iter().position(|&b| b == b'\n') {
        let raw = &buf[pos..pos + nl];
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        pos += nl + 1;
        let text = String::from_utf8_lossy(line);
        let c = line
            .get(..3)
            .filter(|c| c.iter().all(u8::is_ascii_digit))
            .and_then(|c| std::str::from_utf8(c).ok()?.parse::<u16>().ok())
            .filter(|_| matches!(line.get(3), None | Some(b' ') | Some(b'-')))
            .ok_or_else(|| format!("not an SMTP reply line: {:?}", clip(&text)))?;
        if code.is_some_and(|k| k != c) {
            return Err(format!("a multi-line reply changes its code to {c}"));
        }
        code = Some(c);
        lines.push(text.get(4..).unwrap_or("").to_string());
        if lines.len() > MAX_REPLY_LINES {
            return Err(format!("a reply of more than {MAX_REPLY_LINES} lines"));
        }
        if line.get(3) != Some(&b'-') {
            return Ok(Some((c, lines, pos)));
        }
    }
    Ok(None)
}

/// An SMTP connection with its read buffer.
struct Smtp<S> {
    s: S,
    buf: Vec<u8>,
    timeout: Duration,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Smtp<S> {
    async fn reply(&mut self, step: &str) -> Result<(u16, Vec<String>), (String, String)> {
        let fail = |d: String| (step.to_string(), d);
        let read = async {
            let mut chunk = [0u8; 2048];
            loop {
                if let Some((code, lines, used)) = parse_reply(&self.buf).map_err(fail)? {
                    self.buf.drain(..used);
                    return Ok((code, lines));
                }
                if self.buf.len() > MAX_REPLY_BYTES {
                    return Err(fail(format!("a reply longer than {MAX_REPLY_BYTES} bytes")));
                }
                let n = self.s.read(&mut chunk).await.map_err(|e| fail(e.to_string()))?;
                if n == 0 {
                    return Err(fail("the server closed the connection".to_string()));
                }
                self.buf.extend_from_slice(&chunk[..n]);
            }
        };
        match tokio::time::timeout(self.timeout, read).await {
            Ok(r) => r,
            Err(_) => Err(fail(format!("no complete reply within {:?}", self.timeout))),
        }
    }

    async fn send(&mut self, line: &str, step: &str) -> Result<(), (String, String)> {
        match tokio::time::timeout(self.timeout, self.s.write_all(line.as_bytes())).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err((step.to_string(), e.to_string())),
            Err(_) => Err((step.to_string(), format!("could not send within {:?}", self.timeout))),
        }
    }
}

/// Records what rustls' WebPKI verifier says of the chain, and accepts it.
#[derive(Debug)]
struct Recorder {
    inner: Arc<WebPkiServerVerifier>,
    verdict: Mutex<Option<String>>,
}

impl ServerCertVerifier for Recorder {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let r = self.inner.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now);
        if let (Err(e), Ok(mut v)) = (r, self.verdict.lock()) {
            *v = Some(e.to_string());
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Probes one MX address. `ehlo` is the name this side gives in `EHLO`.
pub async fn probe(
    roots: Arc<RootCertStore>,
    exchange: &str,
    address: IpAddr,
    port: u16,
    timeout: Duration,
    ehlo: &str,
) -> StarttlsOutcome {
    match session(roots, exchange, address, port, timeout, ehlo).await {
        Ok(o) => o,
        Err((step, detail)) => StarttlsOutcome::Failed { step, detail },
    }
}

async fn session(
    roots: Arc<RootCertStore>,
    exchange: &str,
    address: IpAddr,
    port: u16,
    timeout: Duration,
    ehlo: &str,
) -> Result<StarttlsOutcome, (String, String)> {
    let err = |step: &str, d: String| (step.to_string(), d);
    let addr = SocketAddr::new(address, port);
    let tcp = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(err("connect", e.to_string())),
        Err(_) => return Err(err("connect", format!("no connection within {timeout:?}"))),
    };
    let mut smtp = Smtp { s: tcp, buf: Vec::new(), timeout };
    let (code, lines) = smtp.reply("greeting").await?;
    if code != 220 {
        return Err(err("greeting", format!("{code} {}", clip(lines.first().map_or("", |l| l.as_str())))));
    }
    smtp.send(&format!("EHLO {ehlo}\r\n"), "EHLO").await?;
    let (code, lines) = smtp.reply("EHLO").await?;
    if code != 250 {
        return Err(err("EHLO", format!("{code} {}", clip(lines.first().map_or("", |l| l.as_str())))));
    }
    if !lines.iter().skip(1).any(|l| l.split_whitespace().next().is_some_and(|k| k.eq_ignore_ascii_case("STARTTLS"))) {
        let _ = smtp.send("QUIT\r\n", "QUIT").await;
        return Err(err("EHLO", "the server does not offer STARTTLS".to_string()));
    }
    smtp.send("STARTTLS\r\n", "STARTTLS").await?;
    let (code, lines) = smtp.reply("STARTTLS").await?;
    if code != 220 {
        return Err(err("STARTTLS", format!("{code} {}", clip(lines.first().map_or("", |l| l.as_str())))));
    }
    let server_name =
        ServerName::try_from(exchange.to_string()).map_err(|e| err("TLS handshake", format!("{exchange}: {e}")))?;
    let inner = WebPkiServerVerifier::builder_with_provider(roots, provider())
        .build()
        .map_err(|e| err("TLS handshake", e.to_string()))?;
    let recorder = Arc::new(Recorder { inner, verdict: Mutex::new(None) });
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| err("TLS handshake", e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(recorder.clone())
        .with_no_client_auth();
    let connect = TlsConnector::from(Arc::new(config)).connect(server_name, smtp.s);
    let tls = match tokio::time::timeout(timeout, connect).await {
        Ok(Ok(t)) => t,
        Ok(Err(e)) => return Err(err("TLS handshake", e.to_string())),
        Err(_) => return Err(err("TLS handshake", format!("not done within {timeout:?}"))),
    };
    let chain: Vec<Vec<u8>> =
        tls.get_ref().1.peer_certificates().map(|c| c.iter().map(|d| d.to_vec()).collect()).unwrap_or_default();
    let mut invalid = recorder.verdict.lock().ok().and_then(|v| v.clone());
    let (not_before, not_after) = match chain.first().map(|c| cert_info(c)) {
        Some(Ok(i)) => (Some(i.not_before), Some(i.not_after)),
        Some(Err(e)) => {
            invalid.get_or_insert(format!("the certificate cannot be read: {e}"));
            (None, None)
        }
        None => {
            invalid.get_or_insert("no certificate presented".to_string());
            (None, None)
        }
    };
    // be polite: QUIT inside TLS, wait for the 221 (or not), within the timeout
    let mut smtp = Smtp { s: tls, buf: Vec::new(), timeout };
    if smtp.send("QUIT\r\n", "QUIT").await.is_ok() {
        let _ = smtp.reply("QUIT").await;
    }
    let _ = tokio::time::timeout(timeout, smtp.s.shutdown()).await;
    Ok(StarttlsOutcome::Tls { chain, not_before, not_after, invalid })
}

/// Probes each address of each exchange (at most [`MAX_ADDRESSES`] in all), each
/// holding one of `slots` while it runs.
pub async fn probe_all(
    roots: Arc<RootCertStore>,
    targets: Vec<(String, IpAddr)>,
    port: u16,
    timeout: Duration,
    slots: Arc<tokio::sync::Semaphore>,
) -> Vec<StarttlsProbe> {
    let ehlo = local_name();
    let work = targets.into_iter().take(MAX_ADDRESSES).map(|(exchange, address)| {
        let (roots, slots, ehlo) = (roots.clone(), slots.clone(), ehlo.clone());
        async move {
            let _slot = slots.acquire_owned().await.ok();
            let outcome = probe(roots, &exchange, address, port, timeout, &ehlo).await;
            StarttlsProbe { exchange, address, port, outcome }
        }
    });
    futures_util::future::join_all(work).await
}

/// The name given in `EHLO`: this machine's name if it is a plausible host name.
fn local_name() -> String {
    let h = gethostname::gethostname().to_string_lossy().to_ascii_lowercase();
    if !h.is_empty() && h.len() <= 253 && h.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.') {
        h
    } else {
        "localhost".to_string()
    }
}

#[cfg(test)]
mod tests;
