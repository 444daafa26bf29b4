//! The mail log half: turn MTA log lines into reject and acceptance events.
//!
//! The pipeline is kept in pieces that know nothing of each other, as in mtail:
//! [`tail`] yields raw lines, [`envelope`] splits a line into host, program and
//! message, one parser per MTA ([`postfix`], [`sendmail`], [`exim`]) turns a message
//! into an [`Event`], [`reason`] classifies reply texts, and [`processor`] ties them
//! together and counts. Everything except [`tail`] and the sources is pure: plain
//! functions over bytes, tested without files or sockets.
//!
//! The rules come from `reasons.md` (the project's rule book, mirrored in the README);
//! each parser documents the line shapes it reads.

pub mod envelope;
pub mod exim;
pub mod journal;
pub mod postfix;
pub mod processor;
pub mod reason;
pub mod sendmail;
pub mod source;
pub mod state;
pub mod syslog;
pub mod tail;

use std::fmt;

/// Declares a closed set of label values: the enum, its `as_str`, `ALL` and parsing.
macro_rules! label_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The label value.
            pub const fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            /// The value for a label string, if it is one.
            pub fn from_label(s: &str) -> Option<Self> {
                match s { $($text => Some($name::$variant),)+ _ => None }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl prometheus_client::encoding::EncodeLabelValue for $name {
            fn encode(
                &self,
                encoder: &mut prometheus_client::encoding::LabelValueEncoder,
            ) -> Result<(), fmt::Error> {
                fmt::Write::write_str(encoder, self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
    };
}

label_enum! {
    /// The mail transfer agent that logged a line.
    Mta {
        Sendmail => "sendmail",
        Postfix => "postfix",
        Exim => "exim",
    }
}

label_enum! {
    /// The SMTP stage a reject happened at (reasons.md §2).
    Stage {
        Connect => "connect",
        Helo => "helo",
        Mail => "mail",
        Rcpt => "rcpt",
        Data => "data",
        Auth => "auth",
        Other => "other",
    }
}

label_enum! {
    /// Whether the refusal was temporary (4xx) or permanent (5xx) (reasons.md §3).
    Class {
        Temporary => "temporary",
        Permanent => "permanent",
        Unknown => "unknown",
    }
}

label_enum! {
    /// Why a reject happened; the order is the rule book's priority (reasons.md §4).
    Reason {
        Greylist => "greylist",
        Rbl => "rbl",
        SpfFail => "spf_fail",
        DmarcFail => "dmarc_fail",
        Virus => "virus",
        SpamContent => "spam_content",
        Size => "size",
        MailboxFull => "mailbox_full",
        RelayDenied => "relay_denied",
        RateLimit => "rate_limit",
        TlsRequired => "tls_required",
        AuthFailed => "auth_failed",
        AccessDb => "access_db",
        Protocol => "protocol",
        LocalError => "local_error",
        UnknownUser => "unknown_user",
        Sender => "sender",
        Helo => "helo",
        ClientHost => "client_host",
        Other => "other",
    }
}

label_enum! {
    /// What became of a log line (`mailroute_log_lines_total{outcome}`).
    Outcome {
        Reject => "reject",
        Accepted => "accepted",
        MtaOther => "mta_other",
        Foreign => "foreign",
        Unparsed => "unparsed",
    }
}

impl Class {
    /// The class of an SMTP reply code's first digit; `None` outside 4xx/5xx.
    pub fn from_code_digit(d: u8) -> Option<Class> {
        match d {
            b'4' => Some(Class::Temporary),
            b'5' => Some(Class::Permanent),
            _ => None,
        }
    }
}

/// One refused thing, as the parsers read it from a line. Borrowed from the line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject<'a> {
    pub stage: Stage,
    pub class: Class,
    pub reason: Reason,
    /// The recipient address (reasons.md §5), without angle brackets; may be empty.
    pub recipient: Option<&'a [u8]>,
    /// The SMTP client as logged (`name[ip]`, `[ip]:port`, `name [ip]`), for the
    /// in-memory diagnosis ring only; never a label.
    pub client: Option<&'a [u8]>,
}

impl Reject<'_> {
    /// The recipient's domain, lowercased, when the recipient has one.
    pub fn recipient_domain(&self) -> Option<String> {
        let rcpt = self.recipient?;
        let at = memchr::memrchr(b'@', rcpt)?;
        let dom = &rcpt[at + 1..];
        let dom = dom.strip_suffix(b".").unwrap_or(dom);
        if dom.is_empty() {
            return None;
        }
        Some(String::from_utf8_lossy(dom).to_ascii_lowercase())
    }
}

/// What a parser test expects of a reject: stage, class, reason, recipient.
#[cfg(test)]
pub(crate) type Expected = (Stage, Class, Reason, Option<&'static str>);

/// What an MTA line means to the exporter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event<'a> {
    /// The MTA refused something to an SMTP client.
    Reject(Reject<'a>),
    /// The MTA accepted a message from an SMTP client (see each parser for what counts).
    Accepted,
    /// An MTA line that is neither.
    Other,
}
