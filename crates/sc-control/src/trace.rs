//! Request ids and traces of control-plane requests: `x-request-id` is echoed on every answer,
//! and with the router's telemetry on each request is a server span (under the client's
//! `traceparent`) named after its route.

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use opentelemetry::KeyValue;
use opentelemetry::trace::{Status, TraceContextExt as _};
use sc_router::telemetry::REQUEST_ID_HEADER;

use crate::ControlState;

/// Echoes the request's `x-request-id`, if it has one, on the response.
pub(crate) async fn echo_request_id(request: Request, next: Next) -> Response {
    let id = request.headers().get(REQUEST_ID_HEADER).cloned();
    let mut response = next.run(request).await;
    if let Some(id) = id {
        response.headers_mut().insert(REQUEST_ID_HEADER, id);
    }
    response
}

/// Makes a span of a request to a known route (when telemetry is on).
pub(crate) async fn trace_request(
    State(state): State<ControlState>,
    request: Request,
    next: Next,
) -> Response {
    let Some(telemetry) = state.router.telemetry() else {
        return next.run(request).await;
    };
    let route = request.extensions().get::<MatchedPath>().map_or_else(
        || request.uri().path().to_owned(),
        |p| p.as_str().to_owned(),
    );
    let method = request.method().as_str().to_owned();
    let mut attributes = vec![
        KeyValue::new("http.request.method", method.clone()),
        KeyValue::new("http.route", route.clone()),
        KeyValue::new("url.path", request.uri().path().to_owned()),
    ];
    if let Some(id) = request
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
    {
        attributes.push(KeyValue::new("spark_connect.request_id", id.to_owned()));
    }
    let cx = telemetry.server_span(format!("{method} {route}"), request.headers(), attributes);
    let response = next.run(request).await;
    let span = cx.span();
    let status = response.status();
    span.set_attribute(KeyValue::new(
        "http.response.status_code",
        i64::from(status.as_u16()),
    ));
    if status.is_server_error() {
        span.set_status(Status::error(status.to_string()));
    }
    span.end();
    response
}
