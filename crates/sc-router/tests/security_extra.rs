//! Security features not covered elsewhere: the global stream limit, the rewriting of
//! `user_context.user_name`, and ReleaseSession of another user's session.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use sc_proto::spark::connect as pb;
use sc_router::RouterSettings;
use sc_router::policy::RoundRobin;
use sc_testkit::*;
use tonic::Code;

fn auth() -> sc_auth::AuthSettings {
    let entry = |token: &str, user: &str| sc_auth::TokenEntry {
        token: Some(token.into()),
        sha256: None,
        user: user.into(),
        groups: Vec::new(),
    };
    sc_auth::AuthSettings {
        tokens: vec![entry("ta", "alice"), entry("tb", "bob")],
        ..Default::default()
    }
}

fn as_user<T>(msg: T, token: &str) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    r.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    r
}

#[tokio::test]
async fn max_streams_total_counts_calls_of_all_users_together() {
    use sc_router::limits::LimitSettings;
    let (a, _) = spawn_backend("a").await;
    let settings = RouterSettings {
        limits: LimitSettings {
            max_streams_total: Some(2),
            ..Default::default()
        },
        ..Default::default()
    };
    let router = router(&[a.to_string()], Arc::new(RoundRobin::default()), settings).await;
    let proxy = spawn_proxy(&router).await;
    // One connection per user, so that an unread stream holds no other user's window.
    let (mut alice, mut bob, mut carol) = (
        client(proxy).await,
        client(proxy).await,
        client(proxy).await,
    );

    // Two long-running queries from two users, kept open by not reading them.
    let mut held_alice = alice
        .execute_plan(execute_req("sa", "alice", "op-a", "big:64:1048576"))
        .await
        .unwrap()
        .into_inner();
    held_alice.message().await.unwrap().unwrap();
    let mut held_bob = bob
        .execute_plan(execute_req("sb", "bob", "op-b", "big:64:1048576"))
        .await
        .unwrap()
        .into_inner();
    held_bob.message().await.unwrap().unwrap();

    // A third user, who has nothing in flight, is refused: the limit is for all users together.
    let err = carol
        .execute_plan(execute_req("sc", "carol", "op-c", "select 1"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(
        err.message().contains("max_streams_total"),
        "{}",
        err.message()
    );
    let metrics = router.metrics().encode();
    assert_eq!(
        metric_value(
            &metrics,
            "sc_proxy_limit_rejections_total{limit=\"streams_total\"}"
        ),
        Some(1.0),
        "{metrics}"
    );

    // One call finishes (read to its end): its place is free, and carol's next call is admitted.
    while held_alice.message().await.unwrap().is_some() {}
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut admitted = loop {
        match carol
            .execute_plan(execute_req("sc", "carol", "op-c2", "select 1"))
            .await
        {
            Ok(stream) => break stream.into_inner(),
            Err(e) => {
                assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "the finished call never gave its place back"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    let mut responses = 0;
    while admitted.message().await.unwrap().is_some() {
        responses += 1;
    }
    assert_eq!(responses, 3);
    drop(held_bob);
}

#[tokio::test]
async fn the_backend_sees_the_verified_user_as_user_id_and_user_name() {
    let (a, state) = spawn_backend("a").await;
    let router = router_with_tokens(&[(a.to_string(), "backend-secret")], None).await;
    let mut c = client(spawn_proxy_with_auth(&router, auth()).await).await;

    // Bob claims to be alice in both fields.
    c.config(as_user(config_req("s1", "alice"), "tb"))
        .await
        .unwrap();
    let mut stream = c
        .execute_plan(as_user(
            execute_req("s1", "alice", "op-1", "select 1"),
            "tb",
        ))
        .await
        .unwrap()
        .into_inner();
    while stream.message().await.unwrap().is_some() {}

    // Bob's user_id is right but his user_name claims alice: the name is still overwritten.
    let mut req = config_req("s1", "bob");
    req.user_context.as_mut().unwrap().user_name = "alice".into();
    c.config(as_user(req, "tb")).await.unwrap();

    let seen = state.seen();
    for method in ["Config", "ExecutePlan"] {
        assert!(
            seen.iter().any(|s| s.method == method),
            "{method}: {seen:?}"
        );
    }
    assert_eq!(seen.iter().filter(|s| s.method == "Config").count(), 2);
    for s in &seen {
        assert_eq!(s.user_id, "bob", "{}: user_id", s.method);
        assert_eq!(s.user_name, "bob", "{}: user_name", s.method);
    }
}

#[tokio::test]
async fn release_session_of_another_users_session_is_refused_and_never_forwarded() {
    let (a, state) = spawn_backend("a").await;
    let router = router_with_tokens(&[(a.to_string(), "t")], None).await;
    let mut c = client(spawn_proxy_with_auth(&router, auth()).await).await;

    // Alice's header-less session.
    c.config(as_user(config_req("alice-s", "alice"), "ta"))
        .await
        .unwrap();
    assert!(router.session("alice-s").is_some());
    let release = |user: &str| pb::ReleaseSessionRequest {
        session_id: "alice-s".into(),
        user_context: ctx(user),
        ..Default::default()
    };
    let before = state.count("ReleaseSession");

    // Bob, whatever user he claims, may not release it.
    for claimed in ["bob", "alice"] {
        let err = c
            .release_session(as_user(release(claimed), "tb"))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
        assert!(!err.message().contains("alice"), "{}", err.message());
    }
    assert_eq!(
        state.count("ReleaseSession"),
        before,
        "the backend never received bob's ReleaseSession"
    );
    assert!(
        router.session("alice-s").is_some(),
        "the session is still there"
    );

    // Alice may.
    c.release_session(as_user(release("alice"), "ta"))
        .await
        .unwrap();
    assert_eq!(state.count("ReleaseSession"), before + 1);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while router.session("alice-s").is_some() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "alice's ReleaseSession did not close the session"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
