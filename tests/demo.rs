//! The README's demo (examples/demo.sh) shows both halves: the sample logs'
//! misroutes and the lab's DNS findings on one status page, tied together for
//! incident.test. Runs what demo.sh runs: lab/dns, then the binary on
//! examples/demo.toml with the lab's resolver and port.

mod common;

use std::time::Duration;

use common::Exporter;

#[test]
fn demo_shows_dns_findings_beside_misroutes() {
    let (resolver, port) = common::dns_lab();
    let root = env!("CARGO_MANIFEST_DIR");
    let text = std::fs::read_to_string(format!("{root}/examples/demo.toml")).expect("examples/demo.toml");
    let script = std::fs::read_to_string(format!("{root}/examples/demo.sh")).expect("examples/demo.sh");
    assert!(script.contains("lab/dns/lab.sh start") && script.contains("examples/demo.toml"), "{script}");
    // the two lines demo.sh rewrites
    let config: String = text
        .lines()
        .map(|l| {
            if l.starts_with("resolvers = ") {
                format!("resolvers = [\"{resolver}\"]")
            } else if l.starts_with("port = ") {
                format!("port = {port}")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("demo.toml");
    // paths in the demo are relative to the repository, as demo.sh runs from there
    let config =
        config.replace("\"tests/", &format!("\"{root}/tests/")).replace("\"examples/", &format!("\"{root}/examples/"));
    std::fs::write(&cfg, config).expect("write");
    let ex = Exporter::start(&["serve", &format!("--config.file={}", cfg.display())]);
    ex.wait_for(|t| t.contains("mailroute_dns_round_success{domain=\"incident.test\"} 1"), Duration::from_secs(30));
    let page = ex.get("/");
    assert_eq!(page.status, 200);
    let html = page.text();
    for fact in [
        "<h3>incident.test</h3>",
        "Diagnosis:",
        "rigor-mortis rejected 2 message(s) for incident.test as relay denied",
        "apex_mx_mismatch",
        "<h3>drift.test</h3>",
        "soa_serial_mismatch",
        "<td>broken.test</td>",
        "Recent misroutes",
    ] {
        assert!(html.contains(fact), "the demo page lacks {fact:?}:\n{html}");
    }
}
