//! The one error type of the SDK and the server-side error details it carries.

use std::collections::BTreeMap;
use std::fmt;

use sc_proto::spark::connect::FetchErrorDetailsResponse;
use tonic::Code;

/// A specialised `Result` for the SDK.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the SDK.
///
/// Nothing a user or a server sends makes the SDK panic: it ends up here instead.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The connection string could not be parsed; the message says what is wrong with it.
    #[error("invalid connection string: {0}")]
    InvalidConnectionString(String),
    /// An argument given to the SDK is not acceptable.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A TLS or channel setting could not be applied.
    #[error("transport setup failed: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// The server (or the network) answered with a gRPC error that is not a Spark error.
    #[error("grpc error {code:?}: {message}")]
    Rpc {
        /// The gRPC status code.
        code: Code,
        /// The gRPC status message.
        message: String,
    },
    /// Spark reported an error while analysing or running a request.
    #[error("{0}")]
    Spark(Box<SparkError>),
    /// The server answered something the client does not understand.
    #[error("unexpected response: {0}")]
    Protocol(String),
    /// The server-side session changed: the session this client used is gone
    /// (for example the server restarted), so its state (temp views, config) is lost.
    #[error(
        "the server-side session changed from {expected} to {observed}: the session was lost on the server"
    )]
    SessionChanged {
        /// The server-side session id the client saw first.
        expected: String,
        /// The one it sees now.
        observed: String,
    },
    /// A request is larger than the message limit
    /// ([`SparkSessionBuilder::max_message_size`](crate::SparkSessionBuilder::max_message_size),
    /// 128 MiB by default), so it was not sent. A response over the limit is an [`Error::Rpc`]
    /// with code `OutOfRange`.
    #[error(
        "the request is {size} bytes, more than the message limit of {limit} bytes (raise it with max_message_size)"
    )]
    MessageTooLarge {
        /// The encoded size of the request.
        size: usize,
        /// The message limit.
        limit: usize,
    },
    /// The session was stopped with [`SparkSession::stop`](crate::SparkSession::stop).
    #[error("the session is stopped")]
    SessionStopped,
    /// Arrow data could not be encoded or decoded.
    #[error("arrow error: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
    /// A value could not be converted between Spark's data and a Rust type (a [`Row`](crate::Row)
    /// getter, a serde type, local data for a DataFrame); the message names the column and
    /// the types.
    #[error("conversion error: {0}")]
    Conversion(String),
    /// An I/O error, for example while reading an artifact or a CA file.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// The proxy control plane could not be reached, or answered something unreadable.
    #[error("control plane error: {0}")]
    ControlPlane(String),
    /// The proxy control plane answered with an HTTP error status.
    #[error("control plane error: {status}{}: {message}", code.as_deref().map(|c| format!(" ({c})")).unwrap_or_default())]
    ControlPlaneStatus {
        /// The HTTP status code (404 when the session does not exist).
        status: u16,
        /// The control plane's error code (for example `NOT_FOUND`), when it sent one.
        code: Option<String>,
        /// The control plane's message.
        message: String,
    },
    /// Something this client cannot do; the message says why and what to do instead.
    #[error("not supported: {0}")]
    Unsupported(String),
    /// The stream of streaming-query listener events failed or fell behind.
    #[error("streaming query listener events: {0}")]
    ListenerEvents(String),
}

impl Error {
    /// The Spark error class (for example `TABLE_OR_VIEW_NOT_FOUND`), when this is a Spark error.
    pub fn error_class(&self) -> Option<&str> {
        match self {
            Error::Spark(e) => e.error_class.as_deref(),
            _ => None,
        }
    }

    /// The SQL state (for example `42P01`), when this is a Spark error that has one.
    pub fn sql_state(&self) -> Option<&str> {
        match self {
            Error::Spark(e) => e.sql_state.as_deref(),
            _ => None,
        }
    }

    /// The Spark error details, when this is a Spark error.
    pub fn spark_error(&self) -> Option<&SparkError> {
        match self {
            Error::Spark(e) => Some(e),
            _ => None,
        }
    }

    /// The HTTP status the proxy control plane answered with, when this is a control-plane error
    /// status (404: no such session).
    pub fn http_status(&self) -> Option<u16> {
        match self {
            Error::ControlPlaneStatus { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The gRPC status code behind this error, if it came from the server.
    pub fn grpc_code(&self) -> Option<Code> {
        match self {
            Error::Rpc { code, .. } => Some(*code),
            Error::Spark(e) => Some(e.grpc_code),
            _ => None,
        }
    }
}

/// An error raised by Spark, with the structured details the server attached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SparkError {
    /// The gRPC status code the error travelled with.
    pub grpc_code: Code,
    /// The JVM exception class, for example `org.apache.spark.sql.AnalysisException`.
    pub exception_class: String,
    /// The class hierarchy of the exception, most specific first.
    pub exception_classes: Vec<String>,
    /// The Spark error class, for example `TABLE_OR_VIEW_NOT_FOUND`.
    pub error_class: Option<String>,
    /// The SQL state, for example `42P01`.
    pub sql_state: Option<String>,
    /// The parameters of the error-class message.
    pub message_parameters: BTreeMap<String, String>,
    /// The human-readable message.
    pub message: String,
    /// The server-side error id, used to fetch the details.
    pub error_id: Option<String>,
    /// The server-side stack trace, when FetchErrorDetails returned one
    /// (the server sends it when `spark.sql.connect.serverStacktrace.enabled` is true).
    pub stack_trace: Vec<String>,
    /// Messages of the causes, outermost first (from FetchErrorDetails).
    pub causes: Vec<String>,
}

impl SparkError {
    /// Enriches this error with the details fetched through FetchErrorDetails.
    pub(crate) fn apply_details(&mut self, details: &FetchErrorDetailsResponse) {
        let Some(root) = details
            .root_error_idx
            .and_then(|i| usize::try_from(i).ok())
            .and_then(|i| details.errors.get(i))
        else {
            return;
        };
        if !root.message.is_empty() {
            self.message = root.message.clone();
        }
        if let Some(first) = root.error_type_hierarchy.first() {
            self.exception_class = first.clone();
            self.exception_classes = root.error_type_hierarchy.clone();
        }
        if let Some(t) = &root.spark_throwable {
            if t.error_class.is_some() {
                self.error_class = t.error_class.clone();
            }
            if t.sql_state.is_some() {
                self.sql_state = t.sql_state.clone();
            }
            if !t.message_parameters.is_empty() {
                self.message_parameters = t
                    .message_parameters
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
            }
        }
        self.stack_trace = root
            .stack_trace
            .iter()
            .map(|f| {
                format!(
                    "{}.{}({}:{})",
                    f.declaring_class,
                    f.method_name,
                    f.file_name.as_deref().unwrap_or("Unknown Source"),
                    f.line_number
                )
            })
            .collect();
        let mut causes = Vec::new();
        let mut next = root.cause_idx;
        // Bounded walk: a malicious server could send a cycle.
        while let Some(idx) = next.and_then(|i| usize::try_from(i).ok()) {
            if causes.len() >= details.errors.len() {
                break;
            }
            let Some(cause) = details.errors.get(idx) else {
                break;
            };
            causes.push(cause.message.clone());
            next = cause.cause_idx;
        }
        self.causes = causes;
    }
}

impl fmt::Display for SparkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.error_class {
            Some(class) if !self.message.contains(class.as_str()) => {
                write!(f, "[{class}] {}", self.message)?;
            }
            _ => f.write_str(&self.message)?,
        }
        if let Some(state) = &self.sql_state
            && !self.message.contains("SQLSTATE")
        {
            write!(f, " SQLSTATE: {state}")?;
        }
        Ok(())
    }
}

/// Turns a gRPC status into an SDK error, reading Spark's `ErrorInfo` detail when present.
pub(crate) fn from_status(status: &tonic::Status) -> Error {
    use tonic_types::StatusExt;
    let Some(info) = status.get_details_error_info() else {
        return Error::Rpc {
            code: status.code(),
            message: status.message().to_string(),
        };
    };
    let md = &info.metadata;
    let exception_classes: Vec<String> = md
        .get("classes")
        .and_then(|c| serde_json::from_str(c).ok())
        .unwrap_or_default();
    let message_parameters: BTreeMap<String, String> = md
        .get("messageParameters")
        .and_then(|c| serde_json::from_str(c).ok())
        .unwrap_or_default();
    Error::Spark(Box::new(SparkError {
        grpc_code: status.code(),
        exception_class: info.reason.clone(),
        exception_classes,
        error_class: md.get("errorClass").cloned(),
        sql_state: md.get("sqlState").cloned(),
        message_parameters,
        message: status.message().to_string(),
        error_id: md.get("errorId").cloned(),
        stack_trace: Vec::new(),
        causes: Vec::new(),
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use tonic_types::{ErrorDetails, StatusExt};

    #[test]
    fn reads_error_info_from_status_details() {
        let mut details = ErrorDetails::new();
        details.set_error_info(
            "org.apache.spark.sql.AnalysisException",
            "org.apache.spark",
            [
                (
                    "errorClass".to_string(),
                    "TABLE_OR_VIEW_NOT_FOUND".to_string(),
                ),
                ("sqlState".to_string(), "42P01".to_string()),
                (
                    "messageParameters".to_string(),
                    r#"{"relationName":"`nope`"}"#.to_string(),
                ),
                ("errorId".to_string(), "abc".to_string()),
            ],
        );
        let status = tonic::Status::with_error_details(
            Code::Internal,
            "[TABLE_OR_VIEW_NOT_FOUND] The table or view `nope` cannot be found.",
            details,
        );
        let err = from_status(&status);
        assert_eq!(err.error_class(), Some("TABLE_OR_VIEW_NOT_FOUND"));
        assert_eq!(err.sql_state(), Some("42P01"));
        let spark = err.spark_error().unwrap();
        assert_eq!(spark.message_parameters["relationName"], "`nope`");
        assert_eq!(spark.error_id.as_deref(), Some("abc"));
        assert!(err.to_string().starts_with("[TABLE_OR_VIEW_NOT_FOUND]"));
    }

    #[test]
    fn plain_status_is_rpc_error() {
        let err = from_status(&tonic::Status::unavailable("down"));
        assert_eq!(err.grpc_code(), Some(Code::Unavailable));
        assert!(err.error_class().is_none());
    }
}
