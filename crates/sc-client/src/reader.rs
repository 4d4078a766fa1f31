//! [`DataFrameReader`]: DataFrames from files (parquet, csv, json, orc, text) and tables.

use std::collections::BTreeMap;

use sc_proto::spark::connect as pb;
use sc_proto::spark::connect::relation::RelType;

use crate::dataframe::DataFrame;
use crate::session::SparkSession;

/// Reads files and tables into DataFrames (`spark.read()`).
///
/// ```no_run
/// # async fn run(spark: sc_client::SparkSession) -> sc_client::Result<()> {
/// let df = spark
///     .read()
///     .format("csv")
///     .option("header", "true")
///     .schema("name STRING, age INT")
///     .load(["/data/people.csv"]);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct DataFrameReader {
    session: SparkSession,
    format: Option<String>,
    schema: Option<String>,
    options: BTreeMap<String, String>,
}

impl DataFrameReader {
    pub(crate) fn new(session: SparkSession) -> Self {
        Self {
            session,
            format: None,
            // PySpark sends an empty schema string when none is set; so does this reader.
            schema: Some(String::new()),
            options: BTreeMap::new(),
        }
    }

    /// The data source format (`parquet`, `csv`, `json`, `orc`, `text`, ...).
    pub fn format(mut self, format: &str) -> Self {
        self.format = Some(format.to_string());
        self
    }

    /// The schema as a DDL string (`"a INT, b STRING"`), instead of inferring it.
    pub fn schema(mut self, ddl: &str) -> Self {
        self.schema = Some(ddl.to_string());
        self
    }

    /// A data source option.
    pub fn option(mut self, key: &str, value: &str) -> Self {
        self.options.insert(key.to_string(), value.to_string());
        self
    }

    /// Several data source options.
    pub fn options<'a>(mut self, options: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        for (k, v) in options {
            self.options.insert(k.to_string(), v.to_string());
        }
        self
    }

    /// Loads the given paths (none for sources that need no path).
    pub fn load<'a>(self, paths: impl IntoIterator<Item = &'a str>) -> DataFrame {
        let rel = self.session.relation(RelType::Read(pb::Read {
            is_streaming: false,
            read_type: Some(pb::read::ReadType::DataSource(pb::read::DataSource {
                format: self.format,
                schema: self.schema,
                options: self.options.into_iter().collect(),
                paths: paths.into_iter().map(str::to_string).collect(),
                predicates: vec![],
                source_name: None,
            })),
        }));
        DataFrame::new(self.session, rel)
    }

    /// Reads Parquet files.
    pub fn parquet<'a>(self, paths: impl IntoIterator<Item = &'a str>) -> DataFrame {
        self.format("parquet").load(paths)
    }
    /// Reads CSV files.
    pub fn csv<'a>(self, paths: impl IntoIterator<Item = &'a str>) -> DataFrame {
        self.format("csv").load(paths)
    }
    /// Reads JSON-lines files.
    pub fn json<'a>(self, paths: impl IntoIterator<Item = &'a str>) -> DataFrame {
        self.format("json").load(paths)
    }
    /// Reads ORC files.
    pub fn orc<'a>(self, paths: impl IntoIterator<Item = &'a str>) -> DataFrame {
        self.format("orc").load(paths)
    }
    /// Reads text files, one row per line in a `value` column.
    pub fn text<'a>(self, paths: impl IntoIterator<Item = &'a str>) -> DataFrame {
        let r = if self.options.contains_key("wholetext") {
            self
        } else {
            self.option("wholetext", "false")
        };
        r.format("text").load(paths)
    }

    /// Reads a table or view.
    pub fn table(self, name: &str) -> DataFrame {
        let rel = self.session.relation(RelType::Read(pb::Read {
            is_streaming: false,
            read_type: Some(pb::read::ReadType::NamedTable(pb::read::NamedTable {
                unparsed_identifier: name.to_string(),
                options: self.options.into_iter().collect(),
            })),
        }));
        DataFrame::new(self.session, rel)
    }
}
