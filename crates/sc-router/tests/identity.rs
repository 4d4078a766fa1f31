//! Authentication, session ownership, identity rewriting and backend credentials, against
//! in-process fake backends.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

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
        .create_session(Some("alice".into()), None)
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
