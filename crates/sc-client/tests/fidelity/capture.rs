//! Captures the plan an async sc-client call sends (an action, a command, a catalog call), with
//! sc-testkit's fake Spark Connect server: the call runs for real against the fake, which
//! records the plan; what the fake answers does not matter.

use std::sync::Arc;

use sc_client::proto::Plan;
use sc_client::{RetryPolicy, SparkSession};
use sc_testkit::FakeState;

/// A fake server that records the plans it receives.
pub(crate) struct Capture {
    remote: String,
    state: Arc<FakeState>,
}

impl Capture {
    /// Starts the fake server on a free loopback port.
    pub(crate) async fn start() -> Self {
        let (addr, state) = sc_testkit::spawn_backend("capture").await;
        Self {
            remote: format!("sc://{addr}"),
            state,
        }
    }

    /// The first plan `call` sends, run on a fresh session (plan ids count from 0). The call's
    /// result is ignored: the fake answers nothing a real server would.
    pub(crate) async fn plan_of<F>(&self, call: F) -> Option<Plan>
    where
        F: AsyncFnOnce(SparkSession),
    {
        let spark = SparkSession::builder()
            .remote(&self.remote)
            .retry_policy(RetryPolicy::none())
            .build()
            .await
            .expect("a session to the capturing fake");
        let before = self.state.plans().len();
        // Boxed: the futures of some calls are large, and the cases' match holds the largest.
        Box::pin(call(spark)).await;
        self.state.plans().get(before).cloned()
    }
}
