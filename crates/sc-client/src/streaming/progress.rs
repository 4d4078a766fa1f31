//! The progress report of a streaming query's trigger, as the server sends it (JSON), in typed
//! form.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::error::{Error, Result};

/// What one trigger (micro-batch) of a streaming query did: Spark's `StreamingQueryProgress`.
///
/// Every field Spark documents is typed; the whole report stays available as JSON
/// ([`json`](Self::json)) for fields a newer server adds.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct StreamingQueryProgress {
    /// The query's id (kept across restarts from a checkpoint).
    pub id: String,
    /// The id of this run of the query.
    pub run_id: String,
    /// The query's name, if it has one.
    #[serde(default)]
    pub name: Option<String>,
    /// When the trigger started (ISO 8601, UTC).
    pub timestamp: String,
    /// The micro-batch number.
    pub batch_id: i64,
    /// How long the batch took, in milliseconds.
    #[serde(default)]
    pub batch_duration: i64,
    /// Time spent in each phase of the trigger (`triggerExecution`, `addBatch`, ...), in
    /// milliseconds.
    #[serde(default)]
    pub duration_ms: BTreeMap<String, i64>,
    /// Event-time statistics (`max`, `min`, `avg`, `watermark`) when the query has a watermark.
    #[serde(default)]
    pub event_time: BTreeMap<String, String>,
    /// The stateful operators (aggregations, deduplication, joins).
    #[serde(default)]
    pub state_operators: Vec<StateOperatorProgress>,
    /// Each source's progress.
    #[serde(default)]
    pub sources: Vec<SourceProgress>,
    /// The sink's progress.
    #[serde(default)]
    pub sink: SinkProgress,
    /// The aggregate figures, when the report carries them (servers leave them out; the
    /// methods of the same names sum the sources' instead, as PySpark does).
    #[serde(default, rename = "numInputRows")]
    total_input_rows: Option<i64>,
    #[serde(default, rename = "inputRowsPerSecond")]
    total_input_rate: Option<f64>,
    #[serde(default, rename = "processedRowsPerSecond")]
    total_processed_rate: Option<f64>,
    /// Metrics collected with `observe`, by name.
    #[serde(default)]
    pub observed_metrics: BTreeMap<String, serde_json::Value>,
    #[serde(skip)]
    json: String,
}

impl StreamingQueryProgress {
    /// Parses a progress report from the JSON the server sends.
    pub fn from_json(json: &str) -> Result<Self> {
        let mut p: StreamingQueryProgress = serde_json::from_str(json).map_err(|e| {
            Error::Protocol(format!("the server sent an unreadable query progress: {e}"))
        })?;
        p.json = json.to_string();
        Ok(p)
    }

    /// The report as the server sent it (JSON).
    pub fn json(&self) -> &str {
        &self.json
    }

    /// Rows read in this trigger, over all sources.
    pub fn num_input_rows(&self) -> i64 {
        self.total_input_rows
            .unwrap_or_else(|| self.sources.iter().map(|s| s.num_input_rows).sum())
    }

    /// The rate at which rows arrived, over all sources (rows per second).
    pub fn input_rows_per_second(&self) -> f64 {
        self.total_input_rate.unwrap_or_else(|| {
            self.sources
                .iter()
                .filter_map(|s| s.input_rows_per_second)
                .sum()
        })
    }

    /// The rate at which rows were processed, over all sources (rows per second).
    pub fn processed_rows_per_second(&self) -> f64 {
        self.total_processed_rate.unwrap_or_else(|| {
            self.sources
                .iter()
                .filter_map(|s| s.processed_rows_per_second)
                .sum()
        })
    }
}

/// Progress of one stateful operator in a trigger.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
#[non_exhaustive]
pub struct StateOperatorProgress {
    /// The operator (`stateStoreSave`, `dedupe`, `symmetricHashJoin`, ...).
    pub operator_name: String,
    /// Rows in the state.
    pub num_rows_total: i64,
    /// Rows updated in this trigger.
    pub num_rows_updated: i64,
    /// Rows removed in this trigger.
    pub num_rows_removed: i64,
    /// Time spent updating, in milliseconds.
    pub all_updates_time_ms: i64,
    /// Time spent removing, in milliseconds.
    pub all_removals_time_ms: i64,
    /// Time spent committing, in milliseconds.
    pub commit_time_ms: i64,
    /// Memory used by the state, in bytes.
    pub memory_used_bytes: i64,
    /// Late rows dropped because they fell behind the watermark.
    pub num_rows_dropped_by_watermark: i64,
    /// Shuffle partitions of the operator.
    pub num_shuffle_partitions: i64,
    /// State store instances of the operator.
    pub num_state_store_instances: i64,
    /// The state store provider's own metrics.
    pub custom_metrics: BTreeMap<String, i64>,
}

/// Progress of one source in a trigger.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
#[non_exhaustive]
pub struct SourceProgress {
    /// What the source is (for example `RateStreamV2[rowsPerSecond=10, ...]`).
    pub description: String,
    /// Where the trigger started reading (source-specific JSON; `null` for the first).
    pub start_offset: serde_json::Value,
    /// Where it stopped reading.
    pub end_offset: serde_json::Value,
    /// The latest offset the source has.
    pub latest_offset: serde_json::Value,
    /// Rows read from this source.
    pub num_input_rows: i64,
    /// Rate at which rows arrived.
    pub input_rows_per_second: Option<f64>,
    /// Rate at which rows were processed.
    pub processed_rows_per_second: Option<f64>,
    /// The source's own metrics.
    pub metrics: BTreeMap<String, String>,
}

/// Progress of the sink in a trigger.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
#[non_exhaustive]
pub struct SinkProgress {
    /// What the sink is (for example `MemorySink`).
    pub description: String,
    /// Rows written (-1 when the sink does not count them).
    pub num_output_rows: i64,
    /// The sink's own metrics.
    pub metrics: BTreeMap<String, String>,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_a_progress_report() {
        let json = r#"{"id":"5b1b7d0e-3a6c-4a43-8d3e-1f2a3b4c5d6e","runId":"0c8f6a1e-2b3d-4e5f-8a9b-0c1d2e3f4a5b",
            "name":"q","timestamp":"2026-01-01T00:00:00.000Z","batchId":3,"batchDuration":120,
            "numInputRows":10,"inputRowsPerSecond":9.5,"processedRowsPerSecond":83.3,
            "durationMs":{"addBatch":80,"triggerExecution":120},
            "eventTime":{"watermark":"1970-01-01T00:00:00.000Z"},
            "stateOperators":[{"operatorName":"dedupeWithinWatermark","numRowsTotal":4,"numRowsUpdated":2,
              "allUpdatesTimeMs":1,"numRowsRemoved":0,"allRemovalsTimeMs":0,"commitTimeMs":5,
              "memoryUsedBytes":1000,"numRowsDroppedByWatermark":1,"numShufflePartitions":2,
              "numStateStoreInstances":2,"customMetrics":{"loadedMapCacheHitCount":0}}],
            "sources":[{"description":"RateStreamV2","startOffset":4,"endOffset":5,"latestOffset":5,
              "numInputRows":10,"inputRowsPerSecond":9.5,"processedRowsPerSecond":83.3,"metrics":{}}],
            "sink":{"description":"MemorySink","numOutputRows":10},
            "observedMetrics":{"m":{"n":1}},"somethingNew":true}"#;
        let p = StreamingQueryProgress::from_json(json).unwrap();
        assert_eq!(p.batch_id, 3);
        assert_eq!(p.name.as_deref(), Some("q"));
        assert_eq!(p.num_input_rows(), 10);
        assert_eq!(p.input_rows_per_second(), 9.5);
        assert_eq!(p.duration_ms["triggerExecution"], 120);
        assert_eq!(p.state_operators[0].num_rows_dropped_by_watermark, 1);
        assert_eq!(p.sources[0].end_offset, serde_json::json!(5));
        assert_eq!(p.sink.num_output_rows, 10);
        assert!(p.json().contains("somethingNew"));
        // No sink, no rates (NaN rates are left out by Spark): still a report.
        let p = StreamingQueryProgress::from_json(
            r#"{"id":"a","runId":"b","name":null,"timestamp":"t","batchId":0}"#,
        )
        .unwrap();
        assert_eq!(p.input_rows_per_second(), 0.0);
        // Without the totals (Spark 4 leaves them out), the sources are summed.
        let p = StreamingQueryProgress::from_json(
            r#"{"id":"a","runId":"b","timestamp":"t","batchId":1,"sources":[
                {"description":"x","numInputRows":3,"inputRowsPerSecond":1.5,"processedRowsPerSecond":2.0},
                {"description":"y","numInputRows":4,"processedRowsPerSecond":1.0}]}"#,
        )
        .unwrap();
        assert_eq!(p.num_input_rows(), 7);
        assert_eq!(p.input_rows_per_second(), 1.5);
        assert_eq!(p.processed_rows_per_second(), 3.0);
        assert!(StreamingQueryProgress::from_json("{").is_err());
        assert!(StreamingQueryProgress::from_json(r#"{"id":1}"#).is_err());
    }
}
