//! DANE for SMTP (RFC 7672, RFC 6698, RFC 7671): matching the TLSA records at
//! `_25._tcp.<MX host>` against the certificate chain the host presented after
//! STARTTLS. Pure: records and chain in, verdict out.
//!
//! - Usable records (RFC 7672 §3.1): certificate usage 3 DANE-EE (matched against
//!   the leaf) and 2 DANE-TA (matched against the issuer certificates the server
//!   sent, chain[1..]); selector 0 (the whole certificate) or 1
//!   (SubjectPublicKeyInfo); matching type 0 (exact), 1 (SHA-256) or 2 (SHA-512).
//!   Usages 0 and 1 (PKIX-TA, PKIX-EE) and unknown values are unusable for SMTP
//!   (RFC 7672 §3.1.3); a TLSA RRset with no usable record is treated by senders as
//!   if there were none (no DANE authentication, RFC 7672 §2.2).
//! - With DANE-EE the name and the validity dates are not checked (RFC 7672 §3.1.1).
//! - Limitation: for DANE-TA, this finds the trust anchor among the certificates
//!   presented; it does not re-verify the signatures from that anchor to the leaf
//!   nor the MX name against the leaf (RFC 7672 §3.1.2). A chain presenting a
//!   matching TA certificate it was not issued under is therefore not caught here.
//!
//! The records are trusted only when their zone is signed and validated (RFC 7672
//! §2.2): [`crate::dns::checks::tls::dane_tlsa_mismatch`] gates on that.

use serde::Serialize;

use super::x509::cert_info;

/// One TLSA record (RFC 6698 §2.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tlsa {
    pub usage: u8,
    pub selector: u8,
    pub matching: u8,
    /// The certificate association data (hex in messages).
    #[serde(serialize_with = "hex_ser")]
    pub data: Vec<u8>,
}

fn hex_ser<S: serde::Serializer>(d: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&hex(d))
}

/// Lowercase hex.
pub fn hex(d: &[u8]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

impl Tlsa {
    /// Is the record usable for SMTP (RFC 7672 §3.1)?
    pub fn usable(&self) -> bool {
        matches!(self.usage, 2 | 3) && matches!(self.selector, 0 | 1) && matches!(self.matching, 0..=2)
    }

    /// `3 1 1 ab12…` as in a zone file, the data clipped.
    pub fn text(&self) -> String {
        let h = hex(&self.data);
        let h = if h.len() > 24 { format!("{}…", &h[..24]) } else { h };
        format!("{} {} {} {h}", self.usage, self.selector, self.matching)
    }
}

/// The outcome of matching a TLSA RRset against a chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DaneMatch {
    /// Record `record` matches certificate `cert` of the chain (0 = leaf).
    Match { record: usize, cert: usize },
    /// Usable records exist and none matches.
    NoMatch,
    /// No usable record: DANE does not authenticate this host.
    Unusable,
}

fn digest(matching: u8, data: &[u8]) -> Option<Vec<u8>> {
    match matching {
        0 => Some(data.to_vec()),
        1 => Some(ring::digest::digest(&ring::digest::SHA256, data).as_ref().to_vec()),
        2 => Some(ring::digest::digest(&ring::digest::SHA512, data).as_ref().to_vec()),
        _ => None,
    }
}

/// What the record's selector picks from `cert` (DER).
fn selected(selector: u8, cert: &[u8]) -> Option<Vec<u8>> {
    match selector {
        0 => Some(cert.to_vec()),
        1 => cert_info(cert).ok().map(|i| i.spki),
        _ => None,
    }
}

/// Does `record` match `cert`?
pub fn record_matches(record: &Tlsa, cert: &[u8]) -> bool {
    selected(record.selector, cert).and_then(|s| digest(record.matching, &s)).is_some_and(|d| d == record.data)
}

/// Matches a TLSA RRset against the presented chain (leaf first).
pub fn tlsa_match(records: &[Tlsa], chain: &[Vec<u8>]) -> DaneMatch {
    if !records.iter().any(Tlsa::usable) {
        return DaneMatch::Unusable;
    }
    for (i, r) in records.iter().enumerate().filter(|(_, r)| r.usable()) {
        let candidates: Vec<usize> = match r.usage {
            3 => (0..chain.len().min(1)).collect(),
            _ => (1..chain.len()).collect(),
        };
        if let Some(c) = candidates.into_iter().find(|&c| record_matches(r, &chain[c])) {
            return DaneMatch::Match { record: i, cert: c };
        }
    }
    DaneMatch::NoMatch
}

/// The TLSA records at `_25._tcp.<exchange>`, asked of the resolvers with DO
/// (the first resolver that answers other than SERVFAIL/REFUSED), and whether the
/// answer validated (AD). A SERVFAIL from every resolver is a failed lookup: a
/// validating resolver answers so for bogus data, and senders then defer
/// (RFC 7672 §2.1.1).
pub async fn lookup(
    prober: &super::probe::Prober,
    resolvers: &[std::net::SocketAddr],
    exchange: &str,
) -> super::snapshot::DaneLookup {
    use hickory_proto::op::ResponseCode;
    use hickory_proto::rr::{Name, RData};

    use super::snapshot::{DaneLookup, Lookup, norm};
    let name = format!("_25._tcp.{exchange}");
    let failed = |e: String| DaneLookup { name: name.clone(), tlsa: Lookup::Failed(e), validated: false };
    let Ok(qname) = Name::from_ascii(format!("{name}.")) else {
        return failed(format!("{name} is not a valid name"));
    };
    let mut problems = Vec::new();
    for &r in resolvers {
        match prober.query_validated(r, &qname, hickory_proto::rr::RecordType::TLSA).await {
            Ok(resp) if !matches!(resp.rcode, ResponseCode::ServFail | ResponseCode::Refused) => {
                let records: Vec<Tlsa> = resp
                    .answers
                    .iter()
                    .filter(|rec| norm(&rec.name.to_ascii()) == norm(&name))
                    .filter_map(|rec| match &rec.data {
                        RData::TLSA(t) => Some(Tlsa {
                            usage: u8::from(t.cert_usage),
                            selector: u8::from(t.selector),
                            matching: u8::from(t.matching),
                            data: t.cert_data.clone(),
                        }),
                        _ => None,
                    })
                    .collect();
                let tlsa = if !records.is_empty() {
                    Lookup::Found(records)
                } else {
                    Lookup::Void { nxdomain: resp.rcode == ResponseCode::NXDomain }
                };
                return DaneLookup { name, tlsa, validated: resp.authentic_data };
            }
            Ok(resp) => problems.push(format!("resolver {r} answered {:?}", resp.rcode)),
            Err(e) => problems.push(format!("resolver {r}: {e}")),
        }
    }
    if problems.is_empty() {
        problems.push("no resolvers configured".to_string());
    }
    failed(format!("{name} TLSA: {}", problems.join("; ")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::test_pki::Pki;

    fn rec(usage: u8, selector: u8, matching: u8, data: Vec<u8>) -> Tlsa {
        Tlsa { usage, selector, matching, data }
    }

    #[test]
    fn usages_selectors_matching_types() {
        let pki = Pki::new();
        let leaf = pki.leaf(&["mx.example.test"], -1, 90);
        let chain: Vec<Vec<u8>> = leaf.chain.iter().map(|c| c.to_vec()).collect();
        let other = pki.leaf(&["mx.example.test"], -1, 90);
        let other_chain: Vec<Vec<u8>> = other.chain.iter().map(|c| c.to_vec()).collect();
        let spki = cert_info(&chain[0]).unwrap().spki;
        let ca_spki = cert_info(&chain[1]).unwrap().spki;
        let sha256 = |d: &[u8]| digest(1, d).unwrap();
        let sha512 = |d: &[u8]| digest(2, d).unwrap();
        for (r, want) in [
            // DANE-EE, each selector and matching type
            (rec(3, 1, 1, sha256(&spki)), DaneMatch::Match { record: 0, cert: 0 }),
            (rec(3, 1, 2, sha512(&spki)), DaneMatch::Match { record: 0, cert: 0 }),
            (rec(3, 1, 0, spki.clone()), DaneMatch::Match { record: 0, cert: 0 }),
            (rec(3, 0, 1, sha256(&chain[0])), DaneMatch::Match { record: 0, cert: 0 }),
            (rec(3, 0, 0, chain[0].clone()), DaneMatch::Match { record: 0, cert: 0 }),
            // DANE-TA: the CA the server sends
            (rec(2, 0, 1, sha256(&chain[1])), DaneMatch::Match { record: 0, cert: 1 }),
            (rec(2, 1, 2, sha512(&ca_spki)), DaneMatch::Match { record: 0, cert: 1 }),
            // DANE-TA must not match the leaf, DANE-EE not the CA
            (rec(2, 1, 1, sha256(&spki)), DaneMatch::NoMatch),
            (rec(3, 0, 1, sha256(&chain[1])), DaneMatch::NoMatch),
            // a rolled key: the record is for another certificate's key
            (rec(3, 1, 1, sha256(&cert_info(&other_chain[0]).unwrap().spki)), DaneMatch::NoMatch),
            // a truncated digest
            (rec(3, 1, 1, sha256(&spki)[..31].to_vec()), DaneMatch::NoMatch),
            // unusable for SMTP: PKIX usages, unknown selector or matching type
            (rec(1, 1, 1, sha256(&spki)), DaneMatch::Unusable),
            (rec(0, 0, 1, sha256(&chain[1])), DaneMatch::Unusable),
            (rec(3, 2, 1, sha256(&spki)), DaneMatch::Unusable),
            (rec(3, 1, 3, sha256(&spki)), DaneMatch::Unusable),
        ] {
            assert_eq!(tlsa_match(std::slice::from_ref(&r), &chain), want, "{}", r.text());
        }
        // any usable record of the RRset may match; unusable ones are skipped
        let set = [rec(1, 1, 1, sha256(&spki)), rec(3, 1, 1, vec![0; 32]), rec(3, 1, 1, sha256(&spki))];
        assert_eq!(tlsa_match(&set, &chain), DaneMatch::Match { record: 2, cert: 0 });
        // nothing presented
        assert_eq!(tlsa_match(&set[1..2], &[]), DaneMatch::NoMatch);
        // garbage certificates do not panic
        assert_eq!(tlsa_match(&set[1..2], &[vec![0x30, 0x01]]), DaneMatch::NoMatch);
    }

    #[test]
    fn text_form() {
        assert_eq!(rec(3, 1, 1, vec![0xab; 32]).text(), "3 1 1 abababababababababababab…");
        assert_eq!(rec(2, 0, 0, vec![1, 2]).text(), "2 0 0 0102");
    }
}
