//! The `spec` of a DNS provider, and its checks.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use hickory_resolver::proto::rr::Name;
use sc_backend_api::ProviderError;
use serde::Deserialize;

/// The shortest `refresh_interval` accepted: a DNS query every 100 ms is already plenty.
pub const MIN_REFRESH_INTERVAL: Duration = Duration::from_millis(100);

/// The `spec` of a DNS provider.
///
/// ```yaml
/// spec:
///   name: spark.analytics.svc.cluster.local   # A/AAAA records; `_service._tcp.name` for SRV
///   port: 15002                               # every address's port (not with SRV)
///   refresh_interval: 10s
///   nameserver: 10.96.0.10:53                 # default: the system's (/etc/resolv.conf)
/// ```
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DnsSpec {
    /// The DNS name to resolve. Its A and AAAA records are the backends' addresses (a
    /// Kubernetes headless Service, e.g. `spark.analytics.svc.cluster.local`). A name that
    /// starts with `_` is looked up as SRV records instead (e.g.
    /// `_spark-connect._tcp.spark.service.consul`): every record's target is resolved and
    /// served on the record's port. SRV priorities and weights are not used: every target is a
    /// backend and the load policy spreads the sessions. With the system resolver, names are
    /// completed with the search domains of `/etc/resolv.conf`; with `nameserver` they are
    /// taken as written.
    pub name: String,
    /// The Spark Connect port of every address (required for A/AAAA names; SRV records carry
    /// their own ports, so it is refused with an SRV name).
    #[serde(default)]
    pub port: Option<u16>,
    /// How often the name is resolved again (default `10s`, at least `100ms`). New addresses
    /// take new sessions from the next refresh on; vanished ones drain.
    #[serde(default = "default_refresh_interval", with = "humantime_serde")]
    pub refresh_interval: Duration,
    /// The nameserver to ask, as `ip:port` (or `ip`, for port 53; IPv6 as `[ip]:port`).
    /// Without it, the system's nameservers and options from `/etc/resolv.conf`.
    #[serde(default)]
    pub nameserver: Option<String>,
    /// How long one DNS query may go unanswered before it is tried again or the refresh counts
    /// as failed (e.g. `2s`). Without it, `/etc/resolv.conf`'s `timeout` option, else 5 s.
    #[serde(default, with = "humantime_serde")]
    pub timeout: Option<Duration>,
    /// Reach the backends over TLS (`https`); plaintext without it. `tls: {}` uses the system
    /// roots and verifies the DNS name (the SRV target's name for SRV records).
    #[serde(default)]
    pub tls: Option<TlsSpec>,
    /// File holding the servers' pre-shared token (Spark's `spark.connect.authenticate.token`),
    /// sent to every backend of this provider on every call.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// Environment variable holding the pre-shared token (instead of `token_file`).
    #[serde(default)]
    pub token_env: Option<String>,
}

/// `tls` of a DNS provider: how the proxy verifies the backends' certificates.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TlsSpec {
    /// PEM bundle of the certificate authorities to trust; the system roots when absent.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// The name to verify in every backend's certificate; by default `name` (A/AAAA) or the
    /// SRV record's target.
    #[serde(default)]
    pub server_name: Option<String>,
}

fn default_refresh_interval() -> Duration {
    Duration::from_secs(10)
}

impl DnsSpec {
    /// A spec resolving `name`'s A/AAAA records, served on `port`, with every other setting at
    /// its default.
    pub fn new(name: impl Into<String>, port: u16) -> Self {
        DnsSpec {
            name: name.into(),
            port: Some(port),
            refresh_interval: default_refresh_interval(),
            nameserver: None,
            timeout: None,
            tls: None,
            token_file: None,
            token_env: None,
        }
    }
}

/// What a DNS provider looks up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Query {
    /// A and AAAA records of the name, every address on `port`.
    Addresses {
        /// The name.
        name: Name,
        /// The port.
        port: u16,
    },
    /// SRV records of the name.
    Srv {
        /// The name.
        name: Name,
    },
}

/// A checked spec, ready to build the provider from.
#[derive(Debug, Clone)]
pub(crate) struct Checked {
    /// The name as configured, without a final dot (for ids and messages).
    pub(crate) display_name: String,
    pub(crate) query: Query,
    pub(crate) refresh_interval: Duration,
    pub(crate) nameserver: Option<SocketAddr>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) tls: Option<TlsSpec>,
    pub(crate) token: Option<String>,
}

/// A configuration error about `field` of the spec found at `key`.
fn invalid(key: &str, field: &str, why: impl std::fmt::Display) -> ProviderError {
    ProviderError::Config(format!("{key}.{field}: {why}"))
}

impl DnsSpec {
    /// Checks every field; errors name the key (`<key>.port: ...`) and say what is expected.
    pub(crate) fn check(&self, key: &str) -> Result<Checked, ProviderError> {
        let written = self.name.trim();
        if written.is_empty() {
            return Err(invalid(
                key,
                "name",
                "is empty; write the DNS name of the Spark Connect servers, e.g. spark.analytics.svc.cluster.local",
            ));
        }
        if written.parse::<IpAddr>().is_ok() {
            return Err(invalid(
                key,
                "name",
                format!(
                    "'{written}' is an IP address, not a DNS name; list fixed addresses with the PREDEFINED provider"
                ),
            ));
        }
        let name = Name::from_str(written).map_err(|e| {
            invalid(
                key,
                "name",
                format!("'{written}' is not a valid DNS name: {e}"),
            )
        })?;
        let display_name = written.trim_end_matches('.').to_owned();
        let srv = written.starts_with('_');
        let query = match (srv, self.port) {
            (true, None) => Query::Srv { name },
            (true, Some(_)) => {
                return Err(invalid(
                    key,
                    "port",
                    format!(
                        "'{written}' is an SRV name (it starts with '_'): its records carry the ports; remove `port`"
                    ),
                ));
            }
            (false, None) => {
                return Err(invalid(
                    key,
                    "port",
                    format!(
                        "is missing: the A/AAAA records of '{written}' carry no port; set the Spark Connect servers' port, e.g. `port: 15002` (or use an SRV name, `_service._tcp.{written}`)"
                    ),
                ));
            }
            (false, Some(0)) => return Err(invalid(key, "port", "must be between 1 and 65535")),
            (false, Some(port)) => Query::Addresses { name, port },
        };
        if self.refresh_interval < MIN_REFRESH_INTERVAL {
            return Err(invalid(
                key,
                "refresh_interval",
                format!(
                    "{} is too short; use at least {}",
                    humantime::format_duration(self.refresh_interval),
                    humantime::format_duration(MIN_REFRESH_INTERVAL)
                ),
            ));
        }
        if self.timeout.is_some_and(|t| t.is_zero()) {
            return Err(invalid(key, "timeout", "must be longer than 0s, e.g. 2s"));
        }
        let nameserver = self
            .nameserver
            .as_deref()
            .map(|text| parse_nameserver(text).map_err(|why| invalid(key, "nameserver", why)))
            .transpose()?;
        if let Some(tls) = &self.tls {
            if let Some(path) = &tls.ca_file
                && let Err(e) = std::fs::metadata(path)
            {
                return Err(invalid(
                    key,
                    "tls.ca_file",
                    format!("{}: {e}", path.display()),
                ));
            }
            if tls
                .server_name
                .as_deref()
                .is_some_and(|s| s.trim().is_empty())
            {
                return Err(invalid(
                    key,
                    "tls.server_name",
                    "is empty; remove it to verify the DNS name",
                ));
            }
        }
        let token = self.token(key)?;
        Ok(Checked {
            display_name,
            query,
            refresh_interval: self.refresh_interval,
            nameserver,
            timeout: self.timeout,
            tls: self.tls.clone(),
            token,
        })
    }

    /// The pre-shared token from `token_file` or `token_env`, if either is set.
    fn token(&self, key: &str) -> Result<Option<String>, ProviderError> {
        let token = match (&self.token_file, &self.token_env) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    key,
                    "token_file",
                    "and token_env are both set; keep one",
                ));
            }
            (Some(path), None) => std::fs::read_to_string(path)
                .map_err(|e| invalid(key, "token_file", format!("{}: {e}", path.display())))?
                .trim()
                .to_owned(),
            (None, Some(var)) => std::env::var(var).map_err(|_| {
                invalid(
                    key,
                    "token_env",
                    format!("environment variable {var} is not set"),
                )
            })?,
            (None, None) => return Ok(None),
        };
        if token.is_empty() {
            let field = if self.token_file.is_some() {
                "token_file"
            } else {
                "token_env"
            };
            return Err(invalid(key, field, "the backend token is empty"));
        }
        Ok(Some(token))
    }
}

/// `ip:port`, `[ipv6]:port` or a bare IP address (port 53).
fn parse_nameserver(text: &str) -> Result<SocketAddr, String> {
    let text = text.trim();
    if let Ok(addr) = text.parse::<SocketAddr>() {
        if addr.port() == 0 {
            return Err(format!("'{text}' has port 0; DNS servers listen on 53"));
        }
        return Ok(addr);
    }
    if let Ok(ip) = text.trim_matches(['[', ']']).parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, 53));
    }
    Err(format!(
        "'{text}' is not an IP address with an optional port; write e.g. 10.96.0.10:53 or [fd00::10]:53 (a nameserver's own name would need another resolver to find it)"
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn nameservers_are_ip_addresses_with_an_optional_port() {
        for (text, want) in [
            ("127.0.0.1:15453", "127.0.0.1:15453"),
            ("10.0.0.1", "10.0.0.1:53"),
            ("[fd00::1]:5353", "[fd00::1]:5353"),
            ("fd00::1", "[fd00::1]:53"),
        ] {
            assert_eq!(
                parse_nameserver(text).unwrap(),
                want.parse::<SocketAddr>().unwrap()
            );
        }
        for bad in ["", "dns.internal:53", "127.0.0.1:0", "1.2.3.4:99999"] {
            assert!(parse_nameserver(bad).is_err(), "{bad}");
        }
    }
}
