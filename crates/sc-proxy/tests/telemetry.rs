//! Traces: the proxy, configured with `telemetry.otlp.endpoint`, exports a span per gRPC call
//! and per control-plane request to an OTLP receiver built on the official `opentelemetry-proto`
//! definitions (sc-testkit's), under the client's W3C `traceparent`, and passes its own span's
//! context to the backend (sc-testkit's fake records what it receives). Without telemetry the
//! client's `traceparent` reaches the backend untouched. `x-request-id` is echoed either way.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use sc_proto::spark::connect as pb;
use sc_testkit::otlp::{OtlpReceiver, ReceivedSpan, traceparent};
use sc_testkit::{FakeState, client, config_req, execute_req, spawn_backend};
use tokio::sync::oneshot;
use tonic::metadata::MetadataValue;

const CLIENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";
const CALL: &str = "spark.connect.SparkConnectService/Config";

struct Running {
    grpc: SocketAddr,
    control: SocketAddr,
    backend: Arc<FakeState>,
    stop: oneshot::Sender<()>,
    served: tokio::task::JoinHandle<Result<(), sc_proxy::ServeError>>,
    _dir: tempfile::TempDir,
}

impl Running {
    /// Stops the proxy and waits until it has stopped (its last spans exported).
    async fn stop(self) -> Arc<FakeState> {
        let _ = self.stop.send(());
        self.served.await.unwrap().unwrap();
        self.backend
    }
}

async fn start(otlp: Option<&OtlpReceiver>) -> Running {
    let (backend_addr, backend) = spawn_backend("fake-a").await;
    let dir = tempfile::tempdir().unwrap();
    let mut yaml = format!(
        "store:\n  type: embedded\n  path: {}\nbackend_provider:\n  type: PREDEFINED\n  spec:\n    endpoints:\n      - url: {backend_addr}\n\
         control:\n  listen_addr: 127.0.0.1:0\n\
         server:\n  listen_addr: 127.0.0.1:0\n  shutdown_grace: 2s\n",
        dir.path().join("sessions.redb").display()
    );
    if let Some(otlp) = otlp {
        yaml.push_str(&format!(
            "telemetry:\n  service_name: gateway-under-test\n  otlp:\n    endpoint: {}\n",
            otlp.endpoint()
        ));
    }
    let config = sc_proxy::ProxyConfig::from_yaml(&yaml)
        .unwrap()
        .validate(&sc_proxy::builtins())
        .unwrap();
    let proxy = sc_proxy::Proxy::bind(config).await.unwrap();
    let grpc = proxy.grpc_addr().unwrap();
    let control = proxy.control_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let served = tokio::spawn(proxy.serve(async move {
        let _ = stopped.await;
    }));
    Running {
        grpc,
        control,
        backend,
        stop,
        served,
        _dir: dir,
    }
}

fn traced<T>(message: T, request_id: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    let metadata = request.metadata_mut();
    metadata.insert(
        "traceparent",
        MetadataValue::try_from(traceparent(CLIENT_TRACE, CLIENT_SPAN)).unwrap(),
    );
    metadata.insert("x-request-id", MetadataValue::try_from(request_id).unwrap());
    request
}

/// The `traceparent` a backend received with the call of `method`.
fn backend_traceparent(backend: &FakeState, method: &str) -> String {
    let seen = backend.seen();
    let call = seen.iter().find(|s| s.method == method).unwrap();
    call.metadata
        .get("traceparent")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned()
}

fn named<'a>(spans: &'a [ReceivedSpan], name: &str) -> Vec<&'a ReceivedSpan> {
    spans.iter().filter(|s| s.name == name).collect()
}

#[tokio::test]
async fn calls_are_spans_under_the_clients_trace_and_the_backend_continues_it() {
    let otlp = OtlpReceiver::start("127.0.0.1:0".parse().unwrap());
    let proxy = start(Some(&otlp)).await;
    let session = "00000000-0000-4000-8000-000000000001";
    {
        let mut c = client(proxy.grpc).await;
        let answer = c
            .config(traced(config_req(session, "alice"), "req-config"))
            .await
            .unwrap();
        assert_eq!(
            answer.metadata().get("x-request-id").unwrap(),
            "req-config",
            "the request id is echoed"
        );
        let mut stream = c
            .execute_plan(traced(
                execute_req(session, "alice", "op-1", "select 1"),
                "req-execute",
            ))
            .await
            .unwrap()
            .into_inner();
        while stream.message().await.unwrap().is_some() {}
        // The proxy answers this itself: the session does not exist.
        let mut unknown = traced(config_req(session, "alice"), "req-unknown");
        unknown.metadata_mut().insert(
            "x-spark-connect-session-id",
            MetadataValue::from_static("no-such-session"),
        );
        let status = c.config(unknown).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::NotFound);
        assert_eq!(
            status.metadata().get("x-request-id").unwrap(),
            "req-unknown"
        );
    }
    // A control-plane request under the same trace.
    let answer = reqwest::Client::new()
        .get(format!("http://{}/control/sessions", proxy.control))
        .header("traceparent", traceparent(CLIENT_TRACE, CLIENT_SPAN))
        .header("x-request-id", "req-list")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.headers()["x-request-id"], "req-list");
    let backend = proxy.stop().await;
    let spans = otlp.spans();

    // The Config call: a server span under the client's span, with what the proxy knew.
    let config = named(&spans, CALL);
    let call = config
        .iter()
        .find(|s| s.attr("spark_connect.request_id") == Some("req-config"))
        .unwrap_or_else(|| panic!("no span of the Config call in {spans:#?}"));
    assert_eq!(call.trace_id, CLIENT_TRACE);
    assert_eq!(call.parent_span_id, CLIENT_SPAN);
    assert_eq!(call.kind, 2, "a server span");
    assert_eq!(call.service_name.as_deref(), Some("gateway-under-test"));
    for (key, value) in [
        ("rpc.system", "grpc"),
        ("rpc.service", "spark.connect.SparkConnectService"),
        ("rpc.method", "Config"),
        ("spark_connect.session_id", session),
        ("spark_connect.session_kind", "bound"),
        ("enduser.id", "alice"),
        ("spark_connect.backend", "backend-0"),
        ("rpc.grpc.status_code", "0"),
        ("spark_connect.status", "OK"),
    ] {
        assert_eq!(call.attr(key), Some(value), "{key} in {call:#?}");
    }
    for key in [
        "spark_connect.bytes_to_backend",
        "spark_connect.bytes_to_client",
        "spark_connect.duration_ms",
    ] {
        let n: f64 = call.attr(key).unwrap().parse().unwrap();
        assert!(n > 0.0, "{key} = {n}");
    }
    // The backend received the call's own span as its parent, in the client's trace.
    assert_eq!(
        backend_traceparent(&backend, "Config"),
        traceparent(CLIENT_TRACE, &call.span_id)
    );
    // The new session's placement and its store write are the call's children.
    for child in ["spark_connect.placement", "spark_connect.store"] {
        let found = named(&spans, child);
        let span = found
            .iter()
            .find(|s| s.parent_span_id == call.span_id)
            .unwrap_or_else(|| panic!("no {child} under the Config call in {spans:#?}"));
        assert_eq!(span.trace_id, CLIENT_TRACE);
        assert_eq!(span.kind, 1, "an internal span");
    }
    let placement = named(&spans, "spark_connect.placement")[0];
    assert_eq!(placement.attr("spark_connect.policy"), Some("ROUND_ROBIN"));
    assert_eq!(placement.attr("spark_connect.backend"), Some("backend-0"));
    let store = named(&spans, "spark_connect.store")[0];
    assert_eq!(store.attr("spark_connect.store"), Some("embedded"));

    // The streaming call ends when its stream does, with the bytes of its results.
    let execute = named(&spans, "spark.connect.SparkConnectService/ExecutePlan");
    let execute = execute.first().unwrap();
    assert_eq!(execute.attr("rpc.grpc.status_code"), Some("0"));
    assert_eq!(execute.trace_id, CLIENT_TRACE);
    // A call the proxy refused is a span too, failed, with its code.
    let refused = config
        .iter()
        .find(|s| s.attr("spark_connect.request_id") == Some("req-unknown"))
        .unwrap();
    assert_eq!(refused.attr("rpc.grpc.status_code"), Some("5"));
    assert_eq!(refused.status_code, 2, "an error status");
    // And the control-plane request, named by its route.
    let list = named(&spans, "GET /control/sessions");
    let list = list.first().unwrap();
    assert_eq!(list.trace_id, CLIENT_TRACE);
    assert_eq!(list.parent_span_id, CLIENT_SPAN);
    assert_eq!(list.attr("http.response.status_code"), Some("200"));
    assert_eq!(list.attr("spark_connect.request_id"), Some("req-list"));
}

#[tokio::test]
async fn without_telemetry_the_clients_traceparent_reaches_the_backend_untouched() {
    let proxy = start(None).await;
    {
        let mut c = client(proxy.grpc).await;
        let answer = c
            .config(traced(
                config_req("00000000-0000-4000-8000-000000000002", "bob"),
                "req-plain",
            ))
            .await
            .unwrap();
        assert_eq!(answer.metadata().get("x-request-id").unwrap(), "req-plain");
        let _: pb::ConfigResponse = answer.into_inner();
    }
    let answer = reqwest::Client::new()
        .get(format!("http://{}/healthz", proxy.control))
        .header("x-request-id", "req-health")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.headers()["x-request-id"], "req-health");
    let backend = proxy.stop().await;
    assert_eq!(
        backend_traceparent(&backend, "Config"),
        traceparent(CLIENT_TRACE, CLIENT_SPAN)
    );
}

/// Spans wait for the batch exporter; stopping the proxy sends what is left.
#[tokio::test]
async fn the_last_spans_are_exported_at_shutdown() {
    let otlp = OtlpReceiver::start("127.0.0.1:0".parse().unwrap());
    let proxy = start(Some(&otlp)).await;
    {
        let mut c = client(proxy.grpc).await;
        c.config(config_req("00000000-0000-4000-8000-000000000003", "carol"))
            .await
            .unwrap();
    }
    proxy.stop().await;
    let spans = otlp.wait_for(Duration::from_secs(1), |s| !named(s, CALL).is_empty());
    let call = named(&spans, CALL);
    assert_eq!(call.len(), 1, "{spans:#?}");
    // No traceparent from the client: the call's span starts a trace of its own.
    assert!(call[0].parent_span_id.is_empty());
}
