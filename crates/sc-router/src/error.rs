//! The router's errors, and their one mapping to gRPC status codes.

use sc_backend_api::{BackendId, ProviderError};
use tonic::{Code, Status};

/// Everything that can go wrong while routing a call or managing sessions.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RouterError {
    /// The `x-spark-connect-session-id` header names no session.
    #[error(
        "session '{}' does not exist on this proxy (it was never created, was deleted, or expired); create one with `POST /control/sessions` on the proxy's control plane and pass its id as `x-spark-connect-session-id`, or connect without that header to get a session bound automatically",
        shorten(.0)
    )]
    SessionNotFound(String),
    /// ReattachExecute for an operation of a session the proxy does not know.
    #[error(
        "operation '{}' of session '{}' is not known to this proxy: the session was released, or never ran it through this proxy",
        shorten(operation_id),
        shorten(session_id)
    )]
    UnknownOperation {
        /// The request's session id.
        session_id: String,
        /// The operation.
        operation_id: String,
    },
    /// No backend has this id.
    #[error("backend '{}' does not exist; GET /control/backends lists them", shorten(.0))]
    BackendNotFound(String),
    /// A header the proxy reads holds something it cannot use.
    #[error("header '{name}' is invalid: {why}")]
    InvalidHeader {
        /// The header.
        name: &'static str,
        /// What is wrong with it.
        why: String,
    },
    /// The request carries neither the session header nor a `session_id` field.
    #[error(
        "request has no session: set `session_id` (field 1) in the request, or pass the `x-spark-connect-session-id` header from `POST /control/sessions`"
    )]
    MissingSessionId,
    /// The request's message could not be read.
    #[error("request message is malformed: {0}")]
    Malformed(#[from] sc_proto::wire::WireError),
    /// The request body ended before its first message was complete, or carried no message.
    #[error("request body {0}")]
    Truncated(&'static str),
    /// The first message did not arrive in time.
    #[error(
        "request sent no message within {0:?} (router.first_message_timeout); send the request message right after the headers"
    )]
    FirstMessageTimeout(std::time::Duration),
    /// The first message is larger than the router accepts.
    #[error(
        "request message of {size} bytes exceeds the proxy's limit of {limit} bytes (router.max_message_size)"
    )]
    MessageTooLarge {
        /// Size announced by the message's length prefix.
        size: u64,
        /// The configured limit.
        limit: usize,
    },
    /// The request uses a compression the router cannot read.
    #[error(
        "request is compressed with grpc-encoding '{0}', which the proxy cannot read; send uncompressed requests or use gzip"
    )]
    UnsupportedEncoding(String),
    /// The session exists but belongs to someone else.
    #[error("permission denied for this session")]
    PermissionDenied,
    /// A backend's Spark UI and logs are for admins and the users with a session there.
    #[error(
        "permission denied for {what} of backend '{}': only admins and users with a session on it may see it",
        shorten(id)
    )]
    BackendForbidden {
        /// The backend.
        id: String,
        /// What was asked for.
        what: &'static str,
    },
    /// The backend has no Spark UI the proxy can reach.
    #[error(
        "backend '{}' has no Spark UI the proxy can reach (a LAUNCH engine has one unless spark_ui is off; a PREDEFINED endpoint names it with ui_url)",
        shorten(.0)
    )]
    NoUi(String),
    /// Acting on the proxy as a whole is for admins.
    #[error("{}", not_admin(action, *authenticated))]
    NotAdmin {
        /// What the caller wanted to do.
        action: &'static str,
        /// Whether the caller was authenticated (the fix differs).
        authenticated: bool,
    },
    /// A request to the router's API (e.g. a new session's fields) is invalid.
    #[error("{0}")]
    InvalidRequest(String),
    /// The router's own settings are wrong (at build or on reload).
    #[error("invalid router settings: {0}")]
    InvalidSettings(String),
    /// No backend can take a new session.
    #[error("no backend can take a new session: {0}")]
    NoCapacity(String),
    /// A backend could not be reached or failed at the transport level.
    #[error("backend '{backend}' ({endpoint}) is unavailable: {reason}")]
    BackendUnavailable {
        /// The backend's id.
        backend: BackendId,
        /// Its endpoint.
        endpoint: String,
        /// What failed.
        reason: String,
    },
    /// A backend provider failed.
    #[error("backend provider error: {0}")]
    Provider(#[from] ProviderError),
    /// A configured limit refused the call.
    #[error("{message}")]
    LimitExceeded {
        /// Which limit (`sessions_per_user`, `streams_per_user`, `streams_total`, `rate`).
        limit: &'static str,
        /// What happened and what to do.
        message: String,
        /// When a retry may succeed, sent to the client as `google.rpc.RetryInfo`.
        retry_after: Option<std::time::Duration>,
    },
    /// The client's request stream failed while the router read it.
    #[error("reading the request failed: {0}")]
    RequestBody(String),
    /// The session can never be used again: its backend restarted (and lost it) or went away.
    #[error(
        "session '{}' is dead: {why}; its state on the backend is gone; start a new session (PySpark: spark.stop(), then SparkSession.builder.remote(...).getOrCreate())",
        shorten(id)
    )]
    SessionDead {
        /// The session.
        id: String,
        /// What happened.
        why: String,
    },
    /// The session was closed by the proxy (expired or deleted) and its id is remembered.
    #[error(
        "session '{}' was closed by the proxy ({why}); start a new session (PySpark: spark.stop(), then SparkSession.builder.remote(...).getOrCreate())",
        shorten(id)
    )]
    SessionClosed {
        /// The session.
        id: String,
        /// Why it was closed.
        why: String,
    },
    /// The session store could not be used.
    #[error(
        "{0}; sessions already known to this proxy keep working, new ones cannot be bound until the store is back"
    )]
    Store(#[from] sc_store::StoreError),
}

impl RouterError {
    /// The gRPC code for this error; the control plane derives its HTTP status from it too.
    pub fn code(&self) -> Code {
        match self {
            RouterError::SessionNotFound(_)
            | RouterError::UnknownOperation { .. }
            | RouterError::BackendNotFound(_) => Code::NotFound,
            RouterError::InvalidHeader { .. }
            | RouterError::MissingSessionId
            | RouterError::Malformed(_)
            | RouterError::Truncated(_) => Code::InvalidArgument,
            RouterError::MessageTooLarge { .. }
            | RouterError::NoCapacity(_)
            | RouterError::LimitExceeded { .. } => Code::ResourceExhausted,
            RouterError::UnsupportedEncoding(_) => Code::Unimplemented,
            RouterError::FirstMessageTimeout(_) => Code::DeadlineExceeded,
            RouterError::PermissionDenied
            | RouterError::NotAdmin { .. }
            | RouterError::BackendForbidden { .. } => Code::PermissionDenied,
            RouterError::NoUi(_) => Code::NotFound,
            RouterError::InvalidSettings(_) | RouterError::InvalidRequest(_) => {
                Code::InvalidArgument
            }
            RouterError::BackendUnavailable { .. } => Code::Unavailable,
            RouterError::Provider(ProviderError::Config(_)) => Code::Internal,
            RouterError::Provider(ProviderError::UnknownProfile { .. }) => Code::InvalidArgument,
            RouterError::Provider(ProviderError::ProfileForbidden { .. }) => Code::PermissionDenied,
            // Retrying soon cannot help: clients must hear it at once, not retry for minutes.
            RouterError::Provider(ProviderError::NotRestarting(_)) => Code::FailedPrecondition,
            RouterError::Provider(_) => Code::Unavailable,
            RouterError::RequestBody(_) => Code::Cancelled,
            RouterError::SessionDead { .. } | RouterError::SessionClosed { .. } => {
                Code::FailedPrecondition
            }
            RouterError::Store(sc_store::StoreError::Config(_)) => Code::Internal,
            RouterError::Store(_) => Code::Unavailable,
        }
    }

    /// The status a client receives.
    pub fn to_status(&self) -> Status {
        use tonic_types::{ErrorDetails, StatusExt as _};
        match self {
            RouterError::LimitExceeded {
                retry_after: Some(delay),
                ..
            } => Status::with_error_details(
                self.code(),
                self.to_string(),
                ErrorDetails::with_retry_info(Some(*delay)),
            ),
            _ => Status::new(self.code(), self.to_string()),
        }
    }
}

fn not_admin(action: &str, authenticated: bool) -> String {
    if authenticated {
        format!("only members of auth.admin_group may {action}")
    } else {
        format!(
            "only the operator may {action}: with authentication off, send the request without x-spark-connect-user-id"
        )
    }
}

/// A client-supplied id as quoted in a message: long ones are cut, so that an error never
/// outgrows the headers it travels in.
pub(crate) fn shorten(id: &str) -> std::borrow::Cow<'_, str> {
    const MAX: usize = 64;
    match id.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}...", &id[..cut]).into(),
        None => id.into(),
    }
}

/// The canonical upper-case name of a gRPC status code, as used in metrics labels.
pub fn code_name(code: i32) -> &'static str {
    const NAMES: [&str; 17] = [
        "OK",
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    ];
    usize::try_from(code)
        .ok()
        .and_then(|i| NAMES.get(i))
        .copied()
        .unwrap_or("UNKNOWN")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_refusals_map_to_statuses_clients_do_not_retry() {
        let code = |e: ProviderError| RouterError::Provider(e).code();
        assert_eq!(
            code(ProviderError::UnknownProfile {
                profile: "x".into(),
                available: vec![],
            }),
            Code::InvalidArgument
        );
        assert_eq!(
            code(ProviderError::ProfileForbidden {
                profile: "x".into(),
                user: "u".into(),
                allowed_groups: vec![],
                open: vec![],
            }),
            Code::PermissionDenied
        );
        assert_eq!(
            code(ProviderError::NotRestarting("crash loop".into())),
            Code::FailedPrecondition
        );
        // A start that failed may succeed on a retry.
        assert_eq!(
            code(ProviderError::StartFailed("slow".into())),
            Code::Unavailable
        );
    }
}
