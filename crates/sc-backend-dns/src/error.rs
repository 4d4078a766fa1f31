//! Why a resolution failed, in words an operator can act on.

use hickory_resolver::net::{DnsError as HickoryDnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;

/// A failed resolution of the provider's name (the last known backends stay in force).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DnsError {
    /// The nameserver says the name does not exist (NXDOMAIN).
    #[error("'{name}' does not exist (NXDOMAIN)")]
    NoSuchName {
        /// The name looked up.
        name: String,
    },
    /// The name exists but has no records of the wanted types.
    #[error("'{name}' has no {kind} records")]
    NoRecords {
        /// The name looked up.
        name: String,
        /// The record types asked for, e.g. `A or AAAA`.
        kind: &'static str,
    },
    /// No nameserver answered in time (it is down, or unreachable).
    #[error("no answer from the nameserver for '{name}' in time (is it running and reachable?)")]
    Timeout {
        /// The name looked up.
        name: String,
    },
    /// The nameserver answered with an error code (SERVFAIL, REFUSED, ...).
    #[error("the nameserver answered {code} for '{name}'")]
    Refused {
        /// The name looked up.
        name: String,
        /// The response code, e.g. `Server Failure`.
        code: String,
    },
    /// Any other failure of the lookup (a network error, a malformed answer).
    #[error("looking up '{name}' failed: {reason}")]
    Lookup {
        /// The name looked up.
        name: String,
        /// What the resolver said.
        reason: String,
    },
    /// The system resolver configuration could not be read.
    #[error(
        "the system resolver configuration (/etc/resolv.conf) cannot be used: {0}; set `nameserver`"
    )]
    SystemConfig(String),
}

impl DnsError {
    /// Classifies a resolver error for a lookup of `name` of record types `kind`.
    pub(crate) fn from_lookup(name: &str, kind: &'static str, error: &NetError) -> DnsError {
        let name = name.trim_end_matches('.').to_owned();
        match error {
            NetError::Dns(HickoryDnsError::NoRecordsFound(none))
                if none.response_code == ResponseCode::NXDomain =>
            {
                DnsError::NoSuchName { name }
            }
            NetError::Dns(HickoryDnsError::NoRecordsFound(_)) => DnsError::NoRecords { name, kind },
            NetError::Dns(HickoryDnsError::ResponseCode(code)) => DnsError::Refused {
                name,
                code: code.to_string(),
            },
            NetError::Timeout => DnsError::Timeout { name },
            other => DnsError::Lookup {
                name,
                reason: other.to_string(),
            },
        }
    }

    /// Whether the name has no records (rather than the lookup having failed): an SRV target
    /// that is gone, or a family (A or AAAA) the name does not have.
    pub(crate) fn is_absent(&self) -> bool {
        matches!(
            self,
            DnsError::NoSuchName { .. } | DnsError::NoRecords { .. }
        )
    }
}
