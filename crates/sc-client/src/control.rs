//! A client for the gateway proxy's HTTP control plane, and managed sessions: one handle that
//! owns a proxy session and the Spark session connected to it (the Kubeflow Spark SDK's session
//! API, in Rust).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};

use crate::conn::ConnectionString;
use crate::error::{Error, Result};
use crate::session::{SparkSession, SparkSessionBuilder};

/// The gRPC header that binds a Spark Connect connection to a proxy session.
pub const SESSION_HEADER: &str = "x-spark-connect-session-id";

/// How long a control-plane request may take by default.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

// === SessionState ===

/// The state of a proxy session (Apache Livy's session states).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
#[non_exhaustive]
pub enum SessionState {
    /// Its backend is being started.
    Starting,
    /// Ready, no call in flight.
    Idle,
    /// Calls in flight.
    Busy,
    /// Being closed.
    Closing,
    /// Closed.
    Closed,
    /// Its backend is unhealthy; it may recover.
    Error,
    /// Its backend restarted or went away: the session cannot be used again.
    Dead,
    /// A state this client does not know (from a newer proxy), as the proxy named it.
    Other(String),
}

impl SessionState {
    /// The name the proxy uses for the state.
    pub fn as_str(&self) -> &str {
        match self {
            SessionState::Starting => "starting",
            SessionState::Idle => "idle",
            SessionState::Busy => "busy",
            SessionState::Closing => "closing",
            SessionState::Closed => "closed",
            SessionState::Error => "error",
            SessionState::Dead => "dead",
            SessionState::Other(s) => s,
        }
    }

    /// Whether the session can run queries now (idle or busy).
    pub fn is_active(&self) -> bool {
        matches!(self, SessionState::Idle | SessionState::Busy)
    }

    /// Whether the session is over for good (closing, closed or dead).
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            SessionState::Closing | SessionState::Closed | SessionState::Dead
        )
    }
}

impl From<String> for SessionState {
    fn from(s: String) -> Self {
        match s.as_str() {
            "starting" => SessionState::Starting,
            "idle" => SessionState::Idle,
            "busy" => SessionState::Busy,
            "closing" => SessionState::Closing,
            "closed" => SessionState::Closed,
            "error" => SessionState::Error,
            "dead" => SessionState::Dead,
            _ => SessionState::Other(s),
        }
    }
}

impl From<SessionState> for String {
    fn from(s: SessionState) -> Self {
        s.as_str().to_string()
    }
}

impl std::fmt::Display for SessionState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Default for SessionState {
    /// A session whose state the proxy did not say.
    fn default() -> Self {
        SessionState::Other("unknown".into())
    }
}

// === SessionMetrics and ProxySession ===

/// What a proxy session has done, as the proxy counts it (the Kubeflow SDK's
/// `SessionMetrics`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SessionMetrics {
    /// Queries and commands run (ExecutePlan calls).
    #[serde(default)]
    pub queries_executed: u64,
    /// Queries and commands running now.
    #[serde(default)]
    pub active_operations: u64,
    /// Artifact uploads (AddArtifacts calls).
    #[serde(default)]
    pub artifacts_uploaded: u64,
    /// Message bytes from the client to Spark.
    #[serde(default)]
    pub bytes_in: u64,
    /// Message bytes from Spark to the client.
    #[serde(default)]
    pub bytes_out: u64,
    /// Time spent running queries and commands.
    #[serde(default, rename = "execution_time_ms", with = "ms_duration")]
    pub execution_time: Duration,
    /// Calls that failed.
    #[serde(default)]
    pub errors: u64,
    /// When a call last started or ended.
    #[serde(default, rename = "last_activity_ms", with = "ms_time")]
    pub last_activity: Option<SystemTime>,
}

/// A session as the proxy's control plane describes it (`GET /control/sessions/{id}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ProxySession {
    /// The session id (a UUID); a managed session's Spark session has the same id.
    pub id: String,
    /// The application name given at creation.
    #[serde(default)]
    pub app_name: Option<String>,
    /// The user the session belongs to.
    #[serde(default)]
    pub user_id: Option<String>,
    /// How it was created: `control` (through the control plane) or `bound` (by a client's
    /// own `session_id`).
    #[serde(default)]
    pub kind: Option<String>,
    /// The backend the session is bound to (none while it starts).
    #[serde(default, with = "non_empty")]
    pub backend: Option<String>,
    /// The backend's Spark Connect endpoint.
    #[serde(default, with = "non_empty")]
    pub endpoint: Option<String>,
    /// The session's state.
    #[serde(default)]
    pub state: SessionState,
    /// Why the session is in `error` or `dead`.
    #[serde(default)]
    pub error: Option<String>,
    /// When it was created.
    #[serde(default, rename = "created_at_ms", with = "ms_time")]
    pub created_at: Option<SystemTime>,
    /// When a call last started or ended.
    #[serde(default, rename = "last_active_ms", with = "ms_time")]
    pub last_active_at: Option<SystemTime>,
    /// Calls in flight.
    #[serde(default)]
    pub active_calls: u64,
    /// Calls made so far.
    #[serde(default)]
    pub calls: u64,
    /// What the session has done.
    #[serde(default)]
    pub metrics: SessionMetrics,
    /// The connection string that reaches this session through the proxy.
    #[serde(default)]
    pub connection_string: Option<String>,
}

/// A backend as the control plane describes it (`GET /control/backends`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct BackendInfo {
    /// The backend's id.
    pub id: String,
    /// Its Spark Connect endpoint.
    #[serde(default)]
    pub endpoint: String,
    /// The provider that supplied it.
    #[serde(default)]
    pub provider: String,
    /// Sessions bound to it.
    #[serde(default)]
    pub sessions: u64,
    /// Calls in flight to it.
    #[serde(default)]
    pub active_streams: u64,
    /// `active`, `draining` (takes no new sessions) or `removed`.
    #[serde(default)]
    pub state: String,
    /// `healthy`, `unhealthy` or `unknown`.
    #[serde(default)]
    pub health: String,
    /// Whether its provider started it on demand.
    #[serde(default)]
    pub started_on_demand: bool,
}

#[derive(Deserialize)]
struct SessionList {
    sessions: Vec<ProxySession>,
}

#[derive(Deserialize)]
struct BackendList {
    backends: Vec<BackendInfo>,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: String,
    #[serde(default)]
    code: Option<String>,
}

/// Milliseconds since the Unix epoch (0: never) as an optional time.
mod ms_time {
    use super::*;
    pub(super) fn serialize<S: serde::Serializer>(
        t: &Option<SystemTime>,
        s: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        let ms = t
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        s.serialize_u64(ms)
    }
    pub(super) fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> std::result::Result<Option<SystemTime>, D::Error> {
        let ms = Option::<u64>::deserialize(d)?.unwrap_or(0);
        Ok((ms > 0).then(|| UNIX_EPOCH + Duration::from_millis(ms)))
    }
}

/// Milliseconds as a duration.
mod ms_duration {
    use super::*;
    pub(super) fn serialize<S: serde::Serializer>(
        d: &Duration,
        s: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
    pub(super) fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> std::result::Result<Duration, D::Error> {
        Ok(Duration::from_millis(
            Option::<u64>::deserialize(d)?.unwrap_or(0),
        ))
    }
}

/// An empty string as `None`.
mod non_empty {
    use super::*;
    pub(super) fn serialize<S: serde::Serializer>(
        v: &Option<String>,
        s: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(v.as_deref().unwrap_or(""))
    }
    pub(super) fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> std::result::Result<Option<String>, D::Error> {
        Ok(Option::<String>::deserialize(d)?.filter(|s| !s.is_empty()))
    }
}

// === SessionOptions ===

/// What a new proxy session is created with.
///
/// ```
/// use sc_client::SessionOptions;
/// let opts = SessionOptions::new().app_name("sales-report");
/// let for_bob = SessionOptions::new().app_name("nightly").user_id("bob"); // admins only
/// let short: SessionOptions = "sales-report".into();
/// assert_eq!(short, opts);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionOptions {
    app_name: Option<String>,
    user_id: Option<String>,
}

impl SessionOptions {
    /// No app name, for the caller's own user.
    pub fn new() -> Self {
        Self::default()
    }

    /// The application name the proxy shows for the session.
    pub fn app_name(mut self, name: impl Into<String>) -> Self {
        self.app_name = Some(name.into());
        self
    }

    /// The user the session is for. Without authentication this names the owner; with it, only
    /// members of the proxy's admin group may name a user other than themselves.
    pub fn user_id(mut self, user: impl Into<String>) -> Self {
        self.user_id = Some(user.into());
        self
    }
}

impl From<&str> for SessionOptions {
    fn from(app_name: &str) -> Self {
        Self::new().app_name(app_name)
    }
}

impl From<String> for SessionOptions {
    fn from(app_name: String) -> Self {
        Self::new().app_name(app_name)
    }
}

// === ControlPlaneClientBuilder ===

/// Configures a [`ControlPlaneClient`]: token, TLS trust, timeouts, the proxy's address.
///
/// ```no_run
/// # fn run() -> sc_client::Result<()> {
/// use std::time::Duration;
/// use sc_client::ControlPlaneClient;
/// let control = ControlPlaneClient::builder("https://proxy.example.com:8081")
///     .token("s3cret")
///     .ca_certificate_file("/etc/proxy/ca.pem")
///     .timeout(Duration::from_secs(30))
///     .build()?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct ControlPlaneClientBuilder {
    base_url: String,
    token: Option<String>,
    remote: Option<String>,
    ca_pem: Vec<Vec<u8>>,
    ca_files: Vec<std::path::PathBuf>,
    timeout: Duration,
    connect_timeout: Option<Duration>,
}

impl ControlPlaneClientBuilder {
    /// Sends `Authorization: Bearer token` with every request (and with the gRPC calls of the
    /// sessions it connects).
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// The proxy's Spark Connect address (`sc://host:port/;...`) to use instead of the
    /// connection string the control plane returns (for example behind NAT).
    pub fn remote(mut self, remote: impl Into<String>) -> Self {
        self.remote = Some(remote.into());
        self
    }

    /// Trusts this PEM certificate authority (besides the system roots) for the control
    /// plane's TLS, and for the gRPC connections of the sessions it connects.
    pub fn ca_certificate_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca_pem.push(pem.into());
        self
    }

    /// Trusts the PEM certificate authority in this file (read by `build`).
    pub fn ca_certificate_file(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.ca_files.push(path.into());
        self
    }

    /// How long one control-plane request may take (default 120 s; creating a session can wait
    /// for a backend to start).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long connecting to the control plane may take.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = Some(timeout);
        self
    }

    /// The client.
    pub fn build(self) -> Result<ControlPlaneClient> {
        let url = reqwest::Url::parse(&self.base_url).map_err(|e| {
            Error::InvalidArgument(format!("bad control-plane URL '{}': {e}", self.base_url))
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Error::InvalidArgument(format!(
                "the control-plane URL must be http or https, got '{}'",
                self.base_url
            )));
        }
        let mut pems = self.ca_pem;
        for f in &self.ca_files {
            pems.push(std::fs::read(f).map_err(|e| {
                Error::InvalidArgument(format!(
                    "cannot read the CA certificate file {}: {e}",
                    f.display()
                ))
            })?);
        }
        let mut http = reqwest::Client::builder().timeout(self.timeout);
        if let Some(t) = self.connect_timeout {
            http = http.connect_timeout(t);
        }
        for pem in &pems {
            let certs = reqwest::Certificate::from_pem_bundle(pem).map_err(|e| {
                Error::InvalidArgument(format!("the CA certificate is not valid PEM: {e}"))
            })?;
            if certs.is_empty() {
                return Err(Error::InvalidArgument(
                    "the CA certificate PEM holds no certificate".into(),
                ));
            }
            for c in certs {
                http = http.add_root_certificate(c);
            }
        }
        let http = http
            .build()
            .map_err(|e| Error::ControlPlane(format!("cannot set up the HTTP client: {e}")))?;
        Ok(ControlPlaneClient {
            base: self.base_url.trim_end_matches('/').to_string(),
            http,
            token: self.token,
            remote: self.remote,
            ca_pem: pems,
        })
    }
}

// === ControlPlaneClient ===

/// A client for the proxy's control plane (`/control/...`): sessions, and for admins backends
/// and their logs.
///
/// [`create_spark_session`](Self::create_spark_session) and
/// [`with_session`](Self::with_session) give a [`ManagedSession`], which owns the proxy session
/// and a Spark session connected to it: closing it releases both.
///
/// ```no_run
/// # async fn run() -> sc_client::Result<()> {
/// use sc_client::{ControlPlaneClient, SessionOptions};
/// let control = ControlPlaneClient::new("http://localhost:8081")?;
/// let rows = control
///     .with_session(SessionOptions::new().app_name("daily-report"), |spark| async move {
///         let n = spark.range(0, 100).count().await?;
///         let metrics = spark.metrics().await?;
///         println!("{} queries so far", metrics.queries_executed);
///         Ok(n)
///     })
///     .await?; // the session is closed here, even when the closure failed
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct ControlPlaneClient {
    base: String,
    http: reqwest::Client,
    token: Option<String>,
    remote: Option<String>,
    ca_pem: Vec<Vec<u8>>,
}

impl ControlPlaneClient {
    /// A client for the control plane at `base_url` (`http://host:port` or `https://...`) with
    /// default settings.
    pub fn new(base_url: &str) -> Result<Self> {
        Self::builder(base_url).build()
    }

    /// A builder for a client of the control plane at `base_url`.
    pub fn builder(base_url: &str) -> ControlPlaneClientBuilder {
        ControlPlaneClientBuilder {
            base_url: base_url.to_string(),
            token: None,
            remote: None,
            ca_pem: Vec::new(),
            ca_files: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
            connect_timeout: None,
        }
    }

    /// Sends `Authorization: Bearer token` with every request.
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// The proxy's Spark Connect address (`sc://host:port/;...`) to use instead of the
    /// connection string the control plane returns (for example behind NAT).
    pub fn with_remote(mut self, remote: impl Into<String>) -> Self {
        self.remote = Some(remote.into());
        self
    }

    fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let mut r = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(t) = &self.token {
            r = r.bearer_auth(t);
        }
        r
    }

    async fn send_bytes(&self, r: reqwest::RequestBuilder) -> Result<bytes::Bytes> {
        let resp = r
            .send()
            .await
            .map_err(|e| Error::ControlPlane(format!("request failed: {e}")))?;
        let status = resp.status();
        let body = resp
            .bytes()
            .await
            .map_err(|e| Error::ControlPlane(format!("reading the response failed: {e}")))?;
        if !status.is_success() {
            let (code, message) = match serde_json::from_slice::<ErrorBody>(&body) {
                Ok(e) => (e.code, e.error),
                Err(_) => (None, String::from_utf8_lossy(&body).trim().to_string()),
            };
            return Err(Error::ControlPlaneStatus {
                status: status.as_u16(),
                code,
                message,
            });
        }
        Ok(body)
    }

    async fn send<T: serde::de::DeserializeOwned>(&self, r: reqwest::RequestBuilder) -> Result<T> {
        let body = self.send_bytes(r).await?;
        serde_json::from_slice(&body)
            .map_err(|e| Error::ControlPlane(format!("unexpected response body: {e}")))
    }

    // --- sessions

    /// Creates a proxy session (for `user_id`, if given). See
    /// [`create_session_with`](Self::create_session_with) for an app name.
    pub async fn create_session(&self, user_id: Option<&str>) -> Result<ProxySession> {
        let mut opts = SessionOptions::new();
        opts.user_id = user_id.map(str::to_string);
        self.create_session_with(&opts).await
    }

    /// Creates a proxy session with an app name (and a user, for admins).
    pub async fn create_session_with(&self, opts: &SessionOptions) -> Result<ProxySession> {
        let mut body = serde_json::Map::new();
        if let Some(u) = &opts.user_id {
            body.insert("user_id".into(), u.clone().into());
        }
        if let Some(a) = &opts.app_name {
            body.insert("app_name".into(), a.clone().into());
        }
        let mut r = self.req(reqwest::Method::POST, "/control/sessions");
        if !body.is_empty() {
            r = r.json(&body);
        }
        let created: ProxySession = self.send(r).await?;
        if let Some(app) = &opts.app_name
            && created.app_name.as_deref() != Some(app)
        {
            tracing::warn!(session_id = %created.id, app_name = %app, "the proxy did not record the app name (an older proxy?)");
        }
        Ok(created)
    }

    /// Every session the caller may see (all of them for admins or without authentication).
    pub async fn list_sessions(&self) -> Result<Vec<ProxySession>> {
        let l: SessionList = self
            .send(self.req(reqwest::Method::GET, "/control/sessions"))
            .await?;
        Ok(l.sessions)
    }

    /// One session; a session that does not exist (any more) is an error with
    /// [`http_status`](Error::http_status) 404.
    pub async fn get_session(&self, id: &str) -> Result<ProxySession> {
        self.send(self.req(
            reqwest::Method::GET,
            &format!("/control/sessions/{}", path_segment(id)?),
        ))
        .await
    }

    /// Closes a session (its Spark sessions are released; a launched backend may stop) and
    /// returns it as it was.
    pub async fn close_session(&self, id: &str) -> Result<ProxySession> {
        self.send(self.req(
            reqwest::Method::DELETE,
            &format!("/control/sessions/{}", path_segment(id)?),
        ))
        .await
    }

    // --- backends (admins, when the proxy authenticates)

    /// Every backend with its load, state and health.
    pub async fn backends(&self) -> Result<Vec<BackendInfo>> {
        let l: BackendList = self
            .send(self.req(reqwest::Method::GET, "/control/backends"))
            .await?;
        Ok(l.backends)
    }

    /// Stops placing new sessions on a backend (its sessions carry on); admins only.
    pub async fn drain_backend(&self, id: &str) -> Result<BackendInfo> {
        self.backend_action(id, "drain").await
    }

    /// Places new sessions on a drained backend again; admins only.
    pub async fn undrain_backend(&self, id: &str) -> Result<BackendInfo> {
        self.backend_action(id, "undrain").await
    }

    async fn backend_action(&self, id: &str, action: &str) -> Result<BackendInfo> {
        let path = format!("/control/backends/{}/{action}", path_segment(id)?);
        self.send(self.req(reqwest::Method::POST, &path)).await
    }

    /// The last `lines` lines of a launched engine's log; admins only. A backend whose provider
    /// keeps no logs (a predefined one) is an error with status 404.
    pub async fn backend_logs(&self, id: &str, lines: usize) -> Result<String> {
        let r = self
            .req(
                reqwest::Method::GET,
                &format!("/control/backends/{}/logs", path_segment(id)?),
            )
            .query(&[("lines", lines)]);
        let body = self.send_bytes(r).await?;
        Ok(String::from_utf8_lossy(&body).into_owned())
    }

    // --- connecting

    /// The connection string that reaches `session` through the proxy, with the session's id
    /// as the Spark session id (`session_id=`), its user and the client's token.
    pub fn connection_string(&self, session: &ProxySession) -> Result<String> {
        let base = match (&self.remote, &session.connection_string) {
            (Some(r), _) => r.clone(),
            (None, Some(c)) => c.clone(),
            (None, None) => {
                return Err(Error::ControlPlane(
                    "the control plane gave no connection string; set one with with_remote".into(),
                ));
            }
        };
        let parsed = ConnectionString::parse(&base)?;
        let mut extra = Vec::new();
        if parsed.metadata.get(SESSION_HEADER) != Some(&session.id) {
            extra.push(format!("{SESSION_HEADER}={}", session.id));
        }
        // The Spark session takes the proxy session's id, so both are known by one id (proxy
        // session ids are UUIDs, as Spark wants).
        if parsed.session_id.is_none() && uuid::Uuid::parse_str(&session.id).is_ok() {
            extra.push(format!("session_id={}", session.id));
        }
        // The proxy admits only the user the session was created for.
        if let (None, Some(user)) = (&parsed.user_id, &session.user_id) {
            extra.push(format!("user_id={}", percent_encode(user)));
        }
        // A proxy that authenticates the control plane authenticates gRPC calls the same way.
        if let (None, Some(token)) = (&parsed.token, &self.token) {
            extra.push(format!("token={}", percent_encode(token)));
        }
        if extra.is_empty() {
            return Ok(base);
        }
        let sep = if base.contains("/;") || base.ends_with('/') {
            ";"
        } else {
            "/;"
        };
        let joined = format!("{}{sep}{}", base.trim_end_matches(';'), extra.join(";"));
        ConnectionString::parse(&joined)?;
        Ok(joined)
    }

    /// A session builder connected through the proxy to `session` (trusting the client's CA
    /// certificates).
    pub fn session_builder(&self, session: &ProxySession) -> Result<SparkSessionBuilder> {
        let mut b = SparkSession::builder().remote(self.connection_string(session)?);
        // The builder trusts one extra CA; the first one given is the proxy's.
        if let Some(pem) = self.ca_pem.first() {
            b = b.ca_certificate_pem(pem.clone());
        }
        Ok(b)
    }

    /// Connects a [`SparkSession`] to `session` through the proxy. The Spark session is not
    /// tied to the proxy session; see [`attach`](Self::attach) for that.
    pub async fn connect(&self, session: &ProxySession) -> Result<SparkSession> {
        self.session_builder(session)?.build().await
    }

    /// Takes ownership of an existing proxy session: the returned handle connects a Spark
    /// session to it, and closing the handle releases the Spark session and deletes the proxy
    /// session.
    pub async fn attach(&self, session: ProxySession) -> Result<ManagedSession> {
        let spark = self.connect(&session).await?;
        Ok(ManagedSession::new(self.clone(), session, spark))
    }

    /// Creates a proxy session and connects a Spark session to it: one handle that owns both.
    /// If connecting fails, the proxy session is deleted again.
    ///
    /// ```no_run
    /// # async fn run() -> sc_client::Result<()> {
    /// use sc_client::ControlPlaneClient;
    /// let control = ControlPlaneClient::new("http://localhost:8081")?;
    /// let spark = control.create_spark_session("exploration").await?;
    /// assert_eq!(spark.session_id(), spark.proxy_session_id());
    /// spark.sql("select 1").await?.show(20).await?;
    /// println!("{:?}", spark.info().await?.state);
    /// spark.close().await?; // releases the Spark session and deletes the proxy session
    /// # Ok(()) }
    /// ```
    pub async fn create_spark_session(
        &self,
        opts: impl Into<SessionOptions>,
    ) -> Result<ManagedSession> {
        let info = self.create_session_with(&opts.into()).await?;
        match self.connect(&info).await {
            Ok(spark) => Ok(ManagedSession::new(self.clone(), info, spark)),
            Err(e) => {
                if let Err(close) = self.close_session(&info.id).await {
                    tracing::warn!(session_id = %info.id, error = %close, "could not delete the proxy session after connecting failed");
                }
                Err(e)
            }
        }
    }

    /// Runs `body` with a new managed session and closes the session afterwards, whether
    /// `body` succeeded, returned an error (an early `?`) or panicked. The body's error wins
    /// over an error closing the session.
    pub async fn with_session<T, F, Fut>(
        &self,
        opts: impl Into<SessionOptions>,
        body: F,
    ) -> Result<T>
    where
        F: FnOnce(ManagedSession) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let session = self.create_spark_session(opts).await?;
        let result = std::panic::AssertUnwindSafe(body(session.clone()))
            .catch_unwind()
            .await;
        let closed = session.close().await;
        match result {
            Ok(Ok(v)) => closed.map(|()| v),
            Ok(Err(e)) => {
                if let Err(c) = closed {
                    tracing::warn!(session_id = %session.proxy_session_id(), error = %c, "closing the session after an error failed");
                }
                Err(e)
            }
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}

// === ManagedSession ===

/// A proxy session and the Spark session connected to it, owned together (the Kubeflow Spark
/// SDK's `ManagedSparkSession`).
///
/// It dereferences to its [`SparkSession`], so `session.sql(...)`, `session.range(...)` and
/// the rest work on it directly. The Spark session's id is the proxy session's id.
///
/// [`close`](Self::close) (or [`stop`](Self::stop), or `stop` on the Spark session itself)
/// releases the Spark session and deletes the proxy session. Clones share the session; when
/// the last one is dropped without closing, the session is closed in the background (prefer
/// [`ControlPlaneClient::with_session`] or an explicit `close`, which report errors).
#[derive(Debug, Clone)]
pub struct ManagedSession {
    inner: Arc<ManagedInner>,
}

#[derive(Debug)]
struct ManagedInner {
    control: ControlPlaneClient,
    created: ProxySession,
    spark: SparkSession,
    closed: AtomicBool,
}

impl ManagedSession {
    fn new(control: ControlPlaneClient, created: ProxySession, spark: SparkSession) -> Self {
        // `spark.stop()` on the Spark session (or any clone of it) deletes the proxy session too.
        let (hook_control, id) = (control.clone(), created.id.clone());
        spark
            .client
            .shared
            .on_stop
            .set(Box::new(move || delete_quietly(hook_control, id).boxed()));
        Self {
            inner: Arc::new(ManagedInner {
                control,
                created,
                spark,
                closed: AtomicBool::new(false),
            }),
        }
    }

    /// The Spark session.
    pub fn spark(&self) -> &SparkSession {
        &self.inner.spark
    }

    /// The proxy session's id (equal to [`SparkSession::session_id`] unless the connection
    /// string named another `session_id`).
    pub fn proxy_session_id(&self) -> &str {
        &self.inner.created.id
    }

    /// The app name the session was created with.
    pub fn app_name(&self) -> Option<&str> {
        self.inner.created.app_name.as_deref()
    }

    /// The session as the control plane described it when it was created.
    pub fn created(&self) -> &ProxySession {
        &self.inner.created
    }

    /// The control-plane client the session was created with.
    pub fn control(&self) -> &ControlPlaneClient {
        &self.inner.control
    }

    /// The session as the control plane describes it now (state, metrics, backend).
    pub async fn info(&self) -> Result<ProxySession> {
        self.inner
            .control
            .get_session(self.proxy_session_id())
            .await
    }

    /// The session's state now.
    pub async fn state(&self) -> Result<SessionState> {
        Ok(self.info().await?.state)
    }

    /// What the session has done so far, as the proxy counts it.
    pub async fn metrics(&self) -> Result<SessionMetrics> {
        Ok(self.info().await?.metrics)
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::Acquire)
    }

    /// Releases the Spark session and deletes the proxy session; both are attempted, the first
    /// error is returned. Closing twice is not an error, nor is a proxy session that is
    /// already gone (expired or deleted).
    pub async fn close(&self) -> Result<()> {
        if self.inner.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        // `stop` releases the Spark session and runs the hook that deletes the proxy session.
        let stopped = self.inner.spark.stop().await;
        // A Spark session stopped before (by its own `stop`) already ran the hook; this finds
        // nothing to do.
        let deleted = self.inner.spark.client.shared.on_stop.run().await;
        stopped.and(deleted)
    }

    /// The same as [`close`](Self::close): ends both sessions.
    pub async fn stop(&self) -> Result<()> {
        self.close().await
    }
}

impl std::ops::Deref for ManagedSession {
    type Target = SparkSession;
    fn deref(&self) -> &SparkSession {
        &self.inner.spark
    }
}

impl Drop for ManagedInner {
    fn drop(&mut self) {
        if self.closed.load(Ordering::Acquire) {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(session_id = %self.created.id, "a managed session was dropped without close outside a runtime; the proxy session stays until it expires");
            return;
        };
        let spark = self.spark.clone();
        let id = self.created.id.clone();
        handle.spawn(async move {
            if let Err(e) = spark.stop().await {
                tracing::warn!(session_id = %id, error = %e, "closing a dropped managed session");
            }
        });
    }
}

/// Deletes a proxy session; one that is already gone is not an error.
async fn delete_quietly(control: ControlPlaneClient, id: String) -> Result<()> {
    match control.close_session(&id).await {
        Ok(_) => Ok(()),
        Err(e) if e.http_status() == Some(404) => Ok(()),
        Err(e) => Err(e),
    }
}

// === StopHook ===

type StopFn = Box<dyn FnOnce() -> BoxFuture<'static, Result<()>> + Send>;

/// Work that `SparkSession::stop` does once after releasing the session.
#[derive(Default)]
pub(crate) struct StopHook(std::sync::Mutex<Option<StopFn>>);

impl std::fmt::Debug for StopHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let set = self.0.lock().map(|g| g.is_some()).unwrap_or(false);
        f.debug_tuple("StopHook").field(&set).finish()
    }
}

impl StopHook {
    fn set(&self, f: StopFn) {
        if let Ok(mut g) = self.0.lock() {
            *g = Some(f);
        }
    }

    /// Runs the hook if it has not run yet.
    pub(crate) async fn run(&self) -> Result<()> {
        let f = self.0.lock().ok().and_then(|mut g| g.take());
        match f {
            Some(f) => f().await,
            None => Ok(()),
        }
    }
}

/// Percent-encodes what a connection-string value cannot hold literally.
fn percent_encode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b';' | b'=' | b'%' | b'/' | b' ' | 0..=0x1f | 0x7f..=0xff => format!("%{b:02X}"),
            _ => (b as char).to_string(),
        })
        .collect()
}

fn path_segment(id: &str) -> Result<&str> {
    if id.is_empty()
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(Error::InvalidArgument(format!(
            "'{id}' is not a session or backend id"
        )));
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const ID: &str = "7f0e1f4e-4b5a-4a39-9c43-0d1c1b7e8a11";

    fn session(json: serde_json::Value) -> ProxySession {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn builds_connection_strings() {
        let c = ControlPlaneClient::new("http://localhost:8081").unwrap();
        let handed_out = format!("sc://proxy:15002/;{SESSION_HEADER}={ID};session_id={ID}");
        let mut s = session(serde_json::json!({"id": ID, "connection_string": handed_out}));
        assert_eq!(c.connection_string(&s).unwrap(), handed_out);
        // An older proxy leaves session_id out: the client adds it.
        s.connection_string = Some(format!("sc://proxy:15002/;{SESSION_HEADER}={ID}"));
        let parsed = ConnectionString::parse(&c.connection_string(&s).unwrap()).unwrap();
        assert_eq!(parsed.session_id.unwrap().to_string(), ID);
        s.connection_string = None;
        assert!(c.connection_string(&s).is_err());
        let c = c.with_remote("sc://127.0.0.1:15002");
        let cs = c.connection_string(&s).unwrap();
        let parsed = ConnectionString::parse(&cs).unwrap();
        assert_eq!(parsed.metadata[SESSION_HEADER], s.id);
        assert_eq!(parsed.session_id.unwrap().to_string(), ID);
        s.user_id = Some("al ice;x".into());
        let parsed = ConnectionString::parse(&c.connection_string(&s).unwrap()).unwrap();
        assert_eq!(parsed.user_id.as_deref(), Some("al ice;x"));
        // The control plane's token goes with the session, unless the string has its own.
        let c = c.with_token("s3cret");
        let parsed = ConnectionString::parse(&c.connection_string(&s).unwrap()).unwrap();
        assert_eq!(parsed.token.as_deref(), Some("s3cret"));
        let c = c.with_remote("sc://127.0.0.1:15002/;token=other");
        let parsed = ConnectionString::parse(&c.connection_string(&s).unwrap()).unwrap();
        assert_eq!(parsed.token.as_deref(), Some("other"));
        // A non-UUID id (a bound session's) is not made a Spark session id.
        let s = session(serde_json::json!({"id": "not-a-uuid"}));
        let parsed = ConnectionString::parse(&c.connection_string(&s).unwrap()).unwrap();
        assert!(parsed.session_id.is_none());
    }

    #[test]
    fn reads_the_session_json_typed() {
        let s = session(serde_json::json!({
            "id": ID, "kind": "control", "user_id": "alice", "app_name": "sales",
            "backend": "backend-0", "endpoint": "127.0.0.1:15002", "state": "busy",
            "created_at_ms": 1_700_000_000_000u64, "last_active_ms": 1_700_000_001_000u64,
            "created_at": "2023-11-14T22:13:20.000Z", "last_active_at": "2023-11-14T22:13:21.000Z",
            "active_calls": 1, "calls": 7,
            "metrics": {"queries_executed": 3, "active_operations": 1, "artifacts_uploaded": 2,
                        "bytes_in": 100, "bytes_out": 2000, "execution_time_ms": 1500,
                        "errors": 1, "last_activity_ms": 1_700_000_001_000u64},
            "connection_string": "sc://h:1/", "a_new_field": [1, 2]
        }));
        assert_eq!(s.state, SessionState::Busy);
        assert!(s.state.is_active());
        assert_eq!(s.app_name.as_deref(), Some("sales"));
        assert_eq!(s.metrics.queries_executed, 3);
        assert_eq!(s.metrics.execution_time, Duration::from_millis(1500));
        assert_eq!(
            s.metrics.last_activity,
            Some(UNIX_EPOCH + Duration::from_millis(1_700_000_001_000))
        );
        assert_eq!(
            s.created_at,
            Some(UNIX_EPOCH + Duration::from_secs(1_700_000_000))
        );
        // It serialises back to the same wire names.
        let back = serde_json::to_value(&s).unwrap();
        assert_eq!(back["metrics"]["execution_time_ms"], 1500);
        assert_eq!(back["state"], "busy");
        assert_eq!(session(back), s);
        // A starting session has no backend yet; unknown states are kept.
        let s = session(serde_json::json!({"id": ID, "backend": "", "state": "hibernating"}));
        assert_eq!(s.backend, None);
        assert_eq!(s.state, SessionState::Other("hibernating".into()));
        assert_eq!(s.state.to_string(), "hibernating");
        assert!(!s.state.is_active() && !s.state.is_final());
        for (name, state) in [
            ("starting", SessionState::Starting),
            ("idle", SessionState::Idle),
            ("closing", SessionState::Closing),
            ("closed", SessionState::Closed),
            ("error", SessionState::Error),
            ("dead", SessionState::Dead),
        ] {
            assert_eq!(SessionState::from(name.to_string()), state);
            assert_eq!(state.as_str(), name);
        }
    }

    #[test]
    fn rejects_bad_urls_ids_and_certificates() {
        assert!(ControlPlaneClient::new("not a url").is_err());
        assert!(ControlPlaneClient::new("ftp://x").is_err());
        assert!(path_segment("../etc").is_err());
        let e = ControlPlaneClient::builder("https://x")
            .ca_certificate_pem("not pem")
            .build()
            .unwrap_err();
        assert!(e.to_string().contains("CA certificate"), "{e}");
        let e = ControlPlaneClient::builder("https://x")
            .ca_certificate_file("/nonexistent/ca.pem")
            .build()
            .unwrap_err();
        assert!(e.to_string().contains("/nonexistent/ca.pem"), "{e}");
    }

    #[tokio::test]
    async fn the_stop_hook_runs_once() {
        let hook = StopHook::default();
        assert!(hook.run().await.is_ok());
        let runs = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let r = runs.clone();
        hook.set(Box::new(move || {
            async move {
                r.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
            .boxed()
        }));
        hook.run().await.unwrap();
        hook.run().await.unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }
}
