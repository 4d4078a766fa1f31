//! The SDK's transport against in-process fake servers: connection-string metadata and the user
//! agent on every call, ReleaseExecute and ReleaseSession, retries with backoff (and no retry of
//! a non-transient error), the configurable message limit, and TLS with a given CA (also the
//! automatic TLS for a token sent to a non-loopback host).
//!
//! The calls each fake received are recorded by `sc-testkit`'s fake backend. The "scripted"
//! fake below wraps it: it answers ExecutePlan with a real Arrow result ending in
//! `ResultComplete`, AnalyzePlan with a version, and can fail calls on purpose.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow_array::{Array, BinaryArray, Int64Array, RecordBatch};
use futures_util::Stream;
use sc_client::proto as pb;
use sc_client::proto::spark_connect_service_server::{
    SparkConnectService, SparkConnectServiceServer,
};
use sc_client::{Error, RESERVED_KEYS, RetryPolicy, SparkSession};
use sc_testkit::tls::TestCa;
use sc_testkit::{Fake, FakeState, Seen};
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Identity, Server, ServerTlsConfig};
use tonic::{Code, Request, Response, Status, Streaming};

// === the scripted fake ===

/// What the scripted fake does on purpose, and what it saw beyond the recorded metadata.
#[derive(Default)]
struct Script {
    /// How many more Config/ExecutePlan calls are answered UNAVAILABLE before they are served.
    unavailable: AtomicUsize,
    /// When set, every Config/ExecutePlan call fails with this (non-transient) code.
    fail_with: Mutex<Option<Code>>,
    /// When non-zero, ExecutePlan returns one row holding a binary value of this many bytes
    /// (otherwise the `id` values 0, 1, 2).
    big: AtomicUsize,
    /// Every call with the time it arrived, failed ones included.
    attempts: Mutex<Vec<(&'static str, Instant)>>,
    /// The `client_type` field of every request that has one.
    client_types: Mutex<Vec<(&'static str, String)>>,
}

impl Script {
    fn attempts(&self, method: &str) -> Vec<Instant> {
        self.attempts
            .lock()
            .unwrap()
            .iter()
            .filter(|(m, _)| *m == method)
            .map(|(_, t)| *t)
            .collect()
    }
}

#[derive(Clone)]
struct Scripted {
    /// sc-testkit's fake: records each call (method, session, user, metadata) and answers the
    /// calls this wrapper does not change.
    fake: Fake,
    script: Arc<Script>,
}

type ExecStream = Pin<Box<dyn Stream<Item = Result<pb::ExecutePlanResponse, Status>> + Send>>;

impl Scripted {
    fn gate(&self, method: &'static str, client_type: Option<&String>) -> Result<(), Status> {
        self.script
            .attempts
            .lock()
            .unwrap()
            .push((method, Instant::now()));
        if let Some(ct) = client_type {
            self.script
                .client_types
                .lock()
                .unwrap()
                .push((method, ct.clone()));
        }
        if !matches!(method, "Config" | "ExecutePlan") {
            return Ok(());
        }
        if let Some(code) = *self.script.fail_with.lock().unwrap() {
            return Err(Status::new(code, "scripted failure"));
        }
        if self
            .script
            .unavailable
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(Status::unavailable(
                "scripted: the server is busy, try again",
            ));
        }
        Ok(())
    }

    fn result_batch(&self) -> RecordBatch {
        let big = self.script.big.load(Ordering::SeqCst);
        if big > 0 {
            let value = vec![7u8; big];
            let col = BinaryArray::from_vec(vec![value.as_slice()]);
            RecordBatch::try_from_iter([("blob", Arc::new(col) as _)]).unwrap()
        } else {
            let col = Int64Array::from(vec![0i64, 1, 2]);
            RecordBatch::try_from_iter([("id", Arc::new(col) as _)]).unwrap()
        }
    }
}

fn ipc(batch: &RecordBatch) -> bytes::Bytes {
    let mut buf = Vec::new();
    {
        let mut w = arrow_ipc::writer::StreamWriter::try_new(&mut buf, &batch.schema()).unwrap();
        w.write(batch).unwrap();
        w.finish().unwrap();
    }
    bytes::Bytes::from(buf)
}

#[tonic::async_trait]
impl SparkConnectService for Scripted {
    type ExecutePlanStream = ExecStream;
    type ReattachExecuteStream = ExecStream;

    async fn execute_plan(
        &self,
        request: Request<pb::ExecutePlanRequest>,
    ) -> Result<Response<ExecStream>, Status> {
        self.gate("ExecutePlan", request.get_ref().client_type.as_ref())?;
        let session_id = request.get_ref().session_id.clone();
        let operation_id = request.get_ref().operation_id.clone().unwrap_or_default();
        // Recorded by the fake; its own answer (no result, no ResultComplete) is replaced.
        drop(self.fake.execute_plan(request).await?);
        let batch = self.result_batch();
        let ssid = self.fake.0.ssid();
        let response = |i: usize,
                        t: pb::execute_plan_response::ResponseType|
         -> Result<pb::ExecutePlanResponse, Status> {
            Ok(pb::ExecutePlanResponse {
                session_id: session_id.clone(),
                server_side_session_id: ssid.clone(),
                operation_id: operation_id.clone(),
                response_id: format!("r{i}"),
                response_type: Some(t),
                ..Default::default()
            })
        };
        use pb::execute_plan_response as epr;
        let responses = vec![
            response(
                0,
                epr::ResponseType::ArrowBatch(epr::ArrowBatch {
                    row_count: batch.num_rows() as i64,
                    data: ipc(&batch),
                    start_offset: None,
                    chunk_index: None,
                    num_chunks_in_batch: None,
                }),
            ),
            response(1, epr::ResponseType::ResultComplete(epr::ResultComplete {})),
        ];
        Ok(Response::new(Box::pin(futures_util::stream::iter(
            responses,
        ))))
    }

    async fn analyze_plan(
        &self,
        request: Request<pb::AnalyzePlanRequest>,
    ) -> Result<Response<pb::AnalyzePlanResponse>, Status> {
        self.gate("AnalyzePlan", request.get_ref().client_type.as_ref())?;
        let mut resp = self.fake.analyze_plan(request).await?;
        resp.get_mut().result = Some(pb::analyze_plan_response::Result::SparkVersion(
            pb::analyze_plan_response::SparkVersion {
                version: "4.2.1-scripted".into(),
            },
        ));
        Ok(resp)
    }

    async fn config(
        &self,
        request: Request<pb::ConfigRequest>,
    ) -> Result<Response<pb::ConfigResponse>, Status> {
        self.gate("Config", request.get_ref().client_type.as_ref())?;
        self.fake.config(request).await
    }

    async fn add_artifacts(
        &self,
        request: Request<Streaming<pb::AddArtifactsRequest>>,
    ) -> Result<Response<pb::AddArtifactsResponse>, Status> {
        self.gate("AddArtifacts", None)?;
        self.fake.add_artifacts(request).await
    }

    async fn artifact_status(
        &self,
        request: Request<pb::ArtifactStatusesRequest>,
    ) -> Result<Response<pb::ArtifactStatusesResponse>, Status> {
        self.gate("ArtifactStatus", request.get_ref().client_type.as_ref())?;
        self.fake.artifact_status(request).await
    }

    async fn interrupt(
        &self,
        request: Request<pb::InterruptRequest>,
    ) -> Result<Response<pb::InterruptResponse>, Status> {
        self.gate("Interrupt", request.get_ref().client_type.as_ref())?;
        self.fake.interrupt(request).await
    }

    async fn reattach_execute(
        &self,
        request: Request<pb::ReattachExecuteRequest>,
    ) -> Result<Response<ExecStream>, Status> {
        self.gate("ReattachExecute", request.get_ref().client_type.as_ref())?;
        self.fake.reattach_execute(request).await
    }

    async fn release_execute(
        &self,
        request: Request<pb::ReleaseExecuteRequest>,
    ) -> Result<Response<pb::ReleaseExecuteResponse>, Status> {
        self.gate("ReleaseExecute", request.get_ref().client_type.as_ref())?;
        self.fake.release_execute(request).await
    }

    async fn release_session(
        &self,
        request: Request<pb::ReleaseSessionRequest>,
    ) -> Result<Response<pb::ReleaseSessionResponse>, Status> {
        self.gate("ReleaseSession", request.get_ref().client_type.as_ref())?;
        self.fake.release_session(request).await
    }

    async fn fetch_error_details(
        &self,
        request: Request<pb::FetchErrorDetailsRequest>,
    ) -> Result<Response<pb::FetchErrorDetailsResponse>, Status> {
        self.gate("FetchErrorDetails", request.get_ref().client_type.as_ref())?;
        self.fake.fetch_error_details(request).await
    }

    async fn clone_session(
        &self,
        request: Request<pb::CloneSessionRequest>,
    ) -> Result<Response<pb::CloneSessionResponse>, Status> {
        self.gate("CloneSession", request.get_ref().client_type.as_ref())?;
        self.fake.clone_session(request).await
    }

    async fn get_status(
        &self,
        request: Request<pb::GetStatusRequest>,
    ) -> Result<Response<pb::GetStatusResponse>, Status> {
        self.gate("GetStatus", request.get_ref().client_type.as_ref())?;
        self.fake.get_status(request).await
    }
}

struct Running {
    addr: SocketAddr,
    seen: Arc<FakeState>,
    script: Arc<Script>,
}

/// Serves a scripted fake on `ip` (a free port), over TLS when an identity (cert, key) is given.
async fn spawn_scripted_on(ip: IpAddr, tls: Option<(&str, &str)>, script: Script) -> Running {
    let listener = tokio::net::TcpListener::bind(SocketAddr::new(ip, 0))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(FakeState {
        name: "scripted".into(),
        ..Default::default()
    });
    let script = Arc::new(script);
    let svc = SparkConnectServiceServer::new(Scripted {
        fake: Fake(seen.clone()),
        script: script.clone(),
    });
    let mut server = Server::builder();
    if let Some((cert, key)) = tls {
        server = server
            .tls_config(ServerTlsConfig::new().identity(Identity::from_pem(cert, key)))
            .unwrap();
    }
    tokio::spawn(
        server
            .add_service(svc)
            .serve_with_incoming(TcpIncoming::from(listener)),
    );
    Running { addr, seen, script }
}

async fn spawn_scripted(script: Script) -> Running {
    spawn_scripted_on(IpAddr::from([127, 0, 0, 1]), None, script).await
}

/// A retry policy with short, predictable waits: 40 ms, 80 ms, 160 ms, ...
fn quick_retries(max_retries: u32) -> RetryPolicy {
    RetryPolicy {
        max_retries,
        initial_backoff: Duration::from_millis(40),
        max_backoff: Duration::from_secs(2),
        multiplier: 2.0,
        jitter: Duration::ZERO,
    }
}

fn header<'a>(call: &'a Seen, key: &str) -> Option<&'a str> {
    call.metadata.get(key).and_then(|v| v.to_str().ok())
}

/// Waits until `cond` holds (for calls the client sends in the background).
async fn eventually(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn ids(batch: &RecordBatch) -> Vec<i64> {
    batch
        .column(0)
        .as_any()
        .downcast_ref::<Int64Array>()
        .unwrap()
        .values()
        .to_vec()
}

// === metadata ===

const SESSION: &str = "0d7c6e5a-3b1f-4c2e-9a8d-5f6e7d8c9b0a";

#[tokio::test]
async fn connection_string_keys_and_user_agent_travel_with_every_call() {
    let fake = spawn_scripted(Script::default()).await;
    let spark = SparkSession::builder()
        .remote(format!(
            "sc://{}/;x-custom=v%201;token=secret;user_id=alice;user_agent=my-agent;session_id={SESSION}",
            fake.addr
        ))
        .header("x-extra", "e")
        .build()
        .await
        .unwrap();

    spark
        .conf()
        .set("spark.sql.shuffle.partitions", "3")
        .await
        .unwrap(); // Config
    assert_eq!(spark.version().await.unwrap(), "4.2.1-scripted"); // AnalyzePlan
    let batch = spark.range(0, 3).collect_batch().await.unwrap(); // ExecutePlan
    assert_eq!(ids(&batch), [0, 1, 2]);
    // The client releases what it consumed (ReleaseUntil / ReleaseAll), in the background.
    eventually("ReleaseExecute", || fake.seen.count("ReleaseExecute") >= 1).await;
    spark.interrupt_all().await.unwrap(); // Interrupt
    spark.stop().await.unwrap(); // ReleaseSession

    let calls = fake.seen.seen();
    for method in [
        "Config",
        "AnalyzePlan",
        "ExecutePlan",
        "ReleaseExecute",
        "Interrupt",
        "ReleaseSession",
    ] {
        assert!(
            calls.iter().any(|c| c.method == method),
            "no {method} call was received: {calls:?}"
        );
    }
    for c in &calls {
        let m = c.method;
        assert_eq!(header(c, "x-custom"), Some("v 1"), "{m}: {:?}", c.metadata);
        assert_eq!(header(c, "x-extra"), Some("e"), "{m}: {:?}", c.metadata);
        assert_eq!(
            header(c, "authorization"),
            Some("Bearer secret"),
            "{m}: {:?}",
            c.metadata
        );
        for key in RESERVED_KEYS {
            assert!(
                c.metadata.get(key).is_none(),
                "{m}: reserved key {key} was sent as metadata"
            );
        }
        assert_eq!(c.session_id, SESSION, "{m}");
        assert_eq!(c.user_id, "alice", "{m}");
    }
    // The user agent travels in every request's client_type, as PySpark sends it.
    let types = fake.script.client_types.lock().unwrap().clone();
    assert!(types.len() >= calls.len(), "{types:?}");
    for (m, t) in &types {
        assert!(
            t.starts_with("my-agent ") && t.contains(" sc-client/"),
            "{m}: client_type {t:?}"
        );
    }
}

// === ReleaseSession ===

#[tokio::test]
async fn stop_sends_release_session() {
    let (addr, seen) = sc_testkit::spawn_backend("fake").await;
    let spark = SparkSession::connect(&format!("sc://{addr}/;user_id=bob"))
        .await
        .unwrap();
    assert_eq!(
        spark.conf().get("any.key").await.unwrap().as_deref(),
        Some("fake")
    );
    assert_eq!(seen.count("ReleaseSession"), 0);
    spark.stop().await.unwrap();
    let released: Vec<Seen> = seen
        .seen()
        .into_iter()
        .filter(|c| c.method == "ReleaseSession")
        .collect();
    assert_eq!(released.len(), 1, "{released:?}");
    assert_eq!(released[0].session_id, spark.session_id());
    assert_eq!(released[0].user_id, "bob");
    // Stopping again sends nothing, and a stopped session makes no calls.
    spark.stop().await.unwrap();
    assert!(matches!(
        spark.conf().get("any.key").await,
        Err(Error::SessionStopped)
    ));
    let after = seen.seen();
    assert_eq!(after.len(), 2, "{after:?}");
}

// === retries ===

#[tokio::test]
async fn transient_unavailable_is_retried_with_backoff_then_succeeds() {
    let fake = spawn_scripted(Script {
        unavailable: AtomicUsize::new(3),
        ..Default::default()
    })
    .await;
    let spark = SparkSession::builder()
        .remote(format!("sc://{}", fake.addr))
        .retry_policy(quick_retries(5))
        .build()
        .await
        .unwrap();
    assert_eq!(
        spark.conf().get("k").await.unwrap().as_deref(),
        Some("scripted")
    );
    let tries = fake.script.attempts("Config");
    assert_eq!(tries.len(), 4, "three failures, then the answer");
    // Each wait is at least the policy's backoff, and they grow: 40, 80, 160 ms.
    for (i, pair) in tries.windows(2).enumerate() {
        let gap = pair[1] - pair[0];
        let want = Duration::from_millis(40 << i);
        assert!(
            gap + Duration::from_millis(5) >= want,
            "retry {i} came after {gap:?}, the backoff is {want:?}"
        );
    }
    assert_eq!(
        fake.seen.count("Config"),
        1,
        "only the served call is recorded"
    );

    // An execution that the server refuses twice is sent again and returns its rows.
    fake.script.unavailable.store(2, Ordering::SeqCst);
    let batch = spark.range(0, 3).collect_batch().await.unwrap();
    assert_eq!(ids(&batch), [0, 1, 2]);
    assert_eq!(fake.script.attempts("ExecutePlan").len(), 3);
}

#[tokio::test]
async fn retries_stop_at_the_policy_limit() {
    let fake = spawn_scripted(Script {
        unavailable: AtomicUsize::new(100),
        ..Default::default()
    })
    .await;
    let spark = SparkSession::builder()
        .remote(format!("sc://{}", fake.addr))
        .retry_policy(quick_retries(2))
        .build()
        .await
        .unwrap();
    let err = spark.conf().get("k").await.unwrap_err();
    assert_eq!(err.grpc_code(), Some(Code::Unavailable), "{err}");
    assert_eq!(
        fake.script.attempts("Config").len(),
        3,
        "one try and two retries"
    );
}

#[tokio::test]
async fn non_transient_errors_are_not_retried() {
    for code in [
        Code::PermissionDenied,
        Code::InvalidArgument,
        Code::Internal,
    ] {
        let fake = spawn_scripted(Script {
            fail_with: Mutex::new(Some(code)),
            ..Default::default()
        })
        .await;
        let spark = SparkSession::builder()
            .remote(format!("sc://{}", fake.addr))
            .retry_policy(quick_retries(5))
            .build()
            .await
            .unwrap();
        let err = spark.conf().get("k").await.unwrap_err();
        assert_eq!(err.grpc_code(), Some(code), "{err}");
        assert!(err.to_string().contains("scripted failure"), "{err}");
        let err = spark.range(0, 3).collect().await.unwrap_err();
        assert_eq!(err.grpc_code(), Some(code), "{err}");
        assert_eq!(
            fake.script.attempts("Config").len(),
            1,
            "{code:?} was retried"
        );
        assert_eq!(
            fake.script.attempts("ExecutePlan").len(),
            1,
            "{code:?} was retried"
        );
    }
}

#[tokio::test]
async fn a_server_that_comes_up_late_is_reached_through_retries() {
    let port = sc_testkit::dead_port().await;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let spark = SparkSession::builder()
        .remote(format!("sc://{addr}"))
        .retry_policy(RetryPolicy {
            max_retries: 10,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(500),
            multiplier: 2.0,
            jitter: Duration::ZERO,
        })
        .build()
        .await
        .unwrap();
    let late = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(600)).await;
        sc_testkit::spawn_backend_at("late", addr).await
    });
    let started = Instant::now();
    let value = spark.conf().get("k").await.unwrap();
    assert_eq!(value.as_deref(), Some("late"));
    assert!(started.elapsed() >= Duration::from_millis(600));
    let state = late.await.unwrap();
    assert_eq!(state.count("Config"), 1);
}

// === message limit ===

fn blob_len(batch: &RecordBatch) -> usize {
    let col = batch
        .column(0)
        .as_any()
        .downcast_ref::<BinaryArray>()
        .unwrap();
    assert_eq!(col.len(), 1);
    col.value(0).len()
}

#[tokio::test]
async fn a_message_over_the_configured_limit_is_a_clear_error() {
    const BIG: usize = 2_000_000;
    let fake = spawn_scripted(Script {
        big: AtomicUsize::new(BIG),
        ..Default::default()
    })
    .await;
    let remote = format!("sc://{}", fake.addr);

    // The default limit (128 MiB) takes the 2 MB response.
    let spark = SparkSession::connect(&remote).await.unwrap();
    let batch = spark.range(0, 1).collect_batch().await.unwrap();
    assert_eq!(blob_len(&batch), BIG);

    // A 1 MiB limit refuses it with an error that says so.
    let small = SparkSession::builder()
        .remote(remote.clone())
        .max_message_size(1 << 20)
        .build()
        .await
        .unwrap();
    let err = tokio::time::timeout(Duration::from_secs(30), small.range(0, 1).collect())
        .await
        .expect("the over-limit response hung the client")
        .unwrap_err();
    assert_eq!(err.grpc_code(), Some(Code::OutOfRange), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("message length too large") && msg.contains("1048576"),
        "{msg}"
    );
    // The session is still usable for calls within the limit.
    assert!(small.conf().get("k").await.is_ok());

    // A request over the limit is refused before it is sent, with the sizes.
    let before = fake.script.attempts("ExecutePlan").len();
    let df = small.create_dataframe(&[df_batch(BIG)]).unwrap();
    let err = df.collect().await.unwrap_err();
    assert!(
        matches!(err, Error::MessageTooLarge { size, limit: 1_048_576 } if size > BIG),
        "{err:?}"
    );
    assert!(err.to_string().contains("message limit"), "{err}");
    assert_eq!(fake.script.attempts("ExecutePlan").len(), before);
    // Analysing the same plan is refused the same way.
    let err = df.schema().await.unwrap_err();
    assert!(matches!(err, Error::MessageTooLarge { .. }), "{err:?}");
    // The default limit sends it.
    let df = spark.create_dataframe(&[df_batch(BIG)]).unwrap();
    assert_eq!(blob_len(&df.collect_batch().await.unwrap()), BIG);
    assert_eq!(fake.script.attempts("ExecutePlan").len(), before + 1);
}

fn df_batch(len: usize) -> RecordBatch {
    let value = vec![1u8; len];
    RecordBatch::try_from_iter([(
        "b",
        Arc::new(BinaryArray::from_vec(vec![value.as_slice()])) as _,
    )])
    .unwrap()
}

// === TLS ===

#[tokio::test]
async fn tls_with_a_given_ca() {
    let ca = TestCa::new("sc-client test CA");
    let (cert, key) = ca.leaf("localhost", &["localhost", "127.0.0.1"]);
    let (addr, seen) = sc_testkit::spawn_backend_tls("tls", &cert, &key).await;
    let remote = format!("sc://localhost:{}/;use_ssl=true", addr.port());

    // The CA given as PEM.
    let spark = SparkSession::builder()
        .remote(remote.clone())
        .ca_certificate_pem(ca.pem.clone())
        .build()
        .await
        .unwrap();
    assert_eq!(spark.conf().get("k").await.unwrap().as_deref(), Some("tls"));

    // The CA given as a file, and an IP address as the server name.
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &ca.pem).unwrap();
    let spark = SparkSession::builder()
        .remote(format!("sc://127.0.0.1:{}/;use_ssl=true", addr.port()))
        .ca_certificate_file(&ca_file)
        .build()
        .await
        .unwrap();
    assert_eq!(spark.conf().get("k").await.unwrap().as_deref(), Some("tls"));
    assert_eq!(seen.count("Config"), 2);

    // Without the CA the server's certificate is not trusted: an error, and no call arrives.
    let untrusted = SparkSession::builder()
        .remote(remote.clone())
        .retry_policy(RetryPolicy::none())
        .build()
        .await
        .unwrap();
    let err = untrusted.conf().get("k").await.unwrap_err();
    assert!(err.grpc_code().is_some(), "{err}");
    // Plaintext to a TLS server fails too.
    let plain = SparkSession::builder()
        .remote(format!("sc://localhost:{}", addr.port()))
        .retry_policy(RetryPolicy::none())
        .build()
        .await
        .unwrap();
    assert!(plain.conf().get("k").await.is_err());
    assert_eq!(seen.count("Config"), 2);

    // A CA file that does not exist is a typed error when building.
    let missing = SparkSession::builder()
        .remote(remote)
        .ca_certificate_file(dir.path().join("missing.pem"))
        .build()
        .await;
    assert!(matches!(missing, Err(Error::Io(_))), "{missing:?}");
}

/// This machine's address on its default route, if it has one (nothing is sent).
fn non_loopback_ip() -> Option<IpAddr> {
    let sock = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    sock.connect("192.0.2.1:9").ok()?;
    let ip = sock.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

#[tokio::test]
async fn a_token_to_a_non_loopback_host_goes_over_tls_only() {
    let Some(ip) = non_loopback_ip() else {
        eprintln!("skipped: this machine has no non-loopback address");
        return;
    };
    // A plaintext server on that address never sees the token: the client insists on TLS.
    let plain = spawn_scripted_on(ip, None, Script::default()).await;
    let spark = SparkSession::builder()
        .remote(format!("sc://{}/;token=secret", plain.addr))
        .retry_policy(RetryPolicy::none())
        .build()
        .await
        .unwrap();
    assert!(spark.connection().uses_tls());
    assert!(spark.conf().get("k").await.is_err());
    assert!(plain.script.attempts.lock().unwrap().is_empty());
    assert!(plain.seen.seen().is_empty());

    // A TLS server there (trusted through the given CA) receives it, with no use_ssl needed.
    let ca = TestCa::new("sc-client test CA");
    let ip_name = ip.to_string();
    let (cert, key) = ca.leaf(&ip_name, &[ip_name.as_str()]);
    let tls = spawn_scripted_on(ip, Some((&cert, &key)), Script::default()).await;
    let spark = SparkSession::builder()
        .remote(format!("sc://{}/;token=secret", tls.addr))
        .ca_certificate_pem(ca.pem.clone())
        .retry_policy(RetryPolicy::none())
        .build()
        .await
        .unwrap();
    assert_eq!(
        spark.conf().get("k").await.unwrap().as_deref(),
        Some("scripted")
    );
    let calls = tls.seen.seen();
    assert_eq!(calls.len(), 1);
    assert_eq!(header(&calls[0], "authorization"), Some("Bearer secret"));
}

/// A server whose execution streams keep ending without ResultComplete or any new response
/// (sc-testkit's fake does exactly that) gets a bounded number of reattaches with backoff, then
/// a protocol error: never a busy loop.
#[tokio::test]
async fn a_stream_that_never_completes_ends_in_an_error_not_a_busy_loop() {
    let (addr, seen) = sc_testkit::spawn_backend("fake").await;
    let spark = SparkSession::builder()
        .remote(format!("sc://{addr}/;user_id=bob"))
        .retry_policy(quick_retries(3))
        .build()
        .await
        .unwrap();
    let started = Instant::now();
    let result = tokio::time::timeout(Duration::from_secs(20), spark.range(0, 3).collect())
        .await
        .expect("collect() kept reattaching");
    match result {
        Err(Error::Protocol(message)) => {
            assert!(message.contains("without a new response"), "{message}")
        }
        other => panic!("expected a protocol error, got {other:?}"),
    }
    let reattaches = seen.count("ReattachExecute");
    assert!(
        (1..=4).contains(&reattaches),
        "{reattaches} reattaches for a stream that never completes"
    );
    // Backoff between the empty streams: 40 + 80 ms at least.
    assert!(started.elapsed() >= Duration::from_millis(120));
}
