//! Plan fidelity of Structured Streaming (the cases of `cases_streaming.py`): streaming reads,
//! watermarks and deduplication as DataFrames, and the plans `write_stream ... start()` sends.

use sc_client::functions::{col, sum, window};
use sc_client::proto::Plan;
use sc_client::streaming::{DataStreamWriter, OutputMode, Trigger};
use sc_client::{DataFrame, SparkSession};

use super::capture::Capture;

fn rate(spark: &SparkSession) -> DataFrame {
    spark
        .read_stream()
        .format("rate")
        .option("rowsPerSecond", "10")
        .load()
}

/// The Rust spelling of each streaming DataFrame case.
pub(crate) fn build(name: &str, spark: &SparkSession) -> Option<DataFrame> {
    let typed = |schema: &str| spark.read_stream().schema(schema);
    Some(match name {
        "stream_rate" => rate(spark),
        "stream_rate_options" => spark
            .read_stream()
            .format("rate")
            .options([("rowsPerSecond", "5"), ("numPartitions", "2")])
            .load(),
        "stream_load_path" => typed("n INT").format("json").load_path("/in"),
        "stream_json_schema" => typed("n INT, s STRING").json("/in"),
        "stream_csv_options" => typed("n INT, s STRING").option("header", "true").csv("/in"),
        "stream_parquet" => typed("id BIGINT").parquet("/in"),
        "stream_orc" => typed("id BIGINT").orc("/in"),
        "stream_text" => spark.read_stream().text("/in"),
        "stream_text_wholetext" => spark.read_stream().option("wholetext", "True").text("/in"),
        "stream_xml" => typed("a INT").option("rowTag", "row").xml("/in"),
        "stream_table" => spark.read_stream().table("t"),
        "stream_table_options" => spark
            .read_stream()
            .option("maxFilesPerTrigger", "1")
            .table("t"),
        "stream_named_source" => spark
            .read_stream()
            .format("rate")
            .name("ticks_1")
            .ok()?
            .load(),
        "stream_changes" => spark
            .read_stream()
            .option("startingVersion", "1")
            .changes("t")
            .ok()?,
        "with_watermark" => rate(spark).with_watermark("timestamp", "10 minutes"),
        "dedup_within_watermark_all" => rate(spark)
            .with_watermark("timestamp", "1 hour")
            .drop_duplicates_within_watermark(Vec::<&str>::new()),
        "dedup_within_watermark_subset" => rate(spark)
            .with_watermark("timestamp", "1 hour")
            .drop_duplicates_within_watermark(["value"]),
        "stream_watermark_aggregate" => rate(spark)
            .with_watermark("timestamp", "10 seconds")
            .group_by(["value"])
            .count(),
        "stream_window_aggregate" => rate(spark)
            .with_watermark("timestamp", "10 seconds")
            .group_by([window(col("timestamp"), "5 seconds", None, None)])
            .agg([sum("value").alias("s")]),
        _ => return None,
    })
}

/// The Rust spelling of each write-stream case: the plan `start` sends, captured.
pub(crate) async fn build_plan(name: &str, cap: &Capture) -> Option<Plan> {
    let configure: fn(&SparkSession) -> DataStreamWriter = match name {
        "write_memory_append" => |s| {
            writer(s)
                .format("memory")
                .query_name("q")
                .output_mode(OutputMode::Append)
        },
        "write_complete" => |s| {
            rate(s)
                .group_by(["value"])
                .count()
                .write_stream()
                .format("console")
                .output_mode(OutputMode::Complete)
        },
        "write_update" => |s| writer(s).output_mode(OutputMode::Update),
        "write_processing_time" => |s| {
            writer(s)
                .format("memory")
                .query_name("q")
                .trigger(Trigger::ProcessingTime("5 seconds".into()))
        },
        "write_available_now" => |s| writer(s).format("parquet").trigger(Trigger::AvailableNow),
        "write_once" => |s| writer(s).trigger(Trigger::Once),
        "write_continuous" => |s| {
            writer(s)
                .format("console")
                .trigger(Trigger::Continuous("1 second".into()))
        },
        "write_options_checkpoint" => |s| {
            writer(s)
                .format("json")
                .checkpoint_location("/cp")
                .options([("compression", "gzip"), ("maxRecordsPerFile", "10")])
        },
        "write_partition_by" => |s| {
            writer(s)
                .format("parquet")
                .partition_by(["value", "timestamp"])
        },
        "write_cluster_by" => |s| writer(s).cluster_by(["value"]),
        "write_start_path" => {
            return cap
                .plan_of(async |s| {
                    let w = writer(&s).format("parquet").checkpoint_location("/cp");
                    let _ = w.start_path("/out").await;
                })
                .await;
        }
        "write_to_table" => {
            return cap
                .plan_of(async |s| {
                    let _ = writer(&s).checkpoint_location("/cp").to_table("sink").await;
                })
                .await;
        }
        _ => return None,
    };
    cap.plan_of(async |s| {
        let _ = configure(&s).start().await;
    })
    .await
}

fn writer(spark: &SparkSession) -> DataStreamWriter {
    rate(spark).write_stream()
}
