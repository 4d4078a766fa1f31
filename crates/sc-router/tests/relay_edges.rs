//! The relay's edge cases, against in-process fake backends: a client that goes away mid-stream,
//! a reader that stops reading (window exhaustion), trailers-only answers, a backend stream that
//! breaks, and a client stream abandoned half-way. These always use the relay (the rest of the
//! router's suite runs through it too, and through the tower service with
//! `SC_TEST_TRANSPORT=tower`).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use sc_router::RouterSettings;
use sc_router::policy::RoundRobin;
use sc_testkit::*;
use tonic::Code;

async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..200 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{what} never happened");
}

/// `big:n:size`: a result of `n` batches of `size` bytes each.
fn big(
    session: &str,
    op: &str,
    n: usize,
    size: usize,
) -> sc_proto::spark::connect::ExecutePlanRequest {
    execute_req(session, "u", op, &format!("big:{n}:{size}"))
}

#[tokio::test]
async fn a_client_that_leaves_mid_stream_frees_the_call_and_stops_the_backend() {
    let (addr, state) = spawn_backend("fake").await;
    let router = router(
        &[addr.to_string()],
        Arc::new(RoundRobin::default()),
        RouterSettings::default(),
    )
    .await;
    let mut c = client(spawn_relay(router.relay(None)).await).await;
    let mut stream = c
        .execute_plan(big("s", "op", 10_000, 64 * 1024))
        .await
        .unwrap()
        .into_inner();
    for _ in 0..3 {
        stream.message().await.unwrap().unwrap();
    }
    drop(stream);
    // The call ends (no stream left in flight, the session idle) and the backend stops early:
    // the reset reached it, and flow control had held it back meanwhile.
    eventually("the call ended", || {
        router.backends()[0].active_streams == 0
            && router.session("s").is_some_and(|s| s.state == "idle")
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let produced = state.produced.load(Ordering::SeqCst);
    assert!(
        produced < 1_000,
        "the backend went on producing: {produced}"
    );
    let metrics = router.metrics().encode();
    assert_eq!(
        metric_value(
            &metrics,
            "sc_proxy_calls_total{method=\"ExecutePlan\",code=\"CANCELLED\",backend=\"backend-0\"}"
        ),
        Some(1.0),
        "{metrics}"
    );
    // The connection and the backend keep serving.
    assert_eq!(backend_of(&mut c, "s", "u").await, "fake");
}

#[tokio::test]
async fn a_reader_that_stops_holds_back_its_stream_only() {
    let (addr, state) = spawn_backend("fake").await;
    let router = router(
        &[addr.to_string()],
        Arc::new(RoundRobin::default()),
        RouterSettings::default(),
    )
    .await;
    let proxy = spawn_relay(router.relay(None)).await;
    let mut c = client(proxy).await;
    // One stream read no further than its first message: its window fills and the backend
    // stops producing for it.
    let mut stalled = c
        .execute_plan(big("slow-reader", "stalled", 5_000, 256 * 1024))
        .await
        .unwrap()
        .into_inner();
    stalled.message().await.unwrap().unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let held = state.produced.load(Ordering::SeqCst);
    // About the client's stream window and the backend's (2 MiB each) plus a few in flight:
    // nowhere near the 1.25 GB the query would produce.
    assert!(
        held < 100,
        "the proxy buffered a stalled stream: {held} batches"
    );
    // Meanwhile, on the same client connection and the same backend connection, other calls
    // and a full result flow.
    for i in 0..5 {
        assert_eq!(backend_of(&mut c, &format!("other-{i}"), "v").await, "fake");
    }
    let mut other = client(proxy).await;
    let mut full = other
        .execute_plan(big("full", "complete", 40, 256 * 1024))
        .await
        .unwrap()
        .into_inner();
    let mut n = 0;
    while full.message().await.unwrap().is_some() {
        n += 1;
    }
    assert_eq!(n, 40);
    // The stalled stream resumes where it stopped.
    for _ in 0..20 {
        stalled.message().await.unwrap().unwrap();
    }
}

#[tokio::test]
async fn trailers_only_answers_and_broken_streams_reach_the_client_as_they_should() {
    let (addr, _) = spawn_backend("fake").await;
    let router = router(
        &[addr.to_string()],
        Arc::new(RoundRobin::default()),
        RouterSettings::default(),
    )
    .await;
    let mut c = client(spawn_relay(router.relay(None)).await).await;
    // A trailers-only error: code, message, details and the backend's own trailer, untouched.
    let err = c
        .execute_plan(execute_req("s", "u", "e1", "error"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(err.message(), "[TABLE_OR_VIEW_NOT_FOUND] fake error");
    assert_eq!(err.details(), b"\x0a\x03abc");
    assert_eq!(err.metadata().get("x-fake-trailer").unwrap(), "kept");
    // A backend stream that breaks after three messages: the client gets them, then a status
    // naming the backend.
    let mut stream = c
        .execute_plan(execute_req("s", "u", "b1", "break:3"))
        .await
        .unwrap()
        .into_inner();
    let mut got = 0;
    let err = loop {
        match stream.message().await {
            Ok(Some(_)) => got += 1,
            Ok(None) => panic!("the stream ended cleanly"),
            Err(e) => break e,
        }
    };
    assert_eq!(got, 3);
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert!(err.message().contains("backend-0"), "{}", err.message());
}

#[tokio::test]
async fn a_client_stream_abandoned_half_way_is_not_completed_on_the_backend() {
    let (addr, state) = spawn_backend("fake").await;
    let router = router(
        &[addr.to_string()],
        Arc::new(RoundRobin::default()),
        RouterSettings::default(),
    )
    .await;
    let mut c = client(spawn_relay(router.relay(None)).await).await;
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tx.send(artifact_req("s", "u", "jars/a.jar", 1024))
        .await
        .unwrap();
    let call = tokio::spawn(async move {
        c.add_artifacts(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The client gives up before its stream ends (its request stream stays open: it is reset,
    // not ended).
    call.abort();
    eventually("the call ended", || {
        router.backends()[0].active_streams == 0
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        state.count("AddArtifacts"),
        0,
        "the backend took a truncated upload as complete"
    );
    drop(tx);
}
