//! The control plane's HTTP API, driven through the axum app.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt as _;
use sc_backend_predefined::{EndpointSpec, PredefinedProvider, PredefinedSpec};
use sc_control::{ControlState, app};
use sc_router::Router;
use tower::ServiceExt as _;

async fn state() -> ControlState {
    let spec = PredefinedSpec {
        endpoints: ["127.0.0.1:1", "127.0.0.1:2"]
            .iter()
            .map(|u| EndpointSpec::new(*u))
            .collect(),
    };
    // The admin group is the router's: the one authorization decision reads it.
    let router = Router::builder()
        .provider(Arc::new(PredefinedProvider::new("test", &spec).unwrap()))
        .admin_group(Some("admins".into()))
        .build()
        .await
        .unwrap();
    ControlState {
        router,
        grpc_port: 8080,
        public_host: None,
        grpc_tls: false,
        auth: None,
        reload: None,
        about: sc_control::About::default(),
        ui_passes: Default::default(),
    }
}

async fn state_with_tokens() -> ControlState {
    let mut st = state().await;
    let settings = sc_auth::AuthSettings {
        tokens: vec![
            sc_auth::TokenEntry {
                token: Some("ta".into()),
                sha256: None,
                user: "alice".into(),
                groups: vec![],
            },
            sc_auth::TokenEntry {
                token: Some("tb".into()),
                sha256: None,
                user: "bob".into(),
                groups: vec![],
            },
            sc_auth::TokenEntry {
                token: Some("tr".into()),
                sha256: None,
                user: "root".into(),
                groups: vec!["admins".into()],
            },
        ],
        admin_group: Some("admins".into()),
        ..Default::default()
    };
    st.auth = Some(Arc::new(sc_auth::Authenticator::new(&settings).unwrap()));
    st
}

async fn call(state: &ControlState, req: Request<Body>) -> (StatusCode, String, Option<String>) {
    let resp = app(state.clone()).oneshot(req).await.unwrap();
    let status = resp.status();
    let ctype = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_owned());
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap(), ctype)
}

fn req(method: &str, uri: &str) -> axum::http::request::Builder {
    Request::builder()
        .method(method)
        .uri(uri)
        .header(header::HOST, "proxy.example:8081")
}

#[tokio::test]
async fn create_answers_plain_text_like_the_go_proxy_or_json_on_request() {
    let st = state().await;
    let (status, id, ctype) = call(
        &st,
        req("POST", "/control/sessions")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(ctype.unwrap().starts_with("text/plain"));
    assert!(uuid_like(&id), "{id}");

    let (status, body, _) = call(
        &st,
        req("POST", "/control/sessions")
            .header(header::ACCEPT, "application/json")
            .body(Body::from(r#"{"user_id": "alice"}"#))
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let id2 = v["id"].as_str().unwrap();
    assert_eq!(
        v["backend"], "backend-1",
        "round robin: second session on the second backend"
    );
    assert_eq!(v["endpoint"], "http://127.0.0.1:2");
    assert_eq!(v["state"], "idle");
    assert_eq!(v["user_id"], "alice");
    assert!(v["created_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        v["connection_string"],
        format!("sc://proxy.example:8080/;x-spark-connect-session-id={id2};session_id={id2}")
    );
}

fn uuid_like(s: &str) -> bool {
    s.len() == 36 && s.chars().filter(|c| *c == '-').count() == 4
}

#[tokio::test]
async fn list_get_delete_and_not_found() {
    let st = state().await;
    let (_, id, _) = call(
        &st,
        req("POST", "/control/sessions")
            .body(Body::empty())
            .unwrap(),
    )
    .await;

    let (status, body, _) = call(
        &st,
        req("GET", "/control/sessions").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["sessions"].as_array().unwrap().len(), 1);
    assert_eq!(v["sessions"][0]["id"], id.as_str());
    assert_eq!(v["sessions"][0]["kind"], "control");

    let (status, body, _) = call(
        &st,
        req("GET", &format!("/control/sessions/{id}"))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let (status, body, _) = call(
        &st,
        req("DELETE", &format!("/control/sessions/{id}"))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["state"], "closed");

    for method in ["GET", "DELETE"] {
        let (status, body, ctype) = call(
            &st,
            req(method, &format!("/control/sessions/{id}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(ctype.as_deref(), Some("application/json"));
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["code"], "NOT_FOUND");
        assert!(v["error"].as_str().unwrap().contains(&id));
        assert!(
            v["error"]
                .as_str()
                .unwrap()
                .contains("POST /control/sessions")
        );
    }
    let (status, body, _) = call(
        &st,
        req("GET", "/control/sessions").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("\"sessions\":[]"), "{body}");
}

#[tokio::test]
async fn bad_input_gets_json_errors() {
    let st = state().await;
    let (status, body, _) = call(
        &st,
        req("POST", "/control/sessions")
            .body(Body::from("{not json"))
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(
        v["error"].as_str().unwrap().contains("not valid JSON"),
        "{body}"
    );

    let (status, body, _) = call(
        &st,
        req("POST", "/control/sessions")
            .body(Body::from(r#"{"owner":"x"}"#))
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("owner"), "{body}");

    let huge = vec![b' '; 1024 * 1024];
    let (status, body, ctype) = call(
        &st,
        req("POST", "/control/sessions")
            .body(Body::from(huge))
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(ctype.as_deref(), Some("application/json"), "{body}");
    assert!(body.contains("at most"), "{body}");

    let (status, body, _) = call(
        &st,
        req("GET", "/control/nothing").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body.contains("/control/openapi.json"), "{body}");

    let (status, body, ctype) = call(
        &st,
        req("PUT", "/control/sessions").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(ctype.as_deref(), Some("application/json"), "{body}");
    assert!(body.contains("PUT is not allowed"), "{body}");
}

#[tokio::test]
async fn backends_health_and_metrics() {
    let st = state().await;
    call(
        &st,
        req("POST", "/control/sessions")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    let (status, body, _) = call(
        &st,
        req("GET", "/control/backends").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["policy"], "ROUND_ROBIN");
    assert_eq!(v["backends"][0]["id"], "backend-0");
    assert_eq!(v["backends"][0]["sessions"], 1);
    assert_eq!(v["backends"][1]["sessions"], 0);
    assert_eq!(v["backends"][0]["provider"], "test");

    for path in ["/healthz", "/readyz"] {
        let (status, _, _) = call(&st, req("GET", path).body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::OK, "{path}");
    }
    let (status, body, _) = call(
        &st,
        req("GET", "/control/metrics").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body.contains("sc_proxy_sessions{backend=\"backend-0\"} 1"),
        "{body}"
    );
    assert!(body.contains("sc_proxy_active_streams"), "{body}");
}

#[tokio::test]
async fn with_auth_only_owners_and_admins_see_sessions() {
    let st = state_with_tokens().await;
    let as_user = |m: &str, uri: &str, token: &str| {
        req(m, uri).header(header::AUTHORIZATION, format!("Bearer {token}"))
    };

    let (status, body, _) = call(
        &st,
        req("POST", "/control/sessions")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(body.contains("UNAUTHENTICATED"));
    let (status, body, _) = call(
        &st,
        as_user("POST", "/control/sessions", "wrong")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(!body.contains("wrong"), "tokens never echo: {body}");

    let (status, alice_session, _) = call(
        &st,
        as_user("POST", "/control/sessions", "ta")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    // Bob can neither see, list nor delete it.
    let (status, body, _) = call(
        &st,
        as_user("GET", &format!("/control/sessions/{alice_session}"), "tb")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        !body.contains("alice") && !body.contains("backend"),
        "{body}"
    );
    let (status, _, _) = call(
        &st,
        as_user(
            "DELETE",
            &format!("/control/sessions/{alice_session}"),
            "tb",
        )
        .body(Body::empty())
        .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, body, _) = call(
        &st,
        as_user("GET", "/control/sessions", "tb")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert!(!body.contains(&alice_session), "{body}");
    // Bob cannot create a session for Alice; an admin can.
    let (status, _, _) = call(
        &st,
        as_user("POST", "/control/sessions", "tb")
            .body(Body::from(r#"{"user_id":"alice"}"#))
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) = call(
        &st,
        as_user("POST", "/control/sessions", "tr")
            .body(Body::from(r#"{"user_id":"alice"}"#))
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    // Alice and the admin see it; the admin sees all.
    let (status, body, _) = call(
        &st,
        as_user("GET", &format!("/control/sessions/{alice_session}"), "ta")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("\"user_id\":\"alice\""), "{body}");
    let (_, body, _) = call(
        &st,
        as_user("GET", "/control/sessions", "tr")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["sessions"].as_array().unwrap().len(), 2);
    let (status, _, _) = call(
        &st,
        as_user(
            "DELETE",
            &format!("/control/sessions/{alice_session}"),
            "ta",
        )
        .body(Body::empty())
        .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    // Health stays open.
    let (status, _, _) = call(&st, req("GET", "/healthz").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn backends_can_be_drained_and_undrained_by_admins() {
    let st = state().await;
    let (status, body, _) = call(
        &st,
        req("POST", "/control/backends/backend-0/drain")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (v["id"].as_str(), v["state"].as_str()),
        (Some("backend-0"), Some("draining"))
    );
    // New sessions avoid it.
    for _ in 0..3 {
        let (_, body, _) = call(
            &st,
            req("POST", "/control/sessions")
                .header(header::ACCEPT, "application/json")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert!(body.contains("\"backend\":\"backend-1\""), "{body}");
    }
    let (status, body, _) = call(
        &st,
        req("POST", "/control/backends/backend-0/undrain")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("\"state\":\"active\""), "{body}");
    let (status, body, _) = call(
        &st,
        req("POST", "/control/backends/nope/drain")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");

    // With authentication, only admins.
    let st = state_with_tokens().await;
    let as_user = |uri: &str, token: &str| {
        req("POST", uri).header(header::AUTHORIZATION, format!("Bearer {token}"))
    };
    let (status, _, _) = call(
        &st,
        as_user("/control/backends/backend-0/drain", "ta")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) = call(
        &st,
        as_user("/control/backends/backend-0/drain", "tr")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

/// The lines logged under the `audit` target while it lives, as JSON objects (this thread only:
/// a `#[tokio::test]` runs its tasks on it).
struct AuditCapture {
    lines: Arc<std::sync::Mutex<Vec<u8>>>,
    _guard: tracing::subscriber::DefaultGuard,
}

/// Appends what the subscriber writes to a shared buffer.
struct BufferWriter(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for BufferWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl AuditCapture {
    fn start() -> Self {
        use tracing_subscriber::util::SubscriberInitExt as _;
        let lines = Arc::new(std::sync::Mutex::new(Vec::new()));
        let writer = lines.clone();
        let guard = tracing_subscriber::fmt()
            .json()
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || BufferWriter(writer.clone()))
            .finish()
            .set_default();
        // Other tests on other threads, without a subscriber, may have cached the audit
        // callsites as disabled meanwhile: ask every callsite again.
        tracing::callsite::rebuild_interest_cache();
        AuditCapture {
            lines,
            _guard: guard,
        }
    }

    /// The `fields` of every audit line whose `event` is `event`.
    fn events(&self, event: &str) -> Vec<serde_json::Value> {
        let text = String::from_utf8(self.lines.lock().unwrap().clone()).unwrap();
        text.lines()
            .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
            .filter(|v| v["target"] == "audit" && v["fields"]["event"] == event)
            .map(|v| v["fields"].clone())
            .collect()
    }
}

#[tokio::test]
async fn a_delete_writes_exactly_one_audit_line_with_who_what_and_where() {
    let st = state_with_tokens().await;
    let audit = AuditCapture::start();
    let (status, id, _) = call(
        &st,
        req("POST", "/control/sessions")
            .header(header::AUTHORIZATION, "Bearer ta")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let backend = st.router.session(&id).unwrap().backend;

    // An admin deletes Alice's session, from a known address.
    let peer: std::net::SocketAddr = "10.1.2.3:4567".parse().unwrap();
    let delete = || {
        req("DELETE", &format!("/control/sessions/{id}"))
            .header(header::AUTHORIZATION, "Bearer tr")
            .extension(axum::extract::ConnectInfo(sc_control::PeerInfo::new(peer)))
            .body(Body::empty())
            .unwrap()
    };
    let (status, body, _) = call(&st, delete()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Deleting it again finds nothing, and logs no second deletion.
    let (status, body, _) = call(&st, delete()).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");

    let deletes = audit.events("session_delete");
    assert_eq!(deletes.len(), 1, "one line per deletion: {deletes:?}");
    let line = &deletes[0];
    assert_eq!(line["session_id"], id.as_str(), "{line}");
    assert_eq!(line["user"], "alice", "the session's owner: {line}");
    assert_eq!(line["by"], "root", "who deleted it: {line}");
    assert_eq!(line["peer"], "10.1.2.3:4567", "from where: {line}");
    assert_eq!(line["backend"], backend.as_str(), "{line}");
    assert_eq!(audit.events("session_create").len(), 1);
}

/// A DER certificate whose subject's common name is `cn` (self-signed; the TLS handshake, not
/// the control plane, verifies certificates).
fn certificate(cn: &str) -> Vec<u8> {
    let mut params = rcgen::CertificateParams::new(vec![format!("{cn}.client")]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    let key = rcgen::KeyPair::generate().unwrap();
    params.self_signed(&key).unwrap().der().to_vec()
}

#[tokio::test]
async fn a_client_certificate_authenticates_like_on_the_grpc_port() {
    let mut st = state_with_tokens().await;
    let peer: std::net::SocketAddr = "10.1.2.3:4567".parse().unwrap();
    let dave = sc_control::PeerInfo::new(peer).with_certificate(certificate("dave"));
    assert_eq!(dave.addr(), peer);
    let with_cert =
        |m: &str, uri: &str| req(m, uri).extension(axum::extract::ConnectInfo(dave.clone()));

    // Without `auth.mtls`, a certificate is no credential.
    let (status, body, _) = call(
        &st,
        with_cert("POST", "/control/sessions")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");

    let settings = sc_auth::AuthSettings {
        tokens: vec![sc_auth::TokenEntry {
            token: Some("ta".into()),
            sha256: None,
            user: "alice".into(),
            groups: vec![],
        }],
        mtls: Some(sc_auth::MtlsSettings {
            groups: vec!["engineers".into()],
        }),
        ..Default::default()
    };
    st.auth = Some(Arc::new(sc_auth::Authenticator::new(&settings).unwrap()));

    // The certificate's common name is the user.
    let (status, id, _) = call(
        &st,
        with_cert("POST", "/control/sessions")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{id}");
    assert_eq!(
        st.router.session(&id).unwrap().user_id.as_deref(),
        Some("dave")
    );
    let (status, body, _) = call(
        &st,
        with_cert("GET", &format!("/control/sessions/{id}"))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // A bearer token comes first, as on the gRPC port: alice, whose token it is, may not see
    // dave's session; a bad token is refused even with a good certificate.
    let (status, body, _) = call(
        &st,
        with_cert("GET", &format!("/control/sessions/{id}"))
            .header(header::AUTHORIZATION, "Bearer ta")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, body, _) = call(
        &st,
        with_cert("GET", &format!("/control/sessions/{id}"))
            .header(header::AUTHORIZATION, "Bearer wrong")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");

    // No certificate and no token: 401.
    let (status, body, _) = call(
        &st,
        req("GET", &format!("/control/sessions/{id}"))
            .extension(axum::extract::ConnectInfo(sc_control::PeerInfo::new(peer)))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
}

#[tokio::test]
async fn without_authentication_a_claimed_user_gets_the_grpc_rule_and_no_claim_is_the_operator() {
    let st = state().await;
    let as_claimed = |method: &str, uri: &str, user: &str| {
        req(method, uri).header(sc_control::USER_HEADER, user)
    };
    // Alice creates a session with an application name; it shows in the JSON.
    let (status, body, _) = call(
        &st,
        as_claimed("POST", "/control/sessions", "alice")
            .header(header::ACCEPT, "application/json")
            .body(Body::from(r#"{"app_name": "sales report"}"#))
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let id = v["id"].as_str().unwrap().to_owned();
    assert_eq!(v["user_id"], "alice");
    assert_eq!(v["app_name"], "sales report");
    // Bob, claiming to be Bob, may not see, delete or drain.
    for (method, uri) in [
        ("GET", format!("/control/sessions/{id}")),
        ("DELETE", format!("/control/sessions/{id}")),
        ("POST", "/control/backends/backend-0/drain".to_owned()),
    ] {
        let (status, body, _) = call(
            &st,
            as_claimed(method, &uri, "bob").body(Body::empty()).unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {uri}: {body}");
    }
    let (_, body, _) = call(
        &st,
        as_claimed("GET", "/control/sessions", "bob")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert!(!body.contains(&id), "{body}");
    // Nor create one for Alice.
    let (status, _, _) = call(
        &st,
        as_claimed("POST", "/control/sessions", "bob")
            .body(Body::from(r#"{"user_id": "alice"}"#))
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // The operator (no claim) sees it; a bad application name is a 400 naming the field.
    let (status, body, _) = call(
        &st,
        req("GET", &format!("/control/sessions/{id}"))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body, _) = call(
        &st,
        req("POST", "/control/sessions")
            .body(Body::from(r#"{"app_name": ""}"#))
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("app_name"), "{body}");
    // Alice deletes her own.
    let (status, body, _) = call(
        &st,
        as_claimed("DELETE", &format!("/control/sessions/{id}"), "alice")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

async fn json(state: &ControlState, req: Request<Body>) -> (StatusCode, serde_json::Value) {
    let (status, body, _) = call(state, req).await;
    (
        status,
        serde_json::from_str(&body).unwrap_or(serde_json::Value::Null),
    )
}

#[tokio::test]
async fn the_openapi_document_covers_every_route_and_its_errors() {
    let st = state().await;
    let (status, doc) = json(
        &st,
        req("GET", "/control/openapi.json")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    let mut routes: Vec<String> = paths
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .map(move |method| format!("{} {path}", method.to_uppercase()))
        })
        .collect();
    routes.sort();
    assert_eq!(
        routes,
        [
            "DELETE /control/sessions/{id}",
            "DELETE /control/ui-pass",
            "GET /control/backends",
            "GET /control/backends/{id}/logs",
            "GET /control/metrics",
            "GET /control/proxy",
            "GET /control/sessions",
            "GET /control/sessions/{id}",
            "GET /healthz",
            "GET /readyz",
            "POST /control/backends/{id}/drain",
            "POST /control/backends/{id}/undrain",
            "POST /control/reload",
            "POST /control/sessions",
            "POST /control/ui-pass",
        ]
    );
    // Each documented route answers (not the fallback's 404 for an unknown path).
    for route in &routes {
        let (method, path) = route.split_once(' ').unwrap();
        let path = path.replace("{id}", "backend-0");
        let (status, body, _) = call(&st, req(method, &path).body(Body::empty()).unwrap()).await;
        assert!(
            !body.contains("no such endpoint"),
            "{route}: {status} {body}"
        );
    }
    // A provider without profiles: the only profile a session may name is none (any name is
    // refused with 400, so the document must not invite one).
    assert_eq!(
        doc["components"]["schemas"]["CreateSession"]["properties"]["profile"]["enum"],
        serde_json::json!([null])
    );
    // Errors: one JSON shape, with the codes listed.
    let error = &doc["components"]["schemas"]["ErrorBody"];
    assert_eq!(error["required"], serde_json::json!(["error", "code"]));
    let codes = error["properties"]["code"]["enum"].as_array().unwrap();
    for code in [
        "NOT_FOUND",
        "PERMISSION_DENIED",
        "UNAUTHENTICATED",
        "INVALID_ARGUMENT",
    ] {
        assert!(codes.iter().any(|c| c == code), "{code} in {codes:?}");
    }
    let not_found = &doc["components"]["responses"]["NotFound"]["content"]["application/json"]["schema"]
        ["$ref"];
    assert_eq!(not_found, "#/components/schemas/ErrorBody");
    let get_session = &paths["/control/sessions/{id}"]["get"]["responses"];
    for status in ["200", "401", "403", "404"] {
        assert!(
            get_session.get(status).is_some(),
            "GET /control/sessions/{{id}} documents {status}"
        );
    }
    // Without authentication no operation asks for credentials; with it, those behind it do.
    assert!(doc["components"]["securitySchemes"].is_null());
    let st = state_with_tokens().await;
    let (_, doc) = json(
        &st,
        req("GET", "/control/openapi.json")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    assert!(doc["paths"]["/control/sessions"]["get"]["security"].is_array());
    assert!(doc["paths"]["/healthz"]["get"]["security"].is_null());
}

#[tokio::test]
async fn the_proxy_summary_shows_what_is_in_force_and_who_asks() {
    let st = state_with_tokens().await;
    let (status, info) = json(
        &st,
        req("GET", "/control/proxy")
            .header(header::AUTHORIZATION, "Bearer ta")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{info}");
    assert_eq!(info["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(info["policy"], "ROUND_ROBIN");
    assert_eq!(info["store"], "memory");
    assert_eq!(info["authentication"], true);
    assert_eq!(info["backends"], 2);
    assert_eq!(info["limits"]["max_message_size"], 128 * 1024 * 1024);
    assert_eq!(
        info["caller"],
        serde_json::json!({"user": "alice", "admin": false})
    );
    let (_, info) = json(
        &st,
        req("GET", "/control/proxy")
            .header(header::AUTHORIZATION, "Bearer tr")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(
        info["caller"],
        serde_json::json!({"user": "root", "admin": true})
    );
    let (status, _) = json(
        &st,
        req("GET", "/control/proxy").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn closed_sessions_are_listed_with_why_to_whoever_may_see_them() {
    let st = state_with_tokens().await;
    let create = |token: &'static str| {
        req("POST", "/control/sessions")
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap()
    };
    let (_, alice, _) = call(&st, create("ta")).await;
    let (_, bob, _) = call(&st, create("tb")).await;
    for (id, token) in [(&alice, "ta"), (&bob, "tb")] {
        let (status, _, _) = call(
            &st,
            req("DELETE", &format!("/control/sessions/{id}"))
                .header(header::AUTHORIZATION, format!("Bearer {token}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
    }
    let list = |token: &'static str| {
        req("GET", "/control/sessions")
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap()
    };
    let (_, mine) = json(&st, list("ta")).await;
    let closed = mine["recently_closed"].as_array().unwrap();
    assert_eq!(closed.len(), 1, "{mine}");
    assert_eq!(closed[0]["id"], alice.as_str());
    assert_eq!(closed[0]["close_reason"], "deleted");
    assert_eq!(closed[0]["state"], "closed");
    let (_, all) = json(&st, list("tr")).await;
    let ids: Vec<_> = all["recently_closed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].clone())
        .collect();
    assert_eq!(ids, [bob.as_str(), alice.as_str()], "newest first");
    // An array is not an object, even if serde could read one as a struct.
    let (status, body, _) = call(
        &st,
        req("POST", "/control/sessions")
            .header(header::AUTHORIZATION, "Bearer ta")
            .body(Body::from("[null, null]"))
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("not an object"), "{body}");
    // A JSON null body asks for the defaults, as the document allows.
    let (status, _, _) = call(
        &st,
        req("POST", "/control/sessions")
            .header(header::AUTHORIZATION, "Bearer ta")
            .body(Body::from("null"))
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn the_dashboard_is_served_from_the_binary_and_keeps_to_itself() {
    let st = state_with_tokens().await;
    // Its files need no token: they carry no data.
    let resp = app(st.clone())
        .oneshot(req("GET", "/ui/").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let csp = resp.headers()[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let html = String::from_utf8(body.to_vec()).unwrap();
    assert!(
        html.contains("app.js") && html.contains("app.css"),
        "{html}"
    );
    for (file, ctype) in [("app.js", "text/javascript"), ("app.css", "text/css")] {
        let (status, body, content_type) = call(
            &st,
            req("GET", &format!("/ui/{file}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert!(content_type.unwrap().starts_with(ctype));
        assert!(body.len() > 100, "{file} is embedded");
    }
    let resp = app(st.clone())
        .oneshot(req("GET", "/ui").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(resp.headers()[header::LOCATION], "/ui/");
    let (status, body, ctype) = call(
        &st,
        req("GET", "/ui/secrets.txt").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(ctype.as_deref(), Some("application/json"), "{body}");
}
