//! The few fields of an X.509 certificate (RFC 5280 §4.1) the STARTTLS checks and
//! DANE need, read from DER without a full parser: the validity period and the
//! SubjectPublicKeyInfo bytes (DANE selector 1, RFC 6698 §2.1.2). Chain and name
//! validation are rustls' job; this only reads.
//!
//! ```text
//! Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signature }
//! TBSCertificate ::= SEQUENCE { [0] version OPTIONAL, serialNumber, signature,
//!     issuer, validity SEQUENCE { notBefore Time, notAfter Time }, subject,
//!     subjectPublicKeyInfo, ... }
//! Time ::= UTCTime (YYMMDDHHMMSSZ) | GeneralizedTime (YYYYMMDDHHMMSSZ)
//! ```

/// One DER element: tag, the whole encoding, the contents.
struct Tlv<'a> {
    tag: u8,
    whole: &'a [u8],
    content: &'a [u8],
}

/// Reads the element at the start of `buf`; returns it and the rest.
fn read(buf: &[u8]) -> Result<(Tlv<'_>, &[u8]), String> {
    let (&tag, rest) = buf.split_first().ok_or("truncated: no tag")?;
    if tag & 0x1f == 0x1f {
        return Err("multi-byte tags are not used in certificates".into());
    }
    let (&first, rest) = rest.split_first().ok_or("truncated: no length")?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return Err(format!("bad length of {n} bytes"));
        }
        let len = rest[..n].iter().fold(0usize, |a, &b| (a << 8) | usize::from(b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return Err(format!("truncated: {len} bytes announced, {} left", rest.len()));
    }
    let header = buf.len() - rest.len();
    Ok((Tlv { tag, whole: &buf[..header + len], content: &rest[..len] }, &rest[len..]))
}

fn expect<'a>(buf: &'a [u8], tag: u8, what: &str) -> Result<(Tlv<'a>, &'a [u8]), String> {
    let (t, rest) = read(buf)?;
    if t.tag != tag {
        return Err(format!("{what}: tag {:#04x}, expected {tag:#04x}", t.tag));
    }
    Ok((t, rest))
}

/// What the checks read from a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// Unix seconds.
    pub not_before: i64,
    pub not_after: i64,
    /// The DER of SubjectPublicKeyInfo.
    pub spki: Vec<u8>,
}

/// Days from 1970-01-01 to the civil date (proleptic Gregorian).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// A UTCTime (tag 0x17) or GeneralizedTime (0x18) in Unix seconds.
fn time(t: &Tlv) -> Result<i64, String> {
    let s = std::str::from_utf8(t.content).map_err(|_| "a time that is not ASCII".to_string())?;
    let digits = s.strip_suffix('Z').ok_or_else(|| format!("time {s:?} is not in UTC (Z)"))?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("time {s:?} has non-digits"));
    }
    let (year, rest) = match (t.tag, digits.len()) {
        (0x17, 12) => {
            let yy: i64 = digits[..2].parse().map_err(|_| "year")?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &digits[2..])
        }
        (0x18, 14) => (digits[..4].parse().map_err(|_| "year")?, &digits[4..]),
        _ => return Err(format!("time {s:?} is not YYMMDDHHMMSSZ nor YYYYMMDDHHMMSSZ")),
    };
    let n = |i: usize| rest[i..i + 2].parse::<i64>().unwrap_or(-1);
    let (mo, d, h, mi, se) = (n(0), n(2), n(4), n(6), n(8));
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return Err(format!("time {s:?} is out of range"));
    }
    Ok(days_from_civil(year, mo, d) * 86400 + h * 3600 + mi * 60 + se)
}

/// Reads the validity and the SubjectPublicKeyInfo of a DER certificate.
pub fn cert_info(der: &[u8]) -> Result<CertInfo, String> {
    let (cert, _) = expect(der, 0x30, "Certificate")?;
    let (tbs, _) = expect(cert.content, 0x30, "TBSCertificate")?;
    let mut rest = tbs.content;
    let (first, after) = read(rest)?;
    if first.tag == 0xa0 {
        rest = after; // [0] version
    }
    for what in ["serialNumber", "signature", "issuer"] {
        let (_, after) = read(rest).map_err(|e| format!("{what}: {e}"))?;
        rest = after;
    }
    let (validity, after) = expect(rest, 0x30, "validity")?;
    let (nb, v_rest) = read(validity.content)?;
    let (na, _) = read(v_rest)?;
    let (_, after) = read(after).map_err(|e| format!("subject: {e}"))?;
    let (spki, _) = expect(after, 0x30, "subjectPublicKeyInfo")?;
    Ok(CertInfo { not_before: time(&nb)?, not_after: time(&na)?, spki: spki.whole.to_vec() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_days() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11017);
        assert_eq!(days_from_civil(2026, 12, 6), 20793);
    }

    #[test]
    fn reads_an_rcgen_certificate() {
        let mut p = rcgen::CertificateParams::new(vec!["mx.example.test".to_string()]).unwrap();
        p.not_before = rcgen::date_time_ymd(2026, 1, 2);
        p.not_after = rcgen::date_time_ymd(2051, 3, 4);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = p.self_signed(&key).unwrap();
        let info = cert_info(cert.der()).unwrap();
        assert_eq!(info.not_before, days_from_civil(2026, 1, 2) * 86400);
        // 2051 and later is GeneralizedTime, before 2050 UTCTime (RFC 5280 §4.1.2.5)
        assert_eq!(info.not_after, days_from_civil(2051, 3, 4) * 86400);
        assert_eq!(info.spki, rcgen::PublicKeyData::subject_public_key_info(&key));
    }

    #[test]
    fn times() {
        let t = |tag: u8, s: &str| time(&Tlv { tag, whole: &[], content: s.as_bytes() });
        assert_eq!(t(0x17, "700101000000Z"), Ok(0));
        assert_eq!(t(0x17, "491231235959Z"), Ok(days_from_civil(2049, 12, 31) * 86400 + 86399));
        assert_eq!(t(0x18, "20260101000000Z"), Ok(days_from_civil(2026, 1, 1) * 86400));
        assert!(t(0x17, "2601010000Z").is_err());
        assert!(t(0x17, "261301000000Z").is_err());
        assert!(t(0x17, "260101000000+0100").is_err());
    }

    #[test]
    fn junk_is_an_error_not_a_panic() {
        for der in [&[][..], &[0x30], &[0x30, 0x84, 0xff, 0xff, 0xff, 0xff], &[0x30, 0x03, 0x30, 0x01], &[0x1f, 0, 0]] {
            assert!(cert_info(der).is_err(), "{der:?}");
        }
    }
}
