//! The dashboard: a page over the control plane's own JSON API, served at `/ui/` from files
//! embedded in the binary (`crates/sc-control/ui/`: plain HTML, CSS and JavaScript, no build
//! step, nothing fetched from elsewhere).
//!
//! The page reads `/control/proxy`, `/control/sessions`, `/control/backends`,
//! `/control/metrics` and `/control/openapi.json`, and acts through the same routes (drain,
//! undrain, delete). With authentication on it asks for a token, keeps it in the tab's
//! `sessionStorage` only, and sends it as `Authorization: Bearer`; the files themselves carry
//! no data and no secret, so they are served without authentication.

use axum::Router as HttpRouter;
use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

use crate::{ApiError, ControlState};

/// Where the dashboard is served.
pub const PATH: &str = "/ui/";

/// The embedded files: name, content type, bytes.
const ASSETS: [(&str, &str, &str); 3] = [
    (
        "index.html",
        "text/html; charset=utf-8",
        include_str!("../ui/index.html"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("../ui/app.js"),
    ),
    (
        "app.css",
        "text/css; charset=utf-8",
        include_str!("../ui/app.css"),
    ),
];

/// What the page may load and run: its own files and the control plane's API, nothing inline
/// and nothing from elsewhere; it may not be framed.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The dashboard's routes (`/ui`, `/ui/` and its files).
pub(crate) fn routes() -> HttpRouter<ControlState> {
    HttpRouter::new()
        .route("/ui", get(|| async { Redirect::permanent(PATH) }))
        .route("/ui/", get(|| async { asset("index.html") }))
        .route(
            "/ui/{file}",
            get(|Path(file): Path<String>| async move { asset(&file) }),
        )
}

/// One embedded file, with headers that keep the page to itself.
fn asset(name: &str) -> Response {
    let Some((_, content_type, body)) = ASSETS.iter().find(|(n, _, _)| *n == name) else {
        return ApiError::new(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            format!("the dashboard has no file '{name}'; open {PATH}"),
        )
        .into_response();
    };
    let mut response = (*body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    // A new proxy version brings new files: always revalidate.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}
