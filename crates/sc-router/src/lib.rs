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
//! A router carries its own life: [`RouterBuilder::build`] starts its background work on the
//! current tokio runtime (session expiry, stopping idle engines, health probes, writing the
//! session table behind the request path, re-listing providers that discover backends), and
//! [`Router::shutdown`] stops it and every backend a provider started. An embedder has nothing
//! else to start.
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
//!     .serve_with_shutdown("127.0.0.1:8080".parse()?, async {
//!         let _ = tokio::signal::ctrl_c().await;
//!     })
//!     .await?;
//! // Expiry and probes stop; launched engines are stopped; the session table is written out.
//! router.shutdown().await;
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]

pub mod authz;
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
mod observe;
pub mod policy;
mod registry;
pub mod relay;
mod service;
mod sessions;
mod settings;
pub mod telemetry;
mod upstream;

pub use direct::use_connection_lane;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use dashmap::DashMap;
use sc_backend_api::{BackendProvider, Identity, LoadPolicy};
use sc_store::{Change, SessionStore};
use serde::Serialize;
use tracing::info;

pub use authz::{Access, Caller, Plane};
pub use error::{RouterError, code_name};
pub use health::HealthSettings;
pub use metrics::Metrics;
pub use registry::{ClosedSessionInfo, SessionInfo, SessionKind, SessionMetrics};
pub use service::{PROFILE_HEADER, RouterService, SESSION_HEADER};
pub use sessions::CloseReason;
pub use settings::{RouterSettings, SessionSettings};
pub use telemetry::Telemetry;

use backends::BackendPool;
use registry::Registry;

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
    /// The tasks that keep the router's sessions, backends and store over time.
    background: lifecycle::Background,
    /// Traces of calls, when they are on.
    telemetry: Option<Telemetry>,
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
    telemetry: Option<Telemetry>,
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

    /// Members of this group (of an authenticated [`Identity`]) may use
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

    /// Traces every call (a span per call, with the placement and the session store as child
    /// spans) with `telemetry` (see [`telemetry`]); without it, calls make no trace and carry a
    /// client's `traceparent` to the backend untouched.
    pub fn telemetry(mut self, telemetry: Option<Telemetry>) -> Self {
        self.telemetry = telemetry;
        self
    }

    /// Lists every provider's backends, loads the session store, starts the router's
    /// background work on the current runtime (see the crate docs), and returns the router.
    /// Backend connections are made lazily, on the first call that needs them, so a backend
    /// that is down does not stop the router from starting. Call inside a tokio runtime.
    pub async fn build(self) -> Result<Router, RouterError> {
        self.settings
            .validate()
            .map_err(RouterError::InvalidSettings)?;
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
        let registry = Registry::new(&self.settings.sessions);
        let router = Router {
            inner: Arc::new(Inner {
                limiter: Arc::new(limits::Limiter::new(self.settings.limits.clone())),
                settings: self.settings,
                admin_group: self.admin_group,
                pool,
                registry,
                policy: arc_swap::ArcSwap::from_pointee(policy),
                metrics,
                store: self.store,
                persist,
                starting: DashMap::new(),
                background: lifecycle::Background::new(),
                telemetry: self.telemetry,
            }),
        };
        router.inner.restore().await?;
        lifecycle::Background::spawn(&router.inner);
        Ok(router)
    }
}

/// A snapshot of one backend, as the control plane shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    /// Where its Spark UI listens, when the proxy can reach one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ui_url: Option<String>,
    /// The control plane's path to its Spark UI (`/control/backends/{id}/ui/`), when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ui: Option<String>,
}

/// The limits in force, as the control plane shows them.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LimitsInForce {
    /// `router.limits` (each unset limit is off).
    pub limits: limits::LimitSettings,
    /// `router.max_message_size`, in bytes.
    pub max_message_size: usize,
    /// `router.first_message_timeout`, in milliseconds.
    pub first_message_timeout_ms: u64,
    /// `router.sessions.idle_timeout`, in milliseconds (0: never).
    pub session_idle_timeout_ms: u64,
    /// `router.sessions.max_lifetime`, in milliseconds (0: never).
    pub session_max_lifetime_ms: u64,
}

/// What a configuration reload changed.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReloadReport {
    /// Backends added.
    pub backends_added: Vec<String>,
    /// Backends removed (their sessions drain: they carry on, no new ones arrive).
    pub backends_removed: Vec<String>,
    /// The load policy now in force.
    pub policy: String,
}

/// What a new control-plane session is asked to be.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionRequest {
    /// The user the session is for; the caller's own user when `None` (another user's is for
    /// admins).
    pub user_id: Option<String>,
    /// A name for the application, shown with the session.
    pub app_name: Option<String>,
    /// The engine profile to run the session on; the provider's default when `None`.
    pub profile: Option<String>,
}

impl SessionRequest {
    /// A request for a session of the caller's own, without an application name.
    pub fn new() -> Self {
        SessionRequest::default()
    }

    /// The same request, for `user_id`.
    pub fn user_id(mut self, user_id: impl Into<String>) -> Self {
        self.user_id = Some(user_id.into());
        self
    }

    /// The same request, with an application name.
    pub fn app_name(mut self, app_name: impl Into<String>) -> Self {
        self.app_name = Some(app_name.into());
        self
    }

    /// The same request, on engine profile `profile`.
    pub fn profile(mut self, profile: impl Into<String>) -> Self {
        self.profile = Some(profile.into());
        self
    }

    fn validate(&self) -> Result<(), RouterError> {
        for (key, value, max) in [
            ("user_id", &self.user_id, 256),
            ("app_name", &self.app_name, 256),
            ("profile", &self.profile, 128),
        ] {
            if let Some(value) = value
                && (value.trim().is_empty()
                    || value.chars().count() > max
                    || value.chars().any(char::is_control))
            {
                return Err(RouterError::InvalidRequest(format!(
                    "{key} must be 1 to {max} printable characters"
                )));
            }
        }
        Ok(())
    }
}

/// How a provider is doing, as the control plane shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProviderInfo {
    /// The provider's name.
    pub name: String,
    /// Failed refreshes of its backend list since it was built (its last list stays in force).
    pub refresh_failures: u64,
    /// Why the last refresh failed, while it is failing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Backends it keeps started and ready for new sessions (a launcher's warm engines).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warm_backends: Option<usize>,
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

    /// The telemetry the router traces calls with, if any (a control plane traces its own
    /// requests with it too).
    pub fn telemetry(&self) -> Option<&Telemetry> {
        self.inner.telemetry.as_ref()
    }

    /// The router's metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// The load policy's name.
    pub fn policy_name(&self) -> String {
        self.inner.policy.load().name().to_owned()
    }

    /// Whether the router can place sessions: it has backends, or its policy may ask for new
    /// ones and a provider can start them.
    pub fn ready(&self) -> bool {
        !self.inner.pool.snapshot().is_empty()
            || (self.inner.policy.load().starts_backends()
                && self.inner.pool.providers().iter().any(|p| p.can_start()))
    }

    /// The limits in force (they change on reload) and the fixed ones of the forwarding path.
    pub fn limits_in_force(&self) -> LimitsInForce {
        let settings = &self.inner.settings;
        let ms = |d: std::time::Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        LimitsInForce {
            limits: self.inner.limiter.settings(),
            max_message_size: settings.max_message_size,
            first_message_timeout_ms: ms(settings.first_message_timeout),
            session_idle_timeout_ms: ms(settings.sessions.idle_timeout),
            session_max_lifetime_ms: ms(settings.sessions.max_lifetime),
        }
    }

    /// The session store's name (`embedded`, `redis`), or `None` when sessions live in memory.
    pub fn store_name(&self) -> Option<&'static str> {
        self.inner.store.as_ref().map(|s| s.name())
    }

    // === callers ===

    /// The caller of a request as the authorization decision sees it: the verified `identity`
    /// when authentication is on (an admin when it is in the router's admin group), else the
    /// user it claims (on the control plane, one that claims none is the operator). See
    /// [`authz`].
    pub fn caller<'a>(
        &self,
        identity: Option<&'a Identity>,
        claimed_user: Option<&'a str>,
        plane: Plane,
    ) -> Caller<'a> {
        Caller::new(
            identity,
            claimed_user,
            self.inner.admin_group.as_deref(),
            plane,
        )
    }

    /// The operator: a caller that may do anything (an embedder acting on its own behalf).
    pub fn operator(&self) -> Caller<'static> {
        Caller::new(None, None, None, Plane::Control)
    }

    // === sessions ===

    /// Creates a control-plane session: picks its backend now (starting one if the provider
    /// launches them), so its calls carry only the id.
    ///
    /// The session belongs to `request.user_id` (the caller's own user when `None`): only that
    /// user (or an admin) may use it. Creating a session for somebody else is for admins.
    pub async fn create_session(
        &self,
        caller: &Caller<'_>,
        request: SessionRequest,
    ) -> Result<SessionInfo, RouterError> {
        request.validate()?;
        let owner = request.user_id.or_else(|| caller.user().map(str::to_owned));
        if owner.as_deref() != caller.user() {
            caller.authorize(Access::Operate {
                action: "create sessions for another user",
            })?;
        }
        self.inner
            .create_control(caller, owner, request.app_name, request.profile)
            .await
    }

    /// Every session, control-plane and bound, and those whose backend is starting.
    pub fn sessions(&self) -> Vec<SessionInfo> {
        let mut all: Vec<_> = self.inner.registry.all().iter().map(|s| s.info()).collect();
        all.extend(self.inner.starting.iter().map(|e| e.value().clone()));
        all.sort_by(|a, b| a.created_at_ms.cmp(&b.created_at_ms).then(a.id.cmp(&b.id)));
        all
    }

    /// The sessions `caller` may see.
    pub fn sessions_for(&self, caller: &Caller<'_>) -> Vec<SessionInfo> {
        let mut all = self.sessions();
        all.retain(|info| {
            caller.may(Access::Session {
                id: &info.id,
                owner: info.user_id.as_deref(),
            })
        });
        all
    }

    /// The sessions closed lately (the last 200, newest first) that `caller` may see, with why
    /// each was closed.
    pub fn closed_sessions_for(&self, caller: &Caller<'_>) -> Vec<ClosedSessionInfo> {
        let mut closed = self.inner.registry.recently_closed();
        closed.retain(|c| {
            caller.may(Access::Session {
                id: &c.session.id,
                owner: c.session.user_id.as_deref(),
            })
        });
        closed
    }

    /// One session by id (a control-plane id or a bound session's `session_id`).
    pub fn session(&self, id: &str) -> Option<SessionInfo> {
        self.inner
            .registry
            .find(id)
            .map(|s| s.info())
            .or_else(|| self.inner.starting.get(id).map(|e| e.value().clone()))
    }

    /// One session, if `caller` may see it.
    pub fn session_for(&self, caller: &Caller<'_>, id: &str) -> Result<SessionInfo, RouterError> {
        let info = self
            .session(id)
            .ok_or_else(|| RouterError::SessionNotFound(id.to_owned()))?;
        caller.authorize(Access::Session {
            id: &info.id,
            owner: info.user_id.as_deref(),
        })?;
        Ok(info)
    }

    /// Closes a session for `caller` (its owner or an admin): removes it from the routing
    /// tables and releases it on its backend (ReleaseSession for every Spark session its clients
    /// used).
    ///
    /// The router writes no audit line for it: the caller knows who asked and from where, and
    /// writes the one `session_delete` line (the control plane does). Of two calls racing on one
    /// session, only the one that closed it gets `Ok`; the other gets
    /// [`RouterError::SessionNotFound`], so a deletion is logged once.
    pub async fn close_session(
        &self,
        caller: &Caller<'_>,
        id: &str,
    ) -> Result<SessionInfo, RouterError> {
        self.inner.close_for(caller, id).await
    }

    // === backends ===

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
                ui_url: b.backend.ui_url.as_ref().map(|u| u.to_string()),
                ui: b
                    .backend
                    .ui_url
                    .as_ref()
                    .map(|_| format!("{}/", sc_backend_api::ui_proxy_base(b.id().as_str()))),
            })
            .collect()
    }

    /// The engine profiles sessions may ask for, of every provider, sorted (empty when no
    /// provider has profiles).
    pub fn profiles(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .inner
            .pool
            .providers()
            .iter()
            .flat_map(|p| p.profiles())
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// Every provider, with how its own work is going.
    pub fn providers(&self) -> Vec<ProviderInfo> {
        self.inner
            .pool
            .providers()
            .iter()
            .map(|p| {
                let status = p.status();
                ProviderInfo {
                    name: p.name().to_owned(),
                    refresh_failures: status.refresh_failures,
                    last_error: status.last_error,
                    warm_backends: status.warm_backends,
                }
            })
            .collect()
    }

    /// Drains a backend (no new sessions; its sessions carry on) or takes it back into service:
    /// for admins.
    pub fn set_draining(
        &self,
        caller: &Caller<'_>,
        id: &str,
        draining: bool,
    ) -> Result<BackendInfo, RouterError> {
        caller.authorize(Access::Operate {
            action: "drain or undrain backends",
        })?;
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
    /// provider keeps none): for admins and the users with a session on it (it shows the
    /// queries of every session there).
    pub async fn backend_logs(
        &self,
        caller: &Caller<'_>,
        id: &str,
        lines: usize,
    ) -> Result<Option<String>, RouterError> {
        let backend = self.backend_for(caller, id, "the logs")?;
        Ok(backend.provider.logs(backend.id(), lines).await?)
    }

    /// Where a backend's Spark UI listens, for a caller who may see it (admins and the users
    /// with a session on it): the control plane reverse-proxies it.
    pub fn backend_ui(&self, caller: &Caller<'_>, id: &str) -> Result<http::Uri, RouterError> {
        let backend = self.backend_for(caller, id, "the Spark UI")?;
        backend
            .backend
            .ui_url
            .clone()
            .ok_or_else(|| RouterError::NoUi(id.to_owned()))
    }

    /// A backend, if `caller` may see `what` of it. An unknown backend is refused like one the
    /// caller may not see (unless the caller is an admin), so ids are not revealed.
    fn backend_for(
        &self,
        caller: &Caller<'_>,
        id: &str,
        what: &'static str,
    ) -> Result<Arc<backends::BackendHandle>, RouterError> {
        let backend = self.inner.pool.find(id);
        let owners: Vec<Option<String>> = match &backend {
            Some(backend) => self
                .inner
                .registry
                .on_backend(backend)
                .iter()
                .map(|s| s.user_id.clone())
                .collect(),
            None => Vec::new(),
        };
        caller.authorize(Access::Backend {
            id,
            owners: &owners,
            what,
        })?;
        backend.ok_or_else(|| RouterError::BackendNotFound(id.to_owned()))
    }

    // === configuration and shutdown ===

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
        limits.validate().map_err(RouterError::InvalidSettings)?;
        let (backends_added, backends_removed) = self.inner.pool.reconfigure(providers).await?;
        lifecycle::watch_providers(&self.inner);
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

    /// Stops the router's background work and what must not outlive it: every provider's
    /// started backends; the session table is written out first. Call once when shutting down,
    /// after the servers stopped.
    pub async fn shutdown(&self) {
        self.inner.background.stop();
        lifecycle::flush(&self.inner).await;
        for provider in self.inner.pool.providers().iter() {
            provider.shutdown().await;
        }
    }
}
