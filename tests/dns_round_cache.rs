//! Politeness at scale against the DNS lab: within one round, a name shared by many
//! domains (their name servers, the parent zone, an MX host) is asked of the
//! resolvers once, not once per domain.

mod common;

use std::time::Duration;

use mailroute_exporter::config::DomainConfig;
use mailroute_exporter::dns::probe::{Prober, QueryResultLabels};
use mailroute_exporter::dns::state::run_round;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

fn sent(f: &Family<QueryResultLabels, Counter>) -> u64 {
    ["ok", "timeout", "refused", "servfail", "error"]
        .iter()
        .map(|r| f.get_or_create(&QueryResultLabels { result: r }).get())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_lookups_are_made_once_per_round() {
    let (resolver, port) = common::dns_lab();
    // built from a configuration, as serve builds it
    let config = mailroute_exporter::config::Config::parse(
        &format!("[maillog]\npaths = [\"-\"]\n[dns]\nresolvers = [\"{resolver}\"]\nport = {port}\n"),
        "test.toml",
    )
    .expect("config");
    let settings = mailroute_exporter::serve::dns_settings(&config);
    // fixed.test and shop.fixed.test share name servers, parent and MX hosts
    let domains: Vec<DomainConfig> = ["fixed.test", "shop.fixed.test"]
        .iter()
        .map(|d| DomainConfig { name: d.to_string(), ..DomainConfig::default() })
        .collect();
    let deadline = Duration::from_secs(10);
    let mut alone = 0;
    for d in &domains {
        let counters = Family::<QueryResultLabels, Counter>::default();
        let prober = Prober::new(16, Duration::from_secs(1), Some(counters.clone())).with_max_qps(1000);
        let r = run_round(&prober, &settings, std::slice::from_ref(d), deadline).await;
        assert!(r[&d.name].snapshot.is_some(), "{:?}", r[&d.name].error);
        alone += sent(&counters);
    }
    let counters = Family::<QueryResultLabels, Counter>::default();
    let prober = Prober::new(16, Duration::from_secs(1), Some(counters.clone())).with_max_qps(1000);
    let r = run_round(&prober, &settings, &domains, deadline).await;
    assert!(r.values().all(|x| x.snapshot.is_some()), "{r:?}");
    let together = sent(&counters);
    println!("queries: {alone} in two rounds of one domain, {together} in one round of both");
    // the resolver queries for the shared names (NS hosts, MX hosts, the parent zone,
    // PTRs) are made once; the per-server questions about each domain remain
    assert!(together + 8 <= alone, "one round of both: {together}, two rounds: {alone}");
    // the checks see the same answers
    for d in &domains {
        let failing: Vec<&str> = r[&d.name].failing().map(|c| c.check).collect();
        assert!(failing.is_empty(), "{}: {failing:?}", d.name);
    }
}
