//! [`DataFrameWriterV2`] (`df.write_to(table)`): writes to catalog tables through Spark's
//! DataSource V2 API (create, replace, append, overwrite by condition, overwrite partitions).

use std::collections::BTreeMap;

use sc_proto::spark::connect as pb;
use sc_proto::spark::connect::write_operation_v2::Mode;

use crate::column::{Column, IntoColumn};
use crate::dataframe::DataFrame;
use crate::error::Result;

/// Writes a DataFrame to a table of a V2 catalog (`df.write_to("catalog.db.table")`).
///
/// What a table supports depends on its catalog: Spark's built-in session catalog creates
/// tables (`create`) but refuses appends, overwrites and replaces of its (V1) tables with a clear
/// error; catalogs such as Delta, Iceberg or Spark's JDBC catalog support more.
///
/// ```no_run
/// # async fn run(df: sc_client::DataFrame) -> sc_client::Result<()> {
/// use sc_client::functions::col;
/// df.write_to("events")
///     .using("parquet")
///     .partitioned_by(["day"])
///     .table_property("owner", "data-team")
///     .create()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct DataFrameWriterV2 {
    df: DataFrame,
    table: String,
    provider: Option<String>,
    options: BTreeMap<String, String>,
    properties: BTreeMap<String, String>,
    partitioning: Vec<Column>,
    clustering: Vec<String>,
}

impl DataFrameWriterV2 {
    /// The table format (`parquet`, `delta`, `iceberg`, ...).
    pub fn using(mut self, provider: &str) -> Self {
        self.provider = Some(provider.to_string());
        self
    }

    /// A write option.
    pub fn option(mut self, key: &str, value: &str) -> Self {
        self.options.insert(key.to_string(), value.to_string());
        self
    }

    /// Several write options.
    pub fn options<'a>(self, options: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        options.into_iter().fold(self, |w, (k, v)| w.option(k, v))
    }

    /// A property of the created or replaced table.
    pub fn table_property(mut self, key: &str, value: &str) -> Self {
        self.properties.insert(key.to_string(), value.to_string());
        self
    }

    /// Partitions the created or replaced table by these columns or transforms
    /// (`years(col("ts"))`, `bucket(4, col("id"))`, ...).
    pub fn partitioned_by<C: IntoColumn>(mut self, cols: impl IntoIterator<Item = C>) -> Self {
        self.partitioning = cols.into_iter().map(IntoColumn::into_column).collect();
        self
    }

    /// Clusters the created or replaced table by these columns.
    pub fn cluster_by<'a>(mut self, cols: impl IntoIterator<Item = &'a str>) -> Self {
        self.clustering = cols.into_iter().map(str::to_string).collect();
        self
    }

    fn command(&self, mode: Mode, condition: Option<Column>) -> pb::command::CommandType {
        pb::command::CommandType::WriteOperationV2(pb::WriteOperationV2 {
            input: Some(self.df.plan.clone()),
            table_name: self.table.clone(),
            provider: self.provider.clone(),
            partitioning_columns: self
                .partitioning
                .iter()
                .cloned()
                .map(Column::into_proto)
                .collect(),
            options: self.options.clone().into_iter().collect(),
            table_properties: self.properties.clone().into_iter().collect(),
            mode: mode as i32,
            overwrite_condition: condition.map(Column::into_proto),
            clustering_columns: self.clustering.clone(),
            with_schema_evolution: false,
        })
    }

    async fn run(&self, mode: Mode, condition: Option<Column>) -> Result<()> {
        self.df
            .session
            .execute_command(self.command(mode, condition))
            .await?;
        Ok(())
    }

    /// Creates the table with the DataFrame's data; fails if it exists.
    pub async fn create(&self) -> Result<()> {
        self.run(Mode::Create, None).await
    }

    /// Replaces the table's schema and data; fails if it does not exist.
    pub async fn replace(&self) -> Result<()> {
        self.run(Mode::Replace, None).await
    }

    /// Creates the table, or replaces it if it exists.
    pub async fn create_or_replace(&self) -> Result<()> {
        self.run(Mode::CreateOrReplace, None).await
    }

    /// Appends the rows to the existing table.
    pub async fn append(&self) -> Result<()> {
        self.run(Mode::Append, None).await
    }

    /// Deletes the rows matching `condition` (a boolean column; a name is a column name), then
    /// appends the DataFrame's rows.
    pub async fn overwrite(&self, condition: impl IntoColumn) -> Result<()> {
        self.run(Mode::Overwrite, Some(condition.into_column()))
            .await
    }

    /// Replaces the partitions the DataFrame has rows for (dynamic partition overwrite).
    pub async fn overwrite_partitions(&self) -> Result<()> {
        self.run(Mode::OverwritePartitions, None).await
    }
}

impl DataFrame {
    /// A V2 writer to the table `table` (`catalog.db.table`, or a name in the current catalog).
    pub fn write_to(&self, table: &str) -> DataFrameWriterV2 {
        DataFrameWriterV2 {
            df: self.clone(),
            table: table.to_string(),
            provider: None,
            options: BTreeMap::new(),
            properties: BTreeMap::new(),
            partitioning: vec![],
            clustering: vec![],
        }
    }
}
