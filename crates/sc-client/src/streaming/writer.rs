//! [`DataStreamWriter`]: starting streaming queries into sinks (console, memory, files, tables).

use std::time::Duration;

use sc_proto::spark::connect as pb;
use sc_proto::spark::connect::execute_plan_response::ResponseType;
use sc_proto::spark::connect::write_stream_operation_start::{
    SinkDestination, Trigger as PbTrigger,
};

use crate::dataframe::DataFrame;
use crate::error::{Error, Result};
use crate::streaming::listener::{QueryEvent, QueryStartedEvent};
use crate::streaming::query::{StreamingQuery, command_result};

/// Which rows a trigger writes to the sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputMode {
    /// Only new rows (the default; for aggregations, only once the watermark finalises them).
    Append,
    /// The whole result table, every trigger (aggregations only).
    Complete,
    /// Only the rows that changed since the last trigger.
    Update,
}

impl OutputMode {
    /// The name Spark knows the mode by.
    pub fn as_str(self) -> &'static str {
        match self {
            OutputMode::Append => "append",
            OutputMode::Complete => "complete",
            OutputMode::Update => "update",
        }
    }
}

impl std::str::FromStr for OutputMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "append" => Ok(OutputMode::Append),
            "complete" => Ok(OutputMode::Complete),
            "update" => Ok(OutputMode::Update),
            _ => Err(Error::InvalidArgument(format!(
                "unknown output mode '{s}': use append, complete or update"
            ))),
        }
    }
}

/// When a streaming query runs its triggers (micro-batches).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// A trigger every interval (a Spark interval string, `"10 seconds"`), or as soon as the
    /// previous one ends when it took longer.
    ProcessingTime(String),
    /// Process everything available now, in as many batches as the source limits ask, then
    /// stop.
    AvailableNow,
    /// Process everything available now in one batch, then stop (superseded by
    /// [`AvailableNow`](Self::AvailableNow)).
    Once,
    /// Continuous processing (experimental in Spark), checkpointing at this interval.
    Continuous(String),
    /// Real-time mode (Spark 4.1+), with this batch duration.
    RealTime(String),
}

impl Trigger {
    /// A trigger every `interval`.
    pub fn processing_time(interval: Duration) -> Self {
        Trigger::ProcessingTime(format!("{} milliseconds", interval.as_millis()))
    }

    /// Continuous processing checkpointing every `interval`.
    pub fn continuous(interval: Duration) -> Self {
        Trigger::Continuous(format!("{} milliseconds", interval.as_millis()))
    }
}

/// Starts a streaming query that writes a streaming DataFrame to a sink (`df.write_stream()`),
/// as PySpark's `DataStreamWriter`.
///
/// Sinks: `console` (prints each batch in the server's log), `memory` (an in-memory table named
/// by `query_name`, for tests and examples), files (`parquet`, `json`, `csv`, `orc`, `text`;
/// with [`start_path`](Self::start_path)), tables ([`to_table`](Self::to_table)), and any
/// other sink the server has (`kafka`, ...). A checkpoint location is needed for files and
/// tables, and lets any query resume where it stopped.
///
/// `foreachBatch` and `foreach` run Python code in a Python worker next to the Spark server;
/// a Rust client cannot ship a closure there, so [`foreach_batch`](Self::foreach_batch) and
/// [`foreach`](Self::foreach) only return an error saying so. Write to a table or files and
/// read them, or drive batch work from [`StreamingQuery::process_all_available`] and the
/// listener events.
///
/// ```no_run
/// # async fn run(spark: sc_client::SparkSession) -> sc_client::Result<()> {
/// use sc_client::streaming::{OutputMode, Trigger};
/// let query = spark
///     .read_stream()
///     .schema("user STRING, amount DOUBLE")
///     .json("/data/incoming")
///     .write_stream()
///     .format("parquet")
///     .output_mode(OutputMode::Append)
///     .trigger(Trigger::AvailableNow)
///     .checkpoint_location("/data/checkpoints/payments")
///     .start_path("/data/payments")
///     .await?;
/// query.await_termination().await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct DataStreamWriter {
    df: DataFrame,
    op: pb::WriteStreamOperationStart,
    /// A setting that was refused, reported by `start` (the builder methods stay chainable).
    invalid: Option<String>,
}

impl DataStreamWriter {
    pub(crate) fn new(df: DataFrame) -> Self {
        let op = pb::WriteStreamOperationStart {
            input: Some(df.plan.clone()),
            ..Default::default()
        };
        Self {
            df,
            op,
            invalid: None,
        }
    }

    fn refuse(mut self, why: String) -> Self {
        self.invalid.get_or_insert(why);
        self
    }

    /// The sink format (`console`, `memory`, `parquet`, `json`, `csv`, `orc`, `text`,
    /// `kafka`, ...).
    pub fn format(mut self, format: &str) -> Self {
        self.op.format = format.to_string();
        self
    }

    /// Which rows each trigger writes.
    pub fn output_mode(mut self, mode: OutputMode) -> Self {
        self.op.output_mode = mode.as_str().to_string();
        self
    }

    /// A sink option.
    pub fn option(mut self, key: &str, value: &str) -> Self {
        self.op.options.insert(key.to_string(), value.to_string());
        self
    }

    /// Several sink options.
    pub fn options<'a>(mut self, options: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        for (k, v) in options {
            self.op.options.insert(k.to_string(), v.to_string());
        }
        self
    }

    /// Where the query keeps its progress, so that it resumes there after a restart (the
    /// `checkpointLocation` option).
    pub fn checkpoint_location(self, path: &str) -> Self {
        self.option("checkpointLocation", path)
    }

    /// Partitions file output by these columns.
    pub fn partition_by<'a>(mut self, cols: impl IntoIterator<Item = &'a str>) -> Self {
        self.op.partitioning_column_names = cols.into_iter().map(str::to_string).collect();
        self
    }

    /// Clusters table output by these columns.
    pub fn cluster_by<'a>(mut self, cols: impl IntoIterator<Item = &'a str>) -> Self {
        self.op.clustering_column_names = cols.into_iter().map(str::to_string).collect();
        self
    }

    /// Names the query (the table name of a `memory` sink); names are unique among a session's
    /// active queries.
    pub fn query_name(mut self, name: &str) -> Self {
        if name.trim().is_empty() {
            return self.refuse("the query name must not be empty".into());
        }
        self.op.query_name = name.to_string();
        self
    }

    /// When triggers run (by default, each as soon as the previous one ends).
    pub fn trigger(mut self, trigger: Trigger) -> Self {
        let t = match trigger {
            Trigger::ProcessingTime(i) if i.trim().is_empty() => {
                return self.refuse("the processing-time interval must not be empty".into());
            }
            Trigger::Continuous(i) if i.trim().is_empty() => {
                return self.refuse("the continuous checkpoint interval must not be empty".into());
            }
            Trigger::RealTime(i) if i.trim().is_empty() => {
                return self.refuse("the real-time batch duration must not be empty".into());
            }
            Trigger::ProcessingTime(i) => PbTrigger::ProcessingTimeInterval(i.trim().to_string()),
            Trigger::AvailableNow => PbTrigger::AvailableNow(true),
            Trigger::Once => PbTrigger::Once(true),
            Trigger::Continuous(i) => PbTrigger::ContinuousCheckpointInterval(i.trim().to_string()),
            Trigger::RealTime(i) => PbTrigger::RealTimeBatchDuration(i.trim().to_string()),
        };
        self.op.trigger = Some(t);
        self
    }

    /// Not available: `foreachBatch` runs a Python function in a Python worker next to the
    /// Spark server, which a Rust client cannot provide. Returns [`Error::Unsupported`].
    pub fn foreach_batch<F>(self, _func: F) -> Result<Self>
    where
        F: FnMut(DataFrame, i64) + Send + 'static,
    {
        Err(Error::Unsupported(
            "foreachBatch runs a Python function in a Python worker next to the Spark server; a Rust client cannot ship a closure there. Write the stream to a table or to files (or a memory sink) and read that, or use StreamingQuery::process_all_available and spark.streams().events() to act after each batch".into(),
        ))
    }

    /// Not available: `foreach` runs a Python function in a Python worker next to the Spark
    /// server, which a Rust client cannot provide. Returns [`Error::Unsupported`].
    pub fn foreach<F>(self, _func: F) -> Result<Self>
    where
        F: Send + 'static,
    {
        Err(Error::Unsupported(
            "foreach runs a Python function for each row in a Python worker next to the Spark server; a Rust client cannot ship a closure there. Write the stream to a table, files or a memory sink and read that instead".into(),
        ))
    }

    /// The command [`start`](Self::start) sends (with no sink path or table).
    pub fn to_command(&self) -> pb::Command {
        pb::Command {
            command_type: Some(pb::command::CommandType::WriteStreamOperationStart(
                self.op.clone(),
            )),
        }
    }

    /// Starts the query into the sink set by [`format`](Self::format).
    pub async fn start(self) -> Result<StreamingQuery> {
        self.start_with(None).await
    }

    /// Starts the query writing files under `path`.
    pub async fn start_path(self, path: &str) -> Result<StreamingQuery> {
        if path.trim().is_empty() {
            return Err(Error::InvalidArgument(
                "the output path must not be empty".into(),
            ));
        }
        self.start_with(Some(SinkDestination::Path(path.to_string())))
            .await
    }

    /// Starts the query appending to the table `name` (created if it does not exist).
    pub async fn to_table(self, name: &str) -> Result<StreamingQuery> {
        if name.trim().is_empty() {
            return Err(Error::InvalidArgument(
                "the table name must not be empty".into(),
            ));
        }
        self.start_with(Some(SinkDestination::TableName(name.to_string())))
            .await
    }

    async fn start_with(mut self, sink: Option<SinkDestination>) -> Result<StreamingQuery> {
        if let Some(why) = self.invalid {
            return Err(Error::InvalidArgument(why));
        }
        self.op.sink_destination = sink;
        let session = self.df.session.clone();
        let cmd = pb::command::CommandType::WriteStreamOperationStart(self.op);
        let started = command_result(&session, cmd, "started query", |r| match r {
            ResponseType::WriteStreamOperationStartResult(r) => Some(r),
            _ => None,
        })
        .await?;
        let id = started
            .query_id
            .ok_or_else(|| Error::Protocol("the server started a query without an id".into()))?;
        if let Some(json) = &started.query_started_event_json {
            match QueryStartedEvent::from_json(json) {
                Ok(e) => session.listener_bus().post(QueryEvent::Started(e)),
                Err(e) => tracing::warn!(error = %e, "query started event"),
            }
        }
        Ok(StreamingQuery::new(session, id, Some(started.name)))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::session::SparkSession;

    #[tokio::test]
    async fn builds_the_start_command() {
        let spark = SparkSession::builder()
            .remote("sc://127.0.0.1:1")
            .build()
            .await
            .unwrap();
        let w = spark
            .range(0, 3)
            .write_stream()
            .format("memory")
            .output_mode("update".parse().unwrap())
            .options([("a", "1"), ("b", "2")])
            .checkpoint_location("/cp")
            .query_name("q")
            .trigger(Trigger::processing_time(Duration::from_secs(2)));
        let Some(pb::command::CommandType::WriteStreamOperationStart(op)) =
            w.to_command().command_type
        else {
            unreachable!()
        };
        assert_eq!(op.format, "memory");
        assert_eq!(op.output_mode, "update");
        assert_eq!(op.options["checkpointLocation"], "/cp");
        assert_eq!(op.options.len(), 3);
        assert_eq!(op.query_name, "q");
        assert_eq!(
            op.trigger,
            Some(PbTrigger::ProcessingTimeInterval(
                "2000 milliseconds".into()
            ))
        );
        assert!(op.input.is_some());

        // Refused settings and unavailable features are errors, not panics or silent drops.
        let e = spark
            .range(0, 1)
            .write_stream()
            .query_name(" ")
            .start()
            .await
            .unwrap_err();
        assert!(e.to_string().contains("query name"), "{e}");
        let e = spark
            .range(0, 1)
            .write_stream()
            .trigger(Trigger::ProcessingTime(String::new()))
            .start()
            .await
            .unwrap_err();
        assert!(e.to_string().contains("interval"), "{e}");
        let e = spark
            .range(0, 1)
            .write_stream()
            .foreach_batch(|_df, _id| {})
            .unwrap_err();
        assert!(
            matches!(&e, Error::Unsupported(m) if m.contains("Python worker")),
            "{e}"
        );
        assert!("sideways".parse::<OutputMode>().is_err());
    }
}
