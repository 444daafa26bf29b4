//! A healthy snapshot for the checks' unit tests to break one fact at a time.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use crate::config::DomainConfig;
use crate::dns::snapshot::{
    HostLookup, Lookup, Mx, NsName, Policy, Referral, ReverseLookup, Server, Snapshot, Soa, SpfLookups, Standing,
};

pub fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

pub fn cfg() -> DomainConfig {
    DomainConfig {
        name: "example.test".into(),
        dkim_selectors: vec![],
        expected_mx: None,
        smtp_probe: false,
        starttls_probe: false,
    }
}

pub fn soa() -> Soa {
    Soa {
        mname: "ns1.example.test".into(),
        rname: "hostmaster.example.test".into(),
        serial: 2026112701,
        refresh: 14400,
        retry: 3600,
        expire: 1209600,
        minimum: 300,
    }
}

pub fn mx(pref: u16, exchange: &str) -> Mx {
    Mx { preference: pref, exchange: exchange.into() }
}

fn server(name: &str, addr: &str) -> Server {
    Server {
        name: name.into(),
        address: ip(addr),
        standing: Standing::Authoritative,
        rtt_seconds: Some(0.001),
        soa: Some(soa()),
        ns: Some(["ns1.example.test".to_string(), "ns2.example.test".to_string()].into()),
        mx: Some([mx(10, "mx.example.test")].into()),
        apex: Some([ip("192.0.2.10")].into()),
        txt: [
            ("example.test".to_string(), Some(vec!["v=spf1 mx -all".to_string()])),
            (
                "_dmarc.example.test".to_string(),
                Some(vec!["v=DMARC1; p=reject; rua=mailto:dmarc@example.test".to_string()]),
            ),
            ("_mta-sts.example.test".to_string(), Some(vec![])),
            ("_smtp._tls.example.test".to_string(), Some(vec![])),
        ]
        .into(),
        txt_cname: BTreeMap::new(),
        query_failures: BTreeMap::new(),
    }
}

/// The good policy data: `mx` of the SPF record resolves, the MX address has a PTR
/// that resolves back.
pub fn good_policy() -> Policy {
    Policy {
        spf: SpfLookups {
            mx: [("example.test".to_string(), Lookup::Found(vec!["mx.example.test".to_string()]))].into(),
            ..Default::default()
        },
        via_cname: BTreeMap::new(),
        reverse: [(
            ip("192.0.2.10"),
            ReverseLookup {
                ptr: Lookup::Found(vec!["mx.example.test".to_string()]),
                forward: [(
                    "mx.example.test".to_string(),
                    HostLookup { addresses: [ip("192.0.2.10")].into(), ..Default::default() },
                )]
                .into(),
            },
        )]
        .into(),
        smtp: None,
        dmarc_org: None,
        mta_sts: None,
        starttls: None,
        dane: BTreeMap::new(),
    }
}

/// Sets the TXT records every server serves at `name`.
pub fn set_txt(s: &mut Snapshot, name: &str, records: &[&str]) {
    for x in &mut s.servers {
        x.txt.insert(name.to_string(), Some(records.iter().map(|r| r.to_string()).collect()));
    }
}

/// example.test: two servers in sync, MX mx.example.test = the apex address.
pub fn good() -> Snapshot {
    let ns: BTreeSet<String> = ["ns1.example.test".to_string(), "ns2.example.test".to_string()].into();
    let glue: BTreeMap<String, BTreeSet<IpAddr>> = [
        ("ns1.example.test".to_string(), [ip("192.0.2.1")].into()),
        ("ns2.example.test".to_string(), [ip("192.0.2.2")].into()),
    ]
    .into();
    let ns_names = glue
        .iter()
        .map(|(n, a)| {
            (
                n.clone(),
                NsName {
                    in_parent: true,
                    in_zone: true,
                    glue: a.clone(),
                    resolved: a.clone(),
                    error: None,
                    absent: false,
                },
            )
        })
        .collect();
    Snapshot {
        domain: "example.test".into(),
        zone: Some("example.test".into()),
        parent_zone: Some("test".into()),
        parent_servers: vec!["ns.test".into()],
        referral: Some(Referral { from: "ns.test (192.0.2.53)".into(), ns: ns.clone(), glue }),
        zone_ns_resolved: ns,
        ns_names,
        servers: vec![server("ns1.example.test", "192.0.2.1"), server("ns2.example.test", "192.0.2.2")],
        mx_hosts: [(
            "mx.example.test".to_string(),
            HostLookup { addresses: [ip("192.0.2.10")].into(), ..Default::default() },
        )]
        .into(),
        notes: vec![],
        nxdomain: false,
        failure: None,
        resolver_failure: None,
        policy: good_policy(),
        dnssec: None,
    }
}
