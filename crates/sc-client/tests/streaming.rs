//! Structured Streaming against a real Spark Connect server (`SC_TEST_SPARK_A`): sources, sinks,
//! triggers, running queries, the streams manager and listener events.
//!
//! Each test opens its own session on the shared server and names its queries and tables
//! uniquely. Waiting is done by polling a condition (with a generous limit that only turns a
//! hang into a failure), never by asserting on elapsed time.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow_array::Int64Array;
use futures_util::StreamExt;
use sc_client::functions::{col, count, lit, max, window};
use sc_client::streaming::{
    DataStreamWriter, OutputMode, QueryEvent, QueryEventStream, QueryTerminatedEvent,
    StreamingQuery, StreamingQueryListener, StreamingQueryProgress, Trigger,
};
use sc_client::{Column, DataFrame, Error, SparkSession};
use support::{PATIENCE, eventually};

fn remote() -> String {
    let addr = std::env::var("SC_TEST_SPARK_A").unwrap_or_else(|_| {
        panic!("SC_TEST_SPARK_A is not set: start a Spark Connect server (scripts/spark-server.sh start NAME PORT) and export its host:port")
    });
    format!("sc://{addr}/;user_id=sc-client-streaming")
}

async fn spark() -> SparkSession {
    SparkSession::builder()
        .remote(remote())
        .build()
        .await
        .unwrap()
}

fn unique(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
}

async fn num_rows(df: &DataFrame) -> i64 {
    df.count().await.unwrap()
}

/// A rate source of `rows_per_second` rows (columns `timestamp`, `value`) in one partition.
fn rate(spark: &SparkSession, rows_per_second: u32) -> DataFrame {
    spark
        .read_stream()
        .format("rate")
        .options([
            ("rowsPerSecond", rows_per_second.to_string().as_str()),
            ("numPartitions", "1"),
        ])
        .load()
}

/// Starts a query of `df` into a memory sink of a fresh name; returns it and the sink table.
async fn into_memory(df: DataFrame) -> (StreamingQuery, DataFrame) {
    into_memory_with(df, |w| w).await
}

/// [`into_memory`] with more settings of the writer.
async fn into_memory_with(
    df: DataFrame,
    configure: impl FnOnce(DataStreamWriter) -> DataStreamWriter,
) -> (StreamingQuery, DataFrame) {
    let name = unique("memory");
    let query = configure(df.write_stream().format("memory").query_name(&name))
        .start()
        .await
        .unwrap();
    (query, df.session().table(&name))
}

/// Writes `contents` as `dir/name` so that a file source never sees it half written.
fn drop_file(dir: &Path, name: &str, contents: &[u8]) {
    let staging = dir.parent().unwrap().join(format!(".staging-{name}"));
    std::fs::write(&staging, contents).unwrap();
    std::fs::rename(&staging, dir.join(name)).unwrap();
}

// === rate source, memory sink, progress ===

#[tokio::test]
async fn rate_stream_into_a_memory_sink_queried_while_running() {
    let spark = spark().await;
    let name = unique("ticks");
    let df = rate(&spark, 50);
    assert!(df.is_streaming().await.unwrap());
    let query = df
        .select([col("value"), (col("value") % 3).alias("bucket")])
        .write_stream()
        .format("memory")
        .query_name(&name)
        .output_mode(OutputMode::Append)
        .trigger(Trigger::processing_time(Duration::from_millis(300)))
        .start()
        .await
        .unwrap();
    assert_eq!(query.name(), Some(name.as_str()));
    assert!(uuid::Uuid::parse_str(query.id()).is_ok(), "{}", query.id());
    assert!(uuid::Uuid::parse_str(query.run_id()).is_ok());

    // The sink table fills while the query runs: read it twice, and it grows.
    let table = spark.table(&name);
    let first = eventually("rows in the memory sink", || async {
        let n = num_rows(&table).await;
        (n > 0).then_some(n)
    })
    .await;
    assert!(query.is_active().await.unwrap());
    let later = eventually("more rows in the memory sink", || async {
        let n = num_rows(&table).await;
        (n > first).then_some(n)
    })
    .await;
    assert!(later > first);
    let buckets = table.group_by(["bucket"]).count().order_by([col("bucket")]);
    assert_eq!(num_rows(&buckets).await, 3);

    // Progress of the triggers so far.
    let last: StreamingQueryProgress = eventually("a progress report", || async {
        query.last_progress().await.unwrap()
    })
    .await;
    assert_eq!(last.id, query.id());
    assert_eq!(last.run_id, query.run_id());
    assert_eq!(last.name.as_deref(), Some(name.as_str()));
    assert!(
        last.sources[0].description.contains("RateStream"),
        "{last:?}"
    );
    assert!(last.sink.description.contains("MemorySink"), "{last:?}");
    assert!(last.duration_ms.contains_key("triggerExecution"));
    assert!(last.json().contains("\"batchId\""));
    let recent = query.recent_progress().await.unwrap();
    assert!(!recent.is_empty());
    assert!(recent.windows(2).all(|w| w[0].batch_id < w[1].batch_id));
    let rows_read: i64 = recent.iter().map(|p| p.num_input_rows()).sum();
    assert!(rows_read > 0);

    let status = query.status().await.unwrap();
    assert!(status.is_active);
    assert!(!status.message.is_empty());
    let plan = query.explain_string(true).await.unwrap();
    assert!(plan.contains("Logical Plan"), "{plan}");

    query.stop().await.unwrap();
    assert!(!query.is_active().await.unwrap());
    assert!(
        query
            .await_termination_timeout(Duration::from_secs(5))
            .await
            .unwrap()
    );
    query.await_termination().await.unwrap();
    assert_eq!(query.exception().await.unwrap(), None);
    // The rows stay in the sink after the stop.
    assert!(num_rows(&table).await >= later);
    spark.stop().await.unwrap();
}

// === file sources and sinks, triggers ===

#[tokio::test]
async fn a_file_stream_picks_up_new_files() {
    let spark = spark().await;
    let dir = tempfile::tempdir().unwrap();
    let json_dir = dir.path().join("json");
    let csv_dir = dir.path().join("csv");
    std::fs::create_dir(&json_dir).unwrap();
    std::fs::create_dir(&csv_dir).unwrap();

    let files = || spark.read_stream().schema("n INT, s STRING");
    let (json_query, json_rows) = into_memory(
        files()
            .option("maxFilesPerTrigger", "1")
            .json(json_dir.to_str().unwrap()),
    )
    .await;
    let (csv_query, csv_rows) = into_memory(
        files()
            .option("header", "true")
            .csv(csv_dir.to_str().unwrap()),
    )
    .await;

    let mut expected = 0;
    for batch in 0..3 {
        let lines: Vec<String> = (0..4)
            .map(|i| format!(r#"{{"n": {}, "s": "b{batch}"}}"#, batch * 10 + i))
            .collect();
        drop_file(
            &json_dir,
            &format!("part-{batch}.json"),
            lines.join("\n").as_bytes(),
        );
        let csv: String = std::iter::once("n,s".to_string())
            .chain((0..4).map(|i| format!("{},b{batch}", batch * 10 + i)))
            .collect::<Vec<_>>()
            .join("\n");
        drop_file(&csv_dir, &format!("part-{batch}.csv"), csv.as_bytes());
        expected += 4;
        // The queries see each new file: the counts grow with every one.
        for (query, rows) in [(&json_query, &json_rows), (&csv_query, &csv_rows)] {
            eventually("the new file's rows", || async {
                query.process_all_available().await.unwrap();
                (num_rows(rows).await == expected).then_some(())
            })
            .await;
        }
    }
    let per_file = json_rows.group_by(["s"]).count();
    assert_eq!(num_rows(&per_file).await, 3);
    assert_eq!(
        num_rows(&csv_rows.filter(col("s").eq("b2"))).await,
        4,
        "csv rows with their header skipped"
    );
    json_query.stop().await.unwrap();
    csv_query.stop().await.unwrap();

    // Parquet in, Parquet out: files dropped into a watched folder, a file sink with a
    // checkpoint, the available-now trigger (the query stops by itself).
    let parquet_in = dir.path().join("parquet_in");
    std::fs::create_dir(&parquet_in).unwrap();
    for batch in 0..2i64 {
        let staged = dir.path().join(format!("staged-{batch}"));
        spark
            .range(batch * 100, batch * 100 + 25)
            .write()
            .parquet(staged.to_str().unwrap())
            .await
            .unwrap();
        for f in std::fs::read_dir(&staged).unwrap() {
            let f = f.unwrap().path();
            if f.extension().is_some_and(|e| e == "parquet") {
                let name = format!("b{batch}-{}", f.file_name().unwrap().to_str().unwrap());
                std::fs::rename(&f, parquet_in.join(name)).unwrap();
            }
        }
    }
    let out = dir.path().join("parquet_out");
    let query = spark
        .read_stream()
        .schema("id BIGINT")
        .parquet(parquet_in.to_str().unwrap())
        .with_column("doubled", col("id") * 2)
        .write_stream()
        .format("parquet")
        .checkpoint_location(dir.path().join("cp").to_str().unwrap())
        .trigger(Trigger::AvailableNow)
        .start_path(out.to_str().unwrap())
        .await
        .unwrap();
    query.await_termination().await.unwrap();
    assert!(!query.is_active().await.unwrap());
    let written = spark.read().parquet([out.to_str().unwrap()]);
    assert_eq!(num_rows(&written).await, 50);
    assert_eq!(
        num_rows(&written.filter(col("doubled").ne(col("id") * 2))).await,
        0
    );

    // The once trigger, text source and sink of lines.
    let text_in = dir.path().join("text_in");
    std::fs::create_dir(&text_in).unwrap();
    drop_file(&text_in, "a.txt", b"alpha\nbeta\ngamma");
    let text_out = dir.path().join("text_out");
    let query = spark
        .read_stream()
        .text(text_in.to_str().unwrap())
        .select([Column::sql_expr("upper(value)").alias("value")])
        .write_stream()
        .format("text")
        .checkpoint_location(dir.path().join("cp_text").to_str().unwrap())
        .trigger(Trigger::Once)
        .start_path(text_out.to_str().unwrap())
        .await
        .unwrap();
    query.await_termination().await.unwrap();
    let lines = spark.read().text([text_out.to_str().unwrap()]);
    assert_eq!(num_rows(&lines.filter(col("value").eq("BETA"))).await, 1);
    assert_eq!(num_rows(&lines).await, 3);
    spark.stop().await.unwrap();
}

#[tokio::test]
async fn a_table_sink_feeds_a_table_stream() {
    let spark = spark().await;
    let dir = tempfile::tempdir().unwrap();
    let table = unique("stream_sink");
    let writer = rate(&spark, 100)
        .select([col("value"), lit("r").alias("tag")])
        .write_stream()
        .checkpoint_location(dir.path().join("cp").to_str().unwrap())
        .trigger(Trigger::processing_time(Duration::from_millis(300)));
    let into_table = writer.to_table(&table).await.unwrap();
    // (A rate source always has more: `process_all_available` is for sources that run dry.)
    eventually("rows in the sink table", || async {
        (num_rows(&spark.table(&table)).await > 0).then_some(())
    })
    .await;

    let (from_table, copy) = into_memory(spark.read_stream().table(&table)).await;
    eventually("rows streamed from the table", || async {
        from_table.process_all_available().await.unwrap();
        (num_rows(&copy).await > 0).then_some(())
    })
    .await;
    let progress = from_table.last_progress().await.unwrap().unwrap();
    assert!(
        progress.sources[0].description.contains("FileStreamSource"),
        "{progress:?}"
    );
    into_table.stop().await.unwrap();
    from_table.stop().await.unwrap();
    spark.sql(&format!("drop table {table}")).await.unwrap();
    spark.stop().await.unwrap();
}

// === watermarks ===

#[tokio::test]
async fn duplicates_within_the_watermark_are_dropped() {
    let spark = spark().await;
    let (query, rows) = into_memory(
        rate(&spark, 100)
            .select([col("timestamp"), (col("value") % 5).alias("k")])
            .with_watermark("timestamp", "1 hour")
            .drop_duplicates_within_watermark(["k"]),
    )
    .await;
    // Many more than 5 rows arrive; within the hour-long watermark each key passes once.
    eventually("the five keys", || async {
        let p = query.recent_progress().await.unwrap();
        let read: i64 = p.iter().map(|p| p.num_input_rows()).sum();
        (read > 50 && num_rows(&rows).await == 5).then_some(())
    })
    .await;
    let progress = query.last_progress().await.unwrap().unwrap();
    assert!(!progress.state_operators.is_empty(), "{progress:?}");
    assert!(
        progress.event_time.contains_key("watermark"),
        "{progress:?}"
    );
    assert_eq!(num_rows(&rows.select(["k"]).distinct()).await, 5);
    query.stop().await.unwrap();
    spark.stop().await.unwrap();
}

#[tokio::test]
async fn a_watermarked_window_aggregation_counts_each_window() {
    let spark = spark().await;
    let (query, windows) = into_memory_with(
        rate(&spark, 50)
            .with_watermark("timestamp", "10 seconds")
            .group_by([window(col("timestamp"), "2 seconds", None, None)])
            .agg([count("*").alias("n")]),
        |w| w.output_mode(OutputMode::Complete),
    )
    .await;
    // The rate source stamps 50 rows a second evenly: a two-second window holds at most 100.
    let biggest = eventually("three windows", || async {
        let b = windows
            .agg([count("*").alias("windows"), max("n").alias("biggest")])
            .collect_batch()
            .await
            .unwrap();
        let int = |i: usize| {
            b.column(i)
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap()
                .value(0)
        };
        (int(0) >= 3).then(|| int(1))
    })
    .await;
    assert!((1..=100).contains(&biggest), "{biggest}");
    query.stop().await.unwrap();
    spark.stop().await.unwrap();
}

// === failures ===

#[tokio::test]
async fn a_failed_query_reports_its_exception() {
    let spark = spark().await;
    let (query, _) = into_memory(
        rate(&spark, 10).select([Column::sql_expr(
            "if(value >= 3, raise_error(concat('boom at ', value)), value)",
        )
        .alias("v")]),
    )
    .await;
    let err = query.await_termination().await.unwrap_err();
    assert!(matches!(err, Error::Spark(_)), "{err:?}");
    assert!(err.to_string().contains("boom at"), "{err}");
    assert!(!query.is_active().await.unwrap());
    let exception = query.exception().await.unwrap().expect("an exception");
    assert!(exception.message.contains("boom at"), "{exception:?}");
    assert!(
        !exception.message.starts_with("org.apache"),
        "the JVM class is dropped: {exception:?}"
    );
    // The streams manager reports the failure too.
    let streams = spark.streams();
    let e = streams
        .await_any_termination_timeout(Duration::from_secs(30))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("boom at"), "{e}");
    streams.reset_terminated().await.unwrap();

    // What a Rust client cannot do says so.
    let e = rate(&spark, 1)
        .write_stream()
        .foreach_batch(|_df, _batch| {})
        .unwrap_err();
    assert!(matches!(e, Error::Unsupported(_)), "{e}");
    spark.stop().await.unwrap();
}

// === the streams manager ===

#[tokio::test]
async fn the_streams_manager_lists_gets_and_awaits_queries() {
    let spark = spark().await;
    let streams = spark.streams();
    assert!(streams.active().await.unwrap().is_empty());
    let start = |name: String| {
        rate(&spark, 5)
            .write_stream()
            .format("memory")
            .query_name(&name)
            .start()
    };
    let (a, b) = (unique("a"), unique("b"));
    let qa = start(a.clone()).await.unwrap();
    let qb = start(b.clone()).await.unwrap();
    let mut active: Vec<String> = streams
        .active()
        .await
        .unwrap()
        .iter()
        .map(|q| q.name().unwrap_or_default().to_string())
        .collect();
    active.sort();
    let mut want = vec![a.clone(), b.clone()];
    want.sort();
    assert_eq!(active, want);
    let got = streams.get(qa.id()).await.unwrap().expect("query a");
    assert_eq!(
        (got.id(), got.run_id(), got.name()),
        (qa.id(), qa.run_id(), Some(a.as_str()))
    );
    assert!(
        streams
            .get(&uuid::Uuid::new_v4().to_string())
            .await
            .unwrap()
            .is_none()
    );

    // Nothing has stopped: the timeouts expire.
    assert!(
        !qa.await_termination_timeout(Duration::from_millis(500))
            .await
            .unwrap()
    );
    assert!(
        !streams
            .await_any_termination_timeout(Duration::from_millis(500))
            .await
            .unwrap()
    );
    assert!(qa.await_termination_timeout(Duration::ZERO).await.is_err());

    qa.stop().await.unwrap();
    assert!(
        streams
            .await_any_termination_timeout(Duration::from_secs(30))
            .await
            .unwrap()
    );
    streams.await_any_termination().await.unwrap();
    let active = streams.active().await.unwrap();
    assert_eq!(active.len(), 1);
    assert_eq!(active[0].id(), qb.id());
    // After a reset, the stopped query no longer counts.
    streams.reset_terminated().await.unwrap();
    assert!(
        !streams
            .await_any_termination_timeout(Duration::from_millis(500))
            .await
            .unwrap()
    );
    qb.stop().await.unwrap();
    assert!(streams.active().await.unwrap().is_empty());
    spark.stop().await.unwrap();
}

// === listener events ===

#[derive(Default)]
struct Recorder {
    started: Mutex<Vec<String>>,
    progress: Mutex<Vec<i64>>,
    terminated: Mutex<Vec<QueryTerminatedEvent>>,
}

struct Shared(Arc<Recorder>);

impl StreamingQueryListener for Shared {
    fn on_query_started(&self, e: &sc_client::streaming::QueryStartedEvent) {
        self.0.started.lock().unwrap().push(e.id.clone());
    }
    fn on_query_progress(&self, p: &StreamingQueryProgress) {
        self.0.progress.lock().unwrap().push(p.batch_id);
    }
    fn on_query_terminated(&self, e: &QueryTerminatedEvent) {
        self.0.terminated.lock().unwrap().push(e.clone());
    }
}

/// The next event, for at most [`PATIENCE`].
async fn next_event(events: &mut QueryEventStream) -> QueryEvent {
    tokio::time::timeout(PATIENCE, events.next())
        .await
        .expect("an event in time")
        .expect("the stream goes on")
        .unwrap()
}

/// Waits for the terminated event of query `id`.
async fn termination_of(events: &mut QueryEventStream, id: &str) -> QueryTerminatedEvent {
    loop {
        if let QueryEvent::Terminated(t) = next_event(events).await
            && t.id == id
        {
            return t;
        }
    }
}

#[tokio::test]
async fn listener_events_arrive_as_an_async_stream() {
    let spark = spark().await;
    let streams = spark.streams();
    let mut events = streams.events().await.unwrap();
    let recorder = Arc::new(Recorder::default());
    let listener = streams
        .add_listener(Shared(recorder.clone()))
        .await
        .unwrap();

    let name = unique("observed");
    let query = rate(&spark, 20)
        .write_stream()
        .format("memory")
        .query_name(&name)
        .trigger(Trigger::processing_time(Duration::from_millis(200)))
        .start()
        .await
        .unwrap();

    // Started (from the start command's result), then progress of this query.
    let mut progress_seen = 0;
    let mut started_seen = false;
    while progress_seen < 2 {
        let event = next_event(&mut events).await;
        match &event {
            QueryEvent::Started(s) if s.id == query.id() => {
                assert_eq!(s.run_id, query.run_id());
                assert_eq!(s.name.as_deref(), Some(name.as_str()));
                started_seen = true;
            }
            QueryEvent::Progress(p) if p.id == query.id() => {
                assert!(started_seen, "progress came before started");
                progress_seen += 1;
            }
            _ => {}
        }
    }
    query.stop().await.unwrap();
    let terminated = termination_of(&mut events, query.id()).await;
    assert_eq!(terminated.run_id, query.run_id());
    assert_eq!(terminated.exception, None);

    // The listener saw the same, from the same events call.
    eventually("the listener's terminated event", || async {
        (!recorder.terminated.lock().unwrap().is_empty()).then_some(())
    })
    .await;
    assert_eq!(*recorder.started.lock().unwrap(), [query.id().to_string()]);
    assert!(recorder.progress.lock().unwrap().len() >= 2);
    listener.remove().await;
    drop(events);

    // With every subscriber gone the server was told to stop; a new stream starts afresh, and
    // sees a failing query's termination with its exception.
    let mut events = eventually("a fresh event stream", || async {
        streams.events().await.ok()
    })
    .await;
    let (failing, _) = into_memory(
        rate(&spark, 10).select([Column::sql_expr("raise_error('listener boom')").alias("v")]),
    )
    .await;
    let failed = termination_of(&mut events, failing.id()).await;
    assert!(
        failed
            .exception
            .as_deref()
            .is_some_and(|e| e.contains("listener boom")),
        "{failed:?}"
    );
    drop(events);
    spark.stop().await.unwrap();
}
