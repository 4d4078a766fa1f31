//! The description of one backend: its id, where it listens and how to reach it securely.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use http::Uri;
use serde::Serialize;

/// The stable name of a backend, unique within the proxy.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct BackendId(Arc<str>);

impl BackendId {
    /// Creates an id from any string.
    pub fn new(id: impl AsRef<str>) -> Self {
        BackendId(Arc::from(id.as_ref()))
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for BackendId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for BackendId {
    fn from(s: &str) -> Self {
        BackendId::new(s)
    }
}

/// The path under which the control plane serves a backend's Spark UI
/// (`/control/backends/{id}/ui`): what a launched engine's `spark.ui.proxyBase` is set to, so
/// the links its UI writes lead back through the proxy.
pub fn ui_proxy_base(id: &str) -> String {
    format!("/control/backends/{id}/ui")
}

/// How the proxy reaches a backend over TLS.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BackendTls {
    /// PEM bundle of the certificate authorities to trust; the system roots when `None`.
    pub ca_file: Option<PathBuf>,
    /// The name to verify in the backend's certificate; the endpoint's host when `None`.
    pub server_name: Option<String>,
}

/// One Spark Connect server the proxy can forward sessions to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Backend {
    /// Unique, stable id (used in routing tables, metrics and error messages).
    pub id: BackendId,
    /// Where the server's gRPC port listens, e.g. `http://10.0.0.5:15002`.
    #[serde(serialize_with = "serialize_uri")]
    pub endpoint: Uri,
    /// TLS settings; plaintext HTTP/2 when `None`.
    pub tls: Option<BackendTls>,
    /// The backend's pre-shared token (Spark's `spark.connect.authenticate.token`). The proxy
    /// sends it as `authorization: Bearer <token>` on every call to this backend, in place of any
    /// client credential, and redacts it from Config responses. Never serialized or logged.
    #[serde(skip)]
    pub auth_token: Option<String>,
    /// Where the backend's Spark UI listens (e.g. `http://10.0.0.5:4040`), when it has one the
    /// proxy may reach; the control plane serves it at `/control/backends/{id}/ui/`.
    #[serde(serialize_with = "serialize_opt_uri")]
    pub ui_url: Option<Uri>,
}

fn serialize_uri<S: serde::Serializer>(uri: &Uri, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(uri)
}

fn serialize_opt_uri<S: serde::Serializer>(uri: &Option<Uri>, s: S) -> Result<S::Ok, S::Error> {
    match uri {
        Some(uri) => s.collect_str(uri),
        None => s.serialize_none(),
    }
}

impl Backend {
    /// A plaintext backend.
    pub fn new(id: BackendId, endpoint: Uri) -> Self {
        Backend {
            id,
            endpoint,
            tls: None,
            auth_token: None,
            ui_url: None,
        }
    }

    /// The same backend with a pre-shared token.
    pub fn with_auth_token(mut self, token: impl Into<String>) -> Self {
        self.auth_token = Some(token.into());
        self
    }

    /// The same backend with a Spark UI at `ui_url`.
    pub fn with_ui_url(mut self, ui_url: Uri) -> Self {
        self.ui_url = Some(ui_url);
        self
    }

    /// The same backend reached over TLS.
    pub fn with_tls(mut self, tls: BackendTls) -> Self {
        self.tls = Some(tls);
        self
    }
}
