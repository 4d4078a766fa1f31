//! The embedded store: one redb database file.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use redb::{Database, ReadableDatabase as _, ReadableTable as _, TableDefinition};

use crate::{
    Change, OperationRecord, RecordKind, SessionRecord, SessionStore, Snapshot, StoreError,
    from_json, record_key, to_json,
};

const SESSIONS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("sessions");
const OPERATIONS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("operations");
const NAME: &str = "embedded";
const CACHE_BYTES: usize = 16 * 1024 * 1024;

/// The session table in a redb file. Only one process may open the file at a time (redb locks
/// it); a second proxy pointed at the same file fails at start-up with a message saying so.
#[derive(Clone)]
pub struct RedbStore {
    db: Arc<Database>,
    path: PathBuf,
}

impl std::fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable {
        store: NAME,
        reason: e.to_string(),
    }
}

impl RedbStore {
    /// Opens (or creates) the database file, creating its directory when missing.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        let path = path.to_path_buf();
        tokio::task::spawn_blocking(move || Self::open_blocking(path))
            .await
            .map_err(unavailable)?
    }

    fn open_blocking(path: PathBuf) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::Config(format!(
                    "cannot create the directory of store.path '{}': {e}; choose a writable path",
                    path.display()
                ))
            })?;
        }
        // A small page cache: the table is read whole once at start-up, then only written.
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(&path)
            .map_err(|e| {
            StoreError::Config(format!(
                "cannot open the session database store.path '{}': {e} (is another proxy using it? each proxy needs its own file; replicas share state with store.type: redis)",
                path.display()
            ))
        })?;
        // Create the tables so that reads of an empty database find them.
        let txn = db.begin_write().map_err(unavailable)?;
        txn.open_table(SESSIONS).map_err(unavailable)?;
        txn.open_table(OPERATIONS).map_err(unavailable)?;
        txn.commit().map_err(unavailable)?;
        Ok(RedbStore {
            db: Arc::new(db),
            path,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// One JSON record of `table` by key.
    async fn read_one<T: for<'de> serde::Deserialize<'de> + Send + 'static>(
        &self,
        table: TableDefinition<'static, &'static str, &'static [u8]>,
        key: String,
    ) -> Result<Option<T>, StoreError> {
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(unavailable)?;
            let table = txn.open_table(table).map_err(unavailable)?;
            match table.get(key.as_str()).map_err(unavailable)? {
                Some(value) => Ok(Some(from_json(NAME, &key, value.value())?)),
                None => Ok(None),
            }
        })
        .await
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Database) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || f(&db))
            .await
            .map_err(unavailable)?
    }
}

#[async_trait]
impl SessionStore for RedbStore {
    fn name(&self) -> &'static str {
        NAME
    }

    fn shared(&self) -> bool {
        false
    }

    async fn load(&self) -> Result<Snapshot, StoreError> {
        self.blocking(|db| {
            let txn = db.begin_read().map_err(unavailable)?;
            let mut snapshot = Snapshot::default();
            let sessions = txn.open_table(SESSIONS).map_err(unavailable)?;
            for entry in sessions.iter().map_err(unavailable)? {
                let (key, value) = entry.map_err(unavailable)?;
                snapshot
                    .sessions
                    .push(from_json(NAME, key.value(), value.value())?);
            }
            let operations = txn.open_table(OPERATIONS).map_err(unavailable)?;
            for entry in operations.iter().map_err(unavailable)? {
                let (key, value) = entry.map_err(unavailable)?;
                snapshot.operations.push((
                    key.value().to_owned(),
                    from_json(NAME, key.value(), value.value())?,
                ));
            }
            Ok(snapshot)
        })
        .await
    }

    async fn get(&self, kind: RecordKind, id: &str) -> Result<Option<SessionRecord>, StoreError> {
        self.read_one(SESSIONS, record_key(kind, id)).await
    }

    async fn create(&self, record: &SessionRecord) -> Result<SessionRecord, StoreError> {
        let record = record.clone();
        self.blocking(move |db| {
            let key = record.key();
            let txn = db.begin_write().map_err(unavailable)?;
            let winner = {
                let mut table = txn.open_table(SESSIONS).map_err(unavailable)?;
                let existing = match table.get(key.as_str()).map_err(unavailable)? {
                    Some(value) => Some(from_json(NAME, &key, value.value())?),
                    None => None,
                };
                match existing {
                    Some(existing) => existing,
                    None => {
                        table
                            .insert(key.as_str(), to_json(&record).as_slice())
                            .map_err(unavailable)?;
                        record
                    }
                }
            };
            txn.commit().map_err(unavailable)?;
            Ok(winner)
        })
        .await
    }

    async fn apply(&self, changes: Vec<Change>) -> Result<(), StoreError> {
        if changes.is_empty() {
            return Ok(());
        }
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(unavailable)?;
            {
                let mut sessions = txn.open_table(SESSIONS).map_err(unavailable)?;
                let mut operations = txn.open_table(OPERATIONS).map_err(unavailable)?;
                for change in changes {
                    match change {
                        Change::Put(record) => {
                            sessions
                                .insert(record.key().as_str(), to_json(&record).as_slice())
                                .map_err(unavailable)?;
                        }
                        Change::Remove(kind, id) => {
                            sessions
                                .remove(record_key(kind, &id).as_str())
                                .map_err(unavailable)?;
                        }
                        Change::PutOperation(op, record) => {
                            operations
                                .insert(op.as_str(), to_json(&record).as_slice())
                                .map_err(unavailable)?;
                        }
                        Change::RemoveOperation(op) => {
                            operations.remove(op.as_str()).map_err(unavailable)?;
                        }
                    }
                }
            }
            txn.commit().map_err(unavailable)
        })
        .await
    }

    async fn operation(&self, operation_id: &str) -> Result<Option<OperationRecord>, StoreError> {
        self.read_one(OPERATIONS, operation_id.to_owned()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample;

    #[tokio::test]
    async fn sessions_and_operations_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/sessions.redb");
        {
            let store = RedbStore::open(&path).await.unwrap();
            let first = store.create(&sample("s1", "backend-0")).await.unwrap();
            assert_eq!(first.backend_id, "backend-0");
            // A second creation of the same key returns the first record.
            let again = store.create(&sample("s1", "backend-1")).await.unwrap();
            assert_eq!(again.backend_id, "backend-0");
            let mut updated = sample("s2", "backend-1");
            updated.last_active_ms = 99;
            store
                .apply(vec![
                    Change::Put(updated.clone()),
                    Change::PutOperation(
                        "op-1".into(),
                        OperationRecord {
                            kind: RecordKind::Bound,
                            session_id: "s2".into(),
                        },
                    ),
                    Change::PutOperation(
                        "op-2".into(),
                        OperationRecord {
                            kind: RecordKind::Bound,
                            session_id: "s2".into(),
                        },
                    ),
                    Change::RemoveOperation("op-2".into()),
                ])
                .await
                .unwrap();
            assert_eq!(
                store.get(RecordKind::Bound, "s2").await.unwrap(),
                Some(updated)
            );
        }
        let store = RedbStore::open(&path).await.unwrap();
        let snapshot = store.load().await.unwrap();
        assert_eq!(snapshot.sessions.len(), 2);
        assert_eq!(snapshot.operations.len(), 1);
        assert_eq!(
            store.operation("op-1").await.unwrap().unwrap().session_id,
            "s2"
        );
        store
            .apply(vec![Change::Remove(RecordKind::Bound, "s1".into())])
            .await
            .unwrap();
        assert_eq!(store.get(RecordKind::Bound, "s1").await.unwrap(), None);
        assert_eq!(store.get(RecordKind::Control, "s2").await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_second_process_on_the_same_file_is_told_why() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sessions.redb");
        let _first = RedbStore::open(&path).await.unwrap();
        let second = RedbStore::open(&path).await.unwrap_err().to_string();
        assert!(second.contains("store.path"), "{second}");
    }

    #[tokio::test]
    async fn concurrent_creations_agree() {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(&dir.path().join("s.redb")).await.unwrap();
        let mut tasks = Vec::new();
        for i in 0..8 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                store
                    .create(&sample("race", &format!("backend-{i}")))
                    .await
                    .unwrap()
                    .backend_id
            }));
        }
        let mut winners = std::collections::HashSet::new();
        for t in tasks {
            winners.insert(t.await.unwrap());
        }
        assert_eq!(winners.len(), 1);
    }
}
