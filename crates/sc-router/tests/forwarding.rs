//! The router in front of in-process fake backends: routing, streaming, metadata, errors and flow
//! control. (The same behaviour is proven against real Spark in the `sc-e2e` crate.)

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use sc_router::SessionRequest;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use sc_proto::codec::PassThroughCodec;
use sc_proto::spark::connect as pb;
use sc_router::RouterSettings;
use sc_router::policy::{MaxSessions, OneToOne, RoundRobin};
use sc_testkit::*;
use tonic::Code;

async fn two_backends() -> (Vec<String>, Vec<Arc<FakeState>>) {
    let (a, sa) = spawn_backend("fake-a").await;
    let (b, sb) = spawn_backend("fake-b").await;
    (vec![a.to_string(), b.to_string()], vec![sa, sb])
}

fn with_session_header<T>(msg: T, id: &str) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    r.metadata_mut()
        .insert("x-spark-connect-session-id", id.parse().unwrap());
    r
}

#[tokio::test]
async fn header_less_sessions_bind_round_robin_and_stick() {
    let (eps, _) = two_backends().await;
    let router = router(
        &eps,
        Arc::new(RoundRobin::default()),
        RouterSettings::default(),
    )
    .await;
    let mut c = client(spawn_proxy(&router).await).await;

    let first = backend_of(&mut c, "s1", "alice").await;
    let second = backend_of(&mut c, "s2", "bob").await;
    assert_ne!(
        first, second,
        "two sessions under ROUND_ROBIN land on different backends"
    );
    for _ in 0..5 {
        assert_eq!(backend_of(&mut c, "s1", "alice").await, first, "sticky");
        assert_eq!(backend_of(&mut c, "s2", "bob").await, second, "sticky");
    }
    let info = router.session("s1").unwrap();
    assert_eq!(info.user_id.as_deref(), Some("alice"));
    assert_eq!(router.sessions().len(), 2);
}

#[tokio::test]
async fn control_sessions_route_by_header_and_unknown_ids_are_not_found() {
    let (eps, states) = two_backends().await;
    let router = router(
        &eps,
        Arc::new(RoundRobin::default()),
        RouterSettings::default(),
    )
    .await;
    let mut c = client(spawn_proxy(&router).await).await;
    let s1 = router
        .create_session(&router.operator(), SessionRequest::new())
        .await
        .unwrap();
    let s2 = router
        .create_session(&router.operator(), SessionRequest::new())
        .await
        .unwrap();
    assert_ne!(s1.backend, s2.backend);

    // Any Spark session id inside goes where the header says.
    for spark_session in ["x", "y", "z"] {
        let resp = c
            .config(with_session_header(config_req(spark_session, "u"), &s2.id))
            .await
            .unwrap();
        assert_eq!(
            resp.get_ref().server_side_session_id,
            if s2.backend == "backend-0" {
                "fake-a"
            } else {
                "fake-b"
            }
        );
    }
    // The proxy-only header is not forwarded; other metadata is.
    let mut req = with_session_header(config_req("x", "u"), &s1.id);
    req.metadata_mut()
        .insert("x-custom", "kept".parse().unwrap());
    c.config(req).await.unwrap();
    let seen: Vec<_> = states.iter().flat_map(|s| s.seen()).collect();
    let last = seen
        .iter()
        .find(|s| s.metadata.get("x-custom").is_some())
        .expect("custom metadata reached the backend");
    assert_eq!(last.metadata.get("x-custom").unwrap(), "kept");
    assert!(
        seen.iter()
            .all(|s| s.metadata.get("x-spark-connect-session-id").is_none())
    );

    let err = c
        .config(with_session_header(config_req("x", "u"), "no-such-session"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert!(
        err.message().contains("POST /control/sessions"),
        "{}",
        err.message()
    );

    // Closing releases every Spark session its clients used, on its backend.
    let before: usize = states.iter().map(|s| s.count("ReleaseSession")).sum();
    router
        .close_session(&router.operator(), &s2.id)
        .await
        .unwrap();
    let after: usize = states.iter().map(|s| s.count("ReleaseSession")).sum();
    assert_eq!(after - before, 3);
    let err = c
        .config(with_session_header(config_req("x", "u"), &s2.id))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
}

#[tokio::test]
async fn streams_statuses_details_and_trailers_pass_unchanged() {
    let (eps, _) = two_backends().await;
    let router = router(
        &eps,
        Arc::new(RoundRobin::default()),
        RouterSettings::default(),
    )
    .await;
    let mut c = client(spawn_proxy(&router).await).await;

    let resp = c
        .execute_plan(execute_req("s", "u", "op-1", "select 1"))
        .await
        .unwrap();
    let backend = resp
        .metadata()
        .get("x-backend")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let mut stream = resp.into_inner();
    let mut n = 0;
    while let Some(msg) = stream.message().await.unwrap() {
        assert_eq!(msg.operation_id, "op-1");
        assert_eq!(msg.server_side_session_id, backend);
        n += 1;
    }
    assert_eq!(n, 3);

    let err = c
        .execute_plan(execute_req("s", "u", "op-2", "error"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(err.message(), "[TABLE_OR_VIEW_NOT_FOUND] fake error");
    assert_eq!(err.details(), b"\x0a\x03abc");
    assert_eq!(err.metadata().get("x-fake-trailer").unwrap(), "kept");

    let metrics = router.metrics().encode();
    assert!(
        metrics.contains("sc_proxy_calls_total{method=\"ExecutePlan\",code=\"OK\""),
        "{metrics}"
    );
    assert!(metrics.contains("code=\"INVALID_ARGUMENT\""), "{metrics}");
    assert!(
        metrics.contains("sc_proxy_bytes_total{direction=\"to_client\""),
        "{metrics}"
    );
}

#[tokio::test]
async fn all_twelve_methods_and_unknown_ones_are_forwarded() {
    let (eps, states) = two_backends().await;
    let router = router(
        &eps,
        Arc::new(RoundRobin::default()),
        RouterSettings::default(),
    )
    .await;
    let mut c = client(spawn_proxy(&router).await).await;
    let (s, u) = ("sess", "user");
    let backend = backend_of(&mut c, s, u).await;
    let state = states.iter().find(|st| st.name == backend).unwrap().clone();

    c.execute_plan(execute_req(s, u, "op", "select 1"))
        .await
        .unwrap();
    c.analyze_plan(pb::AnalyzePlanRequest {
        session_id: s.into(),
        user_context: ctx(u),
        ..Default::default()
    })
    .await
    .unwrap();
    let chunks: Vec<_> = (0..4)
        .map(|_| pb::AddArtifactsRequest {
            session_id: s.into(),
            user_context: ctx(u),
            ..Default::default()
        })
        .collect();
    let added = c
        .add_artifacts(futures_util::stream::iter(chunks))
        .await
        .unwrap();
    assert_eq!(
        added.get_ref().artifacts.len(),
        4,
        "every chunk of the client stream arrived"
    );
    c.artifact_status(pb::ArtifactStatusesRequest {
        session_id: s.into(),
        user_context: ctx(u),
        ..Default::default()
    })
    .await
    .unwrap();
    c.interrupt(pb::InterruptRequest {
        session_id: s.into(),
        user_context: ctx(u),
        ..Default::default()
    })
    .await
    .unwrap();
    c.reattach_execute(pb::ReattachExecuteRequest {
        session_id: s.into(),
        user_context: ctx(u),
        operation_id: "op".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    c.release_execute(pb::ReleaseExecuteRequest {
        session_id: s.into(),
        user_context: ctx(u),
        operation_id: "op".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    c.fetch_error_details(pb::FetchErrorDetailsRequest {
        session_id: s.into(),
        user_context: ctx(u),
        ..Default::default()
    })
    .await
    .unwrap();
    c.get_status(pb::GetStatusRequest {
        session_id: s.into(),
        user_context: ctx(u),
        ..Default::default()
    })
    .await
    .unwrap();
    c.clone_session(pb::CloneSessionRequest {
        session_id: s.into(),
        user_context: ctx(u),
        new_session_id: Some("cloned".into()),
        ..Default::default()
    })
    .await
    .unwrap();
    c.release_session(pb::ReleaseSessionRequest {
        session_id: s.into(),
        user_context: ctx(u),
        ..Default::default()
    })
    .await
    .unwrap();

    for m in [
        "Config",
        "ExecutePlan",
        "AnalyzePlan",
        "AddArtifacts",
        "ArtifactStatus",
        "Interrupt",
        "ReattachExecute",
        "ReleaseExecute",
        "FetchErrorDetails",
        "GetStatus",
        "CloneSession",
        "ReleaseSession",
    ] {
        assert_eq!(state.count(m), 1, "{m} reached the session's backend once");
    }
    // The clone is bound to the same backend; the released session is gone.
    assert_eq!(backend_of(&mut c, "cloned", u).await, backend);
    assert!(
        router.session(s).is_none(),
        "ReleaseSession drops the binding"
    );

    // A method this build does not know is forwarded as is (the fake answers UNIMPLEMENTED).
    let mut grpc = tonic::client::Grpc::new(
        tonic::transport::Channel::from_shared(format!("http://{}", spawn_proxy(&router).await))
            .unwrap()
            .connect()
            .await
            .unwrap(),
    );
    grpc.ready().await.unwrap();
    let body = prost::Message::encode_to_vec(&config_req("cloned", u));
    let err = grpc
        .unary::<Bytes, Bytes, _>(
            tonic::Request::new(Bytes::from(body)),
            "/spark.connect.SparkConnectService/SomeFutureMethod"
                .parse()
                .unwrap(),
            PassThroughCodec,
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unimplemented);
    let metrics = router.metrics().encode();
    assert!(
        metrics.contains("method=\"Other\",code=\"UNIMPLEMENTED\""),
        "{metrics}"
    );
}

#[tokio::test]
async fn operation_index_routes_reattach_of_a_foreign_session_id() {
    let (eps, states) = two_backends().await;
    let router = router(
        &eps,
        Arc::new(RoundRobin::default()),
        RouterSettings::default(),
    )
    .await;
    let mut c = client(spawn_proxy(&router).await).await;
    let owner = backend_of(&mut c, "s", "u").await;
    c.execute_plan(execute_req("s", "u", "op-77", "select 1"))
        .await
        .unwrap();
    // A reattach carrying only the operation id (its session id unknown to the proxy) still
    // reaches the backend that ran it.
    let req = pb::ReattachExecuteRequest {
        session_id: "other".into(),
        user_context: ctx("u"),
        operation_id: "op-77".into(),
        ..Default::default()
    };
    c.reattach_execute(req).await.unwrap();
    let st = states.iter().find(|s| s.name == owner).unwrap();
    assert_eq!(st.count("ReattachExecute"), 1);
    // ...but not for another user.
    let req = pb::ReattachExecuteRequest {
        session_id: "other2".into(),
        user_context: ctx("mallory"),
        operation_id: "op-77".into(),
        ..Default::default()
    };
    assert_eq!(
        c.reattach_execute(req).await.unwrap_err().code(),
        Code::PermissionDenied
    );
}

#[tokio::test]
async fn a_session_id_used_by_another_user_is_refused() {
    let (eps, _) = two_backends().await;
    let router = router(
        &eps,
        Arc::new(RoundRobin::default()),
        RouterSettings::default(),
    )
    .await;
    let mut c = client(spawn_proxy(&router).await).await;
    backend_of(&mut c, "shared", "alice").await;
    let err = c.config(config_req("shared", "bob")).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
}

#[tokio::test]
async fn malformed_and_oversize_requests_get_clear_statuses() {
    let (eps, _) = two_backends().await;
    let settings = RouterSettings {
        max_message_size: 4 * 1024 * 1024,
        ..Default::default()
    };
    let router = router(&eps, Arc::new(RoundRobin::default()), settings).await;
    let addr = spawn_proxy(&router).await;
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    let path = || "/spark.connect.SparkConnectService/Config".parse().unwrap();

    for (bytes, want) in [
        (vec![0x0a, 0x50, b'x'], Code::InvalidArgument), // truncated field
        (vec![0x0b], Code::InvalidArgument),             // group wire type
        (vec![0x12, 0x00], Code::InvalidArgument),       // no session id at all
        (vec![0x0a, 0x02, 0xff, 0xfe], Code::InvalidArgument), // not UTF-8
        (vec![0u8; 5 * 1024 * 1024], Code::ResourceExhausted), // too large
    ] {
        grpc.ready().await.unwrap();
        let err = grpc
            .unary::<Bytes, Bytes, _>(
                tonic::Request::new(Bytes::from(bytes)),
                path(),
                PassThroughCodec,
            )
            .await
            .unwrap_err();
        assert_eq!(err.code(), want, "{}", err.message());
    }
    // Still serving.
    let mut c = client(addr).await;
    backend_of(&mut c, "fine", "u").await;
    let metrics = router.metrics().encode();
    assert!(
        metrics.contains("sc_proxy_rejected_calls_total"),
        "{metrics}"
    );
}

#[tokio::test]
async fn one_to_one_and_max_sessions_report_exhaustion() {
    let (eps, _) = two_backends().await;
    let router1 = router(&eps, Arc::new(OneToOne), RouterSettings::default()).await;
    let mut c = client(spawn_proxy(&router1).await).await;
    let a = backend_of(&mut c, "a", "u").await;
    let b = backend_of(&mut c, "b", "u").await;
    assert_ne!(a, b);
    let err = c.config(config_req("c", "u")).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert!(err.message().contains("ONE_TO_ONE"), "{}", err.message());

    let router2 = router(
        &eps,
        Arc::new(MaxSessions::new(2)),
        RouterSettings::default(),
    )
    .await;
    let mut c = client(spawn_proxy(&router2).await).await;
    for s in ["1", "2", "3", "4"] {
        backend_of(&mut c, s, "u").await;
    }
    assert!(router2.backends().iter().all(|b| b.sessions == 2));
    assert_eq!(
        c.config(config_req("5", "u")).await.unwrap_err().code(),
        Code::ResourceExhausted
    );
    // Releasing frees a slot.
    c.release_session(pb::ReleaseSessionRequest {
        session_id: "1".into(),
        user_context: ctx("u"),
        ..Default::default()
    })
    .await
    .unwrap();
    backend_of(&mut c, "5", "u").await;
}

#[tokio::test]
async fn a_slow_reader_does_not_make_the_proxy_buffer_the_result() {
    let (a, state) = spawn_backend("big").await;
    let router = router(
        &[a.to_string()],
        Arc::new(RoundRobin::default()),
        RouterSettings::default(),
    )
    .await;
    let mut c = client(spawn_proxy(&router).await).await;
    // 256 messages of 1 MiB; read one, then stall.
    let mut stream = c
        .execute_plan(execute_req("s", "u", "op", "big:256:1048576"))
        .await
        .unwrap()
        .into_inner();
    stream.message().await.unwrap().unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let produced = state.produced.load(Ordering::SeqCst);
    assert!(
        produced < 48,
        "backend produced {produced} MiB while the client read 1: the proxy is buffering"
    );
    // Reading on drains everything.
    let mut n = 1;
    while stream.message().await.unwrap().is_some() {
        n += 1;
    }
    assert_eq!(n, 256);
}

#[tokio::test]
async fn a_stream_cut_by_the_backend_ends_with_unavailable_naming_it() {
    let (a, _) = spawn_backend("crashy").await;
    let router = router(
        &[a.to_string()],
        Arc::new(RoundRobin::default()),
        RouterSettings::default(),
    )
    .await;
    let mut c = client(spawn_proxy(&router).await).await;
    let mut stream = c
        .execute_plan(execute_req("s", "u", "op", "break:3"))
        .await
        .unwrap()
        .into_inner();
    for _ in 0..3 {
        stream.message().await.unwrap().unwrap();
    }
    let err = stream.message().await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert!(err.message().contains("backend-0"), "{}", err.message());
    // The proxy keeps serving, and reconnects to the backend.
    assert_eq!(backend_of(&mut c, "s", "u").await, "crashy");
}

#[tokio::test]
async fn limits_trigger_at_the_configured_numbers() {
    use sc_router::limits::LimitSettings;
    let (a, _) = spawn_backend("a").await;
    let settings = RouterSettings {
        limits: LimitSettings {
            max_sessions_per_user: Some(2),
            max_streams_per_user: Some(1),
            requests_per_second: Some(1),
            burst: Some(5),
            ..Default::default()
        },
        ..Default::default()
    };
    let router = router(&[a.to_string()], Arc::new(RoundRobin::default()), settings).await;
    let mut c = client(spawn_proxy(&router).await).await;

    // Two sessions for alice, the third is refused; bob is not affected.
    backend_of(&mut c, "a1", "alice").await;
    backend_of(&mut c, "a2", "alice").await;
    let err = c.config(config_req("a3", "alice")).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert!(
        err.message().contains("max_sessions_per_user"),
        "{}",
        err.message()
    );
    backend_of(&mut c, "b1", "bob").await;

    // One call in flight per user: hold a stream open, the next call is refused until it ends.
    let mut held = c
        .execute_plan(execute_req("b1", "bob", "op", "big:64:1048576"))
        .await
        .unwrap()
        .into_inner();
    held.message().await.unwrap().unwrap();
    let err = c.config(config_req("b1", "bob")).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert!(
        err.message().contains("max_streams_per_user"),
        "{}",
        err.message()
    );
    drop(held);
    tokio::time::sleep(Duration::from_millis(200)).await;

    // The rate: bob has used 3 of a burst of 5; two more pass, then RESOURCE_EXHAUSTED with a retry hint.
    let mut refused = None;
    for _ in 0..4 {
        if let Err(e) = c.config(config_req("b1", "bob")).await {
            refused = Some(e);
            break;
        }
    }
    let err = refused.expect("the rate limit refused a call");
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert!(
        err.message().contains("requests_per_second"),
        "{}",
        err.message()
    );
    assert!(!err.details().is_empty(), "RetryInfo is attached");

    // A released session frees its slot.
    c.release_session(pb::ReleaseSessionRequest {
        session_id: "a1".into(),
        user_context: ctx("alice"),
        ..Default::default()
    })
    .await
    .unwrap();
    backend_of(&mut c, "a3", "alice").await;
    let metrics = router.metrics().encode();
    for limit in ["sessions_per_user", "streams_per_user", "rate"] {
        assert!(
            metrics.contains(&format!(
                "sc_proxy_limit_rejections_total{{limit=\"{limit}\"}}"
            )),
            "{limit}: {metrics}"
        );
    }
}

fn fast_probes() -> RouterSettings {
    RouterSettings {
        health: sc_router::HealthSettings {
            interval: Duration::from_millis(100),
            timeout: Duration::from_millis(500),
            unhealthy_threshold: 1,
            healthy_threshold: 1,
        },
        connect_timeout: Duration::from_millis(500),
        ..Default::default()
    }
}

fn health_of(router: &sc_router::Router, id: &str) -> &'static str {
    router
        .backends()
        .into_iter()
        .find(|b| b.id == id)
        .unwrap()
        .health
}

#[tokio::test]
async fn unreachable_backends_get_no_new_sessions_until_probes_see_them_back() {
    let (live, _) = spawn_backend("live").await;
    let port = dead_port().await;
    let dead: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let router = router(
        &[live.to_string(), dead.to_string()],
        Arc::new(RoundRobin::default()),
        fast_probes(),
    )
    .await;
    let mut c = client(spawn_proxy(&router).await).await;

    // Probes (and the first failed call) mark backend-1 unhealthy; new sessions avoid it.
    let mut waited = 0;
    while health_of(&router, "backend-1") != "unhealthy"
        || health_of(&router, "backend-0") != "healthy"
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited += 1;
        assert!(
            waited < 100,
            "backend-1 never marked unhealthy ({}) or backend-0 never healthy ({})",
            health_of(&router, "backend-1"),
            health_of(&router, "backend-0")
        );
    }
    for s in ["n1", "n2", "n3", "n4"] {
        assert_eq!(
            backend_of(&mut c, s, "u").await,
            "live",
            "{s} went to the unhealthy backend"
        );
    }
    assert!(
        router
            .metrics()
            .encode()
            .contains("sc_proxy_backend_up{backend=\"backend-1\"} 0")
    );

    // The backend comes back: probes see it and new sessions reach it again.
    spawn_backend_at("revived", dead).await;
    let mut waited = 0;
    while health_of(&router, "backend-1") != "healthy" {
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited += 1;
        assert!(waited < 100, "backend-1 never came back");
    }
    let mut seen = std::collections::HashSet::new();
    for s in ["m1", "m2", "m3", "m4"] {
        seen.insert(backend_of(&mut c, s, "u").await);
    }
    assert!(seen.contains("revived"), "{seen:?}");
}

#[tokio::test]
async fn a_drained_backend_keeps_its_sessions_and_gets_no_new_ones() {
    let (eps, _) = two_backends().await;
    let router = router(
        &eps,
        Arc::new(RoundRobin::default()),
        RouterSettings::default(),
    )
    .await;
    let mut c = client(spawn_proxy(&router).await).await;
    let first = backend_of(&mut c, "kept", "u").await;
    let drained = router.session("kept").unwrap().backend;
    let info = router
        .set_draining(&router.operator(), &drained, true)
        .unwrap();
    assert_eq!(info.state, "draining");
    for s in ["d1", "d2", "d3"] {
        assert_ne!(router.session(s).map(|i| i.backend), Some(drained.clone()));
        backend_of(&mut c, s, "u").await;
        assert_ne!(
            router.session(s).unwrap().backend,
            drained,
            "{s} was placed on the drained backend"
        );
    }
    assert_eq!(
        backend_of(&mut c, "kept", "u").await,
        first,
        "the drained backend's session carries on"
    );
    router
        .set_draining(&router.operator(), &drained, false)
        .unwrap();
    let mut backends = std::collections::HashSet::new();
    for s in ["e1", "e2", "e3"] {
        backend_of(&mut c, s, "u").await;
        backends.insert(router.session(s).unwrap().backend);
    }
    assert!(
        backends.contains(&drained),
        "undrained backend receives sessions again"
    );
    assert_eq!(
        router
            .set_draining(&router.operator(), "nope", true)
            .unwrap_err()
            .code(),
        Code::NotFound
    );
}

#[tokio::test]
async fn the_clients_authorization_never_reaches_a_backend_with_authentication_off() {
    fn with_token<T>(mut r: tonic::Request<T>) -> tonic::Request<T> {
        r.metadata_mut()
            .insert("authorization", "Bearer client-secret".parse().unwrap());
        r
    }
    // Backends without a token of their own, no authentication layer.
    let (eps, states) = two_backends().await;
    let router = router(
        &eps,
        Arc::new(RoundRobin::default()),
        RouterSettings::default(),
    )
    .await;
    let mut c = client(spawn_proxy(&router).await).await;
    let resp = c
        .config(with_token(tonic::Request::new(config_req("s1", "alice"))))
        .await
        .unwrap()
        .into_inner();
    let echoed = resp
        .pairs
        .iter()
        .find(|p| p.key == "spark.connect.authenticate.token")
        .unwrap();
    assert_eq!(echoed.value, None, "the backend saw no token to echo");
    let control = router
        .create_session(&router.operator(), SessionRequest::new())
        .await
        .unwrap();
    c.config(with_token(with_session_header(
        config_req("x", "u"),
        &control.id,
    )))
    .await
    .unwrap();
    let mut stream = c
        .execute_plan(with_token(tonic::Request::new(execute_req(
            "s1", "alice", "op-1", "select 1",
        ))))
        .await
        .unwrap()
        .into_inner();
    while stream.message().await.unwrap().is_some() {}
    let seen: Vec<_> = states.iter().flat_map(|s| s.seen()).collect();
    assert_eq!(seen.len(), 3, "{seen:?}");
    for call in &seen {
        assert!(
            call.metadata.get("authorization").is_none(),
            "{} reached the backend with the client's authorization",
            call.method
        );
    }

    // A backend with a token gets its own, not the client's.
    let (b, state) = spawn_backend("fake-b").await;
    let router = router_with_tokens(&[(b.to_string(), "backend-secret")], None).await;
    let mut c = client(spawn_proxy(&router).await).await;
    c.config(with_token(tonic::Request::new(config_req("s2", "bob"))))
        .await
        .unwrap();
    let seen = state.seen();
    assert_eq!(
        seen[0].metadata.get_all("authorization").iter().count(),
        1,
        "one authorization header"
    );
    assert_eq!(
        seen[0].metadata.get("authorization").unwrap(),
        "Bearer backend-secret"
    );
}

#[tokio::test]
async fn operation_index_routes_interrupt_of_a_foreign_session_id() {
    let (eps, states) = two_backends().await;
    let router = router(
        &eps,
        Arc::new(RoundRobin::default()),
        RouterSettings::default(),
    )
    .await;
    let mut c = client(spawn_proxy(&router).await).await;
    let owner = backend_of(&mut c, "s", "u").await;
    c.execute_plan(execute_req("s", "u", "op-88", "select 1"))
        .await
        .unwrap();
    // An interrupt by operation id whose session id the proxy has never seen reaches the
    // backend that ran the operation (not the proxy's own "nothing to interrupt" answer).
    let resp = c
        .interrupt(pb::InterruptRequest {
            session_id: "never-seen".into(),
            user_context: ctx("u"),
            interrupt_type: pb::interrupt_request::InterruptType::OperationId as i32,
            interrupt: Some(pb::interrupt_request::Interrupt::OperationId(
                "op-88".into(),
            )),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resp.server_side_session_id, owner, "answered by the owner");
    let st = states.iter().find(|s| s.name == owner).unwrap();
    assert_eq!(st.count("Interrupt"), 1);
    let total: usize = states.iter().map(|s| s.count("Interrupt")).sum();
    assert_eq!(total, 1, "only the owner saw the interrupt");
    // ...but not for another user.
    let err = c
        .interrupt(pb::InterruptRequest {
            session_id: "never-seen-2".into(),
            user_context: ctx("mallory"),
            interrupt_type: pb::interrupt_request::InterruptType::OperationId as i32,
            interrupt: Some(pb::interrupt_request::Interrupt::OperationId(
                "op-88".into(),
            )),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    // An interrupt by tag carries no operation id: with an unknown session it is answered by
    // the proxy and reaches no backend.
    let resp = c
        .interrupt(pb::InterruptRequest {
            session_id: "never-seen-3".into(),
            user_context: ctx("u"),
            interrupt_type: pb::interrupt_request::InterruptType::Tag as i32,
            interrupt: Some(pb::interrupt_request::Interrupt::OperationTag(
                "op-88".into(),
            )),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resp.server_side_session_id, "");
    let total: usize = states.iter().map(|s| s.count("Interrupt")).sum();
    assert_eq!(total, 1, "the tag interrupt reached no backend");
}

#[tokio::test]
async fn operation_index_routes_release_execute_of_a_foreign_session_id() {
    let (eps, states) = two_backends().await;
    let router = router(
        &eps,
        Arc::new(RoundRobin::default()),
        RouterSettings::default(),
    )
    .await;
    let mut c = client(spawn_proxy(&router).await).await;
    // Two sessions, so the two backends each hold one: routing to the wrong one would show.
    let owner = backend_of(&mut c, "s", "u").await;
    let other = backend_of(&mut c, "t", "u").await;
    assert_ne!(owner, other);
    c.execute_plan(execute_req("s", "u", "op-99", "select 1"))
        .await
        .unwrap();
    let release = |session: &str, user: &str, all: bool| pb::ReleaseExecuteRequest {
        session_id: session.into(),
        user_context: ctx(user),
        operation_id: "op-99".into(),
        release: Some(if all {
            pb::release_execute_request::Release::ReleaseAll(
                pb::release_execute_request::ReleaseAll {},
            )
        } else {
            pb::release_execute_request::Release::ReleaseUntil(
                pb::release_execute_request::ReleaseUntil {
                    response_id: "r0".into(),
                },
            )
        }),
        ..Default::default()
    };
    let owner_state = states.iter().find(|s| s.name == owner).unwrap();
    let other_state = states.iter().find(|s| s.name == other).unwrap();

    let resp = c
        .release_execute(release("unknown-1", "u", false))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resp.server_side_session_id, owner, "answered by the owner");
    assert_eq!(owner_state.count("ReleaseExecute"), 1);
    assert_eq!(other_state.count("ReleaseExecute"), 0);

    // ...not for another user.
    assert_eq!(
        c.release_execute(release("unknown-2", "mallory", true))
            .await
            .unwrap_err()
            .code(),
        Code::PermissionDenied
    );

    // ReleaseAll reaches the owner too, and ends the operation's entry in the index.
    let resp = c
        .release_execute(release("unknown-3", "u", true))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resp.server_side_session_id, owner);
    assert_eq!(owner_state.count("ReleaseExecute"), 2);
    let resp = c
        .release_execute(release("unknown-4", "u", true))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        resp.server_side_session_id, "",
        "after ReleaseAll the proxy answers itself"
    );
    assert_eq!(owner_state.count("ReleaseExecute"), 2);
    assert_eq!(other_state.count("ReleaseExecute"), 0);
}

fn bytes_metric(router: &sc_router::Router, direction: &str, backend: &str) -> f64 {
    let metrics = router.metrics().encode();
    let name = format!("sc_proxy_bytes_total{{direction=\"{direction}\",backend=\"{backend}\"}}");
    sc_testkit::metric_value(&metrics, &name).unwrap_or_else(|| panic!("no {name} in {metrics}"))
}

#[tokio::test]
async fn bytes_counters_grow_by_at_least_the_bytes_forwarded() {
    let (a, _) = spawn_backend("fake-a").await;
    let router = router(
        &[a.to_string()],
        Arc::new(RoundRobin::default()),
        RouterSettings::default(),
    )
    .await;
    let mut c = client(spawn_proxy(&router).await).await;
    backend_of(&mut c, "s", "u").await;
    let to_backend_before = bytes_metric(&router, "to_backend", "backend-0");
    let to_client_before = bytes_metric(&router, "to_client", "backend-0");

    // A 3 MiB request: an artifact upload in two messages.
    const SIZE: usize = 3 * 1024 * 1024;
    let chunks = vec![
        artifact_req("s", "u", "a.jar", SIZE / 2),
        artifact_req("s", "u", "b.jar", SIZE / 2),
    ];
    let sent: usize = chunks.iter().map(prost::Message::encoded_len).sum();
    assert!(sent >= SIZE);
    c.add_artifacts(futures_util::stream::iter(chunks))
        .await
        .unwrap();
    let to_backend = bytes_metric(&router, "to_backend", "backend-0");
    assert!(
        to_backend - to_backend_before >= sent as f64,
        "to_backend grew by {} after sending {sent} bytes",
        to_backend - to_backend_before
    );
    let to_client = bytes_metric(&router, "to_client", "backend-0");
    assert!(
        to_client - to_client_before < SIZE as f64 / 2.0,
        "the small answer did not count as a big response"
    );

    // A 4 MiB response: 4 messages of 1 MiB.
    let mut stream = c
        .execute_plan(execute_req("s", "u", "op", "big:4:1048576"))
        .await
        .unwrap()
        .into_inner();
    let mut received = 0usize;
    while let Some(msg) = stream.message().await.unwrap() {
        received += prost::Message::encoded_len(&msg);
    }
    assert!(received >= 4 * 1024 * 1024);
    // The call's end is noted as the stream finishes; give the counters a moment.
    let mut waited = 0;
    loop {
        let grown = bytes_metric(&router, "to_client", "backend-0") - to_client;
        if grown >= received as f64 {
            break;
        }
        waited += 1;
        assert!(
            waited < 50,
            "to_client grew by {grown} after {received} response bytes"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
