//! The backends the router forwards to, each with one pooled HTTP/2 connection.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use sc_backend_api::{Backend, BackendId, BackendLoad, BackendProvider};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

use crate::metrics::{BackendMetrics, Metrics};
use crate::{RouterError, RouterSettings};

/// One backend as the router holds it: its description, its connection and its load.
#[derive(Debug)]
pub(crate) struct BackendHandle {
    pub(crate) backend: Backend,
    /// Index of the provider that owns it.
    pub(crate) provider: usize,
    /// One HTTP/2 connection shared by every session on the backend; tonic reconnects it when it
    /// breaks. Cloning it is cheap.
    pub(crate) channel: Channel,
    pub(crate) metrics: BackendMetrics,
    pub(crate) draining: AtomicBool,
    pub(crate) endpoint_text: String,
    /// `Bearer <pre-shared token>` for this backend, marked sensitive.
    pub(crate) authorization: Option<http::HeaderValue>,
    pub(crate) health: crate::health::Health,
}

impl BackendHandle {
    fn new(
        backend: Backend,
        provider: usize,
        settings: &RouterSettings,
        metrics: &Metrics,
    ) -> Result<Self, RouterError> {
        let channel = connect_lazy(&backend, settings)?;
        let authorization =
            match &backend.auth_token {
                Some(token) => {
                    let mut value = http::HeaderValue::try_from(format!("Bearer {token}"))
                        .map_err(|_| RouterError::BackendUnavailable {
                            backend: backend.id.clone(),
                            endpoint: backend.endpoint.to_string(),
                            reason: "its auth token holds characters not allowed in a header"
                                .into(),
                        })?;
                    value.set_sensitive(true);
                    Some(value)
                }
                None => None,
            };
        let metrics = metrics.backend(&backend.id);
        Ok(BackendHandle {
            health: crate::health::Health::new(metrics.up.clone()),
            authorization,
            metrics,
            endpoint_text: backend
                .endpoint
                .to_string()
                .trim_end_matches('/')
                .to_owned(),
            backend,
            provider,
            channel,
            draining: AtomicBool::new(false),
        })
    }

    pub(crate) fn id(&self) -> &BackendId {
        &self.backend.id
    }

    pub(crate) fn sessions(&self) -> usize {
        usize::try_from(self.metrics.sessions.get()).unwrap_or(0)
    }

    pub(crate) fn active_streams(&self) -> usize {
        usize::try_from(self.metrics.active_streams.get()).unwrap_or(0)
    }

    pub(crate) fn unavailable(&self, reason: impl std::fmt::Display) -> RouterError {
        RouterError::BackendUnavailable {
            backend: self.backend.id.clone(),
            endpoint: self.endpoint_text.clone(),
            reason: reason.to_string(),
        }
    }
}

fn connect_lazy(backend: &Backend, s: &RouterSettings) -> Result<Channel, RouterError> {
    let invalid = |why: String| RouterError::BackendUnavailable {
        backend: backend.id.clone(),
        endpoint: backend.endpoint.to_string(),
        reason: why,
    };
    let mut endpoint = Endpoint::from(backend.endpoint.clone())
        .connect_timeout(s.connect_timeout)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(s.keepalive_interval)
        .keep_alive_while_idle(true)
        .initial_stream_window_size(s.stream_window)
        .initial_connection_window_size(s.connection_window);
    if let Some(tls) = &backend.tls {
        let mut config = ClientTlsConfig::new();
        config = match &tls.ca_file {
            Some(path) => {
                let pem = std::fs::read(path)
                    .map_err(|e| invalid(format!("cannot read CA file {}: {e}", path.display())))?;
                config.ca_certificate(Certificate::from_pem(pem))
            }
            None => config.with_native_roots(),
        };
        if let Some(name) = &tls.server_name {
            config = config.domain_name(name.clone());
        }
        endpoint = endpoint
            .tls_config(config)
            .map_err(|e| invalid(format!("TLS configuration rejected: {e}")))?;
    }
    Ok(endpoint.connect_lazy())
}

/// Every backend of every provider, in a stable order.
pub(crate) struct BackendPool {
    providers: Vec<Arc<dyn BackendProvider>>,
    backends: RwLock<Arc<Vec<Arc<BackendHandle>>>>,
    settings: RouterSettings,
    metrics: Arc<Metrics>,
}

impl BackendPool {
    pub(crate) fn new(
        providers: Vec<Arc<dyn BackendProvider>>,
        settings: RouterSettings,
        metrics: Arc<Metrics>,
    ) -> Self {
        BackendPool {
            providers,
            backends: RwLock::new(Arc::new(Vec::new())),
            settings,
            metrics,
        }
    }

    /// Asks every provider for its backends and adds those not yet known.
    pub(crate) async fn refresh(&self) -> Result<(), RouterError> {
        for (index, provider) in self.providers.iter().enumerate() {
            for backend in provider.list().await? {
                self.add(backend, index)?;
            }
        }
        Ok(())
    }

    pub(crate) fn add(
        &self,
        backend: Backend,
        provider: usize,
    ) -> Result<Arc<BackendHandle>, RouterError> {
        let mut guard = self
            .backends
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(existing) = guard.iter().find(|b| b.backend.id == backend.id) {
            return Ok(existing.clone());
        }
        let handle = Arc::new(BackendHandle::new(
            backend,
            provider,
            &self.settings,
            &self.metrics,
        )?);
        let mut next = Vec::clone(&guard);
        next.push(handle.clone());
        *guard = Arc::new(next);
        Ok(handle)
    }

    pub(crate) fn snapshot(&self) -> Arc<Vec<Arc<BackendHandle>>> {
        self.backends
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn provider(&self, index: usize) -> Option<&Arc<dyn BackendProvider>> {
        self.providers.get(index)
    }

    pub(crate) fn providers(&self) -> &[Arc<dyn BackendProvider>] {
        &self.providers
    }

    pub(crate) fn loads(backends: &[Arc<BackendHandle>]) -> Vec<BackendLoad<'_>> {
        backends
            .iter()
            .map(|b| BackendLoad {
                id: b.id(),
                sessions: b.sessions(),
                available: !b.draining.load(Ordering::Relaxed) && !b.health.is_unhealthy(),
            })
            .collect()
    }
}
