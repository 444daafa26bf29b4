//! Gathering for the mail policy checks: everything they need beyond the TXT
//! records each authoritative server was asked for (see [`crate::dns::policy_txt_names`]).
//!
//! - TXT records at policy names a server serves as a CNAME (a DKIM selector
//!   delegated to a mail provider), through the resolvers;
//! - the SPF expansion: the domain's SPF records are walked
//!   ([`records::spf::walk`]) over the answers gathered so far, the answers the
//!   walk still needs are looked up through the resolvers all at once, and again,
//!   one level of includes per pass, until nothing is missing. The walk stops at
//!   the limits and on loops, so the expansion does too; on top of that it is
//!   capped at [`MAX_SPF_QUERIES`] lookups, [`MAX_SPF_PASSES`] passes and a time
//!   budget of [`BUDGET_TIMEOUTS`] query timeouts;
//! - the DMARC record of the organisational domain (RFC 7489 §6.6.3), when the
//!   domain is not its own organisational domain, through the resolvers;
//! - the MTA-STS policy, when a valid `_mta-sts` record exists
//!   ([`super::sts_fetch`]);
//! - with `starttls_probe`, the STARTTLS probe of every MX address
//!   ([`super::starttls`]);
//! - the reverse DNS of every mail host address: PTR, then each PTR name forward;
//! - with `smtp_probe`, one SMTP connection to each apex address that is not an MX
//!   address: read the greeting, send `QUIT`.
//!
//! Every DNS lookup goes through the round's [`Recursive`] resolver (its cache,
//! retries and time budget); the SMTP connection has the query timeout for the
//! greeting and again for `QUIT`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use futures_util::future::join_all;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{RData, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::checks::apex::apex_not_mx;
use super::probe::Prober;
use super::records::{self, spf};
use super::recursive::{Recursive, follow_cnames, lookup_host, txt_string};
use super::snapshot::{
    Lookup, OrgDmarc, ReverseLookup, SmtpOutcome, SmtpProbe, Snapshot, SpfLookups, Starttls, StarttlsOutcome,
    StarttlsProbe, norm, reverse_name,
};
use super::sts_fetch::MailTls;
use crate::config::DomainConfig;

/// Distinct SPF records of the domain expanded (servers may disagree).
const MAX_SPF_RECORDS: usize = 4;
/// Passes of the SPF expansion (one level of includes each).
pub const MAX_SPF_PASSES: usize = 16;
/// Lookups of the SPF expansion.
pub const MAX_SPF_QUERIES: usize = 64;
/// The SPF expansion stops starting new passes after this many query timeouts.
pub const BUDGET_TIMEOUTS: u32 = 6;
/// Mail host addresses whose reverse DNS is checked.
const MAX_MAIL_ADDRESSES: usize = 16;
/// PTR names of one address resolved forward (RFC 7208 §4.6.4 uses the same bound).
const MAX_PTR_NAMES: usize = 10;
/// Apex addresses probed over SMTP.
const MAX_PROBED: usize = 8;
/// The most of a greeting read.
const MAX_GREETING: usize = 4096;

/// How the policy lookups and probes reach out.
pub struct How<'a> {
    /// Every DNS lookup but DANE's goes through the round's resolver.
    pub rec: &'a Recursive,
    /// DANE's TLSA lookup asks the validating resolvers directly, for the AD bit.
    pub prober: &'a Prober,
    /// The resolvers asked for TLSA with DO and AD set.
    pub validating: &'a [SocketAddr],
    /// Port of the opt-in SMTP and STARTTLS probes.
    pub smtp_probe_port: u16,
    /// MTA-STS fetching and the STARTTLS probe.
    pub mail_tls: &'a MailTls,
}

/// Fills `snap.policy`.
pub async fn gather(how: &How<'_>, snap: &mut Snapshot, config: &DomainConfig) {
    let resolvers = how.rec;
    let (prober, validating, settings) = (how.prober, how.validating, how.mail_tls);
    let smtp_probe_port = how.smtp_probe_port;
    let timeout = prober.timeout();
    let deadline = Instant::now() + timeout * BUDGET_TIMEOUTS;

    let cnamed: BTreeSet<String> = snap.up().flat_map(|s| s.txt_cname.keys().cloned()).collect();
    let via = join_all(cnamed.iter().map(|n| async move { (n.clone(), txt_records(resolvers, n).await) })).await;
    snap.policy.via_cname = via.into_iter().collect();

    let mut spf_records: Vec<String> = Vec::new();
    for (_, records) in snap.txt_at(&snap.domain) {
        for r in records.into_iter().filter(|r| spf::is_spf(r)) {
            if !spf_records.contains(&r) && spf_records.len() < MAX_SPF_RECORDS {
                spf_records.push(r);
            }
        }
    }
    let mail: Vec<IpAddr> = snap.mail_addresses().into_iter().take(MAX_MAIL_ADDRESSES).collect();
    let targets: Vec<IpAddr> = if config.smtp_probe && !snap.mx_addresses().is_empty() {
        apex_not_mx(snap).into_iter().take(MAX_PROBED).collect()
    } else {
        Vec::new()
    };
    let port = smtp_probe_port;
    let domain = snap.domain.clone();
    let org = records::dmarc::organizational_domain(&domain);
    let sts_id = super::sts_fetch::record_id(snap);
    let starttls_targets: Vec<(String, IpAddr)> = if config.starttls_probe {
        snap.mx_hosts.iter().flat_map(|(e, h)| h.addresses.iter().map(move |a| (e.clone(), *a))).collect()
    } else {
        Vec::new()
    };
    let (spf, reverse, smtp, dmarc_org, mta_sts, starttls) = tokio::join!(
        spf_lookups(resolvers, &domain, &spf_records, deadline),
        join_all(mail.iter().map(|&a| async move { (a, reverse(resolvers, a).await) })),
        join_all(
            targets
                .iter()
                .map(|&a| async move { (a, SmtpProbe { port, outcome: smtp_probe(a, port, timeout).await }) })
        ),
        async {
            match org {
                Some(o) => Some(OrgDmarc { records: txt_records(resolvers, &format!("_dmarc.{o}")).await, domain: o }),
                None => None,
            }
        },
        super::sts_fetch::policy(resolvers, timeout, settings, &domain, sts_id),
        async {
            if !config.starttls_probe {
                return None;
            }
            let at = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
            let probes = match &settings.tls {
                Ok(tls) => {
                    super::starttls::probe_all(
                        tls.roots.clone(),
                        starttls_targets,
                        port,
                        timeout,
                        settings.smtp_slots.clone(),
                    )
                    .await
                }
                Err(e) => starttls_targets
                    .into_iter()
                    .map(|(exchange, address)| StarttlsProbe {
                        exchange,
                        address,
                        port,
                        outcome: StarttlsOutcome::Failed { step: "TLS client".into(), detail: e.clone() },
                    })
                    .collect(),
            };
            Some(Starttls { at, warning_seconds: settings.certificate_expiry_warning.as_secs(), probes })
        },
    );
    snap.policy.starttls = starttls;
    if config.starttls_probe {
        let exchanges: Vec<String> = snap.mx_hosts.keys().cloned().collect();
        let dane = join_all(
            exchanges.iter().map(|e| async move { (e.clone(), super::dane::lookup(prober, validating, e).await) }),
        )
        .await;
        snap.policy.dane = dane.into_iter().collect();
    }
    snap.policy.mta_sts = mta_sts;
    snap.policy.dmarc_org = dmarc_org;
    snap.policy.spf = spf;
    snap.policy.reverse = reverse.into_iter().collect();
    snap.policy.smtp = config.smtp_probe.then(|| smtp.into_iter().collect());
}

/// Records of type `rtype` at `name` through the resolvers, CNAMEs followed.
async fn records<T>(
    resolvers: &Recursive,
    name: &str,
    rtype: RecordType,
    pick: impl Fn(&RData) -> Option<T>,
) -> Lookup<Vec<T>> {
    let resp = match resolvers.query(name, rtype).await {
        Ok(r) => r,
        Err(e) => return Lookup::Failed(e),
    };
    let target = match follow_cnames(name, &resp.answers) {
        Ok((_, t)) => t,
        Err(e) => return Lookup::Failed(e),
    };
    let found: Vec<T> =
        resp.answers.iter().filter(|r| norm(&r.name.to_ascii()) == target).filter_map(|r| pick(&r.data)).collect();
    if !found.is_empty() {
        return Lookup::Found(found);
    }
    match resp.rcode {
        ResponseCode::NXDomain => Lookup::Void { nxdomain: true },
        ResponseCode::NoError => Lookup::Void { nxdomain: false },
        other => Lookup::Failed(format!("{name} {rtype}: answered {other:?}")),
    }
}

/// TXT records (each joined, RFC 7208 §3.3) through the resolvers.
pub async fn txt_records(resolvers: &Recursive, name: &str) -> Lookup<Vec<String>> {
    records(resolvers, name, RecordType::TXT, |d| match d {
        RData::TXT(t) => Some(txt_string(&t.txt_data)),
        _ => None,
    })
    .await
}

/// The SPF expansion: passes of walk, then look up what it still needs.
async fn spf_lookups(resolvers: &Recursive, domain: &str, spf_records: &[String], deadline: Instant) -> SpfLookups {
    let parsed: Vec<spf::Record> = spf_records.iter().filter_map(|r| spf::parse(r).ok()).collect();
    let mut data = SpfLookups::default();
    let mut asked = 0usize;
    for _ in 0..MAX_SPF_PASSES {
        let needs: BTreeSet<spf::Need> = parsed.iter().flat_map(|r| spf::walk(domain, r, &data).needs).collect();
        if needs.is_empty() {
            return data;
        }
        if Instant::now() >= deadline {
            data.stopped = Some(format!("the SPF expansion ran out of time after {asked} lookups"));
            return data;
        }
        let room = MAX_SPF_QUERIES.saturating_sub(asked);
        if room == 0 {
            data.stopped = Some(format!("the SPF expansion stopped at its cap of {MAX_SPF_QUERIES} lookups"));
            return data;
        }
        let batch: Vec<spf::Need> = needs.into_iter().take(room).collect();
        asked += batch.len();
        let answers = join_all(batch.into_iter().map(|need| async move {
            match need {
                spf::Need::Txt(n) => {
                    let l = txt_records(resolvers, &n).await;
                    (spf::Need::Txt(n), Answer::Txt(l))
                }
                spf::Need::Mx(n) => {
                    let l = records(resolvers, &n, RecordType::MX, |d| match d {
                        RData::MX(m) => Some(norm(&m.exchange.to_ascii())),
                        _ => None,
                    })
                    .await;
                    (spf::Need::Mx(n), Answer::Names(l))
                }
                spf::Need::Addresses(n) => {
                    let h = lookup_host(resolvers, &n).await;
                    let l = if !h.addresses.is_empty() {
                        Lookup::Found(h.addresses.into_iter().collect())
                    } else if let Some(e) = h.error {
                        Lookup::Failed(e)
                    } else {
                        Lookup::Void { nxdomain: h.nxdomain }
                    };
                    (spf::Need::Addresses(n), Answer::Addresses(l))
                }
            }
        }))
        .await;
        for (need, answer) in answers {
            match (need, answer) {
                (spf::Need::Txt(n), Answer::Txt(l)) => {
                    data.txt.insert(n, l);
                }
                (spf::Need::Mx(n), Answer::Names(l)) => {
                    data.mx.insert(n, l);
                }
                (spf::Need::Addresses(n), Answer::Addresses(l)) => {
                    data.addresses.insert(n, l);
                }
                _ => {}
            }
        }
    }
    data.stopped = Some(format!("the SPF expansion stopped after {MAX_SPF_PASSES} levels of includes"));
    data
}

enum Answer {
    Txt(Lookup<Vec<String>>),
    Names(Lookup<Vec<String>>),
    Addresses(Lookup<Vec<IpAddr>>),
}

async fn reverse(resolvers: &Recursive, ip: IpAddr) -> ReverseLookup {
    let ptr = records(resolvers, &reverse_name(ip), RecordType::PTR, |d| match d {
        RData::PTR(p) => Some(norm(&p.0.to_ascii())),
        _ => None,
    })
    .await;
    let mut forward = BTreeMap::new();
    if let Lookup::Found(names) = &ptr {
        let lookups =
            names.iter().take(MAX_PTR_NAMES).map(|n| async move { (n.clone(), lookup_host(resolvers, n).await) });
        forward = join_all(lookups).await.into_iter().collect();
    }
    ReverseLookup { ptr, forward }
}

/// Is `buf` a complete SMTP reply: does it hold a line whose fourth character is
/// not `-` (the last line of a multi-line reply, RFC 5321 §4.2.1)?
fn reply_complete(buf: &[u8]) -> bool {
    buf.split(|b| *b == b'\n').rev().skip(1).any(|line| line.get(3) != Some(&b'-'))
}

/// The first line of a reply, printable, without its line ending.
fn first_line(buf: &[u8]) -> String {
    let line = buf.split(|b| *b == b'\n').next().unwrap_or_default();
    let text: String = String::from_utf8_lossy(line)
        .trim_end_matches('\r')
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    records::clip(&text)
}

/// Connects to `ip:port`, reads the greeting, says `QUIT`.
pub async fn smtp_probe(ip: IpAddr, port: u16, timeout: Duration) -> SmtpOutcome {
    let addr = SocketAddr::new(ip, port);
    let greeting = tokio::time::timeout(timeout, async {
        let mut stream = TcpStream::connect(addr).await?;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 1024];
        loop {
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
            if reply_complete(&buf) || buf.len() >= MAX_GREETING {
                break;
            }
        }
        Ok::<_, std::io::Error>((stream, buf))
    })
    .await;
    let (mut stream, buf) = match greeting {
        Err(_) => return SmtpOutcome::Timeout,
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => return SmtpOutcome::Refused,
        Ok(Err(e)) => return SmtpOutcome::Error { detail: e.to_string() },
        Ok(Ok((_, buf))) if buf.is_empty() => return SmtpOutcome::Closed,
        Ok(Ok(x)) => x,
    };
    // be polite: QUIT and wait for the 221 (or the close), within the timeout
    let _ = tokio::time::timeout(timeout, async {
        stream.write_all(b"QUIT\r\n").await?;
        let mut rest = [0u8; 512];
        stream.read(&mut rest).await
    })
    .await;
    let text = first_line(&buf);
    let code = text.get(..3).filter(|c| c.bytes().all(|b| b.is_ascii_digit())).and_then(|c| c.parse::<u16>().ok());
    match code {
        Some(code) if text.len() == 3 || matches!(text.as_bytes()[3], b' ' | b'-') => {
            SmtpOutcome::Greeting { code, text }
        }
        _ => SmtpOutcome::Error { detail: format!("not an SMTP greeting: {text:?}") },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reverse_names() {
        assert_eq!(reverse_name("127.0.54.11".parse().unwrap()), "11.54.0.127.in-addr.arpa");
        assert_eq!(
            reverse_name("2001:db8::1".parse().unwrap()),
            "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa"
        );
    }

    #[test]
    fn replies() {
        assert!(reply_complete(b"220 mx ESMTP\r\n"));
        assert!(!reply_complete(b"220-mx ESMTP\r\n"));
        assert!(reply_complete(b"220-mx ESMTP\r\n220 ready\r\n"));
        assert!(!reply_complete(b"220 mx ESMTP"));
        assert_eq!(first_line(b"220 mx\x07 ESMTP\r\n221 x"), "220 mx? ESMTP");
    }

    #[tokio::test]
    async fn smtp_probe_outcomes() {
        use tokio::net::TcpListener;
        let t = Duration::from_millis(500);
        // a server that greets, and answers QUIT
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            s.write_all(b"220-first\r\n220 mx.example.test ESMTP\r\n").await.unwrap();
            let mut b = [0u8; 64];
            let n = s.read(&mut b).await.unwrap();
            s.write_all(b"221 bye\r\n").await.unwrap();
            b[..n].to_vec()
        });
        let out = smtp_probe("127.0.0.1".parse().unwrap(), port, t).await;
        assert_eq!(out, SmtpOutcome::Greeting { code: 220, text: "220-first".into() });
        assert_eq!(server.await.unwrap(), b"QUIT\r\n");
        // a closed port: bind, learn the port, close
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let closed = l.local_addr().unwrap().port();
        drop(l);
        assert_eq!(smtp_probe("127.0.0.1".parse().unwrap(), closed, t).await, SmtpOutcome::Refused);
        // a server that accepts and says nothing
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let _silent = tokio::spawn(async move {
            let (s, _) = l.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(5)).await;
            drop(s);
        });
        assert_eq!(smtp_probe("127.0.0.1".parse().unwrap(), port, t).await, SmtpOutcome::Timeout);
        // a server that is not SMTP, and one that closes at once
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let _ = s.write_all(b"* OK IMAP ready\r\n").await;
            let (s, _) = l.accept().await.unwrap();
            drop(s);
        });
        let out = smtp_probe("127.0.0.1".parse().unwrap(), port, t).await;
        assert_eq!(out, SmtpOutcome::Error { detail: "not an SMTP greeting: \"* OK IMAP ready\"".into() });
        assert_eq!(smtp_probe("127.0.0.1".parse().unwrap(), port, t).await, SmtpOutcome::Closed);
    }
}
