//! Parsing of Spark Connect connection strings (`sc://host:port/;key=value;...`).

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::error::{Error, Result};

/// The port a connection string without one points at.
pub const DEFAULT_PORT: u16 = 15002;

/// The connection-string keys the client interprets itself; every other key travels as gRPC
/// metadata on every call.
pub const RESERVED_KEYS: [&str; 5] = ["token", "use_ssl", "user_id", "user_agent", "session_id"];

/// A parsed `sc://` connection string.
///
/// The same rules as PySpark apply: the scheme must be `sc`, the path must be empty, parameters
/// follow `/;` as `key=value` pairs separated by `;` with percent-encoded values, `session_id`
/// must be a UUID, and the reserved keys ([`RESERVED_KEYS`]) are not sent as metadata.
#[derive(Clone, PartialEq, Eq)]
pub struct ConnectionString {
    /// The host name or IP address (IPv6 without brackets).
    pub host: String,
    /// The port, [`DEFAULT_PORT`] when the string has none.
    pub port: u16,
    /// The bearer token (`token=`), if any.
    pub token: Option<String>,
    /// Whether `use_ssl=true` was given.
    pub use_ssl: bool,
    /// The user id (`user_id=`), if any.
    pub user_id: Option<String>,
    /// The user agent (`user_agent=`), if any.
    pub user_agent: Option<String>,
    /// The session id (`session_id=`), if any.
    pub session_id: Option<uuid::Uuid>,
    /// Every other parameter, sent as gRPC metadata on every call.
    pub metadata: BTreeMap<String, String>,
}

impl std::fmt::Debug for ConnectionString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionString")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("use_ssl", &self.use_ssl)
            .field("user_id", &self.user_id)
            .field("user_agent", &self.user_agent)
            .field("session_id", &self.session_id)
            .field("metadata", &self.metadata)
            .finish()
    }
}

impl ConnectionString {
    /// Parses a connection string.
    ///
    /// ```
    /// use sc_client::ConnectionString;
    /// let c = ConnectionString::parse("sc://spark.example.com:443/;use_ssl=true;x-tenant=blue")?;
    /// assert_eq!(c.host, "spark.example.com");
    /// assert_eq!(c.port, 443);
    /// assert!(c.use_ssl);
    /// assert_eq!(c.metadata["x-tenant"], "blue");
    /// # Ok::<(), sc_client::Error>(())
    /// ```
    pub fn parse(s: &str) -> Result<Self> {
        let bad = |msg: String| Error::InvalidConnectionString(msg);
        let rest = s.strip_prefix("sc://").ok_or_else(|| {
            bad("the URL must start with 'sc://', e.g. 'sc://hostname:port'".into())
        })?;
        // Authority ends at the first '/'; parameters follow "/;".
        let (authority, tail) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let params = if tail.is_empty() || tail == "/" {
            ""
        } else if let Some(p) = tail.strip_prefix("/;") {
            p
        } else {
            return Err(bad(format!(
                "the path component '{tail}' must be empty, e.g. 'sc://hostname:port/;key=value'"
            )));
        };
        if authority.contains('@') {
            return Err(bad(
                "user information is not allowed in the authority".into()
            ));
        }
        let (host, port) = split_host_port(authority).map_err(bad)?;
        if host.is_empty() {
            return Err(bad(format!("hostname is missing in the URL '{s}'")));
        }
        let mut out = ConnectionString {
            host,
            port,
            token: None,
            use_ssl: false,
            user_id: None,
            user_agent: None,
            session_id: None,
            metadata: BTreeMap::new(),
        };
        for part in params.split(';').filter(|p| !p.is_empty()) {
            let mut kv = part.split('=');
            let (Some(k), Some(v), None) = (kv.next(), kv.next(), kv.next()) else {
                return Err(bad(format!(
                    "parameter '{part}' should be a key-value pair separated by '=', e.g. 'key=value'"
                )));
            };
            let v = percent_decode(v).map_err(bad)?;
            match k {
                "token" => out.token = Some(v),
                "use_ssl" => out.use_ssl = v.eq_ignore_ascii_case("true"),
                "user_id" => out.user_id = Some(v),
                "user_agent" => {
                    if v.len() > 2048 {
                        return Err(bad("'user_agent' should not exceed 2048 characters".into()));
                    }
                    out.user_agent = Some(v)
                }
                "session_id" => {
                    let id = uuid::Uuid::parse_str(&v)
                        .map_err(|e| bad(format!("session_id '{v}' is not a UUID: {e}")))?;
                    out.session_id = Some(id);
                }
                _ => {
                    if k.is_empty() {
                        return Err(bad(format!("parameter '{part}' has an empty key")));
                    }
                    out.metadata.insert(k.to_string(), v);
                }
            }
        }
        Ok(out)
    }

    /// Whether the host is a loopback name or address (`localhost`, `127.0.0.0/8`, `::1`).
    pub fn is_loopback(&self) -> bool {
        self.host.eq_ignore_ascii_case("localhost")
            || self.host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }

    /// Whether the channel uses TLS: with `use_ssl=true`, or with a token to a non-loopback host
    /// (so a token is never sent in plaintext over the network).
    pub fn uses_tls(&self) -> bool {
        self.use_ssl || (self.token.is_some() && !self.is_loopback())
    }

    /// The `http(s)://host:port` URI the gRPC channel connects to.
    pub fn endpoint_uri(&self) -> String {
        let scheme = if self.uses_tls() { "https" } else { "http" };
        if self.host.contains(':') {
            format!("{scheme}://[{}]:{}", self.host, self.port)
        } else {
            format!("{scheme}://{}:{}", self.host, self.port)
        }
    }
}

impl std::str::FromStr for ConnectionString {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

fn split_host_port(authority: &str) -> std::result::Result<(String, u16), String> {
    let parse_port = |p: &str| {
        p.parse::<u16>()
            .map_err(|_| format!("port '{p}' is not a number between 0 and 65535"))
    };
    if let Some(rest) = authority.strip_prefix('[') {
        let end = rest
            .find(']')
            .ok_or_else(|| "unterminated '[' in an IPv6 address".to_string())?;
        let host = rest[..end].to_string();
        let after = &rest[end + 1..];
        let port = match after.strip_prefix(':') {
            Some(p) => parse_port(p)?,
            None if after.is_empty() => DEFAULT_PORT,
            None => return Err(format!("unexpected '{after}' after the IPv6 address")),
        };
        return Ok((host, port));
    }
    match authority.rsplit_once(':') {
        Some((h, p)) => {
            if h.contains(':') {
                return Err(
                    "IPv6 addresses must be written in brackets, e.g. 'sc://[::1]:15002'".into(),
                );
            }
            Ok((h.to_string(), parse_port(p)?))
        }
        None => Ok((authority.to_string(), DEFAULT_PORT)),
    }
}

fn percent_decode(s: &str) -> std::result::Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("bad percent-escape in '{s}'"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("'{s}' does not decode to UTF-8"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_all_reserved_keys_and_metadata() {
        let c = ConnectionString::parse(
            "sc://host:1234/;token=abc;user_id=alice;use_ssl=TRUE;session_id=7f0e1f4e-4b5a-4a39-9c43-0d1c1b7e8a11;user_agent=my%20app;x-custom=v%3D1",
        )
        .unwrap();
        assert_eq!(c.host, "host");
        assert_eq!(c.port, 1234);
        assert_eq!(c.token.as_deref(), Some("abc"));
        assert_eq!(c.user_id.as_deref(), Some("alice"));
        assert!(c.use_ssl);
        assert_eq!(c.user_agent.as_deref(), Some("my app"));
        assert!(c.session_id.is_some());
        assert_eq!(c.metadata.len(), 1);
        assert_eq!(c.metadata["x-custom"], "v=1");
        assert!(!format!("{c:?}").contains("abc"));
    }

    #[test]
    fn defaults_and_ipv6() {
        let c = ConnectionString::parse("sc://localhost").unwrap();
        assert_eq!(c.port, DEFAULT_PORT);
        assert!(!c.uses_tls());
        assert_eq!(c.endpoint_uri(), "http://localhost:15002");
        let c = ConnectionString::parse("sc://[::1]:99/").unwrap();
        assert_eq!(c.host, "::1");
        assert!(c.is_loopback());
        assert_eq!(c.endpoint_uri(), "http://[::1]:99");
    }

    #[test]
    fn token_forces_tls_off_loopback() {
        assert!(
            ConnectionString::parse("sc://db.example.com/;token=t")
                .unwrap()
                .uses_tls()
        );
        assert!(
            !ConnectionString::parse("sc://127.0.0.1/;token=t")
                .unwrap()
                .uses_tls()
        );
        assert!(
            ConnectionString::parse("sc://127.0.0.1/;token=t;use_ssl=true")
                .unwrap()
                .uses_tls()
        );
    }

    #[test]
    fn rejects_bad_strings_without_panicking() {
        for bad in [
            "",
            "http://host",
            "sc://",
            "sc://:15002",
            "sc://host:notaport",
            "sc://host:99999",
            "sc://host/path",
            "sc://host/;novalue",
            "sc://host/;a=b=c",
            "sc://host/;session_id=nope",
            "sc://host/;x=%zz",
            "sc://host/;x=%e2",
            "sc://[::1",
            "sc://::1:80",
            "sc://u@host",
            "sc://host/;=v",
        ] {
            assert!(
                matches!(
                    ConnectionString::parse(bad),
                    Err(Error::InvalidConnectionString(_))
                ),
                "{bad}"
            );
        }
    }
}
