//! Streaming query listener events: the session's listener bus (one long-running call that the
//! server sends events on, shared by every subscriber), the events, and client-side listeners.
//!
//! The protocol is PySpark's: an ExecutePlan of `StreamingQueryListenerBusCommand
//! { add_listener_bus_listener }` is confirmed by a `StreamingQueryListenerEventsResult` with
//! `listener_bus_listener_added`, then carries progress, idle and terminated events until a
//! second command `{ remove_listener_bus_listener }` ends it. Started events come instead with
//! the result of the command that starts a query.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::Stream;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use sc_proto::spark::connect as pb;
use sc_proto::spark::connect::execute_plan_response::ResponseType;
use serde::Deserialize;
use tokio::sync::broadcast;

use crate::client::ExecuteStream;
use crate::error::{Error, Result};
use crate::session::SparkSession;
use crate::streaming::progress::StreamingQueryProgress;

/// Events a subscriber may fall behind by before it misses some.
const CAPACITY: usize = 1024;

/// How long the events call may take to end after the server was told to stop sending.
const REMOVE_GRACE: Duration = Duration::from_secs(10);

// === events ===

/// A streaming query listener event (PySpark's `StreamingQueryListener` callbacks).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum QueryEvent {
    /// A query started.
    Started(QueryStartedEvent),
    /// A query finished a trigger.
    Progress(Box<StreamingQueryProgress>),
    /// A query has had no new data for a while
    /// (`spark.sql.streaming.noDataProgressEventInterval`).
    Idle(QueryIdleEvent),
    /// A query stopped, cleanly or with an error.
    Terminated(QueryTerminatedEvent),
}

impl QueryEvent {
    /// The id of the query the event is about.
    pub fn query_id(&self) -> &str {
        match self {
            QueryEvent::Started(e) => &e.id,
            QueryEvent::Progress(p) => &p.id,
            QueryEvent::Idle(e) => &e.id,
            QueryEvent::Terminated(e) => &e.id,
        }
    }

    /// The run id of the query the event is about.
    pub fn run_id(&self) -> &str {
        match self {
            QueryEvent::Started(e) => &e.run_id,
            QueryEvent::Progress(p) => &p.run_id,
            QueryEvent::Idle(e) => &e.run_id,
            QueryEvent::Terminated(e) => &e.run_id,
        }
    }

    fn from_proto(e: &pb::StreamingQueryListenerEvent) -> Result<Self> {
        use pb::StreamingQueryEventType as T;
        match T::try_from(e.event_type) {
            Ok(T::QueryProgressEvent) => {
                #[derive(Deserialize)]
                struct Wrapper {
                    progress: serde_json::Value,
                }
                let w: Wrapper = parse(&e.event_json, "progress event")?;
                let p = StreamingQueryProgress::from_json(&w.progress.to_string())?;
                Ok(QueryEvent::Progress(Box::new(p)))
            }
            Ok(T::QueryIdleEvent) => Ok(QueryEvent::Idle(parse(&e.event_json, "idle event")?)),
            Ok(T::QueryTerminatedEvent) => Ok(QueryEvent::Terminated(parse(
                &e.event_json,
                "terminated event",
            )?)),
            _ => Err(Error::Protocol(format!(
                "the server sent a listener event of unknown type {}",
                e.event_type
            ))),
        }
    }
}

fn parse<T: serde::de::DeserializeOwned>(json: &str, what: &str) -> Result<T> {
    serde_json::from_str(json)
        .map_err(|e| Error::Protocol(format!("the server sent an unreadable {what}: {e}")))
}

/// A query started (PySpark's `QueryStartedEvent`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct QueryStartedEvent {
    /// The query's id.
    pub id: String,
    /// The id of this run.
    pub run_id: String,
    /// The query's name, if it has one.
    #[serde(default)]
    pub name: Option<String>,
    /// When it started (ISO 8601, UTC).
    pub timestamp: String,
    /// The job tags of the query's jobs.
    #[serde(default)]
    pub job_tags: Vec<String>,
}

impl QueryStartedEvent {
    pub(crate) fn from_json(json: &str) -> Result<Self> {
        parse(json, "started event")
    }
}

/// A query has been idle (PySpark's `QueryIdleEvent`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct QueryIdleEvent {
    /// The query's id.
    pub id: String,
    /// The id of this run.
    pub run_id: String,
    /// When (ISO 8601, UTC).
    pub timestamp: String,
}

/// A query stopped (PySpark's `QueryTerminatedEvent`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct QueryTerminatedEvent {
    /// The query's id.
    pub id: String,
    /// The id of this run.
    pub run_id: String,
    /// Why it failed; `None` after a clean stop.
    #[serde(default)]
    pub exception: Option<String>,
    /// The error class of the failure, if it has one.
    #[serde(default)]
    pub error_class_on_exception: Option<String>,
}

// === the bus ===

#[derive(Debug, Clone)]
enum BusMsg {
    Event(QueryEvent),
    Failed(Arc<str>),
}

/// A session's listener bus: at most one events call, shared by every subscriber.
#[derive(Default)]
pub(crate) struct ListenerBus {
    running: tokio::sync::Mutex<Option<Running>>,
    /// Where started events are posted (weak: only the pump keeps the channel open).
    post_to: std::sync::Mutex<Option<broadcast::WeakSender<BusMsg>>>,
}

impl std::fmt::Debug for ListenerBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListenerBus").finish_non_exhaustive()
    }
}

struct Running {
    sender: broadcast::WeakSender<BusMsg>,
    subscribers: Arc<AtomicUsize>,
    pump: tokio::task::JoinHandle<()>,
}

impl ListenerBus {
    /// Delivers an event the client learned itself (a query it started) to the subscribers.
    pub(crate) fn post(&self, event: QueryEvent) {
        let sender = self
            .post_to
            .lock()
            .ok()
            .and_then(|g| g.as_ref().and_then(broadcast::WeakSender::upgrade));
        if let Some(tx) = sender {
            // No subscriber left is not an error: nobody is listening.
            let _ = tx.send(BusMsg::Event(event));
        }
    }

    fn set_post_to(&self, sender: Option<broadcast::WeakSender<BusMsg>>) {
        if let Ok(mut g) = self.post_to.lock() {
            *g = sender;
        }
    }
}

fn bus_command(add: bool) -> pb::command::CommandType {
    use pb::streaming_query_listener_bus_command::Command;
    pb::command::CommandType::StreamingQueryListenerBusCommand(
        pb::StreamingQueryListenerBusCommand {
            command: Some(if add {
                Command::AddListenerBusListener(true)
            } else {
                Command::RemoveListenerBusListener(true)
            }),
        },
    )
}

/// A new stream of the session's events, starting the events call if none runs.
pub(crate) async fn subscribe(session: &SparkSession) -> Result<QueryEventStream> {
    let bus = session.listener_bus();
    let mut running = bus.running.lock().await;
    if let Some(r) = running.as_ref()
        && !r.pump.is_finished()
        && let Some(tx) = r.sender.upgrade()
    {
        r.subscribers.fetch_add(1, Ordering::AcqRel);
        return Ok(QueryEventStream::new(
            session.clone(),
            tx.subscribe(),
            r.subscribers.clone(),
        ));
    }
    let plan = pb::Plan {
        op_type: Some(pb::plan::OpType::Command(pb::Command {
            command_type: Some(bus_command(true)),
        })),
    };
    let mut exec = session.client.execute(plan)?;
    loop {
        match exec.next().await {
            Some(Ok(resp)) => {
                if let Some(ResponseType::StreamingQueryListenerEventsResult(r)) =
                    resp.response_type
                    && r.listener_bus_listener_added == Some(true)
                {
                    break;
                }
            }
            Some(Err(e)) => return Err(e),
            None => {
                return Err(Error::Protocol(
                    "the server ended the listener events call without confirming it".into(),
                ));
            }
        }
    }
    tracing::debug!(session_id = %session.session_id(), "streaming listener events call started");
    let (tx, rx) = broadcast::channel(CAPACITY);
    let subscribers = Arc::new(AtomicUsize::new(1));
    let sender = tx.downgrade();
    bus.set_post_to(Some(sender.clone()));
    let pump = tokio::spawn(pump(exec, tx));
    *running = Some(Running {
        sender,
        subscribers: subscribers.clone(),
        pump,
    });
    Ok(QueryEventStream::new(session.clone(), rx, subscribers))
}

/// Forwards the events of the events call to the subscribers until it ends.
async fn pump(mut exec: ExecuteStream, tx: broadcast::Sender<BusMsg>) {
    while let Some(item) = exec.next().await {
        match item {
            Ok(resp) => {
                let Some(ResponseType::StreamingQueryListenerEventsResult(r)) = resp.response_type
                else {
                    continue;
                };
                for e in &r.events {
                    let msg = match QueryEvent::from_proto(e) {
                        Ok(event) => BusMsg::Event(event),
                        Err(err) => BusMsg::Failed(err.to_string().into()),
                    };
                    let _ = tx.send(msg);
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, "streaming listener events call failed");
                let _ = tx.send(BusMsg::Failed(
                    format!("the events call failed: {e}").into(),
                ));
                break;
            }
        }
    }
    // Dropping `tx` ends every subscriber's stream.
}

/// Stops the events call when its last subscriber is gone (and no new one came meanwhile).
async fn remove_if_unused(session: SparkSession, subscribers: Arc<AtomicUsize>) {
    let bus = session.listener_bus();
    let mut running = bus.running.lock().await;
    let unused = running.as_ref().is_some_and(|r| {
        Arc::ptr_eq(&r.subscribers, &subscribers) && r.subscribers.load(Ordering::Acquire) == 0
    });
    if !unused {
        return;
    }
    let Some(r) = running.take() else {
        return;
    };
    bus.set_post_to(None);
    let mut pump = r.pump;
    if !pump.is_finished() && !session.is_stopped() {
        match session.execute_command(bus_command(false)).await {
            Ok(_) => {
                if tokio::time::timeout(REMOVE_GRACE, &mut pump).await.is_ok() {
                    tracing::debug!(session_id = %session.session_id(), "streaming listener events call ended");
                    return;
                }
            }
            Err(e) => tracing::debug!(error = %e, "removing the streaming listener failed"),
        }
    }
    pump.abort();
}

// === subscriber streams ===

/// A stream of a session's streaming query listener events, from
/// [`StreamingQueryManager::events`](crate::streaming::StreamingQueryManager::events).
///
/// It ends when the session's events call ends (the session stopped, or the server ended it);
/// an error item (a lost connection, events missed by a slow reader) does not end it.
pub struct QueryEventStream {
    inner: BoxStream<'static, Result<QueryEvent>>,
    _guard: SubscriberGuard,
}

impl std::fmt::Debug for QueryEventStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryEventStream").finish_non_exhaustive()
    }
}

impl QueryEventStream {
    fn new(
        session: SparkSession,
        rx: broadcast::Receiver<BusMsg>,
        subscribers: Arc<AtomicUsize>,
    ) -> Self {
        let inner = futures_util::stream::unfold(rx, |mut rx| async move {
            let item = match rx.recv().await {
                Ok(BusMsg::Event(e)) => Ok(e),
                Ok(BusMsg::Failed(m)) => Err(Error::ListenerEvents(m.to_string())),
                Err(broadcast::error::RecvError::Lagged(n)) => Err(Error::ListenerEvents(format!(
                    "{n} events were missed because this stream was read too slowly"
                ))),
                Err(broadcast::error::RecvError::Closed) => return None,
            };
            Some((item, rx))
        })
        .boxed();
        Self {
            inner,
            _guard: SubscriberGuard {
                session,
                subscribers,
            },
        }
    }
}

impl Stream for QueryEventStream {
    type Item = Result<QueryEvent>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.poll_next_unpin(cx)
    }
}

struct SubscriberGuard {
    session: SparkSession,
    subscribers: Arc<AtomicUsize>,
}

impl Drop for SubscriberGuard {
    fn drop(&mut self) {
        if self.subscribers.fetch_sub(1, Ordering::AcqRel) == 1
            && let Ok(handle) = tokio::runtime::Handle::try_current()
        {
            handle.spawn(remove_if_unused(
                self.session.clone(),
                self.subscribers.clone(),
            ));
        }
    }
}

// === client-side listeners ===

/// A streaming query listener that runs in this process (PySpark's `StreamingQueryListener`).
/// Every callback does nothing by default.
///
/// ```no_run
/// # async fn run(spark: sc_client::SparkSession) -> sc_client::Result<()> {
/// use sc_client::streaming::{StreamingQueryListener, StreamingQueryProgress};
/// struct Log;
/// impl StreamingQueryListener for Log {
///     fn on_query_progress(&self, p: &StreamingQueryProgress) {
///         println!("{}: batch {} took {} ms", p.id, p.batch_id, p.batch_duration);
///     }
/// }
/// let handle = spark.streams().add_listener(Log).await?;
/// // ... run queries ...
/// handle.remove().await;
/// # Ok(()) }
/// ```
pub trait StreamingQueryListener: Send + Sync + 'static {
    /// A query started (only for queries this client starts, as in PySpark).
    fn on_query_started(&self, event: &QueryStartedEvent) {
        let _ = event;
    }
    /// A query finished a trigger.
    fn on_query_progress(&self, progress: &StreamingQueryProgress) {
        let _ = progress;
    }
    /// A query has been idle.
    fn on_query_idle(&self, event: &QueryIdleEvent) {
        let _ = event;
    }
    /// A query stopped.
    fn on_query_terminated(&self, event: &QueryTerminatedEvent) {
        let _ = event;
    }
}

/// A listener added with
/// [`StreamingQueryManager::add_listener`](crate::streaming::StreamingQueryManager::add_listener).
/// Dropping the handle leaves the listener running (until the session's events end);
/// [`remove`](Self::remove) stops it.
#[derive(Debug)]
pub struct StreamingQueryListenerHandle {
    task: tokio::task::JoinHandle<()>,
}

impl StreamingQueryListenerHandle {
    /// Stops calling the listener.
    pub async fn remove(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

pub(crate) async fn add_listener(
    session: &SparkSession,
    listener: impl StreamingQueryListener,
) -> Result<StreamingQueryListenerHandle> {
    let mut events = subscribe(session).await?;
    let task = tokio::spawn(async move {
        while let Some(event) = events.next().await {
            match event {
                Ok(QueryEvent::Started(e)) => listener.on_query_started(&e),
                Ok(QueryEvent::Progress(p)) => listener.on_query_progress(&p),
                Ok(QueryEvent::Idle(e)) => listener.on_query_idle(&e),
                Ok(QueryEvent::Terminated(e)) => listener.on_query_terminated(&e),
                Err(e) => tracing::warn!(error = %e, "streaming query listener"),
            }
        }
    });
    Ok(StreamingQueryListenerHandle { task })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn event(kind: pb::StreamingQueryEventType, json: &str) -> pb::StreamingQueryListenerEvent {
        pb::StreamingQueryListenerEvent {
            event_json: json.into(),
            event_type: kind as i32,
        }
    }

    #[test]
    fn parses_every_event_kind() {
        use pb::StreamingQueryEventType as T;
        let p = QueryEvent::from_proto(&event(
            T::QueryProgressEvent,
            r#"{"progress":{"id":"q","runId":"r","name":null,"timestamp":"t","batchId":2}}"#,
        ))
        .unwrap();
        assert!(matches!(&p, QueryEvent::Progress(p) if p.batch_id == 2));
        assert_eq!((p.query_id(), p.run_id()), ("q", "r"));
        let t = QueryEvent::from_proto(&event(
            T::QueryTerminatedEvent,
            r#"{"id":"q","runId":"r","exception":"boom","errorClassOnException":"STREAM_FAILED"}"#,
        ))
        .unwrap();
        assert!(
            matches!(t, QueryEvent::Terminated(ref e) if e.exception.as_deref() == Some("boom"))
        );
        let i = QueryEvent::from_proto(&event(
            T::QueryIdleEvent,
            r#"{"id":"q","runId":"r","timestamp":"t"}"#,
        ))
        .unwrap();
        assert!(matches!(i, QueryEvent::Idle(_)));
        let s = QueryStartedEvent::from_json(
            r#"{"id":"q","runId":"r","name":"n","timestamp":"t","jobTags":["a"]}"#,
        )
        .unwrap();
        assert_eq!(s.job_tags, ["a"]);
        // Unknown kinds and bad JSON are errors, not panics.
        assert!(QueryEvent::from_proto(&event(T::QueryProgressUnspecified, "{}")).is_err());
        assert!(QueryEvent::from_proto(&event(T::QueryIdleEvent, "[")).is_err());
        assert!(
            QueryEvent::from_proto(&pb::StreamingQueryListenerEvent {
                event_json: "{}".into(),
                event_type: 99,
            })
            .is_err()
        );
    }
}
