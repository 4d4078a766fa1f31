"""Scenario: DataFrame operations give the same rows through the proxy as directly to Spark A."""

import io
from contextlib import redirect_stdout

from pyspark.sql import Window
from pyspark.sql import functions as F

from sc_e2e import REMOTE, SPARK_A, log, new_spark, finish

PEOPLE = [
    (1, "alice", "eng", 120),
    (2, "bob", "eng", 100),
    (3, "carol", "ops", 90),
    (4, "dave", "ops", 95),
    (5, "erin", "sales", 70),
    (6, "frank", "eng", None),
]
DEPTS = [("eng", "Engineering"), ("ops", "Operations"), ("hr", "Human resources")]


def rows(df):
    return [row.asDict() for row in df.collect()]


def workload(spark):
    people = spark.createDataFrame(PEOPLE, "id INT, name STRING, dept STRING, salary INT")
    depts = spark.createDataFrame(DEPTS, ["dept", "title"])
    out = {}

    shown = io.StringIO()
    with redirect_stdout(shown):
        people.orderBy("id").show()
    out["show"] = shown.getvalue()

    out["filter"] = rows(people.filter(F.col("salary") > 90).orderBy("id"))
    out["agg"] = rows(
        people.groupBy("dept")
        .agg(
            F.count("*").alias("n"),
            F.sum("salary").alias("total"),
            F.avg("salary").alias("mean"),
            F.max("name").alias("last_name"),
        )
        .orderBy("dept")
    )
    out["join"] = rows(
        people.join(depts, "dept", "left").select("id", "name", "title").orderBy("id")
    )
    out["inner_join"] = rows(people.join(depts, "dept").groupBy("title").count().orderBy("title"))
    ranked = Window.partitionBy("dept").orderBy(F.desc_nulls_last("salary"), "id")
    out["window"] = rows(
        people.select(
            "id",
            "dept",
            F.row_number().over(ranked).alias("rank"),
            F.lag("name").over(ranked).alias("previous"),
            F.sum("salary").over(Window.partitionBy("dept")).alias("dept_total"),
        ).orderBy("id")
    )
    people.createOrReplaceTempView("people")
    out["sql"] = rows(
        spark.sql(
            "SELECT dept, percentile(salary, 0.5) AS median FROM people GROUP BY dept ORDER BY dept"
        )
    )
    out["schema"] = people.join(depts, "dept").schema.simpleString()
    out["pandas"] = people.orderBy("id").toPandas().to_json()
    return out


direct = new_spark(f"sc://{SPARK_A}")
proxied = new_spark(REMOTE)
expected = workload(direct)
actual = workload(proxied)

for key in expected:
    assert actual[key] == expected[key], f"{key} differs:\nproxy:  {actual[key]}\ndirect: {expected[key]}"

# The results are not trivially equal: check a few absolute values.
assert [r["id"] for r in expected["filter"]] == [1, 2, 4], expected["filter"]
assert expected["agg"][0] == {"dept": "eng", "n": 3, "total": 220, "mean": 110.0, "last_name": "frank"}
assert [r["title"] for r in expected["join"]] == [
    "Engineering", "Engineering", "Operations", "Operations", None, "Engineering"
], expected["join"]
assert [r["rank"] for r in expected["window"]] == [1, 2, 2, 1, 1, 3], expected["window"]
assert "|  1|alice|" in expected["show"], expected["show"]
log(expected["show"])

direct.stop()
proxied.stop()
finish(checked=sorted(expected))
