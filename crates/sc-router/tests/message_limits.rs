//! `router.max_message_size` holds every request message, not only the first (the one the router
//! reads to route a call), and the limits show in the metrics: refusals by limit, and the limits
//! in force (also after a reload).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use sc_backend_api::{BackendProvider, LoadPolicy};
use sc_backend_predefined::{EndpointSpec, PredefinedProvider, PredefinedSpec};
use sc_proto::spark::connect as pb;
use sc_router::limits::LimitSettings;
use sc_router::policy::RoundRobin;
use sc_router::{Router, RouterSettings};
use sc_testkit::*;
use tonic::Code;

const MIB: usize = 1 << 20;

/// Settings with the lowest message limit the router accepts (4 MiB).
fn four_mib() -> RouterSettings {
    RouterSettings {
        max_message_size: 4 * MIB,
        ..Default::default()
    }
}

fn artifact(name: &str, size: usize) -> pb::AddArtifactsRequest {
    artifact_req("s", "u", name, size)
}

/// An AddArtifacts call whose messages are sent `gap` apart: with a gap, each message leaves the
/// client in frames of its own, after the router has read the first and forwarded the call.
async fn add_artifacts(
    c: &mut Client,
    sizes: &[usize],
    gap: Duration,
) -> Result<pb::AddArtifactsResponse, tonic::Status> {
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let messages: Vec<_> = sizes
        .iter()
        .enumerate()
        .map(|(i, &size)| artifact(&format!("jars/{i}.jar"), size))
        .collect();
    tokio::spawn(async move {
        for (i, message) in messages.into_iter().enumerate() {
            if i > 0 {
                tokio::time::sleep(gap).await;
            }
            // The router may have ended the call already.
            if tx.send(message).await.is_err() {
                break;
            }
        }
    });
    c.add_artifacts(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .map(tonic::Response::into_inner)
}

fn assert_too_large(result: Result<pb::AddArtifactsResponse, tonic::Status>) {
    let err = result.expect_err("an oversize message is refused");
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(
        err.message().contains("router.max_message_size")
            && err.message().contains("4194304 bytes"),
        "{}",
        err.message()
    );
}

#[tokio::test]
async fn a_later_message_over_the_limit_ends_the_call_with_resource_exhausted() {
    let (backend, state) = spawn_backend("fake").await;
    let router = router(
        &[backend.to_string()],
        Arc::new(RoundRobin::default()),
        four_mib(),
    )
    .await;
    let mut c = client(spawn_proxy(&router).await).await;

    // The second message comes in frames of its own, once the call is forwarded: the router cuts
    // the backend's stream at its prefix and tells the client why.
    assert_too_large(add_artifacts(&mut c, &[1024, 5 * MIB], Duration::from_millis(300)).await);
    // The second message sent right behind the first (its prefix may come with the first).
    assert_too_large(add_artifacts(&mut c, &[1024, 5 * MIB], Duration::ZERO).await);
    // A third message over the limit, after two that pass.
    assert_too_large(
        add_artifacts(&mut c, &[1024, MIB, 5 * MIB], Duration::from_millis(200)).await,
    );

    // The backend never completed such a call, and is not blamed for the cut ones.
    assert_eq!(state.count("AddArtifacts"), 0);
    let health = router.backends()[0].health;
    assert_ne!(health, "unhealthy");
    // The proxy keeps serving.
    assert_eq!(backend_of(&mut c, "s", "u").await, "fake");
}

/// Sends one call whose whole body is `body`, in one DATA frame, and returns its `grpc-status`
/// and `grpc-message` (from the headers of a trailers-only response, or from the trailers).
async fn raw_call(proxy: std::net::SocketAddr, method: &str, body: Vec<u8>) -> (String, String) {
    use http_body_util::BodyExt as _;
    let stream = tokio::net::TcpStream::connect(proxy).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    tokio::spawn(connection);
    let request = http::Request::post(format!(
        "http://{proxy}/spark.connect.SparkConnectService/{method}"
    ))
    .header("content-type", "application/grpc")
    .header("te", "trailers")
    .body(http_body_util::Full::new(bytes::Bytes::from(body)))
    .unwrap();
    let (parts, body) = sender.send_request(request).await.unwrap().into_parts();
    let trailers = body.collect().await.unwrap().trailers().cloned();
    let headers = trailers.unwrap_or(parts.headers);
    let text = |name: &str| {
        headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    (text("grpc-status"), text("grpc-message"))
}

#[tokio::test]
async fn a_later_message_sent_with_the_first_is_refused_before_any_backend_sees_the_call() {
    use prost::Message as _;
    let (backend, state) = spawn_backend("fake").await;
    let router = router(
        &[backend.to_string()],
        Arc::new(RoundRobin::default()),
        four_mib(),
    )
    .await;
    let proxy = spawn_proxy(&router).await;

    // One frame: a small first message, then the prefix of a 5 MiB one and a few of its bytes.
    let first = artifact("jars/a.jar", 16).encode_to_vec();
    let mut body = sc_proto::wire::encode_frame_header(first.len() as u32).to_vec();
    body.extend_from_slice(&first);
    body.extend_from_slice(&sc_proto::wire::encode_frame_header(5 * MIB as u32));
    body.extend_from_slice(&[7; 64]);
    let (status, message) = raw_call(proxy, "AddArtifacts", body).await;
    assert_eq!(status, "8", "RESOURCE_EXHAUSTED: {message}");
    assert!(message.contains("router.max_message_size"), "{message}");

    // The proxy answered itself: the backend never saw the call.
    assert_eq!(state.seen().len(), 0);
    let metrics = router.metrics().encode();
    assert_eq!(
        metric_value(
            &metrics,
            "sc_proxy_rejected_calls_total{method=\"AddArtifacts\",code=\"RESOURCE_EXHAUSTED\"}"
        ),
        Some(1.0),
        "{metrics}"
    );
    assert!(!metrics.contains("sc_proxy_calls_total{"), "{metrics}");
}

#[tokio::test]
async fn later_messages_under_the_limit_pass() {
    let (backend, state) = spawn_backend("fake").await;
    let router = router(
        &[backend.to_string()],
        Arc::new(RoundRobin::default()),
        four_mib(),
    )
    .await;
    let mut c = client(spawn_proxy(&router).await).await;

    // The limit is per message: 3 + 3 (+ 3) MiB in one call pass a 4 MiB limit.
    let added = add_artifacts(&mut c, &[1024, 3 * MIB], Duration::from_millis(200))
        .await
        .unwrap();
    assert_eq!(added.artifacts.len(), 2);
    let added = add_artifacts(&mut c, &[3 * MIB, 3 * MIB, 3 * MIB], Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(added.artifacts.len(), 3);
    assert_eq!(state.count("AddArtifacts"), 2);
    let metrics = router.metrics().encode();
    assert_eq!(
        metric_value(
            &metrics,
            "sc_proxy_limit_rejections_total{limit=\"max_message_size\"}"
        ),
        None,
        "{metrics}"
    );
}

fn provider(endpoint: &str) -> Arc<dyn BackendProvider> {
    let spec = PredefinedSpec {
        endpoints: vec![EndpointSpec::new(endpoint)],
    };
    Arc::new(PredefinedProvider::new("fake", &spec).unwrap())
}

#[tokio::test]
async fn message_size_and_first_message_refusals_and_the_limits_in_force_show_in_metrics() {
    let (backend, _) = spawn_backend("fake").await;
    let router: Router = router(
        &[backend.to_string()],
        Arc::new(RoundRobin::default()),
        RouterSettings {
            first_message_timeout: Duration::from_millis(300),
            limits: LimitSettings {
                max_sessions_per_user: Some(3),
                max_streams_total: Some(50),
                ..Default::default()
            },
            ..four_mib()
        },
    )
    .await;
    let metrics = router.metrics().encode();
    let limit = |metrics: &str, name: &str| {
        metric_value(metrics, &format!("sc_proxy_limit{{limit=\"{name}\"}}"))
    };
    assert_eq!(
        limit(&metrics, "max_message_size"),
        Some(4.0 * MIB as f64),
        "{metrics}"
    );
    assert_eq!(
        limit(&metrics, "first_message_timeout"),
        Some(0.3),
        "{metrics}"
    );
    assert_eq!(limit(&metrics, "sessions_per_user"), Some(3.0), "{metrics}");
    assert_eq!(limit(&metrics, "streams_total"), Some(50.0), "{metrics}");
    // Limits that are off show 0.
    assert_eq!(limit(&metrics, "streams_per_user"), Some(0.0), "{metrics}");
    assert_eq!(limit(&metrics, "rate"), Some(0.0), "{metrics}");
    assert_eq!(limit(&metrics, "burst"), Some(0.0), "{metrics}");

    let mut c = client(spawn_proxy(&router).await).await;
    // An oversize first message, then an oversize later one: two refusals.
    assert_too_large(add_artifacts(&mut c, &[5 * MIB], Duration::ZERO).await);
    assert_too_large(add_artifacts(&mut c, &[1024, 5 * MIB], Duration::from_millis(300)).await);
    // A call that opens its stream and sends nothing.
    let err = c
        .add_artifacts(futures_util::stream::pending::<pb::AddArtifactsRequest>())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::DeadlineExceeded, "{err:?}");
    assert!(
        err.message().contains("router.first_message_timeout"),
        "{}",
        err.message()
    );
    let metrics = router.metrics().encode();
    let refused = |name: &str| {
        metric_value(
            &metrics,
            &format!("sc_proxy_limit_rejections_total{{limit=\"{name}\"}}"),
        )
    };
    assert_eq!(refused("max_message_size"), Some(2.0), "{metrics}");
    assert_eq!(refused("first_message_timeout"), Some(1.0), "{metrics}");

    // A reload puts new limits in force, and the metrics show them.
    let policy: Arc<dyn LoadPolicy> = Arc::new(RoundRobin::default());
    router
        .reconfigure(
            vec![provider(&backend.to_string())],
            policy,
            LimitSettings {
                max_sessions_per_user: Some(7),
                requests_per_second: Some(5),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let metrics = router.metrics().encode();
    assert_eq!(limit(&metrics, "sessions_per_user"), Some(7.0), "{metrics}");
    assert_eq!(limit(&metrics, "streams_total"), Some(0.0), "{metrics}");
    assert_eq!(limit(&metrics, "rate"), Some(5.0), "{metrics}");
    assert_eq!(limit(&metrics, "burst"), Some(5.0), "{metrics}");
    assert_eq!(
        limit(&metrics, "max_message_size"),
        Some(4.0 * MIB as f64),
        "{metrics}"
    );
}
