//! The tower service that handles every `spark.connect.SparkConnectService` call.
//!
//! One call reads as a straight line (`Inner::handle`): read the first message, know the caller,
//! admit it under the limits, find the session, authorize, bind a new session to a backend if
//! need be, forward to the backend, and observe the response on its way back (`observe.rs`).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use prost::Message as _;
use sc_backend_api::Identity;
use sc_proto::RpcMethod;
use sc_proto::spark::connect as pb;
use sc_proto::wire::{self, RequestFields};
use tonic::body::Body;
use tonic::server::NamedService;
use tower::{Service, ServiceExt as _};
use tracing::debug;

use crate::authz::{Access, Caller, Plane};
use crate::backends::BackendHandle;
use crate::error::code_name;
use crate::forward::{self, Cut, Downstream, Upstream};
use crate::metrics::{LIMIT_FIRST_MESSAGE_TIMEOUT, LIMIT_MESSAGE_SIZE};
use crate::observe::CallEnd;
use crate::registry::SessionKind;
use crate::sessions::{Lookup, ReleaseKey};
use crate::telemetry::{CallTrace, REQUEST_ID_HEADER};
use crate::{Inner, RouterError};

/// The request header that names a control-plane session.
pub const SESSION_HEADER: &str = "x-spark-connect-session-id";

/// The request header (PySpark: connection-string metadata) that asks a new session for an
/// engine profile.
pub const PROFILE_HEADER: &str = "x-spark-connect-profile";

/// Headers that belong to one hop (or to the proxy) and are never forwarded to a backend.
const HOP_HEADERS: [&str; 8] = [
    SESSION_HEADER,
    PROFILE_HEADER,
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
            let request_id = request.headers().get(REQUEST_ID_HEADER).cloned();
            let mut response = match inner.clone().handle(method, request).await {
                Ok(response) => response,
                Err(error) => inner.rejected(method, &error).into_http(),
            };
            if let Some(id) = request_id {
                response.headers_mut().insert(REQUEST_ID_HEADER, id);
            }
            Ok(response)
        })
    }
}

impl Inner {
    /// The status a call the router refuses ends with, counted: under its limit when a limit
    /// refused it, and as rejected (backend failures are counted per backend by `CallEnd`).
    pub(crate) fn rejected(&self, method: RpcMethod, error: &RouterError) -> tonic::Status {
        let status = error.to_status();
        if let Some(limit) = limit_of(error) {
            self.metrics.limit_rejected(limit);
        }
        if !matches!(error, RouterError::BackendUnavailable { .. }) {
            debug!(method = method.name(), code = ?status.code(), %error, "call rejected");
            self.metrics
                .call_rejected(method.name(), code_name(status.code() as i32));
        }
        status
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

/// A call routed: what to send to which backend, observed from here on.
pub(crate) struct Routed {
    /// The request's head, its headers edited for the backend.
    pub(crate) parts: http::request::Parts,
    /// The bytes read so far (the first message, perhaps rewritten), sent first.
    pub(crate) head: forward::Head,
    /// Follows the later messages of the request, each held to `router.max_message_size`.
    pub(crate) later: forward::MessageBounds,
    /// Set when a later message is too large and the request is cut.
    pub(crate) cut: Arc<Cut>,
    /// The session's backend.
    pub(crate) backend: Arc<BackendHandle>,
    /// The session's counters (bytes in, for the request body).
    pub(crate) stats: Arc<crate::registry::SessionStats>,
    /// Whether the response (a Config answer from a backend with a token) must be redacted.
    pub(crate) redact: bool,
    /// The call, counted as started; ends when the response does.
    pub(crate) call: CallEnd,
}

/// What the router makes of a call.
pub(crate) enum Routing {
    /// Forward it.
    Forward(Box<Routed>),
    /// Answer it here, with this unary message and an OK status (a call acting on a session the
    /// proxy does not know).
    Answer(Vec<u8>),
}

impl Inner {
    /// The data path of one call up to the backend, the same for every transport: know the
    /// caller, admit it under the limits, find the session, authorize, bind a new session to a
    /// backend if need be, and edit the request for the backend.
    ///
    /// With telemetry on, the call's span starts here (under the client's `traceparent`); a
    /// forwarded call takes it along to its end, a call answered here ends it now.
    pub(crate) async fn route(
        self: &Arc<Self>,
        method: RpcMethod,
        parts: http::request::Parts,
        head: forward::Head,
    ) -> Result<Routing, RouterError> {
        let mut trace = CallTrace::start(self.telemetry.as_ref(), method, &parts.headers);
        let routing = self.route_traced(method, parts, head, &mut trace).await;
        if let Some(trace) = trace {
            let code = match &routing {
                Err(error) => error.code() as i32,
                Ok(_) => tonic::Code::Ok as i32,
            };
            trace.finish(code, 0);
        }
        routing
    }

    async fn route_traced(
        self: &Arc<Self>,
        method: RpcMethod,
        mut parts: http::request::Parts,
        head: forward::Head,
        trace: &mut Option<CallTrace>,
    ) -> Result<Routing, RouterError> {
        // 1. The first message's routing fields (read whole by the transport).
        let mut scratch = Vec::new();
        let message = forward::readable(
            &head,
            &parts.headers,
            self.settings.max_message_size,
            &mut scratch,
        )?;
        let fields = wire::read_request_fields(method, message)?;
        // Later messages whose prefix came with the first are checked now, the rest as they pass.
        let later = head.later_messages(self.settings.max_message_size)?;

        // 2. The caller: the identity the authentication layer verified, else the claimed user.
        let identity = parts.extensions.remove::<Identity>();
        let caller = Caller::new(
            identity.as_ref(),
            fields.user_id,
            self.admin_group.as_deref(),
            Plane::Grpc,
        )
        .with_peer(peer_addr(&parts.extensions));

        // 3. Limits: the caller's request rate and calls in flight.
        let permit = if self.limiter.enabled() {
            Some(self.limiter.admit_call(caller.limit_key())?)
        } else {
            None
        };

        // 4. The session, 5. authorization, 6. a backend for a new session.
        let session = match self
            .lookup(method, &parts.headers, &fields, trace.as_ref())
            .await?
        {
            Lookup::Found(session) => {
                caller.authorize(Access::Session {
                    id: &session.id,
                    owner: session.user_id.as_deref(),
                })?;
                session
            }
            Lookup::Closed { id, tombstone } => {
                caller.authorize(Access::Session {
                    id: &id,
                    owner: tombstone.owner.as_deref(),
                })?;
                return Err(RouterError::SessionClosed {
                    id,
                    why: tombstone.why,
                });
            }
            Lookup::New(session_id) => {
                let profile = profile_of(&parts.headers)?;
                self.bind(&caller, &session_id, profile, trace.as_ref())
                    .await?
            }
            Lookup::Unbound => return Ok(Routing::Answer(answer_unbound(method, &fields)?)),
        };
        let Some(session) = self.usable(method, session).await? else {
            return Ok(Routing::Answer(answer_unbound(method, &fields)?));
        };
        self.note_call(method, &fields, &session, &caller);
        if let Some(trace) = trace {
            trace.record(crate::telemetry::call_attributes(&session, &caller));
        }
        // What the end of the call needs from its first message: control sessions may carry
        // several Spark sessions (a bound one is its Spark session), and a ReleaseSession
        // releases the one it names.
        let spark_session = match session.kind {
            SessionKind::Control => fields.session_id.map(str::to_owned),
            SessionKind::Bound => None,
        };
        let release =
            (method == RpcMethod::ReleaseSession).then(|| ReleaseKey::new(&caller, &fields));

        // 7. The request as the backend gets it: the user rewritten when authenticated, its
        // own token, no proxy-only or hop-by-hop headers.
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
        // The backend's trace context is this call's span (the client's `traceparent` as is
        // when telemetry is off).
        if let Some(trace) = trace {
            trace.inject(&mut parts.headers);
        }
        let redact = method == RpcMethod::Config && backend.authorization.is_some();
        let stats = session.stats.clone();
        let cut = Arc::new(Cut::default());

        // 8. Observe: counted from here until the response ends.
        let call = CallEnd::start(
            self.clone(),
            session,
            method,
            release,
            spark_session,
            cut.clone(),
            permit,
        )
        .traced(trace.take());
        Ok(Routing::Forward(Box::new(Routed {
            parts,
            head,
            later,
            cut,
            backend,
            stats,
            redact,
            call,
        })))
    }

    /// One call through the tower service: the first message read from tonic's body, routed,
    /// and forwarded on the backend's pooled connection (hyper's, or tonic's channel over TLS).
    async fn handle(
        self: Arc<Self>,
        method: RpcMethod,
        request: http::Request<Body>,
    ) -> Result<http::Response<Body>, RouterError> {
        let (parts, mut body) = request.into_parts();
        let limit = self.settings.first_message_timeout;
        let head = tokio::time::timeout(
            limit,
            forward::read_head(&mut body, self.settings.max_message_size),
        )
        .await
        .map_err(|_| RouterError::FirstMessageTimeout(limit))??;
        let routed = match self.route(method, parts, head).await? {
            Routing::Forward(routed) => *routed,
            Routing::Answer(message) => return Ok(forward::local_response(&message)),
        };
        let Routed {
            parts,
            head,
            later,
            cut,
            backend,
            stats,
            redact,
            call,
        } = routed;
        let upstream = Upstream::new(
            head,
            body,
            later,
            cut,
            backend.metrics.bytes_to_backend.clone(),
            stats,
        );
        let request = http::Request::from_parts(parts, Body::new(upstream));
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
            Err(reason) => return call.unreachable(&self, reason).await.map(|s| s.into_http()),
        };
        let (mut parts, body) = response.into_parts();
        // A status in the headers means a trailers-only response (an error): no message to redact.
        let code = forward::grpc_status(&parts.headers);
        let body = if redact && code.is_none() {
            // The body changes length: a length the backend announced no longer holds.
            parts.headers.remove(http::header::CONTENT_LENGTH);
            forward::redact_config(body, self.settings.max_message_size).await
        } else {
            body
        };
        let body = Downstream::new(body, backend.metrics.bytes_to_client.clone(), code, call);
        Ok(http::Response::from_parts(parts, Body::new(body)))
    }
}

/// The client's address, as the relay attaches it to each request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PeerAddr(pub(crate) std::net::SocketAddr);

/// The engine profile a new header-less session asks for, from `x-spark-connect-profile`.
fn profile_of(headers: &http::HeaderMap) -> Result<Option<&str>, RouterError> {
    let Some(value) = headers.get(PROFILE_HEADER) else {
        return Ok(None);
    };
    let profile = value
        .to_str()
        .map_err(|_| RouterError::InvalidHeader {
            name: PROFILE_HEADER,
            why: "it is not visible ASCII".into(),
        })?
        .trim();
    Ok((!profile.is_empty()).then_some(profile))
}

/// The client's address, from the connection info the relay or tonic's server attaches to each
/// request.
fn peer_addr(extensions: &http::Extensions) -> Option<std::net::SocketAddr> {
    use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
    extensions
        .get::<PeerAddr>()
        .map(|p| p.0)
        .or_else(|| {
            extensions
                .get::<TcpConnectInfo>()
                .and_then(TcpConnectInfo::remote_addr)
        })
        .or_else(|| {
            extensions
                .get::<TlsConnectInfo<TcpConnectInfo>>()
                .and_then(|tls| tls.get_ref().remote_addr())
        })
}

/// The proxy's own answer to a call that acts on a session it does not know: there is nothing
/// to release, interrupt or explain; an operation to reattach to does not exist.
fn answer_unbound(method: RpcMethod, fields: &RequestFields<'_>) -> Result<Vec<u8>, RouterError> {
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
    Ok(message)
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
