//! The HTTP control plane of the Spark Connect proxy.
//!
//! | method and path | what it does |
//! | --- | --- |
//! | `POST /control/sessions` | creates a session; answers its id as plain text, or a JSON object when the client sends `Accept: application/json` |
//! | `GET /control/sessions` | lists every session |
//! | `GET /control/sessions/{id}` | one session |
//! | `DELETE /control/sessions/{id}` | closes a session and releases it on its backend |
//! | `GET /control/backends` | every backend with its load, state and health |
//! | `POST /control/backends/{id}/drain`, `.../undrain` | stops or resumes placing new sessions on a backend (its sessions carry on) |
//! | `GET /control/backends/{id}/logs` | the tail of a backend's own log (admins, and users with a session there) |
//! | `GET /control/backends/{id}/ui/...` | the backend's Spark UI, reverse-proxied (admins, and users with a session there) |
//! | `GET /control/metrics` | Prometheus metrics |
//! | `GET /healthz`, `GET /readyz` | liveness and readiness |
//!
//! With authentication configured, `/control/sessions*` and `/control/backends` require it, as a
//! bearer token or, over TLS, a client certificate (see [`PeerInfo`]); health and metrics stay
//! open for probes and scrapers (they name no user and no secret).
//!
//! Errors are JSON objects `{"error": "...", "code": "NOT_FOUND"}` with the matching HTTP status.

#![forbid(unsafe_code)]

mod peer;
mod ui;

pub use peer::PeerInfo;

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use axum::Router as HttpRouter;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use sc_auth::{Authenticator, Identity};
use sc_router::{Access, Caller, Plane, Router, RouterError, SessionInfo};
use serde::{Deserialize, Serialize};
use tonic::Code;
use tracing::warn;

/// Largest request body the control plane reads.
const BODY_LIMIT: usize = 64 * 1024;

/// What the control plane needs to answer.
#[derive(Clone)]
pub struct ControlState {
    /// The router whose sessions and backends are managed.
    pub router: Router,
    /// The port clients connect to with gRPC, for the connection strings handed out.
    pub grpc_port: u16,
    /// The host to put in connection strings; the request's `Host` header's host when `None`.
    pub public_host: Option<String>,
    /// Whether the gRPC port uses TLS (adds `use_ssl=true` to connection strings).
    pub grpc_tls: bool,
    /// Authentication of `/control/*` requests; off when `None`.
    pub auth: Option<Arc<Authenticator>>,
    /// Re-reads the configuration and applies it (`POST /control/reload`); the endpoint answers
    /// 501 when `None` (e.g. no configuration file).
    pub reload: Option<ReloadHook>,
}

/// What `POST /control/reload` runs: the proxy's own reload (the same as on SIGHUP). The error
/// is a message for the operator (the configuration problem).
pub type ReloadHook = Arc<
    dyn Fn() -> futures_util::future::BoxFuture<'static, Result<ReloadReport, String>>
        + Send
        + Sync,
>;
pub use sc_router::ReloadReport;

impl std::fmt::Debug for ControlState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlState")
            .field("grpc_port", &self.grpc_port)
            .field("public_host", &self.public_host)
            .field("grpc_tls", &self.grpc_tls)
            .field("reload", &self.reload.is_some())
            .finish_non_exhaustive()
    }
}

/// The header that names the user a control-plane request is for when authentication is off
/// (ignored when it is on: the verified identity decides). Without it, the caller is the operator.
pub const USER_HEADER: &str = "x-spark-connect-user-id";

/// Who sent a control-plane request: the identity authentication verified (when it is on), the
/// user the request claims (when it is off), and the client's address. The router decides what
/// it may do ([`sc_router::authz`]), with the rule the gRPC port uses.
#[derive(Debug, Clone)]
struct Requester {
    identity: Option<Identity>,
    claimed: Option<String>,
    peer: Option<std::net::SocketAddr>,
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Requester {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Requester {
            identity: parts.extensions.get::<Identity>().cloned(),
            claimed: parts
                .headers
                .get(USER_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty()),
            peer: parts.extensions.get::<Peer>().and_then(|p| p.0),
        })
    }
}

impl Requester {
    fn caller<'a>(&'a self, router: &Router) -> Caller<'a> {
        router
            .caller(
                self.identity.as_ref(),
                self.claimed.as_deref(),
                Plane::Control,
            )
            .with_peer(self.peer)
    }

    /// The user who asked, for audit lines (`""` for the operator).
    fn name(&self) -> &str {
        self.identity
            .as_ref()
            .map(|i| i.user.as_str())
            .or(self.claimed.as_deref())
            .unwrap_or("")
    }

    fn peer_text(&self) -> String {
        peer_text(self.peer)
    }
}

/// Builds the control plane's axum application.
pub fn app(state: ControlState) -> HttpRouter {
    let control = HttpRouter::new()
        .route("/control/sessions", get(list_sessions).post(create_session))
        .route(
            "/control/sessions/{id}",
            get(get_session).delete(delete_session),
        )
        .route("/control/backends", get(list_backends))
        .route(
            "/control/backends/{id}/drain",
            axum::routing::post(drain_backend),
        )
        .route(
            "/control/backends/{id}/undrain",
            axum::routing::post(undrain_backend),
        )
        .route("/control/backends/{id}/logs", get(backend_logs))
        .route("/control/backends/{id}/ui", get(ui::redirect))
        .route("/control/backends/{id}/ui/", get(ui::root))
        .route("/control/backends/{id}/ui/{*path}", get(ui::page))
        .route("/control/reload", axum::routing::post(reload))
        .route_layer(middleware::from_fn_with_state(state.clone(), authenticate));
    // Health and metrics stay open for probes and scrapers: they name no user and no secret.
    HttpRouter::new()
        .merge(control)
        .route("/control/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

// === errors ===

/// An error answered as JSON with the right HTTP status.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    code: &'a str,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", message)
    }
}

/// The one mapping from router errors to HTTP statuses.
impl From<RouterError> for ApiError {
    fn from(error: RouterError) -> Self {
        let code = error.code();
        let status = match code {
            Code::NotFound => StatusCode::NOT_FOUND,
            Code::InvalidArgument => StatusCode::BAD_REQUEST,
            Code::PermissionDenied => StatusCode::FORBIDDEN,
            Code::Unauthenticated => StatusCode::UNAUTHORIZED,
            Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
            Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
            Code::FailedPrecondition => StatusCode::CONFLICT,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let message = match error {
            // The gRPC wording tells clients how to pass the header; here the id is in the path.
            RouterError::SessionNotFound(id) => format!(
                "session '{id}' does not exist (it was never created, was deleted, or expired); list sessions with GET /control/sessions or create one with POST /control/sessions"
            ),
            other => other.to_string(),
        };
        ApiError::new(status, sc_router::code_name(code as i32), message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: &self.message,
            code: self.code,
        };
        (self.status, axum::Json(body)).into_response()
    }
}

// === authentication ===

/// The client, when the server was started with connect info.
fn peer_info(request: &Request) -> Option<PeerInfo> {
    request
        .extensions()
        .get::<axum::extract::ConnectInfo<PeerInfo>>()
        .map(|c| c.0.clone())
}

/// Authenticates `/control/*` requests as the gRPC port does: a bearer token if the request
/// carries one, else the connection's client certificate (with `auth.mtls`), else anonymous
/// access if allowed.
async fn authenticate(
    State(state): State<ControlState>,
    mut request: Request,
    next: Next,
) -> Response {
    let info = peer_info(&request);
    let peer = info.as_ref().map(PeerInfo::addr);
    request.extensions_mut().insert(Peer(peer));
    let Some(auth) = &state.auth else {
        return next.run(request).await;
    };
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes().to_vec());
    let certificate = info.as_ref().and_then(PeerInfo::certificate);
    match auth.authenticate(authorization.as_deref(), certificate) {
        Ok(identity) => {
            request.extensions_mut().insert(identity);
            next.run(request).await
        }
        Err(error) => {
            warn!(target: "audit", event = "auth_failure", plane = "control", peer = %peer_text(peer), path = request.uri().path(), reason = %error, "authentication failed");
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "UNAUTHENTICATED",
                error.to_string(),
            )
            .into_response()
        }
    }
}

/// The client's address, carried from the middleware to the handlers.
#[derive(Debug, Clone, Copy)]
struct Peer(Option<std::net::SocketAddr>);

// === sessions ===

/// A session as the control plane shows it.
#[derive(Debug, Serialize)]
struct SessionView {
    #[serde(flatten)]
    info: SessionInfo,
    created_at: String,
    last_active_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    connection_string: Option<String>,
}

fn rfc3339(ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

impl ControlState {
    fn view(&self, info: SessionInfo, headers: &HeaderMap) -> SessionView {
        let connection_string = (info.kind == sc_router::SessionKind::Control).then(|| {
            let host = self
                .public_host
                .clone()
                .unwrap_or_else(|| request_host(headers));
            let tls = if self.grpc_tls { ";use_ssl=true" } else { "" };
            // `session_id` too: a client that uses the string runs its Spark session under the
            // proxy session's id, so one id names both.
            format!(
                "sc://{host}:{}/;{}={};session_id={}{tls}",
                self.grpc_port,
                sc_router::SESSION_HEADER,
                info.id,
                info.id
            )
        });
        SessionView {
            created_at: rfc3339(info.created_at_ms),
            last_active_at: rfc3339(info.last_active_ms),
            info,
            connection_string,
        }
    }
}

/// The host part of the request's `Host` header (IPv6 literals keep their brackets).
fn request_host(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("localhost");
    let without_port = match host.rfind(':') {
        Some(i) if !host[i..].contains(']') => &host[..i],
        _ => host,
    };
    if without_port.is_empty() {
        "localhost".into()
    } else {
        without_port.into()
    }
}

fn wants_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("application/json"))
}

/// The optional JSON body of `POST /control/sessions`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateSession {
    /// The user the session is for (another user's: admins only).
    #[serde(default)]
    user_id: Option<String>,
    /// A name for the application, shown with the session.
    #[serde(default)]
    app_name: Option<String>,
    /// The engine profile to run the session on (the provider's `spec.profiles`).
    #[serde(default)]
    profile: Option<String>,
}

async fn create_session(
    State(state): State<ControlState>,
    who: Requester,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(|rejection| {
        ApiError::new(
            rejection.status(),
            "INVALID_ARGUMENT",
            format!(
                "request body cannot be read: {}; the body is at most {BODY_LIMIT} bytes of JSON, e.g. {{\"user_id\": \"alice\"}}",
                rejection.body_text()
            ),
        )
    })?;
    let request: CreateSession = if body.iter().all(u8::is_ascii_whitespace) {
        CreateSession::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::bad_request(format!(
                "request body is not valid JSON for a new session: {e}; send no body, or {{\"user_id\": \"alice\", \"app_name\": \"etl\", \"profile\": \"large\"}}"
            ))
        })?
    };
    let caller = who.caller(&state.router);
    let mut new = sc_router::SessionRequest::new();
    new.user_id = request.user_id;
    new.app_name = request.app_name;
    new.profile = request.profile;
    let info = state.router.create_session(&caller, new).await?;
    tracing::info!(target: "audit", event = "session_create", kind = "control", session_id = %info.id, user = info.user_id.as_deref().unwrap_or(""), by = who.name(), peer = %who.peer_text(), backend = %info.backend, "session created");
    if wants_json(&headers) {
        Ok((StatusCode::OK, axum::Json(state.view(info, &headers))).into_response())
    } else {
        Ok((
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            info.id,
        )
            .into_response())
    }
}

#[derive(Serialize)]
struct SessionList {
    sessions: Vec<SessionView>,
}

async fn list_sessions(
    State(state): State<ControlState>,
    who: Requester,
    headers: HeaderMap,
) -> Response {
    let sessions = state
        .router
        .sessions_for(&who.caller(&state.router))
        .into_iter()
        .map(|info| state.view(info, &headers))
        .collect();
    axum::Json(SessionList { sessions }).into_response()
}

async fn get_session(
    State(state): State<ControlState>,
    who: Requester,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let info = state.router.session_for(&who.caller(&state.router), &id)?;
    Ok(axum::Json(state.view(info, &headers)).into_response())
}

async fn delete_session(
    State(state): State<ControlState>,
    who: Requester,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    // The one audit line of a deletion: the router writes none for it (only this handler knows
    // who asked and from where), and only the request that closed the session gets here.
    let info = state
        .router
        .close_session(&who.caller(&state.router), &id)
        .await?;
    tracing::info!(target: "audit", event = "session_delete", session_id = %info.id, user = info.user_id.as_deref().unwrap_or(""), by = who.name(), peer = %who.peer_text(), backend = %info.backend, reason = "control_plane", "session deleted");
    Ok(axum::Json(state.view(info, &headers)).into_response())
}

// === backends, health, metrics ===

#[derive(Serialize)]
struct BackendList {
    policy: String,
    backends: Vec<sc_router::BackendInfo>,
    providers: Vec<sc_router::ProviderInfo>,
}

async fn list_backends(State(state): State<ControlState>) -> Response {
    axum::Json(BackendList {
        policy: state.router.policy_name().to_owned(),
        backends: state.router.backends(),
        providers: state.router.providers(),
    })
    .into_response()
}

async fn drain_backend(
    State(state): State<ControlState>,
    who: Requester,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    set_draining(&state, &who, &id, true)
}

async fn undrain_backend(
    State(state): State<ControlState>,
    who: Requester,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    set_draining(&state, &who, &id, false)
}

/// Draining changes where everyone's sessions go: for admins.
fn set_draining(
    state: &ControlState,
    who: &Requester,
    id: &str,
    draining: bool,
) -> Result<Response, ApiError> {
    let info = state
        .router
        .set_draining(&who.caller(&state.router), id, draining)?;
    tracing::info!(target: "audit", event = if draining { "backend_drain" } else { "backend_undrain" }, backend = id, by = who.name(), peer = %who.peer_text(), "backend drain state changed");
    Ok(axum::Json(info).into_response())
}

/// Query of `GET /control/backends/{id}/logs`.
#[derive(Debug, Deserialize)]
struct LogsQuery {
    /// How many of the last lines (default 200, at most 10000).
    lines: Option<usize>,
}

/// A backend's own log (a launched Spark server's output).
async fn backend_logs(
    State(state): State<ControlState>,
    who: Requester,
    Path(id): Path<String>,
    axum::extract::Query(query): axum::extract::Query<LogsQuery>,
) -> Result<Response, ApiError> {
    let lines = query.lines.unwrap_or(200).clamp(1, 10_000);
    match state
        .router
        .backend_logs(&who.caller(&state.router), &id, lines)
        .await?
    {
        Some(text) => {
            Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response())
        }
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            format!(
                "backend '{id}' has no logs here: its provider does not keep them (only launched engines have logs)"
            ),
        )),
    }
}

/// Re-reads the configuration file and applies it, as SIGHUP does: for admins.
async fn reload(State(state): State<ControlState>, who: Requester) -> Result<Response, ApiError> {
    who.caller(&state.router).authorize(Access::Operate {
        action: "reload the configuration",
    })?;
    let Some(hook) = &state.reload else {
        return Err(ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            "UNIMPLEMENTED",
            "this proxy was started without a configuration file; there is nothing to reload (start it with --config-file)",
        ));
    };
    match hook().await {
        Ok(report) => {
            tracing::info!(target: "audit", event = "config_reload", by = who.name(), peer = %who.peer_text(), added = ?report.backends_added, removed = ?report.backends_removed, "configuration reloaded");
            Ok(axum::Json(report).into_response())
        }
        Err(message) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
            format!("the configuration was not reloaded (the old one stays in force): {message}"),
        )),
    }
}

async fn metrics(State(state): State<ControlState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.router.metrics().encode(),
    )
        .into_response()
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<ControlState>) -> Response {
    if !state.router.ready() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "no backends yet: the backend provider has listed none\n",
        )
            .into_response()
    } else {
        (StatusCode::OK, "ready\n").into_response()
    }
}

async fn method_not_allowed(request: Request) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "INVALID_ARGUMENT",
        format!(
            "{} is not allowed on {}; see the `allow` header for the methods that are",
            request.method(),
            request.uri().path()
        ),
    )
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
        "no such endpoint; the control plane serves /control/sessions, /control/sessions/{id}, /control/backends, /control/backends/{id}/drain and /undrain, /control/backends/{id}/logs and /ui/, /control/metrics, /healthz and /readyz",
    )
}

/// A client address for the audit log (`unknown` when the server did not record it).
fn peer_text(peer: Option<std::net::SocketAddr>) -> String {
    peer.map_or_else(|| "unknown".to_owned(), |a| a.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_header_parsing() {
        let mut h = HeaderMap::new();
        assert_eq!(request_host(&h), "localhost");
        h.insert(
            header::HOST,
            "example.com:8081"
                .parse()
                .unwrap_or_else(|_| unreachable!()),
        );
        assert_eq!(request_host(&h), "example.com");
        h.insert(
            header::HOST,
            "[::1]:8081".parse().unwrap_or_else(|_| unreachable!()),
        );
        assert_eq!(request_host(&h), "[::1]");
        h.insert(
            header::HOST,
            "[::1]".parse().unwrap_or_else(|_| unreachable!()),
        );
        assert_eq!(request_host(&h), "[::1]");
    }
}
