//! Observing a forwarded call on its way back: the session's activity and metrics, the
//! backend's counters and health, the release of a session its client ended, and a backend that
//! restarted under a session (its server-side session id changed).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use sc_proto::RpcMethod;
use sc_proto::wire;
use sc_store::Change;
use tracing::{debug, warn};

use crate::forward::{Cut, Observer};
use crate::metrics::LIMIT_MESSAGE_SIZE;
use crate::registry::Session;
use crate::sessions::ReleaseKey;
use crate::telemetry::CallTrace;
use crate::{Inner, RouterError};

/// One forwarded call, observed from the moment it is sent until its response ends.
pub(crate) struct CallEnd {
    inner: Arc<Inner>,
    session: Arc<Session>,
    method: RpcMethod,
    release: Option<ReleaseKey>,
    /// The Spark session of a control session's call (a bound session is its own).
    spark_session: Option<String>,
    started: std::time::Instant,
    /// Set if the router cut the request (a later message too large).
    cut: Arc<Cut>,
    /// The call's place in the in-flight limits, given back when the call ends.
    _permit: Option<crate::limits::StreamPermit>,
    /// Whether the call was counted as ended (it ends once, however it ends).
    finished: bool,
    /// The call's trace, when telemetry is on: ended with the call.
    trace: Option<CallTrace>,
}

impl CallEnd {
    /// Counts the call as started (the session busy, a stream in flight on its backend, a query
    /// or an upload) and returns what counts it as ended.
    pub(crate) fn start(
        inner: Arc<Inner>,
        session: Arc<Session>,
        method: RpcMethod,
        release: Option<ReleaseKey>,
        spark_session: Option<String>,
        cut: Arc<Cut>,
        permit: Option<crate::limits::StreamPermit>,
    ) -> Self {
        let backend = &session.backend;
        session.call_started();
        backend.metrics.active_streams.inc();
        match method {
            RpcMethod::ExecutePlan => {
                session.stats.queries.fetch_add(1, Ordering::Relaxed);
                session
                    .stats
                    .active_operations
                    .fetch_add(1, Ordering::Relaxed);
                backend.metrics.queries.inc();
            }
            RpcMethod::AddArtifacts => {
                session
                    .stats
                    .artifact_uploads
                    .fetch_add(1, Ordering::Relaxed);
                backend.metrics.artifact_uploads.inc();
            }
            _ => {}
        }
        CallEnd {
            inner,
            session,
            method,
            release,
            spark_session,
            started: std::time::Instant::now(),
            cut,
            _permit: permit,
            finished: false,
            trace: None,
        }
    }

    /// The same call, its trace (when telemetry is on) ended with it.
    pub(crate) fn traced(mut self, trace: Option<CallTrace>) -> Self {
        self.trace = trace;
        self
    }
}

impl Drop for CallEnd {
    /// A call dropped before it ended (its client's connection closed while it waited for the
    /// backend) ends as cancelled, so no stream stays counted in flight.
    fn drop(&mut self) {
        self.finish(None);
    }
}

impl CallEnd {
    /// The backend could not be reached (the call was not sent, or broke before an answer):
    /// the call ends. When the router cut the request itself, the client learns why from the
    /// status returned (already counted); when the backend is gone for good, every session on
    /// it is dead and the error says why; otherwise the backend is marked unreachable and the
    /// error names it.
    pub(crate) async fn unreachable(
        mut self,
        inner: &Inner,
        reason: String,
    ) -> Result<tonic::Status, RouterError> {
        if let Some(error) = self.cut_short() {
            // Before the backend answered: the client learns why, and the backend is not at
            // fault.
            self.finish(Some(error.code() as i32));
            return Ok(error.to_status());
        }
        let backend = self.session.backend.clone();
        crate::health::mark_unreachable(&inner.settings.health, &backend, &reason);
        // A backend whose process is gone fails its sessions now, for good.
        if let Some(error) = inner.fail_if_gone(&self.session).await {
            self.finish(Some(error.code() as i32));
            return Err(error);
        }
        let error = backend.unavailable(reason);
        warn!(backend = %backend.id(), %error, "backend call failed");
        self.finish(Some(tonic::Code::Unavailable as i32));
        Err(error)
    }
}

impl Observer for CallEnd {
    fn broken(&self, cause: &tonic::Status) -> tonic::Status {
        if let Some(error) = self.cut_short() {
            // The stream broke because the router cut the request: not the backend's fault.
            return error.to_status();
        }
        let reason = format!("the response stream broke ({})", cause.message());
        crate::health::mark_unreachable(
            &self.inner.settings.health,
            &self.session.backend,
            &reason,
        );
        warn!(backend = %self.session.backend.id(), method = self.method.name(), %reason, "backend stream failed");
        // Its process may be gone: then its sessions turn dead before their clients retry.
        let inner = self.inner.clone();
        let backend = self.session.backend.clone();
        tokio::spawn(async move { inner.check_gone(&backend).await });
        self.session.backend.unavailable(reason).to_status()
    }

    fn data(&mut self, data: &bytes::Bytes, first: bool) -> Option<tonic::Status> {
        self.session
            .stats
            .bytes_out
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        if let Some(trace) = &mut self.trace {
            trace.sent_to_client(data.len());
        }
        if first {
            self.check_backend_session(data)
        } else {
            None
        }
    }

    fn finish(&mut self, code: Option<i32>) {
        if std::mem::replace(&mut self.finished, true) {
            return;
        }
        let backend = &self.session.backend;
        backend.metrics.active_streams.dec();
        self.session.call_finished();
        if self.inner.persist.is_some() {
            self.inner.registry.touched(&self.session);
        }
        let code = code.unwrap_or(tonic::Code::Cancelled as i32);
        backend
            .metrics
            .call_finished(self.method.index(), self.method.name(), code);
        if let Some(trace) = self.trace.take() {
            trace.finish(code, self.cut.forwarded());
        }
        let stats = &self.session.stats;
        if self.method == RpcMethod::ExecutePlan {
            stats.active_operations.fetch_sub(1, Ordering::Relaxed);
            let elapsed = self.started.elapsed();
            stats.execution_ms.fetch_add(
                u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
                Ordering::Relaxed,
            );
            backend.metrics.query_seconds.inc_by(elapsed.as_secs_f64());
        }
        if code != 0 {
            stats.errors.fetch_add(1, Ordering::Relaxed);
            backend.metrics.errors.inc();
        }
        if code == 0
            && let Some(key) = self.release.take()
        {
            let inner = self.inner.clone();
            let session = self.session.clone();
            tokio::spawn(async move { inner.released(&session, &key).await });
        }
    }
}

impl CallEnd {
    /// Why the router cut the request (a later message too large), if it did; the cut is
    /// logged and counted against `router.max_message_size` here.
    pub(crate) fn cut_short(&self) -> Option<RouterError> {
        let error = self.cut.error()?;
        debug!(method = self.method.name(), backend = %self.session.backend.id(), %error, "call cut");
        self.inner.metrics.limit_rejected(LIMIT_MESSAGE_SIZE);
        Some(error)
    }

    /// Compares the backend's server-side session id in the first response message with the
    /// one seen before: a different one means the backend restarted and lost the session. The
    /// session is then dead and this call ends with an error that says so.
    fn check_backend_session(&self, data: &bytes::Bytes) -> Option<tonic::Status> {
        // Only a whole, uncompressed first message is read; Spark sends small ones first.
        let header = wire::frame_header(data).ok().flatten()?;
        if header.compressed {
            return None;
        }
        let end = wire::GRPC_HEADER_LEN.checked_add(usize::try_from(header.len).ok()?)?;
        let message = data.get(wire::GRPC_HEADER_LEN..end)?;
        let ssid = wire::read_server_side_session_id(self.method, message)
            .ok()
            .flatten()
            .filter(|s| !s.is_empty())?;
        let spark_session = self.spark_session.as_deref().unwrap_or(&self.session.id);
        let first = self.session.check_server_side(spark_session, ssid)?;
        let why = format!(
            "backend '{}' restarted: its server-side session changed from {first} to {ssid}",
            self.session.backend.id()
        );
        if self.session.mark_dead(why.clone()) {
            warn!(session_id = %self.session.id, backend = %self.session.backend.id(), %why, "session is dead");
            self.inner.persist(Change::Put(self.session.record()));
            self.inner
                .metrics
                .session_closed(crate::sessions::CloseReason::Dead.as_str());
        }
        Some(
            RouterError::SessionDead {
                id: self.session.id.clone(),
                why,
            }
            .to_status(),
        )
    }
}
