//! [`Catalog`]: catalogs, databases, tables, views, columns, partitions, functions and the cache
//! of the session — PySpark's 37 catalog methods.

use std::collections::BTreeMap;

use arrow_array::{Array, ListArray, RecordBatch};
use sc_proto::spark::connect as pb;
use sc_proto::spark::connect::catalog::CatType;
use sc_proto::spark::connect::relation::RelType;

use crate::dataframe::{DataFrame, StorageLevel};
use crate::error::{Error, Result};
use crate::session::SparkSession;
use crate::types::{DataType, StructType};

/// A catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogMetadata {
    /// Its name.
    pub name: String,
    /// Its description.
    pub description: Option<String>,
}

/// A database (namespace).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Database {
    /// Its name.
    pub name: String,
    /// The catalog it belongs to.
    pub catalog: Option<String>,
    /// Its description.
    pub description: Option<String>,
    /// Where its data lives.
    pub location_uri: Option<String>,
}

/// A table or view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    /// Its name.
    pub name: String,
    /// The catalog it belongs to.
    pub catalog: Option<String>,
    /// Its namespace (database) parts; `None` for a temporary view.
    pub namespace: Option<Vec<String>>,
    /// Its description.
    pub description: Option<String>,
    /// `MANAGED`, `EXTERNAL`, `VIEW` or `TEMPORARY`.
    pub table_type: Option<String>,
    /// Whether it is a temporary view.
    pub is_temporary: bool,
}

/// A column of a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogColumn {
    /// Its name.
    pub name: String,
    /// Its description.
    pub description: Option<String>,
    /// Its type, as Spark names it (`bigint`, `string`, ...).
    pub data_type: String,
    /// Whether it may hold nulls.
    pub nullable: bool,
    /// Whether the table is partitioned by it.
    pub is_partition: bool,
    /// Whether the table is bucketed by it.
    pub is_bucket: bool,
    /// Whether the table is clustered by it.
    pub is_cluster: bool,
}

/// A function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Function {
    /// Its name.
    pub name: String,
    /// The catalog it belongs to.
    pub catalog: Option<String>,
    /// Its namespace parts (none for built-in and temporary functions).
    pub namespace: Option<Vec<String>>,
    /// Its description.
    pub description: Option<String>,
    /// The implementing class.
    pub class_name: Option<String>,
    /// Whether it is temporary.
    pub is_temporary: bool,
}

/// The session's catalog (`spark.catalog()`).
///
/// Every method of PySpark's `Catalog` is here, in snake case; `register_function` registers a
/// JVM class (Python functions cannot run in a Rust client).
#[derive(Debug, Clone)]
pub struct Catalog {
    session: SparkSession,
}

// === reading results ===

/// Reads column `name` of a result as optional strings.
fn strings(batch: &RecordBatch, name: &str) -> Result<Vec<Option<String>>> {
    let Some(col) = batch.column_by_name(name) else {
        return Ok(vec![None; batch.num_rows()]);
    };
    let fmt = arrow_cast::display::ArrayFormatter::try_new(col.as_ref(), &Default::default())?;
    Ok((0..col.len())
        .map(|i| {
            let null = col.logical_nulls().is_some_and(|n| n.is_null(i));
            (!null).then(|| fmt.value(i).to_string())
        })
        .collect())
}

fn bools(batch: &RecordBatch, name: &str) -> Result<Vec<bool>> {
    Ok(strings(batch, name)?
        .into_iter()
        .map(|v| v.as_deref() == Some("true"))
        .collect())
}

/// Reads column `name` (a list of strings) as optional string vectors.
fn string_lists(batch: &RecordBatch, name: &str) -> Result<Vec<Option<Vec<String>>>> {
    let Some(col) = batch.column_by_name(name) else {
        return Ok(vec![None; batch.num_rows()]);
    };
    let Some(list) = col.as_any().downcast_ref::<ListArray>() else {
        return Err(Error::Protocol(format!(
            "catalog column '{name}' is not a list"
        )));
    };
    let mut out = Vec::with_capacity(list.len());
    for i in 0..list.len() {
        if list.is_null(i) {
            out.push(None);
            continue;
        }
        let values = list.value(i);
        let fmt =
            arrow_cast::display::ArrayFormatter::try_new(values.as_ref(), &Default::default())?;
        out.push(Some(
            (0..values.len())
                .map(|j| fmt.value(j).to_string())
                .collect(),
        ));
    }
    Ok(out)
}

fn tables(b: &RecordBatch) -> Result<Vec<Table>> {
    let names = strings(b, "name")?;
    let cats = strings(b, "catalog")?;
    let ns = string_lists(b, "namespace")?;
    let descs = strings(b, "description")?;
    let types = strings(b, "tableType")?;
    let temps = bools(b, "isTemporary")?;
    Ok((0..b.num_rows())
        .map(|i| Table {
            name: names[i].clone().unwrap_or_default(),
            catalog: cats[i].clone(),
            namespace: ns[i].clone(),
            description: descs[i].clone(),
            table_type: types[i].clone(),
            is_temporary: temps[i],
        })
        .collect())
}

fn functions(b: &RecordBatch) -> Result<Vec<Function>> {
    let names = strings(b, "name")?;
    let cats = strings(b, "catalog")?;
    let ns = string_lists(b, "namespace")?;
    let descs = strings(b, "description")?;
    let classes = strings(b, "className")?;
    let temps = bools(b, "isTemporary")?;
    Ok((0..b.num_rows())
        .map(|i| Function {
            name: names[i].clone().unwrap_or_default(),
            catalog: cats[i].clone(),
            namespace: ns[i].clone(),
            description: descs[i].clone(),
            class_name: classes[i].clone(),
            is_temporary: temps[i],
        })
        .collect())
}

fn databases(b: &RecordBatch) -> Result<Vec<Database>> {
    let names = strings(b, "name")?;
    let cats = strings(b, "catalog")?;
    let descs = strings(b, "description")?;
    let locs = strings(b, "locationUri")?;
    Ok(names
        .into_iter()
        .zip(cats)
        .zip(descs)
        .zip(locs)
        .map(|(((n, c), d), l)| Database {
            name: n.unwrap_or_default(),
            catalog: c,
            description: d,
            location_uri: l,
        })
        .collect())
}

fn only<T>(mut v: Vec<T>, what: &str) -> Result<T> {
    if v.is_empty() {
        return Err(Error::Protocol(format!("the catalog returned no {what}")));
    }
    Ok(v.swap_remove(0))
}

impl Catalog {
    pub(crate) fn new(session: SparkSession) -> Self {
        Self { session }
    }

    fn df(&self, t: CatType) -> DataFrame {
        let rel = self
            .session
            .relation(RelType::Catalog(pb::Catalog { cat_type: Some(t) }));
        DataFrame::new(self.session.clone(), rel)
    }

    async fn batch(&self, t: CatType) -> Result<RecordBatch> {
        self.df(t).collect_batch().await
    }

    async fn run(&self, t: CatType) -> Result<()> {
        self.batch(t).await.map(|_| ())
    }

    async fn scalar_string(&self, t: CatType) -> Result<String> {
        let b = self.batch(t).await?;
        let schema = b.schema();
        let Some(first) = schema.fields().first() else {
            return Err(Error::Protocol(
                "catalog returned a result without columns".into(),
            ));
        };
        strings(&b, first.name())?
            .into_iter()
            .next()
            .flatten()
            .ok_or_else(|| Error::Protocol("catalog returned no value".into()))
    }

    async fn scalar_bool(&self, t: CatType) -> Result<bool> {
        Ok(self.scalar_string(t).await? == "true")
    }

    // === catalogs ===

    /// The current catalog.
    pub async fn current_catalog(&self) -> Result<String> {
        self.scalar_string(CatType::CurrentCatalog(pb::CurrentCatalog {}))
            .await
    }

    /// Switches the current catalog.
    pub async fn set_current_catalog(&self, name: &str) -> Result<()> {
        self.run(CatType::SetCurrentCatalog(pb::SetCurrentCatalog {
            catalog_name: name.into(),
        }))
        .await
    }

    /// The catalogs, optionally only those matching a pattern (`*` and `|` wildcards).
    pub async fn list_catalogs(&self, pattern: Option<&str>) -> Result<Vec<CatalogMetadata>> {
        let b = self
            .batch(CatType::ListCatalogs(pb::ListCatalogs {
                pattern: pattern.map(str::to_string),
            }))
            .await?;
        let names = strings(&b, "name")?;
        let descs = strings(&b, "description")?;
        Ok(names
            .into_iter()
            .zip(descs)
            .map(|(n, d)| CatalogMetadata {
                name: n.unwrap_or_default(),
                description: d,
            })
            .collect())
    }

    // === databases ===

    /// The current database.
    pub async fn current_database(&self) -> Result<String> {
        self.scalar_string(CatType::CurrentDatabase(pb::CurrentDatabase {}))
            .await
    }

    /// Switches the current database.
    pub async fn set_current_database(&self, name: &str) -> Result<()> {
        self.run(CatType::SetCurrentDatabase(pb::SetCurrentDatabase {
            db_name: name.into(),
        }))
        .await
    }

    /// The databases, optionally only those matching a pattern.
    pub async fn list_databases(&self, pattern: Option<&str>) -> Result<Vec<Database>> {
        let b = self
            .batch(CatType::ListDatabases(pb::ListDatabases {
                pattern: pattern.map(str::to_string),
            }))
            .await?;
        databases(&b)
    }

    /// The database `name` (fails if it does not exist).
    pub async fn get_database(&self, name: &str) -> Result<Database> {
        let b = self
            .batch(CatType::GetDatabase(pb::GetDatabase {
                db_name: name.into(),
            }))
            .await?;
        only(databases(&b)?, "database")
    }

    /// Whether the database exists.
    pub async fn database_exists(&self, name: &str) -> Result<bool> {
        self.scalar_bool(CatType::DatabaseExists(pb::DatabaseExists {
            db_name: name.into(),
        }))
        .await
    }

    /// Creates the database `name` with `properties`; with `if_not_exists`, an existing one is
    /// not an error.
    pub async fn create_database<'a>(
        &self,
        name: &str,
        if_not_exists: bool,
        properties: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<()> {
        self.run(CatType::CreateDatabase(pb::CreateDatabase {
            db_name: name.into(),
            if_not_exists,
            properties: properties
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }))
        .await
    }

    /// Drops the database `name`; with `if_exists`, a missing one is not an error; with
    /// `cascade`, its tables and functions go too (else it must be empty).
    pub async fn drop_database(&self, name: &str, if_exists: bool, cascade: bool) -> Result<()> {
        self.run(CatType::DropDatabase(pb::DropDatabase {
            db_name: name.into(),
            if_exists,
            cascade,
        }))
        .await
    }

    // === tables and views ===

    /// The tables and views of a database (the current one when `None`), optionally only those
    /// matching a pattern.
    pub async fn list_tables(&self, db: Option<&str>, pattern: Option<&str>) -> Result<Vec<Table>> {
        let b = self
            .batch(CatType::ListTables(pb::ListTables {
                db_name: db.map(str::to_string),
                pattern: pattern.map(str::to_string),
            }))
            .await?;
        tables(&b)
    }

    /// The views of a database (the current one when `None`), temporary views included,
    /// optionally only those matching a pattern.
    pub async fn list_views(&self, db: Option<&str>, pattern: Option<&str>) -> Result<Vec<Table>> {
        // As PySpark: a pattern without a database applies to the current database.
        let db = match (db, pattern) {
            (None, Some(_)) => Some(self.current_database().await?),
            (db, _) => db.map(str::to_string),
        };
        let b = self
            .batch(CatType::ListViews(pb::ListViews {
                db_name: db,
                pattern: pattern.map(str::to_string),
            }))
            .await?;
        tables(&b)
    }

    /// The table or view `name` (fails if it does not exist).
    pub async fn get_table(&self, name: &str) -> Result<Table> {
        let b = self
            .batch(CatType::GetTable(pb::GetTable {
                table_name: name.into(),
                db_name: None,
            }))
            .await?;
        only(tables(&b)?, "table")
    }

    /// Whether the table or view exists.
    pub async fn table_exists(&self, name: &str) -> Result<bool> {
        self.scalar_bool(CatType::TableExists(pb::TableExists {
            table_name: name.into(),
            db_name: None,
        }))
        .await
    }

    /// Starts creating the table `name`: set its source, path, schema, description and
    /// options, then [`create`](CreateTable::create) it.
    ///
    /// ```no_run
    /// # async fn run(spark: sc_client::SparkSession) -> sc_client::Result<()> {
    /// use sc_client::types::{DataType, StructType};
    /// let schema = StructType::empty().add("id", DataType::Long, false);
    /// let df = spark.catalog().create_table("ids").source("parquet").schema(&schema).create().await?;
    /// # Ok(()) }
    /// ```
    pub fn create_table(&self, name: &str) -> CreateTable {
        CreateTable {
            catalog: self.clone(),
            name: name.to_string(),
            path: None,
            source: None,
            description: None,
            schema: None,
            options: BTreeMap::new(),
        }
    }

    /// Same as [`create_table`](Self::create_table) (PySpark deprecates this name): with a
    /// [`path`](CreateTable::path) the table is external.
    pub fn create_external_table(&self, name: &str) -> CreateTable {
        self.create_table(name)
    }

    /// Drops the table `name`; with `if_exists`, a missing one is not an error; with `purge`,
    /// its data skips the trash.
    pub async fn drop_table(&self, name: &str, if_exists: bool, purge: bool) -> Result<()> {
        self.run(CatType::DropTable(pb::DropTable {
            table_name: name.into(),
            if_exists,
            purge,
        }))
        .await
    }

    /// Drops the (persistent) view `name`; with `if_exists`, a missing one is not an error.
    pub async fn drop_view(&self, name: &str, if_exists: bool) -> Result<()> {
        self.run(CatType::DropView(pb::DropView {
            view_name: name.into(),
            if_exists,
        }))
        .await
    }

    /// Drops a temporary view; whether it existed.
    pub async fn drop_temp_view(&self, name: &str) -> Result<bool> {
        self.scalar_bool(CatType::DropTempView(pb::DropTempView {
            view_name: name.into(),
        }))
        .await
    }

    /// Drops a global temporary view; whether it existed.
    pub async fn drop_global_temp_view(&self, name: &str) -> Result<bool> {
        self.scalar_bool(CatType::DropGlobalTempView(pb::DropGlobalTempView {
            view_name: name.into(),
        }))
        .await
    }

    /// Removes every row of the table `name`.
    pub async fn truncate_table(&self, name: &str) -> Result<()> {
        self.run(CatType::TruncateTable(pb::TruncateTable {
            table_name: name.into(),
        }))
        .await
    }

    /// Computes the table's statistics for the optimizer; with `no_scan`, only its size (no
    /// row count).
    pub async fn analyze_table(&self, name: &str, no_scan: bool) -> Result<()> {
        self.run(CatType::AnalyzeTable(pb::AnalyzeTable {
            table_name: name.into(),
            no_scan,
        }))
        .await
    }

    /// The table's properties.
    pub async fn get_table_properties(&self, name: &str) -> Result<BTreeMap<String, String>> {
        let b = self
            .batch(CatType::GetTableProperties(pb::GetTableProperties {
                table_name: name.into(),
            }))
            .await?;
        let keys = strings(&b, "key")?;
        let values = strings(&b, "value")?;
        Ok(keys
            .into_iter()
            .zip(values)
            .filter_map(|(k, v)| Some((k?, v.unwrap_or_default())))
            .collect())
    }

    /// The `CREATE TABLE` statement of the table (Hive SerDe syntax with `as_serde`).
    pub async fn get_create_table_string(&self, name: &str, as_serde: bool) -> Result<String> {
        let b = self
            .batch(CatType::GetCreateTableString(pb::GetCreateTableString {
                table_name: name.into(),
                as_serde,
            }))
            .await?;
        Ok(strings(&b, "value")?
            .into_iter()
            .next()
            .flatten()
            .unwrap_or_default())
    }

    // === columns and partitions ===

    /// The columns of a table.
    pub async fn list_columns(&self, table: &str) -> Result<Vec<CatalogColumn>> {
        let b = self
            .batch(CatType::ListColumns(pb::ListColumns {
                table_name: table.into(),
                db_name: None,
            }))
            .await?;
        let names = strings(&b, "name")?;
        let descs = strings(&b, "description")?;
        let types = strings(&b, "dataType")?;
        let nullable = bools(&b, "nullable")?;
        let part = bools(&b, "isPartition")?;
        let bucket = bools(&b, "isBucket")?;
        let cluster = bools(&b, "isCluster")?;
        Ok((0..b.num_rows())
            .map(|i| CatalogColumn {
                name: names[i].clone().unwrap_or_default(),
                description: descs[i].clone(),
                data_type: types[i].clone().unwrap_or_default(),
                nullable: nullable[i],
                is_partition: part[i],
                is_bucket: bucket[i],
                is_cluster: cluster[i],
            })
            .collect())
    }

    /// The partitions of a table, as Spark names them (`year=2024/month=1`).
    pub async fn list_partitions(&self, table: &str) -> Result<Vec<String>> {
        let b = self
            .batch(CatType::ListPartitions(pb::ListPartitions {
                table_name: table.into(),
            }))
            .await?;
        Ok(strings(&b, "partition")?.into_iter().flatten().collect())
    }

    /// Adds the partitions found in the table's directory to the catalog.
    pub async fn recover_partitions(&self, table: &str) -> Result<()> {
        self.run(CatType::RecoverPartitions(pb::RecoverPartitions {
            table_name: table.into(),
        }))
        .await
    }

    // === functions ===

    /// The functions of a database (the current one and built-ins when `None`), optionally only
    /// those matching a pattern.
    pub async fn list_functions(
        &self,
        db: Option<&str>,
        pattern: Option<&str>,
    ) -> Result<Vec<Function>> {
        let b = self
            .batch(CatType::ListFunctions(pb::ListFunctions {
                db_name: db.map(str::to_string),
                pattern: pattern.map(str::to_string),
            }))
            .await?;
        functions(&b)
    }

    /// The function `name` (fails if it does not exist).
    pub async fn get_function(&self, name: &str) -> Result<Function> {
        let b = self
            .batch(CatType::GetFunction(pb::GetFunction {
                function_name: name.into(),
                db_name: None,
            }))
            .await?;
        only(functions(&b)?, "function")
    }

    /// Whether the function exists.
    pub async fn function_exists(&self, name: &str) -> Result<bool> {
        self.scalar_bool(CatType::FunctionExists(pb::FunctionExists {
            function_name: name.into(),
            db_name: None,
        }))
        .await
    }

    /// Registers the JVM class `class_name` (implementing one of Spark's Java `UDF0`..`UDF22`
    /// interfaces, on the server's class path or uploaded with
    /// [`SparkSession::add_artifacts`]) as the temporary function `name`, returning
    /// `return_type` (Spark infers it when `None`). This is PySpark's `registerJavaFunction`;
    /// PySpark's `registerFunction` takes a Python function, which a Rust client cannot send.
    pub async fn register_function(
        &self,
        name: &str,
        class_name: &str,
        return_type: Option<&DataType>,
    ) -> Result<()> {
        self.session
            .execute_command(pb::command::CommandType::RegisterFunction(
                pb::CommonInlineUserDefinedFunction {
                    function_name: name.to_string(),
                    deterministic: false,
                    arguments: vec![],
                    function: Some(pb::common_inline_user_defined_function::Function::JavaUdf(
                        pb::JavaUdf {
                            class_name: class_name.to_string(),
                            output_type: return_type.map(DataType::to_proto),
                            aggregate: false,
                        },
                    )),
                    is_distinct: false,
                },
            ))
            .await?;
        Ok(())
    }

    // === cache ===

    /// Whether the table is cached.
    pub async fn is_cached(&self, name: &str) -> Result<bool> {
        self.scalar_bool(CatType::IsCached(pb::IsCached {
            table_name: name.into(),
        }))
        .await
    }

    /// Caches the table, at `storage_level` (memory and disk when `None`).
    pub async fn cache_table(&self, name: &str, storage_level: Option<StorageLevel>) -> Result<()> {
        self.run(CatType::CacheTable(pb::CacheTable {
            table_name: name.into(),
            storage_level: storage_level.map(StorageLevel::to_proto),
        }))
        .await
    }

    /// Removes the table from the cache.
    pub async fn uncache_table(&self, name: &str) -> Result<()> {
        self.run(CatType::UncacheTable(pb::UncacheTable {
            table_name: name.into(),
        }))
        .await
    }

    /// Removes every cached table.
    pub async fn clear_cache(&self) -> Result<()> {
        self.run(CatType::ClearCache(pb::ClearCache {})).await
    }

    /// Invalidates and refreshes the cached data and metadata of the table.
    pub async fn refresh_table(&self, name: &str) -> Result<()> {
        self.run(CatType::RefreshTable(pb::RefreshTable {
            table_name: name.into(),
        }))
        .await
    }

    /// Invalidates and refreshes the cached data of every DataFrame reading files under `path`.
    pub async fn refresh_by_path(&self, path: &str) -> Result<()> {
        self.run(CatType::RefreshByPath(pb::RefreshByPath {
            path: path.into(),
        }))
        .await
    }
}

// === CreateTable ===

/// A table being created ([`Catalog::create_table`]).
#[derive(Debug, Clone)]
pub struct CreateTable {
    catalog: Catalog,
    name: String,
    path: Option<String>,
    source: Option<String>,
    description: Option<String>,
    schema: Option<StructType>,
    options: BTreeMap<String, String>,
}

impl CreateTable {
    /// Where the data lives: the table is external (dropping it keeps the files).
    pub fn path(mut self, path: &str) -> Self {
        self.path = Some(path.to_string());
        self
    }

    /// The data source (`parquet`, `csv`, ...; the session's default when not set).
    pub fn source(mut self, source: &str) -> Self {
        self.source = Some(source.to_string());
        self
    }

    /// The table's comment.
    pub fn description(mut self, description: &str) -> Self {
        self.description = Some(description.to_string());
        self
    }

    /// The table's schema (inferred from the files at `path` when not set).
    pub fn schema(mut self, schema: &StructType) -> Self {
        self.schema = Some(schema.clone());
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

    /// Creates the table and returns a DataFrame reading it.
    pub async fn create(self) -> Result<DataFrame> {
        self.catalog
            .run(CatType::CreateTable(pb::CreateTable {
                table_name: self.name.clone(),
                path: self.path,
                source: self.source,
                description: self.description,
                schema: self.schema.as_ref().map(StructType::to_proto),
                options: self.options.into_iter().collect(),
            }))
            .await?;
        Ok(self.catalog.session.table(&self.name))
    }
}
