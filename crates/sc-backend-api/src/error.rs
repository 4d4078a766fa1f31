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
    /// The provider will not start a backend for this session now, and retrying soon will not
    /// help: its engines keep failing (a crash loop), or restarts are off. The message says
    /// why and until when.
    #[error("{0}")]
    NotRestarting(String),
    /// Stopping a backend failed.
    #[error("stopping backend '{id}' failed: {reason}")]
    StopFailed {
        /// The backend.
        id: String,
        /// Why.
        reason: String,
    },
    /// The session asked for an engine profile the provider does not have.
    #[error("{}", unknown_profile(profile, available))]
    UnknownProfile {
        /// The profile asked for.
        profile: String,
        /// The profiles the provider has (empty when it has none).
        available: Vec<String>,
    },
    /// The session asked for an engine profile its user may not use.
    #[error(
        "user '{user}' may not use engine profile '{profile}' (only members of {}); profiles open to this user: {}",
        list(allowed_groups),
        list(open)
    )]
    ProfileForbidden {
        /// The profile asked for.
        profile: String,
        /// The user who asked.
        user: String,
        /// The groups whose members may use it.
        allowed_groups: Vec<String>,
        /// The profiles this user may use.
        open: Vec<String>,
    },
    /// The provider's configuration is wrong.
    #[error("invalid backend provider configuration: {0}")]
    Config(String),
    /// Anything else, with the provider's own explanation.
    #[error("{0}")]
    Other(String),
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "none".to_owned()
    } else {
        items.join(", ")
    }
}

fn unknown_profile(profile: &str, available: &[String]) -> String {
    if available.is_empty() {
        format!(
            "engine profile '{profile}' was asked for, but this proxy's backend provider has no profiles; ask for none"
        )
    } else {
        format!(
            "engine profile '{profile}' does not exist; available profiles: {}",
            available.join(", ")
        )
    }
}
