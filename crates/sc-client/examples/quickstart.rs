//! A tour of the SDK: connect, build DataFrames, run SQL, stream results, handle errors.
//!
//! Run against a Spark Connect server:
//! `SPARK_REMOTE=sc://localhost:15002 cargo run -p sc-client --example quickstart`

use futures_util::StreamExt;
use sc_client::functions::{col, count, lit, sum, when};
use sc_client::{JoinType, SparkSession};

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
        .agg([count("*").alias("people"), sum("age").alias("total_age")])
        .order_by(["dept"]);
    by_dept.show(20).await?;

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
