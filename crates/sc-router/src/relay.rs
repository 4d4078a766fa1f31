//! The proxy's own HTTP/2 front: gRPC calls relayed frame by frame between a client's HTTP/2
//! connection and a backend's, with the `h2` crate directly.
//!
//! [`RouterService`](crate::RouterService) serves the router inside tonic or axum (hyper's
//! HTTP/2 with its request and body layers, a task per call and one per request body). The
//! relay is the proxy's faster way in: one task per client connection polls the connection and
//! every call on it; a call reads its first message, is routed like any other
//! (`Inner::route`), opens its stream on the backend's connection
//! (`upstream.rs`) and writes its frames there from the same task, and the
//! response's frames go back the same way. Flow control is end to end: a frame is read from one
//! side only when the other side's stream has window for it, so a slow reader holds at most a
//! stream window in the proxy.
//!
//! The bytes are forwarded as they arrived: messages, status, details and trailers untouched,
//! with the same exceptions as the tower service (the first message's `user_context` rewritten
//! when authenticated, the token redacted from Config answers of backends that have one).

use std::future::{Future, poll_fn};
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::Poll;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt as _;
use futures_util::stream::FuturesUnordered;
use h2::server::SendResponse;
use h2::{RecvStream, SendStream};
use http::{HeaderMap, HeaderValue};
use prometheus_client::metrics::counter::Counter;
use sc_backend_api::CallAuthenticator;
use sc_proto::RpcMethod;
use sc_proto::wire::{self, GRPC_HEADER_LEN};
use tokio::io::{AsyncRead, AsyncWrite};
use tracing::debug;

use crate::forward::{self, MessageBounds, Observer as _, Piece, RequestBody, status_trailers};
use crate::observe::CallEnd;
use crate::registry::SessionStats;
use crate::service::{PeerAddr, Routed, Routing};
use crate::telemetry::REQUEST_ID_HEADER;
use crate::{Inner, Router, RouterError};

/// The largest header list a client may send (as hyper's server allows).
const MAX_HEADER_LIST: u32 = 16 * 1024;

/// How long a client may take to answer a keep-alive ping.
const PONG_TIMEOUT: Duration = Duration::from_secs(20);

/// What the relay knows of a client connection.
#[derive(Debug, Clone, Default)]
pub struct ConnectionInfo {
    /// The client's address (for the audit log).
    pub peer: Option<SocketAddr>,
    /// The leaf certificate (DER) the client presented in a verified TLS handshake, if any.
    pub certificate: Option<Bytes>,
}

/// Serves client HTTP/2 connections with a router: see the module docs. Cheap to clone.
#[derive(Clone)]
pub struct Relay {
    inner: Arc<Inner>,
    auth: Option<Arc<dyn CallAuthenticator>>,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("authenticated", &self.auth.is_some())
            .finish_non_exhaustive()
    }
}

impl Router {
    /// A relay serving this router, authenticating every call with `auth` when given (then the
    /// client's `authorization` header stops here, and the router sees only the identity).
    pub fn relay(&self, auth: Option<Arc<dyn CallAuthenticator>>) -> Relay {
        Relay {
            inner: self.inner.clone(),
            auth,
        }
    }
}

impl Relay {
    /// Serves one client connection until it closes. When `stop` completes, the connection is
    /// told to go away (GOAWAY) and calls in flight may finish. The error says why the
    /// connection failed (a client that does not speak HTTP/2, a protocol error).
    pub async fn serve<IO>(
        &self,
        io: IO,
        info: ConnectionInfo,
        stop: impl Future<Output = ()>,
    ) -> Result<(), String>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let s = &self.inner.settings;
        let mut conn = h2::server::Builder::new()
            .initial_window_size(s.stream_window)
            .initial_connection_window_size(s.connection_window)
            .max_frame_size(s.max_frame_size)
            .max_header_list_size(MAX_HEADER_LIST)
            .max_local_error_reset_streams(Some(1024))
            .handshake::<_, Bytes>(io)
            .await
            .map_err(|e| format!("HTTP/2 handshake failed: {e}"))?;
        let info = Arc::new(info);
        let mut pings = conn.ping_pong();
        let keepalive = s.keepalive_interval.max(Duration::from_millis(1));
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + keepalive, keepalive);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut awaiting_pong: Option<tokio::time::Instant> = None;
        let mut calls = FuturesUnordered::new();
        let mut stop = pin!(stop);
        let mut stopping = false;
        loop {
            tokio::select! {
                accepted = conn.accept() => match accepted {
                    Some(Ok((request, respond))) => {
                        calls.push(self.clone().call(request, respond, info.clone()));
                    }
                    Some(Err(e)) => {
                        if e.is_go_away() || e.is_io() {
                            debug!(error = %e, "client connection ended");
                            return Ok(());
                        }
                        return Err(format!("HTTP/2 connection error: {e}"));
                    }
                    None => return Ok(()),
                },
                Some(()) = calls.next(), if !calls.is_empty() => {}
                pong = poll_fn(|cx| match pings.as_mut() {
                    Some(p) => p.poll_pong(cx),
                    None => std::task::Poll::Pending,
                }), if awaiting_pong.is_some() => {
                    awaiting_pong = None;
                    if pong.is_err() {
                        return Ok(());
                    }
                }
                _ = tick.tick() => match awaiting_pong {
                    Some(since) if since.elapsed() >= PONG_TIMEOUT => {
                        debug!("client answered no keep-alive ping; closing its connection");
                        return Ok(());
                    }
                    Some(_) => {}
                    None => {
                        if let Some(p) = pings.as_mut()
                            && p.send_ping(h2::Ping::opaque()).is_ok()
                        {
                            awaiting_pong = Some(tokio::time::Instant::now());
                        }
                    }
                },
                () = &mut stop, if !stopping => {
                    stopping = true;
                    conn.graceful_shutdown();
                }
            }
        }
    }

    /// One call on a client connection, start to end.
    async fn call(
        self,
        request: http::Request<RecvStream>,
        respond: SendResponse<Bytes>,
        info: Arc<ConnectionInfo>,
    ) {
        let mut respond = Respond {
            request_id: request.headers().get(REQUEST_ID_HEADER).cloned(),
            inner: respond,
        };
        let path = request.uri().path();
        let ours = path
            .strip_prefix('/')
            .and_then(|p| p.strip_prefix(sc_proto::SERVICE_NAME))
            .is_some_and(|p| p.starts_with('/'));
        let Some(method) = ours.then(|| RpcMethod::from_path(path).unwrap_or(RpcMethod::Other))
        else {
            let status = tonic::Status::unimplemented(format!(
                "{path} is not served here: this proxy serves {}",
                sc_proto::SERVICE_NAME
            ));
            send_status(&mut respond, &status);
            return;
        };
        let (mut parts, mut body) = request.into_parts();
        if let Some(auth) = &self.auth {
            let verdict = auth.authenticate_call(
                parts
                    .headers
                    .get(http::header::AUTHORIZATION)
                    .map(HeaderValue::as_bytes),
                info.certificate.as_deref(),
                info.peer,
                parts.uri.path(),
            );
            match verdict {
                Ok(identity) => {
                    parts.headers.remove(http::header::AUTHORIZATION);
                    parts.extensions.insert(identity);
                }
                Err(message) => {
                    send_status(&mut respond, &tonic::Status::unauthenticated(message));
                    return;
                }
            }
        }
        if let Some(peer) = info.peer {
            parts.extensions.insert(PeerAddr(peer));
        }

        let inner = &self.inner;
        let limit = inner.settings.first_message_timeout;
        let head = match tokio::time::timeout(
            limit,
            forward::read_head(&mut H2Body(&mut body), inner.settings.max_message_size),
        )
        .await
        {
            Ok(Ok(head)) => head,
            Ok(Err(error)) => return send_status(&mut respond, &inner.rejected(method, &error)),
            Err(_) => {
                let error = RouterError::FirstMessageTimeout(limit);
                return send_status(&mut respond, &inner.rejected(method, &error));
            }
        };
        match inner.route(method, parts, head).await {
            Err(error) => send_status(&mut respond, &inner.rejected(method, &error)),
            Ok(Routing::Answer(message)) => send_answer(&mut respond, &message),
            Ok(Routing::Forward(routed)) => self.forward(method, *routed, body, respond).await,
        }
    }

    /// Forwards a routed call to its backend and its response back.
    async fn forward(
        &self,
        method: RpcMethod,
        routed: Routed,
        mut body: RecvStream,
        mut respond: Respond,
    ) {
        let Routed {
            parts,
            mut head,
            later,
            cut,
            backend,
            stats,
            redact,
            call,
        } = routed;
        let mut call = call;
        let inner = &self.inner;
        let Some(upstream) = backend.relay.as_ref() else {
            let reason = "its endpoint has no host and port to connect to".to_owned();
            return self.unreachable(method, &mut respond, call, reason).await;
        };
        let mut sender = match upstream.ready().await {
            Ok(sender) => sender,
            Err(reason) => return self.unreachable(method, &mut respond, call, reason).await,
        };
        let request = match backend_request(parts, upstream) {
            Ok(request) => request,
            Err(reason) => return self.unreachable(method, &mut respond, call, reason).await,
        };
        // A request of one message goes out in one final DATA frame: the client's end of stream
        // (an empty frame of its own, as a rule) is awaited first. A small frame that does not
        // end its stream costs an HTTP/2 server part of a budget it refills only as its
        // application reads, and some (h2's) end the connection when it runs out.
        let mut request_done = head.trailers.is_none() && body.is_end_stream();
        let mut early = None;
        if !request_done && head.trailers.is_none() && !streams_requests(method) {
            match next_chunk(&mut body).await {
                Err(()) => return call.finish(None),
                Ok(Some(chunk)) => early = Some(chunk),
                Ok(None) => match body.trailers().await {
                    Ok(Some(trailers)) => head.trailers = Some(trailers),
                    Ok(None) => request_done = true,
                    Err(_) => return call.finish(None),
                },
            }
        }
        let (response, mut to_backend) = match sender.send_request(request, false) {
            Ok(sent) => sent,
            Err(e) => {
                return self
                    .unreachable(method, &mut respond, call, e.to_string())
                    .await;
            }
        };
        // The bytes read so far go out at once: a unary call's HEADERS and DATA leave together.
        let head_len = head.buffered.len() as u64;
        backend.metrics.bytes_to_backend.inc_by(head_len);
        stats.bytes_in.fetch_add(head_len, Ordering::Relaxed);
        cut.count(head.buffered.len());
        if to_backend.send_data(head.buffered, request_done).is_err() {
            return self
                .unreachable(method, &mut respond, call, "the stream closed".into())
                .await;
        }
        if let Some(trailers) = head.trailers
            && to_backend.send_trailers(trailers).is_err()
        {
            return self
                .unreachable(method, &mut respond, call, "the stream closed".into())
                .await;
        }

        // The rest of the request (client streams) while the response comes.
        let pump = RequestPump {
            body: &mut body,
            to_backend,
            early,
            finished: false,
            later,
            cut: &cut,
            bytes: backend.metrics.bytes_to_backend.clone(),
            stats: &stats,
        };
        let mut pump = pin!(pump.run(request_done));
        let mut pump_done = request_done;
        let mut response = pin!(response);
        let response = loop {
            tokio::select! {
                ended = &mut pump, if !pump_done => {
                    pump_done = true;
                    if ended == PumpEnd::ClientGone {
                        // The backend's stream was reset with the client's; nothing to answer.
                        return call.finish(None);
                    }
                }
                answered = &mut response => break answered,
                _ = poll_fn(|cx| respond.poll_reset(cx)) => {
                    // The client went away before the answer: the backend's stream is reset
                    // when its handles drop.
                    return call.finish(None);
                }
            }
        };
        let response = match response {
            Ok(response) => response,
            Err(e) => {
                return self
                    .unreachable(method, &mut respond, call, e.to_string())
                    .await;
            }
        };
        let (response_head, from_backend) = response.into_parts();
        let code = forward::grpc_status(&response_head.headers);
        let down = Downstream {
            respond,
            from_backend,
            call,
            bytes: backend.metrics.bytes_to_client.clone(),
            code,
        };
        if redact && code.is_none() {
            let limit = inner.settings.max_message_size;
            return down.redacted(response_head, limit).await;
        }
        // The request pump keeps going alongside (a client stream answered before its end).
        let relay = down.relay(response_head);
        let mut relay = pin!(relay);
        loop {
            tokio::select! {
                ended = &mut pump, if !pump_done => {
                    pump_done = true;
                    let _ = ended;
                }
                () = &mut relay => return,
            }
        }
    }

    /// The backend could not be reached: the call ends as the tower service ends it.
    async fn unreachable(
        &self,
        method: RpcMethod,
        respond: &mut Respond,
        call: CallEnd,
        reason: String,
    ) {
        let status = match call.unreachable(&self.inner, reason).await {
            Ok(status) => status,
            Err(error) => self.inner.rejected(method, &error),
        };
        send_status(respond, &status);
    }
}

/// The backend's request: the client's, edited by the router, addressed to the backend.
fn backend_request(
    parts: http::request::Parts,
    upstream: &crate::upstream::BackendConnection,
) -> Result<http::Request<()>, String> {
    let path = parts
        .uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"));
    let uri = http::Uri::builder()
        .scheme(upstream.scheme().clone())
        .authority(upstream.authority().clone())
        .path_and_query(path)
        .build()
        .map_err(|e| format!("bad request URI: {e}"))?;
    let mut request = http::Request::new(());
    *request.method_mut() = parts.method;
    *request.uri_mut() = uri;
    *request.headers_mut() = parts.headers;
    Ok(request)
}

/// The request side of a forwarded call: the client's DATA frames after the first message,
/// each written to the backend's stream when it has window, each message held to
/// `router.max_message_size`.
struct RequestPump<'a> {
    body: &'a mut RecvStream,
    to_backend: SendStream<Bytes>,
    /// A chunk already read (while waiting for the end of a one-message request).
    early: Option<Bytes>,
    /// Set once the pump ran its course; a pump dropped before (its client's connection closed
    /// under it) aborts the backend's stream.
    finished: bool,
    later: MessageBounds,
    cut: &'a forward::Cut,
    bytes: Counter,
    stats: &'a SessionStats,
}

/// How a request that cannot be completed is ended on the backend: not CANCEL, which hyper-based
/// servers take as a clean end of the request body (and would act on a truncated request).
const ABORT: h2::Reason = h2::Reason::INTERNAL_ERROR;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PumpEnd {
    /// The whole request went to the backend.
    Done,
    /// The client reset its stream (the backend's was reset too).
    ClientGone,
    /// The backend's stream closed, or the router cut the request (a message too large).
    Stopped,
}

impl RequestPump<'_> {
    async fn run(mut self, already_done: bool) -> PumpEnd {
        let end = if already_done {
            PumpEnd::Done
        } else {
            self.pump().await
        };
        self.finished = true;
        end
    }

    async fn pump(&mut self) -> PumpEnd {
        loop {
            if !self.wait_capacity().await {
                return PumpEnd::Stopped;
            }
            let next = match self.early.take() {
                Some(chunk) => Ok(Some(chunk)),
                None => next_chunk(self.body).await,
            };
            match next {
                Ok(Some(chunk)) => {
                    let len = chunk.len();
                    if let Err(RouterError::MessageTooLarge { size, limit }) =
                        self.later.follow(&chunk)
                    {
                        // The backend's stream is reset; the response side tells the client why.
                        self.cut.set(size, limit);
                        self.to_backend.send_reset(ABORT);
                        return PumpEnd::Stopped;
                    }
                    self.bytes.inc_by(len as u64);
                    self.stats.bytes_in.fetch_add(len as u64, Ordering::Relaxed);
                    self.cut.count(len);
                    if self.to_backend.send_data(chunk, false).is_err() {
                        return PumpEnd::Stopped;
                    }
                    let _ = self.body.flow_control().release_capacity(len);
                }
                Err(()) => {
                    self.to_backend.send_reset(ABORT);
                    return PumpEnd::ClientGone;
                }
                Ok(None) => {
                    let sent = match self.body.trailers().await {
                        Ok(Some(trailers)) => self.to_backend.send_trailers(trailers),
                        Ok(None) => self.to_backend.send_data(Bytes::new(), true),
                        Err(_) => {
                            self.to_backend.send_reset(ABORT);
                            return PumpEnd::ClientGone;
                        }
                    };
                    return if sent.is_ok() {
                        PumpEnd::Done
                    } else {
                        PumpEnd::Stopped
                    };
                }
            }
        }
    }

    /// Waits until the backend's stream has window for at least a byte; false when it closed.
    async fn wait_capacity(&mut self) -> bool {
        wait_capacity(&mut self.to_backend).await
    }
}

impl Drop for RequestPump<'_> {
    /// A request left half-way is aborted on the backend, not cancelled: servers built on hyper
    /// take a CANCEL (what h2 sends when a stream's handles drop) as the end of the request,
    /// and would act on a truncated one.
    fn drop(&mut self) {
        if !self.finished {
            self.to_backend.send_reset(ABORT);
        }
    }
}

/// The next non-empty DATA payload of a client's request (empty frames carry nothing and are
/// not forwarded), `None` at its end; `Err` when the client reset the stream.
async fn next_chunk(body: &mut RecvStream) -> Result<Option<Bytes>, ()> {
    loop {
        match body.data().await {
            Some(Ok(chunk)) if chunk.is_empty() => {}
            Some(Ok(chunk)) => return Ok(Some(chunk)),
            Some(Err(_)) => return Err(()),
            None => return Ok(None),
        }
    }
}

/// Whether a method's request may hold several messages (AddArtifacts, and methods the proxy
/// does not know): its frames are forwarded as they come.
fn streams_requests(method: RpcMethod) -> bool {
    matches!(method, RpcMethod::AddArtifacts | RpcMethod::Other)
}

/// Waits until `stream` has window for at least a byte; false when the stream closed.
async fn wait_capacity(stream: &mut SendStream<Bytes>) -> bool {
    if stream.capacity() > 0 {
        return true;
    }
    stream.reserve_capacity(1);
    loop {
        match poll_fn(|cx| stream.poll_capacity(cx)).await {
            Some(Ok(0)) => {}
            Some(Ok(_)) => return true,
            Some(Err(_)) | None => return false,
        }
    }
}

/// The response side of a forwarded call.
struct Downstream {
    respond: Respond,
    from_backend: RecvStream,
    call: CallEnd,
    bytes: Counter,
    /// The status known so far (from the response's headers, then its trailers).
    code: Option<i32>,
}

impl Downstream {
    /// Relays the response: headers, then each DATA frame once the client's stream has window
    /// for it, then the trailers; the backend's window reopens only as frames leave.
    async fn relay(mut self, head: http::response::Parts) {
        let end = self.from_backend.is_end_stream();
        let response = http::Response::from_parts(head, ());
        let mut to_client = match self.respond.send_response(response, end) {
            Ok(stream) => stream,
            Err(_) => return self.call.finish(None),
        };
        if end {
            // A trailers-only response (an error status in the headers).
            return self.call.finish(Some(self.code.unwrap_or(2)));
        }
        let mut first = true;
        loop {
            let next = tokio::select! {
                biased;
                _ = poll_fn(|cx| to_client.poll_reset(cx)) => return self.call.finish(None),
                next = poll_fn(|cx| self.from_backend.poll_data(cx)) => next,
            };
            match next {
                Some(Ok(chunk)) => {
                    let len = chunk.len();
                    self.bytes.inc_by(len as u64);
                    if let Some(status) = self.call.data(&chunk, first) {
                        // The backend restarted under the session: the call ends saying so.
                        let _ = to_client.send_trailers(status_trailers(&status));
                        return self.call.finish(Some(status.code() as i32));
                    }
                    first = false;
                    if !wait_capacity(&mut to_client).await
                        || to_client.send_data(chunk, false).is_err()
                    {
                        return self.call.finish(None);
                    }
                    let _ = self.from_backend.flow_control().release_capacity(len);
                }
                Some(Err(e)) => return self.broken(&mut to_client, e),
                None => break,
            }
        }
        match poll_fn(|cx| self.from_backend.poll_trailers(cx)).await {
            Ok(Some(trailers)) => {
                self.code = forward::grpc_status(&trailers).or(self.code);
                if to_client.send_trailers(trailers).is_err() {
                    return self.call.finish(None);
                }
            }
            Ok(None) => {
                if to_client.send_data(Bytes::new(), true).is_err() {
                    return self.call.finish(None);
                }
            }
            Err(e) => return self.broken(&mut to_client, e),
        }
        // A stream that ends without a status is reported as UNKNOWN (2).
        self.call.finish(Some(self.code.unwrap_or(2)));
    }

    /// The backend's stream broke mid-way: the client's ends with a status naming the backend.
    fn broken(&mut self, to_client: &mut SendStream<Bytes>, error: h2::Error) {
        let status = self
            .call
            .broken(&tonic::Status::from_error(Box::new(error)));
        let _ = to_client.send_trailers(status_trailers(&status));
        self.call.finish(Some(status.code() as i32));
    }

    /// Relays a Config response with the backend's token redacted: read whole (one small
    /// message), rewritten, sent.
    async fn redacted(mut self, head: http::response::Parts, limit: usize) {
        let mut collected = BytesMut::new();
        let mut failure = None;
        while let Some(next) = poll_fn(|cx| self.from_backend.poll_data(cx)).await {
            match next {
                Ok(chunk) => {
                    let _ = self
                        .from_backend
                        .flow_control()
                        .release_capacity(chunk.len());
                    if collected.len() + chunk.len() > limit.saturating_add(GRPC_HEADER_LEN) {
                        failure = Some(tonic::Status::internal(
                            "config response could not be read for redaction",
                        ));
                        break;
                    }
                    collected.extend_from_slice(&chunk);
                }
                Err(e) => {
                    failure = Some(tonic::Status::from_error(Box::new(e)));
                    break;
                }
            }
        }
        let trailers = match failure {
            Some(_) => None,
            None => poll_fn(|cx| self.from_backend.poll_trailers(cx))
                .await
                .ok()
                .flatten(),
        };
        let redacted = match failure {
            Some(status) => Err(status),
            None => forward::redact_config_messages(&collected),
        };
        let response = http::Response::from_parts(head, ());
        let Ok(mut to_client) = self.respond.send_response(response, false) else {
            return self.call.finish(None);
        };
        match redacted {
            Err(status) => {
                let _ = to_client.send_trailers(status_trailers(&status));
                self.call.finish(Some(status.code() as i32));
            }
            Ok(data) => {
                self.bytes.inc_by(data.len() as u64);
                if !data.is_empty() {
                    if let Some(status) = self.call.data(&data, true) {
                        let _ = to_client.send_trailers(status_trailers(&status));
                        return self.call.finish(Some(status.code() as i32));
                    }
                    let _ = to_client.send_data(data, trailers.is_none());
                }
                match trailers {
                    Some(trailers) => {
                        self.code = forward::grpc_status(&trailers).or(self.code);
                        let _ = to_client.send_trailers(trailers);
                    }
                    None if collected.is_empty() => {
                        let _ = to_client.send_data(Bytes::new(), true);
                    }
                    None => {}
                }
                self.call.finish(Some(self.code.unwrap_or(2)));
            }
        }
    }
}

/// An HTTP/2 request body as the router reads its first message from it; what is read is
/// released to the client's window at once (the router holds at most one message here).
struct H2Body<'a>(&'a mut RecvStream);

impl RequestBody for H2Body<'_> {
    async fn next_piece(&mut self) -> Option<Result<Piece, String>> {
        match self.0.data().await {
            Some(Ok(data)) => {
                let _ = self.0.flow_control().release_capacity(data.len());
                Some(Ok(Piece::Data(data)))
            }
            Some(Err(e)) => Some(Err(e.to_string())),
            None => match self.0.trailers().await {
                Ok(Some(trailers)) => Some(Ok(Piece::Trailers(trailers))),
                Ok(None) => None,
                Err(e) => Some(Err(e.to_string())),
            },
        }
    }
}

/// The answering side of a client's stream: every response it sends echoes the request's
/// `x-request-id`, if it had one.
struct Respond {
    inner: SendResponse<Bytes>,
    request_id: Option<HeaderValue>,
}

impl Respond {
    fn send_response(
        &mut self,
        mut response: http::Response<()>,
        end_of_stream: bool,
    ) -> Result<SendStream<Bytes>, h2::Error> {
        if let Some(id) = &self.request_id {
            response.headers_mut().insert(REQUEST_ID_HEADER, id.clone());
        }
        self.inner.send_response(response, end_of_stream)
    }

    fn poll_reset(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<Result<h2::Reason, h2::Error>> {
        self.inner.poll_reset(cx)
    }
}

/// Ends a call with `status` alone (a trailers-only response), as tonic's server does.
fn send_status(respond: &mut Respond, status: &tonic::Status) {
    let mut response = http::Response::new(());
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    for (name, value) in &status_trailers(status) {
        headers.insert(name.clone(), value.clone());
    }
    let _ = respond.send_response(response, true);
}

/// Answers a unary call with one message and an OK status.
fn send_answer(respond: &mut Respond, message: &[u8]) {
    let mut response = http::Response::new(());
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    let Ok(mut stream) = respond.send_response(response, false) else {
        return;
    };
    let mut framed = BytesMut::with_capacity(GRPC_HEADER_LEN + message.len());
    framed.extend_from_slice(&wire::encode_frame_header(
        u32::try_from(message.len()).unwrap_or(u32::MAX),
    ));
    framed.extend_from_slice(message);
    let _ = stream.send_data(framed.freeze(), false);
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static("0"));
    let _ = stream.send_trailers(trailers);
}
