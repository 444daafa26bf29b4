//! DKIM key records (RFC 6376 §3.6.1), at `<selector>._domainkey.<domain>`.
//!
//! A key is usable when: the tag list parses (§3.2); `v`, if present, is first and
//! `DKIM1`; `k` is a key type verifiers know (`rsa`, RFC 6376; `ed25519`, RFC 8463);
//! `s` allows email; `h`, if present, allows a hash verifiers still accept (SHA-1 is
//! not, RFC 8301 §3.1); and `p` is base64 of a real key: a DER RSA public key of
//! at least 1024 bits (RFC 8301 §3.2) — SubjectPublicKeyInfo, as OpenSSL writes
//! it, or a bare RSAPublicKey — or 32 bytes for Ed25519 (RFC 8463 §4.2). An empty
//! `p=` is a revoked key.

use super::{base64_decode, clip, tag_list};

/// The key types verifiers know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    Rsa,
    Ed25519,
}

/// A usable key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    pub key_type: KeyType,
    /// RSA modulus length in bits (Ed25519: 256).
    pub bits: usize,
    /// `t=y`: the domain is testing DKIM.
    pub testing: bool,
    /// `p` without white space, to compare keys across servers.
    pub public: String,
}

impl Key {
    pub fn describe(&self) -> String {
        let kind = match self.key_type {
            KeyType::Rsa => format!("{}-bit RSA key", self.bits),
            KeyType::Ed25519 => "Ed25519 key".to_string(),
        };
        if self.testing { format!("{kind} (t=y: testing)") } else { kind }
    }
}

/// A key record: a key, or a revoked one (`p=` empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DkimKey {
    Valid(Key),
    Revoked,
}

/// Parses a key record; the error says what makes it unusable.
pub fn parse(txt: &str) -> Result<DkimKey, String> {
    let tags = tag_list(txt)?;
    let get = |name: &str| tags.iter().find(|t| t.name == name).map(|t| t.value.as_str());
    if let Some(pos) = tags.iter().position(|t| t.name == "v") {
        if pos != 0 {
            return Err("v= must be the first tag (RFC 6376 §3.6.1)".to_string());
        }
        if tags[0].value != "DKIM1" {
            return Err(format!("v={} is not DKIM1: verifiers discard the record", clip(&tags[0].value)));
        }
    }
    let key_type = match get("k") {
        None | Some("rsa") => KeyType::Rsa,
        Some("ed25519") => KeyType::Ed25519,
        Some(k) => return Err(format!("k={} is not a key type verifiers know (rsa, ed25519)", clip(k))),
    };
    if let Some(s) = get("s") {
        let services: Vec<&str> = s.split(':').map(str::trim).collect();
        if !services.iter().any(|x| *x == "*" || *x == "email") {
            return Err(format!("s={} does not include email or *: the key is not for mail", clip(s)));
        }
    }
    if let Some(h) = get("h") {
        let hashes: Vec<&str> = h.split(':').map(str::trim).collect();
        if !hashes.contains(&"sha256") {
            return Err(format!(
                "h={} does not allow sha256; verifiers no longer accept SHA-1 (RFC 8301 §3.1)",
                clip(h)
            ));
        }
    }
    let Some(p) = get("p") else {
        return Err("p= is missing (required, RFC 6376 §3.6.1)".to_string());
    };
    let public: String = p.chars().filter(|c| !c.is_whitespace()).collect();
    if public.is_empty() {
        return Ok(DkimKey::Revoked);
    }
    let der = base64_decode(&public).map_err(|e| format!("p= is not base64: {e}"))?;
    let bits = match key_type {
        KeyType::Rsa => {
            let bits = rsa_bits(&der)
                .ok_or_else(|| format!("p= decodes to {} bytes that are not a DER RSA public key", der.len()))?;
            if bits < 1024 {
                return Err(format!("the RSA key has {bits} bits; verifiers need at least 1024 (RFC 8301 §3.2)"));
            }
            bits
        }
        KeyType::Ed25519 => {
            if der.len() != 32 {
                return Err(format!("p= decodes to {} bytes; an Ed25519 key is 32 (RFC 8463 §4.2)", der.len()));
            }
            256
        }
    };
    let testing = get("t").is_some_and(|t| t.split(':').any(|f| f.trim() == "y"));
    Ok(DkimKey::Valid(Key { key_type, bits, testing, public }))
}

/// One DER element: tag, content, and what follows it.
fn der(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *input.first()?;
    let first = *input.get(1)?;
    let (len, header) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for b in input.get(2..2 + n)? {
            len = (len << 8) | usize::from(*b);
        }
        (len, 2 + n)
    };
    let content = input.get(header..header.checked_add(len)?)?;
    Some((tag, content, &input[header + len..]))
}

/// The modulus length of an RSAPublicKey: SEQUENCE { INTEGER n, INTEGER e }.
fn rsa_public_key_bits(input: &[u8]) -> Option<usize> {
    let (0x30, body, _) = der(input)? else { return None };
    let (0x02, n, rest) = der(body)? else { return None };
    let (0x02, e, _) = der(rest)? else { return None };
    if e.is_empty() {
        return None;
    }
    let n: &[u8] = {
        let start = n.iter().position(|b| *b != 0)?;
        &n[start..]
    };
    Some(n.len() * 8 - n[0].leading_zeros() as usize)
}

/// The OID of rsaEncryption, 1.2.840.113549.1.1.1.
const RSA_ENCRYPTION: [u8; 9] = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];

/// The modulus length of a DER RSA key: SubjectPublicKeyInfo with rsaEncryption
/// (what `openssl rsa -pubout` writes), or a bare RSAPublicKey.
fn rsa_bits(input: &[u8]) -> Option<usize> {
    let (0x30, body, _) = der(input)? else { return None };
    if let Some((0x30, algorithm, rest)) = der(body) {
        let (0x06, oid, _) = der(algorithm)? else { return None };
        if oid != RSA_ENCRYPTION {
            return None;
        }
        let (0x03, bit_string, _) = der(rest)? else { return None };
        let (0, key) = bit_string.split_first()? else { return None };
        return rsa_public_key_bits(key);
    }
    rsa_public_key_bits(input)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The key of RFC 6376 appendix C (1024 bits, SubjectPublicKeyInfo).
    const RFC6376_KEY: &str = "MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDwIRP/UC3SBsEmGqZ9ZJW3/DkMoGeLnQg1fWn7/zYtIxN2SnFCjxOCKG9v3b4jYfcTNh5ijSsq631uBItLa7od+v/RtdC2UzJ1lWT947qR+Rcac2gbto/NMqJ0fzfVjH4OuKhitdY9tf6mcwGjaNBcWToIMmPSPDdQPNUYckcQ2QIDAQAB";

    /// The 2048-bit key of the lab's fixed.test, as its two TXT strings join.
    const LAB_KEY: &str = "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAp+oiUz/rYpLnD/XnKQh3H5oKOPwij0eVfSy5kWKw0cmbSn29Ft18gOoYW86aWEHsg+A9V9k+9WiG6MYypJh9tuYXrSmJ+C5R0117iyiQ7Xt7GXiyrBymL2l930xeyoi4OGrdHxvyfLL/w2CyPv6WwaMcoQkIT0YnrABc99IA24ipHCbnMxeHuIzOUWztTG7mt5FJdTx905EKzMMzwpA5vf3tfj6w/q3Fs7ZYAKQOiW/SQ4tsqZKSrUJu+9TNzByuoFRhO6x6eyJHSDRkuITJcrZWSVDz+ISsaTX503guPUdnewgTkvpuNYvwFYUa9smYKyxC4vdfuVgtxrBbJ2siywIDAQAB";

    fn key(txt: &str) -> Key {
        match parse(txt) {
            Ok(DkimKey::Valid(k)) => k,
            other => panic!("{txt}: {other:?}"),
        }
    }

    #[test]
    fn rfc_examples() {
        let k = key(&format!("v=DKIM1; p={RFC6376_KEY}"));
        assert_eq!((k.key_type, k.bits), (KeyType::Rsa, 1024));
        // RFC 8463 appendix A.2
        let k = key("v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=");
        assert_eq!((k.key_type, k.bits), (KeyType::Ed25519, 256));
        let k = key(&format!("v=DKIM1; k=rsa; p={LAB_KEY}"));
        assert_eq!(k.describe(), "2048-bit RSA key");
        // v is optional; FWS inside p; flags and services
        let split = format!("k=rsa; t=y:s; s=email; h=sha256; p={} {}", &LAB_KEY[..100], &LAB_KEY[100..]);
        assert_eq!(key(&split).describe(), "2048-bit RSA key (t=y: testing)");
        assert_eq!(parse("v=DKIM1; p="), Ok(DkimKey::Revoked));
    }

    fn err(txt: &str) -> String {
        parse(txt).unwrap_err()
    }

    #[test]
    fn unusable() {
        assert_eq!(
            err("v=DKIM1; k=rsa; p=@@not-base64@@"),
            "p= is not base64: '@' at position 0 is not a base64 character"
        );
        assert_eq!(err("v=DKIM1; k=rsa"), "p= is missing (required, RFC 6376 §3.6.1)");
        assert_eq!(err("k=rsa; v=DKIM1; p=x"), "v= must be the first tag (RFC 6376 §3.6.1)");
        assert_eq!(err("v=DKIM2; p=x"), "v=DKIM2 is not DKIM1: verifiers discard the record");
        assert_eq!(err("v=DKIM1; k=dsa; p=x"), "k=dsa is not a key type verifiers know (rsa, ed25519)");
        assert_eq!(err("v=DKIM1; s=web; p=x"), "s=web does not include email or *: the key is not for mail");
        assert_eq!(
            err(&format!("v=DKIM1; h=sha1; p={LAB_KEY}")),
            "h=sha1 does not allow sha256; verifiers no longer accept SHA-1 (RFC 8301 §3.1)"
        );
        assert_eq!(err("v=DKIM1; p=TWFu"), "p= decodes to 3 bytes that are not a DER RSA public key");
        assert_eq!(err("v=DKIM1; k=ed25519; p=TWFu"), "p= decodes to 3 bytes; an Ed25519 key is 32 (RFC 8463 §4.2)");
        assert_eq!(err("v=DKIM1; p=a; p=b"), "tag p appears more than once");
        // a 512-bit RSAPublicKey: SEQUENCE { INTEGER (64 bytes, top bit set), INTEGER 65537 }
        let mut der = vec![0x30, 0x48, 0x02, 0x41, 0x00, 0xc0];
        der.extend(std::iter::repeat_n(0x11, 63));
        der.extend([0x02, 0x03, 0x01, 0x00, 0x01]);
        let b64 = encode(&der);
        assert_eq!(err(&format!("p={b64}")), "the RSA key has 512 bits; verifiers need at least 1024 (RFC 8301 §3.2)");
    }

    /// Base64 for building keys in tests.
    fn encode(bytes: &[u8]) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    #[test]
    fn der_is_bounded() {
        assert_eq!(rsa_bits(&[]), None);
        assert_eq!(rsa_bits(&[0x30]), None);
        assert_eq!(rsa_bits(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]), None);
        assert_eq!(rsa_bits(&[0x30, 0x80]), None);
        assert_eq!(rsa_bits(&[0x30, 0x02, 0x02, 0x00]), None);
    }
}
