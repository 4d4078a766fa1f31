//! [`StreamingQuery`], a running query, and [`StreamingQueryManager`], the session's queries.

use std::time::Duration;

use sc_proto::spark::connect as pb;
use sc_proto::spark::connect::execute_plan_response::ResponseType;
use sc_proto::spark::connect::streaming_query_command::Command as QueryCmd;
use sc_proto::spark::connect::streaming_query_command_result::ResultType as QueryResult;
use sc_proto::spark::connect::streaming_query_manager_command::Command as ManagerCmd;
use sc_proto::spark::connect::streaming_query_manager_command_result::ResultType as ManagerResult;

use crate::error::{Error, Result};
use crate::session::SparkSession;
use crate::streaming::listener::{
    self, QueryEventStream, StreamingQueryListener, StreamingQueryListenerHandle,
};
use crate::streaming::progress::StreamingQueryProgress;

/// Runs `cmd` and returns the one response of the kind `pick` selects.
pub(crate) async fn command_result<T>(
    session: &SparkSession,
    cmd: pb::command::CommandType,
    what: &str,
    pick: impl Fn(ResponseType) -> Option<T>,
) -> Result<T> {
    let responses = session.execute_command(cmd).await?;
    responses
        .into_iter()
        .filter_map(|r| r.response_type)
        .find_map(pick)
        .ok_or_else(|| Error::Protocol(format!("the server sent no {what}")))
}

/// A timeout in milliseconds for the server, which wants a positive number.
fn timeout_ms(timeout: Duration) -> Result<i64> {
    if timeout.is_zero() {
        return Err(Error::InvalidArgument(
            "the timeout must be positive (use the call without a timeout to wait forever)".into(),
        ));
    }
    Ok(i64::try_from(timeout.as_millis())
        .unwrap_or(i64::MAX)
        .max(1))
}

// === StreamingQuery ===

/// A streaming query running on the server (PySpark's `StreamingQuery`), returned by
/// [`DataStreamWriter::start`](crate::streaming::DataStreamWriter::start) and the
/// [`StreamingQueryManager`].
///
/// The handle is cheap to clone; the query keeps running on the server when it is dropped.
/// Stop it with [`stop`](Self::stop).
///
/// ```no_run
/// # async fn run(spark: sc_client::SparkSession) -> sc_client::Result<()> {
/// use std::time::Duration;
/// use sc_client::streaming::{OutputMode, Trigger};
/// let query = spark
///     .read_stream()
///     .format("rate")
///     .load()
///     .write_stream()
///     .format("memory")
///     .query_name("ticks")
///     .output_mode(OutputMode::Append)
///     .trigger(Trigger::processing_time(Duration::from_millis(500)))
///     .start()
///     .await?;
/// query.process_all_available().await?;
/// spark.table("ticks").show(5).await?;
/// if let Some(p) = query.last_progress().await? {
///     println!("batch {} read {:?} rows", p.batch_id, p.num_input_rows());
/// }
/// query.stop().await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct StreamingQuery {
    session: SparkSession,
    id: String,
    run_id: String,
    name: Option<String>,
}

/// What a streaming query is doing now (Spark's `StreamingQueryStatus`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StreamingQueryStatus {
    /// A description of what the query is doing (`Waiting for data to arrive`, ...).
    pub message: String,
    /// Whether a source has new data.
    pub is_data_available: bool,
    /// Whether a trigger is running.
    pub is_trigger_active: bool,
    /// Whether the query is running.
    pub is_active: bool,
}

/// Why a streaming query failed (PySpark's `StreamingQueryException`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StreamingQueryException {
    /// The message, without the JVM exception class in front.
    pub message: String,
    /// The Spark error class (for example `STREAM_FAILED`), when there is one.
    pub error_class: Option<String>,
    /// The server-side stack trace, when the server sent it.
    pub stack_trace: Option<String>,
}

impl std::fmt::Display for StreamingQueryException {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for StreamingQueryException {}

impl StreamingQueryException {
    fn from_proto(e: pb::streaming_query_command_result::ExceptionResult) -> Option<Self> {
        let raw = e.exception_message?;
        // The server sends Java's `toString`: `org.apache...StreamingQueryException: message`.
        let message = match raw.split_once(": ") {
            Some((class, rest)) if !class.contains(' ') => rest.to_string(),
            _ => raw,
        };
        Some(Self {
            message,
            error_class: e.error_class,
            stack_trace: e.stack_trace,
        })
    }
}

impl StreamingQuery {
    pub(crate) fn new(
        session: SparkSession,
        id: pb::StreamingQueryInstanceId,
        name: Option<String>,
    ) -> Self {
        Self {
            session,
            id: id.id,
            run_id: id.run_id,
            name: name.filter(|n| !n.is_empty()),
        }
    }

    /// The query's id, kept across restarts from the same checkpoint.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The id of this run: a restart from the checkpoint gets a new one.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// The name given with `query_name`, if any.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The session the query runs in.
    pub fn session(&self) -> &SparkSession {
        &self.session
    }

    async fn command(&self, cmd: QueryCmd, what: &str) -> Result<Option<QueryResult>> {
        let cmd = pb::command::CommandType::StreamingQueryCommand(pb::StreamingQueryCommand {
            query_id: Some(pb::StreamingQueryInstanceId {
                id: self.id.clone(),
                run_id: self.run_id.clone(),
            }),
            command: Some(cmd),
        });
        let result = command_result(&self.session, cmd, what, |r| match r {
            ResponseType::StreamingQueryCommandResult(r) => Some(r),
            _ => None,
        })
        .await?;
        Ok(result.result_type)
    }

    fn unexpected<T>(what: &str, got: Option<QueryResult>) -> Result<T> {
        Err(Error::Protocol(format!(
            "expected the query's {what}, got {got:?}"
        )))
    }

    /// Whether the query is running.
    pub async fn is_active(&self) -> Result<bool> {
        Ok(self.status().await?.is_active)
    }

    /// What the query is doing now.
    pub async fn status(&self) -> Result<StreamingQueryStatus> {
        match self.command(QueryCmd::Status(true), "status").await? {
            Some(QueryResult::Status(s)) => Ok(StreamingQueryStatus {
                message: s.status_message,
                is_data_available: s.is_data_available,
                is_trigger_active: s.is_trigger_active,
                is_active: s.is_active,
            }),
            other => Self::unexpected("status", other),
        }
    }

    /// The progress reports of the most recent triggers, oldest first (the server keeps
    /// `spark.sql.streaming.numRecentProgressUpdates`, 100 by default).
    pub async fn recent_progress(&self) -> Result<Vec<StreamingQueryProgress>> {
        self.progress(QueryCmd::RecentProgress(true)).await
    }

    /// The progress report of the last trigger, if one ran.
    pub async fn last_progress(&self) -> Result<Option<StreamingQueryProgress>> {
        Ok(self.progress(QueryCmd::LastProgress(true)).await?.pop())
    }

    async fn progress(&self, cmd: QueryCmd) -> Result<Vec<StreamingQueryProgress>> {
        match self.command(cmd, "progress").await? {
            Some(QueryResult::RecentProgress(p)) => p
                .recent_progress_json
                .iter()
                .map(|j| StreamingQueryProgress::from_json(j))
                .collect(),
            other => Self::unexpected("progress", other),
        }
    }

    /// Waits until the query stops; a query that failed returns its error (a
    /// [`Spark`](Error::Spark) error of class `STREAM_FAILED` or the cause's).
    pub async fn await_termination(&self) -> Result<()> {
        let cmd =
            QueryCmd::AwaitTermination(pb::streaming_query_command::AwaitTerminationCommand {
                timeout_ms: None,
            });
        self.command(cmd, "termination").await?;
        Ok(())
    }

    /// Waits until the query stops or `timeout` passes; returns whether it stopped. A query that
    /// failed returns its error.
    pub async fn await_termination_timeout(&self, timeout: Duration) -> Result<bool> {
        let cmd =
            QueryCmd::AwaitTermination(pb::streaming_query_command::AwaitTerminationCommand {
                timeout_ms: Some(timeout_ms(timeout)?),
            });
        match self.command(cmd, "termination").await? {
            Some(QueryResult::AwaitTermination(t)) => Ok(t.terminated),
            other => Self::unexpected("termination", other),
        }
    }

    /// Waits until every row available in the sources now has been processed (for tests and
    /// examples; a query with a continuously fed source may never be caught up).
    pub async fn process_all_available(&self) -> Result<()> {
        self.command(QueryCmd::ProcessAllAvailable(true), "processing result")
            .await?;
        Ok(())
    }

    /// Stops the query (waits for the running trigger to end).
    pub async fn stop(&self) -> Result<()> {
        self.command(QueryCmd::Stop(true), "stop result").await?;
        Ok(())
    }

    /// The query's plans: the physical one, or with `extended` the logical ones too.
    pub async fn explain_string(&self, extended: bool) -> Result<String> {
        let cmd = QueryCmd::Explain(pb::streaming_query_command::ExplainCommand { extended });
        match self.command(cmd, "plan").await? {
            Some(QueryResult::Explain(e)) => Ok(e.result),
            other => Self::unexpected("plan", other),
        }
    }

    /// Prints the query's plans (see [`explain_string`](Self::explain_string)).
    pub async fn explain(&self, extended: bool) -> Result<()> {
        println!("{}", self.explain_string(extended).await?);
        Ok(())
    }

    /// Why the query failed, if it did (`None` while it runs or after a clean stop).
    pub async fn exception(&self) -> Result<Option<StreamingQueryException>> {
        match self.command(QueryCmd::Exception(true), "exception").await? {
            Some(QueryResult::Exception(e)) => Ok(StreamingQueryException::from_proto(e)),
            // A query without an exception may get an empty result.
            None => Ok(None),
            other => Self::unexpected("exception", other),
        }
    }
}

// === StreamingQueryManager ===

/// The streaming queries of a session (`spark.streams()`, PySpark's `StreamingQueryManager`).
///
/// ```no_run
/// # async fn run(spark: sc_client::SparkSession) -> sc_client::Result<()> {
/// use futures_util::StreamExt;
/// use sc_client::streaming::QueryEvent;
/// let mut events = spark.streams().events().await?;
/// while let Some(event) = events.next().await {
///     match event? {
///         QueryEvent::Progress(p) => println!("batch {} done", p.batch_id),
///         QueryEvent::Terminated(t) => {
///             println!("{} ended", t.id);
///             break;
///         }
///         _ => {}
///     }
/// }
/// for q in spark.streams().active().await? {
///     q.stop().await?;
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct StreamingQueryManager {
    session: SparkSession,
}

impl StreamingQueryManager {
    pub(crate) fn new(session: SparkSession) -> Self {
        Self { session }
    }

    async fn command(&self, cmd: ManagerCmd, what: &str) -> Result<Option<ManagerResult>> {
        let cmd = pb::command::CommandType::StreamingQueryManagerCommand(
            pb::StreamingQueryManagerCommand { command: Some(cmd) },
        );
        let result = command_result(&self.session, cmd, what, |r| match r {
            ResponseType::StreamingQueryManagerCommandResult(r) => Some(r),
            _ => None,
        })
        .await?;
        Ok(result.result_type)
    }

    fn query(
        &self,
        q: pb::streaming_query_manager_command_result::StreamingQueryInstance,
    ) -> Result<StreamingQuery> {
        let id =
            q.id.ok_or_else(|| Error::Protocol("the server sent a query without an id".into()))?;
        Ok(StreamingQuery::new(self.session.clone(), id, q.name))
    }

    /// The queries running in this session.
    pub async fn active(&self) -> Result<Vec<StreamingQuery>> {
        match self
            .command(ManagerCmd::Active(true), "active queries")
            .await?
        {
            Some(ManagerResult::Active(a)) => a
                .active_queries
                .into_iter()
                .map(|q| self.query(q))
                .collect(),
            other => Err(Error::Protocol(format!(
                "expected the active queries, got {other:?}"
            ))),
        }
    }

    /// The running query with this id (see [`StreamingQuery::id`]), if there is one.
    pub async fn get(&self, id: &str) -> Result<Option<StreamingQuery>> {
        match self
            .command(ManagerCmd::GetQuery(id.to_string()), "query")
            .await?
        {
            Some(ManagerResult::Query(q)) => Ok(Some(self.query(q)?)),
            None => Ok(None),
            other => Err(Error::Protocol(format!("expected a query, got {other:?}"))),
        }
    }

    /// Waits until any query of the session stops (or has stopped since the last
    /// [`reset_terminated`](Self::reset_terminated)); a failed query returns its error.
    pub async fn await_any_termination(&self) -> Result<()> {
        let cmd = ManagerCmd::AwaitAnyTermination(
            pb::streaming_query_manager_command::AwaitAnyTerminationCommand { timeout_ms: None },
        );
        self.command(cmd, "termination").await?;
        Ok(())
    }

    /// Waits until any query stops or `timeout` passes; returns whether one stopped.
    pub async fn await_any_termination_timeout(&self, timeout: Duration) -> Result<bool> {
        let cmd = ManagerCmd::AwaitAnyTermination(
            pb::streaming_query_manager_command::AwaitAnyTerminationCommand {
                timeout_ms: Some(timeout_ms(timeout)?),
            },
        );
        match self.command(cmd, "termination").await? {
            Some(ManagerResult::AwaitAnyTermination(t)) => Ok(t.terminated),
            other => Err(Error::Protocol(format!(
                "expected a termination result, got {other:?}"
            ))),
        }
    }

    /// Forgets the queries that stopped, so that
    /// [`await_any_termination`](Self::await_any_termination) waits for a new one.
    pub async fn reset_terminated(&self) -> Result<()> {
        self.command(ManagerCmd::ResetTerminated(true), "reset result")
            .await?;
        Ok(())
    }

    /// The session's streaming query listener events (query started, progress, idle,
    /// terminated) as an async stream, from now on.
    ///
    /// The first stream of a session asks the server to forward the events (PySpark does the
    /// same when the first listener is added) over one long-running call; later streams share
    /// it, and when the last one is dropped the server is told to stop. A stream that is read
    /// too slowly to keep up (more than 1024 events behind) yields an
    /// [`Error::ListenerEvents`] saying how many it missed, then goes on.
    ///
    /// A [`QueryEvent::Started`](crate::streaming::QueryEvent::Started) event is delivered for
    /// queries started in this session by this client while a stream exists (the server hands
    /// it to the client that starts the query).
    pub async fn events(&self) -> Result<QueryEventStream> {
        listener::subscribe(&self.session).await
    }

    /// Calls `listener` with each of the session's listener events, from a task of its own,
    /// until the returned handle's [`remove`](StreamingQueryListenerHandle::remove) (PySpark's
    /// `addListener`, which also runs listeners in the client). The callbacks run one at a
    /// time; a slow callback makes the listener miss events (logged as a warning) rather than
    /// hold the server's.
    pub async fn add_listener(
        &self,
        listener: impl StreamingQueryListener,
    ) -> Result<StreamingQueryListenerHandle> {
        listener::add_listener(&self.session, listener).await
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exception_drops_the_jvm_class() {
        let e = StreamingQueryException::from_proto(
            pb::streaming_query_command_result::ExceptionResult {
                exception_message: Some(
                    "org.apache.spark.sql.streaming.StreamingQueryException: [STREAM_FAILED] boom: x"
                        .into(),
                ),
                error_class: Some("STREAM_FAILED".into()),
                stack_trace: None,
            },
        );
        let e = e.unwrap_or_else(|| unreachable!());
        assert_eq!(e.message, "[STREAM_FAILED] boom: x");
        assert_eq!(e.to_string(), e.message);
        assert!(
            StreamingQueryException::from_proto(Default::default()).is_none(),
            "no message, no exception"
        );
    }

    #[test]
    fn timeouts_must_be_positive() {
        assert!(timeout_ms(Duration::ZERO).is_err());
        assert_eq!(timeout_ms(Duration::from_micros(10)).ok(), Some(1));
        assert_eq!(timeout_ms(Duration::from_secs(2)).ok(), Some(2000));
    }
}
