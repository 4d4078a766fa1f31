//! The router's background work: the store writer (changes written behind the request path),
//! the keeper (idle and old sessions expired, engines nobody uses stopped, removed backends let
//! go, activity written, provider status shown), and one watcher per provider that re-lists it
//! when it says its backends changed.
//!
//! [`Background::spawn`] starts all of it when a router is built; it ends when the router is
//! shut down or dropped.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use sc_backend_api::BackendProvider;
use sc_store::{Change, SessionStore};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::Inner;
use crate::registry::{Expiry, Session, now_ms};
use crate::sessions::CloseReason;

/// The tasks of a router's background work.
#[derive(Debug)]
pub(crate) struct Background {
    tasks: std::sync::Mutex<Vec<JoinHandle<()>>>,
    /// Bumped when the providers are replaced (a reload): their watchers end.
    providers_epoch: watch::Sender<u64>,
}

impl Background {
    pub(crate) fn new() -> Self {
        Background {
            tasks: std::sync::Mutex::new(Vec::new()),
            providers_epoch: watch::channel(0).0,
        }
    }

    /// Starts the keeper, the health probes and a watcher per provider. Every task holds the
    /// router weakly and ends when it is dropped.
    pub(crate) fn spawn(inner: &Arc<Inner>) {
        let weak = Arc::downgrade(inner);
        let mut tasks = vec![tokio::spawn(run(weak.clone()))];
        if !inner.settings.health.interval.is_zero() {
            tasks.push(tokio::spawn(crate::health::run_probes(weak.clone())));
        }
        inner.background.add(tasks);
        watch_providers(inner);
    }

    fn add(&self, handles: Vec<JoinHandle<()>>) {
        let mut tasks = self
            .tasks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        tasks.retain(|t| !t.is_finished());
        tasks.extend(handles);
    }

    /// Stops every task.
    pub(crate) fn stop(&self) {
        for task in self
            .tasks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .drain(..)
        {
            task.abort();
        }
    }
}

/// Starts one watcher per current provider: when the provider says its backends changed, the
/// pool is synced with its new list (new backends take sessions, vanished ones drain). The
/// watchers of replaced providers end at the next reload.
pub(crate) fn watch_providers(inner: &Arc<Inner>) {
    let epoch = &inner.background.providers_epoch;
    epoch.send_modify(|n| *n += 1);
    let mut handles = Vec::new();
    for provider in inner.pool.providers().iter() {
        let weak = Arc::downgrade(inner);
        let provider = provider.clone();
        let mut epoch = epoch.subscribe();
        epoch.mark_unchanged();
        handles.push(tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = provider.changed() => {}
                    _ = epoch.changed() => return,
                }
                let Some(inner) = weak.upgrade() else {
                    return;
                };
                sync_provider(&inner, &provider).await;
            }
        }));
    }
    inner.background.add(handles);
}

async fn sync_provider(inner: &Inner, provider: &Arc<dyn BackendProvider>) {
    match inner.pool.sync_provider(provider).await {
        Ok((added, removed)) if !added.is_empty() || !removed.is_empty() => {
            info!(
                provider = provider.name(),
                ?added,
                ?removed,
                "the provider's backends changed"
            );
        }
        Ok(_) => {}
        Err(e) => {
            warn!(provider = provider.name(), error = %e, "re-listing a provider's backends failed; its last list stays in force");
        }
    }
}

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

/// Writes the records of the sessions active since the last batch (the registry's dirty list:
/// the work is the sessions that changed, not all of them).
fn persist_activity(inner: &Inner) {
    for session in inner.registry.take_dirty() {
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
        show_provider_status(&inner);
        inner
            .registry
            .prune_tombstones(inner.settings.sessions.tombstone_ttl);
        // Activity is written every few seconds, not on every call.
        if ticks.is_multiple_of(5) {
            persist_activity(&inner);
        }
    }
}

/// Closes the sessions that are due (idle or too old), looking only at those whose filed
/// deadline has come; one that was active since, or is busy, is filed again under its new one.
async fn expire_sessions(inner: &Inner) {
    let expiry = inner.registry.expiry;
    if expiry.idle_ms == 0 && expiry.lifetime_ms == 0 {
        return;
    }
    let now = now_ms();
    for session in inner.registry.deadlines.due(now, expiry.granularity_ms) {
        match expiry_reason(&expiry, &session, now) {
            Some(reason) => {
                info!(session_id = %session.id, reason = reason.as_str(), "session expired");
                inner.close(&session, reason).await;
            }
            None => {
                if let Some(at) = expiry.next_check(&session, now) {
                    inner
                        .registry
                        .deadlines
                        .file(&session, at, expiry.granularity_ms);
                }
            }
        }
    }
}

/// Why `session` expires now, if it does. A session with a call in flight never expires
/// mid-query.
fn expiry_reason(expiry: &Expiry, session: &Session, now: u64) -> Option<CloseReason> {
    if session.busy() {
        return None;
    }
    let idle_for = now.saturating_sub(session.last_active_ms());
    let age = now.saturating_sub(session.created_at_ms());
    if expiry.idle_ms > 0 && idle_for >= expiry.idle_ms {
        Some(CloseReason::IdleTimeout)
    } else if expiry.lifetime_ms > 0 && age >= expiry.lifetime_ms {
        Some(CloseReason::MaxLifetime)
    } else {
        None
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
        let Some(timeout) = backend.provider.idle_timeout_for(backend.id()) else {
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

/// Shows every provider's failed refreshes in `sc_proxy_provider_refresh_failures_total`.
fn show_provider_status(inner: &Inner) {
    for provider in inner.pool.providers().iter() {
        inner
            .metrics
            .provider_refresh_failures(provider.name(), provider.status().refresh_failures);
    }
}
