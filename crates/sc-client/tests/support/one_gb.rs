//! The result of just over 1 GB that the bounded-memory tests stream (each test in its own
//! binary, so the peak resident size is that test's alone), and the session they stream it from.

use sc_client::functions::{col, lit, repeat};
use sc_client::{DataFrame, SparkSession};

/// Rows of the result: 975,000 of ~1 KiB, just over 1 GB (10^9 bytes) of Arrow data. Spark's
/// default `spark.driver.maxResultSize` (1 GiB) caps one result just above that.
pub(crate) const ROWS: i64 = 975_000;

/// The bytes of each row's `pad` column.
pub(crate) const PAD: usize = 1024;

/// A session on the Spark Connect server named by `SC_TEST_SPARK_A`.
pub(crate) async fn spark() -> SparkSession {
    let addr = std::env::var("SC_TEST_SPARK_A").unwrap_or_else(|_| {
        panic!("SC_TEST_SPARK_A is not set: run the tests with scripts/test.sh")
    });
    SparkSession::builder()
        .remote(format!("sc://{addr}"))
        .build()
        .await
        .unwrap()
}

/// `id` and a `pad` of [`PAD`] bytes, for [`ROWS`] rows in 32 partitions.
pub(crate) fn one_gb(spark: &SparkSession) -> DataFrame {
    spark
        .range_with(Some(0), ROWS, 1, Some(32))
        .select([col("id"), repeat(lit("x"), PAD as i32).alias("pad")])
}
