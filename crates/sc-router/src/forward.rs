//! The byte-level forwarding path: read the first gRPC message of a request (to route it), then
//! forward that message and the rest of the body untouched, and watch the response go by.

use std::io::Read as _;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::BodyExt as _;
use prometheus_client::metrics::counter::Counter;
use sc_proto::wire::{self, FrameHeader, GRPC_HEADER_LEN};
use tonic::body::Body;

use crate::RouterError;
use crate::registry::SessionStats;

/// The start of a request body: every byte read so far (the first message, its prefix, and any
/// bytes of later messages that arrived in the same frames) and the first message's prefix.
pub(crate) struct Head {
    pub(crate) buffered: Bytes,
    pub(crate) header: FrameHeader,
    /// Request trailers met while reading the head (unusual, but forwarded).
    pub(crate) trailers: Option<HeaderMap>,
}

impl Head {
    /// Replaces the first message with `message` (sent uncompressed), keeping any bytes of later
    /// messages that were read with it.
    pub(crate) fn replace_first_message(self, message: &[u8]) -> Head {
        let end = (GRPC_HEADER_LEN + self.header.len as usize).min(self.buffered.len());
        let len = u32::try_from(message.len()).unwrap_or(u32::MAX);
        let mut out =
            BytesMut::with_capacity(GRPC_HEADER_LEN + message.len() + self.buffered.len() - end);
        out.extend_from_slice(&wire::encode_frame_header(len));
        out.extend_from_slice(message);
        out.extend_from_slice(&self.buffered[end..]);
        Head {
            buffered: out.freeze(),
            header: FrameHeader {
                compressed: false,
                len,
            },
            trailers: self.trailers,
        }
    }

    /// The first message's bytes, as sent (possibly compressed).
    pub(crate) fn message(&self) -> &[u8] {
        let end = GRPC_HEADER_LEN + self.header.len as usize;
        self.buffered.get(GRPC_HEADER_LEN..end).unwrap_or(&[])
    }
}

/// Reads until the first gRPC message is complete. A message whose prefix announces more than
/// `limit` bytes is refused before it is read.
pub(crate) async fn read_head(body: &mut Body, limit: usize) -> Result<Head, RouterError> {
    let mut first: Option<Bytes> = None;
    let mut joined = BytesMut::new();
    let mut trailers = None;
    loop {
        let have: &[u8] = match &first {
            Some(b) if joined.is_empty() => b,
            _ => &joined,
        };
        if let Some(header) = wire::frame_header(have)? {
            if header.len as usize > limit {
                return Err(RouterError::MessageTooLarge {
                    size: u64::from(header.len),
                    limit,
                });
            }
            if have.len() >= GRPC_HEADER_LEN + header.len as usize {
                let buffered = if joined.is_empty() {
                    first.unwrap_or_default()
                } else {
                    joined.freeze()
                };
                return Ok(Head {
                    buffered,
                    header,
                    trailers,
                });
            }
        }
        if trailers.is_some() {
            return Err(RouterError::Truncated(
                "is truncated: it ended before its first message was complete",
            ));
        }
        match body.frame().await {
            None => {
                let empty = first.as_ref().is_none_or(|b| b.is_empty()) && joined.is_empty();
                return Err(RouterError::Truncated(if empty {
                    "carries no message"
                } else {
                    "is truncated: it ended before its first message was complete"
                }));
            }
            Some(Err(status)) => return Err(RouterError::RequestBody(status.message().to_owned())),
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => match &first {
                    None => first = Some(data),
                    Some(f) => {
                        if joined.is_empty() {
                            joined.extend_from_slice(f);
                        }
                        joined.extend_from_slice(&data);
                    }
                },
                Err(frame) => trailers = frame.into_trailers().ok(),
            },
        }
    }
}

/// Decompresses a message for reading its routing fields, when the client compressed it.
/// The forwarded bytes stay compressed: only this private copy is inflated.
pub(crate) fn readable<'a>(
    head: &'a Head,
    headers: &HeaderMap,
    limit: usize,
    scratch: &'a mut Vec<u8>,
) -> Result<&'a [u8], RouterError> {
    if !head.header.compressed {
        return Ok(head.message());
    }
    let encoding = headers
        .get("grpc-encoding")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("identity");
    let limit = u64::try_from(limit).unwrap_or(u64::MAX);
    let result = match encoding {
        "gzip" => flate2::read::GzDecoder::new(head.message())
            .take(limit + 1)
            .read_to_end(scratch),
        "deflate" => flate2::read::ZlibDecoder::new(head.message())
            .take(limit + 1)
            .read_to_end(scratch),
        other => return Err(RouterError::UnsupportedEncoding(other.to_owned())),
    };
    match result {
        Ok(n) if n as u64 > limit => Err(RouterError::MessageTooLarge {
            size: n as u64,
            limit: usize::try_from(limit).unwrap_or(usize::MAX),
        }),
        Ok(_) => Ok(scratch),
        Err(e) => Err(RouterError::Truncated(
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                "holds a truncated compressed message"
            } else {
                "holds a compressed message that does not inflate"
            },
        )),
    }
}

pin_project_lite::pin_project! {
    /// The request body sent to the backend: the bytes already read, then the rest as it comes.
    pub(crate) struct Upstream {
        head: Option<Bytes>,
        trailers: Option<HeaderMap>,
        #[pin]
        rest: Body,
        bytes: Counter,
        session_bytes: Arc<SessionStats>,
    }
}

impl Upstream {
    pub(crate) fn new(
        head: Head,
        rest: Body,
        bytes: Counter,
        session_bytes: Arc<SessionStats>,
    ) -> Self {
        Upstream {
            head: Some(head.buffered),
            trailers: head.trailers,
            rest,
            bytes,
            session_bytes,
        }
    }
}

impl HttpBody for Upstream {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, tonic::Status>>> {
        let this = self.project();
        if let Some(head) = this.head.take() {
            this.bytes.inc_by(head.len() as u64);
            this.session_bytes
                .bytes_in
                .fetch_add(head.len() as u64, Ordering::Relaxed);
            return Poll::Ready(Some(Ok(Frame::data(head))));
        }
        if this.trailers.is_some() {
            return Poll::Ready(this.trailers.take().map(|t| Ok(Frame::trailers(t))));
        }
        let polled = this.rest.poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            this.bytes.inc_by(data.len() as u64);
            this.session_bytes
                .bytes_in
                .fetch_add(data.len() as u64, Ordering::Relaxed);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.head.is_none() && self.trailers.is_none() && self.rest.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let rest = self.rest.size_hint();
        let Some(head) = &self.head else {
            return rest;
        };
        let n = head.len() as u64;
        // Raise the upper bound first: SizeHint insists that lower <= upper at every step.
        let mut hint = SizeHint::new();
        if let Some(upper) = rest.upper() {
            hint.set_upper(upper.saturating_add(n));
        }
        hint.set_lower(rest.lower().saturating_add(n));
        hint
    }
}

/// Watches a response on its way to the client.
pub(crate) trait Observer: Send + 'static {
    /// Called once with the call's final gRPC status code, or `None` if the client went away
    /// before the response ended.
    fn finish(&mut self, code: Option<i32>);

    /// The status sent to the client when the backend's response stream breaks mid-way
    /// (connection lost, stream reset): it names the backend.
    fn broken(&self, cause: &tonic::Status) -> tonic::Status;

    /// Sees each data frame on its way (`first` for the response's first one). A status ends
    /// the response with it instead of the frame.
    fn data(&mut self, data: &Bytes, first: bool) -> Option<tonic::Status>;
}

pin_project_lite::pin_project! {
    /// The response body sent to the client: the backend's frames untouched, counted, with the
    /// final status noted from the trailers.
    pub(crate) struct Downstream<O: Observer> {
        #[pin]
        inner: Body,
        bytes: Counter,
        code: Option<i32>,
        observer: Option<O>,
        ended: bool,
        seen_data: bool,
    }

    impl<O: Observer> PinnedDrop for Downstream<O> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(mut observer) = this.observer.take() {
                observer.finish(*this.code);
            }
        }
    }
}

impl<O: Observer> Downstream<O> {
    /// `code` is the status already known from the response headers (a trailers-only response).
    pub(crate) fn new(inner: Body, bytes: Counter, code: Option<i32>, observer: O) -> Self {
        Downstream {
            inner,
            bytes,
            code,
            observer: Some(observer),
            ended: false,
            seen_data: false,
        }
    }
}

/// Reads `grpc-status` from a header map.
pub(crate) fn grpc_status(headers: &HeaderMap) -> Option<i32> {
    headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.parse().ok())
}

impl<O: Observer> HttpBody for Downstream<O> {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, tonic::Status>>> {
        let this = self.project();
        if *this.ended {
            return Poll::Ready(None);
        }
        let polled = this.inner.poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.bytes.inc_by(data.len() as u64);
                    let first = !*this.seen_data;
                    *this.seen_data = true;
                    let verdict = this.observer.as_mut().and_then(|o| o.data(data, first));
                    if let Some(status) = verdict {
                        *this.ended = true;
                        *this.code = Some(status.code() as i32);
                        if let Some(mut observer) = this.observer.take() {
                            observer.finish(*this.code);
                        }
                        return Poll::Ready(Some(Ok(Frame::trailers(status_trailers(&status)))));
                    }
                } else if let Some(trailers) = frame.trailers_ref() {
                    *this.code = grpc_status(trailers).or(*this.code);
                }
            }
            Poll::Ready(Some(Err(cause))) => {
                // The backend's stream broke: end the client's stream with a status that names
                // the backend instead of resetting it.
                *this.ended = true;
                let status = match this.observer.as_ref() {
                    Some(observer) => observer.broken(cause),
                    None => cause.clone(),
                };
                *this.code = Some(status.code() as i32);
                let trailers = status_trailers(&status);
                if let Some(mut observer) = this.observer.take() {
                    observer.finish(*this.code);
                }
                return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
            }
            Poll::Ready(None) => {
                if let Some(mut observer) = this.observer.take() {
                    // A stream that ends without a status is reported as UNKNOWN (2).
                    observer.finish(Some(this.code.unwrap_or(2)));
                }
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.ended || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A complete unary gRPC response made by the proxy itself: one message and an OK status.
pub(crate) fn local_response(message: &[u8]) -> http::Response<Body> {
    let mut framed = BytesMut::with_capacity(GRPC_HEADER_LEN + message.len());
    framed.extend_from_slice(&wire::encode_frame_header(
        u32::try_from(message.len()).unwrap_or(u32::MAX),
    ));
    framed.extend_from_slice(message);
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
    let frames = futures_util::stream::iter([
        Ok::<_, tonic::Status>(Frame::data(framed.freeze())),
        Ok(Frame::trailers(trailers)),
    ]);
    let mut response = http::Response::new(Body::new(http_body_util::StreamBody::new(frames)));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/grpc"),
    );
    response
}

/// The Spark setting that holds a backend's pre-shared token.
pub(crate) const TOKEN_KEY: &str = "spark.connect.authenticate.token";
const REDACTED: &str = "*********(redacted)";

/// Replaces the value of [`TOKEN_KEY`] in a unary Config response, so a client cannot read the
/// token the proxy injects. The response (one small message) is read whole; a response that is
/// not a well-formed ConfigResponse is replaced by an INTERNAL status rather than passed on.
pub(crate) async fn redact_config(body: Body, limit: usize) -> Body {
    use prost::Message as _;
    use sc_proto::spark::connect as pb;

    let collected = match http_body_util::Limited::new(body, limit + GRPC_HEADER_LEN)
        .collect()
        .await
    {
        Ok(c) => c,
        Err(_) => {
            return status_body(tonic::Status::internal(
                "config response could not be read for redaction",
            ));
        }
    };
    let trailers = collected.trailers().cloned();
    let bytes = collected.to_bytes();
    let mut out = BytesMut::with_capacity(bytes.len());
    let mut rest = &bytes[..];
    while !rest.is_empty() {
        let header = match wire::frame_header(rest) {
            Ok(Some(h)) if !h.compressed && rest.len() >= GRPC_HEADER_LEN + h.len as usize => h,
            _ => {
                return status_body(tonic::Status::internal(
                    "config response could not be read for redaction",
                ));
            }
        };
        let message = &rest[GRPC_HEADER_LEN..GRPC_HEADER_LEN + header.len as usize];
        rest = &rest[GRPC_HEADER_LEN + header.len as usize..];
        let Ok(mut response) = pb::ConfigResponse::decode(message) else {
            return status_body(tonic::Status::internal(
                "config response could not be read for redaction",
            ));
        };
        for pair in &mut response.pairs {
            if pair.key == TOKEN_KEY && pair.value.is_some() {
                pair.value = Some(REDACTED.to_owned());
            }
        }
        let encoded = response.encode_to_vec();
        out.extend_from_slice(&wire::encode_frame_header(
            u32::try_from(encoded.len()).unwrap_or(u32::MAX),
        ));
        out.extend_from_slice(&encoded);
    }
    let mut frames = Vec::with_capacity(2);
    if !out.is_empty() {
        frames.push(Ok::<_, tonic::Status>(Frame::data(out.freeze())));
    }
    if let Some(trailers) = trailers {
        frames.push(Ok(Frame::trailers(trailers)));
    }
    Body::new(http_body_util::StreamBody::new(futures_util::stream::iter(
        frames,
    )))
}

/// The trailers that end a call with `status`.
fn status_trailers(status: &tonic::Status) -> HeaderMap {
    let mut trailers = HeaderMap::new();
    if status.add_header(&mut trailers).is_err() {
        // Only a message that cannot be encoded fails; the code alone still goes out.
        trailers.insert("grpc-status", http::HeaderValue::from(status.code() as i32));
    }
    trailers
}

fn status_body(status: tonic::Status) -> Body {
    let trailers = status_trailers(&status);
    Body::new(http_body_util::StreamBody::new(futures_util::stream::iter(
        [Ok::<_, tonic::Status>(Frame::trailers(trailers))],
    )))
}
