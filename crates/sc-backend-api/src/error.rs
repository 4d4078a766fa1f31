//! Errors a provider reports.

/// What went wrong in a [`BackendProvider`](crate::BackendProvider).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProviderError {
    /// The provider cannot do this at all (e.g. a static list cannot start servers).
    #[error("backend provider '{provider}' cannot {operation}")]
    Unsupported {
        /// The provider's name.
        provider: String,
        /// What was asked, e.g. `"start backends"`.
        operation: &'static str,
    },
    /// No backend with this id is known to the provider.
    #[error("backend '{0}' is not known to its provider")]
    NotFound(String),
    /// Starting a backend failed or timed out.
    #[error("starting a backend failed: {0}")]
    StartFailed(String),
    /// Stopping a backend failed.
    #[error("stopping backend '{id}' failed: {reason}")]
    StopFailed {
        /// The backend.
        id: String,
        /// Why.
        reason: String,
    },
    /// The provider's configuration is wrong.
    #[error("invalid backend provider configuration: {0}")]
    Config(String),
    /// Anything else, with the provider's own explanation.
    #[error("{0}")]
    Other(String),
}
