//! The other end of a control-plane connection, as the handlers read it.

use bytes::Bytes;

/// The other end of a control-plane connection: its address, for the audit log, and the leaf
/// certificate (DER) it presented in the TLS handshake, if any, which authenticates its requests
/// as gRPC calls are authenticated (with `auth.mtls`, when a request carries no bearer token).
///
/// The handlers read it from each request's `axum::extract::ConnectInfo<PeerInfo>` extension.
/// Serving the app with `into_make_service_with_connect_info::<PeerInfo>()` over a
/// `tokio::net::TcpListener` puts it there (an address, no certificate); a server that accepts
/// connections itself (the proxy does, to terminate TLS) inserts it per connection, with the
/// certificate the handshake verified. Without it, the audit log shows the peer as `unknown` and
/// only tokens authenticate.
#[derive(Debug, Clone)]
pub struct PeerInfo {
    addr: std::net::SocketAddr,
    certificate: Option<Bytes>,
    tls: bool,
}

impl PeerInfo {
    /// A peer at `addr` that presented no certificate.
    pub fn new(addr: std::net::SocketAddr) -> Self {
        PeerInfo {
            addr,
            certificate: None,
            tls: false,
        }
    }

    /// The same peer, connected over TLS (cookies the control plane sets are then `Secure`).
    pub fn over_tls(mut self) -> Self {
        self.tls = true;
        self
    }

    /// Whether the connection is TLS.
    pub fn tls(&self) -> bool {
        self.tls
    }

    /// The same peer, having presented `certificate` (DER; the chain's leaf). Only a
    /// certificate the TLS handshake verified (against `server.tls.client_ca_file`) may be given
    /// here: it is taken as proof of identity.
    pub fn with_certificate(mut self, certificate: impl Into<Bytes>) -> Self {
        self.certificate = Some(certificate.into());
        self
    }

    /// The client's address.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.addr
    }

    /// The leaf certificate (DER) the client presented, if any.
    pub fn certificate(&self) -> Option<&[u8]> {
        self.certificate.as_deref()
    }
}

impl
    axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, tokio::net::TcpListener>>
    for PeerInfo
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, tokio::net::TcpListener>) -> Self {
        PeerInfo::new(*stream.remote_addr())
    }
}
