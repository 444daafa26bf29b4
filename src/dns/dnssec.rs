//! DNSSEC verification over plain data: no sockets, no clock. The round hands in
//! what one server served (an RRset, the RRSIGs over it, the zone's DNSKEY RRset) and
//! what the parent served (DS); this module says which keys the DS set matches and,
//! for each RRSIG, whether it verifies and when it is valid.
//!
//! The cryptography and the canonical form are hickory-proto's (`dnssec-ring`, which
//! verifies with ring): [`Verifier::verify_rrsig`] builds the signed data of
//! RFC 4034 §3.1.8.1 (RRSIG RDATA without the signature, then the RRset in the
//! canonical order and form of RFC 4034 §6.2–6.3, names lowercased, the original TTL)
//! and [`DS::covers`] hashes a DNSKEY as RFC 4034 §5.1.4 says. Nothing here is
//! hand-written crypto. Algorithms: whatever hickory supports, at least RSASHA256 (8),
//! ECDSAP256SHA256 (13) and ED25519 (15) (RFC 8624 §3.1).
//!
//! Times: RRSIG inception and expiration are 32-bit serial numbers (RFC 4034 §3.1.5);
//! [`absolute_time`] places them in the 68-year window around the time of the round.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use hickory_proto::dnssec::rdata::{DNSKEY, DS, RRSIG};
use hickory_proto::dnssec::{PublicKey, Verifier};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use serde::Serialize;

/// One key of a DNSKEY RRset, as the checks need it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct KeyInfo {
    /// The key tag (RFC 4034 Appendix B).
    pub tag: u16,
    pub algorithm: u8,
    /// 256 = zone key, 257 = zone key with SEP (RFC 4034 §2.1.1).
    pub flags: u16,
}

impl KeyInfo {
    pub fn of(key: &DNSKEY) -> KeyInfo {
        let tag = key.calculate_key_tag().unwrap_or_else(|_| DNSKEY::calculate_key_tag_internal(&[]));
        KeyInfo { tag, algorithm: u8::from(key.public_key().algorithm()), flags: key.flags() }
    }
}

impl std::fmt::Display for KeyInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/alg {}/flags {}", self.tag, self.algorithm, self.flags)
    }
}

/// One DS record at the parent.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct DsInfo {
    pub key_tag: u16,
    pub algorithm: u8,
    pub digest_type: u8,
}

impl DsInfo {
    pub fn of(ds: &DS) -> DsInfo {
        DsInfo { key_tag: ds.key_tag(), algorithm: u8::from(ds.algorithm()), digest_type: u8::from(ds.digest_type()) }
    }
}

impl std::fmt::Display for DsInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/alg {}/digest {}", self.key_tag, self.algorithm, self.digest_type)
    }
}

/// The tags of the zone keys that some DS record matches: same key tag and
/// algorithm, and the digest of the DNSKEY (owner name included) equal to the DS
/// digest (RFC 4034 §5.1.4, RFC 4035 §5.2). The SEP flag is advisory and not
/// required (RFC 4034 §2.1.1); a key without the zone-key flag never matches.
/// A DS with a digest type hickory does not know matches nothing.
pub fn ds_matches(zone: &Name, ds: &[DS], keys: &[DNSKEY]) -> BTreeSet<u16> {
    let mut out = BTreeSet::new();
    for key in keys {
        let info = KeyInfo::of(key);
        let matched = ds.iter().any(|d| {
            d.key_tag() == info.tag && u8::from(d.algorithm()) == info.algorithm && d.covers(zone, key).unwrap_or(false)
        });
        if matched {
            out.insert(info.tag);
        }
    }
    out
}

/// One RRSIG as checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SigCheck {
    pub key_tag: u16,
    pub algorithm: u8,
    /// Unix times (see [`absolute_time`]).
    pub inception: i64,
    pub expiration: i64,
    /// `None`: it verifies against a key of the zone's DNSKEY RRset; else why not.
    /// Time validity is judged by the checks, against the round's time.
    pub problem: Option<String>,
}

/// An RRset and the RRSIGs one server serves over it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RrsetSigs {
    pub owner: Arc<str>,
    /// `SOA`, `NS`, `DNSKEY`, `MX`, `A`, `AAAA` or `TXT`.
    pub rtype: &'static str,
    /// How many records the RRset has.
    pub records: usize,
    pub sigs: Vec<SigCheck>,
}

impl RrsetSigs {
    /// `TYPE owner` for messages.
    pub fn label(&self) -> String {
        format!("{} {}", self.rtype, self.owner)
    }
}

/// A 32-bit RRSIG time placed relative to `now` (Unix seconds): serial-number
/// arithmetic, so a value up to 2^31 s after `now` is in the future and the rest in
/// the past (RFC 4034 §3.1.5, RFC 1982).
pub fn absolute_time(t: u32, now: i64) -> i64 {
    // the low 32 bits of `now`, as an RRSIG field would hold it
    let now32 = now.rem_euclid(1 << 32) as u32;
    now + i64::from(t.wrapping_sub(now32) as i32)
}

/// What a verification depends on besides the zone: owner, RRSIG, the RRset's data in
/// canonical order, and the zone's keys.
type VerifyInput = (Name, RRSIG, Vec<RData>, Vec<DNSKEY>);

/// Verdicts reached for one zone in one round. A zone's servers usually serve the same
/// signed data, and verifying is the costliest step of a round: a signature already
/// judged over the same data with the same keys is not verified again. Lookups compare
/// the whole input, never a digest of it.
#[derive(Debug, Default)]
pub struct Verified(Mutex<HashMap<VerifyInput, Result<(), String>>>);

impl Verified {
    fn get_or_verify(
        &self,
        input: VerifyInput,
        verify: impl FnOnce(&VerifyInput) -> Result<(), String>,
    ) -> Result<(), String> {
        if let Some(r) = self.0.lock().ok().and_then(|m| m.get(&input).cloned()) {
            return r;
        }
        let r = verify(&input);
        if let Ok(mut m) = self.0.lock() {
            m.insert(input, r.clone());
        }
        r
    }
}

/// Checks the RRSIGs over one RRset: those of `rrsigs` that cover `rtype` are each
/// verified against the keys of `keys` with their key tag and algorithm. `records`
/// may hold other owners and types; only `owner`/`rtype` records are signed data.
/// `verified` remembers verdicts across the servers of one zone.
#[allow(clippy::too_many_arguments)]
pub fn check_rrset(
    zone: &Name,
    owner: &Name,
    rtype: RecordType,
    records: &[Record],
    rrsigs: &[RRSIG],
    keys: &[DNSKEY],
    now: i64,
    verified: &Verified,
) -> RrsetSigs {
    let mut set: Vec<&Record> = records.iter().filter(|r| r.record_type() == rtype && &r.name == owner).collect();
    // canonical order (RFC 4034 §6.3), so the same RRset served in another order is the same input
    set.sort();
    let sigs = rrsigs
        .iter()
        .filter(|s| s.input().type_covered == rtype)
        .map(|s| {
            let input = s.input();
            let data = (owner.clone(), s.clone(), set.iter().map(|r| r.data.clone()).collect(), keys.to_vec());
            let problem = verified.get_or_verify(data, |_| verify(zone, owner, s, &set, keys)).err();
            SigCheck {
                key_tag: input.key_tag,
                algorithm: u8::from(input.algorithm),
                inception: absolute_time(input.sig_inception.get(), now),
                expiration: absolute_time(input.sig_expiration.get(), now),
                problem,
            }
        })
        .collect();
    RrsetSigs { owner: owner_text(owner).into(), rtype: rtype.into(), records: set.len(), sigs }
}

/// An owner name as snapshots keep names: lowercase, no trailing dot, the root `.`
/// (the same form as `snapshot::norm`, which this module does not import).
pub fn owner_text(owner: &Name) -> String {
    let n = owner.to_ascii().trim_end_matches('.').to_ascii_lowercase();
    if n.is_empty() { ".".to_string() } else { n }
}

/// One RRSIG against the keys (RFC 4035 §5.3.1: signer is the zone, labels fit the
/// owner, a zone key with the tag and algorithm verifies it).
fn verify(zone: &Name, owner: &Name, sig: &RRSIG, set: &[&Record], keys: &[DNSKEY]) -> Result<(), String> {
    let input = sig.input();
    if &input.signer_name != zone {
        return Err(format!("signer {} is not the zone {}", input.signer_name, zone));
    }
    if usize::from(input.num_labels) > usize::from(owner.num_labels()) {
        return Err(format!("labels field {} exceeds the owner's {}", input.num_labels, owner.num_labels()));
    }
    if set.is_empty() {
        return Err("covers no records".to_string());
    }
    let candidates: Vec<&DNSKEY> = keys
        .iter()
        .filter(|k| k.zone_key() && !k.revoke())
        .filter(|k| k.public_key().algorithm() == input.algorithm)
        .filter(|k| k.calculate_key_tag().ok() == Some(input.key_tag))
        .collect();
    if candidates.is_empty() {
        return Err(format!(
            "no DNSKEY with tag {} and algorithm {} in the zone",
            input.key_tag,
            u8::from(input.algorithm)
        ));
    }
    let mut last = String::new();
    for key in candidates {
        match key.verify_rrsig(owner, DNSClass::IN, sig, set.iter().copied()) {
            Ok(()) => return Ok(()),
            Err(e) => last = e.to_string(),
        }
    }
    Err(format!("does not verify with key {} ({last})", input.key_tag))
}

#[cfg(test)]
pub(crate) mod testkit {
    //! Signs test data at test time with keys made by ring (through hickory's
    //! signing keys), so the verification is tested against real signatures.

    use std::str::FromStr;

    use hickory_proto::dnssec::crypto::{EcdsaSigningKey, Ed25519SigningKey, RsaSigningKey};
    use hickory_proto::dnssec::rdata::sig::SigInput;
    use hickory_proto::dnssec::rdata::{DNSKEY, DS, RRSIG};
    use hickory_proto::dnssec::{Algorithm, DigestType, PublicKey, SigningKey, TBS};
    use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType, SerialNumber};
    use rustls::pki_types::PrivatePkcs1KeyDer;

    /// A 2048-bit RSA key (PKCS#1 DER) made with openssl for these tests only: ring
    /// verifies RSA but cannot generate keys. Read when a test runs, so that the
    /// release build (the Dockerfile's build stage) needs no test fixture.
    const RSA_PKCS1: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/dnssec/rsa2048.pk1");

    pub struct Key {
        pub signer: Box<dyn SigningKey>,
        pub dnskey: DNSKEY,
    }

    impl Key {
        pub fn new(alg: u8, flags: u16) -> Key {
            let signer: Box<dyn SigningKey> = match alg {
                13 => {
                    let der = EcdsaSigningKey::generate_pkcs8(Algorithm::ECDSAP256SHA256).expect("keygen");
                    Box::new(EcdsaSigningKey::from_pkcs8(&der, Algorithm::ECDSAP256SHA256).expect("key"))
                }
                15 => {
                    let der = Ed25519SigningKey::generate_pkcs8().expect("keygen");
                    Box::new(Ed25519SigningKey::from_pkcs8(&der).expect("key"))
                }
                8 => {
                    let der = PrivatePkcs1KeyDer::from(std::fs::read(RSA_PKCS1).expect("the test RSA key"));
                    Box::new(RsaSigningKey::from_pkcs1(&der, Algorithm::RSASHA256).expect("key"))
                }
                other => panic!("no test key for algorithm {other}"),
            };
            let dnskey = DNSKEY::with_flags(flags, signer.to_public_key().expect("public key"));
            Key { signer, dnskey }
        }

        pub fn tag(&self) -> u16 {
            self.dnskey.calculate_key_tag().expect("tag")
        }

        pub fn ds(&self, zone: &Name) -> DS {
            let digest = self.dnskey.to_digest(zone, DigestType::SHA256).expect("digest");
            DS::new(self.tag(), self.dnskey.public_key().algorithm(), DigestType::SHA256, digest.as_ref().to_vec())
        }

        /// An RRSIG over the `rtype` records of `records` at `owner`.
        pub fn sign(
            &self,
            zone: &Name,
            owner: &Name,
            rtype: RecordType,
            records: &[Record],
            inception: u32,
            expiration: u32,
        ) -> RRSIG {
            let input = SigInput {
                type_covered: rtype,
                algorithm: self.dnskey.public_key().algorithm(),
                num_labels: owner.num_labels(),
                original_ttl: 60,
                sig_expiration: SerialNumber::new(expiration),
                sig_inception: SerialNumber::new(inception),
                key_tag: self.tag(),
                signer_name: zone.clone(),
            };
            let tbs = TBS::from_input(owner, DNSClass::IN, &input, records.iter()).expect("tbs");
            let sig = self.signer.sign(&tbs).expect("sign");
            RRSIG::from_sig(input, sig)
        }
    }

    pub fn name(s: &str) -> Name {
        Name::from_str(s).expect("name")
    }

    pub fn record(owner: &str, data: RData) -> Record {
        Record::from_rdata(name(owner), 60, data)
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use hickory_proto::rr::rdata::{A, MX};
    use hickory_proto::rr::{RData, RecordType};

    use super::testkit::{Key, name, record};
    use super::*;

    const NOW: i64 = 1_796_000_000;

    fn mx_set() -> Vec<Record> {
        vec![
            record("signed.test.", RData::MX(MX::new(20, name("mx2.signed.test.")))),
            record("signed.test.", RData::MX(MX::new(10, name("MX.signed.test.")))),
            record("mx.signed.test.", RData::A(A(Ipv4Addr::new(127, 0, 54, 1)))),
        ]
    }

    #[test]
    fn signatures_of_each_algorithm_verify_and_tampering_is_caught() {
        let zone = name("signed.test.");
        for alg in [8u8, 13, 15] {
            let ksk = Key::new(alg, 257);
            let zsk = Key::new(alg, 256);
            let keys = vec![ksk.dnskey.clone(), zsk.dnskey.clone()];
            let set = mx_set();
            let sig = zsk.sign(&zone, &zone, RecordType::MX, &set, (NOW - 3600) as u32, (NOW + 86400) as u32);
            // the records arrive in another order: the canonical order is restored
            let mut reordered = set.clone();
            reordered.reverse();
            let r = check_rrset(
                &zone,
                &zone,
                RecordType::MX,
                &reordered,
                std::slice::from_ref(&sig),
                &keys,
                NOW,
                &Verified::default(),
            );
            assert_eq!(r.records, 2, "alg {alg}");
            assert_eq!(r.sigs.len(), 1);
            assert_eq!(r.sigs[0].problem, None, "alg {alg}");
            assert_eq!(r.sigs[0].key_tag, zsk.tag());
            assert_eq!(r.sigs[0].expiration, NOW + 86400);
            assert_eq!(r.sigs[0].inception, NOW - 3600);

            // altered RDATA after signing
            let mut altered = set.clone();
            altered[0] = record("signed.test.", RData::MX(MX::new(30, name("mx2.signed.test."))));
            let r = check_rrset(
                &zone,
                &zone,
                RecordType::MX,
                &altered,
                std::slice::from_ref(&sig),
                &keys,
                NOW,
                &Verified::default(),
            );
            assert!(r.sigs[0].problem.as_deref().unwrap_or("").contains("does not verify"), "alg {alg}: {r:?}");

            // the signing key is not in the DNSKEY RRset
            let r = check_rrset(
                &zone,
                &zone,
                RecordType::MX,
                &set,
                std::slice::from_ref(&sig),
                &keys[..1],
                NOW,
                &Verified::default(),
            );
            assert!(r.sigs[0].problem.as_deref().unwrap_or("").contains("no DNSKEY with tag"), "{r:?}");

            // another key of the same algorithm (the RSA fixture is one key only)
            if alg != 8 {
                let other = Key::new(alg, 256);
                let r = check_rrset(
                    &zone,
                    &zone,
                    RecordType::MX,
                    &set,
                    std::slice::from_ref(&sig),
                    &[other.dnskey],
                    NOW,
                    &Verified::default(),
                );
                assert!(r.sigs[0].problem.is_some());
            }
            // a corrupted signature
            let mut bytes = sig.sig().to_vec();
            bytes[10] ^= 0x01;
            let bad = RRSIG::from_sig(sig.input().clone(), bytes);
            let r = check_rrset(&zone, &zone, RecordType::MX, &set, &[bad], &keys, NOW, &Verified::default());
            assert!(r.sigs[0].problem.as_deref().unwrap_or("").contains("does not verify"), "alg {alg}: {r:?}");
        }
    }

    #[test]
    fn remembered_verdicts_never_hide_a_difference() {
        let zone = name("signed.test.");
        let zsk = Key::new(13, 256);
        let keys = vec![zsk.dnskey.clone()];
        let set = mx_set();
        let sig = zsk.sign(&zone, &zone, RecordType::MX, &set, 0, u32::MAX);
        let cache = Verified::default();
        let check = |records: &[Record], sigs: &[RRSIG], keys: &[DNSKEY]| {
            check_rrset(&zone, &zone, RecordType::MX, records, sigs, keys, NOW, &cache).sigs[0].problem.is_none()
        };
        // the same data from three servers, in any order: verified once, valid each time
        let mut reversed = set.clone();
        reversed.reverse();
        assert!(check(&set, std::slice::from_ref(&sig), &keys));
        assert!(check(&reversed, std::slice::from_ref(&sig), &keys));
        assert_eq!(cache.0.lock().map(|m| m.len()).unwrap_or(0), 1);
        // another server's altered data, or a corrupted signature, or other keys: judged afresh
        let mut altered = set.clone();
        altered[1] = record("signed.test.", RData::MX(MX::new(11, name("mx.signed.test."))));
        assert!(!check(&altered, std::slice::from_ref(&sig), &keys));
        let mut bytes = sig.sig().to_vec();
        bytes[5] ^= 0x80;
        assert!(!check(&set, &[RRSIG::from_sig(sig.input().clone(), bytes)], &keys));
        assert!(!check(&set, std::slice::from_ref(&sig), &[Key::new(13, 256).dnskey]));
        assert!(check(&set, std::slice::from_ref(&sig), &keys));
    }

    #[test]
    fn signer_and_labels_are_checked() {
        let zone = name("signed.test.");
        let zsk = Key::new(13, 256);
        let set = mx_set();
        let sig = zsk.sign(&name("other.test."), &zone, RecordType::MX, &set, 0, u32::MAX);
        let r = check_rrset(
            &zone,
            &zone,
            RecordType::MX,
            &set,
            &[sig],
            std::slice::from_ref(&zsk.dnskey),
            NOW,
            &Verified::default(),
        );
        assert!(r.sigs[0].problem.as_deref().unwrap_or("").contains("signer"), "{r:?}");
        // RRSIGs over other types are not this RRset's
        let sig = zsk.sign(&zone, &zone, RecordType::MX, &set, 0, u32::MAX);
        let r = check_rrset(&zone, &zone, RecordType::A, &set, &[sig], &[zsk.dnskey], NOW, &Verified::default());
        assert!(r.sigs.is_empty());
        assert_eq!(r.records, 0);
    }

    #[test]
    fn ds_matches_only_the_key_it_was_made_from() {
        let zone = name("signed.test.");
        let ksk = Key::new(13, 257);
        let zsk = Key::new(13, 256);
        let stranger = Key::new(13, 257);
        let keys = vec![ksk.dnskey.clone(), zsk.dnskey.clone()];
        assert_eq!(ds_matches(&zone, &[ksk.ds(&zone)], &keys), BTreeSet::from([ksk.tag()]));
        assert!(ds_matches(&zone, &[stranger.ds(&zone)], &keys).is_empty());
        // the owner name is part of the digest
        assert!(ds_matches(&name("other.test."), &[ksk.ds(&zone)], &keys).is_empty());
        assert!(ds_matches(&zone, &[], &keys).is_empty());
        assert!(ds_matches(&zone, &[ksk.ds(&zone)], &[]).is_empty());
    }

    #[test]
    fn hostile_keys_and_signatures_fail_without_panicking() {
        use hickory_proto::dnssec::{Algorithm, PublicKeyBuf};
        let zone = name("signed.test.");
        let set = mx_set();
        for alg in [8u8, 13, 15, 14, 200] {
            let real = Key::new(if matches!(alg, 8 | 15) { alg } else { 13 }, 256);
            let good = real.sign(&zone, &zone, RecordType::MX, &set, 0, u32::MAX);
            // key material of the wrong length or shape, under the signature's own tag
            for bytes in [vec![], vec![0u8; 3], vec![0xffu8; 600]] {
                let junk = DNSKEY::with_flags(256, PublicKeyBuf::new(bytes, Algorithm::from_u8(alg)));
                let r = check_rrset(
                    &zone,
                    &zone,
                    RecordType::MX,
                    &set,
                    std::slice::from_ref(&good),
                    &[junk],
                    NOW,
                    &Verified::default(),
                );
                assert!(r.sigs[0].problem.is_some(), "alg {alg}");
            }
            // a signature of the wrong length for the key
            for sig in [vec![], vec![1u8; 1], vec![2u8; 4096]] {
                let bad = RRSIG::from_sig(good.input().clone(), sig);
                let r = check_rrset(
                    &zone,
                    &zone,
                    RecordType::MX,
                    &set,
                    &[bad],
                    std::slice::from_ref(&real.dnskey),
                    NOW,
                    &Verified::default(),
                );
                assert!(r.sigs[0].problem.is_some(), "alg {alg}");
            }
        }
        // DS over junk keys matches nothing
        let junk = DNSKEY::with_flags(257, PublicKeyBuf::new(vec![1, 2, 3], Algorithm::ECDSAP256SHA256));
        assert!(ds_matches(&zone, &[Key::new(13, 257).ds(&zone)], &[junk]).is_empty());
    }

    #[test]
    fn rrsig_times_are_serial_numbers_around_now() {
        // plain values near now
        assert_eq!(absolute_time((NOW + 5) as u32, NOW), NOW + 5);
        assert_eq!(absolute_time((NOW - 5) as u32, NOW), NOW - 5);
        // after 2106 the 32-bit field wraps; the window follows now
        let later = (1i64 << 32) + 100;
        assert_eq!(absolute_time(200, later), later + 100);
        assert_eq!(absolute_time(u32::MAX, later), later - 101);
    }
}
