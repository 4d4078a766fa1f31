//! The router's typed settings (the `router` section of the proxy's configuration).

use std::time::Duration;

use serde::Deserialize;

/// Tuning of the forwarding path. Every field has a default suited to Spark Connect.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct RouterSettings {
    /// Largest gRPC message the router reads to route a call, in bytes (Spark's own default,
    /// 128 MiB, when unset). Larger first messages get `RESOURCE_EXHAUSTED`.
    pub max_message_size: usize,
    /// How long to wait for a TCP (and TLS) connection to a backend.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// HTTP/2 keep-alive ping interval on backend connections.
    #[serde(with = "humantime_serde")]
    pub keepalive_interval: Duration,
    /// HTTP/2 receive window of each forwarded stream, in bytes: the most the router holds for one
    /// call whose client reads slowly.
    pub stream_window: u32,
    /// HTTP/2 receive window of each backend connection, in bytes (shared by all its streams).
    pub connection_window: u32,
    /// How long a call may take to send its first message (a call that opens a stream and sends
    /// nothing is cut after this; clients send it at once).
    #[serde(with = "humantime_serde")]
    pub first_message_timeout: Duration,
    /// Per-user and global limits.
    pub limits: crate::limits::LimitSettings,
    /// Backend health probes.
    pub health: crate::health::HealthSettings,
}

impl Default for RouterSettings {
    fn default() -> Self {
        RouterSettings {
            max_message_size: 128 * 1024 * 1024,
            connect_timeout: Duration::from_secs(5),
            keepalive_interval: Duration::from_secs(30),
            stream_window: 4 * 1024 * 1024,
            connection_window: 256 * 1024 * 1024,
            first_message_timeout: Duration::from_secs(30),
            limits: crate::limits::LimitSettings::default(),
            health: crate::health::HealthSettings::default(),
        }
    }
}

impl RouterSettings {
    /// Checks the values; the error names the bad key under `router.`.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_message_size < 4 * 1024 * 1024 {
            return Err(format!(
                "router.max_message_size is {} bytes; it must be at least 4194304 (4 MiB); Spark clients send up to 134217728 (128 MiB)",
                self.max_message_size
            ));
        }
        if self.stream_window < 65_535 || self.connection_window < self.stream_window {
            return Err(
                "router.stream_window must be at least 65535 and router.connection_window at least router.stream_window".into(),
            );
        }
        self.limits.validate()?;
        self.health.validate()?;
        if self.first_message_timeout.is_zero() {
            return Err("router.first_message_timeout must be greater than zero, e.g. 30s".into());
        }
        if self.connect_timeout.is_zero() {
            return Err("router.connect_timeout must be greater than zero, e.g. 5s".into());
        }
        Ok(())
    }
}
