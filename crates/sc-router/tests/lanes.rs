//! Backend connections: one per backend shared by every session and call, or, for a server
//! that runs a single-threaded runtime per thread, one per connection lane.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use sc_router::RouterSettings;
use sc_router::policy::RoundRobin;
use sc_testkit::*;
use tokio::net::TcpListener;

/// A TCP relay in front of `backend` that counts the connections made through it.
async fn counting_relay(backend: SocketAddr) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let counted = count.clone();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut outbound = tokio::net::TcpStream::connect(backend).await.unwrap();
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            });
        }
    });
    (addr, count)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_session_and_call_shares_one_connection_per_backend() {
    let (backend, state) = spawn_backend("fake").await;
    let (relay, connections) = counting_relay(backend).await;
    let router = router(
        &[relay.to_string()],
        Arc::new(RoundRobin::default()),
        RouterSettings::default(),
    )
    .await;
    let proxy = spawn_proxy(&router).await;
    let mut calls = Vec::new();
    for client_no in 0..8 {
        calls.push(tokio::spawn(async move {
            let mut c = client(proxy).await;
            for session_no in 0..4 {
                let session = format!("s-{client_no}-{session_no}");
                for _ in 0..5 {
                    c.config(config_req(&session, "u")).await.unwrap();
                }
            }
        }));
    }
    for call in calls {
        call.await.unwrap();
    }
    assert_eq!(state.count("Config"), 8 * 4 * 5);
    assert_eq!(connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn each_lane_has_its_own_connection() {
    let (backend, state) = spawn_backend("fake").await;
    let (relay, connections) = counting_relay(backend).await;
    let settings = RouterSettings {
        connection_lanes: 2,
        ..RouterSettings::default()
    };
    let router = router(
        &[relay.to_string()],
        Arc::new(RoundRobin::default()),
        settings,
    )
    .await;
    // Two threads, each a single-threaded runtime serving the router on its own port, as the
    // proxy's gRPC workers do.
    let mut threads = Vec::new();
    for lane in 0..2 {
        let router = router.clone();
        threads.push(std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            sc_router::use_connection_lane(lane);
            runtime.block_on(async move {
                let mut c = client(spawn_proxy(&router).await).await;
                for session_no in 0..4 {
                    let session = format!("lane{lane}-{session_no}");
                    for _ in 0..5 {
                        c.config(config_req(&session, "u")).await.unwrap();
                    }
                }
            });
        }));
    }
    for thread in threads {
        tokio::task::spawn_blocking(move || thread.join().unwrap())
            .await
            .unwrap();
    }
    assert_eq!(state.count("Config"), 2 * 4 * 5);
    assert_eq!(connections.load(Ordering::SeqCst), 2);
}
