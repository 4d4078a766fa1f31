//! An embedded router lives on its own: built and served as an embedder would (nothing else
//! started), it expires idle sessions, probes backends, follows a provider whose backends
//! change, answers readiness from its provider and policy, and stops everything on shutdown.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use sc_backend_api::{
    Backend, BackendId, BackendProvider, LoadPolicy, ProviderError, ProviderStatus, StartRequest,
};
use sc_router::policy::{OnDemand, RoundRobin};
use sc_router::{Access, Plane, Router, RouterSettings, SessionRequest};
use sc_testkit::*;
use tokio::sync::Notify;
use tonic::Code;

/// A provider whose list the test changes, as a discovery provider's would.
#[derive(Default)]
struct Discovered {
    backends: Mutex<Vec<Backend>>,
    changed: Notify,
    failures: Mutex<u64>,
    shut_down: AtomicBool,
    starts: bool,
}

impl Discovered {
    fn set(&self, addrs: &[std::net::SocketAddr]) {
        *self.backends.lock().unwrap() = addrs
            .iter()
            .map(|a| {
                Backend::new(
                    BackendId::new(format!("d-{}", a.port())),
                    format!("http://{a}").parse().unwrap(),
                )
            })
            .collect();
        self.changed.notify_one();
    }
}

#[async_trait]
impl BackendProvider for Discovered {
    fn name(&self) -> &str {
        "discovered"
    }

    async fn list(&self) -> Result<Vec<Backend>, ProviderError> {
        Ok(self.backends.lock().unwrap().clone())
    }

    async fn changed(&self) {
        self.changed.notified().await;
    }

    fn can_start(&self) -> bool {
        self.starts
    }

    async fn start(&self, _: &StartRequest) -> Result<Backend, ProviderError> {
        Err(ProviderError::StartFailed("the test starts nothing".into()))
    }

    fn status(&self) -> ProviderStatus {
        ProviderStatus::new(*self.failures.lock().unwrap(), None)
    }

    async fn shutdown(&self) {
        self.shut_down.store(true, Ordering::SeqCst);
    }
}

fn settings() -> RouterSettings {
    let mut settings = RouterSettings::default();
    settings.sessions.idle_timeout = Duration::from_millis(400);
    settings.sessions.check_interval = Duration::from_millis(50);
    settings.health.interval = Duration::from_millis(100);
    settings.health.timeout = Duration::from_millis(500);
    settings.health.unhealthy_threshold = 1;
    settings.connect_timeout = Duration::from_millis(500);
    settings
}

async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..200 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{what} never happened");
}

#[tokio::test]
async fn a_built_router_expires_probes_follows_its_provider_and_stops_on_shutdown() {
    let (a, a_state) = spawn_backend("a").await;
    let (b, _) = spawn_backend("b").await;
    let dead = format!("127.0.0.1:{}", dead_port().await).parse().unwrap();
    let provider = Arc::new(Discovered::default());
    provider.set(&[a, dead]);
    let router = Router::builder()
        .provider(provider.clone())
        .policy(Arc::new(RoundRobin::default()))
        .settings(settings())
        .build()
        .await
        .unwrap();
    // Served as an embedder serves it: the tower service in tonic's server.
    let mut c = client(spawn_tower_proxy(&router).await).await;

    // Health probes run without being started: the dead backend is marked.
    let health = |id: &str| {
        router
            .backends()
            .into_iter()
            .find(|b| b.id == id)
            .map(|b| b.health)
    };
    let dead_id = format!("d-{}", dead.port());
    eventually("the dead backend marked unhealthy", || {
        health(&dead_id) == Some("unhealthy")
    })
    .await;

    // Idle expiry runs without being started: the session is released on its backend.
    assert_eq!(backend_of(&mut c, "s1", "alice").await, "a");
    eventually(
        "the idle session expired and was released on its backend",
        || {
            router.session("s1").is_none()
                && a_state
                    .seen()
                    .iter()
                    .any(|s| s.method == "ReleaseSession" && s.session_id == "s1")
        },
    )
    .await;

    // The provider discovers b and loses a: new sessions go to b, a drains and its session
    // carries on until it ends.
    assert_eq!(backend_of(&mut c, "on-a", "alice").await, "a");
    provider.set(&[b]);
    let a_id = format!("d-{}", a.port());
    eventually("b added and a draining", || {
        let all = router.backends();
        all.iter()
            .any(|x| x.id == format!("d-{}", b.port()) && x.state == "active")
            && all.iter().any(|x| x.id == a_id && x.state == "removed")
    })
    .await;
    for s in ["n1", "n2", "n3"] {
        assert_eq!(backend_of(&mut c, s, "bob").await, "b", "{s}");
    }
    assert_eq!(
        backend_of(&mut c, "on-a", "alice").await,
        "a",
        "a's session carries on"
    );
    // Once its session is gone, a leaves the pool.
    router
        .close_session(&router.operator(), "on-a")
        .await
        .unwrap();
    eventually("a left the pool", || {
        router.backends().iter().all(|x| x.id != a_id)
    })
    .await;

    // The provider's failures show in the metrics.
    *provider.failures.lock().unwrap() = 3;
    eventually("the failures shown", || {
        metric_value(
            &router.metrics().encode(),
            "sc_proxy_provider_refresh_failures_total{provider=\"discovered\"}",
        ) == Some(3.0)
    })
    .await;
    assert_eq!(router.providers()[0].refresh_failures, 3);

    // Shutdown stops the background work and the provider.
    router.shutdown().await;
    assert!(provider.shut_down.load(Ordering::SeqCst));
    assert_eq!(backend_of(&mut c, "late", "carol").await, "b");
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(
        router.session("late").is_some(),
        "no expiry after shutdown: the keeper stopped"
    );
}

#[tokio::test]
async fn readiness_asks_the_provider_and_the_policy() {
    let build = |starts: bool, policy: Arc<dyn LoadPolicy>| async move {
        let provider = Arc::new(Discovered {
            starts,
            ..Default::default()
        });
        Router::builder()
            .provider(provider)
            .policy(policy)
            .settings(settings())
            .build()
            .await
            .unwrap()
    };
    assert!(
        !build(false, Arc::new(OnDemand)).await.ready(),
        "no backend, none to start"
    );
    assert!(
        build(true, Arc::new(OnDemand)).await.ready(),
        "backends can be started"
    );

    /// A policy that only ever places on existing backends.
    struct ExistingOnly;
    impl LoadPolicy for ExistingOnly {
        fn name(&self) -> &str {
            "EXISTING_ONLY"
        }
        fn choose(&self, _: &[sc_backend_api::BackendLoad<'_>]) -> sc_backend_api::Placement {
            sc_backend_api::Placement::Exhausted("no backends".into())
        }
        fn starts_backends(&self) -> bool {
            false
        }
    }
    assert!(
        !build(true, Arc::new(ExistingOnly)).await.ready(),
        "the policy never asks for a backend"
    );
}

#[tokio::test]
async fn the_control_plane_api_asks_the_same_authorization_as_grpc() {
    let (a, _) = spawn_backend("a").await;
    let router = router(
        &[a.to_string()],
        Arc::new(RoundRobin::default()),
        RouterSettings::default(),
    )
    .await;
    let mut c = client(spawn_proxy(&router).await).await;
    // Alice's header-less session, and a control session created for her by the operator with
    // an application name.
    backend_of(&mut c, "alice-s", "alice").await;
    let operator = router.operator();
    let control = router
        .create_session(
            &operator,
            SessionRequest::new()
                .user_id("alice")
                .app_name("etl nightly"),
        )
        .await
        .unwrap();
    assert_eq!(control.app_name.as_deref(), Some("etl nightly"));

    // Authentication off: the claimed user decides, as on the gRPC port.
    let bob = router.caller(None, Some("bob"), Plane::Control);
    let alice = router.caller(None, Some("alice"), Plane::Control);
    for id in ["alice-s", control.id.as_str()] {
        assert_eq!(
            router.session_for(&bob, id).unwrap_err().code(),
            Code::PermissionDenied
        );
        assert!(router.session_for(&alice, id).is_ok());
    }
    assert!(router.sessions_for(&bob).is_empty());
    assert_eq!(router.sessions_for(&alice).len(), 2);
    assert_eq!(router.sessions_for(&operator).len(), 2);
    assert_eq!(
        router
            .close_session(&bob, "alice-s")
            .await
            .unwrap_err()
            .code(),
        Code::PermissionDenied
    );
    // Bob claims on gRPC what he was refused here: refused there too.
    assert_eq!(
        c.config(config_req("alice-s", "bob"))
            .await
            .unwrap_err()
            .code(),
        Code::PermissionDenied
    );
    // Acting on the proxy is the operator's.
    let e = router.set_draining(&bob, "backend-0", true).unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    assert!(e.to_string().contains("x-spark-connect-user-id"), "{e}");
    assert!(bob.authorize(Access::Operate { action: "reload" }).is_err());
    router.set_draining(&operator, "backend-0", false).unwrap();
    // Creating a session for someone else too.
    let e = router
        .create_session(&bob, SessionRequest::new().user_id("alice"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    let own = router
        .create_session(&bob, SessionRequest::new())
        .await
        .unwrap();
    assert_eq!(own.user_id.as_deref(), Some("bob"));
    // Bad fields are refused, naming the field.
    let e = router
        .create_session(&operator, SessionRequest::new().app_name("a\nb"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.to_string().contains("app_name"), "{e}");
    // Alice closes her own.
    router.close_session(&alice, "alice-s").await.unwrap();
}
