//! An OTLP/gRPC trace receiver for tests, built on the official `opentelemetry-proto`
//! definitions: it keeps every span exported to it, flattened for assertions.
//!
//! It runs on a thread of its own (with its own runtime), so both async tests and the blocking
//! end-to-end tests can start it and wait for spans.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use tonic::{Request, Response, Status};

/// One span as the receiver got it.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedSpan {
    /// The span's name.
    pub name: String,
    /// Its trace id, 32 lowercase hex digits.
    pub trace_id: String,
    /// Its span id, 16 lowercase hex digits.
    pub span_id: String,
    /// Its parent's span id (empty for a root span).
    pub parent_span_id: String,
    /// `SpanKind` as its protobuf number (2: server, 1: internal).
    pub kind: i32,
    /// Its attributes, each value as text.
    pub attributes: BTreeMap<String, String>,
    /// Its status code (0 unset, 1 ok, 2 error).
    pub status_code: i32,
    /// `service.name` of the resource that sent it.
    pub service_name: Option<String>,
    /// How long it lasted.
    pub duration: Duration,
}

impl ReceivedSpan {
    /// An attribute's value as text.
    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }
}

/// The most spans kept (a long run, e.g. a benchmark, only counts the rest).
const KEPT: usize = 100_000;

#[derive(Default, Clone)]
struct Collector(
    Arc<Mutex<Vec<ReceivedSpan>>>,
    Arc<std::sync::atomic::AtomicU64>,
);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let mut out = self.0.lock().unwrap();
        for resource_spans in request.into_inner().resource_spans {
            let service_name = resource_spans.resource.as_ref().and_then(|r| {
                r.attributes
                    .iter()
                    .find(|a| a.key == "service.name")
                    .map(value_text)
            });
            for scope in resource_spans.scope_spans {
                for span in scope.spans {
                    self.1.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if out.len() >= KEPT {
                        continue;
                    }
                    out.push(ReceivedSpan {
                        name: span.name,
                        trace_id: hex(&span.trace_id),
                        span_id: hex(&span.span_id),
                        parent_span_id: hex(&span.parent_span_id),
                        kind: span.kind,
                        attributes: span
                            .attributes
                            .iter()
                            .map(|a| (a.key.clone(), value_text(a)))
                            .collect(),
                        status_code: span.status.map_or(0, |s| s.code),
                        service_name: service_name.clone(),
                        duration: Duration::from_nanos(
                            span.end_time_unix_nano
                                .saturating_sub(span.start_time_unix_nano),
                        ),
                    });
                }
            }
        }
        Ok(Response::new(ExportTraceServiceResponse::default()))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn value_text(kv: &KeyValue) -> String {
    match kv.value.as_ref().and_then(|v: &AnyValue| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

/// An OTLP/gRPC trace receiver on a loopback port, running until dropped.
pub struct OtlpReceiver {
    addr: SocketAddr,
    spans: Collector,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl OtlpReceiver {
    /// Listens on `addr` (port 0 for any free port).
    pub fn start(addr: SocketAddr) -> OtlpReceiver {
        let listener = std::net::TcpListener::bind(addr).unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let spans = Collector::default();
        let service = TraceServiceServer::new(spans.clone());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let _ = tonic::transport::Server::builder()
                    .add_service(service)
                    .serve_with_incoming_shutdown(
                        tokio_stream::wrappers::TcpListenerStream::new(listener),
                        async {
                            let _ = stopped.await;
                        },
                    )
                    .await;
            });
        });
        OtlpReceiver {
            addr,
            spans,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its address as `telemetry.otlp.endpoint` takes it.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every span received so far (the first 100,000).
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.spans.0.lock().unwrap().clone()
    }

    /// How many spans were received, kept or not.
    pub fn received(&self) -> u64 {
        self.spans.1.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Waits (blocking this thread) until `done` holds for the spans received, at most
    /// `timeout`; returns them either way.
    pub fn wait_for(
        &self,
        timeout: Duration,
        done: impl Fn(&[ReceivedSpan]) -> bool,
    ) -> Vec<ReceivedSpan> {
        let deadline = Instant::now() + timeout;
        loop {
            let spans = self.spans();
            if done(&spans) || Instant::now() >= deadline {
                return spans;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A W3C `traceparent` value for a sampled trace.
pub fn traceparent(trace_id: &str, parent_span_id: &str) -> String {
    format!("00-{trace_id}-{parent_span_id}-01")
}
