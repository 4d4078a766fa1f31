//! The Kubeflow Spark SDK's session examples, in Rust, through the gateway proxy: managed
//! sessions with app names, a small sales DataFrame from rows, aggregations, SQL on a temporary view, a
//! running total over a window, two sessions at once, session info and metrics, and sessions
//! closed by their scope.
//!
//! Run it against a proxy (`scripts/run-local.sh` starts one on 8080/8081):
//! `SC_CONTROL_URL=http://localhost:8081 cargo run -p sc-client --example kubeflow_sessions`
//! (`SC_REMOTE=sc://host:port` overrides the proxy address the control plane hands out).

use sc_client::functions::{avg, col, count, round, sum};
use sc_client::{ControlPlaneClient, DataFrame, ManagedSession, SessionOptions, Window};

/// What a run found, for the test that runs this example.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The app name the proxy recorded for the analysis session.
    pub app_name: Option<String>,
    /// The analysis session's id (proxy and Spark alike).
    pub session_id: String,
    /// Revenue per product, largest first.
    pub revenue_by_product: Vec<(String, f64)>,
    /// The running total of revenue by date.
    pub running_total: Vec<f64>,
    /// Queries the proxy counted for the analysis session before it closed.
    pub queries_executed: u64,
    /// The two concurrent sessions' ids and the row counts they computed.
    pub concurrent: Vec<(String, i64)>,
    /// Sessions the control plane still listed after every scope ended.
    pub left_open: Vec<String>,
}

/// Three sales, as the SDK's examples start with: rows as tuples, and the column names.
async fn sales(spark: &ManagedSession) -> sc_client::Result<DataFrame> {
    spark
        .create_dataframe_from_rows(
            vec![
                ("2024-01-01", "laptop", 2, 1200.0),
                ("2024-01-02", "monitor", 5, 250.0),
                ("2024-01-03", "laptop", 1, 1150.0),
            ],
            ["date", "product", "quantity", "price"],
        )
        .await
}

/// The analysis: aggregations, SQL and a running total, then the session's info and metrics.
async fn analyse(spark: ManagedSession) -> sc_client::Result<Report> {
    println!(
        "session {} (app {:?}) on {}",
        spark.session_id(),
        spark.app_name(),
        spark.created().backend.as_deref().unwrap_or("?")
    );
    let sales = sales(&spark)
        .await?
        .with_column("revenue", col("quantity") * col("price"));
    sales.show(10).await?;

    // Aggregations with the DataFrame API.
    let by_product = sales
        .group_by(["product"])
        .agg([
            count("*").alias("orders"),
            sum("quantity").alias("units"),
            round(sum("revenue"), 2).alias("revenue"),
            avg("price").alias("avg_price"),
        ])
        .order_by([col("revenue").desc()]);
    by_product.show(10).await?;
    let revenue_by_product = by_product
        .select(["product", "revenue"])
        .collect_as::<(String, f64)>()
        .await?;

    // The same through SQL on a temporary view.
    sales.create_or_replace_temp_view("sales").await?;
    spark
        .sql("select product, sum(quantity * price) as revenue from sales group by product order by revenue desc")
        .await?
        .show(10)
        .await?;

    // A running total of revenue, day by day.
    let running =
        Window::order_by(["date"]).rows_between(Window::UNBOUNDED_PRECEDING, Window::CURRENT_ROW);
    let with_total = sales
        .select([col("date"), col("revenue")])
        .with_column("running_total", sum("revenue").over(&running))
        .order_by(["date"]);
    with_total.show(10).await?;
    let running_total = with_total
        .collect_rows()
        .await?
        .iter()
        .map(|row| row.get::<f64>("running_total"))
        .collect::<sc_client::Result<Vec<_>>>()?;

    // What the proxy knows about this session.
    let info = spark.info().await?;
    let m = &info.metrics;
    println!(
        "state {}, app {:?}, {} queries ({} running), {} artifacts, {} bytes in, {} bytes out, {:?} executing, {} errors",
        info.state,
        info.app_name,
        m.queries_executed,
        m.active_operations,
        m.artifacts_uploaded,
        m.bytes_in,
        m.bytes_out,
        m.execution_time,
        m.errors
    );
    Ok(Report {
        app_name: info.app_name.clone(),
        session_id: spark.session_id().to_string(),
        revenue_by_product,
        running_total,
        queries_executed: m.queries_executed,
        concurrent: Vec::new(),
        left_open: Vec::new(),
    })
}

/// One of two sessions working at once: its own data, its own temporary view.
async fn etl(
    control: &ControlPlaneClient,
    app: &str,
    rows: i64,
) -> sc_client::Result<(String, i64)> {
    control
        .with_session(app, |spark| async move {
            let df = spark.range(0, rows).with_column("bucket", col("id") % 7);
            df.create_or_replace_temp_view("events").await?;
            let counted = spark.table("events").count().await?;
            let per_bucket = spark
                .sql("select bucket, count(*) as n from events group by bucket")
                .await?;
            println!(
                "{app}: session {} counted {counted} rows in {} buckets",
                spark.session_id(),
                per_bucket.count().await?
            );
            Ok((spark.session_id().to_string(), counted))
        })
        .await
}

/// The whole walk-through, on the control plane `control`.
pub async fn run(control: &ControlPlaneClient) -> sc_client::Result<Report> {
    // A session with an app name; the scope closes it (both the Spark session and the proxy
    // session), whatever happens inside.
    let mut report = control
        .with_session(SessionOptions::new().app_name("sales-analysis"), analyse)
        .await?;

    // Two sessions at once, each in its own scope.
    let (a, b) = tokio::join!(etl(control, "etl-a", 1_000), etl(control, "etl-b", 2_000));
    report.concurrent = vec![a?, b?];

    // Every scope closed its session.
    let ours: Vec<&str> = std::iter::once(report.session_id.as_str())
        .chain(report.concurrent.iter().map(|(id, _)| id.as_str()))
        .collect();
    report.left_open = control
        .list_sessions()
        .await?
        .into_iter()
        .filter(|s| ours.contains(&s.id.as_str()))
        .map(|s| s.id)
        .collect();
    println!("sessions left open: {:?}", report.left_open);
    Ok(report)
}

#[allow(dead_code)] // the test that runs this example calls `run` instead
#[tokio::main]
async fn main() -> sc_client::Result<()> {
    let url = std::env::var("SC_CONTROL_URL").unwrap_or_else(|_| "http://localhost:8081".into());
    let mut control = ControlPlaneClient::new(&url)?;
    if let Ok(remote) = std::env::var("SC_REMOTE") {
        control = control.with_remote(remote);
    }
    let report = run(&control).await?;
    println!("{report:#?}");
    Ok(())
}
