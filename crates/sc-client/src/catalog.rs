//! [`Catalog`]: databases, tables, columns and functions known to the session.

use arrow_array::{Array, RecordBatch};
use sc_proto::spark::connect as pb;
use sc_proto::spark::connect::catalog::CatType;
use sc_proto::spark::connect::relation::RelType;

use crate::dataframe::DataFrame;
use crate::error::{Error, Result};
use crate::session::SparkSession;

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
    /// Its namespace parts.
    pub namespace: Option<String>,
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
}

/// A function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Function {
    /// Its name.
    pub name: String,
    /// The catalog it belongs to.
    pub catalog: Option<String>,
    /// Its description.
    pub description: Option<String>,
    /// The implementing class.
    pub class_name: Option<String>,
    /// Whether it is temporary.
    pub is_temporary: bool,
}

/// The session's catalog (`spark.catalog()`).
#[derive(Debug, Clone)]
pub struct Catalog {
    session: SparkSession,
}

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

    /// The current database.
    pub async fn current_database(&self) -> Result<String> {
        self.scalar_string(CatType::CurrentDatabase(pb::CurrentDatabase {}))
            .await
    }

    /// Switches the current database.
    pub async fn set_current_database(&self, name: &str) -> Result<()> {
        self.batch(CatType::SetCurrentDatabase(pb::SetCurrentDatabase {
            db_name: name.into(),
        }))
        .await?;
        Ok(())
    }

    /// The current catalog.
    pub async fn current_catalog(&self) -> Result<String> {
        self.scalar_string(CatType::CurrentCatalog(pb::CurrentCatalog {}))
            .await
    }

    /// The databases, optionally matching a pattern.
    pub async fn list_databases(&self, pattern: Option<&str>) -> Result<Vec<Database>> {
        let b = self
            .batch(CatType::ListDatabases(pb::ListDatabases {
                pattern: pattern.map(str::to_string),
            }))
            .await?;
        let names = strings(&b, "name")?;
        let cats = strings(&b, "catalog")?;
        let descs = strings(&b, "description")?;
        let locs = strings(&b, "locationUri")?;
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

    /// The tables and views of a database (the current one when `None`).
    pub async fn list_tables(&self, db: Option<&str>) -> Result<Vec<Table>> {
        let b = self
            .batch(CatType::ListTables(pb::ListTables {
                db_name: db.map(str::to_string),
                pattern: None,
            }))
            .await?;
        let names = strings(&b, "name")?;
        let cats = strings(&b, "catalog")?;
        let ns = strings(&b, "namespace")?;
        let descs = strings(&b, "description")?;
        let types = strings(&b, "tableType")?;
        let temps = bools(&b, "isTemporary")?;
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
        Ok((0..b.num_rows())
            .map(|i| CatalogColumn {
                name: names[i].clone().unwrap_or_default(),
                description: descs[i].clone(),
                data_type: types[i].clone().unwrap_or_default(),
                nullable: nullable[i],
                is_partition: part[i],
                is_bucket: bucket[i],
            })
            .collect())
    }

    /// The functions, optionally matching a pattern.
    pub async fn list_functions(&self, pattern: Option<&str>) -> Result<Vec<Function>> {
        let b = self
            .batch(CatType::ListFunctions(pb::ListFunctions {
                db_name: None,
                pattern: pattern.map(str::to_string),
            }))
            .await?;
        let names = strings(&b, "name")?;
        let cats = strings(&b, "catalog")?;
        let descs = strings(&b, "description")?;
        let classes = strings(&b, "className")?;
        let temps = bools(&b, "isTemporary")?;
        Ok((0..b.num_rows())
            .map(|i| Function {
                name: names[i].clone().unwrap_or_default(),
                catalog: cats[i].clone(),
                description: descs[i].clone(),
                class_name: classes[i].clone(),
                is_temporary: temps[i],
            })
            .collect())
    }

    /// Whether the database exists.
    pub async fn database_exists(&self, name: &str) -> Result<bool> {
        self.scalar_bool(CatType::DatabaseExists(pb::DatabaseExists {
            db_name: name.into(),
        }))
        .await
    }

    /// Whether the table or view exists.
    pub async fn table_exists(&self, name: &str) -> Result<bool> {
        self.scalar_bool(CatType::TableExists(pb::TableExists {
            table_name: name.into(),
            db_name: None,
        }))
        .await
    }

    /// Whether the function exists.
    pub async fn function_exists(&self, name: &str) -> Result<bool> {
        self.scalar_bool(CatType::FunctionExists(pb::FunctionExists {
            function_name: name.into(),
            db_name: None,
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

    /// Whether the table is cached.
    pub async fn is_cached(&self, name: &str) -> Result<bool> {
        self.scalar_bool(CatType::IsCached(pb::IsCached {
            table_name: name.into(),
        }))
        .await
    }

    /// Removes every cached table.
    pub async fn clear_cache(&self) -> Result<()> {
        self.batch(CatType::ClearCache(pb::ClearCache {})).await?;
        Ok(())
    }
}
