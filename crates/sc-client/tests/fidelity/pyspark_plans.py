"""Prints the plans PySpark builds for the cases of plan_fidelity.rs, one `name<TAB>hex` a line.

Run by crates/sc-client/tests/plan_fidelity.rs with the interpreter in SC_TEST_PYTHON. No server
is needed: plans are built offline with a Spark Connect session that never connects. Plan ids
restart at 0 for each case (the Rust side uses a fresh session per case, so both count from 0),
and each expression's `common` field (PySpark's call-site debugging origin) is cleared.
"""

import glob
import importlib
import os
import sys

from pyspark.sql.connect.session import SparkSession
from pyspark.sql.connect.plan import LogicalPlan
from pyspark.sql.connect.window import Window
from pyspark.sql.connect.expressions import UnresolvedNamedLambdaVariable
import pyspark.sql.connect.functions as F
from pyspark.sql.connect.proto import base_pb2, expressions_pb2


def clear_origins(msg):
    """Clears Expression.common (call-site origin) everywhere in a message tree."""
    if isinstance(msg, expressions_pb2.Expression):
        msg.ClearField("common")
    for field, value in msg.ListFields():
        if field.message_type is None:
            continue
        if hasattr(value, "ListFields"):
            clear_origins(value)
        elif hasattr(value, "keys"):
            for v in value.values():
                if hasattr(v, "ListFields"):
                    clear_origins(v)
        else:
            for v in value:
                clear_origins(v)


spark = SparkSession.builder.remote("sc://127.0.0.1:1").create()

# name -> function building a DataFrame. `t` is a table with columns a (int), b (string),
# c (double), d (date), arr (array<int>), m (map<string,int>), s (struct<x:int>).
CASES = {
    # --- sources
    "range": lambda: spark.range(10),
    "range_start_end_step": lambda: spark.range(2, 20, 3),
    "range_partitions": lambda: spark.range(0, 100, 1, 4),
    "table": lambda: spark.table("t"),
    "read_table": lambda: spark.read.table("t"),
    "read_parquet": lambda: spark.read.parquet("/data/x.parquet"),
    "read_csv_options_schema": lambda: spark.read.format("csv").option("header", "true").schema("a INT, b STRING").load("/data/x.csv"),
    "read_json": lambda: spark.read.json("/data/x.json"),
    "read_csv": lambda: spark.read.csv("/data/x.csv"),
    "read_orc": lambda: spark.read.orc("/data/x.orc"),
    "read_text": lambda: spark.read.text("/data/x.txt"),
    "read_options_load": lambda: spark.read.format("json").options(multiLine="true", mode="FAILFAST").load(["/a", "/b"]),
    # --- projections and filters
    "select_names": lambda: spark.table("t").select("a", "b"),
    "select_star": lambda: spark.table("t").select("*"),
    "select_expr": lambda: spark.table("t").selectExpr("a + 1 as x", "upper(b)"),
    "select_df_col": lambda: (lambda t: t.select(t["a"], t["b"]))(spark.table("t")),
    "filter_column": lambda: spark.table("t").filter(F.col("a") > 1),
    "filter_string": lambda: spark.table("t").filter("a > 1"),
    "where_and_or": lambda: spark.table("t").where((F.col("a") > 1) & ((F.col("c") < 2.5) | F.col("b").isNull())),
    "with_column": lambda: spark.table("t").withColumn("x", F.col("a") * 2),
    "with_columns": lambda: spark.table("t").withColumns({"x": F.lit(1), "y": F.col("b")}),
    "with_column_renamed": lambda: spark.table("t").withColumnRenamed("a", "aa"),
    "drop_names": lambda: spark.table("t").drop("a", "b"),
    "to_df": lambda: spark.range(3).toDF("n"),
    "alias_df": lambda: spark.table("t").alias("x"),
    # --- expressions
    "arith": lambda: spark.table("t").select((F.col("a") + 1) - (F.col("c") * 2.5) / F.col("a") % 3),
    "reverse_arith": lambda: spark.table("t").select(1 - F.col("a"), 2.0 * F.col("c")),
    "compare_all": lambda: spark.table("t").select(F.col("a") == 1, F.col("a") != 1, F.col("a") >= 1, F.col("a") <= 1, F.col("a") < 1),
    "eq_null_safe": lambda: spark.table("t").select(F.col("a").eqNullSafe(F.col("c"))),
    "negate_not": lambda: spark.table("t").select(-F.col("a"), ~(F.col("a") > 1)),
    "lit_types": lambda: spark.table("t").select(F.lit(1), F.lit(3000000000), F.lit(1.5), F.lit("s"), F.lit(True), F.lit(None)),
    "alias_col": lambda: spark.table("t").select(F.col("a").alias("x")),
    "cast_str": lambda: spark.table("t").select(F.col("a").cast("string"), F.col("b").try_cast("int")),
    "is_null": lambda: spark.table("t").select(F.col("a").isNull(), F.col("a").isNotNull(), F.col("c").isNaN()),
    "isin": lambda: spark.table("t").filter(F.col("a").isin(1, 2, 3)),
    "like_rlike_ilike": lambda: spark.table("t").select(F.col("b").like("a%"), F.col("b").rlike("^a"), F.col("b").ilike("A%")),
    "contains_starts_ends": lambda: spark.table("t").select(F.col("b").contains("x"), F.col("b").startswith("a"), F.col("b").endswith("z")),
    "substr": lambda: spark.table("t").select(F.col("b").substr(1, 2)),
    "between": lambda: spark.table("t").filter(F.col("a").between(1, 5)),
    "when_otherwise": lambda: spark.table("t").select(F.when(F.col("a") > 1, "big").when(F.col("a") > 0, "small").otherwise("none")),
    "when_no_otherwise": lambda: spark.table("t").select(F.when(F.col("a") > 1, F.col("b"))),
    "get_item_field": lambda: spark.table("t").select(F.col("arr")[0], F.col("m")["k"], F.col("s").getField("x")),
    "with_field": lambda: spark.table("t").select(F.col("s").withField("y", F.lit(2))),
    "bitwise": lambda: spark.table("t").select(F.col("a").bitwiseOR(1), F.col("a").bitwiseAND(2), F.col("a").bitwiseXOR(3)),
    "sql_expr_fn": lambda: spark.table("t").select(F.expr("a * 2")),
    # --- functions
    "fn_math": lambda: spark.table("t").select(F.abs("a"), F.sqrt(F.col("c")), F.exp("c"), F.round("c", 2), F.floor("c"), F.ceil("c")),
    "fn_string": lambda: spark.table("t").select(F.upper("b"), F.lower("b"), F.length("b"), F.trim("b"), F.concat_ws("-", "b", "b"), F.substring("b", 1, 3)),
    "fn_regexp": lambda: spark.table("t").select(F.regexp_replace("b", "a", "b"), F.regexp_extract("b", "(a)", 1), F.split("b", ",", -1)),
    "fn_date": lambda: spark.table("t").select(F.year("d"), F.month("d"), F.date_add("d", 1), F.date_format("d", "yyyy"), F.to_date("b", "yyyy-MM-dd"), F.datediff("d", "d")),
    "fn_current": lambda: spark.table("t").select(F.current_date(), F.current_timestamp()),
    "fn_collection": lambda: spark.table("t").select(F.size("arr"), F.array_contains("arr", 1), F.element_at("arr", 1), F.explode("arr"), F.sort_array("arr", False)),
    "fn_array_struct_map": lambda: spark.table("t").select(F.array("a", "a"), F.struct("a", "b"), F.create_map("b", "a")),
    "fn_conditional": lambda: spark.table("t").select(F.coalesce("a", F.lit(0)), F.greatest("a", "c"), F.least("a", "c"), F.nvl("a", "c"), F.isnull("a")),
    "fn_hash": lambda: spark.table("t").select(F.md5("b"), F.sha2("b", 256), F.hash("a", "b"), F.crc32("b")),
    "fn_json": lambda: spark.table("t").select(F.to_json("s"), F.get_json_object("b", "$.x")),
    "fn_rand_seeded": lambda: spark.table("t").select(F.rand(42), F.randn(7)),
    "fn_pow_log": lambda: spark.table("t").select(F.pow("a", 2), F.log(10.0, "c"), F.atan2("a", "c")),
    "fn_call_function": lambda: spark.table("t").select(F.call_function("abs", F.col("a"))),
    "fn_more_strings": lambda: spark.table("t").select(F.lpad("b", 5, "x"), F.rpad("b", 5, "y"), F.instr("b", "a"), F.locate("a", "b", 2), F.translate("b", "ab", "xy"), F.repeat("b", 2)),
    "fn_more_dates": lambda: spark.table("t").select(F.add_months("d", 2), F.months_between("d", "d", True), F.trunc("d", "month"), F.date_trunc("year", "d"), F.last_day("d"), F.dayofweek("d")),
    "fn_more_arrays": lambda: spark.table("t").select(F.array_join("arr", ","), F.array_position("arr", 2), F.array_remove("arr", 1), F.slice("arr", 1, 2), F.array_distinct("arr"), F.flatten(F.array("arr"))),
    "fn_more_math": lambda: spark.table("t").select(F.bround("c", 1), F.signum("c"), F.log2("c"), F.hex("a"), F.conv("b", 16, 10), F.shiftleft("a", 2)),
    # --- aggregation
    "group_by_agg": lambda: spark.table("t").groupBy("b").agg(F.sum("a").alias("s"), F.avg("c"), F.count("*")),
    "group_by_count": lambda: spark.table("t").groupBy("b").count(),
    "agg_no_group": lambda: spark.table("t").agg(F.max("a"), F.min("c")),
    "rollup": lambda: spark.table("t").rollup("b", "d").agg(F.sum("a")),
    "cube": lambda: spark.table("t").cube("b").agg(F.count("a")),
    "pivot_values": lambda: spark.table("t").groupBy("d").pivot("b", ["x", "y"]).agg(F.sum("a")),
    "pivot_no_values": lambda: spark.table("t").groupBy("d").pivot("b").agg(F.sum("a")),
    "count_distinct": lambda: spark.table("t").agg(F.count_distinct("a", "b"), F.sum_distinct("a")),
    "agg_funcs": lambda: spark.table("t").agg(F.collect_list("a"), F.collect_set("b"), F.stddev("c"), F.first("a"), F.last("a", True), F.approx_count_distinct("b")),
    # --- ordering, limits, sets
    "order_by_names": lambda: spark.table("t").orderBy("a", "b"),
    "sort_desc": lambda: spark.table("t").sort(F.col("a").desc(), F.col("b").asc_nulls_last()),
    "sort_fn_desc": lambda: spark.table("t").orderBy(F.desc("a"), F.asc("b")),
    "sort_within_partitions": lambda: spark.table("t").sortWithinPartitions("a"),
    "limit": lambda: spark.table("t").limit(5),
    "offset": lambda: spark.table("t").offset(5),
    "distinct": lambda: spark.table("t").distinct(),
    "drop_duplicates_all": lambda: spark.table("t").dropDuplicates(),
    "drop_duplicates_subset": lambda: spark.table("t").dropDuplicates(["a", "b"]),
    "union": lambda: spark.range(3).union(spark.range(5)),
    "union_all": lambda: spark.range(3).unionAll(spark.range(5)),
    "union_by_name": lambda: spark.range(3).unionByName(spark.range(5), allowMissingColumns=True),
    "intersect": lambda: spark.range(3).intersect(spark.range(5)),
    "intersect_all": lambda: spark.range(3).intersectAll(spark.range(5)),
    "except": lambda: spark.range(3).exceptAll(spark.range(5)),
    "subtract": lambda: spark.range(3).subtract(spark.range(5)),
    # --- joins
    "join_using": lambda: spark.table("t").join(spark.table("u"), "a"),
    "join_using_list_left": lambda: spark.table("t").join(spark.table("u"), ["a", "b"], "left"),
    "join_expr_outer": lambda: (lambda l, r: l.join(r, l["a"] == r["a"], "outer"))(spark.table("t"), spark.table("u")),
    "join_right": lambda: spark.table("t").join(spark.table("u"), "a", "right_outer"),
    "join_semi": lambda: spark.table("t").join(spark.table("u"), "a", "leftsemi"),
    "join_anti": lambda: spark.table("t").join(spark.table("u"), "a", "anti"),
    "join_full": lambda: spark.table("t").join(spark.table("u"), "a", "full"),
    "cross_join": lambda: spark.table("t").crossJoin(spark.table("u")),
    # --- windows
    "window_row_number": lambda: spark.table("t").select(F.row_number().over(Window.partitionBy("b").orderBy("a"))),
    "window_rows_between": lambda: spark.table("t").select(F.sum("a").over(Window.partitionBy("b").orderBy(F.col("a").desc()).rowsBetween(Window.unboundedPreceding, Window.currentRow))),
    "window_range_between": lambda: spark.table("t").select(F.avg("c").over(Window.orderBy("a").rangeBetween(-5, 5))),
    "window_rows_offsets": lambda: spark.table("t").select(F.max("a").over(Window.partitionBy("b").rowsBetween(-2, Window.unboundedFollowing))),
    "window_lag_lead": lambda: spark.table("t").select(F.lag("a", 1).over(Window.partitionBy("b").orderBy("a")), F.lead("a", 2, F.lit(0)).over(Window.partitionBy("b").orderBy("a"))),
    "window_rank_ntile": lambda: spark.table("t").select(F.rank().over(Window.orderBy("a")), F.dense_rank().over(Window.orderBy("a")), F.ntile(4).over(Window.orderBy("a"))),
    # --- other transformations
    "sample": lambda: spark.table("t").sample(False, 0.5, 42),
    "sample_replacement": lambda: spark.table("t").sample(True, 0.25, 7),
    "repartition": lambda: spark.table("t").repartition(4),
    "repartition_by_cols": lambda: spark.table("t").repartition(4, "a"),
    "coalesce": lambda: spark.table("t").coalesce(1),
    "describe": lambda: spark.table("t").describe("a", "c"),
    "summary": lambda: spark.table("t").summary("count", "min"),
    "na_fill": lambda: spark.table("t").na.fill(0, ["a"]),
    "na_fill_string": lambda: spark.table("t").fillna("x"),
    "na_drop_any": lambda: spark.table("t").na.drop(),
    "na_drop_all_subset": lambda: spark.table("t").na.drop("all", subset=["a", "b"]),
    "na_drop_thresh": lambda: spark.table("t").dropna(thresh=2),
    "na_replace": lambda: spark.table("t").na.replace(1, 2, ["a"]),
    "hint_broadcast": lambda: spark.table("t").hint("broadcast"),
    "hint_params": lambda: spark.table("t").hint("repartition", 3),
    "chain": lambda: spark.table("t").filter(F.col("a") > 0).groupBy("b").agg(F.sum("a").alias("s")).orderBy(F.col("s").desc()).limit(10),
}

# Each area's cases live in its own module `cases_<area>.py` beside this script, with a `CASES`
# dict (they reach `spark` through `__main__`).
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
for _path in sorted(glob.glob(os.path.join(os.path.dirname(os.path.abspath(__file__)), "cases_*.py"))):
    _more = importlib.import_module(os.path.basename(_path)[:-3]).CASES
    assert not set(_more) & set(CASES), f"{_path} repeats case names: {set(_more) & set(CASES)}"
    CASES.update(_more)


def main():
    only = set(sys.argv[1:])
    out = sys.stdout
    for name, build in CASES.items():
        if only and name not in only:
            continue
        LogicalPlan._nextPlanId = 0
        # Lambda variables are numbered by a process-wide counter: restart it, as the Rust side
        # does (`functions::reset_lambda_variable_ids`).
        UnresolvedNamedLambdaVariable._nextVarNameId = 0
        # `LogicalPlan.to_proto` would ask the server about plan compression; build the root
        # relation directly instead. A case may also return the whole Plan (a command, or what
        # an action sends).
        built = build()
        plan = base_pb2.Plan()
        if isinstance(built, base_pb2.Plan):
            plan.CopyFrom(built)
        else:
            plan.root.CopyFrom(built._plan.plan(spark._client))
        clear_origins(plan)
        out.write(f"{name}\t{plan.SerializeToString().hex()}\n")
    out.flush()
    # Skip the interpreter's exit hooks: they would try to reach the (absent) server.
    os._exit(0)


if __name__ == "__main__":
    try:
        main()
    except BaseException:
        import traceback

        traceback.print_exc()
        sys.stderr.flush()
        os._exit(1)
