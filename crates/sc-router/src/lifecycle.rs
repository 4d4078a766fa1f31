//! Sessions over time: restoring the table from the store, writing changes behind the request
//! path, expiring idle and old sessions, stopping engines nobody uses, and letting removed
//! backends go.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use sc_store::{Change, OperationRecord, RecordKind, SessionRecord, SessionStore};
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::registry::{Session, now_ms};
use crate::{Inner, RouterError};

/// Starts the task that writes changes to the store in batches, in order. A failed batch is
/// retried with a growing pause (up to a minute) so that a store that comes back gets every
/// change; the request path never waits for it.
pub(crate) fn spawn_writer(store: Arc<dyn SessionStore>) -> mpsc::UnboundedSender<Change> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Change>();
    tokio::spawn(async move {
        let mut batch = Vec::new();
        while let Some(first) = rx.recv().await {
            batch.push(first);
            while batch.len() < 1024 {
                match rx.try_recv() {
                    Ok(change) => batch.push(change),
                    Err(_) => break,
                }
            }
            let mut pause = Duration::from_millis(100);
            loop {
                match store.apply(batch.clone()).await {
                    Ok(()) => break,
                    Err(e) => {
                        warn!(error = %e, changes = batch.len(), retry_in = ?pause, "writing sessions to the store failed; retrying");
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(Duration::from_secs(60));
                        // Take what arrived meanwhile, so the backlog drains in one batch.
                        while let Ok(change) = rx.try_recv() {
                            batch.push(change);
                        }
                    }
                }
            }
            batch.clear();
        }
    });
    tx
}

/// Writes the activity of every session whose record is behind, then waits a moment for the
/// writer (on shutdown).
pub(crate) async fn flush(inner: &Inner) {
    if inner.persist.is_none() {
        return;
    }
    persist_activity(inner);
    tokio::time::sleep(Duration::from_millis(200)).await;
}

fn persist_activity(inner: &Inner) {
    for session in inner.registry.select(Session::unpersisted) {
        if session.take_unpersisted() {
            inner.persist(Change::Put(session.record()));
        }
    }
}

/// The keeper's loop; ends when the router is dropped.
pub(crate) async fn run(inner: Weak<Inner>) {
    let Some(interval) = inner.upgrade().map(|i| i.settings.sessions.check_interval) else {
        return;
    };
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut ticks: u64 = 0;
    loop {
        ticker.tick().await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        ticks += 1;
        expire_sessions(&inner).await;
        stop_idle_engines(&inner).await;
        let_removed_backends_go(&inner);
        inner
            .registry
            .prune_tombstones(inner.settings.sessions.tombstone_ttl);
        // Activity is written every few seconds, not on every call.
        if ticks.is_multiple_of(5) {
            persist_activity(&inner);
        }
    }
}

async fn expire_sessions(inner: &Inner) {
    let settings = &inner.settings.sessions;
    if settings.idle_timeout.is_zero() && settings.max_lifetime.is_zero() {
        return;
    }
    let now = now_ms();
    let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    let (idle_limit, age_limit) = (ms(settings.idle_timeout), ms(settings.max_lifetime));
    let reason_for = |session: &Session| {
        // A session with a call in flight is never expired mid-query.
        if session.busy() {
            return None;
        }
        let idle_for = now.saturating_sub(session.last_active_ms());
        let age = now.saturating_sub(session.created_at_ms());
        if idle_limit > 0 && idle_for >= idle_limit {
            Some("idle_timeout")
        } else if age_limit > 0 && age >= age_limit {
            Some("max_lifetime")
        } else {
            None
        }
    };
    for session in inner.registry.select(|s| reason_for(s).is_some()) {
        let Some(reason) = reason_for(&session) else {
            continue;
        };
        info!(session_id = %session.id, reason, "session expired");
        inner.close(&session, reason).await;
    }
}

async fn stop_idle_engines(inner: &Inner) {
    let now = now_ms();
    for backend in inner.pool.snapshot().iter().filter(|b| b.started) {
        if backend.sessions() > 0 || backend.active_streams() > 0 {
            backend.idle_since_ms.store(0, Ordering::Relaxed);
            continue;
        }
        let since = match backend.idle_since_ms.load(Ordering::Relaxed) {
            0 => {
                backend.idle_since_ms.store(now, Ordering::Relaxed);
                continue;
            }
            since => since,
        };
        let Some(timeout) = backend.provider.idle_timeout() else {
            continue;
        };
        if now.saturating_sub(since) < u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX) {
            continue;
        }
        info!(backend = %backend.id(), idle_ms = now - since, "stopping an engine nobody used for its idle timeout");
        // No new session goes there while it stops; it leaves the list once it is down.
        backend.removed.store(true, Ordering::Relaxed);
        if let Err(e) = backend.provider.stop(backend.id()).await {
            warn!(backend = %backend.id(), error = %e, "stopping an idle engine failed");
        }
        inner.pool.retire(backend);
    }
}

fn let_removed_backends_go(inner: &Inner) {
    for backend in inner.pool.snapshot().iter() {
        if backend.removed.load(Ordering::Relaxed)
            && backend.sessions() == 0
            && backend.active_streams() == 0
        {
            info!(backend = %backend.id(), "a removed backend has drained; it leaves the pool");
            inner.pool.retire(backend);
        }
    }
}

impl Inner {
    /// Loads the store's sessions into the routing tables (at start-up).
    pub(crate) async fn restore(&self) -> Result<(), RouterError> {
        let Some(store) = &self.store else {
            return Ok(());
        };
        let snapshot = store.load().await?;
        let mut restored = 0;
        let mut dead = 0;
        for record in &snapshot.sessions {
            let session = self.materialize(record);
            if session.dead_reason().is_some() {
                dead += 1;
            }
            let session = self.registry.restore(session);
            self.limiter
                .admit_session(session.user_id.as_deref().unwrap_or("anonymous"))
                .ok();
            restored += 1;
        }
        let mut operations = 0;
        for (op, record) in &snapshot.operations {
            if let Some(session) = self.registry.find_kind(record.kind, &record.session_id) {
                self.registry.add_operation(op, &session);
                operations += 1;
            }
        }
        info!(
            store = store.name(),
            sessions = restored,
            dead,
            operations,
            "session table restored"
        );
        Ok(())
    }

    /// A session from its record, bound to its backend again. A backend this proxy does not
    /// know makes the session dead, with a reason that says so.
    pub(crate) fn materialize(&self, record: &SessionRecord) -> Arc<Session> {
        match self.pool.find(&record.backend_id) {
            Some(backend) => Arc::new(Session::from_record(record, backend)),
            None => {
                let session = Session::from_record(
                    record,
                    self.pool.detached(&record.backend_id, &record.endpoint),
                );
                session.mark_dead(format!(
                    "its backend '{}' ({}) is not configured on this proxy",
                    record.backend_id, record.endpoint
                ));
                Arc::new(session)
            }
        }
    }

    /// Looks a session up in a shared store (one another replica created), and caches it.
    pub(crate) async fn fetch(
        &self,
        kind: RecordKind,
        id: &str,
    ) -> Result<Option<Arc<Session>>, RouterError> {
        let Some(store) = self.store.as_ref().filter(|s| s.shared()) else {
            return Ok(None);
        };
        Ok(store
            .get(kind, id)
            .await?
            .map(|record| self.registry.restore(self.materialize(&record))))
    }

    /// Looks an operation up in a shared store.
    pub(crate) async fn fetch_operation(
        &self,
        operation_id: &str,
    ) -> Result<Option<Arc<Session>>, RouterError> {
        let Some(store) = self.store.as_ref().filter(|s| s.shared()) else {
            return Ok(None);
        };
        let Some(OperationRecord { kind, session_id }) = store.operation(operation_id).await?
        else {
            return Ok(None);
        };
        if let Some(session) = self.registry.find_kind(kind, &session_id) {
            return Ok(Some(session));
        }
        self.fetch(kind, &session_id).await
    }

    /// With a shared store, checks a cached session against it every
    /// `router.sessions.revalidate_interval`: another replica may have closed it or found it
    /// dead. Returns false when the session is gone.
    pub(crate) async fn revalidate(&self, session: &Arc<Session>) -> Result<bool, RouterError> {
        let Some(store) = self.store.as_ref().filter(|s| s.shared()) else {
            return Ok(true);
        };
        let now = now_ms();
        let every = u64::try_from(self.settings.sessions.revalidate_interval.as_millis())
            .unwrap_or(u64::MAX);
        let checked = session.checked_ms.load(Ordering::Relaxed);
        if now.saturating_sub(checked) < every {
            return Ok(true);
        }
        session.checked_ms.store(now, Ordering::Relaxed);
        match store.get(session.record_kind(), &session.id).await {
            Ok(Some(stored)) => {
                if let Some(why) = stored.dead {
                    session.mark_dead(why);
                }
                Ok(true)
            }
            Ok(None) => {
                // Closed through another replica: forget it here without releasing it again.
                if self.registry.remove(session).is_some() {
                    self.limiter
                        .session_closed(session.user_id.as_deref().unwrap_or("anonymous"));
                }
                Ok(false)
            }
            // The store is down: keep serving what this replica knows.
            Err(e) => {
                warn!(error = %e, session_id = %session.id, "cannot check a session against the store; using the cached copy");
                Ok(true)
            }
        }
    }
}
