//! The SDK through the gateway proxy: the control-plane client creates a session, the returned
//! `SparkSession` (bound with `x-spark-connect-session-id`) runs queries through the proxy, and
//! the session is listed, shown and closed. Uses the e2e harness (`scripts/test.sh` sets
//! `SC_TEST_SPARK_A`, `SC_TEST_SPARK_B`, `SC_TEST_PYTHON` and `SC_PROXY_BIN`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use futures_util::StreamExt;
use sc_client::functions::{col, lit, sum};
use sc_client::{ControlPlaneClient, SESSION_HEADER, SessionOptions, SparkSession};
use sc_e2e::{ProxyProcess, predefined_config, test_env};

#[test]
fn sdk_through_the_proxy() {
    let env = test_env();
    // The harness's blocking HTTP client must not run inside the async runtime.
    let proxy = ProxyProcess::start(&predefined_config(&[&env.spark_a], "ROUND_ROBIN"));
    let control_url = proxy.control_url();
    let remote = proxy.remote();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        let control = ControlPlaneClient::new(&control_url)
            .unwrap()
            .with_remote(remote.clone());
        let spark = control
            .create_spark_session(SessionOptions::new().user_id("alice"))
            .await
            .unwrap();
        let info = spark.created().clone();
        assert_eq!(
            spark.connection().metadata.get(SESSION_HEADER),
            Some(&info.id)
        );
        let df = spark.range(0, 1000).agg([sum(col("id"))]);
        assert_eq!(df.count().await.unwrap(), 1);
        let b = df.collect_batch().await.unwrap();
        let v = b
            .column(0)
            .as_any()
            .downcast_ref::<arrow_array::Int64Array>()
            .unwrap()
            .value(0);
        assert_eq!(v, 499_500);
        let mut stream = spark.range(0, 200_000).to_stream().await.unwrap();
        let mut rows = 0;
        while let Some(b) = stream.next().await {
            rows += b.unwrap().num_rows();
        }
        assert_eq!(rows, 200_000);
        let err = spark.sql("select * from missing_tbl").await.unwrap_err();
        assert_eq!(err.error_class(), Some("TABLE_OR_VIEW_NOT_FOUND"));

        let listed = control.list_sessions().await.unwrap();
        assert!(listed.iter().any(|s| s.id == info.id), "{listed:?}");
        let shown = control.get_session(&info.id).await.unwrap();
        assert_eq!(shown.id, info.id);
        // Stopping the managed session's Spark session deletes the proxy session too.
        spark.spark().stop().await.unwrap();
        let gone = control.get_session(&info.id).await.unwrap_err();
        assert!(gone.to_string().contains("404"), "{gone}");

        // A plain connection string through the proxy works too (the proxy binds a fresh
        // session).
        let direct = SparkSession::builder()
            .remote(remote)
            .build()
            .await
            .unwrap();
        assert_eq!(direct.range(0, 5).count().await.unwrap(), 5);
        direct.stop().await.unwrap();
    });
}

/// A result far larger than the servers' `senderMaxStreamSize` (1 MB under `scripts/test.sh`)
/// is cut by Spark into many streams; the SDK reattaches through the proxy, which routes each
/// ReattachExecute to the backend that runs the operation, and every row arrives exactly once.
/// Both ways in are covered: a control-plane session (by header) and a plain connection string.
#[test]
fn a_large_result_is_reattached_through_the_proxy() {
    let env = test_env();
    let proxy = ProxyProcess::start(&predefined_config(&[&env.spark_a], "ROUND_ROBIN"));
    let control_url = proxy.control_url();
    let remote = proxy.remote();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        let control = ControlPlaneClient::new(&control_url)
            .unwrap()
            .with_remote(remote.clone());
        let by_header = control
            .create_spark_session(SessionOptions::new().user_id("alice"))
            .await
            .unwrap();
        let plain = SparkSession::builder()
            .remote(remote)
            .build()
            .await
            .unwrap();
        // About 30 MB of Arrow: 1M rows of an id and 17 bytes of text.
        const ROWS: i64 = 1_000_000;
        for spark in [by_header.spark(), &plain] {
            let before = spark.reattach_count();
            let df = spark
                .range_with(Some(0), ROWS, 1, Some(4))
                .select([col("id"), lit("some padding text").alias("s")]);
            let mut stream = df.to_stream().await.unwrap();
            let (mut rows, mut sum_ids, mut bytes) = (0usize, 0i64, 0usize);
            while let Some(b) = stream.next().await {
                let b = b.unwrap();
                rows += b.num_rows();
                bytes += b.get_array_memory_size();
                let ids = b
                    .column(0)
                    .as_any()
                    .downcast_ref::<arrow_array::Int64Array>()
                    .unwrap();
                sum_ids += ids.iter().flatten().sum::<i64>();
            }
            assert_eq!(rows, ROWS as usize);
            assert_eq!(sum_ids, (0..ROWS).sum::<i64>(), "rows lost or repeated");
            assert!(bytes > 20_000_000, "the result was only {bytes} bytes");
            assert!(
                spark.reattach_count() > before,
                "the stream was not reattached through the proxy"
            );
        }
        plain.stop().await.unwrap();
        by_header.close().await.unwrap();
    });
    // The reattaches were the proxy's to route: it counts them as forwarded calls.
    let (status, metrics) = proxy.control("GET", "/control/metrics", false);
    assert_eq!(status, 200, "{metrics}");
    assert!(
        metrics.contains("sc_proxy_calls_total{method=\"ReattachExecute\",code=\"OK\""),
        "{metrics}"
    );
}
