//! The DataFrame breadth of sc-client against a real Spark Connect server (issue 12 item 5):
//! statistics against known values, observed metrics, checkpoints, transpose, lateral joins,
//! subqueries, table-valued functions, grouping sets and schemas, readers and writers (XML, ORC,
//! text, JDBC into Derby), `write_to` on the session catalog and on Spark's JDBC catalog,
//! `merge_into`'s error on catalogs that cannot merge, every catalog method, and
//! `new_session` / `clone_session`.
//!
//! Needs `SC_TEST_SPARK_A` (host:port of a Spark 4.2 Connect server started by
//! `scripts/spark-server.sh`, which sets the checkpoint directory) and `SC_TEST_PYTHON` (a
//! python whose pyspark has the server's jars, for compiling a Java UDF). Derby, Spark's own
//! dependency, is the JDBC database: in memory, inside the server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use arrow_array::{Array, Int64Array, ListArray, RecordBatch};
use futures_util::StreamExt;
use sc_client::functions::*;
use sc_client::proto::relation::RelType;
use sc_client::types::{DataType, StructField, StructType};
use sc_client::{
    Column, DataFrame, Error, JoinType, Observation, SaveMode, SparkSession, StorageLevel,
};

// === helpers ===

async fn spark() -> SparkSession {
    let addr = std::env::var("SC_TEST_SPARK_A").expect(
        "SC_TEST_SPARK_A is not set: start a server with scripts/spark-server.sh (or run scripts/test.sh)",
    );
    SparkSession::builder()
        .remote(format!("sc://{addr}"))
        .build()
        .await
        .unwrap()
}

/// A name no other test run on the same server uses.
fn unique(name: &str) -> String {
    format!("{name}_{}", std::process::id())
}

/// Every cell of a batch as a string (`""` for null), row by row.
fn cells(batch: &RecordBatch) -> Vec<Vec<String>> {
    let fmts: Vec<_> = batch
        .columns()
        .iter()
        .map(|c| {
            arrow_cast::display::ArrayFormatter::try_new(c.as_ref(), &Default::default()).unwrap()
        })
        .collect();
    (0..batch.num_rows())
        .map(|r| fmts.iter().map(|f| f.value(r).to_string()).collect())
        .collect()
}

/// The rows of a DataFrame as strings, sorted.
async fn rows(df: &DataFrame) -> Vec<Vec<String>> {
    let mut r = cells(&df.collect_batch().await.unwrap());
    r.sort();
    r
}

/// Column `name` of a DataFrame's rows as strings, sorted.
async fn column(df: &DataFrame, name: &str) -> Vec<String> {
    let b = df.select([name]).collect_batch().await.unwrap();
    let mut v: Vec<String> = cells(&b).into_iter().map(|mut r| r.remove(0)).collect();
    v.sort();
    v
}

/// The column names of a batch.
fn names(batch: &RecordBatch) -> Vec<String> {
    batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect()
}

/// Whether a call was refused by the client as an invalid argument.
fn refused<T>(r: sc_client::Result<T>) -> bool {
    matches!(r, Err(Error::InvalidArgument(_)))
}

fn error_class(e: &Error) -> String {
    e.error_class().unwrap_or_default().to_string()
}

async fn values(spark: &SparkSession, sql: &str) -> DataFrame {
    spark.sql(sql).await.unwrap()
}

// === statistics ===

#[tokio::test]
async fn statistics_match_known_values() {
    let spark = spark().await;
    // x = 1..=10, y = 2x + 1, z = 100 - 3x.
    let df = values(
        &spark,
        "select id as x, id * 2 + 1 as y, 100 - id * 3 as z, id % 3 as k, \
         cast(id % 2 as string) as s from range(1, 11)",
    )
    .await;
    let c = df.corr("x", "y", None).await.unwrap();
    assert!((c - 1.0).abs() < 1e-12, "corr {c}");
    let c = df.stat().corr("x", "z", Some("pearson")).await.unwrap();
    assert!((c + 1.0).abs() < 1e-12, "corr {c}");
    assert!(refused(df.corr("x", "y", Some("spearman")).await));
    // The sample covariance of x and 2x + 1 is twice the sample variance of 1..=10 (55/6).
    let cov = df.stat().cov("x", "y").await.unwrap();
    assert!((cov - 110.0 / 6.0).abs() < 1e-9, "cov {cov}");

    // Exact quantiles (relative error 0) of x and y.
    let q = df
        .approx_quantile(["x", "y"], &[0.0, 0.5, 1.0], 0.0)
        .await
        .unwrap();
    assert_eq!(q, vec![vec![1.0, 5.0, 10.0], vec![3.0, 11.0, 21.0]]);
    assert!(refused(df.approx_quantile(["x"], &[1.5], 0.0).await));

    // Contingency table of k = x % 3 against s = x % 2.
    let mut want: BTreeMap<(String, String), i64> = BTreeMap::new();
    for x in 1..=10i64 {
        *want
            .entry(((x % 3).to_string(), (x % 2).to_string()))
            .or_default() += 1;
    }
    let ct = df.crosstab("k", "s").collect_batch().await.unwrap();
    assert_eq!(names(&ct), ["k_s", "0", "1"]);
    let mut got = BTreeMap::new();
    for row in cells(&ct) {
        for (i, s) in ["0", "1"].iter().enumerate() {
            got.insert(
                (row[0].clone(), s.to_string()),
                row[i + 1].parse::<i64>().unwrap(),
            );
        }
    }
    assert_eq!(got, want);

    // 7 is in 60 % of the rows: a frequent item at support 0.5.
    let f = values(&spark, "select if(id % 10 < 6, 7, id) as v from range(100)")
        .await
        .stat()
        .freq_items(["v"], Some(0.5))
        .collect_batch()
        .await
        .unwrap();
    let items = f
        .column_by_name("v_freqItems")
        .unwrap()
        .as_any()
        .downcast_ref::<ListArray>()
        .unwrap()
        .value(0);
    let items = items.as_any().downcast_ref::<Int64Array>().unwrap();
    assert!(items.iter().any(|v| v == Some(7)), "{items:?}");

    // Stratified sample of 100 000 rows per stratum; stratum 2 is not sampled at all. The
    // bounds are more than ten standard deviations wide, and the seed is fixed.
    let big = spark.range(0, 300_000).with_column("k", col("id") % 3);
    let sampled = big
        .sample_by("k", [(0i64, 0.1), (1i64, 0.5)], Some(42))
        .unwrap();
    let counts = sampled
        .group_by(["k"])
        .count()
        .order_by(["k"])
        .collect_batch()
        .await
        .unwrap();
    let counts: BTreeMap<String, i64> = cells(&counts)
        .into_iter()
        .map(|r| (r[0].clone(), r[1].parse().unwrap()))
        .collect();
    assert!(!counts.contains_key("2"), "{counts:?}");
    assert!((9_000..=11_000).contains(&counts["0"]), "{counts:?}");
    assert!((47_500..=52_500).contains(&counts["1"]), "{counts:?}");
}

// === observe ===

#[tokio::test]
async fn observe_reads_metrics_back() {
    let spark = spark().await;
    let obs = Observation::new("stats");
    assert!(obs.get().is_err(), "no metrics before an action");
    let df = spark
        .range(0, 100)
        .observe(
            &obs,
            [
                count(lit(1)).alias("n"),
                sum("id").alias("s"),
                max("id").alias("mx"),
            ],
        )
        .unwrap();
    assert!(refused(spark.range(0, 1).observe(&obs, [count(lit(1))])));
    // A waiter started before the action gets the metrics when they arrive.
    let waiter = tokio::spawn({
        let obs = obs.clone();
        async move { obs.wait().await }
    });
    assert_eq!(df.collect_batch().await.unwrap().num_rows(), 100);
    let m = obs.get().unwrap();
    assert_eq!(m.name, "stats");
    assert_eq!(m.keys, ["n", "s", "mx"]);
    assert_eq!(m.get("n").and_then(|v| v.as_i64()), Some(100));
    assert_eq!(m.get("s").and_then(|v| v.as_i64()), Some(4950));
    assert_eq!(m.get("mx").and_then(|v| v.as_i64()), Some(99));
    let waited = tokio::time::timeout(Duration::from_secs(60), waiter)
        .await
        .expect("the waiter got the metrics")
        .unwrap()
        .unwrap();
    assert_eq!(waited, m);

    // A plain name: the metrics come with the result stream.
    let named = spark
        .range(0, 10)
        .observe_named("named", [sum("id").alias("total"), avg("id").alias("mean")])
        .unwrap();
    let mut stream = named.to_stream().await.unwrap();
    while let Some(b) = stream.next().await {
        b.unwrap();
    }
    let m = stream
        .observed_metrics()
        .iter()
        .find(|m| m.name == "named")
        .expect("the named metrics arrived");
    assert_eq!(m.get("total").and_then(|v| v.as_i64()), Some(45));
    assert_eq!(m.get("mean").and_then(|v| v.as_f64()), Some(4.5));
    assert!(m.error.is_none());
}

// === checkpoints ===

#[tokio::test]
async fn checkpoints_cut_the_plan() {
    let spark = spark().await;
    let base = spark.range(0, 1000).filter((col("id") % 2).eq(0));
    let is_cached = |df: &DataFrame| {
        matches!(
            df.relation().rel_type,
            Some(RelType::CachedRemoteRelation(_))
        )
    };

    let eager = base.checkpoint(true).await.unwrap();
    assert!(is_cached(&eager));
    assert_eq!(eager.count().await.unwrap(), 500);
    assert_eq!(
        rows(&eager.agg([sum("id")])).await,
        [["249500".to_string()]]
    );
    let lazy = base.checkpoint(false).await.unwrap();
    assert!(is_cached(&lazy));
    assert_eq!(lazy.filter(col("id").lt(10)).count().await.unwrap(), 5);

    let local = base
        .local_checkpoint(true, Some(StorageLevel::DISK_ONLY))
        .await
        .unwrap();
    assert_eq!(local.count().await.unwrap(), 500);
    let local_default = base.local_checkpoint(false, None).await.unwrap();
    assert_eq!(local_default.count().await.unwrap(), 500);

    local.release_checkpoint().await.unwrap();
    assert!(
        local.count().await.is_err(),
        "a released checkpoint can no longer be read"
    );
    assert!(refused(base.release_checkpoint().await));
}

// === transpose and lateral joins ===

#[tokio::test]
async fn transpose_and_lateral_join() {
    let spark = spark().await;
    let df = values(
        &spark,
        "select * from values ('a', 1, 2), ('b', 3, 4) as t(key, x, y)",
    )
    .await;
    let tr = df.transpose().collect_batch().await.unwrap();
    assert_eq!(names(&tr), ["key", "a", "b"]);
    assert_eq!(cells(&tr), [["x", "1", "3"], ["y", "2", "4"]]);
    let numbers = values(
        &spark,
        "select * from values (1, 10, 20), (2, 30, 40) as t(k, x, y)",
    )
    .await;
    let by_k = numbers
        .transpose_with_index("k")
        .collect_batch()
        .await
        .unwrap();
    assert_eq!(names(&by_k), ["key", "1", "2"]);
    assert_eq!(cells(&by_k), [["x", "10", "30"], ["y", "20", "40"]]);

    // For each t.id in 1..=3, the ids of 0..10 below it: 1 + 2 + 3 rows.
    let t = spark.range(1, 4).alias("t");
    let below = spark
        .range(0, 10)
        .filter(col("id").lt(col("t.id").outer()))
        .select([col("id").alias("v")]);
    let joined = t.lateral_join(&below, None, JoinType::Inner).unwrap();
    assert_eq!(joined.count().await.unwrap(), 6);
    // With a condition, left outer: t.id = 1 keeps its row with a null.
    let left = t
        .lateral_join(&below, Some(col("v").gt(0)), JoinType::LeftOuter)
        .unwrap();
    assert_eq!(
        rows(&left).await,
        [["1", ""], ["2", "1"], ["3", "1"], ["3", "2"]]
    );
    // A table-valued function per row.
    let exploded = t
        .lateral_join(
            &spark.tvf().explode(array([col("t.id").outer(), lit(0i64)])),
            None,
            JoinType::Inner,
        )
        .unwrap();
    assert_eq!(exploded.count().await.unwrap(), 6);
    assert!(refused(t.lateral_join(&below, None, JoinType::FullOuter)));
}

// === subqueries ===

#[tokio::test]
async fn subquery_expressions() {
    let spark = spark().await;
    let t = values(
        &spark,
        "select * from values (1, 'a'), (2, 'b'), (3, 'c') as t(a, b)",
    )
    .await;
    let u = values(&spark, "select * from values (2), (3), (3), (5) as u(a)").await;

    let above_min = t.filter(col("a").gt(u.select([min("a")]).scalar()));
    assert_eq!(column(&above_min, "a").await, ["3"]);
    let with_max = t.select([col("a"), u.select([max("a")]).scalar().alias("m")]);
    assert_eq!(column(&with_max, "m").await, ["5", "5", "5"]);

    let (ta, ua) = (t.alias("t"), u.alias("u"));
    let correlated = ua.filter(col("u.a").eq(col("t.a").outer()));
    assert_eq!(
        column(&ta.filter(correlated.exists()), "a").await,
        ["2", "3"]
    );
    assert_eq!(column(&ta.filter(!correlated.exists()), "a").await, ["1"]);

    assert_eq!(
        column(&t.filter(col("a").isin_subquery(&u.select(["a"]))), "a").await,
        ["2", "3"]
    );
    let pairs = values(&spark, "select * from values (2, 'b'), (3, 'x') as v(a, b)").await;
    assert_eq!(
        column(&t.filter(struct_(["a", "b"]).isin_subquery(&pairs)), "a").await,
        ["2"]
    );
    // Two subqueries in one projection, and a subquery inside a subquery.
    let both = t.select([
        u.select([min("a")]).scalar().alias("lo"),
        u.select([max("a")]).scalar().alias("hi"),
    ]);
    assert_eq!(rows(&both.limit(1)).await, [["2", "5"]]);
    let nested = t.filter(
        col("a").isin_subquery(
            &u.filter(col("a").lt(u.select([max("a")]).scalar()))
                .select(["a"]),
        ),
    );
    assert_eq!(column(&nested, "a").await, ["2", "3"]);
}

// === table-valued functions ===

#[tokio::test]
async fn table_valued_functions() {
    let spark = spark().await;
    let tvf = spark.tvf();
    assert_eq!(
        column(&tvf.range(0, 10, 3, None), "id").await,
        ["0", "3", "6", "9"]
    );
    assert_eq!(
        column(&tvf.explode(array([lit(1), lit(2), lit(3)])), "col").await,
        ["1", "2", "3"]
    );
    let empty = array(Vec::<Column>::new()).cast("array<int>");
    assert_eq!(tvf.explode(empty.clone()).count().await.unwrap(), 0);
    assert_eq!(rows(&tvf.explode_outer(empty.clone())).await, [[""]]);
    assert_eq!(
        rows(&tvf.posexplode(array([lit("p"), lit("q")]))).await,
        [["0", "p"], ["1", "q"]]
    );
    assert_eq!(rows(&tvf.posexplode_outer(empty)).await, [["", ""]]);
    let structs = array([
        struct_([lit(1).alias("x"), lit("a").alias("y")]),
        struct_([lit(2).alias("x"), lit("b").alias("y")]),
    ]);
    assert_eq!(
        rows(&tvf.inline(structs.clone())).await,
        [["1", "a"], ["2", "b"]]
    );
    assert_eq!(tvf.inline_outer(structs).count().await.unwrap(), 2);
    assert_eq!(
        rows(
            &tvf.json_tuple(lit(r#"{"a":1,"b":"x"}"#), [lit("a"), lit("b")])
                .unwrap()
        )
        .await,
        [["1", "x"]]
    );
    assert!(refused(tvf.json_tuple(lit("{}"), Vec::<Column>::new())));
    assert_eq!(
        rows(&tvf.stack(lit(2), [lit(1), lit(2), lit(3), lit(4)])).await,
        [["1", "2"], ["3", "4"]]
    );
    let keywords = column(&tvf.sql_keywords(), "keyword").await;
    assert!(keywords.len() > 100 && keywords.iter().any(|k| k == "SELECT"));
    let collations = column(&tvf.collations(), "NAME").await;
    assert!(
        collations.iter().any(|c| c == "UTF8_LCASE"),
        "{collations:?}"
    );
    let v = tvf.variant_explode(Column::call("parse_json", [lit(r#"{"a": 1, "b": 2}"#)]));
    assert_eq!(column(&v, "key").await, ["a", "b"]);
    let v = tvf.variant_explode_outer(Column::call("parse_json", [lit("5")]));
    assert_eq!(v.count().await.unwrap(), 1);
    // Without the feature enabled the server says so; with it, the (empty) log table reads.
    let err = tvf.python_worker_logs().count().await.unwrap_err();
    assert_eq!(error_class(&err), "FEATURE_NOT_ENABLED", "{err}");
    spark
        .conf()
        .set("spark.sql.pyspark.worker.logging.enabled", "true")
        .await
        .unwrap();
    assert_eq!(tvf.python_worker_logs().count().await.unwrap(), 0);
    // Any other table-valued function by name.
    assert_eq!(tvf.call("range", [lit(5i64)]).count().await.unwrap(), 5);
}

// === grouping sets, partitioning, columns, schemas ===

#[tokio::test]
async fn grouping_sets_partitioning_and_schemas() {
    let spark = spark().await;
    let sales = values(
        &spark,
        "select * from values ('a', 2024, 1), ('a', 2025, 2), ('b', 2024, 4) as s(city, year, amount)",
    )
    .await;
    let g = sales
        .grouping_sets(
            vec![vec!["city", "year"], vec!["city"], vec![]],
            ["city", "year"],
        )
        .agg([sum("amount").alias("total")]);
    assert_eq!(
        rows(&g).await,
        [
            ["", "", "7"],
            ["a", "", "3"],
            ["a", "2024", "1"],
            ["a", "2025", "2"],
            ["b", "", "4"],
            ["b", "2024", "4"],
        ]
    );

    let ranged = spark
        .range(0, 90)
        .repartition_by_range([col("id")], Some(3))
        .unwrap()
        .select([Column::call("spark_partition_id", []).alias("p"), col("id")]);
    let bounds = ranged
        .group_by(["p"])
        .agg([min("id").alias("lo"), max("id").alias("hi")])
        .order_by(["p"])
        .collect_batch()
        .await
        .unwrap();
    let bounds = cells(&bounds);
    assert_eq!(bounds.len(), 3, "{bounds:?}");
    for w in bounds.windows(2) {
        let hi: i64 = w[0][2].parse().unwrap();
        let lo: i64 = w[1][1].parse().unwrap();
        assert!(hi < lo, "ranges overlap: {bounds:?}");
    }
    assert!(refused(
        spark
            .range(0, 1)
            .repartition_by_range(Vec::<Column>::new(), None)
    ));

    let regex = sales.select([sales.col_regex("`(city|year)`")]);
    assert_eq!(regex.columns().await.unwrap(), ["city", "year"]);

    assert_eq!(
        sales.dtypes().await.unwrap(),
        [
            ("city".to_string(), "string".to_string()),
            ("year".to_string(), "int".to_string()),
            ("amount".to_string(), "int".to_string()),
        ]
    );
    let target = StructType::new([
        StructField::new("amount", DataType::Long, true),
        StructField::new("city", DataType::String, true),
    ]);
    let conformed = sales.to(&target);
    // Columns reordered and cast; the non-null source columns stay non-null.
    assert_eq!(
        conformed.dtypes().await.unwrap(),
        [
            ("amount".to_string(), "bigint".to_string()),
            ("city".to_string(), "string".to_string()),
        ]
    );
    assert_eq!(rows(&conformed).await[0], ["1", "a"]);
    let missing = sales.to(&StructType::empty().add("nope", DataType::Long, false));
    assert!(missing.collect_batch().await.is_err());

    let mut meta = serde_json::Map::new();
    meta.insert("comment".into(), "where it was sold".into());
    let described = sales.with_metadata("city", meta.clone());
    let city = described.struct_type().await.unwrap().fields[0].clone();
    assert_eq!(city.name, "city");
    assert_eq!(city.metadata, Some(meta));

    let small = sales
        .transform(|d| d.filter(col("amount").gt(1)))
        .transform(|d| d.select(["city"]));
    assert_eq!(column(&small, "city").await, ["a", "b"]);
}

// === readers and writers ===

#[tokio::test]
async fn readers_and_writers() {
    let spark = spark().await;
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let people = values(
        &spark,
        "select * from values (1, 'ann', 30.5), (2, 'bob', 41.0) as p(id, name, score)",
    )
    .await;
    let schema = StructType::new([
        StructField::new("id", DataType::Integer, true),
        StructField::new("name", DataType::String, true),
        StructField::new("score", DataType::Double, true),
    ]);
    let want = [["1", "ann", "30.5"], ["2", "bob", "41.0"]];

    // XML, read back with a typed schema.
    people
        .write()
        .mode(SaveMode::Overwrite)
        .option("rowTag", "person")
        .xml(&path("xml"))
        .await
        .unwrap();
    let xml = spark
        .read()
        .option("rowTag", "person")
        .schema(&schema)
        .xml([path("xml").as_str()]);
    assert_eq!(rows(&xml).await, want);
    assert_eq!(xml.struct_type().await.unwrap(), schema);

    // ORC and text.
    people.write().orc(&path("orc")).await.unwrap();
    assert_eq!(rows(&spark.read().orc([path("orc").as_str()])).await, want);
    people
        .select(["name"])
        .write()
        .text(&path("txt"))
        .await
        .unwrap();
    assert_eq!(
        column(&spark.read().text([path("txt").as_str()]), "value").await,
        ["ann", "bob"]
    );

    // CSV with writer options, read with the typed schema; the file source's metadata column.
    people
        .write()
        .options([("header", "true"), ("sep", ";")])
        .csv(&path("csv"))
        .await
        .unwrap();
    let csv = spark
        .read()
        .options([("header", "true"), ("sep", ";")])
        .schema(&schema)
        .csv([path("csv").as_str()]);
    assert_eq!(rows(&csv).await, want);
    let files = csv.select([csv.metadata_column("_metadata").get_field("file_path")]);
    assert!(column(&files, "_metadata.file_path").await[0].contains("/csv/"));

    // DataFrames of strings parsed as JSON (typed schema), CSV (a DDL schema, parsed by the
    // server) and XML.
    let json = values(
        &spark,
        r#"select * from values ('{"id": 1, "name": "ann", "score": 30.5}'), ('{"id": 2, "name": "bob", "score": 41.0}') as l(value)"#,
    )
    .await;
    let parsed = spark
        .read()
        .schema(&schema)
        .json_dataset(&json)
        .await
        .unwrap();
    assert_eq!(rows(&parsed).await, want);
    let lines = values(
        &spark,
        "select * from values ('1;ann;30.5'), ('2;bob;41.0') as l(value)",
    )
    .await;
    let parsed = spark
        .read()
        .option("sep", ";")
        .schema("id INT, name STRING, score DOUBLE")
        .csv_dataset(&lines)
        .await
        .unwrap();
    assert_eq!(rows(&parsed).await, want);
    assert_eq!(parsed.struct_type().await.unwrap(), schema);
    let records = values(
        &spark,
        "select * from values ('<p><id>1</id><name>ann</name><score>30.5</score></p>'), \
         ('<p><id>2</id><name>bob</name><score>41.0</score></p>') as l(value)",
    )
    .await;
    let parsed = spark
        .read()
        .option("rowTag", "p")
        .schema(&schema)
        .xml_dataset(&records)
        .await
        .unwrap();
    assert_eq!(rows(&parsed).await, want);

    // DDL and typed schemas, converted by the server.
    let ddl = spark.to_ddl(&schema).await.unwrap();
    assert_eq!(ddl, "id INT,name STRING,score DOUBLE");
    assert_eq!(
        spark.parse_ddl(&ddl).await.unwrap(),
        DataType::Struct(schema.clone())
    );
    assert_eq!(
        spark.parse_ddl("array<bigint>").await.unwrap(),
        DataType::array(DataType::Long, true)
    );

    // JDBC into Derby (in memory, inside the server): write, then read three ways.
    let url = format!("jdbc:derby:memory:{};create=true", unique("rw"));
    people
        .write()
        .mode(SaveMode::Overwrite)
        .jdbc(&url, "PEOPLE", [])
        .await
        .unwrap();
    let read = spark.read().jdbc(&url, "PEOPLE", []);
    assert_eq!(rows(&read).await, want);
    let parts = spark
        .read()
        .jdbc_partitioned(&url, "PEOPLE", "\"id\"", "1", "3", 2, []);
    assert_eq!(rows(&parts).await, want);
    let split = spark.read().jdbc_predicates(
        &url,
        "PEOPLE",
        [r#""id" < 2"#, r#""id" >= 2"#],
        [("user", "app")],
    );
    assert_eq!(rows(&split).await, want);

    // A clustered table.
    let clustered = unique("clustered");
    spark
        .range(0, 5)
        .write()
        .cluster_by(["id"])
        .save_as_table(&clustered)
        .await
        .unwrap();
    let cols = spark.catalog().list_columns(&clustered).await.unwrap();
    assert!(cols[0].is_cluster, "{cols:?}");
    spark
        .catalog()
        .drop_table(&clustered, false, false)
        .await
        .unwrap();
}

// === write_to and merge_into ===

#[tokio::test]
async fn write_to_the_session_catalog() {
    let spark = spark().await;
    let table = unique("v2_session");
    let df = spark.range(0, 10).with_column("part", col("id") % 2);
    df.write_to(&table)
        .using("parquet")
        .partitioned_by(["part"])
        .table_property("team", "tests")
        .option("compression", "zstd")
        .create()
        .await
        .unwrap();
    assert_eq!(spark.table(&table).count().await.unwrap(), 10);
    let catalog = spark.catalog();
    assert_eq!(
        catalog.list_partitions(&table).await.unwrap(),
        ["part=0", "part=1"]
    );
    assert_eq!(
        catalog
            .get_table_properties(&table)
            .await
            .unwrap()
            .get("team")
            .map(String::as_str),
        Some("tests")
    );
    let again = df.write_to(&table).create().await.unwrap_err();
    assert_eq!(
        error_class(&again),
        "TABLE_OR_VIEW_ALREADY_EXISTS",
        "{again}"
    );

    // The built-in session catalog keeps V1 tables: V2 appends and overwrites are refused...
    for (what, err) in [
        ("append", df.write_to(&table).append().await.unwrap_err()),
        (
            "overwrite",
            df.write_to(&table).overwrite(lit(true)).await.unwrap_err(),
        ),
        (
            "overwrite_partitions",
            df.write_to(&table)
                .overwrite_partitions()
                .await
                .unwrap_err(),
        ),
    ] {
        assert!(
            err.to_string().contains("Cannot write into v1 table"),
            "{what}: {err}"
        );
    }
    // ... and replacing is not supported by the catalog.
    let plain = unique("v2_plain");
    spark.range(0, 3).write_to(&plain).create().await.unwrap();
    let three = spark.range(0, 3);
    for (what, err) in [
        (
            "replace",
            three.write_to(&plain).replace().await.unwrap_err(),
        ),
        (
            "create_or_replace",
            three
                .write_to(&plain)
                .create_or_replace()
                .await
                .unwrap_err(),
        ),
    ] {
        assert_eq!(
            error_class(&err),
            "UNSUPPORTED_FEATURE.TABLE_OPERATION",
            "{what}: {err}"
        );
        assert!(
            err.to_string().contains("REPLACE TABLE AS SELECT"),
            "{what}: {err}"
        );
    }
    assert_eq!(spark.table(&table).count().await.unwrap(), 10);
    catalog.drop_table(&plain, false, false).await.unwrap();

    // MERGE INTO needs a catalog with row-level operations (Delta, Iceberg).
    let err = spark
        .range(5, 15)
        .with_column("part", col("id") % 2)
        .alias("s")
        .merge_into(&table, expr(&format!("{table}.id = s.id")))
        .when_matched(None)
        .update_all()
        .when_not_matched(None)
        .insert_all()
        .merge()
        .await
        .unwrap_err();
    assert_eq!(
        error_class(&err),
        "UNSUPPORTED_FEATURE.TABLE_OPERATION",
        "{err}"
    );
    assert!(err.to_string().contains("MERGE INTO TABLE"), "{err}");
    catalog.drop_table(&table, false, false).await.unwrap();
}

#[tokio::test]
async fn write_to_a_jdbc_catalog() {
    // Spark's own V2 JDBC catalog over an in-memory Derby database: a catalog that supports
    // appends, truncating overwrites and replaces.
    let spark = spark().await;
    let cat = unique("derby");
    let conf = spark.conf();
    conf.set(
        &format!("spark.sql.catalog.{cat}"),
        "org.apache.spark.sql.execution.datasources.v2.jdbc.JDBCTableCatalog",
    )
    .await
    .unwrap();
    conf.set(
        &format!("spark.sql.catalog.{cat}.url"),
        &format!("jdbc:derby:memory:{cat};create=true"),
    )
    .await
    .unwrap();
    let table = format!("{cat}.APP.NUMBERS");
    let count = || async { spark.table(&table).count().await.unwrap() };

    spark.range(0, 5).write_to(&table).create().await.unwrap();
    assert_eq!(count().await, 5);
    spark.range(5, 8).write_to(&table).append().await.unwrap();
    assert_eq!(count().await, 8);
    assert_eq!(column(&spark.table(&table), "id").await.len(), 8);
    spark
        .range(0, 2)
        .write_to(&table)
        .overwrite(lit(true))
        .await
        .unwrap();
    assert_eq!(count().await, 2);
    spark.range(0, 4).write_to(&table).replace().await.unwrap();
    assert_eq!(count().await, 4);
    spark
        .range(0, 6)
        .write_to(&format!("{cat}.APP.OTHER"))
        .create_or_replace()
        .await
        .unwrap();
    assert_eq!(
        spark
            .table(&format!("{cat}.APP.OTHER"))
            .count()
            .await
            .unwrap(),
        6
    );

    // What the JDBC catalog cannot do, Spark says.
    let err = spark
        .range(0, 1)
        .write_to(&table)
        .overwrite(col("id").gt(1))
        .await
        .unwrap_err();
    assert_eq!(
        error_class(&err),
        "UNSUPPORTED_FEATURE.TABLE_OPERATION",
        "{err}"
    );
    assert!(err.to_string().contains("overwrite by filter"), "{err}");
    let err = spark
        .range(0, 1)
        .write_to(&table)
        .overwrite_partitions()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("dynamic overwrite"), "{err}");
    let err = spark
        .range(0, 1)
        .alias("s")
        .merge_into(&table, expr(&format!("{table}.ID = s.id")))
        .when_matched(None)
        .delete()
        .merge()
        .await
        .unwrap_err();
    assert_eq!(
        error_class(&err),
        "UNSUPPORTED_FEATURE.TABLE_OPERATION",
        "{err}"
    );
}

// === the catalog ===

/// Compiles a Java UDF (`PlusOne`: int -> int + 1) against the server's jars and returns the jar.
fn plus_one_jar(dir: &std::path::Path) -> Vec<u8> {
    let python = std::env::var("SC_TEST_PYTHON").expect("SC_TEST_PYTHON is not set");
    let out = std::process::Command::new(python)
        .args([
            "-c",
            "import os, pyspark; print(os.path.dirname(pyspark.__file__))",
        ])
        .output()
        .unwrap();
    let jars = std::path::PathBuf::from(String::from_utf8(out.stdout).unwrap().trim()).join("jars");
    let api = std::fs::read_dir(&jars)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("spark-sql-api_"))
        })
        .expect("spark-sql-api jar in pyspark");
    std::fs::write(
        dir.join("PlusOne.java"),
        "public class PlusOne implements org.apache.spark.sql.api.java.UDF1<Integer, Integer> {\n\
         public Integer call(Integer x) { return x == null ? null : x + 1; }\n}\n",
    )
    .unwrap();
    let javac = std::process::Command::new("javac")
        .arg("-cp")
        .arg(&api)
        .args(["--release", "17", "-d"])
        .arg(dir)
        .arg(dir.join("PlusOne.java"))
        .status()
        .expect("javac (a JDK 17) is needed to compile the test UDF");
    assert!(javac.success());
    let jar = std::process::Command::new("jar")
        .arg("cf")
        .arg(dir.join("plus-one.jar"))
        .arg("-C")
        .arg(dir)
        .arg("PlusOne.class")
        .status()
        .expect("jar");
    assert!(jar.success());
    std::fs::read(dir.join("plus-one.jar")).unwrap()
}

#[tokio::test]
async fn every_catalog_method() {
    let spark = spark().await;
    let cat = spark.catalog();
    let dir = tempfile::tempdir().unwrap();

    // Catalogs.
    assert_eq!(cat.current_catalog().await.unwrap(), "spark_catalog");
    cat.set_current_catalog("spark_catalog").await.unwrap();
    let catalogs = cat.list_catalogs(None).await.unwrap();
    assert!(
        catalogs.iter().any(|c| c.name == "spark_catalog"),
        "{catalogs:?}"
    );
    assert_eq!(cat.list_catalogs(Some("spark*")).await.unwrap().len(), 1);

    // Databases.
    let db = unique("catalog_db");
    cat.create_database(&db, false, [("owner", "tests")])
        .await
        .unwrap();
    cat.create_database(&db, true, []).await.unwrap();
    assert!(cat.database_exists(&db).await.unwrap());
    assert_eq!(cat.get_database(&db).await.unwrap().name, db);
    let dbs = cat.list_databases(Some(&format!("{db}*"))).await.unwrap();
    assert_eq!(
        dbs.iter().map(|d| d.name.as_str()).collect::<Vec<_>>(),
        [db.as_str()]
    );
    cat.set_current_database(&db).await.unwrap();
    assert_eq!(cat.current_database().await.unwrap(), db);

    // Tables.
    let schema = StructType::new([
        StructField::new("id", DataType::Long, true),
        StructField::new("name", DataType::String, true),
    ]);
    let created = cat
        .create_table("ct")
        .source("parquet")
        .schema(&schema)
        .description("a test table")
        .create()
        .await
        .unwrap();
    assert_eq!(created.count().await.unwrap(), 0);
    spark
        .sql("insert into ct values (1, 'a'), (2, 'b')")
        .await
        .unwrap();
    assert!(cat.table_exists("ct").await.unwrap());
    assert!(cat.table_exists(&format!("{db}.ct")).await.unwrap());
    let t = cat.get_table("ct").await.unwrap();
    assert_eq!(
        (t.name.as_str(), t.description.as_deref()),
        ("ct", Some("a test table"))
    );
    assert_eq!(t.namespace, Some(vec![db.clone()]));
    let tables = cat.list_tables(Some(&db), Some("c*")).await.unwrap();
    assert_eq!(
        tables.iter().map(|t| t.name.clone()).collect::<Vec<_>>(),
        ["ct"]
    );
    // A schema from a StructType names the string collation explicitly, as PySpark's does.
    let cols = cat.list_columns("ct").await.unwrap();
    assert_eq!(
        cols.iter()
            .map(|c| (c.name.as_str(), c.data_type.as_str()))
            .collect::<Vec<_>>(),
        [("id", "bigint"), ("name", "string collate UTF8_BINARY")]
    );
    spark
        .sql("alter table ct set tblproperties ('k' = 'v')")
        .await
        .unwrap();
    assert_eq!(
        cat.get_table_properties("ct")
            .await
            .unwrap()
            .get("k")
            .map(String::as_str),
        Some("v")
    );
    assert!(
        cat.get_create_table_string("ct", false)
            .await
            .unwrap()
            .contains("CREATE TABLE")
    );
    cat.analyze_table("ct", false).await.unwrap();
    cat.analyze_table("ct", true).await.unwrap();

    // Partitions.
    spark
        .sql("create table pt (a int, p int) using parquet partitioned by (p)")
        .await
        .unwrap();
    spark
        .sql("insert into pt values (1, 1), (2, 2)")
        .await
        .unwrap();
    assert_eq!(cat.list_partitions("pt").await.unwrap(), ["p=1", "p=2"]);
    cat.recover_partitions("pt").await.unwrap();

    // The cache.
    cat.cache_table("ct", None).await.unwrap();
    assert!(cat.is_cached("ct").await.unwrap());
    cat.uncache_table("ct").await.unwrap();
    assert!(!cat.is_cached("ct").await.unwrap());
    cat.cache_table("ct", Some(StorageLevel::MEMORY_ONLY))
        .await
        .unwrap();
    assert!(cat.is_cached("ct").await.unwrap());
    cat.clear_cache().await.unwrap();
    assert!(!cat.is_cached("ct").await.unwrap());
    cat.refresh_table("ct").await.unwrap();

    // An external table over CSV files, and a cached read of the same files: both see files
    // added later once refreshed (by table, and by path).
    let csv = dir.path().join("ext").to_str().unwrap().to_string();
    spark
        .range(0, 3)
        .write()
        .option("header", "true")
        .csv(&csv)
        .await
        .unwrap();
    let ext = cat
        .create_external_table("ext")
        .path(&csv)
        .source("csv")
        .option("header", "true")
        .create()
        .await
        .unwrap();
    assert_eq!(ext.count().await.unwrap(), 3);
    assert_eq!(
        cat.get_table("ext").await.unwrap().table_type.as_deref(),
        Some("EXTERNAL")
    );
    let by_path = spark.read().option("header", "true").csv([csv.as_str()]);
    by_path.cache().await.unwrap();
    assert_eq!(by_path.count().await.unwrap(), 3);
    spark
        .range(3, 5)
        .write()
        .mode(SaveMode::Append)
        .option("header", "true")
        .csv(&csv)
        .await
        .unwrap();
    cat.refresh_by_path(&csv).await.unwrap();
    assert_eq!(by_path.count().await.unwrap(), 5);
    cat.refresh_table("ext").await.unwrap();
    assert_eq!(spark.table("ext").count().await.unwrap(), 5);

    cat.truncate_table("ct").await.unwrap();
    assert_eq!(spark.table("ct").count().await.unwrap(), 0);

    // Views.
    spark.sql("create view pv as select 1 as x").await.unwrap();
    let views = cat.list_views(Some(&db), None).await.unwrap();
    assert!(views.iter().any(|v| v.name == "pv"), "{views:?}");
    let views = cat.list_views(None, Some("p*")).await.unwrap();
    assert_eq!(
        views.iter().map(|v| v.name.clone()).collect::<Vec<_>>(),
        ["pv"]
    );
    cat.drop_view("pv", false).await.unwrap();
    cat.drop_view("pv", true).await.unwrap();
    assert!(cat.drop_view("pv", false).await.is_err());
    spark
        .range(0, 1)
        .create_or_replace_temp_view("tv")
        .await
        .unwrap();
    assert!(cat.drop_temp_view("tv").await.unwrap());
    assert!(!cat.drop_temp_view("tv").await.unwrap());
    let gv = unique("gv");
    spark
        .range(0, 1)
        .create_or_replace_global_temp_view(&gv)
        .await
        .unwrap();
    assert!(cat.drop_global_temp_view(&gv).await.unwrap());
    assert!(!cat.drop_global_temp_view(&gv).await.unwrap());

    // Functions, one of them a Java UDF registered from a jar uploaded to the session.
    assert!(
        !cat.list_functions(None, Some("abs"))
            .await
            .unwrap()
            .is_empty()
    );
    let abs = cat.get_function("abs").await.unwrap();
    assert!(abs.class_name.unwrap_or_default().ends_with(".Abs"));
    assert!(cat.function_exists("abs").await.unwrap());
    assert!(!cat.function_exists("plus_one").await.unwrap());
    let jar = plus_one_jar(dir.path());
    let uploaded = spark
        .add_artifacts([("jars/plus-one.jar".to_string(), bytes::Bytes::from(jar))])
        .await
        .unwrap();
    assert!(uploaded.iter().all(|(_, crc_ok)| *crc_ok));
    cat.register_function("plus_one", "PlusOne", Some(&DataType::Integer))
        .await
        .unwrap();
    assert!(cat.function_exists("plus_one").await.unwrap());
    assert_eq!(
        rows(&spark.sql("select plus_one(41)").await.unwrap()).await,
        [["42"]]
    );

    // Dropping.
    cat.drop_table("ct", false, false).await.unwrap();
    assert!(!cat.table_exists("ct").await.unwrap());
    cat.drop_table("ct", true, false).await.unwrap();
    let err = cat.drop_table("ct", false, false).await.unwrap_err();
    assert_eq!(error_class(&err), "TABLE_OR_VIEW_NOT_FOUND", "{err}");
    cat.set_current_database("default").await.unwrap();
    let err = cat.drop_database(&db, false, false).await.unwrap_err();
    assert!(
        err.error_class().is_some(),
        "a non-empty database needs cascade: {err}"
    );
    cat.drop_database(&db, false, true).await.unwrap();
    assert!(!cat.database_exists(&db).await.unwrap());
    cat.drop_database(&db, true, false).await.unwrap();
}

// === sessions ===

#[tokio::test]
async fn new_and_cloned_sessions() {
    let spark = spark().await;
    spark
        .range(0, 3)
        .create_or_replace_temp_view("shared_view")
        .await
        .unwrap();
    spark
        .conf()
        .set("spark.sql.shuffle.partitions", "7")
        .await
        .unwrap();

    // A new session starts empty.
    let fresh = spark.new_session();
    assert_ne!(fresh.session_id(), spark.session_id());
    assert!(!fresh.catalog().table_exists("shared_view").await.unwrap());
    assert_ne!(
        fresh
            .conf()
            .get("spark.sql.shuffle.partitions")
            .await
            .unwrap()
            .as_deref(),
        Some("7")
    );
    fresh
        .range(0, 1)
        .create_or_replace_temp_view("fresh_only")
        .await
        .unwrap();
    assert!(!spark.catalog().table_exists("fresh_only").await.unwrap());

    // A clone carries the views and the configuration over, then lives on its own.
    let clone = spark.clone_session(None).await.unwrap();
    assert_ne!(clone.session_id(), spark.session_id());
    assert_eq!(clone.table("shared_view").count().await.unwrap(), 3);
    assert_eq!(
        clone
            .conf()
            .get("spark.sql.shuffle.partitions")
            .await
            .unwrap()
            .as_deref(),
        Some("7")
    );
    clone
        .range(0, 2)
        .create_or_replace_temp_view("clone_only")
        .await
        .unwrap();
    assert!(!spark.catalog().table_exists("clone_only").await.unwrap());
    spark
        .range(0, 9)
        .create_or_replace_temp_view("shared_view")
        .await
        .unwrap();
    assert_eq!(clone.table("shared_view").count().await.unwrap(), 3);

    // A clone under a chosen id; a bad id is refused before anything is sent.
    let id = uuid::Uuid::new_v4().to_string();
    let named = spark.clone_session(Some(&id)).await.unwrap();
    assert_eq!(named.session_id(), id);
    assert_eq!(named.table("shared_view").count().await.unwrap(), 9);
    assert!(refused(spark.clone_session(Some("not-a-uuid")).await));

    for s in [fresh, clone, named] {
        s.stop().await.unwrap();
    }
    assert_eq!(spark.table("shared_view").count().await.unwrap(), 9);
}
