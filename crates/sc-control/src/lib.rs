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
//! | `POST /control/reload` | re-reads the configuration file |
//! | `GET /control/proxy` | the proxy itself: version, uptime, policy, store, limits in force, the caller |
//! | `GET /control/metrics` | Prometheus metrics |
//! | `GET /control/openapi.json` | the OpenAPI 3.1 document of every route here ([`openapi`]) |
//! | `GET /ui/` | the dashboard ([`dashboard`]), a page over the routes above |
//! | `GET /healthz`, `GET /readyz` | liveness and readiness |
//!
//! With authentication configured, `/control/sessions*`, `/control/backends*`,
//! `/control/reload` and `/control/proxy` require it, as a bearer token or, over TLS, a client
//! certificate (see [`PeerInfo`]); health, metrics, the OpenAPI document and the dashboard's
//! files stay open (they name no user and no secret; the dashboard signs in to read the rest).
//!
//! Errors are JSON objects `{"error": "...", "code": "NOT_FOUND"}` with the matching HTTP status.

#![forbid(unsafe_code)]

mod about;
pub mod dashboard;
pub mod openapi;
mod peer;
mod trace;
mod ui;
mod ui_pass;

pub use about::About;
pub use peer::PeerInfo;
pub use ui_pass::UiPasses;

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use axum::Router as HttpRouter;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use openapi::{
    BadRequest, Forbidden, NotFound, NotImplemented, TooManyRequests, Unauthenticated, Unavailable,
};
use sc_auth::{Authenticator, Identity};
use sc_router::{Access, Caller, ClosedSessionInfo, Plane, Router, RouterError, SessionInfo};
use serde::{Deserialize, Serialize};
use tonic::Code;
use tracing::{info, warn};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

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
    /// What the proxy says about itself in `GET /control/proxy` (version, start time, ...).
    pub about: About,
    /// The browsers' passes to the Spark UI pages (`POST /control/ui-pass`).
    pub ui_passes: Arc<UiPasses>,
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
    /// Whether the request came over TLS.
    tls: bool,
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
            tls: parts
                .extensions
                .get::<axum::extract::ConnectInfo<PeerInfo>>()
                .is_some_and(|c| c.0.tls()),
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

/// Builds the control plane's axum application: the API, its OpenAPI document and the
/// dashboard.
pub fn app(state: ControlState) -> HttpRouter {
    let (api, document) = api_routes(state.clone()).split_for_parts();
    let document = Arc::new(openapi::finish(document, &state));
    let router = state.router.clone();
    HttpRouter::new()
        .merge(api)
        .route(
            openapi::PATH,
            get(move || {
                // The profiles are named per request: a reload may change the provider's.
                let mut document = document.as_ref().clone();
                openapi::name_profiles(&mut document, &router.profiles());
                async move { axum::Json(document) }
            }),
        )
        .merge(dashboard::routes())
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            trace::trace_request,
        ))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(middleware::from_fn(trace::echo_request_id))
        .with_state(state)
}

/// The documented routes: those that need authentication (when it is on), then the open ones.
fn api_routes(state: ControlState) -> OpenApiRouter<ControlState> {
    let control = OpenApiRouter::with_openapi(openapi::base())
        .routes(routes!(list_sessions, create_session))
        .routes(routes!(get_session, delete_session))
        .routes(routes!(list_backends))
        .routes(routes!(drain_backend))
        .routes(routes!(undrain_backend))
        .routes(routes!(backend_logs))
        // The Spark UI passes through as the UI answers it (HTML, scripts, images): not part of
        // the API's document.
        .route("/control/backends/{id}/ui", get(ui::redirect))
        .route("/control/backends/{id}/ui/", get(ui::root))
        .route("/control/backends/{id}/ui/{*path}", get(ui::page))
        .routes(routes!(reload))
        .routes(routes!(about::proxy_info))
        .routes(routes!(create_ui_pass, delete_ui_pass))
        .route_layer(middleware::from_fn_with_state(state, authenticate));
    // Health and metrics stay open for probes and scrapers: they name no user and no secret.
    control
        .routes(routes!(metrics))
        .routes(routes!(healthz))
        .routes(routes!(readyz))
}

// === errors ===

/// An error answered as JSON with the right HTTP status.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

/// The body of every error the control plane answers.
#[derive(Serialize, ToSchema)]
pub(crate) struct ErrorBody<'a> {
    /// What went wrong and how to fix it.
    #[schema(
        example = "session 'x' does not exist (it was never created, was deleted, or expired); list sessions with GET /control/sessions or create one with POST /control/sessions"
    )]
    error: &'a str,
    /// The gRPC status code name matching the HTTP status (see `ErrorCode`).
    #[schema(schema_with = openapi::error_code)]
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

    /// A path the router matched whose parameter cannot be read (e.g. not UTF-8).
    fn bad_path(rejection: &PathRejection) -> Self {
        ApiError::bad_request(format!(
            "the path cannot be read: {}; ids are the ones GET /control/sessions and GET /control/backends list",
            rejection.body_text()
        ))
    }

    /// A query string that does not fit the route's parameters.
    fn bad_query(rejection: &QueryRejection) -> Self {
        ApiError::bad_request(format!(
            "the query string is not valid here: {}",
            rejection.body_text()
        ))
    }
}

/// The one mapping from router errors to HTTP statuses.
impl From<RouterError> for ApiError {
    fn from(error: RouterError) -> Self {
        let code = error.code();
        let status = match code {
            Code::NotFound => StatusCode::NOT_FOUND,
            Code::InvalidArgument | Code::FailedPrecondition => StatusCode::BAD_REQUEST,
            Code::PermissionDenied => StatusCode::FORBIDDEN,
            Code::Unauthenticated => StatusCode::UNAUTHORIZED,
            Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
            Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
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
    // A browser tab on a Spark UI page carries its pass, not the token (`ui_pass.rs`).
    if authorization.is_none()
        && certificate.is_none()
        && ui_pass::is_ui_page(request.uri().path())
        && let Some(identity) = state
            .ui_passes
            .identity(request.method(), request.headers())
    {
        request.extensions_mut().insert(identity);
        return next.run(request).await;
    }
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
#[derive(Debug, Serialize, ToSchema)]
struct SessionView {
    #[serde(flatten)]
    info: SessionInfo,
    /// Creation time (RFC 3339).
    #[schema(example = "2026-12-07T10:00:00.000Z")]
    created_at: String,
    /// Last call start or end (RFC 3339).
    #[schema(example = "2026-12-07T10:05:00.000Z")]
    last_active_at: String,
    /// The `sc://` string a Spark Connect client uses for this session (control-plane sessions).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(
        example = "sc://localhost:8080/;x-spark-connect-session-id=0b6c0f0e-5d1e-4a57-9a57-9f3c6f1a0c11;session_id=0b6c0f0e-5d1e-4a57-9a57-9f3c6f1a0c11"
    )]
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

/// The optional JSON body of `POST /control/sessions`. Names are printable (no control
/// character) and not all blank, as the router checks them; the pattern spells out Unicode's
/// White_Space characters (what Rust's `trim` removes) so every regex engine reads the same set.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateSession {
    /// The user the session is for (another user's: admins only). 1 to 256 printable
    /// characters, not all blank.
    #[serde(default)]
    #[schema(
        min_length = 1,
        max_length = 256,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\u0000-\\u0020\\u007f-\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000][^\\u0000-\\u001f\\u007f-\\u009f]*$",
        example = "alice"
    )]
    user_id: Option<String>,
    /// A name for the application, shown with the session. 1 to 256 printable characters, not
    /// all blank.
    #[serde(default)]
    #[schema(
        min_length = 1,
        max_length = 256,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\u0000-\\u0020\\u007f-\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000][^\\u0000-\\u001f\\u007f-\\u009f]*$",
        example = "etl"
    )]
    app_name: Option<String>,
    /// The engine profile to run the session on (one of the provider's `spec.profiles`; the
    /// provider's default when absent). The document lists the names this proxy's provider has.
    #[serde(default)]
    profile: Option<String>,
}

/// Creates a session.
///
/// Picks its backend now (starting one if the provider launches them), so its calls carry only
/// the id: pass the connection string to the client. The answer is the id as plain text, or
/// the session as JSON when the request sends `Accept: application/json`.
#[utoipa::path(
    post,
    path = "/control/sessions",
    tag = "sessions",
    operation_id = "create_session",
    request_body(content = Option<CreateSession>, content_type = "application/json", description = "optional: for whom, an application name, and an engine profile"),
    responses(
        (status = 200, description = "the new session: its id as text, or the session as JSON with `Accept: application/json`",
            content(
                (String = "text/plain", example = "0b6c0f0e-5d1e-4a57-9a57-9f3c6f1a0c11"),
                (SessionView = "application/json"),
            )),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 413, response = openapi::PayloadTooLarge),
        (status = 429, response = TooManyRequests),
        (status = 500, response = openapi::Internal),
        (status = 503, response = Unavailable),
    )
)]
async fn create_session(
    State(state): State<ControlState>,
    who: Requester,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(|rejection| {
        ApiError::new(
            rejection.status(),
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                "RESOURCE_EXHAUSTED"
            } else {
                "INVALID_ARGUMENT"
            },
            format!(
                "request body cannot be read: {}; the body is at most {BODY_LIMIT} bytes of JSON, e.g. {{\"user_id\": \"alice\"}}",
                rejection.body_text()
            ),
        )
    })?;
    // No body, and a JSON `null`, ask for the defaults.
    let request: CreateSession = if body.iter().all(u8::is_ascii_whitespace) {
        CreateSession::default()
    } else {
        let invalid = |e: &dyn std::fmt::Display| {
            ApiError::bad_request(format!(
                "request body is not valid JSON for a new session: {e}; send no body, or {{\"user_id\": \"alice\", \"app_name\": \"etl\", \"profile\": \"large\"}}"
            ))
        };
        // An object (serde would also take a struct from an array), or null.
        match serde_json::from_slice::<serde_json::Value>(&body).map_err(|e| invalid(&e))? {
            serde_json::Value::Null => CreateSession::default(),
            value @ serde_json::Value::Object(_) => {
                serde_json::from_value(value).map_err(|e| invalid(&e))?
            }
            _ => return Err(invalid(&"it is not an object")),
        }
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

/// The sessions a caller may see.
#[derive(Serialize, ToSchema)]
struct SessionList {
    /// Live sessions: control-plane ones, those bound from clients' own ids, and those whose
    /// backend is starting.
    sessions: Vec<SessionView>,
    /// Sessions closed lately (the last 200, newest first), with why.
    recently_closed: Vec<ClosedSessionInfo>,
}

/// Lists the sessions the caller may see (an admin's: all of them).
#[utoipa::path(
    get,
    path = "/control/sessions",
    tag = "sessions",
    operation_id = "list_sessions",
    responses(
        (status = 200, description = "the sessions", body = SessionList),
        (status = 401, response = Unauthenticated),
    )
)]
async fn list_sessions(
    State(state): State<ControlState>,
    who: Requester,
    headers: HeaderMap,
) -> Response {
    let caller = who.caller(&state.router);
    let sessions = state
        .router
        .sessions_for(&caller)
        .into_iter()
        .map(|info| state.view(info, &headers))
        .collect();
    let recently_closed = state.router.closed_sessions_for(&caller);
    axum::Json(SessionList {
        sessions,
        recently_closed,
    })
    .into_response()
}

/// One session, by its control-plane id or a bound session's `session_id`.
#[utoipa::path(
    get,
    path = "/control/sessions/{id}",
    tag = "sessions",
    operation_id = "get_session",
    params(("id" = String, Path, description = "the session id")),
    responses(
        (status = 200, description = "the session", body = SessionView),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
    )
)]
async fn get_session(
    State(state): State<ControlState>,
    who: Requester,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Path(id) = id.map_err(|r| ApiError::bad_path(&r))?;
    let info = state.router.session_for(&who.caller(&state.router), &id)?;
    Ok(axum::Json(state.view(info, &headers)).into_response())
}

/// Closes a session and releases it on its backend.
#[utoipa::path(
    delete,
    path = "/control/sessions/{id}",
    tag = "sessions",
    operation_id = "delete_session",
    params(("id" = String, Path, description = "the session id")),
    responses(
        (status = 200, description = "the session as it was closed", body = SessionView),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
    )
)]
async fn delete_session(
    State(state): State<ControlState>,
    who: Requester,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Path(id) = id.map_err(|r| ApiError::bad_path(&r))?;
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

/// Every backend and provider.
#[derive(Serialize, ToSchema)]
struct BackendList {
    /// The load policy in force.
    #[schema(example = "ROUND_ROBIN")]
    policy: String,
    /// The backends with their load, state and health.
    backends: Vec<sc_router::BackendInfo>,
    /// The providers, with how their own work is going.
    providers: Vec<sc_router::ProviderInfo>,
}

/// Every backend with its load, state and health, and the providers.
#[utoipa::path(
    get,
    path = "/control/backends",
    tag = "backends",
    operation_id = "list_backends",
    responses(
        (status = 200, description = "the backends", body = BackendList),
        (status = 401, response = Unauthenticated),
    )
)]
async fn list_backends(State(state): State<ControlState>) -> Response {
    axum::Json(BackendList {
        policy: state.router.policy_name().to_owned(),
        backends: state.router.backends(),
        providers: state.router.providers(),
    })
    .into_response()
}

/// Stops placing new sessions on a backend; its sessions carry on (admins).
#[utoipa::path(
    post,
    path = "/control/backends/{id}/drain",
    tag = "backends",
    operation_id = "drain_backend",
    params(("id" = String, Path, description = "the backend id")),
    responses(
        (status = 200, description = "the backend, now draining", body = sc_router::BackendInfo),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
    )
)]
async fn drain_backend(
    State(state): State<ControlState>,
    who: Requester,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(id) = id.map_err(|r| ApiError::bad_path(&r))?;
    set_draining(&state, &who, &id, true)
}

/// Places new sessions on a drained backend again (admins).
#[utoipa::path(
    post,
    path = "/control/backends/{id}/undrain",
    tag = "backends",
    operation_id = "undrain_backend",
    params(("id" = String, Path, description = "the backend id")),
    responses(
        (status = 200, description = "the backend, active again", body = sc_router::BackendInfo),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
    )
)]
async fn undrain_backend(
    State(state): State<ControlState>,
    who: Requester,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(id) = id.map_err(|r| ApiError::bad_path(&r))?;
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

/// The most lines `GET /control/backends/{id}/logs` answers.
const MAX_LOG_LINES: usize = 10_000;

/// Query of `GET /control/backends/{id}/logs`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct LogsQuery {
    /// How many of the last lines (default 200).
    #[param(minimum = 1, maximum = 10000)]
    lines: Option<usize>,
}

/// A backend's own log (a launched Spark server's output), its last lines (admins, and users
/// with a session on that backend).
#[utoipa::path(
    get,
    path = "/control/backends/{id}/logs",
    tag = "backends",
    operation_id = "backend_logs",
    params(("id" = String, Path, description = "the backend id"), LogsQuery),
    responses(
        (status = 200, description = "the log's last lines", content_type = "text/plain", body = String),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
    )
)]
async fn backend_logs(
    State(state): State<ControlState>,
    who: Requester,
    id: Result<Path<String>, PathRejection>,
    query: Result<Query<LogsQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Path(id) = id.map_err(|r| ApiError::bad_path(&r))?;
    let Query(query) = query.map_err(|r| ApiError::bad_query(&r))?;
    let lines = query.lines.unwrap_or(200);
    if !(1..=MAX_LOG_LINES).contains(&lines) {
        return Err(ApiError::bad_request(format!(
            "lines={lines} is out of range; ask for 1 to {MAX_LOG_LINES} lines"
        )));
    }
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

/// Gives this browser a pass to the Spark UI pages.
///
/// A tab opened on `/control/backends/{id}/ui/` cannot send the bearer token, so this answers a
/// cookie standing for the caller on those pages only (read-only, for an hour): `HttpOnly`,
/// `SameSite=Strict`, `Path=/control/backends/`, `Secure` over TLS. Its value is a random id,
/// never the token. With authentication off the pages need no pass and no cookie is set.
#[utoipa::path(
    post,
    path = "/control/ui-pass",
    tag = "proxy",
    operation_id = "create_ui_pass",
    responses(
        (status = 204, description = "the pass is in the `Set-Cookie` header (`sc_ui_pass`); none with authentication off",
            headers(("set-cookie" = String, description = "sc_ui_pass=<id>; Path=/control/backends/; Max-Age=3600; HttpOnly; SameSite=Strict"))),
        (status = 401, response = Unauthenticated),
        (status = 429, response = TooManyRequests),
    )
)]
async fn create_ui_pass(
    State(state): State<ControlState>,
    who: Requester,
) -> Result<Response, ApiError> {
    let Some(identity) = who.identity.clone() else {
        return Ok(StatusCode::NO_CONTENT.into_response());
    };
    let Some(cookie) = state
        .ui_passes
        .issue(identity)
        .and_then(|id| ui_pass::set_cookie(&id, who.tls))
    else {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "RESOURCE_EXHAUSTED",
            "too many Spark UI passes are held; try again later, or send the bearer token with each request",
        ));
    };
    info!(target: "audit", event = "ui_pass", by = who.name(), peer = %who.peer_text(), "Spark UI pass given");
    Ok((StatusCode::NO_CONTENT, [(header::SET_COOKIE, cookie)]).into_response())
}

/// Ends this browser's pass to the Spark UI pages (the dashboard's sign-out).
#[utoipa::path(
    delete,
    path = "/control/ui-pass",
    tag = "proxy",
    operation_id = "delete_ui_pass",
    responses(
        (status = 204, description = "the pass, if any, no longer opens the pages; the cookie is cleared"),
        (status = 401, response = Unauthenticated),
    )
)]
async fn delete_ui_pass(
    State(state): State<ControlState>,
    who: Requester,
    headers: HeaderMap,
) -> Response {
    state.ui_passes.revoke(&headers);
    (
        StatusCode::NO_CONTENT,
        [(header::SET_COOKIE, ui_pass::clear_cookie(who.tls))],
    )
        .into_response()
}

/// Re-reads the configuration file and applies it, as SIGHUP does (admins).
///
/// Backends added take new sessions, removed ones drain; the policy and the limits change. A
/// configuration that does not load leaves the old one in force.
#[utoipa::path(
    post,
    path = "/control/reload",
    tag = "proxy",
    operation_id = "reload",
    responses(
        (status = 200, description = "what changed", body = sc_router::ReloadReport),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 501, response = NotImplemented),
    )
)]
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

/// The Prometheus (OpenMetrics) text exposition of the proxy's metrics.
#[utoipa::path(
    get,
    path = "/control/metrics",
    tag = "health",
    operation_id = "metrics",
    responses(
        (status = 200, description = "every metric", content_type = "application/openmetrics-text", body = String),
    )
)]
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

/// Liveness: answers while the process serves.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "health",
    operation_id = "healthz",
    responses((status = 200, description = "alive", content_type = "text/plain", body = String, example = "ok\n"))
)]
async fn healthz() -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "ok\n",
    )
        .into_response()
}

/// Readiness: a backend to place sessions on, or a provider that launches them.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "health",
    operation_id = "readyz",
    responses(
        (status = 200, description = "ready", content_type = "text/plain", body = String, example = "ready\n"),
        (status = 503, description = "no backend yet", content_type = "text/plain", body = String),
    )
)]
async fn readyz(State(state): State<ControlState>) -> Response {
    let text = |status, text: &'static str| {
        (
            status,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            text,
        )
            .into_response()
    };
    if !state.router.ready() {
        text(
            StatusCode::SERVICE_UNAVAILABLE,
            "no backends yet: the backend provider has listed none\n",
        )
    } else {
        text(StatusCode::OK, "ready\n")
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
        "no such endpoint; the control plane's routes are listed in GET /control/openapi.json (and shown by the dashboard at /ui/)",
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
