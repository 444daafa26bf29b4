//! The DNS half: ask every authoritative server of each monitored domain directly,
//! keep what they said in a [`snapshot::Snapshot`], and evaluate the check catalogue
//! over it.

pub mod state;

pub use state::DnsState;
