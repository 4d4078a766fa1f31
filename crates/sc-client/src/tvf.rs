//! Table-valued functions (`spark.tvf()`, PySpark's `TableValuedFunction`): functions that
//! return a table, such as `explode`, `inline`, `json_tuple`, `stack` or `sql_keywords`.

use sc_proto::spark::connect as pb;
use sc_proto::spark::connect::relation::RelType;

use crate::column::{Column, IntoColumn};
use crate::dataframe::DataFrame;
use crate::error::{Error, Result};
use crate::session::SparkSession;

/// The table-valued functions of a session (`spark.tvf()`).
///
/// ```no_run
/// # async fn run(spark: sc_client::SparkSession) -> sc_client::Result<()> {
/// use sc_client::functions::{array, lit};
/// let rows = spark.tvf().explode(array([lit(1), lit(2), lit(3)])).collect().await?;
/// let keywords = spark.tvf().sql_keywords().count().await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct TableValuedFunction {
    session: SparkSession,
}

impl TableValuedFunction {
    /// Calls the table-valued function `name` with `args` (any function Spark knows, including
    /// ones without a method here).
    pub fn call<C: IntoColumn>(&self, name: &str, args: impl IntoIterator<Item = C>) -> DataFrame {
        let rel = self
            .session
            .relation(RelType::UnresolvedTableValuedFunction(
                pb::UnresolvedTableValuedFunction {
                    function_name: name.to_string(),
                    arguments: args
                        .into_iter()
                        .map(|c| c.into_column().into_proto())
                        .collect(),
                },
            ));
        DataFrame::new(
            self.session.clone(),
            self.session.with_subquery_references(rel),
        )
    }

    fn one(&self, name: &str, arg: impl IntoColumn) -> DataFrame {
        self.call(name, [arg.into_column()])
    }

    fn none(&self, name: &str) -> DataFrame {
        self.call(name, Vec::<Column>::new())
    }

    /// `id` from `start` to `end` (exclusive) by `step`, as [`SparkSession::range_with`].
    pub fn range(&self, start: i64, end: i64, step: i64, num_partitions: Option<i32>) -> DataFrame {
        self.session
            .range_with(Some(start), end, step, num_partitions)
    }

    /// One row per element of an array (column `col`), or per entry of a map (`key`, `value`).
    pub fn explode(&self, collection: impl IntoColumn) -> DataFrame {
        self.one("explode", collection)
    }

    /// Like [`explode`](Self::explode), with a row of nulls for a null or empty collection.
    pub fn explode_outer(&self, collection: impl IntoColumn) -> DataFrame {
        self.one("explode_outer", collection)
    }

    /// One row per struct of an array of structs, one column per field.
    pub fn inline(&self, input: impl IntoColumn) -> DataFrame {
        self.one("inline", input)
    }

    /// Like [`inline`](Self::inline), with a row of nulls for a null or empty array.
    pub fn inline_outer(&self, input: impl IntoColumn) -> DataFrame {
        self.one("inline_outer", input)
    }

    /// The fields `fields` of the JSON string `input`, as columns `c0`, `c1`, ...
    /// At least one field is needed.
    pub fn json_tuple<C: IntoColumn>(
        &self,
        input: impl IntoColumn,
        fields: impl IntoIterator<Item = C>,
    ) -> Result<DataFrame> {
        let mut args = vec![input.into_column()];
        args.extend(fields.into_iter().map(IntoColumn::into_column));
        if args.len() < 2 {
            return Err(Error::InvalidArgument(
                "json_tuple needs at least one field".into(),
            ));
        }
        Ok(self.call("json_tuple", args))
    }

    /// Like [`explode`](Self::explode), with each element's position in a `pos` column.
    pub fn posexplode(&self, collection: impl IntoColumn) -> DataFrame {
        self.one("posexplode", collection)
    }

    /// Like [`posexplode`](Self::posexplode), with a row of nulls for a null or empty collection.
    pub fn posexplode_outer(&self, collection: impl IntoColumn) -> DataFrame {
        self.one("posexplode_outer", collection)
    }

    /// Spreads `fields` over `n` rows (`stack(2, 1, 2, 3, 4)` makes rows (1, 2) and (3, 4)).
    pub fn stack<C: IntoColumn>(
        &self,
        n: impl IntoColumn,
        fields: impl IntoIterator<Item = C>,
    ) -> DataFrame {
        let mut args = vec![n.into_column()];
        args.extend(fields.into_iter().map(IntoColumn::into_column));
        self.call("stack", args)
    }

    /// The collations Spark supports.
    pub fn collations(&self) -> DataFrame {
        self.none("collations")
    }

    /// Spark SQL's keywords, and whether each is reserved.
    pub fn sql_keywords(&self) -> DataFrame {
        self.none("sql_keywords")
    }

    /// One row per element of a variant array or field of a variant object (`pos`, `key`,
    /// `value`).
    pub fn variant_explode(&self, input: impl IntoColumn) -> DataFrame {
        self.one("variant_explode", input)
    }

    /// Like [`variant_explode`](Self::variant_explode), with a row of nulls for a null, empty
    /// or non-collection variant.
    pub fn variant_explode_outer(&self, input: impl IntoColumn) -> DataFrame {
        self.one("variant_explode_outer", input)
    }

    /// The logs of the session's Python workers (UDFs run in Python; Spark 4.1+).
    pub fn python_worker_logs(&self) -> DataFrame {
        self.none("python_worker_logs")
    }
}

impl SparkSession {
    /// Table-valued functions: `spark.tvf().explode(...)`, `spark.tvf().sql_keywords()`, ...
    pub fn tvf(&self) -> TableValuedFunction {
        TableValuedFunction {
            session: self.clone(),
        }
    }
}
