"""Structured Streaming cases for plan fidelity (issue 12, item 4), merged by pyspark_plans.py:
streaming DataFrames, and the plans `writeStream ... start()` / `toTable()` send.
"""

import __main__

import pyspark.sql.connect.functions as F
from pyspark.sql.connect.proto import base_pb2

spark = __main__.spark


def rate():
    return spark.readStream.format("rate").option("rowsPerSecond", "10").load()


CASES = {
    "stream_rate": rate,
    "stream_rate_options": lambda: spark.readStream.format("rate").options(rowsPerSecond="5", numPartitions="2").load(),
    "stream_load_path": lambda: spark.readStream.format("json").schema("n INT").load("/in"),
    "stream_json_schema": lambda: spark.readStream.json("/in", schema="n INT, s STRING"),
    "stream_csv_options": lambda: spark.readStream.schema("n INT, s STRING").option("header", "true").csv("/in"),
    "stream_parquet": lambda: spark.readStream.schema("id BIGINT").parquet("/in"),
    "stream_orc": lambda: spark.readStream.schema("id BIGINT").orc("/in"),
    "stream_text": lambda: spark.readStream.text("/in"),
    "stream_text_wholetext": lambda: spark.readStream.text("/in", wholetext=True),
    "stream_xml": lambda: spark.readStream.schema("a INT").option("rowTag", "row").xml("/in"),
    "stream_table": lambda: spark.readStream.table("t"),
    "stream_table_options": lambda: spark.readStream.option("maxFilesPerTrigger", "1").table("t"),
    "stream_named_source": lambda: spark.readStream.format("rate").name("ticks_1").load(),
    "stream_changes": lambda: spark.readStream.option("startingVersion", "1").changes("t"),
    "with_watermark": lambda: rate().withWatermark("timestamp", "10 minutes"),
    "dedup_within_watermark_all": lambda: rate().withWatermark("timestamp", "1 hour").dropDuplicatesWithinWatermark(),
    "dedup_within_watermark_subset": lambda: rate().withWatermark("timestamp", "1 hour").dropDuplicatesWithinWatermark(["value"]),
    "stream_watermark_aggregate": lambda: rate().withWatermark("timestamp", "10 seconds").groupBy("value").count(),
    "stream_window_aggregate": lambda: rate().withWatermark("timestamp", "10 seconds").groupBy(F.window("timestamp", "5 seconds")).agg(F.sum("value").alias("s")),
}


def writer():
    return rate().writeStream


def start_plan(w, path=None, table=None):
    """The plan `w.start(path)` (or `w.toTable(table)`) sends, without sending it."""
    if path:
        w._write_proto.path = path
    if table:
        w._write_proto.table_name = table
    plan = base_pb2.Plan()
    plan.command.CopyFrom(w._write_stream.command(spark._client))
    return plan


CASES.update({
    "write_memory_append": lambda: start_plan(writer().format("memory").queryName("q").outputMode("append")),
    "write_complete": lambda: start_plan(rate().groupBy("value").count().writeStream.format("console").outputMode("complete")),
    "write_update": lambda: start_plan(writer().outputMode("update")),
    "write_processing_time": lambda: start_plan(writer().format("memory").queryName("q").trigger(processingTime="5 seconds")),
    "write_available_now": lambda: start_plan(writer().format("parquet").trigger(availableNow=True)),
    "write_once": lambda: start_plan(writer().trigger(once=True)),
    "write_continuous": lambda: start_plan(writer().format("console").trigger(continuous="1 second")),
    "write_options_checkpoint": lambda: start_plan(writer().format("json").option("checkpointLocation", "/cp").options(compression="gzip", maxRecordsPerFile="10")),
    "write_partition_by": lambda: start_plan(writer().format("parquet").partitionBy("value", "timestamp")),
    "write_cluster_by": lambda: start_plan(writer().clusterBy("value")),
    "write_start_path": lambda: start_plan(writer().format("parquet").option("checkpointLocation", "/cp"), path="/out"),
    "write_to_table": lambda: start_plan(writer().option("checkpointLocation", "/cp"), table="sink"),
})
