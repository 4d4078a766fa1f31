//! The gRPC layer: channel setup, per-call metadata, retries, reattachable execution and the
//! server-side session check.
//!
//! Architecture invariant: there is no lock around a request. The tonic client is cloned per
//! call; the only shared mutable state is the observed server-side session id (a short
//! `std::sync::Mutex` section, never held across an `.await`) and the plan-id counter.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::Stream;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use sc_proto::spark::connect as pb;
use sc_proto::spark::connect::spark_connect_service_client::SparkConnectServiceClient;
use tonic::metadata::{AsciiMetadataKey, AsciiMetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Code, Status};

use crate::error::{Error, Result, from_status};

/// The default maximum gRPC message size in each direction (128 MiB), as in PySpark.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 128 * 1024 * 1024;

// === RetryPolicy ===

/// How transient failures (gRPC `UNAVAILABLE`, a dropped cursor) are retried.
///
/// The wait before retry *n* is `initial_backoff * multiplier^n`, capped at `max_backoff`, plus
/// up to `jitter` of random extra time. The defaults follow PySpark's default policy.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// How many times one call is retried before its error is returned (0 disables retries).
    pub max_retries: u32,
    /// The wait before the first retry.
    pub initial_backoff: Duration,
    /// The longest wait between two tries.
    pub max_backoff: Duration,
    /// The factor by which the wait grows after each try.
    pub multiplier: f64,
    /// The most random time added to each wait.
    pub jitter: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 15,
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(60),
            multiplier: 4.0,
            jitter: Duration::from_millis(500),
        }
    }
}

impl RetryPolicy {
    /// A policy that never retries.
    pub fn none() -> Self {
        Self {
            max_retries: 0,
            ..Self::default()
        }
    }

    pub(crate) fn backoff(&self, attempt: u32) -> Duration {
        let base = self.initial_backoff.as_secs_f64() * self.multiplier.powi(attempt as i32);
        let capped = base.min(self.max_backoff.as_secs_f64()).max(0.0);
        let frac = (uuid::Uuid::new_v4().as_u128() % 1000) as f64 / 1000.0;
        Duration::from_secs_f64(capped) + self.jitter.mul_f64(frac)
    }
}

/// Whether a status is worth retrying: the server or network is briefly unavailable, or the
/// server reported a disconnected cursor.
pub(crate) fn is_retriable(status: &Status) -> bool {
    match status.code() {
        Code::Unavailable => true,
        Code::Internal => status.message().contains("INVALID_CURSOR.DISCONNECTED"),
        _ => false,
    }
}

/// Whether a status reports a broken connection rather than an answer from the server: in a
/// reattachable execution these are resumed with ReattachExecute.
pub(crate) fn is_transport_failure(status: &Status) -> bool {
    if is_retriable(status) {
        return true;
    }
    if !matches!(
        status.code(),
        Code::Unknown | Code::Internal | Code::Cancelled
    ) {
        return false;
    }
    let m = status.message();
    [
        "h2 protocol error",
        "transport error",
        "error reading a body",
        "connection reset",
        "broken pipe",
        "connection closed",
    ]
    .iter()
    .any(|p| m.contains(p))
}

// === Headers ===

/// Adds the connection string's extra parameters and the bearer token to every call.
#[derive(Clone, Default)]
pub(crate) struct Headers {
    entries: Arc<Vec<(AsciiMetadataKey, AsciiMetadataValue)>>,
}

impl Headers {
    pub(crate) fn new(pairs: &[(String, String)]) -> Result<Self> {
        let mut entries = Vec::with_capacity(pairs.len());
        for (k, v) in pairs {
            let key =
                AsciiMetadataKey::from_bytes(k.to_ascii_lowercase().as_bytes()).map_err(|_| {
                    Error::InvalidArgument(format!("'{k}' is not a valid gRPC header name"))
                })?;
            let mut value = AsciiMetadataValue::try_from(v.as_str()).map_err(|_| {
                Error::InvalidArgument(format!("the value of header '{k}' is not valid ASCII"))
            })?;
            if k.eq_ignore_ascii_case("authorization") {
                value.set_sensitive(true);
            }
            entries.push((key, value));
        }
        Ok(Self {
            entries: Arc::new(entries),
        })
    }
}

impl Interceptor for Headers {
    fn call(
        &mut self,
        mut req: tonic::Request<()>,
    ) -> std::result::Result<tonic::Request<()>, Status> {
        let md = req.metadata_mut();
        for (k, v) in self.entries.iter() {
            md.insert(k.clone(), v.clone());
        }
        Ok(req)
    }
}

pub(crate) type Grpc = SparkConnectServiceClient<InterceptedService<Channel, Headers>>;

// === Progress ===

/// Progress of a running query, as the server reports it in `ExecutionProgress` responses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    /// The operation this progress belongs to.
    pub operation_id: String,
    /// Tasks of all stages seen so far.
    pub total_tasks: i64,
    /// Completed tasks of all stages seen so far.
    pub completed_tasks: i64,
    /// Bytes read by the stages seen so far.
    pub input_bytes_read: i64,
    /// Tasks running now.
    pub inflight_tasks: i64,
    /// Stages seen so far, and how many are done.
    pub stages: usize,
    /// How many of `stages` are finished.
    pub done_stages: usize,
}

/// A function called with each progress report of a query.
pub type ProgressHandler = Arc<dyn Fn(&Progress) + Send + Sync>;

// === SparkClient ===

/// The state shared by every clone of a client.
pub(crate) struct Shared {
    pub(crate) session_id: String,
    pub(crate) user_context: pb::UserContext,
    pub(crate) client_type: String,
    pub(crate) retry: RetryPolicy,
    /// The largest message sent or accepted, in bytes.
    pub(crate) max_message_size: usize,
    pub(crate) server_side_session_id: Mutex<Option<String>>,
    pub(crate) stopped: AtomicBool,
    pub(crate) plan_ids: AtomicI64,
    pub(crate) progress_handlers: RwLock<Vec<ProgressHandler>>,
    pub(crate) tags: RwLock<Vec<String>>,
    pub(crate) reattaches: AtomicU64,
    /// The DataFrames subquery expressions of this session refer to.
    pub(crate) subqueries: crate::subquery::SubqueryPlans,
    /// The observations waiting for metrics from this session's executions.
    pub(crate) observations: crate::observation::Observations,
    /// The streaming query listener events call, while someone listens.
    pub(crate) listener_bus: crate::streaming::ListenerBus,
    /// What else `stop` ends (a managed proxy session deletes itself on the control plane).
    pub(crate) on_stop: crate::control::StopHook,
}

impl Shared {
    /// The state of a session that has made no call yet.
    pub(crate) fn new(
        session_id: String,
        user_context: pb::UserContext,
        client_type: String,
        retry: RetryPolicy,
        max_message_size: usize,
    ) -> Shared {
        Shared {
            session_id,
            user_context,
            client_type,
            retry,
            max_message_size,
            server_side_session_id: Mutex::new(None),
            stopped: AtomicBool::new(false),
            plan_ids: AtomicI64::new(0),
            progress_handlers: RwLock::new(Vec::new()),
            tags: RwLock::new(Vec::new()),
            reattaches: AtomicU64::new(0),
            subqueries: Default::default(),
            observations: Default::default(),
            listener_bus: Default::default(),
            on_stop: Default::default(),
        }
    }

    /// The state of another session on the same connection, with the same settings: a fresh
    /// plan-id counter, no tags, handlers, subqueries or observations.
    pub(crate) fn fork(&self, session_id: String) -> Shared {
        Shared::new(
            session_id,
            self.user_context.clone(),
            self.client_type.clone(),
            self.retry.clone(),
            self.max_message_size,
        )
    }
}

/// A cheap-to-clone handle on the gRPC service, with the session's identity.
#[derive(Clone)]
pub(crate) struct SparkClient {
    pub(crate) grpc: Grpc,
    pub(crate) shared: Arc<Shared>,
}

impl SparkClient {
    pub(crate) fn new(grpc: Grpc, shared: Shared) -> Self {
        Self {
            grpc,
            shared: Arc::new(shared),
        }
    }

    pub(crate) fn session_id(&self) -> &str {
        &self.shared.session_id
    }

    pub(crate) fn next_plan_id(&self) -> i64 {
        self.shared.plan_ids.fetch_add(1, Ordering::Relaxed)
    }

    fn observed_ssid(&self) -> Option<String> {
        self.shared
            .server_side_session_id
            .lock()
            .ok()
            .and_then(|g| g.clone())
    }

    /// Remembers the first server-side session id; fails if a later response carries another.
    pub(crate) fn check_ssid(&self, observed: &str) -> Result<()> {
        if observed.is_empty() {
            return Ok(());
        }
        let Ok(mut guard) = self.shared.server_side_session_id.lock() else {
            return Ok(());
        };
        match guard.as_deref() {
            None => {
                *guard = Some(observed.to_string());
                Ok(())
            }
            Some(expected) if expected == observed => Ok(()),
            Some(expected) => Err(Error::SessionChanged {
                expected: expected.to_string(),
                observed: observed.to_string(),
            }),
        }
    }

    /// Refuses a request larger than the message limit before it is sent: the transport would
    /// only report a broken HTTP/2 stream.
    fn check_size(&self, request: &impl prost::Message) -> Result<()> {
        let size = request.encoded_len();
        let limit = self.shared.max_message_size;
        if size > limit {
            return Err(Error::MessageTooLarge { size, limit });
        }
        Ok(())
    }

    fn ensure_running(&self) -> Result<()> {
        if self.shared.stopped.load(Ordering::Acquire) {
            Err(Error::SessionStopped)
        } else {
            Ok(())
        }
    }

    /// Runs a unary call with retries; converts errors, fetching Spark error details.
    async fn unary<Req, Resp, F, Fut>(&self, req: Req, call: F) -> Result<Resp>
    where
        Req: Clone,
        F: Fn(Grpc, Req) -> Fut,
        Fut: Future<Output = std::result::Result<tonic::Response<Resp>, Status>>,
    {
        self.ensure_running()?;
        let mut attempt = 0;
        loop {
            // Boxed: a tonic call's future is tens of KiB, and every async API method that
            // awaits one would otherwise carry it inline (deep enough to overflow a 2 MiB
            // stack in a debug build of a caller that awaits many of them).
            match Box::pin(call(self.grpc.clone(), req.clone())).await {
                Ok(resp) => return Ok(resp.into_inner()),
                Err(status) if is_retriable(&status) && attempt < self.shared.retry.max_retries => {
                    let wait = self.shared.retry.backoff(attempt);
                    tracing::debug!(code = ?status.code(), attempt, ?wait, "retrying call");
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                Err(status) => return Err(self.convert_status(&status).await),
            }
        }
    }

    /// Converts a status into an error, enriched with FetchErrorDetails when the server gave
    /// an error id.
    pub(crate) async fn convert_status(&self, status: &Status) -> Error {
        let mut err = from_status(status);
        if let Error::Spark(spark) = &mut err
            && let Some(error_id) = spark.error_id.clone()
        {
            let req = pb::FetchErrorDetailsRequest {
                session_id: self.shared.session_id.clone(),
                client_observed_server_side_session_id: self.observed_ssid(),
                user_context: Some(self.shared.user_context.clone()),
                error_id,
                client_type: Some(self.shared.client_type.clone()),
            };
            let mut grpc = self.grpc.clone();
            match Box::pin(grpc.fetch_error_details(req)).await {
                Ok(details) => spark.apply_details(details.get_ref()),
                Err(e) => tracing::debug!(error = %e, "fetching error details failed"),
            }
        }
        err
    }

    // === unary RPCs ===

    pub(crate) async fn analyze(
        &self,
        analyze: pb::analyze_plan_request::Analyze,
    ) -> Result<pb::analyze_plan_response::Result> {
        // Boxed: the request is a few KiB (its oneof keeps every variant inline), and the retry
        // loop holds copies of it.
        let req = Box::new(pb::AnalyzePlanRequest {
            session_id: self.shared.session_id.clone(),
            client_observed_server_side_session_id: self.observed_ssid(),
            user_context: Some(self.shared.user_context.clone()),
            client_type: Some(self.shared.client_type.clone()),
            analyze: Some(analyze),
        });
        self.check_size(req.as_ref())?;
        let resp = self
            .unary(req, |mut g, r| async move { g.analyze_plan(*r).await })
            .await?;
        self.check_ssid(&resp.server_side_session_id)?;
        resp.result
            .ok_or_else(|| Error::Protocol("AnalyzePlan returned no result".into()))
    }

    pub(crate) async fn config(
        &self,
        op: pb::config_request::operation::OpType,
    ) -> Result<pb::ConfigResponse> {
        let req = pb::ConfigRequest {
            session_id: self.shared.session_id.clone(),
            client_observed_server_side_session_id: self.observed_ssid(),
            user_context: Some(self.shared.user_context.clone()),
            operation: Some(pb::config_request::Operation { op_type: Some(op) }),
            client_type: Some(self.shared.client_type.clone()),
        };
        let resp = self
            .unary(req, |mut g, r| async move { g.config(r).await })
            .await?;
        self.check_ssid(&resp.server_side_session_id)?;
        Ok(resp)
    }

    pub(crate) async fn interrupt(
        &self,
        kind: pb::interrupt_request::InterruptType,
        target: Option<pb::interrupt_request::Interrupt>,
    ) -> Result<Vec<String>> {
        let req = pb::InterruptRequest {
            session_id: self.shared.session_id.clone(),
            client_observed_server_side_session_id: self.observed_ssid(),
            user_context: Some(self.shared.user_context.clone()),
            client_type: Some(self.shared.client_type.clone()),
            interrupt_type: kind as i32,
            interrupt: target,
        };
        let resp = self
            .unary(req, |mut g, r| async move { g.interrupt(r).await })
            .await?;
        self.check_ssid(&resp.server_side_session_id)?;
        Ok(resp.interrupted_ids)
    }

    pub(crate) async fn clone_session(
        &self,
        new_session_id: Option<String>,
    ) -> Result<pb::CloneSessionResponse> {
        let req = pb::CloneSessionRequest {
            session_id: self.shared.session_id.clone(),
            client_observed_server_side_session_id: self.observed_ssid(),
            user_context: Some(self.shared.user_context.clone()),
            client_type: Some(self.shared.client_type.clone()),
            new_session_id,
        };
        let resp = self
            .unary(req, |mut g, r| async move { g.clone_session(r).await })
            .await?;
        self.check_ssid(&resp.server_side_session_id)?;
        Ok(resp)
    }

    pub(crate) async fn release_session(&self) -> Result<()> {
        let req = pb::ReleaseSessionRequest {
            session_id: self.shared.session_id.clone(),
            user_context: Some(self.shared.user_context.clone()),
            client_type: Some(self.shared.client_type.clone()),
            allow_reconnect: false,
        };
        self.unary(req, |mut g, r| async move { g.release_session(r).await })
            .await?;
        Ok(())
    }

    pub(crate) async fn add_artifacts(
        &self,
        requests: Vec<pb::AddArtifactsRequest>,
    ) -> Result<pb::AddArtifactsResponse> {
        self.unary(requests, |mut g, r| async move {
            g.add_artifacts(futures_util::stream::iter(r)).await
        })
        .await
    }

    /// Which of the named artifacts the server already holds (ArtifactStatus).
    pub(crate) async fn artifact_status(
        &self,
        names: Vec<String>,
    ) -> Result<std::collections::HashMap<String, bool>> {
        let req = pb::ArtifactStatusesRequest {
            session_id: self.shared.session_id.clone(),
            client_observed_server_side_session_id: self.observed_ssid(),
            user_context: Some(self.shared.user_context.clone()),
            client_type: Some(self.shared.client_type.clone()),
            names,
        };
        let resp = self
            .unary(req, |mut g, r| async move { g.artifact_status(r).await })
            .await?;
        self.check_ssid(&resp.server_side_session_id)?;
        Ok(resp
            .statuses
            .into_iter()
            .map(|(name, status)| (name, status.exists))
            .collect())
    }

    pub(crate) fn artifact_request(
        &self,
        payload: pb::add_artifacts_request::Payload,
    ) -> pb::AddArtifactsRequest {
        pb::AddArtifactsRequest {
            session_id: self.shared.session_id.clone(),
            user_context: Some(self.shared.user_context.clone()),
            client_observed_server_side_session_id: self.observed_ssid(),
            client_type: Some(self.shared.client_type.clone()),
            payload: Some(payload),
        }
    }

    fn release_execute(&self, operation_id: String, release: pb::release_execute_request::Release) {
        let req = pb::ReleaseExecuteRequest {
            session_id: self.shared.session_id.clone(),
            client_observed_server_side_session_id: self.observed_ssid(),
            user_context: Some(self.shared.user_context.clone()),
            operation_id,
            client_type: Some(self.shared.client_type.clone()),
            release: Some(release),
        };
        let mut grpc = self.grpc.clone();
        // Fire and forget: releasing only frees server memory early, the server also cleans up
        // abandoned operations itself.
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                if let Err(e) = grpc.release_execute(req).await {
                    tracing::debug!(error = %e, "release execute failed");
                }
            });
        }
    }

    // === ExecutePlan ===

    /// Starts a reattachable execution of `plan`; the returned stream yields every response,
    /// reattaching transparently when the server cuts the stream or the network drops.
    pub(crate) fn execute(&self, plan: pb::Plan) -> Result<ExecuteStream> {
        self.ensure_running()?;
        let operation_id = uuid::Uuid::new_v4().to_string();
        let tags = self
            .shared
            .tags
            .read()
            .map(|t| t.clone())
            .unwrap_or_default();
        let request = pb::ExecutePlanRequest {
            session_id: self.shared.session_id.clone(),
            client_observed_server_side_session_id: self.observed_ssid(),
            user_context: Some(self.shared.user_context.clone()),
            operation_id: Some(operation_id.clone()),
            plan: Some(plan),
            client_type: Some(self.shared.client_type.clone()),
            request_options: vec![pb::execute_plan_request::RequestOption {
                request_option: Some(
                    pb::execute_plan_request::request_option::RequestOption::ReattachOptions(
                        pb::ReattachOptions { reattachable: true },
                    ),
                ),
            }],
            tags,
        };
        self.check_size(&request)?;
        let done = Arc::new(AtomicBool::new(false));
        let state = ExecState {
            client: self.clone(),
            original: request.clone(),
            request: Some(request),
            operation_id: operation_id.clone(),
            last_response_id: None,
            stream: None,
            finished: false,
            attempt: 0,
            empty_ends: 0,
            done: done.clone(),
        };
        let inner = futures_util::stream::unfold(state, ExecState::next).boxed();
        Ok(ExecuteStream {
            inner,
            guard: ReleaseGuard {
                client: self.clone(),
                operation_id,
                done,
            },
        })
    }

    pub(crate) fn report_progress(
        &self,
        operation_id: &str,
        p: &pb::execute_plan_response::ExecutionProgress,
    ) {
        let Ok(handlers) = self.shared.progress_handlers.read() else {
            return;
        };
        if handlers.is_empty() {
            return;
        }
        let progress = Progress {
            operation_id: operation_id.to_string(),
            total_tasks: p.stages.iter().map(|s| s.num_tasks).sum(),
            completed_tasks: p.stages.iter().map(|s| s.num_completed_tasks).sum(),
            input_bytes_read: p.stages.iter().map(|s| s.input_bytes_read).sum(),
            inflight_tasks: p.num_inflight_tasks,
            stages: p.stages.len(),
            done_stages: p.stages.iter().filter(|s| s.done).count(),
        };
        for h in handlers.iter() {
            h(&progress);
        }
    }
}

/// The responses of one execution. Dropping it before the end releases the execution on the
/// server.
pub(crate) struct ExecuteStream {
    inner: BoxStream<'static, Result<pb::ExecutePlanResponse>>,
    guard: ReleaseGuard,
}

impl ExecuteStream {
    pub(crate) fn operation_id(&self) -> &str {
        &self.guard.operation_id
    }
}

impl Stream for ExecuteStream {
    type Item = Result<pb::ExecutePlanResponse>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.poll_next_unpin(cx)
    }
}

struct ReleaseGuard {
    client: SparkClient,
    operation_id: String,
    done: Arc<AtomicBool>,
}

impl Drop for ReleaseGuard {
    fn drop(&mut self) {
        if !self.done.swap(true, Ordering::AcqRel) {
            tracing::debug!(operation_id = %self.operation_id, "releasing an unfinished execution");
            self.client.release_execute(
                self.operation_id.clone(),
                pb::release_execute_request::Release::ReleaseAll(
                    pb::release_execute_request::ReleaseAll {},
                ),
            );
        }
    }
}

struct ExecState {
    client: SparkClient,
    /// The ExecutePlan request, until the server has certainly received it.
    request: Option<pb::ExecutePlanRequest>,
    /// The request as first built, to resend if the server never saw it.
    original: pb::ExecutePlanRequest,
    operation_id: String,
    last_response_id: Option<String>,
    stream: Option<tonic::Streaming<pb::ExecutePlanResponse>>,
    finished: bool,
    attempt: u32,
    /// Streams in a row that ended cleanly without a new response (one with a response id not
    /// seen before): a server that keeps doing that is answered with backoff and, past the retry
    /// limit, an error, never a busy loop.
    empty_ends: u32,
    done: Arc<AtomicBool>,
}

impl ExecState {
    async fn open(
        &mut self,
    ) -> std::result::Result<tonic::Streaming<pb::ExecutePlanResponse>, Status> {
        let mut grpc = self.client.grpc.clone();
        if let Some(req) = &self.request {
            return grpc.execute_plan(req.clone()).await.map(|r| r.into_inner());
        }
        self.client
            .shared
            .reattaches
            .fetch_add(1, Ordering::Relaxed);
        tracing::debug!(operation_id = %self.operation_id, last = ?self.last_response_id, "reattaching");
        let req = pb::ReattachExecuteRequest {
            session_id: self.client.shared.session_id.clone(),
            client_observed_server_side_session_id: self.client.observed_ssid(),
            user_context: Some(self.client.shared.user_context.clone()),
            operation_id: self.operation_id.clone(),
            client_type: Some(self.client.shared.client_type.clone()),
            last_response_id: self.last_response_id.clone(),
        };
        grpc.reattach_execute(req).await.map(|r| r.into_inner())
    }

    async fn fail(mut self, status: Status) -> Option<(Result<pb::ExecutePlanResponse>, Self)> {
        self.finished = true;
        let err = self.client.convert_status(&status).await;
        Some((Err(err), self))
    }

    async fn next(mut self) -> Option<(Result<pb::ExecutePlanResponse>, Self)> {
        loop {
            if self.finished {
                return None;
            }
            if self.stream.is_none() {
                match self.open().await {
                    Ok(s) => self.stream = Some(s),
                    Err(status) => {
                        let msg = status.message();
                        if self.request.is_none()
                            && self.last_response_id.is_none()
                            && msg.contains("INVALID_HANDLE.OPERATION_NOT_FOUND")
                        {
                            // The first ExecutePlan never reached the server: send it again.
                            if self.attempt < self.client.shared.retry.max_retries {
                                self.attempt += 1;
                                self.request = Some(self.original.clone());
                                continue;
                            }
                            return self.fail(status).await;
                        }
                        if self.request.is_some()
                            && msg.contains("INVALID_HANDLE.OPERATION_ALREADY_EXISTS")
                        {
                            // An earlier try did reach the server: reattach to it.
                            self.request = None;
                            continue;
                        }
                        if is_retriable(&status)
                            && self.attempt < self.client.shared.retry.max_retries
                        {
                            let wait = self.client.shared.retry.backoff(self.attempt);
                            self.attempt += 1;
                            tokio::time::sleep(wait).await;
                            continue;
                        }
                        return self.fail(status).await;
                    }
                }
            }
            let Some(stream) = self.stream.as_mut() else {
                continue;
            };
            match stream.message().await {
                Ok(Some(resp)) => {
                    // The server has the operation now: later tries reattach.
                    self.request = None;
                    self.attempt = 0;
                    if !resp.response_id.is_empty()
                        && self.last_response_id.as_deref() != Some(resp.response_id.as_str())
                    {
                        self.empty_ends = 0;
                    }
                    if let Err(e) = self.client.check_ssid(&resp.server_side_session_id) {
                        self.finished = true;
                        return Some((Err(e), self));
                    }
                    if !resp.response_id.is_empty() {
                        self.last_response_id = Some(resp.response_id.clone());
                    }
                    if let Some(pb::execute_plan_response::ResponseType::ExecutionProgress(p)) =
                        &resp.response_type
                    {
                        self.client.report_progress(&self.operation_id, p);
                    }
                    if !resp.observed_metrics.is_empty() {
                        self.client
                            .shared
                            .observations
                            .deliver(&resp.observed_metrics);
                    }
                    if matches!(
                        resp.response_type,
                        Some(pb::execute_plan_response::ResponseType::ResultComplete(_))
                    ) {
                        self.finished = true;
                        self.done.store(true, Ordering::Release);
                        self.client.release_execute(
                            self.operation_id.clone(),
                            pb::release_execute_request::Release::ReleaseAll(
                                pb::release_execute_request::ReleaseAll {},
                            ),
                        );
                    } else if matches!(
                        resp.response_type,
                        Some(pb::execute_plan_response::ResponseType::ArrowBatch(_))
                    ) && !resp.response_id.is_empty()
                    {
                        // Let the server drop what we already have.
                        self.client.release_execute(
                            self.operation_id.clone(),
                            pb::release_execute_request::Release::ReleaseUntil(
                                pb::release_execute_request::ReleaseUntil {
                                    response_id: resp.response_id.clone(),
                                },
                            ),
                        );
                    }
                    return Some((Ok(resp), self));
                }
                Ok(None) => {
                    // The stream ended without ResultComplete: the server cut it on purpose
                    // (stream duration or size limit). Reattach.
                    self.stream = None;
                    if self.request.is_some() {
                        // Not even one response: nothing says the server knows the operation;
                        // reattach anyway, ExecutePlan would fail with "already exists".
                        self.request = None;
                    }
                    let limit = self.client.shared.retry.max_retries;
                    match self.empty_ends {
                        0 => {}
                        n if n >= limit => {
                            self.finished = true;
                            self.done.store(true, Ordering::Release);
                            let err = Error::Protocol(format!(
                                "the server ended the stream of operation {} {} times in a row without a new response or ResultComplete; giving up",
                                self.operation_id,
                                n + 1
                            ));
                            return Some((Err(err), self));
                        }
                        n => tokio::time::sleep(self.client.shared.retry.backoff(n - 1)).await,
                    }
                    self.empty_ends += 1;
                }
                Err(status) => {
                    self.stream = None;
                    if is_transport_failure(&status)
                        && self.attempt < self.client.shared.retry.max_retries
                    {
                        let wait = self.client.shared.retry.backoff(self.attempt);
                        self.attempt += 1;
                        tracing::debug!(code = ?status.code(), ?wait, "execution stream broke, reattaching");
                        tokio::time::sleep(wait).await;
                        continue;
                    }
                    self.done.store(true, Ordering::Release);
                    return self.fail(status).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_caps() {
        let p = RetryPolicy {
            jitter: Duration::ZERO,
            ..RetryPolicy::default()
        };
        assert_eq!(p.backoff(0), Duration::from_millis(50));
        assert_eq!(p.backoff(1), Duration::from_millis(200));
        assert_eq!(p.backoff(20), Duration::from_secs(60));
    }

    #[test]
    fn retriable_codes() {
        assert!(is_retriable(&Status::unavailable("x")));
        assert!(is_retriable(&Status::internal(
            "INVALID_CURSOR.DISCONNECTED"
        )));
        assert!(!is_retriable(&Status::internal("boom")));
        assert!(!is_retriable(&Status::invalid_argument("x")));
        assert!(is_transport_failure(&Status::unknown(
            "h2 protocol error: error reading a body from connection"
        )));
        assert!(!is_transport_failure(&Status::unknown("AnalysisException")));
    }
}
