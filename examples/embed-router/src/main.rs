//! Example: the Spark Connect router mounted inside an existing axum service.
//!
//! One port serves the service's own HTTP routes and Spark Connect gRPC (HTTP/2) side by side.
//! The router carries its own life: `build()` starts session expiry, health probes and the
//! store writer; `shutdown()` stops them (and any engine a provider launched) when the service
//! stops. Nothing else needs starting.
//!
//! ```text
//! cargo run -p example-embed-router -- 127.0.0.1:8090 localhost:15002
//! curl http://127.0.0.1:8090/hello
//! python -c 'from pyspark.sql import SparkSession; print(SparkSession.builder.remote("sc://127.0.0.1:8090").getOrCreate().range(3).count())'
//! ```

use std::sync::Arc;

use axum::routing::get;
use sc_backend_predefined::{EndpointSpec, PredefinedProvider, PredefinedSpec};
use sc_router::policy::RoundRobin;
use sc_router::{Router, RouterSettings};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let listen = args.next().unwrap_or_else(|| "127.0.0.1:8090".into());
    let endpoints: Vec<_> = args.map(EndpointSpec::new).collect();
    let spec = PredefinedSpec {
        endpoints: if endpoints.is_empty() {
            vec![EndpointSpec::new("localhost:15002")]
        } else {
            endpoints
        },
    };
    // Idle sessions are released after 15 minutes here (the default is an hour).
    let mut settings = RouterSettings::default();
    settings.sessions.idle_timeout = std::time::Duration::from_secs(15 * 60);
    let router = Router::builder()
        .provider(Arc::new(PredefinedProvider::new("embedded", &spec)?))
        .policy(Arc::new(RoundRobin::default()))
        .settings(settings)
        .build()
        .await?;

    let sessions = router.clone();
    let app = axum::Router::new()
        .route("/hello", get(|| async { "hello from the host service\n" }))
        .route(
            "/sessions",
            get(move || {
                let router = sessions.clone();
                async move { format!("{} sessions\n", router.sessions().len()) }
            }),
        )
        .route_service(
            "/spark.connect.SparkConnectService/{*method}",
            router.service(),
        );

    let listener = tokio::net::TcpListener::bind(&listen).await?;
    println!("serving HTTP and Spark Connect on {listen}");
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    // The router's background work stops, and what it launched with it.
    router.shutdown().await;
    Ok(())
}
