//! Example: a backend provider written outside the proxy's crates.
//!
//! `EnvProvider` reads its Spark Connect servers from the `SPARK_BACKENDS` environment variable
//! (`host:port,host:port`) every time the router asks, and serves them with a router on
//! `127.0.0.1:8080` (or the first argument). Run:
//!
//! ```text
//! SPARK_BACKENDS=localhost:15002 cargo run -p example-custom-provider -- 127.0.0.1:8080
//! ```
//!
//! Only the public APIs of `sc-backend-api` and `sc-router` are used.

use std::sync::Arc;

use async_trait::async_trait;
use sc_backend_api::{Backend, BackendId, BackendProvider, ProviderError};
use sc_router::Router;
use sc_router::policy::LeastSessions;

/// Backends listed in an environment variable.
struct EnvProvider {
    variable: String,
}

#[async_trait]
impl BackendProvider for EnvProvider {
    fn name(&self) -> &str {
        "env"
    }

    async fn list(&self) -> Result<Vec<Backend>, ProviderError> {
        let value = std::env::var(&self.variable).map_err(|_| {
            ProviderError::Config(format!(
                "set {} to a comma-separated list of host:port",
                self.variable
            ))
        })?;
        value
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .enumerate()
            .map(|(i, hostport)| {
                let endpoint = format!("http://{hostport}").parse().map_err(|e| {
                    ProviderError::Config(format!(
                        "{}: '{hostport}' is not host:port: {e}",
                        self.variable
                    ))
                })?;
                Ok(Backend::new(BackendId::new(format!("env-{i}")), endpoint))
            })
            .collect()
    }
    // `start`, `stop` and `health` keep their documented defaults: this provider cannot start
    // servers, has nothing to stop, and leaves health to the router.
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".into());
    let router = Router::builder()
        .provider(Arc::new(EnvProvider {
            variable: "SPARK_BACKENDS".into(),
        }))
        .policy(Arc::new(LeastSessions))
        .build()
        .await?;
    for b in router.backends() {
        println!("backend {} at {}", b.id, b.endpoint);
    }
    println!("Spark Connect clients: sc://{addr}");
    tonic::transport::Server::builder()
        .add_service(router.service())
        .serve(addr.parse()?)
        .await?;
    Ok(())
}
