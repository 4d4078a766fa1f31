//! `GET /control/proxy`: what the proxy is and what is in force (version, uptime, policy,
//! store, limits, authentication, telemetry) and who is asking, as Envoy's `/server_info`.

use std::time::SystemTime;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::openapi::Unauthenticated;
use crate::{ControlState, Requester};

/// What the proxy says about itself, beyond what the router knows.
#[derive(Debug, Clone)]
pub struct About {
    /// The proxy's version.
    pub version: String,
    /// When it started.
    pub started: SystemTime,
    /// Where traces are exported (OTLP/gRPC), if they are: shown without any user or password
    /// the address may carry.
    pub otlp_endpoint: Option<String>,
}

impl Default for About {
    /// This crate's version, started now, no traces.
    fn default() -> Self {
        About {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            started: SystemTime::now(),
            otlp_endpoint: None,
        }
    }
}

/// The proxy, as `GET /control/proxy` shows it.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ProxyInfo {
    /// The proxy's version.
    #[schema(example = "0.1.0")]
    version: String,
    /// When it started (RFC 3339).
    started_at: String,
    /// Seconds since it started.
    uptime_seconds: u64,
    /// The load policy in force.
    #[schema(example = "ROUND_ROBIN")]
    policy: String,
    /// Where the session table is kept: `embedded`, `redis` or `memory`.
    #[schema(example = "embedded")]
    store: String,
    /// Whether callers must authenticate.
    authentication: bool,
    /// The gRPC (Spark Connect) port.
    grpc_port: u16,
    /// Whether the gRPC port uses TLS.
    grpc_tls: bool,
    /// The limits in force.
    limits: sc_router::LimitsInForce,
    /// Where traces go over OTLP/gRPC (scheme, host and port), or nothing when they are off.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "http://127.0.0.1:4317")]
    otlp_endpoint: Option<String>,
    /// Backends known now.
    backends: usize,
    /// Live sessions the caller may see.
    sessions: usize,
    /// Who asked.
    caller: CallerInfo,
}

/// The caller of a control-plane request, as the one authorization decision sees it.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CallerInfo {
    /// The user (none for the operator, with authentication off and no user claimed).
    user: Option<String>,
    /// Whether the caller may act on everything (drain backends, read logs, see every session).
    admin: bool,
}

/// The proxy itself: version, uptime, policy, store, limits in force, and who is asking.
#[utoipa::path(
    get,
    path = "/control/proxy",
    tag = "proxy",
    operation_id = "proxy_info",
    responses(
        (status = 200, description = "the proxy", body = ProxyInfo),
        (status = 401, response = Unauthenticated),
    )
)]
pub(crate) async fn proxy_info(State(state): State<ControlState>, who: Requester) -> Response {
    let caller = who.caller(&state.router);
    let about = &state.about;
    let uptime = SystemTime::now()
        .duration_since(about.started)
        .unwrap_or_default();
    let started_ms = about
        .started
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    axum::Json(ProxyInfo {
        version: about.version.clone(),
        started_at: crate::rfc3339(started_ms),
        uptime_seconds: uptime.as_secs(),
        policy: state.router.policy_name(),
        store: state.router.store_name().unwrap_or("memory").to_owned(),
        authentication: state.auth.is_some(),
        grpc_port: state.grpc_port,
        grpc_tls: state.grpc_tls,
        limits: state.router.limits_in_force(),
        otlp_endpoint: about.otlp_endpoint.as_deref().map(without_credentials),
        backends: state.router.backends().len(),
        sessions: state.router.sessions_for(&caller).len(),
        caller: CallerInfo {
            user: caller.user().map(str::to_owned),
            admin: caller.is_admin(),
        },
    })
    .into_response()
}

/// An endpoint's scheme, host and port, without a user or password it may carry.
fn without_credentials(endpoint: &str) -> String {
    match endpoint.parse::<http::Uri>() {
        Ok(uri) => {
            let scheme = uri.scheme_str().unwrap_or("http");
            let host = uri.host().unwrap_or("");
            match uri.port_u16() {
                Some(port) => format!("{scheme}://{host}:{port}"),
                None => format!("{scheme}://{host}"),
            }
        }
        Err(_) => "(not a valid address)".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_shown_without_credentials() {
        assert_eq!(
            without_credentials("http://user:secret@collector:4317/"),
            "http://collector:4317"
        );
        assert_eq!(
            without_credentials("https://collector.example"),
            "https://collector.example"
        );
        assert_eq!(without_credentials("::"), "(not a valid address)");
    }
}
