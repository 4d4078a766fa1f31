"""Plan-fidelity cases for the DataFrame breadth of sc-client (issue 12 item 5): statistics,
observe, checkpoints, transpose, lateral joins, subqueries, table-valued functions, grouping sets,
schemas, V2 writes, merges, readers and writers, and the catalog.

Merged into pyspark_plans.py's CASES. A case returns a DataFrame, or a `Plan` for what PySpark
sends when an action, a command or a catalog call runs: `_capture` runs the real PySpark call with
the sending step replaced by one that records the plan and stops, so nothing reaches a server.
"""

from pyspark.sql.connect.session import SparkSession
from pyspark.sql.connect.dataframe import DataFrame
from pyspark.sql.connect.observation import Observation
import pyspark.sql.connect.functions as F
from pyspark.sql.connect.proto import base_pb2
from pyspark.storagelevel import StorageLevel
from pyspark.sql.types import (
    ArrayType,
    BinaryType,
    BooleanType,
    ByteType,
    CharType,
    DayTimeIntervalType,
    FloatType,
    NullType,
    ShortType,
    TimeType,
    VarcharType,
    VariantType,
    YearMonthIntervalType,
    CalendarIntervalType,
    DateType,
    DecimalType,
    DoubleType,
    IntegerType,
    LongType,
    MapType,
    StringType,
    StructField,
    StructType,
    TimestampNTZType,
    TimestampType,
)

spark = SparkSession.builder.remote("sc://127.0.0.1:1").create()


class _Captured(Exception):
    def __init__(self, plan):
        super().__init__("captured")
        self.plan = plan


def _capture(fn):
    """The plan PySpark sends when `fn` runs (the first one, if it would send several)."""
    client = spark._client
    saved = (DataFrame._to_table, client.execute_command, client._execute)

    def to_table(self, *args, **kwargs):
        p = base_pb2.Plan()
        p.root.CopyFrom(self._plan.plan(self._session._client))
        raise _Captured(p)

    def execute_command(command, *args, **kwargs):
        p = base_pb2.Plan()
        p.command.CopyFrom(command)
        raise _Captured(p)

    def execute(req, *args, **kwargs):
        raise _Captured(req.plan)

    DataFrame._to_table = to_table
    client.execute_command = execute_command
    client._execute = execute
    try:
        fn()
    except _Captured as c:
        return c.plan
    finally:
        DataFrame._to_table, client.execute_command, client._execute = saved
    raise AssertionError("the case sent nothing")


def _observed(df, *exprs):
    """df.observe(Observation("obs"), ...) without the streaming check that asks a server."""
    saved = DataFrame.isStreaming
    DataFrame.isStreaming = property(lambda self: False)
    try:
        return df.observe(Observation("obs"), *exprs)
    finally:
        DataFrame.isStreaming = saved


t = lambda: spark.table("t")  # noqa: E731
u = lambda: spark.table("u")  # noqa: E731

SCHEMA = StructType(
    [
        StructField("a", IntegerType(), False),
        StructField("b", StringType(), True),
        StructField("c", DoubleType(), True),
        StructField("d", DateType(), True),
        StructField("arr", ArrayType(IntegerType(), True), True),
        StructField("m", MapType(StringType(), LongType(), False), True),
        StructField("s", StructType([StructField("x", IntegerType(), True)]), True),
        StructField("dec", DecimalType(10, 2), True),
        StructField("ts", TimestampType(), True),
        StructField("ntz", TimestampNTZType(), True),
        StructField("flag", BooleanType(), True),
    ]
)
SMALL = StructType([StructField("id", LongType(), True), StructField("name", StringType(), True)])
OTHER_TYPES = StructType(
    [
        StructField("by", ByteType(), True),
        StructField("sh", ShortType(), True),
        StructField("fl", FloatType(), True),
        StructField("bin", BinaryType(), True),
        StructField("nul", NullType(), True),
        StructField("ch", CharType(3), True),
        StructField("vc", VarcharType(10), True),
        StructField("tm", TimeType(3), True),
        StructField("var", VariantType(), True),
        StructField("dti", DayTimeIntervalType(), True),
        StructField("dth", DayTimeIntervalType(DayTimeIntervalType.DAY, DayTimeIntervalType.HOUR), True),
        StructField("ymi", YearMonthIntervalType(), True),
        StructField("mon", YearMonthIntervalType(YearMonthIntervalType.MONTH), True),
        StructField("cal", CalendarIntervalType(), True),
    ]
)
ANNOTATED = StructType(
    [
        StructField("a", IntegerType(), False, {"comment": "the key"}),
        StructField("s", MapType(StringType("UTF8_LCASE"), ArrayType(StringType("UNICODE_CI"))), True),
    ]
)
URL = "jdbc:derby:memory:db;create=true"

CASES = {
    # --- statistics
    "stat_crosstab": lambda: t().stat.crosstab("a", "b"),
    "crosstab": lambda: t().crosstab("b", "a"),
    "stat_freq_items": lambda: t().stat.freqItems(["a", "b"], 0.4),
    "freq_items_default": lambda: t().freqItems(["a"]),
    "sample_by_ints": lambda: t().sampleBy("a", {1: 0.5, 2: 0.25}, seed=7),
    "sample_by_strings": lambda: t().stat.sampleBy(F.col("b"), {"x": 0.1, "y": 1.0}, 3),
    "stat_cov": lambda: _capture(lambda: t().stat.cov("a", "c")),
    "cov": lambda: _capture(lambda: t().cov("c", "a")),
    "stat_corr": lambda: _capture(lambda: t().stat.corr("a", "c")),
    "corr": lambda: _capture(lambda: t().corr("a", "c", "pearson")),
    "approx_quantile": lambda: _capture(lambda: t().approxQuantile(["a", "c"], [0.25, 0.5, 0.75], 0.0)),
    "stat_approx_quantile_one": lambda: _capture(lambda: t().stat.approxQuantile("a", [0.5], 0.1)),
    # --- observe
    "observe_named": lambda: t().observe("m", F.count(F.lit(1)).alias("n"), F.max("a").alias("mx")),
    "observe_observation": lambda: _observed(t().filter(F.col("a") > 0), F.sum("a").alias("s")),
    # --- checkpoints
    "checkpoint_eager": lambda: _capture(lambda: t().checkpoint()),
    "checkpoint_lazy": lambda: _capture(lambda: t().filter("a > 1").checkpoint(False)),
    "local_checkpoint": lambda: _capture(lambda: t().localCheckpoint()),
    "local_checkpoint_level": lambda: _capture(lambda: t().localCheckpoint(False, StorageLevel.DISK_ONLY)),
    # --- transpose and lateral joins
    "transpose": lambda: t().transpose(),
    "transpose_index": lambda: t().transpose("b"),
    "lateral_join": lambda: t().lateralJoin(u()),
    "lateral_join_left_on": lambda: t().alias("t").lateralJoin(u().alias("u"), F.col("t.a") == F.col("u.a"), "left"),
    "lateral_join_cross": lambda: t().lateralJoin(u(), how="cross"),
    "lateral_join_tvf": lambda: spark.range(3).alias("r").lateralJoin(
        spark.tvf.explode(F.array(F.col("r.id").outer(), F.lit(7)))
    ),
    # --- subqueries
    "scalar_subquery_select": lambda: t().select(F.col("a"), u().select(F.max("a")).scalar().alias("m")),
    "scalar_subquery_filter": lambda: t().filter(F.col("a") > u().agg(F.avg("a")).scalar()),
    "exists_subquery": lambda: t().alias("t").filter(
        u().alias("u").filter(F.col("u.a") == F.col("t.a").outer()).exists()
    ),
    "not_exists_subquery": lambda: t().filter(~u().filter(F.col("a") > 10).exists()),
    "in_subquery": lambda: t().filter(F.col("a").isin(u().select("a"))),
    "in_subquery_struct": lambda: t().filter(F.struct("a", "b").isin(u().select("a", "b"))),
    "two_subqueries": lambda: t().select(u().select(F.max("a")).scalar(), u().select(F.min("a")).scalar()),
    "subquery_with_column": lambda: t().withColumn("m", u().select(F.max("a")).scalar()),
    "subquery_in_agg": lambda: t().groupBy("b").agg((F.sum("a") + u().select(F.max("a")).scalar()).alias("x")),
    "subquery_in_sort": lambda: t().orderBy((F.col("a") - u().select(F.min("a")).scalar()).desc()),
    "nested_subquery": lambda: t().filter(
        F.col("a").isin(u().filter(F.col("a") > spark.table("v").select(F.avg("a")).scalar()).select("a"))
    ),
    "subquery_same_df_twice": lambda: (lambda s: t().select(s.scalar(), (s.scalar() + 1).alias("p")))(
        u().select(F.max("a"))
    ),
    # --- table-valued functions
    "tvf_range": lambda: spark.tvf.range(0, 10, 2, 3),
    "tvf_explode": lambda: spark.tvf.explode(F.array(F.lit(1), F.lit(2))),
    "tvf_explode_outer": lambda: spark.tvf.explode_outer(F.create_map(F.lit("k"), F.lit(1))),
    "tvf_inline": lambda: spark.tvf.inline(F.array(F.struct(F.lit(1).alias("x"), F.lit("a").alias("y")))),
    "tvf_inline_outer": lambda: spark.tvf.inline_outer(F.array(F.struct(F.lit(2).alias("x")))),
    "tvf_json_tuple": lambda: spark.tvf.json_tuple(F.lit('{"a":1,"b":2}'), F.lit("a"), F.lit("b")),
    "tvf_posexplode": lambda: spark.tvf.posexplode(F.array(F.lit("p"), F.lit("q"))),
    "tvf_posexplode_outer": lambda: spark.tvf.posexplode_outer(F.array(F.lit(1))),
    "tvf_stack": lambda: spark.tvf.stack(F.lit(2), F.lit(1), F.lit(2), F.lit(3), F.lit(4)),
    "tvf_collations": lambda: spark.tvf.collations(),
    "tvf_sql_keywords": lambda: spark.tvf.sql_keywords(),
    "tvf_variant_explode": lambda: spark.tvf.variant_explode(F.parse_json(F.lit('{"a": 1}'))),
    "tvf_variant_explode_outer": lambda: spark.tvf.variant_explode_outer(F.parse_json(F.lit("[1, 2]"))),
    "tvf_python_worker_logs": lambda: spark.tvf.python_worker_logs(),
    # --- grouping, partitioning, columns, schemas
    "grouping_sets": lambda: t().groupingSets([["a", "b"], ["a"], []], "a", "b").agg(F.sum("c")),
    "grouping_sets_columns": lambda: t().groupingSets([[F.col("a")], [F.col("b")]], F.col("a"), F.col("b")).count(),
    "repartition_by_range_n": lambda: t().repartitionByRange(4, "a"),
    "repartition_by_range_cols": lambda: t().repartitionByRange("a", F.col("b").desc()),
    "col_regex": lambda: (lambda df: df.select(df.colRegex("`(a|b)`")))(t()),
    "metadata_column": lambda: (lambda df: df.select(df.metadataColumn("_metadata")))(t()),
    "to_schema": lambda: t().to(SCHEMA),
    "to_schema_collation": lambda: t().to(StructType([StructField("b", StringType("UTF8_LCASE"), True)])),
    "with_metadata": lambda: t().withMetadata("a", {"comment": "the key"}),
    "transform": lambda: t().transform(lambda d: d.filter(F.col("a") > 1)).limit(3),
    "to_schema_other_types": lambda: t().to(OTHER_TYPES),
    "to_schema_annotated": lambda: t().to(ANNOTATED),
    # --- more subqueries and references
    "exists_in_select": lambda: t().select(u().exists().alias("e")),
    "isin_subquery_in_select": lambda: t().select(F.col("a").isin(u().select("a")).alias("x")),
    "subquery_in_join_condition": lambda: t().alias("l").join(
        u().alias("r"), (F.col("l.a") == F.col("r.a")) & (F.col("l.a") > spark.table("v").select(F.min("a")).scalar())
    ),
    "observe_with_subquery": lambda: t().observe("m", (F.max("a") + u().select(F.max("a")).scalar()).alias("x")),
    "tvf_with_subquery_argument": lambda: spark.tvf.explode(F.array(u().select(F.max("a")).scalar())),
    "lateral_join_inner_on": lambda: t().alias("t").lateralJoin(u().alias("u"), F.col("t.a") == F.col("u.a"), "inner"),
    "transpose_after_filter": lambda: t().filter(F.col("a") > 0).transpose(F.col("b")),
    "sample_by_expression": lambda: t().sampleBy(F.col("a") % 2, {0: 0.5, 1: 0.1}, seed=1),
    "freq_items_support": lambda: t().freqItems(["a", "b", "c"], 0.9),
    "grouping_sets_with_rollup_like": lambda: t().groupingSets([["a", "b", "c"], ["a", "b"], ["a"], []], "a", "b", "c").agg(F.count("*").alias("n"), F.avg("c")),
    "repartition_by_range_multi": lambda: t().repartitionByRange(8, F.col("a").asc_nulls_last(), "b"),
    # --- readers
    "read_schema_annotated": lambda: spark.read.schema(ANNOTATED).parquet("/data/x.parquet"),
    "read_schema_struct": lambda: spark.read.schema(SCHEMA).json("/data/x.json"),
    "read_xml": lambda: spark.read.xml("/data/x.xml", rowTag="book"),
    "read_jdbc": lambda: spark.read.jdbc(URL, "T", properties={"user": "u", "password": "p"}),
    "read_jdbc_partitioned": lambda: spark.read.jdbc(URL, "T", column="id", lowerBound=0, upperBound=100, numPartitions=4),
    "read_jdbc_predicates": lambda: spark.read.jdbc(URL, "T", predicates=['"a" < 1', '"a" >= 1']),
    "read_json_dataset": lambda: _capture(lambda: spark.read.schema(SMALL).json(spark.table("lines")).collect()),
    "read_csv_dataset": lambda: _capture(lambda: spark.read.option("sep", ";").csv(spark.table("lines")).collect()),
    "read_xml_dataset": lambda: _capture(
        lambda: spark.read.option("rowTag", "p").schema(SMALL).xml(spark.table("lines")).collect()
    ),
    # --- DataFrameWriter
    "write_parquet_partitioned": lambda: _capture(lambda: t().write.mode("overwrite").partitionBy("b").parquet("/out")),
    "write_csv_option": lambda: _capture(lambda: t().write.option("header", True).csv("/out")),
    "write_orc": lambda: _capture(lambda: t().write.orc("/out")),
    "write_text": lambda: _capture(lambda: t().select("b").write.text("/out")),
    "write_xml": lambda: _capture(lambda: t().write.xml("/out", rowTag="r")),
    "write_jdbc": lambda: _capture(lambda: t().write.jdbc(URL, "T", mode="overwrite", properties={"user": "u"})),
    "write_options_cluster_by": lambda: _capture(lambda: t().write.options(a="1", b="2").clusterBy("a").saveAsTable("t2")),
    "write_bucket_sort": lambda: _capture(lambda: t().write.bucketBy(4, "a").sortBy("b").saveAsTable("t3")),
    "write_insert_into": lambda: _capture(lambda: t().write.insertInto("t4")),
    "write_mode_append_json": lambda: _capture(lambda: t().write.mode("append").json("/out")),
    "write_mode_ignore_save": lambda: _capture(lambda: t().write.mode("ignore").format("parquet").save("/out")),
    "write_mode_error_table": lambda: _capture(lambda: t().write.mode("error").saveAsTable("t5")),
    "write_save_to_source": lambda: _capture(lambda: t().write.format("noop").mode("overwrite").save()),
    # --- DataFrameWriterV2
    "write_to_create": lambda: _capture(
        lambda: t().writeTo("cat.db.t").using("parquet").partitionedBy("a", F.years("d")).tableProperty("k", "v").option("o", "1").create()
    ),
    "write_to_replace": lambda: _capture(lambda: t().writeTo("t").replace()),
    "write_to_create_or_replace": lambda: _capture(lambda: t().writeTo("t").using("parquet").createOrReplace()),
    "write_to_append": lambda: _capture(lambda: t().writeTo("t").append()),
    "write_to_overwrite": lambda: _capture(lambda: t().writeTo("t").overwrite(F.col("a") > 1)),
    "write_to_overwrite_partitions": lambda: _capture(lambda: t().writeTo("t").overwritePartitions()),
    "write_to_partition_transforms": lambda: _capture(
        lambda: t().writeTo("t").partitionedBy(F.bucket(4, "a"), F.days("d"), F.hours("ts")).createOrReplace()
    ),
    "write_to_overwrite_by_name": lambda: _capture(lambda: t().writeTo("t").overwrite("flag")),
    "write_to_options_cluster_by": lambda: _capture(lambda: t().writeTo("t").options(a="1", b="2").clusterBy("a", "b").create()),
    # --- MergeIntoWriter
    "merge_into_all_clauses": lambda: _capture(
        lambda: t()
        .alias("source")
        .mergeInto("target", F.expr("target.a = source.a"))
        .whenMatched(F.col("source.c") > 1)
        .update({"c": F.col("source.c"), "b": F.lit("u")})
        .whenMatched()
        .delete()
        .whenNotMatched(F.col("source.a") > 0)
        .insert({"a": F.col("source.a"), "b": F.lit("x")})
        .whenNotMatched()
        .insertAll()
        .whenNotMatchedBySource(F.col("target.a") < 0)
        .delete()
        .whenNotMatchedBySource()
        .update({"b": F.lit("gone")})
        .merge()
    ),
    "merge_into_update_all_evolution": lambda: _capture(
        lambda: t().mergeInto("target", F.col("target.a") == F.col("a")).whenMatched().updateAll().withSchemaEvolution().merge()
    ),
    "merge_into_by_source_update_all": lambda: _capture(
        lambda: t().mergeInto("target", F.expr("target.a = a")).whenNotMatchedBySource().updateAll().merge()
    ),
    "merge_into_conditional_update_only": lambda: _capture(
        lambda: t().mergeInto("target", F.expr("target.a = a")).whenMatched(F.col("c") > 0).update({"c": F.col("c") * 2}).merge()
    ),
    "merge_into_insert_only": lambda: _capture(
        lambda: t().mergeInto("target", F.expr("target.a = a")).whenNotMatched().insert({"a": F.col("a")}).merge()
    ),
    # --- catalog
    "cat_list_catalogs_all": lambda: _capture(lambda: spark.catalog.listCatalogs()),
    "cat_list_databases_all": lambda: _capture(lambda: spark.catalog.listDatabases()),
    "cat_list_tables_all": lambda: _capture(lambda: spark.catalog.listTables()),
    "cat_list_functions_all": lambda: _capture(lambda: spark.catalog.listFunctions()),
    "cat_create_database_plain": lambda: _capture(lambda: spark.catalog.createDatabase("db2")),
    "cat_create_table_path_only": lambda: _capture(lambda: spark.catalog.createTable("t7", "/data/t7")),
    "cat_register_function_untyped": lambda: _capture(lambda: spark.udf.registerJavaFunction("f", "com.example.F")),
    "cat_current_catalog": lambda: _capture(lambda: spark.catalog.currentCatalog()),
    "cat_set_current_catalog": lambda: _capture(lambda: spark.catalog.setCurrentCatalog("spark_catalog")),
    "cat_list_catalogs": lambda: _capture(lambda: spark.catalog.listCatalogs("spark*")),
    "cat_current_database": lambda: _capture(lambda: spark.catalog.currentDatabase()),
    "cat_set_current_database": lambda: _capture(lambda: spark.catalog.setCurrentDatabase("db1")),
    "cat_list_databases": lambda: _capture(lambda: spark.catalog.listDatabases("d*")),
    "cat_get_database": lambda: _capture(lambda: spark.catalog.getDatabase("default")),
    "cat_database_exists": lambda: _capture(lambda: spark.catalog.databaseExists("db1")),
    "cat_create_database": lambda: _capture(lambda: spark.catalog.createDatabase("db1", True, {"owner": "me"})),
    "cat_drop_database": lambda: _capture(lambda: spark.catalog.dropDatabase("db1", True, True)),
    "cat_list_tables": lambda: _capture(lambda: spark.catalog.listTables("db1", "t*")),
    "cat_list_views": lambda: _capture(lambda: spark.catalog.listViews("db1")),
    "cat_list_views_pattern": lambda: _capture(lambda: spark.catalog.listViews("db1", "v*")),
    "cat_get_table": lambda: _capture(lambda: spark.catalog.getTable("t")),
    "cat_table_exists": lambda: _capture(lambda: spark.catalog.tableExists("db1.t")),
    "cat_create_table": lambda: _capture(
        lambda: spark.catalog.createTable("t5", source="parquet", schema=SCHEMA, description="five", compression="zstd")
    ),
    "cat_create_external_table": lambda: _capture(lambda: spark.catalog.createExternalTable("t6", "/data/t6", "csv", header="true")),
    "cat_drop_table": lambda: _capture(lambda: spark.catalog.dropTable("t5", True, True)),
    "cat_drop_view": lambda: _capture(lambda: spark.catalog.dropView("v1", True)),
    "cat_drop_temp_view": lambda: _capture(lambda: spark.catalog.dropTempView("tv")),
    "cat_drop_global_temp_view": lambda: _capture(lambda: spark.catalog.dropGlobalTempView("gv")),
    "cat_truncate_table": lambda: _capture(lambda: spark.catalog.truncateTable("t5")),
    "cat_analyze_table": lambda: _capture(lambda: spark.catalog.analyzeTable("t5", True)),
    "cat_get_table_properties": lambda: _capture(lambda: spark.catalog.getTableProperties("t5")),
    "cat_get_create_table_string": lambda: _capture(lambda: spark.catalog.getCreateTableString("t5", True)),
    "cat_list_columns": lambda: _capture(lambda: spark.catalog.listColumns("t5")),
    "cat_list_partitions": lambda: _capture(lambda: spark.catalog.listPartitions("t5")),
    "cat_recover_partitions": lambda: _capture(lambda: spark.catalog.recoverPartitions("t5")),
    "cat_list_functions": lambda: _capture(lambda: spark.catalog.listFunctions("db1", "a*")),
    "cat_get_function": lambda: _capture(lambda: spark.catalog.getFunction("abs")),
    "cat_function_exists": lambda: _capture(lambda: spark.catalog.functionExists("abs")),
    "cat_register_function": lambda: _capture(
        lambda: spark.udf.registerJavaFunction("plus_one", "com.example.PlusOne", IntegerType())
    ),
    "cat_is_cached": lambda: _capture(lambda: spark.catalog.isCached("t5")),
    "cat_cache_table": lambda: _capture(lambda: spark.catalog.cacheTable("t5")),
    "cat_cache_table_level": lambda: _capture(lambda: spark.catalog.cacheTable("t5", StorageLevel.MEMORY_ONLY)),
    "cat_uncache_table": lambda: _capture(lambda: spark.catalog.uncacheTable("t5")),
    "cat_clear_cache": lambda: _capture(lambda: spark.catalog.clearCache()),
    "cat_refresh_table": lambda: _capture(lambda: spark.catalog.refreshTable("t5")),
    "cat_refresh_by_path": lambda: _capture(lambda: spark.catalog.refreshByPath("/data")),
}
