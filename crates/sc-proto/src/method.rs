//! The methods of `SparkConnectService` and the field numbers a router needs for each.

use std::fmt;

/// One method of `spark.connect.SparkConnectService`.
///
/// Every request message of the service keeps `session_id` at field 1 and `user_context` at
/// field 2; the variants differ in where they keep an operation id, a new session id, and
/// where their response keeps `server_side_session_id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RpcMethod {
    /// Server-streaming: runs a plan.
    ExecutePlan,
    /// Unary: schema, explain and other plan analysis.
    AnalyzePlan,
    /// Unary: session configuration.
    Config,
    /// Client-streaming: uploads artifacts in chunks.
    AddArtifacts,
    /// Unary: asks which artifacts the server has.
    ArtifactStatus,
    /// Unary: interrupts operations by id, tag or all.
    Interrupt,
    /// Server-streaming: resumes a cut ExecutePlan stream.
    ReattachExecute,
    /// Unary: frees responses of a reattachable execution.
    ReleaseExecute,
    /// Unary: ends a session on the server.
    ReleaseSession,
    /// Unary: fetches the details of an error.
    FetchErrorDetails,
    /// Unary (Spark 4.1+): clones a session under a new id on the same server.
    CloneSession,
    /// Unary (Spark 4.2+): status of a session's operations.
    GetStatus,
    /// A method this build does not know (a newer client); forwarded unchanged.
    Other,
}

impl RpcMethod {
    /// The method's position in [`RpcMethod::ALL`], or `ALL.len()` for [`RpcMethod::Other`]:
    /// a small index for per-method tables.
    pub fn index(self) -> usize {
        Self::ALL
            .iter()
            .position(|m| *m == self)
            .unwrap_or(Self::ALL.len())
    }

    /// Every known method, in the order of the service definition.
    pub const ALL: [RpcMethod; 12] = [
        RpcMethod::ExecutePlan,
        RpcMethod::AnalyzePlan,
        RpcMethod::Config,
        RpcMethod::AddArtifacts,
        RpcMethod::ArtifactStatus,
        RpcMethod::Interrupt,
        RpcMethod::ReattachExecute,
        RpcMethod::ReleaseExecute,
        RpcMethod::ReleaseSession,
        RpcMethod::FetchErrorDetails,
        RpcMethod::CloneSession,
        RpcMethod::GetStatus,
    ];

    /// The method for a request path such as `/spark.connect.SparkConnectService/Config`.
    ///
    /// Returns `None` when the path is not under the Spark Connect service at all, and
    /// [`RpcMethod::Other`] for an unknown method of the service.
    pub fn from_path(path: &str) -> Option<RpcMethod> {
        let rest = path.strip_prefix('/')?.strip_prefix(crate::SERVICE_NAME)?;
        let name = rest.strip_prefix('/')?;
        Some(RpcMethod::from_name(name))
    }

    /// The method for a bare method name such as `ExecutePlan`.
    pub fn from_name(name: &str) -> RpcMethod {
        RpcMethod::ALL
            .into_iter()
            .find(|m| m.name() == name)
            .unwrap_or(RpcMethod::Other)
    }

    /// The method's name as in the service definition (`"Other"` for unknown methods).
    pub const fn name(self) -> &'static str {
        match self {
            RpcMethod::ExecutePlan => "ExecutePlan",
            RpcMethod::AnalyzePlan => "AnalyzePlan",
            RpcMethod::Config => "Config",
            RpcMethod::AddArtifacts => "AddArtifacts",
            RpcMethod::ArtifactStatus => "ArtifactStatus",
            RpcMethod::Interrupt => "Interrupt",
            RpcMethod::ReattachExecute => "ReattachExecute",
            RpcMethod::ReleaseExecute => "ReleaseExecute",
            RpcMethod::ReleaseSession => "ReleaseSession",
            RpcMethod::FetchErrorDetails => "FetchErrorDetails",
            RpcMethod::CloneSession => "CloneSession",
            RpcMethod::GetStatus => "GetStatus",
            RpcMethod::Other => "Other",
        }
    }

    /// The request field that holds an operation id, for the methods that have one.
    pub const fn operation_id_field(self) -> Option<u32> {
        match self {
            RpcMethod::ExecutePlan | RpcMethod::Interrupt => Some(6),
            RpcMethod::ReattachExecute | RpcMethod::ReleaseExecute => Some(3),
            _ => None,
        }
    }

    /// The request field that holds the id of a session to create (CloneSession's `new_session_id`).
    pub const fn new_session_id_field(self) -> Option<u32> {
        match self {
            RpcMethod::CloneSession => Some(4),
            _ => None,
        }
    }

    /// The response field that holds `server_side_session_id`, where the response has one.
    pub const fn response_server_side_session_id_field(self) -> Option<u32> {
        match self {
            RpcMethod::ExecutePlan | RpcMethod::ReattachExecute | RpcMethod::AnalyzePlan => {
                Some(15)
            }
            RpcMethod::Config => Some(4),
            RpcMethod::AddArtifacts | RpcMethod::ReleaseExecute | RpcMethod::Interrupt => Some(3),
            RpcMethod::ReleaseSession | RpcMethod::CloneSession | RpcMethod::GetStatus => Some(2),
            RpcMethod::ArtifactStatus => Some(3),
            RpcMethod::FetchErrorDetails => Some(3),
            RpcMethod::Other => None,
        }
    }

    /// Whether the server answers with a stream of messages.
    pub const fn is_server_streaming(self) -> bool {
        matches!(self, RpcMethod::ExecutePlan | RpcMethod::ReattachExecute)
    }

    /// Whether the client sends a stream of messages.
    pub const fn is_client_streaming(self) -> bool {
        matches!(self, RpcMethod::AddArtifacts)
    }
}

impl fmt::Display for RpcMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_to_methods() {
        for m in RpcMethod::ALL {
            let path = format!("/spark.connect.SparkConnectService/{}", m.name());
            assert_eq!(RpcMethod::from_path(&path), Some(m));
        }
        assert_eq!(
            RpcMethod::from_path("/spark.connect.SparkConnectService/FutureThing"),
            Some(RpcMethod::Other)
        );
        assert_eq!(RpcMethod::from_path("/grpc.health.v1.Health/Check"), None);
        assert_eq!(
            RpcMethod::from_path("/spark.connect.SparkConnectServiceX/Config"),
            None
        );
        assert_eq!(RpcMethod::from_path(""), None);
    }
}
