//! A snapshot: everything one round asked and was told about one domain, as plain
//! data. The checks are pure functions over it, so they are tested without sockets.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use serde::Serialize;

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
