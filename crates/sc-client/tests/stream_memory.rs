//! A result of more than 1 GB (10^9 bytes) streams through [`DataFrame::to_stream`] while this process's
//! memory stays bounded. Its own test binary, so the peak resident size is this test's alone.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use futures_util::StreamExt;
use sc_client::SparkSession;
use sc_client::functions::{col, lit, repeat};

/// Peak resident set size of this process, in bytes (`VmHWM`).
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kb * 1024
}

#[tokio::test]
async fn one_gib_streams_with_bounded_memory() {
    let addr = std::env::var("SC_TEST_SPARK_A").unwrap_or_else(|_| {
        panic!("SC_TEST_SPARK_A is not set: run the tests with scripts/test.sh")
    });
    let spark = SparkSession::builder()
        .remote(format!("sc://{addr}"))
        .build()
        .await
        .unwrap();
    // 975,000 rows of ~1 KiB: a result of just over 1 GB (10^9 bytes) of Arrow data. Spark's
    // default `spark.driver.maxResultSize` (1 GiB) caps one result just above that.
    let rows: i64 = 975_000;
    let df = spark
        .range_with(Some(0), rows, 1, Some(32))
        .select([col("id"), repeat(lit("x"), 1024).alias("pad")]);
    let before = peak_rss();
    let started = std::time::Instant::now();
    let mut stream = df.to_stream().await.unwrap();
    let (mut seen_rows, mut batches) = (0usize, 0usize);
    while let Some(b) = stream.next().await {
        let b = b.unwrap();
        seen_rows += b.num_rows();
        batches += 1;
    }
    let bytes = stream.bytes_received();
    let peak = peak_rss();
    println!(
        "streamed {seen_rows} rows, {:.3} GiB ({bytes} bytes) of Arrow IPC data in {batches} batches, {:.1} s; \
         peak RSS {:.1} MiB (before streaming {:.1} MiB)",
        bytes as f64 / (1u64 << 30) as f64,
        started.elapsed().as_secs_f64(),
        peak as f64 / (1u64 << 20) as f64,
        before as f64 / (1u64 << 20) as f64,
    );
    assert_eq!(seen_rows as i64, rows);
    assert!(bytes >= 1_000_000_000, "only {bytes} bytes streamed");
    assert!(
        peak < 256 << 20,
        "peak RSS {peak} bytes: memory is not bounded"
    );
}
