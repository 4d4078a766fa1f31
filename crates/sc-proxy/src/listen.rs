//! Listening: accepting TCP connections (an accept error never ends a listener), closing the
//! ones that stay silent ([`IdleTimeout`]), handing connections accepted here over to a server
//! through a channel ([`ChannelListener`], e.g. after a TLS handshake), and telling the control
//! plane who is at the other end ([`PeerCertificate`], [`WithPeerInfo`]).

use std::convert::Infallible;
use std::future::Future as _;
use std::net::SocketAddr;
use std::task::{Context, Poll};

use axum::extract::ConnectInfo;
use axum::middleware::AddExtension;
use axum::serve::IncomingStream;
use sc_control::PeerInfo;
use tokio::net::TcpListener;
use tower::Layer as _;
use tracing::warn;

/// The next connection on `listener`, with Nagle's algorithm off. A failed accept (out of file
/// descriptors, say) is logged and tried again after a pause, never the end of the listener.
pub(crate) async fn accept(listener: &TcpListener) -> (tokio::net::TcpStream, SocketAddr) {
    loop {
        match listener.accept().await {
            Ok((stream, addr)) => {
                let _ = stream.set_nodelay(true);
                return (stream, addr);
            }
            Err(e) => {
                warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

/// Accepts TCP connections and hands them over, wrapped, through a channel.
pub(crate) fn accept_plain<S, F>(
    listener: TcpListener,
    wrap: F,
) -> tokio::sync::mpsc::Receiver<(S, SocketAddr)>
where
    S: Send + 'static,
    F: Fn(tokio::net::TcpStream) -> S + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(async move {
        loop {
            let (stream, addr) = accept(&listener).await;
            if tx.send((wrap(stream), addr)).await.is_err() {
                break;
            }
        }
    });
    rx
}

/// A client connection closed when nothing has been received on it for a while.
///
/// A read does not touch the timer: it only notes the time. The timer fires at most once per
/// `timeout`, and then either closes the connection or moves its deadline past the last read.
/// (Re-arming a timer on every read made each call wake the runtime's I/O driver; see
/// docs/benchmarks.md.)
pub(crate) struct IdleTimeout {
    stream: tokio::net::TcpStream,
    timeout: std::time::Duration,
    last_read: tokio::time::Instant,
    deadline: std::pin::Pin<Box<tokio::time::Sleep>>,
    info: tonic::transport::server::TcpConnectInfo,
}

impl IdleTimeout {
    pub(crate) fn new(stream: tokio::net::TcpStream, timeout: std::time::Duration) -> Self {
        let info = tonic::transport::server::Connected::connect_info(&stream);
        let now = tokio::time::Instant::now();
        IdleTimeout {
            stream,
            timeout,
            last_read: now,
            deadline: Box::pin(tokio::time::sleep_until(now + timeout)),
            info,
        }
    }

    /// Ready with an error once nothing has been read for `timeout`.
    fn poll_idle(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<std::io::Error> {
        loop {
            if self.deadline.as_mut().poll(cx).is_pending() {
                return std::task::Poll::Pending;
            }
            let due = self.last_read + self.timeout;
            if due <= tokio::time::Instant::now() {
                return std::task::Poll::Ready(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!(
                        "nothing received for {:?} (server.idle_timeout)",
                        self.timeout
                    ),
                ));
            }
            self.deadline.as_mut().reset(due);
        }
    }
}

impl tonic::transport::server::Connected for IdleTimeout {
    type ConnectInfo = tonic::transport::server::TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.info.clone()
    }
}

/// A plain connection presents no certificate (over TLS, the `TlsStream` around it answers).
impl PeerCertificate for IdleTimeout {
    fn peer_certificate(&self) -> Option<Vec<u8>> {
        None
    }

    fn is_tls(&self) -> bool {
        false
    }
}

impl tokio::io::AsyncRead for IdleTimeout {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let filled = buf.filled().len();
        match std::pin::Pin::new(&mut this.stream).poll_read(cx, buf) {
            std::task::Poll::Ready(result) => {
                if buf.filled().len() > filled {
                    this.last_read = tokio::time::Instant::now();
                }
                std::task::Poll::Ready(result)
            }
            std::task::Poll::Pending => this.poll_idle(cx).map(Err),
        }
    }
}

impl tokio::io::AsyncWrite for IdleTimeout {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// A connection that may carry a client certificate: a TLS connection answers the leaf
/// certificate its client presented (verified during the handshake), a plain one `None`.
pub(crate) trait PeerCertificate {
    /// The leaf certificate (DER) the client presented, if any.
    fn peer_certificate(&self) -> Option<Vec<u8>>;

    /// Whether the connection is TLS.
    fn is_tls(&self) -> bool;
}

impl<S> PeerCertificate for tokio_rustls::server::TlsStream<S> {
    fn peer_certificate(&self) -> Option<Vec<u8>> {
        let (_, connection) = self.get_ref();
        connection
            .peer_certificates()
            .and_then(|chain| chain.first())
            .map(|leaf| leaf.as_ref().to_vec())
    }

    fn is_tls(&self) -> bool {
        true
    }
}

/// A listener over connections accepted elsewhere (after a TLS handshake, say), handed over
/// through a channel, for `axum::serve`.
#[derive(Debug)]
pub(crate) struct ChannelListener<Io> {
    rx: tokio::sync::mpsc::Receiver<(Io, SocketAddr)>,
    local: SocketAddr,
}

impl<Io> ChannelListener<Io> {
    /// A listener that yields what arrives on `rx`; `local` is the address it reports.
    pub(crate) fn new(
        rx: tokio::sync::mpsc::Receiver<(Io, SocketAddr)>,
        local: SocketAddr,
    ) -> Self {
        ChannelListener { rx, local }
    }
}

impl<Io> axum::serve::Listener for ChannelListener<Io>
where
    Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    type Io = Io;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Io, SocketAddr) {
        match self.rx.recv().await {
            Some(accepted) => accepted,
            // The sender is gone only at shutdown; wait for the server to stop.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local)
    }
}

/// The control plane's application made into a service per connection of a
/// [`ChannelListener`], each request carrying the connection's [`PeerInfo`] (its address and
/// the client certificate it presented) as axum connect info, where the handlers read it.
#[derive(Clone)]
pub(crate) struct WithPeerInfo(pub(crate) axum::Router);

impl<'a, Io> tower::Service<IncomingStream<'a, ChannelListener<Io>>> for WithPeerInfo
where
    Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + PeerCertificate + Unpin + Send + 'static,
{
    type Response = AddExtension<axum::Router, ConnectInfo<PeerInfo>>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, stream: IncomingStream<'a, ChannelListener<Io>>) -> Self::Future {
        let mut peer = PeerInfo::new(*stream.remote_addr());
        if let Some(certificate) = stream.io().peer_certificate() {
            peer = peer.with_certificate(certificate);
        }
        if stream.io().is_tls() {
            peer = peer.over_tls();
        }
        std::future::ready(Ok(axum::Extension(ConnectInfo(peer)).layer(self.0.clone())))
    }
}
