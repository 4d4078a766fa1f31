//! The load generator's building blocks: connections, header-less sessions, one unary call, one
//! execution read to its end, and a control-plane session creation.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use sc_proto::spark::connect as pb;
use sc_proto::spark::connect::spark_connect_service_client::SparkConnectServiceClient;
use tonic::Status;
use tonic::transport::{Channel, Endpoint};

/// A generated Spark Connect client over one HTTP/2 connection.
pub(crate) type Client = SparkConnectServiceClient<Channel>;

/// HTTP/2 window per stream the load generator offers (like grpc-core once BDP probing settles).
const STREAM_WINDOW: u32 = 4 << 20;
/// HTTP/2 window per connection the load generator offers.
const CONNECTION_WINDOW: u32 = 32 << 20;

/// Opens one connection to `addr` (`host:port`, plaintext).
pub(crate) async fn connect(addr: &str) -> anyhow::Result<Client> {
    let channel = Endpoint::from_shared(format!("http://{addr}"))?
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true)
        .initial_stream_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .connect()
        .await
        .with_context(|| format!("cannot connect to {addr}"))?;
    Ok(Client::new(channel)
        .max_decoding_message_size(256 << 20)
        .max_encoding_message_size(256 << 20))
}

/// A header-less Spark Connect session: a fresh `session_id` and a user, as PySpark sends them.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    pub(crate) id: String,
    user: String,
}

impl Session {
    pub(crate) fn new() -> Self {
        Session {
            id: uuid::Uuid::new_v4().to_string(),
            user: "bench".to_owned(),
        }
    }

    fn user_context(&self) -> Option<pb::UserContext> {
        Some(pb::UserContext {
            user_id: self.user.clone(),
            user_name: self.user.clone(),
            ..Default::default()
        })
    }
}

/// The cheap call a unary measurement repeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unary {
    /// `Config` with one `GetWithDefault` key.
    Config,
    /// `AnalyzePlan` `SparkVersion`.
    SparkVersion,
}

impl Unary {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Unary::Config => "Config GetWithDefault",
            Unary::SparkVersion => "AnalyzePlan SparkVersion",
        }
    }
}

/// One unary call on `session`.
pub(crate) async fn unary(
    client: &mut Client,
    kind: Unary,
    session: &Session,
) -> Result<(), Status> {
    match kind {
        Unary::Config => {
            let request = pb::ConfigRequest {
                session_id: session.id.clone(),
                user_context: session.user_context(),
                operation: Some(pb::config_request::Operation {
                    op_type: Some(pb::config_request::operation::OpType::GetWithDefault(
                        pb::config_request::GetWithDefault {
                            pairs: vec![pb::KeyValue {
                                key: "spark.sql.shuffle.partitions".to_owned(),
                                value: Some("200".to_owned()),
                            }],
                        },
                    )),
                }),
                client_type: Some("sc-bench".to_owned()),
                ..Default::default()
            };
            client.config(request).await?;
        }
        Unary::SparkVersion => {
            let request = pb::AnalyzePlanRequest {
                session_id: session.id.clone(),
                user_context: session.user_context(),
                client_type: Some("sc-bench".to_owned()),
                analyze: Some(pb::analyze_plan_request::Analyze::SparkVersion(
                    pb::analyze_plan_request::SparkVersion {},
                )),
                ..Default::default()
            };
            client.analyze_plan(request).await?;
        }
    }
    Ok(())
}

/// Ends `session` on the backend (errors ignored: this is tidying up).
pub(crate) async fn release(client: &mut Client, session: &Session) {
    let request = pb::ReleaseSessionRequest {
        session_id: session.id.clone(),
        user_context: session.user_context(),
        client_type: Some("sc-bench".to_owned()),
        ..Default::default()
    };
    let _ = client.release_session(request).await;
}

/// What reading one execution to its end gave.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Execution {
    /// Bytes of Arrow batch data received.
    pub(crate) bytes: u64,
    /// From sending the request to the first response message.
    pub(crate) first: Duration,
    /// Whether the stream ended with `ResultComplete`.
    pub(crate) complete: bool,
}

/// Runs `sql` on `session` and reads every response, sleeping `pause` after each message (a slow
/// reader) when given.
pub(crate) async fn execute(
    client: &mut Client,
    session: &Session,
    sql: &str,
    pause: Option<Duration>,
) -> Result<Execution, Status> {
    let request = pb::ExecutePlanRequest {
        session_id: session.id.clone(),
        user_context: session.user_context(),
        client_type: Some("sc-bench".to_owned()),
        plan: Some(pb::Plan {
            op_type: Some(pb::plan::OpType::Root(pb::Relation {
                common: None,
                rel_type: Some(pb::relation::RelType::Sql(pb::Sql {
                    query: sql.to_owned(),
                    ..Default::default()
                })),
            })),
        }),
        ..Default::default()
    };
    let start = Instant::now();
    let mut stream = client.execute_plan(request).await?.into_inner();
    let mut first = None;
    let mut bytes = 0u64;
    let mut complete = false;
    while let Some(message) = stream.message().await? {
        first.get_or_insert_with(|| start.elapsed());
        match &message.response_type {
            Some(pb::execute_plan_response::ResponseType::ArrowBatch(batch)) => {
                bytes += batch.data.len() as u64;
            }
            Some(pb::execute_plan_response::ResponseType::ResultComplete(_)) => complete = true,
            _ => {}
        }
        if let Some(pause) = pause {
            tokio::time::sleep(pause).await;
        }
    }
    Ok(Execution {
        bytes,
        first: first.unwrap_or_else(|| start.elapsed()),
        complete,
    })
}

/// Creates one session through the proxy's control plane at `control` (`host:port`).
pub(crate) async fn create_control_session(
    http: &reqwest::Client,
    control: &str,
) -> anyhow::Result<()> {
    let response = http
        .post(format!("http://{control}/control/sessions"))
        .send()
        .await
        .context("POST /control/sessions failed")?;
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    anyhow::ensure!(
        status.is_success(),
        "POST /control/sessions answered {status}: {body}"
    );
    Ok(())
}
