//! Helpers shared by the real-Spark test binaries of this crate.

use std::time::Duration;

/// The most any condition is waited for.
pub(crate) const PATIENCE: Duration = Duration::from_secs(180);

/// Polls `check` until it returns `Some`, for at most [`PATIENCE`]: waiting for a condition,
/// never asserting on elapsed time (the limit only turns a hang into a failure).
pub(crate) async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "gave up waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
