//! A snapshot: everything one round asked and was told about one domain, as plain
//! data. The checks are pure functions over it, so they are tested without sockets.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use serde::Serialize;

use super::dnssec::{DsInfo, KeyInfo, RrsetSigs};

/// An SOA record's fields (RFC 1035 §3.3.13).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Soa {
    pub mname: String,
    pub rname: String,
    pub serial: u32,
    pub refresh: i64,
    pub retry: i64,
    pub expire: i64,
    pub minimum: u32,
}

/// One MX record. A null MX (RFC 7505) has exchange `.`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Mx {
    pub preference: u16,
    pub exchange: String,
}

impl Mx {
    pub fn is_null(&self) -> bool {
        self.exchange == "."
    }
}

/// How a server answered the SOA query for the zone: the server's standing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Standing {
    /// NOERROR with AA and the zone's SOA.
    Authoritative,
    /// It answered, but not as an authority: REFUSED, SERVFAIL, no AA, or no SOA (lame).
    Lame { rcode: String, authoritative: bool, detail: String },
    /// No answer over UDP or TCP.
    Unreachable { error: String },
}

/// What one authoritative server said, asked directly with RD=0.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Server {
    /// The NS name this address belongs to.
    pub name: String,
    pub address: IpAddr,
    pub standing: Standing,
    /// Round-trip time of the SOA query, when answered.
    pub rtt_seconds: Option<f64>,
    pub soa: Option<Soa>,
    /// The zone's NS RRset as this server serves it (`None`: that query failed).
    pub ns: Option<BTreeSet<String>>,
    /// The domain's MX RRset (empty: NODATA or NXDOMAIN).
    pub mx: Option<BTreeSet<Mx>>,
    /// The domain's A and AAAA records.
    pub apex: Option<BTreeSet<IpAddr>>,
    /// TXT records at names the policy checks read (the domain, `_dmarc.…`, …),
    /// each record's strings joined; name → records. Filled by the policy probes.
    pub txt: BTreeMap<String, Option<Vec<String>>>,
    /// Policy names this server answers with a CNAME (name → target): the records
    /// are then those of the target, read through the resolvers
    /// ([`Policy::via_cname`]). DKIM selectors delegated to a mail provider look
    /// like this.
    pub txt_cname: BTreeMap<String, String>,
    /// Queries of the round other than SOA that this server failed, question →
    /// why (no answer, an rcode other than NOERROR/NXDOMAIN, no AA). Its answers to
    /// those are left out of the comparisons.
    pub query_failures: BTreeMap<String, String>,
}

impl Server {
    pub fn is_up(&self) -> bool {
        self.standing == Standing::Authoritative
    }

    /// `name (address)` for messages.
    pub fn label(&self) -> String {
        format!("{} ({})", self.name, self.address)
    }
}

/// What the parent zone says about the delegation (a referral, RD=0).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Referral {
    /// The parent server that answered.
    pub from: String,
    pub ns: BTreeSet<String>,
    /// NS name → glue addresses from the additional section.
    pub glue: BTreeMap<String, BTreeSet<IpAddr>>,
}

/// An NS name and where its addresses came from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NsName {
    pub in_parent: bool,
    pub in_zone: bool,
    pub glue: BTreeSet<IpAddr>,
    /// Addresses from the resolvers (the zone's own data for in-zone names).
    pub resolved: BTreeSet<IpAddr>,
    /// Why resolving the name failed, when it did.
    pub error: Option<String>,
    /// The resolvers say the name has no address at all (NXDOMAIN, or no A and no
    /// AAAA record): not a failed lookup but a fact.
    pub absent: bool,
}

/// A host name resolved the way a sender would: through the resolvers, CNAMEs
/// followed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HostLookup {
    pub addresses: BTreeSet<IpAddr>,
    /// The CNAME chain followed from the name, if any.
    pub cnames: Vec<String>,
    /// The name does not exist.
    pub nxdomain: bool,
    /// The lookup itself failed (timeout, SERVFAIL, CNAME loop).
    pub error: Option<String>,
}

/// Everything one round learnt about one domain.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Snapshot {
    pub domain: String,
    /// The zone that holds the domain (the domain itself, or an ancestor).
    pub zone: Option<String>,
    pub parent_zone: Option<String>,
    /// The parent zone's name servers (names), as the resolvers see them.
    pub parent_servers: Vec<String>,
    pub referral: Option<Referral>,
    /// The zone's NS RRset as the resolvers answer it.
    pub zone_ns_resolved: BTreeSet<String>,
    pub ns_names: BTreeMap<String, NsName>,
    pub servers: Vec<Server>,
    /// MX exchanges (non-null) → how they resolve.
    pub mx_hosts: BTreeMap<String, HostLookup>,
    /// Problems met while discovering, in words.
    pub notes: Vec<String>,
    /// The resolvers say the domain does not exist; discovery stopped there.
    pub nxdomain: bool,
    /// Why the round could not judge the domain (no delegation found by the
    /// resolvers nor at the parent's servers, or the round's deadline cut it).
    pub failure: Option<String>,
    /// The delegation was found at the parent's servers directly because the
    /// resolvers failed; what they said.
    pub resolver_failure: Option<String>,
    /// What the mail policy checks need beyond the servers' TXT answers.
    pub policy: Policy,
    /// DS, DNSKEY and RRSIGs; `None` when the round did not get that far.
    pub dnssec: Option<Dnssec>,
}

impl Snapshot {
    /// The servers that answered the SOA query authoritatively.
    pub fn up(&self) -> impl Iterator<Item = &Server> {
        self.servers.iter().filter(|s| s.is_up())
    }

    /// The zone's NS set: what the authoritative servers serve (union), else what the
    /// resolvers said.
    pub fn zone_ns(&self) -> BTreeSet<String> {
        let mut set = BTreeSet::new();
        for s in self.up() {
            if let Some(ns) = &s.ns {
                set.extend(ns.iter().cloned());
            }
        }
        if set.is_empty() { self.zone_ns_resolved.clone() } else { set }
    }

    /// The MX records served, union over the servers that are up.
    pub fn mx_union(&self) -> BTreeSet<Mx> {
        self.up().filter_map(|s| s.mx.as_ref()).flatten().cloned().collect()
    }

    /// The apex A/AAAA addresses served, union over the servers that are up.
    pub fn apex_union(&self) -> BTreeSet<IpAddr> {
        self.up().filter_map(|s| s.apex.as_ref()).flatten().copied().collect()
    }

    /// Every address of the non-null MX exchanges.
    pub fn mx_addresses(&self) -> BTreeSet<IpAddr> {
        self.mx_hosts.values().flat_map(|h| h.addresses.iter().copied()).collect()
    }

    /// The addresses mail for the domain is delivered to: the MX exchanges'
    /// addresses, or, when the domain has no MX at all, the apex addresses (the
    /// implicit MX of RFC 5321 §5.1). Empty for a null MX.
    pub fn mail_addresses(&self) -> BTreeSet<IpAddr> {
        if self.mx_union().is_empty() { self.apex_union() } else { self.mx_addresses() }
    }

    /// The TXT records at `name` (absolute) as each server that is up serves them:
    /// its own records, or those reached through the CNAME it serves. Servers whose
    /// answer is unknown are left out.
    pub fn txt_at(&self, name: &str) -> Vec<(&Server, Vec<String>)> {
        self.up()
            .filter_map(|x| {
                if x.txt_cname.contains_key(name) {
                    match self.policy.via_cname.get(name) {
                        Some(Lookup::Found(records)) => Some((x, records.clone())),
                        Some(Lookup::Void { .. }) => Some((x, Vec::new())),
                        Some(Lookup::Failed(_)) | None => None,
                    }
                } else {
                    x.txt.get(name).and_then(|r| r.clone()).map(|r| (x, r))
                }
            })
            .collect()
    }
}

/// One lookup through the resolvers for the policy checks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", content = "data", rename_all = "snake_case")]
pub enum Lookup<T> {
    /// Records of the type asked, CNAMEs followed.
    Found(T),
    /// NXDOMAIN, or NOERROR without a record of the type: what RFC 7208 §4.6.4
    /// calls a void lookup.
    Void { nxdomain: bool },
    /// No usable answer (timeout, SERVFAIL, a CNAME loop, …).
    Failed(String),
}

/// How a void lookup is described in messages.
pub fn void_text(nxdomain: bool) -> &'static str {
    if nxdomain { "NXDOMAIN" } else { "no records" }
}

/// The answers an SPF policy's expansion needed: `include` and `redirect` targets'
/// TXT records, `a` and `exists` targets' addresses, `mx` targets' exchanges. The
/// checks replay the expansion over these ([`crate::dns::records::spf::walk`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SpfLookups {
    pub txt: BTreeMap<String, Lookup<Vec<String>>>,
    pub addresses: BTreeMap<String, Lookup<Vec<IpAddr>>>,
    pub mx: BTreeMap<String, Lookup<Vec<String>>>,
    /// Why gathering stopped before every answer was in (time or query budget).
    pub stopped: Option<String>,
}

/// The reverse DNS of one mail host address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReverseLookup {
    /// The PTR names.
    pub ptr: Lookup<Vec<String>>,
    /// Each PTR name (the first ten) and its addresses.
    pub forward: BTreeMap<String, HostLookup>,
}

/// What an SMTP connection to an apex address saw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum SmtpOutcome {
    /// The server greeted: the reply code and the first line.
    Greeting {
        code: u16,
        text: String,
    },
    Refused,
    Timeout,
    /// Connected, then closed before a greeting.
    Closed,
    /// Something else (unreachable network, a line that is not an SMTP reply, …).
    Error {
        detail: String,
    },
}

/// One SMTP probe of one apex address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SmtpProbe {
    pub port: u16,
    pub outcome: SmtpOutcome,
}

/// What the mail policy checks need beyond the servers' own TXT answers; gathered
/// by [`crate::dns::policy`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Policy {
    pub spf: SpfLookups,
    /// TXT records at policy names that a server serves as a CNAME, read through
    /// the resolvers with the CNAMEs followed.
    pub via_cname: BTreeMap<String, Lookup<Vec<String>>>,
    /// Reverse DNS of each mail host address.
    pub reverse: BTreeMap<IpAddr, ReverseLookup>,
    /// SMTP probes of the apex addresses that are not MX addresses; `None` when
    /// the domain's `smtp_probe` is off.
    pub smtp: Option<BTreeMap<IpAddr, SmtpProbe>>,
    /// The organisational domain's DMARC records (RFC 7489 §6.6.3), read through
    /// the resolvers; `None` when the domain is its own organisational domain.
    pub dmarc_org: Option<OrgDmarc>,
    /// The MTA-STS policy fetch (RFC 8461 §3.3); `None` when the domain has no
    /// valid `_mta-sts` record.
    pub mta_sts: Option<MtaStsFetch>,
    /// The STARTTLS probes of the MX addresses; `None` when `starttls_probe` is off.
    pub starttls: Option<Starttls>,
    /// TLSA records at `_25._tcp.<exchange>` per MX exchange (with
    /// `starttls_probe`), asked with DO.
    pub dane: BTreeMap<String, DaneLookup>,
}

/// The TLSA lookup for one MX exchange.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DaneLookup {
    pub name: String,
    pub tlsa: Lookup<Vec<crate::dns::dane::Tlsa>>,
    /// The resolver set AD: the answer validated (the zone is signed and its chain
    /// of trust holds). Only then are the records trusted (RFC 7672 §2.2).
    pub validated: bool,
}

/// The STARTTLS probes of one round and what they are judged against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Starttls {
    /// Unix time of the probes.
    pub at: i64,
    /// `certificate_expiry_warning` in seconds.
    pub warning_seconds: u64,
    pub probes: Vec<StarttlsProbe>,
}

/// One STARTTLS probe of one MX address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StarttlsProbe {
    pub exchange: String,
    pub address: IpAddr,
    pub port: u16,
    pub outcome: StarttlsOutcome,
}

/// How a STARTTLS probe ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum StarttlsOutcome {
    /// No TLS session: the step that failed (connect, greeting, EHLO, STARTTLS,
    /// TLS handshake) and how.
    Failed { step: String, detail: String },
    /// A TLS session: the leaf's validity (Unix seconds) and why the chain does
    /// not validate for the MX name (`None`: it does).
    Tls {
        /// The chain as presented, DER, leaf first (for DANE; not in the JSON).
        #[serde(skip)]
        chain: Vec<Vec<u8>>,
        not_before: Option<i64>,
        not_after: Option<i64>,
        invalid: Option<String>,
    },
}

/// One MTA-STS policy fetch: the TXT record's id, the URL, and the body or why
/// there is none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MtaStsFetch {
    pub id: String,
    pub url: String,
    pub result: Result<StsFetched, String>,
}

/// A policy body as served.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StsFetched {
    pub body: String,
    pub content_type: Option<String>,
    /// The address it was fetched from.
    pub address: IpAddr,
    /// Kept from an earlier round (same id, `max_age` not run out).
    pub cached: bool,
}

/// The DMARC records at `_dmarc.<organisational domain>`, the fallback receivers
/// use when the domain has no record of its own (RFC 7489 §6.6.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OrgDmarc {
    /// The organisational domain, found with the Public Suffix List.
    pub domain: String,
    pub records: Lookup<Vec<String>>,
}

/// What a round saw of the zone's DNSSEC: the parent's DS RRset and, per server
/// that answered SOA authoritatively, the DNSKEY RRset and the RRSIGs over the
/// covered RRsets (SOA, NS, DNSKEY at the zone; MX, A, AAAA, TXT at the domain),
/// already verified by [`crate::dns::dnssec`]. Gathered by [`crate::dns::dnssec_round`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Dnssec {
    /// When the signatures were looked at (Unix seconds): the checks judge validity
    /// periods against this time, not the clock.
    pub checked_at: i64,
    /// `dns.dnssec_expiry_warning`, in seconds.
    pub expiry_warning_seconds: u64,
    /// The DS RRset the parent's servers serve for the zone (RD=0).
    pub ds: Lookup<Vec<DsInfo>>,
    pub servers: Vec<ServerDnssec>,
}

impl Dnssec {
    /// The parent has DS records for the zone.
    pub fn has_ds(&self) -> bool {
        matches!(&self.ds, Lookup::Found(d) if !d.is_empty())
    }

    /// The zone is signed: the parent has DS, or some server serves a DNSKEY.
    pub fn signed(&self) -> bool {
        self.has_ds() || self.servers.iter().any(|s| matches!(&s.keys, Ok(k) if !k.is_empty()))
    }
}

/// One server's DNSSEC data (asked with the DO bit, RD=0).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServerDnssec {
    pub name: String,
    pub address: IpAddr,
    /// The DNSKEY RRset it serves (empty: none), or why the query failed.
    pub keys: Result<Vec<KeyInfo>, String>,
    /// Tags of its keys that a DS at the parent matches.
    pub ds_matched: Vec<u16>,
    /// The covered RRsets it serves (non-empty ones) and their RRSIGs.
    pub rrsets: Vec<RrsetSigs>,
    /// Queries for covered RRsets that got no usable answer, in words.
    pub errors: Vec<String>,
}

impl ServerDnssec {
    /// `name (address)` for messages.
    pub fn label(&self) -> String {
        format!("{} ({})", self.name, self.address)
    }

    /// The earliest RRSIG expiration it serves (Unix seconds).
    pub fn earliest_expiration(&self) -> Option<i64> {
        self.rrsets.iter().flat_map(|r| r.sigs.iter().map(|s| s.expiration)).min()
    }
}

/// An MX exchange written as an IP address (`127.0.54.70.` or an IPv6 literal).
pub fn is_address_literal(exchange: &str) -> bool {
    let e = exchange.trim_end_matches('.');
    let e = e.trim_start_matches('[').trim_end_matches(']');
    e.parse::<IpAddr>().is_ok()
}

/// The reverse-DNS name of an address (`…in-addr.arpa` or `…ip6.arpa`).
pub fn reverse_name(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.{}.in-addr.arpa", o[3], o[2], o[1], o[0])
        }
        IpAddr::V6(v6) => {
            let mut s = String::with_capacity(72);
            for b in v6.octets().iter().rev() {
                s.push_str(&format!("{:x}.{:x}.", b & 0x0f, b >> 4));
            }
            s.push_str("ip6.arpa");
            s
        }
    }
}

/// Lowercase, no trailing dot: how names are kept in a snapshot (the root is `.`).
pub fn norm(name: &str) -> String {
    let n = name.trim_end_matches('.').to_ascii_lowercase();
    if n.is_empty() { ".".to_string() } else { n }
}

/// Is `name` at or below `zone`?
pub fn in_zone(name: &str, zone: &str) -> bool {
    zone == "." || name == zone || name.ends_with(&format!(".{zone}"))
}

/// Formats a set for messages: `a, b, c`, or `(none)`.
pub fn list<T: std::fmt::Display>(items: impl IntoIterator<Item = T>) -> String {
    let v: Vec<String> = items.into_iter().map(|i| i.to_string()).collect();
    if v.is_empty() { "(none)".to_string() } else { v.join(", ") }
}
