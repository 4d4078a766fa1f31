//! Prometheus metrics of the forwarding path.
//!
//! Per-backend handles (sessions, active streams, bytes) are resolved once when a backend joins
//! and kept beside it, so the hot path only touches atomics; the call counter is looked up once per
//! call, when its status is known.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use sc_backend_api::BackendId;

use crate::limits::LimitSettings;

/// The `limit` label, in `sc_proxy_limit` and `sc_proxy_limit_rejections_total`, of
/// `router.max_message_size`.
pub(crate) const LIMIT_MESSAGE_SIZE: &str = "max_message_size";
/// The same for `router.first_message_timeout`.
pub(crate) const LIMIT_FIRST_MESSAGE_TIMEOUT: &str = "first_message_timeout";

/// A backend id as a label value, without copying it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct BackendLabel(BackendId);

impl EncodeLabelValue for BackendLabel {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        encoder.write_str(self.0.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct CallLabels {
    pub(crate) method: &'static str,
    pub(crate) code: &'static str,
    pub(crate) backend: BackendLabel,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct BackendLabels {
    pub(crate) backend: BackendLabel,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct BytesLabels {
    pub(crate) direction: &'static str,
    pub(crate) backend: BackendLabel,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct LimitLabels {
    pub(crate) limit: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct RejectLabels {
    pub(crate) method: &'static str,
    pub(crate) code: &'static str,
}

/// The router's metrics registry.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    calls: Family<CallLabels, Counter>,
    rejected: Family<RejectLabels, Counter>,
    sessions: Family<BackendLabels, Gauge>,
    active_streams: Family<BackendLabels, Gauge>,
    bytes: Family<BytesLabels, Counter>,
    limits: Family<LimitLabels, Counter>,
    limits_set: Family<LimitLabels, Gauge<f64, AtomicU64>>,
    up: Family<BackendLabels, Gauge>,
    queries: Family<BackendLabels, Counter>,
    query_seconds: Family<BackendLabels, Counter<f64, AtomicU64>>,
    artifact_uploads: Family<BackendLabels, Counter>,
    session_errors: Family<BackendLabels, Counter>,
    expired: Family<ReasonLabels, Counter>,
    provider_failures: Family<ProviderLabels, Counter>,
    deaths: Family<CauseLabels, Counter>,
    dead_sessions: Family<CauseLabels, Counter>,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct CauseLabels {
    pub(crate) cause: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ProviderLabels {
    pub(crate) provider: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ReasonLabels {
    pub(crate) reason: &'static str,
}

/// The metric handles of one backend.
#[derive(Debug, Clone)]
pub(crate) struct BackendMetrics {
    pub(crate) label: BackendLabel,
    pub(crate) sessions: Gauge,
    pub(crate) active_streams: Gauge,
    pub(crate) bytes_to_backend: Counter,
    pub(crate) bytes_to_client: Counter,
    pub(crate) up: Gauge,
    pub(crate) queries: Counter,
    pub(crate) query_seconds: Counter<f64, AtomicU64>,
    pub(crate) artifact_uploads: Counter,
    pub(crate) errors: Counter,
    /// `calls_total` counters of this backend by (method, status code), resolved on first use:
    /// the call path then touches no lock shared with other backends' calls.
    calls: Arc<[std::sync::OnceLock<Counter>]>,
    family: Family<CallLabels, Counter>,
}

/// Slots per method in [`BackendMetrics::calls`]: the 17 gRPC codes and one for any other.
const CODE_SLOTS: usize = 18;
/// Methods with a slot: the known ones and `Other`.
const METHOD_SLOTS: usize = 16;

impl BackendMetrics {
    /// Counts a finished call of `method` (by its index among the known methods) ending with
    /// `code`.
    pub(crate) fn call_finished(&self, method_index: usize, method: &'static str, code: i32) {
        let code_slot = usize::try_from(code)
            .ok()
            .filter(|c| *c < CODE_SLOTS - 1)
            .unwrap_or(CODE_SLOTS - 1);
        let counter = match self
            .calls
            .get(method_index.min(METHOD_SLOTS - 1) * CODE_SLOTS + code_slot)
        {
            Some(slot) => slot.get_or_init(|| {
                self.family
                    .get_or_create(&CallLabels {
                        method,
                        code: crate::error::code_name(code),
                        backend: self.label.clone(),
                    })
                    .clone()
            }),
            None => return,
        };
        counter.inc();
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers the router's metrics under the `sc_proxy` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("sc_proxy");
        let calls = Family::<CallLabels, Counter>::default();
        let rejected = Family::<RejectLabels, Counter>::default();
        let sessions = Family::<BackendLabels, Gauge>::default();
        let active_streams = Family::<BackendLabels, Gauge>::default();
        let bytes = Family::<BytesLabels, Counter>::default();
        let limits = Family::<LimitLabels, Counter>::default();
        let limits_set = Family::<LimitLabels, Gauge<f64, AtomicU64>>::default();
        let up = Family::<BackendLabels, Gauge>::default();
        let queries = Family::<BackendLabels, Counter>::default();
        let query_seconds = Family::<BackendLabels, Counter<f64, AtomicU64>>::default();
        let artifact_uploads = Family::<BackendLabels, Counter>::default();
        let session_errors = Family::<BackendLabels, Counter>::default();
        let expired = Family::<ReasonLabels, Counter>::default();
        let provider_failures = Family::<ProviderLabels, Counter>::default();
        let deaths = Family::<CauseLabels, Counter>::default();
        let dead_sessions = Family::<CauseLabels, Counter>::default();
        registry.register(
            "backend_deaths",
            "Backends found gone (their process exited or nothing listens at their address), by cause (killed, out_of_memory, exited, unreachable)",
            deaths.clone(),
        );
        registry.register(
            "sessions_dead",
            "Sessions that turned dead because their backend was found gone, by cause (as sc_proxy_backend_deaths_total)",
            dead_sessions.clone(),
        );
        registry.register(
            "provider_refresh_failures",
            "Failed refreshes of a provider's backend list (its last list stays in force), by provider",
            provider_failures.clone(),
        );
        registry.register(
            "session_queries",
            "ExecutePlan calls (queries and commands) of all sessions, by backend",
            queries.clone(),
        );
        registry.register(
            "session_query_seconds",
            "Time spent in ExecutePlan calls of all sessions, by backend",
            query_seconds.clone(),
        );
        registry.register(
            "session_artifact_uploads",
            "AddArtifacts calls of all sessions, by backend",
            artifact_uploads.clone(),
        );
        registry.register(
            "session_errors",
            "Calls of all sessions that ended with a status other than OK, by backend",
            session_errors.clone(),
        );
        registry.register(
            "sessions_closed",
            "Sessions the proxy closed, by reason (deleted, released, idle_timeout, max_lifetime, dead)",
            expired.clone(),
        );
        registry.register(
            "backend_up",
            "1 when a backend may receive new sessions by health (healthy or not yet probed), 0 when unhealthy",
            up.clone(),
        );
        registry.register(
            "limit_rejections",
            "Calls refused by a configured limit (sessions_per_user, streams_per_user, streams_total, rate, max_message_size, first_message_timeout)",
            limits.clone(),
        );
        registry.register(
            "limit",
            "Limits in force, by limit: sessions_per_user, streams_per_user, streams_total (sessions or calls), rate (calls per second per user), burst (calls), max_message_size (bytes), first_message_timeout (seconds); 0 means no limit",
            limits_set.clone(),
        );
        registry.register(
            "calls",
            "Spark Connect calls forwarded, by method, final gRPC status code and backend",
            calls.clone(),
        );
        registry.register(
            "rejected_calls",
            "Spark Connect calls the proxy answered itself without reaching a backend, by method and code",
            rejected.clone(),
        );
        registry.register(
            "sessions",
            "Sessions bound to each backend",
            sessions.clone(),
        );
        registry.register(
            "active_streams",
            "Calls in flight to each backend",
            active_streams.clone(),
        );
        registry.register(
            "bytes",
            "Message bytes forwarded, by direction (to_backend, to_client) and backend",
            bytes.clone(),
        );
        Metrics {
            registry,
            calls,
            rejected,
            sessions,
            active_streams,
            bytes,
            limits,
            limits_set,
            up,
            queries,
            query_seconds,
            artifact_uploads,
            session_errors,
            expired,
            provider_failures,
            deaths,
            dead_sessions,
        }
    }

    /// Counts a backend found gone, and the sessions that died with it.
    pub(crate) fn backend_died(&self, cause: &'static str, first: bool, sessions: u64) {
        let labels = CauseLabels { cause };
        if first {
            self.deaths.get_or_create(&labels).inc();
        }
        self.dead_sessions.get_or_create(&labels).inc_by(sessions);
    }

    /// Raises a provider's failed-refresh counter to `failures` (what the provider reports
    /// since it was built; a provider built anew by a reload counts from zero, and the counter
    /// only grows).
    pub(crate) fn provider_refresh_failures(&self, provider: &str, failures: u64) {
        let counter = self.provider_failures.get_or_create(&ProviderLabels {
            provider: provider.to_owned(),
        });
        let shown = counter.get();
        if failures > shown {
            counter.inc_by(failures - shown);
        }
    }

    pub(crate) fn session_closed(&self, reason: &'static str) {
        self.expired.get_or_create(&ReasonLabels { reason }).inc();
    }

    pub(crate) fn limit_rejected(&self, limit: &'static str) {
        self.limits.get_or_create(&LimitLabels { limit }).inc();
    }

    /// Shows the limits in force in `sc_proxy_limit`: at start, and again after every reload.
    pub(crate) fn show_limits(
        &self,
        limits: &LimitSettings,
        max_message_size: usize,
        first_message_timeout: Duration,
    ) {
        let count = |n: Option<usize>| n.map_or(0.0, |n| n as f64);
        let rate = limits.requests_per_second.map_or(0.0, f64::from);
        let burst = limits
            .burst
            .or(limits.requests_per_second)
            .map_or(0.0, f64::from);
        for (limit, value) in [
            ("sessions_per_user", count(limits.max_sessions_per_user)),
            ("streams_per_user", count(limits.max_streams_per_user)),
            ("streams_total", count(limits.max_streams_total)),
            ("rate", rate),
            ("burst", burst),
            (LIMIT_MESSAGE_SIZE, max_message_size as f64),
            (
                LIMIT_FIRST_MESSAGE_TIMEOUT,
                first_message_timeout.as_secs_f64(),
            ),
        ] {
            self.limits_set
                .get_or_create(&LimitLabels { limit })
                .set(value);
        }
    }

    pub(crate) fn backend(&self, id: &BackendId) -> BackendMetrics {
        let label = BackendLabel(id.clone());
        let by_backend = BackendLabels {
            backend: label.clone(),
        };
        let bytes = |direction| {
            self.bytes
                .get_or_create(&BytesLabels {
                    direction,
                    backend: label.clone(),
                })
                .clone()
        };
        BackendMetrics {
            sessions: self.sessions.get_or_create(&by_backend).clone(),
            active_streams: self.active_streams.get_or_create(&by_backend).clone(),
            bytes_to_backend: bytes("to_backend"),
            bytes_to_client: bytes("to_client"),
            up: self.up.get_or_create(&by_backend).clone(),
            queries: self.queries.get_or_create(&by_backend).clone(),
            query_seconds: self.query_seconds.get_or_create(&by_backend).clone(),
            artifact_uploads: self.artifact_uploads.get_or_create(&by_backend).clone(),
            errors: self.session_errors.get_or_create(&by_backend).clone(),
            calls: (0..METHOD_SLOTS * CODE_SLOTS)
                .map(|_| std::sync::OnceLock::new())
                .collect(),
            family: self.calls.clone(),
            label,
        }
    }

    pub(crate) fn call_rejected(&self, method: &'static str, code: &'static str) {
        self.rejected
            .get_or_create(&RejectLabels { method, code })
            .inc();
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }

    /// Registers more metrics (e.g. the control plane's) into the same exposition.
    pub fn registry_mut(&mut self) -> &mut Registry {
        &mut self.registry
    }
}

/// Shared handle to the metrics.
pub type SharedMetrics = Arc<Metrics>;
