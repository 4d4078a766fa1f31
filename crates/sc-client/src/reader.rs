//! [`DataFrameReader`]: DataFrames from files (parquet, csv, json, orc, text, xml), JDBC
//! databases and tables.

use std::collections::BTreeMap;

use sc_proto::spark::connect as pb;
use sc_proto::spark::connect::relation::RelType;

use crate::dataframe::DataFrame;
use crate::error::Result;
use crate::session::SparkSession;
use crate::types::{SchemaSpec, StructType};

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
    /// The schema when it was given typed (for parsing DataFrames of strings).
    struct_schema: Option<StructType>,
    options: BTreeMap<String, String>,
    /// Whether the relations read a stream (`spark.read_stream()`).
    pub(crate) streaming: bool,
    /// The name of a streaming source, kept in the checkpoint.
    pub(crate) source_name: Option<String>,
}

impl DataFrameReader {
    pub(crate) fn new(session: SparkSession) -> Self {
        Self {
            session,
            format: None,
            // PySpark sends an empty schema string when none is set; so does this reader.
            schema: Some(String::new()),
            struct_schema: None,
            options: BTreeMap::new(),
            streaming: false,
            source_name: None,
        }
    }

    /// The data source format (`parquet`, `csv`, `json`, `orc`, `text`, ...).
    pub fn format(mut self, format: &str) -> Self {
        self.format = Some(format.to_string());
        self
    }

    /// The schema, instead of inferring it: a DDL string (`"a INT, b STRING"`) or a typed
    /// [`StructType`](crate::types::StructType) (sent as its JSON, as PySpark does).
    pub fn schema(mut self, schema: impl Into<SchemaSpec>) -> Self {
        let schema = schema.into();
        self.schema = Some(schema.to_reader_string());
        self.struct_schema = match schema {
            SchemaSpec::Struct(s) => Some(s),
            SchemaSpec::Ddl(_) => None,
        };
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
        let paths = paths.into_iter().map(str::to_string).collect();
        self.data_source(paths, vec![])
    }

    fn data_source(self, paths: Vec<String>, predicates: Vec<String>) -> DataFrame {
        let rel = self.session.relation(RelType::Read(pb::Read {
            is_streaming: self.streaming,
            read_type: Some(pb::read::ReadType::DataSource(pb::read::DataSource {
                format: self.format,
                schema: self.schema,
                options: self.options.into_iter().collect(),
                paths,
                predicates,
                source_name: self.source_name,
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

    /// Whether the option `key` is set.
    pub(crate) fn has_option(&self, key: &str) -> bool {
        self.options.contains_key(key)
    }

    /// The session, the schema and the options, for readers built on this one.
    pub(crate) fn into_parts(self) -> (SparkSession, Option<String>, BTreeMap<String, String>) {
        (self.session, self.schema, self.options)
    }

    /// Reads XML files: set the element of a row with `.option("rowTag", "book")`.
    pub fn xml<'a>(self, paths: impl IntoIterator<Item = &'a str>) -> DataFrame {
        self.format("xml").load(paths)
    }

    fn jdbc_options<'a>(
        self,
        url: &str,
        table: &str,
        properties: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Self {
        self.format("jdbc")
            .options(properties)
            .option("url", url)
            .option("dbtable", table)
    }

    /// Reads the table `table` (or a parenthesized query with an alias) of the database at the
    /// JDBC `url`; `properties` are JDBC connection properties (`user`, `password`, `driver`,
    /// ...). The driver must be on the server's class path.
    ///
    /// ```no_run
    /// # async fn run(spark: sc_client::SparkSession) -> sc_client::Result<()> {
    /// let people = spark
    ///     .read()
    ///     .jdbc("jdbc:postgresql://db/hr", "people", [("user", "reader"), ("password", "pw")]);
    /// # Ok(()) }
    /// ```
    pub fn jdbc<'a>(
        self,
        url: &str,
        table: &str,
        properties: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> DataFrame {
        self.jdbc_options(url, table, properties).load([])
    }

    /// Reads a JDBC table in `num_partitions` parallel queries, each over a stride of the
    /// numeric, date or timestamp `column` between `lower_bound` and `upper_bound` (the bounds
    /// only decide the strides: no row is filtered out).
    #[allow(clippy::too_many_arguments)]
    pub fn jdbc_partitioned<'a>(
        self,
        url: &str,
        table: &str,
        column: &str,
        lower_bound: &str,
        upper_bound: &str,
        num_partitions: i32,
        properties: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> DataFrame {
        self.option("partitionColumn", column)
            .option("lowerBound", lower_bound)
            .option("upperBound", upper_bound)
            .option("numPartitions", &num_partitions.to_string())
            .jdbc_options(url, table, properties)
            .load([])
    }

    /// Reads a JDBC table in one partition per `predicates` entry (a SQL `WHERE` condition
    /// each; a row matching none is not read, one matching two is read twice).
    pub fn jdbc_predicates<'a, 'p>(
        self,
        url: &str,
        table: &str,
        predicates: impl IntoIterator<Item = &'p str>,
        properties: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> DataFrame {
        let predicates = predicates.into_iter().map(str::to_string).collect();
        self.jdbc_options(url, table, properties)
            .data_source(vec![], predicates)
    }

    /// Parses a DataFrame of one string column (JSON lines, CSV lines or XML records) with
    /// this reader's options and schema (inferred when none is set; a DDL schema is parsed by
    /// the server first).
    async fn parse(self, df: &DataFrame, format: pb::parse::ParseFormat) -> Result<DataFrame> {
        let schema = match (&self.struct_schema, self.schema.as_deref()) {
            (Some(s), _) => Some(s.to_proto()),
            (None, Some(ddl)) if !ddl.is_empty() => {
                Some(self.session.parse_ddl(ddl).await?.to_proto())
            }
            _ => None,
        };
        let rel = self.session.relation(RelType::Parse(Box::new(pb::Parse {
            input: Some(Box::new(df.plan.clone())),
            format: format as i32,
            schema,
            options: self.options.into_iter().collect(),
        })));
        Ok(DataFrame::new(self.session, rel))
    }

    /// Parses the JSON strings of `df`'s single string column, one record each (PySpark's
    /// `json` with a DataFrame).
    ///
    /// ```no_run
    /// # async fn run(spark: sc_client::SparkSession, lines: sc_client::DataFrame) -> sc_client::Result<()> {
    /// let parsed = spark.read().schema("a INT, b STRING").json_dataset(&lines).await?;
    /// # Ok(()) }
    /// ```
    pub async fn json_dataset(self, df: &DataFrame) -> Result<DataFrame> {
        self.parse(df, pb::parse::ParseFormat::Json).await
    }

    /// Parses the CSV lines of `df`'s single string column (PySpark's `csv` with a DataFrame).
    pub async fn csv_dataset(self, df: &DataFrame) -> Result<DataFrame> {
        self.parse(df, pb::parse::ParseFormat::Csv).await
    }

    /// Parses the XML records of `df`'s single string column; set the row element with
    /// `.option("rowTag", ...)` (PySpark's `xml` with a DataFrame).
    pub async fn xml_dataset(self, df: &DataFrame) -> Result<DataFrame> {
        self.parse(df, pb::parse::ParseFormat::Xml).await
    }

    /// Reads a table or view.
    pub fn table(self, name: &str) -> DataFrame {
        let rel = self.session.relation(RelType::Read(pb::Read {
            is_streaming: self.streaming,
            read_type: Some(pb::read::ReadType::NamedTable(pb::read::NamedTable {
                unparsed_identifier: name.to_string(),
                options: self.options.into_iter().collect(),
            })),
        }));
        DataFrame::new(self.session, rel)
    }
}
