//! The backends the router forwards to, each with one pooled HTTP/2 connection.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use sc_backend_api::{Backend, BackendId, BackendLoad, BackendProvider};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

use crate::metrics::{BackendMetrics, Metrics};
use crate::{RouterError, RouterSettings};

/// One backend as the router holds it: its description, its connection and its load.
pub(crate) struct BackendHandle {
    pub(crate) backend: Backend,
    /// The provider that owns it.
    pub(crate) provider: Arc<dyn BackendProvider>,
    /// Whether the provider started it for the router (and so stops it when it idles).
    pub(crate) started: bool,
    /// When it last had no session, in ms since the epoch; 0 while it has some.
    pub(crate) idle_since_ms: AtomicU64,
    /// Removed from the configuration: takes no new sessions and leaves the pool when its last
    /// session ends.
    pub(crate) removed: AtomicBool,
    session_count: std::sync::atomic::AtomicUsize,
    /// One HTTP/2 connection for the proxy's own calls (health probes, releases) and for
    /// forwarding to TLS backends; tonic reconnects it when it breaks. Cloning it is cheap.
    pub(crate) channel: Channel,
    /// The forwarding connection to a plaintext backend (hyper directly, one task hop less per
    /// call than `channel`), for the tower service.
    pub(crate) direct: Option<crate::direct::DirectConnection>,
    /// The relay's HTTP/2 connections (plaintext or TLS).
    pub(crate) relay: Option<crate::upstream::BackendConnection>,
    pub(crate) metrics: BackendMetrics,
    pub(crate) draining: AtomicBool,
    pub(crate) endpoint_text: String,
    /// `Bearer <pre-shared token>` for this backend, marked sensitive.
    pub(crate) authorization: Option<http::HeaderValue>,
    pub(crate) health: crate::health::Health,
}

impl std::fmt::Debug for BackendHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackendHandle")
            .field("id", &self.backend.id)
            .field("endpoint", &self.endpoint_text)
            .field("provider", &self.provider.name())
            .finish_non_exhaustive()
    }
}

impl BackendHandle {
    fn new(
        backend: Backend,
        provider: Arc<dyn BackendProvider>,
        started: bool,
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
        Ok(Self::assemble(
            backend,
            provider,
            started,
            channel,
            authorization,
            settings,
            metrics,
        ))
    }

    /// The handle around a connection already set up (cannot fail).
    fn assemble(
        backend: Backend,
        provider: Arc<dyn BackendProvider>,
        started: bool,
        channel: Channel,
        authorization: Option<http::HeaderValue>,
        settings: &RouterSettings,
        metrics: &Metrics,
    ) -> Self {
        let direct = match backend.tls {
            None => crate::direct::DirectConnection::for_endpoint(&backend.endpoint, settings),
            Some(_) => None,
        };
        let metrics = metrics.backend(&backend.id);
        let relay = crate::upstream::BackendConnection::for_backend(&backend, settings);
        BackendHandle {
            relay,
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
            started,
            direct,
            idle_since_ms: AtomicU64::new(crate::registry::now_ms()),
            removed: AtomicBool::new(false),
            session_count: Default::default(),
            channel,
            draining: AtomicBool::new(false),
        }
    }

    /// Whether new sessions may go here (healthy, not draining, not removed).
    pub(crate) fn available(&self) -> bool {
        !self.draining.load(Ordering::Relaxed)
            && !self.removed.load(Ordering::Relaxed)
            && !self.health.is_unhealthy()
    }

    pub(crate) fn id(&self) -> &BackendId {
        &self.backend.id
    }

    /// Sessions bound to this handle (not to others with the same id, as after a reload that
    /// changed a backend's endpoint; the metric counts those together).
    pub(crate) fn sessions(&self) -> usize {
        self.session_count.load(Ordering::Relaxed)
    }

    pub(crate) fn session_added(&self) {
        self.session_count.fetch_add(1, Ordering::Relaxed);
        self.metrics.sessions.inc();
    }

    pub(crate) fn session_removed(&self) {
        self.session_count.fetch_sub(1, Ordering::Relaxed);
        self.metrics.sessions.dec();
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
        .initial_connection_window_size(s.connection_window)
        .max_frame_size(s.max_frame_size);
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

/// Whether two handles name the same provider instance.
fn same_provider(a: &Arc<dyn BackendProvider>, b: &Arc<dyn BackendProvider>) -> bool {
    std::ptr::addr_eq(Arc::as_ptr(a), Arc::as_ptr(b))
}

/// The provider of detached handles: it has no backends.
struct Detached;

#[async_trait::async_trait]
impl BackendProvider for Detached {
    fn name(&self) -> &str {
        "none"
    }

    async fn list(&self) -> Result<Vec<Backend>, sc_backend_api::ProviderError> {
        Ok(Vec::new())
    }
}

/// Every backend of every provider, in a stable order.
pub(crate) struct BackendPool {
    providers: RwLock<Arc<Vec<Arc<dyn BackendProvider>>>>,
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
            providers: RwLock::new(Arc::new(providers)),
            backends: RwLock::new(Arc::new(Vec::new())),
            settings,
            metrics,
        }
    }

    /// Asks every provider for its backends and adds those not yet known.
    pub(crate) async fn refresh(&self) -> Result<(), RouterError> {
        for provider in self.providers().iter() {
            for backend in provider.list().await? {
                self.add(backend, provider.clone(), false)?;
            }
        }
        Ok(())
    }

    /// Replaces the providers (a configuration reload): lists the new ones first, so that a
    /// provider that fails leaves everything as it was, then adds the backends that are new
    /// (with their new settings) and marks those no longer listed as removed. Returns the ids
    /// added and removed.
    pub(crate) async fn reconfigure(
        &self,
        providers: Vec<Arc<dyn BackendProvider>>,
    ) -> Result<(Vec<String>, Vec<String>), RouterError> {
        let mut listed = Vec::new();
        for provider in &providers {
            for backend in provider.list().await? {
                listed.push((backend, provider.clone()));
            }
        }
        let current = self.snapshot();
        let mut added = Vec::new();
        let mut removed = Vec::new();
        for b in current.iter() {
            let kept = listed.iter().any(|(n, _)| n == &b.backend);
            // Backends a provider started are not in the configuration; they stay.
            if !kept && !b.started && !b.removed.swap(true, Ordering::Relaxed) {
                removed.push(b.id().to_string());
            }
        }
        *self
            .providers
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(providers);
        for (backend, provider) in listed {
            let changed = current
                .iter()
                .any(|b| b.backend.id == backend.id && b.backend != backend);
            if let Some(old) = current
                .iter()
                .find(|b| b.backend.id == backend.id && b.backend != backend)
            {
                // Same id, new endpoint or credentials: the old one drains out, the new one
                // takes new sessions.
                old.removed.store(true, Ordering::Relaxed);
            }
            let id = backend.id.to_string();
            let known = !changed && current.iter().any(|b| b.backend.id == backend.id);
            if let Some(b) = current.iter().find(|b| b.backend == backend) {
                b.removed.store(false, Ordering::Relaxed);
            }
            if !known {
                self.add(backend, provider, false)?;
                added.push(id);
            }
        }
        Ok((added, removed))
    }

    /// Syncs the pool with one provider's current list (a discovery provider said it changed):
    /// backends new to the list are added, backends no longer listed drain (marked removed:
    /// their sessions carry on, no new session goes there, and they leave once empty), and a
    /// backend listed again before it left takes new sessions again. Backends the provider
    /// started on demand are not in its list and are left alone. Returns the ids added (or
    /// back) and removed.
    pub(crate) async fn sync_provider(
        &self,
        provider: &Arc<dyn BackendProvider>,
    ) -> Result<(Vec<String>, Vec<String>), RouterError> {
        let listed = provider.list().await?;
        let current = self.snapshot();
        let mine = || {
            current
                .iter()
                .filter(|b| same_provider(&b.provider, provider) && !b.started)
        };
        let mut added = Vec::new();
        let mut removed = Vec::new();
        for b in mine() {
            if listed.contains(&b.backend) {
                if b.removed.swap(false, Ordering::Relaxed) {
                    added.push(b.id().to_string());
                }
            } else if !b.removed.swap(true, Ordering::Relaxed) {
                removed.push(b.id().to_string());
            }
        }
        for backend in listed {
            if !mine().any(|b| b.backend == backend) {
                let id = backend.id.to_string();
                self.add(backend, provider.clone(), false)?;
                added.push(id);
            }
        }
        Ok((added, removed))
    }

    /// Takes a backend out of the pool's list for new sessions; sessions that hold its handle
    /// keep using it until they end.
    pub(crate) fn retire(&self, handle: &Arc<BackendHandle>) {
        let mut guard = self
            .backends
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        handle.removed.store(true, Ordering::Relaxed);
        let next: Vec<_> = guard
            .iter()
            .filter(|b| !Arc::ptr_eq(b, handle))
            .cloned()
            .collect();
        *guard = Arc::new(next);
    }

    pub(crate) fn add(
        &self,
        backend: Backend,
        provider: Arc<dyn BackendProvider>,
        started: bool,
    ) -> Result<Arc<BackendHandle>, RouterError> {
        let mut guard = self
            .backends
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(existing) = guard
            .iter()
            .find(|b| b.backend.id == backend.id && !b.removed.load(Ordering::Relaxed))
        {
            return Ok(existing.clone());
        }
        let handle = Arc::new(BackendHandle::new(
            backend,
            provider,
            started,
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

    /// A handle for a backend that is not in the pool (a stored session's backend that is no
    /// longer configured): never called, it only names the backend.
    pub(crate) fn detached(&self, id: &str, endpoint: &str) -> Arc<BackendHandle> {
        let endpoint = endpoint
            .parse()
            .unwrap_or_else(|_| http::Uri::from_static("http://0.0.0.0:9"));
        let channel = Endpoint::from(endpoint.clone()).connect_lazy();
        let handle = BackendHandle::assemble(
            Backend::new(BackendId::new(id), endpoint),
            Arc::new(Detached),
            false,
            channel,
            None,
            &self.settings,
            &self.metrics,
        );
        handle.removed.store(true, Ordering::Relaxed);
        Arc::new(handle)
    }

    pub(crate) fn providers(&self) -> Arc<Vec<Arc<dyn BackendProvider>>> {
        self.providers
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The backend with this id that takes new sessions, or else any with this id.
    pub(crate) fn find(&self, id: &str) -> Option<Arc<BackendHandle>> {
        let backends = self.snapshot();
        let mut matching = backends.iter().filter(|b| b.id().as_str() == id);
        let first = matching.next()?.clone();
        if !first.removed.load(Ordering::Relaxed) {
            return Some(first);
        }
        Some(matching.next().cloned().unwrap_or(first))
    }

    pub(crate) fn loads(backends: &[Arc<BackendHandle>]) -> Vec<BackendLoad<'_>> {
        backends
            .iter()
            .map(|b| BackendLoad {
                id: b.id(),
                sessions: b.sessions(),
                available: b.available(),
            })
            .collect()
    }
}
