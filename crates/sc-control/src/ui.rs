//! A backend's Spark UI through the control plane: `GET /control/backends/{id}/ui/...` is
//! reverse-proxied to the UI the backend's provider names (a launched engine's, with
//! `spark.ui.proxyBase` set to this path so its links come back here), for the callers the
//! router's authorization decision allows (admins, and users with a session on the backend).
//!
//! Only reading methods pass (GET and HEAD): the UI's actions (killing jobs) would act on every
//! user's work on a shared engine. The client's credentials stay here; redirects the UI sends to
//! its own address are rewritten to this path.

use std::time::Duration;

use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Redirect, Response};
use hyper_util::rt::TokioIo;
use tracing::debug;

use crate::{ApiError, ControlState, Requester};

/// How long connecting to a UI and waiting for its answer's head may take.
const UI_TIMEOUT: Duration = Duration::from_secs(30);

/// Request headers passed on to the UI; the rest (credentials above all) stay here.
const PASSED: [header::HeaderName; 7] = [
    header::ACCEPT,
    header::ACCEPT_LANGUAGE,
    header::USER_AGENT,
    header::IF_MODIFIED_SINCE,
    header::IF_NONE_MATCH,
    header::RANGE,
    header::CACHE_CONTROL,
];

/// Response headers that belong to the hop between the proxy and the UI.
const HOP: [header::HeaderName; 4] = [
    header::CONNECTION,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::HeaderName::from_static("keep-alive"),
];

/// `/control/backends/{id}/ui`: the UI's root is one slash further.
pub(crate) async fn redirect(
    id: Result<Path<String>, PathRejection>,
) -> Result<Redirect, ApiError> {
    let Path(id) = id.map_err(|r| ApiError::bad_path(&r))?;
    Ok(Redirect::permanent(&format!(
        "{}/",
        sc_backend_api::ui_proxy_base(&id)
    )))
}

/// `/control/backends/{id}/ui/`.
pub(crate) async fn root(
    State(state): State<ControlState>,
    who: Requester,
    id: Result<Path<String>, PathRejection>,
    request: Request,
) -> Result<Response, ApiError> {
    let Path(id) = id.map_err(|r| ApiError::bad_path(&r))?;
    forward(&state, &who, &id, "", request).await
}

/// `/control/backends/{id}/ui/{*path}`.
pub(crate) async fn page(
    State(state): State<ControlState>,
    who: Requester,
    id: Result<Path<(String, String)>, PathRejection>,
    request: Request,
) -> Result<Response, ApiError> {
    let Path((id, path)) = id.map_err(|r| ApiError::bad_path(&r))?;
    forward(&state, &who, &id, &path, request).await
}

async fn forward(
    state: &ControlState,
    who: &Requester,
    id: &str,
    path: &str,
    request: Request,
) -> Result<Response, ApiError> {
    let ui = state.router.backend_ui(&who.caller(&state.router), id)?;
    let base = sc_backend_api::ui_proxy_base(id);
    let authority = ui
        .authority()
        .ok_or_else(|| unreachable_ui(id, &ui, "it has no host"))?
        .clone();
    let target = match request.uri().query() {
        Some(query) => format!("/{path}?{query}"),
        None => format!("/{path}"),
    };
    let mut upstream = http::Request::builder()
        .method(request.method())
        .uri(&target)
        .header(header::HOST, authority.as_str());
    for name in &PASSED {
        if let Some(value) = request.headers().get(name) {
            upstream = upstream.header(name, value);
        }
    }
    let upstream = upstream
        .body(Body::empty())
        .map_err(|e| unreachable_ui(id, &ui, e))?;

    let port = authority.port_u16().unwrap_or(80);
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let answer = tokio::time::timeout(UI_TIMEOUT, async {
        let stream = tokio::net::TcpStream::connect((host, port))
            .await
            .map_err(|e| e.to_string())?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                debug!(error = %e, "a Spark UI connection ended");
            }
        });
        sender
            .send_request(upstream)
            .await
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(|_| unreachable_ui(id, &ui, format!("no answer within {UI_TIMEOUT:?}")))?
    .map_err(|e| unreachable_ui(id, &ui, e))?;

    let (mut parts, body) = answer.into_parts();
    for name in &HOP {
        parts.headers.remove(name);
    }
    if let Some(location) = parts.headers.get(header::LOCATION)
        && let Ok(location) = location.to_str()
        && let Ok(rewritten) = HeaderValue::try_from(rewrite_location(location, &ui, &base))
    {
        parts.headers.insert(header::LOCATION, rewritten);
    }
    Ok(Response::from_parts(parts, Body::new(body)).into_response())
}

/// A redirect the UI sends, as the browser must follow it: to its own address (or an absolute
/// path outside the proxy's) becomes the same place under `base`.
fn rewrite_location(location: &str, ui: &Uri, base: &str) -> String {
    let origin = format!(
        "{}://{}",
        ui.scheme_str().unwrap_or("http"),
        ui.authority().map(|a| a.as_str()).unwrap_or_default()
    );
    let path = location.strip_prefix(origin.as_str()).unwrap_or(location);
    if path.starts_with('/') && !path.starts_with(base) {
        format!("{base}{path}")
    } else if path.is_empty() {
        format!("{base}/")
    } else {
        path.to_owned()
    }
}

fn unreachable_ui(id: &str, ui: &Uri, why: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        StatusCode::BAD_GATEWAY,
        "UNAVAILABLE",
        format!("the Spark UI of backend '{id}' at {ui} does not answer: {why}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_come_back_through_the_proxy() {
        let ui: Uri = "http://127.0.0.1:15521".parse().unwrap_or_default();
        let base = "/control/backends/engine-1/ui";
        for (location, expected) in [
            (
                "http://127.0.0.1:15521/jobs/",
                "/control/backends/engine-1/ui/jobs/",
            ),
            ("http://127.0.0.1:15521", "/control/backends/engine-1/ui/"),
            ("/jobs/", "/control/backends/engine-1/ui/jobs/"),
            (
                "/control/backends/engine-1/ui/jobs/",
                "/control/backends/engine-1/ui/jobs/",
            ),
            ("jobs/", "jobs/"),
            ("https://elsewhere.example/x", "https://elsewhere.example/x"),
        ] {
            assert_eq!(
                rewrite_location(location, &ui, base),
                expected,
                "{location}"
            );
        }
    }
}
