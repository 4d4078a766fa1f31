//! Backends that die under their sessions, against in-process fake backends: a backend whose
//! address refuses connections fails every session on it at once with `FAILED_PRECONDITION`
//! naming it, while a backend that is reachable but misbehaves stays `UNAVAILABLE` (its
//! sessions may recover). (The same is proven with real Spark and PySpark in `sc-e2e`.)

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::net::SocketAddr;
use std::sync::Arc;

use sc_router::RouterSettings;
use sc_router::policy::RoundRobin;
use sc_testkit::*;
use tonic::Code;

/// A fake backend on its own runtime and thread: killing it closes its listener and every
/// connection at once, as the death of a server process does.
struct Killable {
    addr: SocketAddr,
    kill: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Killable {
    fn start(name: &'static str) -> Killable {
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (kill_tx, kill_rx) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            let (addr, _) = runtime.block_on(spawn_backend(name));
            addr_tx.send(addr).unwrap();
            let _ = kill_rx.recv();
            runtime.shutdown_background();
        });
        Killable {
            addr: addr_rx.recv().unwrap(),
            kill: Some(kill_tx),
            thread: Some(thread),
        }
    }

    fn kill(&mut self) {
        drop(self.kill.take());
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
    }
}

#[tokio::test]
async fn a_killed_backend_fails_every_session_on_it_at_once_and_the_other_carries_on() {
    let (live, _) = spawn_backend("live").await;
    let mut doomed = Killable::start("doomed");
    let router = router(
        &[live.to_string(), doomed.addr.to_string()],
        Arc::new(RoundRobin::default()),
        RouterSettings::default(),
    )
    .await;
    let mut c = client(spawn_proxy(&router).await).await;
    // Six sessions, in turn on each backend.
    let sessions: Vec<String> = (0..6).map(|i| format!("s{i}")).collect();
    for s in &sessions {
        backend_of(&mut c, s, "u").await;
    }
    let on = |backend: &str| -> Vec<String> {
        sessions
            .iter()
            .filter(|s| router.session(s).unwrap().backend == backend)
            .cloned()
            .collect()
    };
    let (on_live, on_doomed) = (on("backend-0"), on("backend-1"));
    assert_eq!((on_live.len(), on_doomed.len()), (3, 3));

    doomed.kill();
    // The first call after the kill already gets the clear, non-retryable error...
    let err = c.config(config_req(&on_doomed[0], "u")).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    for needle in ["is dead", "backend-1", "is gone", "connection refused"] {
        assert!(
            err.message().contains(needle),
            "{needle}: {}",
            err.message()
        );
    }
    // ...and every other session of that backend is dead before its next call.
    for s in &on_doomed {
        let info = router.session(s).unwrap();
        assert_eq!(info.state, "dead", "{info:?}");
        assert!(info.error.unwrap().contains("connection refused"));
    }
    for s in &on_doomed[1..] {
        let err = c
            .execute_plan(execute_req(s, "u", "op", "select 1"))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    }
    // The survivor's sessions see no failure.
    for s in &on_live {
        assert_eq!(backend_of(&mut c, s, "u").await, "live");
        assert_eq!(router.session(s).unwrap().state, "idle");
    }
    let metrics = router.metrics().encode();
    assert_eq!(
        metric_value(
            &metrics,
            "sc_proxy_backend_deaths_total{cause=\"unreachable\"}"
        ),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        metric_value(
            &metrics,
            "sc_proxy_sessions_dead_total{cause=\"unreachable\"}"
        ),
        Some(3.0),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_reachable_backend_that_fails_calls_stays_unavailable() {
    // A server that accepts connections and closes them at once: alive, but no use. The
    // session may recover when it is fixed, so it must not be declared dead.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            drop(stream);
        }
    });
    let router = router(
        &[addr.to_string()],
        Arc::new(RoundRobin::default()),
        RouterSettings::default(),
    )
    .await;
    let mut c = client(spawn_proxy(&router).await).await;
    let err = c.config(config_req("s", "u")).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert!(err.message().contains("backend-0"), "{}", err.message());
    assert_ne!(router.session("s").unwrap().state, "dead");
}

#[tokio::test]
async fn a_backend_that_never_listened_fails_its_session_clearly() {
    let (live, state) = spawn_backend("live").await;
    let dead = format!("127.0.0.1:{}", dead_port().await);
    let router = router(
        &[live.to_string(), dead.clone()],
        Arc::new(RoundRobin::default()),
        RouterSettings::default(),
    )
    .await;
    let mut c = client(spawn_proxy(&router).await).await;
    assert_eq!(backend_of(&mut c, "on-live", "u").await, "live");
    let err = c.config(config_req("on-dead", "u")).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(
        err.message().contains("backend-1") && err.message().contains(&dead),
        "{}",
        err.message()
    );
    for _ in 0..3 {
        assert_eq!(backend_of(&mut c, "on-live", "u").await, "live");
    }
    assert!(state.count("Config") >= 4);
}
