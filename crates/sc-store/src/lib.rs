//! Where the Spark Connect proxy keeps its session table, so that sessions outlive a proxy
//! restart and several proxy replicas route every session the same way.
//!
//! The router keeps its working copy of the table in memory (sharded maps on the request path)
//! and writes through a [`SessionStore`]:
//!
//! - [`RedbStore`], the default for a single proxy: one file, the embedded database
//!   [redb](https://www.redb.org) (ACID, crash-safe). A restarted proxy loads it and routes every
//!   session to the backend it had.
//! - [`RedisStore`], for several replicas behind one load balancer: each replica finds sessions
//!   the others created, and the first binding of a header-less session is atomic (`SET NX`), so
//!   two replicas racing on one new session agree on one backend.
//!
//! Records are JSON documents ([`SessionRecord`], [`OperationRecord`]) so operators can read
//! them with `redis-cli` and future versions can add fields.

#![forbid(unsafe_code)]

mod embedded;
mod redis_store;

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use embedded::RedbStore;
pub use redis_store::RedisStore;

/// How a session came to exist (mirrors the router's kinds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordKind {
    /// Created through the control plane.
    Control,
    /// Bound on first sight from the request's own `session_id`.
    Bound,
}

impl RecordKind {
    /// The one-letter tag used in keys (`c` or `b`).
    pub fn tag(self) -> &'static str {
        match self {
            RecordKind::Control => "c",
            RecordKind::Bound => "b",
        }
    }
}

/// One session as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    /// The session id.
    pub id: String,
    /// How it was created.
    pub kind: RecordKind,
    /// Its owner.
    pub user_id: Option<String>,
    /// The backend it is bound to.
    pub backend_id: String,
    /// That backend's endpoint when the session was bound (for operators).
    pub endpoint: String,
    /// Creation time, milliseconds since the Unix epoch.
    pub created_at_ms: u64,
    /// Last activity, milliseconds since the Unix epoch (written behind, every few seconds).
    pub last_active_ms: u64,
    /// Why the session is dead (its backend restarted or went away), when it is.
    #[serde(default)]
    pub dead: Option<String>,
    /// `(user_id, session_id)` pairs clients used on the backend through a control session.
    #[serde(default)]
    pub spark_sessions: Vec<(String, String)>,
    /// The backend's server-side session id, once seen (a change means the backend restarted).
    #[serde(default)]
    pub server_side_session_id: Option<String>,
    /// The application name its creator gave (control-plane sessions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_name: Option<String>,
    /// The engine profile the session asked for, when it asked for one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
}

impl SessionRecord {
    /// The record's key within a store (`c:<id>` or `b:<id>`).
    pub fn key(&self) -> String {
        record_key(self.kind, &self.id)
    }
}

/// The key of a session record.
pub fn record_key(kind: RecordKind, id: &str) -> String {
    format!("{}:{id}", kind.tag())
}

/// One entry of the operation index: which session runs an operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperationRecord {
    /// The session's kind.
    pub kind: RecordKind,
    /// The session's id.
    pub session_id: String,
}

/// A change the router writes behind the request path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Insert or replace a session.
    Put(SessionRecord),
    /// Remove a session (its operations are removed with separate changes).
    Remove(RecordKind, String),
    /// Index an operation.
    PutOperation(String, OperationRecord),
    /// Forget an operation.
    RemoveOperation(String),
}

/// Everything a store holds, as loaded at start-up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Every session.
    pub sessions: Vec<SessionRecord>,
    /// Every operation, by operation id.
    pub operations: Vec<(String, OperationRecord)>,
}

/// What went wrong in a store. The message names the store and what to check.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store cannot be reached or refused the operation.
    #[error("session store '{store}' is unavailable: {reason}")]
    Unavailable {
        /// `embedded` or `redis`.
        store: &'static str,
        /// Why.
        reason: String,
    },
    /// A record could not be read (written by an incompatible version, or damaged).
    #[error("session store '{store}' holds an unreadable record '{key}': {reason}")]
    Corrupt {
        /// `embedded` or `redis`.
        store: &'static str,
        /// The record's key.
        key: String,
        /// Why.
        reason: String,
    },
    /// The store's configuration is wrong.
    #[error("invalid session store configuration: {0}")]
    Config(String),
}

/// A session table shared by restarts or by replicas. Every method may be called concurrently.
#[async_trait]
pub trait SessionStore: Send + Sync + 'static {
    /// `embedded` or `redis`, for logs and errors.
    fn name(&self) -> &'static str;

    /// Whether other proxy processes use the same store at the same time (then the router looks
    /// sessions up in the store when it does not know them, and re-checks the ones it caches).
    fn shared(&self) -> bool;

    /// Everything in the store.
    async fn load(&self) -> Result<Snapshot, StoreError>;

    /// One session.
    async fn get(&self, kind: RecordKind, id: &str) -> Result<Option<SessionRecord>, StoreError>;

    /// Stores `record` unless a session with its key exists; returns the stored one (the given
    /// record, or the one that was there first). Atomic: of two concurrent calls for one key,
    /// exactly one record wins and both get it back.
    async fn create(&self, record: &SessionRecord) -> Result<SessionRecord, StoreError>;

    /// Applies changes in order (in one transaction where the store has them).
    async fn apply(&self, changes: Vec<Change>) -> Result<(), StoreError>;

    /// The session running an operation.
    async fn operation(&self, operation_id: &str) -> Result<Option<OperationRecord>, StoreError>;
}

/// The `store` section of the proxy's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSettings {
    /// `embedded` (a file; the default), `redis` (shared by replicas) or `memory` (nothing
    /// survives a restart).
    #[serde(rename = "type")]
    pub kind: StoreKind,
    /// The embedded database file.
    pub path: std::path::PathBuf,
    /// Redis settings, for `type: redis`.
    pub redis: RedisSettings,
}

impl Default for StoreSettings {
    fn default() -> Self {
        StoreSettings {
            kind: StoreKind::Embedded,
            path: ".local/sessions.redb".into(),
            redis: RedisSettings::default(),
        }
    }
}

/// Which store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// Nothing is stored; sessions live as long as the process.
    Memory,
    /// A redb file.
    Embedded,
    /// A Redis server shared by replicas.
    Redis,
}

/// Redis connection and key settings.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisSettings {
    /// `redis://[user:password@]host:port[/db]` (or `rediss://` for TLS).
    pub url: String,
    /// Prefix of every key, so several proxies (or other tenants) can share one Redis.
    pub key_prefix: String,
    /// How long a session record lives after its last write; the router rewrites records of
    /// active sessions every few seconds, so only abandoned ones expire.
    #[serde(with = "humantime_serde")]
    pub session_ttl: Duration,
    /// How long an operation index entry lives.
    #[serde(with = "humantime_serde")]
    pub operation_ttl: Duration,
    /// How long one Redis command may take before the store counts as unavailable.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for RedisSettings {
    fn default() -> Self {
        RedisSettings {
            url: "redis://127.0.0.1:6379".into(),
            key_prefix: "sc-proxy:".into(),
            session_ttl: Duration::from_secs(7 * 24 * 3600),
            operation_ttl: Duration::from_secs(24 * 3600),
            timeout: Duration::from_secs(2),
        }
    }
}

/// Opens the store the settings describe; `None` for `memory`.
pub async fn open(
    settings: &StoreSettings,
) -> Result<Option<std::sync::Arc<dyn SessionStore>>, StoreError> {
    Ok(match settings.kind {
        StoreKind::Memory => None,
        StoreKind::Embedded => Some(std::sync::Arc::new(RedbStore::open(&settings.path).await?)),
        StoreKind::Redis => Some(std::sync::Arc::new(
            RedisStore::connect(settings.redis.clone()).await?,
        )),
    })
}

pub(crate) fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    // Serializing these plain structs cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}

pub(crate) fn from_json<T: for<'de> Deserialize<'de>>(
    store: &'static str,
    key: &str,
    bytes: &[u8],
) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        store,
        key: key.to_owned(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
pub(crate) fn sample(id: &str, backend: &str) -> SessionRecord {
    SessionRecord {
        id: id.into(),
        kind: RecordKind::Bound,
        user_id: Some("alice".into()),
        backend_id: backend.into(),
        endpoint: "http://127.0.0.1:1".into(),
        created_at_ms: 1,
        last_active_ms: 2,
        dead: None,
        spark_sessions: Vec::new(),
        server_side_session_id: None,
        app_name: None,
        profile: None,
    }
}
