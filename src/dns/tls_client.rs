//! The TLS client side shared by the MTA-STS policy fetch and the STARTTLS probe:
//! a rustls client configuration trusting the Mozilla roots (`webpki-roots`) plus
//! the PEM certificates of `[dns] ca_file`.

use std::path::Path;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// Reads the PEM certificates of `path`; an unreadable file or one without a
/// certificate is an error.
pub fn load_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no PEM certificate in the file", path.display()));
    }
    Ok(certs)
}

/// The root store: the Mozilla roots and `extra`.
pub fn roots(extra: &[CertificateDer<'static>]) -> Result<RootCertStore, String> {
    let mut store = RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    for c in extra {
        store.add(c.clone()).map_err(|e| format!("ca_file: a certificate is not usable as a trust anchor: {e}"))?;
    }
    Ok(store)
}

/// The TLS client of a round: the trust anchors, and an HTTPS client
/// configuration that validates server chains against them.
#[derive(Debug, Clone)]
pub struct TlsClient {
    pub roots: Arc<RootCertStore>,
    pub https: Arc<rustls::ClientConfig>,
}

/// The crypto provider used everywhere (ring, as the server side).
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The TLS client trusting the Mozilla roots plus the certificates of `ca_file`.
pub fn client_config(ca_file: Option<&Path>) -> Result<TlsClient, String> {
    let extra = match ca_file {
        Some(p) => load_ca_file(p)?,
        None => Vec::new(),
    };
    let roots = Arc::new(roots(&extra)?);
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_root_certificates(roots.clone())
        .with_no_client_auth();
    Ok(TlsClient { roots, https: Arc::new(config) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ca_file_errors() {
        let dir = tempfile::tempdir().unwrap();
        let none = dir.path().join("absent.pem");
        assert!(load_ca_file(&none).unwrap_err().contains("absent.pem"));
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        assert_eq!(load_ca_file(&empty).unwrap_err(), format!("{}: no PEM certificate in the file", empty.display()));
        assert!(client_config(None).is_ok());
    }
}
