//! Routes Spark Connect gRPC calls to the backend that owns each session.
//!
//! The router is the heart of the proxy. For every call of `spark.connect.SparkConnectService`
//! it reads the routing fields from the first request message's bytes, finds the session
//! (by the `x-spark-connect-session-id` header, by the request's own `session_id` and
//! `user_context.user_id`, or by `operation_id`), binds new sessions with the configured
//! [`LoadPolicy`], and forwards the untouched bytes over the backend's one pooled HTTP/2
//! connection, streaming the response, status and trailers back as they come.
//!
//! It is a library: [`Router::service`] is a tower service you can mount in your own tonic or
//! axum server (see `examples/embed-router`), and [`Router`] is the handle a control plane uses to
//! create, list and close sessions.
//!
//! ```no_run
//! use std::sync::Arc;
//! use sc_backend_predefined::{PredefinedProvider, PredefinedSpec, EndpointSpec};
//! use sc_router::{Router, RouterSettings, policy::RoundRobin};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let spec = PredefinedSpec {
//!     endpoints: vec![EndpointSpec::new("localhost:15002")],
//! };
//! let router = Router::builder()
//!     .provider(Arc::new(PredefinedProvider::new("local", &spec)?))
//!     .policy(Arc::new(RoundRobin::default()))
//!     .settings(RouterSettings::default())
//!     .build()
//!     .await?;
//! tonic::transport::Server::builder()
//!     .add_service(router.service())
//!     .serve("127.0.0.1:8080".parse()?)
//!     .await?;
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]

mod backends;
pub mod coalesce;
mod direct;
mod error;
mod forward;
#[doc(hidden)]
pub mod fuzzing;
mod health;
mod lifecycle;
pub mod limits;
pub mod metrics;
pub mod policy;
mod registry;
mod service;
mod settings;

pub use direct::use_connection_lane;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use dashmap::DashMap;
use prost::Message as _;
use sc_backend_api::{BackendProvider, LoadPolicy, Placement, ProviderError, StartRequest};
use sc_proto::spark::connect as pb;
use sc_store::{Change, SessionStore};
use serde::Serialize;
use tracing::{info, warn};

pub use error::{RouterError, code_name};
pub use health::HealthSettings;
pub use metrics::Metrics;
pub use registry::{SessionInfo, SessionKind, SessionMetrics};
pub use service::{RouterService, SESSION_HEADER};
pub use settings::{RouterSettings, SessionSettings};

use backends::{BackendHandle, BackendPool};
use registry::{Registry, Session};

/// The shared state behind [`Router`] and [`RouterService`].
pub(crate) struct Inner {
    settings: RouterSettings,
    limiter: Arc<limits::Limiter>,
    admin_group: Option<String>,
    pool: BackendPool,
    registry: Registry,
    policy: arc_swap::ArcSwap<Arc<dyn LoadPolicy>>,
    metrics: Arc<Metrics>,
    /// Where the session table is kept beyond this process, if anywhere.
    store: Option<Arc<dyn SessionStore>>,
    /// Changes written behind the request path to `store`.
    persist: Option<tokio::sync::mpsc::UnboundedSender<Change>>,
    /// Control-plane sessions whose backend is being started: id → what to show meanwhile.
    starting: DashMap<String, SessionInfo>,
}

/// Handle to a running router: its service, its sessions and its backends. Cheap to clone.
#[derive(Clone)]
pub struct Router {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router")
            .field("policy", &self.inner.policy.load().name())
            .finish_non_exhaustive()
    }
}

/// Assembles a [`Router`].
#[derive(Default)]
pub struct RouterBuilder {
    settings: RouterSettings,
    providers: Vec<Arc<dyn BackendProvider>>,
    policy: Option<Arc<dyn LoadPolicy>>,
    admin_group: Option<String>,
    store: Option<Arc<dyn SessionStore>>,
}

impl std::fmt::Debug for RouterBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouterBuilder").finish_non_exhaustive()
    }
}

impl RouterBuilder {
    /// Forwarding settings (defaults when not called).
    pub fn settings(mut self, settings: RouterSettings) -> Self {
        self.settings = settings;
        self
    }

    /// Adds a backend provider. Providers are asked for backends in the order they were added.
    pub fn provider(mut self, provider: Arc<dyn BackendProvider>) -> Self {
        self.providers.push(provider);
        self
    }

    /// The load policy for new sessions (ROUND_ROBIN when not called).
    pub fn policy(mut self, policy: Arc<dyn LoadPolicy>) -> Self {
        self.policy = Some(policy);
        self
    }

    /// Members of this group (of an authenticated [`Identity`](sc_backend_api::Identity)) may use
    /// every session.
    pub fn admin_group(mut self, group: Option<String>) -> Self {
        self.admin_group = group;
        self
    }

    /// Keeps the session table in `store` (see the `sc-store` crate): the router loads it when
    /// built and writes every change behind the request path. Without a store, sessions live
    /// as long as the process.
    pub fn store(mut self, store: Option<Arc<dyn SessionStore>>) -> Self {
        self.store = store;
        self
    }

    /// Lists every provider's backends, loads the session store, and returns the router.
    /// Backend connections are made lazily, on the first call that needs them, so a backend
    /// that is down does not stop the router from starting. Call inside a tokio runtime.
    pub async fn build(self) -> Result<Router, RouterError> {
        self.settings
            .validate()
            .map_err(|why| RouterError::Provider(ProviderError::Config(why)))?;
        let metrics = Arc::new(Metrics::new());
        metrics.show_limits(
            &self.settings.limits,
            self.settings.max_message_size,
            self.settings.first_message_timeout,
        );
        let pool = BackendPool::new(self.providers, self.settings.clone(), metrics.clone());
        pool.refresh().await?;
        let persist = self.store.clone().map(lifecycle::spawn_writer);
        let policy = self
            .policy
            .unwrap_or_else(|| Arc::new(policy::RoundRobin::default()));
        let router = Router {
            inner: Arc::new(Inner {
                limiter: Arc::new(limits::Limiter::new(self.settings.limits.clone())),
                settings: self.settings,
                admin_group: self.admin_group,
                pool,
                registry: Registry::default(),
                policy: arc_swap::ArcSwap::from_pointee(policy),
                metrics,
                store: self.store,
                persist,
                starting: DashMap::new(),
            }),
        };
        router.inner.restore().await?;
        Ok(router)
    }
}

/// A snapshot of one backend, as the control plane shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct BackendInfo {
    /// The backend's id.
    pub id: String,
    /// Its endpoint.
    pub endpoint: String,
    /// The provider that supplied it.
    pub provider: String,
    /// Sessions bound to it.
    pub sessions: usize,
    /// Calls in flight to it.
    pub active_streams: usize,
    /// `active`, `draining` (takes no new sessions; its sessions carry on) or `removed` (gone
    /// from the configuration; leaves when its last session ends).
    pub state: &'static str,
    /// `healthy`, `unhealthy` (takes no new sessions) or `unknown` (not probed yet).
    pub health: &'static str,
    /// Whether its provider started it on demand (and stops it when it idles).
    pub started_on_demand: bool,
}

/// What a configuration reload changed.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct ReloadReport {
    /// Backends added.
    pub backends_added: Vec<String>,
    /// Backends removed (their sessions drain: they carry on, no new ones arrive).
    pub backends_removed: Vec<String>,
    /// The load policy now in force.
    pub policy: String,
}

impl Router {
    /// Starts assembling a router.
    pub fn builder() -> RouterBuilder {
        RouterBuilder::default()
    }

    /// The gRPC service to mount.
    pub fn service(&self) -> RouterService {
        RouterService {
            inner: self.inner.clone(),
        }
    }

    /// The router's metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// The load policy's name.
    pub fn policy_name(&self) -> String {
        self.inner.policy.load().name().to_owned()
    }

    /// Whether the router can place sessions: it has backends, or its policy starts them on
    /// demand (`ON_DEMAND`).
    pub fn ready(&self) -> bool {
        !self.inner.pool.snapshot().is_empty() || self.inner.policy.load().name() == "ON_DEMAND"
    }

    /// The session store's name (`embedded`, `redis`), or `None` when sessions live in memory.
    pub fn store_name(&self) -> Option<&'static str> {
        self.inner.store.as_ref().map(|s| s.name())
    }

    /// Creates a control-plane session: picks its backend now (starting one if the provider
    /// launches them), so its calls carry only the id.
    ///
    /// `user_id` owns the session: with authentication on, only that user (or an admin) may use
    /// it. `identity` is the verified creator, passed on to the provider.
    pub async fn create_session(
        &self,
        user_id: Option<String>,
        identity: Option<&sc_backend_api::Identity>,
    ) -> Result<SessionInfo, RouterError> {
        let limit_user = user_id.clone().unwrap_or_else(|| "anonymous".into());
        self.inner.limiter.admit_session(&limit_user)?;
        let id = uuid::Uuid::new_v4().to_string();
        self.inner.starting.insert(
            id.clone(),
            SessionInfo::starting(&id, SessionKind::Control, user_id.clone()),
        );
        let placed = self
            .inner
            .place(&StartRequest {
                user: user_id.clone(),
                session_id: Some(id.clone()),
                identity: identity.cloned(),
            })
            .await;
        self.inner.starting.remove(&id);
        let backend = match placed {
            Ok(backend) => backend,
            Err(e) => {
                self.inner.limiter.session_closed(&limit_user);
                return Err(e);
            }
        };
        let session = Arc::new(Session::new(id, SessionKind::Control, user_id, backend));
        if let Some(store) = &self.inner.store
            && let Err(e) = store.create(&session.record()).await
        {
            self.inner.limiter.session_closed(&limit_user);
            return Err(e.into());
        }
        self.inner.registry.insert_control(session.clone());
        info!(session_id = %session.id, backend = %session.backend.id(), "session created");
        Ok(session.info())
    }

    /// Every session, control-plane and bound, and those whose backend is starting.
    pub fn sessions(&self) -> Vec<SessionInfo> {
        let mut all: Vec<_> = self.inner.registry.all().iter().map(|s| s.info()).collect();
        all.extend(self.inner.starting.iter().map(|e| e.value().clone()));
        all.sort_by(|a, b| a.created_at_ms.cmp(&b.created_at_ms).then(a.id.cmp(&b.id)));
        all
    }

    /// One session by id (a control-plane id or a bound session's `session_id`).
    pub fn session(&self, id: &str) -> Option<SessionInfo> {
        self.inner
            .registry
            .find(id)
            .map(|s| s.info())
            .or_else(|| self.inner.starting.get(id).map(|e| e.value().clone()))
    }

    /// Closes a session: removes it from the routing tables and releases it on its backend
    /// (ReleaseSession for every Spark session its clients used).
    ///
    /// The router writes no audit line for it: the caller knows who asked and from where, and
    /// writes the one `session_delete` line (the control plane does). Of two calls racing on one
    /// session, only the one that closed it gets `Ok`; the other gets
    /// [`RouterError::SessionNotFound`], so a deletion is logged once.
    pub async fn close_session(&self, id: &str) -> Result<SessionInfo, RouterError> {
        let session = self
            .inner
            .registry
            .find(id)
            .ok_or_else(|| RouterError::SessionNotFound(id.to_owned()))?;
        if !self.inner.close(&session, "deleted").await {
            return Err(RouterError::SessionNotFound(id.to_owned()));
        }
        Ok(session.info())
    }

    /// Every backend with its load.
    pub fn backends(&self) -> Vec<BackendInfo> {
        self.inner
            .pool
            .snapshot()
            .iter()
            .map(|b| BackendInfo {
                id: b.id().to_string(),
                endpoint: b.endpoint_text.clone(),
                provider: b.provider.name().to_owned(),
                sessions: b.sessions(),
                active_streams: b.active_streams(),
                state: if b.removed.load(Ordering::Relaxed) {
                    "removed"
                } else if b.draining.load(Ordering::Relaxed) {
                    "draining"
                } else {
                    "active"
                },
                health: b.health.name(),
                started_on_demand: b.started,
            })
            .collect()
    }

    /// Drains a backend (no new sessions; its sessions carry on) or takes it back into service.
    pub fn set_draining(&self, id: &str, draining: bool) -> Result<BackendInfo, RouterError> {
        let backend = self
            .inner
            .pool
            .find(id)
            .ok_or_else(|| RouterError::BackendNotFound(id.to_owned()))?;
        backend.draining.store(draining, Ordering::Relaxed);
        info!(backend = %backend.id(), draining, "backend drain state changed");
        self.backends()
            .into_iter()
            .find(|b| b.id == id)
            .ok_or_else(|| RouterError::BackendNotFound(id.to_owned()))
    }

    /// The last `lines` lines of a backend's own log, from its provider (`None` when the
    /// provider keeps none).
    pub async fn backend_logs(
        &self,
        id: &str,
        lines: usize,
    ) -> Result<Option<String>, RouterError> {
        let backend = self
            .inner
            .pool
            .find(id)
            .ok_or_else(|| RouterError::BackendNotFound(id.to_owned()))?;
        Ok(backend.provider.logs(backend.id(), lines).await?)
    }

    /// Applies a new configuration without dropping anything: new providers (backends added
    /// take new sessions; removed ones drain: their sessions carry on and no new ones arrive),
    /// a new load policy, new limits. A provider that fails to list its backends leaves the
    /// old configuration in force.
    pub async fn reconfigure(
        &self,
        providers: Vec<Arc<dyn BackendProvider>>,
        policy: Arc<dyn LoadPolicy>,
        limits: limits::LimitSettings,
    ) -> Result<ReloadReport, RouterError> {
        limits
            .validate()
            .map_err(|why| RouterError::Provider(ProviderError::Config(why)))?;
        let (backends_added, backends_removed) = self.inner.pool.reconfigure(providers).await?;
        let report = ReloadReport {
            backends_added,
            backends_removed,
            policy: policy.name().to_owned(),
        };
        self.inner.policy.store(Arc::new(policy));
        self.inner.metrics.show_limits(
            &limits,
            self.inner.settings.max_message_size,
            self.inner.settings.first_message_timeout,
        );
        self.inner.limiter.reconfigure(limits);
        info!(added = ?report.backends_added, removed = ?report.backends_removed, policy = %report.policy, "configuration reloaded");
        Ok(report)
    }

    /// Starts probing every backend's health on `router.health.interval` (call once, inside a
    /// tokio runtime). The probes stop when the router is dropped.
    pub fn start_health_checks(&self) {
        if !self.inner.settings.health.interval.is_zero() {
            tokio::spawn(health::run_probes(Arc::downgrade(&self.inner)));
        }
    }

    /// Starts the session keeper (call once, inside a tokio runtime): expires idle and old
    /// sessions, stops engines that idled past their provider's timeout, lets removed backends
    /// go, and writes session activity to the store. It stops when the router is dropped.
    pub fn start_lifecycle(&self) {
        tokio::spawn(lifecycle::run(Arc::downgrade(&self.inner)));
    }

    /// Stops what must not outlive the proxy: every provider's started backends. Call once when
    /// shutting down, after the servers stopped.
    pub async fn shutdown(&self) {
        lifecycle::flush(&self.inner).await;
        for provider in self.inner.pool.providers().iter() {
            provider.shutdown().await;
        }
    }
}

impl Inner {
    /// Chooses the backend for a new session, starting one when the policy asks for it.
    async fn place(&self, request: &StartRequest) -> Result<Arc<BackendHandle>, RouterError> {
        let backends = self.pool.snapshot();
        let policy = self.policy.load();
        let decision = policy.choose(&BackendPool::loads(&backends));
        match decision {
            Placement::Existing(id) => backends
                .iter()
                .find(|b| b.id() == &id && !b.removed.load(Ordering::Relaxed))
                .cloned()
                .ok_or_else(|| {
                    RouterError::NoCapacity(format!(
                        "the {} policy chose backend '{id}', which does not exist",
                        policy.name()
                    ))
                }),
            Placement::Exhausted(why) => Err(RouterError::NoCapacity(why)),
            Placement::StartNew => {
                let mut failure = None;
                for provider in self.pool.providers().iter() {
                    match provider.start(request).await {
                        Ok(backend) => {
                            let handle = self.pool.add(backend, provider.clone(), true)?;
                            info!(backend = %handle.id(), provider = provider.name(), "backend placed by its provider");
                            return Ok(handle);
                        }
                        Err(ProviderError::Unsupported { .. }) => {}
                        Err(e) => failure = Some(e),
                    }
                }
                Err(match failure {
                    Some(e) => RouterError::Provider(e),
                    None => RouterError::NoCapacity(format!(
                        "the {} policy wants a new backend for this session, but every one of the {} backends is full and no provider can start more; add endpoints, raise load_policy.params.max_size, or use ROUND_ROBIN",
                        policy.name(),
                        backends.len()
                    )),
                })
            }
        }
    }

    /// Writes a change behind the request path (nothing without a store).
    pub(crate) fn persist(&self, change: Change) {
        if let Some(tx) = &self.persist {
            let _ = tx.send(change);
        }
    }

    /// Closes a session for `reason` (`deleted`, `released`, `idle_timeout`, `max_lifetime`,
    /// `dead`): out of the routing tables and the store, released on its backend, remembered
    /// for a while so its client learns why. Does nothing if it is already closed; true when
    /// this call closed it.
    ///
    /// Writes the audit line of a release (`session_delete`) or an expiry (`session_expire`);
    /// a deletion (`deleted`) is logged by whoever asked for it (the control plane), which knows
    /// the caller and the peer.
    pub(crate) async fn close(&self, session: &Arc<Session>, reason: &'static str) -> bool {
        session.set_closing();
        let Some(operations) = self.registry.remove(session) else {
            return false;
        };
        self.limiter
            .session_closed(session.user_id.as_deref().unwrap_or("anonymous"));
        self.metrics.session_closed(reason);
        self.persist(Change::Remove(session.record_kind(), session.id.clone()));
        for op in operations {
            self.persist(Change::RemoveOperation(op));
        }
        if reason != "deleted" && reason != "released" {
            self.registry.bury(session, reason.replace('_', " "));
        }
        if reason != "released" && session.dead_reason().is_none() {
            let spark_sessions = match session.kind {
                SessionKind::Control => session.spark_sessions(),
                SessionKind::Bound => vec![(
                    session.user_id.clone().unwrap_or_default(),
                    session.id.clone(),
                )],
            };
            for (user_id, session_id) in spark_sessions {
                self.release_on_backend(&session.backend, user_id, session_id)
                    .await;
            }
        }
        let event = match reason {
            "deleted" => None,
            "released" => Some("session_delete"),
            _ => Some("session_expire"),
        };
        if let Some(event) = event {
            info!(target: "audit", event, session_id = %session.id, user = session.user_id.as_deref().unwrap_or(""), backend = %session.backend.id(), reason, "session closed");
        } else {
            info!(session_id = %session.id, backend = %session.backend.id(), reason, "session closed");
        }
        true
    }

    /// Sends ReleaseSession for one Spark session to a backend; failures are logged, not fatal.
    async fn release_on_backend(
        &self,
        backend: &BackendHandle,
        user_id: String,
        session_id: String,
    ) {
        let mut client = pb::spark_connect_service_client::SparkConnectServiceClient::new(
            backend.channel.clone(),
        );
        let request = pb::ReleaseSessionRequest {
            session_id: session_id.clone(),
            user_context: Some(pb::UserContext {
                user_id,
                ..Default::default()
            }),
            client_type: Some("spark-connect-proxy".into()),
            allow_reconnect: false,
        };
        let size = request.encoded_len();
        let mut request = tonic::Request::new(request);
        if let Some(token) = &backend.authorization
            && let Ok(value) = tonic::metadata::MetadataValue::try_from(token.as_bytes())
        {
            request.metadata_mut().insert("authorization", value);
        }
        match client.release_session(request).await {
            Ok(_) => {
                info!(%session_id, backend = %backend.id(), size, "session released on backend")
            }
            Err(status) => {
                warn!(%session_id, backend = %backend.id(), code = ?status.code(), message = status.message(), "releasing session on backend failed")
            }
        }
    }
}
