//! The Rust spelling of the cases of `cases_breadth.py` (issue 12 item 5): DataFrames built
//! offline by [`build`], and the plans async calls send, captured by [`build_plan`].

use sc_client::functions::*;
use sc_client::proto::Plan;
use sc_client::types::{DataType, DayTimeField, StructField, StructType, YearMonthField};
use sc_client::{Column, DataFrame, JoinType, Observation, SaveMode, SparkSession, StorageLevel};

use super::capture::Capture;

const URL: &str = "jdbc:derby:memory:db;create=true";

fn schema() -> StructType {
    StructType::new([
        StructField::new("a", DataType::Integer, false),
        StructField::new("b", DataType::String, true),
        StructField::new("c", DataType::Double, true),
        StructField::new("d", DataType::Date, true),
        StructField::new("arr", DataType::array(DataType::Integer, true), true),
        StructField::new(
            "m",
            DataType::map(DataType::String, DataType::Long, false),
            true,
        ),
        StructField::new(
            "s",
            DataType::Struct(StructType::empty().add("x", DataType::Integer, true)),
            true,
        ),
        StructField::new("dec", DataType::decimal(10, 2), true),
        StructField::new("ts", DataType::Timestamp, true),
        StructField::new("ntz", DataType::TimestampNtz, true),
        StructField::new("flag", DataType::Boolean, true),
    ])
}

fn call(name: &str, args: impl IntoIterator<Item = Column>) -> Column {
    Column::call(name, args)
}

fn other_types() -> StructType {
    StructType::new([
        StructField::new("by", DataType::Byte, true),
        StructField::new("sh", DataType::Short, true),
        StructField::new("fl", DataType::Float, true),
        StructField::new("bin", DataType::Binary, true),
        StructField::new("nul", DataType::Null, true),
        StructField::new("ch", DataType::Char(3), true),
        StructField::new("vc", DataType::Varchar(10), true),
        StructField::new("tm", DataType::Time(3), true),
        StructField::new("var", DataType::Variant, true),
        StructField::new("dti", DataType::day_time_interval(), true),
        StructField::new(
            "dth",
            DataType::DayTimeInterval {
                start: DayTimeField::Day,
                end: DayTimeField::Hour,
            },
            true,
        ),
        StructField::new("ymi", DataType::year_month_interval(), true),
        StructField::new(
            "mon",
            DataType::YearMonthInterval {
                start: YearMonthField::Month,
                end: YearMonthField::Month,
            },
            true,
        ),
        StructField::new("cal", DataType::CalendarInterval, true),
    ])
}

fn annotated() -> StructType {
    let mut meta = serde_json::Map::new();
    meta.insert("comment".into(), "the key".into());
    StructType::new([
        StructField::new("a", DataType::Integer, false).with_metadata(meta),
        StructField::new(
            "s",
            DataType::map(
                DataType::CollatedString("UTF8_LCASE".into()),
                DataType::array(DataType::CollatedString("UNICODE_CI".into()), true),
                true,
            ),
            true,
        ),
    ])
}

fn small() -> StructType {
    StructType::empty()
        .add("id", DataType::Long, true)
        .add("name", DataType::String, true)
}

/// The DataFrame cases.
pub(crate) fn build(name: &str, spark: &SparkSession) -> Option<DataFrame> {
    let t = || spark.table("t");
    let u = || spark.table("u");
    let df = match name {
        // --- statistics
        "stat_crosstab" => t().stat().crosstab("a", "b"),
        "crosstab" => t().crosstab("b", "a"),
        "stat_freq_items" => t().stat().freq_items(["a", "b"], Some(0.4)),
        "freq_items_default" => t().freq_items(["a"], None),
        "sample_by_ints" => t().sample_by("a", [(1, 0.5), (2, 0.25)], Some(7)).ok()?,
        "sample_by_strings" => t()
            .stat()
            .sample_by(col("b"), [("x", 0.1), ("y", 1.0)], Some(3))
            .ok()?,
        // --- observe
        "observe_named" => t()
            .observe_named("m", [count(lit(1)).alias("n"), max("a").alias("mx")])
            .ok()?,
        "observe_observation" => t()
            .filter(col("a").gt(0))
            .observe(&Observation::new("obs"), [sum("a").alias("s")])
            .ok()?,
        // --- transpose and lateral joins
        "transpose" => t().transpose(),
        "transpose_index" => t().transpose_with_index("b"),
        "lateral_join" => t().lateral_join(&u(), None, JoinType::Inner).ok()?,
        "lateral_join_left_on" => t()
            .alias("t")
            .lateral_join(
                &u().alias("u"),
                Some(col("t.a").eq(col("u.a"))),
                JoinType::LeftOuter,
            )
            .ok()?,
        "lateral_join_cross" => t().lateral_join(&u(), None, JoinType::Cross).ok()?,
        "lateral_join_tvf" => {
            let r = spark.range(0, 3).alias("r");
            let exploded = spark.tvf().explode(array([col("r.id").outer(), lit(7)]));
            r.lateral_join(&exploded, None, JoinType::Inner).ok()?
        }
        // --- subqueries
        "scalar_subquery_select" => {
            t().select([col("a"), u().select([max("a")]).scalar().alias("m")])
        }
        "scalar_subquery_filter" => t().filter(col("a").gt(u().agg([avg("a")]).scalar())),
        "exists_subquery" => t().alias("t").filter(
            u().alias("u")
                .filter(col("u.a").eq(col("t.a").outer()))
                .exists(),
        ),
        "not_exists_subquery" => t().filter(!u().filter(col("a").gt(10)).exists()),
        "in_subquery" => t().filter(col("a").isin_subquery(&u().select(["a"]))),
        "in_subquery_struct" => {
            t().filter(struct_(["a", "b"]).isin_subquery(&u().select(["a", "b"])))
        }
        "two_subqueries" => t().select([
            u().select([max("a")]).scalar(),
            u().select([min("a")]).scalar(),
        ]),
        "subquery_with_column" => t().with_column("m", u().select([max("a")]).scalar()),
        "subquery_in_agg" => t()
            .group_by(["b"])
            .agg([(sum("a") + u().select([max("a")]).scalar()).alias("x")]),
        "subquery_in_sort" => t().order_by([(col("a") - u().select([min("a")]).scalar()).desc()]),
        "nested_subquery" => t().filter(
            col("a").isin_subquery(
                &u().filter(col("a").gt(spark.table("v").select([avg("a")]).scalar()))
                    .select(["a"]),
            ),
        ),
        "subquery_same_df_twice" => {
            let s = u().select([max("a")]);
            t().select([s.scalar(), (s.scalar() + 1).alias("p")])
        }
        // --- table-valued functions
        "tvf_range" => spark.tvf().range(0, 10, 2, Some(3)),
        "tvf_explode" => spark.tvf().explode(array([lit(1), lit(2)])),
        "tvf_explode_outer" => spark.tvf().explode_outer(create_map([lit("k"), lit(1)])),
        "tvf_inline" => spark
            .tvf()
            .inline(array([struct_([lit(1).alias("x"), lit("a").alias("y")])])),
        "tvf_inline_outer" => spark
            .tvf()
            .inline_outer(array([struct_([lit(2).alias("x")])])),
        "tvf_json_tuple" => spark
            .tvf()
            .json_tuple(lit(r#"{"a":1,"b":2}"#), [lit("a"), lit("b")])
            .ok()?,
        "tvf_posexplode" => spark.tvf().posexplode(array([lit("p"), lit("q")])),
        "tvf_posexplode_outer" => spark.tvf().posexplode_outer(array([lit(1)])),
        "tvf_stack" => spark.tvf().stack(lit(2), [lit(1), lit(2), lit(3), lit(4)]),
        "tvf_collations" => spark.tvf().collations(),
        "tvf_sql_keywords" => spark.tvf().sql_keywords(),
        "tvf_variant_explode" => spark
            .tvf()
            .variant_explode(call("parse_json", [lit(r#"{"a": 1}"#)])),
        "tvf_variant_explode_outer" => spark
            .tvf()
            .variant_explode_outer(call("parse_json", [lit("[1, 2]")])),
        "tvf_python_worker_logs" => spark.tvf().python_worker_logs(),
        // --- grouping, partitioning, columns, schemas
        "grouping_sets" => t()
            .grouping_sets(vec![vec!["a", "b"], vec!["a"], vec![]], ["a", "b"])
            .agg([sum("c")]),
        "grouping_sets_columns" => t()
            .grouping_sets(vec![vec![col("a")], vec![col("b")]], [col("a"), col("b")])
            .count(),
        "repartition_by_range_n" => t().repartition_by_range(["a"], Some(4)).ok()?,
        "repartition_by_range_cols" => t()
            .repartition_by_range([col("a"), col("b").desc()], None)
            .ok()?,
        "col_regex" => {
            let df = t();
            df.select([df.col_regex("`(a|b)`")])
        }
        "metadata_column" => {
            let df = t();
            df.select([df.metadata_column("_metadata")])
        }
        "to_schema" => t().to(&schema()),
        "to_schema_collation" => t().to(&StructType::empty().add(
            "b",
            DataType::CollatedString("UTF8_LCASE".into()),
            true,
        )),
        "with_metadata" => {
            let mut m = serde_json::Map::new();
            m.insert("comment".into(), "the key".into());
            t().with_metadata("a", m)
        }
        "transform" => t().transform(|d| d.filter(col("a").gt(1))).limit(3),
        "to_schema_other_types" => t().to(&other_types()),
        "to_schema_annotated" => t().to(&annotated()),
        // --- more subqueries and references
        "exists_in_select" => t().select([u().exists().alias("e")]),
        "isin_subquery_in_select" => {
            t().select([col("a").isin_subquery(&u().select(["a"])).alias("x")])
        }
        "subquery_in_join_condition" => {
            let (l, r) = (t().alias("l"), u().alias("r"));
            let cond = col("l.a")
                .eq(col("r.a"))
                .and(col("l.a").gt(spark.table("v").select([min("a")]).scalar()));
            l.join(&r, cond, JoinType::Inner)
        }
        "observe_with_subquery" => t()
            .observe_named(
                "m",
                [(max("a") + u().select([max("a")]).scalar()).alias("x")],
            )
            .ok()?,
        "tvf_with_subquery_argument" => spark
            .tvf()
            .explode(array([u().select([max("a")]).scalar()])),
        "lateral_join_inner_on" => t()
            .alias("t")
            .lateral_join(
                &u().alias("u"),
                Some(col("t.a").eq(col("u.a"))),
                JoinType::Inner,
            )
            .ok()?,
        "transpose_after_filter" => t().filter(col("a").gt(0)).transpose_with_index(col("b")),
        "sample_by_expression" => t()
            .sample_by(col("a") % 2, [(0, 0.5), (1, 0.1)], Some(1))
            .ok()?,
        "freq_items_support" => t().freq_items(["a", "b", "c"], Some(0.9)),
        "grouping_sets_with_rollup_like" => t()
            .grouping_sets(
                vec![vec!["a", "b", "c"], vec!["a", "b"], vec!["a"], vec![]],
                ["a", "b", "c"],
            )
            .agg([count("*").alias("n"), avg("c")]),
        "repartition_by_range_multi" => t()
            .repartition_by_range([col("a").asc_nulls_last(), col("b")], Some(8))
            .ok()?,
        // --- readers
        "read_schema_annotated" => spark
            .read()
            .schema(annotated())
            .parquet(["/data/x.parquet"]),
        "read_schema_struct" => spark.read().schema(schema()).json(["/data/x.json"]),
        "read_xml" => spark.read().option("rowTag", "book").xml(["/data/x.xml"]),
        "read_jdbc" => spark
            .read()
            .jdbc(URL, "T", [("user", "u"), ("password", "p")]),
        "read_jdbc_partitioned" => spark
            .read()
            .jdbc_partitioned(URL, "T", "id", "0", "100", 4, []),
        "read_jdbc_predicates" => {
            spark
                .read()
                .jdbc_predicates(URL, "T", [r#""a" < 1"#, r#""a" >= 1"#], [])
        }
        _ => return None,
    };
    Some(df)
}

/// The cases whose plan an async call sends: actions, commands and catalog calls.
pub(crate) async fn build_plan(name: &str, cap: &Capture) -> Option<Plan> {
    match name {
        // --- statistics
        "stat_cov" => {
            cap.plan_of(async |s| {
                let _ = s.table("t").stat().cov("a", "c").await;
            })
            .await
        }
        "cov" => {
            cap.plan_of(async |s| {
                let _ = s.table("t").cov("c", "a").await;
            })
            .await
        }
        "stat_corr" => {
            cap.plan_of(async |s| {
                let _ = s.table("t").stat().corr("a", "c", None).await;
            })
            .await
        }
        "corr" => {
            cap.plan_of(async |s| {
                let _ = s.table("t").corr("a", "c", Some("pearson")).await;
            })
            .await
        }
        "approx_quantile" => {
            cap.plan_of(async |s| {
                let _ = s
                    .table("t")
                    .approx_quantile(["a", "c"], &[0.25, 0.5, 0.75], 0.0)
                    .await;
            })
            .await
        }
        "stat_approx_quantile_one" => {
            cap.plan_of(async |s| {
                let _ = s
                    .table("t")
                    .stat()
                    .approx_quantile(["a"], &[0.5], 0.1)
                    .await;
            })
            .await
        }
        // --- checkpoints
        "checkpoint_eager" => {
            cap.plan_of(async |s| {
                let _ = s.table("t").checkpoint(true).await;
            })
            .await
        }
        "checkpoint_lazy" => {
            cap.plan_of(async |s| {
                let _ = s.table("t").filter("a > 1").checkpoint(false).await;
            })
            .await
        }
        "local_checkpoint" => {
            cap.plan_of(async |s| {
                let _ = s.table("t").local_checkpoint(true, None).await;
            })
            .await
        }
        "local_checkpoint_level" => {
            cap.plan_of(async |s| {
                let _ = s
                    .table("t")
                    .local_checkpoint(false, Some(StorageLevel::DISK_ONLY))
                    .await;
            })
            .await
        }
        // --- parsing DataFrames of strings
        "read_json_dataset" => {
            cap.plan_of(async |s| {
                let lines = s.table("lines");
                let df = s.read().schema(small()).json_dataset(&lines).await.unwrap();
                let _ = df.collect().await;
            })
            .await
        }
        "read_csv_dataset" => {
            cap.plan_of(async |s| {
                let lines = s.table("lines");
                let df = s
                    .read()
                    .option("sep", ";")
                    .csv_dataset(&lines)
                    .await
                    .unwrap();
                let _ = df.collect().await;
            })
            .await
        }
        "read_xml_dataset" => {
            cap.plan_of(async |s| {
                let lines = s.table("lines");
                let df = s
                    .read()
                    .option("rowTag", "p")
                    .schema(small())
                    .xml_dataset(&lines)
                    .await
                    .unwrap();
                let _ = df.collect().await;
            })
            .await
        }
        // --- DataFrameWriter
        "write_parquet_partitioned" => {
            cap.plan_of(async |s| {
                let _ = s
                    .table("t")
                    .write()
                    .mode(SaveMode::Overwrite)
                    .partition_by(["b"])
                    .parquet("/out")
                    .await;
            })
            .await
        }
        "write_csv_option" => {
            cap.plan_of(async |s| {
                let _ = s
                    .table("t")
                    .write()
                    .option("header", "true")
                    .csv("/out")
                    .await;
            })
            .await
        }
        "write_orc" => {
            cap.plan_of(async |s| {
                let _ = s.table("t").write().orc("/out").await;
            })
            .await
        }
        "write_text" => {
            cap.plan_of(async |s| {
                let _ = s.table("t").select(["b"]).write().text("/out").await;
            })
            .await
        }
        "write_xml" => {
            cap.plan_of(async |s| {
                let _ = s.table("t").write().option("rowTag", "r").xml("/out").await;
            })
            .await
        }
        "write_jdbc" => {
            cap.plan_of(async |s| {
                let _ = s
                    .table("t")
                    .write()
                    .mode(SaveMode::Overwrite)
                    .jdbc(URL, "T", [("user", "u")])
                    .await;
            })
            .await
        }
        "write_options_cluster_by" => {
            cap.plan_of(async |s| {
                let _ = s
                    .table("t")
                    .write()
                    .options([("a", "1"), ("b", "2")])
                    .cluster_by(["a"])
                    .save_as_table("t2")
                    .await;
            })
            .await
        }
        "write_bucket_sort" => {
            cap.plan_of(async |s| {
                let _ = s
                    .table("t")
                    .write()
                    .bucket_by(4, ["a"])
                    .sort_by(["b"])
                    .save_as_table("t3")
                    .await;
            })
            .await
        }
        "write_insert_into" => {
            cap.plan_of(async |s| {
                let _ = s.table("t").write().insert_into("t4").await;
            })
            .await
        }
        "write_mode_append_json" => {
            cap.plan_of(async |s| {
                let _ = s
                    .table("t")
                    .write()
                    .mode(SaveMode::Append)
                    .json("/out")
                    .await;
            })
            .await
        }
        "write_mode_ignore_save" => {
            cap.plan_of(async |s| {
                let _ = s
                    .table("t")
                    .write()
                    .mode(SaveMode::Ignore)
                    .format("parquet")
                    .save("/out")
                    .await;
            })
            .await
        }
        "write_mode_error_table" => {
            cap.plan_of(async |s| {
                let _ = s
                    .table("t")
                    .write()
                    .mode(SaveMode::ErrorIfExists)
                    .save_as_table("t5")
                    .await;
            })
            .await
        }
        "write_save_to_source" => {
            cap.plan_of(async |s| {
                let _ = s
                    .table("t")
                    .write()
                    .format("noop")
                    .mode(SaveMode::Overwrite)
                    .save_to_source()
                    .await;
            })
            .await
        }
        // --- DataFrameWriterV2
        "write_to_partition_transforms" => {
            cap.plan_of(async |s| {
                let _ = s
                    .table("t")
                    .write_to("t")
                    .partitioned_by([
                        call("bucket", [lit(4), col("a")]),
                        call("days", [col("d")]),
                        call("hours", [col("ts")]),
                    ])
                    .create_or_replace()
                    .await;
            })
            .await
        }
        "write_to_overwrite_by_name" => {
            cap.plan_of(async |s| {
                let _ = s.table("t").write_to("t").overwrite("flag").await;
            })
            .await
        }
        "merge_into_conditional_update_only" => {
            cap.plan_of(async |s| {
                let _ = s
                    .table("t")
                    .merge_into("target", expr("target.a = a"))
                    .when_matched(Some(col("c").gt(0)))
                    .update([("c", col("c") * 2)])
                    .merge()
                    .await;
            })
            .await
        }
        "merge_into_insert_only" => {
            cap.plan_of(async |s| {
                let _ = s
                    .table("t")
                    .merge_into("target", expr("target.a = a"))
                    .when_not_matched(None)
                    .insert([("a", col("a"))])
                    .merge()
                    .await;
            })
            .await
        }
        "cat_list_catalogs_all" => {
            cap.plan_of(async |s| {
                let _ = s.catalog().list_catalogs(None).await;
            })
            .await
        }
        "cat_list_databases_all" => {
            cap.plan_of(async |s| {
                let _ = s.catalog().list_databases(None).await;
            })
            .await
        }
        "cat_list_tables_all" => {
            cap.plan_of(async |s| {
                let _ = s.catalog().list_tables(None, None).await;
            })
            .await
        }
        "cat_list_functions_all" => {
            cap.plan_of(async |s| {
                let _ = s.catalog().list_functions(None, None).await;
            })
            .await
        }
        "cat_create_database_plain" => {
            cap.plan_of(async |s| {
                let _ = s.catalog().create_database("db2", false, []).await;
            })
            .await
        }
        "cat_create_table_path_only" => {
            cap.plan_of(async |s| {
                let _ = s
                    .catalog()
                    .create_table("t7")
                    .path("/data/t7")
                    .create()
                    .await;
            })
            .await
        }
        "cat_register_function_untyped" => {
            cap.plan_of(async |s| {
                let _ = s
                    .catalog()
                    .register_function("f", "com.example.F", None)
                    .await;
            })
            .await
        }
        "write_to_create" => {
            cap.plan_of(async |s| {
                let _ = s
                    .table("t")
                    .write_to("cat.db.t")
                    .using("parquet")
                    .partitioned_by([col("a"), call("years", [col("d")])])
                    .table_property("k", "v")
                    .option("o", "1")
                    .create()
                    .await;
            })
            .await
        }
        "write_to_replace" => {
            cap.plan_of(async |s| {
                let _ = s.table("t").write_to("t").replace().await;
            })
            .await
        }
        "write_to_create_or_replace" => {
            cap.plan_of(async |s| {
                let _ = s
                    .table("t")
                    .write_to("t")
                    .using("parquet")
                    .create_or_replace()
                    .await;
            })
            .await
        }
        "write_to_append" => {
            cap.plan_of(async |s| {
                let _ = s.table("t").write_to("t").append().await;
            })
            .await
        }
        "write_to_overwrite" => {
            cap.plan_of(async |s| {
                let _ = s.table("t").write_to("t").overwrite(col("a").gt(1)).await;
            })
            .await
        }
        "write_to_overwrite_partitions" => {
            cap.plan_of(async |s| {
                let _ = s.table("t").write_to("t").overwrite_partitions().await;
            })
            .await
        }
        "write_to_options_cluster_by" => {
            cap.plan_of(async |s| {
                let _ = s
                    .table("t")
                    .write_to("t")
                    .options([("a", "1"), ("b", "2")])
                    .cluster_by(["a", "b"])
                    .create()
                    .await;
            })
            .await
        }
        // --- MergeIntoWriter
        "merge_into_all_clauses" => {
            cap.plan_of(async |s| {
                let _ = s
                    .table("t")
                    .alias("source")
                    .merge_into("target", expr("target.a = source.a"))
                    .when_matched(Some(col("source.c").gt(1)))
                    .update([("c", col("source.c")), ("b", lit("u"))])
                    .when_matched(None)
                    .delete()
                    .when_not_matched(Some(col("source.a").gt(0)))
                    .insert([("a", col("source.a")), ("b", lit("x"))])
                    .when_not_matched(None)
                    .insert_all()
                    .when_not_matched_by_source(Some(col("target.a").lt(0)))
                    .delete()
                    .when_not_matched_by_source(None)
                    .update([("b", lit("gone"))])
                    .merge()
                    .await;
            })
            .await
        }
        "merge_into_update_all_evolution" => {
            cap.plan_of(async |s| {
                let _ = s
                    .table("t")
                    .merge_into("target", col("target.a").eq(col("a")))
                    .when_matched(None)
                    .update_all()
                    .with_schema_evolution()
                    .merge()
                    .await;
            })
            .await
        }
        "merge_into_by_source_update_all" => {
            cap.plan_of(async |s| {
                let _ = s
                    .table("t")
                    .merge_into("target", expr("target.a = a"))
                    .when_not_matched_by_source(None)
                    .update_all()
                    .merge()
                    .await;
            })
            .await
        }
        // --- catalog
        "cat_current_catalog" => {
            cap.plan_of(async |s| {
                let _ = s.catalog().current_catalog().await;
            })
            .await
        }
        "cat_set_current_catalog" => {
            cap.plan_of(async |s| {
                let _ = s.catalog().set_current_catalog("spark_catalog").await;
            })
            .await
        }
        "cat_list_catalogs" => {
            cap.plan_of(async |s| {
                let _ = s.catalog().list_catalogs(Some("spark*")).await;
            })
            .await
        }
        "cat_current_database" => {
            cap.plan_of(async |s| {
                let _ = s.catalog().current_database().await;
            })
            .await
        }
        "cat_set_current_database" => {
            cap.plan_of(async |s| {
                let _ = s.catalog().set_current_database("db1").await;
            })
            .await
        }
        "cat_list_databases" => {
            cap.plan_of(async |s| {
                let _ = s.catalog().list_databases(Some("d*")).await;
            })
            .await
        }
        "cat_get_database" => {
            cap.plan_of(async |s| {
                let _ = s.catalog().get_database("default").await;
            })
            .await
        }
        "cat_database_exists" => {
            cap.plan_of(async |s| {
                let _ = s.catalog().database_exists("db1").await;
            })
            .await
        }
        "cat_create_database" => {
            cap.plan_of(async |s| {
                let _ = s
                    .catalog()
                    .create_database("db1", true, [("owner", "me")])
                    .await;
            })
            .await
        }
        "cat_drop_database" => {
            cap.plan_of(async |s| {
                let _ = s.catalog().drop_database("db1", true, true).await;
            })
            .await
        }
        "cat_list_tables" => {
            cap.plan_of(async |s| {
                let _ = s.catalog().list_tables(Some("db1"), Some("t*")).await;
            })
            .await
        }
        "cat_list_views" => {
            cap.plan_of(async |s| {
                let _ = s.catalog().list_views(Some("db1"), None).await;
            })
            .await
        }
        "cat_list_views_pattern" => {
            cap.plan_of(async |s| {
                let _ = s.catalog().list_views(Some("db1"), Some("v*")).await;
            })
            .await
        }
        "cat_get_table" => {
            cap.plan_of(async |s| {
                let _ = s.catalog().get_table("t").await;
            })
            .await
        }
        "cat_table_exists" => {
            cap.plan_of(async |s| {
                let _ = s.catalog().table_exists("db1.t").await;
            })
            .await
        }
        "cat_create_table" => {
            cap.plan_of(async |s| {
                let _ = s
                    .catalog()
                    .create_table("t5")
                    .source("parquet")
                    .schema(&schema())
                    .description("five")
                    .option("compression", "zstd")
                    .create()
                    .await;
            })
            .await
        }
        "cat_create_external_table" => {
            cap.plan_of(async |s| {
                let _ = s
                    .catalog()
                    .create_external_table("t6")
                    .path("/data/t6")
                    .source("csv")
                    .option("header", "true")
                    .create()
                    .await;
            })
            .await
        }
        "cat_drop_table" => {
            cap.plan_of(async |s| {
                let _ = s.catalog().drop_table("t5", true, true).await;
            })
            .await
        }
        "cat_drop_view" => {
            cap.plan_of(async |s| {
                let _ = s.catalog().drop_view("v1", true).await;
            })
            .await
        }
        "cat_drop_temp_view" => {
            cap.plan_of(async |s| {
                let _ = s.catalog().drop_temp_view("tv").await;
            })
            .await
        }
        "cat_drop_global_temp_view" => {
            cap.plan_of(async |s| {
                let _ = s.catalog().drop_global_temp_view("gv").await;
            })
            .await
        }
        "cat_truncate_table" => {
            cap.plan_of(async |s| {
                let _ = s.catalog().truncate_table("t5").await;
            })
            .await
        }
        "cat_analyze_table" => {
            cap.plan_of(async |s| {
                let _ = s.catalog().analyze_table("t5", true).await;
            })
            .await
        }
        "cat_get_table_properties" => {
            cap.plan_of(async |s| {
                let _ = s.catalog().get_table_properties("t5").await;
            })
            .await
        }
        "cat_get_create_table_string" => {
            cap.plan_of(async |s| {
                let _ = s.catalog().get_create_table_string("t5", true).await;
            })
            .await
        }
        "cat_list_columns" => {
            cap.plan_of(async |s| {
                let _ = s.catalog().list_columns("t5").await;
            })
            .await
        }
        "cat_list_partitions" => {
            cap.plan_of(async |s| {
                let _ = s.catalog().list_partitions("t5").await;
            })
            .await
        }
        "cat_recover_partitions" => {
            cap.plan_of(async |s| {
                let _ = s.catalog().recover_partitions("t5").await;
            })
            .await
        }
        "cat_list_functions" => {
            cap.plan_of(async |s| {
                let _ = s.catalog().list_functions(Some("db1"), Some("a*")).await;
            })
            .await
        }
        "cat_get_function" => {
            cap.plan_of(async |s| {
                let _ = s.catalog().get_function("abs").await;
            })
            .await
        }
        "cat_function_exists" => {
            cap.plan_of(async |s| {
                let _ = s.catalog().function_exists("abs").await;
            })
            .await
        }
        "cat_register_function" => {
            cap.plan_of(async |s| {
                let _ = s
                    .catalog()
                    .register_function("plus_one", "com.example.PlusOne", Some(&DataType::Integer))
                    .await;
            })
            .await
        }
        "cat_is_cached" => {
            cap.plan_of(async |s| {
                let _ = s.catalog().is_cached("t5").await;
            })
            .await
        }
        "cat_cache_table" => {
            cap.plan_of(async |s| {
                let _ = s.catalog().cache_table("t5", None).await;
            })
            .await
        }
        "cat_cache_table_level" => {
            cap.plan_of(async |s| {
                let _ = s
                    .catalog()
                    .cache_table("t5", Some(StorageLevel::MEMORY_ONLY))
                    .await;
            })
            .await
        }
        "cat_uncache_table" => {
            cap.plan_of(async |s| {
                let _ = s.catalog().uncache_table("t5").await;
            })
            .await
        }
        "cat_clear_cache" => {
            cap.plan_of(async |s| {
                let _ = s.catalog().clear_cache().await;
            })
            .await
        }
        "cat_refresh_table" => {
            cap.plan_of(async |s| {
                let _ = s.catalog().refresh_table("t5").await;
            })
            .await
        }
        "cat_refresh_by_path" => {
            cap.plan_of(async |s| {
                let _ = s.catalog().refresh_by_path("/data").await;
            })
            .await
        }
        _ => None,
    }
}
