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
mod error;
mod forward;
mod health;
pub mod limits;
pub mod metrics;
pub mod policy;
mod registry;
mod service;
mod settings;

use std::sync::Arc;

use prost::Message as _;
use sc_backend_api::{BackendProvider, LoadPolicy, Placement, ProviderError, StartRequest};
use sc_proto::spark::connect as pb;
use serde::Serialize;
use tracing::{info, warn};

pub use error::{RouterError, code_name};
pub use health::HealthSettings;
pub use metrics::Metrics;
pub use registry::{SessionInfo, SessionKind};
pub use service::{RouterService, SESSION_HEADER};
pub use settings::RouterSettings;

use backends::{BackendHandle, BackendPool};
use registry::{Registry, Session};

/// The shared state behind [`Router`] and [`RouterService`].
pub(crate) struct Inner {
    settings: RouterSettings,
    limiter: Arc<limits::Limiter>,
    admin_group: Option<String>,
    pool: BackendPool,
    registry: Registry,
    policy: Arc<dyn LoadPolicy>,
    metrics: Arc<Metrics>,
}

/// Handle to a running router: its service, its sessions and its backends. Cheap to clone.
#[derive(Clone)]
pub struct Router {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router")
            .field("policy", &self.inner.policy.name())
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

    /// Lists every provider's backends and returns the router. Backend connections are made
    /// lazily, on the first call that needs them, so a backend that is down does not stop the
    /// router from starting.
    pub async fn build(self) -> Result<Router, RouterError> {
        self.settings
            .validate()
            .map_err(|why| RouterError::Provider(ProviderError::Config(why)))?;
        let metrics = Arc::new(Metrics::new());
        let pool = BackendPool::new(self.providers, self.settings.clone(), metrics.clone());
        pool.refresh().await?;
        Ok(Router {
            inner: Arc::new(Inner {
                limiter: Arc::new(limits::Limiter::new(self.settings.limits.clone())),
                settings: self.settings,
                admin_group: self.admin_group,
                pool,
                registry: Registry::default(),
                policy: self
                    .policy
                    .unwrap_or_else(|| Arc::new(policy::RoundRobin::default())),
                metrics,
            }),
        })
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
    /// `active`, or `draining` (takes no new sessions; its sessions carry on).
    pub state: &'static str,
    /// `healthy`, `unhealthy` (takes no new sessions) or `unknown` (not probed yet).
    pub health: &'static str,
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
    pub fn policy_name(&self) -> &str {
        self.inner.policy.name()
    }

    /// Creates a control-plane session: picks its backend now, so its calls carry only the id.
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
        let placed = self
            .inner
            .place(&StartRequest {
                user: user_id.clone(),
                session_id: None,
                identity: identity.cloned(),
            })
            .await;
        let backend = match placed {
            Ok(backend) => backend,
            Err(e) => {
                self.inner.limiter.session_closed(&limit_user);
                return Err(e);
            }
        };
        let session = Arc::new(Session::new(
            uuid::Uuid::new_v4().to_string(),
            SessionKind::Control,
            user_id,
            backend,
        ));
        self.inner.registry.insert_control(session.clone());
        info!(session_id = %session.id, backend = %session.backend.id(), "session created");
        Ok(session.info())
    }

    /// Every session, control-plane and bound.
    pub fn sessions(&self) -> Vec<SessionInfo> {
        let mut all: Vec<_> = self.inner.registry.all().iter().map(|s| s.info()).collect();
        all.sort_by(|a, b| a.created_at_ms.cmp(&b.created_at_ms).then(a.id.cmp(&b.id)));
        all
    }

    /// One session by id (a control-plane id or a bound session's `session_id`).
    pub fn session(&self, id: &str) -> Option<SessionInfo> {
        self.inner.registry.find(id).map(|s| s.info())
    }

    /// Closes a session: removes it from the routing tables and releases it on its backend
    /// (ReleaseSession for every Spark session its clients used).
    pub async fn close_session(&self, id: &str) -> Result<SessionInfo, RouterError> {
        let session = self
            .inner
            .registry
            .find(id)
            .ok_or_else(|| RouterError::SessionNotFound(id.to_owned()))?;
        if self.inner.registry.remove(&session) {
            self.inner
                .limiter
                .session_closed(session.user_id.as_deref().unwrap_or("anonymous"));
            let spark_sessions = match session.kind {
                SessionKind::Control => session.spark_sessions(),
                SessionKind::Bound => vec![(
                    session.user_id.clone().unwrap_or_default(),
                    session.id.clone(),
                )],
            };
            for (user_id, session_id) in spark_sessions {
                self.inner
                    .release_on_backend(&session.backend, user_id, session_id)
                    .await;
            }
            info!(session_id = %session.id, backend = %session.backend.id(), "session closed");
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
                provider: self
                    .inner
                    .pool
                    .provider(b.provider)
                    .map(|p| p.name().to_owned())
                    .unwrap_or_default(),
                sessions: b.sessions(),
                active_streams: b.active_streams(),
                state: if b.draining.load(std::sync::atomic::Ordering::Relaxed) {
                    "draining"
                } else {
                    "active"
                },
                health: b.health.name(),
            })
            .collect()
    }

    /// Drains a backend (no new sessions; its sessions carry on) or takes it back into service.
    pub fn set_draining(&self, id: &str, draining: bool) -> Result<BackendInfo, RouterError> {
        let backends = self.inner.pool.snapshot();
        let backend = backends
            .iter()
            .find(|b| b.id().as_str() == id)
            .ok_or_else(|| RouterError::BackendNotFound(id.to_owned()))?;
        backend
            .draining
            .store(draining, std::sync::atomic::Ordering::Relaxed);
        info!(backend = %backend.id(), draining, "backend drain state changed");
        self.backends()
            .into_iter()
            .find(|b| b.id == id)
            .ok_or_else(|| RouterError::BackendNotFound(id.to_owned()))
    }

    /// Starts probing every backend's health on `router.health.interval` (call once, inside a
    /// tokio runtime). The probes stop when the router is dropped.
    pub fn start_health_checks(&self) {
        if !self.inner.settings.health.interval.is_zero() {
            tokio::spawn(health::run_probes(Arc::downgrade(&self.inner)));
        }
    }
}

impl Inner {
    /// Chooses the backend for a new session, starting one when the policy asks for it.
    async fn place(&self, request: &StartRequest) -> Result<Arc<BackendHandle>, RouterError> {
        let backends = self.pool.snapshot();
        let decision = self.policy.choose(&BackendPool::loads(&backends));
        match decision {
            Placement::Existing(id) => {
                backends
                    .iter()
                    .find(|b| b.id() == &id)
                    .cloned()
                    .ok_or_else(|| {
                        RouterError::NoCapacity(format!(
                            "the {} policy chose backend '{id}', which does not exist",
                            self.policy.name()
                        ))
                    })
            }
            Placement::Exhausted(why) => Err(RouterError::NoCapacity(why)),
            Placement::StartNew => {
                let mut failure = None;
                for (index, provider) in self.pool.providers().iter().enumerate() {
                    match provider.start(request).await {
                        Ok(backend) => {
                            info!(backend = %backend.id, provider = provider.name(), "backend started");
                            return self.pool.add(backend, index);
                        }
                        Err(ProviderError::Unsupported { .. }) => {}
                        Err(e) => failure = Some(e),
                    }
                }
                Err(match failure {
                    Some(e) => RouterError::Provider(e),
                    None => RouterError::NoCapacity(format!(
                        "the {} policy wants a new backend for this session, but every one of the {} backends is full and no provider can start more; add endpoints, raise load_policy.params.max_size, or use ROUND_ROBIN",
                        self.policy.name(),
                        backends.len()
                    )),
                })
            }
        }
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
