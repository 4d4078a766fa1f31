//! `sc-client`: an async Spark Connect SDK for Rust.
//!
//! It talks to any Spark Connect server (Apache Spark 4.x, or this project's gateway proxy)
//! over gRPC, builds the same plans PySpark builds, and streams Arrow results.
//!
//! * Async from top to bottom, on tokio; no global runtime, no lock around requests: clone a
//!   [`SparkSession`] freely and use it from many tasks.
//! * Never panics on anything a user or a server sends: bad input is an [`Error`].
//! * Results stream as Arrow [`RecordBatch`](arrow_array::RecordBatch)es with bounded memory
//!   ([`DataFrame::to_stream`]), or as [`Row`]s and `serde` types
//!   ([`DataFrame::to_row_stream`], [`DataFrame::stream_as`]); cut streams are reattached
//!   transparently.
//! * No `protoc` needed: the protocol is compiled in pure Rust by `sc-proto`.
//!
//! # Connecting
//!
//! A connection string is `sc://host:port/;key=value;...`. The keys `token`, `use_ssl`,
//! `user_id`, `user_agent` and `session_id` configure the client as in PySpark; every other key
//! is sent as gRPC metadata on every call. Without a string the `SPARK_REMOTE` environment
//! variable is used. A `token` is sent as `authorization: Bearer ...` and forces TLS (with the
//! system roots, or a CA given to the builder) unless the host is a loopback address.
//!
//! ```no_run
//! use sc_client::{SparkSession, functions::*};
//!
//! # async fn run() -> sc_client::Result<()> {
//! let spark = SparkSession::builder()
//!     .remote("sc://localhost:15002/;user_id=alice")
//!     .build()
//!     .await?;
//!
//! let df = spark
//!     .range(0, 100)
//!     .with_column("bucket", col("id") % 10)
//!     .group_by(["bucket"])
//!     .agg([count("*").alias("n"), sum("id").alias("total")])
//!     .order_by([col("bucket").desc()]);
//! df.show(5).await?;
//!
//! let batches = df.collect().await?;
//! assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 10);
//! spark.stop().await?;
//! # Ok(()) }
//! ```
//!
//! # Functions
//!
//! [`functions`] has every function of PySpark 4.3's `pyspark.sql.functions` but the
//! Python-UDF builders, with PySpark's names and argument kinds, and the higher-order functions
//! (`transform`, `filter`, `aggregate`, ...) take Rust closures. Methods that take columns
//! accept names or [`Column`]s; [`cols!`] mixes the two in one list:
//!
//! ```
//! use sc_client::{Window, cols, functions::*};
//! let picked = cols!["dept", col("pay") * 1.1, upper("name").alias("shout")];
//! let w = Window::partition_by(["dept"]).order_by([col("pay").desc()]);
//! let ranked = rank().over(&w); // a window by reference...
//! let total = sum("pay").over(w); // ...or by value
//! let raised = transform("pays", |p| p * 1.1);
//! # let _ = (picked, ranked, total, raised);
//! ```
//!
//! # Streaming large results
//!
//! ```no_run
//! use futures_util::StreamExt;
//! # async fn run(spark: sc_client::SparkSession) -> sc_client::Result<()> {
//! let mut stream = spark.range(0, 1_000_000_000).to_stream().await?;
//! let mut rows = 0;
//! while let Some(batch) = stream.next().await {
//!     rows += batch?.num_rows();
//! }
//! # Ok(()) }
//! ```
//!
//! # Rows and serde
//!
//! Results come as [`Row`]s with typed getters, or deserialized into any `serde` type; local
//! data becomes a DataFrame from `serde` values or tuples with column names:
//!
//! ```no_run
//! use futures_util::StreamExt;
//! # async fn run(spark: sc_client::SparkSession) -> sc_client::Result<()> {
//! let df = spark
//!     .create_dataframe_from_rows(vec![("alice", 34i64), ("bob", 27)], ["name", "age"])
//!     .await?;
//! for row in df.collect_rows().await? {
//!     let name: String = row.get("name")?;
//!     let age: Option<i64> = row.get(1)?;
//! }
//!
//! #[derive(serde::Serialize, serde::Deserialize)]
//! struct Person { name: String, age: i64 }
//! let people: Vec<Person> = df.collect_as().await?;
//! let again = spark.create_dataframe_from(&people).await?;
//!
//! let mut stream = spark.range(0, 1_000_000_000).stream_as::<(i64,)>().await?;
//! while let Some(item) = stream.next().await {
//!     let (id,) = item?;
//! }
//! # Ok(()) }
//! ```
//!
//! Local data at or above the server's `spark.sql.session.localRelationCacheThreshold` (1 MiB
//! by default) is uploaded as cached artifacts before the plan that uses it, as PySpark does,
//! so it is not limited by the message size.
//!
//! # Errors
//!
//! Spark errors carry the error class, SQL state and message parameters:
//!
//! ```no_run
//! # async fn run(spark: sc_client::SparkSession) {
//! match spark.sql("select * from no_such_table").await {
//!     Err(e) => assert_eq!(e.error_class(), Some("TABLE_OR_VIEW_NOT_FOUND")),
//!     Ok(_) => unreachable!(),
//! }
//! # }
//! ```
//!
//! # Through the gateway proxy
//!
//! [`ControlPlaneClient`] creates sessions on the proxy's control plane, with an app name, and
//! hands out a [`ManagedSession`]: the proxy session and a [`SparkSession`] connected to it
//! (whose session id is the proxy session's), owned together. Closing it (or stopping the Spark
//! session) releases the Spark session and deletes the proxy session;
//! [`ControlPlaneClient::with_session`] closes it even when the work in between fails. Its
//! state and metrics (queries, active operations, artifacts, bytes, execution time, errors)
//! are typed ([`SessionState`], [`SessionMetrics`]).
//!
//! # Structured Streaming
//!
//! [`SparkSession::read_stream`], [`DataFrame::write_stream`], [`StreamingQuery`] and
//! [`SparkSession::streams`], with listener events as an async stream: see [`streaming`].
//!
//! # Statistics, observed metrics, table writes and the catalog
//!
//! [`DataFrame::stat`] computes correlations, covariances, exact or approximate quantiles,
//! contingency tables, frequent items and stratified samples; [`DataFrame::observe`] collects
//! metrics while a query runs ([`Observation`]); [`DataFrame::write_to`] writes through Spark's V2
//! catalogs ([`DataFrameWriterV2`]) and [`DataFrame::merge_into`] merges into a table
//! ([`MergeIntoWriter`]); [`Catalog`] has every method of PySpark's; [`SparkSession::tvf`] calls
//! table-valued functions; schemas can be typed ([`types::StructType`]).
//!
//! ```no_run
//! # async fn run(spark: sc_client::SparkSession) -> sc_client::Result<()> {
//! use sc_client::functions::{col, count, lit};
//! use sc_client::types::{DataType, StructType};
//! let df = spark.sql("select id, id * 2 as twice from range(100)").await?;
//! let median = df.stat().approx_quantile(["id"], &[0.5], 0.0).await?;
//! let schema = StructType::empty().add("id", DataType::Long, false);
//! df.to(&schema).write_to("ids").using("parquet").create().await?;
//! let tables = spark.catalog().list_tables(None, Some("id*")).await?;
//! # Ok(()) }
//! ```
//!
//! # Building plans without a server
//!
//! Transformations never touch the network, so plans can be inspected offline:
//!
//! ```
//! # async fn run() -> sc_client::Result<()> {
//! use sc_client::{SparkSession, functions::col};
//! let spark = SparkSession::builder().remote("sc://localhost").build().await?;
//! let plan = spark.range(0, 10).filter(col("id").gt(5)).to_plan();
//! assert!(plan.op_type.is_some());
//! # Ok(()) }
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(run()).unwrap();
//! ```

#![forbid(unsafe_code)]

mod catalog;
mod client;
mod column;
mod conn;
mod control;
mod dataframe;
mod dataframe_ext;
mod ddl;
mod error;
pub mod functions;
mod local;
mod merge;
mod observation;
mod reader;
mod row;
mod session;
mod session_clone;
mod stat;
pub mod streaming;
mod subquery;
mod tvf;
pub mod types;
mod window;
mod writer;
mod writer_v2;

pub use catalog::{
    Catalog, CatalogColumn, CatalogMetadata, CreateTable, Database, Function, Table,
};
pub use client::{DEFAULT_MAX_MESSAGE_SIZE, Progress, ProgressHandler, RetryPolicy};
pub use column::{Column, Date, Decimal, IntoColumn, IntoExpr, Timestamp, TimestampNtz};
pub use conn::{ConnectionString, DEFAULT_PORT, RESERVED_KEYS};
pub use control::{
    BackendInfo, ControlPlaneClient, ControlPlaneClientBuilder, ManagedSession, ProxySession,
    SESSION_HEADER, SessionMetrics, SessionOptions, SessionState,
};
pub use dataframe::{
    BatchStream, DataFrame, ExplainMode, GroupedData, IntoCondition, JoinOn, JoinType, NaFunctions,
    StorageLevel,
};
pub use error::{Error, Result, SparkError};
pub use local::{CreateDataFrame, LocalSchema};
pub use merge::{MergeIntoWriter, WhenMatched, WhenNotMatched, WhenNotMatchedBySource};
pub use observation::{MetricValue, Observation, ObservedMetrics};
pub use reader::DataFrameReader;
pub use row::{FromValue, Row, RowIndex, RowStream, TypedRowStream};
pub use session::{RuntimeConfig, SPARK_REMOTE_ENV, SparkSession, SparkSessionBuilder};
pub use stat::DataFrameStatFunctions;
pub use streaming::{DataStreamReader, DataStreamWriter, StreamingQuery, StreamingQueryManager};
pub use tvf::TableValuedFunction;
pub use window::{Window, WindowSpec};
pub use writer::{DataFrameWriter, SaveMode};
pub use writer_v2::DataFrameWriterV2;

/// The protocol messages, for building or inspecting raw plans.
pub use sc_proto::spark::connect as proto;
