//! The relay's HTTP/2 connections to a backend, with the `h2` crate directly: one per lane
//! (see [`use_connection_lane`](crate::use_connection_lane)), plaintext or TLS, made on first
//! use and again after they break, kept alive with pings.
//!
//! A call takes the lane's `SendRequest` (a handle onto the connection's shared state), opens
//! its stream and writes its frames from its own task; the connection's task, on the same
//! thread, writes them out. No queue or worker task sits in between.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use bytes::Bytes;
use h2::client::SendRequest;
use http::uri::{Authority, Scheme};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, ServerName};
use sc_backend_api::Backend;
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tracing::debug;

use crate::RouterSettings;
use crate::coalesce::Coalesce;

/// One backend's relay connections: one per lane, plus one shared by threads without one.
pub(crate) struct BackendConnection {
    scheme: Scheme,
    authority: Authority,
    /// For a TLS backend: what to verify, and the client configuration once built.
    tls: Option<TlsTarget>,
    connect_timeout: Duration,
    keepalive: Duration,
    builder: h2::client::Builder,
    lanes: Box<[Lane]>,
}

struct TlsTarget {
    server_name: ServerName<'static>,
    ca_file: Option<std::path::PathBuf>,
    config: OnceLock<Result<Arc<ClientConfig>, String>>,
}

#[derive(Default)]
struct Lane {
    sender: ArcSwapOption<SendRequest<Bytes>>,
    connecting: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for BackendConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackendConnection")
            .field("authority", &self.authority)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl BackendConnection {
    /// The connections to `backend`; `None` when its endpoint has no usable authority (a
    /// detached handle).
    pub(crate) fn for_backend(backend: &Backend, s: &RouterSettings) -> Option<Self> {
        let authority = backend.endpoint.authority()?.clone();
        authority.port_u16()?;
        let (scheme, tls) = match &backend.tls {
            None => (Scheme::HTTP, None),
            Some(tls) => {
                let host = tls
                    .server_name
                    .clone()
                    .unwrap_or_else(|| authority.host().trim_matches(['[', ']']).to_owned());
                let server_name = ServerName::try_from(host).ok()?;
                (
                    Scheme::HTTPS,
                    Some(TlsTarget {
                        server_name,
                        ca_file: tls.ca_file.clone(),
                        config: OnceLock::new(),
                    }),
                )
            }
        };
        let mut builder = h2::client::Builder::new();
        builder
            .initial_window_size(s.stream_window)
            .initial_connection_window_size(s.connection_window)
            .max_frame_size(s.max_frame_size)
            .max_send_buffer_size(usize::try_from(s.max_frame_size).unwrap_or(usize::MAX));
        Some(BackendConnection {
            scheme,
            authority,
            tls,
            connect_timeout: s.connect_timeout,
            keepalive: s.keepalive_interval,
            builder,
            lanes: (0..=s.connection_lanes).map(|_| Lane::default()).collect(),
        })
    }

    /// The URI scheme of the backend (`http` or `https`).
    pub(crate) fn scheme(&self) -> &Scheme {
        &self.scheme
    }

    /// The backend's `host:port`.
    pub(crate) fn authority(&self) -> &Authority {
        &self.authority
    }

    /// A sender ready to open a stream on this thread's lane, connecting when there is none or
    /// the last one broke. The error says what failed at the transport level.
    pub(crate) async fn ready(&self) -> Result<SendRequest<Bytes>, String> {
        let lane = &self.lanes[crate::direct::lane_index(self.lanes.len())];
        if let Some(sender) = lane.sender.load_full() {
            match SendRequest::clone(&sender).ready().await {
                Ok(ready) => return Ok(ready),
                Err(e) => {
                    debug!(backend = %self.authority, error = %e, "backend connection lost; connecting again");
                    let broken = lane
                        .sender
                        .load()
                        .as_ref()
                        .is_some_and(|current| Arc::ptr_eq(current, &sender));
                    if broken {
                        lane.sender.store(None);
                    }
                }
            }
        }
        let sender = self.connect(lane).await?;
        sender
            .ready()
            .await
            .map_err(|e| format!("connection lost: {e}"))
    }

    async fn connect(&self, lane: &Lane) -> Result<SendRequest<Bytes>, String> {
        let _one_at_a_time = lane.connecting.lock().await;
        if let Some(sender) = lane.sender.load_full() {
            return Ok(SendRequest::clone(&sender));
        }
        let stream = tokio::time::timeout(
            self.connect_timeout,
            tokio::net::TcpStream::connect(self.authority.as_str()),
        )
        .await
        .map_err(|_| format!("tcp connect timed out after {:?}", self.connect_timeout))?
        .map_err(|e| format!("tcp connect error: {e}"))?;
        let _ = stream.set_nodelay(true);
        let sender = match &self.tls {
            None => self.handshake(Coalesce::new(stream)).await?,
            Some(target) => {
                let config = target
                    .config
                    .get_or_init(|| client_config(target.ca_file.as_deref()))
                    .clone()?;
                let tls = tokio::time::timeout(
                    self.connect_timeout,
                    tokio_rustls::TlsConnector::from(config)
                        .connect(target.server_name.clone(), stream),
                )
                .await
                .map_err(|_| format!("TLS handshake timed out after {:?}", self.connect_timeout))?
                .map_err(|e| format!("TLS handshake failed: {e}"))?;
                self.handshake(Coalesce::new(tls)).await?
            }
        };
        lane.sender.store(Some(Arc::new(sender.clone())));
        Ok(sender)
    }

    /// The HTTP/2 handshake; the connection's task (driving it and its keep-alive pings) runs
    /// on this thread from now on.
    async fn handshake<IO>(&self, io: IO) -> Result<SendRequest<Bytes>, String>
    where
        IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let (sender, mut connection) = self
            .builder
            .handshake::<_, Bytes>(io)
            .await
            .map_err(|e| format!("HTTP/2 handshake failed: {e}"))?;
        let authority = self.authority.clone();
        let keepalive = self.keepalive;
        let mut pings = connection.ping_pong();
        tokio::spawn(async move {
            // A ping every keep-alive interval; no answer within the next one ends the
            // connection (a backend that vanished without a FIN).
            let mut tick = tokio::time::interval_at(
                tokio::time::Instant::now() + keepalive,
                keepalive.max(Duration::from_millis(1)),
            );
            let mut awaiting = false;
            loop {
                tokio::select! {
                    ended = &mut connection => {
                        if let Err(e) = ended {
                            debug!(backend = %authority, error = %e, "backend connection ended");
                        }
                        return;
                    }
                    pong = std::future::poll_fn(|cx| match pings.as_mut() {
                        Some(p) => p.poll_pong(cx),
                        None => std::task::Poll::Pending,
                    }), if awaiting => {
                        awaiting = false;
                        if pong.is_err() {
                            return;
                        }
                    }
                    _ = tick.tick() => {
                        if awaiting {
                            debug!(backend = %authority, "backend answered no keep-alive ping; closing the connection");
                            return;
                        }
                        if let Some(p) = pings.as_mut() {
                            awaiting = p.send_ping(h2::Ping::opaque()).is_ok();
                        }
                    }
                }
            }
        });
        Ok(sender)
    }
}

/// The TLS client configuration for a backend: its CA file, or the system's roots; HTTP/2 by
/// ALPN.
fn client_config(ca_file: Option<&std::path::Path>) -> Result<Arc<ClientConfig>, String> {
    let mut roots = RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("cannot read CA file {}: {e}", path.display()))?;
            for cert in certs {
                let cert = cert.map_err(|e| format!("CA file {}: {e}", path.display()))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("CA file {}: {e}", path.display()))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for cert in found.certs {
                let _ = roots.add(cert);
            }
            if roots.is_empty() {
                return Err("no system root certificates found; give the backend a ca_file".into());
            }
        }
    }
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS configuration rejected: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}
