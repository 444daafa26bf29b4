//! What each authoritative server serves at a policy name, for the policy checks:
//! the records of one kind per server, the distinct records and who serves them,
//! and whether the servers agree.

use std::collections::BTreeMap;

use crate::dns::records::clip;
use crate::dns::snapshot::{Server, Snapshot};

/// The records of one kind that one server serves at a name.
#[derive(Debug, Clone)]
pub struct Served<'a> {
    pub server: &'a Server,
    pub records: Vec<String>,
}

/// The records at `name` that `keep` accepts, per server that is up and answered;
/// `None` when no server answered (the check cannot be evaluated).
pub fn served<'a>(s: &'a Snapshot, name: &str, keep: impl Fn(&str) -> bool) -> Option<Vec<Served<'a>>> {
    let out: Vec<Served> = s
        .txt_at(name)
        .into_iter()
        .map(|(server, records)| Served { server, records: records.into_iter().filter(|r| keep(r)).collect() })
        .collect();
    (!out.is_empty()).then_some(out)
}

/// Any server serves at least one record.
pub fn present(served: &[Served]) -> bool {
    served.iter().any(|x| !x.records.is_empty())
}

/// `"a", "b"` for messages; `nothing` for none.
pub fn quoted(records: &[String]) -> String {
    if records.is_empty() {
        "nothing".to_string()
    } else {
        records.iter().map(|r| format!("{:?}", clip(r))).collect::<Vec<_>>().join(", ")
    }
}

/// Server labels joined with "and".
pub fn labels(servers: &[&Server]) -> String {
    let l: Vec<String> = servers.iter().map(|s| s.label()).collect();
    match l.as_slice() {
        [] => "no server".to_string(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// Each distinct record and the servers that serve it, in first-seen order.
pub fn distinct<'a>(served: &[Served<'a>]) -> Vec<(String, Vec<&'a Server>)> {
    let mut out: Vec<(String, Vec<&Server>)> = Vec::new();
    for x in served {
        for r in &x.records {
            match out.iter_mut().find(|(rec, _)| rec == r) {
                Some((_, servers)) => {
                    if !servers.iter().any(|s| std::ptr::eq(*s, x.server)) {
                        servers.push(x.server);
                    }
                }
                None => out.push((r.clone(), vec![x.server])),
            }
        }
    }
    out
}

/// The servers grouped by the set of records they serve (sorted, in the order of
/// the sets).
pub fn groups<'a>(served: &[Served<'a>]) -> BTreeMap<Vec<String>, Vec<&'a Server>> {
    let mut groups: BTreeMap<Vec<String>, Vec<&Server>> = BTreeMap::new();
    for x in served {
        let mut set = x.records.clone();
        set.sort();
        set.dedup();
        groups.entry(set).or_default().push(x.server);
    }
    groups
}

/// "serves" or "serve", for a list of servers.
pub fn serve(servers: &[&Server]) -> &'static str {
    if servers.len() == 1 { "serves" } else { "serve" }
}

/// Servers that serve more than one of the records, grouped: `a and b serve 2
/// <what> records at <name>: "x", "y"`.
pub fn multiple(served: &[Served], what: &str, name: &str) -> Vec<String> {
    groups(served)
        .into_iter()
        .filter(|(records, _)| records.len() > 1)
        .map(|(records, servers)| {
            format!(
                "{} {} {} {what} records at {name}: {}",
                labels(&servers),
                serve(&servers),
                records.len(),
                quoted(&records)
            )
        })
        .collect()
}

/// When the servers do not all serve the same set of records: a sentence naming
/// each group of servers and what it serves, and the servers left out and why.
pub fn disagreement(s: &Snapshot, served: &[Served], what: &str, name: &str) -> Option<String> {
    let groups = groups(served);
    if groups.len() < 2 {
        return None;
    }
    let parts: Vec<String> = groups
        .iter()
        .map(|(records, servers)| format!("{} {} {}", labels(servers), serve(servers), quoted(records)))
        .collect();
    let out = super::left_out(s, &format!("{name} TXT"), |x| served.iter().any(|y| std::ptr::eq(y.server, x)));
    Some(format!("servers disagree on {what} at {name}: {}{out}", parts.join("; ")))
}
