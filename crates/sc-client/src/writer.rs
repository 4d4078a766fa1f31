//! [`DataFrameWriter`]: saving DataFrames to files (parquet, csv, json, orc, text, xml), JDBC
//! databases and tables.

use std::collections::BTreeMap;

use sc_proto::spark::connect as pb;
use sc_proto::spark::connect::write_operation::{
    SaveMode as PbMode, SaveTable, SaveType, save_table,
};

use crate::dataframe::DataFrame;
use crate::error::{Error, Result};

/// What happens when the target already exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaveMode {
    /// Add to the existing data.
    Append,
    /// Replace the existing data.
    Overwrite,
    /// Fail (the default).
    ErrorIfExists,
    /// Do nothing.
    Ignore,
}

impl std::str::FromStr for SaveMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "append" => SaveMode::Append,
            "overwrite" => SaveMode::Overwrite,
            "error" | "errorifexists" => SaveMode::ErrorIfExists,
            "ignore" => SaveMode::Ignore,
            _ => return Err(Error::InvalidArgument(format!("unknown save mode '{s}'"))),
        })
    }
}

/// Saves a DataFrame (`df.write()`).
///
/// ```no_run
/// # async fn run(df: sc_client::DataFrame) -> sc_client::Result<()> {
/// use sc_client::SaveMode;
/// df.write()
///     .format("parquet")
///     .mode(SaveMode::Overwrite)
///     .partition_by(["year"])
///     .save("/tmp/out")
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct DataFrameWriter {
    df: DataFrame,
    format: Option<String>,
    mode: Option<SaveMode>,
    options: BTreeMap<String, String>,
    partition_by: Vec<String>,
    sort_by: Vec<String>,
    bucket_by: Option<(i32, Vec<String>)>,
    cluster_by: Vec<String>,
}

impl DataFrameWriter {
    pub(crate) fn new(df: DataFrame) -> Self {
        Self {
            df,
            format: None,
            mode: None,
            options: BTreeMap::new(),
            partition_by: vec![],
            sort_by: vec![],
            bucket_by: None,
            cluster_by: vec![],
        }
    }

    /// The output format (`parquet`, `csv`, `json`, `orc`, `text`, ...).
    pub fn format(mut self, format: &str) -> Self {
        self.format = Some(format.to_string());
        self
    }
    /// What to do when the target exists.
    pub fn mode(mut self, mode: SaveMode) -> Self {
        self.mode = Some(mode);
        self
    }
    /// A data source option.
    pub fn option(mut self, key: &str, value: &str) -> Self {
        self.options.insert(key.to_string(), value.to_string());
        self
    }
    /// Several data source options.
    pub fn options<'a>(self, options: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        options.into_iter().fold(self, |w, (k, v)| w.option(k, v))
    }
    /// Clusters a table by these columns (for sources that support clustering).
    pub fn cluster_by<'a>(mut self, cols: impl IntoIterator<Item = &'a str>) -> Self {
        self.cluster_by = cols.into_iter().map(str::to_string).collect();
        self
    }
    /// Partitions the output by these columns.
    pub fn partition_by<'a>(mut self, cols: impl IntoIterator<Item = &'a str>) -> Self {
        self.partition_by = cols.into_iter().map(str::to_string).collect();
        self
    }
    /// Buckets a table by these columns into `n` buckets.
    pub fn bucket_by<'a>(mut self, n: i32, cols: impl IntoIterator<Item = &'a str>) -> Self {
        self.bucket_by = Some((n, cols.into_iter().map(str::to_string).collect()));
        self
    }
    /// Sorts each bucket by these columns.
    pub fn sort_by<'a>(mut self, cols: impl IntoIterator<Item = &'a str>) -> Self {
        self.sort_by = cols.into_iter().map(str::to_string).collect();
        self
    }

    fn operation(&self, target: Option<SaveType>) -> pb::WriteOperation {
        let mode = match self.mode {
            None => PbMode::Unspecified,
            Some(SaveMode::Append) => PbMode::Append,
            Some(SaveMode::Overwrite) => PbMode::Overwrite,
            Some(SaveMode::ErrorIfExists) => PbMode::ErrorIfExists,
            Some(SaveMode::Ignore) => PbMode::Ignore,
        };
        pb::WriteOperation {
            input: Some(self.df.plan.clone()),
            source: self.format.clone(),
            save_type: target,
            mode: mode as i32,
            sort_column_names: self.sort_by.clone(),
            partitioning_columns: self.partition_by.clone(),
            bucket_by: self
                .bucket_by
                .as_ref()
                .map(|(n, c)| pb::write_operation::BucketBy {
                    bucket_column_names: c.clone(),
                    num_buckets: *n,
                }),
            options: self.options.clone().into_iter().collect(),
            clustering_columns: self.cluster_by.clone(),
            with_schema_evolution: false,
        }
    }

    /// The write command this writer sends for [`save`](Self::save).
    pub fn save_command(&self, path: &str) -> pb::Command {
        pb::Command {
            command_type: Some(pb::command::CommandType::WriteOperation(
                self.operation(Some(SaveType::Path(path.to_string()))),
            )),
        }
    }

    async fn run(&self, op: pb::WriteOperation) -> Result<()> {
        self.df
            .session
            .execute_command(pb::command::CommandType::WriteOperation(op))
            .await?;
        Ok(())
    }

    /// Writes to `path`.
    pub async fn save(&self, path: &str) -> Result<()> {
        self.run(self.operation(Some(SaveType::Path(path.to_string()))))
            .await
    }

    /// Writes to the target the source's options name, without a path (JDBC, `noop`, ...).
    pub async fn save_to_source(&self) -> Result<()> {
        self.run(self.operation(None)).await
    }

    /// Writes to the table `name`, creating it if needed.
    pub async fn save_as_table(&self, name: &str) -> Result<()> {
        self.run(self.operation(Some(SaveType::Table(SaveTable {
            table_name: name.to_string(),
            save_method: save_table::TableSaveMethod::SaveAsTable as i32,
        }))))
        .await
    }

    /// Inserts into the existing table `name` (by position).
    pub async fn insert_into(&self, name: &str) -> Result<()> {
        self.run(self.operation(Some(SaveType::Table(SaveTable {
            table_name: name.to_string(),
            save_method: save_table::TableSaveMethod::InsertInto as i32,
        }))))
        .await
    }

    /// Writes Parquet files to `path`.
    pub async fn parquet(self, path: &str) -> Result<()> {
        self.format("parquet").save(path).await
    }
    /// Writes CSV files to `path`.
    pub async fn csv(self, path: &str) -> Result<()> {
        self.format("csv").save(path).await
    }
    /// Writes JSON-lines files to `path`.
    pub async fn json(self, path: &str) -> Result<()> {
        self.format("json").save(path).await
    }
    /// Writes ORC files to `path`.
    pub async fn orc(self, path: &str) -> Result<()> {
        self.format("orc").save(path).await
    }
    /// Writes text files to `path`: the DataFrame must have one string column.
    pub async fn text(self, path: &str) -> Result<()> {
        self.format("text").save(path).await
    }
    /// Writes XML files to `path`: set the element of a row with `.option("rowTag", "book")`.
    pub async fn xml(self, path: &str) -> Result<()> {
        self.format("xml").save(path).await
    }
    /// Writes to the table `table` of the database at the JDBC `url` (creating it if needed;
    /// the mode decides what happens to an existing one); `properties` are JDBC connection
    /// properties (`user`, `password`, `driver`, ...).
    pub async fn jdbc<'a>(
        self,
        url: &str,
        table: &str,
        properties: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<()> {
        self.format("jdbc")
            .options(properties)
            .option("url", url)
            .option("dbtable", table)
            .save_to_source()
            .await
    }
}
