//! A tour of the SDK: connect, build DataFrames, run SQL, use functions, windows and lambdas,
//! stream results, handle errors.
//!
//! Run against a Spark Connect server:
//! `SPARK_REMOTE=sc://localhost:15002 cargo run -p sc-client --example quickstart`

use futures_util::StreamExt;
use sc_client::functions::{
    aggregate, col, collect_list, count, count_if, filter, lit, rank, sum, transform, when,
};
use sc_client::{JoinType, SparkSession, Window, cols};

#[tokio::main]
async fn main() -> sc_client::Result<()> {
    // Reads SPARK_REMOTE when no connection string is given.
    let spark = SparkSession::builder().build().await?;
    println!("Spark {}", spark.version().await?);

    // Lazy transformations, then an action.
    let people = spark
        .sql("select * from values ('ann', 34, 'eng'), ('bob', 27, 'ops'), ('cy', 41, 'eng') as t(name, age, dept)")
        .await?;
    let by_dept = people
        .with_column(
            "senior",
            when(col("age").gt(30), lit(true)).otherwise(false),
        )
        .group_by(["dept"])
        .agg([
            count("*").alias("people"),
            count_if("senior").alias("seniors"),
            sum("age").alias("total_age"),
            collect_list("age").alias("ages"),
        ])
        .order_by(["dept"]);
    by_dept.show(20).await?;

    // Higher-order functions take Rust closures; names and columns mix with `cols!`.
    by_dept
        .select(cols![
            "dept",
            transform("ages", |age| age + 1).alias("ages_next_year"),
            filter("ages", |age| age.gt(30)).alias("over_30"),
            aggregate("ages", lit(0), |acc, age| acc + age).alias("sum_again"),
        ])
        .show(20)
        .await?;

    // A window function, with the window given by value.
    people
        .select(cols![
            "name",
            "dept",
            rank()
                .over(Window::partition_by(["dept"]).order_by([col("age").desc()]))
                .alias("rank_in_dept"),
        ])
        .show(20)
        .await?;

    // Joins with `using` columns.
    let depts = spark
        .sql("select * from values ('eng', 'Engineering'), ('ops', 'Operations') as d(dept, title)")
        .await?;
    people
        .join(&depts, "dept", JoinType::Inner)
        .show(20)
        .await?;

    // Stream a larger result batch by batch.
    let mut stream = spark.range(0, 1_000_000).to_stream().await?;
    let mut rows = 0;
    while let Some(batch) = stream.next().await {
        rows += batch?.num_rows();
    }
    println!("streamed {rows} rows");

    // Errors carry Spark's error class.
    if let Err(e) = spark.sql("select * from no_such_table").await {
        println!(
            "error class: {:?}, sql state: {:?}",
            e.error_class(),
            e.sql_state()
        );
    }

    spark.stop().await?;
    Ok(())
}
