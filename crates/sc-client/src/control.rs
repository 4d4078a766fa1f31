//! A client for the gateway proxy's HTTP control plane: create, list, show and close sessions,
//! and connect a [`SparkSession`] to a session through the proxy.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::conn::ConnectionString;
use crate::error::{Error, Result};
use crate::session::{SparkSession, SparkSessionBuilder};

/// The gRPC header that binds a Spark Connect connection to a proxy session.
pub const SESSION_HEADER: &str = "x-spark-connect-session-id";

/// A session as the proxy's control plane describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProxySession {
    /// The session id (a UUID).
    pub id: String,
    /// The backend the session is bound to.
    #[serde(default)]
    pub backend: Option<String>,
    /// The backend's Spark Connect endpoint.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// The session's state.
    #[serde(default)]
    pub state: Option<String>,
    /// The user the session was created for.
    #[serde(default)]
    pub user_id: Option<String>,
    /// When it was created (RFC 3339).
    #[serde(default)]
    pub created_at: Option<String>,
    /// When it was last used (RFC 3339).
    #[serde(default)]
    pub last_active_at: Option<String>,
    /// The connection string that reaches this session through the proxy.
    #[serde(default)]
    pub connection_string: Option<String>,
}

#[derive(Deserialize)]
struct SessionList {
    sessions: Vec<ProxySession>,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: String,
    #[serde(default)]
    code: Option<String>,
}

/// A client for the proxy's control plane (`/control/sessions`).
///
/// ```no_run
/// # async fn run() -> sc_client::Result<()> {
/// use sc_client::ControlPlaneClient;
/// let control = ControlPlaneClient::new("http://localhost:8081")?;
/// let (info, spark) = control.create_spark_session(None).await?;
/// spark.sql("select 1").await?.show(20).await?;
/// control.close_session(&info.id).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct ControlPlaneClient {
    base: String,
    http: reqwest::Client,
    token: Option<String>,
    remote: Option<String>,
}

impl ControlPlaneClient {
    /// A client for the control plane at `base_url` (`http://host:port` or `https://...`).
    pub fn new(base_url: &str) -> Result<Self> {
        let url = reqwest::Url::parse(base_url).map_err(|e| {
            Error::InvalidArgument(format!("bad control-plane URL '{base_url}': {e}"))
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Error::InvalidArgument(format!(
                "the control-plane URL must be http or https, got '{base_url}'"
            )));
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .map_err(|e| Error::ControlPlane(e.to_string()))?;
        Ok(Self {
            base: base_url.trim_end_matches('/').to_string(),
            http,
            token: None,
            remote: None,
        })
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

    async fn send<T: serde::de::DeserializeOwned>(&self, r: reqwest::RequestBuilder) -> Result<T> {
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
            let msg = match serde_json::from_slice::<ErrorBody>(&body) {
                Ok(e) => match e.code {
                    Some(c) => format!("{status} ({c}): {}", e.error),
                    None => format!("{status}: {}", e.error),
                },
                Err(_) => format!("{status}: {}", String::from_utf8_lossy(&body)),
            };
            return Err(Error::ControlPlane(msg));
        }
        serde_json::from_slice(&body)
            .map_err(|e| Error::ControlPlane(format!("unexpected response body: {e}")))
    }

    /// Creates a session (for `user_id`, if given).
    pub async fn create_session(&self, user_id: Option<&str>) -> Result<ProxySession> {
        let mut r = self.req(reqwest::Method::POST, "/control/sessions");
        if let Some(u) = user_id {
            r = r.json(&serde_json::json!({ "user_id": u }));
        }
        self.send(r).await
    }

    /// Every session the proxy knows.
    pub async fn list_sessions(&self) -> Result<Vec<ProxySession>> {
        let l: SessionList = self
            .send(self.req(reqwest::Method::GET, "/control/sessions"))
            .await?;
        Ok(l.sessions)
    }

    /// One session.
    pub async fn get_session(&self, id: &str) -> Result<ProxySession> {
        self.send(self.req(
            reqwest::Method::GET,
            &format!("/control/sessions/{}", path_segment(id)?),
        ))
        .await
    }

    /// Closes a session (its backend may be stopped); returns it as it was.
    pub async fn close_session(&self, id: &str) -> Result<ProxySession> {
        self.send(self.req(
            reqwest::Method::DELETE,
            &format!("/control/sessions/{}", path_segment(id)?),
        ))
        .await
    }

    /// The connection string that reaches `session` through the proxy.
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

    /// A session builder connected through the proxy to `session`.
    pub fn session_builder(&self, session: &ProxySession) -> Result<SparkSessionBuilder> {
        Ok(SparkSession::builder().remote(self.connection_string(session)?))
    }

    /// Connects a [`SparkSession`] to `session` through the proxy.
    pub async fn connect(&self, session: &ProxySession) -> Result<SparkSession> {
        self.session_builder(session)?.build().await
    }

    /// Creates a proxy session and connects a ready [`SparkSession`] to it.
    pub async fn create_spark_session(
        &self,
        user_id: Option<&str>,
    ) -> Result<(ProxySession, SparkSession)> {
        let info = self.create_session(user_id).await?;
        let spark = self.connect(&info).await?;
        Ok((info, spark))
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
            "'{id}' is not a session id"
        )));
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn builds_connection_strings() {
        let c = ControlPlaneClient::new("http://localhost:8081").unwrap();
        let mut s = ProxySession {
            id: "7f0e1f4e-4b5a-4a39-9c43-0d1c1b7e8a11".into(),
            backend: None,
            endpoint: None,
            state: None,
            user_id: None,
            created_at: None,
            last_active_at: None,
            connection_string: Some(
                "sc://proxy:15002/;x-spark-connect-session-id=7f0e1f4e-4b5a-4a39-9c43-0d1c1b7e8a11"
                    .into(),
            ),
        };
        assert_eq!(
            c.connection_string(&s).unwrap(),
            s.connection_string.clone().unwrap()
        );
        s.connection_string = None;
        assert!(c.connection_string(&s).is_err());
        let c = c.with_remote("sc://127.0.0.1:15002");
        let cs = c.connection_string(&s).unwrap();
        let parsed = ConnectionString::parse(&cs).unwrap();
        assert_eq!(parsed.metadata[SESSION_HEADER], s.id);
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
    }

    #[test]
    fn rejects_bad_urls_and_ids() {
        assert!(ControlPlaneClient::new("not a url").is_err());
        assert!(ControlPlaneClient::new("ftp://x").is_err());
        assert!(path_segment("../etc").is_err());
    }
}
