//! Backend health: active probes (a cheap Spark Connect call on an interval) and passive marking
//! when a call cannot reach the backend. New sessions are placed only on backends that are not
//! unhealthy; sessions already bound stay where they are.
//!
//! A backend that a call (or a probe) cannot reach is checked at once ([`confirm_gone`]): when
//! its provider knows its process ended, or a new connection to its address is refused, it is
//! *gone*, and the router turns every session on it dead (`sessions.rs`). One that merely does
//! not answer in time may be alive behind a slow network and stays merely unavailable.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU32, Ordering};
use std::time::Duration;

use prometheus_client::metrics::gauge::Gauge;
use sc_backend_api::{DeathCause, PostMortem};
use sc_proto::spark::connect as pb;
use serde::Deserialize;
use tracing::{info, warn};

use crate::backends::BackendHandle;

/// The `router.health` section.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct HealthSettings {
    /// Probe every backend this often; `0s` turns active probes off.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// A probe that takes longer fails.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Consecutive failed probes that make a backend unhealthy.
    pub unhealthy_threshold: u32,
    /// Consecutive good probes that make an unhealthy backend healthy again.
    pub healthy_threshold: u32,
}

impl Default for HealthSettings {
    fn default() -> Self {
        HealthSettings {
            interval: Duration::from_secs(10),
            timeout: Duration::from_secs(5),
            unhealthy_threshold: 2,
            healthy_threshold: 1,
        }
    }
}

impl HealthSettings {
    /// Checks the values; the error names the key.
    pub fn validate(&self) -> Result<(), String> {
        if self.unhealthy_threshold == 0 || self.healthy_threshold == 0 {
            return Err("router.health.unhealthy_threshold and router.health.healthy_threshold must be at least 1".into());
        }
        if !self.interval.is_zero() && self.timeout.is_zero() {
            return Err("router.health.timeout must be greater than zero, e.g. 5s".into());
        }
        Ok(())
    }
}

const UNKNOWN: u8 = 0;
const HEALTHY: u8 = 1;
const UNHEALTHY: u8 = 2;

/// One backend's health, updated by probes and by calls.
#[derive(Debug)]
pub(crate) struct Health {
    state: AtomicU8,
    failures: AtomicU32,
    successes: AtomicU32,
    /// Found gone since the last good probe (so a death is reported once).
    gone: std::sync::atomic::AtomicBool,
    up: Gauge,
}

impl Health {
    pub(crate) fn new(up: Gauge) -> Self {
        up.set(1);
        Health {
            state: AtomicU8::new(UNKNOWN),
            failures: AtomicU32::new(0),
            successes: AtomicU32::new(0),
            gone: std::sync::atomic::AtomicBool::new(false),
            up,
        }
    }

    pub(crate) fn is_unhealthy(&self) -> bool {
        self.state.load(Ordering::Relaxed) == UNHEALTHY
    }

    pub(crate) fn name(&self) -> &'static str {
        match self.state.load(Ordering::Relaxed) {
            HEALTHY => "healthy",
            UNHEALTHY => "unhealthy",
            _ => "unknown",
        }
    }

    fn set(&self, state: u8) -> bool {
        self.up.set(i64::from(state != UNHEALTHY));
        self.state.swap(state, Ordering::AcqRel) != state
    }

    /// A probe or call succeeded.
    pub(crate) fn success(&self, settings: &HealthSettings) -> bool {
        self.failures.store(0, Ordering::Relaxed);
        self.gone.store(false, Ordering::Relaxed);
        let successes = self.successes.fetch_add(1, Ordering::AcqRel) + 1;
        let state = self.state.load(Ordering::Relaxed);
        if state != UNHEALTHY || successes >= settings.healthy_threshold {
            return self.set(HEALTHY);
        }
        false
    }

    /// A probe failed; true when this made the backend unhealthy.
    pub(crate) fn failure(&self, settings: &HealthSettings) -> bool {
        self.successes.store(0, Ordering::Relaxed);
        let failures = self.failures.fetch_add(1, Ordering::AcqRel) + 1;
        failures >= settings.unhealthy_threshold && self.set(UNHEALTHY)
    }

    /// A call could not reach the backend at all: unhealthy at once (passive marking).
    pub(crate) fn unreachable(&self) -> bool {
        self.successes.store(0, Ordering::Relaxed);
        self.set(UNHEALTHY)
    }

    /// The backend was found gone; true the first time since it last answered a probe.
    pub(crate) fn mark_gone(&self) -> bool {
        !self.gone.swap(true, Ordering::AcqRel)
    }
}

/// After a call (or a probe) could not reach `backend`: whether it is gone for good. Its
/// provider's post-mortem decides first (a launched engine whose process exited); else a new
/// TCP connection to its address, given at most a second: refused means nothing listens there
/// any more. A connection that succeeds or times out says it may be alive: `None`.
pub(crate) async fn confirm_gone(backend: &BackendHandle) -> Option<PostMortem> {
    if let Some(post_mortem) = backend.provider.post_mortem(&backend.backend).await {
        return Some(post_mortem);
    }
    let endpoint = &backend.backend.endpoint;
    let host = endpoint
        .host()?
        .trim_start_matches('[')
        .trim_end_matches(']');
    let port = endpoint.port_u16().unwrap_or(match endpoint.scheme_str() {
        Some("https") => 443,
        _ => 80,
    });
    let knock = tokio::net::TcpStream::connect((host, port));
    match tokio::time::timeout(KNOCK_TIMEOUT, knock).await {
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {}
        _ => return None,
    }
    // A process that closed its port is ending: its provider, if it started it, soon knows how
    // (the exit status and its log say more than a refused connection).
    if backend.started {
        for _ in 0..10 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if let Some(post_mortem) = backend.provider.post_mortem(&backend.backend).await {
                return Some(post_mortem);
            }
        }
    }
    Some(PostMortem::new(
        DeathCause::Unreachable,
        format!(
            "nothing listens at {host}:{port} any more (connection refused): its server process is gone"
        ),
    ))
}

/// How long [`confirm_gone`] waits for a connection.
const KNOCK_TIMEOUT: Duration = Duration::from_secs(1);

/// The probe: AnalyzePlan(SparkVersion) in one session the proxy keeps for probing.
async fn probe(backend: &BackendHandle, session_id: &str, timeout: Duration) -> Result<(), String> {
    let authorization = backend.authorization.clone();
    let mut client = pb::spark_connect_service_client::SparkConnectServiceClient::with_interceptor(
        backend.channel.clone(),
        move |mut request: tonic::Request<()>| {
            if let Some(value) = &authorization
                && let Ok(value) = tonic::metadata::AsciiMetadataValue::try_from(value.as_bytes())
            {
                request.metadata_mut().insert("authorization", value);
            }
            Ok(request)
        },
    );
    let request = pb::AnalyzePlanRequest {
        session_id: session_id.to_owned(),
        user_context: Some(pb::UserContext {
            user_id: "spark-connect-proxy-health".into(),
            user_name: "spark-connect-proxy-health".into(),
            extensions: vec![],
        }),
        client_type: Some("spark-connect-proxy health probe".into()),
        analyze: Some(pb::analyze_plan_request::Analyze::SparkVersion(
            pb::analyze_plan_request::SparkVersion {},
        )),
        ..Default::default()
    };
    match tokio::time::timeout(timeout, client.analyze_plan(request)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(status)) => Err(format!("{:?}: {}", status.code(), status.message())),
        Err(_) => Err(format!("no answer within {timeout:?}")),
    }
}

/// Probes every backend on the interval, forever.
pub(crate) async fn run_probes(inner: std::sync::Weak<crate::Inner>) {
    let session_id = uuid::Uuid::new_v4().to_string();
    loop {
        let Some(router) = inner.upgrade() else {
            return;
        };
        let settings = router.settings.health.clone();
        if settings.interval.is_zero() {
            return;
        }
        // A launched engine taken out of placement (stopping, or gone) never comes back.
        let backends: Vec<_> = router
            .pool
            .snapshot()
            .iter()
            .filter(|b| !(b.started && b.removed.load(std::sync::atomic::Ordering::Relaxed)))
            .cloned()
            .collect();
        drop(router);
        let inner = &inner;
        let probes = backends.iter().map(|backend| {
            let session_id = session_id.clone();
            let settings = settings.clone();
            async move {
                match probe(backend, &session_id, settings.timeout).await {
                    Ok(()) => {
                        if backend.health.success(&settings) {
                            info!(backend = %backend.id(), "backend is healthy");
                        }
                    }
                    Err(reason) => {
                        if backend.health.failure(&settings) {
                            warn!(backend = %backend.id(), %reason, "backend is unhealthy; no new sessions go there");
                        }
                        // A backend that died while its sessions were idle: they learn it now.
                        if let Some(router) = inner.upgrade() {
                            router.check_gone(backend).await;
                        }
                    }
                }
            }
        });
        futures_util::future::join_all(probes).await;
        tokio::time::sleep(settings.interval).await;
    }
}

/// Marks a backend unhealthy after a call could not reach it. Only with active probes on: they
/// are what brings it back.
pub(crate) fn mark_unreachable(
    settings: &HealthSettings,
    backend: &Arc<BackendHandle>,
    reason: &str,
) {
    if !settings.interval.is_zero() && backend.health.unreachable() {
        warn!(backend = %backend.id(), %reason, "backend unreachable; marked unhealthy until a probe succeeds");
    }
}
