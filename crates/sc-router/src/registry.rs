//! The session registry: which session lives on which backend, and which operations it runs.
//!
//! Three indexes, each a sharded concurrent map so no lock is shared by all sessions:
//! control-plane sessions by their id, header-less sessions by the client's `session_id`, and
//! operations by `operation_id`.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use serde::Serialize;

use crate::backends::BackendHandle;

/// How a session came to exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionKind {
    /// Created through the control plane; clients send its id as `x-spark-connect-session-id`.
    Control,
    /// Bound on first sight from the request's own `session_id` and `user_id`.
    Bound,
}

/// One session known to the router.
#[derive(Debug)]
pub(crate) struct Session {
    pub(crate) id: String,
    pub(crate) kind: SessionKind,
    pub(crate) user_id: Option<String>,
    pub(crate) backend: Arc<BackendHandle>,
    pub(crate) created_at: SystemTime,
    last_active_ms: AtomicU64,
    active_calls: AtomicUsize,
    calls: AtomicU64,
    closed: AtomicBool,
    /// `(user_id, session_id)` pairs the clients of a control session used on the backend, so
    /// deleting the session can release them there.
    spark_sessions: Mutex<HashSet<(String, String)>>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

impl Session {
    pub(crate) fn new(
        id: String,
        kind: SessionKind,
        user_id: Option<String>,
        backend: Arc<BackendHandle>,
    ) -> Self {
        Session {
            id,
            kind,
            user_id,
            backend,
            created_at: SystemTime::now(),
            last_active_ms: AtomicU64::new(now_ms()),
            active_calls: AtomicUsize::new(0),
            calls: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            spark_sessions: Mutex::new(HashSet::new()),
        }
    }

    pub(crate) fn call_started(&self) {
        self.active_calls.fetch_add(1, Ordering::Relaxed);
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.last_active_ms.store(now_ms(), Ordering::Relaxed);
    }

    pub(crate) fn call_finished(&self) {
        self.active_calls.fetch_sub(1, Ordering::Relaxed);
        self.last_active_ms.store(now_ms(), Ordering::Relaxed);
    }

    /// Remembers a Spark session used through this control session (first use only allocates).
    pub(crate) fn note_spark_session(&self, user_id: Option<&str>, session_id: &str) {
        let mut set = self
            .spark_sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let key_user = user_id.unwrap_or("");
        if !set.iter().any(|(u, s)| u == key_user && s == session_id) {
            set.insert((key_user.to_owned(), session_id.to_owned()));
        }
    }

    pub(crate) fn forget_spark_session(&self, user_id: Option<&str>, session_id: &str) {
        let mut set = self
            .spark_sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        set.remove(&(user_id.unwrap_or("").to_owned(), session_id.to_owned()));
    }

    pub(crate) fn spark_sessions(&self) -> Vec<(String, String)> {
        self.spark_sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .cloned()
            .collect()
    }

    /// Marks the session closed; true only for the first caller, who then owns the clean-up.
    pub(crate) fn close(&self) -> bool {
        !self.closed.swap(true, Ordering::AcqRel)
    }

    pub(crate) fn info(&self) -> SessionInfo {
        let active = self.active_calls.load(Ordering::Relaxed);
        SessionInfo {
            id: self.id.clone(),
            kind: self.kind,
            user_id: self.user_id.clone(),
            backend: self.backend.id().to_string(),
            endpoint: self.backend.endpoint_text.clone(),
            state: if self.closed.load(Ordering::Relaxed) {
                "closed"
            } else if active > 0 {
                "busy"
            } else {
                "idle"
            },
            created_at_ms: self
                .created_at
                .duration_since(UNIX_EPOCH)
                .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
                .unwrap_or(0),
            last_active_ms: self.last_active_ms.load(Ordering::Relaxed),
            active_calls: active,
            calls: self.calls.load(Ordering::Relaxed),
        }
    }
}

/// A snapshot of one session, as the control plane shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SessionInfo {
    /// The session id (a control-plane id, or the client's `session_id` for bound sessions).
    pub id: String,
    /// How the session was created.
    pub kind: SessionKind,
    /// The user, where known.
    pub user_id: Option<String>,
    /// The backend's id.
    pub backend: String,
    /// The backend's endpoint.
    pub endpoint: String,
    /// `idle`, `busy` (calls in flight) or `closed`.
    pub state: &'static str,
    /// Creation time, milliseconds since the Unix epoch.
    pub created_at_ms: u64,
    /// Last call start or end, milliseconds since the Unix epoch.
    pub last_active_ms: u64,
    /// Calls in flight.
    pub active_calls: usize,
    /// Calls made so far.
    pub calls: u64,
}

/// The three indexes.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    control: DashMap<String, Arc<Session>>,
    bound: DashMap<String, Arc<Session>>,
    operations: DashMap<String, Arc<Session>>,
}

impl Registry {
    pub(crate) fn control(&self, id: &str) -> Option<Arc<Session>> {
        self.control.get(id).map(|s| s.clone())
    }

    pub(crate) fn bound(&self, session_id: &str) -> Option<Arc<Session>> {
        self.bound.get(session_id).map(|s| s.clone())
    }

    pub(crate) fn operation(&self, operation_id: &str) -> Option<Arc<Session>> {
        self.operations.get(operation_id).map(|s| s.clone())
    }

    pub(crate) fn insert_control(&self, session: Arc<Session>) {
        session.backend.metrics.sessions.inc();
        self.control.insert(session.id.clone(), session);
    }

    /// Binds a header-less session unless another call bound it first; returns the winner.
    pub(crate) fn bind(&self, session: Arc<Session>) -> Arc<Session> {
        match self.bound.entry(session.id.clone()) {
            Entry::Occupied(existing) => existing.get().clone(),
            Entry::Vacant(slot) => {
                session.backend.metrics.sessions.inc();
                slot.insert(session.clone());
                session
            }
        }
    }

    pub(crate) fn add_operation(&self, operation_id: &str, session: &Arc<Session>) {
        if !self.operations.contains_key(operation_id) {
            self.operations
                .insert(operation_id.to_owned(), session.clone());
        }
    }

    pub(crate) fn remove_operation(&self, operation_id: &str) {
        self.operations.remove(operation_id);
    }

    /// Removes a session from every index. Returns false if it was already removed.
    pub(crate) fn remove(&self, session: &Arc<Session>) -> bool {
        if !session.close() {
            return false;
        }
        let map = match session.kind {
            SessionKind::Control => &self.control,
            SessionKind::Bound => &self.bound,
        };
        map.remove_if(&session.id, |_, s| Arc::ptr_eq(s, session));
        self.operations.retain(|_, s| !Arc::ptr_eq(s, session));
        session.backend.metrics.sessions.dec();
        true
    }

    pub(crate) fn all(&self) -> Vec<Arc<Session>> {
        self.control
            .iter()
            .chain(self.bound.iter())
            .map(|e| e.value().clone())
            .collect()
    }

    pub(crate) fn find(&self, id: &str) -> Option<Arc<Session>> {
        self.control(id).or_else(|| self.bound(id))
    }
}
