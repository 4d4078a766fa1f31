//! Sessions over time, against in-process fake backends: idle expiry and maximum lifetime,
//! backend restarts, per-session metrics, the session store across router restarts, and
//! configuration reloads. (The same is proven with real Spark and PySpark in `sc-e2e`.)

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use sc_router::SessionRequest;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use sc_backend_predefined::{EndpointSpec, PredefinedProvider, PredefinedSpec};
use sc_router::policy::RoundRobin;
use sc_router::{Router, RouterSettings};
use sc_testkit::*;
use tonic::Code;

fn fast_expiry(idle: Duration) -> RouterSettings {
    let mut settings = RouterSettings::default();
    settings.sessions.idle_timeout = idle;
    settings.sessions.check_interval = Duration::from_millis(50);
    settings
}

fn provider(endpoints: &[String]) -> Arc<PredefinedProvider> {
    let spec = PredefinedSpec {
        endpoints: endpoints
            .iter()
            .map(|u| EndpointSpec::new(u.clone()))
            .collect(),
    };
    Arc::new(PredefinedProvider::new("fake", &spec).unwrap())
}

#[tokio::test]
async fn an_idle_session_expires_and_is_released_but_a_busy_one_does_not() {
    let (a, state) = spawn_backend("fake-a").await;
    let router = router(
        &[a.to_string()],
        Arc::new(RoundRobin::default()),
        fast_expiry(Duration::from_millis(600)),
    )
    .await;
    let mut c = client(spawn_proxy(&router).await).await;

    c.config(config_req("idle", "alice")).await.unwrap();
    // The busy session runs a query of about 2 s, well past the idle timeout.
    let mut busy = c.clone();
    let query = tokio::spawn(async move {
        let mut stream = busy
            .execute_plan(execute_req("busy", "bob", "slow", "select 1"))
            .await
            .unwrap()
            .into_inner();
        let mut n = 0;
        while let Some(m) = stream.message().await.unwrap() {
            let _ = m;
            n += 1;
        }
        n
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(router.session("idle").is_none(), "the idle session expired");
    let busy_info = router.session("busy").expect("the busy session is kept");
    assert_eq!(busy_info.state, "busy");
    assert_eq!(busy_info.metrics.active_operations, 1);
    // Its backend-side session was released.
    assert!(
        state
            .seen()
            .iter()
            .any(|s| s.method == "ReleaseSession" && s.session_id == "idle")
    );
    // Its client learns why instead of silently getting a fresh session.
    let err = c.config(config_req("idle", "alice")).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains("idle timeout"), "{}", err.message());

    assert_eq!(query.await.unwrap(), 10, "the busy query ran to its end");
    let metrics = router.metrics().encode();
    assert!(
        metrics.contains("sc_proxy_sessions_closed_total{reason=\"idle_timeout\"} 1"),
        "{metrics}"
    );
    // Once idle for the timeout, the busy one goes too.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(router.session("busy").is_none());
}

#[tokio::test]
async fn maximum_lifetime_closes_sessions_between_calls() {
    let (a, _) = spawn_backend("fake-a").await;
    let mut settings = fast_expiry(Duration::ZERO);
    settings.sessions.max_lifetime = Duration::from_millis(400);
    let router = router(&[a.to_string()], Arc::new(RoundRobin::default()), settings).await;
    let created = router
        .create_session(&router.operator(), SessionRequest::new())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(router.session(&created.id).is_none());
}

#[tokio::test]
async fn a_backend_restart_marks_the_session_dead_with_a_clear_error() {
    let (a, state) = spawn_backend("fake-a").await;
    let router = router(
        &[a.to_string()],
        Arc::new(RoundRobin::default()),
        RouterSettings::default(),
    )
    .await;
    let mut c = client(spawn_proxy(&router).await).await;
    c.config(config_req("s1", "alice")).await.unwrap();
    c.config(config_req("s1", "alice")).await.unwrap();

    state.restarts.fetch_add(1, Ordering::Relaxed);
    let err = c.config(config_req("s1", "alice")).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains("restarted"), "{}", err.message());
    let info = router.session("s1").unwrap();
    assert_eq!(info.state, "dead");
    assert!(info.error.unwrap().contains("fake-a-restart1"));
    // Every later call is refused the same way; a release is accepted and ends it.
    let err = c
        .execute_plan(execute_req("s1", "alice", "op", "select 1"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    c.release_session(sc_proto::spark::connect::ReleaseSessionRequest {
        session_id: "s1".into(),
        user_context: ctx("alice"),
        ..Default::default()
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(router.session("s1").is_none());
    // Other sessions on the restarted backend start fresh and work.
    c.config(config_req("s2", "alice")).await.unwrap();
}

#[tokio::test]
async fn each_session_counts_its_queries_bytes_and_errors() {
    let (a, _) = spawn_backend("fake-a").await;
    let router = router(
        &[a.to_string()],
        Arc::new(RoundRobin::default()),
        RouterSettings::default(),
    )
    .await;
    let mut c = client(spawn_proxy(&router).await).await;
    for op in ["op-1", "op-2"] {
        let mut s = c
            .execute_plan(execute_req("m", "alice", op, "big:3:1000"))
            .await
            .unwrap()
            .into_inner();
        while s.message().await.unwrap().is_some() {}
    }
    let failed = c
        .execute_plan(execute_req("m", "alice", "op-3", "error"))
        .await;
    assert!(failed.is_err());
    tokio::time::sleep(Duration::from_millis(50)).await;
    let m = router.session("m").unwrap().metrics;
    assert_eq!(m.queries_executed, 3);
    assert_eq!(m.active_operations, 0);
    assert_eq!(m.errors, 1);
    assert!(m.bytes_out > 3000, "{m:?}");
    assert!(m.bytes_in > 0);
    let text = router.metrics().encode();
    assert!(text.contains("sc_proxy_session_queries_total"), "{text}");
    assert!(text.contains("sc_proxy_session_errors_total"), "{text}");
}

#[tokio::test]
async fn sessions_survive_a_router_restart_with_the_embedded_store() {
    let (a, _) = spawn_backend("fake-a").await;
    let (b, _) = spawn_backend("fake-b").await;
    let endpoints = [a.to_string(), b.to_string()];
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sessions.redb");
    let copy = dir.path().join("after-restart.redb");
    let endpoints = &endpoints;
    let build = |path: std::path::PathBuf| async move {
        let store = sc_store::RedbStore::open(&path).await.unwrap();
        Router::builder()
            .provider(provider(endpoints))
            .policy(Arc::new(RoundRobin::default()))
            .store(Some(Arc::new(store)))
            .build()
            .await
            .unwrap()
    };
    let (control_id, bound_backend, control_backend) = {
        let router = build(path.clone()).await;
        let mut c = client(spawn_proxy(&router).await).await;
        let bound_backend = backend_of(&mut c, "bound-1", "alice").await;
        let mut r = tonic::Request::new(execute_req("bound-1", "alice", "op-9", "select 1"));
        r.set_timeout(Duration::from_secs(5));
        let mut s = c.execute_plan(r).await.unwrap().into_inner();
        while s.message().await.unwrap().is_some() {}
        let created = router
            .create_session(&router.operator(), SessionRequest::new().user_id("bob"))
            .await
            .unwrap();
        router.shutdown().await;
        (created.id, bound_backend, created.backend)
    };
    // A restart: the first router's server task lives on in this test process (and holds the
    // file's lock), so the second router opens a copy of the file as the first left it.
    std::fs::copy(&path, &copy).unwrap();
    let router = build(copy.clone()).await;
    let info = router.session("bound-1").expect("bound session restored");
    assert_eq!(info.user_id.as_deref(), Some("alice"));
    assert_eq!(
        router.session(&control_id).unwrap().backend,
        control_backend
    );
    let mut c = client(spawn_proxy(&router).await).await;
    assert_eq!(backend_of(&mut c, "bound-1", "alice").await, bound_backend);
    // The operation index came back too: a reattach finds its session by operation id.
    let err = c
        .reattach_execute(sc_proto::spark::connect::ReattachExecuteRequest {
            session_id: "unknown-session".into(),
            user_context: ctx("alice"),
            operation_id: "op-9".into(),
            ..Default::default()
        })
        .await;
    assert!(
        !matches!(&err, Err(s) if s.code() == Code::NotFound),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_reload_adds_and_drains_backends_without_cutting_sessions() {
    let (a, _) = spawn_backend("fake-a").await;
    let (b, _) = spawn_backend("fake-b").await;
    let router = Router::builder()
        .provider(provider(&[a.to_string()]))
        .policy(Arc::new(RoundRobin::default()))
        .build()
        .await
        .unwrap();
    let mut c = client(spawn_proxy(&router).await).await;
    assert_eq!(backend_of(&mut c, "on-a", "u").await, "fake-a");

    // Replace backend A by backend B.
    let report = router
        .reconfigure(
            vec![provider(&[b.to_string()])],
            Arc::new(RoundRobin::default()),
            Default::default(),
        )
        .await
        .unwrap();
    assert_eq!(report.backends_removed, vec!["backend-0".to_string()]);
    assert_eq!(report.backends_added, vec!["backend-0".to_string()]);
    // The old session keeps its backend; new ones go to B.
    assert_eq!(backend_of(&mut c, "on-a", "u").await, "fake-a");
    assert_eq!(backend_of(&mut c, "new-1", "u").await, "fake-b");
    assert_eq!(backend_of(&mut c, "new-2", "u").await, "fake-b");
    let states: Vec<_> = router.backends().iter().map(|b| b.state).collect();
    assert!(states.contains(&"removed"), "{states:?}");
    // When the old session ends, the removed backend leaves.
    router
        .close_session(&router.operator(), "on-a")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(router.backends().len(), 1, "{:?}", router.backends());
}
