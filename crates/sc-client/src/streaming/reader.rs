//! [`DataStreamReader`]: streaming DataFrames from sources (rate, files in every format, tables).

use sc_proto::spark::connect as pb;
use sc_proto::spark::connect::relation::RelType;

use crate::dataframe::DataFrame;
use crate::error::{Error, Result};
use crate::reader::DataFrameReader;
use crate::session::SparkSession;

/// Reads a stream into a streaming DataFrame (`spark.read_stream()`), as PySpark's
/// `DataStreamReader`.
///
/// File sources (`json`, `csv`, `parquet`, `orc`, `text`, `xml`) watch a directory and pick up
/// the files that appear in it; they need a schema unless
/// `spark.sql.streaming.schemaInference` is on.
///
/// ```no_run
/// # async fn run(spark: sc_client::SparkSession) -> sc_client::Result<()> {
/// let ticks = spark
///     .read_stream()
///     .format("rate")
///     .option("rowsPerSecond", "10")
///     .load();
/// let events = spark
///     .read_stream()
///     .schema("user STRING, amount DOUBLE, at TIMESTAMP")
///     .option("maxFilesPerTrigger", "1")
///     .json("/data/incoming");
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct DataStreamReader {
    inner: DataFrameReader,
}

impl DataStreamReader {
    pub(crate) fn new(session: SparkSession) -> Self {
        let mut inner = DataFrameReader::new(session);
        inner.streaming = true;
        Self { inner }
    }

    /// The source format (`rate`, `json`, `csv`, `parquet`, `orc`, `text`, `xml`, `socket`, ...).
    pub fn format(self, format: &str) -> Self {
        Self {
            inner: self.inner.format(format),
        }
    }

    /// The schema as a DDL string (`"a INT, b STRING"`) or a JSON-serialised struct type.
    pub fn schema(self, schema: &str) -> Self {
        Self {
            inner: self.inner.schema(schema),
        }
    }

    /// A source option (for the rate source `rowsPerSecond`, for files `maxFilesPerTrigger`, ...).
    pub fn option(self, key: &str, value: &str) -> Self {
        Self {
            inner: self.inner.option(key, value),
        }
    }

    /// Several source options.
    pub fn options<'a>(self, options: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Self {
            inner: self.inner.options(options),
        }
    }

    /// Names the source, so that the checkpoint keeps its offsets under a stable name when the
    /// query's sources change. The name is made of ASCII letters, digits and `_`.
    pub fn name(mut self, source_name: &str) -> Result<Self> {
        if source_name.is_empty()
            || !source_name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(Error::InvalidArgument(format!(
                "'{source_name}' is not a valid streaming source name: use ASCII letters, digits and '_'"
            )));
        }
        self.inner.source_name = Some(source_name.to_string());
        Ok(self)
    }

    /// Loads a source that takes no path (`rate`, `socket`, a table format configured by
    /// options).
    pub fn load(self) -> DataFrame {
        self.inner.load([])
    }

    /// Loads the source at `path` (a directory a file source watches).
    pub fn load_path(self, path: &str) -> DataFrame {
        self.inner.load([path])
    }

    /// A stream of the JSON-lines files appearing under `path`.
    pub fn json(self, path: &str) -> DataFrame {
        self.format("json").load_path(path)
    }

    /// A stream of the CSV files appearing under `path`.
    pub fn csv(self, path: &str) -> DataFrame {
        self.format("csv").load_path(path)
    }

    /// A stream of the Parquet files appearing under `path`.
    pub fn parquet(self, path: &str) -> DataFrame {
        self.format("parquet").load_path(path)
    }

    /// A stream of the ORC files appearing under `path`.
    pub fn orc(self, path: &str) -> DataFrame {
        self.format("orc").load_path(path)
    }

    /// A stream of the lines of the text files appearing under `path`, in a `value` column.
    pub fn text(self, path: &str) -> DataFrame {
        // PySpark's streaming reader sends the default `wholetext` as Python writes `False`
        // (Spark reads booleans case-insensitively); the plan is kept identical.
        let r = if self.inner.has_option("wholetext") {
            self
        } else {
            self.option("wholetext", "False")
        };
        r.format("text").load_path(path)
    }

    /// A stream of the XML files appearing under `path` (set the `rowTag` option).
    pub fn xml(self, path: &str) -> DataFrame {
        self.format("xml").load_path(path)
    }

    /// A stream of the rows appended to the table `name`.
    pub fn table(self, name: &str) -> DataFrame {
        self.inner.table(name)
    }

    /// A stream of the change data capture records of the table `name` (for table formats that
    /// record changes; options such as `startingVersion` select the range). A schema cannot be
    /// given.
    pub fn changes(self, name: &str) -> Result<DataFrame> {
        let (session, schema, options) = self.inner.into_parts();
        if schema.as_deref().is_some_and(|s| !s.is_empty()) {
            return Err(Error::InvalidArgument(
                "changes() reads the table's own schema: do not set one with schema()".into(),
            ));
        }
        let rel = session.relation(RelType::RelationChanges(pb::RelationChanges {
            unparsed_identifier: name.to_string(),
            options: options.into_iter().collect(),
            is_streaming: true,
        }));
        Ok(DataFrame::new(session, rel))
    }
}
