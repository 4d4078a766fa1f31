//! Traces with OpenTelemetry: a server span per gRPC call (and, through [`Telemetry`], per
//! control-plane request), under the W3C `traceparent` the client sent, passed on to the
//! backend as the call span's own context.
//!
//! The router depends on the OpenTelemetry API only; the embedder chooses the SDK and the
//! exporter and hands a tracer and a propagator to [`crate::RouterBuilder::telemetry`]. Without
//! it the call path carries `None` and does nothing else.
//!
//! One call is one `CallTrace`: started when the service receives the request, given the
//! session, the user and the backend once they are known, with the placement and the session
//! store as child spans, and ended by `CallEnd::finish` when the response ends (status, bytes
//! each way, duration), or by the service when the proxy answers the call itself.

use std::sync::Arc;
use std::time::Instant;

use http::HeaderMap;
use opentelemetry::global::BoxedTracer;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{SpanKind, Status, TraceContextExt as _, Tracer as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_http::{HeaderExtractor, HeaderInjector};
use sc_proto::RpcMethod;

use crate::authz::Caller;
use crate::registry::{Session, SessionKind};

/// What traces are made with: a tracer (from the embedder's SDK, exporting where it is told)
/// and the propagator that reads and writes trace context in headers (W3C Trace Context).
#[derive(Clone)]
pub struct Telemetry {
    tracer: Arc<BoxedTracer>,
    propagator: Arc<dyn TextMapPropagator + Send + Sync>,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry").finish_non_exhaustive()
    }
}

/// The request header a client may send to have its request id echoed and recorded.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

impl Telemetry {
    /// Traces made with `tracer`, their context read from and written to headers with
    /// `propagator` (e.g. the SDK's `TraceContextPropagator`).
    pub fn new(
        tracer: BoxedTracer,
        propagator: impl TextMapPropagator + Send + Sync + 'static,
    ) -> Self {
        Telemetry {
            tracer: Arc::new(tracer),
            propagator: Arc::new(propagator),
        }
    }

    /// Starts a server span named `name` for a request with `headers`: a child of the trace
    /// context the headers carry (`traceparent`), else the root of a new trace. End it with
    /// [`opentelemetry::trace::SpanRef::end`] on the returned context's span.
    pub fn server_span(
        &self,
        name: impl Into<std::borrow::Cow<'static, str>>,
        headers: &HeaderMap,
        attributes: Vec<KeyValue>,
    ) -> Context {
        let parent = self.propagator.extract(&HeaderExtractor(headers));
        let span = self
            .tracer
            .span_builder(name)
            .with_kind(SpanKind::Server)
            .with_attributes(attributes)
            .start_with_context(self.tracer.as_ref(), &parent);
        parent.with_span(span)
    }

    /// Starts an internal span named `name` under `parent`'s span.
    pub fn child_span(&self, name: &'static str, parent: &Context) -> Context {
        let span = self
            .tracer
            .span_builder(name)
            .with_kind(SpanKind::Internal)
            .start_with_context(self.tracer.as_ref(), parent);
        parent.with_span(span)
    }

    /// Writes `cx`'s trace context into `headers` (replacing a `traceparent` there).
    pub fn inject(&self, cx: &Context, headers: &mut HeaderMap) {
        self.propagator
            .inject_context(cx, &mut HeaderInjector(headers));
    }
}

/// The trace of one gRPC call.
pub(crate) struct CallTrace {
    telemetry: Telemetry,
    cx: Context,
    started: Instant,
    /// Message bytes sent to the client so far.
    bytes_to_client: u64,
}

impl CallTrace {
    /// Starts the call's span (when telemetry is on): named after the method, under the
    /// client's trace context.
    pub(crate) fn start(
        telemetry: Option<&Telemetry>,
        method: RpcMethod,
        headers: &HeaderMap,
    ) -> Option<CallTrace> {
        let telemetry = telemetry?;
        let mut attributes = vec![
            KeyValue::new("rpc.system", "grpc"),
            KeyValue::new("rpc.service", sc_proto::SERVICE_NAME),
            KeyValue::new("rpc.method", method.name()),
        ];
        if let Some(id) = headers.get(REQUEST_ID_HEADER).and_then(|v| v.to_str().ok()) {
            attributes.push(KeyValue::new("spark_connect.request_id", id.to_owned()));
        }
        let cx = telemetry.server_span(
            format!("{}/{}", sc_proto::SERVICE_NAME, method.name()),
            headers,
            attributes,
        );
        Some(CallTrace {
            telemetry: telemetry.clone(),
            cx,
            started: Instant::now(),
            bytes_to_client: 0,
        })
    }

    /// Records what became known about the call.
    pub(crate) fn record(&self, attributes: impl IntoIterator<Item = KeyValue>) {
        let span = self.cx.span();
        if span.is_recording() {
            span.set_attributes(attributes);
        }
    }

    /// A child span of the call (the placement, the session store), ended when dropped.
    pub(crate) fn child(&self, name: &'static str) -> ChildSpan {
        ChildSpan(self.telemetry.child_span(name, &self.cx))
    }

    /// Passes the call's trace context to the backend (its `traceparent` names this call's
    /// span, under the client's trace).
    pub(crate) fn inject(&self, headers: &mut HeaderMap) {
        self.telemetry.inject(&self.cx, headers);
    }

    /// Counts a response frame's bytes.
    pub(crate) fn sent_to_client(&mut self, bytes: usize) {
        self.bytes_to_client += bytes as u64;
    }

    /// Ends the call's span with its final status and the bytes that went each way.
    pub(crate) fn finish(self, code: i32, bytes_to_backend: u64) {
        let span = self.cx.span();
        if span.is_recording() {
            let elapsed = self.started.elapsed();
            span.set_attributes([
                KeyValue::new("rpc.grpc.status_code", i64::from(code)),
                KeyValue::new("spark_connect.status", crate::code_name(code)),
                KeyValue::new(
                    "spark_connect.bytes_to_backend",
                    i64::try_from(bytes_to_backend).unwrap_or(i64::MAX),
                ),
                KeyValue::new(
                    "spark_connect.bytes_to_client",
                    i64::try_from(self.bytes_to_client).unwrap_or(i64::MAX),
                ),
                KeyValue::new("spark_connect.duration_ms", elapsed.as_secs_f64() * 1e3),
            ]);
            if code != 0 {
                span.set_status(Status::error(crate::code_name(code)));
            }
        }
        span.end();
    }
}

/// What a call's span records once its session is known: the session, the user, the backend
/// and the client.
pub(crate) fn call_attributes(session: &Session, caller: &Caller<'_>) -> Vec<KeyValue> {
    let mut attributes = vec![
        KeyValue::new("spark_connect.session_id", session.id.clone()),
        KeyValue::new(
            "spark_connect.session_kind",
            match session.kind {
                SessionKind::Control => "control",
                SessionKind::Bound => "bound",
            },
        ),
        KeyValue::new("spark_connect.backend", session.backend.id().to_string()),
        KeyValue::new(
            "spark_connect.backend.endpoint",
            session.backend.endpoint_text.clone(),
        ),
    ];
    if let Some(user) = caller.user() {
        attributes.push(KeyValue::new("enduser.id", user.to_owned()));
    }
    if let Some(peer) = caller.peer() {
        attributes.push(KeyValue::new("client.address", peer.ip().to_string()));
        attributes.push(KeyValue::new("client.port", i64::from(peer.port())));
    }
    attributes
}

/// A child span of a call, ended when dropped.
pub(crate) struct ChildSpan(Context);

impl ChildSpan {
    /// Records an attribute on the child span.
    pub(crate) fn record(&self, attribute: KeyValue) {
        let span = self.0.span();
        if span.is_recording() {
            span.set_attribute(attribute);
        }
    }

    /// Marks the child span failed.
    pub(crate) fn failed(&self, error: &impl std::fmt::Display) {
        self.0.span().set_status(Status::error(error.to_string()));
    }
}

impl Drop for ChildSpan {
    fn drop(&mut self) {
        self.0.span().end();
    }
}
