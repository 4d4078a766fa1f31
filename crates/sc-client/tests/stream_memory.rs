//! A result of more than 1 GB (10^9 bytes) streams through [`DataFrame::to_stream`] while this process's
//! memory stays bounded. Its own test binary, so the peak resident size is this test's alone.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use futures_util::StreamExt;
use sc_testkit::peak_rss;

#[path = "support/one_gb.rs"]
mod one_gb;

#[tokio::test]
async fn one_gib_streams_with_bounded_memory() {
    let spark = one_gb::spark().await;
    let (rows, df) = (one_gb::ROWS, one_gb::one_gb(&spark));
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
