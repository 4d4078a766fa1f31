//! A fast fake Spark Connect backend: unary calls answer at once, ExecutePlan streams pre-built
//! Arrow batches at memory speed, so what a benchmark measures is the path in front of it.
//!
//! The query picks the result: a plan whose SQL text is `bench:stream:<total_bytes>:<chunk_bytes>`
//! gets `total_bytes` of batch data in messages of `chunk_bytes` (at most 16 MiB) and then a
//! `ResultComplete`; anything else gets one small batch and a `ResultComplete`. Every batch's data
//! is a slice of one buffer built at start-up, so building a message copies no payload.

use std::pin::Pin;

use bytes::Bytes;
use futures_util::Stream;
use sc_proto::spark::connect as pb;
use sc_proto::spark::connect::spark_connect_service_server::{
    SparkConnectService, SparkConnectServiceServer,
};
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::Server;
use tonic::{Request, Response, Status, Streaming};

/// The `server_side_session_id` of every response.
pub(crate) const SERVER_SIDE_SESSION_ID: &str = "sc-bench-fake-backend";
/// The version AnalyzePlan SparkVersion answers.
const SPARK_VERSION: &str = "4.0.0-sc-bench";
/// The largest batch the fake sends in one message.
const MAX_CHUNK: usize = 16 << 20;
/// The batch size of a query that asks for nothing in particular.
const SMALL_BATCH: usize = 1024;

/// The query text that asks the fake for `total` bytes of batch data in messages of `chunk` bytes.
pub(crate) fn stream_query(total: u64, chunk: usize) -> String {
    format!("bench:stream:{total}:{chunk}")
}

/// The fake backend: the shared payload every batch is a slice of.
#[derive(Clone)]
pub(crate) struct FakeBackend {
    payload: Bytes,
}

impl FakeBackend {
    pub(crate) fn new() -> Self {
        // Arrow-looking bytes are not needed: nobody on the path decodes a batch.
        let payload: Vec<u8> = (0..MAX_CHUNK).map(|i| (i % 251) as u8).collect();
        FakeBackend {
            payload: Bytes::from(payload),
        }
    }
}

/// Serves the fake on `listener` until the process ends.
pub(crate) async fn serve(listener: TcpListener) -> anyhow::Result<()> {
    let service = SparkConnectServiceServer::new(FakeBackend::new())
        .max_decoding_message_size(256 << 20)
        .max_encoding_message_size(usize::MAX);
    Server::builder()
        .tcp_nodelay(true)
        .initial_stream_window_size(4 << 20)
        .initial_connection_window_size(64 << 20)
        .add_service(service)
        .serve_with_incoming(TcpListenerStream::new(listener))
        .await?;
    Ok(())
}

/// What an ExecutePlan asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct StreamSpec {
    total: u64,
    chunk: u64,
}

impl StreamSpec {
    fn parse(query: &str) -> Option<StreamSpec> {
        let (total, chunk) = query.strip_prefix("bench:stream:")?.split_once(':')?;
        let total: u64 = total.trim().parse().ok()?;
        let chunk: usize = chunk.trim().parse().ok()?;
        (chunk > 0).then_some(StreamSpec {
            total,
            chunk: chunk.min(MAX_CHUNK) as u64,
        })
    }
}

fn sql_of(request: &pb::ExecutePlanRequest) -> Option<&str> {
    match request.plan.as_ref()?.op_type.as_ref()? {
        pb::plan::OpType::Root(relation) => match relation.rel_type.as_ref()? {
            pb::relation::RelType::Sql(sql) => Some(&sql.query),
            _ => None,
        },
        _ => None,
    }
}

type ExecStream = Pin<Box<dyn Stream<Item = Result<pb::ExecutePlanResponse, Status>> + Send>>;

impl FakeBackend {
    /// The responses of one execution: the batches, then `ResultComplete`.
    fn execution(&self, session_id: String, operation_id: String, spec: StreamSpec) -> ExecStream {
        let template = pb::ExecutePlanResponse {
            session_id,
            server_side_session_id: SERVER_SIDE_SESSION_ID.to_owned(),
            operation_id,
            ..Default::default()
        };
        let payload = self.payload.clone();
        let batches = spec.total.div_ceil(spec.chunk);
        let responses = (0..=batches).map(move |i| {
            let mut response = template.clone();
            response.response_id = i.to_string();
            response.response_type = Some(if i < batches {
                let start = i * spec.chunk;
                let len = spec.chunk.min(spec.total - start) as usize;
                pb::execute_plan_response::ResponseType::ArrowBatch(
                    pb::execute_plan_response::ArrowBatch {
                        row_count: (len / 8) as i64,
                        data: payload.slice(..len),
                        start_offset: Some(start as i64),
                        chunk_index: None,
                        num_chunks_in_batch: None,
                    },
                )
            } else {
                pb::execute_plan_response::ResponseType::ResultComplete(
                    pb::execute_plan_response::ResultComplete {},
                )
            });
            Ok(response)
        });
        Box::pin(futures_util::stream::iter(responses))
    }
}

#[tonic::async_trait]
impl SparkConnectService for FakeBackend {
    type ExecutePlanStream = ExecStream;
    type ReattachExecuteStream = ExecStream;

    async fn execute_plan(
        &self,
        request: Request<pb::ExecutePlanRequest>,
    ) -> Result<Response<ExecStream>, Status> {
        let request = request.into_inner();
        let spec = sql_of(&request)
            .and_then(StreamSpec::parse)
            .unwrap_or(StreamSpec {
                total: SMALL_BATCH as u64,
                chunk: SMALL_BATCH as u64,
            });
        Ok(Response::new(self.execution(
            request.session_id,
            request.operation_id.unwrap_or_default(),
            spec,
        )))
    }

    async fn analyze_plan(
        &self,
        request: Request<pb::AnalyzePlanRequest>,
    ) -> Result<Response<pb::AnalyzePlanResponse>, Status> {
        let request = request.into_inner();
        let result = match request.analyze {
            Some(pb::analyze_plan_request::Analyze::SparkVersion(_)) => {
                Some(pb::analyze_plan_response::Result::SparkVersion(
                    pb::analyze_plan_response::SparkVersion {
                        version: SPARK_VERSION.to_owned(),
                    },
                ))
            }
            _ => None,
        };
        Ok(Response::new(pb::AnalyzePlanResponse {
            session_id: request.session_id,
            server_side_session_id: SERVER_SIDE_SESSION_ID.to_owned(),
            result,
        }))
    }

    async fn config(
        &self,
        request: Request<pb::ConfigRequest>,
    ) -> Result<Response<pb::ConfigResponse>, Status> {
        let request = request.into_inner();
        // Every key has its default: GetWithDefault answers the pairs it was given.
        let pairs = match request.operation.and_then(|o| o.op_type) {
            Some(pb::config_request::operation::OpType::GetWithDefault(get)) => get.pairs,
            _ => Vec::new(),
        };
        Ok(Response::new(pb::ConfigResponse {
            session_id: request.session_id,
            server_side_session_id: SERVER_SIDE_SESSION_ID.to_owned(),
            pairs,
            warnings: Vec::new(),
        }))
    }

    async fn add_artifacts(
        &self,
        request: Request<Streaming<pb::AddArtifactsRequest>>,
    ) -> Result<Response<pb::AddArtifactsResponse>, Status> {
        let mut stream = request.into_inner();
        let mut session_id = String::new();
        while let Some(message) = stream.message().await? {
            session_id = message.session_id;
        }
        Ok(Response::new(pb::AddArtifactsResponse {
            session_id,
            server_side_session_id: SERVER_SIDE_SESSION_ID.to_owned(),
            artifacts: Vec::new(),
        }))
    }

    async fn artifact_status(
        &self,
        request: Request<pb::ArtifactStatusesRequest>,
    ) -> Result<Response<pb::ArtifactStatusesResponse>, Status> {
        Ok(Response::new(pb::ArtifactStatusesResponse {
            session_id: request.into_inner().session_id,
            server_side_session_id: SERVER_SIDE_SESSION_ID.to_owned(),
            statuses: Default::default(),
        }))
    }

    async fn interrupt(
        &self,
        request: Request<pb::InterruptRequest>,
    ) -> Result<Response<pb::InterruptResponse>, Status> {
        Ok(Response::new(pb::InterruptResponse {
            session_id: request.into_inner().session_id,
            server_side_session_id: SERVER_SIDE_SESSION_ID.to_owned(),
            interrupted_ids: Vec::new(),
        }))
    }

    async fn reattach_execute(
        &self,
        request: Request<pb::ReattachExecuteRequest>,
    ) -> Result<Response<ExecStream>, Status> {
        // Every execution has already sent everything: reattaching finds only the end.
        let request = request.into_inner();
        Ok(Response::new(self.execution(
            request.session_id,
            request.operation_id,
            StreamSpec { total: 0, chunk: 1 },
        )))
    }

    async fn release_execute(
        &self,
        request: Request<pb::ReleaseExecuteRequest>,
    ) -> Result<Response<pb::ReleaseExecuteResponse>, Status> {
        let request = request.into_inner();
        Ok(Response::new(pb::ReleaseExecuteResponse {
            session_id: request.session_id,
            server_side_session_id: SERVER_SIDE_SESSION_ID.to_owned(),
            operation_id: Some(request.operation_id),
        }))
    }

    async fn release_session(
        &self,
        request: Request<pb::ReleaseSessionRequest>,
    ) -> Result<Response<pb::ReleaseSessionResponse>, Status> {
        Ok(Response::new(pb::ReleaseSessionResponse {
            session_id: request.into_inner().session_id,
            server_side_session_id: SERVER_SIDE_SESSION_ID.to_owned(),
        }))
    }

    async fn fetch_error_details(
        &self,
        request: Request<pb::FetchErrorDetailsRequest>,
    ) -> Result<Response<pb::FetchErrorDetailsResponse>, Status> {
        Ok(Response::new(pb::FetchErrorDetailsResponse {
            session_id: request.into_inner().session_id,
            server_side_session_id: SERVER_SIDE_SESSION_ID.to_owned(),
            ..Default::default()
        }))
    }

    async fn clone_session(
        &self,
        request: Request<pb::CloneSessionRequest>,
    ) -> Result<Response<pb::CloneSessionResponse>, Status> {
        let request = request.into_inner();
        Ok(Response::new(pb::CloneSessionResponse {
            session_id: request.session_id,
            server_side_session_id: SERVER_SIDE_SESSION_ID.to_owned(),
            new_session_id: request.new_session_id.unwrap_or_default(),
            new_server_side_session_id: format!("{SERVER_SIDE_SESSION_ID}-clone"),
        }))
    }

    async fn get_status(
        &self,
        request: Request<pb::GetStatusRequest>,
    ) -> Result<Response<pb::GetStatusResponse>, Status> {
        Ok(Response::new(pb::GetStatusResponse {
            session_id: request.into_inner().session_id,
            server_side_session_id: SERVER_SIDE_SESSION_ID.to_owned(),
            ..Default::default()
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt as _;

    #[test]
    fn parses_stream_queries() {
        assert_eq!(
            StreamSpec::parse("bench:stream:1000:300"),
            Some(StreamSpec {
                total: 1000,
                chunk: 300
            })
        );
        assert_eq!(StreamSpec::parse("bench:stream:1000:0"), None);
        assert_eq!(StreamSpec::parse("SELECT 1"), None);
    }

    #[tokio::test]
    async fn streams_the_requested_bytes_then_completes() {
        let fake = FakeBackend::new();
        let responses: Vec<_> = fake
            .execution(
                "s".into(),
                String::new(),
                StreamSpec {
                    total: 1000,
                    chunk: 300,
                },
            )
            .collect()
            .await;
        let mut sizes = Vec::new();
        let mut complete = 0;
        for response in responses.into_iter().flatten() {
            assert_eq!(response.session_id, "s");
            match response.response_type {
                Some(pb::execute_plan_response::ResponseType::ArrowBatch(b)) => {
                    sizes.push(b.data.len());
                }
                Some(pb::execute_plan_response::ResponseType::ResultComplete(_)) => complete += 1,
                _ => {}
            }
        }
        assert_eq!(sizes, [300, 300, 300, 100]);
        assert_eq!(complete, 1);
    }
}
