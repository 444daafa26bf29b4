//! A syslog receiver as a log source (`[maillog] syslog_listen`).

use std::sync::Arc;

use super::processor::MailState;
use super::source::{Shutdown, SourceHandle};
use crate::config::SyslogListen;

/// Starts listening for forwarded syslog messages.
pub fn spawn(_listen: &SyslogListen, _state: Arc<MailState>, _stop: Arc<Shutdown>) -> std::io::Result<SourceHandle> {
    Err(std::io::Error::other("the syslog receiver is not implemented yet"))
}
