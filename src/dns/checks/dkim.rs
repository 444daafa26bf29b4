//! DKIM check (RFC 6376 §3.6): every configured selector has exactly one usable
//! key record at `<selector>._domainkey.<domain>` on every authoritative server,
//! and the servers serve the same key. A revoked key (`p=` empty) counts as
//! missing. A selector served as a CNAME (delegated to a mail provider) is read
//! through the resolvers at the CNAME's target.

use super::served::{labels, served};
use super::{Verdict, verdict};
use crate::config::DomainConfig;
use crate::dns::records::dkim::{DkimKey, Key, parse};
use crate::dns::snapshot::{Server, Snapshot};

/// What one server's answer for one selector amounts to.
fn judge(records: &[String]) -> Result<Key, String> {
    match records {
        [] => Err("no key record".to_string()),
        [one] => match parse(one) {
            Ok(DkimKey::Valid(k)) => Ok(k),
            Ok(DkimKey::Revoked) => Err("the key is revoked (empty p=)".to_string()),
            Err(e) => Err(e),
        },
        many => Err(format!("{} TXT records; a selector must have one (RFC 6376 §3.6.2.2)", many.len())),
    }
}

/// `dkim_key_missing`: a configured selector has no usable key on some server, or
/// the servers serve different keys for it. Evaluated for the selectors some
/// server answered for; not at all without `dkim_selectors`.
pub fn dkim_key_missing(s: &Snapshot, d: &DomainConfig) -> Option<Verdict> {
    let mut problems: Vec<String> = Vec::new();
    let mut fine: Vec<String> = Vec::new();
    let mut evaluated = false;
    for sel in &d.dkim_selectors {
        let name = format!("{}._domainkey.{}", sel.to_ascii_lowercase(), s.domain);
        let Some(answers) = served(s, &name, |_| true) else { continue };
        evaluated = true;
        let via = answers
            .iter()
            .find_map(|x| x.server.txt_cname.get(&name))
            .map_or(String::new(), |t| format!(" (CNAME to {t})"));
        // group servers by what is wrong
        let mut bad: Vec<(String, Vec<&Server>)> = Vec::new();
        let mut keys: Vec<(Key, Vec<&Server>)> = Vec::new();
        for x in &answers {
            match judge(&x.records) {
                Ok(k) => match keys.iter_mut().find(|(key, _)| key.public == k.public) {
                    Some((_, servers)) => servers.push(x.server),
                    None => keys.push((k, vec![x.server])),
                },
                Err(e) => match bad.iter_mut().find(|(why, _)| *why == e) {
                    Some((_, servers)) => servers.push(x.server),
                    None => bad.push((e, vec![x.server])),
                },
            }
        }
        let all = answers.len();
        for (why, servers) in &bad {
            let on = if servers.len() == all { String::new() } else { format!(" on {}", labels(servers)) };
            problems.push(format!("selector {sel} ({name}{via}){on}: {why}"));
        }
        if keys.len() > 1 {
            let parts: Vec<String> = keys
                .iter()
                .map(|(k, servers)| {
                    let start: String = k.public.chars().take(24).collect();
                    format!("{} serve(s) a {} starting {start}…", labels(servers), k.describe())
                })
                .collect();
            problems.push(format!("selector {sel} ({name}{via}): servers disagree on the key: {}", parts.join("; ")));
        } else if let (Some((k, _)), true) = (keys.first(), bad.is_empty()) {
            fine.push(format!("{sel}: {}{via}", k.describe()));
        }
    }
    if !evaluated {
        return None;
    }
    Some(verdict(
        !problems.is_empty(),
        || format!("{}; mail signed with such a selector fails DKIM verification", problems.join("; ")),
        || format!("DKIM keys: {}", fine.join(", ")),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::checks::fixtures::{cfg, good, set_txt};
    use crate::dns::snapshot::Lookup;

    const KEY: &str = "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAp+oiUz/rYpLnD/XnKQh3H5oKOPwij0eVfSy5kWKw0cmbSn29Ft18gOoYW86aWEHsg+A9V9k+9WiG6MYypJh9tuYXrSmJ+C5R0117iyiQ7Xt7GXiyrBymL2l930xeyoi4OGrdHxvyfLL/w2CyPv6WwaMcoQkIT0YnrABc99IA24ipHCbnMxeHuIzOUWztTG7mt5FJdTx905EKzMMzwpA5vf3tfj6w/q3Fs7ZYAKQOiW/SQ4tsqZKSrUJu+9TNzByuoFRhO6x6eyJHSDRkuITJcrZWSVDz+ISsaTX503guPUdnewgTkvpuNYvwFYUa9smYKyxC4vdfuVgtxrBbJ2siywIDAQAB";
    const NAME: &str = "default._domainkey.example.test";

    fn with_selector() -> DomainConfig {
        let mut d = cfg();
        d.dkim_selectors = vec!["default".into()];
        d
    }

    #[test]
    fn good_key_passes() {
        let mut s = good();
        assert!(dkim_key_missing(&s, &cfg()).is_none(), "no selectors configured");
        assert!(dkim_key_missing(&s, &with_selector()).is_none(), "no server answered for the selector");
        set_txt(&mut s, NAME, &[&format!("v=DKIM1; k=rsa; p={KEY}")]);
        let v = dkim_key_missing(&s, &with_selector()).unwrap();
        assert_eq!(v, Verdict::Pass("DKIM keys: default: 2048-bit RSA key".into()));
    }

    #[test]
    fn missing_broken_revoked() {
        let mut s = good();
        set_txt(&mut s, NAME, &["v=DKIM1; k=rsa; p=@@not-base64@@"]);
        let v = dkim_key_missing(&s, &with_selector()).unwrap();
        assert_eq!(
            v.message(),
            "selector default (default._domainkey.example.test): p= is not base64: '@' at position 0 is not a base64 character; mail signed with such a selector fails DKIM verification"
        );
        set_txt(&mut s, NAME, &["v=DKIM1; p="]);
        assert!(dkim_key_missing(&s, &with_selector()).unwrap().message().contains("the key is revoked (empty p=)"));
        set_txt(&mut s, NAME, &[]);
        assert!(
            dkim_key_missing(&s, &with_selector())
                .unwrap()
                .message()
                .contains("default._domainkey.example.test): no key record")
        );
        set_txt(&mut s, NAME, &[&format!("p={KEY}"), &format!("p={KEY}")]);
        assert!(
            dkim_key_missing(&s, &with_selector())
                .unwrap()
                .message()
                .contains("2 TXT records; a selector must have one")
        );
    }

    #[test]
    fn one_server_lacks_the_key() {
        let mut s = good();
        set_txt(&mut s, NAME, &[&format!("v=DKIM1; p={KEY}")]);
        s.servers[1].txt.insert(NAME.into(), Some(vec![]));
        let v = dkim_key_missing(&s, &with_selector()).unwrap();
        assert!(
            v.failed()
                && v.message().starts_with(
                    "selector default (default._domainkey.example.test) on ns2.example.test (192.0.2.2): no key record"
                ),
            "{v:?}"
        );
        // a different valid key on one server
        let other = KEY.replacen("p+oiUz", "p+oiUy", 1);
        s.servers[1].txt.insert(NAME.into(), Some(vec![format!("v=DKIM1; p={other}")]));
        let v = dkim_key_missing(&s, &with_selector()).unwrap();
        assert!(v.failed() && v.message().contains("servers disagree on the key"), "{v:?}");
    }

    #[test]
    fn through_a_cname() {
        let mut s = good();
        for x in &mut s.servers {
            x.txt.insert(NAME.into(), Some(vec![]));
            x.txt_cname.insert(NAME.into(), "s1.dkim.provider.test".into());
        }
        s.policy.via_cname.insert(NAME.into(), Lookup::Found(vec![format!("v=DKIM1; p={KEY}")]));
        let v = dkim_key_missing(&s, &with_selector()).unwrap();
        assert_eq!(v.message(), "DKIM keys: default: 2048-bit RSA key (CNAME to s1.dkim.provider.test)");
    }
}
