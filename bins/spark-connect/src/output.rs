//! Running a statement and printing its result (table, CSV, JSON), progress and errors.

use std::io::{IsTerminal, Write};

use arrow_array::{Array, RecordBatch};
use arrow_cast::display::{ArrayFormatter, FormatOptions};
use arrow_schema::DataType;
use futures_util::StreamExt;
use sc_client::{Progress, ProxySession, SparkSession};

use crate::Format;

/// Runs `query` and prints its result in `format`.
pub(crate) async fn run_and_print(
    spark: &SparkSession,
    query: &str,
    format: Format,
    max_rows: i32,
) -> anyhow::Result<()> {
    let df = spark.sql(query).await?;
    let mut out = std::io::stdout().lock();
    match format {
        Format::Table => {
            let table = df.show_string(max_rows, 20, false).await;
            clear_progress();
            write!(out, "{}", table?)?;
        }
        Format::Csv | Format::Json => {
            let mut stream = df.to_stream().await?;
            let mut header_done = false;
            while let Some(batch) = stream.next().await {
                let batch = batch?;
                clear_progress();
                if format == Format::Csv {
                    if !header_done {
                        let names: Vec<String> = batch
                            .schema()
                            .fields()
                            .iter()
                            .map(|f| csv_field(f.name()))
                            .collect();
                        writeln!(out, "{}", names.join(","))?;
                        header_done = true;
                    }
                    write_csv(&mut out, &batch)?;
                } else {
                    write_json(&mut out, &batch)?;
                }
            }
            if format == Format::Csv
                && !header_done
                && let Some(schema) = stream.schema()
            {
                let names: Vec<String> = schema
                    .fields()
                    .iter()
                    .map(|f| csv_field(f.name()))
                    .collect();
                writeln!(out, "{}", names.join(","))?;
            }
        }
    }
    out.flush()?;
    Ok(())
}

/// Whether the value is null, also for arrays without a validity buffer (the `void` type).
fn is_null(col: &dyn Array, row: usize) -> bool {
    col.logical_nulls().is_some_and(|n| n.is_null(row))
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn formatters(batch: &RecordBatch) -> anyhow::Result<Vec<ArrayFormatter<'_>>> {
    let opts = FormatOptions::default();
    Ok(batch
        .columns()
        .iter()
        .map(|c| ArrayFormatter::try_new(c.as_ref(), &opts))
        .collect::<Result<_, _>>()?)
}

fn write_csv(out: &mut impl Write, batch: &RecordBatch) -> anyhow::Result<()> {
    let fmts = formatters(batch)?;
    for row in 0..batch.num_rows() {
        let cells: Vec<String> = batch
            .columns()
            .iter()
            .zip(&fmts)
            .map(|(c, f)| {
                if is_null(c.as_ref(), row) {
                    String::new()
                } else {
                    csv_field(&f.value(row).to_string())
                }
            })
            .collect();
        writeln!(out, "{}", cells.join(","))?;
    }
    Ok(())
}

fn write_json(out: &mut impl Write, batch: &RecordBatch) -> anyhow::Result<()> {
    let fmts = formatters(batch)?;
    let schema = batch.schema();
    for row in 0..batch.num_rows() {
        // Fields in column order (a JSON map would sort them).
        let mut fields = Vec::with_capacity(fmts.len());
        for ((field, col), f) in schema.fields().iter().zip(batch.columns()).zip(&fmts) {
            let v = if is_null(col.as_ref(), row) {
                serde_json::Value::Null
            } else {
                let s = f.value(row).to_string();
                match field.data_type() {
                    DataType::Boolean => serde_json::Value::Bool(s == "true"),
                    t if t.is_numeric() => s
                        .parse::<serde_json::Number>()
                        .map(serde_json::Value::Number)
                        .unwrap_or(serde_json::Value::String(s)),
                    _ => serde_json::Value::String(s),
                }
            };
            fields.push(format!(
                "{}:{}",
                serde_json::Value::String(field.name().clone()),
                v
            ));
        }
        writeln!(out, "{{{}}}", fields.join(","))?;
    }
    Ok(())
}

/// Shows progress on standard error, on one line that the result replaces.
pub(crate) fn print_progress(p: &Progress) {
    let mut err = std::io::stderr().lock();
    let pct = if p.total_tasks > 0 {
        p.completed_tasks * 100 / p.total_tasks
    } else {
        0
    };
    let _ = write!(
        err,
        "\r\x1b[2K[progress] {pct:>3}% tasks {}/{} stages {}/{} running {} read {} KiB",
        p.completed_tasks,
        p.total_tasks,
        p.done_stages,
        p.stages,
        p.inflight_tasks,
        p.input_bytes_read / 1024
    );
    let _ = err.flush();
}

/// Erases the progress line.
pub(crate) fn clear_progress() {
    let mut err = std::io::stderr();
    if err.is_terminal() {
        let _ = write!(err, "\r\x1b[2K");
        let _ = err.flush();
    }
}

/// A readable error, with Spark's error class and SQL state when there are some.
pub(crate) fn describe_error(e: &anyhow::Error) -> String {
    clear_progress();
    if let Some(se) = e.downcast_ref::<sc_client::Error>() {
        if let Some(spark) = se.spark_error() {
            let class = spark.error_class.as_deref().unwrap_or("UNCLASSIFIED");
            let state = spark
                .sql_state
                .as_deref()
                .map(|s| format!(" (SQLSTATE {s})"))
                .unwrap_or_default();
            // The message often starts with "[CLASS] "; do not repeat it.
            let msg = spark
                .message
                .strip_prefix(&format!("[{class}] "))
                .unwrap_or(&spark.message);
            let msg = msg.split(" SQLSTATE:").next().unwrap_or(msg).trim_end();
            return format!("error[{class}]{state}: {msg}");
        }
        return format!("error: {se}");
    }
    format!("error: {e:#}")
}

/// Prints proxy sessions as a table.
pub(crate) fn print_sessions(sessions: &[ProxySession]) {
    let rows: Vec<[String; 6]> = sessions
        .iter()
        .map(|s| {
            [
                s.id.clone(),
                s.app_name.clone().unwrap_or_default(),
                s.user_id.clone().unwrap_or_default(),
                s.backend.clone().unwrap_or_default(),
                s.state.to_string(),
                s.created_at
                    .map(|t| humantime::format_rfc3339_seconds(t).to_string())
                    .unwrap_or_default(),
            ]
        })
        .collect();
    let header = ["id", "app", "user", "backend", "state", "created_at"];
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: &[String]| {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
    };
    println!(
        "{}",
        line(&header.iter().map(|h| h.to_string()).collect::<Vec<_>>())
    );
    for r in &rows {
        println!("{}", line(r));
    }
    println!("({} sessions)", rows.len());
}
