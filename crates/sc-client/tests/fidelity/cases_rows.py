"""Plan-fidelity cases for DataFrames from local data (createDataFrame), merged into
pyspark_plans.py's CASES. The Rust spellings are in rows.rs beside this file.

PySpark's createDataFrame asks the server for its local-relation settings; offline, the
session's `get_config_dict` answers with the server defaults (and a cache threshold no case
reaches, so every plan is an inline LocalRelation).
"""

import datetime
import decimal

import pyarrow as pa

import __main__
from pyspark.sql import Row
from pyspark.sql.types import (
    ArrayType,
    DateType,
    DecimalType,
    IntegerType,
    LongType,
    MapType,
    StringType,
    StructField,
    StructType,
    TimestampNTZType,
    TimestampType,
)

spark = __main__.spark

SERVER_DEFAULTS = {
    "spark.sql.timestampType": "TIMESTAMP_LTZ",
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.session.localRelationCacheThreshold": str(1 << 40),
    "spark.sql.session.localRelationSizeLimit": str(3 << 30),
    "spark.sql.session.localRelationChunkSizeRows": "10000",
    "spark.sql.session.localRelationChunkSizeBytes": str(16 << 20),
    "spark.sql.session.localRelationBatchOfChunksSizeBytes": str(1 << 30),
    "spark.sql.execution.pandas.convertToArrowArraySafely": "false",
    "spark.sql.execution.pandas.inferPandasDictAsMap": "false",
    "spark.sql.pyspark.inferNestedDictAsStruct.enabled": "false",
    "spark.sql.pyspark.legacy.inferArrayTypeFromFirstElement.enabled": "false",
    "spark.sql.pyspark.legacy.inferMapTypeFromFirstPair.enabled": "false",
    "spark.sql.execution.arrow.useLargeVarTypes": "false",
}


def offline_config(*keys):
    return {k: SERVER_DEFAULTS[k] for k in keys}


spark._client.get_config_dict = offline_config

UTC = datetime.timezone.utc

CASES = {
    "create_tuples_names": lambda: spark.createDataFrame([("alice", 34), ("bob", 27)], ["name", "age"]),
    "create_tuples_fewer_names": lambda: spark.createDataFrame([("a", 1, 2.5)], ["name"]),
    "create_tuples_no_names": lambda: spark.createDataFrame([("a", 1), ("b", 2)]),
    "create_rows": lambda: spark.createDataFrame([Row(name="alice", age=34, score=1.5, ok=True), Row(name="bob", age=27, score=0.5, ok=False)]),
    "create_nested": lambda: spark.createDataFrame([
        Row(id=1, tags=["a", "b"], attrs={"k": 1}, inner=Row(x=1, y="z")),
        Row(id=2, tags=[], attrs={}, inner=Row(x=2, y="w")),
    ]),
    "create_nulls": lambda: spark.createDataFrame([("a", None), ("b", 2)], ["name", "n"]),
    "create_bytes": lambda: spark.createDataFrame([(bytearray(b"\x00\xff"),)], ["b"]),
    "create_explicit_schema": lambda: spark.createDataFrame(
        [("a", 1), ("b", None)],
        StructType([StructField("name", StringType()), StructField("n", IntegerType())]),
    ),
    "create_dates_schema": lambda: spark.createDataFrame(
        [(
            datetime.date(2024, 2, 29),
            datetime.datetime(2024, 2, 29, 12, 34, 56, 789012, tzinfo=UTC),
            datetime.datetime(1999, 12, 31, 23, 59, 59),
            decimal.Decimal("12.50"),
        )],
        StructType([
            StructField("day", DateType()),
            StructField("at", TimestampType()),
            StructField("local", TimestampNTZType()),
            StructField("amount", DecimalType(10, 2), nullable=False),
        ]),
    ),
    "create_typed_schema": lambda: spark.createDataFrame(
        [("a", [1, None], {"k": decimal.Decimal("1.50")}, datetime.datetime(2024, 1, 1, tzinfo=UTC))],
        StructType([
            StructField("name", StringType(), False),
            StructField("xs", ArrayType(IntegerType())),
            StructField("m", MapType(StringType(), DecimalType(10, 2))),
            StructField("at", TimestampType()),
        ]),
    ),
    "create_empty_schema": lambda: spark.createDataFrame(
        [], StructType([StructField("name", StringType()), StructField("n", LongType())])
    ),
    "create_arrow_table": lambda: spark.createDataFrame(pa.table({"a": [1, 2], "b": ["x", None]})),
    "create_then_transform": lambda: spark.createDataFrame([("alice", 34)], ["name", "age"]).filter("age > 30").select("name"),
}
