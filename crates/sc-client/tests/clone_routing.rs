//! `clone_session` through the gateway's router, in front of two fake Spark Connect backends:
//! the SDK names the copy in the CloneSession request, so the router binds it to the backend
//! that made it, and the copy's calls reach that backend.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use sc_client::{RetryPolicy, SparkSession};
use sc_router::RouterSettings;
use sc_router::policy::RoundRobin;
use sc_testkit::FakeState;

fn saw(state: &FakeState, method: &str, session_id: &str) -> bool {
    state
        .seen()
        .iter()
        .any(|s| s.method == method && s.session_id == session_id)
}

#[tokio::test]
async fn a_clone_stays_on_its_parents_backend() {
    let (a, state_a) = sc_testkit::spawn_backend("a").await;
    let (b, state_b) = sc_testkit::spawn_backend("b").await;
    let router = sc_testkit::router(
        &[a.to_string(), b.to_string()],
        Arc::new(RoundRobin::default()),
        RouterSettings::default(),
    )
    .await;
    let proxy = sc_testkit::spawn_proxy(&router).await;
    let spark = SparkSession::builder()
        .remote(format!("sc://{proxy}"))
        .retry_policy(RetryPolicy::none())
        .build()
        .await
        .unwrap();
    spark.conf().get_all(None).await.unwrap();
    let (home, other) = if saw(&state_a, "Config", spark.session_id()) {
        (&state_a, &state_b)
    } else {
        (&state_b, &state_a)
    };
    assert!(saw(home, "Config", spark.session_id()));

    // Round robin would send a session it has not seen to the other backend; the clone is
    // bound where CloneSession ran.
    for _ in 0..2 {
        let clone = spark.clone_session(None).await.unwrap();
        assert!(saw(home, "CloneSession", spark.session_id()));
        clone.conf().get_all(None).await.unwrap();
        assert!(
            saw(home, "Config", clone.session_id()),
            "the clone reached its backend"
        );
        assert!(!saw(other, "Config", clone.session_id()));
    }
}
