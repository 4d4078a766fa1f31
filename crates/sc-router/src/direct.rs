//! The forwarding connection to a plaintext backend: one HTTP/2 connection driven by hyper
//! directly.
//!
//! tonic's `Channel` puts a `tower::buffer::Buffer` (a queue and a worker task) and a URI rewrite
//! in front of every call; the profile of the forwarding path showed the extra task hop and its
//! cross-thread wake-ups as a visible share of a unary call (docs/benchmarks.md). Here a call
//! clones the connection's `SendRequest` and sends on it. The connection is made on first use
//! and again after it breaks; concurrent callers wait for one connection attempt.
//! Backends reached over TLS keep using the `Channel` (and its TLS set-up).
//!
//! A server that runs one single-threaded runtime per core (as the proxy binary does) gives each
//! of its threads a *lane* ([`use_connection_lane`]): a call forwarded from lane `i` uses the
//! backend's connection `i`, whose task runs on the same thread, so no call wakes another thread.
//! Threads without a lane (a multi-threaded runtime, background tasks) share one more connection.

use std::cell::Cell;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use http::uri::{Authority, Scheme};
use hyper::client::conn::http2::{Builder, SendRequest};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tonic::body::Body;
use tracing::debug;

use crate::RouterSettings;

thread_local! {
    static LANE: Cell<Option<usize>> = const { Cell::new(None) };
}

/// Calls forwarded from the current thread use the backends' connection number `lane` (out of
/// [`RouterSettings::connection_lanes`]), which is made, and driven, on this thread.
///
/// For servers that run a single-threaded tokio runtime per thread: marking each thread with its
/// own lane keeps a call and the backend connection it travels on on one thread. Threads never
/// marked, and lanes out of range, share one connection per backend.
pub fn use_connection_lane(lane: usize) {
    LANE.with(|l| l.set(Some(lane)));
}

/// The index of this thread's lane among `lanes` connections (the last is shared by threads
/// without a lane, and by lanes out of range).
pub(crate) fn lane_index(lanes: usize) -> usize {
    let shared = lanes.saturating_sub(1);
    LANE.with(Cell::get).map_or(shared, |i| i.min(shared))
}

/// One backend's forwarding connections: one per lane, plus one shared by threads without one.
pub(crate) struct DirectConnection {
    authority: Authority,
    connect_timeout: Duration,
    builder: Builder<TokioExecutor>,
    lanes: Box<[Lane]>,
}

#[derive(Default)]
struct Lane {
    sender: ArcSwapOption<SendRequest<Body>>,
    connecting: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for DirectConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectConnection")
            .field("authority", &self.authority)
            .finish_non_exhaustive()
    }
}

impl DirectConnection {
    /// For a plaintext (`http://host:port`) endpoint; `None` for anything else.
    pub(crate) fn for_endpoint(uri: &http::Uri, s: &RouterSettings) -> Option<Self> {
        if uri.scheme() != Some(&Scheme::HTTP) {
            return None;
        }
        let authority = uri.authority()?.clone();
        authority.port_u16()?;
        let mut builder = Builder::new(TokioExecutor::new());
        builder
            .timer(TokioTimer::new())
            .initial_stream_window_size(s.stream_window)
            .initial_connection_window_size(s.connection_window)
            .max_frame_size(s.max_frame_size)
            .keep_alive_interval(s.keepalive_interval)
            .keep_alive_timeout(s.keepalive_interval.max(Duration::from_secs(20)))
            .keep_alive_while_idle(true);
        Some(DirectConnection {
            authority,
            connect_timeout: s.connect_timeout,
            builder,
            lanes: (0..=s.connection_lanes).map(|_| Lane::default()).collect(),
        })
    }

    /// This thread's lane.
    fn lane(&self) -> &Lane {
        &self.lanes[lane_index(self.lanes.len())]
    }

    fn current(lane: &Lane) -> Option<SendRequest<Body>> {
        lane.sender
            .load()
            .as_ref()
            .filter(|s| !s.is_closed())
            .map(|s| SendRequest::clone(s))
    }

    async fn connect(&self, lane: &Lane) -> Result<SendRequest<Body>, String> {
        let _one_at_a_time = lane.connecting.lock().await;
        if let Some(sender) = Self::current(lane) {
            return Ok(sender);
        }
        let address = self.authority.as_str();
        let stream = tokio::time::timeout(
            self.connect_timeout,
            tokio::net::TcpStream::connect(address),
        )
        .await
        .map_err(|_| format!("tcp connect timed out after {:?}", self.connect_timeout))?
        .map_err(|e| format!("tcp connect error: {e}"))?;
        let _ = stream.set_nodelay(true);
        let (sender, connection) = self
            .builder
            .handshake(TokioIo::new(crate::coalesce::Coalesce::new(stream)))
            .await
            .map_err(|e| format!("HTTP/2 handshake failed: {}", chain(&e)))?;
        let authority = self.authority.clone();
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                debug!(backend = %authority, error = %chain(&e), "backend connection ended");
            }
        });
        lane.sender.store(Some(Arc::new(sender.clone())));
        Ok(sender)
    }

    /// Sends one call; the error says what failed at the transport level.
    pub(crate) async fn send(
        &self,
        request: http::Request<Body>,
    ) -> Result<http::Response<Body>, String> {
        let lane = self.lane();
        let mut sender = match Self::current(lane) {
            Some(sender) => sender,
            None => self.connect(lane).await?,
        };
        let (mut parts, body) = request.into_parts();
        let mut uri = std::mem::take(&mut parts.uri).into_parts();
        uri.scheme = Some(Scheme::HTTP);
        uri.authority = Some(self.authority.clone());
        parts.uri = http::Uri::from_parts(uri).map_err(|e| format!("bad request URI: {e}"))?;
        sender
            .ready()
            .await
            .map_err(|e| format!("connection lost: {}", chain(&e)))?;
        let response = sender
            .send_request(http::Request::from_parts(parts, body))
            .await
            .map_err(|e| chain(&e))?;
        Ok(response.map(Body::new))
    }
}

fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
