//! Reload on `POST /-/reload` and SIGHUP: a changed configuration takes effect,
//! sources and domains that remain keep their counters and results, and a bad file
//! is refused while the running configuration goes on.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{Exporter, append, dns_lab, metric_value};

const WAIT: Duration = Duration::from_secs(10);

fn misroute(domain: &str, n: u32) -> String {
    format!(
        "Nov 27 01:17:3{} rigor-mortis sm-mta[2716{n}]: 6AR1Ha2h02716{n}: ruleset=check_rcpt, arg1=<alice@{domain}>, relay=mail.sender.test [127.0.2.17], reject=550 5.7.1 <alice@{domain}>... Relaying denied. Proper authentication required.\n",
        n % 10
    )
}

fn write_config(path: &Path, body: &str) {
    std::fs::write(path, body).expect("write config");
}

#[test]
fn reload_applies_changes_and_keeps_counters() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = dir.path().join("a.log");
    let b = dir.path().join("b.log");
    std::fs::write(&a, b"").expect("a");
    std::fs::write(&b, b"").expect("b");
    let cfg = dir.path().join("config.toml");
    let (resolver, port) = dns_lab();
    let dns = format!("[dns]\nresolvers = [\"{resolver}\"]\nport = {port}\ntimeout = \"1s\"\ninterval = \"1h\"\n");
    write_config(
        &cfg,
        &format!(
            "[web]\nlisten_address = \"127.0.0.1:0\"\n[maillog]\nstart = \"beginning\"\npaths = [\"{}\"]\nlocal_domains = [\"nmrc.org\"]\n{dns}",
            a.display()
        ),
    );
    let mut ex = Exporter::start(&["serve", &format!("--config.file={}", cfg.display())]);
    let m = |host: &str, dom: &str| [("host", host.to_string()), ("domain", dom.to_string())];
    append(&a, misroute("nmrc.org", 1).as_bytes());
    ex.wait_for(
        |t| {
            metric_value(t, "mailroute_misroutes_total", &[("host", "rigor-mortis"), ("domain", "nmrc.org")])
                == Some(1.0)
        },
        WAIT,
    );

    // add a source, a local domain and a DNS domain
    write_config(
        &cfg,
        &format!(
            "[web]\nlisten_address = \"127.0.0.1:0\"\n[maillog]\nstart = \"beginning\"\npaths = [\"{}\", \"{}\"]\nlocal_domains = [\"nmrc.org\", \"other.org\"]\n{dns}\n[[dns.domain]]\nname = \"incident.test\"\n",
            a.display(),
            b.display()
        ),
    );
    let r = ex.post("/-/reload");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        r.text().contains(&format!("+file:{}", b.display())) && r.text().contains("+domain incident.test"),
        "{}",
        r.text()
    );
    append(&b, misroute("other.org", 2).as_bytes());
    append(&a, misroute("nmrc.org", 3).as_bytes());
    let text = ex.wait_for(
        |t| {
            metric_value(t, "mailroute_misroutes_total", &[("host", "rigor-mortis"), ("domain", "other.org")])
                == Some(1.0)
                && metric_value(t, "mailroute_misroutes_total", &[("host", "rigor-mortis"), ("domain", "nmrc.org")])
                    == Some(2.0)
                && metric_value(
                    t,
                    "mailroute_dns_check_failed",
                    &[("domain", "incident.test"), ("check", "apex_mx_mismatch"), ("severity", "warning")],
                ) == Some(1.0)
        },
        WAIT,
    );
    assert_eq!(metric_value(&text, "mailroute_config_last_reload_successful", &[]), Some(1.0));
    let _ = m;

    // drop source a and the DNS domain, by SIGHUP this time
    write_config(
        &cfg,
        &format!(
            "[web]\nlisten_address = \"127.0.0.1:0\"\n[maillog]\nstart = \"beginning\"\npaths = [\"{}\"]\nlocal_domains = [\"nmrc.org\", \"other.org\"]\n{dns}",
            b.display()
        ),
    );
    ex.signal(libc::SIGHUP);
    ex.wait_for(|t| !t.contains("domain=\"incident.test\""), WAIT);
    append(&a, misroute("nmrc.org", 4).as_bytes());
    append(&b, misroute("nmrc.org", 5).as_bytes());
    let text = ex.wait_for(
        |t| {
            metric_value(t, "mailroute_misroutes_total", &[("host", "rigor-mortis"), ("domain", "nmrc.org")])
                == Some(3.0)
        },
        WAIT,
    );
    // the line written to the dropped source is not read
    std::thread::sleep(Duration::from_millis(500));
    let text2 = ex.scrape();
    assert_eq!(
        metric_value(&text2, "mailroute_misroutes_total", &[("host", "rigor-mortis"), ("domain", "nmrc.org")]),
        Some(3.0)
    );
    assert!(ex.stderr().contains("configuration reloaded"), "{}", ex.stderr());
    let _ = text;

    // a bad file is refused and the running configuration goes on
    write_config(&cfg, "[dns]\ninterval = \"5x\"\n");
    let r = ex.post("/-/reload");
    assert_eq!(r.status, 500);
    assert!(r.text().contains("dns.interval: invalid duration \"5x\""), "{}", r.text());
    append(&b, misroute("other.org", 6).as_bytes());
    let text = ex.wait_for(
        |t| {
            metric_value(t, "mailroute_misroutes_total", &[("host", "rigor-mortis"), ("domain", "other.org")])
                == Some(2.0)
        },
        WAIT,
    );
    assert_eq!(metric_value(&text, "mailroute_config_last_reload_successful", &[]), Some(0.0));
    assert!(ex.stderr().contains("configuration reload failed"), "{}", ex.stderr());
    let status = ex.stop();
    assert!(status.success(), "{status:?}");
}
