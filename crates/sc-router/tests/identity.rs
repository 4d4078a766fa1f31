//! Authentication, session ownership, identity rewriting and backend credentials, against
//! in-process fake backends.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use sc_router::SessionRequest;
use std::sync::Arc;
use std::time::Duration;

use sc_backend_predefined::{EndpointSpec, PredefinedProvider, PredefinedSpec};
use sc_proto::spark::connect as pb;
use sc_testkit::*;
use tonic::Code;

fn auth() -> sc_auth::AuthSettings {
    let entry = |token: &str, user: &str, groups: &[&str]| sc_auth::TokenEntry {
        token: Some(token.into()),
        sha256: None,
        user: user.into(),
        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
    };
    sc_auth::AuthSettings {
        tokens: vec![
            entry("ta", "alice", &[]),
            entry("tb", "bob", &[]),
            entry("tr", "root", &["admins"]),
        ],
        admin_group: Some("admins".into()),
        ..Default::default()
    }
}

fn as_user<T>(msg: T, token: &str) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    r.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    r
}

fn with_header<T>(mut r: tonic::Request<T>, session: &str) -> tonic::Request<T> {
    r.metadata_mut()
        .insert("x-spark-connect-session-id", session.parse().unwrap());
    r
}

#[tokio::test]
async fn unauthenticated_calls_are_refused_before_any_backend_sees_them() {
    let (a, state) = spawn_backend("a").await;
    let router = router_with_tokens(&[(a.to_string(), "backend-secret")], None).await;
    let mut c = client(spawn_proxy_with_auth(&router, auth()).await).await;
    let err = c.config(config_req("s", "alice")).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert!(err.message().contains("token="), "{}", err.message());
    let err = c
        .config(as_user(config_req("s", "alice"), "not-a-token"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert!(!err.message().contains("not-a-token"), "{}", err.message());
    assert!(state.seen().is_empty());
}

#[tokio::test]
async fn spark_sees_the_verified_user_and_the_backend_token_never_the_clients() {
    let (a, state) = spawn_backend("a").await;
    let router = router_with_tokens(&[(a.to_string(), "backend-secret")], None).await;
    let mut c = client(spawn_proxy_with_auth(&router, auth()).await).await;

    // Bob claims to be alice in the request body.
    let resp = c
        .config(as_user(config_req("s1", "alice"), "tb"))
        .await
        .unwrap()
        .into_inner();
    let seen = state.seen();
    assert_eq!(
        seen[0].user_id, "bob",
        "the proxy overwrote user_context.user_id"
    );
    let authz = seen[0]
        .metadata
        .get("authorization")
        .unwrap()
        .to_str()
        .unwrap();
    assert_eq!(
        authz, "Bearer backend-secret",
        "backend token injected, client token dropped"
    );
    // The token Spark would echo back through Config is redacted.
    let token = resp
        .pairs
        .iter()
        .find(|p| p.key == "spark.connect.authenticate.token")
        .unwrap();
    assert_eq!(token.value.as_deref(), Some("*********(redacted)"));
    assert_eq!(
        router.session("s1").unwrap().user_id.as_deref(),
        Some("bob")
    );

    // Streaming calls and their first message too.
    c.execute_plan(as_user(execute_req("s1", "root", "op-1", "select 1"), "tb"))
        .await
        .unwrap();
    assert!(state.seen().iter().all(|s| s.user_id == "bob"));
}

#[tokio::test]
async fn another_user_cannot_use_a_session_by_header_body_or_operation() {
    let (a, state) = spawn_backend("a").await;
    let router = router_with_tokens(&[(a.to_string(), "t")], Some("admins")).await;
    let mut c = client(spawn_proxy_with_auth(&router, auth()).await).await;

    // Alice: a control session, a header-less session and an operation.
    let control = router
        .create_session(&router.operator(), SessionRequest::new().user_id("alice"))
        .await
        .unwrap();
    c.config(with_header(
        as_user(config_req("x", "alice"), "ta"),
        &control.id,
    ))
    .await
    .unwrap();
    c.config(as_user(config_req("alice-s", "alice"), "ta"))
        .await
        .unwrap();
    c.execute_plan(as_user(
        execute_req("alice-s", "alice", "alice-op", "select 1"),
        "ta",
    ))
    .await
    .unwrap();
    let before = state.seen().len();

    let by_header = c
        .config(with_header(
            as_user(config_req("x", "bob"), "tb"),
            &control.id,
        ))
        .await
        .unwrap_err();
    let by_body = c
        .config(as_user(config_req("alice-s", "alice"), "tb"))
        .await
        .unwrap_err();
    let reattach = pb::ReattachExecuteRequest {
        session_id: "bob-s".into(),
        operation_id: "alice-op".into(),
        ..Default::default()
    };
    let by_op = c
        .reattach_execute(as_user(reattach, "tb"))
        .await
        .unwrap_err();
    let release = pb::ReleaseExecuteRequest {
        session_id: "bob-s".into(),
        operation_id: "alice-op".into(),
        ..Default::default()
    };
    let by_release = c.release_execute(as_user(release, "tb")).await.unwrap_err();
    let interrupt = pb::InterruptRequest {
        session_id: "bob-s".into(),
        interrupt: Some(pb::interrupt_request::Interrupt::OperationId(
            "alice-op".into(),
        )),
        ..Default::default()
    };
    let by_interrupt = c.interrupt(as_user(interrupt, "tb")).await.unwrap_err();
    for err in [by_header, by_body, by_op, by_release, by_interrupt] {
        assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
        assert!(
            !err.message().contains("alice"),
            "nothing leaked: {}",
            err.message()
        );
    }
    assert_eq!(
        state.seen().len(),
        before,
        "the backend never received bob's calls"
    );

    // An admin may.
    c.config(with_header(
        as_user(config_req("x", "root"), "tr"),
        &control.id,
    ))
    .await
    .unwrap();
}

#[tokio::test]
async fn only_the_owner_or_an_admin_learns_why_a_session_was_closed() {
    let (a, _) = spawn_backend("a").await;
    let mut settings = sc_router::RouterSettings::default();
    settings.sessions.idle_timeout = Duration::from_millis(300);
    settings.sessions.check_interval = Duration::from_millis(50);
    let spec = PredefinedSpec {
        endpoints: vec![EndpointSpec::new(a.to_string())],
    };
    let router = sc_router::Router::builder()
        .provider(Arc::new(PredefinedProvider::new("fake", &spec).unwrap()))
        .admin_group(Some("admins".into()))
        .settings(settings)
        .build()
        .await
        .unwrap();
    let mut c = client(spawn_proxy_with_auth(&router, auth()).await).await;

    // Alice: a control session and a header-less one, both left to idle out.
    let control = router
        .create_session(&router.operator(), SessionRequest::new().user_id("alice"))
        .await
        .unwrap();
    c.config(with_header(
        as_user(config_req("x", "alice"), "ta"),
        &control.id,
    ))
    .await
    .unwrap();
    c.config(as_user(config_req("alice-s", "alice"), "ta"))
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while router.session(&control.id).is_some() || router.session("alice-s").is_some() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the sessions never expired"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Bob gets what he gets for a live session of Alice's: nothing about why it closed.
    let by_header = c
        .config(with_header(
            as_user(config_req("x", "bob"), "tb"),
            &control.id,
        ))
        .await
        .unwrap_err();
    let by_body = c
        .config(as_user(config_req("alice-s", "alice"), "tb"))
        .await
        .unwrap_err();
    for err in [by_header, by_body] {
        assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
        assert_eq!(err.message(), "permission denied for this session");
    }
    assert!(
        router.session("alice-s").is_none(),
        "bob's call bound nothing"
    );

    // Alice and an admin learn why.
    for (token, user) in [("ta", "alice"), ("tr", "root")] {
        let by_header = c
            .config(with_header(
                as_user(config_req("x", user), token),
                &control.id,
            ))
            .await
            .unwrap_err();
        let by_body = c
            .config(as_user(config_req("alice-s", user), token))
            .await
            .unwrap_err();
        for err in [by_header, by_body] {
            assert_eq!(err.code(), Code::FailedPrecondition, "{user}: {err:?}");
            assert!(
                err.message().contains("idle timeout"),
                "{user}: {}",
                err.message()
            );
        }
    }

    // Without authentication, the owner is the user the request claims: the same rule.
    let mut open = client(spawn_proxy(&router).await).await;
    let claims_bob = open.config(config_req("alice-s", "bob")).await.unwrap_err();
    assert_eq!(claims_bob.code(), Code::PermissionDenied, "{claims_bob:?}");
    let claims_bob = open
        .config(with_header(
            tonic::Request::new(config_req("x", "bob")),
            &control.id,
        ))
        .await
        .unwrap_err();
    assert_eq!(claims_bob.code(), Code::PermissionDenied, "{claims_bob:?}");
    let claims_alice = open
        .config(config_req("alice-s", "alice"))
        .await
        .unwrap_err();
    assert_eq!(claims_alice.code(), Code::FailedPrecondition);
}
