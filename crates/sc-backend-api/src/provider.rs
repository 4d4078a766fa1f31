//! The [`BackendProvider`] trait.

use std::time::Duration;

use async_trait::async_trait;

use crate::{Backend, BackendId, Identity, ProviderError};

/// What the router knows about the session a backend is wanted for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StartRequest {
    /// The user the session belongs to, when known.
    pub user: Option<String>,
    /// The session's id, when known.
    pub session_id: Option<String>,
    /// The verified caller, when authentication is on (carries the groups).
    pub identity: Option<Identity>,
    /// The engine profile the session asked for (`POST /control/sessions {"profile": ...}`, or
    /// the `x-spark-connect-profile` metadata); the provider's default when `None`.
    pub profile: Option<String>,
}

/// Why a backend died, as its provider knows it (a process's exit status and its log).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PostMortem {
    /// What kind of end it was, for metrics.
    pub cause: DeathCause,
    /// What happened, for people: the exit status or signal and the first telling line of its
    /// log, e.g. `exited with status 3 after java.lang.OutOfMemoryError: Java heap space`.
    pub reason: String,
}

impl PostMortem {
    /// A post-mortem.
    pub fn new(cause: DeathCause, reason: impl Into<String>) -> Self {
        PostMortem {
            cause,
            reason: reason.into(),
        }
    }
}

/// The kind of end a backend came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DeathCause {
    /// Killed by a signal (SIGKILL from an operator or the kernel's OOM killer).
    Killed,
    /// Ran out of memory (`java.lang.OutOfMemoryError`).
    OutOfMemory,
    /// Exited on its own (a bad configuration, a port conflict, a crash).
    Exited,
    /// Refuses connections: nothing listens at its address any more.
    Unreachable,
}

impl DeathCause {
    /// The label in `sc_proxy_backend_deaths_total{cause}`.
    pub fn as_str(self) -> &'static str {
        match self {
            DeathCause::Killed => "killed",
            DeathCause::OutOfMemory => "out_of_memory",
            DeathCause::Exited => "exited",
            DeathCause::Unreachable => "unreachable",
        }
    }
}

/// The health of a backend as a provider sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Health {
    /// The provider has no opinion; the router treats the backend as usable.
    #[default]
    Unknown,
    /// The backend answers.
    Healthy,
    /// The backend should not receive new sessions.
    Unhealthy,
}

/// How a provider's own work is going (a discovery provider's refreshes, say), for metrics and
/// the control plane.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProviderStatus {
    /// Refreshes of the backend list that failed since the provider was built. While they fail,
    /// the last list that was read stays in force.
    pub refresh_failures: u64,
    /// Why the last refresh failed, while the provider is failing; `None` once one succeeds.
    pub last_error: Option<String>,
    /// Backends started ahead of demand and ready for new sessions (a launcher's warm pool),
    /// when the provider keeps any.
    pub warm_backends: Option<usize>,
}

impl ProviderStatus {
    /// A status with `refresh_failures` failed refreshes and the last error, if failing now.
    pub fn new(refresh_failures: u64, last_error: Option<String>) -> Self {
        ProviderStatus {
            refresh_failures,
            last_error,
            warm_backends: None,
        }
    }

    /// The same status, with `warm` backends ready in a warm pool.
    pub fn with_warm_backends(mut self, warm: usize) -> Self {
        self.warm_backends = Some(warm);
        self
    }
}

/// A source of backends: a static list, a launcher, a cluster manager, a DNS name.
///
/// The router calls [`list`](BackendProvider::list) when it starts, when its configuration
/// is reloaded and whenever [`changed`](BackendProvider::changed) completes; it asks the
/// [`LoadPolicy`](crate::LoadPolicy) where a new session goes, and calls
/// [`start`](BackendProvider::start) when the policy wants a new backend and
/// [`stop`](BackendProvider::stop) when a backend started that way is no longer wanted.
///
/// A provider is built by a factory registered in a [`Registry`](crate::Registry) (see there),
/// from its configured name and spec. Building should be cheap and free of side effects: a
/// configuration that fails validation (or a reload that is refused) builds providers that are
/// dropped unused. Background work a provider needs (a refresh loop) should end when the
/// provider is dropped.
///
/// Every method may be called concurrently from many tasks.
#[async_trait]
pub trait BackendProvider: Send + Sync + 'static {
    /// A short name for logs, metrics and error messages (e.g. `"predefined"`).
    fn name(&self) -> &str;

    /// Every backend the provider has now. Called at start-up and on reload; must be cheap
    /// enough to call a few times a minute.
    async fn list(&self) -> Result<Vec<Backend>, ProviderError>;

    /// Completes when the list of backends may have changed (a discovery provider found servers
    /// appear or vanish); the router then calls [`list`](BackendProvider::list) again. Backends
    /// that are new take new sessions; backends no longer listed drain: their sessions carry on
    /// while the server answers, and no new session goes there.
    ///
    /// The router awaits it in a loop, so each completion should mean one new change. By
    /// default it never completes: the list changes only when the configuration is reloaded.
    async fn changed(&self) {
        std::future::pending::<()>().await;
    }

    /// Whether [`start`](BackendProvider::start) can give backends (so the proxy is ready to
    /// place sessions even while no backend exists).
    ///
    /// By default `false`, matching the default `start`.
    fn can_start(&self) -> bool {
        false
    }

    /// The load policy (as registered, e.g. `"ON_DEMAND"`) to use when the configuration names
    /// none.
    ///
    /// By default `None`: the proxy's default, `ROUND_ROBIN`.
    fn default_policy(&self) -> Option<&str> {
        None
    }

    /// How the provider's own work is going, for metrics
    /// (`sc_proxy_provider_refresh_failures_total`) and the control plane.
    ///
    /// By default an empty status: nothing to report.
    fn status(&self) -> ProviderStatus {
        ProviderStatus::default()
    }

    /// The engine profiles a session may ask for by name (`POST /control/sessions
    /// {"profile": ...}`, or the `x-spark-connect-profile` header), whether or not a given caller
    /// may use them. The control plane's OpenAPI document lists them.
    ///
    /// By default none: the provider has no profiles.
    fn profiles(&self) -> Vec<String> {
        Vec::new()
    }

    /// Checks, before any backend is chosen, that the provider can serve a session asked for
    /// like this: the profile exists and the caller may use it. Errors are
    /// [`ProviderError::UnknownProfile`] and [`ProviderError::ProfileForbidden`], which clients
    /// receive as `INVALID_ARGUMENT` and `PERMISSION_DENIED`.
    ///
    /// By default a provider has no profiles: a request without one is fine, one with a profile
    /// is refused as unknown.
    fn check_request(&self, request: &StartRequest) -> Result<(), ProviderError> {
        match &request.profile {
            None => Ok(()),
            Some(profile) => Err(ProviderError::UnknownProfile {
                profile: profile.clone(),
                available: Vec::new(),
            }),
        }
    }

    /// One backend by id.
    ///
    /// By default this searches [`list`](BackendProvider::list).
    async fn get(&self, id: &BackendId) -> Result<Option<Backend>, ProviderError> {
        Ok(self.list().await?.into_iter().find(|b| &b.id == id))
    }

    /// Starts a new backend for the session described by `request` and returns it once it
    /// accepts Spark Connect calls.
    ///
    /// A provider that shares backends between sessions (one per user, say) may instead return
    /// a backend it started earlier, with the same id; the router then binds the session to
    /// that one.
    ///
    /// By default a provider cannot start backends and returns [`ProviderError::Unsupported`];
    /// policies that need new backends then report that no capacity is left.
    async fn start(&self, request: &StartRequest) -> Result<Backend, ProviderError> {
        let _ = request;
        Err(ProviderError::Unsupported {
            provider: self.name().to_owned(),
            operation: "start backends",
        })
    }

    /// Stops a backend this provider started. The router calls it only after the last session
    /// on the backend is gone.
    ///
    /// By default this does nothing and succeeds: a provider that does not start backends has
    /// nothing to stop.
    async fn stop(&self, id: &BackendId) -> Result<(), ProviderError> {
        let _ = id;
        Ok(())
    }

    /// How long a backend this provider started may go without sessions before the router
    /// stops it with [`stop`](BackendProvider::stop).
    ///
    /// By default `None`: started backends are kept until the proxy exits.
    fn idle_timeout(&self) -> Option<Duration> {
        None
    }

    /// How long this backend, started by the provider, may go without sessions before the
    /// router stops it (engines of different profiles may differ).
    ///
    /// By default [`idle_timeout`](BackendProvider::idle_timeout).
    fn idle_timeout_for(&self, id: &BackendId) -> Option<Duration> {
        let _ = id;
        self.idle_timeout()
    }

    /// Why a backend is gone, when the provider knows it is (its process exited): the router
    /// asks when a call could not reach it, and when it is sure, every session on it turns
    /// dead with this reason. `None` when the provider does not know the backend is gone; the
    /// router then probes its address (a refused connection means it is gone too).
    ///
    /// By default `None`.
    async fn post_mortem(&self, backend: &Backend) -> Option<PostMortem> {
        let _ = backend;
        None
    }

    /// The last `lines` lines of a backend's own log, for operators (the control plane serves
    /// them at `GET /control/backends/{id}/logs`).
    ///
    /// By default `Ok(None)`: the provider keeps no logs.
    async fn logs(&self, id: &BackendId, lines: usize) -> Result<Option<String>, ProviderError> {
        let _ = (id, lines);
        Ok(None)
    }

    /// Called once when the proxy shuts down: stop whatever must not outlive it.
    ///
    /// By default this does nothing.
    async fn shutdown(&self) {}

    /// The provider's own view of a backend's health (e.g. a process that has exited).
    ///
    /// By default this returns [`Health::Unknown`], and the router relies on its own probes and
    /// on connection failures.
    async fn health(&self, backend: &Backend) -> Health {
        let _ = backend;
        Health::Unknown
    }
}
