//! Plan fidelity: for every case, the plan sc-client builds is protobuf-equal to the plan PySpark
//! builds for the same code.
//!
//! PySpark's plans come from `tests/fidelity/pyspark_plans.py`, run now with the interpreter in
//! `SC_TEST_PYTHON` (no server needed). Plan ids count from 0 on both sides; PySpark's
//! call-site origins (debug information) are cleared by the script. Nothing else is normalised,
//! except the Arrow IPC bytes of local relations, compared decoded (pyarrow and arrow-rs encode
//! the same data differently).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use prost::Message;
use sc_client::functions::*;
use sc_client::proto::Plan;
use sc_client::{DataFrame, JoinType, SparkSession, Window};

// The cases of each area: `fidelity/<area>.rs`, with the Python side in
// `fidelity/cases_<area>.py`.
#[path = "fidelity/breadth.rs"]
mod breadth;
#[path = "fidelity/capture.rs"]
mod capture;
#[path = "fidelity/functions.rs"]
mod functions_cases;
#[path = "fidelity/rows.rs"]
mod rows_cases;
#[path = "fidelity/streaming.rs"]
mod streaming;

fn python() -> String {
    std::env::var("SC_TEST_PYTHON").unwrap_or_else(|_| {
        panic!("SC_TEST_PYTHON is not set: run the tests with scripts/test.sh (it points SC_TEST_PYTHON at a python with pyspark)")
    })
}

fn pyspark_plans() -> BTreeMap<String, Plan> {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fidelity/pyspark_plans.py"
    );
    let out = std::process::Command::new(python())
        .arg(script)
        .output()
        .expect("running the PySpark plan generator");
    assert!(
        out.status.success(),
        "pyspark_plans.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let (name, hex) = l.split_once('\t').unwrap();
            (name.to_string(), decode_plan(hex))
        })
        .collect()
}

/// A plan from its protobuf bytes in hex.
fn decode_plan(hex: &str) -> Plan {
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    Plan::decode(bytes.as_slice()).unwrap()
}

/// The Rust spelling of each case of `pyspark_plans.py`.
fn build(name: &str, spark: &SparkSession) -> Option<DataFrame> {
    let t = || spark.table("t");
    let u = || spark.table("u");
    let df = match name {
        // --- sources
        "range" => spark.range(0, 10),
        "range_start_end_step" => spark.range_with(Some(2), 20, 3, None),
        "range_partitions" => spark.range_with(Some(0), 100, 1, Some(4)),
        "table" => t(),
        "read_table" => spark.read().table("t"),
        "read_parquet" => spark.read().parquet(["/data/x.parquet"]),
        "read_csv_options_schema" => spark
            .read()
            .format("csv")
            .option("header", "true")
            .schema("a INT, b STRING")
            .load(["/data/x.csv"]),
        "read_json" => spark.read().json(["/data/x.json"]),
        "read_csv" => spark.read().csv(["/data/x.csv"]),
        "read_orc" => spark.read().orc(["/data/x.orc"]),
        "read_text" => spark.read().text(["/data/x.txt"]),
        "read_options_load" => spark
            .read()
            .format("json")
            .options([("multiLine", "true"), ("mode", "FAILFAST")])
            .load(["/a", "/b"]),
        // --- projections and filters
        "select_names" => t().select(["a", "b"]),
        "select_star" => t().select(["*"]),
        "select_expr" => t().select_expr(["a + 1 as x", "upper(b)"]),
        "select_df_col" => {
            let t = t();
            t.select([t.col("a"), t.col("b")])
        }
        "filter_column" => t().filter(col("a").gt(1)),
        "filter_string" => t().filter("a > 1"),
        "where_and_or" => t().where_(col("a").gt(1) & (col("c").lt(2.5) | col("b").is_null())),
        "with_column" => t().with_column("x", col("a") * 2),
        "with_columns" => t().with_columns([("x", lit(1)), ("y", col("b"))]),
        "with_column_renamed" => t().with_column_renamed("a", "aa"),
        "drop_names" => t().drop(["a", "b"]),
        "to_df" => spark.range(0, 3).to_df(["n"]),
        "alias_df" => t().alias("x"),
        // --- expressions
        "arith" => t().select([(col("a") + 1) - (col("c") * 2.5) / col("a") % 3]),
        "reverse_arith" => t().select([1 - col("a"), 2.0 * col("c")]),
        "compare_all" => t().select([
            col("a").eq(1),
            col("a").ne(1),
            col("a").ge(1),
            col("a").le(1),
            col("a").lt(1),
        ]),
        "eq_null_safe" => t().select([col("a").eq_null_safe(col("c"))]),
        "negate_not" => t().select([-col("a"), !col("a").gt(1)]),
        "lit_types" => t().select([
            lit(1),
            lit(3_000_000_000i64),
            lit(1.5),
            lit("s"),
            lit(true),
            null(),
        ]),
        "alias_col" => t().select([col("a").alias("x")]),
        "cast_str" => t().select([col("a").cast("string"), col("b").try_cast("int")]),
        "is_null" => t().select([
            col("a").is_null(),
            col("a").is_not_null(),
            col("c").is_nan(),
        ]),
        "isin" => t().filter(col("a").isin([1, 2, 3])),
        "like_rlike_ilike" => t().select([
            col("b").like("a%"),
            col("b").rlike("^a"),
            col("b").ilike("A%"),
        ]),
        "contains_starts_ends" => t().select([
            col("b").contains("x"),
            col("b").starts_with("a"),
            col("b").ends_with("z"),
        ]),
        "substr" => t().select([col("b").substr(1, 2)]),
        "between" => t().filter(col("a").between(1, 5)),
        "when_otherwise" => t().select([when(col("a").gt(1), "big")
            .when(col("a").gt(0), "small")
            .otherwise("none")]),
        "when_no_otherwise" => t().select([when(col("a").gt(1), col("b"))]),
        "get_item_field" => t().select([
            col("arr").get_item(0),
            col("m").get_item("k"),
            col("s").get_field("x"),
        ]),
        "with_field" => t().select([col("s").with_field("y", lit(2))]),
        "bitwise" => t().select([
            col("a").bitwise_or(1),
            col("a").bitwise_and(2),
            col("a").bitwise_xor(3),
        ]),
        "sql_expr_fn" => t().select([expr("a * 2")]),
        // --- functions
        "fn_math" => t().select([
            abs("a"),
            sqrt(col("c")),
            exp("c"),
            round("c", 2),
            floor("c", None),
            ceil("c", None),
        ]),
        "fn_string" => t().select([
            upper("b"),
            lower("b"),
            length("b"),
            trim("b", None),
            concat_ws("-", ["b", "b"]),
            substring("b", 1, 3),
        ]),
        "fn_regexp" => t().select([
            regexp_replace("b", "a", "b", None),
            regexp_extract("b", "(a)", 1),
            split("b", ",", -1),
        ]),
        "fn_date" => t().select([
            year("d"),
            month("d"),
            date_add("d", 1),
            date_format("d", "yyyy"),
            to_date("b", "yyyy-MM-dd"),
            datediff("d", "d"),
        ]),
        "fn_current" => t().select([current_date(), current_timestamp()]),
        "fn_collection" => t().select([
            size("arr"),
            array_contains("arr", 1),
            element_at("arr", 1),
            explode("arr"),
            sort_array("arr", false),
        ]),
        "fn_array_struct_map" => t().select([
            array(["a", "a"]),
            struct_(["a", "b"]),
            create_map(["b", "a"]),
        ]),
        "fn_conditional" => t().select([
            coalesce([col("a"), lit(0)]),
            greatest(["a", "c"]),
            least(["a", "c"]),
            nvl("a", "c"),
            isnull("a"),
        ]),
        "fn_hash" => t().select([md5("b"), sha2("b", 256), hash(["a", "b"]), crc32("b")]),
        "fn_json" => t().select([to_json("s", None), get_json_object("b", "$.x")]),
        "fn_rand_seeded" => t().select([rand(42), randn(7)]),
        "fn_pow_log" => t().select([
            pow(col("a"), 2),
            log_base(10.0, "c"),
            atan2(col("a"), col("c")),
        ]),
        "fn_call_function" => t().select([call_function("abs", [col("a")])]),
        "fn_more_strings" => t().select([
            lpad("b", 5, "x"),
            rpad("b", 5, "y"),
            instr("b", "a", None, None),
            locate("a", "b", 2),
            translate("b", "ab", "xy"),
            repeat("b", 2),
        ]),
        "fn_more_dates" => t().select([
            add_months("d", 2),
            months_between("d", "d", true),
            trunc("d", "month"),
            date_trunc("year", "d"),
            last_day("d"),
            dayofweek("d"),
        ]),
        "fn_more_arrays" => t().select([
            array_join("arr", ",", None),
            array_position("arr", 2),
            array_remove("arr", 1),
            slice("arr", 1, 2),
            array_distinct("arr"),
            flatten(array(["arr"])),
        ]),
        "fn_more_math" => t().select([
            bround("c", 1),
            signum("c"),
            log2("c"),
            hex("a"),
            conv("b", 16, 10),
            shiftleft("a", 2),
        ]),
        // --- aggregation
        "group_by_agg" => t()
            .group_by(["b"])
            .agg([sum("a").alias("s"), avg("c"), count("*")]),
        "group_by_count" => t().group_by(["b"]).count(),
        "agg_no_group" => t().agg([max("a"), min("c")]),
        "rollup" => t().rollup(["b", "d"]).agg([sum("a")]),
        "cube" => t().cube(["b"]).agg([count("a")]),
        "pivot_values" => t()
            .group_by(["d"])
            .pivot("b", Some(vec!["x", "y"]))
            .unwrap()
            .agg([sum("a")]),
        "pivot_no_values" => t()
            .group_by(["d"])
            .pivot("b", None::<Vec<&str>>)
            .unwrap()
            .agg([sum("a")]),
        "count_distinct" => t().agg([count_distinct(["a", "b"]), sum_distinct("a")]),
        "agg_funcs" => t().agg([
            collect_list("a"),
            collect_set("b"),
            stddev("c"),
            first("a", None),
            last("a", true),
            approx_count_distinct("b", None),
        ]),
        // --- ordering, limits, sets
        "order_by_names" => t().order_by(["a", "b"]),
        "sort_desc" => t().sort([col("a").desc(), col("b").asc_nulls_last()]),
        "sort_fn_desc" => t().order_by([desc("a"), asc("b")]),
        "sort_within_partitions" => t().sort_within_partitions(["a"]),
        "limit" => t().limit(5),
        "offset" => t().offset(5),
        "distinct" => t().distinct(),
        "drop_duplicates_all" => t().drop_duplicates(Vec::<&str>::new()),
        "drop_duplicates_subset" => t().drop_duplicates(["a", "b"]),
        "union" => spark.range(0, 3).union(&spark.range(0, 5)),
        "union_all" => spark.range(0, 3).union_all(&spark.range(0, 5)),
        "union_by_name" => spark.range(0, 3).union_by_name(&spark.range(0, 5), true),
        "intersect" => spark.range(0, 3).intersect(&spark.range(0, 5)),
        "intersect_all" => spark.range(0, 3).intersect_all(&spark.range(0, 5)),
        "except" => spark.range(0, 3).except_all(&spark.range(0, 5)),
        "subtract" => spark.range(0, 3).subtract(&spark.range(0, 5)),
        // --- joins
        "join_using" => t().join(&u(), "a", JoinType::Inner),
        "join_using_list_left" => t().join(&u(), ["a", "b"], JoinType::LeftOuter),
        "join_expr_outer" => {
            let (l, r) = (t(), u());
            l.join(&r, l.col("a").eq(r.col("a")), JoinType::FullOuter)
        }
        "join_right" => t().join(&u(), "a", JoinType::RightOuter),
        "join_semi" => t().join(&u(), "a", JoinType::LeftSemi),
        "join_anti" => t().join(&u(), "a", JoinType::LeftAnti),
        "join_full" => t().join(&u(), "a", JoinType::FullOuter),
        "cross_join" => t().cross_join(&u()),
        // --- windows
        "window_row_number" => {
            t().select([row_number().over(Window::partition_by(["b"]).order_by(["a"]))])
        }
        "window_rows_between" => t().select([sum("a").over(
            Window::partition_by(["b"])
                .order_by([col("a").desc()])
                .rows_between(Window::UNBOUNDED_PRECEDING, Window::CURRENT_ROW),
        )]),
        "window_range_between" => {
            t().select([avg("c").over(Window::order_by(["a"]).range_between(-5, 5))])
        }
        "window_rows_offsets" => t().select([max("a")
            .over(Window::partition_by(["b"]).rows_between(-2, Window::UNBOUNDED_FOLLOWING))]),
        "window_lag_lead" => {
            let w = Window::partition_by(["b"]).order_by(["a"]);
            t().select([lag("a", 1, None).over(&w), lead("a", 2, lit(0)).over(&w)])
        }
        "window_rank_ntile" => {
            let w = Window::order_by(["a"]);
            t().select([rank().over(&w), dense_rank().over(&w), ntile(4).over(&w)])
        }
        // --- other transformations
        "sample" => t().sample(0.5, false, Some(42)),
        "sample_replacement" => t().sample(0.25, true, Some(7)),
        "repartition" => t().repartition(4),
        "repartition_by_cols" => t().repartition_by(["a"], Some(4)),
        "coalesce" => t().coalesce(1),
        "describe" => t().describe(["a", "c"]),
        "summary" => t().summary(["count", "min"]),
        "na_fill" => t().na().fill(0, ["a"]).unwrap(),
        "na_fill_string" => t().na().fill("x", Vec::<&str>::new()).unwrap(),
        "na_drop_any" => t().na().drop(false, None, Vec::<&str>::new()),
        "na_drop_all_subset" => t().na().drop(true, None, ["a", "b"]),
        "na_drop_thresh" => t().na().drop(false, Some(2), Vec::<&str>::new()),
        "na_replace" => t().na().replace([(1, 2)], ["a"]).unwrap(),
        "hint_broadcast" => t().hint("broadcast", Vec::<i32>::new()),
        "hint_params" => t().hint("repartition", [3]),
        "chain" => t()
            .filter(col("a").gt(0))
            .group_by(["b"])
            .agg([sum("a").alias("s")])
            .order_by([col("s").desc()])
            .limit(10),
        _ => {
            return functions_cases::build(name, spark)
                .or_else(|| breadth::build(name, spark))
                .or_else(|| rows_cases::build(name, spark))
                .or_else(|| streaming::build(name, spark));
        }
    };
    Some(df)
}

/// Builds case `name` in Rust and compares its plan with PySpark's `want`; the difference, if
/// any.
async fn compare(name: &str, want: &Plan, capture: &capture::Capture) -> Option<String> {
    // A fresh session per case: plan ids count from 0, as the generator resets PySpark's; and
    // lambda variables are numbered from 0, as the generator resets PySpark's counter.
    let spark = SparkSession::builder()
        .remote("sc://127.0.0.1:1")
        .build()
        .await
        .unwrap();
    reset_lambda_variable_ids();
    // A DataFrame's plan, or else the plan an action, command or catalog call sends.
    let got = match build(name, &spark) {
        Some(df) => df.to_plan(),
        None => {
            let plan = match breadth::build_plan(name, capture).await {
                Some(plan) => Some(plan),
                None => streaming::build_plan(name, capture).await,
            };
            match plan {
                Some(plan) => plan,
                None => return Some(format!("{name}: no Rust spelling of this case")),
            }
        }
    };
    // Arrow IPC data of local relations is compared decoded (see `fidelity/rows.rs`).
    let got = rows_cases::canonical(got);
    let want = &rows_cases::canonical(want.clone());
    (&got != want).then(|| format!("{name}:\n  pyspark: {want:?}\n  rust:    {got:?}"))
}

/// The plans recorded from PySpark 4.3 (`fidelity/pyspark43_plans.tsv`, written by
/// `codegen/fidelity_cases.py`) for the cases PySpark 4.2.1 cannot build: functions and
/// parameters new in 4.3.
#[tokio::test]
async fn plans_match_recorded_pyspark_4_3() {
    let text = include_str!("fidelity/pyspark43_plans.tsv");
    let capture = capture::Capture::start().await;
    let mut failures = Vec::new();
    let mut compared = 0;
    for line in text.lines() {
        let (name, hex) = line.split_once('\t').unwrap();
        let want = decode_plan(hex);
        compared += 1;
        if let Some(failure) = compare(name, &want, &capture).await {
            failures.push(failure);
        }
    }
    let recorded: Vec<&str> = text.lines().filter_map(|l| l.split('\t').next()).collect();
    for name in functions_cases::NEW_IN_4_3
        .iter()
        .chain(functions_cases::CHANGED_IN_4_3)
    {
        assert!(recorded.contains(name), "{name} has no recorded plan");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(compared >= 40, "only {compared} recorded cases");
    println!("{compared} plans equal to PySpark 4.3's recorded plans");
}

#[tokio::test]
async fn plans_match_pyspark() {
    let expected = pyspark_plans();
    assert!(
        expected.len() >= 800,
        "expected at least 800 PySpark cases, got {}",
        expected.len()
    );
    let mut failures = Vec::new();
    let mut compared = 0;
    let capture = capture::Capture::start().await;
    for (name, want) in &expected {
        compared += 1;
        if let Some(failure) = compare(name, want, &capture).await {
            failures.push(failure);
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} plans differ from PySpark's:\n{}",
        failures.len(),
        expected.len(),
        failures.join("\n")
    );
    println!("{compared} plans equal to PySpark's");
}
