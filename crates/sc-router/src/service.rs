//! The tower service that handles every `spark.connect.SparkConnectService` call.
//!
//! One call reads as a straight line: read the first message, find the session (or bind a new
//! one), forward to its backend, and watch the response on its way back.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
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
use crate::forward::{self, Downstream, Observer, Upstream};
use crate::registry::{Session, SessionKind};
use crate::{Inner, RouterError};

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
                    if let RouterError::LimitExceeded { limit, .. } = &error {
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
        let backend = session.backend.clone();
        if let Some(token) = &backend.authorization {
            parts
                .headers
                .insert(http::header::AUTHORIZATION, token.clone());
        }
        let upstream = Upstream::new(head, body, backend.metrics.bytes_to_backend.clone());
        let request = http::Request::from_parts(parts, Body::new(upstream));

        session.call_started();
        backend.metrics.active_streams.inc();
        let mut call = CallEnd {
            inner: self.clone(),
            session,
            method,
            release,
            _permit: permit,
        };
        let response = match backend.channel.clone().oneshot(request).await {
            Ok(response) => response,
            Err(error) => {
                let reason = transport_reason(&error);
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
            let session = self
                .registry
                .control(id.trim())
                .ok_or_else(|| RouterError::SessionNotFound(id.to_owned()))?;
            caller.may_use(&session)?;
            if let Some(spark_session) = fields.session_id {
                session.note_spark_session(caller.user, spark_session);
            }
            return Ok(Target::Session(session));
        }

        let session_id = fields.session_id.ok_or(RouterError::MissingSessionId)?;
        if let Some(session) = self.registry.bound(session_id) {
            caller.may_use(&session)?;
            return Ok(Target::Session(session));
        }
        if let Some(session) = fields
            .operation_id
            .and_then(|op| self.registry.operation(op))
        {
            caller.may_use(&session)?;
            return Ok(Target::Session(session));
        }
        if !starts_sessions(method) {
            return Ok(Target::Unbound);
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
        let fresh = Arc::new(Session::new(
            session_id.to_owned(),
            SessionKind::Bound,
            caller.user.map(str::to_owned),
            backend,
        ));
        let session = self.registry.bind(fresh.clone());
        if !Arc::ptr_eq(&session, &fresh) {
            // Another call bound it first; this one's slot is not needed.
            self.limiter.session_closed(caller.limit_key());
        } else {
            info!(target: "audit", event = "session_create", kind = "bound", session_id, user = caller.user.unwrap_or(""), peer = %peer_text(caller.peer), backend = %session.backend.id(), "session bound");
        }
        Ok(Target::Session(session))
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
                if let Some(op) = fields.operation_id {
                    self.registry.add_operation(op, session);
                }
            }
            RpcMethod::ReleaseExecute if fields.release_all => {
                if let Some(op) = fields.operation_id {
                    self.registry.remove_operation(op);
                }
            }
            RpcMethod::CloneSession => {
                if let Some(new_id) = fields.new_session_id {
                    match session.kind {
                        SessionKind::Control => session.note_spark_session(caller.user, new_id),
                        SessionKind::Bound => {
                            let clone = Arc::new(Session::new(
                                new_id.to_owned(),
                                SessionKind::Bound,
                                caller.user.map(str::to_owned),
                                session.backend.clone(),
                            ));
                            self.registry.bind(clone);
                        }
                    }
                }
            }
            _ => {}
        }
    }

    /// A ReleaseSession answered OK: the session is gone on the backend.
    fn released(&self, session: &Arc<Session>, key: &(Option<String>, Option<String>)) {
        match session.kind {
            SessionKind::Bound => {
                if self.registry.remove(session) {
                    self.limiter
                        .session_closed(session.user_id.as_deref().unwrap_or("anonymous"));
                    info!(target: "audit", event = "session_delete", kind = "bound", session_id = %session.id, user = session.user_id.as_deref().unwrap_or(""), backend = %session.backend.id(), reason = "release_session", "session released");
                }
            }
            SessionKind::Control => {
                if let Some(spark_session) = &key.1 {
                    session.forget_spark_session(key.0.as_deref(), spark_session);
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
        let owner_matches = session.user_id.as_deref() == self.user;
        // A control session created without an owner (authentication off) is open to all
        // unless the caller is authenticated, in which case it must be owned by the caller.
        let open = session.kind == SessionKind::Control
            && session.user_id.is_none()
            && self.identity.is_none();
        if owner_matches || open || self.admin {
            Ok(())
        } else {
            warn!(target: "audit", event = "permission_denied", plane = "grpc", user = self.user.unwrap_or(""), peer = %peer_text(self.peer), session_id = %session.id, "permission denied");
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
    /// The call's place in the in-flight limits, given back when the call ends.
    _permit: Option<crate::limits::StreamPermit>,
}

impl Observer for CallEnd {
    fn broken(&self, cause: &tonic::Status) -> tonic::Status {
        let reason = format!("the response stream broke ({})", cause.message());
        crate::health::mark_unreachable(
            &self.inner.settings.health,
            &self.session.backend,
            &reason,
        );
        warn!(backend = %self.session.backend.id(), method = self.method.name(), %reason, "backend stream failed");
        self.session.backend.unavailable(reason).to_status()
    }

    fn finish(&mut self, code: Option<i32>) {
        let backend = &self.session.backend;
        backend.metrics.active_streams.dec();
        self.session.call_finished();
        let code = code.unwrap_or(tonic::Code::Cancelled as i32);
        self.inner.metrics.call_finished(
            self.method.name(),
            code_name(code),
            &backend.metrics.label,
        );
        if code == 0
            && let Some(key) = self.release.take()
        {
            self.inner.released(&self.session, &key);
        }
    }
}

/// A client address for the audit log (`unknown` when the server did not record it).
fn peer_text(peer: Option<std::net::SocketAddr>) -> String {
    peer.map_or_else(|| "unknown".to_owned(), |a| a.to_string())
}
