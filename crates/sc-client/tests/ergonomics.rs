//! Offline checks of the API's ergonomics: mixed name and column lists, windows by value or by
//! reference, and a pivot on a non-literal value refused rather than dropped.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use sc_client::functions::*;
use sc_client::{Error, SparkSession, Window, cols};

async fn offline() -> SparkSession {
    SparkSession::builder()
        .remote("sc://127.0.0.1:1")
        .build()
        .await
        .unwrap()
}

#[tokio::test]
async fn pivot_on_a_non_literal_value_is_an_error() {
    let spark = offline().await;
    let grouped = spark.table("t").group_by(["d"]);
    let Err(err) = grouped.pivot("b", Some(vec![lit("x"), col("y")])) else {
        panic!("a column as a pivot value must be refused");
    };
    assert!(matches!(err, Error::InvalidArgument(_)));
    assert!(err.to_string().contains("pivot value 1"), "{err}");
    // Literals are kept, every one of them.
    let ok = grouped.pivot("b", Some(vec![lit("x"), lit(2)]));
    assert!(ok.is_ok());
}

#[tokio::test]
async fn over_takes_a_window_by_value_or_reference() {
    let w = Window::partition_by(["b"]).order_by(["a"]);
    assert_eq!(rank().over(&w), rank().over(w.clone()));
}

#[tokio::test]
async fn lists_mix_names_and_columns() {
    // A fresh session for each plan, so plan ids match.
    let t = || async { offline().await.table("t") };
    let mixed = t()
        .await
        .select(cols!["a", col("b"), String::from("c")])
        .to_plan();
    let columns = t().await.select([col("a"), col("b"), col("c")]).to_plan();
    assert_eq!(mixed, columns);
    let with_into = t().await.select([col("a"), "b".into()]).to_plan();
    assert_eq!(with_into, t().await.select(["a", "b"]).to_plan());
    let grouped = t()
        .await
        .group_by(cols!["a", col("b")])
        .agg([count("*")])
        .to_plan();
    assert_eq!(
        grouped,
        t().await.group_by(["a", "b"]).agg([count("*")]).to_plan()
    );
}
