//! Structured Streaming: streaming DataFrames from sources, queries that write them to sinks,
//! the session's queries, and their listener events.
//!
//! The names follow PySpark's `pyspark.sql.streaming`: [`SparkSession::read_stream`] gives a
//! [`DataStreamReader`], [`DataFrame::write_stream`] a [`DataStreamWriter`] whose `start`
//! returns a running [`StreamingQuery`], and [`SparkSession::streams`] the
//! [`StreamingQueryManager`]. Listener events arrive as an async stream
//! ([`StreamingQueryManager::events`]) or through a [`StreamingQueryListener`].
//!
//! ```no_run
//! # async fn run(spark: sc_client::SparkSession) -> sc_client::Result<()> {
//! use sc_client::functions::{col, count, window};
//! use sc_client::streaming::OutputMode;
//! let counts = spark
//!     .read_stream()
//!     .format("rate")
//!     .option("rowsPerSecond", "100")
//!     .load()
//!     .with_watermark("timestamp", "10 seconds")
//!     .group_by([window(col("timestamp"), "5 seconds", None, None)])
//!     .agg([count("*").alias("n")]);
//! let query = counts
//!     .write_stream()
//!     .format("memory")
//!     .query_name("per_window")
//!     .output_mode(OutputMode::Complete)
//!     .start()
//!     .await?;
//! query.process_all_available().await?;
//! spark.table("per_window").show(20).await?;
//! query.stop().await?;
//! # Ok(()) }
//! ```
//!
//! What a Rust client cannot do: `foreachBatch`, `foreach` and server-side listeners run Python
//! code in a Python worker next to the Spark server. [`DataStreamWriter::foreach_batch`] and
//! [`DataStreamWriter::foreach`] return [`Error::Unsupported`](crate::Error::Unsupported)
//! saying so.

mod listener;
mod progress;
mod query;
mod reader;
mod writer;

use sc_proto::spark::connect as pb;
use sc_proto::spark::connect::relation::RelType;

pub(crate) use listener::ListenerBus;
pub use listener::{
    QueryEvent, QueryEventStream, QueryIdleEvent, QueryStartedEvent, QueryTerminatedEvent,
    StreamingQueryListener, StreamingQueryListenerHandle,
};
pub use progress::{SinkProgress, SourceProgress, StateOperatorProgress, StreamingQueryProgress};
pub use query::{
    StreamingQuery, StreamingQueryException, StreamingQueryManager, StreamingQueryStatus,
};
pub use reader::DataStreamReader;
pub use writer::{DataStreamWriter, OutputMode, Trigger};

use crate::dataframe::DataFrame;
use crate::session::SparkSession;

// === impl SparkSession ===

impl SparkSession {
    /// A reader of streaming sources (PySpark's `spark.readStream`).
    pub fn read_stream(&self) -> DataStreamReader {
        DataStreamReader::new(self.clone())
    }

    /// The session's streaming queries (PySpark's `spark.streams`).
    pub fn streams(&self) -> StreamingQueryManager {
        StreamingQueryManager::new(self.clone())
    }

    pub(crate) fn listener_bus(&self) -> &ListenerBus {
        &self.client.shared.listener_bus
    }
}

// === impl DataFrame ===

impl DataFrame {
    /// A writer that starts a streaming query of this (streaming) DataFrame (PySpark's
    /// `df.writeStream`).
    pub fn write_stream(&self) -> DataStreamWriter {
        DataStreamWriter::new(self.clone())
    }

    /// Declares `event_time` (a timestamp column) the event time of a streaming DataFrame and
    /// `delay_threshold` (`"10 minutes"`) how late rows may arrive: stateful operators
    /// (aggregations over event-time windows, deduplication, joins) drop state older than the
    /// watermark, and rows later than it.
    pub fn with_watermark(&self, event_time: &str, delay_threshold: &str) -> DataFrame {
        let rel = self
            .session
            .relation(RelType::WithWatermark(Box::new(pb::WithWatermark {
                input: Some(Box::new(self.plan.clone())),
                event_time: event_time.to_string(),
                delay_threshold: delay_threshold.to_string(),
            })));
        DataFrame::new(self.session.clone(), rel)
    }

    /// Removes rows that repeat the values of `subset` (all columns when empty) among rows
    /// within the watermark's delay of each other; needs
    /// [`with_watermark`](Self::with_watermark) on a streaming DataFrame.
    pub fn drop_duplicates_within_watermark<'a>(
        &self,
        subset: impl IntoIterator<Item = &'a str>,
    ) -> DataFrame {
        let column_names: Vec<String> = subset.into_iter().map(str::to_string).collect();
        let rel = self
            .session
            .relation(RelType::Deduplicate(Box::new(pb::Deduplicate {
                input: Some(Box::new(self.plan.clone())),
                all_columns_as_keys: Some(column_names.is_empty()),
                column_names,
                within_watermark: Some(true),
            })));
        DataFrame::new(self.session.clone(), rel)
    }
}
