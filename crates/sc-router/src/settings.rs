//! The router's typed settings (the `router` section of the proxy's configuration).

use std::time::Duration;

use serde::Deserialize;

/// Tuning of the forwarding path. Every field has a default suited to Spark Connect.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct RouterSettings {
    /// Largest gRPC request message, in bytes (Spark's own default, 128 MiB, when unset). The
    /// first message of a call is read to route it; later messages of a client stream are only
    /// measured by their length prefixes. A larger one ends the call with `RESOURCE_EXHAUSTED`.
    pub max_message_size: usize,
    /// How long to wait for a TCP (and TLS) connection to a backend.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// HTTP/2 keep-alive ping interval on backend connections.
    #[serde(with = "humantime_serde")]
    pub keepalive_interval: Duration,
    /// HTTP/2 receive window of each forwarded stream, in bytes: the most the router holds for one
    /// call whose client reads slowly. The default, 2 MiB, is two of the 1 MiB frames backends
    /// send: enough for one stream to run at full speed on a local network, and half the memory
    /// (and page faults) of 4 MiB with many concurrent streams (docs/benchmarks.md).
    pub stream_window: u32,
    /// HTTP/2 receive window of each backend connection, in bytes (shared by all its streams).
    pub connection_window: u32,
    /// Largest HTTP/2 frame the proxy accepts, in bytes (advertised to backends and clients):
    /// large frames let a backend send a result batch in a few frames instead of one per 16 KiB.
    pub max_frame_size: u32,
    /// How long a call may take to send its first message (a call that opens a stream and sends
    /// nothing is cut after this; clients send it at once).
    #[serde(with = "humantime_serde")]
    pub first_message_timeout: Duration,
    /// Per-user and global limits.
    pub limits: crate::limits::LimitSettings,
    /// Backend health probes.
    pub health: crate::health::HealthSettings,
    /// Session lifetimes and their bookkeeping.
    pub sessions: SessionSettings,
    /// How many connections to each plaintext backend are kept for threads marked with
    /// [`crate::use_connection_lane`] (besides the one shared by all other threads). Set by a
    /// server that runs a single-threaded runtime per thread, not read from configuration;
    /// 0 (the default) means every call shares one connection per backend.
    #[serde(skip)]
    pub connection_lanes: usize,
}

/// How long sessions live, and how the router keeps its table (the `router.sessions` section).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct SessionSettings {
    /// A session with no call for this long is closed (released on its backend); `0s` never.
    /// A session with a call in flight is never idle.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// A session older than this is closed as soon as it has no call in flight; `0s` never.
    #[serde(with = "humantime_serde")]
    pub max_lifetime: Duration,
    /// How often the router looks for sessions to expire and engines to stop.
    #[serde(with = "humantime_serde")]
    pub check_interval: Duration,
    /// How long the router remembers a closed or expired session, to tell its client why the
    /// session is gone instead of starting a new one under the old id.
    #[serde(with = "humantime_serde")]
    pub tombstone_ttl: Duration,
    /// With a shared store (Redis), how long a replica trusts its cached copy of a session
    /// before checking the store again (whether another replica closed it).
    #[serde(with = "humantime_serde")]
    pub revalidate_interval: Duration,
}

impl Default for SessionSettings {
    fn default() -> Self {
        SessionSettings {
            idle_timeout: Duration::from_secs(3600),
            max_lifetime: Duration::ZERO,
            check_interval: Duration::from_secs(1),
            tombstone_ttl: Duration::from_secs(3600),
            revalidate_interval: Duration::from_secs(2),
        }
    }
}

impl Default for RouterSettings {
    fn default() -> Self {
        RouterSettings {
            max_message_size: 128 * 1024 * 1024,
            connect_timeout: Duration::from_secs(5),
            keepalive_interval: Duration::from_secs(30),
            stream_window: 2 * 1024 * 1024,
            connection_window: 256 * 1024 * 1024,
            max_frame_size: 1024 * 1024,
            first_message_timeout: Duration::from_secs(30),
            limits: crate::limits::LimitSettings::default(),
            health: crate::health::HealthSettings::default(),
            sessions: SessionSettings::default(),
            connection_lanes: 0,
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
        if !(16_384..=16_777_215).contains(&self.max_frame_size) {
            return Err(format!(
                "router.max_frame_size is {}; HTTP/2 allows 16384 to 16777215 bytes",
                self.max_frame_size
            ));
        }
        self.limits.validate()?;
        self.health.validate()?;
        if self.first_message_timeout.is_zero() {
            return Err("router.first_message_timeout must be greater than zero, e.g. 30s".into());
        }
        if self.sessions.check_interval.is_zero() {
            return Err("router.sessions.check_interval must be greater than zero, e.g. 1s".into());
        }
        if self.connect_timeout.is_zero() {
            return Err("router.connect_timeout must be greater than zero, e.g. 5s".into());
        }
        Ok(())
    }
}
