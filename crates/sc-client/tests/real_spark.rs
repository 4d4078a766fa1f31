//! Every API group against a real Spark Connect server (the one `scripts/test.sh` starts and
//! names in `SC_TEST_SPARK_A`). Each test opens its own session on the shared server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use arrow_array::{Array, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use futures_util::StreamExt;
use sc_client::functions::*;
use sc_client::{
    DataFrame, Error, ExplainMode, JoinType, SaveMode, SparkSession, StorageLevel, Window,
};

fn remote() -> String {
    let addr = std::env::var("SC_TEST_SPARK_A").unwrap_or_else(|_| {
        panic!("SC_TEST_SPARK_A is not set: run the tests with scripts/test.sh, which starts Spark Connect servers and exports their addresses")
    });
    format!("sc://{addr}")
}

async fn spark() -> SparkSession {
    SparkSession::builder()
        .remote(format!(
            "{}/;user_id=sc-client-test;x-test-header=yes",
            remote()
        ))
        .build()
        .await
        .unwrap()
}

/// All values of column `i` of the (concatenated) result, rendered as strings.
async fn column_strings(df: &DataFrame, i: usize) -> Vec<String> {
    let b = df.collect_batch().await.unwrap();
    let c = b.column(i);
    let f = arrow_cast::display::ArrayFormatter::try_new(c.as_ref(), &Default::default()).unwrap();
    (0..c.len())
        .map(|r| {
            if c.is_null(r) {
                "null".to_string()
            } else {
                f.value(r).to_string()
            }
        })
        .collect()
}

async fn people(spark: &SparkSession) -> DataFrame {
    spark
        .sql(
            "select * from values ('ann', 34, 'eng', 100.0), ('bob', 27, 'ops', 80.0), \
             ('cy', 41, 'eng', 120.0), ('dee', null, 'ops', null), ('eve', 30, 'hr', 90.0) \
             as t(name, age, dept, pay)",
        )
        .await
        .unwrap()
}

#[tokio::test]
async fn connects_and_reports_version() {
    let spark = spark().await;
    assert!(spark.version().await.unwrap().starts_with('4'));
    assert!(spark.server_side_session_id().is_some());
}

#[tokio::test]
async fn sql_with_parameters() {
    let spark = spark().await;
    let df = spark
        .sql_with_args("select ? + 1 as x, ? as s", [lit(41), lit("hi")])
        .await
        .unwrap();
    assert_eq!(column_strings(&df, 0).await, ["42"]);
    assert_eq!(column_strings(&df, 1).await, ["hi"]);
    let df = spark
        .sql_with_named_args("select :a * :b as p", [("a", lit(6)), ("b", lit(7))])
        .await
        .unwrap();
    assert_eq!(column_strings(&df, 0).await, ["42"]);
}

#[tokio::test]
async fn range_filter_select_count() {
    let spark = spark().await;
    let df = spark
        .range(0, 100)
        .filter(col("id").ge(10) & col("id").lt(20))
        .with_column("sq", col("id") * col("id"))
        .select([col("id"), col("sq"), (col("sq") % 7).alias("m")]);
    assert_eq!(df.count().await.unwrap(), 10);
    assert_eq!(df.columns().await.unwrap(), ["id", "sq", "m"]);
    let first = df.first().await.unwrap().unwrap();
    let sq = first
        .column(1)
        .as_any()
        .downcast_ref::<Int64Array>()
        .unwrap();
    assert_eq!(sq.value(0), 100);
    assert!(spark.range(0, 0).is_empty().await.unwrap());
    assert_eq!(df.head(3).await.unwrap().num_rows(), 3);
    assert_eq!(df.tail(2).await.unwrap().num_rows(), 2);
}

#[tokio::test]
async fn create_dataframe_round_trip() {
    let spark = spark().await;
    let schema = Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int32, false),
        Field::new("v", DataType::Utf8, true),
    ]));
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int32Array::from(vec![1, 2, 3])),
            Arc::new(StringArray::from(vec![Some("a"), None, Some("c")])),
        ],
    )
    .unwrap();
    let df = spark.create_dataframe(&[batch]).unwrap();
    let out = df.order_by(["k"]).collect_batch().await.unwrap();
    assert_eq!(out.num_rows(), 3);
    let v = out
        .column(1)
        .as_any()
        .downcast_ref::<StringArray>()
        .unwrap();
    assert_eq!(v.value(0), "a");
    assert!(v.is_null(1));
    assert_eq!(df.filter(col("v").is_not_null()).count().await.unwrap(), 2);
}

#[tokio::test]
async fn grouping_pivot_rollup_cube() {
    let spark = spark().await;
    let p = people(&spark).await;
    let g = p
        .group_by(["dept"])
        .agg([count("*").alias("n"), sum("pay").alias("total")])
        .order_by(["dept"]);
    assert_eq!(column_strings(&g, 0).await, ["eng", "hr", "ops"]);
    assert_eq!(column_strings(&g, 1).await, ["2", "1", "2"]);
    assert_eq!(column_strings(&g, 2).await, ["220.0", "90.0", "80.0"]);
    let c = p
        .group_by(["dept"])
        .count()
        .order_by([col("count").desc(), col("dept").asc()]);
    assert_eq!(column_strings(&c, 0).await, ["eng", "ops", "hr"]);
    let pv = p
        .group_by(Vec::<&str>::new())
        .pivot("dept", Some(vec!["eng", "ops"]))
        .unwrap()
        .agg([sum("pay")]);
    assert_eq!(column_strings(&pv, 0).await, ["220.0"]);
    assert_eq!(column_strings(&pv, 1).await, ["80.0"]);
    assert_eq!(
        p.rollup(["dept"]).agg([count("*")]).count().await.unwrap(),
        4
    );
    assert_eq!(
        p.cube(["dept", "name"])
            .agg([count("*")])
            .count()
            .await
            .unwrap(),
        14
    );
    let a = p.agg([max("age"), min("age"), count_distinct(["dept"])]);
    assert_eq!(column_strings(&a, 0).await, ["41"]);
    assert_eq!(column_strings(&a, 2).await, ["3"]);
}

#[tokio::test]
async fn joins_of_every_type() {
    let spark = spark().await;
    let l = spark.range(0, 5);
    let r = spark.range(3, 8);
    let n = |how: JoinType| {
        let (l, r) = (l.clone(), r.clone());
        async move { l.join(&r, "id", how).count().await.unwrap() }
    };
    assert_eq!(n(JoinType::Inner).await, 2);
    assert_eq!(n(JoinType::LeftOuter).await, 5);
    assert_eq!(n(JoinType::RightOuter).await, 5);
    assert_eq!(n(JoinType::FullOuter).await, 8);
    assert_eq!(n(JoinType::LeftSemi).await, 2);
    assert_eq!(n(JoinType::LeftAnti).await, 3);
    assert_eq!(l.cross_join(&r).count().await.unwrap(), 25);
    let on = l.join(&r, l.col("id").lt(r.col("id")), JoinType::Inner);
    assert_eq!(on.count().await.unwrap(), 5 + 5 + 5 + 4 + 3);
    let a = l.alias("a");
    let b = r.alias("b");
    let q = a
        .join(&b, col("a.id").eq(col("b.id")), "inner".parse().unwrap())
        .select(["a.id"]);
    assert_eq!(column_strings(&q.order_by(["id"]), 0).await, ["3", "4"]);
}

#[tokio::test]
async fn set_operations_sorting_and_limits() {
    let spark = spark().await;
    let a = spark.range(0, 5);
    let b = spark.range(3, 8);
    assert_eq!(a.union(&b).count().await.unwrap(), 10);
    assert_eq!(a.union(&b).distinct().count().await.unwrap(), 8);
    assert_eq!(a.union_by_name(&b, false).count().await.unwrap(), 10);
    assert_eq!(a.intersect(&b).count().await.unwrap(), 2);
    assert_eq!(a.except(&b).count().await.unwrap(), 3);
    assert_eq!(a.union(&a).except_all(&a).count().await.unwrap(), 5);
    let sorted = a.union(&b).order_by([col("id").desc()]).offset(1).limit(3);
    assert_eq!(column_strings(&sorted, 0).await, ["6", "5", "4"]);
    let d = a
        .union(&a)
        .with_column("k", col("id") % 2)
        .drop_duplicates(["k"]);
    assert_eq!(d.count().await.unwrap(), 2);
    assert_eq!(a.repartition(3).coalesce(1).count().await.unwrap(), 5);
    assert_eq!(a.repartition_by(["id"], Some(2)).count().await.unwrap(), 5);
}

#[tokio::test]
async fn windows() {
    let spark = spark().await;
    let p = people(&spark).await;
    let w = Window::partition_by(["dept"]).order_by([col("pay").desc()]);
    let ranked = p
        .select([
            col("name"),
            row_number().over(&w).alias("rn"),
            sum("pay")
                .over(
                    w.clone()
                        .rows_between(Window::UNBOUNDED_PRECEDING, Window::CURRENT_ROW),
                )
                .alias("running"),
            lag("pay", 1, None).over(&w).alias("prev"),
        ])
        .order_by(["name"]);
    assert_eq!(column_strings(&ranked, 1).await, ["2", "1", "1", "2", "1"]);
    assert_eq!(
        column_strings(&ranked, 2).await,
        ["220.0", "80.0", "120.0", "80.0", "90.0"]
    );
    assert_eq!(
        column_strings(&ranked, 3).await,
        ["120.0", "null", "null", "80.0", "null"]
    );
}

#[tokio::test]
async fn expressions_and_functions() {
    let spark = spark().await;
    let p = people(&spark).await;
    let e = p
        .filter(col("name").isin(["ann", "dee"]))
        .select([
            upper("name"),
            when(col("age").gt(30), "old")
                .otherwise("young")
                .alias("bucket"),
            col("age").cast("string"),
            col("age").between(30, 40),
            col("name").like("a%"),
            concat_ws("-", ["name", "dept"]),
            coalesce([col("pay"), lit(0.0)]),
        ])
        .order_by([col("upper(name)")]);
    let b = e.collect_batch().await.unwrap();
    assert_eq!(b.num_rows(), 2);
    assert_eq!(column_strings(&e, 0).await, ["ANN", "DEE"]);
    assert_eq!(column_strings(&e, 1).await, ["old", "young"]);
    assert_eq!(column_strings(&e, 3).await, ["true", "null"]);
    assert_eq!(column_strings(&e, 4).await, ["true", "false"]);
    assert_eq!(column_strings(&e, 5).await, ["ann-eng", "dee-ops"]);
    let pay = b.column(6).as_any().downcast_ref::<Float64Array>().unwrap();
    assert_eq!(pay.value(1), 0.0);
    let s = spark
        .range(0, 1)
        .select([
            array([lit(1), lit(2), lit(3)]).alias("arr"),
            round(lit(2.345), 2).alias("r"),
            date_add(to_date(lit("2024-01-31"), None), 1).alias("d"),
            regexp_replace(lit("a-b-c"), "-", "+", None).alias("re"),
            size(array([lit(1), lit(2)])).alias("n"),
        ])
        .select([
            element_at("arr", 2),
            col("r"),
            col("d"),
            col("re"),
            col("n"),
        ]);
    let got: Vec<String> = {
        let mut v = Vec::new();
        for i in 0..5 {
            v.extend(column_strings(&s, i).await);
        }
        v
    };
    assert_eq!(got, ["2", "2.35", "2024-02-01", "a+b+c", "2"]);
}

#[tokio::test]
async fn na_describe_sample_split() {
    let spark = spark().await;
    let p = people(&spark).await;
    assert_eq!(
        p.na()
            .drop(false, None, Vec::<&str>::new())
            .count()
            .await
            .unwrap(),
        4
    );
    assert_eq!(
        p.na()
            .drop(true, None, ["age", "pay"])
            .count()
            .await
            .unwrap(),
        4
    );
    let filled = p
        .na()
        .fill(0, ["age"])
        .unwrap()
        .filter(col("name").eq("dee"));
    assert_eq!(column_strings(&filled.select(["age"]), 0).await, ["0"]);
    let replaced = p.na().replace([("eng", "engineering")], ["dept"]).unwrap();
    assert_eq!(
        replaced
            .filter(col("dept").eq("engineering"))
            .count()
            .await
            .unwrap(),
        2
    );
    let d = p.describe(["age"]);
    assert_eq!(
        column_strings(&d, 0).await,
        ["count", "mean", "stddev", "min", "max"]
    );
    assert_eq!(column_strings(&d, 1).await[0], "4");
    let s = p.summary(["count", "max"]);
    assert_eq!(column_strings(&s, 0).await, ["count", "max"]);
    let big = spark.range(0, 10_000);
    let n = big.sample(0.1, false, Some(3)).count().await.unwrap();
    assert!((700..1300).contains(&n), "{n}");
    let parts = big.random_split(&[1.0, 3.0], Some(11)).unwrap();
    let a = parts[0].count().await.unwrap();
    let b = parts[1].count().await.unwrap();
    assert_eq!(a + b, 10_000);
    assert!((2000..3000).contains(&a), "{a}");
}

#[tokio::test]
async fn show_schema_explain() {
    let spark = spark().await;
    let df = spark.range(0, 3).with_column("s", lit("x"));
    let shown = df.show_string(20, 20, false).await.unwrap();
    assert_eq!(
        shown,
        "+---+---+\n| id|  s|\n+---+---+\n|  0|  x|\n|  1|  x|\n|  2|  x|\n+---+---+\n"
    );
    let tree = df.tree_string().await.unwrap();
    assert!(
        tree.starts_with("root\n |-- id: long (nullable = false)"),
        "{tree}"
    );
    let schema = df.schema().await.unwrap();
    assert_eq!(schema.field(0).data_type(), &DataType::Int64);
    assert_eq!(schema.field(1).data_type(), &DataType::Utf8);
    let plan = df.explain_string(ExplainMode::Extended).await.unwrap();
    assert!(plan.contains("Physical Plan"), "{plan}");
    assert!(!df.is_streaming().await.unwrap());
    let cached = df.persist(StorageLevel::MEMORY_ONLY).await.unwrap();
    assert!(cached.storage_level().await.unwrap().use_memory);
    cached.unpersist(true).await.unwrap();
}

#[tokio::test]
async fn write_read_catalog() {
    let spark = spark().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out");
    let path = path.to_str().unwrap();
    let df = spark.range(0, 20).with_column("part", col("id") % 2);
    df.write()
        .format("parquet")
        .mode(SaveMode::Overwrite)
        .partition_by(["part"])
        .save(path)
        .await
        .unwrap();
    let back = spark.read().parquet([path]);
    assert_eq!(back.count().await.unwrap(), 20);
    assert_eq!(back.filter(col("part").eq(1)).count().await.unwrap(), 10);
    let csv = dir.path().join("csv");
    let csv = csv.to_str().unwrap();
    df.write().option("header", "true").csv(csv).await.unwrap();
    let back = spark
        .read()
        .format("csv")
        .option("header", "true")
        .schema("id BIGINT, part INT")
        .load([csv]);
    assert_eq!(
        back.agg([sum("id")])
            .collect_batch()
            .await
            .unwrap()
            .num_rows(),
        1
    );
    assert_eq!(column_strings(&back.agg([sum("id")]), 0).await, ["190"]);

    let table = format!("sc_client_t_{}", std::process::id());
    df.write()
        .mode(SaveMode::Overwrite)
        .save_as_table(&table)
        .await
        .unwrap();
    let catalog = spark.catalog();
    assert!(catalog.table_exists(&table).await.unwrap());
    let tables = catalog.list_tables(None, None).await.unwrap();
    assert!(tables.iter().any(|t| t.name == table), "{tables:?}");
    let cols = catalog.list_columns(&table).await.unwrap();
    assert_eq!(
        cols.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
        ["id", "part"]
    );
    assert_eq!(spark.table(&table).count().await.unwrap(), 20);
    assert_eq!(catalog.current_database().await.unwrap(), "default");
    assert!(
        catalog
            .list_databases(None)
            .await
            .unwrap()
            .iter()
            .any(|d| d.name == "default")
    );
    assert!(catalog.function_exists("abs").await.unwrap());
    assert!(
        !catalog
            .list_functions(None, Some("abs"))
            .await
            .unwrap()
            .is_empty()
    );
    df.create_or_replace_temp_view("sc_client_view")
        .await
        .unwrap();
    assert_eq!(
        spark
            .sql("select count(*) from sc_client_view")
            .await
            .unwrap()
            .count()
            .await
            .unwrap(),
        1
    );
    assert!(catalog.drop_temp_view("sc_client_view").await.unwrap());
    spark.sql(&format!("drop table {table}")).await.unwrap();
}

#[tokio::test]
async fn conf_get_set_unset() {
    let spark = spark().await;
    let conf = spark.conf();
    conf.set("spark.sql.shuffle.partitions", "7").await.unwrap();
    assert_eq!(
        conf.get("spark.sql.shuffle.partitions")
            .await
            .unwrap()
            .as_deref(),
        Some("7")
    );
    conf.unset("spark.sql.shuffle.partitions").await.unwrap();
    assert_eq!(
        conf.get("spark.sql.shuffle.partitions")
            .await
            .unwrap()
            .as_deref(),
        Some("200")
    );
    assert_eq!(
        conf.get_or("spark.sc.client.nope", "dflt").await.unwrap(),
        "dflt"
    );
    assert!(
        conf.is_modifiable("spark.sql.shuffle.partitions")
            .await
            .unwrap()
    );
    let all = conf.get_all(Some("spark.sql.shuffle")).await.unwrap();
    assert!(all.is_empty() || all.contains_key("spark.sql.shuffle.partitions"));
}

#[tokio::test]
async fn spark_errors_are_typed() {
    let spark = spark().await;
    let err = spark
        .sql("select * from no_such_table_xyz")
        .await
        .unwrap_err();
    assert_eq!(err.error_class(), Some("TABLE_OR_VIEW_NOT_FOUND"));
    assert_eq!(err.sql_state(), Some("42P01"));
    let se = err.spark_error().unwrap();
    assert!(se.message_parameters.contains_key("relationName"), "{se:?}");
    assert!(se.exception_class.contains("AnalysisException"), "{se:?}");
    let err = spark
        .range(0, 1)
        .select([col("nope")])
        .collect()
        .await
        .unwrap_err();
    assert_eq!(err.error_class(), Some("UNRESOLVED_COLUMN.WITH_SUGGESTION"));
    let err = spark
        .sql("select 1/0")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap_err();
    assert_eq!(err.error_class(), Some("DIVIDE_BY_ZERO"));
}

#[tokio::test]
async fn interrupt_by_tag_and_all() {
    let spark = spark().await;
    spark.add_tag("slow-one").unwrap();
    assert_eq!(spark.tags(), ["slow-one"]);
    // Far more work than the test waits for: it only ends by being interrupted.
    let slow = spark
        .range_with(Some(0), 200_000_000_000, 1, Some(2))
        .select([sum(sqrt(col("id")))]);
    // Tags are taken when the execution starts.
    let running = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = running.clone();
    spark.register_progress_handler(move |p| {
        if p.total_tasks > 0 {
            flag.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    });
    let task = tokio::spawn(async move { slow.collect().await });
    // Interrupt once its Spark job runs (progress says so): an interrupt that arrives before
    // the job is submitted ends the operation but leaves the job running for many minutes.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while !running.load(std::sync::atomic::Ordering::Relaxed) {
        assert!(
            std::time::Instant::now() < deadline,
            "the query never reported progress"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    spark.clear_tags();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let ids = loop {
        let ids = spark.interrupt_tag("slow-one").await.unwrap();
        if !ids.is_empty() || std::time::Instant::now() > deadline {
            break ids;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(ids.len(), 1, "{ids:?}");
    let res = tokio::time::timeout(Duration::from_secs(60), task)
        .await
        .unwrap()
        .unwrap();
    let err = res.unwrap_err();
    assert!(
        err.to_string().contains("OPERATION_CANCELED") || err.error_class().is_some(),
        "{err}"
    );
    spark.interrupt_all().await.unwrap();
    assert!(spark.add_tag("a,b").is_err());
}

#[tokio::test]
async fn interrupt_by_operation_id() {
    let spark = spark().await;
    // Progress reports name the operation: they say when its Spark job is running.
    let running = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let seen = running.clone();
    spark.register_progress_handler(move |p| {
        if p.total_tasks > 0 {
            seen.lock().unwrap().push(p.operation_id.clone());
        }
    });
    // Far more work than the test waits for: it only ends by being interrupted.
    let slow = spark
        .range_with(Some(0), 200_000_000_000, 1, Some(2))
        .select([sum(sqrt(col("id")))]);
    let mut stream = slow.to_stream().await.unwrap();
    let id = stream.operation_id().to_string();
    // The execution starts when the stream is first polled.
    let task = tokio::spawn(async move { stream.next().await });
    // Interrupt once the job runs: Spark cancels the jobs an operation has started, so an
    // interrupt that arrives before the job is submitted would leave the job running.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while !running.lock().unwrap().contains(&id) {
        assert!(
            std::time::Instant::now() < deadline,
            "the query never reported progress"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A made-up operation id interrupts nothing.
    let none = spark
        .interrupt_operation("00000000-0000-4000-8000-000000000000")
        .await
        .unwrap();
    assert!(none.is_empty(), "{none:?}");
    let ids = spark.interrupt_operation(&id).await.unwrap();
    assert_eq!(ids, std::slice::from_ref(&id));
    let first = tokio::time::timeout(Duration::from_secs(60), task)
        .await
        .expect("the interrupted query kept running")
        .unwrap()
        .expect("the stream ended without a result or an error");
    let err = first.expect_err("the interrupted query returned a batch");
    assert_eq!(err.error_class(), Some("OPERATION_CANCELED"), "{err}");
    // The job ended on the server too (it would hold both cores for many minutes), and the
    // session goes on.
    let count = tokio::time::timeout(Duration::from_secs(60), spark.range(0, 5).count())
        .await
        .expect("the interrupted job still occupies the server");
    assert_eq!(count.unwrap(), 5);
}

#[tokio::test]
async fn server_stack_trace_via_fetch_error_details() {
    let spark = spark().await;
    // Spark's default, set explicitly: the server keeps the stack trace it returns through
    // FetchErrorDetails.
    spark
        .conf()
        .set("spark.sql.connect.serverStacktrace.enabled", "true")
        .await
        .unwrap();
    let err = spark
        .sql("select 1/0")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap_err();
    assert_eq!(err.error_class(), Some("DIVIDE_BY_ZERO"));
    let se = err.spark_error().unwrap();
    assert!(se.error_id.is_some(), "{se:?}");
    // Only the FetchErrorDetails answer fills the stack trace: the gRPC status has none.
    assert!(!se.stack_trace.is_empty(), "{se:?}");
    assert!(
        se.stack_trace
            .iter()
            .any(|f| f.starts_with("org.apache.spark.")),
        "{:?}",
        se.stack_trace
    );
    assert!(se.exception_class.contains("Arithmetic"), "{se:?}");
    assert_eq!(
        se.message_parameters.get("config").map(String::as_str),
        Some("\"spark.sql.ansi.enabled\""),
        "{se:?}"
    );

    // Without error enrichment the server sends no error id, so there is nothing to fetch.
    let plain = crate::spark().await;
    plain
        .conf()
        .set("spark.sql.connect.enrichError.enabled", "false")
        .await
        .unwrap();
    let err = plain
        .sql("select 1/0")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap_err();
    assert_eq!(err.error_class(), Some("DIVIDE_BY_ZERO"));
    let se = err.spark_error().unwrap();
    assert!(se.error_id.is_none(), "{se:?}");
    assert!(se.stack_trace.is_empty(), "{se:?}");
}

#[tokio::test]
async fn artifacts_upload() {
    let spark = spark().await;
    let small = bytes::Bytes::from_static(b"hello artifacts");
    let big = bytes::Bytes::from(vec![7u8; 100_000]);
    let res = spark
        .add_artifacts([
            ("files/sc_small.txt".to_string(), small),
            ("files/sc_big.bin".to_string(), big),
        ])
        .await
        .unwrap();
    assert!(res.iter().all(|(_, ok)| *ok), "{res:?}");
    assert_eq!(res.len(), 2);
}

/// A TCP relay that cuts the first connection after `cut_after` bytes from the server, as a
/// network failure would; later connections pass through.
async fn cutting_relay(upstream: String, cut_after: usize) -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut first = true;
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else {
                continue;
            };
            let limit = if first { Some(cut_after) } else { None };
            first = false;
            tokio::spawn(async move {
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                let up = tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut cr, &mut sw).await;
                });
                let mut sent = 0usize;
                let mut buf = vec![0u8; 16 * 1024];
                loop {
                    let n = match sr.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    if cw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                    sent += n;
                    if limit.is_some_and(|l| sent >= l) {
                        break;
                    }
                }
                // Dropping both halves resets the connection mid-stream.
                up.abort();
            });
        }
    });
    addr
}

#[tokio::test]
async fn reattaches_cut_streams() {
    let upstream = std::env::var("SC_TEST_SPARK_A").unwrap_or_else(|_| {
        panic!("SC_TEST_SPARK_A is not set: run the tests with scripts/test.sh")
    });
    // Cut the connection once about 3 MB into the result.
    let relay = cutting_relay(upstream, 3_000_000).await;
    let spark = SparkSession::builder()
        .remote(format!("sc://{relay}"))
        .retry_policy(sc_client::RetryPolicy {
            initial_backoff: Duration::from_millis(20),
            ..Default::default()
        })
        .build()
        .await
        .unwrap();
    let df = spark
        .range_with(Some(0), 2_000_000, 1, Some(4))
        .select([col("id"), lit("some padding text").alias("s")]);
    let mut stream = df.to_stream().await.unwrap();
    let mut rows = 0;
    let mut sum_ids: i64 = 0;
    while let Some(b) = stream.next().await {
        let b = b.unwrap();
        rows += b.num_rows();
        let ids = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
        sum_ids += ids.iter().flatten().sum::<i64>();
    }
    assert_eq!(rows, 2_000_000);
    assert_eq!(
        sum_ids,
        (0..2_000_000i64).sum::<i64>(),
        "rows lost or repeated"
    );
    assert!(spark.reattach_count() > 0, "the stream was not reattached");
}

#[tokio::test]
async fn concurrent_queries_share_a_session() {
    let spark = spark().await;
    let mut tasks = Vec::new();
    for i in 0..8i64 {
        let s = spark.clone();
        tasks.push(tokio::spawn(async move {
            s.range(0, 1000 * (i + 1)).count().await
        }));
    }
    for (i, t) in tasks.into_iter().enumerate() {
        assert_eq!(t.await.unwrap().unwrap(), 1000 * (i as i64 + 1));
    }
}

#[tokio::test]
async fn progress_is_reported() {
    let spark = spark().await;
    let seen = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let s2 = seen.clone();
    spark.register_progress_handler(move |_p| {
        s2.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    });
    spark
        .range_with(Some(0), 300_000_000, 1, Some(2))
        .select([sum(col("id") % 7)])
        .collect()
        .await
        .unwrap();
    assert!(seen.load(std::sync::atomic::Ordering::Relaxed) > 0);
}

#[tokio::test]
async fn stop_releases_the_session() {
    let spark = spark().await;
    assert_eq!(spark.range(0, 3).count().await.unwrap(), 3);
    spark.stop().await.unwrap();
    assert!(spark.is_stopped());
    assert!(matches!(
        spark.range(0, 3).count().await,
        Err(Error::SessionStopped)
    ));
    spark.stop().await.unwrap();

    // The server closed the session: a new client with the same session id (and user) is
    // refused, which it would not be had ReleaseSession not reached the server.
    let again = SparkSession::builder()
        .remote(format!(
            "{}/;user_id=sc-client-test;session_id={}",
            remote(),
            spark.session_id()
        ))
        .build()
        .await
        .unwrap();
    let err = again.version().await.unwrap_err();
    assert_eq!(
        err.error_class(),
        Some("INVALID_HANDLE.SESSION_CLOSED"),
        "{err}"
    );
    // A fresh session id still works.
    assert!(crate::spark().await.version().await.is_ok());
}

#[tokio::test]
async fn unreachable_server_is_an_error_not_a_hang() {
    let spark = SparkSession::builder()
        .remote("sc://127.0.0.1:9/")
        .retry_policy(sc_client::RetryPolicy {
            max_retries: 2,
            initial_backoff: Duration::from_millis(10),
            ..Default::default()
        })
        .build()
        .await
        .unwrap();
    let err = spark.version().await.unwrap_err();
    assert_eq!(err.grpc_code(), Some(tonic::Code::Unavailable));
}
