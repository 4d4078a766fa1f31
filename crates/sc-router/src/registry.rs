//! The session registry: which session lives on which backend, and which operations it runs.
//!
//! Three indexes, each a sharded concurrent map so no lock is shared by all sessions:
//! control-plane sessions by their id, header-less sessions by the client's `session_id`, and
//! operations by `operation_id`.
//!
//! Beside them, what lets the keeper work in proportion to what changed rather than to how many
//! sessions there are: sessions filed by the time they may next expire ([`Deadlines`]), the
//! sessions active since their record was last written (the dirty list), and the closed
//! sessions remembered, in the order they were closed.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use serde::Serialize;

use sc_store::{RecordKind, SessionRecord};

use crate::backends::BackendHandle;

/// How a session came to exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum SessionKind {
    /// Created through the control plane; clients send its id as `x-spark-connect-session-id`.
    Control,
    /// Bound on first sight from the request's own `session_id` and `user_id`.
    Bound,
}

/// What a session has done, like the Kubeflow SDK's `SessionMetrics`. Plain atomics, touched on
/// the forwarding path; shared with the request and response bodies of its calls.
#[derive(Debug, Default)]
pub(crate) struct SessionStats {
    pub(crate) queries: AtomicU64,
    pub(crate) active_operations: AtomicU64,
    pub(crate) artifact_uploads: AtomicU64,
    pub(crate) bytes_in: AtomicU64,
    pub(crate) bytes_out: AtomicU64,
    pub(crate) execution_ms: AtomicU64,
    pub(crate) errors: AtomicU64,
}

/// A session's metrics as the control plane shows them.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SessionMetrics {
    /// ExecutePlan calls (queries and commands) so far.
    pub queries_executed: u64,
    /// ExecutePlan calls in flight.
    pub active_operations: u64,
    /// AddArtifacts calls so far.
    pub artifacts_uploaded: u64,
    /// Message bytes from the client to the backend.
    pub bytes_in: u64,
    /// Message bytes from the backend to the client.
    pub bytes_out: u64,
    /// Total time spent in ExecutePlan calls, in milliseconds.
    pub execution_time_ms: u64,
    /// Calls that ended with a status other than OK.
    pub errors: u64,
    /// Last call start or end, milliseconds since the Unix epoch.
    pub last_activity_ms: u64,
}

impl From<SessionKind> for RecordKind {
    fn from(kind: SessionKind) -> Self {
        match kind {
            SessionKind::Control => RecordKind::Control,
            SessionKind::Bound => RecordKind::Bound,
        }
    }
}

impl From<RecordKind> for SessionKind {
    fn from(kind: RecordKind) -> Self {
        match kind {
            RecordKind::Control => SessionKind::Control,
            RecordKind::Bound => SessionKind::Bound,
        }
    }
}

/// One session known to the router.
#[derive(Debug)]
pub(crate) struct Session {
    pub(crate) id: String,
    pub(crate) kind: SessionKind,
    pub(crate) user_id: Option<String>,
    /// The application name its creator gave (control-plane sessions).
    pub(crate) app_name: Option<String>,
    /// The engine profile it asked for, if any.
    pub(crate) profile: Option<String>,
    pub(crate) backend: Arc<BackendHandle>,
    pub(crate) created_at: SystemTime,
    pub(crate) stats: Arc<SessionStats>,
    last_active_ms: AtomicU64,
    /// `last_active_ms` when the record was last written to the store.
    persisted_ms: AtomicU64,
    /// When a replica last checked its cached copy against a shared store.
    pub(crate) checked_ms: AtomicU64,
    /// In the registry's dirty list (active since its record was last written).
    dirty: AtomicBool,
    active_calls: AtomicUsize,
    calls: AtomicU64,
    closing: AtomicBool,
    closed: AtomicBool,
    /// Why the session is dead (its backend restarted or went away), once it is.
    dead: OnceLock<String>,
    /// `(user_id, session_id)` pairs the clients of a control session used on the backend, so
    /// deleting the session can release them there.
    spark_sessions: Mutex<HashSet<(String, String)>>,
    /// The backend's server-side session id for each Spark session id seen, to notice a backend
    /// that restarted (and so lost the session).
    server_side: Mutex<Vec<(String, String)>>,
    /// The operation ids indexed for this session, so closing it touches only its own entries.
    operations: Mutex<Vec<String>>,
}

pub(crate) fn now_ms() -> u64 {
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
            app_name: None,
            profile: None,
            backend,
            created_at: SystemTime::now(),
            stats: Arc::default(),
            last_active_ms: AtomicU64::new(now_ms()),
            persisted_ms: AtomicU64::new(0),
            checked_ms: AtomicU64::new(now_ms()),
            dirty: AtomicBool::new(false),
            active_calls: AtomicUsize::new(0),
            calls: AtomicU64::new(0),
            closing: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            dead: OnceLock::new(),
            spark_sessions: Mutex::new(HashSet::new()),
            server_side: Mutex::new(Vec::new()),
            operations: Mutex::new(Vec::new()),
        }
    }

    /// A session as a store has it, bound again to `backend`.
    pub(crate) fn from_record(record: &SessionRecord, backend: Arc<BackendHandle>) -> Self {
        let kind = SessionKind::from(record.kind);
        let mut session = Session::new(record.id.clone(), kind, record.user_id.clone(), backend);
        session.app_name = record.app_name.clone();
        session.profile = record.profile.clone();
        session.created_at = UNIX_EPOCH + Duration::from_millis(record.created_at_ms);
        session
            .last_active_ms
            .store(record.last_active_ms, Ordering::Relaxed);
        session
            .persisted_ms
            .store(record.last_active_ms, Ordering::Relaxed);
        if let Some(why) = &record.dead {
            let _ = session.dead.set(why.clone());
        }
        session.spark_sessions = Mutex::new(record.spark_sessions.iter().cloned().collect());
        if let Some(ssid) = &record.server_side_session_id {
            let spark_session = match kind {
                SessionKind::Bound => record.id.clone(),
                SessionKind::Control => String::new(),
            };
            session.server_side = Mutex::new(vec![(spark_session, ssid.clone())]);
        }
        session
    }

    /// The session as a store keeps it.
    pub(crate) fn created_at_ms(&self) -> u64 {
        millis(self.created_at)
    }

    pub(crate) fn record(&self) -> SessionRecord {
        SessionRecord {
            id: self.id.clone(),
            kind: self.kind.into(),
            user_id: self.user_id.clone(),
            backend_id: self.backend.id().to_string(),
            endpoint: self.backend.endpoint_text.clone(),
            created_at_ms: millis(self.created_at),
            last_active_ms: self.last_active_ms.load(Ordering::Relaxed),
            dead: self.dead.get().cloned(),
            spark_sessions: self.spark_sessions(),
            server_side_session_id: self
                .server_side
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .first()
                .map(|(_, ssid)| ssid.clone()),
            app_name: self.app_name.clone(),
            profile: self.profile.clone(),
        }
    }

    /// Whether the record in the store is behind this copy's activity; marks it written.
    pub(crate) fn take_unpersisted(&self) -> bool {
        let last = self.last_active_ms.load(Ordering::Relaxed);
        self.persisted_ms.swap(last, Ordering::Relaxed) != last
    }

    pub(crate) fn last_active_ms(&self) -> u64 {
        self.last_active_ms.load(Ordering::Relaxed)
    }

    pub(crate) fn busy(&self) -> bool {
        self.active_calls.load(Ordering::Relaxed) > 0
    }

    pub(crate) fn dead_reason(&self) -> Option<&str> {
        self.dead.get().map(String::as_str)
    }

    /// Marks the session dead; true for the first caller.
    pub(crate) fn mark_dead(&self, why: String) -> bool {
        self.dead.set(why).is_ok()
    }

    pub(crate) fn set_closing(&self) {
        self.closing.store(true, Ordering::Relaxed);
    }

    /// Compares the backend's server-side session id for `spark_session` with the first one
    /// seen. Returns the earlier id when it changed (the backend lost the session).
    pub(crate) fn check_server_side(&self, spark_session: &str, ssid: &str) -> Option<String> {
        let mut seen = self
            .server_side
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match seen
            .iter()
            .find(|(s, _)| s == spark_session || s.is_empty())
        {
            Some((_, first)) if first != ssid => Some(first.clone()),
            Some(_) => None,
            None => {
                seen.push((spark_session.to_owned(), ssid.to_owned()));
                None
            }
        }
    }

    pub(crate) fn metrics(&self) -> SessionMetrics {
        let s = &self.stats;
        SessionMetrics {
            queries_executed: s.queries.load(Ordering::Relaxed),
            active_operations: s.active_operations.load(Ordering::Relaxed),
            artifacts_uploaded: s.artifact_uploads.load(Ordering::Relaxed),
            bytes_in: s.bytes_in.load(Ordering::Relaxed),
            bytes_out: s.bytes_out.load(Ordering::Relaxed),
            execution_time_ms: s.execution_ms.load(Ordering::Relaxed),
            errors: s.errors.load(Ordering::Relaxed),
            last_activity_ms: self.last_active_ms.load(Ordering::Relaxed),
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

    /// Remembers a Spark session used through this control session; true when it is new.
    pub(crate) fn note_spark_session(&self, user_id: Option<&str>, session_id: &str) -> bool {
        let mut set = self
            .spark_sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let key_user = user_id.unwrap_or("");
        if set.iter().any(|(u, s)| u == key_user && s == session_id) {
            return false;
        }
        set.insert((key_user.to_owned(), session_id.to_owned()))
    }

    /// Forgets a released Spark session; true when it was known.
    pub(crate) fn forget_spark_session(&self, user_id: Option<&str>, session_id: &str) -> bool {
        let mut set = self
            .spark_sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        set.remove(&(user_id.unwrap_or("").to_owned(), session_id.to_owned()))
    }

    pub(crate) fn record_kind(&self) -> RecordKind {
        self.kind.into()
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

    /// The session's state, in the style of Apache Livy.
    pub(crate) fn state(&self) -> &'static str {
        if self.closed.load(Ordering::Relaxed) {
            "closed"
        } else if self.closing.load(Ordering::Relaxed) {
            "closing"
        } else if self.dead.get().is_some() {
            "dead"
        } else if self.backend.health.is_unhealthy() {
            "error"
        } else if self.busy() {
            "busy"
        } else {
            "idle"
        }
    }

    pub(crate) fn info(&self) -> SessionInfo {
        SessionInfo {
            id: self.id.clone(),
            kind: self.kind,
            user_id: self.user_id.clone(),
            app_name: self.app_name.clone(),
            profile: self.profile.clone(),
            backend: self.backend.id().to_string(),
            endpoint: self.backend.endpoint_text.clone(),
            state: self.state(),
            error: self.dead.get().cloned().or_else(|| {
                self.backend
                    .health
                    .is_unhealthy()
                    .then(|| format!("backend '{}' is unhealthy", self.backend.id()))
            }),
            created_at_ms: millis(self.created_at),
            last_active_ms: self.last_active_ms.load(Ordering::Relaxed),
            active_calls: self.active_calls.load(Ordering::Relaxed),
            calls: self.calls.load(Ordering::Relaxed),
            metrics: self.metrics(),
        }
    }
}

fn millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// A snapshot of one session, as the control plane shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SessionInfo {
    /// The session id (a control-plane id, or the client's `session_id` for bound sessions).
    pub id: String,
    /// How the session was created.
    pub kind: SessionKind,
    /// The user, where known.
    pub user_id: Option<String>,
    /// The application name its creator gave (control-plane sessions).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app_name: Option<String>,
    /// The engine profile the session asked for, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// The backend's id.
    pub backend: String,
    /// The backend's endpoint.
    pub endpoint: String,
    /// `starting` (its backend is being launched), `idle`, `busy` (calls in flight), `closing`,
    /// `closed`, `error` (its backend is unhealthy; it may recover) or `dead` (its backend
    /// restarted or went away; the session cannot be used again).
    pub state: &'static str,
    /// Why the session is in `error` or `dead`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Creation time, milliseconds since the Unix epoch.
    pub created_at_ms: u64,
    /// Last call start or end, milliseconds since the Unix epoch.
    pub last_active_ms: u64,
    /// Calls in flight.
    pub active_calls: usize,
    /// Calls made so far.
    pub calls: u64,
    /// What the session has done.
    pub metrics: SessionMetrics,
}

impl SessionInfo {
    /// A session whose backend is being started.
    pub(crate) fn starting(
        id: &str,
        kind: SessionKind,
        user_id: Option<String>,
        app_name: Option<String>,
        profile: Option<String>,
    ) -> Self {
        let now = now_ms();
        SessionInfo {
            id: id.to_owned(),
            kind,
            user_id,
            app_name,
            profile,
            backend: String::new(),
            endpoint: String::new(),
            state: "starting",
            error: None,
            created_at_ms: now,
            last_active_ms: now,
            active_calls: 0,
            calls: 0,
            metrics: SessionMetrics::default(),
        }
    }
}

/// A session the router closed lately, as the control plane shows it: its last snapshot (state
/// `closed`) and why it was closed.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ClosedSessionInfo {
    /// The session as it was when it closed.
    #[serde(flatten)]
    pub session: SessionInfo,
    /// Why: `deleted` (through the control plane), `released` (by its client), `idle_timeout`,
    /// `max_lifetime` or `dead` (its backend lost it).
    pub close_reason: &'static str,
    /// When it closed, milliseconds since the Unix epoch.
    pub closed_at_ms: u64,
}

/// How many closed sessions the registry remembers for the control plane.
const RECENTLY_CLOSED: usize = 200;

/// What is remembered of a session the proxy closed, so its client learns why (and only its
/// client: the owner is kept to check who asks).
#[derive(Debug, Clone)]
pub(crate) struct Tombstone {
    /// Why it was closed (`idle timeout`, `max lifetime`, `dead`).
    pub(crate) why: String,
    /// The session's owner; `None` when it had none (authentication off, no `user_id`).
    pub(crate) owner: Option<String>,
    /// When it was closed, in ms since the epoch.
    at_ms: u64,
}

/// When sessions expire: the limits of `router.sessions`, in milliseconds (0: never), and how
/// finely the keeper files deadlines (its check interval).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Expiry {
    pub(crate) idle_ms: u64,
    pub(crate) lifetime_ms: u64,
    pub(crate) granularity_ms: u64,
}

impl Expiry {
    pub(crate) fn new(settings: &crate::SessionSettings) -> Self {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        Expiry {
            idle_ms: ms(settings.idle_timeout),
            lifetime_ms: ms(settings.max_lifetime),
            granularity_ms: ms(settings.check_interval).max(1),
        }
    }

    /// When `session` may next expire, if it can at all: its idle deadline or the end of its
    /// lifetime, whichever comes first. A session busy now is looked at again a few intervals
    /// on (its idle time starts when its last call ends).
    pub(crate) fn next_check(&self, session: &Session, now: u64) -> Option<u64> {
        let idle = (self.idle_ms > 0).then(|| {
            if session.busy() {
                now.saturating_add(self.granularity_ms.saturating_mul(5))
            } else {
                session.last_active_ms().saturating_add(self.idle_ms)
            }
        });
        let lifetime = (self.lifetime_ms > 0)
            .then(|| session.created_at_ms().saturating_add(self.lifetime_ms));
        match (idle, lifetime) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// Sessions filed by the time the keeper should next look at them (their next possible expiry,
/// rounded to the keeper's interval). A session is filed when it joins, looked at once its time
/// comes, and filed again if it is not due after all (it was active since, or is busy): the
/// keeper's work per tick is the sessions due, not every session.
#[derive(Debug, Default)]
pub(crate) struct Deadlines {
    buckets: Mutex<BTreeMap<u64, Vec<Weak<Session>>>>,
}

impl Deadlines {
    /// Files `session` to be looked at at `at_ms`.
    pub(crate) fn file(&self, session: &Arc<Session>, at_ms: u64, granularity_ms: u64) {
        let bucket = at_ms.div_ceil(granularity_ms.max(1));
        self.buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(bucket)
            .or_default()
            .push(Arc::downgrade(session));
    }

    /// Takes the sessions whose time has come by `now_ms` (those since closed are dropped).
    pub(crate) fn due(&self, now_ms: u64, granularity_ms: u64) -> Vec<Arc<Session>> {
        let bucket = now_ms / granularity_ms.max(1);
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let later = buckets.split_off(&(bucket + 1));
        let due = std::mem::replace(&mut *buckets, later);
        drop(buckets);
        due.into_values()
            .flatten()
            .filter_map(|weak| weak.upgrade())
            .filter(|s| !s.closed.load(Ordering::Relaxed))
            .collect()
    }
}

/// The three indexes, and what the keeper works from.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    control: DashMap<String, Arc<Session>>,
    bound: DashMap<String, Arc<Session>>,
    operations: DashMap<String, Arc<Session>>,
    /// Session id → what is remembered of it once closed.
    tombstones: DashMap<String, Tombstone>,
    /// Tombstones in the order they were made, to forget the old ones without a walk.
    buried: Mutex<VecDeque<(u64, String)>>,
    /// When sessions may expire.
    pub(crate) expiry: Expiry,
    /// Sessions by when they may next expire.
    pub(crate) deadlines: Deadlines,
    /// Sessions active since their record was last written (only with a store).
    dirty: Mutex<Vec<Weak<Session>>>,
    /// The sessions closed lately, newest last, for operators (touched only when one closes).
    closed: Mutex<VecDeque<ClosedSessionInfo>>,
}

impl Registry {
    /// An empty registry whose sessions expire as `settings` say.
    pub(crate) fn new(settings: &crate::SessionSettings) -> Self {
        Registry {
            expiry: Expiry::new(settings),
            ..Registry::default()
        }
    }

    /// Files a session that joined the indexes under its first deadline.
    fn file(&self, session: &Arc<Session>) {
        if let Some(at) = self.expiry.next_check(session, now_ms()) {
            self.deadlines.file(session, at, self.expiry.granularity_ms);
        }
    }

    /// Notes that `session` was active, so its record is written with the next batch. Costs one
    /// atomic operation, and a push the first time after each batch.
    pub(crate) fn touched(&self, session: &Arc<Session>) {
        if !session.dirty.swap(true, Ordering::AcqRel) {
            self.dirty
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(Arc::downgrade(session));
        }
    }

    /// Takes the sessions active since the last call (for the store writer).
    pub(crate) fn take_dirty(&self) -> Vec<Arc<Session>> {
        let taken = std::mem::take(
            &mut *self
                .dirty
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        taken
            .into_iter()
            .filter_map(|weak| weak.upgrade())
            .inspect(|s| s.dirty.store(false, Ordering::Release))
            .filter(|s| !s.closed.load(Ordering::Relaxed))
            .collect()
    }

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
        session.backend.session_added();
        self.file(&session);
        self.control.insert(session.id.clone(), session);
    }

    /// Binds a header-less session unless another call bound it first; returns the winner.
    pub(crate) fn bind(&self, session: Arc<Session>) -> Arc<Session> {
        match self.bound.entry(session.id.clone()) {
            Entry::Occupied(existing) => existing.get().clone(),
            Entry::Vacant(slot) => {
                session.backend.session_added();
                slot.insert(session.clone());
                self.file(&session);
                session
            }
        }
    }

    /// Indexes an operation; true when it was new.
    pub(crate) fn add_operation(&self, operation_id: &str, session: &Arc<Session>) -> bool {
        if self.operations.contains_key(operation_id) {
            return false;
        }
        let new = self
            .operations
            .insert(operation_id.to_owned(), session.clone())
            .is_none();
        if new {
            session
                .operations
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(operation_id.to_owned());
        }
        new
    }

    /// Re-inserts a session read from a store; the copy already there wins.
    pub(crate) fn restore(&self, session: Arc<Session>) -> Arc<Session> {
        let map = match session.kind {
            SessionKind::Control => &self.control,
            SessionKind::Bound => &self.bound,
        };
        match map.entry(session.id.clone()) {
            Entry::Occupied(existing) => existing.get().clone(),
            Entry::Vacant(slot) => {
                session.backend.session_added();
                slot.insert(session.clone());
                self.file(&session);
                session
            }
        }
    }

    pub(crate) fn tombstone(&self, id: &str) -> Option<Tombstone> {
        self.tombstones.get(id).map(|t| t.clone())
    }

    /// Remembers a closed session: why, and whose it was.
    pub(crate) fn bury(&self, session: &Session, why: String) {
        let at_ms = now_ms();
        self.tombstones.insert(
            session.id.clone(),
            Tombstone {
                why,
                owner: session.user_id.clone(),
                at_ms,
            },
        );
        self.buried
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push_back((at_ms, session.id.clone()));
    }

    /// Remembers a closed session for the control plane (the last [`RECENTLY_CLOSED`]).
    pub(crate) fn remember_closed(&self, session: &Session, reason: &'static str) {
        let closed = ClosedSessionInfo {
            session: session.info(),
            close_reason: reason,
            closed_at_ms: now_ms(),
        };
        let mut list = self
            .closed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if list.len() == RECENTLY_CLOSED {
            list.pop_front();
        }
        list.push_back(closed);
    }

    /// The sessions closed lately, newest first.
    pub(crate) fn recently_closed(&self) -> Vec<ClosedSessionInfo> {
        self.closed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .rev()
            .cloned()
            .collect()
    }

    /// Forgets tombstones older than `ttl`, oldest first, stopping at the first young one.
    pub(crate) fn prune_tombstones(&self, ttl: Duration) {
        let horizon = now_ms().saturating_sub(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX));
        let mut buried = self
            .buried
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        while buried.front().is_some_and(|(at, _)| *at < horizon) {
            if let Some((at, id)) = buried.pop_front() {
                // The id may have been buried again since; only the old tombstone goes.
                self.tombstones.remove_if(&id, |_, t| t.at_ms == at);
            }
        }
    }

    pub(crate) fn remove_operation(&self, operation_id: &str) {
        if let Some((_, session)) = self.operations.remove(operation_id) {
            session
                .operations
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .retain(|op| op != operation_id);
        }
    }

    /// Removes a session from every index. Returns the operation ids it had, or `None` if it
    /// was already removed.
    pub(crate) fn remove(&self, session: &Arc<Session>) -> Option<Vec<String>> {
        if !session.close() {
            return None;
        }
        let map = match session.kind {
            SessionKind::Control => &self.control,
            SessionKind::Bound => &self.bound,
        };
        map.remove_if(&session.id, |_, s| Arc::ptr_eq(s, session));
        let operations = std::mem::take(
            &mut *session
                .operations
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        for op in &operations {
            self.operations
                .remove_if(op, |_, s| Arc::ptr_eq(s, session));
        }
        session.backend.session_removed();
        Some(operations)
    }

    /// The sessions bound to `backend` (this handle), walking every session in place: for rare
    /// events (a backend found gone, a request for its UI), never the call path.
    pub(crate) fn on_backend(&self, backend: &Arc<BackendHandle>) -> Vec<Arc<Session>> {
        self.control
            .iter()
            .chain(self.bound.iter())
            .filter(|e| Arc::ptr_eq(&e.value().backend, backend))
            .map(|e| e.value().clone())
            .collect()
    }

    pub(crate) fn all(&self) -> Vec<Arc<Session>> {
        self.control
            .iter()
            .chain(self.bound.iter())
            .map(|e| e.value().clone())
            .collect()
    }

    pub(crate) fn find_kind(&self, kind: RecordKind, id: &str) -> Option<Arc<Session>> {
        match kind {
            RecordKind::Control => self.control(id),
            RecordKind::Bound => self.bound(id),
        }
    }

    pub(crate) fn find(&self, id: &str) -> Option<Arc<Session>> {
        self.control(id).or_else(|| self.bound(id))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn settings(idle_ms: u64, lifetime_ms: u64) -> crate::SessionSettings {
        crate::SessionSettings {
            idle_timeout: Duration::from_millis(idle_ms),
            max_lifetime: Duration::from_millis(lifetime_ms),
            check_interval: Duration::from_millis(100),
            ..Default::default()
        }
    }

    fn backend() -> Arc<BackendHandle> {
        let metrics = Arc::new(crate::Metrics::new());
        crate::backends::BackendPool::new(Vec::new(), crate::RouterSettings::default(), metrics)
            .detached("b", "http://127.0.0.1:1")
    }

    fn bind(registry: &Registry, id: &str, backend: &Arc<BackendHandle>) -> Arc<Session> {
        registry.bind(Arc::new(Session::new(
            id.to_owned(),
            SessionKind::Bound,
            Some("u".into()),
            backend.clone(),
        )))
    }

    #[tokio::test]
    async fn the_keeper_sees_only_sessions_whose_deadline_came() {
        let registry = Registry::new(&settings(60_000, 0));
        let b = backend();
        let sessions: Vec<_> = (0..1000)
            .map(|i| bind(&registry, &format!("s{i}"), &b))
            .collect();
        let now = now_ms();
        let g = registry.expiry.granularity_ms;
        // Nothing is due before the idle timeout: a tick costs nothing per session.
        assert!(registry.deadlines.due(now + 59_000, g).is_empty());
        let due = registry.deadlines.due(now + 60_200, g);
        assert_eq!(due.len(), sessions.len());
        // Taken once: a second look finds nothing until they are filed again.
        assert!(registry.deadlines.due(now + 60_200, g).is_empty());
        // A busy session is looked at again soon; a closed one is dropped.
        sessions[0].call_started();
        let at = registry.expiry.next_check(&sessions[0], now).unwrap();
        assert!(at <= now + 5 * g, "{at} vs {now}");
        registry.deadlines.file(&sessions[0], at, g);
        registry.deadlines.file(&sessions[1], at, g);
        registry.remove(&sessions[1]).unwrap();
        let due = registry.deadlines.due(at + g, g);
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].id, "s0");
    }

    #[tokio::test]
    async fn lifetime_bounds_the_next_look_and_no_limits_file_nothing() {
        let registry = Registry::new(&settings(60_000, 1_000));
        let b = backend();
        let s = bind(&registry, "s", &b);
        let at = registry.expiry.next_check(&s, now_ms()).unwrap();
        assert!(at <= s.created_at_ms() + 1_000);
        let never = Registry::new(&settings(0, 0));
        let s = bind(&never, "s", &b);
        assert_eq!(never.expiry.next_check(&s, now_ms()), None);
        assert!(never.deadlines.due(u64::MAX / 2, 100).is_empty());
    }

    #[tokio::test]
    async fn activity_is_listed_once_per_batch() {
        let registry = Registry::new(&settings(0, 0));
        let b = backend();
        let s = bind(&registry, "s", &b);
        let other = bind(&registry, "t", &b);
        for _ in 0..5 {
            registry.touched(&s);
        }
        let dirty = registry.take_dirty();
        assert_eq!(dirty.len(), 1);
        assert!(registry.take_dirty().is_empty());
        registry.touched(&s);
        registry.touched(&other);
        registry.remove(&other).unwrap();
        let dirty = registry.take_dirty();
        assert_eq!(dirty.len(), 1, "a closed session's activity is not written");
    }

    #[tokio::test]
    async fn tombstones_are_forgotten_oldest_first() {
        let registry = Registry::new(&settings(0, 0));
        let b = backend();
        let s = bind(&registry, "s", &b);
        registry.bury(&s, "idle timeout".into());
        assert!(registry.tombstone("s").is_some());
        registry.prune_tombstones(Duration::from_secs(60));
        assert!(registry.tombstone("s").is_some());
        std::thread::sleep(Duration::from_millis(5));
        registry.prune_tombstones(Duration::ZERO);
        assert!(registry.tombstone("s").is_none());
    }
}
