//! A result of more than 1 GB (10^9 bytes) read row by row through
//! [`DataFrame::to_row_stream`](sc_client::DataFrame::to_row_stream), every value copied out
//! with a typed getter, while this process's memory stays bounded. Its own test binary, so the
//! peak resident size is this test's alone.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use futures_util::StreamExt;
use sc_testkit::peak_rss;

#[path = "support/one_gb.rs"]
mod one_gb;

#[tokio::test]
async fn one_gib_of_rows_streams_with_bounded_memory() {
    let spark = one_gb::spark().await;
    let (rows, df) = (one_gb::ROWS, one_gb::one_gb(&spark));
    let before = peak_rss();
    let started = std::time::Instant::now();
    let mut stream = df.to_row_stream().await.unwrap();
    let (mut seen, mut id_sum, mut pad_bytes) = (0i64, 0i64, 0u64);
    while let Some(row) = stream.next().await {
        let row = row.unwrap();
        let id: i64 = row.get("id").unwrap();
        let pad: String = row.get(1).unwrap();
        assert_eq!(pad.len(), one_gb::PAD);
        id_sum += id;
        pad_bytes += pad.len() as u64;
        seen += 1;
    }
    let bytes = stream.bytes_received();
    let peak = peak_rss();
    println!(
        "streamed {seen} rows ({pad_bytes} bytes of strings read by getters), {:.3} GiB ({bytes} bytes) of Arrow IPC data, {:.1} s; \
         peak RSS {:.1} MiB (before streaming {:.1} MiB)",
        bytes as f64 / (1u64 << 30) as f64,
        started.elapsed().as_secs_f64(),
        peak as f64 / (1u64 << 20) as f64,
        before as f64 / (1u64 << 20) as f64,
    );
    assert_eq!(seen, rows);
    assert_eq!(id_sum, rows * (rows - 1) / 2);
    assert!(bytes >= 1_000_000_000, "only {bytes} bytes streamed");
    assert!(
        peak < 256 << 20,
        "peak RSS {peak} bytes: memory is not bounded"
    );
}
