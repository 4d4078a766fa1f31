//! Entry points for the fuzz targets in `fuzz/` (cargo-fuzz): the router's byte-level readers
//! of request and response bodies, driven with in-memory bodies and plain inputs and outputs.
//! Not part of the API: hidden from the documentation, and may change at any time.

use std::sync::Arc;

use bytes::Bytes;
use http::HeaderMap;
use http_body::Frame;
use http_body_util::BodyExt as _;
use prometheus_client::metrics::counter::Counter;
use tonic::body::Body;

use crate::RouterError;
use crate::forward::{self, Cut, Upstream};
use crate::registry::SessionStats;

/// The Spark setting whose value [`redact_config`] hides.
pub const TOKEN_KEY: &str = forward::TOKEN_KEY;
/// What [`redact_config`] puts in its place.
pub const REDACTED: &str = forward::REDACTED;

/// A body of `chunks` as data frames, then trailers with `grpc-status: 0` when `trailers`.
fn body(chunks: &[&[u8]], trailers: bool) -> Body {
    let mut frames: Vec<Result<Frame<Bytes>, tonic::Status>> = chunks
        .iter()
        .map(|c| Ok(Frame::data(Bytes::copy_from_slice(c))))
        .collect();
    if trailers {
        let mut t = HeaderMap::new();
        t.insert("grpc-status", http::HeaderValue::from_static("0"));
        frames.push(Ok(Frame::trailers(t)));
    }
    Body::new(http_body_util::StreamBody::new(futures_util::stream::iter(
        frames,
    )))
}

/// Runs a future over in-memory bodies, which never waits; `None` if it would have.
fn now<F: std::future::Future>(future: F) -> Option<F::Output> {
    futures_util::FutureExt::now_or_never(future)
}

/// A request body as the router read and forwarded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The first message as the router reads it to route the call (inflated when compressed).
    pub message: Vec<u8>,
    /// Whether the first message's prefix flagged it compressed.
    pub compressed: bool,
    /// Every byte sent on to the backend, in order.
    pub forwarded: Vec<u8>,
    /// Whether the request's trailers were sent on.
    pub trailers: bool,
}

/// Reads and forwards a request body made of `chunks` (then trailers, when `trailers`) as the
/// router does: the first message read whole and checked against `limit`, inflated when it is
/// flagged compressed and `encoding` (the `grpc-encoding` header) says how, then the rest of the
/// body forwarded with each later message held to `limit`. `None` if reading would have waited
/// (it never should: the body is in memory).
pub fn read_request(
    chunks: &[&[u8]],
    trailers: bool,
    encoding: Option<&str>,
    limit: usize,
) -> Option<Result<Request, RouterError>> {
    now(read(chunks, trailers, encoding, limit))
}

async fn read(
    chunks: &[&[u8]],
    trailers: bool,
    encoding: Option<&str>,
    limit: usize,
) -> Result<Request, RouterError> {
    let mut body = body(chunks, trailers);
    let head = forward::read_head(&mut body, limit).await?;
    let mut headers = HeaderMap::new();
    if let Some(value) = encoding.and_then(|e| http::HeaderValue::from_str(e).ok()) {
        headers.insert("grpc-encoding", value);
    }
    let mut scratch = Vec::new();
    let message = forward::readable(&head, &headers, limit, &mut scratch)?.to_vec();
    let compressed = head.header.compressed;
    let later = head.later_messages(limit)?;
    let cut = Arc::new(Cut::default());
    let upstream = Upstream::new(
        head,
        body,
        later,
        cut.clone(),
        Counter::default(),
        Arc::new(SessionStats::default()),
    );
    match upstream.collect().await {
        Ok(collected) => Ok(Request {
            message,
            compressed,
            trailers: collected.trailers().is_some(),
            forwarded: collected.to_bytes().to_vec(),
        }),
        Err(status) => Err(cut
            .error()
            .unwrap_or_else(|| RouterError::RequestBody(status.message().to_owned()))),
    }
}

/// A Config response body after redaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redacted {
    /// The data sent on to the client (gRPC-framed ConfigResponse messages).
    pub data: Vec<u8>,
    /// The trailers' `grpc-status`, if the body ends with trailers.
    pub status: Option<String>,
}

/// Redacts a Config response body made of `chunks` (then OK trailers, when `trailers`) as the
/// router does for a backend with a token, reading at most `limit` bytes of messages. `None` if
/// reading would have waited (it never should: the body is in memory).
pub fn redact_config(chunks: &[&[u8]], trailers: bool, limit: usize) -> Option<Redacted> {
    now(redact(chunks, trailers, limit)).flatten()
}

async fn redact(chunks: &[&[u8]], trailers: bool, limit: usize) -> Option<Redacted> {
    let collected = forward::redact_config(body(chunks, trailers), limit)
        .await
        .collect()
        .await
        .ok()?;
    let status = collected
        .trailers()
        .and_then(|t| t.get("grpc-status"))
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    Some(Redacted {
        data: collected.to_bytes().to_vec(),
        status,
    })
}
