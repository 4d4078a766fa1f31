//! The shared store: a Redis server that several proxy replicas use at once.
//!
//! Keys (with the configured prefix `P`):
//! - `P s:c:<id>` / `P s:b:<id>`: a session record (JSON), expiring `session_ttl` after its last
//!   write;
//! - `P op:<operation_id>`: an operation index entry (JSON), expiring after `operation_ttl`.
//!
//! First bindings use `SET ... NX`, so of two replicas racing on one new session exactly one
//! record is stored and both read it back.

use std::future::Future;

use async_trait::async_trait;
use redis::aio::ConnectionManager;

use crate::{
    Change, OperationRecord, RecordKind, RedisSettings, SessionRecord, SessionStore, Snapshot,
    StoreError, from_json, record_key, to_json,
};

const NAME: &str = "redis";

/// The session table in Redis.
#[derive(Clone)]
pub struct RedisStore {
    connection: ConnectionManager,
    settings: RedisSettings,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("key_prefix", &self.settings.key_prefix)
            .finish_non_exhaustive()
    }
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable {
        store: NAME,
        reason: e.to_string(),
    }
}

/// The URL without its password, for messages.
fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

impl RedisStore {
    /// Connects to Redis (failing at once, with the URL minus its password, when it cannot).
    /// Later, the connection is re-established automatically after a failure.
    pub async fn connect(settings: RedisSettings) -> Result<Self, StoreError> {
        if settings.timeout.is_zero() {
            return Err(StoreError::Config(
                "store.redis.timeout must be greater than zero, e.g. 2s".into(),
            ));
        }
        let client = redis::Client::open(settings.url.as_str()).map_err(|e| {
            StoreError::Config(format!(
                "store.redis.url '{}' is not a Redis URL: {e}; write it as redis://host:port[/db]",
                redacted(&settings.url)
            ))
        })?;
        let connection = tokio::time::timeout(settings.timeout, ConnectionManager::new(client))
            .await
            .map_err(|_| format!("no answer within {:?}", settings.timeout))
            .and_then(|r| r.map_err(|e| e.to_string()))
            .map_err(|e| StoreError::Unavailable {
                store: NAME,
                reason: format!(
                    "cannot connect to {}: {e}; start Redis or fix store.redis.url",
                    redacted(&settings.url)
                ),
            })?;
        Ok(RedisStore {
            connection,
            settings,
        })
    }

    fn session_key(&self, kind: RecordKind, id: &str) -> String {
        format!("{}s:{}", self.settings.key_prefix, record_key(kind, id))
    }

    fn operation_key(&self, op: &str) -> String {
        format!("{}op:{op}", self.settings.key_prefix)
    }

    fn ttl_ms(d: std::time::Duration) -> u64 {
        u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
    }

    /// One JSON record by key.
    async fn read_one<T: for<'de> serde::Deserialize<'de>>(
        &self,
        key: &str,
    ) -> Result<Option<T>, StoreError> {
        let mut con = self.connection.clone();
        let value: Option<Vec<u8>> = self
            .timed(redis::cmd("GET").arg(key).query_async(&mut con))
            .await?;
        value.map(|v| from_json(NAME, key, &v)).transpose()
    }

    async fn timed<T>(
        &self,
        f: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(self.settings.timeout, f).await {
            Ok(result) => result.map_err(unavailable),
            Err(_) => Err(unavailable(format!(
                "no answer within {:?}",
                self.settings.timeout
            ))),
        }
    }
}

#[async_trait]
impl SessionStore for RedisStore {
    fn name(&self) -> &'static str {
        NAME
    }

    fn shared(&self) -> bool {
        true
    }

    async fn load(&self) -> Result<Snapshot, StoreError> {
        let mut con = self.connection.clone();
        let pattern = format!("{}s:*", self.settings.key_prefix);
        let mut keys: Vec<String> = Vec::new();
        let mut cursor: u64 = 0;
        loop {
            let (next, batch): (u64, Vec<String>) = self
                .timed(
                    redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(&pattern)
                        .arg("COUNT")
                        .arg(500)
                        .query_async(&mut con),
                )
                .await?;
            keys.extend(batch);
            if next == 0 {
                break;
            }
            cursor = next;
        }
        let mut snapshot = Snapshot::default();
        for chunk in keys.chunks(500) {
            let values: Vec<Option<Vec<u8>>> = self
                .timed(redis::cmd("MGET").arg(chunk).query_async(&mut con))
                .await?;
            for (key, value) in chunk.iter().zip(values) {
                if let Some(value) = value {
                    snapshot.sessions.push(from_json(NAME, key, &value)?);
                }
            }
        }
        // Operations are looked up on demand (`operation`), not loaded.
        Ok(snapshot)
    }

    async fn get(&self, kind: RecordKind, id: &str) -> Result<Option<SessionRecord>, StoreError> {
        self.read_one(&self.session_key(kind, id)).await
    }

    async fn create(&self, record: &SessionRecord) -> Result<SessionRecord, StoreError> {
        let key = self.session_key(record.kind, &record.id);
        let mut con = self.connection.clone();
        // SET NX; when another replica got there first, read its record. A record that expires
        // between the two commands is rare enough to simply try again, a few times.
        for _ in 0..3 {
            let set: Option<String> = self
                .timed(
                    redis::cmd("SET")
                        .arg(&key)
                        .arg(to_json(record))
                        .arg("NX")
                        .arg("PX")
                        .arg(Self::ttl_ms(self.settings.session_ttl))
                        .query_async(&mut con),
                )
                .await?;
            if set.is_some() {
                return Ok(record.clone());
            }
            let existing: Option<Vec<u8>> = self
                .timed(redis::cmd("GET").arg(&key).query_async(&mut con))
                .await?;
            if let Some(existing) = existing {
                return from_json(NAME, &key, &existing);
            }
        }
        Err(unavailable(format!(
            "the record {key} kept appearing and disappearing"
        )))
    }

    async fn apply(&self, changes: Vec<Change>) -> Result<(), StoreError> {
        if changes.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        pipe.atomic();
        let session_ttl = Self::ttl_ms(self.settings.session_ttl);
        let operation_ttl = Self::ttl_ms(self.settings.operation_ttl);
        for change in &changes {
            match change {
                Change::Put(record) => {
                    pipe.cmd("SET")
                        .arg(self.session_key(record.kind, &record.id))
                        .arg(to_json(record))
                        .arg("PX")
                        .arg(session_ttl)
                        .ignore();
                }
                Change::Remove(kind, id) => {
                    pipe.cmd("DEL").arg(self.session_key(*kind, id)).ignore();
                }
                Change::PutOperation(op, record) => {
                    pipe.cmd("SET")
                        .arg(self.operation_key(op))
                        .arg(to_json(record))
                        .arg("PX")
                        .arg(operation_ttl)
                        .ignore();
                }
                Change::RemoveOperation(op) => {
                    pipe.cmd("DEL").arg(self.operation_key(op)).ignore();
                }
            }
        }
        let mut con = self.connection.clone();
        self.timed(pipe.query_async::<()>(&mut con)).await
    }

    async fn operation(&self, operation_id: &str) -> Result<Option<OperationRecord>, StoreError> {
        self.read_one(&self.operation_key(operation_id)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_stay_out_of_messages() {
        assert_eq!(
            redacted("redis://user:secret@host:6379/0"),
            "redis://***@host:6379/0"
        );
        assert_eq!(redacted("redis://host:6379"), "redis://host:6379");
    }

    #[tokio::test]
    async fn an_unreachable_server_is_named() {
        let settings = RedisSettings {
            url: "redis://127.0.0.1:1".into(),
            timeout: std::time::Duration::from_millis(500),
            ..RedisSettings::default()
        };
        let error = RedisStore::connect(settings).await.unwrap_err().to_string();
        assert!(error.contains("redis://127.0.0.1:1"), "{error}");
        assert!(error.contains("store.redis.url"), "{error}");
    }

    #[tokio::test]
    async fn a_bad_url_is_a_config_error() {
        let settings = RedisSettings {
            url: "http://nope".into(),
            ..RedisSettings::default()
        };
        let error = RedisStore::connect(settings).await.unwrap_err();
        assert!(matches!(error, StoreError::Config(_)), "{error}");
    }

    /// Against a real Redis when `SC_TEST_REDIS_URL` is set (scripts/test.sh starts one).
    #[tokio::test]
    async fn racing_creations_agree_on_a_real_redis() {
        let Ok(url) = std::env::var("SC_TEST_REDIS_URL") else {
            eprintln!("SC_TEST_REDIS_URL not set; skipping");
            return;
        };
        let prefix = format!("sc-store-test-{}:", std::process::id());
        let settings = RedisSettings {
            url,
            key_prefix: prefix,
            ..RedisSettings::default()
        };
        let a = RedisStore::connect(settings.clone()).await.unwrap();
        let b = RedisStore::connect(settings).await.unwrap();
        let mut tasks = Vec::new();
        for i in 0..16 {
            let store = if i % 2 == 0 { a.clone() } else { b.clone() };
            tasks.push(tokio::spawn(async move {
                store
                    .create(&crate::sample("race", &format!("backend-{i}")))
                    .await
                    .unwrap()
                    .backend_id
            }));
        }
        let mut winners = std::collections::HashSet::new();
        for t in tasks {
            winners.insert(t.await.unwrap());
        }
        assert_eq!(winners.len(), 1, "{winners:?}");
        a.apply(vec![Change::PutOperation(
            "op".into(),
            OperationRecord {
                kind: RecordKind::Bound,
                session_id: "race".into(),
            },
        )])
        .await
        .unwrap();
        assert_eq!(b.operation("op").await.unwrap().unwrap().session_id, "race");
        assert_eq!(b.load().await.unwrap().sessions.len(), 1);
        b.apply(vec![
            Change::Remove(RecordKind::Bound, "race".into()),
            Change::RemoveOperation("op".into()),
        ])
        .await
        .unwrap();
        assert_eq!(a.get(RecordKind::Bound, "race").await.unwrap(), None);
    }
}
