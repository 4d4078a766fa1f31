//! The tower service that handles every `spark.connect.SparkConnectService` call.
//!
//! One call reads as a straight line: read the first message, find the session (or bind a new
//! one), forward to its backend, and watch the response on its way back.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use http::HeaderMap;
use prost::Message as _;
use sc_backend_api::{Identity, StartRequest};
use sc_proto::RpcMethod;
use sc_proto::spark::connect as pb;
use sc_proto::wire::{self, RequestFields};
use tonic::body::Body;
use tonic::server::NamedService;
use tower::{Service, ServiceExt as _};
use tracing::{debug, info, warn};

use crate::error::code_name;
use crate::forward::{self, Cut, Downstream, Observer, Upstream};
use crate::metrics::{LIMIT_FIRST_MESSAGE_TIMEOUT, LIMIT_MESSAGE_SIZE};
use crate::registry::{Session, SessionKind};
use crate::{Inner, RouterError};
use sc_store::{Change, OperationRecord, RecordKind};

/// The request header that names a control-plane session.
pub const SESSION_HEADER: &str = "x-spark-connect-session-id";

/// Headers that belong to one hop (or to the proxy) and are never forwarded to a backend.
const HOP_HEADERS: [&str; 7] = [
    SESSION_HEADER,
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
    "host",
];

/// The Spark Connect router as a tower service over HTTP/2 requests.
///
/// Mount it in a tonic server with `Server::builder().add_service(router.service())`, or in axum
/// with `Router::new().route_service("/spark.connect.SparkConnectService/{*method}", svc)`.
/// It never fails at the service level: every error becomes a gRPC status in the response.
#[derive(Clone)]
pub struct RouterService {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for RouterService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouterService").finish_non_exhaustive()
    }
}

impl NamedService for RouterService {
    const NAME: &'static str = sc_proto::SERVICE_NAME;
}

impl<B> Service<http::Request<B>> for RouterService
where
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let inner = self.inner.clone();
        let request = request.map(Body::new);
        Box::pin(async move {
            let method = RpcMethod::from_path(request.uri().path()).unwrap_or(RpcMethod::Other);
            match inner.clone().handle(method, request).await {
                Ok(response) => Ok(response),
                Err(error) => {
                    let status = error.to_status();
                    if let Some(limit) = limit_of(&error) {
                        inner.metrics.limit_rejected(limit);
                    }
                    // Backend failures are counted per backend in `calls` by `CallEnd`.
                    if !matches!(error, RouterError::BackendUnavailable { .. }) {
                        debug!(method = method.name(), code = ?status.code(), %error, "call rejected");
                        inner
                            .metrics
                            .call_rejected(method.name(), code_name(status.code() as i32));
                    }
                    Ok(status.into_http())
                }
            }
        })
    }
}

/// The configured limit that refused a call, as labelled in `sc_proxy_limit_rejections_total`
/// (`None` for errors that are not a limit's).
fn limit_of(error: &RouterError) -> Option<&'static str> {
    match error {
        RouterError::LimitExceeded { limit, .. } => Some(*limit),
        RouterError::MessageTooLarge { .. } => Some(LIMIT_MESSAGE_SIZE),
        RouterError::FirstMessageTimeout(_) => Some(LIMIT_FIRST_MESSAGE_TIMEOUT),
        _ => None,
    }
}

/// Where a call goes.
enum Target {
    Session(Arc<Session>),
    /// A call that only acts on existing state (release, interrupt, error details) for a session
    /// the proxy does not know (released, or never used): answered by the proxy, so that it does
    /// not bind the session again.
    Unbound,
}

impl Inner {
    async fn handle(
        self: Arc<Self>,
        method: RpcMethod,
        request: http::Request<Body>,
    ) -> Result<http::Response<Body>, RouterError> {
        let (mut parts, mut body) = request.into_parts();
        let identity = parts.extensions.remove::<Identity>();
        let limit = self.settings.first_message_timeout;
        let head = tokio::time::timeout(
            limit,
            forward::read_head(&mut body, self.settings.max_message_size),
        )
        .await
        .map_err(|_| RouterError::FirstMessageTimeout(limit))??;
        let mut scratch = Vec::new();
        let message = forward::readable(
            &head,
            &parts.headers,
            self.settings.max_message_size,
            &mut scratch,
        )?;
        let fields = wire::read_request_fields(method, message)?;
        // Later messages whose prefix came with the first are checked now, the rest as they pass.
        let later_messages = head.later_messages(self.settings.max_message_size)?;
        let mut caller = Caller::new(identity.as_ref(), &fields, self.admin_group.as_deref());
        caller.peer = peer_addr(&parts.extensions);
        let permit = if self.limiter.enabled() {
            Some(self.limiter.admit_call(caller.limit_key())?)
        } else {
            None
        };

        let session = match self
            .find_session(method, &parts.headers, &fields, &caller)
            .await?
        {
            Target::Session(session) => session,
            Target::Unbound => return answer_unbound(method, &fields),
        };
        self.note_call(method, &fields, &session, &caller);
        // Control sessions may carry several Spark sessions; a bound one is its Spark session.
        let spark_session = match session.kind {
            SessionKind::Control => fields.session_id.map(str::to_owned),
            SessionKind::Bound => None,
        };
        let release = (method == RpcMethod::ReleaseSession).then(|| release_key(&fields, &caller));
        // With authentication on, Spark sees the verified user, never the one the client claims.
        let rewritten = match &identity {
            Some(id) if fields.user_id != Some(&id.user) || fields.user_name != Some(&id.user) => {
                Some(wire::with_user(message, &id.user, &id.user)?)
            }
            _ => None,
        };
        let head = match rewritten {
            Some(message) => {
                // The body changes length: a length the client announced no longer holds.
                parts.headers.remove(http::header::CONTENT_LENGTH);
                head.replace_first_message(&message)
            }
            None => head,
        };

        for name in HOP_HEADERS {
            parts.headers.remove(name);
        }
        // The client's credentials are for the proxy, never for a backend: a backend gets its
        // own token, or none.
        parts.headers.remove(http::header::AUTHORIZATION);
        let backend = session.backend.clone();
        if let Some(token) = &backend.authorization {
            parts
                .headers
                .insert(http::header::AUTHORIZATION, token.clone());
        }
        // Set if a later message of the request is too large: the call is then cut.
        let cut = Arc::new(Cut::default());
        let upstream = Upstream::new(
            head,
            body,
            later_messages,
            cut.clone(),
            backend.metrics.bytes_to_backend.clone(),
            session.stats.clone(),
        );
        let request = http::Request::from_parts(parts, Body::new(upstream));

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
        let mut call = CallEnd {
            inner: self.clone(),
            session,
            method,
            release,
            spark_session,
            started: std::time::Instant::now(),
            cut,
            _permit: permit,
        };
        let sent = match &backend.direct {
            Some(direct) => direct.send(request).await,
            None => backend
                .channel
                .clone()
                .oneshot(request)
                .await
                .map_err(|e| transport_reason(&e)),
        };
        let response = match sent {
            Ok(response) => response,
            Err(reason) => {
                if let Some(error) = call.cut_short() {
                    // Before the backend answered: the client learns why, and the backend is
                    // not at fault.
                    call.finish(Some(error.code() as i32));
                    return Ok(error.to_status().into_http());
                }
                crate::health::mark_unreachable(&self.settings.health, &backend, &reason);
                let error = backend.unavailable(reason);
                warn!(backend = %backend.id(), %error, "backend call failed");
                call.finish(Some(tonic::Code::Unavailable as i32));
                return Err(error);
            }
        };
        let (mut parts, body) = response.into_parts();
        // A status in the headers means a trailers-only response (an error): no message to redact.
        let code = forward::grpc_status(&parts.headers);
        let body =
            if method == RpcMethod::Config && backend.authorization.is_some() && code.is_none() {
                // The body changes length: a length the backend announced no longer holds.
                parts.headers.remove(http::header::CONTENT_LENGTH);
                forward::redact_config(body, self.settings.max_message_size).await
            } else {
                body
            };
        let body = Downstream::new(body, backend.metrics.bytes_to_client.clone(), code, call);
        Ok(http::Response::from_parts(parts, Body::new(body)))
    }

    /// Finds the session a call belongs to, binding a new header-less session on first sight.
    async fn find_session(
        &self,
        method: RpcMethod,
        headers: &HeaderMap,
        fields: &RequestFields<'_>,
        caller: &Caller<'_>,
    ) -> Result<Target, RouterError> {
        if let Some(value) = headers.get(SESSION_HEADER) {
            let id = value.to_str().map_err(|_| RouterError::InvalidHeader {
                name: SESSION_HEADER,
                why: "it is not visible ASCII".into(),
            })?;
            let id = id.trim();
            let session = match self.registry.control(id) {
                Some(session) if self.revalidate(&session).await? => Some(session),
                _ => self.fetch(RecordKind::Control, id).await?,
            };
            let Some(session) = session else {
                return Err(self
                    .closed(id, caller)
                    .unwrap_or_else(|| RouterError::SessionNotFound(id.to_owned())));
            };
            caller.may_use(&session)?;
            if let Some(spark_session) = fields.session_id
                && session.note_spark_session(caller.user, spark_session)
            {
                self.persist(Change::Put(session.record()));
            }
            return self.usable(method, session).await;
        }

        let session_id = fields.session_id.ok_or(RouterError::MissingSessionId)?;
        let known = match self.registry.bound(session_id) {
            Some(session) if self.revalidate(&session).await? => Some(session),
            _ => self.fetch(RecordKind::Bound, session_id).await?,
        };
        if let Some(session) = known {
            caller.may_use(&session)?;
            return self.usable(method, session).await;
        }
        if let Some(op) = fields.operation_id {
            let session = match self.registry.operation(op) {
                Some(session) => Some(session),
                None => self.fetch_operation(op).await?,
            };
            if let Some(session) = session {
                caller.may_use(&session)?;
                return self.usable(method, session).await;
            }
        }
        if !starts_sessions(method) {
            return Ok(Target::Unbound);
        }
        if let Some(error) = self.closed(session_id, caller) {
            return Err(error);
        }

        self.limiter.admit_session(caller.limit_key())?;
        let placed = self
            .place(&StartRequest {
                user: caller.user.map(str::to_owned),
                session_id: Some(session_id.to_owned()),
                identity: caller.identity.cloned(),
            })
            .await;
        let backend = match placed {
            Ok(backend) => backend,
            Err(e) => {
                self.limiter.session_closed(caller.limit_key());
                return Err(e);
            }
        };
        let mut fresh = Arc::new(Session::new(
            session_id.to_owned(),
            SessionKind::Bound,
            caller.user.map(str::to_owned),
            backend,
        ));
        if let Some(store) = self.store.as_ref().filter(|s| s.shared()) {
            // A shared store decides the first binding: of two replicas racing on one new
            // session, both take the record that got there first.
            match store.create(&fresh.record()).await {
                Ok(winner) if winner.backend_id != fresh.backend.id().as_str() => {
                    fresh = self.materialize(&winner);
                }
                Ok(_) => {}
                Err(e) => {
                    self.limiter.session_closed(caller.limit_key());
                    return Err(e.into());
                }
            }
        }
        let session = self.registry.bind(fresh.clone());
        if !Arc::ptr_eq(&session, &fresh) {
            // Another call bound it first; this one's slot is not needed.
            self.limiter.session_closed(caller.limit_key());
        } else {
            if self.store.as_ref().is_some_and(|s| !s.shared()) {
                // A store of this process alone: written behind, within milliseconds, so
                // binding costs no transaction on the request path.
                self.persist(Change::Put(session.record()));
            }
            info!(target: "audit", event = "session_create", kind = "bound", session_id, user = caller.user.unwrap_or(""), peer = %peer_text(caller.peer), backend = %session.backend.id(), "session bound");
        }
        self.usable(method, session).await
    }

    /// The answer for a session the proxy closed lately (`None` if it closed none by that id):
    /// why, for its owner (or an admin) only. Anyone else gets the PERMISSION_DENIED a live
    /// session of another user gets, and learns nothing of it.
    fn closed(&self, id: &str, caller: &Caller<'_>) -> Option<RouterError> {
        let tombstone = self.registry.tombstone(id)?;
        Some(
            match caller.may_access(id, tombstone.kind, tombstone.owner.as_deref()) {
                Ok(()) => RouterError::SessionClosed {
                    id: id.to_owned(),
                    why: tombstone.why,
                },
                Err(denied) => denied,
            },
        )
    }

    /// A found session, unless it is dead: then the client learns why, and a release of it is
    /// answered here (there is nothing left on the backend to release).
    async fn usable(
        &self,
        method: RpcMethod,
        session: Arc<Session>,
    ) -> Result<Target, RouterError> {
        let Some(why) = session.dead_reason() else {
            return Ok(Target::Session(session));
        };
        match method {
            RpcMethod::ReleaseSession => {
                self.close(&session, "dead").await;
                Ok(Target::Unbound)
            }
            RpcMethod::ReleaseExecute => Ok(Target::Unbound),
            _ => Err(RouterError::SessionDead {
                id: session.id.clone(),
                why: why.to_owned(),
            }),
        }
    }

    /// Keeps the operation index and CloneSession bindings up to date.
    fn note_call(
        &self,
        method: RpcMethod,
        fields: &RequestFields<'_>,
        session: &Arc<Session>,
        caller: &Caller<'_>,
    ) {
        match method {
            RpcMethod::ExecutePlan => {
                if let Some(op) = fields.operation_id
                    && self.registry.add_operation(op, session)
                    && self.store.is_some()
                {
                    self.persist(Change::PutOperation(
                        op.to_owned(),
                        OperationRecord {
                            kind: session.record_kind(),
                            session_id: session.id.clone(),
                        },
                    ));
                }
            }
            RpcMethod::ReleaseExecute if fields.release_all => {
                if let Some(op) = fields.operation_id {
                    self.registry.remove_operation(op);
                    self.persist(Change::RemoveOperation(op.to_owned()));
                }
            }
            RpcMethod::CloneSession => {
                if let Some(new_id) = fields.new_session_id {
                    match session.kind {
                        SessionKind::Control => {
                            if session.note_spark_session(caller.user, new_id) {
                                self.persist(Change::Put(session.record()));
                            }
                        }
                        SessionKind::Bound => {
                            let clone = Arc::new(Session::new(
                                new_id.to_owned(),
                                SessionKind::Bound,
                                caller.user.map(str::to_owned),
                                session.backend.clone(),
                            ));
                            let bound = self.registry.bind(clone.clone());
                            if Arc::ptr_eq(&bound, &clone) {
                                self.persist(Change::Put(clone.record()));
                            }
                        }
                    }
                }
            }
            _ => {}
        }
    }

    /// A ReleaseSession answered OK: the session is gone on the backend.
    async fn released(&self, session: &Arc<Session>, key: &(Option<String>, Option<String>)) {
        match session.kind {
            SessionKind::Bound => {
                self.close(session, "released").await;
            }
            SessionKind::Control => {
                if let Some(spark_session) = &key.1
                    && session.forget_spark_session(key.0.as_deref(), spark_session)
                {
                    self.persist(Change::Put(session.record()));
                }
            }
        }
    }
}

fn release_key(
    fields: &RequestFields<'_>,
    caller: &Caller<'_>,
) -> (Option<String>, Option<String>) {
    (
        caller.user.map(str::to_owned),
        fields.session_id.map(str::to_owned),
    )
}

/// Who makes a call: the verified identity when authentication is on, else the `user_id` the
/// request claims.
pub(crate) struct Caller<'a> {
    identity: Option<&'a Identity>,
    user: Option<&'a str>,
    admin: bool,
    /// Where the call came from, for the audit log.
    peer: Option<std::net::SocketAddr>,
}

/// The client's address, from the connection info tonic's server attaches to each request.
fn peer_addr(extensions: &http::Extensions) -> Option<std::net::SocketAddr> {
    use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
    extensions
        .get::<TcpConnectInfo>()
        .and_then(TcpConnectInfo::remote_addr)
        .or_else(|| {
            extensions
                .get::<TlsConnectInfo<TcpConnectInfo>>()
                .and_then(|tls| tls.get_ref().remote_addr())
        })
}

impl<'a> Caller<'a> {
    fn new(
        identity: Option<&'a Identity>,
        fields: &RequestFields<'a>,
        admin_group: Option<&str>,
    ) -> Self {
        Caller {
            identity,
            user: identity.map(|i| i.user.as_str()).or(fields.user_id),
            admin: identity
                .zip(admin_group)
                .is_some_and(|(i, g)| i.in_group(g)),
            peer: None,
        }
    }

    /// The key the limits count under.
    fn limit_key(&self) -> &str {
        self.user.unwrap_or("anonymous")
    }

    /// Only the owner (or an admin) may use a session; others learn nothing about it.
    fn may_use(&self, session: &Session) -> Result<(), RouterError> {
        self.may_access(&session.id, session.kind, session.user_id.as_deref())
    }

    /// [`Caller::may_use`] for a session of `kind` owned by `owner`, live or closed.
    fn may_access(
        &self,
        session_id: &str,
        kind: SessionKind,
        owner: Option<&str>,
    ) -> Result<(), RouterError> {
        let owner_matches = owner == self.user;
        // A control session created without an owner (authentication off) is open to all
        // unless the caller is authenticated, in which case it must be owned by the caller.
        let open = kind == SessionKind::Control && owner.is_none() && self.identity.is_none();
        if owner_matches || open || self.admin {
            Ok(())
        } else {
            warn!(target: "audit", event = "permission_denied", plane = "grpc", user = self.user.unwrap_or(""), peer = %peer_text(self.peer), session_id, "permission denied");
            Err(RouterError::PermissionDenied)
        }
    }
}

/// Whether a call of `method` may be the first of a session (and so bind it). The others act on
/// state a session already has; PySpark sends some of them (ReleaseExecute) in the background
/// right after ReleaseSession, and they must not bind the released session again.
fn starts_sessions(method: RpcMethod) -> bool {
    !matches!(
        method,
        RpcMethod::ReleaseSession
            | RpcMethod::ReleaseExecute
            | RpcMethod::ReattachExecute
            | RpcMethod::Interrupt
            | RpcMethod::FetchErrorDetails
    )
}

/// The proxy's own answer to a call that acts on a session it does not know: there is nothing
/// to release, interrupt or explain; an operation to reattach to does not exist.
fn answer_unbound(
    method: RpcMethod,
    fields: &RequestFields<'_>,
) -> Result<http::Response<Body>, RouterError> {
    let session_id = fields.session_id.unwrap_or_default().to_owned();
    let message = match method {
        RpcMethod::ReleaseSession => pb::ReleaseSessionResponse {
            session_id,
            server_side_session_id: String::new(),
        }
        .encode_to_vec(),
        RpcMethod::ReleaseExecute => pb::ReleaseExecuteResponse {
            session_id,
            server_side_session_id: String::new(),
            operation_id: fields.operation_id.map(str::to_owned),
        }
        .encode_to_vec(),
        RpcMethod::Interrupt => pb::InterruptResponse {
            session_id,
            server_side_session_id: String::new(),
            interrupted_ids: Vec::new(),
        }
        .encode_to_vec(),
        RpcMethod::FetchErrorDetails => pb::FetchErrorDetailsResponse {
            session_id,
            ..Default::default()
        }
        .encode_to_vec(),
        _ => {
            return Err(RouterError::UnknownOperation {
                session_id,
                operation_id: fields.operation_id.unwrap_or_default().to_owned(),
            });
        }
    };
    Ok(forward::local_response(&message))
}

fn transport_reason(error: &tonic::transport::Error) -> String {
    let mut reason = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(s) = source {
        reason.push_str(": ");
        reason.push_str(&s.to_string());
        source = s.source();
    }
    reason
}

/// Runs when a forwarded call ends: metrics, session activity, and release bookkeeping.
struct CallEnd {
    inner: Arc<Inner>,
    session: Arc<Session>,
    method: RpcMethod,
    release: Option<(Option<String>, Option<String>)>,
    /// The Spark session of a control session's call (a bound session is its own).
    spark_session: Option<String>,
    started: std::time::Instant,
    /// Set if the router cut the request (a later message too large).
    cut: Arc<Cut>,
    /// The call's place in the in-flight limits, given back when the call ends.
    _permit: Option<crate::limits::StreamPermit>,
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
        self.session.backend.unavailable(reason).to_status()
    }

    fn data(&mut self, data: &bytes::Bytes, first: bool) -> Option<tonic::Status> {
        self.session
            .stats
            .bytes_out
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        if first {
            self.check_backend_session(data)
        } else {
            None
        }
    }

    fn finish(&mut self, code: Option<i32>) {
        let backend = &self.session.backend;
        backend.metrics.active_streams.dec();
        self.session.call_finished();
        let code = code.unwrap_or(tonic::Code::Cancelled as i32);
        backend
            .metrics
            .call_finished(self.method.index(), self.method.name(), code);
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
    fn cut_short(&self) -> Option<RouterError> {
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
            self.inner.metrics.session_closed("dead");
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

/// A client address for the audit log (`unknown` when the server did not record it).
fn peer_text(peer: Option<std::net::SocketAddr>) -> String {
    peer.map_or_else(|| "unknown".to_owned(), |a| a.to_string())
}
