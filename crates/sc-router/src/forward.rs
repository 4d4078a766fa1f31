//! The byte-level forwarding path: read the first gRPC message of a request (to route it), then
//! forward that message and the rest of the body untouched, and watch the response go by.

use std::future::Future;
use std::io::Read as _;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
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

    /// Bounds that follow the messages after the first from where the head ends. A later
    /// message whose prefix came with the head and announces more than `limit` is refused.
    pub(crate) fn later_messages(&self, limit: usize) -> Result<MessageBounds, RouterError> {
        let mut bounds = MessageBounds::after_prefix(self.header.len, limit);
        bounds.follow(self.buffered.get(GRPC_HEADER_LEN..).unwrap_or_default())?;
        Ok(bounds)
    }

    /// The first message's bytes, as sent (possibly compressed).
    pub(crate) fn message(&self) -> &[u8] {
        let end = GRPC_HEADER_LEN + self.header.len as usize;
        self.buffered.get(GRPC_HEADER_LEN..end).unwrap_or(&[])
    }
}

/// One piece of a request body as it arrives.
pub(crate) enum Piece {
    Data(Bytes),
    Trailers(HeaderMap),
}

/// A request body the router reads the first message from: tonic's (the tower service) or an
/// HTTP/2 stream's (the relay).
pub(crate) trait RequestBody {
    /// The next piece, `None` at the end; an error says why the body broke.
    fn next_piece(&mut self) -> impl Future<Output = Option<Result<Piece, String>>> + Send;
}

impl RequestBody for Body {
    async fn next_piece(&mut self) -> Option<Result<Piece, String>> {
        Some(match self.frame().await? {
            Err(status) => Err(status.message().to_owned()),
            Ok(frame) => match frame.into_data() {
                Ok(data) => Ok(Piece::Data(data)),
                Err(frame) => Ok(Piece::Trailers(frame.into_trailers().unwrap_or_default())),
            },
        })
    }
}

/// Reads until the first gRPC message is complete. A message whose prefix announces more than
/// `limit` bytes is refused before it is read.
pub(crate) async fn read_head(
    body: &mut impl RequestBody,
    limit: usize,
) -> Result<Head, RouterError> {
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
        match body.next_piece().await {
            None => {
                let empty = first.as_ref().is_none_or(|b| b.is_empty()) && joined.is_empty();
                return Err(RouterError::Truncated(if empty {
                    "carries no message"
                } else {
                    "is truncated: it ended before its first message was complete"
                }));
            }
            Some(Err(why)) => return Err(RouterError::RequestBody(why)),
            Some(Ok(Piece::Data(data))) => match &first {
                None => first = Some(data),
                Some(f) => {
                    if joined.is_empty() {
                        joined.extend_from_slice(f);
                    }
                    joined.extend_from_slice(&data);
                }
            },
            Some(Ok(Piece::Trailers(t))) => trailers = Some(t),
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
            .take(limit.saturating_add(1))
            .read_to_end(scratch),
        "deflate" => flate2::read::ZlibDecoder::new(head.message())
            .take(limit.saturating_add(1))
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

/// Follows the gRPC messages of a request body as its bytes go by, to hold every message (not
/// only the first, which [`read_head`] checks) to `router.max_message_size`. It reads each
/// 5-byte prefix (1 flag byte, 4 bytes of big-endian length), which may be split across frames,
/// and skips the message bodies: a few counters, nothing copied or decoded.
///
/// A compressed message is held to the limit by its compressed length (only the first message
/// is inflated, to route the call); the backend checks inflated sizes itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MessageBounds {
    limit: usize,
    /// Bytes of the current message's body still to come; when 0, a prefix comes next.
    remaining: u64,
    /// Bytes of the next prefix seen so far (0 to 4).
    prefix_seen: u8,
    /// The length the prefix being read announces, as far as it is read.
    announced: u32,
}

impl MessageBounds {
    /// Bounds placed right after the prefix of a message of `len` bytes.
    pub(crate) fn after_prefix(len: u32, limit: usize) -> Self {
        MessageBounds {
            limit,
            remaining: u64::from(len),
            prefix_seen: 0,
            announced: 0,
        }
    }

    /// Follows the next `data` of the body. A prefix announcing more than the limit is refused
    /// with the error [`read_head`] gives an oversize first message.
    pub(crate) fn follow(&mut self, mut data: &[u8]) -> Result<(), RouterError> {
        loop {
            if self.remaining > 0 {
                let skip =
                    usize::try_from(self.remaining).map_or(data.len(), |r| r.min(data.len()));
                self.remaining -= skip as u64;
                data = data.get(skip..).unwrap_or_default();
            }
            let Some((&byte, rest)) = data.split_first() else {
                return Ok(());
            };
            data = rest;
            if self.prefix_seen > 0 {
                // The flag byte (the first) is the backend's to check; the four after it are
                // the length.
                self.announced = (self.announced << 8) | u32::from(byte);
            }
            self.prefix_seen += 1;
            if usize::from(self.prefix_seen) == GRPC_HEADER_LEN {
                let len = std::mem::take(&mut self.announced);
                self.prefix_seen = 0;
                if u64::from(len) > u64::try_from(self.limit).unwrap_or(u64::MAX) {
                    return Err(RouterError::MessageTooLarge {
                        size: u64::from(len),
                        limit: self.limit,
                    });
                }
                self.remaining = u64::from(len);
            }
        }
    }
}

/// Set when an [`Upstream`] cut its request short because a later message was too large. The
/// backend then sees its stream reset, and its failure reaches the router; this tells the router
/// that the client is to learn why (RESOURCE_EXHAUSTED), and that the backend is not at fault.
/// It also counts the request's bytes forwarded, for the call's trace.
#[derive(Debug, Default)]
pub(crate) struct Cut(std::sync::OnceLock<(u64, usize)>, AtomicU64);

impl Cut {
    /// Records that a message of `size` bytes, over `limit`, cut the request.
    pub(crate) fn set(&self, size: u64, limit: usize) {
        let _ = self.0.set((size, limit));
    }

    /// The error that cut the request, if one did.
    pub(crate) fn error(&self) -> Option<RouterError> {
        self.0
            .get()
            .map(|&(size, limit)| RouterError::MessageTooLarge { size, limit })
    }

    /// Counts `len` bytes of the request forwarded.
    pub(crate) fn count(&self, len: usize) {
        self.1.fetch_add(len as u64, Ordering::Relaxed);
    }

    /// Message bytes of the request forwarded so far.
    pub(crate) fn forwarded(&self) -> u64 {
        self.1.load(Ordering::Relaxed)
    }
}

pin_project_lite::pin_project! {
    /// The request body sent to the backend: the bytes already read, then the rest as it comes,
    /// each message held to `router.max_message_size`.
    pub(crate) struct Upstream {
        head: Option<Bytes>,
        trailers: Option<HeaderMap>,
        #[pin]
        rest: Body,
        bounds: MessageBounds,
        cut: Arc<Cut>,
        bytes: Counter,
        session_bytes: Arc<SessionStats>,
    }
}

impl Upstream {
    /// The body that forwards `head` and then `rest`. `bounds` (from
    /// [`Head::later_messages`]) follows the messages in `rest`; when one is too large the
    /// body ends with an error (the backend's stream is reset) and `cut` says why.
    pub(crate) fn new(
        head: Head,
        rest: Body,
        bounds: MessageBounds,
        cut: Arc<Cut>,
        bytes: Counter,
        session_bytes: Arc<SessionStats>,
    ) -> Self {
        Upstream {
            head: Some(head.buffered),
            trailers: head.trailers,
            rest,
            bounds,
            cut,
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
            this.cut.count(head.len());
            return Poll::Ready(Some(Ok(Frame::data(head))));
        }
        if this.trailers.is_some() {
            return Poll::Ready(this.trailers.take().map(|t| Ok(Frame::trailers(t))));
        }
        if this.cut.0.get().is_some() {
            return Poll::Ready(None);
        }
        let polled = this.rest.poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            if let Err(error) = this.bounds.follow(data) {
                // The backend's stream is reset and the router tells the client why.
                if let RouterError::MessageTooLarge { size, limit } = &error {
                    let _ = this.cut.0.set((*size, *limit));
                }
                return Poll::Ready(Some(Err(error.to_status())));
            }
            this.bytes.inc_by(data.len() as u64);
            this.session_bytes
                .bytes_in
                .fetch_add(data.len() as u64, Ordering::Relaxed);
            this.cut.count(data.len());
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.head.is_none()
            && self.trailers.is_none()
            && (self.cut.0.get().is_some() || self.rest.is_end_stream())
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
pub(crate) const REDACTED: &str = "*********(redacted)";

/// Replaces the value of [`TOKEN_KEY`] in a unary Config response, so a client cannot read the
/// token the proxy injects. The response (one small message) is read whole; a response that is
/// not a well-formed ConfigResponse is replaced by an INTERNAL status rather than passed on.
pub(crate) async fn redact_config(body: Body, limit: usize) -> Body {
    let collected = match http_body_util::Limited::new(body, limit.saturating_add(GRPC_HEADER_LEN))
        .collect()
        .await
    {
        Ok(c) => c,
        Err(_) => return status_body(unredactable()),
    };
    let trailers = collected.trailers().cloned();
    let redacted = match redact_config_messages(&collected.to_bytes()) {
        Ok(redacted) => redacted,
        Err(status) => return status_body(status),
    };
    let mut frames = Vec::with_capacity(2);
    if !redacted.is_empty() {
        frames.push(Ok::<_, tonic::Status>(Frame::data(redacted)));
    }
    if let Some(trailers) = trailers {
        frames.push(Ok(Frame::trailers(trailers)));
    }
    Body::new(http_body_util::StreamBody::new(futures_util::stream::iter(
        frames,
    )))
}

fn unredactable() -> tonic::Status {
    tonic::Status::internal("config response could not be read for redaction")
}

/// The gRPC messages of a Config response (whole, prefixes included) with [`TOKEN_KEY`]'s value
/// replaced; an error status when they are not well-formed ConfigResponses.
pub(crate) fn redact_config_messages(bytes: &[u8]) -> Result<Bytes, tonic::Status> {
    use prost::Message as _;
    use sc_proto::spark::connect as pb;

    let mut out = BytesMut::with_capacity(bytes.len());
    let mut rest = bytes;
    while !rest.is_empty() {
        let header = match wire::frame_header(rest) {
            Ok(Some(h)) if !h.compressed && rest.len() >= GRPC_HEADER_LEN + h.len as usize => h,
            _ => return Err(unredactable()),
        };
        let message = &rest[GRPC_HEADER_LEN..GRPC_HEADER_LEN + header.len as usize];
        rest = &rest[GRPC_HEADER_LEN + header.len as usize..];
        let Ok(mut response) = pb::ConfigResponse::decode(message) else {
            return Err(unredactable());
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
    Ok(out.freeze())
}

/// The trailers that end a call with `status`.
pub(crate) fn status_trailers(status: &tonic::Status) -> HeaderMap {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// `messages` framed back to back, as a gRPC request body.
    fn framed(messages: &[usize]) -> Vec<u8> {
        let mut body = Vec::new();
        for &len in messages {
            body.extend_from_slice(&wire::encode_frame_header(
                u32::try_from(len).unwrap_or(u32::MAX),
            ));
            body.extend(std::iter::repeat_n(7u8, len));
        }
        body
    }

    /// Follows `body` (after the first message's prefix) split into chunks at `cuts`.
    fn follow(body: &[u8], cuts: &[usize], limit: usize) -> Result<(), u64> {
        let first = wire::frame_header(body).ok().flatten().map_or(0, |h| h.len);
        let mut bounds = MessageBounds::after_prefix(first, limit);
        let mut from = GRPC_HEADER_LEN;
        for &cut in cuts.iter().chain([&body.len()]) {
            let cut = cut.clamp(from, body.len());
            match bounds.follow(&body[from..cut]) {
                Ok(()) => {}
                Err(RouterError::MessageTooLarge { size, .. }) => return Err(size),
                Err(other) => panic!("unexpected error {other}"),
            }
            from = cut;
        }
        Ok(())
    }

    #[test]
    fn every_message_is_held_to_the_limit_wherever_the_frames_split() {
        let ok = framed(&[3, 0, 10, 2]);
        let over = framed(&[3, 4, 11, 1]);
        for a in GRPC_HEADER_LEN..=ok.len() {
            for b in a..=ok.len() {
                assert_eq!(follow(&ok, &[a, b], 10), Ok(()), "split at {a}, {b}");
            }
        }
        for a in GRPC_HEADER_LEN..=over.len() {
            for b in a..=over.len() {
                assert_eq!(follow(&over, &[a, b], 10), Err(11), "split at {a}, {b}");
            }
        }
        // One byte at a time, and a prefix announcing 4 GiB - 1.
        let cuts: Vec<usize> = (0..over.len()).collect();
        assert_eq!(follow(&over, &cuts, 10), Err(11));
        let mut huge = framed(&[1]);
        huge.extend_from_slice(&[0, 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(follow(&huge, &[7, 8, 9], 10), Err(u64::from(u32::MAX)));
        // A body cut inside a prefix or a message is the backend's to judge, not a size error.
        assert_eq!(follow(&ok[..ok.len() - 1], &[], 10), Ok(()));
        // (`over` up to the third message's prefix, which it cuts after 3 of its 5 bytes.)
        assert_eq!(follow(&over[..20], &[], 10), Ok(()));
    }
}
