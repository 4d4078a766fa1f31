//! A backend's Spark UI and logs through the control plane, against a stand-in UI server: who
//! may see them (the one authorization decision), and the reverse proxy itself. (With a real
//! Spark UI in headless Chromium in `sc-e2e`.) A test binary of its own: it creates sessions,
//! which `api.rs` counts in its audit lines.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt as _;
use sc_backend_predefined::{EndpointSpec, PredefinedProvider, PredefinedSpec};
use sc_control::{ControlState, app};
use sc_router::Router;
use tower::ServiceExt as _;

/// A control plane over `router` with three users: alice, bob and root (an admin).
fn state(router: Router) -> ControlState {
    let user = |token: &str, user: &str, groups: &[&str]| sc_auth::TokenEntry {
        token: Some(token.into()),
        sha256: None,
        user: user.into(),
        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
    };
    let settings = sc_auth::AuthSettings {
        tokens: vec![
            user("ta", "alice", &[]),
            user("tb", "bob", &[]),
            user("tr", "root", &["admins"]),
        ],
        admin_group: Some("admins".into()),
        ..Default::default()
    };
    ControlState {
        router,
        grpc_port: 8080,
        public_host: None,
        grpc_tls: false,
        auth: Some(Arc::new(sc_auth::Authenticator::new(&settings).unwrap())),
        reload: None,
        about: sc_control::About::default(),
        ui_passes: Default::default(),
    }
}

async fn call(state: &ControlState, req: Request<Body>) -> (StatusCode, String) {
    let resp = app(state.clone()).oneshot(req).await.unwrap();
    let status = resp.status();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

/// A stand-in Spark UI: a page that links under its proxy base, a redirect to its own address
/// (as Jetty sends them), and a static asset.
async fn fake_ui() -> std::net::SocketAddr {
    use axum::routing::get;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app =
        axum::Router::new()
            .route(
                "/",
                get(move || async move {
                    axum::response::Redirect::to(&format!("http://{addr}/jobs/"))
                }),
            )
            .route(
                "/jobs/",
                get(|headers: axum::http::HeaderMap| async move {
                    // The proxy's own credentials never reach the UI.
                    assert!(headers.get(header::AUTHORIZATION).is_none());
                    axum::response::Html(
                        "<a href=\"/control/backends/backend-0/ui/stages/\">Stages</a> Spark Jobs",
                    )
                }),
            )
            .route("/static/app.js", get(|| async { "console.log(1)" }));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// A control plane over PREDEFINED backends: `backend-0` with a stand-in Spark UI, then one
/// backend without a UI for each of `others`.
async fn with_ui(others: &[&str]) -> ControlState {
    let ui = fake_ui().await;
    let mut first = EndpointSpec::new("127.0.0.1:1");
    first.ui_url = Some(format!("http://{ui}"));
    let mut endpoints = vec![first];
    endpoints.extend(others.iter().map(|url| EndpointSpec::new(*url)));
    let spec = PredefinedSpec { endpoints };
    let router = Router::builder()
        .provider(Arc::new(PredefinedProvider::new("test", &spec).unwrap()))
        .admin_group(Some("admins".into()))
        .build()
        .await
        .unwrap();
    state(router)
}

#[tokio::test]
async fn a_backends_spark_ui_and_logs_are_for_admins_and_its_session_owners() {
    let st = with_ui(&["127.0.0.1:2"]).await;
    let as_user = |token: &str, method: &str, uri: &str| {
        Request::builder()
            .method(method)
            .uri(uri)
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header(header::ACCEPT, "application/json")
            .body(Body::empty())
            .unwrap()
    };
    // Alice's session lands on backend-0 (round robin), Bob's on backend-1.
    let (status, body) = call(&st, as_user("ta", "POST", "/control/sessions")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("\"backend\":\"backend-0\""), "{body}");
    let (status, _) = call(&st, as_user("tb", "POST", "/control/sessions")).await;
    assert_eq!(status, StatusCode::OK);

    // The backend list says where the UI is.
    let (_, body) = call(&st, as_user("ta", "GET", "/control/backends")).await;
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["backends"][0]["ui"], "/control/backends/backend-0/ui/");
    assert!(v["backends"][1].get("ui").is_none(), "{body}");

    // The owner reads the UI through the proxy; redirects come back through it.
    let (status, body) = call(
        &st,
        as_user("ta", "GET", "/control/backends/backend-0/ui/jobs/"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("Spark Jobs"), "{body}");
    let resp = app(st.clone())
        .oneshot(as_user("ta", "GET", "/control/backends/backend-0/ui/"))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        resp.headers()[header::LOCATION],
        "/control/backends/backend-0/ui/jobs/"
    );
    let (status, body) = call(
        &st,
        as_user("ta", "GET", "/control/backends/backend-0/ui/static/app.js"),
    )
    .await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "console.log(1)"));
    let resp = app(st.clone())
        .oneshot(as_user("ta", "GET", "/control/backends/backend-0/ui"))
        .await
        .unwrap();
    assert_eq!(
        resp.headers()[header::LOCATION],
        "/control/backends/backend-0/ui/"
    );

    // Bob has no session there: 403, for the UI and the logs alike; an admin may.
    let (status, body) = call(
        &st,
        as_user("tb", "GET", "/control/backends/backend-0/ui/jobs/"),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(
        body.contains("backend-0") && body.contains("Spark UI"),
        "{body}"
    );
    let (status, _) = call(
        &st,
        as_user("tb", "GET", "/control/backends/backend-0/logs"),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = call(
        &st,
        as_user("tr", "GET", "/control/backends/backend-0/ui/jobs/"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    // Alice may read the logs of her backend (a PREDEFINED one keeps none: 404, not 403).
    let (status, body) = call(
        &st,
        as_user("ta", "GET", "/control/backends/backend-0/logs"),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    // A backend without a UI says so.
    let (status, body) = call(&st, as_user("tb", "GET", "/control/backends/backend-1/ui/")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(body.contains("no Spark UI"), "{body}");
    // Only reading passes.
    let (status, _) = call(
        &st,
        as_user("ta", "POST", "/control/backends/backend-0/ui/jobs/"),
    )
    .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn a_browser_pass_opens_the_spark_ui_pages_and_nothing_else() {
    let st = with_ui(&[]).await;
    let request = |method: &str, uri: &str, token: Option<&str>, cookie: Option<&str>| {
        let mut builder = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::ACCEPT, "application/json");
        if let Some(token) = token {
            builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        if let Some(cookie) = cookie {
            builder = builder.header(header::COOKIE, cookie);
        }
        builder.body(Body::empty()).unwrap()
    };
    let pass_of = |resp: &axum::response::Response| {
        let set = resp.headers()[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .to_owned();
        for part in [
            "HttpOnly",
            "SameSite=Strict",
            "Path=/control/backends/",
            "Max-Age=3600",
        ] {
            assert!(set.contains(part), "{set}");
        }
        set.split(';').next().unwrap().to_owned()
    };
    // Alice owns a session on backend-0; her pass and Bob's.
    let (status, _) = call(&st, request("POST", "/control/sessions", Some("ta"), None)).await;
    assert_eq!(status, StatusCode::OK);
    let resp = app(st.clone())
        .oneshot(request("POST", "/control/ui-pass", Some("ta"), None))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let alice = pass_of(&resp);
    assert!(
        !alice.contains("ta"),
        "the token never goes into the cookie"
    );
    let resp = app(st.clone())
        .oneshot(request("POST", "/control/ui-pass", Some("tb"), None))
        .await
        .unwrap();
    let bob = pass_of(&resp);

    // The pass opens the UI pages for its owner, by the same rule as the token.
    let page = "/control/backends/backend-0/ui/jobs/";
    let (status, body) = call(&st, request("GET", page, None, Some(&alice))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("Spark Jobs"), "{body}");
    let (status, _) = call(&st, request("GET", page, None, Some(&bob))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Without a pass, or with a made-up one: 401.
    let (status, _) = call(&st, request("GET", page, None, None)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = call(
        &st,
        request("GET", page, None, Some("sc_ui_pass=0123456789abcdef")),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Nothing but the UI pages takes it.
    for path in [
        "/control/sessions",
        "/control/backends",
        "/control/backends/backend-0/logs",
    ] {
        let (status, _) = call(&st, request("GET", path, None, Some(&alice))).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
    }
    let (status, _) = call(
        &st,
        request(
            "POST",
            "/control/backends/backend-0/drain",
            None,
            Some(&alice),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Signing out ends it.
    let resp = app(st.clone())
        .oneshot(request(
            "DELETE",
            "/control/ui-pass",
            Some("ta"),
            Some(&alice),
        ))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert!(
        resp.headers()[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    let (status, _) = call(&st, request("GET", page, None, Some(&alice))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}
