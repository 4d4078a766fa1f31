//! Sessions: finding the one a call belongs to, placing and binding new ones, keeping their
//! operations and clones, and closing them. Everything the router does to a session lives here;
//! the service (`service.rs`) calls it in order, and the keeper (`lifecycle.rs`) calls
//! [`Inner::close`] when a session expires.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use http::HeaderMap;
use prost::Message as _;
use sc_backend_api::{Placement, ProviderError, StartRequest};
use sc_proto::RpcMethod;
use sc_proto::spark::connect as pb;
use sc_proto::wire::RequestFields;
use sc_store::{Change, OperationRecord, RecordKind, SessionRecord};
use tracing::{info, warn};

use crate::authz::{Access, Caller};
use crate::backends::{BackendHandle, BackendPool};
use crate::registry::{Session, SessionInfo, SessionKind, Tombstone, now_ms};
use crate::service::SESSION_HEADER;
use crate::telemetry::{CallTrace, ChildSpan};
use crate::{Inner, RouterError};
use opentelemetry::KeyValue;

/// Why a session was closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// Deleted through the control plane (or the router's API).
    Deleted,
    /// Its client released it (ReleaseSession answered OK).
    Released,
    /// No call for `router.sessions.idle_timeout`.
    IdleTimeout,
    /// Older than `router.sessions.max_lifetime`.
    MaxLifetime,
    /// Its backend lost it; the client released it afterwards.
    Dead,
}

impl CloseReason {
    /// The reason as labelled in `sc_proxy_sessions_closed_total` and the log.
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::Deleted => "deleted",
            CloseReason::Released => "released",
            CloseReason::IdleTimeout => "idle_timeout",
            CloseReason::MaxLifetime => "max_lifetime",
            CloseReason::Dead => "dead",
        }
    }

    /// What its client is told when it comes back, for reasons its client did not choose.
    fn tombstone(self) -> Option<&'static str> {
        match self {
            CloseReason::Deleted | CloseReason::Released => None,
            CloseReason::IdleTimeout => Some("idle timeout"),
            CloseReason::MaxLifetime => Some("max lifetime"),
            CloseReason::Dead => Some("dead"),
        }
    }

    /// The audit event the router writes itself. A deletion is logged by whoever asked for it
    /// (the control plane), which knows the caller and the peer.
    fn audit_event(self) -> Option<&'static str> {
        match self {
            CloseReason::Deleted => None,
            CloseReason::Released => Some("session_delete"),
            CloseReason::IdleTimeout | CloseReason::MaxLifetime | CloseReason::Dead => {
                Some("session_expire")
            }
        }
    }
}

/// The Spark session a ReleaseSession call releases, as its request names it.
#[derive(Debug, Clone)]
pub(crate) struct ReleaseKey {
    user_id: Option<String>,
    session_id: Option<String>,
}

impl ReleaseKey {
    pub(crate) fn new(caller: &Caller<'_>, fields: &RequestFields<'_>) -> Self {
        ReleaseKey {
            user_id: caller.user().map(str::to_owned),
            session_id: fields.session_id.map(str::to_owned),
        }
    }
}

/// What the routing fields of a call name.
pub(crate) enum Lookup {
    /// A session the router knows (live, perhaps dead).
    Found(Arc<Session>),
    /// A session the router closed lately: its owner learns why.
    Closed { id: String, tombstone: Tombstone },
    /// A session the router does not know, named by a call that may start one.
    New(String),
    /// A call that only acts on existing state (release, reattach, interrupt, error details) of
    /// a session the router does not know: answered by the proxy, so that it binds nothing.
    Unbound,
}

impl Inner {
    // === finding ===

    /// Finds the session a call belongs to: by the `x-spark-connect-session-id` header (a
    /// control-plane session), else by the request's `session_id` (a bound session), else by its
    /// `operation_id`; with a shared store, sessions other replicas made are fetched from it.
    pub(crate) async fn lookup(
        &self,
        method: RpcMethod,
        headers: &HeaderMap,
        fields: &RequestFields<'_>,
        trace: Option<&CallTrace>,
    ) -> Result<Lookup, RouterError> {
        // Only a shared store is read on the way (the others are written behind).
        let _store = self
            .store
            .as_ref()
            .filter(|s| s.shared())
            .and_then(|_| self.store_span(trace, "lookup"));
        if let Some(value) = headers.get(SESSION_HEADER) {
            let id = value.to_str().map_err(|_| RouterError::InvalidHeader {
                name: SESSION_HEADER,
                why: "it is not visible ASCII".into(),
            })?;
            let id = id.trim();
            let session = match self.registry.control(id) {
                Some(session) if self.revalidate(&session).await? => Some(session),
                _ => self.fetch(RecordKind::Control, id).await?,
            };
            return match (session, self.registry.tombstone(id)) {
                (Some(session), _) => Ok(Lookup::Found(session)),
                (None, Some(tombstone)) => Ok(Lookup::Closed {
                    id: id.to_owned(),
                    tombstone,
                }),
                (None, None) => Err(RouterError::SessionNotFound(id.to_owned())),
            };
        }

        let session_id = fields.session_id.ok_or(RouterError::MissingSessionId)?;
        let known = match self.registry.bound(session_id) {
            Some(session) if self.revalidate(&session).await? => Some(session),
            _ => self.fetch(RecordKind::Bound, session_id).await?,
        };
        if let Some(session) = known {
            return Ok(Lookup::Found(session));
        }
        if let Some(op) = fields.operation_id {
            let session = match self.registry.operation(op) {
                Some(session) => Some(session),
                None => self.fetch_operation(op).await?,
            };
            if let Some(session) = session {
                return Ok(Lookup::Found(session));
            }
        }
        if !starts_sessions(method) {
            return Ok(Lookup::Unbound);
        }
        Ok(match self.registry.tombstone(session_id) {
            Some(tombstone) => Lookup::Closed {
                id: session_id.to_owned(),
                tombstone,
            },
            None => Lookup::New(session_id.to_owned()),
        })
    }

    /// A found session the caller may use, unless it is dead: then the client learns why, and
    /// a release of it is answered here (there is nothing left on the backend to release).
    /// `None` means: answer the call locally.
    pub(crate) async fn usable(
        &self,
        method: RpcMethod,
        session: Arc<Session>,
    ) -> Result<Option<Arc<Session>>, RouterError> {
        let Some(why) = session.dead_reason() else {
            return Ok(Some(session));
        };
        match method {
            RpcMethod::ReleaseSession => {
                self.close(&session, CloseReason::Dead).await;
                Ok(None)
            }
            RpcMethod::ReleaseExecute => Ok(None),
            _ => Err(RouterError::SessionDead {
                id: session.id.clone(),
                why: why.to_owned(),
            }),
        }
    }

    // === backends that die ===

    /// After a call could not reach `session`'s backend: when the backend is confirmed gone
    /// ([`health::confirm_gone`](crate::health::confirm_gone)), every session on it turns dead
    /// and the call ends with the error saying why (`FAILED_PRECONDITION`, which clients do not
    /// retry). `None` when the backend may be alive (it timed out, or answers again).
    pub(crate) async fn fail_if_gone(&self, session: &Session) -> Option<RouterError> {
        let why = self.check_gone(&session.backend).await?;
        Some(RouterError::SessionDead {
            id: session.id.clone(),
            why: session.dead_reason().map_or(why, str::to_owned),
        })
    }

    /// Checks whether `backend` is gone; if it is, marks every live session on it dead (stored,
    /// audited, counted) and, for a backend its provider started, takes it out of placement.
    /// Returns why it is gone.
    pub(crate) async fn check_gone(&self, backend: &Arc<BackendHandle>) -> Option<String> {
        let post_mortem = crate::health::confirm_gone(backend).await?;
        let why = format!(
            "backend '{}' ({}) is gone: {}",
            backend.id(),
            backend.endpoint_text,
            post_mortem.reason
        );
        let cause = post_mortem.cause.as_str();
        crate::health::mark_unreachable(&self.settings.health, backend, &why);
        if backend.started {
            // A launched engine never comes back: the next session of its key gets a new one.
            backend.removed.store(true, Ordering::Relaxed);
        }
        let first = backend.health.mark_gone();
        let mut died = 0;
        for session in self.registry.on_backend(backend) {
            if session.mark_dead(why.clone()) {
                died += 1;
                self.persist(Change::Put(session.record()));
                warn!(target: "audit", event = "session_dead", session_id = %session.id, user = session.user_id.as_deref().unwrap_or(""), backend = %backend.id(), cause, reason = %why, "session is dead: its backend is gone");
            }
        }
        if first || died > 0 {
            warn!(backend = %backend.id(), cause, sessions = died, reason = %post_mortem.reason, "backend is gone; its sessions are dead");
        }
        self.metrics.backend_died(cause, first, died);
        Some(why)
    }

    // === placing and binding ===

    /// Chooses the backend for a new session, starting one when the policy asks for it.
    pub(crate) async fn place(
        &self,
        request: &StartRequest,
        trace: Option<&CallTrace>,
    ) -> Result<Arc<BackendHandle>, RouterError> {
        let span = trace.map(|t| t.child("spark_connect.placement"));
        let placed = self.place_untraced(request).await;
        if let Some(span) = span {
            span.record(KeyValue::new(
                "spark_connect.policy",
                self.policy.load().name().to_owned(),
            ));
            match &placed {
                Ok(backend) => span.record(KeyValue::new(
                    "spark_connect.backend",
                    backend.id().to_string(),
                )),
                Err(error) => span.failed(error),
            }
        }
        placed
    }

    async fn place_untraced(
        &self,
        request: &StartRequest,
    ) -> Result<Arc<BackendHandle>, RouterError> {
        self.check_request(request)?;
        let backends = self.pool.snapshot();
        let policy = self.policy.load();
        match policy.choose(&BackendPool::loads(&backends)) {
            Placement::Existing(id) => backends
                .iter()
                .find(|b| b.id() == &id && !b.removed.load(Ordering::Relaxed))
                .cloned()
                .ok_or_else(|| {
                    RouterError::NoCapacity(format!(
                        "the {} policy chose backend '{id}', which does not exist",
                        policy.name()
                    ))
                }),
            Placement::Exhausted(why) => Err(RouterError::NoCapacity(why)),
            Placement::StartNew => {
                let mut failure = None;
                for provider in self.pool.providers().iter() {
                    match provider.start(request).await {
                        Ok(backend) => {
                            let handle = self.pool.add(backend, provider.clone(), true)?;
                            info!(backend = %handle.id(), provider = provider.name(), "backend placed by its provider");
                            return Ok(handle);
                        }
                        Err(ProviderError::Unsupported { .. }) => {}
                        Err(e) => failure = Some(e),
                    }
                }
                Err(match failure {
                    Some(e) => RouterError::Provider(e),
                    None => RouterError::NoCapacity(format!(
                        "the {} policy wants a new backend for this session, but every one of the {} backends is full and no provider can start more; add endpoints, raise load_policy.params.max_size, or use ROUND_ROBIN",
                        policy.name(),
                        backends.len()
                    )),
                })
            }
        }
    }

    /// Whether some provider can serve a session asked for like this (its profile exists and
    /// the caller may use it); else the first provider's refusal.
    fn check_request(&self, request: &StartRequest) -> Result<(), RouterError> {
        let mut refusal = None;
        for provider in self.pool.providers().iter() {
            match provider.check_request(request) {
                Ok(()) => return Ok(()),
                Err(e) => {
                    refusal.get_or_insert(e);
                }
            }
        }
        match refusal {
            Some(e) => {
                if let ProviderError::ProfileForbidden { profile, user, .. } = &e {
                    warn!(target: "audit", event = "permission_denied", user = %user, profile = %profile, "permission denied: engine profile");
                }
                Err(e.into())
            }
            None => Ok(()),
        }
    }

    /// Binds a header-less session on first sight: places it (within the caller's session
    /// limit) and records the binding. Two calls racing on one new session get the same one;
    /// with a shared store, two replicas racing agree on the store's first binding.
    pub(crate) async fn bind(
        &self,
        caller: &Caller<'_>,
        session_id: &str,
        profile: Option<&str>,
        trace: Option<&CallTrace>,
    ) -> Result<Arc<Session>, RouterError> {
        self.limiter.admit_session(caller.limit_key())?;
        let placed = self
            .place(
                &StartRequest {
                    user: caller.user().map(str::to_owned),
                    session_id: Some(session_id.to_owned()),
                    identity: caller.identity().cloned(),
                    profile: profile.map(str::to_owned),
                },
                trace,
            )
            .await;
        let backend = match placed {
            Ok(backend) => backend,
            Err(e) => {
                self.limiter.session_closed(caller.limit_key());
                return Err(e);
            }
        };
        let mut session = Session::new(
            session_id.to_owned(),
            SessionKind::Bound,
            caller.user().map(str::to_owned),
            backend,
        );
        session.profile = profile.map(str::to_owned);
        let mut fresh = Arc::new(session);
        if let Some(store) = self.store.as_ref().filter(|s| s.shared()) {
            let span = self.store_span(trace, "create");
            let created = store.create(&fresh.record()).await;
            if let (Some(span), Err(e)) = (&span, &created) {
                span.failed(e);
            }
            drop(span);
            match created {
                Ok(winner) if winner.backend_id != fresh.backend.id().as_str() => {
                    fresh = self.materialize(&winner);
                }
                Ok(_) => {}
                Err(e) => {
                    self.limiter.session_closed(caller.limit_key());
                    return Err(e.into());
                }
            }
        }
        let session = self.registry.bind(fresh.clone());
        if !Arc::ptr_eq(&session, &fresh) {
            // Another call bound it first; this one's slot is not needed.
            self.limiter.session_closed(caller.limit_key());
        } else {
            if self.store.as_ref().is_some_and(|s| !s.shared()) {
                // A store of this process alone: written behind, within milliseconds, so
                // binding costs no transaction on the request path.
                let _span = self.store_span(trace, "write behind");
                self.persist(Change::Put(session.record()));
            }
            let peer = caller
                .peer()
                .map_or_else(|| "unknown".to_owned(), |a| a.to_string());
            info!(target: "audit", event = "session_create", kind = "bound", session_id, user = caller.user().unwrap_or(""), peer = %peer, backend = %session.backend.id(), "session bound");
        }
        Ok(session)
    }

    /// Creates a control-plane session owned by `owner`: places it now (starting a backend if
    /// the provider launches them), so its calls carry only the id.
    pub(crate) async fn create_control(
        &self,
        caller: &Caller<'_>,
        owner: Option<String>,
        app_name: Option<String>,
        profile: Option<String>,
    ) -> Result<SessionInfo, RouterError> {
        let limit_user = owner.clone().unwrap_or_else(|| "anonymous".into());
        self.limiter.admit_session(&limit_user)?;
        let id = uuid::Uuid::new_v4().to_string();
        self.starting.insert(
            id.clone(),
            SessionInfo::starting(
                &id,
                SessionKind::Control,
                owner.clone(),
                app_name.clone(),
                profile.clone(),
            ),
        );
        let placed = self
            .place(
                &StartRequest {
                    user: owner.clone(),
                    session_id: Some(id.clone()),
                    identity: caller.identity().cloned(),
                    profile: profile.clone(),
                },
                None,
            )
            .await;
        self.starting.remove(&id);
        let backend = match placed {
            Ok(backend) => backend,
            Err(e) => {
                self.limiter.session_closed(&limit_user);
                return Err(e);
            }
        };
        let mut session = Session::new(id, SessionKind::Control, owner, backend);
        session.app_name = app_name;
        session.profile = profile;
        let session = Arc::new(session);
        if let Some(store) = &self.store
            && let Err(e) = store.create(&session.record()).await
        {
            self.limiter.session_closed(&limit_user);
            return Err(e.into());
        }
        self.registry.insert_control(session.clone());
        info!(session_id = %session.id, backend = %session.backend.id(), "session created");
        Ok(session.info())
    }

    /// A child span of a call for its work with the session store (`None` without a store or a
    /// trace).
    fn store_span(&self, trace: Option<&CallTrace>, operation: &'static str) -> Option<ChildSpan> {
        let store = self.store.as_ref()?;
        let span = trace?.child("spark_connect.store");
        span.record(KeyValue::new("spark_connect.store", store.name()));
        span.record(KeyValue::new("spark_connect.store.operation", operation));
        Some(span)
    }

    // === what calls change ===

    /// Keeps a session's bookkeeping up to date with an authorized call: the Spark sessions of
    /// a control session, the operation index, and CloneSession's new binding.
    pub(crate) fn note_call(
        &self,
        method: RpcMethod,
        fields: &RequestFields<'_>,
        session: &Arc<Session>,
        caller: &Caller<'_>,
    ) {
        if session.kind == SessionKind::Control
            && let Some(spark_session) = fields.session_id
            && session.note_spark_session(caller.user(), spark_session)
        {
            self.persist(Change::Put(session.record()));
        }
        match method {
            RpcMethod::ExecutePlan => {
                if let Some(op) = fields.operation_id
                    && self.registry.add_operation(op, session)
                    && self.store.is_some()
                {
                    self.persist(Change::PutOperation(
                        op.to_owned(),
                        OperationRecord {
                            kind: session.record_kind(),
                            session_id: session.id.clone(),
                        },
                    ));
                }
            }
            RpcMethod::ReleaseExecute if fields.release_all => {
                if let Some(op) = fields.operation_id {
                    self.registry.remove_operation(op);
                    self.persist(Change::RemoveOperation(op.to_owned()));
                }
            }
            RpcMethod::CloneSession => {
                if let Some(new_id) = fields.new_session_id {
                    match session.kind {
                        SessionKind::Control => {
                            if session.note_spark_session(caller.user(), new_id) {
                                self.persist(Change::Put(session.record()));
                            }
                        }
                        SessionKind::Bound => {
                            let clone = Arc::new(Session::new(
                                new_id.to_owned(),
                                SessionKind::Bound,
                                caller.user().map(str::to_owned),
                                session.backend.clone(),
                            ));
                            let bound = self.registry.bind(clone.clone());
                            if Arc::ptr_eq(&bound, &clone) {
                                self.persist(Change::Put(clone.record()));
                            }
                        }
                    }
                }
            }
            _ => {}
        }
    }

    /// A ReleaseSession answered OK: the session is gone on the backend.
    pub(crate) async fn released(&self, session: &Arc<Session>, key: &ReleaseKey) {
        match session.kind {
            SessionKind::Bound => {
                self.close(session, CloseReason::Released).await;
            }
            SessionKind::Control => {
                if let Some(spark_session) = &key.session_id
                    && session.forget_spark_session(key.user_id.as_deref(), spark_session)
                {
                    self.persist(Change::Put(session.record()));
                }
            }
        }
    }

    // === closing ===

    /// Closes a session: out of the routing tables and the store, released on its backend
    /// (unless its client released it, or it is dead), remembered for a while when its client
    /// did not choose it, so the client learns why. Does nothing if it is already closed; true
    /// when this call closed it.
    pub(crate) async fn close(&self, session: &Arc<Session>, reason: CloseReason) -> bool {
        session.set_closing();
        let Some(operations) = self.registry.remove(session) else {
            return false;
        };
        self.limiter
            .session_closed(session.user_id.as_deref().unwrap_or("anonymous"));
        self.metrics.session_closed(reason.as_str());
        self.persist(Change::Remove(session.record_kind(), session.id.clone()));
        for op in operations {
            self.persist(Change::RemoveOperation(op));
        }
        if let Some(why) = reason.tombstone() {
            self.registry.bury(session, why.to_owned());
        }
        self.registry.remember_closed(session, reason.as_str());
        if reason != CloseReason::Released && session.dead_reason().is_none() {
            let spark_sessions = match session.kind {
                SessionKind::Control => session.spark_sessions(),
                SessionKind::Bound => vec![(
                    session.user_id.clone().unwrap_or_default(),
                    session.id.clone(),
                )],
            };
            for (user_id, session_id) in spark_sessions {
                self.release_on_backend(&session.backend, user_id, session_id)
                    .await;
            }
        }
        let event = reason.audit_event();
        let reason = reason.as_str();
        if let Some(event) = event {
            info!(target: "audit", event, session_id = %session.id, user = session.user_id.as_deref().unwrap_or(""), backend = %session.backend.id(), reason, "session closed");
        } else {
            info!(session_id = %session.id, backend = %session.backend.id(), reason, "session closed");
        }
        true
    }

    /// Closes the session `id` for a caller who may: the control plane's DELETE.
    pub(crate) async fn close_for(
        &self,
        caller: &Caller<'_>,
        id: &str,
    ) -> Result<SessionInfo, RouterError> {
        let session = self
            .registry
            .find(id)
            .ok_or_else(|| RouterError::SessionNotFound(id.to_owned()))?;
        caller.authorize(Access::Session {
            id: &session.id,
            owner: session.user_id.as_deref(),
        })?;
        // Of two calls racing on one session, only the one that closed it gets `Ok`, so a
        // deletion is logged once.
        if !self.close(&session, CloseReason::Deleted).await {
            return Err(RouterError::SessionNotFound(id.to_owned()));
        }
        Ok(session.info())
    }

    /// Sends ReleaseSession for one Spark session to a backend; failures are logged, not fatal.
    async fn release_on_backend(
        &self,
        backend: &BackendHandle,
        user_id: String,
        session_id: String,
    ) {
        let mut client = pb::spark_connect_service_client::SparkConnectServiceClient::new(
            backend.channel.clone(),
        );
        let request = pb::ReleaseSessionRequest {
            session_id: session_id.clone(),
            user_context: Some(pb::UserContext {
                user_id,
                ..Default::default()
            }),
            client_type: Some("spark-connect-proxy".into()),
            allow_reconnect: false,
        };
        let size = request.encoded_len();
        let mut request = tonic::Request::new(request);
        if let Some(token) = &backend.authorization
            && let Ok(value) = tonic::metadata::MetadataValue::try_from(token.as_bytes())
        {
            request.metadata_mut().insert("authorization", value);
        }
        match client.release_session(request).await {
            Ok(_) => {
                info!(%session_id, backend = %backend.id(), size, "session released on backend")
            }
            Err(status) => {
                warn!(%session_id, backend = %backend.id(), code = ?status.code(), message = status.message(), "releasing session on backend failed")
            }
        }
    }

    // === the store ===

    /// Writes a change behind the request path (nothing without a store).
    pub(crate) fn persist(&self, change: Change) {
        if let Some(tx) = &self.persist {
            let _ = tx.send(change);
        }
    }

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
    fn materialize(&self, record: &SessionRecord) -> Arc<Session> {
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
    async fn fetch(&self, kind: RecordKind, id: &str) -> Result<Option<Arc<Session>>, RouterError> {
        let Some(store) = self.store.as_ref().filter(|s| s.shared()) else {
            return Ok(None);
        };
        Ok(store
            .get(kind, id)
            .await?
            .map(|record| self.registry.restore(self.materialize(&record))))
    }

    /// Looks an operation up in a shared store.
    async fn fetch_operation(
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
    async fn revalidate(&self, session: &Arc<Session>) -> Result<bool, RouterError> {
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

/// Whether a call of `method` may be the first of a session (and so bind it). The others act on
/// state a session already has; PySpark sends some of them (ReleaseExecute) in the background
/// right after ReleaseSession, and they must not bind the released session again.
fn starts_sessions(method: RpcMethod) -> bool {
    !matches!(
        method,
        RpcMethod::ReleaseSession
            | RpcMethod::ReleaseExecute
            | RpcMethod::ReattachExecute
            | RpcMethod::Interrupt
            | RpcMethod::FetchErrorDetails
    )
}
