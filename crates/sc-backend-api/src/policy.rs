//! The [`LoadPolicy`] trait: where a new session goes.

use crate::BackendId;

/// A backend's load as the router sees it when placing a session.
#[derive(Debug, Clone, Copy)]
pub struct BackendLoad<'a> {
    /// The backend.
    pub id: &'a BackendId,
    /// Sessions bound to it now.
    pub sessions: usize,
    /// Whether it may receive new sessions (healthy and not draining).
    pub available: bool,
}

/// A policy's decision for one new session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// Bind the session to this existing backend.
    Existing(BackendId),
    /// Ask the provider to start a new backend for the session.
    StartNew,
    /// No backend can take the session; the message says why and what to change.
    Exhausted(String),
}

/// Chooses the backend for a new session.
///
/// `choose` runs on the request path for the first call of every new session: keep it cheap and
/// never block. It sees every backend, available or not, in a stable order.
pub trait LoadPolicy: Send + Sync + 'static {
    /// The policy's name as written in configuration (e.g. `"ROUND_ROBIN"`).
    fn name(&self) -> &str;

    /// Decides where a new session goes.
    fn choose(&self, backends: &[BackendLoad<'_>]) -> Placement;

    /// Whether the policy may answer [`Placement::StartNew`], so that a provider that starts
    /// backends makes the proxy ready even while no backend exists.
    ///
    /// By default `true`.
    fn starts_backends(&self) -> bool {
        true
    }
}
