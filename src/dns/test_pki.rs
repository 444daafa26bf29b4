//! Test-only PKI: a CA made at test time with rcgen, leaves signed by it, and
//! rustls server configurations presenting them.

use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::RootCertStore;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::dns::checks::tls::utc;

pub struct Pki {
    pub ca: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

/// (year, month, day) of now plus `days`.
fn ymd(days: i64) -> (i32, u8, u8) {
    let t = utc(now() + days * 86400);
    (t[..4].parse().unwrap(), t[5..7].parse().unwrap(), t[8..10].parse().unwrap())
}

fn validity(p: &mut CertificateParams, from_days: i64, to_days: i64) {
    let (y, m, d) = ymd(from_days);
    p.not_before = rcgen::date_time_ymd(y, m, d);
    let (y, m, d) = ymd(to_days);
    p.not_after = rcgen::date_time_ymd(y, m, d);
}

/// A leaf: its chain (leaf, CA) and key.
pub struct Leaf {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

impl Leaf {
    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        Arc::new(
            rustls::ServerConfig::builder_with_provider(crate::dns::tls_client::provider())
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(self.chain.clone(), self.key.clone_key())
                .unwrap(),
        )
    }
}

impl Pki {
    pub fn new() -> Pki {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(rcgen::DnType::CommonName, format!("mailroute test CA {}", fastrand::u64(..)));
        validity(&mut p, -30, 365);
        let ca = p.self_signed(&key).unwrap().der().clone();
        Pki { ca, issuer: Issuer::new(p, key) }
    }

    /// A leaf for `names`, valid from now + `from_days` to now + `to_days`.
    pub fn leaf(&self, names: &[&str], from_days: i64, to_days: i64) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        validity(&mut p, from_days, to_days);
        let cert = p.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            chain: vec![cert.der().clone(), self.ca.clone()],
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        }
    }

    pub fn roots(&self) -> Arc<RootCertStore> {
        let mut r = RootCertStore::empty();
        r.add(self.ca.clone()).unwrap();
        Arc::new(r)
    }
}
