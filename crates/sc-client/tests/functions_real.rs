//! `sc_client::functions` against a real Spark Connect server (`SC_TEST_SPARK_A`): every
//! higher-order function evaluated on real data with its values checked, and every function
//! case of the plan-fidelity suite run on the server, so a wrong Spark function name or a wrong
//! number of arguments fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use arrow_array::Array;
use futures_util::StreamExt;
use sc_client::functions::*;
use sc_client::{DataFrame, SparkSession};

#[path = "fidelity/functions.rs"]
#[allow(dead_code)]
mod functions_cases;

async fn spark() -> SparkSession {
    let addr = std::env::var("SC_TEST_SPARK_A").unwrap_or_else(|_| {
        panic!("SC_TEST_SPARK_A is not set: run the tests with scripts/test.sh, which starts Spark Connect servers and exports their addresses")
    });
    SparkSession::builder()
        .remote(format!("sc://{addr}/;user_id=sc-client-functions"))
        .build()
        .await
        .unwrap()
}

/// The values of the one row of `df`, each cast to a string by Spark.
async fn row_strings(df: &DataFrame) -> Vec<String> {
    let names: Vec<String> = df
        .schema()
        .await
        .unwrap()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let as_strings = df.select(
        names
            .iter()
            .map(|n| col(&format!("`{n}`")).cast("string"))
            .collect::<Vec<_>>(),
    );
    let b = as_strings.collect_batch().await.unwrap();
    assert_eq!(b.num_rows(), 1);
    (0..b.num_columns())
        .map(|i| {
            let c = b
                .column(i)
                .as_any()
                .downcast_ref::<arrow_array::StringArray>()
                .unwrap();
            if c.is_null(0) {
                "null".to_string()
            } else {
                c.value(0).to_string()
            }
        })
        .collect()
}

#[tokio::test]
async fn higher_order_functions_evaluate_on_real_spark() {
    let spark = spark().await;
    let data = spark
        .sql(
            "select array(1, 2, 3, 4) as xs, array(10, 20, 30, 40) as ys, \
             map('a', 1, 'b', 2, 'c', 3) as m, map('a', 10, 'b', 20, 'd', 40) as m2, \
             array(array(1, -2), array(-3, 4)) as nested",
        )
        .await
        .unwrap();
    let cases: Vec<(Column, &str)> = vec![
        (transform("xs", |x| x * 2), "[2, 4, 6, 8]"),
        (transform_with_index("xs", |x, i| x + i), "[1, 3, 5, 7]"),
        (filter("xs", |x| x.gt(2)), "[3, 4]"),
        (filter_with_index("xs", |_x, i| (i % 2).eq(0)), "[1, 3]"),
        (exists("xs", |x| x.eq(3)), "true"),
        (exists("xs", |x| x.gt(9)), "false"),
        (forall("xs", |x| x.gt(0)), "true"),
        (forall("xs", |x| x.gt(1)), "false"),
        (aggregate("xs", lit(0), |acc, x| acc + x), "10"),
        (
            aggregate_with_finish("xs", lit(0), |acc, x| acc + x, |acc| acc * 10),
            "100",
        ),
        (reduce("xs", lit(0), |acc, x| acc + x), "10"),
        (
            reduce_with_finish("xs", lit(1), |acc, x| acc * x, |acc| acc - 1),
            "23",
        ),
        (zip_with("xs", "ys", |x, y| x + y), "[11, 22, 33, 44]"),
        (map_filter("m", |_k, v| v.gt(1)), "{b -> 2, c -> 3}"),
        (
            map_zip_with("m", "m2", |_k, v1, v2| {
                coalesce([v1, lit(0)]) + coalesce([v2, lit(0)])
            }),
            "{a -> 11, b -> 22, c -> 3, d -> 40}",
        ),
        (
            transform_keys("m", |k, _v| upper(k)),
            "{A -> 1, B -> 2, C -> 3}",
        ),
        (
            transform_values("m", |k, v| concat([k, v.cast("string")])),
            "{a -> a1, b -> b2, c -> c3}",
        ),
        (array_sort("xs"), "[1, 2, 3, 4]"),
        (array_sort_by("xs", |a, b| b - a), "[4, 3, 2, 1]"),
        (
            transform("nested", |xs| filter(xs, |x| x.gt(0))),
            "[[1], [4]]",
        ),
        (
            transform("xs", |x| exists("ys", |y| y.eq(x * 10))),
            "[true, true, true, true]",
        ),
    ];
    let (cols, want): (Vec<Column>, Vec<&str>) = cases.into_iter().unzip();
    let got = row_strings(&data.select(cols)).await;
    assert_eq!(got, want);
}

/// A one-row table `t` with every column the function cases name (`c0`, `c1_0`, `arr`, ...),
/// and a table `u` for the join cases.
async fn case_tables(spark: &SparkSession) {
    let mut cols = vec![
        "1 as a".to_string(),
        "'x,y' as b".to_string(),
        "2.5d as c".to_string(),
        "date'2024-02-29' as d".to_string(),
        "'e' as e".to_string(),
        "'f' as f".to_string(),
        "array(1, 2, 3) as arr".to_string(),
        "array(4, 5, 6) as arr2".to_string(),
        "map('k', 1) as m".to_string(),
        "map('k', 2) as m2".to_string(),
        "named_struct('x', 1) as s".to_string(),
        "array(array(1, -2)) as nested".to_string(),
        "timestamp'2024-01-02 03:04:05' as ts".to_string(),
        "2024 as y".to_string(),
        "1 as mo".to_string(),
        "2 as h".to_string(),
        "3 as mi".to_string(),
        "'UTC' as tz".to_string(),
        "'12:00:00' as t".to_string(),
        "X'00' as g".to_string(),
        "'a INT' as sch".to_string(),
    ];
    for i in 0..10 {
        cols.push(format!("'1' as c{i}"));
        cols.push(format!("'1' as c{i}_0"));
        cols.push(format!("'1' as c{i}_1"));
    }
    spark
        .sql(&format!(
            "create or replace temporary view t as select {}",
            cols.join(", ")
        ))
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    spark
        .sql("create or replace temporary view u as select 1 as a, 'u' as z")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
}

/// Error classes that mean the call itself is wrong (not its sample arguments).
const CALL_ERRORS: &[&str] = &[
    "UNRESOLVED_ROUTINE",
    "WRONG_NUM_ARGS",
    "UNRESOLVED_COLUMN",
    "INTERNAL_ERROR",
];

/// The expressions of a case that is a plain `t.select(...)`, to run many cases in one query.
fn projection(df: &DataFrame) -> Option<Vec<Column>> {
    use sc_client::proto::{plan::OpType, relation::RelType};
    let Some(OpType::Root(root)) = df.to_plan().op_type else {
        return None;
    };
    let Some(RelType::Project(p)) = root.rel_type else {
        return None;
    };
    let Some(RelType::Read(_)) = p.input.and_then(|i| i.rel_type) else {
        return None;
    };
    Some(p.expressions.into_iter().map(Column::from_proto).collect())
}

/// Sorts an error into: the call is wrong (`Err`), or the call resolved and the server refused
/// the sample arguments (`Ok(class)`).
fn judge(name: &str, e: &sc_client::Error) -> Result<String, String> {
    let class = e.error_class().unwrap_or("").to_string();
    let call_error = CALL_ERRORS.iter().any(|c| class.starts_with(c));
    if call_error && functions_cases::NEW_IN_4_3.contains(&name) {
        // A function or parameter new in PySpark 4.3: this server is Spark 4.2.
        return Ok(format!("not on this server: {class}"));
    }
    if name == "fnm_call_udf" && class == "UNRESOLVED_ROUTINE" {
        return Ok(class); // it calls a user-defined function that is not registered
    }
    if call_error {
        return Err(format!("{name}: {e}"));
    }
    Ok(if class.is_empty() {
        e.to_string()
    } else {
        class
    })
}

#[tokio::test]
async fn every_function_case_runs_on_real_spark() {
    let spark = spark().await;
    case_tables(&spark).await;
    let names: Vec<&str> = include_str!("fidelity/cases_functions.py")
        .lines()
        .filter(|l| l.contains("\": lambda:"))
        .filter_map(|l| l.trim().strip_prefix('"')?.split('"').next())
        .chain(functions_cases::NEW_IN_4_3.iter().copied())
        .collect();
    assert!(names.len() >= 700, "only {} cases", names.len());

    // Analysis resolves every function by name and number of arguments.
    let mut wrong = Vec::new();
    let mut refused = 0;
    let mut analysed = Vec::new();
    let results: Vec<_> = futures_util::stream::iter(names.iter().map(|name| {
        let df = functions_cases::build(name, &spark).unwrap();
        async move { (*name, df.schema().await.map(|_| ()), df) }
    }))
    .buffer_unordered(6)
    .collect()
    .await;
    for (name, result, df) in results {
        match result {
            Ok(()) => analysed.push((name, df)),
            Err(e) => match judge(name, &e) {
                Ok(_) => refused += 1,
                Err(w) => wrong.push(w),
            },
        }
    }
    assert!(
        wrong.is_empty(),
        "{} cases call a function wrongly:\n{}",
        wrong.len(),
        wrong.join("\n")
    );

    // Then the cases that analysed are evaluated, many columns per query; a query that fails
    // (a generator beside another, an aggregate beside a scalar, a bad sample value) is run
    // case by case.
    let t = spark.table("t");
    let (mut ran, mut failed_at_run) = (0, Vec::new());
    let mut singles = Vec::new();
    let (plain, other): (Vec<_>, Vec<_>) = analysed
        .into_iter()
        .partition(|(_, df)| projection(df).is_some());
    singles.extend(other);
    for chunk in plain.chunks(40) {
        let cols: Vec<Column> = chunk
            .iter()
            .flat_map(|(_, df)| projection(df).unwrap_or_default())
            .collect();
        match t.select(cols).collect().await {
            Ok(_) => ran += chunk.len(),
            Err(_) => singles.extend(chunk.iter().cloned()),
        }
    }
    let results: Vec<_> = futures_util::stream::iter(
        singles
            .into_iter()
            .map(|(name, df)| async move { (name, df.collect().await.map(|_| ())) }),
    )
    .buffer_unordered(6)
    .collect()
    .await;
    for (name, result) in results {
        match result {
            Ok(()) => ran += 1,
            Err(e) => match judge(name, &e) {
                Ok(class) => failed_at_run.push(format!("{name}: {class}")),
                Err(w) => wrong.push(w),
            },
        }
    }
    println!(
        "{} cases: {} analysed, {refused} refused their sample arguments at analysis; \
         {ran} evaluated, {} refused their sample values at run time",
        names.len(),
        names.len() - refused,
        failed_at_run.len()
    );
    assert!(
        wrong.is_empty(),
        "{} cases call a function wrongly:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    // The sample data suits most functions: most cases must really run.
    assert!(
        ran >= names.len() * 4 / 10,
        "only {ran} of {} ran",
        names.len()
    );
}
