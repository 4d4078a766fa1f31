//! [`SparkSession`]: the entry point, its builder, runtime configuration, tags, interrupts and
//! artifacts.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use arrow_array::RecordBatch;
use bytes::Bytes;
use sc_proto::spark::connect as pb;
use sc_proto::spark::connect::spark_connect_service_client::SparkConnectServiceClient;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};

use crate::catalog::Catalog;
use crate::client::{
    DEFAULT_MAX_MESSAGE_SIZE, Headers, Progress, ProgressHandler, RetryPolicy, Shared, SparkClient,
};
use crate::column::Column;
use crate::conn::ConnectionString;
use crate::dataframe::DataFrame;
use crate::error::{Error, Result};
use crate::reader::DataFrameReader;

/// The environment variable read when no connection string is given.
pub const SPARK_REMOTE_ENV: &str = "SPARK_REMOTE";

// === SparkSessionBuilder ===

/// Builds a [`SparkSession`].
///
/// ```no_run
/// # async fn run() -> sc_client::Result<()> {
/// use sc_client::SparkSession;
/// let spark = SparkSession::builder()
///     .remote("sc://localhost:15002/;user_id=alice;x-team=data")
///     .build()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default)]
pub struct SparkSessionBuilder {
    remote: Option<String>,
    ca_pem: Option<Vec<u8>>,
    ca_file: Option<std::path::PathBuf>,
    max_message_size: Option<usize>,
    retry: Option<RetryPolicy>,
    connect_timeout: Option<Duration>,
    headers: BTreeMap<String, String>,
}

impl SparkSessionBuilder {
    /// The connection string, `sc://host:port/;key=value;...`. Without one, `SPARK_REMOTE` is
    /// read, then `sc://localhost` is used.
    pub fn remote(mut self, remote: impl Into<String>) -> Self {
        self.remote = Some(remote.into());
        self
    }

    /// Trusts this PEM certificate authority (in addition to the system roots) for TLS.
    pub fn ca_certificate_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca_pem = Some(pem.into());
        self
    }

    /// Trusts the PEM certificate authority in this file for TLS (read at build time).
    pub fn ca_certificate_file(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.ca_file = Some(path.into());
        self
    }

    /// The largest gRPC message accepted or sent, 128 MiB by default. A larger response fails
    /// with an [`Error::Rpc`] of code `OutOfRange`; a larger request is not sent and fails with
    /// [`Error::MessageTooLarge`].
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.max_message_size = Some(bytes);
        self
    }

    /// How transient failures are retried.
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry = Some(policy);
        self
    }

    /// How long establishing a connection may take (default 30 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = Some(timeout);
        self
    }

    /// An extra header sent on every call (as a connection-string parameter would be).
    pub fn header(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.insert(key.into(), value.into());
        self
    }

    /// Builds the session. The connection is made lazily, on the first call.
    pub async fn build(self) -> Result<SparkSession> {
        let remote = match self.remote {
            Some(r) => r,
            None => std::env::var(SPARK_REMOTE_ENV).unwrap_or_else(|_| "sc://localhost".into()),
        };
        let mut conn = ConnectionString::parse(&remote)?;
        if conn.token.is_none() {
            conn.token = std::env::var("SPARK_CONNECT_AUTHENTICATE_TOKEN").ok();
        }

        let mut endpoint = Endpoint::from_shared(conn.endpoint_uri())
            .map_err(|e| Error::InvalidConnectionString(e.to_string()))?
            .connect_timeout(self.connect_timeout.unwrap_or(Duration::from_secs(30)))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(30))
            .keep_alive_while_idle(true);
        if conn.uses_tls() {
            let mut tls = ClientTlsConfig::new()
                .with_native_roots()
                .domain_name(conn.host.clone());
            let pem = match (&self.ca_pem, &self.ca_file) {
                (Some(p), _) => Some(p.clone()),
                (None, Some(f)) => Some(tokio::fs::read(f).await?),
                (None, None) => None,
            };
            if let Some(pem) = pem {
                tls = tls.ca_certificate(Certificate::from_pem(pem));
            }
            endpoint = endpoint.tls_config(tls)?;
        }
        let channel = endpoint.connect_lazy();

        let mut pairs: Vec<(String, String)> = conn
            .metadata
            .iter()
            .chain(self.headers.iter())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if let Some(token) = &conn.token {
            pairs.push(("authorization".into(), format!("Bearer {token}")));
        }
        let headers = Headers::new(&pairs)?;
        let size = self.max_message_size.unwrap_or(DEFAULT_MAX_MESSAGE_SIZE);
        let grpc = SparkConnectServiceClient::with_interceptor(channel, headers)
            .max_decoding_message_size(size)
            .max_encoding_message_size(size);

        let user_id = conn
            .user_id
            .clone()
            .or_else(|| std::env::var("USER").ok())
            .or_else(|| std::env::var("USERNAME").ok())
            .unwrap_or_default();
        let user_agent = conn
            .user_agent
            .clone()
            .or_else(|| std::env::var("SPARK_CONNECT_USER_AGENT").ok())
            .unwrap_or_else(|| "_SPARK_CONNECT_RUST".into());
        let client_type = format!(
            "{user_agent} sc-client/{} os/{}",
            env!("CARGO_PKG_VERSION"),
            std::env::consts::OS
        );
        let session_id = conn
            .session_id
            .unwrap_or_else(uuid::Uuid::new_v4)
            .to_string();
        let shared = Shared::new(
            session_id,
            pb::UserContext {
                user_id: user_id.clone(),
                user_name: user_id,
                extensions: vec![],
            },
            client_type,
            self.retry.unwrap_or_default(),
            size,
        );
        Ok(SparkSession {
            client: SparkClient::new(grpc, shared),
            conn: Arc::new(conn),
        })
    }
}

// === SparkSession ===

/// A Spark Connect session: the entry point to DataFrames, SQL, configuration and the catalog.
///
/// Cloning is cheap and clones share the session. Calls from many tasks run concurrently: there
/// is no lock around requests.
#[derive(Clone)]
pub struct SparkSession {
    pub(crate) client: SparkClient,
    conn: Arc<ConnectionString>,
}

impl std::fmt::Debug for SparkSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SparkSession")
            .field("session_id", &self.session_id())
            .field("remote", &self.conn)
            .finish()
    }
}

impl SparkSession {
    /// A builder for a session.
    pub fn builder() -> SparkSessionBuilder {
        SparkSessionBuilder::default()
    }

    /// Connects to `remote` with default settings.
    pub async fn connect(remote: &str) -> Result<Self> {
        Self::builder().remote(remote).build().await
    }

    /// The client-side session id (a UUID).
    pub fn session_id(&self) -> &str {
        self.client.session_id()
    }

    /// The parsed connection string of this session.
    pub fn connection(&self) -> &ConnectionString {
        &self.conn
    }

    /// The server-side session id, once the server has answered a call.
    pub fn server_side_session_id(&self) -> Option<String> {
        self.client
            .shared
            .server_side_session_id
            .lock()
            .ok()
            .and_then(|g| g.clone())
    }

    /// How many times executions of this session were reattached after a cut stream.
    pub fn reattach_count(&self) -> u64 {
        self.client.shared.reattaches.load(Ordering::Relaxed)
    }

    /// A session on the same connection, with the same settings and headers, under another
    /// session id (its server-side state is whatever the server has for that id).
    pub(crate) fn sibling(&self, session_id: uuid::Uuid) -> SparkSession {
        let mut conn = (*self.conn).clone();
        conn.session_id = Some(session_id);
        SparkSession {
            client: SparkClient::new(
                self.client.grpc.clone(),
                self.client.shared.fork(session_id.to_string()),
            ),
            conn: Arc::new(conn),
        }
    }

    pub(crate) fn next_plan_id(&self) -> i64 {
        self.client.next_plan_id()
    }

    pub(crate) fn relation(&self, rel: pb::relation::RelType) -> pb::Relation {
        pb::Relation {
            common: Some(pb::RelationCommon {
                plan_id: Some(self.next_plan_id()),
                ..Default::default()
            }),
            rel_type: Some(rel),
        }
    }

    /// Runs a SQL statement now and returns its result as a DataFrame (commands such as
    /// `CREATE TABLE` take effect immediately, queries stay lazy), as PySpark does.
    pub async fn sql(&self, query: &str) -> Result<DataFrame> {
        self.sql_inner(query, Vec::new(), BTreeMap::new()).await
    }

    /// Runs a SQL statement with positional parameters (`?` markers).
    pub async fn sql_with_args(
        &self,
        query: &str,
        args: impl IntoIterator<Item = Column>,
    ) -> Result<DataFrame> {
        self.sql_inner(query, args.into_iter().collect(), BTreeMap::new())
            .await
    }

    /// Runs a SQL statement with named parameters (`:name` markers).
    pub async fn sql_with_named_args<K: Into<String>>(
        &self,
        query: &str,
        args: impl IntoIterator<Item = (K, Column)>,
    ) -> Result<DataFrame> {
        let named = args.into_iter().map(|(k, v)| (k.into(), v)).collect();
        self.sql_inner(query, Vec::new(), named).await
    }

    pub(crate) fn sql_relation(
        &self,
        query: &str,
        pos: Vec<Column>,
        named: BTreeMap<String, Column>,
    ) -> pb::Relation {
        self.relation(pb::relation::RelType::Sql(pb::Sql {
            query: query.to_string(),
            pos_arguments: pos.into_iter().map(Column::into_proto).collect(),
            named_arguments: named
                .into_iter()
                .map(|(k, v)| (k, v.into_proto()))
                .collect(),
            ..Default::default()
        }))
    }

    async fn sql_inner(
        &self,
        query: &str,
        pos: Vec<Column>,
        named: BTreeMap<String, Column>,
    ) -> Result<DataFrame> {
        let input = self.sql_relation(query, pos, named);
        let cmd = pb::command::CommandType::SqlCommand(pb::SqlCommand {
            input: Some(input.clone()),
            ..Default::default()
        });
        let responses = self.execute_command(cmd).await?;
        for r in responses {
            if let Some(pb::execute_plan_response::ResponseType::SqlCommandResult(res)) =
                r.response_type
                && let Some(mut rel) = res.relation
            {
                // A plan id of this session, as PySpark gives the result: columns taken from
                // the DataFrame (and subqueries of it) refer to it.
                rel.common.get_or_insert_with(Default::default).plan_id = Some(self.next_plan_id());
                return Ok(DataFrame::new(self.clone(), rel));
            }
        }
        Ok(DataFrame::new(self.clone(), input))
    }

    /// A DataFrame of the `id` column with values `start..end`.
    pub fn range(&self, start: i64, end: i64) -> DataFrame {
        self.range_with(Some(start), end, 1, None)
    }

    /// A DataFrame of `id` values from `start` (0 when `None`) to `end`, by `step`, in
    /// `num_partitions` partitions (the server default when `None`).
    pub fn range_with(
        &self,
        start: Option<i64>,
        end: i64,
        step: i64,
        num_partitions: Option<i32>,
    ) -> DataFrame {
        let rel = self.relation(pb::relation::RelType::Range(pb::Range {
            start: Some(start.unwrap_or(0)),
            end,
            step,
            num_partitions,
        }));
        DataFrame::new(self.clone(), rel)
    }

    /// A DataFrame reading the table or view `name`.
    pub fn table(&self, name: &str) -> DataFrame {
        self.read().table(name)
    }

    /// A reader for files and tables.
    pub fn read(&self) -> DataFrameReader {
        DataFrameReader::new(self.clone())
    }

    /// A DataFrame of local Arrow data, sent inline as an Arrow IPC stream (a `LocalRelation`).
    ///
    /// All batches must share one schema; at least one batch is needed to know it.
    pub fn create_dataframe(&self, batches: &[RecordBatch]) -> Result<DataFrame> {
        let first = batches.first().ok_or_else(|| {
            Error::InvalidArgument("create_dataframe needs at least one batch".into())
        })?;
        let mut buf = Vec::new();
        {
            let mut w = arrow_ipc::writer::StreamWriter::try_new(&mut buf, first.schema_ref())?;
            for b in batches {
                w.write(b)?;
            }
            w.finish()?;
        }
        let rel = self.relation(pb::relation::RelType::LocalRelation(pb::LocalRelation {
            data: Some(Bytes::from(buf)),
            schema: None,
        }));
        Ok(DataFrame::new(self.clone(), rel))
    }

    /// Runtime configuration of this session.
    pub fn conf(&self) -> RuntimeConfig {
        RuntimeConfig {
            session: self.clone(),
        }
    }

    /// The catalog: databases, tables, columns, functions.
    pub fn catalog(&self) -> Catalog {
        Catalog::new(self.clone())
    }

    /// The Spark version of the server.
    pub async fn version(&self) -> Result<String> {
        match self
            .client
            .analyze(pb::analyze_plan_request::Analyze::SparkVersion(
                pb::analyze_plan_request::SparkVersion {},
            ))
            .await?
        {
            pb::analyze_plan_response::Result::SparkVersion(v) => Ok(v.version),
            other => Err(Error::Protocol(format!(
                "expected a version, got {other:?}"
            ))),
        }
    }

    /// Runs a command plan and returns every response.
    pub(crate) async fn execute_command(
        &self,
        cmd: pb::command::CommandType,
    ) -> Result<Vec<pb::ExecutePlanResponse>> {
        use futures_util::StreamExt;
        let plan = pb::Plan {
            op_type: Some(pb::plan::OpType::Command(pb::Command {
                command_type: Some(cmd),
            })),
        };
        let mut stream = self.client.execute(plan)?;
        let mut out = Vec::new();
        while let Some(r) = stream.next().await {
            out.push(r?);
        }
        Ok(out)
    }

    // === tags and interrupts ===

    /// Tags every later execution of this session (until removed), so that it can be
    /// interrupted with [`interrupt_tag`](Self::interrupt_tag).
    pub fn add_tag(&self, tag: &str) -> Result<()> {
        if tag.is_empty() || tag.contains(',') {
            return Err(Error::InvalidArgument(
                "a tag must be non-empty and contain no ','".into(),
            ));
        }
        if let Ok(mut t) = self.client.shared.tags.write()
            && !t.iter().any(|x| x == tag)
        {
            t.push(tag.to_string());
        }
        Ok(())
    }

    /// Stops tagging later executions with `tag`.
    pub fn remove_tag(&self, tag: &str) {
        if let Ok(mut t) = self.client.shared.tags.write() {
            t.retain(|x| x != tag);
        }
    }

    /// The tags applied to later executions.
    pub fn tags(&self) -> Vec<String> {
        self.client
            .shared
            .tags
            .read()
            .map(|t| t.clone())
            .unwrap_or_default()
    }

    /// Removes every tag.
    pub fn clear_tags(&self) {
        if let Ok(mut t) = self.client.shared.tags.write() {
            t.clear();
        }
    }

    /// Interrupts every running execution of this session; returns the interrupted operation ids.
    pub async fn interrupt_all(&self) -> Result<Vec<String>> {
        self.client
            .interrupt(pb::interrupt_request::InterruptType::All, None)
            .await
    }

    /// Interrupts the executions carrying `tag`.
    pub async fn interrupt_tag(&self, tag: &str) -> Result<Vec<String>> {
        self.client
            .interrupt(
                pb::interrupt_request::InterruptType::Tag,
                Some(pb::interrupt_request::Interrupt::OperationTag(
                    tag.to_string(),
                )),
            )
            .await
    }

    /// Interrupts the execution with this operation id.
    pub async fn interrupt_operation(&self, operation_id: &str) -> Result<Vec<String>> {
        self.client
            .interrupt(
                pb::interrupt_request::InterruptType::OperationId,
                Some(pb::interrupt_request::Interrupt::OperationId(
                    operation_id.to_string(),
                )),
            )
            .await
    }

    /// Calls `handler` with every progress report of this session's queries.
    pub fn register_progress_handler(&self, handler: impl Fn(&Progress) + Send + Sync + 'static) {
        let h: ProgressHandler = Arc::new(handler);
        if let Ok(mut hs) = self.client.shared.progress_handlers.write() {
            hs.push(h);
        }
    }

    /// Removes every progress handler.
    pub fn clear_progress_handlers(&self) {
        if let Ok(mut hs) = self.client.shared.progress_handlers.write() {
            hs.clear();
        }
    }

    // === artifacts ===

    /// Uploads artifacts to the session: `(name, bytes)` pairs where the name says what it is
    /// (`jars/x.jar`, `files/data.txt`, `archives/a.zip`, `pyfiles/m.py`). Large artifacts are
    /// sent in chunks. Returns, per artifact, whether the server's CRC check passed.
    pub async fn add_artifacts(
        &self,
        artifacts: impl IntoIterator<Item = (String, Bytes)>,
    ) -> Result<Vec<(String, bool)>> {
        use pb::add_artifacts_request as aa;
        const CHUNK: usize = 32 * 1024;
        let mut requests = Vec::new();
        let mut batch = Vec::new();
        let mut batch_bytes = 0;
        for (name, data) in artifacts {
            if data.len() <= CHUNK {
                // Small artifacts share a request while they fit in one chunk, as in PySpark.
                if !batch.is_empty() && batch_bytes + data.len() > CHUNK {
                    requests.push(self.client.artifact_request(aa::Payload::Batch(aa::Batch {
                        artifacts: std::mem::take(&mut batch),
                    })));
                    batch_bytes = 0;
                }
                batch_bytes += data.len();
                batch.push(aa::SingleChunkArtifact {
                    name,
                    data: Some(aa::ArtifactChunk {
                        crc: i64::from(crc32(&data)),
                        data,
                    }),
                });
                continue;
            }
            if !batch.is_empty() {
                requests.push(self.client.artifact_request(aa::Payload::Batch(aa::Batch {
                    artifacts: std::mem::take(&mut batch),
                })));
                batch_bytes = 0;
            }
            let chunks: Vec<Bytes> = (0..data.len())
                .step_by(CHUNK)
                .map(|i| data.slice(i..(i + CHUNK).min(data.len())))
                .collect();
            let mut iter = chunks.into_iter();
            if let Some(first) = iter.next() {
                requests.push(self.client.artifact_request(aa::Payload::BeginChunk(
                    aa::BeginChunkedArtifact {
                        name,
                        total_bytes: data.len() as i64,
                        num_chunks: data.len().div_ceil(CHUNK) as i64,
                        initial_chunk: Some(aa::ArtifactChunk {
                            crc: i64::from(crc32(&first)),
                            data: first,
                        }),
                    },
                )));
            }
            for c in iter {
                requests.push(self.client.artifact_request(aa::Payload::Chunk(
                    aa::ArtifactChunk {
                        crc: i64::from(crc32(&c)),
                        data: c,
                    },
                )));
            }
        }
        if !batch.is_empty() {
            requests.push(
                self.client
                    .artifact_request(aa::Payload::Batch(aa::Batch { artifacts: batch })),
            );
        }
        if requests.is_empty() {
            return Ok(Vec::new());
        }
        let resp = self.client.add_artifacts(requests).await?;
        self.client.check_ssid(&resp.server_side_session_id)?;
        Ok(resp
            .artifacts
            .into_iter()
            .map(|a| (a.name, a.is_crc_successful))
            .collect())
    }

    /// Uploads local files as artifacts named `{kind}/{file name}` (kind is `jars`, `files`,
    /// `archives` or `pyfiles`).
    pub async fn add_artifact_files(
        &self,
        kind: &str,
        paths: impl IntoIterator<Item = impl AsRef<std::path::Path>>,
    ) -> Result<Vec<(String, bool)>> {
        let mut arts = Vec::new();
        for p in paths {
            let p = p.as_ref();
            let name = p.file_name().and_then(|n| n.to_str()).ok_or_else(|| {
                Error::InvalidArgument(format!("{} has no file name", p.display()))
            })?;
            arts.push((
                format!("{kind}/{name}"),
                Bytes::from(tokio::fs::read(p).await?),
            ));
        }
        self.add_artifacts(arts).await
    }

    /// Ends the session on the server (ReleaseSession). Later calls fail with
    /// [`Error::SessionStopped`]. Stopping twice is not an error.
    ///
    /// A session connected by a [`ManagedSession`](crate::ManagedSession) also deletes its
    /// proxy session.
    pub async fn stop(&self) -> Result<()> {
        if self.client.shared.stopped.load(Ordering::Acquire) {
            return Ok(());
        }
        let res = self.client.release_session().await;
        self.client.shared.stopped.store(true, Ordering::Release);
        let hook = self.client.shared.on_stop.run().await;
        res.and(hook)
    }

    /// Whether [`stop`](Self::stop) was called.
    pub fn is_stopped(&self) -> bool {
        self.client.shared.stopped.load(Ordering::Acquire)
    }
}

/// CRC-32 (IEEE), as the server checks artifact chunks with.
fn crc32(data: &[u8]) -> u32 {
    crc32fast::hash(data)
}

// === RuntimeConfig ===

/// The session's runtime configuration (`spark.conf`).
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    session: SparkSession,
}

impl RuntimeConfig {
    /// Sets `key` to `value`.
    pub async fn set(&self, key: &str, value: &str) -> Result<()> {
        use pb::config_request as cr;
        self.session
            .client
            .config(cr::operation::OpType::Set(cr::Set {
                pairs: vec![pb::KeyValue {
                    key: key.into(),
                    value: Some(value.into()),
                }],
                silent: None,
            }))
            .await?;
        Ok(())
    }

    /// The value of `key`, or `None` when it is not set and has no default. An unknown key that
    /// is not a Spark configuration is an error from the server.
    pub async fn get(&self, key: &str) -> Result<Option<String>> {
        use pb::config_request as cr;
        let resp = self
            .session
            .client
            .config(cr::operation::OpType::GetOption(cr::GetOption {
                keys: vec![key.into()],
            }))
            .await?;
        Ok(resp.pairs.into_iter().next().and_then(|kv| kv.value))
    }

    /// The value of `key`, or `default` when it is not set.
    pub async fn get_or(&self, key: &str, default: &str) -> Result<String> {
        use pb::config_request as cr;
        let resp = self
            .session
            .client
            .config(cr::operation::OpType::GetWithDefault(cr::GetWithDefault {
                pairs: vec![pb::KeyValue {
                    key: key.into(),
                    value: Some(default.into()),
                }],
            }))
            .await?;
        Ok(resp
            .pairs
            .into_iter()
            .next()
            .and_then(|kv| kv.value)
            .unwrap_or_else(|| default.to_string()))
    }

    /// Every set key and value, optionally only those starting with `prefix`.
    pub async fn get_all(&self, prefix: Option<&str>) -> Result<BTreeMap<String, String>> {
        use pb::config_request as cr;
        let resp = self
            .session
            .client
            .config(cr::operation::OpType::GetAll(cr::GetAll {
                prefix: prefix.map(str::to_string),
            }))
            .await?;
        Ok(resp
            .pairs
            .into_iter()
            .map(|kv| (kv.key, kv.value.unwrap_or_default()))
            .collect())
    }

    /// Resets `key` to its default.
    pub async fn unset(&self, key: &str) -> Result<()> {
        use pb::config_request as cr;
        self.session
            .client
            .config(cr::operation::OpType::Unset(cr::Unset {
                keys: vec![key.into()],
            }))
            .await?;
        Ok(())
    }

    /// Whether `key` can be changed at runtime.
    pub async fn is_modifiable(&self, key: &str) -> Result<bool> {
        use pb::config_request as cr;
        let resp = self
            .session
            .client
            .config(cr::operation::OpType::IsModifiable(cr::IsModifiable {
                keys: vec![key.into()],
            }))
            .await?;
        Ok(resp
            .pairs
            .first()
            .and_then(|kv| kv.value.as_deref())
            .is_some_and(|v| v == "true"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_known_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[tokio::test]
    async fn bad_remote_is_a_typed_error() {
        let err = SparkSession::builder().remote("http://nope").build().await;
        assert!(matches!(err, Err(Error::InvalidConnectionString(_))));
        let err = SparkSession::builder()
            .remote("sc://host/;x-bad=a%0Ab")
            .build()
            .await;
        assert!(matches!(err, Err(Error::InvalidArgument(_))));
    }
}
