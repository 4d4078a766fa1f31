//! An in-process fake Spark Connect backend and helpers to run the router in front of it.

#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    unreachable_pub,
    missing_docs
)]

pub mod otlp;

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::Stream;
use sc_backend_predefined::{EndpointSpec, PredefinedProvider, PredefinedSpec};
use sc_proto::spark::connect as pb;
use sc_proto::spark::connect::spark_connect_service_server::{
    SparkConnectService, SparkConnectServiceServer,
};
use sc_router::{Router, RouterSettings};
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::metadata::MetadataMap;
use tonic::transport::{Channel, Server};
use tonic::{Request, Response, Status, Streaming};

pub mod tls;

#[derive(Debug, Clone)]
pub struct Seen {
    pub method: &'static str,
    pub session_id: String,
    pub user_id: String,
    pub user_name: String,
    pub metadata: MetadataMap,
}

#[derive(Default)]
pub struct FakeState {
    pub name: String,
    pub seen: Mutex<Vec<Seen>>,
    /// ExecutePlan responses produced so far (for flow-control tests).
    pub produced: AtomicUsize,
    /// Times the fake "restarted": each one changes its server-side session id, as a real
    /// Spark server's does when it restarts.
    pub restarts: AtomicUsize,
    /// The plans of the ExecutePlan calls received, in order (for plan-capturing tests).
    pub plans: Mutex<Vec<pb::Plan>>,
}

impl FakeState {
    /// The server-side session id the fake reports (its name, until it "restarts").
    pub fn ssid(&self) -> String {
        match self.restarts.load(std::sync::atomic::Ordering::Relaxed) {
            0 => self.name.clone(),
            n => format!("{}-restart{n}", self.name),
        }
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// The plans of the ExecutePlan calls received so far.
    pub fn plans(&self) -> Vec<pb::Plan> {
        self.plans.lock().unwrap().clone()
    }

    pub fn count(&self, method: &str) -> usize {
        self.seen().iter().filter(|s| s.method == method).count()
    }

    fn record(
        &self,
        method: &'static str,
        session_id: &str,
        ctx: &Option<pb::UserContext>,
        metadata: &MetadataMap,
    ) {
        self.seen.lock().unwrap().push(Seen {
            method,
            session_id: session_id.to_owned(),
            user_id: ctx.as_ref().map(|c| c.user_id.clone()).unwrap_or_default(),
            user_name: ctx
                .as_ref()
                .map(|c| c.user_name.clone())
                .unwrap_or_default(),
            metadata: metadata.clone(),
        });
    }
}

#[derive(Clone)]
pub struct Fake(pub Arc<FakeState>);

type ExecStream = Pin<Box<dyn Stream<Item = Result<pb::ExecutePlanResponse, Status>> + Send>>;

fn sql_of(req: &pb::ExecutePlanRequest) -> String {
    match req.plan.as_ref().and_then(|p| p.op_type.as_ref()) {
        Some(pb::plan::OpType::Root(rel)) => match &rel.rel_type {
            Some(pb::relation::RelType::Sql(sql)) => sql.query.clone(),
            _ => String::new(),
        },
        _ => String::new(),
    }
}

#[tonic::async_trait]
impl SparkConnectService for Fake {
    type ExecutePlanStream = ExecStream;
    type ReattachExecuteStream = ExecStream;

    async fn execute_plan(
        &self,
        request: Request<pb::ExecutePlanRequest>,
    ) -> Result<Response<ExecStream>, Status> {
        let req = request.get_ref().clone();
        self.0.record(
            "ExecutePlan",
            &req.session_id,
            &req.user_context,
            request.metadata(),
        );
        if let Some(plan) = &req.plan {
            self.0.plans.lock().unwrap().push(plan.clone());
        }
        let query = sql_of(&req);
        let name = self.0.ssid();
        let op = req.operation_id.clone().unwrap_or_default();
        if op == "slow" {
            // Ten responses, 200 ms apart: a long-running query.
            let stream = futures_util::stream::unfold(0usize, move |i| {
                let name = name.clone();
                async move {
                    if i == 10 {
                        return None;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                    let response = pb::ExecutePlanResponse {
                        server_side_session_id: name,
                        response_id: format!("r{i}"),
                        ..Default::default()
                    };
                    Some((Ok(response), i + 1))
                }
            });
            return Ok(Response::new(Box::pin(stream)));
        }
        if query == "error" {
            let mut status = Status::with_details(
                tonic::Code::InvalidArgument,
                "[TABLE_OR_VIEW_NOT_FOUND] fake error",
                Bytes::from_static(b"\x0a\x03abc"),
            );
            status
                .metadata_mut()
                .insert("x-fake-trailer", "kept".parse().unwrap());
            return Err(status);
        }
        if let Some(n) = query.strip_prefix("break:") {
            // Sends n responses, then the connection dies (a crashed backend).
            let n: usize = n.parse().unwrap();
            let stream = futures_util::stream::unfold(0usize, move |i| async move {
                if i == n {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    std::panic::resume_unwind(Box::new("fake backend crashed"));
                }
                Some((Ok(pb::ExecutePlanResponse::default()), i + 1))
            });
            return Ok(Response::new(Box::pin(stream)));
        }
        if let Some(spec) = query.strip_prefix("big:") {
            let (n, size) = spec.split_once(':').unwrap();
            let n: usize = n.parse().unwrap();
            let size: usize = size.parse().unwrap();
            let state = self.0.clone();
            let stream = futures_util::stream::unfold(0usize, move |i| {
                let state = state.clone();
                let name = name.clone();
                async move {
                    if i == n {
                        return None;
                    }
                    state.produced.fetch_add(1, Ordering::SeqCst);
                    let resp = pb::ExecutePlanResponse {
                        server_side_session_id: name,
                        response_id: format!("r{i}"),
                        response_type: Some(pb::execute_plan_response::ResponseType::ArrowBatch(
                            pb::execute_plan_response::ArrowBatch {
                                row_count: 1,
                                data: Bytes::from(vec![7u8; size]),
                                start_offset: None,
                                chunk_index: None,
                                num_chunks_in_batch: None,
                            },
                        )),
                        ..Default::default()
                    };
                    Some((Ok(resp), i + 1))
                }
            });
            return Ok(Response::new(Box::pin(stream)));
        }
        let responses: Vec<Result<pb::ExecutePlanResponse, Status>> = (0..3)
            .map(|i| {
                Ok(pb::ExecutePlanResponse {
                    session_id: req.session_id.clone(),
                    server_side_session_id: name.clone(),
                    operation_id: op.clone(),
                    response_id: format!("r{i}"),
                    ..Default::default()
                })
            })
            .collect();
        let mut response =
            Response::new(Box::pin(futures_util::stream::iter(responses)) as ExecStream);
        response
            .metadata_mut()
            .insert("x-backend", name.parse().unwrap());
        Ok(response)
    }

    async fn analyze_plan(
        &self,
        request: Request<pb::AnalyzePlanRequest>,
    ) -> Result<Response<pb::AnalyzePlanResponse>, Status> {
        let r = request.get_ref();
        self.0.record(
            "AnalyzePlan",
            &r.session_id,
            &r.user_context,
            request.metadata(),
        );
        Ok(Response::new(pb::AnalyzePlanResponse {
            session_id: r.session_id.clone(),
            server_side_session_id: self.0.ssid(),
            result: None,
        }))
    }

    async fn config(
        &self,
        request: Request<pb::ConfigRequest>,
    ) -> Result<Response<pb::ConfigResponse>, Status> {
        let r = request.get_ref();
        self.0
            .record("Config", &r.session_id, &r.user_context, request.metadata());
        Ok(Response::new(pb::ConfigResponse {
            session_id: r.session_id.clone(),
            server_side_session_id: self.0.ssid(),
            pairs: vec![
                pb::KeyValue {
                    key: "backend".into(),
                    value: Some(self.0.ssid()),
                },
                pb::KeyValue {
                    key: "spark.connect.authenticate.token".into(),
                    value: request
                        .metadata()
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .map(|v| v.trim_start_matches("Bearer ").to_owned()),
                },
            ],
            warnings: vec![],
        }))
    }

    async fn add_artifacts(
        &self,
        request: Request<Streaming<pb::AddArtifactsRequest>>,
    ) -> Result<Response<pb::AddArtifactsResponse>, Status> {
        let metadata = request.metadata().clone();
        let mut stream = request.into_inner();
        let mut chunks = 0usize;
        let mut session = String::new();
        let mut ctx = None;
        while let Some(msg) = stream.message().await? {
            chunks += 1;
            session = msg.session_id.clone();
            ctx = msg.user_context.clone();
        }
        self.0.record("AddArtifacts", &session, &ctx, &metadata);
        Ok(Response::new(pb::AddArtifactsResponse {
            session_id: session,
            server_side_session_id: self.0.ssid(),
            artifacts: (0..chunks)
                .map(|i| pb::add_artifacts_response::ArtifactSummary {
                    name: format!("chunk-{i}"),
                    is_crc_successful: true,
                })
                .collect(),
        }))
    }

    async fn artifact_status(
        &self,
        request: Request<pb::ArtifactStatusesRequest>,
    ) -> Result<Response<pb::ArtifactStatusesResponse>, Status> {
        let r = request.get_ref();
        self.0.record(
            "ArtifactStatus",
            &r.session_id,
            &r.user_context,
            request.metadata(),
        );
        Ok(Response::new(pb::ArtifactStatusesResponse {
            session_id: r.session_id.clone(),
            server_side_session_id: self.0.ssid(),
            statuses: Default::default(),
        }))
    }

    async fn interrupt(
        &self,
        request: Request<pb::InterruptRequest>,
    ) -> Result<Response<pb::InterruptResponse>, Status> {
        let r = request.get_ref();
        self.0.record(
            "Interrupt",
            &r.session_id,
            &r.user_context,
            request.metadata(),
        );
        Ok(Response::new(pb::InterruptResponse {
            session_id: r.session_id.clone(),
            server_side_session_id: self.0.ssid(),
            interrupted_ids: vec![],
        }))
    }

    async fn reattach_execute(
        &self,
        request: Request<pb::ReattachExecuteRequest>,
    ) -> Result<Response<ExecStream>, Status> {
        let r = request.get_ref().clone();
        self.0.record(
            "ReattachExecute",
            &r.session_id,
            &r.user_context,
            request.metadata(),
        );
        let resp = pb::ExecutePlanResponse {
            session_id: r.session_id.clone(),
            server_side_session_id: self.0.ssid(),
            operation_id: r.operation_id.clone(),
            ..Default::default()
        };
        Ok(Response::new(Box::pin(futures_util::stream::iter([Ok(
            resp,
        )]))))
    }

    async fn release_execute(
        &self,
        request: Request<pb::ReleaseExecuteRequest>,
    ) -> Result<Response<pb::ReleaseExecuteResponse>, Status> {
        let r = request.get_ref();
        self.0.record(
            "ReleaseExecute",
            &r.session_id,
            &r.user_context,
            request.metadata(),
        );
        Ok(Response::new(pb::ReleaseExecuteResponse {
            session_id: r.session_id.clone(),
            server_side_session_id: self.0.ssid(),
            operation_id: Some(r.operation_id.clone()),
        }))
    }

    async fn release_session(
        &self,
        request: Request<pb::ReleaseSessionRequest>,
    ) -> Result<Response<pb::ReleaseSessionResponse>, Status> {
        let r = request.get_ref();
        self.0.record(
            "ReleaseSession",
            &r.session_id,
            &r.user_context,
            request.metadata(),
        );
        Ok(Response::new(pb::ReleaseSessionResponse {
            session_id: r.session_id.clone(),
            server_side_session_id: self.0.ssid(),
        }))
    }

    async fn fetch_error_details(
        &self,
        request: Request<pb::FetchErrorDetailsRequest>,
    ) -> Result<Response<pb::FetchErrorDetailsResponse>, Status> {
        let r = request.get_ref();
        self.0.record(
            "FetchErrorDetails",
            &r.session_id,
            &r.user_context,
            request.metadata(),
        );
        Ok(Response::new(pb::FetchErrorDetailsResponse {
            server_side_session_id: self.0.ssid(),
            session_id: r.session_id.clone(),
            ..Default::default()
        }))
    }

    async fn clone_session(
        &self,
        request: Request<pb::CloneSessionRequest>,
    ) -> Result<Response<pb::CloneSessionResponse>, Status> {
        let r = request.get_ref();
        self.0.record(
            "CloneSession",
            &r.session_id,
            &r.user_context,
            request.metadata(),
        );
        Ok(Response::new(pb::CloneSessionResponse {
            session_id: r.session_id.clone(),
            server_side_session_id: self.0.ssid(),
            new_session_id: r.new_session_id.clone().unwrap_or_default(),
            new_server_side_session_id: format!("{}-clone", self.0.name),
        }))
    }

    async fn get_status(
        &self,
        request: Request<pb::GetStatusRequest>,
    ) -> Result<Response<pb::GetStatusResponse>, Status> {
        let r = request.get_ref();
        self.0.record(
            "GetStatus",
            &r.session_id,
            &r.user_context,
            request.metadata(),
        );
        Ok(Response::new(pb::GetStatusResponse {
            session_id: r.session_id.clone(),
            server_side_session_id: self.0.ssid(),
            ..Default::default()
        }))
    }
}

/// Starts a fake backend on a free port.
pub async fn spawn_backend(name: &str) -> (SocketAddr, Arc<FakeState>) {
    let state = Arc::new(FakeState {
        name: name.into(),
        ..Default::default()
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let svc = SparkConnectServiceServer::new(Fake(state.clone()))
        .accept_compressed(tonic::codec::CompressionEncoding::Gzip)
        .max_decoding_message_size(usize::MAX)
        .max_encoding_message_size(usize::MAX);
    tokio::spawn(
        Server::builder()
            .add_service(svc)
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    (addr, state)
}

/// Starts a fake backend on a given address (e.g. a port that was down and comes back).
pub async fn spawn_backend_at(name: &str, addr: SocketAddr) -> Arc<FakeState> {
    let state = Arc::new(FakeState {
        name: name.into(),
        ..Default::default()
    });
    let listener = TcpListener::bind(addr).await.unwrap();
    let svc = SparkConnectServiceServer::new(Fake(state.clone()));
    tokio::spawn(
        Server::builder()
            .add_service(svc)
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    state
}

/// Starts a fake backend that serves TLS with the given PEM certificate and key.
pub async fn spawn_backend_tls(
    name: &str,
    cert_pem: &str,
    key_pem: &str,
) -> (SocketAddr, Arc<FakeState>) {
    let state = Arc::new(FakeState {
        name: name.into(),
        ..Default::default()
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let svc = SparkConnectServiceServer::new(Fake(state.clone()));
    let tls = tonic::transport::ServerTlsConfig::new()
        .identity(tonic::transport::Identity::from_pem(cert_pem, key_pem));
    tokio::spawn(
        Server::builder()
            .tls_config(tls)
            .unwrap()
            .add_service(svc)
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    (addr, state)
}

/// A port that was free a moment ago (for a process the test starts).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A port nothing listens on.
pub async fn dead_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().port()
}

/// The value of one sample (`name{labels}`, exactly as exposed) in a Prometheus text
/// exposition such as `Metrics::encode` gives.
pub fn metric_value(exposition: &str, sample: &str) -> Option<f64> {
    exposition.lines().find_map(|line| {
        line.strip_prefix(sample)?
            .strip_prefix(' ')?
            .split(' ')
            .next()?
            .parse()
            .ok()
    })
}

/// Peak resident set size of this process, in bytes (`VmHWM` of `/proc/self/status`), for
/// the bounded-memory tests (each in its own test binary, so the peak is its own).
pub fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kb * 1024
}

/// Builds a router over the given `host:port` endpoints.
///
/// Health probes are off unless `settings.health` asks for them (differs from the default):
/// the fake backends then see only the test's own calls.
pub async fn router(
    endpoints: &[String],
    policy: Arc<dyn sc_backend_api::LoadPolicy>,
    mut settings: RouterSettings,
) -> Router {
    if settings.health == sc_router::HealthSettings::default() {
        settings.health.interval = std::time::Duration::ZERO;
    }
    let spec = PredefinedSpec {
        endpoints: endpoints
            .iter()
            .map(|u| EndpointSpec::new(u.clone()))
            .collect(),
    };
    Router::builder()
        .provider(Arc::new(PredefinedProvider::new("fake", &spec).unwrap()))
        .policy(policy)
        .settings(settings)
        .build()
        .await
        .unwrap()
}

/// Whether `SC_TEST_TRANSPORT=tower` asks the tests to serve the router through its tower
/// service in tonic's server instead of the relay (CI runs the router's tests both ways).
fn tower_transport() -> bool {
    std::env::var("SC_TEST_TRANSPORT").is_ok_and(|t| t == "tower")
}

/// Serves the router on a free port through its HTTP/2 relay, as the proxy binary does (or
/// through its tower service, with `SC_TEST_TRANSPORT=tower`).
pub async fn spawn_proxy(router: &Router) -> SocketAddr {
    if tower_transport() {
        return spawn_tower_proxy(router).await;
    }
    spawn_relay(router.relay(None)).await
}

/// Serves `relay` on a free port, one task per connection.
pub async fn spawn_relay(relay: sc_router::relay::Relay) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, peer)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let relay = relay.clone();
            tokio::spawn(async move {
                let info = sc_router::relay::ConnectionInfo {
                    peer: Some(peer),
                    certificate: None,
                };
                let _ = relay
                    .serve(stream, info, std::future::pending::<()>())
                    .await;
            });
        }
    });
    addr
}

/// Serves the router on a free port as an embedder does: its tower service in tonic's server.
pub async fn spawn_tower_proxy(router: &Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        Server::builder()
            .add_service(router.service())
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    addr
}

pub type Client = pb::spark_connect_service_client::SparkConnectServiceClient<Channel>;

pub async fn client(addr: SocketAddr) -> Client {
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    Client::new(channel)
        .max_decoding_message_size(usize::MAX)
        .max_encoding_message_size(usize::MAX)
}

pub fn ctx(user: &str) -> Option<pb::UserContext> {
    Some(pb::UserContext {
        user_id: user.into(),
        user_name: user.into(),
        extensions: vec![],
    })
}

/// An AddArtifacts message carrying one artifact of `size` bytes.
pub fn artifact_req(session: &str, user: &str, name: &str, size: usize) -> pb::AddArtifactsRequest {
    pb::AddArtifactsRequest {
        session_id: session.into(),
        user_context: ctx(user),
        payload: Some(pb::add_artifacts_request::Payload::Batch(
            pb::add_artifacts_request::Batch {
                artifacts: vec![pb::add_artifacts_request::SingleChunkArtifact {
                    name: name.into(),
                    data: Some(pb::add_artifacts_request::ArtifactChunk {
                        data: vec![7u8; size].into(),
                        crc: 0,
                    }),
                }],
            },
        )),
        ..Default::default()
    }
}

pub fn config_req(session: &str, user: &str) -> pb::ConfigRequest {
    pb::ConfigRequest {
        session_id: session.into(),
        user_context: ctx(user),
        operation: Some(pb::config_request::Operation {
            op_type: Some(pb::config_request::operation::OpType::GetAll(
                pb::config_request::GetAll { prefix: None },
            )),
        }),
        ..Default::default()
    }
}

pub fn sql_plan(query: &str) -> Option<pb::Plan> {
    Some(pb::Plan {
        op_type: Some(pb::plan::OpType::Root(pb::Relation {
            common: None,
            rel_type: Some(pb::relation::RelType::Sql(pb::Sql {
                query: query.into(),
                ..Default::default()
            })),
        })),
    })
}

pub fn execute_req(session: &str, user: &str, op: &str, query: &str) -> pb::ExecutePlanRequest {
    pb::ExecutePlanRequest {
        session_id: session.into(),
        user_context: ctx(user),
        operation_id: Some(op.into()),
        plan: sql_plan(query),
        ..Default::default()
    }
}

/// Which fake answered a Config call (the fake puts its name in the response).
pub async fn backend_of(client: &mut Client, session: &str, user: &str) -> String {
    let resp = client
        .config(config_req(session, user))
        .await
        .unwrap()
        .into_inner();
    resp.server_side_session_id
}

/// Serves the router's relay with authentication, as the proxy binary does (or its tower
/// service behind the authentication layer, with `SC_TEST_TRANSPORT=tower`).
pub async fn spawn_proxy_with_auth(router: &Router, auth: sc_auth::AuthSettings) -> SocketAddr {
    if tower_transport() {
        return spawn_tower_proxy_with_auth(router, auth).await;
    }
    let authenticator = Arc::new(sc_auth::Authenticator::new(&auth).unwrap());
    spawn_relay(router.relay(Some(authenticator))).await
}

/// Serves the router's tower service behind the authentication layer, as an embedder does.
pub async fn spawn_tower_proxy_with_auth(
    router: &Router,
    auth: sc_auth::AuthSettings,
) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let layer = sc_auth::GrpcAuthLayer::new(Arc::new(sc_auth::Authenticator::new(&auth).unwrap()));
    tokio::spawn(
        Server::builder()
            .layer(layer)
            .add_service(router.service())
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    addr
}

/// A router over backends that carry pre-shared tokens.
pub async fn router_with_tokens(endpoints: &[(String, &str)], admin_group: Option<&str>) -> Router {
    let backends: Vec<_> = endpoints
        .iter()
        .enumerate()
        .map(|(i, (url, token))| {
            sc_backend_api::Backend::new(
                sc_backend_api::BackendId::new(format!("backend-{i}")),
                format!("http://{url}").parse().unwrap(),
            )
            .with_auth_token(*token)
        })
        .collect();
    let mut settings = RouterSettings::default();
    // No health probes: the fake backends see only the test's own calls.
    settings.health.interval = std::time::Duration::ZERO;
    Router::builder()
        .provider(Arc::new(StaticBackends(backends)))
        .admin_group(admin_group.map(str::to_owned))
        .settings(settings)
        .build()
        .await
        .unwrap()
}

struct StaticBackends(Vec<sc_backend_api::Backend>);

#[tonic::async_trait]
impl sc_backend_api::BackendProvider for StaticBackends {
    fn name(&self) -> &str {
        "static"
    }
    async fn list(&self) -> Result<Vec<sc_backend_api::Backend>, sc_backend_api::ProviderError> {
        Ok(self.0.clone())
    }
}
