//! TLS for both listeners: rustls, PEM files, optional client certificates, and reload of the
//! files on SIGHUP or when they change on disk, without dropping connections.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{RootCertStore, ServerConfig};
use tracing::{info, warn};

use crate::ServeError;
use crate::config::TlsConfig;

/// How long a client has to complete the TLS handshake.
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The TLS settings of a listener, rebuilt from the files when they change.
pub(crate) struct ReloadableTls {
    files: TlsFiles,
    alpn: Vec<Vec<u8>>,
    current: RwLock<(Arc<ServerConfig>, Vec<Option<SystemTime>>)>,
}

#[derive(Clone)]
struct TlsFiles {
    cert: PathBuf,
    key: PathBuf,
    client_ca: Option<PathBuf>,
    require_client_cert: bool,
}

impl TlsFiles {
    fn paths(&self) -> Vec<&Path> {
        let mut paths = vec![self.cert.as_path(), self.key.as_path()];
        paths.extend(self.client_ca.as_deref());
        paths
    }

    fn mtimes(&self) -> Vec<Option<SystemTime>> {
        self.paths()
            .iter()
            .map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
            .collect()
    }
}

fn tls_error(what: impl std::fmt::Display) -> ServeError {
    ServeError::Tls(what.to_string())
}

fn build(files: &TlsFiles, alpn: &[Vec<u8>]) -> Result<ServerConfig, ServeError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|e| {
            tls_error(format!(
                "server.tls.cert_file {}: {e}",
                files.cert.display()
            ))
        })?
        .collect::<Result<_, _>>()
        .map_err(|e| {
            tls_error(format!(
                "server.tls.cert_file {}: {e}",
                files.cert.display()
            ))
        })?;
    if certs.is_empty() {
        return Err(tls_error(format!(
            "server.tls.cert_file {} holds no PEM certificate",
            files.cert.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| tls_error(format!("server.tls.key_file {}: {e}", files.key.display())))?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(tls_error)?;
    let builder = match &files.client_ca {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(ca).map_err(|e| {
                tls_error(format!("server.tls.client_ca_file {}: {e}", ca.display()))
            })? {
                let cert = cert.map_err(|e| {
                    tls_error(format!("server.tls.client_ca_file {}: {e}", ca.display()))
                })?;
                roots.add(cert).map_err(|e| {
                    tls_error(format!("server.tls.client_ca_file {}: {e}", ca.display()))
                })?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if files.require_client_cert {
                verifier.build()
            } else {
                verifier.allow_unauthenticated().build()
            }
            .map_err(|e| tls_error(format!("server.tls.client_ca_file: {e}")))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| tls_error(format!("server.tls: certificate and key do not fit: {e}")))?;
    config.alpn_protocols = alpn.to_vec();
    Ok(config)
}

impl ReloadableTls {
    /// Reads the files now; fails with a message naming the bad file.
    pub(crate) fn new(config: &TlsConfig, alpn: &[&[u8]]) -> Result<Arc<Self>, ServeError> {
        let (Some(cert), Some(key)) = (&config.cert_file, &config.key_file) else {
            return Err(tls_error(
                "server.tls.cert_file and server.tls.key_file are required",
            ));
        };
        let files = TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
            client_ca: config.client_ca_file.clone(),
            require_client_cert: config.require_client_cert,
        };
        let alpn: Vec<Vec<u8>> = alpn.iter().map(|p| p.to_vec()).collect();
        let server = build(&files, &alpn)?;
        let mtimes = files.mtimes();
        Ok(Arc::new(ReloadableTls {
            files,
            alpn,
            current: RwLock::new((Arc::new(server), mtimes)),
        }))
    }

    pub(crate) fn acceptor(&self) -> TlsAcceptor {
        let guard = self
            .current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        TlsAcceptor::from(guard.0.clone())
    }

    /// Re-reads the files. A bad new file keeps the old settings in force and is logged.
    pub(crate) fn reload(&self, reason: &str) {
        match build(&self.files, &self.alpn) {
            Ok(server) => {
                let mtimes = self.files.mtimes();
                *self
                    .current
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) =
                    (Arc::new(server), mtimes);
                info!(reason, cert = %self.files.cert.display(), "TLS certificate reloaded");
            }
            Err(e) => {
                warn!(reason, error = %e, "TLS reload failed; keeping the previous certificate")
            }
        }
    }

    /// Reloads when a file's modification time changed since the last load.
    pub(crate) fn reload_if_changed(&self) {
        let changed = {
            let guard = self
                .current
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            guard.1 != self.files.mtimes()
        };
        if changed {
            self.reload("files changed");
        }
    }
}

/// Completes the TLS handshakes of accepted connections concurrently, on the current runtime (a
/// slow handshake never holds up the others), handing over finished streams.
pub(crate) fn handshake_each<S>(
    mut streams: mpsc::Receiver<(S, std::net::SocketAddr)>,
    tls: Arc<ReloadableTls>,
) -> mpsc::Receiver<(tokio_rustls::server::TlsStream<S>, std::net::SocketAddr)>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        while let Some((io, addr)) = streams.recv().await {
            if tx.is_closed() {
                break;
            }
            tokio::spawn(handshake(tls.acceptor(), io, addr, tx.clone()));
        }
    });
    rx
}

async fn handshake<S>(
    acceptor: TlsAcceptor,
    io: S,
    addr: std::net::SocketAddr,
    tx: mpsc::Sender<(tokio_rustls::server::TlsStream<S>, std::net::SocketAddr)>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(io)).await {
        Ok(Ok(stream)) => {
            let _ = tx.send((stream, addr)).await;
        }
        Ok(Err(e)) => tracing::debug!(peer = %addr, error = %e, "TLS handshake failed"),
        Err(_) => tracing::debug!(peer = %addr, "TLS handshake timed out"),
    }
}
