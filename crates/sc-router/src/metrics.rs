//! Prometheus metrics of the forwarding path.
//!
//! Per-backend handles (sessions, active streams, bytes) are resolved once when a backend joins
//! and kept beside it, so the hot path only touches atomics; the call counter is looked up once per
//! call, when its status is known.

use std::fmt::Write as _;
use std::sync::Arc;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use sc_backend_api::BackendId;

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
    up: Family<BackendLabels, Gauge>,
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
        let up = Family::<BackendLabels, Gauge>::default();
        registry.register(
            "backend_up",
            "1 when a backend may receive new sessions by health (healthy or not yet probed), 0 when unhealthy",
            up.clone(),
        );
        registry.register(
            "limit_rejections",
            "Calls refused by a configured limit (sessions_per_user, streams_per_user, streams_total, rate)",
            limits.clone(),
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
            up,
        }
    }

    pub(crate) fn limit_rejected(&self, limit: &'static str) {
        self.limits.get_or_create(&LimitLabels { limit }).inc();
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
            label,
        }
    }

    pub(crate) fn call_finished(
        &self,
        method: &'static str,
        code: &'static str,
        backend: &BackendLabel,
    ) {
        self.calls
            .get_or_create(&CallLabels {
                method,
                code,
                backend: backend.clone(),
            })
            .inc();
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
